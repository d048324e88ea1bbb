/* tether — catching goroutine leaks: uber-go/goleak for C, and proven
 * leaks.
 *
 * The checker. tt_leak_verify_none() lists the goroutines of the calling
 * thread's scheduler other than the caller; if any is left once the
 * retries are spent, it prints goleak's report and returns how many:
 *
 *   found unexpected goroutines:
 *   [Goroutine 7 in state chan receive, with tt_chan_recv_until on top of the stack:
 *   tt_chan_recv_until(...)
 *   	/src/tether/src/chan/chan.c:409 +0xa5
 *   worker(...)
 *   	/src/app.c:12 +0x2d
 *   created by main in goroutine 1
 *   	/src/app.c:30 +0x45
 *   ]
 *
 * (several goroutines are separated by one space, as Go prints a slice).
 * Between tries it sleeps with tt_sleep, so the other goroutines run and
 * timers fire meanwhile; the thread itself sleeps only when nothing is
 * runnable. When nothing at all can change any more (no goroutine
 * runnable, no timer armed, no descriptor waited on) it stops retrying.
 *
 * Scopes. tt_leak_scope_begin marks the calling goroutine: every goroutine
 * it starts from then on, and every goroutine those start, carries the
 * scope. tt_leak_scope_verify checks only the scope's goroutines, so tests
 * that run at the same time, as goroutines of one thread, each get their
 * own check; and a leak found by any check names the scope that started it.
 *
 * At exit. TETHER_LEAKCHECK=1 in the environment checks when the process
 * exits with status 0, with no change to the program (goleak's
 * VerifyTestMain): a leak prints the report and turns the exit status
 * into 1.
 *
 * Proven leaks. Channels, wait groups, mutexes and conditions are
 * reference counted. When the last reference to one is released while
 * goroutines are parked on it, nothing can ever wake them (a goroutine in
 * a select only when every channel it waits on is gone, and never one
 * with a deadline). The runtime marks each of them at once with the
 * release site. TETHER_LEAK in the environment says what happens then:
 *   off     (default) nothing is printed; the marks stay, for
 *           tt_leak_find and the "goroutineleak" profile
 *   report  print "goroutine N leaked: parked on chan 0x... released at
 *           file:line", the goroutine's stack and the releasing stack
 *   abort   the same, then abort()
 * Under report and abort a lost cancel (a cancelable context released
 * without a cancel, see tether/ctx.h) is printed at the release too:
 *   tether: lost cancel: context from tt_ctx_with_timeout at
 *   file:line (func) released without a cancel at file:line (func) by
 *   goroutine N
 * (one line), without aborting.
 *
 * Which goroutines are checked: the calling thread's; for a check
 * without a scope, every other live thread's too (each thread is asked
 * for its own at every try, as the goroutine profile does, tether/
 * profile.h; a scope's goroutines are all on the thread that began it);
 * and those that threads left behind when they ended. A thread's own
 * flow counts as one of its goroutines: a pthread left parked in tether
 * is reported. A goroutine still parked (or
 * runnable) when its thread exits can never run again; the thread's
 * stacks are given back then, but what the report needs — the stack as it
 * was, the creator, the wait reason — is recorded first, so these are
 * reported like any other, with a line after the report:
 *
 *   goroutine 9 was left parked when its thread (tid 4242) exited: it can
 *   never run again; its stack is as it was then
 *
 * They never change, so the retries do not wait for them, and they stay
 * reported (tt_leak_ignore_current covers them). Goroutines of threads
 * still running are not checked. */
#ifndef TETHER_LEAK_H
#define TETHER_LEAK_H

#include "tether/common.h"
#include "tether/profile.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Options (goleak's Option values), NULL for the defaults everywhere. */
typedef struct tt_leak_opts tt_leak_opts;

/* New options: no filters, goleak's retry policy (20 retries, sleeping
 * 1 us doubling up to 100 ms). -EINVAL, -ENOMEM. */
TT_EXPORT int tt_leak_opts_make(tt_leak_opts **out);
TT_EXPORT void tt_leak_opts_free(tt_leak_opts *o);

/* Ignore goroutines whose innermost function is `fn` (IgnoreTopFunction),
 * that have `fn` anywhere on their stack (IgnoreAnyFunction), or that were
 * started by `fn` (IgnoreCreatedBy). Names are as the stack dumps print
 * them; the string is copied. */
TT_EXPORT int tt_leak_ignore_top_function(tt_leak_opts *o, const char *fn);
TT_EXPORT int tt_leak_ignore_any_function(tt_leak_opts *o, const char *fn);
TT_EXPORT int tt_leak_ignore_created_by(tt_leak_opts *o, const char *fn);

