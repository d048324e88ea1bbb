/* tests — the goroutine profile as pprof's profile.proto (debug=0).
 *
 * The encoder is fed synthetic snapshots and a symbolizer with known
 * names, files and lines; its output is gunzipped and decoded here by a
 * small protobuf walker of its own, and every table is checked. Then
 * `go tool pprof` (Debian's golang-go) reads a written profile with -raw,
 * -top and -traces.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <zlib.h>

#include "testutil.h"

#include "profile/pprof.h"

/* ---- a decoder, independent of the encoder ------------------------------ */

typedef struct dline {
	uint64_t func, line;
} dline;

typedef struct dloc {
	uint64_t id, mapping, addr;
	dline lines[8];
	int nlines;
} dloc;

typedef struct dfunc {
	uint64_t id, name, system_name, file, start_line;
} dfunc;

typedef struct dmap {
	uint64_t id, start, limit, offset, file, build_id;
	uint64_t has_functions, has_filenames, has_line_numbers,
		has_inline_frames;
} dmap;

typedef struct dsample {
	uint64_t locs[64];
	int nlocs;
	uint64_t values[4];
	int nvalues;
	uint64_t label_key, label_str; /* the one string label, if any */
	int nlabels;
} dsample;

typedef struct dprof {
	dsample *samples;
	size_t nsamples;
	dloc *locs;
	size_t nlocs;
	dfunc *funcs;
	size_t nfuncs;
	dmap *maps;
	size_t nmaps;
	char **strs;
	size_t nstrs;
	uint64_t sample_type[2];
	int nsample_types;
	uint64_t period_type[2];
	bool has_period_type;
	uint64_t period, time_nanos;
} dprof;

typedef struct rd {
	const uint8_t *p, *end;
} rd;

static uint64_t rd_varint(rd *r)
{
	uint64_t v = 0;
	for (int shift = 0; shift < 64; shift += 7) {
		TU_ASSERT_MSG(r->p < r->end, "truncated varint");
		uint8_t c = *r->p++;
		v |= (uint64_t)(c & 0x7f) << shift;
		if (c < 0x80)
			return v;
	}
	tu_fail_at(__FILE__, __LINE__, "varint longer than 10 bytes");
}

/* Next field: its number, and either its varint value or its bytes. */
static bool rd_field(rd *r, unsigned *field, uint64_t *v, rd *sub)
{
	if (r->p == r->end)
		return false;
	uint64_t key = rd_varint(r);
	*field = (unsigned)(key >> 3);
	TU_ASSERT_MSG(*field > 0, "field number 0");
	switch (key & 7) {
	case 0:
		*v = rd_varint(r);
		sub->p = sub->end = NULL;
		return true;
	case 2: {
		uint64_t n = rd_varint(r);
		TU_ASSERT_MSG(n <= (uint64_t)(r->end - r->p),
			      "length %llu past the end",
			      (unsigned long long)n);
		sub->p = r->p;
		sub->end = r->p + n;
		r->p += n;
		*v = 0;
		return true;
	}
	default:
		tu_fail_at(__FILE__, __LINE__, "wire type %u",
			   (unsigned)(key & 7));
	}
}

/* A repeated integer field, packed (sub set) or not. */
static int rd_ints(uint64_t v, rd *sub, uint64_t *out, int have, int max)
{
	if (sub->p == NULL) {
		TU_ASSERT_LT(have, max);
		out[have++] = v;
		return have;
	}
	while (sub->p < sub->end) {
		TU_ASSERT_LT(have, max);
		out[have++] = rd_varint(sub);
	}
	return have;
}

static void *push(void *arr, size_t *n, size_t size)
{
	char *p = realloc(arr, (*n + 1) * size);
	TU_ASSERT(p != NULL);
	memset(p + *n * size, 0, size);
	(*n)++;
	return p;
}

static void decode_value_type(rd *r, uint64_t out[2])
{
	unsigned f;
	uint64_t v;
	rd sub;
	while (rd_field(r, &f, &v, &sub))
		if (f == 1 || f == 2)
			out[f - 1] = v;
}

