/* tether tests — the rest of Go's API: time.AfterFunc and time.Tick
 * (tether/time.h), context.TODO, WithCancelCause/Cause, AfterFunc,
 * WithoutCancel (tether/ctx.h), signal.NotifyContext, RWMutex.RLocker,
 * TryLock/TryRLock and Cond over any Locker (tether/sync.h).
 *
 * The expected results are Go's documented semantics (Go 1.23 for
 * timers); where a Go program was run to confirm one, the comment says
 * what it printed. */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "testutil.h"

#include <tether/ctx.h>
#include <tether/sync.h>
#include <tether/time.h>

#define MS TT_MILLISECOND

/* ---- time.AfterFunc ------------------------------------------------------ */

typedef struct af_rec {
	int runs;
	int64_t goid;    /* the goroutine fn last ran in */
	int64_t ran_at;  /* tt_now() when it last ran */
	tt_chan *note;   /* if set, fn sends its run count here */
	tt_timer *self;  /* if set, fn calls tt_timer_stop on it */
	bool stop_in_fn; /* what that returned */
} af_rec;

static void af_fn(void *p)
{
	af_rec *r = p;
	r->runs++;
	r->goid = tt_goid();
	r->ran_at = tt_now();
	if (r->self)
		r->stop_in_fn = tt_timer_stop(r->self);
	if (r->note) {
		int n = r->runs;
		TU_ASSERT_OK(tt_send(r->note, &n));
	}
}

/* fn runs in a goroutine of its own, not before its time, and the
 * timer's goroutine count comes back to where it was. */
static void test_after_func_runs_in_own_goroutine(void **state)
{
	(void)state;
	af_rec r = {.note = tu_chan(sizeof(int), 1)};
	int64_t t0 = tt_now();
	tt_timer *t;
	TU_ASSERT_OK(tt_after_func(&t, 20 * MS, af_fn, &r));
	assert_non_null(t);
	TU_ASSERT_EQ(r.runs, 0);
	int n = 0;
	TU_ASSERT_OK(tt_recv(r.note, &n, NULL));
	TU_ASSERT_EQ(n, 1);
	TU_ASSERT_NE(r.goid, tt_goid());
	TU_ASSERT_GT(r.goid, 0);
	TU_ASSERT_RANGE(r.ran_at - t0, 20 * MS, 20 * MS + TU_SLACK_NS);
	/* It has started: Stop prevented nothing. */
	assert_false(tt_timer_stop(t));
	TU_ASSERT_OK(tt_timer_release(t));
	TU_ASSERT_OK(tt_chan_release(r.note));
}

/* Go printed "stop pending: true again: false": a Stop before the timer
 * fires prevents the call; a second reports nothing left to prevent. */
static void test_after_func_stop_prevents_call(void **state)
{
	(void)state;
	af_rec r = {0};
	tt_timer *t;
	TU_ASSERT_OK(tt_after_func(&t, 10 * MS, af_fn, &r));
	assert_true(tt_timer_stop(t));
	assert_false(tt_timer_stop(t));
	tt_sleep(40 * MS);
	TU_ASSERT_EQ(r.runs, 0);
	TU_ASSERT_OK(tt_timer_release(t));
}

/* Go: "reset stopped: false", then it runs; "stop after fire: false",
 * "reset fired: false", "reset pending: true" and it runs once more:
 * "ran: 2". */
static void test_after_func_reset(void **state)
{
	(void)state;
	af_rec r = {.note = tu_chan(sizeof(int), 4)};
	tt_timer *t;
	TU_ASSERT_OK(tt_after_func(&t, TT_MINUTE, af_fn, &r));
	assert_true(tt_timer_stop(t));
	/* Reset of a stopped timer schedules fn again. */
	assert_false(tt_timer_reset(t, 10 * MS));
	int n;
	TU_ASSERT_OK(tt_recv(r.note, &n, NULL));
	TU_ASSERT_EQ(n, 1);
	assert_false(tt_timer_stop(t));
	/* Reset after it ran: false, and it runs again. */
	assert_false(tt_timer_reset(t, 10 * MS));
	/* Reset while pending moves it: true, and it still runs once. */
	int64_t moved = tt_now();
	assert_true(tt_timer_reset(t, 30 * MS));
	TU_ASSERT_OK(tt_recv(r.note, &n, NULL));
	TU_ASSERT_EQ(n, 2);
	TU_ASSERT_GE(r.ran_at - moved, 30 * MS);
	tt_sleep(40 * MS);
	TU_ASSERT_EQ(r.runs, 2);
	TU_ASSERT_OK(tt_timer_release(t));
	TU_ASSERT_OK(tt_chan_release(r.note));
}

/* Dropping the handle does not cancel the call (Go's AfterFunc runs f
 * whether or not the program keeps the *Timer); out may be NULL. */
static void test_after_func_released_still_runs(void **state)
{
	(void)state;
	af_rec a = {.note = tu_chan(sizeof(int), 1)};
	af_rec b = {.note = tu_chan(sizeof(int), 1)};
	tt_timer *t;
	TU_ASSERT_OK(tt_after_func(&t, 10 * MS, af_fn, &a));
	TU_ASSERT_OK(tt_timer_release(t));
	TU_ASSERT_OK(tt_after_func(NULL, 5 * MS, af_fn, &b));
	int n;
	TU_ASSERT_OK(tt_recv(a.note, &n, NULL));
	TU_ASSERT_OK(tt_recv(b.note, &n, NULL));
	TU_ASSERT_EQ(a.runs, 1);
	TU_ASSERT_EQ(b.runs, 1);
	/* Once fired, the runtime's reference is gone too: the handle is
	 * stale. */
	assert_false(tt_timer_stop(t));
	TU_ASSERT_CONTAINS(tt_last_error(), "not a live channel");
	TU_ASSERT_OK(tt_chan_release(a.note));
	TU_ASSERT_OK(tt_chan_release(b.note));
}

