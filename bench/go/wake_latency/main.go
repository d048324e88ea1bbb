// wake_latency — the Go twin of bench/wake_latency.c: how late a sleeping
// goroutine wakes while the run queue is never empty. 1,000 goroutines
// stay runnable all the time (each loops: 64 steps of xorshift64, then
// runtime.Gosched), and one more sleeps 1 ms N times (default 500),
// recording for each sleep how much longer than 1 ms it took, from just
// before time.Sleep to just after it returned.
//
//	wake_latency_p50  median lateness, µs
//	wake_latency_p99  99th percentile (nearest rank), µs
//	wake_latency_max  the worst, µs
//
// Warm-up (both sides): N/100 sleeps (at least one) with the flood
// running, not recorded. The flood goroutines stop at a flag the sleeper
// sets after its last sleep; each adds its xorshift state into a sum that
// main checks is not zero.
package main

import (
	"flag"
	"fmt"
	"os"
	"runtime"
	"sort"
	"sync"
	"sync/atomic"
	"time"
)

const (
	floodSize = 1000
	workSteps = 64
	sleepFor  = time.Millisecond
)

var (
	stop atomic.Bool
	sink atomic.Uint64
	wg   sync.WaitGroup
)

func flood(seed uint64) {
	x := seed*0x9E3779B97F4A7C15 + 1
	for !stop.Load() {
		for i := 0; i < workSteps; i++ {
			x ^= x << 13
			x ^= x >> 7
			x ^= x << 17
		}
		runtime.Gosched()
	}
	sink.Add(x)
	wg.Done()
}

func oneSleep() time.Duration {
	t0 := time.Now()
	time.Sleep(sleepFor)
	return time.Since(t0) - sleepFor
}

func sleeper(late []time.Duration) {
	warm := len(late) / 100
	if warm < 1 {
		warm = 1
	}
	for i := 0; i < warm; i++ {
		oneSleep()
	}
	for i := range late {
		late[i] = oneSleep()
	}
	stop.Store(true)
	wg.Done()
}

// percentile is the nearest-rank percentile p (0 < p <= 100) of sorted v.
func percentile(v []time.Duration, p int) time.Duration {
	rank := (len(v)*p + 99) / 100
	return v[rank-1]
}

func us(d time.Duration) float64 { return float64(d.Nanoseconds()) / 1e3 }

func main() {
	runtime.GOMAXPROCS(1)
	n := flag.Int64("n", 500, "sleeps to record")
	flag.Parse()
	if *n < 1 || flag.NArg() > 0 {
		fmt.Fprintln(os.Stderr, "usage: wake_latency [-n N]")
		os.Exit(2)
	}

	late := make([]time.Duration, *n)
	wg.Add(floodSize + 1)
	for i := 0; i < floodSize; i++ {
		go flood(uint64(i + 1))
	}
	go sleeper(late)
	wg.Wait()
	if sink.Load() == 0 {
		fmt.Fprintln(os.Stderr, "wake_latency: the flood did no work")
		os.Exit(1)
	}

	sort.Slice(late, func(i, j int) bool { return late[i] < late[j] })
	fmt.Printf("wake_latency_p50 %.1f us\n", us(percentile(late, 50)))
	fmt.Printf("wake_latency_p99 %.1f us\n", us(percentile(late, 99)))
	fmt.Printf("wake_latency_max %.1f us\n", us(late[len(late)-1]))
}
