// profile_dump — the Go twin of bench/profile_dump.c: the goroutine
// profile of N parked goroutines (default 100,000), written to memory with
// pprof.Lookup("goroutine").WriteTo at debug=1, debug=2 and debug=0.
//
//	profile_dump_d1, _d2, _d0   ms to write each (wall clock)
//	profile_dump_d1_cpu, ...    the process's CPU ms for the same
//	profile_dump_d2_mem         peak resident growth while debug=2 is
//	                            written, the text included, bytes
//	profile_dump_d2_stall       the longest wait of another goroutine for
//	                            its turn while debug=2 was written, ms
//
// The goroutines park in a chain of three functions on one channel; the
// writer samples /proc/self/statm at every Write, as the C side samples at
// every piece; a ticker goroutine calls runtime.Gosched in a loop and
// records the longest gap between its turns (GOMAXPROCS=1).
package main

import (
	"bufio"
	"flag"
	"fmt"
	"os"
	"runtime"
	"runtime/pprof"
	"syscall"
	"time"
)

var (
	quit    = make(chan int64)
	reached int64
	sink    int64
)

//go:noinline
func level3() {
	reached++
	<-quit
	sink++
}

//go:noinline
func level2() {
	level3()
	sink++
}

func level1() {
	level2()
	sink++
}

func rss() int64 {
	f, err := os.Open("/proc/self/statm")
	if err != nil {
		fmt.Fprintln(os.Stderr, "profile_dump:", err)
		os.Exit(1)
	}
	defer f.Close()
	var size, resident int64
	if _, err := fmt.Fscan(bufio.NewReader(f), &size, &resident); err != nil {
		fmt.Fprintln(os.Stderr, "profile_dump: /proc/self/statm:", err)
		os.Exit(1)
	}
	return resident * int64(os.Getpagesize())
}

func cpuMs() float64 {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return float64(ru.Utime.Nano()+ru.Stime.Nano()) / 1e6
}

type memWriter struct {
	buf  []byte
	peak int64
}

func (m *memWriter) Write(p []byte) (int, error) {
	m.buf = append(m.buf, p...)
	if r := rss(); r > m.peak {
		m.peak = r
	}
	return len(p), nil
}

var (
	ticking  = true
	lastTick time.Time
	maxGap   time.Duration
)

func ticker() {
	lastTick = time.Now()
	for ticking {
		now := time.Now()
		if g := now.Sub(lastTick); g > maxGap {
			maxGap = g
		}
		lastTick = now
		runtime.Gosched()
	}
}

func dump(debug int) (ms, cpu float64, mem int64, stall float64) {
	var m memWriter
	rss0 := rss()
	maxGap = 0
	lastTick = time.Now()
	c0 := cpuMs()
	t0 := time.Now()
	if err := pprof.Lookup("goroutine").WriteTo(&m, debug); err != nil {
		fmt.Fprintln(os.Stderr, "profile_dump:", err)
		os.Exit(1)
	}
	t1 := time.Now()
	cpu = cpuMs() - c0
	if g := t1.Sub(lastTick); g > maxGap {
		maxGap = g
	}
	return float64(t1.Sub(t0).Nanoseconds()) / 1e6, cpu, m.peak - rss0,
		float64(maxGap.Nanoseconds()) / 1e6
}

func main() {
	runtime.GOMAXPROCS(1)
	n := flag.Int("n", 100000, "goroutines")
	flag.Parse()
	for i := 0; i < *n; i++ {
		go level1()
	}
	for reached < int64(*n) {
		runtime.Gosched()
	}
	go ticker()
	dump(1)
	d1, c1, _, _ := dump(1)
	d2, c2, mem2, stall2 := dump(2)
	d0, c0, _, _ := dump(0)
	ticking = false
	fmt.Printf("profile_dump_d1 %.2f ms\n", d1)
	fmt.Printf("profile_dump_d2 %.2f ms\n", d2)
	fmt.Printf("profile_dump_d0 %.2f ms\n", d0)
	fmt.Printf("profile_dump_d1_cpu %.2f ms\n", c1)
	fmt.Printf("profile_dump_d2_cpu %.2f ms\n", c2)
	fmt.Printf("profile_dump_d0_cpu %.2f ms\n", c0)
	fmt.Printf("profile_dump_d2_mem %d bytes\n", mem2)
	fmt.Printf("profile_dump_d2_stall %.2f ms\n", stall2)
	os.Exit(0)
}
