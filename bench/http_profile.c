/* http_profile — an HTTP GET of /debug/pprof/goroutine?debug=1 with N
 * parked goroutines (default 100,000), served by tt_debug_serve and
 * fetched by a client goroutine of the same program over loopback.
 *
 *   http_profile        seconds from sending the request to the end of
 *                       the response (the best of 5 GETs)
 *   http_profile_stall  the longest a 1 ms sleeper waited beyond its
 *                       deadline during those GETs: how long the server
 *                       kept the program's other goroutines from running
 *
 * Twin: bench/go/http_profile/main.go (net/http/pprof, GOMAXPROCS=1). On
 * both sides the client reads the whole response (Connection: close,
 * until end of file); the goroutines are parked on one channel, so the
 * profile is one record with count N. */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include "bench.h"

static void parked(void *arg)
{
	tt_chan *quit = arg;
	int64_t v;
	tt_recv(quit, &v, NULL);
}

typedef struct sleeper {
	bool stop;
	int64_t worst; /* ns beyond the deadline */
	tt_chan *done;
} sleeper;

static void sleeper_main(void *arg)
{
	sleeper *s = arg;
	while (!s->stop) {
		int64_t want = tt_now() + TT_MILLISECOND;
		tt_sleep(TT_MILLISECOND);
		int64_t late = tt_now() - want;
		if (late > s->worst)
			s->worst = late;
	}
	tt_chan_close(s->done);
}

/* One GET; returns the bytes received. */
static long get_once(int port)
{
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0)
		bench_fail("http_profile", "socket", -errno);
	struct sockaddr_in a = {.sin_family = AF_INET,
				.sin_port = htons((uint16_t)port),
				.sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	int r = tt_connect(fd, (struct sockaddr *)&a, sizeof a, TT_FOREVER);
	if (r)
		bench_fail("http_profile", "tt_connect", r);
	static const char req[] =
		"GET /debug/pprof/goroutine?debug=1 HTTP/1.1\r\n"
		"Host: 127.0.0.1\r\nConnection: close\r\n\r\n";
	if (tt_write(fd, req, sizeof req - 1, TT_FOREVER) !=
	    (ssize_t)sizeof req - 1)
		bench_fail("http_profile", "tt_write", -EIO);
	static char buf[1 << 16];
	long total = 0;
	ssize_t n;
	char first[16] = "";
	while ((n = tt_read(fd, buf, sizeof buf, TT_FOREVER)) > 0) {
		if (total == 0)
			memcpy(first, buf, n < 15 ? (size_t)n : 15);
		total += n;
	}
	close(fd);
	if (n < 0)
		bench_fail("http_profile", "tt_read", n);
	if (strncmp(first, "HTTP/1.1 200", 12) != 0) {
		fprintf(stderr, "http_profile: bad response: %s\n", first);
		exit(1);
	}
	return total;
}

int main(int argc, char **argv)
{
	long n = bench_count(argc, argv, "http_profile", 100000);
	tt_chan *quit;
	int r = tt_chan_make(&quit, sizeof(int64_t), 0);
	if (r)
		bench_fail("http_profile", "tt_chan_make", r);
	for (long i = 0; i < n; i++) {
		int64_t id = tt_go(parked, quit);
		if (id < 0)
			bench_fail("http_profile", "tt_go", id);
	}
	tt_debug_server *srv;
	r = tt_debug_serve("127.0.0.1:0", NULL, &srv);
	if (r)
		bench_fail("http_profile", "tt_debug_serve", r);
	int port = tt_debug_port(srv);

	get_once(port); /* warm-up: symbol caches, socket buffers */
	sleeper s = {0};
	tt_chan_make(&s.done, 0, 0);
	tt_go(sleeper_main, &s);
	int64_t best = INT64_MAX;
	for (int i = 0; i < 5; i++) {
		int64_t t0 = tt_now();
		get_once(port);
		int64_t dt = tt_now() - t0;
		if (dt < best)
			best = dt;
	}
	s.stop = true;
	tt_chan_recv(s.done, NULL, 0, NULL);
	tt_debug_shutdown(srv);

	printf("http_profile %.4f s\n", (double)best / TT_SECOND);
	printf("http_profile_stall %.2f ms\n",
	       (double)s.worst / TT_MILLISECOND);
	fflush(stdout);
	exit(0);
}
