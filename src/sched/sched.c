/* tether — the scheduler: goroutines, the run queue, park and ready, the
 * idle path and deadlock detection.
 *
 * Design notes
 * ------------
 * One scheduler per OS thread, made the first time the thread calls in.
 * The thread's own flow of control becomes the scheduler's first
 * goroutine (main_g), running on the thread's stack.
 *
 * There is no scheduler goroutine ("g0"): a goroutine that parks picks the
 * next runnable one and switches to it directly, one switch per hand-off.
 * When nothing is runnable the parking goroutine runs the idle loop itself,
 * on its own stack: it fires due timers, sleeps until the next one, and
 * when it finds something runnable switches to it — or simply returns if
 * what became runnable is itself (a lone sleeper never switches at all).
 * A goroutine that ends does the same from its dying stack; the stack goes
 * back to the pool only after the switch away from it (s->zombie, freed by
 * whoever runs next, in after_switch).
 *
 * Invariants (s = the scheduler; all fields are touched by its thread only):
 *  - s->current is the one goroutine in state RUNNING.
 *  - a goroutine is in s->runq iff its state is RUNNABLE.
 *  - a WAITING goroutine is reachable from whatever will ready it: a
 *    channel's wait queue, the timer heap (its own timer), or the poller.
 *    If it is reachable from none, it is leaked (later layers prove it).
 *  - timer callbacks run inside the idle loop or at a park; they may ready
 *    goroutines but never switch or block.
 *
 * tt_go runs the child at once (the parent waits at the head of the run
 * queue), so a loop of short-lived goroutines reuses one hot stack. The
 * child starts as a call on its own stack (tt__spawn_call): one that ends
 * without ever switching away returns to its parent like a function,
 * with no switch at all, so calls and returns stay paired for the
 * processor's return predictor. g->direct records that it has not
 * switched away; the first switch from it clears the flag, and from then
 * on it ends like any other goroutine (g_exit).
 */
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "internal.h"

#if TT_ASAN
#include <sanitizer/common_interface_defs.h>
#define FAKE(g) (&(g)->asan_fake_stack)
#define FAKE_OF(g) ((g)->asan_fake_stack)
#define SHARED_FAKE(s) (&(s)->sh.helper_fake)
#else
#define FAKE(g) NULL
#define FAKE_OF(g) NULL
static void *no_fake;
#define SHARED_FAKE(s) (&no_fake)
#endif

__thread tt__sched *tt__tls_sched __attribute__((tls_model("initial-exec")));

/* Goroutine ids come from one process-wide counter, taken in blocks so
 * that starting a goroutine does no atomic operation (Go's goidcache). */
#define GOID_BATCH 256
static _Atomic int64_t next_goid_block = 1;

/* Every scheduler, for counts and dumps that span threads. */
static pthread_mutex_t registry_lock = PTHREAD_MUTEX_INITIALIZER;
static tt__sched *registry; /* linked by s->next_sched */
/* Schedulers of threads that ended, for new threads (thread_gone). */
static tt__sched *graveyard;
static pthread_key_t thread_key;
static pthread_once_t key_once = PTHREAD_ONCE_INIT;
/* Goroutines of schedulers whose threads have ended (tt_num_goroutine
 * counts them: they are leaked, not gone). */
static _Atomic int64_t orphaned_goroutines;

static int64_t new_goid(tt__sched *s)
{
	if (TT_UNLIKELY(s->goid_next == s->goid_end)) {
		s->goid_next = atomic_fetch_add_explicit(
			&next_goid_block, GOID_BATCH, memory_order_relaxed);
		s->goid_end = s->goid_next + GOID_BATCH;
	}
	return s->goid_next++;
}

int64_t tt__new_goid(tt__sched *s)
{
	return new_goid(s);
}

const char *const tt__wait_reason_str[TT_WAIT__COUNT] = {
#define TT__X(name, str) [TT_WAIT_##name] = str,
	TT__WAIT_REASONS(TT__X)
#undef TT__X
};

/* ---- the all-goroutines list ------------------------------------------ */

/* Add d to a count only this thread writes (others read it). */
static inline void count_add(_Atomic int64_t *c, int64_t d)
{
	atomic_store_explicit(
		c, atomic_load_explicit(c, memory_order_relaxed) + d,
		memory_order_relaxed);
}

static void all_link(tt__sched *s, tt__g *g)
{
	g->birth = ++s->births;
	g->all_prev = NULL;
	g->all_next = s->all;
	if (s->all)
		s->all->all_prev = g;
	s->all = g;
	count_add(&s->ngoroutines, 1);
	if (TT_LIKELY(!g->proxy))
		count_add(&s->nuser, 1);
}

static void all_unlink(tt__sched *s, tt__g *g)
{
	if (g->all_prev)
		g->all_prev->all_next = g->all_next;
	else
		s->all = g->all_next;
	if (g->all_next)
		g->all_next->all_prev = g->all_prev;
	count_add(&s->ngoroutines, -1);
	if (TT_LIKELY(!g->proxy))
		count_add(&s->nuser, -1);
}

/* ---- the run queue --------------------------------------------------------- */

int tt__runq_grow(tt__sched *s)
{
	tt__runq *q = &s->runq;
	int64_t live = atomic_load_explicit(&s->ngoroutines,
					    memory_order_relaxed);
	uint64_t want = q->v ? ((uint64_t)q->mask + 1) * 2 : 64;
	while (want < (uint64_t)live + 2)
		want *= 2;
	if (want > UINT32_MAX / 2 + 1)
		return tt__err(-ENOMEM, "tt_go: %" PRId64 " goroutines are "
					"as many as one thread can run",
			       live);
	tt__g **v = malloc((size_t)want * sizeof *v);
	if (v == NULL)
		return tt__err(-ENOMEM, "tt_go: out of memory for the run "
					"queue of %" PRId64 " goroutines",
			       live + 1);
	uint32_t n = runq_len(s);
	for (uint32_t i = 0; i < n; i++)
		v[i] = runq_at(s, i);
	free(q->v);
	q->v = v;
	q->head = 0;
	q->tail = n;
	q->mask = (uint32_t)(want - 1);
	return 0;
}

/* ---- switching ------------------------------------------------------------- */

/* Runs on the goroutine that was just switched to, before it does anything
 * else: finishes what the previous one could not do on its own stack.
 * While a profile snapshot is being taken, zombie is never NULL here (it
 * holds TT__SNAP_MARK(s) when nobody ended) and zombie_fn records the
 * goroutine that resumes (see internal.h): no test of its own on this
 * path. */
static inline void after_switch(tt__sched *s)
{
	if (TT_UNLIKELY(s->zombie != NULL)) {
		tt__g *z = s->zombie;
		s->zombie = NULL;
		s->zombie_fn(s, z);
	}
}

/* ---- shared stacks ---------------------------------------------------- */

static inline void asan_start(void **fake, const tt__g *to)
{
#if TT_ASAN
	__sanitizer_start_switch_fiber(fake, to->stack_lo,
				       (size_t)(to->stack_hi - to->stack_lo));
#else
	(void)fake;
	(void)to;
#endif
}

static inline void asan_finish(void *fake)
{
#if TT_ASAN
	__sanitizer_finish_switch_fiber(fake, NULL, NULL);
#else
	(void)fake;
#endif
}

