/* tether — symbols for PCs: function, entry, file:line and inlined frames.
 *
 * elfutils' libdwfl reports the process's own modules (the program and
 * every shared object, PIE or not) from /proc/self/maps; libdw answers
 * with the DWARF scopes at a PC, innermost first, so an inlined call shows
 * as its own frame with the call site's line in the frame that contains
 * it, as Go prints inlined frames.
 *
 * Each distinct PC is looked up once: the result, with the text the dumps
 * print for it, is cached for the life of the process. Readers find
 * entries without a lock (an open-addressing table published with release
 * stores; a grown table replaces the old one, which stays allocated for
 * readers still in it); misses take one lock, as libdwfl is not
 * thread-safe. */
#include <elfutils/libdw.h>
#include <elfutils/libdwfl.h>
#include <dwarf.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "trace/trace.h"

typedef struct slot {
	_Atomic uintptr_t key; /* pc << 1 | return_addr; 0 = empty */
	const tt__sym *sym;
} slot;

typedef struct sym_table {
	size_t mask, n;
	slot *v;
} sym_table;

static _Atomic(sym_table *) syms;
static pthread_mutex_t syms_lock = PTHREAD_MUTEX_INITIALIZER;
static Dwfl *dwfl;
static bool dwfl_failed;

/* Source files of tether itself: this file is src/trace/symbolize.c. */
static const char *src_dir;
static size_t src_dir_len;

static inline size_t hash_key(uintptr_t k)
{
	uint64_t h = (uint64_t)k * UINT64_C(0x9e3779b97f4a7c15);
	return (size_t)(h >> 20);
}

static const tt__sym *find(const sym_table *t, uintptr_t key)
{
	if (!t)
		return NULL;
	for (size_t i = hash_key(key) & t->mask;; i = (i + 1) & t->mask) {
		uintptr_t k = atomic_load_explicit(&t->v[i].key,
						   memory_order_acquire);
		if (k == key)
			return t->v[i].sym;
		if (k == 0)
			return NULL;
	}
}

static void put(sym_table *t, uintptr_t key, const tt__sym *sym)
{
	size_t i = hash_key(key) & t->mask;
	while (atomic_load_explicit(&t->v[i].key, memory_order_relaxed))
		i = (i + 1) & t->mask;
	t->v[i].sym = sym;
	atomic_store_explicit(&t->v[i].key, key, memory_order_release);
	t->n++;
}

static const Dwfl_Callbacks callbacks = {
	.find_elf = dwfl_linux_proc_find_elf,
	.find_debuginfo = dwfl_standard_find_debuginfo,
};

static void report_modules(void)
{
	if (!dwfl) {
		dwfl = dwfl_begin(&callbacks);
		if (!dwfl) {
			dwfl_failed = true;
			return;
		}
	}
	dwfl_report_begin(dwfl);
	dwfl_linux_proc_report(dwfl, getpid());
	dwfl_report_end(dwfl, NULL, NULL);
}

/* ---- building one record ------------------------------------------------------ */

/* Strings live as long as the process: names and files repeat across PCs,
 * so they are interned in a small table. */
typedef struct istr {
	struct istr *next;
	char s[];
} istr;
static istr *interned[1024];

static const char *intern(const char *s)
{
	if (!s)
		return NULL;
	size_t h = 5381;
	for (const char *p = s; *p; p++)
		h = h * 33 + (unsigned char)*p;
	istr **b = &interned[h & 1023];
	for (istr *e = *b; e; e = e->next)
		if (strcmp(e->s, s) == 0)
			return e->s;
	size_t n = strlen(s);
	istr *e = malloc(sizeof *e + n + 1);
	if (!e)
		return NULL;
	memcpy(e->s, s, n + 1);
	e->next = *b;
	*b = e;
	return e->s;
}

static bool is_internal(const char *func, const char *file)
{
	if (func && strncmp(func, "tt__", 4) == 0)
		return true;
	if (file && src_dir && strncmp(file, src_dir, src_dir_len) == 0)
		return !(func && strncmp(func, "tt_", 3) == 0);
	return false;
}

static const char *die_name(Dwarf_Die *die)
{
	Dwarf_Attribute a;
	const char *n = NULL;
	if (dwarf_attr_integrate(die, DW_AT_name, &a))
		n = dwarf_formstring(&a);
	return n;
}

#define MAXF 32

typedef struct rawframe {
	const char *func, *file;
	int line;
} rawframe;

