/* tether — proven leaks: goroutines parked on objects nobody can reach.
 *
 * Design notes
 * ------------
 * Channels and the sync objects count user references (refs) apart from
 * the goroutines parked on them (parked). Only a user reference lets
 * anyone send, receive, close, unlock or signal; so when refs drops to 0
 * while goroutines are parked, nothing can wake them unless something
 * else still can: their own deadline timer, a timer channel's timer, or
 * (in a select) another channel that is still referenced. The lower
 * layers call in here at exactly that release, and only then, so the
 * operations themselves cost nothing extra: proving is one walk of the
 * released object's wait queues.
 *
 * A goroutine in a select is visited once per released channel it waits
 * on, and proven at the release of the last one that was reachable.
 *
 * The record (tt__leak_rec) keeps the releasing goroutine's stack, taken
 * once per release, and is shared by every goroutine that release proved.
 * What is said about it is TETHER_LEAK's choice: off (the default: only
 * the marks, for tt_leak_find and the goroutineleak profile), report, or
 * abort.
 *
 * Other threads' goroutines. The release runs on the object's owner, and
 * its queues hold goroutines of other threads too: one that waits on a
 * shared channel by itself (queued under the channel's lock, which the
 * release holds), and one that waits through a proxy goroutine of the
 * owner's (tt__post_proxy) — the proxy's wait proves the goroutine it
 * stands for, parked in tt__post_call, never the proxy itself. The
 * release decides from what it may read: a queued waiter of another
 * thread says whether its wait has a deadline (TT__W_TIMED) and, in a
 * select, whether a case has fired already (its claim); the channels of
 * its other cases are read with atomic loads (a channel nobody holds
 * stays so). The proof is counted at the release, as this thread's are;
 * the goroutine's mark (g->leak) and its report are its own thread's:
 * once it has let go of the object, the release posts them there, one
 * post per thread (run_proofs), ahead of anything asked of that thread
 * later, a check's or a profile's snapshot included, so those see the
 * mark. The report needs the goroutine's stack, which only its own thread
 * can unwind (a proxy of that thread's takes one snapshot for the post,
 * proofs_report); the release waits for it (for a bounded time: a thread
 * outside tether cannot answer), so that the report is printed at the
 * release, as one thread's are.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "chan/chan.h"
#include "leak/leak.h"

enum leak_mode { MODE_UNSET = -1, MODE_OFF, MODE_REPORT, MODE_ABORT };

static _Atomic int mode = MODE_UNSET;
/* Every thread's proofs (tt_leak_proven_count, the metrics). */
static _Atomic uint64_t proven_all;

static int leak_mode(void)
{
	int m = atomic_load_explicit(&mode, memory_order_relaxed);
	if (TT_LIKELY(m != MODE_UNSET))
		return m;
	const char *e = getenv("TETHER_LEAK");
	m = MODE_OFF;
	if (e && strcmp(e, "report") == 0)
		m = MODE_REPORT;
	else if (e && strcmp(e, "abort") == 0)
		m = MODE_ABORT;
	else if (e && *e && strcmp(e, "off") != 0) {
		static const char msg[] =
			"tether: TETHER_LEAK must be off, report or abort; "
			"taking off\n";
		tt__write_all(2, msg, sizeof msg - 1);
	}
	atomic_store_explicit(&mode, m, memory_order_relaxed);
	return m;
}

bool tt__leak_reporting(void)
{
	return leak_mode() != MODE_OFF;
}

uint64_t tt_leak_proven_count(void)
{
	return atomic_load_explicit(&proven_all, memory_order_relaxed);
}

uint64_t tt__leak_proven_all(void)
{
	return atomic_load_explicit(&proven_all, memory_order_relaxed);
}

void tt__leak_write_site(tt__buf *b, const tt__leak_rec *r)
{
	if (r->site_file)
		tt__buf_printf(b, "%s:%d", r->site_file, r->site_line);
	else if (r->site_func)
		tt__buf_printf(b, "%s", r->site_func);
	else
		tt__buf_puts(b, "?");
}

