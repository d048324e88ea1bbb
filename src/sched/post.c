/* tether — posts: one thread's operations on another thread's objects.
 *
 * Design notes
 * ------------
 * Every object belongs to the scheduler of the thread that made it, and
 * that thread alone reads and writes it, so the channel and sync code
 * needs no lock. Another thread uses an object by asking its owner: it
 * fills a post (internal.h, struct tt__post), pushes it onto the owner's
 * inbox and parks its goroutine until the answer comes back through its
 * own inbox. A plain pthread is no different: it has a scheduler of its
 * own (made on first use), whose first goroutine is the thread, and the
 * park blocks the thread in its idle wait.
 *
 * The inbox is a stack of posts that any thread pushes with a
 * compare-and-swap and that the owner takes whole with one exchange,
 * then reverses, so posts run in the order they came (Vyukov's
 * intrusive MPSC stack). The owner looks at it at every park (one relaxed
 * load, in maybe_run_timers), at every yield and in its idle wait.
 *
 * Waking: before the owner sleeps it says how in s->sleep — a futex wait
 * (TT__SLEEP_TIMER with a deadline, TT__SLEEP_IDLE with none), or a wait
 * in the poller (TT__SLEEP_POLL) — with a sequentially consistent store,
 * then looks at the inbox once more. A poster pushes, then swaps s->sleep
 * to TT__SLEEP_AWAKE and wakes what it found: the futex, or the eventfd
 * in the owner's epoll set. One of the two always sees the other (the
 * store and the swap are ordered against the push and the second look),
 * so no post sleeps in an inbox.
 *
 * Deadlock: a scheduler asleep with no timer and no descriptor can only
 * be woken by a post. It counts itself in idle_threads while so asleep;
 * the poster that wakes it (or the sleeper itself, when its futex wait
 * ends) takes it out again, whoever swaps s->sleep first. When the count,
 * with tether's own helper threads, covers every thread of the process
 * (/proc/self/stat), and no post is in flight meanwhile (counters of posts
 * pushed and taken), no thread is left that could post: that is Go's "all
 * goroutines are asleep". A thread tether does not know of (one that never
 * called tether, a library's) always counts as awake, so it keeps the
 * report back rather than risk a false one; sleepers look again every
 * 200 ms, for threads that end.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/futex.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "internal.h"

static _Atomic long idle_threads;   /* schedulers asleep in TT__SLEEP_IDLE */
/* Posts pushed (counted before they reach an inbox) and posts taken out
 * of one (run, or failed when the thread ends): none is in flight when
 * the two agree. A thread counts itself idle before its last look at its
 * inbox, so the idle count alone could include a thread with a post
 * waiting for it. */
static _Atomic uint64_t posts_pushed, posts_taken;
static _Atomic uint64_t post_seq = 1; /* tt__post.seq */
static _Atomic long helper_threads; /* tether's own threads */
/* Threads that were there before the program ran: never a poster. */
static long runtime_threads;

uint64_t tt__posts_pushed(void)
{
	return atomic_load_explicit(&posts_pushed, memory_order_relaxed);
}

#define IDLE_RECHECK (200 * TT_MILLISECOND)
/* How long a thread that has just talked to another looks at its inbox
 * before it sleeps: a round trip between two awake threads costs well
 * under this, a futex wake-up several microseconds. */
#define SPIN_NS (20 * TT_MICROSECOND)

static int ncpus = 1; /* CPUs the process may run on, at start */

__attribute__((constructor)) static void count_cpus(void)
{
	cpu_set_t set;
	if (sched_getaffinity(0, sizeof set, &set) == 0)
		ncpus = CPU_COUNT(&set);
}

/* Whether a post reaches s's inbox within SPIN_NS (or by deadline, if
 * sooner), looked for only when s has just traded posts and another CPU
 * can be running the other side. */
static bool spin_for_post(tt__sched *s, int64_t deadline)
{
	if (!s->spin || ncpus < 2)
		return false;
	s->spin = false;
	int64_t end = tt_now() + SPIN_NS;
	if (deadline >= 0 && deadline < end)
		end = deadline;
	for (unsigned i = 1;; i++) {
		if (atomic_load_explicit(&s->inbox, memory_order_acquire) !=
		    NULL)
			return true;
		tt__cpu_relax();
		if ((i & 63) == 0 && tt_now() >= end)
			return false;
	}
}

