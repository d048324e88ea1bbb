/* tether — the goroutine profile as pprof's profile.proto, gzipped.
 *
 * Design notes
 *
 * The cost is in grouping: a million goroutines may share a few hundred
 * stacks, so the goroutines are hashed once each (their PCs and name) into
 * an open-addressed table of groups; everything after that (locations,
 * functions, strings, the encoding) runs per group or per distinct PC,
 * which is small. Consecutive goroutines with the very same PC array (a
 * snapshot may share one copy between equal stacks) skip the hashing.
 *
 * Phases:
 *   1. group: goroutines -> groups (stack, name) with counts;
 *   2. mappings: the loaded ELF objects (dl_iterate_phdr), program first;
 *   3. resolve: each group's PCs -> location ids; a PC seen for the first
 *      time is symbolized once (its frames kept in a per-PC record), and a
 *      location is made of it when a stack first uses it: its frames
 *      become Line entries whose functions are interned by (name, file),
 *      their strings in the string table. A PC at the top of a stack whose
 *      first frames are tether's own inlined internals gets a second
 *      location without them, so nothing unused is written;
 *   4. encode the Profile message into one byte buffer, each nested message
 *      through a scratch buffer so its length can be written first;
 *   5. gzip it into the caller's tt__buf.
 *
 * Every table lives only for one call; nothing is shared or locked. The
 * strings the table points to belong to the snapshot (goroutine names),
 * the symbolizer (never freed) or this call (mapping file names), and all
 * outlive the call's use of them.
 *
 * Wire format (profile.proto, proto3): a field is a varint key
 * (number << 3 | wire type) followed by a varint (type 0) or a varint
 * length and that many bytes (type 2: strings, messages, packed repeated
 * integers). Zero scalars are left out, as proto3 does.
 */
#include <errno.h>
#include <limits.h>
#include <link.h>
#include <stdlib.h>
#include <string.h>
#include <sys/auxv.h>
#include <time.h>
#include <unistd.h>

#include <zlib.h>

#include "pprof.h"

/* Field numbers of profile.proto. */
enum {
	PROFILE_SAMPLE_TYPE = 1,
	PROFILE_SAMPLE = 2,
	PROFILE_MAPPING = 3,
	PROFILE_LOCATION = 4,
	PROFILE_FUNCTION = 5,
	PROFILE_STRING_TABLE = 6,
	PROFILE_TIME_NANOS = 9,
	PROFILE_PERIOD_TYPE = 11,
	PROFILE_PERIOD = 12,

	VALUE_TYPE_TYPE = 1,
	VALUE_TYPE_UNIT = 2,

	SAMPLE_LOCATION_ID = 1,
	SAMPLE_VALUE = 2,
	SAMPLE_LABEL = 3,

	LABEL_KEY = 1,
	LABEL_STR = 2,

	MAPPING_ID = 1,
	MAPPING_MEMORY_START = 2,
	MAPPING_MEMORY_LIMIT = 3,
	MAPPING_FILE_OFFSET = 4,
	MAPPING_FILENAME = 5,
	MAPPING_BUILD_ID = 6,
	MAPPING_HAS_FUNCTIONS = 7,
	MAPPING_HAS_FILENAMES = 8,
	MAPPING_HAS_LINE_NUMBERS = 9,
	MAPPING_HAS_INLINE_FRAMES = 10,

	LOCATION_ID = 1,
	LOCATION_MAPPING_ID = 2,
	LOCATION_ADDRESS = 3,
	LOCATION_LINE = 4,

	LINE_FUNCTION_ID = 1,
	LINE_LINE = 2,

	FUNCTION_ID = 1,
	FUNCTION_NAME = 2,
	FUNCTION_SYSTEM_NAME = 3,
	FUNCTION_FILENAME = 4,
};

enum {
	WIRE_VARINT = 0,
	WIRE_LEN = 2
};

/* Most inlined frames asked of the symbolizer for one PC. */
#define MAX_INLINE 32

/* ---- byte buffer and protobuf primitives ------------------------------ */

typedef struct pbuf {
	uint8_t *p;
	size_t len, cap;
	bool oom;
} pbuf;

