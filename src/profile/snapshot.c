/* tether — the goroutine snapshot, and one goroutine in Go's text layout.
 *
 * A snapshot covers the calling thread's scheduler: its goroutines only
 * run on that thread, so while the caller runs, every other one of them
 * is parked or runnable with its registers saved, and can be unwound
 * safely. Goroutines of other threads' schedulers are running
 * concurrently and are not included (tt_num_goroutine counts them all).
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
			    f->entry == (uintptr_t)tt__go_owned_entry,
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

static void put_stash(_Atomic(stash *) *slot, void *mem, size_t size)
{
	if (mem == NULL)
		return;
	stash *st = size <= STASH_MAX ? malloc(sizeof *st) : NULL;
	if (st == NULL) {
		free(mem);
		return;
	}
	*st = (stash){mem, size};
	stash *old = atomic_exchange(slot, st);
	if (old) {
		free(old->mem);
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
		count++;
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
	for (tt__g *g = s->all; g && i < count; g = g->all_next, i++) {
		tt__gsnap *o = &snap->g[i];
		*o = (tt__gsnap){0};
		o->id = g->id;
		o->parent_id = g->parent_id;
		o->create_pc = (uintptr_t)g->create_pc;
		o->wait_obj = g->wait_obj;
		o->name = g->name;
		o->state = g->state;
		o->reason = g->reason;
		o->leaked = g->leak != NULL;
		o->current = g == s->current;
		o->wait_since = g->state == TT_G_WAITING ? g->wait_since : 0;
		int n = o->current ? tt__trace_here(pcs, TT__TRACE_MAX, 0)
				   : tt__trace_g(g, pcs, TT__TRACE_MAX);
		int first = 0;
		int k = tt__stack_visible(pcs, n, g->is_main, &first);
		if (!pool_reserve(snap, (size_t)k)) {
			free(off);
			tt__snapshot_free(snap);
			return -ENOMEM;
		}
		memcpy(snap->pool + snap->pool_len, pcs + first,
		       (size_t)k * sizeof *pcs);
		off[i] = snap->pool_len;
		o->npcs = (uint32_t)k;
		snap->pool_len += (size_t)k;
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

void tt__snapshot_free(tt__snapshot *s)
{
	put_stash(&stash_g, s->g, s->g_bytes);
	put_stash(&stash_pool, s->pool, s->pool_cap * sizeof *s->pool);
	*s = (tt__snapshot){0};
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
	if (with_off && f->entry) {
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
