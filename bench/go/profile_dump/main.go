// profile_dump — the Go twin of bench/profile_dump.c: N goroutines parked
// in a receive under three call chains; the time to write the goroutine
// profile at debug=0, 1 and 2 into a bytes.Buffer, the peak resident
// growth of one more debug=2 write into io.Discard (VmHWM after resetting
// it through /proc/self/clear_refs) and the longest a ticking goroutine waited while
// the dumps ran; then GETs of debug=1 (its time and stall), 2 and 0 through
// net/http/pprof, and the worst stall of the three.
package main

import (
	"bufio"
	"bytes"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	_ "net/http/pprof"
	"os"
	"runtime"
	"runtime/pprof"
	"strings"
	"time"
)

var block = make(chan int)

//go:noinline
func leaf() { <-block }

//go:noinline
func middle() { leaf() }

func workerA() { leaf() }
func workerB() { middle() }
func workerC() { middle(); runtime.KeepAlive(0) }

func statmRSS() int64 {
	f, err := os.Open("/proc/self/statm")
	if err != nil {
		return 0
	}
	defer f.Close()
	var size, res int64
	fmt.Fscan(f, &size, &res)
	return res * int64(os.Getpagesize())
}

func vmHWM() int64 {
	f, err := os.Open("/proc/self/status")
	if err != nil {
		return 0
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if strings.HasPrefix(sc.Text(), "VmHWM:") {
			var kb int64
			fmt.Sscanf(strings.TrimPrefix(sc.Text(), "VmHWM:"), "%d", &kb)
			return kb * 1024
		}
	}
	return 0
}

// httpGet fetches url whole (Connection: close); ms taken.
func httpGet(url string) float64 {
	t0 := time.Now()
	req, err := http.NewRequest("GET", url, nil)
	if err != nil {
		fmt.Fprintln(os.Stderr, "profile_dump:", err)
		os.Exit(1)
	}
	req.Close = true
	resp, err := http.DefaultClient.Do(req)
	if err != nil || resp.StatusCode != 200 {
		fmt.Fprintln(os.Stderr, "profile_dump: GET:", err)
		os.Exit(1)
	}
	if _, err := io.Copy(io.Discard, resp.Body); err != nil {
		fmt.Fprintln(os.Stderr, "profile_dump: GET:", err)
		os.Exit(1)
	}
	resp.Body.Close()
	return float64(time.Since(t0).Nanoseconds()) / 1e6
}

func main() {
	runtime.GOMAXPROCS(1)
	n := flag.Int("n", 100000, "goroutines")
	flag.Parse()
	if *n < 1 || flag.NArg() > 0 {
		fmt.Fprintln(os.Stderr, "usage: profile_dump [-n N]")
		os.Exit(2)
	}
	fns := []func(){workerA, workerB, workerC}
	for i := 0; i < *n; i++ {
		go fns[i%3]()
	}
	ticking := true
	var maxGap time.Duration
	go func() {
		last := time.Now()
		for ticking {
			time.Sleep(time.Millisecond)
			now := time.Now()
			if g := now.Sub(last) - time.Millisecond; g > maxGap {
				maxGap = g
			}
			last = now
		}
	}()
	time.Sleep(5 * time.Millisecond)
	maxGap = 0
	var ms [3]float64
	var rss int64
	for d := 2; d >= 0; d-- {
		var buf bytes.Buffer
		t0 := time.Now()
		if err := pprof.Lookup("goroutine").WriteTo(&buf, d); err != nil {
			fmt.Fprintln(os.Stderr, "profile_dump:", err)
			os.Exit(1)
		}
		el := time.Since(t0)
		ms[d] = float64(el.Nanoseconds()) / 1e6
		time.Sleep(2 * time.Millisecond)
	}
	// The dump's own memory: debug=2 again into io.Discard.
	runtime.GC()
	os.WriteFile("/proc/self/clear_refs", []byte("5"), 0)
	rss = statmRSS()
	if err := pprof.Lookup("goroutine").WriteTo(io.Discard, 2); err != nil {
		fmt.Fprintln(os.Stderr, "profile_dump:", err)
		os.Exit(1)
	}
	rss = vmHWM() - rss
	stall := maxGap

	// The same profile at debug=1 through net/http/pprof.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		fmt.Fprintln(os.Stderr, "profile_dump:", err)
		os.Exit(1)
	}
	go http.Serve(ln, nil)
	url := "http://" + ln.Addr().String() + "/debug/pprof/goroutine?debug=1"
	httpGet(url) // warm-up
	maxGap = 0
	httpMs := httpGet(url)
	httpStall := maxGap
	// debug=2 and debug=0 as well: the worst stall of the three.
	stallAll := httpStall
	for _, q := range []string{"2", "0"} {
		maxGap = 0
		httpGet("http://" + ln.Addr().String() + "/debug/pprof/goroutine?debug=" + q)
		if maxGap > stallAll {
			stallAll = maxGap
		}
	}
	ticking = false
	fmt.Printf("profile_dump_d0 %.2f ms\n", ms[0])
	fmt.Printf("profile_dump_d1 %.2f ms\n", ms[1])
	fmt.Printf("profile_dump_d2 %.2f ms\n", ms[2])
	fmt.Printf("profile_dump_d2_rss %d bytes\n", rss)
	fmt.Printf("profile_dump_stall %.2f ms\n", float64(stall.Nanoseconds())/1e6)
	fmt.Printf("profile_dump_http_d1 %.2f ms\n", httpMs)
	fmt.Printf("profile_dump_http_stall %.2f ms\n", float64(httpStall.Nanoseconds())/1e6)
	fmt.Printf("profile_dump_http_stall_all %.2f ms\n", float64(stallAll.Nanoseconds())/1e6)
}
