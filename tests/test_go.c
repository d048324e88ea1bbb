/* tether tests — goroutines and the scheduler (include/tether/go.h). */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "internal.h"
#include "testutil.h"

#ifndef MADV_GUARD_INSTALL
#define MADV_GUARD_INSTALL 102
#endif

/* ---- ids ------------------------------------------------------------- */

/* The child's store and the parent's load are atomic: nothing but the
 * scheduling order orders them (the child runs first with one P; with
 * two it may run later, on the other thread, and the parent waits for
 * the store), and that is not synchronisation (a release/acquire pair
 * is, for the slot's reuse). */
static void record_goid(void *arg)
{
	__atomic_store_n((int64_t *)arg, tt_goid(), __ATOMIC_RELEASE);
}

static void test_go_ids_increase(void **state)
{
	(void)state;
	int64_t main_id = tt_goid();
	assert_true(main_id > 0);
	assert_int_equal(tt_goid(), main_id); /* stable */

	int64_t prev = 0;
	for (int i = 0; i < 50; i++) {
		int64_t seen = -1;
		int64_t id = tu_go(record_goid, &seen);
		TU_ASSERT_GT(id, 0);
		TU_ASSERT_NE(id, main_id);
		TU_ASSERT_GT(id, prev);
		/* The child ran (at once, with one P) and saw its own id. */
		TU_WAIT_FOR(__atomic_load_n(&seen, __ATOMIC_ACQUIRE) != -1,
			    5 * TT_SECOND);
		TU_ASSERT_EQ(__atomic_load_n(&seen, __ATOMIC_ACQUIRE), id);
		prev = id;
	}
	assert_int_equal(tt_goid(), main_id);
}

/* ---- bad arguments ------------------------------------------------------ */

static void nothing(void *arg)
{
	(void)arg;
}

static void send_done(void *arg)
{
	tu_done(arg);
}

static void test_go_bad_args(void **state)
{
	(void)state;
	int64_t before = tt_num_goroutine();

	TU_ASSERT_ERR(tt_go(NULL, NULL), -EINVAL);
	assert_true(strlen(tt_last_error()) > 0);

	tt_go_attr attr;
	memset(&attr, 0, sizeof attr);
	TU_ASSERT_ERR(tt_go_with(&attr, NULL, NULL), -EINVAL);

	attr.flags = 2; /* after TT_GO_THIS_THREAD, none is defined */
	TU_ASSERT_ERR(tt_go_with(&attr, nothing, NULL), -EINVAL);
	TU_ASSERT_CONTAINS(tt_last_error(), "flag");
	attr.flags = TT_GO_THIS_THREAD | 4;
	TU_ASSERT_ERR(tt_go_with(&attr, nothing, NULL), -EINVAL);
	attr.flags = 0x80000000u;
	TU_ASSERT_ERR(tt_go_with(&attr, nothing, NULL), -EINVAL);

	/* Nothing was started by the failed calls. */
	assert_int_equal(tt_num_goroutine(), before);

	/* A zeroed attr is the default. */
	memset(&attr, 0, sizeof attr);
	attr.name = "named";
	tt_chan *done = tu_chan(0, 1);
	TU_ASSERT_GT(tu_go_with(&attr, send_done, done), 0);
	/* With two Ps it may start after tt_go returns, and only then
	 * counts: the test's end must not come first. */
	TU_WAIT_DONE(done, 1, 5 * TT_SECOND);
	TU_ASSERT_OK(tt_chan_release(done));
}

/* ---- the child runs at once ------------------------------------------------ */

/* step is atomic: the parent reads it while the child is parked, and
 * what orders the two is the scheduling order, not synchronisation. */
typedef struct step_arg {
	int step;
	tt_chan *c;
} step_arg;

static void step_then_block(void *p)
{
	step_arg *a = p;
	__atomic_store_n(&a->step, 1, __ATOMIC_RELEASE);
	int v = 0;
	bool ok = false;
	TU_ASSERT_OK(tt_recv(a->c, &v, &ok));
	TU_ASSERT(ok);
	TU_ASSERT_EQ(v, 77);
	__atomic_store_n(&a->step, 2, __ATOMIC_RELEASE);
}

/* Atomic, like step: read by the parent as soon as tt_go returns. */
static void set_flag(void *p)
{
	__atomic_store_n((int *)p, 1, __ATOMIC_RELEASE);
}

static int load_flag(const int *p)
{
	return __atomic_load_n(p, __ATOMIC_ACQUIRE);
}

