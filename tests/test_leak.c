/* tether tests — the leak checker and proven leaks.
 *
 * The checker's tests leave nothing behind: every goroutine they leak on
 * purpose is let go (its channel closed) before the test ends, and each
 * test runs inside a leak scope that its teardown verifies — the per-test
 * fixture a cmocka user would write (setup_scope / teardown_scope below).
 *
 * Proven leaks strand goroutines for good, so those cases run in child
 * processes (tu_spawn_self), as do the exit-time checks, which need
 * TETHER_LEAKCHECK in the environment when the process starts. */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif

#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "testutil.h"
#include "chan_queued.h"

#define CHILD_TIMEOUT (60 * TT_SECOND)

/* ---- the per-test fixture: one leak scope per test ------------------------ */

static tt_leak_scope test_scope;

/* cmocka setup: the usual fixture, then a scope for the test's goroutines. */
static int setup_scope(void **state)
{
	tu_setup(state);
	return tt_leak_scope_begin(&test_scope, "cmocka test") == 0 ? 0 : -1;
}

/* cmocka teardown: a goroutine the test started and left behind fails it
 * (with goleak's report on stderr). */
static void let_go_all(void);

static int teardown_scope(void **state)
{
	let_go_all(); /* what a failed test left parked */
	tt_leak_opts *o;
	if (tt_leak_opts_make(&o) || tt_leak_retry(o, 10, 50 * TT_MILLISECOND))
		return -1;
	int leaked = tt_leak_scope_verify(&test_scope, o);
	tt_leak_opts_free(o);
	if (leaked != 0)
		return -1;
	return tu_teardown(state);
}

#define LEAK_TEST(f)                                                        \
	cmocka_unit_test_setup_teardown(f, setup_scope, teardown_scope)

/* ---- helpers ----------------------------------------------------------------- */

/* A report collected through tt_leak_verify_none_to. */
typedef struct sink {
	char buf[16384];
	size_t len;
} sink;

static int to_sink(void *arg, const void *data, size_t len)
{
	sink *s = arg;
	if (s->len + len >= sizeof s->buf)
		return -ENOSPC;
	memcpy(s->buf + s->len, data, len);
	s->len += len;
	s->buf[s->len] = '\0';
	return 0;
}

/* Channels the test's leakers wait on. A test lets them go itself at its
 * end; when it fails half-way, the teardown does, so one failure does not
 * leave goroutines behind that fail the tests after it. */
static tt_chan *held[8];

static tt_chan *leak_chan(void)
{
	tt_chan *c = tu_chan(0, 0);
	for (size_t i = 0; i < sizeof held / sizeof held[0]; i++)
		if (held[i] == NULL) {
			held[i] = c;
			return c;
		}
	fail_msg("too many leak channels in one test");
	return NULL;
}

/* Close and release c: its waiters end. */
static void let_go(tt_chan *c)
{
	for (size_t i = 0; i < sizeof held / sizeof held[0]; i++)
		if (held[i] == c)
			held[i] = NULL;
	tt_chan_close(c);
	tt_chan_release(c);
}

static void let_go_all(void)
{
	for (size_t i = 0; i < sizeof held / sizeof held[0]; i++)
		if (held[i])
			let_go(held[i]);
}

/* Blocks receiving from the channel until it is closed. */
static __attribute__((noinline)) void leaky_recv(void *arg)
{
	tt_chan *c = arg;
	TU_UNCHECKED(tt_chan_recv(c, &(char){0}, 0, NULL));
}

/* The creator the reports name ("created by spawn_leaker"): it calls
 * tt_go itself, and not as a tail call, so the creation site is here. */
static __attribute__((noinline)) int64_t spawn_leaker(tt_chan *c)
{
	/* On c's thread, it returns once the leaker is in c's queue: with
	 * several Ps it may still be starting on another when tt_go
	 * returns. */
	bool owner = chan_of(c)->sched == tt__sched_get();
	int before = owner ? tu_chan_queued(c, false) : 0;
	int64_t id = tt_go(leaky_recv, c);
	TU_ASSERT_GT(id, 0);
	if (owner)
		TU_WAIT_QUEUED(c, false, before + 1);
	return id;
}

/* Options that give up at once (a leaked goroutine stays leaked). */
static tt_leak_opts *quick_opts(void)
{
	tt_leak_opts *o;
	TU_ASSERT_OK(tt_leak_opts_make(&o));
	TU_ASSERT_OK(tt_leak_retry(o, 0, TT_MICROSECOND));
	return o;
}

/* ---- options --------------------------------------------------------------- */

static void test_leak_options_bad_input(void **state)
{
	(void)state;
	tt_leak_opts *o;
	TU_ASSERT_ERR(tt_leak_opts_make(NULL), -EINVAL);
	TU_ASSERT_OK(tt_leak_opts_make(&o));
	TU_ASSERT_ERR(tt_leak_ignore_top_function(o, NULL), -EINVAL);
	TU_ASSERT_ERR(tt_leak_ignore_any_function(NULL, "f"), -EINVAL);
	TU_ASSERT_ERR(tt_leak_ignore_created_by(o, ""), -EINVAL);
	TU_ASSERT_ERR(tt_leak_ignore_current(NULL), -EINVAL);
	TU_ASSERT_ERR(tt_leak_retry(o, -1, TT_MILLISECOND), -EINVAL);
	TU_ASSERT_ERR(tt_leak_retry(o, 3, 999), -EINVAL);
	TU_ASSERT_ERR(tt_leak_find(o, NULL), -EINVAL);
	TU_ASSERT_ERR(tt_leak_verify_none_to(o, NULL, NULL), -EINVAL);
	TU_ASSERT_ERR(tt_leak_scope_begin(NULL, "x"), -EINVAL);
	tt_leak_scope never = {0};
	TU_ASSERT_ERR(tt_leak_scope_verify(&never, NULL), -EINVAL);
	/* A cleanup is for the verify calls only, as in goleak. */
	TU_ASSERT_OK(tt_leak_cleanup(o, NULL, NULL));
	tt_leak_list l;
	TU_ASSERT_OK(tt_leak_find(o, &l));
	tt_leak_list_free(&l);
	tt_leak_opts_free(o);
	tt_leak_opts_free(NULL);
}

static void test_leak_none(void **state)
{
	(void)state;
	TU_ASSERT_EQ(tt_leak_verify_none(NULL), 0);
	tt_leak_list l;
	TU_ASSERT_EQ(tt_leak_find(NULL, &l), 0);
	TU_ASSERT_EQ(l.n, 0);
	TU_ASSERT(l.report == NULL);
	tt_leak_list_free(&l);
}

