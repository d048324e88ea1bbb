/* The debug=0 goroutine profile: pprof's profile.proto, gzipped.
 *
 * Snapshots are made up here (known PCs, a symbolizer that answers from a
 * table, one PC with an inlined frame), so the encoder is checked on its
 * own: its output is gunzipped and decoded by the small protobuf reader
 * below, which shares no code with the encoder, then handed to
 * `go tool pprof -raw/-top/-traces` when Go is installed. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>
#include <zlib.h>

#include "testutil.h"

#include "profile/pprof.h"

/* ---- the made-up program ------------------------------------------------- */

/* PCs inside this program's text, so they fall in its mapping: return
 * addresses one byte into functions of the library. */
enum {
	PC_PARK,
	PC_RECV,
	PC_WORKER,
	PC_INLINE,
	PC_MAIN,
	PC_SLEEP,
	PC_LEAK,
	NPC
};
static uintptr_t pcs[NPC];

static void init_pcs(void)
{
	pcs[PC_PARK] = (uintptr_t)&tt_now + 1;
	pcs[PC_RECV] = (uintptr_t)&tt_deadline_in + 1;
	pcs[PC_WORKER] = (uintptr_t)&tt__utoa + 1;
	pcs[PC_INLINE] = (uintptr_t)&tt__err + 1;
	pcs[PC_MAIN] = (uintptr_t)&tt_strerror + 1;
	pcs[PC_SLEEP] = (uintptr_t)&tt_last_error + 1;
	pcs[PC_LEAK] = (uintptr_t)&tt__pprof_write + 1;
}

typedef struct sym_entry {
	const char *func, *file;
	int line;
} sym_entry;

static const sym_entry symtab[NPC] = {
	[PC_PARK] = {"tt__park", "/src/tether/sched.c", 311},
	[PC_RECV] = {"tt_chan_recv", "/src/tether/chan.c", 142},
	[PC_WORKER] = {"app_worker", "/src/app/worker.c", 57},
	[PC_INLINE] = {"app_outer", "/src/app/outer.c", 40},
	[PC_MAIN] = {"main", "/src/app/main.c", 12},
	[PC_SLEEP] = {"app_sleeper", "/src/app/sleep.c", 23},
	[PC_LEAK] = {"app_leaky", "/src/app/leak.c", 88},
};

static int sym_calls[NPC];
static int sym_bad_calls;

/* Answers from symtab; PC_INLINE is app_inner (inlined) in app_outer. */
static int test_symbolize(uintptr_t pc, bool return_addr, tt__frame *out,
			  int max)
{
	if (!return_addr || max < 2)
		sym_bad_calls++;
	for (int i = 0; i < NPC; i++) {
		if (pcs[i] != pc)
			continue;
		sym_calls[i]++;
		int n = 0;
		if (i == PC_INLINE)
			out[n++] = (tt__frame){.func = "app_inner",
					       .file = "/src/app/inner.h",
					       .line = 7,
					       .pc = pc,
					       .inlined = true};
		out[n++] = (tt__frame){.func = symtab[i].func,
				       .file = symtab[i].file,
				       .line = symtab[i].line,
				       .pc = pc};
		return n;
	}
	sym_bad_calls++;
	out[0] = (tt__frame){.func = "?", .pc = pc};
	return 1;
}

/* A snapshot built from stack specs: count goroutines on each stack. */
typedef struct spec {
	int count;
	int pcs[4];
	int npcs;
	const char *name;
	bool leaked;
} spec;

static const spec specs[] = {
	{1, {PC_PARK, PC_INLINE, PC_MAIN}, 3, NULL, false},
	{3, {PC_PARK, PC_RECV, PC_WORKER}, 3, NULL, false},
	{2, {PC_PARK, PC_SLEEP}, 2, "poller", false},
	{1, {PC_PARK, PC_LEAK}, 2, NULL, true},
};
#define NSPECS (sizeof specs / sizeof specs[0])

static void make_snapshot(tt__snapshot *s)
{
	size_t n = 0, np = 0;
	for (size_t i = 0; i < NSPECS; i++) {
		n += (size_t)specs[i].count;
		np += (size_t)specs[i].count * (size_t)specs[i].npcs;
	}
	memset(s, 0, sizeof *s);
	s->g = calloc(n, sizeof *s->g);
	s->pool = calloc(np, sizeof *s->pool);
	assert_non_null(s->g);
	assert_non_null(s->pool);
	s->pool_len = s->pool_cap = np;
	s->taken_at = tt_now();
	size_t gi = 0, pi = 0;
	/* Interleave the stacks so equal ones are not neighbours. */
	for (int round = 0; gi < n; round++) {
		for (size_t i = 0; i < NSPECS; i++) {
			if (round >= specs[i].count)
				continue;
			tt__gsnap *g = &s->g[gi];
			g->id = (int64_t)gi + 1;
			g->state = TT_G_WAITING;
			g->name = specs[i].name;
			g->leaked = specs[i].leaked;
			g->pcs = &s->pool[pi];
			g->npcs = (uint32_t)specs[i].npcs;
			for (int k = 0; k < specs[i].npcs; k++)
				s->pool[pi++] = pcs[specs[i].pcs[k]];
			gi++;
		}
	}
	s->n = n;
}

