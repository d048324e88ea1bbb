// after_loop — the Go twin of bench/after_loop.c, and the seed's pitfall:
// each iteration fills a channel of capacity 1, then selects over
// receiving from it (always ready) and time.After(time.Minute). Every
// iteration leaves behind a timer (and its channel) that lives until it
// fires, a minute later.
//
//	after_loop      ns per iteration over N (default 1,000,000)
//	after_loop_rss  resident growth over the timed loop, in bytes
//	                (/proc/self/statm after minus before)
//
// Warm-up (both sides): N/100 untimed iterations before the "before"
// memory reading.
package main

import (
	"bufio"
	"flag"
	"fmt"
	"os"
	"runtime"
	"time"
)

func afterLoop(ch chan int64, n int64) time.Duration {
	var sum int64
	t0 := time.Now()
	for i := int64(0); i < n; i++ {
		ch <- i
		select {
		case v := <-ch:
			sum += v
		case <-time.After(time.Minute):
			fmt.Fprintln(os.Stderr, "after_loop: select chose case 1")
			os.Exit(1)
		}
	}
	elapsed := time.Since(t0)

	if sum != n*(n-1)/2 {
		fmt.Fprintln(os.Stderr, "after_loop: wrong sum", sum)
		os.Exit(1)
	}
	return elapsed
}

// rss returns this process's resident bytes from /proc/self/statm.
func rss() int64 {
	f, err := os.Open("/proc/self/statm")
	if err != nil {
		fmt.Fprintln(os.Stderr, "after_loop:", err)
		os.Exit(1)
	}
	defer f.Close()
	var size, resident int64
	if _, err := fmt.Fscan(bufio.NewReader(f), &size, &resident); err != nil {
		fmt.Fprintln(os.Stderr, "after_loop: /proc/self/statm:", err)
		os.Exit(1)
	}
	return resident * int64(os.Getpagesize())
}

func main() {
	runtime.GOMAXPROCS(1)
	n := flag.Int64("n", 1000000, "iterations")
	flag.Parse()
	if *n < 1 || flag.NArg() > 0 {
		fmt.Fprintln(os.Stderr, "usage: after_loop [-n N]")
		os.Exit(2)
	}

	ch := make(chan int64, 1)
	warm := *n / 100
	if warm < 1 {
		warm = 1
	}
	afterLoop(ch, warm)
	rss0 := rss()
	elapsed := afterLoop(ch, *n)
	rss1 := rss()

	fmt.Printf("after_loop %.1f ns/op\n",
		float64(elapsed.Nanoseconds())/float64(*n))
	fmt.Printf("after_loop_rss %d bytes-growth\n", rss1-rss0)
}
