/* tether — channel internals shared by chan.c, select.c and timerchan.c.
 *
 * Invariants, in terms of the fields (Go's runtime/chan.go, single
 * threaded):
 *  - at most one of recvq and sendq is non-empty;
 *  - recvq non-empty implies qcount == 0 (a receiver waits only for an
 *    empty channel);
 *  - sendq non-empty implies qcount == cap (a sender waits only when the
 *    buffer is full, or always for cap == 0);
 *  - a waiter is in a queue iff w->queued; a goroutine is readied by
 *    exactly one of: a waker taking one of its waiters, or its deadline
 *    timer. A select of several cases is claimed by the first of them
 *    (waiter_claim); its other waiters may stay queued, stale, until it
 *    runs again and takes them out, and whoever meets a stale waiter
 *    first drops it (waitq_take). So the first two invariants hold for
 *    the live waiters; a stale one only ever makes a channel look ready
 *    to a look that then finds nothing (a select retries).
 *
 * Shared channels. A channel starts private to its owner, which uses it
 * with no lock at all. The first time another thread asks the owner for
 * a send, a receive, a length or a select (post.c), the owner marks it
 * shared, and from then on every operation on it, the owner's included,
 * holds its lock (Go's hchan.lock) while it reads or changes the fields
 * above, parked and refs too. Another thread then sends, receives and
 * selects itself, under the lock: into or out of the buffer; handing a
 * value to a parked waiter that allows it (w->remote_ok: a goroutine with
 * a stack of its own, of any thread, in a send, a receive or a select),
 * whose wake-up it posts to the waiter's thread (tt__wake_remote); and
 * when it must wait, by queueing its own waiters and parking on its own
 * thread. A waiter that allows no other thread (a shared-stack
 * goroutine's; a select queued while all its channels were private) is
 * the owner's to take: another thread that finds it first asks the owner
 * (ASK_OWNER, tt__chan_ask_try). So queues hold waiters of any thread,
 * and whoever takes one fires it if it is its own and else posts its
 * wake-up; its deadline, on its own thread, takes it out under the lock,
 * or does nothing if a waker took it first (tt__chan_cancel). A waker
 * holds one channel's lock and takes no other while it does; a select
 * holds the locks of all its shared channels, taken in address order
 * (select.c); nothing else holds two. Only the owner frees a channel: a
 * waiter of another thread that leaves a channel nobody holds any more
 * asks it to (unpark_shared).
 *
 * A thread that takes a parked goroutine's waiter of another thread pins
 * that thread (tt__wake_pin) before it unlocks, and a thread, when it
 * ends, takes its goroutines' waiters out of other threads' channels
 * (leave_foreign) and marks each of its shared channels dead under the
 * lock, waking other threads' waiters on them with -EPIPE (TT__W_DEAD),
 * before it frees any goroutine, then waits for the pinned wake-ups: no
 * thread touches a goroutine or a waiter that is gone, and a dead channel
 * says so (-EPIPE, as a post to an ended thread does).
 */
#ifndef TT_CHAN_INTERNAL_H
#define TT_CHAN_INTERNAL_H

#include <string.h>

#include "internal.h"


typedef struct tt__waiter tt__waiter;

typedef struct tt__waitq {
	tt__waiter *first, *last;
} tt__waitq;

/* One parked goroutine's interest in one channel (Go's sudog). A wait on
 * one channel (a send, a receive, a one-case select) keeps it at
 * g->wait1, a slot of the scheduler's waiter pool; a select of several
 * cases keeps them on the parked goroutine's stack, or for a
 * shared-stack goroutine in its record or a buffer it keeps
 * (tt__g_waiters), since its stack moves while it is parked. */
struct tt__waiter {
	tt__waiter *next, *prev; /* in c->recvq or c->sendq */
	tt__g *g;
	tt_chan *c;
	tt__waitq *q;    /* the queue it is in: &c->recvq or &c->sendq */
	void *elem;      /* value to send, or where a received one goes: as
			    the parked goroutine sees it; others reach it
			    through waiter_elem. A sender's element of up to
			    TT_CHAN_SEND_COPY bytes points to val. */
	/* A parked sender's value, copied at park time (waiter_park_send),
	 * so that it is the value at the start of the send, as in Go. */
	_Alignas(8) unsigned char val[TT_CHAN_SEND_COPY];
	int case_ix;     /* index in select's cases, or -1 */
	bool queued;
	bool success;    /* set by the waker: a value moved (false: closed) */
	bool remote_ok;  /* another thread may take it (see above) */
	uint8_t flags;   /* TT__W_* */
};

/* w->flags. */
enum {
	/* Woken because the channel's owner ended (a waiter of another
	 * thread's: -EPIPE). */
	TT__W_DEAD = 1,
	/* One of the waiters of a select of several cases: whoever takes it
	 * must first claim the select (waiter_claim); a waiter of a select
	 * already claimed is stale, and is dropped from its queue by
	 * whoever finds it there. */
	TT__W_SELECT = 2,
	/* Its wait has a deadline (or a context that may end it): whoever
	 * finds it on a channel nobody holds any more does not take it for
	 * stranded (the leak layer, from another thread than its own). */
	TT__W_TIMED = 4,
};

