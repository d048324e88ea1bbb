/* tether — the poller: goroutines parked on file descriptors, on epoll.
 *
 * Design notes
 * ------------
 * Each scheduler has one epoll descriptor, made on first use, and a table
 * indexed by descriptor number saying which goroutine waits to read and
 * which to write it. A descriptor is registered once, the first time a
 * goroutine waits on it, edge-triggered for both directions, and stays
 * registered until tt_close or tt_fd_forget (or until tt_accept,
 * tt_connect or tt_fd_nonblock see its number come back for a new file).
 * So a wait costs no epoll_ctl: on a busy connection a round trip is the
 * read that says EAGAIN, the read and the write, and a share of one
 * epoll_wait, as with Go's netpoller.
 *
 * Edge-triggered means an event is reported once, when readiness changes.
 * The I/O calls try the system call first and wait only after EAGAIN, so
 * an edge that comes before the wait is either already consumed by that
 * call or still queued in epoll and reported later. An event for a
 * direction nobody waits on leaves a token in the slot (Go's pdReady); the
 * next wait takes the token and returns at once, and its caller retries
 * the call (a stale token costs one EAGAIN, never a lost wake-up).
 * tt_fd_wait, which callers may use without trying first, looks with
 * poll(2) before it parks.
 *
 * The rule that comes with it, as with Go's Close and libdill's fdclean:
 * a descriptor that goroutines waited on is closed with tt_close (or
 * tt_fd_forget before close). The kernel drops a closed file's
 * registration by itself, but the slot would still say "registered" and a
 * new descriptor reusing the number would never be woken.
 *
 * A safety net for programs that break the rule: every 20 ms the poller
 * audits the descriptors whose goroutines have been parked longer than
 * that (4096 slots of the table at a time), once per park, asking epoll
 * to add each again. EEXIST confirms the registration; success means it
 * had been lost to a close, and the new one reports the descriptor's
 * current state, so such a goroutine is late by tens of milliseconds
 * (more in a table of many thousands) instead of stuck forever. A busy
 * descriptor, whose waits are short, is never audited.
 *
 * The scheduler polls without blocking every 64 parks and at each yield
 * while anyone waits on a descriptor (so a busy scheduler cannot starve
 * I/O), and blocks in epoll only from its idle loop, until the next timer.
 *
 * Invariant: slot->r (slot->w) is the goroutine parked reading (writing)
 * fd, and is cleared by whoever readies it: the poller, its deadline
 * timer, the closing of its context's done channel, or tt_close. */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include "../chan/chan.h"
#include "internal.h"
#include "tether/ctx.h"
#include "tether/fd.h"

/* g->io_ready when tt_close woke it: the descriptor is gone. */
#define IO_CLOSED 0x80

struct tt__fdslot {
	tt__g *r, *w;       /* waiting to read, to write */
	uint8_t registered; /* in the epoll set (edge-triggered, both ways) */
	uint8_t tokens;     /* TT_FD_READ/WRITE events nobody waited for */
	uint8_t audited;    /* registration confirmed during this park */
};

/* The audit (see check_registrations), per thread as schedulers are. It
 * sweeps the slot table AUDIT_BATCH slots at a time, one batch every
 * AUDIT_PERIOD, so its cost stays small however many descriptors there
 * are. */
#define AUDIT_PERIOD (20 * TT_MILLISECOND)
#define AUDIT_BATCH 4096
static __thread int64_t audit_next;    /* when the next batch is due */
static __thread bool audit_pending;    /* some waiter may need auditing */
static __thread size_t audit_cursor;   /* where the sweep goes on */
static __thread bool audit_young;      /* this sweep left waiters for later */
static __thread uint64_t audit_parks;  /* parks on descriptors so far */
static __thread uint64_t audit_parks0; /* ... when this sweep began */

