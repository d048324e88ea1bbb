/* tether — the debug HTTP server (include/tether/debug.h).
 *
 * Design notes
 * ------------
 * One goroutine accepts; each connection gets a goroutine of its own that
 * reads a request head into a fixed buffer (max_header_bytes), parses it
 * with the pure parser of http_parse.c, answers, and loops while the
 * connection is kept alive. Every wait is a park in the poller with a
 * deadline:
 *
 *   waiting for a request's first byte   idle_timeout, then closed
 *   the rest of the head                 read_timeout from its first
 *                                        byte, then 408 and closed
 *   each piece of a response             write_timeout, then closed
 *
 * so a client can hold a goroutine only for a bounded time, and at most
 * max_conns of them at once (the acceptor answers the next one 503
 * itself, without a goroutine).
 *
 * Responses go out with send(MSG_NOSIGNAL): a client that hangs up must
 * not raise SIGPIPE in the program being debugged. A page is built in
 * memory and sent with Content-Length. A profile is buffered up to
 * STREAM_BUF bytes; if it ends within that, it too gets a Content-Length
 * (and a failure becomes a 500); a longer one is streamed with chunked
 * transfer coding (HTTP/1.1) or until close (HTTP/1.0).
 *
 * Shutdown: shutdown(2) on the listener and on every connection wakes
 * each parked goroutine with an error or end of file; each closes its own
 * descriptor (so no descriptor is closed while the poller still watches
 * it) and calls tt_wg_done; tt_debug_shutdown waits on that group.
 *
 * Invariant: srv->conns lists exactly the connections whose goroutine has
 * not ended; nconns is their number. Both are touched only by goroutines
 * of srv->sched, which never run in parallel (they are started with
 * TT_GO_THIS_THREAD), so nothing is locked. */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>

#include "debug/debug.h"
#include "debug/http.h"
#include "internal.h"
#include "tether/debug.h"

#define STREAM_BUF (64 * 1024)

typedef struct conn {
	struct conn *prev, *next;
	tt_debug_server *srv;
	int fd;
} conn;

struct tt_debug_server {
	tt__sched *sched;   /* the scheduler whose goroutines serve */
	int lfd;            /* the listening socket */
	int port;
	bool loopback;      /* bound to a loopback address: check Host */
	bool stopping;      /* tt_debug_shutdown has begun */
	tt_debug_opts o;    /* the limits, defaults filled in */
	tt__http_limits lim;
	conn *conns;        /* open connections (see the invariant) */
	unsigned nconns;
	tt_waitgroup *wg;   /* the acceptor and every connection */
	tt__page_hist *hist; /* the page's snapshots (NULL until a view) */
};

/* ---- addresses ---------------------------------------------------------- */

/* "HOST:PORT" into *ss. */
static int parse_addr(const char *addr, struct sockaddr_storage *ss,
		      socklen_t *sslen, bool *loopback)
{
	if (addr == NULL || addr[0] == '\0')
		return tt__err(-EINVAL, "tt_debug_serve: no address given "
					"(use \"127.0.0.1:0\" for a free "
					"loopback port)");
	const char *colon = strrchr(addr, ':');
	if (!colon)
		return tt__err(-EINVAL, "tt_debug_serve: address \"%.100s\" "
					"has no :PORT",
			       addr);
	char host[64];
	size_t hlen = (size_t)(colon - addr);
	const char *h = addr;
	bool v6 = false;
	if (hlen >= 2 && addr[0] == '[' && addr[hlen - 1] == ']') {
		h = addr + 1;
		hlen -= 2;
		v6 = true;
	}
	if (hlen >= sizeof host)
		return tt__err(-EINVAL, "tt_debug_serve: host in \"%.100s\" "
					"is too long",
			       addr);
	memcpy(host, h, hlen);
	host[hlen] = '\0';

	const char *p = colon + 1;
	char *end;
	errno = 0;
	long port = strtol(p, &end, 10);
	if (*p < '0' || *p > '9' || *end || errno || port > 65535)
		return tt__err(-EINVAL, "tt_debug_serve: bad port in "
					"\"%.100s\" (want 0 to 65535)",
			       addr);

	memset(ss, 0, sizeof *ss);
	if (v6) {
		struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)ss;
		s6->sin6_family = AF_INET6;
		s6->sin6_port = htons((uint16_t)port);
		if (inet_pton(AF_INET6, host, &s6->sin6_addr) != 1)
			return tt__err(-EINVAL, "tt_debug_serve: \"%s\" is "
						"not an IPv6 address",
				       host);
		*sslen = sizeof *s6;
		*loopback = IN6_IS_ADDR_LOOPBACK(&s6->sin6_addr);
		return 0;
	}
	struct sockaddr_in *s4 = (struct sockaddr_in *)ss;
	s4->sin_family = AF_INET;
	s4->sin_port = htons((uint16_t)port);
	*sslen = sizeof *s4;
	if (host[0] == '\0' || strcmp(host, "localhost") == 0) {
		s4->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	} else if (inet_pton(AF_INET, host, &s4->sin_addr) != 1) {
		return tt__err(-EINVAL, "tt_debug_serve: \"%s\" is not an "
					"IPv4 address, [IPv6] or localhost "
					"(names are not looked up)",
			       host);
	}
	*loopback = (ntohl(s4->sin_addr.s_addr) >> 24) == 127;
	return 0;
}

