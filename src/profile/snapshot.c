/* tether — the goroutine snapshot, and one goroutine in Go's text layout.
 *
 * A snapshot of a thread covers that thread's scheduler: its goroutines
 * only run on that thread, so while the caller runs, every other one of
 * them is parked or runnable with its registers saved, and can be
 * unwound safely. Another thread's goroutines can be unwound only by that
 * thread: the snapshot of every thread (tt__snapshot_take_all, what the
 * profiles and the debug page show) asks each one for its own, below.
 * The stacks printed with a panic, the deadlock report and SIGQUIT show
 * the calling thread's (tt__snapshot_take): nothing else may run then.
 *
 * What a user sees of a stack: Go hides runtime.gopark and the rest of
 * the runtime at the top of a parked stack, and runtime.goexit at the
 * bottom. tether does the same with its own frames — everything compiled
 * from tether's src/ (told by the DWARF file name, or by a tt_ name when
 * there is no line information) — except the outermost public call at
 * the top (tt_chan_recv, tt_sleep, ...), which says what the goroutine is
 * doing, as time.Sleep does in Go's dumps. */
#include <errno.h>
#include <stdatomic.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "profile/profile.h"
#include "trace/trace.h"

#ifndef TT_SRC_DIR
#define TT_SRC_DIR ""
#endif

/* ---- the buffer ---------------------------------------------------------- */

static bool buf_reserve(tt__buf *b, size_t n)
{
	if (b->err)
		return false;
	if (b->len + n <= b->cap)
		return true;
	size_t ncap = b->cap ? b->cap : 4096;
	while (ncap < b->len + n)
		ncap *= 2;
	char *d = realloc(b->data, ncap);
	if (d == NULL) {
		b->err = -ENOMEM;
		return false;
	}
	b->data = d;
	b->cap = ncap;
	return true;
}

void tt__buf_put(tt__buf *b, const void *p, size_t n)
{
	if (n && buf_reserve(b, n)) {
		memcpy(b->data + b->len, p, n);
		b->len += n;
	}
}

void tt__buf_puts(tt__buf *b, const char *s)
{
	tt__buf_put(b, s, strlen(s));
}

void tt__buf_printf(tt__buf *b, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	char tmp[256];
	int n = vsnprintf(tmp, sizeof tmp, fmt, ap);
	va_end(ap);
	if (n < 0)
		return;
	if ((size_t)n < sizeof tmp) {
		tt__buf_put(b, tmp, (size_t)n);
		return;
	}
	if (!buf_reserve(b, (size_t)n + 1))
		return;
	va_start(ap, fmt);
	vsnprintf(b->data + b->len, (size_t)n + 1, fmt, ap);
	va_end(ap);
	b->len += (size_t)n;
}

void tt__buf_free(tt__buf *b)
{
	free(b->data);
	*b = (tt__buf){0};
}

void tt__buf_hex(tt__buf *b, uintptr_t v)
{
	char tmp[20];
	int i = (int)sizeof tmp;
	do {
		tmp[--i] = "0123456789abcdef"[v & 15];
		v >>= 4;
	} while (v);
	tmp[--i] = 'x';
	tmp[--i] = '0';
	tt__buf_put(b, tmp + i, sizeof tmp - (size_t)i);
}

void tt__buf_dec(tt__buf *b, int64_t v)
{
	char tmp[24];
	int i = (int)sizeof tmp;
	uint64_t u = v < 0 ? -(uint64_t)v : (uint64_t)v;
	do {
		tmp[--i] = (char)('0' + u % 10);
		u /= 10;
	} while (u);
	if (v < 0)
		tmp[--i] = '-';
	tt__buf_put(b, tmp + i, sizeof tmp - (size_t)i);
}

/* ---- which frames a user sees ------------------------------------------- */

bool tt__frame_is_runtime(const tt__frame *f)
{
	if (f->file && TT_SRC_DIR[0])
		return strncmp(f->file, TT_SRC_DIR, sizeof TT_SRC_DIR - 1) == 0;
	return strncmp(f->func, "tt_", 3) == 0;
}

static bool is_public(const tt__frame *f)
{
	return strncmp(f->func, "tt_", 3) == 0 && f->func[3] != '_';
}

/* What the filter needs to know of a return address's physical function,
 * in a small per-thread cache in front of the symbolizer (which locks). */
typedef struct pcinfo {
	uintptr_t pc;
	bool runtime, public, entry_fn, main_fn;
} pcinfo;

#define PCINFO 512
static __thread pcinfo pc_cache[PCINFO];

static pcinfo info(uintptr_t pc)
{
	pcinfo *c = &pc_cache[(pc * 0x9e3779b97f4a7c15ull) >> 55];
	if (c->pc == pc && pc)
		return *c;
	tt__frame fr[16];
	int n = tt__symbolize(pc, true, fr, 16);
	const tt__frame *f = &fr[n - 1];
	*c = (pcinfo){
		.pc = pc,
		.runtime = tt__frame_is_runtime(f),
		.public = is_public(f),
		.entry_fn = f->entry == (uintptr_t)tt__g_direct_entry ||
			    f->entry == (uintptr_t)tt__go_owned_entry ||
			    f->entry == (uintptr_t)tt__go_born_entry,
		.main_fn = strcmp(f->func, "main") == 0,
	};
	return *c;
}

