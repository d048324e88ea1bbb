/* Children of another thread's context (src/ctx/ctx.c, "children on
 * other threads"): a pthread's child of main's context is cancelled by
 * main's cancel, with its cause, or by main's deadline; one made under a
 * context cancelled already is cancelled at once; values and String pass
 * through; a grandchild on a third thread hears of a cancel two threads
 * up; a child cancelled or released first leaves its parent's list; a
 * pthread's AfterFunc on main's context, and its Stop. The pthreads
 * record what they saw; the main goroutine checks it. */
#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h" /* tt__posts_pushed */
#include "testutil.h"

#define MS TT_MILLISECOND

/* A pthread that makes a child of `parent` (with_cancel, or
 * with_cancel_cause), reports it made, waits for it to be done, and
 * records Err, Cause and how long it waited. */
typedef struct child_side {
	pthread_t th;
	tt_ctx *parent;
	bool cause_kind;
	int made, err, cause, recv, ok_after;
	int64_t waited;
	_Atomic int stage; /* 1: made; 2: done */
	tt_ctx *child;     /* for a grandchild */
	_Atomic int release_child; /* main says when */
} child_side;

static void *child_main(void *arg)
{
	child_side *c = arg;
	tt_ctx *k = NULL;
	c->made = c->cause_kind ? tt_ctx_with_cancel_cause(&k, c->parent)
				: tt_ctx_with_cancel(&k, c->parent);
	if (c->made) {
		atomic_store(&c->stage, 2);
		return NULL;
	}
	c->child = k;
	atomic_store(&c->stage, 1);
	int64_t t0 = tt_now();
	bool ok = true;
	c->recv = tt_chan_recv_until(tt_ctx_done(k), NULL, 0, &ok,
				     tt_deadline_in(30 * TT_SECOND));
	c->ok_after = ok;
	c->waited = tt_now() - t0;
	c->err = tt_ctx_err(k);
	c->cause = tt_ctx_cause(k);
	atomic_store(&c->stage, 2);
	/* Stays while a grandchild may use it. */
	while (!atomic_load(&c->release_child))
		TU_UNCHECKED(tt_sleep(MS / 2));
	TU_UNCHECKED(tt_ctx_release(k));
	return NULL;
}

static void start_child(child_side *c)
{
	assert_int_equal(pthread_create(&c->th, NULL, child_main, c), 0);
	TU_WAIT_FOR(atomic_load(&c->stage) >= 1, 30 * TT_SECOND);
}

static void end_child(child_side *c)
{
	atomic_store(&c->release_child, 1);
	tu_join_parked(c->th);
}

static void test_child_of_other_threads_context(void **state)
{
	(void)state;
	TU_REQUIRE_THREADS();
	tt_ctx *p;
	TU_ASSERT_OK(tt_ctx_with_cancel_cause(&p, tt_ctx_background()));
	child_side c = {.parent = p, .cause_kind = true};
	start_child(&c);
	TU_ASSERT_OK(c.made);
	TU_ASSERT_OK(tt_sleep(5 * MS));
	assert_int_equal(atomic_load(&c.stage), 1); /* not done yet */
	TU_ASSERT_OK(tt_ctx_cancel_cause(p, -EPIPE));
	TU_WAIT_FOR(atomic_load(&c.stage) == 2, 30 * TT_SECOND);
	TU_ASSERT_OK(c.recv);
	assert_false(c.ok_after); /* closed */
	assert_int_equal(c.err, -ECANCELED);
	assert_int_equal(c.cause, -EPIPE); /* the parent's, copied down */
	end_child(&c);
	TU_ASSERT_OK(tt_ctx_release(p));
}

static void test_child_gets_parents_deadline(void **state)
{
	(void)state;
	TU_REQUIRE_THREADS();
	tt_ctx *p;
	TU_ASSERT_OK(tt_ctx_with_timeout(&p, tt_ctx_background(), 30 * MS));
	child_side c = {.parent = p};
	start_child(&c);
	TU_ASSERT_OK(c.made);
	TU_WAIT_FOR(atomic_load(&c.stage) == 2, 30 * TT_SECOND);
	TU_ASSERT_OK(c.recv);
	assert_int_equal(c.err, -ETIMEDOUT);
	TU_ASSERT_LT(c.waited, 20 * TT_SECOND);
	end_child(&c);
	TU_ASSERT_OK(tt_ctx_cancel(p));
	TU_ASSERT_OK(tt_ctx_release(p));
}

