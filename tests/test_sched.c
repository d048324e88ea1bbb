/* Scheduler paths that need a particular order of events to reach. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>

#include "testutil.h"

/* A goroutine about to park can be readied by a timer the scheduler fires
 * on its way to picking the next goroutine (it checks due timers every
 * so many parks while busy). With nothing else runnable, the next
 * goroutine is then the parking one itself, which must simply carry on
 * rather than switch to itself. Each iteration parks on a timer channel
 * whose timer is already due, so one of the first 64 parks takes this
 * path. */
static void test_park_readied_by_due_timer(void **state)
{
	(void)state;
	for (int i = 0; i < 200; i++) {
		tt_chan *c;
		TU_ASSERT_OK(tt_after(&c, 0));
		int64_t when = 0;
		bool ok = false;
		TU_ASSERT_OK(tt_recv(c, &when, &ok));
		assert_true(ok);
		assert_true(when > 0);
		TU_ASSERT_OK(tt_chan_release(c));
	}
}

/* The same with another goroutine parked for good alongside (so the
 * scheduler is not idle in the deadlock sense) and a deadline timer. */
static void park_forever(void *p)
{
	int v;
	TU_UNCHECKED(tt_recv((tt_chan *)p, &v, NULL));
}

static void test_park_readied_by_own_deadline(void **state)
{
	(void)state;
	tt_chan *never = tu_chan(sizeof(int), 0);
	tu_go(park_forever, never);
	tt_chan *c = tu_chan(sizeof(int), 0);
	for (int i = 0; i < 200; i++) {
		int v;
		/* A deadline that passes while the receive parks. */
		TU_ASSERT_ERR(tt_chan_recv_until(c, &v, sizeof v, NULL,
						 tt_now() + 1000),
			      -ETIMEDOUT);
	}
	TU_ASSERT_OK(tt_chan_close(never));
	TU_ASSERT_OK(tt_chan_release(never));
	TU_ASSERT_OK(tt_chan_release(c));
}

/* Stacks of ended goroutines are kept for reuse, but beyond a reserve
 * their pages go back to the kernel once the scheduler is idle. */
static void test_idle_returns_stack_pages(void **state)
{
	(void)state;
	/* One scheduler's stacks: with more Ps, tt_go may queue the
	 * goroutines for whichever P takes them first. */
	tu_one_p();
	enum { N = 5000 };
	tt_chan *c = tu_chan(sizeof(int), 0);
	for (int i = 0; i < N; i++)
		tu_go(park_forever, c);
	long long with = tu_rss_bytes();
	TU_ASSERT_OK(tt_chan_close(c));
	/* They end; then the scheduler is idle while we sleep (on a loaded
	 * machine a sleep may be over before that, so wait for it). At most
	 * 1024 stacks stay resident: at least 3,976 pages go back. (Not
	 * under ASan, whose shadow of the stacks, written as they are
	 * cleaned for reuse, stays resident instead.) */
	long long want = with - (long long)(N - 1024) * 4096 / 2;
	if (!TU_ASAN)
		TU_WAIT_FOR(tu_rss_bytes() < want, 10 * TT_SECOND);
	TU_ASSERT_OK(tt_sleep(20 * TT_MILLISECOND));
	/* And they are reused: a new batch costs no new stacks. */
	tt_runtime_info before_info, info;
	TU_ASSERT_OK(tt_runtime_info_get(&before_info));
	for (int i = 0; i < N; i++)
		tu_go(park_forever, c); /* closed: each ends at once */
	TU_ASSERT_OK(tt_runtime_info_get(&info));
	assert_int_equal(info.stacks_mapped, before_info.stacks_mapped);
	TU_ASSERT_OK(tt_chan_release(c));
}

/* The mprotect guard fallback (kernels before 6.13) keeps within
 * vm.max_map_count: when the budget is spent, tt_go fails with a clear
 * error instead of the kernel refusing a mapping later (or a crash). Run
 * in a fresh process with TETHER_GUARD=mprotect. */
static void spawn_until_refused(void *p)
{
	(void)p;
}

static void *chan_len_thread(void *p)
{
	(void)tt_chan_len(p);
	return NULL;
}

static void child_guard_budget(void)
{
	tt_runtime_info info;
	if (tt_runtime_info_get(&info) != 0 ||
	    info.guard_mode != TT_GUARD_MPROTECT) {
		fprintf(stderr, "not in mprotect mode\n");
		exit(3);
	}
	int64_t budget = info.guard_budget;
	fprintf(stderr, "budget=%lld\n", (long long)budget);
	tt_chan *never;
	if (tt_chan_make(&never, sizeof(int), 0) != 0)
		exit(4);
	/* With more than one P, shared first (chan.h) by another thread's
	 * use: goroutines of other Ps then wait on it themselves, not
	 * through a proxy goroutine of this thread's (post.c), whose stack
	 * would take from the budget too. */
	if (tt_runtime_procs() > 1) {
		pthread_t th;
		if (pthread_create(&th, NULL, chan_len_thread, never) != 0 ||
		    tt_blocking(tu_join_thread, &th) != 0)
			exit(6);
	}
	long started = 0;
	for (;;) {
		int64_t id = tt_go(park_forever, never);
		if (id < 0) {
			fprintf(stderr, "refused=%lld started=%ld msg=%s\n",
				-(long long)id, started, tt_last_error());
			break;
		}
		started++;
		if (started > 200000) {
			fprintf(stderr, "never refused\n");
			exit(5);
		}
	}
	/* The program goes on: short-lived goroutines reuse pooled
	 * stacks... of which there are none yet, so this is refused too, and
	 * nothing crashes. */
	int64_t id = tt_go(spawn_until_refused, NULL);
	fprintf(stderr, "again=%lld\n", -(long long)id);
	exit(0);
}

static void test_guard_budget_mprotect(void **state)
{
	(void)state;
	if (TU_ASAN)
		skip(); /* 30,000 ASan-sized stacks take minutes */
	/* Each goroutine's TSan fiber maps memory of its own (two mappings),
	 * which the budget, made for the program's mappings, does not count:
	 * the kernel refuses a guard at half the budget. */
	if (TU_TSAN)
		skip();
	setenv("TETHER_GUARD", "mprotect", 1);
	tu_child ch;
	int r = tu_spawn_self("guard_budget", 120 * TT_SECOND, &ch);
	unsetenv("TETHER_GUARD");
	assert_int_equal(r, 0);
	TU_ASSERT_CHILD_EXIT(&ch, 0);
	long long budget = tu_child_marker(&ch, "budget");
	long long started = tu_child_marker(&ch, "started");
	/* A stock vm.max_map_count of 65530 allows about 30,000. */
	TU_ASSERT_GT(budget, 1000);
	TU_ASSERT_EQ(started, budget);
	TU_ASSERT_EQ(tu_child_marker(&ch, "refused"), ENOMEM);
	TU_ASSERT_CONTAINS(ch.err, "vm.max_map_count");
	TU_ASSERT_EQ(tu_child_marker(&ch, "again"), ENOMEM);
	tu_child_free(&ch);
}

int main(int argc, char **argv)
{
	static const tu_child_case cases[] = {
		{"guard_budget", child_guard_budget},
	};
	tu_child_dispatch(argc, argv, cases, 1);
	const struct CMUnitTest tests[] = {
		TU_TEST(test_park_readied_by_due_timer),
		TU_TEST(test_park_readied_by_own_deadline),
		TU_TEST(test_idle_returns_stack_pages),
		TU_TEST(test_guard_budget_mprotect),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
