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
 * compare-and-swap) that either has nothing to run (p_idle, set in its
 * idle wait) and no more goroutines than the caller's scheduler, or is
 * busy with at most one goroutine more than that: the new one then
 * waits in its inbox until the one it runs parks or ends, so a P busy
 * with a fan-out always has the next piece ready. If it finds one it
 * sends it a post carrying the new goroutine (a tt__spawn: function,
 * argument, id, creator, labels, leak scope, stack size) and returns the
 * id; the post wakes the P, which makes the goroutine runnable there
 * (tt__go_spawn) and runs it. Otherwise the caller starts the goroutine
 * itself, as it always has: with one P (TETHER_PROCS=1) nothing else is
 * looked at, and tt_go costs one relaxed load more.
 *
 * So a fan-out of goroutines spreads over the idle Ps as it is made, and
 * a server's accept loop gives each new connection to a P whose
 * goroutines all wait. Once started, a goroutine stays on its P's thread
 * for life: its stack, its timers and its descriptors are that thread's,
 * and a busy P's runnable goroutines (or one waiting in its inbox behind
 * a goroutine that never parks) are not taken by an idle one. Every
 * object works from any thread (chan.h, post.c), so goroutines on
 * different Ps talk as goroutines on one do.
 *
 * Deadlock detection needs nothing new: an idle worker sleeps as any idle
 * scheduler does, counted asleep (post.c), and a hand-off is a post, so
 * it is in flight until taken. */
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

void tt__procs_sched_gone(tt__sched *s)
{
	if (s->proc_ix1 == 0)
		return;
	atomic_store(&ps[s->proc_ix1 - 1], NULL);
	s->proc_ix1 = 0;
	atomic_store(&s->p_idle, 0);
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

static void run_handoff(tt__sched *s, tt__post *p)
{
	tt__spawn *sp = (tt__spawn *)(void *)p->val;
	/* A reader that sees the count below move sees this begin. */
	atomic_fetch_add_explicit(&tt__procs_making, 1, memory_order_seq_cst);
	atomic_thread_fence(memory_order_release);
	int64_t r = tt__go_spawn(s, sp);
	/* Counted in s's goroutines now (it has not run yet). */
	atomic_fetch_sub_explicit(&tt__procs_inflight, 1,
				  memory_order_relaxed);
	atomic_fetch_add_explicit(&tt__procs_made, 1, memory_order_seq_cst);
	atomic_store_explicit(&s->p_handoff, 0, memory_order_release);
	if (r < 0)
		tt__fatal("cannot start goroutine %lld, handed to P%d: %s",
			  (long long)sp->id, s->proc_ix1 - 1,
			  tt__g_errbuf(s->current, false)
				  ? tt__g_errbuf(s->current, false)
				  : "out of memory");
	tt__post_answer(p);
}

/* The P's thread ended with the goroutine in its inbox. */
static void handoff_dropped(tt__post *p)
{
	tt__spawn *sp = (tt__spawn *)(void *)p->val;
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

static uint32_t pick(tt__sched *s)
{
	s->rng = s->rng * 6364136223846793005u + 1442695040888963407u;
	return (uint32_t)(s->rng >> 33);
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
		/* An idle P with no more goroutines than ours; or a busy one
		 * with at most one more (the one it runs): the goroutine
		 * waits in its inbox and starts as soon as that one parks
		 * or ends, so a P busy with a fan-out never goes idle
		 * between two. */
		bool idle =
			atomic_load_explicit(&t->p_idle, memory_order_relaxed);
		if (atomic_load_explicit(&t->ngoroutines,
					 memory_order_relaxed) >
		    mine + (idle ? 0 : 1))
			continue;
		uint8_t zero = 0;
		if (!atomic_compare_exchange_strong(&t->p_handoff, &zero, 1))
			continue;
		tt__post *p = tt__post_new(sizeof *sp, "tt_go");
		if (p == NULL) {
			atomic_store(&t->p_handoff, 0);
			s->current->last_err = 0; /* the caller tries itself */
			return 0;
		}
		sp->id = tt__new_goid(s);
		memcpy(p->val, sp, sizeof *sp);
		p->run = run_handoff;
		p->dropped = handoff_dropped;
		p->h = t;
		p->quiet = true;
		/* Counted from before t can take it until t has made it. */
		atomic_fetch_add_explicit(&tt__procs_inflight, 1,
					  memory_order_relaxed);
		if (tt__post_send(t, p) != 0) {
			/* Its thread ended: the next, or the caller. */
			atomic_fetch_sub_explicit(&tt__procs_inflight, 1,
						  memory_order_relaxed);
			atomic_store(&t->p_handoff, 0);
			continue;
		}
		return sp->id;
	}
	return 0;
}
