/* tether — the thread leak check: list the process's threads, catch each
 * one's stack, filter, retry, and print goleak's layout (see
 * include/tether/threads.h).
 *
 * Design notes
 *
 * Threads come from two places: /proc/self/task (every live thread, with
 * its comm and kernel state) and the registry (creators, and joinable
 * threads that have finished but were never joined, which /proc no
 * longer lists). A live thread is matched to its slot by tid.
 *
 * Catching a stack. The checker sends the thread a real-time signal with
 * tgkill and waits up to 100 ms for the handler to fill a capture record.
 * The handler is async-signal-safe: it reads one atomic pointer, unwinds
 * from the signal's ucontext with libunwind (which takes no lock that a
 * signal could interrupt: it blocks signals around its own caches) into
 * the record's preallocated array, and publishes with a release store.
 * Records are malloc'ed by the checker, never by the handler; one that
 * timed out is left allocated (a late handler may still write to it)
 * rather than reused. Captures are serialized by cap_lock. A thread that
 * blocks the signal (SigBlk in /proc/self/task/TID/status) is not sent
 * it. The signal is SIGRTMAX-3 unless TETHER_THREADLEAK_SIGNAL names
 * another; when the program has its own handler on it, stacks are not
 * caught. Interrupted system calls restart (SA_RESTART), except the ones
 * Linux never restarts after a handler (nanosleep, poll, epoll_wait, ...):
 * such a call in a checked thread may return early with EINTR. */
#include <dirent.h>
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#define UNW_LOCAL_ONLY
#include <libunwind.h>

#include "internal.h"
#include "profile/profile.h"
#include "tether/threads.h"
#include "threads/threads.h"
#include "trace/trace.h"

static pthread_mutex_t cap_lock;
typedef struct cap cap;
static _Atomic(cap *) cur_cap;

/* --- the registry -------------------------------------------------------- */

static tt__thr_registry empty_registry = {
	.magic = TT__THR_MAGIC,
	.lock = PTHREAD_MUTEX_INITIALIZER,
};
static _Atomic(tt__thr_registry *) registry;
static _Atomic int tracking = -1;

tt__thr_registry *tt__thr_registry_get(void)
{
	tt__thr_registry *r = atomic_load(&registry);
	if (r)
		return r;
	r = dlsym(RTLD_DEFAULT, "tt__threads_registry_v1");
	bool ok = r && r->magic == TT__THR_MAGIC;
	atomic_store(&tracking, ok);
	if (!ok)
		r = &empty_registry;
	atomic_store(&registry, r);
	return r;
}

void tt__thr_fork_child(void)
{
	pthread_mutex_t fresh = PTHREAD_MUTEX_INITIALIZER;
	cap_lock = fresh;
	atomic_store(&cur_cap, NULL);
}

bool tt__thr_tracking(void)
{
	tt__thr_registry_get();
	return atomic_load(&tracking) == 1;
}

bool tt_threads_tracking(void)
{
	return tt__thr_tracking();
}

/* --- options ------------------------------------------------------------- */

typedef struct strs {
	char **v;
	size_t n;
} strs;

typedef struct known {
	int tid;
	uint32_t gen; /* slot gen for finished threads; 0 for live ones */
} known;

struct tt_threads_opts {
	strs top, any, created_by, name;
	known *cur;
	size_t ncur;
	int max_retries;
	int64_t max_sleep;
	int64_t linger;
};

int tt_threads_opts_make(tt_threads_opts **out)
{
	if (!out)
		return -EINVAL;
	tt_threads_opts *o = calloc(1, sizeof *o);
	if (!o)
		return -ENOMEM;
	o->max_retries = 20;
	o->max_sleep = 100 * TT_MILLISECOND;
	*out = o;
	return 0;
}

static void strs_free(strs *s)
{
	for (size_t i = 0; i < s->n; i++)
		free(s->v[i]);
	free(s->v);
}

void tt_threads_opts_free(tt_threads_opts *o)
{
	if (!o)
		return;
	strs_free(&o->top);
	strs_free(&o->any);
	strs_free(&o->created_by);
	strs_free(&o->name);
	free(o->cur);
	free(o);
}

