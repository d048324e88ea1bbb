/* tether tests — the clock, deadlines, sleep, timers and tickers
 * (include/tether/time.h, common.h). */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "testutil.h"

#if TU_ASAN || TU_TSAN
#include <sanitizer/allocator_interface.h>
#endif

#define MS TT_MILLISECOND

/* What these tests check is tether's scheduling order and timing, so the
 * flags and counters goroutines share with nothing else ordering them
 * (a switch of goroutines does not, as in Go's memory model) are
 * atomics: the check stays, the race goes. Relaxed: only the values
 * matter; what must be seen with them travels on the done channels. */
#define LD(x) __atomic_load_n(&(x), __ATOMIC_RELAXED)
#define ST(x, v) __atomic_store_n(&(x), (v), __ATOMIC_RELAXED)
#define INC(x) __atomic_fetch_add(&(x), 1, __ATOMIC_RELAXED)

/* ---- the clock and deadlines --------------------------------------------- */

static void test_now_monotonic(void **state)
{
	(void)state;
	int64_t prev = tt_now();
	assert_true(prev > 0);
	for (int i = 0; i < 100000; i++) {
		int64_t t = tt_now();
		if (t < prev)
			fail_msg("tt_now went back: %lld after %lld",
				 (long long)t, (long long)prev);
		prev = t;
	}
	/* It advances with real time (measured by the OS, not by us). */
	int64_t t0 = tt_now();
	struct timespec ts = {0, 20 * 1000 * 1000};
	nanosleep(&ts, NULL);
	TU_ASSERT_RANGE(tt_now() - t0, 20 * MS, 20 * MS + TU_SLACK_NS);
}

static void test_deadline_in(void **state)
{
	(void)state;
	assert_int_equal(tt_deadline_in(-1), TT_FOREVER);
	assert_int_equal(tt_deadline_in(-5 * TT_SECOND), TT_FOREVER);
	assert_int_equal(tt_deadline_in(INT64_MIN), TT_FOREVER);

	/* Saturates instead of overflowing. */
	assert_int_equal(tt_deadline_in(INT64_MAX), INT64_MAX);
	assert_int_equal(tt_deadline_in(INT64_MAX - 1), INT64_MAX);
	int64_t far = tt_deadline_in(INT64_MAX - tt_now() / 2);
	assert_int_equal(far, INT64_MAX);

	int64_t before = tt_now();
	int64_t d0 = tt_deadline_in(0);
	int64_t d1 = tt_deadline_in(TT_SECOND);
	int64_t after = tt_now();
	TU_ASSERT_RANGE(d0, before, after);
	TU_ASSERT_RANGE(d1, before + TT_SECOND, after + TT_SECOND);
	/* Never one of the special values. */
	assert_true(d0 > 0);

	/* A saturated deadline is a very distant one, not a past one. */
	tt_chan *c = tu_chan(sizeof(int), 1);
	int v = 5;
	TU_ASSERT_OK(tt_chan_send_until(c, &v, sizeof v,
					tt_deadline_in(INT64_MAX)));
	v = 0;
	TU_ASSERT_OK(tt_chan_recv_until(c, &v, sizeof v, NULL,
					tt_deadline_in(INT64_MAX)));
	assert_int_equal(v, 5);
	TU_ASSERT_OK(tt_sleep_until(tt_deadline_in(0)));
	TU_ASSERT_OK(tt_chan_release(c));
}

/* ---- sleep ------------------------------------------------------------------- */

static void test_sleep_durations(void **state)
{
	(void)state;
	const int64_t ds[] = {1 * MS, 10 * MS, 25 * MS, 60 * MS};
	for (size_t i = 0; i < sizeof ds / sizeof ds[0]; i++) {
		int64_t t0 = tt_now();
		TU_ASSERT_OK(tt_sleep(ds[i]));
		TU_ASSERT_RANGE(tt_now() - t0, ds[i], ds[i] + TU_SLACK_NS);
	}
	int64_t t0 = tt_now();
	int64_t dl = t0 + 30 * MS;
	TU_ASSERT_OK(tt_sleep_until(dl));
	TU_ASSERT_RANGE(tt_now(), dl, dl + TU_SLACK_NS);

	/* Zero, negative and past: return at once. */
	t0 = tt_now();
	TU_ASSERT_OK(tt_sleep(0));
	TU_ASSERT_OK(tt_sleep(-TT_SECOND));
	TU_ASSERT_OK(tt_sleep_until(1));
	TU_ASSERT_OK(tt_sleep_until(tt_now()));
	TU_ASSERT_LT(tt_now() - t0, TU_SLACK_NS);
}

typedef struct spin_arg {
	int turns;
	int stop;
	int exited;
} spin_arg;

static void spinner(void *p)
{
	spin_arg *a = p;
	while (!LD(a->stop)) {
		INC(a->turns);
		tt_yield();
	}
	ST(a->exited, 1);
}

/* tt_sleep(0) yields: another runnable goroutine gets a turn. A real
 * sleep lets it run meanwhile. One scheduler's promise: on another P the
 * spinner may not have started when the yield is made. */
static void test_sleep_yields(void **state)
{
	(void)state;
	tu_one_p();
	spin_arg a = {0, 0, 0};
	tu_go(spinner, &a);
	int t = LD(a.turns);
	TU_ASSERT_OK(tt_sleep(0));
	TU_ASSERT_GT(LD(a.turns), t);
	t = LD(a.turns);
	TU_ASSERT_OK(tt_sleep(-1));
	TU_ASSERT_GT(LD(a.turns), t);
	t = LD(a.turns);
	/* A sleeping goroutine lets the others run meanwhile (how many
	 * turns fit in 5 ms depends on the machine: under an emulator on
	 * a busy host, one yield can take that long). */
	TU_ASSERT_OK(tt_sleep(5 * MS));
	TU_ASSERT_GT(LD(a.turns), t);
	ST(a.stop, 1);
	TU_WAIT_FOR(LD(a.exited) == 1, 5 * TT_SECOND);
}

typedef struct order_state {
	int log[64]; /* each sleeper its own entry, read after its done */
	int n;       /* atomic: the sleepers take entries in wake order */
	tt_chan *done;
} order_state;

typedef struct sleeper_arg {
	order_state *st;
	int id;
	int64_t deadline;
	int64_t woke_at;
} sleeper_arg;

