/* The debug page's marks and history: proven leaks and growing groups
 * marked and sorted first, a steady group unmarked, the min_wait
 * threshold, the diff view (HTML and text), the bounded history of
 * snapshots, and 400s for bad min_wait, since and diff. The server
 * listens on 127.0.0.1:0; the client is a goroutine of the same
 * scheduler. */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "debug/debug.h"
#include "testutil.h"
#include "chan_queued.h"

#define MS TT_MILLISECOND

/* ---- HTTP: one request per connection, read to EOF ---------------------- */

typedef struct resp {
	int status;
	char *body; /* NUL-terminated, after the head */
} resp;

static resp get_as(tt_debug_server *srv, const char *target, bool html)
{
	tu_http_resp h = tu_http_req(
		tt_debug_port(srv), "GET", target,
		html ? "Accept: text/html\r\n" : NULL,
		(tu_emulated() ? 120 : 20) * TT_SECOND);
	free(h.head);
	return (resp){.status = h.status, .body = h.body};
}

static resp get_html(tt_debug_server *srv, const char *target)
{
	return get_as(srv, target, true);
}

/* The <details> of the group whose top function is func, or NULL. */
static char *group_of(const char *page, const char *func)
{
	char needle[128];
	snprintf(needle, sizeof needle, "<code class=\"fn\">%s</code>", func);
	const char *at = strstr(page, "<section id=\"groups\">");
	TU_ASSERT(at != NULL);
	const char *hit = strstr(at, needle);
	if (!hit)
		return NULL;
	const char *start = hit;
	while (start > at && strncmp(start, "<details", 8) != 0)
		start--;
	const char *end = strstr(hit, "</details>");
	TU_ASSERT(end != NULL && start > at);
	return strndup(start, (size_t)(end - start));
}

/* The position of func's group in the list (1 = first), or 0. */
static int rank_of(const char *page, const char *func)
{
	char *g = group_of(page, func);
	if (!g)
		return 0;
	int ix = 0;
	TU_ASSERT(sscanf(strstr(g, " id=\"g") + 6, "%d", &ix) == 1);
	free(g);
	return ix;
}

static long long attr_num(const char *s, const char *name)
{
	char k[64];
	snprintf(k, sizeof k, " %s=\"", name);
	const char *p = strstr(s, k);
	return p ? strtoll(p + strlen(k), NULL, 10) : -999;
}

/* Parking places: each a stack of its own. */
static __attribute__((noinline)) void steady_place(void *arg)
{
	TU_UNCHECKED(tt_chan_recv(arg, &(char){0}, 0, NULL));
}

static __attribute__((noinline)) void leaky_place(void *arg)
{
	TU_UNCHECKED(tt_chan_recv(arg, &(char){0}, 0, NULL));
}

static _Atomic int churn_woken;

static __attribute__((noinline)) void churn_place(void *arg)
{
	TU_UNCHECKED(tt_chan_recv(arg, &(char){0}, 0, NULL));
	atomic_fetch_add(&churn_woken, 1); /* and it ends, parking nowhere */
}

/* n goroutines parked at fn, receiving on c: with more than one P they
 * may start on another thread, and later. */
static void go_n(int n, tt_func fn, tt_chan *c)
{
	int queued = tu_chan_queued(c, false);
	for (int i = 0; i < n; i++)
		tu_go(fn, c);
	TU_WAIT_QUEUED(c, false, queued + n);
}

/* Close c and wait until the n churn_place goroutines on it are woken
 * (with more than one P they may run on another thread, and later): past
 * that they end without parking, before their thread does anything
 * else, a snapshot's part included. */
static void close_churn(tt_chan *c, int n)
{
	int woken = atomic_load(&churn_woken);
	TU_ASSERT_OK(tt_chan_close(c));
	TU_WAIT_FOR(atomic_load(&churn_woken) == woken + n, 5 * TT_SECOND);
}

/* ---- growth ---------------------------------------------------------------- */

