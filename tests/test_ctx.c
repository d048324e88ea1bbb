/* tether tests — contexts (include/tether/ctx.h): cancellation trees,
 * deadlines, values, references and bad input. */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>

#include "testutil.h"

#include <tether/ctx.h>

#define MS TT_MILLISECOND

/* Is c's done channel closed right now? (a receive that must not wait) */
static bool done_closed(tt_ctx *c)
{
	tt_chan *d = tt_ctx_done(c);
	if (d == NULL)
		return false;
	bool ok = true;
	int r = tt_chan_recv_until(d, NULL, 0, &ok, TT_TRY);
	if (r == -EAGAIN)
		return false;
	TU_ASSERT_OK(r);
	TU_ASSERT(!ok);
	return true;
}

/* ---- background -------------------------------------------------------- */

static void test_ctx_background(void **state)
{
	(void)state;
	tt_ctx *bg = tt_ctx_background();
	assert_non_null(bg);
	assert_ptr_equal(bg, tt_ctx_background());
	assert_null(tt_ctx_done(bg));
	TU_ASSERT_OK(tt_ctx_err(bg));
	TU_ASSERT_EQ(tt_ctx_deadline(bg), TT_FOREVER);
	static int key;
	assert_null(tt_ctx_value(bg, &key));
	/* References are no-ops; it has no CancelFunc. */
	for (int i = 0; i < 5; i++)
		TU_ASSERT_OK(tt_ctx_release(bg));
	TU_ASSERT_OK(tt_ctx_retain(bg));
	TU_ASSERT_ERR(tt_ctx_cancel(bg), -EINVAL);
	TU_ASSERT_OK(tt_ctx_err(bg));

	/* A value child of background is never cancelled either. */
	tt_ctx *v;
	TU_ASSERT_OK(tt_ctx_with_value(&v, bg, &key, &key));
	assert_null(tt_ctx_done(v));
	TU_ASSERT_OK(tt_ctx_err(v));
	TU_ASSERT_ERR(tt_ctx_cancel(v), -EINVAL);
	TU_ASSERT_OK(tt_ctx_release(v));
}

/* ---- cancel ------------------------------------------------------------- */

static void test_ctx_cancel_closes_done(void **state)
{
	(void)state;
	tt_ctx *c;
	TU_ASSERT_OK(tt_ctx_with_cancel(&c, tt_ctx_background()));
	tt_chan *d = tt_ctx_done(c);
	assert_non_null(d);
	assert_ptr_equal(d, tt_ctx_done(c));
	TU_ASSERT_EQ(tt_chan_cap(d), 0);
	TU_ASSERT_OK(tt_ctx_err(c));
	TU_ASSERT_EQ(tt_ctx_deadline(c), TT_FOREVER);
	assert_false(done_closed(c));

	TU_ASSERT_OK(tt_ctx_cancel(c));
	TU_ASSERT_ERR(tt_ctx_err(c), -ECANCELED);
	assert_true(done_closed(c));
	/* Idempotent, and the error stays. */
	TU_ASSERT_OK(tt_ctx_cancel(c));
	TU_ASSERT_ERR(tt_ctx_err(c), -ECANCELED);
	assert_true(done_closed(c));
	TU_ASSERT_OK(tt_ctx_release(c));
}

typedef struct waiter_arg {
	tt_ctx *ctx;
	tt_chan *other; /* an unready channel in the same select, or NULL */
	tt_chan *done;  /* tu_done token */
	int64_t woke_at;
} waiter_arg;

static void wait_on_ctx(void *p)
{
	waiter_arg *a = p;
	bool ok = true;
	int v;
	tt_case cases[] = {
		TT_CASE_RECV_INTO(a->other, &v, NULL),
		TT_CASE_RECV_DISCARD(tt_ctx_done(a->ctx), &ok),
	};
	int r = tt_select(cases, 2, TT_FOREVER);
	TU_ASSERT_EQ(r, 1);
	TU_ASSERT(!ok);
	TU_ASSERT_NE(tt_ctx_err(a->ctx), 0);
	a->woke_at = tt_now();
	tu_done(a->done);
}

