/* tt_select across threads (src/chan/select.c, the locked path): a select
 * on another thread's channels, goroutines of several threads selecting
 * on each other's channels at once, Go's self-select with two threads,
 * and the ways a cross-thread select ends (a value, a close, its
 * deadline, the channel's owner ending, its own thread ending). The
 * pthreads never call a check: they record what they saw, and the main
 * goroutine checks it after the join. */
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "testutil.h"

#define MS TT_MILLISECOND

/* ---- a thread that owns objects and stays until told ------------------------ */

typedef struct host host;
struct host {
	pthread_t th;
	void (*setup)(host *); /* on the host's thread, before ready */
	void (*teardown)(host *); /* on it after quit; may be NULL */
	void *arg;
	_Atomic int ready; /* 1 once set up */
	_Atomic int quit;
};

static void *host_main(void *p)
{
	host *h = p;
	h->setup(h);
	atomic_store(&h->ready, 1);
	/* Parked in its sleeps, it answers other threads' posts. */
	while (!atomic_load(&h->quit))
		TU_UNCHECKED(tt_sleep(MS / 2));
	if (h->teardown)
		h->teardown(h);
	return NULL;
}

static void host_start(host *h)
{
	assert_int_equal(pthread_create(&h->th, NULL, host_main, h), 0);
	TU_WAIT_FOR(atomic_load(&h->ready) == 1, 30 * TT_SECOND);
}

static void host_stop(host *h)
{
	atomic_store(&h->quit, 1);
	tu_join_parked(h->th);
}

/* ---- a pthread selects on the main thread's channels -------------------------- */

typedef struct fan {
	tt_chan *a, *b; /* unbuffered, buffered: main's */
	int n;          /* values on each */
	_Atomic unsigned char *seen;
	int bad, first_err, from_a, from_b;
} fan;

static void *fan_selector(void *p)
{
	fan *f = p;
	for (int got = 0; got < 2 * f->n; got++) {
		int v = -1, u = -1;
		bool ok = false, ok_b = false;
		tt_case cs[2] = {TT_CASE_RECV_INTO(f->a, &v, &ok),
				 TT_CASE_RECV_INTO(f->b, &u, &ok_b)};
		int r = tt_select(cs, 2, tt_deadline_in(30 * TT_SECOND));
		int x = r == 0 ? v : u;
		if ((r != 0 && r != 1) || !(r == 0 ? ok : ok_b) || x < 0 ||
		    x >= 2 * f->n || atomic_fetch_add(&f->seen[x], 1) != 0) {
			if (f->bad++ == 0)
				f->first_err = r < 0 ? r : 1000000 + x;
			continue;
		}
		if (r == 0)
			f->from_a++;
		else
			f->from_b++;
	}
	return NULL;
}

typedef struct fan_sender {
	fan *f;
	bool by_select; /* a one-case select rather than a send */
	tt_chan *c, *done;
	int base;
} fan_sender;

static void fan_send(void *p)
{
	fan_sender *s = p;
	for (int i = 0; i < s->f->n; i++) {
		int v = s->base + i;
		if (s->by_select) {
			tt_case k = TT_CASE_SEND_FROM(s->c, &v);
			TU_ASSERT_EQ(tt_select(&k, 1, TT_FOREVER), 0);
		} else {
			TU_ASSERT_OK(tt_chan_send(s->c, &v, sizeof v));
		}
	}
	tu_done(s->done);
}

/* The pthread's select asks main to share a and b, then takes values
 * straight from main's goroutines (a send to its parked select claims it
 * from another thread) and out of b's buffer: every value once. */
