/* tether tests — the trace layer: unwinding parked goroutines and
 * symbolizing their PCs.
 *
 * Goroutines park in every wait state; their stacks, taken from the
 * frame tt__switch saved, must lead from the wait (tether's own frames
 * hidden) through the test's function, with the right wait reason.
 * Unwinding goes through a shared library of this test tree and through a
 * file built with -O2 -fomit-frame-pointer, where an always_inline
 * function must show as a frame of its own, and lines are checked against
 * __LINE__. */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "testutil.h"
#include "trace_helpers.h"

#include "profile/profile.h"
#include "trace/trace.h"

#define SHORT (400 * TT_MILLISECOND)

/* Bumped after the call a frame is looked at for, so that the call is
 * not a tail call and its caller stays on the stack. Many goroutines bump
 * it with nothing ordering them: an atomic, not a race. */
static volatile int sink;
#define SINK() __atomic_fetch_add(&sink, 1, __ATOMIC_RELAXED)

/* ---- looking at snapshots ----------------------------------------------------- */

static const tt__gsnap *find_g(const tt__snapshot *s, int64_t id)
{
	for (size_t i = 0; i < s->n; i++)
		if (s->g[i].id == id)
			return &s->g[i];
	return NULL;
}

/* The frames a dump shows for g, flattened, innermost first. */
static int frames_of(const tt__gsnap *g, tt__frame *out, int max)
{
	int n = 0;
	for (uint32_t i = 0; i < g->npcs && n < max; i++) {
		tt__frame fr[16];
		int k = tt__symbolize(g->pcs[i], true, fr, 16);
		int f = 0;
		if (i == 0)
			while (f + 1 < k && fr[f].internal)
				f++;
		for (; f < k && n < max; f++)
			out[n++] = fr[f];
	}
	return n;
}

static int index_of(const tt__frame *fr, int n, const char *func)
{
	for (int i = 0; i < n; i++)
		if (strcmp(fr[i].func, func) == 0)
			return i;
	return -1;
}

static bool ends_with(const char *s, const char *tail)
{
	size_t a = s ? strlen(s) : 0, b = strlen(tail);
	return s && a >= b && strcmp(s + a - b, tail) == 0;
}

/* g is parked with `state`, and its stack shows only public tether calls
 * above `func`, which is followed by its caller `caller` (if given). */
static void check_parked(int64_t id, const char *state, const char *func,
			 const char *caller)
{
	tt__snapshot s;
	TU_ASSERT_OK(tt__snapshot_take(&s));
	const tt__gsnap *g = find_g(&s, id);
	TU_ASSERT_MSG(g != NULL, "goroutine %lld not in the snapshot",
		      (long long)id);
	TU_ASSERT_MSG(strcmp(tt__gsnap_state(g), state) == 0,
		      "goroutine %lld: state \"%s\", want \"%s\"",
		      (long long)id, tt__gsnap_state(g), state);
	TU_ASSERT(!g->current);
	tt__frame fr[64];
	int n = frames_of(g, fr, 64);
	int at = index_of(fr, n, func);
	if (at < 0) {
		for (int i = 0; i < n; i++)
			fprintf(stderr, "  frame %d: %s\n", i, fr[i].func);
		TU_ASSERT_MSG(false, "%s not on the stack of goroutine %lld",
			      func, (long long)id);
	}
	for (int i = 0; i < at; i++) {
		TU_ASSERT_MSG(!fr[i].internal &&
				      strncmp(fr[i].func, "tt_", 3) == 0 &&
				      strncmp(fr[i].func, "tt__", 4) != 0,
			      "frame %d above %s is %s", i, func, fr[i].func);
	}
	TU_ASSERT(ends_with(fr[at].file, "test_trace.c"));
	TU_ASSERT_GT(fr[at].line, 0);
	if (caller) {
		TU_ASSERT_MSG(at + 1 < n && strcmp(fr[at + 1].func, caller) == 0,
			      "%s is not called from %s", func, caller);
	}
	/* Nothing of tether below either: the entry is hidden. */
	TU_ASSERT(!fr[n - 1].internal);
	tt__snapshot_free(&s);
}

/* ---- every wait state ----------------------------------------------------------- */

static tt_chan *ch;

static void park_recv(void *arg)
{
	(void)arg;
	int v;
	TU_UNCHECKED(tt_chan_recv(ch, &v, sizeof v, NULL));
	SINK();
}

static void park_send(void *arg)
{
	(void)arg;
	int v = 1;
	TU_UNCHECKED(tt_chan_send(ch, &v, sizeof v));
	SINK();
}