/* Ignore every goroutine that exists now (IgnoreCurrent). */
TT_EXPORT int tt_leak_ignore_current(tt_leak_opts *o);

/* The retry policy: up to max_retries more tries after the first,
 * sleeping 1 us before the first retry and doubling, at most max_sleep ns.
 * max_retries 0 checks once. -EINVAL for negative values or a max_sleep
 * under 1 us. */
TT_EXPORT int tt_leak_retry(tt_leak_opts *o, int max_retries,
			    int64_t max_sleep);

/* A function to run after the check (Cleanup): tt_leak_verify_none and
 * tt_leak_scope_verify call it with 0; the exit-time check with the
 * process's exit status (1 if it found a leak). tt_leak_find refuses
 * options that have one, as goleak's Find does. */
TT_EXPORT int tt_leak_cleanup(tt_leak_opts *o,
			      void (*fn)(int exit_code, void *arg), void *arg);

/* One leaked goroutine. The strings belong to the list. */
typedef struct tt_leaked {
	int64_t id;
	int64_t parent_id;
	const char *state;      /* "chan receive", "select", ... */
	const char *top;        /* innermost function */
	const char *created_by; /* "" for a thread's main goroutine */
	const char *stack;      /* runtime.Stack layout, without the
				   "goroutine N [...]:" line */
	const char *scope;      /* name of the leak scope that started it,
				   or NULL */
	bool proven;            /* proven leaked (see above) */
} tt_leaked;

typedef struct tt_leak_list {
	tt_leaked *g;
	size_t n;
	/* Cancelable contexts released without a cancel (Go's vet
	 * "lostcancel", at run time) that no verify has reported yet: each
	 * is a line of the report, "lost cancel: context from
	 * tt_ctx_with_timeout at file:line (func) released without a cancel
	 * at file:line (func) by goroutine N". */
	size_t lost_cancels;
	char *report; /* goleak's text, then the lost cancels; NULL when
			 n == 0 and lost_cancels == 0 */
	/* private */
	void *mem;
} tt_leak_list;

/* goleak's Find: fills *out with the goroutines left after the retries
 * (out->n == 0: none) and returns their number, or a negative errno value
 * (-EINVAL for options with a cleanup, -ENOMEM). Free with
 * tt_leak_list_free. */
TT_EXPORT int tt_leak_find(const tt_leak_opts *opts, tt_leak_list *out);
TT_EXPORT void tt_leak_list_free(tt_leak_list *l);

/* goleak's VerifyNone: 0 when nothing leaked; else the report goes to
 * stderr and the number of leaked goroutines (> 0) is returned. A lost
 * cancel (see tt_leak_list) of this thread that no verify reported
 * before counts too, and is reported once. Negative errno values on
 * errors. */
TT_EXPORT int tt_leak_verify_none(const tt_leak_opts *opts);
/* The same, the report written through fn (see tether/profile.h). */
TT_EXPORT int tt_leak_verify_none_to(const tt_leak_opts *opts,
				     tt_write_fn fn, void *arg);

/* goleak's VerifyTestMain, from the inside: check when the process exits
 * with status 0 (and call the cleanup, if any, with the final status).
 * TETHER_LEAKCHECK=1 does this with no options. The options are copied.
 * Call it at most once; -EALREADY after that. */
TT_EXPORT int tt_leak_verify_at_exit(const tt_leak_opts *opts);

/* A leak scope (one test's goroutines). Caller-owned; no cleanup needed
 * beyond tt_leak_scope_verify or tt_leak_scope_end. */
typedef struct tt_leak_scope {
	uint64_t id;
	uint64_t prev;   /* the goroutine's scope before this one */
	int64_t goid;    /* the goroutine that began it */
	bool active;
} tt_leak_scope;

/* Begin a scope on the calling goroutine; `name` (copied; may be NULL)
 * names it in reports. Scopes nest: the goroutines of an inner scope
 * belong to the outer one too, so the outer verify also sees what an
 * inner one left behind. */
TT_EXPORT int tt_leak_scope_begin(tt_leak_scope *sc, const char *name);
/* End the scope (on the goroutine that began it) and check its goroutines
 * as tt_leak_verify_none does; same return values. */
TT_EXPORT int tt_leak_scope_verify(tt_leak_scope *sc,
				   const tt_leak_opts *opts);
TT_EXPORT int tt_leak_scope_verify_to(tt_leak_scope *sc,
				      const tt_leak_opts *opts,
				      tt_write_fn fn, void *arg);
/* End the scope without checking. */
TT_EXPORT int tt_leak_scope_end(tt_leak_scope *sc);

/* Proven leaks of the process so far (goroutines marked, on any thread,
 * whether they still exist or not). */
TT_EXPORT uint64_t tt_leak_proven_count(void);

#ifdef __cplusplus
}
#endif
#endif
