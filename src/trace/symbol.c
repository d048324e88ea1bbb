/* tether — symbols for PCs, from DWARF (elfutils' libdw).
 *
 * One Dwfl session describes this process's mappings (the program and
 * every shared object, read from /proc/self/maps); each PC is resolved
 * once — function and entry from the ELF symbol table, file:line from the
 * line table, inlined calls from the DIE scopes at that address — and kept
 * in a hash table for the life of the process, so a profile of a million
 * goroutines looks up each distinct PC once. A PC outside every known
 * object re-reads the mappings once (a library loaded since) before it is
 * called unknown.
 *
 * libdw is not thread-safe; one mutex covers the session and the table.
 * Strings handed out are never freed. */
#include <dwarf.h>
#include <elfutils/libdw.h>
#include <elfutils/libdwfl.h>
#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "trace/trace.h"

#define MAX_INLINE 16

typedef struct entry {
	uintptr_t key; /* pc << 1 | return_addr */
	int n;
	tt__frame *frames;
} entry;

static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static Dwfl *dwfl;
static bool dwfl_failed;
static entry *table;
static size_t table_cap, table_len;
static unsigned reloads;

static const Dwfl_Callbacks callbacks = {
	.find_elf = dwfl_linux_proc_find_elf,
	.find_debuginfo = dwfl_standard_find_debuginfo,
};

static void session_open(void)
{
	if (dwfl) {
		dwfl_end(dwfl);
		dwfl = NULL;
	}
	dwfl = dwfl_begin(&callbacks);
	if (dwfl == NULL) {
		dwfl_failed = true;
		return;
	}
	dwfl_report_begin(dwfl);
	if (dwfl_linux_proc_report(dwfl, getpid()) != 0 ||
	    dwfl_report_end(dwfl, NULL, NULL) != 0) {
		dwfl_end(dwfl);
		dwfl = NULL;
		dwfl_failed = true;
	}
}

/* Interned copies: names and files repeat across many PCs. A small
 * open-addressing set keeps one copy of each. */
static const char **strs;
static size_t strs_cap, strs_len;

static uint64_t hash_str(const char *s)
{
	uint64_t h = 1469598103934665603ull;
	for (; *s; s++)
		h = (h ^ (unsigned char)*s) * 1099511628211ull;
	return h;
}

static const char *intern(const char *s)
{
	if (s == NULL)
		return NULL;
	if (strs_len * 2 >= strs_cap) {
		size_t ncap = strs_cap ? strs_cap * 2 : 1024;
		const char **n = calloc(ncap, sizeof *n);
		if (n == NULL)
			return strdup(s);
		for (size_t i = 0; i < strs_cap; i++) {
			if (!strs[i])
				continue;
			size_t j = hash_str(strs[i]) & (ncap - 1);
			while (n[j])
				j = (j + 1) & (ncap - 1);
			n[j] = strs[i];
		}
		free(strs);
		strs = n;
		strs_cap = ncap;
	}
	size_t j = hash_str(s) & (strs_cap - 1);
	while (strs[j]) {
		if (strcmp(strs[j], s) == 0)
			return strs[j];
		j = (j + 1) & (strs_cap - 1);
	}
	char *c = strdup(s);
	if (c == NULL)
		return "?";
	strs[j] = c;
	strs_len++;
	return c;
}

static const char *die_name(Dwarf_Die *die)
{
	Dwarf_Attribute a;
	if (dwarf_attr_integrate(die, DW_AT_name, &a))
		return dwarf_formstring(&a);
	return NULL;
}

static Dwarf_Die *cu_by_ranges(Dwfl_Module *mod, uintptr_t addr,
			       Dwarf_Addr *bias)
{
	Dwarf_Die *cu = NULL;
	while ((cu = dwfl_module_nextcu(mod, cu, bias)) != NULL)
		if (dwarf_haspc(cu, addr - *bias) > 0)
			return cu;
	return NULL;
}

/* The name of the subprogram of cu whose code holds a, looking through
 * namespaces and classes. */
