// leak_verify — the Go twin of bench/leak_verify.c: N live goroutines
// (default 10,000) parked on a channel, all ignored; report ns per check,
// where a check is what goleak does on each try: runtime.Stack(buf, true)
// into a buffer that grows until it fits, every goroutine parsed out of
// it (id, state, first function, every function, creator), and the
// ignored ids filtered out.
package main

import (
	"bufio"
	"bytes"
	"flag"
	"fmt"
	"os"
	"runtime"
	"strconv"
	"strings"
	"time"
)

type stack struct {
	id        int
	state     string
	first     string
	createdBy string
	funcs     map[string]struct{}
	full      string
}

func dump() []byte {
	for size := 64 * 1024; ; size *= 2 {
		buf := make([]byte, size)
		if n := runtime.Stack(buf, true); n < size {
			return buf[:n]
		}
	}
}

func parse(b []byte) []stack {
	var out []stack
	sc := bufio.NewScanner(bytes.NewReader(b))
	sc.Buffer(make([]byte, 0, 64*1024), 1<<20)
	var cur *stack
	var full strings.Builder
	flush := func() {
		if cur != nil {
			cur.full = full.String()
			out = append(out, *cur)
		}
		full.Reset()
	}
	for sc.Scan() {
		line := sc.Text()
		if strings.HasPrefix(line, "goroutine ") {
			flush()
			parts := strings.SplitN(strings.TrimSuffix(line, ":"), " ", 3)
			id, _ := strconv.Atoi(parts[1])
			cur = &stack{id: id, funcs: map[string]struct{}{},
				state: strings.Trim(parts[2], "[]")}
			continue
		}
		if cur == nil {
			continue
		}
		full.WriteString(line)
		full.WriteByte('\n')
		if line == "" || line[0] == '\t' {
			continue
		}
		if strings.HasPrefix(line, "created by ") {
			after := strings.TrimPrefix(line, "created by ")
			if i := strings.Index(after, " in goroutine"); i >= 0 {
				after = after[:i]
			}
			cur.createdBy = after
			continue
		}
		name := line
		if i := strings.LastIndexByte(line, '('); i >= 0 {
			name = line[:i]
		}
		cur.funcs[name] = struct{}{}
		if cur.first == "" {
			cur.first = name
		}
	}
	flush()
	return out
}

func main() {
	runtime.GOMAXPROCS(1)
	n := flag.Int("n", 10000, "goroutines")
	flag.Parse()
	if *n < 1 || flag.NArg() > 0 {
		fmt.Fprintln(os.Stderr, "usage: leak_verify [-n N]")
		os.Exit(2)
	}
	c := make(chan struct{})
	for i := 0; i < *n; i++ {
		go func() { <-c }()
	}
	runtime.Gosched()
	ignore := map[int]bool{}
	for _, s := range parse(dump()) {
		ignore[s.id] = true
	}
	check := func() int {
		left := 0
		for _, s := range parse(dump()) {
			if !ignore[s.id] {
				left++
			}
		}
		return left
	}
	const reps = 20
	check()
	t0 := time.Now()
	for i := 0; i < reps; i++ {
		if left := check(); left > 0 {
			fmt.Fprintf(os.Stderr, "leak_verify: %d unexpected\n", left)
			os.Exit(1)
		}
	}
	elapsed := time.Since(t0)
	fmt.Printf("leak_verify %.0f ns/check\n",
		float64(elapsed.Nanoseconds())/reps)
	close(c)
}
