/* tether — channels, after Go's runtime/chan.go.
 *
 * Design notes
 * ------------
 * Send: if a receiver is parked, copy the value straight into its
 * destination and ready it (no trip through the buffer); else if the
 * buffer has room, enqueue the value; else park on sendq with the value's
 * address, and the receiver that comes along copies it out.
 *
 * Receive: if a sender is parked, the buffer is full (or cap == 0): take
 * the oldest value (from the buffer, or straight from the sender when
 * unbuffered), move the sender's value into the freed slot, ready the
 * sender. Else take from the buffer; else, if closed, the zero value and
 * ok = false; else park on recvq.
 *
 * Close wakes every receiver (zero value, ok = false) and every sender
 * (who then panics, as in Go).
 *
 * The invariants are in chan.h. A private channel is used on its owning
 * scheduler's thread only, so nothing is locked; a shared one (chan.h)
 * is locked where Go locks it, and other threads send and receive on it
 * themselves when they need not wait.
 */
#include <sched.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "chan.h"

_Static_assert(sizeof(tt__waiter) <= sizeof(((tt__g *)0)->wbuf_inline),
	       "a goroutine's record holds one waiter");

#define MAX_ELEM_SIZE (64 * 1024) /* Go's limit for a channel element */

/* What is wrong with h for op: 0, a negative errno (recorded), or
 * REMOTE when it is fine but another thread's. */
#define REMOTE 1
static int chan_check(tt__sched *s, const tt_chan *h, size_t elem_size,
		      bool discard_ok, const char *op)
{
	const tt_chan *c = chan_of(h);
	if (!tt__obj_is(h, TT__OBJ_CHAN))
		return tt__misuse(-EBADF,
			       "%s: %p is not a live channel (released, or "
			       "never made)",
			       op, (const void *)h);
	/* elem_size and sched are set once, when the channel is made. */
	if (elem_size != c->elem_size && elem_size != TT__ANY_SIZE &&
	    !(discard_ok && elem_size == 0))
		return tt__misuse(-EINVAL,
			       "%s: element size %zu does not match the "
			       "channel's %zu",
			       op, elem_size, c->elem_size);
	return c->sched != s ? REMOTE : 0;
}

int tt__chan_check_any(tt__sched *s, const tt_chan *h, size_t elem_size,
		       bool discard_ok, const char *op)
{
	return chan_check(s, h, elem_size, discard_ok, op);
}


/* ---- the waiter pool (internal.h) ---------------------------------------- */

#define W1_SLOT 64
#define W1_CHUNK 4096
_Static_assert(sizeof(tt__waiter) <= W1_SLOT, "a pool slot holds a waiter");

void tt__wait1_take(tt__sched *s, tt__g *g)
{
	void *w = s->w1_free;
	if (w) {
		s->w1_free = *(void **)w;
	} else {
		if (s->w1_carve == s->w1_end) {
			char *c = aligned_alloc(W1_SLOT, W1_CHUNK);
			if (c == NULL) {
				g->wait1 = g->wbuf_inline;
				return;
			}
			/* The chunk's first slot links the chunks. */
			*(void **)c = s->w1_chunks;
			s->w1_chunks = c;
			s->w1_carve = c + W1_SLOT;
			s->w1_end = c + W1_CHUNK;
		}
		w = s->w1_carve;
		s->w1_carve += W1_SLOT;
	}
	g->wait1 = w;
}

void tt__wait1_release(tt__sched *s, tt__g *g)
{
	void *w = g->wait1;
	if (w && w != (void *)g->wbuf_inline) {
		*(void **)w = s->w1_free;
		s->w1_free = w;
	}
	g->wait1 = NULL;
}

void tt__wait1_thread_exit(tt__sched *s)
{
	for (void *c = s->w1_chunks, *next; c; c = next) {
		next = *(void **)c;
		free(c);
	}
	s->w1_chunks = s->w1_free = NULL;
	s->w1_carve = s->w1_end = NULL;
}

/* ---- waking and timing out ------------------------------------------- */

void tt__chan_lock_slow(tt_chan *c)
{
	for (unsigned i = 1;; i++) {
		if (atomic_load_explicit(&c->lock, memory_order_relaxed) == 0 &&
		    !atomic_exchange_explicit(&c->lock, 1,
					      memory_order_acquire))
			return;
		/* Held for a few dozen instructions at a time, unless its
		 * holder lost its CPU: then let it have one. */
		if (i % 128 == 0)
			sched_yield();
		else
			tt__cpu_relax();
	}
}

/* tt__waiter_fire, inlined into the channel operations' own paths. w
 * is out of its queue (and its select claimed): a select's other waiters
 * stay where they are, stale, until the woken select takes them out
 * itself (select.c), as Go's does; whoever finds one first drops it
 * (waitq_take). So a waker holds one channel's lock, never two. */
static inline __attribute__((always_inline)) void
waiter_fire(tt__sched *s, tt__waiter *w, bool success)
{
	tt__g *g = w->g;
	w->success = success;
	g->sel_fired = w->case_ix;
	tt__wait_wake(s, g);
}

void tt__waiter_fire(tt__sched *s, tt__waiter *w, bool success)
{
	waiter_fire(s, w, success);
}

/* Fire w, dequeued under c's lock, now: on this thread, or for another
 * thread's goroutine by pushing its wake-up before c is unlocked (a
 * close, and a thread's end: they wake many, and rarely). */
static void fire_any(tt__sched *s, tt__waiter *w, bool success)
{
	tt__g *g = w->g;
	if (g->sched == s) {
		waiter_fire(s, w, success);
		return;
	}
	w->success = success;
	g->sel_fired = w->case_ix;
	tt__wake_pin(g);
	tt__wake_remote(g);
}

