/* tether — goroutines and the scheduler.
 *
 * A goroutine is a coroutine with its own stack (or, if it asks, a turn
 * on its scheduler's shared stack: tt_go_attr.shared_stack), run by the
 * scheduler of the OS thread that started it. Each OS thread that calls
 * into tether gets a scheduler the first time it does; the thread's own
 * flow of control becomes that scheduler's first goroutine (goroutine 1
 * on the process's first such thread, the `main` goroutine). Goroutines
 * of one scheduler never run in parallel with each other, and runtime
 * objects (channels, timers) belong to the scheduler that made them.
 * Another OS thread (a goroutine of its own, or a plain pthread) may
 * send, receive, select on, close, len, cap, retain and release a
 * channel (a timer's or ticker's too), stop and reset a timer or ticker,
 * use a WaitGroup, Mutex, RWMutex, Once or Cond, and cancel, read,
 * retain, release and make children of a context. Once a channel has been
 * used from another thread it is shared: sends, receives and selects are
 * done by the calling thread itself, under the channel's lock, waiting
 * on its own thread when they must; the rest, and a channel's first use,
 * the owner runs for it while the owner is inside tether (docs/GUIDE.md,
 * "Objects from other threads"); Go's panics (a close of a closed
 * channel, an unlock of an unlocked Mutex) are raised on the caller's
 * stack.
 *
 * With one P (TETHER_PROCS=1, or tt_runtime_procs_set(1) below), tt_go
 * runs the new goroutine at once, until it first blocks, yields or
 * returns; the caller is then first in line to continue. With more (by
 * default there is one P for every CPU), it may instead hand the
 * goroutine to an idle worker thread and return at once. Go makes no
 * promise about this order and neither should programs; it is documented
 * because it bounds memory: at one P, a loop that starts goroutines which
 * finish without blocking never holds more than one stack.
 *
 * When a thread ends, its scheduler ends with it: its stacks go back to
 * the system. Goroutines it leaves parked can never run again; they stay
 * counted by tt_num_goroutine and are reported by the leak tools
 * (tether/leak.h). Objects it made (channels, timers, contexts) can no
 * longer be used.
 *
 * When every goroutine of a scheduler is blocked and nothing (a timer, a
 * file descriptor) can wake any of them, the program prints Go's
 * "fatal error: all goroutines are asleep - deadlock!" and exits with
 * status 2. */
#ifndef TETHER_GO_H
#define TETHER_GO_H

#include "common.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef void (*tt_func)(void *arg);
typedef struct tt_waitgroup tt_waitgroup;

/* The largest stack a goroutine may ask for (tt_go_attr.stack_size):
 * 1 GiB, Go's limit on 64-bit systems. Only the pages a goroutine
 * touches cost memory; the rest is address space. */
#define TT_STACK_SIZE_MAX ((size_t)1 << 30)

/* tt_go_attr.flags: the goroutine runs on the thread that calls
 * tt_go_with, for the whole of its life, never on another P (with
 * TETHER_PROCS > 1 tt_go may start a goroutine on another thread). For
 * code that keeps thread-local state across a park, or shares unlocked
 * state with the other goroutines of its thread, which take turns with it
 * but never run at the same time. Like Go's runtime.LockOSThread from the
 * goroutine's first instruction, except that the thread still runs its
 * other goroutines between this one's turns. */
#define TT_GO_THIS_THREAD 0x1u

