/* time_after_loop — the time.After pitfall: a select loop that makes a
 * fresh timer on every iteration.
 *
 *   for { select { case v := <-work: ...; case <-time.After(time.Minute): } }
 *
 * In Go before 1.23 each of those timers lived until it fired, a minute
 * later: a busy loop piles up timers. Here the loop runs --iterations
 * times (default 1,000,000), releasing each tt_after channel as it goes;
 * the timer goes with its channel, so resident memory stays flat. Prints
 * the resident size after a warm-up and at the end, and the growth.
 *
 *   time_after_loop [--iterations N]
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <tether.h>

static long resident_kib(void)
{
	long pages = 0, rss = 0;
	FILE *fp = fopen("/proc/self/statm", "r");
	if (fp) {
		if (fscanf(fp, "%ld %ld", &pages, &rss) != 2)
			rss = 0;
		fclose(fp);
	}
	return rss * (sysconf(_SC_PAGESIZE) / 1024);
}

int main(int argc, char **argv)
{
	long n = 1000000;
	for (int i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--iterations") == 0 && i + 1 < argc) {
			char *end;
			n = strtol(argv[++i], &end, 10);
			if (*end || n < 1) {
				fprintf(stderr, "time_after_loop: "
						"--iterations needs a count "
						">= 1\n");
				return 2;
			}
		} else {
			fprintf(stderr, "usage: time_after_loop "
					"[--iterations N]\n");
			return 2;
		}
	}
	tt_chan *work;
	if (tt_chan_make(&work, sizeof(long), 1)) {
		fprintf(stderr, "time_after_loop: %s\n", tt_last_error());
		return 2;
	}
	long warm = n < 10000 ? n / 10 : 10000, before = 0, sum = 0;
	for (long i = 0; i < n; i++) {
		if (i == warm)
			before = resident_kib();
		if (tt_send(work, &i) != 0) { /* the work is always first */
			fprintf(stderr, "time_after_loop: %s\n",
				tt_last_error());
			return 2;
		}
		tt_chan *timeout;
		if (tt_after(&timeout, TT_MINUTE)) {
			fprintf(stderr, "time_after_loop: %s\n",
				tt_last_error());
			return 2;
		}
		long v = 0;
		tt_case cases[] = {
			TT_CASE_RECV_INTO(work, &v, NULL),
			TT_CASE_RECV_DISCARD(timeout, NULL),
		};
		if (tt_select(cases, 2, TT_FOREVER) == 0)
			sum += v;
		tt_chan_release(timeout); /* stops and frees its timer */
	}
	long after = resident_kib();
	tt_chan_release(work);
	printf("iterations %ld\n", n);
	printf("resident after warm-up %ld KiB\n", before);
	printf("resident at end %ld KiB\n", after);
	printf("resident growth %ld KiB\n", after - before);
	return sum == n * (n - 1) / 2 ? 0 : 1;
}