static int ensure_epoll(tt__sched *s)
{
	if (s->epfd >= 0)
		return 0;
	int fd = epoll_create1(EPOLL_CLOEXEC);
	if (fd < 0)
		return tt__err(-errno, "cannot make the poller: epoll_create1: "
				       "%s",
			       strerror(errno));
	/* Other threads' posts wake a thread asleep in the poller through
	 * this (post.c). Level-triggered: read when it fires. */
	int wfd = TT_TSAN_QUIET(eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC));
	struct epoll_event ev = {.events = EPOLLIN, .data.fd = wfd};
	if (wfd < 0 || epoll_ctl(fd, EPOLL_CTL_ADD, wfd, &ev) != 0) {
		int e = errno;
		if (wfd >= 0)
			close(wfd);
		close(fd);
		return tt__err(-e, "cannot make the poller's wake-up: %s",
			       strerror(e));
	}
	s->wakefd = wfd;
	s->epfd = fd;
	/* A poster's write to wakefd comes after its creation (push_node):
	 * TSan sees the descriptor, not the atomics that order the two. */
	TT_TSAN_SYNC(&s->wakefd);
	return 0;
}

static struct tt__fdslot *slot_for(tt__sched *s, int fd)
{
	if ((size_t)fd >= s->nfds) {
		size_t n = s->nfds ? s->nfds : 64;
		while (n <= (size_t)fd)
			n *= 2;
		struct tt__fdslot *v = realloc(s->fds, n * sizeof *v);
		if (v == NULL)
			return NULL;
		memset(v + s->nfds, 0, (n - s->nfds) * sizeof *v);
		s->fds = v;
		s->nfds = n;
	}
	return &s->fds[fd];
}

/* Add fd to the epoll set unless it is there: 0, or -errno (-EPERM for a
 * regular file, which epoll refuses and which is always ready). */
static int ensure_registered(tt__sched *s, int fd, struct tt__fdslot *sl)
{
	if (sl->registered)
		return 0;
	struct epoll_event ev = {
		.events = EPOLLIN | EPOLLOUT | EPOLLRDHUP | EPOLLET,
		.data.fd = fd};
	if (epoll_ctl(s->epfd, EPOLL_CTL_ADD, fd, &ev) != 0) {
		/* EEXIST: our slot was reset (tt_fd_nonblock on a
		 * descriptor already in use) but the kernel still has it. */
		if (errno != EEXIST ||
		    epoll_ctl(s->epfd, EPOLL_CTL_MOD, fd, &ev) != 0)
			return -errno;
	}
	sl->registered = 1;
	sl->tokens = 0; /* the registration reports what is ready now */
	return 0;
}

/* Take g's waiter on a context's done channel (the ctx forms) out of its
 * queue: g is being woken by its descriptor or its deadline instead. */
static void wake(tt__sched *s, tt__g *g, uint8_t ready)
{
	tt__chan_cancel(g); /* the done channel's waiter, if any */
	g->io_ready = ready;
	tt__wait_wake(s, g);
}

/* Hand the events `ready` to fd's waiters, or leave them as tokens. A
 * waiter whose context was cancelled has been readied by the done
 * channel already and still sits in the slot until it runs: it is taken
 * out, and the event kept as a token for whoever waits next. */
static int deliver(tt__sched *s, struct tt__fdslot *sl, uint8_t ready)
{
	int woke = 0;
	for (int dir = TT_FD_READ; dir <= TT_FD_WRITE; dir <<= 1) {
		if (!(ready & dir))
			continue;
		tt__g *g = dir == TT_FD_READ ? sl->r : sl->w;
		if (g == NULL || g->state != TT_G_WAITING) {
			sl->tokens |= (uint8_t)dir;
			if (g == NULL)
				continue;
		}
		if (sl->r == g) /* one goroutine may wait for either */
			sl->r = NULL;
		if (sl->w == g)
			sl->w = NULL;
		if (g->state == TT_G_WAITING) {
			wake(s, g, ready);
			woke++;
		}
	}
	return woke;
}

/* The audit of the design notes, one batch of it: re-add the
 * descriptors of goroutines parked since before `now - AUDIT_PERIOD`
 * that were not audited in this park. At the end of a sweep, the audit
 * stops (audit_pending false) unless the sweep passed waiters too young
 * to audit or a goroutine parked meanwhile, perhaps behind the cursor. */