/* Claim w's select for the caller, which holds w's channel's lock if that
 * is shared: true once, for the first to ask of one park (a taker on any
 * thread, a close, the deadline); false for every later one. A select
 * that other threads may take from (remote_ok) is claimed with an atomic
 * exchange; one only its own thread takes from (queued on channels of its
 * own while they were private, or of a shared-stack goroutine) with plain
 * loads and stores. The select resets the claim under the locks of its
 * channels before it queues (select.c). */
static inline bool waiter_claim(const tt__waiter *w)
{
	tt__g *g = w->g;
	if (w->remote_ok)
		return !atomic_exchange_explicit(&g->sel_claim, 1,
						 memory_order_acq_rel);
	if (atomic_load_explicit(&g->sel_claim, memory_order_relaxed))
		return false;
	atomic_store_explicit(&g->sel_claim, 1, memory_order_relaxed);
	return true;
}


typedef struct tt__chan_timer tt__chan_timer;

struct tt_chan {
	tt__obj hdr;           /* the program's tt_chan * is its handle
				  (obj.c), never this address */
	tt__sched *sched;      /* owner: the only scheduler that may use it
				  while it is private */
	_Atomic bool shared;   /* set once, by the owner: locked from then */
	tt__sched *fast;       /* sched while private, NULL once shared: what
				  the owner's fast paths compare (chan_ok) */
	_Atomic uint32_t lock; /* held while a shared one is used */
	uint32_t shared_ix;    /* in sched->shared_v, once shared */
	tt__chan_timer *timer; /* set for timer and ticker channels */
	uint32_t refs;         /* user references */
	uint32_t parked;       /* goroutines that parked on it and have not
				  yet resumed (woken or not): they keep it
				  alive with no reference of their own */
	uint32_t slot_size;    /* bytes of its object slot */
	size_t elem_size;
	size_t cap;
	size_t qcount;         /* values in buf */
	size_t sendx, recvx;   /* ring indices into buf */
	tt__waitq recvq, sendq;
	bool closed;
	bool dead;             /* shared, and its owner's thread has ended
				  (set under the lock) */
	bool released;         /* shared, and being freed (likewise) */
	bool buf_heap;         /* buf was malloc'd (too big for the slot) */
	char *buf;             /* cap * elem_size bytes: in the slot after
				  the struct when they fit, else malloc'd */
};

/* The channel a handle names, live or not (h != NULL), and back. */
static inline tt_chan *chan_of(const tt_chan *h)
{
	return (tt_chan *)tt__obj_ptr(h);
}

static inline tt_chan *chan_handle(const tt_chan *c)
{
	return tt__obj_handle(c);
}

/* Timer and ticker channels carry their heap node with them. */
struct tt__chan_timer {
	tt__timer t;
	bool is_ticker;
	/* tt_after_func's timers: fn(arg) runs in a new goroutine when the
	 * timer fires (NULL for every other timer). While armed, the
	 * timer holds one reference on its channel (see timerchan.c). */
	tt_func fn;
	void *arg;
	int64_t parent_id; /* who called tt_after_func, where, and its */
	void *pc;          /* leak scope */
	uint64_t leak_scope;
};

static inline void elem_copy(void *dst, const void *src, size_t n)
{
	switch (n) {
	case 0:
		return;
	case 4:
		memcpy(dst, src, 4);
		return;
	case 8:
		memcpy(dst, src, 8);
		return;
	case 16:
		memcpy(dst, src, 16);
		return;
	default:
		memcpy(dst, src, n);
	}
}

/* Where the parked goroutine's element is now (a shared-stack goroutine's
 * may have been copied out with its stack). */
static inline void *waiter_elem(const tt__waiter *w)
{
	return (void *)tt__g_stack_addr(w->g, w->elem);
}

/* w is about to queue on c->sendq, sending the value at elem (as the
 * running goroutine sees it). Small values are copied into w now. */
static inline void waiter_park_send(tt__waiter *w, const tt_chan *c,
				    const void *elem)
{
	if (c->elem_size <= TT_CHAN_SEND_COPY) {
		elem_copy(w->val, elem, c->elem_size);
		w->elem = w->val;
	} else {
		w->elem = (void *)elem;
	}
}

static inline void waitq_push(tt__waitq *q, tt__waiter *w)
{
	w->next = NULL;
	w->prev = q->last;
	if (q->last)
		q->last->next = w;
	else
		q->first = w;
	q->last = w;
	w->queued = true;
}

static inline void waitq_unlink(tt__waitq *q, tt__waiter *w)
{
	if (w->prev)
		w->prev->next = w->next;
	else
		q->first = w->next;
	if (w->next)
		w->next->prev = w->prev;
	else
		q->last = w->prev;
	w->queued = false;
}

/* Whether a thread other than the channel's owner may take w (above). */
static inline bool waiter_remote_takes(const tt__waiter *w)
{
	return w->remote_ok && !w->g->shared;
}

