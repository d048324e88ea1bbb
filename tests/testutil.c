/* tether tests — shared helpers (see testutil.h). */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif

#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <spawn.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "testutil.h"

extern char **environ;

int64_t tu_main_goid;
bool tu_in_child;
static _Atomic int go_failures; /* goroutines of any thread may fail */
static int64_t baseline_goroutines;

/* ---- failures ---------------------------------------------------------- */

void tu_fail_at(const char *file, int line, const char *fmt, ...)
{
	char msg[2048];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof msg, fmt, ap);
	va_end(ap);

	int64_t me = tt_goid();
	if (tu_in_child) {
		fprintf(stderr, "%s:%d: [child, goroutine %lld] %s\n", file,
			line, (long long)me, msg);
		fflush(stderr);
		_exit(TU_CHILD_FAIL_STATUS);
	}
	if (tu_main_goid == 0 || me == tu_main_goid) {
		print_error("%s:%d: %s\n", file, line, msg);
		_fail(file, line);
		abort(); /* _fail does not return; keep the compiler sure */
	}
	fprintf(stderr, "%s:%d: [goroutine %lld] %s\n", file, line,
		(long long)me, msg);
	fflush(stderr);
	atomic_fetch_add(&go_failures, 1);
	tt_goexit();
}

int tu_goroutine_failures(void)
{
	return atomic_load(&go_failures);
}

const char *tu_errname(long long err)
{
	if (err == 0)
		return "0";
	if (err > 0 && err > 4095)
		return "not an errno";
	long long e = err < 0 ? -err : err;
	if (e > 4095)
		return "not an errno";
	const char *n = strerrorname_np((int)e);
	return n ? n : "unknown errno";
}

void tu_assert_mem_eq_at(const char *file, int line, const char *an,
			 const char *bn, const void *a, const void *b,
			 size_t n)
{
	const unsigned char *x = a, *y = b;
	for (size_t i = 0; i < n; i++) {
		if (x[i] != y[i])
			tu_fail_at(file, line,
				   "%s and %s differ at byte %zu of %zu: "
				   "0x%02x vs 0x%02x",
				   an, bn, i, n, x[i], y[i]);
	}
}

bool tu_contains(const char *hay, const char *needle)
{
	return hay && needle && strstr(hay, needle) != NULL;
}

bool tu_contains_nocase(const char *hay, const char *needle)
{
	return hay && needle && strcasestr(hay, needle) != NULL;
}

void tu_assert_contains_at(const char *file, int line, const char *hayname,
			   const char *hay, const char *needle, bool want)
{
	if (tu_contains(hay, needle) == want)
		return;
	/* Show the text we searched (bounded) before failing. */
	fprintf(stderr, "---- %s ----\n%.*s\n---- end ----\n", hayname,
		8192, hay ? hay : "(null)");
	tu_fail_at(file, line, "%s %s \"%s\"", hayname,
		   want ? "does not contain" : "contains", needle);
}

/* ---- fixture ------------------------------------------------------------- */

static int procs_before; /* 0: tu_one_p not called in this test */

void tu_one_p(void)
{
	int prev = tt_runtime_procs_set(1);
	if (prev < 1)
		tu_fail_at(__FILE__, __LINE__, "tt_runtime_procs_set(1): %d",
			   prev);
	if (procs_before == 0)
		procs_before = prev;
}

int tu_setup(void **state)
{
	(void)state;
	tu_main_goid = tt_goid();
	atomic_store(&go_failures, 0);
	baseline_goroutines = tt_num_goroutine();
	return 0;
}

int tu_teardown(void **state)
{
	(void)state;
	if (procs_before != 0) { /* before any check can fail */
		tt_runtime_procs_set(procs_before);
		procs_before = 0;
	}
	int64_t dl = tt_deadline_in(2 * TT_SECOND);
	while (tt_num_goroutine() > baseline_goroutines && tt_now() < dl)
		tu_pause();
	int failures = atomic_exchange(&go_failures, 0);
	if (failures)
		tu_fail_at(__FILE__, __LINE__,
			   "%d goroutine(s) failed a check (see above)",
			   failures);
	int64_t n = tt_num_goroutine();
	if (n != baseline_goroutines)
		tu_fail_at(__FILE__, __LINE__,
			   "the test left goroutines behind: %lld now, %lld "
			   "at its start",
			   (long long)n, (long long)baseline_goroutines);
	return 0;
}