static bool pb_reserve(pbuf *b, size_t n)
{
	if (b->oom)
		return false;
	if (b->cap - b->len >= n)
		return true;
	size_t cap = b->cap ? b->cap : 256;
	while (cap - b->len < n) {
		if (cap > SIZE_MAX / 2) {
			b->oom = true;
			return false;
		}
		cap *= 2;
	}
	uint8_t *p = realloc(b->p, cap);
	if (p == NULL) {
		b->oom = true;
		return false;
	}
	b->p = p;
	b->cap = cap;
	return true;
}

static void pb_varint(pbuf *b, uint64_t v)
{
	if (!pb_reserve(b, 10))
		return;
	uint8_t *p = b->p + b->len;
	while (v >= 0x80) {
		*p++ = (uint8_t)(v | 0x80);
		v >>= 7;
	}
	*p++ = (uint8_t)v;
	b->len = (size_t)(p - b->p);
}

static void pb_key(pbuf *b, unsigned field, unsigned wire)
{
	pb_varint(b, (uint64_t)field << 3 | wire);
}

/* A scalar field, left out when zero. */
static void pb_uint(pbuf *b, unsigned field, uint64_t v)
{
	if (v == 0)
		return;
	pb_key(b, field, WIRE_VARINT);
	pb_varint(b, v);
}

static void pb_bytes(pbuf *b, unsigned field, const void *p, size_t n)
{
	pb_key(b, field, WIRE_LEN);
	pb_varint(b, n);
	if (n && pb_reserve(b, n)) {
		memcpy(b->p + b->len, p, n);
		b->len += n;
	}
}

/* A nested message that was built in `msg`; msg is emptied for reuse. */
static void pb_msg(pbuf *b, unsigned field, pbuf *msg)
{
	if (msg->oom)
		b->oom = true;
	pb_bytes(b, field, msg->p, msg->len);
	msg->len = 0;
}

/* ---- hashing ---------------------------------------------------------- */

static inline uint64_t mix(uint64_t h, uint64_t v)
{
	h ^= v;
	h *= UINT64_C(0x9e3779b97f4a7c15);
	return h ^ (h >> 29);
}

static uint64_t hash_str(const char *s)
{
	/* FNV-1a, then one mix so the low bits (the table index) spread. */
	uint64_t h = UINT64_C(0xcbf29ce484222325);
	for (; *s; s++) {
		h ^= (unsigned char)*s;
		h *= UINT64_C(0x100000001b3);
	}
	return mix(h, 0);
}

/* An open-addressed table of uint32 indices (0 = empty, else index + 1)
 * into an array owned by the caller; mask + 1 is a power of two. */
typedef struct itab {
	uint32_t *slot;
	size_t mask;
	size_t n;
} itab;

static int itab_init(itab *t, size_t want)
{
	size_t cap = 64;
	while (cap < want * 2)
		cap *= 2;
	t->slot = calloc(cap, sizeof *t->slot);
	if (t->slot == NULL)
		return -ENOMEM;
	t->mask = cap - 1;
	t->n = 0;
	return 0;
}

/* Grow when more than half full; rehash needs each entry's hash. */
static int itab_grow(itab *t, const void *base, size_t stride, size_t hash_off)
{
	if ((t->n + 1) * 2 <= t->mask + 1)
		return 0;
	size_t cap = (t->mask + 1) * 2;
	uint32_t *slot = calloc(cap, sizeof *slot);
	if (slot == NULL)
		return -ENOMEM;
	for (size_t i = 0; i <= t->mask; i++) {
		uint32_t v = t->slot[i];
		if (v == 0)
			continue;
		uint64_t h;
		memcpy(&h,
		       (const char *)base + (size_t)(v - 1) * stride + hash_off,
		       sizeof h);
		size_t j = (size_t)h & (cap - 1);
		while (slot[j])
			j = (j + 1) & (cap - 1);
		slot[j] = v;
	}
	free(t->slot);
	t->slot = slot;
	t->mask = cap - 1;
	return 0;
}

/* Growable arrays of fixed-size records. */
static int grow(void **v, size_t *cap, size_t need, size_t size)
{
	if (need <= *cap)
		return 0;
	size_t c = *cap ? *cap * 2 : 64;
	while (c < need)
		c *= 2;
	void *p = realloc(*v, c * size);
	if (p == NULL)
		return -ENOMEM;
	*v = p;
	*cap = c;
	return 0;
}