int tt__stack_visible(const uintptr_t *pcs, int n, bool is_main, int *first)
{
	int top = 0, last_public = -1;
	while (top < n) {
		pcinfo f = info(pcs[top]);
		if (!f.runtime)
			break;
		if (f.public)
			last_public = top;
		top++;
	}
	if (top == n && last_public < 0) {
		/* Nothing but the runtime: show it all rather than nothing. */
		*first = 0;
		return n;
	}
	*first = last_public >= 0 ? last_public : top;
	int end = n;
	for (int i = *first + 1; i < n; i++) {
		pcinfo f = info(pcs[i]);
		if (f.entry_fn) {
			end = i;
			break;
		}
		if (is_main && f.main_fn) {
			end = i + 1;
			break;
		}
	}
	return end - *first;
}

int tt__frames_at(const tt__gsnap *g, uint32_t i, tt__frame *out, int max)
{
	int n = tt__symbolize(g->pcs[i], true, out, max);
	if (i != 0 || n < 2 || !tt__frame_is_runtime(&out[n - 1]))
		return n;
	/* The top frame is the runtime's public call: drop what was inlined
	 * into it from the runtime, keep the outermost public name. */
	int keep = n - 1;
	for (int k = n - 1; k >= 0; k--) {
		if (!tt__frame_is_runtime(&out[k]))
			break;
		if (is_public(&out[k]))
			keep = k;
	}
	if (keep > 0)
		memmove(out, out + keep, (size_t)(n - keep) * sizeof *out);
	return n - keep;
}

/* ---- the snapshot --------------------------------------------------------- */

/* The arrays of the last snapshot freed, kept for the next one: a profile
 * scraped every few seconds would otherwise fault in megabytes of fresh
 * pages each time. Up to STASH_MAX bytes each; shared by all threads
 * (swapped atomically). */
#define STASH_MAX (64u << 20)

typedef struct stash {
	void *mem;
	size_t size;
} stash;

static _Atomic(stash *) stash_g, stash_pool;

static void *take_stash(_Atomic(stash *) *slot, size_t want, size_t *got)
{
	stash *st = atomic_exchange(slot, NULL);
	if (st && st->size >= want) {
		void *r = st->mem;
		*got = st->size;
		free(st);
		return r;
	}
	if (st) {
		free(st->mem);
		free(st);
	}
	*got = want;
	return want ? malloc(want) : NULL;
}

/* Arrays this large are freed on a tt_blocking thread by a caller that
 * may yield: giving their pages back takes milliseconds (a million
 * records' 88 MB: about 6). */
#define FREE_AWAY (8u << 20)

static void free_blocking(void *p)
{
	free(p);
}

/* free(p), p of `bytes`; away: on a tt_blocking thread if it is large. */
static void release(void *p, size_t bytes, bool away)
{
	if (p == NULL)
		return;
	if (!away || bytes < FREE_AWAY || tt_blocking(free_blocking, p) != 0)
		free(p);
}

/* Keep mem for the next snapshot (freeing the stash it replaces), or free
 * it if it is too large to keep; away as release's. */
static void put_stash(_Atomic(stash *) *slot, void *mem, size_t size,
		      bool away)
{
	if (mem == NULL)
		return;
	stash *st = size <= STASH_MAX ? malloc(sizeof *st) : NULL;
	if (st == NULL) {
		release(mem, size, away);
		return;
	}
	*st = (stash){mem, size};
	stash *old = atomic_exchange(slot, st);
	if (old) {
		release(old->mem, old->size, away);
		free(old);
	}
}

static bool pool_reserve(tt__snapshot *s, size_t n)
{
	if (s->pool_len + n <= s->pool_cap)
		return true;
	size_t ncap = s->pool_cap ? s->pool_cap * 2 : 1024;
	while (ncap < s->pool_len + n)
		ncap *= 2;
	uintptr_t *p = realloc(s->pool, ncap * sizeof *p);
	if (p == NULL)
		return false;
	s->pool = p;
	s->pool_cap = ncap;
	return true;
}

static int by_id(const void *a, const void *b)
{
	const tt__gsnap *x = a, *y = b;
	return (x->id > y->id) - (x->id < y->id);
}

