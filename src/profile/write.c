/* tether — tt_profile_write, tt_stack_dump, the SIGQUIT dump, and the
 * stacks printed with panics and the deadlock report.
 *
 * Formats (Go's, so Go's tools read them):
 *   debug=2  every goroutine as runtime.Stack(buf, true) prints it
 *   debug=1  "goroutine profile: total N", then one record per distinct
 *            stack: "COUNT @ 0xPC 0xPC ...", "# labels: {...}" when the
 *            goroutine has a name or labels (Go's layout: tt__labels_text), and a "#\t0xPC\tfunc+0xOFF\tfile:line"
 *            line per frame, aligned as Go's text/tabwriter aligns them
 *            (cells padded with tabs to multiples of 8); records sorted
 *            by count, largest first
 *   debug=0  profile.proto, gzipped (src/profile/pprof.c)
 * The "goroutineleak" profile is the same, over proven leaks only; the
 * "threadcreate" profile has the same debug=1 and debug=0 layouts over
 * the process's live OS threads and their creation stacks
 * (tt__threads_create_snapshot).
 *
 * tt_profile_write takes its snapshot in slices (tt__snapshot_take_all:
 * every thread's goroutines, each thread's as they were at one instant,
 * taken on that thread by tt__snapshot_take_yielding) and writes from it in
 * slices too, yielding to the other goroutines every TT__SLICE of work
 * (profile.h), and hands the output over in pieces of 64 KiB: a profile
 * of a million goroutines keeps the others waiting for milliseconds at a
 * time, not for the seconds it takes. The stacks printed with a panic,
 * the deadlock report and SIGQUIT stop everything instead (nothing may
 * run on while the program is being reported). */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "profile/profile.h"
#include "trace/trace.h"

#define FLUSH_AT (64 * 1024)

typedef struct out {
	tt__buf b;
	tt_write_fn fn;
	void *arg;
	int err;
} out;

static void flush(out *o, bool force)
{
	if (o->err || (!force && o->b.len < FLUSH_AT))
		return;
	if (o->b.err) {
		o->err = o->b.err;
		return;
	}
	if (o->b.len && o->fn) {
		int r = o->fn(o->arg, o->b.data, o->b.len);
		if (r < 0)
			o->err = r;
	}
	o->b.len = 0;
}

/* Send what is left of o, free it: 0, or its error recorded for
 * tt_profile_write. */
static int finish(out *o)
{
	flush(o, true);
	tt__buf_free(&o->b);
	if (o->err)
		return tt__err(o->err, "tt_profile_write: %s",
			       o->err == -ENOMEM ? "out of memory"
						 : "the writer failed");
	return 0;
}

/* ---- debug=2 ------------------------------------------------------------ */

/* The index of the k-th goroutine to print, the current one first, then
 * the rest by id (the snapshot is in id order). */
static size_t current_first(const tt__snapshot *s, size_t cur, size_t k)
{
	if (cur == s->n)
		return k;
	return k == 0 ? cur : k <= cur ? k - 1 : k;
}

static size_t find_current(const tt__snapshot *s, tt__slice *sl)
{
	for (size_t i = 0; i < s->n; i++) {
		/* (A thread's current goroutine is parked when its idle
		 * wait reports a deadlock: then the list is in id order.) */
		if (s->g[i].current && s->g[i].state == TT_G_RUNNING)
			return i;
		if (sl)
			tt__slice_tick(sl);
	}
	return s->n;
}

static void write_all(out *o, tt__snapshot *s, bool leaked_only)
{
	tt__slice sl;
	tt__slice_start(&sl);
	size_t cur = find_current(s, &sl);
	for (size_t k = 0; k < s->n && !o->err; k++) {
		const tt__gsnap *g = &s->g[current_first(s, cur, k)];
		if (leaked_only && !g->leaked)
			continue;
		tt__write_goroutine(&o->b, g, s->taken_at);
		flush(o, false);
		tt__slice_tick(&sl);
	}
}

