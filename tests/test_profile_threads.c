/* The goroutine profile and the leak checker see every thread's
 * goroutines (tt__snapshot_take_all, tt__snapshot_take_others):
 * goroutines parked on another thread appear with their stacks in
 * debug=2 and debug=1, counted in the total, and in an unscoped leak
 * check; a thread that is outside tether (blocked in a plain read) holds
 * the profile up for a bounded time only. */
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "testutil.h"
#include "chan_queued.h"

#define MS TT_MILLISECOND

static char *profile(int debug)
{
	tu_sink s = {0};
	TU_ASSERT_OK(tt_profile_write("goroutine", debug, tu_sink_write, &s));
	assert_non_null(s.p);
	return s.p;
}

/* Goroutine records: lines that start with "goroutine " ("created by ...
 * in goroutine N" lines do not). */
static int records(const char *text)
{
	int n = 0;
	for (const char *p = text; *p; p++)
		if ((p == text || p[-1] == '\n') &&
		    strncmp(p, "goroutine ", 10) == 0)
			n++;
	return n;
}

/* In debug=1 text: the goroutines of the groups whose stack has
 * parked_on_other_thread in it ("N @ 0x..." heads). */
static int parked_in_groups(const char *text)
{
	int sum = 0;
	for (const char *p = text; p && *p;) {
		const char *end = strstr(p, "\n\n");
		size_t len = end ? (size_t)(end - p) : strlen(p);
		int n = 0;
		char *g = strndup(p, len);
		const char *head = strstr(g, " @ 0x");
		while (head && head > g && head[-1] >= '0' && head[-1] <= '9')
			head--;
		if (head && sscanf(head, "%d @ 0x", &n) == 1 &&
		    strstr(g, "parked_on_other_thread+0x"))
			sum += n;
		free(g);
		p = end ? end + 2 : NULL;
	}
	return sum;
}

/* ---- a thread with goroutines of its own ----------------------------------- */

enum { ON_THREAD = 3 };

typedef struct worker_thread {
	pthread_t th;
	tt_chan *quit; /* the thread's own: its goroutines park on it */
	_Atomic int parked;
	_Atomic int stop;
} worker_thread;

static __attribute__((noinline)) void parked_on_other_thread(void *arg)
{
	worker_thread *w = arg;
	atomic_fetch_add(&w->parked, 1);
	int v;
	TU_UNCHECKED(tt_chan_recv(w->quit, &v, sizeof v, NULL));
}

static void *worker_main(void *arg)
{
	worker_thread *w = arg;
	if (tt_chan_make(&w->quit, sizeof(int), 0) != 0)
		return NULL;
	for (int i = 0; i < ON_THREAD; i++)
		if (tt_go(parked_on_other_thread, w) <= 0)
			return NULL;
	/* The thread's own flow parks in tether too, answering posts. */
	while (!atomic_load(&w->stop))
		TU_UNCHECKED(tt_sleep(MS));
	TU_UNCHECKED(tt_chan_close(w->quit));
	/* Let them end (woken, they run while this one sleeps) before the
	 * thread does. */
	TU_UNCHECKED(tt_sleep(MS));
	TU_UNCHECKED(tt_chan_release(w->quit));
	return NULL;
}

static void start_worker(worker_thread *w)
{
	assert_int_equal(pthread_create(&w->th, NULL, worker_main, w), 0);
	int64_t give_up = tt_deadline_in(30 * TT_SECOND);
	while (atomic_load(&w->parked) < ON_THREAD && tt_now() < give_up)
		TU_ASSERT_OK(tt_sleep(MS));
	assert_int_equal(atomic_load(&w->parked), ON_THREAD);
}

static void stop_worker(worker_thread *w)
{
	atomic_store(&w->stop, 1);
	TU_ASSERT_OK(tt_blocking(tu_join_thread, &w->th));
}

