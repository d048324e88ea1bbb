/* thread_create — what libtether-preload.so adds to pthread_create.
 *
 * A loop of pthread_create + pthread_join of a thread that returns at
 * once, timed plain and with the preload (which records the creation
 * stack with unw_backtrace, takes a registry slot, and marks the thread
 * on exit and on join). The program runs itself as a child, R rounds of
 * plain then preloaded (the order alternating), and prints the medians:
 *
 *   thread_create_plain     <ns per create+join> ns
 *   thread_create_preload   <ns per create+join> ns
 *   thread_create_overhead  <percent> %
 *
 * and the same three for the CPU time of the process (all threads) per
 * create+join (thread_create_cpu_*), which a busy machine disturbs less
 * than the wall clock.
 *
 * Target: overhead under 10%. There is no Go twin (Go has no thread
 * creation a program controls), so bench/run does not run it; run
 *
 *   build/bench/thread_create [-n N] [-r R]
 *
 * It finds the preload next to the build: build/libtether-preload.so. */
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static void *nothing(void *p)
{
	return p;
}

static int64_t now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

/* CPU time of the process (every thread), ns. */
static int64_t cpu_ns(void)
{
	struct rusage ru;
	getrusage(RUSAGE_SELF, &ru);
	return ((int64_t)ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) * 1000000000 +
	       ((int64_t)ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) * 1000;
}

static int child(long n)
{
	for (long i = 0; i < n / 10 + 1; i++) { /* warm up */
		pthread_t t;
		if (pthread_create(&t, NULL, nothing, NULL) != 0)
			return 1;
		pthread_join(t, NULL);
	}
	int64_t t0 = now_ns(), c0 = cpu_ns();
	for (long i = 0; i < n; i++) {
		pthread_t t;
		if (pthread_create(&t, NULL, nothing, NULL) != 0) {
			fprintf(stderr, "thread_create: pthread_create failed\n");
			return 1;
		}
		pthread_join(t, NULL);
	}
	printf("%.1f %.1f\n", (double)(now_ns() - t0) / (double)n,
	       (double)(cpu_ns() - c0) / (double)n);
	return 0;
}

/* Runs this program as a child (under the preload when `preload`), and
 * returns its ns per create+join (wall clock; *cpu: CPU time of all its
 * threads), or -1. */
static double run(const char *self, const char *preload, long n, double *cpu)
{
	char cmd[4096];
	snprintf(cmd, sizeof cmd, "%s%s %s --child %ld",
		 preload ? "env LD_PRELOAD=" : "", preload ? preload : "",
		 self, n);
	FILE *p = popen(cmd, "r");
	if (!p)
		return -1;
	double v = -1;
	if (fscanf(p, "%lf %lf", &v, cpu) != 2)
		v = -1;
	if (pclose(p) != 0)
		return -1;
	return v;
}

static int cmp(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return (x > y) - (x < y);
}

int main(int argc, char **argv)
{
	long n = 20000, rounds = 7;
	int is_child = 0;
	for (int i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--child") && i + 1 < argc) {
			is_child = 1;
			n = atol(argv[++i]);
		} else if (!strcmp(argv[i], "-n") && i + 1 < argc) {
			n = atol(argv[++i]);
		} else if (!strcmp(argv[i], "-r") && i + 1 < argc) {
			rounds = atol(argv[++i]);
		} else {
			fprintf(stderr, "usage: thread_create [-n N] [-r R]\n");
			return 2;
		}
	}
	if (n < 1 || rounds < 1 || rounds > 99) {
		fprintf(stderr, "thread_create: bad -n or -r\n");
		return 2;
	}
	if (is_child)
		return child(n);

	char self[2048], preload[2100];
	ssize_t len = readlink("/proc/self/exe", self, sizeof self - 1);
	if (len <= 0)
		return 1;
	self[len] = 0;
	char dir[2048];
	memcpy(dir, self, (size_t)len + 1);
	char *slash = strrchr(dir, '/');
	if (slash)
		*slash = 0; /* build/bench */
	snprintf(preload, sizeof preload, "%s/../libtether-preload.so", dir);
	if (access(preload, R_OK) != 0) {
		fprintf(stderr, "thread_create: %s not built\n", preload);
		return 1;
	}
	double plain[99], pre[99], cplain[99], cpre[99];
	for (long r = 0; r < rounds; r++) {
		if (r % 2 == 0) {
			plain[r] = run(self, NULL, n, &cplain[r]);
			pre[r] = run(self, preload, n, &cpre[r]);
		} else {
			pre[r] = run(self, preload, n, &cpre[r]);
			plain[r] = run(self, NULL, n, &cplain[r]);
		}
		if (plain[r] < 0 || pre[r] < 0) {
			fprintf(stderr, "thread_create: a child failed\n");
			return 1;
		}
	}
	qsort(plain, (size_t)rounds, sizeof *plain, cmp);
	qsort(pre, (size_t)rounds, sizeof *pre, cmp);
	double a = plain[rounds / 2], b = pre[rounds / 2];
	printf("thread_create_plain %.1f ns\n", a);
	printf("thread_create_preload %.1f ns\n", b);
	printf("thread_create_overhead %.1f %%\n", (b - a) / a * 100.0);
	qsort(cplain, (size_t)rounds, sizeof *cplain, cmp);
	qsort(cpre, (size_t)rounds, sizeof *cpre, cmp);
	a = cplain[rounds / 2];
	b = cpre[rounds / 2];
	printf("thread_create_cpu_plain %.1f ns\n", a);
	printf("thread_create_cpu_preload %.1f ns\n", b);
	printf("thread_create_cpu_overhead %.1f %%\n", (b - a) / a * 100.0);
	return 0;
}
