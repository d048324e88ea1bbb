/* tether tests — a kernel without epoll_pwait2 (before Linux 5.11, or
 * valgrind, which does not know the call) costs one failed call per
 * process, not one per timed wait.
 *
 * The child runs under strace, which makes every epoll_pwait2 fail with
 * ENOSYS and prints each attempt on stderr; the child's timed reads must
 * still time out and still deliver data (through the epoll_wait
 * fallback), and strace must have seen exactly one attempt. */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "testutil.h"

#define WAITS 40

static int pipe_w = -1;

static void late_writer(void *arg)
{
	(void)arg;
	tt_sleep(5 * TT_MILLISECOND);
	if (write(pipe_w, "x", 1) != 1)
		fprintf(stderr, "tu-write-failed\n");
}

static void child_timed_waits(void)
{
	int p[2];
	if (pipe2(p, O_NONBLOCK | O_CLOEXEC) != 0)
		return;
	pipe_w = p[1];
	char c;
	int timeouts = 0;
	for (int i = 0; i < WAITS; i++)
		if (tt_read(p[0], &c, 1, tt_deadline_in(TT_MILLISECOND)) ==
		    -ETIMEDOUT)
			timeouts++;
	tt_go(late_writer, NULL);
	ssize_t n = tt_read(p[0], &c, 1, tt_deadline_in(10 * TT_SECOND));
	fprintf(stderr, "tu-timeouts=%d\ntu-read=%zd\n", timeouts, n);
}

static void run_strace(void *arg)
{
	(void)arg;
	char self[4096];
	ssize_t n = readlink("/proc/self/exe", self, sizeof self - 1);
	if (n <= 0)
		_exit(127);
	self[n] = '\0';
	/* LeakSanitizer cannot run under ptrace: off in the traced child. */
	const char *asan = getenv("ASAN_OPTIONS");
	char opts[1024];
	snprintf(opts, sizeof opts, "%s%sdetect_leaks=0", asan ? asan : "",
		 asan && *asan ? ":" : "");
	setenv("ASAN_OPTIONS", opts, 1);
	char *argv[] = {"strace", "-f", "-qq", "-e", "trace=epoll_pwait2",
			"-e", "inject=epoll_pwait2:error=ENOSYS", self,
			"--tu-child", "timed_waits", NULL};
	execvp("strace", argv);
	fprintf(stderr, "tu-no-strace: %s\n", strerror(errno));
	_exit(127);
}

static int count(const char *s, const char *what)
{
	int k = 0;
	for (const char *p = s; (p = strstr(p, what)) != NULL; p++)
		k++;
	return k;
}

static void test_pwait2_enosys_is_remembered(void **state)
{
	(void)state;
	if (tu_emulated())
		skip(); /* strace cannot trace through qemu-user */
	TU_REQUIRE_THREADS();
	tu_child c;
	int r = tu_fork_run(run_strace, NULL, 60 * TT_SECOND, &c);
	if (r != 0)
		fail_msg("could not start strace: %d", r);
	if (strstr(c.err, "PTRACE_TRACEME") || strstr(c.err, "ptrace(")) {
		print_message("skipped: strace cannot trace here:\n%s\n",
			      c.err);
		tu_child_free(&c);
		skip();
	}
	TU_ASSERT_NOT_CONTAINS(c.err, "tu-no-strace");
	TU_ASSERT_CHILD_EXIT(&c, 0);
	assert_int_equal(tu_child_marker(&c, "tu-timeouts"), WAITS);
	assert_int_equal(tu_child_marker(&c, "tu-read"), 1);
	TU_ASSERT_CONTAINS(c.err, "ENOSYS");
	int calls = count(c.err, "epoll_pwait2(");
	TU_ASSERT_MSG(calls == 1, "epoll_pwait2 called %d times:\n%s", calls,
		      c.err);
	tu_child_free(&c);
}

static const tu_child_case child_cases[] = {
	{"timed_waits", child_timed_waits},
};

int main(int argc, char **argv)
{
	tu_child_dispatch(argc, argv, child_cases,
			  sizeof child_cases / sizeof child_cases[0]);
	const struct CMUnitTest tests[] = {
		TU_TEST(test_pwait2_enosys_is_remembered),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