int tt__snapshot_take(tt__snapshot *snap)
{
	*snap = (tt__snapshot){0};
	tt__sched *s = tt__sched_get();
	size_t count = 0;
	for (tt__g *g = s->all; g; g = g->all_next)
		count += !g->proxy;
	size_t got;
	snap->g = take_stash(&stash_g, (count ? count : 1) * sizeof *snap->g,
			     &got);
	if (snap->g == NULL)
		return -ENOMEM;
	snap->g_bytes = got;
	snap->pool = take_stash(&stash_pool, 0, &got);
	snap->pool_cap = snap->pool ? got / sizeof *snap->pool : 0;
	snap->taken_at = tt_now();
	/* Offsets into the pool while it may move; pointers at the end. */
	size_t *off = malloc((count ? count : 1) * sizeof *off);
	if (off == NULL) {
		tt__snapshot_free(snap);
		return -ENOMEM;
	}
	uintptr_t pcs[TT__TRACE_MAX];
	size_t i = 0;
	for (tt__g *g = s->all; g && i < count; g = g->all_next) {
		if (g->proxy)
			continue; /* its goroutine is listed on its own P */
		tt__gsnap *o = &snap->g[i];
		*o = (tt__gsnap){0};
		o->id = g->id;
		o->parent_id = g->parent_id;
		o->leak_scope = g->leak_scope;
		o->create_pc = (uintptr_t)g->create_pc;
		o->wait_obj = g->wait_obj;
		o->name = g->name;
		o->labels = g->labels;
		tt__labels_retain(o->labels);
		o->state = g->state;
		o->reason = g->reason;
		o->leaked = g->leak != NULL;
		o->leak = g->leak;
		o->current = g == s->current;
		o->wait_since = g->state == TT_G_WAITING ? g->wait_since : 0;
		int n = o->current ? tt__trace_here(pcs, TT__TRACE_MAX, 0)
				   : tt__trace_g(g, pcs, TT__TRACE_MAX);
		int first = 0;
		int k = tt__stack_visible(pcs, n, g->is_main, &first);
		if (!pool_reserve(snap, (size_t)k)) {
			free(off);
			snap->n = i + 1; /* the records holding labels */
			tt__snapshot_free(snap);
			return -ENOMEM;
		}
		memcpy(snap->pool + snap->pool_len, pcs + first,
		       (size_t)k * sizeof *pcs);
		off[i] = snap->pool_len;
		o->npcs = (uint32_t)k;
		snap->pool_len += (size_t)k;
		i++;
	}
	snap->n = i;
	for (size_t j = 0; j < snap->n; j++)
		snap->g[j].pcs = snap->pool + off[j];
	free(off);
	/* By id, as promised: the list holds the newest first, so reversing
	 * it is enough unless ids came out of order. */
	for (size_t a = 0, b = snap->n; a + 1 < b; a++, b--) {
		tt__gsnap t = snap->g[a];
		snap->g[a] = snap->g[b - 1];
		snap->g[b - 1] = t;
	}
	for (size_t j = 1; j < snap->n; j++) {
		if (snap->g[j - 1].id > snap->g[j].id) {
			qsort(snap->g, snap->n, sizeof *snap->g, by_id);
			break;
		}
	}
	return 0;
}

/* ---- the incremental snapshot --------------------------------------------
 *
 * tt__snapshot_take stops every other goroutine for as long as it unwinds
 * them all: a second or more for a million. The incremental snapshot
 * gives the same result — every goroutine as it was at one instant T, the
 * moment it starts — while the others run between its slices of work
 * (Go 1.19's goroutine profile works the same way):
 *
 *  - At T it notes the newest goroutine id (goroutines started later are
 *    not in it), marks the goroutines in the run queue (RUNNABLE at T;
 *    every other one but the caller was WAITING) and records the caller.
 *  - Then it walks s->all, recording each goroutine not yet recorded from
 *    its saved registers, and yields (tt__slice) every TT__SLICE of work.
 *  - Meanwhile a goroutine that resumes has not changed since T: it last
 *    ran before T. s->zombie_fn runs on it before it returns from its
 *    switch (internal.h), and records it there — its stack unwound from
 *    where it stands, on the runtime stack — unless it was already.
 *
 * So every goroutine alive at T is recorded exactly once, with its stack
 * and state at T, whether it stays parked, runs, or ends meanwhile.
 *
 * The walk's cursor (the next goroutine of s->all to visit) stays valid:
 * a goroutine leaves s->all only by ending, ends only by running, and
 * resumes through zombie_fn first, which moves the cursor past it.
 * Goroutines started after T are linked at the head, before the cursor.
 *
 * The walk visits s->all newest first, so its records, put at the end of
 * g[] and working down, are in id order; the few taken on resume are
 * sorted apart and merged in. One snapshot is taken at a time per
 * scheduler; a second waits (yielding) for the first. */

/* Goroutine names, copied: the writers read them after a goroutine may
 * have ended (and its name been freed). Chunks of NAMES_CHUNK bytes (or
 * one name's worth), and a small cache by address so that a million
 * goroutines named by one literal make one copy. */
#define NAMES_CHUNK 4096
#define NAMES_CACHE 64

typedef struct tt__names {
	struct name_chunk {
		struct name_chunk *next;
		size_t used, cap;
		char data[];
	} *chunks;
	struct {
		const char *src, *copy;
	} cache[NAMES_CACHE];
} tt__names;

/* A copy of name (NULL for NULL), or NULL with *err = -ENOMEM. */
static const char *name_copy(tt__names *ns, const char *name, int *err)
{
	if (name == NULL)
		return NULL;
	size_t h = (size_t)(((uintptr_t)name * 0x9e3779b97f4a7c15ull) >> 58);
	if (ns->cache[h].src == name && strcmp(ns->cache[h].copy, name) == 0)
		return ns->cache[h].copy;
	size_t len = strlen(name) + 1;
	struct name_chunk *c = ns->chunks;
	if (c == NULL || c->cap - c->used < len) {
		size_t cap = len > NAMES_CHUNK ? len : NAMES_CHUNK;
		c = malloc(sizeof *c + cap);
		if (c == NULL) {
			*err = -ENOMEM;
			return NULL;
		}
		c->next = ns->chunks;
		c->used = 0;
		c->cap = cap;
		ns->chunks = c;
	}
	char *copy = c->data + c->used;
	memcpy(copy, name, len);
	c->used += len;
	ns->cache[h].src = name;
	ns->cache[h].copy = copy;
	return copy;
}

