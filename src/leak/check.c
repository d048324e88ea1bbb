/* tether — the leak checker: uber-go/goleak's Find, VerifyNone and
 * VerifyTestMain for the goroutines of the process, with scopes.
 *
 * Design notes
 * ------------
 * One try walks the calling thread's list of goroutines and keeps those that
 * are not the caller, not in the ignored set (tt_leak_ignore_current) and,
 * for a scope's check, of that scope. These filters need no stack, so a
 * check with nothing left costs one walk of the list however many
 * goroutines are ignored. Only the goroutines left are unwound and
 * written in runtime.Stack's layout, and the function filters read that
 * text as goleak reads Go's: the innermost function, every function, the
 * "created by" function. Nothing switches during a try, so the list stays
 * as it was for the whole of it. A check of the whole process (no scope)
 * adds the other live threads' goroutines, from a snapshot of theirs
 * taken at the start of the try (tt__snapshot_take_others), and the
 * goroutines of threads that have ended (exited.c); so does a scope's
 * check when there is more than one P, since tt_go may then hand a
 * scope's goroutine to another thread (procs.c).
 *
 * Between tries the caller sleeps with tt_sleep (1 us doubling up to
 * max_sleep), which is a park: the run queue goes first and timers fire,
 * and the thread sleeps only if nothing is runnable. When nothing can
 * change any more — no goroutine runnable, no timer, no descriptor — the
 * retries stop early: the answer is final.
 *
 * Scopes: tt_leak_scope_begin stores a fresh id in the caller's
 * g->leak_scope; tt_go copies the creator's into every new goroutine. So
 * a scope's goroutines are found by id even after their creators have
 * ended, and tests running at once on one thread (each its own goroutine)
 * never see each other's. Names live in a process-wide table for the
 * reports.
 */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "leak/leak.h"

struct tt_leak_opts {
	char **names[3]; /* top, any, created by */
	size_t nnames[3];
	int64_t *ignore;  /* sorted ids */
	size_t nignore;
	/* The last tt_leak_ignore_current: on which scheduler, and the
	 * newest goroutine it saw (see collect). */
	const tt__sched *snap_sched;
	int64_t snap_newest;
	int max_retries;
	int64_t max_sleep;
	void (*cleanup)(int, void *);
	void *cleanup_arg;
};

enum { F_TOP, F_ANY, F_CREATED };

#define DEFAULT_RETRIES 20
#define DEFAULT_MAX_SLEEP (100 * TT_MILLISECOND)

static const tt_leak_opts default_opts = {
	.max_retries = DEFAULT_RETRIES,
	.max_sleep = DEFAULT_MAX_SLEEP,
};

/* ---- options ------------------------------------------------------------- */

int tt_leak_opts_make(tt_leak_opts **out)
{
	if (out == NULL)
		return tt__err(-EINVAL, "tt_leak_opts_make: out is NULL");
	*out = calloc(1, sizeof **out);
	if (*out == NULL)
		return tt__err(-ENOMEM, "tt_leak_opts_make: out of memory");
	(*out)->max_retries = DEFAULT_RETRIES;
	(*out)->max_sleep = DEFAULT_MAX_SLEEP;
	return 0;
}

void tt_leak_opts_free(tt_leak_opts *o)
{
	if (o == NULL)
		return;
	for (int k = 0; k < 3; k++) {
		for (size_t i = 0; i < o->nnames[k]; i++)
			free(o->names[k][i]);
		free(o->names[k]);
	}
	free(o->ignore);
	free(o);
}

static int add_name(tt_leak_opts *o, int k, const char *fn, const char *op)
{
	if (o == NULL || fn == NULL)
		return tt__err(-EINVAL, "%s: %s is NULL", op,
			       o ? "function name" : "options");
	if (*fn == '\0')
		return tt__err(-EINVAL, "%s: empty function name", op);
	char **v = realloc(o->names[k], (o->nnames[k] + 1) * sizeof *v);
	if (v == NULL)
		return tt__err(-ENOMEM, "%s: out of memory", op);
	o->names[k] = v;
	v[o->nnames[k]] = strdup(fn);
	if (v[o->nnames[k]] == NULL)
		return tt__err(-ENOMEM, "%s: out of memory", op);
	o->nnames[k]++;
	return 0;
}

int tt_leak_ignore_top_function(tt_leak_opts *o, const char *fn)
{
	return add_name(o, F_TOP, fn, "tt_leak_ignore_top_function");
}

int tt_leak_ignore_any_function(tt_leak_opts *o, const char *fn)
{
	return add_name(o, F_ANY, fn, "tt_leak_ignore_any_function");
}

int tt_leak_ignore_created_by(tt_leak_opts *o, const char *fn)
{
	return add_name(o, F_CREATED, fn, "tt_leak_ignore_created_by");
}

