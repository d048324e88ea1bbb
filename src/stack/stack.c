/* tether — goroutine stacks: arenas, guard pages, the pool, and the
 * stack-overflow report.
 *
 * Design notes
 * ------------
 * Stacks of one size are carved from arenas, one anonymous mapping each
 * (MAP_NORESERVE: address space only, pages appear when touched). Each
 * stack has a guard region at its low end and its tt__g record at its
 * high end:
 *
 *   arena:  | guard | stack 0 ... [g] | guard | stack 1 ... [g] | ...
 *           ^ base                    ^ base + stride
 *
 * Guards. madvise(MADV_GUARD_INSTALL) (Linux 6.13) marks the guard pages
 * in the page table without splitting the mapping, so a million guarded
 * stacks are a few hundred mappings. Where the kernel refuses it, the
 * fallback is mprotect(PROT_NONE), which splits the mapping in two at each
 * guard: Linux allows vm.max_map_count (65530 by default) mappings per
 * process, so that mode keeps a budget and refuses new stacks with a clear
 * error before the kernel would, rather than crash. TETHER_GUARD=mprotect
 * forces the fallback (for testing it).
 *
 * Sizes. The default stack is 64 KiB (256 KiB under AddressSanitizer,
 * whose redzones triple frame sizes). A goroutine that parks at once
 * touches one page of it; the rest is address space. 64 KiB holds ordinary
 * C code including stdio and a few KiB of locals, while keeping a million
 * stacks to 80 GiB of address space and page tables to ~160 bytes per
 * stack. TETHER_STACK_SIZE (bytes, or with a K/M suffix) changes the
 * default; tt_go_with sets it per goroutine.
 *
 * The pool. A stack whose goroutine ended goes on its pool's hot list
 * (pages resident, reused first: a loop of short goroutines reuses one
 * stack). When the scheduler is idle, tt__stack_trim returns the pages of
 * the hot stacks beyond HOT_MAX with MADV_DONTNEED, a batch at a time, and
 * moves them to the cold list; their guards stay. (Doing it as each
 * goroutine ends costs a system call per goroutine: 100,000 goroutines
 * ending at once took 8 µs each that way here.)
 */
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "internal.h"
#include "trace/trace.h"

#if defined(TT_HAVE_VALGRIND) && TT_HAVE_VALGRIND
#include <valgrind/valgrind.h>
#define TT_VG_REGISTER(lo, hi) VALGRIND_STACK_REGISTER((lo), (hi))
#define TT_VG_DEREGISTER(id) VALGRIND_STACK_DEREGISTER(id)
#define TT_VG_RUNNING() (RUNNING_ON_VALGRIND != 0)
#include <valgrind/memcheck.h>
#define TT_VG_UNDEFINED(p, n) VALGRIND_MAKE_MEM_UNDEFINED((p), (n))
#define TT_VG_NOACCESS(p, n) VALGRIND_MAKE_MEM_NOACCESS((p), (n))
#else
#define TT_VG_UNDEFINED(p, n) ((void)(p), (void)(n))
#define TT_VG_NOACCESS(p, n) ((void)(p), (void)(n))
#define TT_VG_REGISTER(lo, hi) 0u
#define TT_VG_DEREGISTER(id) ((void)(id))
#define TT_VG_RUNNING() false
#endif

#if TT_ASAN
#include <sanitizer/asan_interface.h>
#include <sanitizer/lsan_interface.h>
#endif

#ifndef MADV_POPULATE_WRITE
#define MADV_POPULATE_WRITE 23
#endif

#ifndef MADV_GUARD_INSTALL
#define MADV_GUARD_INSTALL 102
#endif

#define GUARD_BYTES (16 * 1024)
#define MIN_STACK (16 * 1024)
#define HOT_MAX 1024
#define ARENA_FIRST 16
#define ARENA_MAX 4096
#define ARENA_BYTES_MAX ((size_t)1 << 30)
#define ALTSTACK_BYTES (64 * 1024)

/* Process-wide settings, fixed at the first stack. */
static pthread_once_t globals_once = PTHREAD_ONCE_INIT;
static size_t page_size;
static size_t default_size;
static size_t guard_size;
static _Atomic int guard_mode; /* tt_guard_mode */
static _Atomic int64_t guard_budget = -1;
static _Atomic int64_t stacks_mapped;

/* `to` is a power of two (a page size, 64). */
static size_t round_up(size_t n, size_t to)
{
	return (n + to - 1) & ~(to - 1);
}

