/* Go's tools read tether's stack texts: panicparse (Debian: panicparse)
 * parses tt_stack_dump's output and the SIGQUIT dump of a program whose
 * stacks run through libc (a signal frame, raise, a read that parks), and
 * finds every goroutine tether wrote.
 *
 * Without panicparse installed the end-to-end check is skipped, loudly;
 * the line-by-line check of the frame format (what panicparse's parser
 * accepts after a function line: a file ending in .c, .s or .go, or "??",
 * then ":LINE", then an optional " +0xOFF") runs either way. */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "testutil.h"

#define NOINLINE __attribute__((noinline))

static int pipe_fds[2];
static tt_chan *block_ch;

static NOINLINE void park_read(void *arg)
{
	(void)arg;
	char c;
	tt_read(pipe_fds[0], &c, 1, TT_FOREVER);
	__asm__ volatile("");
}

static NOINLINE void park_recv(void *arg)
{
	(void)arg;
	int v;
	TU_UNCHECKED(tt_chan_recv(block_ch, &v, sizeof v, NULL));
	__asm__ volatile("");
}

static NOINLINE void park_sleep(void *arg)
{
	(void)arg;
	tt_sleep(TT_MINUTE);
	__asm__ volatile("");
}

/* Writes tt_stack_dump(all) to stderr, then dies by SIGQUIT with the
 * traceback on: stderr holds two dumps, the second after "SIGQUIT: quit". */
static void child_dumps(void)
{
	if (pipe(pipe_fds) != 0)
		_exit(3);
	TU_ASSERT_OK(tt_fd_nonblock(pipe_fds[0]));
	block_ch = tu_chan(sizeof(int), 0);
	TU_ASSERT_OK(tt_traceback_on_sigquit(true));
	tt_go(park_read, NULL);
	tt_go(park_recv, NULL);
	tt_go(park_sleep, NULL);
	size_t cap = 1 << 20;
	char *buf = malloc(cap);
	if (buf == NULL)
		_exit(3);
	/* Until all three are parked: with two Ps they may start on the
	 * other one, a while after tt_go. */
	size_t n = 0;
	for (int64_t dl = tt_deadline_in(10 * TT_SECOND);;) {
		n = tt_stack_dump(buf, cap, true);
		buf[n < cap ? n : cap - 1] = '\0';
		if ((strstr(buf, "[IO wait]") && strstr(buf, "[chan receive]") &&
		     strstr(buf, "[sleep]")) ||
		    tt_now() > dl)
			break;
		tt_sleep(TT_MILLISECOND);
	}
	if (write(2, buf, n) != (ssize_t)n)
		_exit(3);
	raise(SIGQUIT);
	_exit(0); /* not reached */
}

/* How many "goroutine N [...]:" headers text has. */
static int count_headers(const char *text)
{
	int n = 0;
	for (const char *l = text; *l;) {
		if (strncmp(l, "goroutine ", 10) == 0 && strstr(l, "]:"))
			n++;
		const char *e = strchr(l, '\n');
		if (e == NULL)
			break;
		l = e + 1;
	}
	return n;
}

/* Whether line (without its '\n') is a position line panicparse takes:
 * "\tFILE:LINE" or "\tFILE:LINE +0xOFF", FILE "??" or ending in .c/.s/.go. */
static bool position_ok(const char *line, size_t len)
{
	if (len < 2 || line[0] != '\t')
		return false;
	const char *s = line + 1, *end = line + len;
	const char *plus = memchr(s, ' ', (size_t)(end - s));
	const char *pos_end = plus ? plus : end;
	if (plus) {
		if (end - plus < 4 || strncmp(plus, " +0x", 4) != 0)
			return false;
		for (const char *p = plus + 4; p < end; p++)
			if (!strchr("0123456789abcdef", *p))
				return false;
		if (end == plus + 4)
			return false;
	}
	const char *colon = NULL;
	for (const char *p = pos_end; p > s; p--)
		if (p[-1] == ':') {
			colon = p - 1;
			break;
		}
	if (colon == NULL || colon + 1 == pos_end)
		return false;
	for (const char *p = colon + 1; p < pos_end; p++)
		if (*p < '0' || *p > '9')
			return false;
	size_t fl = (size_t)(colon - s);
	if (fl == 2 && strncmp(s, "??", 2) == 0)
		return true;
	static const char *const exts[] = {".c", ".s", ".go"};
	for (size_t i = 0; i < 3; i++) {
		size_t el = strlen(exts[i]);
		if (fl > el && strncmp(colon - el, exts[i], el) == 0)
			return true;
	}
	return false;
}

/* Every line after a function line ("NAME(...)" or "created by ...") of
 * every goroutine block in text is a position panicparse takes. */
static void assert_positions(const char *text)
{
	bool in_block = false, want_pos = false;
	int lineno = 0;
	for (const char *l = text; *l;) {
		const char *e = strchr(l, '\n');
		size_t n = e ? (size_t)(e - l) : strlen(l);
		lineno++;
		if (want_pos) {
			TU_ASSERT_MSG(position_ok(l, n),
				      "line %d: not a position Go's tools "
				      "read: \"%.*s\"\nin:\n%s",
				      lineno, (int)n, l, text);
			want_pos = false;
		} else if (n == 0) {
			in_block = false;
		} else if (strncmp(l, "goroutine ", 10) == 0) {
			in_block = true;
		} else if (in_block) {
			bool call = n >= 2 && l[n - 1] == ')';
			bool created = strncmp(l, "created by ", 11) == 0;
			TU_ASSERT_MSG(call || created,
				      "line %d: not a function line: \"%.*s\"",
				      lineno, (int)n, l);
			want_pos = true;
		}
		if (e == NULL)
			break;
		l = e + 1;
	}
	TU_ASSERT_MSG(!want_pos, "text ends after a function line:\n%s",
		      text);
}