static int check_registrations(tt__sched *s, int64_t now)
{
	int woke = 0;
	audit_next = now + AUDIT_PERIOD;
	if (audit_cursor == 0) {
		audit_young = false;
		audit_parks0 = audit_parks;
	}
	size_t end = audit_cursor + AUDIT_BATCH;
	if (end > s->nfds)
		end = s->nfds;
	for (size_t fd = audit_cursor; fd < end; fd++) {
		struct tt__fdslot *sl = &s->fds[fd];
		if ((!sl->r && !sl->w) || sl->audited)
			continue;
		int64_t since = sl->r ? sl->r->wait_since : INT64_MAX;
		if (sl->w && sl->w->wait_since < since)
			since = sl->w->wait_since;
		if (since > now - AUDIT_PERIOD) {
			audit_young = true;
			continue;
		}
		sl->audited = 1;
		struct epoll_event ev = {
			.events = EPOLLIN | EPOLLOUT | EPOLLRDHUP | EPOLLET,
			.data.fd = (int)fd};
		if (epoll_ctl(s->epfd, EPOLL_CTL_ADD, (int)fd, &ev) == 0 ||
		    errno == EEXIST)
			continue; /* (re)registered */
		/* EPERM: reopened as a regular file, always ready. Else
		 * closed and not reopened: its waiters get -EBADF. */
		uint8_t ready = TT_FD_READ | TT_FD_WRITE;
		woke += deliver(s, sl, errno == EPERM ? ready
						      : ready | IO_CLOSED);
		sl->registered = 0;
	}
	audit_cursor = end;
	if (end >= s->nfds) { /* the sweep is complete */
		audit_cursor = 0;
		audit_pending = audit_young || audit_parks != audit_parks0;
	}
	return woke;
}

/* Set once epoll_pwait2 has failed with ENOSYS (a kernel before 5.11, or
 * valgrind, which does not know the call): every later timed wait goes
 * straight to epoll_wait, so the failing call is made once per process,
 * not once per wait. Shared by every thread's scheduler. */
static bool no_pwait2;

int tt__poll(tt__sched *s, int64_t timeout_ns)
{
	if (s->epfd < 0 || s->io_waiters == 0)
		return 0;
	int woke = 0;
	if (audit_pending) {
		int64_t now = tt__coarse_now();
		if (now >= audit_next) {
			woke = check_registrations(s, now);
			if (woke)
				timeout_ns = 0;
		}
		/* Do not sleep past the next audit while one is due. */
		if (audit_pending &&
		    (timeout_ns < 0 || timeout_ns > audit_next - now))
			timeout_ns = audit_next > now ? audit_next - now : 0;
	}
	struct epoll_event evs[64];
	int n;
	/* A wait that sleeps says so, for other threads' posts. */
	bool sleeps = timeout_ns != 0;
	if (sleeps && !tt__inbox_poll_begin(s))
		timeout_ns = 0;
	if (timeout_ns < 0) {
		n = epoll_wait(s->epfd, evs, 64, -1);
	} else {
		struct timespec ts = {.tv_sec = timeout_ns / TT_SECOND,
				      .tv_nsec = timeout_ns % TT_SECOND};
		n = -1;
		errno = ENOSYS;
		if (!__atomic_load_n(&no_pwait2, __ATOMIC_RELAXED)) {
			n = epoll_pwait2(s->epfd, evs, 64, &ts, NULL);
			if (n < 0 && errno == ENOSYS)
				__atomic_store_n(&no_pwait2, true,
						 __ATOMIC_RELAXED);
		}
		if (n < 0 && errno == ENOSYS) {
			/* Milliseconds, rounded up, at most INT_MAX. */
			int64_t ms = timeout_ns / TT_MILLISECOND +
				     (timeout_ns % TT_MILLISECOND != 0);
			n = epoll_wait(s->epfd, evs, 64,
				       ms > INT_MAX ? INT_MAX : (int)ms);
		}
	}
	if (sleeps)
		tt__inbox_poll_end(s);
	for (int i = 0; i < n; i++) {
		int fd = evs[i].data.fd;
		uint32_t e = evs[i].events;
		if (fd == s->wakefd) {
			uint64_t v;
			(void)!TT_TSAN_QUIET(read(fd, &v, sizeof v));
			continue;
		}
		if ((size_t)fd >= s->nfds)
			continue;
		uint8_t ready = 0;
		if (e & (EPOLLIN | EPOLLHUP | EPOLLERR | EPOLLRDHUP))
			ready |= TT_FD_READ;
		if (e & (EPOLLOUT | EPOLLHUP | EPOLLERR))
			ready |= TT_FD_WRITE;
		woke += deliver(s, &s->fds[fd], ready);
	}
	return woke;
}

/* The wait primitive's cancel: g leaves its descriptor's slot, and its
 * done channel's queue if it waits on one. */
