/* tether — errors, panics and fatal reports.
 *
 * Errors are returned as negative errno values; the sentence that says
 * what was wrong is kept per goroutine (in its record, so it follows the
 * goroutine across switches) for tt_last_error().
 *
 * Panics follow Go's layout, prefixed with "tether: ":
 *
 *   tether: panic: close of closed channel
 *
 *   goroutine 7 [running]:
 *   <frames>
 *
 * and abort, so a core dump or a debugger catches the process where it
 * failed. Fatal errors (deadlock) print "fatal error: ..." and exit(2) as
 * Go's runtime does.
 */
#include <errno.h>
#include <execinfo.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "internal.h"
#include "profile/profile.h"

int tt__write_all(int fd, const char *buf, size_t n)
{
	while (n > 0) {
		ssize_t w = write(fd, buf, n);
		if (w < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		buf += w;
		n -= (size_t)w;
	}
	return 0;
}

size_t tt__utoa(char *buf, uint64_t v)
{
	char tmp[24];
	size_t n = 0;
	do {
		tmp[n++] = (char)('0' + v % 10);
		v /= 10;
	} while (v);
	for (size_t i = 0; i < n; i++)
		buf[i] = tmp[n - 1 - i];
	buf[n] = '\0';
	return n;
}

#define ERRMSG_SIZE sizeof(((tt__g *)0)->errmsg)

char *tt__g_errbuf(tt__g *g, bool make)
{
	if (TT_LIKELY(!g->shared))
		return g->errmsg;
	/* A shared-stack record stops before errmsg (TT__G_SHARED_SIZE). */
	if (g->errbuf == NULL && make && (g->errbuf = malloc(ERRMSG_SIZE)))
		g->errbuf[0] = '\0';
	return g->errbuf;
}

int tt__err(int err, const char *fmt, ...)
{
	tt__g *g = tt__current();
	char *buf = tt__g_errbuf(g, true);
	if (buf) {
		va_list ap;
		va_start(ap, fmt);
		vsnprintf(buf, ERRMSG_SIZE, fmt, ap);
		va_end(ap);
	}
	g->last_err = err;
	return err;
}

/* -1 until read from TETHER_STRICT; then 0 or 1 (tt_set_strict). */
static _Atomic int strict = -1;

static bool strict_on(void)
{
	int v = atomic_load_explicit(&strict, memory_order_relaxed);
	if (TT_UNLIKELY(v < 0)) {
		const char *e = getenv("TETHER_STRICT");
		v = e && *e && strcmp(e, "0") != 0;
		int expect = -1;
		atomic_compare_exchange_strong(&strict, &expect, v);
		v = atomic_load_explicit(&strict, memory_order_relaxed);
	}
	return v;
}

bool tt_set_strict(bool on)
{
	bool was = strict_on();
	atomic_store_explicit(&strict, on, memory_order_relaxed);
	return was;
}

int tt__misuse(int err, const char *fmt, ...)
{
	char msg[ERRMSG_SIZE];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof msg, fmt, ap);
	va_end(ap);
	if (strict_on())
		tt__panic("%s", msg);
	return tt__err(err, "%s", msg);
}

const char *tt_last_error(void)
{
	const char *m = tt__g_errbuf(tt__current(), false);
	return m ? m : "";
}

const char *tt_strerror(int err)
{
	if (err < 0)
		err = -err;
	if (err == 0)
		return "success";
	const char *d = strerrordesc_np(err);
	return d ? d : "unknown error";
}

void tt__print_goroutine_header(int fd, tt__g *g)
{
	const char *state;
	switch (g->state) {
	case TT_G_RUNNING:
		state = "running";
		break;
	case TT_G_RUNNABLE:
		state = "runnable";
		break;
	case TT_G_WAITING:
		state = tt__wait_reason_str[g->reason];
		if (!*state)
			state = "waiting";
		break;
	default:
		state = "dead";
		break;
	}
	dprintf(fd, "goroutine %lld [%s", (long long)g->id, state);
	if (g->state == TT_G_WAITING && g->wait_since > 0) {
		int64_t mins = (tt__coarse_now() - g->wait_since) / TT_MINUTE;
		if (mins >= 1)
			dprintf(fd, ", %lld minutes", (long long)mins);
	}
	dprintf(fd, "]:\n");
}

