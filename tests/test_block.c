/* The block and mutex profiles (tt_set_block_profile_rate,
 * tt_set_mutex_profile_fraction, tt_profile_write("block"/"mutex"),
 * /debug/pprof/block and /mutex): every blocking kind recorded at rate 1
 * with the stack of its blocking call (public call on top, then the
 * function and file:line that made it) and a delay no shorter than the
 * wait; sleeps and descriptor waits not recorded; nothing when off; the
 * mutex profile's unlocker stacks and sampling fraction; both profiles
 * read by `go tool pprof`; Go's debug=1 layout; bad names refused.
 *
 * The profiles are process-wide and keep every record for the life of the
 * process, so each check looks for the records of functions of its own
 * (blk_*, off_*, ...), which no other test blocks in. */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "profile/profile.h"
#include "testutil.h"

#define WAIT (30 * TT_MILLISECOND)
#define NI __attribute__((noinline))

/* ---- reading the profiles ------------------------------------------------ */

typedef struct membuf {
	char *p;
	size_t len, cap;
} membuf;

static int mem_write(void *arg, const void *data, size_t len)
{
	membuf *m = arg;
	if (m->len + len + 1 > m->cap) {
		size_t cap = (m->len + len + 1) * 2;
		char *p = realloc(m->p, cap);
		if (p == NULL)
			return -ENOMEM;
		m->p = p;
		m->cap = cap;
	}
	memcpy(m->p + m->len, data, len);
	m->len += len;
	m->p[m->len] = '\0';
	return 0;
}

static char *profile_text(const char *name)
{
	membuf m = {0};
	TU_ASSERT_OK(tt_profile_write(name, 1, mem_write, &m));
	TU_ASSERT(m.p != NULL);
	return m.p;
}

/* Of the debug=1 text, the records whose second frame line is function
 * `fn` (at test_block.c:line, when line > 0) under a first frame line of
 * the public call `top`: their summed count and delay. Returns how many
 * records matched. */
static int find_records(const char *text, const char *top, const char *fn,
			int line, long long *count, long long *delay)
{
	*count = *delay = 0;
	int found = 0;
	const char *rec = strstr(text, "\n\n");
	/* Past the header lines: the first record follows them. */
	const char *p = strchr(text, '\n');
	p = p ? strchr(p + 1, '\n') : NULL;
	if (p && strncmp(p + 1, "sampling period=", 16) == 0)
		p = strchr(p + 1, '\n');
	rec = p ? p + 1 : NULL;
	while (rec && *rec) {
		const char *end = strstr(rec, "\n\n");
		size_t len = end ? (size_t)(end - rec) : strlen(rec);
		char *one = strndup(rec, len);
		TU_ASSERT(one != NULL);
		char *l0 = one, *l1 = strchr(l0, '\n');
		char *l2 = l1 ? strchr(l1 + 1, '\n') : NULL;
		if (l1 && l2) {
			*l1++ = '\0';
			*l2++ = '\0';
			char *l3 = strchr(l2, '\n');
			if (l3)
				*l3 = '\0';
			char want_top[128], want_fn[128], want_at[64];
			snprintf(want_top, sizeof want_top, "\t%s+", top);
			snprintf(want_fn, sizeof want_fn, "\t%s+", fn);
			snprintf(want_at, sizeof want_at, "test_block.c:%d",
				 line);
			if (strncmp(l1, "#\t0x", 4) == 0 &&
			    strstr(l1, want_top) && strstr(l2, want_fn) &&
			    (line <= 0 || strstr(l2, want_at))) {
				long long d = 0, c = 0;
				TU_ASSERT_EQ(sscanf(l0, "%lld %lld @", &d, &c),
					     2);
				*delay += d;
				*count += c;
				found++;
			}
		}
		free(one);
		rec = end ? end + 2 : NULL;
	}
	return found;
}

/* ---- blocking in each way ---------------------------------------------- */

enum { B_RECV, B_SEND, B_SELECT, B_WG, B_MUTEX, B_RWLOCK, B_RWRLOCK,
       B_COND, B_ONCE, B_N };
static int blk_line[B_N];

typedef struct ctx {
	tt_chan *c, *c2;
	tt_waitgroup *wg;
	tt_mutex *m;
	tt_rwmutex *rw;
	tt_cond *cond;
	tt_once *once;
	int kind;
	_Atomic bool signalled;
	/* Set by the blocking goroutine right before its blocking call, so
	 * whoever sees it set knows that goroutine is parked (nothing yields
	 * in between). */
	_Atomic bool parked;
	/* Set by the waker once it holds what the blocking call is to wait
	 * for (the lock, the once): the call is made after that. */
	_Atomic bool ready;
	tt_chan *done;
} ctx;

/* Once x's blocker is parked, WAIT: the wait it sees is at least that. */
static void sleep_after_park(ctx *x)
{
	TU_WAIT_FOR(x->parked, 10 * TT_SECOND);
	x->parked = false;
	TU_ASSERT_OK(tt_sleep(WAIT));
}

static void once_fn(void *arg)
{
	ctx *x = arg;
	x->ready = true;
	sleep_after_park(x);
}

/* Sleeps WAIT once the main goroutine is parked, then does what ends its
 * wait (for the lock kinds, it takes the lock first, and says so in
 * x->ready: it may run on another P, after the main goroutine went on). */
static void waker(void *arg)
{
	ctx *x = arg;
	int v = 7;
	switch (x->kind) {
	case B_MUTEX:
		TU_ASSERT_OK(tt_mutex_lock(x->m));
		break;
	case B_RWLOCK:
		TU_ASSERT_OK(tt_rwmutex_rlock(x->rw));
		break;
	case B_RWRLOCK:
		TU_ASSERT_OK(tt_rwmutex_lock(x->rw));
		break;
	case B_ONCE:
		TU_ASSERT_OK(tt_once_do(x->once, once_fn, x));
		tu_done(x->done);
		return;
	}
	x->ready = true;
	sleep_after_park(x);
	switch (x->kind) {
	case B_RECV:
		TU_ASSERT_OK(tt_send(x->c, &v));
		break;
	case B_SEND:
		TU_ASSERT_OK(tt_recv(x->c, &v, NULL));
		break;
	case B_SELECT:
		TU_ASSERT_OK(tt_send(x->c2, &v));
		break;
	case B_WG:
		TU_ASSERT_OK(tt_wg_done(x->wg));
		break;
	case B_MUTEX:
		TU_ASSERT_OK(tt_mutex_unlock(x->m));
		break;
	case B_RWLOCK:
		TU_ASSERT_OK(tt_rwmutex_runlock(x->rw));
		break;
	case B_RWRLOCK:
		TU_ASSERT_OK(tt_rwmutex_unlock(x->rw));
		break;
	case B_COND:
		TU_ASSERT_OK(tt_mutex_lock(x->m));
		x->signalled = true;
		TU_ASSERT_OK(tt_mutex_unlock(x->m));
		/* After the unlock: a waiter woken on another P would else
		 * block again in its relock, a second event. */
		TU_ASSERT_OK(tt_cond_signal(x->cond));
		break;
	}
	tu_done(x->done);
}

