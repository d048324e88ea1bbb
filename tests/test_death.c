/* tether tests — panics and fatal errors, each in a child process.
 *
 * Every case below runs in a fresh copy of this binary (tu_spawn_self:
 * no cmocka signal handlers, a scheduler made from scratch, so the main
 * goroutine is goroutine 1 as go.h promises). The parent checks what the
 * child printed on stderr and how it ended: Go's panics print
 * "tether: panic: <what>" with the goroutine's header and abort
 * (SIGABRT); a deadlock prints Go's "fatal error: all goroutines are
 * asleep - deadlock!" with every goroutine and exits with status 2.
 *
 * A child that gets past the point where it should have died prints
 * "tu-survived" and exits 0, which fails the test. */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif

#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "testutil.h"
#include "chan_queued.h"

#define CHILD_TIMEOUT (60 * TT_SECOND)

static void survived(void)
{
	fprintf(stderr, "tu-survived\n");
}

/* For a child whose goroutine must end the process: main waits for it
 * rather than return, which would end the process first when the
 * goroutine runs on another P (as in Go, main's return ends the
 * program). Prints tu-survived if nothing ended it. */
static void await_death(void)
{
	tt_sleep(10 * TT_SECOND);
	survived();
}

/* Print a marker the parent reads back: which goroutine should be named
 * in the report. */
static void mark_goid(void)
{
	fprintf(stderr, "tu-goid=%lld\n", (long long)tt_goid());
}

/* Print the line the next call is on, as "tu-line=N", then make it: the
 * parent checks the stack names that line of this file. Both halves
 * expand on the caller's line, so __LINE__ is the call's. Written with
 * write(2) from a static buffer: stdio takes kilobytes of stack, and some
 * callers run on 16 KiB. */
static char line_buf[32];
#define AT_LINE(call)                                                        \
	do {                                                                 \
		int len_ = snprintf(line_buf, sizeof line_buf,               \
				    "tu-line=%d\n", __LINE__);               \
		(void)!write(2, line_buf, (size_t)len_);                     \
		TU_UNCHECKED(call);                                          \
	} while (0)

/* As mark_goid, without stdio (for small stacks). */
static void mark_goid_small(void)
{
	int n = snprintf(line_buf, sizeof line_buf, "tu-goid=%lld\n",
			 (long long)tt_goid());
	(void)!write(2, line_buf, (size_t)n);
}

/* A few goroutines that come and go, so the ids in the reports are not
 * trivially 1 and 2. */
static void nothing(void *arg)
{
	(void)arg;
}

static void burn_ids(int n)
{
	for (int i = 0; i < n; i++)
		tt_go(nothing, NULL);
}

/* ---- child cases ------------------------------------------------------------ */

static void child_close_closed(void)
{
	tt_chan *c = NULL;
	if (tt_chan_make(&c, sizeof(int), 1) != 0)
		return;
	mark_goid();
	tt_chan_close(c);
	tt_chan_close(c);
	survived();
}

static void child_close_nil(void)
{
	mark_goid();
	tt_chan_close(NULL);
	survived();
}

static void child_send_closed(void)
{
	tt_chan *c = NULL;
	if (tt_chan_make(&c, sizeof(int), 4) != 0)
		return;
	tt_chan_close(c);
	mark_goid();
	int v = 1;
	/* Even with TT_TRY and room in the buffer: Go's select with a
	 * default case panics too. */
	TU_UNCHECKED(tt_chan_send_until(c, &v, sizeof v, TT_TRY));
	survived();
}

static void send_closed_in_goroutine(void *arg)
{
	tt_chan *c = arg;
	mark_goid();
	int v = 1;
	AT_LINE(tt_send(c, &v));
	survived();
}

static void child_send_closed_goroutine(void)
{
	tt_chan *c = NULL;
	if (tt_chan_make(&c, sizeof(int), 0) != 0)
		return;
	tt_chan_close(c);
	burn_ids(3);
	tt_go(send_closed_in_goroutine, c);
	await_death();
}

/* The same in a goroutine with the smallest stack tt_go_with allows:
 * printing the panic's stack must not need more. */
