/* The CPU profile (tt_cpu_profile_start/stop, /debug/pprof/profile):
 * SIGPROF samples on every thread, read back with `go tool pprof`.
 *
 * A goroutine and a plain pthread each burn a fixed amount of their own
 * CPU time in a function of their own (burn_on_goroutine, burn_on_thread);
 * each function must own most of its thread's samples, the goroutine's
 * samples carry its name as a label, and the thread's stack reaches its
 * start function (frame pointers: this file is built with
 * -fno-omit-frame-pointer). Also: a second start is -EBUSY, the program's
 * own SIGPROF handler is back after stop, and the debug server's endpoint
 * end to end (seconds=1, a concurrent request's 500, bad seconds' 400).
 *
 * Under an emulator the kernel's CPU clocks tick for the emulator's own
 * work too, so the shares asked of each function are lower there (they
 * must still be there); qemu-user has no process_vm_readv, so a plain
 * thread's samples hold only their innermost frame and their depth is not
 * checked. Everything else is checked as natively. */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "testutil.h"

#define BURN_NS (700 * TT_MILLISECOND) /* CPU time each burner uses */

static int64_t thread_cpu_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
	return (int64_t)ts.tv_sec * TT_SECOND + ts.tv_nsec;
}

static _Atomic uint64_t sink;
/* Read at each call, so that the compiler makes no constant-propagated
 * clone of the burners (burn_on_goroutine.constprop.0), whose name the
 * symbolizer does not give on aarch64. */
static volatile int64_t burn_ns = BURN_NS;

/* Each burns ns of its thread's CPU time, in its own frame. */
static __attribute__((noinline)) void burn_on_goroutine(int64_t ns)
{
	int64_t end = thread_cpu_ns() + ns;
	uint64_t x = sink;
	while (thread_cpu_ns() < end)
		for (int i = 0; i < 20000; i++)
			x = x * 6364136223846793005ull + 1442695040888963407ull;
	sink = x;
	__asm__ volatile("" ::: "memory");
}

static __attribute__((noinline)) void burn_on_thread(int64_t ns)
{
	int64_t end = thread_cpu_ns() + ns;
	uint64_t x = sink;
	while (thread_cpu_ns() < end)
		for (int i = 0; i < 20000; i++)
			x = x * 2862933555777941757ull + 3037000493ull;
	sink = x;
	__asm__ volatile("" ::: "memory");
}

static void burner_goroutine(void *arg)
{
	burn_on_goroutine(burn_ns);
	__asm__ volatile("" ::: "memory"); /* not a tail call */
	tu_done(arg);
}

static void *burner_thread(void *arg)
{
	burn_on_thread(arg ? *(int64_t *)arg : burn_ns);
	__asm__ volatile("" ::: "memory");
	return NULL;
}

/* ---- go tool pprof ---------------------------------------------------------- */

/* Samples of `-raw` output whose stack has a frame naming func (and, when
 * label is set, the label name:[label]); *total gets every sample. -raw
 * prints each sample as "   count   nanoseconds: loc loc ...", then its
 * labels on lines of their own ("                name:[burner]"); each
 * location as "     7: 0x4012ab M=1 func file:line s=0", an inlined
 * frame on a following line without an id. */
