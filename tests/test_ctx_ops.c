/* Channel operations, select and sleep that give up when a context is
 * done. */
#include <errno.h>

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

int main(void)
{
	const struct CMUnitTest tests[] = {
		TU_TEST(test_cancel_stops_blocked_calls),
		TU_TEST(test_ctx_deadline_and_success),
		TU_TEST(test_select_ctx),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
