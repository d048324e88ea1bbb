/* Shared-stack goroutines (tt_go_attr.shared_stack): every blocking call
 * works when the goroutines' frames are copied out while they are parked
 * and other shared-stack goroutines run on the same region; values on
 * their stacks cross channels in both directions. */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include "testutil.h"

#define MS TT_MILLISECOND

static const tt_go_attr shared_attr = {.shared_stack = true};

static int64_t go_shared(tt_func fn, void *arg)
{
	return tu_go_with(&shared_attr, fn, arg);
}

/* Dirty the region: another shared-stack goroutine runs deep and leaves
 * garbage where a parked one's frames were. */
static void scribble(void *arg)
{
	tt_chan *done = arg;
	volatile char junk[8192];
	memset((char *)junk, 0xa5, sizeof junk);
	tu_done(done);
}

/* ---- channels ------------------------------------------------------------ */

typedef struct pair {
	tt_chan *c, *done;
	int n;
} pair;

/* Receives into a local (on the shared stack) while parked. */
static void receiver(void *p)
{
	pair *a = p;
	for (int i = 0; i < a->n; i++) {
		char buf[40];
		memset(buf, 0, sizeof buf);
		bool ok = false;
		TU_ASSERT_OK(tt_chan_recv(a->c, buf, sizeof buf, &ok));
		TU_ASSERT(ok);
		char want[40];
		memset(want, 0, sizeof want);
		snprintf(want, sizeof want, "value %d", i);
		TU_ASSERT_MEM_EQ(buf, want, sizeof buf);
	}
	tu_done(a->done);
}

/* Sends from a local (on the shared stack) while parked. */
static void sender(void *p)
{
	pair *a = p;
	for (int i = 0; i < a->n; i++) {
		char buf[40];
		memset(buf, 0, sizeof buf);
		snprintf(buf, sizeof buf, "value %d", i);
		TU_ASSERT_OK(tt_chan_send(a->c, buf, sizeof buf));
	}
	tu_done(a->done);
}

static void test_chan_handoff_both_directions(void **state)
{
	(void)state;
	enum { N = 200 };
	tt_chan *done = tu_chan(0, 0);
	for (int cap = 0; cap <= 2; cap++) {
		/* shared receiver + shared sender; shared + normal pairs;
		 * scribblers in between so the region is reused. */
		for (int mode = 0; mode < 3; mode++) {
			pair a = {tu_chan(40, cap), done, N};
			if (mode == 0 || mode == 1)
				go_shared(receiver, &a);
			else
				tu_go(receiver, &a);
			go_shared(scribble, done);
			if (mode == 0 || mode == 2)
				go_shared(sender, &a);
			else
				tu_go(sender, &a);
			go_shared(scribble, done);
			TU_WAIT_DONE(done, 4, 10 * TT_SECOND);
			TU_ASSERT_OK(tt_chan_release(a.c));
		}
	}
	TU_ASSERT_OK(tt_chan_release(done));
}

static void closed_receiver(void *p)
{
	pair *a = p;
	int64_t v = 77;
	bool ok = true;
	TU_ASSERT_OK(tt_chan_recv(a->c, &v, sizeof v, &ok));
	TU_ASSERT(!ok);
	TU_ASSERT_EQ(v, 0); /* close zeroed the copied-out local */
	tu_done(a->done);
}

static void test_close_wakes_parked(void **state)
{
	(void)state;
	tt_chan *done = tu_chan(0, 0);
	pair a = {tu_chan(sizeof(int64_t), 0), done, 0};
	for (int i = 0; i < 10; i++)
		go_shared(closed_receiver, &a);
	go_shared(scribble, done);
	TU_ASSERT_OK(tt_chan_close(a.c));
	TU_WAIT_DONE(done, 11, 5 * TT_SECOND);
	TU_ASSERT_OK(tt_chan_release(a.c));
	TU_ASSERT_OK(tt_chan_release(done));
}

/* ---- select ----------------------------------------------------------------- */

enum { NCASES = 40 };

typedef struct sel_arg {
	tt_chan *cs[NCASES];
	tt_chan *done;
	int rounds;
} sel_arg;

static void selector(void *p)
{
	sel_arg *a = p;
	for (int r = 0; r < a->rounds; r++) {
		int64_t vals[NCASES];
		bool oks[NCASES];
		tt_case cases[NCASES];
		for (int i = 0; i < NCASES; i++) {
			vals[i] = -1;
			cases[i] = (tt_case){TT_CASE_RECV, a->cs[i], &vals[i],
					     sizeof vals[i], &oks[i]};
		}
		int k = tt_select(cases, NCASES, TT_FOREVER);
		TU_ASSERT_RANGE(k, 0, NCASES - 1);
		TU_ASSERT(oks[k]);
		TU_ASSERT_EQ(vals[k], (int64_t)(r * 1000 + k));
		for (int i = 0; i < NCASES; i++)
			if (i != k)
				TU_ASSERT_EQ(vals[i], -1);
	}
	tu_done(a->done);
}

