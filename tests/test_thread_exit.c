/* tether tests — what happens to a scheduler when its thread ends: the
 * stacks go back to the system (include/tether/go.h), and goroutines left
 * parked are reported by the leak tools (include/tether/leak.h). */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "testutil.h"

/* VmRSS or VmSize of this process, in bytes, from /proc/self/status. */
static long long vm_bytes(const char *key)
{
	FILE *f = fopen("/proc/self/status", "r");
	if (f == NULL)
		return -1;
	char line[256];
	long long kib = -1;
	size_t k = strlen(key);
	while (fgets(line, sizeof line, f))
		if (strncmp(line, key, k) == 0 && line[k] == ':') {
			kib = strtoll(line + k + 1, NULL, 10);
			break;
		}
	fclose(f);
	return kib < 0 ? -1 : kib * 1024;
}

/* ---- finished threads give their stacks back ----------------------------- */

typedef struct crowd {
	tt_chan *gate; /* closed to let the crowd go */
	tt_chan *done; /* one token per goroutine that finished */
	int n;
	int failed;
} crowd;

static void crowd_member(void *p)
{
	crowd *c = p;
	char b;
	/* Touch a little of the stack, as real code does. */
	volatile char pad[2048];
	pad[0] = 1;
	pad[sizeof pad - 1] = pad[0];
	if (tt_chan_recv(c->gate, &b, 1, NULL) != 0 ||
	    tt_chan_send(c->done, NULL, 0) != 0)
		c->failed++;
}

/* A thread that has n goroutines (default stacks) alive at once, lets
 * them finish, and ends. */
static void *crowd_thread(void *p)
{
	crowd *c = p;
	c->failed = 0;
	if (tt_chan_make(&c->gate, 1, 0) || tt_chan_make(&c->done, 0, 0)) {
		c->failed = 1;
		return NULL;
	}
	for (int i = 0; i < c->n; i++)
		if (tt_go(crowd_member, c) <= 0)
			c->failed++;
	tt_chan_close(c->gate);
	for (int i = 0; i < c->n; i++)
		if (tt_chan_recv(c->done, NULL, 0, NULL) != 0)
			c->failed++;
	/* The senders were readied by the receives; one turn of the run
	 * queue lets each of them return. */
	tt_yield();
	tt_chan_release(c->gate);
	tt_chan_release(c->done);
	return NULL;
}

/* 100 threads one after another, each with 1,000 goroutines alive at
 * once: the stacks of a finished thread's scheduler used to stay mapped
 * (and, up to the pool's hot limit, resident): 403 MB resident and 8.1 GB
 * of address space after the 100 here. Now each thread's pool goes back
 * when it ends. */
