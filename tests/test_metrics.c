/* /metrics (Prometheus's text exposition format 0.0.4) and
 * /debug/pprof/cmdline on the debug server.
 *
 * The exposition is parsed line by line as Prometheus's text parser
 * reads it (names, labels, escapes, values), with the rules a scrape
 * relies on checked on top (one HELP and one TYPE per family, before its
 * samples; a family's samples together; no series twice; counters named
 * _total). The figures are checked against the truth: the goroutines'
 * own records walked here (what the metrics must not do), the wait
 * accounting against a model of it under random parks and wakes, the
 * pthread counts against threads this test makes (the test links the
 * preload, as test_threads does). */
#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <math.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "debug/debug.h"
#include "testutil.h"

#define MS TT_MILLISECOND

static int g_argc;
static char **g_argv;

/* ---- the exposition parser ------------------------------------------------ */

typedef struct sample {
	char series[512]; /* name{labels} as written, labels unescaped */
	char name[128];
	double value;
} sample;

typedef struct family {
	char name[128];
	char type[16];
	bool help, typed;
	int nsamples;
	bool closed; /* another family's sample came after its own */
} family;

typedef struct expo {
	sample *s;
	size_t n, cap;
	family f[128];
	size_t nf;
} expo;

static bool name_start(char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' ||
	       c == ':';
}

static bool name_char(char c)
{
	return name_start(c) || (c >= '0' && c <= '9');
}

/* A metric name at *p ([a-zA-Z_:][a-zA-Z0-9_:]*) into out; advances. */
static void parse_name(const char **p, char *out, size_t cap, bool label,
		       int lineno)
{
	const char *s = *p;
	TU_ASSERT_MSG(name_start(*s) && !(label && *s == ':'),
		      "line %d: bad name start at \"%.40s\"", lineno, s);
	size_t n = 0;
	while (name_char(*s) && !(label && *s == ':')) {
		TU_ASSERT_MSG(n + 1 < cap, "line %d: name too long", lineno);
		out[n++] = *s++;
	}
	out[n] = '\0';
	*p = s;
}

static family *family_of(expo *e, const char *name, bool make)
{
	for (size_t i = 0; i < e->nf; i++)
		if (strcmp(e->f[i].name, name) == 0)
			return &e->f[i];
	if (!make)
		return NULL;
	TU_ASSERT(e->nf < 128);
	family *f = &e->f[e->nf++];
	memset(f, 0, sizeof *f);
	snprintf(f->name, sizeof f->name, "%s", name);
	return f;
}

/* Parse and check a whole exposition; the samples go into *e. */
static void parse_expo(const char *body, size_t len, expo *e)
{
	memset(e, 0, sizeof *e);
	TU_ASSERT_MSG(len > 0 && body[len - 1] == '\n',
		      "the exposition must end with a newline");
	TU_ASSERT_MSG(strlen(body) == len, "a NUL byte in the exposition");
	family *last = NULL; /* the family of the previous sample */
	int lineno = 0;
	for (const char *l = body; *l;) {
		const char *nl = strchr(l, '\n');
		char line[1024];
		size_t ln = (size_t)(nl - l);
		TU_ASSERT_MSG(ln < sizeof line, "line too long");
		memcpy(line, l, ln);
		line[ln] = '\0';
		l = nl + 1;
		lineno++;
		TU_ASSERT_MSG(ln > 0, "line %d is empty", lineno);
		const char *p = line;
		if (*p == '#') {
			char name[128];
			bool help = strncmp(p, "# HELP ", 7) == 0;
			bool type = strncmp(p, "# TYPE ", 7) == 0;
			TU_ASSERT_MSG(help || type,
				      "line %d: a comment that is neither HELP "
				      "nor TYPE: %s",
				      lineno, line);
			p += 7;
			parse_name(&p, name, sizeof name, false, lineno);
			TU_ASSERT_MSG(*p == ' ', "line %d: no text after the "
						 "name",
				      lineno);
			p++;
			family *f = family_of(e, name, true);
			TU_ASSERT_MSG(f->nsamples == 0,
				      "line %d: %s of %s after its samples",
				      lineno, help ? "HELP" : "TYPE", name);
			if (help) {
				TU_ASSERT_MSG(!f->help, "line %d: second HELP "
							"for %s",
					      lineno, name);
				f->help = true;
				TU_ASSERT_MSG(*p, "line %d: empty HELP", lineno);
				for (; *p; p++)
					if (*p == '\\') {
						p++;
						TU_ASSERT_MSG(*p == '\\' || *p == 'n',
							      "line %d: bad "
							      "escape in HELP",
							      lineno);
					}
			} else {
				TU_ASSERT_MSG(!f->typed, "line %d: second TYPE "
							 "for %s",
					      lineno, name);
				f->typed = true;
				TU_ASSERT_MSG(strcmp(p, "counter") == 0 ||
						      strcmp(p, "gauge") == 0,
					      "line %d: type \"%s\"", lineno, p);
				snprintf(f->type, sizeof f->type, "%s", p);
				if (strcmp(p, "counter") == 0)
					TU_ASSERT_MSG(strlen(name) > 6 &&
							      strcmp(name + strlen(name) - 6,
								     "_total") == 0,
						      "line %d: counter %s is not "
						      "named _total",
						      lineno, name);
			}
			continue;
		}
		sample sm = {0};
		parse_name(&p, sm.name, sizeof sm.name, false, lineno);
		size_t sl = (size_t)snprintf(sm.series, sizeof sm.series, "%s",
					     sm.name);
		family *f = family_of(e, sm.name, false);
		TU_ASSERT_MSG(f && f->typed && f->help,
			      "line %d: sample of %s before its HELP and TYPE",
			      lineno, sm.name);
		TU_ASSERT_MSG(!f->closed, "line %d: the samples of %s are not "
					  "together",
			      lineno, sm.name);
		if (last && last != f)
			last->closed = true;
		last = f;
		f->nsamples++;
		if (*p == '{') {
			char seen[8][64];
			int nseen = 0;
			sm.series[sl++] = *p++;
			while (*p != '}') {
				char lname[64];
				parse_name(&p, lname, sizeof lname, true, lineno);
				TU_ASSERT_MSG(strncmp(lname, "__", 2) != 0,
					      "line %d: reserved label", lineno);
				for (int k = 0; k < nseen; k++)
					TU_ASSERT_MSG(strcmp(seen[k], lname),
						      "line %d: label %s twice",
						      lineno, lname);
				TU_ASSERT(nseen < 8);
				snprintf(seen[nseen++], 64, "%s", lname);
				sl += (size_t)snprintf(sm.series + sl,
						       sizeof sm.series - sl,
						       "%s=\"", lname);
				TU_ASSERT_MSG(p[0] == '=' && p[1] == '"',
					      "line %d: no =\" after label %s",
					      lineno, lname);
				p += 2;
				while (*p != '"') {
					TU_ASSERT_MSG(*p, "line %d: unterminated "
							  "label value",
						      lineno);
					char c = *p++;
					if (c == '\\') {
						c = *p++;
						TU_ASSERT_MSG(c == '\\' || c == '"' ||
								      c == 'n',
							      "line %d: bad escape "
							      "\\%c in a label value",
							      lineno, c);
						if (c == 'n')
							c = '\n';
					}
					TU_ASSERT(sl + 4 < sizeof sm.series);
					sm.series[sl++] = c;
				}
				p++;
				sm.series[sl++] = '"';
				if (*p == ',') {
					sm.series[sl++] = *p++;
				} else {
					TU_ASSERT_MSG(*p == '}', "line %d: %c after "
								 "a label",
						      lineno, *p);
				}
			}
			p++;
			sm.series[sl++] = '}';
			sm.series[sl] = '\0';
		}
		TU_ASSERT_MSG(*p == ' ', "line %d: no space before the value",
			      lineno);
		p++;
		char *end;
		if (strcmp(p, "+Inf") == 0) {
			sm.value = INFINITY;
		} else {
			TU_ASSERT_MSG(*p && strchr(" \t", *p) == NULL,
				      "line %d: no value", lineno);
			sm.value = strtod(p, &end);
			/* No timestamps: we never write one. */
			TU_ASSERT_MSG(*end == '\0', "line %d: junk after the "
						    "value: \"%s\"",
				      lineno, end);
			TU_ASSERT_MSG(!isnan(sm.value), "line %d: NaN", lineno);
		}
		for (size_t i = 0; i < e->n; i++)
			TU_ASSERT_MSG(strcmp(e->s[i].series, sm.series),
				      "line %d: series %s twice", lineno,
				      sm.series);
		if (e->n == e->cap) {
			e->cap = e->cap ? e->cap * 2 : 64;
			e->s = realloc(e->s, e->cap * sizeof *e->s);
			TU_ASSERT(e->s);
		}
		e->s[e->n++] = sm;
	}
	for (size_t i = 0; i < e->nf; i++)
		TU_ASSERT_MSG(e->f[i].nsamples > 0, "family %s has no sample",
			      e->f[i].name);
}