static void test_select_many_cases(void **state)
{
	(void)state;
	enum { ROUNDS = 100 };
	tt_chan *done = tu_chan(0, 0);
	sel_arg a = {.done = done, .rounds = ROUNDS};
	for (int i = 0; i < NCASES; i++)
		a.cs[i] = tu_chan(sizeof(int64_t), 0);
	go_shared(selector, &a);
	uint64_t rng = tu_seed("select_many_cases");
	for (int r = 0; r < ROUNDS; r++) {
		go_shared(scribble, done);
		TU_WAIT_DONE(done, 1, 5 * TT_SECOND);
		int k = (int)tu_rand_n(&rng, NCASES);
		int64_t v = r * 1000 + k;
		TU_ASSERT_OK(tt_chan_send(a.cs[k], &v, sizeof v));
	}
	TU_WAIT_DONE(done, 1, 5 * TT_SECOND);
	for (int i = 0; i < NCASES; i++)
		TU_ASSERT_OK(tt_chan_release(a.cs[i]));
	TU_ASSERT_OK(tt_chan_release(done));
}

/* A select that sends a value from its stack to a shared receiver. */
static void select_sender(void *p)
{
	pair *a = p;
	for (int i = 0; i < a->n; i++) {
		char buf[40];
		memset(buf, 0, sizeof buf);
		snprintf(buf, sizeof buf, "value %d", i);
		tt_case k[2] = {
			{TT_CASE_SEND, a->c, buf, sizeof buf, NULL},
			{TT_CASE_RECV, NULL, NULL, 0, NULL},
		};
		TU_ASSERT_EQ(tt_select(k, 2, TT_FOREVER), 0);
	}
	tu_done(a->done);
}

static void test_select_send_from_stack(void **state)
{
	(void)state;
	tt_chan *done = tu_chan(0, 0);
	pair a = {tu_chan(40, 0), done, 100};
	go_shared(select_sender, &a);
	go_shared(scribble, done);
	go_shared(receiver, &a);
	TU_WAIT_DONE(done, 3, 5 * TT_SECOND);
	TU_ASSERT_OK(tt_chan_release(a.c));
	TU_ASSERT_OK(tt_chan_release(done));
}

/* ---- sync, timers, ctx, fds ------------------------------------------------- */

typedef struct sync_arg {
	tt_mutex *m;
	tt_waitgroup *wg;
	tt_cond *cv;
	long *counter;
	int *ready;
} sync_arg;

static void locker(void *p)
{
	sync_arg *a = p;
	for (int i = 0; i < 50; i++) {
		TU_ASSERT_OK(tt_mutex_lock(a->m));
		long v = *a->counter;
		tt_yield(); /* others park on the mutex meanwhile */
		*a->counter = v + 1;
		TU_ASSERT_OK(tt_mutex_unlock(a->m));
	}
	TU_ASSERT_OK(tt_mutex_lock(a->m));
	while (!*a->ready)
		TU_ASSERT_OK(tt_cond_wait(a->cv));
	TU_ASSERT_OK(tt_mutex_unlock(a->m));
	TU_ASSERT_OK(tt_wg_done(a->wg));
}

/* The counter, read under the mutex as the lockers write it. */
static long counter_now(sync_arg *a)
{
	TU_ASSERT_OK(tt_mutex_lock(a->m));
	long v = *a->counter;
	TU_ASSERT_OK(tt_mutex_unlock(a->m));
	return v;
}

static void test_sync(void **state)
{
	(void)state;
	enum { N = 20 };
	long counter = 0;
	int ready = 0;
	sync_arg a = {.counter = &counter, .ready = &ready};
	TU_ASSERT_OK(tt_mutex_make(&a.m));
	TU_ASSERT_OK(tt_wg_make(&a.wg));
	TU_ASSERT_OK(tt_cond_make(&a.cv, a.m));
	TU_ASSERT_OK(tt_wg_add(a.wg, N));
	for (int i = 0; i < N; i++)
		if (i % 3)
			go_shared(locker, &a);
		else
			tu_go(locker, &a);
	TU_WAIT_FOR(counter_now(&a) == N * 50, 10 * TT_SECOND);
	TU_ASSERT_OK(tt_mutex_lock(a.m));
	ready = 1;
	TU_ASSERT_OK(tt_cond_broadcast(a.cv));
	TU_ASSERT_OK(tt_mutex_unlock(a.m));
	TU_ASSERT_OK(tt_wg_wait_until(a.wg, tt_deadline_in(10 * TT_SECOND)));
	assert_int_equal(counter, N * 50);
	TU_ASSERT_OK(tt_cond_release(a.cv));
	TU_ASSERT_OK(tt_mutex_release(a.m));
	TU_ASSERT_OK(tt_wg_release(a.wg));
}

