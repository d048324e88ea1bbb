/* tether — the debug server's HTML: the /debug/pprof/ index and the page
 * of goroutines grouped by stack, with a flame graph.
 *
 * Design notes
 * ------------
 * The page is built from one snapshot (tt__snapshot_take_yielding), so it
 * is consistent, and the goroutines run between its slices of work and
 * while it is formatted. Equal
 * stacks (equal PC lists) are grouped with a hash table, so a million
 * goroutines parked at one place cost one symbolization, not a million.
 * Groups are sorted by size; the first MAX_GROUPS are shown (the rest are
 * counted and pointed to ?debug=1).
 *
 * The flame graph merges groups into a tree by function name, outermost
 * frame at the bottom, so the top edge is where goroutines are parked and
 * each box's width is how many are parked below it. It is plain SVG with
 * a <title> per box (the browser shows it on hover): no script, nothing
 * fetched, readable with JavaScript off. Boxes narrower than a pixel are
 * left out.
 *
 * Everything that comes from the program (function and file names,
 * goroutine names) is HTML-escaped; nothing is ever put in a URL or a
 * script. */
#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "debug/debug.h"
#include "trace/trace.h"

#define MAX_GROUPS 500
#define MAX_FRAMES_SHOWN 64
#define FLAME_W 1200.0
#define FLAME_ROW 18

/* ---- escaping and small formats ------------------------------------------ */

void tt__html_escape(tt__buf *b, const char *s, size_t n)
{
	size_t run = 0; /* bytes to copy as they are */
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)s[i];
		const char *rep = NULL;
		switch (c) {
		case '&': rep = "&amp;"; break;
		case '<': rep = "&lt;"; break;
		case '>': rep = "&gt;"; break;
		case '"': rep = "&quot;"; break;
		case '\'': rep = "&#39;"; break;
		default:
			if (c < 0x20 || c == 0x7f)
				rep = "\xef\xbf\xbd"; /* U+FFFD */
		}
		if (rep) {
			tt__buf_put(b, s + i - run, run);
			tt__buf_puts(b, rep);
			run = 0;
		} else {
			run++;
		}
	}
	tt__buf_put(b, s + n - run, run);
}

static void esc(tt__buf *b, const char *s)
{
	if (s)
		tt__html_escape(b, s, strlen(s));
}

/* 1234567 as "1,234,567". */
static void put_count(tt__buf *b, uint64_t v)
{
	char d[32];
	int n = snprintf(d, sizeof d, "%llu", (unsigned long long)v);
	for (int i = 0; i < n; i++) {
		tt__buf_put(b, d + i, 1);
		if ((n - i - 1) % 3 == 0 && i != n - 1)
			tt__buf_puts(b, ",");
	}
}

/* A duration for people: "350 ms", "42 s", "3 min", "2 h 5 min". */
static void put_age(tt__buf *b, int64_t ns)
{
	if (ns < TT_SECOND)
		tt__buf_printf(b, "%lld ms", (long long)(ns / TT_MILLISECOND));
	else if (ns < 2 * TT_MINUTE)
		tt__buf_printf(b, "%lld s", (long long)(ns / TT_SECOND));
	else if (ns < 120 * TT_MINUTE)
		tt__buf_printf(b, "%lld min", (long long)(ns / TT_MINUTE));
	else
		tt__buf_printf(b, "%lld h %lld min",
			       (long long)(ns / (60 * TT_MINUTE)),
			       (long long)(ns / TT_MINUTE % 60));
}

/* The path from its last two components: "src/chan/chan.c". */
static const char *short_file(const char *f)
{
	if (!f)
		return NULL;
	const char *last = strrchr(f, '/');
	if (!last || last == f)
		return f;
	const char *p = last - 1;
	while (p > f && *p != '/')
		p--;
	return *p == '/' ? p + 1 : f;
}

