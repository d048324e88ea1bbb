/* tether — select, after Go's runtime/select.go.
 *
 * Design notes
 * ------------
 * Pass 1 validates every case and counts the ready ones; if any is ready,
 * one is chosen uniformly at random (one random number, a second pass to
 * find it) and performed. Go shuffles a poll order to the same effect; a
 * scheduler that takes the first ready case starves the later ones.
 *
 * Pass 2 (nothing ready, and allowed to wait) queues one waiter per case,
 * all on this goroutine's stack (a shared-stack goroutine's in its record:
 * tt__g_waiters), and parks. They are queued in a random order: a waker
 * takes the first waiter of a queue, so of several cases on one channel
 * the one queued first would always win (Go enqueues in a shuffled
 * order too). Whoever wakes us takes one
 * waiter, and tt__waiter_fire takes the others out of their queues before
 * readying us, so no queue ever holds a stale waiter. Pass 3 is then just
 * reading which case fired (g->sel_fired).
 *
 * Shared channels (chan.h) can change under us between the passes: each
 * is looked at under its own lock, and a case found ready in pass 1 but
 * gone when performed, or one found ready as pass 2 queues on it, starts
 * the select over (its waiters taken back out). Only one channel's lock
 * is held at a time: another thread never takes a waiter of a select of
 * several cases, so nothing can fire the waiters already queued while
 * the rest are.
 */
#include <errno.h>
#include <limits.h>
#include <stdlib.h>

#include "chan.h"

#define STACK_WAITERS 8
#define MAX_CASES 65536 /* case indices fit pass 2's uint16_t order[] */
/* What the parking passes return when a shared channel moved under them:
 * start over. */
#define SELECT_AGAIN INT_MIN

static inline bool ready_locked(const tt_chan *c, int kind)
{
	return kind == TT_CASE_RECV ? chan_recv_ready(c) : chan_send_ready(c);
}

/* Whether q holds a waiter of a goroutine other than g: in pass 2, g's
 * own waiters queued so far are no peers for its other cases (Go's
 * `select { case c <- v: case <-c: }` never pairs with itself). They are
 * at the queue's tail, so this looks at no more than n of them. */
static inline bool peer_queued(const tt__waitq *q, const tt__g *g)
{
	for (const tt__waiter *w = q->first; w; w = w->next)
		if (w->g != g)
			return true;
	return false;
}

/* ready_locked for pass 2's recheck of a shared channel, for g. */
static bool ready_for(const tt_chan *c, int kind, const tt__g *g)
{
	if (c->closed)
		return true;
	if (kind == TT_CASE_RECV)
		return c->qcount || peer_queued(&c->sendq, g);
	return c->qcount < c->cap || peer_queued(&c->recvq, g);
}

/* Whether k's channel is ready now, looked at under its lock if it is
 * shared (and `shared`: some case's channel is). */
static inline bool case_ready(const tt_case *k, bool shared)
{
	if (k->chan == NULL)
		return false;
	tt_chan *c = chan_of(k->chan);
	bool locked = shared && chan_lock_shared(c);
	bool r = ready_locked(c, k->kind);
	chan_unlock_if(c, locked);
	return r;
}

/* Check every case; count the ready ones in *nready, and leave the index
 * of the last ready one in *last; *shared: whether a case's channel is
 * shared. */
static int validate(tt__sched *s, const tt_case *cases, size_t n,
		    uint32_t *nready, size_t *last, bool *shared)
{
	uint32_t ready = 0;
	bool any = false;
	for (size_t i = 0; i < n; i++) {
		const tt_case *k = &cases[i];
		if (TT_UNLIKELY(k->kind != TT_CASE_RECV &&
				k->kind != TT_CASE_SEND))
			return tt__err(-EINVAL,
				       "tt_select: case %zu has unknown kind "
				       "%d",
				       i, k->kind);
		tt_chan *h = k->chan;
		if (h == NULL)
			continue;
		bool private = chan_ok(s, h, k->elem_size);
		if (!private) {
			bool discard = k->kind == TT_CASE_RECV && !k->elem;
			int r = tt__chan_check(s, h, k->elem_size, discard,
					       "tt_select");
			if (r)
				return r;
			any |= chan_shared(chan_of(h));
		}
		if (TT_UNLIKELY(k->kind == TT_CASE_SEND && !k->elem &&
				k->elem_size))
			return tt__err(-EINVAL,
				       "tt_select: send case %zu has a NULL "
				       "elem",
				       i);
		if (case_ready(k, !private)) {
			ready++;
			*last = i;
		}
	}
	*nready = ready;
	*shared = any;
	return 0;
}

/* Do k, found ready: false if it is not any more (a shared channel). */
static inline __attribute__((always_inline)) bool
perform(tt__sched *s, const tt_case *k, bool shared)
{
	tt_chan *c = chan_of(k->chan);
	bool locked = shared && chan_lock_shared(c);
	int r = k->kind == TT_CASE_RECV
			? tt__chan_try_recv(s, c, k->elem, k->ok)
			: tt__chan_try_send(s, c, k->elem);
	chan_unlock_if(c, locked);
	return r;
}

