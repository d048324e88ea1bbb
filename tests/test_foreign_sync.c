/* RWMutex, Once, Cond, timers and tickers used from other threads: the
 * operations are asked of the object's owner (post.c), and what must
 * wait waits there in a proxy goroutine. Go's RWMutex hammer with
 * pthreads and goroutines at once, Once.Do racing across threads (the
 * caller runs fn, as in Go), a pthread stopping and resetting main's
 * timer and ticker. The pthreads record what they saw; the main
 * goroutine checks it after the join. */
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "testutil.h"

#define MS TT_MILLISECOND

/* ---- Go's RWMutex hammer ------------------------------------------------ */

/* sync's TestRWMutex: readers add 1 to activity while they hold the read
 * lock, writers 10000 while they hold the write lock; a reader must never
 * see a writer in, and a writer must be alone. */
typedef struct hammer {
	tt_rwmutex *m;
	_Atomic int activity;
	int iters;
	_Atomic int bad;
	_Atomic int done;
	tt_chan *done_ch;
} hammer;

/* Hold the lock for a moment: others on other CPUs try meanwhile. */
static void spin_a_little(void)
{
	for (volatile int i = 0; i < 200; i++)
		;
}

static void reader_turn(hammer *h)
{
	if (tt_rwmutex_rlock(h->m) != 0) {
		atomic_fetch_add(&h->bad, 1);
		return;
	}
	int n = atomic_fetch_add(&h->activity, 1) + 1;
	if (n < 1 || n >= 10000)
		atomic_fetch_add(&h->bad, 1);
	spin_a_little();
	atomic_fetch_sub(&h->activity, 1);
	if (tt_rwmutex_runlock(h->m) != 0)
		atomic_fetch_add(&h->bad, 1);
}

static void writer_turn(hammer *h)
{
	if (tt_rwmutex_lock(h->m) != 0) {
		atomic_fetch_add(&h->bad, 1);
		return;
	}
	int n = atomic_fetch_add(&h->activity, 10000) + 10000;
	if (n != 10000)
		atomic_fetch_add(&h->bad, 1);
	spin_a_little();
	atomic_fetch_sub(&h->activity, 10000);
	if (tt_rwmutex_unlock(h->m) != 0)
		atomic_fetch_add(&h->bad, 1);
}

typedef struct hammerer {
	hammer *h;
	bool writer;
} hammerer;

static void hammer_loop(hammerer *x)
{
	for (int i = 0; i < x->h->iters; i++) {
		if (x->writer)
			writer_turn(x->h);
		else
			reader_turn(x->h);
		if (i % 16 == 0)
			tt_yield();
	}
	atomic_fetch_add(&x->h->done, 1);
}

static void *hammer_thread(void *arg)
{
	hammer_loop(arg);
	return NULL;
}

static void hammer_goroutine(void *arg)
{
	hammerer *x = arg;
	hammer_loop(x);
	tu_done(x->h->done_ch);
}

static void test_rwmutex_hammer_across_threads(void **state)
{
	(void)state;
	TU_REQUIRE_THREADS();
	if (tu_emulated()) {
		/* Under qemu-user this hangs with the machine idle, at the
		 * commit that last passed there too: not yet understood. */
		print_message("skipped: the hammer hangs under this "
			      "emulator\n");
		skip();
	}
	enum { THREADS = 4, GOROUTINES = 4 };
	hammer h = {.iters = TU_SCALE(2000, 300)};
	TU_ASSERT_OK(tt_rwmutex_make(&h.m));
	h.done_ch = tu_chan(0, GOROUTINES);
	hammerer xs[THREADS + GOROUTINES];
	pthread_t th[THREADS];
	for (int i = 0; i < THREADS; i++) {
		/* One writer among the threads, one among the goroutines. */
		xs[i] = (hammerer){.h = &h, .writer = i == 0};
		assert_int_equal(
			pthread_create(&th[i], NULL, hammer_thread, &xs[i]), 0);
	}
	for (int i = 0; i < GOROUTINES; i++) {
		xs[THREADS + i] = (hammerer){.h = &h, .writer = i == 1};
		tu_go(hammer_goroutine, &xs[THREADS + i]);
	}
	TU_WAIT_DONE(h.done_ch, GOROUTINES, 120 * TT_SECOND);
	for (int i = 0; i < THREADS; i++)
		tu_join_parked(th[i]);
	assert_int_equal(atomic_load(&h.done), THREADS + GOROUTINES);
	assert_int_equal(atomic_load(&h.bad), 0);
	assert_int_equal(atomic_load(&h.activity), 0);
	/* Free again: a pthread can take it both ways. */
	TU_ASSERT_OK(tt_rwmutex_trylock(h.m));
	TU_ASSERT_OK(tt_rwmutex_unlock(h.m));
	TU_ASSERT_OK(tt_rwmutex_release(h.m));
	TU_ASSERT_OK(tt_chan_release(h.done_ch));
}

