/* /debug/pprof/threadcreate: the process's OS threads and the stacks that
 * created them, served by the debug server on 127.0.0.1:0 in Go's debug=1
 * text and as profile.proto read by `go tool pprof`, and listed on the
 * index. This file is built twice: test_threadcreate without the preload
 * (every thread's creator unknown: one record with no stack) and
 * test_threadcreate_preload linked with libtether-preload.so
 * (TT_TEST_PRELOAD: the threads started by spawn_workers carry its stack). */
#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "testutil.h"
#include "tether/threads.h"

#define NWORKERS 3

static int block_pipe[2];
static pthread_t workers[NWORKERS];
static _Atomic int started;

static void *worker(void *arg)
{
	(void)arg;
	started++;
	char c;
	while (read(block_pipe[0], &c, 1) < 0 && errno == EINTR) {
	}
	return NULL;
}

static __attribute__((noinline)) void spawn_workers(void)
{
	for (int i = 0; i < NWORKERS; i++)
		TU_ASSERT_EQ(pthread_create(&workers[i], NULL, worker, NULL), 0);
	__asm__ volatile("" ::: "memory"); /* not a tail call */
	/* Until each has run: the preload learns a thread's id as it
	 * starts. */
	for (int i = 0; i < 5000 && started < NWORKERS; i++)
		usleep(1000);
	TU_ASSERT_EQ(started, NWORKERS);
}

static void join_workers(void)
{
	TU_ASSERT_EQ(close(block_pipe[1]), 0);
	for (int i = 0; i < NWORKERS; i++)
		TU_ASSERT_EQ(pthread_join(workers[i], NULL), 0);
	close(block_pipe[0]);
}

static int live_threads(void)
{
	DIR *d = opendir("/proc/self/task");
	TU_ASSERT(d != NULL);
	int n = 0;
	struct dirent *e;
	while ((e = readdir(d)))
		n += e->d_name[0] != '.';
	closedir(d);
	return n;
}

#ifdef TT_TEST_PRELOAD
/* The threads counted by the debug=1 records whose frames
 * name func (a compiler that unrolls the creating loop makes one record
 * per call site, as Go's profile would). */
static long records_naming(const char *text, const char *func)
{
	long sum = 0;
	const char *rec = strchr(text, '\n'); /* past the header */
	while (rec && *++rec) {
		const char *end = strstr(rec, "\n\n");
		size_t len = end ? (size_t)(end - rec) : strlen(rec);
		char *one = strndup(rec, len);
		TU_ASSERT(one != NULL);
		if (strstr(one, func))
			sum += strtol(one, NULL, 10);
		free(one);
		rec = end ? end + 1 : NULL;
	}
	return sum;
}
#endif

