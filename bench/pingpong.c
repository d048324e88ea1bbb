/* pingpong — two goroutines and two unbuffered channels of int64. Main
 * sends on ping; the other goroutine receives it and sends it back on
 * pong; main receives that. One round trip is one ping and one pong:
 * report ns per round trip over N (default 1,000,000).
 *
 * Twin: bench/go/pingpong/main.go. The echoing goroutine ranges over ping
 * until main closes it, as `for v := range ping { pong <- v }` does.
 *
 * Warm-up (both sides): one untimed run of N/100 round trips, with its
 * own channels and goroutine.
 *
 * --block-rate R (Go: -blockrate R) turns the block profile on at rate R
 * (tt_set_block_profile_rate) before the warm-up: with 1, every park is
 * recorded with its stack. bench/run's pingpong_block row. */
#include "bench.h"

struct pair {
	tt_chan *ping, *pong; /* chan int64, unbuffered */
};

static void echo(void *arg)
{
	struct pair *p = arg;
	int64_t v;
	bool ok;
	int r;
	while (tt_recv(p->ping, &v, &ok) == 0 && ok)
		if ((r = tt_send(p->pong, &v)))
			bench_fail("pingpong", "tt_send(pong)", r);
}

static int64_t pingpong(long n)
{
	struct pair p;
	int r;
	if ((r = tt_chan_make(&p.ping, sizeof(int64_t), 0)) ||
	    (r = tt_chan_make(&p.pong, sizeof(int64_t), 0)))
		bench_fail("pingpong", "tt_chan_make", r);
	int64_t id = tt_go(echo, &p);
	if (id < 0)
		bench_fail("pingpong", "tt_go", id);

	int64_t sum = 0;
	int64_t t0 = tt_now();
	for (int64_t i = 0; i < n; i++) {
		int64_t v;
		if ((r = tt_send(p.ping, &i)))
			bench_fail("pingpong", "tt_send(ping)", r);
		if ((r = tt_recv(p.pong, &v, NULL)))
			bench_fail("pingpong", "tt_recv(pong)", r);
		sum += v;
	}
	int64_t elapsed = tt_now() - t0;

	if (sum != (int64_t)n * (n - 1) / 2) {
		fprintf(stderr, "pingpong: wrong sum %lld\n", (long long)sum);
		exit(1);
	}
	tt_chan_close(p.ping);
	tt_yield(); /* let echo see the close and end */
	tt_chan_release(p.ping);
	tt_chan_release(p.pong);
	return elapsed;
}

int main(int argc, char **argv)
{
	int ac = 1;
	long rate = 0;
	for (int i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--block-rate") == 0 && i + 1 < argc)
			rate = strtol(argv[++i], NULL, 10);
		else
			argv[ac++] = argv[i];
	}
	long n = bench_count(ac, argv, "pingpong", 1000000);
	tt_set_block_profile_rate(rate);

	pingpong(bench_warmup(n));
	int64_t elapsed = pingpong(n);

	printf("pingpong %.1f ns/op\n", bench_per(elapsed, n));
	return 0;
}
