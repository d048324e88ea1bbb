/* tether — Go's goroutine profile formats, runtime.Stack, and the SIGQUIT
 * dump.
 *
 * debug=2 is runtime.Stack(buf, true): every goroutine, the caller's
 * first, blank lines between them:
 *
 *   goroutine 7 [chan receive, 3 minutes]:
 *   tt_chan_recv(...)
 *   	/src/chan/chan.c:412 +0x4c
 *   worker(...)
 *   	/src/app.c:31 +0x1d
 *   created by main in goroutine 1
 *   	/src/app.c:52 +0x8e
 *
 * A C frame prints as "name(...)": Go's own notation for a frame whose
 * arguments it does not show (an inlined one), which goleak's and
 * panicparse's parsers read like any other. The offset is from the
 * function's entry to the return address, as Go prints it; inlined frames
 * have none.
 *
 * debug=1 groups goroutines with equal stacks (and equal names, which are
 * shown as the label "name"), largest group first, laid out cell for cell
 * as Go's text/tabwriter lays it out.
 *
 * The profile is written from a snapshot: the goroutines are stopped only
 * while it is taken, then the text is produced and handed to the writer in
 * pieces, yielding between pieces so the scheduler's other goroutines run
 * while a large dump is written. */
#include <errno.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "profile/profile.h"
#include "trace/trace.h"
#if defined(__has_include)
#if __has_include("profile/pprof.h")
#include "profile/pprof.h"
#define TT_HAVE_PPROF 1
#endif
#endif

#define CHUNK (64 * 1024)   /* bytes handed to the writer at a time */
#define YIELD_EVERY 2048    /* goroutines written between yields */

typedef struct sink {
	tt_write_fn fn;
	void *arg;
	tt__buf b;
	int err;
	bool yield;
	unsigned since_yield;
} sink;

static void sink_flush(sink *o)
{
	if (o->b.err && !o->err)
		o->err = o->b.err;
	if (o->b.len && !o->err)
		o->err = o->fn(o->arg, o->b.data, o->b.len);
	o->b.len = 0;
}

/* After each goroutine: pass full chunks on, let others run now and
 * then. */
static void sink_step(sink *o)
{
	if (o->b.len >= CHUNK)
		sink_flush(o);
	if (o->yield && ++o->since_yield >= YIELD_EVERY) {
		o->since_yield = 0;
		sink_flush(o);
		tt_yield();
	}
}

static bool keep_leaked(const tt__gsnap *g)
{
	return g->leaked;
}

/* ---- debug=2 ------------------------------------------------------------------ */

static void write_debug2(sink *o, const tt__snapshot *s, bool leak_only)
{
	bool first = true;
	/* The caller's goroutine first, as runtime.Stack does. */
	for (int pass = 0; pass < 2; pass++) {
		for (size_t i = 0; i < s->n && !o->err; i++) {
			const tt__gsnap *g = &s->g[i];
			if (g->current != (pass == 0))
				continue;
			if (leak_only && !g->leaked)
				continue;
			if (!first)
				tt__buf_put(&o->b, "\n", 1);
			first = false;
			tt__write_goroutine_body(&o->b, g, s->taken_at);
			sink_step(o);
		}
	}
}

/* ---- debug=1 ------------------------------------------------------------------ */

typedef struct group {
	const tt__gsnap *g; /* the first goroutine with this stack and name */
	size_t count;
} group;

static uint64_t group_hash(const tt__gsnap *g)
{
	uint64_t h = (uint64_t)(uintptr_t)g->pcs * UINT64_C(0x9e3779b97f4a7c15);
	if (g->name)
		for (const char *p = g->name; *p; p++)
			h = (h ^ (unsigned char)*p) * UINT64_C(0x100000001b3);
	return h ^ (h >> 31);
}

static bool group_eq(const tt__gsnap *a, const tt__gsnap *b)
{
	if (a->pcs != b->pcs || a->npcs != b->npcs)
		return false;
	if (!a->name || !b->name)
		return a->name == b->name;
	return strcmp(a->name, b->name) == 0;
}

static int by_count(const void *pa, const void *pb)
{
	const group *a = pa, *b = pb;
	if (a->count != b->count)
		return a->count > b->count ? -1 : 1;
	return (a->g->id > b->g->id) - (a->g->id < b->g->id);
}

