/* tether tests — lost cancels: a cancelable context released without a
 * cancel (Go's vet "lostcancel") is shown by the checker with where it was
 * made and where it was released, once, and printed at once under
 * TETHER_LEAK=report. */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "testutil.h"

static int made_line, released_line;

static __attribute__((noinline)) void drop_uncancelled(void)
{
	tt_ctx *c;
	made_line = __LINE__ + 1;
	TU_ASSERT_OK(tt_ctx_with_timeout(&c, tt_ctx_background(), TT_MINUTE));
	released_line = __LINE__ + 1;
	TU_ASSERT_OK(tt_ctx_release(c));
}

typedef struct sink {
	char buf[8192];
	size_t len;
} sink;

static int to_sink(void *arg, const void *data, size_t len)
{
	sink *s = arg;
	size_t n = len < sizeof s->buf - 1 - s->len ? len
						     : sizeof s->buf - 1 - s->len;
	memcpy(s->buf + s->len, data, n);
	s->len += n;
	s->buf[s->len] = '\0';
	return 0;
}

static void want_sites(const char *text)
{
	char want[256];
	snprintf(want, sizeof want,
		 "lost cancel: context from tt_ctx_with_timeout at ");
	TU_ASSERT_CONTAINS(text, want);
	snprintf(want, sizeof want, "test_lostcancel.c:%d (drop_uncancelled)",
		 made_line);
	TU_ASSERT_CONTAINS(text, want);
	snprintf(want, sizeof want,
		 "(drop_uncancelled) released without a cancel at ");
	TU_ASSERT_CONTAINS(text, want);
	snprintf(want, sizeof want,
		 "test_lostcancel.c:%d (drop_uncancelled) by goroutine %lld",
		 released_line, (long long)tt_goid());
	TU_ASSERT_CONTAINS(text, want);
}

static void test_lost_cancel_reported_once(void **state)
{
	(void)state;
	drop_uncancelled();
	tt_leak_list l;
	TU_ASSERT_EQ(tt_leak_find(NULL, &l), 0); /* no goroutine */
	TU_ASSERT_EQ(l.lost_cancels, 1);
	assert_non_null(l.report);
	want_sites(l.report);
	tt_leak_list_free(&l);
	/* A verify reports it, and counts it. */
	sink s = {.len = 0};
	TU_ASSERT_EQ(tt_leak_verify_none_to(NULL, to_sink, &s), 1);
	want_sites(s.buf);
	TU_ASSERT_NOT_CONTAINS(s.buf, "found unexpected goroutines");
	/* Once. */
	s.len = 0;
	s.buf[0] = '\0';
	TU_ASSERT_EQ(tt_leak_verify_none_to(NULL, to_sink, &s), 0);
	TU_ASSERT_EQ(s.len, 0);
	TU_ASSERT_EQ(tt_leak_find(NULL, &l), 0);
	TU_ASSERT_EQ(l.lost_cancels, 0);
	tt_leak_list_free(&l);
}

static void test_cancelled_contexts_are_not_lost(void **state)
{
	(void)state;
	tt_ctx *a, *b, *v;
	TU_ASSERT_OK(tt_ctx_with_cancel(&a, tt_ctx_background()));
	TU_ASSERT_OK(tt_ctx_with_timeout(&b, a, TT_MINUTE));
	TU_ASSERT_OK(tt_ctx_with_value(&v, b, &a, NULL));
	TU_ASSERT_OK(tt_ctx_cancel(a)); /* cancels b too */
	TU_ASSERT_OK(tt_ctx_release(v));
	TU_ASSERT_OK(tt_ctx_release(b));
	TU_ASSERT_OK(tt_ctx_release(a));
	tt_ctx *d;
	TU_ASSERT_OK(tt_ctx_with_timeout(&d, tt_ctx_background(), 0));
	TU_ASSERT_OK(tt_ctx_release(d)); /* its deadline cancelled it */
	TU_ASSERT_EQ(tt_leak_verify_none(NULL), 0);
}

/* A context-aware wait holds its own reference; dropping it is not the
 * program's release. */