static void send_closed_small(void *arg)
{
	tt_chan *c = arg;
	mark_goid_small();
	int v = 1;
	AT_LINE(tt_send(c, &v));
	survived();
}

static void child_send_closed_small_stack(void)
{
	tt_chan *c = NULL;
	if (tt_chan_make(&c, sizeof(int), 0) != 0)
		return;
	tt_chan_close(c);
	burn_ids(2);
	tt_go_attr attr;
	memset(&attr, 0, sizeof attr);
	attr.stack_size = 16 * 1024;
	tt_go_with(&attr, send_closed_small, c);
	await_death();
}

/* A goroutine on a 16 KiB stack dumps its own stack. */
static char dump_buf[64 * 1024];

static void dump_small(void *arg)
{
	mark_goid_small();
	size_t n;
	AT_LINE(n = tt_stack_dump(dump_buf, sizeof dump_buf, false));
	(void)!write(2, dump_buf, n < sizeof dump_buf ? n : sizeof dump_buf);
	static const char done[] = "\ntu-dumped\n";
	(void)!write(2, done, sizeof done - 1);
	tu_done(arg);
}

/* SIGQUIT (TETHER_TRACEBACK) taken in a goroutine on a 16 KiB stack:
 * the handler runs there, and the dump must still print. */
static int sigquit_used_kib;

/* Uses about 1 KiB of stack a level, then raises SIGQUIT. */
static __attribute__((noinline)) int quit_deep(int kib)
{
	volatile char pad[1024];
	pad[0] = (char)kib;
	if (kib > 1)
		return quit_deep(kib - 1) + pad[0];
	AT_LINE(raise(SIGQUIT));
	return pad[0];
}

static void sigquit_small(void *arg)
{
	(void)arg;
	mark_goid_small();
	quit_deep(sigquit_used_kib);
	survived();
}

static void child_sigquit_small_stack(void)
{
	/* The goroutine raises SIGQUIT on its own thread: a P's worker
	 * blocks process signals (procs.c), so it runs on main's. */
	tt_runtime_procs_set(1);
	if (tt_traceback_on_sigquit(true) != 0)
		return;
	/* Leave the goroutine about 3 KiB once the kernel's signal frame
	 * (at least _SC_MINSIGSTKSZ) is on it: enough for the handler to
	 * move to the runtime stack, less than the dump needs (5 KiB and
	 * more on x86-64). */
	long sig = 0;
#ifdef _SC_MINSIGSTKSZ
	sig = sysconf(_SC_MINSIGSTKSZ);
#endif
	if (sig < 2048)
		sig = 2048;
	sigquit_used_kib = (int)((16 * 1024 - 1024 - sig) / 1024) - 3;
	burn_ids(2);
	tt_go_attr attr;
	memset(&attr, 0, sizeof attr);
	attr.stack_size = 16 * 1024;
	tt_go_with(&attr, sigquit_small, NULL);
	await_death();
}

static void child_stack_dump_small_stack(void)
{
	burn_ids(2);
	tt_go_attr attr;
	memset(&attr, 0, sizeof attr);
	attr.stack_size = 16 * 1024;
	tt_chan *done = tu_chan(0, 0);
	tt_go_with(&attr, dump_small, done);
	TU_WAIT_DONE(done, 1, 10 * TT_SECOND);
}

static void parked_sender(void *arg)
{
	tt_chan *c = arg;
	mark_goid();
	int v = 1;
	AT_LINE(tt_send(c, &v)); /* parks: nobody receives; then the close */
	survived();
}

static void child_parked_sender_closed(void)
{
	tt_chan *c = NULL;
	if (tt_chan_make(&c, sizeof(int), 0) != 0)
		return;
	burn_ids(2);
	tt_go(parked_sender, c);
	TU_WAIT_QUEUED(c, true, 1);
	fprintf(stderr, "tu-parked\n");
	tt_chan_close(c);
	fprintf(stderr, "tu-closed\n");
	/* Let the sender run: it must panic. */
	tt_sleep(2 * TT_SECOND);
	survived();
}