static int select_park(tt__sched *s, const tt_case *cases, size_t n,
		       int64_t deadline, bool shared);
static inline __attribute__((always_inline)) int
select1_park(tt__sched *s, const tt_case *k, int64_t deadline, bool shared);

int tt_select(const tt_case *cases, size_t n, int64_t deadline)
{
	tt__sched *s = tt__sched_get();
	if (TT_UNLIKELY(n > 0 && cases == NULL))
		return tt__err(-EINVAL, "tt_select: cases is NULL");
	if (TT_UNLIKELY(n > MAX_CASES))
		return tt__err(-EINVAL, "tt_select: %zu cases (limit %d)", n,
			       MAX_CASES);

again:;
	/* Pass 1: validate, and take a ready case if there is one. */
	uint32_t nready = 0;
	size_t last = 0;
	bool shared = false;
	int r = validate(s, cases, n, &nready, &last, &shared);
	if (r)
		return r;
	if (nready == 1) {
		if (TT_LIKELY(perform(s, &cases[last], shared)))
			return (int)last;
		goto again;
	}
	if (nready) {
		uint32_t pick = tt__rand_n(s, nready);
		/* Bounded: a shared channel's readiness may have changed
		 * since it was counted. */
		for (size_t i = 0; i < n; i++) {
			if (case_ready(&cases[i], shared) && pick-- == 0) {
				if (perform(s, &cases[i], shared))
					return (int)i;
				break;
			}
		}
		goto again;
	}
	if (deadline == TT_TRY)
		return -EAGAIN;
	if (deadline != TT_FOREVER && deadline <= tt_now())
		return -ETIMEDOUT;

	r = n == 1 ? select1_park(s, cases, deadline, shared)
		   : TT_KEEP_FRAME(select_park(s, cases, n, deadline, shared));
	if (TT_UNLIKELY(r == SELECT_AGAIN))
		goto again;
	return r;
}

/* Passes 2 and 3 for a select of one case (`select { case <-done: }`,
 * the usual way to wait on a context): as select_park with n == 1, with
 * one waiter and none of the permutation. Its frame is small, and it is
 * the frame a parked goroutine resumes in: a goroutine woken after a long
 * park finds its stack out of the caches, and each line of frame between
 * its saved stack pointer and its record is one more miss (a general
 * select's waiter array makes that 848 bytes for this case on x86-64;
 * this path about 300, its waiter in the record as a receive's). Inlined
 * into tt_select, so that the parked goroutine's stack shows tt_select
 * (a tail call would hide it) without a second frame. Same preconditions
 * as select_park. */
static inline __attribute__((always_inline)) int
select1_park(tt__sched *s, const tt_case *k, int64_t deadline, bool shared)
{
	tt__g *g = s->current;
	/* In the waiter pool, as block_on's (chan.c). */
	tt__waiter *w = g->wait1;
	tt_chan *c = k->chan ? chan_of(k->chan) : NULL;
	w->g = g;
	w->c = c;
	w->elem = k->elem;
	w->case_ix = 0;
	w->queued = false;
	w->success = false;
	w->remote_ok = true; /* a wait on one channel, as a receive's */
	bool locked = false;
	if (c) {
		locked = shared && chan_lock_shared(c);
		if (TT_UNLIKELY(locked && ready_locked(c, k->kind))) {
			chan_unlock(c);
			return SELECT_AGAIN;
		}
		if (k->kind == TT_CASE_RECV) {
			w->q = &c->recvq;
		} else {
			w->q = &c->sendq;
			waiter_park_send(w, c, k->elem);
		}
		TT_TSAN_SYNC(c);
		waitq_push(w->q, w);
		c->parked++;
	}
	g->wait_list = w;
	g->wait_n = 1;
	g->sel_fired = -1;
	if (locked)
		chan_unlock(c);
	bool timed_out =
		tt__wait(s, g, TT_WAIT_SELECT, NULL, deadline,
			 tt__chan_cancel);
	g->wait_list = NULL;
	g->wait_n = 0;
	int fired = timed_out ? -1 : g->sel_fired;
	if (fired == 0) {
		if (k->kind == TT_CASE_SEND && !w->success)
			tt__panic("send on closed channel");
		if (k->kind == TT_CASE_RECV && k->ok)
			*k->ok = w->success;
	}
	if (c) {
		TT_TSAN_SYNC(c);
		tt__chan_unpark(s, c);
	}
	return timed_out ? -ETIMEDOUT : fired;
}

/* Pass 2 found a shared channel ready: take the waiters queued so far
 * (those of order[0..j)) back out. */
