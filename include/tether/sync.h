/* tether — Go's sync package: WaitGroup, Mutex, RWMutex, Once, Cond.
 *
 * Each parks the calling goroutine and never blocks the thread: while one
 * goroutine waits for a lock, the others of its scheduler run. Waiters are
 * served first come, first served (a lock is handed straight to the
 * goroutine that waited longest, so none starves).
 *
 * Like channels they are reference counted (make gives one reference,
 * retain/release) and belong to the scheduler of the thread that made
 * them. Other threads may use them too: the owner runs the operation for
 * them, and a wait waits there (Once.Do's function runs on the caller's
 * thread, and a Cond's Wait queues before it unlocks, as in Go;
 * docs/GUIDE.md, "Objects from other threads"). A released
 * object's handle gives -EBADF on every use, as a
 * channel's does (handles cannot alias, see chan.h). Each blocking call
 * has an _until form with a deadline (see
 * common.h: TT_TRY gives -EAGAIN, a passed deadline -ETIMEDOUT).
 *
 * Go's panics are panics here: a negative WaitGroup counter, unlock of an
 * unlocked Mutex, RUnlock or Unlock of an unlocked RWMutex. Parked
 * goroutines show Go's wait reasons in dumps: sync.WaitGroup.Wait,
 * sync.Mutex.Lock, sync.RWMutex.RLock, sync.RWMutex.Lock,
 * sync.Cond.Wait. */
#ifndef TETHER_SYNC_H
#define TETHER_SYNC_H

#include "common.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct tt_waitgroup tt_waitgroup;
typedef struct tt_mutex tt_mutex;
typedef struct tt_rwmutex tt_rwmutex;
typedef struct tt_once tt_once;
typedef struct tt_cond tt_cond;

/* sync.WaitGroup. */
TT_EXPORT int tt_wg_make(tt_waitgroup **out);
/* wg.Add(delta): panics if the counter goes negative or past INT64_MAX.
 * When it reaches 0 every waiter is released. */
TT_EXPORT int tt_wg_add(tt_waitgroup *wg, int64_t delta);
TT_EXPORT int tt_wg_done(tt_waitgroup *wg); /* tt_wg_add(wg, -1) */
/* wg.Wait(): returns at once if the counter is 0. */
TT_EXPORT TT_WARN_UNUSED int tt_wg_wait(tt_waitgroup *wg);
TT_EXPORT TT_WARN_UNUSED int tt_wg_wait_until(tt_waitgroup *wg, int64_t deadline);
TT_EXPORT int64_t tt_wg_count(tt_waitgroup *wg); /* the counter */
TT_EXPORT int tt_wg_retain(tt_waitgroup *wg);
TT_EXPORT int tt_wg_release(tt_waitgroup *wg);

/* sync.Mutex. Not tied to a goroutine: any goroutine may unlock it, as in
 * Go. */
TT_EXPORT int tt_mutex_make(tt_mutex **out);
TT_EXPORT int tt_mutex_lock(tt_mutex *m);
TT_EXPORT TT_WARN_UNUSED int tt_mutex_lock_until(tt_mutex *m, int64_t deadline);
/* m.TryLock(): 0 if locked now, -EAGAIN if it is held. */
TT_EXPORT TT_WARN_UNUSED int tt_mutex_trylock(tt_mutex *m);
/* Panics ("sync: unlock of unlocked mutex") if m is not locked. */
TT_EXPORT int tt_mutex_unlock(tt_mutex *m);
TT_EXPORT int tt_mutex_retain(tt_mutex *m);
TT_EXPORT int tt_mutex_release(tt_mutex *m);

/* sync.RWMutex. A goroutine waiting in Lock keeps new readers out, so
 * writers do not starve. */
