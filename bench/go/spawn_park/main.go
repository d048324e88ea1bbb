// spawn_park — the Go twin of bench/spawn_park.c, and the seed's
// massiveGoroutine: start N goroutines (default 1,000,000), each blocked
// forever receiving from one unbuffered channel that nobody sends to.
//
//	spawn_park      ns from the first spawn until every goroutine is
//	                parked, per goroutine
//	spawn_park_rss  resident growth (/proc/self/statm after minus before)
//	                per goroutine
//
// Each goroutine counts itself (an atomic add) just before its receive,
// and main yields until all N have, as the C twin does. With GOMAXPROCS=1
// main runs again only once the others have parked. No warm-up (see the C
// side). The program exits with the goroutines still parked.
package main

import (
	"bufio"
	"flag"
	"fmt"
	"os"
	"runtime"
	"sync/atomic"
	"time"
)

var (
	quit    = make(chan int64) // nobody ever sends
	reached int64              // goroutines that got to their receive
)

// The seed's f(): block on a channel that never delivers.
func parked() {
	atomic.AddInt64(&reached, 1)
	<-quit
}

// rss returns this process's resident bytes from /proc/self/statm.
func rss() int64 {
	f, err := os.Open("/proc/self/statm")
	if err != nil {
		fmt.Fprintln(os.Stderr, "spawn_park:", err)
		os.Exit(1)
	}
	defer f.Close()
	var size, resident int64
	if _, err := fmt.Fscan(bufio.NewReader(f), &size, &resident); err != nil {
		fmt.Fprintln(os.Stderr, "spawn_park: /proc/self/statm:", err)
		os.Exit(1)
	}
	return resident * int64(os.Getpagesize())
}

func main() {
	runtime.GOMAXPROCS(1)
	n := flag.Int64("n", 1000000, "goroutines to start")
	flag.Parse()
	if *n < 1 || flag.NArg() > 0 {
		fmt.Fprintln(os.Stderr, "usage: spawn_park [-n N]")
		os.Exit(2)
	}

	rss0 := rss()
	t0 := time.Now()
	for i := int64(0); i < *n; i++ {
		go parked()
	}
	for atomic.LoadInt64(&reached) < *n {
		runtime.Gosched()
	}
	elapsed := time.Since(t0)
	rss1 := rss()

	fmt.Printf("spawn_park %.1f ns/goroutine\n",
		float64(elapsed.Nanoseconds())/float64(*n))
	fmt.Printf("spawn_park_rss %.0f bytes/goroutine\n",
		float64(rss1-rss0)/float64(*n))
	os.Exit(0)
}
