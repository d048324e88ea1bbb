/* tether tests — randomized stress of channels, select, deadlines, timers
 * and close, checked by conservation.
 *
 * A pipeline of goroutines on shared channels:
 *
 *   producers --(A[0..NA), mixed capacities)--> relays
 *             --(B[0..NB), mixed capacities)--> consumers
 *
 * Producers send unique values using every kind of send (plain, with a
 * deadline, TT_TRY, select over all A channels, select against a fresh
 * tt_after); relays receive with select (closed channels nil'd out, Go's
 * idiom) and forward; consumers receive likewise, with deadlines, TT_TRY
 * polling and discarding none. The last producer closes every A channel
 * while relays are parked on them, the last relay every B channel while
 * consumers are parked: close races with parked selects all the time.
 *
 * Checked: every value sent was received exactly once (a per-value count,
 * plus count and sum), nothing else was received, every goroutine
 * finished, and the goroutine count came back. Bounded in iterations
 * (a quota per producer) and in wall time (producers stop after
 * STRESS_SECONDS; the rest drains). */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "testutil.h"

#define NA 4
#define NB 3
#define NP 16
#define NR 8
#define NC 8
#define QUOTA TU_SCALE(20000, 3000)
#define STRESS_SECONDS 5

static const ptrdiff_t a_caps[NA] = {0, 1, 4, 16};
static const ptrdiff_t b_caps[NB] = {0, 2, 8};

typedef struct stress {
	uint64_t seed;
	int64_t stop_at; /* producers send nothing new after this */
	tt_chan *a[NA], *b[NB];
	int producers_left, relays_left;
	tt_chan *done;

	/* Accounting. Switching goroutines does not synchronise them (Go's
	 * memory model; TSan builds check it, and goroutines may run on
	 * several threads later), so every field that several goroutines
	 * update is updated with __atomic builtins. Relaxed is enough for
	 * the counters: stress_run reads them only after every goroutine
	 * sent on `done`, which orders their writes before its reads. The
	 * countdowns are acq_rel so the last goroutine sees everything the
	 * others did before they counted down. sent[v] has one writer, the
	 * producer of v; seen[v] is atomic so that a value received twice
	 * shows up as a duplicate rather than as a race. */
	unsigned char *sent;  /* per value: 1 once its send succeeded */
	unsigned char *seen;  /* per value: times received */
	long nvalues;
	long sent_count, recv_count;
	uint64_t sent_sum, recv_sum;
	long bad_values;      /* received values out of range */
	long timeouts;        /* sends/receives that timed out (not errors) */
	long closes_seen;
	bool stopped_by_time;
} stress;

typedef struct worker {
	stress *st;
	int id;
	uint64_t rng;
} worker;

static int64_t small_deadline(uint64_t *rng)
{
	switch (tu_rand_n(rng, 4)) {
	case 0:
		return TT_TRY;
	case 1:
		return tt_deadline_in((int64_t)tu_rand_n(rng, 50) *
				      TT_MICROSECOND);
	case 2:
		return tt_deadline_in((int64_t)tu_rand_n(rng, 2000) *
				      TT_MICROSECOND);
	default:
		return TT_FOREVER;
	}
}

static bool retryable(int r)
{
	return r == -EAGAIN || r == -ETIMEDOUT;
}

/* ---- producers ------------------------------------------------------------ */