/* The report, byte for byte in goleak's layout around the stack. */
static void test_leak_report_layout(void **state)
{
	(void)state;
	tt_chan *c = leak_chan();
	int64_t id = spawn_leaker(c);
	tt_leak_opts *o = quick_opts();
	sink s = {.len = 0};
	TU_ASSERT_EQ(tt_leak_verify_none_to(o, to_sink, &s), 1);

	tt_leak_list l;
	TU_ASSERT_EQ(tt_leak_find(o, &l), 1);
	TU_ASSERT_EQ(l.g[0].id, id);
	TU_ASSERT_EQ(l.g[0].parent_id, tt_goid());
	TU_ASSERT(strcmp(l.g[0].state, "chan receive") == 0);
	TU_ASSERT(strcmp(l.g[0].created_by, "spawn_leaker") == 0);
	TU_ASSERT_CONTAINS(l.g[0].stack, "leaky_recv(");
	TU_ASSERT_CONTAINS(l.g[0].stack, "created by spawn_leaker in goroutine");
	TU_ASSERT(!l.g[0].proven);
	TU_ASSERT(l.g[0].scope != NULL &&
		  strcmp(l.g[0].scope, "cmocka test") == 0);

	char want[16384];
	int n = snprintf(want, sizeof want,
			 "found unexpected goroutines:\n[Goroutine %lld in "
			 "state chan receive, with %s on top of the stack:\n"
			 "%s]",
			 (long long)id, l.g[0].top, l.g[0].stack);
	TU_ASSERT(n > 0 && (size_t)n < sizeof want);
	/* verify_none adds the newline t.Error would, and the scope line. */
	TU_ASSERT(strncmp(s.buf, want, (size_t)n) == 0);
	TU_ASSERT(strncmp(l.report, want, (size_t)n) == 0);
	TU_ASSERT_CONTAINS(s.buf + n, "was started in leak scope \"cmocka "
				      "test\"");
	TU_ASSERT(s.buf[s.len - 1] == '\n');
	/* The stack ends with the creator's location line. */
	size_t sl = strlen(l.g[0].stack);
	TU_ASSERT(sl > 2 && l.g[0].stack[sl - 1] == '\n' &&
		  l.g[0].stack[sl - 2] != '\n');
	tt_leak_list_free(&l);

	let_go(c);
	tt_leak_opts_free(o);
}

/* Two leaked goroutines: one space between them, as Go prints a slice. */
static void test_leak_report_two(void **state)
{
	(void)state;
	tt_chan *c = leak_chan();
	spawn_leaker(c);
	spawn_leaker(c);
	tt_leak_opts *o = quick_opts();
	tt_leak_list l;
	TU_ASSERT_EQ(tt_leak_find(o, &l), 2);
	TU_ASSERT_CONTAINS(l.report, "\n Goroutine ");
	TU_ASSERT(strncmp(l.report, "found unexpected goroutines:\n[Goroutine ",
			  40) == 0);
	tt_leak_list_free(&l);
	let_go(c);
	tt_leak_opts_free(o);
}

static void sleep_then_exit(void *arg)
{
	tt_sleep(*(int64_t *)arg);
}

/* goleak's retries: a goroutine about to end is not a leak. */
static void test_leak_retries(void **state)
{
	(void)state;
	static int64_t d = 5 * TT_MILLISECOND;
	tu_go(sleep_then_exit, &d);
	TU_ASSERT_EQ(tt_leak_verify_none(NULL), 0);

	/* With no retries it is still there when the check looks. */
	tt_leak_opts *o = quick_opts();
	tu_go(sleep_then_exit, &d);
	sink s = {.len = 0};
	TU_ASSERT_EQ(tt_leak_verify_none_to(o, to_sink, &s), 1);
	TU_ASSERT_CONTAINS(s.buf, "in state sleep, with ");
	/* A policy long enough for it: 1 us doubling, 16 retries, about
	 * 65 ms in all. */
	TU_ASSERT_OK(tt_leak_retry(o, 16, 20 * TT_MILLISECOND));
	TU_ASSERT_EQ(tt_leak_verify_none(o), 0);
	tt_leak_opts_free(o);
}

/* A running timer keeps the check retrying; a leak that nothing can change
 * is reported without sleeping through the whole policy. */
static void test_leak_quiescent_is_final(void **state)
{
	(void)state;
	tt_chan *c = leak_chan();
	spawn_leaker(c);
	tt_leak_opts *o;
	TU_ASSERT_OK(tt_leak_opts_make(&o));
	TU_ASSERT_OK(tt_leak_retry(o, 30, 10 * TT_SECOND));
	int64_t t0 = tt_now();
	sink s = {.len = 0};
	TU_ASSERT_EQ(tt_leak_verify_none_to(o, to_sink, &s), 1);
	TU_ASSERT_LT(tt_now() - t0, TU_SLACK_NS);
	let_go(c);
	tt_leak_opts_free(o);
}

static void test_leak_ignore_functions(void **state)
{
	(void)state;
	tt_chan *c = leak_chan();
	spawn_leaker(c);
	tt_leak_opts *o = quick_opts();
	tt_leak_list l;
	TU_ASSERT_EQ(tt_leak_find(o, &l), 1);
	char top[256];
	snprintf(top, sizeof top, "%s", l.g[0].top);
	tt_leak_list_free(&l);

	tt_leak_opts *t = quick_opts();
	TU_ASSERT_OK(tt_leak_ignore_top_function(t, top));
	TU_ASSERT_EQ(tt_leak_verify_none(t), 0);
	tt_leak_opts_free(t);

	tt_leak_opts *a = quick_opts();
	TU_ASSERT_OK(tt_leak_ignore_any_function(a, "not_on_the_stack"));
	sink s = {.len = 0};
	TU_ASSERT_EQ(tt_leak_verify_none_to(a, to_sink, &s), 1);
	TU_ASSERT_OK(tt_leak_ignore_any_function(a, "leaky_recv"));
	TU_ASSERT_EQ(tt_leak_verify_none(a), 0);
	tt_leak_opts_free(a);

	tt_leak_opts *cb = quick_opts();
	/* The creator is matched on "created by", not anywhere else. */
	TU_ASSERT_OK(tt_leak_ignore_created_by(cb, "leaky_recv"));
	s.len = 0;
	TU_ASSERT_EQ(tt_leak_verify_none_to(cb, to_sink, &s), 1);
	TU_ASSERT_OK(tt_leak_ignore_created_by(cb, "spawn_leaker"));
	TU_ASSERT_EQ(tt_leak_verify_none(cb), 0);
	tt_leak_opts_free(cb);

	let_go(c);
	tt_leak_opts_free(o);
}

static void test_leak_ignore_current(void **state)
{
	(void)state;
	tt_chan *c = leak_chan();
	spawn_leaker(c);
	tt_leak_opts *o = quick_opts();
	TU_ASSERT_OK(tt_leak_ignore_current(o));
	TU_ASSERT_EQ(tt_leak_verify_none(o), 0);
	int64_t later = spawn_leaker(c);
	tt_leak_list l;
	TU_ASSERT_EQ(tt_leak_find(o, &l), 1);
	TU_ASSERT_EQ(l.g[0].id, later);
	tt_leak_list_free(&l);
	let_go(c);
	tt_leak_opts_free(o);
}

static int cleanup_calls, cleanup_code = -1;

static void on_cleanup(int code, void *arg)
{
	cleanup_calls += *(int *)arg;
	cleanup_code = code;
}

static void test_leak_cleanup_hook(void **state)
{
	(void)state;
	static int one = 1;
	tt_leak_opts *o;
	TU_ASSERT_OK(tt_leak_opts_make(&o));
	TU_ASSERT_OK(tt_leak_cleanup(o, on_cleanup, &one));
	cleanup_calls = 0;
	TU_ASSERT_EQ(tt_leak_verify_none(o), 0);
	TU_ASSERT_EQ(cleanup_calls, 1);
	TU_ASSERT_EQ(cleanup_code, 0);
	tt_leak_list l;
	TU_ASSERT_ERR(tt_leak_find(o, &l), -EINVAL);
	tt_leak_opts_free(o);
}

/* ---- scopes ---------------------------------------------------------------------- */

/* A goroutine that starts a leaker through a helper goroutine: the leaker
 * is two creations away from the scope's goroutine. */
static void start_grandchild(void *arg)
{
	spawn_leaker(arg);
}

/* The one goroutine besides the caller is parked in leaky_recv. */
static bool only_leaker_left(void)
{
	tt_leak_opts *o = quick_opts();
	tt_leak_list l;
	bool yes = tt_leak_find(o, &l) == 1 &&
		   strstr(l.g[0].stack, "leaky_recv(") != NULL;
	tt_leak_list_free(&l);
	tt_leak_opts_free(o);
	return yes;
}

