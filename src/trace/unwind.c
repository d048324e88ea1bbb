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
#include <stdlib.h>
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
		uintptr_t *sps, int max, int skip)
{
	int n = 0;
	for (;;) {
		unw_word_t ip = 0, sp = 0;
		if (unw_get_reg(c, UNW_REG_IP, &ip) < 0 || ip == 0)
			break;
		unw_get_reg(c, UNW_REG_SP, &sp);
		/* The runtime stack's frames (tt__on_runtime_stack) lie
		 * outside the goroutine's stack and lead back into it. */
		if (hi && (sp < lo || sp > hi) &&
		    !tt__on_runtime_stack_at((const void *)(uintptr_t)sp))
			break;
		if (skip > 0) {
			skip--;
		} else if (n < max) {
			if (sps)
				sps[n] = (uintptr_t)sp;
			pcs[n++] = (uintptr_t)ip;
		} else {
			break;
		}
		/* Nothing of the goroutine is below its start-up function;
		 * stepping out of it would follow the start-up call's frame
		 * onto another stack. */
		unw_proc_info_t pi;
		if (unw_get_proc_info(c, &pi) == 0 &&
		    pi.start_ip == (unw_word_t)(uintptr_t)tt__g_direct_entry)
			break;
		if (unw_step(c) <= 0)
			break;
	}
	return n;
}

/* ---- stack shapes ----------------------------------------------------------
 *
 * Unwinding with CFI costs microseconds per frame, and a program with a
 * million parked goroutines typically has a few hundred distinct stacks.
 * So the first goroutine of each shape is unwound with libunwind, and the
 * shape is remembered: for its top PC and its depth (stack_hi - sp), the
 * position of every return address relative to stack_hi and the value
 * found there. Another goroutine with the same top PC and depth is read
 * off those positions, and each return address read must equal the
 * shape's: the same return addresses in the same slots of a stack of the
 * same depth below the same entry is the same chain of frames (every
 * frame's size follows from its PC). Any difference falls back to
 * libunwind. Shapes are per thread, as schedulers are. */

#define SHAPES 1024 /* per thread; a full table evicts by overwriting */

typedef struct shape {
	uintptr_t top;   /* return address at the top (0: empty slot) */
	uintptr_t depth; /* stack_hi - saved sp */
	int n;           /* frames; 0 when the stack cannot be templated */
	uint32_t off[TT__TRACE_MAX]; /* stack_hi - slot of pcs[i], i >= 1 */
	uintptr_t pcs[TT__TRACE_MAX];
} shape;

static __thread shape *shapes;

void tt__trace_thread_exit(void)
{
	free(shapes);
	shapes = NULL;
}

static shape *shape_slot(uintptr_t top, uintptr_t depth)
{
	if (shapes == NULL) {
		shapes = calloc(SHAPES, sizeof *shapes);
		if (shapes == NULL)
			return NULL;
	}
	uint64_t h = (top ^ (depth * 0x9e3779b97f4a7c15ull)) *
		     0xff51afd7ed558ccdull;
	return &shapes[(h >> 32) & (SHAPES - 1)];
}

/* A word of a parked goroutine's stack. A learned shape is checked by
 * reading where its return addresses should be; in a frame laid out
 * differently that word can be an ASan redzone, which is fine to read
 * here (the value is only compared), so the read is not instrumented. */
#if defined(__clang__) || defined(__GNUC__)
__attribute__((no_sanitize_address))
#endif
static uint64_t read_word(const tt__g *g, uintptr_t addr)
{
	return *(const uint64_t *)tt__g_stack_addr(g, (const void *)addr);
}

/* Saved return address and stack pointer of a parked goroutine. */
static void saved_top(const tt__g *g, uintptr_t *pc, uintptr_t *sp)
{
	const uint64_t *f = tt__g_stack_addr(g, g->sp);
#if defined(__x86_64__)
	*pc = f[7];
	*sp = (uintptr_t)g->sp + 64;
#else
	*pc = f[11];
	*sp = (uintptr_t)g->sp + 176;
#endif
}

static int walk_g(const tt__g *g, uintptr_t *pcs, uintptr_t *sps, int max);

