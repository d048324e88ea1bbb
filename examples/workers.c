/* workers — a small service in the Go style: a pool of workers reading
 * jobs from a channel, a timeout per request, a WaitGroup shutdown and a
 * debug server. Its twin in Go is examples/go/workers/main.go; the two
 * print the same lines.
 *
 *   build/examples/workers [--jobs N] [--workers N]
 *
 * Job i takes (i % 4) * 10 ms and has 25 ms: every fourth one times out.
 * Each goroutine owns the objects it was handed (TT_WG_GO), so nothing is
 * released by hand on any of its paths, and the request's context is
 * cancelled by TT_DEFER_CANCEL however the request ends. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <tether.h>

typedef struct job {
	int id;
	int64_t cost; /* how long the work takes */
} job;

typedef struct result {
	int id;
	int err; /* 0, or -ETIMEDOUT */
} result;

typedef struct pool {
	tt_chan *jobs, *results;
	tt_waitgroup *wg;
} pool;

/* One request: the work, under its own deadline. */
static int handle(const job *j)
{
	tt_ctx *ctx;
	if (tt_ctx_with_timeout(&ctx, tt_ctx_background(),
				25 * TT_MILLISECOND) != 0)
		return -ENOMEM;
	TT_DEFER_CANCEL(ctx);
	return tt_sleep_ctx(ctx, j->cost); /* the work */
}

static void worker(void *arg)
{
	pool *p = arg;
	job j;
	bool ok;
	while (tt_recv(p->jobs, &j, &ok) == 0 && ok) {
		result r = {j.id, handle(&j)};
		if (tt_send(p->results, &r) != 0)
			return;
	}
}

/* Close results once every worker is done. */
static void closer(void *arg)
{
	pool *p = arg;
	if (tt_wg_wait(p->wg) == 0)
		tt_chan_close(p->results);
}

static long flag(int argc, char **argv, const char *name, long def)
{
	for (int i = 1; i + 1 < argc; i++)
		if (strcmp(argv[i], name) == 0)
			return strtol(argv[i + 1], NULL, 10);
	return def;
}

int main(int argc, char **argv)
{
	long njobs = flag(argc, argv, "--jobs", 12);
	long nworkers = flag(argc, argv, "--workers", 4);
	tt_debug_server *dbg;
	pool p;
	if (njobs < 0 || nworkers < 1 ||
	    tt_debug_serve("127.0.0.1:0", NULL, &dbg) != 0 ||
	    tt_chan_make(&p.jobs, sizeof(job), 0) != 0 ||
	    tt_chan_make(&p.results, sizeof(result), 0) != 0 ||
	    tt_wg_make(&p.wg) != 0) {
		fprintf(stderr, "workers: bad flags or %s\n", tt_last_error());
		return 1;
	}
	printf("debug server on 127.0.0.1:%d\n", tt_debug_port(dbg));
	for (long i = 0; i < nworkers; i++)
		if (TT_WG_GO(p.wg, worker, &p, p.jobs, p.results) < 0)
			return 1;
	if (TT_GO(closer, &p, p.wg, p.results) < 0)
		return 1;

	long done = 0, timed_out = 0, received = 0;
	for (int i = 0; i < njobs; i++) {
		job j = {i, (i % 4) * 10 * TT_MILLISECOND};
		/* Take results while sending, as a select in Go would. */
		result r;
		tt_case cs[] = {TT_CASE_SEND_FROM(p.jobs, &j),
				TT_CASE_RECV_INTO(p.results, &r, NULL)};
		int k;
		while ((k = tt_select(cs, 2, TT_FOREVER)) == 1) {
			received++;
			*(r.err ? &timed_out : &done) += 1;
		}
		if (k != 0)
			return 1;
	}
	tt_chan_close(p.jobs);
	result r;
	bool ok;
	while (tt_recv(p.results, &r, &ok) == 0 && ok) {
		received++;
		*(r.err ? &timed_out : &done) += 1;
	}
	printf("%ld jobs, %ld done, %ld timed out\n", received, done,
	       timed_out);
	tt_chan_release(p.jobs);
	tt_chan_release(p.results);
	tt_wg_release(p.wg);
	tt_debug_shutdown(dbg);
	printf("goroutines left: %lld\n", (long long)tt_num_goroutine());
	return 0;
}