typedef struct sleep_arg {
	tt_chan *done;
	int64_t ns;
	tt_ctx *ctx;
} sleep_arg;

static void sleeper(void *p)
{
	sleep_arg *a = p;
	char mark[64];
	memset(mark, (int)(a->ns / MS), sizeof mark);
	int64_t t0 = tt_now();
	TU_ASSERT_OK(tt_sleep(a->ns));
	TU_ASSERT_GE(tt_now() - t0, a->ns);
	for (size_t i = 0; i < sizeof mark; i++)
		TU_ASSERT_EQ(mark[i], (char)(a->ns / MS));
	/* A timer channel received into a local. */
	tt_chan *c;
	TU_ASSERT_OK(tt_after(&c, MS));
	int64_t when = 0;
	TU_ASSERT_OK(tt_chan_recv(c, &when, sizeof when, NULL));
	TU_ASSERT_GT(when, t0);
	TU_ASSERT_OK(tt_chan_release(c));
	/* A deadline that passes. */
	tt_chan *never = tu_chan(sizeof(int64_t), 0);
	TU_ASSERT_ERR(tt_chan_recv_until(never, &when, sizeof when, NULL,
					 tt_deadline_in(MS)),
		      -ETIMEDOUT);
	TU_ASSERT_OK(tt_chan_release(never));
	tu_done(a->done);
}

static void test_timers_and_sleep(void **state)
{
	(void)state;
	enum { N = 30 };
	tt_chan *done = tu_chan(0, 0);
	sleep_arg a[N];
	for (int i = 0; i < N; i++) {
		a[i] = (sleep_arg){done, (i % 7 + 1) * MS, NULL};
		go_shared(sleeper, &a[i]);
	}
	TU_WAIT_DONE(done, N, 10 * TT_SECOND);
	TU_ASSERT_OK(tt_chan_release(done));
}

static void ctx_waiter(void *p)
{
	sleep_arg *a = p;
	int64_t v = 5;
	tt_chan *never = tu_chan(sizeof(int64_t), 0);
	TU_ASSERT_ERR(tt_chan_recv_ctx(a->ctx, never, &v, sizeof v, NULL),
		      -ECANCELED);
	TU_ASSERT_EQ(v, 5);
	TU_ASSERT_ERR(tt_sleep_ctx(a->ctx, TT_SECOND), -ECANCELED);
	TU_ASSERT_OK(tt_chan_release(never));
	tu_done(a->done);
}

static void test_ctx(void **state)
{
	(void)state;
	enum { N = 10 };
	tt_chan *done = tu_chan(0, 0);
	tt_ctx *ctx;
	TU_ASSERT_OK(tt_ctx_with_cancel(&ctx, tt_ctx_background()));
	sleep_arg a = {done, 0, ctx};
	for (int i = 0; i < N; i++)
		go_shared(ctx_waiter, &a);
	go_shared(scribble, done);
	TU_WAIT_DONE(done, 1, 5 * TT_SECOND);
	TU_ASSERT_OK(tt_ctx_cancel(ctx));
	TU_WAIT_DONE(done, N, 5 * TT_SECOND);
	TU_ASSERT_OK(tt_ctx_release(ctx));
	TU_ASSERT_OK(tt_chan_release(done));
}

typedef struct fd_arg {
	int fd;
	tt_chan *done;
} fd_arg;

static void fd_reader(void *p)
{
	fd_arg *a = p;
	char buf[16];
	memset(buf, 0, sizeof buf);
	ssize_t n = tt_read(a->fd, buf, 5, TT_FOREVER);
	TU_ASSERT_EQ(n, 5);
	TU_ASSERT_MEM_EQ(buf, "hello", 5);
	tu_done(a->done);
}

static void test_fd_wait(void **state)
{
	(void)state;
	int fds[2];
	TU_ASSERT_EQ(pipe(fds), 0);
	TU_ASSERT_OK(tt_fd_nonblock(fds[0]));
	tt_chan *done = tu_chan(0, 0);
	fd_arg a = {fds[0], done};
	go_shared(fd_reader, &a);
	go_shared(scribble, done);
	TU_WAIT_DONE(done, 1, 5 * TT_SECOND);
	tt_sleep(MS);
	TU_ASSERT_EQ(write(fds[1], "hello", 5), 5);
	TU_WAIT_DONE(done, 1, 5 * TT_SECOND);
	close(fds[0]);
	close(fds[1]);
	TU_ASSERT_OK(tt_chan_release(done));
}