static const char *defining_name(Dwarf_Die *cu, Dwarf_Addr a)
{
	Dwarf_Die stack[8];
	int depth = 0;
	if (dwarf_child(cu, &stack[0]) != 0)
		return NULL;
	for (;;) {
		Dwarf_Die *d = &stack[depth];
		int tag = dwarf_tag(d);
		if (tag == DW_TAG_subprogram && dwarf_haspc(d, a) > 0)
			return die_name(d);
		if ((tag == DW_TAG_namespace || tag == DW_TAG_class_type ||
		     tag == DW_TAG_structure_type) &&
		    depth + 1 < 8 && dwarf_child(d, &stack[depth + 1]) == 0) {
			depth++;
			continue;
		}
		while (dwarf_siblingof(&stack[depth], &stack[depth]) != 0) {
			if (depth == 0)
				return NULL;
			depth--;
		}
	}
}

/* The DIE a concrete instance (inlined or out of line) was made from, or
 * the DIE itself: what identifies the source function. */
static Dwarf_Off origin_of(Dwarf_Die *d)
{
	Dwarf_Attribute a;
	Dwarf_Die o;
	if (dwarf_attr(d, DW_AT_abstract_origin, &a) &&
	    dwarf_formref_die(&a, &o))
		return dwarf_dieoffset(&o);
	return dwarf_dieoffset(d);
}

/* Whether inlined instance scopes[i] is of the same function as the
 * frame that contains it (the next inlined instance or the subprogram
 * outward). GCC emits these when it splits a function and inlines the
 * split part back into its own out-of-line copy: one source frame, not
 * two. */
static bool self_inlined(Dwarf_Die *scopes, int ns, int i)
{
	for (int j = i + 1; j < ns; j++) {
		int tag = dwarf_tag(&scopes[j]);
		if (tag == DW_TAG_inlined_subroutine ||
		    tag == DW_TAG_subprogram)
			return origin_of(&scopes[j]) == origin_of(&scopes[i]);
	}
	return false;
}

