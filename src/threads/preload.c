/* tether — libtether-preload.so: pthread_create and the joins interposed,
 * and the leak check at exit.
 *
 *   LD_PRELOAD=build/libtether-preload.so TETHER_THREADLEAK=1 ./program
 *
 * This file is built only into the preload (see CMakeLists.txt), together
 * with a private copy of the rest of tether; a version script exports the
 * interposed pthread functions and the registry, nothing else, so the
 * copy never mixes with a libtether the program links itself.
 *
 * Design notes
 *
 * pthread_create records the caller's return addresses (unw_backtrace,
 * the cheap libunwind path: no symbols, no allocation after the first
 * call of a thread) into a registry slot, and starts the thread on an
 * entry wrapper that stores its tid and sets a thread-specific value
 * whose destructor marks the slot exited when the thread returns or
 * calls pthread_exit (destructors run in both cases, before the last
 * thread's exit(0)). The real functions come from dlsym(RTLD_NEXT), so a
 * sanitizer's interceptors, which come first, still see every call.
 *
 * At exit. The check is an on_exit handler registered from the
 * constructor, so it sees the exit status: it runs after the program's
 * own atexit handlers and C++ static destructors registered later, from
 * whichever thread called exit() (that thread is not reported). The
 * report goes to a copy of stderr taken at load (close-on-exec, fd >= 100),
 * since some programs close stderr before they exit. A leak
 * with status 0 becomes status 1 (stdio is flushed, then _exit(1)); a
 * nonzero status is kept. _exit() and fatal signals run no handler: no
 * report then.
 *
 * Fork. The registry lock is taken in the atfork prepare handler and
 * released in the parent; the child, which has one thread, clears every
 * slot but its own and re-arms the lock. Exec loads the preload afresh
 * (the environment is inherited), so the new program is checked too. */
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <unistd.h>

#define UNW_LOCAL_ONLY
#include <libunwind.h>

#include "tether/threads.h"
#include "threads/threads.h"

#define EXPORT __attribute__((visibility("default")))

/* The one registry; exported for libtether's check (see threads.h). */
EXPORT tt__thr_registry tt__threads_registry_v1 = {
	.magic = TT__THR_MAGIC,
	.lock = PTHREAD_MUTEX_INITIALIZER,
};
#define R (&tt__threads_registry_v1)

typedef int (*create_fn)(pthread_t *, const pthread_attr_t *,
			 void *(*)(void *), void *);
typedef int (*join_fn)(pthread_t, void **);
typedef int (*detach_fn)(pthread_t);
typedef int (*timedjoin_fn)(pthread_t, void **, const struct timespec *);
typedef int (*clockjoin_fn)(pthread_t, void **, clockid_t,
			    const struct timespec *);

static _Atomic(create_fn) real_create;
static _Atomic(join_fn) real_join;
static _Atomic(join_fn) real_tryjoin;
static _Atomic(detach_fn) real_detach;
static _Atomic(timedjoin_fn) real_timedjoin;
static _Atomic(clockjoin_fn) real_clockjoin;

static pthread_key_t exit_key;
static pthread_once_t key_once = PTHREAD_ONCE_INIT;

/* Looks a real function up once. dlsym may allocate: never called from
 * a signal handler. */
#define REAL(var, name)                                                   \
	({                                                                \
		__typeof__(atomic_load(&var)) f_ = atomic_load(&var);     \
		if (!f_) {                                                \
			f_ = (__typeof__(f_))dlsym(RTLD_NEXT, name);      \
			atomic_store(&var, f_);                           \
		}                                                         \
		f_;                                                       \
	})

static void on_thread_exit(void *p);

static void make_key(void)
{
	if (pthread_key_create(&exit_key, on_thread_exit) != 0)
		exit_key = (pthread_key_t)-1;
}

/* Frees slot t (locked). */
static void slot_free_locked(tt__thr *t)
{
	t->state = TT__THR_FREE;
	atomic_store(&t->tid, 0);
	t->fn = NULL;
	while (R->hw > 0 && R->slot[R->hw - 1].state == TT__THR_FREE)
		R->hw--;
}

static tt__thr *slot_take_locked(void)
{
	for (int i = 0; i < TT__THR_SLOTS; i++) {
		tt__thr *t = &R->slot[i];
		if (t->state != TT__THR_FREE)
			continue;
		t->state = TT__THR_LIVE;
		t->gen++;
		t->detached = false;
		t->name[0] = 0;
		memset(&t->handle, 0, sizeof t->handle);
		atomic_store(&t->tid, 0);
		if (i >= R->hw)
			R->hw = i + 1;
		return t;
	}
	R->untracked++;
	return NULL;
}

