/* The leak examples (examples/leaks/), each run leaky and fixed, their
 * output and exit status checked: leaky ones exit 1 with goleak's report
 * on stderr naming the goroutine that leaked; fixed ones exit 0 and say
 * nothing on stderr. */
#include <regex.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "testutil.h"

typedef struct run {
	int status; /* exit status, -1 if it did not exit */
	char *out, *err;
} run;

/* Everything slurp returned during the current test; freed by the
 * teardown, so a failed assertion leaks nothing. */
static char *outputs[32];
static size_t noutputs;

static int free_outputs(void **state)
{
	(void)state;
	for (size_t i = 0; i < noutputs; i++)
		free(outputs[i]);
	noutputs = 0;
	return 0;
}

static char *slurp(const char *path)
{
	FILE *f = fopen(path, "r");
	assert_non_null(f);
	size_t cap = 4096, len = 0, n;
	char *buf = malloc(cap);
	assert_non_null(buf);
	while ((n = fread(buf + len, 1, cap - len - 1, f)) > 0) {
		len += n;
		if (cap - len < 2) {
			cap *= 2;
			buf = realloc(buf, cap);
			assert_non_null(buf);
		}
	}
	buf[len] = '\0';
	fclose(f);
	assert_true(noutputs < sizeof outputs / sizeof outputs[0]);
	outputs[noutputs++] = buf;
	return buf;
}

/* Run build/examples/leaks/<name> <args> with `env` (may be "") in front,
 * stdout and stderr apart. */
static run run_example(const char *env, const char *name, const char *args)
{
	const char *dir = getenv("TETHER_BUILD_DIR");
	const char *emu = getenv("TETHER_EMULATOR");
	char tmpl[] = "/tmp/tt-leakex-XXXXXX";
	assert_non_null(mkdtemp(tmpl));
	char cmd[2048], outp[64], errp[64];
	snprintf(outp, sizeof outp, "%s/out", tmpl);
	snprintf(errp, sizeof errp, "%s/err", tmpl);
	snprintf(cmd, sizeof cmd, "%s %s %s/examples/leaks/%s %s >%s 2>%s",
		 env, emu ? emu : "", dir ? dir : "build", name, args, outp,
		 errp);
	int st = system(cmd);
	run r = {
		.status = WIFEXITED(st) ? WEXITSTATUS(st) : -1,
		.out = slurp(outp),
		.err = slurp(errp),
	};
	unlink(outp);
	unlink(errp);
	rmdir(tmpl);
	return r;
}

/* Done with r (its text is freed by the teardown). */
static void run_free(run *r)
{
	r->out = r->err = NULL;
}

/* A leaky run: status 1, goleak's report naming `fn` in state `state`,
 * started by `creator` in goroutine 1. */
static void expect_leak_by(const run *r, const char *state, const char *fn,
			   const char *creator)
{
	char want[256];
	if (r->status != 1)
		fail_msg("status %d, want 1; stderr:\n%s", r->status, r->err);
	TU_ASSERT(strncmp(r->err, "found unexpected goroutines:\n[Goroutine ",
			  40) == 0);
	snprintf(want, sizeof want, " in state %s, with ", state);
	TU_ASSERT_CONTAINS(r->err, want);
	snprintf(want, sizeof want, "%s(", fn);
	TU_ASSERT_CONTAINS(r->err, want);
	snprintf(want, sizeof want, "created by %s in goroutine 1\n",
		 creator);
	TU_ASSERT_CONTAINS(r->err, want);
	TU_ASSERT_CONTAINS(r->err, "\n]\n");
}

static void expect_leak(const run *r, const char *state, const char *fn)
{
	expect_leak_by(r, state, fn, "main");
}

/* A fixed run: status 0, nothing on stderr. */
static void expect_clean(const run *r)
{
	if (r->status != 0 || r->err[0] != '\0')
		fail_msg("status %d, want 0; stderr:\n%s", r->status, r->err);
}

