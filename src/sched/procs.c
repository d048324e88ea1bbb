/* tether — Ps: the threads that run the process's goroutines.
 *
 * Design notes
 * ------------
 * TETHER_PROCS (or tt_runtime_procs_set, Go's GOMAXPROCS; by default the
 * number of CPUs the process may run on) says how many threads run
 * goroutines: P 0 is the process's main thread, and P 1 to
 * P n-1 are worker threads of tether's own, started the first time a
 * goroutine could go to one. A worker's own flow of control is no
 * goroutine (sched.c, tt__sched_work): it runs what it is handed.
 *
 * tt_go on any thread looks, before it allocates anything, for another
 * P with no hand-off on its way (p_handoff, claimed with a
 * compare-and-swap) that has nothing to run (p_idle, set in its idle
 * wait) and no more goroutines than the caller's scheduler. If it finds
 * one it sends it a post carrying the new goroutine (a tt__spawn:
 * function, argument, id, creator, labels, leak scope, stack size) and
 * returns the id; the post wakes the P, which makes the goroutine
 * runnable there (tt__go_spawn) and runs it. Otherwise a P queues the
 * tt__spawn unstarted on itself (below), where an idle P may take it;
 * a thread that is no P hands it to a busy P with at most one goroutine
 * more than its own, to wait in that P's inbox, or else starts it
 * itself, as it always has. With one P (TETHER_PROCS=1) nothing else is
 * looked at, and tt_go costs one relaxed load more.
 *
 * So a fan-out of goroutines spreads over the Ps as it is made, and a
 * server's accept loop gives each new connection to a P whose
 * goroutines all wait. Once started, a goroutine stays on its P's thread
 * for life: its stack, its timers and its descriptors are that thread's,
 * and a busy P's runnable goroutines are not taken by an idle one. Every
 * object works from any thread (chan.h, post.c), so goroutines on
 * different Ps talk as goroutines on one do.
 *
 * Deadlock detection needs nothing new: an idle worker sleeps as any idle
 * scheduler does, counted asleep (post.c); a hand-off is a post, so it
 * is in flight until taken; and a P with goroutines queued unstarted
 * makes them before it sleeps. */
#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "internal.h"

#define PROCS_MAX 256

_Atomic int tt__procs_spread;
_Atomic int64_t tt__procs_inflight;
_Atomic uint64_t tt__procs_making, tt__procs_made;

static pthread_once_t procs_once = PTHREAD_ONCE_INIT;
static _Atomic int procs_n = 1;
static _Atomic(tt__sched *) ps[PROCS_MAX];
static _Atomic int worker_tid[PROCS_MAX];
static pthread_mutex_t start_lock = PTHREAD_MUTEX_INITIALIZER;
static _Atomic int nworkers; /* started (P 1 .. nworkers) */
static __thread bool on_worker; /* this thread is a worker */

/* The default, as Go's GOMAXPROCS: the CPUs the process may run on (its
 * affinity mask at start, so taskset and cgroup cpusets count), 1 to
 * PROCS_MAX. */
static int cpus_allowed(void)
{
	cpu_set_t set;
	CPU_ZERO(&set);
	if (sched_getaffinity(0, sizeof set, &set) != 0)
		return 1;
	int n = CPU_COUNT(&set);
	return n < 1 ? 1 : n > PROCS_MAX ? PROCS_MAX : n;
}

/* A count from TETHER_PROCS: 1 to PROCS_MAX; anything else is reported
 * once and the default kept. */
static void procs_init(void)
{
	long n = cpus_allowed();
	const char *v = getenv("TETHER_PROCS");
	if (v != NULL && *v != '\0') {
		char *end = NULL;
		errno = 0;
		long want = strtol(v, &end, 10);
		if (errno != 0 || end == v || *end != '\0' || want < 1 ||
		    want > PROCS_MAX)
			fprintf(stderr,
				"tether: TETHER_PROCS=%s is not a number of "
				"threads from 1 to %d; using %ld (the CPUs "
				"this process may run on)\n",
				v, PROCS_MAX, n);
		else
			n = want;
	}
	atomic_store(&procs_n, (int)n);
	atomic_store(&tt__procs_spread, n > 1);
}

