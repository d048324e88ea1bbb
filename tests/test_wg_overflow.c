/* tether tests — tt_wg_add past INT64_MAX panics (in a child process):
 * the message and the stack down to the call, with its file:line, and no
 * signed overflow on the way (the sanitizer build would report it). */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif

#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "testutil.h"

static void child_wg_overflow(void)
{
	tt_waitgroup *wg = NULL;
	int r = tt_wg_make(&wg);
	if (r != 0 || tt_wg_add(wg, INT64_MAX - 1) != 0 ||
	    tt_wg_add(wg, 1) != 0)
		return;
	fprintf(stderr, "tu-line=%d\n", __LINE__ + 1);
	r = tt_wg_add(wg, 1);
	fprintf(stderr, "tu-survived r=%d count=%lld\n", r,
		(long long)tt_wg_count(wg));
}

static void test_wg_add_overflow_panics(void **state)
{
	(void)state;
	tu_child c;
	int r = tu_spawn_self("wg_overflow", 60 * TT_SECOND, &c);
	if (r != 0)
		fail_msg("could not start the child: %d", r);
	assert_false(c.timed_out);
	TU_ASSERT_NOT_CONTAINS(c.err, "tu-survived");
	TU_ASSERT_NOT_CONTAINS(c.err, "runtime error"); /* UBSan */
	TU_ASSERT_CHILD_SIGNAL(&c, SIGABRT);
	TU_ASSERT_CONTAINS(c.err,
			   "tether: panic: sync: WaitGroup counter overflow\n");
	TU_ASSERT_CONTAINS(c.err, "goroutine 1 [running]:");
	TU_ASSERT_CONTAINS(c.err, "tt_wg_add(");
	TU_ASSERT_CONTAINS(c.err, "child_wg_overflow(");
	long long line = tu_child_marker(&c, "tu-line");
	assert_true(line > 0);
	char want[64];
	snprintf(want, sizeof want, "test_wg_overflow.c:%lld", line);
	TU_ASSERT_CONTAINS(c.err, want);
	tu_child_free(&c);
}

static const tu_child_case child_cases[] = {
	{"wg_overflow", child_wg_overflow},
};

int main(int argc, char **argv)
{
	tu_child_dispatch(argc, argv, child_cases,
			  sizeof child_cases / sizeof child_cases[0]);
	const struct CMUnitTest tests[] = {
		TU_TEST(test_wg_add_overflow_panics),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
