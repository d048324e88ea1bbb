/* sync: WaitGroup, Mutex, RWMutex, Once, Cond — Go's semantics, on
 * goroutines that park instead of blocking the thread. */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>

#include "testutil.h"

#define MS TT_MILLISECOND

/* Counters that goroutines bump with nothing ordering them among
 * themselves (workers of one WaitGroup, readers sharing an RWMutex) and
 * that the test polls while they run are atomics: a race in Go's memory
 * model otherwise, and a real one once goroutines run on several
 * threads. Relaxed where only the count matters. */
static int ld(int *p)
{
	return __atomic_load_n(p, __ATOMIC_ACQUIRE);
}

/* Ordered: at two Ps the goroutine that counts may be on another
 * thread, and a reader that sees its count must see it done with what
 * it touched before (the test's stack, reused by the next test). */
static void inc(int *p)
{
	__atomic_fetch_add(p, 1, __ATOMIC_ACQ_REL);
}

/* *max = the larger of *max and v, atomically. */
static void raise_max(int *max, int v)
{
	int m = ld(max);
	while (v > m && !__atomic_compare_exchange_n(max, &m, v, false,
						     __ATOMIC_RELAXED,
						     __ATOMIC_RELAXED))
		;
}

/* ---- WaitGroup ------------------------------------------------------------ */

typedef struct wg_arg {
	tt_waitgroup *wg;
	int *counter;
	int64_t nap;
} wg_arg;

static void wg_worker(void *p)
{
	wg_arg *a = p;
	if (a->nap)
		tt_sleep(a->nap);
	inc(a->counter); /* Done orders it before Wait, not before the others */
	TU_ASSERT_OK(tt_wg_done(a->wg));
}

static void test_wg_waits_for_all(void **state)
{
	(void)state;
	enum { N = 100 };
	tt_waitgroup *wg;
	TU_ASSERT_OK(tt_wg_make(&wg));
	assert_int_equal(tt_wg_count(wg), 0);
	TU_ASSERT_OK(tt_wg_wait(wg)); /* zero: returns at once */
	int counter = 0;
	wg_arg a[N];
	TU_ASSERT_OK(tt_wg_add(wg, N));
	for (int i = 0; i < N; i++) {
		a[i] = (wg_arg){wg, &counter, (i % 5) * MS};
		tu_go(wg_worker, &a[i]);
	}
	TU_ASSERT_OK(tt_wg_wait(wg));
	assert_int_equal(ld(&counter), N);
	assert_int_equal(tt_wg_count(wg), 0);
	TU_ASSERT_OK(tt_wg_release(wg));
}

static void wg_waiter(void *p)
{
	wg_arg *a = p;
	TU_ASSERT_OK(tt_wg_wait(a->wg));
	inc(a->counter);
}

static void test_wg_many_waiters(void **state)
{
	(void)state;
	tt_waitgroup *wg;
	TU_ASSERT_OK(tt_wg_make(&wg));
	TU_ASSERT_OK(tt_wg_add(wg, 2));
	int woke = 0;
	wg_arg a = {wg, &woke, 0};
	for (int i = 0; i < 10; i++)
		tu_go(wg_waiter, &a);
	assert_int_equal(ld(&woke), 0);
	TU_ASSERT_OK(tt_wg_done(wg));
	tt_yield();
	assert_int_equal(ld(&woke), 0);
	TU_ASSERT_OK(tt_wg_done(wg));
	TU_WAIT_FOR(ld(&woke) == 10, 5 * TT_SECOND);
	TU_ASSERT_OK(tt_wg_release(wg));
}