static size_t parse_size(const char *v)
{
	char *end;
	unsigned long long n = strtoull(v, &end, 10);
	if (end == v)
		return 0;
	unsigned long long unit = 1;
	if (*end == 'k' || *end == 'K')
		unit = 1024;
	else if (*end == 'm' || *end == 'M')
		unit = 1024 * 1024;
	if (n > SIZE_MAX / unit)
		return SIZE_MAX; /* saturate: the callers clamp it */
	return (size_t)(n * unit);
}

static long read_long_file(const char *path, long dflt)
{
	FILE *f = fopen(path, "r");
	long v = dflt;
	if (f) {
		if (fscanf(f, "%ld", &v) != 1)
			v = dflt;
		fclose(f);
	}
	return v;
}

static long count_mappings(void)
{
	FILE *f = fopen("/proc/self/maps", "r");
	long n = 0;
	int c;
	if (!f)
		return 1000;
	while ((c = getc(f)) != EOF)
		if (c == '\n')
			n++;
	fclose(f);
	return n;
}

/* mprotect mode: how many more guarded stacks the mapping limit allows,
 * keeping headroom for the rest of the program (malloc arenas, dlopen). */
static void set_mprotect_budget(void)
{
	long max = read_long_file("/proc/sys/vm/max_map_count", 65530);
	long used = count_mappings();
	long room = max - used - 2048;
	atomic_store(&guard_budget, room > 0 ? room / 2 : 0);
}

static void globals_init(void)
{
	page_size = (size_t)sysconf(_SC_PAGESIZE);
#if TT_ASAN
	default_size = 256 * 1024;
#elif defined(__aarch64__)
	/* A stack dump from inside a goroutine (tt_stack_dump, a panic)
	 * unwinds with a context that carries 4 KiB of FP/SVE state and
	 * symbolizes with libdw; 64 KiB is not enough for that here. Only
	 * touched pages cost memory. */
	default_size = 128 * 1024;
#else
	default_size = 64 * 1024;
#endif
	const char *v = getenv("TETHER_STACK_SIZE");
	if (v && parse_size(v))
		default_size = parse_size(v);
	if (default_size < MIN_STACK)
		default_size = MIN_STACK;
	if (default_size > TT_STACK_SIZE_MAX)
		default_size = TT_STACK_SIZE_MAX;
	default_size = round_up(default_size, page_size);
	guard_size = round_up(GUARD_BYTES, page_size);
	v = getenv("TETHER_GUARD");
	if (v && strcmp(v, "mprotect") == 0) {
		atomic_store(&guard_mode, TT_GUARD_MPROTECT);
		set_mprotect_budget();
	} else {
		atomic_store(&guard_mode, TT_GUARD_MADVISE);
	}
}

/* Callers have a scheduler, whose making ran globals_init on this thread
 * (tt__stack_thread_init), so the settings are visible here. */
size_t tt__stack_default(void)
{
	return default_size;
}

static size_t g_record_size(void)
{
	return round_up(sizeof(tt__g), 64);
}

static tt__g *base_to_g(tt__stack_pool *p, char *base)
{
	tt__g *g = (tt__g *)(base + p->stride - g_record_size());
	g->stack_lo = base + guard_size;
	g->stack_hi = (char *)g;
	g->pool = p;
	return g;
}

static tt__stack_pool *pool_for(tt__sched *s, size_t size)
{
	/* The pool used last is first in the list. */
	for (tt__stack_pool *p = s->pools; p; p = p->next_pool)
		if (TT_LIKELY(p->usable == size))
			return p;
	tt__stack_pool *p = calloc(1, sizeof *p);
	if (!p)
		return NULL;
	p->usable = size;
	p->stride = size + guard_size;
	p->arena_stacks = ARENA_FIRST;
	p->next_pool = s->pools;
	s->pools = p;
	return p;
}

/* Does a guard installed at `base` really fault? Some environments accept
 * MADV_GUARD_INSTALL and do nothing (qemu-user passes unknown advice
 * through as a no-op). Ask the kernel to read the page on our behalf:
 * write(2) from a guard fails with EFAULT instead of faulting us. */
static bool guard_faults(char *base)
{
	int fds[2];
	if (pipe(fds) != 0)
		return true; /* cannot tell; trust the kernel */
	ssize_t n = write(fds[1], base, 1);
	int e = errno;
	close(fds[0]);
	close(fds[1]);
	return n < 0 && e == EFAULT;
}

static pthread_once_t probe_once = PTHREAD_ONCE_INIT;
static char *probe_base;
static bool madvise_works;

