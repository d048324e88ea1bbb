/* tether — the goroutine profile as pprof's profile.proto, gzipped.
 *
 * Design notes
 * ------------
 * A million goroutines usually sit on a few hundred distinct stacks, so
 * the work is arranged to touch each goroutine once and everything else
 * once per distinct thing:
 *
 *   1. group: hash every goroutine's PCs (and name) into a table of
 *      distinct stacks, counting; the table holds an index of the first
 *      goroutine with that stack, never a copy of it.
 *   2. resolve: for each distinct stack, each PC becomes a location (a
 *      table keyed by PC, so each PC is symbolized once), each frame a
 *      function (keyed by the string ids of name and file), each string an
 *      entry of the string table (keyed by its bytes).
 *   3. encode: the Profile message, written top-level field by top-level
 *      field into a scratch buffer that is handed to deflate whenever it
 *      passes 64 KiB, so the uncompressed profile never exists whole.
 *
 * Nested messages (a Sample, a Location, a Mapping) are encoded into a
 * second small buffer first, so their length prefix is known; Line, the
 * only message nested two deep, is small enough to be sized by hand.
 *
 * profile.proto (github.com/google/pprof/proto/profile.proto) is proto3:
 * a field equal to zero is left out, integers are varints (int64 as its
 * two's complement, no zigzag), repeated integers are packed.
 */
#include <elf.h>
#include <errno.h>
#include <limits.h>
#include <link.h>
#include <stdlib.h>
#include <string.h>
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
	PROFILE_DURATION_NANOS = 10,
	PROFILE_PERIOD_TYPE = 11,
	PROFILE_PERIOD = 12,

	VALUETYPE_TYPE = 1,
	VALUETYPE_UNIT = 2,

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

/* Scratch flushed to deflate past this size. */
#define FLUSH_AT (64 * 1024)

/* ---- growable arrays ------------------------------------------------------ */

/* Make room for `need` elements of size `elem` in *p (capacity *cap).
 * Returns false when out of memory, leaving *p as it was. */
static bool reserve(void *p, size_t *cap, size_t need, size_t elem)
{
	void **pp = p;
	if (need <= *cap)
		return true;
	size_t n = *cap ? *cap : 16;
	while (n < need)
		n *= 2;
	if (n > SIZE_MAX / elem)
		return false;
	void *q = realloc(*pp, n * elem);
	if (!q)
		return false;
	*pp = q;
	*cap = n;
	return true;
}

/* ---- hashing and an open-addressed index table ------------------------- */

static inline uint64_t mix(uint64_t h, uint64_t v)
{
	h ^= v;
	h *= 0x9e3779b97f4a7c15ull;
	return h ^ (h >> 29);
}

static uint64_t hash_bytes(const char *s, size_t n)
{
	uint64_t h = 0xcbf29ce484222325ull; /* FNV-1a */
	for (size_t i = 0; i < n; i++) {
		h ^= (unsigned char)s[i];
		h *= 0x100000001b3ull;
	}
	return h;
}

/* Maps a hash to an index into the caller's array of entries; the caller
 * compares the entry itself. idx is the entry's index + 1, 0 when free. */
typedef struct slot {
	uint64_t hash;
	uint32_t idx;
} slot;

typedef struct table {
	slot *s;
	size_t cap, n; /* cap a power of two, n * 2 <= cap */
} table;

/* Ensure one more entry fits; false when out of memory. */
static bool tab_room(table *t)
{
	if ((t->n + 1) * 2 <= t->cap)
		return true;
	size_t cap = t->cap ? t->cap * 2 : 64;
	slot *s = calloc(cap, sizeof *s);
	if (!s)
		return false;
	for (size_t i = 0; i < t->cap; i++) {
		if (!t->s[i].idx)
			continue;
		size_t j = t->s[i].hash & (cap - 1);
		while (s[j].idx)
			j = (j + 1) & (cap - 1);
		s[j] = t->s[i];
	}
	free(t->s);
	t->s = s;
	t->cap = cap;
	return true;
}

/* First slot of hash h's probe sequence; step with tab_next. */
static inline size_t tab_first(const table *t, uint64_t h)
{
	return h & (t->cap - 1);
}

static inline size_t tab_next(const table *t, size_t i)
{
	return (i + 1) & (t->cap - 1);
}

/* ---- the profile being built ----------------------------------------------- */

typedef struct pstr {
	const char *p;
	size_t len;
} pstr;