static void test_thread_stacks_returned(void **state)
{
	(void)state;
	TU_REQUIRE_THREADS();
	if (tu_emulated()) {
		print_message("skipped under an emulator: "
			      "the emulator's own memory use hides the program's resident and mapped sizes\n");
		skip();
	}
	/* What a thread's own scheduler gives back: at two Ps its tt_go
	 * hands some goroutines to the Ps, whose pools keep their stacks. */
	tu_one_p();
	tt_runtime_info info;
	TU_ASSERT_OK(tt_runtime_info_get(&info));
	const int threads = TU_SCALE(100, 20), per = 1000;
	/* One thread first, so that whatever stays for the life of the
	 * process (malloc arenas, the symbolizer) is in the baseline. */
	crowd c = {.n = per};
	pthread_t t;
	assert_int_equal(pthread_create(&t, NULL, crowd_thread, &c), 0);
	tu_join_parked(t); /* P0 may be handed its goroutines */
	TU_ASSERT_EQ(c.failed, 0);
	TU_ASSERT_OK(tt_runtime_info_get(&info));
	int64_t mapped0 = info.stacks_mapped;
	long long rss0 = vm_bytes("VmRSS"), vsz0 = vm_bytes("VmSize");
	TU_ASSERT_GT(rss0, 0);
	TU_ASSERT_GT(vsz0, 0);

	long long rss_max = 0, vsz_max = 0;
	for (int i = 0; i < threads; i++) {
		c = (crowd){.n = per};
		assert_int_equal(pthread_create(&t, NULL, crowd_thread, &c), 0);
		tu_join_parked(t);
		TU_ASSERT_EQ(c.failed, 0);
		long long r = vm_bytes("VmRSS") - rss0;
		long long v = vm_bytes("VmSize") - vsz0;
		if (r > rss_max)
			rss_max = r;
		if (v > vsz_max)
			vsz_max = v;
	}
	TU_ASSERT_OK(tt_runtime_info_get(&info));
	print_message("%d threads x %d goroutines: stacks mapped %lld -> "
		      "%lld, VmRSS +%lld KiB, VmSize +%lld KiB at most\n",
		      threads, per, (long long)mapped0,
		      (long long)info.stacks_mapped, rss_max / 1024,
		      vsz_max / 1024);
	/* Every stack a finished thread carved is unmapped again. */
	TU_ASSERT_EQ(info.stacks_mapped, mapped0);
	/* Under ThreadSanitizer the process's sizes say nothing about the
	 * stacks: every byte a goroutine touches gets shadow memory and
	 * each goroutine a TSan fiber's state, which the runtime keeps
	 * after the stack is unmapped (+23 MB resident after 20 threads,
	 * against a bound of 8 MB). The count above is what still tells. */
	if (TU_TSAN) {
		print_message("skipped under TSan: its shadow memory hides "
			      "the program's resident and mapped sizes\n");
		skip();
	}
	/* Under ASan, likewise: the memory the threads free waits in its
	 * quarantine, resident, and the resident size after the same run
	 * varies from +2.6 to +11 MB (4 MB steps) with the load on the
	 * machine, at one P as at two. */
	if (TU_ASAN) {
		print_message("skipped under ASan: its quarantine of freed "
			      "memory hides the program's resident size\n");
		skip();
	}
	/* One thread's crowd is per * 4 KiB resident, per * (stack + guard)
	 * of address space; what stays after many must be less than two of
	 * them (nothing accumulates). */
	long long one_rss = (long long)per * 4096;
	long long one_vsz = (long long)per * (long long)(info.stack_size +
							  info.guard_size);
	TU_ASSERT_LT(rss_max, 2 * one_rss);
	TU_ASSERT_LT(vsz_max, 2 * one_vsz);
	TU_ASSERT_LT(vm_bytes("VmRSS") - rss0, one_rss);
	TU_ASSERT_LT(vm_bytes("VmSize") - vsz0, one_vsz / 2);
}

/* The same with shared-stack goroutines: the region, the helper's stack
 * and the records go back too. */
static void *shared_crowd_thread(void *p)
{
	crowd *c = p;
	c->failed = 0;
	if (tt_chan_make(&c->gate, 1, 0) || tt_chan_make(&c->done, 0, 0)) {
		c->failed = 1;
		return NULL;
	}
	tt_go_attr attr;
	memset(&attr, 0, sizeof attr);
	attr.shared_stack = true;
	for (int i = 0; i < c->n; i++)
		if (tt_go_with(&attr, crowd_member, c) <= 0)
			c->failed++;
	tt_chan_close(c->gate);
	for (int i = 0; i < c->n; i++)
		if (tt_chan_recv(c->done, NULL, 0, NULL) != 0)
			c->failed++;
	/* The senders were readied by the receives; one turn of the run
	 * queue lets each of them return. */
	tt_yield();
	tt_chan_release(c->gate);
	tt_chan_release(c->done);
	return NULL;
}

static void test_thread_shared_stack_returned(void **state)
{
	(void)state;
	TU_REQUIRE_THREADS();
	if (tu_emulated()) {
		print_message("skipped under an emulator: "
			      "the emulator's own memory use hides the program's resident and mapped sizes\n");
		skip();
	}
	crowd c = {.n = 100};
	pthread_t t;
	assert_int_equal(pthread_create(&t, NULL, shared_crowd_thread, &c), 0);
	tu_join_parked(t); /* P0 may be handed its goroutines */
	TU_ASSERT_EQ(c.failed, 0);
	tt_runtime_info info;
	TU_ASSERT_OK(tt_runtime_info_get(&info));
	int64_t mapped0 = info.stacks_mapped;
	long long vsz0 = vm_bytes("VmSize");
	const int threads = TU_SCALE(200, 50);
	for (int i = 0; i < threads; i++) {
		c = (crowd){.n = 100};
		assert_int_equal(
			pthread_create(&t, NULL, shared_crowd_thread, &c), 0);
		tu_join_parked(t);
		TU_ASSERT_EQ(c.failed, 0);
	}
	TU_ASSERT_OK(tt_runtime_info_get(&info));
	TU_ASSERT_EQ(info.stacks_mapped, mapped0);
	/* Each thread mapped a shared region (1 MiB, 4 MiB under ASan) and
	 * the helper's stack: 200 of them would be 200+ MiB. */
	TU_ASSERT_LT(vm_bytes("VmSize") - vsz0, 32LL << 20);
}

