/* churn — start N goroutines (default 1,000,000) that each end at once,
 * having only marked themselves done; report ns per goroutine from the
 * first spawn until every one has finished.
 *
 * Twin: bench/go/churn/main.go, where the body is wg.Done() on a
 * sync.WaitGroup and main ends with wg.Wait(). Here the body increments a
 * counter (one OS thread, so a plain int) and main yields until the count
 * is N. tt_go runs each child to completion before it returns, so the
 * count is already N when the loop ends; the wait is kept so the C side
 * proves the same thing the Go side does.
 *
 * Warm-up (both sides): one untimed round of N/10 goroutines first, so the
 * stack pool (C) and the goroutine free lists (Go) are primed. */
#include "bench.h"

static long done; /* goroutines that have run */

static void body(void *arg)
{
	(void)arg;
	done++;
}

static int64_t churn(long n)
{
	done = 0;
	int64_t t0 = tt_now();
	for (long i = 0; i < n; i++) {
		int64_t id = tt_go(body, NULL);
		if (id < 0)
			bench_fail("churn", "tt_go", id);
	}
	while (done < n)
		tt_yield();
	return tt_now() - t0;
}

int main(int argc, char **argv)
{
	long n = bench_count(argc, argv, "churn", 1000000);

	churn(n / 10 > 0 ? n / 10 : 1); /* warm-up */
	int64_t elapsed = churn(n);

	printf("churn %.2f ns/goroutine\n", bench_per(elapsed, n));
	return 0;
}
