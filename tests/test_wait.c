/* The one wait primitive (src/sched/wait.c), through every kind of waiter
 * that parks on it: channel receive and send, a select of one case and of
 * two, a mutex, a wait group, a descriptor, a sleep. For each kind:
 *  - a deadline that passes takes the waiter out of its queue (a later
 *    peer finds nobody waiting, the object works on);
 *  - a waker that comes first disarms the deadline (the old deadline never
 *    wakes the goroutine from its next, unrelated wait);
 *  - a context's cancel ends a context-aware wait as its deadline would,
 *    with the waiter out of its queue. */
#include <errno.h>
#include <poll.h>
#include <stdbool.h>
#include <stdint.h>
#include <string.h>
#include <unistd.h>

#include "testutil.h"

enum kind { K_RECV, K_SEND, K_SELECT1, K_SELECT2, K_MUTEX, K_WG, K_FD, K_N };
static const char *const kind_name[K_N] = {
	"recv", "send", "select1", "select2", "mutex", "wait group", "fd"};

typedef struct objs {
	tt_chan *c, *c2;
	tt_mutex *m;
	tt_waitgroup *wg;
	int fds[2];
} objs;

static void objs_make(objs *o)
{
	o->c = tu_chan(sizeof(int), 0);
	o->c2 = tu_chan(sizeof(int), 0);
	TU_ASSERT_OK(tt_mutex_make(&o->m));
	TU_ASSERT_OK(tt_wg_make(&o->wg));
	TU_ASSERT_EQ(pipe(o->fds), 0);
}

static void objs_free(objs *o)
{
	TU_ASSERT_OK(tt_chan_release(o->c));
	TU_ASSERT_OK(tt_chan_release(o->c2));
	TU_ASSERT_OK(tt_mutex_release(o->m));
	TU_ASSERT_OK(tt_wg_release(o->wg));
	TU_ASSERT_OK(tt_close(o->fds[0]));
	TU_ASSERT_OK(tt_close(o->fds[1]));
}

/* Make the wait of kind k block: what only the peer can undo. */
static void arm(objs *o, enum kind k)
{
	if (k == K_MUTEX)
		TU_ASSERT_OK(tt_mutex_lock(o->m));
	if (k == K_WG)
		TU_ASSERT_OK(tt_wg_add(o->wg, 1));
}

/* The wait of kind k until deadline: 0 when a peer completed it. */
static int wait_kind(objs *o, enum kind k, int64_t deadline)
{
	int v = 7;
	switch (k) {
	case K_RECV:
		return tt_recv_until(o->c, &v, NULL, deadline);
	case K_SEND:
		return tt_send_until(o->c, &v, deadline);
	case K_SELECT1: {
		tt_case cs[] = {TT_CASE_RECV_INTO(o->c, &v, NULL)};
		return tt_select(cs, 1, deadline);
	}
	case K_SELECT2: {
		int w = 0;
		tt_case cs[] = {TT_CASE_RECV_INTO(o->c, &v, NULL),
				TT_CASE_RECV_INTO(o->c2, &w, NULL)};
		return tt_select(cs, 2, deadline);
	}
	case K_MUTEX: {
		int r = tt_mutex_lock_until(o->m, deadline);
		if (r == 0)
			TU_ASSERT_OK(tt_mutex_unlock(o->m));
		return r;
	}
	case K_WG:
		return tt_wg_wait_until(o->wg, deadline);
	case K_FD: {
		int r = tt_fd_wait(o->fds[0], TT_FD_READ, deadline);
		if (r > 0) {
			char b;
			TU_ASSERT_EQ(read(o->fds[0], &b, 1), 1);
			return 0;
		}
		return r;
	}
	default:
		TU_ASSERT_MSG(false, "kind %d", k);
		return -1;
	}
}

/* What the peer does to end the wait of kind k (or, after a timeout,
 * must find nobody waiting for). */
static void wake_kind(objs *o, enum kind k)
{
	int v = 1;
	switch (k) {
	case K_RECV:
	case K_SELECT1:
	case K_SELECT2:
		TU_ASSERT_OK(tt_send(o->c, &v));
		break;
	case K_SEND:
		TU_ASSERT_OK(tt_recv(o->c, &v, NULL));
		TU_ASSERT_EQ(v, 7);
		break;
	case K_MUTEX:
		TU_ASSERT_OK(tt_mutex_unlock(o->m));
		break;
	case K_WG:
		TU_ASSERT_OK(tt_wg_done(o->wg));
		break;
	case K_FD:
		TU_ASSERT_EQ(write(o->fds[1], "x", 1), 1);
		break;
	default:
		TU_ASSERT_MSG(false, "kind %d", k);
	}
}