static void put_html_head(tt__buf *b, const char *title)
{
	tt__buf_puts(b, "<!DOCTYPE html>\n<html lang=\"en\"><head>"
			"<meta charset=\"utf-8\">"
			"<meta name=\"viewport\" content=\"width=device-width\">"
			"<title>");
	esc(b, title);
	tt__buf_puts(b, "</title>\n<style>\n"
		"body{font:14px/1.4 system-ui,sans-serif;margin:1.5em;"
		"color:#222;background:#fafafa}\n"
		"h1{font-size:1.5em;margin:0 0 .2em}"
		"h2{font-size:1.15em;margin:1.5em 0 .5em}\n"
		"nav a{margin-right:1.2em}\n"
		"code,.loc{font:13px ui-monospace,monospace}\n"
		".meta{color:#666}\n"
		"table.idx td{padding:.1em 1em .1em 0}\n"
		"details.group{background:#fff;border:1px solid #ddd;"
		"border-radius:4px;margin:.4em 0;padding:.3em .6em}\n"
		"details.group summary{cursor:pointer}\n"
		".count{font-weight:600;display:inline-block;min-width:6em;"
		"text-align:right;margin-right:.6em}\n"
		".state{background:#eef;border-radius:3px;padding:0 .4em;"
		"margin-right:.4em;font-size:12px}\n"
		".age{color:#a40;margin-right:.6em;font-size:12px}\n"
		"ol.frames{margin:.4em 0;padding-left:2em}\n"
		"ol.frames li{margin:.1em 0}\n"
		".fn{color:#036}.loc{color:#666;margin-left:.8em}\n"
		".inl{color:#888;font-size:12px;margin-left:.5em}\n"
		".created{color:#555;margin:.2em 0 .3em}\n"
		"svg.flame{width:100%;height:auto;background:#fff;"
		"border:1px solid #ddd}\n"
		"svg.flame text{font:11px ui-monospace,monospace;"
		"pointer-events:none}\n"
		"</style></head><body>\n");
}

/* ---- the index ---------------------------------------------------------- */

/* The process's live OS threads (the threadcreate profile's total). */
static int count_threads(void)
{
	DIR *d = opendir("/proc/self/task");
	if (!d)
		return 0;
	int n = 0;
	struct dirent *e;
	while ((e = readdir(d)))
		n += e->d_name[0] != '.';
	closedir(d);
	return n;
}

int tt__debug_index(tt__buf *b)
{
	tt__sched *s = tt__sched_get();
	uint64_t total = 0, leaked = 0;
	for (tt__g *g = s->all; g; g = g->all_next) {
		if (g->state == TT_G_DEAD)
			continue;
		total++;
		leaked += g->leak != NULL;
	}
	put_html_head(b, "/debug/pprof/");
	tt__buf_puts(b,
		"<h1>/debug/pprof/</h1>\n"
		"<nav><a href=\"/\">goroutines, grouped (page)</a></nav>\n"
		"<p>Set <code>debug=1</code> as a query parameter to export in "
		"legacy text format, <code>debug=2</code> for every stack; "
		"without it the profile is gzipped profile.proto for "
		"<code>go tool pprof</code>.</p>\n"
		"<p>Types of profiles available:</p>\n"
		"<table class=\"idx\"><thead><tr><td>Count</td><td>Profile"
		"</td></tr></thead>\n");
	tt__buf_printf(b, "<tr><td>%llu</td><td><a href=\"goroutine?debug=1\">"
			  "goroutine</a></td></tr>\n",
		       (unsigned long long)total);
	tt__buf_printf(b, "<tr><td>%llu</td><td><a href=\"goroutineleak?"
			  "debug=1\">goroutineleak</a></td></tr>\n",
		       (unsigned long long)leaked);
	tt__buf_printf(b, "<tr><td>%d</td><td><a href=\"threadcreate?"
			  "debug=1\">threadcreate</a></td></tr>\n",
		       count_threads());
	tt__buf_puts(b,
		"<tr><td></td><td><a href=\"cmdline\">cmdline</a></td></tr>\n"
		"<tr><td></td><td><a href=\"profile\">profile</a></td></tr>\n"
		"<tr><td></td><td><a href=\"/metrics\">/metrics</a></td>"
		"</tr>\n"
		"</table>\n<p><a href=\"goroutine?debug=2\">full goroutine "
		"stack dump</a></p>\n"
		"<p>Profile descriptions:</p><ul>\n"
		"<li><b>cmdline:</b> The command line invocation of the "
		"current program, its arguments separated by NUL bytes.</li>\n"
		"<li><b>goroutine:</b> stack traces of all current "
		"goroutines. Use debug=2 as a query parameter to export in "
		"the same format as an unrecovered panic.</li>\n"
		"<li><b>goroutineleak:</b> stack traces of goroutines proven "
		"leaked: parked on objects no one can reach any more.</li>\n"
		"<li><b>profile:</b> CPU profile. You can specify the duration "
		"in the seconds GET parameter. After you get the profile file, "
		"use the go tool pprof command to investigate the profile."
		"</li>\n"
		"<li><b>threadcreate:</b> Stack traces that led to the "
		"creation of new OS threads</li>\n"
		"<li><b>/metrics:</b> goroutine counts by state, wait reason "
		"and time waited, proven leaks, scheduler, stack and process "
		"figures, in Prometheus's text format (for a Prometheus "
		"scrape job); read from counters, so cheap with any number "
		"of goroutines.</li>\n"
		"</ul>\n</body></html>\n");
	return b->err;
}

