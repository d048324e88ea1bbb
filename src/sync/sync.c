/* tether — Go's sync package on the scheduler: WaitGroup, Mutex, RWMutex,
 * Once, Cond.
 *
 * Design notes
 * ------------
 * Every object here is a small header (handle, owner, kind, references,
 * parked count) and one or two FIFO queues of goroutines. A waiting
 * goroutine puts a node on its own stack into the queue and parks; whoever
 * wakes it takes the node out first, stops its deadline timer, and only
 * then readies it, so a goroutine is readied exactly once (by a waker or
 * by its deadline, never both).
 *
 * Locks are handed over, not released and re-contended: Unlock with
 * waiters gives the lock to the first of them, which returns from Lock
 * already owning it. So waiters are served in arrival order and none
 * starves; a goroutine that comes along later cannot barge in ahead.
 *
 * Lifetime is as for channels: `refs` counts user references, `parked`
 * counts goroutines that parked on the object and have not yet resumed;
 * the object is freed when both are 0. Callers touch the object before
 * their final obj_unpark, never after.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"
#include "tether/sync.h"


enum kind { K_WG = 1, K_MUTEX, K_RWMUTEX, K_ONCE, K_COND };

static const char *const kind_name[] = {
	[K_WG] = "WaitGroup", [K_MUTEX] = "Mutex", [K_RWMUTEX] = "RWMutex",
	[K_ONCE] = "Once",    [K_COND] = "Cond",
};

typedef struct node node;
typedef struct squeue {
	node *first, *last;
} squeue;

/* A parked goroutine, on its own stack (in its record for a shared-stack
 * goroutine, whose stack moves while it is parked). */
struct node {
	node *next, *prev;
	tt__g *g;
	squeue *q;
	bool queued;
	/* The mutex profile's: when this waiter began waiting for a lock, or
	 * the lock was last handed to the waiter ahead of it (tt_now()); 0
	 * when not timed (the profile was off when it parked, or it waits
	 * on something other than a lock). */
	int64_t acq;
};

/* The header every object starts with. The program holds handles
 * (hdr.self, see obj.c); every public call turns its handle into the
 * object's address with obj_get_any, and the objects point at each other
 * (a Cond at its Mutex) by address. */
typedef struct obj {
	tt__obj hdr;
	tt__sched *sched; /* owner */
	uint8_t kind;
	uint32_t refs;
	uint32_t parked;
} obj;

struct tt_waitgroup {
	obj h;
	int64_t count;
	squeue waiters;
};

struct tt_mutex {
	obj h;
	bool locked;
	squeue waiters;
};

struct tt_rwmutex {
	obj h;
	bool writer;     /* a writer holds it */
	int64_t readers; /* readers that hold it */
	squeue rq, wq;   /* waiting readers, waiting writers */
};

struct tt_once {
	obj h;
	bool done, running;
	int64_t runner; /* goroutine inside fn, while running */
	squeue waiters;
};

struct tt_cond {
	obj h;
	tt_locker l;  /* Go's c.L */
	obj *lk;      /* l.obj's object when it is a tether Mutex or RWMutex
			 (referenced), else NULL */
	bool lk_remote; /* lk is another thread's: referenced by posts */
	squeue waiters;
};

/* ---- queues ------------------------------------------------------------ */

_Static_assert(sizeof(node) <= sizeof(((tt__g *)0)->wbuf_inline),
	       "a shared-stack goroutine's record holds one node");

static void q_push(squeue *q, node *n)
{
	n->next = NULL;
	n->prev = q->last;
	if (q->last)
		q->last->next = n;
	else
		q->first = n;
	q->last = n;
	n->queued = true;
}

static void q_unlink(squeue *q, node *n)
{
	if (n->prev)
		n->prev->next = n->next;
	else
		q->first = n->next;
	if (n->next)
		n->next->prev = n->prev;
	else
		q->last = n->prev;
	n->queued = false;
}

/* A lock is handed to n, just taken off q: the mutex profile's event,
 * its delay counted from n->acq, and the next waiter's counted from now
 * (time with several waiters counts once, as in Go's semrelease). */
static __attribute__((noinline, cold)) void lock_handoff(squeue *q, node *n)
{
	int64_t now = tt_now();
	if (q->first && q->first->acq)
		q->first->acq = now;
	tt__mutex_event(now - n->acq);
}

/* A place in a Cond's queue held for another thread's Wait before its
 * goroutine waits there (see "Cond from other threads"): a node with no
 * goroutine yet, which a Signal that takes it marks. */
typedef struct ticket {
	node n; /* first: a queue holds the node */
	bool signaled;
} ticket;

/* Wake the first waiter of q; false if there is none. */
static bool wake_one(tt__sched *s, squeue *q)
{
	node *n = q->first;
	if (n == NULL)
		return false;
	q_unlink(q, n);
	if (TT_UNLIKELY(n->acq))
		lock_handoff(q, n);
	if (TT_UNLIKELY(n->g == NULL))
		((ticket *)n)->signaled = true;
	else
		tt__wait_wake(s, n->g);
	return true;
}

/* The wait primitive's cancel: g's node leaves its queue. */
static bool sync_cancel(tt__g *g)
{
	node *n = g->wait_list;
	if (n->queued)
		q_unlink(n->q, n);
	return true;
}

/* Park the current goroutine on q until woken (0) or the deadline
 * (-ETIMEDOUT; -EAGAIN for TT_TRY). Sets *held when it parked: the caller
 * then holds a parked count on o and must end with obj_unpark. */
static int wait_on(tt__sched *s, obj *o, squeue *q, int reason,
		   int64_t deadline, bool *held)
{
	*held = false;
	if (deadline == TT_TRY)
		return -EAGAIN;
	if (deadline != TT_FOREVER && deadline <= tt_now())
		return -ETIMEDOUT;
	*held = true;
	tt__g *g = s->current;
	node local;
	node *n = &local;
	if (TT_UNLIKELY(g->shared))
		n = g->wbuf;
	*n = (node){.g = g, .q = q};
	if (TT_UNLIKELY(atomic_load_explicit(&tt__mutex_rate,
					     memory_order_relaxed) != 0) &&
	    (reason == TT_WAIT_MUTEX || reason == TT_WAIT_RWMUTEX_R ||
	     reason == TT_WAIT_RWMUTEX_W))
		n->acq = tt_now();
	q_push(q, n);
	o->parked++;
	g->wait_list = n;
	g->wait_n = 0;
	bool timed_out = tt__wait(s, g, reason, o, deadline, sync_cancel);
	TT_TSAN_SYNC(o); /* what the goroutine that woke us did */
	g->wait_list = NULL;
	return timed_out ? -ETIMEDOUT : 0;
}

static void obj_unpark(obj *o);

/* wait_on, then the hold on o dropped (o may be freed): for a caller
 * that touches o no more after the wait. */
static int wait_unparked(tt__sched *s, obj *o, squeue *q, int reason,
			 int64_t deadline)
{
	bool held;
	int r = wait_on(s, o, q, reason, deadline, &held);
	if (held)
		obj_unpark(o);
	return r;
}

/* ---- objects ------------------------------------------------------------ */

static void obj_free(obj *o);

