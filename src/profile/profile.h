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
void tt__buf_hex(tt__buf *b, uintptr_t v); /* 0x1f */
void tt__buf_dec(tt__buf *b, int64_t v);

/* One goroutine, as seen when the snapshot was taken. */
typedef struct tt__gsnap {
	int64_t id;
	int64_t parent_id;   /* 0 for a thread's main goroutine */
	int64_t wait_since;  /* tt_now() at park; 0 if not waiting */
	uintptr_t create_pc; /* return address of the tt_go call; 0 for main */
	const void *wait_obj;
	const char *name;    /* NULL when unnamed */
	/* Its labels, a reference held (tt__snapshot_free drops it); NULL
	 * for none. Records copied elsewhere must retain or clear it. */
	tt__labels *labels;
	uint64_t leak_scope; /* its leak scope (tt_leak_scope_begin), 0: none */
	const uintptr_t *pcs; /* innermost first, into the snapshot's pool */
	uint32_t npcs;
	uint8_t state;       /* enum tt__gstate */
	uint8_t reason;      /* enum tt__wait_reason */
	bool current;        /* the goroutine that took the snapshot */
	bool leaked;         /* proven leaked (g->leak set) */
	/* g->leak: the leak layer's record of the release that proved it
	 * (never freed), so that a check on another thread reports it as
	 * its own thread's would; NULL if not proven. */
	const void *leak;
} tt__gsnap;

typedef struct tt__snapshot {
	tt__gsnap *g; /* sorted by id */
	size_t n;
	int64_t taken_at; /* tt_now() */
	/* private */
	uintptr_t *pool;
	size_t pool_len, pool_cap;
	size_t g_bytes; /* allocated size of g */
	struct tt__names *names; /* copies of the names (incremental only) */
	/* Other threads' snapshots merged into this one (tt__snapshot_take_all):
	 * their stacks and names, which g points into; their own g are
	 * freed. */
	struct tt__snapshot *parts;
	size_t nparts;
} tt__snapshot;

/* Every goroutine of the calling thread's scheduler, unwound. Returns 0 or
 * -ENOMEM. */
int tt__snapshot_take(tt__snapshot *s);
void tt__snapshot_free(tt__snapshot *s);

/* The same snapshot — every goroutine as it was when the call began —
 * taken in slices of at most about TT__SLICE, yielding to the other
 * goroutines between them (snapshot.c says how it stays one instant).
 * The caller must be able to yield: not a signal handler, not a fatal
 * report. Returns 0 or -ENOMEM. */
int tt__snapshot_take_yielding(tt__snapshot *s);

/* Every goroutine of the process: the caller's thread's, as
 * tt__snapshot_take_yielding takes them, and each other thread's, taken
 * the same way on that thread (asked with a post, run by a goroutine
 * there, which leaves itself out) at about the same time, merged by id.
 * A thread that does not start on it soon (outside tether: running C
 * code, or blocked in a call that tether does not see) is left out, and
 * counted in *missing (when not NULL). The caller must be able to
 * yield. Returns 0 or -ENOMEM. */
int tt__snapshot_take_all(tt__snapshot *s, int *missing);

/* tt__snapshot_free for a caller that may yield (one that took the
 * snapshot with tt__snapshot_take_yielding or _take_all): in slices, and
 * the largest arrays freed on a tt_blocking thread. */
void tt__snapshot_free_yielding(tt__snapshot *s);

/* The same without the caller's thread: every other thread's goroutines
 * (none at all when there is no other thread). */
int tt__snapshot_take_others(tt__snapshot *s, int *missing);

/* Work in slices: tt__slice_tick after each item yields (tt_yield) once
 * TT__SLICE has passed since the slice began, so that the work never
 * keeps the other goroutines waiting much longer than that. The clock is
 * read every 8th item. Off (never yields) on a thread without a
 * scheduler. tt__slice_yields counts the yields, for tests. */
#define TT__SLICE (2 * TT_MILLISECOND)
typedef struct tt__slice {
	int64_t until;
	uint32_t k;
	bool on;
} tt__slice;
void tt__slice_start(tt__slice *sl);
void tt__slice_check(tt__slice *sl);
static inline void tt__slice_tick(tt__slice *sl)
{
	if (TT_UNLIKELY((++sl->k & 7) == 0))
		tt__slice_check(sl);
}
extern _Atomic uint64_t tt__slice_yields;

