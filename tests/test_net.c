/* tt_listen, tt_dial, tt_reader and tt_writer: TCP on 127.0.0.1 and ::1
 * (port 0), Unix sockets in a temporary directory and the abstract
 * namespace, the bound address, every kind of bad address, refused and
 * timed-out dials, contexts cancelled while dialing, accepting, reading
 * and flushing, the reader's lines, exact reads and plain reads
 * (including lines longer than every buffer and streams that end in the
 * middle), and the writer's buffering and partial flushes. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <netdb.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "net/net.h"
#include "testutil.h"

#define MS TT_MILLISECOND
#define SEC TT_SECOND

/* Open descriptors of this process: a call that fails must not leave
 * one behind. The checks say "no more than before", not "as many": with
 * more than one P, an earlier test's goroutine (or a resolver's socket in
 * a tt_blocking thread) may close one of its own meanwhile. */
static int count_fds(void)
{
	DIR *d = opendir("/proc/self/fd");
	assert_non_null(d);
	int n = 0;
	while (readdir(d))
		n++;
	closedir(d);
	return n;
}

/* ---- a line server: one goroutine per connection answers each line with
 * "got: <line>" ---------------------------------------------------------- */

typedef struct server {
	int lfd;
	int accepted;
	tt_chan *done; /* a token when the acceptor ends */
} server;

static void serve_conn(void *arg)
{
	int fd = (int)(intptr_t)arg;
	tt_reader *r;
	TU_ASSERT_OK(tt_reader_make(&r, fd, 0));
	char line[256], out[300];
	ssize_t n;
	while ((n = tt_reader_read_line(r, line, sizeof line,
					tt_deadline_in(10 * SEC))) > 0) {
		int k = snprintf(out, sizeof out, "got: %s", line);
		TU_ASSERT_EQ(tt_write(fd, out, (size_t)k, TT_FOREVER), k);
	}
	TU_ASSERT_EQ(n, 0);
	tt_reader_release(r);
	tt_close(fd);
}

static void acceptor(void *arg)
{
	server *s = arg;
	int fd;
	while ((fd = tt_accept(s->lfd, NULL, NULL, tt_deadline_in(30 * SEC))) >=
	       0) {
		s->accepted++;
		tu_go(serve_conn, (void *)(intptr_t)fd);
	}
	tu_done(s->done);
}

static void start_server(server *s, int lfd)
{
	*s = (server){.lfd = lfd, .done = tu_chan(0, 1)};
	tu_go(acceptor, s);
}

/* Close the listener (its accept ends with -EBADF) and wait for the
 * acceptor and the connections' goroutines. */
static void stop_server(server *s)
{
	TU_ASSERT_OK(tt_close(s->lfd));
	TU_WAIT_DONE(s->done, 1, 10 * SEC);
	TU_ASSERT_OK(tt_chan_release(s->done));
}

/* One round trip on a dialed connection. */
static void say_hello(int fd)
{
	tt_reader *r;
	TU_ASSERT_OK(tt_reader_make(&r, fd, 0));
	char line[64];
	TU_ASSERT_EQ(tt_write(fd, "hello\n", 6, TT_FOREVER), 6);
	TU_ASSERT_EQ(tt_reader_read_line(r, line, sizeof line,
					 tt_deadline_in(10 * SEC)),
		     11);
	TU_ASSERT_EQ(strcmp(line, "got: hello\n"), 0);
	tt_reader_release(r);
}

/* ---- TCP ------------------------------------------------------------------ */

static void test_tcp4_listen_dial(void **state)
{
	(void)state;
	int lfd = tt_listen("tcp", "127.0.0.1:0");
	TU_ASSERT_MSG(lfd >= 0, "tt_listen: %s", tt_last_error());
	TU_ASSERT_EQ(fcntl(lfd, F_GETFL) & O_NONBLOCK, O_NONBLOCK);
	TU_ASSERT_EQ(fcntl(lfd, F_GETFD) & FD_CLOEXEC, FD_CLOEXEC);
	int port = tt_local_port(lfd);
	TU_ASSERT_RANGE(port, 1, 65535);
	char addr[TT_ADDR_MAX], want[64];
	snprintf(want, sizeof want, "127.0.0.1:%d", port);
	TU_ASSERT_EQ(tt_local_addr(lfd, addr, sizeof addr), strlen(want));
	TU_ASSERT_EQ(strcmp(addr, want), 0);
	/* A buffer one byte short. */
	TU_ASSERT_ERR(tt_local_addr(lfd, addr, strlen(want)), -ERANGE);
	TU_ASSERT_CONTAINS(tt_last_error(), "needs");
	TU_ASSERT_ERR(tt_remote_addr(lfd, addr, sizeof addr), -ENOTCONN);

	/* The port is taken now. */
	TU_ASSERT_ERR(tt_listen("tcp4", want), -EADDRINUSE);
	char msg[128];
	snprintf(msg, sizeof msg,
		 "tt_listen: tcp4 %s: bind: address already in use", want);
	TU_ASSERT_EQ(strcmp(tt_last_error(), msg), 0);

	server s;
	start_server(&s, lfd);
	for (int i = 0; i < 3; i++) {
		int fd = tt_dial("tcp", want, tt_deadline_in(10 * SEC));
		TU_ASSERT_MSG(fd >= 0, "tt_dial: %s", tt_last_error());
		TU_ASSERT_EQ(fcntl(fd, F_GETFL) & O_NONBLOCK, O_NONBLOCK);
		int nodelay = 0;
		socklen_t len = sizeof nodelay;
		TU_ASSERT_EQ(getsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &nodelay,
					&len),
			     0);
		TU_ASSERT_NE(nodelay, 0);
		TU_ASSERT_EQ(tt_remote_addr(fd, addr, sizeof addr),
			     strlen(want));
		TU_ASSERT_EQ(strcmp(addr, want), 0);
		TU_ASSERT_GT(tt_local_addr(fd, addr, sizeof addr), 0);
		TU_ASSERT(strncmp(addr, "127.0.0.1:", 10) == 0);
		say_hello(fd);
		TU_ASSERT_OK(tt_close(fd));
	}
	/* The same through a context. */
	tt_ctx *ctx;
	TU_ASSERT_OK(tt_ctx_with_timeout(&ctx, tt_ctx_background(), 10 * SEC));
	int fd = tt_dial_ctx(ctx, "tcp4", want);
	TU_ASSERT_MSG(fd >= 0, "tt_dial_ctx: %s", tt_last_error());
	say_hello(fd);
	TU_ASSERT_OK(tt_close(fd));
	tt_ctx_cancel(ctx);
	tt_ctx_release(ctx);
	stop_server(&s);
	TU_ASSERT_EQ(s.accepted, 4);
}

/* localhost and an empty host: both 127.0.0.1 here. */
static void test_tcp_localhost_and_empty_host(void **state)
{
	(void)state;
	int lfd = tt_listen("tcp", "localhost:0");
	TU_ASSERT_MSG(lfd >= 0, "tt_listen: %s", tt_last_error());
	char addr[TT_ADDR_MAX], dial[64];
	TU_ASSERT_GT(tt_local_addr(lfd, addr, sizeof addr), 0);
	TU_ASSERT(strncmp(addr, "127.0.0.1:", 10) == 0);
	server s;
	start_server(&s, lfd);
	const char *forms[] = {"localhost:%d", "LOCALHOST:%d", ":%d",
			       "[127.0.0.1]:%d"};
	for (size_t i = 0; i < sizeof forms / sizeof forms[0]; i++) {
		snprintf(dial, sizeof dial, forms[i], tt_local_port(lfd));
		int fd = tt_dial("tcp4", dial, tt_deadline_in(10 * SEC));
		TU_ASSERT_MSG(fd >= 0, "tt_dial %s: %s", dial, tt_last_error());
		say_hello(fd);
		TU_ASSERT_OK(tt_close(fd));
	}
	/* "tcp" localhost tries 127.0.0.1 first: served by this listener
	 * (::1 is tried only after a failure). */
	snprintf(dial, sizeof dial, "localhost:%d", tt_local_port(lfd));
	int fd = tt_dial("tcp", dial, tt_deadline_in(10 * SEC));
	TU_ASSERT_MSG(fd >= 0, "tt_dial %s: %s", dial, tt_last_error());
	say_hello(fd);
	TU_ASSERT_OK(tt_close(fd));
	stop_server(&s);
	TU_ASSERT_EQ(s.accepted, 5);
}