static int strs_add(tt_threads_opts *o, strs *s, const char *v)
{
	if (!o || !v || !*v)
		return -EINVAL;
	char **nv = realloc(s->v, (s->n + 1) * sizeof *nv);
	if (!nv)
		return -ENOMEM;
	s->v = nv;
	if (!(nv[s->n] = strdup(v)))
		return -ENOMEM;
	s->n++;
	return 0;
}

int tt_threads_ignore_top_function(tt_threads_opts *o, const char *fn)
{
	return strs_add(o, o ? &o->top : NULL, fn);
}

int tt_threads_ignore_any_function(tt_threads_opts *o, const char *fn)
{
	return strs_add(o, o ? &o->any : NULL, fn);
}

int tt_threads_ignore_created_by(tt_threads_opts *o, const char *fn)
{
	return strs_add(o, o ? &o->created_by : NULL, fn);
}

int tt_threads_ignore_name(tt_threads_opts *o, const char *name)
{
	return strs_add(o, o ? &o->name : NULL, name);
}

int tt_threads_retry(tt_threads_opts *o, int max_retries, int64_t max_sleep)
{
	if (!o || max_retries < 0 || max_sleep < TT_MICROSECOND)
		return -EINVAL;
	o->max_retries = max_retries;
	o->max_sleep = max_sleep;
	return 0;
}

int tt_threads_linger(tt_threads_opts *o, int64_t ns)
{
	if (!o || ns < 0)
		return -EINVAL;
	o->linger = ns;
	return 0;
}

static bool strs_has(const strs *s, const char *v)
{
	for (size_t i = 0; i < s->n; i++)
		if (strcmp(s->v[i], v) == 0)
			return true;
	return false;
}

/* --- one look at the threads ---------------------------------------------- */

typedef struct thr {
	int tid;
	int creator_tid;
	uint32_t gen;          /* slot gen of a finished thread */
	bool finished;
	bool have_slot;
	char name[16];
	char state[32];
	uintptr_t fn;          /* entry function of a finished thread */
	uintptr_t cpcs[TT__THR_PCS];
	int ncpcs;
	uintptr_t *pcs;        /* current stack, innermost first */
	int npcs;
	const char *why;       /* why there is no stack */
} thr;

typedef struct look {
	thr *t;
	size_t n, cap;
} look;

static void look_free(look *l)
{
	for (size_t i = 0; i < l->n; i++)
		free(l->t[i].pcs);
	free(l->t);
	l->t = NULL;
	l->n = l->cap = 0;
}

static thr *look_add(look *l)
{
	if (l->n == l->cap) {
		size_t c = l->cap ? 2 * l->cap : 16;
		thr *nt = realloc(l->t, c * sizeof *nt);
		if (!nt)
			return NULL;
		l->t = nt;
		l->cap = c;
	}
	thr *t = &l->t[l->n++];
	memset(t, 0, sizeof *t);
	return t;
}

/* Reads /proc/self/task/TID/NAME into buf; returns the length or -1. */
static ssize_t read_task(int tid, const char *name, char *buf, size_t len)
{
	char path[64];
	snprintf(path, sizeof path, "/proc/self/task/%d/%s", tid, name);
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -1;
	ssize_t n = read(fd, buf, len - 1);
	close(fd);
	if (n < 0)
		return -1;
	buf[n] = 0;
	return n;
}

static const char *state_name(char c)
{
	switch (c) {
	case 'R': return "running";
	case 'S': return "sleeping";
	case 'D': return "disk sleep";
	case 'T': return "stopped";
	case 't': return "tracing stop";
	case 'Z': return "zombie";
	case 'X': return "dead";
	case 'I': return "idle";
	case 'P': return "parked";
	default: return "unknown";
	}
}

static void task_info(thr *t)
{
	char buf[512];
	if (read_task(t->tid, "comm", buf, sizeof buf) > 0) {
		buf[strcspn(buf, "\n")] = 0;
		buf[sizeof t->name - 1] = 0;
		memcpy(t->name, buf, strlen(buf) + 1);
	}
	snprintf(t->state, sizeof t->state, "unknown");
	if (read_task(t->tid, "stat", buf, sizeof buf) > 0) {
		/* "tid (comm) S ...": comm may hold spaces and parens. */
		char *p = strrchr(buf, ')');
		if (p && p[1] == ' ')
			snprintf(t->state, sizeof t->state, "%s",
				 state_name(p[2]));
	}
}