static void sleeper(void *p)
{
	sleeper_arg *a = p;
	TU_ASSERT_OK(tt_sleep_until(a->deadline));
	a->woke_at = tt_now();
	a->st->log[INC(a->st->n)] = a->id;
	tu_done(a->st->done);
}

static void sleeper_rel(void *p)
{
	sleeper_arg *a = p;
	TU_ASSERT_OK(tt_sleep(a->deadline));
	a->woke_at = tt_now();
	a->st->log[INC(a->st->n)] = a->id;
	tu_done(a->st->done);
}

/* The log of n sleepers numbered by deadline. One P wakes them in
 * deadline order. With more, two sleepers due a few milliseconds apart
 * wake on two threads, and a loaded machine may delay one of them past
 * the other: each must still have logged exactly once, and the ranges
 * the callers check bound how late each woke. */
static void check_wake_order(const int *log, int n)
{
	int seen[64] = {0};
	for (int i = 0; i < n; i++) {
		TU_ASSERT_RANGE(log[i], 0, n - 1);
		seen[log[i]]++;
		if (tt_runtime_procs() == 1)
			TU_ASSERT_EQ(log[i], i);
	}
	for (int i = 0; i < n; i++)
		TU_ASSERT_EQ(seen[i], 1);
}

/* Sleepers whose deadlines all pass before the timers are next looked at
 * are woken by one run of the timers: they still run in deadline order,
 * ahead of the run queue. */
static void test_sleepers_due_together_keep_order(void **state)
{
	(void)state;
	/* One scheduler's promise: its timer run wakes them in deadline
	 * order, and no sleeper wakes while this goroutine spins. */
	tu_one_p();
	enum { N = 8 };
	order_state st;
	memset(&st, 0, sizeof st);
	st.done = tu_chan(0, N);
	sleeper_arg a[N];
	int64_t base = tt_now() + 5 * MS;
	for (int k = 0; k < N; k++) {
		int id = (k * 3) % N; /* 3 is coprime with 8 */
		a[k] = (sleeper_arg){&st, id, base + id * 100 * 1000, 0};
		tu_go(sleeper, &a[k]);
	}
	tt_yield(); /* every sleeper parks */
	/* Spin, without a switch, past every deadline. */
	while (tt_now() < base + N * MS)
		;
	assert_int_equal(LD(st.n), 0);
	TU_WAIT_DONE(st.done, N, 10 * TT_SECOND);
	for (int i = 0; i < N; i++)
		TU_ASSERT_EQ(st.log[i], i);
	TU_ASSERT_OK(tt_chan_release(st.done));
}

static void test_sleepers_wake_in_order(void **state)
{
	(void)state;
	enum { N = 40 };
	order_state st;
	memset(&st, 0, sizeof st);
	st.done = tu_chan(0, N);
	sleeper_arg a[N];
	/* Started in a scrambled order, wake in deadline order. */
	int64_t base = tt_now() + 20 * MS;
	for (int k = 0; k < N; k++) {
		int id = (k * 17) % N; /* 17 is coprime with 40 */
		a[k] = (sleeper_arg){&st, id, base + id * 2 * MS, 0};
		tu_go(sleeper, &a[k]);
	}
	assert_int_equal(LD(st.n), 0);
	TU_WAIT_DONE(st.done, N, 10 * TT_SECOND);
	check_wake_order(st.log, N);
	for (int k = 0; k < N; k++)
		TU_ASSERT_RANGE(a[k].woke_at, a[k].deadline,
				a[k].deadline + TU_SLACK_NS);

	/* Relative durations: 5 ms apart. */
	memset(st.log, 0, sizeof st.log);
	ST(st.n, 0);
	for (int k = 0; k < 10; k++) {
		int id = (k * 3) % 10;
		a[k] = (sleeper_arg){&st, id, (id + 1) * 5 * MS, 0};
		tu_go(sleeper_rel, &a[k]);
	}
	TU_WAIT_DONE(st.done, 10, 10 * TT_SECOND);
	check_wake_order(st.log, 10);
	TU_ASSERT_OK(tt_chan_release(st.done));
}

/* ---- tt_after ------------------------------------------------------------------ */

static void test_after_fires_once(void **state)
{
	(void)state;
	tt_chan *c = NULL;
	int64_t t0 = tt_now();
	TU_ASSERT_OK(tt_after(&c, 30 * MS));
	assert_non_null(c);
	assert_int_equal(tt_chan_cap(c), 1);
	assert_int_equal(tt_chan_len(c), 0);
	int64_t when = 0;
	TU_ASSERT_ERR(tt_chan_recv_until(c, &when, sizeof when, NULL, TT_TRY),
		      -EAGAIN);
	bool ok = false;
	TU_ASSERT_OK(tt_recv(c, &when, &ok));
	int64_t t1 = tt_now();
	assert_true(ok);
	TU_ASSERT_GE(when, t0 + 30 * MS);
	TU_ASSERT_LE(when, t1);
	TU_ASSERT_LE(t1 - t0, 30 * MS + TU_SLACK_NS);
	/* Once only. */
	TU_ASSERT_ERR(tt_chan_recv_until(c, &when, sizeof when, NULL,
					 tt_deadline_in(60 * MS)),
		      -ETIMEDOUT);
	TU_ASSERT_OK(tt_chan_release(c));

	/* Zero and negative durations fire at once. */
	for (int64_t d = 0; d >= -1; d--) {
		t0 = tt_now();
		TU_ASSERT_OK(tt_after(&c, d));
		TU_ASSERT_OK(tt_chan_recv_until(c, &when, sizeof when, NULL,
						tt_deadline_in(TT_SECOND)));
		TU_ASSERT_RANGE(when, t0, tt_now());
		TU_ASSERT_OK(tt_chan_release(c));
	}

	/* A buffered tick waits for its receiver. */
	TU_ASSERT_OK(tt_after(&c, 5 * MS));
	TU_ASSERT_OK(tt_sleep(30 * MS));
	assert_int_equal(tt_chan_len(c), 1);
	TU_ASSERT_OK(tt_chan_recv_until(c, &when, sizeof when, NULL, TT_TRY));
	assert_int_equal(tt_chan_len(c), 0);
	TU_ASSERT_OK(tt_chan_release(c));

	/* In a select, as a timeout. */
	tt_chan *never = tu_chan(sizeof(int), 0);
	TU_ASSERT_OK(tt_after(&c, 20 * MS));
	int v;
	tt_case cases[2] = {TT_CASE_RECV_INTO(never, &v, NULL),
			    TT_CASE_RECV_INTO(c, &when, NULL)};
	t0 = tt_now();
	TU_ASSERT_EQ(tt_select(cases, 2, TT_FOREVER), 1);
	TU_ASSERT_RANGE(tt_now() - t0, 20 * MS, 20 * MS + TU_SLACK_NS);
	TU_ASSERT_OK(tt_chan_release(c));
	TU_ASSERT_OK(tt_chan_release(never));

	TU_ASSERT_ERR(tt_after(NULL, MS), -EINVAL);
}