/* A name that is not an IP literal: looked up with getaddrinfo. This
 * machine's own name is used when it resolves to a loopback address (as
 * it does through /etc/hosts on most machines); a name under ".invalid"
 * (RFC 6761) never resolves. */
static void test_tcp_dial_by_name(void **state)
{
	(void)state;
	char dial[300];
	/* One try of at most a second per server, wherever the resolver
	 * is (glibc reads this when the process first resolves a name). */
	setenv("RES_OPTIONS", "timeout:1 attempts:1", 1);
	snprintf(dial, sizeof dial, "nosuchhost.invalid:80");
	int fd = tt_dial("tcp", dial, tt_deadline_in(10 * SEC));
	/* No such host, or no resolver to ask (then a temporary failure). */
	TU_ASSERT_MSG(fd == -ENOENT || fd == -EAGAIN, "tt_dial %s: %d (%s)",
		      dial, fd, tt_last_error());
	TU_ASSERT_CONTAINS(tt_last_error(),
			   "tt_dial: tcp nosuchhost.invalid:80: lookup "
			   "nosuchhost.invalid: ");

	char host[256] = "";
	TU_ASSERT_EQ(gethostname(host, sizeof host - 1), 0);
	struct addrinfo hints = {.ai_family = AF_INET,
				 .ai_socktype = SOCK_STREAM},
			*res = NULL;
	if (getaddrinfo(host, NULL, &hints, &res) != 0 ||
	    ((struct sockaddr_in *)res->ai_addr)->sin_addr.s_addr !=
		    htonl(INADDR_LOOPBACK)) {
		if (res)
			freeaddrinfo(res);
		skip(); /* the host name is not 127.0.0.1 here */
	}
	freeaddrinfo(res);
	int lfd = tt_listen("tcp4", "127.0.0.1:0");
	TU_ASSERT(lfd >= 0);
	server s;
	start_server(&s, lfd);
	snprintf(dial, sizeof dial, "%s:%d", host, tt_local_port(lfd));
	fd = tt_dial("tcp4", dial, tt_deadline_in(10 * SEC));
	TU_ASSERT_MSG(fd >= 0, "tt_dial %s: %s", dial, tt_last_error());
	say_hello(fd);
	TU_ASSERT_OK(tt_close(fd));
	stop_server(&s);
	TU_ASSERT_EQ(s.accepted, 1);
}

/* IPv6 loopback, when the machine has it. */
static void test_tcp6_listen_dial(void **state)
{
	(void)state;
	int lfd = tt_listen("tcp6", "[::1]:0");
	if (lfd == -EAFNOSUPPORT || lfd == -EADDRNOTAVAIL) {
		print_message("no IPv6 loopback here: %s\n", tt_last_error());
		skip();
	}
	TU_ASSERT_MSG(lfd >= 0, "tt_listen: %s", tt_last_error());
	int port = tt_local_port(lfd);
	TU_ASSERT_RANGE(port, 1, 65535);
	char addr[TT_ADDR_MAX], want[64];
	snprintf(want, sizeof want, "[::1]:%d", port);
	TU_ASSERT_EQ(tt_local_addr(lfd, addr, sizeof addr), strlen(want));
	TU_ASSERT_EQ(strcmp(addr, want), 0);
	server s;
	start_server(&s, lfd);
	int fd = tt_dial("tcp", want, tt_deadline_in(10 * SEC));
	TU_ASSERT_MSG(fd >= 0, "tt_dial: %s", tt_last_error());
	TU_ASSERT_EQ(tt_remote_addr(fd, addr, sizeof addr), strlen(want));
	TU_ASSERT_EQ(strcmp(addr, want), 0);
	say_hello(fd);
	TU_ASSERT_OK(tt_close(fd));
	/* "tcp" localhost: 127.0.0.1 first, refused (nobody listens on
	 * that port of it, unless another program happens to), then ::1. */
	char v4[32], local[32];
	snprintf(v4, sizeof v4, "127.0.0.1:%d", port);
	int probe = tt_dial("tcp4", v4, tt_deadline_in(5 * SEC));
	if (probe >= 0) {
		print_message("%s is taken by another program\n", v4);
		tt_close(probe);
	} else {
		TU_ASSERT_ERR(probe, -ECONNREFUSED);
		snprintf(local, sizeof local, "localhost:%d", port);
		fd = tt_dial("tcp", local, tt_deadline_in(10 * SEC));
		TU_ASSERT_MSG(fd >= 0, "tt_dial: %s", tt_last_error());
		TU_ASSERT_EQ(tt_remote_addr(fd, addr, sizeof addr),
			     strlen(want));
		TU_ASSERT_EQ(strcmp(addr, want), 0);
		say_hello(fd);
		TU_ASSERT_OK(tt_close(fd));
	}
	/* tcp6 with an empty host dials ::1. */
	char empty[16];
	snprintf(empty, sizeof empty, ":%d", port);
	fd = tt_dial("tcp6", empty, tt_deadline_in(10 * SEC));
	TU_ASSERT_MSG(fd >= 0, "tt_dial: %s", tt_last_error());
	say_hello(fd);
	TU_ASSERT_OK(tt_close(fd));
	stop_server(&s);
	TU_ASSERT_EQ(s.accepted, probe >= 0 ? 2 : 3);
}

/* ---- Unix sockets --------------------------------------------------------- */

static void test_unix_listen_dial(void **state)
{
	(void)state;
	char dir[] = "/tmp/tether-net-XXXXXX";
	TU_ASSERT(mkdtemp(dir) != NULL);
	char path[128];
	snprintf(path, sizeof path, "%s/sock", dir);
	int lfd = tt_listen("unix", path);
	TU_ASSERT_MSG(lfd >= 0, "tt_listen: %s", tt_last_error());
	struct stat st;
	TU_ASSERT_EQ(stat(path, &st), 0);
	TU_ASSERT(S_ISSOCK(st.st_mode));
	char addr[TT_ADDR_MAX];
	TU_ASSERT_EQ(tt_local_addr(lfd, addr, sizeof addr), strlen(path));
	TU_ASSERT_EQ(strcmp(addr, path), 0);
	TU_ASSERT_ERR(tt_local_port(lfd), -EAFNOSUPPORT);
	/* The file is there: a second listener is refused, as in Go. */
	TU_ASSERT_ERR(tt_listen("unix", path), -EADDRINUSE);
	char want[256];
	snprintf(want, sizeof want,
		 "tt_listen: unix %s: bind: address already in use", path);
	TU_ASSERT_EQ(strcmp(tt_last_error(), want), 0);

	server s;
	start_server(&s, lfd);
	int fd = tt_dial("unix", path, tt_deadline_in(10 * SEC));
	TU_ASSERT_MSG(fd >= 0, "tt_dial: %s", tt_last_error());
	TU_ASSERT_EQ(tt_remote_addr(fd, addr, sizeof addr), strlen(path));
	TU_ASSERT_EQ(strcmp(addr, path), 0);
	TU_ASSERT_EQ(tt_local_addr(fd, addr, sizeof addr), 0); /* unnamed */
	TU_ASSERT_EQ(strcmp(addr, ""), 0);
	say_hello(fd);
	TU_ASSERT_OK(tt_close(fd));
	stop_server(&s);
	TU_ASSERT_EQ(s.accepted, 1);
	/* The file stays after the close: the caller removes it. */
	TU_ASSERT_EQ(stat(path, &st), 0);
	TU_ASSERT_EQ(unlink(path), 0);

	/* Nobody there: the file is gone, then a file nobody listens on. */
	TU_ASSERT_ERR(tt_dial("unix", path, tt_deadline_in(SEC)), -ENOENT);
	snprintf(want, sizeof want,
		 "tt_dial: unix %s: no such file or directory", path);
	TU_ASSERT_EQ(strcmp(tt_last_error(), want), 0);
	int raw = socket(AF_UNIX, SOCK_STREAM, 0);
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	memcpy(sa.sun_path, path, strlen(path) + 1);
	TU_ASSERT_EQ(bind(raw, (struct sockaddr *)&sa, sizeof sa), 0);
	TU_ASSERT_ERR(tt_dial("unix", path, tt_deadline_in(SEC)),
		      -ECONNREFUSED);
	close(raw);
	TU_ASSERT_EQ(unlink(path), 0);
	TU_ASSERT_EQ(rmdir(dir), 0);
}

