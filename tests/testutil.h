/* tether tests — helpers shared by every test program.
 *
 * The typed asserts for the main goroutine are cmocka's (assert_int_equal,
 * assert_true, ...). They report a failure by longjmp'ing back into
 * cmocka's runner, which is only safe from the goroutine that cmocka runs
 * the test on: the thread's own flow of control, goroutine `tu_main_goid`.
 * From any other goroutine a longjmp would leave the scheduler believing
 * the dead goroutine still runs. So this file adds:
 *
 *  - TU_ASSERT* macros that work in every goroutine. In the main goroutine
 *    they fail the cmocka test; in another goroutine they print the
 *    failure, count it and end that goroutine with tt_goexit(). The
 *    per-test teardown (tu_teardown) then fails the test if any goroutine
 *    failed, or if goroutines are left over. Errors print as names
 *    ("-ETIMEDOUT") together with tt_last_error().
 *  - tu_go / tu_go_with: start a goroutine, failing the test on error.
 *  - done tokens: a goroutine signals it finished with tu_done(done); the
 *    main goroutine waits with TU_WAIT_DONE(done, n, timeout), which fails
 *    (rather than hangs) if a goroutine died on a failed check.
 *  - child processes for death tests: tu_fork_run runs a function in a
 *    forked child; tu_spawn_self re-executes the test binary to run a
 *    named child case in a fresh process (no cmocka signal handlers, no
 *    scheduler state inherited). Both capture stderr, the exit status and
 *    the terminating signal, with a timeout.
 *
 * Timing assertions use tolerant windows: TU_SLACK_NS (200 ms, or
 * TU_TIME_SLACK_MS from the environment on a slow machine).
 */
#ifndef TETHER_TESTUTIL_H
#define TETHER_TESTUTIL_H

#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#include <cmocka.h>

/* Every suite starts here, so that a probe child of
 * tu_threads_and_fork_work probes and ends before any test runs. */
int tu_run_group_tests(const char *name, const struct CMUnitTest *tests,
		       size_t n, CMFixtureFunction setup,
		       CMFixtureFunction teardown);
#undef cmocka_run_group_tests
#define cmocka_run_group_tests(group, setup, teardown)                         \
	tu_run_group_tests(#group, group, sizeof(group) / sizeof((group)[0]), \
			   setup, teardown)

#include <tether.h>

/* ---- build flavour ----------------------------------------------------- */

#if defined(__has_feature)
#if __has_feature(address_sanitizer)
#define TU_ASAN 1
#endif
#endif
#if !defined(TU_ASAN) && defined(__SANITIZE_ADDRESS__)
#define TU_ASAN 1
#endif
#ifndef TU_ASAN
#define TU_ASAN 0
#endif
/* ThreadSanitizer (make tsan): slower still, and it has threads of its
 * own. TU_SCALE takes its ASan count there too. */
#if defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define TU_TSAN 1
#endif
#endif
#if !defined(TU_TSAN) && defined(__SANITIZE_THREAD__)
#define TU_TSAN 1
#endif
#ifndef TU_TSAN
#define TU_TSAN 0
#endif

/* A call whose result a test ignores on purpose: it never returns (a
 * goroutine parked for good), or what the test checks is elsewhere (a
 * panic, a stack). The calls that lose synchronisation when they fail are
 * declared warn_unused_result, and gcc does not take a (void) cast as
 * using a result. */
#define TU_UNCHECKED(expr) ((void)!(expr))

/* A count for the normal build, and a smaller one under ASan or TSan. */
#define TU_SCALE(normal, asan) (TU_ASAN || TU_TSAN ? (asan) : (normal))

#define TU_NORETURN __attribute__((noreturn))
#define TU_PRINTF(a, b) __attribute__((format(printf, a, b)))

/* ---- failures ---------------------------------------------------------- */

/* The goroutine cmocka runs the current test on (set by tu_setup). */
extern int64_t tu_main_goid;
/* Set in child processes: a failed check there exits with status
 * TU_CHILD_FAIL_STATUS instead of returning into cmocka. */