static void put_quoted(tt__buf *b, const char *s)
{
	tt__buf_put(b, "\"", 1);
	for (; *s; s++) {
		unsigned char c = (unsigned char)*s;
		if (c == '"' || c == '\\') {
			char e[2] = { '\\', (char)c };
			tt__buf_put(b, e, 2);
		} else if (c < 0x20 || c == 0x7f) {
			tt__buf_printf(b, "\\x%02x", c);
		} else {
			tt__buf_put(b, s, 1);
		}
	}
	tt__buf_put(b, "\"", 1);
}

static void put_tabs(tt__buf *b, size_t textw, size_t cellw)
{
	/* text/tabwriter with padchar '\t', tabwidth 8, padding 1: the
	 * column is the widest cell plus one, rounded up to a tab stop, and
	 * is filled with tabs. */
	static const char tabs[] = "\t\t\t\t\t\t\t\t\t\t\t\t\t\t\t\t";
	size_t w = (cellw + 7) / 8 * 8;
	size_t n = (w - textw + 7) / 8;
	while (n > 0) {
		size_t k = n < 16 ? n : 16;
		tt__buf_put(b, tabs, k);
		n -= k;
	}
}

static void write_record(tt__buf *b, const group *gr)
{
	const tt__gsnap *g = gr->g;
	char hex[32];
	tt__buf_printf(b, "%zu @", gr->count);
	for (uint32_t i = 0; i < g->npcs; i++)
		tt__buf_printf(b, " 0x%" PRIxPTR, g->pcs[i]);
	tt__buf_put(b, "\n", 1);
	if (g->name) {
		tt__buf_puts(b, "# labels: {\"name\":");
		put_quoted(b, g->name);
		tt__buf_puts(b, "}\n");
	}
	/* Two passes: the widths of the address and function columns, then
	 * the lines. */
	size_t w1 = 0, w2 = 0;
	for (int pass = 0; pass < 2; pass++) {
		for (uint32_t i = 0; i < g->npcs; i++) {
			const tt__sym *y = tt__sym_get(g->pcs[i], true);
			if (!y)
				continue;
			int k = snprintf(hex, sizeof hex, "0x%" PRIxPTR,
					 y->d1_pc);
			size_t hl = k > 0 ? (size_t)k : 0;
			int f = 0;
			if (i == 0)
				while (f + 1 < y->nframes &&
				       y->frames[f].internal)
					f++;
			for (; f < y->nframes; f++) {
				if (pass == 0) {
					if (hl + 1 > w1)
						w1 = hl + 1;
					if ((size_t)y->d1_len[f] + 1 > w2)
						w2 = (size_t)y->d1_len[f] + 1;
					continue;
				}
				const tt__frame *fr = &y->frames[f];
				tt__buf_put(b, "#\t", 2);
				tt__buf_put(b, hex, hl);
				put_tabs(b, hl, w1);
				tt__buf_put(b, y->d1[f], y->d1_len[f]);
				put_tabs(b, y->d1_len[f], w2);
				tt__buf_printf(b, "%s:%d\n",
					       fr->file ? fr->file : "?",
					       fr->line);
			}
		}
	}
	tt__buf_put(b, "\n", 1);
}

static int write_debug1(sink *o, const tt__snapshot *s, const char *name,
			bool leak_only)
{
	size_t total = 0;
	for (size_t i = 0; i < s->n; i++)
		if (!leak_only || s->g[i].leaked)
			total++;
	size_t cap = 16;
	while (cap < total * 2)
		cap *= 2;
	group *tab = calloc(cap, sizeof *tab);
	if (!tab)
		return -ENOMEM;
	size_t ngroups = 0;
	for (size_t i = 0; i < s->n; i++) {
		const tt__gsnap *g = &s->g[i];
		if (leak_only && !g->leaked)
			continue;
		size_t j = group_hash(g) & (cap - 1);
		while (tab[j].g && !group_eq(tab[j].g, g))
			j = (j + 1) & (cap - 1);
		if (!tab[j].g) {
			tab[j].g = g;
			ngroups++;
		}
		tab[j].count++;
	}
	/* Pack and sort: most goroutines first. */
	size_t k = 0;
	for (size_t j = 0; j < cap; j++)
		if (tab[j].g)
			tab[k++] = tab[j];
	qsort(tab, ngroups, sizeof *tab, by_count);
	tt__buf_printf(&o->b, "%s profile: total %zu\n", name, total);
	for (size_t i = 0; i < ngroups && !o->err; i++) {
		write_record(&o->b, &tab[i]);
		sink_step(o);
	}
	free(tab);
	return 0;
}