static void parked_select_sender(void *arg)
{
	tt_chan **cs = arg;
	mark_goid();
	int v = 1, w = 0;
	tt_case cases[2] = {TT_CASE_RECV_INTO(cs[0], &w, NULL),
			    TT_CASE_SEND_FROM(cs[1], &v)};
	AT_LINE(tt_select(cases, 2, TT_FOREVER));
	survived();
}

static void child_select_send_closed(void)
{
	static tt_chan *cs[2];
	if (tt_chan_make(&cs[0], sizeof(int), 0) != 0 ||
	    tt_chan_make(&cs[1], sizeof(int), 0) != 0)
		return;
	burn_ids(1);
	tt_go(parked_select_sender, cs);
	TU_WAIT_QUEUED(cs[1], true, 1);
	tt_chan_close(cs[1]);
	tt_sleep(2 * TT_SECOND);
	survived();
}

static void child_select_send_closed_ready(void)
{
	tt_chan *c = NULL;
	if (tt_chan_make(&c, sizeof(int), 1) != 0)
		return;
	tt_chan_close(c);
	mark_goid();
	int v = 1;
	tt_case cases[1] = {TT_CASE_SEND_FROM(c, &v)};
	TU_UNCHECKED(tt_select(cases, 1, TT_TRY));
	survived();
}

static void child_deadlock_recv(void)
{
	tt_chan *c = NULL;
	if (tt_chan_make(&c, sizeof(int), 0) != 0)
		return;
	int v;
	TU_UNCHECKED(tt_recv(c, &v, NULL)); /* nobody will ever send */
	survived();
}

static void blocked_sender(void *arg)
{
	tt_chan *c = arg;
	mark_goid();
	int v = 1;
	TU_UNCHECKED(tt_send(c, &v));
}

static void child_deadlock_many(void)
{
	tt_chan *a = NULL, *b = NULL;
	if (tt_chan_make(&a, sizeof(int), 0) != 0 ||
	    tt_chan_make(&b, sizeof(int), 0) != 0)
		return;
	burn_ids(4);
	tt_go(blocked_sender, a);
	int v;
	TU_UNCHECKED(tt_recv(b, &v, NULL));
	survived();
}

static void child_deadlock_nil(void)
{
	int v;
	TU_UNCHECKED(tt_chan_recv(NULL, &v, sizeof v, NULL));
	survived();
}

static void child_deadlock_select_empty(void)
{
	TU_UNCHECKED(tt_select(NULL, 0, TT_FOREVER));
	survived();
}

static void child_deadlock_after_timers(void)
{
	/* A sleeper keeps the program alive; once it is done, main blocks
	 * alone: deadlock. */
	tt_chan *c = NULL;
	if (tt_chan_make(&c, sizeof(int), 0) != 0)
		return;
	tt_sleep(20 * TT_MILLISECOND);
	int v;
	TU_UNCHECKED(tt_recv(c, &v, NULL));
	survived();
}

/* Recursion with no end the compiler can see. */
static volatile int depth_limit = 1 << 30;

static __attribute__((noinline)) int overflow(int n)
{
	volatile char buf[512];
	buf[0] = (char)n;
	buf[sizeof buf - 1] = (char)(n >> 8);
	if (n >= depth_limit)
		return buf[0];
	return overflow(n + 1) + buf[sizeof buf - 1];
}

static void overflow_goroutine(void *arg)
{
	(void)arg;
	fprintf(stderr, "tu-overflow-goid=%lld\n", (long long)tt_goid());
	int r = overflow(0);
	fprintf(stderr, "tu-result=%d\n", r);
	survived();
}

static void child_stack_overflow(void)
{
	burn_ids(5);
	tt_go(overflow_goroutine, NULL);
	await_death();
}

static void child_stack_overflow_parked(void)
{
	/* The overflowing goroutine is not the first to run, and others
	 * are parked at the time. */
	tt_chan *c = NULL;
	if (tt_chan_make(&c, sizeof(int), 0) != 0)
		return;
	for (int i = 0; i < 10; i++)
		tt_go(blocked_sender, c);
	tt_go_attr attr;
	memset(&attr, 0, sizeof attr);
	attr.stack_size = 128 * 1024;
	tt_go_with(&attr, overflow_goroutine, NULL);
	await_death();
}