static void test_unix_abstract(void **state)
{
	(void)state;
	char name[64];
	snprintf(name, sizeof name, "@tether-test-net-%d", (int)getpid());
	int lfd = tt_listen("unix", name);
	TU_ASSERT_MSG(lfd >= 0, "tt_listen: %s", tt_last_error());
	char addr[TT_ADDR_MAX];
	TU_ASSERT_EQ(tt_local_addr(lfd, addr, sizeof addr), strlen(name));
	TU_ASSERT_EQ(strcmp(addr, name), 0);
	server s;
	start_server(&s, lfd);
	int fd = tt_dial("unix", name, tt_deadline_in(10 * SEC));
	TU_ASSERT_MSG(fd >= 0, "tt_dial: %s", tt_last_error());
	say_hello(fd);
	TU_ASSERT_OK(tt_close(fd));
	stop_server(&s);
	/* Gone with the listener. */
	TU_ASSERT_ERR(tt_dial("unix", name, tt_deadline_in(SEC)),
		      -ECONNREFUSED);
}

/* ---- errors ---------------------------------------------------------------- */

static void test_dial_refused(void **state)
{
	(void)state;
	int lfd = tt_listen("tcp4", "127.0.0.1:0");
	TU_ASSERT(lfd >= 0);
	int port = tt_local_port(lfd);
	TU_ASSERT_OK(tt_close(lfd)); /* nobody listens on port any more */
	char addr[64], want[128];
	snprintf(addr, sizeof addr, "127.0.0.1:%d", port);
	int before = count_fds();
	TU_ASSERT_ERR(tt_dial("tcp", addr, tt_deadline_in(10 * SEC)),
		      -ECONNREFUSED);
	snprintf(want, sizeof want, "tt_dial: tcp %s: connection refused",
		 addr);
	TU_ASSERT_EQ(strcmp(tt_last_error(), want), 0);
	tt_ctx *ctx;
	TU_ASSERT_OK(tt_ctx_with_cancel(&ctx, tt_ctx_background()));
	TU_ASSERT_ERR(tt_dial_ctx(ctx, "tcp", addr), -ECONNREFUSED);
	snprintf(want, sizeof want, "tt_dial_ctx: tcp %s: connection refused",
		 addr);
	TU_ASSERT_EQ(strcmp(tt_last_error(), want), 0);
	tt_ctx_cancel(ctx);
	tt_ctx_release(ctx);
	TU_ASSERT_LE(count_fds(), before); /* the sockets were closed */
}

static void test_bad_addresses(void **state)
{
	(void)state;
	static const struct {
		int listen; /* 1: tt_listen, 0: tt_dial */
		const char *network, *address;
		int err;
		const char *says;
	} cases[] = {
		{1, "udp", "127.0.0.1:0", -EINVAL,
		 "tt_listen: udp 127.0.0.1:0: unknown network"},
		{0, "", "127.0.0.1:1", -EINVAL, "unknown network"},
		{1, "tcp", "127.0.0.1", -EINVAL,
		 "tt_listen: tcp 127.0.0.1: missing port in address"},
		{0, "tcp", "", -EINVAL, "missing port in address"},
		{0, "tcp", "::1:80", -EINVAL, "too many colons in address"},
		{0, "tcp", "[::1:80", -EINVAL, "missing ']' in address"},
		{0, "tcp", "[::1]", -EINVAL, "missing port in address"},
		{0, "tcp", "[::1]x:80", -EINVAL, "unexpected text after ']'"},
		{0, "tcp", "a]b:80", -EINVAL, "unexpected '[' or ']'"},
		{0, "tcp", "127.0.0.1:65536", -EINVAL,
		 "invalid port \"65536\""},
		{0, "tcp", "127.0.0.1:http", -EINVAL, "invalid port \"http\""},
		{0, "tcp", "127.0.0.1:-1", -EINVAL, "invalid port"},
		{0, "tcp", "127.0.0.1:123456", -EINVAL, "invalid port"},
		{0, "tcp4", "[::1]:80", -EINVAL, "::1 is an IPv6 address"},
		{1, "tcp6", "127.0.0.1:0", -EINVAL,
		 "127.0.0.1 is an IPv4 address"},
		{1, "tcp", "example.com:0", -EINVAL,
		 "tt_listen: tcp example.com:0: host \"example.com\" is not "
		 "an IP address or localhost"},
		{1, "tcp", "300.1.2.3:0", -EINVAL, "is not an IP address"},
		{0, "tcp", "not a host:80", -EINVAL,
		 "host \"not a host\" is not an IP address or a host name"},
		{0, "tcp", "[fe80::1%eth0]:80", -EINVAL,
		 "is not an IP address"},
		{1, "unix", "", -EINVAL, "tt_listen: unix : empty path"},
		{0, "unix",
		 "/tmp/aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
		 "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
		 -EINVAL, "path longer than 107 bytes"},
		{1, NULL, "127.0.0.1:0", -EINVAL, "tt_listen: network is NULL"},
		{0, "tcp", NULL, -EINVAL, "tt_dial: address is NULL"},
	};
	int before = count_fds();
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		int r = cases[i].listen
				? tt_listen(cases[i].network, cases[i].address)
				: tt_dial(cases[i].network, cases[i].address,
					  tt_deadline_in(SEC));
		TU_ASSERT_MSG(r == cases[i].err,
			      "case %zu (%s \"%s\"): %d, want %d; %s", i,
			      cases[i].network ? cases[i].network : "NULL",
			      cases[i].address ? cases[i].address : "NULL", r,
			      cases[i].err, tt_last_error());
		TU_ASSERT_CONTAINS(tt_last_error(), cases[i].says);
	}
	TU_ASSERT_LE(count_fds(), before);
	/* The context form checks its arguments too. */
	TU_ASSERT_ERR(tt_dial_ctx(NULL, "tcp", "127.0.0.1:1"), -EINVAL);
	TU_ASSERT_CONTAINS(tt_last_error(), "tt_dial_ctx: ctx is NULL");
	TU_ASSERT_ERR(tt_dial_ctx(tt_ctx_background(), "tcp", "nope"), -EINVAL);
	TU_ASSERT_CONTAINS(tt_last_error(), "tt_dial_ctx: tcp nope: missing "
					    "port");
	/* And the address calls. */
	char buf[TT_ADDR_MAX];
	TU_ASSERT_ERR(tt_local_addr(-1, buf, sizeof buf), -EBADF);
	TU_ASSERT_ERR(tt_local_addr(0, NULL, 10), -EINVAL);
	TU_ASSERT_ERR(tt_local_port(-1), -EBADF);
	int p[2];
	TU_ASSERT_EQ(pipe(p), 0);
	TU_ASSERT_ERR(tt_local_port(p[0]), -ENOTSOCK);
	close(p[0]);
	close(p[1]);
}

/* A listener that takes no more connections: a Unix one with a backlog
 * of 0 and one connection queued is full, and a connect to it says
 * EAGAIN (no event says when there is room): the dial retries until its
 * deadline or context ends. */
typedef struct full_unix {
	char dir[32], path[64];
	int lfd, queued;
} full_unix;

static void full_unix_open(full_unix *f)
{
	snprintf(f->dir, sizeof f->dir, "/tmp/tether-net-XXXXXX");
	TU_ASSERT(mkdtemp(f->dir) != NULL);
	snprintf(f->path, sizeof f->path, "%s/full", f->dir);
	f->lfd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	memcpy(sa.sun_path, f->path, strlen(f->path) + 1);
	TU_ASSERT_EQ(bind(f->lfd, (struct sockaddr *)&sa, sizeof sa), 0);
	TU_ASSERT_EQ(listen(f->lfd, 0), 0);
	f->queued = tt_dial("unix", f->path, tt_deadline_in(SEC));
	TU_ASSERT_MSG(f->queued >= 0, "%s", tt_last_error());
}

