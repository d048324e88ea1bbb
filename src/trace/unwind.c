/* tether — unwinding goroutine stacks.
 *
 * A parked goroutine is unwound from the frame tt__switch pushed (its
 * layout is in src/arch/switch_*.S). Stacks are read through
 * tt__g_stack_addr(), so a stack mode that moves parked stacks elsewhere
 * only has to answer that function.
 *
 * Speed: a dump of a million goroutines unwinds a few million frames, but
 * only a handful of distinct PCs. For each PC we learn once how its frame
 * unwinds — where the canonical frame address (CFA) is, relative to the
 * stack pointer or the frame pointer, and where the return address and the
 * caller's frame pointer were saved — and cache that rule. Every further
 * frame at that PC is then two or three loads. The rule is learned from
 * libunwind's own DWARF CFI interpreter, run one step over a probe stack
 * whose every word holds a tag for its own address: the registers libunwind
 * reports after the step say where it read them from. Rules that are not of
 * that simple shape (CFA expressions, realigned stacks, signal frames) mark
 * the PC "slow", and a stack that meets one is unwound by libunwind itself,
 * in place.
 *
 * The running context (tt__trace_here) is unwound by libunwind directly.
 */
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <ucontext.h>

#define UNW_LOCAL_ONLY
#include <libunwind.h>

#include "trace/trace.h"

/* ---- registers of a parked goroutine -------------------------------------- */

#if defined(__x86_64__)
#define SWITCH_FRAME 64    /* bytes tt__switch pushed, return address included */
#define SAVED_FP_OFF 48    /* rbp */
#define SAVED_RA_OFF 56    /* return address */
#define NSAVED 7           /* words of general registers in the frame */
#elif defined(__aarch64__)
#define SWITCH_FRAME 176
#define SAVED_FP_OFF 80    /* x29 */
#define SAVED_RA_OFF 88    /* x30 */
#define NSAVED 12          /* x19..x30 */
#else
#error "tether: unwinding is written for x86-64 and aarch64"
#endif

/* One unwinding position: the PC (a return address except for the first
 * PC of a goroutine that has not started), the stack and frame pointers. */
typedef struct ustate {
	uintptr_t ip, sp, fp;
} ustate;

/* ---- the rule cache ---------------------------------------------------------- */

enum { RULE_EMPTY = 0, RULE_SP, RULE_FP, RULE_END, RULE_SLOW };

typedef struct rule {
	_Atomic uintptr_t key; /* pc | exact; 0 = empty */
	uint8_t kind;          /* CFA base, or END/SLOW */
	uint8_t fp_same;       /* the caller's frame pointer is ours */
	int32_t cfa_off;       /* CFA = base + cfa_off */
	int32_t ra_off;        /* return address at CFA + ra_off */
	int32_t fp_off;        /* caller's frame pointer at CFA + fp_off */
} rule;

typedef struct rule_table {
	size_t mask;
	size_t n;
	rule *v;
} rule_table;

static _Atomic(rule_table *) rules;
static pthread_mutex_t rules_lock = PTHREAD_MUTEX_INITIALIZER;

static inline size_t hash_pc(uintptr_t k)
{
	uint64_t h = (uint64_t)k * UINT64_C(0x9e3779b97f4a7c15);
	return (size_t)(h >> 20);
}

static const rule *rule_find(const rule_table *t, uintptr_t key)
{
	if (!t)
		return NULL;
	for (size_t i = hash_pc(key) & t->mask;; i = (i + 1) & t->mask) {
		uintptr_t k = atomic_load_explicit(&t->v[i].key,
						   memory_order_acquire);
		if (k == key)
			return &t->v[i];
		if (k == 0)
			return NULL;
	}
}

