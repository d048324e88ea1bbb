/* ThreadSanitizer sees goroutines as Go's race detector does (make tsan;
 * in other builds every test here is skipped).
 *
 * Each case runs in a fresh copy of this binary. Two goroutines that touch
 * the same variable with nothing between them that Go's memory model
 * counts as synchronisation are reported, with the racing line: tether's
 * goroutines take turns on one thread, but a switch is not
 * synchronisation, so the race TSan reports is the one the program would
 * have on several threads. Every hand-off the memory model names is
 * clean: tt_go (the creator's writes before it), a send and the receive
 * it pairs with, a close and the receive that sees it, select, a mutex
 * unlock and the next lock, an RWMutex, a wait group's Done and the Wait
 * it ends, Once, a context's cancel and the receive from its done
 * channel, and a goroutine's end as tt_num_goroutine observes it; and
 * across threads: a pthread's selects on main's channels, an RWMutex and
 * a Once shared with it, and a race between goroutines of two threads. */
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "testutil.h"

#define CHILD_TIMEOUT (60 * TT_SECOND)

/* ---- races ----------------------------------------------------------- */

static int shared;
/* The racing write, and its line for the check. */
enum {
	RACE_WRITE_LINE = __LINE__ + 4
};
static void race_write(void)
{
	shared = 1;
}

static void race_writer(void *arg)
{
	tt_chan *c = arg;
	race_write();
	/* Parks: the main goroutine runs on and reads `shared` with
	 * nothing in between that orders the two. */
	int v;
	bool ok;
	TU_ASSERT_OK(tt_recv(c, &v, &ok));
}

static void child_race_after_go(void)
{
	tt_chan *c = tu_chan(sizeof(int), 0);
	tu_go(race_writer, c);
	int seen = shared; /* the race */
	int v = seen;
	TU_ASSERT_OK(tt_send(c, &v));
	TU_ASSERT_OK(tt_chan_release(c));
}

static void bump_and_yield(void *arg)
{
	(void)arg;
	for (int i = 0; i < 3; i++) {
		shared++; /* both goroutines, no lock */
		tt_yield();
	}
}

static void child_race_two_goroutines(void)
{
	tu_go(bump_and_yield, NULL);
	tu_go(bump_and_yield, NULL);
	while (tt_num_goroutine() > 1)
		tt_yield();
}

/* Goroutines of two threads (main's, and a pthread's own flow) each
 * write `shared`, then meet on a channel: the meeting orders what comes
 * after it, not the two writes. */
static void *write_then_send(void *arg)
{
	shared++;
	int v = 1;
	TU_UNCHECKED(tt_send((tt_chan *)arg, &v));
	return NULL;
}

static void child_race_across_threads(void)
{
	tt_chan *c = tu_chan(sizeof(int), 0);
	pthread_t th;
	TU_ASSERT_EQ(pthread_create(&th, NULL, write_then_send, c), 0);
	shared++; /* the race, with the pthread's */
	int v;
	bool ok;
	TU_ASSERT_OK(tt_recv(c, &v, &ok));
	TU_ASSERT_OK(tt_blocking(tu_join_thread, &th));
	TU_ASSERT_OK(tt_chan_release(c));
}

/* ---- hand-offs that synchronise ------------------------------------- */

static int data[16];

static void send_after_write(void *arg)
{
	tt_chan *c = arg;
	for (int i = 0; i < 16; i++) {
		data[i] = i * i;
		TU_ASSERT_OK(tt_send(c, &i));
	}
	TU_ASSERT_OK(tt_chan_close(c));
}

static void recv_and_read(tt_chan *c)
{
	int i;
	bool ok;
	int n = 0;
	while (tt_recv(c, &i, &ok) == 0 && ok) {
		TU_ASSERT_EQ(data[i], i * i);
		data[i] = -1; /* and the next write is the sender's again */
		n++;
	}
	TU_ASSERT_EQ(n, 16);
}

static void child_chan_unbuffered(void)
{
	tt_chan *c = tu_chan(sizeof(int), 0);
	data[0] = 7; /* before tt_go: the goroutine sees it */
	tu_go(send_after_write, c);
	recv_and_read(c);
	TU_ASSERT_OK(tt_chan_release(c));
}

static void child_chan_buffered(void)
{
	tt_chan *c = tu_chan(sizeof(int), 4);
	tu_go(send_after_write, c);
	recv_and_read(c);
	TU_ASSERT_OK(tt_chan_release(c));
}