static int cmp_id(const void *a, const void *b)
{
	int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
	return (x > y) - (x < y);
}

int tt_leak_ignore_current(tt_leak_opts *o)
{
	if (o == NULL)
		return tt__err(-EINVAL, "tt_leak_ignore_current: options are "
					"NULL");
	tt__sched *s = tt__sched_get();
	tt__procs_make_queued(s, UINT32_MAX);
	/* Other threads' goroutines too: an unscoped check looks at them. */
	tt__snapshot others;
	if (tt__snapshot_take_others(&others, NULL) != 0)
		return tt__err(-ENOMEM, "tt_leak_ignore_current: out of "
					"memory");
	size_t norph = 0;
	const tt__orphan *orph = tt__orphans_head(&norph);
	size_t n = (size_t)atomic_load_explicit(&s->ngoroutines,
						memory_order_relaxed) +
		   norph + others.n;
	int64_t *v = realloc(o->ignore, (o->nignore + n) * sizeof *v);
	if (v == NULL) {
		tt__snapshot_free(&others);
		return tt__err(-ENOMEM, "tt_leak_ignore_current: out of "
					"memory for %zu ids",
			       o->nignore + n);
	}
	o->ignore = v;
	size_t k = o->nignore;
	for (size_t i = 0; i < others.n; i++)
		v[k++] = others.g[i].id;
	tt__snapshot_free(&others);
	for (tt__g *g = s->all; g && k < o->nignore + n; g = g->all_next)
		v[k++] = g->id;
	for (; orph && k < o->nignore + n; orph = orph->next)
		v[k++] = orph->snap.id;
	qsort(v, k, sizeof *v, cmp_id);
	o->nignore = k;
	o->snap_sched = s;
	o->snap_newest = s->all ? s->all->id : 0;
	return 0;
}

int tt_leak_retry(tt_leak_opts *o, int max_retries, int64_t max_sleep)
{
	if (o == NULL)
		return tt__err(-EINVAL, "tt_leak_retry: options are NULL");
	if (max_retries < 0)
		return tt__err(-EINVAL, "tt_leak_retry: negative retries %d",
			       max_retries);
	if (max_sleep < TT_MICROSECOND)
		return tt__err(-EINVAL,
			       "tt_leak_retry: max_sleep %lld ns is under "
			       "1 us",
			       (long long)max_sleep);
	o->max_retries = max_retries;
	o->max_sleep = max_sleep;
	return 0;
}

int tt_leak_cleanup(tt_leak_opts *o, void (*fn)(int, void *), void *arg)
{
	if (o == NULL)
		return tt__err(-EINVAL, "tt_leak_cleanup: options are NULL");
	o->cleanup = fn;
	o->cleanup_arg = arg;
	return 0;
}

static bool ignored_id(const tt_leak_opts *o, int64_t id)
{
	size_t lo = 0, hi = o->nignore;
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		if (o->ignore[mid] < id)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo < o->nignore && o->ignore[lo] == id;
}

/* ---- the scope registry ---------------------------------------------------- */

/* Every scope ever begun, by id - 1: its name and the scope that was
 * active on its goroutine when it began (0: none), so that scopes nest —
 * an inner scope's goroutines belong to the outer one too. Append-only;
 * process-wide, since ids are. */
typedef struct scope_info {
	char *name;
	uint64_t parent;
} scope_info;

static pthread_mutex_t scope_lock = PTHREAD_MUTEX_INITIALIZER;
static scope_info *scopes;
static uint64_t nscopes, capscopes;

static uint64_t scope_register(const char *name, uint64_t parent)
{
	char *copy = name ? strdup(name) : NULL;
	if (name && copy == NULL)
		return 0;
	uint64_t id = 0;
	pthread_mutex_lock(&scope_lock);
	if (nscopes == capscopes) {
		uint64_t cap = capscopes ? capscopes * 2 : 64;
		scope_info *v = realloc(scopes, cap * sizeof *v);
		if (v) {
			scopes = v;
			capscopes = cap;
		}
	}
	if (nscopes < capscopes) {
		scopes[nscopes].name = copy;
		scopes[nscopes].parent = parent;
		id = ++nscopes;
	}
	pthread_mutex_unlock(&scope_lock);
	if (id == 0)
		free(copy);
	return id;
}

/* The name of scope id; stable once registered. */
static const char *scope_name(uint64_t id)
{
	const char *n = NULL;
	pthread_mutex_lock(&scope_lock);
	if (id >= 1 && id <= nscopes)
		n = scopes[id - 1].name;
	pthread_mutex_unlock(&scope_lock);
	return n;
}

/* Whether scope `id` is `want` or nested in it. scope_lock held. */
static bool scope_within_locked(uint64_t id, uint64_t want)
{
	while (id != 0 && id != want && id <= nscopes)
		id = scopes[id - 1].parent;
	return id == want;
}