static bool io_cancel(tt__g *g)
{
	struct tt__fdslot *sl = &g->sched->fds[g->io_fd];
	if (sl->r == g)
		sl->r = NULL;
	if (sl->w == g)
		sl->w = NULL;
	/* Its done channel's waiter is never taken from another thread. */
	(void)tt__chan_cancel(g);
	return true;
}

/* Forget fd: wake its waiters (their calls return -EBADF), drop tokens
 * and, if `deregister`, take it out of the epoll set. */
static void forget(tt__sched *s, int fd, bool deregister)
{
	if (fd < 0 || (size_t)fd >= s->nfds)
		return;
	struct tt__fdslot *sl = &s->fds[fd];
	if (sl->r || sl->w)
		deliver(s, sl, TT_FD_READ | TT_FD_WRITE | IO_CLOSED);
	if (sl->registered && deregister)
		epoll_ctl(s->epfd, EPOLL_CTL_DEL, fd, NULL);
	*sl = (struct tt__fdslot){0};
}

/* fd is a new file (from accept, or being set up): whatever the slot
 * remembers is about an older file that had the same number and was
 * closed without tt_close. Costs no system call. */
static void renew(int fd, bool new_file)
{
	tt__sched *s = tt__sched_get();
	if ((size_t)fd >= s->nfds)
		return;
	struct tt__fdslot *sl = &s->fds[fd];
	if (new_file && (sl->r || sl->w))
		deliver(s, sl, TT_FD_READ | TT_FD_WRITE | IO_CLOSED);
	sl->registered = 0;
	sl->tokens = 0;
}

int tt_fd_forget(int fd)
{
	if (fd < 0)
		return tt__err(-EBADF, "tt_fd_forget: bad descriptor %d", fd);
	forget(tt__sched_get(), fd, true);
	return 0;
}

int tt_close(int fd)
{
	if (fd < 0)
		return tt__err(-EBADF, "tt_close: bad descriptor %d", fd);
	forget(tt__sched_get(), fd, true);
	/* Linux releases the descriptor even when close reports EINTR: do
	 * not retry. */
	if (close(fd) != 0 && errno != EINTR)
		return tt__err(-errno, "tt_close: fd %d: %s", fd,
			       strerror(errno));
	return 0;
}

/* Readiness of fd right now, without parking (poll(2) with no timeout). */
static int fd_ready_now(const char *fn, int fd, int events)
{
	struct pollfd p = {
		.fd = fd,
		.events = (short)(((events & TT_FD_READ) ? POLLIN : 0) |
				  ((events & TT_FD_WRITE) ? POLLOUT : 0))};
	if (poll(&p, 1, 0) < 0)
		return tt__err(-errno, "%s: poll: %s", fn, strerror(errno));
	if (p.revents & POLLNVAL)
		return tt__err(-EBADF, "%s: fd %d is not open", fn, fd);
	int ready = 0;
	if (p.revents & (POLLIN | POLLHUP | POLLERR))
		ready |= TT_FD_READ;
	if (p.revents & (POLLOUT | POLLHUP | POLLERR))
		ready |= TT_FD_WRITE;
	return ready & events;
}

/* Park the current goroutine until fd is ready for `events`, the
 * deadline passes, or (done != NULL) the channel `done` is closed: the
 * one wait under tt_fd_wait and every I/O call. look_first: check with
 * poll(2) before parking (for callers that did not just see EAGAIN).
 * Returns the ready events, -ETIMEDOUT, -ECANCELED when done was closed
 * (the caller turns that into its context's error), or another -errno.
 * done (a handle, from tt_ctx_done) must not be closed yet: a waiter
 * queued on a closed channel would never fire. */
