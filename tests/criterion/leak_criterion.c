/* tether with Criterion: every test body runs inside a leak scope that is
 * verified when the body returns, so a test that leaves a goroutine
 * behind fails, with goleak's report on stderr.
 *
 * The check lives in the test itself (the TT_LEAK_TEST wrapper below), not
 * in a .fini fixture: Criterion 2.4 prints an assertion that fails in
 * .fini but still counts the test as passed.
 *
 * Suite "leak" has one clean test and one that leaks on purpose. The
 * ctest entry (run.cmake) runs the whole program and checks that exactly
 * the leaky test failed, for the leak, and the clean one passed. */
#include <criterion/criterion.h>

#include <tether.h>

/* Test(suite, name) whose body must not leak goroutines. */
#define TT_LEAK_TEST(suite, name)                                           \
	static void suite##_##name##_body(void);                            \
	Test(suite, name)                                                   \
	{                                                                   \
		tt_leak_scope sc_;                                          \
		cr_assert_eq(tt_leak_scope_begin(&sc_, #suite "::" #name), \
			     0);                                            \
		suite##_##name##_body();                                    \
		int leaked_ = tt_leak_scope_verify(&sc_, NULL);             \
		cr_assert_eq(leaked_, 0,                                    \
			     "%d goroutine(s) leaked (report above)",       \
			     leaked_);                                      \
	}                                                                   \
	static void suite##_##name##_body(void)

static void finish_soon(void *arg)
{
	(void)arg;
	tt_sleep(2 * TT_MILLISECOND);
}

static void wait_forever(void *arg)
{
	/* Parked for good: the leak the check must find. */
	if (tt_chan_recv(arg, &(char){0}, 0, NULL) != 0)
		return;
}

TT_LEAK_TEST(leak, clean)
{
	/* Still running when the body returns; the check's retries wait. */
	cr_assert_gt(tt_go(finish_soon, NULL), 0);
}

TT_LEAK_TEST(leak, leaky)
{
	static tt_chan *c;
	cr_assert_eq(tt_chan_make(&c, 0, 0), 0);
	cr_assert_gt(tt_go(wait_forever, c), 0);
	/* Never closed: the goroutine waits for good. */
}
