/* tether — internal contract between the layers.
 *
 * Design notes
 * ------------
 * Layers, bottom to top: arch (the context switch), stack (arenas, guard
 * pages, the pool), sched (goroutines, the run queue, park/ready, the idle
 * path and deadlock detection), time (the timer heap), chan (channels and
 * select). A layer calls only the layers below it; everything a layer
 * exports to the others is declared here with the tt__ prefix.
 *
 * One scheduler per OS thread. All of a scheduler's state lives in one
 * struct tt__sched (reached through a thread-local pointer), so that
 * moving to M:N later changes this layer and not the ones above. Nothing
 * here takes a lock: a scheduler's goroutines never run in parallel, and
 * other threads reach its objects through posts and the locks of shared
 * channels (post.c, chan/chan.h). With several Ps (procs.c), tt_go hands
 * new goroutines to other threads' schedulers; a goroutine stays on the
 * one that started it.
 *
 * Memory layout of one goroutine stack (stack grows down):
 *
 *   high  +----------------------------+
 *         | struct tt__g               |  the goroutine's record lives at
 *         +----------------------------+  the top of its own stack, so a
 *         | first frames: entry, fn,   |  goroutine that parks right away
 *         | tt_chan_recv, park, switch |  touches one page in all
 *         |            ...             |
 *         |            v               |
 *         +----------------------------+  stack_lo
 *         | guard page(s)              |  MADV_GUARD_INSTALL or PROT_NONE
 *   low   +----------------------------+
 *
 * Parked goroutines wait in intrusive queues of tt__waiter records that
 * live in their own records or on their own stacks (Go's sudog), so
 * parking allocates nothing.
 *
 * Shared-stack goroutines (tt_go_attr.shared_stack) are the exception to
 * both pictures. Their record is a heap allocation (pooled, and cut short
 * before errmsg: see tt__g), and they all run on one region per scheduler
 * (s->sh). The goroutine whose frames are in the region is its owner;
 * when another shared-stack goroutine needs the region, the owner's used
 * stack [sp, stack_hi) is copied to a right-sized heap buffer (g->saved)
 * and copied back when it runs again — lazily, so one that resumes while
 * it still owns the region copies nothing. While copied out, the bytes of
 * its stack are at tt__g_stack_addr(g, addr), and nothing may point into
 * the region on its behalf: its waiters live in its record (g->wbuf), and
 * whoever copies an element to or from it goes through tt__g_stack_addr.
 * A switch from the owner to another shared-stack goroutine cannot copy
 * on the region it is leaving, so it passes through the scheduler's
 * helper context (a small stack of its own) that does the copies.
 */
#ifndef TT_INTERNAL_H
#define TT_INTERNAL_H

#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "tether.h"

#if defined(__has_feature)
#if __has_feature(address_sanitizer)
#define TT_ASAN 1
#endif
#endif
#if defined(__SANITIZE_ADDRESS__) && !defined(TT_ASAN)
#define TT_ASAN 1
#endif

/* ThreadSanitizer (a build configured with TETHER_TSAN=ON, which defines
 * TT_TSAN=1; the library itself is not instrumented, the program is).
 * Each goroutine is a TSan fiber, and switching between goroutines does
 * not synchronise them (Go's race detector does not count scheduling as
 * synchronisation either): what orders two goroutines is what tether
 * tells TSan. TT_TSAN_SYNC(p) joins the calling goroutine's history with
 * everything synchronised on p before, both ways (an acquire, then a
 * release): channel operations do it on the channel, sync operations on
 * the object, contexts on the context; a goroutine's start sees what
 * its creator did before tt_go, and whatever ran before on its stack. */
#ifndef TT_TSAN
#define TT_TSAN 0
#endif
/* The record's layout under TSan: the library (TT_TSAN, not instrumented)
 * and the white-box tests that include this header (instrumented, without
 * TT_TSAN: their own calls stay visible to TSan) must agree on it. */
#if TT_TSAN
#define TT_TSAN_LAYOUT 1
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define TT_TSAN_LAYOUT 1
#endif
#endif
#if !defined(TT_TSAN_LAYOUT) && defined(__SANITIZE_THREAD__)
#define TT_TSAN_LAYOUT 1
#endif
#ifndef TT_TSAN_LAYOUT
#define TT_TSAN_LAYOUT 0
#endif
#if TT_TSAN
#include <sanitizer/tsan_interface.h>
#define TT_TSAN_SYNC(p)                                                     \
	do {                                                                \
		__tsan_acquire((void *)(p));                                \
		__tsan_release((void *)(p));                                \
	} while (0)
/* Every goroutine's end releases tt__tsan_ends; TT_TSAN_SEE_ENDS()
 * acquires it: a call that reports goroutines gone (tt_num_goroutine,
 * the leak checks) sees what they did before they ended. */
extern char tt__tsan_ends;
#define TT_TSAN_SEE_ENDS() __tsan_acquire(&tt__tsan_ends)
#else
#define TT_TSAN_SYNC(p) ((void)(p))
#define TT_TSAN_SEE_ENDS() ((void)0)
#endif

/* The library's own memory under TSan. Its code is not instrumented, but
 * the C library calls it makes are: TSan's interceptors would see one
 * goroutine's malloc and another's free of the same scheduler buffer, or
 * two goroutines' epoll_ctl on the poller, as races (they are not: one
 * thread's goroutines take turns). TT_TSAN_QUIET(x) evaluates x with
 * TSan ignoring its accesses and synchronisation; the macros below wrap
 * the calls tether makes on its own memory, and the unwinder, the
 * symbolizer and the poller quiet whole calls (libunwind and libdw
 * allocate and mask signals inside). A program's own calls stay
 * visible: read and write on its descriptors, the values its goroutines
 * touch. */
#if TT_TSAN
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <time.h>
#include <unistd.h>
void __tsan_ignore_thread_begin(void);
void __tsan_ignore_thread_end(void);
void AnnotateIgnoreSyncBegin(const char *file, int line);
void AnnotateIgnoreSyncEnd(const char *file, int line);
static inline void tt__tsan_quiet(void)
{
	__tsan_ignore_thread_begin();
	AnnotateIgnoreSyncBegin(__FILE__, __LINE__);
}
static inline void tt__tsan_loud(void)
{
	AnnotateIgnoreSyncEnd(__FILE__, __LINE__);
	__tsan_ignore_thread_end();
}
#define TT_TSAN_QUIET(x)                                                    \
	__extension__({                                                     \
		tt__tsan_quiet();                                           \
		__typeof__(x) quiet_ = (x);                                 \
		tt__tsan_loud();                                            \
		quiet_;                                                     \
	})
#define TT_TSAN_QUIET_VOID(x)                                               \
	__extension__({                                                     \
		tt__tsan_quiet();                                           \
		x;                                                          \
		tt__tsan_loud();                                            \
	})
#define malloc(...) TT_TSAN_QUIET(malloc(__VA_ARGS__))
#define calloc(...) TT_TSAN_QUIET(calloc(__VA_ARGS__))
#define realloc(...) TT_TSAN_QUIET(realloc(__VA_ARGS__))
#define free(...) TT_TSAN_QUIET_VOID(free(__VA_ARGS__))
#define strdup(...) TT_TSAN_QUIET(strdup(__VA_ARGS__))
#define memcpy(...) TT_TSAN_QUIET(memcpy(__VA_ARGS__))
#define memmove(...) TT_TSAN_QUIET(memmove(__VA_ARGS__))
#define memset(...) TT_TSAN_QUIET(memset(__VA_ARGS__))
#define memcmp(...) TT_TSAN_QUIET(memcmp(__VA_ARGS__))
#define memchr(...) TT_TSAN_QUIET(memchr(__VA_ARGS__))
#define strcmp(...) TT_TSAN_QUIET(strcmp(__VA_ARGS__))
#define strncmp(...) TT_TSAN_QUIET(strncmp(__VA_ARGS__))
#define strlen(...) TT_TSAN_QUIET(strlen(__VA_ARGS__))
#define strchr(...) TT_TSAN_QUIET(strchr(__VA_ARGS__))
#define strrchr(...) TT_TSAN_QUIET(strrchr(__VA_ARGS__))
#define snprintf(...) TT_TSAN_QUIET(snprintf(__VA_ARGS__))
#define vsnprintf(...) TT_TSAN_QUIET(vsnprintf(__VA_ARGS__))
#define qsort(...) TT_TSAN_QUIET_VOID(qsort(__VA_ARGS__))
#define clock_gettime(...) TT_TSAN_QUIET(clock_gettime(__VA_ARGS__))
#define pthread_sigmask(...) TT_TSAN_QUIET(pthread_sigmask(__VA_ARGS__))
#define epoll_create1(...) TT_TSAN_QUIET(epoll_create1(__VA_ARGS__))
#define epoll_ctl(...) TT_TSAN_QUIET(epoll_ctl(__VA_ARGS__))
#define epoll_wait(...) TT_TSAN_QUIET(epoll_wait(__VA_ARGS__))
#define epoll_pwait2(...) TT_TSAN_QUIET(epoll_pwait2(__VA_ARGS__))
#define close(...) TT_TSAN_QUIET(close(__VA_ARGS__))
#else
#define TT_TSAN_QUIET(x) (x)
#define TT_TSAN_QUIET_VOID(x) (x)
#endif

/* The value of the call x, which must not be a tail call: a public call
 * that parks in a helper keeps its frame, so stacks show the name the
 * program used (tt_chan_send, not the helper). */
#define TT_KEEP_FRAME(x)                                                    \
	__extension__({                                                     \
		__typeof__(x) keep_ = (x);                                  \
		__asm__ volatile("");                                       \
		keep_;                                                      \
	})