/* Where tether's own sources are ("/path/to/tether/src/"), from this
 * file's name as the compiler saw it; NULL when that is not an absolute
 * path. Frames are told apart by their source file first (that covers
 * tether's static functions too), by the tt_ prefix of their name when
 * there is no line information. */
static const char *src_root(size_t *len)
{
	static const char me[] = __FILE__;
	static const char tail[] = "leak/proven.c";
	size_t n = sizeof me - 1, t = sizeof tail - 1;
	if (me[0] != '/' || n <= t || strcmp(me + n - t, tail) != 0)
		return NULL;
	*len = n - t;
	return me;
}

/* 1: tether's leak layer; 2: elsewhere in tether; 0: the program. */
static int frame_owner(const tt__frame *f)
{
	size_t rl = 0;
	const char *root = src_root(&rl);
	if (f->file && root && strncmp(f->file, root, rl) == 0)
		return strncmp(f->file + rl, "leak/", 5) == 0 ? 1 : 2;
	if (f->func && strncmp(f->func, "tt__leak", 8) == 0)
		return 1;
	if (f->func && strncmp(f->func, "tt_", 3) == 0)
		return 2;
	return 0;
}

/* The owner of the PC: the highest over its inlined frames. *public:
 * whether its physical function is one of tether's public calls. */
static int pc_owner(uintptr_t pc, bool return_addr, tt__frame *site,
		    bool *public)
{
	tt__frame f[8];
	int k = tt__symbolize(pc, return_addr, f, 8);
	int own = 0;
	for (int j = 0; j < k; j++) {
		int o = frame_owner(&f[j]);
		own = o > own ? o : own;
	}
	const char *fn = k > 0 ? f[k - 1].func : NULL;
	*public = fn && strncmp(fn, "tt_", 3) == 0 && fn[3] != '_';
	if (k > 0)
		*site = f[0];
	return own;
}

/* A record of the release going on now, its stack taken here. `from` is
 * the return address into the release call that called this layer: the
 * stack is kept from that frame on. */
static tt__leak_rec *rec_new(tt__sched *s, const void *obj, const char *what,
			     uintptr_t from)
{
	tt__leak_rec *r = calloc(1, sizeof *r);
	if (r == NULL)
		return NULL;
	r->obj = obj;
	r->handle = tt__obj_handle(obj); /* still live: parked on */
	r->what = what;
	r->released_by = s->current->id;
	if (!s->current->is_main) {
		r->released_parent = s->current->parent_id;
		r->released_pc = (uintptr_t)s->current->create_pc;
	}
	int n = tt__trace_here(r->pcs, TT__TRACE_MAX, 0);
	r->npcs = n > 0 ? n : 0;
	/* The stack is kept from the release call: past this layer and
	 * tether's internal helpers (a sync object's release function),
	 * from the first public call or, failing one, the program's frame.
	 * The release site is the first frame outside tether (past a
	 * context that freed its done channel, say): the program's. */
	int from_at = -1, keep = -1, outside = -1;
	for (int i = 0; i < r->npcs && from_at < 0; i++)
		if (r->pcs[i] == from)
			from_at = i;
	for (int i = from_at < 0 ? 0 : from_at; i < r->npcs; i++) {
		tt__frame f;
		memset(&f, 0, sizeof f);
		bool public = false;
		int own = pc_owner(r->pcs[i], i > 0, &f, &public);
		if (outside < 0 && own != 1)
			outside = i;
		if (keep < 0 && (own == 0 || (own == 2 && public)))
			keep = i;
		if (own == 0) {
			r->site_func = f.func;
			r->site_file = f.file;
			r->site_line = f.line;
			break;
		}
	}
	if (keep < 0)
		keep = outside;
	if (keep > 0) {
		memmove(r->pcs, r->pcs + keep,
			(size_t)(r->npcs - keep) * sizeof r->pcs[0]);
		r->npcs -= keep;
	}
	/* On a thread's main goroutine, what runs below main() is not the
	 * program's (the dumps leave it out too). */
	if (s->current->is_main)
		for (int i = 0; i < r->npcs; i++) {
			tt__frame f[8];
			int k = tt__symbolize(r->pcs[i], true, f, 8);
			if (k > 0 && f[k - 1].func &&
			    strcmp(f[k - 1].func, "main") == 0) {
				r->npcs = i + 1;
				break;
			}
		}
	return r;
}

