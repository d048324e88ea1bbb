/* The debug HTTP server: routes, keep-alive and pipelining, every limit,
 * slow and surplus clients, concurrent clients while other goroutines
 * run, shutdown, and the grouped page's content. The server listens on
 * 127.0.0.1:0; the clients are goroutines of the same scheduler, so every
 * test also shows that nothing the server does blocks the thread. */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "testutil.h"

#define MS TT_MILLISECOND

/* ---- a small HTTP client ---------------------------------------------- */

typedef struct resp {
	int status;
	char *head; /* status line and headers, NUL-terminated */
	char *body; /* NUL-terminated (binary bodies may hold NULs too) */
	size_t body_len;
	bool closed; /* the server closed the connection after it */
	char value[256]; /* header()'s answer */
} resp;

typedef struct client {
	int fd;
	char buf[1 << 16];
	size_t have;
	bool eof;
} client;

static tt_debug_server *start(const tt_debug_opts *o)
{
	tt_debug_server *srv = NULL;
	TU_ASSERT_OK(tt_debug_serve("127.0.0.1:0", o, &srv));
	TU_ASSERT(srv != NULL);
	TU_ASSERT_GT(tt_debug_port(srv), 0);
	return srv;
}

static client *dial(tt_debug_server *srv)
{
	client *c = calloc(1, sizeof *c);
	TU_ASSERT(c != NULL);
	c->fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	TU_ASSERT_GE(c->fd, 0);
	struct sockaddr_in a = {.sin_family = AF_INET,
				.sin_port = htons((uint16_t)tt_debug_port(srv)),
				.sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	TU_ASSERT_OK(tt_connect(c->fd, (struct sockaddr *)&a, sizeof a,
				tt_deadline_in(5 * TT_SECOND)));
	return c;
}

static void hang_up(client *c)
{
	close(c->fd);
	free(c);
}

static void send_str(client *c, const char *s)
{
	ssize_t n = send(c->fd, s, strlen(s), MSG_NOSIGNAL);
	TU_ASSERT_EQ(n, (ssize_t)strlen(s));
}

/* More bytes into c->buf; false at end of file (or a reset). */
static bool fill(client *c, int64_t deadline)
{
	if (c->have == sizeof c->buf - 1)
		return true;
	ssize_t n = tt_read(c->fd, c->buf + c->have,
			    sizeof c->buf - 1 - c->have, deadline);
	TU_ASSERT_MSG(n != -ETIMEDOUT, "no response in time");
	if (n <= 0) {
		c->eof = true;
		return false;
	}
	c->have += (size_t)n;
	c->buf[c->have] = '\0';
	return true;
}

static void consume(client *c, size_t n)
{
	memmove(c->buf, c->buf + n, c->have - n);
	c->have -= n;
	c->buf[c->have] = '\0';
}

static void body_put(resp *r, size_t *cap, const char *p, size_t n)
{
	while (r->body_len + n + 1 > *cap) {
		*cap = *cap ? *cap * 2 : 4096;
		r->body = realloc(r->body, *cap);
		TU_ASSERT(r->body != NULL);
	}
	memcpy(r->body + r->body_len, p, n);
	r->body_len += n;
	r->body[r->body_len] = '\0';
}

/* The header's value in r->head ("" when absent), in r->value. */
static const char *header(resp *r, const char *name)
{
	return tu_header_value(r->head, name, r->value, sizeof r->value);
}

/* Read one response (to a request of method `head_req` if HEAD). */
static resp read_resp(client *c, bool head_req)
{
	/* Under qemu-user a profile takes seconds, and requests for them
	 * on one scheduler take turns. */
	int64_t dl = tt_deadline_in((tu_emulated() ? 120 : 10) * TT_SECOND);
	resp r = {0};
	char *end;
	while ((end = strstr(c->buf, "\r\n\r\n")) == NULL)
		TU_ASSERT_MSG(fill(c, dl), "connection closed before a "
					   "response head (have %zu bytes)",
			      c->have);
	size_t hl = (size_t)(end - c->buf) + 4;
	r.head = strndup(c->buf, hl);
	TU_ASSERT(r.head != NULL);
	TU_ASSERT_MSG(sscanf(r.head, "HTTP/1.%*d %d", &r.status) == 1,
		      "bad status line: %s", r.head);
	consume(c, hl);
	size_t cap = 0;
	body_put(&r, &cap, "", 0);
	const char *cl = header(&r, "Content-Length");
	if (head_req) {
		/* no body */
	} else if (cl[0]) {
		size_t want = strtoul(cl, NULL, 10);
		while (c->have < want && c->have < sizeof c->buf - 1)
			TU_ASSERT(fill(c, dl));
		while (r.body_len + c->have < want) {
			body_put(&r, &cap, c->buf, c->have);
			consume(c, c->have);
			TU_ASSERT(fill(c, dl));
		}
		size_t k = want - r.body_len;
		body_put(&r, &cap, c->buf, k);
		consume(c, k);
	} else if (strcmp(header(&r, "Transfer-Encoding"), "chunked") == 0) {
		for (;;) {
			char *le;
			while ((le = strstr(c->buf, "\r\n")) == NULL)
				TU_ASSERT(fill(c, dl));
			size_t sz = strtoul(c->buf, NULL, 16);
			consume(c, (size_t)(le - c->buf) + 2);
			bool last = sz == 0; /* no trailers follow */
			while (sz > 0) {
				if (c->have == 0)
					TU_ASSERT(fill(c, dl));
				size_t k = sz < c->have ? sz : c->have;
				body_put(&r, &cap, c->buf, k);
				consume(c, k);
				sz -= k;
			}
			while (c->have < 2)
				TU_ASSERT(fill(c, dl));
			TU_ASSERT(c->buf[0] == '\r' && c->buf[1] == '\n');
			consume(c, 2);
			if (last)
				break;
		}
	} else {
		/* Until close. */
		do {
			body_put(&r, &cap, c->buf, c->have);
			consume(c, c->have);
		} while (fill(c, dl));
		r.closed = true;
	}
	if (!r.closed && strcasecmp(header(&r, "Connection"), "close") == 0) {
		/* The server must close now: end of file, nothing more. */
		TU_ASSERT_MSG(!fill(c, dl) && c->have == 0,
			      "data after a Connection: close response");
		r.closed = true;
	}
	return r;
}

static void resp_free(resp *r)
{
	free(r->head);
	free(r->body);
}

/* One request on a new connection. */
static resp get(tt_debug_server *srv, const char *target)
{
	client *c = dial(srv);
	char req[512];
	snprintf(req, sizeof req,
		 "GET %s HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n"
		 "\r\n",
		 target);
	send_str(c, req);
	resp r = read_resp(c, false);
	hang_up(c);
	return r;
}

/* GET as a browser asks: Accept names text/html. */
static resp get_html(tt_debug_server *srv, const char *target)
{
	client *c = dial(srv);
	char req[512];
	snprintf(req, sizeof req,
		 "GET %s HTTP/1.1\r\nHost: 127.0.0.1\r\nAccept: "
		 "text/html,application/xhtml+xml,*/*;q=0.8\r\n"
		 "Connection: close\r\n\r\n",
		 target);
	send_str(c, req);
	resp r = read_resp(c, false);
	hang_up(c);
	return r;
}

/* The status of a raw request on a new connection, and that the server
 * closed it afterwards when `closes`. */
static int raw_status(tt_debug_server *srv, const char *raw, bool closes)
{
	client *c = dial(srv);
	send_str(c, raw);
	resp r = read_resp(c, false);
	int st = r.status;
	if (closes)
		TU_ASSERT_MSG(r.closed, "the server kept the connection "
					"after %d",
			      st);
	resp_free(&r);
	hang_up(c);
	return st;
}

/* ---- routes -------------------------------------------------------------- */

static void test_routes(void **state)
{
	(void)state;
	tt_debug_server *srv = start(NULL);

	resp r = get(srv, "/debug/pprof/");
	TU_ASSERT_EQ(r.status, 200);
	TU_ASSERT_CONTAINS(header(&r, "Content-Type"), "text/html");
	TU_ASSERT_CONTAINS(r.body, "goroutine?debug=1");
	TU_ASSERT_CONTAINS(r.body, "goroutineleak");
	TU_ASSERT_CONTAINS(r.body, "full goroutine stack dump");
	resp_free(&r);

	r = get(srv, "/debug/pprof/goroutine?debug=1");
	TU_ASSERT_EQ(r.status, 200);
	TU_ASSERT(strcmp(header(&r, "Content-Type"),
			 "text/plain; charset=utf-8") == 0);
	TU_ASSERT_CONTAINS(r.body, "goroutine profile: total ");
	resp_free(&r);

	r = get(srv, "/debug/pprof/goroutine?debug=2");
	TU_ASSERT_EQ(r.status, 200);
	TU_ASSERT_CONTAINS(header(&r, "Content-Type"), "text/plain");
	TU_ASSERT_CONTAINS(r.body, "goroutine 1 [");
	resp_free(&r);

	r = get(srv, "/debug/pprof/goroutine?debug=0");
	TU_ASSERT_EQ(r.status, 200);
	TU_ASSERT(strcmp(header(&r, "Content-Type"),
			 "application/octet-stream") == 0);
	TU_ASSERT(strcmp(header(&r, "Content-Disposition"),
			 "attachment; filename=\"goroutine\"") == 0);
	TU_ASSERT_GT(r.body_len, 2);
	TU_ASSERT((unsigned char)r.body[0] == 0x1f &&
		  (unsigned char)r.body[1] == 0x8b); /* gzip */
	resp_free(&r);

	r = get(srv, "/debug/pprof/goroutine"); /* debug=0 by default */
	TU_ASSERT_EQ(r.status, 200);
	TU_ASSERT((unsigned char)r.body[0] == 0x1f);
	resp_free(&r);

	r = get(srv, "/debug/pprof/goroutineleak?debug=1");
	TU_ASSERT_EQ(r.status, 200);
	TU_ASSERT_CONTAINS(r.body, "goroutineleak profile: total 0");
	resp_free(&r);

	/* "/" for curl (no Accept): the grouped text profile, as the
	 * article's program answers; for a browser, the page. */
	r = get(srv, "/");
	TU_ASSERT_EQ(r.status, 200);
	TU_ASSERT(strcmp(header(&r, "Content-Type"),
			 "text/plain; charset=utf-8") == 0);
	TU_ASSERT(strncmp(r.body, "goroutine profile: total ", 25) == 0);
	TU_ASSERT_NOT_CONTAINS(r.body, "<html");
	resp_free(&r);
	r = get_html(srv, "/");
	TU_ASSERT_EQ(r.status, 200);
	TU_ASSERT_CONTAINS(header(&r, "Content-Type"), "text/html");
	TU_ASSERT_CONTAINS(r.body, "<svg");
	TU_ASSERT_CONTAINS(r.body, "tether/debug");
	resp_free(&r);

	r = get(srv, "/debug/pprof");
	TU_ASSERT_EQ(r.status, 301);
	TU_ASSERT(strcmp(header(&r, "Location"), "/debug/pprof/") == 0);
	resp_free(&r);

	/* %-escapes in the path are decoded before routing. */
	r = get(srv, "/debug/%70prof/goroutine?debug=%31");
	TU_ASSERT_EQ(r.status, 200);
	TU_ASSERT_CONTAINS(r.body, "goroutine profile: total ");
	resp_free(&r);

	r = get(srv, "/nothing/here");
	TU_ASSERT_EQ(r.status, 404);
	resp_free(&r);
	r = get(srv, "/debug/pprof/heap");
	TU_ASSERT_EQ(r.status, 404);
	resp_free(&r);
	r = get(srv, "/debug/pprof/goroutine?debug=3");
	TU_ASSERT_EQ(r.status, 400);
	TU_ASSERT_CONTAINS(r.body, "debug must be 0, 1 or 2");
	resp_free(&r);
	r = get(srv, "/debug/pprof/goroutine?debug=x");
	TU_ASSERT_EQ(r.status, 400);
	resp_free(&r);
	r = get(srv, "/?a=%zz");
	TU_ASSERT_EQ(r.status, 400);
	resp_free(&r);
	r = get(srv, "/debug%2Fpprof/");
	TU_ASSERT_EQ(r.status, 400);
	resp_free(&r);

	/* HEAD: the head of the GET, no body. */
	client *c = dial(srv);
	send_str(c, "HEAD / HTTP/1.1\r\nHost: localhost\r\n"
		    "Accept: TEXT/HTML\r\n\r\n");
	r = read_resp(c, true);
	TU_ASSERT_EQ(r.status, 200);
	TU_ASSERT_GT(strtol(header(&r, "Content-Length"), NULL, 10), 100);
	resp_free(&r);
	/* ...and the connection goes on with the next request. */
	send_str(c, "GET /debug/pprof/goroutine?debug=1 HTTP/1.1\r\n"
		    "Host: localhost\r\n\r\n");
	r = read_resp(c, false);
	TU_ASSERT_EQ(r.status, 200);
	TU_ASSERT_CONTAINS(r.body, "goroutine profile");
	resp_free(&r);
	hang_up(c);

	TU_ASSERT_OK(tt_debug_shutdown(srv));
}

/* ---- keep-alive and pipelining ---------------------------------------- */

static void test_keepalive_and_pipelining(void **state)
{
	(void)state;
	tt_debug_server *srv = start(NULL);
	client *c = dial(srv);
	/* One after another on one connection. */
	for (int i = 0; i < 5; i++) {
		send_str(c, "GET /debug/pprof/ HTTP/1.1\r\nHost: 127.0.0.1\r\n"
			    "\r\n");
		resp r = read_resp(c, false);
		TU_ASSERT_EQ(r.status, 200);
		TU_ASSERT(!r.closed);
		TU_ASSERT_CONTAINS(r.body, "/debug/pprof/");
		resp_free(&r);
	}
	/* Three in one write; three answers in order; the last closes. */
	send_str(c, "GET /debug/pprof/goroutine?debug=1 HTTP/1.1\r\nHost: 127.0.0.1\r\n"
		    "\r\n"
		    "GET /nope HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"
		    "HEAD /debug/pprof/ HTTP/1.1\r\nHost: 127.0.0.1\r\n"
		    "Connection: close\r\n\r\n");
	resp r = read_resp(c, false);
	TU_ASSERT_EQ(r.status, 200);
	TU_ASSERT_CONTAINS(r.body, "goroutine profile: total");
	resp_free(&r);
	r = read_resp(c, false);
	TU_ASSERT_EQ(r.status, 404);
	TU_ASSERT(!r.closed);
	resp_free(&r);
	r = read_resp(c, true);
	TU_ASSERT_EQ(r.status, 200);
	TU_ASSERT(strcmp(header(&r, "Connection"), "close") == 0);
	TU_ASSERT(!fill(c, tt_deadline_in(5 * TT_SECOND)));
	resp_free(&r);
	hang_up(c);

	/* HTTP/1.0: closed after the response unless asked to keep it. */
	c = dial(srv);
	send_str(c, "GET /debug/pprof/ HTTP/1.0\r\n\r\n");
	r = read_resp(c, false);
	TU_ASSERT_EQ(r.status, 200);
	TU_ASSERT(r.closed);
	TU_ASSERT(strncmp(r.head, "HTTP/1.0 200", 12) == 0);
	resp_free(&r);
	hang_up(c);
	c = dial(srv);
	send_str(c, "GET /debug/pprof/ HTTP/1.0\r\nConnection: keep-alive\r\n"
		    "\r\n");
	r = read_resp(c, false);
	TU_ASSERT_EQ(r.status, 200);
	TU_ASSERT(!r.closed);
	resp_free(&r);
	send_str(c, "GET /debug/pprof/goroutine?debug=2 HTTP/1.0\r\n\r\n");
	r = read_resp(c, false); /* a stream delimited by close */
	TU_ASSERT_EQ(r.status, 200);
	TU_ASSERT_CONTAINS(r.body, "goroutine ");
	TU_ASSERT(r.closed);
	resp_free(&r);
	hang_up(c);
	TU_ASSERT_OK(tt_debug_shutdown(srv));
}

/* ---- limits -------------------------------------------------------------- */

static void test_limits(void **state)
{
	(void)state;
	tt_debug_opts o = {.max_header_bytes = 1024, .max_headers = 8};
	tt_debug_server *srv = start(&o);

	/* A head over 1 KiB: 431, even though it never ends. */
	char big[2048];
	snprintf(big, sizeof big, "GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nX: %0*d",
		 1500, 0);
	TU_ASSERT_EQ(raw_status(srv, big, true), 431);
	/* Nine header lines. */
	TU_ASSERT_EQ(raw_status(srv,
				"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nA: 1\r\nB: 2\r\n"
				"C: 3\r\nD: 4\r\nE: 5\r\nF: 6\r\nG: 7\r\nH: "
				"8\r\n\r\n",
				true),
		     431);
	/* Eight are fine. */
	TU_ASSERT_EQ(raw_status(srv,
				"GET /debug/pprof/ HTTP/1.1\r\nHost: 127.0.0.1\r\nA: "
				"1\r\nB: 2\r\nC: 3\r\nD: 4\r\nE: 5\r\nF: 6\r\n"
				"Connection: close\r\n\r\n",
				true),
		     200);

	/* Methods: 405 with Allow; the connection stays usable. */
	client *c = dial(srv);
	send_str(c, "DELETE / HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n");
	resp r = read_resp(c, false);
	TU_ASSERT_EQ(r.status, 405);
	TU_ASSERT(strcmp(header(&r, "Allow"), "GET, HEAD") == 0);
	TU_ASSERT(!r.closed);
	resp_free(&r);
	send_str(c, "GET /debug/pprof/ HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n");
	r = read_resp(c, false);
	TU_ASSERT_EQ(r.status, 200);
	resp_free(&r);
	hang_up(c);

	TU_ASSERT_EQ(raw_status(srv, "POST / HTTP/1.1\r\nHost: 127.0.0.1\r\n"
				     "Content-Length: 3\r\n\r\nabc",
				true),
		     413);
	TU_ASSERT_EQ(raw_status(srv, "GET / HTTP/2.0\r\nHost: 127.0.0.1\r\n\r\n",
				true),
		     505);
	TU_ASSERT_EQ(raw_status(srv, "GET / HTTP/1.1\r\n\r\n", true), 400);
	TU_ASSERT_EQ(raw_status(srv, "GET /\x01 HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n",
				true),
		     400);
	TU_ASSERT_EQ(raw_status(srv, "GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n bad\r\n"
				     "\r\n",
				true),
		     400);
	TU_ASSERT_EQ(raw_status(srv, "garbage\r\n\r\n", true), 400);
	/* DNS rebinding: a name other than localhost is refused. */
	TU_ASSERT_EQ(raw_status(srv, "GET / HTTP/1.1\r\nHost: evil.example:80"
				     "\r\nConnection: close\r\n\r\n",
				true),
		     403);
	TU_ASSERT_EQ(raw_status(srv, "GET /debug/pprof/ HTTP/1.1\r\nHost: "
				     "LocalHost:1\r\nConnection: close\r\n\r\n",
				true),
		     200);
	/* Bracketed: an IPv6 literal (v4-mapped loopback included), with or
	 * without a port, is an address; anything else in brackets is not. */
	static const struct {
		const char *host;
		int status;
	} hosts[] = {
		{"[::ffff:127.0.0.1]", 200}, {"[::ffff:127.0.0.1]:8080", 200},
		{"[::1]", 200},              {"[::1]:1", 200},
		{"127.0.0.1:", 200},         {"[evil.com]", 403},
		{"[evil.com]:80", 403},      {"[::1", 403},
		{"[]", 403},                 {"[]:80", 403},
		{"[::1]evil", 403},          {"[::1]:8x", 403},
		{"127.0.0.1:evil", 403},     {"[127.0.0.1]", 403},
	};
	for (size_t i = 0; i < sizeof hosts / sizeof hosts[0]; i++) {
		char req[160];
		snprintf(req, sizeof req,
			 "GET /debug/pprof/ HTTP/1.1\r\nHost: %s\r\n"
			 "Connection: close\r\n\r\n",
			 hosts[i].host);
		int st = raw_status(srv, req, true);
		TU_ASSERT_MSG(st == hosts[i].status, "Host: %s: %d, want %d",
			      hosts[i].host, st, hosts[i].status);
	}
	TU_ASSERT_OK(tt_debug_shutdown(srv));
}

/* ---- slow and surplus clients -------------------------------------------- */

static void test_slow_clients(void **state)
{
	(void)state;
	tt_debug_opts o = {.read_timeout = 150 * MS,
			   .idle_timeout = 250 * MS};
	tt_debug_server *srv = start(&o);

	/* Half a head, then nothing: 408 and closed at read_timeout. */
	client *c = dial(srv);
	int64_t t0 = tt_now();
	send_str(c, "GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow:");
	resp r = read_resp(c, false);
	TU_ASSERT_EQ(r.status, 408);
	TU_ASSERT(r.closed);
	TU_ASSERT_RANGE(tt_now() - t0, 150 * MS, 150 * MS + TU_SLACK_NS);
	resp_free(&r);
	hang_up(c);

	/* A byte at a time, each within the idle time but the whole beyond
	 * read_timeout: still 408 (the deadline is for the whole head). */
	c = dial(srv);
	t0 = tt_now();
	const char *slow = "GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n";
	bool cut = false;
	for (const char *p = slow; *p && !cut; p++) {
		cut = send(c->fd, p, 1, MSG_NOSIGNAL) != 1;
		tt_sleep(20 * MS);
	}
	r = read_resp(c, false);
	TU_ASSERT_EQ(r.status, 408);
	TU_ASSERT_RANGE(tt_now() - t0, 150 * MS, 150 * MS + TU_SLACK_NS +
							  strlen(slow) * 20 * MS);
	resp_free(&r);
	hang_up(c);

	/* Connected, silent: closed without a word at idle_timeout. */
	c = dial(srv);
	t0 = tt_now();
	TU_ASSERT(!fill(c, tt_deadline_in(5 * TT_SECOND)));
	TU_ASSERT_EQ(c->have, 0);
	TU_ASSERT_RANGE(tt_now() - t0, 250 * MS, 250 * MS + TU_SLACK_NS);
	hang_up(c);

	/* Idle after a response: closed at idle_timeout too. */
	c = dial(srv);
	send_str(c, "GET /debug/pprof/ HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n");
	r = read_resp(c, false);
	TU_ASSERT_EQ(r.status, 200);
	resp_free(&r);
	t0 = tt_now();
	TU_ASSERT(!fill(c, tt_deadline_in(5 * TT_SECOND)));
	TU_ASSERT_RANGE(tt_now() - t0, 250 * MS, 250 * MS + TU_SLACK_NS);
	hang_up(c);
	TU_ASSERT_OK(tt_debug_shutdown(srv));
}

/* Time limits too large to add to the clock are no limits: a head sent
 * in two pieces is answered, not cut short by a deadline that wrapped. */
static void test_huge_time_limits(void **state)
{
	(void)state;
	tt_debug_opts o = {.read_timeout = INT64_MAX,
			   .idle_timeout = INT64_MAX,
			   .write_timeout = INT64_MAX};
	tt_debug_server *srv = start(&o);
	client *c = dial(srv);
	send_str(c, "GET /debug/pprof/ HTTP/1.1\r\nHost: 127.0.0.1\r\n");
	tt_sleep(50 * MS);
	send_str(c, "\r\n");
	resp r = read_resp(c, false);
	TU_ASSERT_EQ(r.status, 200);
	TU_ASSERT(!r.closed);
	resp_free(&r);
	/* Still open and served after an idle pause. */
	tt_sleep(50 * MS);
	send_str(c, "GET /debug/pprof/ HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n");
	r = read_resp(c, false);
	TU_ASSERT_EQ(r.status, 200);
	resp_free(&r);
	hang_up(c);
	TU_ASSERT_OK(tt_debug_shutdown(srv));
}

static void test_max_conns(void **state)
{
	(void)state;
	tt_debug_opts o = {.max_conns = 2};
	tt_debug_server *srv = start(&o);
	client *a = dial(srv), *b = dial(srv);
	/* Both are being served (a request on each answers). */
	send_str(a, "GET /debug/pprof/ HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n");
	resp r = read_resp(a, false);
	TU_ASSERT_EQ(r.status, 200);
	resp_free(&r);
	send_str(b, "GET /debug/pprof/ HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n");
	r = read_resp(b, false);
	TU_ASSERT_EQ(r.status, 200);
	resp_free(&r);
	/* The third is told so and closed, without being read. */
	client *c = dial(srv);
	r = read_resp(c, false);
	TU_ASSERT_EQ(r.status, 503);
	TU_ASSERT(r.closed);
	resp_free(&r);
	hang_up(c);
	/* When one goes, there is room again. */
	hang_up(a);
	int st = 503;
	for (int i = 0; i < 50 && st == 503; i++) {
		tt_sleep(10 * MS);
		st = raw_status(srv, "GET /debug/pprof/ HTTP/1.1\r\nHost: 127.0.0.1\r\n"
				     "Connection: close\r\n\r\n",
				true);
	}
	TU_ASSERT_EQ(st, 200);
	hang_up(b);
	TU_ASSERT_OK(tt_debug_shutdown(srv));
}

/* ---- many clients, and the program keeps running ---------------------- */

typedef struct load {
	tt_debug_server *srv;
	tt_chan *done;
	int64_t ticks;
	bool stop;
} load;

static void ticker(void *p)
{
	load *l = p;
	while (!l->stop) {
		tt_sleep(MS);
		l->ticks++;
	}
	tu_done(l->done);
}

static void one_client(void *p)
{
	load *l = p;
	static const char *const targets[] = {
		"/", "/debug/pprof/", "/debug/pprof/goroutine?debug=1",
		"/debug/pprof/goroutine?debug=2", "/debug/pprof/goroutine"};
	client *c = dial(l->srv);
	for (int i = 0; i < 5; i++) {
		char req[256];
		snprintf(req, sizeof req, "GET %s HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n",
			 targets[i]);
		send_str(c, req);
		resp r = read_resp(c, false);
		TU_ASSERT_EQ(r.status, 200);
		TU_ASSERT_GT(r.body_len, 0);
		resp_free(&r);
	}
	hang_up(c);
	tu_done(l->done);
}

static void test_concurrent_clients(void **state)
{
	(void)state;
	load l = {.srv = start(NULL), .done = tu_chan(0, 64)};
	tu_go(ticker, &l);
	int nclients = tu_emulated() ? 4 : TU_SCALE(20, 8);
	for (int i = 0; i < nclients; i++)
		tu_go(one_client, &l);
	TU_WAIT_DONE(l.done, nclients, (tu_emulated() ? 300 : 60) * TT_SECOND);
	l.stop = true;
	TU_WAIT_DONE(l.done, 1, 5 * TT_SECOND);
	/* The ticker ran while the server worked. */
	TU_ASSERT_GT(l.ticks, 0);
	TU_ASSERT_OK(tt_chan_release(l.done));
	TU_ASSERT_OK(tt_debug_shutdown(l.srv));
}

/* ---- a big profile does not stall the program -------------------------
 *
 * BIG goroutines park at depths that all differ (a recursion and an
 * alloca), so the unwinder's shape cache misses on nearly every one and
 * each costs a full CFI walk: profiling them takes far longer than one of
 * the writer's slices. A spinner yields in a loop and keeps the longest
 * it was kept from running, in this thread's CPU time (the thread did
 * nothing but the server's work in between, so the machine's load does
 * not count). Every kind of request is fetched; none may keep the
 * spinner out for more than a few slices. */
#define BIG 3000

static tt_chan *big_block;
static _Atomic bool spin_stop, spin_reset;
static _Atomic int64_t spin_gap, spin_turns;

static int64_t thread_cpu(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
	return (int64_t)ts.tv_sec * TT_SECOND + ts.tv_nsec;
}

static __attribute__((noinline)) void big_park(int depth)
{
	if (depth > 0) {
		big_park(depth - 1);
		__asm__ volatile("");
		return;
	}
	TU_ASSERT_OK(tt_chan_recv(big_block, NULL, 0, NULL));
	__asm__ volatile("");
}

static __attribute__((noinline)) void big_main(void *arg)
{
	uintptr_t i = (uintptr_t)arg;
	volatile char *pad = __builtin_alloca(16 + (i % 400) * 16);
	pad[0] = 1;
	big_park((int)(i / 400) % 8);
	__asm__ volatile("" ::"r"(pad));
}

static void spinner(void *p)
{
	tt_chan *done = p;
	int64_t last = thread_cpu();
	while (!spin_stop) {
		tt_yield();
		int64_t now = thread_cpu();
		if (spin_reset) {
			spin_reset = false;
			last = now;
			continue;
		}
		if (now - last > spin_gap)
			spin_gap = now - last;
		last = now;
		spin_turns++;
	}
	tu_done(done);
}

static void test_big_profile_does_not_stall(void **state)
{
	(void)state;
	if (tu_emulated()) {
		/* As test_stacks' test_profile_slices: under qemu-user the
		 * unwinding of one goroutine outlasts a native slice. */
		print_message("skipped under an emulator: its unwinding is "
			      "too slow for the slice bounds to mean anything\n");
		skip();
	}
	tt_debug_server *srv = start(NULL);
	big_block = tu_chan(0, 0);
	tt_chan *done = tu_chan(0, 1);
	tt_go_attr small = {.stack_size = 32 * 1024};
	for (uintptr_t i = 0; i < BIG; i++)
		tu_go_with(&small, big_main, (void *)i);
	spin_stop = false;
	tu_go(spinner, done);
	static const char *const targets[] = {
		"/debug/pprof/goroutine?debug=2", "/debug/pprof/goroutine?debug=1",
		"/debug/pprof/goroutine?debug=0", "/"};
	client *c = dial(srv);
	for (int i = 0; i < 4; i++) {
		char req[256];
		snprintf(req, sizeof req,
			 "GET %s HTTP/1.1\r\nHost: 127.0.0.1\r\n%s\r\n",
			 targets[i], i == 3 ? "Accept: text/html\r\n" : "");
		spin_reset = true;
		tt_yield();
		spin_gap = 0;
		spin_turns = 0;
		int64_t cpu0 = thread_cpu();
		send_str(c, req);
		resp r = read_resp(c, false);
		int64_t cpu = thread_cpu() - cpu0;
		TU_ASSERT_EQ(r.status, 200);
		TU_ASSERT_GT(r.body_len, 0);
		resp_free(&r);
		/* (From a shared-stack goroutine, TETHER_SHARED_STACK=1, the
		 * stacks are cut to their top frame and the request is
		 * cheap: then only the gap is checked.) */
		TU_ASSERT_MSG((spin_turns >= 5 || cpu < 20 * MS) &&
				      spin_gap < 40 * MS,
			      "GET %s: the spinner ran %lld times, kept out "
			      "for up to %lld ms of CPU (the request took "
			      "%lld ms)",
			      targets[i], (long long)spin_turns,
			      (long long)(spin_gap / MS), (long long)(cpu / MS));
	}
	hang_up(c);
	spin_stop = true;
	TU_WAIT_DONE(done, 1, 5 * TT_SECOND);
	TU_ASSERT_OK(tt_chan_close(big_block));
	TU_WAIT_FOR(tt_num_goroutine() <= 3, 10 * TT_SECOND);
	TU_ASSERT_OK(tt_chan_release(done));
	TU_ASSERT_OK(tt_debug_shutdown(srv));
}

/* ---- shutdown ------------------------------------------------------------ */

static void stuck(void *p)
{
	tt_chan *c = p;
	TU_ASSERT_OK(tt_chan_recv(c, NULL, 0, NULL));
}

static void test_shutdown_ends_everything(void **state)
{
	(void)state;
	tt_chan *block = tu_chan(0, 0);
	/* Enough goroutines that debug=2 outgrows the socket buffers. */
	int n = TU_SCALE(3000, 1000);
	for (int i = 0; i < n; i++)
		tu_go(stuck, block);
	int64_t before = tt_num_goroutine();
	tt_debug_server *srv = start(NULL);
	TU_ASSERT_EQ(tt_num_goroutine(), before + 1); /* the acceptor */
	/* One idle connection, one half a request, one that asked for the
	 * whole dump and reads none of it. */
	client *idle = dial(srv);
	client *half = dial(srv);
	send_str(half, "GET / HTTP/1.1\r\n");
	client *big = dial(srv);
	send_str(big, "GET /debug/pprof/goroutine?debug=2 HTTP/1.1\r\n"
		      "Host: 127.0.0.1\r\n\r\n");
	TU_WAIT_FOR(tt_num_goroutine() == before + 4, 5 * TT_SECOND);
	tu_pause();
	TU_ASSERT_OK(tt_debug_shutdown(srv));
	TU_ASSERT_EQ(tt_num_goroutine(), before);
	/* Every connection was closed by the server. */
	TU_ASSERT(!fill(idle, tt_deadline_in(5 * TT_SECOND)));
	TU_ASSERT(!fill(half, tt_deadline_in(5 * TT_SECOND)));
	while (fill(big, tt_deadline_in(5 * TT_SECOND)))
		consume(big, big->have);
	hang_up(idle);
	hang_up(half);
	hang_up(big);
	TU_ASSERT_OK(tt_chan_close(block));
	TU_WAIT_FOR(tt_num_goroutine() == before - n, 5 * TT_SECOND);
	TU_ASSERT_OK(tt_chan_release(block));
}

/* ---- the grouped page ------------------------------------------------- */

/* Where the test parks its goroutines: a name to look for on the page. */
__attribute__((noinline)) static void known_parking_place(void *p)
{
	tt_chan *c = p;
	TU_ASSERT_OK(tt_chan_recv(c, NULL, 0, NULL));
	__asm__ volatile(""); /* not a tail call: keep this frame */
}

__attribute__((noinline)) static void named_parking_place(void *p)
{
	tt_chan *c = p;
	TU_ASSERT_OK(tt_chan_recv(c, NULL, 0, NULL));
	__asm__ volatile(""); /* not a tail call: keep this frame */
}

/* The <details> element of the group whose frames include `func`. */
static char *group_of(const char *page, const char *func)
{
	char needle[128];
	snprintf(needle, sizeof needle, "<code class=\"fn\">%s</code>", func);
	const char *at = strstr(page, "<section id=\"groups\">");
	TU_ASSERT(at != NULL);
	const char *hit = strstr(at, needle);
	TU_ASSERT_MSG(hit != NULL, "no group shows %s", func);
	const char *start = hit;
	while (start > at && strncmp(start, "<details", 8) != 0)
		start--;
	const char *end = strstr(hit, "</details>");
	TU_ASSERT(end != NULL && start > at);
	return strndup(start, (size_t)(end - start));
}

static void test_grouped_page(void **state)
{
	(void)state;
	int64_t before = tt_num_goroutine();
	tt_chan *block = tu_chan(0, 0);
	for (int i = 0; i < 7; i++)
		tu_go(known_parking_place, block);
	tt_go_attr attr = {.name = "<script>alert(1)</script>&"};
	tu_go_with(&attr, stuck, block);
	/* A group of three, all with one name. */
	tt_go_attr pool = {.name = "pool-worker"};
	for (int i = 0; i < 3; i++)
		tu_go_with(&pool, named_parking_place, block);
	tt_debug_server *srv = start(NULL);
	tt_sleep(20 * MS); /* an age to show */

	/* The text profile, through the server, groups them too. */
	resp r = get(srv, "/debug/pprof/goroutine?debug=1");
	TU_ASSERT_CONTAINS(r.body, "\n7 @ ");
	TU_ASSERT_CONTAINS(r.body, "known_parking_place+0x");
	/* Where the symbolizer finds line tables (not in every build: see
	 * the trace tests), the page must show file:line as the text does. */
	bool lines = tu_contains(r.body, "test_debug.c:");
	if (!lines)
		print_message("no file:line in this build's profile; the "
			      "page's file:line is not checked\n");
	resp_free(&r);

	r = get_html(srv, "/");
	TU_ASSERT_EQ(r.status, 200);
	char *g = group_of(r.body, "known_parking_place");
	TU_ASSERT_CONTAINS(g, "data-count=\"7\"");
	TU_ASSERT_CONTAINS(g, "<span class=\"count\">7</span>");
	TU_ASSERT_CONTAINS(g, "chan receive \xc3\x97 7");
	TU_ASSERT_CONTAINS(g, "oldest wait ");
	if (lines)
		TU_ASSERT_CONTAINS(g, "test_debug.c:");
	/* tu_go calls tt_go from tu_go_at. */
	TU_ASSERT_CONTAINS(g, "created by <code class=\"fn\">tu_go_at</code>");
	free(g);
	/* The flame graph has a box for it, with its count. */
	const char *svg = strstr(r.body, "<svg class=\"flame\"");
	TU_ASSERT(svg != NULL);
	TU_ASSERT_CONTAINS(svg, "known_parking_place \xe2\x80\x94 7 "
				"goroutines");
	/* The goroutine's name is shown, escaped. */
	TU_ASSERT_CONTAINS(r.body, "&lt;script&gt;alert(1)&lt;/script&gt;"
				   "&amp;");
	TU_ASSERT_NOT_CONTAINS(r.body, "<script>alert");
	/* The one script is the page's own flame graph script. */
	const char *sc = strstr(r.body, "<script");
	TU_ASSERT(sc != NULL);
	TU_ASSERT(strncmp(sc, "<script>\n(function(){", 21) == 0);
	TU_ASSERT_NOT_CONTAINS(sc + 1, "<script");
	/* A named group of more than one shows its name too. */
	char *pg = group_of(r.body, "named_parking_place");
	TU_ASSERT_CONTAINS(pg, "data-count=\"3\"");
	TU_ASSERT_CONTAINS(pg, "named <code>pool-worker</code>");
	TU_ASSERT_NOT_CONTAINS(pg, "named differently");
	free(pg);
	/* The whole page counts every goroutine. */
	char total[64];
	snprintf(total, sizeof total, "<span id=\"total\">%lld</span>",
		 (long long)tt_num_goroutine());
	TU_ASSERT_CONTAINS(r.body, total);
	resp_free(&r);

	TU_ASSERT_OK(tt_debug_shutdown(srv));
	TU_ASSERT_OK(tt_chan_close(block));
	TU_WAIT_FOR(tt_num_goroutine() == before, 5 * TT_SECOND);
	TU_ASSERT_OK(tt_chan_release(block));
}

/* ---- bad arguments ------------------------------------------------------- */

static void test_bad_arguments(void **state)
{
	(void)state;
	tt_debug_server *srv = NULL;
	TU_ASSERT_ERR(tt_debug_serve(NULL, NULL, &srv), -EINVAL);
	TU_ASSERT_CONTAINS(tt_last_error(), "no address");
	TU_ASSERT_ERR(tt_debug_serve("", NULL, &srv), -EINVAL);
	TU_ASSERT_ERR(tt_debug_serve("127.0.0.1", NULL, &srv), -EINVAL);
	TU_ASSERT_CONTAINS(tt_last_error(), "no :PORT");
	TU_ASSERT_ERR(tt_debug_serve("127.0.0.1:70000", NULL, &srv), -EINVAL);
	TU_ASSERT_ERR(tt_debug_serve("127.0.0.1:-1", NULL, &srv), -EINVAL);
	TU_ASSERT_ERR(tt_debug_serve("127.0.0.1:x", NULL, &srv), -EINVAL);
	TU_ASSERT_ERR(tt_debug_serve("example.com:80", NULL, &srv), -EINVAL);
	TU_ASSERT_CONTAINS(tt_last_error(), "not looked up");
	TU_ASSERT_ERR(tt_debug_serve("[zz]:0", NULL, &srv), -EINVAL);
	tt_debug_opts o = {.read_timeout = -1};
	TU_ASSERT_ERR(tt_debug_serve("127.0.0.1:0", &o, &srv), -EINVAL);
	o = (tt_debug_opts){.flags = 1};
	TU_ASSERT_ERR(tt_debug_serve("127.0.0.1:0", &o, &srv), -EINVAL);
	o = (tt_debug_opts){.max_header_bytes = 10};
	TU_ASSERT_ERR(tt_debug_serve("127.0.0.1:0", &o, &srv), -EINVAL);
	TU_ASSERT(srv == NULL);
	TU_ASSERT_ERR(tt_debug_port(NULL), -EINVAL);
	TU_ASSERT_ERR(tt_debug_shutdown(NULL), -EINVAL);

	/* A port in use. */
	srv = start(NULL);
	char addr[32];
	snprintf(addr, sizeof addr, "127.0.0.1:%d", tt_debug_port(srv));
	tt_debug_server *srv2 = NULL;
	TU_ASSERT_ERR(tt_debug_serve(addr, NULL, &srv2), -EADDRINUSE);
	TU_ASSERT(srv2 == NULL);
	/* ":PORT" and "localhost:PORT" are loopback too. */
	TU_ASSERT_OK(tt_debug_serve(":0", NULL, &srv2));
	TU_ASSERT_OK(tt_debug_shutdown(srv2));
	TU_ASSERT_OK(tt_debug_serve("localhost:0", NULL, &srv2));
	TU_ASSERT_OK(tt_debug_shutdown(srv2));
	TU_ASSERT_OK(tt_debug_shutdown(srv));
}

int main(int argc, char **argv)
{
	tu_child_dispatch(argc, argv, NULL, 0);
	const struct CMUnitTest tests[] = {
		TU_TEST(test_routes),
		TU_TEST(test_keepalive_and_pipelining),
		TU_TEST(test_limits),
		TU_TEST(test_slow_clients),
		TU_TEST(test_huge_time_limits),
		TU_TEST(test_max_conns),
		TU_TEST(test_concurrent_clients),
		TU_TEST(test_big_profile_does_not_stall),
		TU_TEST(test_shutdown_ends_everything),
		TU_TEST(test_grouped_page),
		TU_TEST(test_bad_arguments),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
