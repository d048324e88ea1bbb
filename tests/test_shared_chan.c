/* Shared channels (src/chan/chan.h): once another thread has used a
 * channel, every operation on it holds its lock, and other threads send
 * and receive themselves when they need not wait. These tests race those
 * direct operations against the owner's selects, deadlines and closes,
 * and check that every value arrives exactly once. The pthreads never
 * call a check: they record what they saw, and the main goroutine checks
 * it after the join. */
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "testutil.h"

#define MS TT_MILLISECOND

/* ---- a deadline that races a hand-off from another thread ---------------- */

typedef struct racer {
	pthread_t th;
	tt_chan *c;
	int n;
	_Atomic int sent; /* sends that returned 0 */
	int bad, first_err;
} racer;

static void *race_sender(void *p)
{
	racer *r = p;
	for (int i = 0; i < r->n; i++) {
		/* Paced, so that the receiver is often parked (its deadline
		 * close) when the value comes. */
		int64_t until = tt_now() + (i % 8) * TT_MICROSECOND;
		while (tt_now() < until)
			;
		int rc = tt_chan_send(r->c, &i, sizeof i);
		if (rc != 0) {
			if (r->bad++ == 0)
				r->first_err = rc;
			continue;
		}
		atomic_fetch_add(&r->sent, 1);
	}
	return NULL;
}

/* The receiver waits with deadlines so short that many fire while the
 * sender is handing it a value: a value the sender counted as sent must
 * never be lost to a timeout (the receive then returns it instead). */
static void test_deadline_races_handoff(void **state)
{
	(void)state;
	TU_REQUIRE_THREADS();
	racer r = {.c = tu_chan(sizeof(int), 0), .n = TU_SCALE(20000, 2000)};
	assert_int_equal(pthread_create(&r.th, NULL, race_sender, &r), 0);
	int next = 0, timeouts = 0;
	int64_t give_up = tt_deadline_in(60 * TT_SECOND);
	while (next < r.n && tt_now() < give_up) {
		int v = -1;
		bool ok = false;
		int rc = tt_chan_recv_until(
			r.c, &v, sizeof v, &ok,
			tt_deadline_in((1 + next % 5) * TT_MICROSECOND));
		if (rc == -ETIMEDOUT) {
			timeouts++;
			continue;
		}
		TU_ASSERT_OK(rc);
		assert_true(ok);
		/* One sender: its values come in order, none skipped. */
		assert_int_equal(v, next);
		next++;
	}
	tu_join_parked(r.th);
	assert_int_equal(r.bad, 0);
	assert_int_equal(next, r.n);
	assert_int_equal(atomic_load(&r.sent), r.n);
	assert_int_equal(tt_chan_len(r.c), 0);
	TU_ASSERT_OK(tt_chan_release(r.c));
	print_message("  %d receives timed out\n", timeouts);
}

/* ---- many threads, selects, deadlines ----------------------------------------- */

enum { FEEDERS = 3, DRAINERS = 2, CONSUMERS = 3 };

typedef struct world {
	tt_chan *in, *in0; /* fed by pthreads: buffered, unbuffered */
	tt_chan *out;      /* fed by a goroutine, drained by pthreads */
	int n;             /* values per feeder */
	int m;             /* values sent on out */
	_Atomic unsigned char *seen; /* FEEDERS * n */
	_Atomic int got;
	int64_t give_up;
	tt_waitgroup *wg;
} world;

typedef struct feeder {
	pthread_t th;
	world *w;
	int id;
	int bad, first_err;
} feeder;

static void *feed(void *p)
{
	feeder *f = p;
	world *w = f->w;
	for (int i = 0; i < w->n; i++) {
		int v = f->id * w->n + i;
		/* Each value goes to one of the channels, by its index, with
		 * now and then a try first (a full or empty buffer answered
		 * on this thread). */
		tt_chan *c = (i & 1) ? w->in0 : w->in;
		int rc = -EAGAIN;
		if (i % 5 == 0)
			rc = tt_chan_send_until(c, &v, sizeof v, TT_TRY);
		if (rc == -EAGAIN)
			rc = tt_chan_send(c, &v, sizeof v);
		if (rc != 0 && f->bad++ == 0)
			f->first_err = rc;
	}
	return NULL;
}

typedef struct drainer {
	pthread_t th;
	world *w;
	int *vals, nvals;
	int closed_seen;
	int bad, first_err;
} drainer;

static void *drain(void *p)
{
	drainer *d = p;
	world *w = d->w;
	while (tt_now() < w->give_up) {
		int v = -1;
		bool ok = false;
		int rc = tt_chan_recv_until(w->out, &v, sizeof v, &ok,
					    tt_deadline_in(MS));
		if (rc == -ETIMEDOUT)
			continue;
		if (rc != 0) {
			if (d->bad++ == 0)
				d->first_err = rc;
			break;
		}
		if (!ok) {
			d->closed_seen = 1;
			break;
		}
		if (d->nvals < w->m)
			d->vals[d->nvals] = v;
		d->nvals++;
	}
	return NULL;
}