static int by_snap_id(const void *key, const void *elem)
{
	int64_t id = *(const int64_t *)key;
	const tt__gsnap *g = elem;
	return (id > g->id) - (id < g->id);
}

/* The proof of goroutine id into b: the line, its stack (gs, if it was
 * found), the releasing stack. */
static void report_write(tt__buf *b, int64_t id, const tt__gsnap *gs,
			 const tt__leak_rec *r)
{
	tt__buf_printf(b, "goroutine %lld leaked: parked on %s %p released at ",
		       (long long)id, r->what, r->handle);
	tt__leak_write_site(b, r);
	tt__buf_puts(b, "\n\n");
	int64_t now = tt_now();
	if (gs)
		tt__write_goroutine(b, gs, now);
	/* The releasing stack, in the same layout. */
	tt__gsnap rs;
	memset(&rs, 0, sizeof rs);
	rs.id = r->released_by;
	rs.state = TT_G_RUNNING;
	rs.current = true;
	rs.pcs = r->pcs;
	rs.npcs = (uint32_t)r->npcs;
	rs.parent_id = r->released_parent;
	rs.create_pc = r->released_pc;
	tt__buf_printf(b, "released by goroutine %lld:\n",
		       (long long)r->released_by);
	tt__write_goroutine(b, &rs, now);
}

static const tt__gsnap *snap_find(const tt__snapshot *sn, int64_t id)
{
	return sn ? bsearch(&id, sn->g, sn->n, sizeof *sn->g, by_snap_id)
		  : NULL;
}

/* Print the proof for g, of this thread. The stacks come from one
 * snapshot per release (r->snap), so a release that strands many
 * goroutines unwinds each once. */
static void report(const tt__g *g, tt__leak_rec *r)
{
	if (r->snap == NULL) {
		r->snap = calloc(1, sizeof *r->snap);
		if (r->snap && tt__snapshot_take(r->snap) != 0) {
			free(r->snap);
			r->snap = NULL;
		}
	}
	tt__buf b = {0};
	report_write(&b, g->id, snap_find(r->snap, g->id), r);
	if (b.err == 0)
		tt__write_all(2, b.data, b.len);
	tt__buf_free(&b);
}

/* Whether c can still make anything happen to its waiters. */
static bool chan_reachable(const tt_chan *c)
{
	return c->refs > 0 || (c->timer && tt__timer_armed(&c->timer->t));
}

/* Whether g, parked, can never be woken: no deadline, and every channel
 * it waits on gone (the caller checked the object it was found on). */
static bool stranded(const tt__g *g)
{
	if (g->state != TT_G_WAITING || g->leak != NULL ||
	    tt__timer_armed(&g->timer))
		return false;
	switch (g->reason) {
	case TT_WAIT_CHAN_RECV:
	case TT_WAIT_CHAN_SEND:
	case TT_WAIT_SELECT: {
		const tt__waiter *ws = tt__g_stack_addr(g, g->wait_list);
		for (uint32_t i = 0; i < g->wait_n; i++) {
			const tt__waiter *w = tt__g_stack_addr(g, &ws[i]);
			if (w->c && chan_reachable(w->c))
				return false;
		}
		return g->wait_n > 0;
	}
	case TT_WAIT_WG_WAIT:
	case TT_WAIT_MUTEX:
	case TT_WAIT_RWMUTEX_R:
	case TT_WAIT_RWMUTEX_W:
	case TT_WAIT_COND:
		return true;
	default:
		return false;
	}
}

/* The record of the release going on now, made on the first proof. */
static tt__leak_rec *rec_get(tt__sched *s, const void *obj, const char *what,
			     tt__leak_rec **recp, uintptr_t from)
{
	if (*recp == NULL)
		*recp = rec_new(s, obj, what, from);
	return *recp; /* NULL: out of memory, stay silent, mark nothing */
}

