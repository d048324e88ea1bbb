/* tether tests — select (tt_select in include/tether/chan.h). */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"
#include "testutil.h"
#include "chan_queued.h"

/* Pearson's statistic for counts against equal expected frequencies. */
static double chi_square(const long *counts, int k, long total)
{
	double expect = (double)total / k, chi = 0;
	for (int i = 0; i < k; i++) {
		double d = (double)counts[i] - expect;
		chi += d * d / expect;
	}
	return chi;
}

/* Bounds that a fair choice exceeds with probability below 1e-9: the
 * chi-square quantiles for 1 - 1e-9 are about 41.4 (2 degrees of freedom)
 * and 44.8 (3). A select that favours one ready case even slightly
 * (say 27% instead of 25% over 40,000 selects: chi-square near 90) or
 * takes the first ready case (chi-square 120,000) fails clearly. */
#define CHI2_BOUND_2DF 45.0
#define CHI2_BOUND_3DF 50.0

/* ---- uniform choice among ready cases ---------------------------------- */

static void test_select_uniform_recv(void **state)
{
	(void)state;
	enum { K = 4, N = 40000 };
	tt_chan *c[K];
	int vals[K];
	bool oks[K];
	tt_case cases[K];
	for (int i = 0; i < K; i++) {
		c[i] = tu_chan(sizeof(int), 1);
		int v = i;
		TU_ASSERT_OK(tt_send(c[i], &v));
		cases[i] = TT_CASE_RECV_INTO(c[i], &vals[i], &oks[i]);
	}
	long counts[K] = {0};
	for (int n = 0; n < N; n++) {
		int r = tt_select(cases, K, TT_FOREVER);
		TU_ASSERT_RANGE(r, 0, K - 1);
		counts[r]++;
		/* The chosen case was performed, the others were not. */
		TU_ASSERT_EQ(vals[r], r);
		TU_ASSERT(oks[r]);
		for (int i = 0; i < K; i++)
			TU_ASSERT_EQ(tt_chan_len(c[i]), i == r ? 0 : 1);
		TU_ASSERT_OK(tt_send(c[r], &r)); /* ready again */
	}
	double chi = chi_square(counts, K, N);
	print_message("uniform recv: %ld %ld %ld %ld, chi-square %.2f\n",
		      counts[0], counts[1], counts[2], counts[3], chi);
	assert_true(chi < CHI2_BOUND_3DF);
	for (int i = 0; i < K; i++)
		TU_ASSERT_OK(tt_chan_release(c[i]));
}

static void test_select_uniform_mixed(void **state)
{
	(void)state;
	/* Two ready receives and two ready sends. */
	enum { K = 4, N = 40000 };
	tt_chan *c[K];
	int vals[K] = {0, 0, 7, 8};
	tt_case cases[K];
	for (int i = 0; i < K; i++)
		c[i] = tu_chan(sizeof(int), 1);
	for (int i = 0; i < 2; i++) {
		TU_ASSERT_OK(tt_send(c[i], &i));
		cases[i] = TT_CASE_RECV_INTO(c[i], &vals[i], NULL);
	}
	for (int i = 2; i < K; i++)
		cases[i] = TT_CASE_SEND_FROM(c[i], &vals[i]);
	long counts[K] = {0};
	for (int n = 0; n < N; n++) {
		int r = tt_select(cases, K, TT_TRY);
		TU_ASSERT_RANGE(r, 0, K - 1);
		counts[r]++;
		int v = -1;
		if (r < 2) {
			TU_ASSERT_EQ(vals[r], r);
			TU_ASSERT_OK(tt_send(c[r], &r));
		} else {
			TU_ASSERT_OK(tt_recv(c[r], &v, NULL));
			TU_ASSERT_EQ(v, r + 5);
		}
		for (int i = 0; i < K; i++)
			TU_ASSERT_EQ(tt_chan_len(c[i]), i < 2 ? 1 : 0);
	}
	double chi = chi_square(counts, K, N);
	print_message("uniform mixed: %ld %ld %ld %ld, chi-square %.2f\n",
		      counts[0], counts[1], counts[2], counts[3], chi);
	assert_true(chi < CHI2_BOUND_3DF);
	for (int i = 0; i < K; i++)
		TU_ASSERT_OK(tt_chan_release(c[i]));
}

/* Cases that are not ready, and cases on the nil channel, are never
 * chosen; the ready ones share evenly whatever their position. */