static void park_select(void *arg)
{
	(void)arg;
	int v;
	tt_case cs[2] = { TT_CASE_RECV_INTO(ch, &v, NULL),
			  TT_CASE_RECV_INTO(ch, &v, NULL) };
	TU_UNCHECKED(tt_select(cs, 2, TT_FOREVER));
	SINK();
}

static void park_select_none(void *arg)
{
	(void)arg;
	TU_UNCHECKED(tt_select(NULL, 0, tt_deadline_in(SHORT)));
	SINK();
}

static void park_recv_nil(void *arg)
{
	(void)arg;
	int v;
	TU_UNCHECKED(tt_chan_recv_until(NULL, &v, sizeof v, NULL, tt_deadline_in(SHORT)));
	SINK();
}

static void park_send_nil(void *arg)
{
	(void)arg;
	int v = 0;
	TU_UNCHECKED(tt_chan_send_until(NULL, &v, sizeof v, tt_deadline_in(SHORT)));
	SINK();
}

static void park_sleep(void *arg)
{
	(void)arg;
	tt_sleep(SHORT);
	SINK();
}

static tt_waitgroup *wg;
static tt_mutex *mu;
static tt_rwmutex *rw;
static tt_cond *cv;
static int pipefd[2];

static void park_wg(void *arg)
{
	(void)arg;
	TU_UNCHECKED(tt_wg_wait(wg));
	SINK();
}

static void park_mutex(void *arg)
{
	(void)arg;
	tt_mutex_lock(mu);
	tt_mutex_unlock(mu);
	SINK();
}

static void park_rlock(void *arg)
{
	(void)arg;
	tt_rwmutex_rlock(rw);
	tt_rwmutex_runlock(rw);
	SINK();
}

static void park_wlock(void *arg)
{
	(void)arg;
	tt_rwmutex_lock(rw);
	tt_rwmutex_unlock(rw);
	SINK();
}

static void park_cond(void *arg)
{
	(void)arg;
	tt_mutex_lock(mu);
	tt_cond_wait(cv);
	tt_mutex_unlock(mu);
	SINK();
}

static void park_io(void *arg)
{
	(void)arg;
	tt_fd_wait(pipefd[0], TT_FD_READ, TT_FOREVER);
	SINK();
}

static void test_trace_wait_states(void **state)
{
	(void)state;
	/* This thread's snapshot (tt__snapshot_take) of a child that
	 * child-first tt_go has parked: one scheduler's promises. */
	tu_one_p();
	ch = tu_chan(sizeof(int), 0);
	int64_t id;

	id = tu_go(park_recv, NULL);
	check_parked(id, "chan receive", "park_recv", NULL);
	int v = 0;
	TU_ASSERT_OK(tt_chan_send(ch, &v, sizeof v));

	id = tu_go(park_send, NULL);
	check_parked(id, "chan send", "park_send", NULL);
	TU_ASSERT_OK(tt_chan_recv(ch, &v, sizeof v, NULL));

	id = tu_go(park_select, NULL);
	check_parked(id, "select", "park_select", NULL);
	TU_ASSERT_OK(tt_chan_send(ch, &v, sizeof v));

	int64_t ids[3];
	ids[0] = tu_go(park_select_none, NULL);
	ids[1] = tu_go(park_recv_nil, NULL);
	ids[2] = tu_go(park_send_nil, NULL);
	int64_t sl = tu_go(park_sleep, NULL);
	check_parked(ids[0], "select (no cases)", "park_select_none", NULL);
	check_parked(ids[1], "chan receive (nil chan)", "park_recv_nil", NULL);
	check_parked(ids[2], "chan send (nil chan)", "park_send_nil", NULL);
	check_parked(sl, "sleep", "park_sleep", NULL);

	TU_ASSERT_OK(tt_wg_make(&wg));
	TU_ASSERT_OK(tt_wg_add(wg, 1));
	id = tu_go(park_wg, NULL);
	check_parked(id, "sync.WaitGroup.Wait", "park_wg", NULL);
	TU_ASSERT_OK(tt_wg_done(wg));

	TU_ASSERT_OK(tt_mutex_make(&mu));
	TU_ASSERT_OK(tt_mutex_lock(mu));
	id = tu_go(park_mutex, NULL);
	check_parked(id, "sync.Mutex.Lock", "park_mutex", NULL);
	TU_ASSERT_OK(tt_mutex_unlock(mu));
	tt_yield();

	TU_ASSERT_OK(tt_rwmutex_make(&rw));
	TU_ASSERT_OK(tt_rwmutex_lock(rw));
	id = tu_go(park_rlock, NULL);
	check_parked(id, "sync.RWMutex.RLock", "park_rlock", NULL);
	TU_ASSERT_OK(tt_rwmutex_unlock(rw));
	tt_yield();
	TU_ASSERT_OK(tt_rwmutex_rlock(rw));
	id = tu_go(park_wlock, NULL);
	check_parked(id, "sync.RWMutex.Lock", "park_wlock", NULL);
	TU_ASSERT_OK(tt_rwmutex_runlock(rw));
	tt_yield();

	TU_ASSERT_OK(tt_cond_make(&cv, mu));
	id = tu_go(park_cond, NULL);
	check_parked(id, "sync.Cond.Wait", "park_cond", NULL);
	TU_ASSERT_OK(tt_mutex_lock(mu));
	TU_ASSERT_OK(tt_cond_signal(cv));
	TU_ASSERT_OK(tt_mutex_unlock(mu));

	TU_ASSERT_EQ(pipe(pipefd), 0);
	id = tu_go(park_io, NULL);
	check_parked(id, "IO wait", "park_io", NULL);
	TU_ASSERT_EQ(write(pipefd[1], "x", 1), 1);

	/* Let every one of them finish. */
	TU_WAIT_FOR(tt_num_goroutine() == 1, 5 * TT_SECOND);
	close(pipefd[0]);
	close(pipefd[1]);
	TU_ASSERT_OK(tt_cond_release(cv));
	TU_ASSERT_OK(tt_rwmutex_release(rw));
	TU_ASSERT_OK(tt_mutex_release(mu));
	TU_ASSERT_OK(tt_wg_release(wg));
	TU_ASSERT_OK(tt_chan_release(ch));
}

