/* massive — massiveGoroutine.go, the demo of the article tether started
 * from (docs/ORIGIN.md), in C.
 *
 * Starts --count goroutines (default 1,000,000), each blocked forever
 * receiving from an unbuffered channel that nobody sends to: a million
 * leaked goroutines. Prints how long starting them took, how many are
 * alive, and the resident memory each costs, then waits for Ctrl-C (or
 * --seconds N) so the leak can be looked at, as the article does, over HTTP
 * on 127.0.0.1:--port (default 11181; 0 picks a free port):
 *
 *   http://127.0.0.1:11181/                 the goroutines grouped by stack:
 *                                           to curl the article's text
 *                                           profile, to a browser a page
 *                                           with a flame graph
 *   http://127.0.0.1:11181/debug/pprof/     the pprof tree: goroutine?debug=1
 *                                           is the article's grouped profile,
 *                                           go tool pprof reads goroutine
 *
 *   build/examples/massive [--count N] [--seconds N] [--port N]
 *                          [--shared-stack]
 *
 * --shared-stack runs them on the shared stack (tt_go_attr.shared_stack):
 * a parked one then keeps only its record and a copy of its few frames.
 */
#include <errno.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <tether.h>

static volatile sig_atomic_t interrupted;

static void on_sigint(int sig)
{
	(void)sig;
	interrupted = 1;
}

/* Goroutines that have begun to run. */
static _Atomic long running;

/* Go's f(): block on a channel that never delivers. */
static void f(void *arg)
{
	tt_chan *quit = arg;
	atomic_fetch_add_explicit(&running, 1, memory_order_relaxed);
	int v;
	if (tt_recv(quit, &v, NULL) != 0) /* never returns: nobody sends */
		return;
}

static long resident_bytes(void)
{
	long pages = 0, rss = 0;
	FILE *fp = fopen("/proc/self/statm", "r");
	if (fp) {
		if (fscanf(fp, "%ld %ld", &pages, &rss) != 2)
			rss = 0;
		fclose(fp);
	}
	return rss * sysconf(_SC_PAGESIZE);
}

static int parse_count(const char *flag, const char *v, long max, long *out)
{
	char *end;
	errno = 0;
	long n = v ? strtol(v, &end, 10) : 0;
	if (!v || errno || *end || n < 0 || n > max) {
		fprintf(stderr, "massive: %s needs a number from 0 to %ld, "
				"got %s\n",
			flag, max, v ? v : "nothing");
		return -1;
	}
	*out = n;
	return 0;
}

int main(int argc, char **argv)
{
	long count = 1000000, seconds = -1, port = 11181;
	tt_go_attr attr = {0};
	for (int i = 1; i < argc; i++) {
		const char *a = argv[i];
		if (strcmp(a, "--count") == 0) {
			if (parse_count(a, i + 1 < argc ? argv[++i] : NULL,
					100000000, &count))
				return 2;
		} else if (strcmp(a, "--seconds") == 0) {
			if (parse_count(a, i + 1 < argc ? argv[++i] : NULL,
					1000000000, &seconds))
				return 2;
		} else if (strcmp(a, "--port") == 0) {
			if (parse_count(a, i + 1 < argc ? argv[++i] : NULL,
					65535, &port))
				return 2;
		} else if (strcmp(a, "--shared-stack") == 0) {
			attr.shared_stack = true;
		} else if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
			printf("usage: massive [--count N] [--seconds N] "
			       "[--port N] [--shared-stack]\n");
			return 0;
		} else {
			fprintf(stderr, "massive: unknown argument %s "
					"(try --help)\n",
				a);
			return 2;
		}
	}

	tt_chan *quit;
	int r = tt_chan_make(&quit, sizeof(int), 0);
	if (r) {
		fprintf(stderr, "massive: %s\n", tt_last_error());
		return 1;
	}
	long rss0 = resident_bytes();
	int64_t t0 = tt_now();
	for (long i = 0; i < count; i++) {
		int64_t id = tt_go_with(&attr, f, quit);
		if (id < 0) {
			fprintf(stderr,
				"massive: goroutine %ld of %ld did not start: "
				"%s\n",
				i + 1, count, tt_last_error());
			return 1;
		}
	}
	/* With more than one P, tt_go may queue a goroutine to start on
	 * whichever P gets to it first: wait until all have begun (and so
	 * have their stacks), parking meanwhile so that this P makes its
	 * share. */
	while (atomic_load_explicit(&running, memory_order_relaxed) < count)
		tt_sleep(TT_MILLISECOND / 10);
	double secs = (double)(tt_now() - t0) / TT_SECOND;
	long rss1 = resident_bytes();

	printf("started %ld goroutines in %.3f s (%.0f ns each)\n", count,
	       secs, count ? secs * 1e9 / (double)count : 0.0);
	printf("live goroutines: %lld\n", (long long)tt_num_goroutine());
	printf("resident memory per goroutine: %.0f bytes\n",
	       count ? (double)(rss1 - rss0) / (double)count : 0.0);

	/* The article's net/http/pprof on :11181, loopback only. */
	char addr[32];
	snprintf(addr, sizeof addr, "127.0.0.1:%ld", port);
	tt_debug_server *srv;
	r = tt_debug_serve(addr, NULL, &srv);
	if (r) {
		fprintf(stderr, "massive: %s\n", tt_last_error());
		return 1;
	}
	port = tt_debug_port(srv);
	printf("goroutines, grouped: http://127.0.0.1:%ld/\n", port);
	printf("pprof:               http://127.0.0.1:%ld/debug/pprof/  "
	       "(goroutine?debug=1 is the article's profile)\n",
	       port);
	if (seconds < 0)
		printf("waiting; press Ctrl-C to stop\n");
	else
		printf("waiting %ld s\n", seconds);
	fflush(stdout);

	signal(SIGINT, on_sigint);
	signal(SIGTERM, on_sigint);
	int64_t end = seconds < 0 ? TT_FOREVER
				  : tt_deadline_in(seconds * TT_SECOND);
	while (!interrupted && (end == TT_FOREVER || tt_now() < end))
		tt_sleep(100 * TT_MILLISECOND);
	tt_debug_shutdown(srv);
	printf("done\n");
	return 0;
}