/* ---- the tables ------------------------------------------------------- */

/* Goroutines with one stack and one name. */
typedef struct group {
	uint64_t hash;
	const uintptr_t *pcs;
	const char *name;
	int64_t count;
	uint32_t npcs;
	uint32_t loc0; /* its npcs location ids start at stack_locs[loc0] */
} group;

typedef struct strent {
	uint64_t hash;
	const char *s;
	size_t len;
} strent;

typedef struct func {
	uint64_t hash;
	uint32_t name, file; /* string indices */
} func;

/* What one PC symbolized to, and the locations made of it. */
typedef struct pcinfo {
	uint64_t hash;
	uintptr_t pc;
	uint32_t mapping;        /* id, 0 for none */
	uint32_t frame0, nframe; /* into the frames array */
	uint32_t lead_internal;  /* tether-internal frames first */
	uint32_t loc_all;        /* location id with every frame, 0 if none
				    yet */
	uint32_t loc_top;        /* without the internal frames, for the
				    top of a stack */
} pcinfo;

typedef struct pframe {
	const char *func, *file;
	int line;
} pframe;

typedef struct loc {
	uint32_t pci;          /* its pcinfo */
	uint32_t line0, nline; /* into the lines array */
} loc;

typedef struct line {
	uint32_t func; /* id */
	int64_t line;
} line;

typedef struct mapping {
	uintptr_t start, limit;
	uint64_t offset;
	char *file;
	char build_id[41];   /* hex, "" when the object has none */
	uint32_t nloc, nsym; /* locations in it, and how many symbolized */
} mapping;

typedef struct builder {
	tt__symbolize_fn sym;

	group *groups;
	size_t ngroups, groups_cap;
	itab group_tab;

	strent *strs;
	size_t nstrs, strs_cap;
	itab str_tab;

	func *funcs;
	size_t nfuncs, funcs_cap;
	itab func_tab;

	pcinfo *pcs;
	size_t npcs, pcs_cap;
	itab pc_tab;

	pframe *frames;
	size_t nframes, frames_cap;

	loc *locs;
	size_t nlocs, locs_cap;

	line *lines;
	size_t nlines, lines_cap;

	/* Per group, the location id of each PC, concatenated. */
	uint32_t *stack_locs;
	size_t nstack_locs, stack_locs_cap;

	mapping *maps;
	size_t nmaps, maps_cap;
	uint32_t *maps_by_addr; /* indices into maps, sorted by start */

	int err;
} builder;

/* ---- phase 1: group the goroutines ------------------------------------ */

static bool same_name(const char *a, const char *b)
{
	if (a == b)
		return true;
	return a != NULL && b != NULL && strcmp(a, b) == 0;
}

static int group_add(builder *b, const tt__gsnap *g, uint32_t *last)
{
	/* The previous goroutine's group, when it is the same stack object. */
	if (*last) {
		group *p = &b->groups[*last - 1];
		if (p->pcs == g->pcs && p->npcs == g->npcs &&
		    same_name(p->name, g->name)) {
			p->count++;
			return 0;
		}
	}

	uint64_t h = mix(UINT64_C(0x243f6a8885a308d3), g->npcs);
	for (uint32_t i = 0; i < g->npcs; i++)
		h = mix(h, g->pcs[i]);
	if (g->name)
		h = mix(h, hash_str(g->name));

	itab *t = &b->group_tab;
	size_t j = (size_t)h & t->mask;
	for (uint32_t v; (v = t->slot[j]) != 0; j = (j + 1) & t->mask) {
		group *p = &b->groups[v - 1];
		if (p->hash == h && p->npcs == g->npcs &&
		    same_name(p->name, g->name) &&
		    (p->pcs == g->pcs ||
		     memcmp(p->pcs, g->pcs, g->npcs * sizeof *g->pcs) == 0)) {
			p->count++;
			*last = v;
			return 0;
		}
	}
	if (grow((void **)&b->groups, &b->groups_cap, b->ngroups + 1,
		 sizeof *b->groups))
		return -ENOMEM;
	b->groups[b->ngroups] = (group){
		.hash = h,
		.pcs = g->pcs,
		.name = g->name,
		.count = 1,
		.npcs = g->npcs,
	};
	t->slot[j] = (uint32_t)++b->ngroups;
	t->n++;
	*last = (uint32_t)b->ngroups;
	return itab_grow(t, b->groups, sizeof *b->groups,
			 offsetof(group, hash));
}

