/* Ps: tt_runtime_procs_set, and tt_go handing new goroutines to the
 * worker threads (src/sched/procs.c). Each test sets two Ps and puts
 * back what it found. A goroutine on a worker never calls a check: it
 * records what it saw, and the main goroutine checks. */
#include <errno.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <pthread.h>
#include <sched.h>
#include <sys/socket.h>
#include <unistd.h>

#include "testutil.h"

static int procs_before;

static int setup(void **state)
{
	(void)state;
	procs_before = tt_runtime_procs();
	return tt_runtime_procs_set(2) >= 1 ? 0 : -1;
}

static int teardown(void **state)
{
	(void)state;
	return tt_runtime_procs_set(procs_before) >= 1 ? 0 : -1;
}

static void test_procs_set_and_errors(void **state)
{
	(void)state;
	TU_ASSERT_EQ(tt_runtime_procs(), 2);
	TU_ASSERT_ERR(tt_runtime_procs_set(0), -EINVAL);
	TU_ASSERT_CONTAINS(tt_last_error(), "tt_runtime_procs_set: 0 is not");
	TU_ASSERT_ERR(tt_runtime_procs_set(257), -EINVAL);
	TU_ASSERT_ERR(tt_runtime_procs_set(-3), -EINVAL);
	TU_ASSERT_EQ(tt_runtime_procs(), 2);
	TU_ASSERT_EQ(tt_runtime_procs_set(3), 2);
	TU_ASSERT_EQ(tt_runtime_procs(), 3);
	TU_ASSERT_EQ(tt_runtime_procs_set(2), 3);
}

/* ---- the default: one P for every CPU the process may run on ----------- */

static int cpus_of(const cpu_set_t *set)
{
	return CPU_COUNT(set);
}

static void child_default(void)
{
	cpu_set_t set;
	CPU_ZERO(&set);
	TU_CHILD_CHECK(sched_getaffinity(0, sizeof set, &set) == 0);
	fprintf(stderr, "tu-procs=%d tu-cpus=%d\n", tt_runtime_procs(),
		cpus_of(&set));
}

/* A child run with TETHER_PROCS set to env (NULL: unset): its count. */
static long long procs_of_child(const char *env, tu_child *c)
{
	char *saved = getenv("TETHER_PROCS");
	saved = saved ? strdup(saved) : NULL;
	if (env)
		TU_ASSERT(setenv("TETHER_PROCS", env, 1) == 0);
	else
		TU_ASSERT(unsetenv("TETHER_PROCS") == 0);
	int r = tu_spawn_self("default", 60 * TT_SECOND, c);
	if (saved)
		TU_ASSERT(setenv("TETHER_PROCS", saved, 1) == 0);
	else
		TU_ASSERT(unsetenv("TETHER_PROCS") == 0);
	free(saved);
	assert_int_equal(r, 0);
	TU_ASSERT_CHILD_EXIT(c, 0);
	return tu_child_marker(c, "tu-procs");
}

static void test_default_is_cpus(void **state)
{
	(void)state;
	cpu_set_t all;
	CPU_ZERO(&all);
	TU_ASSERT(sched_getaffinity(0, sizeof all, &all) == 0);
	int n = cpus_of(&all);
	tu_child c;
	/* Unset: as many as this thread may run on (what the child
	 * inherits), as Go's GOMAXPROCS. */
	TU_ASSERT_EQ(procs_of_child(NULL, &c), n);
	TU_ASSERT_EQ(tu_child_marker(&c, "tu-cpus"), n);
	tu_child_free(&c);
	/* Empty is unset too. */
	TU_ASSERT_EQ(procs_of_child("", &c), n);
	tu_child_free(&c);
	/* Not a count: said once, and the default kept. */
	TU_ASSERT_EQ(procs_of_child("many", &c), n);
	char want[160];
	snprintf(want, sizeof want,
		 "tether: TETHER_PROCS=many is not a number of threads from 1 "
		 "to 256; using %d (the CPUs this process may run on)\n",
		 n);
	TU_ASSERT_CONTAINS(c.err, want);
	tu_child_free(&c);
	/* Under `taskset -c K` (an affinity mask the child inherits): one. */
	int first = 0;
	while (!CPU_ISSET(first, &all))
		first++;
	cpu_set_t one;
	CPU_ZERO(&one);
	CPU_SET(first, &one);
	TU_ASSERT(sched_setaffinity(0, sizeof one, &one) == 0);
	long long got = procs_of_child(NULL, &c);
	TU_ASSERT(sched_setaffinity(0, sizeof all, &all) == 0);
	TU_ASSERT_EQ(got, 1);
	tu_child_free(&c);
	/* Set, it wins. */
	TU_ASSERT_EQ(procs_of_child("3", &c), 3);
	tu_child_free(&c);
}