/* ---- goroutines and channels --------------------------------------------- */

int64_t tu_go_at(const char *file, int line, const tt_go_attr *attr,
		 tt_func fn, void *arg)
{
	int64_t id = attr ? tt_go_with(attr, fn, arg) : tt_go(fn, arg);
	if (id <= 0)
		tu_fail_at(file, line, "tt_go failed: %lld (%s): %s",
			   (long long)id, tu_errname(id), tt_last_error());
	return id;
}

tt_chan *tu_chan_at(const char *file, int line, size_t elem_size,
		    ptrdiff_t cap)
{
	tt_chan *c = NULL;
	int r = tt_chan_make(&c, elem_size, cap);
	if (r != 0 || c == NULL)
		tu_fail_at(file, line,
			   "tt_chan_make(%zu, %td) failed: %d (%s): %s",
			   elem_size, cap, r, tu_errname(r), tt_last_error());
	return c;
}

void tu_done_at(const char *file, int line, tt_chan *done)
{
	int r = tt_chan_send(done, NULL, 0);
	if (r != 0)
		tu_fail_at(file, line, "sending a done token failed: %d (%s)",
			   r, tu_errname(r));
}

void tu_wait_done_at(const char *file, int line, tt_chan *done, long n,
		     int64_t timeout_ns)
{
	int64_t dl = tt_deadline_in(timeout_ns);
	for (long i = 0; i < n; i++) {
		bool ok = false;
		int r = tt_chan_recv_until(done, NULL, 0, &ok, dl);
		if (r != 0 || !ok)
			tu_fail_at(file, line,
				   "got %ld of %ld done tokens: receive "
				   "returned %d (%s), ok=%d (a goroutine "
				   "failed or hangs)",
				   i, n, r, tu_errname(r), ok);
	}
}

void tu_pause(void)
{
	tt_yield();
	tt_sleep(50 * TT_MICROSECOND);
}

/* ---- other threads ------------------------------------------------------------ */

void tu_join_thread(void *arg)
{
	pthread_join(*(pthread_t *)arg, NULL);
}

void tu_join_parked_at(const char *file, int line, pthread_t th)
{
	int r = tt_blocking(tu_join_thread, &th);
	if (r != 0)
		tu_fail_at(file, line, "tt_blocking(pthread_join): %s",
			   tt_last_error());
}

int tu_sink_write(void *arg, const void *d, size_t n)
{
	tu_sink *s = arg;
	char *p = realloc(s->p, s->len + n + 1);
	if (p == NULL)
		return -ENOMEM;
	s->p = p;
	memcpy(s->p + s->len, d, n);
	s->len += n;
	s->p[s->len] = 0;
	return 0;
}

int tu_count(const char *text, const char *needle)
{
	int n = 0;
	for (const char *p = text; (p = strstr(p, needle)) != NULL;
	     p += strlen(needle))
		n++;
	return n;
}

void tu_run_child_case(const char *name)
{
	tu_child c;
	assert_int_equal(tu_spawn_self(name, 60 * TT_SECOND, &c), 0);
	assert_false(c.timed_out);
	if (!strstr(c.err, "tu-done"))
		fprintf(stderr, "%s", c.err);
	TU_ASSERT_CHILD_EXIT(&c, 0);
	TU_ASSERT_CONTAINS(c.err, "tu-done");
	tu_child_free(&c);
}

/* ---- time, memory, randomness ------------------------------------------------ */

bool tu_emulated(void)
{
	const char *e = getenv("TETHER_EMULATOR");
	return e != NULL && *e != '\0';
}