static void test_child_of_cancelled_context(void **state)
{
	(void)state;
	TU_REQUIRE_THREADS();
	tt_ctx *p;
	TU_ASSERT_OK(tt_ctx_with_cancel_cause(&p, tt_ctx_background()));
	TU_ASSERT_OK(tt_ctx_cancel_cause(p, -ENOSPC));
	child_side c = {.parent = p, .cause_kind = true};
	start_child(&c);
	TU_ASSERT_OK(c.made);
	TU_WAIT_FOR(atomic_load(&c.stage) == 2, 30 * TT_SECOND);
	TU_ASSERT_OK(c.recv);
	assert_int_equal(c.err, -ECANCELED);
	assert_int_equal(c.cause, -ENOSPC);
	end_child(&c);
	TU_ASSERT_OK(tt_ctx_release(p));
}

/* ---- a grandchild two threads down ---------------------------------------- */

static void test_grandchild_on_third_thread(void **state)
{
	(void)state;
	TU_REQUIRE_THREADS();
	tt_ctx *p;
	TU_ASSERT_OK(tt_ctx_with_cancel(&p, tt_ctx_background()));
	child_side b = {.parent = p};
	start_child(&b);
	TU_ASSERT_OK(b.made);
	child_side g = {.parent = b.child}; /* B's context, made on B */
	start_child(&g);
	TU_ASSERT_OK(g.made);
	TU_ASSERT_OK(tt_sleep(5 * MS));
	assert_int_equal(atomic_load(&g.stage), 1);
	TU_ASSERT_OK(tt_ctx_cancel(p));
	TU_WAIT_FOR(atomic_load(&g.stage) == 2 && atomic_load(&b.stage) == 2, 30 * TT_SECOND);
	assert_int_equal(b.err, -ECANCELED);
	assert_int_equal(g.err, -ECANCELED);
	end_child(&g);
	end_child(&b);
	TU_ASSERT_OK(tt_ctx_release(p));
}

/* ---- values and String ------------------------------------------------------ */

static int key_a, key_b;

typedef struct value_side {
	tt_ctx *parent;
	int made;
	void *a, *b;
	char name[256];
	int err_before;
} value_side;

static void *value_main(void *arg)
{
	value_side *v = arg;
	tt_ctx *k = NULL;
	v->made = tt_ctx_with_value(&k, v->parent, &key_b, (void *)"b");
	if (v->made)
		return NULL;
	v->a = tt_ctx_value(k, &key_a);
	v->b = tt_ctx_value(k, &key_b);
	v->err_before = tt_ctx_err(k);
	TU_UNCHECKED(tt_ctx_string(k, v->name, sizeof v->name));
	TU_UNCHECKED(tt_ctx_release(k));
	return NULL;
}

static void test_value_child_of_other_threads_context(void **state)
{
	(void)state;
	TU_REQUIRE_THREADS();
	tt_ctx *c, *p;
	TU_ASSERT_OK(tt_ctx_with_cancel(&c, tt_ctx_background()));
	TU_ASSERT_OK(tt_ctx_with_value(&p, c, &key_a, (void *)"a"));
	value_side v = {.parent = p};
	pthread_t th;
	assert_int_equal(pthread_create(&th, NULL, value_main, &v), 0);
	tu_join_parked(th);
	TU_ASSERT_OK(v.made);
	assert_string_equal((const char *)v.a, "a");
	assert_string_equal((const char *)v.b, "b");
	TU_ASSERT_OK(v.err_before);
	/* Go's String: no trace of the link the child sits on. */
	TU_ASSERT_CONTAINS(v.name, "context.Background.WithCancel.WithValue(");
	assert_int_equal(tu_count(v.name, ".WithCancel"), 1);
	assert_int_equal(tu_count(v.name, ".WithValue("), 2);
	TU_ASSERT_OK(tt_ctx_cancel(c));
	TU_ASSERT_OK(tt_ctx_release(p));
	TU_ASSERT_OK(tt_ctx_release(c));
}

/* ---- children that go first ------------------------------------------------- */

typedef struct early {
	tt_ctx *parent;
	int made_a, made_b, cancel_a, err_a;
} early;

