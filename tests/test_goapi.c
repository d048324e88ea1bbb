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
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "testutil.h"

#include <tether/ctx.h>
#include <tether/fd.h>
#include <tether/leak.h>
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
	/* Stop dropped the runtime's reference: the release freed it. */
	assert_false(tt_timer_stop(t));
	TU_ASSERT_CONTAINS(tt_last_error(), "not a live channel");
	/* Released first, then stopped through another reference. */
	tt_timer *t2;
	TU_ASSERT_OK(tt_after_func(&t2, 10 * MS, af_fn, &r));
	TU_ASSERT_OK(tt_chan_retain((tt_chan *)t2));
	TU_ASSERT_OK(tt_timer_release(t2));
	assert_true(tt_timer_stop(t2));
	TU_ASSERT_OK(tt_chan_release((tt_chan *)t2));
	TU_ASSERT_ERR(tt_timer_release(t2), -EBADF);
	tt_sleep(20 * MS);
	TU_ASSERT_EQ(r.runs, 0);
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

/* Many at once, in deadline order, each in its own goroutine. Nothing
 * orders those goroutines among themselves or before the test's polling:
 * the count is an atomic. */
static void count_fn(void *p)
{
	int *count = p;
	__atomic_fetch_add(count, 1, __ATOMIC_RELAXED);
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
	TU_WAIT_FOR(__atomic_load_n(&count, __ATOMIC_RELAXED) + stopped == N,
		    TT_SECOND + TU_SLACK_NS);
	tt_sleep(10 * MS);
	TU_ASSERT_EQ(__atomic_load_n(&count, __ATOMIC_RELAXED) + stopped, N);
	for (int i = 0; i < N; i++)
		TU_ASSERT_OK(tt_timer_release(ts[i]));
}

/* The periodic idiom: fn re-arms its own timer with Reset (false: it had
 * fired), and stops re-arming after a few runs. */
typedef struct rearm {
	tt_timer *t;
	int runs;
	bool reset_result[4];
	tt_chan *note;
} rearm;

static void rearm_fn(void *p)
{
	rearm *r = p;
	if (++r->runs < 4) {
		r->reset_result[r->runs] = tt_timer_reset(r->t, MS);
		return;
	}
	int n = r->runs;
	TU_ASSERT_OK(tt_send(r->note, &n));
}