int64_t tu_slack_ns(void)
{
	static int64_t slack;
	if (slack == 0) {
		const char *v = getenv("TU_TIME_SLACK_MS");
		long ms = v ? strtol(v, NULL, 10) : 0;
		if (ms <= 0)
			ms = tu_emulated() ? 1000 : 200;
		slack = ms * TT_MILLISECOND;
	}
	return slack;
}

long long tu_rss_bytes(void)
{
	long long pages = 0, rss = 0;
	FILE *fp = fopen("/proc/self/statm", "r");
	if (fp == NULL)
		return -1;
	if (fscanf(fp, "%lld %lld", &pages, &rss) != 2)
		rss = -1;
	fclose(fp);
	return rss < 0 ? -1 : rss * (long long)sysconf(_SC_PAGESIZE);
}

uint64_t tu_seed(const char *what)
{
	const char *v = getenv("TU_SEED");
	uint64_t seed = v ? strtoull(v, NULL, 0) : UINT64_C(0x7e7e7e7e12345678);
	printf("# %s: TU_SEED=0x%" PRIx64 "\n", what, seed);
	fflush(stdout);
	return seed;
}

/* ---- child processes ------------------------------------------------------------ */

static void probe_threads_and_fork(void);

static const int cmocka_signals[] = {SIGSEGV, SIGBUS, SIGILL, SIGFPE,
				     SIGSYS, SIGABRT};

static void capture(int fd, pid_t pid, int64_t timeout_ns, tu_child *out)
{
	size_t cap = 4096, len = 0;
	char *buf = malloc(cap);
	int64_t dl = tt_deadline_in(timeout_ns);
	bool killed = false;
	for (;;) {
		int64_t left = dl - tt_now();
		if (left <= 0 && !killed) {
			kill(pid, SIGKILL);
			killed = true;
			out->timed_out = true;
		}
		struct pollfd p = {.fd = fd, .events = POLLIN};
		int ms = killed ? 1000 : (int)(left / TT_MILLISECOND) + 1;
		int r = poll(&p, 1, ms);
		if (r < 0 && errno == EINTR)
			continue;
		if (r == 0) {
			if (killed)
				break; /* a grandchild holds the pipe */
			continue;
		}
		if (buf && len + 1024 > cap && cap < (8u << 20)) {
			char *nb = realloc(buf, cap * 2);
			if (nb) {
				buf = nb;
				cap *= 2;
			}
		}
		char sink[1024];
		char *dst = buf && len + 1024 <= cap ? buf + len : sink;
		ssize_t n = read(fd, dst, 1023);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			break;
		if (dst != sink)
			len += (size_t)n;
	}
	close(fd);
	int st = 0;
	while (waitpid(pid, &st, 0) < 0 && errno == EINTR)
		;
	if (WIFEXITED(st)) {
		out->exited = true;
		out->exit_code = WEXITSTATUS(st);
	} else if (WIFSIGNALED(st)) {
		out->signaled = true;
		out->term_sig = WTERMSIG(st);
	}
	if (buf)
		buf[len] = '\0';
	out->err = buf;
	out->err_len = buf ? len : 0;
}

int tu_fork_run(void (*fn)(void *), void *arg, int64_t timeout_ns,
		tu_child *out)
{
	memset(out, 0, sizeof *out);
	if (!tu_threads_and_fork_work())
		return -ENOSYS;
	int p[2];
	if (pipe2(p, O_CLOEXEC) != 0)
		return -errno;
	fflush(NULL); /* or the child would print our buffered output too */
	pid_t pid = fork();
	if (pid < 0) {
		int e = errno;
		close(p[0]);
		close(p[1]);
		return -e;
	}
	if (pid == 0) {
		tu_in_child = true;
		struct rlimit nocore = {0, 0};
		setrlimit(RLIMIT_CORE, &nocore);
		for (size_t i = 0;
		     i < sizeof cmocka_signals / sizeof cmocka_signals[0]; i++)
			signal(cmocka_signals[i], SIG_DFL);
		dup2(p[1], 2);
		close(p[0]);
		close(p[1]);
		setvbuf(stderr, NULL, _IONBF, 0);
		fn(arg);
		fflush(NULL);
		_exit(0);
	}
	close(p[1]);
	capture(p[0], pid, timeout_ns, out);
	return 0;
}