/* ---- labels, as Go prints them -------------------------------------------- */

/* The next code point of s (at most n bytes) as Go's utf8.DecodeRune
 * reads it: *len bytes; -1 (with *len 1) for a byte that does not start
 * a valid encoding (overlong, surrogate, beyond U+10FFFF, cut short). */
static int32_t utf8_next(const unsigned char *s, size_t n, size_t *len)
{
	*len = 1;
	unsigned c = s[0];
	if (c < 0x80)
		return (int32_t)c;
	size_t k;
	uint32_t r, min;
	if (c >= 0xc2 && c <= 0xdf) {
		k = 2, r = c & 0x1f, min = 0x80;
	} else if (c >= 0xe0 && c <= 0xef) {
		k = 3, r = c & 0x0f, min = 0x800;
	} else if (c >= 0xf0 && c <= 0xf4) {
		k = 4, r = c & 0x07, min = 0x10000;
	} else {
		return -1;
	}
	if (n < k)
		return -1;
	for (size_t i = 1; i < k; i++) {
		if ((s[i] & 0xc0) != 0x80)
			return -1;
		r = (r << 6) | (s[i] & 0x3f);
	}
	if (r < min || r > 0x10ffff || (r >= 0xd800 && r <= 0xdfff))
		return -1;
	*len = k;
	return (int32_t)r;
}

/* Whether Go's unicode.IsPrint holds for r >= 0x80: false for the C1
 * controls, the spaces other than ' ', the line and paragraph
 * separators, the common format characters, private use and the
 * noncharacters; true otherwise (code points not yet assigned, which Go
 * also escapes, are taken as printable). */
static bool go_print_nonascii(uint32_t r)
{
	static const uint32_t ranges[][2] = {
		{0x80, 0xa0},     {0xad, 0xad},     {0x600, 0x605},
		{0x61c, 0x61c},   {0x6dd, 0x6dd},   {0x70f, 0x70f},
		{0x1680, 0x1680}, {0x180e, 0x180e}, {0x2000, 0x200f},
		{0x2028, 0x202f}, {0x205f, 0x2064}, {0x2066, 0x206f},
		{0x3000, 0x3000}, {0xe000, 0xf8ff}, {0xfeff, 0xfeff},
		{0xfff9, 0xfffb}, {0xfffe, 0xffff}, {0xf0000, 0x10ffff},
	};
	for (size_t i = 0; i < sizeof ranges / sizeof ranges[0]; i++)
		if (r >= ranges[i][0] && r <= ranges[i][1])
			return false;
	return true;
}

/* s as Go's %q (strconv.Quote) writes it. */
static void put_goquote(tt__buf *b, const char *s)
{
	static const char hex[] = "0123456789abcdef";
	const unsigned char *p = (const unsigned char *)s;
	size_t n = strlen(s);
	tt__buf_put(b, "\"", 1);
	while (n) {
		size_t len;
		int32_t r = utf8_next(p, n, &len);
		char e[12];
		size_t el = 0;
		if (r < 0) {
			e[el++] = '\\', e[el++] = 'x';
			e[el++] = hex[p[0] >> 4], e[el++] = hex[p[0] & 15];
		} else if (r == '"' || r == '\\') {
			e[el++] = '\\', e[el++] = (char)r;
		} else if ((r >= 0x20 && r < 0x7f) ||
			   (r >= 0x80 && go_print_nonascii((uint32_t)r))) {
			tt__buf_put(b, p, len);
		} else {
			const char *c = "abtnvfr";
			e[el++] = '\\';
			if (r >= 7 && r <= 13) {
				e[el++] = c[r - 7];
			} else if (r < 0x80) {
				e[el++] = 'x';
				e[el++] = hex[r >> 4], e[el++] = hex[r & 15];
			} else {
				int digits = r < 0x10000 ? 4 : 8;
				e[el++] = r < 0x10000 ? 'u' : 'U';
				for (int d = digits - 1; d >= 0; d--)
					e[el++] = hex[(r >> (4 * d)) & 15];
			}
		}
		tt__buf_put(b, e, el);
		p += len;
		n -= len;
	}
	tt__buf_put(b, "\"", 1);
}