typedef struct stack {
	size_t g; /* index of its first goroutine in the snapshot */
	int64_t count;
	size_t loc_off; /* its location ids, in b->stack_locs */
	uint64_t name;  /* string id of the goroutine name, 0 for none */
	/* Its labels: nlab (key, value) string id pairs at b->lab_ids +
	 * 2 * lab_off. */
	size_t lab_off;
	uint32_t nlab;
	int64_t v[2];   /* with values (tt__pprof_write_values): their sums */
} stack;

typedef struct line {
	uint64_t func;
	int64_t line;
} line;

typedef struct loc {
	uintptr_t pc;
	uint64_t mapping; /* id, 0 when in no known mapping */
	size_t line_off;
	uint32_t nlines;
} loc;

typedef struct func {
	uint64_t name, file; /* string ids */
} func;

typedef struct mapping {
	uintptr_t start, limit;
	uint64_t offset;
	char *file, *build_id; /* owned */
	uint64_t file_id, build_id_id;
	bool used, unsymbolized;
} mapping;

typedef struct builder {
	const tt__snapshot *snap;
	tt__symbolize_fn sym;

	stack *stacks;
	size_t nstacks, stacks_cap;
	table stack_tab;
	uint64_t *stack_locs;
	size_t nstack_locs, stack_locs_cap;

	loc *locs;
	size_t nlocs, locs_cap;
	table loc_tab;
	line *lines;
	size_t nlines, lines_cap;

	func *funcs;
	size_t nfuncs, funcs_cap;
	table func_tab;

	pstr *strs;
	size_t nstrs, strs_cap;
	table str_tab;

	mapping *maps;
	size_t nmaps, maps_cap;
	uint32_t *by_addr; /* indices of maps by start address */

	uint64_t name_key; /* string id of "name", once a goroutine has one */
	uint64_t *lab_ids; /* the stacks' label string ids, in pairs */
	size_t nlab_ids, lab_ids_cap;

	/* A profile of values per record rather than counts of records
	 * (tt__pprof_write_values), or NULL; vtype/vunit: string ids of its
	 * sample types. */
	const tt__pprof_values *vals;
	uint64_t vtype[2], vunit[2];
} builder;

/* The id of string s (its index in the string table), adding it; -1 when
 * out of memory. s must outlive the builder. */
static int64_t intern_n(builder *b, const char *s, size_t len)
{
	uint64_t h = hash_bytes(s, len);
	if (!tab_room(&b->str_tab))
		return -1;
	size_t i = tab_first(&b->str_tab, h);
	for (; b->str_tab.s[i].idx; i = tab_next(&b->str_tab, i)) {
		const slot *sl = &b->str_tab.s[i];
		const pstr *e = &b->strs[sl->idx - 1];
		if (sl->hash == h && e->len == len && memcmp(e->p, s, len) == 0)
			return sl->idx - 1;
	}
	if (b->nstrs >= UINT32_MAX - 1 ||
	    !reserve(&b->strs, &b->strs_cap, b->nstrs + 1, sizeof *b->strs))
		return -1;
	b->strs[b->nstrs] = (pstr){s, len};
	b->str_tab.s[i] = (slot){h, (uint32_t)++b->nstrs};
	b->str_tab.n++;
	return (int64_t)b->nstrs - 1;
}

static int64_t intern(builder *b, const char *s)
{
	return intern_n(b, s, strlen(s));
}

/* ---- 1. group goroutines by stack -------------------------------------- */

static uint64_t stack_hash(const tt__gsnap *g)
{
	uint64_t h = mix(0, g->npcs);
	for (uint32_t i = 0; i < g->npcs; i++)
		h = mix(h, g->pcs[i]);
	if (g->name)
		h = mix(h, hash_bytes(g->name, strlen(g->name)));
	if (g->labels)
		h = mix(h, g->labels->hash);
	return h;
}

static bool same_stack(const tt__gsnap *a, const tt__gsnap *b)
{
	if (a->npcs != b->npcs ||
	    (a->npcs && memcmp(a->pcs, b->pcs, a->npcs * sizeof *a->pcs)))
		return false;
	if (!tt__labels_equal(a->labels, b->labels))
		return false;
	if (!a->name || !b->name)
		return a->name == b->name;
	return strcmp(a->name, b->name) == 0;
}

static void add_values(builder *b, stack *st, size_t gi)
{
	if (b->vals)
		for (int k = 0; k < 2; k++)
			st->v[k] += b->vals->v[2 * gi + k];
}

