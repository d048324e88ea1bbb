/* tether tests — channels (include/tether/chan.h), with Go's semantics. */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"
#include "testutil.h"
#include "chan_queued.h"

/* A recognisable byte pattern for value number k of size n. */
static void fill(unsigned char *p, size_t n, unsigned k)
{
	for (size_t i = 0; i < n; i++)
		p[i] = (unsigned char)(k * 131u + i * 7u + 1u);
}

/* ---- send and receive of every element size --------------------------- */

#define XFER_COUNT 20
#define MAX_ELEM 1000

typedef struct xfer_arg {
	tt_chan *c;
	size_t size;
	int count;
	tt_chan *done;
} xfer_arg;

static void producer(void *p)
{
	xfer_arg *a = p;
	unsigned char buf[MAX_ELEM];
	for (int k = 0; k < a->count; k++) {
		fill(buf, a->size, (unsigned)k);
		TU_ASSERT_OK(tt_chan_send(a->c, a->size ? buf : NULL, a->size));
		/* Changing our copy after the send must not change what the
		 * receiver gets. */
		memset(buf, 0xee, a->size);
	}
	tu_done(a->done);
}

static void check_transfer(size_t size, ptrdiff_t cap)
{
	xfer_arg a = {.c = tu_chan(size, cap), .size = size,
		      .count = XFER_COUNT, .done = tu_chan(0, 1)};
	assert_int_equal(tt_chan_cap(a.c), cap);
	tu_go(producer, &a);
	unsigned char got[MAX_ELEM], want[MAX_ELEM];
	for (int k = 0; k < XFER_COUNT; k++) {
		bool ok = false;
		memset(got, 0xaa, sizeof got);
		TU_ASSERT_OK(tt_chan_recv(a.c, size ? got : NULL, size, &ok));
		assert_true(ok);
		fill(want, size, (unsigned)k);
		TU_ASSERT_MEM_EQ(got, want, size);
		/* Nothing beyond the element was written. */
		if (size < sizeof got)
			assert_int_equal(got[size], 0xaa);
	}
	TU_WAIT_DONE(a.done, 1, 5 * TT_SECOND);
	assert_int_equal(tt_chan_len(a.c), 0);
	TU_ASSERT_OK(tt_chan_release(a.c));
	TU_ASSERT_OK(tt_chan_release(a.done));
}

static void test_chan_elem_sizes(void **state)
{
	(void)state;
	static const size_t sizes[] = {0, 1, 4, 8, 24, 1000};
	static const ptrdiff_t caps[] = {0, 1, 3, 64};
	for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++)
		for (size_t j = 0; j < sizeof caps / sizeof caps[0]; j++)
			check_transfer(sizes[i], caps[j]);
}

/* ---- FIFO order ------------------------------------------------------------ */

static void test_chan_buffered_fifo(void **state)
{
	(void)state;
	tt_chan *c = tu_chan(sizeof(int), 100);
	for (int i = 0; i < 100; i++)
		TU_ASSERT_OK(tt_send(c, &i));
	/* Full: a send would block. */
	int x = -1;
	TU_ASSERT_ERR(tt_chan_send_until(c, &x, sizeof x, TT_TRY), -EAGAIN);
	assert_int_equal(tt_chan_len(c), 100);
	/* Wrap the ring: take 30, add 30 more. */
	for (int i = 0; i < 30; i++) {
		int v = -1;
		TU_ASSERT_OK(tt_recv(c, &v, NULL));
		TU_ASSERT_EQ(v, i);
	}
	for (int i = 100; i < 130; i++)
		TU_ASSERT_OK(tt_send(c, &i));
	for (int i = 30; i < 130; i++) {
		int v = -1;
		bool ok = false;
		TU_ASSERT_OK(tt_recv(c, &v, &ok));
		assert_true(ok);
		TU_ASSERT_EQ(v, i);
	}
	TU_ASSERT_ERR(tt_chan_recv_until(c, &x, sizeof x, NULL, TT_TRY),
		      -EAGAIN);
	TU_ASSERT_OK(tt_chan_release(c));
}

typedef struct id_arg {
	tt_chan *c;
	int id;
	int got;
	tt_chan *done;
} id_arg;

static void send_id(void *p)
{
	id_arg *a = p;
	TU_ASSERT_OK(tt_send(a->c, &a->id));
	tu_done(a->done);
}

static void recv_into_got(void *p)
{
	id_arg *a = p;
	bool ok = false;
	TU_ASSERT_OK(tt_recv(a->c, &a->got, &ok));
	TU_ASSERT(ok);
	tu_done(a->done);
}

/* Parked senders are served in the order they parked, and so are parked
 * receivers (Go's wait queues are FIFO). */
static void test_chan_waiters_fifo(void **state)
{
	(void)state;
	tt_chan *c = tu_chan(sizeof(int), 0);
	tt_chan *done = tu_chan(0, 8);
	id_arg s[5];
	for (int i = 0; i < 5; i++) {
		s[i] = (id_arg){.c = c, .id = 100 + i, .done = done};
		tu_go(send_id, &s[i]);
		TU_WAIT_QUEUED(c, true, i + 1); /* in this order */
	}
	for (int i = 0; i < 5; i++) {
		int v = -1;
		TU_ASSERT_OK(tt_recv(c, &v, NULL));
		TU_ASSERT_EQ(v, 100 + i);
	}
	TU_WAIT_DONE(done, 5, 5 * TT_SECOND);

	id_arg r[5];
	for (int i = 0; i < 5; i++) {
		r[i] = (id_arg){.c = c, .got = -1, .done = done};
		tu_go(recv_into_got, &r[i]);
		TU_WAIT_QUEUED(c, false, i + 1);
	}
	for (int i = 0; i < 5; i++) {
		int v = 200 + i;
		TU_ASSERT_OK(tt_send(c, &v));
	}
	TU_WAIT_DONE(done, 5, 5 * TT_SECOND);
	for (int i = 0; i < 5; i++)
		TU_ASSERT_EQ(r[i].got, 200 + i);
	TU_ASSERT_OK(tt_chan_release(c));
	TU_ASSERT_OK(tt_chan_release(done));
}

