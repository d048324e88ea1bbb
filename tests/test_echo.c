/* examples/echo under load: hundreds of concurrent loopback clients, as
 * goroutines of this one thread, each checking that every byte comes
 * back in order; then SIGTERM, a clean exit and the summary line. Also
 * --max-conns, --seconds and bad flags. */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "testutil.h"

extern char **environ;

#define SEC TT_SECOND
#define MS TT_MILLISECOND

/* ---- the server as a child process -------------------------------------- */

typedef struct server {
	pid_t pid;
	int out;       /* its stdout, non-blocking */
	char text[4096]; /* everything it printed */
	size_t len;
	struct sockaddr_in addr;
} server;

/* The server a test has running, for the teardown to kill if the test
 * failed before stopping it. */
static pid_t live_server;

static int teardown(void **state)
{
	if (live_server > 0) {
		kill(live_server, SIGKILL);
		waitpid(live_server, NULL, 0);
		live_server = 0;
	}
	return tu_teardown(state);
}

/* Read the server's stdout until `needle` shows up or it ends. */
static void read_until(server *sv, const char *needle, int64_t deadline)
{
	while (!tu_contains(sv->text, needle)) {
		TU_ASSERT_LT(sv->len, sizeof sv->text - 1);
		ssize_t n = tt_read(sv->out, sv->text + sv->len,
				    sizeof sv->text - 1 - sv->len, deadline);
		TU_ASSERT_MSG(n > 0,
			      "the server ended its output (%s) without "
			      "\"%s\"; it printed: %s",
			      tu_errname(n), needle, sv->text);
		sv->len += (size_t)n;
		sv->text[sv->len] = '\0';
	}
}

/* Start build/examples/echo (under TETHER_EMULATOR if set) on port 0
 * with extra arguments, and learn its port from its first line. Give it
 * --seconds, so that it ends by itself even if the test fails before
 * it stops it. */
static void start_server(server *sv, const char *args)
{
	const char *dir = getenv("TETHER_BUILD_DIR");
	const char *emu = getenv("TETHER_EMULATOR");
	char cmd[1024];
	snprintf(cmd, sizeof cmd, "exec %s %s/examples/echo --port 0 %s",
		 emu ? emu : "", dir ? dir : "build", args);
	int p[2];
	assert_int_equal(pipe2(p, O_CLOEXEC), 0);
	posix_spawn_file_actions_t fa;
	posix_spawn_file_actions_init(&fa);
	posix_spawn_file_actions_adddup2(&fa, p[1], STDOUT_FILENO);
	char *argv[] = {"sh", "-c", cmd, NULL};
	memset(sv, 0, sizeof *sv);
	assert_int_equal(posix_spawn(&sv->pid, "/bin/sh", &fa, NULL, argv,
				     environ),
			 0);
	posix_spawn_file_actions_destroy(&fa);
	live_server = sv->pid;
	close(p[1]);
	sv->out = p[0];
	TU_ASSERT_OK(tt_fd_nonblock(sv->out));
	read_until(sv, "\n", tt_deadline_in(30 * SEC));
	const char *at = strstr(sv->text, "echo: listening on 127.0.0.1:");
	TU_ASSERT_MSG(at == sv->text, "unexpected first line: %s", sv->text);
	int port = atoi(at + strlen("echo: listening on 127.0.0.1:"));
	TU_ASSERT_RANGE(port, 1, 65535);
	sv->addr = (struct sockaddr_in){.sin_family = AF_INET,
					.sin_port = htons((uint16_t)port),
					.sin_addr.s_addr =
						htonl(INADDR_LOOPBACK)};
}

/* Wait for the server to exit (it was told to, or will by itself);
 * returns its exit status, or -1 if a signal ended it;
 * fails after timeout_ns (the teardown kills it). */
static int wait_server(server *sv, int64_t timeout_ns)
{
	read_until(sv, "echo: served ", tt_deadline_in(timeout_ns));
	read_until(sv, " bytes\n", tt_deadline_in(timeout_ns));
	int64_t deadline = tt_deadline_in(timeout_ns);
	int st;
	pid_t r;
	while ((r = waitpid(sv->pid, &st, WNOHANG)) == 0) {
		if (tt_now() > deadline)
			tu_fail_at(__FILE__, __LINE__,
				   "the server did not exit; it printed: %s",
				   sv->text);
		tt_sleep(5 * MS);
	}
	TU_ASSERT_EQ(r, sv->pid);
	live_server = 0;
	tt_close(sv->out);
	return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

/* The numbers of the summary line. */
static void summary(const server *sv, long *conns, long long *bytes)
{
	const char *s = strstr(sv->text, "echo: served ");
	TU_ASSERT(s != NULL);
	TU_ASSERT_EQ(sscanf(s, "echo: served %ld connections, echoed %lld "
			       "bytes",
			    conns, bytes),
		     2);
}

static int dial(const server *sv)
{
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC,
			0);
	TU_ASSERT(fd >= 0);
	TU_ASSERT_OK(tt_connect(fd, (const struct sockaddr *)&sv->addr,
				sizeof sv->addr, tt_deadline_in(10 * SEC)));
	return fd;
}

