/* Objects used from other threads: a plain pthread (or a goroutine of
 * another thread) sends, receives, closes, waits on a WaitGroup and locks
 * a Mutex that one thread made; the owner's scheduler runs each operation
 * for it (src/sched/post.c). The pthreads here never call a check: they
 * record what they saw, and the main goroutine checks it after the join. */
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "testutil.h"

#define MS TT_MILLISECOND

/* ---- pthreads feeding a goroutine's channel ---------------------------------- */

enum { FEEDERS = 4 };

typedef struct feeder {
	pthread_t th;
	tt_chan *c;
	int id, n;
	int bad;      /* sends that did not return 0 */
	int first_err;
} feeder;

static void *feed(void *p)
{
	feeder *f = p;
	for (int i = 0; i < f->n; i++) {
		int v = f->id * f->n + i;
		int r = tt_chan_send(f->c, &v, sizeof v);
		if (r != 0 && f->bad++ == 0)
			f->first_err = r;
	}
	return NULL;
}

static void feed_into(ptrdiff_t cap)
{
	const int n = TU_SCALE(2000, 300);
	tt_chan *c = tu_chan(sizeof(int), cap);
	feeder f[FEEDERS];
	for (int i = 0; i < FEEDERS; i++) {
		f[i] = (feeder){.c = c, .id = i, .n = n};
		assert_int_equal(pthread_create(&f[i].th, NULL, feed, &f[i]),
				 0);
	}
	int total = FEEDERS * n;
	unsigned char *seen = calloc((size_t)total, 1);
	assert_non_null(seen);
	int last[FEEDERS];
	for (int i = 0; i < FEEDERS; i++)
		last[i] = -1;
	for (int k = 0; k < total; k++) {
		int v = -1;
		bool ok = false;
		TU_ASSERT_OK(tt_chan_recv_until(c, &v, sizeof v, &ok,
						tt_deadline_in(30 * TT_SECOND)));
		assert_true(ok);
		TU_ASSERT_RANGE(v, 0, total - 1);
		TU_ASSERT_MSG(!seen[v], "value %d received twice", v);
		seen[v] = 1;
		/* One sender's values come in the order it sent them. */
		int who = v / n;
		TU_ASSERT_GT(v, last[who]);
		last[who] = v;
	}
	for (int i = 0; i < FEEDERS; i++) {
		assert_int_equal(pthread_join(f[i].th, NULL), 0);
		TU_ASSERT_MSG(f[i].bad == 0, "feeder %d: %d sends failed (%d)",
			      i, f[i].bad, f[i].first_err);
	}
	assert_int_equal(tt_chan_len(c), 0);
	free(seen);
	TU_ASSERT_OK(tt_chan_release(c));
}

static void test_pthreads_feed_unbuffered(void **state)
{
	(void)state;
	TU_REQUIRE_THREADS();
	feed_into(0);
}

static void test_pthreads_feed_buffered(void **state)
{
	(void)state;
	TU_REQUIRE_THREADS();
	feed_into(8);
}

/* One pthread feeding a receiver that waits without a deadline: both
 * threads go idle (no timer, nothing runnable) thousands of times, each
 * with a post on its way to the other. The deadlock check must never
 * take that for "all goroutines are asleep" (it would end the process). */
static void test_feed_without_deadline(void **state)
{
	(void)state;
	TU_REQUIRE_THREADS();
	const int n = TU_SCALE(200000, 5000);
	tt_chan *c = tu_chan(sizeof(int), 0);
	feeder f = {.c = c, .id = 0, .n = n};
	assert_int_equal(pthread_create(&f.th, NULL, feed, &f), 0);
	long long sum = 0;
	for (int k = 0; k < n; k++) {
		int v = -1;
		bool ok = false;
		TU_ASSERT_OK(tt_chan_recv(c, &v, sizeof v, &ok));
		assert_true(ok);
		assert_int_equal(v, k);
		sum += v;
	}
	assert_int_equal(pthread_join(f.th, NULL), 0);
	assert_int_equal(f.bad, 0);
	assert_true(sum == (long long)n * (n - 1) / 2);
	TU_ASSERT_OK(tt_chan_release(c));
}

/* The owner joins a pthread through tt_blocking while that thread
 * still sends on the owner's channel: the owner parks in its poller,
 * where the posts reach it, so the join ends. */
typedef struct joined {
	pthread_t th;
	int r;
} joined;

