/* Must compile cleanly with -Wall -Wextra -Werror: the same calls with
 * their results used, the shorthands and the defer macros. */
#include <tether.h>

int f(tt_chan *c, tt_chan *done, tt_ctx *ctx, tt_waitgroup *wg,
      tt_mutex *m, tt_rwmutex *rw);
int f(tt_chan *c, tt_chan *done, tt_ctx *ctx, tt_waitgroup *wg,
      tt_mutex *m, tt_rwmutex *rw)
{
	int v = 1;
	if (tt_send(c, &v) || tt_recv(c, &v, NULL) ||
	    tt_send_until(c, &v, TT_TRY) || tt_recv_until(c, &v, NULL, TT_TRY) ||
	    tt_send_ctx(ctx, c, &v) || tt_recv_ctx(ctx, c, &v, NULL) ||
	    tt_send_empty(done) || tt_recv_discard(done, NULL))
		return -1;
	tt_case k[] = {TT_CASE_RECV_INTO(c, &v, NULL), TT_CASE_SEND_EMPTY(done)};
	switch (tt_select_default(k, 2)) {
	case 0:
	case 1:
	case TT_DEFAULT:
		break;
	default:
		return -1;
	}
	if (tt_mutex_lock(m) != 0)
		return -1;
	TT_DEFER_UNLOCK(m);
	if (tt_rwmutex_rlock(rw) != 0)
		return -1;
	TT_DEFER_RUNLOCK(rw);
	TT_DEFER_WG_DONE(wg);
	TT_DEFER_RELEASE(c);
	TT_DEFER_CANCEL(ctx);
	return tt_wg_wait_until(wg, TT_TRY);
}
