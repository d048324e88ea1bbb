/* Stacks of parked goroutines in Go's text formats: tt_stack_dump
 * (runtime.Stack), tt_profile_write debug=1 and 2, the SIGQUIT dump, and
 * the stacks printed with a panic and the deadlock report. Expected file
 * and line numbers come from __FILE__ and __LINE__ at the park sites, so
 * the checks prove the unwinder and the symbolizer right, not just the
 * layout. */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "debug/debug.h"
#include "profile/profile.h"
#include "testutil.h"
#include "chan_queued.h"
#include "chan_queued.h"

#define NOINLINE __attribute__((noinline))

static tt_chan *block_ch; /* nobody sends on it */
/* Set by the parked goroutines, read by the test once they are parked:
 * atomics, as nothing else orders the two (a switch does not). */
static int recv_line, inline_line;

/* The park sites. The empty asm after each call keeps it from being a
 * tail call, so the function's own frame stays on the stack. */
static NOINLINE void park_recv(void *arg)
{
	(void)arg;
	int v;
	__atomic_store_n(&recv_line, __LINE__ + 1, __ATOMIC_RELAXED);
	TU_UNCHECKED(tt_chan_recv(block_ch, &v, sizeof v, NULL));
	__asm__ volatile("");
}

static inline __attribute__((always_inline)) void inlined_wait(void)
{
	int v;
	__atomic_store_n(&inline_line, __LINE__ + 1, __ATOMIC_RELAXED);
	TU_UNCHECKED(tt_chan_recv(block_ch, &v, sizeof v, NULL));
	__asm__ volatile("");
}

static NOINLINE void park_inlined(void *arg)
{
	(void)arg;
	inlined_wait();
	__asm__ volatile("");
}

static NOINLINE void park_sleep(void *arg)
{
	(void)arg;
	tt_sleep(TT_MINUTE);
	__asm__ volatile("");
}

static NOINLINE void park_select_none(void *arg)
{
	(void)arg;
	TU_UNCHECKED(tt_select(NULL, 0, TT_FOREVER));
	__asm__ volatile("");
}

static NOINLINE void park_nil(void *arg)
{
	(void)arg;
	int v;
	TU_UNCHECKED(tt_chan_recv(NULL, &v, sizeof v, NULL));
	__asm__ volatile("");
}

static tt_mutex *held_mutex;
static NOINLINE void park_mutex(void *arg)
{
	(void)arg;
	tt_mutex_lock(held_mutex);
	tt_mutex_unlock(held_mutex);
	__asm__ volatile("");
}

/* The goroutine's block of a debug=2 dump: from its header to the blank
 * line. Returns a malloc'd copy, or NULL. */
static char *block_of(const char *dump, int64_t id)
{
	char head[64];
	snprintf(head, sizeof head, "goroutine %lld [", (long long)id);
	const char *p = strstr(dump, head);
	if (p == NULL)
		return NULL;
	const char *e = strstr(p, "\n\n");
	size_t n = e ? (size_t)(e - p) + 1 : strlen(p);
	char *b = malloc(n + 1);
	memcpy(b, p, n);
	b[n] = 0;
	return b;
}

static char *dump_all(void)
{
	size_t cap = 1 << 20;
	char *buf = malloc(cap);
	size_t n = tt_stack_dump(buf, cap - 1, true);
	TU_ASSERT_LT(n, cap - 1);
	buf[n] = 0;
	return buf;
}

/* Whether goroutine id's block in a dump taken now says it is parked
 * with the given state. */
static bool parked_as(int64_t id, const char *state)
{
	char *dump = dump_all();
	char *b = block_of(dump, id);
	char want[96];
	snprintf(want, sizeof want, "goroutine %lld [%s]:\n", (long long)id,
		 state);
	bool yes = b != NULL && strncmp(b, want, strlen(want)) == 0;
	free(b);
	free(dump);
	return yes;
}

