/* tether — contexts, after Go's context package.
 *
 * Design notes
 * ------------
 * Three kinds of node, as in Go: the background root (one static object
 * shared by every thread, never freed, never cancelled), cancelable
 * contexts (with_cancel, with_deadline, with_timeout: they own a done
 * channel and, for a deadline of their own, a timer node embedded in the
 * struct) and value contexts (a key/value pair; cancellation is their
 * nearest cancelable ancestor's).
 *
 * Each context caches what Go finds by walking up: `canc`, the nearest
 * cancelable context from itself upwards (itself for a cancelable one,
 * NULL below background only), and `deadline`, the effective deadline.
 * Both stay valid because a child holds a reference on its parent, so
 * every ancestor outlives it.
 *
 * The cancellation tree: a cancelable context is linked into the
 * children list of its parent's `canc` (Go's propagateCancel). The
 * links are weak: a child takes itself out when it is cancelled on its
 * own or freed, and a parent's cancel empties its list. Cancel walks the
 * subtree with an explicit work list threaded through the nodes, not by
 * recursion, so a deep chain cannot overflow a goroutine's stack.
 * Closing a done channel only readies goroutines, never switches, so
 * the whole walk runs to completion without anything being freed under
 * it — which is also why it may run inside a timer callback.
 *
 * Everything runs on the owning scheduler's thread; nothing is locked.
 * Other threads post their cancels and releases to it ("from other
 * threads" below), and a child made on another thread is linked to its
 * parent by posts both ways ("children on other threads").
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"
#include "tether/ctx.h"


enum ctx_kind {
	CTX_BACKGROUND = 1,
	CTX_CANCEL, /* with_cancel, with_deadline, with_timeout */
	CTX_VALUE,
	CTX_WITHOUT /* without_cancel: values only, never done */
};

typedef struct ctx_after ctx_after;

/* Contexts point at each other (parent, canc, the children lists) by
 * address; only the program holds handles (hdr.self, see obj.c), and
 * every public call turns its handle into the address with ctx_check. */
struct tt_ctx {
	tt__obj hdr;
	tt__sched *sched; /* owner; NULL for background */
	tt_ctx *parent;   /* holds one reference; NULL for background */
	uint32_t refs;
	uint8_t kind;     /* enum ctx_kind */
	uint8_t linked;   /* in canc-parent's children list */
	/* Set when a reference of a cancelable context was released while
	 * it was still uncancelled (Go's "the cancel function is not used
	 * on all paths" leak). Kept, with the release site, for the leak
	 * tools to report; see also the per-thread totals below. */
	uint8_t released_uncancelled;
	int err;          /* 0, -ECANCELED or -ETIMEDOUT (cancelable) */
	void *release_pc; /* where the last uncancelled release came from */
	void *create_pc;  /* cancelable: where the program made it, */
	const char *made_by; /* with which public call */
	int64_t deadline; /* effective deadline, or TT_FOREVER */
	tt_ctx *canc;     /* nearest cancelable context, self included */

	/* Cancelable contexts. */
	tt_chan *done;    /* closed on cancel (a handle: it is used
			     through the public calls) */
	tt_ctx *children; /* live cancelable descendants linked here */
	tt_ctx *sib_prev, *sib_next; /* in the canc-parent's list */
	tt_ctx *work_next;           /* the cancel walk's work list */
	tt__timer timer;             /* own deadline, when armed */
	tt__g *waiters;  /* goroutines in a context-aware timed wait */

	/* Value contexts. */
	const void *key;
	void *value;

	/* Go 1.20+ additions (see "causes, AfterFunc, ..." below). */
	int cause;        /* cancelable, once cancelled: the cause given to
			     tt_ctx_cancel_cause at the origin of the
			     cancellation, copied down the walk; 0 means
			     "err" */
	uint8_t has_cause;   /* made by tt_ctx_with_cancel_cause */
	uint8_t stop_done;   /* stop_fn has run */
	ctx_after *afters;   /* tt_ctx_after_func records waiting */
	/* Called by tt_ctx_cancel on this context (after it is cancelled;
	 * freeing false; once) and when it is freed (freeing true), see
	 * tt__ctx_with_stop. */
	void (*stop_fn)(void *data, bool freeing);
	void *stop_data;
	/* Printed around the parent's name by tt_ctx_string when set. */
	const char *label_pre, *label_post;

	/* Across threads ("children on other threads" below). */
	struct rkid *rkids;   /* cancelable: children of other threads' */
	uint8_t parent_remote; /* the parent is another thread's */
	uint8_t rlinked;      /* in the parent's canc's rkids */
	uint8_t remote_held;  /* holds a reference of the remote parent's */
	uint8_t bridge;       /* the hidden link under a value child of
				 another thread's context */
	uint8_t mirror;       /* one of its thread's mirrors ("mirrors") */
	uint32_t mirror_refs; /* of refs, those mirrors of other threads'
				 hold */
};

/* A cancelable child made on another thread, in its ancestor's rkids:
 * the ancestor's cancel is posted to it. */
struct rkid {
	struct rkid *next;
	const tt_ctx *child; /* its handle */
	tt__sched *sched;    /* its owner */
	const tt_ctx *held;  /* a mirror: the context it holds (its
				parent, below which this is the nearest
				cancelable one); else NULL */
};

/* A root context: never cancelled, never freed. 16-byte aligned, as
 * slots are (a handle's low 4 bits carry its kind); generation 0, which
 * no slot's handle has. */
#define ROOT_CTX(name)                                                      \
	static _Alignas(16) tt_ctx name = {                                 \
		.hdr = {.self = (const char *)&name + TT__OBJ_CTX},         \
		.refs = 1,                                                  \
		.kind = CTX_BACKGROUND,                                     \
		.deadline = TT_FOREVER,                                     \
		.timer = {.heap_ix = TT_TIMER_IDLE},                        \
	}

ROOT_CTX(background);
/* context.TODO(): a second root, like background in every way but its
 * name. */
ROOT_CTX(todo);

tt_ctx *tt_ctx_background(void)
{
	return &background;
}

tt_ctx *tt_ctx_todo(void)
{
	return &todo;
}

/* "the background", "a value", ... for messages. */
static const char *kind_desc(const tt_ctx *c)
{
	switch (c->kind) {
	case CTX_BACKGROUND:
		return c == &todo ? "the TODO" : "the background";
	case CTX_VALUE:
		return "a value";
	case CTX_WITHOUT:
		return "a without-cancel";
	default:
		return "a cancelable";
	}
}

/* Run c's stop hook if it has one that has not run. */
static void run_stop(tt_ctx *c)
{
	if (c->stop_fn && !c->stop_done) {
		c->stop_done = 1;
		c->stop_fn(c->stop_data, false);
	}
}

#define REMOTE 1

/* 0 with *out the context if the handle h names a live context usable
 * from this thread, else the error recorded (and *out NULL). Another
 * thread's context: REMOTE (and *out that context) when remote_ok, else a
 * panic. */