static void obj_unpark(obj *o)
{
	if (--o->parked == 0 && o->refs == 0)
		obj_free(o);
}

static const size_t kind_size[] = {
	[K_WG] = sizeof(tt_waitgroup), [K_MUTEX] = sizeof(tt_mutex),
	[K_RWMUTEX] = sizeof(tt_rwmutex), [K_ONCE] = sizeof(tt_once),
	[K_COND] = sizeof(tt_cond),
};

/* obj_get_any's slow path: record what is wrong with h, or say it is
 * another thread's. */
#define REMOTE 1
__attribute__((noinline, cold)) static void *
obj_bad(tt__sched *s, const void *h, enum kind k, const char *op, int *err)
{
	if (h == NULL) {
		*err = tt__err(-EINVAL, "%s: NULL %s", op, kind_name[k]);
		return NULL;
	}
	const obj *o = tt__obj_ptr(h);
	if (!tt__obj_is(h, TT__OBJ_SYNC) || o->kind != k) {
		*err = tt__misuse(-EBADF,
			       "%s: %p is not a live %s (released, or never "
			       "made)",
			       op, h, kind_name[k]);
		return NULL;
	}
	if (o->sched != s) {
		*err = REMOTE;
		return NULL;
	}
	*err = tt__err(-EINVAL, "%s: bad %s %p", op, kind_name[k], h);
	return NULL;
}

/* The object of kind k the handle h names, if it is live and this
 * thread's; else NULL, with the error recorded and returned in *err, or
 * *err == REMOTE when h is live but another thread's: every call then
 * asks the owner (see "from other threads"). */
static inline void *obj_get_any(tt__sched *s, const void *h, enum kind k,
				const char *op, int *err)
{
	obj *o = tt__obj_ptr(h);
	if (TT_LIKELY(h != NULL && tt__obj_is(h, TT__OBJ_SYNC) &&
		      o->kind == k && o->sched == s)) {
		/* Every operation on a sync object synchronises on it (an
		 * unlock with the next lock, a Done with the Wait it ends):
		 * internal.h, TT_TSAN. */
		TT_TSAN_SYNC(o);
		return o;
	}
	return obj_bad(s, h, k, op, err);
}

static inline void *obj_handle(const void *o)
{
	return o ? tt__obj_handle(o) : NULL;
}

/* A new object (its address, not its handle), or NULL with -ENOMEM
 * recorded. */
static void *obj_new(enum kind k, const char *op)
{
	tt__sched *s = tt__sched_get();
	obj *o = tt__obj_alloc(s, kind_size[k], TT__OBJ_SYNC);
	if (o == NULL) {
		tt__err(-ENOMEM, "%s: out of memory", op);
		return NULL;
	}
	memset((char *)o + sizeof o->hdr, 0, kind_size[k] - sizeof o->hdr);
	o->sched = s;
	o->kind = (uint8_t)k;
	o->refs = 1;
	return o;
}

static void run_retain(tt__sched *s, tt__post *p);
static void run_release(tt__sched *s, tt__post *p);
static int obj_ask(tt__sched *s, const void *h,
		   void (*run)(tt__sched *, tt__post *), const char *op,
		   int reason, int64_t deadline, int64_t arg, int64_t *value);

static int obj_retain(void *h, enum kind k, const char *op)
{
	int r = 0;
	tt__sched *s = tt__sched_get();
	obj *o = obj_get_any(s, h, k, op, &r);
	if (r == REMOTE)
		return obj_ask(s, h, run_retain, op, TT_WAIT_SYSCALL,
			       TT_FOREVER, k, NULL);
	if (o == NULL)
		return r;
	if (o->refs == UINT32_MAX)
		return tt__err(-EOVERFLOW, "%s: too many references", op);
	o->refs++;
	return 0;
}

/* The last reference to o is gone but goroutines still wait on it:
 * nothing can wake them (the leak layer proves and reports them). */
static void obj_stranded(tt__sched *s, obj *o)
{
	squeue *qs[2] = {NULL, NULL};
	if (o->kind == K_WG)
		qs[0] = &((tt_waitgroup *)o)->waiters;
	else if (o->kind == K_MUTEX)
		qs[0] = &((tt_mutex *)o)->waiters;
	else if (o->kind == K_COND)
		qs[0] = &((tt_cond *)o)->waiters;
	else if (o->kind == K_RWMUTEX) {
		qs[0] = &((tt_rwmutex *)o)->rq;
		qs[1] = &((tt_rwmutex *)o)->wq;
	}
	void *site = NULL;
	for (int i = 0; i < 2; i++)
		for (node *n = qs[i] ? qs[i]->first : NULL; n; n = n->next)
			if (n->g) /* not another thread's ticket */
				tt__leak_obj_released(s, n->g, o,
						      kind_name[o->kind],
						      &site);
	tt__leak_release_done(site);
}

/* Inlined into each public release call: a tail call to it would leave
 * the public call off the releasing stack a proven leak reports. */
static inline __attribute__((always_inline)) int obj_release(void *h,
							     enum kind k,
							     const char *op)
{
	int r = 0;
	tt__sched *s = tt__sched_get();
	obj *o = obj_get_any(s, h, k, op, &r);
	if (r == REMOTE) {
		/* Sent, not asked: the caller gives its reference up now,
		 * whether or not the owner's thread is in tether. */
		tt__post *p = tt__post_new(0, op);
		if (p == NULL)
			return -ENOMEM;
		p->run = run_release;
		p->h = h;
		p->arg = k;
		return tt__post_send(((obj *)tt__obj_ptr(h))->sched, p);
	}
	if (o == NULL)
		return r;
	if (o->refs == 0)
		return tt__err(-EBADF, "%s: no references left", op);
	if (--o->refs == 0) {
		if (o->parked == 0)
			obj_free(o);
		else
			obj_stranded(tt__sched_get(), o);
	}
	return 0;
}

static void obj_free(obj *o)
{
	if (o->kind == K_COND) {
		obj *lk = ((tt_cond *)o)->lk;
		if (lk && ((tt_cond *)o)->lk_remote)
			obj_release(obj_handle(lk), (enum kind)lk->kind,
				    "tt_cond_release");
		else if (lk && --lk->refs == 0 && lk->parked == 0)
			obj_free(lk);
	}
	tt__obj_free(o->sched, o, kind_size[o->kind]);
}

/* ---- from other threads (post.c) -----------------------------------------
 *
 * As with channels (chan.c): another thread's call is posted to the
 * object's thread and done there, by run_* at once or by a proxy
 * goroutine that waits with the caller's deadline; the caller parks until
 * the answer, and panics on its own stack when the operation says so. */

/* p's object, if it is still a live one of kind k of this thread's;
 * else NULL, and p answered -EBADF. */
static obj *post_obj(tt__sched *s, tt__post *p, enum kind k)
{
	obj *o = tt__obj_ptr(p->h);
	if (tt__obj_is(p->h, TT__OBJ_SYNC) && o->kind == k && o->sched == s) {
		TT_TSAN_SYNC(o);
		return o;
	}
	p->misuse = true;
	tt__post_fail(p, -EBADF,
		      "%s: %p is not a live %s (released, or never made)",
		      p->op, p->h, kind_name[k]);
	return NULL;
}