/* One function per kind, each blocking once at the line it records. */
static NI void blk_recv(ctx *x)
{
	int v; blk_line[B_RECV] = __LINE__; x->parked = true; int r = tt_recv(x->c, &v, NULL);
	TU_ASSERT_OK(r);
}

static NI void blk_send(ctx *x)
{
	int v = 1; blk_line[B_SEND] = __LINE__; x->parked = true; int r = tt_send(x->c, &v);
	TU_ASSERT_OK(r);
}

static NI void blk_select(ctx *x)
{
	int v;
	tt_case cs[2] = {TT_CASE_RECV_INTO(x->c, &v, NULL),
			 TT_CASE_RECV_INTO(x->c2, &v, NULL)};
	blk_line[B_SELECT] = __LINE__; x->parked = true; int r = tt_select(cs, 2, TT_FOREVER);
	TU_ASSERT_EQ(r, 1);
}

static NI void blk_wg(ctx *x)
{
	blk_line[B_WG] = __LINE__; x->parked = true; int r = tt_wg_wait(x->wg);
	TU_ASSERT_OK(r);
}

static NI void blk_mutex(ctx *x)
{
	blk_line[B_MUTEX] = __LINE__; x->parked = true; int r = tt_mutex_lock(x->m);
	TU_ASSERT_OK(r);
	TU_ASSERT_OK(tt_mutex_unlock(x->m));
}

static NI void blk_rwlock(ctx *x)
{
	blk_line[B_RWLOCK] = __LINE__; x->parked = true; int r = tt_rwmutex_lock(x->rw);
	TU_ASSERT_OK(r);
	TU_ASSERT_OK(tt_rwmutex_unlock(x->rw));
}

static NI void blk_rwrlock(ctx *x)
{
	blk_line[B_RWRLOCK] = __LINE__; x->parked = true; int r = tt_rwmutex_rlock(x->rw);
	TU_ASSERT_OK(r);
	TU_ASSERT_OK(tt_rwmutex_runlock(x->rw));
}

static NI void blk_cond(ctx *x)
{
	TU_ASSERT_OK(tt_mutex_lock(x->m));
	while (!x->signalled) {
		blk_line[B_COND] = __LINE__; x->parked = true; int r = tt_cond_wait(x->cond);
		TU_ASSERT_OK(r);
	}
	TU_ASSERT_OK(tt_mutex_unlock(x->m));
}

static NI void blk_once(ctx *x)
{
	blk_line[B_ONCE] = __LINE__; x->parked = true; int r = tt_once_do(x->once, once_fn, x);
	TU_ASSERT_OK(r);
}

static const struct kind {
	const char *fn, *top;
	void (*run)(ctx *);
} kinds[B_N] = {
	[B_RECV] = {"blk_recv", "tt_chan_recv", blk_recv},
	[B_SEND] = {"blk_send", "tt_chan_send", blk_send},
	[B_SELECT] = {"blk_select", "tt_select", blk_select},
	[B_WG] = {"blk_wg", "tt_wg_wait", blk_wg},
	[B_MUTEX] = {"blk_mutex", "tt_mutex_lock", blk_mutex},
	[B_RWLOCK] = {"blk_rwlock", "tt_rwmutex_lock", blk_rwlock},
	[B_RWRLOCK] = {"blk_rwrlock", "tt_rwmutex_rlock", blk_rwrlock},
	[B_COND] = {"blk_cond", "tt_cond_wait", blk_cond},
	[B_ONCE] = {"blk_once", "tt_once_do", blk_once},
};

static void make_all(ctx *x)
{
	*x = (ctx){0};
	TU_ASSERT_OK(tt_chan_make(&x->c, sizeof(int), 0));
	TU_ASSERT_OK(tt_chan_make(&x->c2, sizeof(int), 0));
	TU_ASSERT_OK(tt_wg_make(&x->wg));
	TU_ASSERT_OK(tt_mutex_make(&x->m));
	TU_ASSERT_OK(tt_rwmutex_make(&x->rw));
	TU_ASSERT_OK(tt_cond_make(&x->cond, x->m));
	TU_ASSERT_OK(tt_once_make(&x->once));
	x->done = tu_chan(0, 1);
}

static void free_all(ctx *x)
{
	TU_ASSERT_OK(tt_chan_release(x->c));
	TU_ASSERT_OK(tt_chan_release(x->c2));
	TU_ASSERT_OK(tt_wg_release(x->wg));
	TU_ASSERT_OK(tt_cond_release(x->cond));
	TU_ASSERT_OK(tt_mutex_release(x->m));
	TU_ASSERT_OK(tt_rwmutex_release(x->rw));
	TU_ASSERT_OK(tt_once_release(x->once));
	TU_ASSERT_OK(tt_chan_release(x->done));
}

/* Block once in kind k (waking after WAIT); the wall time it took. */
static int64_t block_once(int k)
{
	ctx x;
	make_all(&x);
	x.kind = k;
	if (k == B_WG)
		TU_ASSERT_OK(tt_wg_add(x.wg, 1));
	tu_go(waker, &x);
	TU_WAIT_FOR(x.ready, 10 * TT_SECOND);
	int64_t t0 = tt_now();
	kinds[k].run(&x);
	int64_t t = tt_now() - t0;
	TU_WAIT_DONE(x.done, 1, 10 * TT_SECOND);
	free_all(&x);
	return t;
}

/* ---- the tests ------------------------------------------------------------ */

static NI void off_recv(tt_chan *c)
{
	int v;
	int r = tt_recv(c, &v, NULL);
	TU_ASSERT_OK(r);
}

static void off_sender(void *arg)
{
	int v = 1;
	TU_ASSERT_OK(tt_sleep(5 * TT_MILLISECOND));
	TU_ASSERT_OK(tt_send((tt_chan *)arg, &v));
}

