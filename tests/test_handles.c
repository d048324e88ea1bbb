/* tether tests — handles that cannot alias.
 *
 * A handle the program released names nothing: every use returns -EBADF
 * with a message, however many objects were made since, and never
 * reaches the object that now occupies its memory. The runtime reads
 * only its own slot memory to tell (so the ASan build runs all of this
 * too, without a use-after-free report). */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif

#include <errno.h>
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "testutil.h"
#include "chan_queued.h"

static int cmp_ptr(const void *a, const void *b)
{
	uintptr_t x = *(const uintptr_t *)a, y = *(const uintptr_t *)b;
	return x < y ? -1 : x > y;
}

/* The request/answer mix-up: a stale reply channel must not deliver into
 * the channel made after it, which gets the same memory. */
static void test_stale_chan_never_reaches_new_channel(void **state)
{
	(void)state;
	tt_chan *a = tu_chan(sizeof(int), 1);
	TU_ASSERT_OK(tt_chan_release(a));
	tt_chan *b = tu_chan(sizeof(int), 1);
	int v = 42;
	TU_ASSERT_ERR(tt_chan_send_until(a, &v, sizeof v, TT_TRY), -EBADF);
	TU_ASSERT_CONTAINS(tt_last_error(), "is not a live channel");
	TU_ASSERT_ERR(tt_send(a, &v), -EBADF);
	TU_ASSERT_ERR(tt_chan_recv_until(a, &v, sizeof v, NULL, TT_TRY),
		      -EBADF);
	TU_ASSERT_ERR(tt_chan_close(a), -EBADF);
	TU_ASSERT_ERR(tt_chan_retain(a), -EBADF);
	TU_ASSERT_ERR(tt_chan_release(a), -EBADF);
	TU_ASSERT_EQ(tt_chan_len(a), -EBADF);
	TU_ASSERT_EQ(tt_chan_cap(a), -EBADF);
	tt_case k = TT_CASE_SEND_FROM(a, &v);
	TU_ASSERT_ERR(tt_select(&k, 1, TT_TRY), -EBADF);
	TU_ASSERT_CONTAINS(tt_last_error(), "tt_select");
	/* b saw none of it. */
	TU_ASSERT_EQ(tt_chan_len(b), 0);
	TU_ASSERT_EQ(tt_chan_cap(b), 1);
	v = 7;
	TU_ASSERT_OK(tt_send(b, &v));
	v = 0;
	TU_ASSERT_OK(tt_recv(b, &v, NULL));
	TU_ASSERT_EQ(v, 7);
	TU_ASSERT_OK(tt_chan_release(b));
}

/* A goroutine parked on the new channel is not woken through the stale
 * handle either. */
static int parked_recv_ended;

static void parked_recv(void *arg)
{
	tt_chan *c = arg;
	int v = 0;
	bool ok = true;
	TU_ASSERT_OK(tt_recv(c, &v, &ok));
	TU_ASSERT(!ok); /* woken only by the close below */
	__atomic_store_n(&parked_recv_ended, 1, __ATOMIC_RELEASE);
}

static void test_stale_chan_does_not_wake_new_waiters(void **state)
{
	(void)state;
	tt_chan *a = tu_chan(sizeof(int), 0);
	TU_ASSERT_OK(tt_chan_release(a));
	tt_chan *b = tu_chan(sizeof(int), 0);
	parked_recv_ended = 0;
	tu_go(parked_recv, b);
	/* Parked, on whichever P took it. */
	TU_WAIT_QUEUED(b, false, 1);
	int v = 1;
	TU_ASSERT_ERR(tt_chan_send_until(a, &v, sizeof v, TT_TRY), -EBADF);
	TU_ASSERT_ERR(tt_chan_close(a), -EBADF);
	TU_ASSERT_OK(tt_chan_close(b));
	/* b is released only after the receiver is done with it. */
	TU_WAIT_FOR(__atomic_load_n(&parked_recv_ended, __ATOMIC_ACQUIRE),
		    5 * TT_SECOND);
	TU_ASSERT_OK(tt_chan_release(b));
}

/* Still stale after many objects were made and freed in the same slots:
 * every use, every time. */
static void test_stale_chan_after_many_reuses(void **state)
{
	(void)state;
	enum { ROUNDS = 200000 };
	tt_chan *a = tu_chan(sizeof(int), 1);
	TU_ASSERT_OK(tt_chan_release(a));
	int v = 3;
	for (int i = 0; i < ROUNDS; i++) {
		tt_chan *b = tu_chan(sizeof(int), 1);
		TU_ASSERT(b != a);
		if (i % 1000 == 0) {
			TU_ASSERT_ERR(tt_chan_send_until(a, &v, sizeof v,
							 TT_TRY),
				      -EBADF);
			TU_ASSERT_EQ(tt_chan_len(b), 0);
		}
		TU_ASSERT_OK(tt_chan_release(b));
	}
	TU_ASSERT_ERR(tt_chan_release(a), -EBADF);
}

