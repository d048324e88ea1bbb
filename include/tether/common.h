/* tether — what every layer shares: the export macro, errors, time units
 * and deadlines.
 *
 * Errors. Every function that can fail returns 0 (or a non-negative
 * result) on success and a negative errno value on failure; nothing is
 * reported through errno. The failing call also leaves a sentence saying
 * what was wrong, readable with tt_last_error() from the same goroutine
 * until its next failing call.
 *
 * Deadlines are absolute times on one monotonic clock, in nanoseconds
 * (tt_now()). TT_FOREVER (-1) waits forever; TT_TRY (0) tries once and
 * returns -EAGAIN if the operation would have to wait; a deadline that
 * passes returns -ETIMEDOUT. */
#ifndef TETHER_COMMON_H
#define TETHER_COMMON_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#if defined(TT_STATIC)
#define TT_EXPORT
#elif defined(__GNUC__)
#define TT_EXPORT __attribute__((visibility("default")))
#else
#define TT_EXPORT
#endif

#if defined(__GNUC__)
#define TT_NORETURN __attribute__((noreturn))
#define TT_WARN_UNUSED __attribute__((warn_unused_result))
#else
#define TT_NORETURN
#define TT_WARN_UNUSED
#endif

#ifdef __cplusplus
extern "C" {
#endif

/* Durations, in nanoseconds, like Go's time package. */
#define TT_NANOSECOND INT64_C(1)
#define TT_MICROSECOND INT64_C(1000)
#define TT_MILLISECOND INT64_C(1000000)
#define TT_SECOND INT64_C(1000000000)
#define TT_MINUTE (INT64_C(60) * TT_SECOND)

/* Special deadlines. */
#define TT_FOREVER INT64_C(-1)
#define TT_TRY INT64_C(0)

/* The monotonic clock, in nanoseconds. Always > 0. */
TT_EXPORT int64_t tt_now(void);

/* The deadline `ns` from now; ns < 0 gives TT_FOREVER, and a sum that
 * would overflow saturates instead. */
TT_EXPORT int64_t tt_deadline_in(int64_t ns);

/* A fixed English description of a (negative or positive) errno value. */
TT_EXPORT const char *tt_strerror(int err);

/* What the calling goroutine's last failing call said was wrong, or "" if
 * none has failed. The text stays valid until that goroutine's next
 * failing call. */
TT_EXPORT const char *tt_last_error(void);

/* Retain or release any tether object by its handle, whatever its kind:
 * a channel, timer, ticker, context, WaitGroup, Mutex, RWMutex, Once or
 * Cond (what tt_chan_retain, tt_ctx_release, ... do for their own
 * kind), so that one list can hold objects of every kind (TT_GO does).
 * -EINVAL for NULL, -EBADF for a handle that names no live object. */
TT_EXPORT int tt_obj_retain(void *obj);
TT_EXPORT int tt_obj_release(void *obj);

/* Strict mode, for debug builds and tests: the misuses that lose data or
 * synchronisation when a program ignores their error — an element size
 * that does not match the channel's (-EINVAL), a handle that names no
 * live object (-EBADF) — panic with the same message and the goroutine's
 * stack instead of returning. Off by default; TETHER_STRICT=1 in the
 * environment turns it on from the start. Returns the previous setting.
 * Costs nothing on the paths that succeed. */
TT_EXPORT bool tt_set_strict(bool on);

#ifdef __cplusplus
}
#endif
#endif
