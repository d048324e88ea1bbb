/* select2 — a two-case select where one case is ready. Each iteration
 * sends i into a channel of capacity 1, then selects over receiving it
 * and receiving from a channel nobody ever sends to:
 *
 *     ch <- i
 *     select {
 *     case v := <-ch: sum += v
 *     case <-never:
 *     }
 *
 * Report ns per iteration (send + select) over N (default 10,000,000).
 * Twin: bench/go/select2/main.go. `never` is a real, unbuffered channel on
 * both sides (not nil), so the select has to look at it. The cases are
 * built afresh each iteration, as Go builds its select's case array.
 *
 * Warm-up (both sides): N/100 untimed iterations first. */
#include "bench.h"

static int64_t select2(long n)
{
	tt_chan *ch, *never;
	int r;
	if ((r = tt_chan_make(&ch, sizeof(int64_t), 1)) ||
	    (r = tt_chan_make(&never, sizeof(int64_t), 0)))
		bench_fail("select2", "tt_chan_make", r);

	int64_t sum = 0;
	int64_t t0 = tt_now();
	for (int64_t i = 0; i < n; i++) {
		int64_t v, w;
		if ((r = tt_send(ch, &i)))
			bench_fail("select2", "tt_send", r);
		tt_case cases[2] = {
			TT_CASE_RECV_INTO(ch, &v, NULL),
			TT_CASE_RECV_INTO(never, &w, NULL),
		};
		r = tt_select(cases, 2, TT_FOREVER);
		if (r < 0)
			bench_fail("select2", "tt_select", r);
		if (r != 0) {
			fprintf(stderr, "select2: select chose case %d\n", r);
			exit(1);
		}
		sum += v;
	}
	int64_t elapsed = tt_now() - t0;

	if (sum != (int64_t)n * (n - 1) / 2) {
		fprintf(stderr, "select2: wrong sum %lld\n", (long long)sum);
		exit(1);
	}
	tt_chan_release(ch);
	tt_chan_release(never);
	return elapsed;
}

int main(int argc, char **argv)
{
	long n = bench_count(argc, argv, "select2", 10000000);

	select2(bench_warmup(n));
	int64_t elapsed = select2(n);

	printf("select2 %.2f ns/op\n", bench_per(elapsed, n));
	return 0;
}