/* One slot reused more times than a generation can count (65,535): no
 * two of its allocations share a handle, because a slot whose
 * generations are used up is retired rather than wrapped. */
static void test_handles_never_repeat(void **state)
{
	(void)state;
	enum { N = 70000 };
	uintptr_t *seen = malloc(N * sizeof *seen);
	assert_non_null(seen);
	for (int i = 0; i < N; i++) {
		tt_mutex *m = NULL;
		TU_ASSERT_OK(tt_mutex_make(&m));
		seen[i] = (uintptr_t)m;
		TU_ASSERT_OK(tt_mutex_release(m));
	}
	qsort(seen, N, sizeof *seen, cmp_ptr);
	int dups = 0;
	for (int i = 1; i < N; i++)
		dups += seen[i] == seen[i - 1];
	TU_ASSERT_EQ(dups, 0);
	/* The same slot was indeed reused (a fresh slot each time would
	 * prove nothing): most handles share their address bits. */
	int reused = 0;
	for (int i = 1; i < N; i++)
		reused += (seen[i] & 0xffffffffffffu) ==
			  (seen[i - 1] & 0xffffffffffffu);
	TU_ASSERT(reused > N / 2);
	free(seen);
}

static void test_stale_ctx(void **state)
{
	(void)state;
	tt_ctx *a, *b;
	TU_ASSERT_OK(tt_ctx_with_cancel(&a, tt_ctx_background()));
	TU_ASSERT_OK(tt_ctx_cancel(a));
	TU_ASSERT_OK(tt_ctx_release(a));
	TU_ASSERT_OK(tt_ctx_with_cancel(&b, tt_ctx_background()));
	TU_ASSERT_ERR(tt_ctx_cancel(a), -EBADF);
	TU_ASSERT_CONTAINS(tt_last_error(), "is not a live context");
	TU_ASSERT_ERR(tt_ctx_err(a), -EBADF);
	assert_null(tt_ctx_done(a));
	TU_ASSERT_ERR(tt_ctx_retain(a), -EBADF);
	TU_ASSERT_ERR(tt_ctx_release(a), -EBADF);
	tt_ctx *c = NULL;
	TU_ASSERT_ERR(tt_ctx_with_timeout(&c, a, TT_SECOND), -EBADF);
	assert_null(c);
	int v = 0;
	tt_chan *ch = tu_chan(sizeof v, 1);
	TU_ASSERT_ERR(tt_chan_recv_ctx(a, ch, &v, sizeof v, NULL), -EBADF);
	TU_ASSERT_ERR(tt_sleep_ctx(a, TT_MILLISECOND), -EBADF);
	/* b is untouched: not cancelled, its done channel open. */
	TU_ASSERT_OK(tt_ctx_err(b));
	tt_case k = TT_CASE_RECV_DISCARD(tt_ctx_done(b), NULL);
	TU_ASSERT_ERR(tt_select(&k, 1, TT_TRY), -EAGAIN);
	TU_ASSERT_OK(tt_ctx_cancel(b));
	TU_ASSERT_OK(tt_ctx_release(b));
	TU_ASSERT_OK(tt_chan_release(ch));
}

/* A stale done channel (its context freed) is stale too. */
static void test_stale_done_channel(void **state)
{
	(void)state;
	tt_ctx *a;
	TU_ASSERT_OK(tt_ctx_with_cancel(&a, tt_ctx_background()));
	tt_chan *done = tt_ctx_done(a);
	assert_non_null(done);
	TU_ASSERT_OK(tt_ctx_cancel(a));
	TU_ASSERT_OK(tt_ctx_release(a));
	tt_chan *b = tu_chan(0, 0);
	TU_ASSERT_ERR(tt_chan_recv_until(done, NULL, 0, NULL, TT_TRY),
		      -EBADF);
	TU_ASSERT_OK(tt_chan_release(b));
}