/* ---- lost cancels ------------------------------------------------------------
 *
 * A cancelable context released without a cancel (Go's vet "lostcancel",
 * at run time). The records are the process's, as a goroutine may
 * release a context on any P; a verify reports those it has not reported
 * before, of its scope, and counts them with the leaked goroutines.
 * Bounded: past LOST_MAX the oldest are dropped and counted. lost_lock
 * guards them, and is taken before scope_lock. */
#define LOST_MAX 1024

typedef struct lost {
	const char *made_by;
	const void *create_pc, *release_pc;
	int64_t goid;    /* the goroutine that released it */
	uint64_t scope;  /* that goroutine's leak scope */
	bool reported;   /* by a verify */
} lost;

static pthread_mutex_t lost_lock = PTHREAD_MUTEX_INITIALIZER;
static lost *lost_v;
static size_t lost_n, lost_start; /* ring of lost_n from start */
static uint64_t lost_dropped;

/* "file:line (func)" for the return address pc. */
static void write_pc(tt__buf *b, const void *pc)
{
	tt__frame fr[8];
	int n = pc ? tt__symbolize((uintptr_t)pc, true, fr, 8) : 0;
	if (n <= 0) {
		tt__buf_puts(b, "?");
		return;
	}
	if (fr[0].file)
		tt__buf_printf(b, "%s:%d (%s)", fr[0].file, fr[0].line,
			       fr[0].func);
	else
		tt__buf_printf(b, "%s", fr[0].func);
}

static void write_lost(tt__buf *b, const lost *l)
{
	tt__buf_printf(b, "lost cancel: context from %s at ", l->made_by);
	write_pc(b, l->create_pc);
	tt__buf_puts(b, " released without a cancel at ");
	write_pc(b, l->release_pc);
	tt__buf_printf(b, " by goroutine %lld", (long long)l->goid);
}

void tt__leak_lost_cancel(const char *made_by, const void *create_pc,
			  const void *release_pc)
{
	tt__g *g = tt__current();
	lost l = {made_by, create_pc, release_pc, g->id, g->leak_scope,
		  false};
	if (tt__leak_reporting()) {
		tt__buf b = {0};
		tt__buf_puts(&b, "tether: ");
		write_lost(&b, &l);
		tt__buf_puts(&b, "\n");
		if (b.err == 0)
			tt__write_all(2, b.data, b.len);
		tt__buf_free(&b);
	}
	pthread_mutex_lock(&lost_lock);
	if (lost_v == NULL)
		lost_v = calloc(LOST_MAX, sizeof *lost_v);
	if (lost_v == NULL) {
		lost_dropped++;
	} else {
		if (lost_n == LOST_MAX) {
			lost_start = (lost_start + 1) % LOST_MAX;
			lost_n--;
			lost_dropped++;
		}
		lost_v[(lost_start + lost_n++) % LOST_MAX] = l;
	}
	pthread_mutex_unlock(&lost_lock);
}

/* Write the lost cancels of the scope (0: all) not yet reported, one per
 * line after a newline each; mark them reported if mark. Returns how
 * many. */
static size_t write_lost_cancels(tt__buf *b, uint64_t scope, bool mark)
{
	size_t n = 0;
	pthread_mutex_lock(&lost_lock);
	for (size_t i = 0; i < lost_n; i++) {
		lost *l = &lost_v[(lost_start + i) % LOST_MAX];
		if (l->reported)
			continue;
		if (scope) {
			pthread_mutex_lock(&scope_lock);
			bool in = scope_within_locked(l->scope, scope);
			pthread_mutex_unlock(&scope_lock);
			if (!in)
				continue;
		}
		tt__buf_puts(b, "\n");
		write_lost(b, l);
		l->reported |= mark;
		n++;
	}
	pthread_mutex_unlock(&lost_lock);
	return n;
}

/* ---- reading a goroutine's text --------------------------------------------- */

/* One candidate, written and parsed. Offsets into the try's text buffer,
 * which may move while it grows. */
typedef struct cand {
	tt__g *g;                  /* a goroutine of the calling thread, */
	const tt__orphan *orphan;  /* or one left by a thread that ended, */
	const tt__gsnap *other;    /* or one of another live thread's */
	int64_t id, parent_id;
	uint64_t leak_scope;
	const tt__leak_rec *leak;
	size_t state, state_len; /* in the header's [...] */
	size_t body, body_len;   /* after the header line */
	size_t top, top_len;
	size_t created, created_len;
} cand;

static bool line_is(const char *p, size_t n, const char *want)
{
	size_t k = strlen(want);
	return n == k && memcmp(p, want, k) == 0;
}

/* The function a frame line names: what comes before its last '(' (the
 * whole line if there is none). */
