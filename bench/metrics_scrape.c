/* metrics_scrape — what a Prometheus scrape of /metrics costs with N
 * goroutines parked (default 1,000,000, on shared stacks so that a
 * million fit in memory), and how long it holds up the program's other
 * goroutines.
 *
 *   metrics_scrape_p50, _max   ms from sending GET /metrics to having
 *                              read the whole response, over -k scrapes
 *                              (default 50), from a client thread
 *   metrics_stall_max          ms: the worst lateness of a goroutine that
 *                              sleeps 1 ms in a loop on the serving
 *                              thread, while the scrapes run
 *   metrics_stall_base_max     the same over as many ticks with no
 *                              scrape (what the machine adds by itself)
 *   metrics_thread_cpu         µs of the serving thread's CPU time per
 *                              scrape (its CPU time while scraping, less
 *                              the ticker's own, measured alone): every
 *                              instruction of a scrape runs there, so
 *                              this bounds the stall from above without
 *                              the machine's noise
 *   metrics_handler_p50, _max  ms the serving thread spends, without
 *                              parking, gathering and formatting one
 *                              response (tt__debug_metrics, called
 *                              directly -k times): the longest any other
 *                              goroutine of the thread can be held up by
 *                              a scrape (the rest of a scrape parks in
 *                              the poller between system calls)
 *   metrics_bytes              bytes of one response
 *
 * The goroutines park four ways (channel receive, select, sync.Mutex,
 * sync.WaitGroup), so the wait-reason rows are not all zero. Each
 * response is checked: go_goroutines must count the N. No Go twin (the
 * Prometheus client is not in Go's standard library), so bench/run does
 * not run it: see docs/BENCHMARKS.md.
 *
 *   build/bench/metrics_scrape [-n N] [-k SCRAPES]
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdbool.h>
#include <sys/socket.h>
#include <time.h>

#include "bench.h"

static tt_chan *never;
static tt_mutex *mu;
static tt_waitgroup *wg;
static long parked_n;

static void park_recv(void *p)
{
	(void)p;
	parked_n++;
	if (tt_chan_recv(never, NULL, 0, NULL) != 0) /* parked for good */
		bench_fail("metrics_scrape", "tt_chan_recv", -1);
}

static void park_select(void *p)
{
	(void)p;
	tt_case cs[2] = {TT_CASE_RECV_DISCARD(never, NULL),
			 TT_CASE_RECV_DISCARD(NULL, NULL)};
	parked_n++;
	if (tt_select(cs, 2, TT_FOREVER) < 0) /* parked for good */
		bench_fail("metrics_scrape", "tt_select", -1);
}

static void park_mutex(void *p)
{
	(void)p;
	parked_n++;
	tt_mutex_lock(mu);
	tt_mutex_unlock(mu);
}

static void park_wg(void *p)
{
	(void)p;
	parked_n++;
	if (tt_wg_wait(wg) != 0) /* parked for good */
		bench_fail("metrics_scrape", "tt_wg_wait", -1);
}

/* ---- the ticker: lateness of 1 ms sleeps on the serving thread ---------- */

static volatile bool ticking;
static int64_t tick_max;  /* worst lateness since the last reset */
static long ticks;

static void ticker(void *p)
{
	(void)p;
	while (ticking) {
		int64_t t0 = tt_now();
		tt_sleep(TT_MILLISECOND);
		int64_t late = tt_now() - t0 - TT_MILLISECOND;
		if (late > tick_max)
			tick_max = late;
		ticks++;
	}
}

/* ---- the client thread ---------------------------------------------------- */

typedef struct client {
	int port;
	long k;
	int64_t *ns;       /* per scrape */
	size_t bytes;
	long long goroutines; /* go_goroutines of the last response */
	int err;
	volatile bool done;
} client;