static void probe_madvise(void)
{
	madvise_works = guard_faults(probe_base);
}

/* A unit of the mprotect budget taken, on another thread, for the next
 * stack this thread carves (tt__stack_alloc_held). */
static _Thread_local bool budget_held;

static pthread_once_t fallback_once = PTHREAD_ONCE_INIT;

static void fall_back(void)
{
	set_mprotect_budget();
	atomic_store_explicit(&guard_mode, TT_GUARD_MPROTECT,
			      memory_order_release);
}

int tt__stack_budget_take(void)
{
	if (atomic_load_explicit(&guard_mode, memory_order_acquire) !=
	    TT_GUARD_MPROTECT)
		return 0;
	if (atomic_fetch_sub(&guard_budget, 1) <= 0) {
		atomic_fetch_add(&guard_budget, 1);
		return -1;
	}
	return 1;
}

void tt__stack_budget_give(void)
{
	atomic_fetch_add(&guard_budget, 1);
}

tt__g *tt__stack_alloc_held(tt__sched *s, size_t size)
{
	budget_held = true;
	tt__g *g = tt__stack_alloc(s, size);
	if (budget_held) { /* a pooled stack, or a failure before the guard */
		budget_held = false;
		tt__stack_budget_give();
	}
	return g;
}

static int install_guard(char *base)
{
	if (atomic_load_explicit(&guard_mode, memory_order_acquire) ==
	    TT_GUARD_MADVISE) {
		if (madvise(base, guard_size, MADV_GUARD_INSTALL) == 0) {
			probe_base = base;
			pthread_once(&probe_once, probe_madvise);
			if (madvise_works)
				return 0;
			errno = EINVAL; /* accepted but ineffective */
		}
		if (errno != EINVAL)
			return tt__err(-errno,
				       "cannot install a stack guard page: "
				       "madvise: %s",
				       strerror(errno));
		/* Kernel older than 6.13 (or an emulator that ignores the
		 * advice): fall back for good, once, the budget set before
		 * the mode says it is in use (another thread may be carving
		 * a stack, or tt_go taking a unit for one, meanwhile). */
		pthread_once(&fallback_once, fall_back);
	}
	if (budget_held) {
		budget_held = false; /* taken by the tt_go that handed it */
	} else if (atomic_fetch_sub(&guard_budget, 1) <= 0) {
		atomic_fetch_add(&guard_budget, 1);
		return tt__err(-ENOMEM,
			       "no stack for a new goroutine: without "
			       "MADV_GUARD_INSTALL (Linux 6.13+) each guard "
			       "page costs two mappings, and vm.max_map_count "
			       "(%ld) is nearly used up; raise it with sysctl",
			       read_long_file("/proc/sys/vm/max_map_count",
					      -1));
	}
	if (mprotect(base, guard_size, PROT_NONE) != 0) {
		int e = errno;
		atomic_fetch_add(&guard_budget, 1);
		return tt__err(-e, "cannot protect a stack guard page: %s",
			       strerror(e));
	}
	return 0;
}

static char *carve(tt__stack_pool *p)
{
	if (p->arena_next == p->arena_end) {
		size_t n = p->arena_stacks;
		/* Big stacks: keep an arena to ARENA_BYTES_MAX of address
		 * space (but at least one stack). */
		if (n * p->stride > ARENA_BYTES_MAX) {
			n = ARENA_BYTES_MAX / p->stride;
			if (n == 0)
				n = 1;
		}
		size_t bytes = n * p->stride;
		void *m = mmap(NULL, bytes, PROT_READ | PROT_WRITE,
			       MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1,
			       0);
		if (m == MAP_FAILED) {
			tt__err(-ENOMEM,
				"cannot map %zu bytes for %zu goroutine "
				"stacks: %s",
				bytes, n, strerror(errno));
			return NULL;
		}
		if (p->narenas == p->cap_arenas) {
			size_t cap = p->cap_arenas ? p->cap_arenas * 2 : 8;
			struct tt__arena *v =
				realloc(p->arenas, cap * sizeof *v);
			if (v == NULL) {
				munmap(m, bytes);
				tt__err(-ENOMEM, "out of memory for a stack "
						 "arena's record");
				return NULL;
			}
			p->arenas = v;
			p->cap_arenas = cap;
		}
		p->arenas[p->narenas++] = (struct tt__arena){m, bytes};
		p->arena_next = m;
		p->arena_end = (char *)m + bytes;
		if (p->arena_stacks < ARENA_MAX)
			p->arena_stacks *= 2;
	}
	char *base = p->arena_next;
	if (install_guard(base) != 0)
		return NULL;
	if (TT_VG_RUNNING()) {
		if (p->nvg == p->cap_vg) {
			size_t cap = p->cap_vg ? p->cap_vg * 2 : 64;
			unsigned *v = realloc(p->vg_ids, cap * sizeof *v);
			if (v == NULL) {
				tt__err(-ENOMEM, "out of memory for a stack's "
						 "record");
				return NULL;
			}
			p->vg_ids = v;
			p->cap_vg = cap;
		}
		p->vg_ids[p->nvg++] =
			TT_VG_REGISTER(base + guard_size, base + p->stride);
	}
	p->arena_next += p->stride;
	p->ncarved++;
	if (atomic_load_explicit(&guard_mode, memory_order_relaxed) ==
	    TT_GUARD_MPROTECT)
		p->nmprotect++;
	atomic_fetch_add_explicit(&stacks_mapped, 1, memory_order_relaxed);
	return base;
}