/* Read exactly n bytes (fails on end of stream or error). */
static void read_full(int fd, char *buf, size_t n, int64_t deadline)
{
	size_t have = 0;
	while (have < n) {
		ssize_t k = tt_read(fd, buf + have, n - have, deadline);
		TU_ASSERT_MSG(k > 0, "read %zu of %zu bytes, then %s (%s)",
			      have, n, k == 0 ? "end of stream" : tu_errname(k),
			      tt_last_error());
		have += (size_t)k;
	}
}

/* ---- clients ------------------------------------------------------------- */

enum kind {
	ROUNDS,  /* round trips of random sizes, up to 64 KiB */
	LARGE,   /* 1 MiB in one write while a second goroutine reads */
	EARLY,   /* sends, reads part of the echo, closes */
	SILENT,  /* connects and closes without a byte */
};

typedef struct client {
	const server *sv;
	enum kind kind;
	uint64_t rng;
	long long verified; /* bytes that came back and matched */
	tt_waitgroup *wg;
	/* LARGE: the writer half. */
	int fd;
	const char *msg;
	size_t len;
} client;

static void fill(char *buf, size_t n, uint64_t *rng)
{
	for (size_t i = 0; i < n; i += 8) {
		uint64_t v = tu_rand(rng);
		memcpy(buf + i, &v, n - i < 8 ? n - i : 8);
	}
}

static void large_writer(void *arg)
{
	client *c = arg;
	TU_ASSERT_EQ(tt_write(c->fd, c->msg, c->len, tt_deadline_in(60 * SEC)),
		     (long)c->len);
	tt_wg_done(c->wg);
}

static void run_client(void *arg)
{
	client *c = arg;
	int64_t deadline = tt_deadline_in(60 * SEC);
	int fd = dial(c->sv);
	switch (c->kind) {
	case ROUNDS: {
		enum { MAX = 64 * 1024 };
		char *msg = malloc(MAX), *got = malloc(MAX);
		TU_ASSERT(msg && got);
		int rounds = 1 + (int)tu_rand_n(&c->rng, 8);
		for (int r = 0; r < rounds; r++) {
			/* Mostly small, now and then up to 64 KiB. */
			size_t n = 1 + tu_rand_n(&c->rng,
						 tu_rand_n(&c->rng, 4) ? 512
								       : MAX);
			fill(msg, n, &c->rng);
			TU_ASSERT_EQ(tt_write(fd, msg, n, deadline), (long)n);
			read_full(fd, got, n, deadline);
			TU_ASSERT_MEM_EQ(got, msg, n);
			c->verified += (long long)n;
		}
		free(msg);
		free(got);
		break;
	}
	case LARGE: {
		size_t n = 1 << 20;
		char *msg = malloc(n), *got = malloc(n);
		TU_ASSERT(msg && got);
		fill(msg, n, &c->rng);
		/* The server echoes as it reads, so writing it all before
		 * reading would fill both directions' buffers: write from a
		 * second goroutine (one reader and one writer per descriptor
		 * may wait at once). */
		c->fd = fd;
		c->msg = msg;
		c->len = n;
		tt_wg_add(c->wg, 1);
		tu_go(large_writer, c);
		read_full(fd, got, n, deadline);
		TU_ASSERT_MEM_EQ(got, msg, n);
		c->verified += (long long)n;
		free(msg);
		free(got);
		break;
	}
	case EARLY: {
		char msg[4096], got[100];
		fill(msg, sizeof msg, &c->rng);
		TU_ASSERT_EQ(tt_write(fd, msg, sizeof msg, deadline),
			     (long)sizeof msg);
		read_full(fd, got, sizeof got, deadline);
		TU_ASSERT_MEM_EQ(got, msg, sizeof got);
		break; /* close with the rest of the echo unread */
	}
	case SILENT:
		break;
	}
	TU_ASSERT_OK(tt_close(fd));
	tt_wg_done(c->wg);
}