static void names_free(tt__names *ns)
{
	if (ns == NULL)
		return;
	for (struct name_chunk *c = ns->chunks, *n; c; c = n) {
		n = c->next;
		free(c);
	}
	free(ns);
}

typedef struct live {
	tt__sched *s;
	tt__g *me;         /* the goroutine taking the snapshot */
	tt__g *cursor;     /* the next goroutine of s->all to visit */
	uint64_t max_birth; /* the newest goroutine's at T (tt__g.birth) */
	uint32_t epoch;
	int err;           /* -ENOMEM: stop */
	tt__gsnap *g;      /* cap records; the walk's fill it from the end */
	size_t cap, nwalk;
	tt__gsnap *early;  /* recorded on resume (and the caller): any order */
	size_t nearly, early_cap;
	uintptr_t *pool;   /* records' pcs are offsets into it until done */
	size_t pool_len, pool_cap;
	tt__names *names;
} live;

static bool live_pool(live *L, size_t n)
{
	if (L->pool_len + n <= L->pool_cap)
		return true;
	size_t ncap = L->pool_cap ? L->pool_cap * 2 : 1024;
	while (ncap < L->pool_len + n)
		ncap *= 2;
	uintptr_t *p = realloc(L->pool, ncap * sizeof *p);
	if (p == NULL)
		return false;
	L->pool = p;
	L->pool_cap = ncap;
	return true;
}

/* Record g, whose PCs (unwound now, but as at T: it has not run since)
 * are pcs[n], into o. The state is the one at T. */
static void live_record(live *L, tt__gsnap *o, const tt__g *g,
			const uintptr_t *pcs, int n)
{
	uint32_t m = g->snap_mark;
	bool runnable = (m >> 2) == L->epoch && (m & TT__SNAP_RUNNABLE);
	*o = (tt__gsnap){0};
	o->id = g->id;
	o->parent_id = g->parent_id;
	o->leak_scope = g->leak_scope;
	o->create_pc = (uintptr_t)g->create_pc;
	o->name = name_copy(L->names, g->name, &L->err);
	o->labels = g->labels;
	tt__labels_retain(o->labels);
	o->leaked = g->leak != NULL;
	o->leak = g->leak;
	o->current = g == L->me;
	if (o->current) {
		o->state = TT_G_RUNNING;
	} else if (runnable) {
		o->state = TT_G_RUNNABLE;
	} else {
		/* Not in the run queue at T, so parked then; what its park
		 * set is still there (only a park writes it). */
		o->state = TT_G_WAITING;
		o->reason = g->reason;
		o->wait_obj = g->wait_obj;
		o->wait_since = g->wait_since;
	}
	int first = 0;
	int k = tt__stack_visible(pcs, n, g->is_main, &first);
	if (!live_pool(L, (size_t)k)) {
		L->err = -ENOMEM;
		return;
	}
	memcpy(L->pool + L->pool_len, pcs + first, (size_t)k * sizeof *pcs);
	o->pcs = (const uintptr_t *)(uintptr_t)L->pool_len;
	o->npcs = (uint32_t)k;
	L->pool_len += (size_t)k;
}

static bool taken(const live *L, const tt__g *g)
{
	return (g->snap_mark >> 2) == L->epoch &&
	       (g->snap_mark & TT__SNAP_TAKEN);
}

static void mark_taken(const live *L, tt__g *g)
{
	uint32_t m = (g->snap_mark >> 2) == L->epoch ? g->snap_mark
						      : L->epoch << 2;
	g->snap_mark = m | TT__SNAP_TAKEN;
}

/* A record in L->early, or NULL. */
static tt__gsnap *early_slot(live *L)
{
	if (L->nearly == L->early_cap) {
		size_t nc = L->early_cap ? L->early_cap * 2 : 64;
		tt__gsnap *v = realloc(L->early, nc * sizeof *v);
		if (v == NULL) {
			L->err = -ENOMEM;
			return NULL;
		}
		L->early = v;
		L->early_cap = nc;
	}
	return &L->early[L->nearly++];
}

typedef struct resumed {
	live *L;
	tt__g *g;
} resumed;

/* On the runtime stack, for the goroutine that just resumed (the
 * current one): its stack from here, where the runtime's frames on top
 * (this call, the switch, the park) are hidden as a parked one's are. */
static void take_resumed(void *p)
{
	resumed *r = p;
	uintptr_t pcs[TT__TRACE_MAX];
	int n = tt__trace_here(pcs, TT__TRACE_MAX, 0);
	tt__gsnap *o = early_slot(r->L);
	if (o)
		live_record(r->L, o, r->g, pcs, n);
}

void tt__snap_after_switch(tt__sched *s, tt__g *z)
{
	if (z != TT__SNAP_MARK(s))
		tt__stack_free(s, z);
	live *L = s->snap_live;
	if (L == NULL)
		return;
	s->zombie = TT__SNAP_MARK(s);
	tt__g *g = s->current;
	if (g == L->cursor)
		L->cursor = g->all_next;
	if (g->birth > L->max_birth || L->err || g->proxy || taken(L, g))
		return;
	resumed r = {L, g};
	tt__on_runtime_stack(take_resumed, &r);
	mark_taken(L, g);
}