static void join_it(void *p)
{
	joined *j = p;
	j->r = pthread_join(j->th, NULL);
}

static void test_join_through_blocking(void **state)
{
	(void)state;
	TU_REQUIRE_THREADS();
	const int n = 3;
	tt_chan *c = tu_chan(sizeof(int), 4);
	feeder f = {.c = c, .id = 0, .n = n};
	assert_int_equal(pthread_create(&f.th, NULL, feed, &f), 0);
	joined j = {.th = f.th, .r = -1};
	TU_ASSERT_OK(tt_blocking(join_it, &j));
	assert_int_equal(j.r, 0);
	assert_int_equal(f.bad, 0);
	assert_int_equal(tt_chan_len(c), n);
	for (int k = 0; k < n; k++) {
		int v = -1;
		TU_ASSERT_OK(tt_chan_recv(c, &v, sizeof v, NULL));
		assert_int_equal(v, k);
	}
	TU_ASSERT_OK(tt_chan_release(c));
}

/* ---- a WaitGroup that pthreads mark done ------------------------------------- */

typedef struct wg_thread {
	pthread_t th;
	tt_waitgroup *wg;
	int *work;
	int r;
	int64_t count; /* tt_wg_count before the Done */
} wg_thread;

static void *wg_work(void *p)
{
	wg_thread *t = p;
	struct timespec ts = {0, 5 * 1000 * 1000};
	nanosleep(&ts, NULL);
	__atomic_fetch_add(t->work, 1, __ATOMIC_RELAXED);
	t->count = tt_wg_count(t->wg);
	t->r = tt_wg_done(t->wg);
	return NULL;
}

typedef struct wg_waiter {
	tt_waitgroup *wg;
	int *work;
	tt_chan *done;
	int seen; /* work done when Wait returned */
} wg_waiter;

static void wg_wait_goroutine(void *p)
{
	wg_waiter *w = p;
	TU_ASSERT_OK(tt_wg_wait_until(w->wg, tt_deadline_in(30 * TT_SECOND)));
	w->seen = __atomic_load_n(w->work, __ATOMIC_RELAXED);
	tu_done(w->done);
}

static void test_pthreads_wg_done(void **state)
{
	(void)state;
	TU_REQUIRE_THREADS();
	enum { N = 8 };
	tt_waitgroup *wg;
	TU_ASSERT_OK(tt_wg_make(&wg));
	TU_ASSERT_OK(tt_wg_add(wg, N));
	int work = 0;
	tt_chan *done = tu_chan(0, 0);
	wg_waiter w = {.wg = wg, .work = &work, .done = done};
	tu_go(wg_wait_goroutine, &w);
	wg_thread t[N];
	for (int i = 0; i < N; i++) {
		t[i] = (wg_thread){.wg = wg, .work = &work};
		assert_int_equal(pthread_create(&t[i].th, NULL, wg_work, &t[i]),
				 0);
	}
	TU_WAIT_DONE(done, 1, 30 * TT_SECOND);
	/* Every Done happened before the Wait returned. */
	assert_int_equal(w.seen, N);
	for (int i = 0; i < N; i++) {
		assert_int_equal(pthread_join(t[i].th, NULL), 0);
		assert_int_equal(t[i].r, 0);
		TU_ASSERT_RANGE(t[i].count, 1, N);
	}
	assert_int_equal(tt_wg_count(wg), 0);
	TU_ASSERT_OK(tt_wg_release(wg));
	TU_ASSERT_OK(tt_chan_release(done));
}

/* ---- a goroutine of another thread on this thread's channel ------------------- */

typedef struct remote {
	tt_chan *c;       /* made by the main thread, cap 1 */
	tt_chan *ready;   /* made by the main thread: one token per step */
	int try_empty;    /* TT_TRY recv on the empty channel */
	int timed;        /* recv with a 20 ms deadline */
	int64_t waited;   /* how long that took */
	int got, got_r;   /* the value the main goroutine sent */
	bool got_ok;
	ptrdiff_t len;    /* len after the goroutine's own send */
	int sent_r, try_full, close_r;
	bool closed_ok;   /* ok of a recv after its close (false) */
	int closed_r;
} remote;