bool tt__chan_cancel(tt__g *g)
{
	tt__waiter *ws = g->wait_list;
	/* A select's deadline claims it like a waker: if one was first, its
	 * wake-up is on its way, and the waiters are the select's to take
	 * out. */
	if (g->wait_n && (ws[0].flags & TT__W_SELECT) && !waiter_claim(&ws[0]))
		return false;
	bool all = true;
	for (uint32_t i = 0; i < g->wait_n; i++) {
		tt__waiter *w = &ws[i];
		if (w->c == NULL)
			continue; /* a nil channel's case queues nothing */
		bool locked = chan_lock_shared(w->c);
		if (w->queued)
			waitq_unlink(w->q, w);
		else if (w->remote_ok && !(w->flags & TT__W_SELECT))
			all = false; /* another thread took it: it wakes us */
		chan_unlock_if(w->c, locked);
	}
	return all;
}

/* ---- making and freeing ------------------------------------------------ */

int tt__chan_new(tt_chan **out, size_t elem_size, ptrdiff_t cap,
		 bool with_timer)
{
	if (out == NULL)
		return tt__err(-EINVAL, "tt_chan_make: out is NULL");
	*out = NULL;
	if (cap < 0)
		return tt__err(-EINVAL, "tt_chan_make: negative capacity %td",
			       cap);
	if (elem_size > MAX_ELEM_SIZE)
		return tt__err(-EINVAL,
			       "tt_chan_make: element size %zu is over the "
			       "limit of %d bytes",
			       elem_size, MAX_ELEM_SIZE);
	size_t ucap = (size_t)cap;
	if (elem_size && ucap > (SIZE_MAX / 2) / elem_size)
		return tt__err(-EINVAL,
			       "tt_chan_make: buffer of %td elements of %zu "
			       "bytes is too large",
			       cap, elem_size);
	size_t head = sizeof(tt_chan) +
		      (with_timer ? sizeof(tt__chan_timer) : 0);
	head = (head + 15) & ~(size_t)15;
	size_t bytes = ucap * elem_size;
	bool inline_buf = bytes <= TT__OBJ_MAX_SIZE - head;
	size_t slot = inline_buf ? head + bytes : head;
	tt__sched *s = tt__sched_get();
	tt_chan *c = tt__obj_alloc(s, slot, TT__OBJ_CHAN);
	char *buf = NULL;
	if (c)
		buf = inline_buf ? (char *)c + head : malloc(bytes);
	if (buf == NULL) {
		if (c)
			tt__obj_free(s, c, slot);
		return tt__err(-ENOMEM,
			       "tt_chan_make: out of memory for a channel of "
			       "%td elements of %zu bytes",
			       cap, elem_size);
	}
	c->sched = s;
	c->fast = s;
	atomic_init(&c->shared, false);
	atomic_init(&c->lock, 0);
	c->slot_size = (uint32_t)slot;
	c->timer = with_timer ? (tt__chan_timer *)(c + 1) : NULL;
	c->refs = 1;
	c->parked = 0;
	c->elem_size = elem_size;
	c->cap = ucap;
	c->qcount = 0;
	c->sendx = c->recvx = 0;
	c->recvq.first = c->recvq.last = NULL;
	c->sendq.first = c->sendq.last = NULL;
	c->closed = false;
	c->dead = false;
	c->released = false;
	c->buf = buf;
	c->buf_heap = !inline_buf;
	if (c->timer) {
		c->timer->t.heap_ix = TT_TIMER_IDLE;
		c->timer->t.ctx = c;
		c->timer->is_ticker = false;
	}
	*out = c;
	return 0;
}

int tt_chan_make(tt_chan **out, size_t elem_size, ptrdiff_t cap)
{
	int r = tt__chan_new(out, elem_size, cap, false);
	if (r == 0)
		*out = chan_handle(*out);
	return r;
}

static void chan_free(tt__sched *s, tt_chan *c)
{
	if (chan_shared(c)) {
		/* Out of the shared list; its last takes its place. */
		tt_chan *last = s->shared_v[--s->nshared];
		s->shared_v[c->shared_ix] = last;
		last->shared_ix = c->shared_ix;
		/* A thread that uses a handle released under it (the
		 * program's race) finds it so under the lock, or finishes
		 * with the channel before the slot can be reused. */
		chan_lock(c);
		c->released = true;
		chan_unlock(c);
	}
	if (c->timer)
		tt__timer_del(s, &c->timer->t);
	if (c->buf_heap)
		free(c->buf);
	tt__obj_free(s, c, c->slot_size);
}

/* On the owner, for another thread's goroutine that was the last to
 * leave a channel nobody holds (unpark_shared). */
static void run_reap(tt__sched *s, tt__post *p)
{
	if (tt__obj_is(p->h, TT__OBJ_CHAN) && chan_of(p->h)->sched == s) {
		tt_chan *c = chan_of(p->h);
		chan_lock(c);
		bool last = c->parked == 0 && c->refs == 0;
		chan_unlock(c);
		if (last)
			chan_free(s, c);
	}
	tt__post_answer(p);
}

/* A shared channel's parked and refs change under its lock: goroutines
 * of other threads park on it too. The owner alone frees it. */
static __attribute__((noinline)) void unpark_shared(tt__sched *s, tt_chan *c)
{
	chan_lock(c);
	bool last = --c->parked == 0 && c->refs == 0 && !c->dead;
	const tt_chan *h = chan_handle(c);
	chan_unlock(c);
	if (!last)
		return;
	if (c->sched == s) {
		chan_free(s, c);
		return;
	}
	tt__post *p = tt__post_new(0, "tt_chan_release");
	if (p == NULL)
		return; /* the channel's slot stays taken: nothing else */
	p->run = run_reap;
	p->h = h;
	/* An owner that has ended frees nothing any more, and nobody is
	 * told: the program released the channel long ago. */
	p->quiet = true;
	(void)tt__post_send(c->sched, p);
}

void tt__chan_unpark(tt__sched *s, tt_chan *c)
{
	if (TT_UNLIKELY(chan_shared(c))) {
		unpark_shared(s, c);
		return;
	}
	if (--c->parked == 0 && c->refs == 0)
		chan_free(s, c);
}

/* The bodies of retain and release, for the owner: 0, or -errno with
 * its message in msg. */