typedef struct rw_probe {
	tt_rwmutex *m;
	int try_r, try_w, timed_r, timed_w, got_r;
} rw_probe;

static void *rw_probe_thread(void *arg)
{
	rw_probe *p = arg;
	p->try_r = tt_rwmutex_tryrlock(p->m);
	p->try_w = tt_rwmutex_trylock(p->m);
	p->timed_r = tt_rwmutex_rlock_until(p->m, tt_deadline_in(10 * MS));
	p->timed_w = tt_rwmutex_lock_until(p->m, tt_deadline_in(10 * MS));
	/* Blocks until main unlocks (a proxy waits for it there). */
	p->got_r = tt_rwmutex_rlock(p->m);
	if (p->got_r == 0)
		p->got_r = tt_rwmutex_runlock(p->m);
	return NULL;
}

/* With main holding the write lock: a pthread's tries fail, its
 * deadlines pass, and its plain RLock waits until main's Unlock. */
static void test_rwmutex_waits_from_pthread(void **state)
{
	(void)state;
	TU_REQUIRE_THREADS();
	rw_probe p = {0};
	TU_ASSERT_OK(tt_rwmutex_make(&p.m));
	TU_ASSERT_OK(tt_rwmutex_lock(p.m));
	pthread_t th;
	assert_int_equal(pthread_create(&th, NULL, rw_probe_thread, &p), 0);
	TU_ASSERT_OK(tt_sleep(60 * MS));
	TU_ASSERT_OK(tt_rwmutex_unlock(p.m));
	tu_join_parked(th);
	assert_int_equal(p.try_r, -EAGAIN);
	assert_int_equal(p.try_w, -EAGAIN);
	assert_int_equal(p.timed_r, -ETIMEDOUT);
	assert_int_equal(p.timed_w, -ETIMEDOUT);
	TU_ASSERT_OK(p.got_r);
	TU_ASSERT_OK(tt_rwmutex_trylock(p.m));
	TU_ASSERT_OK(tt_rwmutex_unlock(p.m));
	TU_ASSERT_OK(tt_rwmutex_release(p.m));
}

/* ---- Once ------------------------------------------------------------------- */

typedef struct once_race {
	tt_once *o;
	_Atomic int calls;
	int value;            /* written by fn, read by every caller after */
	_Atomic int saw_bad;  /* a caller returned before fn's effect */
	_Atomic int errors;
	tt_chan *done;
} once_race;

static void once_fn(void *arg)
{
	once_race *r = arg;
	atomic_fetch_add(&r->calls, 1);
	/* Long enough that the other callers find it running. */
	TU_UNCHECKED(tt_sleep(20 * MS));
	r->value = 42;
}

static void once_call(once_race *r)
{
	if (tt_once_do(r->o, once_fn, r) != 0)
		atomic_fetch_add(&r->errors, 1);
	if (r->value != 42)
		atomic_fetch_add(&r->saw_bad, 1);
}

static void *once_thread(void *arg)
{
	once_call(arg);
	return NULL;
}

static void once_goroutine(void *arg)
{
	once_race *r = arg;
	once_call(r);
	tu_done(r->done);
}

/* Callers on four pthreads and two goroutines race into Do: fn runs
 * once, on whichever caller came first, and every Do returns after it. */
static void test_once_across_threads(void **state)
{
	(void)state;
	TU_REQUIRE_THREADS();
	enum { THREADS = 4, GOROUTINES = 2 };
	once_race r = {0};
	TU_ASSERT_OK(tt_once_make(&r.o));
	r.done = tu_chan(0, GOROUTINES);
	pthread_t th[THREADS];
	for (int i = 0; i < THREADS; i++)
		assert_int_equal(pthread_create(&th[i], NULL, once_thread, &r),
				 0);
	for (int i = 0; i < GOROUTINES; i++)
		tu_go(once_goroutine, &r);
	TU_WAIT_DONE(r.done, GOROUTINES, 60 * TT_SECOND);
	for (int i = 0; i < THREADS; i++)
		tu_join_parked(th[i]);
	assert_int_equal(atomic_load(&r.calls), 1);
	assert_int_equal(atomic_load(&r.errors), 0);
	assert_int_equal(atomic_load(&r.saw_bad), 0);
	/* And later calls, from any thread, do nothing. */
	pthread_t late;
	assert_int_equal(pthread_create(&late, NULL, once_thread, &r), 0);
	tu_join_parked(late);
	assert_int_equal(atomic_load(&r.calls), 1);
	TU_ASSERT_OK(tt_once_release(r.o));
	TU_ASSERT_OK(tt_chan_release(r.done));
}