static void test_leak_scope_nested_creation(void **state)
{
	(void)state;
	tt_chan *c = leak_chan();
	tt_leak_scope sc;
	int64_t base = tt_num_goroutine();
	TU_ASSERT_OK(tt_leak_scope_begin(&sc, "inner"));
	tu_go(start_grandchild, c);
	/* With two Ps the helper and the leaker may each start on another
	 * thread, later: the check gives up at once, so let the helper end
	 * and the leaker start first. */
	TU_WAIT_FOR(tt_num_goroutine() == base + 1 && only_leaker_left(),
		    10 * TT_SECOND);
	tt_leak_opts *o = quick_opts();
	sink s = {.len = 0};
	TU_ASSERT_EQ(tt_leak_scope_verify_to(&sc, o, to_sink, &s), 1);
	TU_ASSERT_CONTAINS(s.buf, "created by spawn_leaker");
	/* Ended: a second verify is refused. */
	TU_ASSERT_ERR(tt_leak_scope_verify(&sc, o), -EINVAL);
	/* A scope with nothing of its own is clean though the leaker lives. */
	TU_ASSERT_OK(tt_leak_scope_begin(&sc, "clean"));
	TU_ASSERT_EQ(tt_leak_scope_verify(&sc, o), 0);
	let_go(c);
	tt_leak_opts_free(o);
}

/* Two "tests" running at once as goroutines of one thread, each in its
 * own scope: the one that leaks is told so; the other is not, although
 * the leak exists while it checks. */
struct conc {
	tt_chan *c;       /* the leaker waits here */
	tt_chan *step;    /* orders the two tests: leaker first */
	tt_chan *done;
	int result_leaky, result_clean;
	char report[4096];
};

static int to_report(void *arg, const void *data, size_t len)
{
	struct conc *k = arg;
	size_t n = strlen(k->report);
	if (n + len >= sizeof k->report)
		return -ENOSPC;
	memcpy(k->report + n, data, len);
	k->report[n + len] = '\0';
	return 0;
}

static void worker_ok(void *arg)
{
	tt_sleep(TT_MILLISECOND);
	(void)arg;
}

static void test_leaky(void *arg)
{
	struct conc *k = arg;
	tt_leak_scope sc;
	TU_ASSERT_OK(tt_leak_scope_begin(&sc, "test_leaky"));
	spawn_leaker(k->c);
	tu_done(k->step);
	tt_sleep(5 * TT_MILLISECOND);
	tt_leak_opts *o = quick_opts();
	k->result_leaky = tt_leak_scope_verify_to(&sc, o, to_report, k);
	tt_leak_opts_free(o);
	tu_done(k->done);
}

static void test_clean(void *arg)
{
	struct conc *k = arg;
	TU_UNCHECKED(tt_recv(k->step, &(char){0}, NULL));
	tt_leak_scope sc;
	TU_ASSERT_OK(tt_leak_scope_begin(&sc, "test_clean"));
	tu_go(worker_ok, NULL);
	k->result_clean = tt_leak_scope_verify(&sc, NULL);
	tu_done(k->done);
}

static void test_leak_scope_concurrent(void **state)
{
	(void)state;
	static struct conc k;
	memset(&k, 0, sizeof k);
	k.c = leak_chan();
	k.step = tu_chan(0, 1);
	k.done = tu_chan(0, 2);
	k.result_leaky = k.result_clean = -100;
	tu_go(test_leaky, &k);
	tu_go(test_clean, &k);
	TU_WAIT_DONE(k.done, 2, 10 * TT_SECOND);
	TU_ASSERT_EQ(k.result_clean, 0);
	TU_ASSERT_EQ(k.result_leaky, 1);
	TU_ASSERT_CONTAINS(k.report, "found unexpected goroutines:\n[");
	/* The unscoped check names the scope that started the leak. */
	tt_leak_opts *o = quick_opts();
	sink s = {.len = 0};
	TU_ASSERT_EQ(tt_leak_verify_none_to(o, to_sink, &s), 1);
	TU_ASSERT_CONTAINS(s.buf, "was started in leak scope \"test_leaky\"");
	let_go(k.c);
	tt_chan_release(k.step);
	tt_chan_release(k.done);
	tt_leak_opts_free(o);
}

static int other_tried; /* atomic: set by another P's goroutine */

static void scope_other_goroutine(void *arg)
{
	TU_ASSERT_ERR(tt_leak_scope_end(arg), -EPERM);
	__atomic_store_n(&other_tried, 1, __ATOMIC_RELEASE);
}

static void test_leak_scope_misuse(void **state)
{
	(void)state;
	tt_leak_scope outer, inner;
	TU_ASSERT_OK(tt_leak_scope_begin(&outer, NULL));
	TU_ASSERT_OK(tt_leak_scope_begin(&inner, "inner"));
	/* Inner first. */
	TU_ASSERT_ERR(tt_leak_scope_end(&outer), -EINVAL);
	/* Its try must come while the scope is still active: with two Ps
	 * it may run on another thread, after tu_go returns. */
	__atomic_store_n(&other_tried, 0, __ATOMIC_RELAXED);
	tu_go(scope_other_goroutine, &inner);
	TU_WAIT_FOR(__atomic_load_n(&other_tried, __ATOMIC_ACQUIRE),
		    10 * TT_SECOND);
	TU_ASSERT_OK(tt_leak_scope_end(&inner));
	TU_ASSERT_EQ(tt_leak_scope_verify(&outer, NULL), 0);
}

/* Scopes nest: what an inner scope left behind is the outer one's too. */
static void test_leak_scope_nesting(void **state)
{
	(void)state;
	tt_chan *c = leak_chan();
	tt_leak_scope outer, inner;
	TU_ASSERT_OK(tt_leak_scope_begin(&outer, "outer"));
	TU_ASSERT_OK(tt_leak_scope_begin(&inner, "inner"));
	spawn_leaker(c);
	TU_ASSERT_OK(tt_leak_scope_end(&inner)); /* not checked */
	tt_leak_opts *o = quick_opts();
	sink s = {.len = 0};
	TU_ASSERT_EQ(tt_leak_scope_verify_to(&outer, o, to_sink, &s), 1);
	TU_ASSERT_CONTAINS(s.buf, "was started in leak scope \"inner\"");
	let_go(c);
	tt_leak_opts_free(o);
}

/* ---- exit-time check (children) ----------------------------------------------------- */

static void child_leak_at_exit(void)
{
	static tt_chan *c;
	tt_chan_make(&c, 0, 0);
	tt_go(leaky_recv, c);
	fprintf(stderr, "tu-goid=%lld\n", (long long)tt_goid() + 0);
	/* Returns: exit(0), and the check turns it into 1. */
}

static void child_clean_at_exit(void)
{
	static int64_t d = TT_MILLISECOND;
	tt_go(sleep_then_exit, &d); /* ends within the retries */
}

static void child_failed_run_not_checked(void)
{
	static tt_chan *c;
	tt_chan_make(&c, 0, 0);
	tt_go(leaky_recv, c);
	exit(3);
}

static void print_cleanup(int code, void *arg)
{
	(void)arg;
	fprintf(stderr, "tu-cleanup=%d\n", code);
}

/* tt_leak_verify_at_exit from code, with options: the cleanup sees the
 * final status. */
static void child_at_exit_cleanup(void)
{
	tt_leak_opts *o;
	TU_ASSERT_OK(tt_leak_opts_make(&o));
	TU_ASSERT_OK(tt_leak_cleanup(o, print_cleanup, NULL));
	TU_ASSERT_OK(tt_leak_verify_at_exit(o));
	TU_ASSERT_ERR(tt_leak_verify_at_exit(o), -EALREADY);
	tt_leak_opts_free(o); /* it was copied */
	static tt_chan *c;
	tt_chan_make(&c, 0, 0);
	tt_go(leaky_recv, c);
}