/* ---- blocking behaviour ------------------------------------------------------ */

typedef struct block_arg {
	tt_chan *c;
	int sent;
	tt_chan *done;
} block_arg;

/* sent is atomic: the test reads it once the sender has parked, and with
 * more than one P the sender may run on another thread. */
static void send_three(void *p)
{
	block_arg *a = p;
	for (int i = 1; i <= 3; i++) {
		TU_ASSERT_OK(tt_send(a->c, &i));
		__atomic_store_n(&a->sent, i, __ATOMIC_RELEASE);
	}
	tu_done(a->done);
}

static void test_chan_unbuffered_blocks(void **state)
{
	(void)state;
	/* "a send completes only when a receiver takes the value" */
	block_arg a = {.c = tu_chan(sizeof(int), 0), .done = tu_chan(0, 1)};
	tu_go(send_three, &a);
	/* parked in its first send */
	TU_WAIT_QUEUED(a.c, true, 1);
	assert_int_equal(__atomic_load_n(&a.sent, __ATOMIC_ACQUIRE), 0);
	assert_int_equal(tt_chan_len(a.c), 0);
	assert_int_equal(tt_chan_cap(a.c), 0);
	for (int i = 1; i <= 3; i++) {
		int v = 0;
		TU_ASSERT_OK(tt_recv(a.c, &v, NULL));
		TU_ASSERT_EQ(v, i);
	}
	TU_WAIT_DONE(a.done, 1, 5 * TT_SECOND);
	assert_int_equal(__atomic_load_n(&a.sent, __ATOMIC_ACQUIRE), 3);
	TU_ASSERT_OK(tt_chan_release(a.c));
	TU_ASSERT_OK(tt_chan_release(a.done));
}

static void test_chan_buffered_blocks_when_full(void **state)
{
	(void)state;
	block_arg a = {.c = tu_chan(sizeof(int), 2), .done = tu_chan(0, 1)};
	tu_go(send_three, &a);
	/* Two fit; the third send parks. */
	TU_WAIT_QUEUED(a.c, true, 1);
	assert_int_equal(__atomic_load_n(&a.sent, __ATOMIC_ACQUIRE), 2);
	assert_int_equal(tt_chan_len(a.c), 2);
	assert_int_equal(tt_chan_cap(a.c), 2);

	int v = 0;
	TU_ASSERT_OK(tt_recv(a.c, &v, NULL));
	TU_ASSERT_EQ(v, 1);
	/* The parked sender's value moved into the freed slot. */
	assert_int_equal(tt_chan_len(a.c), 2);
	TU_ASSERT_OK(tt_recv(a.c, &v, NULL));
	TU_ASSERT_EQ(v, 2);
	TU_ASSERT_OK(tt_recv(a.c, &v, NULL));
	TU_ASSERT_EQ(v, 3);
	TU_WAIT_DONE(a.done, 1, 5 * TT_SECOND);
	assert_int_equal(tt_chan_len(a.c), 0);
	TU_ASSERT_OK(tt_chan_release(a.c));
	TU_ASSERT_OK(tt_chan_release(a.done));
}

/* ---- values are copied ---------------------------------------------------------- */

typedef struct big {
	unsigned char b[1000];
} big;

typedef struct copy_arg {
	tt_chan *c;
	big v;
	tt_chan *done;
} copy_arg;

static void recv_big(void *p)
{
	copy_arg *a = p;
	TU_ASSERT_OK(tt_recv(a->c, &a->v, NULL));
	tu_done(a->done);
}

static void send_big_then_scribble(void *p)
{
	copy_arg *a = p;
	big mine;
	fill(mine.b, sizeof mine.b, 9);
	TU_ASSERT_OK(tt_send(a->c, &mine));
	memset(&mine, 0x11, sizeof mine);
	tu_done(a->done);
}

static void test_chan_values_copied(void **state)
{
	(void)state;
	/* Buffered: the value is copied in at the send. */
	tt_chan *c = tu_chan(sizeof(int), 1);
	int x = 1;
	TU_ASSERT_OK(tt_send(c, &x));
	x = 2;
	int y = 0;
	TU_ASSERT_OK(tt_recv(c, &y, NULL));
	assert_int_equal(y, 1);
	TU_ASSERT_OK(tt_chan_release(c));

	/* Unbuffered, receiver parked first: the value is copied out of the
	 * sender's memory during the send. */
	copy_arg a = {.c = tu_chan(sizeof(big), 0), .done = tu_chan(0, 1)};
	memset(&a.v, 0, sizeof a.v);
	tu_go(recv_big, &a);
	TU_WAIT_QUEUED(a.c, false, 1);
	big src, want;
	fill(src.b, sizeof src.b, 5);
	want = src;
	TU_ASSERT_OK(tt_send(a.c, &src));
	memset(&src, 0x33, sizeof src);
	TU_WAIT_DONE(a.done, 1, 5 * TT_SECOND);
	TU_ASSERT_MEM_EQ(a.v.b, want.b, sizeof want.b);

	/* Unbuffered, sender parked first. */
	tu_go(send_big_then_scribble, &a);
	TU_WAIT_QUEUED(a.c, true, 1);
	big got;
	TU_ASSERT_OK(tt_recv(a.c, &got, NULL));
	TU_WAIT_DONE(a.done, 1, 5 * TT_SECOND);
	fill(want.b, sizeof want.b, 9);
	TU_ASSERT_MEM_EQ(got.b, want.b, sizeof want.b);
	TU_ASSERT_OK(tt_chan_release(a.c));
	TU_ASSERT_OK(tt_chan_release(a.done));

	/* Buffered, full, with a parked sender: its value is copied when it
	 * moves into the buffer. */
	copy_arg b = {.c = tu_chan(sizeof(big), 1), .done = tu_chan(0, 1)};
	fill(src.b, sizeof src.b, 1);
	TU_ASSERT_OK(tt_send(b.c, &src));
	tu_go(send_big_then_scribble, &b);
	TU_WAIT_QUEUED(b.c, true, 1); /* buffer full */
	TU_ASSERT_OK(tt_recv(b.c, &got, NULL));
	fill(want.b, sizeof want.b, 1);
	TU_ASSERT_MEM_EQ(got.b, want.b, sizeof want.b);
	TU_WAIT_DONE(b.done, 1, 5 * TT_SECOND); /* it scribbled its copy */
	TU_ASSERT_OK(tt_recv(b.c, &got, NULL));
	fill(want.b, sizeof want.b, 9);
	TU_ASSERT_MEM_EQ(got.b, want.b, sizeof want.b);
	TU_ASSERT_OK(tt_chan_release(b.c));
	TU_ASSERT_OK(tt_chan_release(b.done));
}