static void *early_main(void *arg)
{
	early *e = arg;
	tt_ctx *a = NULL, *b = NULL;
	e->made_a = tt_ctx_with_cancel(&a, e->parent);
	e->made_b = tt_ctx_with_cancel(&b, e->parent);
	if (e->made_a || e->made_b)
		return NULL;
	/* a: cancelled by itself, then released; b: released
	 * uncancelled (a lost cancel, recorded on this thread). */
	e->cancel_a = tt_ctx_cancel(a);
	e->err_a = tt_ctx_err(a);
	TU_UNCHECKED(tt_ctx_release(a));
	TU_UNCHECKED(tt_ctx_cancel(b));
	TU_UNCHECKED(tt_ctx_release(b));
	return NULL;
}

/* The pthread's children leave main's context before main cancels and
 * releases it: nothing is posted to them after, and main's context is
 * freed once their references are back (no goroutine, no leak). */
static void test_children_done_first(void **state)
{
	(void)state;
	TU_REQUIRE_THREADS();
	tt_ctx *p;
	TU_ASSERT_OK(tt_ctx_with_cancel(&p, tt_ctx_background()));
	early e = {.parent = p};
	pthread_t th;
	assert_int_equal(pthread_create(&th, NULL, early_main, &e), 0);
	tu_join_parked(th);
	TU_ASSERT_OK(e.made_a);
	TU_ASSERT_OK(e.made_b);
	TU_ASSERT_OK(e.cancel_a);
	assert_int_equal(e.err_a, -ECANCELED);
	TU_ASSERT_OK(tt_ctx_err(p)); /* the children's cancel is theirs */
	TU_ASSERT_OK(tt_ctx_cancel(p));
	TU_ASSERT_OK(tt_ctx_release(p));
	/* Released: the handle is dead once the posts have run. */
	TU_ASSERT_OK(tt_sleep(MS));
	TU_ASSERT_ERR(tt_ctx_err(p), -EBADF);
}

/* ---- AfterFunc and String from another thread ------------------------------ */

static _Atomic int after_ran;

static void after_fn(void *arg)
{
	atomic_fetch_add(&after_ran, *(int *)arg);
}

typedef struct after_side {
	tt_ctx *ctx;
	int one, ten;
	int made1, made2;
	bool stopped, stopped_again;
	int name_len;
	char name[128];
} after_side;

static void *after_main(void *arg)
{
	after_side *a = arg;
	tt_ctx_after *s1 = NULL, *s2 = NULL;
	a->made1 = tt_ctx_after_func(a->ctx, after_fn, &a->one, &s1);
	a->made2 = tt_ctx_after_func(a->ctx, after_fn, &a->ten, &s2);
	a->stopped = tt_ctx_after_stop(s2);       /* before the cancel */
	a->stopped_again = tt_ctx_after_stop(s2); /* a dead handle */
	a->name_len = tt_ctx_string(a->ctx, a->name, sizeof a->name);
	return NULL;
}

/* A pthread's AfterFunc on main's context runs (on main's thread) when
 * main cancels it; the one it stopped does not. Its String reads main's
 * context. */
static void test_after_func_and_string_from_pthread(void **state)
{
	(void)state;
	TU_REQUIRE_THREADS();
	tt_ctx *c;
	TU_ASSERT_OK(tt_ctx_with_cancel(&c, tt_ctx_background()));
	after_side a = {.ctx = c, .one = 1, .ten = 10};
	atomic_store(&after_ran, 0);
	pthread_t th;
	assert_int_equal(pthread_create(&th, NULL, after_main, &a), 0);
	tu_join_parked(th);
	TU_ASSERT_OK(a.made1);
	TU_ASSERT_OK(a.made2);
	assert_true(a.stopped);
	assert_false(a.stopped_again);
	assert_string_equal(a.name, "context.Background.WithCancel");
	assert_int_equal(a.name_len, (int)strlen(a.name));
	assert_int_equal(atomic_load(&after_ran), 0);
	TU_ASSERT_OK(tt_ctx_cancel(c));
	TU_WAIT_FOR(atomic_load(&after_ran) != 0, 30 * TT_SECOND);
	TU_ASSERT_OK(tt_sleep(MS));
	assert_int_equal(atomic_load(&after_ran), 1);
	TU_ASSERT_OK(tt_ctx_release(c));
}