/* ---- stacks ---------------------------------------------------------------------- */

static __attribute__((noinline)) long recurse(int depth, tt_chan *c)
{
	volatile char frame[256];
	frame[0] = (char)depth;
	if (depth == 0) {
		/* Park at the bottom: tens of KiB of frames get copied. */
		int64_t v;
		TU_ASSERT_OK(tt_chan_recv(c, &v, sizeof v, NULL));
		return v;
	}
	long r = recurse(depth - 1, c) + frame[0];
	return r;
}

typedef struct deep_arg {
	tt_chan *c, *done;
	int depth;
	long result;
} deep_arg;

static void deep(void *p)
{
	deep_arg *a = p;
	a->result = recurse(a->depth, a->c);
	tu_done(a->done);
}

static void test_deep_and_large_stacks(void **state)
{
	(void)state;
	tt_chan *done = tu_chan(0, 0);
	/* ~100 KiB parked (more than a default 64 KiB stack holds), twice,
	 * and a 2,000-frame one (~600 KiB) that parks too. */
	enum { D1 = 300, D2 = 320 };
	deep_arg a = {tu_chan(sizeof(int64_t), 0), done, D1, 0};
	deep_arg b = {tu_chan(sizeof(int64_t), 0), done, D2, 0};
	go_shared(deep, &a);
	go_shared(deep, &b);
	go_shared(scribble, done);
	TU_WAIT_DONE(done, 1, 5 * TT_SECOND);
	int64_t v = 1000;
	TU_ASSERT_OK(tt_chan_send(a.c, &v, sizeof v));
	v = 2000;
	TU_ASSERT_OK(tt_chan_send(b.c, &v, sizeof v));
	TU_WAIT_DONE(done, 2, 5 * TT_SECOND);
	long want_a = 1000, want_b = 2000;
	for (int d = 1; d <= D1; d++)
		want_a += (char)d;
	for (int d = 1; d <= D2; d++)
		want_b += (char)d;
	assert_int_equal(a.result, want_a);
	assert_int_equal(b.result, want_b);
	if (!TU_ASAN) {
		deep_arg c = {a.c, done, 2000, 0};
		go_shared(deep, &c);
		v = 1;
		TU_ASSERT_OK(tt_chan_send(c.c, &v, sizeof v));
		TU_WAIT_DONE(done, 1, 5 * TT_SECOND);
		TU_ASSERT_GT(c.result, 1);
	}
	TU_ASSERT_OK(tt_chan_release(a.c));
	TU_ASSERT_OK(tt_chan_release(b.c));
	TU_ASSERT_OK(tt_chan_release(done));
}

/* ---- many parked, mixed, goexit ------------------------------------------------- */

typedef struct mass_arg {
	tt_chan *c, *out;
} mass_arg;

static void echo(void *p)
{
	mass_arg *a = p;
	int64_t v = 0;
	TU_ASSERT_OK(tt_chan_recv(a->c, &v, sizeof v, NULL));
	v *= 2;
	TU_ASSERT_OK(tt_chan_send(a->out, &v, sizeof v));
}

static void test_thousands_mixed(void **state)
{
	(void)state;
	enum { N = 5000 };
	mass_arg a = {tu_chan(sizeof(int64_t), 0), tu_chan(sizeof(int64_t), 0)};
	for (int i = 0; i < N; i++)
		if (i % 4 == 0)
			tu_go(echo, &a);
		else
			go_shared(echo, &a);
	int64_t sum = 0;
	for (int i = 0; i < N; i++) {
		int64_t v = i;
		TU_ASSERT_OK(tt_chan_send(a.c, &v, sizeof v));
		TU_ASSERT_OK(tt_chan_recv(a.out, &v, sizeof v, NULL));
		sum += v;
	}
	assert_int_equal(sum, (int64_t)N * (N - 1));
	TU_ASSERT_OK(tt_chan_release(a.c));
	TU_ASSERT_OK(tt_chan_release(a.out));
}

static void exiter(void *p)
{
	tt_chan *done = p;
	tt_yield();
	tu_done(done);
	tt_goexit();
}

/* A shared-stack goroutine that starts shared-stack goroutines. */
static void spawner(void *p)
{
	tt_chan *done = p;
	int local = 42;
	for (int i = 0; i < 20; i++)
		go_shared(i % 2 ? exiter : scribble, done);
	TU_ASSERT_EQ(local, 42);
	tu_done(done);
}