static void test_stale_sync_objects(void **state)
{
	(void)state;
	tt_mutex *m1, *m2;
	TU_ASSERT_OK(tt_mutex_make(&m1));
	TU_ASSERT_OK(tt_mutex_release(m1));
	TU_ASSERT_OK(tt_mutex_make(&m2));
	TU_ASSERT_OK(tt_mutex_lock(m2));
	TU_ASSERT_ERR(tt_mutex_unlock(m1), -EBADF);
	TU_ASSERT_CONTAINS(tt_last_error(), "is not a live Mutex");
	TU_ASSERT_ERR(tt_mutex_lock(m1), -EBADF);
	TU_ASSERT_ERR(tt_mutex_trylock(m2), -EAGAIN); /* still locked */
	TU_ASSERT_OK(tt_mutex_unlock(m2));
	TU_ASSERT_OK(tt_mutex_release(m2));

	tt_waitgroup *w1, *w2;
	TU_ASSERT_OK(tt_wg_make(&w1));
	TU_ASSERT_OK(tt_wg_release(w1));
	TU_ASSERT_OK(tt_wg_make(&w2));
	TU_ASSERT_OK(tt_wg_add(w2, 1));
	TU_ASSERT_ERR(tt_wg_done(w1), -EBADF);
	TU_ASSERT_EQ(tt_wg_count(w1), -EBADF);
	TU_ASSERT_EQ(tt_wg_count(w2), 1);
	TU_ASSERT_OK(tt_wg_done(w2));
	TU_ASSERT_OK(tt_wg_release(w2));

	tt_rwmutex *r1, *r2;
	TU_ASSERT_OK(tt_rwmutex_make(&r1));
	TU_ASSERT_OK(tt_rwmutex_release(r1));
	TU_ASSERT_OK(tt_rwmutex_make(&r2));
	TU_ASSERT_OK(tt_rwmutex_lock(r2));
	TU_ASSERT_ERR(tt_rwmutex_unlock(r1), -EBADF);
	TU_ASSERT_ERR(tt_rwmutex_rlock_until(r2, TT_TRY), -EAGAIN);
	TU_ASSERT_OK(tt_rwmutex_unlock(r2));
	TU_ASSERT_OK(tt_rwmutex_release(r2));

	tt_mutex *m;
	tt_cond *c1, *c2;
	TU_ASSERT_OK(tt_mutex_make(&m));
	TU_ASSERT_OK(tt_cond_make(&c1, m));
	TU_ASSERT_OK(tt_cond_release(c1));
	TU_ASSERT_OK(tt_cond_make(&c2, m));
	TU_ASSERT_ERR(tt_cond_signal(c1), -EBADF);
	TU_ASSERT_OK(tt_cond_signal(c2));
	TU_ASSERT_OK(tt_cond_release(c2));
	TU_ASSERT_OK(tt_mutex_release(m));
	TU_ASSERT_ERR(tt_mutex_lock(m), -EBADF); /* the cond's hold gone */
}

static int once_runs;
static void once_fn(void *arg)
{
	(void)arg;
	once_runs++;
}

static void test_stale_once(void **state)
{
	(void)state;
	tt_once *o1, *o2;
	TU_ASSERT_OK(tt_once_make(&o1));
	TU_ASSERT_OK(tt_once_release(o1));
	TU_ASSERT_OK(tt_once_make(&o2));
	once_runs = 0;
	TU_ASSERT_ERR(tt_once_do(o1, once_fn, NULL), -EBADF);
	TU_ASSERT_EQ(once_runs, 0);
	TU_ASSERT_OK(tt_once_do(o2, once_fn, NULL));
	TU_ASSERT_EQ(once_runs, 1);
	TU_ASSERT_OK(tt_once_release(o2));
}

static void test_stale_timer(void **state)
{
	(void)state;
	tt_timer *t1, *t2;
	TU_ASSERT_OK(tt_timer_make(&t1, (60 * TT_MINUTE)));
	TU_ASSERT_OK(tt_timer_release(t1));
	TU_ASSERT_OK(tt_timer_make(&t2, (60 * TT_MINUTE)));
	assert_false(tt_timer_stop(t1));
	TU_ASSERT_CONTAINS(tt_last_error(), "is not a live channel");
	assert_false(tt_timer_reset(t1, TT_SECOND));
	assert_null(tt_timer_chan(t1));
	TU_ASSERT_ERR(tt_timer_release(t1), -EBADF);
	/* t2 still armed: its first Stop reports it was. */
	assert_true(tt_timer_stop(t2));
	TU_ASSERT_OK(tt_timer_release(t2));

	tt_ticker *k1, *k2;
	TU_ASSERT_OK(tt_ticker_make(&k1, (60 * TT_MINUTE)));
	TU_ASSERT_OK(tt_ticker_release(k1));
	TU_ASSERT_OK(tt_ticker_make(&k2, (60 * TT_MINUTE)));
	TU_ASSERT_ERR(tt_ticker_reset(k1, TT_SECOND), -EBADF);
	assert_non_null(tt_ticker_chan(k2));
	TU_ASSERT_OK(tt_ticker_release(k2));
}