static NI void off_unlock(tt_mutex *m)
{
	TU_ASSERT_OK(tt_mutex_unlock(m));
}

typedef struct off_lock {
	tt_mutex *m;
	tt_chan *done;
} off_lock;

static void off_locker(void *arg)
{
	off_lock *o = arg;
	TU_ASSERT_OK(tt_mutex_lock(o->m));
	TU_ASSERT_OK(tt_mutex_unlock(o->m));
	tu_done(o->done);
}

/* Off (the default): blocking and contended unlocks leave no record. */
static void test_off_records_nothing(void **state)
{
	(void)state;
	tt_set_block_profile_rate(0);
	TU_ASSERT_EQ(tt_set_mutex_profile_fraction(-1), 0);
	tt_chan *c = tu_chan(sizeof(int), 0);
	tt_mutex *m;
	TU_ASSERT_OK(tt_mutex_make(&m));
	off_lock o = {.done = tu_chan(0, 3)};
	o.m = m;
	for (int i = 0; i < 3; i++) {
		tu_go(off_sender, c);
		off_recv(c);
		TU_ASSERT_OK(tt_mutex_lock(m));
		tu_go(off_locker, &o); /* parks on m */
		off_unlock(m);
		tu_pause();
	}
	/* With two Ps a locker may still be on its way: m outlives it. */
	TU_WAIT_DONE(o.done, 3, 10 * TT_SECOND);
	char *b = profile_text("block"), *mu = profile_text("mutex");
	TU_ASSERT_NOT_CONTAINS(b, "off_recv");
	TU_ASSERT_NOT_CONTAINS(mu, "off_unlock");
	free(b);
	free(mu);
	TU_ASSERT_OK(tt_mutex_release(m));
	TU_ASSERT_OK(tt_chan_release(c));
}

static NI void blk_sleep(void)
{
	TU_ASSERT_OK(tt_sleep(WAIT));
}

static NI void blk_fdwait(int fd)
{
	TU_ASSERT_GT(tt_fd_wait(fd, TT_FD_READ, tt_deadline_in(10 * TT_SECOND)),
		     0);
}

typedef struct pipe_job {
	int fd;
	tt_chan *done;
} pipe_job;

static void pipe_writer(void *arg)
{
	pipe_job *j = arg;
	TU_ASSERT_OK(tt_sleep(WAIT));
	TU_ASSERT_EQ(write(j->fd, "x", 1), 1);
	tu_done(j->done);
}

/* Rate 1: every kind, with its stack and a delay within the wait. */
static void test_block_rate1_each_kind(void **state)
{
	(void)state;
	tt_set_block_profile_rate(1);
	int64_t took[B_N];
	for (int k = 0; k < B_N; k++)
		took[k] = block_once(k);
	blk_sleep();
	int p[2];
	TU_ASSERT_EQ(pipe(p), 0);
	pipe_job j = {.fd = p[1], .done = tu_chan(0, 0)};
	tu_go(pipe_writer, &j);
	blk_fdwait(p[0]);
	tt_set_block_profile_rate(0);
	TU_WAIT_DONE(j.done, 1, 10 * TT_SECOND); /* done with p[1] */
	tt_chan_release(j.done);
	close(p[0]);
	close(p[1]);

	char *text = profile_text("block");
	TU_ASSERT_MSG(strncmp(text, "--- contention:\ncycles/second=1000000000\n",
			      41) == 0,
		      "%.200s", text);
	for (int k = 0; k < B_N; k++) {
		long long count, delay;
		int n = find_records(text, kinds[k].top, kinds[k].fn,
				     blk_line[k], &count, &delay);
		TU_ASSERT_MSG(n == 1, "%s (%s at test_block.c:%d): %d records "
				      "in\n%s",
			      kinds[k].fn, kinds[k].top, blk_line[k], n, text);
		TU_ASSERT_EQ(count, 1);
		/* The waker slept WAIT once the call had parked; the delay
		 * is inside the call's own wall time. */
		TU_ASSERT_GE(delay, WAIT);
		TU_ASSERT_LE(delay, took[k]);
	}
	TU_ASSERT_NOT_CONTAINS(text, "blk_sleep");
	TU_ASSERT_NOT_CONTAINS(text, "blk_fdwait");
	free(text);
}

/* A rate above the delay samples: events at least `rate` long are
 * recorded once each, with their own delay. */
static NI void rate_recv(ctx *x)
{
	int v;
	x->parked = true; int r = tt_recv(x->c, &v, NULL);
	TU_ASSERT_OK(r);
}

static void rate_sender(void *arg)
{
	ctx *x = arg;
	int v = 1;
	for (int i = 0; i < 3; i++) {
		sleep_after_park(x);
		TU_ASSERT_OK(tt_send(x->c, &v));
	}
}

static void test_block_rate_long_events(void **state)
{
	(void)state;
	ctx x = {.c = tu_chan(sizeof(int), 0)};
	tt_chan *c = x.c;
	tt_set_block_profile_rate(WAIT / 2);
	tu_go(rate_sender, &x);
	int64_t t0 = tt_now();
	for (int i = 0; i < 3; i++)
		rate_recv(&x);
	int64_t took = tt_now() - t0;
	tt_set_block_profile_rate(0);
	char *text = profile_text("block");
	long long count, delay;
	/* (A compiler that unrolls the loop makes a record per call.) */
	TU_ASSERT_GE(find_records(text, "tt_chan_recv", "rate_recv", 0, &count,
				  &delay),
		     1);
	TU_ASSERT_EQ(count, 3);
	TU_ASSERT_GE(delay, 3 * WAIT);
	TU_ASSERT_LE(delay, took);
	free(text);
	TU_ASSERT_OK(tt_chan_release(c));
}

/* ---- the mutex profile ------------------------------------------------------ */

typedef struct lockpair {
	tt_mutex *m;
	tt_rwmutex *rw;
	tt_chan *done;
	int line;
	bool parked; /* as ctx's: the main goroutine is parked on the lock */
	_Atomic bool held; /* the holder has the lock (it may run on
			      another P, after the main goroutine went on) */
} lockpair;

static void lock_sleep_after_park(lockpair *lp)
{
	TU_WAIT_FOR(lp->parked, 10 * TT_SECOND);
	lp->parked = false;
	TU_ASSERT_OK(tt_sleep(WAIT));
}