static void test_profile_lists_other_threads(void **state)
{
	(void)state;
	TU_REQUIRE_THREADS();
	int64_t before = tt_num_goroutine();
	worker_thread w = {0};
	start_worker(&w);
	/* main's goroutines, the worker thread's three and its own flow. */
	int64_t all = tt_num_goroutine();
	assert_int_equal(all, before + ON_THREAD + 1);

	char *d2 = profile(2);
	assert_int_equal(tu_count(d2, "parked_on_other_thread("), ON_THREAD);
	assert_int_equal(tu_count(d2, "[chan receive]:\n"), ON_THREAD);
	TU_ASSERT_CONTAINS(d2, "test_profile_threads.c:");
	/* The goroutine that took the other thread's part leaves itself
	 * out, and so does nothing else. */
	assert_null(strstr(d2, "snap_proxy"));
	assert_int_equal(records(d2), (int)all);
	/* The caller's goroutine is first, as it always is. */
	char head[64];
	snprintf(head, sizeof head, "goroutine %lld [running]:\n",
		 (long long)tt_goid());
	assert_true(strncmp(d2, head, strlen(head)) == 0);
	free(d2);

	char *d1 = profile(1);
	char total[64];
	snprintf(total, sizeof total, "goroutine profile: total %lld\n",
		 (long long)all);
	TU_ASSERT_CONTAINS(d1, total);
	/* One group of three, or more of them with two Ps: a goroutine
	 * that tt_go handed to another P than the channel's parks on it
	 * from another place in tt_chan_recv (the other-thread path). */
	assert_int_equal(parked_in_groups(d1), ON_THREAD);
	free(d1);

	/* debug=0 as well: a proto with one sample of count 3 for them is
	 * what the text above came from; its length at least grows. */
	tu_sink s0 = {0};
	TU_ASSERT_OK(tt_profile_write("goroutine", 0, tu_sink_write, &s0));
	TU_ASSERT_GT(s0.len, 100);
	free(s0.p);

	stop_worker(&w);
	/* A goroutine tt_go handed to a P's worker ends there, on its own
	 * time, once the close has woken it. */
	TU_WAIT_FOR(tt_num_goroutine() == before, 10 * TT_SECOND);
	d2 = profile(2);
	assert_int_equal(tu_count(d2, "parked_on_other_thread("), 0);
	free(d2);
}

/* ---- a thread outside tether ----------------------------------------------- */

typedef struct stuck {
	pthread_t th;
	int fds[2];
	_Atomic int stage;
} stuck;

static void *stuck_main(void *arg)
{
	stuck *st = arg;
	/* A scheduler of its own, then a read tether does not see. */
	tt_yield();
	atomic_store(&st->stage, 1);
	char c;
	TU_UNCHECKED(read(st->fds[0], &c, 1));
	return NULL;
}

static void test_profile_with_thread_outside_tether(void **state)
{
	(void)state;
	TU_REQUIRE_THREADS();
	stuck st = {0};
	assert_int_equal(pipe(st.fds), 0);
	assert_int_equal(pthread_create(&st.th, NULL, stuck_main, &st), 0);
	while (atomic_load(&st.stage) == 0)
		TU_ASSERT_OK(tt_sleep(MS));
	TU_ASSERT_OK(tt_sleep(MS));
	worker_thread w = {0};
	start_worker(&w);
	int64_t t0 = tt_now();
	char *d2 = profile(2);
	int64_t took = tt_now() - t0;
	/* The answering thread is listed; the stuck one, which cannot
	 * answer, is given up on after a few milliseconds (generous bound:
	 * a loaded machine). */
	assert_int_equal(tu_count(d2, "parked_on_other_thread("), ON_THREAD);
	assert_null(strstr(d2, "stuck_main"));
	print_message("  profile with a thread outside tether: %.1f ms\n",
		      (double)took / 1e6);
	TU_ASSERT_LT(took, 5 * TT_SECOND);
	free(d2);
	stop_worker(&w);
	assert_int_equal(write(st.fds[1], "x", 1), 1);
	TU_ASSERT_OK(tt_blocking(tu_join_thread, &st.th));
	close(st.fds[0]);
	close(st.fds[1]);
}

/* ---- another thread asks -------------------------------------------------------- */

typedef struct asker {
	char *text;
	int r;
} asker;

static void *ask_profile(void *arg)
{
	asker *a = arg;
	tu_sink s = {0};
	a->r = tt_profile_write("goroutine", 2, tu_sink_write, &s);
	a->text = s.p;
	return NULL;
}