/* Wait on q in a proxy goroutine (fn) unless p need not (TT_TRY, a
 * deadline past: answered). The proxy holds o parked until it ends. */
static void post_wait(tt__sched *s, obj *o, tt__post *p, tt_func fn,
		      const char *what)
{
	if (p->deadline == TT_TRY) {
		tt__post_fail(p, -EAGAIN, NULL);
		return;
	}
	if (p->deadline != TT_FOREVER && p->deadline <= tt_now()) {
		tt__post_fail(p, -ETIMEDOUT, NULL);
		return;
	}
	o->parked++;
	if (!tt__post_proxy(s, p, fn, what)) {
		obj_unpark(o);
		tt__post_fail(p, -ENOMEM,
			      "%s: out of memory for the goroutine that waits "
			      "on %p for another thread",
			      p->op, p->h);
	}
}

/* Ask h's thread to run `run` for the calling goroutine, which waits
 * (shown waiting for reason on the object) until it is done. arg: the
 * operation's argument; *value (if not NULL): what it gives back. */
/* obj_ask with the post p made (and its val filled) by the caller. */
static int obj_ask_post(tt__sched *s, const void *h, tt__post *p,
			void (*run)(tt__sched *, tt__post *), int reason,
			int64_t deadline, int64_t arg, int64_t *value)
{
	obj *o = tt__obj_ptr(h);
	p->run = run;
	p->h = h;
	p->deadline = deadline;
	p->arg = arg;
	int r = tt__post_call(s, o->sched, p, reason, o);
	if (r) {
		free(p);
		return r;
	}
	if (value && p->result == 0)
		*value = p->value;
	return tt__post_done(p);
}

static int obj_ask(tt__sched *s, const void *h,
		   void (*run)(tt__sched *, tt__post *), const char *op,
		   int reason, int64_t deadline, int64_t arg, int64_t *value)
{
	tt__post *p = tt__post_new(0, op);
	if (p == NULL)
		return -ENOMEM;
	return obj_ask_post(s, h, p, run, reason, deadline, arg, value);
}

/* obj_ask for an unlock: with the mutex profile on, the post carries
 * the unlocker's stack (val: the count, then the pcs) for the owner's
 * hand-over to record. Always inlined, so the stack taken starts in the
 * public call. */
enum { SITE_PCS = 48 };
static inline __attribute__((always_inline)) int
ask_unlock(tt__sched *s, const void *h, void (*run)(tt__sched *, tt__post *),
	   const char *op, int64_t arg)
{
	uintptr_t site[SITE_PCS];
	int n = tt__mutex_site_take(site, SITE_PCS);
	if (n == 0)
		return obj_ask(s, h, run, op, TT_WAIT_SYSCALL, TT_FOREVER, arg,
			       NULL);
	tt__post *p = tt__post_new((size_t)(n + 1) * sizeof *site, op);
	if (p == NULL)
		return -ENOMEM;
	uintptr_t count = (uintptr_t)n;
	memcpy(p->val, &count, sizeof count);
	memcpy(p->val + sizeof count, site, (size_t)n * sizeof *site);
	return obj_ask_post(s, h, p, run, TT_WAIT_SYSCALL, TT_FOREVER, arg,
			    NULL);
}

/* Around an unlock asked by another thread: its stack (if the post
 * carries one) is what a hand-over records. */
static void site_begin(const tt__post *p, uintptr_t *buf)
{
	if (p->size < sizeof *buf)
		return;
	uintptr_t n;
	memcpy(&n, p->val, sizeof n);
	if (n == 0 || n > SITE_PCS)
		return;
	memcpy(buf, p->val + sizeof n, (size_t)n * sizeof *buf);
	tt__mutex_site = buf;
	tt__mutex_site_n = (int)n;
}

static void site_end(void)
{
	tt__mutex_site = NULL;
	tt__mutex_site_n = 0;
}

static void run_retain(tt__sched *s, tt__post *p)
{
	obj *o = post_obj(s, p, (enum kind)p->arg);
	if (o == NULL)
		return;
	if (o->refs == UINT32_MAX) {
		tt__post_fail(p, -EOVERFLOW, "%s: too many references", p->op);
		return;
	}
	o->refs++;
	tt__post_answer(p);
}

static void run_release(tt__sched *s, tt__post *p)
{
	obj *o = post_obj(s, p, (enum kind)p->arg);
	if (o == NULL)
		return;
	if (o->refs == 0) {
		tt__post_fail(p, -EBADF, "%s: no references left", p->op);
		return;
	}
	if (--o->refs == 0) {
		if (o->parked == 0)
			obj_free(o);
		else
			obj_stranded(s, o);
	}
	tt__post_answer(p);
}

/* ---- WaitGroup ------------------------------------------------------------ */

int tt_wg_make(tt_waitgroup **out)
{
	if (out == NULL)
		return tt__err(-EINVAL, "tt_wg_make: out is NULL");
	*out = obj_handle(obj_new(K_WG, "tt_wg_make"));
	return *out ? 0 : -ENOMEM;
}

/* The WaitGroup's change by delta, on its thread: NULL, or the panic it
 * calls for. */
static const char *wg_add_body(tt__sched *s, tt_waitgroup *wg, int64_t delta)
{
	/* wg->count >= 0 here, so only a positive delta can overflow. */
	if (delta > 0 && wg->count > INT64_MAX - delta)
		return "sync: WaitGroup counter overflow";
	wg->count += delta;
	if (wg->count < 0)
		return "sync: negative WaitGroup counter";
	if (wg->count == 0)
		while (wake_one(s, &wg->waiters))
			;
	return NULL;
}

static void run_wg_add(tt__sched *s, tt__post *p)
{
	tt_waitgroup *wg = (tt_waitgroup *)post_obj(s, p, K_WG);
	if (wg == NULL)
		return;
	const char *panic = wg_add_body(s, wg, p->arg);
	if (panic)
		tt__post_panic(p, panic);
	else
		tt__post_answer(p);
}

static void wg_wait_proxy(void *arg)
{
	tt__post *p = arg;
	tt__sched *s = tt__sched_get();
	tt_waitgroup *wg = (tt_waitgroup *)tt__obj_ptr(p->h);
	/* A Done may have come between the post and this start. */
	TT_TSAN_SYNC(&wg->h);
	if (wg->count != 0) {
		p->result = wait_unparked(s, &wg->h, &wg->waiters,
					  TT_WAIT_WG_WAIT, p->deadline);
	}
	obj_unpark(&wg->h);
	tt__post_answer(p);
}

static void run_wg_wait(tt__sched *s, tt__post *p)
{
	tt_waitgroup *wg = (tt_waitgroup *)post_obj(s, p, K_WG);
	if (wg == NULL)
		return;
	if (wg->count == 0)
		tt__post_answer(p);
	else
		post_wait(s, &wg->h, p, wg_wait_proxy, "sync.WaitGroup.Wait");
}

static void run_wg_count(tt__sched *s, tt__post *p)
{
	tt_waitgroup *wg = (tt_waitgroup *)post_obj(s, p, K_WG);
	if (wg == NULL)
		return;
	p->value = wg->count;
	tt__post_answer(p);
}

