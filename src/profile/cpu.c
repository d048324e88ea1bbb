/* tether — the CPU profile: runtime/pprof's StartCPUProfile and
 * StopCPUProfile, sampled with SIGPROF.
 *
 * Design notes
 * ------------
 * Timers. Each OS thread of the process gets a POSIX timer on its own
 * CPU-time clock (timer_create on the thread's CPUCLOCK, notified with
 * SIGEV_THREAD_ID to that thread), as Go does on Linux since 1.18: every
 * thread is sampled in proportion to the CPU it burns, and n busy threads
 * give n times the samples. setitimer(ITIMER_PROF), one process-wide
 * timer, signals at most once per period for the whole process whichever
 * thread burns, so with several busy threads it under-counts; it is the
 * fallback where per-thread timers are refused (timer_create fails on the
 * first thread: an emulator, a seccomp filter).
 *
 * Threads are found in /proc/self/task: the thread that starts the profile
 * arms every thread there, and the reader (below) looks again every
 * RESCAN_NS, arming threads made since and deleting the timers of threads
 * that ended. This needs no hook in pthread_create, so threads the
 * threads layer never saw (no preload, a library's own threads) are
 * sampled too; a thread that lives less than RESCAN_NS may be missed.
 * A timer is bound to the thread itself, not to its number, so a reused
 * thread id is a new thread that is simply not yet armed.
 *
 * The signal handler is async-signal-safe: it takes no lock, calls no
 * allocator and no libdw. It walks the interrupted stack by frame
 * pointers from the ucontext and copies the PCs, and the goroutine's
 * labels (sample_labels), into a slot of a preallocated ring (Vyukov's
 * bounded queue: producers claim a slot with a CAS on `head` and publish
 * it by writing its `seq`; the one consumer checks `seq`). A full ring
 * counts a lost sample. The reader, a plain pthread, drains the ring every
 * DRAIN_NS into a table of distinct (stack, labels) with counts;
 * symbolizing and encoding happen at stop, on the caller's thread.
 *
 * Frame pointers. Every step of the walk is bounded: a frame record must
 * be 8-byte aligned, above the previous one, below the top of the stack
 * the interrupted SP is on, and hold a return address inside an
 * executable segment of a loaded object (recorded at start). The stack is
 * the running goroutine's [stack_lo, stack_hi) when the SP is in it
 * (tt__tls_sched->current). Any other stack — a thread's own, the
 * runtime stack, a thread without a scheduler — has unknown bounds, so
 * each frame record there is read with process_vm_readv, which fails with
 * EFAULT instead of faulting on an unmapped address (where the system call
 * is missing — qemu-user — such a stack gives its innermost frame only).
 * Code compiled without
 * frame pointers gives its innermost frame exactly and, usually, a cut
 * stack above it (build with -fno-omit-frame-pointer for whole stacks).
 *
 * Invariants: state is IDLE, STARTING, RUNNING or STOPPING; only the
 * thread that moved it out of IDLE (by CAS) touches the timers, the
 * reader and `prof` until it is IDLE again, except that the reader owns
 * `prof.threads` and the aggregation table while it runs. The handler
 * records only while state is RUNNING, and counts itself in `inflight`,
 * so stop waits for handlers that are still running before it reads the
 * ring for the last time. The ring is allocated once and never freed, so
 * a handler that ran late never touches freed memory. */
#include <dirent.h>
#include <errno.h>
#include <link.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <sys/time.h>
#include <sys/uio.h>
#include <time.h>
#include <ucontext.h>
#include <unistd.h>

#include "profile/pprof.h"
#include "profile/profile.h"
#include "tether/profile.h"
#include "tether/time.h"
#include "trace/trace.h"

#ifndef SIGEV_THREAD_ID
#define SIGEV_THREAD_ID 4
#endif
#ifndef sigev_notify_thread_id
#define sigev_notify_thread_id _sigev_un._tid
#endif