static NI void mu_unlock_here(lockpair *lp)
{
	lock_sleep_after_park(lp);
	lp->line = __LINE__; int r = tt_mutex_unlock(lp->m);
	TU_ASSERT_OK(r);
}

static void mu_holder(void *arg)
{
	lockpair *lp = arg;
	TU_ASSERT_OK(tt_mutex_lock(lp->m));
	lp->held = true;
	mu_unlock_here(lp);
	tu_done(lp->done);
}

static NI void rw_unlock_here(lockpair *lp)
{
	lock_sleep_after_park(lp);
	TU_ASSERT_OK(tt_rwmutex_unlock(lp->rw));
}

static void rw_holder(void *arg)
{
	lockpair *lp = arg;
	TU_ASSERT_OK(tt_rwmutex_lock(lp->rw));
	lp->held = true;
	rw_unlock_here(lp);
	tu_done(lp->done);
}

/* Fraction 1: a contended unlock records the waiter's delay with the
 * unlocker's stack. */
static void test_mutex_profile(void **state)
{
	(void)state;
	TU_ASSERT_EQ(tt_set_mutex_profile_fraction(1), 0);
	TU_ASSERT_EQ(tt_set_mutex_profile_fraction(-1), 1);
	lockpair lp = {.done = tu_chan(0, 2)};
	TU_ASSERT_OK(tt_mutex_make(&lp.m));
	TU_ASSERT_OK(tt_rwmutex_make(&lp.rw));
	tu_go(mu_holder, &lp);
	TU_WAIT_FOR(lp.held, 10 * TT_SECOND);
	lp.held = false;
	int64_t t0 = tt_now();
	lp.parked = true;
	TU_ASSERT_OK(tt_mutex_lock(lp.m)); /* waits for mu_holder */
	int64_t took = tt_now() - t0;
	TU_ASSERT_OK(tt_mutex_unlock(lp.m)); /* uncontended: no event */
	tu_go(rw_holder, &lp);
	TU_WAIT_FOR(lp.held, 10 * TT_SECOND);
	lp.parked = true;
	TU_ASSERT_OK(tt_rwmutex_rlock(lp.rw));
	TU_ASSERT_OK(tt_rwmutex_runlock(lp.rw));
	TU_WAIT_DONE(lp.done, 2, 10 * TT_SECOND);
	TU_ASSERT_EQ(tt_set_mutex_profile_fraction(0), 1);

	char *text = profile_text("mutex");
	TU_ASSERT_MSG(strncmp(text, "--- mutex:\ncycles/second=1000000000\n"
				    "sampling period=0\n",
			      54) == 0,
		      "%.200s", text);
	long long count, delay;
	TU_ASSERT_EQ(find_records(text, "tt_mutex_unlock", "mu_unlock_here",
				  lp.line, &count, &delay),
		     1);
	TU_ASSERT_EQ(count, 1);
	TU_ASSERT_GE(delay, WAIT);
	TU_ASSERT_LE(delay, took);
	TU_ASSERT_EQ(find_records(text, "tt_rwmutex_unlock", "rw_unlock_here",
				  0, &count, &delay),
		     1);
	TU_ASSERT_EQ(count, 1);
	TU_ASSERT_GE(delay, WAIT);
	free(text);
	TU_ASSERT_OK(tt_mutex_release(lp.m));
	TU_ASSERT_OK(tt_rwmutex_release(lp.rw));
	TU_ASSERT_OK(tt_chan_release(lp.done));
}

#define FRAC_N 400
#define FRAC 4

static void frac_worker(void *arg)
{
	lockpair *lp = arg;
	for (int i = 0; i < FRAC_N; i++) {
		TU_ASSERT_OK(tt_mutex_lock(lp->m));
		TU_ASSERT_OK(tt_mutex_unlock(lp->m));
	}
	tu_done(lp->done);
}

static NI void frac_unlock_here(tt_mutex *m)
{
	TU_ASSERT_OK(tt_mutex_unlock(m));
}

/* The profile `name` at debug=0 into a file under dir. */
static void write_proto(const char *name, const char *dir, char *path,
			size_t len)
{
	snprintf(path, len, "%s/%s.pb.gz", dir, name);
	FILE *f = fopen(path, "w");
	TU_ASSERT(f != NULL);
	TU_ASSERT_OK(tt_profile_write_fd(name, 0, fileno(f)));
	TU_ASSERT_EQ(fclose(f), 0);
}

/* The cum column of `go tool pprof -top` for the line naming fn, or -1. */
static long long top_cum(const char *top, const char *fn)
{
	for (const char *l = top; l && *l; l = strchr(l, '\n') ? strchr(l, '\n') + 1 : NULL) {
		const char *e = strchr(l, '\n');
		size_t n = e ? (size_t)(e - l) : strlen(l);
		char *one = strndup(l, n);
		TU_ASSERT(one != NULL);
		long long flat, cum;
		char name[256];
		int k = sscanf(one, "%lld %*s %*s %lld %*s %255s", &flat, &cum,
			       name);
		free(one);
		if (k == 3 && strcmp(name, fn) == 0)
			return cum;
		if (!e)
			break;
	}
	return -1;
}

typedef struct remote_unlock {
	tt_mutex *m;
	tt_rwmutex *rw;
	tt_chan *done;
} remote_unlock;

static void lock_waiter(void *arg)
{
	remote_unlock *u = arg;
	TU_ASSERT_OK(tt_mutex_lock(u->m)); /* parks: main holds it */
	TU_ASSERT_OK(tt_mutex_unlock(u->m));
	tu_done(u->done);
}

static void rw_waiter(void *arg)
{
	remote_unlock *u = arg;
	TU_ASSERT_OK(tt_rwmutex_lock(u->rw)); /* parks: main holds it */
	TU_ASSERT_OK(tt_rwmutex_unlock(u->rw));
	tu_done(u->done);
}

static __attribute__((noinline)) void unlock_on_pthread(remote_unlock *u)
{
	TU_ASSERT_OK(tt_mutex_unlock(u->m));
	TU_ASSERT_OK(tt_rwmutex_unlock(u->rw));
	__asm__ volatile(""); /* a frame of its own */
}

static void *unlocker_thread(void *arg)
{
	unlock_on_pthread(arg);
	return NULL;
}

/* An unlock by another thread (here a plain pthread) of a mutex a
 * goroutine waits on: the event has the unlocker's stack, as in Go,
 * though the hand-over runs on the mutex's thread. */
