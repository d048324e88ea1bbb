/* Channel operations, select and sleep that give up when a context is
 * done. */
#include <errno.h>
#include <unistd.h>

#include "testutil.h"

#define MS TT_MILLISECOND

typedef struct stop_arg {
	tt_ctx *ctx;
	tt_chan *c;
	int result;
	tt_chan *done;
} stop_arg;

static void blocked_sender(void *p)
{
	stop_arg *a = p;
	int v = 1;
	a->result = tt_chan_send_ctx(a->ctx, a->c, &v, sizeof v);
	tu_done(a->done);
}

static void blocked_receiver(void *p)
{
	stop_arg *a = p;
	int v;
	a->result = tt_chan_recv_ctx(a->ctx, a->c, &v, sizeof v, NULL);
	tu_done(a->done);
}

static void sleeper(void *p)
{
	stop_arg *a = p;
	a->result = tt_sleep_ctx(a->ctx, TT_MINUTE);
	tu_done(a->done);
}

/* The seed's second way to stop a goroutine from outside: cancel its
 * context. Each blocked goroutine returns -ECANCELED at once. */
static void test_cancel_stops_blocked_calls(void **state)
{
	(void)state;
	tt_ctx *ctx;
	TU_ASSERT_OK(tt_ctx_with_cancel(&ctx, tt_ctx_background()));
	/* A full channel to send on, an empty one to receive from. */
	tt_chan *full = tu_chan(sizeof(int), 1);
	tt_chan *empty = tu_chan(sizeof(int), 1);
	int v = 0;
	TU_ASSERT_OK(tt_chan_send_until(full, &v, sizeof v, TT_TRY));
	tt_chan *done = tu_chan(0, 3);
	stop_arg a[3] = {{ctx, full, 1, done},
			 {ctx, empty, 1, done},
			 {ctx, NULL, 1, done}};
	tt_func fns[3] = {blocked_sender, blocked_receiver, sleeper};
	for (int i = 0; i < 3; i++)
		tu_go(fns[i], &a[i]);
	assert_int_equal(tt_num_goroutine(), 4);
	TU_ASSERT_OK(tt_ctx_cancel(ctx));
	TU_WAIT_DONE(done, 3, 5 * TT_SECOND);
	for (int i = 0; i < 3; i++)
		TU_ASSERT_ERR(a[i].result, -ECANCELED);
	TU_ASSERT_OK(tt_ctx_release(ctx));
	TU_ASSERT_OK(tt_chan_release(full));
	TU_ASSERT_OK(tt_chan_release(empty));
	TU_ASSERT_OK(tt_chan_release(done));
}

static void test_ctx_deadline_and_success(void **state)
{
	(void)state;
	tt_ctx *ctx;
	TU_ASSERT_OK(tt_ctx_with_timeout(&ctx, tt_ctx_background(), 20 * MS));
	tt_chan *c = tu_chan(sizeof(int), 1);
	int v = 7, got = 0;
	bool ok = false;
	/* Ready operations go through while the context lives. */
	TU_ASSERT_OK(tt_chan_send_ctx(ctx, c, &v, sizeof v));
	TU_ASSERT_OK(tt_chan_recv_ctx(ctx, c, &got, sizeof got, &ok));
	assert_int_equal(got, 7);
	assert_true(ok);
	/* A blocked one ends at the context's deadline. */
	int64_t t0 = tt_now();
	TU_ASSERT_ERR(tt_chan_recv_ctx(ctx, c, &got, sizeof got, NULL),
		      -ETIMEDOUT);
	TU_ASSERT_RANGE(tt_now() - t0, 10 * MS, 20 * MS + TU_SLACK_NS);
	/* Once done, every call returns at once... unless the operation is
	 * ready too: then Go's select picks either. */
	TU_ASSERT_ERR(tt_sleep_ctx(ctx, TT_MINUTE), -ETIMEDOUT);
	TU_ASSERT_OK(tt_ctx_release(ctx));
	/* Background never ends a call; sleep returns 0 after sleeping. */
	t0 = tt_now();
	TU_ASSERT_OK(tt_sleep_ctx(tt_ctx_background(), 5 * MS));
	TU_ASSERT_GE(tt_now() - t0, 5 * MS);
	TU_ASSERT_OK(tt_sleep_ctx(tt_ctx_background(), 0));
	TU_ASSERT_OK(tt_chan_release(c));
}