static int ctx_check_any(const tt_ctx *h, tt_ctx **out, const char *op,
			 bool remote_ok)
{
	*out = NULL;
	if (h == NULL)
		return tt__err(-EINVAL, "%s: context is NULL", op);
	tt_ctx *c = tt__obj_ptr(h);
	if (!tt__obj_is(h, TT__OBJ_CTX))
		return tt__misuse(-EBADF,
			       "%s: %p is not a live context (released, or "
			       "never made)",
			       op, (const void *)h);
	if (c->kind != CTX_BACKGROUND && c->sched != tt__sched_get()) {
		if (remote_ok) {
			*out = c;
			return REMOTE;
		}
		tt__panic("%s: context %p belongs to another thread's "
			  "scheduler",
			  op, (const void *)h);
	}
	/* A cancel and whoever sees the context done (internal.h,
	 * TT_TSAN; its done channel synchronises as channels do). */
	TT_TSAN_SYNC(c);
	*out = c;
	return 0;
}

static int ctx_check(const tt_ctx *h, tt_ctx **out, const char *op)
{
	return ctx_check_any(h, out, op, false);
}

static inline tt_ctx *ctx_handle(const tt_ctx *c)
{
	return tt__obj_handle(c);
}

/* ---- from other threads ------------------------------------------------------
 *
 * A context is its owner's, like a channel: another thread's cancel,
 * cause, Err, retain and release are posts its owner runs (sched/post.c).
 * Cancels and releases are sent (the caller never waits: Go's CancelFunc
 * does not block, and a pthread may cancel while the owner is out of
 * tether); what they could fail on, the kind of context, is checked here
 * first, from fields that never change. Err and Cause ask and wait for
 * the answer; an inbox runs in order, so they see the caller's cancel
 * before them. Done, Deadline and Value read fields fixed when the
 * context was made, on the caller's thread. */

enum {
	RC_CANCEL,
	RC_CAUSE_CANCEL,
	RC_ERR,
	RC_CAUSE,
	RC_RETAIN,
	RC_RELEASE,
	RC_LINK,          /* on the parent: keep it for a child of another
			     thread's, and link that child */
	RC_UNLINK,        /* on the parent: that child is done with it */
	RC_UNLINK_RELEASE, /* both: the child is freed */
	RC_PARENT_CANCEL, /* on the child: its parent was cancelled */
	RC_LINK_MIRROR,   /* RC_LINK for a mirror */
	RC_MIRROR_RELEASE, /* RC_UNLINK_RELEASE for a mirror */
	RC_MIRROR_DROP,   /* on the mirror: nobody but mirrors holds its
			     parent any more */
};

static int ctx_release(tt_ctx *c, void *pc);
static void start_afters(tt__sched *s, tt_ctx *c);
static void cancel_tree(tt__sched *s, tt_ctx *c, int err);
static int cause_of(const tt_ctx *c);
static int err_of(const tt_ctx *c);
static void cancel_now(tt_ctx *c);
static void cancel_cause_now(tt_ctx *c, int cause);
static int retain_now(tt_ctx *c);
static void link_remote(tt_ctx *c, tt__post *p);
static void unlink_remote(tt_ctx *c, const tt_ctx *child);
static void parent_cancelled(tt__sched *s, tt_ctx *c, int64_t how);
static void mirror_forget(tt__sched *s, tt_ctx *k);
static void refs_dropped(tt_ctx *c);

/* p's context if it is still a live one of this thread's; else NULL,
 * and p answered -EBADF. */
static tt_ctx *post_ctx(tt__sched *s, tt__post *p)
{
	tt_ctx *c = tt__obj_ptr(p->h);
	if (tt__obj_is(p->h, TT__OBJ_CTX) && c->sched == s)
		return c;
	p->misuse = true;
	tt__post_fail(p, -EBADF,
		      "%s: %p is not a live context (released, or never made)",
		      p->op, p->h);
	return NULL;
}

/* Cancels sent to another thread's context (RC_CANCEL, RC_CAUSE_CANCEL,
 * RC_PARENT_CANCEL) that its owner has not run yet. While there are
 * none, another thread's tt_ctx_err reads the error the owner published
 * (cancel_tree) instead of asking for it: a thread that cancels and then
 * asks still sees its own cancel first, since its Err asks, in the same
 * inbox, after the cancel. */
static _Atomic long cancels_out;

static bool counted(int op)
{
	return op == RC_CANCEL || op == RC_CAUSE_CANCEL ||
	       op == RC_PARENT_CANCEL;
}

static void cancel_sent(void)
{
	atomic_fetch_add_explicit(&cancels_out, 1, memory_order_relaxed);
}

static void cancel_run(void)
{
	atomic_fetch_sub_explicit(&cancels_out, 1, memory_order_release);
}

static void cancel_dropped(tt__post *p)
{
	(void)p;
	cancel_run();
}

/* Sends p to s, counting it if it is a cancel. */
static int send_counted(tt__sched *s, tt__post *p)
{
	if (!counted((int)p->arg))
		return tt__post_send(s, p);
	cancel_sent();
	p->dropped = cancel_dropped;
	int r = tt__post_send(s, p);
	if (r)
		cancel_run();
	return r;
}

static void run_ctx_op(tt__sched *s, tt__post *p);

static void run_ctx(tt__sched *s, tt__post *p)
{
	bool cancel = counted((int)p->arg);
	run_ctx_op(s, p); /* may free p */
	if (cancel)
		cancel_run();
}

static void run_ctx_op(tt__sched *s, tt__post *p)
{
	tt_ctx *c = post_ctx(s, p);
	if (c == NULL)
		return;
	TT_TSAN_SYNC(c);
	switch (p->arg) {
	case RC_CANCEL:
		cancel_now(c);
		break;
	case RC_CAUSE_CANCEL:
		cancel_cause_now(c, (int)p->value);
		break;
	case RC_ERR:
		p->value = err_of(c);
		break;
	case RC_CAUSE:
		p->value = cause_of(c);
		break;
	case RC_RETAIN:
		p->result = retain_now(c);
		break;
	case RC_RELEASE:
		p->result = ctx_release(c, (void *)(uintptr_t)p->value);
		break;
	case RC_LINK:
	case RC_LINK_MIRROR:
		link_remote(c, p);
		break;
	case RC_MIRROR_RELEASE:
		unlink_remote(c, (const tt_ctx *)(uintptr_t)p->value);
		c->mirror_refs--;
		p->result = ctx_release(c, NULL);
		break;
	case RC_MIRROR_DROP:
		mirror_forget(s, c);
		break;
	case RC_UNLINK:
		unlink_remote(c, (const tt_ctx *)(uintptr_t)p->value);
		break;
	case RC_UNLINK_RELEASE:
		unlink_remote(c, (const tt_ctx *)(uintptr_t)p->value);
		p->result = ctx_release(c, NULL);
		break;
	case RC_PARENT_CANCEL:
		parent_cancelled(s, c, p->value);
		if (c->mirror)
			mirror_forget(s, c); /* may free it */
		break;
	}
	if (p->result)
		snprintf(p->msg, sizeof p->msg, "%s", tt_last_error());
	tt__post_answer(p);
}

/* Posts operation op on another thread's context c: sent (send), or asked
 * with the answer's value in *out. 0 or a negative error. */
static int ctx_post(tt_ctx *c, int op, const char *name, int64_t in,
		    bool send, int64_t *out)
{
	tt__post *p = tt__post_new(0, name);
	if (p == NULL)
		return -ENOMEM;
	p->run = run_ctx;
	p->h = ctx_handle(c);
	p->arg = op;
	p->value = in;
	if (send)
		return send_counted(c->sched, p);
	int r = tt__post_call(tt__sched_get(), c->sched, p, TT_WAIT_SYSCALL,
			      c);
	if (r) {
		free(p);
		return r;
	}
	if (out && p->result == 0)
		*out = p->value;
	return tt__post_done(p);
}

