/* tether — the block and mutex profiles (Go's runtime.SetBlockProfileRate,
 * runtime.SetMutexProfileFraction, /debug/pprof/block and /mutex).
 *
 * Design notes
 * ------------
 * Recording. The scheduler times a park when tt__block_rate is not 0 and
 * the reason is a block event's (internal.h, TT__BLOCK_REASONS): its park
 * path is then park_profiled (sched.c), which calls tt__block_event when
 * the goroutine runs again. The rate is read where the park path paces
 * its clock reads (park_paced: one park in 64 while the profile is off,
 * so the check adds nothing to a park); setting it sends the calling
 * thread's scheduler there at its next park, and every other within 64. The sync layer times lock waits when
 * tt__mutex_rate is not 0 and calls tt__mutex_event on the hand-over.
 * Both sample as Go does (blocksampled, mutexevent), then take the
 * stack with the fast unwinder (tt__trace_fast: return addresses, no
 * symbols) and add the event to its bucket. Symbols are looked up only
 * when a profile is written.
 *
 * Storage. One table for the process: buckets keyed by (kind, PCs), each
 * with its count and total delay, chained from NHEADS heads by hash and
 * never freed, at most MAX_BUCKETS of them (an event of a new stack past
 * that is dropped and counted in `dropped`). Every scheduler's
 * goroutines record into it, so it is guarded by `mu`, a pthread mutex:
 * it is held only to find or add a bucket and add to it, never across a
 * park, an allocation of more than a bucket, or a symbol lookup. The
 * writer copies what it needs under `mu` and works on the copy.
 *
 * The PCs kept are the raw stack from the recording call outward, the
 * runtime's own frames included; the writer cuts them to what a user
 * sees (tt__stack_visible: from the outermost public call, tt_chan_recv
 * and the like, to the goroutine's function), then merges records whose
 * cut stacks are equal. */
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "profile/pprof.h"
#include "profile/profile.h"
#include "trace/trace.h"

_Atomic int64_t tt__block_rate;
_Atomic int64_t tt__mutex_rate;

enum { K_BLOCK, K_MUTEX };

/* Raw PCs kept per event: Go keeps 32 frames (maxStack); the runtime's
 * frames on top of them come on top of that. */
#define RAW_PCS 48
#define NHEADS 4096
#define MAX_BUCKETS 65536

typedef struct bucket {
	struct bucket *next; /* in its hash chain */
	struct bucket *all;  /* every bucket, newest first */
	uint64_t hash;
	uint8_t kind;
	uint32_t npcs;
	double count;  /* Go keeps the block profile's count as a float: a
			  sampled short event counts rate/d */
	int64_t delay; /* ns */
	uintptr_t pcs[];
} bucket;

/* mu guards heads, all, nbuckets and every bucket's count and delay. */
static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static bucket *heads[NHEADS];
static bucket *all;
static size_t nbuckets;
static _Atomic uint64_t dropped;
size_t tt__block_max_buckets = MAX_BUCKETS;

/* ---- the rates ------------------------------------------------------------- */

void tt_set_block_profile_rate(int64_t rate)
{
	/* Our clock's ticks are ns already: Go's conversion to cycles is
	 * the identity here. */
	atomic_store_explicit(&tt__block_rate, rate <= 0 ? 0 : rate,
			      memory_order_relaxed);
	tt__sched_park_recheck();
}

int tt_set_mutex_profile_fraction(int rate)
{
	if (rate < 0)
		return (int)atomic_load_explicit(&tt__mutex_rate,
						 memory_order_relaxed);
	return (int)atomic_exchange_explicit(&tt__mutex_rate, rate,
					     memory_order_relaxed);
}

/* ---- recording ------------------------------------------------------------- */

/* A per-thread generator for the sampling (wyrand, as the scheduler's,
 * whose sequence select's fairness depends on and which is left alone). */
static _Thread_local uint64_t rng;

static uint64_t rand64(void)
{
	if (TT_UNLIKELY(rng == 0))
		rng = (uint64_t)tt_now() ^ (uint64_t)(uintptr_t)&rng;
	rng += UINT64_C(0xa0761d6478bd642f);
	__uint128_t m = (__uint128_t)rng * (rng ^ UINT64_C(0xe7037ed1a0b428db));
	return (uint64_t)(m >> 64) ^ (uint64_t)m;
}