static void *remote_thread(void *p)
{
	remote *m = p;
	int v = 0;
	bool ok = true;
	m->try_empty = tt_chan_recv_until(m->c, &v, sizeof v, &ok, TT_TRY);
	int64_t t0 = tt_now();
	m->timed = tt_chan_recv_until(m->c, &v, sizeof v, &ok,
				      tt_deadline_in(20 * MS));
	m->waited = tt_now() - t0;
	/* Tell main to send, then take its value. */
	m->sent_r = tt_chan_send(m->ready, NULL, 0);
	m->got_r = tt_chan_recv(m->c, &m->got, sizeof m->got, &m->got_ok);
	/* Fill the buffer, see it full, read its length, close it. */
	int x = 77;
	m->sent_r |= tt_chan_send(m->c, &x, sizeof x);
	m->try_full = tt_chan_send_until(m->c, &x, sizeof x, TT_TRY);
	m->len = tt_chan_len(m->c);
	m->close_r = tt_chan_close(m->c);
	m->closed_r = tt_chan_recv(m->c, &v, sizeof v, &ok); /* buffered 77 */
	if (m->closed_r == 0 && ok && v == 77)
		m->closed_r = tt_chan_recv(m->c, &v, sizeof v, &m->closed_ok);
	else
		m->closed_r = -1000;
	m->sent_r |= tt_chan_send(m->ready, NULL, 0);
	return NULL;
}

static void test_remote_deadlines_close_len(void **state)
{
	(void)state;
	TU_REQUIRE_THREADS();
	remote m = {.c = tu_chan(sizeof(int), 1), .ready = tu_chan(0, 0),
		    .closed_ok = true};
	assert_int_equal(tt_chan_cap(m.c), 1);
	pthread_t th;
	assert_int_equal(pthread_create(&th, NULL, remote_thread, &m), 0);
	TU_WAIT_DONE(m.ready, 1, 30 * TT_SECOND);
	int v = 41;
	TU_ASSERT_OK(tt_chan_send(m.c, &v, sizeof v));
	TU_WAIT_DONE(m.ready, 1, 30 * TT_SECOND);
	assert_int_equal(pthread_join(th, NULL), 0);

	assert_int_equal(m.try_empty, -EAGAIN);
	assert_int_equal(m.timed, -ETIMEDOUT);
	TU_ASSERT_GE(m.waited, 20 * MS);
	TU_ASSERT_LT(m.waited, 20 * MS + TU_SLACK_NS);
	assert_int_equal(m.sent_r, 0);
	assert_int_equal(m.got_r, 0);
	assert_true(m.got_ok);
	assert_int_equal(m.got, 41);
	assert_int_equal(m.try_full, -EAGAIN);
	assert_int_equal(m.len, 1);
	assert_int_equal(m.close_r, 0);
	assert_int_equal(m.closed_r, 0);
	assert_false(m.closed_ok);
	/* The close is the main thread's to see too. */
	bool ok = true;
	TU_ASSERT_OK(tt_chan_recv(m.c, &v, sizeof v, &ok));
	assert_false(ok);
	TU_ASSERT_OK(tt_chan_release(m.c));
	TU_ASSERT_OK(tt_chan_release(m.ready));
}

/* A receiver of this thread blocked on a channel whose sender is a
 * goroutine of another thread: the values meet in this thread. And a
 * reference taken and dropped from the other thread. */
typedef struct pingpong {
	tt_chan *ping, *pong;
	int rounds, bad, retain_r, release_r;
} pingpong;

static void *ponger(void *p)
{
	pingpong *pp = p;
	pp->retain_r = tt_chan_retain(pp->ping);
	for (int i = 0; i < pp->rounds; i++) {
		int v = -1;
		bool ok = false;
		if (tt_chan_recv(pp->ping, &v, sizeof v, &ok) != 0 || !ok ||
		    v != i) {
			pp->bad++;
			break;
		}
		v = -v;
		if (tt_chan_send(pp->pong, &v, sizeof v) != 0) {
			pp->bad++;
			break;
		}
	}
	pp->release_r = tt_chan_release(pp->ping);
	return NULL;
}

