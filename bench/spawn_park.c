/* spawn_park — the seed's massiveGoroutine: start N goroutines (default
 * 1,000,000), each blocked forever receiving from one unbuffered channel
 * that nobody sends to.
 *
 *   spawn_park      ns from the first spawn until every goroutine is
 *                   parked, per goroutine
 *   spawn_park_rss  resident growth (/proc/self/statm after minus before)
 *                   per goroutine
 *
 * Twin: bench/go/spawn_park/main.go. Both sides count the goroutines that
 * reached their receive (C: a plain counter, one thread; Go: an atomic
 * add) and the main goroutine waits until all N have, so "all parked"
 * means the same on both sides. tt_go runs each child until it parks, so
 * on the C side the count is already N when the loop ends; the check is
 * there to make sure.
 *
 * With --shared-stack the goroutines run on the shared stack
 * (tt_go_attr.shared_stack); the metric names stay the same, so bench/run
 * compares the result with the same Go twin (its row spawn_park_shared).
 *
 * No warm-up: a warm-up would leave parked goroutines behind (or, if
 * released, pooled stacks that the timed run would reuse), and either
 * would distort the memory figure. The program exits with the goroutines
 * still parked; main never blocks, so there is no deadlock report, and
 * the channel is never released, so there is no proven-leak report. */
#include "bench.h"

static long reached; /* goroutines that got to their receive */

/* Go's f(): block on a channel that never delivers. */
static void parked(void *arg)
{
	tt_chan *quit = arg;
	int64_t v;
	reached++;
	int r = tt_recv(quit, &v, NULL); /* parked for good */
	if (r != 0)
		bench_fail("spawn_park", "tt_recv", r);
}

int main(int argc, char **argv)
{
	/* --shared-stack: the goroutines run on the scheduler's shared stack
	 * (tt_go_attr.shared_stack), so a parked one keeps only its record
	 * and a copy of the frames it uses. */
	bool shared = false;
	int ac = 0;
	for (int i = 0; i < argc; i++) {
		if (i > 0 && strcmp(argv[i], "--shared-stack") == 0)
			shared = true;
		else
			argv[ac++] = argv[i];
	}
	long n = bench_count(ac, argv, "spawn_park", 1000000);
	tt_go_attr attr = {.shared_stack = shared};

	tt_chan *quit;
	int r = tt_chan_make(&quit, sizeof(int64_t), 0);
	if (r)
		bench_fail("spawn_park", "tt_chan_make", r);
	/* Start the scheduler before the "before" reading, as the Go
	 * runtime is started before its main runs. */
	tt_yield();

	long rss0 = bench_rss();
	int64_t t0 = tt_now();
	for (long i = 0; i < n; i++) {
		int64_t id = shared ? tt_go_with(&attr, parked, quit)
				  : tt_go(parked, quit);
		if (id < 0)
			bench_fail("spawn_park", "tt_go", id);
	}
	while (reached < n)
		tt_yield();
	int64_t elapsed = tt_now() - t0;
	long rss1 = bench_rss();

	printf("spawn_park %.1f ns/goroutine\n", bench_per(elapsed, n));
	printf("spawn_park_rss %.0f bytes/goroutine\n",
	       (double)(rss1 - rss0) / (double)n);
	fflush(stdout);
	/* Leave the goroutines parked, as the seed does; exit at once. */
	exit(0);
}