static void with_env(const char *k, const char *v, const char *child,
		     tu_child *out)
{
	setenv(k, v, 1);
	int r = tu_spawn_self(child, CHILD_TIMEOUT, out);
	unsetenv(k);
	if (r != 0)
		fail_msg("could not start child %s: %d", child, r);
	assert_false(out->timed_out);
	TU_ASSERT_NOT_CONTAINS(out->err, "no child case named");
}

static void test_leak_leakcheck_env(void **state)
{
	(void)state;
	tu_child c;
	with_env("TETHER_LEAKCHECK", "1", "leak_at_exit", &c);
	TU_ASSERT_CHILD_EXIT(&c, 1);
	TU_ASSERT_CONTAINS(c.err, "tether: errors on successful test run: "
				  "found unexpected goroutines:\n[Goroutine ");
	TU_ASSERT_CONTAINS(c.err, "in state chan receive, with ");
	TU_ASSERT_CONTAINS(c.err, "leaky_recv(");
	tu_child_free(&c);

	with_env("TETHER_LEAKCHECK", "1", "clean_at_exit", &c);
	TU_ASSERT_CHILD_EXIT(&c, 0);
	TU_ASSERT_NOT_CONTAINS(c.err, "found unexpected goroutines");
	tu_child_free(&c);

	/* A run that already failed keeps its status and is not checked. */
	with_env("TETHER_LEAKCHECK", "1", "failed_run_not_checked", &c);
	TU_ASSERT_CHILD_EXIT(&c, 3);
	TU_ASSERT_NOT_CONTAINS(c.err, "found unexpected goroutines");
	tu_child_free(&c);

	with_env("TETHER_LEAKCHECK", "0", "at_exit_cleanup", &c);
	TU_ASSERT_CHILD_EXIT(&c, 1);
	TU_ASSERT_EQ(tu_child_marker(&c, "tu-cleanup"), 1);
	TU_ASSERT_CONTAINS(c.err, "found unexpected goroutines:\n[Goroutine ");
	tu_child_free(&c);

	/* Without the variable nothing is checked. */
	with_env("TETHER_LEAKCHECK", "0", "leak_at_exit", &c);
	TU_ASSERT_CHILD_EXIT(&c, 0);
	TU_ASSERT_NOT_CONTAINS(c.err, "found unexpected goroutines");
	tu_child_free(&c);
}

/* ---- proven leaks (children) --------------------------------------------------------- */

/* Waits that end, each counted when it does. */
static int returned; /* atomic */

static void wait_recv(void *arg)
{
	TU_UNCHECKED(tt_chan_recv(arg, &(char){0}, 0, NULL));
	__atomic_fetch_add(&returned, 1, __ATOMIC_RELEASE);
}

/* Until a goroutine started with tt_go waits on h, a channel of this
 * thread's: in its queue (or one of this thread's proxies is, for a
 * goroutine of another P), or its wait is over. With one P it is when
 * tt_go returns; with more it may start on another P later. */
static void wait_queued(tt_chan *h, bool senders, int ended)
{
	TU_WAIT_FOR(tu_chan_queued(h, senders) >= 1 ||
			    __atomic_load_n(&returned, __ATOMIC_ACQUIRE) >
				    ended,
		    5 * TT_SECOND);
}

/* Whether a goroutine of this thread (the waiter, or a proxy waiting for
 * it on another P) is parked on the sync object h, queued there. */
static bool sync_parked(const void *h)
{
	tt__sched *s = tt__sched_get();
	const void *o = tt__obj_ptr(h);
	for (const tt__g *g = s->all; g; g = g->all_next)
		if (g != s->current && g->state == TT_G_WAITING &&
		    g->wait_obj == o)
			return true;
	return false;
}

#define WAIT_SYNC_PARKED(h) TU_WAIT_FOR(sync_parked(h), 5 * TT_SECOND)

/* Parked on a channel, then the only reference is released. */
static __attribute__((noinline)) void release_it(tt_chan *c)
{
	TU_ASSERT_OK(tt_chan_release(c)); /* not a tail call: a frame */
}

static void child_proven_chan(void)
{
	tt_chan *c;
	TU_ASSERT_OK(tt_chan_make(&c, 0, 0));
	int64_t id = tt_go(wait_recv, c);
	fprintf(stderr, "tu-goid=%lld\n", (long long)id);
	TU_WAIT_QUEUED(c, false, 1);
	uint64_t before = tt_leak_proven_count();
	release_it(c);
	TU_ASSERT_EQ(tt_leak_proven_count(), before + 1);
	tt_leak_opts *o = quick_opts();
	tt_leak_list l;
	TU_ASSERT_EQ(tt_leak_find(o, &l), 1);
	TU_ASSERT(l.g[0].proven);
	TU_ASSERT_CONTAINS(l.report, "is proven leaked: parked on chan 0x");
	/* The channel as the program holds (and prints) it. */
	char want[64];
	snprintf(want, sizeof want, "parked on chan %p released", (void *)c);
	TU_ASSERT_CONTAINS(l.report, want);
	tt_leak_list_free(&l);
	tt_leak_opts_free(o);
	fprintf(stderr, "tu-end\n");
}

static void test_leak_proven_report(void **state)
{
	(void)state;
	tu_child c;
	with_env("TETHER_LEAK", "report", "proven_chan", &c);
	TU_ASSERT_CHILD_EXIT(&c, 0);
	long long id = tu_child_marker(&c, "tu-goid");
	char want[128];
	snprintf(want, sizeof want,
		 "goroutine %lld leaked: parked on chan 0x", id);
	TU_ASSERT_CONTAINS(c.err, want);
	TU_ASSERT_CONTAINS(c.err, " released at ");
	/* file:line, or the function where there is no line information */
	TU_ASSERT(tu_contains(c.err, "released at ") &&
		  (tu_contains(c.err, "test_leak.c:") ||
		   tu_contains(c.err, "released at release_it\n")));
	/* Both stacks: the leaked goroutine's and the releasing one's. */
	snprintf(want, sizeof want, "goroutine %lld [chan receive", id);
	TU_ASSERT_CONTAINS(c.err, want);
	TU_ASSERT_CONTAINS(c.err, "wait_recv(");
	TU_ASSERT_CONTAINS(c.err, "released by goroutine 1:\n");
	TU_ASSERT_CONTAINS(c.err, "release_it(");
	/* Printed at the release, before the child went on. */
	TU_ASSERT(strstr(c.err, "leaked: parked") < strstr(c.err, "tu-end"));
	tu_child_free(&c);

	with_env("TETHER_LEAK", "off", "proven_chan", &c);
	TU_ASSERT_CHILD_EXIT(&c, 0);
	TU_ASSERT_NOT_CONTAINS(c.err, "leaked: parked");
	TU_ASSERT_CONTAINS(c.err, "tu-end");
	tu_child_free(&c);

	with_env("TETHER_LEAK", "abort", "proven_chan", &c);
	TU_ASSERT_CHILD_SIGNAL(&c, SIGABRT);
	TU_ASSERT_CONTAINS(c.err, "leaked: parked on chan 0x");
	TU_ASSERT_CONTAINS(c.err, "TETHER_LEAK=abort");
	TU_ASSERT_NOT_CONTAINS(c.err, "tu-end");
	tu_child_free(&c);
}