/* Holds a connection open until the server shuts down, which must close
 * it: the read sees the end of the stream. */
static void idle_client(void *arg)
{
	client *c = arg;
	char b;
	TU_ASSERT_EQ(tt_read(c->fd, &b, 1, tt_deadline_in(60 * SEC)), 0);
	TU_ASSERT_OK(tt_close(c->fd));
	tt_wg_done(c->wg);
}

static void test_echo_under_load(void **state)
{
	(void)state;
	const int n = TU_SCALE(300, 100), idle = 5;
	uint64_t seed = tu_seed("echo clients");
	server sv;
	start_server(&sv, "--seconds 300");

	tt_waitgroup *wg, *idle_wg;
	TU_ASSERT_OK(tt_wg_make(&wg));
	TU_ASSERT_OK(tt_wg_make(&idle_wg));
	client *cs = calloc((size_t)n + idle, sizeof *cs);
	assert_non_null(cs);
	/* A few idle connections first, so the shutdown finds them. */
	for (int i = n; i < n + idle; i++) {
		cs[i] = (client){.sv = &sv, .wg = idle_wg, .fd = dial(&sv)};
		TU_ASSERT_OK(tt_wg_add(idle_wg, 1));
		tu_go(idle_client, &cs[i]);
	}
	int counts[4] = {0};
	for (int i = 0; i < n; i++) {
		enum kind k = i % 50 == 7	 ? LARGE
			      : i % 10 == 3	 ? EARLY
			      : i % 25 == 11 ? SILENT
					     : ROUNDS;
		counts[k]++;
		cs[i] = (client){.sv = &sv, .kind = k, .wg = wg,
				 .rng = seed + (uint64_t)i};
		TU_ASSERT_OK(tt_wg_add(wg, 1));
		tu_go(run_client, &cs[i]);
	}
	TU_ASSERT_GT(counts[LARGE], 0);
	TU_ASSERT_GT(counts[SILENT], 0);
	/* A client that fails a check ends without tt_wg_done: stop at the
	 * first failure rather than at the timeout. */
	int64_t end = tt_deadline_in(120 * SEC);
	while (tt_wg_wait_until(wg, tt_deadline_in(50 * MS)) == -ETIMEDOUT) {
		TU_ASSERT_EQ(tu_goroutine_failures(), 0);
		TU_ASSERT_MSG(tt_now() < end, "%lld clients still running",
			      (long long)tt_wg_count(wg));
	}
	TU_ASSERT_EQ(tu_goroutine_failures(), 0);
	long long verified = 0;
	for (int i = 0; i < n; i++)
		verified += cs[i].verified;
	TU_ASSERT_GE(verified, counts[LARGE] * (1LL << 20));

	TU_ASSERT_EQ(kill(sv.pid, SIGTERM), 0);
	TU_ASSERT_EQ(wait_server(&sv, 30 * SEC), 0);
	/* The idle clients were closed by the server's shutdown. */
	TU_ASSERT_OK(tt_wg_wait_until(idle_wg, tt_deadline_in(10 * SEC)));
	long conns;
	long long bytes;
	summary(&sv, &conns, &bytes);
	TU_ASSERT_EQ(conns, n + idle);
	/* Early closers may have had any part of their echo written. */
	TU_ASSERT_GE(bytes, verified);
	TU_ASSERT_LE(bytes, verified + counts[EARLY] * 4096LL);
	TU_ASSERT_CONTAINS(sv.text, "\n"); /* the summary line is complete */
	free(cs);
	TU_ASSERT_OK(tt_wg_release(wg));
	TU_ASSERT_OK(tt_wg_release(idle_wg));
}

/* --max-conns 2: a third client waits until one of the first two
 * leaves. */