/* ---- goroutines left parked by a thread that ends ------------------------- */

static tt_chan *never; /* nobody ever sends on it */
static volatile int orphan_sink;

static void __attribute__((noinline)) orphan_worker(void *p)
{
	(void)p;
	char b;
	orphan_sink = tt_chan_recv(never, &b, 1, NULL);
}

static void __attribute__((noinline)) orphan_sleeper(void *p)
{
	(void)p;
	/* Not a tail call: the frame stays on the stack. */
	orphan_sink = tt_sleep(TT_MINUTE * 60);
}

static int64_t orphan_ids[3];
static pid_t orphan_tid;

static void *__attribute__((noinline)) orphan_thread(void *p)
{
	(void)p;
	orphan_tid = gettid();
	if (tt_chan_make(&never, 1, 0))
		return NULL;
	orphan_ids[0] = tt_go(orphan_worker, NULL);
	orphan_ids[1] = tt_go(orphan_worker, NULL);
	tt_go_attr attr;
	memset(&attr, 0, sizeof attr);
	attr.shared_stack = true;
	orphan_ids[2] = tt_go_with(&attr, orphan_sleeper, NULL);
	return NULL; /* the three stay parked */
}

static void run_orphan_thread(void)
{
	pthread_t t;
	TU_ASSERT_EQ(pthread_create(&t, NULL, orphan_thread, NULL), 0);
	tu_join_parked(t); /* P0 may be handed its goroutines */
	for (int i = 0; i < 3; i++)
		TU_ASSERT_GT(orphan_ids[i], 0);
}

static const tt_leaked *find_leaked(const tt_leak_list *l, int64_t id)
{
	for (size_t i = 0; i < l->n; i++)
		if (l->g[i].id == id)
			return &l->g[i];
	return NULL;
}

static int to_buf(void *arg, const void *data, size_t len)
{
	char **b = arg;
	size_t old = *b ? strlen(*b) : 0;
	char *n = realloc(*b, old + len + 1);
	if (n == NULL)
		return -ENOMEM;
	memcpy(n + old, data, len);
	n[old + len] = '\0';
	*b = n;
	return 0;
}

/* In a fresh process: a thread ends with three goroutines parked; the
 * main thread's leak check finds them, with the stacks they had, where
 * they were made, what they waited for and a note that their thread is
 * gone; their stacks were still given back. */
