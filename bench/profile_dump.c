/* profile_dump — the goroutine profile of N parked goroutines (default
 * 100,000), written to memory at debug=1, debug=2 and debug=0.
 *
 *   profile_dump_d1        ms to write debug=1 (grouped text)
 *   profile_dump_d2        ms to write debug=2 (every goroutine's stack)
 *   profile_dump_d0        ms to write debug=0 (gzipped profile.proto)
 *   profile_dump_d1_cpu, _d2_cpu, _d0_cpu
 *                          the process's CPU ms for the same (on a loaded
 *                          machine the wall clock counts others' work)
 *   profile_dump_d2_mem    peak resident growth while debug=2 is written,
 *                          the text itself included, bytes
 *   profile_dump_d2_stall  the longest time another goroutine of the same
 *                          scheduler waited to run while debug=2 was
 *                          written, ms
 *
 * Twin: bench/go/profile_dump/main.go (pprof.Lookup("goroutine").WriteTo).
 * The goroutines park in a chain of three functions on one channel, so
 * their stacks are equal and a few frames deep. Each dump goes into a
 * growing buffer that is kept until the dump ends; resident memory is
 * sampled at every piece the writer receives (both sides), so the peak
 * counts what the dump holds at once. A ticker goroutine yields in a loop
 * the whole time and records the longest gap between its turns: with one
 * thread (GOMAXPROCS=1 for Go) a gap is time the dump did not let others
 * run. */
#include <time.h>

#include "bench.h"

static tt_chan *quit;
static long reached;
static volatile long sink;

__attribute__((noinline)) static void level3(void)
{
	int64_t v;
	reached++;
	tt_recv(quit, &v, NULL);
	sink++;
}

__attribute__((noinline)) static void level2(void)
{
	level3();
	sink++;
}

static void level1(void *arg)
{
	(void)arg;
	level2();
	sink++;
}

/* ---- the ticker ----------------------------------------------------------- */

static bool ticking;
static int64_t last_tick, max_gap;

static void ticker(void *arg)
{
	(void)arg;
	last_tick = tt_now();
	while (ticking) {
		int64_t now = tt_now();
		if (now - last_tick > max_gap)
			max_gap = now - last_tick;
		last_tick = now;
		tt_yield();
	}
}

/* ---- the sink -------------------------------------------------------------------- */

typedef struct membuf {
	char *p;
	size_t len, cap;
	long rss_peak;
} membuf;

static int to_mem(void *arg, const void *data, size_t len)
{
	membuf *m = arg;
	if (m->len + len > m->cap) {
		size_t nc = m->cap ? m->cap * 2 : 65536;
		while (nc < m->len + len)
			nc *= 2;
		char *p = realloc(m->p, nc);
		if (!p)
			return -ENOMEM;
		m->p = p;
		m->cap = nc;
	}
	memcpy(m->p + m->len, data, len);
	m->len += len;
	long r = bench_rss();
	if (r > m->rss_peak)
		m->rss_peak = r;
	return 0;
}

static double cpu_ms(void)
{
	struct timespec t;
	clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &t);
	return (double)t.tv_sec * 1e3 + (double)t.tv_nsec / 1e6;
}

/* One dump: ms taken, the CPU ms, the peak resident growth and the
 * longest stall. */
static double dump(int debug, double *cpu, long *mem, double *stall_ms,
		   size_t *bytes)
{
	membuf m = { 0 };
	long rss0 = bench_rss();
	max_gap = 0;
	last_tick = tt_now();
	double c0 = cpu_ms();
	int64_t t0 = tt_now();
	int r = tt_profile_write("goroutine", debug, to_mem, &m);
	int64_t t1 = tt_now();
	*cpu = cpu_ms() - c0;
	if (r)
		bench_fail("profile_dump", "tt_profile_write", r);
	/* The ticker's gap may still be open: close it at the end. */
	if (t1 - last_tick > max_gap)
		max_gap = t1 - last_tick;
	*mem = m.rss_peak - rss0;
	*stall_ms = (double)max_gap / 1e6;
	*bytes = m.len;
	free(m.p);
	return (double)(t1 - t0) / 1e6;
}

int main(int argc, char **argv)
{
	long n = bench_count(argc, argv, "profile_dump", 100000);
	int r = tt_chan_make(&quit, sizeof(int64_t), 0);
	if (r)
		bench_fail("profile_dump", "tt_chan_make", r);
	for (long i = 0; i < n; i++) {
		int64_t id = tt_go(level1, NULL);
		if (id < 0)
			bench_fail("profile_dump", "tt_go", id);
	}
	while (reached < n)
		tt_yield();
	ticking = true;
	tt_go(ticker, NULL);

	/* Warm-up: the first dump symbolizes the few distinct PCs. */
	long mem;
	double stall, c1, c2, c0;
	size_t bytes;
	dump(1, &c1, &mem, &stall, &bytes);

	double d1 = dump(1, &c1, &mem, &stall, &bytes);
	double d2 = dump(2, &c2, &mem, &stall, &bytes);
	long d2_mem = mem;
	double d2_stall = stall;
	double d0 = dump(0, &c0, &mem, &stall, &bytes);
	ticking = false;

	printf("profile_dump_d1 %.2f ms\n", d1);
	printf("profile_dump_d2 %.2f ms\n", d2);
	printf("profile_dump_d0 %.2f ms\n", d0);
	printf("profile_dump_d1_cpu %.2f ms\n", c1);
	printf("profile_dump_d2_cpu %.2f ms\n", c2);
	printf("profile_dump_d0_cpu %.2f ms\n", c0);
	printf("profile_dump_d2_mem %ld bytes\n", d2_mem);
	printf("profile_dump_d2_stall %.2f ms\n", d2_stall);
	fflush(stdout);
	exit(0);
}