static void full_unix_close(full_unix *f)
{
	tt_close(f->queued);
	close(f->lfd);
	unlink(f->path);
	rmdir(f->dir);
}

static void test_dial_deadline(void **state)
{
	(void)state;
	full_unix f;
	full_unix_open(&f);
	int before = count_fds();
	int64_t t0 = tt_now();
	TU_ASSERT_ERR(tt_dial("unix", f.path, tt_deadline_in(100 * MS)),
		      -ETIMEDOUT);
	TU_ASSERT_RANGE(tt_now() - t0, 90 * MS, 100 * MS + TU_SLACK_NS);
	char want[160];
	snprintf(want, sizeof want, "tt_dial: unix %s: i/o timeout", f.path);
	TU_ASSERT_EQ(strcmp(tt_last_error(), want), 0);
	/* TT_TRY: once, no waiting. */
	TU_ASSERT_ERR(tt_dial("unix", f.path, TT_TRY), -EAGAIN);
	/* A context with a deadline. */
	tt_ctx *ctx;
	TU_ASSERT_OK(tt_ctx_with_timeout(&ctx, tt_ctx_background(), 50 * MS));
	TU_ASSERT_ERR(tt_dial_ctx(ctx, "unix", f.path), -ETIMEDOUT);
	snprintf(want, sizeof want,
		 "tt_dial_ctx: unix %s: context deadline exceeded", f.path);
	TU_ASSERT_EQ(strcmp(tt_last_error(), want), 0);
	tt_ctx_release(ctx);
	TU_ASSERT_LE(count_fds(), before);
	/* Room again: the dial that was waiting gets through. */
	int a = accept(f.lfd, NULL, NULL);
	TU_ASSERT(a >= 0);
	int fd = tt_dial("unix", f.path, tt_deadline_in(5 * SEC));
	TU_ASSERT_MSG(fd >= 0, "%s", tt_last_error());
	tt_close(fd);
	close(a);
	full_unix_close(&f);
}

typedef struct canceller {
	tt_ctx *ctx;
	int64_t after;
	tt_chan *done;
} canceller;

static void cancel_later(void *arg)
{
	canceller *c = arg;
	tt_sleep(c->after);
	tt_ctx_cancel(c->ctx);
	tu_done(c->done);
}

static void cancel_done(canceller *c)
{
	TU_WAIT_DONE(c->done, 1, 5 * SEC);
	TU_ASSERT_OK(tt_chan_release(c->done));
	tt_ctx_release(c->ctx);
}

static void test_dial_ctx_cancelled(void **state)
{
	(void)state;
	/* The descriptor count below is the process's: at two Ps a worker
	 * that ran the canceller may open its own poller's descriptors in
	 * between (seen once in CI). One P keeps them out of it. */
	tu_one_p();
	full_unix f;
	full_unix_open(&f);
	canceller *c = malloc(sizeof *c);
	*c = (canceller){.after = 50 * MS, .done = tu_chan(0, 1)};
	TU_ASSERT_OK(tt_ctx_with_cancel(&c->ctx, tt_ctx_background()));
	tu_go(cancel_later, c);
	int64_t t0 = tt_now();
	TU_ASSERT_ERR(tt_dial_ctx(c->ctx, "unix", f.path), -ECANCELED);
	TU_ASSERT_RANGE(tt_now() - t0, 40 * MS, 50 * MS + TU_SLACK_NS);
	char want[160];
	snprintf(want, sizeof want, "tt_dial_ctx: unix %s: context canceled",
		 f.path);
	TU_ASSERT_EQ(strcmp(tt_last_error(), want), 0);
	/* Done already: fails before making a socket. (The canceller
	 * first ends: with two Ps it may be opening or closing a
	 * descriptor of its thread's meanwhile.) */
	TU_WAIT_DONE(c->done, 1, 5 * SEC);
	int before = count_fds();
	TU_ASSERT_ERR(tt_dial_ctx(c->ctx, "tcp", "127.0.0.1:1"), -ECANCELED);
	TU_ASSERT_EQ(strcmp(tt_last_error(),
			    "tt_dial_ctx: tcp 127.0.0.1:1: context canceled"),
		     0);
	TU_ASSERT_LE(count_fds(), before);
	TU_ASSERT_OK(tt_chan_release(c->done));
	tt_ctx_release(c->ctx);
	free(c);
	full_unix_close(&f);
}

/* The listener side: accept waits with a deadline or a context. */
static void test_accept_deadline_and_ctx(void **state)
{
	(void)state;
	int lfd = tt_listen("tcp", "127.0.0.1:0");
	TU_ASSERT(lfd >= 0);
	int64_t t0 = tt_now();
	TU_ASSERT_ERR(tt_accept(lfd, NULL, NULL, tt_deadline_in(50 * MS)),
		      -ETIMEDOUT);
	TU_ASSERT_RANGE(tt_now() - t0, 50 * MS, 50 * MS + TU_SLACK_NS);
	canceller *c = malloc(sizeof *c);
	*c = (canceller){.after = 50 * MS, .done = tu_chan(0, 1)};
	TU_ASSERT_OK(tt_ctx_with_cancel(&c->ctx, tt_ctx_background()));
	tu_go(cancel_later, c);
	TU_ASSERT_ERR(tt_accept_ctx(c->ctx, lfd, NULL, NULL), -ECANCELED);
	cancel_done(c);
	free(c);
	/* A client that is there is accepted at once. */
	char addr[TT_ADDR_MAX];
	TU_ASSERT_GT(tt_local_addr(lfd, addr, sizeof addr), 0);
	int fd = tt_dial("tcp", addr, tt_deadline_in(5 * SEC));
	TU_ASSERT(fd >= 0);
	int a = tt_accept(lfd, NULL, NULL, tt_deadline_in(5 * SEC));
	TU_ASSERT(a >= 0);
	char peer[TT_ADDR_MAX], mine[TT_ADDR_MAX];
	TU_ASSERT_GT(tt_remote_addr(a, peer, sizeof peer), 0);
	TU_ASSERT_GT(tt_local_addr(fd, mine, sizeof mine), 0);
	TU_ASSERT_EQ(strcmp(peer, mine), 0);
	/* Accepted TCP connections are not delayed by Nagle's algorithm
	 * either, as Go's are not. */
	int nodelay = 0;
	socklen_t len = sizeof nodelay;
	TU_ASSERT_EQ(getsockopt(a, IPPROTO_TCP, TCP_NODELAY, &nodelay, &len),
		     0);
	TU_ASSERT_EQ(nodelay, 1);
	tt_close(a);
	tt_close(fd);
	tt_close(lfd);
}

/* ---- the reader -------------------------------------------------------------- */

typedef struct feeder {
	int fd;                   /* write end of a pipe */
	const char *const *parts; /* written one by one, NULL-terminated */
	int64_t gap;              /* sleep between parts */
	bool close_at_end;
	tt_chan *done;
} feeder;

static void feed(void *arg)
{
	feeder *f = arg;
	for (int i = 0; f->parts[i]; i++) {
		if (i && f->gap)
			tt_sleep(f->gap);
		size_t n = strlen(f->parts[i]);
		TU_ASSERT_EQ(tt_write(f->fd, f->parts[i], n, TT_FOREVER),
			     (long)n);
	}
	if (f->close_at_end)
		tt_close(f->fd);
	tu_done(f->done);
}

static void make_pipe(int p[2])
{
	TU_ASSERT_EQ(pipe2(p, O_NONBLOCK | O_CLOEXEC), 0);
}

