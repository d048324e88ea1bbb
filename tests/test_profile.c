/* tether tests — the goroutine profile in Go's text formats, runtime.Stack,
 * and the stacks in panic, deadlock and SIGQUIT reports.
 *
 * Every line of debug=2 output is matched against the shape Go's parsers
 * (goleak, panicparse) expect; debug=1 records are checked for counts,
 * order, labels and text/tabwriter's alignment. Reports that end the
 * process run in a fresh copy of this binary (tu_spawn_self). */
#include <errno.h>
#include <regex.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "testutil.h"

#include "profile/profile.h"
#include "trace/trace.h"

#define CHILD_TIMEOUT (60 * TT_SECOND)

static volatile int sink;

/* ---- collecting output ----------------------------------------------------------- */

typedef struct out {
	char *p;
	size_t len, cap;
	int calls;
	int fail_with; /* != 0: the writer returns this */
} out;

static int collect(void *arg, const void *data, size_t len)
{
	out *o = arg;
	o->calls++;
	if (o->fail_with)
		return o->fail_with;
	if (o->len + len + 1 > o->cap) {
		size_t nc = (o->len + len + 1) * 2;
		char *p = realloc(o->p, nc);
		if (!p)
			return -ENOMEM;
		o->p = p;
		o->cap = nc;
	}
	memcpy(o->p + o->len, data, len);
	o->len += len;
	o->p[o->len] = '\0';
	return 0;
}

static char *profile(const char *name, int debug)
{
	out o = { 0 };
	TU_ASSERT_OK(tt_profile_write(name, debug, collect, &o));
	if (!o.p)
		o.p = calloc(1, 1);
	return o.p;
}

static bool matches(const char *re, const char *line)
{
	regex_t r;
	TU_ASSERT_EQ(regcomp(&r, re, REG_EXTENDED | REG_NOSUB), 0);
	bool ok = regexec(&r, line, 0, NULL, 0) == 0;
	regfree(&r);
	return ok;
}

/* Split text into lines (in place); returns how many. */
static size_t split_lines(char *text, char **lines, size_t max)
{
	size_t n = 0;
	char *p = text;
	while (*p && n < max) {
		lines[n++] = p;
		char *nl = strchr(p, '\n');
		if (!nl)
			break;
		*nl = '\0';
		p = nl + 1;
	}
	return n;
}

/* ---- goroutines to look at ---------------------------------------------------------- */

static tt_chan *block;

static void worker(void *arg)
{
	(void)arg;
	int v;
	tt_chan_recv(block, &v, sizeof v, NULL);
	sink++;
}

static void other(void *arg)
{
	(void)arg;
	int v;
	tt_chan_recv(block, &v, sizeof v, NULL);
	sink += 2;
}

static void release_all(int n)
{
	TU_ASSERT_OK(tt_chan_close(block));
	TU_WAIT_FOR(tt_num_goroutine() == 1, 5 * TT_SECOND);
	(void)n;
	TU_ASSERT_OK(tt_chan_release(block));
}

/* ---- debug=2 ----------------------------------------------------------------------- */

static int go_line; /* the line of the tt_go call for `worker` */

static void start_workers(int nworker, int nother)
{
	block = tu_chan(sizeof(int), 0);
	for (int i = 0; i < nworker; i++) {
		go_line = __LINE__ + 1;
		tt_go(worker, NULL);
	}
	for (int i = 0; i < nother; i++)
		tu_go(other, NULL);
}