/* Releasing the channel before the timer fires must stop it: nothing may
 * be written into freed memory (ASan catches it if so). */
static void test_after_released_before_firing(void **state)
{
	(void)state;
	enum { N = 1000 };
	for (int i = 0; i < N; i++) {
		tt_chan *c = NULL;
		TU_ASSERT_OK(tt_after(&c, (i % 10 + 1) * MS));
		TU_ASSERT_OK(tt_chan_release(c));
	}
	/* Sleep through all their would-be firing times; also keep the heap
	 * busy with fresh allocations that would take the freed memory. */
	tt_chan *keep[64];
	for (int i = 0; i < 64; i++)
		keep[i] = tu_chan(sizeof(int64_t), 1);
	int64_t t0 = tt_now();
	TU_ASSERT_OK(tt_sleep(30 * MS));
	TU_ASSERT_GE(tt_now() - t0, 30 * MS);
	for (int i = 0; i < 64; i++) {
		/* Nothing was delivered into these. */
		TU_ASSERT_EQ(tt_chan_len(keep[i]), 0);
		TU_ASSERT_OK(tt_chan_release(keep[i]));
	}
	/* A retained reference keeps the timer alive until the last one
	 * goes. */
	tt_chan *c = NULL;
	TU_ASSERT_OK(tt_after(&c, 10 * MS));
	TU_ASSERT_OK(tt_chan_retain(c));
	TU_ASSERT_OK(tt_chan_release(c));
	int64_t when = 0;
	TU_ASSERT_OK(tt_chan_recv_until(c, &when, sizeof when, NULL,
					tt_deadline_in(TT_SECOND)));
	TU_ASSERT_GT(when, 0);
	TU_ASSERT_OK(tt_chan_release(c));
}

/* time.h: "a select loop that makes a fresh tt_after each iteration and
 * releases it runs in constant memory". */
static void test_after_loop_constant_memory(void **state)
{
	(void)state;
	const long iters = 1000000;
	tt_chan *ready = tu_chan(sizeof(int), 1);
	int one = 1;
	TU_ASSERT_OK(tt_send(ready, &one));

	/* Warm up, so allocator and heap caches are in place. */
	long long rss0 = 0;
#if TU_ASAN || TU_TSAN
	size_t heap0 = 0;
#endif
	for (long i = 0; i < iters + 1000; i++) {
		if (i == 1000) {
			rss0 = tu_rss_bytes();
#if TU_ASAN || TU_TSAN
			heap0 = __sanitizer_get_current_allocated_bytes();
#endif
		}
		tt_chan *after = NULL;
		TU_ASSERT_OK(tt_after(&after, TT_MINUTE));
		int v = 0;
		int64_t when = 0;
		tt_case cases[2] = {TT_CASE_RECV_INTO(ready, &v, NULL),
				    TT_CASE_RECV_INTO(after, &when, NULL)};
		int r = tt_select(cases, 2, TT_FOREVER);
		if (r != 0)
			fail_msg("iteration %ld: select chose %d", i, r);
		TU_ASSERT_OK(tt_chan_release(after));
		TU_ASSERT_OK(tt_send(ready, &one));
	}
	long long rss1 = tu_rss_bytes();
	print_message("RSS %lld KiB -> %lld KiB over %ld iterations\n",
		      rss0 / 1024, rss1 / 1024, iters);
	assert_true(rss0 > 0);
#if TU_ASAN || TU_TSAN
	/* ASan's quarantine holds freed memory, and TSan's shadow and
	 * history grow with every fresh address, so RSS says little; their
	 * allocator knows what is still live. */
	size_t heap1 = __sanitizer_get_current_allocated_bytes();
	print_message("live heap %zu KiB -> %zu KiB\n", heap0 / 1024,
		      heap1 / 1024);
	TU_ASSERT_LT((long long)heap1 - (long long)heap0, 16LL << 20);
#else
	TU_ASSERT_LT(rss1 - rss0, 16LL << 20);
#endif
	TU_ASSERT_OK(tt_chan_release(ready));
}

/* ---- tt_timer -------------------------------------------------------------------- */

static void test_timer_fires(void **state)
{
	(void)state;
	tt_timer *t = NULL;
	int64_t t0 = tt_now();
	TU_ASSERT_OK(tt_timer_make(&t, 25 * MS));
	tt_chan *c = tt_timer_chan(t);
	assert_non_null(c);
	assert_ptr_equal(tt_timer_chan(t), c);
	assert_int_equal(tt_chan_cap(c), 1);
	int64_t when = 0;
	TU_ASSERT_OK(tt_recv(c, &when, NULL));
	TU_ASSERT_GE(when, t0 + 25 * MS);
	TU_ASSERT_LE(when, tt_now());
	TU_ASSERT_LE(tt_now() - t0, 25 * MS + TU_SLACK_NS);
	/* Fired and received: Stop reports it was not active. */
	assert_false(tt_timer_stop(t));
	TU_ASSERT_OK(tt_timer_release(t));

	TU_ASSERT_ERR(tt_timer_make(NULL, MS), -EINVAL);
}

