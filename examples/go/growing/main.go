// growing — the twin of examples/growing.c: a server whose goroutine
// count keeps growing. Every -every ms a request's handler asks a lookup
// goroutine for an answer and waits at most 100 ms; every third lookup
// takes 300 ms, the handler gives up, and the lookup blocks forever in
// `result <- v`. A pool of -workers idle workers waits for jobs that never
// come. With -fixed the result channel has room for the answer. (No
// signal.Notify: its watcher goroutine would count among the goroutines;
// Ctrl-C ends the program.)
package main

import (
	"flag"
	"fmt"
	"net"
	"net/http"
	_ "net/http/pprof"
	"os"
	"runtime"
	"sync"
	"sync/atomic"
	"time"
)

var timedOut atomic.Int64

func lookup(result chan<- int, slow bool) {
	if slow {
		time.Sleep(300 * time.Millisecond)
	}
	result <- 42 // blocks forever once nobody listens
}

func handle(id int, fixed bool) {
	size := 0
	if fixed {
		size = 1
	}
	result := make(chan int, size)
	go lookup(result, id%3 == 2)
	select {
	case <-result:
	case <-time.After(100 * time.Millisecond):
		timedOut.Add(1) // gives up: the lookup is on its own now
	}
}

func worker(jobs <-chan int) {
	for range jobs {
	}
}

func main() {
	requests := flag.Int("requests", 0, "requests (0: until -seconds)")
	every := flag.Int("every", 20, "ms between requests")
	workers := flag.Int("workers", 4, "idle workers")
	seconds := flag.Int("seconds", -1, "seconds to run (-1: until Ctrl-C)")
	port := flag.Int("port", 0, "debug server port (0: a free one)")
	fixed := flag.Bool("fixed", false, "the fixed version")
	flag.Parse()

	ln, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", *port))
	if err != nil {
		fmt.Fprintln(os.Stderr, "growing:", err)
		os.Exit(1)
	}
	go http.Serve(ln, nil)
	fmt.Printf("debug page: http://%s/debug/pprof/\n", ln.Addr())

	jobs := make(chan int)
	for i := 0; i < *workers; i++ {
		go worker(jobs)
	}
	var end <-chan time.Time
	if *seconds >= 0 {
		end = time.After(time.Duration(*seconds) * time.Second)
	}
	var wg sync.WaitGroup
	sent := 0
loop:
	for *requests == 0 || sent < *requests {
		if *requests == 0 {
			select {
			case <-end:
				break loop
			default:
			}
		}
		wg.Add(1)
		go func(id int) {
			defer wg.Done()
			handle(id, *fixed)
		}(sent)
		sent++
		time.Sleep(time.Duration(*every) * time.Millisecond)
	}
	wg.Wait()
	stuck := int(timedOut.Load())
	if *fixed {
		stuck = 0
	}
	// main, the workers, the HTTP server's accept loop, the stuck lookups
	want := 1 + *workers + 1 + stuck
	deadline := time.Now().Add(5 * time.Second)
	for runtime.NumGoroutine() != want && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	fmt.Printf("%d requests, %d timed out\n", sent, timedOut.Load())
	n := runtime.NumGoroutine()
	fmt.Printf("goroutines: %d (main, %d workers, the debug server, %d "+
		"lookups stuck sending)\n", n, *workers, n-2-*workers)
	if *requests > 0 && end != nil {
		<-end
	}
	ln.Close()
	close(jobs)
	fmt.Println("done")
}
