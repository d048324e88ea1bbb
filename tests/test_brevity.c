/* tether tests — Go's brevity: goroutines that own what they are handed
 * (TT_GO, tt_go_attr.own, tt_wg_go), any object by its handle
 * (tt_obj_retain/release), scope-exit cleanup (TT_DEFER_*), select with a
 * default that is not an error (TT_DEFAULT), the sizeof shorthands, and
 * strict mode. */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "testutil.h"

/* ---- goroutines own what they are handed ----------------------------- */

typedef struct kit {
	tt_chan *jobs;
	tt_ctx *ctx;
	tt_mutex *mu;
	tt_waitgroup *wg;
	long sum;
	bool exit_early; /* end with tt_goexit */
} kit;

static void worker(void *arg)
{
	kit *k = arg;
	int v;
	bool ok;
	while (tt_recv(k->jobs, &v, &ok) == 0 && ok) {
		TU_ASSERT_OK(tt_mutex_lock(k->mu));
		k->sum += v;
		TU_ASSERT_OK(tt_mutex_unlock(k->mu));
		if (k->exit_early)
			tt_goexit();
	}
	TU_ASSERT_OK(tt_ctx_err(k->ctx));
}

/* Every handle of k is stale: its objects were freed. */
static void assert_kit_dead(kit *k)
{
	TU_ASSERT_EQ(tt_chan_len(k->jobs), -EBADF);
	TU_ASSERT_ERR(tt_ctx_err(k->ctx), -EBADF);
	TU_ASSERT_ERR(tt_mutex_trylock(k->mu), -EBADF);
}

static void make_kit(kit *k)
{
	memset(k, 0, sizeof *k);
	k->jobs = tu_chan(sizeof(int), 4);
	TU_ASSERT_OK(tt_ctx_with_cancel(&k->ctx, tt_ctx_background()));
	TU_ASSERT_OK(tt_mutex_make(&k->mu));
}

static void run_owned(bool exit_early)
{
	kit k;
	make_kit(&k);
	k.exit_early = exit_early;
	int64_t id = TT_GO(worker, &k, k.jobs, k.ctx, k.mu, NULL);
	TU_ASSERT(id > 0);
	/* The goroutine holds its own references now: drop ours, except
	 * the channel's sending side, which we still use. */
	TU_ASSERT_OK(tt_ctx_release(k.ctx));
	TU_ASSERT_OK(tt_mutex_release(k.mu));
	for (int i = 1; i <= 3; i++)
		TU_ASSERT_OK(tt_send(k.jobs, &i));
	TU_ASSERT_OK(tt_chan_close(k.jobs));
	TU_ASSERT_OK(tt_chan_release(k.jobs));
	/* With two Ps it may run on another thread: wait for its end. */
	TU_WAIT_FOR(tt_num_goroutine() <= 1, 10 * TT_SECOND);
	TU_ASSERT_EQ(k.sum, exit_early ? 1 : 6);
	/* Its end released them all: each handle is now stale. From
	 * another P the releases are sent to this thread, which does them
	 * when it next runs its inbox (tu_pause). */
	TU_WAIT_FOR(tt_chan_len(k.jobs) == -EBADF, 10 * TT_SECOND);
	assert_kit_dead(&k);
}

static void test_go_owns_what_it_is_handed(void **state)
{
	(void)state;
	run_owned(false);
}

static void test_goexit_releases_what_it_was_handed(void **state)
{
	(void)state;
	run_owned(true);
}