static int retain_body(tt_chan *c, char *msg, size_t n)
{
	bool locked = chan_lock_shared(c);
	int r = 0;
	if (c->refs == UINT32_MAX) {
		snprintf(msg, n, "tt_chan_retain: too many references");
		r = -EOVERFLOW;
	} else {
		c->refs++;
	}
	chan_unlock_if(c, locked);
	return r;
}

static int release_body(tt__sched *s, tt_chan *c, char *msg, size_t n)
{
	bool locked = chan_lock_shared(c);
	if (c->refs == 0) {
		chan_unlock_if(c, locked);
		snprintf(msg, n,
			 "tt_chan_release: channel %p has no references left",
			 (void *)chan_handle(c));
		return -EBADF;
	}
	/* Parked goroutines keep it until they resume (tt__chan_unpark);
	 * those that nothing can wake now are proven leaked. */
	/* Stored for the leak layer, which reads another thread's channels
	 * of a select without their locks (proven.c). */
	__atomic_store_n(&c->refs, c->refs - 1, __ATOMIC_SEQ_CST);
	bool last = c->refs == 0 && c->parked == 0;
	void *site = c->refs == 0 && !last ? tt__leak_chan_released(s, c)
					  : NULL;
	chan_unlock_if(c, locked);
	if (site)
		tt__leak_release_done(site);
	if (last)
		chan_free(s, c);
	return 0;
}

/* ---- the non-blocking halves --------------------------------------------- */

/* A dequeued waiter's operation is done. A waiter of this thread's
 * goroutine: fire it. Another thread's (the owner's, taken by another
 * thread; or, on a shared channel, a goroutine of a third thread or the
 * owner's): record the outcome and leave the wake-up to the caller, for
 * after it unlocks (*wake). wake is NULL only for a private channel, on
 * its owner, where every waiter is the owner's. */
static inline __attribute__((always_inline)) void
taken(tt__sched *s, tt__waiter *w, tt__g **wake)
{
	if (wake && w->g->sched != s) {
		w->success = true;
		w->g->sel_fired = w->case_ix;
		tt__wake_pin(w->g); /* before the caller unlocks (chan.h) */
		*wake = w->g;
	} else {
		waiter_fire(s, w, true);
	}
}

/* The bodies of tt__chan_try_send and tt__chan_try_recv, inlined into
 * tt_chan_send_until and tt_chan_recv_until: a hand-off to a parked peer
 * then makes no call until it readies the peer. With remote (a constant:
 * another thread, holding c's lock), a waiter that only the owner may
 * take makes it return -1, for the caller to ask the owner. */
static inline __attribute__((always_inline)) int
try_send(tt__sched *s, tt_chan *c, const void *elem, bool remote,
	 tt__g **wake)
{
	TT_TSAN_SYNC(c); /* see internal.h */
	if (TT_UNLIKELY(c->closed))
		tt__panic("send on closed channel");
	bool owner_only = false;
	tt__waiter *w = waitq_take(&c->recvq, remote, &owner_only);
	if (w) {
		if (w->elem)
			elem_copy(waiter_elem(w), elem, c->elem_size);
		taken(s, w, wake);
		TT_TSAN_SYNC(c); /* after the copies */
		return 1;
	}
	if (TT_UNLIKELY(owner_only))
		return -1;
	if (c->qcount < c->cap) {
		elem_copy(c->buf + c->sendx * c->elem_size, elem,
			  c->elem_size);
		if (++c->sendx == c->cap)
			c->sendx = 0;
		c->qcount++;
		TT_TSAN_SYNC(c); /* after the copies */
		return 1;
	}
	return 0;
}

/* The out-of-line tries (select's, a timer's) wake a waiter of another
 * thread's they take at once, c still locked by the caller: rare, and it
 * keeps select's frame as small as it was. */
int tt__chan_try_send(tt__sched *s, tt_chan *c, const void *elem)
{
	tt__g *wake = NULL;
	int r = try_send(s, c, elem, c->sched != s, &wake);
	if (TT_UNLIKELY(wake != NULL))
		tt__wake_remote(wake);
	return r;
}

static inline __attribute__((always_inline)) int
try_recv(tt__sched *s, tt_chan *c, void *elem, bool *ok, bool remote,
	 tt__g **wake)
{
	TT_TSAN_SYNC(c); /* see internal.h */
	size_t es = c->elem_size;
	bool owner_only = false;
	tt__waiter *w = waitq_take(&c->sendq, remote, &owner_only);
	if (w) {
		if (c->cap == 0) {
			if (elem)
				elem_copy(elem, waiter_elem(w), es);
		} else {
			/* Full buffer: take the head, put the sender's value
			 * at the tail (the slot just freed). */
			char *slot = c->buf + c->recvx * es;
			if (elem)
				elem_copy(elem, slot, es);
			elem_copy(slot, waiter_elem(w), es);
			if (++c->recvx == c->cap)
				c->recvx = 0;
			c->sendx = c->recvx;
		}
		taken(s, w, wake);
		if (ok)
			*ok = true;
		TT_TSAN_SYNC(c); /* after the copies */
		return 1;
	}
	if (TT_UNLIKELY(owner_only))
		return -1;
	if (c->qcount) {
		char *slot = c->buf + c->recvx * es;
		if (elem)
			elem_copy(elem, slot, es);
		if (++c->recvx == c->cap)
			c->recvx = 0;
		c->qcount--;
		if (ok)
			*ok = true;
		TT_TSAN_SYNC(c); /* after the copies */
		return 1;
	}
	if (c->closed) {
		if (elem && es)
			memset(elem, 0, es);
		if (ok)
			*ok = false;
		TT_TSAN_SYNC(c); /* after the copies */
		return 1;
	}
	return 0;
}

int tt__chan_try_recv(tt__sched *s, tt_chan *c, void *elem, bool *ok)
{
	tt__g *wake = NULL;
	int r = try_recv(s, c, elem, ok, c->sched != s, &wake);
	if (TT_UNLIKELY(wake != NULL))
		tt__wake_remote(wake);
	return r;
}