tt__g *tt__stack_alloc(tt__sched *s, size_t size)
{
	/* Checked before rounding, which would wrap near SIZE_MAX. */
	if (TT_UNLIKELY(size > TT_STACK_SIZE_MAX)) {
		tt__err(-EINVAL,
			"stack size %zu is over the limit of %zu bytes "
			"(TT_STACK_SIZE_MAX)",
			size, TT_STACK_SIZE_MAX);
		return NULL;
	}
	if (TT_UNLIKELY(size != default_size))
		size = round_up(size < MIN_STACK ? MIN_STACK : size,
				page_size);
	tt__stack_pool *p = pool_for(s, size);
	if (TT_UNLIKELY(p == NULL)) {
		tt__err(-ENOMEM, "out of memory for a stack pool");
		return NULL;
	}
	tt__g *g = p->free_hot;
	if (TT_LIKELY(g != NULL)) {
		p->free_hot = g->next;
		p->nfree_hot--;
	} else {
		char *base;
		if (p->nfree_cold)
			base = p->free_cold[--p->nfree_cold];
		else if ((base = carve(p)) == NULL)
			return NULL;
		/* The top page (the record and the first frames) is
		 * touched at once anyway; faulting it in from here is
		 * cheaper than a page fault from user space (a fifth less
		 * per new goroutine on the machine BENCHMARKS.md used).
		 * Failure (before Linux 5.14) only loses that. */
		(void)madvise(base + p->stride - page_size, page_size,
			      MADV_POPULATE_WRITE);
		g = base_to_g(p, base);
		tt__wait1_take(s, g);
	}
#if TT_ASAN
	/* A parked goroutine's stack may hold the only pointer to what it
	 * waits on: LeakSanitizer must scan it while the goroutine lives. */
	__lsan_register_root_region(g->stack_lo,
				    (size_t)((char *)(g + 1) - g->stack_lo));
#endif
	return g;
}

static void shared_free(tt__sched *s, tt__g *g);

void tt__stack_free(tt__sched *s, tt__g *g)
{
#if TT_TSAN
	/* Its fiber goes with it (the record's next goroutine gets its own:
	 * TSan sees them as different threads). */
	if (g->tsan_fiber) {
		__tsan_destroy_fiber(g->tsan_fiber);
		g->tsan_fiber = NULL;
	}
#endif
	if (TT_UNLIKELY(g->shared)) {
		shared_free(s, g);
		return;
	}
	tt__stack_pool *p = g->pool;
	if (p == NULL)
		return;
#if TT_ASAN
	__lsan_unregister_root_region(g->stack_lo,
				      (size_t)((char *)(g + 1) - g->stack_lo));
	/* Frames still active when the goroutine ended left their redzones
	 * poisoned; the next goroutine on this stack must start clean. They
	 * all lie above the stack pointer of its last switch (g->sp); the
	 * frames below it returned normally and cleaned up after
	 * themselves. Unpoisoning only that part keeps the shadow of the
	 * unused depths untouched. */
	char *lo = (char *)g->sp - 512;
	if (lo < g->stack_lo)
		lo = g->stack_lo;
	ASAN_UNPOISON_MEMORY_REGION(lo, (size_t)(g->stack_hi - lo));
#endif
	/* Always onto the hot list: returning pages to the kernel is a
	 * system call, done later by tt__stack_trim when the scheduler has
	 * nothing to run, not by the goroutine that ends. */
	g->next = p->free_hot;
	p->free_hot = g;
	p->nfree_hot++;
}