static int send_one(worker *w, int64_t v)
{
	stress *st = w->st;
	uint64_t *rng = &w->rng;
	switch (tu_rand_n(rng, 5)) {
	case 0:
		return tt_send(st->a[tu_rand_n(rng, NA)], &v);
	case 1:
		return tt_chan_send_until(st->a[tu_rand_n(rng, NA)], &v,
					  sizeof v, small_deadline(rng));
	case 2: {
		tt_case cases[NA];
		for (int i = 0; i < NA; i++)
			cases[i] = TT_CASE_SEND_FROM(st->a[i], &v);
		int r = tt_select(cases, NA, small_deadline(rng));
		return r >= 0 ? 0 : r;
	}
	case 3: {
		/* Against a timer channel, released every time. */
		tt_chan *after = NULL;
		TU_ASSERT_OK(tt_after(&after, (int64_t)tu_rand_n(rng, 300) *
						      TT_MICROSECOND));
		int64_t when = 0;
		tt_case cases[NA + 1];
		for (int i = 0; i < NA; i++)
			cases[i] = TT_CASE_SEND_FROM(st->a[i], &v);
		cases[NA] = TT_CASE_RECV_INTO(after, &when, NULL);
		int r = tt_select(cases, NA + 1, TT_FOREVER);
		TU_ASSERT_OK(tt_chan_release(after));
		TU_ASSERT_RANGE(r, 0, NA);
		if (r == NA) {
			TU_ASSERT_GT(when, 0);
			return -ETIMEDOUT;
		}
		return 0;
	}
	default: {
		/* With a nil case and a case that is never ready. */
		tt_case cases[3] = {
			TT_CASE_SEND_FROM((tt_chan *)NULL, &v),
			TT_CASE_SEND_FROM(st->a[tu_rand_n(rng, NA)], &v),
			TT_CASE_RECV_INTO((tt_chan *)NULL, &v, NULL),
		};
		int r = tt_select(cases, 3, small_deadline(rng));
		if (r >= 0)
			TU_ASSERT_EQ(r, 1);
		return r >= 0 ? 0 : r;
	}
	}
}

static void producer(void *p)
{
	worker *w = p;
	stress *st = w->st;
	for (long seq = 0; seq < QUOTA; seq++) {
		if (tt_now() > st->stop_at) {
			__atomic_store_n(&st->stopped_by_time, true,
					 __ATOMIC_RELAXED);
			break;
		}
		int64_t v = (int64_t)w->id * QUOTA + seq + 1; /* never 0 */
		int r;
		while ((r = send_one(w, v)) != 0) {
			TU_ASSERT_MSG(retryable(r), "send failed: %d (%s): %s",
				      r, tu_errname(r), tt_last_error());
			__atomic_fetch_add(&st->timeouts, 1, __ATOMIC_RELAXED);
			if (tu_rand_n(&w->rng, 8) == 0)
				tt_yield();
		}
		st->sent[v]++;
		__atomic_fetch_add(&st->sent_count, 1, __ATOMIC_RELAXED);
		__atomic_fetch_add(&st->sent_sum, (uint64_t)v,
				   __ATOMIC_RELAXED);
		if (tu_rand_n(&w->rng, 64) == 0)
			TU_ASSERT_OK(tt_sleep((int64_t)tu_rand_n(&w->rng, 200) *
					      TT_MICROSECOND));
	}
	if (__atomic_sub_fetch(&st->producers_left, 1, __ATOMIC_ACQ_REL) == 0)
		for (int i = 0; i < NA; i++)
			TU_ASSERT_OK(tt_chan_close(st->a[i]));
	tu_done(st->done);
}

/* ---- relays -------------------------------------------------------------------- */

