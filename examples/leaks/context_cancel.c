/* context_cancel — stopping a goroutine from outside, way (b):
 * context.WithCancel.
 *
 * A worker handles units of work until its context is done. Leaky: main
 * makes the context and never calls cancel, so the worker runs on. Fixed:
 * main cancels (Go's `defer cancel()`); the worker's sleep wakes with
 * ctx.Err() and it ends.
 *
 *   context_cancel [--fixed] [--wait S]
 */
#include "leakex.h"

static void worker(void *arg)
{
	tt_ctx *ctx = arg;
	long units = 0;
	while (tt_sleep_ctx(ctx, 2 * TT_MILLISECOND) == 0)
		units++;
	printf("worker: context done (%s)\n", tt_strerror(tt_ctx_err(ctx)));
}

int main(int argc, char **argv)
{
	leakex_args a = leakex_parse(argc, argv, 1.0);
	tt_ctx *ctx;
	leakex_must(tt_ctx_with_cancel(&ctx, tt_ctx_background()),
		    "tt_ctx_with_cancel");
	/* go worker(ctx): the worker holds ctx until it ends. */
	leakex_must((int)TT_GO(worker, ctx, ctx), "TT_GO");
	tt_sleep(20 * TT_MILLISECOND); /* main's own work */
	if (a.fixed)
		tt_ctx_cancel(ctx);
	tt_ctx_release(ctx);
	printf("main: done\n");
	return leakex_check(&a);
}