/* ThreadSanitizer's view of the switches (internal.h, TT_TSAN). tsan_to:
 * called just before each switch, from `from` to `to`. A switch does not
 * synchronise the two, except where a shared-stack goroutine or the
 * helper context (id 0) is one of them: their frames move through the
 * region and the helper's copies, which TSan cannot follow. */
static inline void tsan_to(const tt__g *from, const tt__g *to)
{
#if TT_TSAN
	bool sync = from->shared || to->shared || from->id == 0 || to->id == 0;
	__tsan_switch_to_fiber(to->tsan_fiber,
			       sync ? 0 : __tsan_switch_to_fiber_no_sync);
#else
	(void)from;
	(void)to;
#endif
}

/* A new goroutine g gets its fiber, and sees what its creator did so far
 * (the creator's release here, g's acquire as it starts). */
static inline void tsan_new(tt__g *g)
{
#if TT_TSAN
	g->tsan_fiber = __tsan_create_fiber(0);
	__tsan_release(g);
#else
	(void)g;
#endif
}

/* g starts (acquire) or ends (release): the next goroutine on this record
 * and stack sees what this one did on it. */
static inline void tsan_start(tt__g *g)
{
#if TT_TSAN
	__tsan_acquire(g);
#else
	(void)g;
#endif
}

#if TT_TSAN
char tt__tsan_ends;
#endif

static inline void tsan_end(tt__g *g)
{
#if TT_TSAN
	__tsan_release(g);
	__tsan_release(&tt__tsan_ends);
#else
	(void)g;
#endif
}

/* The helper context: a loop on a stack of its own that moves frames in
 * and out of the region for a switch that leaves it (see internal.h). It
 * is entered with s->sh.next set to the goroutine to run; the region's
 * owner, if any, is parked (its sp saved) or dead. */
static void helper_main(void *arg)
{
	tt__sched *s = arg;
	tt__g *h = s->sh.helper;
	/* Started by tt__shared_helper_init: hand back to its caller. */
	asan_start(SHARED_FAKE(s), s->current);
	tsan_to(h, s->current);
	tt__switch(&s->sh.helper_sp, s->sh.init_sp);
	for (;;) {
		asan_finish(*SHARED_FAKE(s));
		tt__g *to = s->sh.next;
		s->sh.next = NULL;
		tt__shared_evict(s);
		asan_start(SHARED_FAKE(s), to);
		if (to->sp == NULL) {
			/* A new goroutine, started by a shared-stack parent:
			 * it cannot return to that parent as from a call (the
			 * parent's frames are copied out), so it ends through
			 * g_exit and never comes back here. */
			to->direct = 0;
			s->sh.owner = to;
			tsan_to(h, to);
			tt__spawn_call(&s->sh.helper_sp, to->stack_hi, to);
		} else {
			tt__shared_take(s, to);
			tsan_to(h, to);
			tt__switch(&s->sh.helper_sp, to->sp);
		}
	}
}

int tt__shared_helper_init(tt__sched *s)
{
	tt__g *h = tt__stack_alloc(s, tt__stack_default());
	if (h == NULL)
		return s->current->last_err;
	h->sched = s;
	h->fn = helper_main;
	h->arg = s;
	h->id = 0;
	h->direct = 0;
	h->state = TT_G_RUNNING;
	s->sh.helper = h;
	tt__g *me = s->current;
	(void)me; /* for the sanitizers' annotations only */
#if TT_ASAN
	asan_start(FAKE(me), h);
#endif
	tsan_new(h);
	tsan_to(me, h);
	tt__spawn_call(&s->sh.init_sp, h->stack_hi, h);
#if TT_ASAN
	asan_finish(me->asan_fake_stack);
#endif
	return 0;
}

/* A switch to a shared-stack goroutine that is not in the region. */
static void __attribute__((noinline))
switch_shared(tt__sched *s, tt__g *from, tt__g *to)
{
	if (!from->shared) {
		/* Not on the region: copy here, then switch as usual. */
		tt__shared_take(s, to);
		asan_start(from->state == TT_G_DEAD ? NULL : FAKE(from), to);
		tsan_to(from, to);
		tt__switch(&from->sp, to->sp);
	} else {
		/* On the region (its owner): the helper does the copies. */
		s->sh.next = to;
		asan_start(from->state == TT_G_DEAD ? NULL : FAKE(from),
			   s->sh.helper);
		tsan_to(from, s->sh.helper);
		tt__switch(&from->sp, s->sh.helper_sp);
	}
}

void *tt__g_waiters(tt__g *g, size_t bytes)
{
	if (TT_LIKELY(!g->shared))
		return NULL;
	if (bytes <= g->wbuf_cap)
		return g->wbuf;
	void *b = malloc(bytes);
	if (b == NULL) {
		tt__err(-ENOMEM, "out of memory for %zu bytes of waiters",
			bytes);
		return NULL;
	}
	if (g->wbuf != g->wbuf_inline)
		free(g->wbuf);
	g->wbuf = b;
	g->wbuf_cap = bytes;
	return b;
}

/* For tether_sched_switches_total, with s->nparks: a yield or an exit
 * that hands the thread to another goroutine (a park is counted by
 * nparks, which the park path keeps anyway). tt_go's start of its child
 * as a call, and the child's plain return, are calls, not counted. */
static inline void count_switch(tt__sched *s)
{
	atomic_store_explicit(&s->nswitches,
			      atomic_load_explicit(&s->nswitches,
						   memory_order_relaxed) + 1,
			      memory_order_relaxed);
}

static inline void switch_to(tt__sched *s, tt__g *from, tt__g *to)
{
	from->direct = 0;
	s->current = to;
	to->state = TT_G_RUNNING;
	if (TT_UNLIKELY(to->shared && s->sh.owner != to)) {
		switch_shared(s, from, to);
	} else {
#if TT_ASAN
		__sanitizer_start_switch_fiber(
			from->state == TT_G_DEAD ? NULL : &from->asan_fake_stack,
			to->stack_lo, (size_t)(to->stack_hi - to->stack_lo));
#endif
		tsan_to(from, to);
		tt__switch(&from->sp, to->sp);
	}
#if TT_ASAN
	__sanitizer_finish_switch_fiber(from->asan_fake_stack, NULL, NULL);
#endif
	after_switch(s);
}

/* ---- prefetching the next goroutine ---------------------------------------- */

/* Called by a goroutine about to switch away, with the goroutine it
 * switches to already taken off the run queue. A goroutine that has been
 * parked a while has its stack and record out of the caches, and its page
 * out of the TLB: resuming it waits for each line in turn, as each return
 * loads its frame. So the misses of the goroutines that run after the one
 * now switched to are started here, to overlap with the runs before
 * them:
 *
 *  - at every PREFETCH_AHEAD-th place of the ring, the record lines 0, 1,
 *    2 and 4 (internal.h: what resuming and ending one reads) of the
 *    goroutines PREFETCH_AHEAD to 2 * PREFETCH_AHEAD - 1 places on, as a
 *    batch, because a prefetch that misses the TLB holds up the
 *    instructions after it until its page walk ends, and walks issued
 *    together overlap;
 *  - at every switch, the frames [sp, stack_hi) of the run queue's head,
 *    at most PREFETCH_FRAMES bytes of them (its sp and stack_hi are on
 *    lines of the batch before).
 *
 * This works because the run queue is an array: through a list, each
 * record's address is known only once the record before it has arrived
 * (100,000 goroutines woken at once: 228 ns each to run them through a
 * list on this machine, 130 with the ring and batches). An empty run
 * queue (as in a ping-pong between two goroutines) costs two loads and a
 * branch.
 *
 * Always inlined: as a function of its own it only loads and prefetches,
 * so gcc finds it pure and drops the calls to it. */
