/* tether — blocking calls that do not stall the other goroutines.
 *
 * Every goroutine of a thread runs on that one thread, so a goroutine that
 * calls a function which blocks the thread (getaddrinfo, a read of a slow
 * file, a database client's query, sleep(3)) stops all the others until it
 * returns. tt_blocking runs such a function on a thread of tether's pool
 * while the calling goroutine parks; the thread's other goroutines, its
 * timers and its poller go on meanwhile. It is Go's hand-off of a
 * goroutine in a system call to another thread, made explicit, and
 * libuv's uv_queue_work:
 *
 *     struct lookup q = {.host = "example.org"};
 *     int r = tt_blocking(lookup, &q);    // lookup calls getaddrinfo
 *
 * While it waits, the goroutine's state in dumps and profiles is
 * "syscall", with tt_blocking on its stack.
 *
 * The pool starts empty and makes a thread when a call finds none idle,
 * up to a limit (64; TETHER_BLOCKING_THREADS=n sets it, 1..1024). When
 * every thread is busy, calls wait their turn, in order. A thread that has
 * been idle for 10 s ends. The pool's threads are tether's: the pthread
 * leak check (tether/threads.h) never reports them.
 *
 * What fn may do. It runs on another OS thread, so it must not use the
 * calling goroutine's tether objects (channels, timers, contexts, sync
 * objects and descriptors waited on by the poller belong to the thread
 * that made them), nor thread-local state of the caller's thread. Memory
 * the caller hands it is safe to use until fn returns: the caller does not
 * run again before that. One exception: a goroutine on a shared stack
 * (tt_go_attr.shared_stack) has its stack copied away while it waits, so
 * arg must not point into it (that is -EINVAL), and nothing fn uses may.
 * fn cannot be interrupted: a caller that must give up early should make
 * fn itself time out. */
#ifndef TETHER_BLOCKING_H
#define TETHER_BLOCKING_H

#include "tether/common.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Run fn(arg) on a thread of the pool and return when it has returned,
 * parking the calling goroutine meanwhile. 0 when fn ran. Otherwise fn
 * has not run, and the error (tt_strerror) says why: -EINVAL for a NULL
 * fn or an arg inside a shared stack; -EAGAIN when the pool has no
 * thread and cannot make one; -EMFILE or -ENOMEM when there is no
 * descriptor or memory for the hand-off. Callable from any goroutine,
 * main included. */
TT_EXPORT TT_WARN_UNUSED int tt_blocking(void (*fn)(void *arg), void *arg);

/* The pool's threads now: busy running fn, idle, and calls waiting for a
 * thread. */
typedef struct tt_blocking_stats {
	int threads;
	int busy;
	int queued;
	int max_threads;
	uint64_t calls; /* completed since the process started */
} tt_blocking_stats;

TT_EXPORT void tt_blocking_stats_get(tt_blocking_stats *out);

#ifdef __cplusplus
}
#endif

#endif