static void test_ctx_cancel_wakes_waiter(void **state)
{
	(void)state;
	tt_ctx *c;
	TU_ASSERT_OK(tt_ctx_with_cancel(&c, tt_ctx_background()));
	waiter_arg a = {.ctx = c, .other = NULL, .done = tu_chan(0, 0)};
	tu_go(wait_on_ctx, &a);
	tt_yield();
	TU_ASSERT_EQ(a.woke_at, 0);
	TU_ASSERT_OK(tt_ctx_cancel(c));
	TU_WAIT_DONE(a.done, 1, TU_SLACK_NS);
	TU_ASSERT_OK(tt_ctx_release(c));
	TU_ASSERT_OK(tt_chan_release(a.done));
}

static void test_ctx_cancel_reaches_descendants(void **state)
{
	(void)state;
	static int key;
	tt_ctx *root, *child, *val, *grand, *great, *sib;
	TU_ASSERT_OK(tt_ctx_with_cancel(&root, tt_ctx_background()));
	TU_ASSERT_OK(tt_ctx_with_cancel(&child, root));
	/* Through a value context, which has no cancel of its own. */
	TU_ASSERT_OK(tt_ctx_with_value(&val, child, &key, NULL));
	TU_ASSERT_OK(tt_ctx_with_cancel(&grand, val));
	TU_ASSERT_OK(tt_ctx_with_deadline(&great, grand,
					  tt_deadline_in(TT_MINUTE)));
	TU_ASSERT_OK(tt_ctx_with_cancel(&sib, root));

	assert_ptr_equal(tt_ctx_done(val), tt_ctx_done(child));
	tt_ctx *all[] = {root, child, val, grand, great, sib};
	for (size_t i = 0; i < 6; i++)
		TU_ASSERT_OK(tt_ctx_err(all[i]));

	TU_ASSERT_OK(tt_ctx_cancel(root));
	for (size_t i = 0; i < 6; i++) {
		TU_ASSERT_ERR(tt_ctx_err(all[i]), -ECANCELED);
		assert_true(done_closed(all[i]));
	}
	/* A child made from a cancelled parent is born cancelled. */
	tt_ctx *late;
	TU_ASSERT_OK(tt_ctx_with_cancel(&late, grand));
	TU_ASSERT_ERR(tt_ctx_err(late), -ECANCELED);
	assert_true(done_closed(late));
	TU_ASSERT_OK(tt_ctx_release(late));

	/* Release in an order that frees parents through their children. */
	for (size_t i = 0; i < 6; i++)
		TU_ASSERT_OK(tt_ctx_release(all[i]));
}

static void test_ctx_cancel_child_leaves_parent(void **state)
{
	(void)state;
	tt_ctx *parent, *a, *b, *a1;
	TU_ASSERT_OK(tt_ctx_with_cancel(&parent, tt_ctx_background()));
	TU_ASSERT_OK(tt_ctx_with_cancel(&a, parent));
	TU_ASSERT_OK(tt_ctx_with_cancel(&b, parent));
	TU_ASSERT_OK(tt_ctx_with_cancel(&a1, a));

	TU_ASSERT_OK(tt_ctx_cancel(a));
	TU_ASSERT_ERR(tt_ctx_err(a), -ECANCELED);
	TU_ASSERT_ERR(tt_ctx_err(a1), -ECANCELED);
	TU_ASSERT_OK(tt_ctx_err(parent));
	TU_ASSERT_OK(tt_ctx_err(b));
	assert_false(done_closed(parent));
	assert_false(done_closed(b));

	/* The parent still cancels its remaining child. */
	TU_ASSERT_OK(tt_ctx_cancel(parent));
	TU_ASSERT_ERR(tt_ctx_err(b), -ECANCELED);
	TU_ASSERT_OK(tt_ctx_release(a1));
	TU_ASSERT_OK(tt_ctx_release(a));
	TU_ASSERT_OK(tt_ctx_release(b));
	TU_ASSERT_OK(tt_ctx_release(parent));
}