static int group(builder *b, bool leaked_only)
{
	const tt__snapshot *s = b->snap;
	tt__slice sl;
	tt__slice_start(&sl);
	for (size_t gi = 0; gi < s->n; gi++) {
		const tt__gsnap *g = &s->g[gi];
		tt__slice_tick(&sl);
		if (leaked_only && !g->leaked)
			continue;
		if (g->npcs && !g->pcs)
			return -EINVAL;
		uint64_t h = stack_hash(g);
		if (!tab_room(&b->stack_tab))
			return -ENOMEM;
		size_t i = tab_first(&b->stack_tab, h);
		for (; b->stack_tab.s[i].idx; i = tab_next(&b->stack_tab, i)) {
			const slot *sl = &b->stack_tab.s[i];
			stack *st = &b->stacks[sl->idx - 1];
			if (sl->hash == h && same_stack(&s->g[st->g], g)) {
				st->count++;
				add_values(b, st, gi);
				goto next;
			}
		}
		if (b->nstacks >= UINT32_MAX - 1 ||
		    !reserve(&b->stacks, &b->stacks_cap, b->nstacks + 1,
			     sizeof *b->stacks))
			return -ENOMEM;
		b->stacks[b->nstacks] = (stack){.g = gi, .count = 1};
		add_values(b, &b->stacks[b->nstacks], gi);
		b->stack_tab.s[i] = (slot){h, (uint32_t)++b->nstacks};
		b->stack_tab.n++;
next:;
	}
	return 0;
}

/* Most goroutines first, as Go sorts its count profiles; equal counts in
 * the order of their first goroutine's id. */
static int by_count(const void *x, const void *y)
{
	const stack *a = x, *b = y;
	if (a->count != b->count)
		return a->count > b->count ? -1 : 1;
	return (a->g > b->g) - (a->g < b->g);
}

/* Largest last value (the delay) first, as Go sorts its block and mutex
 * profiles. */
static int by_value(const void *x, const void *y)
{
	const stack *a = x, *b = y;
	if (a->v[1] != b->v[1])
		return a->v[1] > b->v[1] ? -1 : 1;
	return (a->g > b->g) - (a->g < b->g);
}

/* ---- mappings: the executable segments of every loaded object ---------- */

/* The NT_GNU_BUILD_ID note of the object, as lowercase hex, or NULL. */
static char *build_id(const struct dl_phdr_info *info)
{
	static const char hex[] = "0123456789abcdef";
	for (int i = 0; i < info->dlpi_phnum; i++) {
		const ElfW(Phdr) *ph = &info->dlpi_phdr[i];
		if (ph->p_type != PT_NOTE)
			continue;
		const char *p = (const char *)(info->dlpi_addr + ph->p_vaddr);
		const char *end = p + ph->p_memsz;
		size_t align = ph->p_align > 4 ? 8 : 4;
		while ((size_t)(end - p) >= sizeof(ElfW(Nhdr))) {
			const ElfW(Nhdr) *n = (const ElfW(Nhdr) *)p;
			size_t namesz = (n->n_namesz + align - 1) &
					~(align - 1);
			size_t descsz = (n->n_descsz + align - 1) &
					~(align - 1);
			const char *name = p + sizeof *n;
			const unsigned char *desc =
				(const unsigned char *)name + namesz;
			if ((size_t)(end - name) < namesz ||
			    (size_t)(end - (const char *)desc) < n->n_descsz)
				break;
			if (n->n_type == NT_GNU_BUILD_ID && n->n_namesz == 4 &&
			    memcmp(name, "GNU", 4) == 0 && n->n_descsz > 0) {
				char *id = malloc(2 * (size_t)n->n_descsz + 1);
				if (!id)
					return NULL;
				for (size_t k = 0; k < n->n_descsz; k++) {
					id[2 * k] = hex[desc[k] >> 4];
					id[2 * k + 1] = hex[desc[k] & 15];
				}
				id[2 * n->n_descsz] = '\0';
				return id;
			}
			if ((size_t)(end - (const char *)desc) < descsz)
				break;
			p = (const char *)desc + descsz;
		}
	}
	return NULL;
}

typedef struct map_walk {
	builder *b;
	uintptr_t page;
	size_t objects; /* seen so far */
	bool oom;
} map_walk;