/* No false positives: reachable channels, deadlines, live timers. */
static void wait_recv_deadline(void *arg)
{
	TU_UNCHECKED(tt_chan_recv_until(arg, NULL, 0, NULL,
					tt_deadline_in(20 * TT_MILLISECOND)));
	__atomic_fetch_add(&returned, 1, __ATOMIC_RELEASE);
}

struct two {
	tt_chan *a, *b;
};

static void wait_select(void *arg)
{
	struct two *t = arg;
	tt_case cases[] = {
		TT_CASE_RECV_DISCARD(t->a, NULL),
		TT_CASE_RECV_DISCARD(t->b, NULL),
		TT_CASE_RECV_DISCARD(NULL, NULL), /* nil: never ready */
	};
	TU_UNCHECKED(tt_select(cases, 3, TT_FOREVER));
}

static void child_proven_false_positives(void)
{
	uint64_t base = tt_leak_proven_count();
	/* Another reference is still held. */
	tt_chan *c;
	TU_ASSERT_OK(tt_chan_make(&c, 0, 0));
	TU_ASSERT_OK(tt_chan_retain(c));
	int ended = __atomic_load_n(&returned, __ATOMIC_ACQUIRE);
	tt_go(wait_recv, c);
	wait_queued(c, false, ended);
	TU_ASSERT_OK(tt_chan_release(c));
	TU_ASSERT_EQ(tt_leak_proven_count(), base);
	TU_ASSERT_OK(tt_chan_close(c)); /* still usable: it wakes */
	TU_ASSERT_OK(tt_chan_release(c));
	/* Each ends before the next starts: wait_queued counts returns,
	 * and with more than one P they end on their own threads. */
	TU_WAIT_FOR(__atomic_load_n(&returned, __ATOMIC_ACQUIRE) > ended,
		    5 * TT_SECOND);

	/* A deadline will wake it. */
	TU_ASSERT_OK(tt_chan_make(&c, 0, 0));
	ended = __atomic_load_n(&returned, __ATOMIC_ACQUIRE);
	tt_go(wait_recv_deadline, c);
	wait_queued(c, false, ended);
	TU_ASSERT_OK(tt_chan_release(c));
	TU_ASSERT_EQ(tt_leak_proven_count(), base);
	TU_WAIT_FOR(__atomic_load_n(&returned, __ATOMIC_ACQUIRE) > ended,
		    5 * TT_SECOND);

	/* A timer channel whose timer is armed will wake it. */
	tt_chan *t;
	TU_ASSERT_OK(tt_after(&t, 10 * TT_MILLISECOND));
	ended = __atomic_load_n(&returned, __ATOMIC_ACQUIRE);
	tt_go(wait_recv, t);
	wait_queued(t, false, ended);
	TU_ASSERT_OK(tt_chan_release(t));
	TU_ASSERT_EQ(tt_leak_proven_count(), base);

	/* A select: proven only when every channel is gone. */
	static struct two tw;
	TU_ASSERT_OK(tt_chan_make(&tw.a, 0, 0));
	TU_ASSERT_OK(tt_chan_make(&tw.b, 0, 0));
	int64_t sel = tt_go(wait_select, &tw);
	TU_WAIT_QUEUED(tw.a, false, 1);
	TU_WAIT_QUEUED(tw.b, false, 1);
	TU_ASSERT_OK(tt_chan_release(tw.a));
	TU_ASSERT_EQ(tt_leak_proven_count(), base);
	tt_sleep(50 * TT_MILLISECOND); /* the deadline and timer waits end */
	TU_ASSERT_EQ(tt_leak_proven_count(), base);
	TU_ASSERT_OK(tt_chan_release(tw.b));
	TU_ASSERT_EQ(tt_leak_proven_count(), base + 1);
	tt_leak_opts *o = quick_opts();
	tt_leak_list l;
	TU_ASSERT_EQ(tt_leak_find(o, &l), 1);
	TU_ASSERT_EQ(l.g[0].id, sel);
	TU_ASSERT(l.g[0].proven);
	TU_ASSERT(strcmp(l.g[0].state, "select") == 0);
	tt_leak_list_free(&l);
	tt_leak_opts_free(o);
	fprintf(stderr, "tu-end\n");
}

static void test_leak_proven_no_false_positive(void **state)
{
	(void)state;
	tu_child c;
	with_env("TETHER_LEAK", "report", "proven_false_positives", &c);
	TU_ASSERT_CHILD_EXIT(&c, 0);
	TU_ASSERT_CONTAINS(c.err, "tu-end");
	/* Exactly one report: the select, after its second channel. */
	const char *p = strstr(c.err, "leaked: parked on chan");
	TU_ASSERT(p != NULL);
	TU_ASSERT(strstr(p + 1, "leaked: parked on") == NULL);
	tu_child_free(&c);
}

static void wg_waiter(void *arg)
{
	TU_UNCHECKED(tt_wg_wait(arg));
}

static void mutex_waiter(void *arg)
{
	tt_mutex_lock(arg);
}

static void ctx_waiter(void *arg)
{
	TU_UNCHECKED(tt_chan_recv(tt_ctx_done(arg), &(char){0}, 0, NULL));
}

static void cond_waiter(void *arg)
{
	tt_cond_wait(arg);
}

static void rw_reader(void *arg)
{
	tt_rwmutex_rlock(arg);
}

static void timer_waiter(void *arg)
{
	int64_t when;
	TU_UNCHECKED(tt_recv(tt_timer_chan(arg), &when, NULL));
	__atomic_fetch_add(&returned, 1, __ATOMIC_RELEASE);
}

static void child_proven_sync(void)
{
	uint64_t base = tt_leak_proven_count();
	tt_waitgroup *wg;
	TU_ASSERT_OK(tt_wg_make(&wg));
	TU_ASSERT_OK(tt_wg_add(wg, 1));
	tt_go(wg_waiter, wg);
	WAIT_SYNC_PARKED(wg);
	TU_ASSERT_OK(tt_wg_release(wg));
	TU_ASSERT_EQ(tt_leak_proven_count(), base + 1);

	tt_mutex *m;
	TU_ASSERT_OK(tt_mutex_make(&m));
	TU_ASSERT_OK(tt_mutex_lock(m));
	tt_go(mutex_waiter, m);
	WAIT_SYNC_PARKED(m);
	TU_ASSERT_OK(tt_mutex_release(m));
	TU_ASSERT_EQ(tt_leak_proven_count(), base + 2);

	/* A context freed without cancel strands the goroutines on Done. */
	tt_ctx *ctx;
	TU_ASSERT_OK(tt_ctx_with_cancel(&ctx, tt_ctx_background()));
	tt_go(ctx_waiter, ctx);
	TU_WAIT_QUEUED(tt_ctx_done(ctx), false, 1);
	TU_ASSERT_OK(tt_ctx_release(ctx));
	TU_ASSERT_EQ(tt_leak_proven_count(), base + 3);
	/* One that is cancelled in time is not. */
	TU_ASSERT_OK(tt_ctx_with_cancel(&ctx, tt_ctx_background()));
	TU_ASSERT_OK(tt_ctx_retain(ctx));
	tt_go(ctx_waiter, ctx);
	TU_WAIT_QUEUED(tt_ctx_done(ctx), false, 1);
	TU_ASSERT_OK(tt_ctx_release(ctx));
	TU_ASSERT_OK(tt_ctx_cancel(ctx));
	TU_ASSERT_OK(tt_ctx_release(ctx));
	TU_ASSERT_EQ(tt_leak_proven_count(), base + 3);

	/* A condition nobody can signal any more. */
	tt_mutex *cm;
	tt_cond *cv;
	TU_ASSERT_OK(tt_mutex_make(&cm));
	TU_ASSERT_OK(tt_cond_make(&cv, cm));
	TU_ASSERT_OK(tt_mutex_lock(cm));
	tt_go(cond_waiter, cv); /* cond_wait unlocks cm, parks */
	WAIT_SYNC_PARKED(cv);
	TU_ASSERT_OK(tt_cond_release(cv));
	TU_ASSERT_EQ(tt_leak_proven_count(), base + 4);
	TU_ASSERT_OK(tt_mutex_release(cm));

	/* A write-locked RWMutex with a reader waiting. */
	tt_rwmutex *rw;
	TU_ASSERT_OK(tt_rwmutex_make(&rw));
	TU_ASSERT_OK(tt_rwmutex_lock(rw));
	tt_go(rw_reader, rw);
	WAIT_SYNC_PARKED(rw);
	TU_ASSERT_OK(tt_rwmutex_release(rw));
	TU_ASSERT_EQ(tt_leak_proven_count(), base + 5);

	/* A stopped timer will never fire; an armed one will. */
	tt_timer *t;
	TU_ASSERT_OK(tt_timer_make(&t, TT_MINUTE));
	tt_timer_stop(t);
	tt_go(timer_waiter, t);
	TU_WAIT_QUEUED(tt_timer_chan(t), false, 1);
	TU_ASSERT_OK(tt_timer_release(t));
	TU_ASSERT_EQ(tt_leak_proven_count(), base + 6);
	TU_ASSERT_OK(tt_timer_make(&t, 5 * TT_MILLISECOND));
	int ended = __atomic_load_n(&returned, __ATOMIC_ACQUIRE);
	tt_go(timer_waiter, t);
	wait_queued(tt_timer_chan(t), false, ended);
	TU_ASSERT_OK(tt_timer_release(t));
	TU_ASSERT_EQ(tt_leak_proven_count(), base + 6);
	fprintf(stderr, "tu-end\n");
}

