/* growing — a server whose goroutine count keeps growing: the leak the
 * debug page's marks point at.
 *
 * Every --every ms a request arrives; its handler asks a lookup goroutine
 * for an answer and waits for it at most 100 ms. Every third lookup is
 * slow (300 ms): the handler gives up and returns, and the lookup, when
 * it has the answer, blocks forever in `result <- v` on an unbuffered
 * channel nobody will ever receive from. A pool of --workers idle
 * workers waits for jobs that never come: a steady group, not a leak.
 * Fixed (--fixed): the result channel has room for the one answer, so a
 * late lookup leaves it there and ends.
 *
 *   build/examples/growing [--requests N] [--every MS] [--workers N]
 *                          [--seconds N] [--port N] [--fixed]
 *
 * --requests 0 (the default) keeps them coming until --seconds have
 * passed (default: until Ctrl-C). Then it prints how many requests timed
 * out and how many goroutines are left: the stuck lookups among them.
 * The debug server (--port, default 0: a free one) shows, on its page,
 * the lookups' group marked "growing" on a second view, e.g.
 *
 *   http://127.0.0.1:PORT/?min_wait=1s
 *
 * Its twin in Go is examples/go/growing/main.go.
 */
#include <errno.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <tether.h>

static volatile sig_atomic_t interrupted;

static void on_sigint(int sig)
{
	(void)sig;
	interrupted = 1;
}

typedef struct request {
	long id;
	bool fixed;
} request;

/* Handlers on any thread count their timeouts here (atomic, as in Go). */
static atomic_long timed_out;

/* The lookup: sends its answer on result, which it owns. */
static void lookup(void *arg)
{
	tt_chan *result = arg;
	int v = 42;
	if (tt_send(result, &v) != 0) /* blocks forever once unheard */
		return;
}

static void slow_lookup(void *arg)
{
	tt_sleep(300 * TT_MILLISECOND);
	lookup(arg);
}

static void handle(void *arg)
{
	request *rq = arg;
	tt_chan *result;
	if (tt_chan_make(&result, sizeof(int), rq->fixed ? 1 : 0) != 0) {
		free(rq);
		return;
	}
	tt_go_attr attr = {.name = "lookup",
			   .own = (void *const[]){result},
			   .own_n = 1};
	if (tt_go_with(&attr, rq->id % 3 == 2 ? slow_lookup : lookup,
		       result) < 0) {
		tt_chan_release(result);
		free(rq);
		return;
	}
	int v;
	int r = tt_chan_recv_until(result, &v, sizeof v, NULL,
				   tt_deadline_in(100 * TT_MILLISECOND));
	if (r == -ETIMEDOUT) /* gives up: the lookup is on its own now */
		atomic_fetch_add(&timed_out, 1);
	tt_chan_release(result);
	free(rq);
}

static void worker(void *arg)
{
	tt_chan *jobs = arg;
	int job;
	bool ok;
	while (tt_recv(jobs, &job, &ok) == 0 && ok)
		;
}

static int parse_num(const char *flag, const char *v, long max, long *out)
{
	char *end;
	errno = 0;
	long n = v ? strtol(v, &end, 10) : 0;
	if (!v || errno || *end || n < 0 || n > max) {
		fprintf(stderr, "growing: %s needs a number from 0 to %ld, "
				"got %s\n",
			flag, max, v ? v : "nothing");
		return -1;
	}
	*out = n;
	return 0;
}

int main(int argc, char **argv)
{
	long requests = 0, every = 20, workers = 4, seconds = -1, port = 0;
	bool fixed = false;
	for (int i = 1; i < argc; i++) {
		const char *a = argv[i];
		const char *v = i + 1 < argc ? argv[i + 1] : NULL;
		long *dst = strcmp(a, "--requests") == 0 ? &requests
			  : strcmp(a, "--every") == 0	 ? &every
			  : strcmp(a, "--workers") == 0	 ? &workers
			  : strcmp(a, "--seconds") == 0	 ? &seconds
			  : strcmp(a, "--port") == 0	 ? &port
							 : NULL;
		if (dst) {
			long max = dst == &port ? 65535 : 1000000;
			if (parse_num(a, v, max, dst))
				return 2;
			i++;
		} else if (strcmp(a, "--fixed") == 0) {
			fixed = true;
		} else if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
			printf("usage: growing [--requests N] [--every MS] "
			       "[--workers N] [--seconds N] [--port N] "
			       "[--fixed]\n");
			return 0;
		} else {
			fprintf(stderr, "growing: unknown argument %s (try "
					"--help)\n",
				a);
			return 2;
		}
	}

	char addr[32];
	snprintf(addr, sizeof addr, "127.0.0.1:%ld", port);
	tt_debug_server *srv;
	if (tt_debug_serve(addr, NULL, &srv) != 0) {
		fprintf(stderr, "growing: %s\n", tt_last_error());
		return 1;
	}
	printf("debug page: http://127.0.0.1:%d/\n", tt_debug_port(srv));
	fflush(stdout);

	tt_chan *jobs;
	if (tt_chan_make(&jobs, sizeof(int), 0) != 0) {
		fprintf(stderr, "growing: %s\n", tt_last_error());
		return 1;
	}
	tt_go_attr wattr = {.name = "worker"};
	for (long i = 0; i < workers; i++)
		if (tt_go_with(&wattr, worker, jobs) < 0) {
			fprintf(stderr, "growing: %s\n", tt_last_error());
			return 1;
		}

	signal(SIGINT, on_sigint);
	signal(SIGTERM, on_sigint);
	tt_waitgroup *wg;
	if (tt_wg_make(&wg) != 0)
		return 1;
	int64_t end = seconds < 0 ? TT_FOREVER
				  : tt_deadline_in(seconds * TT_SECOND);
	long sent = 0;
	while (!interrupted && (requests == 0 || sent < requests) &&
	       (requests > 0 || end == TT_FOREVER || tt_now() < end)) {
		request *rq = malloc(sizeof *rq);
		if (!rq)
			return 1;
		*rq = (request){sent, fixed};
		if (tt_wg_go(wg, handle, rq) < 0) {
			free(rq);
			fprintf(stderr, "growing: %s\n", tt_last_error());
			return 1;
		}
		sent++;
		tt_sleep(every * TT_MILLISECOND);
	}
	if (tt_wg_wait(wg) != 0)
		return 1;
	tt_wg_release(wg);
	/* The slow lookups finish their sleep and either end (fixed) or
	 * block for good: wait for the count to settle. */
	int64_t want = 1 + workers + 1 + (fixed ? 0 : atomic_load(&timed_out));
	int64_t dl = tt_deadline_in(5 * TT_SECOND);
	while (tt_num_goroutine() != want && tt_now() < dl)
		tt_sleep(10 * TT_MILLISECOND);
	printf("%ld requests, %ld timed out\n", sent,
	       atomic_load(&timed_out));
	printf("goroutines: %lld (main, %ld workers, the debug server, "
	       "%lld lookups stuck sending)\n",
	       (long long)tt_num_goroutine(), workers,
	       (long long)tt_num_goroutine() - 2 - workers);
	while (!interrupted && requests > 0 && end != TT_FOREVER &&
	       tt_now() < end)
		tt_sleep(100 * TT_MILLISECOND);
	tt_debug_shutdown(srv);
	tt_chan_close(jobs);
	tt_chan_release(jobs);
	printf("done\n");
	return 0;
}