static void test_threadcreate(void **state)
{
	(void)state;
	TU_ASSERT_EQ(pipe(block_pipe), 0);
	spawn_workers();
#ifdef TT_TEST_PRELOAD
	TU_ASSERT(tt_threads_tracking());
#else
	TU_ASSERT(!tt_threads_tracking());
#endif
	tt_debug_server *srv = NULL;
	TU_ASSERT_OK(tt_debug_serve("127.0.0.1:0", NULL, &srv));
	int total = live_threads();
	TU_ASSERT_GE(total, NWORKERS + 1);

	/* debug=1: Go's count-profile text. */
	size_t len;
	char *text = tu_http_get_ok(tt_debug_port(srv), "/debug/pprof/threadcreate?debug=1", &len);
	char head[64];
	snprintf(head, sizeof head, "threadcreate profile: total %d\n", total);
	TU_ASSERT_MSG(strncmp(text, head, strlen(head)) == 0,
		      "want \"%s\", got:\n%s", head, text);
#ifdef TT_TEST_PRELOAD
	/* The workers were created by spawn_workers (and under TSan, its
	 * background thread too, started by the first pthread_create). */
	TU_ASSERT_MSG(records_naming(text, "\tspawn_workers+0x") ==
			      NWORKERS + TU_TSAN,
		      "%s", text);
	TU_ASSERT_CONTAINS(text, "test_threadcreate.c:");
	/* pthread_create itself (the interposer) is not shown. */
	TU_ASSERT_NOT_CONTAINS(text, "\tpthread_create");
	/* The main thread's creator is unknown: a record with no stack. */
	TU_ASSERT_MSG(strstr(text, "\n1 @\n") != NULL ||
			      strstr(text, " @\n\n") != NULL,
		      "no record without a stack:\n%s", text);
#else
	/* No creator is known: every thread is in one stackless record. */
	char rec[64];
	snprintf(rec, sizeof rec, "\n%d @\n\n", total);
	TU_ASSERT_CONTAINS(text, rec);
	TU_ASSERT_NOT_CONTAINS(text, "spawn_workers");
#endif
	/* debug=2 is debug=1, as in Go. */
	size_t len2;
	char *text2 = tu_http_get_ok(tt_debug_port(srv), "/debug/pprof/threadcreate?debug=2", &len2);
	TU_ASSERT_MSG(strncmp(text2, head, strlen(head)) == 0, "%s", text2);

	/* The index lists it with Go's description. */
	size_t ilen;
	char *idx = tu_http_get_ok(tt_debug_port(srv), "/debug/pprof/", &ilen);
	TU_ASSERT_CONTAINS(idx, "<a href=\"threadcreate?debug=1\">"
				"threadcreate</a>");
	TU_ASSERT_CONTAINS(idx, "Stack traces that led to the creation of "
				"new OS threads");

	/* debug=0: gzipped profile.proto. */
	size_t plen;
	char *pb = tu_http_get_ok(tt_debug_port(srv), "/debug/pprof/threadcreate", &plen);
	TU_ASSERT_GT(plen, 2);
	TU_ASSERT_EQ((unsigned char)pb[0], 0x1f); /* gzip */
	TU_ASSERT_EQ((unsigned char)pb[1], 0x8b);

	char go[4096];
	bool have_go = tu_find_go(go, sizeof go);
	if (have_go) {
		char file[4096];
		tu_write_temp("threadcreate.pb.gz", pb, plen, file, sizeof file);
		char *raw = tu_pprof(go, "-raw", file);
		TU_ASSERT_CONTAINS(raw, "PeriodType: threadcreate count");
		TU_ASSERT_CONTAINS(raw, "threadcreate/count");
		char *top = tu_pprof(go, "-top", file);
		char want[128];
		snprintf(want, sizeof want, "of %d total", total);
		TU_ASSERT_CONTAINS(top, want);
#ifdef TT_TEST_PRELOAD
		char *traces = tu_pprof(go, "-traces", file);
		TU_ASSERT_CONTAINS(traces, "Type: threadcreate");
		TU_ASSERT_CONTAINS(traces, "spawn_workers");
		free(traces);
#else
		TU_ASSERT_NOT_CONTAINS(raw, "spawn_workers");
#endif
		free(raw);
		free(top);
		tu_unlink_temp(file);
	}
	TU_ASSERT_OK(tt_debug_shutdown(srv));
	free(text);
	free(text2);
	free(idx);
	free(pb);
	join_workers();
	if (!have_go) {
		print_message("go not found in PATH or /usr/lib/go/bin "
			      "(Debian: golang-go): go tool pprof not run\n");
		skip();
	}
}

/* The call itself: name and bad levels. */
static void test_profile_write_threadcreate(void **state)
{
	(void)state;
	char path[] = "/tmp/tether-threadcreate-fd-XXXXXX";
	int fd = mkstemp(path);
	TU_ASSERT_GE(fd, 0);
	unlink(path);
	TU_ASSERT_OK(tt_profile_write_fd("threadcreate", 1, fd));
	char buf[4096];
	ssize_t n = pread(fd, buf, sizeof buf - 1, 0);
	TU_ASSERT_GT(n, 0);
	buf[n] = '\0';
	TU_ASSERT_MSG(strncmp(buf, "threadcreate profile: total ", 28) == 0,
		      "%s", buf);
	TU_ASSERT_GE(strtol(buf + 28, NULL, 10), 1);
	close(fd);
	TU_ASSERT_ERR(tt_profile_write_fd("threadcreate", 3, 1), -EINVAL);
	TU_ASSERT_ERR(tt_profile_write_fd("threads", 1, 1), -EINVAL);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_threadcreate),
		cmocka_unit_test(test_profile_write_threadcreate),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