static void test_profile_debug2_lines(void **state)
{
	(void)state;
	start_workers(3, 2);
	char *text = profile("goroutine", 2);
	char want[256];
	snprintf(want, sizeof want, "goroutine %lld [running]:\n",
		 (long long)tt_goid());
	TU_ASSERT_MSG(strncmp(text, want, strlen(want)) == 0,
		      "does not start with %s", want);
	snprintf(want, sizeof want,
		 "created by start_workers in goroutine %lld\n\t",
		 (long long)tt_goid());
	TU_ASSERT_CONTAINS(text, want);
	snprintf(want, sizeof want, "test_profile.c:%d +0x", go_line);
	TU_ASSERT_CONTAINS(text, want);
	TU_ASSERT_CONTAINS(text, "\nworker(...)\n\t");

	static char *lines[4096];
	size_t n = split_lines(text, lines, 4096);
	TU_ASSERT_GT(n, 10);
	/* goroutine header, then pairs of function and file lines, then
	 * maybe "created by" and its line, then a blank line or the end. */
	int headers = 0;
	size_t i = 0;
	while (i < n) {
		TU_ASSERT_MSG(matches("^goroutine [0-9]+ \\[[a-zA-Z. ()]+"
				      "(, [0-9]+ minutes)?\\]:$", lines[i]),
			      "line %zu: %s", i, lines[i]);
		headers++;
		i++;
		int frames = 0;
		while (i < n && lines[i][0] != '\0' &&
		       strncmp(lines[i], "created by ", 11) != 0) {
			TU_ASSERT_MSG(matches("^[^\t ][^\t]*\\(\\.\\.\\.\\)$",
					      lines[i]),
				      "line %zu: %s", i, lines[i]);
			TU_ASSERT(i + 1 < n);
			TU_ASSERT_MSG(matches("^\t[^\t]+:[0-9]+( \\+0x[0-9a-f]+)?$",
					      lines[i + 1]),
				      "line %zu: %s", i + 1, lines[i + 1]);
			i += 2;
			frames++;
		}
		TU_ASSERT_GT(frames, 0);
		if (i < n && strncmp(lines[i], "created by ", 11) == 0) {
			TU_ASSERT_MSG(matches("^created by [^\t]+ in goroutine "
					      "[0-9]+$", lines[i]),
				      "line %zu: %s", i, lines[i]);
			TU_ASSERT(i + 1 < n);
			TU_ASSERT_MSG(matches("^\t[^\t]+:[0-9]+ \\+0x[0-9a-f]+$",
					      lines[i + 1]),
				      "line %zu: %s", i + 1, lines[i + 1]);
			i += 2;
		}
		if (i < n) {
			TU_ASSERT_MSG(lines[i][0] == '\0',
				      "line %zu not blank: %s", i, lines[i]);
			i++;
		}
	}
	TU_ASSERT_EQ(headers, 6);
	free(text);
	release_all(5);
}

/* ---- ages ------------------------------------------------------------------------------ */

static void test_profile_minutes(void **state)
{
	(void)state;
	start_workers(1, 0);
	tt__snapshot s;
	TU_ASSERT_OK(tt__snapshot_take(&s));
	const tt__gsnap *w = NULL;
	for (size_t i = 0; i < s.n; i++)
		if (!s.g[i].current)
			w = &s.g[i];
	TU_ASSERT(w != NULL);
	tt__gsnap g = *w;
	struct {
		int64_t age;
		const char *want;
	} cases[] = {
		{ 59 * TT_SECOND, "[chan receive]:\n" },
		{ TT_MINUTE, "[chan receive, 1 minutes]:\n" },
		{ 3 * TT_MINUTE + 59 * TT_SECOND, "[chan receive, 3 minutes]:\n" },
		{ 125 * TT_MINUTE, "[chan receive, 125 minutes]:\n" },
	};
	for (size_t k = 0; k < sizeof cases / sizeof cases[0]; k++) {
		g.wait_since = 1000 * TT_SECOND;
		tt__buf b = { 0 };
		tt__write_goroutine(&b, &g, g.wait_since + cases[k].age);
		tt__buf_put(&b, "", 1);
		TU_ASSERT_OK(b.err);
		TU_ASSERT_CONTAINS(b.data, cases[k].want);
		/* tt__write_goroutine ends with the blank line. */
		TU_ASSERT(b.len >= 3 && b.data[b.len - 2] == '\n' &&
			  b.data[b.len - 3] == '\n');
		tt__buf_free(&b);
	}
	/* Not waiting: no age whatever the stamp. */
	g.state = TT_G_RUNNABLE;
	tt__buf b = { 0 };
	tt__write_goroutine(&b, &g, g.wait_since + 10 * TT_MINUTE);
	tt__buf_put(&b, "", 1);
	TU_ASSERT_CONTAINS(b.data, "[runnable]:\n");
	tt__buf_free(&b);
	tt__snapshot_free(&s);
	release_all(1);
}

/* ---- debug=1 ------------------------------------------------------------------------------ */

/* The display column after expanding tabs (tab stops every 8). */
static size_t column_of(const char *line, const char *at)
{
	size_t col = 0;
	for (const char *p = line; p < at; p++)
		col = *p == '\t' ? (col / 8 + 1) * 8 : col + 1;
	return col;
}

