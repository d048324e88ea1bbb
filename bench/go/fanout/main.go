// fanout — the Go twin of bench/fanout.c: start N goroutines (default
// 20,000) that each do the same fixed arithmetic and send the result to
// main over a buffered channel, at GOMAXPROCS 1 and then 2; report ns per
// goroutine from the first spawn to the last result, and the speed-up.
//
// Warm-up (both sides): one untimed round of N/10 at each setting.
package main

import (
	"flag"
	"fmt"
	"os"
	"runtime"
	"time"
)

const workSteps = 20000

func work(x uint64) uint64 {
	for k := 0; k < workSteps; k++ {
		x = x*6364136223846793005 + 1442695040888963407
	}
	return x
}

func fan(n int64) float64 {
	out := make(chan uint64, 1024)
	var want uint64
	for i := int64(0); i < n; i++ {
		want ^= work(uint64(i) + 1)
	}
	t0 := time.Now()
	var got int64
	var sum uint64
	for i := int64(0); i < n; i++ {
		seed := uint64(i) + 1
		go func() { out <- work(seed) }()
	drain:
		for {
			select {
			case r := <-out:
				sum ^= r
				got++
			default:
				break drain
			}
		}
	}
	for ; got < n; got++ {
		sum ^= <-out
	}
	t := time.Since(t0)
	if sum != want {
		fmt.Fprintln(os.Stderr, "fanout: wrong results")
		os.Exit(1)
	}
	return float64(t.Nanoseconds()) / float64(n)
}

func main() {
	n := flag.Int64("n", 20000, "goroutines to start")
	flag.Parse()
	if *n < 1 || flag.NArg() > 0 {
		fmt.Fprintln(os.Stderr, "usage: fanout [-n N]")
		os.Exit(2)
	}
	warm := *n / 10
	if warm < 1 {
		warm = 1
	}
	var ns [2]float64
	for p := 1; p <= 2; p++ {
		runtime.GOMAXPROCS(p)
		fan(warm)
		ns[p-1] = fan(*n)
	}
	fmt.Printf("fanout_p1 %.1f ns/goroutine\n", ns[0])
	fmt.Printf("fanout_p2 %.1f ns/goroutine\n", ns[1])
	fmt.Printf("fanout_speedup %.3f x\n", ns[0]/ns[1])
}