static size_t func_len(const char *line, size_t n)
{
	for (size_t i = n; i > 0; i--)
		if (line[i - 1] == '(')
			return i - 1;
	return n;
}

/* Parse the goroutine text written at b->data[start..) into c. */
static void parse(const tt__buf *b, size_t start, cand *c)
{
	const char *t = b->data;
	size_t end = b->len;
	size_t nl = start;
	while (nl < end && t[nl] != '\n')
		nl++;
	/* "goroutine N [state]:" */
	size_t lb = start, rb = nl;
	while (lb < nl && t[lb] != '[')
		lb++;
	while (rb > lb && t[rb - 1] != ']')
		rb--;
	if (lb < nl && rb > lb + 1) {
		c->state = lb + 1;
		c->state_len = rb - 1 - (lb + 1);
	} else {
		c->state = lb;
		c->state_len = 0;
	}
	c->body = nl < end ? nl + 1 : end;
	c->top = c->created = c->body;
	c->top_len = c->created_len = 0;
	size_t p = c->body;
	size_t cut = end;
	bool have_top = false;
	while (p < end) {
		size_t e = p;
		while (e < end && t[e] != '\n')
			e++;
		size_t n = e - p;
		if (n > 0 && t[p] != '\t') {
			static const char cb[] = "created by ";
			if (n > sizeof cb - 1 &&
			    memcmp(t + p, cb, sizeof cb - 1) == 0) {
				size_t f = p + sizeof cb - 1, fe = f;
				static const char ig[] = " in goroutine";
				while (fe < e &&
				       !(e - fe >= sizeof ig - 1 &&
					 memcmp(t + fe, ig, sizeof ig - 1) ==
						 0))
					fe++;
				c->created = f;
				c->created_len = fe - f;
				/* goleak's text ends with the creator's
				 * location line. */
				size_t q = e < end ? e + 1 : end;
				if (q < end && t[q] == '\t') {
					while (q < end && t[q] != '\n')
						q++;
					if (q < end)
						q++;
				}
				cut = q;
				break;
			} else if (!have_top &&
				   !line_is(t + p, n, "...")) {
				c->top = p;
				c->top_len = func_len(t + p, n);
				have_top = true;
			}
		}
		p = e < end ? e + 1 : end;
	}
	if (cut == end)
		while (cut > c->body + 1 && t[cut - 1] == '\n' &&
		       t[cut - 2] == '\n')
			cut--;
	c->body_len = cut - c->body;
}

static bool span_eq(const tt__buf *b, size_t off, size_t n, const char *s)
{
	return strlen(s) == n && memcmp(b->data + off, s, n) == 0;
}

/* Whether the function filters drop c. */
static bool filtered(const tt_leak_opts *o, const tt__buf *b, const cand *c)
{
	for (size_t i = 0; i < o->nnames[F_TOP]; i++)
		if (span_eq(b, c->top, c->top_len, o->names[F_TOP][i]))
			return true;
	for (size_t i = 0; i < o->nnames[F_CREATED]; i++)
		if (span_eq(b, c->created, c->created_len,
			    o->names[F_CREATED][i]))
			return true;
	if (o->nnames[F_ANY] == 0)
		return false;
	const char *t = b->data;
	size_t p = c->body, end = c->body + c->body_len;
	while (p < end) {
		size_t e = p;
		while (e < end && t[e] != '\n')
			e++;
		if (e > p && t[p] != '\t' &&
		    !(e - p > 11 && memcmp(t + p, "created by ", 11) == 0)) {
			size_t fl = func_len(t + p, e - p);
			for (size_t i = 0; i < o->nnames[F_ANY]; i++)
				if (span_eq(b, p, fl, o->names[F_ANY][i]))
					return true;
		}
		p = e + 1;
	}
	return false;
}

/* ---- one try, and the retries ------------------------------------------------ */

typedef struct try_state {
	tt__buf text;
	cand *c;
	size_t n, cap;
	size_t live; /* of the n, goroutines of the calling thread */
	/* An unscoped check's: the other live threads' goroutines, as this
	 * try found them (tt__snapshot_take_others), and how many of the n
	 * are theirs. */
	tt__snapshot others;
	size_t nothers;
	/* Every other thread slept where only a post could wake it, just
	 * before this try took their snapshot: theirs cannot change unless
	 * this thread makes them. */
	bool others_asleep;
} try_state;

static bool has_func_filters(const tt_leak_opts *o)
{
	return o->nnames[F_TOP] || o->nnames[F_ANY] || o->nnames[F_CREATED];
}

/* The goroutines the cheap filters keep, into st->c (g only).
 *
 * A scheduler's goroutine ids only grow (new_goid), and tt_go puts each
 * new goroutine at the head of s->all, so the list runs from the newest
 * id down. Every goroutine alive now whose id is at most the newest one
 * tt_leak_ignore_current saw on this scheduler was alive then, so it is
 * ignored, and so is the rest of the list after it: the walk stops there
 * and a check with nothing new costs nothing per ignored goroutine. The
 * order is checked as the list is walked; if it ever does not hold, the
 * walk goes on to the end and looks every id up. */