int tt_wg_add(tt_waitgroup *wg, int64_t delta)
{
	tt__sched *s = tt__sched_get();
	int r = 0;
	tt_waitgroup *w = obj_get_any(s, wg, K_WG, "tt_wg_add", &r);
	if (r == REMOTE)
		return obj_ask(s, wg, run_wg_add, "tt_wg_add", TT_WAIT_SYSCALL,
			       TT_FOREVER, delta, NULL);
	if (w == NULL)
		return r;
	const char *panic = wg_add_body(s, w, delta);
	if (panic)
		tt__panic("%s", panic);
	return 0;
}

int tt_wg_done(tt_waitgroup *wg)
{
	return tt_wg_add(wg, -1);
}

/* Done, then the caller's reference dropped, in one step on the wait
 * group's thread: a Wait that returns there finds the reference gone
 * (its waiter runs only after this). */
static void run_wg_done_release(tt__sched *s, tt__post *p)
{
	tt_waitgroup *wg = (tt_waitgroup *)post_obj(s, p, K_WG);
	if (wg == NULL)
		return;
	const char *panic = wg_add_body(s, wg, -1);
	if (panic) {
		tt__post_panic(p, panic);
		return;
	}
	p->arg = K_WG;
	run_release(s, p);
}

int tt__wg_done_release(tt_waitgroup *wg)
{
	tt__sched *s = tt__sched_get();
	int r = 0;
	tt_waitgroup *w = obj_get_any(s, wg, K_WG, "tt_wg_done", &r);
	if (r == REMOTE)
		return obj_ask(s, wg, run_wg_done_release, "tt_wg_done",
			       TT_WAIT_SYSCALL, TT_FOREVER, 0, NULL);
	if (w == NULL)
		return r;
	const char *panic = wg_add_body(s, w, -1);
	if (panic)
		tt__panic("%s", panic);
	return obj_release(wg, K_WG, "tt_wg_release");
}

/* The body of tt_wg_wait and tt_wg_wait_until, inlined into both so that
 * a goroutine parked in tt_wg_wait shows that name on its stack. */
static inline __attribute__((always_inline)) int wg_wait_body(tt_waitgroup *wg, int64_t deadline)
{
	tt__sched *s = tt__sched_get();
	int r = 0;
	tt_waitgroup *h = wg;
	wg = obj_get_any(s, wg, K_WG, "tt_wg_wait", &r);
	if (r == REMOTE)
		return obj_ask(s, h, run_wg_wait, "tt_wg_wait",
			       TT_WAIT_WG_WAIT, deadline, 0, NULL);
	if (wg == NULL)
		return r;
	if (wg->count == 0)
		return 0;
	r = wait_unparked(s, &wg->h, &wg->waiters, TT_WAIT_WG_WAIT, deadline);
	return r;
}

int tt_wg_wait_until(tt_waitgroup *wg, int64_t deadline)
{
	return wg_wait_body(wg, deadline);
}

int tt_wg_wait(tt_waitgroup *wg)
{
	return wg_wait_body(wg, TT_FOREVER);
}

int64_t tt_wg_count(tt_waitgroup *wg)
{
	int r = 0;
	tt__sched *s = tt__sched_get();
	tt_waitgroup *h = wg;
	wg = obj_get_any(s, wg, K_WG, "tt_wg_count", &r);
	if (r == REMOTE) {
		int64_t n = 0;
		r = obj_ask(s, h, run_wg_count, "tt_wg_count", TT_WAIT_SYSCALL,
			    TT_FOREVER, 0, &n);
		return r ? r : n;
	}
	return wg ? wg->count : r;
}

int tt_wg_retain(tt_waitgroup *wg)
{
	return obj_retain(wg, K_WG, "tt_wg_retain");
}

int tt_wg_release(tt_waitgroup *wg)
{
	return obj_release(wg, K_WG, "tt_wg_release");
}

/* ---- Mutex ------------------------------------------------------------------ */

int tt_mutex_make(tt_mutex **out)
{
	if (out == NULL)
		return tt__err(-EINVAL, "tt_mutex_make: out is NULL");
	*out = obj_handle(obj_new(K_MUTEX, "tt_mutex_make"));
	return *out ? 0 : -ENOMEM;
}

static void mutex_lock_proxy(void *arg)
{
	tt__post *p = arg;
	tt__sched *s = tt__sched_get();
	tt_mutex *m = (tt_mutex *)tt__obj_ptr(p->h);
	/* An Unlock may have come between the post and this start: what
	 * the last holder did is the asker's to see (TSan). */
	TT_TSAN_SYNC(&m->h);
	if (!m->locked) {
		m->locked = true;
	} else {
		bool held;
		/* On 0 the unlocker handed the lock over: the asker's. */
		p->result = wait_on(s, &m->h, &m->waiters, TT_WAIT_MUTEX,
				    p->deadline, &held);
		if (held)
			obj_unpark(&m->h);
	}
	obj_unpark(&m->h);
	tt__post_answer(p);
}

static void run_mutex_lock(tt__sched *s, tt__post *p)
{
	tt_mutex *m = (tt_mutex *)post_obj(s, p, K_MUTEX);
	if (m == NULL)
		return;
	if (!m->locked) {
		m->locked = true;
		tt__post_answer(p);
	} else {
		post_wait(s, &m->h, p, mutex_lock_proxy, "sync.Mutex.Lock");
	}
}

static void run_mutex_unlock(tt__sched *s, tt__post *p)
{
	tt_mutex *m = (tt_mutex *)post_obj(s, p, K_MUTEX);
	if (m == NULL)
		return;
	if (!m->locked) {
		tt__post_panic(p, "sync: unlock of unlocked mutex");
		return;
	}
	uintptr_t site[SITE_PCS];
	site_begin(p, site);
	if (!wake_one(s, &m->waiters))
		m->locked = false;
	site_end();
	tt__post_answer(p);
}

/* The body of tt_mutex_lock and tt_mutex_lock_until, inlined into both so that
 * a goroutine parked in tt_mutex_lock shows that name on its stack. */
static inline __attribute__((always_inline)) int mutex_lock_body(tt_mutex *m, int64_t deadline)
{
	tt__sched *s = tt__sched_get();
	int r = 0;
	tt_mutex *h = m;
	m = obj_get_any(s, m, K_MUTEX, "tt_mutex_lock", &r);
	if (r == REMOTE)
		return obj_ask(s, h, run_mutex_lock, "tt_mutex_lock",
			       TT_WAIT_MUTEX, deadline, 0, NULL);
	if (m == NULL)
		return r;
	if (!m->locked) {
		m->locked = true;
		return 0;
	}
	bool held;
	r = wait_on(s, &m->h, &m->waiters, TT_WAIT_MUTEX, deadline, &held);
	/* On 0 the unlocker handed the lock over: it is ours. */
	if (held)
		obj_unpark(&m->h);
	return r;
}

int tt_mutex_lock_until(tt_mutex *m, int64_t deadline)
{
	return mutex_lock_body(m, deadline);
}

int tt_mutex_lock(tt_mutex *m)
{
	return mutex_lock_body(m, TT_FOREVER);
}

int tt_mutex_trylock(tt_mutex *m)
{
	return tt_mutex_lock_until(m, TT_TRY);
}