typedef struct span {
	size_t off, len;
	const char *base;
} span;

static int cmp_span(const void *a, const void *b)
{
	const span *x = a, *y = b;
	size_t n = x->len < y->len ? x->len : y->len;
	int c = memcmp(x->base + x->off, y->base + y->off, n);
	return c ? c : (x->len > y->len) - (x->len < y->len);
}

void tt__labels_text(tt__buf *b, const char *name, const tt__labels *l)
{
	/* Go's labelMap.String: each `"key":"value"` quoted as %q does,
	 * sorted as strings, joined by ", ", in braces. */
	tt__buf t = {0};
	span sp[TT_LABELS_MAX + 1];
	size_t n = 0;
	if (name) {
		sp[n].off = t.len;
		put_goquote(&t, "name");
		tt__buf_put(&t, ":", 1);
		put_goquote(&t, name);
		sp[n].len = t.len - sp[n].off;
		n++;
	}
	for (uint32_t i = 0; l && i < l->n; i++) {
		if (name && strcmp(l->kv[i].key, "name") == 0)
			continue;
		sp[n].off = t.len;
		put_goquote(&t, l->kv[i].key);
		tt__buf_put(&t, ":", 1);
		put_goquote(&t, l->kv[i].value);
		sp[n].len = t.len - sp[n].off;
		n++;
	}
	if (t.err) {
		b->err = t.err;
		tt__buf_free(&t);
		return;
	}
	for (size_t i = 0; i < n; i++)
		sp[i].base = t.data;
	qsort(sp, n, sizeof *sp, cmp_span);
	tt__buf_put(b, "{", 1);
	for (size_t i = 0; i < n; i++) {
		if (i)
			tt__buf_put(b, ", ", 2);
		tt__buf_put(b, t.data + sp[i].off, sp[i].len);
	}
	tt__buf_put(b, "}", 1);
	tt__buf_free(&t);
}

/* ---- debug=1 ------------------------------------------------------------ */

typedef struct group {
	const tt__gsnap *g; /* the first goroutine with this stack */
	size_t count;
	uint64_t hash;
} group;

static uint64_t stack_hash(const tt__gsnap *g)
{
	uint64_t h = 0x9e3779b97f4a7c15ull ^ g->npcs;
	for (uint32_t i = 0; i < g->npcs; i++)
		h = (h ^ g->pcs[i]) * 0xff51afd7ed558ccdull;
	if (g->name)
		for (const char *p = g->name; *p; p++)
			h = (h ^ (unsigned char)*p) * 0xc4ceb9fe1a85ec53ull;
	if (g->labels)
		h = (h ^ g->labels->hash) * 0xc4ceb9fe1a85ec53ull;
	return h ^ (h >> 29);
}

static bool same_stack(const tt__gsnap *a, const tt__gsnap *b)
{
	if (a->npcs != b->npcs)
		return false;
	if (memcmp(a->pcs, b->pcs, a->npcs * sizeof *a->pcs) != 0)
		return false;
	if (!tt__labels_equal(a->labels, b->labels))
		return false;
	if (!a->name || !b->name)
		return a->name == b->name;
	return strcmp(a->name, b->name) == 0;
}