static void test_recv_no_sender(void **state)
{
	(void)state;
	run r = run_example("", "recv_no_sender", "--wait 0.05");
	expect_leak(&r, "chan receive", "worker");
	assert_string_equal(r.out, "worker: job 1\nworker: job 2\n");
	run_free(&r);
	r = run_example("", "recv_no_sender", "--fixed --wait 0.05");
	expect_clean(&r);
	assert_string_equal(r.out, "worker: job 1\nworker: job 2\n"
				   "worker: no more jobs, exiting\n");
	run_free(&r);
}

static void test_send_no_receiver(void **state)
{
	(void)state;
	run r = run_example("", "send_no_receiver", "--wait 0.1");
	expect_leak(&r, "chan send", "lookup");
	assert_string_equal(r.out,
			    "main: lookup timed out, going on without it\n");
	run_free(&r);
	r = run_example("", "send_no_receiver", "--fixed --wait 0.1");
	expect_clean(&r);
	assert_string_equal(r.out,
			    "main: lookup timed out, going on without it\n"
			    "lookup: answer delivered\n");
	run_free(&r);
}

static void test_send_full_buffer(void **state)
{
	(void)state;
	run r = run_example("", "send_full_buffer", "--wait 0.05");
	expect_leak(&r, "chan send", "producer");
	assert_string_equal(r.out, "consumer: got 1\nconsumer: got 2\n");
	run_free(&r);
	r = run_example("", "send_full_buffer", "--fixed --wait 0.05");
	expect_clean(&r);
	assert_string_equal(r.out, "consumer: got 1\nconsumer: got 2\n"
				   "producer: all 5 sent\n"
				   "consumer: drained 3 more\n");
	run_free(&r);
}

static void test_select_all_blocked(void **state)
{
	(void)state;
	run r = run_example("", "select_all_blocked", "--wait 0.05");
	expect_leak(&r, "select", "waiter");
	assert_string_equal(r.out, "");
	/* The channels are released after the check: with nobody left to
	 * use them, the leak is proven then, silently by default. */
	TU_ASSERT_NOT_CONTAINS(r.err, "leaked: parked");
	run_free(&r);
	r = run_example("TETHER_LEAK=report", "select_all_blocked",
			"--wait 0.05");
	TU_ASSERT_EQ(r.status, 1);
	TU_ASSERT_CONTAINS(r.err, "leaked: parked on chan 0x");
	/* The release site: file:line, or the function without line
	 * information. */
	TU_ASSERT(tu_contains(r.err, "released at ") &&
		  (tu_contains(r.err, "select_all_blocked.c:") ||
		   tu_contains(r.err, "released at main\n")));
	run_free(&r);
	r = run_example("", "select_all_blocked", "--fixed --wait 0.05");
	expect_clean(&r);
	assert_string_equal(r.out, "waiter: case 2 fired, exiting\n");
	run_free(&r);
}

static bool matches(const char *re, const char *s)
{
	regex_t rx;
	assert_int_equal(regcomp(&rx, re, REG_EXTENDED | REG_NOSUB), 0);
	bool m = regexec(&rx, s, 0, NULL, 0) == 0;
	regfree(&rx);
	return m;
}

static void test_rand_stream(void **state)
{
	(void)state;
	static const char head[] = "^initial goroutines 1\n3 random ints:\n"
				   "1: [0-9]+\n2: [0-9]+\n3: [0-9]+\n"
				   "current goroutines 2\n";
	char re[512];
	run r = run_example("", "rand_stream", "--wait 0.2");
	/* new_rand_stream is inlined into main: without inline information
	 * (some compilers' debug info) the creator reads as main. */
	expect_leak_by(&r, "select", "rand_stream_closure",
		       tu_contains(r.err, "created by main in goroutine 1\n")
			       ? "main"
			       : "new_rand_stream");
	snprintf(re, sizeof re, "%safter 0.2s goroutines 2\n$", head);
	if (!matches(re, r.out))
		fail_msg("stdout does not match %s:\n%s", re, r.out);
	run_free(&r);
	r = run_example("", "rand_stream", "--fixed --wait 0.2");
	expect_clean(&r);
	snprintf(re, sizeof re,
		 "%snewRandStream closure exited.\nfinal goroutines 1\n$",
		 head);
	if (!matches(re, r.out))
		fail_msg("stdout does not match %s:\n%s", re, r.out);
	run_free(&r);
}