static void test_cross_thread_pingpong(void **state)
{
	(void)state;
	TU_REQUIRE_THREADS();
	pingpong pp = {.ping = tu_chan(sizeof(int), 0),
		       .pong = tu_chan(sizeof(int), 0),
		       .rounds = TU_SCALE(3000, 300)};
	pthread_t th;
	assert_int_equal(pthread_create(&th, NULL, ponger, &pp), 0);
	for (int i = 0; i < pp.rounds; i++) {
		TU_ASSERT_OK(tt_chan_send(pp.ping, &i, sizeof i));
		int v = 0;
		bool ok = false;
		TU_ASSERT_OK(tt_chan_recv_until(pp.pong, &v, sizeof v, &ok,
						tt_deadline_in(30 * TT_SECOND)));
		assert_true(ok);
		assert_int_equal(v, -i);
	}
	assert_int_equal(pthread_join(th, NULL), 0);
	assert_int_equal(pp.bad, 0);
	assert_int_equal(pp.retain_r, 0);
	assert_int_equal(pp.release_r, 0);
	TU_ASSERT_OK(tt_chan_release(pp.ping));
	TU_ASSERT_OK(tt_chan_release(pp.pong));
}

/* ---- a Mutex shared by threads -------------------------------------------------- */

typedef struct locker {
	pthread_t th;
	tt_mutex *m;
	long *counter;
	int n, bad, try_busy;
	tt_chan *done;
} locker;

static void *lock_loop(void *p)
{
	locker *l = p;
	for (int i = 0; i < l->n; i++) {
		if (tt_mutex_lock(l->m) != 0) {
			l->bad++;
			continue;
		}
		/* A plain increment: the Mutex is what orders it. */
		long v = *l->counter;
		if ((i & 63) == 0)
			sched_yield();
		*l->counter = v + 1;
		if (tt_mutex_unlock(l->m) != 0)
			l->bad++;
	}
	if (tt_chan_send(l->done, NULL, 0) != 0)
		l->bad++;
	return NULL;
}

static void lock_goroutine(void *p)
{
	locker *l = p;
	for (int i = 0; i < l->n; i++) {
		TU_ASSERT_OK(tt_mutex_lock(l->m));
		long v = *l->counter;
		if ((i & 15) == 0)
			tt_yield();
		*l->counter = v + 1;
		TU_ASSERT_OK(tt_mutex_unlock(l->m));
	}
	tu_done(l->done);
}

typedef struct holder {
	tt_mutex *m;
	tt_chan *held, *go;
	int r;
} holder;

static void *hold(void *p)
{
	holder *h = p;
	h->r = tt_mutex_lock(h->m);
	h->r |= tt_chan_send(h->held, NULL, 0);
	bool ok;
	h->r |= tt_chan_recv(h->go, NULL, 0, &ok);
	h->r |= tt_mutex_unlock(h->m);
	return NULL;
}

static void test_mutex_across_threads(void **state)
{
	(void)state;
	TU_REQUIRE_THREADS();
	enum { THREADS = 2, GOROUTINES = 2 };
	const int n = TU_SCALE(1000, 150);
	tt_mutex *m;
	TU_ASSERT_OK(tt_mutex_make(&m));
	long counter = 0;
	tt_chan *done = tu_chan(0, 0);
	locker l[THREADS + GOROUTINES];
	for (int i = 0; i < THREADS + GOROUTINES; i++)
		l[i] = (locker){.m = m, .counter = &counter, .n = n,
				.done = done};
	for (int i = 0; i < GOROUTINES; i++)
		tu_go(lock_goroutine, &l[THREADS + i]);
	for (int i = 0; i < THREADS; i++)
		assert_int_equal(
			pthread_create(&l[i].th, NULL, lock_loop, &l[i]), 0);
	TU_WAIT_DONE(done, THREADS + GOROUTINES, 60 * TT_SECOND);
	for (int i = 0; i < THREADS; i++) {
		assert_int_equal(pthread_join(l[i].th, NULL), 0);
		assert_int_equal(l[i].bad, 0);
	}
	assert_int_equal(counter, (long)n * (THREADS + GOROUTINES));
	/* Held by a pthread: TryLock here fails; its Unlock frees it. */
	holder h = {.m = m, .held = tu_chan(0, 0), .go = tu_chan(0, 0)};
	pthread_t th;
	assert_int_equal(pthread_create(&th, NULL, hold, &h), 0);
	TU_WAIT_DONE(h.held, 1, 30 * TT_SECOND);
	assert_int_equal(tt_mutex_trylock(m), -EAGAIN);
	tu_done(h.go);
	TU_ASSERT_OK(tt_mutex_lock_until(m, tt_deadline_in(30 * TT_SECOND)));
	assert_int_equal(pthread_join(th, NULL), 0);
	assert_int_equal(h.r, 0);
	TU_ASSERT_OK(tt_mutex_unlock(m));
	TU_ASSERT_OK(tt_mutex_release(m));
	TU_ASSERT_OK(tt_chan_release(h.held));
	TU_ASSERT_OK(tt_chan_release(h.go));
	TU_ASSERT_OK(tt_chan_release(done));
}

