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

/* A profile of weighted records (the CPU profile): what each record of
 * the snapshot is worth, instead of one goroutine each. Records with the
 * same stack and labels are summed into one sample; samples are sorted
 * by their first value, largest first. */
#define TT__PPROF_MAXV 2
typedef struct tt__pprof_desc {
	size_t nvalues;                        /* 1..TT__PPROF_MAXV */
	const char *types[TT__PPROF_MAXV];     /* sample types ("samples") */
	const char *units[TT__PPROF_MAXV];     /* and units ("count") */
	const int64_t *values; /* values[i * nvalues + j]: record i, type j */
	const char *period_type, *period_unit; /* "cpu", "nanoseconds" */
	int64_t period;                        /* 10000000 at 100 Hz */
	int64_t duration_nanos;                /* 0: left out */
} tt__pprof_desc;

/* The profile of s as d describes it; time_nanos is s->taken_at's wall
 * time. -EINVAL for a NULL or malformed argument, -ENOMEM. */
int tt__pprof_write_desc(tt__buf *out, const tt__snapshot *s,
			 const tt__pprof_desc *d, tt__symbolize_fn sym);

#endif