static void producer(void *arg)
{
	world *w = arg;
	uint64_t rng = 7;
	for (int i = 0; i < w->m; i++) {
		if (tu_rand_n(&rng, 2)) {
			TU_ASSERT_OK(tt_chan_send(w->out, &i, sizeof i));
			continue;
		}
		/* A select send with a deadline that often passes first. */
		for (;;) {
			tt_case k = TT_CASE_SEND_FROM(w->out, &i);
			int r = tt_select(&k, 1, tt_deadline_in(100 *
							     TT_MICROSECOND));
			if (r == 0)
				break;
			assert_int_equal(r, -ETIMEDOUT);
		}
	}
	TU_ASSERT_OK(tt_chan_close(w->out));
	TU_ASSERT_OK(tt_wg_done(w->wg));
}

static void take(world *w, int v)
{
	int total = FEEDERS * w->n;
	TU_ASSERT_RANGE(v, 0, total - 1);
	TU_ASSERT_MSG(atomic_fetch_add(&w->seen[v], 1) == 0,
		      "value %d received twice", v);
	atomic_fetch_add(&w->got, 1);
}

static void consumer(void *arg)
{
	world *w = arg;
	int total = FEEDERS * w->n;
	uint64_t rng = (uint64_t)tt_goid() * 0x9e3779b97f4a7c15u;
	while (atomic_load(&w->got) < total) {
		TU_ASSERT_MSG(tt_now() < w->give_up,
			      "%d of %d values after the time limit",
			      atomic_load(&w->got), total);
		int v = -1, u = -1;
		bool ok = true, ok0 = true;
		int64_t dl = tt_deadline_in((int64_t)tu_rand_n(&rng, 300) *
					    TT_MICROSECOND);
		switch (tu_rand_n(&rng, 4)) {
		case 0: { /* a select over both, with a deadline */
			tt_case ks[2] = {TT_CASE_RECV_INTO(w->in, &v, &ok),
					 TT_CASE_RECV_INTO(w->in0, &u, &ok0)};
			int r = tt_select(ks, 2, dl);
			if (r == -ETIMEDOUT)
				break;
			TU_ASSERT_RANGE(r, 0, 1);
			assert_true(r == 0 ? ok : ok0);
			take(w, r == 0 ? v : u);
			break;
		}
		case 1: { /* the same with a try */
			tt_case ks[2] = {TT_CASE_RECV_INTO(w->in0, &u, &ok0),
					 TT_CASE_RECV_INTO(w->in, &v, &ok)};
			int r = tt_select_default(ks, 2);
			if (r == TT_DEFAULT) {
				tt_yield();
				break;
			}
			TU_ASSERT_RANGE(r, 0, 1);
			take(w, r == 0 ? u : v);
			break;
		}
		default: { /* one channel, with a deadline */
			tt_chan *c = tu_rand_n(&rng, 2) ? w->in : w->in0;
			int r = tt_chan_recv_until(c, &v, sizeof v, &ok, dl);
			if (r == -ETIMEDOUT)
				break;
			TU_ASSERT_OK(r);
			assert_true(ok);
			take(w, v);
		}
		}
	}
	TU_ASSERT_OK(tt_wg_done(w->wg));
}

static void test_threads_selects_deadlines(void **state)
{
	(void)state;
	TU_REQUIRE_THREADS();
	world w = {.in = tu_chan(sizeof(int), 4),
		   .in0 = tu_chan(sizeof(int), 0),
		   .out = tu_chan(sizeof(int), 2),
		   .n = TU_SCALE(6000, 600),
		   .m = TU_SCALE(6000, 600),
		   .give_up = tt_deadline_in(60 * TT_SECOND)};
	int total = FEEDERS * w.n;
	w.seen = calloc((size_t)total, 1);
	assert_non_null(w.seen);
	TU_ASSERT_OK(tt_wg_make(&w.wg));
	TU_ASSERT_OK(tt_wg_add(w.wg, CONSUMERS + 1));
	for (int i = 0; i < CONSUMERS; i++)
		tu_go(consumer, &w);
	tu_go(producer, &w);
	feeder f[FEEDERS];
	for (int i = 0; i < FEEDERS; i++) {
		f[i] = (feeder){.w = &w, .id = i};
		assert_int_equal(pthread_create(&f[i].th, NULL, feed, &f[i]),
				 0);
	}
	drainer d[DRAINERS];
	for (int i = 0; i < DRAINERS; i++) {
		d[i] = (drainer){.w = &w};
		d[i].vals = calloc((size_t)w.m, sizeof(int));
		assert_non_null(d[i].vals);
		assert_int_equal(pthread_create(&d[i].th, NULL, drain, &d[i]),
				 0);
	}
	TU_ASSERT_OK(tt_wg_wait(w.wg));
	for (int i = 0; i < FEEDERS; i++) {
		tu_join_parked(f[i].th);
		TU_ASSERT_MSG(f[i].bad == 0, "feeder %d: %d sends failed (%d)",
			      i, f[i].bad, f[i].first_err);
	}
	for (int v = 0; v < total; v++)
		TU_ASSERT_MSG(atomic_load(&w.seen[v]) == 1,
			      "value %d received %d times", v,
			      atomic_load(&w.seen[v]));
	assert_int_equal(tt_chan_len(w.in), 0);

	/* out: every value once, each drainer's in the order sent. */
	unsigned char *outs = calloc((size_t)w.m, 1);
	assert_non_null(outs);
	int nout = 0;
	for (int i = 0; i < DRAINERS; i++) {
		tu_join_parked(d[i].th);
		TU_ASSERT_MSG(d[i].bad == 0, "drainer %d: %d receives failed (%d)",
			      i, d[i].bad, d[i].first_err);
		assert_true(d[i].closed_seen);
		TU_ASSERT_LE(d[i].nvals, w.m);
		for (int k = 0; k < d[i].nvals; k++) {
			int v = d[i].vals[k];
			TU_ASSERT_RANGE(v, 0, w.m - 1);
			TU_ASSERT_MSG(!outs[v], "out value %d received twice",
				      v);
			outs[v] = 1;
			if (k)
				TU_ASSERT_GT(v, d[i].vals[k - 1]);
		}
		nout += d[i].nvals;
		free(d[i].vals);
	}
	assert_int_equal(nout, w.m);
	free(outs);
	free(w.seen);
	TU_ASSERT_OK(tt_wg_release(w.wg));
	TU_ASSERT_OK(tt_chan_release(w.in));
	TU_ASSERT_OK(tt_chan_release(w.in0));
	TU_ASSERT_OK(tt_chan_release(w.out));
}