/* ---- Cond ---------------------------------------------------------------------- */

/* A queue of ints guarded by main's Mutex, with main's Cond: consumers on
 * pthreads and goroutines wait for items, producers on both sides add
 * them and Signal; at the end a Broadcast wakes everyone to leave. Every
 * item is taken exactly once. */
typedef struct cq {
	tt_mutex *m;
	tt_cond *c;
	int items[64];
	int head, tail; /* items[head..tail) */
	bool closing;
	int total;
	_Atomic unsigned char *seen;
	_Atomic int taken, bad;
	tt_chan *done;
} cq;

static void cq_consume(cq *q)
{
	for (;;) {
		if (tt_mutex_lock(q->m) != 0) {
			atomic_fetch_add(&q->bad, 1);
			return;
		}
		while (q->head == q->tail && !q->closing)
			if (tt_cond_wait(q->c) != 0)
				atomic_fetch_add(&q->bad, 1);
		if (q->head == q->tail) {
			TU_UNCHECKED(tt_mutex_unlock(q->m));
			return;
		}
		int v = q->items[q->head++ % 64];
		TU_UNCHECKED(tt_mutex_unlock(q->m));
		if (v < 0 || v >= q->total ||
		    atomic_fetch_add(&q->seen[v], 1) != 0)
			atomic_fetch_add(&q->bad, 1);
		atomic_fetch_add(&q->taken, 1);
	}
}

static void cq_produce(cq *q, int from, int to)
{
	for (int v = from; v < to; v++) {
		TU_UNCHECKED(tt_mutex_lock(q->m));
		while (q->tail - q->head == 64) {
			/* Full: let the consumers run. */
			TU_UNCHECKED(tt_mutex_unlock(q->m));
			TU_UNCHECKED(tt_sleep(100 * TT_MICROSECOND));
			TU_UNCHECKED(tt_mutex_lock(q->m));
		}
		q->items[q->tail++ % 64] = v;
		if (tt_cond_signal(q->c) != 0)
			atomic_fetch_add(&q->bad, 1);
		TU_UNCHECKED(tt_mutex_unlock(q->m));
	}
}

typedef struct cq_role {
	cq *q;
	bool producer;
	int from, to;
} cq_role;

static void *cq_thread(void *arg)
{
	cq_role *r = arg;
	if (r->producer)
		cq_produce(r->q, r->from, r->to);
	else
		cq_consume(r->q);
	return NULL;
}

static void cq_goroutine(void *arg)
{
	cq_role *r = arg;
	cq_consume(r->q);
	tu_done(r->q->done);
}

static void test_cond_across_threads(void **state)
{
	(void)state;
	TU_REQUIRE_THREADS();
	enum { CONSUMER_THREADS = 3, CONSUMER_GS = 2 };
	cq q = {.total = TU_SCALE(6000, 1000)};
	q.seen = calloc((size_t)q.total, 1);
	assert_non_null(q.seen);
	TU_ASSERT_OK(tt_mutex_make(&q.m));
	TU_ASSERT_OK(tt_cond_make(&q.c, q.m));
	q.done = tu_chan(0, CONSUMER_GS);
	cq_role cons = {.q = &q};
	pthread_t ct[CONSUMER_THREADS], pt;
	for (int i = 0; i < CONSUMER_THREADS; i++)
		assert_int_equal(pthread_create(&ct[i], NULL, cq_thread, &cons),
				 0);
	for (int i = 0; i < CONSUMER_GS; i++)
		tu_go(cq_goroutine, &cons);
	/* Half the items from a pthread, half from main. */
	cq_role prod = {.q = &q, .producer = true, .from = 0,
			.to = q.total / 2};
	assert_int_equal(pthread_create(&pt, NULL, cq_thread, &prod), 0);
	cq_produce(&q, q.total / 2, q.total);
	tu_join_parked(pt);
	int64_t give_up = tt_deadline_in(60 * TT_SECOND);
	while (atomic_load(&q.taken) < q.total && tt_now() < give_up)
		TU_ASSERT_OK(tt_sleep(MS));
	TU_ASSERT_OK(tt_mutex_lock(q.m));
	q.closing = true;
	TU_ASSERT_OK(tt_cond_broadcast(q.c));
	TU_ASSERT_OK(tt_mutex_unlock(q.m));
	TU_WAIT_DONE(q.done, CONSUMER_GS, 60 * TT_SECOND);
	for (int i = 0; i < CONSUMER_THREADS; i++)
		tu_join_parked(ct[i]);
	assert_int_equal(atomic_load(&q.bad), 0);
	assert_int_equal(atomic_load(&q.taken), q.total);
	for (int v = 0; v < q.total; v++)
		assert_int_equal(atomic_load(&q.seen[v]), 1);
	free((void *)q.seen);
	TU_ASSERT_OK(tt_cond_release(q.c));
	TU_ASSERT_OK(tt_mutex_release(q.m));
	TU_ASSERT_OK(tt_chan_release(q.done));
}