static int cmp_groups(const void *a, const void *b)
{
	const group *x = a, *y = b;
	if (x->count != y->count)
		return x->count > y->count ? -1 : 1;
	for (uint32_t i = 0; i < x->g->npcs && i < y->g->npcs; i++)
		if (x->g->pcs[i] != y->g->pcs[i])
			return x->g->pcs[i] < y->g->pcs[i] ? -1 : 1;
	if (x->g->npcs != y->g->npcs)
		return (x->g->npcs > y->g->npcs) - (x->g->npcs < y->g->npcs);
	/* One stack, different labels: Go orders by its record key, so
	 * without labels first, then by the labels line. */
	bool lx = x->g->name || x->g->labels, ly = y->g->name || y->g->labels;
	if (!lx || !ly)
		return lx - ly;
	tt__buf ta = {0}, tb = {0};
	tt__labels_text(&ta, x->g->name, x->g->labels);
	tt__labels_text(&tb, y->g->name, y->g->labels);
	int c = 0;
	if (!ta.err && !tb.err) {
		size_t n = ta.len < tb.len ? ta.len : tb.len;
		c = memcmp(ta.data, tb.data, n);
		if (c == 0)
			c = (ta.len > tb.len) - (ta.len < tb.len);
	}
	tt__buf_free(&ta);
	tt__buf_free(&tb);
	return c;
}

static bool regroup(group **tab, size_t *cap)
{
	size_t ncap = *cap * 2;
	group *n = calloc(ncap, sizeof *n);
	if (n == NULL)
		return false;
	for (size_t j = 0; j < *cap; j++) {
		if (!(*tab)[j].g)
			continue;
		size_t k = (*tab)[j].hash & (ncap - 1);
		while (n[k].g)
			k = (k + 1) & (ncap - 1);
		n[k] = (*tab)[j];
	}
	free(*tab);
	*tab = n;
	*cap = ncap;
	return true;
}

int tt__profile_group(const tt__snapshot *s, bool leaked_only,
		      tt__group **out, size_t *nout)
{
	/* Sized for the groups, not the goroutines: a million goroutines
	 * usually make a few hundred groups. */
	size_t cap = 256, n = 0;
	group *tab = calloc(cap, sizeof *tab);
	if (tab == NULL)
		return -ENOMEM;
	tt__slice sl;
	tt__slice_start(&sl);
	for (size_t i = 0; i < s->n; i++) {
		const tt__gsnap *g = &s->g[i];
		tt__slice_tick(&sl);
		if (leaked_only && !g->leaked)
			continue;
		uint64_t h = stack_hash(g);
		size_t j = h & (cap - 1);
		while (tab[j].g && !(tab[j].hash == h && same_stack(tab[j].g, g)))
			j = (j + 1) & (cap - 1);
		if (tab[j].g == NULL) {
			if ((n + 1) * 2 > cap) {
				if (!regroup(&tab, &cap)) {
					free(tab);
					return -ENOMEM;
				}
				j = h & (cap - 1);
				while (tab[j].g)
					j = (j + 1) & (cap - 1);
			}
			tab[j] = (group){g, 0, h};
			n++;
		}
		tab[j].count++;
	}
	/* Compact, then sort. */
	size_t k = 0;
	for (size_t j = 0; j < cap; j++)
		if (tab[j].g)
			tab[k++] = tab[j];
	qsort(tab, k, sizeof *tab, cmp_groups);
	tt__group *res = malloc((k ? k : 1) * sizeof *res);
	if (res == NULL) {
		free(tab);
		return -ENOMEM;
	}
	for (size_t j = 0; j < k; j++)
		res[j] = (tt__group){tab[j].g, tab[j].count};
	free(tab);
	*out = res;
	*nout = k;
	return 0;
}

/* Cells are padded with tabs to the column's width, as text/tabwriter
 * with (minwidth 1, tabwidth 8, padding 1, padchar '\t') does. */
static void put_tabs(tt__buf *b, size_t len, size_t width)
{
	size_t tabs = (width - len + 7) / 8;
	for (size_t i = 0; i < (tabs ? tabs : 1); i++)
		tt__buf_put(b, "\t", 1);
}

static size_t hex_len(uintptr_t v)
{
	size_t n = 3;
	while (v >>= 4)
		n++;
	return n;
}

static size_t col_width(size_t maxlen)
{
	return (maxlen + 1 + 7) / 8 * 8;
}