static int fd_wait(const char *fn, int fd, int events, int64_t deadline,
		   tt_chan *done_h, bool look_first, uint8_t reason)
{
	tt__sched *s = tt__sched_get();
	tt_chan *done = done_h ? chan_of(done_h) : NULL;
	if (fd < 0)
		return tt__err(-EBADF, "%s: bad descriptor %d", fn, fd);
	if (events == 0 || (events & ~(TT_FD_READ | TT_FD_WRITE)))
		return tt__err(-EINVAL, "%s: bad events 0x%x", fn, events);
	if (deadline == TT_TRY ||
	    (deadline != TT_FOREVER && deadline <= tt_now())) {
		int ready = fd_ready_now(fn, fd, events);
		if (ready)
			return ready;
		return deadline == TT_TRY ? -EAGAIN : -ETIMEDOUT;
	}
	int r = ensure_epoll(s);
	if (r)
		return r;
	struct tt__fdslot *sl = slot_for(s, fd);
	if (sl == NULL)
		return tt__err(-ENOMEM, "%s: out of memory", fn);
	if (((events & TT_FD_READ) && sl->r) ||
	    ((events & TT_FD_WRITE) && sl->w))
		return tt__err(-EBUSY,
			       "%s: another goroutine already waits to %s fd "
			       "%d",
			       fn, (events & TT_FD_READ) && sl->r ? "read"
								  : "write",
			       fd);
	/* An event that came while nobody waited: ready now. */
	if (sl->tokens & events) {
		int ready = sl->tokens & events;
		sl->tokens &= (uint8_t)~ready;
		return ready;
	}
	r = ensure_registered(s, fd, sl);
	if (r == -EPERM) /* a regular file: always ready */
		return events;
	if (r)
		return tt__err(r, "%s: epoll_ctl on fd %d: %s", fn, fd,
			       strerror(-r));
	if (look_first) {
		/* The caller may not have tried the descriptor: an edge
		 * from before the registration would never come again. */
		int ready = fd_ready_now(fn, fd, events);
		if (ready)
			return ready;
	}
	tt__g *g = s->current;
	/* The done channel's waiter (below) is on our stack — except for a
	 * shared-stack goroutine, whose stack moves while it is parked: its
	 * waiter goes in its record, as a select's does. */
	tt__waiter wl, *w = &wl;
	if (done && TT_UNLIKELY(g->shared) &&
	    (w = tt__g_waiters(g, sizeof *w)) == NULL)
		return -ENOMEM;
	if (events & TT_FD_READ)
		sl->r = g;
	if (events & TT_FD_WRITE)
		sl->w = g;
	sl->audited = 0;
	audit_parks++;
	if (!audit_pending) {
		audit_pending = true;
		audit_next = tt__coarse_now() + AUDIT_PERIOD;
	}

	/* With a done channel, also queue a receive waiter on it, as a
	 * one-case select would: closing it fires the waiter
	 * (tt__waiter_fire readies us with sel_fired = 0), while the poller
	 * and the deadline take it back out of the queue when they win. */
	if (done) {
		*w = (tt__waiter){.g = g, .c = done, .q = &done->recvq,
				  .case_ix = 0};
		bool locked = chan_lock_shared(done);
		waitq_push(w->q, w);
		done->parked++;
		g->wait_list = w;
		g->wait_n = 1;
		chan_unlock_if(done, locked);
	}
	g->io_fd = fd;
	g->io_ready = 0;
	g->sel_fired = -1;
	s->io_waiters++;
	bool timed_out = tt__wait(s, g, reason, NULL, deadline, io_cancel);
	s->io_waiters--;
	if (done) {
		g->wait_list = NULL;
		g->wait_n = 0;
		tt__chan_unpark(s, done);
		if (g->sel_fired == 0) {
			/* Cancelled: the poller did not take us out of the
			 * slot, so do it here. */
			sl = &s->fds[fd]; /* the table may have grown */
			if (sl->r == g)
				sl->r = NULL;
			if (sl->w == g)
				sl->w = NULL;
			return -ECANCELED;
		}
	}
	if (timed_out)
		return -ETIMEDOUT;
	if (g->io_ready & IO_CLOSED)
		return tt__err(-EBADF, "%s: fd %d was closed while waiting", fn,
			       fd);
	return g->io_ready & events ? g->io_ready & events : events;
}

int tt_fd_wait(int fd, int events, int64_t deadline)
{
	return fd_wait("tt_fd_wait", fd, events, deadline, NULL, true,
		       TT_WAIT_IO_WAIT);
}

int tt__fd_wait_reason(const char *fn, int fd, int events, uint8_t reason)
{
	return fd_wait(fn, fd, events, TT_FOREVER, NULL, true, reason);
}

/* A context that is done: its error, with Go's words for it. */
static int ctx_ended(const char *fn, int fd, int err)
{
	return tt__err(err, "%s: fd %d: %s", fn, fd,
		       err == -ETIMEDOUT ? "context deadline exceeded"
					 : "context canceled");
}