static void test_pthread_selects_on_owner_channels(void **state)
{
	(void)state;
	TU_REQUIRE_THREADS();
	fan f = {.a = tu_chan(sizeof(int), 0), .b = tu_chan(sizeof(int), 4),
		 .n = TU_SCALE(20000, 2000)};
	f.seen = calloc((size_t)(2 * f.n), 1);
	assert_non_null(f.seen);
	tt_chan *done = tu_chan(0, 2);
	fan_sender sa = {.f = &f, .c = f.a, .done = done, .base = 0};
	fan_sender sb = {.f = &f, .by_select = true, .c = f.b, .done = done,
			 .base = f.n};
	pthread_t th;
	assert_int_equal(pthread_create(&th, NULL, fan_selector, &f), 0);
	tu_go(fan_send, &sa);
	tu_go(fan_send, &sb);
	TU_WAIT_DONE(done, 2, 60 * TT_SECOND);
	tu_join_parked(th);
	TU_ASSERT_MSG(f.bad == 0, "%d bad selects (first: %d)", f.bad,
		      f.first_err);
	assert_int_equal(f.from_a, f.n);
	assert_int_equal(f.from_b, f.n);
	for (int i = 0; i < 2 * f.n; i++)
		TU_ASSERT_MSG(atomic_load(&f.seen[i]) == 1, "value %d seen %d",
			      i, atomic_load(&f.seen[i]));
	free((void *)f.seen);
	TU_ASSERT_OK(tt_chan_release(f.a));
	TU_ASSERT_OK(tt_chan_release(f.b));
	TU_ASSERT_OK(tt_chan_release(done));
}

/* ---- goroutines of three threads select on each other's channels ----------- */

enum { MESH_CHANS = 4, MESH_THREADS = 3, MESH_WORKERS = 3 };
#define MESH_GIDS (MESH_THREADS * MESH_WORKERS)

typedef struct mesh {
	tt_chan *ch[MESH_CHANS]; /* 0, 1: main's; 2, 3: the host's */
	int iters;
	int64_t give_up;
	_Atomic unsigned char *seen; /* MESH_GIDS * iters */
	_Atomic int sent[MESH_GIDS];
	_Atomic int received;
	_Atomic int bad;
	_Atomic int first_bad_line;
	_Atomic int threads_done;
	/* A context of the host's, made and cancelled over and over by a
	 * goroutine there: workers on every thread select on its done
	 * channel too, and its cancel (a close) wakes them. */
	_Atomic(tt_ctx *) ctx;
	_Atomic int stop_cancels, cancels_done;
	_Atomic int cancels, ctx_fired;
	/* Every context made, kept until the workers are done: a worker
	 * retains the one it loads, so none may be released under it. */
	tt_ctx **made;
	int nmade, made_cap;
} mesh;

typedef struct mesh_worker {
	mesh *m;
	int gid;
	tt_waitgroup *wg;
} mesh_worker;

#define MESH_BAD(m)                                                         \
	do {                                                                \
		if (atomic_fetch_add(&(m)->bad, 1) == 0)                    \
			atomic_store(&(m)->first_bad_line, __LINE__);       \
	} while (0)

static void mesh_take(mesh *m, int v)
{
	int gid = v >> 24, seq = v & 0xffffff;
	if (gid < 0 || gid >= MESH_GIDS || seq >= m->iters ||
	    atomic_fetch_add(&m->seen[gid * m->iters + seq], 1) != 0) {
		MESH_BAD(m);
		return;
	}
	atomic_fetch_add(&m->received, 1);
}

/* Random selects of two or three cases, sends and receives on random
 * channels of both owners (a case may repeat a channel, both ways: a
 * select that could pair with itself), with short deadlines, tries and
 * now and then a timer of its own among the cases. Never a check here:
 * a worker may run on a pthread. */
