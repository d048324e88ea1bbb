// profile_threads — the Go twin of bench/profile_threads.c: with N
// goroutines parked (default 1,000,000) at GOMAXPROCS=2, the time of
// pprof.Lookup("goroutine").WriteTo(buf, 1), and the longest two ticking
// goroutines were kept waiting meanwhile (beyond their 1 ms sleep). A
// warm-up write comes first.
package main

import (
	"bytes"
	"flag"
	"fmt"
	"os"
	"runtime"
	"runtime/pprof"
	"strings"
	"sync/atomic"
	"time"
)

//go:noinline
func parked(block chan int) {
	<-block
}

var measuring atomic.Bool
var maxGap atomic.Int64

func ticker() {
	last := time.Now()
	for {
		time.Sleep(time.Millisecond)
		now := time.Now()
		g := int64(now.Sub(last) - time.Millisecond)
		if measuring.Load() && g > maxGap.Load() {
			maxGap.Store(g)
		}
		last = now
	}
}

func main() {
	runtime.GOMAXPROCS(2)
	n := flag.Int64("n", 1000000, "goroutines")
	flag.Parse()
	if *n < 1 || flag.NArg() > 0 {
		fmt.Fprintln(os.Stderr, "usage: profile_threads [-n N]")
		os.Exit(2)
	}
	block := make(chan int)
	for i := int64(0); i < *n; i++ {
		go parked(block)
	}
	go ticker()
	go ticker()
	time.Sleep(10 * time.Millisecond)

	var buf bytes.Buffer
	p := pprof.Lookup("goroutine")
	if err := p.WriteTo(&buf, 1); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	if !strings.Contains(buf.String(), fmt.Sprintf("\n%d @ 0x", *n)) {
		fmt.Fprintln(os.Stderr, "profile_threads: no record of", *n)
		os.Exit(1)
	}
	buf.Reset()
	time.Sleep(10 * time.Millisecond)
	measuring.Store(true)
	t0 := time.Now()
	if err := p.WriteTo(&buf, 1); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	took := time.Since(t0)
	time.Sleep(5 * time.Millisecond)
	measuring.Store(false)
	fmt.Printf("profile_threads_d1 %.2f ms\n", float64(took.Nanoseconds())/1e6)
	fmt.Printf("profile_threads_stall %.2f ms\n", float64(maxGap.Load())/1e6)
	os.Exit(0)
}