/* DNS rebinding: a page on some site whose name the attacker points at
 * 127.0.0.1 could read a loopback server through the victim's browser.
 * Its requests carry the attacker's name in Host; so a loopback server
 * answers only requests whose Host is an IP literal or "localhost". */
static bool host_ok(const tt_debug_server *srv, const tt__http_req *req)
{
	if (!srv->loopback || req->host == NULL)
		return true; /* HTTP/1.0 may omit it */
	const char *h = req->host;
	size_t n = req->host_len;
	size_t hn = n;     /* the host part's length */
	const char *port = memchr(h, ':', n);
	if (n > 0 && h[0] == '[') {
		/* [IPv6] or [IPv6]:port, the inside an address inet_pton
		 * takes (::ffff:127.0.0.1 included). */
		const char *e = memchr(h, ']', n);
		if (e == NULL)
			return false;
		char a[INET6_ADDRSTRLEN];
		size_t an = (size_t)(e - h) - 1;
		if (an == 0 || an >= sizeof a)
			return false;
		memcpy(a, h + 1, an);
		a[an] = '\0';
		struct in6_addr six;
		if (inet_pton(AF_INET6, a, &six) != 1)
			return false;
		hn = (size_t)(e - h) + 1;
		if (hn < n && h[hn] != ':')
			return false;
		port = hn < n ? h + hn : NULL;
	} else if (port) {
		hn = (size_t)(port - h);
	}
	if (port) {
		/* ":digits", the digits possibly none (RFC 3986). */
		for (const char *p = port + 1; p < h + n; p++)
			if (*p < '0' || *p > '9')
				return false;
	}
	if (h[0] == '[')
		return true;
	if (hn == 9 && strncasecmp(h, "localhost", 9) == 0)
		return true;
	if (hn == 0)
		return false;
	for (size_t i = 0; i < hn; i++)
		if (!((h[i] >= '0' && h[i] <= '9') || h[i] == '.'))
			return false;
	return true;
}

/* ---- writing ------------------------------------------------------------ */

/* All of p[n], parking while the socket is full; each wait may last
 * write_timeout. 0 or -errno. */
static int send_all(tt_debug_server *srv, int fd, const void *p, size_t n)
{
	const char *s = p;
	while (n > 0) {
		ssize_t r = send(fd, s, n, MSG_NOSIGNAL);
		if (r > 0) {
			s += r;
			n -= (size_t)r;
			continue;
		}
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0 && errno != EAGAIN && errno != EWOULDBLOCK)
			return -errno;
		int w = tt_fd_wait(fd, TT_FD_WRITE,
				   tt_deadline_in(srv->o.write_timeout));
		if (w < 0)
			return w;
	}
	return 0;
}

static const char *status_text(int status)
{
	switch (status) {
	case 200: return "OK";
	case 301: return "Moved Permanently";
	case 400: return "Bad Request";
	case 403: return "Forbidden";
	case 404: return "Not Found";
	case 405: return "Method Not Allowed";
	case 408: return "Request Timeout";
	case 413: return "Content Too Large";
	case 431: return "Request Header Fields Too Large";
	case 500: return "Internal Server Error";
	case 503: return "Service Unavailable";
	case 505: return "HTTP Version Not Supported";
	default: return "Error";
	}
}

/* The status line and headers, up to (not including) the blank line. */
static void put_head(tt__buf *b, int version, int status, const char *type,
		     bool keep)
{
	tt__buf_printf(b, "HTTP/1.%d %d %s\r\n", version == 10 ? 0 : 1,
		       status, status_text(status));
	if (type)
		tt__buf_printf(b, "Content-Type: %s\r\n", type);
	tt__buf_puts(b, "X-Content-Type-Options: nosniff\r\n"
			"Cache-Control: no-store\r\n");
	if (!keep)
		tt__buf_puts(b, "Connection: close\r\n");
	else if (version == 10)
		tt__buf_puts(b, "Connection: keep-alive\r\n");
}

