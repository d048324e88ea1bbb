/* tether — tt_listen and tt_dial: Go's net.Listen and net.Dial over the
 * parking descriptor calls of the poll layer.
 *
 * Design notes
 * ------------
 * An address goes through three steps, each of which can only fail with
 * -EINVAL and a message (or, for a name lookup, the resolver's error):
 * the network string picks a kind (tcp, tcp4, tcp6, unix); a TCP address
 * is split into host and port as Go's net.SplitHostPort splits it; the
 * host becomes a short list of socket addresses (resolve). Only then is
 * a socket made, so bad input never leaves a descriptor behind.
 *
 * Dialing tries the list in order under the caller's one deadline or
 * context, as Go's dialer does without its "happy eyeballs" race: a
 * refused address moves on to the next, a deadline or a cancellation
 * ends the whole dial. The connect itself is tt_connect (or
 * tt_connect_ctx), which parks in the poller until the kernel says how
 * it went; a Unix socket whose listener's queue is full says EAGAIN
 * instead of parking, and is retried after short sleeps.
 *
 * Every message has Go's shape, "<call>: <network> <address>: <what>",
 * with the kernel's error text in lower case as Go prints it. */
#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "internal.h"
#include "net.h"
#include "tether/ctx.h"
#include "tether/fd.h"
#include "tether/net.h"
#include "tether/time.h"

enum kind {
	K_TCP,
	K_TCP4,
	K_TCP6,
	K_UNIX
};

/* The most addresses a name may give: enough for any real host's A and
 * AAAA records to be tried. */
#define MAX_ADDRS 8

/* What an address string means: where to bind or connect. */
typedef struct target {
	const char *fn;      /* the public call, for messages */
	const char *network; /* as the caller wrote them */
	const char *address;
	enum kind kind;
	int n; /* entries of sa and len */
	struct sockaddr_storage sa[MAX_ADDRS];
	socklen_t len[MAX_ADDRS];
} target;

void tt__net_err_text(int err, bool ctx, char *buf, size_t n)
{
	if (err == -ETIMEDOUT) {
		snprintf(buf, n, "%s",
			 ctx ? "context deadline exceeded" : "i/o timeout");
		return;
	}
	if (err == -ECANCELED) {
		snprintf(buf, n, "context canceled");
		return;
	}
	snprintf(buf, n, "%s", tt_strerror(err));
	/* "Connection refused", but leave acronyms ("ENOTSUP"-like text)
	 * alone. */
	if (isupper((unsigned char)buf[0]) && !isupper((unsigned char)buf[1]))
		buf[0] = (char)tolower((unsigned char)buf[0]);
}

/* Record err with "<fn>: <network> <address>: <what>" (what printf-style)
 * and return it. */