static int by_id_desc(const void *a, const void *b)
{
	return by_id(b, a);
}

/* Stop recording on resume. */
static void live_stop(live *L)
{
	tt__sched *s = L->s;
	s->snap_live = NULL;
	if (s->zombie == TT__SNAP_MARK(s))
		s->zombie = NULL;
	s->zombie_fn = tt__stack_free;
}

int tt__snapshot_take_yielding(tt__snapshot *snap)
{
	tt__sched *s = tt__sched_get();
	*snap = (tt__snapshot){0};
	tt__slice sl;
	tt__slice_start(&sl);
	while (s->snap_live != NULL)
		tt_yield(); /* one at a time; the other one yields too */

	live *L = calloc(1, sizeof *L);
	tt__names *names = calloc(1, sizeof *names);
	if (L == NULL || names == NULL) {
		free(L);
		free(names);
		return -ENOMEM;
	}
	L->names = names;
	L->s = s;
	L->me = s->current;
	L->cap = (size_t)atomic_load_explicit(&s->ngoroutines,
					      memory_order_relaxed);
	size_t g_bytes, p_bytes;
	L->g = take_stash(&stash_g, (L->cap ? L->cap : 1) * sizeof *L->g,
			  &g_bytes);
	L->pool = take_stash(&stash_pool, 0, &p_bytes);
	L->pool_cap = L->pool ? p_bytes / sizeof *L->pool : 0;
	if (L->g == NULL) {
		free(L->pool);
		names_free(L->names);
		free(L);
		return -ENOMEM;
	}

	/* T. */
	if (++s->snap_epoch >= (1u << 30)) {
		/* Marks of an epoch this old could be taken for current. */
		for (tt__g *g = s->all; g; g = g->all_next)
			g->snap_mark = 0;
		s->snap_epoch = 1;
	}
	L->epoch = s->snap_epoch;
	L->max_birth = s->births;
	snap->taken_at = tt_now();
	for (uint32_t i = 0; i < runq_len(s); i++)
		runq_at(s, i)->snap_mark = (L->epoch << 2) | TT__SNAP_RUNNABLE;
	if (!L->me->proxy) {
		uintptr_t pcs[TT__TRACE_MAX];
		int n = tt__trace_here(pcs, TT__TRACE_MAX, 0);
		tt__gsnap *o = early_slot(L);
		if (o)
			live_record(L, o, L->me, pcs, n);
	}
	mark_taken(L, L->me);
	L->cursor = s->all;
	s->snap_live = L;
	s->zombie_fn = tt__snap_after_switch;
	if (s->zombie == NULL)
		s->zombie = TT__SNAP_MARK(s);

	while (L->cursor && !L->err) {
		tt__g *g = L->cursor;
		L->cursor = g->all_next;
		if (g->birth <= L->max_birth && !g->proxy && !taken(L, g)) {
			uintptr_t pcs[TT__TRACE_MAX];
			int n = tt__trace_g(g, pcs, TT__TRACE_MAX);
			/* Each goroutine of the cap alive at T is recorded
			 * once, here or early. */
			TT_ASSERT(L->nwalk + L->nearly < L->cap);
			tt__gsnap *o = &L->g[L->cap - 1 - L->nwalk];
			live_record(L, o, g, pcs, n);
			L->nwalk++;
			mark_taken(L, g);
		}
		tt__slice_tick(&sl);
	}
	live_stop(L);
	if (L->err) {
		int err = L->err;
		for (size_t i = 0; i < L->nwalk; i++)
			tt__labels_release(L->g[L->cap - 1 - i].labels);
		for (size_t i = 0; i < L->nearly; i++)
			tt__labels_release(L->early[i].labels);
		put_stash(&stash_g, L->g, g_bytes, false);
		put_stash(&stash_pool, L->pool, L->pool_cap * sizeof *L->pool,
			  false);
		names_free(L->names);
		free(L->early);
		free(L);
		return err;
	}

	/* Merge: the walk's records, g[cap - nwalk, cap), ascending, and the
	 * early ones, sorted, into g[0, n). Writing from the front never
	 * overtakes the walk's reading: nearly <= cap - nwalk. */
	if (L->nearly) /* none: a proxy took it, and left itself out */
		qsort(L->early, L->nearly, sizeof *L->early, by_id_desc);
	size_t n = L->nwalk + L->nearly;
	size_t w = L->cap - L->nwalk, e = L->nearly;
	bool sorted = true;
	for (size_t i = 0; i < n; i++) {
		/* early is descending: its smallest id is at the end. */
		if (w < L->cap &&
		    (e == 0 || L->g[w].id < L->early[e - 1].id))
			L->g[i] = L->g[w++];
		else
			L->g[i] = L->early[--e];
		L->g[i].pcs = L->pool + (uintptr_t)L->g[i].pcs;
		if (i && L->g[i - 1].id > L->g[i].id)
			sorted = false;
		tt__slice_tick(&sl);
	}
	if (!sorted) /* s->all out of id order: not expected */
		qsort(L->g, n, sizeof *L->g, by_id);
	snap->g = L->g;
	snap->n = n;
	snap->g_bytes = g_bytes;
	snap->pool = L->pool;
	snap->pool_len = L->pool_len;
	snap->pool_cap = L->pool_cap;
	snap->names = L->names;
	free(L->early);
	free(L);
	return 0;
}