static void test_reader_lines(void **state)
{
	(void)state;
	int p[2];
	make_pipe(p);
	/* Lines cut anywhere, one of them longer than the reader's 16-byte
	 * buffer, and a last one without '\n'. */
	static const char *const parts[] = {
		"first\nsec",
		"ond\n",
		"\n",
		"a line longer than sixteen bytes",
		" by far\nthird\nno newline at the end",
		NULL};
	tt_chan *done = tu_chan(0, 1);
	feeder f = {p[1], parts, 5 * MS, true, done};
	tt_reader *r;
	TU_ASSERT_OK(tt_reader_make(&r, p[0], 16));
	TU_ASSERT_EQ(tt_reader_fd(r), p[0]);
	tu_go(feed, &f);
	static const char *const want[] = {
		"first\n", "second\n",
		"\n",      "a line longer than sixteen bytes by far\n",
		"third\n", "no newline at the end"};
	char line[100];
	for (size_t i = 0; i < sizeof want / sizeof want[0]; i++) {
		ssize_t n = tt_reader_read_line(r, line, sizeof line,
						tt_deadline_in(5 * SEC));
		TU_ASSERT_MSG(n == (ssize_t)strlen(want[i]) &&
				      strcmp(line, want[i]) == 0,
			      "line %zu: %zd \"%s\", want \"%s\" (%s)", i, n,
			      n >= 0 ? line : "", want[i], tt_last_error());
	}
	/* Then the end of the stream, every time it is asked. */
	TU_ASSERT_EQ(tt_reader_read_line(r, line, sizeof line, TT_FOREVER), 0);
	TU_ASSERT_EQ(tt_reader_read_line(r, line, sizeof line, TT_FOREVER), 0);
	TU_WAIT_DONE(done, 1, 5 * SEC);
	tt_reader_release(r);
	tt_close(p[0]);
	TU_ASSERT_OK(tt_chan_release(done));
}

/* A line longer than the caller's buffer comes in pieces of n - 1
 * bytes; only the last ends in '\n'. A 64 KiB line through a 4 KiB
 * reader and a 1000-byte buffer. */
static void test_reader_long_line(void **state)
{
	(void)state;
	int p[2];
	make_pipe(p);
	enum {
		LEN = 64 * 1024,
		N = 1000
	};
	char *big = malloc(LEN + 1);
	for (int i = 0; i < LEN - 1; i++)
		big[i] = (char)('a' + i % 26);
	big[LEN - 1] = '\n';
	big[LEN] = '\0';
	const char *parts[] = {big, "short\n", NULL};
	tt_chan *done = tu_chan(0, 1);
	feeder f = {p[1], parts, 0, true, done};
	tt_reader *r;
	TU_ASSERT_OK(tt_reader_make(&r, p[0], 0));
	tu_go(feed, &f);
	char line[N];
	size_t at = 0;
	int pieces = 0;
	while (at < LEN) {
		ssize_t n = tt_reader_read_line(r, line, sizeof line,
						tt_deadline_in(5 * SEC));
		TU_ASSERT_MSG(n > 0, "at %zu: %zd (%s)", at, n,
			      tt_last_error());
		TU_ASSERT_EQ(strlen(line), n);
		TU_ASSERT_MEM_EQ(line, big + at, (size_t)n);
		at += (size_t)n;
		pieces++;
		if (at < LEN) /* a piece: full, no '\n' */
			TU_ASSERT(n == N - 1 && line[n - 1] != '\n');
	}
	TU_ASSERT_EQ(at, LEN);
	TU_ASSERT_EQ(pieces, (LEN + N - 2) / (N - 1));
	TU_ASSERT_EQ(line[strlen(line) - 1], '\n');
	TU_ASSERT_EQ(tt_reader_read_line(r, line, sizeof line, TT_FOREVER), 6);
	TU_ASSERT_EQ(strcmp(line, "short\n"), 0);
	/* The smallest buffer: one byte and the NUL. */
	TU_ASSERT_EQ(tt_reader_read_line(r, line, 2, TT_FOREVER), 0);
	TU_ASSERT_ERR(tt_reader_read_line(r, line, 1, TT_FOREVER), -EINVAL);
	TU_ASSERT_CONTAINS(tt_last_error(), "tt_reader_read_line: buf of 1 "
					    "bytes has no room");
	TU_WAIT_DONE(done, 1, 5 * SEC);
	tt_reader_release(r);
	tt_close(p[0]);
	free(big);
	TU_ASSERT_OK(tt_chan_release(done));
}

/* A deadline in the middle of a line, longer than the reader's buffer:
 * the part read so far stays buffered and the next call returns the
 * whole line. */
static void test_reader_line_deadline_keeps_bytes(void **state)
{
	(void)state;
	int p[2];
	make_pipe(p);
	tt_reader *r;
	TU_ASSERT_OK(tt_reader_make(&r, p[0], 8));
	TU_ASSERT_EQ(tt_write(p[1], "0123456789abcdef", 16, TT_FOREVER), 16);
	char line[64];
	int64_t t0 = tt_now();
	TU_ASSERT_ERR(tt_reader_read_line(r, line, sizeof line,
					  tt_deadline_in(30 * MS)),
		      -ETIMEDOUT);
	TU_ASSERT_RANGE(tt_now() - t0, 30 * MS, 30 * MS + TU_SLACK_NS);
	char want[96];
	snprintf(want, sizeof want, "tt_reader_read_line: fd %d: i/o timeout",
		 p[0]);
	TU_ASSERT_EQ(strcmp(tt_last_error(), want), 0);
	TU_ASSERT_EQ(tt_reader_buffered(r), 16);
	TU_ASSERT_ERR(tt_reader_read_line(r, line, sizeof line, TT_TRY),
		      -EAGAIN);
	TU_ASSERT_EQ(tt_write(p[1], "XYZ\nnext\n", 9, TT_FOREVER), 9);
	TU_ASSERT_EQ(tt_reader_read_line(r, line, sizeof line, TT_FOREVER), 20);
	TU_ASSERT_EQ(strcmp(line, "0123456789abcdefXYZ\n"), 0);
	TU_ASSERT_EQ(tt_reader_read_line(r, line, sizeof line, TT_FOREVER), 5);
	TU_ASSERT_EQ(strcmp(line, "next\n"), 0);
	TU_ASSERT_EQ(tt_reader_buffered(r), 0);
	tt_reader_release(r);
	tt_close(p[0]);
	tt_close(p[1]);
}

static void test_reader_read_full(void **state)
{
	(void)state;
	int p[2];
	make_pipe(p);
	tt_reader *r;
	TU_ASSERT_OK(tt_reader_make(&r, p[0], 8));
	/* In pieces, mixing buffered bytes, small and large reads. */
	static const char *const parts[] = {"abc", "defghijklmnopqrstuvwxyz",
					    "0123456789", "END", NULL};
	tt_chan *done = tu_chan(0, 1);
	feeder f = {p[1], parts, 5 * MS, true, done};
	tu_go(feed, &f);
	char buf[64];
	TU_ASSERT_EQ(tt_reader_read_full(r, buf, 2, tt_deadline_in(5 * SEC)),
		     2);
	TU_ASSERT_MEM_EQ(buf, "ab", 2);
	/* More than the 8-byte buffer: straight into buf. */
	TU_ASSERT_EQ(tt_reader_read_full(r, buf, 30, tt_deadline_in(5 * SEC)),
		     30);
	TU_ASSERT_MEM_EQ(buf, "cdefghijklmnopqrstuvwxyz012345", 30);
	/* The stream ends 7 bytes into a read of 10: the 7 are returned
	 * (Go's io.ErrUnexpectedEOF), then the end (io.EOF). */
	TU_ASSERT_EQ(tt_reader_read_full(r, buf, 10, tt_deadline_in(5 * SEC)),
		     7);
	TU_ASSERT_MEM_EQ(buf, "6789END", 7);
	TU_ASSERT_CONTAINS(tt_last_error(), "unexpected end of stream after "
					    "7 of 10 bytes");
	TU_ASSERT_EQ(tt_reader_read_full(r, buf, 10, TT_FOREVER), 0);
	TU_ASSERT_EQ(tt_reader_read_full(r, buf, 0, TT_FOREVER), 0);
	TU_WAIT_DONE(done, 1, 5 * SEC);
	tt_reader_release(r);
	tt_close(p[0]);
	TU_ASSERT_OK(tt_chan_release(done));
}

/* A deadline (or a cancel) part way through a read_full keeps what was
 * read: 20 of 40 bytes, larger than the 8-byte buffer. */