/* ---- a fan-out spreads over the Ps ------------------------------------------ */

enum { FAN = 32 };

typedef struct fan {
	tt_chan *results;
	int i;
} fan;

typedef struct result {
	int i;
	int tid;
	uint64_t sum;
} result;

/* Fixed work: a few hundred microseconds of arithmetic. */
static uint64_t work(int i)
{
	uint64_t x = (uint64_t)i * 0x9e3779b97f4a7c15u + 1;
	for (int k = 0; k < 200000; k++)
		x = x * 6364136223846793005u + 1442695040888963407u;
	return x;
}

static void fan_worker(void *arg)
{
	fan *f = arg;
	result r = {.i = f->i, .tid = (int)gettid(), .sum = work(f->i)};
	TU_UNCHECKED(tt_send(f->results, &r));
}

/* Every result exactly once and right; *threads: how many threads ran
 * them. */
static void fan_round(int *threads)
{
	tt_chan *results = tu_chan(sizeof(result), FAN);
	fan f[FAN];
	for (int i = 0; i < FAN; i++) {
		f[i] = (fan){.results = results, .i = i};
		TU_ASSERT_GT(tt_go(fan_worker, &f[i]), 0);
	}
	bool seen[FAN] = {false};
	int tids[FAN], ntids = 0;
	for (int n = 0; n < FAN; n++) {
		result r;
		TU_ASSERT_OK(tt_recv(results, &r, NULL));
		TU_ASSERT_RANGE(r.i, 0, FAN - 1);
		TU_ASSERT(!seen[r.i]);
		seen[r.i] = true;
		TU_ASSERT_EQ(r.sum, work(r.i));
		bool known = false;
		for (int k = 0; k < ntids; k++)
			known = known || tids[k] == r.tid;
		if (!known)
			tids[ntids++] = r.tid;
	}
	TU_ASSERT_OK(tt_chan_release(results));
	*threads = ntids;
}

/* Fan-outs until one ran on both threads: the first round starts the
 * worker, which takes goroutines from then on whenever it is idle. */
static void fan_until_spread(void)
{
	int threads = 0;
	for (int round = 0; round < 20 && threads < 2; round++)
		fan_round(&threads);
	TU_ASSERT_EQ(threads, 2);
}

static void test_fanout_spreads(void **state)
{
	(void)state;
	fan_until_spread();
}

/* ---- what a handed-off goroutine takes with it ----------------------------- */

typedef struct seen {
	_Atomic int tid;
	char label[32];
	int64_t id;
} seen;

typedef struct carry {
	tt_chan *block;
	seen *out;
} carry;

static void carried(void *arg)
{
	carry *c = arg;
	c->out->id = tt_goid();
	const char *v = tt_label("job");
	if (v)
		snprintf(c->out->label, sizeof c->out->label, "%s", v);
	atomic_store(&c->out->tid, (int)gettid());
	int x;
	TU_UNCHECKED(tt_recv(c->block, &x, NULL));
}