/* ---- the cancellation tree ---------------------------------------------- */

static void unlink_child(tt_ctx *c)
{
	tt_ctx *p = c->parent->canc;
	if (c->sib_prev)
		c->sib_prev->sib_next = c->sib_next;
	else
		p->children = c->sib_next;
	if (c->sib_next)
		c->sib_next->sib_prev = c->sib_prev;
	c->sib_prev = c->sib_next = NULL;
	c->linked = 0;
}

static void link_child(tt_ctx *p, tt_ctx *c)
{
	c->sib_prev = NULL;
	c->sib_next = p->children;
	if (p->children)
		p->children->sib_prev = c;
	p->children = c;
	c->linked = 1;
}

/* ---- interrupting waits ----------------------------------------------------
 *
 * The blocking calls that are not channel operations (sync, descriptors)
 * have deadline forms: they park with the goroutine's timer armed, and its
 * callback is the layer's own "deadline passed" path, which takes the
 * goroutine out of whatever queue it waits in and readies it. A context
 * -aware form of such a call (tt_mutex_lock_ctx, tt_read_ctx, ...) runs it
 * with a deadline and puts the goroutine on its context's `waiters` list;
 * cancellation fires that timer early. So each layer's timeout path is the
 * only way out besides success, and no layer knows about contexts. */

static void waiter_unlink(tt_ctx *c, tt__g *g)
{
	if (g->ctx_prev)
		g->ctx_prev->ctx_next = g->ctx_next;
	else
		c->waiters = g->ctx_next;
	if (g->ctx_next)
		g->ctx_next->ctx_prev = g->ctx_prev;
	g->ctx_prev = g->ctx_next = NULL;
	g->ctx_on = NULL;
}

static void interrupt_waiters(tt__sched *s, tt_ctx *c)
{
	tt__g *g;
	while ((g = c->waiters) != NULL) {
		waiter_unlink(c, g);
		/* Parked in its timed wait: end it now, as its deadline
		 * would. A goroutine already woken (timer disarmed by the
		 * waker) returns what it got. One that asked another thread
		 * to wait for it (another thread's Mutex, WaitGroup, ...)
		 * waits with no timer of its own: the proxy that waits
		 * there is interrupted instead. */
		if (!tt__wait_interrupt(s, g))
			tt__post_interrupt(g);
	}
}

static int new_cancel(tt_ctx **out, tt_ctx *parent, const char *op);
static int mirror_get(tt__sched *s, tt_ctx *c, const char *op,
		      tt_ctx **out);
static int ctx_new(tt_ctx **out, tt_ctx *parent_h, int kind, const char *op);
static int propagate_remote(tt__sched *s, tt_ctx *c);

/* Put the running goroutine on k's waiters: the wait holds a reference
 * of k's, taken by the caller. */
static void arm_wait(tt_ctx *k, int64_t *deadline, tt_ctx **armed)
{
	tt__g *g = k->sched->current;
	g->ctx_on = k;
	g->ctx_prev = NULL;
	g->ctx_next = k->waiters;
	if (k->waiters)
		k->waiters->ctx_prev = g;
	k->waiters = g;
	*armed = k;
	/* A timer must be armed for cancellation to fire it; a deadline
	 * of the context's own also ends the wait through cancellation,
	 * so the same error comes back whichever fires first. */
	*deadline = INT64_MAX;
}

int tt__ctx_wait_begin(tt_ctx *h, int64_t *deadline, tt_ctx **armed,
		       const char *op)
{
	*armed = NULL;
	*deadline = TT_FOREVER;
	tt_ctx *c;
	int r = ctx_check_any(h, &c, op, true);
	if (r < 0)
		return r;
	if (r == REMOTE) {
		/* Another thread's context: the wait is on a child of it,
		 * this thread's, which its cancel reaches by a post
		 * ("children on other threads"): the thread's mirror of it
		 * ("mirrors"), which holds a reference for the wait. One
		 * that can never be cancelled needs none. */
		if (c->canc == NULL)
			return 0;
		tt_ctx *k;
		r = mirror_get(tt__sched_get(), c, op, &k);
		if (r)
			return r;
		if (k->err) {
			int err = k->err;
			ctx_release(k, NULL);
			return err;
		}
		arm_wait(k, deadline, armed);
		return 0;
	}
	tt_ctx *k = c->canc;
	if (k == NULL)
		return 0; /* background, or values below it: never done */
	if (k->err)
		return k->err;
	/* The caller's reference may be dropped by another goroutine while
	 * this one waits; the wait holds its own. */
	k->refs++;
	arm_wait(k, deadline, armed);
	return 0;
}

int64_t tt__ctx_wait_end(tt_ctx *armed, int64_t r)
{
	if (armed == NULL)
		return r;
	tt__g *g = armed->sched->current;
	if (g->ctx_on == armed)
		waiter_unlink(armed, g);
	int err = armed->err;
	if (r == -ETIMEDOUT && err)
		r = err;
	ctx_release(armed, NULL);
	return r;
}

/* Cancel c (cancelable, not yet cancelled) and its whole subtree with
 * err. Never blocks or switches: safe in a timer callback. */
static void post_parent_cancel(struct rkid *k, int err, int cause);
static void post_unlink(tt_ctx *c);

static void cancel_tree(tt__sched *s, tt_ctx *c, int err)
{
	if (c->linked)
		unlink_child(c);
	if (c->rlinked)
		post_unlink(c);
	c->work_next = NULL;
	tt_ctx *work = c;
	while (work) {
		tt_ctx *x = work;
		work = x->work_next;
		x->work_next = NULL;
		if (x->err)
			continue; /* cannot happen: cancelled nodes are
				     unlinked; kept for safety */
		x->cause = c->cause;
		/* Read by other threads' tt_ctx_err (cancels_out). */
		__atomic_store_n(&x->err, err, __ATOMIC_RELEASE);
		tt__timer_del(s, &x->timer);
		tt_chan_close(x->done);
		interrupt_waiters(s, x);
		if (x->afters)
			start_afters(s, x);
		/* Children on other threads: told, and forgotten. */
		for (struct rkid *k = x->rkids, *next; k; k = next) {
			next = k->next;
			post_parent_cancel(k, err, c->cause);
			free(k);
		}
		x->rkids = NULL;
		tt_ctx *ch = x->children;
		x->children = NULL;
		while (ch) {
			tt_ctx *next = ch->sib_next;
			ch->sib_prev = ch->sib_next = NULL;
			ch->linked = 0;
			ch->work_next = work;
			work = ch;
			ch = next;
		}
	}
}

/* ---- children on other threads ----------------------------------------------
 *
 * A child made on thread B of a context of thread A's is B's, like any
 * context B makes; what it takes from its parent is fixed when the
 * parent was made (values, the deadline, the chain for String), read on
 * B, and kept alive by a reference A takes for it (RC_RETAIN, asked). A
 * cancelable child asks A to link it (RC_LINK): A finds the parent's
 * nearest cancelable ancestor, and either answers that it is cancelled
 * already (with its err and cause: B cancels the child at once) or
 * records the child in that ancestor's rkids. A's cancel of the
 * ancestor posts RC_PARENT_CANCEL to each recorded child and forgets
 * them; a child cancelled or freed first posts RC_UNLINK. Both are sent,
 * quietly: one that finds the other side gone does nothing. A value
 * child of another thread's context sits on a hidden cancelable link
 * of this kind (bridge), so that every context's `canc` is its own
 * thread's. */