static void test_ctx_deep_chain(void **state)
{
	(void)state;
	/* Long enough that a recursive cancel or free would be risky on a
	 * goroutine stack; done in the main goroutine and in a goroutine
	 * with the default stack. */
	enum { DEPTH = 20000 };
	tt_ctx **v = calloc(DEPTH, sizeof *v);
	assert_non_null(v);
	TU_ASSERT_OK(tt_ctx_with_cancel(&v[0], tt_ctx_background()));
	for (int i = 1; i < DEPTH; i++) {
		static int key;
		if (i % 3 == 0)
			TU_ASSERT_OK(tt_ctx_with_value(&v[i], v[i - 1], &key,
						       &v[i]));
		else
			TU_ASSERT_OK(tt_ctx_with_cancel(&v[i], v[i - 1]));
	}
	TU_ASSERT_OK(tt_ctx_cancel(v[0]));
	TU_ASSERT_ERR(tt_ctx_err(v[DEPTH - 1]), -ECANCELED);
	/* Release parents first: each is kept by its child, and the last
	 * release frees the whole chain. */
	for (int i = 0; i < DEPTH; i++)
		TU_ASSERT_OK(tt_ctx_release(v[i]));
	free(v);
}

/* ---- deadlines ------------------------------------------------------------ */

static void test_ctx_deadline_expires(void **state)
{
	(void)state;
	int64_t start = tt_now();
	int64_t dl = start + 50 * MS;
	tt_ctx *c, *kid;
	TU_ASSERT_OK(tt_ctx_with_deadline(&c, tt_ctx_background(), dl));
	TU_ASSERT_OK(tt_ctx_with_cancel(&kid, c));
	TU_ASSERT_EQ(tt_ctx_deadline(c), dl);
	TU_ASSERT_EQ(tt_ctx_deadline(kid), dl);
	TU_ASSERT_OK(tt_ctx_err(c));

	waiter_arg a = {.ctx = kid, .other = tu_chan(sizeof(int), 0),
			.done = tu_chan(0, 0)};
	tu_go(wait_on_ctx, &a);
	TU_WAIT_DONE(a.done, 1, 50 * MS + TU_SLACK_NS);
	TU_ASSERT_RANGE(a.woke_at, dl, dl + TU_SLACK_NS);
	TU_ASSERT_ERR(tt_ctx_err(c), -ETIMEDOUT);
	/* Expiry reaches the children with the same error. */
	TU_ASSERT_ERR(tt_ctx_err(kid), -ETIMEDOUT);
	assert_true(done_closed(c));
	/* A cancel after expiry changes nothing. */
	TU_ASSERT_OK(tt_ctx_cancel(c));
	TU_ASSERT_ERR(tt_ctx_err(c), -ETIMEDOUT);

	TU_ASSERT_OK(tt_ctx_release(kid));
	TU_ASSERT_OK(tt_ctx_release(c));
	TU_ASSERT_OK(tt_chan_release(a.other));
	TU_ASSERT_OK(tt_chan_release(a.done));
}

static void test_ctx_deadline_cancel_first(void **state)
{
	(void)state;
	/* Cancelled before the deadline: the error is -ECANCELED and the
	 * timer is stopped (it must not fire into a freed context: ASan). */
	tt_ctx *c;
	TU_ASSERT_OK(tt_ctx_with_deadline(&c, tt_ctx_background(),
					  tt_deadline_in(20 * MS)));
	TU_ASSERT_OK(tt_ctx_cancel(c));
	TU_ASSERT_ERR(tt_ctx_err(c), -ECANCELED);
	TU_ASSERT_OK(tt_ctx_release(c));
	/* Freed uncancelled with the timer armed: freeing stops it. */
	TU_ASSERT_OK(tt_ctx_with_deadline(&c, tt_ctx_background(),
					  tt_deadline_in(20 * MS)));
	TU_ASSERT_OK(tt_ctx_release(c));
	TU_ASSERT_OK(tt_sleep(60 * MS));
}

