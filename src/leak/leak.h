/* tether — what the leak layer's files share. */
#ifndef TT_LEAK_INTERNAL_H
#define TT_LEAK_INTERNAL_H

#include "internal.h"
#include "profile/profile.h"
#include "trace/trace.h"
#include "tether/leak.h"

/* Whether TETHER_LEAK asks for reports as things happen (report, abort). */
bool tt__leak_reporting(void);

/* A goroutine of another thread a release proved, until the release posts
 * it to its thread. */
typedef struct tt__leak_remote {
	tt__sched *to; /* its thread */
	tt__g *g;
	int64_t id;
	uint32_t seq;  /* the order it was found in */
} tt__leak_remote;

/* The release that proved goroutines leaked: one record per release, shared
 * by every goroutine it proved (g->leak points here). Never freed: the
 * goroutines it describes never run again. */
typedef struct tt__leak_rec {
	const void *obj;       /* the released object (its address) */
	const void *handle;    /* its handle, as the program printed it */
	const char *what;      /* "chan", "sync.WaitGroup", ... */
	int64_t released_by;   /* goroutine that dropped the last reference */
	int64_t released_parent; /* its creator and where, for the releasing */
	uintptr_t released_pc;   /* stack (0 for a thread's main goroutine) */
	const char *site_file; /* the release site: first frame outside */
	int site_line;         /* tether, or the innermost one */
	const char *site_func;
	uint32_t proven;       /* goroutines it proved */
	tt__snapshot *snap;    /* while reporting the release: the stacks */
	/* Reports of goroutines of other threads it proved, asked of their
	 * threads and not yet written (see proven.c). */
	_Atomic uint32_t pending;
	/* While the release goes on: the goroutines of other threads it
	 * proved, posted when it is done (tt__leak_release_done). */
	tt__leak_remote *remote;
	uint32_t nremote, cap_remote;
	int npcs;
	uintptr_t pcs[TT__TRACE_MAX]; /* the releasing stack, innermost
					  first */
} tt__leak_rec;

/* A goroutine left parked (or runnable) by a thread that ended
 * (exited.c). Immutable once listed; never freed. */
typedef struct tt__orphan {
	tt__gsnap snap;            /* as seen when its thread ended; pcs and
				      name point into this record */
	uint64_t leak_scope;       /* g->leak_scope */
	const tt__leak_rec *leak;  /* g->leak */
	int tid;                   /* the thread that ended */
	int64_t exited_at;         /* tt_now() then */
	struct tt__orphan *next;   /* the next older one */
	uintptr_t pcs[];
} tt__orphan;

/* The newest orphan (each links to the next older one), and how many
 * there are (if n). */
const tt__orphan *tt__orphans_head(size_t *n);

/* "released at file:line" text of a record into b. */
void tt__leak_write_site(tt__buf *b, const tt__leak_rec *r);

#endif
