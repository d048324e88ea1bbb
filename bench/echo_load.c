/* echo_load — the load program of the echo benchmark: N concurrent
 * clients (default 100), each doing round trips of a fixed-size message
 * (default 64 bytes) with an echo server: write the message, read it all
 * back, check it, write the next. Reports round trips per second over
 * --seconds (default 3), after a warm-up of a tenth of that (at least
 * 100 ms) that is not counted.
 *
 *   build/bench/echo_load --port P [--addr A] [--clients N] [--size B]
 *                         [--seconds S] [--server-pid PID]
 *
 * The same program drives both servers (build/examples/echo and its Go
 * twin bench/go/echo), and bench/run pins it to another CPU than the
 * server. For the rate to measure the server, this program must need
 * less CPU per round trip than either server does, so it is written on
 * epoll directly, not on tether: one level-triggered epoll set, and per
 * round trip one write and one read, each read made only after epoll
 * said the answer is there (a server reads until EAGAIN, one system call
 * more). Messages are at most 64 KiB, so that a write never has to wait
 * for the socket buffer.
 *
 * Output, in bench/run's format: "echo <round trips per second> rt/s";
 * with --server-pid PID also "echo_server_cpu <microseconds> us/rt", the
 * CPU time (user + system, from /proc/PID/stat) the server spent per
 * round trip over the same interval: a measure of the server alone, which
 * load elsewhere on the machine disturbs less than the rate. Any short
 * write, wrong byte, error or silence of 10 s is a failure (exit 1). */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

struct conn {
	int fd;
	size_t have; /* bytes of the current echo received */
	char *msg;   /* what was sent */
	char *got;
};

static void die(const char *what)
{
	fprintf(stderr, "echo_load: %s: %s\n", what, strerror(errno));
	exit(1);
}

static int64_t now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

/* CPU time of process pid so far, in clock ticks (utime + stime). */
static long long cpu_ticks(long pid)
{
	char path[64], buf[1024];
	snprintf(path, sizeof path, "/proc/%ld/stat", pid);
	FILE *f = fopen(path, "r");
	size_t n = f ? fread(buf, 1, sizeof buf - 1, f) : 0;
	if (f)
		fclose(f);
	buf[n] = '\0';
	/* Fields after the command name, which is in parentheses and may
	 * hold spaces: state is field 3, utime 14 and stime 15. */
	char *p = strrchr(buf, ')');
	unsigned long long ut, st;
	if (!p || sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u "
				"%*u %llu %llu",
			 &ut, &st) != 2) {
		fprintf(stderr, "echo_load: cannot read %s\n", path);
		exit(1);
	}
	return (long long)(ut + st);
}

static long arg_long(const char *flag, const char *v, long min, long max)
{
	char *end;
	errno = 0;
	long n = v ? strtol(v, &end, 10) : 0;
	if (!v || !*v || errno || *end || n < min || n > max) {
		fprintf(stderr,
			"echo_load: %s needs a number from %ld to %ld, got "
			"%s\n",
			flag, min, max, v ? v : "nothing");
		exit(2);
	}
	return n;
}

/* Send c's next message: it fits the socket buffer, so one write. */
static void send_msg(struct conn *c, size_t size, unsigned long n)
{
	c->msg[0] = (char)n; /* every round trip differs a little */
	ssize_t w = write(c->fd, c->msg, size);
	if (w != (ssize_t)size) {
		if (w >= 0)
			errno = EAGAIN;
		die("write");
	}
	c->have = 0;
}

