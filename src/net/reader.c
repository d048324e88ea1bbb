/* tether — tt_reader, Go's bufio.Reader over a descriptor.
 *
 * Design notes
 * ------------
 * Invariant: 0 <= r->r <= r->w <= r->cap; buf[r, w) are the bytes read
 * from the descriptor and not yet handed out. cap starts at the size
 * asked for and grows only to hold what a call was asked for and could
 * not finish: the line so far in tt_reader_read_line (at most its n - 1),
 * the bytes put back by a failed tt_reader_read_full (at most its n).
 *
 * Nothing is lost when a read fails part way. tt_reader_read_line keeps
 * the line it is reading in the buffer until the line is complete (or
 * the caller's buffer is full), so a deadline or a cancellation leaves it
 * there for the next call. tt_reader_read_full reads large counts
 * straight into the caller's buffer, without a copy; if it fails, it puts
 * what it had read back into the reader.
 *
 * Every wait is tt_read or tt_read_ctx, so the reader parks in the
 * poller as they do; the calls here only rewrite their messages to name
 * the reader's call. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"
#include "net.h"
#include "tether/fd.h"
#include "tether/net.h"

#define DEFAULT_SIZE 4096
#define MAX_SIZE ((size_t)1 << 30)

struct tt_reader {
	int fd;
	char *buf;
	size_t cap; /* bytes at buf */
	size_t r;   /* next byte to hand out */
	size_t w;   /* end of the buffered bytes */
};

/* How a call waits: a deadline, or a context (then deadline is unused). */
typedef struct waitspec {
	const char *fn;
	int64_t deadline;
	tt_ctx *ctx;
} waitspec;

static size_t min_sz(size_t a, size_t b)
{
	return a < b ? a : b;
}

int tt_reader_make(tt_reader **out, int fd, size_t size)
{
	if (out == NULL)
		return tt__err(-EINVAL, "tt_reader_make: out is NULL");
	*out = NULL;
	if (fd < 0)
		return tt__err(-EBADF, "tt_reader_make: bad descriptor %d", fd);
	if (size == 0)
		size = DEFAULT_SIZE;
	if (size > MAX_SIZE)
		return tt__err(-EINVAL,
			       "tt_reader_make: size %zu is over the limit of "
			       "%zu",
			       size, MAX_SIZE);
	tt_reader *r = malloc(sizeof *r);
	char *buf = malloc(size);
	if (r == NULL || buf == NULL) {
		free(r);
		free(buf);
		return tt__err(-ENOMEM,
			       "tt_reader_make: out of memory for %zu bytes",
			       size);
	}
	*r = (tt_reader){.fd = fd, .buf = buf, .cap = size};
	*out = r;
	return 0;
}

int tt_reader_release(tt_reader *r)
{
	if (r) {
		free(r->buf);
		free(r);
	}
	return 0;
}

int tt_reader_fd(const tt_reader *r)
{
	return r ? r->fd : tt__err(-EINVAL, "tt_reader_fd: reader is NULL");
}

size_t tt_reader_buffered(const tt_reader *r)
{
	return r ? r->w - r->r : 0;
}

/* The checks every read starts with: arguments, and a context that is
 * done already (its error, before anything is handed out). */
static int begin(const waitspec *ws, tt_reader *r, const void *buf, size_t n)
{
	if (r == NULL)
		return tt__err(-EINVAL, "%s: reader is NULL", ws->fn);
	if (buf == NULL && n > 0)
		return tt__err(-EINVAL, "%s: buf is NULL", ws->fn);
	if (ws->ctx == NULL)
		return 0;
	int e = tt_ctx_err(ws->ctx);
	if (e == -EINVAL || e == -EBADF)
		return e; /* tt_ctx_err said what was wrong */
	if (e) {
		char text[64];
		tt__net_err_text(e, true, text, sizeof text);
		return tt__err(e, "%s: fd %d: %s", ws->fn, r->fd, text);
	}
	return 0;
}