static void test_ctx_deadline_capped_by_parent(void **state)
{
	(void)state;
	int64_t now = tt_now();
	tt_ctx *p, *later, *sooner, *none;
	TU_ASSERT_OK(tt_ctx_with_deadline(&p, tt_ctx_background(),
					  now + 40 * MS));
	TU_ASSERT_OK(tt_ctx_with_deadline(&later, p, now + TT_MINUTE));
	TU_ASSERT_OK(tt_ctx_with_deadline(&sooner, p, now + 10 * MS));
	TU_ASSERT_OK(tt_ctx_with_deadline(&none, p, TT_FOREVER));
	TU_ASSERT_EQ(tt_ctx_deadline(later), now + 40 * MS);
	TU_ASSERT_EQ(tt_ctx_deadline(sooner), now + 10 * MS);
	TU_ASSERT_EQ(tt_ctx_deadline(none), now + 40 * MS);

	/* The sooner child expires alone. */
	tt_chan *d = tt_ctx_done(sooner);
	TU_ASSERT_OK(tt_chan_recv_until(d, NULL, 0, NULL,
					now + 10 * MS + TU_SLACK_NS));
	TU_ASSERT_ERR(tt_ctx_err(sooner), -ETIMEDOUT);
	TU_ASSERT_OK(tt_ctx_err(p));
	TU_ASSERT_OK(tt_ctx_err(later));

	/* The later one expires with its parent. */
	d = tt_ctx_done(later);
	TU_ASSERT_OK(tt_chan_recv_until(d, NULL, 0, NULL,
					now + 40 * MS + TU_SLACK_NS));
	TU_ASSERT_GE(tt_now(), now + 40 * MS);
	TU_ASSERT_ERR(tt_ctx_err(later), -ETIMEDOUT);
	TU_ASSERT_ERR(tt_ctx_err(p), -ETIMEDOUT);
	TU_ASSERT_ERR(tt_ctx_err(none), -ETIMEDOUT);

	tt_ctx *all[] = {p, later, sooner, none};
	for (size_t i = 0; i < 4; i++)
		TU_ASSERT_OK(tt_ctx_release(all[i]));
}

static void test_ctx_with_timeout(void **state)
{
	(void)state;
	int64_t before = tt_now();
	tt_ctx *c;
	TU_ASSERT_OK(tt_ctx_with_timeout(&c, tt_ctx_background(), 30 * MS));
	TU_ASSERT_RANGE(tt_ctx_deadline(c), before + 30 * MS,
			tt_now() + 30 * MS);
	TU_ASSERT_OK(tt_ctx_err(c));
	TU_ASSERT_OK(tt_chan_recv_until(tt_ctx_done(c), NULL, 0, NULL,
					tt_deadline_in(30 * MS + TU_SLACK_NS)));
	TU_ASSERT_RANGE(tt_now() - before, 30 * MS, 30 * MS + TU_SLACK_NS);
	TU_ASSERT_ERR(tt_ctx_err(c), -ETIMEDOUT);
	TU_ASSERT_OK(tt_ctx_release(c));

	/* Zero and negative timeouts: already expired, as in Go. */
	int64_t ns[] = {0, -1, -TT_SECOND};
	for (size_t i = 0; i < 3; i++) {
		TU_ASSERT_OK(tt_ctx_with_timeout(&c, tt_ctx_background(),
						 ns[i]));
		TU_ASSERT_ERR(tt_ctx_err(c), -ETIMEDOUT);
		assert_true(done_closed(c));
		TU_ASSERT_OK(tt_ctx_release(c));
	}
	/* So is a deadline in the past. */
	TU_ASSERT_OK(tt_ctx_with_deadline(&c, tt_ctx_background(), 1));
	TU_ASSERT_ERR(tt_ctx_err(c), -ETIMEDOUT);
	TU_ASSERT_OK(tt_ctx_release(c));
}

/* ---- values ------------------------------------------------------------------ */

