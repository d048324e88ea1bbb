/* tether tests — tt_blocking: blocking functions on the pool's threads
 * while the calling goroutine parks (tether/blocking.h). */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif

#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "profile/profile.h"
#include "testutil.h"

#include <tether/blocking.h>
#include <tether/threads.h>
#include <tether/time.h>

#define MS TT_MILLISECOND

/* ---- the thread's other goroutines and timers go on ---------------------- */

typedef struct nap {
	int64_t ms;
	pthread_t ran_on;
	tt_chan *done;
} nap;

static void nap_fn(void *p)
{
	nap *n = p;
	n->ran_on = pthread_self();
	usleep((useconds_t)(n->ms * 1000)); /* blocks the thread it runs on */
}

static void napper(void *p)
{
	nap *n = p;
	TU_ASSERT_OK(tt_blocking(nap_fn, n));
	tu_done(n->done);
}

/* Eight goroutines each block their call for 300 ms while a 10 ms ticker
 * ticks on the same thread: the calls overlap (well under the 2.4 s they
 * take in turn), the ticker keeps its period, and each call ran on a
 * thread other than the caller's. */
static void test_ticker_on_time(void **state)
{
	(void)state;
	enum { N = 8 };
	const int64_t nap_ms = 300;
	tt_chan *done = tu_chan(0, N);
	static nap naps[N];
	tt_ticker *tk;
	TU_ASSERT_OK(tt_ticker_make(&tk, 10 * MS));
	int64_t t0 = tt_now();
	for (int i = 0; i < N; i++) {
		naps[i] = (nap){.ms = nap_ms, .done = done};
		tu_go(napper, &naps[i]);
	}
	int64_t last = tt_now(), worst = 0;
	long ticks = 0, finished = 0;
	while (finished < N) {
		tt_case cs[] = {TT_CASE_RECV_DISCARD(tt_ticker_chan(tk), NULL),
				TT_CASE_RECV_DISCARD(done, NULL)};
		int r = tt_select(cs, 2, tt_deadline_in(10 * TT_SECOND));
		TU_ASSERT_MSG(r >= 0, "select: %s", tt_strerror(r));
		if (r == 0) {
			int64_t now = tt_now();
			if (now - last > worst)
				worst = now - last;
			last = now;
			ticks++;
		} else {
			finished++;
		}
	}
	int64_t took = tt_now() - t0;
	tt_ticker_stop(tk);
	TU_UNCHECKED(tt_ticker_release(tk));
	TU_UNCHECKED(tt_chan_release(done));
	for (int i = 0; i < N; i++)
		TU_ASSERT(!pthread_equal(naps[i].ran_on, pthread_self()));
	print_message("%d calls of %" PRId64 " ms: %.0f ms, %ld ticks, "
		      "worst gap %.1f ms\n",
		      N, nap_ms, (double)took / 1e6, ticks,
		      (double)worst / 1e6);
	TU_ASSERT_MSG(took < N * nap_ms * MS / 2 + TU_SLACK_NS,
		      "the calls did not overlap: %" PRId64 " ms", took / MS);
	TU_ASSERT_GE(took, nap_ms * MS);
	/* A stalled thread would show one gap of the whole 300 ms. */
	TU_ASSERT_MSG(worst < 100 * MS + TU_SLACK_NS,
		      "the ticker stalled for %" PRId64 " ms", worst / MS);
	TU_ASSERT_GE(ticks, (nap_ms / 10) / 3);
}

/* ---- results, errors ----------------------------------------------------- */

typedef struct sum {
	int a, b, out;
} sum;

static void sum_fn(void *p)
{
	sum *s = p;
	s->out = s->a + s->b;
}