static void write_then_close(void *arg)
{
	shared = 42;
	TU_ASSERT_OK(tt_chan_close(arg));
}

static void child_close(void)
{
	tt_chan *c = tu_chan(sizeof(int), 0);
	tu_go(write_then_close, c);
	int v;
	bool ok = true;
	TU_ASSERT_OK(tt_recv(c, &v, &ok));
	TU_ASSERT(!ok);
	TU_ASSERT_EQ(shared, 42);
	TU_ASSERT_OK(tt_chan_release(c));
}

typedef struct pair {
	tt_chan *a, *b;
} pair;

static void select_sender(void *arg)
{
	pair *p = arg;
	shared = 5;
	int v = 1;
	tt_case cs[2] = {TT_CASE_SEND_FROM(p->a, &v),
			 TT_CASE_SEND_FROM(p->b, &v)};
	TU_ASSERT(tt_select(cs, 2, TT_FOREVER) >= 0);
}

static void child_select(void)
{
	pair p = {tu_chan(sizeof(int), 0), tu_chan(sizeof(int), 0)};
	tu_go(select_sender, &p);
	int v = 0;
	bool ok;
	tt_case cs[2] = {TT_CASE_RECV_INTO(p.a, &v, &ok),
			 TT_CASE_RECV_INTO(p.b, &v, &ok)};
	TU_ASSERT(tt_select(cs, 2, TT_FOREVER) >= 0);
	TU_ASSERT_EQ(shared, 5);
	TU_ASSERT_OK(tt_chan_release(p.a));
	TU_ASSERT_OK(tt_chan_release(p.b));
}

typedef struct locked {
	tt_mutex *mu;
	tt_rwmutex *rw;
	tt_waitgroup *wg;
	long counter;
} locked;

static void lock_bump(void *arg)
{
	locked *l = arg;
	for (int i = 0; i < 50; i++) {
		TU_ASSERT_OK(tt_mutex_lock(l->mu));
		long v = l->counter;
		tt_yield(); /* the other goroutines run, and wait */
		l->counter = v + 1;
		TU_ASSERT_OK(tt_mutex_unlock(l->mu));
	}
	TU_ASSERT_OK(tt_wg_done(l->wg));
}

static void child_mutex_and_wg(void)
{
	locked l = {0};
	TU_ASSERT_OK(tt_mutex_make(&l.mu));
	TU_ASSERT_OK(tt_wg_make(&l.wg));
	TU_ASSERT_OK(tt_wg_add(l.wg, 4));
	for (int i = 0; i < 4; i++)
		tu_go(lock_bump, &l);
	TU_ASSERT_OK(tt_wg_wait(l.wg));
	TU_ASSERT_EQ(l.counter, 200); /* the Wait saw every Done */
	TU_ASSERT_OK(tt_mutex_release(l.mu));
	TU_ASSERT_OK(tt_wg_release(l.wg));
}

static void rw_reader(void *arg)
{
	locked *l = arg;
	for (int i = 0; i < 20; i++) {
		TU_ASSERT_OK(tt_rwmutex_rlock(l->rw));
		long v = l->counter;
		tt_yield();
		TU_ASSERT_EQ(l->counter, v); /* no writer inside */
		TU_ASSERT_OK(tt_rwmutex_runlock(l->rw));
	}
	TU_ASSERT_OK(tt_wg_done(l->wg));
}

static void rw_writer(void *arg)
{
	locked *l = arg;
	for (int i = 0; i < 20; i++) {
		TU_ASSERT_OK(tt_rwmutex_lock(l->rw));
		l->counter++;
		TU_ASSERT_OK(tt_rwmutex_unlock(l->rw));
		tt_yield();
	}
	TU_ASSERT_OK(tt_wg_done(l->wg));
}

static void child_rwmutex(void)
{
	locked l = {0};
	TU_ASSERT_OK(tt_rwmutex_make(&l.rw));
	TU_ASSERT_OK(tt_wg_make(&l.wg));
	TU_ASSERT_OK(tt_wg_add(l.wg, 4));
	tu_go(rw_reader, &l);
	tu_go(rw_writer, &l);
	tu_go(rw_reader, &l);
	tu_go(rw_writer, &l);
	TU_ASSERT_OK(tt_wg_wait(l.wg));
	TU_ASSERT_EQ(l.counter, 40);
	TU_ASSERT_OK(tt_rwmutex_release(l.rw));
	TU_ASSERT_OK(tt_wg_release(l.wg));
}

static tt_once *once;

static void once_init(void *arg)
{
	(void)arg;
	tt_yield(); /* a second caller arrives and waits */
	shared = 99;
}

