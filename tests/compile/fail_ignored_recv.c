/* Must not compile with -Werror: the result of a receive is ignored (the
 * element-size mistake on `<-done` that would go unnoticed). */
#include <tether.h>

void f(tt_chan *done);
void f(tt_chan *done)
{
	int v;
	tt_recv(done, &v, NULL);
}