static void free_snapshot(tt__snapshot *s)
{
	free(s->g);
	free(s->pool);
}

/* ---- gunzip and a protobuf reader --------------------------------------- */

static void gunzip(const void *p, size_t n, uint8_t **out, size_t *outlen)
{
	z_stream z = {0};
	assert_int_equal(inflateInit2(&z, 15 + 32), Z_OK);
	size_t cap = 1 << 16, len = 0;
	uint8_t *buf = malloc(cap);
	assert_non_null(buf);
	z.next_in = (Bytef *)(uintptr_t)p;
	z.avail_in = (uInt)n;
	int r;
	do {
		if (cap - len < 4096) {
			cap *= 2;
			buf = realloc(buf, cap);
			assert_non_null(buf);
		}
		z.next_out = buf + len;
		z.avail_out = (uInt)(cap - len);
		r = inflate(&z, Z_NO_FLUSH);
		len = cap - z.avail_out;
		TU_ASSERT_MSG(r == Z_OK || r == Z_STREAM_END,
			      "inflate: %d (%s)", r, z.msg ? z.msg : "");
	} while (r != Z_STREAM_END);
	TU_ASSERT_EQ(z.avail_in, 0); /* one gzip member, nothing after */
	inflateEnd(&z);
	*out = buf;
	*outlen = len;
}

typedef struct rd {
	const uint8_t *p, *end;
} rd;

static uint64_t rd_varint(rd *r)
{
	uint64_t v = 0;
	for (int shift = 0; shift < 64; shift += 7) {
		TU_ASSERT_MSG(r->p < r->end, "varint runs off the end");
		uint8_t b = *r->p++;
		v |= (uint64_t)(b & 0x7f) << shift;
		if (!(b & 0x80))
			return v;
	}
	fail_msg("varint longer than 10 bytes");
	return 0;
}

/* Next field of r: its number and wire type, and for a length-delimited
 * one its bytes in *sub, for a varint its value in *v. */
static bool rd_field(rd *r, unsigned *field, uint64_t *v, rd *sub)
{
	if (r->p >= r->end)
		return false;
	uint64_t key = rd_varint(r);
	*field = (unsigned)(key >> 3);
	switch (key & 7) {
	case 0:
		*v = rd_varint(r);
		sub->p = sub->end = NULL;
		break;
	case 2: {
		uint64_t n = rd_varint(r);
		TU_ASSERT_MSG(n <= (uint64_t)(r->end - r->p),
			      "field %u: length %llu past the end", *field,
			      (unsigned long long)n);
		sub->p = r->p;
		sub->end = r->p + n;
		r->p += n;
		*v = 0;
		break;
	}
	default:
		fail_msg("field %u: unexpected wire type %u", *field,
			 (unsigned)(key & 7));
	}
	return true;
}

/* A repeated integer field, packed (as pprof writes) or not. */
static void rd_ints(const rd *sub, uint64_t v, uint64_t **arr, size_t *n)
{
	if (!sub->p) {
		*arr = realloc(*arr, (*n + 1) * sizeof **arr);
		(*arr)[(*n)++] = v;
		return;
	}
	rd r = *sub;
	while (r.p < r.end) {
		*arr = realloc(*arr, (*n + 1) * sizeof **arr);
		(*arr)[(*n)++] = rd_varint(&r);
	}
}

typedef struct d_sample {
	uint64_t *locs, *vals;
	size_t nlocs, nvals;
	uint64_t label_key, label_str;
	int nlabels;
} d_sample;

typedef struct d_line {
	uint64_t func;
	int64_t line;
} d_line;

typedef struct d_loc {
	uint64_t id, mapping, addr;
	d_line lines[8];
	int nlines;
} d_loc;

typedef struct d_func {
	uint64_t id, name, sysname, file;
} d_func;

typedef struct d_map {
	uint64_t id, start, limit, offset, file, build_id;
	bool has_functions, has_filenames, has_lines, has_inline;
} d_map;

typedef struct d_prof {
	uint64_t type, unit, ptype, punit;
	int nsample_types;
	int64_t period, time_nanos;
	d_sample *samples;
	size_t nsamples;
	d_loc *locs;
	size_t nlocs;
	d_func *funcs;
	size_t nfuncs;
	d_map *maps;
	size_t nmaps;
	char **strs;
	size_t nstrs;
} d_prof;