/* The value of one series ("name{l=\"v\"}", labels in the order written,
 * unescaped); fails if it is not there. */
static double value_of(const expo *e, const char *series)
{
	for (size_t i = 0; i < e->n; i++)
		if (strcmp(e->s[i].series, series) == 0)
			return e->s[i].value;
	tu_fail_at(__FILE__, __LINE__, "no series %s", series);
}

static bool has_series(const expo *e, const char *series)
{
	for (size_t i = 0; i < e->n; i++)
		if (strcmp(e->s[i].series, series) == 0)
			return true;
	return false;
}

/* The sum of every series of family `name`. */
static double family_sum(const expo *e, const char *name)
{
	double v = 0;
	for (size_t i = 0; i < e->n; i++)
		if (strcmp(e->s[i].name, name) == 0)
			v += e->s[i].value;
	return v;
}

static void expo_free(expo *e)
{
	free(e->s);
}

static void expo_of(tt__metrics *m, expo *e)
{
	tt__buf b = {0};
	TU_ASSERT_OK(tt__metrics_write(&b, m));
	tt__buf_put(&b, "", 1);
	parse_expo(b.data, b.len - 1, e);
	tt__buf_free(&b);
}

/* ---- goroutines in every kind of wait --------------------------------------- */

typedef struct waits {
	tt_chan *recv_c, *send_c, *sel_c, *done;
	tt_mutex *mu;
	tt_waitgroup *wg;
	tt_cond *cond;
	bool cond_go;
	int n;
	_Atomic int slept; /* sleepers that have woken */
	_Atomic int cond_waiting; /* cond waiters that hold mu or wait */
} waits;

static void w_recv(void *p)
{
	waits *w = p;
	TU_ASSERT_OK(tt_chan_recv(w->recv_c, NULL, 0, NULL));
	tu_done(w->done);
}

static void w_send(void *p)
{
	waits *w = p;
	TU_ASSERT_OK(tt_chan_send(w->send_c, NULL, 0));
	tu_done(w->done);
}

static void w_select(void *p)
{
	waits *w = p;
	tt_case cs[2] = {TT_CASE_RECV_DISCARD(w->sel_c, NULL),
			 TT_CASE_RECV_DISCARD(NULL, NULL)};
	TU_ASSERT_EQ(tt_select(cs, 2, TT_FOREVER), 0);
	tu_done(w->done);
}

static void w_sleep(void *p)
{
	waits *w = p;
	TU_ASSERT_OK(tt_sleep(200 * MS));
	w->slept++;
	tu_done(w->done);
}

static void w_mutex(void *p)
{
	waits *w = p;
	TU_ASSERT_OK(tt_mutex_lock(w->mu));
	TU_ASSERT_OK(tt_mutex_unlock(w->mu));
	tu_done(w->done);
}

static void w_wg(void *p)
{
	waits *w = p;
	TU_ASSERT_OK(tt_wg_wait(w->wg));
	tu_done(w->done);
}

static void w_cond(void *p)
{
	waits *w = p;
	TU_ASSERT_OK(tt_mutex_lock(w->mu));
	w->cond_waiting++;
	while (!w->cond_go)
		TU_ASSERT_OK(tt_cond_wait(w->cond));
	TU_ASSERT_OK(tt_mutex_unlock(w->mu));
	tu_done(w->done);
}