/* Go's AfterFunc timer has a nil C. */
static void test_after_func_no_channel(void **state)
{
	(void)state;
	af_rec r = {0};
	tt_timer *t;
	TU_ASSERT_OK(tt_after_func(&t, TT_MINUTE, af_fn, &r));
	assert_null(tt_timer_chan(t));
	TU_ASSERT_CONTAINS(tt_last_error(), "made by tt_after_func");
	TU_ASSERT_CONTAINS(tt_last_error(), "has no channel");
	assert_true(tt_timer_stop(t));
	TU_ASSERT_OK(tt_timer_release(t));

	tt_timer *bad = (tt_timer *)1;
	TU_ASSERT_ERR(tt_after_func(&bad, MS, NULL, NULL), -EINVAL);
	assert_null(bad);
	TU_ASSERT_CONTAINS(tt_last_error(), "fn is NULL");
}

/* Stop from inside fn: it has started, so false. */
static void test_after_func_stop_inside(void **state)
{
	(void)state;
	af_rec r = {.note = tu_chan(sizeof(int), 1)};
	tt_timer *t;
	TU_ASSERT_OK(tt_after_func(&t, MS, af_fn, &r));
	r.self = t;
	r.stop_in_fn = true;
	int n;
	TU_ASSERT_OK(tt_recv(r.note, &n, NULL));
	assert_false(r.stop_in_fn);
	TU_ASSERT_OK(tt_timer_release(t));
	TU_ASSERT_OK(tt_chan_release(r.note));
}

/* The timer fires in the idle wait of a goroutine that is ending (its
 * stack waits to be freed while the new goroutine is made), and in the
 * park of the main goroutine. */
static void sleep_then_end(void *p)
{
	(void)p;
	tt_sleep(5 * MS);
}

static void test_after_func_fires_while_goroutine_ends(void **state)
{
	(void)state;
	for (int i = 0; i < 20; i++) {
		af_rec r = {.note = tu_chan(sizeof(int), 0)};
		TU_ASSERT_OK(tt_after_func(NULL, 5 * MS + i * 100000, af_fn,
					   &r));
		tu_go(sleep_then_end, NULL);
		int n = 0;
		TU_ASSERT_OK(tt_recv(r.note, &n, NULL));
		TU_ASSERT_EQ(n, 1);
		TU_ASSERT_OK(tt_chan_release(r.note));
	}
}

/* Many at once, in deadline order, each in its own goroutine. */
static void count_fn(void *p)
{
	int *count = p;
	++*count;
	tt_yield();
}

static void test_after_func_many(void **state)
{
	(void)state;
	enum { N = 500 };
	int count = 0;
	tt_timer *ts[N];
	for (int i = 0; i < N; i++)
		TU_ASSERT_OK(tt_after_func(&ts[i], (i % 7) * MS, count_fn,
					   &count));
	int stopped = 0;
	for (int i = 0; i < N; i += 5)
		stopped += tt_timer_stop(ts[i]);
	TU_WAIT_FOR(count + stopped == N, TT_SECOND + TU_SLACK_NS);
	tt_sleep(10 * MS);
	TU_ASSERT_EQ(count + stopped, N);
	for (int i = 0; i < N; i++)
		TU_ASSERT_OK(tt_timer_release(ts[i]));
}

/* ---- time.Tick ------------------------------------------------------------ */

static void test_tick(void **state)
{
	(void)state;
	tt_chan *c = tt_tick(5 * MS);
	assert_non_null(c);
	int64_t prev = tt_now();
	for (int i = 0; i < 4; i++) {
		int64_t when;
		TU_ASSERT_OK(tt_recv(c, &when, NULL));
		TU_ASSERT_GT(when, prev);
		prev = when;
	}
	/* Go: "tick nil: true true". */
	assert_null(tt_tick(0));
	TU_ASSERT_CONTAINS(tt_last_error(), "non-positive period");
	assert_null(tt_tick(-1));
	/* A second Tick is a ticker of its own. */
	tt_chan *d = tt_tick(TT_MINUTE);
	assert_non_null(d);
	assert_ptr_not_equal(c, d);
	int64_t when;
	TU_ASSERT_ERR(tt_chan_recv_until(d, &when, sizeof when, NULL, TT_TRY),
		      -EAGAIN);
}

int main(int argc, char **argv)
{
	tu_child_dispatch(argc, argv, NULL, 0);
	const struct CMUnitTest tests[] = {
		TU_TEST(test_after_func_runs_in_own_goroutine),
		TU_TEST(test_after_func_stop_prevents_call),
		TU_TEST(test_after_func_reset),
		TU_TEST(test_after_func_released_still_runs),
		TU_TEST(test_after_func_no_channel),
		TU_TEST(test_after_func_stop_inside),
		TU_TEST(test_after_func_fires_while_goroutine_ends),
		TU_TEST(test_after_func_many),
		TU_TEST(test_tick),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