/* The done channel of a context for the ctx forms (NULL for contexts
 * that are never cancelled, like background), or the error of a bad or
 * already done ctx: a done context does not even try the I/O. */
static int ctx_done(const char *fn, tt_ctx *ctx, int fd, tt_chan **done)
{
	if (ctx == NULL)
		return tt__err(-EINVAL, "%s: ctx is NULL", fn);
	int r = tt_ctx_err(ctx);
	if (r == -EINVAL || r == -EBADF)
		return r; /* tt_ctx_err said what was wrong */
	if (r)
		return ctx_ended(fn, fd, r);
	*done = tt_ctx_done(ctx);
	return 0;
}

/* The ctx forms park with no deadline of their own: a context with a
 * deadline has a timer that cancels it, closing its done channel, so an
 * I/O timer per wait would only repeat it. */
static int fd_wait_ctx(const char *fn, tt_ctx *ctx, tt_chan *done, int fd,
		       int events, bool look_first)
{
	if (done && TT_UNLIKELY(chan_of(done)->sched != tt__sched_get())) {
		/* Another thread's context: its done channel's queue is
		 * its owner's, not this thread's to put a waiter in. The
		 * wait is on a child of the context, this thread's, whose
		 * cancel interrupts it, as the sync forms' waits are
		 * (tt__ctx_wait_begin). */
		int64_t dl;
		tt_ctx *armed;
		int r = tt__ctx_wait_begin(ctx, &dl, &armed, fn);
		if (r == -EINVAL || r == -EBADF || r == -ENOMEM)
			return r;
		if (r)
			return ctx_ended(fn, fd, r);
		int w = fd_wait(fn, fd, events, dl, NULL, look_first,
				TT_WAIT_IO_WAIT);
		int e = (int)tt__ctx_wait_end(armed, w);
		/* No deadline of its own: a timeout is the context's. */
		return w == -ETIMEDOUT ? ctx_ended(fn, fd, e) : e;
	}
	/* An I/O call may wait several times (a long write); the context
	 * may have ended while it was writing. */
	int r = tt_ctx_err(ctx);
	if (r == 0) {
		r = fd_wait(fn, fd, events, TT_FOREVER, done, look_first,
			    TT_WAIT_IO_WAIT);
		if (r != -ECANCELED)
			return r;
		r = tt_ctx_err(ctx); /* how it ended */
	}
	return ctx_ended(fn, fd, r);
}

int tt_fd_wait_ctx(tt_ctx *ctx, int fd, int events)
{
	tt_chan *done = NULL;
	int r = ctx_done("tt_fd_wait_ctx", ctx, fd, &done);
	if (r)
		return r;
	return fd_wait_ctx("tt_fd_wait_ctx", ctx, done, fd, events, true);
}

int tt_fd_nonblock(int fd)
{
	if (fd >= 0)
		renew(fd, false);
	int fl = fcntl(fd, F_GETFL);
	if (fl < 0 || fcntl(fd, F_SETFL, fl | O_NONBLOCK) < 0)
		return tt__err(-errno, "tt_fd_nonblock: fd %d: %s", fd,
			       strerror(errno));
	return 0;
}

/* How the I/O calls below wait after EAGAIN: until a deadline, or for a
 * context. */
typedef struct waitspec {
	const char *fn;
	int64_t deadline; /* without ctx */
	tt_ctx *ctx;      /* or NULL */
	tt_chan *done;    /* ctx's done channel (NULL: never closed) */
} waitspec;

static int wait_for(const waitspec *ws, int fd, int events)
{
	if (ws->ctx)
		return fd_wait_ctx(ws->fn, ws->ctx, ws->done, fd, events,
				   false);
	return fd_wait(ws->fn, fd, events, ws->deadline, NULL, false,
		       TT_WAIT_IO_WAIT);
}

static ssize_t do_read(const waitspec *ws, int fd, void *buf, size_t n)
{
	for (;;) {
		ssize_t r = read(fd, buf, n);
		if (r >= 0)
			return r;
		if (errno == EINTR)
			continue;
		if (errno != EAGAIN && errno != EWOULDBLOCK)
			return tt__err(-errno, "%s: fd %d: %s", ws->fn, fd,
				       strerror(errno));
		int w = wait_for(ws, fd, TT_FD_READ);
		if (w < 0)
			return w;
	}
}