/* Wake what a try took of another thread's, c unlocked. */
static inline void wake_taken(tt__g *wake)
{
	if (TT_UNLIKELY(wake != NULL))
		tt__wake_remote(wake);
}

/* ---- blocking ------------------------------------------------------------ */

static int nil_wait(tt__sched *s, int reason, int64_t deadline)
{
	if (deadline == TT_TRY)
		return -EAGAIN;
	tt__g *g = s->current;
	g->wait_list = NULL;
	g->wait_n = 0;
	if (deadline == TT_FOREVER) {
		for (;;)
			tt__park(s, reason, NULL);
	}
	if (deadline <= tt_now())
		return -ETIMEDOUT;
	tt__wait(s, g, reason, NULL, deadline, tt__chan_cancel);
	return -ETIMEDOUT;
}

/* Park on c's queue q until a peer completes the operation, the channel
 * closes, or the deadline passes. The caller found it would block.
 * Inlined into chan_send and chan_recv, once each: every wait of a send
 * or a receive parks at that one place in the public call. (Made tail
 * calls, a parked goroutine's stack would lose the public frame that
 * stack dumps and profiles show on top: the public calls keep their frame
 * with TT_KEEP_FRAME.) */
static inline __attribute__((always_inline)) int
block_on(tt__sched *s, tt_chan *c, tt__waitq *q, void *elem, int reason,
	 int64_t deadline, bool *success, bool locked)
{
	if (deadline == TT_TRY || (deadline != TT_FOREVER &&
				   deadline <= tt_now())) {
		chan_unlock_if(c, locked);
		return deadline == TT_TRY ? -EAGAIN : -ETIMEDOUT;
	}
	tt__g *g = s->current;
	/* The waiter is off the stack, which a shared-stack goroutine needs,
	 * and dense with other goroutines' (tt__wait1_take). */
	tt__waiter *w = g->wait1;
	w->g = g;
	w->c = c;
	w->q = q;
	if (q == &c->sendq)
		waiter_park_send(w, c, elem);
	else
		w->elem = elem;
	w->case_ix = -1;
	w->success = false;
	w->remote_ok = true;
	w->flags = deadline == TT_FOREVER ? 0 : TT__W_TIMED;
	TT_TSAN_SYNC(c); /* what the peer must see: its value, our stores */
	waitq_push(q, w);
	c->parked++;
	g->wait_list = w;
	g->wait_n = 1;
	chan_unlock_if(c, locked);
	bool timed_out = tt__wait(s, g, reason, c, deadline, tt__chan_cancel);
	TT_TSAN_SYNC(c); /* what the peer did, its copy into elem included */
	g->wait_list = NULL;
	g->wait_n = 0;
	*success = w->success;
	tt__chan_unpark(s, c);
	return timed_out ? -ETIMEDOUT : 0;
}

/* ---- from other threads (post.c) -----------------------------------------
 *
 * What another thread cannot do on a channel by itself (the first use of
 * a private one, which shares it; a close; retain and release; a try the
 * owner alone may complete) it posts to the owner and parks until the
 * answer: run_* run on the owner (in its park or idle wait), and what
 * must wait is done by a proxy goroutine of the owner's, with the
 * caller's deadline. A panic the operation calls for is the caller's, on
 * its own stack. Shared channels' direct operations are further down. */

static void chan_close_body(tt__sched *s, tt_chan *c);

/* p's channel if it is still a live one of this thread's; else NULL,
 * and p answered -EBADF. */
static tt_chan *post_chan(tt__sched *s, tt__post *p)
{
	if (tt__obj_is(p->h, TT__OBJ_CHAN) && chan_of(p->h)->sched == s)
		return chan_of(p->h);
	p->misuse = true;
	tt__post_fail(p, -EBADF,
		      "%s: %p is not a live channel (released, or never made)",
		      p->op, p->h);
	return NULL;
}

/* A send or receive that cannot go on now and need not wait (TT_TRY, a
 * deadline that has passed): answered, true. */
static bool post_no_wait(tt__post *p)
{
	if (p->deadline == TT_TRY) {
		tt__post_fail(p, -EAGAIN, NULL);
		return true;
	}
	if (p->deadline != TT_FOREVER && p->deadline <= tt_now()) {
		tt__post_fail(p, -ETIMEDOUT, NULL);
		return true;
	}
	return false;
}

/* Wait for p in a proxy goroutine, which holds c parked until it ends. */
static void post_wait(tt__sched *s, tt_chan *c, tt__post *p, tt_func fn,
		      const char *what)
{
	bool locked = chan_lock_shared(c); /* others park on it too */
	c->parked++;
	chan_unlock_if(c, locked);
	if (!tt__post_proxy(s, p, fn, what)) {
		tt__chan_unpark(s, c);
		tt__post_fail(p, -ENOMEM,
			      "%s: out of memory for the goroutine that waits "
			      "on %p for another thread",
			      p->op, p->h);
	}
}

static void send_proxy(void *arg)
{
	tt__post *p = arg;
	tt__sched *s = tt__sched_get();
	tt_chan *c = chan_of(p->h);
	bool locked = chan_lock_shared(c);
	bool closed = c->closed;
	tt__g *wake = NULL;
	if (closed || try_send(s, c, p->val, false, &wake)) {
		chan_unlock_if(c, locked);
		wake_taken(wake);
	} else {
		bool sent;
		p->result = block_on(s, c, &c->sendq, p->val,
				     TT_WAIT_CHAN_SEND, p->deadline, &sent,
				     locked);
		closed = p->result == 0 && !sent;
	}
	tt__chan_unpark(s, c);
	if (closed)
		tt__post_panic(p, "send on closed channel");
	else
		tt__post_answer(p);
}

/* On the owner, for a post of another thread's: c is shared from now
 * (c stays private, asked of the owner as before, if the list of shared
 * channels cannot grow), and locked. */