/* After the wait of kind k timed out: no waiter of it is left. */
static void assert_nobody_waits(objs *o, enum kind k)
{
	int v = 1;
	switch (k) {
	case K_RECV:
	case K_SELECT1:
		TU_ASSERT_ERR(tt_send_until(o->c, &v, TT_TRY), -EAGAIN);
		break;
	case K_SELECT2:
		TU_ASSERT_ERR(tt_send_until(o->c, &v, TT_TRY), -EAGAIN);
		TU_ASSERT_ERR(tt_send_until(o->c2, &v, TT_TRY), -EAGAIN);
		break;
	case K_SEND:
		TU_ASSERT_ERR(tt_recv_until(o->c, &v, NULL, TT_TRY), -EAGAIN);
		break;
	case K_MUTEX:
		/* An unlock that handed the lock to a waiter left behind
		 * would leave it locked. */
		TU_ASSERT_OK(tt_mutex_unlock(o->m));
		TU_ASSERT_OK(tt_mutex_trylock(o->m));
		TU_ASSERT_OK(tt_mutex_unlock(o->m));
		break;
	case K_WG:
		TU_ASSERT_OK(tt_wg_done(o->wg));
		TU_ASSERT_EQ(tt_wg_count(o->wg), 0);
		break;
	case K_FD:
		/* A waiter left in the descriptor's slot makes a second
		 * wait -EBUSY. */
		TU_ASSERT_ERR(tt_fd_wait(o->fds[0], TT_FD_READ,
					 tt_deadline_in(TT_MILLISECOND)),
			      -ETIMEDOUT);
		break;
	default:
		TU_ASSERT_MSG(false, "kind %d", k);
	}
}

static void test_deadline_takes_waiter_out(void **state)
{
	(void)state;
	for (enum kind k = 0; k < K_N; k++) {
		objs o;
		objs_make(&o);
		arm(&o, k);
		int64_t t0 = tt_now();
		int r = wait_kind(&o, k, tt_deadline_in(5 * TT_MILLISECOND));
		TU_ASSERT_MSG(r == -ETIMEDOUT, "%s: %d", kind_name[k], r);
		TU_ASSERT_GE(tt_now() - t0, 5 * TT_MILLISECOND);
		assert_nobody_waits(&o, k);
		objs_free(&o);
	}
}

/* A goroutine that waits with a deadline, is woken well before it, then
 * waits without one on `later`: the first wait's deadline, had it stayed
 * armed, would end the second wait early and empty-handed. */
typedef struct waker_case {
	objs *o;
	enum kind k;
	tt_chan *later, *done;
	int64_t deadline;
} waker_case;

static void wait_then_later(void *arg)
{
	waker_case *w = arg;
	int r = wait_kind(w->o, w->k, w->deadline);
	TU_ASSERT_MSG(r >= 0, "%s: %d", kind_name[w->k], r);
	int v = 0;
	bool ok = false;
	TU_ASSERT_OK(tt_recv(w->later, &v, &ok));
	TU_ASSERT_MSG(ok && v == 42, "%s: the second wait got %d (ok %d)",
		      kind_name[w->k], v, ok);
	tu_done(w->done);
}

static void test_waker_disarms_deadline(void **state)
{
	(void)state;
	const int64_t dl = 20 * TT_MILLISECOND;
	for (enum kind k = 0; k < K_N; k++) {
		objs o;
		objs_make(&o);
		arm(&o, k);
		waker_case w = {.o = &o, .k = k, .later = tu_chan(sizeof(int), 0),
				.done = tu_chan(0, 1),
				.deadline = tt_deadline_in(dl)};
		tu_go(wait_then_later, &w);
		/* It runs first and parks; wake it at once. */
		wake_kind(&o, k);
		/* Past its old deadline, while it waits on `later`. */
		TU_ASSERT_OK(tt_sleep(3 * dl));
		int v = 42;
		TU_ASSERT_OK(tt_send(w.later, &v));
		TU_WAIT_DONE(w.done, 1, 5 * TT_SECOND);
		TU_ASSERT_OK(tt_chan_release(w.later));
		TU_ASSERT_OK(tt_chan_release(w.done));
		objs_free(&o);
	}
}

/* A context-aware wait that a cancel ends: the context's error, and no
 * waiter left behind. */
