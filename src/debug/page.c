/* tether — the debug server's HTML: the /debug/pprof/ index and the page
 * of goroutines grouped by stack, with a flame graph.
 *
 * Design notes
 * ------------
 * The page is built from one snapshot (tt__snapshot_take_all), so it
 * is consistent, and the goroutines run between its slices of work and
 * while it is formatted. Equal
 * stacks (equal PC lists) are grouped with a hash table, so a million
 * goroutines parked at one place cost one symbolization, not a million.
 * Groups are sorted by mark, then size; the first MAX_GROUPS are shown
 * (the rest are counted and pointed to ?debug=1).
 *
 * Marks. A group holding proven leaks (tt__gsnap.leaked) is marked
 * "proven leak" and sorted first. Each view of the page is recorded in
 * the server's history (tt__page_hist: group counts keyed by stack hash
 * and state, the last TT__HIST_KEEP views, a few KB each) and compared
 * with an earlier one: the previous view, or ?since=ID. A group is
 * marked "growing" when it has more goroutines than then and at least as
 * many as it had then (one at least) have been parked longer than
 * ?min_wait= (default a minute): goroutines that arrived and never left.
 * A steady pool (idle workers, same count) gets no mark, nor does a busy
 * one whose members come and go within min_wait, nor the debug server's
 * own connections (a browser's idle keep-alive ones wait long). ?diff=ID shows every
 * stack and state then, now and the delta, most grown first.
 *
 * The flame graph merges groups into a tree by function name, outermost
 * frame at the bottom, so the top edge is where goroutines are parked and
 * each box's width is how many are parked below it. It is plain SVG with
 * a <title> per box (the browser shows it on hover), readable with
 * JavaScript off; a small inline script (flame_script) adds zoom on click
 * and search by function name, reading only data- attributes. Boxes
 * narrower than FLAME_MIN_W are left out. The groups list needs no
 * script.
 *
 * Everything that comes from the program (function and file names,
 * goroutine names) is HTML-escaped; nothing of it is ever put in a URL
 * or in the script's text (links carry only numbers). */
#include <dirent.h>
#include <errno.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "debug/debug.h"
#include "debug/http.h"
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
		"svg.flame g.f{cursor:pointer}"
		"svg.flame g.hl rect{fill:rgb(60,110,255)}\n"
		"#flame-tools{margin:.3em 0}#flame-match{font-weight:600}\n"
		".mark{border-radius:3px;padding:0 .45em;margin-right:.5em;"
		"font-size:12px;font-weight:600;color:#fff}\n"
		".mark.grow,.alert.grow{background:rgb(208,0,111);color:#fff}"
		"\n.mark.leak,.alert.leak{background:rgb(160,0,0);color:#fff}"
		"\n.alert{padding:.5em .8em;border-radius:4px;margin:.5em 0;"
		"font-weight:600}.alert a{color:#fff}\n"
		"details.group.grow{border:2px solid rgb(208,0,111)}"
		"details.group.leak{border:2px solid rgb(160,0,0)}\n"
		".delta{color:#666;font-size:12px;margin-right:.6em}"
		".name{color:#063;font-size:12px}\n"
		"table.diff{border-collapse:collapse;background:#fff}"
		"table.diff td,table.diff th{border:1px solid #ddd;"
		"padding:.15em .5em;vertical-align:top;text-align:left}"
		"td.num{text-align:right;font-variant-numeric:tabular-nums}\n"
		"tr.up td.num{color:rgb(208,0,111);font-weight:600}"
		"tr.down td.num{color:#070}\n"
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
		if (g->state == TT_G_DEAD || g->proxy)
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
	tt__buf_puts(b, "<tr><td></td><td><a href=\"block?debug=1\">block"
			"</a></td></tr>\n<tr><td></td><td><a href=\"mutex?"
			"debug=1\">mutex</a></td></tr>\n");
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
		"<li><b>block:</b> Stack traces that led to blocking on "
		"synchronization primitives</li>\n"
		"<li><b>cmdline:</b> The command line invocation of the "
		"current program, its arguments separated by NUL bytes.</li>\n"
		"<li><b>goroutine:</b> stack traces of all current "
		"goroutines. Use debug=2 as a query parameter to export in "
		"the same format as an unrecovered panic.</li>\n"
		"<li><b>goroutineleak:</b> stack traces of goroutines proven "
		"leaked: parked on objects no one can reach any more.</li>\n"
		"<li><b>mutex:</b> Stack traces of holders of contended "
		"mutexes</li>\n"
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

enum { MARK_NONE, MARK_GROWING, MARK_LEAK };