static void test_leak_proven_sync_and_ctx(void **state)
{
	(void)state;
	tu_child c;
	with_env("TETHER_LEAK", "report", "proven_sync", &c);
	TU_ASSERT_CHILD_EXIT(&c, 0);
	TU_ASSERT_CONTAINS(c.err, "tu-end");
	TU_ASSERT_CONTAINS(c.err, "leaked: parked on sync.WaitGroup 0x");
	TU_ASSERT_CONTAINS(c.err, "leaked: parked on sync.Mutex 0x");
	TU_ASSERT_CONTAINS(c.err, "leaked: parked on sync.Cond 0x");
	TU_ASSERT_CONTAINS(c.err, "leaked: parked on sync.RWMutex 0x");
	TU_ASSERT_CONTAINS(c.err, "leaked: parked on chan 0x");
	/* The context's done channel is freed inside tether: the site is
	 * the program's tt_ctx_release call. */
	TU_ASSERT_CONTAINS(c.err, "child_proven_sync(");
	tu_child_free(&c);
}

/* Each sync kind released from a frame of the program's own, its last
 * reference dropped while a goroutine waits on it. */
static __attribute__((noinline)) void drop_wg(tt_waitgroup *wg)
{
	TU_ASSERT_OK(tt_wg_release(wg)); /* not a tail call: a frame */
}

static __attribute__((noinline)) void drop_mutex(tt_mutex *m)
{
	TU_ASSERT_OK(tt_mutex_release(m));
}

static __attribute__((noinline)) void drop_rwmutex(tt_rwmutex *m)
{
	TU_ASSERT_OK(tt_rwmutex_release(m));
}

static __attribute__((noinline)) void drop_cond(tt_cond *c)
{
	TU_ASSERT_OK(tt_cond_release(c));
}

static void child_proven_released_by(void)
{
	tt_waitgroup *wg;
	TU_ASSERT_OK(tt_wg_make(&wg));
	TU_ASSERT_OK(tt_wg_add(wg, 1));
	tt_go(wg_waiter, wg);
	WAIT_SYNC_PARKED(wg);
	drop_wg(wg);

	tt_mutex *m;
	TU_ASSERT_OK(tt_mutex_make(&m));
	TU_ASSERT_OK(tt_mutex_lock(m));
	tt_go(mutex_waiter, m);
	WAIT_SYNC_PARKED(m);
	drop_mutex(m);

	tt_rwmutex *rw;
	TU_ASSERT_OK(tt_rwmutex_make(&rw));
	TU_ASSERT_OK(tt_rwmutex_lock(rw));
	tt_go(rw_reader, rw);
	WAIT_SYNC_PARKED(rw);
	drop_rwmutex(rw);

	tt_mutex *cm;
	tt_cond *cv;
	TU_ASSERT_OK(tt_mutex_make(&cm));
	TU_ASSERT_OK(tt_cond_make(&cv, cm));
	TU_ASSERT_OK(tt_mutex_lock(cm));
	tt_go(cond_waiter, cv);
	WAIT_SYNC_PARKED(cv);
	drop_cond(cv);
	TU_ASSERT_OK(tt_mutex_release(cm));
	fprintf(stderr, "tu-end\n");
}

/* The releasing stack of a proven leak on each sync kind starts at the
 * public release call, then the program's frame that made it (as a
 * channel's starts at tt_chan_release). */
static void test_leak_proven_released_by_public_call(void **state)
{
	(void)state;
	static const struct {
		const char *what, *call, *caller;
	} kinds[] = {
		{"sync.WaitGroup", "tt_wg_release", "drop_wg"},
		{"sync.Mutex", "tt_mutex_release", "drop_mutex"},
		{"sync.RWMutex", "tt_rwmutex_release", "drop_rwmutex"},
		{"sync.Cond", "tt_cond_release", "drop_cond"},
	};
	tu_child c;
	with_env("TETHER_LEAK", "report", "proven_released_by", &c);
	TU_ASSERT_CHILD_EXIT(&c, 0);
	TU_ASSERT_CONTAINS(c.err, "tu-end");
	for (size_t i = 0; i < sizeof kinds / sizeof kinds[0]; i++) {
		char want[128];
		snprintf(want, sizeof want, "leaked: parked on %s 0x",
			 kinds[i].what);
		const char *rep = strstr(c.err, want);
		TU_ASSERT_MSG(rep, "no report of a leak on %s in:\n%s",
			      kinds[i].what, c.err);
		const char *by = strstr(rep, "released by goroutine 1:\n"
					     "goroutine 1 [running]:\n");
		TU_ASSERT_MSG(by, "no releasing stack after:\n%s", rep);
		const char *top = strchr(strchr(by, '\n') + 1, '\n') + 1;
		snprintf(want, sizeof want, "%s(...)\n\t", kinds[i].call);
		TU_ASSERT_MSG(strncmp(top, want, strlen(want)) == 0,
			      "%s: the releasing stack starts with:\n%.200s",
			      kinds[i].what, top);
		const char *next = strchr(strchr(top, '\n') + 1, '\n') + 1;
		snprintf(want, sizeof want, "%s(...)\n", kinds[i].caller);
		TU_ASSERT_MSG(strncmp(next, want, strlen(want)) == 0,
			      "%s: the public call is followed by:\n%.200s",
			      kinds[i].what, next);
	}
	tu_child_free(&c);
}

/* ---- proven leaks across Ps ---------------------------------------------------- */

/* A goroutine on the worker P parked on the main thread's object, whose
 * last reference the main thread then drops: proven as one of main's own
 * would be, whichever way it waits — on the shared channel itself
 * (queued under its lock), through a proxy goroutine of main's (a
 * shared-stack goroutine asks the owner; another thread's WaitGroup.Wait
 * always waits in one). The proof, its count and its report name the
 * goroutine, never the proxy. */
