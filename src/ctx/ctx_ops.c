/* tether — blocking calls that also wait on a context's done channel.
 *
 * Each is one select: the operation's case plus a receive on
 * tt_ctx_done(ctx) (NULL, a never-ready nil channel, for background). So
 * they inherit select's semantics exactly, including the uniformly random
 * choice when the operation and the cancellation are both ready. */
#include <errno.h>
#include <stdlib.h>

#include "internal.h"
#include "tether/ctx.h"
#include "tether/fd.h"
#include "tether/sync.h"

#define STACK_CASES 8

/* The context's done channel in *done, or the error of a bad ctx. */
static int done_of(tt_ctx *ctx, tt_chan **done)
{
	int r = tt_ctx_err(ctx);
	if (r == -EINVAL || r == -EBADF)
		return r;
	*done = tt_ctx_done(ctx);
	return 0;
}

int tt_select_ctx(tt_ctx *ctx, const tt_case *cases, size_t n)
{
	tt_chan *done;
	int r = done_of(ctx, &done);
	if (r)
		return r;
	if (n > 0 && cases == NULL)
		return tt__err(-EINVAL, "tt_select_ctx: cases is NULL");
	tt_case stack_cs[STACK_CASES];
	tt_case *cs = stack_cs;
	if (n + 1 > STACK_CASES) {
		if (n > SIZE_MAX / sizeof *cs - 1 ||
		    (cs = malloc((n + 1) * sizeof *cs)) == NULL)
			return tt__err(-ENOMEM,
				       "tt_select_ctx: out of memory for %zu "
				       "cases",
				       n);
	}
	for (size_t i = 0; i < n; i++)
		cs[i] = cases[i];
	cs[n] = (tt_case)TT_CASE_RECV_DISCARD(done, NULL);
	r = tt_select(cs, n + 1, TT_FOREVER);
	if (cs != stack_cs)
		free(cs);
	if (r == (int)n)
		return tt_ctx_err(ctx);
	return r;
}

int tt_chan_send_ctx(tt_ctx *ctx, tt_chan *c, const void *elem,
		     size_t elem_size)
{
	tt_case k = {TT_CASE_SEND, c, (void *)elem, elem_size, NULL};
	return tt_select_ctx(ctx, &k, 1);
}

int tt_chan_recv_ctx(tt_ctx *ctx, tt_chan *c, void *elem, size_t elem_size,
		     bool *ok)
{
	tt_case k = {TT_CASE_RECV, c, elem, elem_size, ok};
	return tt_select_ctx(ctx, &k, 1);
}

int tt_sleep_ctx(tt_ctx *ctx, int64_t ns)
{
	tt_chan *done;
	int r = done_of(ctx, &done);
	if (r)
		return r;
	tt_case k = TT_CASE_RECV_DISCARD(done, NULL);
	r = tt_select(&k, 1, ns <= 0 ? TT_TRY : tt_deadline_in(ns));
	if (r == 0)
		return tt_ctx_err(ctx);
	if (r == -EAGAIN) /* ns <= 0: like time.Sleep(0), just yield */
		tt_yield();
	return (r == -ETIMEDOUT || r == -EAGAIN) ? 0 : r;
}

/* ---- sync and descriptors ------------------------------------------------
 *
 * Each runs the deadline form of the call with a deadline that the
 * context's cancellation ends early (tt__ctx_wait_begin in ctx.c). The
 * descriptor forms other than connect live in the poll layer, which
 * waits on the done channel itself. */

#define CTX_WAIT(ctx, op, call)                                             \
	do {                                                                \
		int64_t dl;                                                 \
		tt_ctx *armed;                                              \
		int e_ = tt__ctx_wait_begin(ctx, &dl, &armed, op);          \
		if (e_)                                                     \
			return e_;                                          \
		return tt__ctx_wait_end(armed, (call));                     \
	} while (0)

int tt_wg_wait_ctx(tt_ctx *ctx, tt_waitgroup *wg)
{
	CTX_WAIT(ctx, "tt_wg_wait_ctx", tt_wg_wait_until(wg, dl));
}

int tt_mutex_lock_ctx(tt_ctx *ctx, tt_mutex *m)
{
	CTX_WAIT(ctx, "tt_mutex_lock_ctx", tt_mutex_lock_until(m, dl));
}

int tt_rwmutex_rlock_ctx(tt_ctx *ctx, tt_rwmutex *m)
{
	CTX_WAIT(ctx, "tt_rwmutex_rlock_ctx", tt_rwmutex_rlock_until(m, dl));
}

int tt_rwmutex_lock_ctx(tt_ctx *ctx, tt_rwmutex *m)
{
	CTX_WAIT(ctx, "tt_rwmutex_lock_ctx", tt_rwmutex_lock_until(m, dl));
}

int tt_cond_wait_ctx(tt_ctx *ctx, tt_cond *c)
{
	CTX_WAIT(ctx, "tt_cond_wait_ctx", tt_cond_wait_until(c, dl));
}

int tt_connect_ctx(tt_ctx *ctx, int fd, const struct sockaddr *addr,
		   socklen_t addrlen)
{
	CTX_WAIT(ctx, "tt_connect_ctx", tt_connect(fd, addr, addrlen, dl));
}
