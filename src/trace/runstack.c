/* tether — the runtime stack: a large per-thread stack for the runtime's
 * own deep work (symbolizing with libdw takes frames of 150 KB and more),
 * so that it runs the same from a goroutine with a small stack as from a
 * thread.
 *
 * Each thread maps its runtime stack on first use: RUNSTACK_BYTES of stack
 * with a PROT_NONE guard of one page below it. rs_lo is the low end of the
 * usable stack (0 until mapped); rs_depth counts the calls running on it,
 * so a nested call (or a signal handler that interrupts one) runs in place
 * instead of starting over at the top. The mapping is released when the
 * thread exits. */
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/mman.h>
#include <unistd.h>

#include "trace/trace.h"

#if TT_ASAN
#include <sanitizer/common_interface_defs.h>
#endif

#define RUNSTACK_BYTES (1u << 20)

void tt__call_on_stack(void *stack_top, void (*fn)(void *), void *arg);

static _Thread_local char *rs_lo;
static _Thread_local size_t rs_guard;
static _Thread_local int rs_depth;

static pthread_once_t key_once = PTHREAD_ONCE_INIT;
static pthread_key_t key;

static void unmap(void *lo)
{
	size_t page = (size_t)sysconf(_SC_PAGESIZE);
	rs_lo = NULL; /* a later destructor that symbolizes maps anew */
	munmap((char *)lo - page, RUNSTACK_BYTES + page);
}

static void key_init(void)
{
	if (pthread_key_create(&key, unmap) != 0)
		key = (pthread_key_t)-1;
}

/* Maps this thread's runtime stack. Returns false (and maps nothing) when
 * it cannot. */
static bool rs_map(void)
{
	pthread_once(&key_once, key_init);
	size_t page = (size_t)sysconf(_SC_PAGESIZE);
	char *base = mmap(NULL, RUNSTACK_BYTES + page, PROT_READ | PROT_WRITE,
			  MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE |
				  MAP_STACK,
			  -1, 0);
	if (base == MAP_FAILED)
		return false;
	if (mprotect(base, page, PROT_NONE) != 0 ||
	    key == (pthread_key_t)-1 ||
	    pthread_setspecific(key, base + page) != 0) {
		munmap(base, RUNSTACK_BYTES + page);
		return false;
	}
	rs_guard = page;
	rs_lo = base + page;
	return true;
}

typedef struct rs_call {
	void (*fn)(void *);
	void *arg;
#if TT_ASAN
	void *fake;
	const void *old_lo;
	size_t old_size;
#endif
} rs_call;

/* Runs on the runtime stack. */
static void rs_entry(void *p)
{
	rs_call *c = p;
#if TT_ASAN
	__sanitizer_finish_switch_fiber(NULL, &c->old_lo, &c->old_size);
#endif
	c->fn(c->arg);
#if TT_ASAN
	__sanitizer_start_switch_fiber(NULL, c->old_lo, c->old_size);
#endif
}

void tt__on_runtime_stack(void (*fn)(void *), void *arg)
{
	/* Nested, or no stack to be had: run where we are (a small stack
	 * may then overflow, which the overflow report says). */
	if (rs_depth > 0 || (rs_lo == NULL && !rs_map())) {
		fn(arg);
		return;
	}
	rs_call c = {.fn = fn, .arg = arg};
	rs_depth++;
#if TT_ASAN
	__sanitizer_start_switch_fiber(&c.fake, rs_lo, RUNSTACK_BYTES);
#endif
	tt__call_on_stack(rs_lo + RUNSTACK_BYTES, rs_entry, &c);
#if TT_ASAN
	__sanitizer_finish_switch_fiber(c.fake, NULL, NULL);
#endif
	rs_depth--;
}

bool tt__runtime_stack_guard_hit(const void *addr)
{
	const char *a = addr;
	return rs_lo && a < rs_lo && a >= rs_lo - rs_guard;
}

bool tt__on_runtime_stack_at(const void *addr)
{
	const char *a = addr;
	return rs_lo && a >= rs_lo && a <= rs_lo + RUNSTACK_BYTES;
}