static void test_go_own_bad_handle_starts_nothing(void **state)
{
	(void)state;
	kit k;
	make_kit(&k);
	tt_chan *dead = tu_chan(sizeof(int), 1);
	TU_ASSERT_OK(tt_chan_release(dead));
	int64_t before = tt_num_goroutine();
	int64_t r = TT_GO(worker, &k, k.jobs, dead, k.mu);
	TU_ASSERT_ERR(r, -EBADF);
	TU_ASSERT_CONTAINS(tt_last_error(), "object 1");
	TU_ASSERT_EQ(tt_num_goroutine(), before);
	/* Nothing kept: one release each frees them. */
	TU_ASSERT_OK(tt_chan_release(k.jobs));
	TU_ASSERT_OK(tt_mutex_release(k.mu));
	TU_ASSERT_OK(tt_ctx_release(k.ctx));
	assert_kit_dead(&k);

	/* The attribute form, checked the same way. */
	tt_go_attr a = {.own = NULL, .own_n = 2};
	TU_ASSERT_ERR(tt_go_with(&a, worker, &k), -EINVAL);
}

static void wg_body(void *arg)
{
	kit *k = arg;
	/* The goroutines may run at once on two Ps. */
	__atomic_fetch_add(&k->sum, 1, __ATOMIC_RELAXED);
	if (k->exit_early)
		tt_goexit();
}

static void test_wg_go(void **state)
{
	(void)state;
	kit k;
	memset(&k, 0, sizeof k);
	TU_ASSERT_OK(tt_wg_make(&k.wg));
	for (int i = 0; i < 10; i++) {
		k.exit_early = i % 2;
		TU_ASSERT(tt_wg_go(k.wg, wg_body, &k) > 0);
	}
	TU_ASSERT_OK(tt_wg_wait(k.wg));
	TU_ASSERT_EQ(k.sum, 10);
	TU_ASSERT_EQ(tt_wg_count(k.wg), 0);
	TU_ASSERT_ERR(tt_wg_go(NULL, wg_body, &k), -EINVAL);
	TU_ASSERT_OK(tt_wg_release(k.wg));
	/* A stale wait group starts nothing. */
	TU_ASSERT_ERR(tt_wg_go(k.wg, wg_body, &k), -EBADF);
	TU_ASSERT_EQ(k.sum, 10);
}

/* TT_WG_GO: the objects are released before Done, so a Wait that returns
 * sees them gone. */
static void blocked_once(void *arg)
{
	kit *k = arg;
	int v;
	TU_ASSERT_OK(tt_recv(k->jobs, &v, NULL));
	k->sum += v;
}

static void test_wg_go_releases_before_done(void **state)
{
	(void)state;
	kit k;
	memset(&k, 0, sizeof k);
	TU_ASSERT_OK(tt_wg_make(&k.wg));
	k.jobs = tu_chan(sizeof(int), 1);
	TU_ASSERT(TT_WG_GO(k.wg, blocked_once, &k, k.jobs) > 0);
	int v = 5;
	TU_ASSERT_OK(tt_send(k.jobs, &v));
	TU_ASSERT_OK(tt_chan_release(k.jobs));
	TU_ASSERT_OK(tt_wg_wait(k.wg));
	TU_ASSERT_EQ(k.sum, 5);
	TU_ASSERT_EQ(tt_chan_len(k.jobs), -EBADF);
	TU_ASSERT_OK(tt_wg_release(k.wg));
}

/* A dump shows a handed-objects goroutine as it shows any other: its own
 * function last, nothing of the runtime's entry under it. */
static __attribute__((noinline)) void owned_parker(void *arg)
{
	kit *k = arg;
	int v;
	TU_ASSERT_ERR(tt_recv(k->jobs, &v, NULL), 0);
	__asm__ volatile("");
}

static void test_dump_of_owning_goroutine(void **state)
{
	(void)state;
	kit k;
	memset(&k, 0, sizeof k);
	k.jobs = tu_chan(sizeof(int), 0);
	TU_ASSERT(TT_GO(owned_parker, &k, k.jobs) > 0);
	static char buf[1 << 16];
	size_t n = tt_stack_dump(buf, sizeof buf, true);
	TU_ASSERT(n > 0 && n < sizeof buf);
	TU_ASSERT_CONTAINS(buf, "owned_parker(");
	TU_ASSERT_NOT_CONTAINS(buf, "tt__go_owned_entry");
	TU_ASSERT_CONTAINS(buf, "created by test_dump_of_owning_goroutine");
	int v = 1;
	TU_ASSERT_OK(tt_send(k.jobs, &v));
	TU_ASSERT_OK(tt_chan_release(k.jobs));
}