/* Insert into a table known to have room; the caller holds rules_lock. */
static const rule *rule_put(rule_table *t, uintptr_t key, const rule *r)
{
	size_t i = hash_pc(key) & t->mask;
	while (atomic_load_explicit(&t->v[i].key, memory_order_relaxed))
		i = (i + 1) & t->mask;
	rule *e = &t->v[i];
	e->kind = r->kind;
	e->fp_same = r->fp_same;
	e->cfa_off = r->cfa_off;
	e->ra_off = r->ra_off;
	e->fp_off = r->fp_off;
	atomic_store_explicit(&e->key, key, memory_order_release);
	t->n++;
	return e;
}

/* ---- learning a rule ---------------------------------------------------------- */

#define PROBE_WORDS 16384
#define PROBE_SP 16        /* word index of the stack pointer */
#define PROBE_TAG ((uintptr_t)0x7ead000000000000ull)

static uintptr_t probe_stack[PROBE_WORDS]; /* under rules_lock */

static void fill_context(unw_context_t *uc, uintptr_t ip, uintptr_t sp,
			 uintptr_t fp)
{
	memset(uc, 0, sizeof *uc);
#if defined(__x86_64__)
	uc->uc_mcontext.gregs[REG_RIP] = (greg_t)ip;
	uc->uc_mcontext.gregs[REG_RSP] = (greg_t)sp;
	uc->uc_mcontext.gregs[REG_RBP] = (greg_t)fp;
#else
	uc->uc_mcontext.pc = ip;
	uc->uc_mcontext.sp = sp;
	uc->uc_mcontext.regs[29] = fp;
#endif
}

#if defined(__x86_64__)
#define UNW_FP UNW_X86_64_RBP
#else
#define UNW_FP UNW_AARCH64_X29
#endif

/* Where a value read from the probe stack was read from, or 0. */
static uintptr_t probe_addr(uintptr_t v)
{
	if (v < PROBE_TAG || v >= PROBE_TAG + sizeof probe_stack)
		return 0;
	return (uintptr_t)probe_stack + (v - PROBE_TAG);
}

/* One libunwind step from (ip, sp = probe SP, fp = probe word fp_ix). */
static void probe_once(uintptr_t ip, size_t fp_ix, rule *r)
{
	uintptr_t sp = (uintptr_t)&probe_stack[PROBE_SP];
	uintptr_t fp = (uintptr_t)&probe_stack[fp_ix];
	unw_context_t uc;
	unw_cursor_t c;
	r->kind = RULE_SLOW;
	fill_context(&uc, ip, sp, fp);
	if (unw_init_local(&c, &uc) < 0)
		return;
	int k = unw_step(&c);
	if (k <= 0) {
		r->kind = RULE_END;
		return;
	}
	unw_word_t nsp, nip, nfp;
	if (unw_get_reg(&c, UNW_REG_SP, &nsp) < 0 ||
	    unw_get_reg(&c, UNW_REG_IP, &nip) < 0 ||
	    unw_get_reg(&c, UNW_FP, &nfp) < 0)
		return;
	uintptr_t lo = (uintptr_t)probe_stack;
	uintptr_t hi = lo + sizeof probe_stack;
	if (nsp < lo || nsp >= hi)
		return;
	/* The CFA is within the frame above sp, or just above fp: a CFA
	 * below fp is sp-relative, one at most 64 KiB above fp can be
	 * either, so the caller probes twice with fp in two places. */
	if (nsp >= fp && nsp - fp < 65536) {
		r->kind = RULE_FP;
		r->cfa_off = (int32_t)(nsp - fp);
	} else {
		r->kind = RULE_SP;
		r->cfa_off = (int32_t)(nsp - sp);
	}
	uintptr_t ra = probe_addr(nip);
	if (!ra) {
		r->kind = RULE_SLOW;
		return;
	}
	r->ra_off = (int32_t)((intptr_t)ra - (intptr_t)nsp);
	if (nfp == fp) {
		r->fp_same = 1;
		r->fp_off = 0;
	} else {
		uintptr_t fa = probe_addr(nfp);
		if (!fa) {
			r->kind = RULE_SLOW;
			return;
		}
		r->fp_same = 0;
		r->fp_off = (int32_t)((intptr_t)fa - (intptr_t)nsp);
	}
}