/* ---- strings and functions -------------------------------------------- */

/* Index of s in the string table, adding it if new; 0 for "" and NULL. */
static uint32_t intern(builder *b, const char *s)
{
	if (s == NULL || *s == '\0' || b->err)
		return 0;
	uint64_t h = hash_str(s);
	itab *t = &b->str_tab;
	size_t j = (size_t)h & t->mask;
	for (uint32_t v; (v = t->slot[j]) != 0; j = (j + 1) & t->mask) {
		strent *e = &b->strs[v - 1];
		if (e->hash == h && strcmp(e->s, s) == 0)
			return v - 1;
	}
	if (grow((void **)&b->strs, &b->strs_cap, b->nstrs + 1,
		 sizeof *b->strs)) {
		b->err = -ENOMEM;
		return 0;
	}
	b->strs[b->nstrs] = (strent){.hash = h, .s = s, .len = strlen(s)};
	uint32_t ix = (uint32_t)b->nstrs++;
	t->slot[j] = ix + 1;
	t->n++;
	if (itab_grow(t, b->strs, sizeof *b->strs, offsetof(strent, hash)))
		b->err = -ENOMEM;
	return ix;
}

/* Id (1-based) of the function (name, file). */
static uint32_t func_id(builder *b, const char *name, const char *file)
{
	uint32_t n = intern(b, name), f = intern(b, file);
	if (b->err)
		return 0;
	uint64_t h = mix(mix(UINT64_C(0x13198a2e03707344), n), f);
	itab *t = &b->func_tab;
	size_t j = (size_t)h & t->mask;
	for (uint32_t v; (v = t->slot[j]) != 0; j = (j + 1) & t->mask) {
		func *e = &b->funcs[v - 1];
		if (e->name == n && e->file == f)
			return v;
	}
	if (grow((void **)&b->funcs, &b->funcs_cap, b->nfuncs + 1,
		 sizeof *b->funcs)) {
		b->err = -ENOMEM;
		return 0;
	}
	b->funcs[b->nfuncs] = (func){.hash = h, .name = n, .file = f};
	uint32_t id = (uint32_t)++b->nfuncs;
	t->slot[j] = id;
	t->n++;
	if (itab_grow(t, b->funcs, sizeof *b->funcs, offsetof(func, hash)))
		b->err = -ENOMEM;
	return id;
}

/* ---- phase 2: mappings ------------------------------------------------ */

/* The GNU build id of an object, from its PT_NOTE segments in memory. */
static void read_build_id(const struct dl_phdr_info *info, char out[41])
{
	static const char hex[] = "0123456789abcdef";
	out[0] = '\0';
	for (int i = 0; i < info->dlpi_phnum; i++) {
		const ElfW(Phdr) *ph = &info->dlpi_phdr[i];
		if (ph->p_type != PT_NOTE)
			continue;
		const char *p = (const char *)(info->dlpi_addr + ph->p_vaddr);
		const char *end = p + ph->p_memsz;
		while ((size_t)(end - p) >= sizeof(ElfW(Nhdr))) {
			const ElfW(Nhdr) *nh = (const ElfW(Nhdr) *)p;
			size_t namesz = (nh->n_namesz + 3) & ~(size_t)3;
			size_t descsz = (nh->n_descsz + 3) & ~(size_t)3;
			const char *name = p + sizeof *nh;
			const unsigned char *desc =
				(const unsigned char *)name + namesz;
			if ((size_t)(end - name) < namesz + descsz)
				break;
			if (nh->n_type == NT_GNU_BUILD_ID &&
			    nh->n_namesz == 4 && memcmp(name, "GNU", 4) == 0 &&
			    nh->n_descsz <= 20) {
				for (size_t k = 0; k < nh->n_descsz; k++) {
					out[2 * k] = hex[desc[k] >> 4];
					out[2 * k + 1] = hex[desc[k] & 15];
				}
				out[2 * nh->n_descsz] = '\0';
				return;
			}
			p = name + namesz + descsz;
		}
	}
}

