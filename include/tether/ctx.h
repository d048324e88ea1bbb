/* tether — contexts (Go's context package): cancellation, deadlines and
 * request-scoped values that flow down a tree of goroutines.
 *
 * A context is made from a parent. tt_ctx_background() is the root: never
 * cancelled, no deadline, no values (tt_ctx_todo() is a second one, for
 * code not yet given a context). tt_ctx_with_cancel,
 * tt_ctx_with_deadline and tt_ctx_with_timeout make cancelable children;
 * tt_ctx_with_value makes a child that carries one key/value pair and
 * shares its parent's cancellation.
 *
 * Cancellation flows down, never up: cancelling a context (tt_ctx_cancel,
 * or its deadline passing) cancels every descendant with the same error,
 * closes their done channels, and leaves the parent alone. A child made
 * from an already cancelled parent starts out cancelled with the parent's
 * error.
 *
 * Lifetime: every constructor gives the caller one reference;
 * tt_ctx_retain adds one, tt_ctx_release drops one, and the last release
 * frees the context. A child holds a reference on its parent, so a parent
 * lives at least as long as its children. Releasing a cancelable context
 * that was never cancelled is allowed (it simply stops listening to its
 * parent) but, as in Go where a dropped CancelFunc is a leak that go vet
 * reports ("lostcancel"), the runtime records it, with where the context
 * was made and where it was released: the leak checker lists it
 * (tt_leak_list.lost_cancels) and a verify reports it once and counts it
 * (tether/leak.h), and TETHER_LEAK=report prints it at the release. A
 * release by the runtime's own hold (a context-aware wait) never counts.
 * Go's idiom (TT_DEFER_CANCEL in tether/defer.h does the last two) is
 *
 *     tt_ctx *c;
 *     tt_ctx_with_cancel(&c, parent);
 *     ...                       // defer cancel()
 *     tt_ctx_cancel(c);
 *     tt_ctx_release(c);
 *
 * Keep a reference while goroutines wait on the context's done channel:
 * the channel is borrowed from the context.
 *
 * A context belongs to the scheduler of the thread that made it, like a
 * channel. Another thread may cancel it (tt_ctx_cancel,
 * tt_ctx_cancel_cause: posted to the owner, never waited for, so a
 * pthread can cancel while the owner is busy elsewhere), read it
 * (tt_ctx_err, tt_ctx_cause: answered by the owner, in order after the
 * caller's own cancel; tt_ctx_done, tt_ctx_deadline, tt_ctx_value),
 * retain and release it, and make children of it: a child is the
 * caller's thread's, and the parent's owner links it (asked, and waited
 * for) and posts the parent's cancel, with its err and cause, to it.
 * A context-aware wait (tt_read_ctx, tt_mutex_lock_ctx, ...) on another
 * thread's context waits on such a child, which the calling thread makes
 * the first time and keeps for its next waits on that context (for the
 * last four it waited on): later waits cost no post to the owner. The
 * child never keeps the context alive after the program's last release.
 * tt_ctx_after_func on another thread's context is made there (its
 * goroutine runs there), and tt_ctx_after_stop and tt_ctx_string work
 * from any thread. tt_ctx_background() and tt_ctx_todo() are
 * shared by every thread. A released context is bad
 * input: its functions return -EBADF (or the documented fallback), every
 * time: handles cannot alias (see chan.h).
 *
 * Errors follow common.h: 0 or a negative errno, with tt_last_error()
 * saying what was wrong. A context's own err is -ECANCELED (Go's
 * context.Canceled) or -ETIMEDOUT (context.DeadlineExceeded). */
#ifndef TETHER_CTX_H
#define TETHER_CTX_H

#include "chan.h"
#include "common.h"
#include "sync.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct tt_ctx tt_ctx;

/* context.Background(). Never cancelled, no deadline, no values, never
 * freed; tt_ctx_retain and tt_ctx_release do nothing on it. Its done
 * channel is NULL (a nil channel) and its err is 0. Cannot fail. */
TT_EXPORT tt_ctx *tt_ctx_background(void);

/* context.WithCancel(parent): a child cancelled by tt_ctx_cancel on it
 * or on any ancestor. *out gets one reference (NULL on failure).
 * -EINVAL for a NULL out or parent, -EBADF for a released parent,
 * -ENOMEM. */
TT_EXPORT int tt_ctx_with_cancel(tt_ctx **out, tt_ctx *parent);

