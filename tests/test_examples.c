/* Every example, run as a program and its output checked. */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "testutil.h"

/* Run build/examples/<name> with args; capture stdout (and stderr, with
 * 2>&1) into a malloc'd string; return the exit status (-1 if it did not
 * exit normally). */
static int run_example(const char *name, const char *args, char **out)
{
	const char *dir = getenv("TETHER_BUILD_DIR");
	const char *emu = getenv("TETHER_EMULATOR");
	char cmd[1024];
	snprintf(cmd, sizeof cmd, "%s %s/examples/%s %s 2>&1",
		 emu ? emu : "", dir ? dir : "build", name, args);
	FILE *p = popen(cmd, "r");
	assert_non_null(p);
	size_t cap = 4096, len = 0;
	char *buf = malloc(cap);
	assert_non_null(buf);
	size_t n;
	while ((n = fread(buf + len, 1, cap - len - 1, p)) > 0) {
		len += n;
		if (cap - len < 2) {
			cap *= 2;
			buf = realloc(buf, cap);
			assert_non_null(buf);
		}
	}
	buf[len] = '\0';
	int st = pclose(p);
	*out = buf;
	return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

/* The port massive printed in its "goroutines, grouped:" line, or -1. */
static long printed_port(const char *out)
{
	const char *k = "goroutines, grouped: http://127.0.0.1:";
	const char *p = strstr(out, k);
	return p ? strtol(p + strlen(k), NULL, 10) : -1;
}

/* The whole suite runs with 127.0.0.1:11181 (massive's default port)
 * taken, as on a machine where the demo is running: an example test that
 * does not ask for port 0 fails. */
static int busy_fd = -1;

static int occupy_default_port(void **state)
{
	(void)state;
	busy_fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (busy_fd < 0)
		return -1;
	struct sockaddr_in a = {.sin_family = AF_INET,
				.sin_port = htons(11181)};
	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (bind(busy_fd, (struct sockaddr *)&a, sizeof a) != 0 ||
	    listen(busy_fd, 1) != 0) {
		/* Someone else holds it already: just as busy. */
		if (errno != EADDRINUSE)
			return -1;
	}
	return 0;
}

static int free_default_port(void **state)
{
	(void)state;
	if (busy_fd >= 0)
		close(busy_fd);
	return 0;
}

static void test_hello(void **state)
{
	(void)state;
	char *out;
	assert_int_equal(run_example("hello", "", &out), 0);
	assert_string_equal(out, "job 1\njob 2\njob 3\nworker done\n");
	free(out);
}

/* The worker pool: every fourth job times out; nothing is left running
 * (the goroutines released what they were handed, the debug server shut
 * down). The same lines as its Go twin, examples/go/workers. */
static void test_workers(void **state)
{
	(void)state;
	char *out;
	assert_int_equal(run_example("workers", "", &out), 0);
	TU_ASSERT_CONTAINS(out, "debug server on 127.0.0.1:");
	TU_ASSERT_CONTAINS(out, "\n12 jobs, 9 done, 3 timed out\n"
				"goroutines left: 1\n");
	free(out);
	assert_int_equal(run_example("workers", "--jobs 40 --workers 7", &out),
			 0);
	TU_ASSERT_CONTAINS(out, "\n40 jobs, 30 done, 10 timed out\n");
	free(out);
	assert_int_equal(run_example("workers", "--workers 0", &out), 1);
	TU_ASSERT_CONTAINS(out, "workers: bad flags");
	free(out);
}

static void test_massive(void **state)
{
	(void)state;
	char *out;
	/* --port 0: a free port, so that tests running at once do not
	 * collide on 11181. */
	/* Under ASan, LeakSanitizer scans every live goroutine's whole
	 * (256 KiB) stack at exit, faulting in each page: a few seconds
	 * for 2,000, minutes for 20,000 on a busy machine. */
	long count = TU_SCALE(20000, 2000);
	char args[128], want[128];
	snprintf(args, sizeof args, "--count %ld --seconds 0 --port 0", count);
	assert_int_equal(run_example("massive", args, &out), 0);
	snprintf(want, sizeof want, "started %ld goroutines in ", count);
	TU_ASSERT_CONTAINS(out, want);
	snprintf(want, sizeof want, "live goroutines: %ld\n", count + 1);
	TU_ASSERT_CONTAINS(out, want);
	/* One page per parked goroutine, give or take page tables. */
	const char *rss = strstr(out, "resident memory per goroutine: ");
	assert_non_null(rss);
	long bytes = strtol(rss + strlen("resident memory per goroutine: "),
			    NULL, 10);
	/* (Under TSan, each goroutine is a fiber with TSan's own state of
	 * several pages, and its stack pages have shadow memory.) */
	TU_ASSERT_RANGE(bytes, 1024, TU_TSAN ? 16 * 4096 : 3 * 4096 + 2048);
	TU_ASSERT_CONTAINS(out, "goroutines, grouped: http://127.0.0.1:");
	TU_ASSERT_CONTAINS(out, "/debug/pprof/");
	TU_ASSERT_NOT_CONTAINS(out, "http://127.0.0.1:0/");
	long port = printed_port(out);
	TU_ASSERT_MSG(port > 0 && port < 65536 && port != 11181,
		      "printed port %ld", port);
	TU_ASSERT_CONTAINS(out, "done\n");
	free(out);
}

static void test_massive_shared_stack(void **state)
{
	(void)state;
	char *out;
	assert_int_equal(run_example("massive",
				     "--count 20000 --seconds 0 --port 0 "
				     "--shared-stack",
				     &out),
			 0);
	long port = printed_port(out);
	TU_ASSERT_MSG(port > 0 && port != 11181, "printed port %ld", port);
	TU_ASSERT_CONTAINS(out, "started 20000 goroutines in ");
	TU_ASSERT_CONTAINS(out, "live goroutines: 20001\n");
	/* A record and a copy of a few frames: well under a page. Under
	 * ASan, its quarantine and larger frames make the resident figure
	 * vary by a page or so between runs; the memory target itself is
	 * bench/spawn_park_shared's. */
	const char *rss = strstr(out, "resident memory per goroutine: ");
	assert_non_null(rss);
	long bytes = strtol(rss + strlen("resident memory per goroutine: "),
			    NULL, 10);
	TU_ASSERT_RANGE(bytes, 100,
			TU_TSAN ? 16 * 4096 : TU_ASAN ? 8192 : 2048);
	TU_ASSERT_CONTAINS(out, "done\n");
	free(out);
}

static void test_massive_bad_args(void **state)
{
	(void)state;
	char *out;
	assert_int_equal(run_example("massive", "--count -5", &out), 2);
	TU_ASSERT_CONTAINS(out, "--count needs a number");
	free(out);
	assert_int_equal(run_example("massive", "--bogus", &out), 2);
	TU_ASSERT_CONTAINS(out, "unknown argument --bogus");
	free(out);
	assert_int_equal(run_example("massive", "--seconds", &out), 2);
	TU_ASSERT_CONTAINS(out, "--seconds needs a number");
	free(out);
	assert_int_equal(run_example("massive", "--port 70000", &out), 2);
	TU_ASSERT_CONTAINS(out, "--port needs a number");
	free(out);
}

/* The growing server: every third lookup outlives its handler's
 * timeout and blocks for good sending its answer; fixed, it leaves the
 * answer in the channel's buffer and ends. The same lines as its Go
 * twin, examples/go/growing. */
static void test_growing(void **state)
{
	(void)state;
	char *out;
	assert_int_equal(run_example("growing",
				     "--requests 30 --every 5 --seconds 0",
				     &out),
			 0);
	TU_ASSERT_CONTAINS(out, "debug page: http://127.0.0.1:");
	TU_ASSERT_NOT_CONTAINS(out, "http://127.0.0.1:0/");
	TU_ASSERT_CONTAINS(out, "\n30 requests, 10 timed out\n"
				"goroutines: 16 (main, 4 workers, the debug "
				"server, 10 lookups stuck sending)\ndone\n");
	free(out);
	assert_int_equal(run_example("growing",
				     "--requests 12 --every 5 --workers 2 "
				     "--fixed",
				     &out),
			 0);
	TU_ASSERT_CONTAINS(out, "\n12 requests, 4 timed out\n"
				"goroutines: 4 (main, 2 workers, the debug "
				"server, 0 lookups stuck sending)\ndone\n");
	free(out);
	assert_int_equal(run_example("growing", "--every x", &out), 2);
	TU_ASSERT_CONTAINS(out, "--every needs a number");
	free(out);
	assert_int_equal(run_example("growing", "--bogus", &out), 2);
	TU_ASSERT_CONTAINS(out, "unknown argument --bogus");
	free(out);
}

/* examples/go/growing, where Go is installed: the same lines. */
static void test_growing_go_twin(void **state)
{
	(void)state;
	if (system("go version >/dev/null 2>&1") != 0) {
		print_message("skipped: no go on PATH\n");
		skip();
	}
	/* The sources are next to this file's directory. */
	char dir[1024];
	snprintf(dir, sizeof dir, "%s", __FILE__);
	char *slash = strrchr(dir, '/');
	TU_ASSERT(slash != NULL);
	*slash = '\0';
	char cmd[1400];
	snprintf(cmd, sizeof cmd,
		 "cd '%s/../examples/go' && timeout 300 go run ./growing "
		 "--requests 30 --every 5 --seconds 0 2>&1",
		 dir);
	FILE *p = popen(cmd, "r");
	TU_ASSERT(p != NULL);
	char out[4096];
	size_t n = fread(out, 1, sizeof out - 1, p);
	out[n] = '\0';
	TU_ASSERT_EQ(pclose(p), 0);
	TU_ASSERT_CONTAINS(out, "debug page: http://127.0.0.1:");
	TU_ASSERT_CONTAINS(out, "\n30 requests, 10 timed out\n"
				"goroutines: 16 (main, 4 workers, the debug "
				"server, 10 lookups stuck sending)\ndone\n");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_hello),
		cmocka_unit_test(test_workers),
		cmocka_unit_test(test_massive),
		cmocka_unit_test(test_massive_shared_stack),
		cmocka_unit_test(test_massive_bad_args),
		cmocka_unit_test(test_growing),
		cmocka_unit_test(test_growing_go_twin),
	};
	return cmocka_run_group_tests(tests, occupy_default_port,
				      free_default_port);
}
