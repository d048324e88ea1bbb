/* select_all_blocked — leak shape 4: a select whose every case blocks
 * forever.
 *
 * A goroutine waits for either a message or an error from two channels;
 * neither ever comes, so its select never returns. Fixed: the select has a
 * third case, a quit channel that main closes when it is done with the
 * goroutine.
 *
 *   select_all_blocked [--fixed] [--wait S]
 */
#include "leakex.h"

struct chans {
	tt_chan *msgs, *errs, *quit; /* quit is NULL (never ready) unfixed */
};

static void waiter(void *arg)
{
	struct chans *c = arg;
	int msg, err;
	tt_case cases[] = {
		TT_CASE_RECV_INTO(c->msgs, &msg, NULL),
		TT_CASE_RECV_INTO(c->errs, &err, NULL),
		TT_CASE_RECV_DISCARD(c->quit, NULL),
	};
	int i = tt_select(cases, 3, TT_FOREVER);
	printf("waiter: case %d fired, exiting\n", i);
}

int main(int argc, char **argv)
{
	leakex_args a = leakex_parse(argc, argv, 1.0);
	static struct chans c;
	leakex_must(tt_chan_make(&c.msgs, sizeof(int), 0), "tt_chan_make");
	leakex_must(tt_chan_make(&c.errs, sizeof(int), 0), "tt_chan_make");
	if (a.fixed)
		leakex_must(tt_chan_make(&c.quit, 0, 0), "tt_chan_make");
	leakex_must((int)tt_go(waiter, &c), "tt_go");
	if (a.fixed)
		tt_chan_close(c.quit);
	int r = leakex_check(&a);
	/* The channels outlive the check: the waiter may still use them. */
	tt_chan_release(c.msgs);
	tt_chan_release(c.errs);
	if (c.quit)
		tt_chan_release(c.quit);
	return r;
}