/* ---- what another thread sees on its own -------------------------------------- */

typedef struct probe {
	tt_chan *c;
	int r_try_empty, r_try_full, r_past, r_send, r_recv;
	ptrdiff_t len_full;
	int v;
	bool ok;
} probe;

static void *probe_thread(void *arg)
{
	probe *p = arg;
	int v = 41;
	/* The first use asks the owner and makes the channel shared; the
	 * rest are answered on this thread without it. */
	p->r_send = tt_chan_send(p->c, &v, sizeof v);
	v = 42;
	p->r_try_full = tt_chan_send_until(p->c, &v, sizeof v, TT_TRY);
	p->len_full = tt_chan_len(p->c);
	p->r_past = tt_chan_send_until(p->c, &v, sizeof v, tt_now() - 1);
	p->r_recv = tt_chan_recv(p->c, &p->v, sizeof p->v, &p->ok);
	p->r_try_empty = tt_chan_recv_until(p->c, &v, sizeof v, NULL, TT_TRY);
	return NULL;
}

static void test_try_and_deadlines_off_owner(void **state)
{
	(void)state;
	TU_REQUIRE_THREADS();
	probe p = {.c = tu_chan(sizeof(int), 1)};
	pthread_t th;
	assert_int_equal(pthread_create(&th, NULL, probe_thread, &p), 0);
	tu_join_parked(th);
	TU_ASSERT_OK(p.r_send);
	assert_int_equal(p.r_try_full, -EAGAIN);
	assert_int_equal(p.len_full, 1);
	assert_int_equal(p.r_past, -ETIMEDOUT);
	TU_ASSERT_OK(p.r_recv);
	assert_true(p.ok);
	assert_int_equal(p.v, 41);
	assert_int_equal(p.r_try_empty, -EAGAIN);
	assert_int_equal(tt_chan_len(p.c), 0);
	TU_ASSERT_OK(tt_chan_release(p.c));
}

/* ---- a panic on the sender's own stack ------------------------------------------ */

static tt_chan *closing;
static _Atomic int stage;

static __attribute__((noinline)) void *shared_sender(void *arg)
{
	(void)arg;
	int v = 1;
	/* Shared by this first use (a length, asked of the owner). */
	if (tt_chan_len(closing) != 0)
		exit(4);
	atomic_store(&stage, 1);
	while (atomic_load(&stage) != 2)
		sched_yield();
	fprintf(stderr, "tu-sending\n");
	TU_UNCHECKED(tt_chan_send(closing, &v, sizeof v));
	return NULL;
}

static void child_send_closed_shared(void)
{
	if (tt_chan_make(&closing, sizeof(int), 4) != 0)
		exit(3);
	pthread_t th;
	if (pthread_create(&th, NULL, shared_sender, NULL) != 0)
		exit(3);
	while (atomic_load(&stage) != 1)
		TU_UNCHECKED(tt_sleep(MS));
	if (tt_chan_close(closing) != 0)
		exit(3);
	atomic_store(&stage, 2);
	/* The sender panics on its own thread, with no post to run here. */
	TU_UNCHECKED(tt_blocking(tu_join_thread, &th));
	fprintf(stderr, "tu-survived\n");
}

static void test_send_on_closed_shared(void **state)
{
	(void)state;
	TU_REQUIRE_THREADS();
	tu_child c;
	assert_int_equal(
		tu_spawn_self("send_closed_shared", 30 * TT_SECOND, &c), 0);
	assert_false(c.timed_out);
	TU_ASSERT_CHILD_SIGNAL(&c, SIGABRT);
	TU_ASSERT_CONTAINS(c.err, "tu-sending");
	TU_ASSERT_NOT_CONTAINS(c.err, "tu-survived");
	TU_ASSERT_CONTAINS(c.err, "tether: panic: send on closed channel");
	TU_ASSERT_CONTAINS(c.err, "shared_sender");
	TU_ASSERT_CONTAINS(c.err, "test_shared_chan.c:");
	TU_ASSERT_NOT_CONTAINS(c.err, "child_send_closed_shared");
	tu_child_free(&c);
}