static void test_profile_debug1(void **state)
{
	(void)state;
	start_workers(5, 2);
	tt_go_attr attr = { .name = "sha\"rd" };
	tu_go_with(&attr, worker, NULL);
	char *text = profile("goroutine", 1);
	TU_ASSERT_MSG(strncmp(text, "goroutine profile: total 9\n", 27) == 0,
		      "header: %.40s", text);
	static char *lines[4096];
	size_t n = split_lines(text, lines, 4096);
	/* Records: "count @ pcs", maybe labels, "#" lines, blank. */
	long counts[16];
	int nrec = 0;
	bool labeled = false;
	for (size_t i = 1; i < n;) {
		TU_ASSERT_MSG(matches("^[0-9]+ @( 0x[0-9a-f]+)+$", lines[i]),
			      "line %zu: %s", i, lines[i]);
		TU_ASSERT(nrec < 16);
		counts[nrec++] = strtol(lines[i], NULL, 10);
		i++;
		if (i < n && strncmp(lines[i], "# labels:", 9) == 0) {
			TU_ASSERT(strcmp(lines[i],
					 "# labels: {\"name\":\"sha\\\"rd\"}") == 0);
			labeled = true;
			i++;
		}
		size_t col_func = 0, col_file = 0;
		int frames = 0;
		while (i < n && lines[i][0] == '#') {
			TU_ASSERT_MSG(matches("^#\t0x[0-9a-f]+\t+[^\t]+\\+0x[0-9a-f]+"
					      "\t+[^\t]+:[0-9]+$", lines[i]),
				      "line %zu: %s", i, lines[i]);
			/* Columns line up within a record. */
			const char *f = strchr(lines[i] + 2, '\t');
			while (*f == '\t')
				f++;
			const char *fl = strchr(f, '\t');
			while (*fl == '\t')
				fl++;
			size_t cf = column_of(lines[i], f);
			size_t cl = column_of(lines[i], fl);
			if (frames == 0) {
				col_func = cf;
				col_file = cl;
			}
			TU_ASSERT_EQ(cf, col_func);
			TU_ASSERT_EQ(cl, col_file);
			/* The column is the widest cell plus one, to the
			 * next tab stop: at most 8 more than needed. */
			TU_ASSERT_EQ(cf % 8, 0);
			TU_ASSERT_EQ(cl % 8, 0);
			frames++;
			i++;
		}
		TU_ASSERT_GT(frames, 0);
		TU_ASSERT(i < n && lines[i][0] == '\0');
		i++;
	}
	TU_ASSERT(labeled);
	/* 5 workers, 2 others, 1 named worker, the caller. */
	TU_ASSERT_EQ(nrec, 4);
	TU_ASSERT_EQ(counts[0], 5);
	TU_ASSERT_EQ(counts[1], 2);
	TU_ASSERT_EQ(counts[2], 1);
	TU_ASSERT_EQ(counts[3], 1);
	free(text);
	release_all(8);
}

/* ---- goroutineleak --------------------------------------------------------------------------- */

static tt__g *g_by_id(int64_t id)
{
	for (tt__g *g = tt__tls_sched->all; g; g = g->all_next)
		if (g->id == id)
			return g;
	return NULL;
}

static void test_profile_leak(void **state)
{
	(void)state;
	block = tu_chan(sizeof(int), 0);
	tu_go(worker, NULL);
	int64_t id = tu_go(other, NULL);
	char *text = profile("goroutineleak", 1);
	TU_ASSERT(strcmp(text, "goroutineleak profile: total 0\n") == 0);
	free(text);
	text = profile("goroutineleak", 2);
	TU_ASSERT(strcmp(text, "") == 0);
	free(text);

	/* What the leak layer sets once it proved one leaked. */
	tt__g *g = g_by_id(id);
	TU_ASSERT(g != NULL);
	static int mark;
	g->leak = &mark;
	text = profile("goroutineleak", 1);
	TU_ASSERT_MSG(strncmp(text, "goroutineleak profile: total 1\n1 @ ",
			      35) == 0, "%s", text);
	TU_ASSERT_CONTAINS(text, "\tother+0x");
	TU_ASSERT_NOT_CONTAINS(text, "\tworker+0x");
	free(text);
	text = profile("goroutineleak", 2);
	char want[64];
	snprintf(want, sizeof want, "goroutine %lld [chan receive]:\n",
		 (long long)id);
	TU_ASSERT_MSG(strncmp(text, want, strlen(want)) == 0, "%s", text);
	TU_ASSERT_CONTAINS(text, "\nother(...)\n");
	TU_ASSERT_EQ(strstr(text, "\ngoroutine "), NULL);
	free(text);
	g->leak = NULL;
	release_all(2);
}

