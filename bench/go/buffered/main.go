// buffered — the Go twin of bench/buffered.c: main sends 0..N-1 (default
// N = 10,000,000) into a chan int64 of capacity 128 and closes it; a
// consumer sums them and sends the sum back on an unbuffered channel.
// Report ns per item, from the first send until main has the sum.
//
// Warm-up (both sides): one untimed run of N/100 items, with its own
// channels and goroutine.
package main

import (
	"flag"
	"fmt"
	"os"
	"runtime"
	"time"
)

func consumer(items <-chan int64, result chan<- int64) {
	var sum int64
	for v := range items {
		sum += v
	}
	result <- sum
}

func buffered(n int64) time.Duration {
	items := make(chan int64, 128)
	result := make(chan int64)

	t0 := time.Now()
	go consumer(items, result)
	for i := int64(0); i < n; i++ {
		items <- i
	}
	close(items)
	sum := <-result
	elapsed := time.Since(t0)

	if sum != n*(n-1)/2 {
		fmt.Fprintln(os.Stderr, "buffered: wrong sum", sum)
		os.Exit(1)
	}
	return elapsed
}

func main() {
	runtime.GOMAXPROCS(1)
	n := flag.Int64("n", 10000000, "items")
	flag.Parse()
	if *n < 1 || flag.NArg() > 0 {
		fmt.Fprintln(os.Stderr, "usage: buffered [-n N]")
		os.Exit(2)
	}

	buffered(warmup(*n))
	elapsed := buffered(*n)

	fmt.Printf("buffered %.2f ns/item\n",
		float64(elapsed.Nanoseconds())/float64(*n))
}

// warmup is one percent of n, at least one.
func warmup(n int64) int64 {
	if n/100 > 0 {
		return n / 100
	}
	return 1
}