/* ---- a channel whose owner ended ------------------------------------------------ */

/* The owner thread: a goroutine parks receiving on c, main (another
 * thread) makes c shared, and the owner ends with the goroutine still
 * parked. Its goroutines and stacks are gone: nothing may hand them a
 * value, and every later use of c says the owner ended. */
typedef struct ended {
	tt_chan *c, *buf, *quit;
	_Atomic int ready; /* 1: made and parked; -1: failed */
	int r_quit;
} ended;

static void park_forever(void *arg)
{
	int v;
	TU_UNCHECKED(tt_chan_recv(arg, &v, sizeof v, NULL));
}

static void *owner_that_ends(void *arg)
{
	ended *e = arg;
	int v = 7;
	if (tt_chan_make(&e->c, sizeof(int), 0) != 0 ||
	    tt_chan_make(&e->buf, sizeof(int), 4) != 0 ||
	    tt_chan_make(&e->quit, sizeof(int), 0) != 0 ||
	    tt_go(park_forever, e->c) <= 0 ||
	    tt_chan_send(e->buf, &v, sizeof v) != 0) {
		fprintf(stderr, "owner_that_ends: %s\n", tt_last_error());
		atomic_store(&e->ready, -1);
		return NULL;
	}
	atomic_store(&e->ready, 1);
	/* Answers main's posts (which share c and buf) until quit. */
	e->r_quit = tt_chan_recv(e->quit, &v, sizeof v, NULL);
	return NULL;
}

static pthread_t start_owner(ended *e)
{
	pthread_t th;
	TU_CHILD_CHECK(pthread_create(&th, NULL, owner_that_ends, e) == 0);
	int64_t give_up = tt_deadline_in(30 * TT_SECOND);
	while (atomic_load(&e->ready) == 0 && tt_now() < give_up)
		TU_UNCHECKED(tt_sleep(MS));
	TU_CHILD_CHECK(atomic_load(&e->ready) == 1);
	return th;
}

static void end_owner(ended *e, pthread_t th)
{
	int v = 1;
	TU_CHILD_CHECK(tt_chan_send(e->quit, &v, sizeof v) == 0);
	TU_CHILD_CHECK(tt_blocking(tu_join_thread, &th) == 0);
	TU_CHILD_CHECK(e->r_quit == 0);
}

static bool ended_error(void)
{
	return strstr(tt_last_error(), "belongs to a thread that has ended");
}

static void child_shared_of_ended(void)
{
	ended e = {0};
	pthread_t th = start_owner(&e);
	/* Shared now (each asks the owner once). */
	TU_CHILD_CHECK(tt_chan_len(e.c) == 0);
	TU_CHILD_CHECK(tt_chan_len(e.buf) == 1);
	end_owner(&e, th);
	/* The parked receiver is gone with its thread. */
	int v = 1;
	TU_CHILD_CHECK(tt_chan_send_until(e.c, &v, sizeof v, TT_TRY) == -EPIPE);
	TU_CHILD_CHECK(ended_error());
	TU_CHILD_CHECK(tt_chan_send(e.c, &v, sizeof v) == -EPIPE);
	/* So is the buffer, value and all. */
	bool ok = false;
	TU_CHILD_CHECK(tt_chan_recv(e.buf, &v, sizeof v, &ok) == -EPIPE);
	TU_CHILD_CHECK(tt_chan_send_until(e.buf, &v, sizeof v, TT_TRY) == -EPIPE);
	TU_CHILD_CHECK(tt_chan_len(e.buf) == -EPIPE);
	TU_CHILD_CHECK(ended_error());
	/* A new thread may take the ended one's scheduler: c is still not
	 * its. */
	ended e2 = {0};
	th = start_owner(&e2);
	TU_CHILD_CHECK(tt_chan_send_until(e.c, &v, sizeof v, TT_TRY) == -EPIPE);
	TU_CHILD_CHECK(tt_chan_recv_until(e.buf, &v, sizeof v, NULL, TT_TRY) ==
		    -EPIPE);
	TU_CHILD_CHECK(tt_chan_len(e2.c) == 0); /* the new owner answers */
	end_owner(&e2, th);
	fprintf(stderr, "tu-done\n");
}

/* A channel that never became shared, of a thread that ended before
 * another took its scheduler: the new owner must not take its posts. */
static void *make_chan_and_end(void *arg)
{
	tt_chan **c = arg;
	if (tt_chan_make(c, sizeof(int), 1) != 0)
		*c = NULL;
	return NULL;
}

