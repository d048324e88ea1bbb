/* tether — the HTTP/1.x request parser (see http.h).
 *
 * Design notes
 * ------------
 * The parser is restartable by being cheap: the server calls it on the
 * whole buffer each time more bytes arrive, and a head is at most
 * max_header_bytes long (8 KiB by default), so there is no state to carry
 * between calls. It only ever looks at buf[0, min(len, max_header_bytes)),
 * so a client cannot make it scan more than the limit.
 *
 * Errors that can be decided before the head is complete (a bad request
 * line, a bad header line, too many headers) are returned as soon as the
 * offending line is complete, so a client cannot keep a connection by
 * trickling a request that is already known to be bad. */
#include "http.h"

#include <string.h>

/* RFC 9110 5.6.2: tchar. */
static bool is_tchar(unsigned char c)
{
	if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
	    (c >= '0' && c <= '9'))
		return true;
	return c != 0 && strchr("!#$%&'*+-.^_`|~", c) != NULL;
}

/* A field value byte: HTAB, SP, VCHAR, obs-text. */
static bool is_value_char(unsigned char c)
{
	return c == '\t' || (c >= 0x20 && c != 0x7f);
}

static bool eq_nocase(const char *a, size_t n, const char *lit)
{
	size_t m = strlen(lit);
	if (n != m)
		return false;
	for (size_t i = 0; i < n; i++) {
		unsigned char x = (unsigned char)a[i];
		if (x >= 'A' && x <= 'Z')
			x = (unsigned char)(x - 'A' + 'a');
		if (x != (unsigned char)lit[i])
			return false;
	}
	return true;
}

/* The next line of buf[*pos, end): on 1 its bytes (without CRLF/LF) are
 * [*line, *line + *n) and *pos is past its end; 0 means no line end yet;
 * -1 a CR that is not followed by LF. */
static int next_line(const char *buf, size_t end, size_t *pos,
		     const char **line, size_t *n)
{
	size_t i = *pos;
	const char *nl = memchr(buf + i, '\n', end - i);
	size_t stop = nl ? (size_t)(nl - buf) : end;
	const char *cr = memchr(buf + i, '\r', stop - i);
	if (cr) {
		size_t c = (size_t)(cr - buf);
		/* Only allowed right before the LF (or as the last byte
		 * read so far, when the LF may still come). */
		if (nl ? c != stop - 1 : c != end - 1)
			return -1;
	}
	if (!nl)
		return 0;
	*line = buf + i;
	*n = stop - i;
	if (*n > 0 && buf[stop - 1] == '\r')
		(*n)--;
	*pos = stop + 1;
	return 1;
}

/* "GET /path?q HTTP/1.1" */
static int parse_request_line(const char *l, size_t n, tt__http_req *req)
{
	const char *sp1 = memchr(l, ' ', n);
	if (!sp1 || sp1 == l)
		return -400;
	req->method_str = l;
	req->method_len = (size_t)(sp1 - l);
	for (size_t i = 0; i < req->method_len; i++)
		if (!is_tchar((unsigned char)l[i]))
			return -400;
	if (req->method_len == 3 && memcmp(l, "GET", 3) == 0)
		req->method = TT__HTTP_GET;
	else if (req->method_len == 4 && memcmp(l, "HEAD", 4) == 0)
		req->method = TT__HTTP_HEAD;
	else
		req->method = TT__HTTP_OTHER;

	const char *t = sp1 + 1;
	const char *e = l + n;
	const char *sp2 = memchr(t, ' ', (size_t)(e - t));
	if (!sp2 || sp2 == t)
		return -400;
	for (const char *p = t; p < sp2; p++) {
		unsigned char c = (unsigned char)*p;
		if (c <= 0x20 || c >= 0x7f)
			return -400;
	}
	size_t tlen = (size_t)(sp2 - t);
	if (!(t[0] == '/' || (tlen == 1 && t[0] == '*')))
		return -400; /* absolute-form and authority-form: not here */
	const char *q = memchr(t, '?', tlen);
	req->path = t;
	req->path_len = q ? (size_t)(q - t) : tlen;
	req->query = q ? q + 1 : NULL;
	req->query_len = q ? (size_t)(sp2 - q - 1) : 0;

	const char *v = sp2 + 1;
	size_t vlen = (size_t)(e - v);
	if (vlen != 8 || memcmp(v, "HTTP/", 5) != 0 || v[6] != '.' ||
	    v[5] < '0' || v[5] > '9' || v[7] < '0' || v[7] > '9')
		return -400; /* also catches a third space */
	if (v[5] != '1')
		return -505;
	/* 1.x with x > 1 is served as 1.1 (RFC 9110 6.2). */
	req->version = v[7] == '0' ? 10 : 11;
	return 0;
}

/* Comma-separated tokens of a Connection header. */
static void parse_connection(const char *v, size_t n, bool *close,
			     bool *keep)
{
	size_t i = 0;
	while (i < n) {
		while (i < n && (v[i] == ' ' || v[i] == '\t' || v[i] == ','))
			i++;
		size_t s = i;
		while (i < n && v[i] != ',' && v[i] != ' ' && v[i] != '\t')
			i++;
		if (eq_nocase(v + s, i - s, "close"))
			*close = true;
		else if (eq_nocase(v + s, i - s, "keep-alive"))
			*keep = true;
	}
}