/* ---- a send's value is the one at the start of the send -------------------- */

typedef struct early_arg {
	tt_chan *c, *other;
	int64_t *src;   /* the variable sent; the test changes it */
	bool select;    /* send from a select case, not tt_send */
	tt_chan *done;
} early_arg;

static void send_early(void *p)
{
	early_arg *a = p;
	if (a->select) {
		int64_t unused;
		tt_case cases[2] = {TT_CASE_RECV_INTO(a->other, &unused, NULL),
				    TT_CASE_SEND_FROM(a->c, a->src)};
		TU_ASSERT_EQ(tt_select(cases, 2, TT_FOREVER), 1);
	} else {
		TU_ASSERT_OK(tt_send(a->c, a->src));
	}
	tu_done(a->done);
}

/* As in Go, a parked sender delivers the value its variable held when the
 * send started, however it changes before a receiver comes (for elements
 * up to TT_CHAN_SEND_COPY bytes; see include/tether/chan.h). Unbuffered
 * and buffered-full, from tt_send and from a select, on a goroutine of its
 * own stack and on a shared-stack one. */
static void test_chan_send_value_fixed_at_start(void **state)
{
	(void)state;
	static const tt_go_attr shared = {.shared_stack = true};
	for (int mode = 0; mode < 8; mode++) {
		bool sel = mode & 1, on_shared = mode & 2, buffered = mode & 4;
		int64_t x = 1;
		early_arg a = {.c = tu_chan(sizeof x, buffered),
			       .other = tu_chan(sizeof x, 0), .src = &x,
			       .select = sel, .done = tu_chan(0, 1)};
		int64_t got = 0;
		if (buffered) {
			int64_t first = 7;
			TU_ASSERT_OK(tt_send(a.c, &first));
		}
		tu_go_with(on_shared ? &shared : NULL, send_early, &a);
		TU_WAIT_QUEUED(a.c, true, 1); /* it parks */
		x = 2;
		if (buffered) {
			TU_ASSERT_OK(tt_recv(a.c, &got, NULL));
			TU_ASSERT_EQ(got, 7);
			x = 3; /* its value is in the buffer now */
		}
		TU_ASSERT_OK(tt_recv(a.c, &got, NULL));
		print_message("mode %d: got %lld\n", mode, (long long)got);
		TU_ASSERT_EQ(got, 1);
		TU_WAIT_DONE(a.done, 1, 5 * TT_SECOND);
		TU_ASSERT_OK(tt_chan_release(a.c));
		TU_ASSERT_OK(tt_chan_release(a.other));
		TU_ASSERT_OK(tt_chan_release(a.done));
	}
}

/* ---- len and cap ------------------------------------------------------------------ */

static void test_chan_len_cap(void **state)
{
	(void)state;
	tt_chan *c = tu_chan(sizeof(long), 5);
	assert_int_equal(tt_chan_len(c), 0);
	assert_int_equal(tt_chan_cap(c), 5);
	for (long i = 0; i < 3; i++)
		TU_ASSERT_OK(tt_send(c, &i));
	assert_int_equal(tt_chan_len(c), 3);
	long v;
	TU_ASSERT_OK(tt_recv(c, &v, NULL));
	assert_int_equal(tt_chan_len(c), 2);
	assert_int_equal(tt_chan_cap(c), 5);
	/* len and cap survive close; buffered values stay receivable. */
	TU_ASSERT_OK(tt_chan_close(c));
	assert_int_equal(tt_chan_len(c), 2);
	assert_int_equal(tt_chan_cap(c), 5);
	TU_ASSERT_OK(tt_chan_release(c));

	/* The nil channel. */
	assert_int_equal(tt_chan_len(NULL), 0);
	assert_int_equal(tt_chan_cap(NULL), 0);

	/* Zero-size elements still count. */
	tt_chan *z = tu_chan(0, 4);
	TU_ASSERT_OK(tt_chan_send(z, NULL, 0));
	TU_ASSERT_OK(tt_chan_send(z, NULL, 0));
	assert_int_equal(tt_chan_len(z), 2);
	TU_ASSERT_OK(tt_chan_release(z));
}

/* ---- close --------------------------------------------------------------------------- */

static void test_chan_close_drains_then_zero(void **state)
{
	(void)state;
	typedef struct {
		int a, b, c;
	} trio;
	tt_chan *c = tu_chan(sizeof(trio), 4);
	for (int i = 1; i <= 3; i++) {
		trio t = {i, i * 10, i * 100};
		TU_ASSERT_OK(tt_send(c, &t));
	}
	TU_ASSERT_OK(tt_chan_close(c));
	/* Buffered values first, ok = true, in order. */
	for (int i = 1; i <= 3; i++) {
		trio t = {0, 0, 0};
		bool ok = false;
		TU_ASSERT_OK(tt_recv(c, &t, &ok));
		assert_true(ok);
		assert_int_equal(t.a, i);
		assert_int_equal(t.b, i * 10);
		assert_int_equal(t.c, i * 100);
	}
	/* Then the zero value with ok = false, as often as asked, never
	 * blocking — even with TT_TRY, and with ok NULL. */
	for (int i = 0; i < 1000; i++) {
		trio t;
		memset(&t, 0x5a, sizeof t);
		bool ok = true;
		int r = i % 2 ? tt_recv(c, &t, &ok)
			      : tt_chan_recv_until(c, &t, sizeof t, &ok, TT_TRY);
		TU_ASSERT_OK(r);
		assert_false(ok);
		assert_int_equal(t.a, 0);
		assert_int_equal(t.b, 0);
		assert_int_equal(t.c, 0);
	}
	trio t;
	memset(&t, 0x5a, sizeof t);
	TU_ASSERT_OK(tt_recv(c, &t, NULL));
	assert_int_equal(t.a, 0);
	/* Discarding receive on a closed channel. */
	bool ok = true;
	TU_ASSERT_OK(tt_chan_recv(c, NULL, 0, &ok));
	assert_false(ok);
	assert_int_equal(tt_chan_len(c), 0);
	TU_ASSERT_OK(tt_chan_release(c));
}

