/* tether tests — the leak checker names the call the program made: a
 * goroutine parked in tt_chan_send has "tt_chan_send" as its top
 * function (not the _until function it is built on), so goleak-style
 * filters take the names a program's source uses. */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif

#include <stdio.h>
#include <string.h>

#include "testutil.h"

static tt_chan *ch, *ch2;
static tt_mutex *mu;
static tt_rwmutex *rw;
static tt_waitgroup *wg;
static tt_cond *cv;

static void in_send(void *arg)
{
	(void)arg;
	int v = 1;
	TU_UNCHECKED(tt_chan_send(ch, &v, sizeof v));
}

static void in_recv(void *arg)
{
	(void)arg;
	int v;
	TU_UNCHECKED(tt_chan_recv(ch2, &v, sizeof v, NULL));
}

static void in_lock(void *arg)
{
	(void)arg;
	TU_UNCHECKED(tt_mutex_lock(mu));
}

static void in_rlock(void *arg)
{
	(void)arg;
	TU_UNCHECKED(tt_rwmutex_rlock(rw));
}

static void in_wlock(void *arg)
{
	(void)arg;
	TU_UNCHECKED(tt_rwmutex_lock(rw));
}

static void in_wait(void *arg)
{
	(void)arg;
	TU_UNCHECKED(tt_wg_wait(wg));
}

static void in_cond(void *arg)
{
	(void)arg;
	tt_mutex *m;
	if (tt_mutex_make(&m) != 0 || tt_cond_make(&cv, m) != 0 ||
	    tt_mutex_lock(m) != 0)
		return;
	TU_UNCHECKED(tt_cond_wait(cv));
}

static void in_select(void *arg)
{
	(void)arg;
	tt_case k[2] = {TT_CASE_RECV_DISCARD(ch2, NULL),
			TT_CASE_RECV_DISCARD(NULL, NULL)};
	TU_UNCHECKED(tt_select(k, 2, TT_FOREVER));
}

static void in_recv_ctx(void *arg)
{
	(void)arg;
	int v;
	TU_UNCHECKED(tt_recv_ctx(tt_ctx_background(), ch2, &v, NULL));
}

static void in_lock_ctx(void *arg)
{
	(void)arg;
	TU_UNCHECKED(tt_mutex_lock_ctx(tt_ctx_background(), mu));
}

static void in_sleep(void *arg)
{
	(void)arg;
	TU_UNCHECKED(tt_sleep(TT_MINUTE));
}

typedef struct probe {
	tt_func fn;
	const char *top;
} probe;

/* The goroutine with this id in a fresh leak list, or NULL. */
static bool listed(tt_leak_opts *o, int64_t id, char *top, size_t n)
{
	tt_leak_list l;
	TU_ASSERT(tt_leak_find(o, &l) >= 0);
	bool found = false;
	for (size_t i = 0; i < l.n; i++)
		if (l.g[i].id == id) {
			found = true;
			snprintf(top, n, "%s", l.g[i].top);
		}
	tt_leak_list_free(&l);
	return found;
}

/* Start fn, check its top function, and filter it out by that name. */
static void check_top(const probe *p)
{
	int64_t id = tt_go(p->fn, NULL);
	TU_ASSERT(id > 0);
	tt_leak_opts *o;
	TU_ASSERT_OK(tt_leak_opts_make(&o));
	TU_ASSERT_OK(tt_leak_retry(o, 0, TT_MICROSECOND));
	char top[256] = "";
	/* With more than one P it may not have run yet, or be running on
	 * another: once parked, it is listed with p->top on top. */
	int64_t dl = tt_deadline_in(10 * TT_SECOND);
	while ((!listed(o, id, top, sizeof top) || strcmp(top, p->top) != 0) &&
	       tt_now() < dl)
		TU_UNCHECKED(tt_sleep(TT_MILLISECOND));
	if (!listed(o, id, top, sizeof top) || strcmp(top, p->top) != 0)
		fail_msg("goroutine parked in %s: top function \"%s\"",
			 p->top, top);
	TU_ASSERT_OK(tt_leak_ignore_top_function(o, p->top));
	TU_ASSERT(!listed(o, id, top, sizeof top));
	tt_leak_opts_free(o);
}

/* The goroutines stay parked until the process ends: no teardown. */
static void test_top_function_is_the_public_call(void **state)
{
	(void)state;
	TU_ASSERT_OK(tt_chan_make(&ch, sizeof(int), 0));
	TU_ASSERT_OK(tt_chan_make(&ch2, sizeof(int), 0));
	TU_ASSERT_OK(tt_mutex_make(&mu));
	TU_ASSERT_OK(tt_mutex_lock(mu));
	TU_ASSERT_OK(tt_rwmutex_make(&rw));
	TU_ASSERT_OK(tt_rwmutex_lock(rw));
	TU_ASSERT_OK(tt_wg_make(&wg));
	TU_ASSERT_OK(tt_wg_add(wg, 1));
	const probe ps[] = {
		{in_send, "tt_chan_send"},
		{in_recv, "tt_chan_recv"},
		{in_lock, "tt_mutex_lock"},
		{in_rlock, "tt_rwmutex_rlock"},
		{in_wlock, "tt_rwmutex_lock"},
		{in_wait, "tt_wg_wait"},
		{in_cond, "tt_cond_wait"},
		{in_sleep, "tt_sleep"},
		{in_select, "tt_select"},
		{in_recv_ctx, "tt_chan_recv_ctx"},
		{in_lock_ctx, "tt_mutex_lock_ctx"},
	};
	for (size_t i = 0; i < sizeof ps / sizeof ps[0]; i++)
		check_top(&ps[i]);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_top_function_is_the_public_call),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