/* Options for tt_go_with. Zero-initialise it, then set what you need. */
typedef struct tt_go_attr {
	/* Stack bytes, the runtime's record of the goroutine (a few hundred
	 * bytes at the top) included; 0 means the default (tt_runtime_info's
	 * stack_size: 64 KiB; 128 KiB on aarch64, where a stack dump from
	 * inside a goroutine needs more; 256 KiB in AddressSanitizer builds,
	 * whose frames are larger; TETHER_STACK_SIZE overrides it).
	 * Rounded up to whole pages; at least 16 KiB, at most
	 * TT_STACK_SIZE_MAX (a larger size is -EINVAL). A guard region
	 * below the stack turns an overflow into a clear fatal report. */
	size_t stack_size;
	/* An optional name shown in stack dumps and profiles. The string is
	 * not copied: it must outlive the goroutine (a literal is typical). */
	const char *name;
	/* 0, or TT_GO_THIS_THREAD; other bits are -EINVAL. */
	unsigned flags;
	/* Run on the scheduler's shared stack instead of a stack of its own
	 * (libaco's "copying stack"). All shared-stack goroutines of a
	 * scheduler run on one region (1 MiB; TETHER_SHARED_STACK_SIZE sets
	 * it, and stack_size, if set, must not exceed it). When one parks and
	 * another needs the region, the part of the stack the first one uses
	 * is copied to a heap buffer of just that size, and copied back when
	 * it runs again. A parked shared-stack goroutine costs a few hundred
	 * bytes instead of a page or more; each switch between two of them
	 * costs a copy of their used stacks. TETHER_SHARED_STACK=1 in the
	 * environment makes it the default for every tt_go and tt_go_with.
	 *
	 * The copy's buffer is reserved before it can be needed: when the
	 * goroutine parks or yields, and by tt_go for the stacks starting a
	 * goroutine may copy out. tt_go returns -ENOMEM when it cannot have
	 * it. A blocking call has no error for it, so a goroutine that cannot
	 * have it as it parks ends the program with "tether: fatal error:
	 * out of memory saving the shared stack of goroutine N (B bytes) as
	 * it parks (chan receive)" and its stack.
	 *
	 * The rule: no pointer into a shared-stack goroutine's stack may be
	 * given to another goroutine (or kept by anything that runs while it
	 * is parked), because while it is parked the bytes are elsewhere and
	 * the region holds another goroutine's frames. Pointers that tether's
	 * own calls hand over are translated: a value sent from, or received
	 * into, a local variable of a parked goroutine arrives where it
	 * should. What goes wrong otherwise:
	 *
	 *   static void worker(void *arg) {   // started with shared_stack
	 *       int64_t result = 0;
	 *       tt_chan *reply = arg;
	 *       int64_t *p = &result;
	 *       tt_chan_send(reply, &p, sizeof p);  // hands out &result
	 *       tt_sleep(TT_SECOND);                // parks: copied out
	 *       printf("%lld\n", (long long)result); // not what was written
	 *   }
	 *
	 * A goroutine that receives p and writes *p while worker sleeps
	 * writes into whichever goroutine then owns the region — corrupting
	 * it — and worker never sees the value. Hand over heap memory (or a
	 * goroutine with a stack of its own) instead. */
	bool shared_stack;
	/* Objects handed to the goroutine (Go's closures capture them; here
	 * the goroutine owns them): tt_go_with takes a reference to each of
	 * own[0..own_n) before the goroutine starts (tt_obj_retain) and
	 * releases it when the goroutine ends, however it ends (return or
	 * tt_goexit). Any mix of channels, timers, contexts and sync objects;
	 * NULL entries are skipped. The array is read by tt_go_with only. A
	 * handle that is not live fails the call with -EBADF, nothing
	 * started and nothing retained. */
	void *const *own;
	size_t own_n;
	/* Go 1.25's WaitGroup.Go: with wg set, tt_go_with does Add(1) (and
	 * takes a reference to wg), and the goroutine's end does Done, after
	 * the objects in own are released (so a Wait that returns sees them
	 * released), then drops the reference. */
	tt_waitgroup *wg;
	/* Labels (tether/labels.h, Go's pprof.Labels): a key, value, ...
	 * list ended by NULL (TT_LABELS("handler", "login")), merged over
	 * the labels the goroutine would inherit from the caller, its own
	 * keys winning. Copied: the strings need not outlive the call.
	 * NULL: the caller's labels as they are. A bad list (odd count,
	 * NULL or empty key, beyond the limits) fails the call with
	 * -EINVAL, nothing started. */
	const char *const *labels;
} tt_go_attr;

/* Go's `go fn(arg)`. Returns the new goroutine's id (> 0), or
 * -ENOMEM / -EAGAIN when no stack can be had, -EINVAL for a NULL fn, or
 * for tt_go_with, for unknown flags or a stack_size over
 * TT_STACK_SIZE_MAX (or, with shared_stack, over the shared stack).
 * The caller's return address is recorded as the creation site. */
TT_EXPORT int64_t tt_go(tt_func fn, void *arg);
TT_EXPORT int64_t tt_go_with(const tt_go_attr *attr, tt_func fn, void *arg);