static void test_dump_layout(void **state)
{
	(void)state;
	block_ch = tu_chan(sizeof(int), 0);
	TU_ASSERT_OK(tt_mutex_make(&held_mutex));
	TU_ASSERT_OK(tt_mutex_lock(held_mutex));
	int go_line = __LINE__ + 1;
	int64_t id_recv = tt_go(park_recv, NULL);
	int64_t id_inl = tt_go(park_inlined, NULL);
	int64_t id_sleep = tt_go(park_sleep, NULL);
	int64_t id_none = tt_go(park_select_none, NULL);
	int64_t id_nil = tt_go(park_nil, NULL);
	int64_t id_mu = tt_go(park_mutex, NULL);
	/* Each in its wait, on whichever P took it: the two receivers in
	 * block_ch's queue (not in the ask that shares it), then all as they
	 * are listed. */
	TU_WAIT_QUEUED(block_ch, false, 2);
	TU_WAIT_FOR(parked_as(id_recv, "chan receive") &&
			    parked_as(id_inl, "chan receive") &&
			    parked_as(id_sleep, "sleep") &&
			    parked_as(id_none, "select (no cases)") &&
			    parked_as(id_nil, "chan receive (nil chan)") &&
			    parked_as(id_mu, "sync.Mutex.Lock"),
		    10 * TT_SECOND);
	char *dump = dump_all();

	/* The caller first, running. */
	char head[64];
	snprintf(head, sizeof head, "goroutine %lld [running]:\n",
		 (long long)tt_goid());
	assert_true(strncmp(dump, head, strlen(head)) == 0);
	TU_ASSERT_CONTAINS(dump, "tt_stack_dump(...)\n");
	TU_ASSERT_CONTAINS(dump, "test_dump_layout(...)\n");

	/* A receive: the public call on top, then the function with its
	 * file:line and offset, then the creation site. */
	char *b = block_of(dump, id_recv);
	assert_non_null(b);
	char want[512];
	snprintf(want, sizeof want, "goroutine %lld [chan receive]:\n",
		 (long long)id_recv);
	TU_ASSERT_CONTAINS(b, want);
	TU_ASSERT_CONTAINS(b, "tt_chan_recv");
	snprintf(want, sizeof want, "park_recv(...)\n\t%s:%d +0x", __FILE__,
		 __atomic_load_n(&recv_line, __ATOMIC_RELAXED));
	TU_ASSERT_CONTAINS(b, want);
	snprintf(want, sizeof want,
		 "created by test_dump_layout in goroutine %lld\n\t%s:%d +0x",
		 (long long)tt_goid(), __FILE__, go_line);
	TU_ASSERT_CONTAINS(b, want);
	/* No frame of the runtime's internals above the public call. */
	TU_ASSERT_NOT_CONTAINS(b, "tt__park");
	TU_ASSERT_NOT_CONTAINS(b, "tt__switch");
	TU_ASSERT_NOT_CONTAINS(b, "tt__g_direct_entry");
	free(b);

	/* An inlined function is a frame of its own, without an offset,
	 * and its caller's line is the call site. */
	b = block_of(dump, id_inl);
	assert_non_null(b);
	snprintf(want, sizeof want, "inlined_wait(...)\n\t%s:%d\n", __FILE__,
		 __atomic_load_n(&inline_line, __ATOMIC_RELAXED));
	TU_ASSERT_CONTAINS(b, want);
	TU_ASSERT_CONTAINS(b, "park_inlined(...)\n");
	free(b);

	/* Wait reasons, Go's words. */
	struct {
		int64_t id;
		const char *state, *fn;
	} cases[] = {
		{id_sleep, "sleep", "park_sleep(...)"},
		{id_none, "select (no cases)", "park_select_none(...)"},
		{id_nil, "chan receive (nil chan)", "park_nil(...)"},
		{id_mu, "sync.Mutex.Lock", "park_mutex(...)"},
	};
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		b = block_of(dump, cases[i].id);
		TU_ASSERT_MSG(b != NULL, "goroutine %lld missing",
			      (long long)cases[i].id);
		snprintf(want, sizeof want, "goroutine %lld [%s]:\n",
			 (long long)cases[i].id, cases[i].state);
		TU_ASSERT_CONTAINS(b, want);
		TU_ASSERT_CONTAINS(b, cases[i].fn);
		free(b);
	}
	free(dump);

	/* The calling goroutine alone: no trailing blank line; a buffer
	 * too small is filled and its length returned. */
	char small[4096];
	size_t n = tt_stack_dump(small, sizeof small, false);
	TU_ASSERT_GT(n, 0);
	TU_ASSERT_LT(n, sizeof small);
	assert_true(small[n - 1] == '\n' && small[n - 2] != '\n');
	char tiny[16];
	assert_int_equal(tt_stack_dump(tiny, sizeof tiny, true), sizeof tiny);

	/* Let them all go. */
	TU_ASSERT_OK(tt_mutex_unlock(held_mutex));
	TU_ASSERT_OK(tt_chan_close(block_ch));
	tt_yield();
}

