/* Descriptor I/O that parks the goroutine: pipes, deadlines, and a
 * loopback TCP echo with many clients on one thread. */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include "testutil.h"

#define MS TT_MILLISECOND

typedef struct pipe_arg {
	int fd;
	long total;
	tt_chan *done;
} pipe_arg;

static void pipe_writer(void *p)
{
	pipe_arg *a = p;
	char buf[4096];
	for (int i = 0; i < 256; i++) {
		memset(buf, 'a' + i % 26, sizeof buf);
		TU_ASSERT_EQ(tt_write(a->fd, buf, sizeof buf, TT_FOREVER),
			     (long)sizeof buf);
	}
	tt_close(a->fd);
	tu_done(a->done);
}

static void test_pipe_between_goroutines(void **state)
{
	(void)state;
	int p[2];
	assert_int_equal(pipe2(p, O_NONBLOCK | O_CLOEXEC), 0);
	tt_chan *done = tu_chan(0, 1);
	pipe_arg w = {p[1], 0, done};
	/* 1 MiB through a 64 KiB pipe: the writer parks many times. */
	tu_go(pipe_writer, &w);
	char buf[1000];
	long total = 0;
	ssize_t n;
	while ((n = tt_read(p[0], buf, sizeof buf, tt_deadline_in(
							   10 * TT_SECOND))) > 0)
		total += n;
	TU_ASSERT_EQ(n, 0); /* end of file after the writer closed */
	TU_ASSERT_EQ(total, 256 * 4096);
	TU_WAIT_DONE(done, 1, 5 * TT_SECOND);
	tt_close(p[0]);
	TU_ASSERT_OK(tt_chan_release(done));
}

static void busy_reader(void *p)
{
	char c;
	pipe_arg *a = p;
	a->total = tt_read(a->fd, &c, 1, tt_deadline_in(TT_SECOND));
	tu_done(a->done);
}

static void test_fd_deadlines_and_errors(void **state)
{
	(void)state;
	int p[2];
	assert_int_equal(pipe2(p, O_NONBLOCK | O_CLOEXEC), 0);
	char c;
	TU_ASSERT_ERR(tt_read(p[0], &c, 1, TT_TRY), -EAGAIN);
	int64_t t0 = tt_now();
	TU_ASSERT_ERR(tt_read(p[0], &c, 1, tt_deadline_in(20 * MS)),
		      -ETIMEDOUT);
	TU_ASSERT_RANGE(tt_now() - t0, 20 * MS, 20 * MS + TU_SLACK_NS);
	TU_ASSERT_EQ(tt_fd_wait(p[1], TT_FD_WRITE, TT_TRY), TT_FD_WRITE);
	TU_ASSERT_ERR(tt_fd_wait(-1, TT_FD_READ, TT_FOREVER), -EBADF);
	TU_ASSERT_ERR(tt_fd_wait(p[0], 0, TT_FOREVER), -EINVAL);
	/* One reader at a time: of one scheduler's, whose poller knows who
	 * waits; the reader must be a goroutine of this thread, which tt_go
	 * promises only at one P. */
	tu_one_p();
	tt_chan *done = tu_chan(0, 1);
	pipe_arg a = {p[0], 99, done};
	tu_go(busy_reader, &a);
	TU_ASSERT_ERR(tt_fd_wait(p[0], TT_FD_READ, tt_deadline_in(MS)),
		      -EBUSY);
	TU_ASSERT_EQ(tt_write(p[1], "x", 1, TT_FOREVER), 1);
	TU_WAIT_DONE(done, 1, 5 * TT_SECOND);
	TU_ASSERT_EQ(a.total, 1);
	tt_close(p[0]);
	tt_close(p[1]);
	/* A regular file is always ready. */
	int f = open("/proc/self/stat", O_RDONLY | O_NONBLOCK);
	assert_true(f >= 0);
	TU_ASSERT_EQ(tt_fd_wait(f, TT_FD_READ, TT_FOREVER), TT_FD_READ);
	tt_close(f);
	TU_ASSERT_OK(tt_chan_release(done));
}

/* ---- loopback echo ----------------------------------------------------------- */

typedef struct echo_srv {
	int lfd;
	int served;
	tt_waitgroup *wg;
} echo_srv;

static void echo_conn(void *p)
{
	int fd = (int)(intptr_t)p;
	char buf[512];
	ssize_t n;
	while ((n = tt_read(fd, buf, sizeof buf, tt_deadline_in(
						       10 * TT_SECOND))) > 0)
		if (tt_write(fd, buf, (size_t)n, TT_FOREVER) != n)
			break;
	tt_close(fd);
}

