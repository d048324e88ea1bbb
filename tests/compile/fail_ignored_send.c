/* Must not compile with -Werror: the result of a send is ignored. */
#include <tether.h>

void f(tt_chan *c, int v);
void f(tt_chan *c, int v)
{
	tt_chan_send(c, &v, sizeof v);
}
