/* The context switch: what the ABI says survives a call survives a
 * switch to another goroutine and back — callee-saved registers (checked
 * through values the compiler keeps in them across calls) and the
 * floating-point control state (rounding mode; on x86-64 also the x87
 * precision control). */
#include <fenv.h>
#include <math.h>
#include <stdint.h>

#include "testutil.h"

/* Runs in its own goroutine: sets its own rounding mode and checks, across
 * many switches, that it keeps it and that the other goroutine's mode
 * never shows up here. */
typedef struct fp_arg {
	int mode;
	int rounds;
	int bad;
	tt_chan *done;
} fp_arg;

static void fp_worker(void *p)
{
	fp_arg *a = p;
	TU_ASSERT_EQ(fesetround(a->mode), 0);
	for (int i = 0; i < a->rounds; i++) {
		tt_yield();
		if (fegetround() != a->mode)
			a->bad++;
	}
	tu_done(a->done);
}

static void test_rounding_mode_per_goroutine(void **state)
{
	(void)state;
	int before = fegetround();
	tt_chan *done = tu_chan(0, 2);
	fp_arg up = {.mode = FE_UPWARD, .rounds = 1000, .done = done};
	fp_arg down = {.mode = FE_DOWNWARD, .rounds = 1000, .done = done};
	tu_go(fp_worker, &up);
	tu_go(fp_worker, &down);
	TU_WAIT_DONE(done, 2, 10 * TT_SECOND);
	assert_int_equal(up.bad, 0);
	assert_int_equal(down.bad, 0);
	/* The main goroutine's own mode was never disturbed. */
	assert_int_equal(fegetround(), before);
	TU_ASSERT_OK(tt_chan_release(done));
}

/* A new goroutine starts with the default floating-point environment, not
 * with whatever its creator had set, on the creator's thread (one P)
 * or another's. seen_mode is atomic: the creator reads it once it is
 * set (as soon as tt_go returns with one P, where the child runs first;
 * later with two), which is scheduling order, not synchronisation. */
static int seen_mode;

static void read_mode(void *p)
{
	(void)p;
	__atomic_store_n(&seen_mode, fegetround(), __ATOMIC_RELEASE);
}

static void test_new_goroutine_default_fp(void **state)
{
	(void)state;
	TU_ASSERT_EQ(fesetround(FE_TOWARDZERO), 0);
	seen_mode = -1;
	tu_go(read_mode, NULL);
	TU_WAIT_FOR(__atomic_load_n(&seen_mode, __ATOMIC_ACQUIRE) != -1,
		    5 * TT_SECOND);
	assert_int_equal(__atomic_load_n(&seen_mode, __ATOMIC_ACQUIRE),
			 FE_TONEAREST);
	assert_int_equal(fegetround(), FE_TOWARDZERO);
	TU_ASSERT_EQ(fesetround(FE_TONEAREST), 0);
}

#if defined(__x86_64__)
static uint16_t x87_cw(void)
{
	uint16_t cw;
	__asm__ volatile("fnstcw %0" : "=m"(cw));
	return cw;
}

static void set_x87_cw(uint16_t cw)
{
	__asm__ volatile("fldcw %0" : : "m"(cw));
}

/* Atomic, like seen_mode: the two goroutines take turns by the
 * scheduling order alone. */
static uint16_t child_cw;

static void read_cw(void *p)
{
	(void)p;
	uint16_t cw = x87_cw();
	__atomic_store_n(&child_cw, cw, __ATOMIC_RELEASE);
	/* Single precision here, while the creator keeps its own. */
	set_x87_cw((uint16_t)(cw & ~0x0300));
	tt_yield();
	__atomic_store_n(&child_cw, x87_cw(), __ATOMIC_RELEASE);
}

static void test_x87_control_word(void **state)
{
	(void)state;
	/* The turns of creator and child on one thread, by child-first and
	 * yield order (one P's), are what test that a switch keeps each
	 * goroutine's control word. */
	tu_one_p();
	uint16_t mine = x87_cw();
	tu_go(read_cw, NULL);
	/* the default, at its start */
	assert_int_equal(__atomic_load_n(&child_cw, __ATOMIC_ACQUIRE), 0x037f);
	assert_int_equal(x87_cw(), mine); /* ours untouched */
	tt_yield();                       /* let it finish */
	assert_int_equal(__atomic_load_n(&child_cw, __ATOMIC_ACQUIRE),
			 0x037f & ~0x0300);
	assert_int_equal(x87_cw(), mine);
}
#endif

/* Values the compiler keeps in callee-saved registers across the calls
 * that switch must come back intact. Many live values force the use of
 * all of them. */
typedef struct reg_arg {
	uint64_t seed;
	uint64_t result;
	tt_chan *done;
} reg_arg;

static __attribute__((noinline)) uint64_t mix(uint64_t a, uint64_t b)
{
	return (a ^ (b >> 7)) * UINT64_C(0x9e3779b97f4a7c15);
}

/* 200 rounds of mixing eight integers and three doubles, calling
 * `between` before each round. Inlined into both callers, so the compiler
 * keeps the values in registers across the calls. */
static inline __attribute__((always_inline)) uint64_t
reg_compute(uint64_t seed, void (*between)(void))
{
	uint64_t v0 = seed, v1 = v0 * 3, v2 = v0 * 5, v3 = v0 * 7,
		 v4 = v0 * 11, v5 = v0 * 13, v6 = v0 * 17, v7 = v0 * 19;
	double d0 = (double)v0, d1 = d0 * 0.5, d2 = d0 * 0.25;
	for (int i = 0; i < 200; i++) {
		if (between)
			between();
		v0 = mix(v0, v7);
		v1 = mix(v1, v0);
		v2 = mix(v2, v1);
		v3 = mix(v3, v2);
		v4 = mix(v4, v3);
		v5 = mix(v5, v4);
		v6 = mix(v6, v5);
		v7 = mix(v7, v6);
		d0 = sqrt(d0 + d1);
		d1 = d1 * 0.75 + d2;
		d2 = d2 + 1.0;
	}
	return v0 ^ v1 ^ v2 ^ v3 ^ v4 ^ v5 ^ v6 ^ v7 ^
	       (uint64_t)(d0 + d1 + d2);
}

static void reg_worker(void *p)
{
	reg_arg *a = p;
	a->result = reg_compute(a->seed, tt_yield);
	tu_done(a->done);
}

/* The same computation with no switches in between. */
static uint64_t reg_expected(uint64_t seed)
{
	return reg_compute(seed, NULL);
}

static void test_callee_saved_registers(void **state)
{
	(void)state;
	enum { N = 8 };
	reg_arg args[N];
	tt_chan *done = tu_chan(0, N);
	for (int i = 0; i < N; i++) {
		args[i] = (reg_arg){.seed = (uint64_t)i * 1000003 + 17,
				    .done = done};
		tu_go(reg_worker, &args[i]);
	}
	TU_WAIT_DONE(done, N, 10 * TT_SECOND);
	for (int i = 0; i < N; i++)
		assert_int_equal(args[i].result, reg_expected(args[i].seed));
	TU_ASSERT_OK(tt_chan_release(done));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		TU_TEST(test_rounding_mode_per_goroutine),
		TU_TEST(test_new_goroutine_default_fp),
#if defined(__x86_64__)
		TU_TEST(test_x87_control_word),
#endif
		TU_TEST(test_callee_saved_registers),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