static void test_wg_deadline(void **state)
{
	(void)state;
	tt_waitgroup *wg;
	TU_ASSERT_OK(tt_wg_make(&wg));
	TU_ASSERT_OK(tt_wg_add(wg, 1));
	TU_ASSERT_ERR(tt_wg_wait_until(wg, TT_TRY), -EAGAIN);
	int64_t t0 = tt_now();
	TU_ASSERT_ERR(tt_wg_wait_until(wg, tt_deadline_in(20 * MS)),
		      -ETIMEDOUT);
	TU_ASSERT_RANGE(tt_now() - t0, 20 * MS, 20 * MS + TU_SLACK_NS);
	TU_ASSERT_OK(tt_wg_done(wg));
	TU_ASSERT_OK(tt_wg_wait_until(wg, TT_TRY));
	TU_ASSERT_OK(tt_wg_release(wg));
}

/* ---- Mutex --------------------------------------------------------------------- */

typedef struct mu_arg {
	tt_mutex *m;
	int *inside, *max_inside;
	long *total;
	int id;
	int *order;
	int *norder;
} mu_arg;

static void mu_worker(void *p)
{
	mu_arg *a = p;
	for (int i = 0; i < 100; i++) {
		TU_ASSERT_OK(tt_mutex_lock(a->m));
		(*a->inside)++;
		if (*a->inside > *a->max_inside)
			*a->max_inside = *a->inside;
		long t = *a->total;
		tt_yield(); /* others run while we hold the lock */
		*a->total = t + 1;
		(*a->inside)--;
		TU_ASSERT_OK(tt_mutex_unlock(a->m));
	}
}

/* *p read under m: the test polls what the goroutines write holding it. */
static long locked_long(tt_mutex *m, const long *p)
{
	TU_ASSERT_OK(tt_mutex_lock(m));
	long v = *p;
	TU_ASSERT_OK(tt_mutex_unlock(m));
	return v;
}

static int locked_int(tt_mutex *m, const int *p)
{
	TU_ASSERT_OK(tt_mutex_lock(m));
	int v = *p;
	TU_ASSERT_OK(tt_mutex_unlock(m));
	return v;
}

static void test_mutex_excludes(void **state)
{
	(void)state;
	enum { N = 10 };
	tt_mutex *m;
	TU_ASSERT_OK(tt_mutex_make(&m));
	int inside = 0, max_inside = 0;
	long total = 0;
	mu_arg a[N];
	for (int i = 0; i < N; i++) {
		a[i] = (mu_arg){.m = m, .inside = &inside,
				.max_inside = &max_inside, .total = &total};
		tu_go(mu_worker, &a[i]);
	}
	TU_WAIT_FOR(locked_long(m, &total) == N * 100, 10 * TT_SECOND);
	assert_int_equal(max_inside, 1); /* ordered by locked_long's lock */
	TU_ASSERT_OK(tt_mutex_release(m));
}

static void mu_fifo(void *p)
{
	mu_arg *a = p;
	TU_ASSERT_OK(tt_mutex_lock(a->m));
	a->order[(*a->norder)++] = a->id;
	TU_ASSERT_OK(tt_mutex_unlock(a->m));
}

static void test_mutex_fifo_and_trylock(void **state)
{
	(void)state;
	/* The order the lockers arrive in is tt_go's child-first order, one
	 * P's promise: on more, each reaches the lock when its thread gets to
	 * it (and another thread's waits through a proxy of the owner's). */
	tu_one_p();
	tt_mutex *m;
	TU_ASSERT_OK(tt_mutex_make(&m));
	TU_ASSERT_OK(tt_mutex_trylock(m));
	TU_ASSERT_ERR(tt_mutex_trylock(m), -EAGAIN);
	int order[5], norder = 0;
	mu_arg a[5];
	for (int i = 0; i < 5; i++) {
		a[i] = (mu_arg){.m = m, .id = i, .order = order,
				.norder = &norder};
		tu_go(mu_fifo, &a[i]); /* each parks in lock, in order */
	}
	/* The lock is handed over: a latecomer cannot barge in. */
	TU_ASSERT_OK(tt_mutex_unlock(m));
	TU_ASSERT_ERR(tt_mutex_trylock(m), -EAGAIN);
	TU_WAIT_FOR(locked_int(m, &norder) == 5, 5 * TT_SECOND);
	for (int i = 0; i < 5; i++)
		assert_int_equal(order[i], i);
	TU_ASSERT_OK(tt_mutex_trylock(m));
	int64_t t0 = tt_now();
	TU_ASSERT_ERR(tt_mutex_lock_until(m, tt_deadline_in(10 * MS)),
		      -ETIMEDOUT);
	TU_ASSERT_GE(tt_now() - t0, 10 * MS);
	TU_ASSERT_OK(tt_mutex_unlock(m));
	TU_ASSERT_OK(tt_mutex_release(m));
}