typedef struct group {
	const uintptr_t *pcs;
	uint32_t npcs;
	uint64_t hash;
	uint64_t count;
	uint64_t waiting;   /* of those, parked (the flame graph's share) */
	uint64_t leaked;    /* of those, proven leaked */
	uint64_t waited_long; /* parked since before the cutoff (min_wait) */
	int64_t oldest;     /* earliest wait_since, 0 if none waits */
	int64_t then;       /* count in the base snapshot; -1 unknown */
	int mark;           /* MARK_*: the strongest that holds */
	const tt__gsnap *first; /* lowest id */
	bool mixed_create;  /* members created at different places */
	bool mixed_name;    /* members named differently (or some not) */
	bool mixed_labels;  /* members labelled differently (or some not) */
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

/* FNV-1a of a state word: the history's state key. */
static uint32_t hash_state(const char *s)
{
	uint32_t h = 2166136261u;
	for (; *s; s++)
		h = (h ^ (unsigned char)*s) * 16777619u;
	return h;
}

typedef struct grouping {
	group *v;
	size_t n, cap;
	uint32_t *slots; /* 1 + index into v; 0 empty */
	size_t nslots;   /* power of two */
	int64_t cutoff;  /* parked at or before this: waited longer than
			    min_wait */
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
	x->then = -1;
	gr->slots[j] = (uint32_t)gr->n;
	return x;
}

static void group_add(const grouping *gr, group *x, const tt__gsnap *g)
{
	x->count++;
	x->waiting += g->state == TT_G_WAITING;
	x->leaked += g->leaked;
	x->waited_long += g->state == TT_G_WAITING && g->wait_since &&
			  g->wait_since <= gr->cutoff;
	if (g->wait_since && (!x->oldest || g->wait_since < x->oldest))
		x->oldest = g->wait_since;
	if (g->create_pc != x->first->create_pc)
		x->mixed_create = true;
	if (g != x->first &&
	    (!g->name != !x->first->name ||
	     (g->name && strcmp(g->name, x->first->name) != 0)))
		x->mixed_name = true;
	if (!tt__labels_equal(g->labels, x->first->labels))
		x->mixed_labels = true;
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

static int by_id(const group *x, const group *y)
{
	return x->first->id < y->first->id ? -1 : x->first->id > y->first->id;
}

static int by_count(const void *a, const void *b)
{
	const group *x = a, *y = b;
	if (x->count != y->count)
		return x->count < y->count ? 1 : -1;
	return by_id(x, y);
}

static int64_t growth(const group *x)
{
	return x->then < 0 ? 0 : (int64_t)x->count - x->then;
}

/* The page's order: proven leaks first (most leaked first), then the
 * groups growing (most grown first), then the rest by size. */
static int by_mark(const void *a, const void *b)
{
	const group *x = a, *y = b;
	if (x->mark != y->mark)
		return x->mark < y->mark ? 1 : -1;
	if (x->mark == MARK_LEAK && x->leaked != y->leaked)
		return x->leaked < y->leaked ? 1 : -1;
	if (x->mark == MARK_GROWING && growth(x) != growth(y))
		return growth(x) < growth(y) ? 1 : -1;
	return by_count(a, b);
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

/* ---- the history of snapshots -------------------------------------------- */

static int cmp_entry(const void *a, const void *b)
{
	const tt__hist_entry *x = a, *y = b;
	if (x->stack != y->stack)
		return x->stack < y->stack ? -1 : 1;
	return x->state < y->state ? -1 : x->state > y->state;
}

/* Snapshot id of h, or NULL when it is not kept. */
static const tt__hist_snap *hist_get(const tt__page_hist *h, uint64_t id)
{
	if (!h || id == 0 || id > h->last || id + h->n <= h->last)
		return NULL;
	return &h->s[id % TT__HIST_KEEP];
}

/* The 400's message for a snapshot id that is not kept. */
static int hist_missing(const tt__page_hist *h, const char *param,
			uint64_t id, char *why, size_t whysz)
{
	if (!h || h->n == 0)
		snprintf(why, whysz, "%s=%llu: no snapshot is kept yet (each "
				     "view of the page / takes one)",
			 param, (unsigned long long)id);
	else
		snprintf(why, whysz, "%s=%llu: no such snapshot; the last %u "
				     "are kept, now %llu to %llu",
			 param, (unsigned long long)id, (unsigned)TT__HIST_KEEP,
			 (unsigned long long)(h->last - h->n + 1),
			 (unsigned long long)h->last);
	return -EINVAL;
}

/* The first entry of b for stack (and state, unless any_state), or NULL. */
static const tt__hist_entry *hist_find(const tt__hist_snap *b, uint64_t stack,
				       uint32_t state, bool any_state)
{
	size_t lo = 0, hi = b->n;
	while (lo < hi) {
		size_t mid = (lo + hi) / 2;
		const tt__hist_entry *e = &b->e[mid];
		if (e->stack < stack ||
		    (e->stack == stack && !any_state && e->state < state))
			lo = mid + 1;
		else
			hi = mid;
	}
	if (lo < b->n && b->e[lo].stack == stack &&
	    (any_state || b->e[lo].state == state))
		return &b->e[lo];
	return NULL;
}

/* The count of a stack (every state) in b: -1 when it is not there and
 * b left some groups untracked (it may have been among them). */
static int64_t hist_count(const tt__hist_snap *b, uint64_t stack)
{
	const tt__hist_entry *e = hist_find(b, stack, 0, true);
	if (!e)
		return b->untracked ? -1 : 0;
	int64_t n = 0;
	for (; e < b->e + b->n && e->stack == stack; e++)
		n += e->count;
	return n;
}

/* gr (sorted by count) as the next snapshot of h; returns its id. Does
 * not yield. */
static uint64_t hist_record(tt__page_hist *h, const grouping *gr,
			    int64_t taken_at, uint64_t total)
{
	uint64_t id = h->last + 1;
	tt__hist_snap *s = &h->s[id % TT__HIST_KEEP];
	memset(s, 0, offsetof(tt__hist_snap, e));
	s->id = id;
	s->taken_at = taken_at;
	s->total = total;
	for (size_t i = 0; i < gr->n; i++) {
		const group *x = &gr->v[i];
		for (uint32_t k = 0; k < x->nstates; k++) {
			if (s->n == TT__HIST_ENTRIES) {
				s->untracked += x->states[k].n;
				continue;
			}
			s->e[s->n++] = (tt__hist_entry){
				x->hash, hash_state(x->states[k].state),
				x->states[k].n > UINT32_MAX
					? UINT32_MAX
					: (uint32_t)x->states[k].n};
		}
	}
	qsort(s->e, s->n, sizeof *s->e, cmp_entry);
	h->last = id;
	if (h->n < TT__HIST_KEEP)
		h->n++;
	return id;
}

/* ---- the query ------------------------------------------------------------ */

/* "30s", "5m", "1h", "250ms", or seconds without a unit ("0", "90"). */
static bool parse_wait(const char *v, int64_t *out)
{
	char *end;
	errno = 0;
	if (v[0] < '0' || v[0] > '9')
		return false;
	unsigned long long n = strtoull(v, &end, 10);
	int64_t unit;
	if (strcmp(end, "") == 0 || strcmp(end, "s") == 0)
		unit = TT_SECOND;
	else if (strcmp(end, "ms") == 0)
		unit = TT_MILLISECOND;
	else if (strcmp(end, "m") == 0 || strcmp(end, "min") == 0)
		unit = TT_MINUTE;
	else if (strcmp(end, "h") == 0)
		unit = 60 * TT_MINUTE;
	else
		return false;
	if (errno || n > (unsigned long long)(INT64_MAX / unit))
		return false;
	*out = (int64_t)n * unit;
	return true;
}

static bool parse_id(const char *v, uint64_t *out)
{
	char *end;
	errno = 0;
	if (v[0] < '1' || v[0] > '9')
		return false;
	unsigned long long n = strtoull(v, &end, 10);
	if (errno || *end)
		return false;
	*out = n;
	return true;
}

int tt__page_opts_parse(const char *q, size_t n, tt__page_opts *o, char *why,
			size_t whysz)
{
	*o = (tt__page_opts){.min_wait = TT_MINUTE};
	if (!q)
		return 0;
	char v[32];
	int k = tt__http_query_get(q, n, "min_wait", v, sizeof v);
	if (k == -2 || (k >= 0 && !parse_wait(v, &o->min_wait))) {
		snprintf(why, whysz, "min_wait must be a duration: seconds "
				     "(\"0\", \"90\") or with a unit (\"500ms\", "
				     "\"30s\", \"5m\", \"1h\")");
		return -EINVAL;
	}
	k = tt__http_query_get(q, n, "since", v, sizeof v);
	if (k == -2 || (k >= 0 && !parse_id(v, &o->since))) {
		snprintf(why, whysz, "since must be a snapshot id (a positive "
				     "number the page shows)");
		return -EINVAL;
	}
	k = tt__http_query_get(q, n, "diff", v, sizeof v);
	if (k == -2 || (k >= 0 && !parse_id(v, &o->diff))) {
		snprintf(why, whysz, "diff must be a snapshot id (a positive "
				     "number the page shows)");
		return -EINVAL;
	}
	return 0;
}

/* ---- one view: a snapshot, grouped, against an earlier one --------------- */

typedef struct view {
	tt__snapshot snap;
	bool have_snap;
	grouping gr;
	tt__hist_snap *base;  /* a copy of the snapshot compared with */
	uint64_t id;          /* this view's snapshot id; 0: not recorded */
	int64_t min_wait;
	size_t nleak, ngrow;  /* groups marked */
	uint64_t leaked;      /* goroutines proven leaked */
} view;

static void view_free(view *v)
{
	free(v->gr.v);
	free(v->gr.slots);
	free(v->base);
	if (v->have_snap)
		tt__snapshot_free_yielding(&v->snap);
}

/* Whether x is the debug server's own connections (or acceptor): a
 * browser's idle keep-alive connections park for a long time and come
 * and go; they are never marked growing. */
static bool debug_own(const group *x)
{
	return !x->mixed_name && x->first->name &&
	       strncmp(x->first->name, "tether/debug ", 13) == 0;
}

/* Takes the snapshot and groups it, compared with snapshot base_id (0:
 * the newest kept, if any); with record, adds it to *hist. The groups
 * end sorted by mark. 0, -ENOMEM, or -EINVAL (why[] set) when base_id is
 * not kept. */
static int view_take(view *v, tt__page_hist **hist, uint64_t base_id,
		     bool record, int64_t min_wait, char *why, size_t whysz)
{
	memset(v, 0, sizeof *v);
	v->min_wait = min_wait;
	if (!*hist && !(*hist = calloc(1, sizeof **hist)))
		return -ENOMEM;
	tt__page_hist *h = *hist;
	/* The base is copied before anything yields: another view may
	 * record over its slot meanwhile. */
	if (base_id || h->n) {
		const tt__hist_snap *b = hist_get(h, base_id ? base_id : h->last);
		if (!b)
			return hist_missing(h, record ? "since" : "diff",
					    base_id, why, whysz);
		if (!(v->base = malloc(sizeof *v->base)))
			return -ENOMEM;
		memcpy(v->base, b, offsetof(tt__hist_snap, e) +
					   b->n * sizeof *b->e);
	}
	int r = tt__snapshot_take_all(&v->snap, NULL);
	if (r)
		return r;
	v->have_snap = true;
	v->gr.cutoff = v->snap.taken_at - min_wait;
	tt__slice sl;
	tt__slice_start(&sl);
	for (size_t i = 0; i < v->snap.n; i++) {
		tt__slice_tick(&sl);
		group *x = group_for(&v->gr, &v->snap.g[i]);
		if (!x)
			return -ENOMEM;
		group_add(&v->gr, x, &v->snap.g[i]);
	}
	qsort(v->gr.v, v->gr.n, sizeof *v->gr.v, by_count);
	if (record)
		v->id = hist_record(h, &v->gr, v->snap.taken_at, v->snap.n);
	for (size_t i = 0; i < v->gr.n; i++) {
		group *x = &v->gr.v[i];
		if (v->base)
			x->then = hist_count(v->base, x->hash);
		/* Growing: more than then, and at least as many as there
		 * were then (one at least) have been parked longer than
		 * min_wait: the ones seen then have not moved on. */
		uint64_t need = x->then > 0 ? (uint64_t)x->then : 1;
		if (x->leaked) {
			x->mark = MARK_LEAK;
			v->nleak++;
			v->leaked += x->leaked;
		} else if (x->then >= 0 && x->count > (uint64_t)x->then &&
			   x->waited_long >= need && !debug_own(x)) {
			x->mark = MARK_GROWING;
			v->ngrow++;
		}
	}
	qsort(v->gr.v, v->gr.n, sizeof *v->gr.v, by_mark);
	return 0;
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
	size_t boxes; /* drawn so far (at most MAX_FLAME_BOXES) */
} flame;

#define MAX_FLAME_BOXES 8000
/* Boxes narrower than this (in viewBox units) at full width are left
 * out; zooming on a parent widens the ones drawn. */
#define FLAME_MIN_W 0.25

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

/* Box `at` at `level`, its first goroutine `off` of the root's; each box
 * carries its name, offset, count and depth (data-n, -o, -c, -d) for the
 * script's zoom and search. */
static void flame_draw(tt__buf *b, flame *f, uint32_t at, int level,
		       uint64_t off, double unit)
{
	const fnode *nd = &f->v[at];
	double w = (double)nd->count * unit;
	if (w < FLAME_MIN_W || f->boxes >= MAX_FLAME_BOXES)
		return;
	f->boxes++;
	double x = (double)off * unit;
	double y = (double)(f->depth - level) * FLAME_ROW;
	const char *name = at == 0 ? "all parked goroutines" : nd->func;
	int r, g, bl;
	flame_colour(name, &r, &g, &bl);
	if (at == 0)
		r = 200, g = 200, bl = 200;
	tt__buf_puts(b, "<g class=\"f\" data-n=\"");
	esc(b, name);
	tt__buf_printf(b, "\" data-o=\"%llu\" data-c=\"%llu\" data-d=\"%d\">"
			  "<title>",
		       (unsigned long long)off, (unsigned long long)nd->count,
		       level);
	esc(b, name);
	tt__buf_printf(b, " \xe2\x80\x94 %llu goroutine%s (%.1f%%)</title>"
			  "<rect x=\"%.1f\" y=\"%.1f\" width=\"%.1f\" "
			  "height=\"%d\" rx=\"2\" fill=\"rgb(%d,%d,%d)\"/>",
		       (unsigned long long)nd->count, nd->count == 1 ? "" : "s",
		       100.0 * (double)nd->count / (double)f->v[0].count, x,
		       y, w > 0.5 ? w - 0.5 : w, FLAME_ROW - 1, r, g, bl);
	size_t fit = w > 6 ? (size_t)((w - 6) / 6.7) : 0; /* characters */
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
		flame_draw(b, f, c, level + 1, off, unit);
		off += f->v[c].count;
	}
}

static void flame_svg(tt__buf *b, flame *f)
{
	int h = (f->depth + 1) * FLAME_ROW;
	tt__buf_printf(b, "<svg class=\"flame\" id=\"flamegraph\" "
			  "xmlns=\"http://www.w3.org/2000/svg\" "
			  "viewBox=\"0 0 %d %d\" width=\"%d\" height=\"%d\" "
			  "data-row=\"%d\" role=\"img\" aria-label=\"flame "
			  "graph of parked goroutines\">\n",
		       (int)FLAME_W, h, (int)FLAME_W, h, FLAME_ROW);
	if (f->v[0].count)
		flame_draw(b, f, 0, 0, 0, FLAME_W / (double)f->v[0].count);
	tt__buf_puts(b, "</svg>\n");
}

/* Zoom and search, for the boxes flame_draw writes. Reads only the data-
 * attributes and writes names with textContent, so nothing from the
 * program is ever run. On load it applies the fragment: #search=NAME
 * highlights the boxes whose function contains NAME (case-insensitive)
 * and shows the fraction of goroutines under them, #zoom=NAME zooms on
 * the first box of that function (both: #search=a&zoom=b). */
static const char flame_script[] =
	"<script>\n"
	"(function(){\n"
	"var svg=document.getElementById('flamegraph');if(!svg)return;\n"
	"var W=1200,R=+svg.getAttribute('data-row'),NS=svg.namespaceURI;\n"
	"var gs=[].slice.call(svg.querySelectorAll('g.f'));if(!gs.length)"
	"return;\n"
	"function A(g,k){return +g.getAttribute('data-'+k);}\n"
	"var total=A(gs[0],'c');\n"
	"var q=document.getElementById('flame-search'),"
	"m=document.getElementById('flame-match'),"
	"z=document.getElementById('flame-zoom');\n"
	"document.getElementById('flame-tools').hidden=false;\n"
	"function label(g,x,w){var t=g.querySelector('text'),"
	"n=g.getAttribute('data-n'),f=Math.floor((w-6)/6.7);\n"
	" if(!t){if(f<3)return;var r=g.querySelector('rect');"
	"t=document.createElementNS(NS,'text');"
	"t.setAttribute('y',(+r.getAttribute('y')+R-5).toFixed(1));"
	"g.appendChild(t);}\n"
	" t.setAttribute('x',(x+3).toFixed(1));"
	"t.textContent=f<3?'':n.length<=f?n:n.slice(0,f-2)+'..';}\n"
	"function zoom(o,c,d,name){var u=W/c;\n"
	" gs.forEach(function(g){var go=A(g,'o'),gc=A(g,'c'),gd=A(g,'d'),"
	"x=0,w=0,r=g.querySelector('rect');\n"
	"  if(gd<d){if(go<=o&&go+gc>=o+c)w=W;}\n"
	"  else if(go>=o&&go+gc<=o+c){x=(go-o)*u;w=gc*u;}\n"
	"  g.style.display=w<0.25?'none':'';\n"
	"  r.setAttribute('x',x.toFixed(1));"
	"r.setAttribute('width',(w>0.5?w-0.5:w).toFixed(1));label(g,x,w);});\n"
	" svg.setAttribute('data-zoom',name);"
	"z.textContent=name?'zoomed on '+name+' ('+c+' of '+total+"
	"' goroutines)':'';}\n"
	"function search(s){var t=s.toLowerCase(),iv=[];\n"
	" gs.forEach(function(g,i){var hit=!!t&&i>0&&"
	"g.getAttribute('data-n').toLowerCase().indexOf(t)>=0;\n"
	"  g.classList.toggle('hl',hit);"
	"if(hit)iv.push([A(g,'o'),A(g,'o')+A(g,'c')]);});\n"
	" iv.sort(function(a,b){return a[0]-b[0];});var sum=0,end=0;\n"
	" iv.forEach(function(v){if(v[1]>end){sum+=v[1]-Math.max(v[0],end);"
	"end=v[1];}});\n"
	" svg.setAttribute('data-match',t?String(sum):'');\n"
	" m.textContent=t?'matched '+(100*sum/total).toFixed(1)+'% ('+sum+"
	"' of '+total+' goroutines)':'';}\n"
	"svg.addEventListener('click',function(e){"
	"var g=e.target.closest('g.f');if(!g)return;\n"
	" zoom(A(g,'o'),A(g,'c'),A(g,'d'),A(g,'d')?g.getAttribute('data-n')"
	":'');});\n"
	"document.getElementById('flame-reset').addEventListener('click',"
	"function(){zoom(0,total,0,'');});\n"
	"q.addEventListener('input',function(){search(q.value);});\n"
	"location.hash.slice(1).split('&').forEach(function(kv){\n"
	" var i=kv.indexOf('=');if(i<0)return;var k=kv.slice(0,i),v;\n"
	" try{v=decodeURIComponent(kv.slice(i+1));}catch(e){return;}\n"
	" if(k==='search'){q.value=v;search(v);}\n"
	" if(k==='zoom')for(var j=1;j<gs.length;j++)"
	"if(gs[j].getAttribute('data-n')===v){"
	"zoom(A(gs[j],'o'),A(gs[j],'c'),A(gs[j],'d'),v);break;}});\n"
	"})();\n"
	"</script>\n";

/* ---- the page ----------------------------------------------------------- */

/* The frame a group is known by: the first of the program's own (below
 * tt_chan_recv and the like), else the top one. */
static const tt__frame *user_frame(const tt__frame *fr, int nfr)
{
	for (int i = 0; i < nfr; i++)
		if (!tt__frame_is_runtime(&fr[i]))
			return &fr[i];
	return nfr ? &fr[0] : NULL;
}

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

/* The query that keeps a non-default min_wait in links ("" or
 * "&amp;min_wait=1500ms"): only numbers, nothing from the program. */
static void wait_query(char *q, size_t n, int64_t min_wait)
{
	if (min_wait == TT_MINUTE)
		q[0] = '\0';
	else
		snprintf(q, n, "&amp;min_wait=%lldms",
			 (long long)(min_wait / TT_MILLISECOND));
}

static void put_marks(tt__buf *b, const view *v, const group *x)
{
	if (x->mark == MARK_LEAK) {
		tt__buf_puts(b, "<span class=\"mark leak\">proven leak");
		if (x->leaked != x->count) {
			tt__buf_puts(b, " \xc3\x97 ");
			put_count(b, x->leaked);
		}
		tt__buf_puts(b, "</span>");
	}
	if (x->mark == MARK_GROWING) {
		tt__buf_puts(b, "<span class=\"mark grow\">growing +");
		put_count(b, (uint64_t)growth(x));
		tt__buf_puts(b, ", waited &gt; ");
		put_age(b, v->min_wait);
		tt__buf_puts(b, "</span>");
	} else if (x->then >= 0 && (uint64_t)x->then != x->count) {
		tt__buf_printf(b, "<span class=\"delta\">%+lld since #%llu"
				  "</span>",
			       (long long)growth(x),
			       (unsigned long long)v->base->id);
	}
}

/* One group. Its summary line (count, marks, states, age, top function,
 * name) is what shows while it is closed; further per-group lines (the
 * creation site, the name in full) follow the frames. */
static void put_group(tt__buf *b, const view *v, const group *x, size_t ix,
		      const tt__frame *fr, int nfr)
{
	static const char *const mark_word[] = {"", "grow", "leak"};
	tt__buf_printf(b, "<details class=\"group%s%s\" id=\"g%zu\" "
			  "data-count=\"%llu\"",
		       x->mark ? " " : "", mark_word[x->mark], ix + 1,
		       (unsigned long long)x->count);
	if (x->mark)
		tt__buf_printf(b, " data-mark=\"%s\"", mark_word[x->mark]);
	if (x->then >= 0)
		tt__buf_printf(b, " data-then=\"%lld\"", (long long)x->then);
	tt__buf_printf(b, "%s><summary><span class=\"count\">",
		       ix < 20 || x->mark ? " open" : "");
	put_count(b, x->count);
	tt__buf_puts(b, "</span>");
	put_marks(b, v, x);
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
		put_age(b, v->snap.taken_at - x->oldest);
		tt__buf_puts(b, "</span>");
	}
	const tt__frame *uf = user_frame(fr, nfr);
	tt__buf_puts(b, "<code class=\"fn\">");
	esc(b, uf ? uf->func : "?");
	tt__buf_puts(b, "</code>");
	const tt__gsnap *g = x->first;
	if (g->name) {
		tt__buf_puts(b, " <span class=\"name\" title=\"goroutine "
				"name\">");
		esc(b, g->name);
		if (x->mixed_name)
			tt__buf_puts(b, " (and others)");
		tt__buf_puts(b, "</span>");
	}
	if (x->first->labels || x->mixed_labels) {
		/* Labels (the first member's, Go's text), in the header. */
		tt__buf_puts(b, " <span class=\"meta labels\">");
		if (x->first->labels) {
			tt__buf lt = {0};
			tt__labels_text(&lt, NULL, x->first->labels);
			if (lt.err == 0 && lt.len)
				tt__html_escape(b, lt.data, lt.len);
			tt__buf_free(&lt);
		}
		if (x->mixed_labels)
			tt__buf_puts(b, x->first->labels ? " (some labelled "
							   "otherwise)"
							 : "some labelled");
		tt__buf_puts(b, "</span>");
	}
	if (x->any_current)
		tt__buf_puts(b, " <span class=\"meta\">(this page's own "
				"goroutine)</span>");
	tt__buf_puts(b, "</summary>\n<ol class=\"frames\">\n");
	int shown = nfr < MAX_FRAMES_SHOWN ? nfr : MAX_FRAMES_SHOWN;
	for (int i = 0; i < shown; i++)
		put_frame(b, &fr[i]);
	tt__buf_puts(b, "</ol>\n");
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
	if (x->mark == MARK_LEAK)
		tt__buf_puts(b, "<p class=\"created\">proven leaked: parked on "
				"objects whose last reference was released; "
				"the release site is in <a href=\"/debug/pprof/"
				"goroutineleak?debug=2\">goroutineleak?debug=2"
				"</a></p>\n");
	tt__buf_puts(b, "</details>\n");
}

static void put_header(tt__buf *b, const view *v, const char *title)
{
	char exe[256] = "?";
	ssize_t el = readlink("/proc/self/exe", exe, sizeof exe - 1);
	if (el > 0)
		exe[el] = '\0';
	time_t wall = time(NULL);
	struct tm tm;
	char when[64] = "";
	if (gmtime_r(&wall, &tm))
		strftime(when, sizeof when, "%Y-%m-%d %H:%M:%S UTC", &tm);

	put_html_head(b, title);
	tt__buf_puts(b, "<header><h1><span id=\"total\">");
	put_count(b, v->snap.n);
	tt__buf_printf(b, "</span> goroutine%s in %zu stack%s</h1>\n"
			  "<p class=\"meta\">",
		       v->snap.n == 1 ? "" : "s", v->gr.n,
		       v->gr.n == 1 ? "" : "s");
	esc(b, exe);
	tt__buf_printf(b, ", pid %ld, %s</p>\n", (long)getpid(), when);
	tt__buf_puts(b,
		"<nav><a href=\"/\">the page</a>"
		"<a href=\"/debug/pprof/\">/debug/pprof/</a>"
		"<a href=\"/debug/pprof/goroutine?debug=1\">grouped text "
		"(debug=1)</a>"
		"<a href=\"/debug/pprof/goroutine?debug=2\">every stack "
		"(debug=2)</a>"
		"<a href=\"/debug/pprof/goroutine\">profile.proto "
		"(go tool pprof)</a>"
		"<a href=\"/debug/pprof/goroutineleak?debug=1\">proven "
		"leaks</a></nav></header>\n");
}

/* The alerts at the top: what is marked, with links to the groups. */
static void put_alerts(tt__buf *b, const view *v)
{
	if (v->nleak) {
		tt__buf_puts(b, "<p class=\"alert leak\" id=\"alert-leak\">");
		put_count(b, v->leaked);
		tt__buf_printf(b, " goroutine%s proven leaked, in %zu stack%s:",
			       v->leaked == 1 ? "" : "s", v->nleak,
			       v->nleak == 1 ? "" : "s");
		for (size_t i = 0, k = 0; i < v->gr.n && k < 5; i++) {
			if (v->gr.v[i].mark != MARK_LEAK)
				continue;
			tt__buf_printf(b, " <a href=\"#g%zu\">#%zu</a>", i + 1,
				       i + 1);
			k++;
		}
		tt__buf_puts(b, " (<a href=\"/debug/pprof/goroutineleak?debug="
				"1\">goroutineleak</a>)</p>\n");
	}
	if (v->ngrow) {
		uint64_t grown = 0;
		for (size_t i = 0; i < v->gr.n; i++)
			if (v->gr.v[i].mark == MARK_GROWING)
				grown += (uint64_t)growth(&v->gr.v[i]);
		tt__buf_printf(b, "<p class=\"alert grow\" id=\"alert-grow\">"
				  "%zu stack%s growing since snapshot %llu "
				  "(+",
			       v->ngrow, v->ngrow == 1 ? "" : "s",
			       (unsigned long long)v->base->id);
		put_count(b, grown);
		tt__buf_puts(b, " goroutines), each with goroutines parked "
				"longer than ");
		put_age(b, v->min_wait);
		tt__buf_puts(b, ":");
		for (size_t i = 0, k = 0; i < v->gr.n && k < 5; i++) {
			if (v->gr.v[i].mark != MARK_GROWING)
				continue;
			tt__buf_printf(b, " <a href=\"#g%zu\">#%zu</a>", i + 1,
				       i + 1);
			k++;
		}
		tt__buf_puts(b, "</p>\n");
	}
}

/* Which snapshot this is, what it is compared with, and the links. */
static void put_compare(tt__buf *b, const view *v)
{
	char wq[48];
	wait_query(wq, sizeof wq, v->min_wait);
	tt__buf_printf(b, "<p class=\"meta\" id=\"since\">This view is "
			  "snapshot <b id=\"snap-id\">%llu</b>. ",
		       (unsigned long long)v->id);
	if (v->base) {
		tt__buf_printf(b, "Compared since snapshot <b id=\"base-id\">"
				  "%llu</b> (",
			       (unsigned long long)v->base->id);
		put_age(b, v->snap.taken_at - v->base->taken_at);
		tt__buf_printf(b, " ago, %llu goroutines then): <a href=\"/?"
				  "diff=%llu\">what changed since %llu</a>. ",
			       (unsigned long long)v->base->total,
			       (unsigned long long)v->base->id,
			       (unsigned long long)v->base->id);
	} else {
		tt__buf_puts(b, "No earlier snapshot to compare with: load "
				"the page again to see what grows. ");
	}
	tt__buf_printf(b, "<a href=\"/?since=%llu%s\">compare later with "
			  "this one</a>. A group is marked growing when it "
			  "has more goroutines than then and as many as it "
			  "had then have been parked longer than ",
		       (unsigned long long)v->id, wq);
	put_age(b, v->min_wait);
	tt__buf_printf(b, " (<code>?min_wait=30s</code> to change). The "
			  "server keeps the last %d snapshots. For <code>go "
			  "tool pprof</code>: save <a href=\"/debug/pprof/"
			  "goroutine\">goroutine</a> twice, then <code>go tool "
			  "pprof -base old.pb.gz new.pb.gz</code>.</p>\n",
		       TT__HIST_KEEP);
}

static const char flame_tools[] =
	"<div id=\"flame-tools\" hidden><label>search functions <input "
	"id=\"flame-search\" type=\"search\" placeholder=\"name\" "
	"autocomplete=\"off\"></label> <button id=\"flame-reset\" "
	"type=\"button\">reset zoom</button> <span id=\"flame-match\">"
	"</span> <span id=\"flame-zoom\" class=\"meta\"></span></div>\n";

static int page_main(tt__buf *b, view *v)
{
	flame fl = {0};
	int r = 0;
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
	/* The flame graph takes every parked goroutine, the list the
	 * first groups in the page's order. */
	for (size_t i = 0; i < v->gr.n; i++) {
		tt__slice_tick(&sl);
		if (v->gr.v[i].waiting == 0)
			continue;
		int nfr = stack_frames(v->gr.v[i].pcs, v->gr.v[i].npcs, fr,
				       TT__TRACE_MAX * 4);
		flame_add(&fl, fr, nfr, v->gr.v[i].waiting);
	}
	if (fl.err) {
		r = fl.err;
		goto out;
	}

	put_header(b, v, "goroutines");
	put_alerts(b, v);
	put_compare(b, v);
	tt__buf_puts(b, "<section id=\"flame\"><h2>Where goroutines are "
			"parked</h2>\n<p class=\"meta\">Outermost call at the "
			"bottom; the top edge is where each goroutine waits; "
			"width is the number of goroutines. Hover for counts, "
			"click a box to zoom on it.</p>\n");
	tt__buf_puts(b, flame_tools);
	flame_svg(b, &fl);
	tt__buf_puts(b, "</section>\n<section id=\"groups\"><h2>Goroutines "
			"by stack: proven leaks, then growing, then most "
			"first</h2>\n");
	size_t shown = v->gr.n < MAX_GROUPS ? v->gr.n : MAX_GROUPS;
	for (size_t i = 0; i < shown; i++) {
		tt__slice_tick(&sl);
		int nfr = stack_frames(v->gr.v[i].pcs, v->gr.v[i].npcs, fr,
				       TT__TRACE_MAX * 4);
		put_group(b, v, &v->gr.v[i], i, fr, nfr);
	}
	if (shown < v->gr.n) {
		uint64_t rest = 0;
		for (size_t i = shown; i < v->gr.n; i++)
			rest += v->gr.v[i].count;
		tt__buf_printf(b, "<p class=\"meta\">%zu more stacks (",
			       v->gr.n - shown);
		put_count(b, rest);
		tt__buf_puts(b, " goroutines) are not shown: see <a href=\""
				"/debug/pprof/goroutine?debug=1\">debug=1"
				"</a>.</p>\n");
	}
	tt__buf_puts(b, "</section>\n");
	tt__buf_puts(b, flame_script);
	tt__buf_puts(b, "</body></html>\n");
	r = b->err;
out:
	free(fr);
	free(fl.v);
	return r;
}

/* ---- the diff ------------------------------------------------------------- */

/* One row of the diff: a group's goroutines in one state, then and now. */
typedef struct drow {
	const group *x;
	uint32_t si;   /* index into x->states */
	int64_t then;  /* -1: unknown (untracked then) */
	uint64_t now;
} drow;

static int64_t drow_delta(const drow *d)
{
	return (int64_t)d->now - (d->then < 0 ? 0 : d->then);
}

static int by_delta(const void *a, const void *b)
{
	const drow *x = a, *y = b;
	if (drow_delta(x) != drow_delta(y))
		return drow_delta(x) < drow_delta(y) ? 1 : -1;
	if (x->now != y->now)
		return x->now < y->now ? 1 : -1;
	return by_id(x->x, y->x);
}

typedef struct diff {
	drow *rows;
	size_t n;
	uint64_t gone_stacks, gone; /* entries then with no row now */
} diff;

static int diff_make(const view *v, diff *d)
{
	memset(d, 0, sizeof *d);
	size_t cap = 0;
	for (size_t i = 0; i < v->gr.n; i++)
		cap += v->gr.v[i].nstates;
	d->rows = malloc((cap ? cap : 1) * sizeof *d->rows);
	bool *seen = calloc(v->base->n ? v->base->n : 1, 1);
	if (!d->rows || !seen) {
		free(seen);
		free(d->rows);
		d->rows = NULL;
		return -ENOMEM;
	}
	for (size_t i = 0; i < v->gr.n; i++) {
		const group *x = &v->gr.v[i];
		for (uint32_t k = 0; k < x->nstates; k++) {
			const tt__hist_entry *e =
				hist_find(v->base, x->hash,
					  hash_state(x->states[k].state),
					  false);
			int64_t then = e ? (int64_t)e->count
				       : v->base->untracked ? -1 : 0;
			if (e)
				seen[e - v->base->e] = true;
			d->rows[d->n++] = (drow){x, k, then, x->states[k].n};
		}
	}
	for (uint32_t i = 0; i < v->base->n; i++) {
		if (seen[i])
			continue;
		d->gone += v->base->e[i].count;
		d->gone_stacks++;
	}
	free(seen);
	qsort(d->rows, d->n, sizeof *d->rows, by_delta);
	return 0;
}

static void put_delta(tt__buf *b, int64_t d)
{
	tt__buf_printf(b, "%+lld", (long long)d);
}

static int diff_page(tt__buf *b, view *v)
{
	diff d;
	int r = diff_make(v, &d);
	if (r)
		return r;
	tt__frame *fr = malloc(TT__TRACE_MAX * 4 * sizeof *fr);
	if (!fr) {
		free(d.rows);
		return -ENOMEM;
	}
	put_header(b, v, "goroutines: what changed");
	tt__buf_printf(b, "<h2>What changed since snapshot <span "
			  "id=\"base-id\">%llu</span> (",
		       (unsigned long long)v->base->id);
	put_age(b, v->snap.taken_at - v->base->taken_at);
	tt__buf_puts(b, " ago)</h2>\n<p class=\"meta\" id=\"diff-total\">"
			"goroutines then ");
	put_count(b, v->base->total);
	tt__buf_puts(b, ", now ");
	put_count(b, v->snap.n);
	tt__buf_puts(b, " (");
	put_delta(b, (int64_t)v->snap.n - (int64_t)v->base->total);
	tt__buf_printf(b, "). Rows are stacks in one state, most grown "
			  "first. <a href=\"/?since=%llu\">the page, compared "
			  "since %llu</a>.</p>\n<table class=\"diff\" "
			  "id=\"diff\"><thead><tr><th>then</th><th>now</th>"
			  "<th>delta</th><th>state</th><th>stack</th></tr>"
			  "</thead><tbody>\n",
		       (unsigned long long)v->base->id,
		       (unsigned long long)v->base->id);
	tt__slice sl;
	tt__slice_start(&sl);
	size_t shown = d.n < MAX_GROUPS ? d.n : MAX_GROUPS;
	for (size_t i = 0; i < shown; i++) {
		tt__slice_tick(&sl);
		const drow *w = &d.rows[i];
		int64_t dl = drow_delta(w);
		int nfr = stack_frames(w->x->pcs, w->x->npcs, fr,
				       TT__TRACE_MAX * 4);
		tt__buf_printf(b, "<tr class=\"%s\" data-then=\"%lld\" "
				  "data-now=\"%llu\" data-delta=\"%lld\">"
				  "<td class=\"num\">",
			       dl > 0 ? "up" : dl < 0 ? "down" : "same",
			       (long long)w->then, (unsigned long long)w->now,
			       (long long)dl);
		if (w->then < 0)
			tt__buf_puts(b, "?");
		else
			put_count(b, (uint64_t)w->then);
		tt__buf_puts(b, "</td><td class=\"num\">");
		put_count(b, w->now);
		tt__buf_puts(b, "</td><td class=\"num\">");
		put_delta(b, dl);
		tt__buf_puts(b, "</td><td>");
		esc(b, w->x->states[w->si].state);
		tt__buf_puts(b, "</td><td><details><summary><code "
				"class=\"fn\">");
		const tt__frame *uf = user_frame(fr, nfr);
		esc(b, uf ? uf->func : "?");
		tt__buf_puts(b, "</code>");
		if (uf && uf->file) {
			tt__buf_puts(b, " <span class=\"loc\">");
			esc(b, short_file(uf->file));
			tt__buf_printf(b, ":%d</span>", uf->line);
		}
		if (w->x->first->name) {
			tt__buf_puts(b, " <span class=\"name\">");
			esc(b, w->x->first->name);
			tt__buf_puts(b, "</span>");
		}
		tt__buf_puts(b, "</summary><ol class=\"frames\">\n");
		int nshow = nfr < MAX_FRAMES_SHOWN ? nfr : MAX_FRAMES_SHOWN;
		for (int k = 0; k < nshow; k++)
			put_frame(b, &fr[k]);
		tt__buf_puts(b, "</ol></details></td></tr>\n");
	}
	tt__buf_puts(b, "</tbody></table>\n");
	if (shown < d.n)
		tt__buf_printf(b, "<p class=\"meta\">%zu more rows not "
				  "shown.</p>\n",
			       d.n - shown);
	tt__buf_printf(b, "<p class=\"meta\" id=\"diff-gone\">Gone since "
			  "then: %llu stack/state pairs (%llu goroutines)"
			  "</p>\n",
		       (unsigned long long)d.gone_stacks,
		       (unsigned long long)d.gone);
	if (v->base->untracked)
		tt__buf_puts(b, "<p class=\"meta\">The snapshot then kept "
				"only its largest groups; \"?\" is a stack it "
				"did not keep.</p>\n");
	tt__buf_puts(b, "</body></html>\n");
	free(fr);
	free(d.rows);
	return b->err;
}

int tt__debug_diff_text(tt__buf *b, uint64_t id, tt__page_hist **hist,
			char *why, size_t whysz)
{
	view v;
	int r = view_take(&v, hist, id, false, TT_MINUTE, why, whysz);
	if (r == 0 && !v.base)
		r = hist_missing(*hist, "diff", id, why, whysz);
	diff d = {0};
	tt__frame *fr = NULL;
	if (r == 0)
		r = diff_make(&v, &d);
	if (r == 0 && !(fr = malloc(TT__TRACE_MAX * 4 * sizeof *fr)))
		r = -ENOMEM;
	if (r)
		goto out;
	tt__buf_printf(b, "goroutine diff: since snapshot %llu, %.3f s ago: "
			  "total %llu -> %llu (%+lld)\n\n",
		       (unsigned long long)v.base->id,
		       (double)(v.snap.taken_at - v.base->taken_at) /
			       TT_SECOND,
		       (unsigned long long)v.base->total,
		       (unsigned long long)v.snap.n,
		       (long long)v.snap.n - (long long)v.base->total);
	tt__slice sl;
	tt__slice_start(&sl);
	for (size_t i = 0; i < d.n; i++) {
		tt__slice_tick(&sl);
		const drow *w = &d.rows[i];
		put_delta(b, drow_delta(w));
		if (w->then < 0)
			tt__buf_printf(b, " (? -> %llu) [",
				       (unsigned long long)w->now);
		else
			tt__buf_printf(b, " (%lld -> %llu) [",
				       (long long)w->then,
				       (unsigned long long)w->now);
		tt__buf_puts(b, w->x->states[w->si].state);
		tt__buf_puts(b, "] @");
		for (uint32_t k = 0; k < w->x->npcs; k++)
			tt__buf_printf(b, " %#lx",
				       (unsigned long)w->x->pcs[k]);
		tt__buf_puts(b, "\n");
		int nfr = stack_frames(w->x->pcs, w->x->npcs, fr,
				       TT__TRACE_MAX * 4);
		for (int k = 0; k < nfr; k++) {
			tt__buf_printf(b, "#\t%#lx\t%s",
				       (unsigned long)(fr[k].pc - 1),
				       fr[k].func ? fr[k].func : "?");
			if (fr[k].entry && !fr[k].inlined)
				tt__buf_printf(b, "+%#lx",
					       (unsigned long)(fr[k].pc - 1 -
							       fr[k].entry));
			tt__buf_printf(b, "\t%s:%d\n",
				       fr[k].file ? fr[k].file
					: fr[k].module ? fr[k].module : "?",
				       fr[k].line);
		}
		tt__buf_puts(b, "\n");
	}
	tt__buf_printf(b, "gone: %llu (%llu goroutines)\n",
		       (unsigned long long)d.gone_stacks,
		       (unsigned long long)d.gone);
	r = b->err;
out:
	free(fr);
	free(d.rows);
	view_free(&v);
	return r;
}

int tt__debug_page(tt__buf *b, const tt__page_opts *o, tt__page_hist **hist,
		   char *why, size_t whysz)
{
	view v;
	bool diffing = o->diff != 0;
	int r = view_take(&v, hist, diffing ? o->diff : o->since, !diffing,
			  o->min_wait, why, whysz);
	if (r == 0)
		r = diffing ? diff_page(b, &v) : page_main(b, &v);
	view_free(&v);
	return r;
}
