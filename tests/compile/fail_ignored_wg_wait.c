/* Must not compile with -Werror: a wait group wait that may have failed. */
#include <tether.h>

void f(tt_waitgroup *wg);
void f(tt_waitgroup *wg)
{
	tt_wg_wait(wg);
}