static void test_result_and_bad_input(void **state)
{
	(void)state;
	tt_blocking_stats st0, st1;
	tt_blocking_stats_get(&st0);
	for (int i = 0; i < 100; i++) {
		sum s = {.a = i, .b = 1000};
		TU_ASSERT_OK(tt_blocking(sum_fn, &s));
		TU_ASSERT_EQ(s.out, i + 1000);
	}
	tt_blocking_stats_get(&st1);
	TU_ASSERT_EQ(st1.calls - st0.calls, 100);
	TU_ASSERT_GE(st1.threads, 1);
	TU_ASSERT_LE(st1.threads, st1.max_threads);
	TU_ASSERT_EQ(st1.busy, 0);
	TU_ASSERT_EQ(st1.queued, 0);

	TU_ASSERT_ERR(tt_blocking(NULL, NULL), -EINVAL);
	TU_ASSERT_CONTAINS(tt_last_error(), "tt_blocking: fn is NULL");
	tt_blocking_stats_get(NULL); /* does nothing */
}

static void shared_caller(void *p)
{
	tt_chan *done = p;
	sum local = {.a = 1, .b = 2};
	TU_ASSERT_ERR(tt_blocking(sum_fn, &local), -EINVAL);
	TU_ASSERT_CONTAINS(tt_last_error(), "shared stack");
	TU_ASSERT_EQ(local.out, 0);
	sum *heap = calloc(1, sizeof *heap);
	TU_ASSERT(heap != NULL);
	heap->a = 20;
	heap->b = 22;
	TU_ASSERT_OK(tt_blocking(sum_fn, heap));
	TU_ASSERT_EQ(heap->out, 42);
	free(heap);
	tu_done(done);
}

/* On a shared stack, an arg on that stack is refused (it moves while the
 * goroutine waits); heap memory works. */
static void test_shared_stack_arg(void **state)
{
	(void)state;
	tt_chan *done = tu_chan(0, 1);
	tt_go_attr a = {.shared_stack = true};
	tu_go_with(&a, shared_caller, done);
	TU_WAIT_DONE(done, 1, 10 * TT_SECOND);
	TU_UNCHECKED(tt_chan_release(done));
}

/* ---- what dumps show, and the leak check ---------------------------------- */

static int pipefd[2];

static void read_pipe(void *p)
{
	(void)p;
	char c;
	TU_ASSERT_EQ(read(pipefd[0], &c, 1), 1);
}

static __attribute__((noinline)) void resolver_call(tt_chan *done)
{
	TU_ASSERT_OK(tt_blocking(read_pipe, NULL));
	tu_done(done);
}

static void resolver(void *p)
{
	resolver_call(p);
}

static int to_buf(void *arg, const void *data, size_t len)
{
	tt__buf *b = arg;
	tt__buf_put(b, data, len);
	return 0;
}

/* A goroutine waiting in tt_blocking is "[syscall]" with tt_blocking and
 * its caller on its stack; the pool's threads are not leaks. */
static void test_dump_and_leak_check(void **state)
{
	(void)state;
	TU_ASSERT_EQ(pipe(pipefd), 0);
	tt_chan *done = tu_chan(0, 1);
	tu_go(resolver, done);
	tt_blocking_stats st;
	TU_WAIT_FOR((tt_blocking_stats_get(&st), st.busy == 1), 10 * TT_SECOND);
	tt__buf b = {0};
	TU_ASSERT_OK(tt_profile_write("goroutine", 2, to_buf, &b));
	tt__buf_put(&b, "", 1);
	TU_ASSERT_CONTAINS(b.data, " [syscall]:\ntt_blocking(");
	TU_ASSERT_CONTAINS(b.data, "resolver_call(");
	TU_ASSERT_CONTAINS(b.data, "test_blocking.c:");
	tt__buf_free(&b);

	/* The pool has a thread blocked in read(2): still not a leak.
	 * (An emulator's own threads, named after it, are left out.) */
	tt_threads_opts *o = NULL;
	TU_ASSERT_OK(tt_threads_opts_make(&o));
	if (tu_emulated())
		TU_ASSERT_OK(tt_threads_ignore_name(o, "qemu-aarch64"));
	TU_ASSERT_EQ(tt_threads_verify_none(o), 0);

	TU_ASSERT_EQ(write(pipefd[1], "x", 1), 1);
	TU_WAIT_DONE(done, 1, 10 * TT_SECOND);
	TU_UNCHECKED(tt_chan_release(done));
	close(pipefd[0]);
	close(pipefd[1]);
	TU_ASSERT_EQ(tt_threads_verify_none(o), 0);
	tt_threads_opts_free(o);
}