/* ---- a thread that ended --------------------------------------------------------- */

static void *make_and_end(void *p)
{
	tt_chan **out = p;
	if (tt_chan_make(out, sizeof(int), 0) != 0)
		*out = NULL;
	return NULL;
}

static void test_channel_of_ended_thread(void **state)
{
	(void)state;
	TU_REQUIRE_THREADS();
	tt_chan *c = NULL;
	pthread_t th;
	assert_int_equal(pthread_create(&th, NULL, make_and_end, &c), 0);
	assert_int_equal(pthread_join(th, NULL), 0);
	assert_non_null(c);
	int v = 5;
	assert_int_equal(tt_chan_send_until(c, &v, sizeof v, TT_TRY), -EPIPE);
	TU_ASSERT_CONTAINS(tt_last_error(), "belongs to a thread that has ended");
	bool ok;
	assert_int_equal(tt_chan_recv(c, &v, sizeof v, &ok), -EPIPE);
	/* Its size is still its own: a mismatch says so before any post. */
	assert_int_equal(tt_chan_send(c, &v, 1), -EINVAL);
}

/* ---- contexts from other threads -------------------------------------------------- */

static int ctx_key;

typedef struct ctx_user {
	tt_ctx *ctx, *val, *cause_ctx;
	tt_chan *waited; /* the waiter goroutine's done token */
	int err_before, err_after, retain, release, cancel, cause_cancel;
	int cause, cancel_value, cause_positive, recv_ok_false;
	int64_t deadline;
	void *value;
	bool done_is_same;
	char value_err[200], positive_err[200];
} ctx_user;

static void *ctx_pthread(void *p)
{
	ctx_user *u = p;
	u->err_before = tt_ctx_err(u->ctx);
	u->deadline = tt_ctx_deadline(u->ctx);
	u->value = tt_ctx_value(u->val, &ctx_key);
	u->done_is_same = tt_ctx_done(u->val) == tt_ctx_done(u->ctx);
	u->retain = tt_ctx_retain(u->ctx);
	/* What a cancel cannot do is said here, on the caller's thread. */
	u->cancel_value = tt_ctx_cancel(u->val);
	snprintf(u->value_err, sizeof u->value_err, "%s", tt_last_error());
	u->cause_positive = tt_ctx_cancel_cause(u->cause_ctx, 5);
	snprintf(u->positive_err, sizeof u->positive_err, "%s",
		 tt_last_error());
	u->cancel = tt_ctx_cancel(u->ctx);
	/* The owner runs posts in order: the cancel is seen. */
	u->err_after = tt_ctx_err(u->ctx);
	u->cause_cancel = tt_ctx_cancel_cause(u->cause_ctx, -ETIMEDOUT);
	u->cause = tt_ctx_cause(u->cause_ctx);
	/* Done is the owner's channel: a receive from here is a post too. */
	bool ok = true;
	if (tt_chan_recv(tt_ctx_done(u->ctx), NULL, 0, &ok) == 0 && !ok)
		u->recv_ok_false = 1;
	u->release = tt_ctx_release(u->ctx);
	return NULL;
}

static void ctx_waiter(void *p)
{
	ctx_user *u = p;
	bool ok = true;
	TU_ASSERT_OK(tt_chan_recv(tt_ctx_done(u->ctx), NULL, 0, &ok));
	TU_ASSERT(!ok);
	TU_ASSERT_EQ(tt_ctx_err(u->ctx), -ECANCELED);
	tu_done(u->waited);
}

