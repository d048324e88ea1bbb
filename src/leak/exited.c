/* tether — goroutines left behind by threads that ended.
 *
 * Design notes
 * ------------
 * Goroutines never move between threads, so when a thread ends, every
 * goroutine of its scheduler still parked (or readied but never run
 * again) is leaked for good: nothing can run it. The scheduler gives the
 * stacks back when the thread ends (tt__stack_thread_exit), so what the
 * leak reports need is captured first, here, from the thread's own TLS
 * destructor while the stacks are still intact: one snapshot of the
 * scheduler (the same unwinding the dumps use), and for each goroutine
 * its record as the snapshot saw it — id, creator, creation PC, wait
 * reason and since when, name (copied) and visible PCs — plus its leak
 * scope, its proven-leak record and the thread's id.
 *
 * The records are process-wide, immutable once published, and never freed
 * (like the goroutines they stand for). Each costs a few hundred bytes
 * instead of the stack's pages. The leak checker lists them with the
 * calling thread's goroutines (tt__orphans_each) and symbolizes their
 * PCs only when it writes a report.
 */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "leak/leak.h"

static pthread_mutex_t orphan_lock = PTHREAD_MUTEX_INITIALIZER;
static tt__orphan *orphans; /* newest first, linked by next */
static size_t norphans;

/* One record: the fields, then the PCs, then the name. */
static tt__orphan *orphan_make(const tt__gsnap *gs, const tt__g *g, int tid,
			       int64_t at)
{
	size_t name_len = gs->name ? strlen(gs->name) + 1 : 0;
	size_t pcs_bytes = gs->npcs * sizeof(uintptr_t);
	tt__orphan *o = malloc(sizeof *o + pcs_bytes + name_len);
	if (o == NULL)
		return NULL;
	memset(o, 0, sizeof *o);
	o->snap = *gs;
	o->snap.current = false;
	o->snap.labels = NULL; /* the leak reports show none */
	memcpy(o->pcs, gs->pcs, pcs_bytes);
	o->snap.pcs = o->pcs;
	if (gs->name) {
		char *n = (char *)o->pcs + pcs_bytes;
		memcpy(n, gs->name, name_len);
		o->snap.name = n;
	}
	o->leak_scope = g->leak_scope;
	o->leak = g->leak;
	o->tid = tid;
	o->exited_at = at;
	return o;
}

static int by_id(const void *key, const void *elem)
{
	int64_t id = *(const int64_t *)key;
	const tt__gsnap *g = elem;
	return (id > g->id) - (id < g->id);
}

void tt__leak_thread_exit(tt__sched *s)
{
	if (s->all == NULL)
		return;
	size_t want = 0;
	for (tt__g *g = s->all; g; g = g->all_next)
		want++;
	tt__snapshot snap;
	tt__orphan *head = NULL, *tail = NULL;
	size_t n = 0;
	if (tt__snapshot_take(&snap) == 0) {
		int tid = (int)gettid();
		for (tt__g *g = s->all; g; g = g->all_next) {
			if (g->is_main || g->state == TT_G_DEAD)
				continue;
			const tt__gsnap *gs = bsearch(&g->id, snap.g, snap.n,
						      sizeof *snap.g, by_id);
			if (gs == NULL)
				continue;
			tt__orphan *o =
				orphan_make(gs, g, tid, snap.taken_at);
			if (o == NULL)
				break;
			if (tail)
				tail->next = o;
			else
				head = o;
			tail = o;
			n++;
		}
		tt__snapshot_free(&snap);
	}
	if (n < want) {
		char msg[200];
		int k = snprintf(msg, sizeof msg,
				 "tether: out of memory recording %zu of the "
				 "%zu goroutines left by an ending thread for "
				 "the leak checker; they are not reported\n",
				 want - n, want);
		if (k > 0)
			tt__write_all(2, msg, (size_t)k < sizeof msg
						      ? (size_t)k
						      : sizeof msg - 1);
	}
	if (head == NULL)
		return;
	pthread_mutex_lock(&orphan_lock);
	tail->next = orphans;
	orphans = head;
	norphans += n;
	pthread_mutex_unlock(&orphan_lock);
}

const tt__orphan *tt__orphans_head(size_t *n)
{
	pthread_mutex_lock(&orphan_lock);
	const tt__orphan *h = orphans;
	if (n)
		*n = norphans;
	pthread_mutex_unlock(&orphan_lock);
	return h;
}