/* ---- a shared library and -fomit-frame-pointer code ---------------------------- */

static int recv_for_lib(void *arg)
{
	int v = 0;
	int r = tt_chan_recv(arg, &v, sizeof v, NULL);
	SINK();
	return r + v;
}

static void via_lib(void *arg)
{
	trace_lib_call(recv_for_lib, arg);
	SINK();
}

static void via_omitfp(void *arg)
{
	omitfp_outer(arg);
	SINK();
}

static void test_trace_shared_lib(void **state)
{
	(void)state;
	/* This thread's snapshot (tt__snapshot_take) of a child that
	 * child-first tt_go has parked: one scheduler's promises. */
	tu_one_p();
	ch = tu_chan(sizeof(int), 0);
	int64_t id = tu_go(via_lib, ch);
	check_parked(id, "chan receive", "recv_for_lib", "trace_lib_call");

	tt__snapshot s;
	TU_ASSERT_OK(tt__snapshot_take(&s));
	tt__frame fr[64];
	int n = frames_of(find_g(&s, id), fr, 64);
	int at = index_of(fr, n, "trace_lib_call");
	TU_ASSERT_GE(at, 0);
	TU_ASSERT_MSG(fr[at].module && strstr(fr[at].module, "libtt_trace_lib"),
		      "trace_lib_call is in %s", fr[at].module);
	TU_ASSERT(ends_with(fr[at].file, "trace_lib.c"));
	TU_ASSERT(at + 1 < n && strcmp(fr[at + 1].func, "via_lib") == 0);
	tt__snapshot_free(&s);

	int v = 0;
	TU_ASSERT_OK(tt_chan_send(ch, &v, sizeof v));
	TU_ASSERT_OK(tt_chan_release(ch));
}

