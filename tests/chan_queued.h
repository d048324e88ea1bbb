/* tether tests — how many goroutines wait in a channel's queue (white
 * box: chan/chan.h), for tests of what a parked sender or receiver does.
 *
 * A goroutine that tt_go starts has parked when tt_go returns only with
 * one P: with more, it may run on another thread, or not have started
 * yet. So such a test waits until its goroutine is in the queue. (A
 * goroutine of another thread may wait through a proxy goroutine of the
 * channel's owner, which is in the queue from when the proxy parks;
 * c->parked counts it before that.) Include after testutil.h. */
#ifndef TETHER_TESTS_CHAN_QUEUED_H
#define TETHER_TESTS_CHAN_QUEUED_H

#include "chan/chan.h"
#include "internal.h"

/* The waiters in h's queue of senders (or receivers). On h's owner's
 * thread, which alone may take the lock of a shared channel this way. */
static inline int tu_chan_queued(tt_chan *h, bool senders)
{
	tt_chan *c = chan_of(h);
	TU_ASSERT(c->sched == tt__sched_get());
	bool locked = chan_lock_shared(c);
	int n = 0;
	for (const tt__waiter *w = senders ? c->sendq.first : c->recvq.first;
	     w != NULL; w = w->next)
		n++;
	chan_unlock_if(c, locked);
	return n;
}

/* Wait until h's queue of senders (or receivers) holds at least n. */
#define TU_WAIT_QUEUED(h, senders, n)                                       \
	TU_WAIT_FOR(tu_chan_queued((h), (senders)) >= (n), 5 * TT_SECOND)

#endif
