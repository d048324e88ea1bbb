/* tether — channels and select, with Go's semantics.
 *
 * A channel carries values of one fixed size, copied in and out like Go's
 * (the size is given on every operation and checked). Capacity 0 is an
 * unbuffered channel: a send completes only when a receiver takes the
 * value. Elements of size 0 (Go's chan struct{}) are allowed; their
 * pointers may be NULL.
 *
 * Lifetime: tt_chan_make gives the caller one reference; tt_chan_retain
 * adds one, tt_chan_release drops one. A goroutine parked on a channel
 * keeps it alive through the runtime, so releasing a channel others wait
 * on never frees it under them. Pass each goroutine its own reference (or
 * keep yours until they are done).
 *
 * A NULL channel is Go's nil channel: send and receive block forever (and
 * a select case on it is never ready); close panics.
 *
 * Handles cannot alias. A tt_chan * (and every other tether handle:
 * contexts, timers, tickers, sync objects) is a generation-checked
 * handle, not a plain address: the runtime keeps each object in a slot it
 * never gives back to malloc, and the handle carries the slot's
 * generation. Once the last reference is released, every use of the old
 * handle returns -EBADF with tt_last_error() saying "... is not a live
 * channel", for as long as the process runs, even after the slot holds
 * a new object (which the stale handle never reaches: a slot that has
 * used up its 65,535 generations is retired, not wrapped). Checking reads
 * only the runtime's own memory, so it is clean under ASan and Valgrind.
 * Compare handles with ==; do not do arithmetic on them or dereference
 * them.
 *
 * Go's panics are panics here: close of a nil or closed channel, send on
 * a closed channel. They print "tether: panic: ..." with the goroutine's
 * stack and abort. */
#ifndef TETHER_CHAN_H
#define TETHER_CHAN_H

#include "common.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct tt_chan tt_chan;

/* make(chan T, cap): elem_size is sizeof(T). -EINVAL for a negative cap
 * or an elem_size * cap that overflows, -ENOMEM. */
TT_EXPORT int tt_chan_make(tt_chan **out, size_t elem_size, ptrdiff_t cap);
TT_EXPORT int tt_chan_retain(tt_chan *c);
TT_EXPORT int tt_chan_release(tt_chan *c);

/* c <- *elem. Blocks until a receiver takes it or the buffer has room.
 * -EINVAL if elem_size differs from the channel's.
 *
 * The value sent is *elem as it is when the send starts, as in Go: a
 * sender that parks copies an element of up to TT_CHAN_SEND_COPY bytes
 * aside, and changes to *elem while it waits do not reach the receiver.
 * A larger element is read from *elem when a receiver takes it (or when
 * it moves into the buffer), so *elem must not change until the send
 * returns. The same holds for a select's send cases. */
#define TT_CHAN_SEND_COPY 8
TT_EXPORT TT_WARN_UNUSED int tt_chan_send(tt_chan *c, const void *elem,
					  size_t elem_size);

/* *elem, *ok = <-c. On a closed, drained channel stores the zero value and
 * *ok = false. ok may be NULL; elem may be NULL with elem_size 0 to
 * discard the value (Go's `<-c`). */
TT_EXPORT TT_WARN_UNUSED int tt_chan_recv(tt_chan *c, void *elem,
					  size_t elem_size, bool *ok);

/* The same with a deadline (see common.h): -EAGAIN for TT_TRY when the
 * operation would block, -ETIMEDOUT when the deadline passes. */
TT_EXPORT TT_WARN_UNUSED int tt_chan_send_until(tt_chan *c, const void *elem,
						size_t elem_size,
						int64_t deadline);
TT_EXPORT TT_WARN_UNUSED int tt_chan_recv_until(tt_chan *c, void *elem,
						size_t elem_size, bool *ok,
						int64_t deadline);

/* close(c). Wakes every parked receiver (they get ok = false) and panics
 * every parked sender, as Go does. */
TT_EXPORT int tt_chan_close(tt_chan *c);