static void relay(void *p)
{
	worker *w = p;
	stress *st = w->st;
	tt_case in[NA];
	int64_t v = 0;
	bool ok = false;
	for (int i = 0; i < NA; i++)
		in[i] = TT_CASE_RECV_INTO(st->a[i], &v, &ok);
	int open = NA;
	while (open > 0) {
		int r = tt_select(in, NA, small_deadline(&w->rng));
		if (retryable(r)) {
			__atomic_fetch_add(&st->timeouts, 1, __ATOMIC_RELAXED);
			continue;
		}
		TU_ASSERT_RANGE(r, 0, NA - 1);
		if (!ok) {
			TU_ASSERT_EQ(v, 0);
			in[r].chan = NULL;
			open--;
			__atomic_fetch_add(&st->closes_seen, 1,
					   __ATOMIC_RELAXED);
			continue;
		}
		/* Forward it, by select or by a plain send. */
		int64_t out = v;
		for (;;) {
			int s;
			if (tu_rand_n(&w->rng, 3) == 0) {
				s = tt_chan_send_until(st->b[tu_rand_n(&w->rng,
								       NB)],
						       &out, sizeof out,
						       small_deadline(&w->rng));
			} else {
				tt_case oc[NB];
				for (int i = 0; i < NB; i++)
					oc[i] = TT_CASE_SEND_FROM(st->b[i],
								  &out);
				s = tt_select(oc, NB, small_deadline(&w->rng));
				if (s >= 0)
					s = 0;
			}
			if (s == 0)
				break;
			TU_ASSERT_MSG(retryable(s), "forward failed: %d (%s)",
				      s, tu_errname(s));
			__atomic_fetch_add(&st->timeouts, 1, __ATOMIC_RELAXED);
		}
	}
	if (__atomic_sub_fetch(&st->relays_left, 1, __ATOMIC_ACQ_REL) == 0)
		for (int i = 0; i < NB; i++)
			TU_ASSERT_OK(tt_chan_close(st->b[i]));
	tu_done(st->done);
}

/* ---- consumers ------------------------------------------------------------------- */

static void take(stress *st, int64_t v)
{
	if (v < 1 || v > st->nvalues) {
		__atomic_fetch_add(&st->bad_values, 1, __ATOMIC_RELAXED);
		return;
	}
	/* Saturating, so 256 receipts do not wrap to none. */
	unsigned char n = __atomic_load_n(&st->seen[v], __ATOMIC_RELAXED);
	while (n < 255 && !__atomic_compare_exchange_n(&st->seen[v], &n,
						       (unsigned char)(n + 1),
						       true, __ATOMIC_RELAXED,
						       __ATOMIC_RELAXED))
		;
	__atomic_fetch_add(&st->recv_count, 1, __ATOMIC_RELAXED);
	__atomic_fetch_add(&st->recv_sum, (uint64_t)v, __ATOMIC_RELAXED);
}

static void consumer(void *p)
{
	worker *w = p;
	stress *st = w->st;
	tt_case in[NB];
	int64_t v = 0;
	bool ok = false;
	for (int i = 0; i < NB; i++)
		in[i] = TT_CASE_RECV_INTO(st->b[i], &v, &ok);
	int open = NB;
	while (open > 0) {
		int r;
		int which = -1;
		if (tu_rand_n(&w->rng, 4) == 0) {
			/* A plain receive on one still-open channel. */
			int k = (int)tu_rand_n(&w->rng, NB);
			while (in[k].chan == NULL)
				k = (k + 1) % NB;
			r = tt_chan_recv_until(in[k].chan, &v, sizeof v, &ok,
					       small_deadline(&w->rng));
			if (r == 0)
				which = k;
		} else {
			r = tt_select(in, NB, small_deadline(&w->rng));
			if (r >= 0)
				which = r;
		}
		if (which < 0) {
			TU_ASSERT_MSG(retryable(r), "receive failed: %d (%s)",
				      r, tu_errname(r));
			__atomic_fetch_add(&st->timeouts, 1, __ATOMIC_RELAXED);
			if (r == -EAGAIN && tu_rand_n(&w->rng, 4) == 0)
				TU_ASSERT_OK(tt_sleep(20 * TT_MICROSECOND));
			continue;
		}
		if (!ok) {
			TU_ASSERT_EQ(v, 0);
			in[which].chan = NULL;
			open--;
			__atomic_fetch_add(&st->closes_seen, 1,
					   __ATOMIC_RELAXED);
			continue;
		}
		take(st, v);
	}
	tu_done(st->done);
}

/* ---- one run ------------------------------------------------------------------------ */