/* ---- any object by its handle ------------------------------------------ */

static void after_noop(void *arg)
{
	(void)arg;
}

static void test_obj_retain_release_any_kind(void **state)
{
	(void)state;
	tt_chan *c = tu_chan(0, 0);
	tt_timer *t;
	tt_ctx *x;
	tt_waitgroup *wg;
	tt_mutex *m;
	tt_rwmutex *rw;
	tt_once *o;
	tt_cond *cv;
	TU_ASSERT_OK(tt_timer_make(&t, TT_MINUTE));
	TU_ASSERT_OK(tt_ctx_with_timeout(&x, tt_ctx_background(), TT_MINUTE));
	TU_ASSERT_OK(tt_wg_make(&wg));
	TU_ASSERT_OK(tt_mutex_make(&m));
	TU_ASSERT_OK(tt_rwmutex_make(&rw));
	TU_ASSERT_OK(tt_once_make(&o));
	TU_ASSERT_OK(tt_cond_make(&cv, m));
	void *all[] = {c, t, x, wg, m, rw, o, cv};
	enum { N = sizeof all / sizeof all[0] };
	for (int i = 0; i < N; i++)
		TU_ASSERT_OK(tt_obj_retain(all[i]));
	for (int i = 0; i < N; i++)
		TU_ASSERT_OK(tt_obj_release(all[i])); /* one left each */
	TU_ASSERT_OK(tt_ctx_err(x));
	TU_ASSERT_OK(tt_wg_add(wg, 0));
	for (int i = N; i-- > 0;)
		TU_ASSERT_OK(tt_obj_release(all[i])); /* freed */
	for (int i = 0; i < N; i++) {
		TU_ASSERT_ERR(tt_obj_retain(all[i]), -EBADF);
		TU_ASSERT_CONTAINS(tt_last_error(), "not a live");
		TU_ASSERT_ERR(tt_obj_release(all[i]), -EBADF);
	}
	TU_ASSERT_ERR(tt_obj_retain(NULL), -EINVAL);
	TU_ASSERT_ERR(tt_obj_release(NULL), -EINVAL);
	/* A context AfterFunc's stop handle is a handle, not an object with
	 * references. */
	tt_ctx *cc;
	TU_ASSERT_OK(tt_ctx_with_cancel(&cc, tt_ctx_background()));
	tt_ctx_after *stop = NULL;
	TU_ASSERT_OK(tt_ctx_after_func(cc, after_noop, NULL, &stop));
	TU_ASSERT_ERR(tt_obj_retain(stop), -EINVAL);
	TU_ASSERT_CONTAINS(tt_last_error(), "stop handle");
	TU_ASSERT_ERR(tt_obj_release(stop), -EINVAL);
	TU_ASSERT(tt_ctx_after_stop(stop));
	TU_ASSERT_OK(tt_ctx_cancel(cc));
	TU_ASSERT_OK(tt_ctx_release(cc));
	/* The background context is an object too, never freed. */
	TU_ASSERT_OK(tt_obj_retain(tt_ctx_background()));
	TU_ASSERT_OK(tt_obj_release(tt_ctx_background()));
	TU_ASSERT_OK(tt_ctx_err(tt_ctx_background()));
}

/* ---- defer --------------------------------------------------------------- */