static __attribute__((noinline)) void parked_on_main(void *arg)
{
	int v;
	TU_UNCHECKED(tt_chan_recv(arg, &v, sizeof v, NULL));
}

/* A profile asked from a plain pthread lists main's goroutines, which
 * main's thread snapshots while it waits in tether. */
static void test_profile_from_pthread(void **state)
{
	(void)state;
	TU_REQUIRE_THREADS();
	tt_chan *c = tu_chan(sizeof(int), 0);
	int64_t n0 = tt_num_goroutine();
	for (int i = 0; i < 2; i++)
		tu_go(parked_on_main, c);
	/* With two Ps they may start on the other: parked, they hold c. */
	TU_WAIT_QUEUED(c, false, 2);
	asker a = {0};
	pthread_t th;
	assert_int_equal(pthread_create(&th, NULL, ask_profile, &a), 0);
	TU_ASSERT_OK(tt_blocking(tu_join_thread, &th));
	TU_ASSERT_OK(a.r);
	assert_non_null(a.text);
	assert_int_equal(tu_count(a.text, "parked_on_main("), 2);
	/* main's own flow was in tt_blocking, parked. */
	TU_ASSERT_CONTAINS(a.text, "tt_blocking(");
	free(a.text);
	TU_ASSERT_OK(tt_chan_close(c));
	TU_WAIT_FOR(tt_num_goroutine() == n0, 10 * TT_SECOND);
	TU_ASSERT_OK(tt_chan_release(c));
}

/* ---- the leak checker ---------------------------------------------------- */

static void test_leak_check_sees_other_threads(void **state)
{
	(void)state;
	TU_REQUIRE_THREADS();
	tt_leak_opts *o, *ign;
	TU_ASSERT_OK(tt_leak_opts_make(&o));
	TU_ASSERT_OK(tt_leak_retry(o, 2, TT_MILLISECOND));
	TU_ASSERT_OK(tt_leak_opts_make(&ign));
	TU_ASSERT_OK(tt_leak_retry(ign, 2, TT_MILLISECOND));
	tt_leak_list l;
	assert_int_equal(tt_leak_find(o, &l), 0);
	tt_leak_list_free(&l);

	worker_thread w = {0};
	start_worker(&w);
	/* The worker thread's three, and its own flow (parked in tether). */
	assert_int_equal(tt_leak_find(o, &l), ON_THREAD + 1);
	int parked = 0, flows = 0;
	for (size_t i = 0; i < l.n; i++) {
		if (strstr(l.g[i].stack, "parked_on_other_thread(")) {
			parked++;
			assert_string_equal(l.g[i].state, "chan receive");
			assert_string_equal(l.g[i].created_by, "worker_main");
		} else if (strstr(l.g[i].stack, "worker_main(")) {
			flows++;
			assert_string_equal(l.g[i].created_by, "");
		}
	}
	assert_int_equal(parked, ON_THREAD);
	assert_int_equal(flows, 1);
	TU_ASSERT_CONTAINS(l.report, "found unexpected goroutines:");
	tt_leak_list_free(&l);

	/* Ignoring what is there now covers the other thread's too. */
	TU_ASSERT_OK(tt_leak_ignore_current(ign));
	assert_int_equal(tt_leak_find(ign, &l), 0);
	tt_leak_list_free(&l);

	/* A scope's goroutines are its thread's: the other thread's are
	 * not in it. */
	tt_leak_scope sc;
	TU_ASSERT_OK(tt_leak_scope_begin(&sc, "this thread"));
	assert_int_equal(tt_leak_scope_verify(&sc, o), 0);

	stop_worker(&w);
	assert_int_equal(tt_leak_find(o, &l), 0);
	tt_leak_list_free(&l);
	tt_leak_opts_free(o);
	tt_leak_opts_free(ign);
}

/* ---- goroutines tt_go handed to another P ---------------------------------- */

typedef struct on_p {
	tt_chan *block; /* main's: received on from the worker */
	_Atomic int tid;
	_Atomic bool woken;
} on_p;