/* How many of each: recv, send, select, sleep, mutex, wg, cond. */
enum { N_RECV = 5, N_SEND = 3, N_SEL = 2, N_SLEEP = 4, N_MU = 2, N_WG = 3,
       N_COND = 2 };

/* A goroutine that first waits on an object of another thread's (a P's)
 * has it waited for by a goroutine of the owner's too, a proxy (post.c),
 * counted under the same reason: n waiters count n to 2n. */
#define WAITS_MAX(n) (tt_runtime_procs() > 1 ? 2 * (n) : (n))

/* Every one of them but the sleepers (which may be done already) waits
 * under its reason, on whichever thread it runs. */
static bool waits_parked(const tt__metrics *m0)
{
	static const struct {
		unsigned reason;
		int n;
	} want[] = {{TT_WAIT_CHAN_RECV, N_RECV}, {TT_WAIT_CHAN_SEND, N_SEND},
		    {TT_WAIT_SELECT, N_SEL},     {TT_WAIT_MUTEX, N_MU},
		    {TT_WAIT_WG_WAIT, N_WG},     {TT_WAIT_COND, N_COND}};
	tt__metrics m;
	tt__metrics_gather(&m, tt_now());
	int64_t waiting = 0;
	for (unsigned r = 0; r < TT_WAIT__COUNT; r++)
		waiting += m.waiting[r] - m0->waiting[r];
	if (waiting != m.goroutines - m0->goroutines)
		return false; /* one of them (or a proxy) is yet to park */
	for (size_t i = 0; i < sizeof want / sizeof *want; i++) {
		int64_t n = m.waiting[want[i].reason] -
			    m0->waiting[want[i].reason];
		if (n < want[i].n)
			return false;
		TU_ASSERT_LE(n, WAITS_MAX(want[i].n));
	}
	return true;
}

static void waits_start(waits *w)
{
	tt__metrics m0;
	tt__metrics_gather(&m0, tt_now());
	memset(w, 0, sizeof *w);
	w->recv_c = tu_chan(0, 0);
	w->send_c = tu_chan(0, 0);
	w->sel_c = tu_chan(0, 0);
	w->done = tu_chan(0, 64);
	TU_ASSERT_OK(tt_mutex_make(&w->mu));
	TU_ASSERT_OK(tt_wg_make(&w->wg));
	TU_ASSERT_OK(tt_wg_add(w->wg, 1));
	TU_ASSERT_OK(tt_cond_make(&w->cond, w->mu));
	for (int i = 0; i < N_COND; i++)
		tu_go(w_cond, w);
	/* With more than one P they may not have started yet: once all
	 * have taken mu, the lock below waits until the last one waits. */
	TU_WAIT_FOR(w->cond_waiting == N_COND, 10 * TT_SECOND);
	TU_ASSERT_OK(tt_mutex_lock(w->mu)); /* the cond waiters hold none */
	for (int i = 0; i < N_RECV; i++)
		tu_go(w_recv, w);
	for (int i = 0; i < N_SEND; i++)
		tu_go(w_send, w);
	for (int i = 0; i < N_SEL; i++)
		tu_go(w_select, w);
	for (int i = 0; i < N_SLEEP; i++)
		tu_go(w_sleep, w);
	for (int i = 0; i < N_MU; i++)
		tu_go(w_mutex, w);
	for (int i = 0; i < N_WG; i++)
		tu_go(w_wg, w);
	w->n = N_RECV + N_SEND + N_SEL + N_SLEEP + N_MU + N_WG + N_COND;
	/* Started on another P, they park in their own time. */
	TU_WAIT_FOR(waits_parked(&m0), 10 * TT_SECOND);
}

static void waits_end(waits *w)
{
	w->cond_go = true;
	TU_ASSERT_OK(tt_cond_broadcast(w->cond));
	TU_ASSERT_OK(tt_mutex_unlock(w->mu));
	for (int i = 0; i < N_RECV; i++)
		TU_ASSERT_OK(tt_chan_send(w->recv_c, NULL, 0));
	for (int i = 0; i < N_SEND; i++)
		TU_ASSERT_OK(tt_chan_recv(w->send_c, NULL, 0, NULL));
	TU_ASSERT_OK(tt_chan_close(w->sel_c));
	TU_ASSERT_OK(tt_wg_done(w->wg));
	TU_WAIT_DONE(w->done, w->n, 5 * TT_SECOND);
	tt_chan_release(w->recv_c);
	tt_chan_release(w->send_c);
	tt_chan_release(w->sel_c);
	tt_chan_release(w->done);
	tt_cond_release(w->cond);
	tt_mutex_release(w->mu);
	tt_wg_release(w->wg);
}

/* The truth, from the records: waiting goroutines of this thread by
 * reason, and the runnable ones. */
static void walk_counts(int64_t waiting[TT_WAIT__COUNT], int64_t *runnable,
			int64_t *running)
{
	memset(waiting, 0, TT_WAIT__COUNT * sizeof *waiting);
	*runnable = *running = 0;
	for (tt__g *g = tt__sched_get()->all; g; g = g->all_next) {
		if (g->state == TT_G_WAITING)
			waiting[g->reason]++;
		else if (g->state == TT_G_RUNNABLE)
			(*runnable)++;
		else if (g->state == TT_G_RUNNING)
			(*running)++;
	}
}

static void check_against_walk(const tt__metrics *m)
{
	int64_t waiting[TT_WAIT__COUNT], runnable, running;
	walk_counts(waiting, &runnable, &running);
	for (unsigned r = 0; r < TT_WAIT__COUNT; r++)
		TU_ASSERT_MSG(m->waiting[r] == waiting[r],
			      "reason \"%s\": the metrics say %lld, the "
			      "records %lld",
			      tt__metrics_reason(r), (long long)m->waiting[r],
			      (long long)waiting[r]);
	TU_ASSERT_EQ(m->runnable, runnable);
	TU_ASSERT_EQ(m->running, running);
	TU_ASSERT_EQ(m->schedulers, 1);
}

/* Each kind of wait is counted under its reason, exactly as the records
 * say, while they wait and after they wake. */
