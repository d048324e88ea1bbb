/* tether — the monotonic clock, the timer heap, sleeps and deadlines.
 *
 * Design notes
 * ------------
 * Each scheduler keeps one binary min-heap of armed timers, ordered by
 * `when`. A timer is embedded in whatever it serves (a goroutine's record
 * for sleeps and deadlines, a timer channel), knows its own heap index, and
 * so is added and removed in O(log n) without allocating. Timers fire from
 * the scheduler (the idle loop, and every 64th park while busy); their
 * callbacks may ready goroutines but never block or switch.
 *
 * A periodic timer is re-armed before its callback runs, at when + period,
 * or one period from now if it has fallen behind (ticks are dropped, not
 * queued, as Go's Ticker does).
 */
#include <errno.h>
#include <stdlib.h>
#include <time.h>

#include "internal.h"

int64_t tt_now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * TT_SECOND + ts.tv_nsec + 1;
}

int64_t tt__coarse_now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC_COARSE, &ts);
	return (int64_t)ts.tv_sec * TT_SECOND + ts.tv_nsec + 1;
}

int64_t tt_deadline_in(int64_t ns)
{
	if (ns < 0)
		return TT_FOREVER;
	int64_t now = tt_now();
	if (ns > INT64_MAX - now)
		return INT64_MAX;
	return now + ns;
}

/* ---- the heap ------------------------------------------------------- */

static inline void heap_set(tt__timer_heap *h, uint32_t i, tt__timer *t)
{
	h->v[i] = t;
	t->heap_ix = i;
}

static void sift_up(tt__timer_heap *h, uint32_t i)
{
	tt__timer *t = h->v[i];
	while (i > 0) {
		uint32_t parent = (i - 1) / 2;
		if (h->v[parent]->when <= t->when)
			break;
		heap_set(h, i, h->v[parent]);
		i = parent;
	}
	heap_set(h, i, t);
}

static void sift_down(tt__timer_heap *h, uint32_t i)
{
	tt__timer *t = h->v[i];
	for (;;) {
		uint32_t c = 2 * i + 1;
		if (c >= h->n)
			break;
		if (c + 1 < h->n && h->v[c + 1]->when < h->v[c]->when)
			c++;
		if (t->when <= h->v[c]->when)
			break;
		heap_set(h, i, h->v[c]);
		i = c;
	}
	heap_set(h, i, t);
}

void tt__timer_add(tt__sched *s, tt__timer *t)
{
	tt__timer_heap *h = &s->timers;
	TT_ASSERT(t->heap_ix == TT_TIMER_IDLE);
	if (h->n == h->cap) {
		uint32_t cap = h->cap ? h->cap * 2 : 64;
		tt__timer **v = realloc(h->v, cap * sizeof *v);
		if (!v)
			tt__fatal("out of memory growing the timer heap");
		h->v = v;
		h->cap = cap;
	}
	h->v[h->n] = t;
	t->heap_ix = h->n++;
	sift_up(h, t->heap_ix);
}

bool tt__timer_del(tt__sched *s, tt__timer *t)
{
	tt__timer_heap *h = &s->timers;
	uint32_t i = t->heap_ix;
	if (i == TT_TIMER_IDLE)
		return false;
	TT_ASSERT(i < h->n && h->v[i] == t);
	t->heap_ix = TT_TIMER_IDLE;
	h->n--;
	if (i != h->n) {
		heap_set(h, i, h->v[h->n]);
		if (i > 0 && h->v[(i - 1) / 2]->when > h->v[i]->when)
			sift_up(h, i);
		else
			sift_down(h, i);
	}
	return true;
}

int tt__timers_run(tt__sched *s, int64_t now)
{
	tt__timer_heap *h = &s->timers;
	int fired = 0;
	s->runq.front = 0;
	while (h->n && h->v[0]->when <= now) {
		tt__timer *t = h->v[0];
		tt__timer_del(s, t);
		if (t->period > 0) {
			t->when += t->period;
			if (t->when <= now)
				t->when = now + t->period;
			tt__timer_add(s, t);
		}
		t->fn(t, now);
		fired++;
	}
	/* The goroutines put at the front went each in front of the one
	 * before (tt__ready_next): turn them round, to deadline order. */
	uint32_t k = s->runq.front;
	if (k > runq_len(s))
		k = runq_len(s);
	uint32_t m = s->runq.mask, hd = s->runq.head;
	for (uint32_t i = 0, j = k - 1; k > 1 && i < j; i++, j--) {
		tt__g *t = s->runq.v[(hd + i) & m];
		s->runq.v[(hd + i) & m] = s->runq.v[(hd + j) & m];
		s->runq.v[(hd + j) & m] = t;
	}
	s->runq.front = 0;
	return fired;
}

/* ---- sleeping ------------------------------------------------------------ */

/* The body of tt_sleep_until and tt_sleep, inlined into both so that a
 * sleeping goroutine shows the call the program made. */
static inline __attribute__((always_inline)) int sleep_until(int64_t deadline)
{
	tt__sched *s = tt__sched_get();
	if (deadline == TT_FOREVER) {
		/* Go's time.Sleep never sleeps forever; this is the blocking
		 * form of an infinite deadline: park with no waker. */
		tt__park(s, TT_WAIT_SLEEP, NULL);
		return 0;
	}
	if (deadline <= tt_now()) {
		tt_yield();
		return 0;
	}
	tt__wait_until(s, TT_WAIT_SLEEP, NULL, deadline, NULL);
	return 0;
}

int tt_sleep(int64_t ns)
{
	if (ns <= 0) {
		tt_yield();
		return 0;
	}
	return sleep_until(tt_deadline_in(ns));
}

int tt_sleep_until(int64_t deadline)
{
	return sleep_until(deadline);
}