static char *program_path(void)
{
	char buf[PATH_MAX];
	ssize_t n = readlink("/proc/self/exe", buf, sizeof buf - 1);
	if (n <= 0)
		return strdup("");
	buf[n] = '\0';
	return strdup(buf);
}

static int add_object(struct dl_phdr_info *info, size_t size, void *arg)
{
	(void)size;
	builder *b = arg;
	uintptr_t page = (uintptr_t)sysconf(_SC_PAGESIZE);
	uintptr_t vdso = (uintptr_t)getauxval(AT_SYSINFO_EHDR);
	bool first = b->nmaps == 0;

	for (int i = 0; i < info->dlpi_phnum; i++) {
		const ElfW(Phdr) *ph = &info->dlpi_phdr[i];
		if (ph->p_type != PT_LOAD || !(ph->p_flags & PF_X) ||
		    ph->p_memsz == 0)
			continue;
		if (grow((void **)&b->maps, &b->maps_cap, b->nmaps + 1,
			 sizeof *b->maps)) {
			b->err = -ENOMEM;
			return 1;
		}
		uintptr_t lo = info->dlpi_addr + ph->p_vaddr;
		mapping *m = &b->maps[b->nmaps];
		*m = (mapping){
			.start = lo & ~(page - 1),
			.limit = (lo + ph->p_memsz + page - 1) & ~(page - 1),
			.offset = ph->p_offset & ~(uint64_t)(page - 1),
		};
		/* Names as /proc/self/maps gives them (and Go prints them):
		 * the program's full path, "[vdso]" for the kernel's. */
		if (first)
			m->file = program_path();
		else if (vdso && (uintptr_t)info->dlpi_phdr > vdso &&
			 (uintptr_t)info->dlpi_phdr < vdso + 65536)
			m->file = strdup("[vdso]");
		else
			m->file =
				strdup(info->dlpi_name ? info->dlpi_name : "");
		if (m->file == NULL) {
			b->err = -ENOMEM;
			return 1;
		}
		read_build_id(info, m->build_id);
		b->nmaps++;
	}
	return 0;
}

static int load_mappings(builder *b)
{
	dl_iterate_phdr(add_object, b);
	if (b->err)
		return b->err;
	if (b->nmaps == 0)
		return 0;
	b->maps_by_addr = malloc(b->nmaps * sizeof *b->maps_by_addr);
	if (b->maps_by_addr == NULL)
		return -ENOMEM;
	for (size_t i = 0; i < b->nmaps; i++)
		b->maps_by_addr[i] = (uint32_t)i;
	/* Insertion sort: tens of objects, and qsort would need the array
	 * in a global to compare indices. */
	const mapping *base = b->maps;
	size_t n = b->nmaps;
	for (size_t i = 1; i < n; i++) {
		uint32_t v = b->maps_by_addr[i];
		size_t j = i;
		while (j > 0 &&
		       base[b->maps_by_addr[j - 1]].start > base[v].start) {
			b->maps_by_addr[j] = b->maps_by_addr[j - 1];
			j--;
		}
		b->maps_by_addr[j] = v;
	}
	return 0;
}

/* Id (1-based) of the mapping holding pc, 0 when none does. */
static uint32_t mapping_of(const builder *b, uintptr_t pc)
{
	size_t lo = 0, hi = b->nmaps;
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		if (b->maps[b->maps_by_addr[mid]].start <= pc)
			lo = mid + 1;
		else
			hi = mid;
	}
	if (lo == 0)
		return 0;
	uint32_t ix = b->maps_by_addr[lo - 1];
	return pc < b->maps[ix].limit ? ix + 1 : 0;
}

/* ---- phase 3: locations ----------------------------------------------- */

/* Index of pc's record, symbolizing pc when it is new. The PCs of a
 * snapshot are all return addresses (a goroutine has run, and saved its
 * registers, before anything can see it). */