int tt_runtime_procs(void)
{
	pthread_once(&procs_once, procs_init);
	return atomic_load(&procs_n);
}

int tt_runtime_procs_set(int n)
{
	pthread_once(&procs_once, procs_init);
	if (n < 1 || n > PROCS_MAX)
		return tt__err(-EINVAL,
			       "tt_runtime_procs_set: %d is not a number of "
			       "threads from 1 to %d",
			       n, PROCS_MAX);
	int prev = atomic_exchange(&procs_n, n);
	atomic_store(&tt__procs_spread, n > 1);
	return prev;
}

void tt__procs_sched_born(tt__sched *s)
{
	pthread_once(&procs_once, procs_init);
	if (gettid() == getpid()) {
		s->proc_ix1 = 1;
		atomic_store(&ps[0], s);
	}
}

static void queue_give_away(tt__sched *s);

void tt__procs_sched_gone(tt__sched *s)
{
	if (s->proc_ix1 == 0)
		return;
	atomic_store(&ps[s->proc_ix1 - 1], NULL);
	s->proc_ix1 = 0;
	atomic_store(&s->p_idle, 0);
	queue_give_away(s);
}

tt__sched *tt__procs_main(void)
{
	return atomic_load(&ps[0]);
}

bool tt__procs_worker_here(void)
{
	return on_worker;
}

bool tt__procs_owns_tid(int tid)
{
	int n = atomic_load(&nworkers);
	for (int i = 1; i <= n && i < PROCS_MAX; i++)
		if (atomic_load(&worker_tid[i]) == tid)
			return true;
	return false;
}

static void *worker_main(void *arg)
{
	int ix = (int)(intptr_t)arg;
	char name[16];
	snprintf(name, sizeof name, "tether-P%d", ix);
	pthread_setname_np(pthread_self(), name);
	atomic_store(&worker_tid[ix], (int)gettid());
	/* Its scheduler is made with its own flow uncounted (sched.c). */
	on_worker = true;
	tt__sched *s = tt__sched_get();
	s->worker = true;
	s->proc_ix1 = ix + 1;
	atomic_store(&ps[ix], s);
	/* It started with every signal blocked. Process-directed signals
	 * stay so: they go to the program's threads, as they did before
	 * there were workers (a signal watch blocks its signals in its own
	 * thread only, signal.c). The ones its goroutines raise themselves
	 * are taken, now that its scheduler (and the stack-overflow
	 * handler's alternate stack) is made, and so is the CPU profiler's
	 * per-thread SIGPROF. */
	sigset_t own;
	sigemptyset(&own);
	static const int sync_sigs[] = {SIGSEGV, SIGBUS, SIGFPE, SIGILL,
					SIGTRAP, SIGSYS, SIGPROF};
	for (size_t i = 0; i < sizeof sync_sigs / sizeof *sync_sigs; i++)
		sigaddset(&own, sync_sigs[i]);
	pthread_sigmask(SIG_UNBLOCK, &own, NULL);
	tt__sched_work(s);
}

/* Workers up to P want, started once each. */
static void start_workers(int want)
{
	pthread_mutex_lock(&start_lock);
	while (atomic_load(&nworkers) < want && want < PROCS_MAX) {
		int ix = atomic_load(&nworkers) + 1;
		int r = tt__thread_start(worker_main, (void *)(intptr_t)ix);
		if (r != 0) {
			static _Atomic bool said;
			if (!atomic_exchange(&said, true))
				fprintf(stderr,
					"tether: cannot start worker thread "
					"P%d (%s): goroutines run on %d "
					"thread(s)\n",
					ix, strerror(r), ix);
			break;
		}
		atomic_store(&nworkers, ix);
	}
	pthread_mutex_unlock(&start_lock);
}

/* Make a goroutine tt_go gave to this P (a hand-off, or one taken from a
 * queue of unstarted ones), counted in tt__procs_inflight until now. */