static void test_goexit_and_nested_spawn(void **state)
{
	(void)state;
	tt_chan *done = tu_chan(0, 1);
	go_shared(spawner, done);
	go_shared(exiter, done);
	TU_WAIT_DONE(done, 22, 5 * TT_SECOND);
	TU_ASSERT_OK(tt_chan_release(done));
}

/* shared -> normal -> shared, each started as a call: the innermost one
 * takes the region from the outermost, whose frames must come back
 * before it resumes. */
static void inner_shared(void *p)
{
	volatile char big[4096];
	memset((char *)big, 0x5a, sizeof big);
	(void)p;
}

static void middle_normal(void *p)
{
	go_shared(inner_shared, p);
}

static void outer_shared(void *p)
{
	tt_chan *done = p;
	char mark[256];
	memset(mark, 0x3c, sizeof mark);
	tu_go(middle_normal, NULL);
	for (size_t i = 0; i < sizeof mark; i++)
		TU_ASSERT_EQ(mark[i], 0x3c);
	tu_done(done);
}

static void test_nested_through_normal(void **state)
{
	(void)state;
	/* "Each started as a call": tt_go runs its child first on the
	 * caller's thread only at one P (the normal one may go to another). */
	tu_one_p();
	tt_chan *done = tu_chan(0, 1);
	go_shared(outer_shared, done);
	TU_WAIT_DONE(done, 1, 5 * TT_SECOND);
	TU_ASSERT_OK(tt_chan_release(done));
}

static void test_bad_stack_size(void **state)
{
	(void)state;
	/* Over the shared stack, under TT_STACK_SIZE_MAX. */
	tt_go_attr attr = {.shared_stack = true, .stack_size = (size_t)1 << 28};
	int64_t r = tt_go_with(&attr, scribble, NULL);
	assert_int_equal(r, -EINVAL);
	TU_ASSERT_CONTAINS(tt_last_error(), "shared stack");
}

/* ---- panics ----------------------------------------------------------------------- */

static void panicker(void *p)
{
	(void)p;
	tt_chan *c;
	if (tt_chan_make(&c, 0, 0) == 0) {
		tt_chan_close(c);
		tt_chan_close(c);
	}
}

static void panic_child(void *p)
{
	(void)p;
	tt_go_with(&shared_attr, panicker, NULL);
}

static void test_panic_prints(void **state)
{
	(void)state;
	TU_REQUIRE_THREADS();
	tu_child c;
	assert_int_equal(tu_fork_run(panic_child, NULL, 10 * TT_SECOND, &c), 0);
	assert_true(c.signaled);
	TU_ASSERT_CONTAINS(c.err, "tether: panic: close of closed channel");
	TU_ASSERT_CONTAINS(c.err, "goroutine ");
	tu_child_free(&c);
}

static volatile int runaway_stop = 1 << 30; /* never reached */

static __attribute__((noinline)) int runaway(int n)
{
	volatile char frame[1024];
	frame[0] = (char)n;
	if (n == runaway_stop)
		return 0;
	return runaway(n + 1) + frame[0];
}

static void overflow_goroutine(void *p)
{
	(void)p;
	fprintf(stderr, "tu-goid=%lld\n", (long long)tt_goid());
	runaway(0);
}

static void overflow_child(void)
{
	tt_go_with(&shared_attr, overflow_goroutine, NULL);
}

/* ---- out of memory saving a stack ------------------------------------------ *
 *
 * A child process, with the shared stack made large (64 MiB) so that a
 * goroutine's save buffer is 16 MiB: under an address-space limit a few
 * MiB above what the process uses, that one allocation fails and little
 * else does. */

#define DEEP_BYTES (16u << 20)

static long long vm_size(void)
{
	FILE *f = fopen("/proc/self/status", "r");
	char line[256];
	long long kib = -1;
	while (f && fgets(line, sizeof line, f))
		if (strncmp(line, "VmSize:", 7) == 0)
			kib = strtoll(line + 7, NULL, 10);
	if (f)
		fclose(f);
	return kib * 1024;
}

static struct rlimit saved_as;

static void limit_address_space(void)
{
	TU_ASSERT_OK(getrlimit(RLIMIT_AS, &saved_as));
	struct rlimit r = saved_as;
	r.rlim_cur = (rlim_t)(vm_size() + (4 << 20));
	TU_ASSERT_OK(setrlimit(RLIMIT_AS, &r));
}

static void unlimit_address_space(void)
{
	TU_ASSERT_OK(setrlimit(RLIMIT_AS, &saved_as));
}

static void nop(void *p)
{
	(void)p;
}

/* Not on a shared stack: see go.h's rule. */
static int small_ran;

static void small_shared(void *p)
{
	(void)p;
	volatile char frame[256];
	frame[0] = 1;
	small_ran += frame[0];
}