static bool share(tt__sched *s, tt_chan *c)
{
	if (!chan_shared(c)) {
		if (s->nshared == s->shared_cap) {
			uint32_t cap = s->shared_cap ? 2 * s->shared_cap : 16;
			tt_chan **v = realloc(s->shared_v, cap * sizeof *v);
			if (v == NULL)
				return false;
			s->shared_v = v;
			s->shared_cap = cap;
		}
		c->shared_ix = s->nshared;
		s->shared_v[s->nshared++] = c;
		c->fast = NULL; /* the owner's fast paths: no more */
		atomic_store_explicit(&c->shared, true, memory_order_release);
	}
	return chan_lock_shared(c);
}

/* Wake q's waiters of other threads: the channel is dead. This thread's
 * own stay, gone with it. */
static void wake_foreign(tt__sched *s, tt__waitq *q)
{
	for (tt__waiter *w = q->first, *next; w; w = next) {
		next = w->next;
		if (w->g->sched == s)
			continue;
		waitq_unlink(q, w);
		if ((w->flags & TT__W_SELECT) && !waiter_claim(w))
			continue; /* stale */
		w->flags |= TT__W_DEAD;
		fire_any(s, w, false);
	}
}

/* g, of the thread that is ending, waits by itself on other threads'
 * shared channels (block_on from send_remote or recv_remote; a select):
 * its waiters leave their queues before the memory that holds them is
 * freed, and g lets go of those channels. One a waker took already is
 * pinned: the thread's end waits for its wake-up push
 * (tt__inbox_close). */
static void leave_foreign(tt__sched *s, tt__g *g)
{
	/* Runnable: woken, and not yet back to let go of its channels. */
	if ((g->state != TT_G_WAITING && g->state != TT_G_RUNNABLE) ||
	    g->wait_n == 0 || g->wait_list == NULL ||
	    (g->reason != TT_WAIT_CHAN_SEND &&
	     g->reason != TT_WAIT_CHAN_RECV && g->reason != TT_WAIT_SELECT))
		return;
	tt__waiter *ws = g->wait_list;
	bool any = false;
	for (uint32_t i = 0; i < g->wait_n; i++) {
		tt_chan *c = ws[i].c;
		if (c == NULL || c->sched == s)
			continue;
		any = true;
		chan_lock(c);
		if (ws[i].queued)
			waitq_unlink(ws[i].q, &ws[i]);
		chan_unlock(c);
	}
	if (!any)
		return;
	/* Let go only once every waiter is out: one channel may be in
	 * several cases. */
	for (uint32_t i = 0; i < g->wait_n; i++) {
		tt_chan *c = ws[i].c;
		if (c != NULL && c->sched != s)
			unpark_shared(s, c);
	}
	g->wait_list = NULL;
	g->wait_n = 0;
}

void tt__chan_thread_exit(tt__sched *s)
{
	for (tt__g *g = s->all; g; g = g->all_next)
		leave_foreign(s, g);
	for (uint32_t i = 0; i < s->nshared; i++) {
		tt_chan *c = s->shared_v[i];
		chan_lock(c);
		c->dead = true;
		wake_foreign(s, &c->recvq);
		wake_foreign(s, &c->sendq);
		chan_unlock(c);
	}
	free(s->shared_v);
	s->shared_v = NULL;
	s->nshared = s->shared_cap = 0;
}

static void run_send(tt__sched *s, tt__post *p)
{
	tt_chan *c = post_chan(s, p);
	if (c == NULL)
		return;
	bool locked = share(s, c);
	bool closed = c->closed;
	tt__g *wake = NULL;
	bool done = !closed && try_send(s, c, p->val, false, &wake);
	chan_unlock_if(c, locked);
	wake_taken(wake);
	if (closed)
		tt__post_panic(p, "send on closed channel");
	else if (done)
		tt__post_answer(p);
	else if (!post_no_wait(p))
		post_wait(s, c, p, send_proxy, "chan send");
}

static void recv_proxy(void *arg)
{
	tt__post *p = arg;
	tt__sched *s = tt__sched_get();
	tt_chan *c = chan_of(p->h);
	bool locked = chan_lock_shared(c);
	tt__g *wake = NULL;
	if (try_recv(s, c, p->val, &p->ok, false, &wake)) {
		chan_unlock_if(c, locked);
		wake_taken(wake);
	} else
		p->result = block_on(s, c, &c->recvq, p->val,
				     TT_WAIT_CHAN_RECV, p->deadline, &p->ok,
				     locked);
	tt__chan_unpark(s, c);
	tt__post_answer(p);
}

static void run_recv(tt__sched *s, tt__post *p)
{
	tt_chan *c = post_chan(s, p);
	if (c == NULL)
		return;
	bool locked = share(s, c);
	tt__g *wake = NULL;
	bool done = try_recv(s, c, p->val, &p->ok, false, &wake);
	chan_unlock_if(c, locked);
	wake_taken(wake);
	if (done)
		tt__post_answer(p);
	else if (!post_no_wait(p))
		post_wait(s, c, p, recv_proxy, "chan receive");
}

static void run_close(tt__sched *s, tt__post *p)
{
	tt_chan *c = post_chan(s, p);
	if (c == NULL)
		return;
	if (c->timer) {
		tt__post_fail(p, -EPERM,
			      "tt_chan_close: timer channels are receive-only");
	} else {
		bool locked = chan_lock_shared(c);
		bool closed = c->closed;
		if (!closed)
			chan_close_body(s, c);
		chan_unlock_if(c, locked);
		if (closed)
			tt__post_panic(p, "close of closed channel");
		else
			tt__post_answer(p);
	}
}

static void run_len(tt__sched *s, tt__post *p)
{
	tt_chan *c = post_chan(s, p);
	if (c == NULL)
		return;
	bool locked = share(s, c);
	p->value = (int64_t)c->qcount;
	chan_unlock_if(c, locked);
	tt__post_answer(p);
}

static void run_retain(tt__sched *s, tt__post *p)
{
	tt_chan *c = post_chan(s, p);
	if (c == NULL)
		return;
	p->result = retain_body(c, p->msg, sizeof p->msg);
	tt__post_answer(p);
}