static long raw_samples(const char *raw, const char *func, const char *label,
			long *total)
{
	const char *samples = strstr(raw, "\nSamples:\n");
	const char *locs = strstr(raw, "\nLocations\n");
	TU_ASSERT_MSG(samples && locs && samples < locs, "-raw:\n%s", raw);
	/* Location ids whose frames name func. */
	enum { MAXLOC = 4096 };
	static bool names[MAXLOC];
	memset(names, 0, sizeof names);
	long cur = -1;
	for (const char *l = locs + 11; *l && strncmp(l, "Mappings", 8);) {
		const char *eol = strchr(l, '\n');
		size_t n = eol ? (size_t)(eol - l) : strlen(l);
		char *one = strndup(l, n);
		TU_ASSERT(one != NULL);
		char *end;
		long id = strtol(one, &end, 10);
		if (end != one && *end == ':')
			cur = id;
		if (cur >= 0 && cur < MAXLOC && strstr(one, func))
			names[cur] = true;
		free(one);
		if (!eol)
			break;
		l = eol + 1;
	}
	long sum = 0, all = 0;
	const char *l = strchr(samples + 10, '\n'); /* past the column names */
	TU_ASSERT(l != NULL);
	l++;
	while (l < locs) {
		const char *eol = strchr(l, '\n');
		char *one = strndup(l, (size_t)(eol - l));
		TU_ASSERT(one != NULL);
		char *end;
		long n = strtol(one, &end, 10);
		char *colon = strchr(one, ':');
		if (end == one || !colon || strchr(one, '[')) {
			free(one);
			l = eol + 1;
			continue;
		}
		bool has = false;
		for (char *t = colon + 1;;) {
			long id = strtol(t, &end, 10);
			if (end == t)
				break;
			has |= id >= 0 && id < MAXLOC && names[id];
			t = end;
		}
		free(one);
		/* Its label lines. */
		bool lab = !label;
		l = eol + 1;
		while (l < locs) {
			eol = strchr(l, '\n');
			one = strndup(l, (size_t)(eol - l));
			TU_ASSERT(one != NULL);
			bool is_label = strstr(one, ":[") != NULL;
			if (is_label && label) {
				char want[128];
				snprintf(want, sizeof want, "name:[%s]", label);
				lab |= strstr(one, want) != NULL;
			}
			free(one);
			if (!is_label)
				break;
			l = eol + 1;
		}
		all += n;
		if (has && lab)
			sum += n;
	}
	*total = all;
	return sum;
}

/* Samples of `-top` whose flat line names func ("flat flat% sum% cum
 * cum% name"): its flat time in ms. */
static double top_flat_ms(const char *top, const char *func)
{
	for (const char *l = top; l && *l; l = strchr(l, '\n'), l = l ? l + 1 : l) {
		const char *eol = strchr(l, '\n');
		size_t len = eol ? (size_t)(eol - l) : strlen(l);
		char *one = strndup(l, len);
		TU_ASSERT(one != NULL);
		char name[256] = "";
		double flat;
		char unit[8] = "";
		int ok = sscanf(one, " %lf%7[a-z]%*s %*s %*s %*s %255s", &flat,
				unit, name) == 3;
		free(one);
		if (!ok || strcmp(name, func) != 0)
			continue;
		if (strcmp(unit, "s") == 0)
			return flat * 1000;
		if (strcmp(unit, "ms") == 0)
			return flat;
		if (strcmp(unit, "us") == 0)
			return flat / 1000;
		return 0;
	}
	return 0;
}

static char *write_tmp(const void *data, size_t len)
{
	static char path[64];
	snprintf(path, sizeof path, "/tmp/tether-cpuprofile-XXXXXX");
	int fd = mkstemp(path);
	TU_ASSERT_GE(fd, 0);
	TU_ASSERT_EQ(write(fd, data, len), (ssize_t)len);
	close(fd);
	return path;
}

/* Checks a CPU profile (file) made while the burners ran: the goroutine
 * one, and a thread started by `thread` (NULL: none). */
