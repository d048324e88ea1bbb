/* Scheduler paths that need a particular order of events to reach. */
#include <errno.h>

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
	tt_recv((tt_chan *)p, &v, NULL);
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

int main(void)
{
	const struct CMUnitTest tests[] = {
		TU_TEST(test_park_readied_by_due_timer),
		TU_TEST(test_park_readied_by_own_deadline),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