static void child_stack_overflow_mprotect(void)
{
	/* The same with the guard fallback forced (read at startup). */
	setenv("TETHER_GUARD", "mprotect", 1);
	child_stack_overflow();
}

static void child_goexit_main(void)
{
	tt_goexit();
	survived();
}

static void *use_from_thread(void *arg)
{
	TU_UNCHECKED(tt_chan_close(arg)); /* closed already */
	return NULL;
}

static void join_thread(void *arg)
{
	pthread_join(*(pthread_t *)arg, NULL);
}

static void child_foreign_thread(void)
{
	tt_chan *c = NULL;
	if (tt_chan_make(&c, sizeof(int), 0) != 0 || tt_chan_close(c) != 0)
		return;
	pthread_t th;
	if (pthread_create(&th, NULL, use_from_thread, c) != 0)
		return;
	/* Parked in tether: the pthread's close is main's to run. */
	TU_UNCHECKED(tt_blocking(join_thread, &th));
	survived();
}

/* ---- the parent side --------------------------------------------------------------- */

static void spawn(const char *name, tu_child *c)
{
	int r = tu_spawn_self(name, CHILD_TIMEOUT, c);
	if (r != 0)
		fail_msg("could not start child %s: %d", name, r);
	assert_false(c->timed_out);
	TU_ASSERT_NOT_CONTAINS(c->err, "tu-survived");
	TU_ASSERT_NOT_CONTAINS(c->err, "no child case named");
}

/* The report line "goroutine N [running]:" for the marked goroutine. */
static void assert_names_goroutine(const tu_child *c, const char *state)
{
	long long id = tu_child_marker(c, "tu-goid");
	assert_true(id > 0);
	char want[96];
	snprintf(want, sizeof want, "goroutine %lld [%s]:", id, state);
	TU_ASSERT_CONTAINS(c->err, want);
}

/* The stack in c names `func` and, in the frame below it, this file at
 * the line the child marked with AT_LINE. */
static void assert_frame_at_line(const tu_child *c, const char *func)
{
	long long line = tu_child_marker(c, "tu-line");
	assert_true(line > 0);
	char want[160];
	snprintf(want, sizeof want, "\n%s(", func);
	const char *f = strstr(c->err, want);
	if (f == NULL)
		fail_msg("no frame %s in:\n%s", func, c->err);
	snprintf(want, sizeof want, "\t%s:%lld +0x", __FILE__, line);
	const char *at = strstr(f, want);
	const char *next = strchr(strchr(f + 1, '\n') + 1, '\n');
	if (at == NULL || next == NULL || at > next)
		fail_msg("frame %s is not at %s:%lld in:\n%s", func, __FILE__,
			 line, c->err);
}

/* The child `name` panicked with `what`, naming the marked goroutine,
 * and (if `also` is not NULL) printed `also` on the way. */
static void assert_panic_in(const char *name, const char *what,
			    const char *func, const char *created_by)
{
	tu_child c;
	spawn(name, &c);
	TU_ASSERT_CHILD_SIGNAL(&c, SIGABRT);
	char want[160];
	snprintf(want, sizeof want, "tether: panic: %s\n", what);
	TU_ASSERT_CONTAINS(c.err, want);
	TU_ASSERT_NOT_CONTAINS(c.err, "stack overflow");
	assert_names_goroutine(&c, "running");
	assert_frame_at_line(&c, func);
	snprintf(want, sizeof want, "created by %s in goroutine ", created_by);
	TU_ASSERT_CONTAINS(c.err, want);
	tu_child_free(&c);
}

static void assert_panic(const char *name, const char *what,
			 bool check_goid, const char *also)
{
	tu_child c;
	spawn(name, &c);
	if (also)
		TU_ASSERT_CONTAINS(c.err, also);
	TU_ASSERT_CHILD_SIGNAL(&c, SIGABRT);
	char want[128];
	snprintf(want, sizeof want, "tether: panic: %s\n", what);
	TU_ASSERT_CONTAINS(c.err, want);
	TU_ASSERT_CONTAINS(c.err, "goroutine ");
	if (check_goid)
		assert_names_goroutine(&c, "running");
	/* The panic message comes before the stack. */
	const char *p = strstr(c.err, "tether: panic:");
	const char *g = strstr(c.err, "\ngoroutine ");
	assert_non_null(p);
	assert_non_null(g);
	assert_true(p < g);
	tu_child_free(&c);
}