/* One kind's handle given to another kind's call is not a live object of
 * that kind. */
static void test_handle_of_other_kind(void **state)
{
	(void)state;
	tt_mutex *m;
	TU_ASSERT_OK(tt_mutex_make(&m));
	int v = 1;
	TU_ASSERT_ERR(tt_chan_send_until((tt_chan *)m, &v, sizeof v, TT_TRY),
		      -EBADF);
	TU_ASSERT_ERR(tt_wg_add((tt_waitgroup *)m, 1), -EBADF);
	TU_ASSERT_ERR(tt_ctx_cancel((tt_ctx *)m), -EBADF);
	tt_chan *c = tu_chan(sizeof v, 1);
	TU_ASSERT_ERR(tt_mutex_lock((tt_mutex *)c), -EBADF);
	TU_ASSERT_CONTAINS(tt_last_error(), "is not a live Mutex");
	TU_ASSERT_OK(tt_chan_release(c));
	TU_ASSERT_OK(tt_mutex_release(m));
}

/* Slots freed by a thread that ended are reused by others; the handles
 * the ended thread had released stay stale here (not "another thread's
 * channel": no object lives behind them). */
static void *make_and_release(void *arg)
{
	tt_chan **out = arg;
	for (int i = 0; i < 64; i++) {
		if (tt_chan_make(&out[i], sizeof(int), 1) != 0)
			return NULL;
	}
	for (int i = 0; i < 64; i++)
		if (tt_chan_release(out[i]) != 0)
			return NULL;
	return out;
}

static void test_stale_handles_of_ended_thread(void **state)
{
	(void)state;
	tt_chan *theirs[64];
	pthread_t t;
	assert_int_equal(pthread_create(&t, NULL, make_and_release, theirs),
			 0);
	void *res = NULL;
	assert_int_equal(pthread_join(t, &res), 0);
	assert_ptr_equal(res, theirs);
	tt_chan *mine[64];
	for (int i = 0; i < 64; i++)
		mine[i] = tu_chan(sizeof(int), 1);
	int v = 5;
	for (int i = 0; i < 64; i++) {
		TU_ASSERT_ERR(tt_chan_send_until(theirs[i], &v, sizeof v,
						 TT_TRY),
			      -EBADF);
		TU_ASSERT_EQ(tt_chan_len(mine[i]), 0);
	}
	/* Their slots did come back to this thread. */
	int shared = 0;
	for (int i = 0; i < 64; i++)
		for (int j = 0; j < 64; j++)
			shared += ((uintptr_t)theirs[i] & 0xffffffffffffu) ==
				  ((uintptr_t)mine[j] & 0xffffffffffffu);
	TU_ASSERT(shared > 0);
	for (int i = 0; i < 64; i++)
		TU_ASSERT_OK(tt_chan_release(mine[i]));
}

/* A channel too big for a slot keeps its buffer outside; its handle is
 * checked the same way. */
static void test_stale_large_channel(void **state)
{
	(void)state;
	tt_chan *a = tu_chan(1024, 64);
	char buf[1024] = {1};
	TU_ASSERT_OK(tt_chan_send(a, buf, sizeof buf));
	TU_ASSERT_OK(tt_chan_release(a));
	tt_chan *b = tu_chan(1024, 64);
	TU_ASSERT_ERR(tt_chan_send_until(a, buf, sizeof buf, TT_TRY), -EBADF);
	for (int i = 0; i < 64; i++)
		TU_ASSERT_OK(tt_chan_send_until(b, buf, sizeof buf, TT_TRY));
	TU_ASSERT_EQ(tt_chan_len(b), 64);
	TU_ASSERT_OK(tt_chan_release(b));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		TU_TEST(test_stale_chan_never_reaches_new_channel),
		TU_TEST(test_stale_chan_does_not_wake_new_waiters),
		TU_TEST(test_stale_chan_after_many_reuses),
		TU_TEST(test_handles_never_repeat),
		TU_TEST(test_stale_ctx),
		TU_TEST(test_stale_done_channel),
		TU_TEST(test_stale_sync_objects),
		TU_TEST(test_stale_once),
		TU_TEST(test_stale_timer),
		TU_TEST(test_handle_of_other_kind),
		TU_TEST(test_stale_handles_of_ended_thread),
		TU_TEST(test_stale_large_channel),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