#define RING 1024                     /* slots; a power of two */
#define LABEL_BYTES 48                /* a sample's copy of the name */
#define DRAIN_NS (10 * TT_MILLISECOND)
#define RESCAN_NS (100 * TT_MILLISECOND)
#define MAX_TEXT 256                  /* executable segments recorded */
#define UNKNOWN_STACK (8u << 20)      /* walk limit above SP, unknown stack */

enum { IDLE, STARTING, RUNNING, STOPPING };
enum { MODE_TIMERS, MODE_ITIMER };

/* One sample in the ring. seq == pos + 1 once the producer that claimed
 * position pos has filled it; 0 once consumed. */
typedef struct rslot {
	_Atomic uint64_t seq;
	uint32_t n;
	char label[LABEL_BYTES]; /* the goroutine's name, "" for none */
	tt__labels *labels;      /* its label set, a reference held, or NULL */
	uintptr_t pcs[TT__TRACE_MAX];
} rslot;

static rslot *ring;
static _Atomic uint64_t ring_head, ring_tail;
static _Atomic uint64_t lost; /* samples dropped on a full ring */
static _Atomic int state;
static _Atomic int inflight; /* handlers running now */
static int mode;             /* read by the handler while RUNNING */

static struct {
	uintptr_t lo, hi;
} text[MAX_TEXT];
static int ntext;

/* ---- the signal handler --------------------------------------------------- */

static bool in_text(uintptr_t pc)
{
	for (int i = 0; i < ntext; i++)
		if (pc >= text[i].lo && pc < text[i].hi)
			return true;
	return false;
}

/* The frame record at fp (saved fp, return address); false when it
 * cannot be read. `safe`: read through the kernel, which fails on an
 * unmapped address instead of faulting. */
#if defined(__clang__) || defined(__GNUC__)
__attribute__((no_sanitize_address))
#endif
static bool read_record(uintptr_t fp, bool safe, uintptr_t rec[2])
{
	if (!safe) {
		const uintptr_t *p = (const uintptr_t *)fp;
		rec[0] = p[0];
		rec[1] = p[1];
		return true;
	}
	struct iovec here = {rec, 2 * sizeof(uintptr_t)};
	struct iovec there = {(void *)fp, 2 * sizeof(uintptr_t)};
	return process_vm_readv(getpid(), &here, 1, &there, 1, 0) ==
	       (ssize_t)(2 * sizeof(uintptr_t));
}

/* Frame-pointer walk: pcs[0] is the interrupted pc + 1 (the profile's
 * PCs are all return addresses, so pc - 1 lands in the instruction that
 * was running), then the return address of each frame record. Returns
 * how many. */
static uint32_t walk_fp(uintptr_t pc, uintptr_t fp, uintptr_t sp,
			uintptr_t hi, bool safe, uintptr_t *pcs)
{
	uint32_t n = 0;
	pcs[n++] = pc + 1;
	while (n < TT__TRACE_MAX) {
		if ((fp & 7) || fp < sp || fp > hi - 2 * sizeof(uintptr_t) ||
		    hi < 2 * sizeof(uintptr_t))
			break;
		uintptr_t rec[2];
		if (!read_record(fp, safe, rec) || !in_text(rec[1]))
			break;
		pcs[n++] = rec[1];
		if (rec[0] <= fp) /* frames only go up the stack */
			break;
		sp = fp;
		fp = rec[0];
	}
	return n;
}

/* The labels of the interrupted goroutine g (NULL on a thread without a
 * scheduler), into the sample: its name, copied, and its label set, with
 * a reference (an atomic increment) that the reader hands on to the
 * sample's table entry or drops. It runs in the signal handler: it only
 * reads g, which is its thread's running goroutine and so alive, and g
 * holds its set while it runs. */
static void sample_labels(const tt__g *g, rslot *e)
{
	e->label[0] = '\0';
	e->labels = g ? g->labels : NULL;
	tt__labels_retain(e->labels);
	if (!g || !g->name)
		return;
	size_t i = 0;
	for (; i < LABEL_BYTES - 1 && g->name[i]; i++)
		e->label[i] = g->name[i];
	e->label[i] = '\0';
}