static void test_growing_marked_steady_not(void **state)
{
	(void)state;
	tt_chan *block = tu_chan(0, 0), *old = tu_chan(0, 0);
	go_n(10, steady_place, block); /* the biggest group, steady */
	go_n(2, leaky_place, block);
	go_n(2, churn_place, old);
	tt_debug_server *srv = NULL;
	TU_ASSERT_OK(tt_debug_serve("127.0.0.1:0", NULL, &srv));

	/* The first view: nothing to compare with, no marks. */
	resp r = get_html(srv, "/?min_wait=0");
	TU_ASSERT_EQ(r.status, 200);
	TU_ASSERT_CONTAINS(r.body, "snapshot <b id=\"snap-id\">1</b>");
	TU_ASSERT_CONTAINS(r.body, "No earlier snapshot");
	TU_ASSERT_NOT_CONTAINS(r.body, "data-mark=");
	TU_ASSERT_NOT_CONTAINS(r.body, "id=\"alert-grow\"");
	TU_ASSERT_EQ(rank_of(r.body, "steady_place"), 1);
	free(r.body);

	tt_sleep(120 * MS);
	/* The leaky group grows: its first two stay, three more come. The
	 * churning group grows too, but its members are all new: the two
	 * seen then have gone. */
	go_n(3, leaky_place, block);
	close_churn(old, 2);
	tt_chan *fresh = tu_chan(0, 0);
	go_n(3, churn_place, fresh);

	/* min_wait=60ms: the leaky pair waited 120 ms, the newcomers 5. */
	r = get_html(srv, "/?min_wait=60ms");
	TU_ASSERT_EQ(r.status, 200);
	TU_ASSERT_CONTAINS(r.body, "snapshot <b id=\"snap-id\">2</b>");
	TU_ASSERT_CONTAINS(r.body, "Compared since snapshot <b "
				   "id=\"base-id\">1</b>");
	char *g = group_of(r.body, "leaky_place");
	TU_ASSERT(g != NULL);
	TU_ASSERT_CONTAINS(g, "data-mark=\"grow\"");
	TU_ASSERT_EQ(attr_num(g, "data-then"), 2);
	TU_ASSERT_EQ(attr_num(g, "data-count"), 5);
	TU_ASSERT_CONTAINS(g, "<span class=\"mark grow\">growing +3, waited "
			      "&gt; 60 ms</span>");
	free(g);
	/* Sorted first, ahead of the bigger steady group. */
	TU_ASSERT_EQ(rank_of(r.body, "leaky_place"), 1);
	TU_ASSERT_CONTAINS(r.body, "<p class=\"alert grow\" "
				   "id=\"alert-grow\">1 stack growing since "
				   "snapshot 1 (+3 goroutines)");
	g = group_of(r.body, "steady_place");
	TU_ASSERT(g != NULL);
	TU_ASSERT_NOT_CONTAINS(g, "data-mark");
	TU_ASSERT_NOT_CONTAINS(g, "class=\"delta\"");
	TU_ASSERT_EQ(attr_num(g, "data-then"), 10);
	free(g);
	g = group_of(r.body, "churn_place");
	TU_ASSERT(g != NULL);
	TU_ASSERT_NOT_CONTAINS(g, "data-mark");
	TU_ASSERT_CONTAINS(g, "<span class=\"delta\">+1 since #1</span>");
	free(g);
	free(r.body);

	/* The default threshold (a minute): nobody has waited that long. */
	r = get_html(srv, "/?since=1");
	TU_ASSERT_NOT_CONTAINS(r.body, "data-mark=");
	TU_ASSERT_CONTAINS(r.body, "longer than 60 s");
	g = group_of(r.body, "leaky_place");
	TU_ASSERT_CONTAINS(g, "<span class=\"delta\">+3 since #1</span>");
	free(g);
	free(r.body);

	/* Against the previous view (snapshot 3), nothing grew. (The
	 * test's own goroutine is parked at another call now, a new group
	 * of one: younger than min_wait. The connection that served the
	 * last view may still be parked reading: the server's own
	 * goroutines are never marked.) */
	r = get_html(srv, "/?min_wait=100ms");
	TU_ASSERT_CONTAINS(r.body, "Compared since snapshot <b "
				   "id=\"base-id\">3</b>");
	TU_ASSERT_NOT_CONTAINS(r.body, "data-mark=");
	TU_ASSERT_NOT_CONTAINS(r.body, "id=\"alert-grow\"");
	free(r.body);

	TU_ASSERT_OK(tt_debug_shutdown(srv));
	TU_ASSERT_OK(tt_chan_close(block));
	TU_ASSERT_OK(tt_chan_close(fresh));
	tt_chan_release(block);
	tt_chan_release(old);
	tt_chan_release(fresh);
}