static void learn(uintptr_t ip, bool exact, rule *r)
{
	for (size_t i = 0; i < PROBE_WORDS; i++)
		probe_stack[i] = PROBE_TAG + i * sizeof(uintptr_t);
	/* libunwind looks the first PC up as is; a return address is
	 * looked up at the call. */
	uintptr_t at = exact ? ip : ip - 1;
	rule a, b;
	memset(&a, 0, sizeof a);
	memset(&b, 0, sizeof b);
	probe_once(at, PROBE_WORDS - 8192, &a);
	if (a.kind == RULE_END || a.kind == RULE_SLOW) {
		*r = a;
		return;
	}
	probe_once(at, PROBE_WORDS - 4096, &b);
	if (a.kind != b.kind || a.cfa_off != b.cfa_off ||
	    a.ra_off != b.ra_off || a.fp_same != b.fp_same ||
	    a.fp_off != b.fp_off) {
		r->kind = RULE_SLOW;
		return;
	}
	*r = a;
}

static const rule *rule_get(uintptr_t ip, bool exact)
{
	uintptr_t key = (ip << 1) | (exact ? 1 : 0);
	const rule *r = rule_find(
		atomic_load_explicit(&rules, memory_order_acquire), key);
	if (TT_LIKELY(r != NULL))
		return r;
	pthread_mutex_lock(&rules_lock);
	rule_table *t = atomic_load_explicit(&rules, memory_order_relaxed);
	r = rule_find(t, key);
	if (!r) {
		if (!t || (t->n + 1) * 2 > t->mask + 1) {
			/* Grow; the old table stays allocated, for readers
			 * still looking into it. */
			size_t cap = t ? (t->mask + 1) * 2 : 1024;
			rule_table *nt = malloc(sizeof *nt);
			rule *v = calloc(cap, sizeof *v);
			if (!nt || !v) {
				free(nt);
				free(v);
				pthread_mutex_unlock(&rules_lock);
				return NULL;
			}
			nt->mask = cap - 1;
			nt->n = 0;
			nt->v = v;
			if (t) {
				for (size_t i = 0; i <= t->mask; i++) {
					uintptr_t k = atomic_load_explicit(
						&t->v[i].key,
						memory_order_relaxed);
					if (k)
						rule_put(nt, k, &t->v[i]);
				}
			}
			atomic_store_explicit(&rules, nt,
					      memory_order_release);
			t = nt;
		}
		rule nr;
		memset(&nr, 0, sizeof nr);
		learn(ip, exact, &nr);
		r = rule_put(t, key, &nr);
	}
	pthread_mutex_unlock(&rules_lock);
	return r;
}

/* ---- unwinding ------------------------------------------------------------------ */

/* A word of g's stack, or false when addr is not in it (the main
 * goroutine's stack is the thread's, read in place). */
static inline bool read_word(const tt__g *g, uintptr_t addr, uintptr_t *out)
{
	if (addr & (sizeof(uintptr_t) - 1))
		return false;
	if (g->stack_lo) {
		if (addr < (uintptr_t)g->stack_lo ||
		    addr + sizeof(uintptr_t) > (uintptr_t)g->stack_hi)
			return false;
		*out = *(const uintptr_t *)tt__g_stack_addr(g,
							     (const void *)addr);
		return true;
	}
	if (addr < 4096)
		return false;
	*out = *(const uintptr_t *)addr;
	return true;
}

/* libunwind over the goroutine's stack in place, from its saved frame:
 * for the PCs whose CFI the rule cache cannot express. */