int tt__http_parse(const char *buf, size_t len, const tt__http_limits *lim,
		   tt__http_req *req)
{
	size_t end = len < lim->max_header_bytes ? len : lim->max_header_bytes;
	size_t pos = 0;
	const char *line;
	size_t n;
	int r;

	memset(req, 0, sizeof *req);

	/* RFC 9112 2.2: ignore empty lines before the request line. */
	for (;;) {
		r = next_line(buf, end, &pos, &line, &n);
		if (r < 0)
			return -400;
		if (r == 0)
			goto incomplete;
		if (n > 0)
			break;
	}
	r = parse_request_line(line, n, req);
	if (r)
		return r;

	bool have_cl = false, close = false, keep = false;
	uint64_t cl = 0;
	for (;;) {
		r = next_line(buf, end, &pos, &line, &n);
		if (r < 0)
			return -400;
		if (r == 0)
			goto incomplete;
		if (n == 0)
			break;
		if (++req->nheaders > lim->max_headers)
			return -431;
		if (line[0] == ' ' || line[0] == '\t')
			return -400; /* obs-fold */
		const char *colon = memchr(line, ':', n);
		if (!colon || colon == line)
			return -400;
		size_t nlen = (size_t)(colon - line);
		for (size_t i = 0; i < nlen; i++)
			if (!is_tchar((unsigned char)line[i]))
				return -400;
		const char *v = colon + 1;
		const char *ve = line + n;
		for (const char *p = v; p < ve; p++)
			if (!is_value_char((unsigned char)*p))
				return -400;
		while (v < ve && (*v == ' ' || *v == '\t'))
			v++;
		while (ve > v && (ve[-1] == ' ' || ve[-1] == '\t'))
			ve--;
		size_t vlen = (size_t)(ve - v);

		if (eq_nocase(line, nlen, "host")) {
			if (req->host)
				return -400;
			req->host = v;
			req->host_len = vlen;
		} else if (eq_nocase(line, nlen, "accept")) {
			/* A browser's; curl and pprof send none or * / *. */
			for (size_t i = 0; i + 9 <= vlen; i++)
				if (eq_nocase(v + i, 9, "text/html"))
					req->wants_html = true;
		} else if (eq_nocase(line, nlen, "connection")) {
			parse_connection(v, vlen, &close, &keep);
		} else if (eq_nocase(line, nlen, "content-length")) {
			if (vlen == 0)
				return -400;
			uint64_t x = 0;
			for (size_t i = 0; i < vlen; i++) {
				if (v[i] < '0' || v[i] > '9' ||
				    x > (UINT64_MAX - 9) / 10)
					return -400;
				x = x * 10 + (uint64_t)(v[i] - '0');
			}
			if (have_cl && x != cl)
				return -400;
			have_cl = true;
			cl = x;
		} else if (eq_nocase(line, nlen, "transfer-encoding")) {
			return -413;
		}
	}
	if (req->version == 11 && !req->host)
		return -400;
	if (cl > 0)
		return -413;
	req->keep_alive = req->version == 11 ? !close : keep && !close;
	return (int)pos;

incomplete:
	if (len >= lim->max_header_bytes)
		return -431;
	return 0;
}

static int hexval(unsigned char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

/* One byte of %-encoded text at s[*i] (advancing *i): the byte, or -1 for
 * a bad escape. */
static int decode_byte(const char *s, size_t n, size_t *i)
{
	unsigned char c = (unsigned char)s[*i];
	if (c != '%') {
		(*i)++;
		return c;
	}
	if (n - *i < 3)
		return -1;
	int hi = hexval((unsigned char)s[*i + 1]);
	int lo = hexval((unsigned char)s[*i + 2]);
	if (hi < 0 || lo < 0)
		return -1;
	*i += 3;
	return hi * 16 + lo;
}

int tt__http_path_decode(const char *p, size_t n, char *out, size_t outsz)
{
	size_t i = 0, o = 0;
	while (i < n) {
		bool escaped = p[i] == '%';
		int c = decode_byte(p, n, &i);
		if (c < 0 || (escaped && (c == 0 || c == '/')) || o >= outsz)
			return -1;
		out[o++] = (char)c;
	}
	return o > INT32_MAX ? -1 : (int)o;
}

int tt__http_query_check(const char *q, size_t n)
{
	size_t i = 0;
	while (i < n)
		if (decode_byte(q, n, &i) < 0)
			return -1;
	return 0;
}

int tt__http_query_get(const char *q, size_t n, const char *name, char *out,
		       size_t outsz)
{
	if (tt__http_query_check(q, n) < 0 || outsz == 0)
		return -2;
	size_t want = strlen(name);
	size_t i = 0;
	while (i <= n) {
		const char *amp = memchr(q + i, '&', n - i);
		size_t pe = amp ? (size_t)(amp - q) : n;
		/* The pair q[i, pe): decode the name and compare. */
		size_t j = i, k = 0;
		bool match = true;
		while (j < pe && q[j] != '=') {
			bool plus = q[j] == '+';
			int c = decode_byte(q, pe, &j);
			if (plus)
				c = ' ';
			if (c < 0 || k >= want || (unsigned char)name[k] != c)
				match = false;
			k++;
			if (c < 0)
				break;
		}
		if (match && k == want && (pe > i || want == 0)) {
			size_t o = 0;
			if (j < pe)
				j++; /* '=' */
			while (j < pe) {
				bool plus = q[j] == '+';
				int c = decode_byte(q, pe, &j);
				if (c < 0 || o + 1 >= outsz)
					return -2;
				out[o++] = (char)(plus ? ' ' : c);
			}
			out[o] = '\0';
			return o > INT32_MAX ? -2 : (int)o;
		}
		if (!amp)
			break;
		i = pe + 1;
	}
	return -1;
}
