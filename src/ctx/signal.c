/* tether — signal.NotifyContext: a context cancelled when a signal
 * arrives.
 *
 * Design notes
 * ------------
 * A watch is a cancelable context (tt__ctx_with_stop) plus a signalfd for
 * its signals, which are blocked in the calling thread so that they wait
 * to be read instead of taking their usual action. A goroutine reads the
 * descriptor through the poller (tt_read_ctx on the watch's own context,
 * so the context's end also ends the read); the first signal read cancels
 * every watch of the thread that listens for it (a process-directed
 * signal is read from one descriptor only, while Go delivers it to every
 * Notify channel) and the goroutine ends.
 *
 * As in Go, the signals stay caught — blocked, read by nobody, so merged
 * into one pending signal each — until the program calls stop, which is
 * tt_ctx_cancel on the watch's context (or until its last reference is
 * released). Stop then restores what was there before: it reads what is
 * pending (handing it to the thread's other watches of that signal), so
 * a signal caught while the watch was active never takes its old action
 * later, closes the descriptor, and unblocks what the watch blocked.
 *
 * Several watches of a thread may share signals: sig_users counts, per
 * signal, the thread's watches that listen for it, and a signal is
 * unblocked when the last of them stops, and only if it was not already
 * blocked before the first one (sig_blocked_by_us). Everything here runs
 * on the watch's thread (contexts, like signal masks, are per thread). */
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/signalfd.h>
#include <unistd.h>

#include "internal.h"
#include "tether/ctx.h"
#include "tether/fd.h"

typedef struct sigwatch sigwatch;
struct sigwatch {
	sigwatch *prev, *next; /* the thread's armed watches */
	tt_ctx *ctx;           /* handle; the goroutine holds a reference */
	sigset_t set;
	int fd;                /* signalfd, -1 once disarmed */
	bool armed;            /* signals blocked, fd open, in the list */
	char label[160];       /* ", [interrupt terminated])" */
};

static __thread sigwatch *watches;
static __thread unsigned sig_users[_NSIG];
static __thread sigset_t sig_blocked_by_us;

/* Go's names for the signals (os.Signal's String). */
static const char *sig_name(int sig, char *buf, size_t n)
{
	switch (sig) {
	case SIGINT:
		return "interrupt";
	case SIGTERM:
		return "terminated";
	case SIGHUP:
		return "hangup";
	case SIGQUIT:
		return "quit";
	case SIGUSR1:
		return "user defined signal 1";
	case SIGUSR2:
		return "user defined signal 2";
	case SIGPIPE:
		return "broken pipe";
	case SIGALRM:
		return "alarm clock";
	case SIGCHLD:
		return "child exited";
	case SIGWINCH:
		return "window changed";
	default:
		snprintf(buf, n, "signal %d", sig);
		return buf;
	}
}

/* The signal arrived: cancel every armed watch of this thread that
 * listens for it, except `except`. */
static void deliver(int sig, const sigwatch *except)
{
	for (sigwatch *w = watches; w; w = w->next)
		if (w != except && sigismember(&w->set, sig))
			tt__ctx_cancel_quiet(w->ctx);
}

/* Restore what w changed (see the notes); idempotent. */
static void disarm(sigwatch *w)
{
	if (!w->armed)
		return;
	w->armed = false;
	if (w->prev)
		w->prev->next = w->next;
	else
		watches = w->next;
	if (w->next)
		w->next->prev = w->prev;
	w->prev = w->next = NULL;
	struct signalfd_siginfo si;
	while (read(w->fd, &si, sizeof si) == (ssize_t)sizeof si)
		deliver((int)si.ssi_signo, w);
	tt_close(w->fd);
	w->fd = -1;
	sigset_t unblock;
	sigemptyset(&unblock);
	for (int sig = 1; sig < _NSIG; sig++) {
		if (!sigismember(&w->set, sig))
			continue;
		if (--sig_users[sig] == 0 &&
		    sigismember(&sig_blocked_by_us, sig)) {
			sigdelset(&sig_blocked_by_us, sig);
			sigaddset(&unblock, sig);
		}
	}
	pthread_sigmask(SIG_UNBLOCK, &unblock, NULL);
}

/* The context's stop hook: tt_ctx_cancel on it (Go's stop), or its
 * release. */
static void watch_stop(void *p, bool freeing)
{
	sigwatch *w = p;
	disarm(w);
	if (freeing)
		free(w);
}