static void test_counts_by_reason(void **state)
{
	(void)state;
	/* White-box: the figures against this scheduler's own records, and
	 * readied goroutines that stay runnable until it yields. */
	tu_one_p();
	tt__metrics m0, m;
	tt__metrics_gather(&m0, tt_now());
	check_against_walk(&m0);
	waits w;
	waits_start(&w);
	tt__metrics_gather(&m, tt_now());
	check_against_walk(&m);
	TU_ASSERT_EQ(m.waiting[TT_WAIT_CHAN_RECV] - m0.waiting[TT_WAIT_CHAN_RECV],
		     N_RECV);
	TU_ASSERT_EQ(m.waiting[TT_WAIT_CHAN_SEND] - m0.waiting[TT_WAIT_CHAN_SEND],
		     N_SEND);
	TU_ASSERT_EQ(m.waiting[TT_WAIT_SELECT] - m0.waiting[TT_WAIT_SELECT],
		     N_SEL);
	TU_ASSERT_EQ(m.waiting[TT_WAIT_SLEEP] - m0.waiting[TT_WAIT_SLEEP],
		     N_SLEEP);
	TU_ASSERT_EQ(m.waiting[TT_WAIT_MUTEX] - m0.waiting[TT_WAIT_MUTEX], N_MU);
	TU_ASSERT_EQ(m.waiting[TT_WAIT_WG_WAIT] - m0.waiting[TT_WAIT_WG_WAIT],
		     N_WG);
	TU_ASSERT_EQ(m.waiting[TT_WAIT_COND] - m0.waiting[TT_WAIT_COND], N_COND);
	TU_ASSERT_EQ(m.goroutines, tt_num_goroutine());
	TU_ASSERT_EQ(m.goroutines - m0.goroutines, w.n);

	/* Ready some without letting them run: runnable, not waiting. */
	for (int i = 0; i < N_RECV; i++)
		TU_ASSERT_OK(tt_chan_send_until(w.recv_c, NULL, 0, TT_TRY));
	tt__metrics_gather(&m, tt_now());
	check_against_walk(&m);
	TU_ASSERT_EQ(m.waiting[TT_WAIT_CHAN_RECV], m0.waiting[TT_WAIT_CHAN_RECV]);
	TU_ASSERT_EQ(m.runnable - m0.runnable, N_RECV);
	/* The receivers were served; the rest are woken by waits_end. */
	for (int i = 0; i < N_RECV; i++)
		tu_go(w_recv, &w);
	w.n += N_RECV;
	waits_end(&w);
	tu_pause();
	tt__metrics_gather(&m, tt_now());
	check_against_walk(&m);
	for (unsigned r = 0; r < TT_WAIT__COUNT; r++)
		TU_ASSERT_EQ(m.waiting[r], m0.waiting[r]);
}

/* Waiting longer than 1 min / 10 min / 1 h: the goroutines parked now
 * counted once `now` is far enough on (the ages are measured against the
 * `now` given), and not before. */
static void test_waiting_longer_than(void **state)
{
	(void)state;
	waits w;
	waits_start(&w);
	int64_t now = tt_now();
	/* All of them, proxies included (WAITS_MAX): goroutines of earlier
	 * tests are gone, this test's are the only ones in these waits. */
	tt__metrics m_now;
	tt__metrics_gather(&m_now, now);
	const int64_t n_recv = m_now.waiting[TT_WAIT_CHAN_RECV];
	const int64_t n_mu = m_now.waiting[TT_WAIT_MUTEX];
	TU_ASSERT_RANGE(n_recv, N_RECV, WAITS_MAX(N_RECV));
	TU_ASSERT_RANGE(n_mu, N_MU, WAITS_MAX(N_MU));
	/* An epoch is at most 2^30 ns (fine) wide: a little more than 1 s
	 * past a threshold counts everything parked before `now`. */
	const int64_t step = (1ll << 30) + 10 * MS;
	struct {
		int64_t at;
		int counted; /* thresholds passed */
	} cases[] = {
		{now, 0},
		{now + 59 * TT_SECOND - step, 0},
		{now + TT_MINUTE + step, 1},
		{now + 10 * TT_MINUTE - 30 * TT_SECOND, 1},
		{now + 10 * TT_MINUTE + step, 2},
		{now + 60 * TT_MINUTE + step, 3},
		{now + 1000 * TT_MINUTE, 3},
	};
	for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
		tt__metrics m;
		tt__metrics_gather(&m, cases[i].at);
		for (int k = 0; k < TT__METRICS_NTHRESH; k++) {
			int64_t want = k < cases[i].counted ? n_recv : 0;
			TU_ASSERT_MSG(m.waiting_longer[k][TT_WAIT_CHAN_RECV] == want,
				      "case %zu, threshold %d: %lld, want %lld",
				      i, k,
				      (long long)m.waiting_longer[k][TT_WAIT_CHAN_RECV],
				      (long long)want);
			TU_ASSERT_EQ(m.waiting_longer[k][TT_WAIT_MUTEX],
				     k < cases[i].counted ? n_mu : 0);
		}
	}
	waits_end(&w);
}

static void yielder(void *p)
{
	for (int i = 0; i < 100; i++)
		tt_yield();
	tu_done(p);
}

/* Two goroutines yielding to each other 100 times each: about 200
 * switches (and one more for the end of the yielder). */
static void test_switch_count(void **state)
{
	(void)state;
	/* Two goroutines yielding to each other on one thread: one
	 * scheduler's switch count. */
	tu_one_p();
	tt_chan *done = tu_chan(0, 1);
	tt__metrics m0, m;
	tt__metrics_gather(&m0, tt_now());
	tu_go(yielder, done);
	for (int i = 0; i < 100; i++)
		tt_yield();
	TU_WAIT_DONE(done, 1, 5 * TT_SECOND);
	tt__metrics_gather(&m, tt_now());
	TU_ASSERT_RANGE(m.switches - m0.switches, 199, 203);
	tt_chan_release(done);
}

/* ---- the accounting against a model ---------------------------------------- */

typedef struct parked {
	int64_t since;
	unsigned reason;
} parked;

/* Random parks at a stamp that grows by milliseconds, and now and then
 * by minutes or hours (the scheduler's stamp never goes back), random
 * wakes; after every step the cells must add up to the model, and every
 * "parked before" sum must lie between the exact count and the exact
 * count an epoch earlier. */
