/* tether tests — a shared library for test_trace: a frame of a different
 * ELF object, built with -O2 and no frame pointers, between a goroutine's
 * entry and the function where it parks. */
#include "trace_helpers.h"

volatile int trace_lib_sink;

__attribute__((noinline)) int trace_lib_call(int (*fn)(void *), void *arg)
{
	int r = fn(arg);
	/* Work after the call, so it is a call and not a jump. */
	trace_lib_sink += r;
	return trace_lib_sink;
}