static void once_user(void *arg)
{
	tt_waitgroup *wg = arg;
	TU_ASSERT_OK(tt_once_do(once, once_init, NULL));
	TU_ASSERT_EQ(shared, 99);
	TU_ASSERT_OK(tt_wg_done(wg));
}

static void child_once(void)
{
	tt_waitgroup *wg;
	TU_ASSERT_OK(tt_once_make(&once));
	TU_ASSERT_OK(tt_wg_make(&wg));
	TU_ASSERT_OK(tt_wg_add(wg, 3));
	for (int i = 0; i < 3; i++)
		tu_go(once_user, wg);
	TU_ASSERT_OK(tt_wg_wait(wg));
	TU_ASSERT_OK(tt_once_release(once));
	TU_ASSERT_OK(tt_wg_release(wg));
}

static void write_then_cancel(void *arg)
{
	tt_yield();
	shared = 13;
	TU_ASSERT_OK(tt_ctx_cancel(arg));
}

static void child_ctx_cancel(void)
{
	tt_ctx *ctx;
	TU_ASSERT_OK(tt_ctx_with_cancel(&ctx, tt_ctx_background()));
	tu_go(write_then_cancel, ctx);
	bool ok = true;
	TU_ASSERT_OK(tt_recv_discard(tt_ctx_done(ctx), &ok));
	TU_ASSERT(!ok);
	TU_ASSERT_EQ(shared, 13);
	TU_ASSERT_OK(tt_ctx_release(ctx));
}

static void write_and_end(void *arg)
{
	(void)arg;
	tt_yield();
	shared = 21;
}

static void child_goroutine_end(void)
{
	tu_go(write_and_end, NULL);
	while (tt_num_goroutine() > 1)
		tt_yield();
	TU_ASSERT_EQ(shared, 21);
}

/* Across threads: a pthread's selects on main's channels hand data over
 * both ways, and its RWMutex and Once work with main's. */
static int xdata[16];

typedef struct xpeer {
	tt_chan *to_main, *to_peer;
	tt_rwmutex *rw;
	tt_once *once;
} xpeer;

static void once_write(void *arg)
{
	(void)arg;
	shared = 99;
}

static void *peer_side(void *arg)
{
	xpeer *p = arg;
	for (int i = 0; i < 16; i++) {
		xdata[i] = i * i;
		tt_case k[1] = {TT_CASE_SEND_FROM(p->to_main, &i)};
		TU_UNCHECKED(tt_select(k, 1, TT_FOREVER));
	}
	/* Main writes xdata[0] and sends: this select's receive sees it. */
	int v = -1;
	tt_case r[2] = {TT_CASE_RECV_INTO(p->to_peer, &v, NULL),
			TT_CASE_RECV_DISCARD(p->to_main, NULL)};
	if (tt_select(r, 2, TT_FOREVER) == 0 && xdata[0] != 1234)
		fprintf(stderr, "peer: xdata[0] = %d\n", xdata[0]);
	TU_UNCHECKED(tt_rwmutex_lock(p->rw));
	xdata[1] = 77;
	TU_UNCHECKED(tt_rwmutex_unlock(p->rw));
	TU_UNCHECKED(tt_once_do(p->once, once_write, NULL));
	return NULL;
}

static void child_across_threads(void)
{
	xpeer p;
	p.to_main = tu_chan(sizeof(int), 0);
	p.to_peer = tu_chan(sizeof(int), 0);
	TU_ASSERT_OK(tt_rwmutex_make(&p.rw));
	TU_ASSERT_OK(tt_once_make(&p.once));
	pthread_t th;
	TU_ASSERT_EQ(pthread_create(&th, NULL, peer_side, &p), 0);
	for (int n = 0; n < 16; n++) {
		int i = -1;
		bool ok;
		tt_case k[2] = {TT_CASE_RECV_INTO(p.to_main, &i, &ok),
				TT_CASE_RECV_DISCARD(p.to_peer, NULL)};
		TU_ASSERT_EQ(tt_select(k, 2, TT_FOREVER), 0);
		TU_ASSERT_EQ(xdata[i], i * i);
		xdata[i] = -1;
	}
	xdata[0] = 1234;
	int v = 5;
	TU_ASSERT_OK(tt_send(p.to_peer, &v));
	TU_ASSERT_OK(tt_blocking(tu_join_thread, &th));
	TU_ASSERT_OK(tt_rwmutex_rlock(p.rw));
	TU_ASSERT_EQ(xdata[1], 77);
	TU_ASSERT_OK(tt_rwmutex_runlock(p.rw));
	TU_ASSERT_OK(tt_once_do(p.once, once_write, NULL));
	TU_ASSERT_EQ(shared, 99);
	TU_ASSERT_OK(tt_rwmutex_release(p.rw));
	TU_ASSERT_OK(tt_once_release(p.once));
	TU_ASSERT_OK(tt_chan_release(p.to_main));
	TU_ASSERT_OK(tt_chan_release(p.to_peer));
}