void tt__helper_thread(int delta)
{
	atomic_fetch_add_explicit(&helper_threads, delta, memory_order_seq_cst);
}

/* The process's threads: field 20 of /proc/self/stat, or the entries
 * of /proc/self/task where that field is 0 (qemu-user writes little of
 * its stat); -1 if neither can be read. */
long tt__proc_threads(void)
{
	int fd = open("/proc/self/stat", O_RDONLY | O_CLOEXEC);
	if (fd >= 0) {
		char buf[1024];
		ssize_t n = read(fd, buf, sizeof buf - 1);
		close(fd);
		buf[n > 0 ? n : 0] = '\0';
		/* The command name (field 2) is in parentheses and may
		 * hold anything: the fields after it follow the last ')'. */
		char *p = strrchr(buf, ')');
		/* Fields 3 to 19, then num_threads. */
		for (int field = 2; p != NULL && field < 20; field++)
			p = strchr(p + 1, ' ');
		long v = p != NULL ? strtol(p + 1, NULL, 10) : 0;
		if (v > 0)
			return v;
	}
	DIR *d = opendir("/proc/self/task");
	if (d == NULL)
		return -1;
	long n = 0;
	for (struct dirent *e; (e = readdir(d)) != NULL;)
		n += e->d_name[0] != '.';
	closedir(d);
	return n > 0 ? n : -1;
}

/* Threads that run before main and are no program's: ThreadSanitizer's
 * and AddressSanitizer's background threads, qemu-user's own. Counted in
 * the first constructor to run, when only the main thread should exist. */
__attribute__((constructor(101))) static void count_runtime_threads(void)
{
	long n = tt__proc_threads();
	runtime_threads = n > 1 ? n - 1 : 0;
}

/* Whether every thread of the process sleeps where only a post could
 * wake it, tether's helpers counted so, but for `awake` of them (the
 * caller, if it is not about to sleep). The caller of all_asleep is one
 * of them.
 *
 * The idle count is read while no post is in flight and none is pushed:
 * pushed == taken when taken is read, and pushed has not moved from the
 * first read to the last. Then a thread counted idle has an empty inbox
 * and nothing else that could wake it (no timer, no descriptor, nothing
 * runnable), and stays so: only a push could change it, and the pusher
 * would be an awake thread, which the count leaves out. */
static bool asleep_but(long awake)
{
	uint64_t pushed =
		atomic_load_explicit(&posts_pushed, memory_order_seq_cst);
	if (atomic_load_explicit(&posts_taken, memory_order_seq_cst) != pushed)
		return false;
	long idle = atomic_load_explicit(&idle_threads, memory_order_seq_cst);
	long helpers =
		atomic_load_explicit(&helper_threads, memory_order_seq_cst);
	long n = tt__proc_threads();
	if (n < 0)
		return false; /* cannot know: never a false report */
	if (atomic_load_explicit(&posts_pushed, memory_order_seq_cst) != pushed)
		return false;
	return idle + helpers + runtime_threads + awake >= n;
}

static bool all_asleep(void)
{
	return asleep_but(0);
}

bool tt__others_asleep(void)
{
	return asleep_but(1);
}

static void futex_wake(_Atomic int *w)
{
	syscall(SYS_futex, (int *)w, FUTEX_WAKE_PRIVATE, 1, NULL, NULL, 0);
}

/* Wait while *w == val, until woken or the absolute CLOCK_MONOTONIC
 * deadline (tt_now's clock; -1: none). */
static void futex_wait_until(_Atomic int *w, int val, int64_t deadline)
{
	struct timespec ts, *tp = NULL;
	if (deadline >= 0) {
		ts.tv_sec = deadline / TT_SECOND;
		ts.tv_nsec = deadline % TT_SECOND;
		tp = &ts;
	}
	syscall(SYS_futex, (int *)w, FUTEX_WAIT_BITSET | FUTEX_PRIVATE_FLAG,
		val, tp, NULL, FUTEX_BITSET_MATCH_ANY);
}

/* The owner is awake: it counted itself idle if it slept so. */
static void woken(int was)
{
	if (was == TT__SLEEP_IDLE)
		atomic_fetch_sub_explicit(&idle_threads, 1,
					  memory_order_seq_cst);
}

/* Push n onto t's inbox and wake t: false if t's thread has ended. The
 * caller has counted itself in t->pushers: t's end (tt__inbox_close)
 * waits until the wake-up below is done with t's descriptor and n's
 * memory, which may be a goroutine record of t's. */