/* Go 1.25's wg.Go(f): tt_wg_add(wg, 1), start fn(arg), and tt_wg_done(wg)
 * when it ends, however it ends. Returns what tt_go does. */
TT_EXPORT int64_t tt_wg_go(tt_waitgroup *wg, tt_func fn, void *arg);

/* `go fn(arg)` handing the goroutine the objects after arg, which it
 * owns (tt_go_attr.own):
 *
 *     TT_GO(worker, NULL, jobs, results, ctx);
 *
 * is tt_go_with with own = {jobs, results, ctx}: each retained now,
 * released when worker ends. TT_WG_GO(wg, fn, arg, objs...) does the
 * same as wg.Go. arg and the objects are evaluated once; the result is
 * tt_go's. */
#define TT_GO(fn, ...)                                                      \
	tt__go_list(NULL, (fn), (void *const[]){__VA_ARGS__},               \
		    sizeof((void *[]){__VA_ARGS__}) / sizeof(void *))
#define TT_WG_GO(wg, fn, ...)                                               \
	tt__go_list((wg), (fn), (void *const[]){__VA_ARGS__},               \
		    sizeof((void *[]){__VA_ARGS__}) / sizeof(void *))
/* For the macros: list[0] is the argument, list[1..n) the objects. */
TT_EXPORT int64_t tt__go_list(tt_waitgroup *wg, tt_func fn,
			      void *const *list, size_t n);

/* Let the other runnable goroutines run (Go's runtime.Gosched). */
TT_EXPORT void tt_yield(void);

/* Go's runtime.Goexit: end the calling goroutine now. On the thread's
 * first goroutine it is an error: that goroutine is the thread itself and
 * ends by returning from its thread function. */
TT_EXPORT void tt_goexit(void) TT_NORETURN;

/* The calling goroutine's id. */
TT_EXPORT int64_t tt_goid(void);

/* Go's runtime.NumGoroutine: goroutines that exist now, in all
 * schedulers, counting each thread's first goroutine. */
TT_EXPORT int64_t tt_num_goroutine(void);

/* How stacks are guarded. */
typedef enum tt_guard_mode {
	TT_GUARD_MADVISE = 1, /* madvise(MADV_GUARD_INSTALL): no extra mappings */
	TT_GUARD_MPROTECT = 2 /* mprotect: two mappings per stack, capped */
} tt_guard_mode;

typedef struct tt_runtime_info {
	tt_guard_mode guard_mode;
	size_t stack_size;       /* default usable stack bytes */
	size_t guard_size;       /* bytes of guard below each stack */
	size_t page_size;
	int64_t goroutines;      /* as tt_num_goroutine() */
	int64_t stacks_mapped;   /* stacks mapped now, in all threads (a
				    thread that ends unmaps its own) */
	int64_t stacks_pooled;   /* of those, free and ready for reuse */
	int64_t guard_budget;    /* mprotect mode: stacks still allowed; else -1 */
} tt_runtime_info;

TT_EXPORT int tt_runtime_info_get(tt_runtime_info *out);

/* Go's runtime.GOMAXPROCS: how many threads run goroutines. P 0 is the
 * process's main thread; the others are worker threads of tether's,
 * started when the first goroutine could go to one. The environment
 * variable TETHER_PROCS sets it at start (1 to 256); unset, it is the
 * number of CPUs the process may run on (its affinity mask at start, as
 * Go's default), and so 1 on a one-CPU machine or under `taskset -c 0`.
 *
 * With more than one, tt_go gives the new goroutine to a thread that has
 * nothing to run and no more goroutines than the caller's (it then does
 * not run at once, and the caller goes on); otherwise the caller starts
 * it, as with one. A goroutine stays on the thread that started it until
 * it ends, so thread-local state it sets stays with it; goroutines on
 * different threads run in parallel, and share memory safely only
 * through channels, the sync objects and atomics, as in Go.
 *
 * tt_runtime_procs_set returns the previous count, or -EINVAL for a count
 * outside 1 to 256. Lowering it stops handing new goroutines to the
 * threads above the count; those already there run on where they are. */
TT_EXPORT int tt_runtime_procs(void);
TT_EXPORT int tt_runtime_procs_set(int n);

#ifdef __cplusplus
}
#endif
#endif