/* The slot of a thread that is neither free nor detached (locked). */
static tt__thr *slot_find_locked(pthread_t th)
{
	for (int i = 0; i < R->hw; i++) {
		tt__thr *t = &R->slot[i];
		if (t->state != TT__THR_FREE && !t->detached &&
		    pthread_equal(t->handle, th))
			return t;
	}
	return NULL;
}

static void on_thread_exit(void *p)
{
	tt__thr *t = p;
	pthread_mutex_lock(&R->lock);
	if (t->detached) {
		slot_free_locked(t);
	} else {
		/* The name, while /proc still has it (one system call). */
		prctl(PR_GET_NAME, t->name, 0, 0, 0);
		t->name[sizeof t->name - 1] = 0;
		t->state = TT__THR_EXITED;
	}
	pthread_mutex_unlock(&R->lock);
}

typedef struct start {
	tt__thr *t;
	void *(*fn)(void *);
	void *arg;
} start;

/* This thread's id, asked of the kernel once per thread (a system call
 * costs microseconds on some virtual machines; a program creating
 * threads from one thread asks once). fork_child forgets it. */
static __thread int self_tid;

static int my_tid(void)
{
	if (self_tid == 0)
		self_tid = (int)gettid();
	return self_tid;
}

static void *entry(void *p)
{
	start s = *(start *)p;
	free(p);
	/* The handle, before fn runs: a thread that detaches itself at once
	 * (pthread_detach(pthread_self())) may do so before its creator's
	 * pthread_create has returned and stored it, and pthread_detach
	 * finds the slot by handle. The creator stores the same value. */
	pthread_mutex_lock(&R->lock);
	s.t->handle = pthread_self();
	pthread_mutex_unlock(&R->lock);
	atomic_store(&s.t->tid, my_tid());
	if (exit_key != (pthread_key_t)-1)
		pthread_setspecific(exit_key, s.t);
	return s.fn(s.arg);
}

EXPORT int pthread_create(pthread_t *th, const pthread_attr_t *attr,
			  void *(*fn)(void *), void *arg)
{
	create_fn real = REAL(real_create, "pthread_create");
	if (!real)
		return EAGAIN;
	pthread_once(&key_once, make_key);
	start *s = malloc(sizeof *s);
	if (!s)
		return real(th, attr, fn, arg);
	int detached = PTHREAD_CREATE_JOINABLE;
	if (attr)
		pthread_attr_getdetachstate(attr, &detached);

	pthread_mutex_lock(&R->lock);
	tt__thr *t = slot_take_locked();
	pthread_mutex_unlock(&R->lock);
	if (!t) {
		free(s);
		return real(th, attr, fn, arg);
	}
	/* The slot is LIVE with tid 0: readers skip it until the handle
	 * is stored below, so these fields are written unlocked. */
	t->npcs = unw_backtrace((void **)t->pcs, TT__THR_PCS);
	t->parent_tid = my_tid();
	t->fn = fn;
	t->detached = detached == PTHREAD_CREATE_DETACHED;
	s->t = t;
	s->fn = fn;
	s->arg = arg;
	uint32_t gen = t->gen;
	int rc = real(th, attr, entry, s);
	/* The lock is not held across the real create: the new thread may
	 * run, end and (detached) free its slot first, which the gen check
	 * sees. Holding it would make every short thread wait for its
	 * creator at exit. */
	pthread_mutex_lock(&R->lock);
	if (t->gen == gen && t->state != TT__THR_FREE) {
		if (rc == 0)
			t->handle = *th;
		else
			slot_free_locked(t);
	}
	pthread_mutex_unlock(&R->lock);
	if (rc != 0)
		free(s);
	return rc;
}

/* Finds th's slot before a join blocks; after a successful join frees it
 * if it is still the same thread's. */
static tt__thr *join_begin(pthread_t th, uint32_t *gen)
{
	pthread_mutex_lock(&R->lock);
	tt__thr *t = slot_find_locked(th);
	if (t)
		*gen = t->gen;
	pthread_mutex_unlock(&R->lock);
	return t;
}

static void join_end(tt__thr *t, uint32_t gen, int rc)
{
	if (!t || rc != 0)
		return;
	pthread_mutex_lock(&R->lock);
	if (t->gen == gen && t->state != TT__THR_FREE)
		slot_free_locked(t);
	pthread_mutex_unlock(&R->lock);
}

EXPORT int pthread_join(pthread_t th, void **ret)
{
	join_fn real = REAL(real_join, "pthread_join");
	if (!real)
		return ESRCH;
	uint32_t gen = 0;
	tt__thr *t = join_begin(th, &gen);
	int rc = real(th, ret);
	join_end(t, gen, rc);
	return rc;
}