/* A complete response with body[n] (not sent for HEAD). */
static int respond(conn *c, int version, bool head_only, int status,
		   const char *type, const char *extra, bool keep,
		   const char *body, size_t n)
{
	tt__buf b = {0};
	put_head(&b, version, status, type, keep);
	if (extra)
		tt__buf_puts(&b, extra);
	tt__buf_printf(&b, "Content-Length: %zu\r\n\r\n", n);
	/* Small bodies go in the same packet as the head. */
	if (!head_only && n <= 4096)
		tt__buf_put(&b, body, n);
	int r = b.err ? b.err : send_all(c->srv, c->fd, b.data, b.len);
	if (r == 0 && !head_only && n > 4096)
		r = send_all(c->srv, c->fd, body, n);
	tt__buf_free(&b);
	return r;
}

/* A plain-text error: "431 Request Header Fields Too Large\n<why>\n". */
static int respond_error(conn *c, int version, bool head_only, int status,
			 const char *why, const char *extra, bool keep)
{
	char body[512];
	int n = snprintf(body, sizeof body, "%d %s\n%s%s", status,
			 status_text(status), why ? why : "",
			 why ? "\n" : "");
	if (n < 0)
		n = 0;
	if ((size_t)n >= sizeof body)
		n = sizeof body - 1;
	return respond(c, version, head_only, status,
		       "text/plain; charset=utf-8", extra, keep, body,
		       (size_t)n);
}

/* The sink tt_profile_write fills: buffered, then streamed. */
typedef struct stream {
	conn *c;
	tt__buf head;   /* status line and headers, not yet sent */
	tt__buf body;   /* body bytes not yet sent */
	bool started;   /* the head has gone out */
	bool chunked;
	int err;        /* a send failed: stop */
} stream;

static int stream_flush(stream *st)
{
	if (!st->started) {
		tt__buf_puts(&st->head, st->chunked
						? "Transfer-Encoding: chunked\r\n\r\n"
						: "\r\n");
		if (st->head.err)
			return st->head.err;
		int r = send_all(st->c->srv, st->c->fd, st->head.data,
				 st->head.len);
		if (r)
			return r;
		st->started = true;
	}
	if (st->body.len == 0)
		return 0;
	if (st->chunked) {
		char sz[32];
		int n = snprintf(sz, sizeof sz, "%zx\r\n", st->body.len);
		int r = send_all(st->c->srv, st->c->fd, sz, (size_t)n);
		if (r == 0)
			r = send_all(st->c->srv, st->c->fd, st->body.data,
				     st->body.len);
		if (r == 0)
			r = send_all(st->c->srv, st->c->fd, "\r\n", 2);
		st->body.len = 0;
		return r;
	}
	int r = send_all(st->c->srv, st->c->fd, st->body.data, st->body.len);
	st->body.len = 0;
	return r;
}

static int stream_write(void *arg, const void *data, size_t len)
{
	stream *st = arg;
	if (st->err)
		return st->err;
	tt__buf_put(&st->body, data, len);
	if (st->body.err)
		return st->err = st->body.err;
	if (st->body.len >= STREAM_BUF) {
		int r = stream_flush(st);
		if (r)
			return st->err = r;
	}
	return 0;
}

/* ---- routes ------------------------------------------------------------- */

/* What a route returns: the write's error, else whether to close. */
static int then(int r, bool keep)
{
	return r ? r : !keep;
}

static bool has_param(const tt__http_req *req, const char *name)
{
	char v[2];
	return req->query &&
	       tt__http_query_get(req->query, req->query_len, name, v,
				  sizeof v) != -1;
}

/* /debug/pprof/block?seconds=N and /mutex?seconds=N: Go's delta profile,
 * what was recorded during the next N seconds (profile.proto only, as
 * in Go). The wait is slept in slices so that tt_debug_shutdown ends it
 * within one. */
static int serve_contention_delta(conn *c, const tt__http_req *req,
				  const char *name, bool keep)
{
	bool head_only = req->method == TT__HTTP_HEAD;
	char v[16];
	int n = tt__http_query_get(req->query, req->query_len, "seconds", v,
				   sizeof v);
	char *end;
	long secs = n > 0 ? strtol(v, &end, 10) : 0;
	if (n <= 0 || *end || secs < 1 || secs > 3600)
		return then(respond_error(c, req->version, head_only, 400,
				     "seconds must be a whole number from 1 "
				     "to 3600", NULL, keep), keep);
	if (has_param(req, "debug"))
		return then(respond_error(c, req->version, head_only, 400,
				     "seconds and debug params are "
				     "incompatible", NULL, keep), keep);
	tt__block_base *base;
	tt__buf body = {0};
	int r = tt__block_base_take(name, &base);
	if (r == 0) {
		int64_t until = tt_now() + secs * TT_SECOND;
		for (int64_t now = tt_now(); now < until && !c->srv->stopping;
		     now = tt_now())
			(void)tt_sleep(until - now < 100 * TT_MILLISECOND
					       ? until - now
					       : 100 * TT_MILLISECOND);
		r = c->srv->stopping ? -ECANCELED
				     : tt__block_write_delta(base, &body);
		tt__block_base_free(base);
	}
	if (r == -ECANCELED) {
		tt__buf_free(&body);
		return 1; /* shutting down: close */
	}
	const char *disp = strcmp(name, "mutex") == 0
				   ? "Content-Disposition: attachment; "
				     "filename=\"mutex-delta\"\r\n"
				   : "Content-Disposition: attachment; "
				     "filename=\"block-delta\"\r\n";
	r = r ? respond_error(c, req->version, head_only, 500,
			      "out of memory writing the profile", NULL, keep)
	      : respond(c, req->version, head_only, 200,
			"application/octet-stream", disp, keep, body.data,
			body.len);
	tt__buf_free(&body);
	return then(r, keep);
}