static void test_timer_stop(void **state)
{
	(void)state;
	tt_timer *t = NULL;
	TU_ASSERT_OK(tt_timer_make(&t, 40 * MS));
	assert_true(tt_timer_stop(t));  /* it was active */
	assert_false(tt_timer_stop(t)); /* already stopped */
	int64_t when = 0;
	/* It never fires. */
	TU_ASSERT_ERR(tt_chan_recv_until(tt_timer_chan(t), &when, sizeof when,
					 NULL, tt_deadline_in(80 * MS)),
		      -ETIMEDOUT);
	assert_false(tt_timer_stop(t));
	TU_ASSERT_OK(tt_timer_release(t));

	/* Fired but not received: Stop discards the value (Go 1.23), so no
	 * stale tick is read after it. */
	TU_ASSERT_OK(tt_timer_make(&t, 5 * MS));
	TU_ASSERT_OK(tt_sleep(30 * MS));
	/* Not delivered, so Stop reports it stopped the timer (Go 1.23). */
	assert_true(tt_timer_stop(t));
	TU_ASSERT_ERR(tt_chan_recv_until(tt_timer_chan(t), &when, sizeof when,
					 NULL, TT_TRY),
		      -EAGAIN);
	assert_int_equal(tt_chan_len(tt_timer_chan(t)), 0);
	TU_ASSERT_ERR(tt_chan_recv_until(tt_timer_chan(t), &when, sizeof when,
					 NULL, tt_deadline_in(30 * MS)),
		      -ETIMEDOUT);
	TU_ASSERT_OK(tt_timer_release(t));
}

static void test_timer_reset(void **state)
{
	(void)state;
	tt_timer *t = NULL;
	int64_t when = 0;

	/* Reset an active timer to fire sooner. */
	TU_ASSERT_OK(tt_timer_make(&t, 10 * TT_SECOND));
	int64_t t0 = tt_now();
	assert_true(tt_timer_reset(t, 20 * MS));
	TU_ASSERT_OK(tt_chan_recv_until(tt_timer_chan(t), &when, sizeof when,
					NULL, tt_deadline_in(5 * TT_SECOND)));
	TU_ASSERT_GE(when, t0 + 20 * MS);
	TU_ASSERT_LE(tt_now() - t0, 20 * MS + TU_SLACK_NS);

	/* Reset after it fired and was received: re-armed, reports it was
	 * not active. */
	t0 = tt_now();
	assert_false(tt_timer_reset(t, 20 * MS));
	TU_ASSERT_OK(tt_chan_recv_until(tt_timer_chan(t), &when, sizeof when,
					NULL, tt_deadline_in(5 * TT_SECOND)));
	TU_ASSERT_GE(when, t0 + 20 * MS);

	/* Reset a stopped timer. */
	assert_false(tt_timer_stop(t)); /* fired and received */
	TU_ASSERT_OK(tt_timer_release(t));
	TU_ASSERT_OK(tt_timer_make(&t, TT_SECOND));
	assert_true(tt_timer_stop(t));
	t0 = tt_now();
	assert_false(tt_timer_reset(t, 15 * MS));
	TU_ASSERT_OK(tt_chan_recv_until(tt_timer_chan(t), &when, sizeof when,
					NULL, tt_deadline_in(5 * TT_SECOND)));
	TU_ASSERT_GE(when, t0 + 15 * MS);

	/* Fired but not received, then reset: the stale value is gone, and
	 * the next one is from the new schedule. */
	TU_ASSERT_OK(tt_timer_release(t));
	TU_ASSERT_OK(tt_timer_make(&t, 5 * MS));
	TU_ASSERT_OK(tt_sleep(30 * MS));
	t0 = tt_now();
	assert_true(tt_timer_reset(t, 40 * MS)); /* not delivered: active */
	TU_ASSERT_ERR(tt_chan_recv_until(tt_timer_chan(t), &when, sizeof when,
					 NULL, TT_TRY),
		      -EAGAIN);
	TU_ASSERT_OK(tt_chan_recv_until(tt_timer_chan(t), &when, sizeof when,
					NULL, tt_deadline_in(5 * TT_SECOND)));
	TU_ASSERT_GE(when, t0 + 40 * MS);
	TU_ASSERT_RANGE(tt_now() - t0, 40 * MS, 40 * MS + TU_SLACK_NS);
	TU_ASSERT_OK(tt_timer_release(t));
}

/* Go 1.23's time.Timer.Stop and Reset for a NewTimer timer: a value that
 * fired but was not received counts as not delivered, so the call reports
 * the timer as active (true) and discards the value. One case per state of
 * the timer: armed, fired and unreceived, fired and received, stopped. */

/* A timer of 5 ms that has fired and whose value sits unreceived. */
static tt_timer *fired_unreceived(void)
{
	tt_timer *t = NULL;
	TU_ASSERT_OK(tt_timer_make(&t, 5 * MS));
	TU_WAIT_FOR(tt_chan_len(tt_timer_chan(t)) == 1, 5 * TT_SECOND);
	return t;
}

static void assert_empty_for(tt_timer *t, int64_t ns)
{
	int64_t when = 0;
	TU_ASSERT_ERR(tt_chan_recv_until(tt_timer_chan(t), &when, sizeof when,
					 NULL, tt_deadline_in(ns)),
		      -ETIMEDOUT);
}

static void test_timer_stop_states(void **state)
{
	(void)state;
	int64_t when = 0;

	/* Armed: true, and it never fires. */
	tt_timer *t = NULL;
	TU_ASSERT_OK(tt_timer_make(&t, 20 * MS));
	assert_true(tt_timer_stop(t));
	assert_empty_for(t, 50 * MS);
	TU_ASSERT_OK(tt_timer_release(t));

	/* Fired, not received: true, and the channel is empty after. */
	t = fired_unreceived();
	assert_true(tt_timer_stop(t));
	assert_int_equal(tt_chan_len(tt_timer_chan(t)), 0);
	assert_empty_for(t, 20 * MS);
	assert_false(tt_timer_stop(t)); /* now stopped */
	TU_ASSERT_OK(tt_timer_release(t));

	/* Fired and received: false. */
	t = fired_unreceived();
	TU_ASSERT_OK(tt_chan_recv_until(tt_timer_chan(t), &when, sizeof when,
					NULL, TT_TRY));
	assert_false(tt_timer_stop(t));
	TU_ASSERT_OK(tt_timer_release(t));
}