static void watch_main(void *p)
{
	sigwatch *w = p;
	tt_ctx *ctx = w->ctx;
	while (w->armed) {
		struct signalfd_siginfo si;
		ssize_t n = tt_read_ctx(ctx, w->fd, &si, sizeof si);
		if (n == (ssize_t)sizeof si) {
			deliver((int)si.ssi_signo, NULL);
			break;
		}
		if (n != -EAGAIN && n != -EINTR)
			break; /* the context is done, or stop closed fd */
	}
	/* May free the context, and w with it. */
	tt_ctx_release(ctx);
}

static bool sig_refused(int sig)
{
	return sig == SIGKILL || sig == SIGSTOP || sig == SIGSEGV ||
	       sig == SIGBUS || sig == SIGFPE || sig == SIGILL ||
	       sig == SIGTRAP || sig == SIGABRT || sig == SIGSYS;
}

int tt_ctx_notify_signals(tt_ctx **out, tt_ctx *parent, const int *sigs,
			  size_t nsigs)
{
	const char *op = "tt_ctx_notify_signals";
	if (out == NULL)
		return tt__err(-EINVAL, "%s: out is NULL", op);
	*out = NULL;
	if (sigs == NULL || nsigs == 0)
		return tt__err(-EINVAL,
			       "%s: no signals given (list them: Go's \"all "
			       "signals\" would block the ones the runtime "
			       "needs)",
			       op);
	sigwatch *w = calloc(1, sizeof *w);
	if (w == NULL)
		return tt__err(-ENOMEM, "%s: out of memory", op);
	w->fd = -1;
	sigemptyset(&w->set);
	size_t len = (size_t)snprintf(w->label, sizeof w->label, ", [");
	for (size_t i = 0; i < nsigs; i++) {
		int sig = sigs[i];
		if (sig <= 0 || sig >= _NSIG || sig_refused(sig)) {
			free(w);
			return tt__err(-EINVAL,
				       "%s: signal %d cannot be waited for%s", op,
				       sig,
				       sig <= 0 || sig >= _NSIG
					       ? " (no such signal)"
					       : " (it cannot be blocked, or "
						 "it reports a fault)");
		}
		if (sigismember(&w->set, sig))
			continue;
		sigaddset(&w->set, sig);
		char nb[24];
		if (len < sizeof w->label)
			len += (size_t)snprintf(w->label + len,
						sizeof w->label - len, "%s%s",
						len > 3 ? " " : "",
						sig_name(sig, nb, sizeof nb));
	}
	if (len < sizeof w->label)
		snprintf(w->label + len, sizeof w->label - len, "])");

	tt_ctx *ctx;
	int r = tt__ctx_with_stop(&ctx, parent, watch_stop, w,
				  "signal.NotifyContext(", w->label, op);
	if (r) {
		free(w);
		return r;
	}
	w->ctx = ctx;
	/* From here on the context owns w (freed by its stop hook). */

	sigset_t old;
	if ((r = pthread_sigmask(SIG_BLOCK, &w->set, &old)) != 0) {
		r = tt__err(-r, "%s: pthread_sigmask: %s", op, strerror(r));
		goto fail;
	}
	w->fd = signalfd(-1, &w->set, SFD_NONBLOCK | SFD_CLOEXEC);
	if (w->fd < 0) {
		r = tt__err(-errno, "%s: signalfd: %s", op, strerror(errno));
		/* Undo what this call blocked. */
		sigset_t undo;
		sigemptyset(&undo);
		for (int sig = 1; sig < _NSIG; sig++)
			if (sigismember(&w->set, sig) &&
			    !sigismember(&old, sig))
				sigaddset(&undo, sig);
		pthread_sigmask(SIG_UNBLOCK, &undo, NULL);
		goto fail;
	}
	for (int sig = 1; sig < _NSIG; sig++) {
		if (!sigismember(&w->set, sig))
			continue;
		if (sig_users[sig]++ == 0 && !sigismember(&old, sig))
			sigaddset(&sig_blocked_by_us, sig);
	}
	w->armed = true;
	w->next = watches;
	if (watches)
		watches->prev = w;
	watches = w;

	/* As in Go, a context already done (its parent was) needs no
	 * goroutine; the signals are still caught until stop. */
	if (tt_ctx_err(ctx) == 0) {
		tt_ctx_retain(ctx);
		/* On this thread: the watches and the mask are its. */
		tt_go_attr attr = {.name = "signal.NotifyContext",
				   .flags = TT_GO_THIS_THREAD};
		int64_t g = tt_go_with(&attr, watch_main, w);
		if (g < 0) {
			tt_ctx_release(ctx);
			r = (int)g;
			goto fail;
		}
	}
	*out = ctx;
	return 0;

fail:
	/* Cancelling runs the stop hook (disarm); the release frees w. */
	tt_ctx_cancel(ctx);
	tt_ctx_release(ctx);
	return r;
}