static bool push_node(tt__sched *t, tt__inbox_node *n)
{
	bool pushed = false;
	atomic_fetch_add_explicit(&posts_pushed, 1, memory_order_seq_cst);
	tt__inbox_node *head =
		atomic_load_explicit(&t->inbox, memory_order_relaxed);
	do {
		if (head == TT__INBOX_CLOSED) {
			atomic_fetch_add_explicit(&posts_taken, 1,
						  memory_order_seq_cst);
			goto out;
		}
		n->next = head;
	} while (!atomic_compare_exchange_weak_explicit(
		&t->inbox, &head, n, memory_order_seq_cst,
		memory_order_relaxed));
	pushed = true;
	int was = atomic_exchange_explicit(&t->sleep, TT__SLEEP_AWAKE,
					   memory_order_seq_cst);
	woken(was);
	if (was == TT__SLEEP_IDLE || was == TT__SLEEP_TIMER) {
		futex_wake(&t->sleep);
	} else if (was == TT__SLEEP_POLL) {
		uint64_t one = 1;
		TT_TSAN_SYNC(&t->wakefd); /* made before (poll.c) */
		/* Fails only on counter overflow: then it is readable. */
		(void)!write(t->wakefd, &one, sizeof one);
	}
out:
	atomic_fetch_sub_explicit(&t->pushers, 1, memory_order_release);
	return pushed;
}

static bool push(tt__sched *t, tt__post *p)
{
	atomic_fetch_add_explicit(&t->pushers, 1, memory_order_relaxed);
	return push_node(t, &p->node);
}

void tt__wake_remote(tt__g *g)
{
	g->wake_node.wake = g;
	/* Pinned by the caller (tt__wake_pin). A thread that has ended has
	 * no goroutine left to wake. */
	(void)push_node(g->sched, &g->wake_node);
}

tt__post *tt__post_new(size_t size, const char *op)
{
	tt__post *p = calloc(1, sizeof *p + size);
	if (p == NULL) {
		tt__err(-ENOMEM, "%s: out of memory", op);
		return NULL;
	}
	p->size = size;
	p->op = op;
	return p;
}

int tt__post_call(tt__sched *s, tt__sched *owner, tt__post *p, int reason,
		  const void *obj)
{
	/* A context-aware wait (its deadline INT64_MAX, arm_wait in ctx.c)
	 * whose context was cancelled before this post was made: the
	 * cancel has unlinked the goroutine (ctx_on) and will interrupt
	 * nothing more, so the post goes with its deadline passed (a step
	 * of a wait in several posts, a Cond's, is the one that finds
	 * this). */
	if (p->deadline == INT64_MAX && s->current->ctx_on == NULL)
		p->deadline = 1;
	p->from = s;
	p->to = owner;
	p->g = s->current;
	p->answered = false;
	p->seq = atomic_fetch_add_explicit(&post_seq, 1, memory_order_relaxed);
	TT_TSAN_SYNC(p); /* the owner sees what the asker did before */
	s->spin = true;
	if (!push(owner, p))
		return tt__err(-EPIPE,
			       "%s: %p belongs to a thread that has ended",
			       p->op, p->h);
	/* While it waits, its answer may come after this thread has ended
	 * (this goroutine not being the thread's first): the scheduler is
	 * then kept (sched.c), never handed to a new thread. */
	s->asking++;
	p->g->asking = p;
	while (!p->answered)
		tt__park(s, reason, obj);
	/* Proven leaked while its proxy waited (proven.c), it was answered
	 * after all: its object's owner ended. */
	if (TT_UNLIKELY(p->g->leak != NULL))
		p->g->leak = NULL;
	p->g->asking = NULL;
	s->asking--;
	TT_TSAN_SYNC(p); /* and the asker what the owner did for it */
	return 0;
}

int tt__post_done(tt__post *p)
{
	if (p->panic) {
		char msg[sizeof p->msg];
		memcpy(msg, p->msg, sizeof msg);
		free(p);
		tt__panic("%s", msg);
	}
	int r = p->result;
	if (r < 0 && p->msg[0]) {
		if (p->misuse)
			tt__misuse(r, "%s", p->msg);
		else
			tt__err(r, "%s", p->msg);
	}
	free(p);
	return r;
}