static void test_handoff_keeps_scope_labels_and_creator(void **state)
{
	(void)state;
	int main_tid = (int)gettid();
	tt_chan *block = tu_chan(sizeof(int), 0);
	seen out = {0};
	carry c = {.block = block, .out = &out};
	tt_leak_scope sc;
	TU_ASSERT_OK(tt_leak_scope_begin(&sc, "procs handoff"));
	TU_ASSERT_OK(tt_labels_set(TT_LABELS("job", "handed")));
	/* Until one goes to the worker: each that stays here ends at once. */
	int64_t id = 0;
	for (int i = 0; i < 200; i++) {
		atomic_store(&out.tid, 0);
		id = tt_go(carried, &c);
		TU_ASSERT_GT(id, 0);
		TU_WAIT_FOR(atomic_load(&out.tid) != 0, 5 * TT_SECOND);
		if (atomic_load(&out.tid) != main_tid)
			break;
		int one = 1;
		TU_ASSERT_OK(tt_send(block, &one));
		tt_sleep(TT_MILLISECOND);
	}
	TU_ASSERT_NE(atomic_load(&out.tid), main_tid);
	TU_ASSERT_EQ(out.id, id);
	TU_ASSERT(strcmp(out.label, "handed") == 0);

	/* The scope's check finds it on the other thread, with its creator
	 * and where it waits. */
	tt_leak_opts *o = NULL;
	TU_ASSERT_OK(tt_leak_opts_make(&o));
	TU_ASSERT_OK(tt_leak_retry(o, 3, TT_MILLISECOND));
	tu_sink s = {0};
	TU_ASSERT_EQ(tt_leak_scope_verify_to(&sc, o, tu_sink_write, &s), 1);
	TU_ASSERT_CONTAINS(s.p, "in state chan receive");
	TU_ASSERT_CONTAINS(s.p, "carried(");
	TU_ASSERT_CONTAINS(s.p, "test_procs.c:");
	TU_ASSERT_CONTAINS(s.p,
			   "created by test_handoff_keeps_scope_labels_and_"
			   "creator in goroutine");
	char want[64];
	snprintf(want, sizeof want, "Goroutine %lld in state", (long long)id);
	TU_ASSERT_CONTAINS(s.p, want);
	free(s.p);
	tt_leak_opts_free(o);

	TU_ASSERT_OK(tt_labels_set(NULL));
	int one = 1;
	TU_ASSERT_OK(tt_send(block, &one));
	TU_ASSERT_OK(tt_chan_release(block));
}

/* ---- the workers are tether's, not the program's --------------------------- */

static void test_pthread_checker_skips_workers(void **state)
{
	(void)state;
	fan_until_spread();
	tt_threads_list l;
	int n = tt_threads_snapshot(&l);
	TU_ASSERT_GE(n, 0);
	for (size_t i = 0; i < l.n; i++)
		TU_ASSERT_MSG(strncmp(l.t[i].name, "tether-P", 8) != 0,
			      "worker thread %d (%s) listed", l.t[i].tid,
			      l.t[i].name);
	tt_threads_list_free(&l);
}

/* ---- a deadlock across Ps ----------------------------------------------------- */

static void stuck_on_worker(void *arg)
{
	int v;
	TU_UNCHECKED(tt_recv((tt_chan *)arg, &v, NULL));
}

typedef struct where {
	tt_chan *c;
	_Atomic int tid;
	int main_tid;
} where;

static void report_tid(void *arg)
{
	where *w = arg;
	atomic_store(&w->tid, (int)gettid());
	stuck_on_worker(w->c);
}

static void child_deadlock(void)
{
	TU_UNCHECKED(tt_runtime_procs_set(2));
	tt_chan *c = NULL, *never = NULL;
	TU_UNCHECKED(tt_chan_make(&c, sizeof(int), 0));
	TU_UNCHECKED(tt_chan_make(&never, sizeof(int), 0));
	where w = {.c = c};
	for (int i = 0; i < 200; i++) {
		atomic_store(&w.tid, 0);
		TU_UNCHECKED(tt_go(report_tid, &w));
		while (atomic_load(&w.tid) == 0)
			tt_sleep(100 * TT_MICROSECOND);
		if (atomic_load(&w.tid) != (int)gettid())
			break;
		tt_sleep(TT_MILLISECOND);
	}
	fprintf(stderr, "tu-%s\n",
		atomic_load(&w.tid) != (int)gettid() ? "on-worker" : "here");
	int v;
	TU_UNCHECKED(tt_recv(never, &v, NULL));
}

static void test_deadlock_across_ps(void **state)
{
	(void)state;
	TU_REQUIRE_THREADS();
	/* Under TSan its background thread starts with the first
	 * pthread_create (the worker's), after tether counted the runtime's
	 * threads: one thread more than tether knows keeps the report back
	 * (never a false one), as in test_foreign.c. */
	if (TU_TSAN) {
		fprintf(stderr, "# skipped under ThreadSanitizer\n");
		skip();
	}
	tu_child c;
	assert_int_equal(tu_spawn_self("deadlock", 60 * TT_SECOND, &c), 0);
	assert_false(c.timed_out);
	TU_ASSERT_CHILD_EXIT(&c, 2);
	TU_ASSERT_CONTAINS(c.err, "tu-on-worker");
	TU_ASSERT_CONTAINS(c.err,
			   "fatal error: all goroutines are asleep - deadlock!");
	/* main's stack, and the worker's goroutine's, with file:line. */
	TU_ASSERT_CONTAINS(c.err, "goroutine 1 [chan receive]:");
	TU_ASSERT_CONTAINS(c.err, "child_deadlock(");
	TU_ASSERT_CONTAINS(c.err, "stuck_on_worker(");
	TU_ASSERT_CONTAINS(c.err, "test_procs.c:");
	tu_child_free(&c);
}