static void child_private_of_recycled(void)
{
	tt_chan *old = NULL;
	pthread_t th;
	TU_CHILD_CHECK(pthread_create(&th, NULL, make_chan_and_end, &old) == 0);
	TU_CHILD_CHECK(tt_blocking(tu_join_thread, &th) == 0);
	TU_CHILD_CHECK(old != NULL);
	ended e = {0};
	th = start_owner(&e);
	int v = 3;
	TU_CHILD_CHECK(tt_chan_send_until(old, &v, sizeof v, TT_TRY) == -EPIPE);
	TU_CHILD_CHECK(ended_error());
	TU_CHILD_CHECK(tt_chan_len(old) == -EPIPE);
	end_owner(&e, th);
	fprintf(stderr, "tu-done\n");
}

static void test_shared_chan_of_ended_thread(void **state)
{
	(void)state;
	TU_REQUIRE_THREADS();
	tu_run_child_case("shared_of_ended");
}

static void test_private_chan_of_recycled_scheduler(void **state)
{
	(void)state;
	TU_REQUIRE_THREADS();
	tu_run_child_case("private_of_recycled");
}

/* ---- a select that could only pair with itself ---------------------------------- */

static ptrdiff_t shared_len = -1;

static void *share_by_len(void *arg)
{
	shared_len = tt_chan_len(arg);
	return NULL;
}

typedef struct self_sel {
	tt_chan *c, *done;
	_Atomic int r; /* the select's result, once it returns */
	_Atomic bool returned;
} self_sel;

static void self_selector(void *arg)
{
	self_sel *p = arg;
	int out = 5, in = 0;
	bool ok;
	tt_case cases[] = {TT_CASE_SEND_FROM(p->c, &out),
			   TT_CASE_RECV_INTO(p->c, &in, &ok)};
	atomic_store(&p->r, tt_select(cases, 2, tt_deadline_in(20 * TT_SECOND)));
	atomic_store(&p->returned, true);
	tu_done(p->done);
}

/* Go: select { case c <- v: case <-c: } on an unbuffered c, with nobody
 * else on c, blocks (its two cases never pair). On a shared channel the
 * select's recheck under the lock must not take its own waiter for a
 * peer: it parks (a select that spun instead would hold the thread, and
 * main's 1 ms sleep would not end before its 20 s deadline), and a
 * receive by main then takes its send. */
static void test_self_select_shared(void **state)
{
	(void)state;
	TU_REQUIRE_THREADS();
	self_sel p = {.c = tu_chan(sizeof(int), 0), .done = tu_chan(0, 0)};
	pthread_t th;
	assert_int_equal(pthread_create(&th, NULL, share_by_len, p.c), 0);
	tu_join_parked(th);
	assert_int_equal(shared_len, 0);
	tu_go(self_selector, &p);
	TU_ASSERT_OK(tt_sleep(MS));
	assert_false(atomic_load(&p.returned));
	int v = 0;
	TU_ASSERT_OK(tt_chan_recv(p.c, &v, sizeof v, NULL));
	assert_int_equal(v, 5);
	TU_WAIT_DONE(p.done, 1, 30 * TT_SECOND);
	assert_int_equal(atomic_load(&p.r), 0);
	TU_ASSERT_OK(tt_chan_release(p.c));
	TU_ASSERT_OK(tt_chan_release(p.done));
}

/* ---- other threads that wait on a shared channel themselves ------------------ */

typedef struct waiter_thread {
	pthread_t th;
	tt_chan *c;
	int64_t deadline;
	int r, v;
	bool ok;
	_Atomic bool started;
} waiter_thread;

static void *recv_waits(void *arg)
{
	waiter_thread *t = arg;
	atomic_store(&t->started, true);
	t->r = tt_chan_recv_until(t->c, &t->v, sizeof t->v, &t->ok,
				  t->deadline);
	return NULL;
}

static void start_waiter(waiter_thread *t, tt_chan *c, int64_t deadline)
{
	t->c = c;
	t->deadline = deadline;
	assert_int_equal(pthread_create(&t->th, NULL, recv_waits, t), 0);
}

/* Share c: one length asked of the owner from another thread. */
static void share_chan(tt_chan *c)
{
	pthread_t th;
	assert_int_equal(pthread_create(&th, NULL, share_by_len, c), 0);
	tu_join_parked(th);
	assert_int_equal(shared_len, tt_chan_len(c));
}

/* A pthread's receive that must wait queues on the shared channel itself
 * and parks its own thread: the owner runs no goroutine for it (a proxy),
 * and a send here hands the value straight to it. */
static void test_pthread_waits_on_shared(void **state)
{
	(void)state;
	TU_REQUIRE_THREADS();
	tt_chan *c = tu_chan(sizeof(int), 0);
	share_chan(c);
	int64_t before = tt_num_goroutine();
	waiter_thread t = {0};
	start_waiter(&t, c, TT_FOREVER);
	/* The pthread, and no proxy of main's waiting for it (+2). */
	TU_WAIT_FOR(atomic_load(&t.started), 30 * TT_SECOND);
	TU_ASSERT_OK(tt_sleep(5 * MS));
	assert_int_equal(tt_num_goroutine(), before + 1);
	/* Queued: the owner can see it as a receiver that is ready. */
	int v = 77;
	TU_WAIT_FOR(tt_chan_send_until(c, &v, sizeof v, TT_TRY) == 0, 30 * TT_SECOND);
	/* A proxy would still be here (main has not run it); the pthread
	 * may have ended already. */
	TU_ASSERT_LE(tt_num_goroutine(), before + 1);
	tu_join_parked(t.th);
	TU_ASSERT_OK(t.r);
	assert_true(t.ok);
	assert_int_equal(t.v, 77);
	TU_ASSERT_OK(tt_chan_release(c));
}