static void run_release(tt__sched *s, tt__post *p)
{
	tt_chan *c = post_chan(s, p);
	if (c == NULL)
		return;
	p->result = release_body(s, c, p->msg, sizeof p->msg);
	tt__post_answer(p);
}

/* Ask h's thread to run `run` for the calling goroutine, which waits
 * (shown as waiting for reason) until it is done. size: bytes of the
 * element the post carries; elem_in: what to send, elem_out: where the
 * received element goes. The operation's return value. */
static int chan_ask(tt__sched *s, const tt_chan *h,
		    void (*run)(tt__sched *, tt__post *), const char *op,
		    int reason, const void *elem_in, void *elem_out, bool *ok,
		    int64_t deadline, int64_t *value)
{
	const tt_chan *c = chan_of(h);
	size_t size = (elem_in || run == run_recv) ? c->elem_size : 0;
	tt__post *p = tt__post_new(size, op);
	if (p == NULL)
		return -ENOMEM;
	p->run = run;
	p->h = h;
	p->deadline = deadline;
	if (elem_in && size)
		memcpy(p->val, elem_in, size);
	int r = tt__post_call(s, c->sched, p, reason, c);
	if (r) {
		free(p);
		return r;
	}
	if (p->result == 0 && !p->panic) {
		if (elem_out && size)
			memcpy(elem_out, p->val, size);
		if (ok)
			*ok = p->ok;
		if (value)
			*value = p->value;
	}
	return tt__post_done(p);
}

/* ---- another thread's own sends and receives on a shared channel ---- */

/* What send_remote and recv_remote give back when the owner must be
 * asked after all. */
#define ASK_OWNER 1
/* What send_prep and recv_prep give back when the caller must wait on
 * the channel, with its lock held (WAIT_LOCKED) or not. */
#define WAIT_UNLOCKED 2
#define WAIT_LOCKED 3

static bool remote_shared(const tt_chan *c)
{
	return atomic_load_explicit(&c->shared, memory_order_acquire);
}

/* The outcome of a try under the lock, r as try_send's. */
static int remote_result(int r, int64_t deadline)
{
	if (r == 1)
		return 0;
	if (r == 0 && deadline == TT_TRY)
		return -EAGAIN;
	if (r == 0 && deadline != TT_FOREVER && deadline <= tt_now())
		return -ETIMEDOUT;
	return ASK_OWNER; /* it must wait, or only the owner may wake */
}

static int owner_ended(const char *op, const tt_chan *h)
{
	return tt__err(-EPIPE, "%s: %p belongs to a thread that has ended", op,
		       (const void *)h);
}

/* The calling goroutine's wait on h ended because h's owner ended. A
 * goroutine of another thread proven leaked on h (nobody held it) runs
 * again so: it is not leaked any more. */
static __attribute__((noinline)) int woken_dead(tt__sched *s, const char *op,
						const tt_chan *h)
{
	s->current->leak = NULL;
	return owner_ended(op, h);
}

int tt__chan_gone(const tt_chan *h, const tt_chan *c, const char *op)
{
	if (TT_UNLIKELY(c->dead))
		return owner_ended(op, h);
	/* Checked again: the owner frees a shared channel only after it
	 * has marked it under the lock (chan_free). */
	if (TT_UNLIKELY(c->released || !tt__obj_is(h, TT__OBJ_CHAN)))
		return tt__misuse(-EBADF,
				  "%s: %p is not a live channel (released, "
				  "or never made)",
				  op, (const void *)h);
	return 0;
}

/* Under c's lock, on another thread: 0 if c may be used, else c is
 * unlocked and the error recorded. */
static int remote_usable(const tt_chan *h, tt_chan *c, const char *op)
{
	int r = tt__chan_gone(h, c, op);
	if (TT_UNLIKELY(r))
		chan_unlock(c);
	return r;
}

/* ---- a select of another thread's ---- */

static void run_share(tt__sched *s, tt__post *p)
{
	tt_chan *c = post_chan(s, p);
	if (c == NULL)
		return;
	bool locked = share(s, c);
	chan_unlock_if(c, locked);
	tt__post_answer(p);
}

int tt__chan_share(tt__sched *s, const tt_chan *h, const char *op,
		   int reason)
{
	const tt_chan *c = chan_of(h);
	if (remote_shared(c))
		return 0;
	int r = chan_ask(s, h, run_share, op, reason, NULL, NULL,
			 NULL, TT_FOREVER, NULL);
	if (r == 0 && !remote_shared(c))
		r = tt__err(-ENOMEM,
			    "%s: out of memory sharing channel %p with this "
			    "thread",
			    op, (const void *)h);
	return r;
}

int tt__chan_ask_try(tt__sched *s, const tt_chan *h, bool recv, void *elem,
		     bool *ok)
{
	if (recv)
		return chan_ask(s, h, run_recv, "tt_select", TT_WAIT_SELECT,
				NULL, elem, ok, TT_TRY, NULL);
	return chan_ask(s, h, run_send, "tt_select", TT_WAIT_SELECT, elem,
			NULL, NULL, TT_TRY, NULL);
}

static int send_remote(tt__sched *s, const tt_chan *h, tt_chan *c,
		       const void *elem, int64_t deadline)
{
	chan_lock(c);
	int bad = remote_usable(h, c, "tt_chan_send");
	if (bad)
		return bad;
	if (c->closed) {
		chan_unlock(c);
		tt__panic("send on closed channel");
	}
	tt__g *wake = NULL;
	int r = try_send(s, c, elem, true, &wake);
	if (r == 0 && !s->current->shared)
		return WAIT_LOCKED; /* queued on c as the owner's goroutines are */
	chan_unlock(c);
	wake_taken(wake);
	return remote_result(r, deadline);
}