static void write_record(tt__buf *b, const tt__group *gr)
{
	const tt__gsnap *g = gr->g;
	tt__buf_dec(b, (int64_t)gr->count);
	tt__buf_puts(b, " @");
	for (uint32_t i = 0; i < g->npcs; i++) {
		tt__buf_put(b, " ", 1);
		tt__buf_hex(b, g->pcs[i]);
	}
	tt__buf_put(b, "\n", 1);
	if (g->name || g->labels) {
		tt__buf_puts(b, "# labels: ");
		tt__labels_text(b, g->name, g->labels);
		tt__buf_put(b, "\n", 1);
	}
	tt__write_frames(b, g);
}

void tt__write_frames(tt__buf *b, const tt__gsnap *g)
{
	/* One line per frame (inlined ones included), in columns. */
	enum { MAXF = TT__TRACE_MAX * 4 };
	tt__frame fr[MAXF];
	int nf = 0;
	for (uint32_t i = 0; i < g->npcs && nf < MAXF; i++)
		nf += tt__frames_at(g, i, fr + nf, MAXF - nf);
	size_t w1 = 0, w2 = 0;
	char offs[MAXF][24];
	for (int i = 0; i < nf; i++) {
		uintptr_t at = fr[i].pc - 1;
		size_t l1 = hex_len(at);
		if (l1 > w1)
			w1 = l1;
		offs[i][0] = 0;
		if (fr[i].entry && !fr[i].inlined)
			snprintf(offs[i], sizeof offs[i], "+%#lx",
				 (unsigned long)(at - fr[i].entry));
		size_t l2 = strlen(fr[i].func) + strlen(offs[i]);
		if (l2 > w2)
			w2 = l2;
	}
	w1 = col_width(w1);
	w2 = col_width(w2);
	for (int i = 0; i < nf; i++) {
		uintptr_t at = fr[i].pc - 1;
		tt__buf_puts(b, "#\t");
		tt__buf_hex(b, at);
		put_tabs(b, hex_len(at), w1);
		tt__buf_puts(b, fr[i].func);
		tt__buf_puts(b, offs[i]);
		put_tabs(b, strlen(fr[i].func) + strlen(offs[i]), w2);
		tt__buf_puts(b, fr[i].file ? fr[i].file
					   : (fr[i].module ? fr[i].module : "?"));
		tt__buf_put(b, ":", 1);
		tt__buf_dec(b, fr[i].line);
		tt__buf_put(b, "\n", 1);
	}
	tt__buf_put(b, "\n", 1);
}

static void write_grouped(out *o, const tt__snapshot *s, const char *name,
			  bool leaked_only)
{
	tt__group *gs;
	size_t ng;
	int r = tt__profile_group(s, leaked_only, &gs, &ng);
	if (r) {
		o->err = r;
		return;
	}
	size_t total = 0;
	for (size_t i = 0; i < ng; i++)
		total += gs[i].count;
	tt__buf_puts(&o->b, name);
	tt__buf_puts(&o->b, " profile: total ");
	tt__buf_dec(&o->b, (int64_t)total);
	tt__buf_put(&o->b, "\n", 1);
	tt__slice sl;
	tt__slice_start(&sl);
	for (size_t i = 0; i < ng && !o->err; i++) {
		write_record(&o->b, &gs[i]);
		flush(o, false);
		tt__slice_tick(&sl);
	}
	free(gs);
}

/* ---- the public calls ------------------------------------------------------ */

/* The threadcreate profile: one record per creation stack, as Go's
 * (debug=2 is written as debug=1, as Go does for every profile but the
 * goroutine one). */
static int write_threadcreate(int debug, tt_write_fn fn, void *arg)
{
	tt__snapshot s;
	int r = tt__threads_create_snapshot(&s);
	if (r)
		return tt__err(r, "tt_profile_write: listing the threads: %s",
			       tt_strerror(r));
	out o = {.fn = fn, .arg = arg};
	if (debug)
		write_grouped(&o, &s, "threadcreate", false);
	else
		o.err = tt__profile_proto_type(&o.b, &s, "threadcreate");
	r = finish(&o);
	tt__snapshot_free(&s);
	return r;
}