static __attribute__((noinline)) void parked_on_worker(void *arg)
{
	on_p *p = arg;
	atomic_store(&p->tid, (int)gettid());
	TU_UNCHECKED(tt_chan_recv(p->block, NULL, 0, NULL));
	atomic_store(&p->woken, true); /* and no tail call: a frame */
}

static void noop_done(void *arg)
{
	tu_done(arg);
}

enum { TRIES = 1000 };
static on_p ps[TRIES];

/* Start parked_on_worker goroutines (ps[*n], ...) until one runs on the
 * worker thread (which starts at the first tt_go that could use it):
 * whether one did. */
static bool hand_one(int *n)
{
	while (*n < TRIES) {
		on_p *p = &ps[(*n)++];
		*p = (on_p){.block = tu_chan(0, 0)};
		tu_go(parked_on_worker, p);
		TU_WAIT_FOR(atomic_load(&p->tid) != 0, 10 * TT_SECOND);
		if (atomic_load(&p->tid) != getpid())
			return true;
		TU_ASSERT_OK(tt_sleep(MS));
	}
	return false;
}

/* With two Ps, goroutines of main's handed to the worker thread park
 * there on channels of main's they are the first to use: the profile
 * lists them, once each, with their stacks, and no goroutine of
 * tether's stands in for them; the leak checker finds them, and, since
 * nothing can wake them, says so without sleeping through its retries.
 * The second one's id is from a block of ids main took after the
 * worker took its own (a handed-off goroutine keeps its creator's). */
static void test_handed_off_goroutine_listed(void **state)
{
	(void)state;
	int before = tt_runtime_procs_set(2);
	assert_true(before >= 1);
	int n = 0;
	bool first = hand_one(&n);
	tt_chan *done = tu_chan(0, 0);
	for (int i = 0; first && i < 300; i++) {
		tu_go(noop_done, done);
		TU_WAIT_DONE(done, 1, 10 * TT_SECOND);
	}
	tt_chan_release(done);
	bool second = first && hand_one(&n);
	tt_runtime_procs_set(before);
	assert_true(first && second);
	TU_ASSERT_OK(tt_sleep(5 * MS)); /* parked */

	char *d2 = profile(2);
	assert_int_equal(tu_count(d2, "parked_on_worker("), n);
	assert_null(strstr(d2, "_proxy"));
	assert_int_equal(records(d2), (int)tt_num_goroutine());
	free(d2);

	tt_leak_opts *o;
	TU_ASSERT_OK(tt_leak_opts_make(&o));
	TU_ASSERT_OK(tt_leak_retry(o, 20, 2 * TT_SECOND));
	int64_t t0 = tt_now();
	tt_leak_list l;
	assert_int_equal(tt_leak_find(o, &l), n);
	/* The retries would take more than 20 s. */
	TU_ASSERT_LT(tt_now() - t0, 10 * TT_SECOND);
	for (size_t i = 0; i < l.n; i++)
		TU_ASSERT_CONTAINS(l.g[i].stack, "parked_on_worker(");
	tt_leak_list_free(&l);
	tt_leak_opts_free(o);

	for (int i = 0; i < n; i++) {
		TU_ASSERT_OK(tt_chan_close(ps[i].block));
		tt_chan_release(ps[i].block);
	}
}

typedef struct wg_waiter {
	tt_waitgroup *wg;
	int result;
} wg_waiter;

static void *wait_on_main_wg(void *arg)
{
	wg_waiter *w = arg;
	w->result = tt_wg_wait(w->wg);
	return NULL;
}

/* A pthread waiting on main's WaitGroup is one goroutine waiting, as in
 * Go: the goroutine of main's thread that waits there for it (a proxy)
 * is not counted by tt_num_goroutine, listed by the profile, or found
 * by the leak checker. */