static void prove(tt__sched *s, tt__g *g, const void *obj, const char *what,
		  tt__leak_rec **recp, uintptr_t from)
{
	tt__leak_rec *r = rec_get(s, obj, what, recp, from);
	if (r == NULL)
		return;
	g->leak = r;
	r->proven++;
	atomic_fetch_add_explicit(&proven_all, 1, memory_order_relaxed);
	if (leak_mode() != MODE_OFF)
		report(g, r);
}

/* ---- goroutines of other threads ---- */

/* The goroutines of one thread that a release proved, posted there: one
 * post per thread and release, however many goroutines it strands. */
typedef struct proofs {
	tt__leak_rec *r;
	bool report;   /* TETHER_LEAK reports: r->pending counts the post */
	uint32_t n;
	tt__leak_remote v[];
} proofs;

static void proofs_done(proofs *pf)
{
	if (pf->report)
		atomic_fetch_sub_explicit(&pf->r->pending, 1,
					  memory_order_release);
}

/* On the goroutines' thread, in a proxy (one that leaves itself out of
 * the snapshot), when they have all switched away: one snapshot for all
 * of them. */
static void proofs_report(void *arg)
{
	proofs *pf = arg;
	tt__snapshot sn;
	bool have = tt__snapshot_take(&sn) == 0;
	tt__buf b = {0};
	for (uint32_t i = 0; i < pf->n; i++) {
		if (pf->v[i].g == NULL)
			continue; /* not marked (run_proofs) */
		report_write(&b, pf->v[i].id,
			     have ? snap_find(&sn, pf->v[i].id) : NULL, pf->r);
		if (b.err == 0)
			tt__write_all(2, b.data, b.len);
		b.len = 0;
	}
	tt__buf_free(&b);
	if (have)
		tt__snapshot_free(&sn);
	proofs_done(pf);
	free(pf);
}

/* Each goroutine is still parked in the wait it was proved in: nothing
 * could end that wait but its object's owner's end (a shared channel's
 * waiters of other threads then wake with -EPIPE, a proxy's asker is
 * answered -EPIPE), whose wake-ups come through this inbox after this
 * post. (A goroutine that had just queued parks before its thread looks
 * at its inbox.) */
static void run_proofs(tt__sched *s, tt__post *p)
{
	proofs *pf = (proofs *)(void *)p->val;
	bool any = false;
	for (uint32_t i = 0; i < pf->n; i++) {
		tt__g *g = pf->v[i].g;
		if (g->sched == s && g->id == pf->v[i].id &&
		    g->state == TT_G_WAITING && g->leak == NULL) {
			g->leak = pf->r;
			any = true;
		} else {
			pf->v[i].g = NULL;
		}
	}
	bool reported = false;
	if (any && pf->report) {
		size_t bytes = sizeof *pf + pf->n * sizeof pf->v[0];
		proofs *copy = malloc(bytes);
		if (copy) {
			memcpy(copy, pf, bytes);
			tt__spawn sp = {.fn = proofs_report,
					.arg = copy,
					.name = "leak report",
					.parent_id = pf->r->released_by,
					.proxy = true};
			reported = tt__go_spawn(s, &sp) > 0;
			if (!reported)
				free(copy);
		}
	}
	if (!reported)
		proofs_done(pf);
	tt__post_answer(p);
}

static void proofs_dropped(tt__post *p)
{
	proofs_done((proofs *)(void *)p->val);
}

/* g (goroutine id), of the thread of `to`, can never be woken: counted
 * now; marked and reported on its own thread once the release has let go
 * of the object (send_proofs). */
static void prove_remote(tt__sched *s, tt__sched *to, tt__g *g, int64_t id,
			 const void *obj, const char *what,
			 tt__leak_rec **recp, uintptr_t from)
{
	tt__leak_rec *r = rec_get(s, obj, what, recp, from);
	if (r == NULL)
		return;
	r->proven++;
	atomic_fetch_add_explicit(&proven_all, 1, memory_order_relaxed);
	if (r->nremote == r->cap_remote) {
		uint32_t cap = r->cap_remote ? 2 * r->cap_remote : 8;
		tt__leak_remote *v = realloc(r->remote, cap * sizeof *v);
		if (v == NULL)
			return; /* counted, not marked: out of memory */
		r->remote = v;
		r->cap_remote = cap;
	}
	r->remote[r->nremote++] = (tt__leak_remote){.to = to, .g = g, .id = id};
}