static void test_select_nil_and_unready_never_chosen(void **state)
{
	(void)state;
	enum { N = 30000 };
	tt_chan *ready[3], *empty = tu_chan(sizeof(int), 1),
			   *full = tu_chan(sizeof(int), 1);
	int fillv = 99;
	TU_ASSERT_OK(tt_send(full, &fillv));
	for (int i = 0; i < 3; i++) {
		ready[i] = tu_chan(sizeof(int), 1);
		TU_ASSERT_OK(tt_send(ready[i], &i));
	}
	int v = -1, sv = 5;
	tt_case cases[8] = {
		TT_CASE_RECV_INTO((tt_chan *)NULL, &v, NULL), /* nil */
		TT_CASE_RECV_INTO(ready[0], &v, NULL),
		TT_CASE_RECV_INTO(empty, &v, NULL),    /* nothing to take */
		TT_CASE_SEND_FROM((tt_chan *)NULL, &sv), /* nil */
		TT_CASE_RECV_INTO(ready[1], &v, NULL),
		TT_CASE_SEND_FROM(full, &sv),          /* no room */
		TT_CASE_RECV_DISCARD((tt_chan *)NULL, NULL), /* nil */
		TT_CASE_RECV_INTO(ready[2], &v, NULL),
	};
	const int idx[3] = {1, 4, 7};
	long counts[3] = {0};
	for (int n = 0; n < N; n++) {
		int r = tt_select(cases, 8, TT_FOREVER);
		int which = -1;
		for (int i = 0; i < 3; i++)
			if (r == idx[i])
				which = i;
		TU_ASSERT_MSG(which >= 0, "select chose case %d", r);
		TU_ASSERT_EQ(v, which);
		counts[which]++;
		TU_ASSERT_OK(tt_send(ready[which], &which));
	}
	double chi = chi_square(counts, 3, N);
	print_message("nil/unready: %ld %ld %ld, chi-square %.2f\n", counts[0],
		      counts[1], counts[2], chi);
	assert_true(chi < CHI2_BOUND_2DF);
	assert_int_equal(tt_chan_len(full), 1);
	assert_int_equal(tt_chan_len(empty), 0);

	/* Only nil cases: never ready. */
	tt_case nils[2] = {TT_CASE_RECV_INTO((tt_chan *)NULL, &v, NULL),
			   TT_CASE_SEND_FROM((tt_chan *)NULL, &sv)};
	TU_ASSERT_ERR(tt_select(nils, 2, TT_TRY), -EAGAIN);
	int64_t t0 = tt_now();
	TU_ASSERT_ERR(tt_select(nils, 2, tt_deadline_in(20 * TT_MILLISECOND)),
		      -ETIMEDOUT);
	TU_ASSERT_RANGE(tt_now() - t0, 20 * TT_MILLISECOND,
			20 * TT_MILLISECOND + TU_SLACK_NS);

	for (int i = 0; i < 3; i++)
		TU_ASSERT_OK(tt_chan_release(ready[i]));
	TU_ASSERT_OK(tt_chan_release(empty));
	TU_ASSERT_OK(tt_chan_release(full));
}

/* A closed channel's receive case is always ready (ok = false). */
static void test_select_closed_is_ready(void **state)
{
	(void)state;
	tt_chan *closed = tu_chan(sizeof(long), 0);
	tt_chan *idle = tu_chan(sizeof(long), 0);
	TU_ASSERT_OK(tt_chan_close(closed));
	long a = 3, b = 4;
	bool oka = true, okb = true;
	tt_case cases[2] = {TT_CASE_RECV_INTO(idle, &b, &okb),
			    TT_CASE_RECV_INTO(closed, &a, &oka)};
	for (int i = 0; i < 100; i++) {
		a = 3;
		oka = true;
		TU_ASSERT_EQ(tt_select(cases, 2, TT_TRY), 1);
		TU_ASSERT(!oka);
		TU_ASSERT_EQ(a, 0);
	}
	assert_int_equal(b, 4);
	assert_true(okb);
	TU_ASSERT_OK(tt_chan_release(closed));
	TU_ASSERT_OK(tt_chan_release(idle));
}

/* ---- default and deadlines ------------------------------------------------ */

static void test_select_try_and_deadline(void **state)
{
	(void)state;
	tt_chan *u = tu_chan(sizeof(int), 0);
	tt_chan *full = tu_chan(sizeof(int), 1);
	int v = 1, w = 2;
	TU_ASSERT_OK(tt_send(full, &v));
	tt_case cases[3] = {TT_CASE_RECV_INTO(u, &v, NULL),
			    TT_CASE_SEND_FROM(u, &w),
			    TT_CASE_SEND_FROM(full, &w)};
	/* Go's select with default: nothing ready. */
	v = 77;
	TU_ASSERT_ERR(tt_select(cases, 3, TT_TRY), -EAGAIN);
	assert_int_equal(v, 77);
	assert_int_equal(tt_chan_len(full), 1);

	const int64_t d = 30 * TT_MILLISECOND;
	int64_t t0 = tt_now();
	TU_ASSERT_ERR(tt_select(cases, 3, tt_deadline_in(d)), -ETIMEDOUT);
	TU_ASSERT_RANGE(tt_now() - t0, d, d + TU_SLACK_NS);
	assert_int_equal(v, 77);
	/* A past deadline (not TT_TRY) times out at once. */
	TU_ASSERT_ERR(tt_select(cases, 3, 1), -ETIMEDOUT);

	/* The timed-out select left no waiter behind: nothing is there to
	 * take a send on u or hand it a value. */
	TU_ASSERT_ERR(tt_chan_send_until(u, &w, sizeof w, TT_TRY), -EAGAIN);
	TU_ASSERT_ERR(tt_chan_recv_until(u, &w, sizeof w, NULL, TT_TRY),
		      -EAGAIN);
	/* ... and no timer that would cut a later wait short. */
	t0 = tt_now();
	TU_ASSERT_OK(tt_sleep(2 * d));
	TU_ASSERT_GE(tt_now() - t0, 2 * d);

	/* n == 0: default fires at once, a deadline times out. */
	TU_ASSERT_ERR(tt_select(NULL, 0, TT_TRY), -EAGAIN);
	TU_ASSERT_ERR(tt_select(cases, 0, TT_TRY), -EAGAIN);
	t0 = tt_now();
	TU_ASSERT_ERR(tt_select(NULL, 0, tt_deadline_in(d)), -ETIMEDOUT);
	TU_ASSERT_RANGE(tt_now() - t0, d, d + TU_SLACK_NS);

	TU_ASSERT_OK(tt_chan_release(u));
	TU_ASSERT_OK(tt_chan_release(full));
}

/* A select that sends and receives on the same unbuffered channel cannot
 * rendezvous with itself. */