/* context.WithDeadline(parent, d): like tt_ctx_with_cancel, and also
 * cancelled with -ETIMEDOUT at `deadline` (absolute, tt_now() ns). The
 * child's deadline is the earlier of the parent's and `deadline`; when
 * the parent's comes first the child simply expires with the parent. A
 * deadline already passed gives a child that is already expired.
 * TT_FOREVER means no deadline of its own. Expiry happens when the
 * scheduler runs its timers (when a goroutine parks or yields), as with
 * every tether timer. Errors as tt_ctx_with_cancel, and -EINVAL for a
 * negative deadline other than TT_FOREVER. */
TT_EXPORT int tt_ctx_with_deadline(tt_ctx **out, tt_ctx *parent,
				   int64_t deadline);

/* context.WithTimeout(parent, d): tt_ctx_with_deadline with the deadline
 * ns from now; ns <= 0 gives a child that is already expired. Errors as
 * tt_ctx_with_cancel. */
TT_EXPORT int tt_ctx_with_timeout(tt_ctx **out, tt_ctx *parent, int64_t ns);

/* context.WithValue(parent, key, value): a child that carries one
 * key/value pair and is cancelled exactly when its parent is (it has no
 * cancel of its own). Keys are compared by pointer: use the address of a
 * static object of your own, as Go programs use an unexported type.
 * value is not owned. Errors as tt_ctx_with_cancel, and -EINVAL for a
 * NULL key. */
TT_EXPORT int tt_ctx_with_value(tt_ctx **out, tt_ctx *parent,
				const void *key, void *value);

/* ctx.Value(key): the value of the nearest context from c up to the root
 * that carries key (so a child's pair shadows its ancestors'), or NULL if
 * none does. NULL (with the error recorded) for a NULL or released c. */
TT_EXPORT void *tt_ctx_value(tt_ctx *c, const void *key);

/* The CancelFunc of tt_ctx_with_cancel/_deadline/_timeout: cancel c and
 * every descendant with -ECANCELED, close their done channels, stop their
 * timers, and take c out of its parent (which is not affected). Calling
 * it again, or after the deadline passed, does nothing and returns 0;
 * the first error stays. -EINVAL for a NULL c and for contexts that have
 * no CancelFunc in Go (background, tt_ctx_with_value), -EBADF for a
 * released c. */
TT_EXPORT int tt_ctx_cancel(tt_ctx *c);

/* ctx.Done(): a channel of element size 0 (chan struct{}) that is closed
 * when c is cancelled; receive on it, or use it in a select with
 * TT_CASE_RECV_DISCARD. Borrowed: valid while c is. NULL (a nil channel,
 * never ready) for background and contexts with no cancelable ancestor,
 * as in Go; also NULL, with the error recorded, for a NULL or released
 * c. */
TT_EXPORT tt_chan *tt_ctx_done(tt_ctx *c);

/* ctx.Err(): 0 while c is not cancelled, -ECANCELED after a cancel,
 * -ETIMEDOUT after its deadline passed. -EINVAL for a NULL c, -EBADF for
 * a released one. */
TT_EXPORT int tt_ctx_err(tt_ctx *c);

/* ctx.Deadline(): c's deadline (absolute, tt_now() ns), or TT_FOREVER if
 * it has none. TT_FOREVER too, with the error recorded, for a NULL or
 * released c. */
TT_EXPORT int64_t tt_ctx_deadline(tt_ctx *c);

/* References. Both are no-ops returning 0 on tt_ctx_background().
 * -EINVAL for NULL, -EBADF for a released context, -EOVERFLOW when the
 * count would overflow. The last release frees c (stopping its timer
 * and, if c was never cancelled, taking it out of its parent) and drops
 * c's reference on its parent. */
TT_EXPORT int tt_ctx_retain(tt_ctx *c);
TT_EXPORT int tt_ctx_release(tt_ctx *c);

/* Blocking calls that give up when ctx is done, so a goroutine can always
 * be told to stop: Go's
 *
 *   select { case c <- v: ...; case <-ctx.Done(): return ctx.Err() }
 *
 * in one call. They return what the plain call returns, or tt_ctx_err(ctx)
 * (-ECANCELED, or -ETIMEDOUT past the context's deadline) when ctx is done
 * first. If both are possible at once, one is chosen at random, as Go's
 * select does. -EINVAL / -EBADF for a bad ctx. */
TT_EXPORT TT_WARN_UNUSED int tt_chan_send_ctx(tt_ctx *ctx, tt_chan *c,
					      const void *elem,
					      size_t elem_size);
TT_EXPORT TT_WARN_UNUSED int tt_chan_recv_ctx(tt_ctx *ctx, tt_chan *c,
					      void *elem, size_t elem_size,
					      bool *ok);