/* ---- I/O with another thread's context ---------------------------------------
 *
 * A goroutine on a worker (or any other thread) reading with main's
 * context: many reads that each wait, then one that the context's cancel
 * ends. The wait is on a child of the context, never in the queue of
 * main's done channel. */

enum { MSGS = 2000 };

typedef struct ctx_reader {
	tt_ctx *ctx;
	int fd;
	int got;     /* messages read in order */
	int end;     /* what the last read returned */
	char msg[160];
} ctx_reader;

static void *ctx_reader_main(void *arg)
{
	ctx_reader *r = arg;
	for (;;) {
		int v;
		ssize_t n = tt_read_ctx(r->ctx, r->fd, &v, sizeof v);
		if (n != (ssize_t)sizeof v) {
			snprintf(r->msg, sizeof r->msg, "%s", tt_last_error());
			__atomic_store_n(&r->end, (int)n, __ATOMIC_RELEASE);
			return NULL;
		}
		if (v == r->got)
			__atomic_store_n(&r->got, r->got + 1, __ATOMIC_RELEASE);
	}
}

static void ctx_reader_g(void *arg)
{
	ctx_reader_main(arg);
}

typedef struct ctx_writer {
	int fd;
	tt_chan *done;
} ctx_writer;

static void ctx_writer_g(void *arg)
{
	ctx_writer *w = arg;
	for (int i = 0; i < MSGS; i++) {
		if (tt_write(w->fd, &i, sizeof i, TT_FOREVER) != sizeof i)
			break;
		if (i % 16 == 0)
			tt_sleep(5 * TT_MICROSECOND);
	}
	tu_done(w->done);
}

enum { READERS = 3 }; /* on pthreads, and as many goroutines of main's */

static void test_io_with_another_threads_ctx(void **state)
{
	(void)state;
	TU_REQUIRE_THREADS();
	tt_ctx *ctx = NULL;
	TU_ASSERT_OK(tt_ctx_with_cancel(&ctx, tt_ctx_background()));
	tt_chan *done = tu_chan(0, 2 * READERS);
	int sv[2 * READERS][2];
	ctx_reader r[2 * READERS];
	ctx_writer w[2 * READERS];
	pthread_t th[READERS];
	for (int i = 0; i < 2 * READERS; i++) {
		TU_ASSERT_EQ(socketpair(AF_UNIX, SOCK_STREAM, 0, sv[i]), 0);
		TU_ASSERT_OK(tt_fd_nonblock(sv[i][0]));
		TU_ASSERT_OK(tt_fd_nonblock(sv[i][1]));
		r[i] = (ctx_reader){.ctx = ctx, .fd = sv[i][1]};
		w[i] = (ctx_writer){.fd = sv[i][0], .done = done};
		if (i < READERS)
			TU_ASSERT_EQ(pthread_create(&th[i], NULL,
						    ctx_reader_main, &r[i]),
				     0);
		else
			tu_go(ctx_reader_g, &r[i]);
		tu_go(ctx_writer_g, &w[i]);
	}
	TU_WAIT_DONE(done, 2 * READERS, 60 * TT_SECOND);
	for (int i = 0; i < 2 * READERS; i++)
		TU_WAIT_FOR(__atomic_load_n(&r[i].got, __ATOMIC_ACQUIRE) ==
				    MSGS,
			    30 * TT_SECOND);
	tt_sleep(5 * TT_MILLISECOND); /* all parked in their next read */
	TU_ASSERT_OK(tt_ctx_cancel(ctx));
	for (int i = 0; i < READERS; i++)
		tu_join_parked(th[i]);
	for (int i = 0; i < 2 * READERS; i++) {
		TU_WAIT_FOR(__atomic_load_n(&r[i].end, __ATOMIC_ACQUIRE) != 0,
			    10 * TT_SECOND);
		TU_ASSERT_EQ(r[i].got, MSGS);
		TU_ASSERT_EQ(r[i].end, -ECANCELED);
		TU_ASSERT_CONTAINS(r[i].msg, "tt_read_ctx");
		TU_ASSERT_CONTAINS(r[i].msg, "context canceled");
		close(sv[i][0]);
		close(sv[i][1]);
	}
	TU_ASSERT_OK(tt_ctx_release(ctx));
	TU_ASSERT_OK(tt_chan_release(done));
}