static void child_orphans_found(void)
{
	/* Orphans are the goroutines a thread's own scheduler runs: at two
	 * Ps its tt_go may hand them to a P, where they outlive it. */
	tu_one_p();
	tt_runtime_info info;
	TU_ASSERT_OK(tt_runtime_info_get(&info));
	int64_t mapped0 = info.stacks_mapped;
	int64_t n0 = tt_num_goroutine();
	run_orphan_thread();
	TU_ASSERT_OK(tt_runtime_info_get(&info));
	TU_ASSERT_EQ(info.stacks_mapped, mapped0);
	/* They still exist, as Go counts leaked goroutines. */
	TU_ASSERT_EQ(tt_num_goroutine(), n0 + 3);

	tt_leak_list l;
	TU_ASSERT_EQ(tt_leak_find(NULL, &l), 3);
	for (int i = 0; i < 3; i++) {
		const tt_leaked *g = find_leaked(&l, orphan_ids[i]);
		TU_ASSERT_MSG(g != NULL, "goroutine %lld not reported",
			      (long long)orphan_ids[i]);
		TU_ASSERT_CONTAINS(g->stack, i < 2 ? "orphan_worker"
						   : "orphan_sleeper");
		TU_ASSERT_CONTAINS(g->stack, "test_thread_exit.c:");
		TU_ASSERT_CONTAINS(g->created_by, "orphan_thread");
		TU_ASSERT_CONTAINS(g->state, i < 2 ? "chan receive" : "sleep");
		TU_ASSERT_CONTAINS(g->top, i < 2 ? "tt_chan_recv" : "tt_sleep");
	}
	char note[128];
	snprintf(note, sizeof note,
		 "goroutine %lld was left parked when its thread (tid %d) "
		 "exited",
		 (long long)orphan_ids[0], (int)orphan_tid);
	TU_ASSERT_CONTAINS(l.report, note);
	TU_ASSERT_CONTAINS(l.report, "found unexpected goroutines:");
	tt_leak_list_free(&l);

	char *text = NULL;
	TU_ASSERT_EQ(tt_leak_verify_none_to(NULL, to_buf, &text), 3);
	TU_ASSERT_CONTAINS(text, "orphan_sleeper");
	TU_ASSERT_CONTAINS(text, note);
	free(text);

	/* The filters see them as they see live ones. */
	tt_leak_opts *o;
	TU_ASSERT_OK(tt_leak_opts_make(&o));
	TU_ASSERT_OK(tt_leak_ignore_any_function(o, "orphan_worker"));
	TU_ASSERT_EQ(tt_leak_find(o, &l), 1);
	TU_ASSERT_EQ(l.g[0].id, orphan_ids[2]);
	tt_leak_list_free(&l);
	tt_leak_opts_free(o);

	/* And IgnoreCurrent covers them. */
	TU_ASSERT_OK(tt_leak_opts_make(&o));
	TU_ASSERT_OK(tt_leak_ignore_current(o));
	TU_ASSERT_EQ(tt_leak_verify_none(o), 0);
	tt_leak_opts_free(o);
	fprintf(stderr, "tu-ok\n");
}

static void test_orphans_found(void **state)
{
	(void)state;
	TU_REQUIRE_THREADS();
	tu_child c;
	assert_int_equal(tu_spawn_self("orphans_found", 60 * TT_SECOND, &c),
			 0);
	TU_ASSERT_CHILD_EXIT(&c, 0);
	TU_ASSERT_CONTAINS(c.err, "tu-ok");
	tu_child_free(&c);
}

/* TETHER_LEAKCHECK's check at exit reports them too. */
static void child_orphans_at_exit(void)
{
	tu_one_p(); /* its goroutines stay on its scheduler, as above */
	TU_ASSERT_OK(tt_leak_verify_at_exit(NULL));
	run_orphan_thread();
	fprintf(stderr, "tu-orphan-tid=%d\n", (int)orphan_tid);
	exit(0);
}

static void test_orphans_at_exit(void **state)
{
	(void)state;
	TU_REQUIRE_THREADS();
	tu_child c;
	assert_int_equal(tu_spawn_self("orphans_at_exit", 60 * TT_SECOND, &c),
			 0);
	TU_ASSERT_CHILD_EXIT(&c, 1);
	TU_ASSERT_CONTAINS(c.err, "tether: errors on successful test run: "
				  "found unexpected goroutines:");
	TU_ASSERT_CONTAINS(c.err, "orphan_worker");
	TU_ASSERT_CONTAINS(c.err, "orphan_sleeper");
	TU_ASSERT_CONTAINS(c.err, "created by orphan_thread");
	char note[96];
	snprintf(note, sizeof note, "when its thread (tid %lld) exited",
		 tu_child_marker(&c, "tu-orphan-tid"));
	TU_ASSERT_CONTAINS(c.err, note);
	tu_child_free(&c);
}

static const tu_child_case child_cases[] = {
	{"orphans_found", child_orphans_found},
	{"orphans_at_exit", child_orphans_at_exit},
};

int main(int argc, char **argv)
{
	tu_child_dispatch(argc, argv, child_cases,
			  sizeof child_cases / sizeof child_cases[0]);
	const struct CMUnitTest tests[] = {
		TU_TEST(test_thread_stacks_returned),
		TU_TEST(test_thread_shared_stack_returned),
		TU_TEST(test_orphans_found),
		TU_TEST(test_orphans_at_exit),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