/* The same with the element size from the pointer's type. */
#define tt_send_ctx(ctx, c, p) tt_chan_send_ctx((ctx), (c), (p), sizeof *(p))
#define tt_recv_ctx(ctx, c, p, ok)                                          \
	tt_chan_recv_ctx((ctx), (c), (p), sizeof *(p), (ok))
/* tt_select with the context's done channel as one more case: the index
 * of the case performed, or the context's error. */
TT_EXPORT TT_WARN_UNUSED int tt_select_ctx(tt_ctx *ctx, const tt_case *cases,
					   size_t n);
/* time.Sleep that wakes early when ctx is done: 0 after sleeping ns. */
TT_EXPORT int tt_sleep_ctx(tt_ctx *ctx, int64_t ns);

/* The sync waits, given up when ctx is done (the descriptor forms are in
 * tether/fd.h). Each returns
 * what its plain form returns, or tt_ctx_err(ctx) when ctx is done before
 * it succeeds (at once if ctx is already done, without trying). A wait
 * holds its own reference on the context, so another goroutine may
 * release the caller's meanwhile. tt_cond_wait_ctx holds the lock again
 * when it returns, whatever it returns, as tt_cond_wait does. */
TT_EXPORT TT_WARN_UNUSED int tt_wg_wait_ctx(tt_ctx *ctx, tt_waitgroup *wg);
TT_EXPORT TT_WARN_UNUSED int tt_mutex_lock_ctx(tt_ctx *ctx, tt_mutex *m);
TT_EXPORT TT_WARN_UNUSED int tt_rwmutex_rlock_ctx(tt_ctx *ctx, tt_rwmutex *m);
TT_EXPORT TT_WARN_UNUSED int tt_rwmutex_lock_ctx(tt_ctx *ctx, tt_rwmutex *m);
TT_EXPORT TT_WARN_UNUSED int tt_cond_wait_ctx(tt_ctx *ctx, tt_cond *c);

/* ---- Go 1.20-1.21: TODO, causes, AfterFunc, WithoutCancel ------------ */

/* context.TODO(): a second root, for code not yet given a context. The
 * same as tt_ctx_background() in every way (never cancelled, no
 * deadline, no values, never freed, shared by every thread) except that
 * it is a different handle and tt_ctx_string names it "context.TODO".
 * Cannot fail. */
TT_EXPORT tt_ctx *tt_ctx_todo(void);

/* context.WithCancelCause(parent): tt_ctx_with_cancel whose cancel can
 * also say why: tt_ctx_cancel_cause(c, cause) is Go's CancelCauseFunc,
 * and tt_ctx_cancel on it is cancel(nil). Errors as tt_ctx_with_cancel.
 *
 * Causes are error codes like every tether error: a negative errno, or
 * any negative int the program defines (keep them clear of -4095..-1 if
 * they must not read as errno values). An int, not a message, so that a
 * cause is compared with == (Go's errors.Is(context.Cause(ctx), ErrX)),
 * never allocates (Go's cancel cannot fail) and has no lifetime to
 * manage; tt_strerror names the errno ones. */
TT_EXPORT int tt_ctx_with_cancel_cause(tt_ctx **out, tt_ctx *parent);

/* Go's cancel(cause): cancel c (err -ECANCELED, like tt_ctx_cancel) and
 * set its cause, and that of every context the cancellation reaches, to
 * cause; cause 0 means -ECANCELED, as Go's cancel(nil) sets Canceled.
 * Calling it again, or after c was cancelled any other way, does
 * nothing and returns 0: the first cause stays. -EINVAL for a positive
 * cause, a NULL c, or a c not made by tt_ctx_with_cancel_cause (Go
 * gives other contexts no CancelCauseFunc); -EBADF for a released c. */
TT_EXPORT int tt_ctx_cancel_cause(tt_ctx *c, int cause);

/* context.Cause(c): 0 while c is not cancelled; once it is, the cause of
 * the cancellation that reached it first: the cause given to
 * tt_ctx_cancel_cause where that cancellation started (c itself or an
 * ancestor), else the error (-ECANCELED, -ETIMEDOUT for a deadline).
 * Value and without-cancel contexts answer for the context they follow
 * (0 below tt_ctx_without_cancel). -EINVAL for NULL, -EBADF for a
 * released c. */
TT_EXPORT int tt_ctx_cause(tt_ctx *c);