/* ---- RWMutex ------------------------------------------------------------------- */

typedef struct rw_arg {
	tt_rwmutex *m;
	int *readers_in, *max_readers, *writer_in;
	int *log, *nlog;
	int id;
	bool writer;
} rw_arg;

static void rw_reader(void *p)
{
	rw_arg *a = p;
	TU_ASSERT_OK(tt_rwmutex_rlock(a->m));
	/* Readers share the lock: what they count, they count atomically. */
	TU_ASSERT_EQ(ld(a->writer_in), 0);
	raise_max(a->max_readers,
		  __atomic_add_fetch(a->readers_in, 1, __ATOMIC_RELAXED));
	a->log[__atomic_fetch_add(a->nlog, 1, __ATOMIC_RELAXED)] = a->id;
	tt_sleep(2 * MS);
	__atomic_fetch_sub(a->readers_in, 1, __ATOMIC_RELAXED);
	TU_ASSERT_OK(tt_rwmutex_runlock(a->m));
}

static void rw_writer(void *p)
{
	rw_arg *a = p;
	TU_ASSERT_OK(tt_rwmutex_lock(a->m));
	TU_ASSERT_EQ(ld(a->readers_in), 0);
	TU_ASSERT_EQ(ld(a->writer_in), 0);
	inc(a->writer_in);
	a->log[__atomic_fetch_add(a->nlog, 1, __ATOMIC_RELAXED)] = a->id;
	tt_sleep(2 * MS);
	__atomic_fetch_sub(a->writer_in, 1, __ATOMIC_RELAXED);
	TU_ASSERT_OK(tt_rwmutex_unlock(a->m));
}

static void test_rwmutex(void **state)
{
	(void)state;
	/* The arrival order (three readers, a writer, three readers) is
	 * tt_go's child-first order, one P's promise, as in
	 * test_mutex_fifo_and_trylock. */
	tu_one_p();
	tt_rwmutex *m;
	TU_ASSERT_OK(tt_rwmutex_make(&m));
	int readers_in = 0, max_readers = 0, writer_in = 0, log[16], nlog = 0;
	rw_arg a[7];
	/* Three readers share it; then a writer waits; readers that come
	 * after the writer wait for it (no writer starvation). */
	for (int i = 0; i < 7; i++) {
		a[i] = (rw_arg){m, &readers_in, &max_readers, &writer_in,
				log, &nlog, i, i == 3};
		tu_go(i == 3 ? rw_writer : rw_reader, &a[i]);
	}
	TU_WAIT_FOR(ld(&nlog) == 7 && ld(&readers_in) == 0 &&
			    ld(&writer_in) == 0, 5 * TT_SECOND);
	assert_int_equal(ld(&max_readers), 3);
	/* The log is read holding the lock: its unlocks ordered the
	 * entries before this. */
	TU_ASSERT_OK(tt_rwmutex_lock(m));
	for (int i = 0; i < 7; i++)
		assert_int_equal(log[i], i); /* 0,1,2 then writer 3, then 4-6 */
	TU_ASSERT_OK(tt_rwmutex_unlock(m));
	/* Deadlines. */
	TU_ASSERT_OK(tt_rwmutex_rlock(m));
	TU_ASSERT_ERR(tt_rwmutex_lock_until(m, TT_TRY), -EAGAIN);
	TU_ASSERT_ERR(tt_rwmutex_lock_until(m, tt_deadline_in(5 * MS)),
		      -ETIMEDOUT);
	/* The writer gave up: readers are welcome again. */
	TU_ASSERT_OK(tt_rwmutex_rlock_until(m, TT_TRY));
	TU_ASSERT_OK(tt_rwmutex_runlock(m));
	TU_ASSERT_OK(tt_rwmutex_runlock(m));
	TU_ASSERT_OK(tt_rwmutex_lock(m));
	TU_ASSERT_ERR(tt_rwmutex_rlock_until(m, TT_TRY), -EAGAIN);
	TU_ASSERT_OK(tt_rwmutex_unlock(m));
	TU_ASSERT_OK(tt_rwmutex_release(m));
}

