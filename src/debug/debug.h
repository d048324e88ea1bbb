/* tether — debug layer: what the server and its pages share. */
#ifndef TT_DEBUG_DEBUG_H
#define TT_DEBUG_DEBUG_H

#include "profile/profile.h"

/* The grouped page ("/"): every goroutine of the calling thread's
 * scheduler grouped by stack, with a flame graph. Returns 0 or -ENOMEM
 * (b->err says the same). */
int tt__debug_page(tt__buf *b);

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
