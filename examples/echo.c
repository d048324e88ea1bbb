/* echo — a TCP echo server on one thread: descriptor I/O that parks
 * goroutines, and a Go-style graceful shutdown.
 *
 * tt_listen opens the listener, as Go's net.Listen does. One goroutine
 * accepts; each connection gets a goroutine of its own that reads and
 * writes back what it read, as Go's io.Copy(conn, conn) does. Every
 * blocking call parks the goroutine, never the thread, so thousands of
 * connections are served by one OS thread.
 *
 * Shutdown is a context. SIGINT or SIGTERM (signal.NotifyContext:
 * tt_ctx_notify_signals) or the end of --seconds cancels it; the listener and
 * every connection wait through the context's forms of accept, read and
 * write, so each sees the cancellation, closes its descriptor and ends; a
 * WaitGroup tells main when all have, and it prints one summary line.
 *
 *   build/examples/echo [--addr A] [--port P] [--max-conns N] [--seconds S]
 *
 * --port 0 (the default) picks a free port. The first line on stdout
 * says where it listens ("echo: listening on 127.0.0.1:PORT"). At most
 * --max-conns connections (default 10000) are served at once; further
 * clients wait in the listen queue, as with Go's netutil.LimitListener. */
#include <errno.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <tether.h>

/* Shared by all the server's goroutines. With TETHER_PROCS above 1 the
 * connections may run on several threads at once: the byte count is an
 * atomic (as it would be in Go); conns is the accept loop's alone. */
static struct server {
	tt_ctx *ctx;       /* cancelled to shut everything down */
	tt_waitgroup *wg;  /* the listener and the connections */
	tt_chan *slots;    /* chan struct{}, cap --max-conns: a semaphore */
	int lfd;           /* the listening socket */
	long conns;        /* connections served */
	_Atomic long long bytes; /* bytes echoed */
} srv;

/* ---- connections --------------------------------------------------------- */

/* go serve(conn): a goroutine per connection, its descriptor as arg. */
static void serve(void *arg)
{
	int fd = (int)(intptr_t)arg;
	char buf[16384];
	for (;;) {
		/* Returns what one read(2) gave, 0 at end of stream, or the
		 * context's error once the server shuts down. */
		ssize_t n = tt_read_ctx(srv.ctx, fd, buf, sizeof buf);
		if (n <= 0)
			break;
		ssize_t w = tt_write_ctx(srv.ctx, fd, buf, (size_t)n);
		if (w > 0)
			atomic_fetch_add_explicit(&srv.bytes, w,
						  memory_order_relaxed);
		if (w != n)
			break; /* the peer went away, or shutdown */
	}
	tt_close(fd);
	(void)!tt_recv_discard(srv.slots, NULL); /* free our slot */
}

static void listen_loop(void *arg)
{
	(void)arg;
	/* Take a slot before each accept: at --max-conns this parks until a
	 * connection ends. Both calls give up when the context is done. */
	while (tt_chan_send_ctx(srv.ctx, srv.slots, NULL, 0) == 0) {
		int fd = tt_accept_ctx(srv.ctx, srv.lfd, NULL, NULL);
		/* wg.Go(serve(conn)) */
		if (fd >= 0 &&
		    tt_wg_go(srv.wg, serve, (void *)(intptr_t)fd) >= 0) {
			srv.conns++;
			continue;
		}
		(void)!tt_recv_discard(srv.slots, NULL); /* give it back */
		if (fd < 0 && tt_ctx_err(srv.ctx))
			break; /* shutting down */
		fprintf(stderr, "echo: %s\n", tt_last_error());
		if (fd >= 0)
			tt_close(fd);
		/* Out of descriptors or memory: back off a little, and keep
		 * serving the connections we have. */
		tt_sleep_ctx(srv.ctx, 10 * TT_MILLISECOND);
	}
	tt_close(srv.lfd);
}

/* ---- setup --------------------------------------------------------------- */