/* p leaves the list of posts a proxy of s holds. */
static void unhold(tt__sched *s, tt__post *p)
{
	if (!p->held)
		return;
	p->held = false;
	if (p->hprev)
		p->hprev->hnext = p->hnext;
	else
		s->held = p->hnext;
	if (p->hnext)
		p->hnext->hprev = p->hprev;
}

int tt__post_send(tt__sched *owner, tt__post *p)
{
	p->from = NULL;
	p->g = NULL;
	p->answered = false;
	TT_TSAN_SYNC(p);
	if (!push(owner, p)) {
		int r = p->quiet ? -EPIPE
				 : tt__err(-EPIPE,
					   "%s: %p belongs to a thread that "
					   "has ended",
					   p->op, p->h);
		free(p);
		return r;
	}
	return 0;
}

void tt__post_answer(tt__post *p)
{
	unhold(tt__tls_sched, p);
	p->run = NULL;
	TT_TSAN_SYNC(p);
	if (p->from == NULL) {
		/* Sent, not asked: nobody waits to read an error. */
		if (p->panic)
			tt__panic("%s", p->msg);
		if (p->result < 0 && p->msg[0] && !p->quiet)
			fprintf(stderr, "tether: %s\n", p->msg);
		free(p);
		return;
	}
	/* The asker's thread ended (it parked a goroutine that was not its
	 * first, and returned): nobody reads the answer. */
	if (!push(p->from, p))
		free(p);
}

void tt__post_fail(tt__post *p, int err, const char *fmt, ...)
{
	p->result = err;
	if (fmt) {
		va_list ap;
		va_start(ap, fmt);
		vsnprintf(p->msg, sizeof p->msg, fmt, ap);
		va_end(ap);
	}
	tt__post_answer(p);
}

void tt__post_panic(tt__post *p, const char *msg)
{
	p->panic = 1;
	snprintf(p->msg, sizeof p->msg, "%s", msg);
	tt__post_answer(p);
}

/* An interrupt for the post at `target` with sequence number seq (the
 * post may be answered and freed, its memory another post's, by the time
 * this runs: both must match one the owner holds). */
typedef struct interrupt {
	const tt__post *target;
	uint64_t seq;
} interrupt;

static void run_interrupt(tt__sched *s, tt__post *p)
{
	interrupt it;
	memcpy(&it, p->val, sizeof it);
	for (tt__post *h = s->held; h; h = h->hnext)
		if (h == it.target && h->seq == it.seq && h->proxy_g) {
			/* A proxy not in its wait yet (made by the post,
			 * taken from the inbox with this interrupt, it has
			 * not run) finds its deadline passed when it starts
			 * one; so does a proxy already woken, which waits no
			 * more. Only a context-aware wait's deadline
			 * (INT64_MAX, tt__post_call) is the cancel's to end:
			 * a plain wait of the same goroutine (a Cond's relock)
			 * is not. */
			if (!tt__wait_interrupt(s, h->proxy_g) &&
			    h->deadline == INT64_MAX)
				h->deadline = 1;
			break;
		}
	tt__post_answer(p);
}

void tt__post_interrupt(tt__g *g)
{
	tt__post *target = g->asking;
	if (target == NULL || target->answered)
		return;
	tt__post *p = tt__post_new(sizeof(interrupt), "context cancel");
	if (p == NULL)
		return; /* out of memory: the wait ends when its object does */
	interrupt it = {target, target->seq};
	memcpy(p->val, &it, sizeof it);
	p->run = run_interrupt;
	p->quiet = true;
	/* The owner: where the asker's post went (its object's thread). */
	(void)tt__post_send(target->to, p);
}

bool tt__post_proxy(tt__sched *s, tt__post *p, tt_func fn, const char *what)
{
	snprintf(p->name, sizeof p->name, "%s for goroutine %lld", what,
		 (long long)p->g->id);
	tt__spawn sp = {.fn = fn,
			.arg = p,
			.name = p->name,
			.parent_id = p->g->id,
			.proxy = true,
			.made = &p->proxy_g};
	if (tt__go_spawn(s, &sp) < 0)
		return false;
	p->held = true;
	p->hprev = NULL;
	p->hnext = s->held;
	if (s->held)
		s->held->hprev = p;
	s->held = p;
	return true;
}