typedef struct closed_arg {
	tt_chan *c;
	int results[8];
	int n;
	tt_chan *done;
} closed_arg;

static void recv_until_closed(void *p)
{
	closed_arg *a = p;
	long v = 0x7777;
	bool ok = true;
	TU_ASSERT_OK(tt_recv(a->c, &v, &ok));
	/* 1: woken by close with the zero value. The close wakes all five,
	 * which nothing orders among themselves: the slot is taken with an
	 * atomic increment (the test reads the results after tu_done). */
	int n = __atomic_fetch_add(&a->n, 1, __ATOMIC_RELAXED);
	a->results[n] = (!ok && v == 0) ? 1 : 2;
	tu_done(a->done);
}

static void test_chan_close_wakes_receivers(void **state)
{
	(void)state;
	ptrdiff_t caps[] = {0, 3};
	for (int k = 0; k < 2; k++) {
		closed_arg a = {.c = tu_chan(sizeof(long), caps[k]),
				.done = tu_chan(0, 8)};
		for (int i = 0; i < 5; i++)
			tu_go(recv_until_closed, &a);
		assert_int_equal(a.n, 0); /* all parked */
		TU_ASSERT_OK(tt_chan_close(a.c));
		TU_WAIT_DONE(a.done, 5, 5 * TT_SECOND);
		assert_int_equal(a.n, 5);
		for (int i = 0; i < 5; i++)
			assert_int_equal(a.results[i], 1);
		TU_ASSERT_OK(tt_chan_release(a.c));
		TU_ASSERT_OK(tt_chan_release(a.done));
	}
}

static void test_chan_zero_size_elements(void **state)
{
	(void)state;
	/* Go's chan struct{}: NULL element pointers. */
	tt_chan *c = tu_chan(0, 0);
	TU_ASSERT_ERR(tt_chan_send_until(c, NULL, 0, TT_TRY), -EAGAIN);
	TU_ASSERT_ERR(tt_chan_recv_until(c, NULL, 0, NULL, TT_TRY), -EAGAIN);
	TU_ASSERT_OK(tt_chan_close(c));
	bool ok = true;
	TU_ASSERT_OK(tt_chan_recv(c, NULL, 0, &ok));
	assert_false(ok);
	TU_ASSERT_OK(tt_chan_release(c));
}

/* elem NULL with elem_size 0 discards the value (Go's `<-c`). */
static void test_chan_recv_discard(void **state)
{
	(void)state;
	tt_chan *c = tu_chan(sizeof(int), 2);
	int v = 1;
	TU_ASSERT_OK(tt_send(c, &v));
	v = 2;
	TU_ASSERT_OK(tt_send(c, &v));
	bool ok = false;
	TU_ASSERT_OK(tt_chan_recv(c, NULL, 0, &ok));
	assert_true(ok);
	assert_int_equal(tt_chan_len(c), 1);
	v = 0;
	TU_ASSERT_OK(tt_recv(c, &v, NULL));
	assert_int_equal(v, 2);
	TU_ASSERT_OK(tt_chan_release(c));

	/* From a parked sender on an unbuffered channel. */
	block_arg a = {.c = tu_chan(sizeof(int), 0), .done = tu_chan(0, 1)};
	tu_go(send_three, &a);
	TU_ASSERT_OK(tt_chan_recv(a.c, NULL, 0, NULL));
	TU_ASSERT_OK(tt_chan_recv(a.c, NULL, 0, NULL));
	v = 0;
	TU_ASSERT_OK(tt_recv(a.c, &v, NULL));
	assert_int_equal(v, 3);
	TU_WAIT_DONE(a.done, 1, 5 * TT_SECOND);
	TU_ASSERT_OK(tt_chan_release(a.c));
	TU_ASSERT_OK(tt_chan_release(a.done));
}

/* ---- the nil channel ------------------------------------------------------------------ */

static void test_chan_nil(void **state)
{
	(void)state;
	int v = 3;
	bool ok = true;
	TU_ASSERT_ERR(tt_chan_recv_until(NULL, &v, sizeof v, &ok, TT_TRY),
		      -EAGAIN);
	TU_ASSERT_ERR(tt_chan_send_until(NULL, &v, sizeof v, TT_TRY), -EAGAIN);
	TU_ASSERT_ERR(tt_chan_recv_until(NULL, NULL, 0, NULL, TT_TRY), -EAGAIN);

	int64_t t0 = tt_now();
	TU_ASSERT_ERR(tt_chan_recv_until(NULL, &v, sizeof v, &ok,
					 tt_deadline_in(30 * TT_MILLISECOND)),
		      -ETIMEDOUT);
	int64_t dt = tt_now() - t0;
	TU_ASSERT_RANGE(dt, 30 * TT_MILLISECOND,
			30 * TT_MILLISECOND + TU_SLACK_NS);

	t0 = tt_now();
	TU_ASSERT_ERR(tt_chan_send_until(NULL, &v, sizeof v,
					 tt_deadline_in(30 * TT_MILLISECOND)),
		      -ETIMEDOUT);
	dt = tt_now() - t0;
	TU_ASSERT_RANGE(dt, 30 * TT_MILLISECOND,
			30 * TT_MILLISECOND + TU_SLACK_NS);
	assert_int_equal(v, 3); /* nothing was received into it */
}

/* ---- deadlines ---------------------------------------------------------------------------- */

typedef struct later_arg {
	tt_chan *c;
	int64_t delay;
	int value;
	tt_chan *done;
} later_arg;

static void send_later(void *p)
{
	later_arg *a = p;
	TU_ASSERT_OK(tt_sleep(a->delay));
	TU_ASSERT_OK(tt_send(a->c, &a->value));
	tu_done(a->done);
}