/* End a streamed response whose head went out (r: the writing's error,
 * or 0): the rest of the body and, when chunked, the last chunk; frees
 * st. What a route returns. A failure after the head went out can only
 * be told by closing; so is the end of an HTTP/1.0 stream. */
static int stream_end(stream *st, int r, bool keep)
{
	if (r == 0)
		r = stream_flush(st);
	if (r == 0 && st->chunked)
		r = send_all(st->c->srv, st->c->fd, "0\r\n\r\n", 5);
	tt__buf_free(&st->head);
	tt__buf_free(&st->body);
	if (r)
		return r < 0 ? r : -EIO;
	return !st->chunked || !keep;
}

/* A request whose head parsed; returns 0 to go on with the connection,
 * 1 to close it (after a response), or -errno when writing failed. */
static int serve_profile(conn *c, const tt__http_req *req, const char *name,
			 int debug, bool keep)
{
	bool head_only = req->method == TT__HTTP_HEAD;
	if (debug < 0 && req->query) {
		char v[16];
		int n = tt__http_query_get(req->query, req->query_len,
					   "debug", v, sizeof v);
		if (n == -2 || (n >= 0 && !(n == 1 && v[0] >= '0' &&
					    v[0] <= '2')))
			return then(respond_error(c, req->version, head_only, 400,
					     "debug must be 0, 1 or 2", NULL,
					     keep), keep);
		if (n == 1)
			debug = v[0] - '0';
	}
	if (debug < 0)
		debug = 0;
	const char *type = debug ? "text/plain; charset=utf-8"
				 : "application/octet-stream";
	char disp[128];
	snprintf(disp, sizeof disp,
		 "Content-Disposition: attachment; filename=\"%s\"\r\n",
		 name);

	stream st = {.c = c};
	/* HTTP/1.0 has no chunks: a long profile is delimited by close. */
	st.chunked = req->version == 11;
	put_head(&st.head, req->version, 200, type, keep);
	if (debug == 0)
		tt__buf_puts(&st.head, disp);
	if (head_only) {
		/* No Content-Length: it is not known without writing it. */
		tt__buf_puts(&st.head, "\r\n");
		int r = st.head.err ? st.head.err
				    : send_all(c->srv, c->fd, st.head.data,
					       st.head.len);
		tt__buf_free(&st.head);
		return then(r, keep);
	}
	int r = tt_profile_write(name, debug, stream_write, &st);
	if (!st.started) {
		/* All of it is here (or it failed before any went out). */
		tt__buf_free(&st.head);
		if (r) {
			char why[300];
			snprintf(why, sizeof why, "writing the %s profile: %s",
				 name, tt_last_error());
			r = respond_error(c, req->version, false, 500, why,
					  NULL, keep);
		} else {
			r = respond(c, req->version, false, 200, type,
				    debug == 0 ? disp : NULL, keep,
				    st.body.data, st.body.len);
		}
		tt__buf_free(&st.body);
		return then(r, keep);
	}
	return stream_end(&st, r, keep);
}

/* /debug/pprof/profile?seconds=N: Go's CPU profile of the next N seconds
 * (30 when absent, at most MAX_PROFILE_SECONDS). The goroutine parks for
 * those seconds, waiting on its connection: the client hanging up or the
 * server's shutdown (which shuts the socket down) ends the wait early,
 * and then the profile is stopped and dropped. A second profile while one
 * runs gets Go's 500. */