static void look_drop_sanitizer(look *l);

/* Takes the current threads: live ones from /proc, finished-unjoined ones
 * from the registry. */
static int look_take(look *l)
{
	int me = (int)gettid(), main_tid = (int)getpid();
	DIR *d = opendir("/proc/self/task");
	if (!d)
		return -errno;
	struct dirent *e;
	while ((e = readdir(d))) {
		int tid = atoi(e->d_name);
		/* tether's own threads (the blocking-call pool, the Ps'
		 * workers) are the runtime's, as Go's own Ms are never a
		 * leak. */
		if (tid <= 0 || tid == me || tid == main_tid ||
		    tt__blocking_owns_tid(tid) || tt__procs_owns_tid(tid))
			continue;
		thr *t = look_add(l);
		if (!t) {
			closedir(d);
			return -ENOMEM;
		}
		t->tid = tid;
		task_info(t);
	}
	closedir(d);

	tt__thr_registry *r = tt__thr_registry_get();
	pthread_mutex_lock(&r->lock);
	for (int i = 0; i < r->hw; i++) {
		tt__thr *s = &r->slot[i];
		int tid = atomic_load(&s->tid);
		if (s->state == TT__THR_LIVE && tid) {
			for (size_t k = 0; k < l->n; k++) {
				thr *t = &l->t[k];
				if (t->tid != tid || t->have_slot)
					continue;
				t->have_slot = true;
				t->creator_tid = s->parent_tid;
				t->ncpcs = s->npcs;
				memcpy(t->cpcs, s->pcs, sizeof s->pcs);
			}
		} else if (s->state == TT__THR_EXITED && tid != me) {
			thr *t = look_add(l);
			if (!t)
				break;
			t->tid = tid;
			t->gen = s->gen;
			t->finished = true;
			t->have_slot = true;
			t->creator_tid = s->parent_tid;
			t->ncpcs = s->npcs;
			memcpy(t->cpcs, s->pcs, sizeof s->pcs);
			t->fn = (uintptr_t)s->fn;
			memcpy(t->name, s->name, sizeof t->name);
			t->name[sizeof t->name - 1] = 0;
			snprintf(t->state, sizeof t->state,
				 "finished, not joined");
		}
	}
	pthread_mutex_unlock(&r->lock);
	look_drop_sanitizer(l);
	return 0;
}

/* --- catching stacks ------------------------------------------------------ */

#define CAP_MAX TT__TRACE_MAX

struct cap {
	_Atomic int tid;
	_Atomic int done;
	int n;
	uintptr_t pcs[CAP_MAX];
};

static pthread_mutex_t cap_lock = PTHREAD_MUTEX_INITIALIZER;
static int cap_sig;         /* 0: not set up yet; -1: unusable */
static const char *cap_why; /* why not, when -1 */

static void on_cap_signal(int sig, siginfo_t *si, void *ucv)
{
	(void)sig;
	int saved = errno;
	cap *c = atomic_load_explicit(&cur_cap, memory_order_acquire);
	if (c && si->si_code == SI_TKILL && si->si_pid == getpid() &&
	    atomic_load(&c->tid) == (int)syscall(SYS_gettid)) {
		unw_cursor_t cur;
		int n = 0;
		if (unw_init_local2(&cur, (unw_context_t *)ucv,
				    UNW_INIT_SIGNAL_FRAME) == 0) {
			do {
				unw_word_t ip;
				if (unw_get_reg(&cur, UNW_REG_IP, &ip) < 0 ||
				    ip == 0)
					break;
				c->pcs[n++] = (uintptr_t)ip;
			} while (n < CAP_MAX && unw_step(&cur) > 0);
		}
		c->n = n;
		atomic_store_explicit(&c->done, 1, memory_order_release);
	}
	errno = saved;
}