int tt__trace_g(const tt__g *g, uintptr_t *pcs, int max)
{
	if (max <= 0 || g == NULL || g->sp == NULL)
		return 0;
	/* Made, never run: the entry of its function, as a return address
	 * just past it (symbolized at the entry itself; the writers print
	 * no offset for it, as Go prints none). */
	void *fn = tt__g_unstarted(g);
	if (fn != NULL) {
		pcs[0] = (uintptr_t)fn + 1;
		return 1;
	}
	uintptr_t top, sp0;
	saved_top(g, &top, &sp0);
	uintptr_t hi = (uintptr_t)g->stack_hi;
	if (hi == 0 || sp0 > hi)
		return walk_g(g, pcs, NULL, max);
	shape *sh = shape_slot(top, hi - sp0);
	if (sh && sh->top == top && sh->depth == hi - sp0 && sh->n > 0 &&
	    sh->n <= max) {
		pcs[0] = top;
		int i = 1;
		for (; i < sh->n; i++) {
			uintptr_t v = read_word(g, hi - sh->off[i]);
			if (v != sh->pcs[i])
				break;
			pcs[i] = v;
		}
		if (i == sh->n)
			return sh->n;
	}
	if (g->stack_out) {
		/* A shared-stack goroutine whose frames are copied out:
		 * libunwind reads memory where it is, so bring the frames
		 * back into the region first (the region's owner, parked,
		 * is copied out instead). Not possible from a goroutine
		 * that runs on the region itself: then only the top frame. */
		tt__sched *s = g->sched;
		if (s->current && s->current->shared) {
			pcs[0] = top;
			return 1;
		}
		tt__shared_take(s, (tt__g *)g);
	}
	uintptr_t sps[TT__TRACE_MAX];
	int n = walk_g(g, pcs, sps, max < TT__TRACE_MAX ? max : TT__TRACE_MAX);
	if (sh == NULL || n <= 0)
		return n;
	/* Learn the shape: where each return address was read from. */
	shape ns = {.top = top, .depth = hi - sp0, .n = n};
	ns.pcs[0] = pcs[0];
	for (int i = 1; i < n; i++) {
		uintptr_t found = 0;
		for (uintptr_t a = sps[i] - 8; a >= sps[i - 1] && a < hi;
		     a -= 8) {
			if (read_word(g, a) == pcs[i]) {
				found = a;
				break;
			}
		}
		if (found == 0) {
			ns.n = 0;
			break;
		}
		ns.off[i] = (uint32_t)(hi - found);
		ns.pcs[i] = pcs[i];
	}
	*sh = ns;
	return n;
}

static int walk_g(const tt__g *g, uintptr_t *pcs, uintptr_t *sps, int max)
{
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
	if (TT_TSAN_QUIET(unw_init_local(&c, &uc)) < 0)
		return 0;
	uintptr_t lo = 0, hi = 0;
	if (g->stack_lo) {
		lo = (uintptr_t)g->stack_lo;
		hi = (uintptr_t)g->stack_hi;
	}
	return TT_TSAN_QUIET(walk(&c, lo, hi, pcs, sps, max, 0));
}

int tt__trace_here(uintptr_t *pcs, int max, int skip)
{
	if (max <= 0)
		return 0;
	pthread_once(&policy_once, set_policy);
	unw_context_t uc;
	unw_cursor_t c;
	if (unw_getcontext(&uc) < 0 ||
	    TT_TSAN_QUIET(unw_init_local(&c, &uc)) < 0)
		return 0;
	/* Inside a goroutine, the walk stays on its stack: below the
	 * function given to tt_go is the start-up call, whose caller's frame
	 * is on another stack. */
	uintptr_t lo = 0, hi = 0;
	tt__sched *s = tt__tls_sched;
	if (s && s->current && s->current->stack_lo &&
	    !s->current->stack_out) {
		lo = (uintptr_t)s->current->stack_lo;
		hi = (uintptr_t)s->current->stack_hi;
	}
	/* Frame 0 is this function itself. */
	return TT_TSAN_QUIET(walk(&c, lo, hi, pcs, NULL, max, skip + 1));
}

int tt__trace_fast(uintptr_t *pcs, int max)
{
	if (max <= 0)
		return 0;
	pthread_once(&policy_once, set_policy);
	void *buf[TT__TRACE_MAX + 1];
	int n = TT_TSAN_QUIET(unw_backtrace(
		buf, max + 1 < TT__TRACE_MAX + 1 ? max + 1 : TT__TRACE_MAX + 1));
	/* buf[0] is in this function. */
	int k = 0;
	for (int i = 1; i < n; i++)
		pcs[k++] = (uintptr_t)buf[i];
	return k;
}