static unsigned sum_bytes(const unsigned char *b, size_t n)
{
	unsigned sum = 0;
	for (size_t i = 0; i < n; i += 4096)
		sum += b[i];
	return sum + b[n - 1];
}

/* A shared-stack goroutine 16 MiB deep starts another: that copies it
 * out, and the copy cannot be had. tt_go says so (-ENOMEM) and nothing
 * else changes; with memory back, the same call works and the deep
 * goroutine's stack comes back intact. */
static void deep_starter(void *p)
{
	(void)p;
	unsigned char *buf = __builtin_alloca(DEEP_BYTES);
	memset(buf, 0x5a, DEEP_BYTES);
	unsigned want = sum_bytes(buf, DEEP_BYTES);
	int64_t n0 = tt_num_goroutine();
	tt_go_attr attr = {.shared_stack = true};

	limit_address_space();
	int64_t r = tt_go_with(&attr, small_shared, NULL);
	char err[512];
	snprintf(err, sizeof err, "%s", tt_last_error());
	/* A goroutine with a stack of its own: the parent still waits
	 * runnable and may be copied out. */
	int64_t r2 = tt_go(nop, NULL);
	unlimit_address_space();

	TU_ASSERT_ERR(r, -ENOMEM);
	TU_ASSERT_ERR(r2, -ENOMEM);
	char msg[160];
	snprintf(msg, sizeof msg,
		 "tt_go: out of memory saving the shared stack of goroutine "
		 "%lld (",
		 (long long)tt_goid());
	TU_ASSERT_CONTAINS(err, msg);
	TU_ASSERT_EQ(small_ran, 0);
	TU_ASSERT_EQ(tt_num_goroutine(), n0);

	TU_ASSERT_GT(tt_go_with(&attr, small_shared, NULL), 0);
	TU_ASSERT_EQ(small_ran, 1);
	TU_ASSERT_EQ(sum_bytes(buf, DEEP_BYTES), want);
	fprintf(stderr, "tu-ok\n");
}

static void save_oom_go_child(void)
{
	setenv("TETHER_SHARED_STACK_SIZE", "64M", 1);
	tu_go_with(&shared_attr, deep_starter, NULL);
}

static void test_save_oom_tt_go(void **state)
{
	(void)state;
	TU_REQUIRE_THREADS();
	if (tu_emulated()) {
		print_message("skipped under an emulator: "
			      "an address-space limit applies to the emulator itself, not to the emulated program\n");
		skip();
	}
	if (TU_ASAN || TU_TSAN)
		skip(); /* their shadow memory makes an address-space limit
			   meaningless */
	tu_child c;
	assert_int_equal(tu_spawn_self("save_oom_go", 60 * TT_SECOND, &c), 0);
	TU_ASSERT_CHILD_EXIT(&c, 0);
	TU_ASSERT_CONTAINS(c.err, "tu-ok");
	tu_child_free(&c);
}

/* A shared-stack goroutine 16 MiB deep parks with another one runnable.
 * A blocking call has no error for this, so it is fatal — said as it
 * parks, on its own stack, naming it and the size. */
static tt_chan *oom_wake, *oom_never;

static void oom_other(void *p)
{
	(void)p;
	char b;
	TU_UNCHECKED(tt_chan_recv(oom_wake, &b, 1, NULL));
}

static __attribute__((noinline)) void deep_parker(void *p)
{
	(void)p;
	unsigned char *buf = __builtin_alloca(DEEP_BYTES);
	memset(buf, 0x5a, DEEP_BYTES);
	unsigned want = sum_bytes(buf, DEEP_BYTES);
	fprintf(stderr, "tu-goid=%lld\n", (long long)tt_goid());
	/* The symbolizer's tables, loaded while there is memory. */
	char dump[4096];
	tt_stack_dump(dump, sizeof dump, true);
	char b = 1;
	TU_UNCHECKED(tt_chan_send(oom_wake, &b, 1)); /* oom_other is now runnable */
	limit_address_space();
	TU_UNCHECKED(tt_chan_recv(oom_never, &b, 1, NULL));
	fprintf(stderr, "tu-not-reached %d\n", sum_bytes(buf, DEEP_BYTES) == want);
}

static void save_oom_park_child(void)
{
	setenv("TETHER_SHARED_STACK_SIZE", "64M", 1);
	TU_ASSERT_OK(tt_chan_make(&oom_wake, 1, 0));
	TU_ASSERT_OK(tt_chan_make(&oom_never, 1, 0));
	tu_go_with(&shared_attr, oom_other, NULL);
	tu_go_with(&shared_attr, deep_parker, NULL);
}