/* Installs the handler once (cap_lock held). */
static void cap_setup_locked(void)
{
	if (cap_sig)
		return;
	int sig = SIGRTMAX - 3;
	const char *env = getenv("TETHER_THREADLEAK_SIGNAL");
	if (env && *env) {
		int v = atoi(env);
		if (v >= SIGRTMIN && v <= SIGRTMAX)
			sig = v;
	}
	struct sigaction old;
	if (sigaction(sig, NULL, &old) != 0 ||
	    (old.sa_flags & SA_SIGINFO ? old.sa_sigaction != NULL
				       : old.sa_handler != SIG_DFL)) {
		cap_sig = -1;
		cap_why = "the program has a handler on the capture signal; "
			  "set TETHER_THREADLEAK_SIGNAL";
		return;
	}
	struct sigaction sa;
	memset(&sa, 0, sizeof sa);
	sa.sa_sigaction = on_cap_signal;
	sa.sa_flags = SA_SIGINFO | SA_RESTART;
	sigfillset(&sa.sa_mask);
	if (sigaction(sig, &sa, NULL) != 0) {
		cap_sig = -1;
		cap_why = "sigaction failed";
		return;
	}
	cap_sig = sig;
}

/* Thread tid's blocked signals (bit sig-1 for sig); 0 when unknown. */
static unsigned long long sig_mask(int tid)
{
	char buf[2048];
	if (read_task(tid, "status", buf, sizeof buf) <= 0)
		return 0;
	char *p = strstr(buf, "SigBlk:");
	return p ? strtoull(p + 7, NULL, 16) : 0;
}

static bool sig_blocked(int tid, int sig)
{
	return (sig_mask(tid) >> (sig - 1)) & 1;
}

static void capture(thr *t)
{
	pthread_mutex_lock(&cap_lock);
	cap_setup_locked();
	if (cap_sig < 0) {
		t->why = cap_why;
		goto out;
	}
	if (sig_blocked(t->tid, cap_sig)) {
		t->why = "the thread blocks the capture signal";
		goto out;
	}
	cap *c = calloc(1, sizeof *c);
	if (!c) {
		t->why = "out of memory";
		goto out;
	}
	atomic_store(&c->tid, t->tid);
	atomic_store_explicit(&cur_cap, c, memory_order_release);
	if (syscall(SYS_tgkill, getpid(), t->tid, cap_sig) != 0) {
		atomic_store(&cur_cap, NULL);
		free(c);
		t->why = "the thread is gone";
		goto out;
	}
	bool done = false;
	for (int i = 0; i < 1000 && !done; i++) {
		done = atomic_load_explicit(&c->done, memory_order_acquire);
		if (!done) {
			struct timespec ts = {0, 100 * 1000};
			nanosleep(&ts, NULL);
		}
	}
	atomic_store(&cur_cap, NULL);
	if (!done) {
		/* A late handler may still write to c: left allocated. */
		t->why = "the thread did not answer the capture signal";
		goto out;
	}
	t->pcs = malloc((size_t)(c->n ? c->n : 1) * sizeof *t->pcs);
	if (t->pcs) {
		memcpy(t->pcs, c->pcs, (size_t)c->n * sizeof *t->pcs);
		t->npcs = c->n;
	}
	free(c);
out:
	pthread_mutex_unlock(&cap_lock);
}

/* --- symbols and text ------------------------------------------------------ */

#define SYM_MAX 8

/* Innermost function name of pc. */
static const char *func_of(uintptr_t pc, bool ret)
{
	tt__frame f[SYM_MAX];
	int n = tt__symbolize(pc, ret, f, SYM_MAX);
	return n > 0 ? f[0].func : "?";
}

/* Writes the frames of pcs; the first PC is a current PC when first_ip. */
static void put_frames(tt__buf *b, const uintptr_t *pcs, int n, bool first_ip)
{
	for (int i = 0; i < n; i++) {
		tt__frame f[SYM_MAX];
		bool ret = !(i == 0 && first_ip);
		int k = tt__symbolize(pcs[i], ret, f, SYM_MAX);
		for (int j = 0; j < k; j++) {
			tt__buf_printf(b, "%s(...)\n\t%s:%d", f[j].func,
				       f[j].file ? f[j].file
				       : f[j].module ? f[j].module : "?",
				       f[j].line);
			if (!f[j].inlined && f[j].entry)
				tt__buf_printf(b, " +0x%" PRIxPTR,
					       pcs[i] - f[j].entry);
			tt__buf_puts(b, "\n");
		}
	}
}