/* ---- the public calls ------------------------------------------------------------- */

int tt_profile_write(const char *name, int debug, tt_write_fn fn, void *arg)
{
	if (!name)
		return tt__err(-EINVAL, "tt_profile_write: name is NULL");
	bool leak_only;
	if (strcmp(name, "goroutine") == 0)
		leak_only = false;
	else if (strcmp(name, "goroutineleak") == 0)
		leak_only = true;
	else
		return tt__err(-EINVAL,
			       "tt_profile_write: unknown profile \"%s\" "
			       "(goroutine or goroutineleak)", name);
	if (debug < 0 || debug > 2)
		return tt__err(-EINVAL,
			       "tt_profile_write: debug must be 0, 1 or 2, "
			       "not %d", debug);
	if (!fn)
		return tt__err(-EINVAL, "tt_profile_write: fn is NULL");
	tt__snapshot s;
	int err = tt__snapshot_take(&s);
	if (err)
		return tt__err(err, "tt_profile_write: out of memory");
	sink o = { .fn = fn, .arg = arg, .yield = true };
	if (debug == 0) {
#if TT_HAVE_PPROF
		err = tt__pprof_write(&o.b, &s, leak_only ? keep_leaked : NULL,
				      tt__symbolize);
#else
		(void)keep_leaked;
		err = tt__err(-ENOTSUP,
			      "tt_profile_write: debug=0 is not built in");
#endif
	} else if (debug == 1) {
		err = write_debug1(&o, &s, name, leak_only);
	} else {
		write_debug2(&o, &s, leak_only);
	}
	if (!err) {
		sink_flush(&o);
		err = o.err;
	}
	tt__buf_free(&o.b);
	tt__snapshot_free(&s);
	return err;
}