typedef struct cond_probe {
	tt_mutex *m;
	tt_cond *c;
	int timed, tried, woken;
	_Atomic int stage;
} cond_probe;

static void *cond_probe_thread(void *arg)
{
	cond_probe *p = arg;
	TU_UNCHECKED(tt_mutex_lock(p->m));
	p->tried = tt_cond_wait_until(p->c, TT_TRY);
	p->timed = tt_cond_wait_until(p->c, tt_deadline_in(10 * MS));
	atomic_store(&p->stage, 1);
	p->woken = tt_cond_wait(p->c); /* main's Signal */
	TU_UNCHECKED(tt_mutex_unlock(p->m));
	return NULL;
}

/* A pthread's waits: a try and a deadline come back with the lock held
 * again (main can take it only after the pthread unlocks), and a Signal
 * by main wakes the plain wait. */
static void test_cond_waits_from_pthread(void **state)
{
	(void)state;
	TU_REQUIRE_THREADS();
	cond_probe p = {0};
	TU_ASSERT_OK(tt_mutex_make(&p.m));
	TU_ASSERT_OK(tt_cond_make(&p.c, p.m));
	pthread_t th;
	assert_int_equal(pthread_create(&th, NULL, cond_probe_thread, &p), 0);
	int64_t give_up = tt_deadline_in(30 * TT_SECOND);
	while (atomic_load(&p.stage) == 0 && tt_now() < give_up)
		TU_ASSERT_OK(tt_sleep(MS));
	/* Its plain wait has unlocked the mutex: main takes it, signals. */
	TU_ASSERT_OK(tt_mutex_lock(p.m));
	TU_ASSERT_OK(tt_cond_signal(p.c));
	TU_ASSERT_OK(tt_mutex_unlock(p.m));
	tu_join_parked(th);
	assert_int_equal(p.tried, -EAGAIN);
	assert_int_equal(p.timed, -ETIMEDOUT);
	TU_ASSERT_OK(p.woken);
	TU_ASSERT_OK(tt_mutex_trylock(p.m));
	TU_ASSERT_OK(tt_mutex_unlock(p.m));
	TU_ASSERT_OK(tt_cond_release(p.c));
	TU_ASSERT_OK(tt_mutex_release(p.m));
}

typedef struct cond_on_main_mutex {
	tt_mutex *m;   /* main's */
	tt_cond *c;    /* the pthread's, on main's mutex */
	_Atomic bool made;
	bool flag;     /* under m */
	int made_r, lock_r, wait_r, saw, unlock_r;
} cond_on_main_mutex;

static void *cond_owner_main(void *arg)
{
	cond_on_main_mutex *x = arg;
	x->made_r = tt_cond_make(&x->c, x->m);
	x->lock_r = tt_mutex_lock(x->m);
	atomic_store(&x->made, true);
	while (x->wait_r == 0 && !x->flag)
		x->wait_r = tt_cond_wait(x->c);
	x->saw = x->flag;
	x->unlock_r = tt_mutex_unlock(x->m);
	TU_UNCHECKED(tt_cond_release(x->c));
	return NULL;
}

/* A pthread's Cond on main's Mutex: the pthread waits (its unlock and
 * relock go to main), main locks, sets the flag and signals the
 * pthread's Cond. */