/* err and cause in one post value: 0 and 1 mean "nothing" and
 * "linked". */
static int64_t pack_cancel(int err, int cause)
{
	return 2 + (((int64_t)-err << 32) | (uint32_t)-cause);
}

static void unpack_cancel(int64_t v, int *err, int *cause)
{
	v -= 2;
	*err = -(int)(v >> 32);
	*cause = -(int)(uint32_t)v;
}

/* Send op on the context handle h to its owner s; nobody waits, and a
 * failure (h gone, or its thread) is nobody's to hear of. */
static void post_quiet(tt__sched *s, const tt_ctx *h, int op, int64_t in)
{
	tt__post *p = tt__post_new(0, "context");
	if (p == NULL)
		return; /* out of memory: the link stays, harmless */
	p->run = run_ctx;
	p->h = h;
	p->arg = op;
	p->value = in;
	p->quiet = true;
	(void)send_counted(s, p);
}

static void post_parent_cancel(struct rkid *k, int err, int cause)
{
	post_quiet(k->sched, k->child, RC_PARENT_CANCEL,
		   pack_cancel(err, cause));
}

/* On the child's thread: it leaves its ancestor's rkids. */
static void post_unlink(tt_ctx *c)
{
	c->rlinked = 0;
	post_quiet(c->parent->sched, ctx_handle(c->parent), RC_UNLINK,
		   (int64_t)(uintptr_t)ctx_handle(c));
}

/* On the parent's thread (RC_LINK): a reference of c's for the child,
 * then the link; p->value, the child's handle in, and out 0 (never
 * cancelled: nothing to link), 1 (linked) or the packed cancel. One post
 * does both, so that a wait on another thread's context (which makes
 * such a child each time) costs one round trip. */
static void link_remote(tt_ctx *c, tt__post *p)
{
	p->result = retain_now(c);
	if (p->result)
		return;
	bool mirror = p->arg == RC_LINK_MIRROR;
	c->mirror_refs += mirror;
	tt_ctx *pc = c->canc;
	const tt_ctx *child = (const tt_ctx *)(uintptr_t)p->value;
	p->value = 0;
	if (pc == NULL)
		return;
	if (pc->err) {
		p->value = pack_cancel(pc->err, pc->cause);
		return;
	}
	struct rkid *k = malloc(sizeof *k);
	if (k == NULL) {
		c->mirror_refs -= mirror;
		(void)ctx_release(c, NULL); /* not the child's after all */
		p->result = tt__err(-ENOMEM, "%s: out of memory", p->op);
		return;
	}
	k->child = child;
	k->sched = p->from;
	k->held = mirror ? c : NULL;
	k->next = pc->rkids;
	pc->rkids = k;
	p->value = 1;
}

static void unlink_remote(tt_ctx *c, const tt_ctx *child)
{
	tt_ctx *pc = c->canc;
	if (pc == NULL)
		return;
	for (struct rkid **kp = &pc->rkids; *kp; kp = &(*kp)->next) {
		if ((*kp)->child == child) {
			struct rkid *k = *kp;
			*kp = k->next;
			free(k);
			return;
		}
	}
}

/* On the child's thread (RC_PARENT_CANCEL). */
static void parent_cancelled(tt__sched *s, tt_ctx *c, int64_t how)
{
	c->rlinked = 0; /* the parent forgot it */
	if (c->kind != CTX_CANCEL || c->err)
		return;
	int err, cause;
	unpack_cancel(how, &err, &cause);
	c->cause = cause;
	cancel_tree(s, c, err);
}

/* propagate_cancel for a child of another thread's context: 0, or the
 * error recorded (the child is then not usable). */
static int propagate_remote(tt__sched *s, tt_ctx *c)
{
	int64_t v = 0;
	int r = ctx_post(c->parent, c->mirror ? RC_LINK_MIRROR : RC_LINK,
			 "tt_ctx_with_cancel",
			 (int64_t)(uintptr_t)ctx_handle(c), false, &v);
	if (r)
		return r;
	c->remote_held = 1;
	if (v == 1) {
		c->rlinked = 1;
	} else if (v >= 2) {
		int err, cause;
		unpack_cancel(v, &err, &cause);
		c->cause = cause;
		cancel_tree(s, c, err);
	}
	return 0;
}

/* ---- mirrors -------------------------------------------------------------
 *
 * A context-aware wait on another thread's context h waits on a
 * cancelable child of h made on the waiting thread, which h's cancel
 * reaches by a post. Made for each wait, that child would cost a round
 * trip to h's owner (the link) and a post back (the unlink) per wait: a
 * server whose connections, on every P, read with the listener's
 * context would pay both on each read that parks. So each thread keeps
 * its children of the last few contexts it waited on (s->ctx_mirrors):
 * its mirrors, linked once and armed by every wait on h there, each wait
 * with a reference of its own.
 *
 * A mirror holds a reference of h's, which must not keep h from being
 * freed once the program is done with it (its deadline timer, or a
 * signal context's stop, go with h): h counts the references mirrors
 * hold (mirror_refs), and when those are all it has left, its owner
 * posts RC_MIRROR_DROP to each. A mirror also goes when h is cancelled
 * (it is of no more use), when a wait on a fifth context needs its slot
 * while no wait uses it, and when its thread ends. */

/* k, a mirror of s's, leaves the cache, which drops its reference. */
static void mirror_forget(tt__sched *s, tt_ctx *k)
{
	for (int i = 0; i < TT__CTX_MIRRORS; i++) {
		tt__ctx_mirror *e = &s->ctx_mirrors[i];
		if (e->k == k) {
			e->k = NULL;
			e->h = NULL;
			(void)ctx_release(k, NULL);
			return;
		}
	}
}

/* On c's owner, after a reference of c's went: if the mirrors' are all
 * that is left, they are told to go. */
static void refs_dropped(tt_ctx *c)
{
	if (TT_LIKELY(c->mirror_refs == 0) || c->refs != c->mirror_refs ||
	    c->canc == NULL)
		return;
	for (struct rkid *k = c->canc->rkids; k; k = k->next)
		if (k->held == c)
			post_quiet(k->sched, k->child, RC_MIRROR_DROP, 0);
}

/* s's mirror of h, the other thread's context c, in *out with a
 * reference for the caller (made, and kept if there is room, when s has
 * none): 0 or the error of the making. */
static int mirror_get(tt__sched *s, tt_ctx *c, const char *op,
		      tt_ctx **out)
{
	const tt_ctx *h = ctx_handle(c);
	tt__ctx_mirror *slot = NULL;
	for (int i = 0; i < TT__CTX_MIRRORS; i++) {
		tt__ctx_mirror *e = &s->ctx_mirrors[i];
		if (e->k != NULL && e->h == h) {
			e->k->refs++;
			e->used = ++s->ctx_mirror_clock;
			*out = e->k;
			return 0;
		}
		/* An empty slot, else the least recently used of those no
		 * wait holds. */
		if (slot != NULL && slot->k == NULL)
			continue;
		if (e->k == NULL ||
		    (e->k->refs == 1 && (slot == NULL || e->used < slot->used)))
			slot = e;
	}
	if (slot != NULL && slot->k != NULL)
		mirror_forget(s, slot->k);
	tt_ctx *k;
	int r = ctx_new(&k, (tt_ctx *)h, CTX_CANCEL, op);
	if (r)
		return r;
	k->mirror = 1;
	r = propagate_remote(s, k);
	if (r) {
		ctx_release(k, NULL);
		return r;
	}
	*out = k;
	if (k->err)
		return 0; /* cancelled already: used once, kept by none */
	/* The link parked: another wait of s's may have taken the slot. */
	for (int i = 0; i < TT__CTX_MIRRORS; i++) {
		tt__ctx_mirror *e = &s->ctx_mirrors[i];
		if (e->k == NULL) {
			e->h = h;
			e->k = k;
			e->used = ++s->ctx_mirror_clock;
			k->refs++;
			break;
		}
	}
	return 0;
}