static void test_go_child_runs_first(void **state)
{
	(void)state;
	/* tt_go running the child first is one P's promise: with two, it
	 * may start on the other thread, later. */
	tu_one_p();
	/* A child that returns without blocking has finished when tt_go
	 * returns. */
	int flag = 0;
	int64_t n0 = tt_num_goroutine();
	tu_go(set_flag, &flag);
	assert_int_equal(load_flag(&flag), 1);
	assert_int_equal(tt_num_goroutine(), n0);

	/* A child that blocks ran up to the point where it blocked. */
	step_arg a = {.step = 0, .c = tu_chan(sizeof(int), 0)};
	tu_go(step_then_block, &a);
	assert_int_equal(__atomic_load_n(&a.step, __ATOMIC_ACQUIRE), 1);
	assert_int_equal(tt_num_goroutine(), n0 + 1);

	int v = 77;
	TU_ASSERT_OK(tt_send(a.c, &v));
	TU_WAIT_FOR(__atomic_load_n(&a.step, __ATOMIC_ACQUIRE) == 2,
		    5 * TT_SECOND);
	TU_ASSERT_OK(tt_chan_release(a.c));
}

/* ---- tt_yield: FIFO round robin ----------------------------------------------- */

#define RR_G 5
#define RR_ROUNDS 4

/* The fields are atomic: the goroutines take turns by the scheduling
 * order alone, which is not synchronisation. The counters are
 * read-modify-writes (acquire-release), so once finished reaches RR_G the
 * log is the workers' whole log. */
typedef struct rr_state {
	int log[RR_G * RR_ROUNDS + 16];
	int nlog;
	int finished;
} rr_state;

typedef struct rr_arg {
	rr_state *st;
	int me;
} rr_arg;

static void rr_worker(void *p)
{
	rr_arg *a = p;
	for (int k = 0; k < RR_ROUNDS; k++) {
		int n = __atomic_fetch_add(&a->st->nlog, 1, __ATOMIC_ACQ_REL);
		__atomic_store_n(&a->st->log[n], a->me, __ATOMIC_RELEASE);
		tt_yield();
	}
	__atomic_fetch_add(&a->st->finished, 1, __ATOMIC_ACQ_REL);
}

static void test_yield_round_robin(void **state)
{
	(void)state;
	/* Child-first and the run queue's round robin are one P's. */
	tu_one_p();
	rr_state st;
	memset(&st, 0, sizeof st);
	rr_arg args[RR_G];
	for (int i = 0; i < RR_G; i++) {
		args[i] = (rr_arg){&st, i};
		tu_go(rr_worker, &args[i]);
		/* Each child ran until its first yield, then we continued
		 * first (go.h). */
		assert_int_equal(__atomic_load_n(&st.nlog, __ATOMIC_ACQUIRE),
				 i + 1);
		assert_int_equal(__atomic_load_n(&st.log[i], __ATOMIC_ACQUIRE),
				 i);
	}
	/* Yield until all are done; every runnable goroutine gets one turn
	 * per round, in the order they became runnable. */
	while (__atomic_load_n(&st.finished, __ATOMIC_ACQUIRE) < RR_G)
		tt_yield();
	assert_int_equal(st.nlog, RR_G * RR_ROUNDS);
	for (int k = 0; k < RR_ROUNDS; k++)
		for (int i = 0; i < RR_G; i++)
			TU_ASSERT_EQ(st.log[k * RR_G + i], i);
}

/* The caller of tt_go is first in line once the child yields, ahead of
 * goroutines that were already runnable. */
/* Appended to by all three with atomics (acquire-release): only the
 * scheduling order orders them. */
typedef struct order_state {
	char log[32];
	int n;
} order_state;

static void order_log(order_state *o, char c)
{
	int n = __atomic_fetch_add(&o->n, 1, __ATOMIC_ACQ_REL);
	__atomic_store_n(&o->log[n], c, __ATOMIC_RELEASE);
}

static void order_a(void *p)
{
	order_state *o = p;
	order_log(o, 'a');
	tt_yield();
	order_log(o, 'A');
}

static void order_b(void *p)
{
	order_state *o = p;
	order_log(o, 'b');
	tt_yield();
	order_log(o, 'B');
}

static void test_yield_caller_first(void **state)
{
	(void)state;
	/* Child-first and the run queue's order are one P's. */
	tu_one_p();
	order_state o;
	memset(&o, 0, sizeof o);
	tu_go(order_a, &o); /* a runs, yields; we continue before it */
	order_log(&o, 'm');
	tu_go(order_b, &o); /* b runs, yields; we continue before a and b */
	order_log(&o, 'n');
	tt_yield(); /* a, then b, then us */
	order_log(&o, 'o');
	char got[sizeof o.log] = {0};
	for (int i = 0; i < o.n; i++)
		got[i] = __atomic_load_n(&o.log[i], __ATOMIC_ACQUIRE);
	assert_string_equal(got, "ambnABo");
}