static void recv_later(void *p)
{
	later_arg *a = p;
	TU_ASSERT_OK(tt_sleep(a->delay));
	TU_ASSERT_OK(tt_recv(a->c, &a->value, NULL));
	tu_done(a->done);
}

static void test_chan_deadline_try(void **state)
{
	(void)state;
	tt_chan *u = tu_chan(sizeof(int), 0);
	tt_chan *b = tu_chan(sizeof(int), 1);
	int v = 9;
	/* Would block: -EAGAIN, nothing done. */
	TU_ASSERT_ERR(tt_chan_send_until(u, &v, sizeof v, TT_TRY), -EAGAIN);
	TU_ASSERT_ERR(tt_chan_recv_until(u, &v, sizeof v, NULL, TT_TRY),
		      -EAGAIN);
	TU_ASSERT_ERR(tt_chan_recv_until(b, &v, sizeof v, NULL, TT_TRY),
		      -EAGAIN);
	TU_ASSERT_OK(tt_chan_send_until(b, &v, sizeof v, TT_TRY));
	TU_ASSERT_ERR(tt_chan_send_until(b, &v, sizeof v, TT_TRY), -EAGAIN);
	assert_int_equal(tt_chan_len(b), 1);
	int got = 0;
	bool ok = false;
	TU_ASSERT_OK(tt_chan_recv_until(b, &got, sizeof got, &ok, TT_TRY));
	assert_true(ok);
	assert_int_equal(got, 9);
	TU_ASSERT_OK(tt_chan_release(u));
	TU_ASSERT_OK(tt_chan_release(b));
}

static void test_chan_deadline_timeout(void **state)
{
	(void)state;
	tt_chan *u = tu_chan(sizeof(int), 0);
	tt_chan *b = tu_chan(sizeof(int), 1);
	int v = 4;
	const int64_t d = 30 * TT_MILLISECOND;

	int64_t t0 = tt_now();
	TU_ASSERT_ERR(tt_chan_recv_until(u, &v, sizeof v, NULL,
					 tt_deadline_in(d)),
		      -ETIMEDOUT);
	TU_ASSERT_RANGE(tt_now() - t0, d, d + TU_SLACK_NS);
	/* The timed-out receiver left no trace: nobody takes a send. */
	TU_ASSERT_ERR(tt_chan_send_until(u, &v, sizeof v, TT_TRY), -EAGAIN);

	t0 = tt_now();
	TU_ASSERT_ERR(tt_chan_send_until(u, &v, sizeof v, tt_deadline_in(d)),
		      -ETIMEDOUT);
	TU_ASSERT_RANGE(tt_now() - t0, d, d + TU_SLACK_NS);
	/* The timed-out sender's value is not delivered later. */
	TU_ASSERT_ERR(tt_chan_recv_until(u, &v, sizeof v, NULL, TT_TRY),
		      -EAGAIN);

	/* Full buffer. */
	TU_ASSERT_OK(tt_send(b, &v));
	t0 = tt_now();
	TU_ASSERT_ERR(tt_chan_send_until(b, &v, sizeof v, tt_deadline_in(d)),
		      -ETIMEDOUT);
	TU_ASSERT_RANGE(tt_now() - t0, d, d + TU_SLACK_NS);
	assert_int_equal(tt_chan_len(b), 1);

	/* A deadline already in the past (but not TT_TRY) times out. */
	TU_ASSERT_ERR(tt_chan_send_until(b, &v, sizeof v, 1), -ETIMEDOUT);
	TU_ASSERT_ERR(tt_chan_recv_until(u, &v, sizeof v, NULL, 1), -ETIMEDOUT);
	/* ... but a ready operation still succeeds. */
	int got = 0;
	TU_ASSERT_OK(tt_chan_recv_until(b, &got, sizeof got, NULL, 1));
	assert_int_equal(got, 4);

	/* A timeout does not leave a timer behind that cuts a later wait
	 * short. */
	t0 = tt_now();
	TU_ASSERT_ERR(tt_chan_recv_until(u, &v, sizeof v, NULL,
					 tt_deadline_in(3 * d)),
		      -ETIMEDOUT);
	TU_ASSERT_RANGE(tt_now() - t0, 3 * d, 3 * d + TU_SLACK_NS);
	TU_ASSERT_OK(tt_chan_release(u));
	TU_ASSERT_OK(tt_chan_release(b));
}

static void test_chan_deadline_success(void **state)
{
	(void)state;
	later_arg a = {.c = tu_chan(sizeof(int), 0),
		       .delay = 10 * TT_MILLISECOND, .value = 1234,
		       .done = tu_chan(0, 1)};
	tu_go(send_later, &a);
	int v = 0;
	bool ok = false;
	int64_t t0 = tt_now();
	TU_ASSERT_OK(tt_chan_recv_until(a.c, &v, sizeof v, &ok,
					tt_deadline_in(5 * TT_SECOND)));
	TU_ASSERT_RANGE(tt_now() - t0, 10 * TT_MILLISECOND,
			10 * TT_MILLISECOND + TU_SLACK_NS);
	assert_true(ok);
	assert_int_equal(v, 1234);
	TU_WAIT_DONE(a.done, 1, 5 * TT_SECOND);

	/* The satisfied wait's deadline timer is gone: a later sleep is not
	 * cut short and nothing fires into it. */
	t0 = tt_now();
	TU_ASSERT_OK(tt_sleep(40 * TT_MILLISECOND));
	TU_ASSERT_GE(tt_now() - t0, 40 * TT_MILLISECOND);

	a.value = 0;
	tu_go(recv_later, &a);
	int w = 4321;
	t0 = tt_now();
	TU_ASSERT_OK(tt_chan_send_until(a.c, &w, sizeof w,
					tt_deadline_in(5 * TT_SECOND)));
	TU_ASSERT_RANGE(tt_now() - t0, 10 * TT_MILLISECOND,
			10 * TT_MILLISECOND + TU_SLACK_NS);
	TU_WAIT_DONE(a.done, 1, 5 * TT_SECOND);
	assert_int_equal(a.value, 4321);
	TU_ASSERT_OK(tt_chan_release(a.c));
	TU_ASSERT_OK(tt_chan_release(a.done));
}

