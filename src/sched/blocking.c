/* tether — blocking calls on a pool of threads (tt_blocking).
 *
 * Design notes
 * ------------
 * A call is a job: the function, its argument, and an eventfd on which
 * the caller waits through its thread's poller (so the caller parks and
 * the thread goes on running its other goroutines). A pool thread takes
 * the job from the queue, runs it, sets `done` and writes the eventfd;
 * the poller readies the caller, which reads the eventfd and returns.
 * Each waiting goroutine has its own eventfd because the poller allows
 * one reader per descriptor. Jobs and their eventfds are kept in a small
 * per-thread cache (the poller, like the descriptors it watches, is per
 * thread), so a steady stream of calls makes no system calls beyond the
 * write, the wake-up and the read.
 *
 * The pool (all fields under pool.lock):
 *  - queue holds the jobs no thread has taken, oldest first; queued is
 *    its length;
 *  - threads counts the live pool threads, idle those waiting on
 *    pool.cond for a job; a submit wakes one idle thread, and makes a new
 *    thread when the queue holds more jobs than there are idle threads
 *    and threads < max_threads;
 *  - an idle thread that waits IDLE_NS without a job ends.
 * tids[] (atomics, no lock) lists the pool threads' kernel ids for the
 * pthread leak check. Pool threads block every signal: a process-directed
 * signal goes to a thread of the program, as it would without the pool.
 *
 * The job's memory is never on the caller's stack: a shared-stack
 * goroutine's stack is copied away while it waits. */
#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>

#include "internal.h"
#include "tether/blocking.h"
#include "tether/fd.h"

#define MAX_THREADS_DEFAULT 64
#define MAX_THREADS_LIMIT 1024
#define IDLE_NS (10 * (int64_t)1000000000)
#define CACHE_MAX 16 /* jobs kept per thread */

typedef struct job job;
struct job {
	job *next;        /* in the queue, or in the thread's cache */
	void (*fn)(void *);
	void *arg;
	int efd;          /* the caller waits to read it */
	atomic_bool done; /* fn has returned */
};

static struct {
	pthread_mutex_t lock;
	pthread_cond_t cond;
	job *head, *tail;
	int queued, threads, idle, busy;
	int max_threads;
	uint64_t calls;
} pool = {.lock = PTHREAD_MUTEX_INITIALIZER};

static _Atomic int tids[MAX_THREADS_LIMIT];
static pthread_once_t once = PTHREAD_ONCE_INIT;
static pthread_key_t cache_key;
static __thread job *cache;
static __thread int ncache;

static void cache_drop(void *unused)
{
	(void)unused;
	/* The thread is ending, its scheduler and poller with it. */
	while (cache) {
		job *j = cache;
		cache = j->next;
		close(j->efd);
		free(j);
	}
	ncache = 0;
}

static void fork_child(void)
{
	/* Only the forking thread lives on: the pool has no threads, and
	 * jobs still queued run on the threads the next call makes. */
	pthread_mutex_init(&pool.lock, NULL);
	pthread_condattr_t ca;
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&pool.cond, &ca);
	pthread_condattr_destroy(&ca);
	pool.threads = pool.idle = pool.busy = 0;
	for (int i = 0; i < MAX_THREADS_LIMIT; i++)
		atomic_store_explicit(&tids[i], 0, memory_order_relaxed);
}

static void init(void)
{
	pthread_condattr_t ca;
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&pool.cond, &ca);
	pthread_condattr_destroy(&ca);
	pool.max_threads = MAX_THREADS_DEFAULT;
	const char *e = getenv("TETHER_BLOCKING_THREADS");
	if (e && *e) {
		char *end;
		long n = strtol(e, &end, 10);
		if (*end || n < 1 || n > MAX_THREADS_LIMIT)
			fprintf(stderr,
				"tether: TETHER_BLOCKING_THREADS=%s is not a "
				"number in 1..%d; using %d\n",
				e, MAX_THREADS_LIMIT, MAX_THREADS_DEFAULT);
		else
			pool.max_threads = (int)n;
	}
	pthread_key_create(&cache_key, cache_drop);
	pthread_atfork(NULL, NULL, fork_child);
}