#define MAX_PROFILE_SECONDS 3600
static int serve_cpu_profile(conn *c, const tt__http_req *req, bool keep)
{
	bool head_only = req->method == TT__HTTP_HEAD;
	long sec = 30;
	if (req->query) {
		char v[16], *end;
		int n = tt__http_query_get(req->query, req->query_len,
					   "seconds", v, sizeof v);
		if (n != -1) {
			errno = 0;
			sec = n > 0 ? strtol(v, &end, 10) : 0;
			if (n <= 0 || *end || errno || sec < 1 ||
			    sec > MAX_PROFILE_SECONDS)
				return then(respond_error(c, req->version,
					head_only, 400,
					"seconds must be a whole number from 1 "
					"to 3600", NULL, keep), keep);
		}
	}
	const char *disp = "Content-Disposition: attachment; "
			   "filename=\"profile\"\r\n";
	stream st = {.c = c};
	st.chunked = req->version == 11;
	put_head(&st.head, req->version, 200, "application/octet-stream",
		 keep);
	tt__buf_puts(&st.head, disp);
	if (head_only) {
		tt__buf_puts(&st.head, "\r\n");
		int r = st.head.err ? st.head.err
				    : send_all(c->srv, c->fd, st.head.data,
					       st.head.len);
		tt__buf_free(&st.head);
		return then(r, keep);
	}
	int r = tt_cpu_profile_start(0, stream_write, &st);
	if (r) {
		tt__buf_free(&st.head);
		char why[160];
		snprintf(why, sizeof why, "Could not enable CPU profiling: %s",
			 tt_last_error());
		return then(respond_error(c, req->version, false, 500, why,
					  NULL, keep), keep);
	}
	/* Park until the deadline; readable before it means the client
	 * hung up or the server is shutting down, unless it is a pipelined
	 * request, which waits its turn. */
	int64_t until = tt_deadline_in(sec * TT_SECOND);
	bool gone = false;
	while (!gone && tt_now() < until) {
		int w = tt_fd_wait(c->fd, TT_FD_READ, until);
		if (w == -ETIMEDOUT)
			break;
		char b;
		ssize_t p = recv(c->fd, &b, 1, MSG_PEEK | MSG_DONTWAIT);
		if (w < 0 || p == 0 ||
		    (p < 0 && errno != EAGAIN && errno != EINTR) ||
		    c->srv->stopping) {
			gone = true;
		} else if (p > 0) {
			tt_sleep_until(until);
			break;
		}
	}
	if (gone)
		st.err = -ECONNRESET; /* the writer drops the profile */
	r = tt_cpu_profile_stop();
	if (gone) {
		tt__buf_free(&st.head);
		tt__buf_free(&st.body);
		return 1;
	}
	if (r == 0 && !st.started) {
		tt__buf_free(&st.head);
		r = respond(c, req->version, false, 200,
			    "application/octet-stream", disp, keep,
			    st.body.data, st.body.len);
		tt__buf_free(&st.body);
		return then(r, keep);
	}
	return stream_end(&st, r, keep);
}

static int serve_page(conn *c, const tt__http_req *req, bool keep,
		      int (*make)(tt__buf *))
{
	tt__buf b = {0};
	int r = make(&b);
	if (r)
		r = respond_error(c, req->version, req->method == TT__HTTP_HEAD,
				  500, "out of memory", NULL, keep);
	else
		r = respond(c, req->version, req->method == TT__HTTP_HEAD,
			    200, "text/html; charset=utf-8", NULL, keep,
			    b.data, b.len);
	tt__buf_free(&b);
	return then(r, keep);
}

/* The goroutine page ("/", HTML), its diff view (?diff=, HTML to a
 * browser, text otherwise) and /debug/pprof/goroutine?diff= (text). A
 * bad min_wait, since or diff is 400 with the reason. */
static int serve_goroutines(conn *c, const tt__http_req *req, bool keep,
			    bool html)
{
	bool head_only = req->method == TT__HTTP_HEAD;
	char why[200] = "";
	tt__page_opts o;
	int r = tt__page_opts_parse(req->query, req->query_len, &o, why,
				    sizeof why);
	tt__buf b = {0};
	if (r == 0)
		r = html ? tt__debug_page(&b, &o, &c->srv->hist, why,
					  sizeof why)
			 : tt__debug_diff_text(&b, o.diff, &c->srv->hist, why,
					       sizeof why);
	if (r == -EINVAL)
		r = respond_error(c, req->version, head_only, 400, why, NULL,
				  keep);
	else if (r)
		r = respond_error(c, req->version, head_only, 500,
				  tt_strerror(r), NULL, keep);
	else
		r = respond(c, req->version, head_only, 200,
			    html ? "text/html; charset=utf-8"
				 : "text/plain; charset=utf-8",
			    NULL, keep, b.data, b.len);
	tt__buf_free(&b);
	return then(r, keep);
}

/* Whether the query has a diff= parameter. */
static bool has_diff(const tt__http_req *req)
{
	char v[2];
	return req->query && tt__http_query_get(req->query, req->query_len,
						"diff", v, sizeof v) != -1;
}