static void test_sync_waiter_counted_once(void **state)
{
	(void)state;
	TU_REQUIRE_THREADS();
	tt_waitgroup *wg;
	TU_ASSERT_OK(tt_wg_make(&wg));
	TU_ASSERT_OK(tt_wg_add(wg, 1));
	wg_waiter w = {wg, 1};
	pthread_t th;
	assert_int_equal(pthread_create(&th, NULL, wait_on_main_wg, &w), 0);
	/* Parked in the wait, and (a sleep later) its proxy made here. */
	char *d1 = NULL;
	for (int64_t dl = tt_deadline_in(10 * TT_SECOND);;) {
		free(d1);
		d1 = profile(1);
		if (strstr(d1, "wait_on_main_wg+0x") || tt_now() > dl)
			break;
		TU_ASSERT_OK(tt_sleep(MS));
	}
	TU_ASSERT_OK(tt_sleep(20 * MS));
	free(d1);
	assert_int_equal(tt_num_goroutine(), 2); /* main, the pthread */
	char *d2 = profile(2);
	assert_int_equal(records(d2), 2);
	TU_ASSERT_CONTAINS(d2, "[sync.WaitGroup.Wait]:");
	TU_ASSERT_CONTAINS(d2, "wait_on_main_wg(");
	assert_null(strstr(d2, "for goroutine"));
	assert_null(strstr(d2, "_proxy"));
	free(d2);
	tt_leak_opts *o;
	TU_ASSERT_OK(tt_leak_opts_make(&o));
	TU_ASSERT_OK(tt_leak_retry(o, 0, TT_MILLISECOND));
	tt_leak_list l;
	assert_int_equal(tt_leak_find(o, &l), 1);
	TU_ASSERT_CONTAINS(l.g[0].stack, "wait_on_main_wg(");
	tt_leak_list_free(&l);
	tt_leak_opts_free(o);
	TU_ASSERT_OK(tt_wg_done(wg));
	tu_join_parked(th);
	assert_int_equal(w.result, 0);
	TU_ASSERT_OK(tt_wg_release(wg));
}

/* Child: goroutines parked on main's thread and on the worker's, then
 * SIGQUIT with the traceback on. */
static void child_sigquit(void)
{
	TU_ASSERT_OK(tt_traceback_on_sigquit(true));
	assert_true(tt_runtime_procs_set(2) >= 1);
	int n = 0;
	assert_true(hand_one(&n));
	TU_ASSERT_OK(tt_sleep(5 * MS)); /* parked */
	fprintf(stderr, "tu-handed=%d\n", n);
	raise(SIGQUIT);
}

/* The SIGQUIT dump lists every thread's goroutines, as Go's lists every
 * goroutine: the one handed to the worker thread, parked there, as well
 * as main's. */
static void test_sigquit_dump_lists_other_ps(void **state)
{
	(void)state;
	TU_REQUIRE_THREADS();
	tu_child c;
	char why[64];
	TU_ASSERT_OK(tu_spawn_self("sigquit", 30 * TT_SECOND, &c));
	TU_ASSERT_MSG(c.exited && c.exit_code == 2, "child %s:\n%s",
		      tu_child_describe(&c, why, sizeof why), c.err);
	const char *quit = strstr(c.err, "SIGQUIT: quit\n");
	TU_ASSERT_MSG(quit, "no SIGQUIT dump in:\n%s", c.err);
	int handed = (int)tu_child_marker(&c, "tu-handed");
	assert_true(handed >= 1);
	/* Main, and each goroutine it made, on either thread. */
	assert_int_equal(records(quit), handed + 1);
	assert_int_equal(tu_count(quit, "parked_on_worker("), handed);
	TU_ASSERT_CONTAINS(quit, "goroutine 1 [running]:");
	assert_null(strstr(quit, "did not list"));
	tu_child_free(&c);
}

static const tu_child_case child_cases[] = {
	{"sigquit", child_sigquit},
};

int main(int argc, char **argv)
{
	tu_child_dispatch(argc, argv, child_cases,
			  sizeof child_cases / sizeof child_cases[0]);
	const struct CMUnitTest tests[] = {
		TU_TEST(test_profile_lists_other_threads),
		TU_TEST(test_profile_with_thread_outside_tether),
		TU_TEST(test_profile_from_pthread),
		TU_TEST(test_leak_check_sees_other_threads),
		TU_TEST(test_handed_off_goroutine_listed),
		TU_TEST(test_sync_waiter_counted_once),
		TU_TEST(test_sigquit_dump_lists_other_ps),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