#define TT_LIKELY(x) __builtin_expect(!!(x), 1)
#define TT_UNLIKELY(x) __builtin_expect(!!(x), 0)
#define TT_HIDDEN __attribute__((visibility("hidden")))

/* Invariant checks stay on in release builds and say where they failed. */
#define TT_ASSERT(cond)                                                     \
	do {                                                                \
		if (TT_UNLIKELY(!(cond)))                                   \
			tt__fatal("assertion failed: %s (%s:%d)", #cond,    \
				  __FILE__, __LINE__);                      \
	} while (0)

void tt__fatal(const char *fmt, ...)
	__attribute__((noreturn, format(printf, 1, 2)));

/* ---- wait reasons and states (Go's strings, one table) ---------------- */

#define TT__WAIT_REASONS(X)                                                 \
	X(NONE, "")                                                         \
	X(CHAN_RECV, "chan receive")                                        \
	X(CHAN_SEND, "chan send")                                           \
	X(SELECT, "select")                                                 \
	X(SELECT_NO_CASES, "select (no cases)")                             \
	X(CHAN_RECV_NIL, "chan receive (nil chan)")                         \
	X(CHAN_SEND_NIL, "chan send (nil chan)")                            \
	X(SLEEP, "sleep")                                                   \
	X(IO_WAIT, "IO wait")                                               \
	X(WG_WAIT, "sync.WaitGroup.Wait")                                   \
	X(MUTEX, "sync.Mutex.Lock")                                         \
	X(RWMUTEX_R, "sync.RWMutex.RLock")                                  \
	X(RWMUTEX_W, "sync.RWMutex.Lock")                                   \
	X(COND, "sync.Cond.Wait")                                           \
	X(SYSCALL, "syscall")

enum tt__wait_reason {
#define TT__X(name, str) TT_WAIT_##name,
	TT__WAIT_REASONS(TT__X)
#undef TT__X
	TT_WAIT__COUNT
};

extern const char *const tt__wait_reason_str[TT_WAIT__COUNT];

enum tt__gstate {
	TT_G_RUNNABLE = 1, /* in the run queue */
	TT_G_RUNNING,      /* the scheduler's current goroutine */
	TT_G_WAITING,      /* parked; reason says on what */
	TT_G_DEAD          /* returned; its stack is going back to the pool */
};

/* ---- arch: the context switch ----------------------------------------- */

/* Saves the callee-saved registers and FP control state on the current
 * stack, stores the stack pointer in *save_sp, switches to new_sp and
 * restores from there. Returns when something switches back. */
void tt__switch(void **save_sp, void *new_sp);

/* Saves the current context like tt__switch, then calls
 * tt__g_direct_entry(g) on the stack ending at stack_top; returns when
 * the current context is resumed (see switch_x86_64.S). */
void tt__spawn_call(void **save_sp, void *stack_top, void *g);
/* Runs a new goroutine; returns the parent's stack pointer only when the
 * goroutine ended without ever switching away. */
void *tt__g_direct_entry(void *g);
/* The entry of a goroutine handed objects (tt_go_attr.own, .wg): runs the
 * goroutine's function, then gives them back. Its frame ends the stacks
 * that dumps show, as tt__g_direct_entry's does. */
void tt__go_owned_entry(void *owned);
/* The entry of a goroutine made runnable without running it (one handed
 * to another thread's scheduler, tt__go_runnable): runs its function when
 * first switched to. Its frame ends the stacks that dumps show, as
 * tt__g_direct_entry's does, so that a goroutine shows the same stack on
 * whichever thread it was born. */
void tt__go_born_entry(void *birth);

/* Restores the context saved at new_sp, abandoning the current one. */
void tt__jump(void *new_sp) __attribute__((noreturn));


/* ---- time ------------------------------------------------------------- */

typedef struct tt__timer tt__timer;
typedef void (*tt__timer_fn)(tt__timer *t, int64_t now);

/* A timer in the scheduler's heap. Embedded in what it wakes (a
 * goroutine's record for sleeps and deadlines, a timer channel for
 * tt_after/tt_timer/tt_ticker), so arming one allocates nothing. */
struct tt__timer {
	/* First: whether it is armed is what waking a goroutine reads
	 * (tt__g keeps it on the line a wake touches). */
	uint32_t heap_ix; /* index in the heap, or TT_TIMER_IDLE */
	int64_t when;     /* absolute deadline, ns */
	int64_t period;   /* > 0: re-arm by this much after firing */
	tt__timer_fn fn;  /* runs on the scheduler; must not block or switch */
	void *ctx;        /* for fn */
};

#define TT_TIMER_IDLE UINT32_MAX

typedef struct tt__timer_heap {
	tt__timer **v; /* binary min-heap on when */
	uint32_t n, cap;
} tt__timer_heap;

/* ---- goroutines -------------------------------------------------------- */

/* A spinning thread's pause between two looks. */
static inline void tt__cpu_relax(void)
{
#if defined(__x86_64__) || defined(__i386__)
	__builtin_ia32_pause();
#elif defined(__aarch64__)
	__asm__ __volatile__("yield" ::: "memory");
#endif
}

typedef struct tt__g tt__g;
typedef struct tt__sched tt__sched;
/* A thread's child of another thread's context h, kept for its waits on
 * h (ctx.c, "mirrors"); used: the thread's clock at its last wait. */
#define TT__CTX_MIRRORS 4
typedef struct tt__ctx_mirror {
	const tt_ctx *h;
	tt_ctx *k;
	uint64_t used;
} tt__ctx_mirror;
typedef struct tt__stack_pool tt__stack_pool;

/* What an inbox holds: a post (wake == NULL; the node is the post's
 * first member), or a goroutine of the owner's that another thread woke
 * (tt__wake_remote): its record's own node, so a wake-up allocates
 * nothing. A goroutine is woken once per park, so its node is never in
 * an inbox twice. */
typedef struct tt__inbox_node {
	struct tt__inbox_node *next;
	tt__g *wake;
} tt__inbox_node;

struct tt__g {
	/* The record is laid out by how often its fields are touched, in
	 * cache lines (a stack's record is 64-byte aligned, at the top of
	 * its stack): waking a goroutine parked on one channel touches only
	 * lines 0 and 2 (its fields below and its waiter), and resuming and
	 * ending it lines 0 to 2, which is what keeps 100,000 goroutines
	 * woken at once (a context's cancel) to a few misses each. */

	/* Line 0. Owned by the scheduler; touched on every switch, park
	 * and wake. */
	void *sp;           /* saved stack pointer while not running */
	tt__g *next;        /* run queue or stack pool link */
	uint8_t state;      /* enum tt__gstate */
	uint8_t reason;     /* enum tt__wait_reason, while WAITING */
	uint8_t is_main;    /* the thread's own flow of control */
	uint8_t timed_out;  /* set by the deadline timer before it readies us */
	uint8_t direct;     /* started by tt__spawn_call and has not switched
			       away since: its parent still waits inside that
			       call, at the head of the run queue */
	/* Shared-stack mode (both 0 for a goroutine with a stack of its
	 * own; the rest of that mode's fields are further down). stack_out:
	 * the used stack [sp, stack_hi) is in saved, not in the region.
	 * proxy, in the same byte: it waits on an object of this thread's
	 * for a goroutine of another's (tt__post_proxy), or takes this
	 * thread's part of a profile: not counted, profiled or leak-checked,
	 * since the goroutine it stands for is. */
	uint8_t shared : 1;
	uint8_t proxy : 1;
	uint8_t stack_out;
	uint8_t io_ready;   /* set by the poller (poll layer) */

	/* While parked on channels: the waiter records (wbuf_inline, or on
	 * this stack) that whoever wakes it must take out of every other
	 * queue. */
	void *wait_list;
	uint32_t wait_n;

	/* Set by whoever readies a goroutine parked in select: the index of
	 * the case that fired, or -1 while none has. */
	int sel_fired;

	/* Sleeps and deadlines; from here to the end of line 1 (its
	 * heap_ix, what a wake reads, is in line 0). */
	tt__timer timer;

	/* Line 1, after the timer. */
	/* Every goroutine of this scheduler, for dumps and leak checks. */
	tt__g *all_prev, *all_next;
	tt__stack_pool *pool; /* NULL for a thread's main goroutine */
	tt__sched *sched;     /* owner */
	/* Stack: usable [stack_lo, stack_hi); guard below stack_lo. */
	char *stack_hi;
	int64_t id;

	/* Line 2: the waiter of a wait on one channel (tt__waiter, or a sync
	 * queue node) for every goroutine, and a shared-stack goroutine's
	 * waiters (wbuf) until a select needs more. */
	_Alignas(16) char wbuf_inline[64];

	/* Cold: start, dumps, leak checks, errors. */
	char *stack_lo;

	/* Entry; valid until the goroutine starts. */
	tt_func fn;
	void *arg;

	/* Who made it and when it last parked. */
	int64_t parent_id;
	void *create_pc;     /* return address of the tt_go call */
	int64_t wait_since;  /* tt_now() at park */
	const void *wait_obj;
	/* The waiter of its waits on one channel (a send, a receive, a
	 * one-case select): a slot of the scheduler's waiter pool, taken
	 * when the record is made and kept with it from one goroutine to the
	 * next (tt__wait1_take); wbuf_inline if the pool had no memory, and
	 * for shared-stack records and the thread's main goroutine. */
	void *wait1;

	/* While parked on a file descriptor (poll layer). */
	int io_fd;
	/* While parked in a select of several cases: set by the one that
	 * ends the wait (a waker, a close, the deadline), 0 until then
	 * (waiter_claim, src/chan/chan.h). In io_fd's padding. */
	_Atomic uint32_t sel_claim;

#if TT_ASAN
	void *asan_fake_stack;
#endif
#if TT_TSAN_LAYOUT
	void *tsan_fiber; /* its TSan fiber; NULL while the record is free */
#endif