static void test_waits_model(void **state)
{
	(void)state;
	uint64_t rng = tu_seed("waits model");
	tt__waits *w = calloc(1, sizeof *w);
	TU_ASSERT(w);
	enum { MAX = 4000, STEPS = 60000 };
	parked *p = malloc(MAX * sizeof *p);
	TU_ASSERT(p);
	size_t n = 0;
	int64_t t = 1000 * TT_SECOND + (int64_t)tu_rand_n(&rng, 1u << 30);
	for (int step = 0; step < STEPS; step++) {
		uint32_t dice = tu_rand_n(&rng, 1000);
		if (dice < 5)
			t += (int64_t)tu_rand_n(&rng, 3 * 3600) * TT_SECOND;
		else if (dice < 40)
			t += (int64_t)tu_rand_n(&rng, 120) * TT_SECOND;
		else
			t += (int64_t)tu_rand_n(&rng, 100) * MS;
		bool park = n == 0 || (n < MAX && tu_rand_n(&rng, 100) < 55);
		tt__waits_stamp(w, t);
		if (park) {
			unsigned r = tu_rand_n(&rng, TT_WAIT__COUNT);
			tt__waits_park(w, r);
			p[n++] = (parked){t, r};
		} else {
			size_t i = tu_rand_n(&rng, (uint32_t)n);
			tt__waits_wake(w, p[i].since, p[i].reason);
			p[i] = p[--n];
		}
		if (step % 97 != 0 && step != STEPS - 1)
			continue;
		/* Totals per reason. */
		for (unsigned r = 0; r <= TT_WAIT__COUNT; r++) {
			uint64_t want = 0;
			for (size_t i = 0; i < n; i++)
				want += r == TT_WAIT__COUNT || p[i].reason == r;
			TU_ASSERT_EQ(tt__waits_before(w, r, INT64_MAX), want);
		}
		/* The one-pass sums agree with the model's totals and with
		 * the per-reason counts below. */
		int64_t cuts[3] = {t - TT_MINUTE, t - 10 * TT_MINUTE,
				   t - 60 * TT_MINUTE};
		uint64_t before[3][TT_WAIT__COUNT] = {{0}};
		uint64_t total[TT_WAIT__COUNT] = {0};
		tt__waits_sums(w, 3, cuts, before, total);
		for (unsigned r = 0; r < TT_WAIT__COUNT; r++) {
			uint64_t want = 0;
			for (size_t i = 0; i < n; i++)
				want += p[i].reason == r;
			TU_ASSERT_EQ(total[r], want);
			for (int k = 0; k < 3; k++)
				TU_ASSERT_EQ(before[k][r],
					     tt__waits_before(w, r, cuts[k]));
		}
		/* Before a cutoff: exact within an epoch. */
		for (int k = 0; k < 4; k++) {
			int64_t age = k == 0 ? TT_MINUTE
				      : k == 1 ? 10 * TT_MINUTE
				      : k == 2 ? 60 * TT_MINUTE
					       : (int64_t)tu_rand_n(&rng, 3600) *
							 TT_SECOND;
			int64_t cutoff = t - age;
			unsigned r = tu_rand_n(&rng, TT_WAIT__COUNT + 1);
			uint64_t hi = 0, lo = 0;
			int64_t slack = age <= TT_MINUTE ? 1ll << 30 : 1ll << 34;
			for (size_t i = 0; i < n; i++) {
				if (r != TT_WAIT__COUNT && p[i].reason != r)
					continue;
				hi += p[i].since < cutoff;
				lo += p[i].since < cutoff - slack;
			}
			uint64_t got = tt__waits_before(w, r, cutoff);
			TU_ASSERT_MSG(got >= lo && got <= hi,
				      "step %d: before %lld s ago: %llu, want "
				      "%llu to %llu",
				      step, (long long)(age / TT_SECOND),
				      (unsigned long long)got,
				      (unsigned long long)lo,
				      (unsigned long long)hi);
		}
	}
	while (n > 0) {
		tt__waits_wake(w, p[n - 1].since, p[n - 1].reason);
		n--;
	}
	TU_ASSERT_EQ(tt__waits_before(w, TT_WAIT__COUNT, INT64_MAX), 0);
	free(p);
	free(w);
}

/* ---- the exposition ------------------------------------------------------- */

static tt_debug_server *serve(void)
{
	tt_debug_server *srv = NULL;
	TU_ASSERT_OK(tt_debug_serve("127.0.0.1:0", NULL, &srv));
	return srv;
}

/* The whole /metrics response: the header Prometheus picks its parser
 * by, every line valid, and the figures consistent with the program. */
/* Threads of this process (/proc/self/task). */
static int count_tasks(void)
{
	DIR *d = opendir("/proc/self/task");
	TU_ASSERT(d);
	int n = 0;
	for (struct dirent *e; (e = readdir(d));)
		n += e->d_name[0] != '.';
	closedir(d);
	return n;
}

/* Every goroutine but the caller waits (the sleepers woke and ended). */
static bool all_but_me_wait(void)
{
	tt__metrics m;
	tt__metrics_gather(&m, tt_now());
	int64_t waiting = 0;
	for (unsigned r = 0; r < TT_WAIT__COUNT; r++)
		waiting += m.waiting[r];
	return waiting == m.goroutines - m.orphaned - 1;
}