static void test_wait_hold_is_not_a_release(void **state)
{
	(void)state;
	tt_mutex *m;
	TU_ASSERT_OK(tt_mutex_make(&m));
	tt_ctx *c;
	TU_ASSERT_OK(tt_ctx_with_cancel(&c, tt_ctx_background()));
	TU_ASSERT_OK(tt_mutex_lock_ctx(c, m));
	TU_ASSERT_OK(tt_mutex_unlock(m));
	TU_ASSERT_OK(tt_ctx_cancel(c));
	TU_ASSERT_OK(tt_ctx_release(c));
	TU_ASSERT_OK(tt_mutex_release(m));
	TU_ASSERT_EQ(tt_leak_verify_none(NULL), 0);
}

static void scoped_drop(void *arg)
{
	(void)arg;
	drop_uncancelled();
}

static void test_lost_cancel_in_its_scope(void **state)
{
	(void)state;
	tt_leak_scope a, b;
	TU_ASSERT_OK(tt_leak_scope_begin(&a, "a"));
	tu_go(scoped_drop, NULL);
	TU_ASSERT_OK(tt_leak_scope_end(&a));
	TU_ASSERT_OK(tt_leak_scope_begin(&b, "b"));
	sink s = {.len = 0};
	TU_ASSERT_EQ(tt_leak_scope_verify_to(&b, NULL, to_sink, &s), 0);
	TU_ASSERT_OK(tt_leak_scope_begin(&a, "a again"));
	TU_ASSERT_OK(tt_leak_scope_end(&a));
	/* Scope a's lost cancel is still unreported: the thread-wide
	 * verify sees it. */
	TU_ASSERT_EQ(tt_leak_verify_none_to(NULL, to_sink, &s), 1);
	TU_ASSERT_CONTAINS(s.buf, "lost cancel: context from "
				  "tt_ctx_with_timeout");
}

static void *thread_drop(void *arg)
{
	*(int64_t *)arg = tt_goid();
	drop_uncancelled();
	return NULL;
}

/* The records are the process's: a context released on another thread
 * (a plain pthread here; a goroutine on another P alike) is reported by
 * a verify on this one, with the goroutine that released it. */
static void test_lost_cancel_of_another_thread(void **state)
{
	(void)state;
	TU_REQUIRE_THREADS();
	int64_t goid = 0;
	pthread_t th;
	TU_ASSERT_EQ(pthread_create(&th, NULL, thread_drop, &goid), 0);
	tu_join_parked(th);
	sink s = {.len = 0};
	TU_ASSERT_EQ(tt_leak_verify_none_to(NULL, to_sink, &s), 1);
	TU_ASSERT_CONTAINS(s.buf, "lost cancel: context from "
				  "tt_ctx_with_timeout");
	char want[128];
	snprintf(want, sizeof want,
		 "test_lostcancel.c:%d (drop_uncancelled) by goroutine %lld",
		 released_line, (long long)goid);
	TU_ASSERT_CONTAINS(s.buf, want);
	/* Reported once. */
	TU_ASSERT_EQ(tt_leak_verify_none(NULL), 0);
}

/* A context of main's that a pthread has waited on (its thread keeps a
 * mirror of it for its next waits, ctx.c) and main then drops without
 * a cancel: it is freed all the same, so its lost cancel is reported,
 * whether the pthread is still there (told to let go) or has ended
 * (its mirrors go with it). */
typedef struct mirror_arg {
	tt_ctx *ctx;
	int locked;
	_Atomic int stage; /* 1: it waited; 2: main is done; 3: it ends */
} mirror_arg;

static void *mirror_waiter(void *p)
{
	mirror_arg *a = p;
	tt_mutex *m;
	TU_ASSERT_OK(tt_mutex_make(&m));
	a->locked = tt_mutex_lock_ctx(a->ctx, m);
	TU_ASSERT_OK(tt_mutex_unlock(m));
	TU_ASSERT_OK(tt_mutex_release(m));
	atomic_store(&a->stage, 1);
	/* Park, so its scheduler runs what main posts to it. */
	while (atomic_load(&a->stage) == 1)
		TU_ASSERT_OK(tt_sleep(TT_MILLISECOND));
	atomic_store(&a->stage, 3);
	return NULL;
}