/* Resolve addr (already pc - 1 for a return address) into out[]. */
static int resolve(uintptr_t pc, uintptr_t addr, tt__frame *out, int max)
{
	tt__frame base = {.func = "?", .pc = pc};
	Dwfl_Module *mod = dwfl ? dwfl_addrmodule(dwfl, addr) : NULL;
	if (mod == NULL && !dwfl_failed && reloads < 8) {
		reloads++;
		session_open();
		mod = dwfl ? dwfl_addrmodule(dwfl, addr) : NULL;
	}
	if (mod == NULL) {
		out[0] = base;
		return 1;
	}
	Dwarf_Addr start = 0;
	const char *mname = dwfl_module_info(mod, NULL, &start, NULL, NULL,
					     NULL, NULL, NULL);
	base.module = intern(mname);
	base.module_base = (uintptr_t)start;
	GElf_Off off = 0;
	GElf_Sym sym;
	const char *fname = dwfl_module_addrinfo(mod, addr, &off, &sym, NULL,
						 NULL, NULL);
	if (fname) {
		/* GCC's clones (f.constprop.0, f.isra.0, f.part.0, f.cold)
		 * print as the function they were made from, and versioned
		 * symbols (f@@GLIBC_2.34) as f: neither '.' nor '@' can
		 * appear in a C name or a mangled C++ one. */
		const char *dot = strpbrk(fname, ".@");
		if (dot && dot != fname) {
			char tmp[512];
			size_t k = (size_t)(dot - fname);
			if (k >= sizeof tmp)
				k = sizeof tmp - 1;
			memcpy(tmp, fname, k);
			tmp[k] = 0;
			base.func = intern(tmp);
		} else {
			base.func = intern(fname);
		}
		base.entry = addr - off;
	}
	const char *file = NULL;
	int line = 0;
	Dwfl_Line *ln = dwfl_module_getsrc(mod, addr);
	if (ln)
		file = dwfl_lineinfo(ln, NULL, &line, NULL, NULL, NULL);
	Dwarf_Addr bias = 0;
	Dwarf_Die *cu = dwfl_module_addrdie(mod, addr, &bias);
	if (file == NULL) {
		/* Objects without .debug_aranges for every unit (clang emits
		 * none by default) leave libdwfl without the line: ask the
		 * unit itself, or find the unit by its ranges. */
		Dwarf_Line *dl = cu ? dwarf_getsrc_die(cu, addr - bias) : NULL;
		if (dl == NULL) {
			Dwarf_Addr b2 = 0;
			Dwarf_Die *c2 = cu_by_ranges(mod, addr, &b2);
			dl = c2 ? dwarf_getsrc_die(c2, addr - b2) : NULL;
			if (c2) {
				cu = c2;
				bias = b2;
			}
		}
		if (dl) {
			file = dwarf_linesrc(dl, NULL, NULL);
			dwarf_lineno(dl, &line);
		}
	}

	/* Inlined calls: the scopes at addr, innermost first, up to the
	 * physical function. Each inlined_subroutine is a frame of its own
	 * at (file, line); its call site is the next frame's position.
	 * dwarf_getscopes goes from the innermost inlined instance to its
	 * abstract origin's scopes, which skips the instances it is nested
	 * in; the chain of DIEs that physically contain the innermost
	 * instance (dwarf_getscopes_die) has every level. */
	int n = 0;
	Dwarf_Die *scopes = NULL;
	int ns = cu ? dwarf_getscopes(cu, addr - bias, &scopes) : 0;
	for (int i = 0; i < ns; i++) {
		int tag = dwarf_tag(&scopes[i]);
		if (tag == DW_TAG_subprogram)
			break;
		if (tag != DW_TAG_inlined_subroutine)
			continue;
		Dwarf_Die *chain = NULL;
		int nc = dwarf_getscopes_die(&scopes[i], &chain);
		if (nc > 0) {
			free(scopes);
			scopes = chain;
			ns = nc;
		}
		break;
	}
	Dwarf_Files *files = NULL;
	size_t nfiles = 0;
	if (ns > 0 && dwarf_getsrcfiles(cu, &files, &nfiles) != 0)
		files = NULL;
	for (int i = 0; i < ns && n < max - 1; i++) {
		int tag = dwarf_tag(&scopes[i]);
		if (tag == DW_TAG_subprogram)
			break;
		if (tag != DW_TAG_inlined_subroutine)
			continue;
		/* One frame: the position stays the inner one. */
		if (self_inlined(scopes, ns, i))
			continue;
		tt__frame f = base;
		const char *nm = die_name(&scopes[i]);
		f.func = nm ? intern(nm) : "?";
		f.file = intern(file);
		f.line = line;
		f.inlined = true;
		out[n++] = f;
		/* Where it was called from: the position of the frame
		 * that follows. */
		Dwarf_Attribute a;
		Dwarf_Word w;
		file = NULL;
		line = 0;
		if (dwarf_attr(&scopes[i], DW_AT_call_line, &a) &&
		    dwarf_formudata(&a, &w) == 0)
			line = (int)w;
		if (files && dwarf_attr(&scopes[i], DW_AT_call_file, &a) &&
		    dwarf_formudata(&a, &w) == 0 && w < nfiles)
			file = dwarf_filesrc(files, w, NULL, NULL);
	}
	free(scopes);
	tt__frame f = base;
	if (cu && strncmp(f.func, "_Z", 2) == 0) {
		/* A mangled C++ name: the source name of the function that
		 * holds addr, from its out-of-line definition. */
		const char *nm = defining_name(cu, addr - bias);
		if (nm)
			f.func = intern(nm);
	}
	f.file = intern(file);
	f.line = line;
	out[n++] = f;
	return n;
}

#ifndef TT_SRC_DIR
#define TT_SRC_DIR ""
#endif

/* tether's own code (compiled from its src/, or a tt_ name when there is
 * no line information) that is not one of its public calls. */