/* ---- context-aware waits on another thread's context ------------------------ */

/* The waits of a thread on another thread's context arm on one child of
 * it, linked by the first (its mirror, ctx.c): a thousand more cost no
 * post to the context's owner each, where a child per wait cost a round
 * trip and a post back. */
typedef struct many {
	tt_ctx *ctx;
	int bad;
	uint64_t posts;
} many;

static void *many_main(void *arg)
{
	many *a = arg;
	tt_mutex *m;
	TU_ASSERT_OK(tt_mutex_make(&m));
	a->bad += tt_mutex_lock_ctx(a->ctx, m) != 0; /* makes the mirror */
	TU_ASSERT_OK(tt_mutex_unlock(m));
	uint64_t before = tt__posts_pushed();
	for (int i = 0; i < 1000; i++) {
		a->bad += tt_mutex_lock_ctx(a->ctx, m) != 0;
		TU_ASSERT_OK(tt_mutex_unlock(m));
	}
	a->posts = tt__posts_pushed() - before;
	TU_ASSERT_OK(tt_mutex_release(m));
	return NULL;
}

static void test_waits_share_one_mirror(void **state)
{
	(void)state;
	TU_REQUIRE_THREADS();
	many a = {0};
	TU_ASSERT_OK(tt_ctx_with_cancel(&a.ctx, tt_ctx_background()));
	pthread_t th;
	assert_int_equal(pthread_create(&th, NULL, many_main, &a), 0);
	tu_join_parked(th);
	TU_ASSERT_EQ(a.bad, 0);
	/* Other threads of the process (a P's worker) may post meanwhile;
	 * a post per wait would be 1000 or more. */
	TU_ASSERT_LT(a.posts, 50);
	TU_ASSERT_OK(tt_ctx_cancel(a.ctx));
	TU_ASSERT_OK(tt_ctx_release(a.ctx));
}

typedef struct aware {
	tt_ctx *ctx;
	tt_mutex *m;
	tt_waitgroup *wg;
	int slept, locked, waited;
	int64_t took;
	_Atomic int stage;
} aware;

static void *aware_main(void *arg)
{
	aware *a = arg;
	atomic_store(&a->stage, 1);
	int64_t t0 = tt_now();
	a->slept = tt_sleep_ctx(a->ctx, 30 * TT_SECOND);
	a->locked = tt_mutex_lock_ctx(a->ctx, a->m); /* cancelled: at once */
	a->waited = tt_wg_wait_ctx(a->ctx, a->wg);
	a->took = tt_now() - t0;
	return NULL;
}

/* A pthread's sleep, Lock and Wait with main's context end when main
 * cancels it (each on a child of it of the pthread's own). */
static void test_waits_on_other_threads_context(void **state)
{
	(void)state;
	TU_REQUIRE_THREADS();
	aware a = {0};
	TU_ASSERT_OK(tt_ctx_with_cancel(&a.ctx, tt_ctx_background()));
	TU_ASSERT_OK(tt_mutex_make(&a.m));
	TU_ASSERT_OK(tt_mutex_lock(a.m));
	TU_ASSERT_OK(tt_wg_make(&a.wg));
	TU_ASSERT_OK(tt_wg_add(a.wg, 1));
	pthread_t th;
	assert_int_equal(pthread_create(&th, NULL, aware_main, &a), 0);
	TU_WAIT_FOR(atomic_load(&a.stage) == 1, 30 * TT_SECOND);
	TU_ASSERT_OK(tt_sleep(10 * MS));
	TU_ASSERT_OK(tt_ctx_cancel(a.ctx));
	tu_join_parked(th);
	assert_int_equal(a.slept, -ECANCELED);
	assert_int_equal(a.locked, -ECANCELED);
	assert_int_equal(a.waited, -ECANCELED);
	TU_ASSERT_LT(a.took, 20 * TT_SECOND);
	TU_ASSERT_OK(tt_mutex_unlock(a.m));
	TU_ASSERT_OK(tt_wg_done(a.wg));
	TU_ASSERT_OK(tt_mutex_release(a.m));
	TU_ASSERT_OK(tt_wg_release(a.wg));
	TU_ASSERT_OK(tt_ctx_release(a.ctx));
}

