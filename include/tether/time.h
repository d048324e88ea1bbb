/* tether — sleep, timers and tickers (Go's time package).
 *
 * Timer channels carry an int64_t: the tt_now() time at which the timer
 * fired. Their capacity is 1, and Stop/Reset discard a value not yet
 * received (Go 1.23's semantics), so a receive after Reset never sees a
 * stale tick.
 *
 * tt_after does not leak: the timer behind the channel it returns is
 * stopped and freed when that channel's last reference is released, so a
 * select loop that makes a fresh tt_after each iteration and releases it
 * runs in constant memory (the classic Go pitfall is a timer per
 * iteration that lives until it fires). Better still, give tt_select a
 * deadline: no timer object at all. */
#ifndef TETHER_TIME_H
#define TETHER_TIME_H

#include "chan.h"
#include "common.h"

#ifdef __cplusplus
extern "C" {
#endif

/* time.Sleep(ns); ns <= 0 only yields. */
TT_EXPORT int tt_sleep(int64_t ns);
TT_EXPORT int tt_sleep_until(int64_t deadline);

/* time.After(ns): a new channel that receives once, ns from now. The
 * caller owns one reference. */
TT_EXPORT int tt_after(tt_chan **out, int64_t ns);

typedef struct tt_timer tt_timer;

/* NULL handles. Every tt_timer_ and tt_ticker_ call given a NULL handle
 * (or a handle of the other kind: a ticker to a tt_timer_ call, a timer
 * to a tt_ticker_ call) does nothing and records -EINVAL with the message
 * "<function>: NULL handle" (or "... is not a timer"/"ticker") for
 * tt_last_error(). What each returns then:
 *   tt_timer_stop, tt_timer_reset    false
 *   tt_timer_chan, tt_ticker_chan    NULL
 *   tt_timer_release, tt_ticker_reset, tt_ticker_release    -EINVAL
 *   tt_ticker_stop                   (nothing)
 * Unlike free(NULL), tt_timer_release(NULL) is an error, not a no-op. */

/* time.NewTimer(ns). */
TT_EXPORT int tt_timer_make(tt_timer **out, int64_t ns);
/* The timer's channel, borrowed: valid while the timer is. */
TT_EXPORT tt_chan *tt_timer_chan(tt_timer *t);
/* Stop (Go 1.23's Timer.Stop): true if the timer had not delivered its
 * value, that is it had not fired yet, or it fired and the value still
 * waits unreceived in the channel; that value is discarded, so no receive
 * after Stop sees it. False if the value was received already or the
 * timer was stopped. So `if (!tt_timer_stop(t)) tt_recv(tt_timer_chan(t),
 * ...)` never blocks. */
TT_EXPORT bool tt_timer_stop(tt_timer *t);
/* Reset to fire ns from now (ns <= 0: now). Returns what Stop would
 * have, by the same rule, and discards an unreceived value likewise. */
TT_EXPORT bool tt_timer_reset(tt_timer *t, int64_t ns);
TT_EXPORT int tt_timer_release(tt_timer *t);

typedef struct tt_ticker tt_ticker;

/* time.NewTicker(period): -EINVAL for period <= 0. A slow receiver loses
 * ticks rather than queueing them. */
TT_EXPORT int tt_ticker_make(tt_ticker **out, int64_t period);
TT_EXPORT tt_chan *tt_ticker_chan(tt_ticker *t);
TT_EXPORT void tt_ticker_stop(tt_ticker *t);
TT_EXPORT int tt_ticker_reset(tt_ticker *t, int64_t period);
TT_EXPORT int tt_ticker_release(tt_ticker *t);

#ifdef __cplusplus
}
#endif
#endif