static const tu_child_case child_cases[] = {
	{"race_after_go", child_race_after_go},
	{"race_two_goroutines", child_race_two_goroutines},
	{"race_across_threads", child_race_across_threads},
	{"chan_unbuffered", child_chan_unbuffered},
	{"chan_buffered", child_chan_buffered},
	{"close", child_close},
	{"select", child_select},
	{"mutex_and_wg", child_mutex_and_wg},
	{"rwmutex", child_rwmutex},
	{"once", child_once},
	{"ctx_cancel", child_ctx_cancel},
	{"goroutine_end", child_goroutine_end},
	{"across_threads", child_across_threads},
};

/* ---- the checks ------------------------------------------------------ */

#define REQUIRE_TSAN()                                                  \
	do {                                                            \
		if (!TU_TSAN) {                                         \
			print_message("skipped: not a ThreadSanitizer " \
				      "build (make tsan)\n");           \
			skip();                                         \
		}                                                       \
	} while (0)

static void run(const char *name, tu_child *c)
{
	int r = tu_spawn_self(name, CHILD_TIMEOUT, c);
	if (r != 0)
		fail_msg("could not start child %s: %d", name, r);
	assert_false(c->timed_out);
	TU_ASSERT_NOT_CONTAINS(c->err, "no child case named");
}

static void test_race_after_go_reported(void **state)
{
	(void)state;
	REQUIRE_TSAN();
	tu_child c;
	run("race_after_go", &c);
	TU_ASSERT_CONTAINS(c.err, "WARNING: ThreadSanitizer: data race");
	/* Both sides: the write by function and line, the read. */
	char want[64];
	snprintf(want, sizeof want, "tests/test_tsan.c:%d:", RACE_WRITE_LINE);
	TU_ASSERT_CONTAINS(c.err, want);
	TU_ASSERT_CONTAINS(c.err, "race_write");
	TU_ASSERT_CONTAINS(c.err, "child_race_after_go");
	TU_ASSERT_CHILD_EXIT(&c, 66); /* TSan's exit code after a report */
	tu_child_free(&c);
}

static void test_race_between_goroutines_reported(void **state)
{
	(void)state;
	REQUIRE_TSAN();
	tu_child c;
	run("race_two_goroutines", &c);
	TU_ASSERT_CONTAINS(c.err, "WARNING: ThreadSanitizer: data race");
	TU_ASSERT_CONTAINS(c.err, "bump_and_yield");
	TU_ASSERT_CHILD_EXIT(&c, 66);
	tu_child_free(&c);
}

static void test_race_across_threads_reported(void **state)
{
	(void)state;
	REQUIRE_TSAN();
	tu_child c;
	run("race_across_threads", &c);
	TU_ASSERT_CONTAINS(c.err, "WARNING: ThreadSanitizer: data race");
	TU_ASSERT_CONTAINS(c.err, "write_then_send");
	TU_ASSERT_CONTAINS(c.err, "child_race_across_threads");
	TU_ASSERT_CHILD_EXIT(&c, 66);
	tu_child_free(&c);
}

static void test_hand_offs_clean(void **state)
{
	(void)state;
	REQUIRE_TSAN();
	for (size_t i = 3; i < sizeof child_cases / sizeof child_cases[0];
	     i++) {
		tu_child c;
		run(child_cases[i].name, &c);
		if (tu_contains(c.err, "ThreadSanitizer"))
			fail_msg("case %s: a report for a correct program:\n%s",
				 child_cases[i].name, c.err);
		TU_ASSERT_CHILD_EXIT(&c, 0);
		tu_child_free(&c);
	}
}

int main(int argc, char **argv)
{
	tu_child_dispatch(argc, argv, child_cases,
			  sizeof child_cases / sizeof child_cases[0]);
	const struct CMUnitTest tests[] = {
		TU_TEST(test_race_after_go_reported),
		TU_TEST(test_race_between_goroutines_reported),
		TU_TEST(test_race_across_threads_reported),
		TU_TEST(test_hand_offs_clean),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
