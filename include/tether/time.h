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

/* ---- time.AfterFunc and time.Tick ------------------------------------- */

/* time.AfterFunc(ns, fn): when ns have passed (ns <= 0: at once), fn(arg)
 * runs in a goroutine of its own, on the calling thread's scheduler.
 * *out gets a timer handle with one reference (release it with
 * tt_timer_release); out may be NULL when the program will never stop
 * the call. Releasing the handle does not cancel the call, as dropping
 * Go's *Timer does not: only tt_timer_stop does. Go 1.23's semantics:
 *   tt_timer_stop   true if it stopped the call from happening (the
 *                   timer had not fired); false once fn has been started
 *                   (it may still be running) or the timer was stopped.
 *                   It does not wait for fn.
 *   tt_timer_reset  true if it moved a call still pending to ns from
 *                   now; false if fn had started or the timer was
 *                   stopped, and then fn runs again, ns from now.
 *   tt_timer_chan   NULL, with -EINVAL recorded: the timer has no
 *                   channel (Go's nil C, which never receives).
 * The goroutine is started when the scheduler runs its timers (when a
 * goroutine parks or yields), like every tether timer; it is named
 * "time.AfterFunc" in dumps, created by the goroutine that called
 * tt_after_func, at the call.
 * Out of memory for its stack at that point is fatal, as in Go. -EINVAL
 * for a NULL fn, -ENOMEM. */
TT_EXPORT int tt_after_func(tt_timer **out, int64_t ns, void (*fn)(void *),
			    void *arg);

/* time.Tick(period): the channel of a new ticker that the runtime owns.
 * NULL (with -EINVAL recorded) for period <= 0, as Go's Tick returns nil;
 * NULL too, with -ENOMEM, when out of memory. The ticker is never stopped
 * and its channel must not be released: Go's Tick "leaks" by design, for
 * loops that tick for the life of the program. Go 1.23 collects a ticker
 * nobody can reach any more; tether cannot know whether the program
 * still holds the channel, so the ticker keeps ticking, and costs one
 * object slot and a timer event per period, until its thread ends (its
 * scheduler's objects end with it, see go.h). An armed ticker counts as
 * a possible wake-up, so a scheduler with one is never reported
 * deadlocked (Go's checkdead does the same with pending timers). Use
 * tt_ticker_make for a ticker you stop. */
TT_EXPORT tt_chan *tt_tick(int64_t period);

#ifdef __cplusplus
}
#endif
#endif