/* The block and mutex profiles (block.c); debug=2 is debug=1, as in Go. */
static int write_contention(const char *name, int debug, tt_write_fn fn,
			    void *arg)
{
	out o = {.fn = fn, .arg = arg};
	o.err = tt__block_write(name, debug, &o.b);
	return finish(&o);
}

int tt_profile_write(const char *name, int debug, tt_write_fn fn, void *arg)
{
	if (name == NULL)
		return tt__err(-EINVAL, "tt_profile_write: name is NULL");
	bool leaked_only = false, threads = false, contention = false;
	if (strcmp(name, "goroutine") == 0)
		leaked_only = false;
	else if (strcmp(name, "goroutineleak") == 0)
		leaked_only = true;
	else if (strcmp(name, "threadcreate") == 0)
		threads = true;
	else if (strcmp(name, "block") == 0 || strcmp(name, "mutex") == 0)
		contention = true;
	else
		return tt__err(-EINVAL,
			       "tt_profile_write: unknown profile \"%s\" (want "
			       "\"goroutine\", \"goroutineleak\", "
			       "\"threadcreate\", \"block\" or \"mutex\")",
			       name);
	if (debug < 0 || debug > 2)
		return tt__err(-EINVAL,
			       "tt_profile_write: debug must be 0, 1 or 2, not "
			       "%d",
			       debug);
	if (fn == NULL)
		return tt__err(-EINVAL, "tt_profile_write: fn is NULL");
	if (threads)
		return write_threadcreate(debug, fn, arg);
	if (contention)
		return write_contention(name, debug, fn, arg);
	tt__snapshot s;
	int r = tt__snapshot_take_all(&s, NULL);
	if (r)
		return tt__err(r, "tt_profile_write: out of memory taking the "
				  "snapshot");
	out o = {.fn = fn, .arg = arg};
	if (debug == 2)
		write_all(&o, &s, leaked_only);
	else if (debug == 1)
		write_grouped(&o, &s, name, leaked_only);
	else
		o.err = tt__profile_proto(&o.b, &s, leaked_only);
	r = finish(&o);
	tt__snapshot_free_yielding(&s);
	return r;
}

static int write_fd(void *arg, const void *data, size_t len)
{
	return tt__write_all(*(int *)arg, data, len);
}

int tt_profile_write_fd(const char *name, int debug, int fd)
{
	if (fd < 0)
		return tt__err(-EBADF, "tt_profile_write_fd: bad descriptor %d",
			       fd);
	return tt_profile_write(name, debug, write_fd, &fd);
}

typedef struct membuf {
	char *p;
	size_t len, used;
} membuf;

static int write_mem(void *arg, const void *data, size_t len)
{
	membuf *m = arg;
	size_t room = m->len - m->used;
	size_t n = len < room ? len : room;
	memcpy(m->p + m->used, data, n);
	m->used += n;
	return n < len ? -ENOSPC : 0;
}

size_t tt_stack_dump(char *buf, size_t len, bool all)
{
	if (buf == NULL || len == 0)
		return 0;
	membuf m = {buf, len, 0};
	if (all) {
		tt_profile_write("goroutine", 2, write_mem, &m);
		return m.used;
	}
	tt__sched *s = tt__sched_get();
	tt__gsnap g = {0};
	tt__g *cur = s->current;
	uintptr_t pcs[TT__TRACE_MAX];
	int n = tt__trace_here(pcs, TT__TRACE_MAX, 0);
	int first = 0;
	g.npcs = (uint32_t)tt__stack_visible(pcs, n, cur->is_main, &first);
	g.pcs = pcs + first;
	g.id = cur->id;
	g.parent_id = cur->parent_id;
	g.create_pc = (uintptr_t)cur->create_pc;
	g.state = TT_G_RUNNING;
	g.current = true;
	tt__buf b = {0};
	tt__write_goroutine(&b, &g, tt_now());
	/* runtime.Stack ends without the blank line. */
	if (b.len && !b.err)
		b.len--;
	write_mem(&m, b.data, b.err ? 0 : b.len);
	tt__buf_free(&b);
	return m.used;
}