/* The sleeper and the no-case select cannot be woken; each test runs in
 * its own process (tu_spawn_self) where that does not matter. */
static void child_dump_layout(void)
{
	test_dump_layout(NULL);
	fflush(stdout);
	_exit(tu_goroutine_failures() ? TU_CHILD_FAIL_STATUS : 0);
}

static void test_dump_layout_child(void **state)
{
	(void)state;
	tu_child c;
	TU_ASSERT_OK(tu_spawn_self("dump_layout", 30 * TT_SECOND, &c));
	char why[64];
	TU_ASSERT_MSG(c.exited && c.exit_code == 0, "child %s:\n%s",
		      tu_child_describe(&c, why, sizeof why), c.err);
	tu_child_free(&c);
}

/* ---- debug=1 ------------------------------------------------------------- */

static void test_debug1_groups(void **state)
{
	(void)state;
	block_ch = tu_chan(sizeof(int), 0);
	for (int i = 0; i < 7; i++)
		tt_go(park_recv, NULL);
	for (int i = 0; i < 3; i++)
		tt_go(park_inlined, NULL);
	/* All ten parked, on whichever thread each runs. */
	TU_WAIT_QUEUED(block_ch, false, 10);
	tu_sink s = {0};
	TU_ASSERT_OK(tt_profile_write("goroutine", 1, tu_sink_write, &s));
	/* main + 10 */
	TU_ASSERT_CONTAINS(s.p, "goroutine profile: total 11\n");
	const char *r7 = strstr(s.p, "\n7 @ 0x");
	const char *r3 = strstr(s.p, "\n3 @ 0x");
	assert_non_null(r7);
	assert_non_null(r3);
	assert_true(r7 < r3); /* largest first */
	char want[512];
	snprintf(want, sizeof want, "\tpark_recv+0x");
	TU_ASSERT_CONTAINS(r7, want);
	snprintf(want, sizeof want, "\t%s:%d\n", __FILE__,
		 __atomic_load_n(&recv_line, __ATOMIC_RELAXED));
	TU_ASSERT_CONTAINS(r7, want);
	/* Frame lines: "#", tab, address, tabs, func+off, tabs, file:line. */
	const char *line = strstr(r7, "\n#\t0x");
	assert_non_null(line);
	/* An inlined frame has no +0x offset. */
	TU_ASSERT_CONTAINS(r3, "\tinlined_wait\t");
	/* Bad names and levels. */
	TU_ASSERT_ERR(tt_profile_write("heap", 1, tu_sink_write, &s), -EINVAL);
	TU_ASSERT_ERR(tt_profile_write("goroutine", 3, tu_sink_write, &s), -EINVAL);
	TU_ASSERT_ERR(tt_profile_write("goroutine", 1, NULL, NULL), -EINVAL);
	TU_ASSERT_ERR(tt_profile_write_fd("goroutine", 1, -1), -EBADF);
	/* goroutineleak: nothing proven leaked here. */
	s.len = 0;
	TU_ASSERT_OK(tt_profile_write("goroutineleak", 1, tu_sink_write, &s));
	assert_string_equal(s.p, "goroutineleak profile: total 0\n");
	free(s.p);
	TU_ASSERT_OK(tt_chan_close(block_ch));
	tt_yield();
}

/* Goroutines parked at one line are one group whichever thread each
 * runs on: one waiting on its own thread's channel and one waiting on
 * another thread's have the same stack. */
static void test_debug1_one_group_any_thread(void **state)
{
	(void)state;
	block_ch = tu_chan(sizeof(int), 0);
	for (int i = 0; i < 64; i++)
		tt_go(park_recv, NULL);
	TU_WAIT_QUEUED(block_ch, false, 64);
	tu_sink s = {0};
	TU_ASSERT_OK(tt_profile_write("goroutine", 1, tu_sink_write, &s));
	TU_ASSERT_CONTAINS(s.p, "goroutine profile: total 65\n");
	TU_ASSERT_CONTAINS(s.p, "\n64 @ 0x");
	free(s.p);
	TU_ASSERT_OK(tt_chan_close(block_ch));
	TU_WAIT_FOR(tt_num_goroutine() <= 1, 5 * TT_SECOND);
}