	/* While in a context-aware wait (tt_mutex_lock_ctx, tt_read_ctx,
	 * ...): the cancelable context whose cancellation interrupts it, and
	 * the links of that context's list of such goroutines. */
	void *ctx_on;
	tt__g *ctx_prev, *ctx_next;

	/* While in a wait with a deadline: how its waiters leave their
	 * queues if the deadline comes first (tt__wait). */
	bool (*wait_cancel)(tt__g *g);

	/* The leak layer's record once this goroutine is proven leaked (it is
	 * parked on objects no user can reach any more); NULL until then.
	 * Written on its own thread only: a release on another thread posts
	 * it here (proven.c). */
	void *leak;
	/* The leak scope (tt_leak_scope_begin) this goroutine belongs to,
	 * inherited from its creator at tt_go; 0 for none. */
	uint64_t leak_scope;
	/* Its labels (tt_labels_set, tt_go_attr.labels), a reference held;
	 * NULL for none. Next to leak_scope: a start reads both of its
	 * parent. NULL whenever the record is not in use (the end of a
	 * goroutine that had labels clears it), so a start that inherits
	 * none writes nothing. */
	struct tt__labels *labels;

	/* The incremental profile snapshot's mark (src/profile/snapshot.c):
	 * (epoch << 2) | TT__SNAP_RUNNABLE | TT__SNAP_TAKEN for the
	 * snapshot of that epoch; a mark of another epoch means neither. */
	uint32_t snap_mark;
	/* s->births when it joined its thread's list of goroutines: a
	 * snapshot leaves out the ones born after it began. (Not the id:
	 * a goroutine handed to a P has its creator's.) */
	uint64_t birth;
	/* While parked in tt__post_call: the post it waits for the answer
	 * to (a context's cancel interrupts the proxy waiting with it,
	 * tt__post_interrupt). */
	struct tt__post *asking;

	/* Shared-stack mode (all 0 for a goroutine with a stack of its own).
	 * wbuf: where its waiter records go (never on the region);
	 * wbuf_inline until a select needs more. */
	uint32_t saved_cap;
	char *saved;
	void *wbuf;
	size_t wbuf_cap;
	char *errbuf; /* errmsg of a shared-stack record, made on demand */

	const char *name;

	/* Its wake-up, when a goroutine of another thread ends its wait
	 * (tt__wake_remote): in the owner's inbox until it runs. */
	tt__inbox_node wake_node;

	/* tt_last_error() */
	int last_err;
	/* Shared-stack records end here (TT__G_SHARED_SIZE): their message
	 * buffer is a heap allocation, made on the first error (errbuf). */
	char errmsg[256];
};

/* The function g will run, if it has been made and not yet run (see
 * tt__go_spawn); else NULL. Its own thread's to ask. */
static inline void *tt__g_unstarted(const tt__g *g)
{
	return g->fn == tt__go_born_entry && g->state != TT_G_RUNNING
		       ? g->arg
		       : NULL;
}

#if UINTPTR_MAX == UINT64_MAX
_Static_assert(offsetof(tt__g, timer.heap_ix) < 64 &&
		       offsetof(tt__g, all_prev) == 80 &&
		       offsetof(tt__g, wbuf_inline) == 128 &&
		       offsetof(tt__g, stack_lo) == 192,
	       "tt__g: lines 0 to 2 as laid out");
#if !TT_ASAN && !TT_TSAN_LAYOUT
/* A goroutine's end reads its labels: the run queue's prefetch fetches
 * line 4 for it (sched.c, prefetch_runnable). */
_Static_assert(offsetof(tt__g, labels) / 64 == 4, "tt__g: labels on line 4");
#endif
#endif

/* The bytes of a shared-stack goroutine's record; errmsg is not there. */
#define TT__G_SHARED_SIZE offsetof(tt__g, errmsg)

/* The waiter pool (chan.c). A record's waiter for its waits on one
 * channel is a pool slot, not a field of the record: slots of records
 * made one after another are next to each other, so the queue of a
 * channel with many waiters is dense in memory, and a close that wakes
 * 100,000 receivers walks it without waiting at each step for a page walk
 * and a miss, as it would through the records (each at the top of its
 * own stack, a page apart): 165 -> 70 ns per receiver here.
 *
 * Set g->wait1 for a record just made: a pool slot, or g->wbuf_inline if
 * there is no memory for one. */
void tt__wait1_take(tt__sched *s, tt__g *g);
/* Give back g's slot before its record loses its memory (its pages go
 * back to the kernel, or it is freed); all of the pool when the thread
 * ends. */
void tt__wait1_release(tt__sched *s, tt__g *g);
void tt__wait1_thread_exit(tt__sched *s);
/* The thread is ending: its goroutines' waiters leave other threads'
 * channels, and its shared channels are dead from now (chan.c): other
 * threads using one get -EPIPE. */
void tt__chan_thread_exit(tt__sched *s);
/* Posts (and remote wake-ups) pushed to any inbox so far (post.c). */
uint64_t tt__posts_pushed(void);
/* The thread's mirrors of other threads' contexts go (ctx.c). */
void tt__ctx_thread_exit(tt__sched *s);

/* The message buffer of g (tt__err writes it), NULL if a shared-stack
 * goroutine's could not be allocated. */
char *tt__g_errbuf(tt__g *g, bool make);

/* Room for `bytes` of waiter records for g, off its stack if it is a
 * shared-stack goroutine (else NULL: the caller uses its own frame).
 * NULL with the error recorded if it cannot be had. */
void *tt__g_waiters(tt__g *g, size_t bytes);

/* The pool of stacks of one size. Stacks come from arenas (one mmap each)
 * and come back here when their goroutine ends. */
struct tt__stack_pool {
	size_t usable;        /* usable bytes per stack (page multiple) */
	size_t stride;        /* usable + guard */
	tt__g *free_hot;      /* stacks ready to reuse, their pages resident */
	size_t nfree_hot;
	char **free_cold;     /* stacks given back to the kernel (DONTNEED) */
	size_t nfree_cold, cap_cold;
	char *arena_next;     /* next unused stack in the current arena */
	char *arena_end;
	size_t arena_stacks;  /* size of the next arena, in stacks */
	/* Every arena mapped, to unmap them when the thread ends. */
	struct tt__arena {
		char *base;
		size_t bytes;
	} *arenas;
	size_t narenas, cap_arenas;
	size_t ncarved;       /* stacks carved from them (stacks_mapped) */
	size_t nmprotect;     /* of those, guarded with mprotect (budget) */
	/* Under Valgrind: the id of each stack carved, to deregister. */
	unsigned *vg_ids;
	size_t nvg, cap_vg;
	tt__stack_pool *next_pool;
};

/* Parked goroutines counted by wait reason and by when they parked, for
 * the metrics (src/debug/metrics.c): how many wait on what, and how many
 * have waited longer than a minute, ten minutes, an hour, without
 * visiting a single goroutine record.
 *
 * A goroutine is counted, from its park to its wake, in exactly one cell
 * of column `reason` (g->reason): the cell of the period its
 * g->wait_since falls in. Periods ("epochs") are 2^30 ns (about 1.07 s)
 * in the fine ring, which holds the fine epochs (fine_end -
 * TT__WAITS_FINE, fine_end]; older ones are folded, 16 at a time, into
 * the coarse ring's 2^34 ns (about 17.2 s) epochs, which hold (cend -
 * TT__WAITS_COARSE, cend] with cend = fine_end >> 4 (73 minutes); older
 * still, into `old` (all of them more than an hour ago). So the cell of
 * a waiting goroutine is found again from its wait_since alone, and
 * waiting longer than T is, to an epoch's width, a sum of cells.
 *
 * The park path does one increment: the scheduler's stamp (s->stamp, the
 * wait_since of every park) only grows, and each time it moves into a
 * new fine epoch tt__waits_stamp makes that epoch fine_end (folding what
 * falls out), so a park always counts in row `cur` = fine[fine_end % 64].
 * A wake from the same epoch is as cheap; an older one finds its cell in
 * tt__waits_cell_slow.
 *
 * Written only by the scheduler's thread; the cells are relaxed atomics
 * so that other threads may read them (a reader racing a fold may see a
 * goroutine in two cells or in none, for that instant). */
#define TT__WAITS_FINE_SHIFT 30
#define TT__WAITS_FINE 64
#define TT__WAITS_COARSE_SHIFT 34
#define TT__WAITS_COARSE 256
/* A row per epoch, one cell per reason, 16 wide. */
#define TT__WAITS_ROW 16
/* Proxies (tt__g.proxy) park in a row of their own past the reasons,
 * which the sums never read: the goroutine a proxy stands for is counted
 * under its reason on its own thread. */
#define TT__WAITS_PROXY TT_WAIT__COUNT
#define TT__WAITS_NROWS (TT_WAIT__COUNT + 1)
_Static_assert(TT__WAITS_NROWS <= TT__WAITS_ROW, "a row holds every reason");
typedef _Atomic uint32_t tt__waits_row[TT__WAITS_ROW];
typedef struct tt__waits {
	_Atomic int64_t fine_end;                /* newest fine epoch */
	tt__waits_row *cur;                      /* &fine[fine_end % 64] */
	tt__waits_row fine[TT__WAITS_FINE];      /* by fine epoch % 64 */
	tt__waits_row coarse[TT__WAITS_COARSE];  /* by coarse epoch % 256 */
	tt__waits_row old;                       /* older than both rings */
} tt__waits;

/* Make fine_end `e` (> fine_end, or the first call), folding the epochs
 * that fall out. */