/* A browser's idle keep-alive connections park in the server for long
 * and come and go: the server's own goroutines are never marked. */
static int idle_conn(tt_debug_server *srv)
{
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	TU_ASSERT_GE(fd, 0);
	struct sockaddr_in a = {.sin_family = AF_INET,
				.sin_port = htons((uint16_t)tt_debug_port(srv)),
				.sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	TU_ASSERT_OK(tt_connect(fd, (struct sockaddr *)&a, sizeof a,
				tt_deadline_in(5 * TT_SECOND)));
	return fd;
}

static void test_own_connections_not_marked(void **state)
{
	(void)state;
	tt_debug_server *srv = NULL;
	TU_ASSERT_OK(tt_debug_serve("127.0.0.1:0", NULL, &srv));
	int fds[3];
	fds[0] = idle_conn(srv);
	tt_sleep(20 * MS);
	resp r = get_html(srv, "/");
	free(r.body);
	fds[1] = idle_conn(srv);
	fds[2] = idle_conn(srv);
	tt_sleep(60 * MS);
	/* The idle connections' group grew from 1 to 3, the first has
	 * waited 80 ms: a growing group, but the server's own. */
	r = get_html(srv, "/?min_wait=10ms");
	char *g = group_of(r.body, "conn_main");
	TU_ASSERT(g != NULL);
	TU_ASSERT_CONTAINS(g, "tether/debug conn");
	TU_ASSERT_GE(attr_num(g, "data-count"), 3);
	free(g);
	TU_ASSERT_NOT_CONTAINS(r.body, "data-mark=");
	free(r.body);
	for (int i = 0; i < 3; i++)
		close(fds[i]);
	TU_ASSERT_OK(tt_debug_shutdown(srv));
}

/* ---- the diff ---------------------------------------------------------------- */

static void test_diff(void **state)
{
	(void)state;
	tt_chan *block = tu_chan(0, 0), *gone = tu_chan(0, 0);
	go_n(2, leaky_place, block);
	go_n(4, steady_place, block);
	go_n(3, churn_place, gone);
	tt_debug_server *srv = NULL;
	TU_ASSERT_OK(tt_debug_serve("127.0.0.1:0", NULL, &srv));
	resp r = get_html(srv, "/");
	free(r.body);
	go_n(5, leaky_place, block);
	close_churn(gone, 3);

	r = get_html(srv, "/?diff=1");
	TU_ASSERT_EQ(r.status, 200);
	TU_ASSERT_CONTAINS(r.body, "What changed since snapshot <span "
				   "id=\"base-id\">1</span>");
	/* The first row is the one that grew most. */
	const char *row = strstr(r.body, "<tbody>\n<tr");
	TU_ASSERT(row != NULL);
	const char *row_end = strstr(row, "</tr>");
	char *first = strndup(row, (size_t)(row_end - row));
	TU_ASSERT_CONTAINS(first, "data-then=\"2\" data-now=\"7\" "
				  "data-delta=\"5\"");
	TU_ASSERT_CONTAINS(first, "<code class=\"fn\">leaky_place</code>");
	TU_ASSERT_CONTAINS(first, "chan receive");
	free(first);
	TU_ASSERT_CONTAINS(r.body, "data-then=\"4\" data-now=\"4\" "
				   "data-delta=\"0\"");
	/* Gone: churn_place's three, and the stack the test's own
	 * goroutine had then. The connection that served the first view
	 * ran where this one runs, in the same call, but whether that is
	 * the same stack is the compiler's: it may call the snapshot from
	 * one place for a diff and from another for the page. */
	const char *conn = strstr(r.body, "<span class=\"name\">tether/debug "
					  "conn</span>");
	TU_ASSERT(conn != NULL);
	const char *conn_row = conn;
	while (conn_row > r.body && strncmp(conn_row, "<tr ", 4) != 0)
		conn_row--;
	long long conn_then = attr_num(conn_row, "data-then");
	TU_ASSERT_MSG(conn_then == 0 || conn_then == 1, "conn then %lld",
		      conn_then);
	TU_ASSERT_EQ(attr_num(conn_row, "data-now"), 1);
	TU_ASSERT_CONTAINS(r.body,
			   conn_then ? "Gone since then: 2 stack/state pairs "
				       "(4 goroutines)"
				     : "Gone since then: 3 stack/state pairs "
				       "(5 goroutines)");
	TU_ASSERT_NOT_CONTAINS(r.body, "churn_place");
	free(r.body);

	/* The same as text, for curl, on the profile's path. */
	r = get_as(srv, "/debug/pprof/goroutine?diff=1", false);
	TU_ASSERT_EQ(r.status, 200);
	TU_ASSERT_CONTAINS(r.body, "goroutine diff: since snapshot 1, ");
	/* Then: 9 parked, the test's own, the acceptor, the connection
	 * serving the view; now two more parked. */
	long long then_n = 0, now_n = 0;
	const char *tot = strstr(r.body, "total ");
	TU_ASSERT(tot != NULL);
	TU_ASSERT(sscanf(tot, "total %lld -> %lld", &then_n, &now_n) == 2);
	TU_ASSERT_EQ(now_n - then_n, 2);
	TU_ASSERT_GE(then_n, 12);
	TU_ASSERT_CONTAINS(tot, " (+2)\n\n");
	TU_ASSERT(strncmp(strstr(r.body, "\n\n") + 2,
			  "+5 (2 -> 7) [chan receive] @ 0x", 31) == 0);
	TU_ASSERT_CONTAINS(r.body, "\tleaky_place");
	TU_ASSERT_CONTAINS(r.body, "\n+0 (4 -> 4) [chan receive] @ 0x");
	TU_ASSERT_CONTAINS(r.body, "\ngone: 3 (5 goroutines)\n");
	free(r.body);
	/* "/" to curl, with diff=, is the text too. */
	r = get_as(srv, "/?diff=1", false);
	TU_ASSERT_EQ(r.status, 200);
	TU_ASSERT_CONTAINS(r.body, "goroutine diff: since snapshot 1, ");
	free(r.body);
	/* The diff view takes no snapshot of its own. */
	r = get_html(srv, "/");
	TU_ASSERT_CONTAINS(r.body, "snapshot <b id=\"snap-id\">2</b>");
	free(r.body);

	TU_ASSERT_OK(tt_debug_shutdown(srv));
	TU_ASSERT_OK(tt_chan_close(block));
	tt_chan_release(block);
	tt_chan_release(gone);
}

/* ---- the history is bounded ------------------------------------------------ */

/* 20 entry functions times 16 depths: 320 stacks. */
static __attribute__((noinline)) void deep(tt_chan *c, int d)
{
	if (d > 0)
		deep(c, d - 1);
	else
		TU_UNCHECKED(tt_chan_recv(c, &(char){0}, 0, NULL));
	__asm__ volatile("" ::: "memory"); /* not a tail call */
}

typedef struct deep_arg {
	tt_chan *c;
	int d;
} deep_arg;

#define DEEP_FN(k)                                                          \
	static __attribute__((noinline)) void deep_##k(void *p)             \
	{                                                                   \
		deep_arg *a = p;                                            \
		deep(a->c, a->d);                                           \
		__asm__ volatile("" ::: "memory");                          \
	}
DEEP_FN(0) DEEP_FN(1) DEEP_FN(2) DEEP_FN(3) DEEP_FN(4) DEEP_FN(5) DEEP_FN(6)
DEEP_FN(7) DEEP_FN(8) DEEP_FN(9) DEEP_FN(10) DEEP_FN(11) DEEP_FN(12)
DEEP_FN(13) DEEP_FN(14) DEEP_FN(15) DEEP_FN(16) DEEP_FN(17) DEEP_FN(18)
DEEP_FN(19)
static tt_func const deep_fns[20] = {
	deep_0,	 deep_1,  deep_2,  deep_3,  deep_4,  deep_5,  deep_6,
	deep_7,	 deep_8,  deep_9,  deep_10, deep_11, deep_12, deep_13,
	deep_14, deep_15, deep_16, deep_17, deep_18, deep_19};

static void test_history_bounded(void **state)
{
	(void)state;
	TU_ASSERT(sizeof(tt__page_hist) < 40 * 1024);
	if (tu_emulated()) {
		/* Thirteen views symbolizing 320 stacks each take minutes
		 * under an emulator; the bound is the same code natively. */
		print_message("skipped under an emulator: 13 views of 320 "
			      "stacks\n");
		skip();
	}
	tt_chan *block = tu_chan(0, 0);
	static deep_arg args[16];
	for (int d = 0; d < 16; d++) {
		args[d] = (deep_arg){block, d};
		for (int k = 0; k < 20; k++)
			tu_go(deep_fns[k], &args[d]);
	}
	tt_sleep(10 * MS);
	tt__page_hist *h = NULL;
	tt__page_opts o = {.min_wait = 0};
	char why[200];
	/* Twelve views: the first four are dropped. */
	for (int i = 0; i < 12; i++) {
		tt__buf b = {0};
		TU_ASSERT_OK(tt__debug_page(&b, &o, &h, why, sizeof why));
		tt__buf_free(&b);
	}
	TU_ASSERT_EQ(h->last, 12);
	TU_ASSERT_EQ(h->n, TT__HIST_KEEP);
	/* Each kept the largest groups up to the bound and counted the
	 * rest. */
	const tt__hist_snap *s = &h->s[12 % TT__HIST_KEEP];
	TU_ASSERT_EQ(s->id, 12);
	TU_ASSERT_EQ(s->n, TT__HIST_ENTRIES);
	TU_ASSERT_GE(s->untracked, 320 - TT__HIST_ENTRIES);
	TU_ASSERT_EQ(s->total, (uint64_t)tt_num_goroutine());
	/* Too old: an error that says what is kept. */
	o.since = 4;
	tt__buf b = {0};
	TU_ASSERT_ERR(tt__debug_page(&b, &o, &h, why, sizeof why), -EINVAL);
	TU_ASSERT_CONTAINS(why, "since=4: no such snapshot; the last 8 are "
				"kept, now 5 to 12");
	tt__buf_free(&b);
	o.since = 5;
	b = (tt__buf){0};
	TU_ASSERT_OK(tt__debug_page(&b, &o, &h, why, sizeof why));
	/* A group the history did not keep is not called new: it shows
	 * no count then. Every one of the 320 is a group of one. */
	size_t known = 0;
	for (const char *p = b.data; (p = strstr(p, " data-then=\"")); p++)
		known++;
	/* (The test's own goroutine is at another call now.) */
	TU_ASSERT_RANGE(known, TT__HIST_ENTRIES - 1, TT__HIST_ENTRIES);
	TU_ASSERT_NOT_CONTAINS(b.data, "data-mark=");
	tt__buf_free(&b);
	free(h);
	TU_ASSERT_OK(tt_chan_close(block));
	tt_chan_release(block);
}

/* ---- bad queries --------------------------------------------------------------- */

static void expect_400(tt_debug_server *srv, const char *target, bool html,
		       const char *msg)
{
	resp r = get_as(srv, target, html);
	TU_ASSERT_MSG(r.status == 400, "%s: %d", target, r.status);
	TU_ASSERT_CONTAINS(r.body, "400 Bad Request\n");
	TU_ASSERT_CONTAINS(r.body, msg);
	free(r.body);
}

static void test_bad_queries(void **state)
{
	(void)state;
	tt_debug_server *srv = NULL;
	TU_ASSERT_OK(tt_debug_serve("127.0.0.1:0", NULL, &srv));
	const char *dur = "min_wait must be a duration";
	expect_400(srv, "/?min_wait=abc", true, dur);
	expect_400(srv, "/?min_wait=-1", true, dur);
	expect_400(srv, "/?min_wait=5x", true, dur);
	expect_400(srv, "/?min_wait=", true, dur);
	expect_400(srv, "/?min_wait=99999999999999999999", true, dur);
	expect_400(srv, "/?since=0", true, "since must be a snapshot id");
	expect_400(srv, "/?since=x", true, "since must be a snapshot id");
	expect_400(srv, "/?diff=", true, "diff must be a snapshot id");
	expect_400(srv, "/?since=3", true,
		   "since=3: no snapshot is kept yet");
	expect_400(srv, "/debug/pprof/goroutine?diff=1", false,
		   "diff=1: no snapshot is kept yet");
	resp r = get_html(srv, "/?min_wait=90");
	TU_ASSERT_EQ(r.status, 200);
	TU_ASSERT_CONTAINS(r.body, "longer than 90 s");
	free(r.body);
	r = get_html(srv, "/?min_wait=2m");
	TU_ASSERT_CONTAINS(r.body, "longer than 2 min");
	/* The link to the next comparison keeps the threshold. */
	TU_ASSERT_CONTAINS(r.body, "href=\"/?since=2&amp;min_wait=120000ms\"");
	free(r.body);
	expect_400(srv, "/?diff=3", true,
		   "diff=3: no such snapshot; the last 8 are kept, now 1 to "
		   "2");
	expect_400(srv, "/debug/pprof/goroutine?diff=x", false,
		   "diff must be a snapshot id");
	TU_ASSERT_OK(tt_debug_shutdown(srv));
}

/* ---- the flame graph's data and script --------------------------------------- */

static void test_flame_script(void **state)
{
	(void)state;
	tt_chan *block = tu_chan(0, 0);
	go_n(6, leaky_place, block);
	tt_debug_server *srv = NULL;
	TU_ASSERT_OK(tt_debug_serve("127.0.0.1:0", NULL, &srv));
	resp r = get_html(srv, "/");
	/* Each box carries its function, offset, count and depth. */
	TU_ASSERT_CONTAINS(r.body, "<g class=\"f\" data-n=\"leaky_place\" "
				   "data-o=\"");
	const char *box = strstr(r.body, "data-n=\"leaky_place\"");
	TU_ASSERT_EQ(attr_num(box - 1, "data-c"), 6);
	TU_ASSERT_GE(attr_num(box - 1, "data-d"), 1);
	/* The tools are hidden until the script shows them; one inline
	 * script, nothing fetched. */
	TU_ASSERT_CONTAINS(r.body, "<div id=\"flame-tools\" hidden>");
	TU_ASSERT_CONTAINS(r.body, "<script>\n(function(){");
	TU_ASSERT_NOT_CONTAINS(r.body, "<script src");
	TU_ASSERT_NOT_CONTAINS(r.body, " src=");
	TU_ASSERT_NOT_CONTAINS(r.body, "<link");
	free(r.body);
	TU_ASSERT_OK(tt_debug_shutdown(srv));
	TU_ASSERT_OK(tt_chan_close(block));
	tt_chan_release(block);
}

/* ---- proven leaks (in a child: they never end) ------------------------------- */

static void wait_recv(void *arg)
{
	TU_UNCHECKED(tt_chan_recv(arg, &(char){0}, 0, NULL));
}

static void child_proven_page(void)
{
	tt_chan *keep = tu_chan(0, 0);
	go_n(9, steady_place, keep);
	tt_chan *c;
	TU_ASSERT_OK(tt_chan_make(&c, 0, 0));
	go_n(2, wait_recv, c);
	TU_ASSERT_OK(tt_chan_release(c)); /* nobody can wake them now */
	tt__page_hist *h = NULL;
	tt__page_opts o = {.min_wait = TT_MINUTE};
	char why[200];
	tt__buf b = {0};
	TU_ASSERT_OK(tt__debug_page(&b, &o, &h, why, sizeof why));
	TU_ASSERT_EQ(rank_of(b.data, "wait_recv"), 1);
	char *g = group_of(b.data, "wait_recv");
	TU_ASSERT_CONTAINS(g, "data-mark=\"leak\"");
	TU_ASSERT_CONTAINS(g, "<span class=\"mark leak\">proven leak</span>");
	TU_ASSERT_CONTAINS(g, "goroutineleak?debug=2");
	free(g);
	TU_ASSERT_CONTAINS(b.data, "<p class=\"alert leak\" "
				   "id=\"alert-leak\">2 goroutines proven "
				   "leaked, in 1 stack:");
	g = group_of(b.data, "steady_place");
	TU_ASSERT_NOT_CONTAINS(g, "data-mark");
	free(g);
	tt__buf_free(&b);
	free(h);
	fprintf(stderr, "tu-end\n");
}

static void test_proven_marked(void **state)
{
	(void)state;
	tu_child c;
	TU_ASSERT_OK(tu_spawn_self("proven_page", 60 * TT_SECOND, &c));
	TU_ASSERT_CHILD_EXIT(&c, 0);
	TU_ASSERT_CONTAINS(c.err, "tu-end");
	tu_child_free(&c);
}

int main(int argc, char **argv)
{
	static const tu_child_case cases[] = {
		{"proven_page", child_proven_page},
	};
	tu_child_dispatch(argc, argv, cases, 1);
	const struct CMUnitTest tests[] = {
		TU_TEST(test_growing_marked_steady_not),
		TU_TEST(test_own_connections_not_marked),
		TU_TEST(test_diff),
		TU_TEST(test_history_bounded),
		TU_TEST(test_bad_queries),
		TU_TEST(test_flame_script),
		TU_TEST(test_proven_marked),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
