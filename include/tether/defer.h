/* tether — cleanup that runs when a scope ends: Go's defer, for the
 * cleanups that matter most.
 *
 *     tt_ctx *ctx;
 *     if (tt_ctx_with_timeout(&ctx, parent, TT_SECOND) != 0)
 *             return -1;
 *     TT_DEFER_CANCEL(ctx);            // defer cancel()
 *
 *     if (tt_mutex_lock(mu) != 0)
 *             return -1;
 *     TT_DEFER_UNLOCK(mu);             // defer mu.Unlock()
 *
 * Each macro declares a hidden variable holding its argument (evaluated
 * once, where the macro stands) with the compiler's cleanup attribute, so
 * the call runs however the scope is left: return, break, goto out of it,
 * or the end of the block. Deferred calls run in the reverse order of
 * their macros, as Go's do. They do not run when the goroutine ends by
 * tt_goexit or a panic (C has no unwinding): hand objects to a goroutine
 * with TT_GO or tt_go_attr.own when they must be released however it
 * ends. A NULL argument defers nothing.
 *
 *   TT_DEFER_RELEASE(obj)     tt_obj_release(obj): any tether object
 *   TT_DEFER_CANCEL(ctx)      tt_ctx_cancel(ctx), then tt_ctx_release(ctx):
 *                             Go's `defer cancel()`, which also ends the
 *                             context's resources
 *   TT_DEFER_UNLOCK(m)        tt_mutex_unlock(m)
 *   TT_DEFER_RUNLOCK(rw)      tt_rwmutex_runlock(rw)
 *   TT_DEFER_RWUNLOCK(rw)     tt_rwmutex_unlock(rw)
 *   TT_DEFER_WG_DONE(wg)      tt_wg_done(wg)
 *
 * gcc and clang only (__attribute__((cleanup))); elsewhere the macros are
 * not defined (TT_HAVE_DEFER is 0), and the plain-C way is a single exit
 * at the end of the function that every path jumps to:
 *
 *     int r = -1;
 *     if (tt_ctx_with_timeout(&ctx, parent, TT_SECOND) != 0)
 *             return -1;
 *     if (step(ctx) != 0)
 *             goto out;
 *     r = 0;
 * out:
 *     tt_ctx_cancel(ctx);
 *     tt_ctx_release(ctx);
 *     return r;
 */
#ifndef TETHER_DEFER_H
#define TETHER_DEFER_H

#include "chan.h"
#include "ctx.h"
#include "sync.h"

#if defined(__GNUC__) || defined(__clang__)
#define TT_HAVE_DEFER 1

#ifdef __cplusplus
extern "C" {
#endif

static inline void tt__defer_release(void *const *p)
{
	if (*p)
		(void)tt_obj_release(*p);
}

static inline void tt__defer_cancel(tt_ctx *const *p)
{
	if (*p) {
		(void)tt_ctx_cancel(*p);
		(void)tt_ctx_release(*p);
	}
}

static inline void tt__defer_unlock(tt_mutex *const *p)
{
	if (*p)
		(void)tt_mutex_unlock(*p);
}

static inline void tt__defer_runlock(tt_rwmutex *const *p)
{
	if (*p)
		(void)tt_rwmutex_runlock(*p);
}

static inline void tt__defer_rwunlock(tt_rwmutex *const *p)
{
	if (*p)
		(void)tt_rwmutex_unlock(*p);
}

static inline void tt__defer_wg_done(tt_waitgroup *const *p)
{
	if (*p)
		(void)tt_wg_done(*p);
}

#ifdef __cplusplus
}
#endif

#define TT__DEFER_CAT2(a, b) a##b
#define TT__DEFER_CAT(a, b) TT__DEFER_CAT2(a, b)
#define TT__DEFER(type, fn, x)                                              \
	type const TT__DEFER_CAT(tt__deferred_, __COUNTER__)                \
		__attribute__((cleanup(fn), unused)) = (x)

#define TT_DEFER_RELEASE(obj) TT__DEFER(void *, tt__defer_release, (obj))
#define TT_DEFER_CANCEL(ctx) TT__DEFER(tt_ctx *, tt__defer_cancel, (ctx))
#define TT_DEFER_UNLOCK(m) TT__DEFER(tt_mutex *, tt__defer_unlock, (m))
#define TT_DEFER_RUNLOCK(rw) TT__DEFER(tt_rwmutex *, tt__defer_runlock, (rw))
#define TT_DEFER_RWUNLOCK(rw)                                               \
	TT__DEFER(tt_rwmutex *, tt__defer_rwunlock, (rw))
#define TT_DEFER_WG_DONE(wg) TT__DEFER(tt_waitgroup *, tt__defer_wg_done, (wg))

#else
#define TT_HAVE_DEFER 0
#endif

#endif
