// xselect — the Go twin of bench/xselect.c: xpingpong with every operation
// a select of two cases, across two OS threads (GOMAXPROCS=2, each side
// locked to its own OS thread). Report ns per round trip over N (default
// 200,000).
//
// Warm-up (both sides): one untimed run of N/100 round trips, with its own
// channels and goroutine.
package main

import (
	"flag"
	"fmt"
	"os"
	"runtime"
	"time"
)

var lock = flag.Bool("lock", true, "lock each side to its own OS thread")

func echo(ping <-chan int64, pong chan<- int64, quit <-chan struct{},
	done chan<- struct{}) {
	if *lock {
		runtime.LockOSThread()
	}
	defer close(done)
	for {
		var v int64
		select {
		case v = <-ping:
		case <-quit:
			return
		}
		select {
		case pong <- v:
		case <-quit:
			return
		}
	}
}

func xselect(n int64) time.Duration {
	ping := make(chan int64)
	pong := make(chan int64)
	quit := make(chan struct{})
	done := make(chan struct{})
	go echo(ping, pong, quit, done)

	var sum int64
	t0 := time.Now()
	for i := int64(0); i < n; i++ {
		select {
		case ping <- i:
		case <-done:
			fmt.Fprintln(os.Stderr, "xselect: echo ended")
			os.Exit(1)
		}
		select {
		case v := <-pong:
			sum += v
		case <-done:
			fmt.Fprintln(os.Stderr, "xselect: echo ended")
			os.Exit(1)
		}
	}
	elapsed := time.Since(t0)

	if sum != n*(n-1)/2 {
		fmt.Fprintln(os.Stderr, "xselect: wrong sum", sum)
		os.Exit(1)
	}
	close(quit)
	<-done
	return elapsed
}

func main() {
	runtime.GOMAXPROCS(2)
	n := flag.Int64("n", 200000, "round trips")
	flag.Parse()
	if *lock {
		runtime.LockOSThread()
	}
	if *n < 1 || flag.NArg() > 0 {
		fmt.Fprintln(os.Stderr, "usage: xselect [-n N] [-lock=false]")
		os.Exit(2)
	}

	xselect(warmup(*n))
	elapsed := xselect(*n)

	fmt.Printf("xselect %.1f ns/op\n",
		float64(elapsed.Nanoseconds())/float64(*n))
}

// warmup is one percent of n, at least one.
func warmup(n int64) int64 {
	if n/100 > 0 {
		return n / 100
	}
	return 1
}