/* A body made by make() (0 or -errno), sent as `type`; a failure is 500. */
static int serve_made(conn *c, const tt__http_req *req, bool keep,
		      int (*make)(tt__buf *), const char *type)
{
	tt__buf b = {0};
	int r = make(&b);
	if (r) {
		char why[128];
		snprintf(why, sizeof why, "%s", tt_strerror(r));
		r = respond_error(c, req->version,
				  req->method == TT__HTTP_HEAD, 500, why, NULL,
				  keep);
	} else {
		r = respond(c, req->version, req->method == TT__HTTP_HEAD, 200,
			    type, NULL, keep, b.data, b.len);
	}
	tt__buf_free(&b);
	return then(r, keep);
}

static int route(conn *c, const tt__http_req *req, bool keep)
{
	bool head_only = req->method == TT__HTTP_HEAD;
	int v = req->version;
	if (req->method == TT__HTTP_OTHER)
		return then(respond_error(c, v, false, 405,
				     "this server answers GET and HEAD only",
				     "Allow: GET, HEAD\r\n", keep), keep);
	if (!host_ok(c->srv, req))
		return then(respond_error(c, v, head_only, 403,
				     "a loopback debug server answers only "
				     "Host: localhost or an IP address",
				     NULL, keep), keep);
	char path[256];
	if (req->path_len >= sizeof path) /* none of ours is that long */
		return then(respond_error(c, v, head_only, 404, NULL, NULL,
					  keep),
			    keep);
	int n = req->path[0] == '/'
			? tt__http_path_decode(req->path, req->path_len, path,
					       sizeof path - 1)
			: -1;
	if (n < 0)
		return then(respond_error(c, v, head_only, 400, "bad path", NULL,
				     keep), keep);
	path[n] = '\0';
	if (req->query && tt__http_query_check(req->query, req->query_len))
		return then(respond_error(c, v, head_only, 400,
				     "bad %-escape in the query", NULL,
				     keep), keep);

	/* "/": the page for a browser; for anything else (curl), the
	 * grouped text goroutine profile, as massiveGoroutine.go's "/"
	 * writes it (goroutine, debug=1). */
	if (strcmp(path, "/") == 0)
		return req->wants_html || has_diff(req)
			       ? serve_goroutines(c, req, keep, req->wants_html)
			       : serve_profile(c, req, "goroutine", 1, keep);
	if (strcmp(path, "/debug/pprof/") == 0)
		return serve_page(c, req, keep, tt__debug_index);
	if (strcmp(path, "/debug/pprof") == 0)
		return then(respond_error(c, v, head_only, 301, NULL,
				     "Location: /debug/pprof/\r\n", keep), keep);
	if (strcmp(path, "/debug/pprof/goroutine") == 0)
		return has_diff(req) ? serve_goroutines(c, req, keep, false)
				     : serve_profile(c, req, "goroutine", -1,
						     keep);
	if (strcmp(path, "/debug/pprof/goroutineleak") == 0)
		return serve_profile(c, req, "goroutineleak", -1, keep);
	if (strcmp(path, "/debug/pprof/threadcreate") == 0)
		return serve_profile(c, req, "threadcreate", -1, keep);
	if (strcmp(path, "/debug/pprof/block") == 0 ||
	    strcmp(path, "/debug/pprof/mutex") == 0) {
		const char *name = path + strlen("/debug/pprof/");
		return has_param(req, "seconds")
			       ? serve_contention_delta(c, req, name, keep)
			       : serve_profile(c, req, name, -1, keep);
	}
	if (strcmp(path, "/debug/pprof/profile") == 0)
		return serve_cpu_profile(c, req, keep);
	if (strcmp(path, "/debug/pprof/cmdline") == 0)
		return serve_made(c, req, keep, tt__debug_cmdline,
				  "text/plain; charset=utf-8");
	if (strcmp(path, "/metrics") == 0)
		return serve_made(c, req, keep, tt__debug_metrics,
				  "text/plain; version=0.0.4; charset=utf-8");
	return then(respond_error(c, v, head_only, 404,
			     "see /, /debug/pprof/ and /metrics", NULL, keep),
		    keep);
}

/* ---- connections -------------------------------------------------------- */

/* Closing a socket with unread input (a request body, pipelined requests
 * after a "Connection: close" one) sends a reset, which can destroy the
 * response still on its way to the client. So, as Go's server does, stop
 * writing and read (and drop) what the client still sends, until it
 * closes or for half a second. */
static void linger(conn *c, char *buf, size_t cap)
{
	shutdown(c->fd, SHUT_WR);
	int64_t dl = tt_deadline_in(500 * TT_MILLISECOND);
	size_t total = 0;
	while (total < 256 * 1024 && !c->srv->stopping) {
		ssize_t n = tt_read(c->fd, buf, cap, dl);
		if (n <= 0)
			break;
		total += (size_t)n;
	}
}