static void test_quit_channel(void **state)
{
	(void)state;
	run r = run_example("", "quit_channel", "--wait 0.05");
	/* Not blocked: it is between units of work, never told to stop. */
	TU_ASSERT_EQ(r.status, 1);
	TU_ASSERT_CONTAINS(r.err, "found unexpected goroutines:\n[Goroutine ");
	TU_ASSERT_CONTAINS(r.err, "worker(");
	assert_string_equal(r.out, "main: done\n");
	run_free(&r);
	r = run_example("", "quit_channel", "--fixed --wait 0.05");
	expect_clean(&r);
	assert_string_equal(r.out, "main: done\n"
				   "worker: told to quit after some units\n");
	run_free(&r);
}

static void test_context_cancel(void **state)
{
	(void)state;
	run r = run_example("", "context_cancel", "--wait 0.05");
	TU_ASSERT_EQ(r.status, 1);
	TU_ASSERT_CONTAINS(r.err, "found unexpected goroutines:\n[Goroutine ");
	TU_ASSERT_CONTAINS(r.err, "worker(");
	assert_string_equal(r.out, "main: done\n");
	run_free(&r);
	r = run_example("", "context_cancel", "--fixed --wait 0.05");
	expect_clean(&r);
	assert_string_equal(r.out, "main: done\n"
				   "worker: context done (Operation "
				   "canceled)\n");
	run_free(&r);
}

static void test_bad_args(void **state)
{
	(void)state;
	run r = run_example("", "recv_no_sender", "--wait -1");
	TU_ASSERT_EQ(r.status, 2);
	TU_ASSERT_CONTAINS(r.err, "--wait needs seconds");
	run_free(&r);
	r = run_example("", "rand_stream", "--frobnicate");
	TU_ASSERT_EQ(r.status, 2);
	TU_ASSERT_CONTAINS(r.err, "usage:");
	run_free(&r);
}

/* A million tt_after timers in a select loop, each released: flat. */
static void test_time_after_loop(void **state)
{
	(void)state;
	/* ASan holds freed memory in quarantine (256 MB by default): turn
	 * that off, or it is what the resident size measures. */
	char env[1024] = "";
	if (TU_ASAN) {
		const char *o = getenv("ASAN_OPTIONS");
		snprintf(env, sizeof env, "ASAN_OPTIONS='%s%squarantine_size_mb=0'",
			 o ? o : "", o && *o ? ":" : "");
	}
	run r = run_example(env, "time_after_loop", "");
	TU_ASSERT_EQ(r.status, 0);
	TU_ASSERT_CONTAINS(r.out, "iterations 1000000\n");
	const char *g = strstr(r.out, "resident growth ");
	assert_non_null(g);
	long kib = strtol(g + strlen("resident growth "), NULL, 10);
	/* A timer kept per iteration would be over 100 MB. */
	TU_ASSERT_RANGE(kib, -65536, 1024);
	run_free(&r);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_teardown(test_recv_no_sender, free_outputs),
		cmocka_unit_test_teardown(test_send_no_receiver, free_outputs),
		cmocka_unit_test_teardown(test_send_full_buffer, free_outputs),
		cmocka_unit_test_teardown(test_select_all_blocked, free_outputs),
		cmocka_unit_test_teardown(test_rand_stream, free_outputs),
		cmocka_unit_test_teardown(test_quit_channel, free_outputs),
		cmocka_unit_test_teardown(test_context_cancel, free_outputs),
		cmocka_unit_test_teardown(test_bad_args, free_outputs),
		cmocka_unit_test_teardown(test_time_after_loop, free_outputs),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