/* A writer that fails stops the write and its error comes back. */
static int failing(void *arg, const void *d, size_t n)
{
	(void)arg;
	(void)d;
	(void)n;
	return -EPIPE;
}

static void test_writer_error(void **state)
{
	(void)state;
	TU_ASSERT_ERR(tt_profile_write("goroutine", 2, failing, NULL), -EPIPE);
}

/* ---- minutes ------------------------------------------------------------ */

static void test_minutes(void **state)
{
	(void)state;
	uintptr_t pcs[1] = {(uintptr_t)park_recv + 4};
	tt__gsnap g = {.id = 42, .state = TT_G_WAITING,
		       .reason = TT_WAIT_CHAN_RECV, .pcs = pcs, .npcs = 1};
	int64_t now = tt_now() + 10 * TT_MINUTE;
	tt__buf b = {0};
	g.wait_since = now - 59 * TT_SECOND;
	tt__write_goroutine(&b, &g, now);
	tt__buf_put(&b, "", 1);
	TU_ASSERT_CONTAINS(b.data, "goroutine 42 [chan receive]:\n");
	b.len = 0;
	g.wait_since = now - 3 * TT_MINUTE - 5 * TT_SECOND;
	tt__write_goroutine(&b, &g, now);
	tt__buf_put(&b, "", 1);
	TU_ASSERT_CONTAINS(b.data, "goroutine 42 [chan receive, 3 minutes]:\n");
	/* Go says "1 minutes", and so does tether. */
	b.len = 0;
	g.wait_since = now - TT_MINUTE;
	tt__write_goroutine(&b, &g, now);
	tt__buf_put(&b, "", 1);
	TU_ASSERT_CONTAINS(b.data, "[chan receive, 1 minutes]:\n");
	tt__buf_free(&b);
}

/* ---- SIGQUIT, panics, deadlock ----------------------------------------- */

static void child_sigquit(void)
{
	block_ch = tu_chan(sizeof(int), 0);
	TU_ASSERT_OK(tt_traceback_on_sigquit(true));
	tt_go(park_recv, NULL);
	tt_yield();
	raise(SIGQUIT);
	_exit(0); /* not reached */
}

static void child_sigquit_off(void)
{
	TU_ASSERT_OK(tt_traceback_on_sigquit(true));
	TU_ASSERT_OK(tt_traceback_on_sigquit(false));
	raise(SIGQUIT);
	_exit(0);
}

static void child_deadlock(void)
{
	block_ch = tu_chan(sizeof(int), 0);
	tt_go(park_recv, NULL);
	int v;
	TU_UNCHECKED(tt_chan_recv(block_ch, &v, sizeof v, NULL));
	_exit(0);
}

static void child_panic(void)
{
	tt_chan *c = tu_chan(0, 0);
	tt_chan_close(c);
	tt_chan_close(c);
	_exit(0);
}

