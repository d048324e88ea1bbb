/* tether — debug layer: the HTTP/1.x request parser and query helpers.
 *
 * Pure functions over a byte buffer: no allocation, no I/O, no runtime.
 * The server feeds them what it has read so far; the fuzz target
 * (fuzz/http_request.c) and its corpus replay feed them anything. This
 * header includes nothing of tether's so that both can be built from
 * http_parse.c alone.
 *
 * What is accepted is deliberately narrow, since a debug endpoint has no
 * reason to be generous: an origin-form target ("/path?query") or "*",
 * HTTP/1.0 or 1.1, header names that are tokens, header values without
 * control characters, no obsolete line folding, no request body. Lines may
 * end in CRLF or a bare LF (RFC 9112 2.2 lets a recipient accept LF); a
 * bare CR anywhere is an error. */
#ifndef TT_DEBUG_HTTP_H
#define TT_DEBUG_HTTP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* What the parser refuses beyond the syntax. */
typedef struct tt__http_limits {
	size_t max_header_bytes; /* request line + headers + blank line */
	unsigned max_headers;    /* header lines */
} tt__http_limits;

enum tt__http_method {
	TT__HTTP_GET = 1,
	TT__HTTP_HEAD,
	TT__HTTP_OTHER /* a well-formed method the server does not serve */
};

/* A parsed request head. Every pointer points into the parsed buffer. */
typedef struct tt__http_req {
	int method;             /* enum tt__http_method */
	const char *method_str; /* the method as sent */
	size_t method_len;
	const char *path;       /* the target up to '?', still %-encoded */
	size_t path_len;
	const char *query;      /* after '?' (NULL when there is no '?') */
	size_t query_len;
	const char *host;       /* the Host header's value, NULL if none */
	size_t host_len;
	int version;            /* 10 or 11 (HTTP/1.0, HTTP/1.1) */
	unsigned nheaders;
	bool wants_html;        /* an Accept header names text/html */
	bool keep_alive;        /* the connection may carry another request */
} tt__http_req;

/* Parse the request head at the start of buf[len].
 *
 * Returns the head's length in bytes (> 0; the next request, if
 * pipelined, starts there) when it is complete, 0 when more bytes are
 * needed, or minus the HTTP status to answer with when the request must
 * be refused:
 *   -400  malformed (request line, header syntax, a bare CR, a control
 *         character, a duplicate Host, HTTP/1.1 without Host, a bad
 *         Content-Length)
 *   -413  a request body (Content-Length > 0 or any Transfer-Encoding)
 *   -431  the head is longer than lim->max_header_bytes, or has more than
 *         lim->max_headers header lines
 *   -505  an HTTP version other than 1.x
 * A result of 0 is only returned while len < lim->max_header_bytes: a
 * head that is not complete within the limit is -431. On success *req is
 * filled in; on other results its content is unspecified. */
int tt__http_parse(const char *buf, size_t len, const tt__http_limits *lim,
		   tt__http_req *req);

/* Decode %XX escapes of a path into out[outsz] (no NUL is added).
 * Returns the decoded length, or -1 for a bad escape, an escaped NUL or
 * '/', or a result that does not fit. */
int tt__http_path_decode(const char *p, size_t n, char *out, size_t outsz);

/* Check a whole query string: '&'-separated name[=value] pairs whose %XX
 * escapes are all well formed. Returns 0 or -1. */
int tt__http_query_check(const char *q, size_t n);

/* The decoded value ('+' is a space, %XX a byte) of the first parameter
 * called `name` in query q[n], into out[outsz] with a NUL after it.
 * Returns the value's length, -1 when the parameter is absent, -2 when
 * the query is malformed or the value does not fit. A parameter without
 * '=' has the empty value. */
int tt__http_query_get(const char *q, size_t n, const char *name, char *out,
		       size_t outsz);

#endif
