// feed — the Go twin of bench/feed.c: a goroutine locked to its own OS
// thread sends N int64 values (default 200,000) into a channel; main,
// locked to another, receives them and checks their sum. GOMAXPROCS=2.
// Report ns per value, for an unbuffered channel (feed_unbuf) and one of
// capacity 64 (feed_buf64).
//
// Warm-up (both sides): one untimed run of N/100 values per channel kind,
// with its own channel and goroutine.
package main

import (
	"flag"
	"fmt"
	"os"
	"runtime"
	"time"
)

// -lock=false leaves the two goroutines to the scheduler, which may run
// them on one thread.
var lock = flag.Bool("lock", true, "lock each side to its own OS thread")

func feeder(c chan<- int64, n int64) {
	if *lock {
		runtime.LockOSThread()
	}
	for i := int64(0); i < n; i++ {
		c <- i
	}
	close(c)
}

func feed(n int64, capacity int) time.Duration {
	c := make(chan int64, capacity)
	t0 := time.Now()
	go feeder(c, n)
	var sum int64
	for v := range c {
		sum += v
	}
	elapsed := time.Since(t0)
	if sum != n*(n-1)/2 {
		fmt.Fprintln(os.Stderr, "feed: wrong sum", sum)
		os.Exit(1)
	}
	return elapsed
}

func main() {
	runtime.GOMAXPROCS(2)
	n := flag.Int64("n", 200000, "values")
	flag.Parse()
	if *lock {
		runtime.LockOSThread()
	}
	if *n < 1 || flag.NArg() > 0 {
		fmt.Fprintln(os.Stderr, "usage: feed [-n N] [-lock=false]")
		os.Exit(2)
	}
	per := func(d time.Duration) float64 {
		return float64(d.Nanoseconds()) / float64(*n)
	}
	feed(warmup(*n), 0)
	fmt.Printf("feed_unbuf %.1f ns/op\n", per(feed(*n, 0)))
	feed(warmup(*n), 64)
	fmt.Printf("feed_buf64 %.1f ns/op\n", per(feed(*n, 64)))
}

// warmup is one percent of n, at least one.
func warmup(n int64) int64 {
	if n/100 > 0 {
		return n / 100
	}
	return 1
}