/* ---- Once ------------------------------------------------------------------------ */

static int once_calls;

static void once_fn(void *p)
{
	(void)p;
	tt_sleep(5 * MS); /* others arrive while it runs */
	once_calls++;
}

typedef struct once_arg {
	tt_once *o;
	int *after; /* how many saw the effect when tt_once_do returned */
} once_arg;

static void once_user(void *p)
{
	once_arg *a = p;
	TU_ASSERT_OK(tt_once_do(a->o, once_fn, NULL));
	/* tt_once_do ordered once_fn before this read; the release passes
	 * that on to the test's acquiring load of after. */
	if (once_calls == 1)
		__atomic_fetch_add(a->after, 1, __ATOMIC_RELEASE);
}

static void test_once(void **state)
{
	(void)state;
	tt_once *o;
	TU_ASSERT_OK(tt_once_make(&o));
	once_calls = 0;
	int after = 0;
	once_arg a = {o, &after};
	for (int i = 0; i < 10; i++)
		tu_go(once_user, &a);
	TU_WAIT_FOR(__atomic_load_n(&after, __ATOMIC_ACQUIRE) == 10,
		    5 * TT_SECOND);
	assert_int_equal(once_calls, 1);
	TU_ASSERT_OK(tt_once_do(o, once_fn, NULL));
	assert_int_equal(once_calls, 1);
	TU_ASSERT_ERR(tt_once_do(o, NULL, NULL), -EINVAL);
	TU_ASSERT_OK(tt_once_release(o));
}

/* ---- Cond ------------------------------------------------------------------------- */

typedef struct cond_arg {
	tt_mutex *m;
	tt_cond *c;
	int *ready;
	int *woke;
} cond_arg;

static void cond_waiter(void *p)
{
	cond_arg *a = p;
	TU_ASSERT_OK(tt_mutex_lock(a->m));
	while (*a->ready == 0)
		TU_ASSERT_OK(tt_cond_wait(a->c));
	(*a->ready)--;
	(*a->woke)++;
	TU_ASSERT_OK(tt_mutex_unlock(a->m));
}

static void test_cond(void **state)
{
	(void)state;
	tt_mutex *m;
	tt_cond *c;
	TU_ASSERT_OK(tt_mutex_make(&m));
	TU_ASSERT_OK(tt_cond_make(&c, m));
	int ready = 0, woke = 0;
	cond_arg a = {m, c, &ready, &woke};
	for (int i = 0; i < 5; i++)
		tu_go(cond_waiter, &a);
	/* Signal wakes one. */
	TU_ASSERT_OK(tt_mutex_lock(m));
	ready = 1;
	TU_ASSERT_OK(tt_cond_signal(c));
	TU_ASSERT_OK(tt_mutex_unlock(m));
	TU_WAIT_FOR(locked_int(m, &woke) == 1, 5 * TT_SECOND);
	tu_pause();
	assert_int_equal(locked_int(m, &woke), 1);
	/* Broadcast wakes the rest. */
	TU_ASSERT_OK(tt_mutex_lock(m));
	ready = 4;
	TU_ASSERT_OK(tt_cond_broadcast(c));
	TU_ASSERT_OK(tt_mutex_unlock(m));
	TU_WAIT_FOR(locked_int(m, &woke) == 5, 5 * TT_SECOND);
	/* Wait with a deadline: times out holding the lock again. */
	TU_ASSERT_OK(tt_mutex_lock(m));
	TU_ASSERT_ERR(tt_cond_wait_until(c, tt_deadline_in(5 * MS)),
		      -ETIMEDOUT);
	TU_ASSERT_ERR(tt_mutex_trylock(m), -EAGAIN); /* still ours */
	TU_ASSERT_OK(tt_mutex_unlock(m));
	/* The cond holds its mutex: releasing ours first is fine. */
	TU_ASSERT_OK(tt_mutex_release(m));
	TU_ASSERT_OK(tt_cond_release(c));
}