static int add_object(struct dl_phdr_info *info, size_t size, void *arg)
{
	map_walk *w = arg;
	builder *b = w->b;
	(void)size;
	const char *name = info->dlpi_name ? info->dlpi_name : "";
	char exe[PATH_MAX];
	if (w->objects++ == 0 && !*name) {
		/* The program itself comes first, without a name. */
		ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
		if (n <= 0)
			n = 0;
		exe[n] = '\0';
		name = exe;
	}
	char *bid = NULL;
	bool first = true;
	for (int i = 0; i < info->dlpi_phnum; i++) {
		const ElfW(Phdr) *ph = &info->dlpi_phdr[i];
		if (ph->p_type != PT_LOAD || !(ph->p_flags & PF_X) ||
		    !ph->p_memsz)
			continue;
		if (first) {
			bid = build_id(info);
			first = false;
		}
		if (!reserve(&b->maps, &b->maps_cap, b->nmaps + 1,
			     sizeof *b->maps))
			goto oom;
		/* As /proc/self/maps shows it: whole pages, the offset
		 * moved back with the start. */
		uintptr_t start = info->dlpi_addr + ph->p_vaddr;
		uintptr_t skew = start & (w->page - 1);
		uintptr_t end = start + ph->p_memsz;
		mapping *m = &b->maps[b->nmaps];
		*m = (mapping){
			.start = start - skew,
			.limit = (end + w->page - 1) & ~(w->page - 1),
			.offset = ph->p_offset - skew,
			.file = strdup(name),
			.build_id = bid ? strdup(bid) : NULL,
		};
		b->nmaps++;
		if (!m->file || (bid && !m->build_id))
			goto oom;
	}
	free(bid);
	return 0;
oom:
	free(bid);
	w->oom = true;
	return 1;
}

static int read_mappings(builder *b)
{
	long page = sysconf(_SC_PAGESIZE);
	map_walk w = {.b = b, .page = page > 0 ? (uintptr_t)page : 4096};
	dl_iterate_phdr(add_object, &w);
	if (w.oom)
		return -ENOMEM;
	/* The mappings stay in the loader's order, the program first (pprof
	 * takes the first mapping for the main binary); lookups go through
	 * an index sorted by address. */
	if (b->nmaps) {
		b->by_addr = malloc(b->nmaps * sizeof *b->by_addr);
		if (!b->by_addr)
			return -ENOMEM;
		/* Insertion sort: a few dozen entries, nearly in order. */
		for (size_t k = 0; k < b->nmaps; k++) {
			size_t j = k;
			for (; j > 0 && b->maps[b->by_addr[j - 1]].start >
						b->maps[k].start;
			     j--)
				b->by_addr[j] = b->by_addr[j - 1];
			b->by_addr[j] = (uint32_t)k;
		}
	}
	return 0;
}

/* The mapping holding addr, or NULL. */
static mapping *find_mapping(builder *b, uintptr_t addr)
{
	size_t lo = 0, hi = b->nmaps;
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		if (b->maps[b->by_addr[mid]].limit <= addr)
			lo = mid + 1;
		else
			hi = mid;
	}
	if (lo < b->nmaps && b->maps[b->by_addr[lo]].start <= addr)
		return &b->maps[b->by_addr[lo]];
	return NULL;
}

/* ---- 2. locations and functions ------------------------------------------ */

static int64_t func_id(builder *b, const tt__frame *f)
{
	int64_t name = intern(b, f->func ? f->func : "?");
	int64_t file = intern(b, f->file ? f->file : "");
	if (name < 0 || file < 0)
		return -1;
	uint64_t h = mix(mix(0, (uint64_t)name), (uint64_t)file);
	if (!tab_room(&b->func_tab))
		return -1;
	size_t i = tab_first(&b->func_tab, h);
	for (; b->func_tab.s[i].idx; i = tab_next(&b->func_tab, i)) {
		const slot *sl = &b->func_tab.s[i];
		const func *fn = &b->funcs[sl->idx - 1];
		if (fn->name == (uint64_t)name && fn->file == (uint64_t)file)
			return sl->idx; /* ids start at 1 */
	}
	if (b->nfuncs >= UINT32_MAX - 1 ||
	    !reserve(&b->funcs, &b->funcs_cap, b->nfuncs + 1, sizeof *b->funcs))
		return -1;
	b->funcs[b->nfuncs] = (func){(uint64_t)name, (uint64_t)file};
	b->func_tab.s[i] = (slot){h, (uint32_t)++b->nfuncs};
	b->func_tab.n++;
	return (int64_t)b->nfuncs;
}

/* The location id of pc (1-based), symbolizing it the first time; -1 when
 * out of memory. */