void tt__ctx_thread_exit(tt__sched *s)
{
	for (int i = 0; i < TT__CTX_MIRRORS; i++)
		if (s->ctx_mirrors[i].k != NULL)
			mirror_forget(s, s->ctx_mirrors[i].k);
}

static void deadline_fired(tt__timer *t, int64_t now)
{
	(void)now;
	tt_ctx *c = t->ctx;
	if (c->err == 0)
		cancel_tree(c->sched, c, -ETIMEDOUT);
}

/* ---- making ------------------------------------------------------------------ */

/* A new context under the parent handle parent_h, in *out (the address,
 * not the handle: the public call hands out ctx_handle at the end). */
static int ctx_new(tt_ctx **out, tt_ctx *parent_h, int kind, const char *op)
{
	if (out == NULL)
		return tt__err(-EINVAL, "%s: out is NULL", op);
	*out = NULL;
	if (parent_h == NULL)
		return tt__err(-EINVAL, "%s: parent is NULL", op);
	tt_ctx *parent;
	int r = ctx_check_any(parent_h, &parent, op, true);
	if (r < 0)
		return r;
	bool remote = r == REMOTE;
	if (remote && kind != CTX_CANCEL) {
		/* Its owner keeps it for this child (posted, waited for:
		 * it must not go before the child is made). A cancelable
		 * child's is taken with its link (link_remote). */
		r = ctx_post(parent, RC_RETAIN, op, 0, false, NULL);
		if (r)
			return r;
	} else if (parent->kind != CTX_BACKGROUND &&
		   parent->refs == UINT32_MAX) {
		return tt__err(-EOVERFLOW,
			       "%s: parent has too many references", op);
	}
	tt__sched *s = tt__sched_get();
	tt_ctx *c = tt__obj_alloc(s, sizeof *c, TT__OBJ_CTX);
	if (c == NULL) {
		if (remote && kind != CTX_CANCEL)
			ctx_post(parent, RC_RELEASE, op, 0, true, NULL);
		return tt__err(-ENOMEM, "%s: out of memory for a context", op);
	}
	memset((char *)c + sizeof c->hdr, 0, sizeof *c - sizeof c->hdr);
	c->kind = (uint8_t)kind;
	if (kind == CTX_CANCEL) {
		r = tt_chan_make(&c->done, 0, 0);
		if (r) {
			tt__obj_free(s, c, sizeof *c);
			if (remote && kind != CTX_CANCEL)
				ctx_post(parent, RC_RELEASE, op, 0, true,
					 NULL);
			return tt__err(r, "%s: out of memory for a done "
					  "channel",
				       op);
		}
	}
	c->sched = s;
	c->parent = parent;
	c->parent_remote = remote;
	c->remote_held = remote && kind != CTX_CANCEL;
	if (parent->kind != CTX_BACKGROUND && !remote)
		parent->refs++;
	c->refs = 1;
	c->deadline = parent->deadline;
	c->canc = kind == CTX_CANCEL ? c : parent->canc;
	c->timer.heap_ix = TT_TIMER_IDLE;
	c->timer.fn = deadline_fired;
	c->timer.ctx = c;
	*out = c;
	return 0;
}

/* Where the program made the cancelable c, for a lost-cancel report. */
static void made_at(tt_ctx *c, const char *made_by, void *pc)
{
	c->made_by = made_by;
	c->create_pc = pc;
}

/* Hook a new cancelable c into the tree under its parent, or cancel it
 * at once if the parent already is (Go's propagateCancel). */
static void propagate_cancel(tt__sched *s, tt_ctx *c)
{
	tt_ctx *pc = c->parent->canc;
	if (pc == NULL)
		return; /* below background only: never cancelled */
	if (pc->err) {
		c->cause = pc->cause;
		cancel_tree(s, c, pc->err);
	} else {
		link_child(pc, c);
	}
}

/* A cancelable child of parent, linked into parent's cancel tree; op
 * names the public call in error messages. */
static int new_cancel(tt_ctx **out, tt_ctx *parent, const char *op)
{
	int r = ctx_new(out, parent, CTX_CANCEL, op);
	if (r)
		return r;
	if ((*out)->parent_remote) {
		r = propagate_remote((*out)->sched, *out);
		if (r) {
			ctx_release(*out, NULL);
			*out = NULL;
		}
		return r;
	}
	propagate_cancel((*out)->sched, *out);
	return 0;
}

int tt_ctx_with_cancel(tt_ctx **out, tt_ctx *parent)
{
	int r = new_cancel(out, parent, "tt_ctx_with_cancel");
	if (r == 0) {
		made_at(*out, "tt_ctx_with_cancel", __builtin_return_address(0));
		*out = ctx_handle(*out);
	}
	return r;
}

/* Give the new context c its own deadline, unless it is already done or
 * an ancestor's deadline comes first (that one will cancel it). */
static void set_deadline(tt__sched *s, tt_ctx *c, int64_t deadline)
{
	if (c->err)
		return;
	if (c->deadline != TT_FOREVER && c->deadline <= deadline)
		return;
	c->deadline = deadline;
	if (deadline <= tt_now()) {
		cancel_tree(s, c, -ETIMEDOUT);
		return;
	}
	c->timer.when = deadline;
	c->timer.period = 0;
	tt__timer_add(s, &c->timer);
}

int tt_ctx_with_deadline(tt_ctx **out, tt_ctx *parent, int64_t deadline)
{
	if (deadline < 0 && deadline != TT_FOREVER) {
		if (out)
			*out = NULL;
		return tt__err(-EINVAL,
			       "tt_ctx_with_deadline: negative deadline %lld",
			       (long long)deadline);
	}
	int r = new_cancel(out, parent, "tt_ctx_with_deadline");
	if (r)
		return r;
	if (deadline != TT_FOREVER)
		set_deadline((*out)->sched, *out, deadline);
	made_at(*out, "tt_ctx_with_deadline", __builtin_return_address(0));
	*out = ctx_handle(*out);
	return 0;
}

int tt_ctx_with_timeout(tt_ctx **out, tt_ctx *parent, int64_t ns)
{
	/* tt_deadline_in maps negative durations to TT_FOREVER; Go's
	 * WithTimeout treats them as already expired. */
	int64_t deadline = ns <= 0 ? tt_now() : tt_deadline_in(ns);
	int r = new_cancel(out, parent, "tt_ctx_with_timeout");
	if (r)
		return r;
	set_deadline((*out)->sched, *out, deadline);
	made_at(*out, "tt_ctx_with_timeout", __builtin_return_address(0));
	*out = ctx_handle(*out);
	return 0;
}

