/* send_no_receiver — leak shape 2: sending on an unbuffered channel that
 * nobody receives from.
 *
 * main starts a slow lookup in a goroutine and waits for its answer with a
 * timeout. The timeout wins; main goes on, and the goroutine, when it
 * finally has the answer, blocks in `result <- v` forever, since nobody
 * will ever receive. Fixed: the result channel has room for the one
 * answer (make(chan int, 1)), so the send completes whether anyone is
 * still listening or not.
 *
 *   send_no_receiver [--fixed] [--wait S]
 */
#include "leakex.h"

static void lookup(void *arg)
{
	tt_chan *result = arg;
	tt_sleep(50 * TT_MILLISECOND); /* the slow part */
	int answer = 42;
	leakex_must(tt_send(result, &answer), "tt_send");
	printf("lookup: answer delivered\n");
}

int main(int argc, char **argv)
{
	leakex_args a = leakex_parse(argc, argv, 1.0);
	tt_chan *result;
	leakex_must(tt_chan_make(&result, sizeof(int), a.fixed ? 1 : 0),
		    "tt_chan_make");
	leakex_must((int)TT_GO(lookup, result, result), "TT_GO");
	int v;
	int r = tt_chan_recv_until(result, &v, sizeof v, NULL,
				   tt_deadline_in(10 * TT_MILLISECOND));
	if (r == -ETIMEDOUT)
		printf("main: lookup timed out, going on without it\n");
	else
		printf("main: answer %d\n", v);
	tt_chan_release(result);
	return leakex_check(&a);
}