static uint64_t hash_pcs(int kind, const uintptr_t *pcs, int n)
{
	uint64_t h = (uint64_t)kind * UINT64_C(0x9e3779b97f4a7c15) + (uint64_t)n;
	for (int i = 0; i < n; i++) {
		h ^= pcs[i];
		h *= UINT64_C(0xff51afd7ed558ccd);
		h ^= h >> 32;
	}
	return h;
}

/* Add an event of `kind` with stack pcs[n] to its bucket. */
static void save(int kind, const uintptr_t *pcs, int n, double count,
		 int64_t delay)
{
	uint64_t h = hash_pcs(kind, pcs, n);
	size_t at = (size_t)(h % NHEADS);
	pthread_mutex_lock(&mu);
	bucket *b = heads[at];
	for (; b; b = b->next)
		if (b->hash == h && b->kind == kind && b->npcs == (uint32_t)n &&
		    memcmp(b->pcs, pcs, (size_t)n * sizeof *pcs) == 0)
			break;
	if (b == NULL) {
		if (nbuckets >= tt__block_max_buckets ||
		    (b = malloc(sizeof *b + (size_t)n * sizeof *pcs)) == NULL) {
			pthread_mutex_unlock(&mu);
			atomic_fetch_add_explicit(&dropped, 1,
						  memory_order_relaxed);
			return;
		}
		*b = (bucket){.next = heads[at], .all = all, .hash = h,
			      .kind = (uint8_t)kind, .npcs = (uint32_t)n};
		memcpy(b->pcs, pcs, (size_t)n * sizeof *pcs);
		heads[at] = b;
		all = b;
		nbuckets++;
	}
	b->count += count;
	b->delay += delay;
	pthread_mutex_unlock(&mu);
}

void tt__block_event(int64_t t0)
{
	int64_t d = tt_now() - t0;
	if (d <= 0)
		d = 1;
	int64_t rate = atomic_load_explicit(&tt__block_rate,
					    memory_order_relaxed);
	/* Turned off while we were parked: dropped, as Go drops it. */
	if (rate <= 0)
		return;
	/* Go's blocksampled: always when d >= rate, else with probability
	 * d/rate. */
	if (rate > d && (int64_t)(rand64() % (uint64_t)rate) > d)
		return;
	uintptr_t pcs[RAW_PCS];
	int n = tt__trace_fast(pcs, RAW_PCS);
	/* Go's saveblockevent: a sampled short event stands for rate/d
	 * events of rate ns each. */
	if (d < rate)
		save(K_BLOCK, pcs, n, (double)rate / (double)d, rate);
	else
		save(K_BLOCK, pcs, n, 1, d);
}

_Thread_local const uintptr_t *tt__mutex_site;
_Thread_local int tt__mutex_site_n;

int tt__mutex_site_take(uintptr_t *pcs, int max)
{
	if (atomic_load_explicit(&tt__mutex_rate, memory_order_relaxed) <= 0)
		return 0;
	return tt__trace_fast(pcs, max < RAW_PCS ? max : RAW_PCS);
}

void tt__mutex_event(int64_t delay)
{
	if (delay < 0)
		delay = 0;
	int64_t rate = atomic_load_explicit(&tt__mutex_rate,
					    memory_order_relaxed);
	if (rate <= 0 || rand64() % (uint64_t)rate != 0)
		return;
	if (tt__mutex_site) { /* the unlocker is on another thread */
		save(K_MUTEX, tt__mutex_site, tt__mutex_site_n, 1, delay);
		return;
	}
	uintptr_t pcs[RAW_PCS];
	int n = tt__trace_fast(pcs, RAW_PCS);
	save(K_MUTEX, pcs, n, 1, delay);
}

size_t tt__block_nbuckets(void)
{
	pthread_mutex_lock(&mu);
	size_t n = nbuckets;
	pthread_mutex_unlock(&mu);
	return n;
}

uint64_t tt__block_dropped(void)
{
	return atomic_load_explicit(&dropped, memory_order_relaxed);
}

/* ---- writing ---------------------------------------------------------------- */

/* One record as written: its visible stack, count and delay. */
typedef struct rec {
	uintptr_t *pcs;
	uint32_t npcs;
	int64_t count, delay;
} rec;

