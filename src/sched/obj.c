/* tether — handles that cannot alias: generation-tagged object slots.
 *
 * Design notes
 * ------------
 * Every channel, sync object and cancelable context lives in a slot of
 * this allocator, and the pointer the program holds is a handle: the
 * slot's address with the slot's generation in bits 48..63 (addresses
 * here are below 2^48 on x86-64 and aarch64; see TT__OBJ_TAG_SHIFT). The
 * object's first word (tt__obj.self) holds, while it is live, the handle
 * plus the object's kind in its low bits (enum tt__obj_kind; handles are
 * 16-byte aligned). Freeing sets bit 0 too, so the generation survives
 * and no handle of any kind matches a free slot; the next allocation of
 * the slot takes the next generation. A stale handle therefore fails the
 * self check every time, for as long as the process runs:
 *  - slot memory is never unmapped or handed to malloc, so reading
 *    tt__obj.self through a stale handle is always a read of our own
 *    memory (ASan sees no use after free: only the bytes past the first
 *    16 are poisoned while the slot is free);
 *  - a slot whose generation reaches TT__OBJ_GEN_MAX is retired for good
 *    instead of wrapping, so no two allocations of a slot ever share a
 *    handle. Retiring costs one slot per 65,535 reuses of it.
 * The same compare rejects a handle of another kind (a mutex given to a
 * channel call), with no magic number to check.
 *
 * Slots come in size classes (multiples of 16 bytes up to 2 KiB). Each
 * scheduler keeps a free list per class and carves fresh slots from its
 * own chunk, so the usual make/release pair takes no lock. A thread that
 * ends gives its free lists to a global list per class (under obj_lock),
 * which a thread whose own list is empty takes from first.
 *
 * What this costs: slot memory is reused but never returned to the
 * kernel. A program that once held a million channels keeps their slots
 * (about 128 MB) mapped for later objects.
 */
#include <errno.h>
#include <pthread.h>
#include <string.h>
#include <sys/mman.h>

#include "internal.h"

#if TT_ASAN
#include <sanitizer/asan_interface.h>
#include <sanitizer/lsan_interface.h>
#define POISON(p, n) ASAN_POISON_MEMORY_REGION((p), (n))
#define UNPOISON(p, n) ASAN_UNPOISON_MEMORY_REGION((p), (n))
#else
#define POISON(p, n) ((void)(p), (void)(n))
#define UNPOISON(p, n) ((void)(p), (void)(n))
#endif

_Static_assert(sizeof(void *) == 8, "handles need 64-bit pointers");

/* Every 16 bytes up to 256 (class (size + 15) / 16 - 2), then coarser. */
static const uint16_t class_size[TT__OBJ_CLASSES] = {
	32,  48,  64,  80,  96,  112, 128,  144,  160,  176, 192,
	208, 224, 240, 256, 384, 512, 768, 1024, 1536, 2048,
};

#define CHUNK_BYTES ((size_t)1 << 20)

/* A free slot: self (the retired handle, low bit set), then the link. The
 * first 16 bytes stay unpoisoned. */
typedef struct free_slot {
	const void *self;
	struct free_slot *next;
} free_slot;

static pthread_mutex_t obj_lock = PTHREAD_MUTEX_INITIALIZER;
static free_slot *global_free[TT__OBJ_CLASSES]; /* guarded by obj_lock */

static inline int class_of(size_t size)
{
	if (size <= 256)
		return size <= 32 ? 0 : (int)((size + 15) >> 4) - 2;
	for (int i = 15; i < TT__OBJ_CLASSES; i++)
		if (size <= class_size[i])
			return i;
	return -1;
}