static void test_exposition(void **state)
{
	(void)state;
	waits w;
	waits_start(&w);
	tt_debug_server *srv = serve();
	int port = tt_debug_port(srv);
	/* Nothing changes during the scrape but its connection's
	 * goroutine, once the sleepers are done. */
	TU_WAIT_FOR(w.slept == N_SLEEP, 10 * TT_SECOND);
	TU_WAIT_FOR(all_but_me_wait(), 10 * TT_SECOND); /* sleepers ended */
	int64_t before = tt_num_goroutine();
	tt__metrics mb; /* what waits (proxies too, WAITS_MAX) */
	tt__metrics_gather(&mb, tt_now());
	tu_http_resp r = tu_http(port, "GET", "/metrics");
	TU_ASSERT_EQ(r.status, 200);
	TU_ASSERT_MSG(strcmp(tu_http_header(&r, "Content-Type"),
			     "text/plain; version=0.0.4; charset=utf-8") == 0,
		      "Content-Type: %s", tu_http_header(&r, "Content-Type"));
	expo e;
	parse_expo(r.body, r.body_len, &e);

	/* Go's names, each typed as Go's client types it. */
	static const char *const go_names[][2] = {
		{"go_goroutines", "gauge"},
		{"go_threads", "gauge"},
		{"process_cpu_seconds_total", "counter"},
		{"process_max_fds", "gauge"},
		{"process_open_fds", "gauge"},
		{"process_resident_memory_bytes", "gauge"},
		{"process_start_time_seconds", "gauge"},
		{"process_virtual_memory_bytes", "gauge"},
		{"tether_goroutines", "gauge"},
		{"tether_goroutines_waiting_longer_than", "gauge"},
		{"tether_goroutines_leaked_proven", "gauge"},
		{"tether_goroutines_leaked_proven_total", "counter"},
		{"tether_sched_switches_total", "counter"},
		{"tether_stacks_mapped", "gauge"},
		{"tether_stacks_pooled", "gauge"},
		{"tether_pthreads_live", "gauge"},
	};
	for (size_t i = 0; i < sizeof go_names / sizeof *go_names; i++) {
		family *f = family_of(&e, go_names[i][0], false);
		TU_ASSERT_MSG(f, "no %s", go_names[i][0]);
		TU_ASSERT_MSG(strcmp(f->type, go_names[i][1]) == 0,
			      "%s is a %s", f->name, f->type);
	}

	/* The counts, as the program had them while the scrape ran: one
	 * more goroutine than before it, the connection's. */
	double gor = value_of(&e, "go_goroutines");
	TU_ASSERT_EQ((long long)gor, before + 1);
	TU_ASSERT_EQ((long long)(family_sum(&e, "tether_goroutines") +
				 value_of(&e, "tether_goroutines_orphaned")),
		     (long long)gor);
	TU_ASSERT_EQ(value_of(&e, "tether_goroutines{state=\"running\"}"), 1);
	TU_ASSERT_GE(value_of(&e, "tether_goroutines{state=\"waiting\","
				  "reason=\"chan receive\"}"),
		     N_RECV);
	TU_ASSERT_EQ(value_of(&e, "tether_goroutines{state=\"waiting\","
				  "reason=\"sync.Mutex.Lock\"}"),
		     mb.waiting[TT_WAIT_MUTEX]);
	TU_ASSERT_RANGE(mb.waiting[TT_WAIT_MUTEX], N_MU, WAITS_MAX(N_MU));
	TU_ASSERT_EQ(value_of(&e, "tether_goroutines{state=\"waiting\","
				  "reason=\"sync.Cond.Wait\"}"),
		     mb.waiting[TT_WAIT_COND]);
	TU_ASSERT_RANGE(mb.waiting[TT_WAIT_COND], N_COND, WAITS_MAX(N_COND));
	TU_ASSERT_EQ(value_of(&e, "tether_goroutines_waiting_longer_than{"
				  "reason=\"sync.Mutex.Lock\",threshold=\"1m\"}"),
		     0);
	TU_ASSERT(has_series(&e, "tether_goroutines_waiting_longer_than{"
				 "reason=\"select\",threshold=\"1h\"}"));
	/* The main thread's and each P's (all started by waits_start). */
	TU_ASSERT_EQ(value_of(&e, "tether_schedulers"), tt_runtime_procs());
	TU_ASSERT_GT(value_of(&e, "tether_sched_switches_total"), 0);
	TU_ASSERT_EQ(value_of(&e, "tether_goroutines_leaked_proven_total"),
		     tt_leak_proven_count());

	/* The process figures against the kernel's. */
	long long rss = tu_rss_bytes();
	double mrss = value_of(&e, "process_resident_memory_bytes");
	TU_ASSERT_MSG(mrss > rss / 2 && mrss < rss * 2, "rss %f vs %lld", mrss,
		      rss);
	TU_ASSERT_GE(value_of(&e, "process_virtual_memory_bytes"), mrss);
	TU_ASSERT_EQ(value_of(&e, "go_threads"), count_tasks());
	double fds = value_of(&e, "process_open_fds");
	TU_ASSERT_GE(fds, 4); /* stdio, the listener, the connection */
	TU_ASSERT_GT(value_of(&e, "process_max_fds"), fds);
	double start = value_of(&e, "process_start_time_seconds");
	double wall = (double)time(NULL);
	TU_ASSERT_MSG(start <= wall + 1 && start > wall - 3600,
		      "started at %f, now %f", start, wall);
	double cpu = value_of(&e, "process_cpu_seconds_total");
	TU_ASSERT_MSG(cpu > 0 && cpu < 3600, "cpu %f", cpu);
	expo_free(&e);
	tu_http_free(&r);

	/* HEAD: the head alone, with the body's length. */
	r = tu_http(port, "HEAD", "/metrics");
	TU_ASSERT_EQ(r.status, 200);
	TU_ASSERT_EQ(r.body_len, 0);
	TU_ASSERT_GT(atol(tu_http_header(&r, "Content-Length")), 1000);
	tu_http_free(&r);
	TU_ASSERT_OK(tt_debug_shutdown(srv));
	waits_end(&w);
}

/* The writer alone: every figure left out when unknown, the ones that
 * only exist in some setups (guard budget, pthreads) only then, and the
 * output valid in every case. */
static void test_exposition_optional(void **state)
{
	(void)state;
	tt__metrics m;
	tt__metrics_gather(&m, tt_now());
	expo e;
	m.guard_budget = 7;
	m.pthreads = true;
	m.pthreads_live = 3;
	m.pthreads_unjoined = 2;
	m.pthreads_untracked = 1;
	m.max_fds = INT64_MAX;
	expo_of(&m, &e);
	TU_ASSERT_EQ(value_of(&e, "tether_stack_guard_budget"), 7);
	TU_ASSERT_EQ(value_of(&e, "tether_pthreads_live"), 3);
	TU_ASSERT_EQ(value_of(&e, "tether_pthreads_unjoined"), 2);
	TU_ASSERT_EQ(value_of(&e, "tether_pthreads_untracked_total"), 1);
	TU_ASSERT(isinf(value_of(&e, "process_max_fds")));
	expo_free(&e);

	m.guard_budget = -1;
	m.pthreads = false;
	m.threads = m.rss = m.vsize = m.open_fds = m.max_fds = -1;
	m.start_time = m.cpu_seconds = -1;
	expo_of(&m, &e);
	static const char *const gone[] = {
		"tether_stack_guard_budget", "tether_pthreads_live",
		"go_threads", "process_resident_memory_bytes",
		"process_virtual_memory_bytes", "process_open_fds",
		"process_max_fds", "process_start_time_seconds",
		"process_cpu_seconds_total"};
	for (size_t i = 0; i < sizeof gone / sizeof *gone; i++)
		TU_ASSERT_MSG(family_of(&e, gone[i], false) == NULL,
			      "%s is there", gone[i]);
	TU_ASSERT(has_series(&e, "go_goroutines"));
	expo_free(&e);
}