static void test_select_same_channel_both_ways(void **state)
{
	(void)state;
	tt_chan *u = tu_chan(sizeof(int), 0);
	int in = 0, out = 5;
	tt_case cases[2] = {TT_CASE_SEND_FROM(u, &out),
			    TT_CASE_RECV_INTO(u, &in, NULL)};
	TU_ASSERT_ERR(tt_select(cases, 2, TT_TRY), -EAGAIN);
	TU_ASSERT_ERR(tt_select(cases, 2, tt_deadline_in(10 * TT_MILLISECOND)),
		      -ETIMEDOUT);
	assert_int_equal(in, 0);
	TU_ASSERT_OK(tt_chan_release(u));

	/* Buffered, empty: only the send is ready. */
	tt_chan *b = tu_chan(sizeof(int), 1);
	cases[0].chan = b;
	cases[1].chan = b;
	TU_ASSERT_EQ(tt_select(cases, 2, TT_TRY), 0);
	/* Now full: only the receive is. */
	TU_ASSERT_EQ(tt_select(cases, 2, TT_TRY), 1);
	assert_int_equal(in, 5);
	TU_ASSERT_OK(tt_chan_release(b));
}

/* ---- bad input ----------------------------------------------------------------- */

static void test_select_bad_input(void **state)
{
	(void)state;
	tt_chan *c = tu_chan(sizeof(int), 2);
	int v = 1;
	TU_ASSERT_OK(tt_send(c, &v));
	TU_ASSERT_OK(tt_send(c, &v));
	int got = 0;
	long lgot = 0;

	/* An unknown kind, next to a ready case: nothing is performed. */
	tt_case bad_kind[2] = {TT_CASE_RECV_INTO(c, &got, NULL),
			       TT_CASE_RECV_INTO(c, &got, NULL)};
	bad_kind[1].kind = 7;
	TU_ASSERT_ERR(tt_select(bad_kind, 2, TT_TRY), -EINVAL);
	assert_true(strlen(tt_last_error()) > 0);
	TU_ASSERT_ERR(tt_select(bad_kind, 2, TT_FOREVER), -EINVAL);
	bad_kind[1].kind = 0;
	TU_ASSERT_ERR(tt_select(bad_kind, 2, TT_FOREVER), -EINVAL);
	assert_int_equal(tt_chan_len(c), 2);
	assert_int_equal(got, 0);

	/* A wrong element size. */
	tt_case bad_size[2] = {TT_CASE_RECV_INTO(c, &got, NULL),
			       TT_CASE_RECV_INTO(c, &lgot, NULL)};
	TU_ASSERT_ERR(tt_select(bad_size, 2, TT_FOREVER), -EINVAL);
	TU_ASSERT_CONTAINS(tt_last_error(), "size");
	tt_case bad_send[1] = {TT_CASE_SEND_FROM(c, &lgot)};
	TU_ASSERT_ERR(tt_select(bad_send, 1, TT_TRY), -EINVAL);
	assert_int_equal(tt_chan_len(c), 2);
	assert_int_equal(got, 0);
	assert_int_equal(lgot, 0);

	/* A discarding receive case (elem NULL, size 0) is fine. */
	tt_case discard[1] = {TT_CASE_RECV_DISCARD(c, NULL)};
	TU_ASSERT_EQ(tt_select(discard, 1, TT_TRY), 0);
	assert_int_equal(tt_chan_len(c), 1);
	TU_ASSERT_OK(tt_chan_release(c));
}

/* ---- blocking select, woken by each kind of event --------------------------- */

typedef struct peer_arg {
	tt_chan *c;
	int value;
	int64_t delay; /* 0: just yield first */
	int done_flag;
	tt_chan *done;
} peer_arg;

static void peer_wait(peer_arg *a)
{
	if (a->delay > 0)
		TU_ASSERT_OK(tt_sleep(a->delay));
	else
		tt_yield();
}

static void peer_send(void *p)
{
	peer_arg *a = p;
	peer_wait(a);
	TU_ASSERT_OK(tt_send(a->c, &a->value));
	a->done_flag = 1;
	tu_done(a->done);
}

static void peer_recv(void *p)
{
	peer_arg *a = p;
	peer_wait(a);
	bool ok = false;
	TU_ASSERT_OK(tt_recv(a->c, &a->value, &ok));
	TU_ASSERT(ok);
	a->done_flag = 1;
	tu_done(a->done);
}

static void peer_close(void *p)
{
	peer_arg *a = p;
	peer_wait(a);
	TU_ASSERT_OK(tt_chan_close(a->c));
	a->done_flag = 1;
	tu_done(a->done);
}

static void test_select_woken_by_send(void **state)
{
	(void)state;
	tt_chan *a = tu_chan(sizeof(int), 0), *b = tu_chan(sizeof(int), 0);
	peer_arg p = {.c = b, .value = 42, .delay = 10 * TT_MILLISECOND,
		      .done = tu_chan(0, 1)};
	/* Before the peer starts: it runs at once and its 10 ms count from
	 * then. */
	int64_t t0 = tt_now();
	tu_go(peer_send, &p);
	int va = -1, vb = -1;
	bool oka = false, okb = false;
	tt_case cases[2] = {TT_CASE_RECV_INTO(a, &va, &oka),
			    TT_CASE_RECV_INTO(b, &vb, &okb)};
	TU_ASSERT_EQ(tt_select(cases, 2, TT_FOREVER), 1);
	TU_ASSERT_GE(tt_now() - t0, 10 * TT_MILLISECOND);
	assert_int_equal(vb, 42);
	assert_true(okb);
	assert_int_equal(va, -1);
	TU_WAIT_DONE(p.done, 1, 5 * TT_SECOND);
	assert_int_equal(p.done_flag, 1);

	/* The same with a deadline that is not reached. */
	p.value = 43;
	p.delay = 0;
	tu_go(peer_send, &p);
	TU_ASSERT_EQ(tt_select(cases, 2, tt_deadline_in(5 * TT_SECOND)), 1);
	assert_int_equal(vb, 43);
	TU_WAIT_DONE(p.done, 1, 5 * TT_SECOND);
	TU_ASSERT_OK(tt_chan_release(a));
	TU_ASSERT_OK(tt_chan_release(b));
	TU_ASSERT_OK(tt_chan_release(p.done));
}