static int by_stack(const void *x, const void *y)
{
	const rec *a = x, *b = y;
	if (a->npcs != b->npcs)
		return a->npcs < b->npcs ? -1 : 1;
	for (uint32_t i = 0; i < a->npcs; i++)
		if (a->pcs[i] != b->pcs[i])
			return a->pcs[i] < b->pcs[i] ? -1 : 1;
	return 0;
}

static int by_delay(const void *x, const void *y)
{
	const rec *a = x, *b = y;
	if (a->delay != b->delay)
		return a->delay > b->delay ? -1 : 1;
	return by_stack(x, y);
}

/* The records of `kind`, their stacks cut and merged, largest delay
 * first, into *out (n of them; pcs from *pool). 0 or -ENOMEM. */
static int collect(int kind, rec **out, size_t *nout, uintptr_t **pool)
{
	*out = NULL;
	*nout = 0;
	*pool = NULL;
	/* Copy the buckets under the lock, then work without it. */
	pthread_mutex_lock(&mu);
	size_t n = 0, npcs = 0;
	for (bucket *b = all; b; b = b->all)
		if (b->kind == kind) {
			n++;
			npcs += b->npcs;
		}
	rec *r = malloc((n ? n : 1) * sizeof *r);
	uintptr_t *p = malloc((npcs ? npcs : 1) * sizeof *p);
	if (r == NULL || p == NULL) {
		pthread_mutex_unlock(&mu);
		free(r);
		free(p);
		return -ENOMEM;
	}
	size_t k = 0, off = 0;
	for (bucket *b = all; b; b = b->all) {
		if (b->kind != kind)
			continue;
		memcpy(p + off, b->pcs, b->npcs * sizeof *p);
		r[k++] = (rec){.pcs = p + off, .npcs = b->npcs,
			       .count = (int64_t)b->count, .delay = b->delay};
		off += b->npcs;
	}
	pthread_mutex_unlock(&mu);

	for (size_t i = 0; i < n; i++) {
		int first = 0;
		int v = tt__stack_visible(r[i].pcs, (int)r[i].npcs, true,
					  &first);
		r[i].pcs += first;
		r[i].npcs = (uint32_t)v;
	}
	/* Different paths inside the runtime to the same public call are
	 * one stack to the user. */
	qsort(r, n, sizeof *r, by_stack);
	size_t m = 0;
	for (size_t i = 0; i < n; i++) {
		if (m && by_stack(&r[m - 1], &r[i]) == 0) {
			r[m - 1].count += r[i].count;
			r[m - 1].delay += r[i].delay;
		} else {
			r[m++] = r[i];
		}
	}
	qsort(r, m, sizeof *r, by_delay);
	*out = r;
	*nout = m;
	*pool = p;
	return 0;
}

/* Go's text (runtime/pprof writeProfileInternal at debug=1). */
static void write_text(tt__buf *b, int kind, const rec *r, size_t n,
		       int64_t period)
{
	tt__buf_puts(b, kind == K_MUTEX ? "--- mutex:\n" : "--- contention:\n");
	tt__buf_puts(b, "cycles/second=1000000000\n");
	if (kind == K_MUTEX) {
		tt__buf_puts(b, "sampling period=");
		tt__buf_dec(b, period);
		tt__buf_put(b, "\n", 1);
	}
	tt__slice sl;
	tt__slice_start(&sl);
	for (size_t i = 0; i < n; i++) {
		tt__buf_dec(b, r[i].delay);
		tt__buf_put(b, " ", 1);
		tt__buf_dec(b, r[i].count);
		tt__buf_puts(b, " @");
		for (uint32_t j = 0; j < r[i].npcs; j++) {
			tt__buf_put(b, " ", 1);
			tt__buf_hex(b, r[i].pcs[j]);
		}
		tt__buf_put(b, "\n", 1);
		tt__gsnap g = {.pcs = r[i].pcs, .npcs = r[i].npcs};
		tt__write_frames(b, &g);
		tt__slice_tick(&sl);
	}
}

/* tt__symbolize for the protobuf profile, leaving out, as the text does
 * (tt__frames_at), the runtime's frames inlined into a public call: a
 * record starts at tt_chan_recv, as Go's starts at runtime.chanrecv1. */
static int sym_public(uintptr_t pc, bool return_addr, tt__frame *out, int max)
{
	(void)return_addr; /* every PC here is a return address */
	tt__gsnap g = {.pcs = &pc, .npcs = 1};
	return tt__frames_at(&g, 0, out, max);
}