static void test_escaping(void **state)
{
	(void)state;
	tt__buf b = {0};
	tt__prom_label_value(&b, "a\\b\"c\nd e");
	tt__buf_put(&b, "", 1);
	TU_ASSERT_MSG(strcmp(b.data, "a\\\\b\\\"c\\nd e") == 0, "got %s",
		      b.data);
	tt__buf_free(&b);
	tt__prom_help_text(&b, "a\\b\"c\nd");
	tt__buf_put(&b, "", 1);
	TU_ASSERT_MSG(strcmp(b.data, "a\\\\b\"c\\nd") == 0, "got %s", b.data);
	tt__buf_free(&b);
	/* Every reason label as written decodes back to the reason. */
	tt__metrics m;
	tt__metrics_gather(&m, tt_now());
	expo e;
	expo_of(&m, &e);
	for (unsigned r = 0; r < TT_WAIT__COUNT; r++) {
		char s[256];
		snprintf(s, sizeof s,
			 "tether_goroutines{state=\"waiting\",reason=\"%s\"}",
			 tt__metrics_reason(r));
		TU_ASSERT_MSG(has_series(&e, s), "no %s", s);
	}
	expo_free(&e);
}

/* ---- pthreads (the preload is linked) ------------------------------------- */

static void *thr_wait(void *p)
{
	int *fds = p;
	char c;
	(void)!read(fds[0], &c, 1);
	return NULL;
}

static void *thr_quit(void *p)
{
	(void)p;
	return NULL;
}

static void test_pthread_counts(void **state)
{
	(void)state;
	TU_REQUIRE_THREADS();
	TU_ASSERT_MSG(tt_threads_tracking(), "the preload is not in use");
	if (TU_TSAN) {
		/* ThreadSanitizer starts a thread of its own at the first
		 * pthread_create: let that be before the base. */
		pthread_t t;
		TU_ASSERT_OK(-pthread_create(&t, NULL, thr_quit, NULL));
		TU_ASSERT_OK(-pthread_join(t, NULL));
	}
	tt__metrics m0, m;
	tt__metrics_gather(&m0, tt_now());
	TU_ASSERT(m0.pthreads);
	int fds[2];
	TU_ASSERT_OK(pipe(fds) ? -errno : 0);
	pthread_t a, b;
	TU_ASSERT_OK(-pthread_create(&a, NULL, thr_wait, fds));
	TU_ASSERT_OK(-pthread_create(&b, NULL, thr_quit, NULL));
	/* b ends unjoined; a stays. */
	int64_t dl = tt_deadline_in(5 * TT_SECOND);
	do {
		tt_sleep(MS);
		tt__metrics_gather(&m, tt_now());
		/* The registry marks b ended before the kernel has
		 * taken it out of /proc/self/task. */
	} while ((m.pthreads_unjoined == m0.pthreads_unjoined ||
		  m.threads != m0.threads + 1) &&
		 tt_now() < dl);
	TU_ASSERT_EQ(m.pthreads_live - m0.pthreads_live, 1);
	TU_ASSERT_EQ(m.pthreads_unjoined - m0.pthreads_unjoined, 1);
	TU_ASSERT_EQ(m.threads, m0.threads + 1);
	TU_ASSERT_OK(-pthread_join(b, NULL));
	TU_ASSERT_EQ(write(fds[1], "x", 1), 1);
	TU_ASSERT_OK(-pthread_join(a, NULL));
	close(fds[0]);
	close(fds[1]);
	tt__metrics_gather(&m, tt_now());
	TU_ASSERT_EQ(m.pthreads_live, m0.pthreads_live);
	TU_ASSERT_EQ(m.pthreads_unjoined, m0.pthreads_unjoined);
}

/* ---- other threads ------------------------------------------------------------ */

typedef struct other {
	int fds[2];       /* the thread's main blocks reading fds[0] */
	tt_chan *c;       /* its goroutines wait on this */
	_Atomic int ready;
	_Atomic bool leave;       /* end without waking them (they are orphaned) */
} other;

static void other_recv(void *p)
{
	TU_UNCHECKED(tt_chan_recv(p, NULL, 0, NULL));
}

static void *other_main(void *p)
{
	other *o = p;
	if (tt_chan_make(&o->c, 0, 0))
		return NULL;
	for (int i = 0; i < 4; i++)
		tt_go(other_recv, o->c);
	o->ready = 1;
	char ch;
	(void)!read(o->fds[0], &ch, 1); /* a blocking read: stays running */
	if (!o->leave) {
		tt_chan_close(o->c);
		tt_yield();
		tt_chan_release(o->c);
	}
	return NULL;
}

/* Goroutines of another thread are counted too: its waiting ones under
 * their reason, its main (in a blocking read) as running. */