static uint32_t pc_info(builder *b, uintptr_t pc)
{
	uint64_t h = mix(UINT64_C(0xa4093822299f31d0), pc);
	itab *t = &b->pc_tab;
	size_t j = (size_t)h & t->mask;
	for (uint32_t v; (v = t->slot[j]) != 0; j = (j + 1) & t->mask)
		if (b->pcs[v - 1].pc == pc)
			return v - 1;

	tt__frame fr[MAX_INLINE];
	memset(fr, 0, sizeof fr);
	int n = b->sym(pc, true, fr, MAX_INLINE);
	if (n < 0)
		n = 0;
	if (n > MAX_INLINE)
		n = MAX_INLINE;
	/* An unknown PC has no lines: pprof then shows its address. */
	if (n == 1 && (fr[0].func == NULL || strcmp(fr[0].func, "?") == 0))
		n = 0;
	if (grow((void **)&b->frames, &b->frames_cap, b->nframes + (size_t)n,
		 sizeof *b->frames) ||
	    grow((void **)&b->pcs, &b->pcs_cap, b->npcs + 1, sizeof *b->pcs)) {
		b->err = -ENOMEM;
		return 0;
	}
	pcinfo *p = &b->pcs[b->npcs];
	*p = (pcinfo){
		.hash = h,
		.pc = pc,
		.mapping = mapping_of(b, pc),
		.frame0 = (uint32_t)b->nframes,
		.nframe = (uint32_t)n,
	};
	while ((int)p->lead_internal + 1 < n && fr[p->lead_internal].internal)
		p->lead_internal++;
	for (int i = 0; i < n; i++)
		b->frames[b->nframes++] = (pframe){
			.func = fr[i].func && *fr[i].func ? fr[i].func : "?",
			.file = fr[i].file,
			.line = fr[i].line > 0 ? fr[i].line : 0,
		};
	uint32_t ix = (uint32_t)b->npcs++;
	t->slot[j] = ix + 1;
	t->n++;
	if (itab_grow(t, b->pcs, sizeof *b->pcs, offsetof(pcinfo, hash)))
		b->err = -ENOMEM;
	return ix;
}

/* Id of the location of pc, made the first time it is asked for. At the
 * top of a stack, as Go hides runtime.gopark and as the text formats do,
 * tether's own frames inlined there (the park inside tt_chan_recv, say)
 * are left out: such a PC then has a second location without them. */
static uint32_t loc_id(builder *b, uintptr_t pc, bool top)
{
	uint32_t ix = pc_info(b, pc);
	if (b->err)
		return 0;
	pcinfo *p = &b->pcs[ix];
	bool trim = top && p->lead_internal > 0;
	uint32_t *id = trim ? &p->loc_top : &p->loc_all;
	if (*id)
		return *id;

	uint32_t skip = trim ? p->lead_internal : 0;
	uint32_t n = p->nframe - skip;
	if (grow((void **)&b->lines, &b->lines_cap, b->nlines + n,
		 sizeof *b->lines) ||
	    grow((void **)&b->locs, &b->locs_cap, b->nlocs + 1,
		 sizeof *b->locs)) {
		b->err = -ENOMEM;
		return 0;
	}
	loc *l = &b->locs[b->nlocs];
	*l = (loc){.pci = ix, .line0 = (uint32_t)b->nlines, .nline = n};
	for (uint32_t i = 0; i < n; i++) {
		const pframe *f = &b->frames[p->frame0 + skip + i];
		uint32_t fn = func_id(b, f->func, f->file);
		if (b->err)
			return 0;
		b->lines[b->nlines++] = (line){.func = fn, .line = f->line};
	}
	if (p->mapping) {
		b->maps[p->mapping - 1].nloc++;
		if (n > 0)
			b->maps[p->mapping - 1].nsym++;
	}
	*id = (uint32_t)++b->nlocs;
	return *id;
}

static int resolve(builder *b)
{
	for (size_t i = 0; i < b->ngroups && !b->err; i++) {
		group *g = &b->groups[i];
		if (grow((void **)&b->stack_locs, &b->stack_locs_cap,
			 b->nstack_locs + g->npcs, sizeof *b->stack_locs))
			return -ENOMEM;
		g->loc0 = (uint32_t)b->nstack_locs;
		for (uint32_t k = 0; k < g->npcs && !b->err; k++)
			b->stack_locs[b->nstack_locs++] =
				loc_id(b, g->pcs[k], k == 0);
	}
	return b->err;
}

/* ---- phase 4: encode -------------------------------------------------- */

static void encode_value_type(pbuf *out, pbuf *m, unsigned field, uint32_t type,
			      uint32_t unit)
{
	pb_uint(m, VALUE_TYPE_TYPE, type);
	pb_uint(m, VALUE_TYPE_UNIT, unit);
	pb_msg(out, field, m);
}