/* A pthread's context-aware wait on main's object, cancelled on the
 * pthread right after it asked: main, busy meanwhile, takes the wait and
 * the cancel from its inbox together, so the cancel comes before the
 * goroutine that waits there for the pthread has started its wait. */
enum { E_MUTEX, E_RLOCK, E_WLOCK, E_WG, E_N };

typedef struct asked {
	int kind;
	tt_ctx *ctx;
	tt_mutex *m;
	tt_rwmutex *rw;
	tt_waitgroup *wg;
	int got;
	_Atomic int stage; /* 1: cancelled; 2: the wait returned */
} asked;

static void asked_cancel(void *arg)
{
	asked *e = arg;
	tt_yield(); /* after the wait has asked main, whichever ran first */
	TU_UNCHECKED(tt_ctx_cancel(e->ctx));
	atomic_store(&e->stage, 1);
}

static void *asked_main(void *arg)
{
	asked *e = arg;
	if (tt_ctx_with_cancel(&e->ctx, tt_ctx_background()) == 0) {
		tt_go_attr attr = {.flags = TT_GO_THIS_THREAD};
		TU_ASSERT_GT(tt_go_with(&attr, asked_cancel, e), 0);
		switch (e->kind) {
		case E_MUTEX: e->got = tt_mutex_lock_ctx(e->ctx, e->m); break;
		case E_RLOCK:
			e->got = tt_rwmutex_rlock_ctx(e->ctx, e->rw);
			break;
		case E_WLOCK:
			e->got = tt_rwmutex_lock_ctx(e->ctx, e->rw);
			break;
		case E_WG: e->got = tt_wg_wait_ctx(e->ctx, e->wg); break;
		}
		TU_UNCHECKED(tt_ctx_release(e->ctx));
	}
	atomic_store(&e->stage, 2);
	return NULL;
}

static void test_cancel_with_the_wait(void **state)
{
	(void)state;
	TU_REQUIRE_THREADS();
	for (int k = 0; k < E_N; k++) {
		asked e = {.kind = k, .got = 1};
		TU_ASSERT_OK(tt_mutex_make(&e.m));
		TU_ASSERT_OK(tt_rwmutex_make(&e.rw));
		TU_ASSERT_OK(tt_wg_make(&e.wg));
		TU_ASSERT_OK(tt_mutex_lock(e.m));
		TU_ASSERT_OK(tt_rwmutex_lock(e.rw));
		TU_ASSERT_OK(tt_wg_add(e.wg, 1));
		pthread_t th;
		assert_int_equal(pthread_create(&th, NULL, asked_main, &e), 0);
		/* Busy without looking at the inbox (no tether call) until
		 * the pthread has cancelled. */
		int64_t end = tt_now() + 30 * TT_SECOND;
		while (atomic_load(&e.stage) == 0 && tt_now() < end)
			sched_yield();
		TU_ASSERT_EQ(atomic_load(&e.stage), 1);
		/* The cancel ends the wait; the objects held would not. */
		end = tt_now() + 5 * TT_SECOND;
		while (atomic_load(&e.stage) != 2 && tt_now() < end)
			TU_ASSERT_OK(tt_sleep(MS));
		TU_ASSERT_OK(tt_mutex_unlock(e.m));
		TU_ASSERT_OK(tt_rwmutex_unlock(e.rw));
		TU_ASSERT_OK(tt_wg_done(e.wg));
		tu_join_parked(th);
		TU_ASSERT_MSG(e.got == -ECANCELED, "kind %d: %d", k, e.got);
		TU_ASSERT_OK(tt_mutex_release(e.m));
		TU_ASSERT_OK(tt_rwmutex_release(e.rw));
		TU_ASSERT_OK(tt_wg_release(e.wg));
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		TU_TEST(test_child_of_other_threads_context),
		TU_TEST(test_child_gets_parents_deadline),
		TU_TEST(test_child_of_cancelled_context),
		TU_TEST(test_grandchild_on_third_thread),
		TU_TEST(test_value_child_of_other_threads_context),
		TU_TEST(test_children_done_first),
		TU_TEST(test_after_func_and_string_from_pthread),
		TU_TEST(test_waits_on_other_threads_context),
		TU_TEST(test_waits_share_one_mirror),
		TU_TEST(test_cancel_with_the_wait),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