static void mesh_work(void *p)
{
	mesh_worker *w = p;
	mesh *m = w->m;
	uint64_t rng = 0x9e3779b97f4a7c15u * (uint64_t)(w->gid + 1);
	int seq = 0;
	for (int it = 0; it < m->iters && seq < m->iters; it++) {
		if (tt_now() > m->give_up) {
			MESH_BAD(m);
			break;
		}
		int n = 2 + (int)tu_rand_n(&rng, 2);
		tt_case cs[5];
		memset(cs, 0, sizeof cs);
		int in[4] = {-1, -1, -1, -1};
		bool ok[4] = {false, false, false, false};
		int out = (w->gid << 24) | seq;
		for (int i = 0; i < n; i++) {
			tt_chan *c = m->ch[tu_rand_n(&rng, MESH_CHANS)];
			if (tu_rand_n(&rng, 2))
				cs[i] = (tt_case)TT_CASE_SEND_FROM(c, &out);
			else
				cs[i] = (tt_case)TT_CASE_RECV_INTO(c, &in[i],
								   &ok[i]);
		}
		tt_ctx *ctx = NULL;
		bool ctx_ok = true;
		if (tu_rand_n(&rng, 4) == 0 &&
		    (ctx = atomic_load(&m->ctx)) != NULL &&
		    tt_ctx_retain(ctx) != 0) {
			MESH_BAD(m);
			ctx = NULL;
		}
		if (ctx)
			cs[n++] = (tt_case)TT_CASE_RECV_DISCARD(tt_ctx_done(ctx),
								&ctx_ok);
		tt_chan *timer = NULL;
		int64_t fired_at;
		if (tu_rand_n(&rng, 8) == 0 &&
		    tt_after(&timer, (int64_t)tu_rand_n(&rng, 200) *
					     TT_MICROSECOND) == 0)
			cs[n++] = (tt_case)TT_CASE_RECV_INTO(timer, &fired_at,
							     NULL);
		int r;
		if (tu_rand_n(&rng, 5) == 0) {
			r = tt_select_default(cs, (size_t)n);
		} else {
			int64_t dl = tt_deadline_in(
				(int64_t)tu_rand_n(&rng, 400) * TT_MICROSECOND);
			r = tt_select(cs, (size_t)n, dl);
		}
		if (r >= 0 && r < n && cs[r].chan == timer) {
			/* the timer won */
		} else if (r >= 0 && r < n && ctx && cs[r].chan ==
						      tt_ctx_done(ctx)) {
			if (ctx_ok)
				MESH_BAD(m); /* a done channel only closes */
			atomic_fetch_add(&m->ctx_fired, 1);
		} else if (r >= 0 && r < n) {
			if (cs[r].kind == TT_CASE_SEND) {
				atomic_fetch_add(&m->sent[w->gid], 1);
				seq++;
			} else if (!ok[r]) {
				MESH_BAD(m); /* nothing is closed */
			} else {
				mesh_take(m, in[r]);
			}
		} else if (r != TT_DEFAULT && r != -ETIMEDOUT) {
			MESH_BAD(m);
		}
		if (timer && tt_chan_release(timer) != 0)
			MESH_BAD(m);
		if (ctx && tt_ctx_release(ctx) != 0)
			MESH_BAD(m);
	}
	if (tt_wg_done(w->wg) != 0)
		MESH_BAD(m);
}

/* Start the workers of thread t on the calling thread and wait for
 * them. */
static void mesh_run(mesh *m, int t)
{
	mesh_worker ws[MESH_WORKERS];
	tt_waitgroup *wg;
	if (tt_wg_make(&wg) != 0 || tt_wg_add(wg, MESH_WORKERS) != 0) {
		MESH_BAD(m);
		return;
	}
	for (int i = 0; i < MESH_WORKERS; i++) {
		ws[i] = (mesh_worker){.m = m, .gid = t * MESH_WORKERS + i,
				      .wg = wg};
		if (tt_go(mesh_work, &ws[i]) <= 0) {
			MESH_BAD(m);
			TU_UNCHECKED(tt_wg_done(wg));
		}
	}
	if (tt_wg_wait(wg) != 0 || tt_wg_release(wg) != 0)
		MESH_BAD(m);
	atomic_fetch_add(&m->threads_done, 1);
}

static void mesh_canceller(void *arg)
{
	mesh *m = arg;
	uint64_t rng = 12345;
	while (!atomic_load(&m->stop_cancels)) {
		tt_ctx *c;
		if (tt_ctx_with_cancel(&c, tt_ctx_background()) != 0) {
			MESH_BAD(m);
			break;
		}
		atomic_store(&m->ctx, c);
		TU_UNCHECKED(tt_sleep((100 + (int64_t)tu_rand_n(&rng, 400)) *
				      TT_MICROSECOND));
		if (tt_ctx_cancel(c) != 0)
			MESH_BAD(m);
		if (m->nmade == m->made_cap) {
			int cap = m->made_cap ? 2 * m->made_cap : 64;
			tt_ctx **v = realloc(m->made, (size_t)cap * sizeof *v);
			if (v == NULL) {
				MESH_BAD(m);
				break;
			}
			m->made = v;
			m->made_cap = cap;
		}
		m->made[m->nmade++] = c;
		atomic_fetch_add(&m->cancels, 1);
	}
	atomic_store(&m->cancels_done, 1);
}