static void record(const ucontext_t *uc)
{
	uintptr_t pc, fp, sp;
#if defined(__x86_64__)
	pc = (uintptr_t)uc->uc_mcontext.gregs[REG_RIP];
	fp = (uintptr_t)uc->uc_mcontext.gregs[REG_RBP];
	sp = (uintptr_t)uc->uc_mcontext.gregs[REG_RSP];
#elif defined(__aarch64__)
	pc = (uintptr_t)uc->uc_mcontext.pc;
	fp = (uintptr_t)uc->uc_mcontext.regs[29];
	sp = (uintptr_t)uc->uc_mcontext.sp;
#else
#error "tether: no CPU profile for this architecture"
#endif
	/* Claim a slot. */
	uint64_t h = atomic_load_explicit(&ring_head, memory_order_relaxed);
	for (;;) {
		uint64_t t = atomic_load_explicit(&ring_tail,
						  memory_order_acquire);
		if (h - t >= RING) {
			atomic_fetch_add_explicit(&lost, 1,
						  memory_order_relaxed);
			return;
		}
		if (atomic_compare_exchange_weak_explicit(
			    &ring_head, &h, h + 1, memory_order_acq_rel,
			    memory_order_relaxed))
			break;
	}
	rslot *e = &ring[h & (RING - 1)];

	tt__sched *s = tt__tls_sched;
	const tt__g *g = s ? s->current : NULL;
	uintptr_t hi = sp + UNKNOWN_STACK;
	bool safe = true;
	if (g && g->stack_lo && !g->stack_out && sp >= (uintptr_t)g->stack_lo &&
	    sp < (uintptr_t)g->stack_hi) {
		hi = (uintptr_t)g->stack_hi;
		safe = false;
	}
	if (hi < sp) /* wrapped */
		hi = UINTPTR_MAX;
	e->n = walk_fp(pc, fp, sp, hi, safe, e->pcs);
	sample_labels(g, e);
	atomic_store_explicit(&e->seq, h + 1, memory_order_release);
}

static void on_sigprof(int sig, siginfo_t *si, void *uc)
{
	(void)sig;
	int saved = errno;
	atomic_fetch_add_explicit(&inflight, 1, memory_order_acq_rel);
	/* With per-thread timers, only their signals count: a SIGPROF sent
	 * by kill() or by another timer is not a CPU sample. */
	if (atomic_load_explicit(&state, memory_order_acquire) == RUNNING &&
	    (mode == MODE_ITIMER || si->si_code == SI_TIMER))
		record(uc);
	atomic_fetch_sub_explicit(&inflight, 1, memory_order_release);
	errno = saved;
}

/* Where a lost sample is counted: Go's "lost profiling events" frame. */
__attribute__((noinline)) static void lost_profiling_events(void)
{
	__asm__ volatile("");
}

/* ---- aggregation (the reader) --------------------------------------------- */

typedef struct agg {
	uint64_t hash;
	int64_t count;
	uint32_t n;
	char label[LABEL_BYTES];
	tt__labels *labels; /* a reference held */
	uintptr_t pcs[TT__TRACE_MAX];
} agg;

typedef struct thr {
	pid_t tid;
	timer_t timer;
	uint32_t gen; /* scan that last saw it */
} thr;

static struct {
	tt_write_fn fn;
	void *arg;
	int64_t period;     /* ns */
	int64_t start;      /* tt_now() at start */
	struct sigaction old;
	pthread_t reader;
	_Atomic bool reader_stop;
	pid_t reader_tid;
	bool reader_on;
	thr *threads;
	size_t nthreads, threads_cap;
	uint32_t gen;
	agg *aggs; /* open addressing; count 0 = free */
	size_t naggs, aggs_cap;
	bool oom;  /* a sample was dropped for want of memory */
} prof;

static uint64_t sample_hash(const rslot *e)
{
	uint64_t h = 0xcbf29ce484222325ull ^ e->n;
	for (uint32_t i = 0; i < e->n; i++)
		h = (h ^ e->pcs[i]) * 0x100000001b3ull;
	for (const char *c = e->label; *c; c++)
		h = (h ^ (unsigned char)*c) * 0x100000001b3ull;
	if (e->labels)
		h = (h ^ e->labels->hash) * 0x100000001b3ull;
	return h | 1;
}