void tt__inbox_run(tt__sched *s)
{
	tt__inbox_node *list = atomic_exchange_explicit(&s->inbox, NULL,
							memory_order_acquire);
	if (list == TT__INBOX_CLOSED) {
		atomic_store_explicit(&s->inbox, list, memory_order_relaxed);
		return;
	}
	tt__inbox_node *fifo = NULL;
	uint64_t taken = 0;
	while (list) {
		tt__inbox_node *next = list->next;
		list->next = fifo;
		fifo = list;
		list = next;
		taken++;
	}
	atomic_fetch_add_explicit(&posts_taken, taken, memory_order_seq_cst);
	s->spin = true;
	while (fifo) {
		tt__inbox_node *n = fifo;
		fifo = n->next;
		if (n->wake) {
			/* A waker on another thread took its waiter and
			 * carried the edge on the object it woke it from. */
			tt__g *g = n->wake;
			n->wake = NULL;
			tt__wait_wake(s, g);
			continue;
		}
		tt__post *p = (tt__post *)n;
		/* Goroutine switches do not synchronise under TSan: the
		 * post carries the edge between the two threads. */
		TT_TSAN_SYNC(p);
		if (p->run) {
			p->run(s, p);
		} else {
			/* An answer: its asker parked here. */
			p->answered = true;
			tt__ready(s, p->g);
		}
	}
}

bool tt__inbox_sleep(tt__sched *s, int64_t deadline, bool idle)
{
	if (spin_for_post(s, deadline))
		return true;
	int how = idle ? TT__SLEEP_IDLE : TT__SLEEP_TIMER;
	if (idle)
		atomic_fetch_add_explicit(&idle_threads, 1,
					  memory_order_seq_cst);
	atomic_store_explicit(&s->sleep, how, memory_order_seq_cst);
	if (atomic_load_explicit(&s->inbox, memory_order_seq_cst) == NULL) {
		if (idle && all_asleep()) {
			int was = atomic_exchange_explicit(
				&s->sleep, TT__SLEEP_AWAKE,
				memory_order_seq_cst);
			woken(was);
			/* Still asleep and nothing came: nobody can post. */
			return !(was == TT__SLEEP_IDLE &&
				 atomic_load_explicit(&s->inbox,
						      memory_order_seq_cst) ==
					 NULL);
		}
		if (idle)
			deadline = tt_now() + IDLE_RECHECK;
		futex_wait_until(&s->sleep, how, deadline);
	}
	woken(atomic_exchange_explicit(&s->sleep, TT__SLEEP_AWAKE,
				       memory_order_seq_cst));
	return true;
}

bool tt__inbox_poll_begin(tt__sched *s)
{
	atomic_store_explicit(&s->sleep, TT__SLEEP_POLL, memory_order_seq_cst);
	if (atomic_load_explicit(&s->inbox, memory_order_seq_cst) == NULL)
		return true;
	atomic_store_explicit(&s->sleep, TT__SLEEP_AWAKE, memory_order_seq_cst);
	return false;
}

void tt__inbox_poll_end(tt__sched *s)
{
	atomic_store_explicit(&s->sleep, TT__SLEEP_AWAKE, memory_order_seq_cst);
}

void tt__inbox_close(tt__sched *s)
{
	tt__inbox_node *list = atomic_exchange_explicit(
		&s->inbox, TT__INBOX_CLOSED, memory_order_acquire);
	while (list && list != TT__INBOX_CLOSED) {
		tt__inbox_node *n = list;
		list = n->next;
		atomic_fetch_add_explicit(&posts_taken, 1, memory_order_seq_cst);
		if (n->wake)
			continue; /* a goroutine of this thread: it is gone */
		tt__post *p = (tt__post *)n;
		if (p->run && p->dropped)
			p->dropped(p);
		if (p->run)
			tt__post_fail(p, -EPIPE,
				      "%s: %p belongs to a thread that has "
				      "ended",
				      p->op, p->h);
		else
			free(p); /* an answer to a goroutine that is gone */
	}
	/* Posts the thread's goroutines were waiting on for others. */
	while (s->held) {
		tt__post *p = s->held;
		tt__post_fail(p, -EPIPE,
			      "%s: the thread that owns %p ended while this "
			      "waited",
			      p->op, p->h);
	}
	/* A push that got in before the close may still be waking this
	 * thread (its descriptor) or be about to write a goroutine's wake
	 * node: short, and it never waits for this thread. */
	for (unsigned i = 0;
	     atomic_load_explicit(&s->pushers, memory_order_acquire); i++) {
		if (i % 128 == 127)
			sched_yield();
		else
			tt__cpu_relax();
	}
}
