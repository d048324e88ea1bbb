/* cpu_profile — what the CPU profile costs a CPU-bound program: pingpong
 * (two goroutines, two unbuffered channels, N round trips, all on one
 * thread) with the profile off and at 100 Hz, rounds alternating; each
 * round's cost is the thread's CPU time (CLOCK_THREAD_CPUTIME_ID, so the
 * signal handler's time is in it and other processes' is not). Prints the
 * median ns per round trip of each, the overhead, the samples the profile
 * held, and the CPU the profiler's reader thread used (the process's CPU
 * time less the benchmark thread's, over the profiled rounds).
 *
 * No Go twin: Go's figure for the same is its own profiler's, not a
 * comparison of runtimes. Usage: cpu_profile [-n N] (default 2,000,000),
 * 7 rounds of each. */
#include <time.h>

#include "bench.h"

#define ROUNDS 7

struct pair {
	tt_chan *ping, *pong;
};

static void echo(void *arg)
{
	struct pair *p = arg;
	int64_t v;
	bool ok;
	while (tt_recv(p->ping, &v, &ok) == 0 && ok)
		if (tt_send(p->pong, &v))
			bench_fail("cpu_profile", "tt_send", -1);
}

static int64_t cpu_ns(clockid_t c)
{
	struct timespec ts;
	clock_gettime(c, &ts);
	return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

/* CPU ns of the calling thread for n round trips. */
static int64_t pingpong(long n)
{
	struct pair p;
	int r;
	if ((r = tt_chan_make(&p.ping, sizeof(int64_t), 0)) ||
	    (r = tt_chan_make(&p.pong, sizeof(int64_t), 0)))
		bench_fail("cpu_profile", "tt_chan_make", r);
	if (tt_go(echo, &p) < 0)
		bench_fail("cpu_profile", "tt_go", -1);
	int64_t t0 = cpu_ns(CLOCK_THREAD_CPUTIME_ID);
	for (int64_t i = 0; i < n; i++) {
		int64_t v;
		if ((r = tt_send(p.ping, &i)) || (r = tt_recv(p.pong, &v, NULL)))
			bench_fail("cpu_profile", "send/recv", r);
	}
	int64_t dt = cpu_ns(CLOCK_THREAD_CPUTIME_ID) - t0;
	tt_chan_close(p.ping);
	tt_yield();
	tt_chan_release(p.ping);
	tt_chan_release(p.pong);
	return dt;
}

static int cmp(const void *a, const void *b)
{
	int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
	return (x > y) - (x < y);
}

static int count_bytes(void *arg, const void *data, size_t len)
{
	(void)data;
	*(size_t *)arg += len;
	return 0;
}

int main(int argc, char **argv)
{
	long n = bench_count(argc, argv, "cpu_profile", 2000000);
	int64_t off[ROUNDS], on[ROUNDS], reader = 0, on_total = 0;
	size_t bytes = 0;
	pingpong(n / 100); /* warm-up */
	for (int k = 0; k < ROUNDS; k++) {
		off[k] = pingpong(n);
		int r = tt_cpu_profile_start(0, count_bytes, &bytes);
		if (r)
			bench_fail("cpu_profile", "tt_cpu_profile_start", r);
		int64_t p0 = cpu_ns(CLOCK_PROCESS_CPUTIME_ID);
		on[k] = pingpong(n);
		int64_t p1 = cpu_ns(CLOCK_PROCESS_CPUTIME_ID);
		if ((r = tt_cpu_profile_stop()))
			bench_fail("cpu_profile", "tt_cpu_profile_stop", r);
		reader += (p1 - p0) - on[k];
		on_total += on[k];
	}
	qsort(off, ROUNDS, sizeof *off, cmp);
	qsort(on, ROUNDS, sizeof *on, cmp);
	double a = (double)off[ROUNDS / 2] / (double)n;
	double b = (double)on[ROUNDS / 2] / (double)n;
	printf("pingpong_off %.2f ns/op\n", a);
	printf("pingpong_100hz %.2f ns/op\n", b);
	printf("overhead %.2f %%\n", (b - a) / a * 100);
	printf("reader_cpu %.3f %%\n",
	       (double)reader / (double)on_total * 100);
	printf("profile_bytes %zu B/profile\n", bytes / ROUNDS);
	return 0;
}