/* Write records r[n] of kind at debug (0: profile.proto, with duration
 * dur ns when not 0). */
static int emit(int kind, int debug, const rec *r, size_t n, int64_t dur,
		tt__buf *out)
{
	int err = 0;
	int64_t period = kind == K_MUTEX ? tt_set_mutex_profile_fraction(-1)
					 : 1;
	if (debug) {
		write_text(out, kind, r, n, period);
		err = out->err;
	} else {
		tt__gsnap *g = calloc(n ? n : 1, sizeof *g);
		int64_t *v = malloc((n ? n : 1) * 2 * sizeof *v);
		if (g == NULL || v == NULL) {
			err = -ENOMEM;
		} else {
			/* Go's scaleMutexProfile: the sampled events stand
			 * for `period` times as many. */
			int64_t scale = kind == K_MUTEX && period > 0 ? period
								      : 1;
			for (size_t i = 0; i < n; i++) {
				g[i] = (tt__gsnap){.id = (int64_t)i + 1,
						   .pcs = r[i].pcs,
						   .npcs = r[i].npcs};
				v[2 * i] = r[i].count * scale;
				v[2 * i + 1] = r[i].delay * scale;
			}
			tt__snapshot s = {.g = g, .n = n, .taken_at = tt_now()};
			tt__pprof_values vals = {
				.type = {"contentions", "delay"},
				.unit = {"count", "nanoseconds"},
				.v = v,
				.period_type = "contentions",
				.period_unit = "count",
				.period = 1,
				.duration = dur,
			};
			err = tt__pprof_write_values(out, &s, &vals,
						     sym_public);
		}
		free(g);
		free(v);
	}
	return err;
}

static int kind_of(const char *name)
{
	return strcmp(name, "mutex") == 0 ? K_MUTEX : K_BLOCK;
}

int tt__block_write(const char *name, int debug, tt__buf *out)
{
	int kind = kind_of(name);
	rec *r;
	size_t n;
	uintptr_t *pool;
	int err = collect(kind, &r, &n, &pool);
	if (err)
		return err;
	err = emit(kind, debug, r, n, 0, out);
	free(r);
	free(pool);
	return err;
}

/* ---- deltas (?seconds=N) ----------------------------------------------------- */

struct tt__block_base {
	int kind;
	int64_t at; /* tt_now() when taken */
	rec *r;     /* sorted by stack */
	size_t n;
	uintptr_t *pool;
};

int tt__block_base_take(const char *name, tt__block_base **out)
{
	tt__block_base *b = calloc(1, sizeof *b);
	if (b == NULL)
		return -ENOMEM;
	b->kind = kind_of(name);
	b->at = tt_now();
	int err = collect(b->kind, &b->r, &b->n, &b->pool);
	if (err) {
		free(b);
		return err;
	}
	qsort(b->r, b->n, sizeof *b->r, by_stack);
	*out = b;
	return 0;
}

void tt__block_base_free(tt__block_base *b)
{
	if (b) {
		free(b->r);
		free(b->pool);
		free(b);
	}
}

int tt__block_write_delta(const tt__block_base *b0, tt__buf *out)
{
	rec *r;
	size_t n;
	uintptr_t *pool;
	int64_t dur = tt_now() - b0->at;
	int err = collect(b0->kind, &r, &n, &pool);
	if (err)
		return err;
	/* Records only grow, and each stack is one record: the delta of a
	 * stack is its record now less the one it had then (merge walk of
	 * the two, both by stack); records that did not move are left
	 * out, as pprof's merge of p1 with p0 scaled by -1 leaves them. */
	qsort(r, n, sizeof *r, by_stack);
	size_t m = 0, j = 0;
	for (size_t i = 0; i < n; i++) {
		while (j < b0->n && by_stack(&b0->r[j], &r[i]) < 0)
			j++;
		rec d = r[i];
		if (j < b0->n && by_stack(&b0->r[j], &r[i]) == 0) {
			d.count -= b0->r[j].count;
			d.delay -= b0->r[j].delay;
		}
		if (d.count != 0 || d.delay != 0)
			r[m++] = d;
	}
	qsort(r, m, sizeof *r, by_delay);
	err = emit(b0->kind, 0, r, m, dur, out);
	free(r);
	free(pool);
	return err;
}
