// http_profile — the Go twin of bench/http_profile.c: an HTTP GET of
// /debug/pprof/goroutine?debug=1 with N parked goroutines (default
// 100,000), served by net/http/pprof and fetched by a client in the same
// program over loopback, with GOMAXPROCS=1.
//
//	http_profile        seconds from sending the request to the end of
//	                    the response (the best of 5 GETs)
//	http_profile_stall  the longest a 1 ms sleeper waited beyond its
//	                    deadline during those GETs
package main

import (
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	_ "net/http/pprof"
	"os"
	"runtime"
	"time"
)

func fail(what string, err error) {
	fmt.Fprintf(os.Stderr, "http_profile: %s: %v\n", what, err)
	os.Exit(1)
}

func getOnce(url string) {
	req, err := http.NewRequest("GET", url, nil)
	if err != nil {
		fail("request", err)
	}
	req.Close = true
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		fail("GET", err)
	}
	if resp.StatusCode != 200 {
		fail("GET", fmt.Errorf("status %d", resp.StatusCode))
	}
	if _, err := io.Copy(io.Discard, resp.Body); err != nil {
		fail("read", err)
	}
	resp.Body.Close()
}

func main() {
	runtime.GOMAXPROCS(1)
	n := flag.Int64("n", 100000, "parked goroutines")
	flag.Parse()
	quit := make(chan int64)
	for i := int64(0); i < *n; i++ {
		go func() { <-quit }()
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		fail("listen", err)
	}
	go http.Serve(ln, nil)
	url := "http://" + ln.Addr().String() + "/debug/pprof/goroutine?debug=1"

	getOnce(url) // warm-up
	stop := make(chan struct{})
	done := make(chan time.Duration)
	go func() {
		var worst time.Duration
		for {
			select {
			case <-stop:
				done <- worst
				return
			default:
			}
			want := time.Now().Add(time.Millisecond)
			time.Sleep(time.Millisecond)
			if late := time.Since(want); late > worst {
				worst = late
			}
		}
	}()
	best := time.Duration(1<<63 - 1)
	for i := 0; i < 5; i++ {
		t0 := time.Now()
		getOnce(url)
		if dt := time.Since(t0); dt < best {
			best = dt
		}
	}
	close(stop)
	worst := <-done
	fmt.Printf("http_profile %.4f s\n", best.Seconds())
	fmt.Printf("http_profile_stall %.2f ms\n", float64(worst)/float64(time.Millisecond))
	os.Exit(0)
}