/* The frames at address a (the PC, or the call for a return address). */
static int lookup(Dwfl_Module *mod, Dwarf_Addr a, rawframe *out,
		  const char **symname, uintptr_t *entry)
{
	GElf_Off off = 0;
	GElf_Sym sym;
	*symname = dwfl_module_addrinfo(mod, a, &off, &sym, NULL, NULL, NULL);
	*entry = *symname ? (uintptr_t)(a - off) : 0;

	const char *file = NULL;
	int line = 0;
	Dwfl_Line *dl = dwfl_module_getsrc(mod, a);
	if (dl)
		file = dwfl_lineinfo(dl, NULL, &line, NULL, NULL, NULL);

	Dwarf_Addr bias = 0;
	Dwarf_Die *cu = dwfl_module_addrdie(mod, a, &bias);
	Dwarf_Die *scopes = NULL;
	int ns = cu ? dwarf_getscopes(cu, a - bias, &scopes) : 0;
	Dwarf_Files *files = NULL;
	size_t nfiles = 0;
	if (ns > 0 && dwarf_getsrcfiles(cu, &files, &nfiles) != 0)
		files = NULL;
	int n = 0;
	/* The innermost function scope at a; the containing frames come
	 * from the parents of each inlined instance's DIE (dwarf_getscopes
	 * itself goes on into the abstract origin). */
	Dwarf_Die cur;
	bool have = false;
	for (int i = 0; i < ns; i++) {
		int tag = dwarf_tag(&scopes[i]);
		if (tag == DW_TAG_inlined_subroutine ||
		    tag == DW_TAG_subprogram) {
			cur = scopes[i];
			have = true;
			break;
		}
	}
	while (have && n < MAXF) {
		int tag = dwarf_tag(&cur);
		out[n].func = die_name(&cur);
		out[n].file = file;
		out[n].line = line;
		n++;
		if (tag != DW_TAG_inlined_subroutine)
			break;
		/* The next frame out is at this inlined call's site. */
		Dwarf_Attribute at;
		Dwarf_Word w;
		file = NULL;
		line = 0;
		if (dwarf_attr(&cur, DW_AT_call_file, &at) &&
		    dwarf_formudata(&at, &w) == 0 && files && w < nfiles)
			file = dwarf_filesrc(files, w, NULL, NULL);
		if (dwarf_attr(&cur, DW_AT_call_line, &at) &&
		    dwarf_formudata(&at, &w) == 0)
			line = (int)w;
		Dwarf_Die *up = NULL;
		int nu = dwarf_getscopes_die(&cur, &up);
		have = false;
		for (int i = 1; i < nu; i++) {
			int t = dwarf_tag(&up[i]);
			if (t == DW_TAG_inlined_subroutine ||
			    t == DW_TAG_subprogram) {
				cur = up[i];
				have = true;
				break;
			}
		}
		free(up);
	}
	free(scopes);
	if (n == 0) {
		out[0].func = *symname;
		out[0].file = file;
		out[0].line = line;
		n = 1;
	} else if (!out[n - 1].func) {
		out[n - 1].func = *symname;
	}
	return n;
}

static void append(char **p, size_t *len, size_t *cap, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));

static void append(char **p, size_t *len, size_t *cap, const char *fmt, ...)
{
	for (;;) {
		va_list ap;
		va_start(ap, fmt);
		size_t room = *cap - *len;
		int k = vsnprintf(*p ? *p + *len : NULL, *p ? room : 0, fmt,
				  ap);
		va_end(ap);
		if (k < 0)
			return;
		if (*p && (size_t)k < room) {
			*len += (size_t)k;
			return;
		}
		size_t nc = (*cap ? *cap * 2 : 256) + (size_t)k;
		char *np = realloc(*p, nc);
		if (!np)
			return;
		*p = np;
		*cap = nc;
	}
}