static void test_death_close_closed(void **state)
{
	(void)state;
	assert_panic("close_closed", "close of closed channel", true, NULL);
}

static void test_death_close_nil(void **state)
{
	(void)state;
	assert_panic("close_nil", "close of nil channel", true, NULL);
}

static void test_death_send_closed(void **state)
{
	(void)state;
	assert_panic("send_closed", "send on closed channel", true, NULL);
}

static void test_death_send_closed_goroutine(void **state)
{
	(void)state;
	assert_panic("send_closed_goroutine", "send on closed channel", true,
		     NULL);
	assert_panic_in("send_closed_goroutine", "send on closed channel",
			"send_closed_in_goroutine",
			"child_send_closed_goroutine");
}

static void test_death_panic_small_stack(void **state)
{
	(void)state;
	assert_panic_in("send_closed_small_stack", "send on closed channel",
			"send_closed_small", "child_send_closed_small_stack");
}

static void test_death_sigquit_small_stack(void **state)
{
	(void)state;
	tu_child c;
	spawn("sigquit_small_stack", &c);
	TU_ASSERT_CHILD_EXIT(&c, 2);
	TU_ASSERT_NOT_CONTAINS(c.err, "stack overflow");
	TU_ASSERT_CONTAINS(c.err, "SIGQUIT: quit\n\ngoroutine ");
	assert_names_goroutine(&c, "running");
	assert_frame_at_line(&c, "quit_deep");
	TU_ASSERT_CONTAINS(c.err, "\nsigquit_small(");
	TU_ASSERT_CONTAINS(c.err,
			   "created by child_sigquit_small_stack in goroutine ");
	/* Every goroutine: the main one too. */
	TU_ASSERT_CONTAINS(c.err, "\ngoroutine 1 [");
	tu_child_free(&c);
}

static void test_death_stack_dump_small_stack(void **state)
{
	(void)state;
	tu_child c;
	spawn("stack_dump_small_stack", &c);
	TU_ASSERT_CHILD_EXIT(&c, 0);
	TU_ASSERT_NOT_CONTAINS(c.err, "stack overflow");
	TU_ASSERT_CONTAINS(c.err, "tu-dumped");
	assert_names_goroutine(&c, "running");
	assert_frame_at_line(&c, "dump_small");
	TU_ASSERT_CONTAINS(c.err,
			   "created by child_stack_dump_small_stack in goroutine ");
	tu_child_free(&c);
}

static void test_death_parked_sender_closed(void **state)
{
	(void)state;
	/* The close itself succeeds; the sender panics when it runs. */
	assert_panic("parked_sender_closed", "send on closed channel", true,
		     "tu-closed");
	assert_panic_in("parked_sender_closed", "send on closed channel",
			"parked_sender", "child_parked_sender_closed");
}

static void test_death_select_send_closed(void **state)
{
	(void)state;
	assert_panic("select_send_closed", "send on closed channel", true,
		     NULL);
	assert_panic_in("select_send_closed", "send on closed channel",
			"parked_select_sender", "child_select_send_closed");
	assert_panic("select_send_closed_ready", "send on closed channel",
		     true, NULL);
}

static void assert_deadlock(const char *name, tu_child *c)
{
	spawn(name, c);
	TU_ASSERT_CHILD_EXIT(c, 2);
	TU_ASSERT_CONTAINS(c->err,
			   "fatal error: all goroutines are asleep - "
			   "deadlock!");
}

static void test_death_deadlock(void **state)
{
	(void)state;
	tu_child c;
	assert_deadlock("deadlock_recv", &c);
	/* Go's layout: the main goroutine, with its wait reason. */
	TU_ASSERT_CONTAINS(c.err, "goroutine 1 [chan receive]:");
	tu_child_free(&c);

	assert_deadlock("deadlock_many", &c);
	TU_ASSERT_CONTAINS(c.err, "goroutine 1 [chan receive]:");
	assert_names_goroutine(&c, "chan send");
	tu_child_free(&c);

	assert_deadlock("deadlock_after_timers", &c);
	TU_ASSERT_CONTAINS(c.err, "goroutine 1 [chan receive]:");
	tu_child_free(&c);
}