static bool find_panicparse(char *path, size_t len)
{
	const char *env = getenv("PATH");
	char dirs[8192];
	snprintf(dirs, sizeof dirs, "%s:/usr/bin", env ? env : "");
	for (char *save, *d = strtok_r(dirs, ":", &save); d;
	     d = strtok_r(NULL, ":", &save)) {
		snprintf(path, len, "%s/panicparse", *d ? d : ".");
		if (access(path, X_OK) == 0)
			return true;
	}
	return false;
}

/* Runs panicparse over text and checks that it reports `want`
 * goroutines (the sum of the "COUNT: state" bucket headers of its
 * output), and no error. */
static void assert_panicparse_count(const char *pp, const char *text,
				    int want)
{
	char file[] = "/tmp/tether-gofmt-XXXXXX";
	int fd = mkstemp(file);
	TU_ASSERT_MSG(fd >= 0, "mkstemp: %s", strerror(errno));
	size_t len = strlen(text);
	TU_ASSERT_MSG(write(fd, text, len) == (ssize_t)len, "write: %s",
		      strerror(errno));
	close(fd);
	char cmd[8192];
	snprintf(cmd, sizeof cmd,
		 "'%s' -no-color -parse=false -rebase=false < '%s' 2>&1", pp,
		 file);
	FILE *p = popen(cmd, "r");
	TU_ASSERT_MSG(p, "popen: %s", strerror(errno));
	size_t cap = 1 << 16, n = 0, k;
	char *out = malloc(cap);
	TU_ASSERT_MSG(out, "out of memory");
	while ((k = fread(out + n, 1, cap - n - 1, p)) > 0) {
		n += k;
		if (cap - n < 4096) {
			cap *= 2;
			out = realloc(out, cap);
			TU_ASSERT_MSG(out, "out of memory");
		}
	}
	out[n] = '\0';
	int st = pclose(p);
	unlink(file);
	TU_ASSERT_MSG(st == 0, "%s: status %d:\n%s\n--- input:\n%s", cmd, st,
		      out, text);
	int total = 0;
	for (const char *l = out; *l;) {
		char *end;
		long c = strtol(l, &end, 10);
		if (*l >= '0' && *l <= '9' && end[0] == ':' && end[1] == ' ')
			total += (int)c;
		const char *e = strchr(l, '\n');
		if (e == NULL)
			break;
		l = e + 1;
	}
	TU_ASSERT_MSG(total == want,
		      "panicparse found %d goroutines, tether wrote %d:\n%s\n"
		      "--- input:\n%s",
		      total, want, out, text);
	free(out);
}

static void test_panicparse_reads_dumps(void **state)
{
	(void)state;
	TU_REQUIRE_THREADS();
	tu_child c;
	char why[64];
	TU_ASSERT_OK(tu_spawn_self("dumps", 30 * TT_SECOND, &c));
	TU_ASSERT_MSG(c.exited && c.exit_code == 2, "child %s:\n%s",
		      tu_child_describe(&c, why, sizeof why), c.err);
	char *quit = strstr(c.err, "SIGQUIT: quit\n");
	TU_ASSERT_MSG(quit, "no SIGQUIT dump in:\n%s", c.err);
	char *dump = strndup(c.err, (size_t)(quit - c.err));
	const char *sigquit = quit;
	TU_ASSERT_MSG(dump, "out of memory");

	/* What tether wrote: goroutine 1 and the three parked ones. */
	TU_ASSERT_EQ(count_headers(dump), 4);
	TU_ASSERT_EQ(count_headers(sigquit), 4);
	TU_ASSERT_CONTAINS(sigquit, "[IO wait]:\n");
	TU_ASSERT_CONTAINS(sigquit, "park_read(...)\n");
	/* The running goroutine's stack goes through the signal frame and
	 * libc's raise. */
	TU_ASSERT_CONTAINS(sigquit, "raise(...)\n");
	assert_positions(dump);
	assert_positions(sigquit);

	char pp[4096];
	if (!find_panicparse(pp, sizeof pp)) {
		print_message("*** panicparse NOT INSTALLED (Debian: "
			      "panicparse; run scripts/install-deps): the "
			      "dumps were NOT checked with Go's stack "
			      "parser ***\n");
		free(dump);
		tu_child_free(&c);
		skip();
	}
	assert_panicparse_count(pp, dump, count_headers(dump));
	assert_panicparse_count(pp, sigquit, count_headers(sigquit));
	free(dump);
	tu_child_free(&c);
}

int main(int argc, char **argv)
{
	static const tu_child_case children[] = {
		{"dumps", child_dumps},
	};
	tu_child_dispatch(argc, argv, children,
			  sizeof children / sizeof children[0]);
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_panicparse_reads_dumps),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