int tt_mutex_unlock(tt_mutex *m)
{
	tt__sched *s = tt__sched_get();
	int r = 0;
	tt_mutex *h = m;
	m = obj_get_any(s, m, K_MUTEX, "tt_mutex_unlock", &r);
	if (r == REMOTE)
		return ask_unlock(s, h, run_mutex_unlock, "tt_mutex_unlock", 0);
	if (m == NULL)
		return r;
	if (!m->locked)
		tt__panic("sync: unlock of unlocked mutex");
	if (!wake_one(s, &m->waiters))
		m->locked = false;
	return 0;
}

int tt_mutex_retain(tt_mutex *m)
{
	return obj_retain(m, K_MUTEX, "tt_mutex_retain");
}

int tt_mutex_release(tt_mutex *m)
{
	return obj_release(m, K_MUTEX, "tt_mutex_release");
}

/* ---- RWMutex --------------------------------------------------------------- */

int tt_rwmutex_make(tt_rwmutex **out)
{
	if (out == NULL)
		return tt__err(-EINVAL, "tt_rwmutex_make: out is NULL");
	*out = obj_handle(obj_new(K_RWMUTEX, "tt_rwmutex_make"));
	return *out ? 0 : -ENOMEM;
}

/* Let every waiting reader in. */
static void admit_readers(tt__sched *s, tt_rwmutex *m)
{
	while (wake_one(s, &m->rq))
		m->readers++;
}

/* The operations' bodies, for the owner's calls and another thread's
 * posts alike. */
static bool rw_try_rlock(tt_rwmutex *m)
{
	if (m->writer || m->wq.first != NULL)
		return false;
	m->readers++;
	return true;
}

static bool rw_try_lock(tt_rwmutex *m)
{
	if (m->writer || m->readers != 0)
		return false;
	m->writer = true;
	return true;
}

/* What a writer whose wait ended without the lock leaves: readers that
 * waited only because of it are let in. */
static void rw_lock_gave_up(tt__sched *s, tt_rwmutex *m, int r)
{
	if (r == -ETIMEDOUT && !m->writer && m->wq.first == NULL)
		admit_readers(s, m);
}

/* NULL, or the panic's message. */
static const char *rw_runlock(tt__sched *s, tt_rwmutex *m)
{
	if (m->readers <= 0)
		return "sync: RUnlock of unlocked RWMutex";
	if (--m->readers == 0 && m->wq.first) {
		m->writer = true;
		wake_one(s, &m->wq);
	}
	return NULL;
}

static const char *rw_unlock(tt__sched *s, tt_rwmutex *m)
{
	if (!m->writer)
		return "sync: Unlock of unlocked RWMutex";
	m->writer = false;
	if (m->rq.first)
		admit_readers(s, m);
	else if (m->wq.first) {
		m->writer = true;
		wake_one(s, &m->wq);
	}
	return NULL;
}

/* Another thread's RLock (p->arg 0) or Lock (1) that must wait, in a
 * proxy goroutine of the owner's (as mutex_lock_proxy). */
static void rw_proxy(void *arg)
{
	tt__post *p = arg;
	bool write = p->arg;
	tt__sched *s = tt__sched_get();
	tt_rwmutex *m = (tt_rwmutex *)tt__obj_ptr(p->h);
	TT_TSAN_SYNC(&m->h);
	if (!(write ? rw_try_lock(m) : rw_try_rlock(m))) {
		bool held;
		p->result = wait_on(s, &m->h, write ? &m->wq : &m->rq,
				    write ? TT_WAIT_RWMUTEX_W
					  : TT_WAIT_RWMUTEX_R,
				    p->deadline, &held);
		if (write)
			rw_lock_gave_up(s, m, p->result);
		if (held)
			obj_unpark(&m->h);
	}
	obj_unpark(&m->h);
	tt__post_answer(p);
}

static void run_rw_lock(tt__sched *s, tt__post *p)
{
	tt_rwmutex *m = (tt_rwmutex *)post_obj(s, p, K_RWMUTEX);
	if (m == NULL)
		return;
	bool write = p->arg;
	if (write ? rw_try_lock(m) : rw_try_rlock(m))
		tt__post_answer(p);
	else
		post_wait(s, &m->h, p, rw_proxy,
			  write ? "sync.RWMutex.Lock" : "sync.RWMutex.RLock");
}

static void run_rw_unlock(tt__sched *s, tt__post *p)
{
	tt_rwmutex *m = (tt_rwmutex *)post_obj(s, p, K_RWMUTEX);
	if (m == NULL)
		return;
	uintptr_t site[SITE_PCS];
	site_begin(p, site);
	const char *panic = p->arg ? rw_runlock(s, m) : rw_unlock(s, m);
	site_end();
	if (panic)
		tt__post_panic(p, panic);
	else
		tt__post_answer(p);
}

/* The body of tt_rwmutex_rlock and tt_rwmutex_rlock_until, inlined into both so that
 * a goroutine parked in tt_rwmutex_rlock shows that name on its stack. */
static inline __attribute__((always_inline)) int rwmutex_rlock_body(tt_rwmutex *m, int64_t deadline)
{
	tt__sched *s = tt__sched_get();
	int r = 0;
	tt_rwmutex *h = m;
	m = obj_get_any(s, m, K_RWMUTEX, "tt_rwmutex_rlock", &r);
	if (r == REMOTE)
		return obj_ask(s, h, run_rw_lock, "tt_rwmutex_rlock",
			       TT_WAIT_RWMUTEX_R, deadline, 0, NULL);
	if (m == NULL)
		return r;
	if (rw_try_rlock(m))
		return 0;
	r = wait_unparked(s, &m->h, &m->rq, TT_WAIT_RWMUTEX_R, deadline);
	return r;
}

int tt_rwmutex_rlock_until(tt_rwmutex *m, int64_t deadline)
{
	return rwmutex_rlock_body(m, deadline);
}

int tt_rwmutex_rlock(tt_rwmutex *m)
{
	return rwmutex_rlock_body(m, TT_FOREVER);
}

/* Unlock (read: RUnlock), from any thread. Inlined into both public
 * calls: as a tail call it would leave them off the unlocking stack the
 * mutex profile records. */
static inline __attribute__((always_inline)) int
rwmutex_unlock_any(tt_rwmutex *m, bool read, const char *op)
{
	tt__sched *s = tt__sched_get();
	int r = 0;
	tt_rwmutex *h = m;
	m = obj_get_any(s, m, K_RWMUTEX, op, &r);
	if (r == REMOTE)
		return ask_unlock(s, h, run_rw_unlock, op, read);
	if (m == NULL)
		return r;
	const char *panic = read ? rw_runlock(s, m) : rw_unlock(s, m);
	if (panic)
		tt__panic("%s", panic);
	return 0;
}

int tt_rwmutex_runlock(tt_rwmutex *m)
{
	return rwmutex_unlock_any(m, true, "tt_rwmutex_runlock");
}

/* The body of tt_rwmutex_lock and tt_rwmutex_lock_until, inlined into both so that
 * a goroutine parked in tt_rwmutex_lock shows that name on its stack. */
