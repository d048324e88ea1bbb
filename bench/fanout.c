/* fanout — CPU-bound fan-out, on one P and on two: start N goroutines
 * (default 20,000) that each do the same fixed arithmetic (about 20 us),
 * and send their result to main over a buffered channel; main receives
 * and checks all N. Prints the ns per goroutine from the first spawn to
 * the last result with one P (tt_runtime_procs_set(1)) and with two, and
 * the speed-up of two over one. The Go twin does the same at GOMAXPROCS
 * 1 and 2.
 *
 * Warm-up (both sides): one untimed round of N/10 at each setting. */
#include "bench.h"

#define WORK_STEPS 20000

typedef struct item {
	tt_chan *out;
	uint64_t seed;
} item;

static uint64_t work(uint64_t x)
{
	for (int k = 0; k < WORK_STEPS; k++)
		x = x * 6364136223846793005u + 1442695040888963407u;
	return x;
}

static void worker(void *arg)
{
	item *it = arg;
	uint64_t r = work(it->seed);
	if (tt_send(it->out, &r) != 0) {
		fprintf(stderr, "fanout: send: %s\n", tt_last_error());
		exit(1);
	}
}

static double fan(long n, item *items)
{
	tt_chan *out = NULL;
	if (tt_chan_make(&out, sizeof(uint64_t), 1024) != 0) {
		fprintf(stderr, "fanout: %s\n", tt_last_error());
		exit(1);
	}
	uint64_t want = 0;
	for (long i = 0; i < n; i++)
		want ^= work((uint64_t)i + 1);
	int64_t t0 = tt_now();
	long got = 0;
	uint64_t sum = 0;
	for (long i = 0; i < n; i++) {
		items[i] = (item){.out = out, .seed = (uint64_t)i + 1};
		if (tt_go(worker, &items[i]) < 0) {
			fprintf(stderr, "fanout: tt_go: %s\n", tt_last_error());
			exit(1);
		}
		/* Take what is ready as it goes (the Go twin does the
		 * same), so that the channel never fills. */
		uint64_t r;
		while (tt_chan_recv_until(out, &r, sizeof r, NULL, TT_TRY) == 0) {
			sum ^= r;
			got++;
		}
	}
	for (; got < n; got++) {
		uint64_t r;
		if (tt_recv(out, &r, NULL) != 0) {
			fprintf(stderr, "fanout: recv: %s\n", tt_last_error());
			exit(1);
		}
		sum ^= r;
	}
	int64_t t = tt_now() - t0;
	if (sum != want) {
		fprintf(stderr, "fanout: wrong results\n");
		exit(1);
	}
	tt_chan_release(out);
	return (double)t / (double)n;
}

int main(int argc, char **argv)
{
	long n = bench_count(argc, argv, "fanout", 20000);
	item *items = calloc((size_t)n, sizeof *items);
	if (items == NULL) {
		fprintf(stderr, "fanout: out of memory\n");
		return 1;
	}
	long warm = n / 10 > 0 ? n / 10 : 1;
	double ns[2];
	for (int p = 1; p <= 2; p++) {
		if (tt_runtime_procs_set(p) < 0) {
			fprintf(stderr, "fanout: %s\n", tt_last_error());
			return 1;
		}
		fan(warm, items);
		ns[p - 1] = fan(n, items);
	}
	printf("fanout_p1 %.1f ns/goroutine\n", ns[0]);
	printf("fanout_p2 %.1f ns/goroutine\n", ns[1]);
	printf("fanout_speedup %.3f x\n", ns[0] / ns[1]);
	free(items);
	return 0;
}
