/* Must not compile: TT_DEFER_UNLOCK takes a tt_mutex, not an RWMutex. */
#include <tether.h>

void f(tt_rwmutex *rw);
void f(tt_rwmutex *rw)
{
	TT_DEFER_UNLOCK(rw);
}