static bool frame_internal(const tt__frame *f)
{
	bool ours = f->file && TT_SRC_DIR[0]
			    ? strncmp(f->file, TT_SRC_DIR,
				      sizeof TT_SRC_DIR - 1) == 0
			    : strncmp(f->func, "tt_", 3) == 0;
	bool public = strncmp(f->func, "tt_", 3) == 0 && f->func[3] != '_';
	return ours && !public;
}

static entry *lookup(uintptr_t key)
{
	if (table_cap == 0)
		return NULL;
	size_t i = (size_t)((key * 0x9e3779b97f4a7c15ull) >> 20) &
		   (table_cap - 1);
	while (table[i].frames) {
		if (table[i].key == key)
			return &table[i];
		i = (i + 1) & (table_cap - 1);
	}
	return &table[i];
}

static bool grow(void)
{
	size_t ncap = table_cap ? table_cap * 2 : 4096;
	entry *n = calloc(ncap, sizeof *n);
	if (n == NULL)
		return false;
	entry *old = table;
	size_t ocap = table_cap;
	table = n;
	table_cap = ncap;
	for (size_t i = 0; i < ocap; i++)
		if (old[i].frames)
			*lookup(old[i].key) = old[i];
	free(old);
	return true;
}

/* Set by the thread holding mu while it holds it. Written only by that
 * thread, read by its signal handlers. */
static _Thread_local volatile sig_atomic_t mu_held;

typedef struct resolve_call {
	uintptr_t pc, addr;
	tt__frame *out; /* MAX_INLINE frames */
	int n;
} resolve_call;

static void resolve_on_stack(void *p)
{
	resolve_call *c = p;
	if (dwfl == NULL && !dwfl_failed)
		session_open();
	c->n = resolve(c->pc, c->addr, c->out, MAX_INLINE);
}

static int symbolize(uintptr_t pc, bool return_addr, tt__frame *out, int max)
{
	if (max <= 0)
		return 0;
	if (mu_held) {
		/* A signal handler interrupted this thread inside the
		 * symbolizer: the lock is ours and the table may be half
		 * updated. A frame without a name rather than a deadlock. */
		out[0] = (tt__frame){.func = "?", .pc = pc};
		return 1;
	}
	uintptr_t key = (pc << 1) | (return_addr ? 1 : 0);
	pthread_mutex_lock(&mu);
	mu_held = true;
	entry *e = lookup(key);
	if (e == NULL || e->frames == NULL) {
		tt__frame tmp[MAX_INLINE];
		resolve_call rc = {.pc = pc,
				   .addr = return_addr && pc ? pc - 1 : pc,
				   .out = tmp};
		/* libdw's line tables take frames far larger than a
		 * goroutine's stack. */
		tt__on_runtime_stack(resolve_on_stack, &rc);
		int n = rc.n;
		for (int i = 0; i < n; i++)
			tmp[i].internal = frame_internal(&tmp[i]);
		tt__frame *keep = malloc((size_t)n * sizeof *keep);
		if ((table_len + 1) * 2 > table_cap && !grow())
			keep = (free(keep), NULL);
		if (keep == NULL) {
			mu_held = false;
			pthread_mutex_unlock(&mu);
			int m = n < max ? n : max;
			memcpy(out, tmp, (size_t)m * sizeof *out);
			return m;
		}
		memcpy(keep, tmp, (size_t)n * sizeof *keep);
		e = lookup(key);
		e->key = key;
		e->n = n;
		e->frames = keep;
		table_len++;
	}
	int m = e->n < max ? e->n : max;
	memcpy(out, e->frames, (size_t)m * sizeof *out);
	mu_held = false;
	pthread_mutex_unlock(&mu);
	return m;
}

int tt__symbolize(uintptr_t pc, bool return_addr, tt__frame *out, int max)
{
	/* Its table and libdw's allocations are the runtime's (TT_TSAN). */
	return TT_TSAN_QUIET(symbolize(pc, return_addr, out, max));
}

bool tt__symbolizer_held(void)
{
	return mu_held;
}