/* The calling goroutine's frames, in runtime.Stack's layout (the trace
 * and profile layers unwind and symbolize them). */
void tt__print_traceback(int fd)
{
	tt__print_stacks(fd, false);
}

static void report_current(void)
{
	if (tt__tls_sched && tt__tls_sched->current) {
		dprintf(2, "\n");
		tt__print_stacks(2, false);
	}
}

void tt__panic(const char *fmt, ...)
{
	char msg[512];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof msg, fmt, ap);
	va_end(ap);
	dprintf(2, "tether: panic: %s\n", msg);
	report_current();
	abort();
}

void tt__fatal(const char *fmt, ...)
{
	char msg[512];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof msg, fmt, ap);
	va_end(ap);
	dprintf(2, "tether: fatal error: %s\n", msg);
	report_current();
	abort();
}

/* Another thread's part of a deadlock report or a SIGQUIT dump: it
 * prints its own goroutines where it takes its posts (its idle wait, in
 * a deadlock, where only a post wakes it), as the reporter does. */
static void print_part(tt__sched *s, tt__post *p)
{
	(void)s;
	_Atomic int *done = (_Atomic int *)(uintptr_t)p->h;
	tt__print_stacks(2, true);
	atomic_store(done, 1);
	tt__post_answer(p);
}

/* t prints its own goroutines, on its thread; the caller waits up to
 * `wait` for it. false when it did not finish in time (said so: nothing
 * more is to be printed after it). */
static bool print_on(tt__sched *t, int64_t wait)
{
	_Atomic int done = 0;
	tt__post *p = tt__post_new(0, "goroutine dump");
	if (p == NULL)
		return false;
	p->run = print_part;
	p->h = (const void *)&done;
	p->quiet = true;
	if (tt__post_send(t, p) != 0)
		return true; /* ended meanwhile: nothing of it to list */
	int64_t until = tt_now() + wait;
	while (!atomic_load(&done) && tt_now() < until) {
		struct timespec ts = {0, 200000};
		nanosleep(&ts, NULL);
	}
	if (atomic_load(&done))
		return true;
	/* It may yet print: print no more after it. */
	dprintf(2, "tether: a thread did not list its goroutines within %lld "
		   "ms (it runs code outside tether); the rest are not listed\n",
		(long long)(wait / TT_MILLISECOND));
	return false;
}

/* Every thread but s and skip prints its goroutines, in turn. */
static void print_others_but(tt__sched *s, tt__sched *skip, int64_t wait)
{
	tt__sched *few[64];
	size_t n = tt__sched_others(s, few, 64);
	for (size_t i = 0; i < n && i < 64; i++)
		if (few[i] != skip && !print_on(few[i], wait))
			break;
}

void tt__print_other_threads(tt__sched *s, int64_t wait)
{
	print_others_but(s, NULL, wait);
}

void tt__fatal_report(const char *head, tt__sched *s)
{
	dprintf(2, "fatal error: %s\n\n", head);
	/* Every thread is asleep (post.c): each other one prints its own,
	 * in turn, so that the report lists the goroutines of the process.
	 * Main's come first whoever reports, as Go lists goroutine 1 first;
	 * then the reporter's, then the rest. */
	tt__sched *m = tt__procs_main();
	bool main_first = s->worker && m != NULL && m != s;
	if (main_first && !print_on(m, TT_SECOND))
		exit(2);
	tt__print_stacks(2, true);
	print_others_but(s, main_first ? m : NULL, TT_SECOND);
	exit(2);
}