/* The first waiter of q that may be taken, out of the queue and claimed;
 * NULL if there is none. Stale waiters (a select claimed by another of
 * its cases) found on the way are dropped. With remote (the caller is
 * not the channel's owner), a waiter only the owner may take stops the
 * search: *owner_only is set. The caller holds the channel's lock if it
 * is shared. */
static inline __attribute__((always_inline)) tt__waiter *
waitq_take(tt__waitq *q, bool remote, bool *owner_only)
{
	for (;;) {
		tt__waiter *w = q->first;
		if (w == NULL)
			return NULL;
		if (remote && !waiter_remote_takes(w)) {
			*owner_only = true;
			return NULL;
		}
		waitq_unlink(q, w);
		if (TT_LIKELY(!(w->flags & TT__W_SELECT)) || waiter_claim(w))
			return w;
	}
}

/* Validate the handle h for an operation with elements of elem_size
 * (TT__ANY_SIZE: any): 0 if it names a live channel of this thread, 1
 * if another thread's, else the error recorded. */
#define TT__ANY_SIZE SIZE_MAX
int tt__chan_check_any(tt__sched *s, const tt_chan *h, size_t elem_size,
		       bool discard_ok, const char *op);

/* For a send, receive or select on h, another thread's channel: have its
 * owner share it (asked, and waited for, unless it is shared already),
 * the wait listed under reason, the operation's. 0, or the error
 * recorded. */
int tt__chan_share(tt__sched *s, const tt_chan *h, const char *op,
		   int reason);

/* Whether shared c, locked by the caller (of another thread), may still
 * be used: 0, or the error recorded (its owner ended: -EPIPE; released:
 * -EBADF). */
int tt__chan_gone(const tt_chan *h, const tt_chan *c, const char *op);

/* A select's try on another thread's channel h whose first waiter only
 * the owner may take: asked of the owner, with TT_TRY. 0 done, -EAGAIN
 * if it would block, else the error recorded (a panic the try calls for
 * is raised here). */
int tt__chan_ask_try(tt__sched *s, const tt_chan *h, bool recv, void *elem,
		     bool *ok);

/* Fire a dequeued waiter (its select claimed): record success, stop its
 * deadline, ready it. */
void tt__waiter_fire(tt__sched *s, tt__waiter *w, bool success);

/* The wait primitive's cancel for goroutines parked on channels (a send,
 * a receive, a select, a descriptor wait's done channel): every waiter of
 * g still queued leaves its queue. */
bool tt__chan_cancel(tt__g *g);

/* The non-blocking halves: try to complete the operation now. Return 1 if
 * done, 0 if it would block, and on a thread other than c's owner -1 if
 * only the owner may take c's first waiter (tt__chan_ask_try).
 * tt__chan_try_send panics on a closed channel. The caller holds c's lock
 * if c is shared. */
int tt__chan_try_send(tt__sched *s, tt_chan *c, const void *elem);
int tt__chan_try_recv(tt__sched *s, tt_chan *c, void *elem, bool *ok);

/* A goroutine that parked on c has resumed: drop its hold and free c if
 * nothing else holds it. */
void tt__chan_unpark(tt__sched *s, tt_chan *c);


/* Allocate a channel (with room for a timer node if with_timer); *out is
 * the channel itself, not its handle. */
int tt__chan_new(tt_chan **out, size_t elem_size, ptrdiff_t cap,
		 bool with_timer);

/* The fast paths' check of a non-NULL handle: a live private channel of
 * s's, of elements of elem_size (tt__chan_check_any says what is wrong when
 * this fails; a shared channel of s's is not wrong, only slower). */
static inline bool chan_ok(tt__sched *s, const tt_chan *h, size_t elem_size)
{
	const tt_chan *c = chan_of(h);
	return TT_LIKELY(tt__obj_is(h, TT__OBJ_CHAN) && c->fast == s &&
			 c->elem_size == elem_size);
}

/* ---- the lock of a shared channel ---- */

void tt__chan_lock_slow(tt_chan *c);

static inline void chan_lock(tt_chan *c)
{
	if (TT_UNLIKELY(atomic_exchange_explicit(&c->lock, 1,
						 memory_order_acquire)))
		tt__chan_lock_slow(c);
}

static inline void chan_unlock(tt_chan *c)
{
	atomic_store_explicit(&c->lock, 0, memory_order_release);
}

/* On the owner, which alone sets it: whether c is shared. */
static inline bool chan_shared(const tt_chan *c)
{
	return atomic_load_explicit(&c->shared, memory_order_relaxed);
}

/* On the owner: take c's lock if c is shared; whether it did. */
static inline bool chan_lock_shared(tt_chan *c)
{
	if (TT_LIKELY(!chan_shared(c)))
		return false;
	chan_lock(c);
	return true;
}

static inline void chan_unlock_if(tt_chan *c, bool locked)
{
	if (locked)
		chan_unlock(c);
}

static inline bool chan_recv_ready(const tt_chan *c)
{
	return c->sendq.first || c->qcount || c->closed;
}

static inline bool chan_send_ready(const tt_chan *c)
{
	return c->closed || c->recvq.first || c->qcount < c->cap;
}

#endif