void tu_child_dispatch(int argc, char **argv, const tu_child_case *cases,
		       size_t ncases)
{
	if (argc < 3 || strcmp(argv[1], "--tu-child") != 0)
		return;
	tu_in_child = true;
	setvbuf(stderr, NULL, _IONBF, 0);
	if (strcmp(argv[2], "__tu_probe") == 0) {
		probe_threads_and_fork();
		exit(0);
	}
	for (size_t i = 0; i < ncases; i++) {
		if (strcmp(cases[i].name, argv[2]) == 0) {
			cases[i].fn();
			fflush(NULL);
			exit(0);
		}
	}
	fprintf(stderr, "no child case named \"%s\"\n", argv[2]);
	exit(TU_CHILD_FAIL_STATUS);
}

/* environ, with ASAN_OPTIONS extended by detect_leaks=0 (a later key
 * overrides an earlier one). */
static char **child_env(char **extra)
{
	size_t n = 0;
	while (environ[n])
		n++;
	char **env = calloc(n + 2, sizeof *env);
	if (env == NULL)
		return environ;
	const char *asan = getenv("ASAN_OPTIONS");
	size_t k = 0;
	for (size_t i = 0; i < n; i++)
		if (strncmp(environ[i], "ASAN_OPTIONS=", 13) != 0)
			env[k++] = environ[i];
	if (asprintf(extra, "ASAN_OPTIONS=%s%sdetect_leaks=0",
		     asan ? asan : "", asan && *asan ? ":" : "") < 0)
		*extra = NULL;
	if (*extra)
		env[k++] = *extra;
	env[k] = NULL;
	return env;
}

int tu_spawn_self(const char *name, int64_t timeout_ns, tu_child *out)
{
	memset(out, 0, sizeof *out);
	int p[2];
	if (pipe2(p, O_CLOEXEC) != 0)
		return -errno;
	char *extra = NULL;
	char **env = child_env(&extra);
	/* Under an emulator (cross builds) the emulator runs the child:
	 * TETHER_EMULATOR is its command line, words separated by spaces. */
	char self[4096];
	ssize_t n = readlink("/proc/self/exe", self, sizeof self - 1);
	if (n <= 0) {
		int e = errno;
		close(p[0]);
		close(p[1]);
		return -e;
	}
	self[n] = '\0';
	char *emu = tu_emulated() ? strdup(getenv("TETHER_EMULATOR")) : NULL;
	char *argv[32];
	int argc = 0;
	if (emu) {
		for (char *tok = strtok(emu, " "); tok && argc < 24;
		     tok = strtok(NULL, " "))
			argv[argc++] = tok;
	}
	argv[argc++] = self;
	argv[argc++] = (char *)"--tu-child";
	argv[argc++] = (char *)name;
	argv[argc] = NULL;

	/* posix_spawn rather than fork: it also works where fork does not
	 * (qemu-user 7.2 on recent kernels hangs in fork and in
	 * pthread_create). The child: stdout to /dev/null, stderr to the
	 * pipe, default actions for the signals cmocka catches, no core
	 * dump (the limit is inherited, so lower ours around the spawn). */
	posix_spawn_file_actions_t fa;
	posix_spawnattr_t at;
	posix_spawn_file_actions_init(&fa);
	posix_spawn_file_actions_addopen(&fa, 1, "/dev/null", O_WRONLY, 0);
	posix_spawn_file_actions_adddup2(&fa, p[1], 2);
	posix_spawnattr_init(&at);
	sigset_t dfl, none;
	sigemptyset(&dfl);
	sigemptyset(&none);
	for (size_t i = 0; i < sizeof cmocka_signals / sizeof cmocka_signals[0];
	     i++)
		sigaddset(&dfl, cmocka_signals[i]);
	posix_spawnattr_setsigdefault(&at, &dfl);
	posix_spawnattr_setsigmask(&at, &none);
	posix_spawnattr_setflags(&at, POSIX_SPAWN_SETSIGDEF |
					     POSIX_SPAWN_SETSIGMASK);
	struct rlimit core, nocore = {0, 0};
	bool have_core = getrlimit(RLIMIT_CORE, &core) == 0;
	if (have_core) {
		nocore.rlim_max = core.rlim_max;
		setrlimit(RLIMIT_CORE, &nocore);
	}
	fflush(NULL);
	pid_t pid;
	int r = posix_spawnp(&pid, argv[0], &fa, &at, argv, env);
	if (have_core)
		setrlimit(RLIMIT_CORE, &core);
	posix_spawn_file_actions_destroy(&fa);
	posix_spawnattr_destroy(&at);
	close(p[1]);
	free(emu);
	if (env != environ)
		free(env);
	free(extra);
	if (r != 0) {
		close(p[0]);
		return -r;
	}
	capture(p[0], pid, timeout_ns, out);
	return 0;
}

