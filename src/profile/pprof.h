/* tether — the goroutine profile as pprof's profile.proto (debug=0).
 *
 * For tt_profile_write(name, 0, ...): take the snapshot as for the text
 * formats, then
 *
 *   tt__buf b = {0};
 *   int err = tt__pprof_write_named(&b, &snap, name, keep, tt__symbolize);
 *
 * with name the profile's ("goroutine" or "goroutineleak": Go names the
 * sample and period types after the profile), keep NULL for "goroutine"
 * and a filter on g->leaked for "goroutineleak"; b then holds the gzipped
 * profile (hand b.data, b.len to the caller's write function, then
 * tt__buf_free). The snapshot is only read, with nothing locked.
 *
 * What is written, as Go's runtime/pprof writes it:
 *   sample_type [NAME/count], period_type NAME/count, period 1,
 *   time_nanos (wall clock);
 *   one sample per distinct (stack, goroutine name) with its count, the
 *   name as a string label "name" when the goroutines have one;
 *   one location per distinct PC, with its mapping, its address (the
 *   call: return address - 1, as debug=1 prints it) and its lines,
 *   innermost inlined frame first; at the top of a stack tether's own
 *   inlined frames are left out (as the text formats leave them out);
 *   one function per distinct (name, file), system_name = name;
 *   one mapping per loaded ELF object's executable segment, the program
 *   first, with file name, offset and GNU build id; has_functions when
 *   every location in it was symbolized;
 *   the string table, "" first.
 * The whole is gzipped (zlib, gzip header). */
#ifndef TT_PPROF_H
#define TT_PPROF_H

#include <stdbool.h>

#include "profile/profile.h"
#include "trace/trace.h"

/* tt__symbolize's signature; tests pass a symbolizer of their own. */
typedef int (*tt__symbolize_fn)(uintptr_t pc, bool return_addr, tt__frame *out,
				int max);

/* Append the gzipped profile `name` of the goroutines of s for which
 * keep(g) is true (all when keep is NULL) to out, symbolizing each
 * distinct PC once with sym. Returns 0, -EINVAL (a NULL argument or an
 * empty name), -ENOMEM, or -EIO if zlib fails; out->err is set when out
 * itself could not grow. */
int tt__pprof_write_named(tt__buf *out, const tt__snapshot *s, const char *name,
			  bool (*keep)(const tt__gsnap *g),
			  tt__symbolize_fn sym);

/* The same for name "goroutine". */
int tt__pprof_write(tt__buf *out, const tt__snapshot *s,
		    bool (*keep)(const tt__gsnap *g), tt__symbolize_fn sym);

#endif
