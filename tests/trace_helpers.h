/* tether tests — helpers for test_trace built apart from it: a shared
 * library (trace_lib.c) and a file built with -O2 -fomit-frame-pointer
 * (trace_omitfp.c). */
#ifndef TETHER_TRACE_HELPERS_H
#define TETHER_TRACE_HELPERS_H

#include <tether.h>

/* trace_lib.c, in libtt_trace_lib.so: calls fn(arg). */
int trace_lib_call(int (*fn)(void *), void *arg);

/* trace_omitfp.c: receives from c through an always_inline function. */
int omitfp_outer(tt_chan *c);
/* The lines of the tt_chan_recv call inside the inlined function and of
 * the inlined call in omitfp_outer. */
extern const int omitfp_recv_line;
extern const int omitfp_call_line;

/* trace_omitfp.c: receives from c through two nested always_inline
 * functions, omitfp_nest_mid and omitfp_nest_inner. The lines of the
 * tt_chan_recv call in the inner one, of the inner call in the middle one
 * and of the middle call in omitfp_nest_outer. */
int omitfp_nest_outer(tt_chan *c);
extern const int omitfp_nest_recv_line;
extern const int omitfp_nest_mid_line;
extern const int omitfp_nest_outer_line;

#endif