static void test_reader_read_full_keeps_bytes(void **state)
{
	(void)state;
	int p[2];
	make_pipe(p);
	tt_reader *r;
	TU_ASSERT_OK(tt_reader_make(&r, p[0], 8));
	const char *msg = "0123456789abcdefghijKLMNOPQRSTUVWXYZ!@#$";
	TU_ASSERT_EQ(tt_write(p[1], msg, 20, TT_FOREVER), 20);
	char buf[40];
	TU_ASSERT_ERR(tt_reader_read_full(r, buf, 40, tt_deadline_in(30 * MS)),
		      -ETIMEDOUT);
	TU_ASSERT_CONTAINS(tt_last_error(), "tt_reader_read_full: fd ");
	TU_ASSERT_CONTAINS(tt_last_error(), "i/o timeout (20 bytes read "
					    "before are kept)");
	TU_ASSERT_EQ(tt_reader_buffered(r), 20);
	/* Cancelled while waiting for the rest: still kept. */
	canceller *c = malloc(sizeof *c);
	*c = (canceller){.after = 30 * MS, .done = tu_chan(0, 1)};
	TU_ASSERT_OK(tt_ctx_with_cancel(&c->ctx, tt_ctx_background()));
	tu_go(cancel_later, c);
	TU_ASSERT_ERR(tt_reader_read_full_ctx(c->ctx, r, buf, 40), -ECANCELED);
	TU_ASSERT_CONTAINS(tt_last_error(), "context canceled");
	TU_ASSERT_EQ(tt_reader_buffered(r), 20);
	/* Done: the context's error even with bytes buffered. */
	TU_ASSERT_ERR(tt_reader_read_full_ctx(c->ctx, r, buf, 1), -ECANCELED);
	TU_ASSERT_ERR(tt_reader_read_ctx(c->ctx, r, buf, 1), -ECANCELED);
	TU_ASSERT_ERR(tt_reader_read_line_ctx(c->ctx, r, buf, sizeof buf),
		      -ECANCELED);
	TU_ASSERT_EQ(tt_reader_buffered(r), 20);
	cancel_done(c);
	free(c);
	TU_ASSERT_EQ(tt_write(p[1], msg + 20, 20, TT_FOREVER), 20);
	TU_ASSERT_EQ(tt_reader_read_full(r, buf, 40, tt_deadline_in(5 * SEC)),
		     40);
	TU_ASSERT_MEM_EQ(buf, msg, 40);
	tt_reader_release(r);
	tt_close(p[0]);
	tt_close(p[1]);
}

static void test_reader_read(void **state)
{
	(void)state;
	int p[2];
	make_pipe(p);
	tt_reader *r;
	TU_ASSERT_OK(tt_reader_make(&r, p[0], 8));
	char buf[64];
	TU_ASSERT_ERR(tt_reader_read(r, buf, 4, TT_TRY), -EAGAIN);
	TU_ASSERT_EQ(tt_write(p[1], "0123456789", 10, TT_FOREVER), 10);
	/* A small read fills the buffer (8 bytes) and hands out 3. */
	TU_ASSERT_EQ(tt_reader_read(r, buf, 3, TT_FOREVER), 3);
	TU_ASSERT_MEM_EQ(buf, "012", 3);
	TU_ASSERT_EQ(tt_reader_buffered(r), 5);
	/* What is buffered comes first, without waiting for more. */
	TU_ASSERT_EQ(tt_reader_read(r, buf, sizeof buf, TT_TRY), 5);
	TU_ASSERT_MEM_EQ(buf, "34567", 5);
	/* Empty, and a read larger than the buffer: straight from fd. */
	TU_ASSERT_EQ(tt_reader_read(r, buf, sizeof buf, TT_FOREVER), 2);
	TU_ASSERT_MEM_EQ(buf, "89", 2);
	TU_ASSERT_EQ(tt_reader_read(r, buf, 0, TT_FOREVER), 0);
	/* Parks until a writer comes, through a context. */
	static const char *const parts[] = {"late", NULL};
	tt_chan *done = tu_chan(0, 1);
	feeder f = {p[1], parts, 0, true, done};
	tt_ctx *ctx;
	TU_ASSERT_OK(tt_ctx_with_timeout(&ctx, tt_ctx_background(), 5 * SEC));
	tu_go(feed, &f);
	TU_ASSERT_EQ(tt_reader_read_ctx(ctx, r, buf, sizeof buf), 4);
	TU_ASSERT_MEM_EQ(buf, "late", 4);
	TU_ASSERT_EQ(tt_reader_read_ctx(ctx, r, buf, sizeof buf), 0); /* EOF */
	TU_WAIT_DONE(done, 1, 5 * SEC);
	tt_ctx_cancel(ctx);
	tt_ctx_release(ctx);
	TU_ASSERT_OK(tt_chan_release(done));
	tt_reader_release(r);
	tt_close(p[0]);
}

/* A connection's reader, cancelled while parked in a line: the server's
 * shutdown. */
static void test_reader_ctx_cancel_on_socket(void **state)
{
	(void)state;
	int lfd = tt_listen("tcp", "127.0.0.1:0");
	TU_ASSERT(lfd >= 0);
	char addr[TT_ADDR_MAX];
	TU_ASSERT_GT(tt_local_addr(lfd, addr, sizeof addr), 0);
	int fd = tt_dial("tcp", addr, tt_deadline_in(5 * SEC));
	TU_ASSERT(fd >= 0);
	int a = tt_accept(lfd, NULL, NULL, tt_deadline_in(5 * SEC));
	TU_ASSERT(a >= 0);
	tt_reader *r;
	TU_ASSERT_OK(tt_reader_make(&r, a, 0));
	TU_ASSERT_EQ(tt_write(fd, "partial", 7, TT_FOREVER), 7);
	canceller *c = malloc(sizeof *c);
	*c = (canceller){.after = 30 * MS, .done = tu_chan(0, 1)};
	TU_ASSERT_OK(tt_ctx_with_cancel(&c->ctx, tt_ctx_background()));
	tu_go(cancel_later, c);
	char line[64];
	TU_ASSERT_ERR(tt_reader_read_line_ctx(c->ctx, r, line, sizeof line),
		      -ECANCELED);
	char want[96];
	snprintf(want, sizeof want,
		 "tt_reader_read_line_ctx: fd %d: context canceled", a);
	TU_ASSERT_EQ(strcmp(tt_last_error(), want), 0);
	TU_ASSERT_EQ(tt_reader_buffered(r), 7);
	cancel_done(c);
	free(c);
	/* The peer ends the stream in the middle of the line. */
	TU_ASSERT_OK(tt_close(fd));
	TU_ASSERT_EQ(tt_reader_read_line(r, line, sizeof line,
					 tt_deadline_in(5 * SEC)),
		     7);
	TU_ASSERT_EQ(strcmp(line, "partial"), 0);
	TU_ASSERT_EQ(tt_reader_read_line(r, line, sizeof line, TT_FOREVER), 0);
	tt_reader_release(r);
	tt_close(a);
	tt_close(lfd);
}

static void test_reader_bad_args(void **state)
{
	(void)state;
	tt_reader *r = (tt_reader *)1;
	TU_ASSERT_ERR(tt_reader_make(&r, -1, 0), -EBADF);
	TU_ASSERT(r == NULL);
	TU_ASSERT_ERR(tt_reader_make(NULL, 0, 0), -EINVAL);
	TU_ASSERT_ERR(tt_reader_make(&r, 0, (size_t)1 << 31), -EINVAL);
	char buf[8];
	TU_ASSERT_ERR(tt_reader_read(NULL, buf, 1, TT_FOREVER), -EINVAL);
	TU_ASSERT_CONTAINS(tt_last_error(), "tt_reader_read: reader is NULL");
	TU_ASSERT_ERR(tt_reader_read_full(NULL, buf, 1, TT_FOREVER), -EINVAL);
	TU_ASSERT_ERR(tt_reader_read_line(NULL, buf, 8, TT_FOREVER), -EINVAL);
	TU_ASSERT_ERR(tt_reader_read_ctx(NULL, NULL, buf, 1), -EINVAL);
	TU_ASSERT_ERR(tt_reader_fd(NULL), -EINVAL);
	TU_ASSERT_EQ(tt_reader_buffered(NULL), 0);
	TU_ASSERT_OK(tt_reader_release(NULL));
	int p[2];
	make_pipe(p);
	TU_ASSERT_OK(tt_reader_make(&r, p[0], 0));
	TU_ASSERT_ERR(tt_reader_read(r, NULL, 1, TT_FOREVER), -EINVAL);
	TU_ASSERT_ERR(tt_reader_read_line(r, NULL, 8, TT_FOREVER), -EINVAL);
	/* A closed descriptor: an error, not a crash. */
	tt_close(p[0]);
	tt_close(p[1]);
	TU_ASSERT_ERR(tt_reader_read(r, buf, 1, TT_FOREVER), -EBADF);
	TU_ASSERT_CONTAINS(tt_last_error(), "tt_reader_read: fd ");
	TU_ASSERT_CONTAINS(tt_last_error(), "bad file descriptor");
	tt_reader_release(r);
}