static void test_after_func_rearms_itself(void **state)
{
	(void)state;
	rearm r = {.note = tu_chan(sizeof(int), 1)};
	r.reset_result[1] = r.reset_result[2] = r.reset_result[3] = true;
	TU_ASSERT_OK(tt_after_func(&r.t, MS, rearm_fn, &r));
	int n;
	TU_ASSERT_OK(tt_recv(r.note, &n, NULL));
	TU_ASSERT_EQ(n, 4);
	for (int i = 1; i < 4; i++)
		assert_false(r.reset_result[i]);
	tt_sleep(5 * MS);
	TU_ASSERT_EQ(r.runs, 4);
	assert_false(tt_timer_stop(r.t));
	TU_ASSERT_OK(tt_timer_release(r.t));
	TU_ASSERT_OK(tt_chan_release(r.note));
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


/* ---- context.TODO and names ---------------------------------------------- */

static const char *ctx_name(tt_ctx *c)
{
	static char buf[256];
	int n = tt_ctx_string(c, buf, sizeof buf);
	TU_ASSERT_GE(n, 0);
	TU_ASSERT_EQ((size_t)n, strlen(buf));
	return buf;
}

static void test_ctx_todo(void **state)
{
	(void)state;
	tt_ctx *todo = tt_ctx_todo();
	assert_non_null(todo);
	assert_ptr_equal(todo, tt_ctx_todo());
	assert_ptr_not_equal(todo, tt_ctx_background());
	assert_null(tt_ctx_done(todo));
	TU_ASSERT_OK(tt_ctx_err(todo));
	TU_ASSERT_OK(tt_ctx_cause(todo));
	TU_ASSERT_EQ(tt_ctx_deadline(todo), TT_FOREVER);
	TU_ASSERT_OK(tt_ctx_retain(todo));
	TU_ASSERT_OK(tt_ctx_release(todo));
	TU_ASSERT_ERR(tt_ctx_cancel(todo), -EINVAL);
	TU_ASSERT_CONTAINS(tt_last_error(), "the TODO context has no cancel");
	assert_string_equal(ctx_name(todo), "context.TODO");
	assert_string_equal(ctx_name(tt_ctx_background()),
			    "context.Background");

	/* Children work as under background. */
	tt_ctx *c;
	TU_ASSERT_OK(tt_ctx_with_cancel(&c, todo));
	assert_string_equal(ctx_name(c), "context.TODO.WithCancel");
	TU_ASSERT_OK(tt_ctx_cancel(c));
	TU_ASSERT_ERR(tt_ctx_err(c), -ECANCELED);
	TU_ASSERT_OK(tt_ctx_err(todo));
	TU_ASSERT_OK(tt_ctx_release(c));
}

static void test_ctx_string(void **state)
{
	(void)state;
	static int key;
	tt_ctx *bg = tt_ctx_background(), *c, *d, *v, *w;
	TU_ASSERT_OK(tt_ctx_with_cancel(&c, bg));
	TU_ASSERT_OK(tt_ctx_with_timeout(&d, c, TT_MINUTE));
	TU_ASSERT_OK(tt_ctx_with_value(&v, d, &key, &key));
	TU_ASSERT_OK(tt_ctx_without_cancel(&w, v));
	assert_string_equal(ctx_name(c), "context.Background.WithCancel");
	const char *n = ctx_name(w);
	TU_ASSERT_CONTAINS(n, "context.Background.WithCancel.WithDeadline(");
	TU_ASSERT_CONTAINS(n, " [5"); /* 5x.xxxxxxs left of the minute */
	TU_ASSERT_CONTAINS(n, "s]).WithValue(0x");
	TU_ASSERT(strlen(n) > strlen(".WithoutCancel"));
	assert_string_equal(n + strlen(n) - strlen(".WithoutCancel"),
			    ".WithoutCancel");
	/* A deadline later than the parent's is a WithCancel, as in Go. */
	tt_ctx *later;
	TU_ASSERT_OK(tt_ctx_with_timeout(&later, d, 2 * TT_MINUTE));
	n = ctx_name(later);
	assert_string_equal(n + strlen(n) - strlen("s]).WithCancel"),
			    "s]).WithCancel");
	/* snprintf's contract: truncated, terminated, full length back. */
	char small[8];
	int len = tt_ctx_string(c, small, sizeof small);
	TU_ASSERT_EQ(len, (int)strlen("context.Background.WithCancel"));
	assert_string_equal(small, "context");
	TU_ASSERT_EQ(tt_ctx_string(c, NULL, 0), len);
	TU_ASSERT_ERR(tt_ctx_string(c, NULL, 4), -EINVAL);
	TU_ASSERT_ERR(tt_ctx_string(NULL, small, sizeof small), -EINVAL);
	TU_ASSERT_OK(tt_ctx_release(later));
	TU_ASSERT_OK(tt_ctx_release(w));
	TU_ASSERT_OK(tt_ctx_release(v));
	TU_ASSERT_OK(tt_ctx_cancel(d));
	TU_ASSERT_OK(tt_ctx_release(d));
	TU_ASSERT_OK(tt_ctx_cancel(c));
	TU_ASSERT_OK(tt_ctx_release(c));
	TU_ASSERT_ERR(tt_ctx_string(c, small, sizeof small), -EBADF);
}

/* ---- context.WithCancelCause / Cause --------------------------------------- */

#define ERR_SHUTDOWN (-10001) /* a program's own cause */

static void test_ctx_cause_basic(void **state)
{
	(void)state;
	tt_ctx *c;
	TU_ASSERT_OK(tt_ctx_with_cancel_cause(&c, tt_ctx_background()));
	TU_ASSERT_OK(tt_ctx_cause(c)); /* not cancelled: nil */
	TU_ASSERT_OK(tt_ctx_cancel_cause(c, ERR_SHUTDOWN));
	TU_ASSERT_ERR(tt_ctx_err(c), -ECANCELED);
	TU_ASSERT_EQ(tt_ctx_cause(c), ERR_SHUTDOWN);
	/* The first cause stays. */
	TU_ASSERT_OK(tt_ctx_cancel_cause(c, -EPIPE));
	TU_ASSERT_OK(tt_ctx_cancel(c));
	TU_ASSERT_EQ(tt_ctx_cause(c), ERR_SHUTDOWN);
	/* A child made after the cancel starts out with the cause. */
	tt_ctx *late;
	TU_ASSERT_OK(tt_ctx_with_cancel(&late, c));
	TU_ASSERT_ERR(tt_ctx_err(late), -ECANCELED);
	TU_ASSERT_EQ(tt_ctx_cause(late), ERR_SHUTDOWN);
	TU_ASSERT_OK(tt_ctx_release(late));
	TU_ASSERT_OK(tt_ctx_release(c));

	/* cancel(nil) is Canceled; tt_ctx_cancel likewise. */
	TU_ASSERT_OK(tt_ctx_with_cancel_cause(&c, tt_ctx_background()));
	TU_ASSERT_OK(tt_ctx_cancel_cause(c, 0));
	TU_ASSERT_ERR(tt_ctx_cause(c), -ECANCELED);
	TU_ASSERT_OK(tt_ctx_release(c));
	TU_ASSERT_OK(tt_ctx_with_cancel_cause(&c, tt_ctx_background()));
	TU_ASSERT_OK(tt_ctx_cancel(c));
	TU_ASSERT_ERR(tt_ctx_cause(c), -ECANCELED);
	TU_ASSERT_OK(tt_ctx_release(c));

	/* Plain contexts have no CancelCauseFunc; causes are negative. */
	TU_ASSERT_OK(tt_ctx_with_cancel(&c, tt_ctx_background()));
	TU_ASSERT_ERR(tt_ctx_cancel_cause(c, -EPIPE), -EINVAL);
	TU_ASSERT_CONTAINS(tt_last_error(), "tt_ctx_with_cancel_cause");
	TU_ASSERT_OK(tt_ctx_err(c));
	TU_ASSERT_OK(tt_ctx_cancel(c));
	TU_ASSERT_ERR(tt_ctx_cause(c), -ECANCELED);
	TU_ASSERT_OK(tt_ctx_release(c));
	TU_ASSERT_OK(tt_ctx_with_cancel_cause(&c, tt_ctx_background()));
	TU_ASSERT_ERR(tt_ctx_cancel_cause(c, 5), -EINVAL);
	TU_ASSERT_OK(tt_ctx_err(c));
	TU_ASSERT_ERR(tt_ctx_cancel_cause(tt_ctx_background(), -EPIPE),
		      -EINVAL);
	TU_ASSERT_ERR(tt_ctx_cancel_cause(NULL, -EPIPE), -EINVAL);
	TU_ASSERT_ERR(tt_ctx_cause(NULL), -EINVAL);
	TU_ASSERT_OK(tt_ctx_cancel(c));
	TU_ASSERT_OK(tt_ctx_release(c));
	TU_ASSERT_ERR(tt_ctx_cause(c), -EBADF);
	TU_ASSERT_OK(tt_ctx_cause(tt_ctx_background()));
}

/* Go's rule: "Cause returns ... the cause of the first cancellation";
 * children cancelled by a parent report the parent's cause; one
 * cancelled on its own first keeps its own. */
static void test_ctx_cause_tree(void **state)
{
	(void)state;
	static int key;
	tt_ctx *root, *a, *b, *bv, *own, *grand;
	TU_ASSERT_OK(tt_ctx_with_cancel_cause(&root, tt_ctx_background()));
	TU_ASSERT_OK(tt_ctx_with_cancel(&a, root));
	TU_ASSERT_OK(tt_ctx_with_cancel_cause(&b, a));
	TU_ASSERT_OK(tt_ctx_with_value(&bv, b, &key, NULL));
	TU_ASSERT_OK(tt_ctx_with_cancel_cause(&own, root));
	TU_ASSERT_OK(tt_ctx_with_timeout(&grand, own, TT_MINUTE));
	TU_ASSERT_OK(tt_ctx_cancel_cause(own, -EPIPE));
	TU_ASSERT_EQ(tt_ctx_cause(grand), -EPIPE);
	TU_ASSERT_OK(tt_ctx_cause(root));
	TU_ASSERT_OK(tt_ctx_cause(b));

	TU_ASSERT_OK(tt_ctx_cancel_cause(root, ERR_SHUTDOWN));
	TU_ASSERT_EQ(tt_ctx_cause(a), ERR_SHUTDOWN);
	TU_ASSERT_EQ(tt_ctx_cause(b), ERR_SHUTDOWN);
	TU_ASSERT_EQ(tt_ctx_cause(bv), ERR_SHUTDOWN);
	TU_ASSERT_ERR(tt_ctx_err(bv), -ECANCELED);
	/* Cancelled first on their own: their own cause stays. */
	TU_ASSERT_EQ(tt_ctx_cause(own), -EPIPE);
	TU_ASSERT_EQ(tt_ctx_cause(grand), -EPIPE);
	/* Cancelling b now changes nothing. */
	TU_ASSERT_OK(tt_ctx_cancel_cause(b, -EIO));
	TU_ASSERT_EQ(tt_ctx_cause(b), ERR_SHUTDOWN);
	tt_ctx *list[] = {grand, own, bv, b, a, root};
	for (size_t i = 0; i < sizeof list / sizeof *list; i++) {
		if (list[i] != bv)
			TU_ASSERT_OK(tt_ctx_cancel(list[i]));
		TU_ASSERT_OK(tt_ctx_release(list[i]));
	}
}

/* A deadline's cause is DeadlineExceeded, for the context and its
 * cause-capable children. */
static void test_ctx_cause_deadline(void **state)
{
	(void)state;
	tt_ctx *t, *k;
	TU_ASSERT_OK(tt_ctx_with_timeout(&t, tt_ctx_background(), 5 * MS));
	TU_ASSERT_OK(tt_ctx_with_cancel_cause(&k, t));
	TU_ASSERT_OK(tt_chan_recv(tt_ctx_done(k), NULL, 0, NULL));
	TU_ASSERT_ERR(tt_ctx_err(k), -ETIMEDOUT);
	TU_ASSERT_ERR(tt_ctx_cause(t), -ETIMEDOUT);
	TU_ASSERT_ERR(tt_ctx_cause(k), -ETIMEDOUT);
	/* Already done: the cause does not change. */
	TU_ASSERT_OK(tt_ctx_cancel_cause(k, -EPIPE));
	TU_ASSERT_ERR(tt_ctx_cause(k), -ETIMEDOUT);
	TU_ASSERT_OK(tt_ctx_release(k));
	TU_ASSERT_OK(tt_ctx_release(t));
}

/* ---- context.WithoutCancel -------------------------------------------------- */

static void test_ctx_without_cancel(void **state)
{
	(void)state;
	static int key, val;
	tt_ctx *p, *pv, *w, *wc;
	TU_ASSERT_OK(tt_ctx_with_timeout(&p, tt_ctx_background(), TT_MINUTE));
	TU_ASSERT_OK(tt_ctx_with_value(&pv, p, &key, &val));
	TU_ASSERT_OK(tt_ctx_without_cancel(&w, pv));
	assert_ptr_equal(tt_ctx_value(w, &key), &val);
	TU_ASSERT_EQ(tt_ctx_deadline(w), TT_FOREVER);
	assert_null(tt_ctx_done(w));
	TU_ASSERT_ERR(tt_ctx_cancel(w), -EINVAL);
	TU_ASSERT_OK(tt_ctx_with_cancel(&wc, w));
	TU_ASSERT_EQ(tt_ctx_deadline(wc), TT_FOREVER);

	TU_ASSERT_OK(tt_ctx_cancel(p));
	TU_ASSERT_ERR(tt_ctx_err(pv), -ECANCELED);
	TU_ASSERT_OK(tt_ctx_err(w));
	TU_ASSERT_OK(tt_ctx_cause(w));
	TU_ASSERT_OK(tt_ctx_err(wc));
	/* Its children are cancelled by their own cancel. */
	TU_ASSERT_OK(tt_ctx_cancel(wc));
	TU_ASSERT_ERR(tt_ctx_err(wc), -ECANCELED);
	TU_ASSERT_OK(tt_ctx_err(w));
	/* It keeps its parent (and the values) alive. */
	TU_ASSERT_OK(tt_ctx_release(pv));
	TU_ASSERT_OK(tt_ctx_release(p));
	assert_ptr_equal(tt_ctx_value(w, &key), &val);
	TU_ASSERT_OK(tt_ctx_release(wc));
	TU_ASSERT_OK(tt_ctx_release(w));
	TU_ASSERT_ERR(tt_ctx_err(p), -EBADF);
	TU_ASSERT_ERR(tt_ctx_without_cancel(&w, NULL), -EINVAL);
	assert_null(w);
}

/* ---- context.AfterFunc ------------------------------------------------------- */

static void test_ctx_after_func_on_cancel(void **state)
{
	(void)state;
	tt_ctx *c;
	TU_ASSERT_OK(tt_ctx_with_cancel(&c, tt_ctx_background()));
	af_rec r = {.note = tu_chan(sizeof(int), 1)};
	tt_ctx_after *stop;
	TU_ASSERT_OK(tt_ctx_after_func(c, af_fn, &r, &stop));
	assert_non_null(stop);
	tt_sleep(5 * MS);
	TU_ASSERT_EQ(r.runs, 0);
	TU_ASSERT_OK(tt_ctx_cancel(c));
	/* Started by the cancel: stop is too late, even before fn ran. */
	TU_ASSERT_EQ(r.runs, 0);
	assert_false(tt_ctx_after_stop(stop));
	int n;
	TU_ASSERT_OK(tt_recv(r.note, &n, NULL));
	TU_ASSERT_EQ(n, 1);
	TU_ASSERT_NE(r.goid, tt_goid());
	assert_false(tt_ctx_after_stop(stop));
	TU_ASSERT_OK(tt_ctx_release(c));
	TU_ASSERT_OK(tt_chan_release(r.note));
}

static void test_ctx_after_func_stop(void **state)
{
	(void)state;
	tt_ctx *c;
	TU_ASSERT_OK(tt_ctx_with_cancel(&c, tt_ctx_background()));
	af_rec a = {0}, b = {.note = tu_chan(sizeof(int), 1)};
	tt_ctx_after *sa, *sb;
	TU_ASSERT_OK(tt_ctx_after_func(c, af_fn, &a, &sa));
	TU_ASSERT_OK(tt_ctx_after_func(c, af_fn, &b, &sb));
	/* Independent: stopping one leaves the other. */
	assert_true(tt_ctx_after_stop(sa));
	assert_false(tt_ctx_after_stop(sa));
	TU_ASSERT_OK(tt_ctx_cancel(c));
	int n;
	TU_ASSERT_OK(tt_recv(b.note, &n, NULL));
	tt_sleep(5 * MS);
	TU_ASSERT_EQ(a.runs, 0);
	TU_ASSERT_EQ(b.runs, 1);
	assert_false(tt_ctx_after_stop(sb));
	TU_ASSERT_CONTAINS(tt_last_error(), "not a live stop handle");
	TU_ASSERT_ERR(tt_ctx_after_stop(NULL), false);
	/* Neither record holds the context any more: one release frees
	 * it. */
	TU_ASSERT_OK(tt_ctx_release(c));
	TU_ASSERT_ERR(tt_ctx_err(c), -EBADF);
	TU_ASSERT_OK(tt_chan_release(b.note));
}

static void test_ctx_after_func_already_done(void **state)
{
	(void)state;
	tt_ctx *c;
	TU_ASSERT_OK(tt_ctx_with_cancel(&c, tt_ctx_background()));
	TU_ASSERT_OK(tt_ctx_cancel(c));
	af_rec r = {.note = tu_chan(sizeof(int), 1)};
	tt_ctx_after *stop;
	TU_ASSERT_OK(tt_ctx_after_func(c, af_fn, &r, &stop));
	assert_false(tt_ctx_after_stop(stop));
	int n;
	TU_ASSERT_OK(tt_recv(r.note, &n, NULL));
	TU_ASSERT_NE(r.goid, tt_goid());
	TU_ASSERT_OK(tt_ctx_release(c));

	/* Never done: never runs; stop stops it once. */
	af_rec never = {0};
	TU_ASSERT_OK(tt_ctx_after_func(tt_ctx_background(), af_fn, &never,
				       &stop));
	assert_true(tt_ctx_after_stop(stop));
	assert_false(tt_ctx_after_stop(stop));
	TU_ASSERT_EQ(never.runs, 0);
	TU_ASSERT_ERR(tt_ctx_after_func(tt_ctx_background(), NULL, NULL,
					&stop),
		      -EINVAL);
	assert_null(stop);
	TU_ASSERT_ERR(tt_ctx_after_func(NULL, af_fn, &never, NULL), -EINVAL);
	TU_ASSERT_OK(tt_chan_release(r.note));
}

/* Through a value child, by a deadline (a timer callback), with every
 * reference of the program released: the pending call keeps the
 * context, so the deadline still fires, as Go's would. */
static void test_ctx_after_func_deadline_released(void **state)
{
	(void)state;
	static int key;
	tt_ctx *t, *v;
	TU_ASSERT_OK(tt_ctx_with_timeout(&t, tt_ctx_background(), 10 * MS));
	TU_ASSERT_OK(tt_ctx_with_value(&v, t, &key, NULL));
	af_rec r = {.note = tu_chan(sizeof(int), 1)};
	TU_ASSERT_OK(tt_ctx_after_func(v, af_fn, &r, NULL));
	TU_ASSERT_OK(tt_ctx_release(v));
	TU_ASSERT_OK(tt_ctx_release(t));
	TU_ASSERT_OK(tt_ctx_err(t)); /* still alive, not yet done */
	int n;
	TU_ASSERT_OK(tt_recv(r.note, &n, NULL));
	TU_ASSERT_EQ(n, 1);
	/* The record let go of the context when fn started. */
	TU_WAIT_FOR(tt_ctx_err(t) == -EBADF, TU_SLACK_NS);
	TU_ASSERT_OK(tt_chan_release(r.note));
}

/* ---- TryLock/TryRLock, Locker, Cond over RLocker ----------------------------- */

typedef struct writer {
	tt_rwmutex *m;
	tt_chan *locked, *release, *done;
} writer;

static void hold_write_lock(void *p)
{
	writer *w = p;
	TU_ASSERT_OK(tt_rwmutex_lock(w->m));
	TU_ASSERT_OK(tt_chan_send(w->locked, NULL, 0));
	TU_ASSERT_OK(tt_chan_recv(w->release, NULL, 0, NULL));
	TU_ASSERT_OK(tt_rwmutex_unlock(w->m));
	tu_done(w->done);
}

/* Go printed "rlocked: TryRLock true TryLock false", "writer pending:
 * TryRLock false TryLock false", "writer holds: ... false false",
 * "free: TryLock true then TryRLock false". */
static void test_rwmutex_trylock(void **state)
{
	(void)state;
	tt_rwmutex *m;
	TU_ASSERT_OK(tt_rwmutex_make(&m));
	TU_ASSERT_OK(tt_rwmutex_rlock(m));
	TU_ASSERT_OK(tt_rwmutex_tryrlock(m));
	TU_ASSERT_ERR(tt_rwmutex_trylock(m), -EAGAIN);
	TU_ASSERT_OK(tt_rwmutex_runlock(m));
	writer w = {.m = m, .locked = tu_chan(0, 0), .release = tu_chan(0, 0),
		    .done = tu_chan(0, 1)};
	tu_go(hold_write_lock, &w); /* parks in Lock behind our reader */
	/* With two Ps it may start on another thread, later: until its
	 * Lock is pending a TryRLock still succeeds (and is undone). */
	int r;
	TU_WAIT_FOR((r = tt_rwmutex_tryrlock(m)) == -EAGAIN ||
			    (r == 0 && tt_rwmutex_runlock(m) != 0),
		    10 * TT_SECOND);
	TU_ASSERT_ERR(r, -EAGAIN);
	TU_ASSERT_ERR(tt_rwmutex_trylock(m), -EAGAIN);
	TU_ASSERT_OK(tt_rwmutex_runlock(m)); /* the writer gets it */
	TU_ASSERT_OK(tt_chan_recv(w.locked, NULL, 0, NULL));
	TU_ASSERT_ERR(tt_rwmutex_tryrlock(m), -EAGAIN);
	TU_ASSERT_ERR(tt_rwmutex_trylock(m), -EAGAIN);
	TU_ASSERT_OK(tt_chan_send(w.release, NULL, 0));
	TU_WAIT_DONE(w.done, 1, TU_SLACK_NS);
	TU_ASSERT_OK(tt_chan_release(w.locked));
	TU_ASSERT_OK(tt_chan_release(w.release));
	TU_ASSERT_OK(tt_chan_release(w.done));
	TU_ASSERT_OK(tt_rwmutex_trylock(m));
	TU_ASSERT_ERR(tt_rwmutex_tryrlock(m), -EAGAIN);
	TU_ASSERT_OK(tt_rwmutex_unlock(m));
	TU_ASSERT_ERR(tt_rwmutex_trylock(NULL), -EINVAL);
	TU_ASSERT_OK(tt_rwmutex_release(m));
	TU_ASSERT_ERR(tt_rwmutex_tryrlock(m), -EBADF);

	tt_mutex *mu;
	TU_ASSERT_OK(tt_mutex_make(&mu));
	TU_ASSERT_OK(tt_mutex_trylock(mu));
	TU_ASSERT_ERR(tt_mutex_trylock(mu), -EAGAIN);
	TU_ASSERT_OK(tt_mutex_unlock(mu));
	TU_ASSERT_OK(tt_mutex_release(mu));
}

typedef struct rcond {
	tt_rwmutex *m;
	tt_cond *c;
	bool ready;
	/* The readers share the lock, so the counts are atomics (the test
	 * polls them too); ready is written under the write lock. */
	int waiting, woke;
	int max_readers; /* readers holding the lock at once, after waking */
	int holding;
	int n; /* readers */
	tt_chan *done;
} rcond;

static void rcond_reader(void *p)
{
	rcond *r = p;
	TU_ASSERT_OK(tt_rwmutex_rlock(r->m));
	__atomic_fetch_add(&r->waiting, 1, __ATOMIC_RELAXED);
	while (!r->ready)
		TU_ASSERT_OK(tt_cond_wait(r->c));
	/* Back with a read lock: a writer cannot get in, a reader can. */
	TU_ASSERT_ERR(tt_rwmutex_trylock(r->m), -EAGAIN);
	__atomic_fetch_add(&r->woke, 1, __ATOMIC_RELAXED);
	int h = __atomic_add_fetch(&r->holding, 1, __ATOMIC_RELAXED);
	int m = __atomic_load_n(&r->max_readers, __ATOMIC_RELAXED);
	while (h > m && !__atomic_compare_exchange_n(&r->max_readers, &m, h,
						     false, __ATOMIC_RELAXED,
						     __ATOMIC_RELAXED))
		;
	/* Hold on until every reader holds it too: the read locks are
	 * shared, whichever P each reader runs on. */
	TU_WAIT_FOR(__atomic_load_n(&r->max_readers, __ATOMIC_RELAXED) == r->n,
		    TU_SLACK_NS);
	__atomic_fetch_sub(&r->holding, 1, __ATOMIC_RELAXED);
	TU_ASSERT_OK(tt_rwmutex_runlock(r->m));
	tu_done(r->done);
}

/* Go printed "readers waiting: TryLock true", then "done": readers
 * waiting in Cond.Wait over RLocker have given up their read locks. */
static void test_cond_rlocker(void **state)
{
	(void)state;
	enum { N = 3 };
	rcond r = {.done = tu_chan(0, N), .n = N};
	TU_ASSERT_OK(tt_rwmutex_make(&r.m));
	TU_ASSERT_OK(tt_cond_make_locker(&r.c, tt_rwmutex_rlocker(r.m)));
	/* The cond holds its own reference on the RWMutex. */
	TU_ASSERT_OK(tt_rwmutex_retain(r.m));
	TU_ASSERT_OK(tt_rwmutex_release(r.m));
	for (int i = 0; i < N; i++)
		tu_go(rcond_reader, &r);
	TU_WAIT_FOR(__atomic_load_n(&r.waiting, __ATOMIC_RELAXED) == N,
		    TU_SLACK_NS);
	/* A reader on another P counts itself before its Wait gives up
	 * the read lock: wait until all have. */
	TU_WAIT_FOR(tt_rwmutex_trylock(r.m) == 0, TU_SLACK_NS);
	r.ready = true;
	TU_ASSERT_OK(tt_rwmutex_unlock(r.m));
	/* Signal wakes one; Broadcast the rest. */
	TU_ASSERT_OK(tt_cond_signal(r.c));
	TU_WAIT_FOR(__atomic_load_n(&r.woke, __ATOMIC_RELAXED) == 1,
		    TU_SLACK_NS);
	TU_ASSERT_OK(tt_cond_broadcast(r.c));
	TU_WAIT_DONE(r.done, N, TU_SLACK_NS);
	TU_ASSERT_EQ(__atomic_load_n(&r.woke, __ATOMIC_RELAXED), N);
	TU_ASSERT_EQ(__atomic_load_n(&r.max_readers, __ATOMIC_RELAXED), N);
	TU_ASSERT_OK(tt_rwmutex_release(r.m));
	/* Still usable through the cond's reference. */
	TU_ASSERT_OK(tt_rwmutex_rlock(r.m));
	TU_ASSERT_OK(tt_rwmutex_runlock(r.m));
	TU_ASSERT_OK(tt_cond_release(r.c));
	TU_ASSERT_ERR(tt_rwmutex_rlock(r.m), -EBADF);
	TU_ASSERT_OK(tt_chan_release(r.done));
}

/* A Locker of the program's own, and the write side. */
typedef struct my_lock {
	int locks, unlocks;
	bool held;
} my_lock;

static int my_lock_fn(void *p)
{
	my_lock *l = p;
	l->locks++;
	l->held = true;
	return 0;
}

static int my_unlock_fn(void *p)
{
	my_lock *l = p;
	if (!l->held)
		return -EPERM;
	l->unlocks++;
	l->held = false;
	return 0;
}

static void test_cond_any_locker(void **state)
{
	(void)state;
	my_lock ml = {0};
	tt_cond *c;
	tt_locker l = {my_lock_fn, my_unlock_fn, &ml};
	TU_ASSERT_OK(tt_cond_make_locker(&c, l));
	TU_ASSERT_OK(l.lock(l.obj));
	int64_t t0 = tt_now();
	TU_ASSERT_ERR(tt_cond_wait_until(c, tt_deadline_in(5 * MS)),
		      -ETIMEDOUT);
	TU_ASSERT_GE(tt_now() - t0, 5 * MS);
	TU_ASSERT_EQ(ml.locks, 2);
	TU_ASSERT_EQ(ml.unlocks, 1);
	assert_true(ml.held);
	TU_ASSERT_OK(l.unlock(l.obj));
	/* Its unlock failing means nothing waits. */
	TU_ASSERT_ERR(tt_cond_wait(c), -EPERM);
	TU_ASSERT_OK(tt_cond_release(c));

	/* The write side of an RWMutex is a Locker too. */
	tt_rwmutex *m;
	TU_ASSERT_OK(tt_rwmutex_make(&m));
	TU_ASSERT_OK(tt_cond_make_locker(&c, tt_rwmutex_locker(m)));
	TU_ASSERT_OK(tt_rwmutex_lock(m));
	TU_ASSERT_ERR(tt_cond_wait_until(c, tt_deadline_in(MS)), -ETIMEDOUT);
	TU_ASSERT_ERR(tt_rwmutex_tryrlock(m), -EAGAIN); /* locked again */
	TU_ASSERT_OK(tt_rwmutex_unlock(m));
	TU_ASSERT_OK(tt_cond_release(c));

	/* Bad lockers. */
	tt_cond *bad = (tt_cond *)1;
	TU_ASSERT_ERR(tt_cond_make_locker(&bad, (tt_locker){NULL, my_unlock_fn,
							   &ml}),
		      -EINVAL);
	assert_null(bad);
	tt_locker mix = tt_rwmutex_rlocker(m);
	mix.unlock = tt_rwmutex_locker(m).unlock;
	TU_ASSERT_ERR(tt_cond_make_locker(&bad, mix), -EINVAL);
	TU_ASSERT_CONTAINS(tt_last_error(), "not a pair");
	TU_ASSERT_ERR(tt_cond_make_locker(&bad, tt_rwmutex_rlocker(NULL)),
		      -EINVAL);
	TU_ASSERT_OK(tt_rwmutex_release(m));
	TU_ASSERT_ERR(tt_cond_make_locker(&bad, tt_rwmutex_rlocker(m)),
		      -EBADF);
	TU_ASSERT_ERR(tt_cond_make_locker(NULL, tt_rwmutex_rlocker(m)),
		      -EINVAL);
}

/* ---- what the leak tools see of the callback goroutines ---------------------- */

static void af_block(void *p)
{
	tt_chan *c = p;
	TU_ASSERT_OK(tt_chan_recv(c, NULL, 0, NULL));
}

/* A callback goroutine is reported as created by the goroutine that
 * called tt_after_func / tt_ctx_after_func, at that call, as Go reports
 * "created by time.goFunc" with its caller. */
static void test_after_funcs_in_leak_report(void **state)
{
	(void)state;
	tt_chan *block = tu_chan(0, 0);
	TU_ASSERT_OK(tt_after_func(NULL, 0, af_block, block));
	tt_ctx *c;
	TU_ASSERT_OK(tt_ctx_with_cancel(&c, tt_ctx_background()));
	TU_ASSERT_OK(tt_ctx_after_func(c, af_block, block, NULL));
	TU_ASSERT_OK(tt_ctx_cancel(c));
	tt_sleep(2 * MS);
	tt_leak_opts *o;
	TU_ASSERT_OK(tt_leak_opts_make(&o));
	TU_ASSERT_OK(tt_leak_retry(o, 0, TT_MICROSECOND));
	tt_leak_list l;
	TU_ASSERT_EQ(tt_leak_find(o, &l), 2);
	for (size_t i = 0; i < l.n; i++) {
		TU_ASSERT_EQ(l.g[i].parent_id, tt_goid());
		TU_ASSERT_CONTAINS(l.g[i].created_by,
				   "test_after_funcs_in_leak_report");
		TU_ASSERT_CONTAINS(l.g[i].stack, "af_block");
		TU_ASSERT_CONTAINS(l.g[i].state, "chan receive");
	}
	tt_leak_list_free(&l);
	tt_leak_opts_free(o);
	TU_ASSERT_OK(tt_chan_close(block));
	tt_sleep(MS);
	TU_ASSERT_OK(tt_ctx_release(c));
	TU_ASSERT_OK(tt_chan_release(block));
}

/* ---- context-aware descriptor waits on shared stacks ---------------------------
 *
 * The NotifyContext goroutine waits in tt_read_ctx; with
 * TETHER_SHARED_STACK=1 it runs on the shared stack, where the wait's
 * record on the done channel must not live (another goroutine's frames
 * overwrite it while it is parked). */

typedef struct shared_reader {
	tt_ctx *ctx;
	int fd;
	ssize_t got;
	tt_chan *done;
} shared_reader;

static void read_until_cancelled(void *p)
{
	shared_reader *r = p;
	char b[8];
	r->got = tt_read_ctx(r->ctx, r->fd, b, sizeof b);
	tu_done(r->done);
}

static void test_read_ctx_shared_stacks(void **state)
{
	(void)state;
	enum { N = 3 };
	tt_ctx *c;
	TU_ASSERT_OK(tt_ctx_with_cancel(&c, tt_ctx_background()));
	int fds[N][2];
	shared_reader r[N];
	tt_chan *done = tu_chan(0, N);
	tt_go_attr attr = {.shared_stack = true};
	for (int i = 0; i < N; i++) {
		TU_ASSERT_EQ(pipe(fds[i]), 0);
		TU_ASSERT_OK(tt_fd_nonblock(fds[i][0]));
		r[i] = (shared_reader){.ctx = c, .fd = fds[i][0], .got = 1,
				       .done = done};
		tu_go_with(&attr, read_until_cancelled, &r[i]);
	}
	tt_sleep(MS);
	TU_ASSERT_OK(tt_ctx_cancel(c));
	TU_WAIT_DONE(done, N, TU_SLACK_NS);
	for (int i = 0; i < N; i++) {
		TU_ASSERT_ERR(r[i].got, -ECANCELED);
		TU_ASSERT_OK(tt_close(fds[i][0]));
		TU_ASSERT_EQ(close(fds[i][1]), 0);
	}
	TU_ASSERT_OK(tt_ctx_release(c));
	TU_ASSERT_OK(tt_chan_release(done));
}

/* ---- signal.NotifyContext ----------------------------------------------------- */

static volatile sig_atomic_t handled[_NSIG];

static void count_signal(int sig)
{
	handled[sig]++;
}

/* Install count_signal for sig; the old action goes to *old. */
static void catch_with_handler(int sig, struct sigaction *old)
{
	struct sigaction sa;
	memset(&sa, 0, sizeof sa);
	sa.sa_handler = count_signal;
	sigemptyset(&sa.sa_mask);
	TU_ASSERT_EQ(sigaction(sig, &sa, old), 0);
	handled[sig] = 0;
}

static bool blocked_now(int sig)
{
	sigset_t cur;
	TU_ASSERT_EQ(pthread_sigmask(SIG_SETMASK, NULL, &cur), 0);
	return sigismember(&cur, sig) == 1;
}

typedef struct raiser {
	int sig;
	tt_chan *done;
} raiser;

static void raise_signal(void *p)
{
	raiser *r = p;
	tt_sleep(2 * MS);
	TU_ASSERT_EQ(kill(getpid(), r->sig), 0);
	tu_done(r->done);
}

/* Wait for c's done channel, at most a second. */
static void wait_done(tt_ctx *c)
{
	tt_case k = TT_CASE_RECV_DISCARD(tt_ctx_done(c), NULL);
	TU_ASSERT_EQ(tt_select(&k, 1, tt_deadline_in(TT_SECOND)), 0);
}

static void test_notify_signal_cancels(void **state)
{
	(void)state;
	struct sigaction old;
	catch_with_handler(SIGUSR1, &old);
	assert_false(blocked_now(SIGUSR1));
	int sigs[] = {SIGUSR1};
	tt_ctx *c;
	TU_ASSERT_OK(tt_ctx_notify_signals(&c, tt_ctx_background(), sigs, 1));
	assert_true(blocked_now(SIGUSR1));
	assert_string_equal(ctx_name(c), "signal.NotifyContext("
					 "context.Background, [user defined "
					 "signal 1])");
	TU_ASSERT_OK(tt_ctx_err(c));
	raiser r = {.sig = SIGUSR1, .done = tu_chan(0, 1)};
	tu_go(raise_signal, &r);
	wait_done(c);
	TU_ASSERT_ERR(tt_ctx_err(c), -ECANCELED);
	TU_ASSERT_ERR(tt_ctx_cause(c), -ECANCELED);
	TU_WAIT_DONE(r.done, 1, TU_SLACK_NS);
	TU_ASSERT_EQ(handled[SIGUSR1], 0);
	/* Still caught until stop, as in Go. */
	TU_ASSERT_EQ(kill(getpid(), SIGUSR1), 0);
	tt_sleep(2 * MS);
	TU_ASSERT_EQ(handled[SIGUSR1], 0);
	assert_true(blocked_now(SIGUSR1));
	/* Stop: the one caught meanwhile is consumed, not delivered late;
	 * then the old handling is back. */
	TU_ASSERT_OK(tt_ctx_cancel(c));
	assert_false(blocked_now(SIGUSR1));
	TU_ASSERT_EQ(handled[SIGUSR1], 0);
	TU_ASSERT_EQ(kill(getpid(), SIGUSR1), 0);
	TU_ASSERT_EQ(handled[SIGUSR1], 1);
	TU_ASSERT_OK(tt_ctx_release(c));
	TU_ASSERT_OK(tt_chan_release(r.done));
	TU_ASSERT_EQ(sigaction(SIGUSR1, &old, NULL), 0);
}

/* Cancelled by its parent: its goroutine ends (the teardown counts
 * goroutines), the signal stays caught until stop. Releasing is a stop
 * too. */
static void test_notify_parent_and_release(void **state)
{
	(void)state;
	struct sigaction old;
	catch_with_handler(SIGUSR1, &old);
	tt_ctx *p, *c;
	TU_ASSERT_OK(tt_ctx_with_cancel(&p, tt_ctx_background()));
	int sigs[] = {SIGUSR1, SIGUSR1};
	TU_ASSERT_OK(tt_ctx_notify_signals(&c, p, sigs, 2));
	int64_t before = tt_num_goroutine();
	TU_ASSERT_OK(tt_ctx_cancel(p));
	TU_ASSERT_ERR(tt_ctx_err(c), -ECANCELED);
	TU_WAIT_FOR(tt_num_goroutine() == before - 1, TU_SLACK_NS);
	TU_ASSERT_EQ(kill(getpid(), SIGUSR1), 0);
	tt_sleep(MS);
	TU_ASSERT_EQ(handled[SIGUSR1], 0);
	TU_ASSERT_OK(tt_ctx_release(c)); /* the last reference: a stop */
	assert_false(blocked_now(SIGUSR1));
	TU_ASSERT_EQ(handled[SIGUSR1], 0);
	TU_ASSERT_OK(tt_ctx_release(p));

	/* A parent already done: born cancelled, still caught until
	 * stop. */
	TU_ASSERT_OK(tt_ctx_with_cancel(&p, tt_ctx_background()));
	TU_ASSERT_OK(tt_ctx_cancel(p));
	TU_ASSERT_OK(tt_ctx_notify_signals(&c, p, sigs, 1));
	TU_ASSERT_ERR(tt_ctx_err(c), -ECANCELED);
	assert_true(blocked_now(SIGUSR1));
	TU_ASSERT_OK(tt_ctx_cancel(c));
	assert_false(blocked_now(SIGUSR1));
	TU_ASSERT_OK(tt_ctx_release(c));
	TU_ASSERT_OK(tt_ctx_release(p));

	/* Released without stop while waiting: its goroutine holds it, so
	 * it keeps watching; the signal still cancels it and then the
	 * goroutine's release restores. */
	TU_ASSERT_OK(tt_ctx_notify_signals(&c, tt_ctx_background(), sigs, 1));
	tt_chan *done = tt_ctx_done(c);
	TU_ASSERT_OK(tt_chan_retain(done));
	TU_ASSERT_OK(tt_ctx_release(c));
	assert_true(blocked_now(SIGUSR1));
	TU_ASSERT_EQ(kill(getpid(), SIGUSR1), 0);
	TU_ASSERT_OK(tt_chan_recv(done, NULL, 0, NULL));
	TU_WAIT_FOR(!blocked_now(SIGUSR1), TU_SLACK_NS);
	TU_ASSERT_EQ(handled[SIGUSR1], 0);
	TU_ASSERT_OK(tt_chan_release(done));
	TU_ASSERT_EQ(sigaction(SIGUSR1, &old, NULL), 0);
}

/* Contexts of one thread share signals: one arriving cancels all that
 * listen for it; the signal stays blocked until the last one stops; a
 * signal blocked before stays blocked. */
static void test_notify_shared_signals(void **state)
{
	(void)state;
	struct sigaction old1, old2;
	catch_with_handler(SIGUSR1, &old1);
	catch_with_handler(SIGUSR2, &old2);
	sigset_t pre;
	sigemptyset(&pre);
	sigaddset(&pre, SIGUSR1);
	TU_ASSERT_EQ(pthread_sigmask(SIG_BLOCK, &pre, NULL), 0);
	int s2[] = {SIGUSR2}, s12[] = {SIGUSR1, SIGUSR2}, s1[] = {SIGUSR1};
	tt_ctx *a, *b, *only1;
	TU_ASSERT_OK(tt_ctx_notify_signals(&a, tt_ctx_background(), s2, 1));
	TU_ASSERT_OK(tt_ctx_notify_signals(&b, tt_ctx_background(), s12, 2));
	TU_ASSERT_OK(tt_ctx_notify_signals(&only1, tt_ctx_background(), s1,
					   1));
	assert_string_equal(ctx_name(b), "signal.NotifyContext("
					 "context.Background, [user defined "
					 "signal 1 user defined signal 2])");
	TU_ASSERT_EQ(kill(getpid(), SIGUSR2), 0);
	wait_done(a);
	wait_done(b);
	TU_ASSERT_OK(tt_ctx_err(only1));
	TU_ASSERT_OK(tt_ctx_cancel(a));
	assert_true(blocked_now(SIGUSR2)); /* b still listens */
	TU_ASSERT_OK(tt_ctx_cancel(b));
	assert_false(blocked_now(SIGUSR2));
	TU_ASSERT_EQ(handled[SIGUSR2], 0);
	TU_ASSERT_OK(tt_ctx_cancel(only1));
	assert_true(blocked_now(SIGUSR1)); /* blocked before: stays */
	TU_ASSERT_EQ(pthread_sigmask(SIG_UNBLOCK, &pre, NULL), 0);
	TU_ASSERT_EQ(handled[SIGUSR1], 0);
	TU_ASSERT_OK(tt_ctx_release(a));
	TU_ASSERT_OK(tt_ctx_release(b));
	TU_ASSERT_OK(tt_ctx_release(only1));
	TU_ASSERT_EQ(sigaction(SIGUSR1, &old1, NULL), 0);
	TU_ASSERT_EQ(sigaction(SIGUSR2, &old2, NULL), 0);
}

static void test_notify_bad_input(void **state)
{
	(void)state;
	tt_ctx *c = (tt_ctx *)1;
	int ok[] = {SIGUSR1};
	TU_ASSERT_ERR(tt_ctx_notify_signals(NULL, tt_ctx_background(), ok, 1),
		      -EINVAL);
	TU_ASSERT_ERR(tt_ctx_notify_signals(&c, tt_ctx_background(), ok, 0),
		      -EINVAL);
	assert_null(c);
	TU_ASSERT_CONTAINS(tt_last_error(), "no signals given");
	TU_ASSERT_ERR(tt_ctx_notify_signals(&c, tt_ctx_background(), NULL, 1),
		      -EINVAL);
	int bad[][2] = {{SIGUSR1, SIGKILL}, {SIGSEGV, SIGUSR1}, {0, SIGUSR1},
			{SIGUSR1, 9999}, {SIGUSR1, SIGSTOP}};
	for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
		TU_ASSERT_ERR(tt_ctx_notify_signals(&c, tt_ctx_background(),
						    bad[i], 2),
			      -EINVAL);
		TU_ASSERT_CONTAINS(tt_last_error(), "cannot be waited for");
		assert_null(c);
	}
	TU_ASSERT_ERR(tt_ctx_notify_signals(&c, NULL, ok, 1), -EINVAL);
	assert_null(c);
	assert_false(blocked_now(SIGUSR1));
}