/* Does the stack of t name fn anywhere? */
static bool stack_has(const thr *t, const char *fn)
{
	for (int i = 0; i < t->npcs; i++) {
		tt__frame f[SYM_MAX];
		int k = tt__symbolize(t->pcs[i], i > 0, f, SYM_MAX);
		for (int j = 0; j < k; j++)
			if (strcmp(f[j].func, fn) == 0)
				return true;
	}
	return t->finished && t->fn && strcmp(func_of(t->fn, false), fn) == 0;
}

static const char *top_of(const thr *t)
{
	if (t->npcs > 0)
		return func_of(t->pcs[0], false);
	if (t->finished && t->fn)
		return func_of(t->fn, false);
	return "?";
}

/* The creator: the first frame of the creation stack outside the
 * interposer (unw_backtrace's first frame is pthread_create itself). */
static int creator_ix(const thr *t)
{
	for (int i = 0; i < t->ncpcs; i++) {
		const char *fn = func_of(t->cpcs[i], true);
		if (strcmp(fn, "pthread_create") != 0 &&
		    strncmp(fn, "___interceptor_", 15) != 0 &&
		    strncmp(fn, "__interceptor_", 14) != 0 &&
		    strcmp(fn, "unw_backtrace") != 0 &&
		    strncmp(fn, "_ULx86_64", 9) != 0 &&
		    strncmp(fn, "_ULaarch64", 10) != 0)
			return i;
	}
	return -1;
}

static const char *created_by(const thr *t)
{
	int i = creator_ix(t);
	return i < 0 ? "?" : func_of(t->cpcs[i], true);
}

/* A sanitizer's runtime is in the process (the program was built with
 * -fsanitize=..., whether or not tether was). */
extern void __tsan_init(void) __attribute__((weak));
extern void __asan_init(void) __attribute__((weak));
extern void __lsan_init(void) __attribute__((weak));

/* A sanitizer runtime's own thread (ThreadSanitizer's background
 * thread): the runtime's, like tether's pool, never the program's. */
static bool sanitizer_thread(const thr *t)
{
	if (!t->have_slot)
		return false;
	const char *fn = created_by(t);
	/* The name may be demangled ("__sanitizer::f") or not
	 * ("_ZN11__sanitizer1fE..."): skip a mangled prefix. */
	if (strncmp(fn, "_ZN", 3) == 0) {
		fn += 3;
		while (*fn >= '0' && *fn <= '9')
			fn++;
	}
	static const char *const ns[] = { "__sanitizer", "__tsan",
					  "__asan", "__lsan" };
	for (size_t i = 0; i < sizeof ns / sizeof ns[0]; i++) {
		size_t n = strlen(ns[i]);
		if (strncmp(fn, ns[i], n) == 0 &&
		    (fn[n] == ':' || (fn[n] >= '0' && fn[n] <= '9')))
			return true;
	}
	return false;
}


/* Whether thread tid blocks every signal a thread can block (but the two
 * glibc keeps for itself, 32 and 33, and SIGSYS, which a sanitizer's
 * thread leaves open): how TSan starts its background thread. */
static bool blocks_all_signals(int tid)
{
	unsigned long long mask = sig_mask(tid);
	for (int sig = 1; sig <= 64; sig++) {
		if (sig == SIGKILL || sig == SIGSTOP || sig == SIGSYS ||
		    sig == 32 || sig == 33)
			continue;
		if (!((mask >> (sig - 1)) & 1))
			return false;
	}
	return true;
}

/* Leaves out the sanitizer runtime's threads: known by their creator when
 * the preload tracked them; otherwise, under TSan, a live thread whose
 * creation tether did not see and that blocks every signal is taken as
 * TSan's background thread (a program's thread like that is still
 * reported by a build without TSan). */
static void look_drop_sanitizer(look *l)
{
	bool tsan = __tsan_init != NULL;
	/* Without a sanitizer there is nothing to drop, and no creator
	 * need be symbolized. */
	if (!tsan && !__asan_init && !__lsan_init)
		return;
	size_t k = 0;
	for (size_t i = 0; i < l->n; i++) {
		thr *t = &l->t[i];
		if (sanitizer_thread(t))
			continue;
		if (tsan && !t->have_slot && !t->finished &&
		    blocks_all_signals(t->tid))
			continue;
		l->t[k++] = *t;
	}
	l->n = k;
}

