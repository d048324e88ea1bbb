/* feed — a plain pthread feeding a goroutine: a second thread, which is
 * not a goroutine of main's, sends N int64 values (default 200,000) into a
 * channel main made; main's goroutine receives them and checks their sum.
 * Report ns per value, for an unbuffered channel (feed_unbuf) and one of
 * capacity 64 (feed_buf64).
 *
 * Twin: bench/go/feed/main.go, at GOMAXPROCS=2, the feeding goroutine
 * locked to its own OS thread (runtime.LockOSThread), as is main.
 *
 * Warm-up (both sides): one untimed run of N/100 values per channel
 * kind, with its own channel and thread. */
#include <pthread.h>

#include "bench.h"

struct feed {
	tt_chan *c;
	long n;
};

static void *feeder(void *arg)
{
	struct feed *f = arg;
	int r;
	for (int64_t i = 0; i < f->n; i++)
		if ((r = tt_send(f->c, &i)))
			bench_fail("feed", "tt_send", r);
	tt_chan_close(f->c);
	return NULL;
}

static int64_t feed(long n, size_t cap)
{
	struct feed f = {.n = n};
	int r;
	if ((r = tt_chan_make(&f.c, sizeof(int64_t), cap)))
		bench_fail("feed", "tt_chan_make", r);
	pthread_t th;
	int64_t t0 = tt_now();
	if ((r = pthread_create(&th, NULL, feeder, &f)))
		bench_fail("feed", "pthread_create", -r);
	int64_t sum = 0, v;
	bool ok;
	while ((r = tt_recv(f.c, &v, &ok)) == 0 && ok)
		sum += v;
	int64_t elapsed = tt_now() - t0;
	if (r)
		bench_fail("feed", "tt_recv", r);
	if (sum != (int64_t)n * (n - 1) / 2) {
		fprintf(stderr, "feed: wrong sum %lld\n", (long long)sum);
		exit(1);
	}
	pthread_join(th, NULL);
	tt_chan_release(f.c);
	return elapsed;
}

int main(int argc, char **argv)
{
	long n = bench_count(argc, argv, "feed", 200000);
	feed(bench_warmup(n), 0);
	printf("feed_unbuf %.1f ns/op\n", bench_per(feed(n, 0), n));
	feed(bench_warmup(n), 64);
	printf("feed_buf64 %.1f ns/op\n", bench_per(feed(n, 64), n));
	return 0;
}