static int64_t clock_ns(clockid_t id)
{
	struct timespec ts;
	clock_gettime(id, &ts);
	return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static int64_t now_ns(void)
{
	return clock_ns(CLOCK_MONOTONIC);
}

static char *scrape(int port, size_t *len)
{
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return NULL;
	struct sockaddr_in a = {.sin_family = AF_INET,
				.sin_port = htons((uint16_t)port),
				.sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	if (connect(fd, (struct sockaddr *)&a, sizeof a) != 0) {
		close(fd);
		return NULL;
	}
	static const char req[] = "GET /metrics HTTP/1.1\r\nHost: 127.0.0.1\r\n"
				  "Connection: close\r\n\r\n";
	if (send(fd, req, sizeof req - 1, MSG_NOSIGNAL) != sizeof req - 1) {
		close(fd);
		return NULL;
	}
	size_t cap = 1 << 15, n = 0;
	char *b = malloc(cap);
	for (ssize_t r; b && (r = read(fd, b + n, cap - n - 1)) > 0;) {
		n += (size_t)r;
		if (cap - n < 4096)
			b = realloc(b, cap *= 2);
	}
	close(fd);
	if (b)
		b[n] = '\0';
	*len = n;
	return b;
}

static void *client_main(void *p)
{
	client *c = p;
	for (long i = 0; i < c->k; i++) {
		int64_t t0 = now_ns();
		size_t n = 0;
		char *b = scrape(c->port, &n);
		c->ns[i] = now_ns() - t0;
		const char *g = b ? strstr(b, "\ngo_goroutines ") : NULL;
		if (!g || strncmp(b, "HTTP/1.1 200", 12) != 0) {
			c->err = 1;
			free(b);
			break;
		}
		c->goroutines = atoll(g + 15);
		const char *body = strstr(b, "\r\n\r\n");
		c->bytes = body ? n - (size_t)(body + 4 - b) : n;
		free(b);
		usleep(20 * 1000); /* a scrape every 20 ms */
	}
	c->done = true;
	return NULL;
}

/* The library's internal body writer (src/debug/debug.h); its buffer
 * is laid out as tt__buf there. */
typedef struct body_buf {
	char *data;
	size_t len, cap;
	int err;
} body_buf;
int tt__debug_metrics(body_buf *b);

static int cmp64(const void *a, const void *b)
{
	int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
	return x < y ? -1 : x > y;
}

int main(int argc, char **argv)
{
	long k = 50;
	int ac = 0;
	for (int i = 0; i < argc; i++) {
		if (i > 0 && strcmp(argv[i], "-k") == 0 && i + 1 < argc)
			k = atol(argv[++i]);
		else
			argv[ac++] = argv[i];
	}
	if (k < 1)
		k = 1;
	long n = bench_count(ac, argv, "metrics_scrape", 1000000);

	if (tt_chan_make(&never, 0, 0) || tt_mutex_make(&mu) ||
	    tt_wg_make(&wg) || tt_wg_add(wg, 1))
		bench_fail("metrics_scrape", "make", -ENOMEM);
	tt_mutex_lock(mu);
	tt_go_attr attr = {.shared_stack = true};
	tt_func fns[4] = {park_recv, park_select, park_mutex, park_wg};
	for (long i = 0; i < n; i++) {
		int64_t id = tt_go_with(&attr, fns[i & 3], NULL);
		if (id < 0)
			bench_fail("metrics_scrape", "tt_go_with", id);
	}
	while (parked_n < n)
		tt_yield();

	tt_debug_server *srv;
	int r = tt_debug_serve("127.0.0.1:0", NULL, &srv);
	if (r)
		bench_fail("metrics_scrape", "tt_debug_serve", r);

	/* The ticker alone first: the machine's own lateness. */
	ticking = true;
	tt_go(ticker, NULL);
	tt_sleep(50 * TT_MILLISECOND);
	tick_max = 0;
	long t0 = ticks;
	int64_t cpu0 = clock_ns(CLOCK_THREAD_CPUTIME_ID), w0 = now_ns();
	tt_sleep(k * 20 * TT_MILLISECOND);
	int64_t base_cpu = clock_ns(CLOCK_THREAD_CPUTIME_ID) - cpu0;
	int64_t base_wall = now_ns() - w0;
	int64_t base_max = tick_max;
	long base_ticks = ticks - t0;

	client c = {.port = tt_debug_port(srv), .k = k};
	c.ns = calloc((size_t)k, sizeof *c.ns);
	tick_max = 0;
	cpu0 = clock_ns(CLOCK_THREAD_CPUTIME_ID);
	w0 = now_ns();
	pthread_t th;
	if (pthread_create(&th, NULL, client_main, &c))
		bench_fail("metrics_scrape", "pthread_create", -EAGAIN);
	while (!c.done)
		tt_sleep(5 * TT_MILLISECOND);
	int64_t stall_max = tick_max;
	int64_t cpu = clock_ns(CLOCK_THREAD_CPUTIME_ID) - cpu0;
	int64_t wall = now_ns() - w0;
	ticking = false;
	pthread_join(th, NULL);
	if (c.err || c.goroutines < n) {
		fprintf(stderr, "metrics_scrape: bad response (go_goroutines "
				"%lld, want at least %ld)\n",
			c.goroutines, n);
		return 1;
	}
	int64_t *hn = calloc((size_t)k, sizeof *hn);
	for (long i = 0; i < k; i++) {
		body_buf b = {0};
		int64_t h0 = now_ns();
		int e = tt__debug_metrics(&b);
		hn[i] = now_ns() - h0;
		free(b.data);
		if (e)
			bench_fail("metrics_scrape", "tt__debug_metrics", e);
	}
	qsort(hn, (size_t)k, sizeof *hn, cmp64);
	qsort(c.ns, (size_t)k, sizeof *c.ns, cmp64);
	printf("metrics_scrape_p50 %.3f ms\n", (double)c.ns[k / 2] / 1e6);
	printf("metrics_scrape_max %.3f ms\n", (double)c.ns[k - 1] / 1e6);
	printf("metrics_stall_max %.3f ms\n", (double)stall_max / 1e6);
	printf("metrics_stall_base_max %.3f ms\n", (double)base_max / 1e6);
	double per = ((double)cpu - (double)base_cpu * (double)wall /
					    (double)base_wall) /
		     (double)k;
	printf("metrics_thread_cpu %.1f us\n", per / 1e3);
	printf("metrics_handler_p50 %.3f ms\n", (double)hn[k / 2] / 1e6);
	printf("metrics_handler_max %.3f ms\n", (double)hn[k - 1] / 1e6);
	printf("metrics_bytes %zu bytes\n", c.bytes);
	fprintf(stderr, "metrics_scrape: %ld goroutines, go_goroutines %lld, "
			"%ld scrapes, %ld base ticks\n",
		n, c.goroutines, k, base_ticks);
	fflush(stdout);
	/* The goroutines stay parked; exit at once, as spawn_park does. */
	_exit(0);
}
