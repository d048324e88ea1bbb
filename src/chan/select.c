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
 * order too). Whoever takes one of the waiters first claims the select
 * (waiter_claim, chan.h: a waker, a close, the deadline) and wakes it;
 * the others stay queued, stale, and whoever finds one there drops it.
 * Pass 3 reads which case fired (g->sel_fired) and takes the waiters
 * still queued back out, as Go's selectgo does after it wakes.
 *
 * A select on a shared channel (chan.h), the thread's own or another
 * thread's, takes the locked path (select_locked): the locks of all its
 * shared channels, in address order, held from pass 1 to the park, as
 * Go's sellock does. Nothing can then change between looking and
 * queueing, and another thread's waker, which holds one channel's lock,
 * finds the select either not queued yet or wholly queued. Another
 * thread's private channel is first made shared by its owner (asked, as
 * the first send from another thread is). A select of the thread's own
 * private channels only takes no lock, and its claim is a plain store.
 */
#include <errno.h>
#include <limits.h>
#include <stdlib.h>

#include "chan.h"

#define STACK_WAITERS 8
#define MAX_CASES 65536 /* case indices fit pass 2's uint16_t order[] */
/* What the locked path returns when another thread's owner, asked to try
 * a case, found it not ready after all: start over. */
#define SELECT_AGAIN INT_MIN

static inline bool ready_private(const tt_chan *c, int kind)
{
	return kind == TT_CASE_RECV ? chan_recv_ready(c) : chan_send_ready(c);
}

/* Check every case. For a select of this thread's private channels only,
 * count the ready ones in *nready and leave the index of the last ready
 * one in *last; *locked: some case's channel is shared or another
 * thread's (counts then not made). */
static int validate(tt__sched *s, const tt_case *cases, size_t n,
		    uint32_t *nready, size_t *last, bool *locked)
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
			int r = tt__chan_check_any(s, h, k->elem_size,
						   discard, "tt_select");
			if (r < 0)
				return r;
			/* Not private: another thread's (r == 1), or shared;
			 * else a receive that discards what it takes. */
			private = r == 0 && !chan_shared(chan_of(h));
			any |= !private;
		}
		if (TT_UNLIKELY(k->kind == TT_CASE_SEND && !k->elem &&
				k->elem_size))
			return tt__err(-EINVAL,
				       "tt_select: send case %zu has a NULL "
				       "elem",
				       i);
		if (private && ready_private(chan_of(h), k->kind)) {
			ready++;
			*last = i;
		}
	}
	*nready = ready;
	*locked = any;
	return 0;
}

/* Do k, found ready, on a private channel: false if it was not (a stale
 * waiter made it look so). */
static inline __attribute__((always_inline)) bool
perform(tt__sched *s, const tt_case *k)
{
	tt_chan *c = chan_of(k->chan);
	return k->kind == TT_CASE_RECV
		       ? tt__chan_try_recv(s, c, k->elem, k->ok)
		       : tt__chan_try_send(s, c, k->elem);
}

static int select_park(tt__sched *s, const tt_case *cases, size_t n,
		       int64_t deadline);
static int select_locked(tt__sched *s, const tt_case *cases, size_t n,
			 int64_t deadline);