static int by_thread(const void *a, const void *b)
{
	const tt__leak_remote *x = a, *y = b;
	if (x->to != y->to)
		return (uintptr_t)x->to < (uintptr_t)y->to ? -1 : 1;
	return (x->seq > y->seq) - (x->seq < y->seq);
}

/* Post r's proofs of other threads' goroutines, one post per thread, in
 * the order the release found them. */
static void send_proofs(tt__leak_rec *r)
{
	for (uint32_t i = 0; i < r->nremote; i++)
		r->remote[i].seq = i;
	qsort(r->remote, r->nremote, sizeof *r->remote, by_thread);
	bool report = leak_mode() != MODE_OFF;
	for (uint32_t i = 0, j; i < r->nremote; i = j) {
		for (j = i + 1; j < r->nremote && r->remote[j].to == r->remote[i].to;)
			j++;
		uint32_t n = j - i;
		tt__post *p = tt__post_new(sizeof(proofs) +
						   n * sizeof(tt__leak_remote),
					   "proven leak");
		if (p == NULL)
			continue; /* counted, not marked: out of memory */
		proofs *pf = (proofs *)(void *)p->val;
		pf->r = r;
		pf->report = report;
		pf->n = n;
		memcpy(pf->v, r->remote + i, n * sizeof *pf->v);
		p->run = run_proofs;
		p->dropped = proofs_dropped;
		p->h = r->handle;
		p->quiet = true;
		if (report)
			atomic_fetch_add_explicit(&r->pending, 1,
						  memory_order_relaxed);
		if (tt__post_send(r->remote[i].to, p) != 0 && report)
			atomic_fetch_sub_explicit(&r->pending, 1,
						  memory_order_relaxed);
	}
	free(r->remote);
	r->remote = NULL;
	r->nremote = r->cap_remote = 0;
}

/* The post a proxy of s waits with, NULL if g is none of those. */
static const tt__post *held_by(const tt__sched *s, const tt__g *g)
{
	for (const tt__post *h = s->held; h; h = h->hnext)
		if (h->proxy_g == g)
			return h;
	return NULL;
}

/* g, of this thread, is stranded: proved, or if it is a proxy, the
 * goroutine of another thread it waits for. */
static void prove_any(tt__sched *s, tt__g *g, const void *obj,
		      const char *what, tt__leak_rec **recp, uintptr_t from)
{
	if (!g->proxy) {
		prove(s, g, obj, what, recp, from);
		return;
	}
	/* A proxy parked on an object is one of tt__post_proxy's, started:
	 * its argument is the post it waits with (found without a walk of
	 * s->held, which holds one post per goroutine of another thread
	 * waiting here). */
	const tt__post *h = g->arg;
	if (h == NULL || !h->held || h->proxy_g != g)
		h = held_by(s, g);
	if (h == NULL || h->from == NULL)
		return;
	/* The proxy is proved too, in that it is not looked at again; the
	 * leak tools never list it. */
	g->leak = rec_get(s, obj, what, recp, from);
	/* Its parent is the asker (tt__post_proxy). */
	prove_remote(s, h->from, h->g, g->parent_id, obj, what, recp, from);
}

/* Whether c, a channel of any thread, can still make anything happen to
 * its waiters, read without its lock: one nobody holds stays so. */
static bool chan_reachable_any(const tt_chan *c)
{
	return __atomic_load_n(&c->refs, __ATOMIC_SEQ_CST) > 0 ||
	       (c->timer && __atomic_load_n(&c->timer->t.heap_ix,
					    __ATOMIC_RELAXED) != TT_TIMER_IDLE);
}

/* w, queued on c (whose lock the caller holds, and which nothing can
 * reach any more), is the waiter of a goroutine of another thread: its
 * goroutine can never be woken. Once per goroutine: in a select with
 * several cases on c, at its first such waiter. */
