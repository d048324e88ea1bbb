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
 *
 * tt_after_func's timers are timer channels of capacity 0 that nobody
 * receives from (tt_timer_chan refuses them, as Go's AfterFunc timer has
 * a nil C); their heap node carries fn and arg instead. The callback
 * cannot start a goroutine the way tt_go does (it runs inside a park), so
 * it makes one runnable (tt__go_runnable). Go runs f even when the
 * program drops its *Timer, so while the timer is armed the runtime holds
 * a reference on the channel of its own: taken when it is armed (make,
 * or a Reset of a timer that had fired or was stopped) and dropped when
 * it stops being armed (it fires, or Stop or Reset found it armed —
 * Reset keeps the one it had). The program's tt_timer_release then never
 * cancels the call; only Stop does.
 *
 * tt_tick's tickers belong to the runtime: the program gets only the
 * channel, with no reference, and the ticker is never stopped or freed.
 */
#include <errno.h>
#include <stdlib.h>

#include "chan.h"

static void timer_fire(tt__timer *t, int64_t now)
{
	tt_chan *c = t->ctx;
	bool locked = chan_lock_shared(c); /* received from other threads */
	if (c->recvq.first || c->qcount < c->cap)
		tt__chan_try_send(c->sched, c, &now);
	chan_unlock_if(c, locked);
}

static int arm_new(tt_chan **out, int64_t ns, int64_t period, bool ticker)
{
	tt_chan *c;
	int r = tt__chan_new(&c, sizeof(int64_t), 1, true);
	if (r)
		return r;
	tt__chan_timer *ct = c->timer;
	ct->is_ticker = ticker;
	ct->fn = NULL;
	ct->t.fn = timer_fire;
	ct->t.period = period;
	ct->t.when = ns <= 0 ? tt_now() : tt_deadline_in(ns);
	tt__timer_add(c->sched, &ct->t);
	*out = chan_handle(c);
	return 0;
}

/* The channel behind a tt_timer or tt_ticker handle, of this thread or
 * another's (the caller then asks its owner, or needs only what never
 * changes), or NULL with the error recorded. */
static tt_chan *timer_of(void *h, bool ticker, const char *op)
{
	if (h == NULL) {
		tt__err(-EINVAL, "%s: NULL handle", op);
		return NULL;
	}
	tt__sched *s = tt__sched_get();
	int r = tt__chan_check_any(s, h, sizeof(int64_t), false, op);
	if (r < 0)
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
	bool locked = chan_lock_shared(c);
	bool held = c->qcount > 0;
	c->qcount = 0;
	c->sendx = c->recvx = 0;
	chan_unlock_if(c, locked);
	return held;
}

/* Drop the reference an armed tt_after_func timer holds on c (it is no
 * longer armed). May free c. */
static void func_unhold(tt_chan *c)
{
	tt_chan_release(chan_handle(c));
}

static void func_fire(tt__timer *t, int64_t now)
{
	(void)now;
	tt_chan *c = t->ctx;
	tt__chan_timer *ct = c->timer;
	int64_t r = tt__go_runnable(c->sched, ct->fn, ct->arg, "time.AfterFunc",
				    ct->parent_id, ct->pc, ct->leak_scope);
	if (r < 0)
		tt__fatal("time.AfterFunc: cannot start the goroutine of the "
			  "timer %p made at %p: %s",
			  (void *)chan_handle(c), ct->pc, tt_last_error());
	func_unhold(c);
}

__attribute__((noinline)) int tt_after_func(tt_timer **out, int64_t ns,
					    void (*fn)(void *), void *arg)
{
	if (out)
		*out = NULL;
	if (fn == NULL)
		return tt__err(-EINVAL, "tt_after_func: fn is NULL");
	tt_chan *c;
	int r = tt__chan_new(&c, sizeof(int64_t), 0, true);
	if (r)
		return tt__err(r, "tt_after_func: out of memory for a timer");
	tt__chan_timer *ct = c->timer;
	ct->is_ticker = false;
	ct->fn = fn;
	ct->arg = arg;
	ct->parent_id = c->sched->current->id;
	ct->pc = __builtin_return_address(0);
	ct->leak_scope = c->sched->current->leak_scope;
	ct->t.fn = func_fire;
	ct->t.period = 0;
	ct->t.when = ns <= 0 ? tt_now() : tt_deadline_in(ns);
	/* The armed timer's reference; the program's, if it wants one. */
	if (out) {
		c->refs++;
		*out = (tt_timer *)chan_handle(c);
	}
	tt__timer_add(c->sched, &ct->t);
	return 0;
}

tt_chan *tt_tick(int64_t period)
{
	if (period <= 0) {
		tt__err(-EINVAL, "tt_tick: non-positive period %lld",
			(long long)period);
		return NULL;
	}
	tt_chan *c;
	if (arm_new(&c, period, period, true) != 0)
		return NULL;
	/* The program never sees the ticker, so it can never release it:
	 * this reference is the runtime's, for good. */
	return c;
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
	if (c && c->timer->fn) {
		tt__err(-EINVAL,
			"tt_timer_chan: timer %p was made by tt_after_func and "
			"has no channel (Go's nil C)",
			(void *)t);
		return NULL;
	}
	return c ? chan_handle(c) : NULL;
}