/* ---- the thread limit ----------------------------------------------------- */

typedef struct lim {
	tt_chan *done;
} lim;

static void short_nap(void *p)
{
	(void)p;
	usleep(30 * 1000);
}

static void lim_caller(void *p)
{
	lim *l = p;
	TU_ASSERT_OK(tt_blocking(short_nap, NULL));
	tu_done(l->done);
}

/* TETHER_BLOCKING_THREADS=2: six calls at once use two threads, the rest
 * wait their turn, all complete. */
static void child_limit(void)
{
	lim l = {.done = tu_chan(0, 6)};
	for (int i = 0; i < 6; i++)
		tu_go(lim_caller, &l);
	int most = 0, most_queued = 0;
	for (int got = 0; got < 6;) {
		tt_blocking_stats st;
		tt_blocking_stats_get(&st);
		TU_ASSERT_EQ(st.max_threads, 2);
		if (st.threads > most)
			most = st.threads;
		if (st.queued > most_queued)
			most_queued = st.queued;
		int r = tt_chan_recv_until(l.done, NULL, 0, NULL,
					   tt_deadline_in(5 * MS));
		if (r == 0)
			got++;
		else
			TU_ASSERT_ERR(r, -ETIMEDOUT);
	}
	TU_ASSERT_EQ(most, 2);
	TU_ASSERT_GE(most_queued, 1);
	fprintf(stderr, "limit ok: threads %d, queued up to %d\n", most,
		most_queued);
}

static void test_thread_limit(void **state)
{
	(void)state;
	TU_REQUIRE_THREADS();
	TU_ASSERT_EQ(setenv("TETHER_BLOCKING_THREADS", "2", 1), 0);
	tu_child c;
	int r = tu_spawn_self("limit", 30 * TT_SECOND, &c);
	unsetenv("TETHER_BLOCKING_THREADS");
	TU_ASSERT_OK(r);
	TU_ASSERT_CHILD_EXIT(&c, 0);
	TU_ASSERT_CONTAINS(c.err, "limit ok: threads 2");
	tu_child_free(&c);
}

static void child_bad_env(void)
{
	sum s = {.a = 2, .b = 3};
	TU_ASSERT_OK(tt_blocking(sum_fn, &s));
	TU_ASSERT_EQ(s.out, 5);
	tt_blocking_stats st;
	tt_blocking_stats_get(&st);
	fprintf(stderr, "max %d\n", st.max_threads);
}

/* A bad TETHER_BLOCKING_THREADS is reported and the default used. */
static void test_bad_env(void **state)
{
	(void)state;
	TU_REQUIRE_THREADS();
	TU_ASSERT_EQ(setenv("TETHER_BLOCKING_THREADS", "0x", 1), 0);
	tu_child c;
	int r = tu_spawn_self("bad_env", 30 * TT_SECOND, &c);
	unsetenv("TETHER_BLOCKING_THREADS");
	TU_ASSERT_OK(r);
	TU_ASSERT_CHILD_EXIT(&c, 0);
	TU_ASSERT_CONTAINS(c.err, "tether: TETHER_BLOCKING_THREADS=0x is not "
				  "a number in 1..1024; using 64");
	TU_ASSERT_CONTAINS(c.err, "max 64");
	tu_child_free(&c);
}

static const tu_child_case child_cases[] = {
	{"limit", child_limit},
	{"bad_env", child_bad_env},
};

int main(int argc, char **argv)
{
	tu_child_dispatch(argc, argv, child_cases,
			  sizeof child_cases / sizeof *child_cases);
	const struct CMUnitTest tests[] = {
		TU_TEST(test_ticker_on_time),
		TU_TEST(test_result_and_bad_input),
		TU_TEST(test_shared_stack_arg),
		TU_TEST(test_dump_and_leak_check),
		TU_TEST(test_thread_limit),
		TU_TEST(test_bad_env),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
