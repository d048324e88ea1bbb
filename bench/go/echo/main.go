// echo — the Go twin of examples/echo.c, the server side of the echo
// benchmark: a TCP echo server, one goroutine per connection copying what
// it reads back to the client, on GOMAXPROCS=1 (or -procs). bench/echo_load
// drives both servers.
//
//	echo [-addr A] [-port P] [-seconds S] [-procs N]
//
// It prints "echo: listening on 127.0.0.1:PORT" first, like the C server,
// and shuts down on SIGINT/SIGTERM or after -seconds: the listener
// closes, every connection is closed, a WaitGroup waits for their
// goroutines, and a summary line is printed.
package main

import (
	"context"
	"flag"
	"fmt"
	"net"
	"os"
	"os/signal"
	"runtime"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

func main() {
	addr := flag.String("addr", "127.0.0.1", "address to listen on")
	port := flag.Int("port", 0, "port (0: pick one)")
	seconds := flag.Int("seconds", -1, "stop after this many seconds")
	procs := flag.Int("procs", 1, "GOMAXPROCS")
	flag.Parse()
	if flag.NArg() > 0 || *port < 0 || *port > 65535 || *procs < 1 {
		fmt.Fprintln(os.Stderr, "usage: echo [-addr A] [-port P] [-seconds S] [-procs N]")
		os.Exit(2)
	}
	runtime.GOMAXPROCS(*procs)

	ln, err := net.Listen("tcp4", net.JoinHostPort(*addr, strconv.Itoa(*port)))
	if err != nil {
		fmt.Fprintln(os.Stderr, "echo:", err)
		os.Exit(1)
	}
	fmt.Printf("echo: listening on %s\n", ln.Addr())

	ctx, stop := signal.NotifyContext(context.Background(),
		syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	if *seconds >= 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, time.Duration(*seconds)*time.Second)
		defer cancel()
	}

	var wg sync.WaitGroup
	var mu sync.Mutex
	conns := map[net.Conn]struct{}{}
	var served, bytes int64

	wg.Add(1)
	go func() { // the listener
		defer wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return // closed at shutdown
			}
			mu.Lock()
			conns[c] = struct{}{}
			mu.Unlock()
			served++
			wg.Add(1)
			go func() {
				defer wg.Done()
				buf := make([]byte, 16384)
				for {
					n, err := c.Read(buf)
					if n > 0 {
						w, _ := c.Write(buf[:n])
						atomic.AddInt64(&bytes, int64(w))
						if w != n {
							break
						}
					}
					if err != nil {
						break
					}
				}
				c.Close()
				mu.Lock()
				delete(conns, c)
				mu.Unlock()
			}()
		}
	}()

	<-ctx.Done()
	ln.Close()
	mu.Lock()
	for c := range conns {
		c.Close()
	}
	mu.Unlock()
	wg.Wait()
	fmt.Printf("echo: served %d connections, echoed %d bytes\n", served, bytes)
}