/* ---- grouping ----------------------------------------------------------- */

typedef struct state_count {
	const char *state;
	uint64_t n;
} state_count;

typedef struct group {
	const uintptr_t *pcs;
	uint32_t npcs;
	uint64_t hash;
	uint64_t count;
	uint64_t waiting;   /* of those, parked (the flame graph's share) */
	int64_t oldest;     /* earliest wait_since, 0 if none waits */
	const tt__gsnap *first; /* lowest id */
	bool mixed_create;  /* members created at different places */
	bool mixed_name;    /* members named differently (or some not) */
	bool any_current;   /* holds the goroutine writing this page */
	state_count states[8];
	uint32_t nstates;   /* distinct states; beyond 8 folded into the last */
} group;

static uint64_t hash_pcs(const uintptr_t *pcs, uint32_t n)
{
	uint64_t h = 0x9e3779b97f4a7c15u ^ n;
	for (uint32_t i = 0; i < n; i++) {
		h ^= pcs[i];
		h *= 0xff51afd7ed558ccdu;
		h ^= h >> 32;
	}
	return h;
}

typedef struct grouping {
	group *v;
	size_t n, cap;
	uint32_t *slots; /* 1 + index into v; 0 empty */
	size_t nslots;   /* power of two */
} grouping;

static int grow_slots(grouping *gr)
{
	size_t ns = gr->nslots ? gr->nslots * 2 : 1024;
	uint32_t *sl = calloc(ns, sizeof *sl);
	if (!sl)
		return -ENOMEM;
	for (size_t i = 0; i < gr->n; i++) {
		size_t j = gr->v[i].hash & (ns - 1);
		while (sl[j])
			j = (j + 1) & (ns - 1);
		sl[j] = (uint32_t)(i + 1);
	}
	free(gr->slots);
	gr->slots = sl;
	gr->nslots = ns;
	return 0;
}

