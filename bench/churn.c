/* churn — start N goroutines (default 1,000,000) that each end at once,
 * having only marked themselves done; report ns per goroutine from the
 * first spawn until every one has finished.
 *
 * Twin: bench/go/churn/main.go. Both sides do the same: wg.Add(n) on a
 * WaitGroup, a body that calls wg.Done(), and wg.Wait() at the end
 * (tt_wg_add, tt_wg_done, tt_wg_wait).
 *
 * Warm-up (both sides): one untimed round of N/10 goroutines first, so the
 * stack pool (C) and the goroutine free lists (Go) are primed. */
#include "bench.h"

static void body(void *arg)
{
	tt_wg_done(arg);
}

static int64_t churn(tt_waitgroup *wg, long n)
{
	int64_t t0 = tt_now();
	tt_wg_add(wg, n);
	for (long i = 0; i < n; i++) {
		int64_t id = tt_go(body, wg);
		if (id < 0)
			bench_fail("churn", "tt_go", id);
	}
	int r = tt_wg_wait(wg);
	if (r != 0)
		bench_fail("churn", "tt_wg_wait", r);
	return tt_now() - t0;
}

int main(int argc, char **argv)
{
	long n = bench_count(argc, argv, "churn", 1000000);

	tt_waitgroup *wg;
	if (tt_wg_make(&wg) != 0)
		bench_fail("churn", "tt_wg_make", -1);
	churn(wg, n / 10 > 0 ? n / 10 : 1); /* warm-up */
	int64_t elapsed = churn(wg, n);

	printf("churn %.2f ns/goroutine\n", bench_per(elapsed, n));
	return 0;
}
