/* tether — debug=0: the goroutine profile as profile.proto, gzipped
 * (the encoder is in pprof.c; symbols come from the trace layer). */
#include "profile/pprof.h"
#include "profile/profile.h"
#include "trace/trace.h"

int tt__profile_proto(tt__buf *b, const tt__snapshot *s, bool leaked_only)
{
	return tt__pprof_write(b, s, leaked_only, tt__symbolize);
}

int tt__profile_proto_type(tt__buf *b, const tt__snapshot *s,
			   const char *type)
{
	return tt__pprof_write_type(b, s, false, type, tt__symbolize);
}
