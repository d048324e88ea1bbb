/* tether — snapshots of the goroutines of a scheduler, and one goroutine in
 * runtime.Stack's layout.
 *
 * A snapshot is taken in one go, with nothing else of this scheduler
 * running (its goroutines never run in parallel), so it is consistent:
 * every goroutine once, each as it was at that moment. It copies what the
 * writers print; stacks that are equal are stored once (a million parked
 * workers usually share a few stacks), which keeps the snapshot small and
 * makes grouping for debug=1 a matter of comparing pointers.
 *
 * Only the calling thread's scheduler is walked: another thread's
 * goroutines run in parallel with this one and their stacks change under
 * any reader, so a dump lists the goroutines of the thread that asks.
 * Each thread can dump its own. */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "profile/profile.h"
#include "trace/trace.h"

/* ---- the byte buffer ----------------------------------------------------------- */

static bool buf_reserve(tt__buf *b, size_t n)
{
	if (b->err)
		return false;
	if (b->cap - b->len >= n)
		return true;
	size_t nc = b->cap ? b->cap : 4096;
	while (nc - b->len < n) {
		if (nc > SIZE_MAX / 2) {
			b->err = -ENOMEM;
			return false;
		}
		nc *= 2;
	}
	char *p = realloc(b->data, nc);
	if (!p) {
		b->err = -ENOMEM;
		return false;
	}
	b->data = p;
	b->cap = nc;
	return true;
}

void tt__buf_put(tt__buf *b, const void *p, size_t n)
{
	if (n == 0 || !buf_reserve(b, n))
		return;
	memcpy(b->data + b->len, p, n);
	b->len += n;
}

void tt__buf_puts(tt__buf *b, const char *s)
{
	tt__buf_put(b, s, strlen(s));
}

void tt__buf_printf(tt__buf *b, const char *fmt, ...)
{
	va_list ap;
	if (b->err)
		return;
	size_t room = b->cap - b->len;
	va_start(ap, fmt);
	int k = vsnprintf(b->data ? b->data + b->len : NULL, b->data ? room : 0,
			  fmt, ap);
	va_end(ap);
	if (k < 0)
		return;
	if (b->data && (size_t)k < room) {
		b->len += (size_t)k;
		return;
	}
	if (!buf_reserve(b, (size_t)k + 1))
		return;
	va_start(ap, fmt);
	vsnprintf(b->data + b->len, (size_t)k + 1, fmt, ap);
	va_end(ap);
	b->len += (size_t)k;
}

void tt__buf_free(tt__buf *b)
{
	free(b->data);
	b->data = NULL;
	b->len = b->cap = 0;
	b->err = 0;
}

/* ---- the snapshot -------------------------------------------------------------------- */

/* Stacks are interned while the snapshot is taken: a hash of PC
 * sequences to their offset in the pool. */
typedef struct intern_tab {
	size_t *slot; /* offset + 1 into the pool; 0 = empty */
	size_t mask, n;
} intern_tab;

static uint64_t hash_pcs(const uintptr_t *pcs, size_t n)
{
	uint64_t h = UINT64_C(0xcbf29ce484222325) ^ n;
	for (size_t i = 0; i < n; i++) {
		h ^= (uint64_t)pcs[i];
		h *= UINT64_C(0x100000001b3);
		h ^= h >> 29;
	}
	return h;
}

/* Pool layout: [n][pc...] per stack, so an offset says how long it is. */
static int intern_stack(tt__snapshot *s, intern_tab *t, const uintptr_t *pcs,
			size_t n, size_t *off)
{
	if ((t->n + 1) * 2 > t->mask + 1) {
		size_t cap = (t->mask + 1) * 2;
		size_t *v = calloc(cap, sizeof *v);
		if (!v)
			return -ENOMEM;
		for (size_t i = 0; i <= t->mask; i++) {
			if (!t->slot[i])
				continue;
			size_t o = t->slot[i] - 1;
			uint64_t h = hash_pcs(&s->pool[o + 1], s->pool[o]);
			size_t j = h & (cap - 1);
			while (v[j])
				j = (j + 1) & (cap - 1);
			v[j] = t->slot[i];
		}
		free(t->slot);
		t->slot = v;
		t->mask = cap - 1;
	}
	uint64_t h = hash_pcs(pcs, n);
	size_t j = h & t->mask;
	for (; t->slot[j]; j = (j + 1) & t->mask) {
		size_t o = t->slot[j] - 1;
		if (s->pool[o] == n &&
		    memcmp(&s->pool[o + 1], pcs, n * sizeof *pcs) == 0) {
			*off = o;
			return 0;
		}
	}
	if (s->pool_cap - s->pool_len < n + 1) {
		size_t nc = s->pool_cap ? s->pool_cap * 2 : 1024;
		while (nc - s->pool_len < n + 1)
			nc *= 2;
		uintptr_t *p = realloc(s->pool, nc * sizeof *p);
		if (!p)
			return -ENOMEM;
		s->pool = p;
		s->pool_cap = nc;
	}
	size_t o = s->pool_len;
	s->pool[o] = n;
	memcpy(&s->pool[o + 1], pcs, n * sizeof *pcs);
	s->pool_len += n + 1;
	t->slot[j] = o + 1;
	t->n++;
	*off = o;
	return 0;
}