/* A locker whose unlock parks (another thread's Mutex is unlocked by
 * asking its owner; a locker of the program's own may do anything): a
 * Signal meanwhile wakes the waiter, which joined the queue before it
 * unlocked, as Go's Wait does. */
typedef struct slow_locker {
	tt_mutex *m;
	tt_cond *c;
	tt_chan *unlocking;
	bool flag; /* under m */
	int wait_r;
	tt_chan *done;
} slow_locker;

static int slow_lock(void *obj)
{
	return tt_mutex_lock(((slow_locker *)obj)->m);
}

static int slow_unlock(void *obj)
{
	slow_locker *l = obj;
	int r = tt_mutex_unlock(l->m);
	TU_UNCHECKED(tt_chan_send_until(l->unlocking, NULL, 0, TT_TRY));
	TU_UNCHECKED(tt_sleep(20 * MS)); /* parked: the Signal comes now */
	return r;
}

static void slow_waiter(void *arg)
{
	slow_locker *l = arg;
	TU_ASSERT_OK(tt_mutex_lock(l->m));
	while (l->wait_r == 0 && !l->flag)
		l->wait_r = tt_cond_wait(l->c);
	TU_ASSERT_OK(tt_mutex_unlock(l->m));
	tu_done(l->done);
}

static void test_cond_signal_while_unlocking(void **state)
{
	(void)state;
	slow_locker l = {.unlocking = tu_chan(0, 1), .done = tu_chan(0, 1)};
	TU_ASSERT_OK(tt_mutex_make(&l.m));
	tt_locker k = {slow_lock, slow_unlock, &l};
	TU_ASSERT_OK(tt_cond_make_locker(&l.c, k));
	tu_go(slow_waiter, &l);
	TU_ASSERT_OK(tt_chan_recv(l.unlocking, NULL, 0, NULL));
	TU_ASSERT_OK(tt_mutex_lock(l.m));
	l.flag = true;
	TU_ASSERT_OK(tt_cond_signal(l.c));
	TU_ASSERT_OK(tt_mutex_unlock(l.m));
	bool ok = true;
	int r = tt_chan_recv_until(l.done, NULL, 0, &ok,
				   tt_deadline_in(2 * TT_SECOND));
	if (r != 0) {
		/* Lost: wake it again so that it ends. */
		TU_ASSERT_OK(tt_mutex_lock(l.m));
		TU_ASSERT_OK(tt_cond_signal(l.c));
		TU_ASSERT_OK(tt_mutex_unlock(l.m));
		TU_WAIT_DONE(l.done, 1, 5 * TT_SECOND);
	}
	TU_ASSERT_MSG(r == 0, "the Signal during the unlock was lost");
	TU_ASSERT_OK(l.wait_r);
	TU_ASSERT_OK(tt_cond_release(l.c));
	TU_ASSERT_OK(tt_mutex_release(l.m));
	TU_ASSERT_OK(tt_chan_release(l.unlocking));
	TU_ASSERT_OK(tt_chan_release(l.done));
}

/* ---- bad input and panics ---------------------------------------------------------- */