/* A fresh chunk for s to carve from; false if the kernel refused. */
static bool new_chunk(tt__sched *s)
{
	void *m = mmap(NULL, CHUNK_BYTES, PROT_READ | PROT_WRITE,
		       MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (m == MAP_FAILED)
		return false;
	if (((uintptr_t)m + CHUNK_BYTES - 1) >> TT__OBJ_TAG_SHIFT) {
		/* Only a kernel asked for 57-bit addresses maps here. */
		munmap(m, CHUNK_BYTES);
		return false;
	}
#if TT_ASAN
	/* Objects hold the only pointers to some heap blocks (a large
	 * channel's buffer): let LeakSanitizer see them. */
	__lsan_register_root_region(m, CHUNK_BYTES);
#endif
	POISON(m, CHUNK_BYTES);
	s->obj_carve = m;
	s->obj_carve_end = (char *)m + CHUNK_BYTES;
	return true;
}

/* Take one slot of class cls off the free lists, or NULL. */
static free_slot *take_free(tt__sched *s, int cls)
{
	free_slot *f = s->obj_free[cls];
	if (f == NULL) {
		pthread_mutex_lock(&obj_lock);
		f = global_free[cls];
		global_free[cls] = NULL;
		pthread_mutex_unlock(&obj_lock);
		if (f == NULL)
			return NULL;
	}
	s->obj_free[cls] = f->next;
	return f;
}

void *tt__obj_alloc(tt__sched *s, size_t size, enum tt__obj_kind kind)
{
	int cls = class_of(size);
	TT_ASSERT(cls >= 0);
	size_t n = class_size[cls];
	free_slot *f = take_free(s, cls);
	uintptr_t gen = 1;
	char *p;
	if (f) {
		p = (char *)f;
		gen = ((uintptr_t)f->self >> TT__OBJ_TAG_SHIFT) + 1;
	} else {
		if ((size_t)(s->obj_carve_end - s->obj_carve) < n &&
		    !new_chunk(s))
			return NULL;
		p = s->obj_carve;
		s->obj_carve += n;
	}
	UNPOISON(p, n);
	s->nobjs++;
	((tt__obj *)p)->self = (const void *)((uintptr_t)p |
					      gen << TT__OBJ_TAG_SHIFT |
					      (uintptr_t)kind);
	return p;
}

void tt__obj_free(tt__sched *s, void *p, size_t size)
{
	int cls = class_of(size);
	TT_ASSERT(cls >= 0);
	free_slot *f = p;
	uintptr_t h = (uintptr_t)f->self;
	/* volatile: stores before a slot goes idle look dead to the
	 * compiler, and this one is what stale handles are checked
	 * against. */
	*(const void *volatile *)&f->self =
		(const void *)(h | TT__OBJ_FREE);
	POISON((char *)p + sizeof *f, class_size[cls] - sizeof *f);
	s->nobjs--;
	if ((h >> TT__OBJ_TAG_SHIFT) == TT__OBJ_GEN_MAX)
		return; /* retired: its handles are all used up */
	f->next = s->obj_free[cls];
	s->obj_free[cls] = f;
}

void tt__obj_thread_exit(tt__sched *s)
{
	pthread_mutex_lock(&obj_lock);
	for (int i = 0; i < TT__OBJ_CLASSES; i++) {
		free_slot *f = s->obj_free[i];
		if (f == NULL)
			continue;
		free_slot *last = f;
		while (last->next)
			last = last->next;
		last->next = global_free[i];
		global_free[i] = f;
		s->obj_free[i] = NULL;
	}
	pthread_mutex_unlock(&obj_lock);
	/* The rest of the carving chunk stays mapped: objects of this
	 * thread that nobody freed may still live in it. */
	s->obj_carve = s->obj_carve_end = NULL;
}

/* ---- any object by its handle ------------------------------------------ */

/* The kind of the live object h names, or -1 with the error recorded. */
static int live_kind(const void *h, const char *op)
{
	if (h == NULL) {
		tt__err(-EINVAL, "%s: object is NULL", op);
		return -1;
	}
	uintptr_t self = (uintptr_t)((const tt__obj *)tt__obj_ptr(h))->self;
	if ((self & ~(uintptr_t)15) != (uintptr_t)h ||
	    (self & TT__OBJ_FREE)) {
		tt__misuse(-EBADF,
			"%s: %p is not a live tether object (released, or "
			"never made)",
			op, h);
		return -1;
	}
	return (int)(self & 14);
}

/* A reference more (retain) or less, by the kind's own call. */
static int obj_ref(void *h, bool retain)
{
	const char *op = retain ? "tt_obj_retain" : "tt_obj_release";
	switch (live_kind(h, op)) {
	case TT__OBJ_CHAN:
		return retain ? tt_chan_retain(h) : tt_chan_release(h);
	case TT__OBJ_CTX:
		return retain ? tt_ctx_retain(h) : tt_ctx_release(h);
	case TT__OBJ_SYNC:
		return retain ? tt__sync_retain(h) : tt__sync_release(h);
	case TT__OBJ_CTX_AFTER:
		return tt__err(-EINVAL,
			       "%s: %p is a tt_ctx_after_func stop handle, "
			       "which has no references",
			       op, h);
	default:
		return tt__current()->last_err;
	}
}

int tt_obj_retain(void *h)
{
	return obj_ref(h, true);
}

int tt_obj_release(void *h)
{
	return obj_ref(h, false);
}