static group *group_for(grouping *gr, const tt__gsnap *g)
{
	if ((gr->n + 1) * 2 > gr->nslots && grow_slots(gr))
		return NULL;
	uint64_t h = hash_pcs(g->pcs, g->npcs);
	size_t j = h & (gr->nslots - 1);
	while (gr->slots[j]) {
		group *x = &gr->v[gr->slots[j] - 1];
		if (x->hash == h && x->npcs == g->npcs &&
		    memcmp(x->pcs, g->pcs, g->npcs * sizeof *g->pcs) == 0)
			return x;
		j = (j + 1) & (gr->nslots - 1);
	}
	if (gr->n == gr->cap) {
		size_t nc = gr->cap ? gr->cap * 2 : 64;
		group *v = realloc(gr->v, nc * sizeof *v);
		if (!v)
			return NULL;
		gr->v = v;
		gr->cap = nc;
	}
	group *x = &gr->v[gr->n++];
	memset(x, 0, sizeof *x);
	x->pcs = g->pcs;
	x->npcs = g->npcs;
	x->hash = h;
	x->first = g;
	gr->slots[j] = (uint32_t)gr->n;
	return x;
}

static void group_add(group *x, const tt__gsnap *g)
{
	x->count++;
	x->waiting += g->state == TT_G_WAITING;
	if (g->wait_since && (!x->oldest || g->wait_since < x->oldest))
		x->oldest = g->wait_since;
	if (g->create_pc != x->first->create_pc)
		x->mixed_create = true;
	if (g != x->first &&
	    (!g->name != !x->first->name ||
	     (g->name && strcmp(g->name, x->first->name) != 0)))
		x->mixed_name = true;
	x->any_current |= g->current;
	const char *st = tt__gsnap_state(g);
	for (uint32_t i = 0; i < x->nstates; i++) {
		if (x->states[i].state == st ||
		    strcmp(x->states[i].state, st) == 0) {
			x->states[i].n++;
			return;
		}
	}
	if (x->nstates < 8) {
		x->states[x->nstates].state = st;
		x->states[x->nstates++].n = 1;
	} else {
		x->states[7].n++;
	}
}

static int by_count(const void *a, const void *b)
{
	const group *x = a, *y = b;
	if (x->count != y->count)
		return x->count < y->count ? 1 : -1;
	return x->first->id < y->first->id ? -1 : x->first->id > y->first->id;
}

/* Frames of one goroutine's stack, outermost last, inlined frames
 * expanded; returns how many (at most max). tether's own frames inlined
 * at the top (the park inside tt_chan_recv) are left out, as the dumps
 * leave them out, so that the top frame is the call the program made. */
static int stack_frames(const uintptr_t *pcs, uint32_t npcs, tt__frame *out,
			int max)
{
	/* The snapshot's PCs are the visible ones already; tt__frames_at
	 * drops the runtime's frames inlined into the top call. */
	tt__gsnap g = {.pcs = pcs, .npcs = npcs};
	int n = 0;
	for (uint32_t i = 0; i < npcs && n < max; i++)
		n += tt__frames_at(&g, i, out + n, max - n);
	return n;
}

/* ---- the flame graph ---------------------------------------------------- */

typedef struct fnode {
	const char *func;
	uint64_t count;
	uint32_t child, sibling; /* indices; 0 = none (0 is the root) */
} fnode;

typedef struct flame {
	fnode *v;
	size_t n, cap;
	int depth; /* deepest level */
	int err;
} flame;

static uint32_t flame_child(flame *f, uint32_t parent, const char *func)
{
	for (uint32_t c = f->v[parent].child; c; c = f->v[c].sibling)
		if (f->v[c].func == func || strcmp(f->v[c].func, func) == 0)
			return c;
	if (f->n == f->cap) {
		size_t nc = f->cap * 2;
		fnode *v = realloc(f->v, nc * sizeof *v);
		if (!v) {
			f->err = -ENOMEM;
			return 0;
		}
		f->v = v;
		f->cap = nc;
	}
	uint32_t c = (uint32_t)f->n++;
	f->v[c] = (fnode){.func = func, .sibling = f->v[parent].child};
	f->v[parent].child = c;
	return c;
}

/* The frames of one group, outermost first, into the tree. */
static void flame_add(flame *f, const tt__frame *fr, int nfr, uint64_t count)
{
	uint32_t at = 0;
	f->v[0].count += count;
	for (int i = nfr - 1; i >= 0 && !f->err; i--) {
		at = flame_child(f, at, fr[i].func ? fr[i].func : "?");
		if (f->err)
			return;
		f->v[at].count += count;
		if (nfr - i > f->depth)
			f->depth = nfr - i;
	}
}