/* len(c) and cap(c); 0 for a nil channel, -EBADF for a released one. */
TT_EXPORT ptrdiff_t tt_chan_len(const tt_chan *c);
TT_EXPORT ptrdiff_t tt_chan_cap(const tt_chan *c);

/* Shorthands that take the element size from the pointer's type, so the
 * compiler gets it right: use them rather than spelling sizes out. The
 * _ctx forms are in ctx.h. */
#define tt_send(c, p) tt_chan_send((c), (p), sizeof *(p))
#define tt_recv(c, p, ok) tt_chan_recv((c), (p), sizeof *(p), (ok))
#define tt_send_until(c, p, deadline)                                       \
	tt_chan_send_until((c), (p), sizeof *(p), (deadline))
#define tt_recv_until(c, p, ok, deadline)                                   \
	tt_chan_recv_until((c), (p), sizeof *(p), (ok), (deadline))
/* Channels of zero-size elements (Go's chan struct{}): `c <- struct{}{}`
 * and `<-c` (or `_, ok := <-c`). tt_recv_discard also takes any value
 * from a channel of any element size and drops it. */
#define tt_send_empty(c) tt_chan_send((c), NULL, 0)
#define tt_recv_discard(c, ok) tt_chan_recv((c), NULL, 0, (ok))

/* select. */
typedef enum tt_case_kind {
	TT_CASE_RECV = 1,
	TT_CASE_SEND = 2
} tt_case_kind;

typedef struct tt_case {
	int kind;         /* a tt_case_kind */
	tt_chan *chan;    /* NULL: a nil channel, never ready */
	void *elem;       /* value to send, or where to store a received one */
	size_t elem_size; /* must match the channel's (0 with elem NULL
			     discards a received value) */
	bool *ok;         /* receive: set to false if closed; may be NULL */
} tt_case;

#define TT_CASE_RECV_INTO(c, p, okp) \
	((tt_case){TT_CASE_RECV, (c), (p), sizeof *(p), (okp)})
#define TT_CASE_RECV_DISCARD(c, okp) \
	((tt_case){TT_CASE_RECV, (c), NULL, 0, (okp)})
#define TT_CASE_SEND_FROM(c, p) \
	((tt_case){TT_CASE_SEND, (c), (void *)(p), sizeof *(p), NULL})
/* A send on a channel of zero-size elements (`case c <- struct{}{}:`). */
#define TT_CASE_SEND_EMPTY(c) ((tt_case){TT_CASE_SEND, (c), NULL, 0, NULL})

/* Go's select over cases[0..n). Blocks until one case can proceed,
 * chooses uniformly at random among the cases that are ready, performs it
 * and returns its index. With deadline TT_TRY it is Go's select with a
 * `default` case: -EAGAIN when none is ready. -ETIMEDOUT when the deadline
 * passes, -EINVAL for an unknown case kind or a wrong element size (no
 * case is performed then). n == 0 with TT_FOREVER blocks forever, like
 * `select {}`. A send case on a closed channel panics when chosen, as
 * in Go. The cases array is only read; values move through the elem and
 * ok pointers it holds. */
TT_EXPORT TT_WARN_UNUSED int tt_select(const tt_case *cases, size_t n,
				       int64_t deadline);

/* Go's select with a `default:` clause: performs a ready case (chosen
 * uniformly at random) and returns its index, or returns TT_DEFAULT at
 * once when none is ready. TT_DEFAULT is not an error (it is >= 0, so an
 * `if (r < 0)` check lets it through) and no case index can equal it:
 *
 *     switch (tt_select_default(cases, 2)) {
 *     case 0: ...; break;
 *     case 1: ...; break;
 *     case TT_DEFAULT: ...; break;     // Go's default:
 *     default: ...                      // an error: -EINVAL, -EBADF
 *     }
 */
#define TT_DEFAULT 0x7fffffff
TT_EXPORT TT_WARN_UNUSED int tt_select_default(const tt_case *cases,
					       size_t n);

#ifdef __cplusplus
}
#endif
#endif
