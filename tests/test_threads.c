/* The thread leak check: in-process (tt_threads_*, with the preload linked
 * so creators and joins are tracked) and at exit under
 * libtether-preload.so, on programs not built with tether
 * (tests/threads/). */
#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "testutil.h"
#include "tether.h"

static void nap_ms(long ms)
{
	struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
	while (nanosleep(&ts, &ts) != 0)
		;
}

/* --- in-process ------------------------------------------------------------ */

typedef struct blocked {
	int fd[2];
	_Atomic int tid;
	const char *name;
} blocked;

__attribute__((noinline)) static void *blocked_reader(void *p)
{
	blocked *b = p;
	if (b->name)
		pthread_setname_np(pthread_self(), b->name);
	atomic_store(&b->tid, (int)gettid());
	char c;
#if TU_TSAN
	/* ThreadSanitizer holds a signal back from a thread inside read()
	 * until read() returns, but delivers it inside poll(). */
	struct pollfd q = {.fd = b->fd[0], .events = POLLIN};
	while (poll(&q, 1, -1) < 0)
		;
#endif
	while (read(b->fd[0], &c, 1) < 0)
		;
	return NULL;
}

/* The creator the reports must name. */
__attribute__((noinline)) static pthread_t start_blocked(blocked *b)
{
	pthread_t t;
	assert_int_equal(pipe(b->fd), 0);
	atomic_store(&b->tid, 0);
	assert_int_equal(pthread_create(&t, NULL, blocked_reader, b), 0);
	while (!atomic_load(&b->tid))
		nap_ms(1);
	/* Into read(): asleep, however busy the machine (at most 10 s). */
	char path[64], buf[512];
	snprintf(path, sizeof path, "/proc/self/task/%d/stat",
		 atomic_load(&b->tid));
	for (int i = 0; i < 10000; i++) {
		FILE *f = fopen(path, "r");
		assert_non_null(f);
		size_t n = fread(buf, 1, sizeof buf - 1, f);
		fclose(f);
		buf[n] = 0;
		char *p = strrchr(buf, ')');
		if (p && p[1] == ' ' && p[2] == 'S')
			break;
		nap_ms(1);
	}
	return t;
}

static void stop_blocked(blocked *b, pthread_t t)
{
	assert_int_equal(write(b->fd[1], "x", 1), 1);
	assert_int_equal(pthread_join(t, NULL), 0);
	close(b->fd[0]);
	close(b->fd[1]);
}

static tt_threads_opts *once_opts(void)
{
	tt_threads_opts *o;
	assert_int_equal(tt_threads_opts_make(&o), 0);
	assert_int_equal(tt_threads_retry(o, 0, TT_MILLISECOND), 0);
	return o;
}

static void test_tracking(void **state)
{
	(void)state;
	/* The test links libtether-preload.so: pthread_create is ours. */
	assert_true(tt_threads_tracking());
}

/* qemu-user runs threads of its own in the process, and they hang in
 * pthread_create on this kernel: nothing here can be checked under it. */
static void skip_emulated(void)
{
	if (getenv("TETHER_EMULATOR")) {
		print_message("skipped: under an emulator\n");
		skip();
	}
}

static void test_clean(void **state)
{
	(void)state;
	skip_emulated();
	blocked b = {.name = NULL};
	pthread_t t = start_blocked(&b);
	stop_blocked(&b, t);
	assert_int_equal(tt_threads_verify_none(NULL), 0);
}

static atomic_int self_detached;

static void *self_detach_worker(void *arg)
{
	(void)arg;
	pthread_detach(pthread_self());
	atomic_fetch_add(&self_detached, 1);
	return NULL;
}

/* Threads that detach themselves at once, often before pthread_create has
 * returned in their creator: none is reported, in 5 rounds of 40. */
static void test_self_detach(void **state)
{
	(void)state;
	skip_emulated();
	for (int round = 0; round < 5; round++) {
		atomic_store(&self_detached, 0);
		int n = 0;
		for (int i = 0; i < 40; i++) {
			pthread_t t;
			if (pthread_create(&t, NULL, self_detach_worker, NULL) ==
			    0)
				n++;
		}
		TU_WAIT_FOR(atomic_load(&self_detached) == n, 10 * TT_SECOND);
		/* Each has detached; the last ones may still be exiting, which
		 * the default retries wait out. A false "finished, not
		 * joined" record would stay however long they retry. */
		tt_threads_list l;
		tt_threads_opts *o;
		assert_int_equal(tt_threads_opts_make(&o), 0);
		int found = tt_threads_find(o, &l);
		tt_threads_opts_free(o);
		TU_ASSERT_MSG(found == 0, "round %d: %d reported:\n%s", round,
			      found, l.report ? l.report : "");
		tt_threads_list_free(&l);
	}
}