#define PREFETCH_FRAMES 512
#define PREFETCH_AHEAD 8

static inline __attribute__((always_inline)) void
prefetch_runnable(tt__sched *s, uint32_t n)
{
	if (TT_LIKELY(n == 0))
		return;
	if ((s->runq.head & (PREFETCH_AHEAD - 1)) == 0) {
		uint32_t end = n < 2 * PREFETCH_AHEAD ? n : 2 * PREFETCH_AHEAD;
		for (uint32_t i = PREFETCH_AHEAD < n ? PREFETCH_AHEAD : 0;
		     i < end; i++) {
			const char *r = (const char *)runq_at(s, i);
			__builtin_prefetch(r);
			__builtin_prefetch(r + 64);
			__builtin_prefetch(r + 128);
			__builtin_prefetch(r + 256);
		}
	}
	tt__g *h = runq_at(s, 0);
	const char *sp = h->sp;
	const char *hi = h->stack_hi;
	if (sp == NULL || hi - sp > PREFETCH_FRAMES || sp > hi)
		return;
	for (const char *p = sp; p < hi; p += 64)
		__builtin_prefetch(p);
}

/* ---- the idle path --------------------------------------------------------- */

/* A new reading for s->stamp, which never goes back (the coarse clock may
 * be behind the fine one): the wait accounting needs every park's stamp
 * to be in its newest epoch. */
static inline void stamp_set(tt__sched *s, int64_t now)
{
	if (now > s->stamp) {
		s->stamp = now;
		tt__waits_stamp(&s->waits, now);
	}
}

static void deadlock(tt__sched *s) __attribute__((noreturn));

static void deadlock(tt__sched *s)
{
	char head[160];
	/* A worker's own flow is no goroutine: whether main ended is P
	 * 0's to say. */
	tt__sched *m = s->worker && tt__procs_main() ? tt__procs_main() : s;
	if (m->main_g.state == TT_G_WAITING && m->main_g.reason == TT_WAIT_NONE)
		snprintf(head, sizeof head,
			 "no goroutines (main called runtime.Goexit) - "
			 "deadlock!");
	else
		snprintf(head, sizeof head,
			 "all goroutines are asleep - deadlock!");
	tt__fatal_report(head, s);
}

/* Wait until some goroutine is runnable and return it, taken off the run
 * queue. Runs on the stack of the goroutine that could not continue
 * (parked or dead); timers fire here. */
static tt__g *idle_wait(tt__sched *s)
{
	for (;;) {
		int64_t now = tt_now();
		stamp_set(s, now);
		if (s->timers.n)
			tt__timers_run(s, now);
		if (tt__inbox_pending(s))
			tt__inbox_run(s);
		tt__g *g = runq_pop(s);
		if (g) {
			if (TT_UNLIKELY(atomic_load_explicit(
				    &s->p_idle, memory_order_relaxed)))
				atomic_store_explicit(&s->p_idle, 0,
						      memory_order_relaxed);
			return g;
		}
		/* The goroutines tt_go queued here unstarted, one at a
		 * time: the rest stay for an idle P to take. */
		if (TT_UNLIKELY(atomic_load_explicit(&s->spawn_n,
						     memory_order_relaxed) !=
				0) &&
		    tt__procs_make_queued(s, 1))
			continue;
		/* Idle: a good time to give idle stacks back, a batch at a
		 * time so timers stay on time. */
		if (tt__stack_trim(s, 256))
			continue;
		/* A P with nothing to run: tt_go on another may hand it a
		 * goroutine (procs.c), which comes as a post; or it takes
		 * half of those queued unstarted on another P, looked at
		 * after it says it is idle. */
		if (s->proc_ix1 != 0) {
			if (!atomic_load_explicit(&s->p_idle,
						  memory_order_relaxed))
				atomic_store_explicit(&s->p_idle, 1,
						      memory_order_seq_cst);
			if (atomic_load_explicit(&tt__procs_spread,
						 memory_order_relaxed) &&
			    tt__procs_steal(s))
				continue;
		}
		int64_t wake = s->timers.n ? s->timers.v[0]->when : -1;
		if (s->io_waiters) {
			/* Sleep in the poller until a descriptor, a post or
			 * the next timer. */
			tt__poll(s, wake < 0 ? -1 : wake > now ? wake - now : 0);
		} else if (wake < 0) {
			/* Only another thread's post can wake this one. */
			if (!tt__inbox_sleep(s, -1, true))
				deadlock(s);
		} else if (wake > now) {
			tt__inbox_sleep(s, wake, false);
		}
	}
}

/* The goroutine to run next: the run queue's head, or what the idle wait
 * finds when the queue is empty. *more: how many wait behind it. */
static inline __attribute__((always_inline)) tt__g *
next_runnable(tt__sched *s, uint32_t *more)
{
	tt__runq *q = &s->runq;
	uint32_t h = q->head, t = q->tail;
	if (TT_LIKELY(h != t)) {
		q->head = h + 1;
		*more = t - h - 1;
		return q->v[h & q->mask];
	}
	tt__g *g = idle_wait(s);
	*more = runq_len(s);
	return g;
}

/* Whether the clock says a check of the timers and the poller is due:
 * the earliest timer's deadline has passed, or goroutines wait in the
 * poller and s->stamp is a millisecond old. (s->stamp is set at every
 * check, and at every 64th park too, so it is never older than the last
 * check.) */
static bool __attribute__((noinline)) check_due(tt__sched *s)
{
	int64_t now = tt_now();
	return (s->timers.n && s->timers.v[0]->when <= now) ||
	       (s->io_waiters && now - s->stamp >= TT_MILLISECOND);
}

/* Fire due timers now and then while the run queue is busy, so a set of
 * goroutines that never idle cannot starve them: at every 64th park or
 * exit, and at every 8th when the clock says a timer is due — so that
 * goroutines whose turns between parks are long (a millisecond of work
 * each) still let a timer fire within 8 turns of its deadline, not 64.
 * The clock is read only while timers or descriptors are pending. */
static inline void maybe_run_timers(tt__sched *s)
{
	if (TT_UNLIKELY(tt__inbox_pending(s)))
		tt__inbox_run(s);
	if (TT_UNLIKELY((s->timers.n | s->io_waiters) != 0) &&
	    (++s->timer_check >= 64 ||
	     ((s->timer_check & 7) == 0 && check_due(s)))) {
		s->timer_check = 0;
		int64_t now = tt_now();
		stamp_set(s, now);
		tt__timers_run(s, now);
		tt__poll(s, 0);
	}
}

/* ---- park and ready ----------------------------------------------------------- */

/* Reserve the save buffer of g, the running shared-stack goroutine, for
 * its stack as deep as here plus the frames of a switch: whatever switch
 * follows can then copy it out without allocating (see stack.c). 0 or
 * -ENOMEM. */
static __attribute__((noinline)) int reserve_here(tt__g *g)
{
	char *here = __builtin_frame_address(0);
	return tt__shared_reserve(g, (size_t)(g->stack_hi - here) +
					     TT__SWITCH_SLACK);
}