static void make_given(tt__sched *s, const tt__spawn *sp)
{
	/* A reader that sees the count below move sees this begin. */
	atomic_fetch_add_explicit(&tt__procs_making, 1, memory_order_seq_cst);
	atomic_thread_fence(memory_order_release);
	int64_t r = tt__go_spawn(s, sp);
	/* Counted in s's goroutines now (it has not run yet). */
	atomic_fetch_sub_explicit(&tt__procs_inflight, 1,
				  memory_order_relaxed);
	atomic_fetch_add_explicit(&tt__procs_made, 1, memory_order_seq_cst);
	if (r < 0)
		tt__fatal("cannot start goroutine %lld on P%d: %s",
			  (long long)sp->id, s->proc_ix1 - 1,
			  tt__g_errbuf(s->current, false)
				  ? tt__g_errbuf(s->current, false)
				  : "out of memory");
}

static void run_handoff(tt__sched *s, tt__post *p)
{
	make_given(s, (tt__spawn *)(void *)p->val);
	atomic_store_explicit(&s->p_handoff, 0, memory_order_release);
	tt__post_answer(p);
}

/* A goroutine of a queue whose thread ended, given to another P. */
static void run_given(tt__sched *s, tt__post *p)
{
	make_given(s, (tt__spawn *)(void *)p->val);
	tt__post_answer(p);
}

/* The goroutine was given to a thread that ended first. */
static void spawn_dropped(const tt__spawn *sp)
{
	fprintf(stderr,
		"tether: goroutine %lld never started: the thread it was "
		"handed to ended first\n",
		(long long)sp->id);
	if (sp->budget_held)
		tt__stack_budget_give();
	atomic_fetch_sub_explicit(&tt__procs_inflight, 1,
				  memory_order_relaxed);
	tt__labels_release(sp->labels);
}

/* The P's thread ended with the goroutine in its inbox. */
static void handoff_dropped(tt__post *p)
{
	spawn_dropped((tt__spawn *)(void *)p->val);
}

/* Post sp (counted in flight) to t, to make and run: 0, or -1 when out
 * of memory or t's thread has ended. */
static int post_spawn(tt__sched *t, const tt__spawn *sp,
		      void (*run)(tt__sched *, tt__post *))
{
	tt__post *p = tt__post_new(sizeof *sp, "tt_go");
	if (p == NULL)
		return -1;
	memcpy(p->val, sp, sizeof *sp);
	p->run = run;
	p->dropped = handoff_dropped;
	p->h = t;
	p->quiet = true;
	return tt__post_send(t, p) == 0 ? 0 : -1;
}

static uint32_t pick(tt__sched *s)
{
	s->rng = s->rng * 6364136223846793005u + 1442695040888963407u;
	return (uint32_t)(s->rng >> 33);
}

/* ---- queues of unstarted goroutines ----------------------------------------
 *
 * When no other P is idle, tt_go on a P queues the new goroutine there as
 * it was asked for (function, argument, id, labels, ...), with no stack
 * yet. Its P makes it when it runs out of runnable goroutines, or one
 * every 64 parks meanwhile, so that a run queue that never empties
 * cannot starve it; and an idle P takes half of another's queue (Go's
 * runqsteal), so a P busy with a goroutine that never parks does not
 * keep the ones queued behind it from running. A goroutine, once
 * started, stays on its P.
 *
 * An idle P says so (p_idle) before it looks at the queues, and tt_go
 * looks for an idle P after it queues: one of the two sees the other
 * (both sequentially consistent), so none sleeps with work queued for
 * it to take. Nobody else can fill a P's queue, and a P makes its own
 * before it sleeps, so the deadlock detector needs nothing more. */

typedef struct tt__spawn_rec {
	struct tt__spawn_rec *next;
	tt__spawn sp;
} tt__spawn_rec;

static void spawn_lock(tt__sched *t)
{
	unsigned i = 0;
	while (atomic_exchange_explicit(&t->spawn_lock, 1,
					memory_order_acquire))
		while (atomic_load_explicit(&t->spawn_lock,
					    memory_order_relaxed)) {
			if (++i % 128 == 0)
				sched_yield(); /* its holder may be preempted */
			else
				tt__cpu_relax();
		}
}

static void spawn_unlock(tt__sched *t)
{
	atomic_store_explicit(&t->spawn_lock, 0, memory_order_release);
}