static void test_select_woken_by_recv(void **state)
{
	(void)state;
	tt_chan *a = tu_chan(sizeof(int), 0), *b = tu_chan(sizeof(int), 0);
	peer_arg p = {.c = a, .value = -1, .done = tu_chan(0, 1)};
	tu_go(peer_recv, &p);
	int out = 1234, in = -1;
	tt_case cases[2] = {TT_CASE_RECV_INTO(b, &in, NULL),
			    TT_CASE_SEND_FROM(a, &out)};
	TU_ASSERT_EQ(tt_select(cases, 2, TT_FOREVER), 1);
	TU_WAIT_DONE(p.done, 1, 5 * TT_SECOND);
	assert_int_equal(p.value, 1234);
	assert_int_equal(in, -1);
	TU_ASSERT_OK(tt_chan_release(a));
	TU_ASSERT_OK(tt_chan_release(b));
	TU_ASSERT_OK(tt_chan_release(p.done));
}

static void test_select_woken_by_close(void **state)
{
	(void)state;
	tt_chan *a = tu_chan(sizeof(long), 0), *b = tu_chan(sizeof(long), 0);
	peer_arg p = {.c = a, .done = tu_chan(0, 1)};
	tu_go(peer_close, &p);
	long va = 0x5555, vb = 0x6666;
	bool oka = true, okb = true;
	tt_case cases[2] = {TT_CASE_RECV_INTO(b, &vb, &okb),
			    TT_CASE_RECV_INTO(a, &va, &oka)};
	TU_ASSERT_EQ(tt_select(cases, 2, TT_FOREVER), 1);
	assert_false(oka);
	assert_int_equal(va, 0); /* the zero value */
	assert_int_equal(vb, 0x6666);
	assert_true(okb);
	TU_WAIT_DONE(p.done, 1, 5 * TT_SECOND);
	TU_ASSERT_OK(tt_chan_release(a));
	TU_ASSERT_OK(tt_chan_release(b));
	TU_ASSERT_OK(tt_chan_release(p.done));
}

/* Send and receive cases mixed, nothing ready at first. */
static void test_select_mixed_blocking(void **state)
{
	(void)state;
	tt_chan *full = tu_chan(sizeof(int), 1);
	tt_chan *empty = tu_chan(sizeof(int), 1);
	tt_chan *u = tu_chan(sizeof(int), 0);
	int one = 1;
	TU_ASSERT_OK(tt_send(full, &one));
	int sv = 10, rv = -1;
	tt_case cases[3] = {TT_CASE_SEND_FROM(full, &sv),
			    TT_CASE_RECV_INTO(empty, &rv, NULL),
			    TT_CASE_SEND_FROM(u, &sv)};
	TU_ASSERT_ERR(tt_select(cases, 3, TT_TRY), -EAGAIN);

	/* Room appears in `full`: the send case proceeds. */
	peer_arg p = {.c = full, .done = tu_chan(0, 1)};
	tu_go(peer_recv, &p);
	TU_ASSERT_EQ(tt_select(cases, 3, TT_FOREVER), 0);
	TU_WAIT_DONE(p.done, 1, 5 * TT_SECOND);
	assert_int_equal(p.value, 1);          /* it took the old value */
	assert_int_equal(tt_chan_len(full), 1); /* and ours went in */
	int v = 0;
	TU_ASSERT_OK(tt_recv(full, &v, NULL));
	assert_int_equal(v, 10);
	TU_ASSERT_OK(tt_send(full, &one));

	/* A value arrives in `empty`. */
	peer_arg q = {.c = empty, .value = 20, .done = p.done};
	tu_go(peer_send, &q);
	TU_ASSERT_EQ(tt_select(cases, 3, TT_FOREVER), 1);
	assert_int_equal(rv, 20);
	TU_WAIT_DONE(p.done, 1, 5 * TT_SECOND);

	/* A receiver comes to `u`. */
	peer_arg r = {.c = u, .value = -1, .done = p.done};
	sv = 30;
	tu_go(peer_recv, &r);
	TU_ASSERT_EQ(tt_select(cases, 3, TT_FOREVER), 2);
	TU_WAIT_DONE(p.done, 1, 5 * TT_SECOND);
	assert_int_equal(r.value, 30);
	assert_int_equal(tt_chan_len(full), 1);
	assert_int_equal(tt_chan_len(empty), 0);

	TU_ASSERT_OK(tt_chan_release(full));
	TU_ASSERT_OK(tt_chan_release(empty));
	TU_ASSERT_OK(tt_chan_release(u));
	TU_ASSERT_OK(tt_chan_release(p.done));
}

/* ---- a woken select leaves the other queues -------------------------------------- */

typedef struct sel_arg {
	tt_chan *c[3];
	int vals[3];
	int fired;
	int runs;
	tt_chan *done;
} sel_arg;

static void select_recv3(void *p)
{
	sel_arg *a = p;
	tt_case cases[3];
	for (int i = 0; i < 3; i++) {
		a->vals[i] = -1;
		cases[i] = TT_CASE_RECV_INTO(a->c[i], &a->vals[i], NULL);
	}
	a->fired = tt_select(cases, 3, TT_FOREVER);
	a->runs++;
	tu_done(a->done);
}

static void select_send3(void *p)
{
	sel_arg *a = p;
	tt_case cases[3];
	for (int i = 0; i < 3; i++) {
		a->vals[i] = 100 + i;
		cases[i] = TT_CASE_SEND_FROM(a->c[i], &a->vals[i]);
	}
	a->fired = tt_select(cases, 3, TT_FOREVER);
	a->runs++;
	tu_done(a->done);
}