/* A shared-stack goroutine about to park or yield cannot have its stack
 * saved. The blocking calls have no way to fail there, so this is fatal;
 * it is said here, on the goroutine's own stack, so the report shows
 * what it was doing. */
static void __attribute__((noinline, noreturn))
save_oom(tt__g *g, int reason, bool yield)
{
	size_t need = (size_t)(g->stack_hi - (char *)__builtin_frame_address(0));
	const char *r = reason > TT_WAIT_NONE && reason < TT_WAIT__COUNT
				? tt__wait_reason_str[reason]
				: "waiting";
	if (yield)
		tt__fatal("out of memory saving the shared stack of goroutine "
			  "%lld (%zu bytes) as it yields",
			  (long long)g->id, need);
	tt__fatal("out of memory saving the shared stack of goroutine %lld "
		  "(%zu bytes) as it parks (%s)",
		  (long long)g->id, need, r);
}

/* The rest of a park, once the goroutine is marked waiting. */
static inline __attribute__((always_inline)) void
park_tail(tt__sched *s, tt__g *g)
{
	g->wait_since = s->stamp;
	tt__waits_park(&s->waits, tt__waits_row_of(g));
	maybe_run_timers(s);
	uint32_t more;
	tt__g *next = next_runnable(s, &more);
	/* The timers just run (or the idle wait) may have readied g
	 * itself: then there is nothing to switch. */
	if (TT_UNLIKELY(next == g)) {
		g->state = TT_G_RUNNING;
		return;
	}
	prefetch_runnable(s, more);
	switch_to(s, g, next);
}

/* Park number np has reached s->park_mark: stamp the clock, and say
 * whether this park is timed for the block profile. With the profile on,
 * every park comes here; with it off, one in 64 (the mark is then the
 * next multiple of 64). tt_set_block_profile_rate sets the calling
 * thread's mark to 0, so that it notices at its next park; another
 * thread's scheduler notices within 64 of its parks (a new one at its
 * first): the mark is its own thread's alone, read by the park path
 * without an atomic load, which costs a park nothing. */
static __attribute__((noinline, cold)) bool
park_paced(tt__sched *s, uint64_t np, int reason)
{
	stamp_set(s, tt__coarse_now());
	/* One of the goroutines queued unstarted here (procs.c) every 64
	 * parks, as Go looks at its global queue every 61 turns: a run
	 * queue that never empties does not starve them. */
	if (TT_UNLIKELY(atomic_load_explicit(&s->spawn_n,
					     memory_order_relaxed) != 0))
		tt__procs_make_queued(s, 1);
	if (atomic_load_explicit(&tt__block_rate, memory_order_relaxed) ==
	    0) {
		s->park_mark = (np | 63) + 1;
		return false;
	}
	s->park_mark = np + 1;
	return (TT__BLOCK_REASONS >> reason) & 1u;
}

/* A park timed for the block profile, recorded when the goroutine runs
 * again (profile/block.c). */
static __attribute__((noinline, cold)) void
park_profiled(tt__sched *s, tt__g *g)
{
	int64_t t0 = tt_now();
	park_tail(s, g);
	tt__block_event(t0);
}

void tt__park(tt__sched *s, int reason, const void *obj)
{
	tt__g *g = s->current;
	if (TT_UNLIKELY(g->shared) && reserve_here(g) != 0)
		save_oom(g, reason, false);
	g->state = TT_G_WAITING;
	g->reason = (uint8_t)reason;
	g->wait_obj = obj;
	/* "Waiting since" is stamped from a clock read every 64 parks (and
	 * at every idle wait): a clock read per park would cost more than
	 * the rest of the park, and the stamp only matters in minutes. The
	 * same test is the block profile's switch, which so costs nothing
	 * when it is off. */
	uint64_t np =
		atomic_load_explicit(&s->nparks, memory_order_relaxed) + 1;
	atomic_store_explicit(&s->nparks, np, memory_order_relaxed);
	if (TT_UNLIKELY(np >= s->park_mark) &&
	    park_paced(s, np, reason)) {
		park_profiled(s, g);
		return;
	}
	park_tail(s, g);
}

void tt__sched_park_recheck(void)
{
	tt__sched *s = tt__tls_sched;
	if (s != NULL)
		s->park_mark = 0;
}

/* ---- goroutines ------------------------------------------------------------------ */

static void g_exit(tt__sched *s, tt__g *g) __attribute__((noreturn));

void *tt__g_direct_entry(void *p)
{
	tt__g *g = p;
	tt__sched *s = g->sched;
#if TT_ASAN
	__sanitizer_finish_switch_fiber(NULL, NULL, NULL);
#endif
	after_switch(s);
	tsan_start(g);
	g->fn(g->arg);
	/* It never left its stack, so its parent still waits inside
	 * tt__spawn_call, first in the run queue (goroutines it started and
	 * that ended the same way have come and gone above it). Return to
	 * the parent as from a call; it frees this stack — unless the parent
	 * is a shared-stack goroutine whose frames were copied out meanwhile
	 * (by a shared-stack goroutine this one started): then it must be
	 * copied back first, which g_exit's switch does. A goroutine with
	 * labels ends through g_exit too (its direct flag is cleared when it
	 * gets them), which drops them. So does one that finds posts from
	 * other threads waiting: g_exit runs them (a loop of such goroutines
	 * never parks, and another thread may wait on this one's answer). */
	tt__g *parent = runq_at(s, 0);
	if (!g->direct ||
	    TT_UNLIKELY(parent->shared && s->sh.owner != parent) ||
	    TT_UNLIKELY(tt__inbox_pending(s)))
		g_exit(s, g);
	s->runq.head++; /* the parent, resumed below */
	TT_ASSERT(parent != NULL && parent->id == g->parent_id);
	all_unlink(s, g);
	g->state = TT_G_DEAD;
	g->sp = __builtin_frame_address(0);
	s->zombie = g;
	if (g->shared)
		s->sh.owner = NULL;
	s->current = parent;
	parent->state = TT_G_RUNNING;
#if TT_ASAN
	__sanitizer_start_switch_fiber(NULL, parent->stack_lo,
				       (size_t)(parent->stack_hi -
						parent->stack_lo));
#endif
	tsan_end(g);
	tsan_to(g, parent);
	return parent->sp;
}

static void g_exit(tt__sched *s, tt__g *g)
{
	/* Exits count like parks towards the timer and poll check: a relay
	 * of goroutines that each ready the next and end, never parking,
	 * would otherwise keep a due sleeper waiting until it is over. (A
	 * goroutine that returns straight to its parent, in
	 * tt__g_direct_entry, does not: its parent runs on, and a readied
	 * sleeper could not run sooner.) */
	maybe_run_timers(s);
	if (TT_UNLIKELY(g->labels != NULL))
		tt__labels_g_exit(g);
	all_unlink(s, g);
	g->state = TT_G_DEAD;
	s->zombie = g;
	if (g->shared && s->sh.owner == g)
		s->sh.owner = NULL; /* nothing of it to save */
	uint32_t more;
	tt__g *next = next_runnable(s, &more);
	/* Nothing of this goroutine needs saving: jump, don't switch. The
	 * stack pointer is still recorded, for the stack pool's sanitizer
	 * bookkeeping. */
	s->current = next;
	next->state = TT_G_RUNNING;
	count_switch(s);
	g->sp = __builtin_frame_address(0);
	prefetch_runnable(s, more);
	tsan_end(g);
	if (TT_UNLIKELY(next->shared && s->sh.owner != next)) {
		if (g->shared) {
			/* Dying on the region: the helper copies next in. */
			s->sh.next = next;
			asan_start(NULL, s->sh.helper);
			tsan_to(g, s->sh.helper);
			tt__jump(s->sh.helper_sp);
		}
		tt__shared_take(s, next);
	}
#if TT_ASAN
	__sanitizer_start_switch_fiber(NULL, next->stack_lo,
				       (size_t)(next->stack_hi -
						next->stack_lo));
#endif
	tsan_to(g, next);
	tt__jump(next->sp);
}