static void test_timer_reset_states(void **state)
{
	(void)state;
	int64_t when = 0, t0;

	/* Armed: true; fires on the new schedule. */
	tt_timer *t = NULL;
	TU_ASSERT_OK(tt_timer_make(&t, 10 * TT_SECOND));
	t0 = tt_now();
	assert_true(tt_timer_reset(t, 10 * MS));
	TU_ASSERT_OK(tt_chan_recv_until(tt_timer_chan(t), &when, sizeof when,
					NULL, tt_deadline_in(5 * TT_SECOND)));
	TU_ASSERT_GE(when, t0 + 10 * MS);
	TU_ASSERT_OK(tt_timer_release(t));

	/* Fired, not received: true, the stale value is gone, and the next
	 * one is from the new schedule. */
	t = fired_unreceived();
	t0 = tt_now();
	assert_true(tt_timer_reset(t, 10 * MS));
	assert_int_equal(tt_chan_len(tt_timer_chan(t)), 0);
	TU_ASSERT_OK(tt_chan_recv_until(tt_timer_chan(t), &when, sizeof when,
					NULL, tt_deadline_in(5 * TT_SECOND)));
	TU_ASSERT_GE(when, t0 + 10 * MS);
	TU_ASSERT_OK(tt_timer_release(t));

	/* Fired and received: false. */
	t = fired_unreceived();
	TU_ASSERT_OK(tt_chan_recv_until(tt_timer_chan(t), &when, sizeof when,
					NULL, TT_TRY));
	assert_false(tt_timer_reset(t, TT_SECOND));
	TU_ASSERT_OK(tt_timer_release(t));

	/* Stopped: false. */
	TU_ASSERT_OK(tt_timer_make(&t, TT_SECOND));
	assert_true(tt_timer_stop(t));
	assert_false(tt_timer_reset(t, TT_SECOND));
	TU_ASSERT_OK(tt_timer_release(t));
}

/* The pre-1.23 idiom `if (!Stop()) <-C` must never block: when Stop
 * reports false the value was delivered already, when the value waits
 * unreceived Stop reports true. The receive has a deadline, so a wrong
 * answer shows as -ETIMEDOUT rather than a hung test. */
static int old_stop_idiom(tt_timer *t)
{
	if (tt_timer_stop(t))
		return 0;
	int64_t when = 0;
	return tt_chan_recv_until(tt_timer_chan(t), &when, sizeof when, NULL,
				  tt_deadline_in(200 * MS));
}

static int old_reset_idiom(tt_timer *t, int64_t ns)
{
	int r = old_stop_idiom(t);
	if (r == 0)
		(void)tt_timer_reset(t, ns);
	return r;
}

static void test_timer_old_stop_idiom(void **state)
{
	(void)state;
	tt_timer *t = NULL;
	TU_ASSERT_OK(tt_timer_make(&t, TT_SECOND));
	TU_ASSERT_OK(old_stop_idiom(t)); /* armed */
	TU_ASSERT_OK(tt_timer_release(t));

	t = fired_unreceived();
	TU_ASSERT_OK(old_stop_idiom(t));
	assert_empty_for(t, 20 * MS);
	TU_ASSERT_OK(tt_timer_release(t));

	t = fired_unreceived();
	TU_ASSERT_OK(old_reset_idiom(t, 10 * MS));
	int64_t when = 0;
	TU_ASSERT_OK(tt_chan_recv_until(tt_timer_chan(t), &when, sizeof when,
					NULL, tt_deadline_in(5 * TT_SECOND)));
	TU_ASSERT_OK(tt_timer_release(t));
}

/* NULL handles: as documented in time.h. */
static void test_timer_null(void **state)
{
	(void)state;
	assert_false(tt_timer_stop(NULL));
	TU_ASSERT_CONTAINS(tt_last_error(), "tt_timer_stop: NULL handle");
	assert_false(tt_timer_reset(NULL, MS));
	TU_ASSERT_CONTAINS(tt_last_error(), "tt_timer_reset: NULL handle");
	assert_null(tt_timer_chan(NULL));
	TU_ASSERT_CONTAINS(tt_last_error(), "tt_timer_chan: NULL handle");
	TU_ASSERT_ERR(tt_timer_release(NULL), -EINVAL);
	TU_ASSERT_CONTAINS(tt_last_error(), "tt_timer_release: NULL handle");

	assert_null(tt_ticker_chan(NULL));
	TU_ASSERT_CONTAINS(tt_last_error(), "tt_ticker_chan: NULL handle");
	tt_ticker_stop(NULL);
	TU_ASSERT_CONTAINS(tt_last_error(), "tt_ticker_stop: NULL handle");
	TU_ASSERT_ERR(tt_ticker_reset(NULL, MS), -EINVAL);
	TU_ASSERT_CONTAINS(tt_last_error(), "tt_ticker_reset: NULL handle");
	TU_ASSERT_ERR(tt_ticker_release(NULL), -EINVAL);
	TU_ASSERT_CONTAINS(tt_last_error(), "tt_ticker_release: NULL handle");

	/* A handle of the other kind is refused the same way, and the
	 * timer is left as it was. */
	tt_ticker *tk = NULL;
	TU_ASSERT_OK(tt_ticker_make(&tk, TT_SECOND));
	assert_false(tt_timer_stop((tt_timer *)tk));
	TU_ASSERT_CONTAINS(tt_last_error(), "is not a timer");
	assert_null(tt_timer_chan((tt_timer *)tk));
	TU_ASSERT_ERR(tt_timer_release((tt_timer *)tk), -EINVAL);
	TU_ASSERT_CONTAINS(tt_last_error(), "is not a timer");
	tt_timer *t = NULL;
	TU_ASSERT_OK(tt_timer_make(&t, TT_SECOND));
	TU_ASSERT_ERR(tt_ticker_release((tt_ticker *)t), -EINVAL);
	TU_ASSERT_CONTAINS(tt_last_error(), "is not a ticker");
	assert_true(tt_timer_stop(t)); /* still armed */
	TU_ASSERT_OK(tt_timer_release(t));
	TU_ASSERT_OK(tt_ticker_release(tk));
}

/* Releasing a timer that has not fired stops it. */
static void test_timer_release_unfired(void **state)
{
	(void)state;
	for (int i = 0; i < 200; i++) {
		tt_timer *t = NULL;
		TU_ASSERT_OK(tt_timer_make(&t, (i % 5 + 1) * MS));
		TU_ASSERT_OK(tt_timer_release(t));
	}
	TU_ASSERT_OK(tt_sleep(20 * MS)); /* ASan: nothing fires into them */
	tt_timer *t = NULL;
	TU_ASSERT_OK(tt_timer_make(&t, 1 * MS));
	TU_ASSERT_OK(tt_sleep(10 * MS));
	TU_ASSERT_OK(tt_timer_release(t)); /* fired, value never received */
}