typedef struct stress_result {
	int err;          /* 0, or what went wrong setting up or waiting */
	char what[200];
	long sent_count, recv_count;
	uint64_t sent_sum, recv_sum;
	long missing, duplicated, phantom, bad_values;
	long timeouts, closes_seen;
	bool stopped_by_time;
	long leftover_len;
} stress_result;

/* Runs one pipeline on the calling thread's scheduler. Uses no cmocka
 * asserts itself (it also runs on other threads); goroutine failures are
 * counted by testutil. */
static void stress_run(uint64_t seed, int64_t stop_at, stress_result *res)
{
	memset(res, 0, sizeof *res);
	stress st;
	memset(&st, 0, sizeof st);
	st.seed = seed;
	st.stop_at = stop_at;
	st.nvalues = (long)NP * QUOTA;
	st.sent = calloc((size_t)st.nvalues + 1, 1);
	st.seen = calloc((size_t)st.nvalues + 1, 1);
	st.producers_left = NP;
	st.relays_left = NR;
	int r = 0;
	for (int i = 0; i < NA && r == 0; i++)
		r = tt_chan_make(&st.a[i], sizeof(int64_t), a_caps[i]);
	for (int i = 0; i < NB && r == 0; i++)
		r = tt_chan_make(&st.b[i], sizeof(int64_t), b_caps[i]);
	if (r == 0)
		r = tt_chan_make(&st.done, 0, NP + NR + NC);
	if (r != 0 || !st.sent || !st.seen) {
		res->err = r ? r : -ENOMEM;
		snprintf(res->what, sizeof res->what, "setup: %s",
			 tt_last_error());
		return; /* the test fails; leaks do not matter then */
	}

	worker *ws = calloc(NP + NR + NC, sizeof *ws);
	if (ws == NULL) {
		res->err = -ENOMEM;
		snprintf(res->what, sizeof res->what, "setup: out of memory");
		return;
	}
	uint64_t rng = seed;
	const int n = NP + NR + NC;
	/* Start them in a random interleaving, so early producers race
	 * late relays and consumers. */
	int np = 0, nr = 0, nc = 0;
	for (int i = 0; i < n; i++) {
		tt_func fn;
		int kind = (int)tu_rand_n(&rng, 3);
		if ((kind == 0 && np < NP) || (nr == NR && nc == NC)) {
			fn = producer;
			ws[i].id = np++;
		} else if ((kind == 1 && nr < NR) || nc == NC) {
			fn = relay;
			ws[i].id = nr++;
		} else {
			fn = consumer;
			ws[i].id = nc++;
		}
		ws[i].st = &st;
		ws[i].rng = tu_rand(&rng);
		int64_t id = tt_go(fn, &ws[i]);
		if (id <= 0) {
			res->err = (int)id;
			snprintf(res->what, sizeof res->what, "tt_go: %s",
				 tt_last_error());
			return;
		}
	}

	int64_t dl = tt_deadline_in((STRESS_SECONDS + 55) * TT_SECOND);
	for (int i = 0; i < n; i++) {
		r = tt_chan_recv_until(st.done, NULL, 0, NULL, dl);
		if (r != 0) {
			res->err = r;
			snprintf(res->what, sizeof res->what,
				 "only %d of %d goroutines finished", i, n);
			return;
		}
	}

	for (long v = 1; v <= st.nvalues; v++) {
		if (st.sent[v] && st.seen[v] == 0)
			res->missing++;
		if (st.seen[v] > 1)
			res->duplicated++;
		if (!st.sent[v] && st.seen[v])
			res->phantom++;
	}
	res->sent_count = st.sent_count;
	res->recv_count = st.recv_count;
	res->sent_sum = st.sent_sum;
	res->recv_sum = st.recv_sum;
	res->bad_values = st.bad_values;
	res->timeouts = st.timeouts;
	res->closes_seen = st.closes_seen;
	res->stopped_by_time = st.stopped_by_time;
	for (int i = 0; i < NA; i++) {
		res->leftover_len += tt_chan_len(st.a[i]);
		tt_chan_release(st.a[i]);
	}
	for (int i = 0; i < NB; i++) {
		res->leftover_len += tt_chan_len(st.b[i]);
		tt_chan_release(st.b[i]);
	}
	tt_chan_release(st.done);
	free(st.sent);
	free(st.seen);
	free(ws);
}