/* ---- what a goroutine is handed (tt_go_attr.own, .wg) ---------------- */

/* A goroutine handed objects runs tt__go_owned_entry(owned) in place of
 * fn(arg), so the path of every other goroutine has no check for them;
 * tt_goexit recognises it by g->fn. */
struct tt__owned {
	tt_func fn;       /* the goroutine's own function and argument */
	void *arg;
	tt_waitgroup *wg; /* referenced, and Add(1) done for us; or NULL */
	size_t n;
	void *objs[];     /* each referenced */
};

/* Give back what owned_take took: release the objects, then the wait
 * group's Done (end: the goroutine's own, at its end) or the Add undone
 * (a tt_go that failed), then its reference. */
static void owned_give_back(struct tt__owned *o)
{
	for (size_t i = o->n; i-- > 0;)
		(void)tt_obj_release(o->objs[i]);
	if (o->wg)
		(void)tt__wg_done_release(o->wg);
	free(o);
}

/* Take what attr hands a new goroutine: references to attr->own's
 * objects and to attr->wg, with Add(1) on it. 0 with *out NULL when it
 * hands nothing. On an error nothing is kept. */
static int owned_take(const tt_go_attr *attr, struct tt__owned **out)
{
	*out = NULL;
	if (attr->own_n == 0 && attr->wg == NULL)
		return 0;
	if (attr->own_n && attr->own == NULL)
		return tt__err(-EINVAL, "tt_go_with: own is NULL with own_n %zu",
			       attr->own_n);
	if (attr->own_n > (SIZE_MAX - sizeof(struct tt__owned)) /
				  sizeof(void *))
		return tt__err(-EINVAL, "tt_go_with: own_n %zu is too large",
			       attr->own_n);
	struct tt__owned *o =
		malloc(sizeof *o + attr->own_n * sizeof(void *));
	if (o == NULL)
		return tt__err(-ENOMEM, "tt_go_with: out of memory for %zu "
					"objects to hand over",
			       attr->own_n);
	o->wg = NULL;
	o->n = 0;
	for (size_t i = 0; i < attr->own_n; i++) {
		void *h = attr->own[i];
		if (h == NULL)
			continue;
		int r = tt_obj_retain(h);
		if (r) {
			owned_give_back(o);
			return tt__err(r, "tt_go_with: object %zu (%p) of own: "
					  "%s",
				       i, h, tt_strerror(r));
		}
		o->objs[o->n++] = h;
	}
	if (attr->wg) {
		int r = tt_wg_retain(attr->wg);
		if (r == 0) {
			r = tt_wg_add(attr->wg, 1);
			if (r)
				(void)tt_wg_release(attr->wg);
		}
		if (r) {
			owned_give_back(o);
			return tt__err(r, "tt_go_with: wg %p: %s",
				       (void *)attr->wg, tt_strerror(r));
		}
		o->wg = attr->wg;
	}
	*out = o;
	return 0;
}

void tt__go_owned_entry(void *p)
{
	struct tt__owned *o = p;
	o->fn(o->arg);
	owned_give_back(o);
	__asm__ volatile(""); /* keep this frame: dumps end at it */
}

/* tt_go with more than one P: hand the goroutine to an idle P (procs.c).
 * Its id, or 0 when none took it and the caller starts it itself. */
static __attribute__((noinline)) int64_t
go_handoff(tt__sched *s, tt_func fn, void *arg, const char *name, size_t size,
	   tt__labels *labels, struct tt__owned *owned, void *pc)
{
	tt__g *parent = s->current;
	tt__spawn sp = {.fn = fn,
			.arg = arg,
			.name = name,
			.parent_id = parent->id,
			.pc = pc,
			.leak_scope = parent->leak_scope,
			.labels = labels,
			.stack_size = size};
	if (owned) {
		owned->fn = fn;
		owned->arg = arg;
		sp.fn = tt__go_owned_entry;
		sp.arg = owned;
	}
	/* No guard budget left: the caller tries itself (a pooled stack
	 * may serve), and fails as with one P. */
	int b = tt__stack_budget_take();
	if (b < 0)
		return 0;
	sp.budget_held = b > 0;
	if (labels == NULL && parent->labels != NULL) {
		sp.labels = parent->labels;
		tt__labels_retain(sp.labels);
	}
	int64_t id = tt__procs_handoff(s, &sp);
	if (id == 0 && sp.budget_held)
		tt__stack_budget_give();
	if (id == 0 && sp.labels != labels)
		tt__labels_release(sp.labels);
	return id;
}

/* Inlined twice: into tt_go (attr NULL: none of the attribute handling)
 * and into go_attr, which serves every call that has attributes. */