static int encode(builder *b, pbuf *out, const char *name)
{
	pbuf m = {0}, sub = {0};
	uint32_t s_type = intern(b, name);
	uint32_t s_count = intern(b, "count");
	uint32_t s_name = intern(b, "name");
	for (size_t i = 0; i < b->ngroups; i++)
		intern(b, b->groups[i].name);
	for (size_t i = 0; i < b->nmaps; i++) {
		intern(b, b->maps[i].file);
		intern(b, b->maps[i].build_id);
	}
	if (b->err)
		return b->err;

	encode_value_type(out, &m, PROFILE_SAMPLE_TYPE, s_type, s_count);

	for (size_t i = 0; i < b->ngroups; i++) {
		const group *g = &b->groups[i];
		/* location_id, packed. */
		for (uint32_t k = 0; k < g->npcs; k++)
			pb_varint(&sub, b->stack_locs[g->loc0 + k]);
		pb_msg(&m, SAMPLE_LOCATION_ID, &sub);
		pb_varint(&sub, (uint64_t)g->count);
		pb_msg(&m, SAMPLE_VALUE, &sub);
		if (g->name && *g->name) {
			pb_uint(&sub, LABEL_KEY, s_name);
			pb_uint(&sub, LABEL_STR, intern(b, g->name));
			pb_msg(&m, SAMPLE_LABEL, &sub);
		}
		pb_msg(out, PROFILE_SAMPLE, &m);
	}

	for (size_t i = 0; i < b->nmaps; i++) {
		const mapping *mp = &b->maps[i];
		bool sym = mp->nloc > 0 && mp->nsym == mp->nloc;
		pb_uint(&m, MAPPING_ID, i + 1);
		pb_uint(&m, MAPPING_MEMORY_START, mp->start);
		pb_uint(&m, MAPPING_MEMORY_LIMIT, mp->limit);
		pb_uint(&m, MAPPING_FILE_OFFSET, mp->offset);
		pb_uint(&m, MAPPING_FILENAME, intern(b, mp->file));
		pb_uint(&m, MAPPING_BUILD_ID, intern(b, mp->build_id));
		pb_uint(&m, MAPPING_HAS_FUNCTIONS, sym);
		pb_uint(&m, MAPPING_HAS_FILENAMES, sym);
		pb_uint(&m, MAPPING_HAS_LINE_NUMBERS, sym);
		pb_uint(&m, MAPPING_HAS_INLINE_FRAMES, sym);
		pb_msg(out, PROFILE_MAPPING, &m);
	}

	for (size_t i = 0; i < b->nlocs; i++) {
		const loc *l = &b->locs[i];
		const pcinfo *p = &b->pcs[l->pci];
		pb_uint(&m, LOCATION_ID, i + 1);
		pb_uint(&m, LOCATION_MAPPING_ID, p->mapping);
		/* The call, for a return address: the address debug=1
		 * prints, within the call instruction as pprof asks. */
		pb_uint(&m, LOCATION_ADDRESS, p->pc ? p->pc - 1 : 0);
		for (uint32_t k = 0; k < l->nline; k++) {
			const line *ln = &b->lines[l->line0 + k];
			pb_uint(&sub, LINE_FUNCTION_ID, ln->func);
			pb_uint(&sub, LINE_LINE, (uint64_t)ln->line);
			pb_msg(&m, LOCATION_LINE, &sub);
		}
		pb_msg(out, PROFILE_LOCATION, &m);
	}

	for (size_t i = 0; i < b->nfuncs; i++) {
		const func *f = &b->funcs[i];
		pb_uint(&m, FUNCTION_ID, i + 1);
		pb_uint(&m, FUNCTION_NAME, f->name);
		pb_uint(&m, FUNCTION_SYSTEM_NAME, f->name);
		pb_uint(&m, FUNCTION_FILENAME, f->file);
		pb_msg(out, PROFILE_FUNCTION, &m);
	}

	/* Index 0 is "" (never in strs: intern keeps it implicit). */
	pb_bytes(out, PROFILE_STRING_TABLE, "", 0);
	for (size_t i = 1; i < b->nstrs; i++)
		pb_bytes(out, PROFILE_STRING_TABLE, b->strs[i].s,
			 b->strs[i].len);

	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	pb_uint(out, PROFILE_TIME_NANOS,
		(uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec);
	encode_value_type(out, &m, PROFILE_PERIOD_TYPE, s_type, s_count);
	pb_uint(out, PROFILE_PERIOD, 1);

	bool oom = m.oom || sub.oom || out->oom || b->err;
	free(m.p);
	free(sub.p);
	return oom ? -ENOMEM : 0;
}

/* ---- phase 5: gzip ---------------------------------------------------- */

static int gzip_to(tt__buf *out, const uint8_t *p, size_t n)
{
	z_stream z;
	memset(&z, 0, sizeof z);
	/* windowBits 15 + 16: a gzip header and trailer, as Go writes. The
	 * fastest level, as Go's runtime/pprof uses. */
	if (deflateInit2(&z, Z_BEST_SPEED, Z_DEFLATED, 15 + 16, 8,
			 Z_DEFAULT_STRATEGY) != Z_OK)
		return -ENOMEM;
	unsigned char chunk[16384];
	int rc;
	z.next_in = (unsigned char *)(uintptr_t)p;
	do {
		size_t take = n > UINT_MAX ? UINT_MAX : n;
		z.avail_in = (unsigned)take;
		n -= take;
		int flush = n == 0 ? Z_FINISH : Z_NO_FLUSH;
		do {
			z.next_out = chunk;
			z.avail_out = sizeof chunk;
			rc = deflate(&z, flush);
			if (rc == Z_STREAM_ERROR) {
				deflateEnd(&z);
				return -EIO;
			}
			tt__buf_put(out, chunk, sizeof chunk - z.avail_out);
		} while (z.avail_out == 0);
	} while (n > 0);
	deflateEnd(&z);
	if (rc != Z_STREAM_END)
		return -EIO;
	return out->err ? out->err : 0;
}

/* ---- the whole -------------------------------------------------------- */

static void builder_free(builder *b)
{
	free(b->groups);
	free(b->group_tab.slot);
	free(b->strs);
	free(b->str_tab.slot);
	free(b->funcs);
	free(b->func_tab.slot);
	free(b->pcs);
	free(b->pc_tab.slot);
	free(b->frames);
	free(b->locs);
	free(b->lines);
	free(b->stack_locs);
	for (size_t i = 0; i < b->nmaps; i++)
		free(b->maps[i].file);
	free(b->maps);
	free(b->maps_by_addr);
}

int tt__pprof_write(tt__buf *out, const tt__snapshot *s,
		    bool (*keep)(const tt__gsnap *g), tt__symbolize_fn sym)
{
	return tt__pprof_write_named(out, s, "goroutine", keep, sym);
}

int tt__pprof_write_named(tt__buf *out, const tt__snapshot *s, const char *name,
			  bool (*keep)(const tt__gsnap *g),
			  tt__symbolize_fn sym)
{
	if (out == NULL || s == NULL || name == NULL || *name == '\0' ||
	    sym == NULL)
		return -EINVAL;
	builder b = {.sym = sym};
	pbuf pb = {0};
	int err;

	if ((err = itab_init(&b.group_tab, 64)) ||
	    (err = itab_init(&b.str_tab, 256)) ||
	    (err = itab_init(&b.func_tab, 256)) ||
	    (err = itab_init(&b.pc_tab, 256)))
		goto out;
	/* String 0 is "": a placeholder entry keeps indices equal to table
	 * positions. */
	if ((err = grow((void **)&b.strs, &b.strs_cap, 1, sizeof *b.strs)))
		goto out;
	b.strs[b.nstrs++] = (strent){.s = "", .len = 0};

	uint32_t last = 0;
	for (size_t i = 0; i < s->n; i++) {
		const tt__gsnap *g = &s->g[i];
		if (keep && !keep(g))
			continue;
		if ((err = group_add(&b, g, &last)))
			goto out;
	}
	if ((err = load_mappings(&b)) || (err = resolve(&b)) ||
	    (err = encode(&b, &pb, name)))
		goto out;
	err = gzip_to(out, pb.p, pb.len);
out:
	free(pb.p);
	builder_free(&b);
	return err;
}