/* The probe child: a thread and a fork, each of which must finish. */
static void *probe_thread(void *arg)
{
	return arg;
}

static void probe_threads_and_fork(void)
{
	pthread_t th;
	if (pthread_create(&th, NULL, probe_thread, NULL) != 0 ||
	    pthread_join(th, NULL) != 0)
		exit(1);
	pid_t pid = fork();
	if (pid < 0)
		exit(1);
	if (pid == 0)
		_exit(0);
	int st = 0;
	if (waitpid(pid, &st, 0) != pid || !WIFEXITED(st))
		exit(1);
}

/* Whether this process is a probe child (--tu-child __tu_probe), read
 * from /proc/self/cmdline before main: a test program with no child
 * cases of its own never calls tu_child_dispatch, so the probe runs where
 * every suite starts (tu_run_group_tests). Without that, the child would
 * run the whole suite, and its TU_REQUIRE_THREADS spawn another probe.
 * (Not the probe itself here: under qemu-user a thread made in a
 * constructor never starts.) */
static bool probe_child;

__attribute__((constructor)) static void see_probe_child(void)
{
	int fd = open("/proc/self/cmdline", O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return;
	char buf[4096];
	ssize_t n = read(fd, buf, sizeof buf - 1);
	close(fd);
	if (n <= 0)
		return;
	buf[n] = '\0';
	/* argv[0], then the arguments, each ending in a NUL. */
	const char *a1 = buf + strlen(buf) + 1;
	if (a1 >= buf + n || strcmp(a1, "--tu-child") != 0)
		return;
	const char *a2 = a1 + strlen(a1) + 1;
	probe_child = a2 < buf + n && strcmp(a2, "__tu_probe") == 0;
}

int tu_run_group_tests(const char *name, const struct CMUnitTest *tests,
		       size_t n, CMFixtureFunction setup,
		       CMFixtureFunction teardown)
{
	if (probe_child) {
		probe_threads_and_fork();
		exit(0);
	}
	return _cmocka_run_group_tests(name, tests, n, setup, teardown);
}

bool tu_threads_and_fork_work(void)
{
	static int known; /* 0: not probed; 1: they work; 2: they do not */
	if (!tu_emulated())
		return true;
	if (known == 0) {
		tu_child c;
		int r = tu_spawn_self("__tu_probe", 30 * TT_SECOND, &c);
		known = r == 0 && c.exited && c.exit_code == 0 ? 1 : 2;
		if (known == 2)
			printf("# threads or fork do not work under this "
			       "emulator (%s): tests that need them are "
			       "skipped\n",
			       getenv("TETHER_EMULATOR"));
		if (r == 0)
			tu_child_free(&c);
	}
	return known == 1;
}

void tu_child_free(tu_child *c)
{
	free(c->err);
	c->err = NULL;
	c->err_len = 0;
}

const char *tu_child_describe(const tu_child *c, char *buf, size_t n)
{
	if (c->timed_out)
		snprintf(buf, n, "timed out (killed)");
	else if (c->exited)
		snprintf(buf, n, "exited with status %d", c->exit_code);
	else if (c->signaled)
		snprintf(buf, n, "killed by signal %d (%s)", c->term_sig,
			 strsignal(c->term_sig));
	else
		snprintf(buf, n, "ended in an unknown way");
	return buf;
}

long long tu_child_marker(const tu_child *c, const char *key)
{
	if (c->err == NULL)
		return -1;
	char pat[64];
	snprintf(pat, sizeof pat, "%s=", key);
	const char *p = strstr(c->err, pat);
	if (p == NULL)
		return -1;
	p += strlen(pat);
	if (!isdigit((unsigned char)*p))
		return -1;
	return strtoll(p, NULL, 10);
}

void tu_assert_child_at(const char *file, int line, const tu_child *c,
			bool want_exit, int status, bool want_signal, int sig)
{
	bool good = !c->timed_out &&
		    ((want_exit && c->exited && c->exit_code == status) ||
		     (want_signal && c->signaled && c->term_sig == sig));
	if (good)
		return;
	char got[96];
	tu_child_describe(c, got, sizeof got);
	fprintf(stderr, "---- child stderr ----\n%.*s\n---- end ----\n",
		8192, c->err ? c->err : "");
	if (want_exit)
		tu_fail_at(file, line, "child %s, want exit status %d", got,
			   status);
	tu_fail_at(file, line, "child %s, want signal %d (%s)", got, sig,
		   strsignal(sig));
}

/* ---- HTTP and go tool pprof ------------------------------------------------ */

tu_http_resp tu_http(int port, const char *method, const char *target)
{
	return tu_http_req(port, method, target, NULL, 10 * TT_SECOND);
}

tu_http_resp tu_http_req(int port, const char *method, const char *target,
			 const char *headers, int64_t timeout_ns)
{
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	TU_ASSERT_GE(fd, 0);
	struct sockaddr_in a = {.sin_family = AF_INET,
				.sin_port = htons((uint16_t)port),
				.sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	TU_ASSERT_OK(tt_connect(fd, (struct sockaddr *)&a, sizeof a,
				tt_deadline_in(5 * TT_SECOND)));
	char req[1024];
	int n = snprintf(req, sizeof req,
			 "%s %s HTTP/1.1\r\nHost: 127.0.0.1\r\n%s"
			 "Connection: close\r\n\r\n",
			 method, target, headers ? headers : "");
	TU_ASSERT_MSG(n > 0 && (size_t)n < sizeof req, "target too long");
	TU_ASSERT_EQ(send(fd, req, (size_t)n, MSG_NOSIGNAL), n);
	size_t cap = 1 << 16, len = 0;
	char *all = malloc(cap);
	TU_ASSERT(all != NULL);
	int64_t dl = tt_deadline_in(timeout_ns);
	for (;;) {
		if (cap - len < 4096) {
			cap *= 2;
			all = realloc(all, cap);
			TU_ASSERT(all != NULL);
		}
		ssize_t r = tt_read(fd, all + len, cap - len - 1, dl);
		TU_ASSERT_MSG(r >= 0, "%s %s: read: %s", method, target,
			      tt_strerror((int)r));
		if (r == 0)
			break;
		len += (size_t)r;
	}
	close(fd);
	all[len] = '\0';
	char *end = strstr(all, "\r\n\r\n");
	TU_ASSERT_MSG(end, "%s %s: no response head in %zu bytes", method,
		      target, len);
	tu_http_resp out = {0};
	size_t hl = (size_t)(end - all) + 4;
	out.head = strndup(all, hl);
	TU_ASSERT(out.head != NULL);
	TU_ASSERT_MSG(sscanf(all, "HTTP/1.%*d %d", &out.status) == 1,
		      "%s %s: bad status line: %.80s", method, target, all);
	out.body_len = len - hl;
	out.body = malloc(out.body_len + 1);
	TU_ASSERT(out.body != NULL);
	memcpy(out.body, all + hl, out.body_len);
	out.body[out.body_len] = '\0';
	free(all);
	return out;
}

char *tu_http_get_ok(int port, const char *target, size_t *len)
{
	tu_http_resp r = tu_http(port, "GET", target);
	TU_ASSERT_MSG(r.status == 200, "GET %s: status %d: %.200s", target,
		      r.status, r.body);
	if (len)
		*len = r.body_len;
	free(r.head);
	return r.body;
}

void tu_http_free(tu_http_resp *r)
{
	free(r->head);
	free(r->body);
	r->head = r->body = NULL;
}

const char *tu_http_header(tu_http_resp *r, const char *name)
{
	return tu_header_value(r->head, name, r->value, sizeof r->value);
}

const char *tu_header_value(const char *head, const char *name, char *v,
			    size_t len)
{
	v[0] = '\0';
	size_t n = strlen(name);
	for (const char *l = strstr(head, "\r\n"); l && l[2];
	     l = strstr(l + 2, "\r\n")) {
		const char *h = l + 2;
		if (strncasecmp(h, name, n) == 0 && h[n] == ':') {
			const char *s = h + n + 1;
			while (*s == ' ')
				s++;
			const char *e = strstr(s, "\r\n");
			size_t k = e ? (size_t)(e - s) : strlen(s);
			if (k >= len)
				k = len - 1;
			memcpy(v, s, k);
			v[k] = '\0';
			break;
		}
	}
	return v;
}

bool tu_find_go(char *path, size_t len)
{
	const char *env = getenv("PATH");
	char dirs[8192];
	snprintf(dirs, sizeof dirs, "%s:/usr/lib/go/bin", env ? env : "");
	for (char *save, *d = strtok_r(dirs, ":", &save); d;
	     d = strtok_r(NULL, ":", &save)) {
		snprintf(path, len, "%s/go", *d ? d : ".");
		if (access(path, X_OK) == 0)
			return true;
	}
	return false;
}

char *tu_pprof(const char *go, const char *flags, const char *file)
{
	char cmd[8192];
	snprintf(cmd, sizeof cmd, "'%s' tool pprof %s '%s' 2>&1", go, flags,
		 file);
	FILE *p = popen(cmd, "r");
	TU_ASSERT_MSG(p, "popen: %s", strerror(errno));
	size_t cap = 1 << 16, len = 0, n;
	char *out = malloc(cap);
	TU_ASSERT(out != NULL);
	while ((n = fread(out + len, 1, cap - len - 1, p)) > 0) {
		len += n;
		if (cap - len < 4096) {
			cap *= 2;
			out = realloc(out, cap);
			TU_ASSERT(out != NULL);
		}
	}
	out[len] = '\0';
	int st = pclose(p);
	TU_ASSERT_MSG(st == 0, "%s: status %d:\n%s", cmd, st, out);
	return out;
}

void tu_write_temp(const char *name, const void *data, size_t len,
		   char *path, size_t path_len)
{
	char dir[] = "/tmp/tether-test-XXXXXX";
	TU_ASSERT_MSG(mkdtemp(dir), "mkdtemp: %s", strerror(errno));
	int n = snprintf(path, path_len, "%s/%s", dir, name);
	TU_ASSERT(n > 0 && (size_t)n < path_len);
	FILE *f = fopen(path, "wb");
	TU_ASSERT_MSG(f, "%s: %s", path, strerror(errno));
	TU_ASSERT_EQ(fwrite(data, 1, len, f), len);
	TU_ASSERT_EQ(fclose(f), 0);
}

void tu_unlink_temp(const char *path)
{
	unlink(path);
	char dir[4096];
	snprintf(dir, sizeof dir, "%s", path);
	char *slash = strrchr(dir, '/');
	if (slash) {
		*slash = '\0';
		rmdir(dir);
	}
}