typedef struct ctx_case {
	objs *o;
	enum kind k;
	tt_ctx *ctx;
	tt_chan *done;
	int got;
} ctx_case;

static void ctx_wait(void *arg)
{
	ctx_case *x = arg;
	int v = 0;
	switch (x->k) {
	case K_RECV:
		x->got = tt_recv_ctx(x->ctx, x->o->c, &v, NULL);
		break;
	case K_SEND:
		x->got = tt_send_ctx(x->ctx, x->o->c, &v);
		break;
	case K_SELECT1: {
		tt_case cs[] = {TT_CASE_RECV_INTO(x->o->c, &v, NULL)};
		x->got = tt_select_ctx(x->ctx, cs, 1);
		break;
	}
	case K_SELECT2: {
		tt_case cs[] = {TT_CASE_RECV_INTO(x->o->c, &v, NULL),
				TT_CASE_RECV_INTO(x->o->c2, &v, NULL)};
		x->got = tt_select_ctx(x->ctx, cs, 2);
		break;
	}
	case K_MUTEX:
		x->got = tt_mutex_lock_ctx(x->ctx, x->o->m);
		break;
	case K_WG:
		x->got = tt_wg_wait_ctx(x->ctx, x->o->wg);
		break;
	case K_FD:
		x->got = tt_fd_wait_ctx(x->ctx, x->o->fds[0], TT_FD_READ);
		break;
	default:
		TU_ASSERT_MSG(false, "kind %d", x->k);
	}
	tu_done(x->done);
}

static void test_ctx_cancel_ends_wait(void **state)
{
	(void)state;
	for (enum kind k = 0; k < K_N; k++) {
		objs o;
		objs_make(&o);
		arm(&o, k);
		ctx_case x = {.o = &o, .k = k, .done = tu_chan(0, 1), .got = 1};
		/* A deadline far off, so that the wait is a timed one, and a
		 * cancel long before it. */
		TU_ASSERT_OK(tt_ctx_with_timeout(&x.ctx, tt_ctx_background(), 60 * TT_SECOND));
		tu_go(ctx_wait, &x);
		TU_ASSERT_OK(tt_sleep(TT_MILLISECOND));
		TU_ASSERT_EQ(x.got, 1); /* still parked */
		TU_ASSERT_OK(tt_ctx_cancel(x.ctx));
		TU_WAIT_DONE(x.done, 1, 5 * TT_SECOND);
		TU_ASSERT_MSG(x.got == -ECANCELED, "%s: %d", kind_name[k],
			      x.got);
		assert_nobody_waits(&o, k);
		TU_ASSERT_OK(tt_ctx_release(x.ctx));
		TU_ASSERT_OK(tt_chan_release(x.done));
		objs_free(&o);
	}
}

/* A sleep queues nothing: its deadline readies it, first in the run
 * queue; a context's cancel ends tt_sleep_ctx early. */
static void ctx_sleeper(void *arg)
{
	ctx_case *x = arg;
	x->got = tt_sleep_ctx(x->ctx, 60 * TT_SECOND);
	tu_done(x->done);
}

static void test_sleep(void **state)
{
	(void)state;
	int64_t t0 = tt_now();
	TU_ASSERT_OK(tt_sleep_until(tt_deadline_in(5 * TT_MILLISECOND)));
	TU_ASSERT_GE(tt_now() - t0, 5 * TT_MILLISECOND);
	ctx_case x = {.done = tu_chan(0, 1), .got = 1};
	TU_ASSERT_OK(tt_ctx_with_cancel(&x.ctx, tt_ctx_background()));
	tu_go(ctx_sleeper, &x);
	TU_ASSERT_OK(tt_sleep(TT_MILLISECOND));
	TU_ASSERT_EQ(x.got, 1);
	t0 = tt_now();
	TU_ASSERT_OK(tt_ctx_cancel(x.ctx));
	TU_WAIT_DONE(x.done, 1, 5 * TT_SECOND);
	TU_ASSERT_EQ(x.got, -ECANCELED);
	TU_ASSERT_LT(tt_now() - t0, 30 * TT_SECOND);
	TU_ASSERT_OK(tt_ctx_release(x.ctx));
	TU_ASSERT_OK(tt_chan_release(x.done));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		TU_TEST(test_deadline_takes_waiter_out),
		TU_TEST(test_waker_disarms_deadline),
		TU_TEST(test_ctx_cancel_ends_wait),
		TU_TEST(test_sleep),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