static void put_body(tt__buf *b, const thr *t)
{
	if (t->npcs > 0) {
		put_frames(b, t->pcs, t->npcs, true);
	} else if (t->finished && t->fn) {
		put_frames(b, &t->fn, 1, true);
	} else {
		tt__buf_printf(b, "(stack unavailable: %s)\n",
			       t->why ? t->why : "unknown");
	}
	int i = creator_ix(t);
	if (i < 0) {
		tt__buf_puts(b, "created by ?\n\t?:0\n");
		return;
	}
	tt__frame f[SYM_MAX];
	int k = tt__symbolize(t->cpcs[i], true, f, SYM_MAX);
	const tt__frame *phys = &f[k - 1];
	tt__buf_printf(b, "created by %s in thread %d\n\t%s:%d", f[0].func,
		       t->creator_tid,
		       f[0].file ? f[0].file : phys->module ? phys->module : "?",
		       f[0].line);
	if (k == 1 && phys->entry)
		tt__buf_printf(b, " +0x%" PRIxPTR, t->cpcs[i] - phys->entry);
	tt__buf_puts(b, "\n");
	/* The creator's inlined parents and callers. */
	for (int j = 1; j < k; j++) {
		tt__buf_printf(b, "%s(...)\n\t%s:%d", f[j].func,
			       f[j].file ? f[j].file : "?", f[j].line);
		if (!f[j].inlined && f[j].entry)
			tt__buf_printf(b, " +0x%" PRIxPTR,
				       t->cpcs[i] - f[j].entry);
		tt__buf_puts(b, "\n");
	}
	put_frames(b, t->cpcs + i + 1, t->ncpcs - i - 1, false);
}

static void put_record(tt__buf *b, const thr *t)
{
	tt__buf_printf(b, "[Thread %d \"%s\" in state %s, with %s on top of "
		       "the stack:\n", t->tid, t->name, t->state, top_of(t));
	put_body(b, t);
	tt__buf_puts(b, "]");
}

/* --- the check ------------------------------------------------------------- */

static bool is_current(const tt_threads_opts *o, const thr *t)
{
	for (size_t i = 0; i < o->ncur; i++)
		if (o->cur[i].tid == t->tid &&
		    o->cur[i].gen == (t->finished ? t->gen : 0))
			return true;
	return false;
}

static bool needs_stack(const tt_threads_opts *o)
{
	return o && (o->top.n || o->any.n);
}

/* Keeps the threads the options do not ignore. */
static void look_filter(look *l, const tt_threads_opts *o, bool stacks)
{
	size_t k = 0;
	for (size_t i = 0; i < l->n; i++) {
		thr *t = &l->t[i];
		/* A thread that was just joined can still be listed under
		 * /proc while the kernel finishes its exit; signal 0 asks
		 * whether it is really there, without disturbing it. */
		if (!t->finished && t->tid > 0 &&
		    syscall(SYS_tgkill, getpid(), t->tid, 0) != 0 &&
		    errno == ESRCH) {
			free(t->pcs);
			continue;
		}
		if (stacks && !t->finished && !t->pcs && !t->why)
			capture(t);
		bool drop = false;
		if (o) {
			drop = is_current(o, t) || strs_has(&o->name, t->name);
			if (!drop && o->created_by.n)
				drop = strs_has(&o->created_by, created_by(t));
			if (!drop && o->top.n)
				drop = strs_has(&o->top, top_of(t));
			for (size_t j = 0; !drop && j < o->any.n; j++)
				drop = stack_has(t, o->any.v[j]);
		}
		if (drop) {
			free(t->pcs);
			continue;
		}
		l->t[k++] = *t;
	}
	l->n = k;
}