/* The lost cancels a verify reports now (the pthread, parked, may be
 * reported with them: a goroutine, not counted here). */
static size_t lost_now(sink *s)
{
	s->len = 0;
	s->buf[0] = '\0';
	(void)tt_leak_verify_none_to(NULL, to_sink, s);
	size_t n = 0;
	for (const char *p = s->buf; (p = strstr(p, "lost cancel:")); p++)
		n++;
	return n;
}

static void test_lost_cancel_waited_on_elsewhere(void **state)
{
	(void)state;
	TU_REQUIRE_THREADS();
	for (int ends_first = 0; ends_first < 2; ends_first++) {
		mirror_arg a = {0};
		tt_ctx *bg = tt_ctx_background();
		made_line = __LINE__ + 1;
		TU_ASSERT_OK(tt_ctx_with_timeout(&a.ctx, bg, TT_MINUTE));
		pthread_t th;
		TU_ASSERT_EQ(pthread_create(&th, NULL, mirror_waiter, &a), 0);
		TU_WAIT_FOR(atomic_load(&a.stage) == 1, 30 * TT_SECOND);
		TU_ASSERT_OK(a.locked);
		if (ends_first) {
			atomic_store(&a.stage, 2);
			tu_join_parked(th);
		}
		TU_ASSERT_OK(tt_ctx_release(a.ctx));
		sink s = {.len = 0};
		size_t n = 0;
		TU_WAIT_FOR((n = lost_now(&s)) != 0, 30 * TT_SECOND);
		TU_ASSERT_EQ(n, 1);
		TU_ASSERT_CONTAINS(s.buf, "lost cancel: context from "
					  "tt_ctx_with_timeout");
		char want[96];
		snprintf(want, sizeof want, "test_lostcancel.c:%d ",
			 made_line);
		TU_ASSERT_CONTAINS(s.buf, want);
		if (!ends_first) {
			atomic_store(&a.stage, 2);
			tu_join_parked(th);
		}
		TU_ASSERT_EQ(atomic_load(&a.stage), 3);
	}
}

static void child_report(void)
{
	drop_uncancelled();
	fprintf(stderr, "tu-made=%d tu-released=%d\n", made_line,
		released_line);
}

static void test_lost_cancel_printed_under_report(void **state)
{
	(void)state;
	setenv("TETHER_LEAK", "report", 1);
	tu_child c;
	int r = tu_spawn_self("report", 60 * TT_SECOND, &c);
	unsetenv("TETHER_LEAK");
	assert_int_equal(r, 0);
	TU_ASSERT_CHILD_EXIT(&c, 0);
	char want[256];
	snprintf(want, sizeof want,
		 "/test_lostcancel.c:%lld (drop_uncancelled) released "
		 "without a cancel at ",
		 tu_child_marker(&c, "tu-made"));
	TU_ASSERT_CONTAINS(c.err, "tether: lost cancel: context from "
				  "tt_ctx_with_timeout at /");
	TU_ASSERT_CONTAINS(c.err, want);
	snprintf(want, sizeof want,
		 "/test_lostcancel.c:%lld (drop_uncancelled) by goroutine 1\n",
		 tu_child_marker(&c, "tu-released"));
	TU_ASSERT_CONTAINS(c.err, want);
	tu_child_free(&c);
}

static const tu_child_case child_cases[] = {
	{"report", child_report},
};

int main(int argc, char **argv)
{
	tu_child_dispatch(argc, argv, child_cases,
			  sizeof child_cases / sizeof child_cases[0]);
	const struct CMUnitTest tests[] = {
		TU_TEST(test_lost_cancel_reported_once),
		TU_TEST(test_cancelled_contexts_are_not_lost),
		TU_TEST(test_wait_hold_is_not_a_release),
		TU_TEST(test_lost_cancel_in_its_scope),
		TU_TEST(test_lost_cancel_of_another_thread),
		TU_TEST(test_lost_cancel_waited_on_elsewhere),
		TU_TEST(test_lost_cancel_printed_under_report),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