static void test_blocked_named(void **state)
{
	(void)state;
	skip_emulated();
	blocked b = {.name = "tt-reader"};
	pthread_t t = start_blocked(&b);
	tt_threads_opts *o = once_opts();
	tt_threads_list l;
	assert_int_equal(tt_threads_find(o, &l), 1);
	assert_int_equal(l.n, 1);
	assert_int_equal(l.t[0].tid, atomic_load(&b.tid));
	assert_int_equal(l.t[0].creator_tid, (int)gettid());
	assert_string_equal(l.t[0].name, "tt-reader");
	assert_string_equal(l.t[0].state, "sleeping");
	assert_false(l.t[0].finished);
	assert_string_equal(l.t[0].created_by, "start_blocked");
	assert_non_null(strstr(l.t[0].stack, "blocked_reader(...)"));
	assert_non_null(strstr(l.t[0].stack, "created by start_blocked"));
	assert_non_null(strstr(l.t[0].stack, "test_blocked_named(...)"));
	assert_non_null(strstr(l.t[0].top, TU_TSAN ? "poll" : "read"));
	char head[128];
	snprintf(head, sizeof head,
		 "found unexpected threads:\n[Thread %d \"tt-reader\" in "
		 "state sleeping, with ", l.t[0].tid);
	assert_non_null(l.report);
	assert_memory_equal(l.report, head, strlen(head));
	assert_non_null(strstr(l.report, "\n]\n"));
	tt_threads_list_free(&l);

	/* Each filter drops it. */
	const char *what[] = {"name", "any", "created", "current"};
	for (size_t i = 0; i < sizeof what / sizeof *what; i++) {
		tt_threads_opts *f = once_opts();
		switch (i) {
		case 0:
			assert_int_equal(
				tt_threads_ignore_name(f, "tt-reader"), 0);
			break;
		case 1:
			assert_int_equal(tt_threads_ignore_any_function(
						 f, "blocked_reader"), 0);
			break;
		case 2:
			assert_int_equal(tt_threads_ignore_created_by(
						 f, "start_blocked"), 0);
			break;
		case 3:
			assert_int_equal(tt_threads_ignore_current(f), 0);
			break;
		}
		assert_int_equal(tt_threads_verify_none(f), 0);
		tt_threads_opts_free(f);
	}
	/* A filter that matches nothing keeps it. */
	tt_threads_opts *f = once_opts();
	assert_int_equal(tt_threads_ignore_top_function(f, "no_such_fn"), 0);
	assert_int_equal(tt_threads_ignore_name(f, "other"), 0);
	assert_int_equal(tt_threads_find(f, &l), 1);
	tt_threads_list_free(&l);
	tt_threads_opts_free(f);

	stop_blocked(&b, t);
	assert_int_equal(tt_threads_verify_none(o), 0);
	tt_threads_opts_free(o);
}

__attribute__((noinline)) static void *quick_fn(void *p)
{
	atomic_store((_Atomic int *)p, 1);
	return NULL;
}

static void test_unjoined(void **state)
{
	(void)state;
	skip_emulated();
	_Atomic int done = 0;
	pthread_t t;
	assert_int_equal(pthread_create(&t, NULL, quick_fn, &done), 0);
	while (!atomic_load(&done))
		nap_ms(1);
	nap_ms(20);
	tt_threads_opts *o = once_opts();
	tt_threads_list l;
	assert_int_equal(tt_threads_find(o, &l), 1);
	assert_true(l.t[0].finished);
	assert_string_equal(l.t[0].state, "finished, not joined");
	/* Under ASan or TSan the entry function the preload sees is the
	 * sanitizer's wrapper, whose interceptor runs first. */
	if (!TU_ASAN && !TU_TSAN)
		assert_string_equal(l.t[0].top, "quick_fn");
	assert_string_equal(l.t[0].created_by, "test_unjoined");
	char top[256];
	snprintf(top, sizeof top, "%s", l.t[0].top);
	tt_threads_list_free(&l);
	/* Top-function filter on the entry function. */
	tt_threads_opts *f = once_opts();
	assert_int_equal(tt_threads_ignore_top_function(f, top), 0);
	assert_int_equal(tt_threads_verify_none(f), 0);
	tt_threads_opts_free(f);

	assert_int_equal(pthread_join(t, NULL), 0);
	assert_int_equal(tt_threads_verify_none(o), 0);

	/* Detached after it finished: not a leak either. */
	done = 0;
	assert_int_equal(pthread_create(&t, NULL, quick_fn, &done), 0);
	while (!atomic_load(&done))
		nap_ms(1);
	nap_ms(20);
	assert_int_equal(pthread_detach(t), 0);
	assert_int_equal(tt_threads_verify_none(o), 0);
	tt_threads_opts_free(o);
}