/* ---- slices of work ---------------------------------------------------- */

_Atomic uint64_t tt__slice_yields;

void tt__slice_start(tt__slice *sl)
{
	/* A thread with no scheduler (a signal handler on a thread that
	 * never used tether) has nobody to yield to. */
	sl->on = tt__tls_sched != NULL;
	sl->k = 0;
	sl->until = sl->on ? tt_now() + TT__SLICE : 0;
}

void tt__slice_check(tt__slice *sl)
{
	if (!sl->on)
		return;
	int64_t now = tt_now();
	if (now < sl->until)
		return;
	tt_yield();
	atomic_fetch_add_explicit(&tt__slice_yields, 1, memory_order_relaxed);
	sl->until = tt_now() + TT__SLICE;
}

/* tt__snapshot_free, and with yielding, in slices and with the largest
 * arrays freed away (tt__snapshot_free_yielding). */
static void snapshot_free(tt__snapshot *s, bool yielding)
{
	tt__slice sl = {0}; /* started only for a caller that may yield */
	if (yielding)
		tt__slice_start(&sl);
	for (size_t i = 0; s->g && i < s->n; i++) {
		tt__labels_release(s->g[i].labels);
		if (yielding)
			tt__slice_tick(&sl);
	}
	put_stash(&stash_g, s->g, s->g_bytes, yielding);
	put_stash(&stash_pool, s->pool, s->pool_cap * sizeof *s->pool,
		  yielding);
	names_free(s->names);
	/* The parts' records are in s->g; they keep their stacks and
	 * names. */
	for (size_t i = 0; i < s->nparts; i++)
		snapshot_free(&s->parts[i], yielding);
	free(s->parts);
	*s = (tt__snapshot){0};
}

void tt__snapshot_free(tt__snapshot *s)
{
	snapshot_free(s, false);
}

void tt__snapshot_free_yielding(tt__snapshot *s)
{
	snapshot_free(s, true);
}

/* ---- every thread's goroutines ---------------------------------------------
 *
 * A thread's goroutines can be unwound only while none of them runs,
 * which only that thread can arrange: so each other thread is asked,
 * with a post, to take its own snapshot, in a goroutine of its own that
 * leaves itself out (snap_proxy, a proxy), while the caller takes its own. The
 * snapshots are each one instant of their thread, taken at about the
 * same time, with each thread's pause bounded as the caller's is
 * (tt__snapshot_take_yielding). The caller waits for them, sleeping,
 * and merges them by id; the stacks and names stay in the parts
 * (snapshot->parts), which the merged records point into.
 *
 * A thread outside tether (running C code, blocked in a call tether does
 * not see) cannot answer: one that has not started on its part by a
 * short deadline is given up on, and so is one that takes longer than a
 * long one. The part's state says who owns it: the asker gives it up by
 * moving it from ASKED (or STARTED) to GONE, and a proxy that then
 * finds it GONE frees what it took itself; a DONE part is the asker's.
 * The parts' memory (struct gather) is freed by the last of the asker
 * and the posts to let go of it. */

enum { PART_ASKED, PART_STARTED, PART_DONE, PART_GONE };

/* How long a thread has to start on its part: one with goroutines of its
 * own is likely to be parked in tether, and answers within a scheduling
 * round; a thread that is only itself is likely to be running C code. */
#define START_BUSY (100 * TT_MILLISECOND)
#define START_IDLE (5 * TT_MILLISECOND)
#define FINISH_MAX (30 * TT_SECOND)

typedef struct gather gather;

typedef struct part {
	gather *G;
	tt__snapshot snap;
	int r;
	_Atomic int state;
	int64_t start_by; /* the asker's: when it gives up on a start */
} part;

struct gather {
	_Atomic int refs;
	size_t n;
	part parts[];
};

static void gather_unref(gather *G)
{
	if (atomic_fetch_sub_explicit(&G->refs, 1, memory_order_acq_rel) == 1)
		free(G);
}

static void snap_proxy(void *arg)
{
	part *pt = arg;
	int expect = PART_ASKED;
	if (atomic_compare_exchange_strong(&pt->state, &expect,
					   PART_STARTED)) {
		tt__snapshot sn;
		/* A proxy, it leaves itself out. */
		int r = tt__snapshot_take_yielding(&sn);
		pt->snap = sn;
		pt->r = r;
		expect = PART_STARTED;
		if (!atomic_compare_exchange_strong(&pt->state, &expect,
						    PART_DONE) &&
		    r == 0)
			tt__snapshot_free(&pt->snap); /* given up on */
	}
	gather_unref(pt->G);
}

/* The thread ended with the post still in its inbox. */
static void snap_dropped(tt__post *p)
{
	part *pt = (part *)p->h;
	int expect = PART_ASKED;
	atomic_compare_exchange_strong(&pt->state, &expect, PART_GONE);
	gather_unref(pt->G);
}