/* The parser on random strings made of the characters addresses are made
 * of (and a few that must be refused): every result is a count of
 * addresses or -EINVAL with a message, never a crash (the ASan build
 * checks every byte it touches). Listening addresses only, which are
 * never looked up, so no string becomes a DNS query. */
static void test_parse_random_addresses(void **state)
{
	(void)state;
	static const char *const pieces[] = {
		"0",     "1",     "9",         "127", ".",       ":",
		"::",    "[",     "]",         "%",   "@",       "/",
		"65535", "65536", "localhost", "::1", "255",     "300",
		" ",     "x",     "\xff",      "-",   "0.0.0.0", "ffff"};
	static const char *const nets[] = {"tcp", "tcp4", "tcp6", "unix",
					   "udp"};
	uint64_t rng = tu_seed("address parser");
	int ok = 0, bad = 0;
	for (int i = 0; i < 20000; i++) {
		char a[300] = "";
		size_t len = 0;
		int parts = (int)tu_rand_n(&rng, 12);
		for (int k = 0; k < parts; k++) {
			const char *p = pieces[tu_rand_n(
				&rng, sizeof pieces / sizeof pieces[0])];
			size_t pl = strlen(p);
			if (len + pl >= sizeof a)
				break;
			memcpy(a + len, p, pl + 1);
			len += pl;
		}
		const char *net = nets[tu_rand_n(&rng, 5)];
		int r = tt__net_parse_listen(net, a);
		if (r > 0) {
			TU_ASSERT_LE(r, 2);
			ok++;
		} else {
			TU_ASSERT_MSG(r == -EINVAL, "%s \"%s\": %d (%s)", net,
				      a, r, tt_last_error());
			TU_ASSERT_MSG(strncmp(tt_last_error(),
					      "tt_listen: ", 11) == 0,
				      "%s \"%s\": message \"%s\"", net, a,
				      tt_last_error());
			bad++;
		}
	}
	/* Both outcomes were reached: the strings were not all garbage. */
	TU_ASSERT_GT(ok, 100);
	TU_ASSERT_GT(bad, 100);
	/* And some that must parse. */
	TU_ASSERT_EQ(tt__net_parse_listen("tcp", "[::]:0"), 1);
	TU_ASSERT_EQ(tt__net_parse_listen("tcp", ":"), 1);
	TU_ASSERT_EQ(tt__net_parse_listen("tcp6", "localhost:1"), 1);
	TU_ASSERT_EQ(tt__net_parse_listen("unix", "@"), 1);
}

/* ---- the writer ------------------------------------------------------------ */

/* Everything the pipe has now (without waiting), appended to out. */
static size_t drain(int fd, char *out, size_t cap)
{
	size_t have = 0;
	ssize_t k;
	while (have < cap &&
	       (k = tt_read(fd, out + have, cap - have, TT_TRY)) > 0)
		have += (size_t)k;
	return have;
}

static void test_writer_buffers_until_flush(void **state)
{
	(void)state;
	int p[2];
	make_pipe(p);
	tt_writer *w;
	TU_ASSERT_OK(tt_writer_make(&w, p[1], 16));
	char got[512];
	TU_ASSERT_EQ(tt_writer_write(w, "abc", 3, TT_FOREVER), 3);
	TU_ASSERT_EQ(tt_writer_printf(w, "%d-%s\n", 42, "x"), 5);
	TU_ASSERT_EQ(tt_writer_buffered(w), 8);
	TU_ASSERT_ERR(tt_read(p[0], got, sizeof got, TT_TRY), -EAGAIN);
	/* A text larger than the room left: the buffer grows. */
	char big[200];
	memset(big, 'z', sizeof big - 1);
	big[sizeof big - 1] = '\0';
	TU_ASSERT_EQ(tt_writer_printf(w, "[%s]", big), 201);
	TU_ASSERT_EQ(tt_writer_buffered(w), 209);
	TU_ASSERT_ERR(tt_read(p[0], got, sizeof got, TT_TRY), -EAGAIN);
	TU_ASSERT_OK(tt_writer_flush(w, tt_deadline_in(5 * SEC)));
	TU_ASSERT_EQ(tt_writer_buffered(w), 0);
	TU_ASSERT_EQ(drain(p[0], got, sizeof got), 209);
	TU_ASSERT_MEM_EQ(got, "abc42-x\n[zzz", 12);
	TU_ASSERT_EQ(got[208], ']');
	TU_ASSERT_OK(tt_writer_flush(w, TT_TRY)); /* nothing to do */
	tt_writer_release(w);

	/* A write that does not fit sends the buffer, then buffers; one of
	 * at least a bufferful goes straight out. */
	TU_ASSERT_OK(tt_writer_make(&w, p[1], 8));
	TU_ASSERT_EQ(tt_writer_write(w, "12345", 5, TT_FOREVER), 5);
	TU_ASSERT_EQ(tt_writer_write(w, "6789", 4, TT_FOREVER), 4);
	TU_ASSERT_EQ(tt_writer_buffered(w), 4);
	TU_ASSERT_EQ(drain(p[0], got, sizeof got), 5);
	TU_ASSERT_EQ(tt_writer_write(w, "abcdefghij", 10, TT_FOREVER), 10);
	TU_ASSERT_EQ(tt_writer_buffered(w), 0);
	TU_ASSERT_EQ(drain(p[0], got, sizeof got), 14);
	TU_ASSERT_MEM_EQ(got, "6789abcdefghij", 14);
	tt_writer_release(w);
	tt_close(p[0]);
	tt_close(p[1]);
}

/* A flush into a full pipe stops at its deadline, or when its context is
 * cancelled, and keeps exactly the bytes that did not go out. */
static void test_writer_flush_keeps_bytes(void **state)
{
	(void)state;
	int p[2];
	make_pipe(p);
	int cap = fcntl(p[1], F_SETPIPE_SZ, 4096);
	TU_ASSERT_GT(cap, 0);
	enum {
		LEN = 3 * 65536
	};
	char *msg = malloc(LEN + 1), *got = malloc(LEN);
	for (int i = 0; i < LEN; i++)
		msg[i] = (char)('a' + i % 23);
	msg[LEN] = '\0';
	tt_writer *w;
	TU_ASSERT_OK(tt_writer_make(&w, p[1], 0));
	TU_ASSERT_EQ(tt_writer_printf(w, "%s", msg), LEN);
	TU_ASSERT_ERR(tt_writer_flush(w, tt_deadline_in(30 * MS)), -ETIMEDOUT);
	TU_ASSERT_CONTAINS(tt_last_error(), "tt_writer_flush: fd ");
	TU_ASSERT_CONTAINS(tt_last_error(), "i/o timeout");
	size_t left = tt_writer_buffered(w);
	TU_ASSERT(left > 0 && left < LEN);
	size_t have = drain(p[0], got, LEN);
	TU_ASSERT_EQ(have + left, LEN);
	/* Again, cancelled: what the pipe took is gone from the buffer. */
	canceller *c = malloc(sizeof *c);
	*c = (canceller){.after = 30 * MS, .done = tu_chan(0, 1)};
	TU_ASSERT_OK(tt_ctx_with_cancel(&c->ctx, tt_ctx_background()));
	tu_go(cancel_later, c);
	TU_ASSERT_ERR(tt_writer_flush_ctx(c->ctx, w), -ECANCELED);
	TU_ASSERT_CONTAINS(tt_last_error(), "context canceled");
	size_t taken = drain(p[0], got + have, LEN - have);
	have += taken;
	TU_ASSERT_GT(taken, 0);
	TU_ASSERT_EQ(have + tt_writer_buffered(w), LEN);
	/* Done already: no write at all. */
	TU_ASSERT_ERR(tt_writer_write_ctx(c->ctx, w, "x", 1), -ECANCELED);
	TU_ASSERT_ERR(tt_writer_flush_ctx(c->ctx, w), -ECANCELED);
	cancel_done(c);
	free(c);
	/* A reader empties the pipe as the flush parks: all of it arrives,
	 * once, in order. */
	for (int i = 0; i < 10000 && tt_writer_buffered(w) > 0; i++) {
		int r = tt_writer_flush(w, tt_deadline_in(20 * MS));
		TU_ASSERT(r == 0 || r == -ETIMEDOUT);
		have += drain(p[0], got + have, LEN - have);
	}
	TU_ASSERT_EQ(have, LEN);
	TU_ASSERT_MEM_EQ(got, msg, LEN);
	tt_writer_release(w);
	tt_close(p[0]);
	tt_close(p[1]);
	free(msg);
	free(got);
}