/* A warm colour from the name, so one function keeps its colour. */
static void flame_colour(const char *s, int *r, int *g, int *bl)
{
	uint32_t h = 2166136261u;
	for (; *s; s++)
		h = (h ^ (unsigned char)*s) * 16777619u;
	*r = 205 + (int)(h % 50);
	*g = 80 + (int)((h >> 8) % 130);
	*bl = 40 + (int)((h >> 16) % 50);
}

static void flame_draw(tt__buf *b, const flame *f, uint32_t at, int level,
		       double x, double unit)
{
	const fnode *nd = &f->v[at];
	double w = (double)nd->count * unit;
	if (w < 1.0)
		return;
	double y = (double)(f->depth - level) * FLAME_ROW;
	const char *name = at == 0 ? "all parked goroutines" : nd->func;
	int r, g, bl;
	flame_colour(name, &r, &g, &bl);
	if (at == 0)
		r = 200, g = 200, bl = 200;
	tt__buf_printf(b, "<g><title>");
	esc(b, name);
	tt__buf_printf(b, " \xe2\x80\x94 %llu goroutine%s (%.1f%%)</title>"
			  "<rect x=\"%.1f\" y=\"%.1f\" width=\"%.1f\" "
			  "height=\"%d\" rx=\"2\" fill=\"rgb(%d,%d,%d)\"/>",
		       (unsigned long long)nd->count, nd->count == 1 ? "" : "s",
		       100.0 * (double)nd->count / (double)f->v[0].count, x,
		       y, w - 0.5, FLAME_ROW - 1, r, g, bl);
	size_t fit = (size_t)((w - 6) / 6.7); /* characters that fit */
	size_t len = strlen(name);
	if (fit >= 3) {
		tt__buf_printf(b, "<text x=\"%.1f\" y=\"%.1f\">", x + 3,
			       y + FLAME_ROW - 5);
		if (len <= fit) {
			esc(b, name);
		} else {
			tt__html_escape(b, name, fit - 2);
			tt__buf_puts(b, "..");
		}
		tt__buf_puts(b, "</text>");
	}
	tt__buf_puts(b, "</g>\n");
	for (uint32_t c = nd->child; c; c = f->v[c].sibling) {
		flame_draw(b, f, c, level + 1, x, unit);
		x += (double)f->v[c].count * unit;
	}
}

static void flame_svg(tt__buf *b, const flame *f)
{
	int h = (f->depth + 1) * FLAME_ROW;
	tt__buf_printf(b, "<svg class=\"flame\" id=\"flamegraph\" "
			  "xmlns=\"http://www.w3.org/2000/svg\" "
			  "viewBox=\"0 0 %d %d\" width=\"%d\" height=\"%d\" "
			  "role=\"img\" aria-label=\"flame graph of parked "
			  "goroutines\">\n",
		       (int)FLAME_W, h, (int)FLAME_W, h);
	if (f->v[0].count)
		flame_draw(b, f, 0, 0, 0.0, FLAME_W / (double)f->v[0].count);
	tt__buf_puts(b, "</svg>\n");
}

/* ---- the page ----------------------------------------------------------- */

static void put_frame(tt__buf *b, const tt__frame *fr)
{
	tt__buf_puts(b, "<li><code class=\"fn\">");
	esc(b, fr->func ? fr->func : "?");
	tt__buf_puts(b, "</code>");
	if (fr->file) {
		tt__buf_puts(b, "<span class=\"loc\" title=\"");
		esc(b, fr->file);
		tt__buf_puts(b, "\">");
		esc(b, short_file(fr->file));
		tt__buf_printf(b, ":%d</span>", fr->line);
	} else {
		tt__buf_printf(b, "<span class=\"loc\">%#lx</span>",
			       (unsigned long)fr->pc);
	}
	if (fr->inlined)
		tt__buf_puts(b, "<span class=\"inl\">(inlined)</span>");
	tt__buf_puts(b, "</li>\n");
}