static cand *cand_add(try_state *st)
{
	if (st->n == st->cap) {
		size_t cap = st->cap ? st->cap * 2 : 16;
		cand *v = realloc(st->c, cap * sizeof *v);
		if (v == NULL)
			return NULL;
		st->c = v;
		st->cap = cap;
	}
	cand *c = &st->c[st->n++];
	memset(c, 0, sizeof *c);
	return c;
}

static int collect(tt__sched *s, const tt_leak_opts *o, uint64_t scope,
		   try_state *st)
{
	st->n = 0;
	/* Goroutines queued on this P unstarted (procs.c) are listed too. */
	tt__procs_make_queued(s, UINT32_MAX);
	tt__g *self = s->current;
	int r = 0;
	bool cut = o->nignore && o->snap_sched == s;
	int64_t prev = INT64_MAX;
	if (scope)
		pthread_mutex_lock(&scope_lock);
	for (tt__g *g = s->all; g; g = g->all_next) {
		if (g->id >= prev)
			cut = false;
		prev = g->id;
		if (cut && g->id <= o->snap_newest)
			break;
		if (g == self || g->state == TT_G_DEAD || g->proxy)
			continue;
		if (scope && g->leak_scope != scope &&
		    !scope_within_locked(g->leak_scope, scope))
			continue;
		if (o->nignore && ignored_id(o, g->id))
			continue;
		cand *c = cand_add(st);
		if (c == NULL) {
			r = -ENOMEM;
			break;
		}
		c->g = g;
		c->id = g->id;
		c->parent_id = g->is_main ? 0 : g->parent_id;
		c->leak_scope = g->leak_scope;
		c->leak = g->leak;
	}
	st->live = st->n;
	if (scope)
		pthread_mutex_unlock(&scope_lock);
	/* Then, for a check of the whole process, the other threads'
	 * goroutines: each thread's as it was at one instant of this try.
	 * A scope's goroutines are all on the thread that began it, unless
	 * tt_go may hand them to other Ps (procs.c). */
	st->nothers = 0;
	if ((scope == 0 || atomic_load_explicit(&tt__procs_spread,
						memory_order_relaxed)) &&
	    r == 0) {
		tt__snapshot_free(&st->others);
		st->others_asleep = tt__others_asleep();
		r = tt__snapshot_take_others(&st->others, NULL);
		for (size_t i = 0; r == 0 && i < st->others.n; i++) {
			const tt__gsnap *gs = &st->others.g[i];
			if (o->nignore && ignored_id(o, gs->id))
				continue;
			if (scope) {
				pthread_mutex_lock(&scope_lock);
				bool in = gs->leak_scope == scope ||
					  scope_within_locked(gs->leak_scope,
							      scope);
				pthread_mutex_unlock(&scope_lock);
				if (!in)
					continue;
			}
			cand *c = cand_add(st);
			if (c == NULL) {
				r = -ENOMEM;
				break;
			}
			c->other = gs;
			c->id = gs->id;
			c->parent_id = gs->parent_id;
			c->leak_scope = gs->leak_scope;
			c->leak = gs->leak;
			st->nothers++;
		}
	}
	/* Then the goroutines threads left behind when they ended: as
	 * leaked as any, and never to change. */
	if (scope)
		pthread_mutex_lock(&scope_lock);
	for (const tt__orphan *og = tt__orphans_head(NULL); og && r == 0;
	     og = og->next) {
		if (scope && og->leak_scope != scope &&
		    !scope_within_locked(og->leak_scope, scope))
			continue;
		if (o->nignore && ignored_id(o, og->snap.id))
			continue;
		cand *c = cand_add(st);
		if (c == NULL) {
			r = -ENOMEM;
			break;
		}
		c->orphan = og;
		c->id = og->snap.id;
		c->parent_id = og->snap.parent_id;
		c->leak_scope = og->leak_scope;
		c->leak = og->leak;
	}
	if (scope)
		pthread_mutex_unlock(&scope_lock);
	return r;
}

static int by_snap_id(const void *key, const void *elem)
{
	int64_t id = *(const int64_t *)key;
	const tt__gsnap *g = elem;
	return (id > g->id) - (id < g->id);
}

/* Write and parse every candidate; with filters, drop those they match.
 * The stacks come from one snapshot of the scheduler, taken here, so they
 * read exactly as the dumps and profiles print them. */