#if TT_HAVE_DEFER
static int locked_step(tt_mutex *m, tt_waitgroup *wg, tt_ctx **ctx_out,
		       tt_chan **chan_out, int fail_at)
{
	TT_DEFER_WG_DONE(wg);
	tt_ctx *ctx;
	if (tt_ctx_with_cancel(&ctx, tt_ctx_background()) != 0)
		return -1;
	TT_DEFER_CANCEL(ctx);
	*ctx_out = ctx;
	tt_chan *c;
	if (tt_chan_make(&c, 0, 0) != 0)
		return -1;
	TT_DEFER_RELEASE(c);
	*chan_out = c;
	if (tt_mutex_lock(m) != 0)
		return -1;
	TT_DEFER_UNLOCK(m);
	if (fail_at == 1)
		return -1; /* every deferred call runs */
	for (int i = 0; i < 3; i++) {
		TT_DEFER_RELEASE(NULL); /* nothing to do, every turn */
		if (i == fail_at)
			break;
	}
	return 0;
}

static void test_defer_runs_on_every_exit(void **state)
{
	(void)state;
	tt_mutex *m;
	tt_waitgroup *wg;
	TU_ASSERT_OK(tt_mutex_make(&m));
	TU_ASSERT_OK(tt_wg_make(&wg));
	for (int fail_at = 0; fail_at < 3; fail_at++) {
		TU_ASSERT_OK(tt_wg_add(wg, 1));
		tt_ctx *ctx = NULL;
		tt_chan *c = NULL;
		int r = locked_step(m, wg, &ctx, &c, fail_at);
		TU_ASSERT_EQ(r, fail_at == 1 ? -1 : 0);
		TU_ASSERT_EQ(tt_wg_count(wg), 0);     /* done */
		TU_ASSERT_OK(tt_mutex_trylock(m));    /* unlocked */
		TU_ASSERT_OK(tt_mutex_unlock(m));
		TU_ASSERT_ERR(tt_ctx_err(ctx), -EBADF); /* cancelled, freed */
		TU_ASSERT_EQ(tt_chan_len(c), -EBADF);   /* released */
	}
	tt_rwmutex *rw;
	TU_ASSERT_OK(tt_rwmutex_make(&rw));
	{
		TU_ASSERT_OK(tt_rwmutex_rlock(rw));
		TT_DEFER_RUNLOCK(rw);
		TU_ASSERT_ERR(tt_rwmutex_lock_until(rw, TT_TRY), -EAGAIN);
	}
	{
		TU_ASSERT_OK(tt_rwmutex_lock(rw));
		TT_DEFER_RWUNLOCK(rw);
		TU_ASSERT_ERR(tt_rwmutex_rlock_until(rw, TT_TRY), -EAGAIN);
	}
	TU_ASSERT_OK(tt_rwmutex_lock_until(rw, TT_TRY));
	TU_ASSERT_OK(tt_rwmutex_unlock(rw));
	TU_ASSERT_OK(tt_rwmutex_release(rw));
	TU_ASSERT_OK(tt_mutex_release(m));
	TU_ASSERT_OK(tt_wg_release(wg));
}

/* Deferred calls run last in, first out, as Go's do: three mutexes
 * unlocked by TT_DEFER_UNLOCK, each with a goroutine waiting for it. An
 * unlock hands the lock to its waiter and readies it, so the waiters run
 * in the order of the unlocks. The waiters hold different mutexes, so
 * nothing but that order orders their appends: order and norder are
 * atomic. */
static tt_mutex *order_mu[3];
static int order[3], norder;

static void order_waiter(void *arg)
{
	int i = (int)(intptr_t)arg;
	TU_ASSERT_OK(tt_mutex_lock(order_mu[i]));
	int n = __atomic_fetch_add(&norder, 1, __ATOMIC_ACQ_REL);
	__atomic_store_n(&order[n], i, __ATOMIC_RELEASE);
	TU_ASSERT_OK(tt_mutex_unlock(order_mu[i]));
}

static int order_at(int k)
{
	return __atomic_load_n(&order[k], __ATOMIC_ACQUIRE);
}

static int norder_now(void)
{
	return __atomic_load_n(&norder, __ATOMIC_ACQUIRE);
}

