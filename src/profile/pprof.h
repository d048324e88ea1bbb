/* tether — the goroutine profile as pprof's profile.proto, gzipped: what
 * Go writes for /debug/pprof/goroutine?debug=0, read by `go tool pprof`.
 *
 * The encoder takes a snapshot (profile.h) and a symbolizer, so that it can
 * be tested with made-up stacks and symbols, and so that it depends on
 * nothing but zlib, the C library and the profile layer's slices of work
 * (tt__slice: it yields to other goroutines while it works). */
#ifndef TT_PPROF_H
#define TT_PPROF_H

#include <stdbool.h>
#include <stdint.h>

#include "profile.h"
#include "../trace/trace.h"

/* tt__symbolize's signature: the frames of pc into out[max], innermost
 * first, the physical function last; returns how many. */
typedef int (*tt__symbolize_fn)(uintptr_t pc, bool return_addr, tt__frame *out,
				int max);

/* Append to out the gzipped profile.proto of the goroutines of s (only the
 * leaked ones when leaked_only, as the "goroutineleak" profile): one sample
 * per distinct stack (and goroutine name, carried as the label "name")
 * with its count, sorted by count; one location per distinct PC with its
 * inlined frames as lines, innermost first; functions by (name, file); the
 * executable mappings of the program and of every shared object, with
 * their build ids. Every PC is taken as a return address, as the unwinder
 * reports them: it is symbolized with return_addr true and recorded as
 * pc - 1, the call instruction, as Go records it.
 *
 * Returns 0, -EINVAL for a NULL argument, or -ENOMEM (out->err is set
 * then, and out keeps what it held). */
int tt__pprof_write(tt__buf *out, const tt__snapshot *s, bool leaked_only,
		    tt__symbolize_fn sym);

/* The same with the sample type `type_name`/count (tt__pprof_write uses
 * "goroutine" or "goroutineleak"; the threadcreate profile
 * "threadcreate"). -EINVAL for a NULL type_name. */
int tt__pprof_write_type(tt__buf *out, const tt__snapshot *s,
			 bool leaked_only, const char *type_name,
			 tt__symbolize_fn sym);

/* A profile of two values per record (the block and mutex profiles:
 * contentions/count and delay/nanoseconds) instead of a count of
 * records. v holds 2 values per record of the snapshot, in its order;
 * records with equal stacks add up. Samples are sorted by their second
 * value, largest first. The period type is period_type/period_unit. */
typedef struct tt__pprof_values {
	const char *type[2], *unit[2];
	const int64_t *v;
	const char *period_type, *period_unit;
	int64_t period;
	int64_t duration; /* ns the profile covers (a delta), or 0 */
} tt__pprof_values;

/* tt__pprof_write over such a profile; the same errors, and -EINVAL for
 * a NULL vals, type or unit. */
int tt__pprof_write_values(tt__buf *out, const tt__snapshot *s,
			   const tt__pprof_values *vals, tt__symbolize_fn sym);

#endif
