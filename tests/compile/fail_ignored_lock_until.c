/* Must not compile with -Werror: a lock with a deadline may not have been
 * taken. */
#include <tether.h>

void f(tt_mutex *m);
void f(tt_mutex *m)
{
	tt_mutex_lock_until(m, tt_deadline_in(TT_SECOND));
}