static void check_burn_profile(const char *file, bool goroutine,
			       const char *thread)
{
	char go[4096];
	if (!tu_find_go(go, sizeof go)) {
		print_message("go not installed (Debian: golang-go): "
			      "go tool pprof not run\n");
		skip();
	}
	char *top = tu_pprof(go, "-top -nodecount=30", file);
	TU_ASSERT_CONTAINS(top, "Type: cpu");
	/* Most of each burner's CPU is in its function: natively >= 50% of
	 * BURN_NS (the clock ticks; a few samples fall in the loop's
	 * clock reads, in the kernel's vDSO); under an emulator, some. */
	double want = tu_emulated() ? 1 : 0.5 * (double)BURN_NS / 1e6;
	/* On a loaded machine (a sanitizer build, two suites at once) a
	 * share of the signals comes late or merges: half the bound. */
	want /= 2;
	if (goroutine) {
		double ms = top_flat_ms(top, "burn_on_goroutine");
		TU_ASSERT_MSG(ms >= want, "burn_on_goroutine: %.0f ms flat, "
			      "want >= %.0f:\n%s", ms, want, top);
	}
	if (thread) {
		/* The thread is armed by a rescan (every 100 ms, later on a
		 * loaded machine) after it starts: it may burn a while
		 * unsampled. */
		double ms = top_flat_ms(top, "burn_on_thread");
		TU_ASSERT_MSG(ms >= want / 2, "burn_on_thread: %.0f ms flat, "
			      "want >= %.0f:\n%s", ms, want / 2, top);
	}
	char *raw = tu_pprof(go, "-raw", file);
	TU_ASSERT_CONTAINS(raw, "samples/count cpu/nanoseconds");
	TU_ASSERT_CONTAINS(raw, "Period: 10000000");
	long total;
	if (goroutine) {
		/* Every goroutine sample is labelled with its name, and its
		 * stack reaches the goroutine's function. */
		long f = raw_samples(raw, "burn_on_goroutine", NULL, &total);
		long lab = raw_samples(raw, "burn_on_goroutine", "burner",
				       &total);
		long up = raw_samples(raw, "burner_goroutine", "burner",
				      &total);
		TU_ASSERT_GT(f, 0);
		TU_ASSERT_MSG(lab == f, "%ld of %ld samples labelled:\n%s",
			      lab, f, raw);
		TU_ASSERT_MSG(up >= f * 9 / 10,
			      "%ld of %ld stacks reach burner_goroutine:\n%s",
			      up, f, raw);
		char *tags = tu_pprof(go, "-tags", file);
		TU_ASSERT_CONTAINS(tags, "name:");
		TU_ASSERT_CONTAINS(tags, "burner");
		/* The goroutine's label set, beside its name. */
		TU_ASSERT_CONTAINS(tags, "job:");
		TU_ASSERT_CONTAINS(tags, "burn");
		TU_ASSERT_CONTAINS(raw, "job:[burn]");
		free(tags);
	}
	if (thread) {
		long f = raw_samples(raw, "burn_on_thread", NULL, &total);
		long up = raw_samples(raw, thread, NULL, &total);
		long lab = raw_samples(raw, "burn_on_thread", "burner",
				       &total);
		TU_ASSERT_GT(f, 0);
		TU_ASSERT_EQ(lab, 0); /* a thread has no goroutine name */
		/* A thread's own stack has no known bounds: its frames are
		 * read with process_vm_readv, which qemu-user does not
		 * implement (ENOSYS), so there its samples have the
		 * innermost frame only. */
		if (tu_emulated())
			print_message("emulator: the depth of the thread's "
				      "stacks is not checked (%ld of %ld reach "
				      "%s)\n", up, f, thread);
		else
			TU_ASSERT_MSG(up >= f * 9 / 10,
			      "%ld of %ld stacks reach %s:\n%s", up, f,
			      thread, raw);
	}
	free(raw);
	free(top);
}

/* ---- tests -------------------------------------------------------------------- */

static void test_cpu_profile_goroutine_and_thread(void **state)
{
	(void)state;
	char path[] = "/tmp/tether-cpuprofile-XXXXXX";
	int fd = mkstemp(path);
	TU_ASSERT_GE(fd, 0);
	TU_ASSERT_OK(tt_cpu_profile_start_fd(0, fd));
	TU_ASSERT(tt_cpu_profile_running());

	/* The thread starts after the profile: it is armed by the rescan. */
	pthread_t t;
	TU_ASSERT_EQ(pthread_create(&t, NULL, burner_thread, NULL), 0);
	tt_chan *done = tu_chan(0, 1);
	tt_go_attr attr = {.name = "burner", .labels = TT_LABELS("job", "burn")};
	tu_go_with(&attr, burner_goroutine, done);
	TU_WAIT_DONE(done, 1, 120 * TT_SECOND);
	TU_ASSERT_EQ(pthread_join(t, NULL), 0);
	tt_chan_release(done);

	TU_ASSERT_OK(tt_cpu_profile_stop());
	TU_ASSERT(!tt_cpu_profile_running());
	close(fd);
	check_burn_profile(path, true, "burner_thread");
	unlink(path);
}

static int sink_write(void *arg, const void *data, size_t len)
{
	(void)data;
	*(size_t *)arg += len;
	return 0;
}

static void test_cpu_profile_busy_and_args(void **state)
{
	(void)state;
	size_t got = 0;
	TU_ASSERT_ERR(tt_cpu_profile_start(0, NULL, NULL), -EINVAL);
	TU_ASSERT_ERR(tt_cpu_profile_start(-1, sink_write, &got), -EINVAL);
	TU_ASSERT_ERR(tt_cpu_profile_start(1001, sink_write, &got), -EINVAL);
	TU_ASSERT_ERR(tt_cpu_profile_start_fd(0, -1), -EINVAL);
	TU_ASSERT_ERR(tt_cpu_profile_stop(), -EINVAL);
	TU_ASSERT_OK(tt_cpu_profile_start(0, sink_write, &got));
	TU_ASSERT_ERR(tt_cpu_profile_start(0, sink_write, &got), -EBUSY);
	TU_ASSERT_CONTAINS(tt_last_error(), "cpu profiling already in use");
	TU_ASSERT_ERR(tt_cpu_profile_start_fd(0, 1), -EBUSY);
	TU_ASSERT_EQ(got, 0);
	TU_ASSERT_OK(tt_cpu_profile_stop());
	TU_ASSERT_GT(got, 20); /* a gzipped profile, even with no sample */
	TU_ASSERT_ERR(tt_cpu_profile_stop(), -EINVAL);
	/* And again, at another rate. */
	got = 0;
	TU_ASSERT_OK(tt_cpu_profile_start(250, sink_write, &got));
	TU_ASSERT_OK(tt_cpu_profile_stop());
	TU_ASSERT_GT(got, 20);
}