static inline __attribute__((always_inline)) int64_t
go_common(tt__sched *s, const tt_go_attr *attr, tt_func fn, void *arg,
	  void *pc)
{
	if (TT_UNLIKELY(fn == NULL))
		return tt__err(-EINVAL, "tt_go: fn is NULL");
	size_t size = tt__stack_default();
	const char *name = NULL;
	bool shared = tt__shared_default();
	bool here = false;
	if (attr) {
		if (attr->flags & ~TT_GO_THIS_THREAD)
			return tt__err(-EINVAL,
				       "tt_go_with: unknown flags 0x%x",
				       attr->flags & ~TT_GO_THIS_THREAD);
		here = attr->flags & TT_GO_THIS_THREAD;
		if (TT_UNLIKELY(attr->stack_size > TT_STACK_SIZE_MAX))
			return tt__err(-EINVAL,
				       "tt_go_with: stack size %zu is over the "
				       "limit of %zu bytes (TT_STACK_SIZE_MAX)",
				       attr->stack_size, TT_STACK_SIZE_MAX);
		if (attr->stack_size)
			size = attr->stack_size;
		name = attr->name;
		shared = shared || attr->shared_stack;
	}
	if (TT_UNLIKELY(tt__runq_reserve(s) != 0))
		return s->current->last_err;
	/* Labels of its own: made now, so a bad list starts nothing. */
	tt__labels *labels = NULL;
	if (attr && TT_UNLIKELY(attr->labels != NULL)) {
		int r = tt__labels_make(s->current->labels, attr->labels,
					"tt_go_with", &labels);
		if (r)
			return r;
	}
	struct tt__owned *owned = NULL;
	if (attr) {
		int r = owned_take(attr, &owned);
		if (r) {
			tt__labels_release(labels);
			return r;
		}
	}
	if (TT_UNLIKELY(atomic_load_explicit(&tt__procs_spread,
					     memory_order_relaxed)) &&
	    !shared && !here) {
		int64_t id = go_handoff(s, fn, arg, name, size, labels, owned,
					pc);
		if (id > 0)
			return id;
	}
	tt__g *g = TT_UNLIKELY(shared)
			   ? tt__shared_alloc(s, attr && attr->stack_size
							 ? size
							 : 0)
			   : tt__stack_alloc(s, size);
	if (TT_UNLIKELY(g == NULL)) {
		int r = s->current->last_err;
		tt__labels_release(labels);
		if (owned) {
			owned_give_back(owned);
			s->current->last_err = r; /* the error that counts */
		}
		return r;
	}

	tt__g *parent = s->current;
	if (TT_UNLIKELY(shared || parent->shared)) {
		/* Starting g may copy a stack out of the region: the
		 * parent's (a shared-stack parent waits runnable, and any
		 * shared-stack goroutine that runs before it resumes evicts
		 * it) or the parked owner's (a shared-stack child takes the
		 * region now). Reserve those copies here, where failing is
		 * still possible. */
		tt__g *o = s->sh.owner;
		int64_t who = 0;
		size_t need = 0;
		if (parent->shared && reserve_here(parent) != 0) {
			who = parent->id;
			need = (size_t)(parent->stack_hi -
					(char *)__builtin_frame_address(0)) +
			       TT__SWITCH_SLACK;
		} else if (shared && !parent->shared && o != NULL &&
			   o->state != TT_G_DEAD && o->sp != NULL &&
			   tt__shared_reserve(o, (size_t)(o->stack_hi -
							  (char *)o->sp)) !=
				   0) {
			who = o->id;
			need = (size_t)(o->stack_hi - (char *)o->sp);
		}
		if (TT_UNLIKELY(who != 0)) {
			tt__stack_free(s, g);
			tt__labels_release(labels);
			if (owned)
				owned_give_back(owned);
			return tt__err(-ENOMEM,
				       "tt_go: out of memory saving the shared "
				       "stack of goroutine %lld (%zu bytes) "
				       "to start a new goroutine",
				       (long long)who, need);
		}
	}

	int64_t id = new_goid(s);
	g->sched = s;
	g->id = id;
	g->is_main = 0;
	g->timed_out = 0;
	if (TT_UNLIKELY(owned)) {
		owned->fn = fn;
		owned->arg = arg;
		g->fn = tt__go_owned_entry;
		g->arg = owned;
	} else {
		g->fn = fn;
		g->arg = arg;
	}
	g->parent_id = parent->id;
	g->leak_scope = parent->leak_scope;
	g->direct = 1;
	/* g->labels is NULL (a record not in use has none). One test for
	 * both the attribute's labels and the parent's. */
	if (TT_UNLIKELY(((uintptr_t)labels | (uintptr_t)parent->labels) != 0))
		tt__labels_g_start(g, parent, labels);
	g->create_pc = pc;
	g->wait_obj = NULL;
	g->wait_list = NULL;
	g->wait_n = 0;
	g->name = name;
	g->sel_fired = -1;
	g->timer.heap_ix = TT_TIMER_IDLE;
	g->last_err = 0;
	g->proxy = 0;
	if (TT_LIKELY(!shared))
		g->errmsg[0] = '\0';
#if TT_ASAN
	g->asan_fake_stack = NULL;
#endif
	all_link(s, g);

	/* Child first: the parent waits at the head of the run queue, and
	 * the child starts as a call on its own stack. The parent goes on
	 * here when the child ends without blocking (a plain return) or
	 * when the scheduler switches back to it. */
	parent->state = TT_G_RUNNABLE;
	runq_push_front(s, parent);
	s->current = g;
	g->state = TT_G_RUNNING;
	tsan_new(g);
	if (TT_UNLIKELY(shared) && parent->shared) {
		/* The parent is on the region the child needs: the helper
		 * copies the parent out and starts the child. */
		s->sh.next = g;
		asan_start(FAKE(parent), s->sh.helper);
		tsan_to(parent, s->sh.helper);
		tt__switch(&parent->sp, s->sh.helper_sp);
	} else {
		if (TT_UNLIKELY(shared)) {
			tt__shared_evict(s);
			s->sh.owner = g;
		}
#if TT_ASAN
		__sanitizer_start_switch_fiber(&parent->asan_fake_stack,
					       g->stack_lo,
					       (size_t)(g->stack_hi -
							g->stack_lo));
#endif
		tsan_to(parent, g);
		tt__spawn_call(&parent->sp, g->stack_hi, g);
	}
#if TT_ASAN
	__sanitizer_finish_switch_fiber(parent->asan_fake_stack, NULL, NULL);
#endif
	after_switch(s);
	return id;
}

__attribute__((noinline)) int64_t tt_go(tt_func fn, void *arg)
{
	return go_common(tt__sched_get(), NULL, fn, arg,
			 __builtin_return_address(0));
}

/* go_common's copy for every call with attributes; pc is the creation
 * site, the return address into the public call's caller. */
__attribute__((noinline)) static int64_t go_attr(const tt_go_attr *attr,
						 tt_func fn, void *arg,
						 void *pc)
{
	return go_common(tt__sched_get(), attr, fn, arg, pc);
}

__attribute__((noinline)) int64_t tt_go_with(const tt_go_attr *attr,
					     tt_func fn, void *arg)
{
	return go_attr(attr, fn, arg, __builtin_return_address(0));
}

__attribute__((noinline)) int64_t tt_wg_go(tt_waitgroup *wg, tt_func fn,
					   void *arg)
{
	if (wg == NULL)
		return tt__err(-EINVAL, "tt_wg_go: wg is NULL");
	tt_go_attr a = {.wg = wg};
	return go_attr(&a, fn, arg, __builtin_return_address(0));
}

__attribute__((noinline)) int64_t tt__go_list(tt_waitgroup *wg, tt_func fn,
					      void *const *list, size_t n)
{
	if (list == NULL || n == 0)
		return tt__err(-EINVAL, "TT_GO: no argument");
	tt_go_attr a = {.own = list + 1, .own_n = n - 1, .wg = wg};
	return go_attr(&a, fn, list[0], __builtin_return_address(0));
}

void tt_yield(void)
{
	tt__sched *s = tt__sched_get();
	if (s->timers.n)
		tt__timers_run(s, tt_now());
	if (s->io_waiters)
		tt__poll(s, 0);
	if (tt__inbox_pending(s))
		tt__inbox_run(s);
	/* Goroutines it started (procs.c) run before it, as with one P. */
	if (TT_UNLIKELY(atomic_load_explicit(&s->spawn_n,
					     memory_order_relaxed) != 0))
		tt__procs_make_queued(s, UINT32_MAX);
	tt__g *next = runq_pop(s);
	if (!next)
		return;
	tt__g *g = s->current;
	if (TT_UNLIKELY(g->shared) && reserve_here(g) != 0)
		save_oom(g, TT_WAIT_NONE, true);
	g->state = TT_G_RUNNABLE;
	runq_push_back(s, g);
	count_switch(s);
	switch_to(s, g, next);
}

void tt_goexit(void)
{
	tt__sched *s = tt__sched_get();
	tt__g *g = s->current;
	if (g->is_main) {
		/* Go lets the others run on, then reports the deadlock. */
		for (;;)
			tt__park(s, TT_WAIT_NONE, NULL);
	}
	if (g->fn == tt__go_owned_entry) {
		/* Ending inside its function: give back what it was
		 * handed, which tt__go_owned_entry will not now. */
		owned_give_back(g->arg);
	}
	g_exit(s, g);
}