static void run_snap(tt__sched *s, tt__post *p)
{
	part *pt = (part *)p->h;
	/* Goroutines queued on this P unstarted (procs.c) are listed. */
	tt__procs_make_queued(s, UINT32_MAX);
	tt__spawn sp = {.fn = snap_proxy,
			.arg = pt,
			.name = "goroutine profile",
			.proxy = true};
	if (tt__go_spawn(s, &sp) < 0) {
		int expect = PART_ASKED;
		atomic_compare_exchange_strong(&pt->state, &expect, PART_GONE);
		gather_unref(pt->G);
	}
	tt__post_answer(p);
}

/* Merge the DONE parts into snap, by id. Each input is sorted. */
static int merge_parts(tt__snapshot *snap, gather *G)
{
	size_t k = 0, total = snap->n;
	for (size_t i = 0; i < G->n; i++) {
		part *pt = &G->parts[i];
		if (atomic_load(&pt->state) == PART_DONE && pt->r == 0) {
			k++;
			total += pt->snap.n;
		} else if (atomic_load(&pt->state) == PART_DONE) {
			pt->r = -1; /* failed: nothing to take */
		}
	}
	if (k == 0)
		return 0;
	if (total == snap->n) {
		/* Nothing to add (a worker thread with no goroutines). */
		for (size_t i = 0; i < G->n; i++)
			if (atomic_load(&G->parts[i].state) == PART_DONE &&
			    G->parts[i].r == 0)
				tt__snapshot_free(&G->parts[i].snap);
		return 0;
	}
	tt__snapshot *parts = calloc(k, sizeof *parts);
	size_t *at = calloc(k + 1, sizeof *at);
	size_t got = 0;
	tt__gsnap *g = take_stash(&stash_g, total * sizeof *g, &got);
	if (parts == NULL || at == NULL || g == NULL) {
		free(parts);
		free(at);
		free(g);
		for (size_t i = 0; i < G->n; i++)
			if (atomic_load(&G->parts[i].state) == PART_DONE &&
			    G->parts[i].r == 0)
				tt__snapshot_free(&G->parts[i].snap);
		return -ENOMEM;
	}
	k = 0;
	for (size_t i = 0; i < G->n; i++)
		if (atomic_load(&G->parts[i].state) == PART_DONE &&
		    G->parts[i].r == 0)
			parts[k++] = G->parts[i].snap;
	/* Sources: snap itself (k), then the parts. A few threads: a
	 * linear look for the smallest head is enough. In slices, yielding
	 * to this thread's other goroutines: a million records (and the
	 * pages of g they fill) take tens of milliseconds. */
	tt__slice sl;
	tt__slice_start(&sl);
	for (size_t out = 0; out < total; out++) {
		size_t best = SIZE_MAX;
		int64_t best_id = 0;
		for (size_t j = 0; j <= k; j++) {
			const tt__snapshot *src = j == k ? snap : &parts[j];
			if (at[j] < src->n &&
			    (best == SIZE_MAX || src->g[at[j]].id < best_id)) {
				best = j;
				best_id = src->g[at[j]].id;
			}
		}
		const tt__snapshot *src = best == k ? snap : &parts[best];
		g[out] = src->g[at[best]++];
		tt__slice_tick(&sl);
	}
	free(at);
	/* The records (and their labels) are g's now; the parts keep their
	 * stacks and names. */
	for (size_t j = 0; j < k; j++) {
		put_stash(&stash_g, parts[j].g, parts[j].g_bytes, true);
		parts[j].g = NULL;
		parts[j].n = 0;
		parts[j].g_bytes = 0;
	}
	put_stash(&stash_g, snap->g, snap->g_bytes, true);
	snap->g = g;
	snap->n = total;
	snap->g_bytes = got;
	snap->parts = parts;
	snap->nparts = k;
	return 0;
}

static int take_threads(tt__snapshot *snap, int *missing, bool self)
{
	tt__sched *s = tt__sched_get();
	int gave_up = 0;
	tt__sched *few[16], **v = few;
	size_t n = tt__sched_others(s, v, 16);
	if (n > 16) {
		v = malloc(n * sizeof *v);
		n = v ? tt__sched_others(s, v, n) : 0;
		/* Threads that started since are not asked. */
	}
	gather *G = n ? calloc(1, sizeof *G + n * sizeof(part)) : NULL;
	if (G) {
		G->n = n;
		atomic_init(&G->refs, 1);
		int64_t now = tt_now();
		for (size_t i = 0; i < n; i++) {
			part *pt = &G->parts[i];
			pt->G = G;
			atomic_init(&pt->state, PART_ASKED);
			pt->start_by =
				now + (atomic_load_explicit(&v[i]->ngoroutines,
							    memory_order_relaxed) > 1
					       ? START_BUSY
					       : START_IDLE);
			tt__post *p = tt__post_new(0, "goroutine profile");
			if (p) {
				p->run = run_snap;
				p->dropped = snap_dropped;
				p->h = pt;
				p->quiet = true;
				atomic_fetch_add(&G->refs, 1);
				if (tt__post_send(v[i], p) == 0)
					continue;
				atomic_fetch_sub(&G->refs, 1); /* ended */
			}
			atomic_store(&pt->state, PART_GONE);
		}
	} else {
		gave_up = (int)n;
	}
	if (v != few)
		free(v);

	int r = 0;
	if (self) {
		tt__procs_make_queued(s, UINT32_MAX);
		r = tt__snapshot_take_yielding(snap);
	}
	else
		*snap = (tt__snapshot){.taken_at = tt_now()};
	if (G) {
		int64_t finish_by = tt_now() + FINISH_MAX;
		int64_t nap = 20 * TT_MICROSECOND;
		for (;;) {
			bool waiting = false;
			int64_t now = tt_now();
			for (size_t i = 0; i < G->n; i++) {
				part *pt = &G->parts[i];
				int st = atomic_load(&pt->state);
				if (st != PART_ASKED && st != PART_STARTED)
					continue;
				if (now >= (st == PART_ASKED ? pt->start_by
							     : finish_by) &&
				    atomic_compare_exchange_strong(
					    &pt->state, &st, PART_GONE))
					gave_up++;
				else
					waiting = true;
			}
			if (!waiting)
				break;
			tt_sleep(nap);
			if (nap < TT_MILLISECOND)
				nap *= 2;
		}
		if (r == 0)
			r = merge_parts(snap, G);
		else
			for (size_t i = 0; i < G->n; i++)
				if (atomic_load(&G->parts[i].state) ==
					    PART_DONE &&
				    G->parts[i].r == 0)
					tt__snapshot_free(&G->parts[i].snap);
		gather_unref(G);
	}
	if (r)
		tt__snapshot_free(snap);
	if (missing)
		*missing = gave_up;
	return r;
}

