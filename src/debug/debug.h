/* tether — debug layer: what the server and its pages share. */
#ifndef TT_DEBUG_DEBUG_H
#define TT_DEBUG_DEBUG_H

#include "profile/profile.h"

/* The grouped page ("/"): every goroutine of the calling thread's
 * scheduler grouped by stack, with a flame graph. Returns 0 or -ENOMEM
 * (b->err says the same). */
int tt__debug_page(tt__buf *b);

/* The /debug/pprof/ index, with counts. */
int tt__debug_index(tt__buf *b);

/* s[n] into b with &, <, >, " and ' escaped; bytes that are not printable
 * ASCII, UTF-8 or not, are written as-is except controls, which become
 * U+FFFD (so nothing a symbol or file name holds can open a tag). */
void tt__html_escape(tt__buf *b, const char *s, size_t n);

#endif