static void test_yield_alone(void **state)
{
	(void)state;
	/* With nothing else runnable, yield returns at once. */
	int64_t t0 = tt_now();
	for (int i = 0; i < 1000; i++)
		tt_yield();
	TU_ASSERT_LT(tt_now() - t0, TT_SECOND);
}

/* ---- tt_num_goroutine ----------------------------------------------------------- */

typedef struct park_arg {
	tt_chan *c;
	int started; /* before each parks */
	int woke;
	int closed_seen;
} park_arg;

/* The counters are shared by all the parked goroutines, which the close
 * wakes together: atomic. (The test reads them once tt_num_goroutine()
 * has seen the goroutines end; the count is no synchronisation, as Go's
 * NumGoroutine is none, so woke is released and acquired.) */
static void park_on_recv(void *p)
{
	park_arg *a = p;
	int v = 1;
	bool ok = true;
	__atomic_fetch_add(&a->started, 1, __ATOMIC_RELAXED);
	TU_ASSERT_OK(tt_recv(a->c, &v, &ok));
	if (!ok && v == 0)
		__atomic_fetch_add(&a->closed_seen, 1, __ATOMIC_RELAXED);
	/* Last, released: a reader that acquires all ten sees each
	 * goroutine done with a (at two Ps, on another thread). */
	__atomic_fetch_add(&a->woke, 1, __ATOMIC_RELEASE);
}

typedef struct count_arg {
	int64_t inside;
	tt_chan *done;
} count_arg;

static void count_inside(void *p)
{
	count_arg *a = p;
	a->inside = tt_num_goroutine();
	tu_done(a->done);
}

static void *chan_len_thread(void *p)
{
	(void)tt_chan_len(p);
	return NULL;
}

/* With more than one P: make c shared (chan.h) by a use from another
 * thread, so that goroutines of other Ps wait on it themselves. Before
 * that, a goroutine of another thread that must wait on it is waited for
 * by a goroutine of c's thread (a proxy, post.c), which counts in
 * tt_num_goroutine too. */
static void share_chan(tt_chan *c)
{
	if (tt_runtime_procs() == 1)
		return;
	pthread_t th;
	assert_int_equal(pthread_create(&th, NULL, chan_len_thread, c), 0);
	tu_join_parked(th);
}

static void test_num_goroutine_up_down(void **state)
{
	(void)state;
	int64_t base = tt_num_goroutine();
	assert_true(base >= 1); /* counts the main goroutine */

	/* With two Ps the child may start later, on the other thread:
	 * its done token says it has counted. */
	count_arg ca = {.done = tu_chan(0, 1)};
	tu_go(count_inside, &ca);
	TU_WAIT_DONE(ca.done, 1, 5 * TT_SECOND);
	assert_int_equal(ca.inside, base + 1);
	TU_WAIT_FOR(tt_num_goroutine() == base, 5 * TT_SECOND);
	TU_ASSERT_OK(tt_chan_release(ca.done));

	/* Each one counts once it has started (at once with one P). */
	park_arg a = {.c = tu_chan(sizeof(int), 0)};
	share_chan(a.c);
	for (int i = 1; i <= 10; i++) {
		tu_go(park_on_recv, &a);
		TU_WAIT_FOR(tt_num_goroutine() == base + i, 5 * TT_SECOND);
	}
	/* Wake them one at a time: the count comes down one by one. */
	for (int i = 0; i < 5; i++) {
		int v = i + 1;
		TU_ASSERT_OK(tt_send(a.c, &v));
		TU_WAIT_FOR(tt_num_goroutine() == base + 9 - i, 5 * TT_SECOND);
	}
	TU_ASSERT_OK(tt_chan_close(a.c));
	TU_WAIT_FOR(tt_num_goroutine() == base, 5 * TT_SECOND);
	assert_int_equal(__atomic_load_n(&a.woke, __ATOMIC_ACQUIRE), 10);
	assert_int_equal(a.closed_seen, 5);
	TU_ASSERT_OK(tt_chan_release(a.c));

	tt_runtime_info info;
	TU_ASSERT_OK(tt_runtime_info_get(&info));
	assert_int_equal(info.goroutines, tt_num_goroutine());
}

/* Every thread's first goroutine counts while the thread's scheduler
 * exists. */