static void test_death_deadlock_nil_and_empty_select(void **state)
{
	(void)state;
	tu_child c;
	assert_deadlock("deadlock_nil", &c);
	TU_ASSERT_CONTAINS(c.err, "goroutine 1 [chan receive (nil chan)]:");
	tu_child_free(&c);

	assert_deadlock("deadlock_select_empty", &c);
	TU_ASSERT_CONTAINS(c.err, "goroutine 1 [select (no cases)]:");
	tu_child_free(&c);
}

static void assert_overflow(const char *name)
{
	tu_child c;
	spawn(name, &c);
	long long id = tu_child_marker(&c, "tu-overflow-goid");
	assert_true(id > 1);
	char want[128];
	snprintf(want, sizeof want,
		 "tether: fatal error: stack overflow in goroutine %lld", id);
#if TU_ASAN
	/* ASan may see the overflow first and report it itself. */
	if (!tu_contains(c.err, want)) {
		TU_ASSERT_CONTAINS(c.err, "AddressSanitizer");
		assert_false(c.exited && c.exit_code == 0);
		tu_child_free(&c);
		return;
	}
#endif
	TU_ASSERT_CONTAINS(c.err, want);
	/* The number is the whole id, not a prefix of a longer one. */
	snprintf(want, sizeof want, "stack overflow in goroutine %lld ", id);
	bool space = tu_contains(c.err, want);
	snprintf(want, sizeof want, "stack overflow in goroutine %lld\n", id);
	assert_true(space || tu_contains(c.err, want));
	assert_true(c.signaled);
	assert_true(c.term_sig == SIGABRT || c.term_sig == SIGSEGV ||
		    c.term_sig == SIGBUS);
	tu_child_free(&c);
}

static void test_death_stack_overflow(void **state)
{
	(void)state;
	assert_overflow("stack_overflow");
	assert_overflow("stack_overflow_parked");
	assert_overflow("stack_overflow_mprotect");
}

static void test_death_goexit_main(void **state)
{
	(void)state;
	/* go.h: an error on the thread's first goroutine. Go reports "no
	 * goroutines (main called runtime.Goexit) - deadlock!". */
	tu_child c;
	spawn("goexit_main", &c);
	assert_false(c.exited && c.exit_code == 0);
	assert_true(tu_contains(c.err, "fatal error") ||
		    tu_contains(c.err, "panic"));
	TU_ASSERT_CONTAINS(c.err, "Goexit");
	tu_child_free(&c);
}

static void test_death_foreign_thread(void **state)
{
	(void)state;
	/* Every object works from any thread (test_foreign,
	 * test_shared_select, test_foreign_sync, test_ctx_threads), and
	 * Go's panics come with it: a pthread's close of main's channel,
	 * closed already, is run by main and panics on the pthread, with
	 * the pthread's stack. */
	TU_REQUIRE_THREADS();
	tu_child c;
	spawn("foreign_thread", &c);
	TU_ASSERT_CHILD_SIGNAL(&c, SIGABRT);
	TU_ASSERT_CONTAINS(c.err, "tether: panic: close of closed channel");
	TU_ASSERT_CONTAINS(c.err, "use_from_thread");
	TU_ASSERT_CONTAINS(c.err, "test_death.c:");
	tu_child_free(&c);
}

/* ---- the helpers themselves ------------------------------------------------------------ */

static void write_and_exit(void *arg)
{
	fprintf(stderr, "hello from the child: %s\n", (const char *)arg);
	exit(3);
}

static void raise_term(void *arg)
{
	(void)arg;
	fprintf(stderr, "about to die\n");
	raise(SIGTERM);
}

static void sleep_forever(void *arg)
{
	(void)arg;
	for (;;)
		pause();
}

static void panic_after_fork(void *arg)
{
	tt_chan *c = arg;
	tt_chan_close(c); /* already closed in the parent */
}