static void mesh_host_setup(host *h)
{
	mesh *m = h->arg;
	if (tt_chan_make(&m->ch[2], sizeof(int), 0) != 0 ||
	    tt_chan_make(&m->ch[3], sizeof(int), 2) != 0 ||
	    tt_go(mesh_canceller, m) <= 0)
		MESH_BAD(m);
}

static void mesh_host_teardown(host *h)
{
	mesh *m = h->arg;
	atomic_store(&m->stop_cancels, 1);
	while (!atomic_load(&m->cancels_done))
		TU_UNCHECKED(tt_sleep(100 * TT_MICROSECOND));
	atomic_store(&m->ctx, NULL); /* the last is in made[] too */
	for (int i = 0; i < m->nmade; i++)
		if (tt_ctx_release(m->made[i]) != 0)
			MESH_BAD(m);
	free(m->made);
	if (tt_chan_release(m->ch[2]) != 0 || tt_chan_release(m->ch[3]) != 0)
		MESH_BAD(m);
}

typedef struct mesh_thread {
	pthread_t th;
	mesh *m;
	int t;
} mesh_thread;

static void *mesh_thread_main(void *p)
{
	mesh_thread *mt = p;
	mesh_run(mt->m, mt->t);
	return NULL;
}

/* Nine goroutines on three threads (main, a host that owns two of the
 * channels, a thread that owns none) race sends, receives, self-pairing
 * selects, tries, deadlines, timers and the host's contexts, cancelled
 * (their done channels closed) as they go, on four channels of two
 * owners:
 * every value a send reported is received exactly once (or is still in
 * a buffer at the end), and none is made up. */
static void test_selects_across_three_threads(void **state)
{
	(void)state;
	TU_REQUIRE_THREADS();
	mesh m = {.iters = TU_SCALE(4000, 600)};
	m.give_up = tt_deadline_in(90 * TT_SECOND);
	m.seen = calloc((size_t)MESH_GIDS * (size_t)m.iters, 1);
	assert_non_null(m.seen);
	m.ch[0] = tu_chan(sizeof(int), 0);
	m.ch[1] = tu_chan(sizeof(int), 3);
	host h = {.setup = mesh_host_setup, .teardown = mesh_host_teardown,
		  .arg = &m};
	host_start(&h);
	assert_int_equal(atomic_load(&m.bad), 0);
	/* The host's workers run on a thread of their own: the host's
	 * thread must stay free to own its channels. Its channels' owner
	 * is the host; the third thread owns none. */
	mesh_thread t1 = {.m = &m, .t = 1}, t2 = {.m = &m, .t = 2};
	assert_int_equal(pthread_create(&t1.th, NULL, mesh_thread_main, &t1), 0);
	assert_int_equal(pthread_create(&t2.th, NULL, mesh_thread_main, &t2),
			 0);
	mesh_run(&m, 0);
	TU_WAIT_FOR(atomic_load(&m.threads_done) == MESH_THREADS, 30 * TT_SECOND);
	tu_join_parked(t1.th);
	tu_join_parked(t2.th);
	/* What is left in the buffers. */
	for (int i = 0; i < MESH_CHANS; i++) {
		int v;
		bool ok;
		while (tt_chan_recv_until(m.ch[i], &v, sizeof v, &ok, TT_TRY) ==
		       0) {
			assert_true(ok);
			mesh_take(&m, v);
		}
	}
	TU_ASSERT_MSG(atomic_load(&m.bad) == 0, "%d bad (first at line %d)",
		      atomic_load(&m.bad), atomic_load(&m.first_bad_line));
	int total = 0;
	for (int g = 0; g < MESH_GIDS; g++) {
		int sent = atomic_load(&m.sent[g]);
		total += sent;
		for (int s = 0; s < m.iters; s++)
			TU_ASSERT_MSG(atomic_load(&m.seen[g * m.iters + s]) ==
					      (s < sent),
				      "worker %d value %d seen %d (sent %d)", g,
				      s, atomic_load(&m.seen[g * m.iters + s]),
				      sent);
	}
	assert_int_equal(atomic_load(&m.received), total);
	print_message("  %d values through selects of three threads; %d "
		      "contexts cancelled, %d selects woken by one\n",
		      total, atomic_load(&m.cancels),
		      atomic_load(&m.ctx_fired));
	TU_ASSERT_OK(tt_chan_release(m.ch[0]));
	TU_ASSERT_OK(tt_chan_release(m.ch[1]));
	host_stop(&h); /* it releases its channels */
	assert_int_equal(atomic_load(&m.bad), 0);
	TU_ASSERT_GT(atomic_load(&m.cancels), 0);
	free((void *)m.seen);
}