/* Its deadline takes its waiter back out: a send then finds nobody. */
static void test_pthread_wait_times_out(void **state)
{
	(void)state;
	TU_REQUIRE_THREADS();
	tt_chan *c = tu_chan(sizeof(int), 0);
	share_chan(c);
	waiter_thread t = {0};
	start_waiter(&t, c, tt_deadline_in(20 * MS));
	tu_join_parked(t.th);
	assert_int_equal(t.r, -ETIMEDOUT);
	int v = 1;
	assert_int_equal(tt_chan_send_until(c, &v, sizeof v, TT_TRY), -EAGAIN);
	/* And a close wakes the next one with ok false, on its thread. */
	waiter_thread t2 = {0};
	start_waiter(&t2, c, TT_FOREVER);
	TU_WAIT_FOR(atomic_load(&t2.started), 30 * TT_SECOND);
	TU_ASSERT_OK(tt_sleep(MS)); /* likely parked by now; either way */
	TU_ASSERT_OK(tt_chan_close(c));
	tu_join_parked(t2.th);
	TU_ASSERT_OK(t2.r);
	assert_false(t2.ok);
	assert_int_equal(t2.v, 0);
	TU_ASSERT_OK(tt_chan_release(c));
}

/* The owner drops its last reference while a pthread is parked on the
 * channel: the pthread keeps it alive until its deadline, and when it
 * leaves, the owner frees it (the handle is dead from then on). */
static void test_release_while_pthread_waits(void **state)
{
	(void)state;
	TU_REQUIRE_THREADS();
	tt_chan *c = tu_chan(sizeof(int), 0);
	share_chan(c);
	waiter_thread t = {0};
	start_waiter(&t, c, tt_deadline_in(50 * MS));
	/* Give the waiter time to queue (a try here would take it). */
	TU_WAIT_FOR(atomic_load(&t.started), 30 * TT_SECOND);
	TU_ASSERT_OK(tt_sleep(5 * MS));
	TU_ASSERT_OK(tt_chan_release(c));
	tu_join_parked(t.th);
	assert_int_equal(t.r, -ETIMEDOUT);
	/* The owner frees it at its next look at its posts. */
	TU_WAIT_FOR(tt_chan_len(c) == -EBADF, 30 * TT_SECOND);
	TU_ASSERT_CONTAINS(tt_last_error(), "not a live channel");
}

/* Two pthreads pass values through a third thread's channel, each waiting
 * on it by itself; the owner only watches. */
typedef struct relay {
	tt_chan *c;
	int n;
	int bad, first_err;
	long sum;
} relay;

static void *relay_send(void *arg)
{
	relay *r = arg;
	for (int i = 1; i <= r->n; i++) {
		int rc = tt_chan_send(r->c, &i, sizeof i);
		if (rc && r->bad++ == 0)
			r->first_err = rc;
	}
	return NULL;
}

static void *relay_recv(void *arg)
{
	relay *r = arg;
	int last = 0;
	for (int i = 1; i <= r->n; i++) {
		int v = 0;
		int rc = tt_chan_recv(r->c, &v, sizeof v, NULL);
		if (rc && r->bad++ == 0)
			r->first_err = rc;
		/* One sender: values arrive in order. */
		if (v != last + 1 && r->bad++ == 0)
			r->first_err = 1000000 + v;
		last = v;
		r->sum += v;
	}
	return NULL;
}

static void test_pthreads_relay_through_shared(void **state)
{
	(void)state;
	TU_REQUIRE_THREADS();
	for (int cap = 0; cap <= 4; cap += 4) {
		tt_chan *c = tu_chan(sizeof(int), cap);
		share_chan(c);
		int n = TU_SCALE(20000, 2000);
		relay s = {.c = c, .n = n}, r = {.c = c, .n = n};
		pthread_t ts, tr;
		assert_int_equal(pthread_create(&tr, NULL, relay_recv, &r), 0);
		assert_int_equal(pthread_create(&ts, NULL, relay_send, &s), 0);
		tu_join_parked(ts);
		tu_join_parked(tr);
		TU_ASSERT_MSG(s.bad == 0, "cap %d: sender: %d failed (%d)", cap,
			      s.bad, s.first_err);
		TU_ASSERT_MSG(r.bad == 0, "cap %d: receiver: %d bad (%d)", cap,
			      r.bad, r.first_err);
		assert_int_equal(r.sum, (long)n * (n + 1) / 2);
		TU_ASSERT_OK(tt_chan_release(c));
	}
}

/* The owner ends while a pthread waits on its shared channel: the wait
 * ends with -EPIPE, as a post to an ended thread does. */