static inline __attribute__((always_inline)) int
select1_park(tt__sched *s, const tt_case *k, int64_t deadline);

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
	bool locked = false;
	int r = validate(s, cases, n, &nready, &last, &locked);
	if (r)
		return r;
	if (TT_UNLIKELY(locked)) {
		r = TT_KEEP_FRAME(select_locked(s, cases, n, deadline));
		if (TT_UNLIKELY(r == SELECT_AGAIN))
			goto again;
		return r;
	}
	if (nready == 1) {
		if (TT_LIKELY(perform(s, &cases[last])))
			return (int)last;
		goto again;
	}
	if (nready) {
		uint32_t pick = tt__rand_n(s, nready);
		for (size_t i = 0; i < n; i++) {
			const tt_case *k = &cases[i];
			if (k->chan && ready_private(chan_of(k->chan), k->kind) &&
			    pick-- == 0) {
				if (perform(s, k))
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

	return n == 1 ? select1_park(s, cases, deadline)
		      : TT_KEEP_FRAME(select_park(s, cases, n, deadline));
}

/* Fill in w for case i of k and queue it on its channel, if any; the
 * caller holds the channel's lock if it is shared. */
static inline void queue_case(tt__g *g, tt__waiter *w, const tt_case *k,
			      int i, bool remote_ok, uint8_t flags)
{
	tt_chan *c = k->chan ? chan_of(k->chan) : NULL;
	w->g = g;
	w->c = c;
	w->elem = k->elem;
	w->case_ix = i;
	w->queued = false;
	w->success = false;
	w->remote_ok = remote_ok;
	w->flags = flags;
	if (c == NULL)
		return;
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
select1_park(tt__sched *s, const tt_case *k, int64_t deadline)
{
	tt__g *g = s->current;
	/* In the waiter pool, as block_on's (chan.c); a wait on one
	 * channel, as a receive's: any thread may take it. */
	tt__waiter *w = g->wait1;
	tt_chan *c = k->chan ? chan_of(k->chan) : NULL;
	queue_case(g, w, k, 0, true,
		   deadline == TT_FOREVER ? 0 : TT__W_TIMED);
	g->wait_list = w;
	g->wait_n = 1;
	g->sel_fired = -1;
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

/* Inside-out Fisher-Yates: after step i, order[0..i] is a uniform
 * permutation of 0..i. n <= MAX_CASES, so indices fit 16 bits. */
static void shuffle(tt__sched *s, uint16_t *order, size_t n)
{
	order[0] = 0;
	for (size_t i = 1; i < n; i++) {
		uint32_t j = tt__rand_n(s, (uint32_t)i + 1);
		order[i] = order[j];
		order[j] = (uint16_t)i;
	}
}

/* Pass 3's first half: the waiters still queued (stale, or all of them
 * after a deadline) leave their queues, each under its channel's lock if
 * that is shared (one that was private when queued may be shared now). */
static void unqueue_all(tt__waiter *ws, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		tt__waiter *w = &ws[i];
		if (w->c == NULL)
			continue;
		bool locked = chan_lock_shared(w->c);
		if (w->queued)
			waitq_unlink(w->q, w);
		chan_unlock_if(w->c, locked);
	}
}

/* Pass 3's second half: what the fired case (or none) returns, its *ok
 * set; then every case's channel let go of. */
static int finish(tt__sched *s, const tt_case *cases, const tt__waiter *ws,
		  size_t n, bool timed_out, int fired)
{
	int r = timed_out ? -ETIMEDOUT : fired;
	if (fired >= 0) {
		const tt_case *k = &cases[fired];
		bool success = ws[fired].success;
		if (TT_UNLIKELY(ws[fired].flags & TT__W_DEAD)) {
			/* Not leaked any more, if it was proven (chan.c,
			 * woken_dead). */
			s->current->leak = NULL;
			r = tt__err(-EPIPE,
				    "tt_select: %p belongs to a thread that "
				    "has ended",
				    (void *)k->chan);
		} else if (k->kind == TT_CASE_SEND && !success)
			tt__panic("send on closed channel");
		else if (k->kind == TT_CASE_RECV && k->ok)
			*k->ok = success;
	}
	for (size_t i = 0; i < n; i++)
		if (cases[i].chan) {
			TT_TSAN_SYNC(chan_of(cases[i].chan));
			tt__chan_unpark(s, chan_of(cases[i].chan));
		}
	return r;
}

/* Where a parking select keeps its waiters (indexed by case) and its
 * queueing order: the caller's stack arrays, which *ws and *order point
 * to on entry, for up to STACK_WAITERS cases; else one heap block, in
 * *heap for the caller to free (NULL otherwise). A shared-stack
 * goroutine's waiters go in its record or a buffer it keeps, never on
 * the region that moves while it is parked, with the order after them
 * (the order is needed only until it parks). 0, or the error recorded. */
static int select_mem(tt__g *g, size_t n, tt__waiter **ws, uint16_t **order,
		      void **heap)
{
	*heap = NULL;
	size_t bytes = n * (sizeof **ws + sizeof **order);
	tt__waiter *w;
	if (TT_UNLIKELY(g->shared)) {
		w = tt__g_waiters(g, n > STACK_WAITERS
					     ? bytes
					     : (n ? n : 1) * sizeof **ws);
		if (w == NULL)
			return g->last_err;
	} else if (n > STACK_WAITERS) {
		w = *heap = malloc(bytes);
		if (w == NULL)
			return tt__err(-ENOMEM,
				       "tt_select: out of memory for %zu "
				       "cases",
				       n);
	} else {
		return 0;
	}
	*ws = w;
	if (n > STACK_WAITERS)
		*order = (uint16_t *)(w + n);
	return 0;
}

/* Passes 2 and 3, out of line: tt_select's path for a ready case stays
 * small. Preconditions: the cases passed validate, all their channels are
 * this thread's and private, and none is ready; deadline is not TT_TRY
 * and has not passed. */
__attribute__((noinline)) static int
select_park(tt__sched *s, const tt_case *cases, size_t n, int64_t deadline)
{
	/* Pass 2: queue on every channel and park. The waiters are queued
	 * in a random order (order[], a uniform permutation of the case
	 * indices), so that of several cases on one channel each is equally
	 * likely to be first in its queue and so to be the one woken; ws[]
	 * itself stays indexed by case. */
	tt__g *g = s->current;
	tt__waiter stack_ws[STACK_WAITERS], *ws = stack_ws;
	uint16_t stack_order[STACK_WAITERS], *order = stack_order;
	void *heap;
	int r = select_mem(g, n, &ws, &order, &heap);
	if (r)
		return r;
	if (n)
		shuffle(s, order, n);
	/* Only this thread takes these waiters (the channels were private
	 * when queued; chan.h): a plain claim. */
	atomic_store_explicit(&g->sel_claim, 0, memory_order_relaxed);
	for (size_t j = 0; j < n; j++)
		queue_case(g, &ws[order[j]], &cases[order[j]], order[j], false,
			   TT__W_SELECT);
	g->wait_list = ws;
	g->wait_n = (uint32_t)n;
	g->sel_fired = -1;
	int reason = n == 0 ? TT_WAIT_SELECT_NO_CASES : TT_WAIT_SELECT;
	bool timed_out =
		tt__wait(s, g, reason, NULL, deadline, tt__chan_cancel);
	g->wait_list = NULL;
	g->wait_n = 0;

	/* Pass 3: which case fired; the others out of their queues. */
	unqueue_all(ws, n);
	r = finish(s, cases, ws, n, timed_out, timed_out ? -1 : g->sel_fired);
	free(heap);
	return r;
}

/* ---- the locked path -------------------------------------------------------- */

static int addr_cmp(const void *a, const void *b)
{
	uintptr_t x = (uintptr_t)*(tt_chan *const *)a;
	uintptr_t y = (uintptr_t)*(tt_chan *const *)b;
	return (x > y) - (x < y);
}

/* The shared channels of the cases, each once, in address order: the
 * order every thread takes several channel locks in. Their number. */
static size_t lock_order(const tt_case *cases, size_t n, tt_chan **v)
{
	size_t m = 0;
	for (size_t i = 0; i < n; i++)
		if (cases[i].chan && chan_shared(chan_of(cases[i].chan)))
			v[m++] = chan_of(cases[i].chan);
	if (m <= 16) {
		for (size_t i = 1; i < m; i++) {
			tt_chan *x = v[i];
			size_t j = i;
			for (; j > 0 && (uintptr_t)v[j - 1] > (uintptr_t)x; j--)
				v[j] = v[j - 1];
			v[j] = x;
		}
	} else {
		qsort(v, m, sizeof *v, addr_cmp);
	}
	size_t u = 0;
	for (size_t i = 0; i < m; i++)
		if (u == 0 || v[u - 1] != v[i])
			v[u++] = v[i];
	return u;
}

static void unlock_all(tt_chan **v, size_t m)
{
	for (size_t i = m; i-- > 0;)
		chan_unlock(v[i]);
}

/* What pass 1 of the locked path found. */
typedef struct {
	int fired; /* a case done, or -1 */
	int ask;   /* a case only its channel's owner may do, or -1 */
} poll_result;

/* Pass 1 under the locks: try the cases in the random order, the first
 * that can go on now fires (uniform over the ready ones, as Go's
 * pollorder). Panics (the locks released first) on a send to a closed
 * channel. */
static poll_result poll_cases(tt__sched *s, const tt_case *cases,
			      const uint16_t *order, size_t n, tt_chan **locks,
			      size_t m)
{
	poll_result pr = {-1, -1};
	for (size_t j = 0; j < n; j++) {
		const tt_case *k = &cases[order[j]];
		if (k->chan == NULL)
			continue;
		tt_chan *c = chan_of(k->chan);
		int r;
		if (k->kind == TT_CASE_RECV) {
			r = tt__chan_try_recv(s, c, k->elem, k->ok);
		} else {
			if (TT_UNLIKELY(c->closed)) {
				unlock_all(locks, m);
				tt__panic("send on closed channel");
			}
			r = tt__chan_try_send(s, c, k->elem);
		}
		if (r == 1) {
			pr.fired = order[j];
			return pr;
		}
		if (r < 0 && pr.ask < 0)
			pr.ask = order[j];
	}
	return pr;
}

/* tt_select with a shared channel, or another thread's, among its cases
 * (the design notes): its own frame, out of line. */
__attribute__((noinline)) static int
select_locked(tt__sched *s, const tt_case *cases, size_t n, int64_t deadline)
{
	tt__g *g = s->current;
	/* Another thread's channels are shared before anything is locked:
	 * that may wait for their owners. */
	for (size_t i = 0; i < n; i++) {
		tt_chan *h = cases[i].chan;
		if (h == NULL || chan_of(h)->sched == s)
			continue;
		if (TT_UNLIKELY(g->shared))
			return tt__err(-ENOTSUP,
				       "tt_select: channel %p belongs to "
				       "another thread (a goroutine on a "
				       "shared stack selects on its own "
				       "thread's channels only)",
				       (void *)h);
		int r = tt__chan_share(s, h, "tt_select",
					   TT_WAIT_SELECT);
		if (r)
			return r;
	}

	tt__waiter stack_ws[STACK_WAITERS], *ws = stack_ws;
	uint16_t stack_order[STACK_WAITERS], *order = stack_order;
	tt_chan *stack_locks[STACK_WAITERS], **locks = stack_locks;
	void *heap;
	int r = select_mem(g, n, &ws, &order, &heap);
	if (r)
		return r;
	if (n > STACK_WAITERS &&
	    (locks = malloc(n * sizeof *locks)) == NULL) {
		free(heap);
		return tt__err(-ENOMEM, "tt_select: out of memory for %zu cases",
			       n);
	}
	shuffle(s, order, n);
	size_t m = lock_order(cases, n, locks);
	for (size_t i = 0; i < m; i++)
		chan_lock(locks[i]);

	for (size_t i = 0; i < n && r == 0; i++) {
		tt_chan *h = cases[i].chan;
		if (h && chan_of(h)->sched != s)
			r = tt__chan_gone(h, chan_of(h), "tt_select");
	}
	poll_result pr = {-1, -1};
	bool park = false;
	if (r == 0) {
		pr = poll_cases(s, cases, order, n, locks, m);
		if (pr.fired >= 0)
			r = pr.fired;
		else if (pr.ask >= 0)
			r = SELECT_AGAIN;
		else if (deadline == TT_TRY)
			r = -EAGAIN;
		else if (deadline != TT_FOREVER && deadline <= tt_now())
			r = -ETIMEDOUT;
		else
			park = true;
	}
	if (!park) {
		unlock_all(locks, m);
		if (locks != stack_locks)
			free(locks);
		free(heap);
		if (r != SELECT_AGAIN || pr.ask < 0)
			return r;
		/* A waiter only the owner may take: the owner tries. */
		const tt_case *k = &cases[pr.ask];
		r = tt__chan_ask_try(s, k->chan, k->kind == TT_CASE_RECV,
				     k->elem, k->ok);
		if (r == 0)
			return pr.ask;
		return r == -EAGAIN ? SELECT_AGAIN : r;
	}

	/* Pass 2, still under the locks: any thread may take these waiters
	 * (but a shared-stack goroutine's: its owner only), so the claim
	 * is atomic. */
	bool remote_ok = !g->shared;
	uint8_t flags = (n > 1 ? TT__W_SELECT : 0) |
			(deadline == TT_FOREVER ? 0 : TT__W_TIMED);
	atomic_store_explicit(&g->sel_claim, 0, memory_order_relaxed);
	for (size_t j = 0; j < n; j++)
		queue_case(g, &ws[order[j]], &cases[order[j]], order[j],
			   remote_ok, flags);
	g->wait_list = ws;
	g->wait_n = (uint32_t)n;
	g->sel_fired = -1;
	unlock_all(locks, m);
	if (locks != stack_locks)
		free(locks);
	bool timed_out =
		tt__wait(s, g, TT_WAIT_SELECT, NULL, deadline, tt__chan_cancel);
	g->wait_list = NULL;
	g->wait_n = 0;

	/* Pass 3. */
	unqueue_all(ws, n);
	r = finish(s, cases, ws, n, timed_out, timed_out ? -1 : g->sel_fired);
	free(heap);
	return r;
}

int tt_select_default(const tt_case *cases, size_t n)
{
	int r = tt_select(cases, n, TT_TRY);
	return r == -EAGAIN ? TT_DEFAULT : r;
}