typedef struct thread_arg {
	pthread_mutex_t mu;
	pthread_cond_t cv;
	int phase; /* 1: started tether; 2: may exit */
	int64_t goid;
	int64_t count_inside;
} thread_arg;

static void *thread_main(void *p)
{
	thread_arg *a = p;
	int64_t id = tt_goid(); /* makes this thread's scheduler */
	pthread_mutex_lock(&a->mu);
	a->goid = id;
	a->count_inside = tt_num_goroutine();
	a->phase = 1;
	pthread_cond_broadcast(&a->cv);
	while (a->phase != 2)
		pthread_cond_wait(&a->cv, &a->mu);
	pthread_mutex_unlock(&a->mu);
	return NULL;
}

static void test_num_goroutine_threads(void **state)
{
	(void)state;
	TU_REQUIRE_THREADS();
	int64_t base = tt_num_goroutine();
	thread_arg a;
	memset(&a, 0, sizeof a);
	pthread_mutex_init(&a.mu, NULL);
	pthread_cond_init(&a.cv, NULL);
	pthread_t th;
	assert_int_equal(pthread_create(&th, NULL, thread_main, &a), 0);
	pthread_mutex_lock(&a.mu);
	while (a.phase != 1)
		pthread_cond_wait(&a.cv, &a.mu);
	pthread_mutex_unlock(&a.mu);

	/* The other thread's first goroutine has its own, distinct id and
	 * is counted in every scheduler's view. */
	assert_true(a.goid > 0);
	assert_true(a.goid != tt_goid());
	assert_int_equal(a.count_inside, base + 1);
	assert_int_equal(tt_num_goroutine(), base + 1);

	pthread_mutex_lock(&a.mu);
	a.phase = 2;
	pthread_cond_broadcast(&a.cv);
	pthread_mutex_unlock(&a.mu);
	assert_int_equal(pthread_join(th, NULL), 0);
	pthread_mutex_destroy(&a.mu);
	pthread_cond_destroy(&a.cv);

	/* The thread has ended, and with it its first goroutine: "goroutines
	 * that exist now". */
	assert_int_equal(tt_num_goroutine(), base);
}

/* ---- tt_goexit -------------------------------------------------------------------- */

typedef struct exit_arg {
	int before;
	int after;
	tt_chan *done;
} exit_arg;

/* Goexit from a few calls down; the recursion goes through a volatile
 * pointer so the compiler does not see that every path ends in
 * tt_goexit. */
static void exit_deep(exit_arg *a, int depth);
static void (*volatile exit_deep_ptr)(exit_arg *, int) = exit_deep;

static void exit_deep(exit_arg *a, int depth)
{
	if (depth == 0) {
		/* shared by the 20 workers: atomic */
		__atomic_fetch_add(&a->before, 1, __ATOMIC_RELAXED);
		tu_done(a->done);
		tt_goexit();
	}
	exit_deep_ptr(a, depth - 1);
	a->after++; /* never reached */
}

static void exit_worker(void *p)
{
	exit_arg *a = p;
	exit_deep(a, 8);
	a->after++; /* never reached */
}

static void exit_after_block(void *p)
{
	exit_arg *a = p;
	int v;
	TU_ASSERT_OK(tt_recv(a->done, &v, NULL));
	__atomic_fetch_add(&a->before, 1, __ATOMIC_RELAXED);
	tt_goexit();
}

static void test_goexit(void **state)
{
	(void)state;
	int64_t base = tt_num_goroutine();
	exit_arg a = {.done = tu_chan(0, 100)};
	for (int i = 0; i < 20; i++)
		tu_go(exit_worker, &a);
	TU_WAIT_DONE(a.done, 20, 5 * TT_SECOND);
	TU_WAIT_FOR(tt_num_goroutine() == base, 5 * TT_SECOND);
	assert_int_equal(a.before, 20);
	assert_int_equal(a.after, 0);
	TU_ASSERT_OK(tt_chan_release(a.done));

	/* Goexit after having parked and been woken. */
	exit_arg b = {.done = tu_chan(sizeof(int), 0)};
	share_chan(b.done);
	tu_go(exit_after_block, &b);
	/* Counted once started (with two Ps, maybe later on the other). */
	TU_WAIT_FOR(tt_num_goroutine() == base + 1, 5 * TT_SECOND);
	int v = 5;
	TU_ASSERT_OK(tt_send(b.done, &v));
	TU_WAIT_FOR(tt_num_goroutine() == base, 5 * TT_SECOND);
	assert_int_equal(__atomic_load_n(&b.before, __ATOMIC_RELAXED), 1);
	TU_ASSERT_OK(tt_chan_release(b.done));
}