#define PUSH(arr, n) \
	(arr = realloc(arr, ((n) + 1) * sizeof *(arr)), &(arr)[(n)++])

static void value_type(rd r, uint64_t *type, uint64_t *unit)
{
	unsigned f;
	uint64_t v;
	rd sub;
	while (rd_field(&r, &f, &v, &sub)) {
		if (f == 1)
			*type = v;
		else if (f == 2)
			*unit = v;
	}
}

static void decode(const uint8_t *p, size_t n, d_prof *d)
{
	memset(d, 0, sizeof *d);
	rd r = {p, p + n}, sub, s2, s3;
	unsigned f, f2, f3;
	uint64_t v, v2, v3;
	while (rd_field(&r, &f, &v, &sub)) {
		switch (f) {
		case 1:
			d->nsample_types++;
			value_type(sub, &d->type, &d->unit);
			break;
		case 2: {
			d_sample *s = PUSH(d->samples, d->nsamples);
			memset(s, 0, sizeof *s);
			while (rd_field(&sub, &f2, &v2, &s2)) {
				if (f2 == 1)
					rd_ints(&s2, v2, &s->locs, &s->nlocs);
				else if (f2 == 2)
					rd_ints(&s2, v2, &s->vals, &s->nvals);
				else if (f2 == 3) {
					s->nlabels++;
					while (rd_field(&s2, &f3, &v3, &s3)) {
						if (f3 == 1)
							s->label_key = v3;
						else if (f3 == 2)
							s->label_str = v3;
					}
				}
			}
			break;
		}
		case 3: {
			d_map *m = PUSH(d->maps, d->nmaps);
			memset(m, 0, sizeof *m);
			while (rd_field(&sub, &f2, &v2, &s2)) {
				switch (f2) {
				case 1:
					m->id = v2;
					break;
				case 2:
					m->start = v2;
					break;
				case 3:
					m->limit = v2;
					break;
				case 4:
					m->offset = v2;
					break;
				case 5:
					m->file = v2;
					break;
				case 6:
					m->build_id = v2;
					break;
				case 7:
					m->has_functions = v2;
					break;
				case 8:
					m->has_filenames = v2;
					break;
				case 9:
					m->has_lines = v2;
					break;
				case 10:
					m->has_inline = v2;
					break;
				}
			}
			break;
		}
		case 4: {
			d_loc *l = PUSH(d->locs, d->nlocs);
			memset(l, 0, sizeof *l);
			while (rd_field(&sub, &f2, &v2, &s2)) {
				if (f2 == 1)
					l->id = v2;
				else if (f2 == 2)
					l->mapping = v2;
				else if (f2 == 3)
					l->addr = v2;
				else if (f2 == 4) {
					TU_ASSERT_LT(l->nlines, 8);
					d_line *ln = &l->lines[l->nlines++];
					ln->func = 0;
					ln->line = 0;
					while (rd_field(&s2, &f3, &v3, &s3)) {
						if (f3 == 1)
							ln->func = v3;
						else if (f3 == 2)
							ln->line = (int64_t)v3;
					}
				}
			}
			break;
		}
		case 5: {
			d_func *fn = PUSH(d->funcs, d->nfuncs);
			memset(fn, 0, sizeof *fn);
			while (rd_field(&sub, &f2, &v2, &s2)) {
				if (f2 == 1)
					fn->id = v2;
				else if (f2 == 2)
					fn->name = v2;
				else if (f2 == 3)
					fn->sysname = v2;
				else if (f2 == 4)
					fn->file = v2;
			}
			break;
		}
		case 6: {
			char **s = PUSH(d->strs, d->nstrs);
			size_t len = (size_t)(sub.end - sub.p);
			*s = malloc(len + 1);
			memcpy(*s, sub.p, len);
			(*s)[len] = '\0';
			break;
		}
		case 9:
			d->time_nanos = (int64_t)v;
			break;
		case 11:
			value_type(sub, &d->ptype, &d->punit);
			break;
		case 12:
			d->period = (int64_t)v;
			break;
		default:
			fail_msg("unexpected Profile field %u", f);
		}
	}
}

static void free_prof(d_prof *d)
{
	for (size_t i = 0; i < d->nsamples; i++) {
		free(d->samples[i].locs);
		free(d->samples[i].vals);
	}
	for (size_t i = 0; i < d->nstrs; i++)
		free(d->strs[i]);
	free(d->samples);
	free(d->locs);
	free(d->funcs);
	free(d->maps);
	free(d->strs);
}

static const char *str(const d_prof *d, uint64_t i)
{
	TU_ASSERT_LT(i, d->nstrs);
	return d->strs[i];
}