static int describe(const tt_leak_opts *o, try_state *st)
{
	st->text.len = 0;
	tt__snapshot snap;
	int r = tt__snapshot_take(&snap);
	if (r)
		return r;
	size_t kept = 0;
	size_t live = 0, nothers = 0;
	for (size_t i = 0; i < st->n; i++) {
		cand c = st->c[i];
		const tt__gsnap *gs =
			c.orphan  ? &c.orphan->snap
			: c.other ? c.other
				  : bsearch(&c.id, snap.g, snap.n,
					    sizeof *snap.g, by_snap_id);
		if (gs == NULL)
			continue; /* cannot happen: nothing ran meanwhile */
		size_t start = st->text.len;
		tt__write_goroutine(&st->text, gs, snap.taken_at);
		if (st->text.err) {
			r = st->text.err;
			break;
		}
		parse(&st->text, start, &c);
		if (filtered(o, &st->text, &c)) {
			st->text.len = start;
			continue;
		}
		if (c.orphan == NULL && c.other == NULL)
			live++;
		else if (c.other)
			nothers++;
		st->c[kept++] = c;
	}
	tt__snapshot_free(&snap);
	st->n = kept;
	st->live = live;
	st->nothers = nothers;
	return r;
}

/* Nothing can wake anything: the answer cannot change by waiting. */
static bool quiescent(const tt__sched *s)
{
	return runq_len(s) == 0 && s->timers.n == 0 && s->io_waiters == 0;
}

static void try_free(try_state *st)
{
	tt__buf_free(&st->text);
	free(st->c);
	tt__snapshot_free(&st->others);
}

/* Find with retries: leaves the leaked goroutines described in st. */
static int find(const tt_leak_opts *o, uint64_t scope, try_state *st)
{
	tt__sched *s = tt__sched_get();
	for (int i = 0;; i++) {
		int r = collect(s, o, scope, st);
		if (r)
			return r;
		if (st->n && has_func_filters(o)) {
			r = describe(o, st);
			if (r)
				return r;
		}
		if (st->n == 0)
			return 0;
		/* Orphans never change: only live goroutines are waited
		 * for; another thread's may change whatever this one
		 * does, unless every other thread was asleep with nothing
		 * to wake it (the deadlock detector's test, post.c). */
		if (i >= o->max_retries ||
		    ((quiescent(s) || st->live == 0) &&
		     (st->nothers == 0 || st->others_asleep)))
			break;
		int64_t d = i < 40 ? TT_MICROSECOND << i : o->max_sleep;
		if (d > o->max_sleep)
			d = o->max_sleep;
		tt_sleep(d);
	}
	if (!has_func_filters(o))
		return describe(o, st);
	return 0;
}

/* goleak's error text for st's goroutines into b. */
static void write_report(tt__buf *b, const try_state *st, uint64_t scope)
{
	const tt__buf *t = &st->text;
	tt__buf_puts(b, "found unexpected goroutines:\n[");
	for (size_t i = 0; i < st->n; i++) {
		const cand *c = &st->c[i];
		if (i)
			tt__buf_puts(b, " ");
		tt__buf_printf(b, "Goroutine %lld in state %.*s, with %.*s on "
				  "top of the stack:\n%.*s",
			       (long long)c->id, (int)c->state_len,
			       t->data + c->state, (int)c->top_len,
			       t->data + c->top, (int)c->body_len,
			       t->data + c->body);
	}
	tt__buf_puts(b, "]");
	/* What goleak cannot say: which scope started each goroutine, and
	 * which are proven leaked. Lines after the report, only when there
	 * is something to say. */
	for (size_t i = 0; i < st->n; i++) {
		const cand *c = &st->c[i];
		const char *name = c->leak_scope == scope
					   ? NULL
					   : scope_name(c->leak_scope);
		if (name)
			tt__buf_printf(b, "\ngoroutine %lld was started in "
					  "leak scope \"%s\"",
				       (long long)c->id, name);
		const tt__leak_rec *r = c->leak;
		if (r) {
			tt__buf_printf(b, "\ngoroutine %lld is proven leaked: "
					  "parked on %s %p released at ",
				       (long long)c->id, r->what, r->handle);
			tt__leak_write_site(b, r);
		}
		const tt__orphan *og = c->orphan;
		if (og)
			tt__buf_printf(b, "\ngoroutine %lld was left %s when its "
					  "thread (tid %d) exited: it can never "
					  "run again; its stack is as it was "
					  "then",
				       (long long)c->id,
				       og->snap.state == TT_G_WAITING
					       ? "parked"
					       : "runnable",
				       og->tid);
	}
}