/* The operations' bodies, on the timer's own thread (its heap). */
static bool timer_stop_body(tt_chan *c)
{
	bool armed = tt__timer_del(c->sched, &c->timer->t);
	if (c->timer->fn) {
		/* Stopped before it fired: the call will not happen. */
		if (armed)
			func_unhold(c);
		return armed;
	}
	bool unreceived = drain(c);
	return armed || unreceived;
}

/* 1 or 0 (Reset's result), or -EOVERFLOW. */
static int timer_reset_body(tt_chan *c, int64_t ns)
{
	bool armed = tt__timer_del(c->sched, &c->timer->t);
	if (c->timer->fn && !armed) {
		/* It fired or was stopped: schedule fn to run again. */
		if (c->refs == UINT32_MAX)
			return -EOVERFLOW;
		c->refs++;
	}
	bool unreceived = drain(c);
	c->timer->t.when = ns <= 0 ? tt_now() : tt_deadline_in(ns);
	tt__timer_add(c->sched, &c->timer->t);
	return armed || unreceived;
}

static void ticker_stop_body(tt_chan *c)
{
	tt__timer_del(c->sched, &c->timer->t);
	drain(c);
}

static void ticker_reset_body(tt_chan *c, int64_t period)
{
	tt__timer_del(c->sched, &c->timer->t);
	drain(c);
	c->timer->t.period = period;
	c->timer->t.when = tt_deadline_in(period);
	tt__timer_add(c->sched, &c->timer->t);
}

/* ---- from other threads: asked of the owner (post.c) ---- */

enum { OP_TIMER_STOP, OP_TIMER_RESET, OP_TICKER_STOP, OP_TICKER_RESET };

static void run_timer_op(tt__sched *s, tt__post *p)
{
	bool ticker = p->arg >= OP_TICKER_STOP;
	tt_chan *c = chan_of(p->h);
	if (!tt__obj_is(p->h, TT__OBJ_CHAN) || c->sched != s ||
	    c->timer == NULL || c->timer->is_ticker != ticker) {
		p->misuse = true;
		tt__post_fail(p, -EBADF,
			      "%s: %p is not a live %s (released, or never "
			      "made)",
			      p->op, p->h, ticker ? "ticker" : "timer");
		return;
	}
	int64_t arg = p->value;
	p->value = 0;
	switch (p->arg) {
	case OP_TIMER_STOP:
		p->value = timer_stop_body(c);
		break;
	case OP_TIMER_RESET: {
		int r = timer_reset_body(c, arg);
		if (r < 0) {
			tt__post_fail(p, r, "%s: too many references", p->op);
			return;
		}
		p->value = r;
		break;
	}
	case OP_TICKER_STOP:
		ticker_stop_body(c);
		break;
	default:
		ticker_reset_body(c, arg);
	}
	tt__post_answer(p);
}

/* Ask c's owner for op (OP_*) with its argument: what it gives back, and
 * in *err 0 or the error recorded. */
static int64_t timer_ask(tt__sched *s, tt_chan *c, int op, const char *name,
			 int64_t arg, int *err)
{
	tt__post *p = tt__post_new(0, name);
	if (p == NULL) {
		*err = -ENOMEM;
		return 0;
	}
	p->run = run_timer_op;
	p->h = chan_handle(c);
	p->arg = op;
	p->value = arg;
	int r = tt__post_call(s, c->sched, p, TT_WAIT_SYSCALL, c);
	if (r) {
		free(p);
		*err = r;
		return 0;
	}
	int64_t v = p->value;
	*err = tt__post_done(p);
	return v;
}

bool tt_timer_stop(tt_timer *t)
{
	tt_chan *c = timer_of(t, false, "tt_timer_stop");
	if (c == NULL)
		return false;
	tt__sched *s = tt__sched_get();
	if (c->sched != s) {
		int err;
		return timer_ask(s, c, OP_TIMER_STOP, "tt_timer_stop", 0,
				 &err) != 0;
	}
	return timer_stop_body(c);
}

bool tt_timer_reset(tt_timer *t, int64_t ns)
{
	tt_chan *c = timer_of(t, false, "tt_timer_reset");
	if (c == NULL)
		return false;
	tt__sched *s = tt__sched_get();
	if (c->sched != s) {
		int err;
		return timer_ask(s, c, OP_TIMER_RESET, "tt_timer_reset", ns,
				 &err) > 0;
	}
	int r = timer_reset_body(c, ns);
	if (r < 0) {
		tt__err(r, "tt_timer_reset: too many references");
		return false;
	}
	return r;
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
	tt__sched *s = tt__sched_get();
	if (c->sched != s) {
		int err;
		(void)timer_ask(s, c, OP_TICKER_STOP, "tt_ticker_stop", 0, &err);
		return;
	}
	ticker_stop_body(c);
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
	tt__sched *s = tt__sched_get();
	if (c->sched != s) {
		int err;
		(void)timer_ask(s, c, OP_TICKER_RESET, "tt_ticker_reset",
				period, &err);
		return err;
	}
	ticker_reset_body(c, period);
	return 0;
}

int tt_ticker_release(tt_ticker *t)
{
	if (timer_of(t, true, "tt_ticker_release") == NULL)
		return tt__current()->last_err;
	return tt_chan_release((tt_chan *)t);
}