int tt_threads_ignore_current(tt_threads_opts *o)
{
	if (!o)
		return -EINVAL;
	look l = {0};
	int rc = look_take(&l);
	if (rc == 0 && l.n) {
		known *nc = realloc(o->cur, (o->ncur + l.n) * sizeof *nc);
		if (!nc) {
			rc = -ENOMEM;
		} else {
			o->cur = nc;
			for (size_t i = 0; i < l.n; i++) {
				nc[o->ncur].tid = l.t[i].tid;
				nc[o->ncur++].gen =
					l.t[i].finished ? l.t[i].gen : 0;
			}
		}
	}
	look_free(&l);
	return rc;
}

/* Turns a look into the public list. */
static int list_make(look *l, tt_threads_list *out)
{
	tt__buf text = {0};
	tt__buf_puts(&text, "found unexpected threads:\n");
	/* Offsets into `all` first, pointers once it stops moving. */
	tt__buf all = {0};
	size_t *off = calloc(l->n ? l->n * 6 : 1, sizeof *off);
	if (!off)
		return -ENOMEM;
	for (size_t i = 0; i < l->n; i++) {
		thr *t = &l->t[i];
		if (!t->finished && !t->pcs && !t->why)
			capture(t);
		if (i)
			tt__buf_puts(&text, " ");
		put_record(&text, t);
		const char *s[5] = {t->name, t->state, top_of(t),
				    created_by(t), NULL};
		for (int j = 0; j < 4; j++) {
			off[i * 6 + j] = all.len;
			tt__buf_put(&all, s[j], strlen(s[j]) + 1);
		}
		off[i * 6 + 4] = all.len;
		put_body(&all, t);
		tt__buf_put(&all, "", 1);
	}
	tt__buf_puts(&text, "\n");
	tt__buf_put(&text, "", 1);
	tt_thread_info *v = calloc(l->n ? l->n : 1, sizeof *v);
	if (text.err || all.err || !v) {
		free(off);
		free(v);
		tt__buf_free(&text);
		tt__buf_free(&all);
		return -ENOMEM;
	}
	for (size_t i = 0; i < l->n; i++) {
		v[i].tid = l->t[i].tid;
		v[i].creator_tid = l->t[i].creator_tid;
		v[i].finished = l->t[i].finished;
		v[i].name = all.data + off[i * 6];
		v[i].state = all.data + off[i * 6 + 1];
		v[i].top = all.data + off[i * 6 + 2];
		v[i].created_by = all.data + off[i * 6 + 3];
		v[i].stack = all.data + off[i * 6 + 4];
	}
	free(off);
	out->t = v;
	out->n = l->n;
	out->mem = all.data;
	if (l->n) {
		out->report = text.data;
	} else {
		out->report = NULL;
		tt__buf_free(&text);
	}
	return (int)l->n;
}

void tt_threads_list_free(tt_threads_list *l)
{
	if (!l)
		return;
	free(l->t);
	free(l->report);
	free(l->mem);
	memset(l, 0, sizeof *l);
}

int tt_threads_snapshot(tt_threads_list *out)
{
	if (!out)
		return -EINVAL;
	memset(out, 0, sizeof *out);
	look l = {0};
	int rc = look_take(&l);
	if (rc == 0)
		rc = list_make(&l, out);
	look_free(&l);
	return rc;
}

static void sleep_ns(int64_t ns)
{
	struct timespec ts = {ns / 1000000000, ns % 1000000000};
	while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
		;
}

static int64_t mono_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

int tt_threads_find(const tt_threads_opts *opts, tt_threads_list *out)
{
	if (!out)
		return -EINVAL;
	memset(out, 0, sizeof *out);
	tt_threads_opts defaults = {.max_retries = 20,
				    .max_sleep = 100 * TT_MILLISECOND};
	const tt_threads_opts *o = opts ? opts : &defaults;
	int64_t start = mono_ns(), sleep = TT_MICROSECOND;
	look l = {0};
	for (int try = 0;; try++) {
		int rc = look_take(&l);
		if (rc < 0) {
			look_free(&l);
			return rc;
		}
		look_filter(&l, o, needs_stack(o));
		if (l.n == 0)
			break;
		bool more = try < o->max_retries ||
			    mono_ns() - start < o->linger;
		if (!more)
			break;
		look_free(&l);
		sleep_ns(sleep);
		sleep = sleep * 2 > o->max_sleep ? o->max_sleep : sleep * 2;
	}
	int rc = list_make(&l, out);
	look_free(&l);
	return rc;
}

