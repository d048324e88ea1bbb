/* Must not compile with -Werror: which case a select performed is
 * ignored. */
#include <tether.h>

void f(tt_chan *c);
void f(tt_chan *c)
{
	tt_case k = TT_CASE_RECV_DISCARD(c, NULL);
	tt_select(&k, 1, TT_FOREVER);
}