static tt__sym *build(uintptr_t pc, bool ret)
{
	rawframe rf[MAXF];
	const char *symname = NULL;
	uintptr_t entry = 0, bias = 0;
	const char *module = NULL;
	Dwarf_Addr a = ret ? pc - 1 : pc;
	int n = 0;
	if (!dwfl && !dwfl_failed)
		report_modules();
	Dwfl_Module *mod = dwfl ? dwfl_addrmodule(dwfl, a) : NULL;
	if (dwfl && !mod) {
		/* A library loaded since the last look. */
		report_modules();
		mod = dwfl_addrmodule(dwfl, a);
	}
	if (mod) {
		Dwarf_Addr start = 0;
		module = dwfl_module_info(mod, NULL, &start, NULL, NULL, NULL,
					  NULL, NULL);
		Dwarf_Addr b = 0;
		if (dwfl_module_getelf(mod, &b))
			bias = (uintptr_t)b;
		n = lookup(mod, a, rf, &symname, &entry);
	}
	if (n == 0) {
		rf[0].func = NULL;
		rf[0].file = NULL;
		rf[0].line = 0;
		n = 1;
	}

	tt__sym *s = calloc(1, sizeof *s);
	tt__frame *fr = calloc((size_t)n, sizeof *fr);
	uint32_t *d2_off = calloc((size_t)n + 1, sizeof *d2_off);
	const char **d1 = calloc((size_t)n, sizeof *d1);
	uint16_t *d1_len = calloc((size_t)n, sizeof *d1_len);
	if (!s || !fr || !d2_off || !d1 || !d1_len) {
		free(s);
		free(fr);
		free(d2_off);
		free(d1);
		free(d1_len);
		return NULL;
	}
	s->pc = pc;
	s->return_addr = ret;
	s->nframes = n;
	s->frames = fr;
	s->all_internal = true;
	module = intern(module);
	char *d2 = NULL;
	size_t d2_len = 0, d2_cap = 0;
	for (int i = 0; i < n; i++) {
		const char *func = intern(rf[i].func ? rf[i].func : "?");
		fr[i].func = func ? func : "?";
		fr[i].file = intern(rf[i].file);
		fr[i].line = rf[i].line;
		fr[i].module = module;
		fr[i].pc = pc;
		fr[i].entry = entry;
		fr[i].module_base = bias;
		fr[i].inlined = i + 1 < n;
		fr[i].internal = is_internal(fr[i].func, fr[i].file);
		if (!fr[i].internal)
			s->all_internal = false;

		d2_off[i] = (uint32_t)d2_len;
		append(&d2, &d2_len, &d2_cap, "%s(...)\n\t%s:%d", fr[i].func,
		       fr[i].file ? fr[i].file : "?", fr[i].line);
		if (i + 1 == n && entry && pc > entry)
			append(&d2, &d2_len, &d2_cap, " +0x%" PRIxPTR,
			       pc - entry);
		append(&d2, &d2_len, &d2_cap, "\n");

		char cell[512];
		int k = snprintf(cell, sizeof cell, "%s+0x%" PRIxPTR,
				 fr[i].func,
				 entry ? (uintptr_t)a - entry : (uintptr_t)0);
		if (k < 0)
			k = 0;
		if ((size_t)k >= sizeof cell)
			k = sizeof cell - 1;
		d1[i] = strdup(cell);
		d1_len[i] = d1[i] ? (uint16_t)k : 0;
		if (!d1[i])
			d1[i] = "";
	}
	d2_off[n] = (uint32_t)d2_len;

	char *cb = NULL;
	size_t cb_len = 0, cb_cap = 0;
	append(&cb, &cb_len, &cb_cap, "created by %s in goroutine ", fr[0].func);
	size_t head_len = cb_len;
	append(&cb, &cb_len, &cb_cap, "\n\t%s:%d",
	       fr[0].file ? fr[0].file : "?", fr[0].line);
	if (entry && pc > entry)
		append(&cb, &cb_len, &cb_cap, " +0x%" PRIxPTR, pc - entry);
	append(&cb, &cb_len, &cb_cap, "\n");
	if (cb) {
		s->cb_head = cb;
		s->cb_head_len = (uint32_t)head_len;
		s->cb_tail = cb + head_len;
		s->cb_tail_len = (uint32_t)(cb_len - head_len);
	} else {
		s->cb_head = s->cb_tail = "";
	}
	s->d2 = d2 ? d2 : "";
	if (!d2)
		memset(d2_off, 0, ((size_t)n + 1) * sizeof *d2_off);
	s->d2_off = d2_off;
	s->d1 = d1;
	s->d1_len = d1_len;
	s->d1_pc = (uintptr_t)a;
	return s;
}

const tt__sym *tt__sym_get(uintptr_t pc, bool return_addr)
{
	uintptr_t key = (pc << 1) | (return_addr ? 1 : 0);
	const tt__sym *r =
		find(atomic_load_explicit(&syms, memory_order_acquire), key);
	if (TT_LIKELY(r != NULL))
		return r;
	pthread_mutex_lock(&syms_lock);
	if (!src_dir) {
		static char dir[1024];
		const char *f = __FILE__;
		const char *tail = strstr(f, "trace/symbolize.c");
		size_t n = tail ? (size_t)(tail - f) : 0;
		if (n > 0 && n < sizeof dir) {
			memcpy(dir, f, n);
			dir[n] = '\0';
			src_dir = dir;
			src_dir_len = n;
		}
	}
	sym_table *t = atomic_load_explicit(&syms, memory_order_relaxed);
	r = find(t, key);
	if (!r) {
		if (!t || (t->n + 1) * 2 > t->mask + 1) {
			size_t cap = t ? (t->mask + 1) * 2 : 1024;
			sym_table *nt = malloc(sizeof *nt);
			slot *v = calloc(cap, sizeof *v);
			if (!nt || !v) {
				free(nt);
				free(v);
				pthread_mutex_unlock(&syms_lock);
				return NULL;
			}
			nt->mask = cap - 1;
			nt->n = 0;
			nt->v = v;
			if (t)
				for (size_t i = 0; i <= t->mask; i++) {
					uintptr_t k = atomic_load_explicit(
						&t->v[i].key,
						memory_order_relaxed);
					if (k)
						put(nt, k, t->v[i].sym);
				}
			atomic_store_explicit(&syms, nt, memory_order_release);
			t = nt;
		}
		tt__sym *s = build(pc, return_addr);
		if (s)
			put(t, key, s);
		r = s;
	}
	pthread_mutex_unlock(&syms_lock);
	return r;
}

int tt__symbolize(uintptr_t pc, bool return_addr, tt__frame *out, int max)
{
	if (max <= 0)
		return 0;
	const tt__sym *s = tt__sym_get(pc, return_addr);
	if (!s) {
		memset(out, 0, sizeof *out);
		out->func = "?";
		out->pc = pc;
		return 1;
	}
	int n = s->nframes < max ? s->nframes : max;
	memcpy(out, s->frames, (size_t)n * sizeof *out);
	return n;
}