static inline __attribute__((always_inline)) int rwmutex_lock_body(tt_rwmutex *m, int64_t deadline)
{
	tt__sched *s = tt__sched_get();
	int r = 0;
	tt_rwmutex *h = m;
	m = obj_get_any(s, m, K_RWMUTEX, "tt_rwmutex_lock", &r);
	if (r == REMOTE)
		return obj_ask(s, h, run_rw_lock, "tt_rwmutex_lock",
			       TT_WAIT_RWMUTEX_W, deadline, 1, NULL);
	if (m == NULL)
		return r;
	if (rw_try_lock(m))
		return 0;
	bool held;
	r = wait_on(s, &m->h, &m->wq, TT_WAIT_RWMUTEX_W, deadline, &held);
	rw_lock_gave_up(s, m, r);
	if (held)
		obj_unpark(&m->h);
	return r;
}

int tt_rwmutex_lock_until(tt_rwmutex *m, int64_t deadline)
{
	return rwmutex_lock_body(m, deadline);
}

int tt_rwmutex_lock(tt_rwmutex *m)
{
	return rwmutex_lock_body(m, TT_FOREVER);
}

int tt_rwmutex_unlock(tt_rwmutex *m)
{
	return rwmutex_unlock_any(m, false, "tt_rwmutex_unlock");
}

int tt_rwmutex_trylock(tt_rwmutex *m)
{
	return tt_rwmutex_lock_until(m, TT_TRY);
}

int tt_rwmutex_tryrlock(tt_rwmutex *m)
{
	return tt_rwmutex_rlock_until(m, TT_TRY);
}

int tt_rwmutex_retain(tt_rwmutex *m)
{
	return obj_retain(m, K_RWMUTEX, "tt_rwmutex_retain");
}

int tt_rwmutex_release(tt_rwmutex *m)
{
	return obj_release(m, K_RWMUTEX, "tt_rwmutex_release");
}

/* ---- Once --------------------------------------------------------------------- */

int tt_once_make(tt_once **out)
{
	if (out == NULL)
		return tt__err(-EINVAL, "tt_once_make: out is NULL");
	*out = obj_handle(obj_new(K_ONCE, "tt_once_make"));
	return *out ? 0 : -ENOMEM;
}

/* Once from other threads: the caller runs fn itself, as Go's Do does,
 * so it asks the owner first whether to (run_once_begin: value 0, and o
 * is marked running with the caller as runner), or waits there, in a
 * proxy, for the runner to finish (value 1: done); after fn it tells the
 * owner (run_once_end), which wakes the waiters. */
static void once_finish(tt__sched *s, tt_once *o)
{
	TT_TSAN_SYNC(o); /* fn's effects, for every later tt_once_do */
	o->running = false;
	o->done = true;
	while (wake_one(s, &o->waiters))
		;
}

static void once_wait_proxy(void *arg)
{
	tt__post *p = arg;
	tt__sched *s = tt__sched_get();
	tt_once *o = (tt_once *)tt__obj_ptr(p->h);
	if (o->running) {
		p->result = wait_unparked(s, &o->h, &o->waiters,
					  TT_WAIT_MUTEX, TT_FOREVER);
	}
	TT_TSAN_SYNC(&o->h);
	p->value = 1;
	obj_unpark(&o->h);
	tt__post_answer(p);
}

static void run_once_begin(tt__sched *s, tt__post *p)
{
	tt_once *o = (tt_once *)post_obj(s, p, K_ONCE);
	if (o == NULL)
		return;
	if (o->done) {
		p->value = 1;
		tt__post_answer(p);
	} else if (!o->running) {
		o->running = true;
		o->runner = p->g->id;
		o->h.refs++; /* o outlives fn even if fn releases it */
		p->value = 0;
		tt__post_answer(p);
	} else if (o->runner == p->g->id) {
		tt__post_panic(p, "sync: Once.Do called from its own function");
	} else {
		post_wait(s, &o->h, p, once_wait_proxy, "sync.Once.Do");
	}
}

static void run_once_end(tt__sched *s, tt__post *p)
{
	tt_once *o = (tt_once *)post_obj(s, p, K_ONCE);
	if (o == NULL)
		return;
	once_finish(s, o);
	/* The reference run_once_begin took. */
	if (--o->h.refs == 0 && o->h.parked == 0)
		obj_free(&o->h);
	tt__post_answer(p);
}

int tt_once_do(tt_once *o, void (*fn)(void *), void *arg)
{
	tt__sched *s = tt__sched_get();
	int r = 0;
	tt_once *h = o;
	o = obj_get_any(s, o, K_ONCE, "tt_once_do", &r);
	if (r == REMOTE) {
		if (fn == NULL)
			return tt__err(-EINVAL, "tt_once_do: fn is NULL");
		int64_t done = 0;
		r = obj_ask(s, h, run_once_begin, "tt_once_do", TT_WAIT_MUTEX,
			    TT_FOREVER, 0, &done);
		if (r || done)
			return r;
		fn(arg);
		return obj_ask(s, h, run_once_end, "tt_once_do",
			       TT_WAIT_SYSCALL, TT_FOREVER, 0, NULL);
	}
	if (o == NULL)
		return r;
	if (fn == NULL)
		return tt__err(-EINVAL, "tt_once_do: fn is NULL");
	if (o->done)
		return 0;
	if (o->running) {
		if (o->runner == s->current->id)
			tt__panic("sync: Once.Do called from its own function");
		return wait_unparked(s, &o->h, &o->waiters, TT_WAIT_MUTEX,
				     TT_FOREVER);
	}
	o->running = true;
	o->runner = s->current->id;
	o->h.refs++; /* o outlives fn even if fn releases it */
	fn(arg);
	once_finish(s, o);
	return obj_release(obj_handle(o), K_ONCE, "tt_once_do");
}

int tt_once_retain(tt_once *o)
{
	return obj_retain(o, K_ONCE, "tt_once_retain");
}

int tt_once_release(tt_once *o)
{
	return obj_release(o, K_ONCE, "tt_once_release");
}

/* ---- Cond ----------------------------------------------------------------------- */

/* ---- Lockers -----------------------------------------------------------------
 *
 * A tt_locker is Go's sync.Locker interface value: two functions and the
 * object they work on. The ones made here call the public lock calls
 * through these wrappers, which is also how tt_cond_make_locker knows a
 * locker is a tether Mutex or RWMutex and holds a reference on it. */

static int locker_mutex_lock(void *m)
{
	return tt_mutex_lock(m);
}

static int locker_mutex_unlock(void *m)
{
	return tt_mutex_unlock(m);
}

static int locker_rw_lock(void *m)
{
	return tt_rwmutex_lock(m);
}

static int locker_rw_unlock(void *m)
{
	return tt_rwmutex_unlock(m);
}

static int locker_rw_rlock(void *m)
{
	return tt_rwmutex_rlock(m);
}

static int locker_rw_runlock(void *m)
{
	return tt_rwmutex_runlock(m);
}

tt_locker tt_mutex_locker(tt_mutex *m)
{
	return (tt_locker){locker_mutex_lock, locker_mutex_unlock, m};
}

tt_locker tt_rwmutex_locker(tt_rwmutex *m)
{
	return (tt_locker){locker_rw_lock, locker_rw_unlock, m};
}