static bool agg_grow(void)
{
	size_t cap = prof.aggs_cap ? prof.aggs_cap * 2 : 256;
	agg *a = calloc(cap, sizeof *a);
	if (!a)
		return false;
	for (size_t i = 0; i < prof.aggs_cap; i++) {
		if (!prof.aggs[i].count)
			continue;
		size_t j = prof.aggs[i].hash & (cap - 1);
		while (a[j].count)
			j = (j + 1) & (cap - 1);
		a[j] = prof.aggs[i];
	}
	free(prof.aggs);
	prof.aggs = a;
	prof.aggs_cap = cap;
	return true;
}

static void agg_add(const rslot *e)
{
	if ((prof.naggs + 1) * 2 > prof.aggs_cap && !agg_grow()) {
		prof.oom = true;
		atomic_fetch_add_explicit(&lost, 1, memory_order_relaxed);
		tt__labels_release(e->labels);
		return;
	}
	uint64_t h = sample_hash(e);
	size_t i = h & (prof.aggs_cap - 1);
	for (; prof.aggs[i].count; i = (i + 1) & (prof.aggs_cap - 1)) {
		agg *a = &prof.aggs[i];
		if (a->hash == h && a->n == e->n &&
		    memcmp(a->pcs, e->pcs, e->n * sizeof *e->pcs) == 0 &&
		    strcmp(a->label, e->label) == 0 &&
		    tt__labels_equal(a->labels, e->labels)) {
			a->count++;
			tt__labels_release(e->labels);
			return;
		}
	}
	agg *a = &prof.aggs[i];
	a->hash = h;
	a->count = 1;
	a->n = e->n;
	memcpy(a->label, e->label, sizeof a->label);
	a->labels = e->labels; /* the sample's reference */
	memcpy(a->pcs, e->pcs, e->n * sizeof *e->pcs);
	prof.naggs++;
}

/* Move every published sample from the ring into the table. One consumer
 * at a time: the reader, or stop once the reader has ended. */
static void drain(void)
{
	for (;;) {
		uint64_t t = atomic_load_explicit(&ring_tail,
						  memory_order_relaxed);
		rslot *e = &ring[t & (RING - 1)];
		if (atomic_load_explicit(&e->seq, memory_order_acquire) !=
		    t + 1)
			return;
		if (e->n > TT__TRACE_MAX)
			e->n = TT__TRACE_MAX;
		agg_add(e);
		atomic_store_explicit(&e->seq, 0, memory_order_relaxed);
		atomic_store_explicit(&ring_tail, t + 1, memory_order_release);
	}
}

/* ---- timers ---------------------------------------------------------------- */

/* The CPU-time clock of thread tid (the kernel's encoding, as
 * pthread_getcpuclockid builds it: ~tid << 3 | CPUCLOCK_PERTHREAD |
 * CPUCLOCK_SCHED). */
static clockid_t thread_clock(pid_t tid)
{
	return (clockid_t)((~(unsigned)tid << 3) | 6u);
}

/* Arm a timer on thread tid; 0 or -errno. */
static int arm_thread(pid_t tid, timer_t *out)
{
	struct sigevent ev;
	memset(&ev, 0, sizeof ev);
	ev.sigev_notify = SIGEV_THREAD_ID;
	ev.sigev_signo = SIGPROF;
	ev.sigev_notify_thread_id = tid;
	if (timer_create(thread_clock(tid), &ev, out) != 0)
		return -errno;
	/* The first expiry is spread over the period by thread, so that
	 * threads started together are not sampled in step. */
	int64_t first = 1 + (int64_t)((uint64_t)tid * 2654435761u %
				      (uint64_t)prof.period);
	struct itimerspec its = {
		.it_interval = {prof.period / TT_SECOND,
				prof.period % TT_SECOND},
		.it_value = {first / TT_SECOND, first % TT_SECOND},
	};
	if (timer_settime(*out, 0, &its, NULL) != 0) {
		int r = -errno;
		timer_delete(*out);
		return r;
	}
	return 0;
}