static void test_select_waiter_removed_from_other_queues(void **state)
{
	(void)state;
	sel_arg a;
	memset(&a, 0, sizeof a);
	for (int i = 0; i < 3; i++)
		a.c[i] = tu_chan(sizeof(int), 0);
	a.done = tu_chan(0, 4);

	/* Receive cases: woken by a send on c[1]. */
	tu_go(select_recv3, &a);
	for (int i = 0; i < 3; i++) /* parked in select */
		TU_WAIT_QUEUED(a.c[i], false, 1);
	assert_int_equal(a.runs, 0);
	int v = 11;
	TU_ASSERT_OK(tt_chan_send_until(a.c[1], &v, sizeof v, TT_TRY));
	/* Before it even runs, it is gone from c[0] and c[2]. */
	TU_ASSERT_ERR(tt_chan_send_until(a.c[0], &v, sizeof v, TT_TRY),
		      -EAGAIN);
	TU_ASSERT_ERR(tt_chan_send_until(a.c[2], &v, sizeof v, TT_TRY),
		      -EAGAIN);
	TU_WAIT_DONE(a.done, 1, 5 * TT_SECOND);
	assert_int_equal(a.fired, 1);
	assert_int_equal(a.vals[1], 11);
	assert_int_equal(a.vals[0], -1);
	assert_int_equal(a.vals[2], -1);
	/* Closing the others later does not touch it either. */
	TU_ASSERT_OK(tt_chan_close(a.c[0]));
	assert_int_equal(a.runs, 1);
	assert_int_equal(a.vals[0], -1);

	/* A later receiver on c[2] gets the next value there, not the
	 * finished select. */
	peer_arg p = {.c = a.c[2], .value = -1, .done = a.done};
	tu_go(peer_recv, &p);
	v = 12;
	TU_ASSERT_OK(tt_send(a.c[2], &v));
	TU_WAIT_DONE(a.done, 1, 5 * TT_SECOND);
	assert_int_equal(p.value, 12);
	assert_int_equal(a.vals[2], -1);

	/* Send cases: woken by a receive on c[2]. */
	TU_ASSERT_OK(tt_chan_release(a.c[0]));
	a.c[0] = tu_chan(sizeof(int), 0);
	a.runs = 0;
	tu_go(select_send3, &a);
	for (int i = 0; i < 3; i++)
		TU_WAIT_QUEUED(a.c[i], true, 1);
	assert_int_equal(a.runs, 0);
	int got = -1;
	TU_ASSERT_OK(tt_chan_recv_until(a.c[2], &got, sizeof got, NULL,
					TT_TRY));
	assert_int_equal(got, 102);
	TU_ASSERT_ERR(tt_chan_recv_until(a.c[0], &got, sizeof got, NULL,
					 TT_TRY),
		      -EAGAIN);
	TU_ASSERT_ERR(tt_chan_recv_until(a.c[1], &got, sizeof got, NULL,
					 TT_TRY),
		      -EAGAIN);
	TU_WAIT_DONE(a.done, 1, 5 * TT_SECOND);
	assert_int_equal(a.fired, 2);

	for (int i = 0; i < 3; i++)
		TU_ASSERT_OK(tt_chan_release(a.c[i]));
	TU_ASSERT_OK(tt_chan_release(a.done));
}

/* Many selecting goroutines on shared channels: every value reaches
 * exactly one of them, each select completes exactly one case. */
typedef struct fan_state {
	tt_chan *c[2];
	long sum;
	long count;
	tt_chan *done;
} fan_state;

static void fan_worker(void *p)
{
	fan_state *st = p;
	int v[2];
	bool ok[2];
	tt_case cases[2] = {TT_CASE_RECV_INTO(st->c[0], &v[0], &ok[0]),
			    TT_CASE_RECV_INTO(st->c[1], &v[1], &ok[1])};
	int open = 2;
	while (open > 0) {
		int r = tt_select(cases, 2, TT_FOREVER);
		TU_ASSERT_RANGE(r, 0, 1);
		if (!ok[r]) {
			cases[r].chan = NULL; /* Go's idiom: nil it out */
			open--;
			continue;
		}
		/* Shared by all the workers, whose receives (on either
		 * channel) do not order them: atomic. The test reads the
		 * totals after every tu_done. */
		__atomic_fetch_add(&st->sum, v[r], __ATOMIC_RELAXED);
		__atomic_fetch_add(&st->count, 1, __ATOMIC_RELAXED);
	}
	tu_done(st->done);
}

static void test_select_fan_in(void **state)
{
	(void)state;
	enum { W = 20, N = TU_SCALE(20000, 5000) };
	fan_state st = {.c = {tu_chan(sizeof(int), 0), tu_chan(sizeof(int), 3)},
			.done = tu_chan(0, W)};
	for (int i = 0; i < W; i++)
		tu_go(fan_worker, &st);
	long want = 0;
	uint64_t rng = tu_seed("select fan-in");
	for (int i = 1; i <= N; i++) {
		TU_ASSERT_OK(tt_send(st.c[tu_rand_n(&rng, 2)], &i));
		want += i;
	}
	TU_ASSERT_OK(tt_chan_close(st.c[0]));
	TU_ASSERT_OK(tt_chan_close(st.c[1]));
	TU_WAIT_DONE(st.done, W, 30 * TT_SECOND);
	assert_int_equal(st.count, N);
	assert_int_equal(st.sum, want);
	TU_ASSERT_OK(tt_chan_release(st.c[0]));
	TU_ASSERT_OK(tt_chan_release(st.c[1]));
	TU_ASSERT_OK(tt_chan_release(st.done));
}