/* ---- a stack overflow on a worker ------------------------------------------ */

static __attribute__((noinline)) unsigned long recurse(int depth)
{
	volatile unsigned char buf[256];
	buf[0] = (unsigned char)depth;
	return depth ? recurse(depth - 1) + buf[0] : 0;
}

static void overflow_on_worker(void *arg)
{
	where *w = arg;
	atomic_store(&w->tid, (int)gettid());
	if (atomic_load(&w->tid) == w->main_tid)
		return;
	tt_sleep(50 * TT_MILLISECOND); /* main says where it ran first */
	recurse(1 << 24);
}

static void child_overflow(void)
{
	TU_UNCHECKED(tt_runtime_procs_set(2));
	where w = {.main_tid = (int)gettid()};
	for (int i = 0; i < 200; i++) {
		atomic_store(&w.tid, 0);
		TU_UNCHECKED(tt_go(overflow_on_worker, &w));
		while (atomic_load(&w.tid) == 0)
			tt_sleep(100 * TT_MICROSECOND);
		if (atomic_load(&w.tid) != w.main_tid)
			break;
		tt_sleep(TT_MILLISECOND);
	}
	fprintf(stderr, "tu-%s\n",
		atomic_load(&w.tid) != w.main_tid ? "on-worker" : "here");
	tt_sleep(10 * TT_SECOND);
}

static void test_overflow_on_worker_is_reported(void **state)
{
	(void)state;
	TU_REQUIRE_THREADS();
	tu_child c;
	assert_int_equal(tu_spawn_self("overflow", 60 * TT_SECOND, &c), 0);
	assert_false(c.timed_out);
	TU_ASSERT_CONTAINS(c.err, "tu-on-worker");
	assert_true(c.signaled);
	if (!TU_ASAN || !tu_contains(c.err, "AddressSanitizer")) {
		/* tether's report, not a silent death: the worker has the
		 * handler's alternate stack and its creator's signal mask. */
		TU_ASSERT_CONTAINS(c.err, "tether: fatal error: stack overflow "
					  "in goroutine");
		TU_ASSERT_CONTAINS(c.err, "[running]:");
	}
	tu_child_free(&c);
}

/* ---- a worker's own flow is never counted --------------------------------
 *
 * A fresh process's first tt_go starts the worker. Its goroutine either
 * runs here (when main parks first) or, queued here unstarted while main
 * spins, is taken by the worker once it is up. Either way only main and
 * that goroutine are goroutines: tt_num_goroutine must never say more
 * than 2 (1 once the goroutine has ended), also while the worker's thread
 * makes its scheduler (whose own flow of control once counted until it
 * began to run goroutines). */

static void note_tid(void *arg)
{
	atomic_store((_Atomic int *)arg, (int)gettid());
}

static void child_count(void)
{
	TU_UNCHECKED(tt_runtime_procs_set(2));
	_Atomic int tid = 0;
	TU_UNCHECKED(tt_go(note_tid, &tid));
	int64_t most = 0;
	int64_t dl = tt_deadline_in(50 * TT_MILLISECOND);
	while (tt_now() < dl) {
		int64_t n = tt_num_goroutine();
		if (n > most)
			most = n;
	}
	/* Then until it has run and ended (10 s at most). */
	int64_t end = 0;
	dl = tt_deadline_in(10 * TT_SECOND);
	while (tt_now() < dl) {
		end = tt_num_goroutine();
		if (end > most)
			most = end;
		if (atomic_load(&tid) != 0 && end == 1)
			break;
		TU_UNCHECKED(tt_sleep(TT_MILLISECOND));
	}
	fprintf(stderr, "tu-ran=%d tu-here=%d tu-most=%lld tu-end=%lld\n",
		atomic_load(&tid) != 0, atomic_load(&tid) == (int)gettid(),
		(long long)most, (long long)end);
}

static void test_worker_flow_not_counted(void **state)
{
	(void)state;
	TU_REQUIRE_THREADS();
	int here = 0;
	for (int i = 0; i < 20; i++) {
		tu_child c;
		assert_int_equal(tu_spawn_self("count", 60 * TT_SECOND, &c),
				 0);
		TU_ASSERT_CHILD_EXIT(&c, 0);
		TU_ASSERT_MSG(tu_child_marker(&c, "tu-ran") == 1,
			      "child %d: %s", i, c.err);
		TU_ASSERT_MSG(tu_child_marker(&c, "tu-most") <= 2,
			      "child %d: %s", i, c.err);
		TU_ASSERT_MSG(tu_child_marker(&c, "tu-end") == 1,
			      "child %d: %s", i, c.err);
		here += tu_child_marker(&c, "tu-here") == 1;
		tu_child_free(&c);
	}
	print_message("%d of 20 children ran their goroutine here\n", here);
}