/* Arm every thread of /proc/self/task not armed yet and delete the timers
 * of threads gone. Returns 0, or -errno when not even the first thread
 * could be armed (then per-thread timers are not to be had). */
static int scan_threads(void)
{
	DIR *d = opendir("/proc/self/task");
	if (!d)
		return -errno;
	uint32_t gen = ++prof.gen;
	int first_err = 0;
	struct dirent *de;
	while ((de = readdir(d)) != NULL) {
		char *end;
		long tid = strtol(de->d_name, &end, 10);
		if (*end || tid <= 0 || tid == prof.reader_tid)
			continue;
		size_t i = 0;
		for (; i < prof.nthreads; i++)
			if (prof.threads[i].tid == tid)
				break;
		if (i < prof.nthreads) {
			prof.threads[i].gen = gen;
			continue;
		}
		if (prof.nthreads == prof.threads_cap) {
			size_t cap = prof.threads_cap ? prof.threads_cap * 2 : 16;
			thr *t = realloc(prof.threads, cap * sizeof *t);
			if (!t)
				break;
			prof.threads = t;
			prof.threads_cap = cap;
		}
		thr *t = &prof.threads[prof.nthreads];
		int r = arm_thread((pid_t)tid, &t->timer);
		if (r) {
			/* A thread that ended since readdir is ESRCH or
			 * EINVAL; no timer at all is the caller's to see. */
			if (!first_err)
				first_err = r;
			continue;
		}
		t->tid = (pid_t)tid;
		t->gen = gen;
		prof.nthreads++;
	}
	closedir(d);
	size_t k = 0;
	for (size_t i = 0; i < prof.nthreads; i++) {
		if (prof.threads[i].gen == gen)
			prof.threads[k++] = prof.threads[i];
		else
			timer_delete(prof.threads[i].timer);
	}
	prof.nthreads = k;
	return prof.nthreads ? 0 : (first_err ? first_err : -ENOSYS);
}

static void disarm_all(void)
{
	/* timer_delete also takes a timer's signal out of the queue if it
	 * is still pending, so none arrives after this. */
	for (size_t i = 0; i < prof.nthreads; i++)
		timer_delete(prof.threads[i].timer);
	prof.nthreads = 0;
}

static void *reader_main(void *arg)
{
	(void)arg;
	/* Counted for deadlock detection (post.c) only while it exists:
	 * counted before, it would make the threads seen asleep one more
	 * than there are. */
	tt__helper_thread(1);
	prof.reader_tid = (pid_t)syscall(SYS_gettid);
	int64_t next_scan = tt_now() + RESCAN_NS;
	while (!atomic_load_explicit(&prof.reader_stop, memory_order_acquire)) {
		struct timespec ts = {0, DRAIN_NS};
		nanosleep(&ts, NULL);
		drain();
		if (mode == MODE_TIMERS && tt_now() >= next_scan) {
			scan_threads();
			next_scan = tt_now() + RESCAN_NS;
		}
	}
	tt__helper_thread(-1);
	return NULL;
}

/* ---- start and stop --------------------------------------------------------- */

static int add_text(struct dl_phdr_info *info, size_t size, void *arg)
{
	(void)size;
	(void)arg;
	for (int i = 0; i < info->dlpi_phnum && ntext < MAX_TEXT; i++) {
		const ElfW(Phdr) *ph = &info->dlpi_phdr[i];
		if (ph->p_type != PT_LOAD || !(ph->p_flags & PF_X))
			continue;
		text[ntext].lo = info->dlpi_addr + ph->p_vaddr;
		text[ntext].hi = text[ntext].lo + ph->p_memsz;
		ntext++;
	}
	return 0;
}