static int fail(const target *t, int err, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
static int fail(const target *t, int err, const char *fmt, ...)
{
	char what[160];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(what, sizeof what, fmt, ap);
	va_end(ap);
	return tt__err(err, "%s: %s %.120s: %s", t->fn, t->network, t->address,
		       what);
}

/* fail() with the text of err after an optional "syscall: " prefix. */
static int fail_errno(const target *t, int err, const char *syscall, bool ctx)
{
	char text[96];
	tt__net_err_text(err, ctx, text, sizeof text);
	return fail(t, err, "%s%s%s", syscall ? syscall : "",
		    syscall ? ": " : "", text);
}

/* ---- parsing ------------------------------------------------------------ */

static int parse_network(target *t)
{
	static const struct {
		const char *name;
		enum kind kind;
	} nets[] = {{"tcp", K_TCP},
		    {"tcp4", K_TCP4},
		    {"tcp6", K_TCP6},
		    {"unix", K_UNIX}};
	for (size_t i = 0; i < sizeof nets / sizeof nets[0]; i++)
		if (strcmp(t->network, nets[i].name) == 0) {
			t->kind = nets[i].kind;
			return 0;
		}
	return fail(t, -EINVAL,
		    "unknown network (want tcp, tcp4, tcp6 or unix)");
}

static void add_v4(target *t, uint32_t addr_be, int port)
{
	struct sockaddr_in *s = (struct sockaddr_in *)&t->sa[t->n];
	*s = (struct sockaddr_in){.sin_family = AF_INET,
				  .sin_port = htons((uint16_t)port)};
	s->sin_addr.s_addr = addr_be;
	t->len[t->n++] = sizeof *s;
}

static void add_v6(target *t, const struct in6_addr *a, int port)
{
	struct sockaddr_in6 *s = (struct sockaddr_in6 *)&t->sa[t->n];
	*s = (struct sockaddr_in6){.sin6_family = AF_INET6,
				   .sin6_port = htons((uint16_t)port),
				   .sin6_addr = *a};
	t->len[t->n++] = sizeof *s;
}

/* A Unix socket address: a path, or "@name" in the abstract namespace. */
static int parse_unix(target *t)
{
	const char *p = t->address;
	struct sockaddr_un *s = (struct sockaddr_un *)&t->sa[0];
	size_t len = strlen(p);
	if (len == 0)
		return fail(t, -EINVAL, "empty path");
	/* A path needs room for its NUL; an abstract name has none but
	 * gives up its '@' to the leading zero byte. */
	if (len > sizeof s->sun_path - (p[0] == '@' ? 0 : 1))
		return fail(t, -EINVAL, "path longer than %zu bytes",
			    sizeof s->sun_path - 1);
	*s = (struct sockaddr_un){.sun_family = AF_UNIX};
	memcpy(s->sun_path, p, len);
	socklen_t sl =
		(socklen_t)(offsetof(struct sockaddr_un, sun_path) + len);
	if (p[0] == '@')
		s->sun_path[0] = '\0';
	else
		sl++; /* the NUL */
	t->len[0] = sl;
	t->n = 1;
	return 0;
}

/* net.SplitHostPort: host (brackets removed) into host[cap], the port
 * into *port (an empty port is 0). */
static int split_host_port(target *t, char *host, size_t cap, int *port)
{
	const char *a = t->address, *h, *p;
	size_t hl;
	if (a[0] == '[') {
		const char *close = strchr(a, ']');
		if (close == NULL)
			return fail(t, -EINVAL, "missing ']' in address");
		if (close[1] == '\0')
			return fail(t, -EINVAL, "missing port in address");
		if (close[1] != ':')
			return fail(t, -EINVAL,
				    "unexpected text after ']' in address");
		h = a + 1;
		hl = (size_t)(close - h);
		p = close + 2;
	} else {
		const char *colon = strrchr(a, ':');
		if (colon == NULL)
			return fail(t, -EINVAL, "missing port in address");
		h = a;
		hl = (size_t)(colon - a);
		if (memchr(h, ':', hl))
			return fail(t, -EINVAL,
				    "too many colons in address (an IPv6 "
				    "host goes in brackets: \"[::1]:80\")");
		p = colon + 1;
	}
	if (memchr(h, '[', hl) || memchr(h, ']', hl) || strchr(p, '[') ||
	    strchr(p, ']'))
		return fail(t, -EINVAL, "unexpected '[' or ']' in address");
	if (hl >= cap)
		return fail(t, -EINVAL, "host longer than %zu bytes", cap - 1);
	memcpy(host, h, hl);
	host[hl] = '\0';
	long v = 0;
	size_t digits = strspn(p, "0123456789");
	if (p[digits] != '\0' || digits > 5 ||
	    (v = digits ? strtol(p, NULL, 10) : 0) > 65535)
		return fail(t, -EINVAL,
			    "invalid port \"%.16s\" (want a number from 0 "
			    "to 65535)",
			    p);
	*port = (int)v;
	return 0;
}

/* A name the resolver may be asked about: letters, digits, '-', '_' and
 * '.', so that no garbage string turns into a DNS query. */
static bool plausible_name(const char *h)
{
	size_t n = strlen(h);
	return n > 0 && n <= 253 &&
	       strspn(h, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
			 "0123456789-_.") == n;
}

/* getaddrinfo's error e as a negative errno. */
static int gai_errno(int e)
{
	switch (e) {
	case EAI_NONAME:
	case EAI_NODATA:
	case EAI_ADDRFAMILY:
		return -ENOENT; /* no such host */
	case EAI_AGAIN:
	case EAI_FAIL:
		return -EAGAIN; /* the resolver failed, for now */
	case EAI_MEMORY:
		return -ENOMEM;
	case EAI_SYSTEM:
		return -errno;
	default:
		return -EINVAL;
	}
}

/* Look host up with getaddrinfo (blocking the thread: see net.h). */
static int lookup(target *t, const char *host, int port)
{
	if (!plausible_name(host))
		return fail(t, -EINVAL,
			    "host \"%.64s\" is not an IP address "
			    "or a host name",
			    host);
	struct addrinfo hints = {.ai_socktype = SOCK_STREAM,
				 .ai_family = t->kind == K_TCP4   ? AF_INET
					      : t->kind == K_TCP6 ? AF_INET6
								  : AF_UNSPEC};
	struct addrinfo *res = NULL;
	int e = getaddrinfo(host, NULL, &hints, &res);
	if (e != 0) {
		int err = gai_errno(e);
		return fail(t, err, "lookup %.64s: %s", host,
			    err == -ENOENT ? "no such host" : gai_strerror(e));
	}
	for (struct addrinfo *ai = res; ai && t->n < MAX_ADDRS;
	     ai = ai->ai_next) {
		if (ai->ai_family == AF_INET)
			add_v4(t,
			       ((struct sockaddr_in *)ai->ai_addr)
				       ->sin_addr.s_addr,
			       port);
		else if (ai->ai_family == AF_INET6)
			add_v6(t,
			       &((struct sockaddr_in6 *)ai->ai_addr)->sin6_addr,
			       port);
	}
	freeaddrinfo(res);
	if (t->n == 0)
		return fail(t, -ENOENT, "lookup %.64s: no such host", host);
	return 0;
}

/* The host part of a TCP address as socket addresses (see net.h for what
 * each form means). */
static int resolve(target *t, const char *host, int port, bool listening)
{
	bool v4 = t->kind != K_TCP6, v6 = t->kind != K_TCP4;
	struct in_addr a4;
	struct in6_addr a6;
	if (host[0] == '\0') {
		if (v4)
			add_v4(t,
			       htonl(listening ? INADDR_ANY : INADDR_LOOPBACK),
			       port);
		else
			add_v6(t, listening ? &in6addr_any : &in6addr_loopback,
			       port);
		return 0;
	}
	if (strcasecmp(host, "localhost") == 0) {
		/* Both loopbacks for a dial, as a lookup would give them;
		 * one listener, on the first (Go listens on the first
		 * address of a name too). */
		if (v4)
			add_v4(t, htonl(INADDR_LOOPBACK), port);
		if (v6 && (!listening || t->n == 0))
			add_v6(t, &in6addr_loopback, port);
		return 0;
	}
	if (inet_pton(AF_INET, host, &a4) == 1) {
		if (!v4)
			return fail(t, -EINVAL,
				    "%s is an IPv4 address (network tcp6 "
				    "takes IPv6 only)",
				    host);
		add_v4(t, a4.s_addr, port);
		return 0;
	}
	if (inet_pton(AF_INET6, host, &a6) == 1) {
		if (!v6)
			return fail(t, -EINVAL,
				    "%s is an IPv6 address (network tcp4 "
				    "takes IPv4 only)",
				    host);
		add_v6(t, &a6, port);
		return 0;
	}
	if (listening)
		return fail(t, -EINVAL,
			    "host \"%.64s\" is not an IP address or localhost "
			    "(tt_listen does not look names up)",
			    host);
	return lookup(t, host, port);
}

/* Fill t from fn's arguments. */
static int parse(target *t, const char *fn, const char *network,
		 const char *address, bool listening)
{
	*t = (target){.fn = fn,
		      .network = network ? network : "(null)",
		      .address = address ? address : "(null)"};
	if (network == NULL)
		return tt__err(-EINVAL, "%s: network is NULL", fn);
	if (address == NULL)
		return tt__err(-EINVAL, "%s: address is NULL", fn);
	int r = parse_network(t);
	if (r)
		return r;
	if (t->kind == K_UNIX)
		return parse_unix(t);
	char host[256];
	int port = 0;
	r = split_host_port(t, host, sizeof host, &port);
	if (r)
		return r;
	return resolve(t, host, port, listening);
}

int tt__net_parse_listen(const char *network, const char *address)
{
	target t;
	int r = parse(&t, "tt_listen", network, address, true);
	return r ? r : t.n;
}

/* A new non-blocking, close-on-exec stream socket for address i of t. */
static int new_socket(const target *t, int i)
{
	int fd = socket(t->sa[i].ss_family,
			SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return fail_errno(t, -errno, "socket", false);
	/* A fresh file: start its poller record afresh, in case an older
	 * descriptor of that number was closed behind the poller's back
	 * (fd.h). */
	int r = tt_fd_nonblock(fd);
	if (r) {
		close(fd);
		return fail_errno(t, r, "fcntl", false);
	}
	return fd;
}

/* ---- listen --------------------------------------------------------------- */

int tt_listen(const char *network, const char *address)
{
	target t;
	int r = parse(&t, "tt_listen", network, address, true);
	if (r)
		return r;
	int fd = new_socket(&t, 0);
	if (fd < 0)
		return fd;
	int one = 1, v6only = t.kind == K_TCP6;
	const char *step = "setsockopt";
	if (t.kind != K_UNIX &&
	    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) != 0)
		goto fail;
	/* "tcp" on an IPv6 address also takes IPv4 (a dual-stack socket,
	 * as Go makes for "[::]"); "tcp6" does not. */
	if (t.sa[0].ss_family == AF_INET6 &&
	    setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &v6only, sizeof v6only) !=
		    0)
		goto fail;
	step = "bind";
	if (bind(fd, (struct sockaddr *)&t.sa[0], t.len[0]) != 0)
		goto fail;
	/* Larger than any net.core.somaxconn: the kernel caps it there,
	 * which is the backlog Go asks for. */
	step = "listen";
	if (listen(fd, 65535) != 0)
		goto fail;
	return fd;
fail:
	r = -errno;
	close(fd);
	return fail_errno(&t, r, step, false);
}