static ssize_t do_write(const waitspec *ws, int fd, const void *buf,
			size_t n)
{
	size_t done = 0;
	while (done < n) {
		ssize_t r = write(fd, (const char *)buf + done, n - done);
		if (r >= 0) {
			done += (size_t)r;
			continue;
		}
		if (errno == EINTR)
			continue;
		int e = errno;
		if (e == EAGAIN || e == EWOULDBLOCK) {
			int w = wait_for(ws, fd, TT_FD_WRITE);
			if (w > 0)
				continue;
			e = -w;
		} else {
			tt__err(-e, "%s: fd %d: %s", ws->fn, fd, strerror(e));
		}
		return done ? (ssize_t)done : -e;
	}
	return (ssize_t)done;
}

static int do_accept(const waitspec *ws, int fd, struct sockaddr *addr,
		     socklen_t *addrlen)
{
	for (;;) {
		int c = accept4(fd, addr, addrlen,
				SOCK_NONBLOCK | SOCK_CLOEXEC);
		if (c >= 0) {
			renew(c, true);
			/* As Go's accepted TCP connections: no Nagle delay.
			 * Other sockets refuse the option; that is fine. */
			int one = 1;
			(void)setsockopt(c, IPPROTO_TCP, TCP_NODELAY, &one,
					 sizeof one);
			return c;
		}
		if (errno == EINTR || errno == ECONNABORTED)
			continue;
		if (errno != EAGAIN && errno != EWOULDBLOCK)
			return tt__err(-errno, "%s: fd %d: %s", ws->fn, fd,
				       strerror(errno));
		int w = wait_for(ws, fd, TT_FD_READ);
		if (w < 0)
			return w;
	}
}

ssize_t tt_read(int fd, void *buf, size_t n, int64_t deadline)
{
	waitspec ws = {.fn = "tt_read", .deadline = deadline};
	return do_read(&ws, fd, buf, n);
}

ssize_t tt_write(int fd, const void *buf, size_t n, int64_t deadline)
{
	waitspec ws = {.fn = "tt_write", .deadline = deadline};
	return do_write(&ws, fd, buf, n);
}

int tt_accept(int fd, struct sockaddr *addr, socklen_t *addrlen,
	      int64_t deadline)
{
	waitspec ws = {.fn = "tt_accept", .deadline = deadline};
	return do_accept(&ws, fd, addr, addrlen);
}

ssize_t tt_read_ctx(tt_ctx *ctx, int fd, void *buf, size_t n)
{
	waitspec ws = {.fn = "tt_read_ctx", .ctx = ctx};
	int r = ctx_done(ws.fn, ctx, fd, &ws.done);
	return r ? r : do_read(&ws, fd, buf, n);
}

ssize_t tt_write_ctx(tt_ctx *ctx, int fd, const void *buf, size_t n)
{
	waitspec ws = {.fn = "tt_write_ctx", .ctx = ctx};
	int r = ctx_done(ws.fn, ctx, fd, &ws.done);
	return r ? r : do_write(&ws, fd, buf, n);
}

int tt_accept_ctx(tt_ctx *ctx, int fd, struct sockaddr *addr,
		  socklen_t *addrlen)
{
	waitspec ws = {.fn = "tt_accept_ctx", .ctx = ctx};
	int r = ctx_done(ws.fn, ctx, fd, &ws.done);
	return r ? r : do_accept(&ws, fd, addr, addrlen);
}

int tt_connect(int fd, const struct sockaddr *addr, socklen_t addrlen,
	       int64_t deadline)
{
	if (fd >= 0)
		renew(fd, false); /* a new socket, most likely */
	if (connect(fd, addr, addrlen) == 0)
		return 0;
	if (errno != EINPROGRESS && errno != EINTR)
		return tt__err(-errno, "tt_connect: fd %d: %s", fd,
			       strerror(errno));
	int w = tt_fd_wait(fd, TT_FD_WRITE, deadline);
	if (w < 0)
		return w;
	int err = 0;
	socklen_t len = sizeof err;
	if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) != 0)
		return tt__err(-errno, "tt_connect: getsockopt: %s",
			       strerror(errno));
	if (err)
		return tt__err(-err, "tt_connect: fd %d: %s", fd,
			       strerror(err));
	return 0;
}