static void test_cond_of_pthread_on_main_mutex(void **state)
{
	(void)state;
	TU_REQUIRE_THREADS();
	cond_on_main_mutex x = {0};
	TU_ASSERT_OK(tt_mutex_make(&x.m));
	pthread_t th;
	assert_int_equal(pthread_create(&th, NULL, cond_owner_main, &x), 0);
	int64_t give_up = tt_deadline_in(30 * TT_SECOND);
	while (!atomic_load(&x.made) && tt_now() < give_up)
		TU_ASSERT_OK(tt_sleep(MS));
	TU_ASSERT_OK(x.made_r);
	TU_ASSERT_OK(x.lock_r);
	/* Once the pthread waits, the mutex is free again. */
	TU_ASSERT_OK(tt_mutex_lock_until(x.m, tt_deadline_in(30 * TT_SECOND)));
	x.flag = true;
	TU_ASSERT_OK(tt_cond_signal(x.c));
	TU_ASSERT_OK(tt_mutex_unlock(x.m));
	tu_join_parked(th);
	TU_ASSERT_OK(x.wait_r);
	assert_true(x.saw);
	TU_ASSERT_OK(x.unlock_r);
	/* The Cond (freed on the pthread) gave its reference back. */
	TU_ASSERT_OK(tt_sleep(MS));
	TU_ASSERT_OK(tt_mutex_trylock(x.m));
	TU_ASSERT_OK(tt_mutex_unlock(x.m));
	TU_ASSERT_OK(tt_mutex_release(x.m));
	TU_ASSERT_ERR(tt_mutex_trylock(x.m), -EBADF);
}

/* ---- timers and tickers --------------------------------------------------------- */

typedef struct timer_user {
	tt_timer *t;
	tt_ticker *k;
	bool stop1, stop2, reset;
	int ticker_reset, ticker_bad;
} timer_user;

static void *timer_thread(void *arg)
{
	timer_user *u = arg;
	u->stop1 = tt_timer_stop(u->t);  /* armed: true */
	u->stop2 = tt_timer_stop(u->t);  /* stopped: false */
	u->reset = tt_timer_reset(u->t, 10 * MS); /* was stopped: false */
	u->ticker_reset = tt_ticker_reset(u->k, 5 * MS);
	u->ticker_bad = tt_ticker_reset(u->k, 0);
	return NULL;
}

static void *stop_ticker(void *k)
{
	tt_ticker_stop(k);
	return NULL;
}

/* A pthread stops main's 10 s timer and resets it to 10 ms (main then
 * receives its value), and speeds main's hour-long ticker up. */
static void test_timer_and_ticker_from_pthread(void **state)
{
	(void)state;
	TU_REQUIRE_THREADS();
	timer_user u = {0};
	TU_ASSERT_OK(tt_timer_make(&u.t, 10 * TT_SECOND));
	TU_ASSERT_OK(tt_ticker_make(&u.k, 3600 * TT_SECOND));
	int64_t t0 = tt_now();
	pthread_t th;
	assert_int_equal(pthread_create(&th, NULL, timer_thread, &u), 0);
	tu_join_parked(th);
	assert_true(u.stop1);
	assert_false(u.stop2);
	assert_false(u.reset);
	TU_ASSERT_OK(u.ticker_reset);
	assert_int_equal(u.ticker_bad, -EINVAL);
	int64_t at = 0;
	TU_ASSERT_OK(tt_chan_recv_until(tt_timer_chan(u.t), &at, sizeof at,
					NULL, tt_deadline_in(30 * TT_SECOND)));
	TU_ASSERT_GE(at - t0, 10 * MS);
	TU_ASSERT_OK(tt_chan_recv_until(tt_ticker_chan(u.k), &at, sizeof at,
					NULL, tt_deadline_in(30 * TT_SECOND)));
	TU_ASSERT_LT(tt_now() - t0, 20 * TT_SECOND);
	/* Stopped from the other thread too: no more ticks. */
	pthread_t th2;
	assert_int_equal(pthread_create(&th2, NULL, stop_ticker, u.k), 0);
	tu_join_parked(th2);
	TU_ASSERT_ERR(tt_chan_recv_until(tt_ticker_chan(u.k), &at, sizeof at,
					 NULL, tt_deadline_in(30 * MS)),
		      -ETIMEDOUT);
	TU_ASSERT_OK(tt_timer_release(u.t));
	TU_ASSERT_OK(tt_ticker_release(u.k));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		TU_TEST(test_rwmutex_hammer_across_threads),
		TU_TEST(test_rwmutex_waits_from_pthread),
		TU_TEST(test_once_across_threads),
		TU_TEST(test_cond_across_threads),
		TU_TEST(test_cond_waits_from_pthread),
		TU_TEST(test_cond_of_pthread_on_main_mutex),
		TU_TEST(test_timer_and_ticker_from_pthread),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