/* ---- dial ----------------------------------------------------------------- */

/* Connect fd to address i of t, under the deadline or the context. */
static int connect_one(const target *t, int i, int fd, tt_ctx *ctx,
		       int64_t deadline)
{
	const struct sockaddr *sa = (const struct sockaddr *)&t->sa[i];
	int64_t nap = 100 * TT_MICROSECOND;
	for (;;) {
		int r = ctx ? tt_connect_ctx(ctx, fd, sa, t->len[i])
			    : tt_connect(fd, sa, t->len[i], deadline);
		/* A Unix listener with a full queue: no event will say when
		 * it has room, so wait a little and ask again (up to 20 ms
		 * between tries). */
		if (r != -EAGAIN || t->kind != K_UNIX ||
		    (!ctx && deadline == TT_TRY))
			return r;
		int s;
		if (ctx) {
			s = tt_sleep_ctx(ctx, nap);
		} else if (deadline == TT_FOREVER) {
			s = tt_sleep(nap);
		} else {
			int64_t now = tt_now();
			if (now >= deadline)
				return -ETIMEDOUT;
			s = tt_sleep_until(deadline - now > nap ? now + nap
								: deadline);
		}
		if (s)
			return s;
		if (nap < 20 * TT_MILLISECOND)
			nap *= 2;
	}
}