/* One goroutine in runtime.Stack's layout, "goroutine N [reason, M
 * minutes]:" through "created by F in goroutine P" and the blank line
 * after it; `now` is the time the ages are measured against. */
void tt__write_goroutine(tt__buf *b, const tt__gsnap *g, int64_t now);

/* Of pcs[n] (one goroutine's, innermost first), the frames a user sees:
 * sets *first and returns how many from there. The runtime's frames at the
 * top are hidden except the outermost public call (tt_chan_recv, ...);
 * the goroutine entry below the function given to tt_go, and everything
 * below main() on a thread's main goroutine, are cut. */
int tt__stack_visible(const uintptr_t *pcs, int n, bool is_main, int *first);

/* The frames of g->pcs[i] (inlined ones first) as the dumps print them:
 * for the top PC, the runtime's frames inlined into the public call are
 * left out. */
struct tt__frame;
int tt__frames_at(const tt__gsnap *g, uint32_t i, struct tt__frame *out,
		  int max);

/* Whether f was compiled from tether's own sources. */
struct tt__frame;
bool tt__frame_is_runtime(const struct tt__frame *f);

/* Go's text of a goroutine's labels, as debug=1's "# labels: " line has
 * it: {"key":"value", ...}, each quoted as Go's %q, sorted as Go sorts
 * them (by the quoted text), name (when not NULL) as the label "name"
 * hiding one in l. Appended to b. */
void tt__labels_text(tt__buf *b, const char *name, const tt__labels *l);

/* Goroutines grouped by stack (and name and labels), largest group
 * first. */
typedef struct tt__group {
	const tt__gsnap *g; /* the first goroutine of the group */
	size_t count;
} tt__group;
int tt__profile_group(const tt__snapshot *s, bool leaked_only,
		      tt__group **out, size_t *n);

/* debug=0: profile.proto, gzipped, appended to b (pprof.c). */
int tt__profile_proto(tt__buf *b, const tt__snapshot *s, bool leaked_only);

/* The same for a snapshot of other records, with sample type type/count
 * (the threadcreate profile: "threadcreate"). */
int tt__profile_proto_type(tt__buf *b, const tt__snapshot *s,
			   const char *type);

/* The threadcreate profile's records (threads/check.c): one per live OS
 * thread of the process, the caller and the main thread included, in
 * tid order, with id = tid and pcs = the thread's creation stack (return
 * addresses, from the function that called pthread_create outward), as
 * the preload recorded it; npcs is 0 when the creator is unknown (no
 * preload, the main thread, a thread created before the preload was
 * loaded or past its registry's slots). Freed with tt__snapshot_free.
 * Returns 0 or a negative errno value. */
int tt__threads_create_snapshot(tt__snapshot *s);

/* The frame lines of a debug=1 record ("#\t0xPC\tfunc+0xOFF\tfile:line",
 * in tabwriter's columns) for g's PCs, and the blank line after them. */
void tt__write_frames(tt__buf *b, const tt__gsnap *g);

/* The block or mutex profile (`name` "block" or "mutex"; block.c) at
 * debug 0 (profile.proto, gzipped) or 1 (Go's text), appended to out.
 * 0 or -ENOMEM. */
int tt__block_write(const char *name, int debug, tt__buf *out);
/* Go's delta profile (/debug/pprof/block?seconds=N): take the base
 * (the profile `name` now), wait, then write, as gzipped profile.proto,
 * what was added since the base, with its duration. 0 or -ENOMEM. */
typedef struct tt__block_base tt__block_base;
int tt__block_base_take(const char *name, tt__block_base **out);
int tt__block_write_delta(const tt__block_base *b, tt__buf *out);
void tt__block_base_free(tt__block_base *b);
/* Events of new stacks dropped because the table was full; the records
 * (buckets) kept, of both profiles; and the most it keeps (65,536; a
 * test may lower it, guarded by nothing: set it while nothing records). */
uint64_t tt__block_dropped(void);
size_t tt__block_nbuckets(void);
extern size_t tt__block_max_buckets;

/* Every goroutine's stack (or the calling one's) to fd, as debug=2. */
void tt__print_stacks(int fd, bool all);

/* The "state" word a report prints for g: Go's wait reason while waiting,
 * "running" or "runnable" otherwise. */
const char *tt__gsnap_state(const tt__gsnap *g);

#endif