/* A list of n, at the tail of s's queue. */
static void spawn_put_list(tt__sched *s, tt__spawn_rec *list, uint32_t n)
{
	tt__spawn_rec *last = list;
	while (last->next)
		last = last->next;
	spawn_lock(s);
	if (s->spawn_tail)
		s->spawn_tail->next = list;
	else
		s->spawn_head = list;
	s->spawn_tail = last;
	atomic_fetch_add_explicit(&s->spawn_n, n, memory_order_seq_cst);
	spawn_unlock(s);
}

static void spawn_put(tt__sched *s, tt__spawn_rec *r)
{
	r->next = NULL;
	spawn_put_list(s, r, 1);
}

/* Up to max of t's queue from its head (half of it, rounded up, if
 * half): a list, *out, and its length. */
static uint32_t spawn_take(tt__sched *t, uint32_t max, bool half,
			   tt__spawn_rec **out)
{
	*out = NULL;
	spawn_lock(t);
	uint32_t have = atomic_load_explicit(&t->spawn_n, memory_order_relaxed);
	uint32_t n = half ? (have + 1) / 2 : have;
	if (n > max)
		n = max;
	if (n > 0) {
		tt__spawn_rec *last = t->spawn_head;
		for (uint32_t i = 1; i < n; i++)
			last = last->next;
		*out = t->spawn_head;
		t->spawn_head = last->next;
		if (t->spawn_head == NULL)
			t->spawn_tail = NULL;
		last->next = NULL;
		atomic_store_explicit(&t->spawn_n, have - n,
				      memory_order_relaxed);
	}
	spawn_unlock(t);
	return n;
}

static void make_list(tt__sched *s, tt__spawn_rec *r)
{
	while (r) {
		tt__spawn_rec *next = r->next;
		make_given(s, &r->sp);
		free(r);
		r = next;
	}
}

bool tt__procs_make_queued(tt__sched *s, uint32_t max)
{
	if (atomic_load_explicit(&s->spawn_n, memory_order_relaxed) == 0)
		return false;
	tt__spawn_rec *list;
	if (spawn_take(s, max, false, &list) == 0)
		return false;
	make_list(s, list);
	return true;
}

bool tt__procs_steal(tt__sched *s)
{
	uint32_t n = (uint32_t)atomic_load_explicit(&nworkers,
						    memory_order_relaxed) +
		     1;
	/* A P beyond tt_runtime_procs_set's count takes nothing more. */
	if (n <= 1 || s->proc_ix1 == 0 ||
	    s->proc_ix1 > atomic_load_explicit(&procs_n, memory_order_relaxed))
		return false;
	uint32_t first = pick(s) % n;
	for (uint32_t i = 0; i < n; i++) {
		tt__sched *t = atomic_load_explicit(&ps[(first + i) % n],
						    memory_order_acquire);
		if (t == NULL || t == s ||
		    atomic_load_explicit(&t->spawn_n, memory_order_seq_cst) ==
			    0)
			continue;
		tt__spawn_rec *list;
		uint32_t got = spawn_take(t, UINT32_MAX, true, &list);
		if (got == 0)
			continue;
		/* One made now; the rest queued here, made one at a time
		 * as this P gets to them (each reusing the stack the last
		 * one left), or taken on by another idle P. */
		tt__spawn_rec *rest = list->next;
		list->next = NULL;
		if (rest)
			spawn_put_list(s, rest, got - 1);
		make_list(s, list);
		return true;
	}
	return false;
}

/* A P other than s that is idle with no hand-off on its way, claimed for
 * one (p_handoff set); or NULL. */
static tt__sched *claim_idle(tt__sched *s, uint32_t n, uint32_t first)
{
	for (uint32_t i = 0; i < n; i++) {
		tt__sched *t = atomic_load_explicit(&ps[(first + i) % n],
						    memory_order_acquire);
		if (t == NULL || t == s ||
		    !atomic_load_explicit(&t->p_idle, memory_order_seq_cst) ||
		    atomic_load_explicit(&t->p_handoff, memory_order_relaxed))
			continue;
		uint8_t zero = 0;
		if (atomic_compare_exchange_strong(&t->p_handoff, &zero, 1))
			return t;
	}
	return NULL;
}

