/* xpingpong — pingpong across two OS threads: main's goroutine sends on
 * ping, a goroutine of a second thread receives it and sends it back on
 * pong, main receives that. Both channels are unbuffered int64 channels
 * made by main. One round trip is one ping and one pong: report ns per
 * round trip over N (default 200,000).
 *
 * Twin: bench/go/xpingpong/main.go, at GOMAXPROCS=2 with each side locked
 * to its own OS thread (runtime.LockOSThread), so neither runtime can put
 * the two on one thread.
 *
 * Warm-up (both sides): one untimed run of N/100 round trips, with its
 * own channels and thread. */
#include <pthread.h>

#include "bench.h"

struct pair {
	tt_chan *ping, *pong; /* chan int64, unbuffered */
	tt_chan *done;        /* chan struct{}: echo has seen the close */
};

static void *echo(void *arg)
{
	struct pair *p = arg;
	int64_t v;
	bool ok;
	int r;
	while (tt_recv(p->ping, &v, &ok) == 0 && ok)
		if ((r = tt_send(p->pong, &v)))
			bench_fail("xpingpong", "tt_send(pong)", r);
	tt_chan_close(p->done);
	return NULL;
}

static int64_t xpingpong(long n)
{
	struct pair p;
	int r;
	if ((r = tt_chan_make(&p.ping, sizeof(int64_t), 0)) ||
	    (r = tt_chan_make(&p.pong, sizeof(int64_t), 0)) ||
	    (r = tt_chan_make(&p.done, 0, 0)))
		bench_fail("xpingpong", "tt_chan_make", r);
	pthread_t th;
	if ((r = pthread_create(&th, NULL, echo, &p)))
		bench_fail("xpingpong", "pthread_create", -r);

	int64_t sum = 0;
	int64_t t0 = tt_now();
	for (int64_t i = 0; i < n; i++) {
		int64_t v;
		if ((r = tt_send(p.ping, &i)))
			bench_fail("xpingpong", "tt_send(ping)", r);
		if ((r = tt_recv(p.pong, &v, NULL)))
			bench_fail("xpingpong", "tt_recv(pong)", r);
		sum += v;
	}
	int64_t elapsed = tt_now() - t0;

	if (sum != (int64_t)n * (n - 1) / 2) {
		fprintf(stderr, "xpingpong: wrong sum %lld\n", (long long)sum);
		exit(1);
	}
	/* Main owns the channels: it waits for echo's last receive in
	 * tether (a plain pthread_join would hold that receive back). */
	tt_chan_close(p.ping);
	if ((r = tt_chan_recv(p.done, NULL, 0, NULL)))
		bench_fail("xpingpong", "tt_chan_recv(done)", r);
	pthread_join(th, NULL);
	tt_chan_release(p.ping);
	tt_chan_release(p.pong);
	tt_chan_release(p.done);
	return elapsed;
}

int main(int argc, char **argv)
{
	long n = bench_count(argc, argv, "xpingpong", 200000);
	xpingpong(bench_warmup(n));
	int64_t elapsed = xpingpong(n);
	printf("xpingpong %.1f ns/op\n", bench_per(elapsed, n));
	return 0;
}