static int dial(const char *fn, tt_ctx *ctx, const char *network,
		const char *address, int64_t deadline)
{
	target t;
	int r = parse(&t, fn, network, address, false);
	if (r)
		return r;
	int first = 0; /* the first address's error */
	char msg[256] = "";
	for (int i = 0; i < t.n; i++) {
		/* A socket() that fails (no IPv6 here) is one more address
		 * that did not answer. */
		int fd = new_socket(&t, i);
		r = fd < 0 ? fd : connect_one(&t, i, fd, ctx, deadline);
		if (r == 0) {
			int one = 1;
			if (t.kind != K_UNIX)
				(void)setsockopt(fd, IPPROTO_TCP, TCP_NODELAY,
						 &one, sizeof one);
			return fd;
		}
		if (fd >= 0)
			tt_close(fd);
		if (ctx && (r == -ETIMEDOUT || r == -ECANCELED))
			r = tt_ctx_err(ctx) ? tt_ctx_err(ctx) : r;
		if (first == 0) {
			first = r;
			fail_errno(&t, r, NULL, ctx != NULL);
			snprintf(msg, sizeof msg, "%s", tt_last_error());
		}
		/* The deadline or the context is over for every address. */
		if (r == -ETIMEDOUT || r == -ECANCELED || r == -EAGAIN ||
		    r == -EBADF || r == -EINVAL)
			break;
	}
	return tt__err(first, "%s", msg);
}