static const d_loc *find_loc(const d_prof *d, uint64_t id)
{
	for (size_t i = 0; i < d->nlocs; i++)
		if (d->locs[i].id == id)
			return &d->locs[i];
	fail_msg("no location %llu", (unsigned long long)id);
	return NULL;
}

static const d_func *find_func(const d_prof *d, uint64_t id)
{
	for (size_t i = 0; i < d->nfuncs; i++)
		if (d->funcs[i].id == id)
			return &d->funcs[i];
	fail_msg("no function %llu", (unsigned long long)id);
	return NULL;
}

/* The sample's frames, innermost first, as "func file:line;..." */
static void sample_frames(const d_prof *d, const d_sample *s, char *buf,
			  size_t len)
{
	size_t o = 0;
	buf[0] = '\0';
	for (size_t i = 0; i < s->nlocs; i++) {
		const d_loc *l = find_loc(d, s->locs[i]);
		for (int k = 0; k < l->nlines; k++) {
			const d_func *f = find_func(d, l->lines[k].func);
			o += (size_t)snprintf(buf + o, len - o, "%s%s %s:%lld",
					      o ? ";" : "", str(d, f->name),
					      str(d, f->file),
					      (long long)l->lines[k].line);
			TU_ASSERT_LT(o, len);
		}
	}
}

static void write_profile(tt__buf *b, const tt__snapshot *s, bool leaked,
			  d_prof *d)
{
	memset(b, 0, sizeof *b);
	TU_ASSERT_OK(tt__pprof_write(b, s, leaked, test_symbolize));
	TU_ASSERT_EQ(b->err, 0);
	TU_ASSERT_GT(b->len, 20);
	/* gzip magic, deflate */
	TU_ASSERT_EQ((uint8_t)b->data[0], 0x1f);
	TU_ASSERT_EQ((uint8_t)b->data[1], 0x8b);
	TU_ASSERT_EQ((uint8_t)b->data[2], 8);
	uint8_t *raw;
	size_t rawlen;
	gunzip(b->data, b->len, &raw, &rawlen);
	decode(raw, rawlen, d);
	free(raw);
}

/* ---- (a) the encoder's output, decoded ------------------------------------ */

static const char *const frames_of[NSPECS] = {
	"tt__park /src/tether/sched.c:311;app_inner /src/app/inner.h:7;"
	"app_outer /src/app/outer.c:40;main /src/app/main.c:12",
	"tt__park /src/tether/sched.c:311;tt_chan_recv /src/tether/chan.c:142;"
	"app_worker /src/app/worker.c:57",
	"tt__park /src/tether/sched.c:311;app_sleeper /src/app/sleep.c:23",
	"tt__park /src/tether/sched.c:311;app_leaky /src/app/leak.c:88",
};

