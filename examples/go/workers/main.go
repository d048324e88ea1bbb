// workers — the twin of examples/workers.c: a pool of workers reading jobs
// from a channel, a timeout per request, a WaitGroup shutdown and a debug
// server. Job i takes (i % 4) * 10 ms and has 25 ms.
package main

import (
	"context"
	"flag"
	"fmt"
	"net"
	"net/http"
	_ "net/http/pprof"
	"os"
	"runtime"
	"sync"
	"time"
)

type job struct {
	id   int
	cost time.Duration
}

type result struct {
	id  int
	err error
}

func handle(j job) error {
	ctx, cancel := context.WithTimeout(context.Background(), 25*time.Millisecond)
	defer cancel()
	select {
	case <-time.After(j.cost): // the work
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

func worker(jobs <-chan job, results chan<- result) {
	for j := range jobs {
		results <- result{j.id, handle(j)}
	}
}

func main() {
	njobs := flag.Int("jobs", 12, "jobs")
	nworkers := flag.Int("workers", 4, "workers")
	flag.Parse()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil || *njobs < 0 || *nworkers < 1 {
		fmt.Fprintln(os.Stderr, "workers: bad flags or", err)
		os.Exit(1)
	}
	srv := &http.Server{}
	go srv.Serve(ln)
	fmt.Printf("debug server on %s\n", ln.Addr())

	jobs := make(chan job)
	results := make(chan result)
	var wg sync.WaitGroup
	for i := 0; i < *nworkers; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			worker(jobs, results)
		}()
	}
	go func() {
		wg.Wait()
		close(results)
	}()

	done, timedOut, received := 0, 0, 0
	count := func(r result) {
		received++
		if r.err != nil {
			timedOut++
		} else {
			done++
		}
	}
	for i := 0; i < *njobs; i++ {
		j := job{i, time.Duration(i%4) * 10 * time.Millisecond}
	send:
		for {
			select {
			case jobs <- j:
				break send
			case r := <-results:
				count(r)
			}
		}
	}
	close(jobs)
	for r := range results {
		count(r)
	}
	fmt.Printf("%d jobs, %d done, %d timed out\n", received, done, timedOut)
	srv.Close()
	time.Sleep(10 * time.Millisecond) // let the server's goroutines end
	fmt.Printf("goroutines left: %d\n", runtime.NumGoroutine())
}