static int recv_remote(tt__sched *s, const tt_chan *h, tt_chan *c,
		       void *elem, bool *ok, int64_t deadline)
{
	chan_lock(c);
	int bad = remote_usable(h, c, "tt_chan_recv");
	if (bad)
		return bad;
	tt__g *wake = NULL;
	int r = try_recv(s, c, elem, ok, true, &wake);
	if (r == 0 && !s->current->shared)
		return WAIT_LOCKED;
	chan_unlock(c);
	wake_taken(wake);
	return remote_result(r, deadline);
}

/* Before another thread's first send or receive on c that may wait: the
 * owner shares c (a post that never waits), so that the wait is the
 * caller's own, queued on c and parked on its thread, as every later one
 * is, not a proxy goroutine of the owner's standing in for it (which the
 * profiles and the leak checker would show as one goroutine more, parked
 * in tether's own code). A goroutine on a shared stack cannot queue on
 * another thread's channel: it keeps asking the owner. */
static int share_first(tt__sched *s, const tt_chan *h, const tt_chan *c,
		       const char *op, int reason)
{
	if (remote_shared(c) || s->current->shared)
		return 0;
	return tt__chan_share(s, h, op, reason);
}

/* Everything tt_chan_send's fast path does not handle: nil channels, bad
 * input, another thread's channel, a shared one. The result is the call's,
 * or WAIT_LOCKED or WAIT_UNLOCKED: the caller must wait on the channel. */
static int send_prep(tt__sched *s, tt_chan *h, const void *elem,
		     size_t elem_size, int64_t deadline)
{
	if (h == NULL)
		return nil_wait(s, TT_WAIT_CHAN_SEND_NIL, deadline);
	int r = chan_check(s, h, elem_size, false, "tt_chan_send");
	if (r < 0)
		return r;
	tt_chan *c = chan_of(h);
	if (elem == NULL && elem_size)
		return tt__err(-EINVAL, "tt_chan_send: elem is NULL");
	if (r == REMOTE) {
		if ((r = share_first(s, h, c, "tt_chan_send",
				       TT_WAIT_CHAN_SEND)) < 0)
			return r;
		if (remote_shared(c) &&
		    (r = send_remote(s, h, c, elem, deadline)) != ASK_OWNER)
			return r;
		return chan_ask(s, h, run_send, "tt_chan_send",
				TT_WAIT_CHAN_SEND, elem, NULL, NULL, deadline,
				NULL);
	}
	bool locked = chan_lock_shared(c);
	tt__g *wake = NULL;
	if (try_send(s, c, elem, false, &wake)) {
		chan_unlock_if(c, locked);
		wake_taken(wake);
		return 0;
	}
	return locked ? WAIT_LOCKED : WAIT_UNLOCKED;
}

/* The body of tt_chan_send and tt_chan_send_until, inlined into both so
 * that a goroutine parked in tt_chan_send shows tt_chan_send on its stack
 * (the name the program used), with no extra call on the fast path. Every
 * wait, on this thread's channel or another's, parks at the one place in
 * it, so a goroutine parked in tt_chan_send has the same pc whichever way
 * it waits, and the same stack in the profiles. */
static inline __attribute__((always_inline)) int
chan_send(tt_chan *h, const void *elem, size_t elem_size, int64_t deadline)
{
	tt__sched *s = tt__sched_get();
	bool locked = false;
	if (TT_LIKELY(h != NULL) && chan_ok(s, h, elem_size) &&
	    TT_LIKELY(elem != NULL || elem_size == 0)) {
		if (try_send(s, chan_of(h), elem, false, NULL))
			return 0;
	} else {
		int r = send_prep(s, h, elem, elem_size, deadline);
		if (r != WAIT_LOCKED && r != WAIT_UNLOCKED)
			return r;
		locked = r == WAIT_LOCKED;
	}
	bool sent;
	int r = block_on(s, chan_of(h), &chan_of(h)->sendq, (void *)elem,
			 TT_WAIT_CHAN_SEND, deadline, &sent, locked);
	if (TT_UNLIKELY(r == 0 && !sent)) {
		if (((tt__waiter *)s->current->wait1)->flags & TT__W_DEAD)
			return woken_dead(s, "tt_chan_send", h);
		tt__panic("send on closed channel");
	}
	return TT_KEEP_FRAME(r);
}

int tt_chan_send_until(tt_chan *h, const void *elem, size_t elem_size,
		       int64_t deadline)
{
	return chan_send(h, elem, elem_size, deadline);
}

int tt_chan_send(tt_chan *h, const void *elem, size_t elem_size)
{
	return chan_send(h, elem, elem_size, TT_FOREVER);
}

/* Everything tt_chan_recv's fast path does not handle (see send_prep). */
static int recv_prep(tt__sched *s, tt_chan *h, void *elem, size_t elem_size,
		     bool *ok, int64_t deadline)
{
	if (h == NULL)
		return nil_wait(s, TT_WAIT_CHAN_RECV_NIL, deadline);
	int r = chan_check(s, h, elem_size, elem == NULL, "tt_chan_recv");
	if (r < 0)
		return r;
	tt_chan *c = chan_of(h);
	if (r == REMOTE) {
		if ((r = share_first(s, h, c, "tt_chan_recv",
				       TT_WAIT_CHAN_RECV)) < 0)
			return r;
		if (remote_shared(c) &&
		    (r = recv_remote(s, h, c, elem, ok, deadline)) !=
			    ASK_OWNER)
			return r;
		return chan_ask(s, h, run_recv, "tt_chan_recv",
				TT_WAIT_CHAN_RECV, NULL, elem, ok, deadline,
				NULL);
	}
	bool locked = chan_lock_shared(c);
	tt__g *wake = NULL;
	if (try_recv(s, c, elem, ok, false, &wake)) {
		chan_unlock_if(c, locked);
		wake_taken(wake);
		return 0;
	}
	return locked ? WAIT_LOCKED : WAIT_UNLOCKED;
}