static void test_save_oom_park(void **state)
{
	(void)state;
	TU_REQUIRE_THREADS();
	if (tu_emulated()) {
		print_message("skipped under an emulator: "
			      "an address-space limit applies to the emulator itself, not to the emulated program\n");
		skip();
	}
	if (TU_ASAN || TU_TSAN)
		skip();
	tu_child c;
	assert_int_equal(tu_spawn_self("save_oom_park", 60 * TT_SECOND, &c),
			 0);
	TU_ASSERT_CHILD_SIGNAL(&c, SIGABRT);
	char want[200];
	snprintf(want, sizeof want,
		 "tether: fatal error: out of memory saving the shared stack "
		 "of goroutine %lld (",
		 tu_child_marker(&c, "tu-goid"));
	TU_ASSERT_CONTAINS(c.err, want);
	TU_ASSERT_CONTAINS(c.err, " bytes) as it parks (chan receive)");
	/* The parking goroutine's stack, down to the test's function. */
	snprintf(want, sizeof want, "goroutine %lld [running]:",
		 tu_child_marker(&c, "tu-goid"));
	TU_ASSERT_CONTAINS(c.err, want);
	TU_ASSERT_CONTAINS(c.err, "deep_parker(...)");
	TU_ASSERT_CONTAINS(c.err, "test_shared_stack.c:");
	TU_ASSERT_NOT_CONTAINS(c.err, "tu-not-reached");
	tu_child_free(&c);
}

/* ---- under Valgrind ------------------------------------------------------------ *
 *
 * Memcheck follows the stack pointer: bytes of a stack below the lowest
 * point it saw are not addressable. Copying a goroutine's frames back into
 * the region writes there; without telling Memcheck, every switch back
 * into a copied-out goroutine was a burst of invalid writes and reads. */

typedef struct vg_pair {
	tt_chan *ping, *pong;
	tt_waitgroup *wg;
	tt_mutex *mu;
	int rounds;
} vg_pair;

static int vg_shared_total; /* under mu; not on a shared stack */

static void vg_pinger(void *p)
{
	vg_pair *a = p;
	for (int i = 0; i < a->rounds; i++) {
		char frame[512]; /* frames worth copying */
		snprintf(frame, sizeof frame, "ping %d", i);
		int64_t v = i;
		TU_ASSERT_OK(tt_chan_send(a->ping, &v, sizeof v));
		int64_t back = -1;
		TU_ASSERT_OK(tt_chan_recv(a->pong, &back, sizeof back, NULL));
		TU_ASSERT_EQ(back, v + 1);
		/* The frame came back with the goroutine. */
		char want[32];
		snprintf(want, sizeof want, "ping %d", i);
		TU_ASSERT(strcmp(frame, want) == 0);
	}
	tt_wg_done(a->wg);
}

static void vg_ponger(void *p)
{
	vg_pair *a = p;
	for (int i = 0; i < a->rounds; i++) {
		int64_t v = -1;
		tt_case cs[1] = {TT_CASE_RECV_INTO(a->ping, &v, NULL)};
		TU_ASSERT_EQ(tt_select(cs, 1, TT_FOREVER), 0);
		v++;
		if (i % 16 == 0)
			tt_sleep(TT_MICROSECOND);
		else
			tt_yield();
		TU_ASSERT_OK(tt_mutex_lock(a->mu));
		vg_shared_total++;
		tt_mutex_unlock(a->mu);
		TU_ASSERT_OK(tt_chan_send(a->pong, &v, sizeof v));
	}
	tt_wg_done(a->wg);
}

static void vg_spawner(void *p)
{
	vg_pair *a = p;
	/* Shared-stack goroutines started by a shared-stack one. */
	go_shared(vg_pinger, a);
	go_shared(vg_ponger, a);
	tt_wg_done(a->wg);
}

static void valgrind_child(void)
{
	enum { PAIRS = 4, ROUNDS = 100 };
	vg_pair pairs[PAIRS];
	tt_waitgroup *wg;
	tt_mutex *mu;
	TU_ASSERT_OK(tt_wg_make(&wg));
	TU_ASSERT_OK(tt_mutex_make(&mu));
	TU_ASSERT_OK(tt_wg_add(wg, 3 * PAIRS));
	for (int i = 0; i < PAIRS; i++) {
		pairs[i] = (vg_pair){.ping = tu_chan(sizeof(int64_t), 0),
				     .pong = tu_chan(sizeof(int64_t), 0),
				     .wg = wg,
				     .mu = mu,
				     .rounds = ROUNDS};
		go_shared(vg_spawner, &pairs[i]);
	}
	TU_ASSERT_OK(tt_wg_wait(wg));
	TU_ASSERT_EQ(vg_shared_total, PAIRS * ROUNDS);
	for (int i = 0; i < PAIRS; i++) {
		tt_chan_release(pairs[i].ping);
		tt_chan_release(pairs[i].pong);
	}
	tt_wg_release(wg);
	tt_mutex_release(mu);
	fprintf(stderr, "tu-ok\n");
}