/* ---- tt_ticker --------------------------------------------------------------------- */

static void test_ticker_ticks(void **state)
{
	(void)state;
	const int64_t period = 15 * MS;
	tt_ticker *tk = NULL;
	int64_t t0 = tt_now();
	TU_ASSERT_OK(tt_ticker_make(&tk, period));
	tt_chan *c = tt_ticker_chan(tk);
	assert_non_null(c);
	assert_ptr_equal(tt_ticker_chan(tk), c);
	assert_int_equal(tt_chan_cap(c), 1);
	int64_t prev = t0;
	for (int k = 1; k <= 6; k++) {
		int64_t when = 0;
		bool ok = false;
		TU_ASSERT_OK(tt_chan_recv_until(c, &when, sizeof when, &ok,
						tt_deadline_in(5 * TT_SECOND)));
		assert_true(ok);
		/* The k-th tick is due at t0 + k * period at the earliest. */
		TU_ASSERT_GE(when, t0 + k * period);
		TU_ASSERT_GT(when, prev);
		TU_ASSERT_LE(when, tt_now());
		prev = when;
	}
	TU_ASSERT_LE(tt_now() - t0, 6 * period + TU_SLACK_NS);

	/* Stop: no more ticks. */
	tt_ticker_stop(tk);
	int64_t when = 0;
	TU_ASSERT_ERR(tt_chan_recv_until(c, &when, sizeof when, NULL,
					 tt_deadline_in(3 * period)),
		      -ETIMEDOUT);

	/* Reset: ticking again with the new period, from now. */
	t0 = tt_now();
	TU_ASSERT_OK(tt_ticker_reset(tk, 2 * period));
	for (int k = 1; k <= 2; k++) {
		TU_ASSERT_OK(tt_chan_recv_until(c, &when, sizeof when, NULL,
						tt_deadline_in(5 * TT_SECOND)));
		TU_ASSERT_GE(when, t0 + k * 2 * period);
	}
	TU_ASSERT_OK(tt_ticker_release(tk));
}

static void test_ticker_slow_receiver_drops(void **state)
{
	(void)state;
	tt_ticker *tk = NULL;
	TU_ASSERT_OK(tt_ticker_make(&tk, 10 * MS));
	tt_chan *c = tt_ticker_chan(tk);
	/* Ten periods go by unreceived: one tick waits, the rest are
	 * dropped, not queued. */
	TU_ASSERT_OK(tt_sleep(100 * MS));
	TU_ASSERT_LE(tt_chan_len(c), 1);
	int64_t when = 0;
	TU_ASSERT_OK(tt_chan_recv_until(c, &when, sizeof when, NULL, TT_TRY));
	TU_ASSERT_ERR(tt_chan_recv_until(c, &when, sizeof when, NULL, TT_TRY),
		      -EAGAIN);
	/* And it keeps ticking afterwards. */
	TU_ASSERT_OK(tt_chan_recv_until(c, &when, sizeof when, NULL,
					tt_deadline_in(5 * TT_SECOND)));

	/* Stop discards a tick not yet received. */
	TU_ASSERT_OK(tt_sleep(30 * MS));
	tt_ticker_stop(tk);
	TU_ASSERT_ERR(tt_chan_recv_until(c, &when, sizeof when, NULL, TT_TRY),
		      -EAGAIN);
	/* So does Reset. */
	TU_ASSERT_OK(tt_ticker_reset(tk, 5 * MS));
	TU_ASSERT_OK(tt_sleep(20 * MS));
	int64_t t0 = tt_now();
	TU_ASSERT_OK(tt_ticker_reset(tk, 50 * MS));
	TU_ASSERT_ERR(tt_chan_recv_until(c, &when, sizeof when, NULL, TT_TRY),
		      -EAGAIN);
	TU_ASSERT_OK(tt_chan_recv_until(c, &when, sizeof when, NULL,
					tt_deadline_in(5 * TT_SECOND)));
	TU_ASSERT_GE(when, t0 + 50 * MS);
	TU_ASSERT_OK(tt_ticker_release(tk));
}

static void test_ticker_bad_period(void **state)
{
	(void)state;
	tt_ticker *tk = NULL;
	TU_ASSERT_ERR(tt_ticker_make(&tk, 0), -EINVAL);
	assert_true(strlen(tt_last_error()) > 0);
	TU_ASSERT_ERR(tt_ticker_make(&tk, -TT_SECOND), -EINVAL);
	TU_ASSERT_ERR(tt_ticker_make(&tk, INT64_MIN), -EINVAL);
	TU_ASSERT_OK(tt_ticker_make(&tk, TT_SECOND));
	TU_ASSERT_ERR(tt_ticker_reset(tk, 0), -EINVAL);
	TU_ASSERT_ERR(tt_ticker_reset(tk, -1), -EINVAL);
	/* A failed reset leaves it ticking with the old period. */
	TU_ASSERT_OK(tt_ticker_reset(tk, 10 * MS));
	TU_ASSERT_ERR(tt_ticker_reset(tk, -5), -EINVAL);
	int64_t when = 0;
	TU_ASSERT_OK(tt_chan_recv_until(tt_ticker_chan(tk), &when, sizeof when,
					NULL, tt_deadline_in(5 * TT_SECOND)));
	TU_ASSERT_OK(tt_ticker_release(tk));
}

/* Many goroutines sleeping at once, different durations. */
typedef struct nap_arg {
	int64_t duration;
	int64_t started, woke;
	tt_chan *go, *done;
} nap_arg;

static void napper(void *p)
{
	nap_arg *a = p;
	/* Start together, once all exist (starting them takes a while under
	 * ASan, and the starter runs first). */
	TU_ASSERT_OK(tt_chan_recv(a->go, NULL, 0, NULL));
	a->started = tt_now();
	TU_ASSERT_OK(tt_sleep(a->duration));
	a->woke = tt_now();
	tu_done(a->done);
}