/* ---- Go's TestSelfSelect, its two goroutines on two threads ---------------- */

typedef struct self_pair {
	tt_chan *c;
	int cap;
	int p;
	int iters;
	int bad;
} self_pair;

static void self_loop(self_pair *s)
{
	for (int i = 0; i < s->iters; i++) {
		int v = -1;
		bool ok;
		int out = s->p;
		tt_case send = TT_CASE_SEND_FROM(s->c, &out);
		tt_case recv = TT_CASE_RECV_INTO(s->c, &v, &ok);
		bool send_first = s->p == 0 || i % 2 == 0;
		tt_case cs[2] = {send_first ? send : recv,
				 send_first ? recv : send};
		int r = tt_select(cs, 2, tt_deadline_in(30 * TT_SECOND));
		if (r < 0) {
			s->bad++;
			break;
		}
		/* Unbuffered, a select never receives its own value. */
		if (cs[r].kind == TT_CASE_RECV && s->cap == 0 && v == s->p)
			s->bad++;
	}
}

static void *self_thread(void *arg)
{
	self_loop(arg);
	return NULL;
}

static void test_self_select_two_threads(void **state)
{
	(void)state;
	TU_REQUIRE_THREADS();
	const int caps[] = {0, 10};
	for (size_t k = 0; k < 2; k++) {
		tt_chan *c = tu_chan(sizeof(int), caps[k]);
		self_pair a = {.c = c, .cap = caps[k], .p = 0,
			       .iters = TU_SCALE(20000, 2000)};
		self_pair b = a;
		b.p = 1;
		pthread_t th;
		assert_int_equal(pthread_create(&th, NULL, self_thread, &b), 0);
		self_loop(&a);
		tu_join_parked(th);
		TU_ASSERT_MSG(a.bad == 0 && b.bad == 0,
			      "cap %d: %d and %d bad selects", caps[k], a.bad,
			      b.bad);
		TU_ASSERT_OK(tt_chan_release(c));
	}
}

/* ---- how a select of another thread's ends ------------------------------------- */

typedef struct one_sel {
	pthread_t th;
	tt_case cs[3];
	size_t n;
	int64_t deadline;
	int v, u;
	bool ok, ok2;
	int r;
	char err[200];
	_Atomic int stage; /* 1: about to select; 2: returned */
} one_sel;

static void *one_select(void *p)
{
	one_sel *s = p;
	atomic_store(&s->stage, 1);
	s->r = tt_select(s->cs, s->n, s->deadline);
	snprintf(s->err, sizeof s->err, "%s", tt_last_error());
	atomic_store(&s->stage, 2);
	return NULL;
}

static void start_select(one_sel *s)
{
	assert_int_equal(pthread_create(&s->th, NULL, one_select, s), 0);
	TU_WAIT_FOR(atomic_load(&s->stage) >= 1, 30 * TT_SECOND);
}

/* A close by the owner ends a pthread's select parked on its channel;
 * a send to the other case's channel afterwards finds nobody. */