EXPORT int pthread_tryjoin_np(pthread_t th, void **ret)
{
	join_fn real = REAL(real_tryjoin, "pthread_tryjoin_np");
	if (!real)
		return ESRCH;
	uint32_t gen = 0;
	tt__thr *t = join_begin(th, &gen);
	int rc = real(th, ret);
	join_end(t, gen, rc);
	return rc;
}

EXPORT int pthread_timedjoin_np(pthread_t th, void **ret,
				const struct timespec *abstime)
{
	timedjoin_fn real = REAL(real_timedjoin, "pthread_timedjoin_np");
	if (!real)
		return ESRCH;
	uint32_t gen = 0;
	tt__thr *t = join_begin(th, &gen);
	int rc = real(th, ret, abstime);
	join_end(t, gen, rc);
	return rc;
}

EXPORT int pthread_clockjoin_np(pthread_t th, void **ret, clockid_t clk,
				const struct timespec *abstime)
{
	clockjoin_fn real = REAL(real_clockjoin, "pthread_clockjoin_np");
	if (!real)
		return ESRCH;
	uint32_t gen = 0;
	tt__thr *t = join_begin(th, &gen);
	int rc = real(th, ret, clk, abstime);
	join_end(t, gen, rc);
	return rc;
}

EXPORT int pthread_detach(pthread_t th)
{
	detach_fn real = REAL(real_detach, "pthread_detach");
	if (!real)
		return ESRCH;
	pthread_mutex_lock(&R->lock);
	tt__thr *t = slot_find_locked(th);
	int rc = real(th);
	if (t && rc == 0) {
		if (t->state == TT__THR_EXITED)
			slot_free_locked(t);
		else
			t->detached = true;
	}
	pthread_mutex_unlock(&R->lock);
	return rc;
}

/* --- fork ---------------------------------------------------------------- */

static void fork_prepare(void)
{
	pthread_mutex_lock(&R->lock);
}

static void fork_parent(void)
{
	pthread_mutex_unlock(&R->lock);
}

static void fork_child(void)
{
	self_tid = 0; /* the child is another thread */
	int me = (int)gettid();
	pthread_mutex_t fresh = PTHREAD_MUTEX_INITIALIZER;
	/* The child's only thread is the one that forked: keep its slot
	 * (with its new tid) if it has one; the others do not exist here. */
	pthread_t self = pthread_self();
	for (int i = 0; i < R->hw; i++) {
		tt__thr *t = &R->slot[i];
		if (t->state == TT__THR_LIVE && pthread_equal(t->handle, self))
			atomic_store(&t->tid, me);
		else if (t->state != TT__THR_FREE)
			t->state = TT__THR_FREE;
	}
	while (R->hw > 0 && R->slot[R->hw - 1].state == TT__THR_FREE)
		R->hw--;
	R->lock = fresh;
	tt__thr_fork_child();
}

/* --- at exit ------------------------------------------------------------- */

static int64_t linger_ns;
/* A copy of stderr taken at load: programs such as xz close stderr before
 * exit (to check for write errors), which would lose the report. */
static int report_fd = 2;

static int write_report(void *arg, const void *data, size_t len)
{
	(void)arg;
	const char *p = data;
	while (len) {
		ssize_t n = write(report_fd, p, len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return -EIO;
		p += n;
		len -= (size_t)n;
	}
	return 0;
}

static void check_at_exit(int status, void *arg)
{
	(void)arg;
	tt_threads_opts *o = NULL;
	if (tt_threads_opts_make(&o) != 0)
		return;
	if (linger_ns > 0)
		tt_threads_linger(o, linger_ns);
	/* At exit nothing is going to join a straggler: a short retry
	 * policy, unless the user asked to linger. */
	tt_threads_retry(o, 5, 10 * 1000 * 1000);
	int n = tt_threads_verify_none_to(o, write_report, NULL);
	tt_threads_opts_free(o);
	if (n > 0 && status == 0) {
		fflush(NULL);
		_exit(1);
	}
}

__attribute__((constructor)) static void preload_init(void)
{
	pthread_once(&key_once, make_key);
	pthread_atfork(fork_prepare, fork_parent, fork_child);
	const char *on = getenv("TETHER_THREADLEAK");
	if (!on || !*on || strcmp(on, "0") == 0)
		return;
	const char *lg = getenv("TETHER_THREADLEAK_LINGER");
	if (lg && *lg) {
		char *end;
		long long ms = strtoll(lg, &end, 10);
		if (*end || ms < 0)
			fprintf(stderr, "tether: TETHER_THREADLEAK_LINGER=%s: "
				"not a number of milliseconds; ignored\n", lg);
		else
			linger_ns = ms * 1000000LL;
	}
	int fd = fcntl(2, F_DUPFD_CLOEXEC, 100);
	if (fd >= 0)
		report_fd = fd;
	on_exit(check_at_exit, NULL);
}