/* The body of tt_chan_recv and tt_chan_recv_until (see chan_send). */
static inline __attribute__((always_inline)) int
chan_recv(tt_chan *h, void *elem, size_t elem_size, bool *ok,
	  int64_t deadline)
{
	tt__sched *s = tt__sched_get();
	bool locked = false;
	if (TT_LIKELY(h != NULL) && chan_ok(s, h, elem_size) &&
	    TT_LIKELY(elem != NULL)) {
		if (try_recv(s, chan_of(h), elem, ok, false, NULL))
			return 0;
	} else {
		int r = recv_prep(s, h, elem, elem_size, ok, deadline);
		if (r != WAIT_LOCKED && r != WAIT_UNLOCKED)
			return r;
		locked = r == WAIT_LOCKED;
	}
	bool got;
	int r = block_on(s, chan_of(h), &chan_of(h)->recvq, elem,
			 TT_WAIT_CHAN_RECV, deadline, &got, locked);
	if (r == 0 && !got &&
	    TT_UNLIKELY(((tt__waiter *)s->current->wait1)->flags & TT__W_DEAD))
		return woken_dead(s, "tt_chan_recv", h);
	if (r == 0 && ok)
		*ok = got;
	return TT_KEEP_FRAME(r);
}

int tt_chan_recv_until(tt_chan *h, void *elem, size_t elem_size, bool *ok,
		       int64_t deadline)
{
	return chan_recv(h, elem, elem_size, ok, deadline);
}

int tt_chan_recv(tt_chan *h, void *elem, size_t elem_size, bool *ok)
{
	return chan_recv(h, elem, elem_size, ok, TT_FOREVER);
}

/* ---- references ---------------------------------------------------------- */

int tt_chan_retain(tt_chan *h)
{
	if (h == NULL)
		return tt__err(-EINVAL, "tt_chan_retain: channel is NULL");
	tt__sched *s = tt__sched_get();
	int r = chan_check(s, h, TT__ANY_SIZE, false, "tt_chan_retain");
	if (r == REMOTE)
		return chan_ask(s, h, run_retain, "tt_chan_retain",
				TT_WAIT_SYSCALL, NULL, NULL, NULL, TT_FOREVER,
				NULL);
	if (r)
		return r;
	char msg[120];
	r = retain_body(chan_of(h), msg, sizeof msg);
	return r ? tt__err(r, "%s", msg) : 0;
}

int tt_chan_release(tt_chan *h)
{
	if (h == NULL)
		return tt__err(-EINVAL, "tt_chan_release: channel is NULL");
	tt__sched *s = tt__sched_get();
	int r = chan_check(s, h, TT__ANY_SIZE, false, "tt_chan_release");
	if (r == REMOTE) {
		/* The owner drops the reference when it next looks; the
		 * caller has given it up now (it must not wait: the owner
		 * may be out of tether, joining this very thread). */
		tt__post *p = tt__post_new(0, "tt_chan_release");
		if (p == NULL)
			return -ENOMEM;
		p->run = run_release;
		p->h = h;
		return tt__post_send(chan_of(h)->sched, p);
	}
	if (r)
		return r;
	char msg[120];
	r = release_body(s, chan_of(h), msg, sizeof msg);
	return r ? tt__err(r, "%s", msg) : 0;
}

/* ---- close, len, cap ---------------------------------------------------------- */

static void chan_close_body(tt__sched *s, tt_chan *c)
{
	c->closed = true;
	TT_TSAN_SYNC(c);
	tt__waiter *w;
	/* Stale waiters (of selects claimed already) are dropped on the way,
	 * their elements untouched. */
	while ((w = waitq_take(&c->recvq, false, NULL)) != NULL) {
		if (w->elem && c->elem_size)
			memset(waiter_elem(w), 0, c->elem_size);
		fire_any(s, w, false);
	}
	while ((w = waitq_take(&c->sendq, false, NULL)) != NULL)
		fire_any(s, w, false);
	TT_TSAN_SYNC(c); /* after clearing the receivers' values */
}

int tt_chan_close(tt_chan *h)
{
	if (h == NULL)
		tt__panic("close of nil channel");
	tt__sched *s = tt__sched_get();
	int r = chan_check(s, h, TT__ANY_SIZE, false, "tt_chan_close");
	if (r == REMOTE)
		return chan_ask(s, h, run_close, "tt_chan_close",
				TT_WAIT_SYSCALL, NULL, NULL, NULL, TT_FOREVER,
				NULL);
	if (r)
		return r;
	tt_chan *c = chan_of(h);
	if (c->timer)
		return tt__err(-EPERM, "tt_chan_close: timer channels are "
				       "receive-only");
	bool locked = chan_lock_shared(c);
	if (c->closed) {
		chan_unlock_if(c, locked);
		tt__panic("close of closed channel");
	}
	chan_close_body(s, c);
	chan_unlock_if(c, locked);
	return 0;
}

ptrdiff_t tt_chan_len(const tt_chan *h)
{
	if (h == NULL)
		return 0;
	tt__sched *s = tt__sched_get();
	int r = chan_check(s, h, TT__ANY_SIZE, false, "tt_chan_len");
	tt_chan *c = chan_of(h);
	if (r == REMOTE && !remote_shared(c)) {
		int64_t n = 0;
		r = chan_ask(s, h, run_len, "tt_chan_len", TT_WAIT_SYSCALL,
			     NULL, NULL, NULL, TT_FOREVER, &n);
		return r ? r : (ptrdiff_t)n;
	}
	if (r < 0)
		return r;
	bool locked = r == REMOTE || chan_shared(c);
	if (locked) {
		chan_lock(c);
		if (r == REMOTE && (r = remote_usable(h, c, "tt_chan_len")))
			return r;
	}
	ptrdiff_t n = (ptrdiff_t)c->qcount;
	chan_unlock_if(c, locked);
	return n;
}

ptrdiff_t tt_chan_cap(const tt_chan *h)
{
	if (h == NULL)
		return 0;
	tt__sched *s = tt__sched_get();
	/* The capacity never changes: read from any thread. */
	int r = chan_check(s, h, TT__ANY_SIZE, false, "tt_chan_cap");
	return r < 0 ? r : (ptrdiff_t)chan_of(h)->cap;
}