/* More cases than fit in a small fixed array. */
static void test_select_many_cases(void **state)
{
	(void)state;
	enum { K = 100 };
	tt_chan *c[K];
	int vals[K];
	tt_case cases[K];
	for (int i = 0; i < K; i++) {
		c[i] = tu_chan(sizeof(int), 0);
		vals[i] = -1;
		cases[i] = TT_CASE_RECV_INTO(c[i], &vals[i], NULL);
	}
	TU_ASSERT_ERR(tt_select(cases, K, TT_TRY), -EAGAIN);
	peer_arg p = {.c = c[73], .value = 73, .delay = 5 * TT_MILLISECOND,
		      .done = tu_chan(0, 1)};
	tu_go(peer_send, &p);
	TU_ASSERT_EQ(tt_select(cases, K, tt_deadline_in(5 * TT_SECOND)), 73);
	assert_int_equal(vals[73], 73);
	TU_WAIT_DONE(p.done, 1, 5 * TT_SECOND);
	/* No waiter of it remains on any of the channels. */
	int v = 0;
	for (int i = 0; i < K; i++)
		TU_ASSERT_ERR(tt_chan_send_until(c[i], &v, sizeof v, TT_TRY),
			      -EAGAIN);
	for (int i = 0; i < K; i++)
		TU_ASSERT_OK(tt_chan_release(c[i]));
	TU_ASSERT_OK(tt_chan_release(p.done));
}

/* ---- which of a parked select's cases on one channel is woken -------------- */

/* Yield until h's queue of senders (or receivers) holds n: as
 * TU_WAIT_QUEUED, without its sleep, for a wait in each of thousands of
 * rounds. With one P the other goroutine runs at the first yield. */
static void spin_queued(tt_chan *h, bool senders, int n)
{
	int64_t dl = tt_deadline_in(5 * TT_SECOND);
	while (tu_chan_queued(h, senders) < n) {
		TU_ASSERT_MSG(tt_now() <= dl, "timed out waiting for %d %s", n,
			      senders ? "senders" : "receivers");
		tt_yield();
	}
}

typedef struct rand_send_arg {
	tt_chan *c;
	int n;
	tt_chan *done;
} rand_send_arg;

/* n selects, each with two send cases on the same channel, sending 1 and
 * 0. */
static void rand_sender(void *p)
{
	rand_send_arg *a = p;
	int one = 1, zero = 0;
	for (int i = 0; i < a->n; i++) {
		tt_case cases[2] = {TT_CASE_SEND_FROM(a->c, &one),
				    TT_CASE_SEND_FROM(a->c, &zero)};
		int r = tt_select(cases, 2, TT_FOREVER);
		TU_ASSERT_RANGE(r, 0, 1);
	}
	tu_done(a->done);
}

/* After Go's TestPseudoRandomSend. Unbuffered, the sender is parked on
 * both cases each time the receiver comes (it yields first): the case
 * woken must be a random one, not the first queued. Buffered, both cases
 * are ready at once. Either way both values must turn up. */
static void test_select_pseudo_random_send(void **state)
{
	(void)state;
	enum { N = 1000 };
	for (int cap = 0; cap <= N; cap += N) {
		rand_send_arg a = {.c = tu_chan(sizeof(int), cap), .n = N,
				   .done = tu_chan(0, 1)};
		tu_go(rand_sender, &a);
		int n0 = 0, n1 = 0;
		for (int i = 0; i < N; i++) {
			tt_yield();
			if (cap == 0) /* parked on both cases */
				spin_queued(a.c, true, 2);
			int v = -1;
			TU_ASSERT_OK(tt_recv(a.c, &v, NULL));
			TU_ASSERT_RANGE(v, 0, 1);
			n0 += v == 0;
			n1 += v == 1;
		}
		TU_WAIT_DONE(a.done, 1, 5 * TT_SECOND);
		print_message("pseudo-random send (cap %d): %d zeros, %d ones\n",
			      cap, n0, n1);
		TU_ASSERT_GT(n0, N / 10);
		TU_ASSERT_GT(n1, N / 10);
		TU_ASSERT_OK(tt_chan_release(a.c));
		TU_ASSERT_OK(tt_chan_release(a.done));
	}
}

typedef struct rand_recv_arg {
	tt_chan *c, *other;
	int n;
	long counts[3];
	tt_chan *done;
} rand_recv_arg;

/* n selects over five cases, three of them receives on c at uneven
 * places (0, 1 and 3: a rotated queueing order would favour case 0). */
static void rand_receiver(void *p)
{
	rand_recv_arg *a = p;
	int v[5];
	for (int i = 0; i < a->n; i++) {
		tt_case cases[5] = {TT_CASE_RECV_INTO(a->c, &v[0], NULL),
				    TT_CASE_RECV_INTO(a->c, &v[1], NULL),
				    TT_CASE_RECV_INTO(a->other, &v[2], NULL),
				    TT_CASE_RECV_INTO(a->c, &v[3], NULL),
				    TT_CASE_RECV_INTO(a->other, &v[4], NULL)};
		int r = tt_select(cases, 5, TT_FOREVER);
		TU_ASSERT(r == 0 || r == 1 || r == 3);
		TU_ASSERT_EQ(v[r], i);
		a->counts[r == 3 ? 2 : r]++;
	}
	tu_done(a->done);
}

/* A parked select with three receive cases on one channel is woken on
 * each of them equally often. */
static void test_select_parked_same_channel_uniform(void **state)
{
	(void)state;
	enum { N = 30000 };
	rand_recv_arg a = {.c = tu_chan(sizeof(int), 0),
			   .other = tu_chan(sizeof(int), 0), .n = N,
			   .done = tu_chan(0, 1)};
	tu_go(rand_receiver, &a);
	for (int i = 0; i < N; i++) {
		spin_queued(a.c, false, 3); /* the receiver parks */
		TU_ASSERT_OK(tt_send(a.c, &i));
	}
	TU_WAIT_DONE(a.done, 1, 5 * TT_SECOND);
	double chi = chi_square(a.counts, 3, N);
	print_message("parked same channel: %ld %ld %ld, chi-square %.2f\n",
		      a.counts[0], a.counts[1], a.counts[2], chi);
	assert_true(chi < CHI2_BOUND_2DF);
	TU_ASSERT_OK(tt_chan_release(a.c));
	TU_ASSERT_OK(tt_chan_release(a.other));
	TU_ASSERT_OK(tt_chan_release(a.done));
}