static void test_sleep_in_many_goroutines(void **state)
{
	(void)state;
	enum { N = 1000 };
	static nap_arg a[N];
	tt_chan *done = tu_chan(0, N);
	tt_chan *go = tu_chan(0, 0);
	for (int i = 0; i < N; i++) {
		a[i] = (nap_arg){.duration = (i * 7 % 50 + 1) * MS,
				 .go = go, .done = done};
		tu_go(napper, &a[i]);
	}
	TU_ASSERT_OK(tt_chan_close(go));
	TU_WAIT_DONE(done, N, 10 * TT_SECOND);
	TU_ASSERT_OK(tt_chan_release(go));
	for (int i = 0; i < N; i++)
		TU_ASSERT_RANGE(a[i].woke - a[i].started, a[i].duration,
				a[i].duration + TU_SLACK_NS);
	TU_ASSERT_OK(tt_chan_release(done));
}

/* ---- timers under a run-queue flood ---------------------------------------- */

/* A relay of goroutines that exit without ever parking or yielding again:
 * each is woken with the token, works a while, hands the token to the
 * next (readying it, without parking: a receiver waits) and exits. The
 * run queue holds one of them at a time, so a sleeper whose timer fires
 * gets its turn right after the next hand-off, if the timer is checked
 * at all. */
typedef struct relay {
	tt_chan *tok;  /* cap 1: a send never parks */
	tt_chan *done; /* the last runner's signal */
	int n;         /* runners */
	int ran;       /* runners that have had the token */
	int64_t work;  /* each one's busy time */
	int sleeper_woke; /* atomic: the runners poll it */
	int64_t slept, woke_after;
} relay;

static void relay_runner(void *p)
{
	relay *r = p;
	int v = 0;
	TU_ASSERT_OK(tt_recv(r->tok, &v, NULL));
	int64_t until = tt_now() + r->work;
	while (!LD(r->sleeper_woke) && tt_now() < until)
		;
	if (++r->ran == r->n)
		tu_done(r->done);
	else
		TU_ASSERT_OK(tt_send(r->tok, &v));
}

static void relay_sleeper(void *p)
{
	relay *r = p;
	int64_t t0 = tt_now();
	TU_ASSERT_OK(tt_sleep(r->slept));
	r->woke_after = tt_now() - t0;
	ST(r->sleeper_woke, 1);
	tu_done(r->done);
}

/* A 10 ms sleeper wakes on time however many goroutines come and go
 * meanwhile without parking (the scheduler checks timers on goroutine
 * exit, not only on park and yield). */
static void test_sleep_under_exit_flood(void **state)
{
	(void)state;
	relay r = {.n = TU_SCALE(20000, 5000),
		   .work = TU_SCALE(100, 400) * TT_MICROSECOND,
		   .slept = 10 * MS};
	r.tok = tu_chan(sizeof(int), 1);
	r.done = tu_chan(0, 2);
	for (int i = 0; i < r.n; i++)
		tu_go(relay_runner, &r);
	tu_go(relay_sleeper, &r);
	int v = 1;
	TU_ASSERT_OK(tt_send(r.tok, &v));
	TU_WAIT_DONE(r.done, 2, 60 * TT_SECOND);
	print_message("sleeper asked for %lld ms, woke after %lld ms; %d of "
		      "%d runners had run (%lld us of work each)\n",
		      (long long)(r.slept / MS), (long long)(r.woke_after / MS),
		      r.ran, r.n, (long long)(r.work / TT_MICROSECOND));
	TU_ASSERT_GE(r.woke_after, r.slept);
	TU_ASSERT_LT(r.woke_after, TT_SECOND);
	TU_ASSERT_OK(tt_chan_release(r.tok));
	TU_ASSERT_OK(tt_chan_release(r.done));
}

/* A yield flood: n goroutines that yield in a loop, and one sleeper. Each
 * flood yield taken after the sleeper's deadline has passed and before it
 * has run is counted in `late`: tt_yield fires due timers first thing, so
 * the count is how many flood goroutines ran between the timer firing
 * (at the first such yield) and the sleeper running. */
typedef struct {
	tt_chan *done;
	int n;
	/* Atomics: the flood and the sleeper read and write them. */
	int64_t deadline; /* 0 until the sleeper has set it */
	int woke;
	long late;       /* flood yields after the deadline, before the wake */
	long late_at_wake;
	int64_t stop_by; /* bound on the flood's run, in case of a bug */
} flood;

static void flood_yielder(void *p)
{
	flood *f = p;
	while (!LD(f->woke) && tt_now() < f->stop_by) {
		int64_t deadline = LD(f->deadline);
		if (deadline && tt_now() >= deadline)
			INC(f->late);
		tt_yield();
	}
	tu_done(f->done);
}

static void flood_sleeper(void *p)
{
	flood *f = p;
	int64_t deadline = tt_now() + 1 * MS;
	ST(f->deadline, deadline);
	TU_ASSERT_OK(tt_sleep_until(deadline));
	f->late_at_wake = LD(f->late);
	ST(f->woke, 1);
	tu_done(f->done);
}

/* A goroutine woken by its own timer runs next, ahead of the run queue
 * (Go's runnext): under 1,000 yielding goroutines a 1 ms sleeper runs
 * right after its timer fires, not after every one of them has yielded
 * once more. The flood still makes progress meanwhile. */
static void test_sleep_wake_runs_next(void **state)
{
	(void)state;
	/* Runnext is one scheduler's run queue: with two Ps the flood on
	 * the other thread keeps yielding whatever this one runs next. */
	tu_one_p();
	flood f = {.n = 1000, .stop_by = tt_now() + 30 * TT_SECOND};
	f.done = tu_chan(0, f.n + 1);
	for (int i = 0; i < f.n; i++)
		tu_go(flood_yielder, &f);
	tu_go(flood_sleeper, &f);
	TU_WAIT_DONE(f.done, f.n + 1, 60 * TT_SECOND);
	print_message("%ld flood yields between the sleeper's timer firing "
		      "and the sleeper running (of %d flood goroutines)\n",
		      f.late_at_wake, f.n);
	TU_ASSERT_EQ(LD(f.woke), 1);
	/* The firing yield itself, at most, and one or two that saw the
	 * deadline pass just before their yield's own clock read. */
	TU_ASSERT_LT(f.late_at_wake, 10);
	TU_ASSERT_OK(tt_chan_release(f.done));
}

typedef struct {
	tt_chan *done;
	int rearms;              /* sleeps the rearmer makes */
	int rearmer_done;  /* atomics: the flood polls the one, bumps */
	long flood_yields; /* the other */
	int64_t stop_by;
} rearm;