static void child_waiter_of_ended(void)
{
	ended e = {0};
	pthread_t th = start_owner(&e);
	TU_CHILD_CHECK(tt_chan_len(e.c) == 0); /* shared */
	waiter_thread t = {0};
	t.c = e.c;
	t.deadline = TT_FOREVER;
	/* A second receiver on c (the owner's goroutine is the first). */
	TU_CHILD_CHECK(pthread_create(&t.th, NULL, recv_waits, &t) == 0);
	while (!atomic_load(&t.started))
		TU_UNCHECKED(tt_sleep(MS));
	TU_UNCHECKED(tt_sleep(5 * MS));
	end_owner(&e, th);
	TU_CHILD_CHECK(tt_blocking(tu_join_thread, &t.th) == 0);
	if (t.r != -EPIPE)
		fprintf(stderr, "waiter: %d\n", t.r);
	TU_CHILD_CHECK(t.r == -EPIPE);
	fprintf(stderr, "tu-done\n");
}

static void test_waiter_of_ended_owner(void **state)
{
	(void)state;
	TU_REQUIRE_THREADS();
	tu_run_child_case("waiter_of_ended");
}

/* A thread ends while one of its goroutines waits, by itself, on another
 * thread's shared channel: the waiter leaves the channel with it, and a
 * send then finds nobody to hand to. */
typedef struct leaver {
	tt_chan *c;
	_Atomic int stage;
} leaver;

static void recv_on_foreign(void *arg)
{
	leaver *l = arg;
	int v;
	atomic_store(&l->stage, 1);
	TU_UNCHECKED(tt_chan_recv(l->c, &v, sizeof v, NULL));
	atomic_store(&l->stage, 99); /* never: its thread ends first */
}

static void *thread_that_leaves(void *arg)
{
	leaver *l = arg;
	if (tt_go(recv_on_foreign, l) <= 0)
		return NULL;
	while (atomic_load(&l->stage) == 0)
		tt_yield();
	/* Parked on l->c now (it has no other place to go). */
	tt_yield();
	return NULL;
}

static void child_foreign_waiter_thread_ends(void)
{
	/* The waiter must be the ending thread's goroutine: tt_go starts it
	 * on its caller's thread only at one P (at more it may go to a
	 * worker, which does not end). */
	tu_one_p();
	leaver l = {0};
	TU_CHILD_CHECK(tt_chan_make(&l.c, sizeof(int), 0) == 0);
	pthread_t th;
	TU_CHILD_CHECK(pthread_create(&th, NULL, share_by_len, l.c) == 0);
	TU_CHILD_CHECK(tt_blocking(tu_join_thread, &th) == 0);
	TU_CHILD_CHECK(pthread_create(&th, NULL, thread_that_leaves, &l) == 0);
	TU_CHILD_CHECK(tt_blocking(tu_join_thread, &th) == 0);
	TU_CHILD_CHECK(atomic_load(&l.stage) == 1);
	int v = 3;
	TU_CHILD_CHECK(tt_chan_send_until(l.c, &v, sizeof v, TT_TRY) == -EAGAIN);
	TU_CHILD_CHECK(tt_chan_len(l.c) == 0);
	TU_CHILD_CHECK(tt_chan_release(l.c) == 0);
	fprintf(stderr, "tu-done\n");
}

static void test_foreign_waiter_thread_ends(void **state)
{
	(void)state;
	TU_REQUIRE_THREADS();
	tu_run_child_case("foreign_waiter_thread_ends");
}

/* A thread with no objects of its own ends while one of its goroutines
 * waits for another thread's answer (a shared-stack goroutine's receive
 * waits on the owner, in a proxy); a new thread then starts: the answer
 * must not reach the new thread's goroutines. */
static tt_chan *asked;
static _Atomic int new_stage;

static void asker(void *arg)
{
	(void)arg;
	int v;
	TU_UNCHECKED(tt_chan_recv(asked, &v, sizeof v, NULL));
	fprintf(stderr, "tu-asker-ran\n"); /* never: its thread has ended */
}

static void *thread_that_asks(void *arg)
{
	(void)arg;
	tt_go_attr a = {.shared_stack = true};
	if (tt_go_with(&a, asker, NULL) <= 0)
		exit(3);
	TU_UNCHECKED(tt_sleep(20 * MS)); /* the asker waits on the owner */
	return NULL;
}

static void *thread_that_follows(void *arg)
{
	(void)arg;
	atomic_store(&new_stage, 1);
	for (int i = 0; i < 100; i++)
		TU_UNCHECKED(tt_sleep(MS));
	atomic_store(&new_stage, 2);
	return NULL;
}