static void test_reports(void **state)
{
	(void)state;
	TU_REQUIRE_THREADS();
	tu_child c;
	char why[64];

	TU_ASSERT_OK(tu_spawn_self("sigquit", 30 * TT_SECOND, &c));
	TU_ASSERT_MSG(c.exited && c.exit_code == 2, "sigquit child %s",
		      tu_child_describe(&c, why, sizeof why));
	TU_ASSERT_CONTAINS(c.err, "SIGQUIT: quit\n\ngoroutine 1 [running]:\n");
	TU_ASSERT_CONTAINS(c.err, "[chan receive]:\n");
	TU_ASSERT_CONTAINS(c.err, "park_recv(...)\n");
	tu_child_free(&c);

	TU_ASSERT_OK(tu_spawn_self("sigquit_off", 30 * TT_SECOND, &c));
	TU_ASSERT_MSG(c.signaled && c.term_sig == SIGQUIT, "child %s",
		      tu_child_describe(&c, why, sizeof why));
	TU_ASSERT_NOT_CONTAINS(c.err, "goroutine");
	tu_child_free(&c);

	TU_ASSERT_OK(tu_spawn_self("deadlock", 30 * TT_SECOND, &c));
	TU_ASSERT_MSG(c.exited && c.exit_code == 2, "deadlock child %s",
		      tu_child_describe(&c, why, sizeof why));
	TU_ASSERT_CONTAINS(c.err, "fatal error: all goroutines are asleep - "
				  "deadlock!\n\ngoroutine 1 [chan receive]:\n");
	TU_ASSERT_CONTAINS(c.err, "child_deadlock(...)\n");
	TU_ASSERT_CONTAINS(c.err, "park_recv(...)\n");
	tu_child_free(&c);

	TU_ASSERT_OK(tu_spawn_self("panic", 30 * TT_SECOND, &c));
	TU_ASSERT_MSG(c.signaled && c.term_sig == SIGABRT, "panic child %s",
		      tu_child_describe(&c, why, sizeof why));
	TU_ASSERT_CONTAINS(c.err, "tether: panic: close of closed channel\n\n"
				  "goroutine 1 [running]:\ntt_chan_close(...)");
	TU_ASSERT_CONTAINS(c.err, "child_panic(...)\n");
	tu_child_free(&c);
}

/* ---- shared-stack goroutines ----------------------------------------- */

static NOINLINE void deep(int k)
{
	if (k) {
		deep(k - 1);
		__asm__ volatile("");
		return;
	}
	int v;
	TU_UNCHECKED(tt_chan_recv(block_ch, &v, sizeof v, NULL));
	__asm__ volatile("");
}

static NOINLINE void deep_entry(void *arg)
{
	deep((int)(intptr_t)arg);
	__asm__ volatile("");
}

/* Their frames are copied out of the shared region while parked; the
 * dump must still show each one's own stack. */
static void test_shared_stack_goroutines(void **state)
{
	(void)state;
	block_ch = tu_chan(sizeof(int), 0);
	tt_go_attr at = {.shared_stack = true};
	for (intptr_t i = 0; i < 30; i++)
		tu_go_with(&at, deep_entry, (void *)(i % 3));
	tt_yield();
	tu_sink s = {0};
	TU_ASSERT_OK(tt_profile_write("goroutine", 1, tu_sink_write, &s));
	/* Three groups of 10, with 1, 2 and 3 frames of deep(). */
	for (int depth = 1; depth <= 3; depth++) {
		char want[256] = "10 @ 0x";
		const char *p = s.p;
		bool found = false;
		while ((p = strstr(p, want)) != NULL) {
			const char *end = strstr(p, "\n\n");
			int frames = 0;
			for (const char *q = p; q && q < end;
			     q = strstr(q + 1, "\tdeep+0x"))
				if (q != p)
					frames++;
			if (frames == depth) {
				found = true;
				break;
			}
			p++;
		}
		TU_ASSERT_MSG(found, "no group of 10 with %d deep() frames in:\n%s",
			      depth, s.p);
	}
	free(s.p);
	TU_ASSERT_OK(tt_chan_close(block_ch));
	tt_yield();
}

/* ---- a big profile does not stop the others ----------------------------
 *
 * SLOW goroutines park at depths that are all different (a recursion and
 * an alloca), so that the unwinder's shape cache misses on nearly every
 * one and each costs a full CFI walk: the snapshot of them takes far
 * longer than a slice. Meanwhile:
 *  - a spinner yields in a loop and keeps the longest time, in this
 *    thread's CPU time (immune to the machine's load: the thread did
 *    nothing else in between), that it was kept from running;
 *  - a waker wakes WOKEN waiters, a few per turn, and each woken one
 *    ends at once: during the snapshot, some are recorded when they
 *    resume (before they change), the rest by the walk — all must be in
 *    the profile, once each, in one group, as they were when it began. */
#define SLOW 3000
#define WOKEN 400

static tt_chan *slice_block, *wake_ch;
/* Shared by the spinner, the waiters and the test with nothing else
 * ordering them (switching goroutines does not): C11 atomics, relaxed,
 * as each is a flag or a count read on its own. */