enum { ON_CHAN, ON_CHAN_SHARED_STACK, ON_WG, ON_SELECT, CROSS_KINDS };
static const char *const cross_name[CROSS_KINDS] = {"chan", "shared", "wg",
						    "select"};

typedef struct cross {
	int kind;
	tt_chan *c, *c2; /* c2: a select's second channel */
	tt_waitgroup *wg;
	int main_tid;
	int64_t id; /* the goroutine that waits; set before tid */
	int tid;    /* atomic: where the runner ran */
} cross;

static void cross_runner(void *arg)
{
	cross *x = arg;
	int tid = (int)gettid();
	if (tid != x->main_tid) {
		if (x->kind == ON_CHAN_SHARED_STACK) {
			/* It stays on this P: a shared stack is its own. */
			tt_go_attr a = {.shared_stack = true};
			x->id = tt_go_with(&a, wait_recv, x->c);
		} else {
			x->id = tt_goid();
		}
	}
	__atomic_store_n(&x->tid, tid, __ATOMIC_RELEASE);
	if (tid == x->main_tid || x->kind == ON_CHAN_SHARED_STACK)
		return; /* on main: the next try; or the child waits */
	if (x->kind == ON_CHAN) {
		TU_UNCHECKED(tt_chan_recv(x->c, &(char){0}, 0, NULL));
	} else if (x->kind == ON_SELECT) {
		tt_case cases[] = {
			TT_CASE_RECV_DISCARD(x->c, NULL),
			TT_CASE_RECV_DISCARD(x->c2, NULL),
		};
		TU_UNCHECKED(tt_select(cases, 2, TT_FOREVER));
	} else {
		TU_UNCHECKED(tt_wg_wait(x->wg));
	}
}

static void child_proven_cross_p(void)
{
	TU_UNCHECKED(tt_runtime_procs_set(2));
	for (int k = 0; k < CROSS_KINDS; k++) {
		cross x = {.kind = k, .main_tid = (int)gettid()};
		const void *obj;
		if (k == ON_WG) {
			TU_ASSERT_OK(tt_wg_make(&x.wg));
			TU_ASSERT_OK(tt_wg_add(x.wg, 1));
			obj = x.wg;
		} else {
			TU_ASSERT_OK(tt_chan_make(&x.c, 0, 0));
			obj = x.c;
		}
		if (k == ON_SELECT)
			TU_ASSERT_OK(tt_chan_make(&x.c2, 0, 0));
		/* tt_go hands the runner to the worker when it is idle. */
		for (int i = 0; i < 500; i++) {
			__atomic_store_n(&x.tid, 0, __ATOMIC_RELAXED);
			TU_ASSERT_GT(tt_go(cross_runner, &x), 0);
			TU_WAIT_FOR(__atomic_load_n(&x.tid, __ATOMIC_ACQUIRE),
				    5 * TT_SECOND);
			if (__atomic_load_n(&x.tid, __ATOMIC_ACQUIRE) !=
			    x.main_tid)
				break;
			tt_sleep(TT_MILLISECOND);
		}
		TU_ASSERT_NE(__atomic_load_n(&x.tid, __ATOMIC_ACQUIRE),
			     x.main_tid);
		TU_ASSERT_GT(x.id, 0);
		if (k == ON_WG)
			WAIT_SYNC_PARKED(x.wg);
		else
			TU_WAIT_QUEUED(x.c, false, 1);
		if (k == ON_SELECT) {
			/* Not while another of its channels is held. */
			TU_WAIT_QUEUED(x.c2, false, 1);
			uint64_t held_on = tt_leak_proven_count();
			release_it(x.c2);
			TU_ASSERT_EQ(tt_leak_proven_count(), held_on);
		}
		fprintf(stderr, "tu-goid-%s=%lld\n", cross_name[k],
			(long long)x.id);
		uint64_t before = tt_leak_proven_count();
		if (k == ON_WG)
			drop_wg(x.wg);
		else
			release_it(x.c);
		TU_ASSERT_EQ(tt_leak_proven_count(), before + 1);
		fprintf(stderr, "tu-released-%s\n", cross_name[k]);

		/* The check lists it as proven, with the release, as it
		 * does one of this thread's; the proxies not at all. */
		tt_leak_opts *o = quick_opts();
		tt_leak_list l;
		TU_ASSERT_EQ(tt_leak_find(o, &l), k + 1);
		bool found = false;
		for (size_t i = 0; i < l.n; i++) {
			TU_ASSERT(l.g[i].proven);
			found = found || l.g[i].id == x.id;
		}
		TU_ASSERT(found);
		char want[128];
		snprintf(want, sizeof want,
			 "goroutine %lld is proven leaked: parked on %s %p "
			 "released at ",
			 (long long)x.id,
			 k == ON_WG ? "sync.WaitGroup" : "chan", obj);
		TU_ASSERT_CONTAINS(l.report, want);
		tt_leak_list_free(&l);
		tt_leak_opts_free(o);
	}
	fprintf(stderr, "tu-end\n");
}

static void test_leak_proven_across_ps(void **state)
{
	(void)state;
	tu_child c;
	with_env("TETHER_LEAK", "report", "proven_cross_p", &c);
	TU_ASSERT_CHILD_EXIT(&c, 0);
	TU_ASSERT_CONTAINS(c.err, "tu-end");
	/* One report per goroutine, none for a proxy. */
	TU_ASSERT_EQ(tu_count(c.err, "leaked: parked on "), CROSS_KINDS);
	TU_ASSERT_NOT_CONTAINS(c.err, "for goroutine");
	for (int k = 0; k < CROSS_KINDS; k++) {
		char key[32], want[160];
		snprintf(key, sizeof key, "tu-goid-%s", cross_name[k]);
		long long id = tu_child_marker(&c, key);
		TU_ASSERT_GT(id, 0);
		snprintf(want, sizeof want, "goroutine %lld leaked: parked on %s 0x",
			 id, k == ON_WG ? "sync.WaitGroup" : "chan");
		const char *rep = strstr(c.err, want);
		TU_ASSERT_MSG(rep, "no report of goroutine %lld in:\n%s", id,
			      c.err);
		/* Printed at the release, before the release returned. */
		snprintf(key, sizeof key, "tu-released-%s", cross_name[k]);
		const char *rel = strstr(c.err, key);
		TU_ASSERT(rel != NULL && rep < rel);
		/* Its own stack, as its thread unwound it, then the
		 * releasing one. */
		snprintf(want, sizeof want, "\ngoroutine %lld [%s", id,
			 k == ON_WG       ? "sync.WaitGroup.Wait"
			 : k == ON_SELECT ? "select"
					  : "chan receive");
		const char *stack = strstr(rep, want);
		TU_ASSERT_MSG(stack && stack < rel, "no stack of %lld in:\n%s",
			      id, rep);
		TU_ASSERT(strstr(stack, k == ON_WG       ? "tt_wg_wait("
					: k == ON_SELECT ? "tt_select("
							 : "tt_chan_recv(") <
			  rel);
		const char *by = strstr(stack, "released by goroutine 1:\n");
		TU_ASSERT(by != NULL && by < rel);
		TU_ASSERT(strstr(by, k == ON_WG ? "drop_wg(" : "release_it(") <
			  rel);
	}
	tu_child_free(&c);
}

/* A goroutine of main's proven leaked on a pthread's shared channel,
 * which the pthread released; then the pthread ends, which wakes the
 * goroutine after all (-EPIPE): it is not marked leaked any more. */
typedef struct owner_ends {
	tt_chan *c;    /* the pthread's; set before ready */
	tt_chan *cmd;  /* the pthread's: release c now */
	tt_chan *done; /* main's: released */
	int ready;     /* atomic */
	int woke;      /* atomic: the goroutine's receive returned -EPIPE */
} owner_ends;