static int slow_trace(const tt__g *g, uintptr_t *pcs, int max)
{
	const uintptr_t *f = (const uintptr_t *)tt__g_stack_addr(g, g->sp);
	unw_context_t uc;
	memset(&uc, 0, sizeof uc);
#if defined(__x86_64__)
	uc.uc_mcontext.gregs[REG_R15] = (greg_t)f[1];
	uc.uc_mcontext.gregs[REG_R14] = (greg_t)f[2];
	uc.uc_mcontext.gregs[REG_R13] = (greg_t)f[3];
	uc.uc_mcontext.gregs[REG_R12] = (greg_t)f[4];
	uc.uc_mcontext.gregs[REG_RBX] = (greg_t)f[5];
	uc.uc_mcontext.gregs[REG_RBP] = (greg_t)f[6];
	uc.uc_mcontext.gregs[REG_RIP] = (greg_t)f[7];
	uc.uc_mcontext.gregs[REG_RSP] = (greg_t)((uintptr_t)g->sp +
						 SWITCH_FRAME);
#else
	for (int i = 0; i < NSAVED; i++)
		uc.uc_mcontext.regs[19 + i] = f[i];
	uc.uc_mcontext.pc = f[11];
	uc.uc_mcontext.sp = (uintptr_t)g->sp + SWITCH_FRAME;
#endif
	unw_cursor_t c;
	if (unw_init_local(&c, &uc) < 0)
		return 0;
	int n = 0;
	do {
		unw_word_t ip;
		if (unw_get_reg(&c, UNW_REG_IP, &ip) < 0 || ip == 0)
			break;
		pcs[n++] = ip;
	} while (n < max && unw_step(&c) > 0);
	return n;
}

int tt__trace_g(const tt__g *g, uintptr_t *pcs, int max)
{
	if (max <= 0 || g == NULL)
		return 0;
	if (g->state == TT_G_RUNNING || g->state == TT_G_DEAD || !g->sp)
		return 0;
	/* Goroutines start as soon as they are made (tt__spawn_call), so
	 * every one that is not running has a saved frame, the parent of a
	 * just started one included. */
	uintptr_t base = (uintptr_t)g->sp;
	uintptr_t ra, fp;
	if (!read_word(g, base + SAVED_RA_OFF, &ra) ||
	    !read_word(g, base + SAVED_FP_OFF, &fp))
		return 0;
	ustate u = { ra, base + SWITCH_FRAME, fp };
	int n = 0;
	while (n < max && u.ip) {
		pcs[n++] = u.ip;
		const rule *r = rule_get(u.ip, false);
		if (!r || r->kind == RULE_END)
			break;
		if (r->kind == RULE_SLOW)
			return slow_trace(g, pcs, max);
		uintptr_t cfa = (r->kind == RULE_SP ? u.sp : u.fp) +
				(uintptr_t)(intptr_t)r->cfa_off;
		uintptr_t nip, nfp = u.fp;
		if (cfa <= u.sp && n > 1)
			break; /* the stack must grow toward the caller */
		if (!read_word(g, cfa + (uintptr_t)(intptr_t)r->ra_off, &nip))
			break;
		if (!r->fp_same &&
		    !read_word(g, cfa + (uintptr_t)(intptr_t)r->fp_off, &nfp))
			break;
		u.ip = nip;
		u.sp = cfa;
		u.fp = nfp;
	}
	return n;
}

__attribute__((noinline)) int tt__trace_here(uintptr_t *pcs, int max,
					     int skip)
{
	if (max <= 0)
		return 0;
	unw_context_t uc;
	unw_cursor_t c;
	if (unw_getcontext(&uc) < 0 || unw_init_local(&c, &uc) < 0)
		return 0;
	/* The cursor starts in this function; one step is in the caller. */
	int n = 0;
	while (unw_step(&c) > 0) {
		unw_word_t ip;
		if (unw_get_reg(&c, UNW_REG_IP, &ip) < 0 || ip == 0)
			break;
		if (skip-- > 0)
			continue;
		pcs[n++] = ip;
		if (n == max)
			break;
	}
	return n;
}