static void test_echo_max_conns(void **state)
{
	(void)state;
	server sv;
	start_server(&sv, "--max-conns 2 --seconds 300");
	int fd[3];
	char got;
	for (int i = 0; i < 3; i++) {
		fd[i] = dial(&sv); /* the kernel's listen queue accepts */
		TU_ASSERT_EQ(tt_write(fd[i], &"abc"[i], 1, TT_FOREVER), 1);
	}
	for (int i = 0; i < 2; i++) {
		read_full(fd[i], &got, 1, tt_deadline_in(10 * SEC));
		TU_ASSERT_EQ(got, "abc"[i]);
	}
	/* The third is not served while two are. */
	TU_ASSERT_ERR(tt_read(fd[2], &got, 1, tt_deadline_in(200 * MS)),
		      -ETIMEDOUT);
	TU_ASSERT_OK(tt_close(fd[0]));
	read_full(fd[2], &got, 1, tt_deadline_in(10 * SEC));
	TU_ASSERT_EQ(got, 'c');
	TU_ASSERT_EQ(kill(sv.pid, SIGINT), 0);
	TU_ASSERT_EQ(wait_server(&sv, 30 * SEC), 0);
	long conns;
	long long bytes;
	summary(&sv, &conns, &bytes);
	TU_ASSERT_EQ(conns, 3);
	TU_ASSERT_EQ(bytes, 3);
	TU_ASSERT_OK(tt_close(fd[1]));
	TU_ASSERT_OK(tt_close(fd[2]));
}

/* --seconds: stops by itself, with nobody connected. */
static void test_echo_seconds(void **state)
{
	(void)state;
	server sv;
	start_server(&sv, "--seconds 1");
	TU_ASSERT_EQ(wait_server(&sv, 30 * SEC), 0);
	TU_ASSERT_CONTAINS(sv.text,
			   "echo: served 0 connections, echoed 0 bytes\n");
}

/* Run the example with args; its stderr (and stdout) in *out; returns
 * the exit status. */
static int run_echo(const char *args, char **out)
{
	const char *dir = getenv("TETHER_BUILD_DIR");
	const char *emu = getenv("TETHER_EMULATOR");
	char cmd[1024];
	snprintf(cmd, sizeof cmd, "%s %s/examples/echo %s 2>&1",
		 emu ? emu : "", dir ? dir : "build", args);
	FILE *p = popen(cmd, "r");
	assert_non_null(p);
	static char buf[4096];
	size_t len = fread(buf, 1, sizeof buf - 1, p);
	buf[len] = '\0';
	int st = pclose(p);
	*out = buf;
	return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

static void test_echo_bad_flags(void **state)
{
	(void)state;
	static const struct {
		const char *args, *says;
	} cases[] = {
		{"--bogus", "unknown argument --bogus"},
		{"--port", "--port needs a number from 0 to 65535, got "
			   "nothing"},
		{"--port 70000", "--port needs a number"},
		{"--port 12x", "--port needs a number"},
		{"--max-conns 0", "--max-conns needs a number"},
		{"--seconds -1", "--seconds needs a number"},
		{"--addr", "--addr needs an address"},
	};
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		char *out;
		int st = run_echo(cases[i].args, &out);
		TU_ASSERT_MSG(st == 2, "echo %s: status %d, want 2; output: %s",
			      cases[i].args, st, out);
		TU_ASSERT_CONTAINS(out, cases[i].says);
		TU_ASSERT_CONTAINS(out, "usage: echo");
	}
	/* An address that is not one is an error too, not a crash, and the
	 * message names it. */
	char *out;
	TU_ASSERT_EQ(run_echo("--addr not-an-ip", &out), 1);
	TU_ASSERT_CONTAINS(out, "echo: tt_listen: tcp4 not-an-ip:0: host "
				"\"not-an-ip\" is not an IP address");
	/* A port in use. */
	int busy = tt_listen("tcp4", "127.0.0.1:0");
	TU_ASSERT(busy >= 0);
	char args[64], want[128];
	snprintf(args, sizeof args, "--port %d", tt_local_port(busy));
	snprintf(want, sizeof want,
		 "echo: tt_listen: tcp4 127.0.0.1:%d: bind: address already "
		 "in use\n",
		 tt_local_port(busy));
	TU_ASSERT_EQ(run_echo(args, &out), 1);
	TU_ASSERT_CONTAINS(out, want);
	TU_ASSERT_OK(tt_close(busy));
	TU_ASSERT_EQ(run_echo("--addr ::1", &out), 1);
	TU_ASSERT_CONTAINS(out, "echo: tt_listen: tcp4 [::1]:0: ::1 is an IPv6 "
				"address");
}

#define ECHO_TEST(f) cmocka_unit_test_setup_teardown(f, tu_setup, teardown)

int main(int argc, char **argv)
{
	tu_child_dispatch(argc, argv, NULL, 0);
	signal(SIGPIPE, SIG_IGN); /* clients that write to a closed peer */
	const struct CMUnitTest tests[] = {
		ECHO_TEST(test_echo_under_load),
		ECHO_TEST(test_echo_max_conns),
		ECHO_TEST(test_echo_seconds),
		ECHO_TEST(test_echo_bad_flags),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