static void put_group(tt__buf *b, const group *x, size_t ix, int64_t now,
		      const tt__frame *fr, int nfr)
{
	tt__buf_printf(b, "<details class=\"group\" id=\"g%zu\" "
			  "data-count=\"%llu\"%s><summary>"
			  "<span class=\"count\">",
		       ix + 1, (unsigned long long)x->count,
		       ix < 20 ? " open" : "");
	put_count(b, x->count);
	tt__buf_puts(b, "</span>");
	for (uint32_t i = 0; i < x->nstates; i++) {
		tt__buf_puts(b, "<span class=\"state\">");
		esc(b, x->states[i].state);
		if (i == 7 && x->nstates == 8)
			tt__buf_puts(b, " and others");
		tt__buf_puts(b, " \xc3\x97 ");
		put_count(b, x->states[i].n);
		tt__buf_puts(b, "</span>");
	}
	if (x->oldest) {
		tt__buf_puts(b, "<span class=\"age\">oldest wait ");
		put_age(b, now - x->oldest);
		tt__buf_puts(b, "</span>");
	}
	tt__buf_puts(b, "<code class=\"fn\">");
	esc(b, nfr ? fr[0].func : "?");
	tt__buf_puts(b, "</code>");
	if (x->any_current)
		tt__buf_puts(b, " <span class=\"meta\">(this page's own "
				"goroutine)</span>");
	tt__buf_puts(b, "</summary>\n<ol class=\"frames\">\n");
	int shown = nfr < MAX_FRAMES_SHOWN ? nfr : MAX_FRAMES_SHOWN;
	for (int i = 0; i < shown; i++)
		put_frame(b, &fr[i]);
	tt__buf_puts(b, "</ol>\n");
	const tt__gsnap *g = x->first;
	if (g->create_pc) {
		tt__frame cf[4];
		int n = tt__symbolize(g->create_pc, true, cf, 4);
		tt__buf_puts(b, "<p class=\"created\">created by <code "
				"class=\"fn\">");
		esc(b, n ? cf[0].func : "?");
		tt__buf_puts(b, "</code>");
		if (n && cf[0].file) {
			tt__buf_puts(b, " <span class=\"loc\">");
			esc(b, short_file(cf[0].file));
			tt__buf_printf(b, ":%d</span>", cf[0].line);
		}
		tt__buf_printf(b, " in goroutine %lld",
			       (long long)g->parent_id);
		if (x->mixed_create)
			tt__buf_puts(b, " (and elsewhere, for some)");
		tt__buf_puts(b, "</p>\n");
	}
	/* The name, for a group of any size: the first member's, and a
	 * note when the others' differ. */
	if (g->name) {
		tt__buf_puts(b, "<p class=\"created\">named <code>");
		esc(b, g->name);
		tt__buf_puts(b, "</code>");
		if (x->mixed_name)
			tt__buf_puts(b, " (others in this group are named "
					"differently, or not at all)");
		tt__buf_puts(b, "</p>\n");
	} else if (x->mixed_name) {
		tt__buf_puts(b, "<p class=\"created\">some are named</p>\n");
	}
	tt__buf_puts(b, "</details>\n");
}