/* Runs `cmd` (stderr and stdout together) and returns its exit status,
 * the output in *out. */
static int run_capture(const char *cmd, char **out)
{
	FILE *p = popen(cmd, "r");
	assert_non_null(p);
	size_t cap = 8192, len = 0, n;
	char *buf = malloc(cap);
	assert_non_null(buf);
	while ((n = fread(buf + len, 1, cap - len - 1, p)) > 0) {
		len += n;
		if (cap - len < 2) {
			cap *= 2;
			buf = realloc(buf, cap);
			assert_non_null(buf);
		}
	}
	buf[len] = '\0';
	int st = pclose(p);
	*out = buf;
	return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

static void test_valgrind_clean(void **state)
{
	(void)state;
	if (TU_ASAN || TU_TSAN || tu_emulated())
		skip(); /* Valgrind runs neither sanitized nor emulated code */
	if (system("command -v valgrind > /dev/null 2>&1") != 0) {
		print_message("skipped: valgrind is not installed "
			      "(scripts/install-deps installs it)\n");
		skip();
	}
	char self[4096];
	ssize_t n = readlink("/proc/self/exe", self, sizeof self - 1);
	assert_true(n > 0);
	self[n] = '\0';
	const char *vg = "valgrind -q --error-exitcode=99 --child-silent-after-fork=yes";
	char cmd[8192];
	char *out;
	snprintf(cmd, sizeof cmd, "%s '%s' --tu-child valgrind 2>&1", vg,
		 self);
	int st = run_capture(cmd, &out);
	if (st != 0 || tu_contains(out, "== "))
		print_message("%s\n", out);
	assert_int_equal(st, 0);
	TU_ASSERT_CONTAINS(out, "tu-ok");
	TU_ASSERT_NOT_CONTAINS(out, "Invalid");
	TU_ASSERT_NOT_CONTAINS(out, "uninitialised");
	free(out);

	/* The example the README points at, in shared-stack mode. */
	const char *dir = getenv("TETHER_BUILD_DIR");
	snprintf(cmd, sizeof cmd,
		 "%s '%s/examples/massive' --shared-stack --count 300 "
		 "--seconds 0 --port 0 2>&1",
		 vg, dir ? dir : "build");
	st = run_capture(cmd, &out);
	if (st != 0)
		print_message("%s\n", out);
	assert_int_equal(st, 0);
	TU_ASSERT_NOT_CONTAINS(out, "Invalid");
	free(out);
}

static const tu_child_case child_cases[] = {
	{"valgrind", valgrind_child},
	{"overflow", overflow_child},
	{"save_oom_go", save_oom_go_child},
	{"save_oom_park", save_oom_park_child},
};

static void test_overflow_reported(void **state)
{
	(void)state;
	TU_REQUIRE_THREADS();
	if (TU_ASAN)
		skip(); /* AddressSanitizer reports it its own way */
	tu_child c;
	/* A fresh process: a forked one has cmocka's signal handlers
	 * reset, tether's overflow report with them. */
	assert_int_equal(tu_spawn_self("overflow", 20 * TT_SECOND, &c), 0);
	assert_true(c.signaled);
	char want[96];
	snprintf(want, sizeof want, "stack overflow in goroutine %lld",
		 tu_child_marker(&c, "tu-goid"));
	TU_ASSERT_CONTAINS(c.err, want);
	tu_child_free(&c);
}

int main(int argc, char **argv)
{
	tu_child_dispatch(argc, argv, child_cases,
			  sizeof child_cases / sizeof child_cases[0]);
	const struct CMUnitTest tests[] = {
		TU_TEST(test_chan_handoff_both_directions),
		TU_TEST(test_close_wakes_parked),
		TU_TEST(test_select_many_cases),
		TU_TEST(test_select_send_from_stack),
		TU_TEST(test_sync),
		TU_TEST(test_timers_and_sleep),
		TU_TEST(test_ctx),
		TU_TEST(test_fd_wait),
		TU_TEST(test_deep_and_large_stacks),
		TU_TEST(test_thousands_mixed),
		TU_TEST(test_goexit_and_nested_spawn),
		TU_TEST(test_nested_through_normal),
		TU_TEST(test_bad_stack_size),
		TU_TEST(test_overflow_reported),
		TU_TEST(test_panic_prints),
		TU_TEST(test_save_oom_tt_go),
		TU_TEST(test_save_oom_park),
		TU_TEST(test_valgrind_clean),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
