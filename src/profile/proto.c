/* tether — debug=0: the goroutine profile as profile.proto. */
#include <errno.h>

#include "profile/profile.h"

int tt__profile_proto(tt__buf *b, const tt__snapshot *s, bool leaked_only)
{
	(void)b;
	(void)s;
	(void)leaked_only;
	return -ENOTSUP;
}