static void test_mutex_profile_remote_unlocker(void **state)
{
	(void)state;
	TU_REQUIRE_THREADS();
	remote_unlock u = {.done = tu_chan(0, 2)};
	TU_ASSERT_OK(tt_mutex_make(&u.m));
	TU_ASSERT_OK(tt_rwmutex_make(&u.rw));
	TU_ASSERT_OK(tt_mutex_lock(u.m));
	TU_ASSERT_OK(tt_rwmutex_lock(u.rw));
	TU_ASSERT_EQ(tt_set_mutex_profile_fraction(1), 0);
	/* On this thread, so that they run (and park) at once. */
	tt_go_attr attr = {.flags = TT_GO_THIS_THREAD};
	TU_ASSERT_GT(tt_go_with(&attr, lock_waiter, &u), 0);
	TU_ASSERT_GT(tt_go_with(&attr, rw_waiter, &u), 0);
	pthread_t th;
	TU_ASSERT_EQ(pthread_create(&th, NULL, unlocker_thread, &u), 0);
	tu_join_parked(th);
	TU_WAIT_DONE(u.done, 2, 10 * TT_SECOND);
	TU_ASSERT_EQ(tt_set_mutex_profile_fraction(0), 1);
	char *text = profile_text("mutex");
	long long count, delay;
	TU_ASSERT_MSG(find_records(text, "tt_mutex_unlock", "unlock_on_pthread",
				   0, &count, &delay) == 1,
		      "%s", text);
	TU_ASSERT_EQ(count, 1);
	TU_ASSERT_MSG(find_records(text, "tt_rwmutex_unlock",
				   "unlock_on_pthread", 0, &count, &delay) == 1,
		      "%s", text);
	TU_ASSERT_EQ(count, 1);
	free(text);
	TU_ASSERT_OK(tt_mutex_release(u.m));
	TU_ASSERT_OK(tt_rwmutex_release(u.rw));
}

/* Fraction 4 over FRAC_N contended hand-overs: about a quarter recorded
 * (binomial; the bounds are more than 6 standard deviations wide), and
 * the protobuf profile scales them back by 4, as Go's writer does. */
static void test_mutex_fraction(void **state)
{
	(void)state;
	/* The rounds' strict alternation is one scheduler's order. */
	tu_one_p();
	lockpair lp = {.done = tu_chan(0, 1)};
	TU_ASSERT_OK(tt_mutex_make(&lp.m));
	TU_ASSERT_EQ(tt_set_mutex_profile_fraction(FRAC), 0);
	/* Each round the worker is parked on m when we unlock it: it runs
	 * as soon as it is started, until it parks on m, which we hold; our
	 * next lock parks until it unlocks, and its next lock parks on us. */
	TU_ASSERT_OK(tt_mutex_lock(lp.m));
	tu_go(frac_worker, &lp);
	for (int i = 0; i < FRAC_N; i++) {
		frac_unlock_here(lp.m);
		if (i + 1 < FRAC_N)
			TU_ASSERT_OK(tt_mutex_lock(lp.m));
	}
	TU_WAIT_DONE(lp.done, 1, 10 * TT_SECOND);
	char *text = profile_text("mutex");
	TU_ASSERT_CONTAINS(text, "\nsampling period=4\n");
	long long count, delay;
	/* (One record per call site: a compiler may peel the loop.) */
	TU_ASSERT_MSG(find_records(text, "tt_mutex_unlock", "frac_unlock_here",
				   0, &count, &delay) >= 1, "%s", text);
	TU_ASSERT_RANGE(count, 50, 150);

	char go[4096];
	if (tu_find_go(go, sizeof go)) {
		char dir[] = "/tmp/tether-block-XXXXXX", file[256];
		TU_ASSERT(mkdtemp(dir) != NULL);
		write_proto("mutex", dir, file, sizeof file);
		char *top = tu_pprof(go, "-top -nodefraction=0 "
					  "-sample_index=contentions",
				      file);
		TU_ASSERT_MSG(top_cum(top, "frac_unlock_here") == FRAC * count,
			      "want %lld contentions for frac_unlock_here:\n%s",
			      FRAC * count, top);
		free(top);
		unlink(file);
		rmdir(dir);
	}
	TU_ASSERT_EQ(tt_set_mutex_profile_fraction(0), FRAC);
	free(text);
	TU_ASSERT_OK(tt_mutex_release(lp.m));
	TU_ASSERT_OK(tt_chan_release(lp.done));
}

/* ---- threads ---------------------------------------------------------------- */

#define THR_N 2000

static void thr_echo(void *arg)
{
	tt_chan **c = arg;
	int v;
	for (int i = 0; i < THR_N; i++) {
		TU_ASSERT_OK(tt_recv(c[0], &v, NULL));
		TU_ASSERT_OK(tt_send(c[1], &v));
	}
}

static NI void thr_pingpong(void)
{
	tt_chan *c[2];
	TU_ASSERT_OK(tt_chan_make(&c[0], sizeof(int), 0));
	TU_ASSERT_OK(tt_chan_make(&c[1], sizeof(int), 0));
	TU_ASSERT_GT(tt_go(thr_echo, c), 0);
	for (int i = 0; i < THR_N; i++) {
		int v = i;
		TU_ASSERT_OK(tt_send(c[0], &v));
		TU_ASSERT_OK(tt_recv(c[1], &v, NULL));
	}
	TU_ASSERT_OK(tt_chan_release(c[0]));
	TU_ASSERT_OK(tt_chan_release(c[1]));
}

static void *thr_main(void *arg)
{
	(void)arg;
	thr_pingpong();
	return NULL;
}

/* Goroutines of two threads' schedulers record into one profile at
 * once. */
static void test_block_threads(void **state)
{
	(void)state;
	/* Every round an event: the echo runs on the thread's own
	 * scheduler, only after the receive parked. */
	tu_one_p();
	tt_set_block_profile_rate(1);
	pthread_t t[2];
	for (int i = 0; i < 2; i++)
		TU_ASSERT_EQ(pthread_create(&t[i], NULL, thr_main, NULL), 0);
	for (int i = 0; i < 2; i++)
		tu_join_parked(t[i]); /* P0 may be handed their echoes */
	tt_set_block_profile_rate(0);
	char *text = profile_text("block");
	long long count, delay, sum = 0;
	/* The main goroutine of each thread blocks in its receive (the echo
	 * goroutine sends at once when it runs): every round is an event. */
	TU_ASSERT_GE(find_records(text, "tt_chan_recv", "thr_pingpong", 0,
				  &count, &delay),
		     1);
	sum += count;
	TU_ASSERT_EQ(sum, 2 * THR_N);
	free(text);
}