/* ---- a goroutine waiting in a busy P's inbox is counted -----------------
 *
 * A worker runs a goroutine that does not park; with no P idle, the next
 * tt_go queues its goroutine unstarted on main's P, where it waits until
 * main parks. tt_go has returned its id: tt_num_goroutine counts it, as
 * Go's NumGoroutine counts a goroutine from the go statement on. */

typedef struct spinner {
	int main_tid;
	_Atomic int tid;
	_Atomic bool stop;
	_Atomic bool ended;
} spinner;

static void spin_on_worker(void *arg)
{
	spinner *w = arg;
	atomic_store(&w->tid, (int)gettid());
	if ((int)gettid() != w->main_tid) {
		int64_t dl = tt_deadline_in(30 * TT_SECOND);
		while (!atomic_load(&w->stop) && tt_now() < dl)
			;
	}
	atomic_store(&w->ended, true);
}

static void test_inbox_goroutine_counted(void **state)
{
	(void)state;
	TU_REQUIRE_THREADS();
	spinner w = {.main_tid = (int)gettid()};
	for (int i = 0; i < 200; i++) {
		atomic_store(&w.tid, 0);
		atomic_store(&w.ended, false);
		tu_go(spin_on_worker, &w);
		TU_WAIT_FOR(atomic_load(&w.tid) != 0, 10 * TT_SECOND);
		if (atomic_load(&w.tid) != w.main_tid)
			break;
		TU_WAIT_FOR(tt_num_goroutine() == 1, 10 * TT_SECOND);
	}
	assert_int_not_equal(atomic_load(&w.tid), w.main_tid);
	int64_t n0 = tt_num_goroutine(); /* main and the spinner */
	_Atomic int tid = 0;
	tu_go(note_tid, &tid);
	int64_t n1 = tt_num_goroutine();
	bool waited = atomic_load(&tid) == 0; /* queued, main not parked */
	atomic_store(&w.stop, true);
	TU_WAIT_FOR(atomic_load(&w.ended) && atomic_load(&tid) != 0,
		    10 * TT_SECOND);
	assert_int_equal(n0, 2);
	assert_true(waited);
	assert_int_equal(n1, 3);
}

/* ---- an idle P takes goroutines queued on a busy one ----------------------
 *
 * Main starts goroutines and then runs without parking until they have
 * all run. The worker is busy with the first when the next are started,
 * so they queue unstarted on main's P: only the worker, once idle, taking
 * them from there lets them run while main is busy. Each round's first
 * goroutine keeps the worker busy for a few milliseconds, so that the
 * rest do queue. */

typedef struct queued {
	_Atomic int ran, on_main;
	_Atomic bool hold;
	int main_tid;
} queued;

static void queued_first(void *arg)
{
	queued *q = arg;
	int64_t dl = tt_deadline_in(5 * TT_MILLISECOND);
	while (atomic_load(&q->hold) && tt_now() < dl)
		;
	atomic_fetch_add(&q->on_main, (int)gettid() == q->main_tid);
	atomic_fetch_add(&q->ran, 1);
}

static void queued_one(void *arg)
{
	queued *q = arg;
	atomic_fetch_add(&q->on_main, (int)gettid() == q->main_tid);
	atomic_fetch_add(&q->ran, 1);
}

static void test_idle_p_takes_queued(void **state)
{
	(void)state;
	TU_REQUIRE_THREADS();
	fan_until_spread(); /* the worker is up */
	enum { N = 16, ROUNDS = 20 };
	int stolen_rounds = 0;
	for (int round = 0; round < ROUNDS; round++) {
		queued q = {.main_tid = (int)gettid()};
		atomic_store(&q.hold, true);
		TU_ASSERT_OK(tt_sleep(TT_MILLISECOND)); /* the worker idles */
		tu_go(queued_first, &q);
		for (int i = 1; i < N; i++)
			tu_go(queued_one, &q);
		atomic_store(&q.hold, false);
		/* Busy, never parking: what runs meanwhile runs elsewhere. */
		int64_t dl = tt_deadline_in(10 * TT_SECOND);
		while (atomic_load(&q.ran) < N && tt_now() < dl)
			;
		int ran = atomic_load(&q.ran);
		TU_ASSERT_EQ(atomic_load(&q.on_main), 0);
		if (ran == N)
			stolen_rounds++;
		/* Those left run on main's P once it parks. */
		TU_WAIT_FOR(atomic_load(&q.ran) == N, 10 * TT_SECOND);
		TU_WAIT_FOR(tt_num_goroutine() == 1, 10 * TT_SECOND);
	}
	print_message("%d of %d rounds ran all %d goroutines on the worker "
		      "while main was busy\n",
		      stolen_rounds, ROUNDS, N);
	assert_int_equal(stolen_rounds, ROUNDS);
}