/* One read(2) of up to n bytes into p, parking as ws says: bytes (> 0),
 * 0 at end of stream, or -errno with a message naming ws->fn. */
static ssize_t os_read(const waitspec *ws, int fd, void *p, size_t n)
{
	ssize_t k = ws->ctx ? tt_read_ctx(ws->ctx, fd, p, n)
			    : tt_read(fd, p, n, ws->deadline);
	if (k >= 0)
		return k;
	char text[96];
	tt__net_err_text((int)k, ws->ctx != NULL, text, sizeof text);
	return tt__err((int)k, "%s: fd %d: %s", ws->fn, fd, text);
}

/* Hand out up to n buffered bytes into p; returns how many. */
static size_t take(tt_reader *r, void *p, size_t n)
{
	size_t k = min_sz(n, r->w - r->r);
	memcpy(p, r->buf + r->r, k);
	r->r += k;
	if (r->r == r->w)
		r->r = r->w = 0;
	return k;
}

/* Make cap at least `need`, keeping the buffered bytes. 0 or -ENOMEM. */
static int reserve(const waitspec *ws, tt_reader *r, size_t need)
{
	if (r->cap >= need)
		return 0;
	char *b = realloc(r->buf, need);
	if (b == NULL)
		return tt__err(-ENOMEM, "%s: out of memory for %zu bytes",
			       ws->fn, need);
	r->buf = b;
	r->cap = need;
	return 0;
}

/* ---- read ------------------------------------------------------------------ */

static ssize_t do_read(const waitspec *ws, tt_reader *r, void *p, size_t n)
{
	int e = begin(ws, r, p, n);
	if (e)
		return e;
	if (n == 0)
		return 0;
	if (r->w > r->r)
		return (ssize_t)take(r, p, n);
	/* Empty: a large read goes straight to the caller, as bufio's
	 * does; a small one fills the buffer. */
	if (n >= r->cap)
		return os_read(ws, r->fd, p, n);
	ssize_t k = os_read(ws, r->fd, r->buf, r->cap);
	if (k <= 0)
		return k;
	r->w = (size_t)k;
	return (ssize_t)take(r, p, n);
}

ssize_t tt_reader_read(tt_reader *r, void *buf, size_t n, int64_t deadline)
{
	waitspec ws = {"tt_reader_read", deadline, NULL};
	return do_read(&ws, r, buf, n);
}

ssize_t tt_reader_read_ctx(tt_ctx *ctx, tt_reader *r, void *buf, size_t n)
{
	if (ctx == NULL)
		return tt__err(-EINVAL, "tt_reader_read_ctx: ctx is NULL");
	waitspec ws = {"tt_reader_read_ctx", TT_FOREVER, ctx};
	return do_read(&ws, r, buf, n);
}

/* ---- read full ------------------------------------------------------------- */

/* A read_full that failed after `got` bytes: put them back in front, so
 * the next call sees them first. The buffer is empty here (the loop in
 * do_read_full only reads once it has handed out everything buffered,
 * and stops once a fill leaves bytes over). */
static ssize_t put_back(const waitspec *ws, tt_reader *r, const char *p,
			size_t got, ssize_t err)
{
	if (got == 0)
		return err;
	char msg[256];
	snprintf(msg, sizeof msg, "%s", tt_last_error());
	if (reserve(ws, r, got) != 0)
		return tt__err(-ENOMEM,
			       "%s: %s; and out of memory to keep the %zu "
			       "bytes read before (they are lost)",
			       ws->fn, msg, got);
	memcpy(r->buf, p, got);
	r->r = 0;
	r->w = got;
	return tt__err((int)err, "%s (%zu bytes read before are kept)", msg,
		       got);
}

