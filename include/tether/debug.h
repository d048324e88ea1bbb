/* tether — the debug HTTP server: Go's net/http/pprof, on goroutines.
 *
 *   tt_debug_server *srv;
 *   tt_debug_serve("127.0.0.1:6060", NULL, &srv);
 *   ...
 *   tt_debug_shutdown(srv);
 *
 * serves, on goroutines of the calling thread's scheduler that park in its
 * poller (nothing blocks the thread):
 *
 *   /                               every goroutine grouped by stack, with
 *                                   counts, states, the oldest wait, names,
 *                                   marks (below), each group's frames and
 *                                   a flame graph of where goroutines are
 *                                   parked (HTML with inline SVG and one
 *                                   small inline script; nothing fetched),
 *                                   to a request whose Accept names
 *                                   text/html (a browser); to any other
 *                                   (curl) the grouped text profile,
 *                                   goroutine?debug=1, as Go programs
 *                                   serving pprof.Lookup on "/" do
 *   /?min_wait=D&since=ID           the page's marks, against snapshot ID
 *   /?diff=ID                       what changed since snapshot ID (HTML;
 *                                   to curl, the text below)
 *   /debug/pprof/goroutine?diff=ID  the same as text
 *   /debug/pprof/                   the index, with counts, as Go's
 *   /debug/pprof/goroutine?debug=N  tt_profile_write("goroutine", N):
 *                                   N=0 gzipped profile.proto (for go tool
 *                                   pprof), 1 grouped text, 2 every stack
 *   /debug/pprof/goroutineleak?debug=N   the same for proven leaks
 *   /debug/pprof/threadcreate?debug=N   tt_profile_write("threadcreate",
 *                                   N): live OS threads by the stack that
 *                                   created them (known with the preload)
 *   /debug/pprof/block?debug=N      tt_profile_write("block", N) and
 *   /debug/pprof/mutex?debug=N      ("mutex", N) (tether/profile.h);
 *                                   ?seconds=S (1 to 3600, without debug):
 *                                   Go's delta profile, what was recorded
 *                                   in the next S seconds, profile.proto
 *   /debug/pprof/cmdline            the arguments, NUL-separated (Go's)
 *   /metrics                        Prometheus's text format 0.0.4:
 *                                   go_goroutines, process_*, and
 *                                   tether_goroutines by state and wait
 *                                   reason, waits longer than 1m/10m/1h,
 *                                   proven leaks, switches, stacks,
 *                                   pthreads (with the preload), read from
 *                                   counters: no goroutine is visited
 *                                   (docs/GUIDE.md lists them)
 *
 * so `go tool pprof http://127.0.0.1:6060/debug/pprof/goroutine` and
 * `curl .../goroutine?debug=2` work as against a Go program. Every
 * thread's goroutines are shown, as tt_profile_write lists them
 * (tether/profile.h), and /metrics counts cover every thread.
 *
 * The page's marks. Each view of "/" is a snapshot, numbered from 1 and
 * shown on the page; the server keeps, for the last 8, each group's count
 * by stack and state (the largest 256 groups; a few KB each), and
 * compares a view with the previous one, or with ?since=ID. A group is
 * marked "growing" when it has more goroutines than then and at least as
 * many as it had then (one at least) have been parked longer than
 * ?min_wait= (a duration: "0", "90" seconds, "500ms", "30s", "5m", "1h";
 * default 1 minute), so a steady pool or one whose members come and go
 * faster than that is not; the server's own connections never are. A
 * group holding proven leaks (tt_leak_find's "proven") is marked "proven
 * leak". Marked groups come first: proven leaks, then the most grown,
 * then the rest by size. The flame graph zooms on a click and searches
 * by function name; the fragment #search=NAME&zoom=NAME does the same on
 * load. Without JavaScript the groups list and the plain graph remain.
 *
 * The diff as text (text/plain), one record per stack and state, most
 * grown first:
 *
 *   goroutine diff: since snapshot 3, 62.004 s ago: total 16 -> 3116 (+3100)
 *   <blank>
 *   +3100 (4 -> 3104) [chan send] @ 0x55d1c2a3797d 0x55d1c2a359ac
 *   #<TAB>0x55d1c2a3797c<TAB>tt_chan_send+0x12c<TAB>src/chan/chan.c:435
 *   #<TAB>...                   (the frames, as in debug=1)
 *   <blank>
 *   ...
 *   gone: 2 (5 goroutines)      (stack/state pairs then that are not here)
 *
 * where "(? -> N)" is a stack the snapshot then did not keep. An id not
 * kept (older than the last 8, or not yet taken), or a bad min_wait,
 * since or diff, is answered 400 with the reason. For go tool pprof, the
 * debug=0 profile diffs the same way: go tool pprof -base old.pb.gz
 * new.pb.gz.
 *
 * Addresses. "HOST:PORT" where HOST is an IPv4 literal, an IPv6 literal in
 * brackets ("[::1]:6060"), "localhost" (127.0.0.1) or empty (":6060" is
 * 127.0.0.1:6060); no name lookups. Port 0 picks a free port:
 * tt_debug_port() says which. Stack traces tell an attacker a lot, so the
 * server listens on loopback unless the address itself names another
 * interface ("0.0.0.0:6060" does, and then anyone who can reach that port
 * sees every stack: put it behind something that authenticates). A NULL
 * or empty address is an error, not a default.
 *
 * HTTP. HTTP/1.1 with keep-alive and pipelining, and HTTP/1.0 (closed
 * after each response unless the client asks for keep-alive). Only GET
 * and HEAD (405 with Allow otherwise); no request bodies (413); unknown
 * paths 404; a bad query (a malformed %-escape, debug= other than 0, 1 or
 * 2, a bad min_wait, since or diff) 400. Every limit below is enforced
 * per connection, and each goroutine of the server only ever parks, so
 * a malformed, oversized, slow or abandoned request costs one goroutine
 * for at most the time limit and never stalls the program's other
 * goroutines.
 *
 * Profiles and the page, however large, do not stall them either: they
 * are taken and written in slices of about 2 ms of work, and the other
 * goroutines of the thread run between slices (tt_profile_write in
 * profile.h says what the snapshot then guarantees). A million
 * goroutines take seconds to profile; the rest of the program goes on
 * meanwhile, slowed, not stopped. (The /debug/pprof/ index still counts
 * the goroutines in one pass, without yielding.)
 *
 * Goroutines. The server runs one goroutine that accepts ("tether/debug
 * accept") and one per open connection ("tether/debug conn"); they show
 * in stack dumps and in leak checks like any other, so end the server
 * with tt_debug_shutdown before checking for leaks. */
