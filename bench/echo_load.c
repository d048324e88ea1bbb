/* echo_load — the load program of the echo benchmark: N concurrent
 * clients (default 100), goroutines on one thread, each doing round trips
 * of a fixed-size message (default 64 bytes) with an echo server: write
 * the message, read it all back, check it. Reports round trips per second
 * over --seconds (default 3), after a warm-up of a tenth of that (at
 * least 100 ms) that is not counted.
 *
 *   build/bench/echo_load --port P [--addr A] [--clients N] [--size B]
 *                         [--seconds S] [--server-pid PID]
 *
 * The same program drives both servers (build/examples/echo and its Go
 * twin bench/go/echo), so the ratio compares servers only; bench/run
 * pins the server and this program to different CPUs when it can.
 *
 * Output, in bench/run's format: "echo <round trips per second> rt/s";
 * with --server-pid PID also "echo_server_cpu <microseconds> us/rt", the
 * CPU time (user + system, from /proc/PID/stat) the server spent per
 * round trip over the same interval: a measure that other load on the
 * machine disturbs less than the rate. Any short read, wrong byte or
 * error is a failure (exit 1). */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <sys/socket.h>

#include "bench.h"

struct load {
	struct sockaddr_in addr;
	size_t size;
	volatile bool stop; /* set by main at the end of the run */
	long long rts;      /* round trips done by all clients */
	tt_waitgroup *wg;
};

struct client {
	struct load *load;
	int id;
};

static void fail(const char *what, long err)
{
	fprintf(stderr, "echo_load: %s: %s (%s)\n", what,
		tt_strerror((int)err), tt_last_error());
	exit(1);
}

static void client(void *arg)
{
	struct client *c = arg;
	struct load *l = c->load;
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC,
			0);
	if (fd < 0)
		fail("socket", -errno);
	int one = 1;
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
	int r = tt_connect(fd, (struct sockaddr *)&l->addr, sizeof l->addr,
			   tt_deadline_in(10 * TT_SECOND));
	if (r)
		fail("connect", r);
	char *msg = malloc(l->size), *got = malloc(l->size);
	if (!msg || !got)
		fail("malloc", -ENOMEM);
	for (size_t i = 0; i < l->size; i++)
		msg[i] = (char)('a' + (c->id + i) % 26);
	for (unsigned long n = 0; !l->stop; n++) {
		msg[0] = (char)n; /* every round trip differs a little */
		ssize_t w = tt_write(fd, msg, l->size,
				     tt_deadline_in(10 * TT_SECOND));
		if (w != (ssize_t)l->size)
			fail("write", w < 0 ? w : -EIO);
		size_t have = 0;
		while (have < l->size) {
			ssize_t k = tt_read(fd, got + have, l->size - have,
					    tt_deadline_in(10 * TT_SECOND));
			if (k <= 0)
				fail(k == 0 ? "read: the server closed"
					    : "read",
				     k < 0 ? k : -EPIPE);
			have += (size_t)k;
		}
		if (memcmp(msg, got, l->size) != 0)
			fail("the echo differs from what was sent", -EIO);
		l->rts++;
	}
	close(fd);
	free(msg);
	free(got);
	tt_wg_done(l->wg);
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
			size = arg_long(a, v, 1, 16 << 20);
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

	struct load l = {.size = (size_t)size};
	l.addr = (struct sockaddr_in){.sin_family = AF_INET,
				      .sin_port = htons((uint16_t)port)};
	if (inet_pton(AF_INET, addr, &l.addr.sin_addr) != 1) {
		fprintf(stderr, "echo_load: --addr %s is not an IPv4 address\n",
			addr);
		return 2;
	}
	signal(SIGPIPE, SIG_IGN);
	int r = tt_wg_make(&l.wg);
	if (r)
		fail("tt_wg_make", r);
	struct client *cs = calloc((size_t)clients, sizeof *cs);
	if (!cs)
		fail("calloc", -ENOMEM);
	tt_wg_add(l.wg, clients);
	for (long i = 0; i < clients; i++) {
		cs[i] = (struct client){&l, (int)i};
		int64_t id = tt_go(client, &cs[i]);
		if (id < 0)
			fail("tt_go", id);
	}

	int64_t warm = seconds * TT_SECOND / 10;
	tt_sleep(warm > 100 * TT_MILLISECOND ? warm : 100 * TT_MILLISECOND);
	long long rts0 = l.rts, cpu0 = pid ? cpu_ticks(pid) : 0;
	int64_t t0 = tt_now();
	tt_sleep(seconds * TT_SECOND);
	long long rts = l.rts - rts0, cpu = pid ? cpu_ticks(pid) - cpu0 : 0;
	int64_t elapsed = tt_now() - t0;
	l.stop = true;
	r = tt_wg_wait_until(l.wg, tt_deadline_in(20 * TT_SECOND));
	if (r)
		fail("waiting for the clients to finish", r);

	if (rts == 0) {
		fprintf(stderr, "echo_load: no round trip completed\n");
		return 1;
	}
	printf("echo %.0f rt/s\n", (double)rts * TT_SECOND / (double)elapsed);
	if (pid)
		printf("echo_server_cpu %.2f us/rt\n",
		       (double)cpu * 1e6 / (double)sysconf(_SC_CLK_TCK) /
			       (double)rts);
	tt_wg_release(l.wg);
	free(cs);
	return 0;
}