static void test_ctx_values(void **state)
{
	(void)state;
	static int k1, k2, k3;
	int a = 1, b = 2, c = 3;
	tt_ctx *v1, *cc, *v2, *v3;
	TU_ASSERT_OK(tt_ctx_with_value(&v1, tt_ctx_background(), &k1, &a));
	TU_ASSERT_OK(tt_ctx_with_cancel(&cc, v1));
	TU_ASSERT_OK(tt_ctx_with_value(&v2, cc, &k2, &b));
	/* Shadows k1 below here. */
	TU_ASSERT_OK(tt_ctx_with_value(&v3, v2, &k1, &c));

	assert_ptr_equal(tt_ctx_value(v1, &k1), &a);
	assert_null(tt_ctx_value(v1, &k2));
	assert_ptr_equal(tt_ctx_value(cc, &k1), &a);
	assert_ptr_equal(tt_ctx_value(v2, &k1), &a);
	assert_ptr_equal(tt_ctx_value(v2, &k2), &b);
	assert_ptr_equal(tt_ctx_value(v3, &k1), &c);
	assert_ptr_equal(tt_ctx_value(v3, &k2), &b);
	assert_null(tt_ctx_value(v3, &k3));
	/* Keys are compared by pointer, not by what they point to. */
	static int k1_twin;
	assert_null(tt_ctx_value(v3, &k1_twin));

	/* Values survive cancellation; value contexts follow it. */
	TU_ASSERT_OK(tt_ctx_cancel(cc));
	TU_ASSERT_ERR(tt_ctx_err(v3), -ECANCELED);
	assert_ptr_equal(tt_ctx_value(v3, &k2), &b);
	TU_ASSERT_OK(tt_ctx_err(v1));

	tt_ctx *all[] = {v1, cc, v2, v3};
	for (size_t i = 0; i < 4; i++)
		TU_ASSERT_OK(tt_ctx_release(all[i]));
}

/* ---- many waiters --------------------------------------------------------------- */

static void test_ctx_many_waiters(void **state)
{
	(void)state;
	enum { N = 1000 };
	tt_ctx *parent, *c;
	TU_ASSERT_OK(tt_ctx_with_cancel(&parent, tt_ctx_background()));
	TU_ASSERT_OK(tt_ctx_with_cancel(&c, parent));
	tt_chan *other = tu_chan(sizeof(int), 0);
	tt_chan *done = tu_chan(0, N);
	waiter_arg *args = calloc(N, sizeof *args);
	assert_non_null(args);
	for (int i = 0; i < N; i++) {
		args[i] = (waiter_arg){.ctx = i % 2 ? c : parent,
				       .other = other, .done = done};
		tu_go(wait_on_ctx, &args[i]);
	}
	tt_yield();
	TU_ASSERT_EQ(tt_chan_len(done), 0);
	/* One cancel, of the parent: both levels' waiters all exit. */
	TU_ASSERT_OK(tt_ctx_cancel(parent));
	TU_WAIT_DONE(done, N, TU_SLACK_NS);
	for (int i = 0; i < N; i++)
		TU_ASSERT_NE(args[i].woke_at, 0);
	TU_ASSERT_OK(tt_ctx_release(c));
	TU_ASSERT_OK(tt_ctx_release(parent));
	TU_ASSERT_OK(tt_chan_release(other));
	TU_ASSERT_OK(tt_chan_release(done));
	free(args);
}

/* ---- references ------------------------------------------------------------------- */

static void test_ctx_release_without_cancel(void **state)
{
	(void)state;
	tt_ctx *parent, *a, *b;
	TU_ASSERT_OK(tt_ctx_with_cancel(&parent, tt_ctx_background()));
	TU_ASSERT_OK(tt_ctx_with_cancel(&a, parent));
	TU_ASSERT_OK(tt_ctx_with_timeout(&b, parent, TT_MINUTE));
	/* Dropped without cancel: unlinked from the parent and freed
	 * (ASan would see the parent's cancel touch freed memory
	 * otherwise, and LeakSanitizer an unfreed context). */
	TU_ASSERT_OK(tt_ctx_release(a));
	TU_ASSERT_OK(tt_ctx_release(b));
	TU_ASSERT_ERR(tt_ctx_err(a), -EBADF);
	TU_ASSERT_OK(tt_ctx_cancel(parent));
	TU_ASSERT_ERR(tt_ctx_err(parent), -ECANCELED);

	/* A retained context survives one release. */
	tt_ctx *c;
	TU_ASSERT_OK(tt_ctx_with_cancel(&c, parent));
	TU_ASSERT_OK(tt_ctx_retain(c));
	TU_ASSERT_OK(tt_ctx_release(c));
	TU_ASSERT_ERR(tt_ctx_err(c), -ECANCELED);
	/* The parent released first lives on through its child. */
	TU_ASSERT_OK(tt_ctx_release(parent));
	assert_null(tt_ctx_value(c, &c));
	TU_ASSERT_ERR(tt_ctx_err(c), -ECANCELED);
	TU_ASSERT_OK(tt_ctx_release(c));

	/* Released uncancelled while never cancelled anywhere; many times,
	 * so a leak shows in LeakSanitizer. */
	for (int i = 0; i < 1000; i++) {
		TU_ASSERT_OK(tt_ctx_with_cancel(&c, tt_ctx_background()));
		TU_ASSERT_OK(tt_ctx_release(c));
	}
}

