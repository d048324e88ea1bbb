/* after_loop — the seed's pitfall: time.After inside a select in a loop.
 * Each iteration fills a channel of capacity 1, then selects over
 * receiving from it (always ready) and a fresh one-minute timer:
 *
 *     ch <- i
 *     select {
 *     case v := <-ch: sum += v
 *     case <-time.After(time.Minute):
 *     }
 *
 * In Go every iteration leaves a timer behind that lives until it fires, a
 * minute later. tt_after's timer is stopped and freed when its channel's
 * last reference is released, which this loop does after each select.
 *
 *   after_loop      ns per iteration over N (default 1,000,000)
 *   after_loop_rss  resident growth over the timed loop, in bytes
 *                   (/proc/self/statm after minus before)
 *
 * Twin: bench/go/after_loop/main.go.
 * Warm-up (both sides): N/100 untimed iterations before the "before"
 * memory reading, so allocator and heap set-up are not counted. */
#include "bench.h"

static int64_t after_loop(tt_chan *ch, long n)
{
	int64_t sum = 0;
	int r;
	int64_t t0 = tt_now();
	for (int64_t i = 0; i < n; i++) {
		int64_t v, fired;
		tt_chan *timer;
		if ((r = tt_send(ch, &i)))
			bench_fail("after_loop", "tt_send", r);
		if ((r = tt_after(&timer, TT_MINUTE)))
			bench_fail("after_loop", "tt_after", r);
		tt_case cases[2] = {
			TT_CASE_RECV_INTO(ch, &v, NULL),
			TT_CASE_RECV_INTO(timer, &fired, NULL),
		};
		r = tt_select(cases, 2, TT_FOREVER);
		if (r < 0)
			bench_fail("after_loop", "tt_select", r);
		if (r != 0) {
			fprintf(stderr, "after_loop: select chose case %d\n",
				r);
			exit(1);
		}
		sum += v;
		tt_chan_release(timer);
	}
	int64_t elapsed = tt_now() - t0;

	if (sum != (int64_t)n * (n - 1) / 2) {
		fprintf(stderr, "after_loop: wrong sum %lld\n", (long long)sum);
		exit(1);
	}
	return elapsed;
}

int main(int argc, char **argv)
{
	long n = bench_count(argc, argv, "after_loop", 1000000);

	tt_chan *ch;
	int r = tt_chan_make(&ch, sizeof(int64_t), 1);
	if (r)
		bench_fail("after_loop", "tt_chan_make", r);

	after_loop(ch, bench_warmup(n));
	long rss0 = bench_rss();
	int64_t elapsed = after_loop(ch, n);
	long rss1 = bench_rss();

	printf("after_loop %.1f ns/op\n", bench_per(elapsed, n));
	printf("after_loop_rss %ld bytes-growth\n", rss1 - rss0);
	tt_chan_release(ch);
	return 0;
}