/* Give back the pages of up to `max` hot stacks beyond HOT_MAX per pool;
 * returns how many it gave back. */
size_t tt__stack_trim(tt__sched *s, size_t max)
{
	size_t done = 0;
	for (tt__stack_pool *p = s->pools; p && done < max; p = p->next_pool) {
		while (p->nfree_hot > HOT_MAX && done < max) {
			if (p->nfree_cold == p->cap_cold) {
				size_t cap = p->cap_cold ? p->cap_cold * 2
							 : 256;
				char **v = realloc(p->free_cold,
						   cap * sizeof *v);
				if (!v)
					return done; /* keep them hot */
				p->free_cold = v;
				p->cap_cold = cap;
			}
			tt__g *g = p->free_hot;
			p->free_hot = g->next;
			p->nfree_hot--;
			tt__wait1_release(s, g); /* the record is zeroed */
			char *base = g->stack_lo - guard_size;
			madvise(base + guard_size, p->usable, MADV_DONTNEED);
			p->free_cold[p->nfree_cold++] = base;
			done++;
		}
	}
	return done;
}

void tt__stack_info(tt__sched *s, tt_runtime_info *out)
{
	pthread_once(&globals_once, globals_init);
	out->guard_mode = (tt_guard_mode)atomic_load(&guard_mode);
	out->stack_size = default_size;
	out->guard_size = guard_size;
	out->page_size = page_size;
	out->stacks_mapped = atomic_load(&stacks_mapped);
	int64_t pooled = 0;
	for (tt__stack_pool *p = s->pools; p; p = p->next_pool)
		pooled += (int64_t)(p->nfree_hot + p->nfree_cold);
	out->stacks_pooled = pooled;
	out->guard_budget = out->guard_mode == TT_GUARD_MPROTECT
				    ? atomic_load(&guard_budget)
				    : -1;
}

/* ---- the stack-overflow report ------------------------------------------ */

static pthread_once_t handler_once = PTHREAD_ONCE_INIT;
static struct sigaction old_segv, old_bus;

static void chain(int sig, siginfo_t *si, void *uc)
{
	struct sigaction *old = sig == SIGBUS ? &old_bus : &old_segv;
	if ((old->sa_flags & SA_SIGINFO) && old->sa_sigaction) {
		old->sa_sigaction(sig, si, uc);
		return;
	}
	if (old->sa_handler == SIG_IGN)
		return;
	if (old->sa_handler != SIG_DFL) {
		old->sa_handler(sig);
		return;
	}
	/* Default action: restore it; the faulting instruction runs again
	 * and the kernel ends the process as it would have. */
	struct sigaction dfl;
	memset(&dfl, 0, sizeof dfl);
	dfl.sa_handler = SIG_DFL;
	sigaction(sig, &dfl, NULL);
}

/* msg[n..) gets the literal m (the caller's buffer has room): the new
 * length. Async-signal-safe. */
static size_t put(char *msg, size_t n, const char *m)
{
	size_t len = strlen(m);
	memcpy(msg + n, m, len);
	return n + len;
}

static void overflow_handler(int sig, siginfo_t *si, void *uc)
{
	tt__sched *s = tt__tls_sched;
	tt__g *g = s ? s->current : NULL;
	char *a = si->si_addr;
	if (tt__runtime_stack_guard_hit(a)) {
		static const char m[] =
			"tether: fatal error: stack overflow on the runtime "
			"stack (tether's own deep work, such as symbolizing, "
			"ran out of its 1 MiB)\n";
		tt__write_all(2, m, sizeof m - 1);
		abort();
	}
	if (g && (g->pool || g->shared) && a < g->stack_lo &&
	    a >= g->stack_lo - guard_size) {
		/* One write, so that another thread's output cannot split
		 * the report (a write to a pipe of up to PIPE_BUF bytes is
		 * never interleaved). */
		char msg[400];
		size_t n = 0;
		n = put(msg, n, "tether: fatal error: stack overflow in "
				"goroutine ");
		n += tt__utoa(msg + n, (uint64_t)g->id);
		n = put(msg, n, " (stack of ");
		n += tt__utoa(msg + n, (uint64_t)(g->stack_hi - g->stack_lo));
		n = put(msg, n, " bytes; set a larger one with tt_go_with, "
				"TETHER_STACK_SIZE or, for shared stacks, "
				"TETHER_SHARED_STACK_SIZE)\n\ngoroutine ");
		n += tt__utoa(msg + n, (uint64_t)g->id);
		n = put(msg, n, " [running]:\n");
		tt__write_all(2, msg, n);
		abort();
	}
	chain(sig, si, uc);
}

