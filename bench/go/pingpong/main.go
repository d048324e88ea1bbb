// pingpong — the Go twin of bench/pingpong.c: two goroutines and two
// unbuffered channels of int64; one round trip is a send on ping, echoed
// back on pong. Report ns per round trip over N (default 1,000,000).
//
// Warm-up (both sides): one untimed run of N/100 round trips, with its own
// channels and goroutine.
//
// -blockrate R calls runtime.SetBlockProfileRate(R) before the warm-up
// (the twin of bench/pingpong.c's --block-rate R).
package main

import (
	"flag"
	"fmt"
	"os"
	"runtime"
	"time"
)

func echo(ping <-chan int64, pong chan<- int64) {
	for v := range ping {
		pong <- v
	}
}

func pingpong(n int64) time.Duration {
	ping := make(chan int64)
	pong := make(chan int64)
	go echo(ping, pong)

	var sum int64
	t0 := time.Now()
	for i := int64(0); i < n; i++ {
		ping <- i
		sum += <-pong
	}
	elapsed := time.Since(t0)

	if sum != n*(n-1)/2 {
		fmt.Fprintln(os.Stderr, "pingpong: wrong sum", sum)
		os.Exit(1)
	}
	close(ping)
	runtime.Gosched() // let echo see the close and end
	return elapsed
}

func main() {
	runtime.GOMAXPROCS(1)
	n := flag.Int64("n", 1000000, "round trips")
	rate := flag.Int("blockrate", 0, "runtime.SetBlockProfileRate")
	flag.Parse()
	runtime.SetBlockProfileRate(*rate)
	if *n < 1 || flag.NArg() > 0 {
		fmt.Fprintln(os.Stderr, "usage: pingpong [-n N] [-blockrate R]")
		os.Exit(2)
	}

	pingpong(warmup(*n))
	elapsed := pingpong(*n)

	fmt.Printf("pingpong %.1f ns/op\n",
		float64(elapsed.Nanoseconds())/float64(*n))
}

// warmup is one percent of n, at least one.
func warmup(n int64) int64 {
	if n/100 > 0 {
		return n / 100
	}
	return 1
}
