/* What the leak examples share: the command line and the final check.
 *
 *   <example> [--fixed] [--wait S]
 *
 * Without --fixed an example runs the leaky version of its program; with
 * it, the fixed one. Either way it then waits S seconds (a fraction is
 * fine), lets the leak checker look, and exits 1 if it found leaked
 * goroutines (its report on stderr), 0 if not. Exit status 2 is a bad
 * command line. */
#ifndef LEAKEX_H
#define LEAKEX_H

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <tether.h>

typedef struct leakex_args {
	bool fixed;
	double wait;   /* seconds */
} leakex_args;

static inline leakex_args leakex_parse(int argc, char **argv,
				       double default_wait)
{
	leakex_args a = {false, default_wait};
	for (int i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--fixed") == 0) {
			a.fixed = true;
		} else if (strcmp(argv[i], "--wait") == 0 && i + 1 < argc) {
			char *end;
			a.wait = strtod(argv[++i], &end);
			if (*end || a.wait < 0 || a.wait > 3600) {
				fprintf(stderr, "%s: --wait needs seconds "
						"(0 to 3600), got %s\n",
					argv[0], argv[i]);
				exit(2);
			}
		} else {
			fprintf(stderr, "usage: %s [--fixed] [--wait S]\n",
				argv[0]);
			exit(2);
		}
	}
	return a;
}

/* Wait, then check: the exit status of the example. */
static inline int leakex_check(const leakex_args *a)
{
	tt_sleep((int64_t)(a->wait * 1e9));
	int n = tt_leak_verify_none(NULL);
	if (n < 0) {
		fprintf(stderr, "leak check failed: %s\n", tt_last_error());
		return 2;
	}
	return n > 0 ? 1 : 0;
}

/* Stop on an unexpected error from tether. */
static inline void leakex_must(int r, const char *what)
{
	if (r < 0) {
		fprintf(stderr, "%s: %s (%s)\n", what, tt_strerror(r),
			tt_last_error());
		exit(2);
	}
}

#endif