int tt__snapshot_take_all(tt__snapshot *snap, int *missing)
{
	return take_threads(snap, missing, true);
}

int tt__snapshot_take_others(tt__snapshot *snap, int *missing)
{
	return take_threads(snap, missing, false);
}

/* ---- one goroutine, runtime.Stack's layout ------------------------------ */

const char *tt__gsnap_state(const tt__gsnap *g)
{
	switch (g->state) {
	case TT_G_RUNNING:
		return "running";
	case TT_G_RUNNABLE:
		return "runnable";
	case TT_G_WAITING:
		if (g->reason > TT_WAIT_NONE && g->reason < TT_WAIT__COUNT)
			return tt__wait_reason_str[g->reason];
		return "waiting";
	default:
		return "dead";
	}
}

/* A frame's function: its name, or for a PC without a symbol (a signal
 * trampoline, a stripped object) "OBJECT+0xOFF", OBJECT the base name of
 * the ELF object holding it and OFF the PC's offset from where that object
 * is loaded (what addr2line -e OBJECT takes); "?" if no object holds it. */
static void put_func(tt__buf *b, const tt__frame *f)
{
	if (strcmp(f->func, "?") != 0 || f->module == NULL) {
		tt__buf_puts(b, f->func);
		return;
	}
	const char *slash = strrchr(f->module, '/');
	tt__buf_puts(b, slash ? slash + 1 : f->module);
	tt__buf_put(b, "+", 1);
	tt__buf_hex(b, f->pc - f->module_base);
}

/* "\tfile:line +0xoff" (offset only for a physical frame). A frame with
 * no source position prints as "\t??:0", the form Go's tools (panicparse)
 * take for a foreign frame they cannot place; the object is in the
 * function's name when the symbol is missing too. */
static void put_pos(tt__buf *b, const tt__frame *f, bool with_off)
{
	tt__buf_put(b, "\t", 1);
	tt__buf_puts(b, f->file ? f->file : "??");
	tt__buf_put(b, ":", 1);
	tt__buf_dec(b, f->line);
	/* (pc - entry is 1 only for a goroutine not yet started, recorded
	 * at its function's entry: tt__trace_g. A return address is past a
	 * call, at least 2 bytes in.) */
	if (with_off && f->entry && f->pc - f->entry > 1) {
		tt__buf_put(b, " +", 2);
		tt__buf_hex(b, f->pc - f->entry);
	}
	tt__buf_put(b, "\n", 1);
}

void tt__write_goroutine(tt__buf *b, const tt__gsnap *g, int64_t now)
{
	tt__buf_puts(b, "goroutine ");
	tt__buf_dec(b, g->id);
	tt__buf_puts(b, " [");
	tt__buf_puts(b, tt__gsnap_state(g));
	if (g->state == TT_G_WAITING && g->wait_since > 0 &&
	    now > g->wait_since) {
		int64_t min = (now - g->wait_since) / TT_MINUTE;
		if (min >= 1) {
			tt__buf_puts(b, ", ");
			tt__buf_dec(b, min);
			tt__buf_puts(b, " minutes");
		}
	}
	tt__buf_puts(b, "]:\n");
	tt__frame fr[16];
	for (uint32_t i = 0; i < g->npcs; i++) {
		int n = tt__frames_at(g, i, fr, 16);
		for (int k = 0; k < n; k++) {
			put_func(b, &fr[k]);
			tt__buf_puts(b, "(...)\n");
			put_pos(b, &fr[k], !fr[k].inlined);
		}
	}
	if (g->create_pc && g->parent_id) {
		/* The function with the tt_go call in it (the innermost
		 * one when that call was inlined). */
		tt__symbolize(g->create_pc, true, fr, 16);
		tt__buf_puts(b, "created by ");
		put_func(b, &fr[0]);
		tt__buf_puts(b, " in goroutine ");
		tt__buf_dec(b, g->parent_id);
		tt__buf_put(b, "\n", 1);
		put_pos(b, &fr[0], true);
	}
	tt__buf_put(b, "\n", 1);
}