static void test_foreign_select_woken_by_close(void **state)
{
	(void)state;
	TU_REQUIRE_THREADS();
	tt_chan *a = tu_chan(sizeof(int), 0), *b = tu_chan(sizeof(int), 0);
	one_sel s = {.n = 2, .deadline = TT_FOREVER, .v = -1, .u = -1,
		     .ok2 = true};
	s.cs[0] = (tt_case)TT_CASE_RECV_INTO(a, &s.v, &s.ok);
	s.cs[1] = (tt_case)TT_CASE_RECV_INTO(b, &s.u, &s.ok2);
	start_select(&s);
	TU_ASSERT_OK(tt_sleep(5 * MS));
	assert_int_equal(atomic_load(&s.stage), 1);
	TU_ASSERT_OK(tt_chan_close(b));
	tu_join_parked(s.th);
	assert_int_equal(s.r, 1);
	assert_false(s.ok2);
	assert_int_equal(s.u, 0);
	int v = 1;
	TU_ASSERT_ERR(tt_chan_send_until(a, &v, sizeof v, TT_TRY), -EAGAIN);
	TU_ASSERT_OK(tt_chan_release(a));
	TU_ASSERT_OK(tt_chan_release(b));
}

static void recv_one(void *p)
{
	int v = -1;
	bool ok = false;
	TU_ASSERT_OK(tt_chan_recv(p, &v, sizeof v, &ok));
	assert_true(ok);
	assert_int_equal(v, 42);
}

/* A pthread's select with a deadline, a receive and a send: its deadline
 * takes both waiters out (nothing can pair with them afterwards); again
 * with a receiver of main's, which takes its send. */
static void test_foreign_select_deadline(void **state)
{
	(void)state;
	TU_REQUIRE_THREADS();
	tt_chan *a = tu_chan(sizeof(int), 0), *b = tu_chan(sizeof(int), 0);
	one_sel s = {.n = 2, .v = -1, .u = 42};
	s.cs[0] = (tt_case)TT_CASE_RECV_INTO(a, &s.v, &s.ok);
	s.cs[1] = (tt_case)TT_CASE_SEND_FROM(b, &s.u);
	s.deadline = tt_deadline_in(20 * MS);
	start_select(&s);
	tu_join_parked(s.th);
	assert_int_equal(s.r, -ETIMEDOUT);
	int v = 1;
	TU_ASSERT_ERR(tt_chan_send_until(a, &v, sizeof v, TT_TRY), -EAGAIN);
	TU_ASSERT_ERR(tt_chan_recv_until(b, &v, sizeof v, NULL, TT_TRY),
		      -EAGAIN);

	one_sel s2 = s;
	s2.cs[0] = (tt_case)TT_CASE_RECV_INTO(a, &s2.v, &s2.ok);
	s2.cs[1] = (tt_case)TT_CASE_SEND_FROM(b, &s2.u);
	atomic_store(&s2.stage, 0);
	s2.deadline = tt_deadline_in(30 * TT_SECOND);
	start_select(&s2);
	tu_go(recv_one, b);
	tu_join_parked(s2.th);
	assert_int_equal(s2.r, 1);
	TU_ASSERT_OK(tt_sleep(MS)); /* recv_one's checks */
	TU_ASSERT_ERR(tt_chan_send_until(a, &v, sizeof v, TT_TRY), -EAGAIN);
	TU_ASSERT_OK(tt_chan_release(a));
	TU_ASSERT_OK(tt_chan_release(b));
}

/* ---- timers and shared stacks ------------------------------------------------- */

typedef struct timer_host {
	tt_timer *t;
	int r;
} timer_host;

static void make_timer(host *h)
{
	timer_host *th = h->arg;
	th->r = tt_timer_make(&th->t, 20 * MS);
}

/* Another thread's timer fires into a select of main's, next to a channel
 * of main's own that never becomes ready. */