/* ---- bad input ---------------------------------------------------------------------------- */

static void test_chan_bad_make(void **state)
{
	(void)state;
	tt_chan *c = NULL;
	TU_ASSERT_ERR(tt_chan_make(&c, sizeof(int), -1), -EINVAL);
	assert_true(strlen(tt_last_error()) > 0);
	assert_true(tu_contains_nocase(tt_last_error(), "cap") ||
		    tu_contains_nocase(tt_last_error(), "negative"));
	assert_null(c);
	TU_ASSERT_ERR(tt_chan_make(&c, 1, PTRDIFF_MIN), -EINVAL);
	/* elem_size * cap overflows. */
	TU_ASSERT_ERR(tt_chan_make(&c, SIZE_MAX / 2, 4), -EINVAL);
	TU_ASSERT_ERR(tt_chan_make(&c, 1 << 20, PTRDIFF_MAX / 1024), -EINVAL);
	assert_true(strlen(tt_last_error()) > 0);
	assert_null(c);
}

static void test_chan_wrong_elem_size(void **state)
{
	(void)state;
	tt_chan *c = tu_chan(sizeof(int), 2);
	long big = 5;
	TU_ASSERT_ERR(tt_chan_send(c, &big, sizeof big), -EINVAL);
	TU_ASSERT_CONTAINS(tt_last_error(), "size");
	TU_ASSERT_ERR(tt_chan_send_until(c, &big, sizeof big, TT_TRY), -EINVAL);
	TU_ASSERT_ERR(tt_chan_send(c, &big, 0), -EINVAL);
	assert_int_equal(tt_chan_len(c), 0); /* nothing was sent */

	int v = 6;
	TU_ASSERT_OK(tt_send(c, &v));
	big = 0x1111;
	TU_ASSERT_ERR(tt_chan_recv(c, &big, sizeof big, NULL), -EINVAL);
	TU_ASSERT_CONTAINS(tt_last_error(), "size");
	TU_ASSERT_ERR(tt_chan_recv_until(c, &big, 2, NULL, TT_TRY), -EINVAL);
	assert_int_equal(big, 0x1111);      /* nothing was received */
	assert_int_equal(tt_chan_len(c), 1);
	TU_ASSERT_OK(tt_recv(c, &v, NULL));
	assert_int_equal(v, 6);
	TU_ASSERT_OK(tt_chan_release(c));
}

/* tt_last_error belongs to the goroutine that failed. */
typedef struct err_arg {
	tt_chan *c;
	char seen_at_start[200];
	char mine[200];
	tt_chan *done;
} err_arg;

static void fail_differently(void *p)
{
	err_arg *a = p;
	snprintf(a->seen_at_start, sizeof a->seen_at_start, "%s",
		 tt_last_error());
	tt_chan *c = NULL;
	TU_ASSERT_ERR(tt_chan_make(&c, 4, -7), -EINVAL);
	snprintf(a->mine, sizeof a->mine, "%s", tt_last_error());
	tu_done(a->done);
}

static void test_last_error_per_goroutine(void **state)
{
	(void)state;
	err_arg a;
	memset(&a, 0, sizeof a);
	a.c = tu_chan(sizeof(int), 0);
	a.done = tu_chan(0, 1);
	long big = 0;
	TU_ASSERT_ERR(tt_chan_send(a.c, &big, sizeof big), -EINVAL);
	char main_msg[200];
	snprintf(main_msg, sizeof main_msg, "%s", tt_last_error());
	assert_true(strlen(main_msg) > 0);

	int64_t n0 = tt_num_goroutine();
	tu_go(fail_differently, &a);
	/* Its done token makes what it wrote in a visible here (with more
	 * than one P it may run on another thread). */
	TU_WAIT_DONE(a.done, 1, 5 * TT_SECOND);
	TU_WAIT_FOR(tt_num_goroutine() == n0, 5 * TT_SECOND);
	assert_string_equal(a.seen_at_start, ""); /* a fresh goroutine */
	assert_true(strlen(a.mine) > 0);
	assert_string_not_equal(a.mine, main_msg);
	/* Ours is unchanged by the other goroutine's failure. */
	assert_string_equal(tt_last_error(), main_msg);

	/* Successful calls leave it alone. */
	int v = 1;
	tt_chan *b = tu_chan(sizeof(int), 1);
	TU_ASSERT_OK(tt_send(b, &v));
	assert_string_equal(tt_last_error(), main_msg);
	TU_ASSERT_OK(tt_chan_release(b));
	TU_ASSERT_OK(tt_chan_release(a.done));
	TU_ASSERT_OK(tt_chan_release(a.c));
}

static void test_strerror(void **state)
{
	(void)state;
	const int errs[] = {EINVAL, EAGAIN, ETIMEDOUT, EBADF, ENOMEM,
			    ECANCELED};
	for (size_t i = 0; i < sizeof errs / sizeof errs[0]; i++) {
		const char *neg = tt_strerror(-errs[i]);
		const char *pos = tt_strerror(errs[i]);
		assert_non_null(neg);
		assert_true(strlen(neg) > 0);
		assert_string_equal(neg, pos);
	}
	assert_string_not_equal(tt_strerror(-EINVAL), tt_strerror(-EAGAIN));
	assert_non_null(tt_strerror(0));
	assert_non_null(tt_strerror(-99999));
}

/* ---- references ------------------------------------------------------------------------- */

/* Runs in a child process, so that a library that panics (or crashes)
 * instead of returning -EBADF fails this test only. */
static void child_use_released(void)
{
	tt_chan *c = tu_chan(sizeof(int), 1);
	int v = 8;
	TU_ASSERT_OK(tt_send(c, &v));
	TU_ASSERT_OK(tt_chan_release(c)); /* freed; nothing allocated since */
	TU_ASSERT_ERR(tt_chan_send_until(c, &v, sizeof v, TT_TRY), -EBADF);
	TU_ASSERT(strlen(tt_last_error()) > 0);
	TU_ASSERT_ERR(tt_chan_recv_until(c, &v, sizeof v, NULL, TT_TRY),
		      -EBADF);
	TU_ASSERT_EQ(tt_chan_len(c), -EBADF);
	TU_ASSERT_EQ(tt_chan_cap(c), -EBADF);
	TU_ASSERT_ERR(tt_chan_release(c), -EBADF);
}