static void test_ctx_across_threads(void **state)
{
	(void)state;
	TU_REQUIRE_THREADS();
	ctx_user u = {0};
	TU_ASSERT_OK(tt_ctx_with_cancel(&u.ctx, tt_ctx_background()));
	TU_ASSERT_OK(tt_ctx_with_value(&u.val, u.ctx, &ctx_key, &u));
	TU_ASSERT_OK(tt_ctx_with_cancel_cause(&u.cause_ctx,
					      tt_ctx_background()));
	u.waited = tu_chan(0, 0);
	tu_go(ctx_waiter, &u);
	pthread_t th;
	assert_int_equal(pthread_create(&th, NULL, ctx_pthread, &u), 0);
	/* Join where the posts run (tt_blocking parks in the poller). */
	joined j = {.th = th, .r = -1};
	TU_ASSERT_OK(tt_blocking(join_it, &j));
	assert_int_equal(j.r, 0);
	TU_WAIT_DONE(u.waited, 1, 10 * TT_SECOND);
	assert_int_equal(u.err_before, 0);
	assert_true(u.deadline == TT_FOREVER);
	assert_ptr_equal(u.value, &u);
	assert_true(u.done_is_same);
	assert_int_equal(u.retain, 0);
	assert_int_equal(u.cancel_value, -EINVAL);
	TU_ASSERT_CONTAINS(u.value_err, "has no cancel");
	assert_int_equal(u.cause_positive, -EINVAL);
	TU_ASSERT_CONTAINS(u.positive_err, "is not a negative error code");
	assert_int_equal(u.cancel, 0);
	assert_int_equal(u.err_after, -ECANCELED);
	assert_int_equal(u.cause_cancel, 0);
	assert_int_equal(u.cause, -ETIMEDOUT);
	assert_int_equal(u.recv_ok_false, 1);
	assert_int_equal(u.release, 0);
	/* Here too. */
	assert_int_equal(tt_ctx_err(u.ctx), -ECANCELED);
	assert_int_equal(tt_ctx_cause(u.cause_ctx), -ETIMEDOUT);
	assert_int_equal(tt_ctx_err(u.cause_ctx), -ECANCELED);
	TU_ASSERT_OK(tt_ctx_release(u.val));
	TU_ASSERT_OK(tt_ctx_release(u.ctx));
	TU_ASSERT_OK(tt_ctx_release(u.cause_ctx));
	TU_ASSERT_OK(tt_chan_release(u.waited));
}

/* A cancel from a pthread never waits for the owner: here the owner is
 * in pthread_join, outside tether, until the canceller ends. */
static void *cancel_and_end(void *p)
{
	return (void *)(intptr_t)tt_ctx_cancel(p);
}

static void test_ctx_cancel_while_owner_away(void **state)
{
	(void)state;
	TU_REQUIRE_THREADS();
	tt_ctx *c;
	TU_ASSERT_OK(tt_ctx_with_cancel(&c, tt_ctx_background()));
	pthread_t th;
	assert_int_equal(pthread_create(&th, NULL, cancel_and_end, c), 0);
	void *r = (void *)1;
	assert_int_equal(pthread_join(th, &r), 0);
	assert_int_equal((int)(intptr_t)r, 0);
	/* The owner runs the cancel once it is back inside tether. */
	bool ok = true;
	TU_ASSERT_OK(tt_chan_recv_until(tt_ctx_done(c), NULL, 0, &ok,
					tt_deadline_in(10 * TT_SECOND)));
	assert_false(ok);
	assert_int_equal(tt_ctx_err(c), -ECANCELED);
	TU_ASSERT_OK(tt_ctx_release(c));
}

/* ---- what a user must see ------------------------------------------------------------ */

static tt_chan *shared;

static void *foreign_sender(void *arg)
{
	(void)arg;
	int v = 1;
	fprintf(stderr, "tu-sending\n");
	TU_UNCHECKED(tt_chan_send(shared, &v, sizeof v));
	return NULL;
}

static void child_send_closed(void)
{
	if (tt_chan_make(&shared, sizeof(int), 0) != 0 ||
	    tt_chan_close(shared) != 0)
		exit(3);
	pthread_t th;
	if (pthread_create(&th, NULL, foreign_sender, NULL) != 0)
		exit(3);
	/* Park where the post can run; the panic ends the process. */
	TU_UNCHECKED(tt_sleep(10 * TT_SECOND));
	fprintf(stderr, "tu-survived\n");
}

static void test_send_on_closed_from_pthread(void **state)
{
	(void)state;
	TU_REQUIRE_THREADS();
	tu_child c;
	assert_int_equal(tu_spawn_self("send_closed", 30 * TT_SECOND, &c), 0);
	assert_false(c.timed_out);
	TU_ASSERT_CHILD_SIGNAL(&c, SIGABRT);
	TU_ASSERT_CONTAINS(c.err, "tu-sending");
	TU_ASSERT_NOT_CONTAINS(c.err, "tu-survived");
	TU_ASSERT_CONTAINS(c.err, "tether: panic: send on closed channel");
	/* The stack is the sender's, the pthread's, with file:line. */
	TU_ASSERT_CONTAINS(c.err, "foreign_sender");
	TU_ASSERT_CONTAINS(c.err, "test_foreign.c:");
	TU_ASSERT_NOT_CONTAINS(c.err, "child_send_closed");
	tu_child_free(&c);
}