static void test_select_on_other_threads_timer(void **state)
{
	(void)state;
	TU_REQUIRE_THREADS();
	timer_host th = {0};
	host h = {.setup = make_timer, .arg = &th};
	host_start(&h);
	TU_ASSERT_OK(th.r);
	tt_chan *never = tu_chan(sizeof(int), 0);
	int64_t at = 0, t0 = tt_now();
	int v;
	tt_case cs[2] = {TT_CASE_RECV_INTO(never, &v, NULL),
			 TT_CASE_RECV_INTO(tt_timer_chan(th.t), &at, NULL)};
	assert_int_equal(tt_select(cs, 2, tt_deadline_in(30 * TT_SECOND)), 1);
	TU_ASSERT_GE(at, t0);
	TU_ASSERT_GE(tt_now() - t0, 10 * MS);
	host_stop(&h);
	TU_ASSERT_OK(tt_chan_release(never));
}

typedef struct chan_host {
	tt_chan *c;
	int r;
} chan_host;

static void make_chan(host *h)
{
	chan_host *ch = h->arg;
	ch->r = tt_chan_make(&ch->c, sizeof(int), 0);
}

typedef struct stacked {
	tt_chan *c, *done;
	int r;
	char err[200];
} stacked;

static void shared_stack_select(void *p)
{
	stacked *s = p;
	int v;
	tt_case k = TT_CASE_RECV_INTO(s->c, &v, NULL);
	s->r = tt_select(&k, 1, TT_TRY);
	snprintf(s->err, sizeof s->err, "%s", tt_last_error());
	tu_done(s->done);
}

/* A goroutine on a shared stack has its stack copied away while it
 * waits, so another thread may not write into it: its select on another
 * thread's channel is refused with an error that says so. */
static void test_shared_stack_foreign_select_refused(void **state)
{
	(void)state;
	TU_REQUIRE_THREADS();
	chan_host ch = {0};
	host h = {.setup = make_chan, .arg = &ch};
	host_start(&h);
	TU_ASSERT_OK(ch.r);
	stacked s = {.c = ch.c, .done = tu_chan(0, 1)};
	tt_go_attr attr = {.shared_stack = true};
	tu_go_with(&attr, shared_stack_select, &s);
	TU_WAIT_DONE(s.done, 1, 30 * TT_SECOND);
	assert_int_equal(s.r, -ENOTSUP);
	TU_ASSERT_CONTAINS(s.err, "shared stack");
	TU_ASSERT_CONTAINS(s.err, "tt_select");
	TU_ASSERT_OK(tt_chan_release(s.done));
	host_stop(&h);
}

/* ---- ends of threads (in a child process: an ended thread's objects
 * stay behind) ---------------------------------------------------------------- */

/* The owner of the channels a pthread's select waits on ends: the select
 * returns -EPIPE and says why. */
static void child_select_owner_ends(void)
{
	chan_host ch = {0};
	host h = {.setup = make_chan, .arg = &ch};
	TU_CHILD_CHECK(pthread_create(&h.th, NULL, host_main, &h) == 0);
	while (!atomic_load(&h.ready))
		TU_UNCHECKED(tt_sleep(MS));
	TU_CHILD_CHECK(ch.r == 0);
	tt_chan *mine;
	TU_CHILD_CHECK(tt_chan_make(&mine, sizeof(int), 0) == 0);
	one_sel s = {.n = 2, .deadline = TT_FOREVER};
	s.cs[0] = (tt_case)TT_CASE_RECV_INTO(ch.c, &s.v, &s.ok);
	s.cs[1] = (tt_case)TT_CASE_RECV_INTO(mine, &s.u, &s.ok2);
	TU_CHILD_CHECK(pthread_create(&s.th, NULL, one_select, &s) == 0);
	while (atomic_load(&s.stage) < 1)
		TU_UNCHECKED(tt_sleep(MS));
	TU_UNCHECKED(tt_sleep(10 * MS));
	TU_CHILD_CHECK(atomic_load(&s.stage) == 1);
	atomic_store(&h.quit, 1);
	TU_CHILD_CHECK(tt_blocking(tu_join_thread, &h.th) == 0);
	TU_CHILD_CHECK(tt_blocking(tu_join_thread, &s.th) == 0);
	if (s.r != -EPIPE)
		fprintf(stderr, "select: %d (%s)\n", s.r, s.err);
	TU_CHILD_CHECK(s.r == -EPIPE);
	TU_CHILD_CHECK(strstr(s.err, "belongs to a thread that has ended"));
	/* Its waiter on main's channel left with it. */
	int v = 1;
	TU_CHILD_CHECK(tt_chan_send_until(mine, &v, sizeof v, TT_TRY) == -EAGAIN);
	TU_CHILD_CHECK(tt_chan_release(mine) == 0);
	fprintf(stderr, "tu-done\n");
}