void tt__waits_advance(tt__waits *w, int64_t e);

/* The cell of column `reason` that counts a goroutine parked at `since`
 * (any epoch up to fine_end). */
_Atomic uint32_t *tt__waits_cell_slow(tt__waits *w, int64_t since,
				      unsigned reason);

static inline void tt__waits_add(_Atomic uint32_t *c, uint32_t d)
{
	atomic_store_explicit(c, atomic_load_explicit(c, memory_order_relaxed) + d,
			      memory_order_relaxed);
}

/* The scheduler's stamp is now `stamp` (it never goes back). */
static inline void tt__waits_stamp(tt__waits *w, int64_t stamp)
{
	if (TT_UNLIKELY((stamp >> TT__WAITS_FINE_SHIFT) >
			atomic_load_explicit(&w->fine_end, memory_order_relaxed) ||
			w->cur == NULL))
		tt__waits_advance(w, stamp >> TT__WAITS_FINE_SHIFT);
}

/* A goroutine parks on `reason`, its wait_since the scheduler's stamp
 * (so in epoch fine_end); or wakes from a park at `since`. */
static inline void tt__waits_park(tt__waits *w, unsigned reason)
{
	tt__waits_add(&(*w->cur)[reason], 1);
}
static inline void tt__waits_wake(tt__waits *w, int64_t since, unsigned reason)
{
	_Atomic uint32_t *c =
		TT_LIKELY((since >> TT__WAITS_FINE_SHIFT) ==
			  atomic_load_explicit(&w->fine_end, memory_order_relaxed))
			? &(*w->cur)[reason]
			: tt__waits_cell_slow(w, since, reason);
	tt__waits_add(c, (uint32_t)-1);
}
/* The row g counts in while it waits (its g->reason, or a proxy's). */
#define tt__waits_row_of(g) \
	((g)->proxy ? (unsigned)TT__WAITS_PROXY : (unsigned)(g)->reason)

/* Of row `reason`, the goroutines parked before `cutoff`: every one
 * counted parked before it, and none missed that parked more than an
 * epoch (2^30 ns within the fine ring's reach, 2^34 ns beyond) before
 * it — for a cutoff no more than an hour before the newest park's stamp
 * (older ones are told apart no further: `old` is counted only for a
 * cutoff after all of it). With reason TT_WAIT__COUNT, of every row. */
uint64_t tt__waits_before(const tt__waits *w, unsigned reason, int64_t cutoff);
/* All of it in one pass: total[r] += the goroutines waiting on r, and
 * before[k][r] += those parked before cutoffs[k] (as above), k < n. */
void tt__waits_sums(const tt__waits *w, int n, const int64_t *cutoffs,
		    uint64_t (*before)[TT_WAIT__COUNT], uint64_t *total);

/* The run queue: a ring of goroutine pointers (a deque: timers put
 * their goroutines at the front). An array, not a list through the
 * records: the scheduler can read the goroutines several places ahead of
 * the one it runs and prefetch them, where a list makes each record's
 * miss wait for the one before (100,000 goroutines woken at once ran at
 * one memory latency each). head and tail count up and wrap; the ring
 * holds tail - head goroutines in mask + 1 places (a power of two, made
 * with the scheduler). Its room is reserved when a goroutine is made
 * (tt__runq_reserve), so a push never fails: every goroutine in it is a
 * live goroutine of this scheduler, each at most once. */
typedef struct tt__runq {
	tt__g **v;
	uint32_t head, tail;
	uint32_t mask;
	uint32_t front; /* during tt__timers_run: goroutines its timers put at
			   the front, in reverse order until the run ends */
} tt__runq;

/* ---- handles (sched/obj.c) ------------------------------------------ */

/* A handle is an object's address with its slot's generation in the top
 * 16 bits. The object starts with a tt__obj whose self is, while the
 * object is live, the handle plus the object's kind in the low bits
 * (handles are 16-byte aligned): so one compare tells that a handle is
 * live and of the expected kind. See obj.c. */
#define TT__OBJ_TAG_SHIFT 48
#define TT__OBJ_ADDR_MASK ((UINT64_C(1) << TT__OBJ_TAG_SHIFT) - 1)
#define TT__OBJ_GEN_MAX 0xffffu
#define TT__OBJ_CLASSES 21
#define TT__OBJ_MAX_SIZE 2048

enum tt__obj_kind {
	TT__OBJ_CHAN = 0, /* channels, timers, tickers */
	TT__OBJ_SYNC = 2, /* WaitGroup, Mutex, RWMutex, Once, Cond */
	TT__OBJ_CTX = 4,  /* contexts */
	TT__OBJ_CTX_AFTER = 6, /* tt_ctx_after_func's stop handles */
	TT__OBJ_FREE = 1  /* or'ed in when the slot is freed */
};

typedef struct tt__obj {
	const void *self; /* live: handle + kind; free: that, | FREE */
} tt__obj;

/* The object a handle names, live or not. h must not be NULL. */
static inline void *tt__obj_ptr(const void *h)
{
	return (void *)((uintptr_t)h & TT__OBJ_ADDR_MASK);
}

/* Whether h names a live object of the given kind (every stale handle,
 * and every handle of another kind, fails this). h must not be NULL. */
static inline bool tt__obj_is(const void *h, enum tt__obj_kind kind)
{
	const tt__obj *o = tt__obj_ptr(h);
	return (uintptr_t)o->self == (uintptr_t)h + (uintptr_t)kind;
}

/* The handle of the live object o. */
static inline void *tt__obj_handle(const void *o)
{
	return (void *)((uintptr_t)((const tt__obj *)o)->self &
			~(uintptr_t)15);
}

/* A slot of at least size (<= TT__OBJ_MAX_SIZE) bytes, not zeroed, with
 * self set for an object of kind; NULL when out of memory (nothing
 * recorded). */
void *tt__obj_alloc(tt__sched *s, size_t size, enum tt__obj_kind kind);
/* Free p, allocated with the same size; its handle goes stale. */
void tt__obj_free(tt__sched *s, void *p, size_t size);
/* The ending thread's free slots go to the global lists. */
void tt__obj_thread_exit(tt__sched *s);
/* tt_obj_retain/release of a sync object (sync.c), any of its kinds. */
int tt__sync_retain(void *h);
int tt__sync_release(void *h);
/* tt_wg_done, then tt_wg_release, as one step on wg's thread (sync.c). */
int tt__wg_done_release(tt_waitgroup *wg);

struct tt__sched {
	tt__g *current;      /* the running goroutine */
	tt__runq runq;       /* runnable goroutines, FIFO */
	tt__g *zombie;       /* ended; its stack is freed after the switch
				(by zombie_fn); TT__SNAP_MARK(s) instead
				while a profile snapshot is being taken */
	void (*zombie_fn)(tt__sched *s, tt__g *z); /* after a switch when
				zombie is set: tt__stack_free, or
				tt__snap_after_switch while a snapshot is
				being taken */
	void *snap_live;      /* the incremental snapshot being taken, or
				NULL (src/profile/snapshot.c) */
	uint32_t snap_epoch;  /* epoch of the last incremental snapshot */
	tt__timer_heap timers;
	uint32_t timer_check; /* switches since the timers were last checked */
	/* Operations other threads ask of this thread's objects, and their
	 * answers (post.c): a stack pushed by any thread, taken whole by
	 * this one; TT__INBOX_CLOSED once the thread has ended. */
	_Atomic(struct tt__inbox_node *) inbox;
	_Atomic int sleep;    /* how this thread sleeps (post.c: TT__SLEEP_*),
				 swapped to TT__SLEEP_AWAKE by a poster */
	_Atomic uint32_t pushers; /* other threads inside a push to it: its
				     end waits for them (tt__inbox_close) */
	int wakefd;           /* eventfd in epfd a post writes to wake the
				 poller, or -1 */
	struct tt__post *held; /* posts this thread's proxies wait with */
	bool spin;            /* a post came or went since the last sleep:
				 spin a little before the next (post.c) */
	uint64_t rng;         /* per-scheduler PRNG (wyrand) */
	_Atomic uint64_t nparks; /* parks so far, to pace clock reads, and
				    for the metrics (with nswitches);
				    written by this thread only */
	uint64_t park_mark;   /* the park that next stamps the clock and
				 checks the block profile (0: the next
				 one); this thread's alone */
	int64_t stamp;        /* a recent tt_now(), for "waiting since" */
	_Atomic int64_t ngoroutines; /* live goroutines; written by this
					thread only, read by any */
	_Atomic int64_t nuser;    /* of them, those not proxies (tt__g.proxy):
				     what tt_num_goroutine counts */
	int64_t goid_next, goid_end; /* this thread's block of ids */
	uint64_t births; /* goroutines that joined s->all, ever */
	tt__sched *next_sched;       /* in the registry of schedulers */
	tt__g *all;           /* list head of every goroutine */
	tt__stack_pool *pools;
	int64_t io_waiters;   /* parked on file descriptors (poll layer) */
	int epfd;             /* the poller's epoll descriptor, or -1 */
	struct tt__fdslot *fds; /* per descriptor: who waits (poll layer) */
	size_t nfds;
	void *altstack;       /* sigaltstack for the overflow report */
	struct tt__shared_region {
		char *lo, *hi;   /* usable region; guard below lo */
		tt__g *owner;    /* whose frames are in the region, or NULL */
		tt__g *next;     /* for the helper: whom to switch to */
		tt__g *helper;   /* the helper context (a stack-pool stack) */
		void *helper_sp; /* its saved stack pointer */
		void *init_sp;   /* the helper's creator, while it starts */
		tt__g *free;     /* pooled shared-stack records */
		size_t nfree;
		unsigned vg_id;  /* the region's Valgrind stack id */
		bool mprotected; /* its guard came from the mprotect budget */
#if TT_ASAN
		void *helper_fake;
#endif
	} sh;
	void *obj_free[TT__OBJ_CLASSES]; /* free object slots per size
					    class (obj.c) */
	int64_t nobjs;        /* its live objects: a thread that ends with
				 some keeps its scheduler from reuse, so
				 that their posts find it ended (sched.c) */
	int64_t asking;       /* its goroutines parked in tt__post_call: a
				 thread that ends with some keeps its
				 scheduler likewise, for their answers */
	/* Its shared channels (chan.h), marked dead at its end. */
	struct tt_chan **shared_v;
	uint32_t nshared, shared_cap;
	/* Its mirrors of other threads' contexts (ctx.c): a child of each,
	 * linked once, that its context-aware waits arm on. */
	tt__ctx_mirror ctx_mirrors[TT__CTX_MIRRORS];
	uint64_t ctx_mirror_clock;
	char *obj_carve, *obj_carve_end; /* unused rest of its chunk */
	/* The waiter pool (g->wait1, chan.c): 64-byte slots carved from
	 * 4 KiB chunks (listed through each chunk's first slot), and the
	 * slots given back by records whose pages went back to the kernel. */
	void *w1_free;
	char *w1_carve, *w1_end;
	void *w1_chunks;
	/* For the metrics: yields and exits that switch to another goroutine
	 * (parks are nparks; single writer, read by any thread), and the
	 * parked goroutines by reason and age (see tt__waits). */
	_Atomic uint64_t nswitches;
	tt__waits waits;
	/* As one of the process's Ps (procs.c): its place in the table of
	 * Ps plus one (0: not a P); whether its thread is one of tether's
	 * worker threads, whose own flow is no goroutine; whether it has
	 * nothing to run and may be handed a new goroutine (set in its idle
	 * wait); whether a hand-off to it is on its way. */
	int proc_ix1;
	bool worker;
	_Atomic uint8_t p_idle, p_handoff;
	/* Goroutines tt_go queued on this P unstarted, when no other P was
	 * idle (procs.c): a FIFO under spawn_lock (a spin lock, 0 when
	 * free), spawn_n long. This P makes them as it runs out of others
	 * (and one every 64 parks, so they never starve); an idle P takes
	 * half of them. */
	_Atomic uint8_t spawn_lock;
	_Atomic uint32_t spawn_n;
	struct tt__spawn_rec *spawn_head, *spawn_tail;
	tt__g main_g;         /* the thread's own flow of control */
};