static void test_defer_order(void **state)
{
	(void)state;
	/* Child-first tt_go and the run-queue order of the readied
	 * waiters are one scheduler's promises. */
	tu_one_p();
	norder = 0;
	for (int i = 0; i < 3; i++) {
		TU_ASSERT_OK(tt_mutex_make(&order_mu[i]));
		TU_ASSERT_OK(tt_mutex_lock(order_mu[i]));
		tu_go(order_waiter, (void *)(intptr_t)i); /* parks */
	}
	{
		TT_DEFER_UNLOCK(order_mu[0]);
		TT_DEFER_UNLOCK(order_mu[1]);
		TT_DEFER_UNLOCK(order_mu[2]);
	} /* unlocks 2, 1, 0 */
	for (int i = 0; i < 10 && norder_now() < 3; i++)
		tt_yield();
	TU_ASSERT_EQ(norder_now(), 3);
	TU_ASSERT_EQ(order_at(0), 2);
	TU_ASSERT_EQ(order_at(1), 1);
	TU_ASSERT_EQ(order_at(2), 0);
	for (int i = 0; i < 3; i++)
		TU_ASSERT_OK(tt_mutex_release(order_mu[i]));
}
#endif

/* ---- select default, shorthands ------------------------------------------ */

static void test_select_default(void **state)
{
	(void)state;
	tt_chan *a = tu_chan(sizeof(int), 1), *done = tu_chan(0, 1);
	int v = 0;
	tt_case cs[] = {
		TT_CASE_RECV_INTO(a, &v, NULL),
		TT_CASE_SEND_EMPTY(done),
	};
	int r = tt_select_default(cs, 1); /* nothing to receive */
	TU_ASSERT_EQ(r, TT_DEFAULT);
	TU_ASSERT(r >= 0);
	TU_ASSERT_EQ(tt_select_default(cs, 2), 1); /* room in done */
	TU_ASSERT_EQ(tt_select_default(cs + 1, 1), TT_DEFAULT); /* full */
	int w = 9;
	TU_ASSERT_OK(tt_send_until(a, &w, TT_TRY));
	TU_ASSERT_EQ(tt_select_default(cs, 1), 0);
	TU_ASSERT_EQ(v, 9);
	/* Errors stay errors. */
	tt_case bad = {TT_CASE_RECV, a, &v, 2, NULL};
	TU_ASSERT_ERR(tt_select_default(&bad, 1), -EINVAL);
	TU_ASSERT_OK(tt_chan_release(a));
	TU_ASSERT_OK(tt_chan_release(done));
}

static void test_sizeof_shorthands(void **state)
{
	(void)state;
	tt_chan *c = tu_chan(sizeof(int64_t), 1), *e = tu_chan(0, 1);
	tt_ctx *ctx;
	TU_ASSERT_OK(tt_ctx_with_cancel(&ctx, tt_ctx_background()));
	int64_t v = 7, got = 0;
	bool ok = false;
	TU_ASSERT_OK(tt_send_until(c, &v, tt_deadline_in(TT_SECOND)));
	TU_ASSERT_OK(tt_recv_until(c, &got, &ok, TT_TRY));
	TU_ASSERT_EQ(got, 7);
	TU_ASSERT(ok);
	TU_ASSERT_OK(tt_send_ctx(ctx, c, &v));
	TU_ASSERT_OK(tt_recv_ctx(ctx, c, &got, &ok));
	TU_ASSERT_OK(tt_send_empty(e));
	TU_ASSERT_OK(tt_recv_discard(e, &ok));
	TU_ASSERT_OK(tt_ctx_cancel(ctx));
	TU_ASSERT_ERR(tt_recv_ctx(ctx, c, &got, &ok), -ECANCELED);
	TU_ASSERT_OK(tt_ctx_release(ctx));
	TU_ASSERT_OK(tt_chan_release(c));
	TU_ASSERT_OK(tt_chan_release(e));
}

/* ---- strict mode ------------------------------------------------------------- */