/* ---- stacks ------------------------------------------------------------------------- */

/* Recursion that uses about `frame` bytes per level and cannot be turned
 * into a loop: each level's buffer is read after the call returns. */
static __attribute__((noinline)) unsigned long recurse(int depth)
{
	volatile unsigned char buf[256];
	for (size_t i = 0; i < sizeof buf; i += 64)
		buf[i] = (unsigned char)(depth + (int)i);
	if (depth == 0)
		return buf[0];
	unsigned long below = recurse(depth - 1);
	return below + buf[depth % 4 * 64] + 1;
}

typedef struct deep_arg {
	int depth;
	unsigned long result;
} deep_arg;

/* The result is read once it is there (as soon as tt_go returns with
 * one P, where the child runs first and does not block; later with two,
 * where it may run on the other thread): a release store, read with an
 * acquire load. */
static void deep_worker(void *p)
{
	deep_arg *a = p;
	__atomic_store_n(&a->result, recurse(a->depth), __ATOMIC_RELEASE);
}

static unsigned long expected_recurse(int depth)
{
	unsigned long r = 0; /* depth 0 returns its buf[0], which is 0 */
	for (int d = 1; d <= depth; d++)
		r += (unsigned char)(d + (d % 4) * 64) + 1;
	return r;
}

static void run_deep(const tt_go_attr *attr, int depth)
{
	deep_arg a = {.depth = depth};
	if (attr)
		tu_go_with(attr, deep_worker, &a);
	else
		tu_go(deep_worker, &a);
	TU_WAIT_FOR(__atomic_load_n(&a.result, __ATOMIC_ACQUIRE) != 0,
		    5 * TT_SECOND);
	assert_int_equal(__atomic_load_n(&a.result, __ATOMIC_ACQUIRE),
			 expected_recurse(depth));
}

static void test_stack_deep_recursion(void **state)
{
	(void)state;
	/* Frames are a little over 256 bytes (about 400 under ASan): 100
	 * levels use about 30 KiB of the default 64 KiB. */
	run_deep(NULL, TU_SCALE(100, 60));

	/* A 1 MiB stack holds 2500 levels (about 750 KiB). */
	tt_go_attr attr;
	memset(&attr, 0, sizeof attr);
	attr.stack_size = 1024 * 1024;
	run_deep(&attr, TU_SCALE(2500, 1500));

	/* A 256 KiB stack holds 500 levels (about 150 KiB). */
	attr.stack_size = 256 * 1024;
	run_deep(&attr, TU_SCALE(500, 400));
}

typedef struct big_local_arg {
	size_t bytes;
	unsigned sum;
} big_local_arg;

static void big_local(void *p)
{
	big_local_arg *a = p;
	unsigned char *buf = __builtin_alloca(a->bytes);
	memset(buf, 0x5a, a->bytes);
	unsigned sum = 0;
	for (size_t i = 0; i < a->bytes; i += 4096)
		sum += buf[i];
	sum += buf[a->bytes - 1];
	/* read once it is there: see deep_worker (never 0: 0x5a at the
	 * end) */
	__atomic_store_n(&a->sum, sum, __ATOMIC_RELEASE);
}

static unsigned big_local_sum(const big_local_arg *a)
{
	TU_WAIT_FOR(__atomic_load_n(&a->sum, __ATOMIC_ACQUIRE) != 0,
		    5 * TT_SECOND);
	return __atomic_load_n(&a->sum, __ATOMIC_ACQUIRE);
}

static void test_stack_size_attr(void **state)
{
	(void)state;
	tt_runtime_info info;
	TU_ASSERT_OK(tt_runtime_info_get(&info));

	/* "Usable stack bytes": a 512 KiB stack holds 448 KiB of locals. */
	tt_go_attr attr;
	memset(&attr, 0, sizeof attr);
	attr.stack_size = 512 * 1024;
	big_local_arg a = {.bytes = 448 * 1024};
	tu_go_with(&attr, big_local, &a);
	assert_int_equal(big_local_sum(&a),
			 (a.bytes + 4095) / 4096 * 0x5a + 0x5a);

	/* An odd size is rounded up to pages, and tiny ones to at least
	 * 8 KiB: 6 KiB of locals fits in a stack asked to be 1 byte. */
	attr.stack_size = 1;
	big_local_arg b = {.bytes = TU_SCALE(6 * 1024, 2 * 1024)};
	tu_go_with(&attr, big_local, &b);
	assert_int_equal(big_local_sum(&b),
			 (b.bytes + 4095) / 4096 * 0x5a + 0x5a);

	attr.stack_size = 100000; /* not a page multiple */
	big_local_arg c = {.bytes = 80 * 1024};
	tu_go_with(&attr, big_local, &c);
	assert_int_equal(big_local_sum(&c),
			 (c.bytes + 4095) / 4096 * 0x5a + 0x5a);

	/* The default size is usable too (most of it). */
	big_local_arg d = {.bytes = info.stack_size / 2};
	tu_go(big_local, &d);
	assert_int_equal(big_local_sum(&d),
			 (d.bytes + 4095) / 4096 * 0x5a + 0x5a);
}

