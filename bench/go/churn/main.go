// churn — the Go twin of bench/churn.c: start N goroutines (default
// 1,000,000) that each end at once, having only called wg.Done(); report
// ns per goroutine from the first spawn until wg.Wait() returns.
//
// Warm-up (both sides): one untimed round of N/10 goroutines first.
package main

import (
	"flag"
	"fmt"
	"os"
	"runtime"
	"sync"
	"time"
)

var wg sync.WaitGroup

func body() {
	wg.Done()
}

func churn(n int64) time.Duration {
	t0 := time.Now()
	wg.Add(int(n))
	for i := int64(0); i < n; i++ {
		go body()
	}
	wg.Wait()
	return time.Since(t0)
}

func main() {
	runtime.GOMAXPROCS(1)
	n := flag.Int64("n", 1000000, "goroutines to start")
	flag.Parse()
	if *n < 1 || flag.NArg() > 0 {
		fmt.Fprintln(os.Stderr, "usage: churn [-n N]")
		os.Exit(2)
	}

	warm := *n / 10
	if warm < 1 {
		warm = 1
	}
	churn(warm)
	elapsed := churn(*n)

	fmt.Printf("churn %.2f ns/goroutine\n",
		float64(elapsed.Nanoseconds())/float64(*n))
}