int64_t tt_goid(void)
{
	return tt__current()->id;
}

int64_t tt_num_goroutine(void)
{
	tt__sched_get();
	int64_t n;
	for (unsigned tries = 1;; tries++) {
		/* No hand-off being made at the start (made is read first:
		 * one begun after it shows in making), and none begun by
		 * the end: none counted twice, or missed, meanwhile. */
		uint64_t made = atomic_load_explicit(&tt__procs_made,
						     memory_order_seq_cst);
		uint64_t making = atomic_load_explicit(&tt__procs_making,
						       memory_order_seq_cst);
		n = 0;
		pthread_mutex_lock(&registry_lock);
		for (tt__sched *s = registry; s; s = s->next_sched)
			n += atomic_load_explicit(&s->nuser,
						  memory_order_relaxed);
		n += atomic_load_explicit(&orphaned_goroutines,
					  memory_order_relaxed);
		/* Handed to a P, not yet made there (procs.c). */
		n += atomic_load_explicit(&tt__procs_inflight,
					  memory_order_relaxed);
		pthread_mutex_unlock(&registry_lock);
		atomic_thread_fence(memory_order_acquire);
		if (making == made &&
		    atomic_load_explicit(&tt__procs_making,
					 memory_order_seq_cst) == making)
			break;
		if (tries % 64 == 0)
			sched_yield(); /* the P making one may be preempted */
		else
			tt__cpu_relax();
	}
	TT_TSAN_SEE_ENDS();
	return n;
}

size_t tt__sched_others(tt__sched *self, tt__sched **v, size_t cap)
{
	size_t n = 0;
	pthread_mutex_lock(&registry_lock);
	for (tt__sched *s = registry; s; s = s->next_sched) {
		if (s == self)
			continue;
		if (n < cap)
			v[n] = s;
		n++;
	}
	pthread_mutex_unlock(&registry_lock);
	return n;
}

void tt__sched_each(void (*fn)(const tt__sched *s, void *arg), void *arg,
		    int64_t *orphaned)
{
	pthread_mutex_lock(&registry_lock);
	for (tt__sched *s = registry; s; s = s->next_sched)
		fn(s, arg);
	*orphaned = atomic_load_explicit(&orphaned_goroutines,
					 memory_order_relaxed);
	pthread_mutex_unlock(&registry_lock);
}

int tt_runtime_info_get(tt_runtime_info *out)
{
	if (out == NULL)
		return tt__err(-EINVAL, "tt_runtime_info_get: out is NULL");
	tt__sched *s = tt__sched_get();
	memset(out, 0, sizeof *out);
	tt__stack_info(s, out);
	out->goroutines = tt_num_goroutine();
	return 0;
}

/* ---- making a scheduler ------------------------------------------------------------- */

static void main_stack_bounds(tt__g *g)
{
	pthread_attr_t attr;
	void *addr = NULL;
	size_t size = 0;
	if (pthread_getattr_np(pthread_self(), &attr) == 0) {
		pthread_attr_getstack(&attr, &addr, &size);
		pthread_attr_destroy(&attr);
	}
	g->stack_lo = addr;
	g->stack_hi = (char *)addr + size;
}

/* A thread that ends takes its first goroutine, and its scheduler, with
 * it (the key's destructor, on the thread, at its end).
 *
 * Its other goroutines can never run again. The leak layer records them
 * for the leak tools (their stacks, creators, wait reasons), then every
 * stack, arena and the shared region go back to the kernel, the poller's
 * descriptor is closed and the scheduler's memory goes to the graveyard,
 * for the next thread's scheduler (never back to malloc: another thread
 * may still read its inbox through a stale object, and finds it closed).
 * What other threads asked of it and what its goroutines were doing for
 * them is answered -EPIPE. Objects of the scheduler that outlive it (a
 * channel nobody released) are dead with it: its shared channels are
 * marked so under their locks, before anything they could reach is
 * freed, and a scheduler with live objects never goes to the graveyard
 * (their posts find it closed for as long as the process runs; what that
 * keeps is the scheduler's record, about 22 KiB on x86-64).
 *
 * Precondition for the teardown: the thread's own flow of control is the
 * one running. A thread that ends from inside another goroutine
 * (pthread_exit there) has a stack in use that is not the thread's: then
 * nothing is freed, and its goroutines stay counted and registered. */
static void thread_gone(void *p)
{
	tt__sched *s = p;
	if (!s->worker) /* a worker's own flow was never listed */
		all_unlink(s, &s->main_g);
	s->main_g.state = TT_G_DEAD;
	if (s->current != &s->main_g ||
	    (s->zombie != NULL && s->zombie != TT__SNAP_MARK(s)))
		return;
	tt__ctx_thread_exit(s);
	tt__procs_sched_gone(s);
	tt__leak_thread_exit(s);
	tt__labels_thread_exit(s);
	tt__trace_thread_exit();

	pthread_mutex_lock(&registry_lock);
	tt__sched **pp = &registry;
	while (*pp != s)
		pp = &(*pp)->next_sched;
	*pp = s->next_sched;
	atomic_fetch_add_explicit(
		&orphaned_goroutines,
		atomic_load_explicit(&s->nuser, memory_order_relaxed),
		memory_order_relaxed);
	pthread_mutex_unlock(&registry_lock);

	tt__chan_thread_exit(s);
	tt__inbox_close(s);
	tt__stack_thread_exit(s);
	tt__wait1_thread_exit(s);
	tt__obj_thread_exit(s);
	free(s->timers.v);
	free(s->runq.v);
	if (s->epfd >= 0)
		close(s->epfd);
	if (s->wakefd >= 0)
		close(s->wakefd);
	free(s->fds);
	if (tt__tls_sched == s)
		tt__tls_sched = NULL;
	/* Its objects that nobody freed name it as their owner, and a post
	 * its goroutines are still waiting on names it as the asker: a post
	 * or an answer must find its inbox closed for good, never a new
	 * thread that would take them for its own. Such a scheduler is
	 * kept. */
	if (s->nobjs > 0 || s->asking > 0)
		return;
	pthread_mutex_lock(&registry_lock);
	s->next_sched = graveyard;
	graveyard = s;
	pthread_mutex_unlock(&registry_lock);
}

static void make_key(void)
{
	pthread_key_create(&thread_key, thread_gone);
}