static _Atomic int own_hits;
static void own_handler(int sig, siginfo_t *si, void *uc)
{
	(void)sig;
	(void)si;
	(void)uc;
	own_hits++;
}

static void test_cpu_profile_restores_sigprof(void **state)
{
	(void)state;
	struct sigaction sa, before, after;
	memset(&sa, 0, sizeof sa);
	sa.sa_sigaction = own_handler;
	sa.sa_flags = SA_SIGINFO;
	sigemptyset(&sa.sa_mask);
	TU_ASSERT_EQ(sigaction(SIGPROF, &sa, &before), 0);
	size_t got = 0;
	TU_ASSERT_OK(tt_cpu_profile_start(0, sink_write, &got));
	struct sigaction during;
	TU_ASSERT_EQ(sigaction(SIGPROF, NULL, &during), 0);
	TU_ASSERT(during.sa_sigaction != own_handler);
	TU_ASSERT(during.sa_flags & SA_ONSTACK);
	TU_ASSERT(during.sa_flags & SA_RESTART);
	/* A SIGPROF not from a profiling timer is no sample, and does not
	 * reach the program's handler meanwhile either. */
	raise(SIGPROF);
	TU_ASSERT_EQ(own_hits, 0);
	TU_ASSERT_OK(tt_cpu_profile_stop());
	TU_ASSERT_EQ(sigaction(SIGPROF, NULL, &after), 0);
	TU_ASSERT(after.sa_sigaction == own_handler);
	TU_ASSERT(after.sa_flags & SA_SIGINFO);
	raise(SIGPROF);
	TU_ASSERT_EQ(own_hits, 1);
	TU_ASSERT_EQ(sigaction(SIGPROF, &before, NULL), 0);
}

/* ---- HTTP ---------------------------------------------------------------------- */

/* GET target over HTTP/1.0; the status, and the body in *body (*len). */
static int http_get(tt_debug_server *srv, const char *target, char **body,
		    size_t *len)
{
	tu_http_resp r = tu_http_req(tt_debug_port(srv), "GET", target, NULL,
				     60 * TT_SECOND);
	*body = r.body;
	*len = r.body_len;
	free(r.head);
	return r.status;
}

typedef struct fetch {
	tt_debug_server *srv;
	const char *target;
	int status;
	char *body;
	size_t len;
	tt_chan *done;
} fetch;

static void fetch_main(void *arg)
{
	fetch *f = arg;
	f->status = http_get(f->srv, f->target, &f->body, &f->len);
	tu_done(f->done);
}

static _Atomic bool stop_burn;
static void *burn_until_stopped(void *arg)
{
	(void)arg;
	while (!stop_burn)
		burn_on_thread(burn_ns / 35); /* 20 ms */
	return NULL;
}

static void ticker(void *arg)
{
	/* Counts its wake-ups: the thread's scheduler keeps running while
	 * the profile request waits. */
	_Atomic int *n = arg;
	for (int i = 0; i < 100000; i++) {
		tt_sleep(10 * TT_MILLISECOND);
		if (*n < 0)
			break;
		(*n)++;
	}
	*n = -2; /* gone */
}