static void echo_accept(void *p)
{
	echo_srv *s = p;
	for (;;) {
		int c = tt_accept(s->lfd, NULL, NULL, TT_FOREVER);
		if (c < 0)
			break; /* listener closed by the test */
		/* Atomic: the test reads it from another P maybe, ordered
		 * only by the clients' round trips. */
		__atomic_fetch_add(&s->served, 1, __ATOMIC_RELAXED);
		tu_go(echo_conn, (void *)(intptr_t)c);
	}
}

typedef struct client_arg {
	struct sockaddr_in addr;
	int id;
	int ok;
	tt_waitgroup *wg;
} client_arg;

static void echo_client(void *p)
{
	client_arg *a = p;
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC,
			0);
	TU_ASSERT(fd >= 0);
	TU_ASSERT_OK(tt_connect(fd, (struct sockaddr *)&a->addr,
				sizeof a->addr, tt_deadline_in(10 * TT_SECOND)));
	char msg[64], got[64];
	for (int round = 0; round < 10; round++) {
		int len = snprintf(msg, sizeof msg, "client %d round %d", a->id,
				   round);
		TU_ASSERT_EQ(tt_write(fd, msg, (size_t)len, TT_FOREVER), len);
		int have = 0;
		while (have < len) {
			ssize_t n = tt_read(fd, got + have, sizeof got - have,
					    tt_deadline_in(10 * TT_SECOND));
			TU_ASSERT_GT(n, 0);
			have += (int)n;
		}
		TU_ASSERT_MEM_EQ(got, msg, (size_t)len);
	}
	tt_close(fd);
	a->ok = 1;
	tt_wg_done(a->wg);
}

static void test_tcp_echo_many_clients(void **state)
{
	(void)state;
	enum { N = 200 };
	int lfd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC,
			 0);
	assert_true(lfd >= 0);
	struct sockaddr_in addr = {.sin_family = AF_INET,
				   .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	socklen_t len = sizeof addr;
	assert_int_equal(bind(lfd, (struct sockaddr *)&addr, len), 0);
	assert_int_equal(listen(lfd, 512), 0);
	assert_int_equal(getsockname(lfd, (struct sockaddr *)&addr, &len), 0);
	echo_srv srv = {.lfd = lfd};
	tu_go(echo_accept, &srv);
	tt_waitgroup *wg;
	TU_ASSERT_OK(tt_wg_make(&wg));
	static client_arg cl[N];
	TU_ASSERT_OK(tt_wg_add(wg, N));
	for (int i = 0; i < N; i++) {
		cl[i] = (client_arg){addr, i, 0, wg};
		tu_go(echo_client, &cl[i]);
	}
	TU_ASSERT_OK(tt_wg_wait_until(wg, tt_deadline_in(60 * TT_SECOND)));
	for (int i = 0; i < N; i++)
		assert_int_equal(cl[i].ok, 1);
	assert_int_equal(__atomic_load_n(&srv.served, __ATOMIC_RELAXED), N);
	/* Stop the server: shutdown wakes the accept with an error. */
	shutdown(lfd, SHUT_RDWR);
	TU_WAIT_FOR(tt_num_goroutine() == 1, 10 * TT_SECOND);
	tt_close(lfd);
	TU_ASSERT_OK(tt_wg_release(wg));
}

/* ---- context forms ------------------------------------------------------- */

typedef struct ctx_arg {
	tt_ctx *ctx;
	int fd;
	long got;
	tt_chan *done;
} ctx_arg;

static void ctx_reader(void *p)
{
	ctx_arg *a = p;
	char c;
	a->got = tt_read_ctx(a->ctx, a->fd, &c, 1);
	tu_done(a->done);
}

static void ctx_acceptor(void *p)
{
	ctx_arg *a = p;
	a->got = tt_accept_ctx(a->ctx, a->fd, NULL, NULL);
	tu_done(a->done);
}

static void ctx_writer(void *p)
{
	ctx_arg *a = p;
	static char big[1 << 20];
	a->got = tt_write_ctx(a->ctx, a->fd, big, sizeof big);
	tu_done(a->done);
}

