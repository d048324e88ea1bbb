/* tether — timers, tickers and time.After, as channels.
 *
 * Design notes
 * ------------
 * A timer is a channel of capacity 1 carrying int64_t, allocated together
 * with its heap node (tt__chan_timer), so a tt_timer handle is that
 * channel under another type and tt_timer_chan is a cast. When the timer
 * fires it sends the time without blocking; a full buffer drops the value
 * (only a slow ticker's receiver can see that, and Go drops too).
 *
 * Because the heap node belongs to the channel, freeing the channel (its
 * last reference released, nobody parked on it) takes the timer out of
 * the heap: a tt_after per loop iteration costs nothing once released.
 * A goroutine parked on a timer channel keeps it (and its timer) alive
 * even if every reference is gone, since the timer will still wake it.
 *
 * Stop and Reset follow Go 1.23's time.Timer, not the Go installed here
 * (1.19, older semantics). In Go 1.23 a NewTimer channel is synchronous:
 * a value the program has not received was never delivered, Stop and
 * Reset discard it, and Stop "is guaranteed to return true" if the
 * program has not received from the channel. Here the channel has a
 * buffer of one, so "not delivered" is qcount == 1: the value was sent
 * into the buffer (no receiver was parked), nobody has taken it. A value
 * handed straight to a parked receiver leaves the buffer empty and counts
 * as delivered. So Stop and Reset report true when the heap still held
 * the timer or the buffer still held its value, and both empty the
 * buffer; the old idiom `if (!tt_timer_stop(t)) tt_recv(...)` therefore
 * never blocks. Go 1.23's Ticker.Stop and Ticker.Reset report nothing;
 * tt_ticker_stop/tt_ticker_reset discard a waiting tick the same way.
 */
#include <errno.h>

#include "chan.h"

static void timer_fire(tt__timer *t, int64_t now)
{
	tt_chan *c = t->ctx;
	if (c->recvq.first || c->qcount < c->cap)
		tt__chan_try_send(c->sched, c, &now);
}

static int arm_new(tt_chan **out, int64_t ns, int64_t period, bool ticker)
{
	tt_chan *c;
	int r = tt__chan_new(&c, sizeof(int64_t), 1, true);
	if (r)
		return r;
	tt__chan_timer *ct = c->timer;
	ct->is_ticker = ticker;
	ct->t.fn = timer_fire;
	ct->t.period = period;
	ct->t.when = ns <= 0 ? tt_now() : tt_deadline_in(ns);
	tt__timer_add(c->sched, &ct->t);
	*out = chan_handle(c);
	return 0;
}

/* The channel behind a tt_timer or tt_ticker handle, or NULL with the
 * error recorded. */
static tt_chan *timer_of(void *h, bool ticker, const char *op)
{
	if (h == NULL) {
		tt__err(-EINVAL, "%s: NULL handle", op);
		return NULL;
	}
	tt__sched *s = tt__sched_get();
	if (tt__chan_check(s, h, sizeof(int64_t), false, op) != 0)
		return NULL;
	tt_chan *c = chan_of(h);
	if (c->timer == NULL || c->timer->is_ticker != ticker) {
		tt__err(-EINVAL, "%s: %p is not a %s", op, h,
			ticker ? "ticker" : "timer");
		return NULL;
	}
	return c;
}

/* Empty c's buffer; reports whether it held a value (fired, not yet
 * received: not delivered). */
static bool drain(tt_chan *c)
{
	bool held = c->qcount > 0;
	c->qcount = 0;
	c->sendx = c->recvx = 0;
	return held;
}

int tt_after(tt_chan **out, int64_t ns)
{
	if (out == NULL)
		return tt__err(-EINVAL, "tt_after: out is NULL");
	return arm_new(out, ns, 0, false);
}

int tt_timer_make(tt_timer **out, int64_t ns)
{
	if (out == NULL)
		return tt__err(-EINVAL, "tt_timer_make: out is NULL");
	return arm_new((tt_chan **)out, ns, 0, false);
}

tt_chan *tt_timer_chan(tt_timer *t)
{
	tt_chan *c = timer_of(t, false, "tt_timer_chan");
	return c ? chan_handle(c) : NULL;
}

bool tt_timer_stop(tt_timer *t)
{
	tt_chan *c = timer_of(t, false, "tt_timer_stop");
	if (c == NULL)
		return false;
	bool armed = tt__timer_del(c->sched, &c->timer->t);
	bool unreceived = drain(c);
	return armed || unreceived;
}

bool tt_timer_reset(tt_timer *t, int64_t ns)
{
	tt_chan *c = timer_of(t, false, "tt_timer_reset");
	if (c == NULL)
		return false;
	bool armed = tt__timer_del(c->sched, &c->timer->t);
	bool unreceived = drain(c);
	c->timer->t.when = ns <= 0 ? tt_now() : tt_deadline_in(ns);
	tt__timer_add(c->sched, &c->timer->t);
	return armed || unreceived;
}

int tt_timer_release(tt_timer *t)
{
	if (timer_of(t, false, "tt_timer_release") == NULL)
		return tt__current()->last_err;
	return tt_chan_release((tt_chan *)t);
}

int tt_ticker_make(tt_ticker **out, int64_t period)
{
	if (out == NULL)
		return tt__err(-EINVAL, "tt_ticker_make: out is NULL");
	if (period <= 0)
		return tt__err(-EINVAL,
			       "tt_ticker_make: non-positive period %lld",
			       (long long)period);
	return arm_new((tt_chan **)out, period, period, true);
}

tt_chan *tt_ticker_chan(tt_ticker *t)
{
	tt_chan *c = timer_of(t, true, "tt_ticker_chan");
	return c ? chan_handle(c) : NULL;
}

void tt_ticker_stop(tt_ticker *t)
{
	tt_chan *c = timer_of(t, true, "tt_ticker_stop");
	if (c == NULL)
		return;
	tt__timer_del(c->sched, &c->timer->t);
	drain(c);
}

int tt_ticker_reset(tt_ticker *t, int64_t period)
{
	tt_chan *c = timer_of(t, true, "tt_ticker_reset");
	if (c == NULL)
		return tt__current()->last_err;
	if (period <= 0)
		return tt__err(-EINVAL,
			       "tt_ticker_reset: non-positive period %lld",
			       (long long)period);
	tt__timer_del(c->sched, &c->timer->t);
	drain(c);
	c->timer->t.period = period;
	c->timer->t.when = tt_deadline_in(period);
	tt__timer_add(c->sched, &c->timer->t);
	return 0;
}

int tt_ticker_release(tt_ticker *t)
{
	if (timer_of(t, true, "tt_ticker_release") == NULL)
		return tt__current()->last_err;
	return tt_chan_release((tt_chan *)t);
}
