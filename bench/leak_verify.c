/* leak_verify — the leak checker's cost when nothing leaked: N live
 * goroutines (default 10,000), all ignored (tt_leak_ignore_current),
 * parked on a channel; report ns per tt_leak_verify_none call
 * (leak_verify). Second metric, leak_verify_walk: ns per check of a leak
 * scope that none of the N goroutines belongs to, which looks at every
 * one of them (the walk the first check can skip).
 *
 * Twin: bench/go/leak_verify/main.go, which does what goleak does on each
 * try: runtime.Stack(buf, true) into a buffer that grows until it fits,
 * and parse every goroutine out of it (id, state, functions, creator),
 * then filter the ignored ids. */
#include "bench.h"

static void park(void *arg)
{
	int r = tt_chan_recv(arg, NULL, 0, NULL); /* parked for good */
	if (r != 0)
		bench_fail("leak_verify", "tt_chan_recv", r);
}

int main(int argc, char **argv)
{
	long n = bench_count(argc, argv, "leak_verify", 10000);
	tt_chan *c;
	if (tt_chan_make(&c, 0, 0))
		bench_fail("leak_verify", "tt_chan_make", -1);
	for (long i = 0; i < n; i++) {
		int64_t id = tt_go(park, c);
		if (id < 0)
			bench_fail("leak_verify", "tt_go", id);
	}
	tt_leak_opts *o;
	int r = tt_leak_opts_make(&o);
	if (r == 0)
		r = tt_leak_ignore_current(o);
	if (r)
		bench_fail("leak_verify", "options", r);
	long reps = 200;
	for (long i = 0; i < bench_warmup(reps * 10); i++)
		if ((r = tt_leak_verify_none(o)) != 0)
			bench_fail("leak_verify", "tt_leak_verify_none", r);
	int64_t t0 = tt_now();
	for (long i = 0; i < reps; i++)
		if ((r = tt_leak_verify_none(o)) != 0)
			bench_fail("leak_verify", "tt_leak_verify_none", r);
	int64_t elapsed = tt_now() - t0;
	printf("leak_verify %.0f ns/check\n", bench_per(elapsed, reps));

	/* A scope of its own: nothing in it, all N outside it. */
	t0 = tt_now();
	for (long i = 0; i < reps; i++) {
		tt_leak_scope sc;
		if ((r = tt_leak_scope_begin(&sc, NULL)) != 0 ||
		    (r = tt_leak_scope_verify(&sc, NULL)) != 0)
			bench_fail("leak_verify", "tt_leak_scope_verify", r);
	}
	elapsed = tt_now() - t0;
	printf("leak_verify_walk %.0f ns/check\n", bench_per(elapsed, reps));
	tt_chan_close(c);
	tt_chan_release(c);
	tt_leak_opts_free(o);
	return 0;
}