static void test_fd_ctx_forms(void **state)
{
	(void)state;
	int p[2];
	assert_int_equal(pipe2(p, O_NONBLOCK | O_CLOEXEC), 0);
	tt_chan *done = tu_chan(0, 1);
	char c;

	/* Data first: the ctx form reads as the plain one does. */
	TU_ASSERT_EQ(tt_write_ctx(tt_ctx_background(), p[1], "a", 1), 1);
	TU_ASSERT_EQ(tt_read_ctx(tt_ctx_background(), p[0], &c, 1), 1);
	TU_ASSERT_EQ(c, 'a');

	/* A reader parked on an empty pipe is released by the cancel. */
	tt_ctx *ctx;
	TU_ASSERT_OK(tt_ctx_with_cancel(&ctx, tt_ctx_background()));
	ctx_arg a = {ctx, p[0], 99, done};
	tu_go(ctx_reader, &a);
	TU_ASSERT_EQ(a.got, 99); /* parked */
	TU_ASSERT_OK(tt_ctx_cancel(ctx));
	TU_WAIT_DONE(done, 1, 5 * TT_SECOND);
	TU_ASSERT_ERR(a.got, -ECANCELED);
	/* A done context does not even try, and says why. */
	TU_ASSERT_EQ(tt_write(p[1], "b", 1, TT_FOREVER), 1);
	TU_ASSERT_ERR(tt_read_ctx(ctx, p[0], &c, 1), -ECANCELED);
	TU_ASSERT_CONTAINS(tt_last_error(), "context canceled");
	TU_ASSERT_ERR(tt_fd_wait_ctx(ctx, p[0], TT_FD_READ), -ECANCELED);
	TU_ASSERT_OK(tt_ctx_release(ctx));
	/* The cancelled wait left no trace: the byte is read normally. */
	TU_ASSERT_EQ(tt_read(p[0], &c, 1, tt_deadline_in(TT_SECOND)), 1);
	TU_ASSERT_EQ(c, 'b');

	/* A deadline context: -ETIMEDOUT, on time. */
	TU_ASSERT_OK(tt_ctx_with_timeout(&ctx, tt_ctx_background(), 20 * MS));
	int64_t t0 = tt_now();
	TU_ASSERT_ERR(tt_read_ctx(ctx, p[0], &c, 1), -ETIMEDOUT);
	TU_ASSERT_RANGE(tt_now() - t0, 20 * MS, 20 * MS + TU_SLACK_NS);
	TU_ASSERT_CONTAINS(tt_last_error(), "context deadline exceeded");
	TU_ASSERT_OK(tt_ctx_cancel(ctx));
	TU_ASSERT_OK(tt_ctx_release(ctx));

	/* Data that comes while parked wins; the context stays usable. */
	TU_ASSERT_OK(tt_ctx_with_cancel(&ctx, tt_ctx_background()));
	a = (ctx_arg){ctx, p[0], 99, done};
	tu_go(ctx_reader, &a);
	TU_ASSERT_EQ(tt_write(p[1], "c", 1, TT_FOREVER), 1);
	TU_WAIT_DONE(done, 1, 5 * TT_SECOND);
	TU_ASSERT_EQ(a.got, 1);
	TU_ASSERT_EQ(tt_fd_wait_ctx(ctx, p[1], TT_FD_WRITE), TT_FD_WRITE);

	/* Cancelled and readable at once: the cancel readies the reader
	 * first, then the poller sees the byte before the reader runs. The
	 * order is one scheduler's: on another P the reader may take the
	 * byte before the cancel comes. */
	tu_one_p();
	TU_ASSERT_OK(tt_ctx_release(ctx));
	TU_ASSERT_OK(tt_ctx_with_cancel(&ctx, tt_ctx_background()));
	a = (ctx_arg){ctx, p[0], 99, done};
	tu_go(ctx_reader, &a);
	TU_ASSERT_EQ(tt_write(p[1], "d", 1, TT_FOREVER), 1);
	TU_ASSERT_OK(tt_ctx_cancel(ctx));
	tt_yield(); /* polls, with the reader runnable but not yet run */
	TU_WAIT_DONE(done, 1, 5 * TT_SECOND);
	TU_ASSERT_ERR(a.got, -ECANCELED);
	/* The byte is still there, and the event was not lost. */
	TU_ASSERT_EQ(tt_fd_wait(p[0], TT_FD_READ, tt_deadline_in(TT_SECOND)),
		     TT_FD_READ);
	TU_ASSERT_EQ(tt_read(p[0], &c, 1, TT_TRY), 1);
	TU_ASSERT_EQ(c, 'd');

	/* A long write cancelled part way returns what it wrote. */
	TU_ASSERT_OK(tt_ctx_release(ctx));
	TU_ASSERT_OK(tt_ctx_with_cancel(&ctx, tt_ctx_background()));
	a = (ctx_arg){ctx, p[1], 99, done};
	tu_go(ctx_writer, &a); /* fills the pipe, then parks */
	char sink[4096];
	TU_ASSERT_EQ(tt_read(p[0], sink, sizeof sink,
			     tt_deadline_in(5 * TT_SECOND)),
		     (long)sizeof sink);
	tt_yield(); /* the writer fills the room, and parks again */
	TU_ASSERT_OK(tt_ctx_cancel(ctx));
	TU_WAIT_DONE(done, 1, 5 * TT_SECOND);
	TU_ASSERT_RANGE(a.got, 4096, (1 << 20) - 1);
	long drained = 0;
	ssize_t k;
	while ((k = tt_read(p[0], sink, sizeof sink, TT_TRY)) > 0)
		drained += k;
	TU_ASSERT_EQ(drained, a.got - 4096);
	TU_ASSERT_OK(tt_ctx_release(ctx));
	TU_ASSERT_OK(tt_ctx_with_cancel(&ctx, tt_ctx_background()));

	/* Accept, cancelled. */
	int lfd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC,
			 0);
	assert_true(lfd >= 0);
	struct sockaddr_in addr = {.sin_family = AF_INET,
				   .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	assert_int_equal(bind(lfd, (struct sockaddr *)&addr, sizeof addr), 0);
	assert_int_equal(listen(lfd, 8), 0);
	a = (ctx_arg){ctx, lfd, 99, done};
	tu_go(ctx_acceptor, &a);
	TU_ASSERT_EQ(a.got, 99); /* parked */
	TU_ASSERT_OK(tt_ctx_cancel(ctx));
	TU_WAIT_DONE(done, 1, 5 * TT_SECOND);
	TU_ASSERT_ERR(a.got, -ECANCELED);
	TU_ASSERT_OK(tt_ctx_release(ctx));

	/* Bad input. */
	TU_ASSERT_ERR(tt_read_ctx(NULL, p[0], &c, 1), -EINVAL);
	TU_ASSERT_ERR(tt_fd_wait_ctx(tt_ctx_background(), -1, TT_FD_READ),
		      -EBADF);
	TU_ASSERT_OK(tt_close(lfd));
	TU_ASSERT_OK(tt_close(p[0]));
	TU_ASSERT_OK(tt_close(p[1]));
	TU_ASSERT_OK(tt_chan_release(done));
}