TT_EXPORT int tt_rwmutex_make(tt_rwmutex **out);
TT_EXPORT int tt_rwmutex_rlock(tt_rwmutex *m);
TT_EXPORT TT_WARN_UNUSED int tt_rwmutex_rlock_until(tt_rwmutex *m, int64_t deadline);
TT_EXPORT int tt_rwmutex_runlock(tt_rwmutex *m);
TT_EXPORT int tt_rwmutex_lock(tt_rwmutex *m);
TT_EXPORT TT_WARN_UNUSED int tt_rwmutex_lock_until(tt_rwmutex *m, int64_t deadline);
TT_EXPORT int tt_rwmutex_unlock(tt_rwmutex *m);
TT_EXPORT int tt_rwmutex_retain(tt_rwmutex *m);
TT_EXPORT int tt_rwmutex_release(tt_rwmutex *m);

/* sync.Once. tt_once_do runs fn(arg) the first time it is called; later
 * callers return at once, or, while the first call is still running
 * (fn blocked), wait for it to finish. */
TT_EXPORT int tt_once_make(tt_once **out);
TT_EXPORT int tt_once_do(tt_once *o, void (*fn)(void *), void *arg);
TT_EXPORT int tt_once_retain(tt_once *o);
TT_EXPORT int tt_once_release(tt_once *o);

/* sync.Cond, with its Locker: a tt_mutex (the cond holds a reference);
 * tt_cond_make_locker below takes any Locker. */
TT_EXPORT int tt_cond_make(tt_cond **out, tt_mutex *m);
/* c.Wait(): unlocks the mutex, parks until Signal or Broadcast, locks it
 * again. With a deadline: -ETIMEDOUT (the mutex is locked again on
 * return either way). */
TT_EXPORT int tt_cond_wait(tt_cond *c);
TT_EXPORT TT_WARN_UNUSED int tt_cond_wait_until(tt_cond *c, int64_t deadline);
TT_EXPORT int tt_cond_signal(tt_cond *c);
TT_EXPORT int tt_cond_broadcast(tt_cond *c);
TT_EXPORT int tt_cond_retain(tt_cond *c);
TT_EXPORT int tt_cond_release(tt_cond *c);

/* ---- Locker, RLocker, TryLock/TryRLock (Go 1.18) ----------------------- */

/* rw.TryLock() and rw.TryRLock(): 0 if locked now, -EAGAIN if not.
 * As in Go, TryRLock fails while a writer holds the lock or waits for
 * it (readers never overtake a waiting writer). -EINVAL / -EBADF for a
 * bad m. Go's docs apply: correct uses are rare. */
TT_EXPORT int tt_rwmutex_trylock(tt_rwmutex *m);
TT_EXPORT int tt_rwmutex_tryrlock(tt_rwmutex *m);

/* sync.Locker: an interface value, passed by value. lock and unlock get
 * obj and return 0 or a negative errno. */
typedef struct tt_locker {
	int (*lock)(void *obj);
	int (*unlock)(void *obj);
	void *obj;
} tt_locker;

/* A Mutex as a Locker; an RWMutex's write side (Go's *RWMutex is a
 * Locker); rw.RLocker(): its read side, whose lock is RLock and unlock
 * RUnlock. They only wrap the handle: no reference is taken until a
 * Cond is made with one, and nothing is checked until then. */
TT_EXPORT tt_locker tt_mutex_locker(tt_mutex *m);
TT_EXPORT tt_locker tt_rwmutex_locker(tt_rwmutex *m);
TT_EXPORT tt_locker tt_rwmutex_rlocker(tt_rwmutex *m);

/* sync.NewCond(l) for any Locker: tt_cond_make(out, m) is
 * tt_cond_make_locker(out, tt_mutex_locker(m)). Wait calls l.unlock,
 * parks, and calls l.lock before it returns; with tt_rwmutex_rlocker,
 * waiters give up their read lock while they wait and hold one again on
 * return, so a writer can get in meanwhile. The cond holds a reference
 * on a tether Mutex or RWMutex given this way (-EINVAL / -EBADF if it is
 * bad); a locker of the program's own (any lock/unlock pair on any obj)
 * is called as it is, and must outlive the cond. -EINVAL for a NULL
 * lock or unlock, or for mixing the functions of two of the lockers
 * above. */
TT_EXPORT int tt_cond_make_locker(tt_cond **out, tt_locker l);

#ifdef __cplusplus
}
#endif
#endif
