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
	bool internal;      /* tether's own code other than its public calls
			       (tt_ names): hidden at the top of a parked
			       goroutine's stack */
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

/* The caller's return addresses, innermost first (this function's own
 * frame not included), with libunwind's fast trace (unw_backtrace: cached
 * frame layouts, no cursor per step); for the block and mutex profiles,
 * which take a stack per event. It stops at a goroutine's first frame
 * (tt__spawn_call marks it outermost), so may run on any goroutine. */
int tt__trace_fast(uintptr_t *pcs, int max);

/* Frames for one PC into out[max], innermost (most deeply inlined) first,
 * the physical function last; returns how many (at least 1 when max >= 1:
 * an unknown PC gives one frame with func "?"). Thread-safe. */
int tt__symbolize(uintptr_t pc, bool return_addr, tt__frame *out, int max);

/* Does the calling thread hold the symbolizer's lock? True only in a
 * signal handler that interrupted tt__symbolize on this thread; there,
 * tt__symbolize returns a frame named "?" instead of waiting for itself.
 * Async-signal-safe. */
bool tt__symbolizer_held(void);

/* Runs fn(arg) on the calling thread's runtime stack (1 MiB, mapped on
 * first use, with a guard page below), so that deep runtime work does not
 * depend on the size of the stack it is called from. A call made while
 * already on it (nested, or from a signal handler interrupting one) runs
 * fn in place; so does one on a thread whose runtime stack cannot be
 * mapped. */
void tt__on_runtime_stack(void (*fn)(void *), void *arg);

/* Is addr in the calling thread's runtime stack (its top included)? */
bool tt__on_runtime_stack_at(const void *addr);

/* Is addr in the guard page below the calling thread's runtime stack?
 * Async-signal-safe. */
bool tt__runtime_stack_guard_hit(const void *addr);

#endif