int tt_ctx_with_value(tt_ctx **out, tt_ctx *parent, const void *key,
		      void *value)
{
	if (key == NULL) {
		if (out)
			*out = NULL;
		return tt__err(-EINVAL, "tt_ctx_with_value: key is NULL");
	}
	tt_ctx *pc;
	int r = ctx_check_any(parent, &pc, "tt_ctx_with_value", true);
	if (r < 0) {
		if (out)
			*out = NULL;
		return r;
	}
	tt_ctx *bridge = NULL;
	if (r == REMOTE) {
		/* A cancelable link of this thread's under another thread's
		 * context (see "children on other threads"). */
		r = new_cancel(&bridge, parent, "tt_ctx_with_value");
		if (r) {
			if (out)
				*out = NULL;
			return r;
		}
		bridge->bridge = 1;
		parent = ctx_handle(bridge);
	}
	r = ctx_new(out, parent, CTX_VALUE, "tt_ctx_with_value");
	if (bridge)
		ctx_release(bridge, NULL); /* the value child holds it */
	if (r)
		return r;
	tt_ctx *c = *out;
	c->key = key;
	c->value = value;
	*out = ctx_handle(c);
	return 0;
}

/* ---- queries ------------------------------------------------------------------ */

void *tt_ctx_value(tt_ctx *h, const void *key)
{
	tt_ctx *c;
	if (ctx_check_any(h, &c, "tt_ctx_value", true) < 0)
		return NULL;
	for (; c; c = c->parent)
		if (c->kind == CTX_VALUE && c->key == key)
			return c->value;
	return NULL;
}

int tt_ctx_cancel(tt_ctx *h)
{
	tt_ctx *c;
	int r = ctx_check_any(h, &c, "tt_ctx_cancel", true);
	if (r < 0)
		return r;
	if (c->kind != CTX_CANCEL)
		return tt__err(-EINVAL,
			       "tt_ctx_cancel: %s context has no cancel",
			       kind_desc(c));
	if (r == REMOTE)
		return ctx_post(c, RC_CANCEL, "tt_ctx_cancel", 0, true, NULL);
	cancel_now(c);
	return 0;
}

static void cancel_now(tt_ctx *c)
{
	if (c->err == 0)
		cancel_tree(c->sched, c, -ECANCELED);
	run_stop(c);
}

tt_chan *tt_ctx_done(tt_ctx *h)
{
	tt_ctx *c;
	if (ctx_check_any(h, &c, "tt_ctx_done", true) < 0)
		return NULL;
	return c->canc ? c->canc->done : NULL;
}

int tt_ctx_err(tt_ctx *h)
{
	tt_ctx *c;
	int r = ctx_check_any(h, &c, "tt_ctx_err", true);
	if (r == REMOTE &&
	    atomic_load_explicit(&cancels_out, memory_order_acquire) == 0) {
		/* No cancel on its way anywhere: what the owner published.
		 * The context's canc never changes once it is handed out. */
		int e = c->canc ? __atomic_load_n(&c->canc->err,
						  __ATOMIC_ACQUIRE)
				: 0;
		if (e)
			TT_TSAN_SYNC(c);
		return e;
	}
	if (r == REMOTE) {
		int64_t v = 0;
		r = ctx_post(c, RC_ERR, "tt_ctx_err", 0, false, &v);
		return r ? r : (int)v;
	}
	if (r)
		return r;
	return err_of(c);
}

static int err_of(const tt_ctx *c)
{
	return c->canc ? c->canc->err : 0;
}

int64_t tt_ctx_deadline(tt_ctx *h)
{
	tt_ctx *c;
	if (ctx_check_any(h, &c, "tt_ctx_deadline", true) < 0)
		return TT_FOREVER;
	return c->deadline;
}

/* ---- references ----------------------------------------------------------------- */

int tt_ctx_retain(tt_ctx *h)
{
	tt_ctx *c;
	int r = ctx_check_any(h, &c, "tt_ctx_retain", true);
	if (r == REMOTE)
		return ctx_post(c, RC_RETAIN, "tt_ctx_retain", 0, false, NULL);
	return r ? r : retain_now(c);
}

static int retain_now(tt_ctx *c)
{
	if (c->kind == CTX_BACKGROUND)
		return 0;
	if (c->refs == UINT32_MAX)
		return tt__err(-EOVERFLOW, "tt_ctx_retain: too many references");
	c->refs++;
	return 0;
}

/* Free c (no references left), then drop its reference on its parent,
 * and so on up while that frees the parent too — a loop, not recursion,
 * for long chains. */
static void ctx_free_chain(tt__sched *s, tt_ctx *c)
{
	while (c && c->kind != CTX_BACKGROUND) {
		tt_ctx *parent = c->parent;
		if (c->released_uncancelled && c->err == 0) {
			tt__leak_lost_cancel(c->made_by, c->create_pc,
					     c->release_pc);
		}
		if (c->kind == CTX_CANCEL) {
			if (c->stop_fn)
				c->stop_fn(c->stop_data, true);
			if (c->linked)
				unlink_child(c);
			if (c->rlinked && !c->remote_held)
				post_unlink(c);
			for (struct rkid *k = c->rkids, *next; k; k = next) {
				next = k->next; /* none: children hold c */
				free(k);
			}
			tt__timer_del(s, &c->timer);
			/* Goroutines parked on done keep the channel alive
			 * through the runtime; this drops only our hold. */
			tt_chan_release(c->done);
		}
		bool remote = c->parent_remote;
		bool held = c->remote_held, linked = c->rlinked;
		bool mirror = c->mirror;
		const tt_ctx *self = ctx_handle(c);
		tt__obj_free(s, c, sizeof *c);
		if (remote) {
			/* The reference ctx_new or the link took, given back
			 * to the parent's owner (the runtime's: no lost
			 * cancel), with the unlink when there is one. */
			int op = mirror  ? RC_MIRROR_RELEASE
				 : linked ? RC_UNLINK_RELEASE
					  : RC_RELEASE;
			if (held)
				ctx_post(parent, op, "tt_ctx_release",
					 op != RC_RELEASE
						 ? (int64_t)(uintptr_t)self
						 : 0,
					 true, NULL);
			break;
		}
		if (parent->kind == CTX_BACKGROUND)
			break;
		if (--parent->refs) {
			refs_dropped(parent);
			break;
		}
		c = parent;
	}
}

/* Drop a reference of c; pc is where the program released it, or NULL
 * for the runtime's own hold (a wait's), which records no lost cancel. */
static int ctx_release(tt_ctx *c, void *pc)
{
	if (c->kind == CTX_BACKGROUND)
		return 0;
	if (c->refs == 0)
		return tt__err(-EBADF, "tt_ctx_release: context %p has no "
				       "references left",
			       (void *)ctx_handle(c));
	bool uncancelled = c->kind == CTX_CANCEL && c->err == 0;
	if (uncancelled && pc) {
		/* Not an error (Go allows dropping a CancelFunc too), but a
		 * leak of the kind go vet reports: record where it happened
		 * for the leak tools. */
		c->released_uncancelled = 1;
		c->release_pc = pc;
	}
	if (--c->refs) {
		refs_dropped(c);
		return 0;
	}
	ctx_free_chain(c->sched, c);
	return 0;
}

int tt_ctx_release(tt_ctx *h)
{
	tt_ctx *c;
	int r = ctx_check_any(h, &c, "tt_ctx_release", true);
	if (r == REMOTE)
		return ctx_post(c, RC_RELEASE, "tt_ctx_release",
				(int64_t)(uintptr_t)__builtin_return_address(0),
				true, NULL);
	if (r)
		return r;
	return ctx_release(c, __builtin_return_address(0));
}