static void test_decoded(void **state)
{
	(void)state;
	init_pcs();
	memset(sym_calls, 0, sizeof sym_calls);
	sym_bad_calls = 0;
	tt__snapshot s;
	make_snapshot(&s);
	tt__buf b;
	d_prof d;
	struct timespec now;
	clock_gettime(CLOCK_REALTIME, &now);
	write_profile(&b, &s, false, &d);

	/* Each PC symbolized once, as a return address. */
	for (int i = 0; i < NPC; i++)
		TU_ASSERT_EQ(sym_calls[i], 1);
	TU_ASSERT_EQ(sym_bad_calls, 0);

	/* The string table: "" first, every string once. */
	TU_ASSERT_GT(d.nstrs, 3);
	TU_ASSERT_EQ(strcmp(d.strs[0], ""), 0);
	for (size_t i = 0; i < d.nstrs; i++)
		for (size_t j = i + 1; j < d.nstrs; j++)
			TU_ASSERT_MSG(strcmp(d.strs[i], d.strs[j]) != 0,
				      "string %zu and %zu both \"%s\"", i, j,
				      d.strs[i]);

	/* Types, period and time, as Go writes them. */
	TU_ASSERT_EQ(d.nsample_types, 1);
	TU_ASSERT_EQ(strcmp(str(&d, d.type), "goroutine"), 0);
	TU_ASSERT_EQ(strcmp(str(&d, d.unit), "count"), 0);
	TU_ASSERT_EQ(strcmp(str(&d, d.ptype), "goroutine"), 0);
	TU_ASSERT_EQ(strcmp(str(&d, d.punit), "count"), 0);
	TU_ASSERT_EQ(d.period, 1);
	int64_t wall = (int64_t)now.tv_sec * 1000000000 + now.tv_nsec;
	TU_ASSERT_RANGE(d.time_nanos, wall - 60 * (int64_t)1000000000,
			wall + 60 * (int64_t)1000000000);

	/* One sample per distinct stack, most goroutines first. */
	TU_ASSERT_EQ(d.nsamples, NSPECS);
	TU_ASSERT_EQ(d.samples[0].nvals, 1);
	TU_ASSERT_EQ(d.samples[0].vals[0], 3);
	int seen[NSPECS] = {0};
	for (size_t i = 0; i < d.nsamples; i++) {
		const d_sample *sm = &d.samples[i];
		char fr[1024];
		sample_frames(&d, sm, fr, sizeof fr);
		size_t k = 0;
		while (k < NSPECS && strcmp(fr, frames_of[k]) != 0)
			k++;
		TU_ASSERT_MSG(k < NSPECS, "unexpected stack %s", fr);
		seen[k]++;
		TU_ASSERT_EQ(sm->nvals, 1);
		TU_ASSERT_EQ(sm->vals[0], (uint64_t)specs[k].count);
		if (i > 0)
			TU_ASSERT_LE(sm->vals[0], d.samples[i - 1].vals[0]);
		if (specs[k].name) {
			TU_ASSERT_EQ(sm->nlabels, 1);
			TU_ASSERT_EQ(strcmp(str(&d, sm->label_key), "name"), 0);
			TU_ASSERT_EQ(strcmp(str(&d, sm->label_str),
					    specs[k].name),
				     0);
		} else {
			TU_ASSERT_EQ(sm->nlabels, 0);
		}
	}
	for (size_t k = 0; k < NSPECS; k++)
		TU_ASSERT_EQ(seen[k], 1);

	/* Locations: one per PC, at the call instruction, in a mapping;
	 * the inlined frame first in its location. */
	TU_ASSERT_EQ(d.nlocs, NPC);
	for (size_t i = 0; i < d.nlocs; i++) {
		const d_loc *l = &d.locs[i];
		TU_ASSERT_EQ(l->id, i + 1);
		int which = -1;
		for (int k = 0; k < NPC; k++)
			if (pcs[k] - 1 == l->addr)
				which = k;
		TU_ASSERT_MSG(which >= 0, "location at unknown address %#llx",
			      (unsigned long long)l->addr);
		TU_ASSERT_EQ(l->nlines, which == PC_INLINE ? 2 : 1);
		const d_func *f = find_func(&d, l->lines[0].func);
		if (which == PC_INLINE) {
			TU_ASSERT_EQ(strcmp(str(&d, f->name), "app_inner"), 0);
			TU_ASSERT_EQ(l->lines[0].line, 7);
			TU_ASSERT_EQ(l->lines[1].line, 40);
		}
		TU_ASSERT_GT(l->mapping, 0);
		TU_ASSERT_LE(l->mapping, d.nmaps);
		const d_map *m = &d.maps[l->mapping - 1];
		TU_ASSERT_EQ(m->id, l->mapping);
		TU_ASSERT_MSG(m->start <= l->addr && l->addr < m->limit,
			      "address %#llx outside its mapping %#llx-%#llx",
			      (unsigned long long)l->addr,
			      (unsigned long long)m->start,
			      (unsigned long long)m->limit);
		TU_ASSERT(m->has_functions && m->has_filenames &&
			  m->has_lines && m->has_inline);
	}

	/* Functions: one per (name, file), the system name the same. */
	TU_ASSERT_EQ(d.nfuncs, NPC + 1);
	for (size_t i = 0; i < d.nfuncs; i++) {
		TU_ASSERT_EQ(d.funcs[i].id, i + 1);
		TU_ASSERT_EQ(d.funcs[i].name, d.funcs[i].sysname);
		TU_ASSERT_NE(d.funcs[i].file, 0);
	}

	/* Mappings: this program with its build id, and the C library. */
	char exe[4096];
	ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
	TU_ASSERT_GT(n, 0);
	exe[n] = '\0';
	bool have_exe = false, have_libc = false;
	for (size_t i = 0; i < d.nmaps; i++) {
		const d_map *m = &d.maps[i];
		TU_ASSERT_EQ(m->id, i + 1);
		TU_ASSERT_LT(m->start, m->limit);
		TU_ASSERT_EQ(m->start % 4096, 0);
		const char *file = str(&d, m->file);
		if (i == 0) /* pprof takes the first for the program */
			TU_ASSERT_EQ(strcmp(file, exe), 0);
		if (strcmp(file, exe) == 0) {
			have_exe = true;
			/* gcc and clang on Debian link with --build-id */
			const char *id = str(&d, m->build_id);
			TU_ASSERT_GE(strlen(id), 16);
			TU_ASSERT_EQ(strspn(id, "0123456789abcdef"),
				     strlen(id));
		}
		if (strstr(file, "libc.so"))
			have_libc = true;
	}
	TU_ASSERT(have_exe);
	TU_ASSERT(have_libc);

	free_prof(&d);
	free(b.data);
	free_snapshot(&s);
}