int tt_dial(const char *network, const char *address, int64_t deadline)
{
	return dial("tt_dial", NULL, network, address, deadline);
}

int tt_dial_ctx(tt_ctx *ctx, const char *network, const char *address)
{
	if (ctx == NULL)
		return tt__err(-EINVAL, "tt_dial_ctx: ctx is NULL");
	int r = tt_ctx_err(ctx);
	if (r == -EINVAL || r == -EBADF)
		return r; /* tt_ctx_err said what was wrong */
	if (r) {
		target t = {.fn = "tt_dial_ctx",
			    .network = network ? network : "(null)",
			    .address = address ? address : "(null)"};
		return fail_errno(&t, r, NULL, true);
	}
	return dial("tt_dial_ctx", ctx, network, address, TT_FOREVER);
}

/* ---- addresses ------------------------------------------------------------ */

static int format_addr(const char *fn, int fd, bool peer, char *buf, size_t n)
{
	if (buf == NULL || n == 0)
		return tt__err(-EINVAL, "%s: buf is NULL or empty", fn);
	struct sockaddr_storage ss;
	socklen_t len = sizeof ss;
	int r = peer ? getpeername(fd, (struct sockaddr *)&ss, &len)
		     : getsockname(fd, (struct sockaddr *)&ss, &len);
	if (r != 0) {
		int e = errno;
		return tt__err(-e, "%s: fd %d: %s", fn, fd, tt_strerror(e));
	}
	char ip[INET6_ADDRSTRLEN];
	int w;
	if (ss.ss_family == AF_INET) {
		struct sockaddr_in *s = (struct sockaddr_in *)&ss;
		inet_ntop(AF_INET, &s->sin_addr, ip, sizeof ip);
		w = snprintf(buf, n, "%s:%u", ip, ntohs(s->sin_port));
	} else if (ss.ss_family == AF_INET6) {
		struct sockaddr_in6 *s = (struct sockaddr_in6 *)&ss;
		inet_ntop(AF_INET6, &s->sin6_addr, ip, sizeof ip);
		w = snprintf(buf, n, "[%s]:%u", ip, ntohs(s->sin6_port));
	} else if (ss.ss_family == AF_UNIX) {
		struct sockaddr_un *s = (struct sockaddr_un *)&ss;
		size_t off = offsetof(struct sockaddr_un, sun_path);
		size_t pl = len > off ? len - off : 0;
		if (pl > 0 && s->sun_path[0] == '\0') /* abstract */
			w = snprintf(buf, n, "@%.*s", (int)(pl - 1),
				     s->sun_path + 1);
		else
			w = snprintf(buf, n, "%.*s",
				     (int)strnlen(s->sun_path, pl),
				     s->sun_path);
	} else {
		return tt__err(-EAFNOSUPPORT,
			       "%s: fd %d: address family %d is not TCP/IP "
			       "or Unix",
			       fn, fd, ss.ss_family);
	}
	if (w < 0 || (size_t)w >= n)
		return tt__err(-ERANGE,
			       "%s: fd %d: the address needs %d bytes, buf "
			       "has %zu",
			       fn, fd, w + 1, n);
	return w;
}

int tt_local_addr(int fd, char *buf, size_t n)
{
	return format_addr("tt_local_addr", fd, false, buf, n);
}

int tt_remote_addr(int fd, char *buf, size_t n)
{
	return format_addr("tt_remote_addr", fd, true, buf, n);
}

int tt_local_port(int fd)
{
	struct sockaddr_storage ss;
	socklen_t len = sizeof ss;
	if (getsockname(fd, (struct sockaddr *)&ss, &len) != 0) {
		int e = errno;
		return tt__err(-e, "tt_local_port: fd %d: %s", fd,
			       tt_strerror(e));
	}
	if (ss.ss_family == AF_INET)
		return ntohs(((struct sockaddr_in *)&ss)->sin_port);
	if (ss.ss_family == AF_INET6)
		return ntohs(((struct sockaddr_in6 *)&ss)->sin6_port);
	return tt__err(-EAFNOSUPPORT,
		       "tt_local_port: fd %d is not a TCP/IP "
		       "socket",
		       fd);
}