/* ---- causes, AfterFunc, WithoutCancel, TODO, names ------------------------
 *
 * Causes (Go 1.20's WithCancelCause). A cause is an int error code, as
 * every tether error is: programs compare it (Go's errors.Is on
 * context.Cause) and tt_strerror names it, and it costs no allocation and
 * has no lifetime, so cancelling with a cause cannot fail, as Go's
 * CancelCauseFunc cannot. The origin of a cancellation records the cause
 * it was given (0 for none) in `cause`, and cancel_tree copies it to
 * every context it cancels, so each reports the cause of the
 * cancellation that reached it first; 0 there means "the error itself"
 * (-ECANCELED, or -ETIMEDOUT for a deadline).
 *
 * AfterFunc (Go 1.21). A record per call, in the `afters` list of the
 * nearest cancelable context, holding a reference on that context so
 * that the program's release cannot free it (and so stop its deadline)
 * while the call is pending. cancel_tree starts every record's goroutine
 * (runnable, not run: it may be inside a timer callback) and marks it
 * started, so a stop after the cancel returns false, as Go's does; the
 * goroutine drops the reference and frees the record before it calls fn.
 * A stop before that takes the record out, drops the reference and frees
 * it. */

struct ctx_after {
	tt__obj hdr;      /* the stop handle is hdr.self */
	tt__sched *sched;
	tt_ctx *ctx;      /* the cancelable context waited on (referenced),
			     or NULL for one that is never done */
	ctx_after *prev, *next; /* in ctx->afters while waiting */
	tt_func fn;
	void *arg;
	int64_t parent_id; /* who called tt_ctx_after_func, where, and */
	void *pc;          /* its leak scope */
	uint64_t leak_scope;
	uint8_t started;  /* its goroutine exists: stop can do nothing */
};

int tt_ctx_with_cancel_cause(tt_ctx **out, tt_ctx *parent)
{
	int r = new_cancel(out, parent, "tt_ctx_with_cancel_cause");
	if (r)
		return r;
	(*out)->has_cause = 1;
	*out = ctx_handle(*out);
	return 0;
}

int tt_ctx_cancel_cause(tt_ctx *h, int cause)
{
	tt_ctx *c;
	int r = ctx_check_any(h, &c, "tt_ctx_cancel_cause", true);
	if (r < 0)
		return r;
	if (c->kind != CTX_CANCEL || !c->has_cause)
		return tt__err(-EINVAL,
			       "tt_ctx_cancel_cause: %s context was not made by "
			       "tt_ctx_with_cancel_cause (use tt_ctx_cancel)",
			       kind_desc(c));
	if (cause > 0)
		return tt__err(-EINVAL,
			       "tt_ctx_cancel_cause: cause %d is not a negative "
			       "error code",
			       cause);
	/* Go's cancel(nil) sets the cause to Canceled. */
	if (!cause)
		cause = -ECANCELED;
	if (r == REMOTE)
		return ctx_post(c, RC_CAUSE_CANCEL, "tt_ctx_cancel_cause",
				cause, true, NULL);
	cancel_cause_now(c, cause);
	return 0;
}

static void cancel_cause_now(tt_ctx *c, int cause)
{
	if (c->err == 0) {
		c->cause = cause;
		cancel_tree(c->sched, c, -ECANCELED);
	}
}

static int cause_of(const tt_ctx *c)
{
	const tt_ctx *k = c->canc;
	if (k == NULL || k->err == 0)
		return 0;
	return k->cause ? k->cause : k->err;
}

int tt_ctx_cause(tt_ctx *h)
{
	tt_ctx *c;
	int r = ctx_check_any(h, &c, "tt_ctx_cause", true);
	if (r == REMOTE) {
		int64_t v = 0;
		r = ctx_post(c, RC_CAUSE, "tt_ctx_cause", 0, false, &v);
		return r ? r : (int)v;
	}
	if (r)
		return r;
	return cause_of(c);
}

int tt_ctx_without_cancel(tt_ctx **out, tt_ctx *parent)
{
	int r = ctx_new(out, parent, CTX_WITHOUT, "tt_ctx_without_cancel");
	if (r)
		return r;
	tt_ctx *c = *out;
	c->canc = NULL;
	c->deadline = TT_FOREVER;
	*out = ctx_handle(c);
	return 0;
}

/* The goroutine of a started record: give back what the record held,
 * then run the program's function. */
static void after_main(void *p)
{
	ctx_after *a = p;
	tt_func fn = a->fn;
	void *arg = a->arg;
	tt__sched *s = a->sched;
	ctx_release(a->ctx, NULL);
	tt__obj_free(s, a, sizeof *a);
	fn(arg);
}

static void after_unlink(ctx_after *a)
{
	tt_ctx *c = a->ctx;
	if (a->prev)
		a->prev->next = a->next;
	else
		c->afters = a->next;
	if (a->next)
		a->next->prev = a->prev;
	a->prev = a->next = NULL;
}

static void after_start(tt__sched *s, ctx_after *a)
{
	a->started = 1;
	if (tt__go_runnable(s, after_main, a, "context.AfterFunc",
			    a->parent_id, a->pc, a->leak_scope) < 0)
		tt__fatal("context.AfterFunc: cannot start the goroutine of "
			  "the call made at %p: %s",
			  a->pc, tt_last_error());
}

/* c is being cancelled (inside cancel_tree: nothing may be freed). */
static void start_afters(tt__sched *s, tt_ctx *c)
{
	ctx_after *a;
	while ((a = c->afters) != NULL) {
		after_unlink(a);
		after_start(s, a);
	}
}

/* What tt_ctx_after_func records: its call. */
typedef struct after_req {
	tt_func fn;
	void *arg;
	int64_t parent_id;
	void *pc;
	uint64_t leak_scope;
} after_req;

/* tt_ctx_after_func's body, on c's thread: 0 with *stop the handle, or
 * the error recorded. */
static int after_make(tt__sched *s, tt_ctx *c, const after_req *q,
		      tt_ctx_after **stop)
{
	tt_ctx *k = c->canc;
	if (k && k->refs == UINT32_MAX)
		return tt__err(-EOVERFLOW,
			       "tt_ctx_after_func: context has too many "
			       "references");
	ctx_after *a = tt__obj_alloc(s, sizeof *a, TT__OBJ_CTX_AFTER);
	if (a == NULL)
		return tt__err(-ENOMEM,
			       "tt_ctx_after_func: out of memory for a record");
	memset((char *)a + sizeof a->hdr, 0, sizeof *a - sizeof a->hdr);
	a->sched = s;
	a->ctx = k;
	a->fn = q->fn;
	a->arg = q->arg;
	a->parent_id = q->parent_id;
	a->pc = q->pc;
	a->leak_scope = q->leak_scope;
	if (k)
		k->refs++;
	*stop = tt__obj_handle(a);
	if (k && k->err) {
		/* Already done: f runs at once, in its own goroutine. */
		after_start(s, a);
	} else if (k) {
		a->next = k->afters;
		if (k->afters)
			k->afters->prev = a;
		k->afters = a;
	}
	return 0;
}

/* Another thread's AfterFunc, on the context's thread; its goroutine
 * runs there (Go runs f in a goroutine of its own, wherever). */