/* The usable bytes of the stack the calling goroutine runs on. */
static void record_stack_bytes(void *p)
{
	size_t *out = p;
	const tt__g *g = tt__current();
	/* read once it is there: see deep_worker */
	__atomic_store_n(out, (size_t)(g->stack_hi - g->stack_lo),
			 __ATOMIC_RELEASE);
}

/* go.h: stack_size over TT_STACK_SIZE_MAX is -EINVAL with a message (it
 * once wrapped while being rounded up to pages, and SIZE_MAX crashed);
 * 0 is the default; TT_STACK_SIZE_MAX itself is allowed. */
static void test_stack_size_limit(void **state)
{
	(void)state;
	int64_t before = tt_num_goroutine();
	tt_go_attr attr;
	memset(&attr, 0, sizeof attr);
	const size_t bad[] = {SIZE_MAX, SIZE_MAX - 4095, SIZE_MAX / 2,
			      TT_STACK_SIZE_MAX + 1};
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		for (int shared = 0; shared < 2; shared++) {
			attr.stack_size = bad[i];
			attr.shared_stack = shared;
			TU_ASSERT_ERR(tt_go_with(&attr, nothing, NULL),
				      -EINVAL);
			TU_ASSERT_CONTAINS(tt_last_error(),
					   "TT_STACK_SIZE_MAX");
			char num[32];
			snprintf(num, sizeof num, "%zu", bad[i]);
			TU_ASSERT_CONTAINS(tt_last_error(), num);
		}
	}
	assert_int_equal(tt_num_goroutine(), before);

	tt_runtime_info info;
	TU_ASSERT_OK(tt_runtime_info_get(&info));
	size_t got = 0;
	attr.shared_stack = false;
	attr.stack_size = 0;
	tu_go_with(&attr, record_stack_bytes, &got);
	TU_WAIT_FOR(__atomic_load_n(&got, __ATOMIC_ACQUIRE) != 0,
		    5 * TT_SECOND);
	/* "Stack bytes, the runtime's record included": less than a KiB
	 * of it is the record. */
	TU_ASSERT_RANGE(__atomic_load_n(&got, __ATOMIC_ACQUIRE),
			info.stack_size - 1024, info.stack_size);

	attr.stack_size = TT_STACK_SIZE_MAX;
	got = 0;
	tu_go_with(&attr, record_stack_bytes, &got);
	TU_WAIT_FOR(__atomic_load_n(&got, __ATOMIC_ACQUIRE) != 0,
		    5 * TT_SECOND);
	TU_ASSERT_RANGE(__atomic_load_n(&got, __ATOMIC_ACQUIRE),
			TT_STACK_SIZE_MAX - 1024, TT_STACK_SIZE_MAX);
}

/* go.h: "a loop that starts goroutines which finish without blocking
 * never holds more than one stack". */
static void test_stack_reuse(void **state)
{
	(void)state;
	/* One P's promise: each child runs first and ends before tt_go
	 * returns, so one stack serves them all; with two, children run
	 * on both threads at once, each with its own pool. */
	tu_one_p();
	int flag = 0;
	tu_go(set_flag, &flag); /* warm the pool */
	tt_runtime_info before, after;
	TU_ASSERT_OK(tt_runtime_info_get(&before));
	for (int i = 0; i < 10000; i++)
		tu_go(set_flag, &flag);
	TU_ASSERT_OK(tt_runtime_info_get(&after));
	assert_int_equal(load_flag(&flag), 1);
	TU_ASSERT_LE(after.stacks_mapped - before.stacks_mapped, 1);
	TU_ASSERT_LE(after.stacks_pooled, after.stacks_mapped);
}

/* ---- tt_runtime_info ---------------------------------------------------------------- */

