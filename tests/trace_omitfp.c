/* tether tests — built with -O2 -fomit-frame-pointer (tests/CMakeLists.txt):
 * unwinding must follow the CFI, and the always_inline function must show
 * as a frame of its own. */
#include "trace_helpers.h"

static inline __attribute__((always_inline)) int omitfp_inl(tt_chan *c)
{
	int v = 0;
	int r = tt_chan_recv(c, &v, sizeof v, NULL); /* omitfp_recv_line */
	return r + v;
}
const int omitfp_recv_line = __LINE__ - 3;

__attribute__((noinline)) int omitfp_outer(tt_chan *c)
{
	volatile int pad[40];
	pad[0] = 1;
	pad[39] = 2;
	int r = omitfp_inl(c); /* omitfp_call_line */
	return r + pad[0] + pad[39];
}
const int omitfp_call_line = __LINE__ - 3;

/* Three levels: omitfp_nest_outer calls omitfp_nest_mid calls
 * omitfp_nest_inner, both always_inline. Each must show as a frame with
 * its own file:line. */
static inline __attribute__((always_inline)) int omitfp_nest_inner(tt_chan *c)
{
	int v = 0;
	int r = tt_chan_recv(c, &v, sizeof v, NULL); /* omitfp_nest_recv_line */
	return r + v;
}
const int omitfp_nest_recv_line = __LINE__ - 3;

static inline __attribute__((always_inline)) int omitfp_nest_mid(tt_chan *c)
{
	volatile int k = 3;
	int r = omitfp_nest_inner(c); /* omitfp_nest_mid_line */
	return r + k;
}
const int omitfp_nest_mid_line = __LINE__ - 3;

__attribute__((noinline)) int omitfp_nest_outer(tt_chan *c)
{
	volatile int pad[8];
	pad[0] = 1;
	int r = omitfp_nest_mid(c); /* omitfp_nest_outer_line */
	return r + pad[0];
}
const int omitfp_nest_outer_line = __LINE__ - 3;