/* Leave out tether's own frames at the top (park, switch, the dump
 * itself) and at the bottom (the goroutine entry), and for the thread's
 * main goroutine what runs below main(). */
static size_t trim(uintptr_t *pcs, size_t n, bool is_main)
{
	size_t lo = 0;
	while (lo < n) {
		const tt__sym *y = tt__sym_get(pcs[lo], true);
		if (!y || !y->all_internal)
			break;
		lo++;
	}
	if (lo == n)
		lo = 0; /* nothing but tether: show it all */
	size_t hi = n;
	while (hi > lo + 1) {
		const tt__sym *y = tt__sym_get(pcs[hi - 1], true);
		if (!y || !y->all_internal)
			break;
		hi--;
	}
	if (is_main) {
		for (size_t i = lo; i < hi; i++) {
			const tt__sym *y = tt__sym_get(pcs[i], true);
			if (y && strcmp(y->frames[y->nframes - 1].func,
					"main") == 0) {
				hi = i + 1;
				break;
			}
		}
	}
	if (lo)
		memmove(pcs, pcs + lo, (hi - lo) * sizeof *pcs);
	return hi - lo;
}

static const char *copy_name(tt__snapshot *s, const char *name, char **names,
			     size_t *len, size_t *cap)
{
	(void)s;
	size_t n = strnlen(name, 255);
	if (*cap - *len < n + 1) {
		size_t nc = *cap ? *cap * 2 : 4096;
		while (nc - *len < n + 1)
			nc *= 2;
		char *p = realloc(*names, nc);
		if (!p)
			return NULL;
		*names = p;
		*cap = nc;
	}
	char *d = *names + *len;
	memcpy(d, name, n);
	d[n] = '\0';
	*len += n + 1;
	/* An offset for now: the block may still move. */
	return (const char *)(uintptr_t)(d - *names + 1);
}

static int by_id(const void *a, const void *b)
{
	const tt__gsnap *x = a, *y = b;
	return (x->id > y->id) - (x->id < y->id);
}

/* g's fields and trimmed stack; pcs has room for TT__TRACE_MAX and
 * o->pcs points into it. Allocates nothing (for the fatal and signal
 * paths). */
__attribute__((noinline)) void tt__gsnap_fill(tt__gsnap *o, const tt__g *g,
					      uintptr_t *pcs)
{
	tt__sched *sc = g->sched ? g->sched : tt__tls_sched;
	bool cur = sc && g == sc->current;
	int n;
	if (cur)
		n = tt__trace_here(pcs, TT__TRACE_MAX, 0);
	else
		n = tt__trace_g(g, pcs, TT__TRACE_MAX);
	size_t m = trim(pcs, (size_t)(n > 0 ? n : 0), g->is_main);
	memset(o, 0, sizeof *o);
	o->id = g->id;
	o->parent_id = g->is_main ? 0 : g->parent_id;
	o->state = g->state;
	o->reason = g->reason;
	o->wait_since = g->state == TT_G_WAITING ? g->wait_since : 0;
	o->create_pc = g->is_main ? 0 : (uintptr_t)g->create_pc;
	o->wait_obj = g->wait_obj;
	o->current = cur;
	o->leaked = g->leak != NULL;
	o->name = g->name;
	o->pcs = pcs;
	o->npcs = (uint32_t)m;
}