static bool slice_stop, spin_reset;
static int64_t spin_max_gap, spin_turns;
static int64_t woken_ended;
/* The waker wakes no more than this many in all: each level of the
 * test lets it wake a fifth of the waiters, so some are left asleep for
 * every level however slow the writes are. */
static int64_t wake_sent, wake_limit;
static int waiter_line;

static int64_t thread_cpu(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
	return (int64_t)ts.tv_sec * TT_SECOND + ts.tv_nsec;
}

static NOINLINE void slow_park(int depth)
{
	if (depth > 0) {
		slow_park(depth - 1);
		__asm__ volatile("");
		return;
	}
	int v;
	TU_UNCHECKED(tt_chan_recv(slice_block, &v, sizeof v, NULL));
	__asm__ volatile("");
}

static NOINLINE void slow_main(void *arg)
{
	uintptr_t i = (uintptr_t)arg;
	volatile char *pad = __builtin_alloca(16 + (i % 400) * 16);
	pad[0] = 1;
	slow_park((int)(i / 400) % 8);
	__asm__ volatile("" ::"r"(pad));
}

/* Each waiter's name is a heap copy of "waiter" that is spoiled and
 * freed right after the waiter ends (by the waker, on its next turn): a
 * profile must not read a name after its goroutine has ended. */
static char *dead_names[WOKEN];
static int ndead;
static tt_mutex *dead_mu; /* guards dead_names and ndead */

static void free_dead_names(void)
{
	tt_mutex_lock(dead_mu);
	for (int i = 0; i < ndead; i++) {
		memset(dead_names[i], 'X', strlen(dead_names[i]));
		free(dead_names[i]);
	}
	ndead = 0;
	tt_mutex_unlock(dead_mu);
}

static NOINLINE void waiter_main(void *arg)
{
	int v;
	__atomic_store_n(&waiter_line, __LINE__ + 1, __ATOMIC_RELAXED);
	TU_UNCHECKED(tt_chan_recv(wake_ch, &v, sizeof v, NULL));
	__atomic_fetch_add(&woken_ended, 1, __ATOMIC_RELAXED);
	tt_mutex_lock(dead_mu);
	dead_names[ndead++] = arg;
	tt_mutex_unlock(dead_mu);
	__asm__ volatile("");
}

/* The waker and the spinner that have ended: wake_ch is closed only
 * after, as either may be on another thread, between its look at
 * slice_stop and its send. */
static int senders_done;

static void spinner(void *arg)
{
	(void)arg;
	int64_t last = thread_cpu();
	while (!__atomic_load_n(&slice_stop, __ATOMIC_RELAXED)) {
		tt_yield();
		int64_t now = thread_cpu();
		if (__atomic_load_n(&spin_reset, __ATOMIC_RELAXED)) {
			/* Main worked on its own since: not a gap. */
			__atomic_store_n(&spin_reset, false, __ATOMIC_RELAXED);
			last = now;
			continue;
		}
		int64_t gap = now - last;
		if (gap > __atomic_load_n(&spin_max_gap, __ATOMIC_RELAXED))
			__atomic_store_n(&spin_max_gap, gap, __ATOMIC_RELAXED);
		last = now;
		__atomic_fetch_add(&spin_turns, 1, __ATOMIC_RELAXED);
	}
	__atomic_fetch_add(&senders_done, 1, __ATOMIC_RELEASE);
}

static void waker(void *arg)
{
	(void)arg;
	while (!__atomic_load_n(&slice_stop, __ATOMIC_RELAXED)) {
		free_dead_names();
		for (int k = 0; k < 4; k++) {
			if (__atomic_load_n(&wake_sent, __ATOMIC_RELAXED) >=
			    __atomic_load_n(&wake_limit, __ATOMIC_RELAXED))
				break;
			int v = 1;
			tt_case c = TT_CASE_SEND_FROM(wake_ch, &v);
			/* To a waiter only. */
			if (tt_select(&c, 1, TT_TRY) == 0)
				__atomic_fetch_add(&wake_sent, 1,
						   __ATOMIC_RELAXED);
		}
		tt_yield();
	}
	__atomic_fetch_add(&senders_done, 1, __ATOMIC_RELEASE);
}