/* A rate set on one thread reaches another whose goroutines are already
 * running within 64 of that thread's parks (profile.h). */
static _Atomic int late_phase, late_warm;

static void late_echo(void *arg)
{
	tt_chan **c = arg;
	int v;
	bool ok;
	for (;;) {
		TU_ASSERT_OK(tt_recv(c[0], &v, &ok));
		if (!ok) {
			TU_ASSERT_OK(tt_chan_close(c[1]));
			return;
		}
		TU_ASSERT_OK(tt_send(c[1], &v));
	}
}

static NI void late_warm_rounds(tt_chan **c)
{
	int v = 1;
	TU_ASSERT_OK(tt_send(c[0], &v));
	TU_ASSERT_OK(tt_recv(c[1], &v, NULL));
}

static NI void late_rounds(tt_chan **c)
{
	for (int i = 0; i < THR_N; i++) {
		int v = i;
		TU_ASSERT_OK(tt_send(c[0], &v));
		TU_ASSERT_OK(tt_recv(c[1], &v, NULL));
	}
}

static void *late_main(void *arg)
{
	(void)arg;
	tt_chan *c[2] = {tu_chan(sizeof(int), 0), tu_chan(sizeof(int), 0)};
	tu_go(late_echo, c);
	int64_t end = tt_now() + 10 * TT_SECOND;
	while (atomic_load(&late_phase) == 0 && tt_now() < end) {
		late_warm_rounds(c);
		atomic_fetch_add(&late_warm, 1);
	}
	late_rounds(c);
	TU_ASSERT_OK(tt_chan_close(c[0]));
	int v;
	bool ok = true;
	TU_ASSERT_OK(tt_recv(c[1], &v, &ok)); /* the echo has ended */
	TU_ASSERT(!ok);
	TU_ASSERT_OK(tt_chan_release(c[0]));
	TU_ASSERT_OK(tt_chan_release(c[1]));
	return NULL;
}

static void test_block_rate_other_thread(void **state)
{
	(void)state;
	tu_one_p(); /* every round an event, as in test_block_threads */
	pthread_t t;
	TU_ASSERT_EQ(pthread_create(&t, NULL, late_main, NULL), 0);
	int64_t end = tt_now() + 10 * TT_SECOND;
	while (atomic_load(&late_warm) < 100 && tt_now() < end)
		TU_ASSERT_OK(tt_sleep(TT_MILLISECOND));
	TU_ASSERT_GE(atomic_load(&late_warm), 100);
	tt_set_block_profile_rate(1);
	atomic_store(&late_phase, 1);
	tu_join_parked(t); /* P0 may be handed its echo */
	tt_set_block_profile_rate(0);
	char *text = profile_text("block");
	long long count, delay;
	/* Each round parks the thread's main goroutine in its receive; the
	 * rounds before the thread saw the rate, at most 64 parks of either
	 * goroutine, are not recorded. */
	TU_ASSERT_GE(find_records(text, "tt_chan_recv", "late_rounds", 0,
				  &count, &delay),
		     1);
	TU_ASSERT_LE(count, THR_N);
	TU_ASSERT_GE(count, THR_N - 64);
	free(text);
}

/* ---- go tool pprof, the debug server, bad input ------------------------------ */

static char *get(tt_debug_server *srv, const char *target, size_t *len,
		 int *status)
{
	tu_http_resp r = tu_http_req(tt_debug_port(srv), "GET", target, NULL,
				     10 * TT_SECOND);
	*status = r.status;
	*len = r.body_len;
	free(r.head);
	return r.body;
}

/* Whether `go tool pprof -traces` output has a sample whose first frame
 * is `first`, followed by `second`. */
static bool frames_follow(const char *traces, const char *first,
			  const char *second)
{
	for (const char *p = strstr(traces, "-+-"); p;
	     p = strstr(p + 1, "-+-")) {
		const char *l = strchr(p, '\n'); /* the sample's first line */
		if (!l)
			return false;
		l++;
		const char *f = l + strcspn(l, "\n");
		/* "   1.10ms   tt_chan_recv": the value, then the frame. */
		const char *e = f;
		while (e > l && e[-1] != ' ')
			e--;
		if ((size_t)(f - e) != strlen(first) ||
		    strncmp(e, first, strlen(first)) != 0 || *f != '\n')
			continue;
		const char *n = f + 1 + strspn(f + 1, " ");
		if (strncmp(n, second, strlen(second)) == 0 &&
		    n[strlen(second)] == '\n')
			return true;
	}
	return false;
}