static void install_handler(void)
{
	struct sigaction sa;
	memset(&sa, 0, sizeof sa);
	sa.sa_sigaction = overflow_handler;
	sa.sa_flags = SA_SIGINFO | SA_ONSTACK;
	sigemptyset(&sa.sa_mask);
	sigaction(SIGSEGV, &sa, &old_segv);
	sigaction(SIGBUS, &sa, &old_bus);
}

void tt__stack_thread_init(tt__sched *s)
{
	pthread_once(&globals_once, globals_init);
	/* Keep an alternate stack someone else installed. */
	stack_t cur;
	if (sigaltstack(NULL, &cur) == 0 && !(cur.ss_flags & SS_DISABLE) &&
	    cur.ss_size >= (size_t)MINSIGSTKSZ) {
		pthread_once(&handler_once, install_handler);
		return;
	}
	s->altstack = malloc(ALTSTACK_BYTES);
	if (s->altstack) {
		stack_t ss = {.ss_sp = s->altstack,
			      .ss_size = ALTSTACK_BYTES,
			      .ss_flags = 0};
		sigaltstack(&ss, NULL);
	}
	pthread_once(&handler_once, install_handler);
}

/* ---- shared stacks -------------------------------------------------------- *
 *
 * One region per scheduler, mapped on first use (TETHER_SHARED_STACK_SIZE,
 * default 1 MiB, 4 MiB under AddressSanitizer; address space, its pages
 * resident only as deep as goroutines have gone), with a guard below it
 * like any stack. Shared-stack records are TT__G_SHARED_SIZE bytes of
 * heap, pooled per scheduler. A parked goroutine's frames are copied to a
 * buffer of about their size (reserved as it parks: its depth then plus
 * TT__SWITCH_SLACK, rounded to 16 bytes), kept for reuse. */

#define SHARED_DEFAULT ((size_t)1 << 20)
#define SHARED_FREE_MAX 4096

static size_t shared_size;
static int shared_env;

static void shared_globals(void)
{
	const char *v = getenv("TETHER_SHARED_STACK_SIZE");
	shared_size = v ? parse_size(v) : 0;
	if (shared_size == 0) {
#if TT_ASAN
		shared_size = 4 * SHARED_DEFAULT;
#else
		shared_size = SHARED_DEFAULT;
#endif
	}
	if (shared_size < MIN_STACK)
		shared_size = MIN_STACK;
	if (shared_size > TT_STACK_SIZE_MAX)
		shared_size = TT_STACK_SIZE_MAX;
	shared_size = round_up(shared_size, page_size);
	v = getenv("TETHER_SHARED_STACK");
	shared_env = v && *v && strcmp(v, "0") != 0;
}

static pthread_once_t shared_once = PTHREAD_ONCE_INIT;

bool tt__shared_default(void)
{
	pthread_once(&shared_once, shared_globals);
	return shared_env;
}