static bool kernel_has_guard_install(void)
{
	long pg = sysconf(_SC_PAGESIZE);
	char *p = mmap(NULL, (size_t)pg * 4, PROT_READ | PROT_WRITE,
		       MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (p == MAP_FAILED)
		return false;
	bool ok = madvise(p, (size_t)pg, MADV_GUARD_INSTALL) == 0;
	munmap(p, (size_t)pg * 4);
	return ok;
}

static void test_runtime_info(void **state)
{
	(void)state;
	int flag = 0;
	int64_t base = tt_num_goroutine();
	tu_go(set_flag, &flag); /* at least one stack exists */
	/* With two Ps it may run later, on the other thread. */
	TU_WAIT_FOR(load_flag(&flag) == 1 && tt_num_goroutine() == base,
		    5 * TT_SECOND);

	tt_runtime_info info;
	memset(&info, 0xff, sizeof info);
	TU_ASSERT_OK(tt_runtime_info_get(&info));

	long pg = sysconf(_SC_PAGESIZE);
	assert_int_equal(info.page_size, (size_t)pg);
	TU_ASSERT_GE(info.guard_size, (size_t)pg);
	assert_int_equal(info.guard_size % (size_t)pg, 0);
	assert_int_equal(info.stack_size % (size_t)pg, 0);
	TU_ASSERT_GE(info.stack_size, 8 * 1024);
	if (getenv("TETHER_STACK_SIZE") == NULL) {
#if TU_ASAN
		/* The library gives ASan builds a larger default (redzones
		 * grow frames); go.h promises 64 KiB. */
		TU_ASSERT_GE(info.stack_size, 64 * 1024);
#elif defined(__aarch64__)
		/* Room for a stack dump from inside a goroutine there. */
		assert_int_equal(info.stack_size, 128 * 1024);
#else
		assert_int_equal(info.stack_size, 64 * 1024);
#endif
	}
	assert_int_equal(info.goroutines, tt_num_goroutine());
	TU_ASSERT_GE(info.stacks_mapped, 1);
	TU_ASSERT_GE(info.stacks_pooled, 1); /* set_flag's stack came back */
	TU_ASSERT_LE(info.stacks_pooled, info.stacks_mapped);

	assert_true(info.guard_mode == TT_GUARD_MADVISE ||
		    info.guard_mode == TT_GUARD_MPROTECT);
	if (info.guard_mode == TT_GUARD_MADVISE)
		assert_int_equal(info.guard_budget, -1);
	else
		TU_ASSERT_GE(info.guard_budget, 0);

	/* DESIGN.md: use MADV_GUARD_INSTALL where the kernel has it (unless
	 * the fallback is forced for testing). qemu-user accepts the advice
	 * and ignores it; tether finds out and falls back. */
	if (getenv("TETHER_GUARD") == NULL && !tu_emulated() &&
	    kernel_has_guard_install())
		assert_int_equal(info.guard_mode, TT_GUARD_MADVISE);
}

/* ---- many goroutines ----------------------------------------------------------------- */

static void test_many_goroutines(void **state)
{
	(void)state;
	tt_runtime_info info;
	TU_ASSERT_OK(tt_runtime_info_get(&info));
	/* Under an emulator, 20,000: still many stack arenas. */
	long n = 100000;
	if (tu_emulated())
		n = 20000;
	/* Under TSan each goroutine's fiber maps a shadow stack of its own
	 * (two more mappings, not in the guard budget): 10,000, which keeps
	 * within vm.max_map_count in either guard mode. */
	if (TU_TSAN)
		n = 10000;
	if (info.guard_mode == TT_GUARD_MPROTECT &&
	    info.guard_budget - 64 < n)
		n = (long)info.guard_budget - 64;
	assert_true(n > 1000);

	int64_t base = tt_num_goroutine();
	park_arg a = {.c = tu_chan(sizeof(int), 0)};
	share_chan(a.c);
	for (long i = 0; i < n; i++)
		tu_go(park_on_recv, &a);
	/* With two Ps the last ones may still be on their way, or queued
	 * unstarted (counted, with no stack yet): until all have begun. */
	TU_WAIT_FOR(__atomic_load_n(&a.started, __ATOMIC_RELAXED) == n,
		    30 * TT_SECOND);
	TU_WAIT_FOR(tt_num_goroutine() == base + n, 30 * TT_SECOND);
	assert_int_equal(__atomic_load_n(&a.woke, __ATOMIC_RELAXED), 0);

	TU_ASSERT_OK(tt_chan_close(a.c));
	/* Closing readied them all; they run when we block. */
	TU_WAIT_FOR(tt_num_goroutine() == base, 30 * TT_SECOND);
	assert_int_equal(a.woke, n);
	assert_int_equal(a.closed_seen, n);
	assert_int_equal(tt_num_goroutine(), base);
	TU_ASSERT_OK(tt_chan_release(a.c));

	TU_ASSERT_OK(tt_runtime_info_get(&info));
	TU_ASSERT_GE(info.stacks_mapped, n);
	TU_ASSERT_LE(info.stacks_pooled, info.stacks_mapped);
}

/* ---- the mprotect fallback ---------------------------------------------- */

/* In a fresh process with the guard fallback forced (TETHER_GUARD=mprotect,
 * read when the runtime starts): stacks are capped by the mapping budget,
 * and running out is an error from tt_go (-ENOMEM or -EAGAIN, go.h), not
 * a crash. Stacks freed by ending goroutines are usable again. */
static void child_mprotect_budget(void)
{
	setenv("TETHER_GUARD", "mprotect", 1);
	tt_runtime_info info;
	TU_ASSERT_OK(tt_runtime_info_get(&info));
	TU_ASSERT_EQ(info.guard_mode, TT_GUARD_MPROTECT);
	TU_ASSERT_GT(info.guard_budget, 1000);
	int64_t budget0 = info.guard_budget;

	park_arg a = {.c = tu_chan(sizeof(int), 0)};
	share_chan(a.c);
	long started = 0;
	int64_t r;
	while ((r = tt_go(park_on_recv, &a)) > 0)
		started++;
	TU_ASSERT_MSG(r == -ENOMEM || r == -EAGAIN,
		      "tt_go returned %lld (%s) when out of stacks",
		      (long long)r, tu_errname(r));
	TU_ASSERT(strlen(tt_last_error()) > 0);
	fprintf(stderr, "budget %lld, started %ld: %s\n", (long long)budget0,
		started, tt_last_error());
	TU_ASSERT_GE(started, budget0 / 2);
	TU_ASSERT_LE(started, budget0 + 64);
	/* With two Ps the last ones may still be on their way. */
	TU_WAIT_FOR(tt_num_goroutine() == 1 + started, 60 * TT_SECOND);
	TU_ASSERT_OK(tt_runtime_info_get(&info));
	TU_ASSERT_LE(info.guard_budget, 64);

	TU_ASSERT_OK(tt_chan_close(a.c));
	TU_WAIT_FOR(tt_num_goroutine() == 1, 60 * TT_SECOND);
	TU_ASSERT_EQ(a.woke, started);
	/* Their stacks are reused: starting goroutines works again. */
	int flag = 0;
	TU_ASSERT_GT(tt_go(set_flag, &flag), 0);
	TU_WAIT_FOR(load_flag(&flag) == 1, 5 * TT_SECOND);
	a.woke = 0;
	for (int i = 0; i < 100; i++)
		TU_ASSERT_GT(tt_go(park_on_recv, &a), 0);
	/* The channel is closed: each returns at once, once it runs (with
	 * two Ps it may be queued yet). */
	TU_WAIT_FOR(__atomic_load_n(&a.woke, __ATOMIC_ACQUIRE) == 100,
		    30 * TT_SECOND);
	TU_ASSERT_OK(tt_chan_release(a.c));
	fprintf(stderr, "tu-ok\n");
}

static void test_mprotect_fallback(void **state)
{
	(void)state;
	/* TSan's fibers take mappings the budget does not count (see
	 * test_sched's test_guard_budget_mprotect). */
	if (TU_TSAN)
		skip();
	tu_child c;
	assert_int_equal(tu_spawn_self("mprotect_budget", 300 * TT_SECOND, &c),
			 0);
	TU_ASSERT_CHILD_EXIT(&c, 0);
	TU_ASSERT_CONTAINS(c.err, "tu-ok");
	tu_child_free(&c);
}

static const tu_child_case child_cases[] = {
	{"mprotect_budget", child_mprotect_budget},
};

int main(int argc, char **argv)
{
	tu_child_dispatch(argc, argv, child_cases,
			  sizeof child_cases / sizeof child_cases[0]);
	const struct CMUnitTest tests[] = {
		TU_TEST(test_go_ids_increase),
		TU_TEST(test_go_bad_args),
		TU_TEST(test_go_child_runs_first),
		TU_TEST(test_yield_round_robin),
		TU_TEST(test_yield_caller_first),
		TU_TEST(test_yield_alone),
		TU_TEST(test_num_goroutine_up_down),
		TU_TEST(test_num_goroutine_threads),
		TU_TEST(test_goexit),
		TU_TEST(test_stack_deep_recursion),
		TU_TEST(test_stack_size_attr),
		TU_TEST(test_stack_size_limit),
		TU_TEST(test_stack_reuse),
		TU_TEST(test_runtime_info),
		TU_TEST(test_many_goroutines),
		TU_TEST(test_mprotect_fallback),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