static int64_t loc_id(builder *b, uintptr_t pc)
{
	uint64_t h = mix(0, pc);
	if (!tab_room(&b->loc_tab))
		return -1;
	size_t i = tab_first(&b->loc_tab, h);
	for (; b->loc_tab.s[i].idx; i = tab_next(&b->loc_tab, i)) {
		const slot *sl = &b->loc_tab.s[i];
		if (b->locs[sl->idx - 1].pc == pc)
			return sl->idx;
	}
	if (b->nlocs >= UINT32_MAX - 1 ||
	    !reserve(&b->locs, &b->locs_cap, b->nlocs + 1, sizeof *b->locs))
		return -1;
	/* Claim the slot now: func_id below does not touch this table. */
	b->loc_tab.s[i] = (slot){h, (uint32_t)(b->nlocs + 1)};
	b->loc_tab.n++;
	loc *l = &b->locs[b->nlocs++];
	*l = (loc){.pc = pc, .line_off = b->nlines};

	tt__frame fr[TT__TRACE_MAX];
	int n = b->sym(pc, true, fr, TT__TRACE_MAX);
	if (n < 0)
		n = 0;
	if (n > TT__TRACE_MAX)
		n = TT__TRACE_MAX;
	/* An unknown PC gets no lines at all, which is how profile.proto
	 * says "not symbolized": pprof then shows its address (or
	 * symbolizes it from the binary) instead of lumping every unknown
	 * PC into one function "?". */
	if (n == 1 && (!fr[0].func || strcmp(fr[0].func, "?") == 0))
		n = 0;
	bool failed = n == 0;
	if (!reserve(&b->lines, &b->lines_cap, b->nlines + (size_t)n,
		     sizeof *b->lines))
		return -1;
	for (int k = 0; k < n; k++) {
		int64_t f = func_id(b, &fr[k]);
		if (f < 0)
			return -1;
		b->lines[b->nlines++] = (line){(uint64_t)f, fr[k].line};
		if (!fr[k].func || strcmp(fr[k].func, "?") == 0 ||
		    !fr[k].file || fr[k].line <= 0)
			failed = true;
	}
	l->nlines = (uint32_t)n;

	mapping *m = pc ? find_mapping(b, pc - 1) : NULL;
	if (m) {
		l->mapping = (uint64_t)(m - b->maps) + 1;
		m->used = true;
		m->unsymbolized |= failed;
	}
	return (int64_t)b->nlocs;
}

static int resolve(builder *b)
{
	const tt__snapshot *s = b->snap;
	tt__slice sl;
	tt__slice_start(&sl);
	for (size_t k = 0; k < b->nstacks; k++) {
		stack *st = &b->stacks[k];
		const tt__gsnap *g = &s->g[st->g];
		tt__slice_tick(&sl);
		st->loc_off = b->nstack_locs;
		if (!reserve(&b->stack_locs, &b->stack_locs_cap,
			     b->nstack_locs + g->npcs, sizeof *b->stack_locs))
			return -ENOMEM;
		for (uint32_t i = 0; i < g->npcs; i++) {
			int64_t id = loc_id(b, g->pcs[i]);
			if (id < 0)
				return -ENOMEM;
			b->stack_locs[b->nstack_locs++] = (uint64_t)id;
		}
		if (g->name) {
			int64_t key = b->name_key ? (int64_t)b->name_key
						  : intern(b, "name");
			int64_t id = intern(b, g->name);
			if (key < 0 || id < 0)
				return -ENOMEM;
			b->name_key = (uint64_t)key;
			st->name = (uint64_t)id;
		}
		/* Labels, Go's Sample.label; a name hides a label "name". */
		const tt__labels *l = g->labels;
		st->lab_off = b->nlab_ids / 2;
		st->nlab = 0;
		for (uint32_t i = 0; l && i < l->n; i++) {
			if (g->name && strcmp(l->kv[i].key, "name") == 0)
				continue;
			if (!reserve(&b->lab_ids, &b->lab_ids_cap,
				     b->nlab_ids + 2, sizeof *b->lab_ids))
				return -ENOMEM;
			int64_t key = intern(b, l->kv[i].key);
			int64_t val = intern(b, l->kv[i].value);
			if (key < 0 || val < 0)
				return -ENOMEM;
			b->lab_ids[b->nlab_ids++] = (uint64_t)key;
			b->lab_ids[b->nlab_ids++] = (uint64_t)val;
			st->nlab++;
		}
	}
	for (size_t k = 0; k < b->nmaps; k++) {
		mapping *m = &b->maps[k];
		int64_t f = intern(b, m->file);
		int64_t id = m->build_id ? intern(b, m->build_id) : 0;
		if (f < 0 || id < 0)
			return -ENOMEM;
		m->file_id = (uint64_t)f;
		m->build_id_id = (uint64_t)id;
	}
	return 0;
}

/* ---- protobuf encoding ------------------------------------------------------ */

typedef struct bytes {
	uint8_t *p;
	size_t len, cap;
	bool oom;
} bytes;

static bool room(bytes *o, size_t n)
{
	if (o->oom)
		return false;
	if (!reserve(&o->p, &o->cap, o->len + n, 1)) {
		o->oom = true;
		return false;
	}
	return true;
}

static size_t varint_len(uint64_t v)
{
	size_t n = 1;
	while (v >= 0x80) {
		v >>= 7;
		n++;
	}
	return n;
}