int tt_cpu_profile_start(int hz, tt_write_fn fn, void *arg)
{
	if (!fn)
		return tt__err(-EINVAL, "tt_cpu_profile_start: NULL writer");
	if (hz == 0)
		hz = TT_CPU_PROFILE_HZ;
	if (hz < 1 || hz > 1000)
		return tt__err(-EINVAL,
			       "tt_cpu_profile_start: hz %d is not in 1..1000",
			       hz);
	int idle = IDLE;
	if (!atomic_compare_exchange_strong(&state, &idle, STARTING))
		return tt__err(-EBUSY, "cpu profiling already in use");
	if (!ring) {
		ring = calloc(RING, sizeof *ring);
		if (!ring) {
			atomic_store(&state, IDLE);
			return tt__err(-ENOMEM, "tt_cpu_profile_start: %s",
				       strerror(ENOMEM));
		}
	}
	prof.fn = fn;
	prof.arg = arg;
	prof.period = TT_SECOND / hz;
	prof.oom = false;
	prof.reader_tid = 0;
	atomic_store(&lost, 0);
	atomic_store(&ring_tail, atomic_load(&ring_head));
	ntext = 0;
	dl_iterate_phdr(add_text, NULL);

	/* The handler first: a timer must find it. */
	struct sigaction sa;
	memset(&sa, 0, sizeof sa);
	sa.sa_sigaction = on_sigprof;
	sa.sa_flags = SA_RESTART | SA_SIGINFO | SA_ONSTACK;
	sigemptyset(&sa.sa_mask);
	int r = 0;
	if (sigaction(SIGPROF, &sa, &prof.old) != 0) {
		r = -errno;
		atomic_store(&state, IDLE);
		return tt__err(r, "tt_cpu_profile_start: sigaction: %s",
			       strerror(-r));
	}
	prof.start = tt_now();
	mode = MODE_TIMERS;
	atomic_store(&state, RUNNING);

	/* Every thread there is now, before the reader exists (so that the
	 * scan does not arm the reader; its own scans leave it out too). */
	if (scan_threads() != 0) {
		disarm_all();
		mode = MODE_ITIMER;
		struct itimerval it = {
			.it_interval = {(time_t)(prof.period / TT_SECOND),
					(suseconds_t)(prof.period % TT_SECOND /
						      1000)},
		};
		it.it_value = it.it_interval;
		if (setitimer(ITIMER_PROF, &it, NULL) != 0) {
			r = tt__err(-errno, "tt_cpu_profile_start: setitimer: "
					    "%s", strerror(errno));
			goto fail;
		}
	}

	/* The reader, with every signal blocked: it is not profiled. */
	sigset_t all, old;
	sigfillset(&all);
	pthread_sigmask(SIG_BLOCK, &all, &old);
	atomic_store(&prof.reader_stop, false);
	int pr = pthread_create(&prof.reader, NULL, reader_main, NULL);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	if (pr != 0) {
		r = tt__err(-pr, "tt_cpu_profile_start: pthread_create: %s",
			    strerror(pr));
		goto fail;
	}
	prof.reader_on = true;
	return 0;
fail:
	atomic_store(&state, STOPPING);
	if (prof.reader_on) {
		atomic_store(&prof.reader_stop, true);
		pthread_join(prof.reader, NULL);
		prof.reader_on = false;
	}
	if (mode == MODE_ITIMER) {
		struct itimerval off = {{0, 0}, {0, 0}};
		setitimer(ITIMER_PROF, &off, NULL);
	}
	disarm_all();
	sigaction(SIGPROF, &prof.old, NULL);
	free(prof.threads);
	prof.threads = NULL;
	prof.threads_cap = 0;
	atomic_store(&state, IDLE);
	return r;
}