static void test_pprof_and_server(void **state)
{
	(void)state;
	/* Something in each profile. */
	tt_set_block_profile_rate(1);
	TU_ASSERT_EQ(tt_set_mutex_profile_fraction(1), 0);
	block_once(B_RECV);
	block_once(B_MUTEX);
	lockpair lp = {.done = tu_chan(0, 1)};
	TU_ASSERT_OK(tt_mutex_make(&lp.m));
	tu_go(mu_holder, &lp);
	lp.parked = true;
	TU_ASSERT_OK(tt_mutex_lock(lp.m));
	TU_ASSERT_OK(tt_mutex_unlock(lp.m));
	TU_WAIT_DONE(lp.done, 1, 10 * TT_SECOND);
	tt_set_block_profile_rate(0);

	tt_debug_server *srv = NULL;
	TU_ASSERT_OK(tt_debug_serve("127.0.0.1:0", NULL, &srv));
	size_t len;
	int st;
	char *b1 = get(srv, "/debug/pprof/block?debug=1", &len, &st);
	TU_ASSERT_EQ(st, 200);
	TU_ASSERT_MSG(strncmp(b1, "--- contention:\ncycles/second=1000000000\n",
			      41) == 0,
		      "%.200s", b1);
	long long count, delay;
	TU_ASSERT_GE(find_records(b1, "tt_chan_recv", "blk_recv", 0, &count,
				  &delay),
		     1);
	char *m1 = get(srv, "/debug/pprof/mutex?debug=1", &len, &st);
	TU_ASSERT_EQ(st, 200);
	TU_ASSERT_MSG(strncmp(m1, "--- mutex:\ncycles/second=1000000000\n"
				  "sampling period=1\n",
			      54) == 0,
		      "%.200s", m1);
	TU_ASSERT_GE(find_records(m1, "tt_mutex_unlock", "mu_unlock_here", 0,
				  &count, &delay),
		     1);
	char *idx = get(srv, "/debug/pprof/", &len, &st);
	TU_ASSERT_EQ(st, 200);
	TU_ASSERT_CONTAINS(idx, "href=\"block?debug=1\"");
	TU_ASSERT_CONTAINS(idx, "href=\"mutex?debug=1\"");
	TU_ASSERT_CONTAINS(idx, "Stack traces that led to blocking on "
				"synchronization primitives");
	TU_ASSERT_CONTAINS(idx, "Stack traces of holders of contended "
				"mutexes");
	char *bad = get(srv, "/debug/pprof/block?debug=9", &len, &st);
	TU_ASSERT_EQ(st, 400);
	char *pb = get(srv, "/debug/pprof/block", &len, &st);
	TU_ASSERT_EQ(st, 200);
	TU_ASSERT_GT(len, 2);
	TU_ASSERT_EQ((unsigned char)pb[0], 0x1f); /* gzip */
	TU_ASSERT_EQ((unsigned char)pb[1], 0x8b);
	TU_ASSERT_OK(tt_debug_shutdown(srv));

	char go[4096];
	bool have_go = tu_find_go(go, sizeof go);
	if (have_go) {
		char dir[] = "/tmp/tether-block-XXXXXX", file[256];
		TU_ASSERT(mkdtemp(dir) != NULL);
		snprintf(file, sizeof file, "%s/served.pb.gz", dir);
		FILE *f = fopen(file, "w");
		TU_ASSERT(f != NULL);
		TU_ASSERT_EQ(fwrite(pb, 1, len, f), len);
		TU_ASSERT_EQ(fclose(f), 0);
		char *raw = tu_pprof(go, "-raw", file);
		TU_ASSERT_CONTAINS(raw, "PeriodType: contentions count");
		TU_ASSERT_CONTAINS(raw, "contentions/count delay/nanoseconds");
		TU_ASSERT_CONTAINS(raw, "blk_recv");
		TU_ASSERT_CONTAINS(raw, "tt_chan_recv");
		TU_ASSERT_CONTAINS(raw, "test_block.c");
		/* A sample's stack starts at the public call, then the
		 * function that made it (the runtime's inlined frames are
		 * not there, as Go's starts at runtime.chanrecv1). */
		char *traces = tu_pprof(go, "-traces", file);
		TU_ASSERT_MSG(frames_follow(traces, "tt_chan_recv", "blk_recv"),
			      "%s", traces);
		TU_ASSERT_MSG(frames_follow(traces, "tt_mutex_lock",
					    "blk_mutex"),
			      "%s", traces);
		free(traces);
		char *top = tu_pprof(go, "-top -nodefraction=0", file);
		TU_ASSERT_CONTAINS(top, "Type: delay");
		TU_ASSERT_CONTAINS(top, "blk_recv");
		TU_ASSERT_CONTAINS(top, "blk_mutex");
		free(raw);
		free(top);
		unlink(file);

		write_proto("mutex", dir, file, sizeof file);
		raw = tu_pprof(go, "-raw", file);
		TU_ASSERT_CONTAINS(raw, "contentions/count delay/nanoseconds");
		TU_ASSERT_CONTAINS(raw, "mu_unlock_here");
		TU_ASSERT_CONTAINS(raw, "tt_mutex_unlock");
		top = tu_pprof(go, "-top -nodefraction=0", file);
		TU_ASSERT_CONTAINS(top, "mu_unlock_here");
		free(raw);
		free(top);
		unlink(file);
		rmdir(dir);
	}
	TU_ASSERT_EQ(tt_set_mutex_profile_fraction(0), 1);
	free(b1);
	free(m1);
	free(idx);
	free(bad);
	free(pb);
	TU_ASSERT_OK(tt_mutex_release(lp.m));
	TU_ASSERT_OK(tt_chan_release(lp.done));
	if (!have_go) {
		print_message("go not found in PATH or /usr/lib/go/bin "
			      "(Debian: golang-go): go tool pprof not run\n");
		skip();
	}
}

static NI void delta_before(ctx *x)
{
	int v;
	int r = tt_recv(x->c, &v, NULL);
	TU_ASSERT_OK(r);
}

static NI void delta_during(ctx *x)
{
	int v;
	int r = tt_recv(x->c, &v, NULL);
	TU_ASSERT_OK(r);
}

/* Sends once to delta_before, then twice to delta_during, each time
 * once the receiver is parked (x->signalled: it set it and parked
 * without yielding in between), so only receivers block. */
static void delta_sender(void *arg)
{
	ctx *x = arg;
	int v = 1;
	TU_ASSERT_OK(tt_sleep(20 * TT_MILLISECOND));
	TU_ASSERT_OK(tt_send(x->c, &v));
	for (int i = 0; i < 2; i++) {
		TU_WAIT_FOR(x->signalled, 10 * TT_SECOND);
		x->signalled = false;
		TU_ASSERT_OK(tt_sleep(20 * TT_MILLISECOND));
		TU_ASSERT_OK(tt_send(x->c, &v));
	}
	tu_done(x->done);
}

static void delta_blocker(void *arg)
{
	ctx *x = arg;
	TU_ASSERT_OK(tt_sleep(500 * TT_MILLISECOND)); /* the base is taken */
	for (int i = 0; i < 2; i++) {
		x->signalled = true;
		delta_during(x);
	}
	tu_done(x->done);
}

/* ?seconds=N: only what was recorded during those seconds, with the
 * profile's duration; Go's errors for a bad count or with debug. */
