/* tether — unwinding goroutine stacks with DWARF CFI (libunwind).
 *
 * A parked goroutine's registers are in the frame tt__switch pushed (its
 * layout is in src/arch/switch_*.S). They are copied into a libunwind
 * context as if that goroutine had called getcontext() right where
 * tt__switch returns to, and libunwind walks the caller chain from there
 * with the CFI of each function: no frame pointers needed, any object,
 * PIE or not. The walk stays inside the goroutine's own stack, so a
 * damaged frame ends the trace instead of wandering off. */
#define UNW_LOCAL_ONLY
#include <libunwind.h>
#include <pthread.h>
#include <string.h>
#include <ucontext.h>

#include "trace/trace.h"

static pthread_once_t policy_once = PTHREAD_ONCE_INIT;

static void set_policy(void)
{
	/* Each thread keeps its own cache of unwind info: no lock per step. */
	unw_set_caching_policy(unw_local_addr_space, UNW_CACHE_PER_THREAD);
}

/* Walk from an initialised cursor; lo/hi bound the stack pointer (0, 0:
 * no bound). */
static int walk(unw_cursor_t *c, uintptr_t lo, uintptr_t hi, uintptr_t *pcs,
		int max, int skip)
{
	int n = 0;
	for (;;) {
		unw_word_t ip = 0, sp = 0;
		if (unw_get_reg(c, UNW_REG_IP, &ip) < 0 || ip == 0)
			break;
		if (hi) {
			unw_get_reg(c, UNW_REG_SP, &sp);
			if (sp < lo || sp > hi)
				break;
		}
		if (skip > 0)
			skip--;
		else if (n < max)
			pcs[n++] = (uintptr_t)ip;
		else
			break;
		if (unw_step(c) <= 0)
			break;
	}
	return n;
}

int tt__trace_g(const tt__g *g, uintptr_t *pcs, int max)
{
	if (max <= 0 || g == NULL || g->sp == NULL)
		return 0;
	pthread_once(&policy_once, set_policy);
	const uint64_t *f = tt__g_stack_addr(g, g->sp);
	unw_context_t uc;
	memset(&uc, 0, sizeof uc);
#if defined(__x86_64__)
	greg_t *r = uc.uc_mcontext.gregs;
	r[REG_R15] = (greg_t)f[1];
	r[REG_R14] = (greg_t)f[2];
	r[REG_R13] = (greg_t)f[3];
	r[REG_R12] = (greg_t)f[4];
	r[REG_RBX] = (greg_t)f[5];
	r[REG_RBP] = (greg_t)f[6];
	r[REG_RIP] = (greg_t)f[7];
	r[REG_RSP] = (greg_t)((const char *)g->sp + 64);
#elif defined(__aarch64__)
	for (int i = 0; i < 10; i++)
		uc.uc_mcontext.regs[19 + i] = f[i];
	uc.uc_mcontext.regs[29] = f[10];
	uc.uc_mcontext.regs[30] = f[11];
	uc.uc_mcontext.pc = f[11];
	uc.uc_mcontext.sp = (uint64_t)((const char *)g->sp + 176);
#else
#error "tether: no unwinder for this architecture"
#endif
	unw_cursor_t c;
	if (unw_init_local(&c, &uc) < 0)
		return 0;
	uintptr_t lo = 0, hi = 0;
	if (g->stack_lo) {
		lo = (uintptr_t)g->stack_lo;
		hi = (uintptr_t)g->stack_hi;
	}
	return walk(&c, lo, hi, pcs, max, 0);
}

int tt__trace_here(uintptr_t *pcs, int max, int skip)
{
	if (max <= 0)
		return 0;
	pthread_once(&policy_once, set_policy);
	unw_context_t uc;
	unw_cursor_t c;
	if (unw_getcontext(&uc) < 0 || unw_init_local(&c, &uc) < 0)
		return 0;
	/* Frame 0 is this function itself. */
	return walk(&c, 0, 0, pcs, max, skip + 1);
}
