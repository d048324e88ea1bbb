// select2 — the Go twin of bench/select2.c: each iteration sends i into a
// channel of capacity 1, then selects over receiving it and receiving
// from a channel nobody ever sends to. Report ns per iteration over N
// (default 10,000,000).
//
// Warm-up (both sides): N/100 untimed iterations first.
package main

import (
	"flag"
	"fmt"
	"os"
	"runtime"
	"time"
)

func select2(n int64) time.Duration {
	ch := make(chan int64, 1)
	never := make(chan int64)

	var sum int64
	t0 := time.Now()
	for i := int64(0); i < n; i++ {
		ch <- i
		select {
		case v := <-ch:
			sum += v
		case <-never:
			fmt.Fprintln(os.Stderr, "select2: select chose case 1")
			os.Exit(1)
		}
	}
	elapsed := time.Since(t0)

	if sum != n*(n-1)/2 {
		fmt.Fprintln(os.Stderr, "select2: wrong sum", sum)
		os.Exit(1)
	}
	return elapsed
}

func main() {
	runtime.GOMAXPROCS(1)
	n := flag.Int64("n", 10000000, "iterations")
	flag.Parse()
	if *n < 1 || flag.NArg() > 0 {
		fmt.Fprintln(os.Stderr, "usage: select2 [-n N]")
		os.Exit(2)
	}

	select2(warmup(*n))
	elapsed := select2(*n)

	fmt.Printf("select2 %.2f ns/op\n",
		float64(elapsed.Nanoseconds())/float64(*n))
}

// warmup is one percent of n, at least one.
func warmup(n int64) int64 {
	if n/100 > 0 {
		return n / 100
	}
	return 1
}