static int fill_list(const try_state *st, tt_leak_list *out)
{
	tt__buf b = {0};
	if (st->n)
		write_report(&b, st, 0);
	out->lost_cancels = write_lost_cancels(&b, 0, false);
	tt__buf_put(&b, "", 1);
	if (b.err) {
		tt__buf_free(&b);
		return -ENOMEM;
	}
	/* One block: the records, then every string they point to. */
	size_t strs = 0;
	for (size_t i = 0; i < st->n; i++) {
		const cand *c = &st->c[i];
		const char *name = scope_name(c->leak_scope);
		strs += c->state_len + c->top_len + c->created_len +
			c->body_len + 4 + (name ? strlen(name) + 1 : 0);
	}
	char *mem = malloc(st->n * sizeof(tt_leaked) + strs + b.len);
	if (mem == NULL) {
		tt__buf_free(&b);
		return -ENOMEM;
	}
	tt_leaked *v = (tt_leaked *)(void *)mem;
	char *p = mem + st->n * sizeof(tt_leaked);
	const char *t = st->text.data;
#define DUP(dst, off, len)                                                    \
	do {                                                                  \
		memcpy(p, t + (off), (len));                                  \
		p[(len)] = '\0';                                              \
		(dst) = p;                                                    \
		p += (len) + 1;                                               \
	} while (0)
	for (size_t i = 0; i < st->n; i++) {
		const cand *c = &st->c[i];
		v[i].id = c->id;
		v[i].parent_id = c->parent_id;
		v[i].proven = c->leak != NULL;
		DUP(v[i].state, c->state, c->state_len);
		DUP(v[i].top, c->top, c->top_len);
		DUP(v[i].created_by, c->created, c->created_len);
		DUP(v[i].stack, c->body, c->body_len);
		const char *name = scope_name(c->leak_scope);
		v[i].scope = NULL;
		if (name) {
			size_t n = strlen(name);
			memcpy(p, name, n + 1);
			v[i].scope = p;
			p += n + 1;
		}
	}
#undef DUP
	memcpy(p, b.data, b.len);
	out->g = v;
	out->n = st->n;
	out->report = st->n || out->lost_cancels ? p : NULL;
	out->mem = mem;
	tt__buf_free(&b);
	return 0;
}

int tt_leak_find(const tt_leak_opts *opts, tt_leak_list *out)
{
	if (out == NULL)
		return tt__err(-EINVAL, "tt_leak_find: out is NULL");
	memset(out, 0, sizeof *out);
	const tt_leak_opts *o = opts ? opts : &default_opts;
	if (o->cleanup)
		return tt__err(-EINVAL, "tt_leak_find: a cleanup can only be "
					"given to the verify calls");
	try_state st = {0};
	int r = find(o, 0, &st);
	if (r == 0)
		r = fill_list(&st, out);
	try_free(&st);
	if (r)
		return tt__err(r, "tt_leak_find: out of memory");
	return (int)out->n;
}

void tt_leak_list_free(tt_leak_list *l)
{
	if (l == NULL)
		return;
	free(l->mem);
	memset(l, 0, sizeof *l);
}

static int fd_write(void *arg, const void *data, size_t len)
{
	tt__write_all((int)(intptr_t)arg, data, len);
	return 0;
}

static int verify(const tt_leak_opts *opts, uint64_t scope, tt_write_fn fn,
		  void *arg, const char *op)
{
	const tt_leak_opts *o = opts ? opts : &default_opts;
	try_state st = {0};
	int r = find(o, scope, &st);
	TT_TSAN_SEE_ENDS();
	if (r == 0) {
		tt__buf b = {0};
		if (st.n)
			write_report(&b, &st, scope);
		size_t nlost = write_lost_cancels(&b, scope, true);
		if (st.n || nlost) {
			tt__buf_puts(&b, "\n");
			r = b.err;
		}
		if (r == 0 && b.len) {
			const char *d = b.data + (st.n ? 0 : 1);
			size_t len = b.len - (st.n ? 0 : 1);
			int w = fn ? fn(arg, d, len)
				   : fd_write((void *)(intptr_t)2, d, len);
			r = w < 0 ? w : (int)(st.n + nlost);
		}
		tt__buf_free(&b);
	}
	try_free(&st);
	if (o->cleanup)
		o->cleanup(0, o->cleanup_arg);
	if (r < 0)
		return tt__err(r, "%s: %s", op, tt_strerror(r));
	return r;
}

int tt_leak_verify_none(const tt_leak_opts *opts)
{
	return verify(opts, 0, NULL, NULL, "tt_leak_verify_none");
}

int tt_leak_verify_none_to(const tt_leak_opts *opts, tt_write_fn fn,
			   void *arg)
{
	if (fn == NULL)
		return tt__err(-EINVAL, "tt_leak_verify_none_to: fn is NULL");
	return verify(opts, 0, fn, arg, "tt_leak_verify_none_to");
}

/* ---- scopes -------------------------------------------------------------------- */