/* ---- edge-triggered registration ----------------------------------------- */

static void test_fd_wait_after_edge(void **state)
{
	(void)state;
	int p[2];
	assert_int_equal(pipe2(p, O_NONBLOCK | O_CLOEXEC), 0);
	char buf[4];
	/* Registered while empty, then readable: the edge wakes. */
	TU_ASSERT_ERR(tt_fd_wait(p[0], TT_FD_READ, tt_deadline_in(MS)),
		      -ETIMEDOUT);
	TU_ASSERT_EQ(tt_write(p[1], "xyz", 3, TT_FOREVER), 3);
	TU_ASSERT_EQ(tt_fd_wait(p[0], TT_FD_READ, tt_deadline_in(TT_SECOND)),
		     TT_FD_READ);
	/* No new edge, but still readable: tt_fd_wait must not park. */
	TU_ASSERT_EQ(tt_fd_wait(p[0], TT_FD_READ, tt_deadline_in(TT_SECOND)),
		     TT_FD_READ);
	/* A partial read leaves data for the next one without an edge. */
	TU_ASSERT_EQ(tt_read(p[0], buf, 1, TT_FOREVER), 1);
	TU_ASSERT_EQ(tt_read(p[0], buf + 1, 2, tt_deadline_in(TT_SECOND)), 2);
	TU_ASSERT_MEM_EQ(buf, "xyz", 3);
	TU_ASSERT_ERR(tt_read(p[0], buf, 1, TT_TRY), -EAGAIN);
	TU_ASSERT_OK(tt_close(p[0]));
	TU_ASSERT_OK(tt_close(p[1]));
}

static void closed_reader(void *p)
{
	pipe_arg *a = p;
	char c;
	a->total = tt_read(a->fd, &c, 1, tt_deadline_in(10 * TT_SECOND));
	tu_done(a->done);
}

/* tt_close wakes the goroutine parked on the descriptor with -EBADF. */
static void test_fd_close_wakes_waiter(void **state)
{
	(void)state;
	int p[2];
	assert_int_equal(pipe2(p, O_NONBLOCK | O_CLOEXEC), 0);
	tt_chan *done = tu_chan(0, 1);
	pipe_arg a = {p[0], 99, done};
	tu_go(closed_reader, &a);
	TU_ASSERT_EQ(a.total, 99);
	TU_ASSERT_OK(tt_close(p[0]));
	TU_WAIT_DONE(done, 1, 5 * TT_SECOND);
	TU_ASSERT_ERR(a.total, -EBADF);
	TU_ASSERT_OK(tt_close(p[1]));
	TU_ASSERT_ERR(tt_close(-1), -EBADF);
	TU_ASSERT_OK(tt_chan_release(done));
}