static void rearm_yielder(void *p)
{
	rearm *r = p;
	while (!LD(r->rearmer_done) && tt_now() < r->stop_by) {
		INC(r->flood_yields);
		tt_yield();
	}
	tu_done(r->done);
}

static void rearm_sleeper(void *p)
{
	rearm *r = p;
	for (int i = 0; i < r->rearms && tt_now() < r->stop_by; i++)
		TU_ASSERT_OK(tt_sleep(TT_MICROSECOND));
	ST(r->rearmer_done, 1);
	tu_done(r->done);
}

/* Running timer-woken goroutines first does not let one that keeps
 * re-arming a short timer monopolise the thread: each of its parks hands
 * the thread to a flood goroutine (but for one in 64, where the timers
 * are run at the park itself), and it is readied again only at such a
 * goroutine's yield. So the flood yields at least about once per sleep.
 * (A sleep whose deadline has passed already is a plain yield, to the
 * back of the run queue.) */
static void test_rearmed_timer_does_not_starve(void **state)
{
	(void)state;
	rearm r = {.rearms = 20000, .stop_by = tt_now() + 30 * TT_SECOND};
	int n = 100;
	r.done = tu_chan(0, n + 1);
	for (int i = 0; i < n; i++)
		tu_go(rearm_yielder, &r);
	tu_go(rearm_sleeper, &r);
	TU_WAIT_DONE(r.done, n + 1, 60 * TT_SECOND);
	print_message("%ld flood yields during %d re-armed sleeps\n",
		      LD(r.flood_yields), r.rearms);
	TU_ASSERT_GE(LD(r.flood_yields), r.rearms / 2);
	TU_ASSERT_OK(tt_chan_release(r.done));
}

/* Long turns: two goroutines pass a token back and forth over unbuffered
 * channels, each busy for TURN before it passes it on, so each turn ends
 * in one park and 64 parks take 64 turns. A sleeper of 10 ms in between
 * must not wait for the 64th park's timer check: the parks check the
 * clock too, and a timer whose deadline has passed fires within 8 turns
 * of it. (Timed by the clock, busy turns stay TURN long however loaded
 * the machine is, so the bound holds on it.) */
#define TURN (3 * MS)
#define LONG_SLEEPS 5

typedef struct longturn {
	tt_chan *ping, *pong, *done;
	int stop; /* atomic: the test sets it, the turns poll it */
	int64_t late[LONG_SLEEPS];
	int64_t stop_by;
} longturn;

static void turn_busy(const longturn *l)
{
	int64_t until = tt_now() + TURN;
	while (!LD(l->stop) && tt_now() < until)
		;
}

static void turn_ping(void *p)
{
	longturn *l = p;
	int v = 0;
	while (!LD(l->stop) && tt_now() < l->stop_by) {
		turn_busy(l);
		TU_ASSERT_OK(tt_send(l->ping, &v));
		TU_ASSERT_OK(tt_recv(l->pong, &v, NULL));
	}
	TU_ASSERT_OK(tt_chan_close(l->ping));
	tu_done(l->done);
}

static void turn_pong(void *p)
{
	longturn *l = p;
	int v = 0;
	bool ok = true;
	for (;;) {
		TU_ASSERT_OK(tt_recv(l->ping, &v, &ok));
		if (!ok)
			break;
		turn_busy(l);
		TU_ASSERT_OK(tt_send(l->pong, &v));
	}
	tu_done(l->done);
}

static int cmp_i64(const void *a, const void *b)
{
	int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
	return (x > y) - (x < y);
}

static void test_sleep_under_long_turns(void **state)
{
	(void)state;
	longturn l = {.stop_by = tt_now() + 20 * TT_SECOND};
	l.ping = tu_chan(sizeof(int), 0);
	l.pong = tu_chan(sizeof(int), 0);
	l.done = tu_chan(0, 2);
	tu_go(turn_pong, &l);
	tu_go(turn_ping, &l);
	for (int i = 0; i < LONG_SLEEPS; i++) {
		int64_t t0 = tt_now();
		TU_ASSERT_OK(tt_sleep(10 * MS));
		l.late[i] = tt_now() - t0 - 10 * MS;
	}
	ST(l.stop, 1);
	TU_WAIT_DONE(l.done, 2, 30 * TT_SECOND);
	qsort(l.late, LONG_SLEEPS, sizeof l.late[0], cmp_i64);
	print_message("10 ms sleeps among %lld ms turns: late by %lld ms "
		      "(median), %lld ms (worst)\n",
		      (long long)(TURN / MS),
		      (long long)(l.late[LONG_SLEEPS / 2] / MS),
		      (long long)(l.late[LONG_SLEEPS - 1] / MS));
	/* 8 turns are 24 ms; the 64 of the count alone, 192. */
	TU_ASSERT_LT(l.late[LONG_SLEEPS / 2], 60 * MS);
	TU_ASSERT_OK(tt_chan_release(l.ping));
	TU_ASSERT_OK(tt_chan_release(l.pong));
	TU_ASSERT_OK(tt_chan_release(l.done));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		TU_TEST(test_now_monotonic),
		TU_TEST(test_deadline_in),
		TU_TEST(test_sleep_durations),
		TU_TEST(test_sleep_yields),
		TU_TEST(test_sleepers_wake_in_order),
		TU_TEST(test_sleepers_due_together_keep_order),
		TU_TEST(test_sleep_in_many_goroutines),
		TU_TEST(test_after_fires_once),
		TU_TEST(test_after_released_before_firing),
		TU_TEST(test_after_loop_constant_memory),
		TU_TEST(test_timer_fires),
		TU_TEST(test_timer_stop),
		TU_TEST(test_timer_reset),
		TU_TEST(test_timer_stop_states),
		TU_TEST(test_timer_reset_states),
		TU_TEST(test_timer_old_stop_idiom),
		TU_TEST(test_timer_null),
		TU_TEST(test_timer_release_unfired),
		TU_TEST(test_ticker_ticks),
		TU_TEST(test_ticker_slow_receiver_drops),
		TU_TEST(test_ticker_bad_period),
		TU_TEST(test_sleep_under_exit_flood),
		TU_TEST(test_sleep_wake_runs_next),
		TU_TEST(test_rearmed_timer_does_not_starve),
		TU_TEST(test_sleep_under_long_turns),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
