/* tether — catching leaked pthreads: goleak's check for plain threads.
 *
 * tt_threads_verify_none() lists the threads of the process other than
 * the caller and the main thread; if any is left once the retries are
 * spent, it prints a report in goleak's layout, one bracketed record per
 * thread, and returns how many:
 *
 *   found unexpected threads:
 *   [Thread 4712 "worker" in state sleeping, with read on top of the stack:
 *   read(...)
 *   	../sysdeps/unix/sysv/linux/read.c:26 +0x4c
 *   worker(...)
 *   	/src/app.c:12 +0x2d
 *   start_thread(...)
 *   	./nptl/pthread_create.c:442 +0x2a6
 *   created by start_workers in thread 4711
 *   	/src/app.c:30 +0x45
 *   main(...)
 *   	/src/app.c:41 +0x11
 *   ]
 *
 * The stack is the thread's own, caught by sending it a real-time signal
 * whose handler unwinds into a preallocated slot; the symbols are looked
 * up afterwards, outside the handler. "created by F in thread T" names
 * the function that called pthread_create and the thread that ran it,
 * followed by the rest of the creation stack (Go prints only F's frame;
 * the callers are extra lines in the same frame format). The state is
 * the kernel's (/proc/self/task/TID/stat: running, sleeping, disk sleep,
 * stopped, zombie, ...), or "finished, not joined" for a joinable thread
 * that has returned but was never joined (its stack is then its entry
 * function). A stack that could not be caught (the thread blocks the
 * signal, or another handler owns it) prints "(stack unavailable: why)".
 *
 * Creation stacks and join bookkeeping come from libtether-preload.so,
 * which interposes pthread_create, pthread_join, pthread_tryjoin_np,
 * pthread_timedjoin_np, pthread_clockjoin_np and pthread_detach. Linking
 * libtether alone does not interpose anything (it would silently replace
 * pthread_create in every program that links tether, and defeat the
 * sanitizers' own interceptors in static builds): load the preload with
 * LD_PRELOAD, or link it (tether::preload) in the test program, to get
 * creators and never-joined threads. Without it the check still sees
 * every live thread, its name, state and stack, with "created by ?".
 *
 * The same creation stacks make Go's threadcreate profile:
 * tt_profile_write("threadcreate", ...) and the debug server's
 * /debug/pprof/threadcreate (tether/profile.h).
 *
 * At exit. With the preload loaded and TETHER_THREADLEAK=1, the check
 * runs when the process exits (TETHER_THREADLEAK_LINGER=ms gives
 * stragglers that long first); a leak prints the report and turns exit
 * status 0 into 1. See docs/THREADS.md. */
#ifndef TETHER_THREADS_H
#define TETHER_THREADS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "tether/common.h"
#include "tether/profile.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Options, NULL for the defaults everywhere. */
typedef struct tt_threads_opts tt_threads_opts;

/* New options: no filters, goleak's retry policy (20 retries, sleeping
 * 1 us doubling up to 100 ms), no linger. -EINVAL, -ENOMEM. */
TT_EXPORT int tt_threads_opts_make(tt_threads_opts **out);
TT_EXPORT void tt_threads_opts_free(tt_threads_opts *o);

/* Ignore threads whose innermost function is `fn`, that have `fn`
 * anywhere on their stack, that were created from `fn` (the caller of
 * pthread_create), or whose name (comm) is `name`. The string is copied.
 * -EINVAL for NULL or empty strings, -ENOMEM. */
TT_EXPORT int tt_threads_ignore_top_function(tt_threads_opts *o,
					     const char *fn);
TT_EXPORT int tt_threads_ignore_any_function(tt_threads_opts *o,
					     const char *fn);
TT_EXPORT int tt_threads_ignore_created_by(tt_threads_opts *o,
					   const char *fn);
TT_EXPORT int tt_threads_ignore_name(tt_threads_opts *o, const char *name);

/* Ignore every thread that exists now, running or finished-unjoined
 * (goleak's IgnoreCurrent). */
TT_EXPORT int tt_threads_ignore_current(tt_threads_opts *o);

/* Retry policy: up to max_retries more tries after the first, sleeping
 * 1 us before the first retry and doubling, at most max_sleep ns. -EINVAL
 * for negative values or max_sleep under 1 us. */
TT_EXPORT int tt_threads_retry(tt_threads_opts *o, int max_retries,
			       int64_t max_sleep);

/* Linger: keep retrying for at least `ns` nanoseconds from the first try,
 * whatever the retry count (Java's randomizedtesting linger). -EINVAL for
 * a negative value. */
TT_EXPORT int tt_threads_linger(tt_threads_opts *o, int64_t ns);

/* One thread. The strings belong to the list. */
typedef struct tt_thread_info {
	int tid;
	int creator_tid;        /* 0 when unknown */
	const char *name;       /* comm, "" when unknown */
	const char *state;      /* "sleeping", "finished, not joined", ... */
	const char *top;        /* innermost function, "?" when unknown */
	const char *created_by; /* caller of pthread_create, "?" unknown */
	const char *stack;      /* the frames, as in the report */
	bool finished;          /* returned but never joined */
} tt_thread_info;

typedef struct tt_threads_list {
	tt_thread_info *t;
	size_t n;
	char *report; /* the report text, NULL when n == 0 */
	/* private */
	void *mem;
} tt_threads_list;

/* Every thread now except the caller, the main thread and the runtime's
 * own (tether's blocking-call pool; a sanitizer's, when the preload saw it
 * created), with stacks; no filters, no retries. Returns the number, or
 * -ENOMEM. */
TT_EXPORT int tt_threads_snapshot(tt_threads_list *out);

/* The threads left after filters and retries (out->n == 0: none);
 * returns their number or a negative errno value. */
TT_EXPORT int tt_threads_find(const tt_threads_opts *opts,
			      tt_threads_list *out);
TT_EXPORT void tt_threads_list_free(tt_threads_list *l);

/* 0 when no thread is left; else the report goes to stderr and the
 * number of leaked threads (> 0) is returned. Negative errno on errors. */
TT_EXPORT int tt_threads_verify_none(const tt_threads_opts *opts);
TT_EXPORT int tt_threads_verify_none_to(const tt_threads_opts *opts,
					tt_write_fn fn, void *arg);

/* Whether pthread_create is interposed (libtether-preload.so loaded):
 * creators and never-joined threads are known only then. */
TT_EXPORT bool tt_threads_tracking(void);

#ifdef __cplusplus
}
#endif
#endif