static bool remote_stranded(const tt_chan *c, const tt__waiter *w)
{
	if (w->flags & TT__W_TIMED)
		return false;
	if (!(w->flags & TT__W_SELECT))
		return true; /* a wait on c alone */
	tt__g *g = w->g;
	/* Claimed: a case fired, it is on its way back. Until then its
	 * waiters stay in their queues, c's too, which its return takes
	 * out under c's lock: the array stays. */
	if (atomic_load_explicit(&g->sel_claim, memory_order_acquire))
		return false;
	const tt__waiter *ws = __atomic_load_n(&g->wait_list, __ATOMIC_RELAXED);
	uint32_t n = __atomic_load_n(&g->wait_n, __ATOMIC_RELAXED);
	if (ws == NULL || n == 0)
		return false;
	for (uint32_t i = 0; i < n; i++) {
		if (ws[i].c == c && &ws[i] < w)
			return false; /* its earlier waiter on c speaks */
		if (ws[i].c && ws[i].c != c && chan_reachable_any(ws[i].c))
			return false;
	}
	return true;
}

void tt__leak_release_done(void *site)
{
	tt__leak_rec *r = site;
	if (r && r->snap) {
		tt__snapshot_free(r->snap);
		free(r->snap);
		r->snap = NULL;
	}
	if (r && r->nremote)
		send_proofs(r);
	/* Other threads' reports: printed at the release, as this thread's
	 * are, unless a thread cannot answer in time. */
	if (r && atomic_load_explicit(&r->pending, memory_order_acquire)) {
		int64_t end = tt_now() + 2 * TT_SECOND;
		struct timespec nap = {0, 20 * 1000};
		while (atomic_load_explicit(&r->pending,
					    memory_order_acquire) &&
		       tt_now() < end) {
			nanosleep(&nap, NULL);
			if (nap.tv_nsec < 1000 * 1000)
				nap.tv_nsec *= 2;
		}
	}
	if (r && r->proven && leak_mode() == MODE_ABORT) {
		static const char msg[] =
			"tether: TETHER_LEAK=abort: aborting on a proven "
			"goroutine leak\n";
		tt__write_all(2, msg, sizeof msg - 1);
		abort();
	}
}

__attribute__((noinline)) void *tt__leak_chan_released(tt__sched *s,
							 tt_chan *c)
{
	if (chan_reachable(c))
		return NULL;
	tt__leak_rec *r = NULL;
	uintptr_t from = (uintptr_t)__builtin_return_address(0);
	const tt__waitq *qs[2] = {&c->recvq, &c->sendq};
	for (int i = 0; i < 2; i++)
		for (const tt__waiter *w = qs[i]->first; w; w = w->next) {
			tt__g *g = w->g;
			if (g->sched == s) {
				if (stranded(g))
					prove_any(s, g, c, "chan", &r, from);
			} else if (remote_stranded(c, w)) {
				prove_remote(s, g->sched, g, g->id, c, "chan",
					     &r, from);
			}
		}
	return r;
}

__attribute__((noinline)) void tt__leak_obj_released(tt__sched *s, tt__g *g,
						       const void *obj,
						       const char *what,
						       void **site)
{
	if (g->wait_obj != obj || !stranded(g))
		return;
	/* Go's names: "sync.WaitGroup", "sync.Mutex", ... */
	static const char *const names[][2] = {
		{"WaitGroup", "sync.WaitGroup"}, {"Mutex", "sync.Mutex"},
		{"RWMutex", "sync.RWMutex"},     {"Cond", "sync.Cond"},
		{"Once", "sync.Once"},
	};
	const char *full = what;
	for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
		if (strcmp(what, names[i][0]) == 0)
			full = names[i][1];
	prove_any(s, g, obj, full, (tt__leak_rec **)site,
		  (uintptr_t)__builtin_return_address(0));
}

/* TETHER_LEAKCHECK=1: check at exit with no change to the program. It
 * lives here, in the file the channel and sync layers call into, so that
 * a program linked with the static library always has it. */
__attribute__((constructor)) static void leakcheck_from_env(void)
{
	const char *e = getenv("TETHER_LEAKCHECK");
	if (e && strcmp(e, "1") == 0)
		tt_leak_verify_at_exit(NULL);
}
