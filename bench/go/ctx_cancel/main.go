// ctx_cancel — the Go twin of bench/ctx_cancel.c: N goroutines (default
// 100,000) each wait in a select on one context's Done channel; report ns
// per goroutine from cancel() until every one of them has exited.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"runtime"
	"sync"
	"sync/atomic"
	"time"
)

func main() {
	runtime.GOMAXPROCS(1)
	n := flag.Int64("n", 100000, "goroutines")
	flag.Parse()
	if *n < 1 || flag.NArg() > 0 {
		fmt.Fprintln(os.Stderr, "usage: ctx_cancel [-n N]")
		os.Exit(2)
	}
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	var parked int64
	wg.Add(int(*n))
	for i := int64(0); i < *n; i++ {
		go func() {
			atomic.AddInt64(&parked, 1)
			select {
			case <-ctx.Done():
			}
			wg.Done()
		}()
	}
	for atomic.LoadInt64(&parked) < *n {
		runtime.Gosched()
	}
	t0 := time.Now()
	cancel()
	wg.Wait()
	elapsed := time.Since(t0)
	fmt.Printf("ctx_cancel %.2f ns/goroutine\n",
		float64(elapsed.Nanoseconds())/float64(*n))
}
