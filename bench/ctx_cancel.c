/* ctx_cancel — N goroutines (default 100,000) each wait in a select on one
 * context's done channel; report ns per goroutine from the cancel until
 * every one of them has exited.
 *
 * Twin: bench/go/ctx_cancel/main.go. Both sides: start the goroutines,
 * wait until all of them are parked, take the time, cancel, wait on a
 * WaitGroup that each goroutine's exit marks done. */
#include "bench.h"

static tt_chan *done_ch;
static tt_waitgroup *wg;
static long parked;

static void waiter(void *arg)
{
	(void)arg;
	tt_case c[1] = {TT_CASE_RECV_DISCARD(done_ch, NULL)};
	parked++;
	if (tt_select(c, 1, TT_FOREVER) != 0)
		bench_fail("ctx_cancel", "tt_select", -1);
	tt_wg_done(wg);
}

int main(int argc, char **argv)
{
	long n = bench_count(argc, argv, "ctx_cancel", 100000);
	tt_ctx *ctx;
	if (tt_ctx_with_cancel(&ctx, tt_ctx_background()) != 0 ||
	    tt_wg_make(&wg) != 0)
		bench_fail("ctx_cancel", "setup", -1);
	done_ch = tt_ctx_done(ctx);
	tt_wg_add(wg, n);
	for (long i = 0; i < n; i++) {
		int64_t id = tt_go(waiter, NULL);
		if (id < 0)
			bench_fail("ctx_cancel", "tt_go", id);
	}
	while (parked < n)
		tt_yield();
	int64_t t0 = tt_now();
	tt_ctx_cancel(ctx);
	int r = tt_wg_wait(wg);
	if (r != 0)
		bench_fail("ctx_cancel", "tt_wg_wait", r);
	int64_t elapsed = tt_now() - t0;
	printf("ctx_cancel %.2f ns/goroutine\n", bench_per(elapsed, n));
	tt_ctx_release(ctx);
	tt_wg_release(wg);
	return 0;
}