int main(int argc, char **argv)
{
	const char *addr = "127.0.0.1";
	long port = -1, clients = 100, size = 64, seconds = 3, pid = 0;
	/* Every flag takes a value. */
	for (int i = 1; i < argc; i += 2) {
		const char *a = argv[i];
		const char *v = i + 1 < argc ? argv[i + 1] : NULL;
		if (strcmp(a, "--addr") == 0 && v)
			addr = v;
		else if (strcmp(a, "--port") == 0)
			port = arg_long(a, v, 1, 65535);
		else if (strcmp(a, "--clients") == 0)
			clients = arg_long(a, v, 1, 100000);
		else if (strcmp(a, "--size") == 0)
			size = arg_long(a, v, 1, 65536);
		else if (strcmp(a, "--seconds") == 0)
			seconds = arg_long(a, v, 1, 3600);
		else if (strcmp(a, "--server-pid") == 0)
			pid = arg_long(a, v, 1, 1L << 30);
		else {
			fprintf(stderr,
				"usage: echo_load --port P [--addr A] "
				"[--clients N] [--size B] [--seconds S] "
				"[--server-pid PID]\n");
			return 2;
		}
	}
	if (port < 0) {
		fprintf(stderr, "echo_load: --port is required\n");
		return 2;
	}
	struct sockaddr_in sa = {.sin_family = AF_INET,
				 .sin_port = htons((uint16_t)port)};
	if (inet_pton(AF_INET, addr, &sa.sin_addr) != 1) {
		fprintf(stderr, "echo_load: --addr %s is not an IPv4 address\n",
			addr);
		return 2;
	}
	signal(SIGPIPE, SIG_IGN);

	/* Connect every client (blocking), then go non-blocking. */
	int ep = epoll_create1(EPOLL_CLOEXEC);
	struct conn *cs = calloc((size_t)clients, sizeof *cs);
	if (ep < 0 || !cs)
		die("setup");
	for (long i = 0; i < clients; i++) {
		struct conn *c = &cs[i];
		int one = 1;
		c->fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
		if (c->fd < 0 ||
		    connect(c->fd, (struct sockaddr *)&sa, sizeof sa) != 0)
			die("connect");
		setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
		fcntl(c->fd, F_SETFL, fcntl(c->fd, F_GETFL) | O_NONBLOCK);
		c->msg = malloc((size_t)size);
		c->got = malloc((size_t)size);
		if (!c->msg || !c->got)
			die("malloc");
		for (long k = 0; k < size; k++)
			c->msg[k] = (char)('a' + (i + k) % 26);
		struct epoll_event ev = {.events = EPOLLIN, .data.ptr = c};
		if (epoll_ctl(ep, EPOLL_CTL_ADD, c->fd, &ev) != 0)
			die("epoll_ctl");
	}

	int64_t warm = seconds * 100000000;
	if (warm < 100000000)
		warm = 100000000;
	int64_t t_start = now_ns(), t0 = t_start + warm,
		t_end = t0 + seconds * 1000000000;
	long long rts = 0, rts0 = -1, cpu0 = 0;
	unsigned long n = 0;
	for (long i = 0; i < clients; i++)
		send_msg(&cs[i], (size_t)size, n++);
	struct epoll_event evs[256];
	for (;;) {
		int k = epoll_wait(ep, evs, 256, 10000);
		if (k < 0 && errno == EINTR)
			continue;
		if (k <= 0) {
			if (k == 0)
				errno = ETIMEDOUT;
			die("waiting for echoes");
		}
		for (int j = 0; j < k; j++) {
			struct conn *c = evs[j].data.ptr;
			ssize_t r = read(c->fd, c->got + c->have,
					 (size_t)size - c->have);
			if (r <= 0) {
				if (r < 0 && errno == EAGAIN)
					continue;
				if (r == 0)
					errno = EPIPE;
				die("read (did the server close?)");
			}
			c->have += (size_t)r;
			if (c->have < (size_t)size)
				continue;
			if (memcmp(c->msg, c->got, (size_t)size) != 0) {
				fprintf(stderr, "echo_load: the echo differs "
						"from what was sent\n");
				return 1;
			}
			rts++;
			send_msg(c, (size_t)size, n++);
		}
		int64_t t = now_ns();
		if (rts0 < 0 && t >= t0) {
			rts0 = rts;
			t0 = t;
			t_end = t0 + seconds * 1000000000;
			cpu0 = pid ? cpu_ticks(pid) : 0;
		} else if (rts0 >= 0 && t >= t_end) {
			long long done = rts - rts0;
			long long cpu = pid ? cpu_ticks(pid) - cpu0 : 0;
			double secs = (double)(t - t0) / 1e9;
			if (done == 0) {
				fprintf(stderr,
					"echo_load: no round trip completed\n");
				return 1;
			}
			printf("echo %.0f rt/s\n", (double)done / secs);
			if (pid)
				printf("echo_server_cpu %.2f us/rt\n",
				       (double)cpu * 1e6 /
					       (double)sysconf(_SC_CLK_TCK) /
					       (double)done);
			break;
		}
	}
	for (long i = 0; i < clients; i++) {
		close(cs[i].fd);
		free(cs[i].msg);
		free(cs[i].got);
	}
	free(cs);
	close(ep);
	return 0;
}
