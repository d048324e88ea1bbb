/* profile_dump — with N goroutines parked (default 100,000: each in a
 * receive, under three distinct call chains), the time to write the
 * goroutine profile at debug=0, 1 and 2 into a memory buffer; the peak
 * resident growth while writing debug=2; and the longest a ticking
 * goroutine was kept waiting while the dumps ran (the dump's stall).
 *
 * Twin: bench/go/profile_dump/main.go (pprof.Lookup("goroutine").WriteTo
 * into a bytes.Buffer). The times are of writes into a growing memory
 * buffer. The memory is measured on one more debug=2 write into a sink
 * that keeps nothing (io.Discard in Go), so only the dump's own memory
 * counts: both reset the peak-RSS mark through /proc/self/clear_refs
 * before it and read VmHWM after it.
 * The C side symbolizes one stack before it starts measuring (see main).
 *
 * Then an HTTP GET of /debug/pprof/goroutine?debug=1 from the debug
 * server (Go: net/http/pprof), and the longest stall during it; then
 * GETs of debug=2 and debug=0, and the longest stall over the three; and
 * the page (GET / for a browser, C only) with its longest stall.
 *
 * Metrics: profile_dump_d0, _d1, _d2 (ms), profile_dump_d2_rss (bytes of
 * peak growth), profile_dump_stall (ms), profile_dump_http_d1 (ms),
 * profile_dump_http_stall (ms), profile_dump_http_stall_all (ms, the
 * worst of debug=1, 2 and 0), profile_dump_http_page_stall (ms). */
#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include "bench.h"

static tt_chan *block;
static long parked;

static __attribute__((noinline)) void leaf(void)
{
	int v;
	parked++;
	int r = tt_chan_recv(block, &v, sizeof v, NULL); /* parked for good */
	if (r != 0)
		bench_fail("profile_dump", "tt_chan_recv", r);
	__asm__ volatile("");
}

static __attribute__((noinline)) void middle(void)
{
	leaf();
	__asm__ volatile("");
}

static void worker_a(void *arg)
{
	(void)arg;
	leaf();
}

static void worker_b(void *arg)
{
	(void)arg;
	middle();
}

static void worker_c(void *arg)
{
	(void)arg;
	middle();
	__asm__ volatile("");
}

static int count_only(void *arg, const void *d, size_t n)
{
	(void)d;
	*(size_t *)arg += n;
	return 0;
}

static long vm_hwm(void)
{
	FILE *f = fopen("/proc/self/status", "r");
	char line[256];
	long kb = 0;
	while (f && fgets(line, sizeof line, f))
		if (sscanf(line, "VmHWM: %ld kB", &kb) == 1)
			break;
	if (f)
		fclose(f);
	return kb * 1024;
}

static void reset_hwm(void)
{
	int fd = open("/proc/self/clear_refs", O_WRONLY);
	if (fd >= 0) {
		if (write(fd, "5", 1) != 1)
			perror("profile_dump: clear_refs");
		close(fd);
	}
}

static bool ticking = true;
static int64_t max_gap;

static void ticker(void *arg)
{
	(void)arg;
	int64_t last = tt_now();
	while (ticking) {
		tt_sleep(TT_MILLISECOND);
		int64_t now = tt_now();
		if (now - last - TT_MILLISECOND > max_gap)
			max_gap = now - last - TT_MILLISECOND;
		last = now;
	}
}

/* GET path from the debug server on port, reading the whole response
 * (Connection: close); ms taken. */
static double http_get(int port, const char *path, bool html)
{
	int64_t t0 = tt_now();
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0)
		bench_fail("profile_dump", "socket", -errno);
	struct sockaddr_in a = {.sin_family = AF_INET,
				.sin_port = htons((uint16_t)port),
				.sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	int r = tt_connect(fd, (struct sockaddr *)&a, sizeof a, TT_FOREVER);
	if (r)
		bench_fail("profile_dump", "tt_connect", r);
	char req[256];
	int rn = snprintf(req, sizeof req,
			  "GET %s HTTP/1.1\r\nHost: 127.0.0.1\r\n%s"
			  "Connection: close\r\n\r\n",
			  path, html ? "Accept: text/html\r\n" : "");
	if (tt_write(fd, req, (size_t)rn, TT_FOREVER) != (ssize_t)rn)
		bench_fail("profile_dump", "tt_write", -EIO);
	static char buf[1 << 16];
	char head[16] = "";
	size_t total = 0;
	ssize_t k;
	while ((k = tt_read(fd, buf, sizeof buf, TT_FOREVER)) > 0) {
		if (total == 0)
			memcpy(head, buf, k < 15 ? (size_t)k : 15);
		total += (size_t)k;
	}
	tt_close(fd);
	if (k < 0)
		bench_fail("profile_dump", "tt_read", k);
	if (strncmp(head, "HTTP/1.1 200", 12) != 0) {
		fprintf(stderr, "profile_dump: bad HTTP response: %s\n", head);
		exit(1);
	}
	return (double)(tt_now() - t0) / 1e6;
}