tt_locker tt_rwmutex_rlocker(tt_rwmutex *m)
{
	return (tt_locker){locker_rw_rlock, locker_rw_runlock, m};
}

/* The kind of tether object l locks (K_MUTEX, K_RWMUTEX), 0 for a
 * locker of the program's own, -1 for a mix of the two. */
static int locker_kind(tt_locker l)
{
	int k = 0, u = 0;
	if (l.lock == locker_mutex_lock)
		k = K_MUTEX;
	else if (l.lock == locker_rw_lock || l.lock == locker_rw_rlock)
		k = K_RWMUTEX;
	if (l.unlock == locker_mutex_unlock)
		u = K_MUTEX;
	else if (l.unlock == locker_rw_unlock || l.unlock == locker_rw_runlock)
		u = K_RWMUTEX;
	if (k != u || (l.lock == locker_rw_lock) != (l.unlock == locker_rw_unlock))
		return -1;
	return k;
}

int tt_cond_make_locker(tt_cond **out, tt_locker l)
{
	if (out == NULL)
		return tt__err(-EINVAL, "tt_cond_make: out is NULL");
	*out = NULL;
	if (l.lock == NULL || l.unlock == NULL)
		return tt__err(-EINVAL, "tt_cond_make: the locker's %s is NULL",
			       l.lock == NULL ? "lock" : "unlock");
	int k = locker_kind(l);
	if (k < 0)
		return tt__err(-EINVAL,
			       "tt_cond_make: the locker's lock and unlock are "
			       "not a pair");
	obj *lk = NULL;
	bool remote = false;
	if (k) {
		int r = 0;
		lk = obj_get_any(tt__sched_get(), l.obj, (enum kind)k,
				 "tt_cond_make", &r);
		if (r == REMOTE) {
			/* Another thread's lock: its owner keeps it. */
			r = obj_retain(l.obj, (enum kind)k, "tt_cond_make");
			if (r)
				return r;
			lk = tt__obj_ptr(l.obj);
			remote = true;
		} else if (lk == NULL) {
			return r;
		} else if (lk->refs == UINT32_MAX) {
			return tt__err(-EOVERFLOW,
				       "tt_cond_make: too many references");
		}
	}
	tt_cond *c = obj_new(K_COND, "tt_cond_make");
	if (c == NULL) {
		if (remote)
			obj_release(l.obj, (enum kind)k, "tt_cond_make");
		return -ENOMEM;
	}
	if (lk && !remote)
		lk->refs++;
	c->l = l;
	c->lk = lk;
	c->lk_remote = remote;
	*out = obj_handle(c);
	return 0;
}

int tt_cond_make(tt_cond **out, tt_mutex *m)
{
	return tt_cond_make_locker(out, tt_mutex_locker(m));
}

/* ---- Cond from other threads ----------------------------------------------
 *
 * Go's Wait joins the notify list before it unlocks c.L, so a Signal
 * between the two is not lost. Another thread's Wait does the same in
 * two posts: run_cond_enqueue queues a ticket (a node with no goroutine,
 * which a Signal that takes it marks signaled) and takes a reference on
 * c's Mutex or RWMutex; the caller unlocks c.L; run_cond_wait answers at
 * once for a ticket already signaled, gives it back (arg 1) when the
 * unlock failed, and else waits for it in a proxy goroutine with the
 * caller's deadline. The caller then locks c.L again and drops the
 * reference. Signal and Broadcast are asked of the owner. */

static void run_cond_enqueue(tt__sched *s, tt__post *p)
{
	tt_cond *c = (tt_cond *)post_obj(s, p, K_COND);
	if (c == NULL)
		return;
	ticket *t = calloc(1, sizeof *t);
	if (t == NULL) {
		tt__post_fail(p, -ENOMEM, "%s: out of memory", p->op);
		return;
	}
	t->n.q = &c->waiters;
	q_push(&c->waiters, &t->n);
	c->h.parked++; /* until the ticket is done with */
	p->value = (int64_t)(uintptr_t)t;
	tt__post_answer(p);
}

/* The ticket is done with: its result answered. */
static void ticket_done(tt_cond *c, ticket *t, tt__post *p, int r)
{
	if (t->n.queued)
		q_unlink(t->n.q, &t->n);
	free(t);
	p->result = r;
	obj_unpark(&c->h);
	tt__post_answer(p);
}

/* A ticket of this thread's is done with (cond_wait_body). */
static void ticket_drop(tt_cond *c, ticket *t)
{
	if (t->n.queued)
		q_unlink(t->n.q, &t->n);
	free(t);
	obj_unpark(&c->h);
}

/* Wait for a ticket queued before the unlock: at once if a Signal took
 * it meanwhile, else as its goroutine, in the ticket's place in the
 * queue. */
static int ticket_wait(tt__sched *s, tt_cond *c, ticket *t, int64_t deadline)
{
	int r;
	if (t->signaled)
		r = 0;
	else if (deadline == TT_TRY)
		r = -EAGAIN;
	else if (deadline != TT_FOREVER && deadline <= tt_now())
		r = -ETIMEDOUT;
	else {
		tt__g *g = s->current;
		t->n.g = g;
		g->wait_list = &t->n;
		g->wait_n = 0;
		bool timed_out = tt__wait(s, g, TT_WAIT_COND, c, deadline,
					  sync_cancel);
		TT_TSAN_SYNC(&c->h);
		g->wait_list = NULL;
		r = timed_out ? -ETIMEDOUT : 0;
	}
	ticket_drop(c, t);
	return r;
}

static void cond_wait_proxy(void *arg)
{
	tt__post *p = arg;
	tt__sched *s = tt__sched_get();
	tt_cond *c = (tt_cond *)tt__obj_ptr(p->h);
	ticket *t = (ticket *)(uintptr_t)p->value;
	int r = 0;
	if (!t->signaled) {
		tt__g *g = s->current;
		t->n.g = g;
		g->wait_list = &t->n;
		g->wait_n = 0;
		bool timed_out = tt__wait(s, g, TT_WAIT_COND, c, p->deadline,
					  sync_cancel);
		TT_TSAN_SYNC(&c->h);
		g->wait_list = NULL;
		r = timed_out ? -ETIMEDOUT : 0;
	}
	obj_unpark(&c->h); /* the proxy's own hold */
	ticket_done(c, t, p, r);
}

static void run_cond_wait(tt__sched *s, tt__post *p)
{
	tt_cond *c = (tt_cond *)post_obj(s, p, K_COND);
	if (c == NULL)
		return;
	ticket *t = (ticket *)(uintptr_t)p->value;
	if (t->signaled)
		ticket_done(c, t, p, 0);
	else if (p->arg)
		ticket_done(c, t, p, 0); /* the unlock failed: no wait */
	else if (p->deadline == TT_TRY)
		ticket_done(c, t, p, -EAGAIN);
	else if (p->deadline != TT_FOREVER && p->deadline <= tt_now())
		ticket_done(c, t, p, -ETIMEDOUT);
	else {
		c->h.parked++;
		if (!tt__post_proxy(s, p, cond_wait_proxy, "sync.Cond.Wait")) {
			obj_unpark(&c->h);
			ticket_done(c, t, p, -ENOMEM);
		}
	}
}