static void test_writer_errors(void **state)
{
	(void)state;
	tt_writer *w = (tt_writer *)1;
	TU_ASSERT_ERR(tt_writer_make(&w, -1, 0), -EBADF);
	TU_ASSERT(w == NULL);
	TU_ASSERT_ERR(tt_writer_make(NULL, 1, 0), -EINVAL);
	TU_ASSERT_ERR(tt_writer_make(&w, 1, (size_t)1 << 31), -EINVAL);
	TU_ASSERT_ERR(tt_writer_write(NULL, "x", 1, TT_FOREVER), -EINVAL);
	TU_ASSERT_CONTAINS(tt_last_error(), "tt_writer_write: writer is NULL");
	TU_ASSERT_ERR(tt_writer_flush(NULL, TT_FOREVER), -EINVAL);
	TU_ASSERT_ERR(tt_writer_printf(NULL, "x"), -EINVAL);
	TU_ASSERT_ERR(tt_writer_flush_ctx(NULL, NULL), -EINVAL);
	TU_ASSERT_EQ(tt_writer_buffered(NULL), 0);
	TU_ASSERT_OK(tt_writer_release(NULL));
	/* The reader went away: -EPIPE at the flush (SIGPIPE is ignored
	 * here), and the bytes stay. */
	int p[2];
	make_pipe(p);
	TU_ASSERT_OK(tt_writer_make(&w, p[1], 0));
	TU_ASSERT_ERR(tt_writer_write(w, NULL, 1, TT_FOREVER), -EINVAL);
	TU_ASSERT_EQ(tt_writer_write(w, "hello", 5, TT_FOREVER), 5);
	tt_close(p[0]);
	TU_ASSERT_ERR(tt_writer_flush(w, TT_FOREVER), -EPIPE);
	TU_ASSERT_CONTAINS(tt_last_error(), "broken pipe (0 of 5 bytes "
					    "written)");
	TU_ASSERT_EQ(tt_writer_buffered(w), 5);
	tt_writer_release(w);
	tt_close(p[1]);
}

/* ---- the guide's line server (docs/GUIDE.md, "Networking"), verbatim -- */

static void guide_serve(void *arg) /* go serve(conn) */
{
	int fd = (int)(intptr_t)arg;
	tt_reader *r; /* bufio.NewReader(conn) */
	char line[1024];
	ssize_t n;
	if (tt_reader_make(&r, fd, 0) == 0) {
		while ((n = tt_reader_read_line(
				r, line, sizeof line,
				tt_deadline_in(10 * TT_SECOND))) > 0)
			if (tt_write(fd, line, (size_t)n, TT_FOREVER) != n)
				break;
		tt_reader_release(r);
	}
	tt_close(fd);
}

typedef struct guide_client {
	char addr[TT_ADDR_MAX];
	int id;
	tt_chan *done;
} guide_client;

/* A short line, a line three times the server's buffer, and a last line
 * cut by the end of the stream: every byte comes back. */
static void guide_client_run(void *arg)
{
	guide_client *c = arg;
	int fd = tt_dial("tcp", c->addr, tt_deadline_in(10 * SEC));
	TU_ASSERT_MSG(fd >= 0, "%s", tt_last_error());
	enum {
		LONG = 3000
	};
	char msg[LONG + 100];
	int k = snprintf(msg, sizeof msg, "client %d\n", c->id);
	for (int i = 0; i < LONG; i++)
		msg[k + i] = (char)('A' + (i + c->id) % 26);
	msg[k + LONG] = '\n';
	size_t len = (size_t)k + LONG + 1;
	memcpy(msg + len, "unended", 7);
	len += 7;
	TU_ASSERT_EQ(tt_write(fd, msg, len, TT_FOREVER), (long)len);
	TU_ASSERT_EQ(shutdown(fd, SHUT_WR), 0);
	tt_reader *r;
	TU_ASSERT_OK(tt_reader_make(&r, fd, 0));
	char got[sizeof msg];
	TU_ASSERT_EQ(tt_reader_read_full(r, got, len, tt_deadline_in(10 * SEC)),
		     (long)len);
	TU_ASSERT_MEM_EQ(got, msg, len);
	/* Then the server closes. */
	TU_ASSERT_EQ(tt_reader_read(r, got, 1, tt_deadline_in(10 * SEC)), 0);
	tt_reader_release(r);
	tt_close(fd);
	tu_done(c->done);
}

static void test_guide_line_server(void **state)
{
	(void)state;
	enum {
		CLIENTS = 20
	};
	int ln = tt_listen("tcp", "127.0.0.1:0");
	char addr[TT_ADDR_MAX];
	TU_ASSERT(ln >= 0 && tt_local_addr(ln, addr, sizeof addr) > 0);
	tt_chan *done = tu_chan(0, CLIENTS);
	static guide_client cs[CLIENTS];
	for (int i = 0; i < CLIENTS; i++) {
		cs[i] = (guide_client){.id = i, .done = done};
		memcpy(cs[i].addr, addr, sizeof addr);
		tu_go(guide_client_run, &cs[i]);
	}
	/* The guide's accept loop, for as many clients as there are. */
	for (int i = 0; i < CLIENTS; i++) {
		int fd = tt_accept(ln, NULL, NULL, tt_deadline_in(10 * SEC));
		TU_ASSERT_MSG(fd >= 0, "%s", tt_last_error());
		tu_go(guide_serve, (void *)(intptr_t)fd);
	}
	TU_WAIT_DONE(done, CLIENTS, 30 * SEC);
	TU_ASSERT_OK(tt_close(ln));
	TU_ASSERT_OK(tt_chan_release(done));
}

int main(int argc, char **argv)
{
	tu_child_dispatch(argc, argv, NULL, 0);
	signal(SIGPIPE, SIG_IGN); /* writes to a closed pipe say EPIPE */
	const struct CMUnitTest tests[] = {
		TU_TEST(test_tcp4_listen_dial),
		TU_TEST(test_tcp_localhost_and_empty_host),
		TU_TEST(test_tcp_dial_by_name),
		TU_TEST(test_tcp6_listen_dial),
		TU_TEST(test_unix_listen_dial),
		TU_TEST(test_unix_abstract),
		TU_TEST(test_dial_refused),
		TU_TEST(test_bad_addresses),
		TU_TEST(test_dial_deadline),
		TU_TEST(test_dial_ctx_cancelled),
		TU_TEST(test_accept_deadline_and_ctx),
		TU_TEST(test_reader_lines),
		TU_TEST(test_reader_long_line),
		TU_TEST(test_reader_line_deadline_keeps_bytes),
		TU_TEST(test_reader_read_full),
		TU_TEST(test_reader_read_full_keeps_bytes),
		TU_TEST(test_reader_read),
		TU_TEST(test_reader_ctx_cancel_on_socket),
		TU_TEST(test_reader_bad_args),
		TU_TEST(test_writer_buffers_until_flush),
		TU_TEST(test_writer_flush_keeps_bytes),
		TU_TEST(test_writer_errors),
		TU_TEST(test_parse_random_addresses),
		TU_TEST(test_guide_line_server),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