bool tt__blocking_owns_tid(int tid)
{
	if (tid <= 0)
		return false;
	for (int i = 0; i < MAX_THREADS_LIMIT; i++)
		if (atomic_load_explicit(&tids[i], memory_order_acquire) ==
		    tid)
			return true;
	return false;
}

static int tid_slot_take(int tid)
{
	for (int i = 0; i < MAX_THREADS_LIMIT; i++) {
		int zero = 0;
		if (atomic_compare_exchange_strong(&tids[i], &zero, tid))
			return i;
	}
	return -1; /* cannot happen: threads <= MAX_THREADS_LIMIT */
}

static void *worker(void *unused)
{
	(void)unused;
	/* Counted for deadlock detection (post.c) from here: a thread it
	 * does not know of counts as awake, the safe side, while one
	 * counted before it exists would count as asleep with no thread to
	 * match, and could make a false report. */
	tt__helper_thread(1);
	pthread_setname_np(pthread_self(), "tether-blocking");
	int slot = tid_slot_take((int)gettid());
	pthread_mutex_lock(&pool.lock);
	for (;;) {
		while (!pool.head) {
			struct timespec until;
			clock_gettime(CLOCK_MONOTONIC, &until);
			until.tv_sec += IDLE_NS / 1000000000;
			pool.idle++;
			int r = pthread_cond_timedwait(&pool.cond, &pool.lock,
						       &until);
			pool.idle--;
			if (r == ETIMEDOUT && !pool.head)
				goto out;
		}
		job *j = pool.head;
		pool.head = j->next;
		if (!pool.head)
			pool.tail = NULL;
		pool.queued--;
		pool.busy++;
		pthread_mutex_unlock(&pool.lock);

		/* fn sees what its caller did before tt_blocking, and the
		 * caller, once it runs again, what fn did (TSan; the edge
		 * is on the job, which a thread's calls reuse). */
		TT_TSAN_SYNC(j);
		j->fn(j->arg);
		TT_TSAN_SYNC(j);

		/* The counts change before the caller can run again, so
		 * what it reads afterwards includes its own call. */
		pthread_mutex_lock(&pool.lock);
		pool.busy--;
		pool.calls++;
		atomic_store_explicit(&j->done, true, memory_order_release);
		uint64_t one = 1;
		/* An eventfd write of 1 fails only on counter overflow. */
		(void)!write(j->efd, &one, sizeof one);
	}
out:
	pool.threads--;
	tt__helper_thread(-1);
	if (slot >= 0)
		atomic_store_explicit(&tids[slot], 0, memory_order_release);
	pthread_mutex_unlock(&pool.lock);
	return NULL;
}

int tt__thread_start(void *(*fn)(void *), void *arg)
{
	pthread_attr_t a;
	pthread_attr_init(&a);
	pthread_attr_setdetachstate(&a, PTHREAD_CREATE_DETACHED);
	sigset_t all, old;
	sigfillset(&all);
	pthread_sigmask(SIG_SETMASK, &all, &old);
	pthread_t t;
	int r = pthread_create(&t, &a, fn, arg);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	pthread_attr_destroy(&a);
	return r;
}

/* A new pool thread, with every signal blocked (for good); called with
 * pool.lock held. 0, or the pthread_create error. */
static int thread_make(void)
{
	int r = tt__thread_start(worker, NULL);
	if (r == 0)
		pool.threads++;
	return r;
}

/* A job from the thread's cache, or a new one: 0, or -ENOMEM / the
 * eventfd error (-EMFILE, ...) with the error recorded. */