static void test_cpu_profile_http(void **state)
{
	(void)state;
	tt_debug_server *srv = NULL;
	TU_ASSERT_OK(tt_debug_serve("127.0.0.1:0", NULL, &srv));
	char *body;
	size_t len;

	/* The index lists it with Go's words. */
	TU_ASSERT_EQ(http_get(srv, "/debug/pprof/", &body, &len), 200);
	TU_ASSERT_CONTAINS(body, "href=\"profile\"");
	TU_ASSERT_CONTAINS(body, "CPU profile. You can specify the duration "
				 "in the seconds GET parameter.");
	free(body);

	/* Bad durations. */
	const char *bad[] = {"0", "-1", "abc", "3601", "1.5", "", "99999999999"};
	for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
		char target[64];
		snprintf(target, sizeof target,
			 "/debug/pprof/profile?seconds=%s", bad[i]);
		TU_ASSERT_EQ(http_get(srv, target, &body, &len), 400);
		TU_ASSERT_CONTAINS(body, "seconds must be");
		free(body);
	}
	TU_ASSERT(!tt_cpu_profile_running());

	/* A thread burns while a profile of 2 s is taken; a second request
	 * meanwhile gets Go's 500; the scheduler's other goroutines run. */
	stop_burn = false;
	pthread_t t;
	TU_ASSERT_EQ(pthread_create(&t, NULL, burn_until_stopped, NULL), 0);
	_Atomic int ticks = 0;
	tu_go(ticker, &ticks);
	fetch f = {.srv = srv, .target = "/debug/pprof/profile?seconds=2",
		   .done = tu_chan(0, 1)};
	tu_go(fetch_main, &f);
	TU_WAIT_FOR(tt_cpu_profile_running(), 10 * TT_SECOND);
	int ticks0 = ticks;
	TU_ASSERT_EQ(http_get(srv, "/debug/pprof/profile?seconds=1", &body,
			      &len),
		     500);
	TU_ASSERT_CONTAINS(body, "Could not enable CPU profiling: cpu "
				 "profiling already in use");
	free(body);
	TU_WAIT_DONE(f.done, 1, 60 * TT_SECOND);
	int ticks1 = ticks;
	ticks = -1;
	TU_WAIT_FOR(ticks == -2, 10 * TT_SECOND);
	stop_burn = true;
	TU_ASSERT_EQ(pthread_join(t, NULL), 0);
	TU_ASSERT_EQ(f.status, 200);
	/* 2 s of 10 ms sleeps: natively ~200 wake-ups; at least 20. */
	TU_ASSERT_MSG(ticks1 - ticks0 >= 20, "%d ticks while profiling",
		      ticks1 - ticks0);
	TU_ASSERT_GT(f.len, 20);
	TU_ASSERT_EQ((unsigned char)f.body[0], 0x1f); /* gzip */
	char *file = write_tmp(f.body, f.len);
	free(f.body);
	tt_chan_release(f.done);
	check_burn_profile(file, false, "burn_until_stopped");
	unlink(file);
	tu_pause();
	TU_ASSERT_OK(tt_debug_shutdown(srv));
}

/* The server's shutdown ends a profile request that is waiting. */
static void test_cpu_profile_http_shutdown(void **state)
{
	(void)state;
	tt_debug_server *srv = NULL;
	TU_ASSERT_OK(tt_debug_serve("127.0.0.1:0", NULL, &srv));
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	TU_ASSERT_GE(fd, 0);
	struct sockaddr_in a = {.sin_family = AF_INET,
				.sin_port = htons((uint16_t)tt_debug_port(srv)),
				.sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	TU_ASSERT_OK(tt_connect(fd, (struct sockaddr *)&a, sizeof a,
				tt_deadline_in(5 * TT_SECOND)));
	const char req[] = "GET /debug/pprof/profile?seconds=600 HTTP/1.0\r\n"
			   "Host: 127.0.0.1\r\n\r\n";
	TU_ASSERT_EQ(send(fd, req, sizeof req - 1, MSG_NOSIGNAL),
		     (ssize_t)sizeof req - 1);
	TU_WAIT_FOR(tt_cpu_profile_running(), 10 * TT_SECOND);
	int64_t t0 = tt_now();
	TU_ASSERT_OK(tt_debug_shutdown(srv));
	TU_ASSERT(!tt_cpu_profile_running());
	TU_ASSERT_LT(tt_now() - t0, 10 * TT_SECOND);
	/* The client sees the connection end, with no profile. */
	char buf[256];
	ssize_t n = tt_read(fd, buf, sizeof buf, tt_deadline_in(5 * TT_SECOND));
	TU_ASSERT_EQ(n, 0);
	close(fd);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		TU_TEST(test_cpu_profile_busy_and_args),
		TU_TEST(test_cpu_profile_restores_sigprof),
		TU_TEST(test_cpu_profile_goroutine_and_thread),
		TU_TEST(test_cpu_profile_http),
		TU_TEST(test_cpu_profile_http_shutdown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
