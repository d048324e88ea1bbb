// xpingpong — the Go twin of bench/xpingpong.c: pingpong across two OS
// threads. At GOMAXPROCS=2, main and the echoing goroutine each lock
// themselves to an OS thread, so the two never share one. One round trip
// is a send on ping, echoed back on pong. Report ns per round trip over N
// (default 200,000).
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

// -lock=false leaves the two goroutines to the scheduler, which may run
// them on one thread.
var lock = flag.Bool("lock", true, "lock each side to its own OS thread")

func echo(ping <-chan int64, pong chan<- int64, done chan<- struct{}) {
	if *lock {
		runtime.LockOSThread()
	}
	for v := range ping {
		pong <- v
	}
	close(done)
}

func xpingpong(n int64) time.Duration {
	ping := make(chan int64)
	pong := make(chan int64)
	done := make(chan struct{})
	go echo(ping, pong, done)

	var sum int64
	t0 := time.Now()
	for i := int64(0); i < n; i++ {
		ping <- i
		sum += <-pong
	}
	elapsed := time.Since(t0)

	if sum != n*(n-1)/2 {
		fmt.Fprintln(os.Stderr, "xpingpong: wrong sum", sum)
		os.Exit(1)
	}
	close(ping)
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
		fmt.Fprintln(os.Stderr, "usage: xpingpong [-n N] [-lock=false]")
		os.Exit(2)
	}

	xpingpong(warmup(*n))
	elapsed := xpingpong(*n)

	fmt.Printf("xpingpong %.1f ns/op\n",
		float64(elapsed.Nanoseconds())/float64(*n))
}

// warmup is one percent of n, at least one.
func warmup(n int64) int64 {
	if n/100 > 0 {
		return n / 100
	}
	return 1
}