static void run_cond_signal(tt__sched *s, tt__post *p)
{
	tt_cond *c = (tt_cond *)post_obj(s, p, K_COND);
	if (c == NULL)
		return;
	if (p->arg)
		while (wake_one(s, &c->waiters))
			;
	else
		wake_one(s, &c->waiters);
	tt__post_answer(p);
}

static __attribute__((noinline)) int
cond_wait_remote(tt__sched *s, tt_cond *h, int64_t deadline)
{
	const tt_cond *c = tt__obj_ptr(h);
	tt_locker l = c->l; /* set when c was made: read from any thread */
	obj *lk = c->lk;
	/* Relocked below even if c goes meanwhile (from any thread). */
	int r = lk ? obj_retain(obj_handle(lk), (enum kind)lk->kind,
				"tt_cond_wait")
		   : 0;
	if (r)
		return r;
	int64_t t = 0;
	r = obj_ask(s, h, run_cond_enqueue, "tt_cond_wait", TT_WAIT_COND,
		    TT_FOREVER, 0, &t);
	if (r) {
		if (lk)
			obj_release(obj_handle(lk), (enum kind)lk->kind,
				    "tt_cond_wait");
		return r;
	}
	int u = l.unlock(l.obj);
	tt__post *p = tt__post_new(0, "tt_cond_wait");
	if (p == NULL) {
		r = -ENOMEM; /* the ticket stays: a Signal may use it up */
	} else {
		p->run = run_cond_wait;
		p->h = h;
		p->deadline = deadline;
		p->arg = u < 0;
		p->value = t;
		r = tt__post_call(s, ((const obj *)c)->sched, p, TT_WAIT_COND,
				  c);
		if (r)
			free(p);
		else
			r = tt__post_done(p);
	}
	if (u >= 0)
		l.lock(l.obj);
	if (lk)
		obj_release(obj_handle(lk), (enum kind)lk->kind,
			    "tt_cond_wait");
	return u < 0 ? u : r;
}

/* The body of tt_cond_wait and tt_cond_wait_until, inlined into both so
 * that a goroutine parked in tt_cond_wait shows that name on its stack. */
static inline __attribute__((always_inline)) int
cond_wait_body(tt_cond *c, int64_t deadline)
{
	tt__sched *s = tt__sched_get();
	int r = 0;
	tt_cond *h = c;
	c = obj_get_any(s, c, K_COND, "tt_cond_wait", &r);
	if (r == REMOTE)
		return cond_wait_remote(s, h, deadline);
	if (c == NULL)
		return r;
	tt_locker l = c->l;
	obj *lk = c->lk;
	/* Relocked below even if c goes away meanwhile. */
	if (lk && c->lk_remote) {
		r = obj_retain(obj_handle(lk), (enum kind)lk->kind,
			       "tt_cond_wait");
		if (r)
			return r;
	} else if (lk) {
		lk->refs++;
	}
	/* An unlock that may park (another thread's Mutex or RWMutex, asked
	 * of its owner; a locker of the program's own) lets a Signal in
	 * before this goroutine queues: the wait joins the queue first, as
	 * Go's does, with a ticket that such a Signal marks. */
	ticket *t = NULL;
	if (TT_UNLIKELY(!lk || c->lk_remote)) {
		t = calloc(1, sizeof *t);
		if (t == NULL) {
			if (lk)
				obj_release(obj_handle(lk), (enum kind)lk->kind,
					    "tt_cond_wait");
			return tt__err(-ENOMEM, "tt_cond_wait: out of memory");
		}
		t->n.q = &c->waiters;
		q_push(&c->waiters, &t->n);
		c->h.parked++; /* until the ticket is done with */
	}
	/* Panics if not locked, as Go's; a locker of the program's own may
	 * fail instead, and then nothing waits. */
	int u = l.unlock(l.obj);
	if (u < 0) {
		if (t)
			ticket_drop(c, t);
		if (lk)
			obj_release(obj_handle(lk), (enum kind)lk->kind,
				    "tt_cond_wait");
		return u;
	}
	if (t)
		r = ticket_wait(s, c, t, deadline);
	else
		r = wait_unparked(s, &c->h, &c->waiters, TT_WAIT_COND,
				  deadline);
	l.lock(l.obj);
	if (lk)
		obj_release(obj_handle(lk), (enum kind)lk->kind, "tt_cond_wait");
	return r;
}

int tt_cond_wait_until(tt_cond *c, int64_t deadline)
{
	return cond_wait_body(c, deadline);
}

int tt_cond_wait(tt_cond *c)
{
	return cond_wait_body(c, TT_FOREVER);
}

int tt_cond_signal(tt_cond *c)
{
	tt__sched *s = tt__sched_get();
	int r = 0;
	tt_cond *h = c;
	c = obj_get_any(s, c, K_COND, "tt_cond_signal", &r);
	if (r == REMOTE)
		return obj_ask(s, h, run_cond_signal, "tt_cond_signal",
			       TT_WAIT_SYSCALL, TT_FOREVER, 0, NULL);
	if (c == NULL)
		return r;
	wake_one(s, &c->waiters);
	return 0;
}

int tt_cond_broadcast(tt_cond *c)
{
	tt__sched *s = tt__sched_get();
	int r = 0;
	tt_cond *h = c;
	c = obj_get_any(s, c, K_COND, "tt_cond_broadcast", &r);
	if (r == REMOTE)
		return obj_ask(s, h, run_cond_signal, "tt_cond_broadcast",
			       TT_WAIT_SYSCALL, TT_FOREVER, 1, NULL);
	if (c == NULL)
		return r;
	while (wake_one(s, &c->waiters))
		;
	return 0;
}

int tt_cond_retain(tt_cond *c)
{
	return obj_retain(c, K_COND, "tt_cond_retain");
}

int tt_cond_release(tt_cond *c)
{
	return obj_release(c, K_COND, "tt_cond_release");
}

/* ---- any kind (tt_obj_retain, tt_obj_release) ---------------------------- */

static int sync_kind(void *h)
{
	const obj *o = tt__obj_ptr(h);
	return tt__obj_is(h, TT__OBJ_SYNC) ? o->kind : 0;
}

int tt__sync_retain(void *h)
{
	switch (sync_kind(h)) {
	case K_WG:
		return tt_wg_retain(h);
	case K_MUTEX:
		return tt_mutex_retain(h);
	case K_RWMUTEX:
		return tt_rwmutex_retain(h);
	case K_ONCE:
		return tt_once_retain(h);
	case K_COND:
		return tt_cond_retain(h);
	}
	return tt__err(-EBADF, "tt_obj_retain: %p is not a live tether object",
		       h);
}

int tt__sync_release(void *h)
{
	switch (sync_kind(h)) {
	case K_WG:
		return tt_wg_release(h);
	case K_MUTEX:
		return tt_mutex_release(h);
	case K_RWMUTEX:
		return tt_rwmutex_release(h);
	case K_ONCE:
		return tt_once_release(h);
	case K_COND:
		return tt_cond_release(h);
	}
	return tt__err(-EBADF, "tt_obj_release: %p is not a live tether "
			       "object",
		       h);
}
