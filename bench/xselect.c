/* xselect — xpingpong with every operation a select of two cases, across
 * two OS threads: main's goroutine selects to send on ping (or see quit),
 * a goroutine of a second thread selects to receive it (or see quit) and
 * selects to send it back on pong, main selects to receive that. All
 * channels are made by main; the second thread's selects are on another
 * thread's channels (src/chan/select.c, the locked path). One round trip
 * is one ping and one pong: report ns per round trip over N (default
 * 200,000).
 *
 * Twin: bench/go/xselect/main.go, at GOMAXPROCS=2 with each side locked
 * to its own OS thread (runtime.LockOSThread), as xpingpong's.
 *
 * Warm-up (both sides): one untimed run of N/100 round trips, with its
 * own channels and thread. */
#include <pthread.h>

#include "bench.h"

struct pair {
	tt_chan *ping, *pong; /* chan int64, unbuffered */
	tt_chan *quit;        /* chan struct{}: closed by main at the end */
	tt_chan *done;        /* chan struct{}: echo has seen quit */
};

static void *echo(void *arg)
{
	struct pair *p = arg;
	for (;;) {
		int64_t v;
		tt_case in[2] = {TT_CASE_RECV_INTO(p->ping, &v, NULL),
				 TT_CASE_RECV_DISCARD(p->quit, NULL)};
		int r = tt_select(in, 2, TT_FOREVER);
		if (r == 1)
			break;
		if (r != 0)
			bench_fail("xselect", "tt_select(ping)", r);
		tt_case out[2] = {TT_CASE_SEND_FROM(p->pong, &v),
				  TT_CASE_RECV_DISCARD(p->quit, NULL)};
		r = tt_select(out, 2, TT_FOREVER);
		if (r == 1)
			break;
		if (r != 0)
			bench_fail("xselect", "tt_select(pong)", r);
	}
	tt_chan_close(p->done);
	return NULL;
}

static int64_t xselect(long n)
{
	struct pair p;
	int r;
	if ((r = tt_chan_make(&p.ping, sizeof(int64_t), 0)) ||
	    (r = tt_chan_make(&p.pong, sizeof(int64_t), 0)) ||
	    (r = tt_chan_make(&p.quit, 0, 0)) ||
	    (r = tt_chan_make(&p.done, 0, 0)))
		bench_fail("xselect", "tt_chan_make", r);
	pthread_t th;
	if ((r = pthread_create(&th, NULL, echo, &p)))
		bench_fail("xselect", "pthread_create", -r);

	int64_t sum = 0;
	int64_t t0 = tt_now();
	for (int64_t i = 0; i < n; i++) {
		int64_t v;
		tt_case out[2] = {TT_CASE_SEND_FROM(p.ping, &i),
				  TT_CASE_RECV_DISCARD(p.done, NULL)};
		if ((r = tt_select(out, 2, TT_FOREVER)) != 0)
			bench_fail("xselect", "tt_select(send ping)", r);
		tt_case in[2] = {TT_CASE_RECV_INTO(p.pong, &v, NULL),
				 TT_CASE_RECV_DISCARD(p.done, NULL)};
		if ((r = tt_select(in, 2, TT_FOREVER)) != 0)
			bench_fail("xselect", "tt_select(recv pong)", r);
		sum += v;
	}
	int64_t elapsed = tt_now() - t0;

	if (sum != (int64_t)n * (n - 1) / 2) {
		fprintf(stderr, "xselect: wrong sum %lld\n", (long long)sum);
		exit(1);
	}
	/* Main owns the channels: it waits for echo in tether. */
	tt_chan_close(p.quit);
	if ((r = tt_chan_recv(p.done, NULL, 0, NULL)))
		bench_fail("xselect", "tt_chan_recv(done)", r);
	pthread_join(th, NULL);
	tt_chan_release(p.ping);
	tt_chan_release(p.pong);
	tt_chan_release(p.quit);
	tt_chan_release(p.done);
	return elapsed;
}

int main(int argc, char **argv)
{
	long n = bench_count(argc, argv, "xselect", 200000);
	xselect(bench_warmup(n));
	int64_t elapsed = xselect(n);
	printf("xselect %.1f ns/op\n", bench_per(elapsed, n));
	return 0;
}