static void test_trace_omitfp_inlined(void **state)
{
	(void)state;
	/* This thread's snapshot (tt__snapshot_take) of a child that
	 * child-first tt_go has parked: one scheduler's promises. */
	tu_one_p();
	ch = tu_chan(sizeof(int), 0);
	int64_t id = tu_go(via_omitfp, ch);
	tt__snapshot s;
	TU_ASSERT_OK(tt__snapshot_take(&s));
	tt__frame fr[64];
	int n = frames_of(find_g(&s, id), fr, 64);
	int inl = index_of(fr, n, "omitfp_inl");
	int out = index_of(fr, n, "omitfp_outer");
	TU_ASSERT_MSG(inl >= 0 && out == inl + 1,
		      "omitfp_inl at %d, omitfp_outer at %d", inl, out);
	TU_ASSERT(fr[inl].inlined);
	TU_ASSERT(!fr[out].inlined);
	TU_ASSERT(ends_with(fr[inl].file, "trace_omitfp.c"));
	TU_ASSERT_EQ(fr[inl].line, omitfp_recv_line);
	TU_ASSERT_EQ(fr[out].line, omitfp_call_line);
	TU_ASSERT(out + 1 < n && strcmp(fr[out + 1].func, "via_omitfp") == 0);
	/* The inlined frame prints as its own lines, without an offset;
	 * the physical one with it. */
	tt__buf b = { 0 };
	tt__write_goroutine(&b, find_g(&s, id), s.taken_at);
	tt__buf_put(&b, "", 1);
	TU_ASSERT_OK(b.err);
	char want[256];
	snprintf(want, sizeof want, "omitfp_inl(...)\n\t%s:%d\nomitfp_outer(...)\n",
		 fr[inl].file, omitfp_recv_line);
	TU_ASSERT_CONTAINS(b.data, want);
	snprintf(want, sizeof want, "\t%s:%d +0x", fr[out].file,
		 omitfp_call_line);
	TU_ASSERT_CONTAINS(b.data, want);
	tt__buf_free(&b);
	tt__snapshot_free(&s);

	int v = 0;
	TU_ASSERT_OK(tt_chan_send(ch, &v, sizeof v));
	TU_ASSERT_OK(tt_chan_release(ch));
}

static void via_nest(void *arg)
{
	omitfp_nest_outer(arg);
	SINK();
}

/* Two nested inlined calls: inner, middle and outer each a frame at its
 * own position, the middle one included; the goroutine leak checker's
 * "any function" filter matches the middle one. */
static void test_trace_nested_inlined(void **state)
{
	(void)state;
	/* This thread's snapshot (tt__snapshot_take) of a child that
	 * child-first tt_go has parked: one scheduler's promises. */
	tu_one_p();
	ch = tu_chan(sizeof(int), 0);
	int64_t id = tu_go(via_nest, ch);
	tt__snapshot s;
	TU_ASSERT_OK(tt__snapshot_take(&s));
	tt__frame fr[64];
	int n = frames_of(find_g(&s, id), fr, 64);
	int in = index_of(fr, n, "omitfp_nest_inner");
	int mid = index_of(fr, n, "omitfp_nest_mid");
	int out = index_of(fr, n, "omitfp_nest_outer");
	TU_ASSERT_MSG(in >= 0 && mid == in + 1 && out == mid + 1,
		      "inner at %d, mid at %d, outer at %d", in, mid, out);
	TU_ASSERT(fr[in].inlined && fr[mid].inlined && !fr[out].inlined);
	TU_ASSERT(ends_with(fr[in].file, "trace_omitfp.c"));
	TU_ASSERT(ends_with(fr[mid].file, "trace_omitfp.c"));
	TU_ASSERT(ends_with(fr[out].file, "trace_omitfp.c"));
	TU_ASSERT_EQ(fr[in].line, omitfp_nest_recv_line);
	TU_ASSERT_EQ(fr[mid].line, omitfp_nest_mid_line);
	TU_ASSERT_EQ(fr[out].line, omitfp_nest_outer_line);
	TU_ASSERT(out + 1 < n && strcmp(fr[out + 1].func, "via_nest") == 0);

	tt__buf b = { 0 };
	tt__write_goroutine(&b, find_g(&s, id), s.taken_at);
	tt__buf_put(&b, "", 1);
	TU_ASSERT_OK(b.err);
	char want[512];
	snprintf(want, sizeof want,
		 "omitfp_nest_inner(...)\n\t%s:%d\n"
		 "omitfp_nest_mid(...)\n\t%s:%d\n"
		 "omitfp_nest_outer(...)\n\t%s:%d +0x",
		 fr[in].file, omitfp_nest_recv_line, fr[mid].file,
		 omitfp_nest_mid_line, fr[out].file, omitfp_nest_outer_line);
	TU_ASSERT_CONTAINS(b.data, want);
	tt__buf_free(&b);
	tt__snapshot_free(&s);

	/* Ignoring the middle function hides the goroutine from the
	 * checker; ignoring a function on no stack does not. */
	tt_leak_opts *o, *other;
	TU_ASSERT_OK(tt_leak_opts_make(&o));
	TU_ASSERT_OK(tt_leak_opts_make(&other));
	TU_ASSERT_OK(tt_leak_retry(o, 0, TT_MICROSECOND));
	TU_ASSERT_OK(tt_leak_retry(other, 0, TT_MICROSECOND));
	TU_ASSERT_OK(tt_leak_ignore_any_function(o, "omitfp_nest_mid"));
	TU_ASSERT_OK(tt_leak_ignore_any_function(other, "omitfp_nest_none"));
	tt_leak_list l;
	TU_ASSERT_EQ(tt_leak_find(o, &l), 0);
	TU_ASSERT_EQ(l.n, 0);
	tt_leak_list_free(&l);
	TU_ASSERT_EQ(tt_leak_find(other, &l), 1);
	TU_ASSERT_EQ(l.n, 1);
	TU_ASSERT_EQ(l.g[0].id, id);
	tt_leak_list_free(&l);
	tt_leak_opts_free(o);
	tt_leak_opts_free(other);

	int v = 0;
	TU_ASSERT_OK(tt_chan_send(ch, &v, sizeof v));
	TU_ASSERT_OK(tt_chan_release(ch));
}