/* The profile of the samples in prof.aggs (and the lost ones) into b. */
static int build(tt__buf *b, int64_t duration)
{
	uint64_t nlost = atomic_load(&lost);
	size_t n = prof.naggs + (nlost ? 1 : 0);
	tt__snapshot s = {.taken_at = prof.start};
	tt__gsnap *g = calloc(n ? n : 1, sizeof *g);
	int64_t *v = calloc(n ? 2 * n : 1, sizeof *v);
	uintptr_t lost_pc[1] = {(uintptr_t)lost_profiling_events + 1};
	int r = -ENOMEM;
	if (!g || !v)
		goto out;
	size_t k = 0;
	for (size_t i = 0; i < prof.aggs_cap; i++) {
		const agg *a = &prof.aggs[i];
		if (!a->count)
			continue;
		g[k] = (tt__gsnap){.id = (int64_t)k + 1,
				   .name = a->label[0] ? a->label : NULL,
				   .labels = a->labels,
				   .pcs = a->pcs,
				   .npcs = a->n};
		v[2 * k] = a->count;
		v[2 * k + 1] = a->count * prof.period;
		k++;
	}
	if (nlost) {
		g[k] = (tt__gsnap){.id = (int64_t)k + 1, .pcs = lost_pc,
				   .npcs = 1};
		v[2 * k] = (int64_t)nlost;
		v[2 * k + 1] = (int64_t)nlost * prof.period;
		k++;
	}
	s.g = g;
	s.n = k;
	tt__pprof_values d = {
		.type = {"samples", "cpu"},
		.unit = {"count", "nanoseconds"},
		.v = v,
		.period_type = "cpu",
		.period_unit = "nanoseconds",
		.period = prof.period,
		.duration = duration,
	};
	r = tt__pprof_write_values(b, &s, &d, tt__symbolize);
out:
	free(g);
	free(v);
	return r;
}

int tt_cpu_profile_stop(void)
{
	int running = RUNNING;
	if (!atomic_compare_exchange_strong(&state, &running, STOPPING))
		return tt__err(-EINVAL,
			       "tt_cpu_profile_stop: no CPU profile is running");
	int64_t duration = tt_now() - prof.start;
	atomic_store(&prof.reader_stop, true);
	pthread_join(prof.reader, NULL);
	prof.reader_on = false;
	if (mode == MODE_TIMERS) {
		disarm_all();
		sigaction(SIGPROF, &prof.old, NULL);
	} else {
		struct itimerval off = {{0, 0}, {0, 0}};
		setitimer(ITIMER_PROF, &off, NULL);
		/* An ITIMER_PROF signal may still be pending on some thread:
		 * under SIG_DFL it would end the process, so the default
		 * becomes "ignore". A handler of the program's own is put
		 * back as it was. */
		struct sigaction old = prof.old;
		if (!(old.sa_flags & SA_SIGINFO) && old.sa_handler == SIG_DFL)
			old.sa_handler = SIG_IGN;
		sigaction(SIGPROF, &old, NULL);
	}
	/* Handlers still running on other threads finish their sample. */
	for (int i = 0; i < 10000 && atomic_load(&inflight); i++) {
		struct timespec ts = {0, 100000};
		nanosleep(&ts, NULL);
	}
	drain();

	tt__buf b = {0};
	int r = build(&b, duration);
	for (size_t i = 0; i < prof.aggs_cap; i++)
		if (prof.aggs[i].count)
			tt__labels_release(prof.aggs[i].labels);
	free(prof.aggs);
	prof.aggs = NULL;
	prof.naggs = prof.aggs_cap = 0;
	free(prof.threads);
	prof.threads = NULL;
	prof.threads_cap = 0;
	tt_write_fn fn = prof.fn;
	void *arg = prof.arg;
	/* Idle before writing: the writer may park for long (a slow HTTP
	 * client), and a new profile may start meanwhile. */
	atomic_store(&state, IDLE);
	if (r)
		r = tt__err(r, "tt_cpu_profile_stop: writing the profile: %s",
			    strerror(-r));
	else
		r = fn(arg, b.data, b.len);
	tt__buf_free(&b);
	return r;
}

/* Writes all of data to the descriptor in arg. */
static int write_fd(void *arg, const void *data, size_t len)
{
	int fd = (int)(intptr_t)arg;
	const char *p = data;
	while (len) {
		ssize_t n = write(fd, p, len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -errno;
		p += n;
		len -= (size_t)n;
	}
	return 0;
}

int tt_cpu_profile_start_fd(int hz, int fd)
{
	if (fd < 0)
		return tt__err(-EINVAL, "tt_cpu_profile_start_fd: bad fd %d",
			       fd);
	return tt_cpu_profile_start(hz, write_fd, (void *)(intptr_t)fd);
}

bool tt_cpu_profile_running(void)
{
	return atomic_load(&state) != IDLE;
}