static void test_leaked_only(void **state)
{
	(void)state;
	init_pcs();
	tt__snapshot s;
	make_snapshot(&s);
	tt__buf b;
	d_prof d;
	write_profile(&b, &s, true, &d);
	TU_ASSERT_EQ(strcmp(str(&d, d.type), "goroutineleak"), 0);
	TU_ASSERT_EQ(d.nsamples, 1);
	TU_ASSERT_EQ(d.samples[0].vals[0], 1);
	char fr[1024];
	sample_frames(&d, &d.samples[0], fr, sizeof fr);
	TU_ASSERT_EQ(strcmp(fr, frames_of[3]), 0);
	TU_ASSERT_EQ(d.nlocs, 2); /* only the PCs of what is written */
	free_prof(&d);
	free(b.data);
	free_snapshot(&s);
}

/* Nothing to write is still a valid profile; appending keeps what the
 * buffer held; bad arguments are refused. */
static void test_empty_append_and_errors(void **state)
{
	(void)state;
	tt__snapshot s = {0};
	s.taken_at = tt_now();
	tt__buf b = {0};
	b.data = malloc(3);
	memcpy(b.data, "abc", 3);
	b.len = b.cap = 3;
	TU_ASSERT_OK(tt__pprof_write(&b, &s, false, test_symbolize));
	TU_ASSERT_EQ(memcmp(b.data, "abc", 3), 0);
	uint8_t *raw;
	size_t rawlen;
	gunzip(b.data + 3, b.len - 3, &raw, &rawlen);
	d_prof d;
	decode(raw, rawlen, &d);
	TU_ASSERT_EQ(d.nsamples, 0);
	TU_ASSERT_EQ(d.nlocs, 0);
	TU_ASSERT_EQ(d.period, 1);
	TU_ASSERT_GT(d.nmaps, 0);
	free_prof(&d);
	free(raw);

	size_t len = b.len;
	TU_ASSERT_ERR(tt__pprof_write(NULL, &s, false, test_symbolize),
		      -EINVAL);
	TU_ASSERT_ERR(tt__pprof_write(&b, NULL, false, test_symbolize),
		      -EINVAL);
	TU_ASSERT_ERR(tt__pprof_write(&b, &s, false, NULL), -EINVAL);
	s.n = 1; /* goroutines without their array */
	TU_ASSERT_ERR(tt__pprof_write(&b, &s, false, test_symbolize), -EINVAL);
	b.err = -ENOMEM; /* a buffer that already failed stays failed */
	s.n = 0;
	TU_ASSERT_ERR(tt__pprof_write(&b, &s, false, test_symbolize), -ENOMEM);
	TU_ASSERT_EQ(b.len, len);
	free(b.data);
}

/* A PC the symbolizer does not know becomes a location without lines
 * (pprof's "not symbolized"), and its mapping does not claim functions. */
static void test_unknown_pc(void **state)
{
	(void)state;
	init_pcs();
	uintptr_t stack[2] = {pcs[PC_PARK], pcs[PC_MAIN] + 2};
	tt__gsnap g = {.id = 1, .state = TT_G_WAITING, .pcs = stack, .npcs = 2};
	tt__snapshot s = {.g = &g, .n = 1, .taken_at = tt_now()};
	tt__buf b;
	d_prof d;
	write_profile(&b, &s, false, &d);
	TU_ASSERT_EQ(d.nsamples, 1);
	TU_ASSERT_EQ(d.nlocs, 2);
	TU_ASSERT_EQ(d.locs[0].nlines, 1);
	TU_ASSERT_EQ(d.locs[1].nlines, 0);
	TU_ASSERT_EQ(d.locs[1].addr, stack[1] - 1);
	TU_ASSERT_GT(d.locs[1].mapping, 0);
	TU_ASSERT(!d.maps[d.locs[1].mapping - 1].has_functions);
	TU_ASSERT_EQ(d.nfuncs, 1);
	free_prof(&d);
	free(b.data);

	/* A goroutine with PCs counted but missing is refused. */
	g.pcs = NULL;
	memset(&b, 0, sizeof b);
	TU_ASSERT_ERR(tt__pprof_write(&b, &s, false, test_symbolize), -EINVAL);
	TU_ASSERT_EQ(b.len, 0);
	free(b.data);
}

/* ---- (b) go tool pprof reads it --------------------------------------------- */

/* A line of text containing every one of the words (NULL-ended). */
static bool has_line_with(const char *text, ...)
{
	for (const char *l = text; *l;) {
		const char *e = strchr(l, '\n');
		size_t n = e ? (size_t)(e - l) : strlen(l);
		char line[1024];
		snprintf(line, sizeof line, "%.*s", (int)n, l);
		va_list ap;
		va_start(ap, text);
		bool all = true;
		for (const char *w; (w = va_arg(ap, const char *));)
			if (!strstr(line, w))
				all = false;
		va_end(ap);
		if (all)
			return true;
		l += n + (e ? 1 : 0);
	}
	return false;
}