static void put_varint(bytes *o, uint64_t v)
{
	if (!room(o, 10))
		return;
	while (v >= 0x80) {
		o->p[o->len++] = (uint8_t)(v | 0x80);
		v >>= 7;
	}
	o->p[o->len++] = (uint8_t)v;
}

static void put_key(bytes *o, unsigned field, unsigned wire)
{
	put_varint(o, (uint64_t)field << 3 | wire);
}

/* A uint64 or int64 field (int64 goes as its two's complement); zero, the
 * proto3 default, is left out. */
static void put_uint(bytes *o, unsigned field, uint64_t v)
{
	if (!v)
		return;
	put_key(o, field, WIRE_VARINT);
	put_varint(o, v);
}

static void put_raw(bytes *o, unsigned field, const void *p, size_t n)
{
	put_key(o, field, WIRE_LEN);
	put_varint(o, n);
	if (!room(o, n))
		return;
	if (n)
		memcpy(o->p + o->len, p, n);
	o->len += n;
}

static void put_msg(bytes *o, unsigned field, const bytes *sub)
{
	if (sub->oom) {
		o->oom = true;
		return;
	}
	put_raw(o, field, sub->p, sub->len);
}

static void put_packed(bytes *o, unsigned field, const uint64_t *v, size_t n)
{
	if (!n)
		return;
	size_t len = 0;
	for (size_t i = 0; i < n; i++)
		len += varint_len(v[i]);
	put_key(o, field, WIRE_LEN);
	put_varint(o, len);
	for (size_t i = 0; i < n; i++)
		put_varint(o, v[i]);
}

/* ---- gzip into the tt__buf --------------------------------------------------- */

typedef struct gz {
	z_stream z;
	tt__buf *out;
	bool open;
} gz;

/* Compress p[n] onto the end of g->out; flush is Z_NO_FLUSH or Z_FINISH.
 * Writes into out's fields directly: this layer must not depend on
 * tt__buf's functions. */
static int gz_put(gz *g, const uint8_t *p, size_t n, int flush)
{
	tt__buf *out = g->out;
	g->z.next_in = (Bytef *)(uintptr_t)p;
	g->z.avail_in = (uInt)n;
	for (;;) {
		if (out->cap - out->len < 4096) {
			size_t cap = out->cap ? out->cap : 4096;
			while (cap - out->len < 4096)
				cap *= 2;
			char *d = realloc(out->data, cap);
			if (!d)
				return -ENOMEM;
			out->data = d;
			out->cap = cap;
		}
		size_t avail = out->cap - out->len;
		if (avail > UINT_MAX)
			avail = UINT_MAX;
		g->z.next_out = (Bytef *)out->data + out->len;
		g->z.avail_out = (uInt)avail;
		int r = deflate(&g->z, flush);
		out->len += avail - g->z.avail_out;
		if (r == Z_STREAM_END)
			return 0;
		if (r != Z_OK && r != Z_BUF_ERROR)
			return -EIO;
		if (flush != Z_FINISH && g->z.avail_in == 0 &&
		    g->z.avail_out != 0)
			return 0;
	}
}

/* Hand pb to deflate when it is big enough (or at the end). */
static int drain(gz *g, bytes *pb, bool finish)
{
	if (pb->oom)
		return -ENOMEM;
	if (!finish && pb->len < FLUSH_AT)
		return 0;
	int r = gz_put(g, pb->p, pb->len, finish ? Z_FINISH : Z_NO_FLUSH);
	pb->len = 0;
	return r;
}

/* Wall-clock time of the snapshot, in ns since the epoch. */
static int64_t snapshot_time(const tt__snapshot *s)
{
	struct timespec rt, mono;
	clock_gettime(CLOCK_REALTIME, &rt);
	clock_gettime(CLOCK_MONOTONIC, &mono);
	int64_t now = (int64_t)rt.tv_sec * 1000000000 + rt.tv_nsec;
	int64_t mnow = (int64_t)mono.tv_sec * 1000000000 + mono.tv_nsec;
	/* taken_at is tt_now(): CLOCK_MONOTONIC (+1, so never 0). */
	if (s->taken_at > 0 && s->taken_at <= mnow + 1)
		now -= mnow + 1 - s->taken_at;
	return now;
}

static void put_value_type(bytes *o, bytes *sub, unsigned field, uint64_t type,
			   uint64_t unit)
{
	sub->len = 0;
	put_uint(sub, VALUETYPE_TYPE, type);
	put_uint(sub, VALUETYPE_UNIT, unit);
	put_msg(o, field, sub);
}