static void child_strict_size(void)
{
	tt_set_strict(true);
	tt_chan *c = NULL;
	if (tt_chan_make(&c, sizeof(int64_t), 1) != 0)
		return;
	int32_t small = 0;
	fprintf(stderr, "tu-line=%d\n", __LINE__ + 1);
	int r = tt_recv_until(c, &small, NULL, TT_TRY); /* 4 bytes, not 8 */
	fprintf(stderr, "tu-survived r=%d\n", r);
}

static void child_strict_stale(void)
{
	/* From TETHER_STRICT=1 in the environment (set by the parent). */
	tt_mutex *m = NULL;
	if (tt_mutex_make(&m) != 0 || tt_mutex_release(m) != 0)
		return;
	int r = tt_mutex_lock(m);
	fprintf(stderr, "tu-survived r=%d\n", r);
}

static void test_strict_size_mismatch_panics(void **state)
{
	(void)state;
	tu_child c;
	assert_int_equal(tu_spawn_self("strict_size", 60 * TT_SECOND, &c), 0);
	assert_false(c.timed_out);
	TU_ASSERT_NOT_CONTAINS(c.err, "tu-survived");
	TU_ASSERT_CHILD_SIGNAL(&c, SIGABRT);
	TU_ASSERT_CONTAINS(c.err, "tether: panic: tt_chan_recv: element size "
				  "4 does not match the channel's 8\n");
	TU_ASSERT_CONTAINS(c.err, "goroutine 1 [running]:");
	TU_ASSERT_CONTAINS(c.err, "child_strict_size(");
	char want[64];
	snprintf(want, sizeof want, "test_brevity.c:%lld",
		 tu_child_marker(&c, "tu-line"));
	TU_ASSERT_CONTAINS(c.err, want);
	tu_child_free(&c);
}

static void test_strict_from_environment(void **state)
{
	(void)state;
	setenv("TETHER_STRICT", "1", 1);
	tu_child c;
	int r = tu_spawn_self("strict_stale", 60 * TT_SECOND, &c);
	unsetenv("TETHER_STRICT");
	assert_int_equal(r, 0);
	TU_ASSERT_NOT_CONTAINS(c.err, "tu-survived");
	TU_ASSERT_CHILD_SIGNAL(&c, SIGABRT);
	TU_ASSERT_CONTAINS(c.err, "tether: panic: tt_mutex_lock: 0x");
	TU_ASSERT_CONTAINS(c.err, "is not a live Mutex");
	TU_ASSERT_CONTAINS(c.err, "child_strict_stale(");
	tu_child_free(&c);
	/* Off here: the same misuse is an error. */
	tt_mutex *m;
	TU_ASSERT_OK(tt_mutex_make(&m));
	TU_ASSERT_OK(tt_mutex_release(m));
	TU_ASSERT_ERR(tt_mutex_lock(m), -EBADF);
}

static const tu_child_case child_cases[] = {
	{"strict_size", child_strict_size},
	{"strict_stale", child_strict_stale},
};

int main(int argc, char **argv)
{
	tu_child_dispatch(argc, argv, child_cases,
			  sizeof child_cases / sizeof child_cases[0]);
	const struct CMUnitTest tests[] = {
		TU_TEST(test_go_owns_what_it_is_handed),
		TU_TEST(test_goexit_releases_what_it_was_handed),
		TU_TEST(test_go_own_bad_handle_starts_nothing),
		TU_TEST(test_wg_go),
		TU_TEST(test_wg_go_releases_before_done),
		TU_TEST(test_dump_of_owning_goroutine),
		TU_TEST(test_obj_retain_release_any_kind),
#if TT_HAVE_DEFER
		TU_TEST(test_defer_runs_on_every_exit),
		TU_TEST(test_defer_order),
#endif
		TU_TEST(test_select_default),
		TU_TEST(test_sizeof_shorthands),
		TU_TEST(test_strict_size_mismatch_panics),
		TU_TEST(test_strict_from_environment),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