static int write_stderr(void *arg, const void *data, size_t len)
{
	(void)arg;
	return tt__write_all(2, data, len) ? -EIO : 0;
}

int tt_threads_verify_none_to(const tt_threads_opts *opts, tt_write_fn fn,
			      void *arg)
{
	if (!fn)
		return -EINVAL;
	tt_threads_list l;
	int n = tt_threads_find(opts, &l);
	if (n > 0)
		fn(arg, l.report, strlen(l.report));
	if (n >= 0)
		tt_threads_list_free(&l);
	return n;
}

int tt_threads_verify_none(const tt_threads_opts *opts)
{
	return tt_threads_verify_none_to(opts, write_stderr, NULL);
}

/* --- the threadcreate profile ------------------------------------------- */

static int by_tid(const void *a, const void *b)
{
	const tt__gsnap *x = a, *y = b;
	return (x->id > y->id) - (x->id < y->id);
}

int tt__threads_create_snapshot(tt__snapshot *out)
{
	*out = (tt__snapshot){0};
	out->taken_at = tt_now();
	size_t cap = 16, n = 0;
	tt__gsnap *g = malloc(cap * sizeof *g);
	if (!g)
		return -ENOMEM;
	DIR *d = opendir("/proc/self/task");
	if (!d) {
		int e = -errno;
		free(g);
		return e;
	}
	struct dirent *e;
	while ((e = readdir(d))) {
		int tid = atoi(e->d_name);
		if (tid <= 0)
			continue;
		if (n == cap) {
			tt__gsnap *ng = realloc(g, 2 * cap * sizeof *g);
			if (!ng) {
				closedir(d);
				free(g);
				return -ENOMEM;
			}
			g = ng;
			cap *= 2;
		}
		g[n++] = (tt__gsnap){.id = tid, .state = TT_G_RUNNING};
	}
	closedir(d);
	qsort(g, n, sizeof *g, by_tid);

	/* Each live thread's creation stack, copied under the registry's
	 * lock; the pcs are offsets into pool until it stops moving. */
	uintptr_t *pool = malloc((n ? n : 1) * TT__THR_PCS * sizeof *pool);
	if (!pool) {
		free(g);
		return -ENOMEM;
	}
	size_t used = 0;
	tt__thr_registry *r = tt__thr_registry_get();
	pthread_mutex_lock(&r->lock);
	for (int i = 0; i < r->hw; i++) {
		tt__thr *s = &r->slot[i];
		int tid = atomic_load(&s->tid);
		if (s->state != TT__THR_LIVE || !tid)
			continue;
		tt__gsnap key = {.id = tid};
		tt__gsnap *o = bsearch(&key, g, n, sizeof *g, by_tid);
		if (!o || o->npcs)
			continue;
		int k = s->npcs < TT__THR_PCS ? s->npcs : TT__THR_PCS;
		if (k <= 0)
			continue;
		memcpy(pool + used, s->pcs, (size_t)k * sizeof *pool);
		o->parent_id = s->parent_tid;
		o->pcs = (const uintptr_t *)(uintptr_t)used;
		o->npcs = (uint32_t)k;
		used += (size_t)k;
	}
	pthread_mutex_unlock(&r->lock);
	/* From the creator outward: the interposer's own frames are not
	 * part of the program's stack. Symbolizing is done unlocked. */
	for (size_t i = 0; i < n; i++) {
		uintptr_t off = (uintptr_t)g[i].pcs;
		if (!g[i].npcs) {
			g[i].pcs = pool;
			continue;
		}
		thr t = {.ncpcs = (int)g[i].npcs};
		memcpy(t.cpcs, pool + off, g[i].npcs * sizeof *pool);
		int first = creator_ix(&t);
		if (first < 0) {
			g[i].npcs = 0;
			g[i].pcs = pool;
			continue;
		}
		g[i].pcs = pool + off + first;
		g[i].npcs -= (uint32_t)first;
	}
	out->g = g;
	out->n = n;
	out->g_bytes = cap * sizeof *g;
	out->pool = pool;
	out->pool_len = used;
	out->pool_cap = (n ? n : 1) * TT__THR_PCS;
	return 0;
}