/* ---- a goroutine not yet started is listed at its function ----------------
 *
 * With the worker busy, main's tt_go queues the goroutine unstarted; the
 * profile makes it (a stack, no frames of its own yet) before it takes
 * this thread's records, and lists it as Go lists a goroutine that has
 * not run: runnable, at its function's line, with no offset. */

static void never_ran_yet(void *arg)
{
	atomic_store((_Atomic bool *)arg, true);
}

static void test_unstarted_listed_at_entry(void **state)
{
	(void)state;
	TU_REQUIRE_THREADS();
	fan_until_spread();
	spinner w = {.main_tid = (int)gettid()};
	for (int i = 0; i < 200; i++) {
		atomic_store(&w.tid, 0);
		atomic_store(&w.ended, false);
		tu_go(spin_on_worker, &w);
		TU_WAIT_FOR(atomic_load(&w.tid) != 0, 10 * TT_SECOND);
		if (atomic_load(&w.tid) != w.main_tid)
			break;
		TU_WAIT_FOR(tt_num_goroutine() == 1, 10 * TT_SECOND);
	}
	assert_int_not_equal(atomic_load(&w.tid), w.main_tid);
	_Atomic bool ran = false;
	int64_t id = tt_go(never_ran_yet, &ran); /* (tu_go would be its creator) */
	assert_true(id > 0);
	tu_sink out = {0};
	TU_ASSERT_OK(tt_profile_write("goroutine", 2, tu_sink_write, &out));
	atomic_store(&w.stop, true);
	TU_WAIT_FOR(atomic_load(&w.ended) && atomic_load(&ran), 10 * TT_SECOND);
	TU_WAIT_FOR(tt_num_goroutine() == 1, 10 * TT_SECOND);
	/* (It may have run by the time the write returned: the write
	 * sleeps while it waits for the busy worker's part. Listed at all,
	 * it was listed before it ran: it ends without parking.) */
	char want[128];
	snprintf(want, sizeof want,
		 "goroutine %lld [runnable]:\nnever_ran_yet(...)\n\t",
		 (long long)id);
	const char *at = strstr(out.p, want);
	TU_ASSERT_MSG(at != NULL, "%s", out.p);
	const char *pos = at + strlen(want);
	const char *eol = strchr(pos, '\n');
	assert_non_null(eol);
	char line[256];
	snprintf(line, sizeof line, "%.*s", (int)(eol - pos), pos);
	TU_ASSERT_CONTAINS(line, "test_procs.c:");
	TU_ASSERT_NOT_CONTAINS(line, "+0x");
	TU_ASSERT_CONTAINS(eol, "\ncreated by test_unstarted_listed_at_entry "
				"in goroutine 1\n");
	free(out.p);
}

/* ---- a hand-off is counted once ------------------------------------------
 *
 * While a worker makes a goroutine handed to it, the goroutine is in the
 * worker's count of goroutines and in the hand-offs in flight at once:
 * tt_num_goroutine, read from another thread meanwhile, counts it once.
 * (A stress: the window is a few instructions of the worker's, hit when
 * the worker's thread is preempted there.) */

typedef struct count_reader {
	_Atomic bool stop, ready;
	_Atomic int64_t most;
} count_reader;

static void *count_reader_main(void *arg)
{
	count_reader *r = arg;
	TU_UNCHECKED(tt_num_goroutine()); /* its scheduler, counted */
	atomic_store(&r->ready, true);
	while (!atomic_load(&r->stop)) {
		int64_t n = tt_num_goroutine();
		if (n > atomic_load(&r->most))
			atomic_store(&r->most, n);
	}
	return NULL;
}

static void ends_at_once(void *arg)
{
	(void)arg;
}

