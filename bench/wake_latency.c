/* wake_latency — how late a sleeping goroutine wakes while the run queue
 * is never empty. 1,000 goroutines stay runnable all the time (each loops:
 * 64 steps of xorshift64, then tt_yield), and one more sleeps 1 ms N times
 * (default 500), recording for each sleep how much longer than 1 ms it
 * took, from just before tt_sleep to just after it returned (tt_now).
 *
 *	wake_latency_p50  median lateness, µs
 *	wake_latency_p99  99th percentile (nearest rank), µs
 *	wake_latency_max  the worst, µs
 *
 * Twin: bench/go/wake_latency/main.go: the same flood with
 * runtime.Gosched, the same sleeper with time.Sleep(time.Millisecond),
 * GOMAXPROCS=1.
 *
 * Warm-up (both sides): N/100 sleeps (at least one) with the flood
 * running, not recorded. The flood goroutines stop at a flag the sleeper
 * sets after its last sleep; each adds its xorshift state into a sum that
 * main checks is not zero, so no side can drop the work. */
#include "bench.h"

#define FLOOD 1000
#define WORK_STEPS 64
#define SLEEP_NS 1000000 /* 1 ms */

static int stop;      /* set by the sleeper once it is done */
static uint64_t sink; /* the flood's xorshift states, summed */
static tt_waitgroup *wg;
static long nsleeps;
static int64_t *late; /* lateness of each recorded sleep, ns */

static void flood(void *arg)
{
	uint64_t x = (uint64_t)(uintptr_t)arg * 0x9E3779B97F4A7C15u + 1;
	while (!stop) {
		for (int i = 0; i < WORK_STEPS; i++) {
			x ^= x << 13;
			x ^= x >> 7;
			x ^= x << 17;
		}
		tt_yield();
	}
	sink += x;
	tt_wg_done(wg);
}

static int64_t one_sleep(void)
{
	int64_t t0 = tt_now();
	int r = tt_sleep(SLEEP_NS);
	int64_t t1 = tt_now();
	if (r != 0)
		bench_fail("wake_latency", "tt_sleep", r);
	return t1 - t0 - SLEEP_NS;
}

static void sleeper(void *arg)
{
	(void)arg;
	for (long i = 0; i < bench_warmup(nsleeps); i++)
		one_sleep();
	for (long i = 0; i < nsleeps; i++)
		late[i] = one_sleep();
	stop = 1;
	tt_wg_done(wg);
}

static int cmp_i64(const void *a, const void *b)
{
	int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
	return (x > y) - (x < y);
}

/* The nearest-rank percentile p (0 < p <= 100) of the sorted v[0..n). */
static int64_t percentile(const int64_t *v, long n, int p)
{
	long rank = (n * p + 99) / 100; /* ceil(n * p / 100), >= 1 */
	return v[rank - 1];
}

int main(int argc, char **argv)
{
	nsleeps = bench_count(argc, argv, "wake_latency", 500);
	late = calloc((size_t)nsleeps, sizeof *late);
	if (!late) {
		perror("wake_latency: calloc");
		return 1;
	}
	if (tt_wg_make(&wg) != 0)
		bench_fail("wake_latency", "tt_wg_make", -1);
	tt_wg_add(wg, FLOOD + 1);
	for (long i = 0; i < FLOOD; i++) {
		int64_t id = tt_go(flood, (void *)(uintptr_t)(i + 1));
		if (id < 0)
			bench_fail("wake_latency", "tt_go", id);
	}
	int64_t id = tt_go(sleeper, NULL);
	if (id < 0)
		bench_fail("wake_latency", "tt_go", id);
	int r = tt_wg_wait(wg);
	if (r != 0)
		bench_fail("wake_latency", "tt_wg_wait", r);
	if (sink == 0) {
		fprintf(stderr, "wake_latency: the flood did no work\n");
		return 1;
	}

	qsort(late, (size_t)nsleeps, sizeof *late, cmp_i64);
	printf("wake_latency_p50 %.1f us\n",
	       percentile(late, nsleeps, 50) / 1e3);
	printf("wake_latency_p99 %.1f us\n",
	       percentile(late, nsleeps, 99) / 1e3);
	printf("wake_latency_max %.1f us\n", late[nsleeps - 1] / 1e3);
	free(late);
	return 0;
}
