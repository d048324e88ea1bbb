/* rand_stream — the generator from goleak's example: newRandStream keeps
 * sending random ints on an unbuffered channel after its consumer has
 * read the three it wanted.
 *
 * Leaky: nobody tells the generator to stop; it blocks in its send
 * forever, and the count of goroutines stays at 2. Fixed: the consumer
 * closes a `done` channel; the generator selects on it, prints
 * "newRandStream closure exited." and ends.
 *
 *   rand_stream [--fixed] [--wait S]     (S defaults to 10, as in the
 *                                         original's "after 10s")
 */
#include "leakex.h"

struct stream {
	tt_chan *out;  /* chan int64_t, unbuffered */
	tt_chan *done; /* chan struct{}; NULL (never ready) when leaky */
	uint64_t seed;
};

static int64_t next_rand(uint64_t *s)
{
	uint64_t z = (*s += UINT64_C(0x9e3779b97f4a7c15));
	z = (z ^ (z >> 30)) * UINT64_C(0xbf58476d1ce4e5b9);
	z = (z ^ (z >> 27)) * UINT64_C(0x94d049bb133111eb);
	return (int64_t)((z ^ (z >> 31)) >> 1); /* like rand.Int(): >= 0 */
}

/* The closure newRandStream starts. */
static void rand_stream_closure(void *arg)
{
	struct stream *st = arg;
	for (;;) {
		int64_t v = next_rand(&st->seed);
		tt_case cases[] = {
			TT_CASE_SEND_FROM(st->out, &v),
			TT_CASE_RECV_DISCARD(st->done, NULL),
		};
		if (tt_select(cases, 2, TT_FOREVER) == 1)
			break;
	}
	printf("newRandStream closure exited.\n");
	tt_chan_close(st->out);
}

static tt_chan *new_rand_stream(struct stream *st, tt_chan *done)
{
	leakex_must(tt_chan_make(&st->out, sizeof(int64_t), 0),
		    "tt_chan_make");
	st->done = done;
	st->seed = 1;
	leakex_must((int)tt_go(rand_stream_closure, st), "tt_go");
	return st->out;
}

int main(int argc, char **argv)
{
	leakex_args a = leakex_parse(argc, argv, 10.0);
	static struct stream st;
	printf("initial goroutines %lld\n", (long long)tt_num_goroutine());
	tt_chan *done = NULL;
	if (a.fixed)
		leakex_must(tt_chan_make(&done, 0, 0), "tt_chan_make");
	tt_chan *rs = new_rand_stream(&st, done);
	printf("3 random ints:\n");
	for (int i = 1; i <= 3; i++) {
		int64_t v;
		leakex_must(tt_recv(rs, &v, NULL), "tt_recv");
		printf("%d: %lld\n", i, (long long)v);
	}
	printf("current goroutines %lld\n", (long long)tt_num_goroutine());
	if (a.fixed) {
		tt_chan_close(done);
		tt_sleep((int64_t)(a.wait * 1e9));
		printf("final goroutines %lld\n",
		       (long long)tt_num_goroutine());
		a.wait = 0;
	} else {
		tt_sleep((int64_t)(a.wait * 1e9));
		printf("after %gs goroutines %lld\n", a.wait,
		       (long long)tt_num_goroutine());
		a.wait = 0;
	}
	fflush(stdout);
	int r = leakex_check(&a);
	if (done)
		tt_chan_release(done);
	tt_chan_release(rs);
	return r;
}