static void test_handoff_counted_once(void **state)
{
	(void)state;
	TU_REQUIRE_THREADS();
	fan_until_spread();
	count_reader r = {0};
	pthread_t th;
	TU_ASSERT_EQ(pthread_create(&th, NULL, count_reader_main, &r), 0);
	TU_WAIT_FOR(atomic_load(&r.ready), 10 * TT_SECOND);
	int64_t base = tt_num_goroutine(); /* main and the reader */
	int64_t end = tt_now() + TU_SCALE(2, 4) * TT_SECOND;
	long rounds = 0;
	while (tt_now() < end && atomic_load(&r.most) <= base + 1) {
		TU_ASSERT_GT(tt_go(ends_at_once, NULL), 0);
		int64_t dl = tt_now() + 10 * TT_SECOND;
		while (tt_num_goroutine() != base && tt_now() < dl)
			tt_yield();
		rounds++;
	}
	atomic_store(&r.stop, true);
	tu_join_parked(th);
	int64_t most = atomic_load(&r.most);
	print_message("%ld goroutines, most counted at once %lld (base %lld)\n",
		      rounds, (long long)most, (long long)base);
	TU_ASSERT_LE(most, base + 1);
}

/* ---- goroutines that stay on their thread ---------------------------------- */

/* TT_GO_THIS_THREAD: with a worker idle and taking goroutines, every one
 * started so runs on the caller's thread. */
static void test_this_thread_flag(void **state)
{
	(void)state;
	fan_until_spread(); /* the worker is there, and takes hand-offs */
	tt_chan *results = tu_chan(sizeof(result), FAN);
	fan f[FAN];
	tt_go_attr attr = {.flags = TT_GO_THIS_THREAD};
	for (int i = 0; i < FAN; i++) {
		f[i] = (fan){.results = results, .i = i};
		TU_ASSERT_GT(tt_go_with(&attr, fan_worker, &f[i]), 0);
	}
	for (int n = 0; n < FAN; n++) {
		result r;
		TU_ASSERT_OK(tt_recv(results, &r, NULL));
		TU_ASSERT_EQ(r.tid, (int)gettid());
		TU_ASSERT_EQ(r.sum, work(r.i));
	}
	TU_ASSERT_OK(tt_chan_release(results));
}

/* signal.NotifyContext with another P idle: its watch keeps to the
 * thread whose signal mask and watches it uses, and a signal cancels
 * the context. */
static void test_notify_signals_with_idle_p(void **state)
{
	(void)state;
	fan_until_spread();
	int sigs[] = {SIGUSR1};
	for (int round = 0; round < 8; round++) {
		tt_ctx *c;
		TU_ASSERT_OK(tt_ctx_notify_signals(&c, tt_ctx_background(),
						   sigs, 1));
		TU_ASSERT_OK(tt_sleep(TT_MILLISECOND)); /* the watch parks */
		TU_ASSERT_EQ(kill(getpid(), SIGUSR1), 0);
		TU_WAIT_FOR(tt_ctx_err(c) == -ECANCELED, 10 * TT_SECOND);
		TU_ASSERT_OK(tt_ctx_cancel(c)); /* stop */
		TU_ASSERT_OK(tt_ctx_release(c));
	}
}

int main(int argc, char **argv)
{
	static const tu_child_case cases[] = {
		{"deadlock", child_deadlock},
		{"overflow", child_overflow},
		{"count", child_count},
		{"default", child_default},
	};
	tu_child_dispatch(argc, argv, cases, sizeof cases / sizeof *cases);
	const struct CMUnitTest tests[] = {
		TU_TEST(test_procs_set_and_errors),
		TU_TEST(test_default_is_cpus),
		TU_TEST(test_fanout_spreads),
		TU_TEST(test_handoff_keeps_scope_labels_and_creator),
		TU_TEST(test_pthread_checker_skips_workers),
		TU_TEST(test_deadlock_across_ps),
		TU_TEST(test_io_with_another_threads_ctx),
		TU_TEST(test_overflow_on_worker_is_reported),
		TU_TEST(test_worker_flow_not_counted),
		TU_TEST(test_inbox_goroutine_counted),
		TU_TEST(test_handoff_counted_once),
		TU_TEST(test_idle_p_takes_queued),
		TU_TEST(test_unstarted_listed_at_entry),
		TU_TEST(test_this_thread_flag),
		TU_TEST(test_notify_signals_with_idle_p),
	};
	return cmocka_run_group_tests(tests, setup, teardown);
}