typedef struct leaver {
	tt_chan *a, *b;
	_Atomic int stage;
} leaver;

static void select_forever(void *p)
{
	leaver *l = p;
	int v, u;
	tt_case cs[2] = {TT_CASE_RECV_INTO(l->a, &v, NULL),
			 TT_CASE_RECV_INTO(l->b, &u, NULL)};
	atomic_store(&l->stage, 1);
	TU_UNCHECKED(tt_select(cs, 2, TT_FOREVER));
	atomic_store(&l->stage, 99); /* never: its thread ends first */
}

static void *thread_that_leaves(void *p)
{
	leaver *l = p;
	if (tt_go(select_forever, l) <= 0)
		return NULL;
	while (atomic_load(&l->stage) == 0)
		TU_UNCHECKED(tt_sleep(MS));
	/* Give the select time to share a and b and park. */
	TU_UNCHECKED(tt_sleep(20 * MS));
	return NULL;
}

/* A thread ends while its goroutine is parked in a select on main's
 * channels: the select's waiters leave main's queues with it, and sends
 * find nobody to hand to. */
static void child_selecting_thread_ends(void)
{
	/* The select must be the ending thread's goroutine: tt_go starts it
	 * on its caller's thread only at one P (at more it may go to a
	 * worker, which does not end). */
	tu_one_p();
	leaver l = {0};
	TU_CHILD_CHECK(tt_chan_make(&l.a, sizeof(int), 0) == 0);
	TU_CHILD_CHECK(tt_chan_make(&l.b, sizeof(int), 0) == 0);
	pthread_t th;
	TU_CHILD_CHECK(pthread_create(&th, NULL, thread_that_leaves, &l) == 0);
	TU_CHILD_CHECK(tt_blocking(tu_join_thread, &th) == 0);
	TU_CHILD_CHECK(atomic_load(&l.stage) == 1);
	int v = 3;
	TU_CHILD_CHECK(tt_chan_send_until(l.a, &v, sizeof v, TT_TRY) == -EAGAIN);
	TU_CHILD_CHECK(tt_chan_send_until(l.b, &v, sizeof v, TT_TRY) == -EAGAIN);
	TU_CHILD_CHECK(tt_chan_release(l.a) == 0);
	TU_CHILD_CHECK(tt_chan_release(l.b) == 0);
	fprintf(stderr, "tu-done\n");
}

static void test_select_owner_ends(void **state)
{
	(void)state;
	TU_REQUIRE_THREADS();
	tu_run_child_case("select_owner_ends");
}

static void test_selecting_thread_ends(void **state)
{
	(void)state;
	TU_REQUIRE_THREADS();
	tu_run_child_case("selecting_thread_ends");
}

int main(int argc, char **argv)
{
	static const tu_child_case cases[] = {
		{"select_owner_ends", child_select_owner_ends},
		{"selecting_thread_ends", child_selecting_thread_ends},
	};
	tu_child_dispatch(argc, argv, cases, sizeof cases / sizeof *cases);
	const struct CMUnitTest tests[] = {
		TU_TEST(test_pthread_selects_on_owner_channels),
		TU_TEST(test_selects_across_three_threads),
		TU_TEST(test_self_select_two_threads),
		TU_TEST(test_foreign_select_woken_by_close),
		TU_TEST(test_foreign_select_deadline),
		TU_TEST(test_select_on_other_threads_timer),
		TU_TEST(test_shared_stack_foreign_select_refused),
		TU_TEST(test_select_owner_ends),
		TU_TEST(test_selecting_thread_ends),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