static void unqueue(tt__sched *s, const tt_case *cases, tt__waiter *ws,
		    const uint16_t *order, size_t j)
{
	for (size_t k = 0; k < j; k++) {
		tt__waiter *w = &ws[order[k]];
		if (cases[order[k]].chan == NULL)
			continue;
		bool locked = chan_lock_shared(w->c);
		if (w->queued)
			waitq_unlink(w->q, w);
		chan_unlock_if(w->c, locked);
		tt__chan_unpark(s, w->c);
	}
}

/* Passes 2 and 3, out of line: tt_select's path for a ready case stays
 * small. Preconditions: the cases passed validate and none is ready;
 * deadline is not TT_TRY and has not passed. */
__attribute__((noinline)) static int
select_park(tt__sched *s, const tt_case *cases, size_t n, int64_t deadline,
	    bool shared)
{
	/* Pass 2: queue on every channel and park. The waiters are queued
	 * in a random order (order[], a uniform permutation of the case
	 * indices), so that of several cases on one channel each is equally
	 * likely to be first in its queue and so to be the one woken; ws[]
	 * itself stays indexed by case. order[] is needed only until we park,
	 * so it may live on the stack even for a shared-stack goroutine. */
	tt__g *g = s->current;
	tt__waiter stack_ws[STACK_WAITERS];
	uint16_t stack_order[STACK_WAITERS];
	tt__waiter *ws = stack_ws;
	uint16_t *order = stack_order;
	/* ws then order, in one block, when they do not fit on the stack. */
	size_t heap_bytes = n * (sizeof *ws + sizeof *order);
	if (TT_UNLIKELY(g->shared)) {
		/* Its stack moves while it is parked: waiters in its record
		 * (or a buffer it keeps), never on the region. */
		ws = tt__g_waiters(g, n > STACK_WAITERS ? heap_bytes
					: (n ? n : 1) * sizeof *ws);
		if (ws == NULL)
			return g->last_err;
		if (n > STACK_WAITERS)
			order = (uint16_t *)(ws + n);
	} else if (n > STACK_WAITERS) {
		ws = malloc(heap_bytes);
		if (ws == NULL)
			return tt__err(-ENOMEM,
				       "tt_select: out of memory for %zu "
				       "cases",
				       n);
		order = (uint16_t *)(ws + n);
	}
	/* Inside-out Fisher-Yates: after step i, order[0..i] is a uniform
	 * permutation of 0..i. n <= MAX_CASES, so indices fit 16 bits. */
	order[0] = 0;
	for (size_t i = 1; i < n; i++) {
		uint32_t j = tt__rand_n(s, (uint32_t)i + 1);
		order[i] = order[j];
		order[j] = (uint16_t)i;
	}
	for (size_t j = 0; j < n; j++) {
		size_t i = order[j];
		tt__waiter *w = &ws[i];
		tt_chan *c = cases[i].chan ? chan_of(cases[i].chan) : NULL;
		w->g = g;
		w->c = c;
		w->elem = cases[i].elem;
		w->case_ix = (int)i;
		w->queued = false;
		w->success = false;
		w->remote_ok = false; /* only the owner fires a select */
		if (c) {
			bool locked = shared && chan_lock_shared(c);
			if (TT_UNLIKELY(locked &&
					ready_for(c, cases[i].kind, g))) {
				chan_unlock(c);
				unqueue(s, cases, ws, order, j);
				if (ws != stack_ws && !g->shared)
					free(ws);
				return SELECT_AGAIN;
			}
			if (cases[i].kind == TT_CASE_RECV) {
				w->q = &c->recvq;
			} else {
				w->q = &c->sendq;
				waiter_park_send(w, c, cases[i].elem);
			}
			TT_TSAN_SYNC(c);
			waitq_push(w->q, w);
			c->parked++;
			chan_unlock_if(c, locked);
		}
	}
	g->wait_list = ws;
	g->wait_n = (uint32_t)n;
	g->sel_fired = -1;
	int reason = n == 0 ? TT_WAIT_SELECT_NO_CASES : TT_WAIT_SELECT;
	bool timed_out =
		tt__wait(s, g, reason, NULL, deadline, tt__chan_cancel);
	g->wait_list = NULL;
	g->wait_n = 0;

	/* Pass 3: which case fired. */
	int fired = timed_out ? -1 : g->sel_fired;
	if (fired >= 0) {
		const tt_case *k = &cases[fired];
		bool success = ws[fired].success;
		if (k->kind == TT_CASE_SEND && !success)
			tt__panic("send on closed channel");
		if (k->kind == TT_CASE_RECV && k->ok)
			*k->ok = success;
	}
	for (size_t i = 0; i < n; i++)
		if (cases[i].chan) {
			TT_TSAN_SYNC(chan_of(cases[i].chan));
			tt__chan_unpark(s, chan_of(cases[i].chan));
		}
	if (ws != stack_ws && !g->shared)
		free(ws);
	return timed_out ? -ETIMEDOUT : fired;
}

int tt_select_default(const tt_case *cases, size_t n)
{
	int r = tt_select(cases, n, TT_TRY);
	return r == -EAGAIN ? TT_DEFAULT : r;
}
