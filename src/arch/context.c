/* tether — the first frame of a new goroutine's stack, matching the frame
 * tt__switch restores (see switch_*.S). */
#include <string.h>

#include "internal.h"

void tt__start(void); /* in switch_*.S */

void *tt__context_init(void *stack_top, void (*entry)(void *), void *arg)
{
	uintptr_t top = (uintptr_t)stack_top & ~(uintptr_t)15;
#if defined(__x86_64__)
	uint64_t *sp = (uint64_t *)(top - 64);
	/* Default MXCSR (all exceptions masked, round to nearest) and x87
	 * control word (extended precision, exceptions masked), as a new
	 * thread starts with. */
	sp[0] = UINT64_C(0x1f80) | (UINT64_C(0x037f) << 32);
	sp[1] = 0;                   /* r15 */
	sp[2] = 0;                   /* r14 */
	sp[3] = (uintptr_t)entry;    /* r13 */
	sp[4] = (uintptr_t)arg;      /* r12 */
	sp[5] = 0;                   /* rbx */
	sp[6] = 0;                   /* rbp: ends frame-pointer chains */
	sp[7] = (uintptr_t)tt__start;
	return sp;
#elif defined(__aarch64__)
	uint64_t *sp = (uint64_t *)(top - 176);
	memset(sp, 0, 176);
	sp[0] = (uintptr_t)arg;        /* x19 */
	sp[1] = (uintptr_t)entry;      /* x20 */
	sp[10] = 0;                    /* x29: ends frame-pointer chains */
	sp[11] = (uintptr_t)tt__start; /* x30 */
	sp[20] = 0;                    /* fpcr: IEEE defaults */
	return sp;
#else
#error "tether: no context switch for this architecture (x86-64, aarch64)"
#endif
}