static void run_after(tt__sched *s, tt__post *p)
{
	tt_ctx *c = post_ctx(s, p);
	if (c == NULL)
		return;
	after_req q;
	memcpy(&q, p->val, sizeof q);
	tt_ctx_after *stop = NULL;
	p->result = after_make(s, c, &q, &stop);
	if (p->result)
		snprintf(p->msg, sizeof p->msg, "%s", tt_last_error());
	p->value = (int64_t)(uintptr_t)stop;
	tt__post_answer(p);
}

__attribute__((noinline)) int tt_ctx_after_func(tt_ctx *h, void (*fn)(void *),
						void *arg, tt_ctx_after **stop)
{
	if (stop)
		*stop = NULL;
	tt_ctx *c;
	int r = ctx_check_any(h, &c, "tt_ctx_after_func", true);
	if (r < 0)
		return r;
	if (fn == NULL)
		return tt__err(-EINVAL, "tt_ctx_after_func: fn is NULL");
	tt__sched *s = tt__sched_get();
	after_req q = {fn, arg, s->current->id, __builtin_return_address(0),
		       s->current->leak_scope};
	tt_ctx_after *handle = NULL;
	if (r == REMOTE) {
		tt__post *p = tt__post_new(sizeof q, "tt_ctx_after_func");
		if (p == NULL)
			return -ENOMEM;
		p->run = run_after;
		p->h = h;
		memcpy(p->val, &q, sizeof q);
		r = tt__post_call(s, c->sched, p, TT_WAIT_SYSCALL, c);
		if (r) {
			free(p);
			return r;
		}
		handle = (tt_ctx_after *)(uintptr_t)p->value;
		r = tt__post_done(p);
	} else {
		r = after_make(s, c, &q, &handle);
	}
	if (r == 0 && stop)
		*stop = handle;
	return r;
}

/* Stop's body, on the record's thread. */
static bool after_stop_now(tt__sched *s, ctx_after *a)
{
	if (a->started)
		return false;
	tt_ctx *k = a->ctx;
	if (k)
		after_unlink(a);
	tt__obj_free(s, a, sizeof *a);
	if (k)
		ctx_release(k, NULL);
	return true;
}

static void run_after_stop(tt__sched *s, tt__post *p)
{
	ctx_after *a = tt__obj_ptr(p->h);
	/* Started or stopped meanwhile: the handle is dead, and Stop says
	 * false, as it does for a started one. */
	p->value = tt__obj_is(p->h, TT__OBJ_CTX_AFTER) && a->sched == s &&
		   after_stop_now(s, a);
	tt__post_answer(p);
}

bool tt_ctx_after_stop(tt_ctx_after *h)
{
	if (h == NULL) {
		tt__err(-EINVAL, "tt_ctx_after_stop: NULL handle");
		return false;
	}
	ctx_after *a = tt__obj_ptr(h);
	if (!tt__obj_is(h, TT__OBJ_CTX_AFTER)) {
		tt__err(-EBADF,
			"tt_ctx_after_stop: %p is not a live stop handle (its "
			"function was started, or it was stopped, or never "
			"made)",
			(void *)h);
		return false;
	}
	tt__sched *s = tt__sched_get();
	if (a->sched != s) {
		tt__post *p = tt__post_new(0, "tt_ctx_after_stop");
		if (p == NULL)
			return false;
		p->run = run_after_stop;
		p->h = h;
		if (tt__post_call(s, a->sched, p, TT_WAIT_SYSCALL, a) != 0) {
			free(p);
			return false;
		}
		bool stopped = p->value != 0;
		(void)tt__post_done(p);
		return stopped;
	}
	return after_stop_now(s, a);
}

/* ---- names (Go's String methods) ------------------------------------------ */

typedef struct sbuf {
	char *p;
	size_t n, len; /* room, and what would have been written */
} sbuf;

static void sb_put(sbuf *b, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
static void sb_put(sbuf *b, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	size_t at = b->len < b->n ? b->len : b->n;
	int w = vsnprintf(b->p ? b->p + at : NULL, b->n - at, fmt, ap);
	va_end(ap);
	if (w > 0)
		b->len += (size_t)w;
}

/* The part of Go's String that c adds to its parent's; pre is printed
 * before the parent's name. */
static void name_part(sbuf *b, const tt_ctx *c, bool pre)
{
	if (c->bridge)
		return;
	if (pre) {
		if (c->label_pre)
			sb_put(b, "%s", c->label_pre);
		return;
	}
	if (c->label_post) {
		sb_put(b, "%s", c->label_post);
		return;
	}
	switch (c->kind) {
	case CTX_BACKGROUND:
		sb_put(b, "%s",
		       c == &todo ? "context.TODO" : "context.Background");
		break;
	case CTX_VALUE:
		sb_put(b, ".WithValue(%p, %p)", c->key, c->value);
		break;
	case CTX_WITHOUT:
		sb_put(b, ".WithoutCancel");
		break;
	default:
		/* Go's WithDeadline is a WithCancel when the parent's deadline
		 * comes first; so is it here. */
		if (c->deadline != c->parent->deadline) {
			int64_t left = c->deadline - tt_now();
			sb_put(b, ".WithDeadline(%lld [%s%lld.%06llds])",
			       (long long)c->deadline, left < 0 ? "-" : "",
			       (long long)(llabs(left) / TT_SECOND),
			       (long long)(llabs(left) % TT_SECOND / 1000));
		} else {
			sb_put(b, ".WithCancel");
		}
	}
}

int tt_ctx_string(tt_ctx *h, char *buf, size_t size)
{
	/* Every field it reads was fixed when its context was made: any
	 * thread may read them. */
	tt_ctx *c;
	int r = ctx_check_any(h, &c, "tt_ctx_string", true);
	if (r < 0)
		return r;
	if (buf == NULL && size)
		return tt__err(-EINVAL, "tt_ctx_string: buf is NULL");
	size_t depth = 0;
	for (tt_ctx *x = c; x; x = x->parent)
		depth++;
	tt_ctx **chain = malloc(depth * sizeof *chain);
	if (chain == NULL)
		return tt__err(-ENOMEM, "tt_ctx_string: out of memory");
	size_t i = depth;
	for (tt_ctx *x = c; x; x = x->parent)
		chain[--i] = x;
	sbuf b = {.p = buf, .n = size, .len = 0};
	if (size)
		buf[0] = '\0';
	for (i = depth; i-- > 0;)
		name_part(&b, chain[i], true);
	for (i = 0; i < depth; i++)
		name_part(&b, chain[i], false);
	free(chain);
	if (b.len > INT32_MAX)
		return tt__err(-EOVERFLOW, "tt_ctx_string: name too long");
	return (int)b.len;
}

/* ---- for other layers ------------------------------------------------------ */

int tt__ctx_with_stop(tt_ctx **out, tt_ctx *parent,
		      void (*stop)(void *, bool),
		      void *data, const char *label_pre,
		      const char *label_post, const char *op)
{
	int r = new_cancel(out, parent, op);
	if (r)
		return r;
	tt_ctx *c = *out;
	c->stop_fn = stop;
	c->stop_data = data;
	c->label_pre = label_pre;
	c->label_post = label_post;
	*out = ctx_handle(c);
	return 0;
}

int tt__ctx_cancel_quiet(tt_ctx *h)
{
	tt_ctx *c;
	int r = ctx_check(h, &c, "tt__ctx_cancel_quiet");
	if (r)
		return r;
	if (c->kind == CTX_CANCEL && c->err == 0)
		cancel_tree(c->sched, c, -ECANCELED);
	return 0;
}
