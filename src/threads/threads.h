/* tether — threads layer: the registry of threads created through the
 * interposed pthread_create (libtether-preload.so), and its reader.
 *
 * Design notes
 *
 * The registry is a fixed array of slots in the preload's .bss, exported
 * under one versioned name (tt__threads_registry_v1). The check in
 * libtether finds it with dlsym(RTLD_DEFAULT), so a program that links
 * libtether statically and runs under the preload reads the preload's
 * registry; without the preload it reads an empty local one. Both are
 * built from this header in one tree: the name carries the version of
 * the layout.
 *
 * Invariants (every field below is guarded by `lock` unless said
 * otherwise):
 *   - a slot is FREE, LIVE (created; tid is 0 until the thread runs its
 *     first instruction of the entry wrapper) or EXITED (returned or
 *     called pthread_exit, not yet joined);
 *   - a detached thread's slot is freed when it exits; a joinable one's
 *     when pthread_join (or a successful try/timed/clock join) returns,
 *     or at pthread_detach if it has already exited;
 *   - `gen` grows each time a slot is taken, so a join that found its
 *     slot before blocking frees that slot only if it was not reused.
 * Nothing here is touched from a signal handler; the lock is never held
 * across fork (pthread_atfork takes it in prepare). */
#ifndef TT_THREADS_INTERNAL_H
#define TT_THREADS_INTERNAL_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#define TT__THR_SLOTS 4096
#define TT__THR_PCS 24
#define TT__THR_MAGIC 0x74746872u /* "tthr" */

enum { TT__THR_FREE, TT__THR_LIVE, TT__THR_EXITED };

typedef struct tt__thr {
	pthread_t handle;
	void *(*fn)(void *);      /* the entry function */
	uintptr_t pcs[TT__THR_PCS]; /* creation stack: return addresses */
	int npcs;
	int parent_tid;           /* the thread that called pthread_create */
	_Atomic int tid;          /* 0 until the thread runs */
	int state;                /* TT__THR_* */
	bool detached;
	uint32_t gen;
	char name[16];            /* comm at exit (EXITED slots) */
} tt__thr;

typedef struct tt__thr_registry {
	uint32_t magic;
	pthread_mutex_t lock;
	int hw;                   /* slots [0, hw) may be in use */
	uint64_t untracked;       /* creations with no slot left */
	tt__thr slot[TT__THR_SLOTS];
} tt__thr_registry;

/* The registry in use (the preload's, or an empty one). */
tt__thr_registry *tt__thr_registry_get(void);
/* Resets the capture state in a forked child. */
void tt__thr_fork_child(void);
/* Whether it is the preload's. */
bool tt__thr_tracking(void);

#endif