static void conn_main(void *arg)
{
	conn *c = arg;
	tt_debug_server *srv = c->srv;
	size_t cap = srv->o.max_header_bytes;
	char *buf = malloc(cap);
	size_t have = 0;
	int64_t first_byte = 0; /* when the pending request began */
	bool refused = false;   /* closing after a response: linger */

	while (buf && !srv->stopping) {
		tt__http_req req;
		int r = have ? tt__http_parse(buf, have, &srv->lim, &req) : 0;
		if (r == 0) {
			/* Saturating: a huge read_timeout is no limit. */
			int64_t dl =
				!have ? tt_deadline_in(srv->o.idle_timeout)
				: srv->o.read_timeout > INT64_MAX - first_byte
					? INT64_MAX
					: first_byte + srv->o.read_timeout;
			ssize_t n = tt_read(c->fd, buf + have, cap - have, dl);
			if (n == -ETIMEDOUT && have > 0) {
				respond_error(c, 11, false, 408,
					      "the request head came too "
					      "slowly",
					      NULL, false);
				refused = true;
			}
			if (n <= 0)
				break;
			if (have == 0)
				first_byte = tt_now();
			have += (size_t)n;
			continue;
		}
		if (r < 0) {
			/* The framing is lost: answer and close. */
			const char *why =
				r == -431 ? "request head too large or too "
					    "many header lines"
				: r == -413 ? "request bodies are not accepted"
				: r == -505 ? "only HTTP/1.0 and HTTP/1.1"
					    : "malformed request";
			respond_error(c, 11, false, -r, why, NULL, false);
			refused = true;
			break;
		}
		bool keep = req.keep_alive && !srv->stopping;
		int rr = route(c, &req, keep);
		if (rr != 0) {
			refused = rr > 0; /* closing after a whole response */
			break;
		}
		/* Pipelined requests: keep what followed this head. */
		memmove(buf, buf + r, have - (size_t)r);
		have -= (size_t)r;
		first_byte = have ? tt_now() : 0;
	}
	if (refused && buf && !srv->stopping)
		linger(c, buf, cap);
	free(buf);
	/* Unlink first: shutdown must not touch a descriptor being closed. */
	if (c->prev)
		c->prev->next = c->next;
	else
		srv->conns = c->next;
	if (c->next)
		c->next->prev = c->prev;
	srv->nconns--;
	close(c->fd);
	tt_waitgroup *wg = srv->wg;
	free(c);
	tt_wg_done(wg);
}

/* One more connection than allowed: say so without a goroutine. */
static void refuse_busy(int fd)
{
	static const char msg[] =
		"HTTP/1.1 503 Service Unavailable\r\n"
		"Content-Type: text/plain; charset=utf-8\r\n"
		"Connection: close\r\nContent-Length: 45\r\n\r\n"
		"503 Service Unavailable\ntoo many connections\n";
	_Static_assert(sizeof "503 Service Unavailable\ntoo many "
			      "connections\n" - 1 == 45,
		       "Content-Length");
	/* A fresh socket's buffer takes this at once; if not, drop it. */
	(void)!send(fd, msg, sizeof msg - 1, MSG_NOSIGNAL | MSG_DONTWAIT);
	close(fd);
}

static void accept_main(void *arg)
{
	tt_debug_server *srv = arg;
	int64_t backoff = 0;
	while (!srv->stopping) {
		int fd = tt_accept(srv->lfd, NULL, NULL, TT_FOREVER);
		if (fd < 0) {
			if (srv->stopping)
				break;
			if (fd == -EMFILE || fd == -ENFILE ||
			    fd == -ENOBUFS || fd == -ENOMEM) {
				/* Out of descriptors: wait and retry, as Go
				 * does, rather than spin or give up. */
				backoff = backoff ? backoff * 2
						  : 5 * TT_MILLISECOND;
				if (backoff > TT_SECOND)
					backoff = TT_SECOND;
				tt_sleep(backoff);
				continue;
			}
			fprintf(stderr, "tether: debug server on port %d "
					"stops accepting: %s\n",
				srv->port, tt_strerror(fd));
			break;
		}
		backoff = 0;
		if (srv->stopping) {
			close(fd);
			break;
		}
		if (srv->nconns >= srv->o.max_conns) {
			refuse_busy(fd);
			continue;
		}
		conn *c = calloc(1, sizeof *c);
		if (!c) {
			refuse_busy(fd);
			continue;
		}
		int one = 1;
		setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
		c->srv = srv;
		c->fd = fd;
		c->next = srv->conns;
		if (c->next)
			c->next->prev = c;
		srv->conns = c;
		srv->nconns++;
		tt_wg_add(srv->wg, 1);
		tt_go_attr attr = {.name = "tether/debug conn",
				   /* symbolizing (libdw) wants room */
				   .stack_size = 256 * 1024,
				   /* srv is this thread's, unlocked */
				   .flags = TT_GO_THIS_THREAD};
		if (tt_go_with(&attr, conn_main, c) < 0) {
			srv->conns = c->next;
			if (c->next)
				c->next->prev = NULL;
			srv->nconns--;
			free(c);
			refuse_busy(fd);
			tt_wg_done(srv->wg);
		}
	}
	tt_wg_done(srv->wg);
}

