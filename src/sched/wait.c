/* tether — the one wait primitive (tt__wait, internal.h).
 *
 * Design notes
 * ------------
 * Every blocking operation of every layer — a channel send or receive, a
 * select, a wait on a sync object, a descriptor wait, a sleep — parks
 * through tt__wait: the layer queues its waiters where its wakers look
 * (channel queues, a sync object's queue, a descriptor's slot), then
 * waits with a deadline and the cancel function of its kind of waiter.
 * Three things can end the wait, and this file is the only one that
 * knows how they race:
 *  - a waker (tt__wait_wake) takes the waiters out itself, disarms the
 *    deadline and readies the goroutine: the wait returns false;
 *  - the deadline fires (wait_deadline, from the timer heap): cancel(g)
 *    takes the waiters out and the wait returns true — unless a waker
 *    on another thread took one first, under its channel's lock (cancel
 *    returns false): that waker's wake-up is on its way through the
 *    inbox (tt__wake_remote), and the deadline does nothing;
 *  - a context is cancelled (tt__wait_interrupt, ctx.c): the deadline is
 *    fired at once, if it is still armed, so this is the second case.
 * Whichever comes first disarms the goroutine's timer (g->timer, armed
 * only for a wait with a deadline), and the others see it disarmed: a
 * waker that finds the timer gone finds the goroutine out of its queues
 * too, so it never wakes a goroutine twice. The wait without a deadline
 * is inlined (internal.h) and touches no timer at all.
 *
 * With one primitive, the M:N scheduler's cross-thread wake-up protocol
 * (a waiter claimed once, by a waker, the deadline or a cancel) has one
 * place to live.
 */
#include "internal.h"

/* A wait's deadline: its waiters out, then runnable. A sleeper, which
 * queued nothing, goes first in the run queue (its wake-up was due). */
static bool deadline_ends(tt__g *g)
{
	if (g->wait_cancel) {
		/* A waker on another thread took a waiter first: its
		 * wake-up is in the inbox, and the wait did not time out. */
		if (!g->wait_cancel(g))
			return false;
		g->timed_out = 1;
		tt__ready(g->sched, g);
	} else {
		g->timed_out = 1;
		tt__ready_next(g->sched, g);
	}
	return true;
}

static void wait_deadline(tt__timer *t, int64_t now)
{
	(void)now;
	deadline_ends(t->ctx);
}

bool tt__wait_until(tt__sched *s, int reason, const void *obj,
		    int64_t deadline, tt__wait_cancel_fn cancel)
{
	tt__g *g = s->current;
	g->timed_out = 0;
	g->wait_cancel = cancel;
	g->timer.fn = wait_deadline;
	g->timer.when = deadline;
	g->timer.period = 0;
	g->timer.ctx = g;
	tt__timer_add(s, &g->timer);
	tt__park(s, reason, obj);
	tt__timer_del(s, &g->timer);
	return g->timed_out;
}

bool tt__wait_interrupt(tt__sched *s, tt__g *g)
{
	if (g->state != TT_G_WAITING || !tt__timer_del(s, &g->timer))
		return false;
	return deadline_ends(g);
}