extern bool tu_in_child;
#define TU_CHILD_FAIL_STATUS 97

/* Print "file:line: message" and fail: the cmocka test in the main
 * goroutine, the goroutine (counted, then tt_goexit) elsewhere, the
 * process in a child. */
TU_NORETURN void tu_fail_at(const char *file, int line, const char *fmt,
			    ...) TU_PRINTF(3, 4);

/* How many goroutines have failed a check since the last tu_setup. */
int tu_goroutine_failures(void);

/* "EAGAIN" for 11 or -11, "0" for 0. */
const char *tu_errname(long long err);

#define TU_ASSERT(cond)                                                     \
	do {                                                                \
		if (!(cond))                                                \
			tu_fail_at(__FILE__, __LINE__, "assertion failed: %s", \
				   #cond);                                  \
	} while (0)

#define TU_ASSERT_MSG(cond, ...)                                            \
	do {                                                                \
		if (!(cond))                                                \
			tu_fail_at(__FILE__, __LINE__, __VA_ARGS__);        \
	} while (0)

/* Signed comparisons that print both operands in decimal. */
#define TU__CMP(a, op, b)                                                   \
	do {                                                                \
		long long tu_a_ = (long long)(a);                           \
		long long tu_b_ = (long long)(b);                           \
		if (!(tu_a_ op tu_b_))                                      \
			tu_fail_at(__FILE__, __LINE__,                      \
				   "%s %s %s failed: %lld vs %lld", #a, #op, \
				   #b, tu_a_, tu_b_);                       \
	} while (0)
#define TU_ASSERT_EQ(a, b) TU__CMP(a, ==, b)
#define TU_ASSERT_NE(a, b) TU__CMP(a, !=, b)
#define TU_ASSERT_LT(a, b) TU__CMP(a, <, b)
#define TU_ASSERT_LE(a, b) TU__CMP(a, <=, b)
#define TU_ASSERT_GT(a, b) TU__CMP(a, >, b)
#define TU_ASSERT_GE(a, b) TU__CMP(a, >=, b)

/* lo <= v <= hi. */
#define TU_ASSERT_RANGE(v, lo, hi)                                          \
	do {                                                                \
		long long tu_v_ = (long long)(v);                           \
		long long tu_lo_ = (long long)(lo);                         \
		long long tu_hi_ = (long long)(hi);                         \
		if (tu_v_ < tu_lo_ || tu_v_ > tu_hi_)                       \
			tu_fail_at(__FILE__, __LINE__,                      \
				   "%s = %lld is outside [%lld, %lld]", #v,  \
				   tu_v_, tu_lo_, tu_hi_);                  \
	} while (0)

/* An error-code assert: `expr` must return exactly `want` (0 or a
 * negative errno). Prints both as names, and tt_last_error(). */
#define TU_ASSERT_ERR(expr, want)                                           \
	do {                                                                \
		long long tu_got_ = (long long)(expr);                      \
		long long tu_want_ = (long long)(want);                     \
		if (tu_got_ != tu_want_)                                    \
			tu_fail_at(__FILE__, __LINE__,                      \
				   "%s returned %lld (%s), want %lld (%s); " \
				   "tt_last_error: \"%s\"",                 \
				   #expr, tu_got_, tu_errname(tu_got_),     \
				   tu_want_, tu_errname(tu_want_),          \
				   tt_last_error());                        \
	} while (0)
#define TU_ASSERT_OK(expr) TU_ASSERT_ERR(expr, 0)

/* Memory equality, reporting the first differing byte. */
#define TU_ASSERT_MEM_EQ(a, b, n)                                           \
	tu_assert_mem_eq_at(__FILE__, __LINE__, #a, #b, (a), (b), (n))
void tu_assert_mem_eq_at(const char *file, int line, const char *an,
			 const char *bn, const void *a, const void *b,
			 size_t n);

/* `hay` contains `needle` (hay may be NULL: it then contains nothing).
 * On failure prints the whole of hay. */
#define TU_ASSERT_CONTAINS(hay, needle)                                     \
	tu_assert_contains_at(__FILE__, __LINE__, #hay, (hay), (needle), true)
#define TU_ASSERT_NOT_CONTAINS(hay, needle)                                 \
	tu_assert_contains_at(__FILE__, __LINE__, #hay, (hay), (needle), false)
void tu_assert_contains_at(const char *file, int line, const char *hayname,
			   const char *hay, const char *needle, bool want);
bool tu_contains(const char *hay, const char *needle);
/* Case-insensitive. */
bool tu_contains_nocase(const char *hay, const char *needle);

/* ---- per-test fixture ---------------------------------------------------- */

/* Records the main goroutine and the goroutine count; clears the failure
 * count. */
int tu_setup(void **state);
/* Fails the test if a goroutine failed a check, or if the goroutine count
 * has not come back to what tu_setup saw (waiting up to 2 s for goroutines
 * that are finishing). */
int tu_teardown(void **state);

#define TU_TEST(f) cmocka_unit_test_setup_teardown(f, tu_setup, tu_teardown)

/* Runs the rest of this test with one P, as Go's own tests do with
 * defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(1)): for a test of what one
 * scheduler promises (tt_go runs the child first, the run queue's order,
 * one thread's counts). tu_teardown puts the previous count back. The
 * reason belongs in a comment at the call. */
void tu_one_p(void);

/* ---- goroutines and channels --------------------------------------------- */

/* tt_go / tt_go_with that fail the test (at the caller's line) instead of
 * returning an error. Return the goroutine id. */
#define tu_go(fn, arg) tu_go_at(__FILE__, __LINE__, NULL, (fn), (arg))
#define tu_go_with(attr, fn, arg)                                           \
	tu_go_at(__FILE__, __LINE__, (attr), (fn), (arg))
int64_t tu_go_at(const char *file, int line, const tt_go_attr *attr,
		 tt_func fn, void *arg);

/* tt_chan_make that fails the test on error. */
#define tu_chan(elem_size, cap) tu_chan_at(__FILE__, __LINE__, (elem_size), (cap))
tt_chan *tu_chan_at(const char *file, int line, size_t elem_size,
		    ptrdiff_t cap);

/* Done tokens: `done` is a channel of element size 0. */
#define tu_done(done) tu_done_at(__FILE__, __LINE__, (done))
void tu_done_at(const char *file, int line, tt_chan *done);
/* Receive n tokens, all within timeout_ns; fails if one does not come. */
#define TU_WAIT_DONE(done, n, timeout_ns)                                   \
	tu_wait_done_at(__FILE__, __LINE__, (done), (n), (timeout_ns))
void tu_wait_done_at(const char *file, int line, tt_chan *done, long n,
		     int64_t timeout_ns);

/* Let other goroutines run until `cond` holds; fail after timeout_ns. */
#define TU_WAIT_FOR(cond, timeout_ns)                                       \
	do {                                                                \
		int64_t tu_dl_ = tt_deadline_in(timeout_ns);                \
		while (!(cond)) {                                           \
			if (tt_now() > tu_dl_)                              \
				tu_fail_at(__FILE__, __LINE__,              \
					   "timed out waiting for %s", #cond); \
			tu_pause();                                         \
		}                                                           \
	} while (0)
/* Yield, then sleep briefly: lets runnable goroutines and due timers run. */
void tu_pause(void);

/* ---- other threads ----------------------------------------------------------- */

/* Join th with this thread parked in tether (tt_blocking), not blocked in
 * pthread_join: th may need this thread to run its posts (another
 * thread's first use of a channel, a Mutex's Lock). Fails the test if the
 * join cannot be made. */
#define tu_join_parked(th) tu_join_parked_at(__FILE__, __LINE__, (th))
void tu_join_parked_at(const char *file, int line, pthread_t th);
/* pthread_join(*(pthread_t *)arg), for tt_blocking (in a child case,
 * where tu_join_parked cannot fail a test). */
void tu_join_thread(void *arg);

/* A memory sink for tt_profile_write: p (NUL-terminated) grows. */
typedef struct tu_sink {
	char *p;
	size_t len;
} tu_sink;
int tu_sink_write(void *arg, const void *d, size_t n);

/* How many times needle occurs in text, not overlapping. */
int tu_count(const char *text, const char *needle);

/* ---- time and memory -------------------------------------------------------- */

/* True when the tests run under an emulator (TETHER_EMULATOR is set, as
 * in cross builds run by qemu-user). */
bool tu_emulated(void);

/* Allowed lateness of a timed wake-up: 200 ms (1 s under an emulator), or
 * TU_TIME_SLACK_MS. */
int64_t tu_slack_ns(void);
#define TU_SLACK_NS tu_slack_ns()

/* Resident set size of this process, in bytes (/proc/self/statm). */
long long tu_rss_bytes(void);

/* A small deterministic PRNG (splitmix64) for tests. The seed is printed
 * by tu_seed() and can be set with TU_SEED. */
uint64_t tu_seed(const char *what);
static inline uint64_t tu_rand(uint64_t *state)
{
	uint64_t z = (*state += UINT64_C(0x9e3779b97f4a7c15));
	z = (z ^ (z >> 30)) * UINT64_C(0xbf58476d1ce4e5b9);
	z = (z ^ (z >> 27)) * UINT64_C(0x94d049bb133111eb);
	return z ^ (z >> 31);
}
static inline uint32_t tu_rand_n(uint64_t *state, uint32_t n)
{
	return (uint32_t)(((tu_rand(state) >> 32) * (uint64_t)n) >> 32);
}

/* ---- child processes (death tests) ---------------------------------------- */

typedef struct tu_child {
	bool exited;      /* ended by exit(); status in exit_code */
	int exit_code;
	bool signaled;    /* ended by a signal: term_sig */
	int term_sig;
	bool timed_out;   /* still running at the timeout: we killed it */
	char *err;        /* everything it wrote to stderr, NUL-terminated */
	size_t err_len;
} tu_child;

/* Fork; in the child, restore the default action of the signals cmocka
 * catches, send stderr to a pipe, run fn(arg) and _exit(0). Waits for
 * the child (killing it after timeout_ns). Returns 0, or a negative errno
 * if the child could not be started (-ENOSYS where fork does not work,
 * see tu_threads_and_fork_work). */
int tu_fork_run(void (*fn)(void *), void *arg, int64_t timeout_ns,
		tu_child *out);

/* Named cases a test binary can run in a fresh copy of itself. */
typedef struct tu_child_case {
	const char *name;
	void (*fn)(void);
} tu_child_case;

/* Call first thing in main(). If argv asks for a child case
 * ("--tu-child NAME"), runs it and exits with status 0 when it returns;
 * otherwise returns. Every test program that uses tu_spawn_self or the
 * TU_REQUIRE_THREADS probe must call it (with no cases if it has none). */
void tu_child_dispatch(int argc, char **argv, const tu_child_case *cases,
		       size_t ncases);

/* Re-execute this binary to run child case `name` (fresh process; core
 * dumps off; under ASan, leak checking off so exit statuses are the
 * program's). Same capture as tu_fork_run. */
int tu_spawn_self(const char *name, int64_t timeout_ns, tu_child *out);

void tu_child_free(tu_child *c);

/* Whether pthread_create and fork work. Natively they do; under an
 * emulator (qemu-user 7.2 hangs in both on recent kernels) a child
 * process finds out, once. */
bool tu_threads_and_fork_work(void);

/* Skip the current (cmocka) test where threads and fork do not work. */
#define TU_REQUIRE_THREADS()                                                \
	do {                                                                \
		if (!tu_threads_and_fork_work()) {                          \
			print_message("skipped: needs threads and fork, " \
				      "which hang under this emulator\n"); \
			skip();                                             \
		}                                                           \
	} while (0)

/* "exited with status 2", "killed by signal 6 (Aborted)", "timed out". */
const char *tu_child_describe(const tu_child *c, char *buf, size_t n);

/* The number after "key=" in the child's stderr, or -1. Children print
 * such markers (e.g. "tu-goid=7") so the parent can check the report
 * names the right goroutine. */
long long tu_child_marker(const tu_child *c, const char *key);

/* Assert the child ended by signal `sig`. */
#define TU_ASSERT_CHILD_SIGNAL(c, sig)                                      \
	tu_assert_child_at(__FILE__, __LINE__, (c), false, 0, true, (sig))
/* Assert the child exited with `status`. */
/* In a child case (tu_child_dispatch), where the test framework does not
 * run: a check that prints the line, the condition and tt_last_error()
 * and exits 1. */
#define TU_CHILD_CHECK(cond)                                                \
	do {                                                                \
		if (!(cond)) {                                              \
			fprintf(stderr, "tu-check failed, line %d: %s (%s)\n", \
				__LINE__, #cond, tt_last_error());          \
			exit(1);                                            \
		}                                                           \
	} while (0)

/* Run child case `name` (60 s at most): it must print "tu-done" on stderr
 * and exit 0; what it printed is shown if it did not. */
void tu_run_child_case(const char *name);

#define TU_ASSERT_CHILD_EXIT(c, status)                                     \
	tu_assert_child_at(__FILE__, __LINE__, (c), true, (status), false, 0)
void tu_assert_child_at(const char *file, int line, const tu_child *c,
			bool want_exit, int status, bool want_signal, int sig);

/* ---- HTTP and go tool pprof, for tests of the debug server --------------- */

/* A response read to end of file. */
typedef struct tu_http_resp {
	int status;
	char *head;      /* status line and headers, NUL-terminated */
	char *body;      /* body_len bytes and a NUL */
	size_t body_len;
	char value[256]; /* tu_http_header's answer */
} tu_http_resp;

/* `method target` to 127.0.0.1:port with "Connection: close", from a
 * goroutine (the I/O parks); the response read to end of file. Asserts on
 * a failure to connect, a timeout (10 s) or a malformed head. */
tu_http_resp tu_http(int port, const char *method, const char *target);

/* tu_http with extra header lines (each ending in \r\n; NULL: none) and
 * the whole response due within timeout_ns. */
tu_http_resp tu_http_req(int port, const char *method, const char *target,
			 const char *headers, int64_t timeout_ns);

/* GET target and assert the status is 200; the body (free() it), its
 * length in *len if len is not NULL. */
char *tu_http_get_ok(int port, const char *target, size_t *len);

void tu_http_free(tu_http_resp *r);

/* The value of header `name` ("" when absent), in r->value (valid until
 * the next call on r). */
const char *tu_http_header(tu_http_resp *r, const char *name);
/* The same for a response head of another client (a status line and
 * header lines, NUL-terminated), into v[len]; returns v. */
const char *tu_header_value(const char *head, const char *name, char *v,
			    size_t len);

/* Find the go command (PATH, then /usr/lib/go/bin) into path. */
bool tu_find_go(char *path, size_t len);

/* Skip the current test, saying why, when go is not installed; else the
 * path of go in path. */
#define TU_REQUIRE_GO(path, len)                                            \
	do {                                                                \
		if (!tu_find_go((path), (len))) {                           \
			print_message("go not found in PATH or "            \
				      "/usr/lib/go/bin (Debian: golang-go)" \
				      ": go tool pprof not run\n");        \
			skip();                                             \
		}                                                           \
	} while (0)

/* Output of `go tool pprof <flags> file`, stderr included (free() it);
 * the command must succeed. */
char *tu_pprof(const char *go, const char *flags, const char *file);

/* Write len bytes to a new file named `name` in a new directory under
 * /tmp; its path in path. tu_unlink_temp removes both. */
void tu_write_temp(const char *name, const void *data, size_t len,
		   char *path, size_t path_len);
void tu_unlink_temp(const char *path);

#endif