static void test_sync_bad_input(void **state)
{
	(void)state;
	TU_ASSERT_ERR(tt_wg_make(NULL), -EINVAL);
	TU_ASSERT_ERR(tt_mutex_lock(NULL), -EINVAL);
	TU_ASSERT(tu_contains(tt_last_error(), "Mutex"));
	tt_waitgroup *wg;
	TU_ASSERT_OK(tt_wg_make(&wg));
	/* A WaitGroup is not a Mutex. */
	TU_ASSERT_ERR(tt_mutex_lock((tt_mutex *)wg), -EBADF);
	TU_ASSERT_OK(tt_wg_release(wg));
	TU_ASSERT_ERR(tt_cond_make(NULL, NULL), -EINVAL);
}

static void child_negative_wg(void)
{
	tt_waitgroup *wg;
	if (tt_wg_make(&wg) != 0)
		exit(3);
	tt_wg_add(wg, -1);
}

static void child_unlock_unlocked(void)
{
	tt_mutex *m;
	if (tt_mutex_make(&m) != 0)
		exit(3);
	tt_mutex_unlock(m);
}

static void child_runlock_unlocked(void)
{
	tt_rwmutex *m;
	if (tt_rwmutex_make(&m) != 0)
		exit(3);
	tt_rwmutex_runlock(m);
}

static void child_deadlock_wg(void)
{
	tt_waitgroup *wg;
	if (tt_wg_make(&wg) != 0 || tt_wg_add(wg, 1) != 0)
		exit(3);
	TU_UNCHECKED(tt_wg_wait(wg)); /* nobody will call Done */
}

static void expect_panic(const char *name, const char *text)
{
	tu_child ch;
	assert_int_equal(tu_spawn_self(name, 30 * TT_SECOND, &ch), 0);
	TU_ASSERT_CHILD_SIGNAL(&ch, SIGABRT);
	TU_ASSERT_CONTAINS(ch.err, "tether: panic: ");
	TU_ASSERT_CONTAINS(ch.err, text);
	TU_ASSERT_CONTAINS(ch.err, "goroutine 1 [running]:");
	tu_child_free(&ch);
}

static void test_sync_panics(void **state)
{
	(void)state;
	expect_panic("negative_wg", "sync: negative WaitGroup counter");
	expect_panic("unlock_unlocked", "sync: unlock of unlocked mutex");
	expect_panic("runlock_unlocked", "sync: RUnlock of unlocked RWMutex");
	tu_child ch;
	assert_int_equal(tu_spawn_self("deadlock_wg", 30 * TT_SECOND, &ch), 0);
	TU_ASSERT_CHILD_EXIT(&ch, 2);
	TU_ASSERT_CONTAINS(ch.err,
			   "fatal error: all goroutines are asleep - deadlock!");
	TU_ASSERT_CONTAINS(ch.err, "goroutine 1 [sync.WaitGroup.Wait]:");
	tu_child_free(&ch);
}

int main(int argc, char **argv)
{
	static const tu_child_case cases[] = {
		{"negative_wg", child_negative_wg},
		{"unlock_unlocked", child_unlock_unlocked},
		{"runlock_unlocked", child_runlock_unlocked},
		{"deadlock_wg", child_deadlock_wg},
	};
	tu_child_dispatch(argc, argv, cases, sizeof cases / sizeof *cases);
	const struct CMUnitTest tests[] = {
		TU_TEST(test_wg_waits_for_all),
		TU_TEST(test_wg_many_waiters),
		TU_TEST(test_wg_deadline),
		TU_TEST(test_mutex_excludes),
		TU_TEST(test_mutex_fifo_and_trylock),
		TU_TEST(test_rwmutex),
		TU_TEST(test_once),
		TU_TEST(test_cond),
		TU_TEST(test_cond_signal_while_unlocking),
		TU_TEST(test_sync_bad_input),
		TU_TEST(test_sync_panics),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