static void test_go_tool_pprof(void **state)
{
	(void)state;
	char go[4096];
	if (!tu_find_go(go, sizeof go)) {
		print_message("go not found in PATH or /usr/lib/go/bin "
			      "(Debian: golang-go): go tool pprof not run\n");
		skip();
	}
	init_pcs();
	tt__snapshot s;
	make_snapshot(&s);
	tt__buf b = {0};
	TU_ASSERT_OK(tt__pprof_write(&b, &s, false, test_symbolize));
	char dir[] = "/tmp/tether-pprof-XXXXXX";
	TU_ASSERT(mkdtemp(dir));
	char file[256];
	snprintf(file, sizeof file, "%s/goroutine.pb.gz", dir);
	FILE *f = fopen(file, "wb");
	TU_ASSERT(f);
	TU_ASSERT_EQ(fwrite(b.data, 1, b.len, f), b.len);
	TU_ASSERT_EQ(fclose(f), 0);

	/* -symbolize=none: the mappings say every location is symbolized
	 * already; this keeps pprof from looking at the binaries at all. */
	char *raw = tu_pprof(go, "-raw -symbolize=none", file);
	TU_ASSERT_CONTAINS(raw, "PeriodType: goroutine count");
	TU_ASSERT_CONTAINS(raw, "Period: 1");
	TU_ASSERT_CONTAINS(raw, "goroutine/count");
	TU_ASSERT_CONTAINS(raw, "app_worker /src/app/worker.c:57");
	TU_ASSERT_CONTAINS(raw, "tt_chan_recv /src/tether/chan.c:142");
	TU_ASSERT_CONTAINS(raw, "app_inner /src/app/inner.h:7");
	TU_ASSERT_CONTAINS(raw, "app_outer /src/app/outer.c:40");
	TU_ASSERT(has_line_with(raw, "3:", "1 2 3", NULL));
	TU_ASSERT_CONTAINS(raw, "name:[poller]");
	TU_ASSERT_CONTAINS(raw, "Mappings");
	TU_ASSERT_CONTAINS(raw, "[FN]");

	char *top = tu_pprof(go, "-top -symbolize=none", file);
	TU_ASSERT_CONTAINS(top, "Type: goroutine");
	TU_ASSERT_CONTAINS(top, "of 7 total");
	TU_ASSERT(has_line_with(top, " 7 ", "tt__park", NULL));
	TU_ASSERT(has_line_with(top, " 3 ", "app_worker", NULL));
	TU_ASSERT(has_line_with(top, " 2 ", "app_sleeper", NULL));
	TU_ASSERT(has_line_with(top, " 1 ", "app_inner (inline)", NULL));

	char *traces = tu_pprof(go, "-traces -symbolize=none", file);
	TU_ASSERT(has_line_with(traces, "3", "tt__park", NULL));
	TU_ASSERT_CONTAINS(traces, "tt_chan_recv");
	TU_ASSERT_CONTAINS(traces, "app_worker");
	TU_ASSERT(has_line_with(traces, "name:", "poller", NULL));
	TU_ASSERT(has_line_with(traces, "2", "tt__park", NULL));

	/* Without -symbolize=none too: pprof must see nothing to do. */
	char *plain = tu_pprof(go, "-top", file);
	TU_ASSERT(has_line_with(plain, " 3 ", "app_worker", NULL));
	TU_ASSERT_NOT_CONTAINS(plain, "rror");

	free(raw);
	free(top);
	free(traces);
	free(plain);
	unlink(file);
	rmdir(dir);
	free(b.data);
	free_snapshot(&s);
}

/* ---- (c) a million goroutines on 300 stacks ------------------------------- */

static long maxrss_kb(void)
{
	struct rusage ru;
	getrusage(RUSAGE_SELF, &ru);
	return ru.ru_maxrss;
}

static uintptr_t big_pc(int k)
{
	return (uintptr_t)&tt__pprof_write + 1 + (uintptr_t)k;
}

/* Every PC is a frame of its own function. */
static int big_symbolize(uintptr_t pc, bool return_addr, tt__frame *out,
			 int max)
{
	static char names[64][32];
	(void)return_addr;
	(void)max;
	unsigned k = (unsigned)(pc - big_pc(0)) % 64;
	if (!names[k][0])
		snprintf(names[k], sizeof names[k], "fn%u", k);
	out[0] = (tt__frame){.func = names[k],
			     .file = "/src/big.c",
			     .line = (int)k + 1,
			     .pc = pc};
	return 1;
}