static void test_select_ctx(void **state)
{
	(void)state;
	tt_ctx *ctx;
	TU_ASSERT_OK(tt_ctx_with_cancel(&ctx, tt_ctx_background()));
	enum { N = 10 }; /* more cases than fit the stack array */
	tt_chan *cs[N];
	int vals[N];
	tt_case cases[N];
	for (int i = 0; i < N; i++) {
		cs[i] = tu_chan(sizeof(int), 1);
		cases[i] = (tt_case)TT_CASE_RECV_INTO(cs[i], &vals[i], NULL);
	}
	int v = 42;
	TU_ASSERT_OK(tt_chan_send_until(cs[N - 1], &v, sizeof v, TT_TRY));
	assert_int_equal(tt_select_ctx(ctx, cases, N), N - 1);
	assert_int_equal(vals[N - 1], 42);
	TU_ASSERT_OK(tt_ctx_cancel(ctx));
	TU_ASSERT_ERR(tt_select_ctx(ctx, cases, N), -ECANCELED);
	TU_ASSERT_ERR(tt_select_ctx(ctx, NULL, 0), -ECANCELED);
	TU_ASSERT_ERR(tt_select_ctx(NULL, cases, N), -EINVAL);
	TU_ASSERT_ERR(tt_chan_recv_ctx(NULL, cs[0], &v, sizeof v, NULL),
		      -EINVAL);
	for (int i = 0; i < N; i++)
		TU_ASSERT_OK(tt_chan_release(cs[i]));
	TU_ASSERT_OK(tt_ctx_release(ctx));
}

/* ---- sync and descriptor waits ---------------------------------------- */

typedef struct sync_arg {
	tt_ctx *ctx;
	tt_waitgroup *wg;
	tt_mutex *m;
	tt_rwmutex *rw;
	tt_cond *cond;
	int fd;
	int which;
	long result;
	tt_chan *done;
} sync_arg;

enum { W_WG, W_MUTEX, W_RLOCK, W_WLOCK, W_COND, W_FDWAIT, W_READ, W_N };

static void sync_waiter(void *p)
{
	sync_arg *a = p;
	char buf[8];
	switch (a->which) {
	case W_WG: a->result = tt_wg_wait_ctx(a->ctx, a->wg); break;
	case W_MUTEX: a->result = tt_mutex_lock_ctx(a->ctx, a->m); break;
	case W_RLOCK: a->result = tt_rwmutex_rlock_ctx(a->ctx, a->rw); break;
	case W_WLOCK: a->result = tt_rwmutex_lock_ctx(a->ctx, a->rw); break;
	case W_COND:
		TU_ASSERT_OK(tt_mutex_lock(a->m));
		a->result = tt_cond_wait_ctx(a->ctx, a->cond);
		/* The lock is held again whatever the wait returned. */
		TU_ASSERT_ERR(tt_mutex_trylock(a->m), -EAGAIN);
		TU_ASSERT_OK(tt_mutex_unlock(a->m));
		break;
	case W_FDWAIT:
		a->result = tt_fd_wait_ctx(a->ctx, a->fd, TT_FD_READ);
		break;
	case W_READ:
		a->result = tt_read_ctx(a->ctx, a->fd, buf, sizeof buf);
		break;
	}
	tu_done(a->done);
}

/* Every kind of wait, blocked for good, ends with the context's error
 * when it is cancelled — and the objects waited on are left usable. */
static void test_cancel_stops_sync_and_fd_waits(void **state)
{
	(void)state;
	tt_ctx *ctx;
	TU_ASSERT_OK(tt_ctx_with_cancel(&ctx, tt_ctx_background()));
	tt_waitgroup *wg;
	tt_mutex *m, *cm;
	tt_rwmutex *rw;
	tt_cond *cond;
	TU_ASSERT_OK(tt_wg_make(&wg));
	TU_ASSERT_OK(tt_mutex_make(&m));
	TU_ASSERT_OK(tt_mutex_make(&cm));
	TU_ASSERT_OK(tt_rwmutex_make(&rw));
	TU_ASSERT_OK(tt_cond_make(&cond, cm));
	TU_ASSERT_OK(tt_wg_add(wg, 1));
	TU_ASSERT_OK(tt_mutex_lock(m));
	TU_ASSERT_OK(tt_rwmutex_lock(rw));
	int p1[2], p2[2];
	TU_ASSERT_OK(pipe(p1));
	TU_ASSERT_OK(pipe(p2));
	TU_ASSERT_OK(tt_fd_nonblock(p1[0]));
	TU_ASSERT_OK(tt_fd_nonblock(p2[0]));
	tt_chan *done = tu_chan(0, W_N + 1);
	sync_arg a[W_N + 1];
	for (int i = 0; i <= W_N; i++) {
		a[i] = (sync_arg){ctx, wg, m, rw, cond, -1, i, 1, done};
		if (i == W_N) /* a second write-lock waiter */
			a[i].which = W_WLOCK;
	}
	a[W_COND].m = cm;
	a[W_FDWAIT].fd = p1[0];
	a[W_READ].fd = p2[0];
	for (int i = 0; i <= W_N; i++)
		tu_go(sync_waiter, &a[i]);
	tt_yield();
	TU_ASSERT_EQ(tt_num_goroutine(), W_N + 2);
	/* Another goroutine may drop the caller's reference meanwhile: each
	 * wait holds its own. */
	TU_ASSERT_OK(tt_ctx_retain(ctx));
	TU_ASSERT_OK(tt_ctx_release(ctx));
	TU_ASSERT_OK(tt_ctx_cancel(ctx));
	TU_WAIT_DONE(done, W_N + 1, 5 * TT_SECOND);
	for (int i = 0; i <= W_N; i++)
		TU_ASSERT_MSG(a[i].result == -ECANCELED,
			      "wait kind %d returned %ld", a[i].which,
			      a[i].result);
	/* Nothing was taken: the objects work as before. */
	TU_ASSERT_OK(tt_wg_done(wg));
	TU_ASSERT_OK(tt_wg_wait_until(wg, TT_TRY));
	TU_ASSERT_OK(tt_mutex_unlock(m));
	TU_ASSERT_OK(tt_mutex_trylock(m));
	TU_ASSERT_OK(tt_mutex_unlock(m));
	TU_ASSERT_OK(tt_rwmutex_unlock(rw));
	TU_ASSERT_OK(tt_rwmutex_lock_until(rw, TT_TRY));
	TU_ASSERT_OK(tt_rwmutex_unlock(rw));
	/* Done already: no wait at all, even when it would succeed. */
	TU_ASSERT_ERR(tt_mutex_lock_ctx(ctx, m), -ECANCELED);
	TU_ASSERT_OK(tt_mutex_trylock(m));
	TU_ASSERT_OK(tt_mutex_unlock(m));
	TU_ASSERT_OK(tt_ctx_release(ctx));
	for (int i = 0; i < 2; i++) {
		tt_close(p1[i]);
		tt_close(p2[i]);
	}
	TU_ASSERT_OK(tt_cond_release(cond));
	TU_ASSERT_OK(tt_mutex_release(cm));
	TU_ASSERT_OK(tt_mutex_release(m));
	TU_ASSERT_OK(tt_rwmutex_release(rw));
	TU_ASSERT_OK(tt_wg_release(wg));
	TU_ASSERT_OK(tt_chan_release(done));
}

