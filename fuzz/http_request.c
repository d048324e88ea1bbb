/* Fuzz target: the debug server's HTTP request parser (src/debug/http.h).
 *
 *   make fuzz                     build build-fuzz/http_request (clang,
 *                                 libFuzzer + ASan + UBSan) and run it on
 *                                 fuzz/corpus/http_request for FUZZ_TIME s
 *
 * The input is a byte stream as a client would send it on one connection:
 * requests are parsed one after another, as pipelined requests are. Its
 * first byte also picks small limits (so that the limit paths get as much
 * exercise as the syntax). For every head the parser accepts, the checks
 * below must hold; any other crash, overflow or hang is a bug.
 *
 * tests/test_http_corpus.c replays the corpus through this same entry
 * point in every `make test`, without libFuzzer. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "../src/debug/http.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define CHECK(c)                                                            \
	do {                                                                \
		if (!(c))                                                   \
			__builtin_trap();                                   \
	} while (0)

static bool inside(const char *p, size_t n, const char *lo, size_t len)
{
	return p >= lo && n <= len && (size_t)(p - lo) <= len - n;
}

static void check_request(const char *buf, size_t head, const tt__http_req *q)
{
	CHECK(q->method >= TT__HTTP_GET && q->method <= TT__HTTP_OTHER);
	CHECK(q->method_len > 0 && inside(q->method_str, q->method_len, buf,
					  head));
	CHECK(q->path_len > 0 && inside(q->path, q->path_len, buf, head));
	CHECK(q->path[0] == '/' || (q->path_len == 1 && q->path[0] == '*'));
	CHECK(q->version == 10 || q->version == 11);
	if (q->query)
		CHECK(inside(q->query, q->query_len, buf, head) &&
		      q->query[-1] == '?');
	if (q->host)
		CHECK(inside(q->host, q->host_len, buf, head));
	else
		CHECK(q->version == 10);
	/* A head ends in a blank line. */
	CHECK(head >= 2 && buf[head - 1] == '\n');

	char out[64];
	int n = tt__http_path_decode(q->path, q->path_len, out, sizeof out);
	CHECK(n >= -1 && n <= (int)sizeof out);
	if (n >= 0)
		CHECK((size_t)n <= q->path_len);
	if (q->query) {
		int ok = tt__http_query_check(q->query, q->query_len);
		int v = tt__http_query_get(q->query, q->query_len, "debug",
					   out, sizeof out);
		CHECK(v >= -2 && v < (int)sizeof out);
		if (v >= 0)
			CHECK(out[v] == '\0' && ok == 0);
		if (ok < 0)
			CHECK(v == -2);
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	tt__http_limits lim = {.max_header_bytes = 8192, .max_headers = 64};
	if (size > 0 && data[0] == '!') {
		/* "!" first: tiny limits. */
		lim.max_header_bytes = 96;
		lim.max_headers = 3;
	}
	/* A copy of exactly `size` bytes, so ASan sees any read past it. */
	char *buf = malloc(size ? size : 1);
	if (!buf)
		return 0;
	memcpy(buf, data, size);

	size_t off = 0;
	while (off < size) {
		tt__http_req q;
		const char *p = buf + off;
		size_t len = size - off;
		int r = tt__http_parse(p, len, &lim, &q);
		CHECK(r == 0 || r == -400 || r == -413 || r == -431 ||
		      r == -505 || r > 0);
		if (r == 0)
			CHECK(len < lim.max_header_bytes);
		if (r <= 0)
			break;
		CHECK((size_t)r <= len && (size_t)r <= lim.max_header_bytes);
		check_request(p, (size_t)r, &q);
		/* What the server relies on, reading piece by piece: no
		 * prefix of a complete head is complete, and more bytes after
		 * it do not change where it ends. */
		tt__http_req q2;
		CHECK(tt__http_parse(p, (size_t)r - 1, &lim, &q2) <= 0);
		CHECK(tt__http_parse(p, (size_t)r / 2, &lim, &q2) <= 0);
		CHECK(tt__http_parse(p, (size_t)r, &lim, &q2) == r);
		off += (size_t)r;
	}
	free(buf);
	return 0;
}