static void test_million(void **state)
{
	(void)state;
	enum {
		NSTACKS = 300,
		DEPTH = 8
	};
	const size_t n = TU_SCALE(1000000, 200000);
	static uintptr_t stacks[NSTACKS][DEPTH];
	for (int i = 0; i < NSTACKS; i++)
		for (int k = 0; k < DEPTH; k++)
			/* 300 distinct stacks over 64 PCs */
			stacks[i][k] = big_pc((i * 7 + k * (i % 5 + 1)) % 64);
	for (int i = 0; i < NSTACKS; i++)
		stacks[i][DEPTH - 1] =
			big_pc(i % 64) + 64 * (uintptr_t)(i / 64 + 1);

	tt__snapshot s = {0};
	s.g = calloc(n, sizeof *s.g);
	TU_ASSERT(s.g);
	s.n = n;
	s.taken_at = tt_now();
	for (size_t i = 0; i < n; i++) {
		s.g[i].id = (int64_t)i + 1;
		s.g[i].state = TT_G_WAITING;
		s.g[i].pcs = stacks[(i * 7919) % NSTACKS];
		s.g[i].npcs = DEPTH;
	}
	long before = maxrss_kb();
	tt__buf b = {0};
	TU_ASSERT_OK(tt__pprof_write(&b, &s, false, big_symbolize));
	long grew = maxrss_kb() - before;
	print_message("%zu goroutines, %d stacks: %zu bytes gzipped, peak "
		      "RSS grew %ld KiB\n",
		      n, NSTACKS, b.len, grew);
	/* The encoder's memory follows the distinct stacks, not the
	 * goroutines: far less than the snapshot itself. */
	TU_ASSERT_LT(grew, 16 * 1024);
	TU_ASSERT_LT(b.len, 1 << 20);

	uint8_t *raw;
	size_t rawlen;
	gunzip(b.data, b.len, &raw, &rawlen);
	d_prof d;
	decode(raw, rawlen, &d);
	TU_ASSERT_EQ(d.nsamples, NSTACKS);
	uint64_t total = 0;
	for (size_t i = 0; i < d.nsamples; i++) {
		TU_ASSERT_EQ(d.samples[i].nlocs, DEPTH);
		total += d.samples[i].vals[0];
	}
	TU_ASSERT_EQ(total, n);
	free_prof(&d);
	free(raw);
	free(b.data);
	free(s.g);
}

/* ---- end to end: real goroutines, tt_profile_write, go tool pprof -------- */

static tt_chan *e2e_ch;

static __attribute__((noinline)) void e2e_parked_here(void *arg)
{
	(void)arg;
	int v;
	TU_UNCHECKED(tt_chan_recv(e2e_ch, &v, sizeof v, NULL));
	__asm__ volatile("");
}

static void test_end_to_end(void **state)
{
	(void)state;
	char go[4096];
	if (!tu_find_go(go, sizeof go)) {
		print_message("go not found in PATH or /usr/lib/go/bin "
			      "(Debian: golang-go): go tool pprof not run\n");
		skip();
	}
	TU_ASSERT_OK(tt_chan_make(&e2e_ch, sizeof(int), 0));
	for (int i = 0; i < 9; i++)
		TU_ASSERT_GT(tt_go(e2e_parked_here, NULL), 0);
	tt_yield();
	char dir[] = "/tmp/tether-pprof-XXXXXX";
	TU_ASSERT(mkdtemp(dir));
	char file[256];
	snprintf(file, sizeof file, "%s/goroutine.pb.gz", dir);
	FILE *f = fopen(file, "wb");
	TU_ASSERT(f);
	TU_ASSERT_OK(tt_profile_write_fd("goroutine", 0, fileno(f)));
	TU_ASSERT_EQ(fclose(f), 0);
	/* The profile names every function itself: no flags needed. */
	char *traces = tu_pprof(go, "-traces", file);
	TU_ASSERT_CONTAINS(traces, "Type: goroutine");
	TU_ASSERT_CONTAINS(traces, "e2e_parked_here");
	TU_ASSERT_CONTAINS(traces, "tt_chan_recv");
	char *top = tu_pprof(go, "-top", file);
	TU_ASSERT_CONTAINS(top, "Showing nodes accounting for 10, 100% of 10 "
				"total");
	TU_ASSERT_OK(tt_chan_close(e2e_ch));
	tt_yield();
	TU_ASSERT_OK(tt_chan_release(e2e_ch));
	free(traces);
	free(top);
	unlink(file);
	rmdir(dir);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_decoded),
		cmocka_unit_test(test_leaked_only),
		cmocka_unit_test(test_empty_append_and_errors),
		cmocka_unit_test(test_unknown_pc),
		cmocka_unit_test(test_go_tool_pprof),
		cmocka_unit_test(test_million),
		cmocka_unit_test(test_end_to_end),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