static int usage(const char *why, const char *arg)
{
	if (why)
		fprintf(stderr, "echo: %s%s%s\n", why, arg ? " " : "",
			arg ? arg : "");
	fprintf(stderr, "usage: echo [--addr A] [--port P] [--max-conns N] "
			"[--seconds S]\n");
	return 2;
}

static int parse_long(const char *v, long min, long max, long *out)
{
	char *end;
	errno = 0;
	long n = v ? strtol(v, &end, 10) : 0;
	if (!v || !*v || errno || *end || n < min || n > max)
		return -1;
	*out = n;
	return 0;
}

int main(int argc, char **argv)
{
	const char *addr = "127.0.0.1";
	long port = 0, max_conns = 10000, seconds = -1;
	/* Every flag takes a value. */
	for (int i = 1; i < argc; i += 2) {
		const char *a = argv[i];
		const char *v = i + 1 < argc ? argv[i + 1] : NULL;
		if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
			usage(NULL, NULL);
			return 0;
		} else if (strcmp(a, "--addr") == 0) {
			if (!v)
				return usage("--addr needs an address", NULL);
			addr = v;
		} else if (strcmp(a, "--port") == 0) {
			if (parse_long(v, 0, 65535, &port))
				return usage("--port needs a number from 0 to "
					     "65535, got",
					     v ? v : "nothing");
		} else if (strcmp(a, "--max-conns") == 0) {
			if (parse_long(v, 1, 1000000, &max_conns))
				return usage("--max-conns needs a number from "
					     "1 to 1000000, got",
					     v ? v : "nothing");
		} else if (strcmp(a, "--seconds") == 0) {
			if (parse_long(v, 0, 1000000000, &seconds))
				return usage("--seconds needs a number from 0 "
					     "to 1000000000, got",
					     v ? v : "nothing");
		} else {
			return usage("unknown argument", a);
		}
	}

	/* ln, err := net.Listen("tcp4", net.JoinHostPort(addr, port)) */
	char where[TT_ADDR_MAX];
	snprintf(where, sizeof where, strchr(addr, ':') ? "[%.64s]:%ld"
							: "%.64s:%ld",
		 addr, port);
	if ((srv.lfd = tt_listen("tcp4", where)) < 0 ||
	    tt_local_addr(srv.lfd, where, sizeof where) < 0) {
		fprintf(stderr, "echo: %s\n", tt_last_error());
		return 1;
	}
	signal(SIGPIPE, SIG_IGN); /* a write to a closed peer is an error */
	/* ctx, stop := signal.NotifyContext(ctx, SIGINT, SIGTERM), and
	 * context.WithTimeout for --seconds */
	static const int sigs[] = {SIGINT, SIGTERM};
	tt_ctx *sig_ctx;
	int r = tt_ctx_notify_signals(&sig_ctx, tt_ctx_background(), sigs, 2);
	srv.ctx = sig_ctx;
	if (r == 0 && seconds >= 0)
		r = tt_ctx_with_timeout(&srv.ctx, sig_ctx, seconds * TT_SECOND);
	if (r || (r = tt_wg_make(&srv.wg)) ||
	    (r = tt_chan_make(&srv.slots, 0, max_conns))) {
		fprintf(stderr, "echo: %s\n", tt_last_error());
		return 1;
	}
	printf("echo: listening on %s\n", where);
	fflush(stdout);

	if (tt_wg_go(srv.wg, listen_loop, NULL) < 0) {
		fprintf(stderr, "echo: %s\n", tt_last_error());
		return 1;
	}
	if (tt_wg_wait(srv.wg) != 0) { /* everything has shut down */
		fprintf(stderr, "echo: %s\n", tt_last_error());
		return 1;
	}

	printf("echo: served %ld connections, echoed %lld bytes\n", srv.conns,
	       atomic_load(&srv.bytes));
	tt_chan_release(srv.slots);
	tt_wg_release(srv.wg);
	if (srv.ctx != sig_ctx) {
		tt_ctx_cancel(srv.ctx);
		tt_ctx_release(srv.ctx);
	}
	tt_ctx_cancel(sig_ctx); /* stop() */
	tt_ctx_release(sig_ctx);
	return 0;
}