/* context.WithoutCancel(parent): a child that keeps the parent's values
 * but is never cancelled: no deadline (TT_FOREVER), a NULL done
 * channel, err and cause 0, whatever happens to the parent; contexts made
 * from it are cancelled only by their own cancel or deadline. It holds a
 * reference on the parent (for the values). Errors as
 * tt_ctx_with_cancel. */
TT_EXPORT int tt_ctx_without_cancel(tt_ctx **out, tt_ctx *parent);

/* context.AfterFunc(ctx, f): once ctx is done, fn(arg) runs in a
 * goroutine of its own (at once if ctx is done already; never if ctx can
 * never be done). Calls on one context are independent. *stop (if stop
 * is not NULL) gets a handle for tt_ctx_after_stop, Go's stop function;
 * it needs no release. The pending call holds a reference on the
 * context, so releasing the program's references does not stop it (a
 * deadline still fires); only stop does. (On a context that can never be
 * done, background's say, the small record behind the handle stays until
 * stop is called.) -EINVAL for a NULL ctx or fn,
 * -EBADF for a released ctx, -ENOMEM. */
typedef struct tt_ctx_after tt_ctx_after;
TT_EXPORT int tt_ctx_after_func(tt_ctx *ctx, void (*fn)(void *), void *arg,
				tt_ctx_after **stop);

/* Go's stop(): stop the association of the context with fn. True if
 * this stopped fn from being run; false if the context was done already
 * and fn has been started (it may still be running: stop does not wait
 * for it), or if it was stopped before. The handle is spent once fn has
 * started or stop returned true; using it after that returns false with
 * -EBADF recorded (handles cannot alias: see chan.h). */
TT_EXPORT bool tt_ctx_after_stop(tt_ctx_after *stop);

/* Go's String() on a context, into buf (at most size bytes, always
 * NUL-terminated when size > 0), as snprintf: returns the length of the
 * whole name. "context.Background", "context.TODO", and for children
 * the parent's name followed by ".WithCancel", ".WithDeadline(<deadline
 * ns> [<time left>s])", ".WithValue(<key>, <value>)" (pointers),
 * ".WithoutCancel"; tt_ctx_notify_signals's contexts print as Go's
 * "signal.NotifyContext(<parent>, [<signals>])". -EINVAL for a NULL c
 * or a NULL buf with size > 0, -EBADF for a released c. */
TT_EXPORT int tt_ctx_string(tt_ctx *c, char *buf, size_t size);

/* ---- signal.NotifyContext ------------------------------------------------ */

/* signal.NotifyContext(parent, sigs...): a cancelable child of parent
 * (*out, one reference) that is also cancelled, with -ECANCELED, when
 * one of the nsigs signals in sigs arrives (SIGINT and SIGTERM are the
 * usual ones). tt_ctx_cancel on it is Go's stop: it cancels the context
 * and restores the signals' previous handling; releasing the last
 * reference does too.
 *
 * How: the signals are blocked in the calling thread (pthread_sigmask)
 * and read from a signalfd by a goroutine on this thread's poller, named
 * "signal.NotifyContext" in dumps, which ends when the context is done.
 * As with Go's NotifyContext, the signals stay caught after the context
 * is cancelled (by a signal, its parent or a deadline) until stop: a
 * second Ctrl-C does nothing until the program calls tt_ctx_cancel.
 * Stop consumes any that arrived meanwhile, so none takes its old
 * action late, closes the descriptor and unblocks what it blocked (a
 * signal blocked before the call stays blocked). Contexts of one thread
 * may share signals: one arriving cancels every such context of the
 * thread.
 *
 * The requirement that comes with it (Go's runtime has it for its own
 * threads too): a signal sent to the process is delivered to some thread
 * that does not block it. Block the signals in every other thread of the
 * process — simplest, with pthread_sigmask in main before creating any
 * thread, since threads inherit the mask — or one of them may get it
 * and take the signal's previous action (for SIGINT: end the process).
 * A signal sent to one thread (pthread_kill, tgkill) reaches a context
 * only if it is that context's thread.
 *
 * -EINVAL for a NULL out, no signals, or a signal that cannot be waited
 * for this way (SIGKILL, SIGSTOP, and the fault signals SIGSEGV, SIGBUS,
 * SIGFPE, SIGILL, SIGTRAP, SIGABRT, SIGSYS); errors of
 * tt_ctx_with_cancel for a bad parent; -ENOMEM, -EMFILE (no descriptor
 * for the signalfd). */
TT_EXPORT int tt_ctx_notify_signals(tt_ctx **out, tt_ctx *parent,
				    const int *sigs, size_t nsigs);

#ifdef __cplusplus
}
#endif
#endif