static void test_profile_slices(void **state)
{
	(void)state;
	if (tu_emulated()) {
		/* Under qemu-user one goroutine's unwind can take longer
		 * than a whole slice natively (300 goroutines: a 42 s write
		 * with 1.3 s gaps), so the bounds say nothing there. */
		print_message("skipped under an emulator: its unwinding is "
			      "too slow for the slice bounds to mean anything\n");
		skip();
	}
	/* A waiter hands its name to the waker for freeing before it ends:
	 * at one P nothing runs between that and its end, as it never parks
	 * again. At two Ps its unlock of dead_mu (main's) parks it, still
	 * alive and listed, and the waker could free the name under it,
	 * against tt_go_attr.name's rule that the name outlive the
	 * goroutine. */
	tu_one_p();
	slice_block = tu_chan(sizeof(int), 0);
	wake_ch = tu_chan(sizeof(int), 0);
	slice_stop = false;
	woken_ended = 0;
	wake_sent = 0;
	wake_limit = 0;
	senders_done = 0;
	TU_ASSERT_OK(tt_mutex_make(&dead_mu));
	/* Waiters first: the walk (newest first) reaches them last, after
	 * the waker has had many turns. */
	ndead = 0;
	for (int i = 0; i < WOKEN; i++) {
		char *nm = strdup("waiter");
		tt_go_attr named = {.name = nm};
		tu_go_with(&named, waiter_main, nm);
	}
	tt_go_attr small = {.stack_size = 32 * 1024};
	for (uintptr_t i = 0; i < SLOW; i++)
		tu_go_with(&small, slow_main, (void *)i);
	tu_go(waker, NULL);
	tu_go(spinner, NULL);
	/* The symbolizer reads the DWARF on first use: not part of this. */
	char warm[4096];
	tt_stack_dump(warm, sizeof warm, false);
	tt_yield();

	const char *what[] = {"debug=2", "debug=1", "debug=0", "page"};
	for (int level = 2; level >= -1; level--) {
		__atomic_store_n(&spin_reset, true, __ATOMIC_RELAXED);
		tt_yield();
		__atomic_store_n(&spin_max_gap, 0, __ATOMIC_RELAXED);
		__atomic_store_n(&spin_turns, 0, __ATOMIC_RELAXED);
		int64_t woken0 =
			__atomic_load_n(&woken_ended, __ATOMIC_RELAXED);
		__atomic_store_n(&wake_limit,
				 __atomic_load_n(&wake_sent, __ATOMIC_RELAXED) +
					 WOKEN / 5,
				 __ATOMIC_RELAXED);
		int64_t alive = tt_num_goroutine();
		int64_t cpu0 = thread_cpu();
		tu_sink s = {0};
		if (level >= 0) {
			TU_ASSERT_OK(tt_profile_write("goroutine", level,
						      tu_sink_write, &s));
		} else {
			tt__buf b = {0};
			tt__page_opts o = {.min_wait = TT_MINUTE};
			tt__page_hist *h = NULL;
			char why[200];
			/* Twice: the second view is compared with the
			 * first. */
			TU_ASSERT_OK(tt__debug_page(&b, &o, &h, why,
						    sizeof why));
			tt__buf_free(&b);
			b = (tt__buf){0};
			TU_ASSERT_OK(tt__debug_page(&b, &o, &h, why,
						    sizeof why));
			tt__buf_put(&b, "", 1); /* a string */
			TU_ASSERT_OK(b.err);
			TU_ASSERT_CONTAINS(b.data, "Compared since snapshot");
			free(h);
			s.p = b.data;
			s.len = b.len - 1;
		}
		int64_t cpu = thread_cpu() - cpu0;
		const char *w = what[2 - level];
		int64_t turns = __atomic_load_n(&spin_turns, __ATOMIC_RELAXED);
		int64_t max_gap = __atomic_load_n(&spin_max_gap,
						  __ATOMIC_RELAXED);
		/* It took many slices; the others ran between them, never
		 * kept out for more than a few. (Stopped, the snapshot alone
		 * is one gap of the whole time.) */
		TU_ASSERT_MSG(turns >= 5,
			      "%s: the spinner ran %lld times in %lld ms of "
			      "CPU", w, (long long)turns,
			      (long long)(cpu / TT_MILLISECOND));
		TU_ASSERT_MSG(max_gap < 40 * TT_MILLISECOND,
			      "%s: the spinner was kept out for %lld ms of "
			      "CPU (the whole write took %lld ms)",
			      w, (long long)(max_gap / TT_MILLISECOND),
			      (long long)(cpu / TT_MILLISECOND));
		if (level == 2) {
			/* Every goroutine alive when it began, once, in id
			 * order after the writer's own; the woken waiters
			 * that ended meanwhile as they were. */
			TU_ASSERT_GT(__atomic_load_n(&woken_ended,
						     __ATOMIC_RELAXED),
				     woken0);
			int64_t n = 0, prev = 0, waiting_recv = 0;
			char want[300];
			int wline = __atomic_load_n(&waiter_line,
						    __ATOMIC_RELAXED);
			snprintf(want, sizeof want, "waiter_main(...)\n\t%s:%d ",
				 __FILE__, wline);
			for (const char *p = s.p; (p = strstr(p, "goroutine "));
			     p++) {
				if (p != s.p && p[-1] != '\n')
					continue;
				long long id = atoll(p + 10);
				if (n > 1)
					TU_ASSERT_GT(id, prev);
				prev = id;
				n++;
				const char *e = strstr(p, "\n\n");
				TU_ASSERT(e != NULL);
				if (memmem(p, (size_t)(e - p), want,
					   strlen(want))) {
					/* Parked at T, or woken and not
					 * yet run. */
					const char *st = strchr(p, '[');
					TU_ASSERT_MSG(
						strncmp(st, "[chan receive]:",
							15) == 0 ||
							strncmp(st,
								"[runnable]:",
								11) == 0,
						"%.*s", (int)(e - p), p);
					waiting_recv++;
				}
			}
			TU_ASSERT_EQ(n, alive);
			TU_ASSERT_EQ(waiting_recv, WOKEN - woken0);
		}
		if (level == 1) {
			/* The waiters, recorded either way, are one group,
			 * under their name as it was. (On two threads a
			 * woken one may park in tt_mutex_lock after its
			 * count: another group, not a waiter any more.) */
			int groups = 0;
			long long count = 0;
			static const char label[] =
				"\n# labels: {\"name\":\"waiter\"}\n";
			for (const char *p = s.p; (p = strstr(p, "\n\n")); p++) {
				const char *e = strstr(p + 2, "\n\n");
				if (!e)
					e = p + strlen(p);
				if (memmem(p + 2, (size_t)(e - p - 2),
					   "\twaiter_main+", 13) &&
				    memmem(p + 2, (size_t)(e - p - 2),
					   "\ttt_chan_recv+", 14)) {
					groups++;
					count += atoll(p + 2);
					TU_ASSERT_MSG(
						memmem(p + 1, (size_t)(e - p - 1),
						       label, sizeof label - 1),
						"%.*s", (int)(e - p), p);
				}
			}
			TU_ASSERT_EQ(groups, 1);
			TU_ASSERT_EQ(count, WOKEN - woken0);
		}
		free(s.p);
	}
	__atomic_store_n(&slice_stop, true, __ATOMIC_RELAXED);
	TU_WAIT_FOR(__atomic_load_n(&senders_done, __ATOMIC_ACQUIRE) == 2,
		    10 * TT_SECOND);
	TU_ASSERT_OK(tt_chan_close(slice_block));
	TU_ASSERT_OK(tt_chan_close(wake_ch));
	TU_WAIT_FOR(tt_num_goroutine() <= 1, 10 * TT_SECOND);
	free_dead_names();
	TU_ASSERT_OK(tt_mutex_release(dead_mu));
}

int main(int argc, char **argv)
{
	static const tu_child_case children[] = {
		{"dump_layout", child_dump_layout},
		{"sigquit", child_sigquit},
		{"sigquit_off", child_sigquit_off},
		{"deadlock", child_deadlock},
		{"panic", child_panic},
	};
	tu_child_dispatch(argc, argv, children,
			  sizeof children / sizeof children[0]);
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_dump_layout_child),
		TU_TEST(test_debug1_groups),
		TU_TEST(test_debug1_one_group_any_thread),
		TU_TEST(test_writer_error),
		TU_TEST(test_minutes),
		TU_TEST(test_shared_stack_goroutines),
		TU_TEST(test_profile_slices),
		cmocka_unit_test(test_reports),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