static int shared_region_init(tt__sched *s)
{
	pthread_once(&shared_once, shared_globals);
	size_t bytes = guard_size + shared_size;
	char *m = mmap(NULL, bytes, PROT_READ | PROT_WRITE,
		       MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	if (m == MAP_FAILED)
		return tt__err(-ENOMEM,
			       "cannot map the %zu-byte shared stack: %s",
			       shared_size, strerror(errno));
	int r = install_guard(m);
	if (r) {
		munmap(m, bytes);
		return r;
	}
	s->sh.mprotected = atomic_load(&guard_mode) == TT_GUARD_MPROTECT;
	s->sh.vg_id = TT_VG_REGISTER(m + guard_size, m + bytes);
#if TT_ASAN
	__lsan_register_root_region(m + guard_size, shared_size);
#endif
	s->sh.lo = m + guard_size;
	s->sh.hi = m + bytes;
	r = tt__shared_helper_init(s);
	if (r) {
		s->sh.lo = s->sh.hi = NULL;
		return r; /* the mapping stays: a rare failure, once */
	}
	return 0;
}

tt__g *tt__shared_alloc(tt__sched *s, size_t size)
{
	if (TT_UNLIKELY(s->sh.lo == NULL) && shared_region_init(s) != 0)
		return NULL;
	if (size > (size_t)(s->sh.hi - s->sh.lo)) {
		tt__err(-EINVAL,
			"stack size %zu exceeds the shared stack (%zu bytes; "
			"TETHER_SHARED_STACK_SIZE sets it)",
			size, (size_t)(s->sh.hi - s->sh.lo));
		return NULL;
	}
	tt__g *g = s->sh.free;
	if (g) {
		s->sh.free = g->next;
		s->sh.nfree--;
	} else {
		g = malloc(TT__G_SHARED_SIZE);
		if (g == NULL) {
			tt__err(-ENOMEM, "out of memory for a goroutine");
			return NULL;
		}
		/* A record cut short on purpose: keep the compiler's bounds
		 * checks from holding it against the full type. */
		__asm__("" : "+r"(g));
		memset(g, 0, TT__G_SHARED_SIZE);
		/* Its waiter stays in the record: shared-stack records are
		 * small heap blocks, dense already, and memory is what this
		 * mode is for. */
		g->wait1 = g->wbuf_inline;
		g->shared = 1;
		g->stack_lo = s->sh.lo;
		g->stack_hi = s->sh.hi;
		g->wbuf = g->wbuf_inline;
		g->wbuf_cap = sizeof g->wbuf_inline;
	}
	g->sp = NULL; /* not started */
	g->stack_out = 0;
	g->last_err = 0;
	return g;
}

static void shared_free(tt__sched *s, tt__g *g)
{
	if (s->sh.owner == g)
		s->sh.owner = NULL;
#if TT_ASAN
	/* Its frames' redzones, as in tt__stack_free. */
	char *lo = g->sp ? (char *)g->sp - 512 : s->sh.hi;
	if (lo < s->sh.lo)
		lo = s->sh.lo;
	if (!g->stack_out)
		ASAN_UNPOISON_MEMORY_REGION(lo, (size_t)(s->sh.hi - lo));
#endif
	g->stack_out = 0;
	if (g->errbuf)
		g->errbuf[0] = '\0';
	if (g->wbuf != g->wbuf_inline) {
		free(g->wbuf);
		g->wbuf = g->wbuf_inline;
		g->wbuf_cap = sizeof g->wbuf_inline;
	}
	if (s->sh.nfree >= SHARED_FREE_MAX) {
		free(g->saved);
		free(g->errbuf);
		free(g);
		return;
	}
	/* Keep a small copy buffer for the next one; drop a big one. */
	if (g->saved_cap > 4096) {
		free(g->saved);
		g->saved = NULL;
		g->saved_cap = 0;
	}
	g->next = s->sh.free;
	s->sh.free = g;
	s->sh.nfree++;
}

/* The save buffer. A copy-out happens in the middle of a switch, where
 * nothing can fail any more; so each goroutine reserves its buffer before
 * it can be copied out: when it parks or yields (for the depth it has
 * then, plus the few frames of the switch below: TT__SWITCH_SLACK),
 * and whoever evicts a goroutine at a point that can still fail (tt_go)
 * reserves for it there. A copy-out then finds the buffer big enough. */

int tt__shared_fail_reserve;

int tt__shared_reserve(tt__g *g, size_t len)
{
	if (TT_LIKELY(len <= g->saved_cap && !tt__shared_fail_reserve))
		return 0;
	size_t cap = round_up(len, 16);
	char *b = tt__shared_fail_reserve || cap > UINT32_MAX
			  ? NULL
			  : realloc(g->saved, cap);
	if (b == NULL)
		return tt__err(-ENOMEM,
			       "out of memory saving the shared stack of "
			       "goroutine %lld (%zu bytes)",
			       (long long)g->id, len);
	g->saved = b;
	g->saved_cap = (uint32_t)cap;
	return 0;
}

/* The copies. Under AddressSanitizer the frames hold poisoned redzones,
 * which memcpy's checks would report: unpoison what is copied first (the
 * frames lose their redzones until they return, which is all). */
static void copy_out(tt__sched *s, tt__g *g)
{
	char *sp = g->sp;
	size_t len = (size_t)(s->sh.hi - sp);
	if (TT_UNLIKELY(len > g->saved_cap) && tt__shared_reserve(g, len))
		/* Reserved too little beforehand (see above): cannot be
		 * undone from inside the switch. */
		tt__fatal("out of memory saving the shared stack of "
			  "goroutine %lld (%zu bytes) while switching away "
			  "from it",
			  (long long)g->id, len);
#if TT_ASAN
	ASAN_UNPOISON_MEMORY_REGION(sp, len);
#endif
	memcpy(g->saved, sp, len);
	g->stack_out = 1;
}

static void copy_in(tt__sched *s, tt__g *g)
{
	char *sp = g->sp;
	size_t len = (size_t)(s->sh.hi - sp);
#if TT_ASAN
	ASAN_UNPOISON_MEMORY_REGION(sp, len);
#endif
	/* Memcheck keeps a stack's bytes below the lowest stack pointer it
	 * saw there last as not addressable; these are frames again. The
	 * copy brings their definedness along. */
	TT_VG_UNDEFINED(sp, len);
	memcpy(sp, g->saved, len);
	g->stack_out = 0;
}

void tt__shared_evict(tt__sched *s)
{
	tt__g *o = s->sh.owner;
	if (o != NULL) {
		if (o->state != TT_G_DEAD && o->sp != NULL)
			copy_out(s, o);
		s->sh.owner = NULL;
	}
}

void tt__shared_take(tt__sched *s, tt__g *g)
{
	if (s->sh.owner == g)
		return;
	tt__shared_evict(s);
	if (g->stack_out)
		copy_in(s, g);
	s->sh.owner = g;
}

/* ---- the end of a thread ------------------------------------------------ *
 *
 * A scheduler lives as long as its thread. When the thread ends, every
 * goroutine of it that is still parked or runnable can never run again
 * (goroutines do not move between threads), so nothing will read their
 * stacks any more — except what points into them from objects of the same
 * scheduler (a channel's wait queue, the timer heap), which are dead with
 * it: using them from another thread is already a panic. The leak layer
 * has captured what its reports need (tt__leak_thread_exit) before this
 * runs, so every arena goes back to the kernel whole. */

static void shared_record_free(tt__g *g)
{
	free(g->saved);
	free(g->errbuf);
	if (g->wbuf != g->wbuf_inline)
		free(g->wbuf);
	free(g);
}

static void unmap(char *base, size_t bytes)
{
#if TT_ASAN
	/* Frames left on these stacks keep their redzones poisoned; a
	 * mapping made later at the same address must start clean. */
	ASAN_UNPOISON_MEMORY_REGION(base, bytes);
#endif
	munmap(base, bytes);
}

void tt__stack_thread_exit(tt__sched *s)
{
	/* Goroutines still alive: their records (on their stacks, or on the
	 * heap for shared-stack ones) go now. */
	tt__g *next;
	for (tt__g *g = s->all; g; g = next) {
		next = g->all_next;
		if (g->is_main)
			continue;
		if (g->shared) {
			shared_record_free(g);
			continue;
		}
#if TT_ASAN
		__lsan_unregister_root_region(
			g->stack_lo, (size_t)((char *)(g + 1) - g->stack_lo));
#endif
	}
	s->all = NULL; /* main_g is unlinked already (thread_gone) */
	for (tt__g *g = s->sh.free; g; g = next) {
		next = g->next;
		shared_record_free(g);
	}
	s->sh.free = NULL;
	s->sh.nfree = 0;
	if (s->sh.lo) {
#if TT_ASAN
		__lsan_unregister_root_region(s->sh.lo, shared_size);
		tt__g *h = s->sh.helper;
		__lsan_unregister_root_region(
			h->stack_lo, (size_t)((char *)(h + 1) - h->stack_lo));
#endif
		if (TT_VG_RUNNING())
			TT_VG_DEREGISTER(s->sh.vg_id);
		unmap(s->sh.lo - guard_size,
		      (size_t)(s->sh.hi - s->sh.lo) + guard_size);
		if (s->sh.mprotected)
			atomic_fetch_add(&guard_budget, 1);
		s->sh.lo = s->sh.hi = NULL;
		s->sh.helper = NULL; /* its stack is in a pool's arena */
		s->sh.owner = NULL;
	}
	tt__stack_pool *pn;
	for (tt__stack_pool *p = s->pools; p; p = pn) {
		pn = p->next_pool;
		for (size_t i = 0; i < p->nvg; i++)
			TT_VG_DEREGISTER(p->vg_ids[i]);
		for (size_t i = 0; i < p->narenas; i++)
			unmap(p->arenas[i].base, p->arenas[i].bytes);
		atomic_fetch_add(&guard_budget, (int64_t)p->nmprotect);
		atomic_fetch_sub_explicit(&stacks_mapped,
					  (int64_t)p->ncarved,
					  memory_order_relaxed);
		free(p->arenas);
		free(p->vg_ids);
		free(p->free_cold);
		free(p);
	}
	s->pools = NULL;
	if (s->altstack) {
		/* Off the signal stack before it is freed. */
		stack_t ss = {.ss_flags = SS_DISABLE};
		sigaltstack(&ss, NULL);
		free(s->altstack);
		s->altstack = NULL;
	}
}