/* ---- posts: other threads' operations on this thread's objects (post.c)
 *
 * Objects belong to the scheduler of the thread that made them, and only
 * that thread touches them. Another thread — a goroutine of another
 * scheduler, or a plain pthread (which has a scheduler of its own, made on
 * first use, whose first goroutine is the thread) — asks the owner with a
 * post: it pushes the post onto the owner's inbox, wakes the owner if it
 * sleeps, and parks its goroutine until the answer comes back to its own
 * inbox. The owner runs post->run at its next park or idle wait. run does
 * what cannot block at once and answers (tt__post_answer); what must wait
 * it hands to a goroutine of the owner's (tt__post_proxy) that waits with
 * the asker's deadline and then answers. */
typedef struct tt__post tt__post;
struct tt__post {
	tt__inbox_node node;
	/* On the owner: the operation. NULL once answered. */
	void (*run)(tt__sched *s, tt__post *p);
	/* Called instead of run when the owner's thread ends first (its
	 * inbox closed with p in it); may be NULL. */
	void (*dropped)(tt__post *p);
	tt__sched *from;   /* the asker's scheduler */
	tt__sched *to;     /* the owner, once asked (tt__post_call) */
	tt__g *g;          /* its goroutine, parked until the answer */
	const void *h;     /* the object's handle */
	const char *op;    /* the public call, for messages */
	tt__post *hprev, *hnext; /* in the owner's s->held, while a proxy
				    waits with it */
	int64_t deadline;  /* the asker's (TT_FOREVER, TT_TRY, or a time) */
	int64_t arg;       /* the operation's argument (a WaitGroup delta) */
	int64_t value;     /* what it gives back (a length, a count) */
	int result;        /* its return value: 0 or -errno */
	int panic;         /* nonzero: the asker panics with panic_msg */
	bool ok;           /* a receive's ok */
	bool answered;
	bool misuse;       /* result is a misuse (tt__misuse) */
	bool quiet;        /* sent: a failure is nobody's to hear of */
	bool held;         /* in the owner's s->held */
	uint64_t seq;      /* unique per tt__post_call, for interrupts */
	tt__g *proxy_g;    /* while held: the proxy goroutine */
	char msg[200];     /* the message of result (tt__err), or panic_msg */
	char name[80];     /* the proxy goroutine's name */
	size_t size;       /* bytes of val */
	_Alignas(16) unsigned char val[]; /* the element sent or received */
};
#define TT__INBOX_CLOSED ((tt__inbox_node *)(uintptr_t)1)
enum { TT__SLEEP_AWAKE, TT__SLEEP_TIMER, TT__SLEEP_POLL, TT__SLEEP_IDLE };

/* A post with room for size bytes of val, zeroed; NULL with -ENOMEM
 * recorded. */
tt__post *tt__post_new(size_t size, const char *op);
/* Send p to owner and park the calling goroutine (shown waiting for
 * reason on obj) until it is answered. 0, or -EPIPE (recorded) if the
 * owner's thread has ended. The caller then reads p and frees it with
 * tt__post_done, which records p's error or panics with its message. */
int tt__post_call(tt__sched *s, tt__sched *owner, tt__post *p, int reason,
		  const void *obj);
/* g is parked in tt__post_call: if the owner has handed its post to a
 * proxy that waits with a deadline, end that wait now, as the deadline
 * would (a context's cancel, tt__wait_interrupt's counterpart). Does
 * nothing once the answer is on its way. */
void tt__post_interrupt(tt__g *g);
/* The answer's return value (its error recorded for the asker), after a
 * panic if p says so; frees p. */
int tt__post_done(tt__post *p);
/* Push p to owner and return at once: nobody waits for the answer (a
 * release). 0, or -EPIPE (recorded, p freed) if owner's thread ended. An
 * error the owner meets is printed; a panic is the owner's. */