/* A descriptor closed with plain close(2) while registered, its number
 * reused by a new pipe: the poller's audit notices, so a reader of the
 * new pipe is woken (late, but woken). */
static void test_fd_number_reused_behind_our_back(void **state)
{
	(void)state;
	/* The stale slot is this scheduler's: the reader must be a goroutine
	 * of this thread, which tt_go promises only at one P. */
	tu_one_p();
	int p[2], q[2];
	assert_int_equal(pipe2(p, O_NONBLOCK | O_CLOEXEC), 0);
	char c;
	TU_ASSERT_ERR(tt_read(p[0], &c, 1, tt_deadline_in(MS)), -ETIMEDOUT);
	/* The new pipe's read end takes p[0]'s number by dup3, which closes
	 * the old file there (not tt_close: the slot still says
	 * registered). Not by waiting for the lowest free number to come
	 * back: other threads (more Ps) open and close descriptors too. */
	assert_int_equal(pipe2(q, O_NONBLOCK | O_CLOEXEC), 0);
	assert_int_equal(dup3(q[0], p[0], O_CLOEXEC), p[0]);
	close(q[0]);
	close(p[1]);
	q[0] = p[0];
	tt_chan *done = tu_chan(0, 1);
	pipe_arg a = {q[0], 99, done};
	tu_go(closed_reader, &a);
	TU_ASSERT_EQ(tt_write(q[1], "r", 1, TT_FOREVER), 1);
	TU_WAIT_DONE(done, 1, 5 * TT_SECOND);
	TU_ASSERT_EQ(a.total, 1);
	TU_ASSERT_OK(tt_close(q[0]));
	TU_ASSERT_OK(tt_close(q[1]));
	TU_ASSERT_OK(tt_chan_release(done));
}

/* The same, at a number far into a slot table of 16384: the audit sweeps
 * the table in batches and still gets there. */
static void test_fd_number_reused_far_in_the_table(void **state)
{
	(void)state;
	struct rlimit rl;
	assert_int_equal(getrlimit(RLIMIT_NOFILE, &rl), 0);
	if (rl.rlim_cur < 10000) {
		print_message("skipped: RLIMIT_NOFILE %lu < 10000\n",
			      (unsigned long)rl.rlim_cur);
		skip();
	}
	/* As test_fd_number_reused_behind_our_back: this scheduler's slot,
	 * read by a goroutine of this thread (one P's promise). */
	tu_one_p();
	enum { FAR = 9000 };
	int p[2], q[2];
	char c;
	assert_int_equal(pipe2(p, O_NONBLOCK | O_CLOEXEC), 0);
	assert_int_equal(dup3(p[0], FAR, O_CLOEXEC), FAR);
	TU_ASSERT_ERR(tt_read(FAR, &c, 1, tt_deadline_in(MS)), -ETIMEDOUT);
	close(FAR); /* behind the poller's back */
	assert_int_equal(pipe2(q, O_NONBLOCK | O_CLOEXEC), 0);
	assert_int_equal(dup3(q[0], FAR, O_CLOEXEC), FAR);
	tt_chan *done = tu_chan(0, 1);
	pipe_arg a = {FAR, 99, done};
	tu_go(closed_reader, &a);
	TU_ASSERT_EQ(tt_write(q[1], "s", 1, TT_FOREVER), 1);
	TU_WAIT_DONE(done, 1, 5 * TT_SECOND);
	TU_ASSERT_EQ(a.total, 1);
	TU_ASSERT_OK(tt_close(FAR));
	for (int i = 0; i < 2; i++) {
		TU_ASSERT_OK(tt_close(p[i]));
		TU_ASSERT_OK(tt_close(q[i]));
	}
	TU_ASSERT_OK(tt_chan_release(done));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		TU_TEST(test_pipe_between_goroutines),
		TU_TEST(test_fd_deadlines_and_errors),
		TU_TEST(test_tcp_echo_many_clients),
		TU_TEST(test_fd_ctx_forms),
		TU_TEST(test_fd_wait_after_edge),
		TU_TEST(test_fd_close_wakes_waiter),
		TU_TEST(test_fd_number_reused_behind_our_back),
		TU_TEST(test_fd_number_reused_far_in_the_table),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