static tt_chan *never;

static void *foreign_waiter(void *arg)
{
	(void)arg;
	int v;
	bool ok;
	fprintf(stderr, "tu-waiting\n");
	TU_UNCHECKED(tt_chan_recv(never, &v, sizeof v, &ok));
	return NULL;
}

static void child_deadlock_two_threads(void)
{
	if (tt_chan_make(&never, sizeof(int), 0) != 0)
		exit(3);
	pthread_t th;
	if (pthread_create(&th, NULL, foreign_waiter, NULL) != 0)
		exit(3);
	/* Both threads wait for a send nobody will make. */
	int v;
	bool ok;
	TU_UNCHECKED(tt_chan_recv(never, &v, sizeof v, &ok));
	fprintf(stderr, "tu-survived\n");
}

static void *sleeper(void *arg)
{
	(void)arg;
	struct timespec ts = {0, 600 * 1000 * 1000};
	nanosleep(&ts, NULL);
	int v = 9;
	TU_UNCHECKED(tt_chan_send(never, &v, sizeof v));
	return NULL;
}

static void child_late_sender(void)
{
	if (tt_chan_make(&never, sizeof(int), 0) != 0)
		exit(3);
	pthread_t th;
	if (pthread_create(&th, NULL, sleeper, NULL) != 0)
		exit(3);
	/* The sleeper is awake as far as tether knows: no deadlock. */
	int v = 0;
	bool ok = false;
	if (tt_chan_recv(never, &v, sizeof v, &ok) != 0 || !ok || v != 9)
		exit(4);
	pthread_join(th, NULL);
	fprintf(stderr, "tu-received\n");
}

static void test_deadlock_is_process_wide(void **state)
{
	(void)state;
	TU_REQUIRE_THREADS();
	tu_child c;
	/* Under TSan its background thread starts with the first
	 * pthread_create, after tether counted the runtime's threads: one
	 * thread more than tether knows keeps the report back (it is never
	 * a false one), so the check is the plain build's. */
	if (TU_TSAN)
		goto late;
	assert_int_equal(
		tu_spawn_self("deadlock_two_threads", 30 * TT_SECOND, &c), 0);
	assert_false(c.timed_out);
	TU_ASSERT_CHILD_EXIT(&c, 2);
	TU_ASSERT_CONTAINS(c.err, "tu-waiting");
	TU_ASSERT_NOT_CONTAINS(c.err, "tu-survived");
	TU_ASSERT_CONTAINS(c.err,
			   "fatal error: all goroutines are asleep - deadlock!");
	TU_ASSERT_CONTAINS(c.err, "[chan receive]:");
	tu_child_free(&c);
late:
	assert_int_equal(tu_spawn_self("late_sender", 30 * TT_SECOND, &c), 0);
	assert_false(c.timed_out);
	TU_ASSERT_CHILD_EXIT(&c, 0);
	TU_ASSERT_CONTAINS(c.err, "tu-received");
	TU_ASSERT_NOT_CONTAINS(c.err, "deadlock");
	tu_child_free(&c);

}

int main(int argc, char **argv)
{
	static const tu_child_case cases[] = {
		{"send_closed", child_send_closed},
		{"deadlock_two_threads", child_deadlock_two_threads},
		{"late_sender", child_late_sender},
	};
	tu_child_dispatch(argc, argv, cases, sizeof cases / sizeof *cases);
	const struct CMUnitTest tests[] = {
		TU_TEST(test_pthreads_feed_unbuffered),
		TU_TEST(test_pthreads_feed_buffered),
		TU_TEST(test_feed_without_deadline),
		TU_TEST(test_join_through_blocking),
		TU_TEST(test_pthreads_wg_done),
		TU_TEST(test_remote_deadlines_close_len),
		TU_TEST(test_cross_thread_pingpong),
		TU_TEST(test_mutex_across_threads),
		TU_TEST(test_ctx_across_threads),
		TU_TEST(test_ctx_cancel_while_owner_away),
		TU_TEST(test_channel_of_ended_thread),
		TU_TEST(test_send_on_closed_from_pthread),
		TU_TEST(test_deadlock_is_process_wide),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
