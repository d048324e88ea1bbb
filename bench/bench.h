/* tether benchmarks — what every C benchmark shares: the command line,
 * the clock, resident memory and the one-line-per-metric output.
 *
 * Each benchmark is one program (bench/<name>.c, built to
 * build/bench/<name>) with a Go twin (bench/go/<name>/main.go) that does
 * the same work. Both print exactly one line per metric,
 *
 *     <metric> <value> <unit>
 *
 * and nothing else on stdout, so bench/run can compare them. Errors go to
 * stderr with a non-zero exit status.
 *
 * This is a header, not a .c file, because every C file in bench/ becomes
 * its own program; the helpers are static so each program gets its own
 * copy. */
#ifndef TETHER_BENCH_H
#define TETHER_BENCH_H

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <tether.h>

/* The count from `-n N` (or `-n=N`, `--n N`, like Go's flag package), or
 * def when none is given. Exits with status 2 on a bad command line. */
static inline long bench_count(int argc, char **argv, const char *name,
			       long def)
{
	long n = def;
	for (int i = 1; i < argc; i++) {
		const char *a = argv[i];
		const char *v = NULL;
		if (strcmp(a, "-n") == 0 || strcmp(a, "--n") == 0) {
			v = i + 1 < argc ? argv[++i] : NULL;
		} else if (strncmp(a, "-n=", 3) == 0) {
			v = a + 3;
		} else if (strncmp(a, "--n=", 4) == 0) {
			v = a + 4;
		} else if (strcmp(a, "-h") == 0 || strcmp(a, "--help") == 0) {
			printf("usage: %s [-n N]   (default N = %ld)\n", name,
			       def);
			exit(0);
		} else {
			fprintf(stderr,
				"%s: unknown argument %s (usage: %s "
				"[-n N])\n",
				name, a, name);
			exit(2);
		}
		char *end;
		errno = 0;
		n = v ? strtol(v, &end, 10) : 0;
		if (!v || errno || *end || n < 1) {
			fprintf(stderr, "%s: -n needs a count >= 1, got %s\n",
				name, v ? v : "nothing");
			exit(2);
		}
	}
	return n;
}

/* Resident bytes of this process, from /proc/self/statm (its second
 * field, in pages). The Go twins read the same file the same way. */
static inline long bench_rss(void)
{
	long size = 0, resident = 0;
	FILE *fp = fopen("/proc/self/statm", "r");
	if (!fp) {
		perror("bench: /proc/self/statm");
		exit(1);
	}
	if (fscanf(fp, "%ld %ld", &size, &resident) != 2)
		resident = 0;
	fclose(fp);
	return resident * sysconf(_SC_PAGESIZE);
}

/* A tether call that should not fail did: say which and stop. */
static inline void bench_fail(const char *name, const char *what, long err)
{
	fprintf(stderr, "%s: %s failed: %s (%s)\n", name, what,
		tt_strerror((int)err), tt_last_error());
	exit(1);
}

/* Nanoseconds per unit of work: elapsed over count. */
static inline double bench_per(int64_t elapsed_ns, long count)
{
	return (double)elapsed_ns / (double)count;
}

/* A memory sink for tt_profile_write (a growing buffer, doubling from
 * 64 KiB), as the Go twins' bytes.Buffer. */
typedef struct bench_sink {
	char *p;
	size_t len, cap;
} bench_sink;

static inline int bench_sink_write(void *arg, const void *d, size_t n)
{
	bench_sink *s = arg;
	if (s->len + n > s->cap) {
		size_t c = s->cap ? s->cap : 1 << 16;
		while (c < s->len + n)
			c *= 2;
		char *p = realloc(s->p, c);
		if (p == NULL)
			return -ENOMEM;
		s->p = p;
		s->cap = c;
	}
	memcpy(s->p + s->len, d, n);
	s->len += n;
	return 0;
}

/* The warm-up count for a timed loop of n: one percent, at least one. */
static inline long bench_warmup(long n)
{
	return n / 100 > 0 ? n / 100 : 1;
}

#endif
