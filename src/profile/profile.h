/* tether — profile layer: a snapshot of every goroutine, and Go's formats.
 *
 * A snapshot copies, for each goroutine, what the dumps print (id, state,
 * wait reason, waiting since, creator, creation PC, name) and its PCs, so
 * that writing text or protobuf afterwards runs with nothing locked and
 * the goroutines free to run. */
#ifndef TT_PROFILE_H
#define TT_PROFILE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "internal.h"

/* A growable byte buffer (the writers' sink). All functions keep b usable
 * on allocation failure and set b->err = -ENOMEM instead. */
typedef struct tt__buf {
	char *data;
	size_t len, cap;
	int err;
} tt__buf;
void tt__buf_put(tt__buf *b, const void *p, size_t n);
void tt__buf_puts(tt__buf *b, const char *s);
void tt__buf_printf(tt__buf *b, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
void tt__buf_free(tt__buf *b);

/* One goroutine, as seen when the snapshot was taken. */
typedef struct tt__gsnap {
	int64_t id;
	int64_t parent_id;   /* 0 for a thread's main goroutine */
	int64_t wait_since;  /* tt_now() at park; 0 if not waiting */
	uintptr_t create_pc; /* return address of the tt_go call; 0 for main */
	const void *wait_obj;
	const char *name;    /* NULL when unnamed */
	const uintptr_t *pcs; /* innermost first, into the snapshot's pool */
	uint32_t npcs;
	uint8_t state;       /* enum tt__gstate */
	uint8_t reason;      /* enum tt__wait_reason */
	bool current;        /* the goroutine that took the snapshot */
	bool leaked;         /* proven leaked (g->leak set) */
} tt__gsnap;

typedef struct tt__snapshot {
	tt__gsnap *g; /* sorted by id */
	size_t n;
	int64_t taken_at; /* tt_now() */
	/* private */
	uintptr_t *pool;
	size_t pool_len, pool_cap;
	char *names;
} tt__snapshot;

/* Every goroutine of the calling thread's scheduler, unwound. Returns 0 or
 * -ENOMEM. */
int tt__snapshot_take(tt__snapshot *s);
void tt__snapshot_free(tt__snapshot *s);

/* One goroutine in runtime.Stack's layout, "goroutine N [reason, M
 * minutes]:" through "created by F in goroutine P" and the blank line
 * after it; `now` is the time the ages are measured against. */
void tt__write_goroutine(tt__buf *b, const tt__gsnap *g, int64_t now);
/* The same without the blank line (runtime.Stack separates goroutines
 * with one and does not end with one). */
void tt__write_goroutine_body(tt__buf *b, const tt__gsnap *g, int64_t now);

/* One goroutine of the calling thread's scheduler, unwound into pcs
 * (TT__TRACE_MAX entries; o->pcs points there), with nothing allocated:
 * for the fatal report and the SIGQUIT dump. */
void tt__gsnap_fill(tt__gsnap *o, const tt__g *g, uintptr_t *pcs);

/* Every goroutine of s (the running one first, then by id), or the
 * calling goroutine alone, written to fd in runtime.Stack's layout from a
 * static buffer: for the fatal reports, which must not depend on
 * allocating. Not reentrant. */
void tt__dump_goroutines_fd(int fd, tt__sched *s);
void tt__dump_current_fd(int fd);

/* The "state" word a report prints for g: Go's wait reason while waiting,
 * "running" or "runnable" otherwise. */
const char *tt__gsnap_state(const tt__gsnap *g);

#endif
