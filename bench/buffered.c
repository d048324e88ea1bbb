/* buffered — a producer and a consumer over a channel of int64 with
 * capacity 128. Main sends 0..N-1 (default N = 10,000,000) and closes the
 * channel; the consumer sums what it receives until the channel is closed
 * and drained, then sends the sum back on an unbuffered channel. Report ns
 * per item, from the first send until main has the sum.
 *
 * Twin: bench/go/buffered/main.go (`for v := range ch { sum += v }`).
 * The sum is checked on both sides.
 *
 * Warm-up (both sides): one untimed run of N/100 items, with its own
 * channels and goroutine. */
#include "bench.h"

struct pipe {
	tt_chan *items; /* chan int64, capacity 128 */
	tt_chan *sum;   /* chan int64, unbuffered */
};

static void consumer(void *arg)
{
	struct pipe *p = arg;
	int64_t v, sum = 0;
	bool ok;
	int r;
	while ((r = tt_recv(p->items, &v, &ok)) == 0 && ok)
		sum += v;
	if (r)
		bench_fail("buffered", "tt_recv(items)", r);
	if ((r = tt_send(p->sum, &sum)))
		bench_fail("buffered", "tt_send(sum)", r);
}

static int64_t buffered(long n)
{
	struct pipe p;
	int r;
	if ((r = tt_chan_make(&p.items, sizeof(int64_t), 128)) ||
	    (r = tt_chan_make(&p.sum, sizeof(int64_t), 0)))
		bench_fail("buffered", "tt_chan_make", r);

	int64_t t0 = tt_now();
	int64_t id = tt_go(consumer, &p);
	if (id < 0)
		bench_fail("buffered", "tt_go", id);
	for (int64_t i = 0; i < n; i++)
		if ((r = tt_send(p.items, &i)))
			bench_fail("buffered", "tt_send(items)", r);
	if ((r = tt_chan_close(p.items)))
		bench_fail("buffered", "tt_chan_close", r);
	int64_t sum;
	if ((r = tt_recv(p.sum, &sum, NULL)))
		bench_fail("buffered", "tt_recv(sum)", r);
	int64_t elapsed = tt_now() - t0;

	if (sum != (int64_t)n * (n - 1) / 2) {
		fprintf(stderr, "buffered: wrong sum %lld\n", (long long)sum);
		exit(1);
	}
	tt_chan_release(p.items);
	tt_chan_release(p.sum);
	return elapsed;
}

int main(int argc, char **argv)
{
	long n = bench_count(argc, argv, "buffered", 10000000);

	buffered(bench_warmup(n));
	int64_t elapsed = buffered(n);

	printf("buffered %.2f ns/item\n", bench_per(elapsed, n));
	return 0;
}