/* ---- panics, the deadlock report, SIGQUIT ------------------------------- */

void tt__print_stacks(int fd, bool all)
{
	tt__snapshot s;
	if (tt__snapshot_take(&s) != 0)
		return;
	out o = {.fn = write_fd, .arg = &fd};
	size_t cur = find_current(&s, NULL);
	for (size_t k = 0; k < s.n && !o.err; k++) {
		const tt__gsnap *g = &s.g[current_first(&s, cur, k)];
		if (!all && !g->current)
			continue;
		tt__write_goroutine(&o.b, g, s.taken_at);
		flush(&o, false);
	}
	flush(&o, true);
	tt__snapshot_free(&s);
	tt__buf_free(&o.b);
}

static struct sigaction old_quit;
static bool quit_on;

static void print_all_stacks(void *arg)
{
	(void)arg;
	tt__print_stacks(2, true);
	/* Then each other thread's, printed by that thread (a goroutine
	 * running there is listed once it parks): a thread running code
	 * outside tether stops the list after 200 ms. */
	tt__print_other_threads(tt__tls_sched, 200 * TT_MILLISECOND);
}

static void on_sigquit(int sig)
{
	(void)sig;
	/* Go's behaviour: every goroutine's stack, then exit status 2. This
	 * runs in the handler, on the thread that took the signal, and
	 * allocates: if the signal interrupted the allocator, the dump can
	 * stop part way. It is a last-resort tool for a stuck program, as in
	 * Go. The handler runs on the interrupted stack, which may be a
	 * small goroutine's nearly used up, so the dump moves to the
	 * thread's runtime stack. */
	static const char head[] = "SIGQUIT: quit\n\n";
	if (write(2, head, sizeof head - 1) < 0) {
		/* nothing to do */
	}
	if (tt__symbolizer_held()) {
		/* The symbolizer's lock is this thread's: frames print
		 * without names (tt__symbolize does not wait for itself). */
		static const char busy[] =
			"tether: SIGQUIT interrupted the symbolizer: frames "
			"are printed as \"?\", without function or line\n\n";
		if (write(2, busy, sizeof busy - 1) < 0) {
			/* nothing to do */
		}
	}
	if (tt__tls_sched)
		tt__on_runtime_stack(print_all_stacks, NULL);
	_exit(2);
}

int tt_traceback_on_sigquit(bool on)
{
	if (on == quit_on)
		return 0;
	if (on) {
		struct sigaction sa;
		memset(&sa, 0, sizeof sa);
		sa.sa_handler = on_sigquit;
		sigemptyset(&sa.sa_mask);
		/* On the interrupted stack: the dump needs more room than
		 * the small alternate stack kept for overflow reports. */
		sa.sa_flags = 0;
		if (sigaction(SIGQUIT, &sa, &old_quit) != 0)
			return tt__err(-errno, "tt_traceback_on_sigquit: "
					       "sigaction: %s",
				       strerror(errno));
	} else if (sigaction(SIGQUIT, &old_quit, NULL) != 0) {
		return tt__err(-errno,
			       "tt_traceback_on_sigquit: sigaction: %s",
			       strerror(errno));
	}
	quit_on = on;
	return 0;
}

__attribute__((constructor)) static void traceback_from_env(void)
{
	const char *v = getenv("TETHER_TRACEBACK");
	if (v && (strcmp(v, "all") == 0 || strcmp(v, "1") == 0))
		tt_traceback_on_sigquit(true);
}
