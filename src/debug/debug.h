/* tether — debug layer: what the server and its pages share. */
#ifndef TT_DEBUG_DEBUG_H
#define TT_DEBUG_DEBUG_H

#include "profile/profile.h"

/* The page's memory of earlier visits: the group counts of the last
 * TT__HIST_KEEP snapshots the page was built from, each keyed by the
 * group's stack (the hash of its PCs) and state (the hash of its state
 * word), at most TT__HIST_ENTRIES entries each (the largest groups; the
 * rest are only counted in `untracked`). One per server, touched only
 * by goroutines of the server's scheduler, in stretches that do not
 * yield.
 *
 * Invariant: snapshots last-n+1 .. last are kept, snapshot id in
 * s[id % TT__HIST_KEEP]; ids start at 1; n <= TT__HIST_KEEP. */
#define TT__HIST_KEEP 8
#define TT__HIST_ENTRIES 256

typedef struct tt__hist_entry {
	uint64_t stack;  /* hash of the group's PCs */
	uint32_t state;  /* hash of the state word ("chan receive") */
	uint32_t count;
} tt__hist_entry;

typedef struct tt__hist_snap {
	uint64_t id;
	int64_t taken_at;   /* tt_now() */
	uint64_t total;     /* goroutines */
	uint64_t untracked; /* goroutines of groups past TT__HIST_ENTRIES */
	uint32_t n;         /* entries, sorted by (stack, state) */
	tt__hist_entry e[TT__HIST_ENTRIES];
} tt__hist_snap;

typedef struct tt__page_hist {
	uint64_t last; /* newest id; 0: none yet */
	unsigned n;    /* kept */
	tt__hist_snap s[TT__HIST_KEEP];
} tt__page_hist;

/* What the page's query asks (parsed by tt__page_opts_parse). */
typedef struct tt__page_opts {
	int64_t min_wait; /* ns; default one minute */
	uint64_t since;   /* compare with this snapshot; 0: the last one */
	uint64_t diff;    /* nonzero: the diff view against this snapshot */
} tt__page_opts;

/* q[n] (the query, may be NULL) into *o. Returns 0, or -EINVAL with a
 * message for the 400 in why[whysz] (a bad min_wait, since or diff). */
int tt__page_opts_parse(const char *q, size_t n, tt__page_opts *o,
			char *why, size_t whysz);

/* The grouped page ("/"): every goroutine of the calling thread's
 * scheduler grouped by stack, with marks for proven leaks and for groups
 * that grew since an earlier snapshot of *hist (allocated here on first
 * use; the caller frees it), and a flame graph; the page's own snapshot
 * is added to *hist. With o->diff, the diff view instead (nothing is
 * added). Returns 0, -ENOMEM (b->err says the same), or -EINVAL with
 * why[] set when o->since or o->diff names a snapshot not kept. */
int tt__debug_page(tt__buf *b, const tt__page_opts *o, tt__page_hist **hist,
		   char *why, size_t whysz);

/* The diff view as text (include/tether/debug.h has the layout):
 * snapshot `id` of *hist against now. 0, -ENOMEM, or -EINVAL with why[]
 * when id is not kept. */
int tt__debug_diff_text(tt__buf *b, uint64_t id, tt__page_hist **hist,
			char *why, size_t whysz);

/* The /debug/pprof/ index, with counts. */
int tt__debug_index(tt__buf *b);

/* s[n] into b with &, <, >, " and ' escaped; bytes that are not printable
 * ASCII, UTF-8 or not, are written as-is except controls, which become
 * U+FFFD (so nothing a symbol or file name holds can open a tag). */
void tt__html_escape(tt__buf *b, const char *s, size_t n);

/* /metrics (metrics.c): the figures, gathered from counters only (no
 * goroutine record, no stack is visited), then written in Prometheus's
 * text format 0.0.4. Unknown figures are negative and left out. */
#define TT__METRICS_NTHRESH 3
/* Waiting longer than 1 min, 10 min, 1 h. */
extern const int64_t tt__metrics_thresholds[TT__METRICS_NTHRESH];

typedef struct tt__metrics {
	int64_t goroutines;  /* tt_num_goroutine() */
	int64_t threads;     /* OS threads of the process */
	double cpu_seconds;  /* user + system */
	double start_time;   /* seconds since the epoch */
	int64_t rss, vsize;  /* bytes */
	int64_t open_fds;
	int64_t max_fds;     /* INT64_MAX: unlimited */
	/* Over the schedulers of running threads: */
	int64_t running, runnable;
	int64_t waiting[TT_WAIT__COUNT];
	int64_t waiting_longer[TT__METRICS_NTHRESH][TT_WAIT__COUNT];
	uint64_t switches;
	int64_t schedulers;
	int64_t orphaned;    /* goroutines of threads that ended */
	uint64_t proven;     /* proven leaked, every thread */
	int64_t stacks_mapped, stacks_pooled, guard_budget;
	bool pthreads;       /* the preload's registry is in use: */
	int64_t pthreads_live, pthreads_unjoined;
	uint64_t pthreads_untracked;
} tt__metrics;

/* Gather; ages are measured at `now` (tt_now()). Returns 0. */
int tt__metrics_gather(tt__metrics *m, int64_t now);
/* The exposition of m into b; 0 or -ENOMEM. */
int tt__metrics_write(tt__buf *b, const tt__metrics *m);
/* Both, at tt_now(): the body of /metrics. */
int tt__debug_metrics(tt__buf *b);
/* The reason label of wait reason r: the dumps' word ("chan receive"),
 * "waiting" for none. */
const char *tt__metrics_reason(unsigned r);
/* s escaped as a label value (\\, \", \n) or as HELP text (\\,
 * \n). */
void tt__prom_label_value(tt__buf *b, const char *s);
void tt__prom_help_text(tt__buf *b, const char *s);

/* /debug/pprof/cmdline: the program's arguments separated by NUL bytes
 * (Go's), from /proc/self/cmdline. 0 or -errno. */
int tt__debug_cmdline(tt__buf *b);

#endif