int tt_leak_scope_begin(tt_leak_scope *sc, const char *name)
{
	if (sc == NULL)
		return tt__err(-EINVAL, "tt_leak_scope_begin: scope is NULL");
	tt__g *g = tt__current();
	uint64_t id = scope_register(name, g->leak_scope);
	if (id == 0)
		return tt__err(-ENOMEM, "tt_leak_scope_begin: out of memory");
	sc->id = id;
	sc->prev = g->leak_scope;
	sc->goid = g->id;
	sc->active = true;
	g->leak_scope = id;
	return 0;
}

static int scope_close(tt_leak_scope *sc, const char *op)
{
	if (sc == NULL)
		return tt__err(-EINVAL, "%s: scope is NULL", op);
	if (!sc->active)
		return tt__err(-EINVAL, "%s: the scope is not active (never "
					"begun, or already ended)",
			       op);
	tt__g *g = tt__current();
	if (g->id != sc->goid)
		return tt__err(-EPERM,
			       "%s: goroutine %lld began the scope; goroutine "
			       "%lld cannot end it",
			       op, (long long)sc->goid, (long long)g->id);
	if (g->leak_scope != sc->id)
		return tt__err(-EINVAL, "%s: an inner scope is still active",
			       op);
	g->leak_scope = sc->prev;
	sc->active = false;
	return 0;
}

int tt_leak_scope_end(tt_leak_scope *sc)
{
	return scope_close(sc, "tt_leak_scope_end");
}

int tt_leak_scope_verify_to(tt_leak_scope *sc, const tt_leak_opts *opts,
			    tt_write_fn fn, void *arg)
{
	int r = scope_close(sc, "tt_leak_scope_verify");
	if (r)
		return r;
	return verify(opts, sc->id, fn, arg, "tt_leak_scope_verify");
}

int tt_leak_scope_verify(tt_leak_scope *sc, const tt_leak_opts *opts)
{
	return tt_leak_scope_verify_to(sc, opts, NULL, NULL);
}

/* ---- at exit --------------------------------------------------------------------- */

static _Atomic int at_exit_armed;
static tt_leak_opts *exit_opts;

static void at_exit(int status, void *arg)
{
	(void)arg;
	const tt_leak_opts *o = exit_opts ? exit_opts : &default_opts;
	bool leaked = false;
	if (status == 0 &&
	    (tt__tls_sched != NULL || tt__orphans_head(NULL) != NULL)) {
		try_state st = {0};
		int r = find(o, 0, &st);
		if (r == 0 && st.n) {
			tt__buf b = {0};
			tt__buf_puts(&b, "tether: errors on successful test "
					 "run: ");
			write_report(&b, &st, 0);
			tt__buf_puts(&b, "\n");
			fflush(stdout);
			if (b.err == 0)
				tt__write_all(2, b.data, b.len);
			tt__buf_free(&b);
			status = 1;
			leaked = true;
		}
		try_free(&st);
	}
	if (o->cleanup)
		o->cleanup(status, o->cleanup_arg);
	if (leaked) {
		/* The status can only be changed by ending here: exit() may
		 * not be called again from an exit handler. */
		fflush(NULL);
		_exit(status);
	}
}

static tt_leak_opts *opts_copy(const tt_leak_opts *o)
{
	tt_leak_opts *c;
	if (tt_leak_opts_make(&c))
		return NULL;
	for (int k = 0; k < 3; k++)
		for (size_t i = 0; i < o->nnames[k]; i++)
			if (add_name(c, k, o->names[k][i], "copy")) {
				tt_leak_opts_free(c);
				return NULL;
			}
	if (o->nignore) {
		c->ignore = malloc(o->nignore * sizeof *c->ignore);
		if (c->ignore == NULL) {
			tt_leak_opts_free(c);
			return NULL;
		}
		memcpy(c->ignore, o->ignore, o->nignore * sizeof *c->ignore);
		c->nignore = o->nignore;
	}
	c->snap_sched = o->snap_sched;
	c->snap_newest = o->snap_newest;
	c->max_retries = o->max_retries;
	c->max_sleep = o->max_sleep;
	c->cleanup = o->cleanup;
	c->cleanup_arg = o->cleanup_arg;
	return c;
}

int tt_leak_verify_at_exit(const tt_leak_opts *opts)
{
	tt_leak_opts *copy = NULL;
	if (opts) {
		copy = opts_copy(opts);
		if (copy == NULL)
			return tt__err(-ENOMEM, "tt_leak_verify_at_exit: out "
						"of memory");
	}
	if (atomic_exchange(&at_exit_armed, 1)) {
		tt_leak_opts_free(copy);
		return tt__err(-EALREADY, "tt_leak_verify_at_exit: already "
					  "armed");
	}
	exit_opts = copy;
	if (on_exit(at_exit, NULL) != 0) {
		atomic_store(&at_exit_armed, 0);
		exit_opts = NULL;
		tt_leak_opts_free(copy);
		return tt__err(-ENOMEM, "tt_leak_verify_at_exit: on_exit "
					"failed");
	}
	return 0;
}