static void decode(const uint8_t *p, size_t n, dprof *d)
{
	memset(d, 0, sizeof *d);
	rd r = {p, p + n}, sub, s2;
	unsigned f, f2;
	uint64_t v, v2;
	while (rd_field(&r, &f, &v, &sub)) {
		switch (f) {
		case 1:
			TU_ASSERT_LT(d->nsample_types, 1);
			d->nsample_types++;
			decode_value_type(&sub, d->sample_type);
			break;
		case 2: {
			d->samples = push(d->samples, &d->nsamples,
					  sizeof *d->samples);
			dsample *s = &d->samples[d->nsamples - 1];
			while (rd_field(&sub, &f2, &v2, &s2)) {
				if (f2 == 1)
					s->nlocs = rd_ints(v2, &s2, s->locs,
							   s->nlocs, 64);
				else if (f2 == 2)
					s->nvalues = rd_ints(v2, &s2, s->values,
							     s->nvalues, 4);
				else if (f2 == 3) {
					unsigned f3;
					uint64_t v3;
					rd s3;
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
			d->maps = push(d->maps, &d->nmaps, sizeof *d->maps);
			dmap *m = &d->maps[d->nmaps - 1];
			uint64_t *fields[] = {
				NULL,
				&m->id,
				&m->start,
				&m->limit,
				&m->offset,
				&m->file,
				&m->build_id,
				&m->has_functions,
				&m->has_filenames,
				&m->has_line_numbers,
				&m->has_inline_frames,
			};
			while (rd_field(&sub, &f2, &v2, &s2))
				if (f2 >= 1 && f2 <= 10)
					*fields[f2] = v2;
			break;
		}
		case 4: {
			d->locs = push(d->locs, &d->nlocs, sizeof *d->locs);
			dloc *l = &d->locs[d->nlocs - 1];
			while (rd_field(&sub, &f2, &v2, &s2)) {
				if (f2 == 1)
					l->id = v2;
				else if (f2 == 2)
					l->mapping = v2;
				else if (f2 == 3)
					l->addr = v2;
				else if (f2 == 4) {
					TU_ASSERT_LT(l->nlines, 8);
					dline *ln = &l->lines[l->nlines++];
					unsigned f3;
					uint64_t v3;
					rd s3;
					while (rd_field(&s2, &f3, &v3, &s3)) {
						if (f3 == 1)
							ln->func = v3;
						else if (f3 == 2)
							ln->line = v3;
					}
				}
			}
			break;
		}
		case 5: {
			d->funcs = push(d->funcs, &d->nfuncs, sizeof *d->funcs);
			dfunc *fn = &d->funcs[d->nfuncs - 1];
			uint64_t *fields[] = {NULL,      &fn->id,
					      &fn->name, &fn->system_name,
					      &fn->file, &fn->start_line};
			while (rd_field(&sub, &f2, &v2, &s2))
				if (f2 >= 1 && f2 <= 5)
					*fields[f2] = v2;
			break;
		}
		case 6: {
			d->strs = push(d->strs, &d->nstrs, sizeof *d->strs);
			size_t len = (size_t)(sub.end - sub.p);
			char *s = malloc(len + 1);
			TU_ASSERT(s != NULL);
			if (len)
				memcpy(s, sub.p, len);
			s[len] = '\0';
			d->strs[d->nstrs - 1] = s;
			break;
		}
		case 9:
			d->time_nanos = v;
			break;
		case 11:
			d->has_period_type = true;
			decode_value_type(&sub, d->period_type);
			break;
		case 12:
			d->period = v;
			break;
		default:
			tu_fail_at(__FILE__, __LINE__, "unexpected field %u",
				   f);
		}
	}
}

static void dprof_free(dprof *d)
{
	for (size_t i = 0; i < d->nstrs; i++)
		free(d->strs[i]);
	free(d->strs);
	free(d->samples);
	free(d->locs);
	free(d->funcs);
	free(d->maps);
}

static size_t gunzip(const void *in, size_t n, uint8_t **out)
{
	z_stream z;
	memset(&z, 0, sizeof z);
	/* 15 + 16: gzip only, not zlib or raw deflate. */
	assert_int_equal(inflateInit2(&z, 15 + 16), Z_OK);
	size_t cap = 4096, len = 0;
	uint8_t *buf = malloc(cap);
	TU_ASSERT(buf != NULL);
	z.next_in = (unsigned char *)(uintptr_t)in;
	z.avail_in = (unsigned)n;
	int rc;
	do {
		if (cap - len < 4096) {
			cap *= 2;
			buf = realloc(buf, cap);
			TU_ASSERT(buf != NULL);
		}
		z.next_out = buf + len;
		z.avail_out = (unsigned)(cap - len);
		rc = inflate(&z, Z_NO_FLUSH);
		TU_ASSERT_MSG(rc == Z_OK || rc == Z_STREAM_END, "inflate: %d",
			      rc);
		len = cap - z.avail_out;
	} while (rc != Z_STREAM_END);
	TU_ASSERT_EQ(z.avail_in, 0); /* nothing after the gzip member */
	inflateEnd(&z);
	*out = buf;
	return len;
}

static const char *str(const dprof *d, uint64_t ix)
{
	TU_ASSERT_LT(ix, d->nstrs);
	return d->strs[ix];
}

static const dloc *loc_by_id(const dprof *d, uint64_t id)
{
	/* Ids must be 1..n in order (pprof accepts any, Go writes these). */
	TU_ASSERT_GE(id, 1);
	TU_ASSERT_LE(id, d->nlocs);
	TU_ASSERT_EQ(d->locs[id - 1].id, id);
	return &d->locs[id - 1];
}

static const dfunc *func_by_id(const dprof *d, uint64_t id)
{
	TU_ASSERT_GE(id, 1);
	TU_ASSERT_LE(id, d->nfuncs);
	TU_ASSERT_EQ(d->funcs[id - 1].id, id);
	return &d->funcs[id - 1];
}

/* A sample's stack as "f:line;g:line;..." (every line of every location,
 * innermost first; "@" for a location without lines). */
static void stack_text(const dprof *d, const dsample *s, char *out, size_t n)
{
	size_t len = 0;
	out[0] = '\0';
	for (int i = 0; i < s->nlocs; i++) {
		const dloc *l = loc_by_id(d, s->locs[i]);
		if (l->nlines == 0)
			len += (size_t)snprintf(out + len, n - len, "@;");
		for (int k = 0; k < l->nlines; k++) {
			const dfunc *f = func_by_id(d, l->lines[k].func);
			len += (size_t)snprintf(
				out + len, n - len, "%s:%llu;", str(d, f->name),
				(unsigned long long)l->lines[k].line);
		}
		TU_ASSERT_LT(len, n);
	}
}

/* The sample whose stack text is `want`, or fail. */
static const dsample *find_sample(const dprof *d, const char *want,
				  const char *label)
{
	char buf[1024];
	for (size_t i = 0; i < d->nsamples; i++) {
		const dsample *s = &d->samples[i];
		stack_text(d, s, buf, sizeof buf);
		if (strcmp(buf, want) != 0)
			continue;
		const char *l = s->nlabels ? str(d, s->label_str) : NULL;
		if ((l == NULL) != (label == NULL) ||
		    (l && strcmp(l, label) != 0))
			continue;
		return s;
	}
	for (size_t i = 0; i < d->nsamples; i++) {
		stack_text(d, &d->samples[i], buf, sizeof buf);
		print_message("  sample %zu: %s\n", i, buf);
	}
	tu_fail_at(__FILE__, __LINE__, "no sample %s (label %s)", want,
		   label ? label : "none");
}

/* Checks that hold for every profile the encoder writes. */
static void check_well_formed(const dprof *d)
{
	TU_ASSERT_GE(d->nstrs, 1);
	TU_ASSERT_MSG(d->strs[0][0] == '\0', "string 0 is \"%s\"", d->strs[0]);
	for (size_t i = 1; i < d->nstrs; i++) {
		TU_ASSERT_MSG(d->strs[i][0] != '\0', "empty string at %zu", i);
		for (size_t j = 1; j < i; j++)
			TU_ASSERT_MSG(strcmp(d->strs[i], d->strs[j]) != 0,
				      "string \"%s\" twice", d->strs[i]);
	}
	TU_ASSERT_EQ(d->nsample_types, 1);
	/* Named after the profile, as Go names them. */
	const char *type = str(d, d->sample_type[0]);
	TU_ASSERT_MSG(strcmp(type, "goroutine") == 0 ||
			      strcmp(type, "goroutineleak") == 0,
		      "sample type %s", type);
	assert_string_equal(str(d, d->sample_type[1]), "count");
	TU_ASSERT(d->has_period_type);
	assert_string_equal(str(d, d->period_type[0]), type);
	assert_string_equal(str(d, d->period_type[1]), "count");
	TU_ASSERT_EQ(d->period, 1);

	for (size_t i = 0; i < d->nsamples; i++) {
		TU_ASSERT_EQ(d->samples[i].nvalues, 1);
		TU_ASSERT_GE(d->samples[i].values[0], 1);
		for (int k = 0; k < d->samples[i].nlocs; k++)
			loc_by_id(d, d->samples[i].locs[k]);
	}
	for (size_t i = 0; i < d->nmaps; i++) {
		TU_ASSERT_EQ(d->maps[i].id, i + 1);
		TU_ASSERT_LT(d->maps[i].start, d->maps[i].limit);
		str(d, d->maps[i].file);
		str(d, d->maps[i].build_id);
	}
	for (size_t i = 0; i < d->nlocs; i++) {
		loc_by_id(d, i + 1);
		TU_ASSERT_LE(d->locs[i].mapping, d->nmaps);
		/* One location per address, but for a top-of-stack variant
		 * with fewer lines. */
		for (size_t j = 0; j < i; j++)
			TU_ASSERT(d->locs[i].addr != d->locs[j].addr ||
				  d->locs[i].nlines != d->locs[j].nlines);
		for (int k = 0; k < d->locs[i].nlines; k++)
			func_by_id(d, d->locs[i].lines[k].func);
	}
	for (size_t i = 0; i < d->nfuncs; i++) {
		const dfunc *f = func_by_id(d, i + 1);
		TU_ASSERT_NE(f->name, 0);
		TU_ASSERT_EQ(f->system_name, f->name);
		str(d, f->file);
		/* One function per (name, file). */
		for (size_t j = 0; j < i; j++)
			TU_ASSERT(d->funcs[j].name != f->name ||
				  d->funcs[j].file != f->file);
	}
}

/* ---- a synthetic symbolizer --------------------------------------------- */

/* Code addresses of this program, so the profile's mapping is real. */
static void anchor(void)
{
}

enum {
	P_PARK,
	P_WORKER,
	P_MAIN,
	P_INL,
	P_STATIC_A,
	P_STATIC_B,
	P_WORKER2,
	P_RUNNABLE,
	P_UNKNOWN,
	P__COUNT
};

typedef struct symdef {
	tt__frame f[2];
	int n;
} symdef;

static const symdef syms[P__COUNT] = {
	/* tether's park inlined into its public call: hidden at the top of
	 * a stack, shown anywhere else. */
	[P_PARK] = {{{.func = "chan_park",
		      .file = "src/chan/chan.c",
		      .line = 300,
		      .inlined = true,
		      .internal = true},
		     {.func = "tt_chan_recv",
		      .file = "src/chan/chan.c",
		      .line = 120}},
		    2},
	[P_WORKER] = {{{.func = "worker", .file = "tests/work.c", .line = 11}},
		      1},
	[P_MAIN] = {{{.func = "spawner", .file = "tests/work.c", .line = 30}},
		    1},
	[P_INL] = {{{.func = "inner_helper",
		     .file = "tests/inl.h",
		     .line = 5,
		     .inlined = true},
		    {.func = "outer_fn", .file = "tests/work.c", .line = 40}},
		   2},
	[P_STATIC_A] = {{{.func = "helper", .file = "a.c", .line = 7}}, 1},
	[P_STATIC_B] = {{{.func = "helper", .file = "b.c", .line = 9}}, 1},
	[P_WORKER2] = {{{.func = "worker", .file = "tests/work.c", .line = 12}},
		       1},
	[P_RUNNABLE] =
		{{{.func = "yielder", .file = "tests/work.c", .line = 50}}, 1},
	[P_UNKNOWN] = {{{.func = "?"}}, 1},
};

static uintptr_t pc_of(int which)
{
	return (uintptr_t)&anchor + 16 * (uintptr_t)(which + 1);
}

static int sym_calls[P__COUNT];
static bool sym_return_addr[P__COUNT];

static int fake_sym(uintptr_t pc, bool return_addr, tt__frame *out, int max)
{
	for (int i = 0; i < P__COUNT; i++) {
		if (pc != pc_of(i))
			continue;
		sym_calls[i]++;
		sym_return_addr[i] = return_addr;
		int n = syms[i].n < max ? syms[i].n : max;
		for (int k = 0; k < n; k++) {
			out[k] = syms[i].f[k];
			out[k].pc = pc;
		}
		return n;
	}
	out[0] = (tt__frame){.func = "?", .pc = pc};
	return 1;
}

/* ---- snapshots ---------------------------------------------------------- */

#define MAX_G 32

typedef struct fixture {
	tt__gsnap g[MAX_G];
	uintptr_t pcs[MAX_G][8];
	tt__snapshot snap;
	uintptr_t shared_a[3]; /* one PC array several goroutines point to */
} fixture;

static tt__gsnap *add_g(fixture *fx, const int *which, int n,
			const uintptr_t *shared)
{
	size_t i = fx->snap.n++;
	TU_ASSERT_LT(i, MAX_G);
	tt__gsnap *g = &fx->g[i];
	memset(g, 0, sizeof *g);
	g->id = (int64_t)i + 1;
	g->state = TT_G_WAITING;
	g->reason = TT_WAIT_CHAN_RECV;
	for (int k = 0; k < n; k++)
		fx->pcs[i][k] = pc_of(which[k]);
	g->pcs = shared ? shared : fx->pcs[i];
	g->npcs = (uint32_t)n;
	return g;
}

static const int stack_a[] = {P_PARK, P_WORKER, P_MAIN};
static const int stack_b[] = {P_PARK,     P_INL,     P_STATIC_A,
			      P_STATIC_B, P_WORKER2, P_UNKNOWN};
static const int stack_leak[] = {P_PARK, P_WORKER2};
static const int stack_runnable[] = {P_RUNNABLE};
static const int stack_odd[] = {P_WORKER, P_PARK, P_MAIN};

#define A_TEXT "tt_chan_recv:120;worker:11;spawner:30;"
#define B_TEXT                                                           \
	"tt_chan_recv:120;inner_helper:5;outer_fn:40;helper:7;helper:9;" \
	"worker:12;@;"
#define LEAK_TEXT "tt_chan_recv:120;worker:12;"
#define RUNNABLE_TEXT "yielder:50;"
#define ODD_TEXT "worker:11;chan_park:300;tt_chan_recv:120;spawner:30;"

/* 8 unnamed goroutines on stack A (5 with their own copy of the PCs, 3
 * sharing one array), 2 on A named "shard", one on B (inlined frames, two
 * static functions of one name, an unknown PC), one runnable with a
 * single PC, one leaked, one with the park PC below its top.
 * Interleaved, so grouping cannot rely on neighbours. */
static void make_fixture(fixture *fx, bool with_unknown)
{
	memset(fx, 0, sizeof *fx);
	fx->snap.g = fx->g;
	for (int k = 0; k < 3; k++)
		fx->shared_a[k] = pc_of(stack_a[k]);
	int nb = with_unknown ? 6 : 5;

	for (int r = 0; r < 5; r++) {
		add_g(fx, stack_a, 3, NULL);
		if (r < 3)
			add_g(fx, stack_a, 3, fx->shared_a);
		if (r < 2)
			add_g(fx, stack_a, 3, NULL)->name = "shard";
		if (r == 1)
			add_g(fx, stack_b, nb, NULL);
		if (r == 2)
			add_g(fx, stack_leak, 2, NULL)->leaked = true;
		if (r == 3) {
			tt__gsnap *g = add_g(fx, stack_runnable, 1, NULL);
			g->state = TT_G_RUNNABLE;
			g->reason = TT_WAIT_NONE;
		}
		if (r == 4)
			add_g(fx, stack_odd, 3, NULL);
	}
	memset(sym_calls, 0, sizeof sym_calls);
	memset(sym_return_addr, 0, sizeof sym_return_addr);
}

static void write_decode(const tt__snapshot *s, bool (*keep)(const tt__gsnap *),
			 dprof *d, uint64_t *t0, uint64_t *t1)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	*t0 = (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
	tt__buf b = {0};
	TU_ASSERT_OK(tt__pprof_write(&b, s, keep, fake_sym));
	clock_gettime(CLOCK_REALTIME, &ts);
	*t1 = (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
	TU_ASSERT_EQ(b.err, 0);
	TU_ASSERT_GT(b.len, 18);
	/* gzip magic, deflate. */
	TU_ASSERT_EQ((uint8_t)b.data[0], 0x1f);
	TU_ASSERT_EQ((uint8_t)b.data[1], 0x8b);
	TU_ASSERT_EQ((uint8_t)b.data[2], 8);
	uint8_t *raw;
	size_t n = gunzip(b.data, b.len, &raw);
	tt__buf_free(&b);
	decode(raw, n, d);
	free(raw);
	check_well_formed(d);
}

/* ---- (a) the encoder, decoded ------------------------------------------- */

static void test_tables(void **state)
{
	(void)state;
	fixture fx;
	make_fixture(&fx, true);
	dprof d;
	uint64_t t0, t1;
	write_decode(&fx.snap, NULL, &d, &t0, &t1);

	TU_ASSERT_RANGE(d.time_nanos, t0, t1);
	assert_string_equal(str(&d, d.sample_type[0]), "goroutine");

	/* Samples: one per (stack, name), with counts. */
	TU_ASSERT_EQ(d.nsamples, 6);
	TU_ASSERT_EQ(find_sample(&d, A_TEXT, NULL)->values[0], 8);
	const dsample *named = find_sample(&d, A_TEXT, "shard");
	TU_ASSERT_EQ(named->values[0], 2);
	TU_ASSERT_EQ(named->nlabels, 1);
	assert_string_equal(str(&d, named->label_key), "name");
	TU_ASSERT_EQ(find_sample(&d, B_TEXT, NULL)->values[0], 1);
	TU_ASSERT_EQ(find_sample(&d, LEAK_TEXT, NULL)->values[0], 1);
	TU_ASSERT_EQ(find_sample(&d, RUNNABLE_TEXT, NULL)->values[0], 1);
	TU_ASSERT_EQ(find_sample(&d, ODD_TEXT, NULL)->values[0], 1);
	uint64_t total = 0;
	for (size_t i = 0; i < d.nsamples; i++)
		total += d.samples[i].values[0];
	TU_ASSERT_EQ(total, fx.snap.n);

	/* Locations: one per PC, at the call (return address - 1), each PC
	 * symbolized once and as a return address; the park PC has a
	 * second location without tether's inlined frame, for the top. */
	TU_ASSERT_EQ(d.nlocs, P__COUNT + 1);
	for (int i = 0; i < P__COUNT; i++) {
		TU_ASSERT_EQ(sym_calls[i], 1);
		TU_ASSERT(sym_return_addr[i]);
		int found = 0;
		for (size_t k = 0; k < d.nlocs; k++)
			found += d.locs[k].addr == pc_of(i) - 1;
		TU_ASSERT_EQ(found, i == P_PARK ? 2 : 1);
	}

	/* Functions: worker once (two lines of it), helper twice (two
	 * files); 9 in all. */
	TU_ASSERT_EQ(d.nfuncs, 9);
	int helpers = 0, workers = 0;
	for (size_t i = 0; i < d.nfuncs; i++) {
		const char *name = str(&d, d.funcs[i].name);
		const char *file = str(&d, d.funcs[i].file);
		if (strcmp(name, "helper") == 0) {
			helpers++;
			TU_ASSERT(strcmp(file, "a.c") == 0 ||
				  strcmp(file, "b.c") == 0);
		}
		if (strcmp(name, "worker") == 0) {
			workers++;
			assert_string_equal(file, "tests/work.c");
		}
	}
	TU_ASSERT_EQ(helpers, 2);
	TU_ASSERT_EQ(workers, 1);

	/* Mappings: the program first, holding every PC; its locations are
	 * not all symbolized (P_UNKNOWN), so no has_functions. */
	TU_ASSERT_GE(d.nmaps, 1);
	char exe[PATH_MAX];
	ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
	TU_ASSERT_GT(n, 0);
	exe[n] = '\0';
	assert_string_equal(str(&d, d.maps[0].file), exe);
	TU_ASSERT_LE(d.maps[0].start, pc_of(0) - 1);
	TU_ASSERT_GT(d.maps[0].limit, pc_of(P__COUNT - 1));
	TU_ASSERT_EQ(d.maps[0].has_functions, 0);
	for (size_t i = 0; i < d.nlocs; i++)
		TU_ASSERT_EQ(d.locs[i].mapping, 1);
	/* Shared objects follow (libc at least), with their file names. */
	bool libc = false;
	for (size_t i = 1; i < d.nmaps; i++)
		libc |= strstr(str(&d, d.maps[i].file), "libc") != NULL;
	TU_ASSERT(libc);

	dprof_free(&d);
}

static void test_symbolized_mapping(void **state)
{
	(void)state;
	fixture fx;
	make_fixture(&fx, false);
	dprof d;
	uint64_t t0, t1;
	write_decode(&fx.snap, NULL, &d, &t0, &t1);
	TU_ASSERT_EQ(d.nlocs, P__COUNT); /* no P_UNKNOWN, P_PARK twice */
	/* Every location of the program's mapping has lines now. */
	TU_ASSERT_EQ(d.maps[0].has_functions, 1);
	TU_ASSERT_EQ(d.maps[0].has_filenames, 1);
	TU_ASSERT_EQ(d.maps[0].has_line_numbers, 1);
	TU_ASSERT_EQ(d.maps[0].has_inline_frames, 1);
	/* The inlined frames: one location, innermost line first. */
	const dloc *inl = NULL;
	for (size_t i = 0; i < d.nlocs; i++)
		if (d.locs[i].addr == pc_of(P_INL) - 1)
			inl = &d.locs[i];
	TU_ASSERT(inl != NULL);
	TU_ASSERT_EQ(inl->nlines, 2);
	assert_string_equal(str(&d, func_by_id(&d, inl->lines[0].func)->name),
			    "inner_helper");
	assert_string_equal(str(&d, func_by_id(&d, inl->lines[0].func)->file),
			    "tests/inl.h");
	TU_ASSERT_EQ(inl->lines[0].line, 5);
	assert_string_equal(str(&d, func_by_id(&d, inl->lines[1].func)->name),
			    "outer_fn");
	TU_ASSERT_EQ(inl->lines[1].line, 40);
	/* Mappings without locations claim nothing. */
	for (size_t i = 1; i < d.nmaps; i++)
		TU_ASSERT_EQ(d.maps[i].has_functions, 0);
	dprof_free(&d);
}

static bool keep_leaked(const tt__gsnap *g)
{
	return g->leaked;
}

static void test_keep(void **state)
{
	(void)state;
	fixture fx;
	make_fixture(&fx, true);
	dprof d;
	uint64_t t0, t1;
	write_decode(&fx.snap, keep_leaked, &d, &t0, &t1);
	TU_ASSERT_EQ(d.nsamples, 1);
	TU_ASSERT_EQ(find_sample(&d, LEAK_TEXT, NULL)->values[0], 1);
	/* Only what the kept stacks use. */
	TU_ASSERT_EQ(d.nlocs, 2);
	TU_ASSERT_EQ(d.nfuncs, 2);
	TU_ASSERT_EQ(sym_calls[P_MAIN], 0);
	dprof_free(&d);
}

/* The leak profile: its own name, proven leaks only. */
static void test_leak_profile(void **state)
{
	(void)state;
	fixture fx;
	make_fixture(&fx, true);
	tt__buf b = {0};
	TU_ASSERT_OK(tt__pprof_write_named(&b, &fx.snap, "goroutineleak",
					   keep_leaked, fake_sym));
	uint8_t *raw;
	size_t n = gunzip(b.data, b.len, &raw);
	tt__buf_free(&b);
	dprof d;
	decode(raw, n, &d);
	free(raw);
	check_well_formed(&d);
	assert_string_equal(str(&d, d.sample_type[0]), "goroutineleak");
	assert_string_equal(str(&d, d.period_type[0]), "goroutineleak");
	TU_ASSERT_EQ(d.nsamples, 1);
	TU_ASSERT_EQ(find_sample(&d, LEAK_TEXT, NULL)->values[0], 1);
	dprof_free(&d);
}

static void test_empty(void **state)
{
	(void)state;
	tt__snapshot s = {0};
	dprof d;
	uint64_t t0, t1;
	write_decode(&s, NULL, &d, &t0, &t1);
	TU_ASSERT_EQ(d.nsamples, 0);
	TU_ASSERT_EQ(d.nlocs, 0);
	TU_ASSERT_EQ(d.nfuncs, 0);
	TU_ASSERT_GE(d.nmaps, 1);
	dprof_free(&d);
}

static void test_bad_args(void **state)
{
	(void)state;
	tt__snapshot s = {0};
	tt__buf b = {0};
	TU_ASSERT_ERR(tt__pprof_write(NULL, &s, NULL, fake_sym), -EINVAL);
	TU_ASSERT_ERR(tt__pprof_write(&b, NULL, NULL, fake_sym), -EINVAL);
	TU_ASSERT_ERR(tt__pprof_write(&b, &s, NULL, NULL), -EINVAL);
	TU_ASSERT_ERR(tt__pprof_write_named(&b, &s, NULL, NULL, fake_sym),
		      -EINVAL);
	TU_ASSERT_ERR(tt__pprof_write_named(&b, &s, "", NULL, fake_sym),
		      -EINVAL);
	TU_ASSERT_EQ(b.len, 0);
}

/* Many goroutines, few stacks: the grouping must count every one. Each
 * goroutine has its own copy of its PCs, as a snapshot would. */
static int many_sym(uintptr_t pc, bool return_addr, tt__frame *out, int max)
{
	(void)return_addr;
	(void)max;
	static char names[64][16];
	int k = (int)((pc - (uintptr_t)&anchor) % 64);
	snprintf(names[k], sizeof names[k], "fn%d", k);
	out[0] = (tt__frame){
		.func = names[k], .file = "many.c", .line = k + 1, .pc = pc};
	return 1;
}

static void test_many(void **state)
{
	(void)state;
	const size_t ng = TU_SCALE(200000, 20000), nstacks = 300, depth = 8;
	tt__gsnap *g = calloc(ng, sizeof *g);
	uintptr_t *pool = malloc(ng * depth * sizeof *pool);
	TU_ASSERT(g != NULL && pool != NULL);
	uint64_t rng = tu_seed("pprof_many");
	size_t *want = calloc(nstacks, sizeof *want);
	TU_ASSERT(want != NULL);
	for (size_t i = 0; i < ng; i++) {
		size_t st = tu_rand_n(&rng, (uint32_t)nstacks);
		want[st]++;
		uintptr_t *p = pool + i * depth;
		/* Stack st: its first two PCs tell it apart. */
		p[0] = (uintptr_t)&anchor + 1 + st % 32;
		p[1] = (uintptr_t)&anchor + 1 + 32 + st / 32;
		for (size_t k = 2; k < depth; k++)
			p[k] = (uintptr_t)&anchor + 1 + 64 + k;
		g[i] = (tt__gsnap){.id = (int64_t)i + 1,
				   .pcs = p,
				   .npcs = (uint32_t)depth,
				   .state = TT_G_WAITING};
	}
	tt__snapshot s = {.g = g, .n = ng};
	tt__buf b = {0};
	TU_ASSERT_OK(tt__pprof_write(&b, &s, NULL, many_sym));
	uint8_t *raw;
	size_t n = gunzip(b.data, b.len, &raw);
	tt__buf_free(&b);
	dprof d;
	decode(raw, n, &d);
	free(raw);
	check_well_formed(&d);

	size_t distinct = 0;
	for (size_t st = 0; st < nstacks; st++)
		distinct += want[st] > 0;
	TU_ASSERT_EQ(d.nsamples, distinct);
	uint64_t total = 0;
	for (size_t i = 0; i < d.nsamples; i++) {
		const dsample *sm = &d.samples[i];
		TU_ASSERT_EQ(sm->nlocs, depth);
		/* Which stack: from its first two addresses (each the
		 * PC - 1). */
		uint64_t a0 =
			loc_by_id(&d, sm->locs[0])->addr - (uintptr_t)&anchor;
		uint64_t a1 = loc_by_id(&d, sm->locs[1])->addr -
			      (uintptr_t)&anchor - 32;
		size_t st = (size_t)(a0 + 32 * a1);
		TU_ASSERT_LT(st, nstacks);
		TU_ASSERT_EQ(sm->values[0], want[st]);
		total += sm->values[0];
	}
	TU_ASSERT_EQ(total, ng);
	dprof_free(&d);
	free(want);
	free(pool);
	free(g);
}

/* ---- (b) go tool pprof reads it ----------------------------------------- */

static bool have_go(void)
{
	return system("command -v go >/dev/null 2>&1") == 0;
}

/* Output of `go tool pprof FLAG path` (stderr included); fails the test
 * when it does not exit 0. */
static char *pprof_run(const char *flag, const char *path)
{
	char cmd[PATH_MAX + 128];
	snprintf(cmd, sizeof cmd,
		 "timeout 120 go tool pprof %s '%s' 2>&1 </dev/null", flag,
		 path);
	FILE *f = popen(cmd, "r");
	TU_ASSERT(f != NULL);
	size_t cap = 4096, len = 0;
	char *out = malloc(cap);
	TU_ASSERT(out != NULL);
	size_t got;
	while ((got = fread(out + len, 1, cap - len - 1, f)) > 0) {
		len += got;
		if (cap - len < 1024) {
			cap *= 2;
			out = realloc(out, cap);
			TU_ASSERT(out != NULL);
		}
	}
	out[len] = '\0';
	int st = pclose(f);
	TU_ASSERT_MSG(st != -1 && WIFEXITED(st) && WEXITSTATUS(st) == 0,
		      "%s: status %d:\n%s", cmd, st, out);
	return out;
}

static void test_go_tool_pprof(void **state)
{
	(void)state;
	if (tu_emulated()) {
		print_message("skipped: go tool pprof is not run under an "
			      "emulator\n");
		skip();
	}
	if (!have_go()) {
		print_message("skipped: `go` is not installed (Debian: "
			      "golang-go; scripts/install-deps installs it)\n");
		skip();
	}
	fixture fx;
	make_fixture(&fx, false);
	tt__buf b = {0};
	TU_ASSERT_OK(tt__pprof_write(&b, &fx.snap, NULL, fake_sym));

	char dir[] = "/tmp/tether-pprof-XXXXXX";
	TU_ASSERT(mkdtemp(dir) != NULL);
	char path[sizeof dir + 32];
	snprintf(path, sizeof path, "%s/goroutine.pb.gz", dir);
	FILE *f = fopen(path, "wb");
	TU_ASSERT(f != NULL);
	TU_ASSERT_EQ(fwrite(b.data, 1, b.len, f), b.len);
	TU_ASSERT_EQ(fclose(f), 0);
	tt__buf_free(&b);

	/* -raw: the tables, with file:line per frame. */
	char *raw = pprof_run("-raw", path);
	TU_ASSERT_CONTAINS(raw, "PeriodType: goroutine count");
	TU_ASSERT_CONTAINS(raw, "Period: 1");
	TU_ASSERT_CONTAINS(raw, "goroutine/count");
	TU_ASSERT_CONTAINS(raw, "          8: ");
	TU_ASSERT_CONTAINS(raw, "name:[shard]");
	TU_ASSERT_CONTAINS(raw, "tt_chan_recv src/chan/chan.c:120");
	TU_ASSERT_CONTAINS(raw, "worker tests/work.c:11");
	TU_ASSERT_CONTAINS(raw, "worker tests/work.c:12");
	TU_ASSERT_CONTAINS(raw, "helper a.c:7");
	TU_ASSERT_CONTAINS(raw, "helper b.c:9");
	TU_ASSERT_CONTAINS(raw, "yielder tests/work.c:50");
	/* The inlined frame and its caller: two lines of one location. */
	TU_ASSERT_CONTAINS(raw, "inner_helper tests/inl.h:5 s=0\n"
				"             outer_fn tests/work.c:40");
	TU_ASSERT_CONTAINS(raw, "[FN]");
	free(raw);

	/* -top: 14 goroutines, 12 parked in tt_chan_recv. */
	char *top = pprof_run("-top", path);
	TU_ASSERT_CONTAINS(top, "Type: goroutine");
	TU_ASSERT_CONTAINS(top, "Showing nodes accounting for 14, 100% of 14 "
				"total");
	TU_ASSERT_CONTAINS(top, "        12 85.71% 85.71%         13 92.86%  "
				"tt_chan_recv");
	TU_ASSERT_CONTAINS(top, "yielder");
	TU_ASSERT_CONTAINS(top, "outer_fn");
	free(top);

	/* -traces: each stack with its count. */
	char *tr = pprof_run("-traces", path);
	TU_ASSERT_CONTAINS(tr, "Type: goroutine");
	TU_ASSERT_CONTAINS(tr, "         8   tt_chan_recv\n"
			       "             worker\n"
			       "             spawner\n");
	TU_ASSERT_CONTAINS(tr, "         1   tt_chan_recv\n"
			       "             inner_helper (inline)\n"
			       "             outer_fn\n"
			       "             helper\n"
			       "             helper\n"
			       "             worker\n");
	TU_ASSERT_CONTAINS(tr, "         1   yielder\n");
	TU_ASSERT_CONTAINS(tr, "         1   worker\n"
			       "             chan_park (inline)\n"
			       "             tt_chan_recv\n"
			       "             spawner\n");
	TU_ASSERT_CONTAINS(tr, "      name:  shard\n"
			       "         2   tt_chan_recv\n");
	free(tr);

	TU_ASSERT_EQ(unlink(path), 0);
	TU_ASSERT_EQ(rmdir(dir), 0);
}

/* ---- (c) end to end: parked goroutines, tt_profile_write ---------------- */

typedef struct e2e {
	tt_chan *recv_on; /* receivers park here until it is closed */
	tt_chan *send_on; /* senders park here until the test receives */
	tt_chan *done;
} e2e;

__attribute__((noinline)) static void e2e_receiver(void *arg)
{
	e2e *e = arg;
	int v;
	bool ok = true;
	TU_ASSERT_OK(tt_chan_recv(e->recv_on, &v, sizeof v, &ok));
	TU_ASSERT(!ok);
	tu_done(e->done);
}

__attribute__((noinline)) static void e2e_sender(void *arg)
{
	e2e *e = arg;
	int v = 7;
	TU_ASSERT_OK(tt_chan_send(e->send_on, &v, sizeof v));
	tu_done(e->done);
}

static char *read_file(const char *path, size_t *len)
{
	FILE *f = fopen(path, "rb");
	TU_ASSERT(f != NULL);
	size_t cap = 4096, n = 0, got;
	char *p = malloc(cap);
	TU_ASSERT(p != NULL);
	while ((got = fread(p + n, 1, cap - n, f)) > 0) {
		n += got;
		if (n == cap) {
			cap *= 2;
			p = realloc(p, cap);
			TU_ASSERT(p != NULL);
		}
	}
	TU_ASSERT_EQ(fclose(f), 0);
	*len = n;
	return p;
}

/* The sample with `count` goroutines whose stack has `fn`, or NULL. */
static const dsample *sample_with(const dprof *d, uint64_t count,
				  const char *fn, char *text, size_t n)
{
	char want[128];
	snprintf(want, sizeof want, ";%s:", fn);
	for (size_t i = 0; i < d->nsamples; i++) {
		text[0] = ';';
		stack_text(d, &d->samples[i], text + 1, n - 1);
		if (d->samples[i].values[0] == count && strstr(text, want))
			return &d->samples[i];
	}
	return NULL;
}

/* The block go tool pprof -traces prints for sample s: the count, then
 * one function a line, inlined ones marked. */
static void traces_block(const dprof *d, const dsample *s, char *out, size_t n)
{
	size_t len = (size_t)snprintf(out, n, "%10llu   ",
				      (unsigned long long)s->values[0]);
	for (int i = 0; i < s->nlocs; i++) {
		const dloc *l = loc_by_id(d, s->locs[i]);
		for (int k = 0; k < l->nlines; k++) {
			const dfunc *f = func_by_id(d, l->lines[k].func);
			len += (size_t)snprintf(
				out + len, n - len, "%s%s%s\n",
				i || k ? "             " : "", str(d, f->name),
				k + 1 < l->nlines ? " (inline)" : "");
			TU_ASSERT_LT(len, n);
		}
	}
}

/* The location of s where `fn` is the physical frame; every frame above
 * it must be tether's public API (tt_*): its internals are hidden. */
static const dloc *caller_loc(const dprof *d, const dsample *s, const char *fn)
{
	for (int i = 0; i < s->nlocs; i++) {
		const dloc *l = loc_by_id(d, s->locs[i]);
		TU_ASSERT_GT(l->nlines, 0);
		for (int k = 0; k < l->nlines; k++) {
			const char *name =
				str(d, func_by_id(d, l->lines[k].func)->name);
			if (k == l->nlines - 1 && strcmp(name, fn) == 0)
				return l;
			TU_ASSERT_MSG(strncmp(name, "tt_", 3) == 0 &&
					      strncmp(name, "tt__", 4) != 0,
				      "%s above %s", name, fn);
		}
	}
	tu_fail_at(__FILE__, __LINE__, "no %s in the sample", fn);
}

static void test_end_to_end(void **state)
{
	(void)state;
	enum {
		NRECV = 10,
		NSEND = 4
	};
	e2e e = {tu_chan(sizeof(int), 0), tu_chan(sizeof(int), 0),
		 tu_chan(0, NRECV + NSEND)};
	for (int i = 0; i < NRECV; i++)
		tu_go(e2e_receiver, &e);
	for (int i = 0; i < NSEND; i++)
		tu_go(e2e_sender, &e);
	tu_pause(); /* every one of them reaches its channel */

	char dir[] = "/tmp/tether-pprof-XXXXXX";
	TU_ASSERT(mkdtemp(dir) != NULL);
	char path[sizeof dir + 32];
	snprintf(path, sizeof path, "%s/goroutine.pb.gz", dir);
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	TU_ASSERT_GE(fd, 0);
	TU_ASSERT_OK(tt_profile_write_fd("goroutine", 0, fd));
	TU_ASSERT_EQ(close(fd), 0);

	/* Let them all go before anything can fail. */
	TU_ASSERT_OK(tt_chan_close(e.recv_on));
	for (int i = 0; i < NSEND; i++) {
		int v;
		bool ok;
		TU_ASSERT_OK(tt_chan_recv(e.send_on, &v, sizeof v, &ok));
	}
	TU_WAIT_DONE(e.done, NRECV + NSEND, 5 * TT_SECOND);

	size_t len;
	char *gz = read_file(path, &len);
	uint8_t *raw;
	size_t n = gunzip(gz, len, &raw);
	free(gz);
	dprof d;
	decode(raw, n, &d);
	free(raw);
	check_well_formed(&d);

	/* The receivers: one sample of 10, parked in tether's channel
	 * receive called from e2e_receiver (tether's own frames above it
	 * hidden); e2e_receiver's file is this one. */
	char text[2048];
	const dsample *r =
		sample_with(&d, NRECV, "e2e_receiver", text, sizeof text);
	TU_ASSERT_MSG(r != NULL, "no sample of %d in e2e_receiver", NRECV);
	const dloc *l = caller_loc(&d, r, "e2e_receiver");
	const dfunc *f = func_by_id(&d, l->lines[l->nlines - 1].func);
	TU_ASSERT_CONTAINS(str(&d, f->file), "test_pprof.c");
	TU_ASSERT_GT(l->lines[l->nlines - 1].line, 0);
	TU_ASSERT_NE(l->mapping, 0);
	TU_ASSERT(d.maps[l->mapping - 1].has_functions);

	const dsample *sn =
		sample_with(&d, NSEND, "e2e_sender", text, sizeof text);
	TU_ASSERT_MSG(sn != NULL, "no sample of %d in e2e_sender", NSEND);
	caller_loc(&d, sn, "e2e_sender");
	/* And the goroutine that wrote the profile. */
	TU_ASSERT(sample_with(&d, 1, "test_end_to_end", text, sizeof text));
	char want_r[2048], want_s[2048];
	traces_block(&d, r, want_r, sizeof want_r);
	traces_block(&d, sn, want_s, sizeof want_s);
	dprof_free(&d);

	if (tu_emulated() || !have_go()) {
		print_message("go tool pprof not run (%s)\n",
			      tu_emulated() ? "emulator" : "no go");
	} else {
		char *tr = pprof_run("-traces", path);
		TU_ASSERT_CONTAINS(tr, "Type: goroutine");
		TU_ASSERT_CONTAINS(tr, want_r);
		TU_ASSERT_CONTAINS(tr, want_s);
		TU_ASSERT_CONTAINS(tr, "e2e_receiver\n");
		free(tr);
		char *raw_out = pprof_run("-raw", path);
		TU_ASSERT_CONTAINS(raw_out, "e2e_receiver ");
		TU_ASSERT_CONTAINS(raw_out, "test_pprof.c:");
		free(raw_out);
	}
	TU_ASSERT_EQ(unlink(path), 0);
	TU_ASSERT_EQ(rmdir(dir), 0);
	tt_chan_release(e.recv_on);
	tt_chan_release(e.send_on);
	tt_chan_release(e.done);
}

int main(int argc, char **argv)
{
	tu_child_dispatch(argc, argv, NULL, 0);
	const struct CMUnitTest tests[] = {
		TU_TEST(test_tables),     TU_TEST(test_symbolized_mapping),
		TU_TEST(test_keep),       TU_TEST(test_leak_profile),
		TU_TEST(test_empty),      TU_TEST(test_bad_args),
		TU_TEST(test_many),       TU_TEST(test_go_tool_pprof),
		TU_TEST(test_end_to_end),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