static void test_chan_retain_release(void **state)
{
	(void)state;
	tt_chan *c = tu_chan(sizeof(int), 1);
	TU_ASSERT_OK(tt_chan_retain(c));
	TU_ASSERT_OK(tt_chan_release(c)); /* one reference left */
	int v = 8;
	TU_ASSERT_OK(tt_chan_send_until(c, &v, sizeof v, TT_TRY));
	v = 0;
	TU_ASSERT_OK(tt_chan_recv_until(c, &v, sizeof v, NULL, TT_TRY));
	assert_int_equal(v, 8);
	assert_int_equal(tt_chan_cap(c), 1);
	TU_ASSERT_OK(tt_chan_release(c)); /* freed */
	/* A released handle is bad input, under ASan too (the check reads
	 * only the runtime's own slot memory): in a child process, so a
	 * crash fails this test only. test_handles covers reuse. */
	tu_child ch;
	assert_int_equal(tu_spawn_self("use_released", 60 * TT_SECOND, &ch), 0);
	TU_ASSERT_CHILD_EXIT(&ch, 0);
	tu_child_free(&ch);
}

/* A channel whose maker released its reference keeps working for the
 * goroutines that hold their own. */
typedef struct pc_arg {
	tt_chan *c;
	tt_chan *result;
	int n;
} pc_arg;

static void own_producer(void *p)
{
	pc_arg *a = p;
	tt_chan *c = a->c; /* our reference, retained for us */
	for (int i = 1; i <= a->n; i++) {
		TU_ASSERT_OK(tt_send(c, &i));
		if (i % 7 == 0)
			tt_yield();
	}
	TU_ASSERT_OK(tt_chan_close(c));
	TU_ASSERT_OK(tt_chan_release(c));
}

static void own_consumer(void *p)
{
	pc_arg *a = p;
	tt_chan *c = a->c;
	long sum = 0;
	int count = 0;
	for (;;) {
		int v = 0;
		bool ok = false;
		TU_ASSERT_OK(tt_recv(c, &v, &ok));
		if (!ok)
			break;
		sum += v;
		count++;
	}
	TU_ASSERT_OK(tt_chan_release(c));
	long result[2] = {sum, count};
	TU_ASSERT_OK(tt_chan_send(a->result, result, sizeof result));
}

static void test_chan_released_by_maker_keeps_working(void **state)
{
	(void)state;
	ptrdiff_t caps[] = {0, 4};
	for (int k = 0; k < 2; k++) {
		pc_arg a = {.c = tu_chan(sizeof(int), caps[k]),
			    .result = tu_chan(2 * sizeof(long), 1),
			    .n = 1000};
		TU_ASSERT_OK(tt_chan_retain(a.c)); /* the consumer's */
		TU_ASSERT_OK(tt_chan_retain(a.c)); /* the producer's */
		tu_go(own_consumer, &a);
		/* Drop ours while the consumer is parked on it. */
		TU_ASSERT_OK(tt_chan_release(a.c));
		tu_go(own_producer, &a);
		long result[2] = {0, 0};
		TU_ASSERT_OK(tt_chan_recv_until(a.result, result, sizeof result,
						NULL,
						tt_deadline_in(10 * TT_SECOND)));
		assert_int_equal(result[0], 1000L * 1001 / 2);
		assert_int_equal(result[1], 1000);
		TU_ASSERT_OK(tt_chan_release(a.result));
	}
}

static const tu_child_case child_cases[] = {
	{"use_released", child_use_released},
	{"", NULL},
};

/* ---- where a parked goroutine's waiter lives --------------------------- */

typedef struct rec_arg {
	tt_chan *c;
	int kind; /* 0 receive, 1 send, 2 one-case select */
	tt__g *g;
	int value;
	tt_chan *done;
} rec_arg;

/* The channel is the waiter's own, made on its thread: a goroutine on
 * another P than a channel's maker may ask the maker's thread to wait
 * for it, and then the waiter is not its own. g is atomic: the test
 * reads it (and c, stored before it) while we run or park, on this
 * thread or on another. */
static void rec_waiter(void *p)
{
	rec_arg *a = p;
	a->c = tu_chan(sizeof(int), 0);
	__atomic_store_n(&a->g, tt__current(), __ATOMIC_RELEASE);
	if (a->kind == 0) {
		TU_ASSERT_OK(tt_recv(a->c, &a->value, NULL));
	} else if (a->kind == 1) {
		TU_ASSERT_OK(tt_send(a->c, &a->value));
	} else {
		tt_case k[1] = {TT_CASE_RECV_INTO(a->c, &a->value, NULL)};
		TU_ASSERT_EQ(tt_select(k, 1, TT_FOREVER), 0);
	}
	tu_done(a->done);
}

/* A goroutine parked on one channel (a receive, a send, a one-case
 * select) keeps its waiter in its record's slot of the waiter pool
 * (g->wait1, internal.h), not on its stack: waking it touches no line of
 * the stack. The hand-off still delivers values both ways. */
static void test_chan_waiter_in_pool(void **state)
{
	(void)state;
	tt_chan *done = tu_chan(0, 3);
	for (int kind = 0; kind < 3; kind++) {
		rec_arg a = {.kind = kind,
			     .value = kind == 1 ? 77 : -1, .done = done};
		tu_go(rec_waiter, &a);
		/* With one P the child ran first and is parked by now; on
		 * another P it may not have started yet. It sets wait_list
		 * before it parks. */
		TU_WAIT_FOR(__atomic_load_n(&a.g, __ATOMIC_ACQUIRE) != NULL,
			    5 * TT_SECOND);
		const tt__g *g = __atomic_load_n(&a.g, __ATOMIC_ACQUIRE);
		TU_WAIT_FOR(__atomic_load_n(&g->state, __ATOMIC_ACQUIRE) ==
				    TT_G_WAITING,
			    5 * TT_SECOND);
		const char *w = g->wait_list;
		TU_ASSERT_EQ(w, (const char *)g->wait1);
		/* (A shared-stack record keeps it inline: TETHER_SHARED_STACK.) */
		TU_ASSERT(g->shared || w != (const char *)g->wbuf_inline);
		TU_ASSERT(w < g->stack_lo || w >= g->stack_hi);
		int v = 5;
		if (kind == 1) {
			TU_ASSERT_OK(tt_recv(a.c, &v, NULL));
			TU_ASSERT_EQ(v, 77);
		} else {
			TU_ASSERT_OK(tt_send(a.c, &v));
		}
		TU_WAIT_DONE(done, 1, 5 * TT_SECOND);
		if (kind != 1)
			TU_ASSERT_EQ(a.value, 5);
		TU_ASSERT_OK(tt_chan_release(a.c));
	}
	TU_ASSERT_OK(tt_chan_release(done));
}