static void test_death_helpers(void **state)
{
	(void)state;
	tu_child c;
	/* An unknown case name is reported, not silently passed. */
	assert_int_equal(tu_spawn_self("no_such_case", CHILD_TIMEOUT, &c), 0);
	TU_ASSERT_CHILD_EXIT(&c, TU_CHILD_FAIL_STATUS);
	TU_ASSERT_CONTAINS(c.err, "no child case named");
	tu_child_free(&c);

	TU_REQUIRE_THREADS(); /* the rest forks */
	assert_int_equal(tu_fork_run(write_and_exit, "xyz", CHILD_TIMEOUT, &c),
			 0);
	TU_ASSERT_CHILD_EXIT(&c, 3);
	TU_ASSERT_CONTAINS(c.err, "hello from the child: xyz\n");
	assert_int_equal(c.err_len, strlen(c.err));
	tu_child_free(&c);

	assert_int_equal(tu_fork_run(raise_term, NULL, CHILD_TIMEOUT, &c), 0);
	TU_ASSERT_CHILD_SIGNAL(&c, SIGTERM);
	TU_ASSERT_CONTAINS(c.err, "about to die");
	tu_child_free(&c);

	assert_int_equal(tu_fork_run(sleep_forever, NULL, 200 * TT_MILLISECOND,
				     &c),
			 0);
	assert_true(c.timed_out);
	assert_true(c.signaled);
	assert_int_equal(c.term_sig, SIGKILL);
	tu_child_free(&c);

	/* A panic in a child forked from a process that already runs
	 * tether (the scheduler is inherited). */
	tt_chan *ch = tu_chan(sizeof(int), 0);
	TU_ASSERT_OK(tt_chan_close(ch));
	assert_int_equal(tu_fork_run(panic_after_fork, ch, CHILD_TIMEOUT, &c),
			 0);
	TU_ASSERT_CHILD_SIGNAL(&c, SIGABRT);
	TU_ASSERT_CONTAINS(c.err, "tether: panic: close of closed channel");
	tu_child_free(&c);
	TU_ASSERT_OK(tt_chan_release(ch));
}

static const tu_child_case child_cases[] = {
	{"close_closed", child_close_closed},
	{"close_nil", child_close_nil},
	{"send_closed", child_send_closed},
	{"send_closed_goroutine", child_send_closed_goroutine},
	{"send_closed_small_stack", child_send_closed_small_stack},
	{"stack_dump_small_stack", child_stack_dump_small_stack},
	{"sigquit_small_stack", child_sigquit_small_stack},
	{"parked_sender_closed", child_parked_sender_closed},
	{"select_send_closed", child_select_send_closed},
	{"select_send_closed_ready", child_select_send_closed_ready},
	{"deadlock_recv", child_deadlock_recv},
	{"deadlock_many", child_deadlock_many},
	{"deadlock_nil", child_deadlock_nil},
	{"deadlock_select_empty", child_deadlock_select_empty},
	{"deadlock_after_timers", child_deadlock_after_timers},
	{"stack_overflow", child_stack_overflow},
	{"stack_overflow_parked", child_stack_overflow_parked},
	{"stack_overflow_mprotect", child_stack_overflow_mprotect},
	{"goexit_main", child_goexit_main},
	{"foreign_thread", child_foreign_thread},
};

int main(int argc, char **argv)
{
	tu_child_dispatch(argc, argv, child_cases,
			  sizeof child_cases / sizeof child_cases[0]);
	const struct CMUnitTest tests[] = {
		TU_TEST(test_death_helpers),
		TU_TEST(test_death_close_closed),
		TU_TEST(test_death_close_nil),
		TU_TEST(test_death_send_closed),
		TU_TEST(test_death_send_closed_goroutine),
		TU_TEST(test_death_panic_small_stack),
		TU_TEST(test_death_stack_dump_small_stack),
		TU_TEST(test_death_sigquit_small_stack),
		TU_TEST(test_death_parked_sender_closed),
		TU_TEST(test_death_select_send_closed),
		TU_TEST(test_death_deadlock),
		TU_TEST(test_death_deadlock_nil_and_empty_select),
		TU_TEST(test_death_stack_overflow),
		TU_TEST(test_death_goexit_main),
		TU_TEST(test_death_foreign_thread),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
