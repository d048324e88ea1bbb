/* quit_channel — stopping a goroutine from outside, way (a): a quit
 * channel that is closed when the goroutine must end.
 *
 * A worker does a unit of work every few milliseconds, and between units
 * selects on its quit channel. Leaky: main never closes quit, so the
 * worker runs on after main has finished with it (it is not even blocked,
 * just never told). Fixed: main closes quit; the worker sees it and ends.
 *
 *   quit_channel [--fixed] [--wait S]
 */
#include "leakex.h"

struct worker_args {
	tt_chan *quit; /* chan struct{}, closed to stop */
	long units;
};

static void worker(void *arg)
{
	struct worker_args *w = arg;
	tt_case quit = TT_CASE_RECV_DISCARD(w->quit, NULL);
	for (;;) {
		/* select { case <-quit: return; case <-time.After(2ms): } */
		if (tt_select(&quit, 1, tt_deadline_in(2 * TT_MILLISECOND)) ==
		    0)
			break;
		w->units++;
	}
	printf("worker: told to quit after %s units\n",
	       w->units > 0 ? "some" : "no");
}

int main(int argc, char **argv)
{
	leakex_args a = leakex_parse(argc, argv, 1.0);
	static struct worker_args w;
	leakex_must(tt_chan_make(&w.quit, 0, 0), "tt_chan_make");
	leakex_must((int)TT_GO(worker, &w, w.quit), "TT_GO");
	tt_sleep(20 * TT_MILLISECOND); /* main's own work */
	if (a.fixed)
		tt_chan_close(w.quit); /* close(quit) */
	tt_chan_release(w.quit);
	printf("main: done\n");
	return leakex_check(&a);
}