/* ---- one-case selects ---------------------------------------------------- */

/* A goroutine that parks in a select of one case (a copy of k), with a
 * deadline; it records its record, the result and what it saw. g and ran
 * are atomic: the test reads them while the goroutine runs or is parked,
 * on this thread or (with more than one P) on another; r is read after
 * tu_done. */
typedef struct one_arg {
	tt_case k;
	int64_t deadline;
	tt__g *g;
	int r;
	bool ran;
	tt_chan *done;
} one_arg;

static void one_case_waiter(void *p)
{
	one_arg *a = p;
	__atomic_store_n(&a->g, tt__current(), __ATOMIC_RELEASE);
	tt_case k[1] = {a->k};
	a->r = tt_select(k, 1, a->deadline);
	__atomic_store_n(&a->ran, true, __ATOMIC_RELEASE);
	tu_done(a->done);
}

static tt__g *one_g(const one_arg *a)
{
	return __atomic_load_n(&a->g, __ATOMIC_ACQUIRE);
}

static bool one_ran(const one_arg *a)
{
	return __atomic_load_n(&a->ran, __ATOMIC_ACQUIRE);
}

/* Whether it is parked: in its channel's queue (if it has one), and
 * switched away. */
static bool one_parked(const one_arg *a)
{
	const tt__g *g = one_g(a);
	if (g == NULL)
		return false;
	if (a->k.chan &&
	    tu_chan_queued(a->k.chan, a->k.kind == TT_CASE_SEND) == 0)
		return false;
	return __atomic_load_n(&g->state, __ATOMIC_ACQUIRE) == TT_G_WAITING;
}

/* Parked in its one-case select: wait reason "select", one waiter. With
 * one P it is parked when tt_go returns; with more it may run on another
 * thread, so wait for it to park. One with a short deadline
 * (may_time_out) may then already have timed out: what its record said
 * is checked only if it had not when the record was read. */
static void assert_parked_in_select(const one_arg *a, bool may_time_out)
{
	TU_WAIT_FOR(one_parked(a) || (may_time_out && one_ran(a)),
		    5 * TT_SECOND);
	const tt__g *g = one_g(a);
	int st = __atomic_load_n(&g->state, __ATOMIC_ACQUIRE);
	int reason = __atomic_load_n(&g->reason, __ATOMIC_ACQUIRE);
	long n = (long)__atomic_load_n(&g->wait_n, __ATOMIC_ACQUIRE);
	if (may_time_out && one_ran(a))
		return;
	TU_ASSERT(!one_ran(a));
	TU_ASSERT_EQ(st, TT_G_WAITING);
	TU_ASSERT_EQ(reason, TT_WAIT_SELECT);
	TU_ASSERT_EQ(n, 1);
}

/* A select of one case blocks, wakes and times out exactly as a select
 * of several does, on every kind of wake-up: a sender, a receiver (which
 * gets the value the send started with), a close, a deadline (after
 * which no waiter is left behind), a nil channel, and on a shared-stack
 * goroutine. */
static void test_select_one_case(void **state)
{
	(void)state;
	tt_chan *c = tu_chan(sizeof(int), 0);
	tt_chan *done = tu_chan(0, 4);
	int v = -1;
	bool ok = false;

	/* Receive, woken by a send. */
	one_arg a = {.k = TT_CASE_RECV_INTO(c, &v, &ok),
		     .deadline = TT_FOREVER, .done = done};
	tu_go(one_case_waiter, &a);
	assert_parked_in_select(&a, false);
	int x = 7;
	TU_ASSERT_OK(tt_send(c, &x));
	TU_WAIT_DONE(done, 1, 5 * TT_SECOND);
	TU_ASSERT_EQ(a.r, 0);
	TU_ASSERT_EQ(v, 7);
	TU_ASSERT(ok);

	/* Receive with a deadline not reached, woken by a send. */
	a = (one_arg){.k = TT_CASE_RECV_INTO(c, &v, &ok),
		      .deadline = tt_deadline_in(5 * TT_SECOND), .done = done};
	tu_go(one_case_waiter, &a);
	assert_parked_in_select(&a, false);
	x = 8;
	TU_ASSERT_OK(tt_send(c, &x));
	TU_WAIT_DONE(done, 1, 5 * TT_SECOND);
	TU_ASSERT_EQ(a.r, 0);
	TU_ASSERT_EQ(v, 8);

	/* Send, woken by a receiver: the value at the start of the send. */
	int out = 1234;
	a = (one_arg){.k = TT_CASE_SEND_FROM(c, &out), .deadline = TT_FOREVER,
		      .done = done};
	tu_go(one_case_waiter, &a);
	assert_parked_in_select(&a, false);
	out = 99;
	int in = -1;
	TU_ASSERT_OK(tt_recv(c, &in, &ok));
	TU_ASSERT_EQ(in, 1234);
	TU_WAIT_DONE(done, 1, 5 * TT_SECOND);
	TU_ASSERT_EQ(a.r, 0);

	/* A deadline: -ETIMEDOUT, and its waiter is gone from the channel
	 * (a send finds no receiver). */
	a = (one_arg){.k = TT_CASE_RECV_INTO(c, &v, &ok),
		      .deadline = tt_deadline_in(5 * TT_MILLISECOND),
		      .done = done};
	tu_go(one_case_waiter, &a);
	assert_parked_in_select(&a, true);
	TU_WAIT_DONE(done, 1, 5 * TT_SECOND);
	TU_ASSERT_EQ(a.r, -ETIMEDOUT);
	TU_ASSERT_ERR(tt_chan_send_until(c, &x, sizeof x, TT_TRY), -EAGAIN);

	/* A nil channel: only the deadline ends it. */
	a = (one_arg){.k = TT_CASE_RECV_INTO(NULL, &v, &ok),
		      .deadline = tt_deadline_in(5 * TT_MILLISECOND),
		      .done = done};
	tu_go(one_case_waiter, &a);
	assert_parked_in_select(&a, true);
	TU_WAIT_DONE(done, 1, 5 * TT_SECOND);
	TU_ASSERT_EQ(a.r, -ETIMEDOUT);

	/* A shared-stack goroutine, woken by a send. */
	tt_go_attr attr = {.shared_stack = true};
	a = (one_arg){.k = TT_CASE_RECV_INTO(c, &v, &ok),
		      .deadline = TT_FOREVER, .done = done};
	tu_go_with(&attr, one_case_waiter, &a);
	assert_parked_in_select(&a, false);
	x = 10;
	TU_ASSERT_OK(tt_send(c, &x));
	TU_WAIT_DONE(done, 1, 5 * TT_SECOND);
	TU_ASSERT_EQ(a.r, 0);
	TU_ASSERT_EQ(v, 10);

	/* Receive, woken by a close: the zero value, ok false. */
	v = 55;
	ok = true;
	a = (one_arg){.k = TT_CASE_RECV_INTO(c, &v, &ok),
		      .deadline = TT_FOREVER, .done = done};
	tu_go(one_case_waiter, &a);
	assert_parked_in_select(&a, false);
	TU_ASSERT_OK(tt_chan_close(c));
	TU_WAIT_DONE(done, 1, 5 * TT_SECOND);
	TU_ASSERT_EQ(a.r, 0);
	TU_ASSERT_EQ(v, 0);
	TU_ASSERT(!ok);

	TU_ASSERT_OK(tt_chan_release(c));
	TU_ASSERT_OK(tt_chan_release(done));
}