/* ---- the API ------------------------------------------------------------ */

int tt_debug_serve(const char *addr, const tt_debug_opts *opts,
		   tt_debug_server **out)
{
	tt_debug_opts o = opts ? *opts : (tt_debug_opts){0};
	if (o.flags)
		return tt__err(-EINVAL, "tt_debug_serve: flags must be 0");
	if (o.read_timeout < 0 || o.idle_timeout < 0 || o.write_timeout < 0)
		return tt__err(-EINVAL, "tt_debug_serve: negative time limit");
	if (o.max_header_bytes == 0)
		o.max_header_bytes = 8192;
	if (o.max_header_bytes < 64 || o.max_header_bytes > (1u << 24))
		return tt__err(-EINVAL, "tt_debug_serve: max_header_bytes "
					"must be 64 to 16 MiB, got %zu",
			       o.max_header_bytes);
	if (o.max_headers == 0)
		o.max_headers = 64;
	if (o.max_conns == 0)
		o.max_conns = 64;
	if (o.read_timeout == 0)
		o.read_timeout = 10 * TT_SECOND;
	if (o.idle_timeout == 0)
		o.idle_timeout = 60 * TT_SECOND;
	if (o.write_timeout == 0)
		o.write_timeout = 30 * TT_SECOND;

	struct sockaddr_storage ss;
	socklen_t sslen;
	bool loopback = true;
	int r = parse_addr(addr, &ss, &sslen, &loopback);
	if (r)
		return r;

	tt_debug_server *srv = calloc(1, sizeof *srv);
	if (!srv)
		return tt__err(-ENOMEM, "tt_debug_serve: out of memory");
	srv->sched = tt__sched_get();
	srv->o = o;
	srv->lim.max_header_bytes = o.max_header_bytes;
	srv->lim.max_headers = o.max_headers;
	srv->loopback = loopback;
	srv->lfd = socket(ss.ss_family,
			  SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (srv->lfd < 0) {
		r = tt__err(-errno, "tt_debug_serve: socket: %s",
			    strerror(errno));
		free(srv);
		return r;
	}
	int one = 1;
	setsockopt(srv->lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
	if (bind(srv->lfd, (struct sockaddr *)&ss, sslen) != 0 ||
	    listen(srv->lfd, 128) != 0) {
		r = tt__err(-errno, "tt_debug_serve: cannot listen on %s: %s",
			    addr, strerror(errno));
		goto fail;
	}
	sslen = sizeof ss;
	if (getsockname(srv->lfd, (struct sockaddr *)&ss, &sslen) != 0) {
		r = tt__err(-errno, "tt_debug_serve: getsockname: %s",
			    strerror(errno));
		goto fail;
	}
	srv->port = ntohs(ss.ss_family == AF_INET6
				  ? ((struct sockaddr_in6 *)&ss)->sin6_port
				  : ((struct sockaddr_in *)&ss)->sin_port);
	r = tt_wg_make(&srv->wg);
	if (r)
		goto fail;
	tt_wg_add(srv->wg, 1);
	tt_go_attr attr = {.name = "tether/debug accept",
			   .flags = TT_GO_THIS_THREAD};
	int64_t id = tt_go_with(&attr, accept_main, srv);
	if (id < 0) {
		r = (int)id;
		tt_wg_release(srv->wg);
		goto fail;
	}
	if (out)
		*out = srv;
	return 0;
fail:
	close(srv->lfd);
	free(srv);
	return r;
}

int tt_debug_port(const tt_debug_server *srv)
{
	if (!srv)
		return tt__err(-EINVAL, "tt_debug_port: NULL server");
	return srv->port;
}

int tt_debug_shutdown(tt_debug_server *srv)
{
	if (!srv)
		return tt__err(-EINVAL, "tt_debug_shutdown: NULL server");
	if (srv->sched != tt__sched_get())
		tt__panic("tt_debug_shutdown: the server belongs to another "
			  "thread's scheduler");
	if (srv->stopping)
		tt__panic("tt_debug_shutdown: called twice");
	srv->stopping = true;
	/* Wakes the acceptor (accept fails) and every connection (reads see
	 * end of file, writes fail); each closes its own descriptor. */
	shutdown(srv->lfd, SHUT_RDWR);
	for (conn *c = srv->conns; c; c = c->next)
		shutdown(c->fd, SHUT_RDWR);
	int r = tt_wg_wait(srv->wg); /* fails only for a bad handle */
	TT_ASSERT(r == 0);
	close(srv->lfd);
	tt_wg_release(srv->wg);
	free(srv->hist);
	free(srv);
	return 0;
}