__attribute__((noinline)) static void *late_fn(void *p)
{
	(void)p;
	nap_ms(150);
	return NULL;
}

static void test_linger(void **state)
{
	(void)state;
	skip_emulated();
	pthread_attr_t a;
	pthread_attr_init(&a);
	pthread_attr_setdetachstate(&a, PTHREAD_CREATE_DETACHED);
	pthread_t t;
	assert_int_equal(pthread_create(&t, &a, late_fn, NULL), 0);
	tt_threads_opts *o = once_opts();
	tt_threads_list l;
	assert_int_equal(tt_threads_find(o, &l), 1);
	tt_threads_list_free(&l);
	assert_int_equal(tt_threads_linger(o, 5 * TT_SECOND), 0);
	assert_int_equal(tt_threads_retry(o, 0, 10 * TT_MILLISECOND), 0);
	assert_int_equal(tt_threads_verify_none(o), 0);
	tt_threads_opts_free(o);
	pthread_attr_destroy(&a);
}

static void test_snapshot_and_bad_input(void **state)
{
	(void)state;
	skip_emulated();
	blocked b = {.name = "tt-snap"};
	pthread_t t = start_blocked(&b);
	tt_threads_list l;
	assert_int_equal(tt_threads_snapshot(&l), 1);
	assert_string_equal(l.t[0].name, "tt-snap");
	tt_threads_list_free(&l);
	stop_blocked(&b, t);

	tt_threads_opts *o = once_opts();
	assert_int_equal(tt_threads_opts_make(NULL), -EINVAL);
	assert_int_equal(tt_threads_ignore_name(o, ""), -EINVAL);
	assert_int_equal(tt_threads_ignore_top_function(o, NULL), -EINVAL);
	assert_int_equal(tt_threads_ignore_any_function(NULL, "x"), -EINVAL);
	assert_int_equal(tt_threads_retry(o, -1, TT_MILLISECOND), -EINVAL);
	assert_int_equal(tt_threads_retry(o, 1, 10), -EINVAL);
	assert_int_equal(tt_threads_linger(o, -1), -EINVAL);
	assert_int_equal(tt_threads_find(o, NULL), -EINVAL);
	assert_int_equal(tt_threads_snapshot(NULL), -EINVAL);
	assert_int_equal(tt_threads_verify_none_to(o, NULL, NULL), -EINVAL);
	tt_threads_opts_free(o);
}

/* --- under the preload ------------------------------------------------------ */

/* Runs build/tests/threads/<prog> [mode] under the preload with
 * TETHER_THREADLEAK=1 (and `env`), stderr and stdout into *out; returns
 * the exit status, -1 if it did not exit. */