/* ---- the running context, symbols -------------------------------------------------- */

__attribute__((noinline)) static int trace_here_probe(uintptr_t *pcs, int *line)
{
	*line = __LINE__ + 1;
	int n = tt__trace_here(pcs, TT__TRACE_MAX, 0);
	SINK();
	return n;
}

static void test_trace_here(void **state)
{
	(void)state;
	uintptr_t pcs[TT__TRACE_MAX];
	int line = 0;
	int n = trace_here_probe(pcs, &line);
	TU_ASSERT_GE(n, 2);
	tt__frame fr[8];
	int k = tt__symbolize(pcs[0], true, fr, 8);
	TU_ASSERT_GE(k, 1);
	TU_ASSERT_MSG(strcmp(fr[k - 1].func, "trace_here_probe") == 0,
		      "innermost frame is %s", fr[k - 1].func);
	TU_ASSERT_EQ(fr[k - 1].line, line);
	TU_ASSERT(ends_with(fr[k - 1].file, "test_trace.c"));
	TU_ASSERT(fr[k - 1].entry != 0 && fr[k - 1].entry < pcs[0]);
	k = tt__symbolize(pcs[1], true, fr, 8);
	TU_ASSERT(strcmp(fr[k - 1].func, "test_trace_here") == 0);

	/* skip drops frames. */
	uintptr_t more[TT__TRACE_MAX];
	int m = tt__trace_here(more, TT__TRACE_MAX, 1);
	TU_ASSERT_GE(m, 1);
	k = tt__symbolize(more[0], true, fr, 8);
	TU_ASSERT(strcmp(fr[k - 1].func, "test_trace_here") != 0);

	/* An address that is no code: one frame, "?". */
	k = tt__symbolize(16, false, fr, 8);
	TU_ASSERT_EQ(k, 1);
	TU_ASSERT(strcmp(fr[0].func, "?") == 0);
	TU_ASSERT(fr[0].file == NULL);
	TU_ASSERT_EQ(tt__symbolize(pcs[0], true, fr, 0), 0);
}

/* The cache answers the same from several threads at once. */
static uintptr_t shared_pcs[TT__TRACE_MAX];
static int shared_n;

static void *symbolize_thread(void *arg)
{
	(void)arg;
	for (int round = 0; round < 200; round++)
		for (int i = 0; i < shared_n; i++) {
			tt__frame a[8];
			int k = tt__symbolize(shared_pcs[i] + (uintptr_t)round,
					      true, a, 8);
			if (k < 1 || a[0].func == NULL)
				return (void *)1;
		}
	return NULL;
}

static void test_trace_symbolize_threads(void **state)
{
	(void)state;
	TU_REQUIRE_THREADS();
	int line;
	shared_n = trace_here_probe(shared_pcs, &line);
	pthread_t th[4];
	for (int i = 0; i < 4; i++)
		TU_ASSERT_EQ(pthread_create(&th[i], NULL, symbolize_thread,
					    NULL), 0);
	for (int i = 0; i < 4; i++) {
		void *r;
		TU_ASSERT_EQ(pthread_join(th[i], &r), 0);
		TU_ASSERT(r == NULL);
	}
	tt__frame a[8], b[8];
	int ka = tt__symbolize(shared_pcs[0], true, a, 8);
	int kb = tt__symbolize(shared_pcs[0], true, b, 8);
	TU_ASSERT_EQ(ka, kb);
	TU_ASSERT(a[0].func == b[0].func && a[0].line == line);
}

int main(int argc, char **argv)
{
	(void)argc;
	(void)argv;
	const struct CMUnitTest tests[] = {
		TU_TEST(test_trace_wait_states),
		TU_TEST(test_trace_shared_lib),
		TU_TEST(test_trace_omitfp_inlined),
		TU_TEST(test_trace_nested_inlined),
		TU_TEST(test_trace_here),
		TU_TEST(test_trace_symbolize_threads),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