/* In a fresh process, SIGINT at its default action (which ends the
 * process): the context catches it, the process lives on; after stop a
 * SIGINT ends it again. */
static void child_notify_sigint(void)
{
	signal(SIGINT, SIG_DFL);
	int sigs[] = {SIGINT, SIGTERM};
	tt_ctx *c;
	TU_ASSERT_OK(tt_ctx_notify_signals(&c, tt_ctx_background(), sigs, 2));
	raiser r = {.sig = SIGINT, .done = tu_chan(0, 1)};
	tu_go(raise_signal, &r);
	wait_done(c);
	fprintf(stderr, "cancelled-errno=%d\n", -tt_ctx_err(c));
	TU_WAIT_DONE(r.done, 1, TU_SLACK_NS);
	kill(getpid(), SIGINT); /* still caught */
	tt_sleep(5 * MS);
	fprintf(stderr, "alive after two SIGINTs\n");
	TU_ASSERT_OK(tt_ctx_cancel(c));
	fprintf(stderr, "stopped\n");
	kill(getpid(), SIGINT);
	fprintf(stderr, "not reached\n");
}

static void test_notify_sigint_process(void **state)
{
	(void)state;
	TU_REQUIRE_THREADS();
	tu_child c;
	TU_ASSERT_OK(tu_spawn_self("notify_sigint", 10 * TT_SECOND, &c));
	TU_ASSERT_CHILD_SIGNAL(&c, SIGINT);
	TU_ASSERT_EQ(tu_child_marker(&c, "cancelled-errno"), ECANCELED);
	TU_ASSERT_CONTAINS(c.err, "alive after two SIGINTs\nstopped\n");
	TU_ASSERT_NOT_CONTAINS(c.err, "not reached");
	tu_child_free(&c);
}

