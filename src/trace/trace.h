/* tether — trace layer: stacks of goroutines and of threads, and symbols.
 *
 * Unwinding uses DWARF CFI (libunwind), so code built with plain -O2 and no
 * frame pointers unwinds, in the program and in shared libraries, PIE or
 * not. Symbols come from elfutils' libdw: function, offset, file, line and
 * inlined frames. Symbolization is cached by PC for the life of the
 * process; the strings it returns are never freed.
 *
 * PCs are return addresses as found on the stack (the innermost one of a
 * running context is the current PC). tt__symbolize() is told which kind it
 * gets, so that a return address is looked up at pc - 1 (the call) while
 * the frame still prints pc's own offset, as Go does. */
#ifndef TT_TRACE_H
#define TT_TRACE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "internal.h"

/* Deepest stack recorded; deeper stacks are cut (Go: 100 for tracebacks,
 * 32 for profiles). */
#define TT__TRACE_MAX 64

/* One source-level frame. */
typedef struct tt__frame {
	const char *func;   /* function name; "?" when unknown */
	const char *file;   /* source file; NULL when unknown */
	const char *module; /* path of the ELF object holding the PC */
	uintptr_t pc;       /* the PC asked about */
	uintptr_t entry;    /* start of the physical function; 0 if unknown */
	uintptr_t module_base; /* load bias of that object */
	int line;           /* 0 when unknown */
	bool inlined;       /* inlined into the frame that follows it */
	bool internal;      /* tether's own code, not its public API: hidden
			       at the top of a parked goroutine's stack */
} tt__frame;

/* PCs of goroutine g, innermost first, into pcs[max]; returns how many.
 * g must belong to the calling thread's scheduler and not be the running
 * one: it is unwound from the registers saved by tt__switch. The runtime's
 * own frames at the top (park, switch) are skipped, as Go hides
 * runtime.gopark. A goroutine that has not started yet has one PC: its
 * entry function. */
int tt__trace_g(const tt__g *g, uintptr_t *pcs, int max);

/* PCs of the caller, innermost first, skipping `skip` frames above the
 * caller of this function. */
int tt__trace_here(uintptr_t *pcs, int max, int skip);

/* Frames for one PC into out[max], innermost (most deeply inlined) first,
 * the physical function last; returns how many (at least 1 when max >= 1:
 * an unknown PC gives one frame with func "?"). Thread-safe. */
int tt__symbolize(uintptr_t pc, bool return_addr, tt__frame *out, int max);

/* Everything the dumps print about one PC, computed once and cached for
 * the life of the process (thread-safe, never freed). */
typedef struct tt__sym {
	uintptr_t pc;
	bool return_addr;
	bool all_internal;   /* every frame is tether-internal */
	int nframes;         /* >= 1 */
	tt__frame *frames;   /* innermost first */
	/* debug=2 text of frame i is d2 + d2_off[i] up to d2 + d2_off[i+1]:
	 * "func(...)\n\tfile:line +0xoff\n" */
	const char *d2;
	const uint32_t *d2_off;
	/* debug=1 cell of frame i: "func+0xoff" (from the physical entry,
	 * at the PC of the call for a return address) */
	const char *const *d1;
	const uint16_t *d1_len;
	uintptr_t d1_pc;     /* the PC debug=1 prints (pc - 1 for a return
				address) */
	/* For pc as the place a goroutine was created: "created by F in
	 * goroutine " + parent id + "\n\tfile:line +0xoff\n". */
	const char *cb_head, *cb_tail;
	uint32_t cb_head_len, cb_tail_len;
} tt__sym;

/* The cached record for pc; NULL only when out of memory. */
const tt__sym *tt__sym_get(uintptr_t pc, bool return_addr);

#endif