/* ---- bad input, writer errors, debug=0 ---------------------------------------------------------- */

static void test_profile_errors(void **state)
{
	(void)state;
	out o = { 0 };
	TU_ASSERT_ERR(tt_profile_write("heap", 1, collect, &o), -EINVAL);
	TU_ASSERT_CONTAINS(tt_last_error(), "heap");
	TU_ASSERT_ERR(tt_profile_write(NULL, 1, collect, &o), -EINVAL);
	TU_ASSERT_ERR(tt_profile_write("goroutine", 3, collect, &o), -EINVAL);
	TU_ASSERT_ERR(tt_profile_write("goroutine", -1, collect, &o), -EINVAL);
	TU_ASSERT_ERR(tt_profile_write("goroutine", 1, NULL, &o), -EINVAL);
	TU_ASSERT_EQ(o.calls, 0);
	TU_ASSERT_ERR(tt_profile_write_fd("goroutine", 1, -1), -EBADF);
	o.fail_with = -EPIPE;
	TU_ASSERT_ERR(tt_profile_write("goroutine", 2, collect, &o), -EPIPE);
	TU_ASSERT_EQ(o.calls, 1);
	free(o.p);

	/* To a descriptor: the same bytes. */
	int fds[2];
	TU_ASSERT_EQ(pipe(fds), 0);
	TU_ASSERT_OK(tt_profile_write_fd("goroutine", 1, fds[1]));
	close(fds[1]);
	char buf[4096];
	ssize_t k = read(fds[0], buf, sizeof buf - 1);
	close(fds[0]);
	TU_ASSERT_GT(k, 0);
	buf[k] = '\0';
	TU_ASSERT(strncmp(buf, "goroutine profile: total 1\n1 @ 0x", 33) == 0);

	/* debug=0 is gzip. */
	o = (out){ 0 };
	TU_ASSERT_OK(tt_profile_write("goroutine", 0, collect, &o));
	TU_ASSERT_GT(o.len, 10);
	TU_ASSERT_EQ((unsigned char)o.p[0], 0x1f);
	TU_ASSERT_EQ((unsigned char)o.p[1], 0x8b);
	free(o.p);
}

/* ---- tt_stack_dump ------------------------------------------------------------------------------ */

__attribute__((noinline)) static size_t dump_here(char *buf, size_t len,
						  bool all, int *line)
{
	*line = __LINE__ + 1;
	size_t n = tt_stack_dump(buf, len, all);
	sink++;
	return n;
}

static void test_profile_stack_dump(void **state)
{
	(void)state;
	start_workers(2, 0);
	static char full[65536], one[8192], cut[24];
	int line;
	size_t n_all = dump_here(full, sizeof full, true, &line);
	TU_ASSERT_GT(n_all, 0);
	TU_ASSERT_LT(n_all, sizeof full);
	full[n_all] = '\0';
	size_t n_one = dump_here(one, sizeof one - 1, false, &line);
	one[n_one] = '\0';
	char want[128];
	snprintf(want, sizeof want, "goroutine %lld [running]:\n",
		 (long long)tt_goid());
	TU_ASSERT(strncmp(one, want, strlen(want)) == 0);
	snprintf(want, sizeof want, "dump_here(...)\n\t%s:%d +0x", __FILE__,
		 line);
	TU_ASSERT_CONTAINS(one, want);
	TU_ASSERT_CONTAINS(one, "test_profile_stack_dump(...)\n");
	TU_ASSERT_EQ(strstr(one + 1, "\ngoroutine "), NULL);
	/* All: the caller first, then the two workers. */
	TU_ASSERT(strncmp(full, one, strlen("goroutine 1 [running]:")) == 0);
	int count = 0;
	for (const char *p = full; (p = strstr(p, "goroutine ")); p++)
		if (p == full || p[-1] == '\n')
			count++;
	TU_ASSERT_EQ(count, 3);
	/* Cut short: len bytes, the start of the same text. */
	size_t n_cut = tt_stack_dump(cut, sizeof cut, true);
	TU_ASSERT_EQ(n_cut, sizeof cut);
	TU_ASSERT_MEM_EQ(cut, full, sizeof cut);
	TU_ASSERT_EQ(tt_stack_dump(cut, 0, true), 0);
	TU_ASSERT_EQ(tt_stack_dump(NULL, 10, true), 0);
	release_all(2);
}