static void unlock_later(void *p)
{
	sync_arg *a = p;
	tt_sleep(2 * MS);
	TU_ASSERT_OK(tt_mutex_unlock(a->m));
	TU_ASSERT_OK(tt_wg_done(a->wg));
	char c = 'x';
	TU_ASSERT_EQ(write(a->fd, &c, 1), 1);
	tu_done(a->done);
}

/* Waits that succeed return what the plain call returns; a deadline of
 * the context ends them with -ETIMEDOUT; background never ends them. */
static void test_sync_ctx_success_and_deadline(void **state)
{
	(void)state;
	tt_waitgroup *wg;
	tt_mutex *m;
	TU_ASSERT_OK(tt_wg_make(&wg));
	TU_ASSERT_OK(tt_mutex_make(&m));
	int p[2];
	TU_ASSERT_OK(pipe(p));
	TU_ASSERT_OK(tt_fd_nonblock(p[0]));
	tt_ctx *ctx;
	TU_ASSERT_OK(tt_ctx_with_timeout(&ctx, tt_ctx_background(),
					 TT_MINUTE));
	TU_ASSERT_OK(tt_mutex_lock(m));
	TU_ASSERT_OK(tt_wg_add(wg, 1));
	tt_chan *done = tu_chan(0, 1);
	sync_arg a = {.m = m, .wg = wg, .fd = p[1], .done = done};
	tu_go(unlock_later, &a);
	TU_ASSERT_OK(tt_mutex_lock_ctx(ctx, m));
	TU_ASSERT_OK(tt_wg_wait_ctx(tt_ctx_background(), wg));
	char buf[4];
	TU_ASSERT_EQ(tt_read_ctx(ctx, p[0], buf, sizeof buf), 1);
	TU_WAIT_DONE(done, 1, 5 * TT_SECOND);
	TU_ASSERT_OK(tt_ctx_release(ctx));

	TU_ASSERT_OK(tt_ctx_with_timeout(&ctx, tt_ctx_background(), 10 * MS));
	int64_t t0 = tt_now();
	TU_ASSERT_ERR(tt_mutex_lock_ctx(ctx, m), -ETIMEDOUT);
	TU_ASSERT_ERR(tt_read_ctx(ctx, p[0], buf, sizeof buf), -ETIMEDOUT);
	TU_ASSERT_RANGE(tt_now() - t0, 5 * MS, 10 * MS + TU_SLACK_NS);
	TU_ASSERT_ERR(tt_mutex_lock_ctx(NULL, m), -EINVAL);
	TU_ASSERT_OK(tt_ctx_release(ctx));
	TU_ASSERT_OK(tt_mutex_unlock(m));
	tt_close(p[0]);
	tt_close(p[1]);
	TU_ASSERT_OK(tt_mutex_release(m));
	TU_ASSERT_OK(tt_wg_release(wg));
	TU_ASSERT_OK(tt_chan_release(done));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		TU_TEST(test_cancel_stops_blocked_calls),
		TU_TEST(test_ctx_deadline_and_success),
		TU_TEST(test_select_ctx),
		TU_TEST(test_cancel_stops_sync_and_fd_waits),
		TU_TEST(test_sync_ctx_success_and_deadline),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
