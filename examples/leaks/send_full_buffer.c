/* send_full_buffer — leak shape 3: sending on a full buffered channel that
 * nobody drains.
 *
 * A producer fills a channel of capacity 2 with five results; the consumer
 * takes the first two it needs and stops reading. The producer blocks on
 * the third send forever. Fixed: the consumer keeps draining to the end
 * (the producer closes the channel when done), so every send completes.
 *
 *   send_full_buffer [--fixed] [--wait S]
 */
#include "leakex.h"

static void producer(void *arg)
{
	tt_chan *out = arg;
	for (int i = 1; i <= 5; i++)
		leakex_must(tt_send(out, &i), "tt_send");
	/* Before the close: the consumer, which may run on another thread,
	 * sees the close only after this line is out. */
	printf("producer: all 5 sent\n");
	tt_chan_close(out);
}

int main(int argc, char **argv)
{
	leakex_args a = leakex_parse(argc, argv, 1.0);
	tt_chan *out;
	leakex_must(tt_chan_make(&out, sizeof(int), 2), "tt_chan_make");
	leakex_must((int)TT_GO(producer, out, out), "TT_GO");
	int v;
	bool ok;
	for (int i = 0; i < 2; i++) {
		leakex_must(tt_recv(out, &v, &ok), "tt_recv");
		printf("consumer: got %d\n", v);
	}
	if (a.fixed) {
		int drained = 0;
		while (tt_recv(out, &v, &ok) == 0 && ok)
			drained++;
		printf("consumer: drained %d more\n", drained);
	}
	tt_chan_release(out);
	return leakex_check(&a);
}
