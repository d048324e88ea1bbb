/* profile_threads — the goroutine profile (debug=1) of N goroutines
 * (default 1,000,000) split over two threads: half parked on main's
 * thread, half on a second thread, each in a receive. Reports the time of
 * the write into a memory buffer, and on each thread the longest a
 * ticking goroutine there was kept waiting meanwhile (beyond its 1 ms
 * sleep): each thread takes its own part of the snapshot in slices
 * (src/profile/snapshot.c, "every thread's goroutines"), so neither
 * stops for the whole of it.
 *
 * Twin: bench/go/profile_threads/main.go, at GOMAXPROCS=2, N goroutines
 * parked and two ticking ones, pprof.Lookup("goroutine").WriteTo(buf, 1):
 * Go stops the world for the profile's collection.
 *
 * Metrics: profile_threads_d1 (ms), profile_threads_stall (ms, the worse
 * of the two threads' tickers; PT_DEBUG=1 in the environment prints each
 * thread's on stderr). A warm-up write of the same profile comes first
 * (the symbolizer reads the debug information once). */
#include <pthread.h>
#include <stdatomic.h>

#include "bench.h"

static tt_chan *block_main;
static _Atomic bool ticking = true;
static _Atomic int64_t max_gap_main, max_gap_other;
static _Atomic bool measuring;

static __attribute__((noinline)) void parked(void *arg)
{
	int v;
	int r = tt_chan_recv(arg, &v, sizeof v, NULL);
	if (r != 0)
		bench_fail("profile_threads", "tt_chan_recv", r);
	__asm__ volatile("");
}

static void ticker(void *arg)
{
	_Atomic int64_t *gap = arg;
	int64_t last = tt_now();
	while (atomic_load(&ticking)) {
		tt_sleep(TT_MILLISECOND);
		int64_t now = tt_now();
		int64_t g = now - last - TT_MILLISECOND;
		if (atomic_load(&measuring) && g > atomic_load(gap))
			atomic_store(gap, g);
		last = now;
	}
}

typedef struct other {
	long n;
	tt_chan *block;
	_Atomic bool ready, quit;
} other;

static void *other_main(void *arg)
{
	other *o = arg;
	int r;
	if ((r = tt_chan_make(&o->block, sizeof(int), 0)))
		bench_fail("profile_threads", "tt_chan_make", r);
	for (long i = 0; i < o->n; i++)
		if (tt_go(parked, o->block) <= 0)
			bench_fail("profile_threads", "tt_go", -ENOMEM);
	if (tt_go(ticker, &max_gap_other) <= 0)
		bench_fail("profile_threads", "tt_go", -ENOMEM);
	atomic_store(&o->ready, true);
	while (!atomic_load(&o->quit))
		tt_sleep(TT_MILLISECOND);
	/* Exits with its goroutines parked: the process ends next. */
	return NULL;
}

int main(int argc, char **argv)
{
	long n = bench_count(argc, argv, "profile_threads", 1000000);
	int r;
	if ((r = tt_chan_make(&block_main, sizeof(int), 0)))
		bench_fail("profile_threads", "tt_chan_make", r);
	other o = {.n = n - n / 2};
	pthread_t th;
	if ((r = pthread_create(&th, NULL, other_main, &o)))
		bench_fail("profile_threads", "pthread_create", -r);
	for (long i = 0; i < n / 2; i++)
		if (tt_go(parked, block_main) <= 0)
			bench_fail("profile_threads", "tt_go", -ENOMEM);
	if (tt_go(ticker, &max_gap_main) <= 0)
		bench_fail("profile_threads", "tt_go", -ENOMEM);
	while (!atomic_load(&o.ready))
		tt_sleep(TT_MILLISECOND);

	bench_sink s = {0};
	if ((r = tt_profile_write("goroutine", 1, bench_sink_write, &s)))
		bench_fail("profile_threads", "tt_profile_write", r);
	/* Both threads' goroutines are in it: the two receives' stacks
	 * group into one record of n. */
	char want[64];
	snprintf(want, sizeof want, "\n%ld @ 0x", n);
	if (bench_sink_write(&s, "", 1) != 0 || !strstr(s.p, want)) {
		fprintf(stderr, "profile_threads: no record of %ld in:\n%.*s\n",
			n, (int)(s.len < 2000 ? s.len : 2000), s.p);
		exit(1);
	}
	s.len = 0;
	tt_sleep(10 * TT_MILLISECOND);
	atomic_store(&measuring, true);
	int64_t t0 = tt_now();
	if ((r = tt_profile_write("goroutine", 1, bench_sink_write, &s)))
		bench_fail("profile_threads", "tt_profile_write", r);
	int64_t took = tt_now() - t0;
	tt_sleep(5 * TT_MILLISECOND); /* the tickers' last gaps */
	atomic_store(&measuring, false);
	int64_t gm = atomic_load(&max_gap_main), go = atomic_load(&max_gap_other);
	printf("profile_threads_d1 %.2f ms\n", (double)took / 1e6);
	if (getenv("PT_DEBUG"))
		fprintf(stderr, "main %.2f other %.2f\n", (double)gm / 1e6,
			(double)go / 1e6);
	printf("profile_threads_stall %.2f ms\n",
	       (double)(gm > go ? gm : go) / 1e6);
	fflush(stdout);
	atomic_store(&ticking, false);
	atomic_store(&o.quit, true);
	_exit(0); /* a million parked goroutines: no teardown to time */
}