static void child_answer_after_asker_ended(void)
{
	/* The asker must be the ending thread's goroutine: at one P only is
	 * it started there for certain. */
	tu_one_p();
	TU_CHILD_CHECK(tt_chan_make(&asked, sizeof(int), 0) == 0);
	pthread_t b, e;
	TU_CHILD_CHECK(pthread_create(&b, NULL, thread_that_asks, NULL) == 0);
	TU_CHILD_CHECK(tt_blocking(tu_join_thread, &b) == 0);
	TU_CHILD_CHECK(pthread_create(&e, NULL, thread_that_follows, NULL) == 0);
	while (atomic_load(&new_stage) < 1)
		TU_UNCHECKED(tt_sleep(MS));
	int v = 42;
	/* The proxy takes it and answers the ended thread. */
	TU_CHILD_CHECK(tt_chan_send(asked, &v, sizeof v) == 0);
	TU_CHILD_CHECK(tt_blocking(tu_join_thread, &e) == 0);
	TU_CHILD_CHECK(atomic_load(&new_stage) == 2);
	fprintf(stderr, "tu-done\n");
}

static void test_answer_after_asker_ended(void **state)
{
	(void)state;
	TU_REQUIRE_THREADS();
	tu_run_child_case("answer_after_asker_ended");
}

/* Shared-stack goroutines of one thread wait on a shared channel through
 * the owner (proxies), while goroutines of another thread wait on it by
 * themselves: every value arrives once, and the channel is freed at the
 * end (its park count exact whichever thread changes it). */
typedef struct mixed {
	tt_chan *c;
	int n;         /* values per sender */
	_Atomic long sum;
	_Atomic int done;
	int bad;
} mixed;

static void mixed_sender(void *arg)
{
	mixed *m = arg;
	for (int i = 1; i <= m->n; i++)
		if (tt_chan_send(m->c, &i, sizeof i) != 0)
			m->bad++;
	atomic_fetch_add(&m->done, 1);
}

static void mixed_receiver(void *arg)
{
	mixed *m = arg;
	for (int i = 1; i <= m->n; i++) {
		int v = 0;
		if (tt_chan_recv(m->c, &v, sizeof v, NULL) != 0)
			m->bad++;
		atomic_fetch_add(&m->sum, v);
	}
	atomic_fetch_add(&m->done, 1);
}

enum { MIXED_G = 8 };

static void *mixed_thread(void *arg)
{
	void **a = arg;
	mixed *m = a[0];
	bool senders = a[1] != NULL;
	tt_go_attr attr = {.shared_stack = senders};
	for (int i = 0; i < MIXED_G; i++)
		if (tt_go_with(&attr, senders ? mixed_sender : mixed_receiver,
			       m) <= 0)
			m->bad++;
	int64_t give_up = tt_deadline_in(60 * TT_SECOND);
	while (atomic_load(&m->done) < 2 * MIXED_G && tt_now() < give_up)
		TU_UNCHECKED(tt_sleep(MS));
	return NULL;
}

static void test_proxies_and_direct_waits_mixed(void **state)
{
	(void)state;
	TU_REQUIRE_THREADS();
	mixed m = {.c = tu_chan(sizeof(int), 0), .n = TU_SCALE(20000, 2000)};
	share_chan(m.c);
	const tt_chan *h = m.c;
	void *sa[2] = {&m, (void *)1}, *ra[2] = {&m, NULL};
	pthread_t ts, tr;
	assert_int_equal(pthread_create(&tr, NULL, mixed_thread, ra), 0);
	assert_int_equal(pthread_create(&ts, NULL, mixed_thread, sa), 0);
	tu_join_parked(ts);
	tu_join_parked(tr);
	assert_int_equal(atomic_load(&m.done), 2 * MIXED_G);
	assert_int_equal(m.bad, 0);
	assert_int_equal(atomic_load(&m.sum),
			 (long)MIXED_G * m.n * (m.n + 1) / 2);
	TU_ASSERT_OK(tt_chan_release(m.c));
	/* Nobody is parked on it: the release freed it. */
	assert_int_equal(tt_chan_len(h), -EBADF);
}

int main(int argc, char **argv)
{
	static const tu_child_case cases[] = {
		{"send_closed_shared", child_send_closed_shared},
		{"shared_of_ended", child_shared_of_ended},
		{"private_of_recycled", child_private_of_recycled},
		{"waiter_of_ended", child_waiter_of_ended},
		{"foreign_waiter_thread_ends", child_foreign_waiter_thread_ends},
		{"answer_after_asker_ended", child_answer_after_asker_ended},
	};
	tu_child_dispatch(argc, argv, cases, sizeof cases / sizeof *cases);
	const struct CMUnitTest tests[] = {
		TU_TEST(test_deadline_races_handoff),
		TU_TEST(test_threads_selects_deadlines),
		TU_TEST(test_try_and_deadlines_off_owner),
		TU_TEST(test_send_on_closed_shared),
		TU_TEST(test_shared_chan_of_ended_thread),
		TU_TEST(test_private_chan_of_recycled_scheduler),
		TU_TEST(test_self_select_shared),
		TU_TEST(test_pthread_waits_on_shared),
		TU_TEST(test_pthread_wait_times_out),
		TU_TEST(test_release_while_pthread_waits),
		TU_TEST(test_pthreads_relay_through_shared),
		TU_TEST(test_waiter_of_ended_owner),
		TU_TEST(test_foreign_waiter_thread_ends),
		TU_TEST(test_answer_after_asker_ended),
		TU_TEST(test_proxies_and_direct_waits_mixed),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