static void test_other_threads(void **state)
{
	(void)state;
	TU_REQUIRE_THREADS();
	/* The pthread's goroutines must start on it (tt_go on one P):
	 * handed to a P, they would wait for the pthread, blocked in read,
	 * to answer their first receive on its channel. */
	tu_one_p();
	tt__metrics m0, m;
	tt__metrics_gather(&m0, tt_now());
	other o = {0};
	TU_ASSERT_OK(pipe(o.fds) ? -errno : 0);
	pthread_t t;
	TU_ASSERT_OK(-pthread_create(&t, NULL, other_main, &o));
	TU_WAIT_FOR(o.ready, 5 * TT_SECOND);
	tt__metrics_gather(&m, tt_now());
	TU_ASSERT_EQ(m.schedulers, m0.schedulers + 1);
	TU_ASSERT_EQ(m.waiting[TT_WAIT_CHAN_RECV] - m0.waiting[TT_WAIT_CHAN_RECV],
		     4);
	TU_ASSERT_EQ(m.running, m0.running + 1);
	TU_ASSERT_EQ(m.goroutines, m0.goroutines + 5);
	int64_t sum = m.running + m.runnable + m.orphaned;
	for (unsigned r = 0; r < TT_WAIT__COUNT; r++)
		sum += m.waiting[r];
	TU_ASSERT_EQ(sum, m.goroutines);
	TU_ASSERT_EQ(write(o.fds[1], "x", 1), 1);
	TU_ASSERT_OK(-pthread_join(t, NULL));
	close(o.fds[0]);
	close(o.fds[1]);
	tt__metrics_gather(&m, tt_now());
	TU_ASSERT_EQ(m.schedulers, m0.schedulers);
	TU_ASSERT_EQ(m.waiting[TT_WAIT_CHAN_RECV], m0.waiting[TT_WAIT_CHAN_RECV]);
}

/* A thread that ends with goroutines parked leaves them orphaned: in
 * go_goroutines and tether_goroutines_orphaned, in no state (a child
 * process: they stay for good). */
static void child_orphans(void)
{
	/* The goroutines must start on the thread that ends (tt_go on one P):
	 * with more, they may be handed to a P and are not orphaned. */
	TU_ASSERT_GE(tt_runtime_procs_set(1), 1);
	other o = {.leave = true};
	TU_ASSERT_OK(pipe(o.fds) ? -errno : 0);
	pthread_t t;
	TU_ASSERT_OK(-pthread_create(&t, NULL, other_main, &o));
	while (!o.ready)
		usleep(1000);
	TU_ASSERT_EQ(write(o.fds[1], "x", 1), 1);
	TU_ASSERT_OK(-pthread_join(t, NULL));
	tt__metrics m;
	tt__metrics_gather(&m, tt_now());
	TU_ASSERT_EQ(m.orphaned, 4);
	TU_ASSERT_EQ(m.schedulers, 1);
	int64_t sum = m.running + m.runnable + m.orphaned;
	for (unsigned r = 0; r < TT_WAIT__COUNT; r++)
		sum += m.waiting[r];
	TU_ASSERT_EQ(sum, m.goroutines);
	TU_ASSERT_EQ(m.goroutines, tt_num_goroutine());
}

static void test_orphans(void **state)
{
	(void)state;
	TU_REQUIRE_THREADS();
	tu_child c;
	TU_ASSERT_OK(tu_spawn_self("orphans", 30 * TT_SECOND, &c));
	TU_ASSERT_MSG(c.exited && c.exit_code == 0, "child: %s", c.err);
	tu_child_free(&c);
}

/* ---- cmdline and the index -------------------------------------------------- */

/* The arguments joined by NUL bytes, as Go's handler writes os.Args. */
static void check_cmdline(int port)
{
	tu_http_resp r = tu_http(port, "GET", "/debug/pprof/cmdline");
	TU_ASSERT_EQ(r.status, 200);
	TU_ASSERT_MSG(strcmp(tu_http_header(&r, "Content-Type"),
			     "text/plain; charset=utf-8") == 0,
		      "Content-Type: %s", tu_http_header(&r, "Content-Type"));
	size_t want = 0;
	for (int i = 0; i < g_argc; i++)
		want += strlen(g_argv[i]) + (i > 0);
	TU_ASSERT_EQ(r.body_len, want);
	const char *p = r.body;
	for (int i = 0; i < g_argc; i++) {
		TU_ASSERT_MSG(strcmp(p, g_argv[i]) == 0, "argument %d: %s vs %s",
			      i, p, g_argv[i]);
		p += strlen(g_argv[i]) + 1;
	}
	tu_http_free(&r);
}

static void child_cmdline(void)
{
	TU_ASSERT_EQ(g_argc, 3); /* prog --tu-child cmdline */
	tt_debug_server *srv = serve();
	check_cmdline(tt_debug_port(srv));
	TU_ASSERT_OK(tt_debug_shutdown(srv));
}

static void test_cmdline(void **state)
{
	(void)state;
	tt_debug_server *srv = serve();
	check_cmdline(tt_debug_port(srv));
	TU_ASSERT_OK(tt_debug_shutdown(srv));
	/* With several arguments (the child's argv has three). */
	tu_child c;
	TU_ASSERT_OK(tu_spawn_self("cmdline", 30 * TT_SECOND, &c));
	TU_ASSERT_CHILD_EXIT(&c, 0);
	tu_child_free(&c);
}

static void test_index_lists_them(void **state)
{
	(void)state;
	tt_debug_server *srv = serve();
	tu_http_resp r = tu_http(tt_debug_port(srv), "GET", "/debug/pprof/");
	TU_ASSERT_EQ(r.status, 200);
	TU_ASSERT_CONTAINS(r.body, "<a href=\"cmdline\">cmdline</a>");
	TU_ASSERT_CONTAINS(r.body, "<a href=\"/metrics\">/metrics</a>");
	TU_ASSERT_CONTAINS(r.body, "<b>cmdline:</b> The command line "
				   "invocation of the current program");
	TU_ASSERT_CONTAINS(r.body, "<b>/metrics:</b>");
	tu_http_free(&r);
	TU_ASSERT_OK(tt_debug_shutdown(srv));
}

int main(int argc, char **argv)
{
	g_argc = argc;
	g_argv = argv;
	static const tu_child_case cases[] = {{"cmdline", child_cmdline},
					      {"orphans", child_orphans}};
	tu_child_dispatch(argc, argv, cases, 2);
	const struct CMUnitTest tests[] = {
		TU_TEST(test_counts_by_reason),
		TU_TEST(test_waiting_longer_than),
		TU_TEST(test_waits_model),
		TU_TEST(test_switch_count),
		TU_TEST(test_exposition),
		TU_TEST(test_exposition_optional),
		TU_TEST(test_escaping),
		TU_TEST(test_pthread_counts),
		TU_TEST(test_other_threads),
		TU_TEST(test_orphans),
		TU_TEST(test_cmdline),
		TU_TEST(test_index_lists_them),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