__attribute__((noinline)) int tt__snapshot_take(tt__snapshot *s)
{
	memset(s, 0, sizeof *s);
	tt__sched *sc = tt__sched_get();
	size_t count = 0;
	for (tt__g *g = sc->all; g; g = g->all_next)
		count++;
	s->taken_at = tt_now();
	s->g = calloc(count ? count : 1, sizeof *s->g);
	intern_tab t = { calloc(1024, sizeof(size_t)), 1023, 0 };
	char *names = NULL;
	size_t names_len = 0, names_cap = 0;
	if (!s->g || !t.slot) {
		free(t.slot);
		free(s->g);
		s->g = NULL;
		return -ENOMEM;
	}
	int err = 0;
	size_t k = 0;
	for (tt__g *g = sc->all; g && k < count && !err; g = g->all_next) {
		/* Goroutines live on pages of their own: fetch the next
		 * one's stack and the one after's record while this one is
		 * unwound. */
		tt__g *n1 = g->all_next;
		if (n1) {
			tt__g *n2 = n1->all_next;
			if (n2) {
				__builtin_prefetch(&n2->sp);
				__builtin_prefetch(&n2->all_next);
				__builtin_prefetch(&n2->leak);
			}
			const char *sp = n1->sp;
			if (sp) {
				__builtin_prefetch(sp + 48);
				__builtin_prefetch(sp + 112);
				__builtin_prefetch(sp + 176);
			}
		}
		uintptr_t pcs[TT__TRACE_MAX];
		tt__gsnap *o = &s->g[k++];
		tt__gsnap_fill(o, g, pcs);
		size_t off = 0;
		err = intern_stack(s, &t, pcs, o->npcs, &off);
		o->pcs = (const uintptr_t *)(uintptr_t)off;
		if (o->name && !err) {
			o->name = copy_name(s, o->name, &names, &names_len,
					    &names_cap);
			if (!o->name)
				err = -ENOMEM;
		}
	}
	free(t.slot);
	s->n = k;
	s->names = names;
	if (err) {
		tt__snapshot_free(s);
		return err;
	}
	/* The pool and the names are final: offsets become pointers. */
	for (size_t i = 0; i < s->n; i++) {
		size_t off = (size_t)(uintptr_t)s->g[i].pcs;
		s->g[i].pcs = &s->pool[off + 1];
		if (s->g[i].name)
			s->g[i].name =
				names + ((uintptr_t)s->g[i].name - 1);
	}
	qsort(s->g, s->n, sizeof *s->g, by_id);
	return 0;
}

void tt__snapshot_free(tt__snapshot *s)
{
	free(s->g);
	free(s->pool);
	free(s->names);
	memset(s, 0, sizeof *s);
}

/* ---- one goroutine ------------------------------------------------------------------ */

const char *tt__gsnap_state(const tt__gsnap *g)
{
	switch (g->state) {
	case TT_G_RUNNING:
		return "running";
	case TT_G_RUNNABLE:
		return "runnable";
	case TT_G_WAITING:
		if (g->reason < TT_WAIT__COUNT && *tt__wait_reason_str[g->reason])
			return tt__wait_reason_str[g->reason];
		return "waiting";
	default:
		return "dead";
	}
}

void tt__write_goroutine_body(tt__buf *b, const tt__gsnap *g, int64_t now)
{
	/* Formatted by hand: a dump of a million goroutines writes this a
	 * million times. */
	char num[24];
	const char *st = tt__gsnap_state(g);
	tt__buf_put(b, "goroutine ", 10);
	if (g->id >= 0) {
		tt__buf_put(b, num, tt__utoa(num, (uint64_t)g->id));
	} else {
		tt__buf_put(b, "-", 1);
		tt__buf_put(b, num, tt__utoa(num, (uint64_t)-g->id));
	}
	tt__buf_put(b, " [", 2);
	tt__buf_puts(b, st);
	if (g->state == TT_G_WAITING && g->wait_since > 0 &&
	    now > g->wait_since) {
		int64_t mins = (now - g->wait_since) / TT_MINUTE;
		if (mins >= 1)
			tt__buf_printf(b, ", %" PRId64 " minutes", mins);
	}
	tt__buf_put(b, "]:\n", 3);
	for (uint32_t i = 0; i < g->npcs; i++) {
		const tt__sym *y = tt__sym_get(g->pcs[i], true);
		if (!y) {
			tt__buf_printf(b, "?(...)\n\t?:0 +0x%" PRIxPTR "\n",
				       g->pcs[i]);
			continue;
		}
		int f = 0;
		if (i == 0) /* tether's inlined frames at the top */
			while (f + 1 < y->nframes && y->frames[f].internal)
				f++;
		tt__buf_put(b, y->d2 + y->d2_off[f],
			    y->d2_off[y->nframes] - y->d2_off[f]);
	}
	if (g->create_pc) {
		const tt__sym *y = tt__sym_get(g->create_pc, true);
		if (y) {
			tt__buf_put(b, y->cb_head, y->cb_head_len);
			tt__buf_put(b, num,
				    tt__utoa(num, (uint64_t)g->parent_id));
			tt__buf_put(b, y->cb_tail, y->cb_tail_len);
		} else {
			tt__buf_printf(b,
				       "created by ? in goroutine %" PRId64
				       "\n\t?:0\n",
				       g->parent_id);
		}
	}
}

void tt__write_goroutine(tt__buf *b, const tt__gsnap *g, int64_t now)
{
	tt__write_goroutine_body(b, g, now);
	tt__buf_put(b, "\n", 1);
}