#ifndef TETHER_DEBUG_H
#define TETHER_DEBUG_H

#include "common.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct tt_debug_server tt_debug_server;

/* Limits. Zero-initialise, then set what you need; 0 means the default.
 * The three time limits are in nanoseconds; one too large to add to the
 * clock (INT64_MAX, say) means no limit at all. */
typedef struct tt_debug_opts {
	/* Bytes of request line and headers (default 8 KiB). A longer head
	 * is answered 431 and the connection closed. */
	size_t max_header_bytes;
	/* Header lines per request (default 64); more: 431. */
	unsigned max_headers;
	/* Connections open at once (default 64). One more is answered 503
	 * and closed at once, without a goroutine. */
	unsigned max_conns;
	/* Time a client has to send a whole request head, from its first
	 * byte (default 10 s). A slower one gets 408 and is closed. */
	int64_t read_timeout;
	/* Time a connection may wait for its next request (default 60 s; a
	 * new connection gets this long for its first byte). Then it is
	 * closed. */
	int64_t idle_timeout;
	/* Time a client has to accept each piece of a response (default
	 * 30 s): a client that stops reading is closed after this long, one
	 * that reads slowly is not. */
	int64_t write_timeout;
	/* Reserved; must be 0. */
	unsigned flags;
} tt_debug_opts;

/* Listen on addr and serve, on goroutines of the calling thread, until
 * tt_debug_shutdown. opts may be NULL (the defaults). out may be NULL when
 * the server is to run for the life of the program; otherwise it receives
 * the handle. Returns 0, or -EINVAL (NULL/empty/unparsable address, a
 * negative time limit, flags), -EADDRINUSE and other errors from
 * socket/bind/listen, -ENOMEM; tt_last_error() says what was wrong. */
TT_EXPORT int tt_debug_serve(const char *addr, const tt_debug_opts *opts,
			     tt_debug_server **out);

/* The port the server listens on (the chosen one for port 0). */
TT_EXPORT int tt_debug_port(const tt_debug_server *srv);

/* Stop: close the listener, cut every connection short (a response being
 * written is abandoned), wait until every goroutine the server started
 * has ended, and free srv. Call it from a goroutine of the thread that
 * started the server (it parks while the others finish). Returns 0, or
 * -EINVAL for a NULL srv. */
TT_EXPORT int tt_debug_shutdown(tt_debug_server *srv);

#ifdef __cplusplus
}
#endif
#endif