static void test_block_delta(void **state)
{
	(void)state;
	ctx x;
	make_all(&x);
	x.done = tu_chan(0, 2);
	tt_set_block_profile_rate(1);
	tu_go(delta_sender, &x);
	delta_before(&x);
	tu_go(delta_blocker, &x);
	tt_debug_server *srv = NULL;
	TU_ASSERT_OK(tt_debug_serve("127.0.0.1:0", NULL, &srv));
	size_t len;
	int st;
	int64_t t0 = tt_now();
	char *pb = get(srv, "/debug/pprof/block?seconds=2", &len, &st);
	TU_ASSERT_EQ(st, 200);
	TU_ASSERT_GE(tt_now() - t0, 2 * TT_SECOND);
	TU_WAIT_DONE(x.done, 2, 10 * TT_SECOND);
	tt_set_block_profile_rate(0);
	size_t blen;
	int bst[3];
	char *bad[] = {
		get(srv, "/debug/pprof/block?seconds=0", &blen, &bst[0]),
		get(srv, "/debug/pprof/mutex?seconds=x", &blen, &bst[1]),
		get(srv, "/debug/pprof/mutex?seconds=1&debug=1", &blen,
		    &bst[2]),
	};
	for (int i = 0; i < 3; i++)
		TU_ASSERT_EQ(bst[i], 400);
	TU_ASSERT_CONTAINS(bad[2], "seconds and debug params are incompatible");
	TU_ASSERT_CONTAINS(bad[0], "seconds must be a whole number");
	TU_ASSERT_CONTAINS(bad[1], "seconds must be a whole number");
	for (int i = 0; i < 3; i++)
		free(bad[i]);
	TU_ASSERT_OK(tt_debug_shutdown(srv));

	char go[4096];
	if (tu_find_go(go, sizeof go)) {
		char dir[] = "/tmp/tether-block-XXXXXX", file[256];
		TU_ASSERT(mkdtemp(dir) != NULL);
		snprintf(file, sizeof file, "%s/delta.pb.gz", dir);
		FILE *f = fopen(file, "w");
		TU_ASSERT(f != NULL);
		TU_ASSERT_EQ(fwrite(pb, 1, len, f), len);
		TU_ASSERT_EQ(fclose(f), 0);
		char *raw = tu_pprof(go, "-raw", file);
		TU_ASSERT_CONTAINS(raw, "contentions/count delay/nanoseconds");
		TU_ASSERT_CONTAINS(raw, "delta_during");
		TU_ASSERT_NOT_CONTAINS(raw, "delta_before");
		TU_ASSERT_NOT_CONTAINS(raw, "blk_recv");
		char *top = tu_pprof(go, "-top -nodefraction=0 "
					  "-sample_index=contentions",
				      file);
		TU_ASSERT_MSG(top_cum(top, "delta_during") == 2, "%s", top);
		TU_ASSERT_CONTAINS(top, "Duration: 2");
		free(raw);
		free(top);
		unlink(file);
		rmdir(dir);
	}
	free(pb);
	free_all(&x);
}

static NI void deep_block(tt_chan *c, int depth)
{
	if (depth > 0) {
		deep_block(c, depth - 1);
		__asm__ volatile("" ::: "memory"); /* not a tail call */
		return;
	}
	int v;
	int r = tt_recv(c, &v, NULL);
	TU_ASSERT_OK(r);
}

static void deep_sender(void *arg)
{
	int v = 1;
	for (int i = 0; i < 8; i++) {
		TU_ASSERT_OK(tt_sleep(TT_MILLISECOND));
		TU_ASSERT_OK(tt_send((tt_chan *)arg, &v));
	}
}

/* The table is bounded: past its limit, events of new stacks are
 * dropped and counted; known stacks still count. */
static void test_block_bounded(void **state)
{
	(void)state;
	/* The count of stacks takes the sender never to wait: with one
	 * scheduler the receiver always waits first. */
	tu_one_p();
	tt_chan *c = tu_chan(sizeof(int), 0);
	size_t base = tt__block_nbuckets(), old_max = tt__block_max_buckets;
	uint64_t dropped = tt__block_dropped();
	tt__block_max_buckets = base + 3;
	tt_set_block_profile_rate(1);
	tu_go(deep_sender, c);
	for (int d = 0; d < 8; d++) /* 8 stacks: depth 0 to 7 */
		deep_block(c, d);
	tt_set_block_profile_rate(0);
	tt__block_max_buckets = old_max;
	TU_ASSERT_EQ(tt__block_nbuckets(), base + 3);
	TU_ASSERT_EQ(tt__block_dropped() - dropped, 5);
	char *text = profile_text("block");
	long long count, delay;
	TU_ASSERT_EQ(find_records(text, "tt_chan_recv", "deep_block", 0,
				  &count, &delay),
		     3);
	TU_ASSERT_EQ(count, 3);
	free(text);
	tu_pause();
	TU_ASSERT_OK(tt_chan_release(c));
}

static void test_bad_input(void **state)
{
	(void)state;
	membuf m = {0};
	TU_ASSERT_ERR(tt_profile_write("blocks", 1, mem_write, &m), -EINVAL);
	TU_ASSERT_CONTAINS(tt_last_error(), "unknown profile \"blocks\"");
	TU_ASSERT_ERR(tt_profile_write("mutex", 3, mem_write, &m), -EINVAL);
	TU_ASSERT_ERR(tt_profile_write("block", -1, mem_write, &m), -EINVAL);
	TU_ASSERT_ERR(tt_profile_write("block", 0, NULL, NULL), -EINVAL);
	TU_ASSERT(m.p == NULL);
	/* debug=2 is debug=1, as in Go. */
	char *one = profile_text("block");
	membuf two = {0};
	TU_ASSERT_OK(tt_profile_write("block", 2, mem_write, &two));
	TU_ASSERT_MSG(strcmp(one, two.p) == 0, "%s\n---\n%s", one, two.p);
	free(one);
	free(two.p);
	/* A negative fraction only reads it. */
	TU_ASSERT_EQ(tt_set_mutex_profile_fraction(-1), 0);
	TU_ASSERT_EQ(tt_set_mutex_profile_fraction(-7), 0);
	TU_ASSERT_EQ(tt_set_mutex_profile_fraction(0), 0);
}

/* Every test starts with both profiles off, whatever one that failed
 * left behind. */
static int setup(void **state)
{
	tt_set_block_profile_rate(0);
	tt_set_mutex_profile_fraction(0);
	return tu_setup(state);
}

#undef TU_TEST
#define TU_TEST(f) cmocka_unit_test_setup_teardown(f, setup, tu_teardown)

int main(void)
{
	const struct CMUnitTest tests[] = {
		TU_TEST(test_off_records_nothing),
		TU_TEST(test_block_rate1_each_kind),
		TU_TEST(test_block_rate_long_events),
		TU_TEST(test_mutex_profile),
		TU_TEST(test_mutex_profile_remote_unlocker),
		TU_TEST(test_mutex_fraction),
		TU_TEST(test_block_threads),
		TU_TEST(test_block_rate_other_thread),
		TU_TEST(test_pprof_and_server),
		TU_TEST(test_block_delta),
		TU_TEST(test_block_bounded),
		TU_TEST(test_bad_input),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