int tt__post_send(tt__sched *owner, tt__post *p);
/* On the owner: p is done; send it back. */
void tt__post_answer(tt__post *p);
/* The same with an error: result err, message fmt. */
void tt__post_fail(tt__post *p, int err, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
/* The same with a panic of the asker's, with msg. */
void tt__post_panic(tt__post *p, const char *msg);
/* On the owner, inside run: start fn(p) as a goroutine (named after what
 * and the asker) that answers p when it is done (fn calls
 * tt__post_answer). false, with the error recorded, if it cannot. */
bool tt__post_proxy(tt__sched *s, tt__post *p, tt_func fn, const char *what);
/* From another thread: end the wait of g, a goroutine of another
 * scheduler whose waiter the caller took out of its queue (under the
 * queue's lock), as tt__wait_wake would on g's own thread. The caller
 * pins g's scheduler under that lock (tt__wake_pin), so that g's thread,
 * if it is ending, frees nothing of g's until the wake-up is pushed. */
static inline void tt__wake_pin(tt__g *g)
{
	atomic_fetch_add_explicit(&g->sched->pushers, 1, memory_order_relaxed);
}
void tt__wake_remote(tt__g *g);
/* Run what the inbox holds (the owner's idle wait and parks). */
void tt__inbox_run(tt__sched *s);
static inline bool tt__inbox_pending(tt__sched *s)
{
	return atomic_load_explicit(&s->inbox, memory_order_relaxed) != NULL;
}
/* Sleep until a post, or the deadline (absolute tt_now time, -1: none).
 * idle: nothing else can wake this thread (no timers, no descriptors):
 * the caller reports the deadlock when this returns false, which it does
 * only when every thread of the process is so asleep. */
bool tt__inbox_sleep(tt__sched *s, int64_t deadline, bool idle);
/* Set s->sleep for a wait in the poller: false if a post came first
 * (do not sleep); the poller calls tt__inbox_woken after. */
bool tt__inbox_poll_begin(tt__sched *s);
void tt__inbox_poll_end(tt__sched *s);
/* The thread is ending: answer what waits with -EPIPE and refuse more;
 * then wait for the pushes already under way (s->pushers). */
void tt__inbox_close(tt__sched *s);
/* Threads of tether's own (the blocking pool, the profiler's reader),
 * which never post: deadlock detection counts them asleep. */
void tt__helper_thread(int delta);
/* Start fn(arg) on a detached thread that begins with every signal
 * blocked (it sets its own mask, if any other). 0, or pthread_create's
 * error. */
int tt__thread_start(void *(*fn)(void *), void *arg);
/* The process's threads (/proc), or -1 if they cannot be counted. */
long tt__proc_threads(void);
/* Whether every thread but the caller sleeps where only a post could
 * wake it, with no post in flight (the deadlock detector's test, for a
 * caller that stays awake): what they hold cannot change unless the
 * caller posts to them. */
bool tt__others_asleep(void);

/* ---- Ps: the process's runtime threads (procs.c) ----------------------
 *
 * TETHER_PROCS (tt_runtime_procs_set) threads run goroutines: the
 * process's main thread (P 0) and tether's worker threads. tt_go hands a
 * new goroutine to a P that has nothing to run, and no more goroutines
 * than the caller's, instead of running it itself; with none, it queues
 * it unstarted on the caller's P, where an idle P may take it
 * (tt__procs_handoff, tt__procs_steal); once started, a goroutine stays
 * on its P's thread. */

/* What a new goroutine is started with, on whichever thread starts it. */
typedef struct tt__spawn {
	tt_func fn;
	void *arg;
	const char *name;
	int64_t id;           /* 0: a new one */
	int64_t parent_id;
	void *pc;             /* the creation site */
	uint64_t leak_scope;
	struct tt__labels *labels; /* a reference, given to the goroutine */
	size_t stack_size;    /* 0: the default */
	bool budget_held;     /* a guard budget unit for its stack */
	bool proxy;           /* tt__g.proxy */
	tt__g **made;         /* if not NULL: set to the goroutine, before
				 it first runs */
} tt__spawn;

/* Make sp's goroutine runnable (at the back of the run queue) from
 * anywhere, a callback or an idle wait included: its id, or the error,
 * recorded. */
int64_t tt__go_spawn(tt__sched *s, const tt__spawn *sp);

/* Nonzero while more than one P may run goroutines. */
extern _Atomic int tt__procs_spread;
/* Goroutines handed to a P that has not yet made them (tt_num_goroutine
 * counts them: tt_go has returned their ids). */
extern _Atomic int64_t tt__procs_inflight;
/* Hand-offs that a P has begun and ended making (run_handoff, procs.c):
 * while one is being made its goroutine is counted both in the P's
 * goroutines and in tt__procs_inflight, so tt_num_goroutine sums the two
 * only over a stretch in which none began. */
extern _Atomic uint64_t tt__procs_making, tt__procs_made;
/* Hand sp (id unset) to another P, or queue it unstarted on the
 * caller's P for whichever P gets to it first: its id, or 0 when the
 * caller should start it itself. */
int64_t tt__procs_handoff(tt__sched *s, tt__spawn *sp);
/* Make up to max of the goroutines queued unstarted on s's P, runnable at
 * the back of its run queue: whether it made any. */
bool tt__procs_make_queued(tt__sched *s, uint32_t max);
/* An idle P: take half of another P's unstarted goroutines, make one of
 * them and queue the rest here. Whether it found any. */
bool tt__procs_steal(tt__sched *s);
/* A scheduler has been made: the process's main thread's is P 0. */
void tt__procs_sched_born(tt__sched *s);
/* Its thread is ending: no P any more. */
void tt__procs_sched_gone(tt__sched *s);
/* Whether tid is one of tether's worker threads. */
bool tt__procs_owns_tid(int tid);
/* Whether this thread is one of tether's worker threads (true from
 * before its scheduler is made). */
bool tt__procs_worker_here(void);
/* The scheduler of P 0, or NULL. */
tt__sched *tt__procs_main(void);
/* A worker's thread: run goroutines for ever (sched.c). */
void tt__sched_work(tt__sched *s) __attribute__((noreturn));
/* The id a new goroutine of s gets. */
int64_t tt__new_goid(tt__sched *s);

/* fn(s, arg) for every scheduler whose thread lives, with the registry
 * locked: fn must not make a scheduler or end a thread, and reads another
 * thread's scheduler only through its atomic fields (ngoroutines,
 * nswitches, waits). *orphaned: goroutines of threads that have ended. */
/* The schedulers of the threads alive now but the caller's, up to cap of
 * them into v; their number. A scheduler is never freed (one whose thread
 * ended is kept, or reused by a new thread): a post to it is safe, and
 * fails with -EPIPE once its thread has ended. */
size_t tt__sched_others(tt__sched *self, tt__sched **v, size_t cap);

/* The calling thread's cache of stack shapes (tt__trace_g, trace layer)
 * is freed: for the thread's end. */
void tt__trace_thread_exit(void);
void tt__sched_each(void (*fn)(const tt__sched *s, void *arg), void *arg,
		    int64_t *orphaned);

/* The calling thread's scheduler checks the block profile's rate at its
 * next park (others do within 64 parks: sched.c, park_paced). */
void tt__sched_park_recheck(void) TT_HIDDEN;

/* While an incremental snapshot is being taken (s->snap_live set),
 * s->zombie holds this mark whenever no goroutine has just ended, so that
 * every goroutine that resumes passes through s->zombie_fn
 * (tt__snap_after_switch) before it returns from its switch: its stack is
 * recorded there, as it was when the snapshot began, before it changes.
 * The mark is never dereferenced. */
#define TT__SNAP_MARK(s) ((tt__g *)(void *)&(s)->snap_live)
#define TT__SNAP_RUNNABLE 1u
#define TT__SNAP_TAKEN 2u
void tt__snap_after_switch(tt__sched *s, tt__g *z);

/* The calling thread's scheduler, made on first use. */
extern __thread tt__sched *tt__tls_sched
	__attribute__((tls_model("initial-exec")));
tt__sched *tt__sched_init(void);

static inline tt__sched *tt__sched_get(void)
{
	tt__sched *s = tt__tls_sched;
	if (TT_UNLIKELY(s == NULL))
		s = tt__sched_init();
	return s;
}

static inline tt__g *tt__current(void)
{
	return tt__sched_get()->current;
}

/* Where the stack byte at `addr` of the parked goroutine g can be read
 * (or written) now. A goroutine with a stack of its own keeps it where it
 * is while parked, so this is addr itself; a shared-stack goroutine whose
 * frames were copied out answers with the copy for any address in
 * [g->sp, g->stack_hi), and with addr for anything else (the heap, other
 * stacks). The unwinder reads parked stacks through this, and channels
 * copy elements to and from parked goroutines through it. */
static inline const void *tt__g_stack_addr(const tt__g *g, const void *addr)
{
	if (TT_UNLIKELY(g->stack_out)) {
		const char *a = addr;
		if (a >= (const char *)g->sp && a < g->stack_hi)
			return g->saved + (a - (const char *)g->sp);
	}
	return addr;
}

/* Park the current goroutine (reason, on obj) until tt__ready. The
 * caller must have queued it somewhere that will ready it, or armed its
 * timer. */
void tt__park(tt__sched *s, int reason, const void *obj);

/* The run queue (tt__runq). */
static inline uint32_t runq_len(const tt__sched *s)
{
	return s->runq.tail - s->runq.head;
}

/* The goroutine i places from the front; i < runq_len(s). */
static inline tt__g *runq_at(const tt__sched *s, uint32_t i)
{
	return s->runq.v[(s->runq.head + i) & s->runq.mask];
}

static inline void runq_push_back(tt__sched *s, tt__g *g)
{
	tt__runq *q = &s->runq;
	q->v[q->tail & q->mask] = g;
	q->tail++;
}

static inline void runq_push_front(tt__sched *s, tt__g *g)
{
	tt__runq *q = &s->runq;
	q->head--;
	q->v[q->head & q->mask] = g;
}

static inline tt__g *runq_pop(tt__sched *s)
{
	tt__runq *q = &s->runq;
	if (q->head == q->tail)
		return NULL;
	return q->v[q->head++ & q->mask];
}

/* Room in the run queue for every live goroutine and one more, before
 * making one: 0, or -ENOMEM with the error recorded. */
int tt__runq_grow(tt__sched *s);
static inline int tt__runq_reserve(tt__sched *s)
{
	int64_t n = atomic_load_explicit(&s->ngoroutines,
					 memory_order_relaxed);
	if (TT_UNLIKELY((uint64_t)n >= s->runq.mask)) /* n + 2 > mask + 1 */
		return tt__runq_grow(s);
	return 0;
}

/* Make a parked goroutine runnable (at the back of the run queue). */
static inline void tt__ready(tt__sched *s, tt__g *g)
{
	TT_ASSERT(g->state == TT_G_WAITING);
	g->state = TT_G_RUNNABLE;
	tt__waits_wake(&s->waits, g->wait_since, tt__waits_row_of(g));
	runq_push_back(s, g);
}

/* Make a parked goroutine runnable ahead of the rest: at the front of the
 * run queue, so the next switch runs it (Go's runnext). For a goroutine
 * whose own timer woke it (a sleep, a deadline): without this, a 1 ms
 * sleeper under N yielding goroutines would wait for all N to run once
 * more before it.
 *
 * It cannot starve the others: timers fire only in tt_yield, at every
 * 64th park or exit (and at every 8th once a timer is due:
 * maybe_run_timers) and in the idle wait, so a woken goroutine goes ahead
 * once per firing. One that keeps re-arming a short timer parks each
 * time, and its park takes the run queue's head — some other goroutine —
 * except at most at one park in 8, when the timers run there
 * and it may come straight back; it is readied again only at the next
 * yield, park or exit of someone else. (A sleep already due is a plain
 * tt_yield, to the back.) K such goroutines at once run a
 * round each between two of the others' turns: the rest move on, K times
 * slower, never stop.
 *
 * Goroutines woken by one tt__timers_run keep their deadline order at
 * the front: each goes in front of the one before (s->runq.front counts
 * them), and the run reverses them when it ends.
 *
 * Precondition: g is WAITING. While s->current is a direct child (its
 * parent waiting at the head of the run queue, where tt__g_direct_entry
 * looks for it) the front is the parent's, and g goes to the back. */
static inline void tt__ready_next(tt__sched *s, tt__g *g)
{
	TT_ASSERT(g->state == TT_G_WAITING);
	g->state = TT_G_RUNNABLE;
	tt__waits_wake(&s->waits, g->wait_since, tt__waits_row_of(g));
	if (TT_UNLIKELY(s->current->direct)) {
		runq_push_back(s, g);
	} else {
		runq_push_front(s, g);
		s->runq.front++;
	}
}


/* ---- stack -------------------------------------------------------------- */

/* A stack of at least `usable` bytes, its tt__g at the top zeroed except
 * for the stack fields. NULL with the error recorded on failure. */
tt__g *tt__stack_alloc(tt__sched *s, size_t usable);
void tt__stack_free(tt__sched *s, tt__g *g);
/* Return idle stacks' pages to the kernel, at most max stacks' worth;
 * returns how many. */
size_t tt__stack_trim(tt__sched *s, size_t max);
size_t tt__stack_default(void);
/* A goroutine handed to another P (procs.c) must not fail to get a stack
 * there, when tt_go has returned: in the mprotect guard mode its tt_go
 * takes a unit of the guard budget first (1; 0 in the other mode; -1,
 * none left: tt_go starts it itself, and fails as it would with one P),
 * which the P's tt__stack_alloc_held uses for a stack it must carve, or
 * gives back (tt__stack_budget_give, also for a hand-off not made). */
int tt__stack_budget_take(void);
void tt__stack_budget_give(void);
tt__g *tt__stack_alloc_held(tt__sched *s, size_t usable);
/* Shared-stack goroutines: a record whose stack is the scheduler's shared
 * region (made, with its guard and the helper, on first use); NULL with
 * the error recorded on failure or if size exceeds the region. Freed by
 * tt__stack_free like any other. */
tt__g *tt__shared_alloc(tt__sched *s, size_t size);
/* Copy the region's owner out (if any, and not g), then g in (if it is
 * out); g becomes the owner. Runs on a stack other than the region. */
void tt__shared_take(tt__sched *s, tt__g *g);
/* Copy the owner (parked, its sp saved) out of the region. */
void tt__shared_evict(tt__sched *s);
/* Make the save buffer of shared-stack goroutine g hold len bytes; 0, or
 * -ENOMEM with the error recorded. tt__shared_fail_reserve, when set,
 * makes every call that would check fail (a test hook). */
int tt__shared_reserve(tt__g *g, size_t len);
extern int tt__shared_fail_reserve;
/* Bytes the frames of a switch add below the frame that reserves (the
 * stack a switch saves goes that deep): measured at 32 to 48 on x86-64,
 * with and without AddressSanitizer; aarch64's switch saves 176 bytes of
 * registers instead of 56. A reservation that falls short is made up at
 * the copy, where only running out of memory is fatal. */
#if defined(__x86_64__)
#define TT__SWITCH_SLACK 256
#else
#define TT__SWITCH_SLACK 512
#endif
/* Make the helper context; on a stack other than the region. */
int tt__shared_helper_init(tt__sched *s);
/* Whether TETHER_SHARED_STACK asks for shared stacks by default. */
bool tt__shared_default(void);
void tt__stack_info(tt__sched *s, tt_runtime_info *out);
/* Guard the stack-overflow signal on this thread (sigaltstack). */
void tt__stack_thread_init(tt__sched *s);
/* The thread of s is ending: unmap every arena of its pools, the shared
 * region, and free the shared-stack records and the signal stack.
 * Preconditions: called on s's thread, from its main goroutine, with no
 * other goroutine of s ever to run again, and after whatever had to be
 * read from their stacks (tt__leak_thread_exit) was read. */
void tt__stack_thread_exit(tt__sched *s);

/* ---- time --------------------------------------------------------------- */

void tt__timer_add(tt__sched *s, tt__timer *t);
bool tt__timer_del(tt__sched *s, tt__timer *t); /* true if it was armed */
/* Run every timer due at `now`; returns how many fired. */
int tt__timers_run(tt__sched *s, int64_t now);
static inline bool tt__timer_armed(const tt__timer *t)
{
	return t->heap_ix != TT_TIMER_IDLE;
}

/* ---- waiting: the one wait primitive (sched/wait.c) --------------------
 *
 * Every blocking operation parks the same way. It queues its waiters
 * where a waker finds them (a channel's queues, a sync object's queue, a
 * descriptor's slot), then calls tt__wait, with the deadline and the
 * cancel function of its kind of waiter. A waker ends the wait with
 * tt__wait_wake (after taking the waiters out itself). A deadline that
 * passes first calls cancel(g), which takes g's waiters back out of their
 * queues, and the wait returns true; so does a context's cancel, which
 * ends the wait early with tt__wait_interrupt (ctx.c). One cancel
 * function per kind: channel waiters (tt__chan_cancel, chan.c), a sync
 * object's queue node (sync.c), a descriptor's slot and its optional
 * channel waiter (poll.c); NULL for a sleep, which queues nothing. This is
 * the one place that knows the deadline's timer protocol: the timer is
 * the goroutine's own (g->timer), armed only for a wait with a deadline,
 * and disarmed by whichever of the waker and the deadline comes first. */
/* cancel returns false if a waker on another thread took the waiters
 * first (its wake-up is on its way: the deadline then does nothing). */
typedef bool (*tt__wait_cancel_fn)(tt__g *g);

/* tt__wait with a deadline (not TT_FOREVER, > 0), out of line. */
bool tt__wait_until(tt__sched *s, int reason, const void *obj,
		    int64_t deadline, tt__wait_cancel_fn cancel);

/* Park the current goroutine g (s->current, passed because the caller
 * has it at hand), whose waiters are queued, on `reason` (`obj`: what it
 * waits on, for dumps and leak checks) until woken or until `deadline`
 * (TT_FOREVER: none). Returns true if the deadline (or a context's
 * cancel) ended it, its waiters then taken out by cancel. */
static inline __attribute__((always_inline)) bool
tt__wait(tt__sched *s, tt__g *g, int reason, const void *obj,
	 int64_t deadline, tt__wait_cancel_fn cancel)
{
	if (TT_LIKELY(deadline == TT_FOREVER)) {
		g->timed_out = 0;
		tt__park(s, reason, obj);
		return false;
	}
	return tt__wait_until(s, reason, obj, deadline, cancel);
}

/* The waker's half: g's wait ends (its deadline disarmed) and g becomes
 * runnable. Its waiters are out of their queues already. */
static inline __attribute__((always_inline)) void
tt__wait_wake(tt__sched *s, tt__g *g)
{
	if (tt__timer_armed(&g->timer))
		tt__timer_del(s, &g->timer);
	tt__ready(s, g);
}

/* End g's wait now, as its deadline would, if g is parked in a wait with
 * one (its waiters taken out, the wait returning true); false if not
 * (no deadline, or a waker came first). */
bool tt__wait_interrupt(tt__sched *s, tt__g *g);

/* Start fn(arg) as a new goroutine that is runnable (at the back of the
 * run queue) but has not run: for callers that may not switch — timer
 * callbacks, a context's cancel walk. name is shown in dumps (not
 * copied); parent_id and pc are recorded as its creator and creation
 * site, leak_scope as its leak scope (the creator's). Its id, or a negative errno (-ENOMEM, -EAGAIN: no stack) with
 * the error recorded. */
int64_t tt__go_runnable(tt__sched *s, tt_func fn, void *arg,
			const char *name, int64_t parent_id, void *pc,
			uint64_t leak_scope);

/* ---- labels (sched/labels.c) ------------------------------------------ */

/* A goroutine's labels: an immutable set of key=value strings, shared by
 * every goroutine (and profile record) holding a reference, freed when the
 * last reference goes. One allocation: the header, kv[0..n), then the
 * strings. Invariants: n >= 1 (no labels is a NULL set), kv sorted by key
 * with strcmp, keys distinct and non-empty; refs counts the goroutines
 * whose g->labels it is plus every other holder (snapshot records, CPU
 * profile samples). bucket and hash never change. */
typedef struct tt__label {
	const char *key, *value;
} tt__label;
typedef struct tt__labels {
	_Atomic uint32_t refs;
	uint32_t n;
	/* The tt_metrics_label_key bucket its goroutines count in, or -1. */
	int32_t bucket;
	uint64_t hash; /* of every key and value, for grouping */
	tt__label kv[];
} tt__labels;

/* Take a reference to l (NULL: nothing). Async-signal-safe. */
static inline void tt__labels_retain(tt__labels *l)
{
	if (l)
		atomic_fetch_add_explicit(&l->refs, 1, memory_order_relaxed);
}
/* Drop a reference to l (NULL: nothing), freeing it with the last. Not
 * from a signal handler (it may call free). */
void tt__labels_release(tt__labels *l);

/* The running goroutine's labels, no reference taken: valid while that
 * goroutine runs and does not change them. NULL on a thread without a
 * scheduler. Async-signal-safe (reads the thread's scheduler only): a
 * SIGPROF handler may call it and tt__labels_retain what it gets (the
 * goroutine it interrupted cannot drop its reference meanwhile), to be
 * released later outside the handler. A profile encodes a set by putting
 * it in a tt__gsnap's labels (src/profile/profile.h): tt__pprof_write_type
 * writes each as Sample.label pairs and counts records with different
 * sets apart. */
static inline tt__labels *tt__labels_of_current(void)
{
	tt__sched *s = tt__tls_sched;
	return s ? s->current->labels : NULL;
}

/* The value of key in l, or NULL. */
const char *tt__labels_get(const tt__labels *l, const char *key);
/* Same labels (both may be NULL). */
bool tt__labels_equal(const tt__labels *a, const tt__labels *b);

/* The set of base's labels merged with the key, value, ... list `list`
 * (ended by NULL; the list's keys winning), in *out with a reference for
 * the caller: base itself (retained) when the list changes nothing,
 * NULL when the result is empty. 0, or -EINVAL (bad list) / -ENOMEM with
 * the error recorded, naming op. */
int tt__labels_make(tt__labels *base, const char *const *list,
		    const char *op, tt__labels **out);

/* A new goroutine g gets l, with the caller's reference, or when l is
 * NULL its parent's labels, with a new one. Counted for the metrics. g
 * then ends through the scheduler's g_exit, which drops them (g->direct
 * is cleared: a goroutine gets labels only here and in relabel). */
void tt__labels_g_start(tt__g *g, const tt__g *parent, tt__labels *l);
/* g (with g->labels set) ends: uncounted, released, g->labels NULL. */
void tt__labels_g_exit(tt__g *g);
/* The thread of s is ending (sched.c's teardown): every goroutine of it
 * drops its labels. */
void tt__labels_thread_exit(tt__sched *s);

/* Label sets that exist now (made and not yet freed), in every thread. */
int64_t tt__labels_live(void);

/* /metrics' goroutines by label value (tt_metrics_label_key): the key
 * into key[TT_LABEL_KEY_MAX + 1], and each bucket's value and count of
 * goroutines into out[TT_METRICS_LABEL_VALUES + 1]; returns the number of
 * buckets, 0 when counting is off. Reads counters only. */
typedef struct tt__label_count {
	char value[TT_METRICS_LABEL_VALUE_MAX + 1];
	int64_t n;
} tt__label_count;
size_t tt__labels_counts(char *key, tt__label_count *out);

/* ---- poll ---------------------------------------------------------------- */

/* Wait up to timeout_ns (-1: forever, 0: just look) for descriptors and
 * ready their goroutines; returns how many it readied. */
int tt__poll(tt__sched *s, int64_t timeout_ns);

/* tt_fd_wait(fd, events, TT_FOREVER) for the public call fn, parked with
 * wait reason `reason` instead of IO wait. */
int tt__fd_wait_reason(const char *fn, int fd, int events, uint8_t reason);

/* ---- blocking calls (sched/blocking.c) ------------------------------------ */

/* Whether tid is one of the blocking-call pool's threads (the pthread
 * leak check leaves them out). */
bool tt__blocking_owns_tid(int tid);

/* ---- ctx ----------------------------------------------------------------- */

/* A cancelable context made by `made_by` (a public call) at create_pc was
 * freed by a release at release_pc without ever being cancelled: Go's
 * lost cancel. Recorded for the checker (leak/check.c), printed at once
 * under TETHER_LEAK=report or abort. */
void tt__leak_lost_cancel(const char *made_by, const void *create_pc,
			  const void *release_pc);
/* Context-aware waits (ctx layer): begin checks ctx (its error if it is
 * done) and, for a cancelable context, puts the calling goroutine on its
 * list so that cancellation fires the goroutine's timer at once, and sets
 * *deadline for the wrapped call (TT_FOREVER when ctx can never be done).
 * end takes it off again and turns the wrapped call's -ETIMEDOUT into the
 * context's error. */
int tt__ctx_wait_begin(tt_ctx *c, int64_t *deadline, tt_ctx **armed,
		       const char *op);
int64_t tt__ctx_wait_end(tt_ctx *armed, int64_t r);
/* A cancelable child of parent (its handle in *out) with a stop hook:
 * stop(data, false) runs once, the first time tt_ctx_cancel is called on
 * it (after it is cancelled) — not when it is cancelled any other way
 * (by its parent, its deadline or tt__ctx_cancel_quiet); stop(data,
 * true) runs when it is freed. tt_ctx_string prints label_pre, its
 * parent's name, label_post (strings not copied; NULL: as WithCancel).
 * Errors as tt_ctx_with_cancel, op naming the call. */
int tt__ctx_with_stop(tt_ctx **out, tt_ctx *parent,
		      void (*stop)(void *, bool),
		      void *data, const char *label_pre,
		      const char *label_post, const char *op);
/* Cancel the cancelable context h with -ECANCELED without running its
 * stop hook. 0, or the error of a bad h. */
int tt__ctx_cancel_quiet(tt_ctx *h);

/* ---- leak ---------------------------------------------------------------- */

/* Goroutines proven leaked so far, in every thread (as
 * tt_leak_proven_count). */
uint64_t tt__leak_proven_all(void);

/* The two calls a lower layer makes up into the leak layer, only at a
 * release that leaves goroutines parked on an object nobody can reach, on
 * the object's owner: the last reference to channel c is gone while
 * c->parked > 0 (the caller holds c's lock if c is shared; the release
 * record is returned); or goroutine g is parked on `obj` (a sync object,
 * `what` its type name, as "WaitGroup") whose last reference is gone
 * (*site is the release record the calls for one object share; it starts
 * NULL). Each goroutine that nothing can wake any more (no deadline, and
 * in a select every channel gone) is marked proven leaked (g->leak) and
 * reported as TETHER_LEAK says: one of this thread's at once, a proxy's
 * asker or a waiter of another thread's on that thread (proven.c). */
struct tt_chan;
void *tt__leak_chan_released(tt__sched *s, struct tt_chan *c);
void tt__leak_obj_released(tt__sched *s, tt__g *g, const void *obj,
			   const char *what, void **site);
/* After the calls for one release, with no lock held: wait (a bounded
 * time) for the reports other threads write, then abort if
 * TETHER_LEAK=abort and any was proven. */
void tt__leak_release_done(void *site);
/* The thread of s is ending, from its main goroutine; every other
 * goroutine on s->all can never run again. Record what the leak tools
 * report of each (their stacks are about to be unmapped). */
void tt__leak_thread_exit(tt__sched *s);

/* ---- block and mutex profiles (profile/block.c) ------------------------ */

/* tt_set_block_profile_rate's rate in ns (0: off) and
 * tt_set_mutex_profile_fraction's rate (0: off). Read relaxed on the
 * park path: a change is seen by parks that come after it. */
extern _Atomic int64_t tt__block_rate TT_HIDDEN;
extern _Atomic int64_t tt__mutex_rate TT_HIDDEN;

/* The wait reasons that are block events, as Go counts them: channels,
 * select, sync. Not sleeps, not descriptors, not the waits that never
 * end (nil channels, a select with no cases). */
#define TT__BLOCK_REASONS                                                   \
	((1u << TT_WAIT_CHAN_RECV) | (1u << TT_WAIT_CHAN_SEND) |            \
	 (1u << TT_WAIT_SELECT) | (1u << TT_WAIT_WG_WAIT) |                 \
	 (1u << TT_WAIT_MUTEX) | (1u << TT_WAIT_RWMUTEX_R) |                \
	 (1u << TT_WAIT_RWMUTEX_W) | (1u << TT_WAIT_COND))

/* The calling goroutine, parked at t0 (tt_now()) on a block event's
 * reason, runs again: sample and record the event with its stack. */
void tt__block_event(int64_t t0);
/* The calling goroutine hands a contended lock to a waiter that waited
 * `delay` ns: sample and record it with the caller's stack. */
void tt__mutex_event(int64_t delay);
/* An unlock asked of the object's thread by another one: the unlocker's
 * stack, taken on its own thread (tt__mutex_site_take: how many pcs, 0
 * while the mutex profile is off), and set by the owner around the
 * hand-over, so that the event records it, as Go records the unlocker's
 * stack. */
int tt__mutex_site_take(uintptr_t *pcs, int max);
extern _Thread_local const uintptr_t *tt__mutex_site;
extern _Thread_local int tt__mutex_site_n;

/* ---- errors and fatal reports -------------------------------------------- */

/* Record err and a printf-style message as the current goroutine's last
 * error; returns err, so `return tt__err(-EINVAL, "...")` reads well. */
int tt__err(int err, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
/* The same for a misuse that loses data or synchronisation when the
 * program ignores it (an element size that does not match, a handle that
 * is not live): in strict mode (tt_set_strict, TETHER_STRICT=1) it is a
 * panic with this message instead. */
int tt__misuse(int err, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

/* Go's panics and fatal errors: print and abort (panic) or exit(2)
 * (fatal_exit). Never return. */
void tt__panic(const char *fmt, ...)
	__attribute__((noreturn, format(printf, 1, 2)));
void tt__fatal(const char *fmt, ...)
	__attribute__((noreturn, format(printf, 1, 2)));
/* Print the stacks of the calling goroutine (and later, of all). */
void tt__print_goroutine_header(int fd, tt__g *g);
void tt__print_traceback(int fd);

/* Every other thread's goroutines to stderr, one thread after another,
 * each printed by its own thread when it next takes its posts; waits up
 * to `wait` ns for each, without parking (a handler or a fatal report
 * may call it), and stops at one that does not answer. */
void tt__print_other_threads(tt__sched *s, int64_t wait);
/* "fatal error: <head>" and every goroutine of the process, s's first,
 * then exit(2) — Go's report for deadlocks. */
void tt__fatal_report(const char *head, tt__sched *s)
	__attribute__((noreturn));

/* Async-signal-safe output helpers. */
int tt__write_all(int fd, const char *buf, size_t n); /* 0 or -errno */
/* Decimal digits of v into buf (at least 21 bytes); returns the length. */
size_t tt__utoa(char *buf, uint64_t v);

/* A cheap clock (CLOCK_MONOTONIC_COARSE, a few ms resolution) for
 * "waiting since" stamps taken on every park. */
int64_t tt__coarse_now(void);

/* ---- random ---------------------------------------------------------------- */

static inline uint64_t tt__rand(tt__sched *s)
{
	/* wyrand: one multiply, passes BigCrush; plenty for select. */
	s->rng += UINT64_C(0xa0761d6478bd642f);
	__uint128_t m = (__uint128_t)s->rng *
			(s->rng ^ UINT64_C(0xe7037ed1a0b428db));
	return (uint64_t)(m >> 64) ^ (uint64_t)m;
}

/* A uniform integer in [0, n), n > 0 (Lemire's multiply-shift). */
static inline uint32_t tt__rand_n(tt__sched *s, uint32_t n)
{
	return (uint32_t)(((tt__rand(s) & 0xffffffffu) * (uint64_t)n) >> 32);
}

#endif