int main(int argc, char **argv)
{
	long n = bench_count(argc, argv, "profile_dump", 100000);
	if (tt_chan_make(&block, sizeof(int), 0) != 0)
		bench_fail("profile_dump", "tt_chan_make", -1);
	tt_func fns[3] = {worker_a, worker_b, worker_c};
	for (long i = 0; i < n; i++) {
		int64_t id = tt_go(fns[i % 3], NULL);
		if (id < 0)
			bench_fail("profile_dump", "tt_go", id);
	}
	tt_go(ticker, NULL);
	/* The symbolizer reads the program's DWARF on its first use (tens
	 * of milliseconds and a few MB, once per process); Go's tables are
	 * in the binary already. Warm it so the figures are per dump. */
	char warm[4096];
	tt_stack_dump(warm, sizeof warm, false);
	tt_sleep(5 * TT_MILLISECOND);
	max_gap = 0;
	double ms[3];
	long rss = 0;
	for (int d = 2; d >= 0; d--) {
		bench_sink s = {0};
		int64_t t0 = tt_now();
		int r = tt_profile_write("goroutine", d, bench_sink_write, &s);
		int64_t el = tt_now() - t0;
		if (r != 0)
			bench_fail("profile_dump", "tt_profile_write", r);
		ms[d] = (double)el / 1e6;
		free(s.p);
		tt_sleep(2 * TT_MILLISECOND);
	}
	/* The dump's own memory: debug=2 again, into a sink that keeps
	 * nothing, so the output's destination is not counted. */
	reset_hwm();
	rss = bench_rss();
	size_t bytes = 0;
	int r = tt_profile_write("goroutine", 2, count_only, &bytes);
	if (r != 0)
		bench_fail("profile_dump", "tt_profile_write", r);
	rss = vm_hwm() - rss;
	double stall = (double)max_gap / 1e6;

	/* The same profile at debug=1 through the debug server. */
	tt_debug_server *srv;
	r = tt_debug_serve("127.0.0.1:0", NULL, &srv);
	if (r)
		bench_fail("profile_dump", "tt_debug_serve", r);
	int port = tt_debug_port(srv);
	static const char d1[] = "/debug/pprof/goroutine?debug=1";
	http_get(port, d1, false); /* warm-up */
	max_gap = 0;
	double http_ms = http_get(port, d1, false);
	double http_stall = (double)max_gap / 1e6;
	double stall_all = http_stall;
	static const char *const more[] = {"/debug/pprof/goroutine?debug=2",
					   "/debug/pprof/goroutine?debug=0"};
	for (int i = 0; i < 2; i++) {
		max_gap = 0;
		http_get(port, more[i], false);
		if ((double)max_gap / 1e6 > stall_all)
			stall_all = (double)max_gap / 1e6;
	}
	max_gap = 0;
	http_get(port, "/", true);
	double page_stall = (double)max_gap / 1e6;
	tt_debug_shutdown(srv);
	ticking = false;
	printf("profile_dump_d0 %.2f ms\n", ms[0]);
	printf("profile_dump_d1 %.2f ms\n", ms[1]);
	printf("profile_dump_d2 %.2f ms\n", ms[2]);
	printf("profile_dump_d2_rss %ld bytes\n", rss);
	printf("profile_dump_stall %.2f ms\n", stall);
	printf("profile_dump_http_d1 %.2f ms\n", http_ms);
	printf("profile_dump_http_stall %.2f ms\n", http_stall);
	printf("profile_dump_http_stall_all %.2f ms\n", stall_all);
	printf("profile_dump_http_page_stall %.2f ms\n", page_stall);
	(void)parked;
	return 0;
}