/* ---- bad input -------------------------------------------------------------------- */

static void test_ctx_bad_input(void **state)
{
	(void)state;
	static int key;
	tt_ctx *bg = tt_ctx_background();
	tt_ctx *c = (tt_ctx *)&key; /* overwritten with NULL on failure */

	TU_ASSERT_ERR(tt_ctx_with_cancel(NULL, bg), -EINVAL);
	TU_ASSERT_ERR(tt_ctx_with_cancel(&c, NULL), -EINVAL);
	assert_null(c);
	TU_ASSERT_CONTAINS(tt_last_error(), "parent is NULL");
	TU_ASSERT_ERR(tt_ctx_with_deadline(NULL, bg, TT_FOREVER), -EINVAL);
	TU_ASSERT_ERR(tt_ctx_with_deadline(&c, NULL, TT_FOREVER), -EINVAL);
	TU_ASSERT_ERR(tt_ctx_with_deadline(&c, bg, -5), -EINVAL);
	assert_null(c);
	TU_ASSERT_ERR(tt_ctx_with_timeout(NULL, bg, MS), -EINVAL);
	TU_ASSERT_ERR(tt_ctx_with_timeout(&c, NULL, MS), -EINVAL);
	TU_ASSERT_ERR(tt_ctx_with_value(NULL, bg, &key, NULL), -EINVAL);
	TU_ASSERT_ERR(tt_ctx_with_value(&c, NULL, &key, NULL), -EINVAL);
	TU_ASSERT_ERR(tt_ctx_with_value(&c, bg, NULL, NULL), -EINVAL);
	assert_null(c);

	TU_ASSERT_ERR(tt_ctx_cancel(NULL), -EINVAL);
	TU_ASSERT_ERR(tt_ctx_err(NULL), -EINVAL);
	TU_ASSERT_ERR(tt_ctx_retain(NULL), -EINVAL);
	TU_ASSERT_ERR(tt_ctx_release(NULL), -EINVAL);
	assert_null(tt_ctx_done(NULL));
	assert_null(tt_ctx_value(NULL, &key));
	TU_ASSERT_EQ(tt_ctx_deadline(NULL), TT_FOREVER);

	/* A released context is told apart, under ASan too. */
	{
		tt_ctx *dead;
		TU_ASSERT_OK(tt_ctx_with_cancel(&dead, bg));
		TU_ASSERT_OK(tt_ctx_release(dead));
		TU_ASSERT_ERR(tt_ctx_err(dead), -EBADF);
		TU_ASSERT_CONTAINS(tt_last_error(), "not a live context");
		TU_ASSERT_ERR(tt_ctx_cancel(dead), -EBADF);
		TU_ASSERT_ERR(tt_ctx_release(dead), -EBADF);
		TU_ASSERT_ERR(tt_ctx_with_cancel(&c, dead), -EBADF);
		assert_null(c);
		assert_null(tt_ctx_done(dead));
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		TU_TEST(test_ctx_background),
		TU_TEST(test_ctx_cancel_closes_done),
		TU_TEST(test_ctx_cancel_wakes_waiter),
		TU_TEST(test_ctx_cancel_reaches_descendants),
		TU_TEST(test_ctx_cancel_child_leaves_parent),
		TU_TEST(test_ctx_deep_chain),
		TU_TEST(test_ctx_deadline_expires),
		TU_TEST(test_ctx_deadline_cancel_first),
		TU_TEST(test_ctx_deadline_capped_by_parent),
		TU_TEST(test_ctx_with_timeout),
		TU_TEST(test_ctx_values),
		TU_TEST(test_ctx_many_waiters),
		TU_TEST(test_ctx_release_without_cancel),
		TU_TEST(test_ctx_bad_input),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