static void check_result(const stress_result *res)
{
	if (res->err)
		fail_msg("stress run failed: %d (%s): %s", res->err,
			 tu_errname(res->err), res->what);
	print_message("sent %ld, received %ld, timeouts %ld, closes seen "
		      "%ld%s\n",
		      res->sent_count, res->recv_count, res->timeouts,
		      res->closes_seen,
		      res->stopped_by_time ? " (stopped by the time bound)"
					   : "");
	assert_true(res->sent_count > 0);
	if (!res->stopped_by_time)
		assert_int_equal(res->sent_count, (long)NP * QUOTA);
	assert_int_equal(res->missing, 0);
	assert_int_equal(res->duplicated, 0);
	assert_int_equal(res->phantom, 0);
	assert_int_equal(res->bad_values, 0);
	assert_int_equal(res->recv_count, res->sent_count);
	assert_true(res->recv_sum == res->sent_sum);
	/* Every relay saw every A channel close; every consumer every B. */
	assert_int_equal(res->closes_seen, (long)NR * NA + (long)NC * NB);
	assert_int_equal(res->leftover_len, 0);
}

static void test_stress_pipeline(void **state)
{
	(void)state;
	uint64_t seed = tu_seed("stress pipeline");
	int64_t stop_at = tt_now() + STRESS_SECONDS * TT_SECOND;
	int64_t base = tt_num_goroutine();
	for (int round = 0; round < 3 && tt_now() < stop_at; round++) {
		stress_result res;
		stress_run(seed + (uint64_t)round * 0x1000193, stop_at, &res);
		check_result(&res);
		assert_int_equal(tu_goroutine_failures(), 0);
		/* A goroutine on another P may still be on its way out
		 * after its done token. */
		TU_WAIT_FOR(tt_num_goroutine() == base, 10 * TT_SECOND);
	}
}

/* The same in two OS threads at once, each with its own scheduler: the
 * schedulers must not interfere (ids, counts, timers, random numbers). */
typedef struct thread_run {
	uint64_t seed;
	int64_t stop_at;
	stress_result res;
	int64_t goid;
} thread_run;

static void *stress_thread(void *p)
{
	thread_run *t = p;
	t->goid = tt_goid();
	stress_run(t->seed, t->stop_at, &t->res);
	return NULL;
}

static void test_stress_two_threads(void **state)
{
	(void)state;
	TU_REQUIRE_THREADS();
	uint64_t seed = tu_seed("stress two threads");
	int64_t stop_at = tt_now() + (STRESS_SECONDS / 2 + 1) * TT_SECOND;
	thread_run t[2];
	pthread_t th[2];
	for (int i = 0; i < 2; i++) {
		memset(&t[i], 0, sizeof t[i]);
		t[i].seed = seed ^ (uint64_t)(i + 1) * 0x9e3779b97f4a7c15u;
		t[i].stop_at = stop_at;
		assert_int_equal(pthread_create(&th[i], NULL, stress_thread,
						&t[i]),
				 0);
	}
	/* Joined parked in tether: with more than one P, this thread's P
	 * may be handed the threads' goroutines to run. */
	for (int i = 0; i < 2; i++)
		tu_join_parked(th[i]);
	for (int i = 0; i < 2; i++)
		check_result(&t[i].res);
	assert_true(t[0].goid != t[1].goid);
	assert_int_equal(tu_goroutine_failures(), 0);
}

int main(int argc, char **argv)
{
	tu_child_dispatch(argc, argv, NULL, 0);
	const struct CMUnitTest tests[] = {
		TU_TEST(test_stress_pipeline),
		TU_TEST(test_stress_two_threads),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