static int encode(builder *b, gz *g, uint64_t type, uint64_t unit)
{
	/* lab: one Label message at a time (grown once, reused). */
	bytes pb = {0}, sub = {0}, lab = {0};
	int r = 0;

	int nv = b->vals ? 2 : 1;
	if (b->vals)
		for (int k = 0; k < nv; k++)
			put_value_type(&pb, &sub, PROFILE_SAMPLE_TYPE,
				       b->vtype[k], b->vunit[k]);
	else
		put_value_type(&pb, &sub, PROFILE_SAMPLE_TYPE, type, unit);

	for (size_t k = 0; k < b->nstacks; k++) {
		const stack *st = &b->stacks[k];
		const tt__gsnap *gs = &b->snap->g[st->g];
		uint64_t v[2] = {(uint64_t)st->count};
		if (b->vals)
			for (int i = 0; i < nv; i++)
				v[i] = (uint64_t)st->v[i];
		sub.len = 0;
		if (gs->npcs) /* a stackless record has no locations */
			put_packed(&sub, SAMPLE_LOCATION_ID,
				   b->stack_locs + st->loc_off, gs->npcs);
		put_packed(&sub, SAMPLE_VALUE, v, (size_t)nv);
		if (st->name) {
			lab.len = 0;
			put_uint(&lab, LABEL_KEY, b->name_key);
			put_uint(&lab, LABEL_STR, st->name);
			put_msg(&sub, SAMPLE_LABEL, &lab);
		}
		for (uint32_t i = 0; i < st->nlab; i++) {
			const uint64_t *kv = b->lab_ids + 2 * (st->lab_off + i);
			lab.len = 0;
			put_uint(&lab, LABEL_KEY, kv[0]);
			put_uint(&lab, LABEL_STR, kv[1]);
			put_msg(&sub, SAMPLE_LABEL, &lab);
		}
		put_msg(&pb, PROFILE_SAMPLE, &sub);
		if ((r = drain(g, &pb, false)))
			goto out;
	}

	for (size_t k = 0; k < b->nmaps; k++) {
		const mapping *m = &b->maps[k];
		bool full = m->used && !m->unsymbolized;
		sub.len = 0;
		put_uint(&sub, MAPPING_ID, k + 1);
		put_uint(&sub, MAPPING_MEMORY_START, m->start);
		put_uint(&sub, MAPPING_MEMORY_LIMIT, m->limit);
		put_uint(&sub, MAPPING_FILE_OFFSET, m->offset);
		put_uint(&sub, MAPPING_FILENAME, m->file_id);
		put_uint(&sub, MAPPING_BUILD_ID, m->build_id_id);
		put_uint(&sub, MAPPING_HAS_FUNCTIONS, full);
		put_uint(&sub, MAPPING_HAS_FILENAMES, full);
		put_uint(&sub, MAPPING_HAS_LINE_NUMBERS, full);
		put_uint(&sub, MAPPING_HAS_INLINE_FRAMES, full);
		put_msg(&pb, PROFILE_MAPPING, &sub);
		if ((r = drain(g, &pb, false)))
			goto out;
	}

	for (size_t k = 0; k < b->nlocs; k++) {
		const loc *l = &b->locs[k];
		sub.len = 0;
		put_uint(&sub, LOCATION_ID, k + 1);
		put_uint(&sub, LOCATION_MAPPING_ID, l->mapping);
		/* The call instruction, not the return address. */
		put_uint(&sub, LOCATION_ADDRESS, l->pc ? l->pc - 1 : 0);
		for (uint32_t i = 0; i < l->nlines; i++) {
			const line *ln = &b->lines[l->line_off + i];
			uint8_t buf[48];
			bytes e = {.p = buf, .cap = sizeof buf};
			put_uint(&e, LINE_FUNCTION_ID, ln->func);
			put_uint(&e, LINE_LINE, (uint64_t)ln->line);
			put_raw(&sub, LOCATION_LINE, e.p, e.len);
		}
		put_msg(&pb, PROFILE_LOCATION, &sub);
		if ((r = drain(g, &pb, false)))
			goto out;
	}

	for (size_t k = 0; k < b->nfuncs; k++) {
		const func *f = &b->funcs[k];
		sub.len = 0;
		put_uint(&sub, FUNCTION_ID, k + 1);
		put_uint(&sub, FUNCTION_NAME, f->name);
		put_uint(&sub, FUNCTION_SYSTEM_NAME, f->name);
		put_uint(&sub, FUNCTION_FILENAME, f->file);
		put_msg(&pb, PROFILE_FUNCTION, &sub);
		if ((r = drain(g, &pb, false)))
			goto out;
	}

	for (size_t k = 0; k < b->nstrs; k++) {
		put_raw(&pb, PROFILE_STRING_TABLE, b->strs[k].p,
			b->strs[k].len);
		if ((r = drain(g, &pb, false)))
			goto out;
	}

	put_uint(&pb, PROFILE_TIME_NANOS, (uint64_t)snapshot_time(b->snap));
	if (b->vals && b->vals->duration > 0)
		put_uint(&pb, PROFILE_DURATION_NANOS,
			 (uint64_t)b->vals->duration);
	put_value_type(&pb, &sub, PROFILE_PERIOD_TYPE, type, unit);
	put_uint(&pb, PROFILE_PERIOD,
		 b->vals ? (uint64_t)b->vals->period : 1);
	r = drain(g, &pb, true);
out:
	free(pb.p);
	free(sub.p);
	free(lab.p);
	return r;
}