static ssize_t do_read_full(const waitspec *ws, tt_reader *r, void *buf,
			    size_t n)
{
	int e = begin(ws, r, buf, n);
	if (e)
		return e;
	char *p = buf;
	size_t got = n ? take(r, p, n) : 0;
	while (got < n) {
		ssize_t k;
		if (n - got >= r->cap) {
			k = os_read(ws, r->fd, p + got, n - got);
		} else {
			k = os_read(ws, r->fd, r->buf, r->cap);
			if (k > 0) {
				r->w = (size_t)k;
				k = (ssize_t)take(r, p + got, n - got);
			}
		}
		if (k < 0)
			return put_back(ws, r, p, got, k);
		if (k == 0) {
			if (got == 0)
				return 0;
			tt__err(-EPIPE,
				"%s: fd %d: unexpected end of stream after %zu "
				"of %zu bytes",
				ws->fn, r->fd, got, n);
			return (ssize_t)got;
		}
		got += (size_t)k;
	}
	return (ssize_t)n;
}

ssize_t tt_reader_read_full(tt_reader *r, void *buf, size_t n, int64_t deadline)
{
	waitspec ws = {"tt_reader_read_full", deadline, NULL};
	return do_read_full(&ws, r, buf, n);
}

ssize_t tt_reader_read_full_ctx(tt_ctx *ctx, tt_reader *r, void *buf, size_t n)
{
	if (ctx == NULL)
		return tt__err(-EINVAL, "tt_reader_read_full_ctx: ctx is NULL");
	waitspec ws = {"tt_reader_read_full_ctx", TT_FOREVER, ctx};
	return do_read_full(&ws, r, buf, n);
}

/* ---- read line ------------------------------------------------------------- */

/* Copy len buffered bytes to buf as a string, consuming them. */
static ssize_t hand_line(tt_reader *r, char *buf, size_t len)
{
	take(r, buf, len);
	buf[len] = '\0';
	return (ssize_t)len;
}

static ssize_t do_read_line(const waitspec *ws, tt_reader *r, char *buf,
			    size_t n)
{
	int e = begin(ws, r, buf, n);
	if (e)
		return e;
	if (n < 2)
		return tt__err(-EINVAL,
			       "%s: buf of %zu bytes has no room for a line "
			       "and its NUL",
			       ws->fn, n);
	size_t max = n - 1; /* the longest piece buf takes */
	for (;;) {
		size_t have = r->w - r->r;
		const char *start = r->buf + r->r;
		const char *nl = memchr(start, '\n', min_sz(have, max));
		if (nl)
			return hand_line(r, buf, (size_t)(nl - start) + 1);
		if (have >= max) /* a long line: its first max bytes */
			return hand_line(r, buf, max);
		/* Room to read more of the line into: move it to the
		 * front, or grow the buffer towards max. */
		if (r->w == r->cap) {
			if (r->r > 0) {
				memmove(r->buf, start, have);
				r->r = 0;
				r->w = have;
			} else {
				size_t grow = r->cap * 2;
				e = reserve(ws, r, grow < max ? grow : max);
				if (e)
					return e;
			}
		}
		ssize_t k = os_read(ws, r->fd, r->buf + r->w, r->cap - r->w);
		if (k < 0)
			return k; /* the line so far stays buffered */
		if (k == 0)       /* end of stream: the last line, unended */
			return have ? hand_line(r, buf, have) : 0;
		r->w += (size_t)k;
	}
}

ssize_t tt_reader_read_line(tt_reader *r, char *buf, size_t n, int64_t deadline)
{
	waitspec ws = {"tt_reader_read_line", deadline, NULL};
	return do_read_line(&ws, r, buf, n);
}

ssize_t tt_reader_read_line_ctx(tt_ctx *ctx, tt_reader *r, char *buf, size_t n)
{
	if (ctx == NULL)
		return tt__err(-EINVAL, "tt_reader_read_line_ctx: ctx is NULL");
	waitspec ws = {"tt_reader_read_line_ctx", TT_FOREVER, ctx};
	return do_read_line(&ws, r, buf, n);
}