static void *owner_thread(void *arg)
{
	owner_ends *o = arg;
	TU_ASSERT_OK(tt_chan_make(&o->c, 0, 0));
	TU_ASSERT_OK(tt_chan_make(&o->cmd, 0, 0));
	__atomic_store_n(&o->ready, 1, __ATOMIC_RELEASE);
	TU_ASSERT_OK(tt_chan_recv(o->cmd, NULL, 0, NULL));
	TU_WAIT_QUEUED(o->c, false, 1);
	uint64_t before = tt_leak_proven_count();
	TU_ASSERT_OK(tt_chan_release(o->c));
	TU_ASSERT_EQ(tt_leak_proven_count(), before + 1);
	TU_ASSERT_OK(tt_chan_send(o->done, NULL, 0));
	TU_ASSERT_OK(tt_chan_release(o->cmd));
	return NULL; /* its end wakes the goroutine */
}

static tt_chan *owner_hold;

static void wait_owner_chan(void *arg)
{
	owner_ends *o = arg;
	int r = tt_chan_recv(o->c, &(char){0}, 0, NULL);
	__atomic_store_n(&o->woke, r == -EPIPE ? 1 : -1, __ATOMIC_RELEASE);
	TU_UNCHECKED(tt_chan_recv(owner_hold, NULL, 0, NULL));
}

static void child_proven_owner_ends(void)
{
	static owner_ends o;
	TU_ASSERT_OK(tt_chan_make(&o.done, 0, 0));
	TU_ASSERT_OK(tt_chan_make(&owner_hold, 0, 0));
	pthread_t th;
	TU_ASSERT_EQ(pthread_create(&th, NULL, owner_thread, &o), 0);
	TU_WAIT_FOR(__atomic_load_n(&o.ready, __ATOMIC_ACQUIRE), 5 * TT_SECOND);
	tt_go_attr a = {.flags = TT_GO_THIS_THREAD};
	int64_t id = tt_go_with(&a, wait_owner_chan, &o);
	TU_ASSERT_GT(id, 0);
	TU_ASSERT_OK(tt_chan_send(o.cmd, NULL, 0));
	TU_ASSERT_OK(tt_chan_recv(o.done, NULL, 0, NULL));
	/* Proven, marked here before the pthread's word came. */
	tt_leak_opts *opts = quick_opts();
	tt_leak_list l;
	TU_ASSERT_EQ(tt_leak_find(opts, &l), 1);
	TU_ASSERT_EQ(l.g[0].id, id);
	TU_ASSERT(l.g[0].proven);
	tt_leak_list_free(&l);
	tu_join_parked(th);
	TU_WAIT_QUEUED(owner_hold, false, 1);
	TU_ASSERT_EQ(__atomic_load_n(&o.woke, __ATOMIC_ACQUIRE), 1);
	TU_ASSERT_EQ(tt_leak_find(opts, &l), 1);
	TU_ASSERT_EQ(l.g[0].id, id);
	TU_ASSERT(!l.g[0].proven);
	TU_ASSERT_NOT_CONTAINS(l.report, "is proven leaked");
	tt_leak_list_free(&l);
	tt_leak_opts_free(opts);
	fprintf(stderr, "tu-end\n");
}

static void test_leak_proven_woken_by_owner_end(void **state)
{
	(void)state;
	TU_REQUIRE_THREADS();
	tu_child c;
	with_env("TETHER_LEAK", "off", "proven_owner_ends", &c);
	TU_ASSERT_CHILD_EXIT(&c, 0);
	TU_ASSERT_CONTAINS(c.err, "tu-end");
	tu_child_free(&c);
}

/* The goroutineleak profile lists proven leaks only. */
static void child_goroutineleak_profile(void)
{
	tt_chan *c, *keep;
	TU_ASSERT_OK(tt_chan_make(&c, 0, 0));
	TU_ASSERT_OK(tt_chan_make(&keep, 0, 0));
	tt_go(wait_recv, c);
	tt_go(wait_recv, keep); /* leaked too, but not proven */
	TU_WAIT_QUEUED(c, false, 1);
	TU_WAIT_QUEUED(keep, false, 1);
	TU_ASSERT_OK(tt_chan_release(c));
	static sink s;
	TU_ASSERT_OK(tt_profile_write("goroutineleak", 1, to_sink, &s));
	fprintf(stderr, "%s\n", s.buf);
	/* debug=2: the proven one's full stack, not the other's. */
	s.len = 0;
	TU_ASSERT_OK(tt_profile_write("goroutineleak", 2, to_sink, &s));
	int headers = 0;
	for (const char *p = s.buf; (p = strstr(p, "goroutine ")) != NULL;
	     p++)
		headers += p == s.buf || p[-1] == '\n';
	TU_ASSERT_EQ(headers, 1);
	TU_ASSERT_CONTAINS(s.buf, " [chan receive");
	TU_ASSERT_CONTAINS(s.buf, "wait_recv(");
	fprintf(stderr, "tu-end\n");
}

static void test_leak_goroutineleak_profile(void **state)
{
	(void)state;
	tu_child c;
	with_env("TETHER_LEAK", "off", "goroutineleak_profile", &c);
	TU_ASSERT_CHILD_EXIT(&c, 0);
	TU_ASSERT_CONTAINS(c.err, "goroutineleak profile: total 1\n");
	TU_ASSERT_CONTAINS(c.err, "wait_recv");
	TU_ASSERT_CONTAINS(c.err, "tu-end");
	tu_child_free(&c);
}

static const tu_child_case child_cases[] = {
	{"leak_at_exit", child_leak_at_exit},
	{"clean_at_exit", child_clean_at_exit},
	{"failed_run_not_checked", child_failed_run_not_checked},
	{"at_exit_cleanup", child_at_exit_cleanup},
	{"proven_chan", child_proven_chan},
	{"proven_false_positives", child_proven_false_positives},
	{"proven_sync", child_proven_sync},
	{"proven_released_by", child_proven_released_by},
	{"goroutineleak_profile", child_goroutineleak_profile},
	{"proven_cross_p", child_proven_cross_p},
	{"proven_owner_ends", child_proven_owner_ends},
};

int main(int argc, char **argv)
{
	tu_child_dispatch(argc, argv, child_cases,
			  sizeof child_cases / sizeof child_cases[0]);
	const struct CMUnitTest tests[] = {
		LEAK_TEST(test_leak_options_bad_input),
		LEAK_TEST(test_leak_none),
		LEAK_TEST(test_leak_report_layout),
		LEAK_TEST(test_leak_report_two),
		LEAK_TEST(test_leak_retries),
		LEAK_TEST(test_leak_quiescent_is_final),
		LEAK_TEST(test_leak_ignore_functions),
		LEAK_TEST(test_leak_ignore_current),
		LEAK_TEST(test_leak_cleanup_hook),
		LEAK_TEST(test_leak_scope_nested_creation),
		LEAK_TEST(test_leak_scope_concurrent),
		LEAK_TEST(test_leak_scope_misuse),
		LEAK_TEST(test_leak_scope_nesting),
		LEAK_TEST(test_leak_leakcheck_env),
		LEAK_TEST(test_leak_proven_report),
		LEAK_TEST(test_leak_proven_no_false_positive),
		LEAK_TEST(test_leak_proven_sync_and_ctx),
		LEAK_TEST(test_leak_proven_released_by_public_call),
		LEAK_TEST(test_leak_goroutineleak_profile),
		LEAK_TEST(test_leak_proven_across_ps),
		LEAK_TEST(test_leak_proven_woken_by_owner_end),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