/* ---- the writer yields ----------------------------------------------------------------------------- */

static int ticks;
static bool stop_ticking;

static void ticker(void *arg)
{
	(void)arg;
	while (!stop_ticking) {
		ticks++;
		tt_yield();
	}
}

static int count_while_writing(void *arg, const void *data, size_t len)
{
	(void)data;
	(void)len;
	int *seen = arg;
	if (ticks > *seen)
		*seen = ticks;
	return 0;
}

static void test_profile_yields(void **state)
{
	(void)state;
	int n = TU_SCALE(6000, 3000);
	start_workers(n, 0);
	stop_ticking = false;
	ticks = 0;
	tu_go(ticker, NULL);
	int before = ticks;
	int seen = 0;
	TU_ASSERT_OK(tt_profile_write("goroutine", 2, count_while_writing,
				      &seen));
	/* The ticker ran while the dump was being written. */
	TU_ASSERT_GT(seen, before);
	stop_ticking = true;
	tt_yield();
	release_all(n);
}

/* ---- reports that end the process ------------------------------------------------------------------- */

static void nothing(void *arg)
{
	(void)arg;
}

static int panic_line;

__attribute__((noinline)) static void panicking_function(tt_chan *c)
{
	panic_line = __LINE__ + 2;
	fprintf(stderr, "tu-line=%d\n", panic_line + 0);
	tt_chan_close(c);
	sink++;
}

static void child_panic(void)
{
	tt_go(nothing, NULL);
	tt_chan *c = NULL;
	if (tt_chan_make(&c, sizeof(int), 0) != 0)
		return;
	tt_chan_close(c);
	panicking_function(c);
}

static int deadlock_line;

static void deadlocked_worker(void *arg)
{
	int v;
	tt_chan_recv(arg, &v, sizeof v, NULL);
	sink++;
}

static void child_deadlock(void)
{
	tt_chan *c = NULL;
	if (tt_chan_make(&c, sizeof(int), 0) != 0)
		return;
	tt_go(deadlocked_worker, c);
	tt_go(deadlocked_worker, c);
	int v;
	fprintf(stderr, "tu-line=%d\n", __LINE__ + 1);
	tt_chan_recv(c, &v, sizeof v, NULL);
	(void)deadlock_line;
	fprintf(stderr, "tu-survived\n");
}

static void sigquit_body(void)
{
	tt_chan *c = NULL;
	if (tt_chan_make(&c, sizeof(int), 0) != 0)
		return;
	tt_go(deadlocked_worker, c);
	fprintf(stderr, "tu-ready\n");
	raise(SIGQUIT);
	sleep(2);
	fprintf(stderr, "tu-survived\n");
}

static void child_sigquit_on(void)
{
	if (tt_traceback_on_sigquit(true) != 0)
		return;
	sigquit_body();
}

static void child_sigquit_off(void)
{
	/* On, then off again: the default action. */
	if (tt_traceback_on_sigquit(true) != 0 ||
	    tt_traceback_on_sigquit(false) != 0)
		return;
	sigquit_body();
}

static void child_sigquit_env(void)
{
	sigquit_body();
}

static void spawn(const char *name, tu_child *c)
{
	TU_ASSERT_EQ(tu_spawn_self(name, CHILD_TIMEOUT, c), 0);
	TU_ASSERT(!c->timed_out);
	TU_ASSERT_NOT_CONTAINS(c->err, "tu-survived");
}