static int write_fd(void *arg, const void *data, size_t len)
{
	int fd = *(int *)arg;
	const char *p = data;
	while (len > 0) {
		ssize_t w = write(fd, p, len);
		if (w < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		p += w;
		len -= (size_t)w;
	}
	return 0;
}

int tt_profile_write_fd(const char *name, int debug, int fd)
{
	if (fd < 0)
		return tt__err(-EBADF, "tt_profile_write_fd: bad fd %d", fd);
	return tt_profile_write(name, debug, write_fd, &fd);
}

size_t tt_stack_dump(char *buf, size_t len, bool all)
{
	if (!buf || len == 0)
		return 0;
	tt__buf b = { 0 };
	if (all) {
		tt__snapshot s;
		if (tt__snapshot_take(&s) == 0) {
			sink o = { .fn = NULL, .b = b };
			/* Build the whole text in o.b: no writer, no yield. */
			bool first = true;
			for (int pass = 0; pass < 2; pass++)
				for (size_t i = 0; i < s.n; i++) {
					const tt__gsnap *g = &s.g[i];
					if (g->current != (pass == 0))
						continue;
					if (!first)
						tt__buf_put(&o.b, "\n", 1);
					first = false;
					tt__write_goroutine_body(&o.b, g,
								 s.taken_at);
					if (o.b.len >= len)
						break;
				}
			b = o.b;
			tt__snapshot_free(&s);
		}
	} else {
		uintptr_t pcs[TT__TRACE_MAX];
		tt__gsnap g;
		tt__gsnap_fill(&g, tt__current(), pcs);
		tt__write_goroutine_body(&b, &g, tt_now());
	}
	size_t n = b.len < len ? b.len : len;
	if (n)
		memcpy(buf, b.data, n);
	tt__buf_free(&b);
	return n;
}

/* ---- every goroutine to a descriptor, allocating nothing ---------------------------- */

/* For the deadlock report and SIGQUIT: s's goroutines in id order (the
 * running one first), formatted into the caller's buffer b (which must
 * have room for one goroutine: 64 KiB) and written to fd as it fills. */
static void dump_all_fd(int fd, tt__sched *s, tt__buf *b)
{
	const tt__g *cur = s->current;
	int64_t now = tt__coarse_now();
	bool first = true;
	int64_t last = INT64_MIN;
	/* The running goroutine, then the others by id: an id-ordered walk
	 * of the list without sorting it (no memory to sort in), O(n^2)
	 * only in the worst case of a huge process, where a deadlock report
	 * is rare and a sorted one worth the wait. Schedulers link new
	 * goroutines at one end, so a pass usually finds the next id near. */
	if (cur && cur->state == TT_G_RUNNING) {
		uintptr_t pcs[TT__TRACE_MAX];
		tt__gsnap g;
		tt__gsnap_fill(&g, cur, pcs);
		tt__write_goroutine_body(b, &g, now);
		first = false;
	}
	for (;;) {
		const tt__g *next = NULL;
		for (const tt__g *g = s->all; g; g = g->all_next) {
			if (g->id > last && (!next || g->id < next->id))
				next = g;
		}
		if (!next)
			break;
		last = next->id;
		if (next == cur && cur->state == TT_G_RUNNING)
			continue;
		uintptr_t pcs[TT__TRACE_MAX];
		tt__gsnap g;
		tt__gsnap_fill(&g, next, pcs);
		if (!first)
			tt__buf_put(b, "\n", 1);
		first = false;
		tt__write_goroutine_body(b, &g, now);
		if (b->cap - b->len < 32 * 1024 || b->err) {
			tt__write_all(fd, b->data, b->len);
			b->len = 0;
			b->err = 0;
		}
	}
	if (b->len)
		tt__write_all(fd, b->data, b->len);
	b->len = 0;
}

static char fatal_mem[128 * 1024];

void tt__dump_goroutines_fd(int fd, tt__sched *s)
{
	tt__buf b = { .data = fatal_mem, .cap = sizeof fatal_mem };
	dump_all_fd(fd, s, &b);
	if (b.data != fatal_mem)
		free(b.data);
}

void tt__dump_current_fd(int fd)
{
	tt__buf b = { .data = fatal_mem, .cap = sizeof fatal_mem };
	tt__g *g = tt__current();
	uintptr_t pcs[TT__TRACE_MAX];
	tt__gsnap gs;
	tt__gsnap_fill(&gs, g, pcs);
	tt__write_goroutine_body(&b, &gs, tt__coarse_now());
	tt__write_all(fd, b.data, b.len);
	if (b.data != fatal_mem)
		free(b.data);
}

/* ---- SIGQUIT ------------------------------------------------------------------------ */

/* The handler writes directly, from the thread the signal landed on, the
 * goroutines of that thread's scheduler (a thread without one prints only
 * the header). It allocates nothing itself: it formats into a buffer set
 * aside when the dump was switched on and writes it with write(2). What
 * it cannot promise: a PC seen for the first time is symbolized there and
 * then (libdw takes a lock and allocates), so a signal that lands while
 * this thread is inside malloc or the symbolizer can hang the dump; the
 * handler is installed with SA_RESETHAND, so a second SIGQUIT then kills
 * the process the default way. Goroutines of other threads' schedulers
 * are not listed (their stacks change under any reader). */
static char sig_mem[256 * 1024];
static volatile sig_atomic_t sig_on;

static void on_sigquit(int sig)
{
	(void)sig;
	static const char head[] = "SIGQUIT: quit\n\n";
	tt__write_all(2, head, sizeof head - 1);
	tt__sched *s = tt__tls_sched;
	if (s) {
		tt__buf b = { .data = sig_mem, .cap = sizeof sig_mem };
		dump_all_fd(2, s, &b);
	}
	_exit(2);
}

int tt_traceback_on_sigquit(bool on)
{
	struct sigaction sa;
	memset(&sa, 0, sizeof sa);
	sigemptyset(&sa.sa_mask);
	if (on) {
		sa.sa_handler = on_sigquit;
		sa.sa_flags = SA_RESETHAND;
	} else {
		if (!sig_on)
			return 0;
		sa.sa_handler = SIG_DFL;
	}
	if (sigaction(SIGQUIT, &sa, NULL) < 0)
		return tt__err(-errno, "tt_traceback_on_sigquit: %s",
			       tt_strerror(-errno));
	sig_on = on;
	return 0;
}

__attribute__((constructor)) static void traceback_from_env(void)
{
	const char *v = getenv("TETHER_TRACEBACK");
	if (v && strcmp(v, "all") == 0)
		tt_traceback_on_sigquit(true);
}