/* Queue sp on s's own P; then, if a P went idle meanwhile (it may have
 * looked at the queues before this one had it), hand it the queue's
 * head. Its id, or 0 when out of memory. */
static int64_t queue_here(tt__sched *s, tt__spawn *sp, uint32_t n)
{
	tt__spawn_rec *r = malloc(sizeof *r);
	if (r == NULL) {
		s->current->last_err = 0; /* the caller tries itself */
		return 0;
	}
	sp->id = tt__new_goid(s);
	r->sp = *sp;
	atomic_fetch_add_explicit(&tt__procs_inflight, 1,
				  memory_order_relaxed);
	spawn_put(s, r);
	tt__sched *t = claim_idle(s, n, pick(s) % n);
	if (t == NULL)
		return sp->id;
	tt__spawn_rec *head;
	if (spawn_take(s, 1, false, &head) == 1) {
		if (post_spawn(t, &head->sp, run_handoff) == 0) {
			free(head);
			return sp->id;
		}
		spawn_put(s, head); /* back; this P makes it */
	}
	atomic_store(&t->p_handoff, 0);
	return sp->id;
}

/* Its thread is ending: its queue goes to the other Ps. */
static void queue_give_away(tt__sched *s)
{
	tt__spawn_rec *list;
	if (spawn_take(s, UINT32_MAX, false, &list) == 0)
		return;
	int n = atomic_load(&nworkers) + 1;
	while (list) {
		tt__spawn_rec *r = list;
		list = r->next;
		bool given = false;
		for (int i = 0; i < n && !given; i++) {
			tt__sched *t = atomic_load(&ps[i]);
			given = t != NULL && t != s &&
				post_spawn(t, &r->sp, run_given) == 0;
		}
		if (!given)
			spawn_dropped(&r->sp);
		free(r);
	}
}

int64_t tt__procs_handoff(tt__sched *s, tt__spawn *sp)
{
	int n = atomic_load_explicit(&procs_n, memory_order_relaxed);
	if (n <= 1)
		return 0;
	if (atomic_load_explicit(&nworkers, memory_order_relaxed) < n - 1)
		start_workers(n - 1);
	int64_t mine =
		atomic_load_explicit(&s->ngoroutines, memory_order_relaxed);
	uint32_t first = pick(s) % (uint32_t)n;
	for (int i = 0; i < n; i++) {
		tt__sched *t = atomic_load_explicit(
			&ps[(first + (uint32_t)i) % (uint32_t)n],
			memory_order_acquire);
		if (t == NULL || t == s ||
		    atomic_load_explicit(&t->p_handoff, memory_order_relaxed))
			continue;
		/* An idle P with no more goroutines than ours. A thread that
		 * is no P has no queue an idle P could take from: it also
		 * gives the goroutine to a busy P with at most one more (the
		 * one it runs), to wait in its inbox until that one parks or
		 * ends. */
		bool idle =
			atomic_load_explicit(&t->p_idle, memory_order_relaxed);
		if (!idle && s->proc_ix1 != 0)
			continue;
		if (atomic_load_explicit(&t->ngoroutines,
					 memory_order_relaxed) >
		    mine + (idle ? 0 : 1))
			continue;
		uint8_t zero = 0;
		if (!atomic_compare_exchange_strong(&t->p_handoff, &zero, 1))
			continue;
		sp->id = tt__new_goid(s);
		/* Counted from before t can take it until t has made it. */
		atomic_fetch_add_explicit(&tt__procs_inflight, 1,
					  memory_order_relaxed);
		if (post_spawn(t, sp, run_handoff) == 0)
			return sp->id;
		/* Out of memory, or its thread ended: the next, or the
		 * caller. */
		atomic_fetch_sub_explicit(&tt__procs_inflight, 1,
					  memory_order_relaxed);
		atomic_store(&t->p_handoff, 0);
	}
	/* Not queued by a shared-stack goroutine: making its child may
	 * copy it out of the region, which tt_go must be able to refuse. */
	if (s->proc_ix1 == 0 || s->current->shared)
		return 0;
	return queue_here(s, sp, (uint32_t)n);
}