static const tu_child_case child_cases[] = {
	{"notify_sigint", child_notify_sigint},
};

int main(int argc, char **argv)
{
	tu_child_dispatch(argc, argv, child_cases,
			   sizeof child_cases / sizeof *child_cases);
	const struct CMUnitTest tests[] = {
		TU_TEST(test_after_func_runs_in_own_goroutine),
		TU_TEST(test_after_func_stop_prevents_call),
		TU_TEST(test_after_func_reset),
		TU_TEST(test_after_func_released_still_runs),
		TU_TEST(test_after_func_no_channel),
		TU_TEST(test_after_func_stop_inside),
		TU_TEST(test_after_func_fires_while_goroutine_ends),
		TU_TEST(test_after_func_many),
		TU_TEST(test_after_func_rearms_itself),
		TU_TEST(test_tick),
		TU_TEST(test_ctx_todo),
		TU_TEST(test_ctx_string),
		TU_TEST(test_ctx_cause_basic),
		TU_TEST(test_ctx_cause_tree),
		TU_TEST(test_ctx_cause_deadline),
		TU_TEST(test_ctx_without_cancel),
		TU_TEST(test_ctx_after_func_on_cancel),
		TU_TEST(test_ctx_after_func_stop),
		TU_TEST(test_ctx_after_func_already_done),
		TU_TEST(test_ctx_after_func_deadline_released),
		TU_TEST(test_rwmutex_trylock),
		TU_TEST(test_cond_rlocker),
		TU_TEST(test_cond_any_locker),
		TU_TEST(test_after_funcs_in_leak_report),
		TU_TEST(test_read_ctx_shared_stacks),
		TU_TEST(test_notify_signal_cancels),
		TU_TEST(test_notify_parent_and_release),
		TU_TEST(test_notify_shared_signals),
		TU_TEST(test_notify_bad_input),
		TU_TEST(test_notify_sigint_process),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