tt__sched *tt__sched_init(void)
{
	pthread_mutex_lock(&registry_lock);
	tt__sched *s = graveyard;
	if (s)
		graveyard = s->next_sched;
	pthread_mutex_unlock(&registry_lock);
	if (s) {
		/* Posts that come now find an open inbox and a fresh owner,
		 * which finds their objects are not its own. A push that
		 * found the old inbox closed may still be leaving
		 * (s->pushers): that count is not reset under it. */
		size_t at = offsetof(tt__sched, pushers);
		size_t after = at + sizeof s->pushers;
		memset(s, 0, at);
		memset((char *)s + after, 0, sizeof *s - after);
	} else {
		s = calloc(1, sizeof *s);
	}
	if (s == NULL) {
		static const char msg[] =
			"tether: fatal error: out of memory making a "
			"scheduler\n";
		tt__write_all(2, msg, sizeof msg - 1);
		abort();
	}
	tt__g *m = &s->main_g;
	m->sched = s;
	m->id = new_goid(s);
	m->is_main = 1;
	m->state = TT_G_RUNNING;
	m->sel_fired = -1;
	m->timer.heap_ix = TT_TIMER_IDLE;
	m->wait1 = m->wbuf_inline;
#if TT_TSAN
	m->tsan_fiber = __tsan_get_current_fiber();
#endif
	main_stack_bounds(m);
	s->current = m;
	s->zombie_fn = tt__stack_free;
	s->epfd = -1;
	s->wakefd = -1;
	s->stamp = tt_now();
	tt__waits_stamp(&s->waits, s->stamp);
	s->rng = (uint64_t)tt_now() ^ ((uint64_t)(uintptr_t)s << 17) ^
		 (uint64_t)m->id;
	tt__tls_sched = s;
	/* A worker's own flow is no goroutine (tt__sched_work): not counted
	 * from the moment its scheduler is in the registry, where
	 * tt_num_goroutine would see it. */
	s->worker = tt__procs_worker_here();
	if (!s->worker)
		all_link(s, m);
	if (tt__runq_grow(s) != 0) {
		static const char msg[] =
			"tether: fatal error: out of memory making a "
			"scheduler's run queue\n";
		tt__write_all(2, msg, sizeof msg - 1);
		abort();
	}
	tt__stack_thread_init(s);
	pthread_mutex_lock(&registry_lock);
	s->next_sched = registry;
	registry = s;
	pthread_mutex_unlock(&registry_lock);
	pthread_once(&key_once, make_key);
	pthread_setspecific(thread_key, s);
	tt__procs_sched_born(s);
	return s;
}

/* ---- goroutines started from callbacks ------------------------------------
 *
 * tt_go runs its child at once, as a call, with the caller waiting at the
 * head of the run queue: impossible where switching is not allowed — in a
 * timer callback or a context's cancel walk, which run inside a park (or
 * the idle loop) on the stack of a goroutine that is not runnable. Go
 * starts time.AfterFunc's and context.AfterFunc's functions from such
 * places; tt__go_runnable is how tether does.
 *
 * The child is started as a call (tt__spawn_call) and at once switches
 * back (like the shared-stack helper when it is made): that leaves its
 * context saved at its sp, as a parked goroutine's is, and the caller
 * returns without anything else having run. It is then put at the back
 * of the run queue; whoever next switches to it resumes it in
 * tt__go_born_entry, which runs fn. It has a stack of its own (never the shared region: the
 * caller may be the region's owner). */

typedef struct birth {
	tt__g *g;
	tt_func fn;
	void *arg;
	void *back_sp; /* the caller's context, saved by tt__spawn_call */
} birth;

void tt__go_born_entry(void *p)
{
	birth *b = p;
	tt__g *g = b->g;
	tt_func fn = b->fn;
	void *arg = b->arg;
	tt__sched *s = g->sched;
	asan_start(FAKE(g), s->current);
	tsan_to(g, s->current);
	tt__switch(&g->sp, b->back_sp);
	/* Resumed by a switch (b is gone): from here on a goroutine like
	 * any other, which ends through g_exit (g->direct is 0). */
	asan_finish(FAKE_OF(g));
	after_switch(s);
	/* Its entry as tt_go would have set it: tt_goexit tells by g->fn
	 * a goroutine that was handed objects (tt__go_owned_entry). */
	g->fn = fn;
	g->arg = arg;
	fn(arg);
}

int64_t tt__go_runnable(tt__sched *s, tt_func fn, void *arg, const char *name,
			int64_t parent_id, void *pc, uint64_t leak_scope)
{
	tt__spawn sp = {.fn = fn,
			.arg = arg,
			.name = name,
			.parent_id = parent_id,
			.pc = pc,
			.leak_scope = leak_scope};
	return tt__go_spawn(s, &sp);
}

int64_t tt__go_spawn(tt__sched *s, const tt__spawn *sp)
{
	if (tt__runq_reserve(s) != 0)
		return s->current->last_err;
	size_t size = sp->stack_size ? sp->stack_size : tt__stack_default();
	tt__g *g = sp->budget_held ? tt__stack_alloc_held(s, size)
				   : tt__stack_alloc(s, size);
	if (g == NULL)
		return s->current->last_err;
	tt_func fn = sp->fn;
	void *arg = sp->arg;
	int64_t id = sp->id ? sp->id : new_goid(s);
	g->sched = s;
	g->id = id;
	g->is_main = 0;
	g->timed_out = 0;
	g->parent_id = sp->parent_id;
	g->leak_scope = sp->leak_scope;
	g->create_pc = sp->pc;
	g->wait_obj = NULL;
	g->wait_list = NULL;
	g->wait_n = 0;
	g->name = sp->name;
	g->sel_fired = -1;
	g->timer.heap_ix = TT_TIMER_IDLE;
	g->last_err = 0;
	g->errmsg[0] = '\0';
#if TT_ASAN
	g->asan_fake_stack = NULL;
#endif
	g->direct = 0;
	g->proxy = sp->proxy;
	g->asking = NULL;
	if (sp->made)
		*sp->made = g;
	if (sp->labels != NULL)
		tt__labels_g_start(g, g, sp->labels);
	birth b = {.g = g, .fn = fn, .arg = arg};
	g->fn = tt__go_born_entry;
	g->arg = &b;
	/* The child's entry runs after_switch: a zombie waiting to be freed
	 * may be the very stack this runs on (a goroutine ending, in its
	 * idle wait). Keep it for whoever switches next. */
	tt__g *zombie = s->zombie;
	s->zombie = NULL;
	tt__g *me = s->current;
	(void)me; /* for the sanitizer's annotations only */
	g->state = TT_G_RUNNING;
	asan_start(FAKE(me), g);
	tsan_new(g);
	tsan_to(me, g);
	tt__spawn_call(&b.back_sp, g->stack_hi, g);
	asan_finish(FAKE_OF(me));
	s->zombie = zombie;
	/* Until it first runs (tt__go_born_entry sets both), g->fn is
	 * tt__go_born_entry and g->arg says what it will run: the profiles
	 * show it there, as Go shows a goroutine not yet started at its
	 * function's entry (tt__g_unstarted). */
	g->arg = (void *)(uintptr_t)(fn == tt__go_owned_entry
					     ? ((struct tt__owned *)arg)->fn
					     : fn);
	all_link(s, g);
	g->state = TT_G_RUNNABLE;
	runq_push_back(s, g);
	return id;
}

/* ---- a worker thread ------------------------------------------------------
 *
 * Its own flow of control is no goroutine: it was never in the list of
 * goroutines (so it is never counted, listed or reported) and parks for
 * good, so that the thread runs whatever its scheduler is given. Nothing
 * ever readies it; the idle wait runs on the stack of whichever
 * goroutine parked last, or on this one until the first comes. */
void tt__sched_work(tt__sched *s)
{
	tt__g *m = &s->main_g;
	m->state = TT_G_WAITING;
	m->reason = TT_WAIT_NONE;
	uint32_t more;
	tt__g *next = next_runnable(s, &more);
	switch_to(s, m, next);
	tt__fatal("a worker thread's own flow ran again");
}