static void test_profile_panic_stack(void **state)
{
	(void)state;
	tu_child c;
	spawn("panic", &c);
	TU_ASSERT_CHILD_SIGNAL(&c, SIGABRT);
	TU_ASSERT_CONTAINS(c.err, "tether: panic: close of closed channel\n\n"
				  "goroutine 1 [running]:\n");
	char want[256];
	snprintf(want, sizeof want, "panicking_function(...)\n\t%s:%lld +0x",
		 __FILE__, tu_child_marker(&c, "tu-line"));
	TU_ASSERT_CONTAINS(c.err, want);
	TU_ASSERT_CONTAINS(c.err, "child_panic(...)\n");
	/* Only the panicking goroutine, and none of tether's insides. */
	TU_ASSERT_NOT_CONTAINS(c.err, "goroutine 2");
	TU_ASSERT_NOT_CONTAINS(c.err, "tt__");
	tu_child_free(&c);
}

static void test_profile_deadlock_stacks(void **state)
{
	(void)state;
	tu_child c;
	spawn("deadlock", &c);
	TU_ASSERT_CHILD_EXIT(&c, 2);
	char want[256];
	snprintf(want, sizeof want,
		 "fatal error: all goroutines are asleep - deadlock!\n\n"
		 "goroutine 1 [chan receive]:\n");
	TU_ASSERT_CONTAINS(c.err, want);
	snprintf(want, sizeof want, "child_deadlock(...)\n\t%s:%lld +0x",
		 __FILE__, tu_child_marker(&c, "tu-line"));
	TU_ASSERT_CONTAINS(c.err, want);
	TU_ASSERT_CONTAINS(c.err, "\n\ngoroutine 2 [chan receive]:\n");
	TU_ASSERT_CONTAINS(c.err, "\n\ngoroutine 3 [chan receive]:\n");
	TU_ASSERT_CONTAINS(c.err, "\ndeadlocked_worker(...)\n\t");
	TU_ASSERT_CONTAINS(c.err, "created by child_deadlock in goroutine 1\n");
	TU_ASSERT_NOT_CONTAINS(c.err, "tt__");
	tu_child_free(&c);
}

static void check_sigquit_dump(const tu_child *c)
{
	TU_ASSERT_CHILD_EXIT(c, 2);
	TU_ASSERT_CONTAINS(c->err, "SIGQUIT: quit\n\ngoroutine 1 [running]:\n");
	TU_ASSERT_CONTAINS(c->err, "sigquit_body(...)\n");
	TU_ASSERT_CONTAINS(c->err, "\n\ngoroutine 2 [chan receive]:\n");
	TU_ASSERT_CONTAINS(c->err, "\ndeadlocked_worker(...)\n\t");
}

static void test_profile_sigquit(void **state)
{
	(void)state;
	tu_child c;
	spawn("sigquit_on", &c);
	check_sigquit_dump(&c);
	tu_child_free(&c);

	spawn("sigquit_off", &c);
	TU_ASSERT_CHILD_SIGNAL(&c, SIGQUIT);
	TU_ASSERT_CONTAINS(c.err, "tu-ready");
	TU_ASSERT_NOT_CONTAINS(c.err, "goroutine");
	tu_child_free(&c);

	/* Without the call, TETHER_TRACEBACK=all turns it on. */
	TU_ASSERT_EQ(setenv("TETHER_TRACEBACK", "all", 1), 0);
	spawn("sigquit_env", &c);
	unsetenv("TETHER_TRACEBACK");
	check_sigquit_dump(&c);
	tu_child_free(&c);

	/* And not without it. */
	spawn("sigquit_env", &c);
	TU_ASSERT_CHILD_SIGNAL(&c, SIGQUIT);
	tu_child_free(&c);
}

static const tu_child_case child_cases[] = {
	{ "panic", child_panic },
	{ "deadlock", child_deadlock },
	{ "sigquit_on", child_sigquit_on },
	{ "sigquit_off", child_sigquit_off },
	{ "sigquit_env", child_sigquit_env },
};

int main(int argc, char **argv)
{
	tu_child_dispatch(argc, argv, child_cases,
			  sizeof child_cases / sizeof child_cases[0]);
	const struct CMUnitTest tests[] = {
		TU_TEST(test_profile_debug2_lines),
		TU_TEST(test_profile_minutes),
		TU_TEST(test_profile_debug1),
		TU_TEST(test_profile_leak),
		TU_TEST(test_profile_errors),
		TU_TEST(test_profile_stack_dump),
		TU_TEST(test_profile_yields),
		TU_TEST(test_profile_panic_stack),
		TU_TEST(test_profile_deadlock_stacks),
		TU_TEST(test_profile_sigquit),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