/* The waiters of goroutines made one after another are next to each
 * other, so a channel's queue of them is dense (what makes a close that
 * wakes 100,000 receivers fast); and records whose pages go back to the
 * kernel give their slots back, so bursts of goroutines, each followed
 * by an idle scheduler that trims its stacks, do not grow the pool. On a
 * thread of its own: a fresh scheduler, a fresh pool. */
enum { DENSE_N = 16, BURST_N = 1500, BURSTS = 4 };

static tt_chan *dense_c;

static void dense_waiter(void *p)
{
	int v;
	__atomic_store_n((tt__g **)p, tt__current(), __ATOMIC_RELEASE);
	tt_case k[1] = {TT_CASE_RECV_INTO(dense_c, &v, NULL)};
	TU_ASSERT_EQ(tt_select(k, 1, TT_FOREVER), 0);
}

static void burst_waiter(void *p)
{
	(void)p;
	int v;
	TU_ASSERT_OK(tt_recv(dense_c, &v, NULL));
}

static size_t pool_chunks(const tt__sched *s)
{
	size_t n = 0;
	for (void *c = s->w1_chunks; c; c = *(void **)c)
		n++;
	return n;
}

static void *dense_thread(void *p)
{
	size_t *chunks = p;
	TU_ASSERT_OK(tt_chan_make(&dense_c, sizeof(int), 0));
	tt__g *gs[DENSE_N] = {0};
	for (int i = 0; i < DENSE_N; i++)
		TU_ASSERT(tt_go(dense_waiter, &gs[i]) > 0);
	for (int i = 1; i < DENSE_N; i++) {
		const tt__g *a = __atomic_load_n(&gs[i - 1], __ATOMIC_ACQUIRE);
		const tt__g *b = __atomic_load_n(&gs[i], __ATOMIC_ACQUIRE);
		TU_ASSERT_EQ((const char *)b->wait1 - (const char *)a->wait1,
			     64);
	}
	TU_ASSERT_OK(tt_chan_close(dense_c));
	while (atomic_load(&tt__sched_get()->ngoroutines) > 1)
		tt_yield();
	TU_ASSERT_OK(tt_chan_release(dense_c));
	for (int b = 0; b < BURSTS; b++) {
		TU_ASSERT_OK(tt_chan_make(&dense_c, sizeof(int), 0));
		for (int i = 0; i < BURST_N; i++)
			TU_ASSERT(tt_go(burst_waiter, NULL) > 0);
		TU_ASSERT_OK(tt_chan_close(dense_c));
		while (atomic_load(&tt__sched_get()->ngoroutines) > 1)
			tt_yield();
		TU_ASSERT_OK(tt_chan_release(dense_c));
		/* Idle: the scheduler trims the stacks beyond its hot few. */
		TU_ASSERT_OK(tt_sleep(20 * TT_MILLISECOND));
		chunks[b] = pool_chunks(tt__sched_get());
	}
	return NULL;
}

static void test_chan_waiters_dense(void **state)
{
	(void)state;
	TU_REQUIRE_THREADS();
	if (tt__shared_default()) {
		print_message("skipped: shared-stack records keep their waiter "
			      "inline (TETHER_SHARED_STACK)\n");
		skip();
	}
	/* One scheduler's pool: its goroutines must all start on it. */
	tu_one_p();
	size_t chunks[BURSTS] = {0};
	pthread_t t;
	TU_ASSERT_EQ(pthread_create(&t, NULL, dense_thread, chunks), 0);
	TU_ASSERT_EQ(pthread_join(t, NULL), 0);
	print_message("pool chunks after each burst: %zu %zu %zu %zu\n",
		      chunks[0], chunks[1], chunks[2], chunks[3]);
	TU_ASSERT(chunks[0] >= BURST_N / 64);
	TU_ASSERT_EQ(chunks[BURSTS - 1], chunks[0]);
}

int main(int argc, char **argv)
{
	tu_child_dispatch(argc, argv, child_cases,
			  sizeof child_cases / sizeof child_cases[0] - 1);
	const struct CMUnitTest tests[] = {
		TU_TEST(test_chan_elem_sizes),
		TU_TEST(test_chan_waiter_in_pool),
		TU_TEST(test_chan_waiters_dense),
		TU_TEST(test_chan_buffered_fifo),
		TU_TEST(test_chan_waiters_fifo),
		TU_TEST(test_chan_unbuffered_blocks),
		TU_TEST(test_chan_buffered_blocks_when_full),
		TU_TEST(test_chan_values_copied),
		TU_TEST(test_chan_send_value_fixed_at_start),
		TU_TEST(test_chan_len_cap),
		TU_TEST(test_chan_close_drains_then_zero),
		TU_TEST(test_chan_close_wakes_receivers),
		TU_TEST(test_chan_zero_size_elements),
		TU_TEST(test_chan_recv_discard),
		TU_TEST(test_chan_nil),
		TU_TEST(test_chan_deadline_try),
		TU_TEST(test_chan_deadline_timeout),
		TU_TEST(test_chan_deadline_success),
		TU_TEST(test_chan_bad_make),
		TU_TEST(test_chan_wrong_elem_size),
		TU_TEST(test_last_error_per_goroutine),
		TU_TEST(test_strerror),
		TU_TEST(test_chan_retain_release),
		TU_TEST(test_chan_released_by_maker_keeps_working),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