static void recv_waiter(void *p)
{
	one_arg *a = p;
	__atomic_store_n(&a->g, tt__current(), __ATOMIC_RELEASE);
	int v;
	a->r = tt_chan_recv(a->k.chan, &v, sizeof v, NULL);
	__atomic_store_n(&a->ran, true, __ATOMIC_RELEASE);
	tu_done(a->done);
}

/* A goroutine parked in a select of one case resumes through no more
 * stack than one parked in a plain receive (at most a cache line more).
 * Each line between a parked goroutine's saved stack pointer and its
 * record is a miss when it resumes after a long park: 100,000 goroutines
 * woken by one context's cancel pay it each. (A select's general path,
 * with its array of waiters, left 848 bytes there against the receive's
 * 384 on x86-64.) */
static void test_select_one_case_resumes_shallow(void **state)
{
	(void)state;
	/* It reads parked goroutines' saved stack pointers, which only
	 * their own thread writes as it switches away: one scheduler's. */
	tu_one_p();
	tt_chan *c = tu_chan(sizeof(int), 0);
	tt_chan *done = tu_chan(0, 2);
	one_arg sel = {.k = TT_CASE_RECV_DISCARD(c, NULL),
		       .deadline = TT_FOREVER, .done = done};
	one_arg rcv = {.k = TT_CASE_RECV_DISCARD(c, NULL), .done = done};
	tu_go(one_case_waiter, &sel);
	tu_go(recv_waiter, &rcv);
	assert_parked_in_select(&sel, false);
	tt__g *sel_g = one_g(&sel), *rcv_g = one_g(&rcv);
	TU_ASSERT_EQ(rcv_g->state, TT_G_WAITING);
	ptrdiff_t sel_depth = sel_g->stack_hi - (char *)sel_g->sp;
	ptrdiff_t rcv_depth = rcv_g->stack_hi - (char *)rcv_g->sp;
	print_message("parked depth: one-case select %td bytes, receive %td\n",
		      sel_depth, rcv_depth);
	TU_ASSERT_GT(rcv_depth, 0);
	/* A line; two under ASan, whose frames hold more spills (clang
	 * keeps eight slots in tt_select's frame there, against six in the
	 * receive's: 560 against 480 bytes, where gcc's optimised build
	 * gives 304 against 256). */
	TU_ASSERT_LE(sel_depth, rcv_depth + TU_SCALE(64, 128));
	TU_ASSERT_OK(tt_chan_close(c));
	TU_WAIT_DONE(done, 2, 5 * TT_SECOND);
	TU_ASSERT_OK(tt_chan_release(c));
	TU_ASSERT_OK(tt_chan_release(done));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		TU_TEST(test_select_uniform_recv),
		TU_TEST(test_select_uniform_mixed),
		TU_TEST(test_select_nil_and_unready_never_chosen),
		TU_TEST(test_select_closed_is_ready),
		TU_TEST(test_select_try_and_deadline),
		TU_TEST(test_select_same_channel_both_ways),
		TU_TEST(test_select_bad_input),
		TU_TEST(test_select_woken_by_send),
		TU_TEST(test_select_woken_by_recv),
		TU_TEST(test_select_woken_by_close),
		TU_TEST(test_select_mixed_blocking),
		TU_TEST(test_select_waiter_removed_from_other_queues),
		TU_TEST(test_select_fan_in),
		TU_TEST(test_select_many_cases),
		TU_TEST(test_select_pseudo_random_send),
		TU_TEST(test_select_parked_same_channel_uniform),
		TU_TEST(test_select_one_case),
		TU_TEST(test_select_one_case_resumes_shallow),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