/* ---- the whole ------------------------------------------------------------- */

static void builder_free(builder *b)
{
	free(b->stacks);
	free(b->lab_ids);
	free(b->stack_tab.s);
	free(b->stack_locs);
	free(b->locs);
	free(b->loc_tab.s);
	free(b->lines);
	free(b->funcs);
	free(b->func_tab.s);
	free(b->strs);
	free(b->str_tab.s);
	for (size_t k = 0; k < b->nmaps; k++) {
		free(b->maps[k].file);
		free(b->maps[k].build_id);
	}
	free(b->maps);
	free(b->by_addr);
}

int tt__pprof_write(tt__buf *out, const tt__snapshot *s, bool leaked_only,
		    tt__symbolize_fn sym)
{
	return tt__pprof_write_type(out, s, leaked_only,
				    leaked_only ? "goroutineleak" : "goroutine",
				    sym);
}

static int write_profile(tt__buf *out, const tt__snapshot *s,
			 bool leaked_only, const char *type_name,
			 const tt__pprof_values *vals, tt__symbolize_fn sym);

int tt__pprof_write_type(tt__buf *out, const tt__snapshot *s,
			 bool leaked_only, const char *type_name,
			 tt__symbolize_fn sym)
{
	return write_profile(out, s, leaked_only, type_name, NULL, sym);
}

int tt__pprof_write_values(tt__buf *out, const tt__snapshot *s,
			   const tt__pprof_values *vals, tt__symbolize_fn sym)
{
	if (!vals || (s && s->n && !vals->v) || !vals->type[0] ||
	    !vals->type[1] || !vals->unit[0] || !vals->unit[1] ||
	    !vals->period_unit)
		return -EINVAL;
	return write_profile(out, s, false, vals->period_type, vals, sym);
}

static int write_profile(tt__buf *out, const tt__snapshot *s,
			 bool leaked_only, const char *type_name,
			 const tt__pprof_values *vals, tt__symbolize_fn sym)
{
	if (!out || !s || !sym || !type_name || (s->n && !s->g))
		return -EINVAL;
	if (out->err)
		return out->err;
	builder b = {.snap = s, .sym = sym, .vals = vals};
	gz g = {.out = out};
	size_t len0 = out->len;
	int r;

	/* The string table starts with "", then the sample type's names. */
	int64_t empty = intern_n(&b, "", 0);
	int64_t type = intern(&b, type_name);
	int64_t unit = intern(&b, vals ? vals->period_unit : "count");
	if (empty < 0 || type < 0 || unit < 0) {
		r = -ENOMEM;
		goto out;
	}
	for (int k = 0; vals && k < 2; k++) {
		int64_t t = intern(&b, vals->type[k]);
		int64_t u = intern(&b, vals->unit[k]);
		if (t < 0 || u < 0) {
			r = -ENOMEM;
			goto out;
		}
		b.vtype[k] = (uint64_t)t;
		b.vunit[k] = (uint64_t)u;
	}
	if ((r = group(&b, leaked_only)) || (r = read_mappings(&b)) ||
	    (r = resolve(&b)))
		goto out;
	if (b.nstacks)
		qsort(b.stacks, b.nstacks, sizeof *b.stacks,
		      vals ? by_value : by_count);

	/* Level 1, as Go's writer uses: the profile is mostly repeated
	 * small varints, and speed matters more than the last few bytes. */
	if (deflateInit2(&g.z, Z_BEST_SPEED, Z_DEFLATED, 15 + 16, 8,
			 Z_DEFAULT_STRATEGY) != Z_OK) {
		r = -ENOMEM;
		goto out;
	}
	g.open = true;
	r = encode(&b, &g, (uint64_t)type, (uint64_t)unit);
out:
	if (g.open)
		deflateEnd(&g.z);
	builder_free(&b);
	if (r) {
		out->len = len0;
		if (r == -ENOMEM)
			out->err = -ENOMEM;
	}
	return r;
}