static int job_get(job **out)
{
	job *j = cache;
	if (j) {
		cache = j->next;
		ncache--;
		*out = j;
		return 0;
	}
	j = calloc(1, sizeof *j);
	if (!j)
		return tt__err(-ENOMEM, "tt_blocking: out of memory");
	j->efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	if (j->efd < 0) {
		int e = errno;
		free(j);
		return tt__err(-e, "tt_blocking: eventfd: %s", strerror(e));
	}
	/* A new descriptor: nothing the poller knew of an older file with
	 * this number applies (see tt_fd_nonblock). */
	(void)!tt_fd_nonblock(j->efd);
	pthread_setspecific(cache_key, (void *)1);
	*out = j;
	return 0;
}

static void job_put(job *j)
{
	if (ncache >= CACHE_MAX) {
		(void)!tt_close(j->efd);
		free(j);
		return;
	}
	j->next = cache;
	cache = j;
	ncache++;
}

/* Queue j and see that a thread will take it. 0, or -EAGAIN with j not
 * queued when there is no thread and none can be made. */
static int submit(job *j)
{
	pthread_mutex_lock(&pool.lock);
	j->next = NULL;
	if (pool.tail)
		pool.tail->next = j;
	else
		pool.head = j;
	pool.tail = j;
	pool.queued++;
	int r = 0;
	if (pool.queued > pool.idle && pool.threads < pool.max_threads)
		r = thread_make();
	if (r && pool.threads == 0) {
		/* Nobody will ever take it: take it back. j is the only job
		 * (any other would have a thread). */
		pool.head = pool.tail = NULL;
		pool.queued--;
		pthread_mutex_unlock(&pool.lock);
		return tt__err(-EAGAIN,
			       "tt_blocking: no thread to run the call: "
			       "pthread_create: %s",
			       strerror(r));
	}
	if (pool.idle)
		pthread_cond_signal(&pool.cond);
	pthread_mutex_unlock(&pool.lock);
	return 0;
}

/* Park until j's thread has run it. */
static void wait_done(job *j)
{
	while (!atomic_load_explicit(&j->done, memory_order_acquire)) {
		int r = tt__fd_wait_reason("tt_blocking", j->efd, TT_FD_READ,
					   TT_WAIT_SYSCALL);
		if (r < 0) {
			/* The poller cannot take it (out of memory): the
			 * call must still be waited for, fn may be using
			 * the caller's memory. Block the thread. */
			struct pollfd p = {.fd = j->efd, .events = POLLIN};
			(void)poll(&p, 1, -1);
		}
		uint64_t v;
		(void)!read(j->efd, &v, sizeof v);
	}
}

static inline __attribute__((always_inline)) int
blocking(void (*fn)(void *), void *arg)
{
	if (!fn)
		return tt__err(-EINVAL, "tt_blocking: fn is NULL");
	pthread_once(&once, init);
	tt__sched *s = tt__sched_get();
	tt__g *g = s->current;
	if (TT_UNLIKELY(g->shared) && (char *)arg >= s->sh.lo &&
	    (char *)arg < s->sh.hi)
		return tt__err(-EINVAL,
			       "tt_blocking: arg %p is on the goroutine's "
			       "shared stack, which is copied away while "
			       "it waits; hand it heap memory",
			       arg);
	job *j = NULL;
	int r = job_get(&j);
	if (r)
		return r;
	j->fn = fn;
	j->arg = arg;
	atomic_store_explicit(&j->done, false, memory_order_relaxed);
	TT_TSAN_SYNC(j);
	r = submit(j);
	if (r) {
		job_put(j);
		return r;
	}
	wait_done(j);
	TT_TSAN_SYNC(j);
	job_put(j);
	return 0;
}

int tt_blocking(void (*fn)(void *), void *arg)
{
	return TT_KEEP_FRAME(blocking(fn, arg));
}

void tt_blocking_stats_get(tt_blocking_stats *out)
{
	if (!out)
		return;
	pthread_once(&once, init);
	pthread_mutex_lock(&pool.lock);
	*out = (tt_blocking_stats){.threads = pool.threads,
				   .busy = pool.busy,
				   .queued = pool.queued,
				   .max_threads = pool.max_threads,
				   .calls = pool.calls};
	pthread_mutex_unlock(&pool.lock);
}