static int run_preload(const char *prog, const char *mode, const char *env,
		       char **out)
{
	const char *dir = getenv("TETHER_BUILD_DIR");
	char cmd[2048];
	snprintf(cmd, sizeof cmd,
		 "env LD_PRELOAD=%s/libtether-preload.so TETHER_THREADLEAK=1 "
		 "%s timeout 60 %s/tests/threads/%s %s 2>&1",
		 dir ? dir : "build", env ? env : "", dir ? dir : "build",
		 prog, mode ? mode : "");
	FILE *p = popen(cmd, "r");
	assert_non_null(p);
	size_t cap = 8192, len = 0, n;
	char *buf = malloc(cap);
	assert_non_null(buf);
	while ((n = fread(buf + len, 1, cap - len - 1, p)) > 0) {
		len += n;
		if (cap - len < 2) {
			cap *= 2;
			buf = realloc(buf, cap);
			assert_non_null(buf);
		}
	}
	buf[len] = 0;
	int st = pclose(p);
	*out = buf;
	return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

static int count(const char *s, const char *w)
{
	int n = 0;
	for (; (s = strstr(s, w)); s += strlen(w))
		n++;
	return n;
}

typedef struct pcase {
	const char *mode;
	int status;
	int records;
	const char *want[4]; /* strings the output must hold */
} pcase;

static const pcase pcases[] = {
	{"clean", 0, 0, {NULL}},
	{"tryjoin", 0, 0, {NULL}},
	{"self_detach", 0, 0, {NULL}},
	{"detached", 1, 1, {"in state running, with spin_worker on top",
			    "created by start in thread", "start_leaky(...)"}},
	{"running", 1, 1, {"with spin_worker on top", "spin_worker(...)",
			   "start_leaky(...)", "main(...)"}},
	{"unjoined", 1, 1, {"in state finished, not joined, with "
			    "quick_worker on top", "start_leaky(...)"}},
	{"blocked", 1, 1, {"\"threadprog\" in state sleeping",
			   "reader_worker(...)", "start_leaky(...)"}},
	{"named", 1, 1, {"\"leaky-named\" in state sleeping",
			 "named_worker(...)", "start_leaky(...)"}},
	{"exit_thread", 1, 1, {"reader_worker(...)", "start_leaky(...)"}},
	{"main_exit", 0, 0, {NULL}},
	{"fork", 1, 1, {"child ok", "reader_worker(...)"}},
	{"exec", 1, 1, {"reader_worker(...)"}},
	{"_exit", 0, 0, {NULL}},
};

static void test_preload_modes(void **state)
{
	(void)state;
	if (getenv("TETHER_EMULATOR"))
		skip();
	for (size_t i = 0; i < sizeof pcases / sizeof *pcases; i++) {
		const pcase *c = &pcases[i];
		char *out;
		int st = run_preload("threadprog", c->mode, NULL, &out);
		if (st != c->status ||
		    count(out, "[Thread ") != c->records)
			fail_msg("mode %s: status %d (want %d), output:\n%s",
				 c->mode, st, c->status, out);
		if (c->records)
			assert_non_null(
				strstr(out, "found unexpected threads:\n"));
		for (int j = 0; j < 4 && c->want[j]; j++)
			if (!strstr(out, c->want[j]))
				fail_msg("mode %s: no \"%s\" in:\n%s", c->mode,
					 c->want[j], out);
		free(out);
	}
}

static void test_preload_linger(void **state)
{
	(void)state;
	if (getenv("TETHER_EMULATOR"))
		skip();
	/* The detached spinner never ends: lingering does not hide it, and
	 * the wait is bounded. */
	char *out;
	int st = run_preload("threadprog", "detached",
			     "TETHER_THREADLEAK_LINGER=200", &out);
	assert_int_equal(st, 1);
	assert_int_equal(count(out, "[Thread "), 1);
	free(out);
	/* Without TETHER_THREADLEAK the preload only records. */
	const char *dir = getenv("TETHER_BUILD_DIR");
	char cmd[1024];
	snprintf(cmd, sizeof cmd,
		 "env LD_PRELOAD=%s/libtether-preload.so timeout 60 "
		 "%s/tests/threads/threadprog blocked 2>&1",
		 dir ? dir : "build", dir ? dir : "build");
	FILE *p = popen(cmd, "r");
	assert_non_null(p);
	char buf[256];
	size_t n = fread(buf, 1, sizeof buf, p);
	assert_int_equal(n, 0);
	assert_int_equal(pclose(p), 0);
}

static void test_preload_cxx(void **state)
{
	(void)state;
	if (getenv("TETHER_EMULATOR"))
		skip();
	const char *dir = getenv("TETHER_BUILD_DIR");
	char path[1024];
	snprintf(path, sizeof path, "%s/tests/threads/cxxthread",
		 dir ? dir : "build");
	if (access(path, X_OK) != 0) {
		print_message("skipped: no C++ compiler (g++)\n");
		skip();
	}
	char *out;
	int st = run_preload("cxxthread", NULL, NULL, &out);
	if (st != 1 || count(out, "[Thread ") != 1 ||
	    !strstr(out, "cxx_worker") ||
	    !strstr(out, "start_cxx_workers(...)") ||
	    !strstr(out, "\"cxxthread\" in state sleeping"))
		fail_msg("status %d, output:\n%s", st, out);
	free(out);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_tracking),
		cmocka_unit_test(test_clean),
		cmocka_unit_test(test_self_detach),
		cmocka_unit_test(test_blocked_named),
		cmocka_unit_test(test_unjoined),
		cmocka_unit_test(test_linger),
		cmocka_unit_test(test_snapshot_and_bad_input),
		cmocka_unit_test(test_preload_modes),
		cmocka_unit_test(test_preload_linger),
		cmocka_unit_test(test_preload_cxx),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