int tt__debug_page(tt__buf *b)
{
	tt__snapshot snap;
	int r = tt__snapshot_take_yielding(&snap);
	if (r)
		return r;
	grouping gr = {0};
	flame fl = {0};
	tt__frame *fr = malloc(TT__TRACE_MAX * 4 * sizeof *fr);
	fl.cap = 256;
	fl.v = calloc(fl.cap, sizeof *fl.v);
	fl.n = 1;
	if (!fr || !fl.v) {
		r = -ENOMEM;
		goto out;
	}
	tt__slice sl;
	tt__slice_start(&sl);
	for (size_t i = 0; i < snap.n; i++) {
		tt__slice_tick(&sl);
		group *x = group_for(&gr, &snap.g[i]);
		if (!x) {
			r = -ENOMEM;
			goto out;
		}
		group_add(x, &snap.g[i]);
	}
	qsort(gr.v, gr.n, sizeof *gr.v, by_count);

	/* The flame graph takes every parked goroutine, the list the
	 * biggest groups of all. */
	for (size_t i = 0; i < gr.n; i++) {
		if (gr.v[i].waiting == 0)
			continue;
		int nfr = stack_frames(gr.v[i].pcs, gr.v[i].npcs, fr,
				       TT__TRACE_MAX * 4);
		flame_add(&fl, fr, nfr, gr.v[i].waiting);
	}
	if (fl.err) {
		r = fl.err;
		goto out;
	}

	char exe[256] = "?";
	ssize_t el = readlink("/proc/self/exe", exe, sizeof exe - 1);
	if (el > 0)
		exe[el] = '\0';
	time_t wall = time(NULL);
	struct tm tm;
	char when[64] = "";
	if (gmtime_r(&wall, &tm))
		strftime(when, sizeof when, "%Y-%m-%d %H:%M:%S UTC", &tm);

	put_html_head(b, "goroutines");
	tt__buf_puts(b, "<header><h1><span id=\"total\">");
	put_count(b, snap.n);
	tt__buf_printf(b, "</span> goroutine%s in %zu stack%s</h1>\n"
			  "<p class=\"meta\">",
		       snap.n == 1 ? "" : "s", gr.n, gr.n == 1 ? "" : "s");
	esc(b, exe);
	tt__buf_printf(b, ", pid %ld, %s</p>\n", (long)getpid(), when);
	tt__buf_puts(b,
		"<nav><a href=\"/debug/pprof/\">/debug/pprof/</a>"
		"<a href=\"/debug/pprof/goroutine?debug=1\">grouped text "
		"(debug=1)</a>"
		"<a href=\"/debug/pprof/goroutine?debug=2\">every stack "
		"(debug=2)</a>"
		"<a href=\"/debug/pprof/goroutine\">profile.proto "
		"(go tool pprof)</a>"
		"<a href=\"/debug/pprof/goroutineleak?debug=1\">proven "
		"leaks</a></nav></header>\n");

	tt__buf_puts(b, "<section id=\"flame\"><h2>Where goroutines are "
			"parked</h2>\n<p class=\"meta\">Outermost call at the "
			"bottom; the top edge is where each goroutine waits; "
			"width is the number of goroutines. Hover for "
			"counts.</p>\n");
	flame_svg(b, &fl);
	tt__buf_puts(b, "</section>\n<section id=\"groups\"><h2>Goroutines "
			"by stack, most first</h2>\n");
	size_t shown = gr.n < MAX_GROUPS ? gr.n : MAX_GROUPS;
	for (size_t i = 0; i < shown; i++) {
		int nfr = stack_frames(gr.v[i].pcs, gr.v[i].npcs, fr,
				       TT__TRACE_MAX * 4);
		put_group(b, &gr.v[i], i, snap.taken_at, fr, nfr);
	}
	if (shown < gr.n) {
		uint64_t rest = 0;
		for (size_t i = shown; i < gr.n; i++)
			rest += gr.v[i].count;
		tt__buf_printf(b, "<p class=\"meta\">%zu more stacks (",
			       gr.n - shown);
		put_count(b, rest);
		tt__buf_puts(b, " goroutines) are not shown: see <a href=\""
				"/debug/pprof/goroutine?debug=1\">debug=1"
				"</a>.</p>\n");
	}
	tt__buf_puts(b, "</section>\n</body></html>\n");
	r = b->err;
out:
	free(fr);
	free(fl.v);
	free(gr.v);
	free(gr.slots);
	tt__snapshot_free(&snap);
	return r;
}
