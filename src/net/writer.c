/* tether — tt_writer, Go's bufio.Writer over a descriptor.
 *
 * Invariant: buf[0, n) are the bytes taken and not yet written, n <= cap.
 * cap starts at the size asked for and grows only when tt_writer_printf's
 * text does not fit in the room left.
 *
 * Writing goes through tt_write or tt_write_ctx, which park in the
 * poller. They return the bytes written when they stop early, without the
 * error; put() asks again for the rest, which either makes progress or
 * returns the error, so a flush always learns why it stopped, and keeps
 * exactly the bytes that did not go out. */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"
#include "net.h"
#include "tether/fd.h"
#include "tether/net.h"

#define DEFAULT_SIZE 4096
#define MAX_SIZE ((size_t)1 << 30)

struct tt_writer {
	int fd;
	char *buf;
	size_t cap; /* bytes at buf */
	size_t n;   /* bytes buffered */
};

typedef struct waitspec {
	const char *fn;
	int64_t deadline;
	tt_ctx *ctx; /* or NULL: the deadline */
} waitspec;

int tt_writer_make(tt_writer **out, int fd, size_t size)
{
	if (out == NULL)
		return tt__err(-EINVAL, "tt_writer_make: out is NULL");
	*out = NULL;
	if (fd < 0)
		return tt__err(-EBADF, "tt_writer_make: bad descriptor %d", fd);
	if (size == 0)
		size = DEFAULT_SIZE;
	if (size > MAX_SIZE)
		return tt__err(-EINVAL,
			       "tt_writer_make: size %zu is over the limit of "
			       "%zu",
			       size, MAX_SIZE);
	tt_writer *w = malloc(sizeof *w);
	char *buf = malloc(size);
	if (w == NULL || buf == NULL) {
		free(w);
		free(buf);
		return tt__err(-ENOMEM,
			       "tt_writer_make: out of memory for %zu bytes",
			       size);
	}
	*w = (tt_writer){.fd = fd, .buf = buf, .cap = size};
	*out = w;
	return 0;
}

int tt_writer_release(tt_writer *w)
{
	if (w) {
		free(w->buf);
		free(w);
	}
	return 0;
}

size_t tt_writer_buffered(const tt_writer *w)
{
	return w ? w->n : 0;
}

/* Arguments, and a context that is done already. */
static int begin(const waitspec *ws, tt_writer *w, const void *buf, size_t n)
{
	if (w == NULL)
		return tt__err(-EINVAL, "%s: writer is NULL", ws->fn);
	if (buf == NULL && n > 0)
		return tt__err(-EINVAL, "%s: buf is NULL", ws->fn);
	int e = ws->ctx ? tt_ctx_err(ws->ctx) : 0;
	if (e == -EINVAL || e == -EBADF)
		return e; /* tt_ctx_err said what was wrong */
	if (e) {
		char text[64];
		tt__net_err_text(e, true, text, sizeof text);
		return tt__err(e, "%s: fd %d: %s", ws->fn, w->fd, text);
	}
	return 0;
}

/* Write p[0, n) to fd: returns the bytes written; when that is less than
 * n, *err says why (and the message is set). */
static size_t put(const waitspec *ws, int fd, const char *p, size_t n, int *err)
{
	size_t done = 0;
	while (done < n) {
		ssize_t k =
			ws->ctx ? tt_write_ctx(ws->ctx, fd, p + done, n - done)
				: tt_write(fd, p + done, n - done,
					   ws->deadline);
		if (k <= 0) {
			*err = k < 0 ? (int)k : -EIO;
			char text[96];
			tt__net_err_text(*err, ws->ctx != NULL, text,
					 sizeof text);
			tt__err(*err,
				"%s: fd %d: %s (%zu of %zu bytes written)",
				ws->fn, fd, text, done, n);
			return done;
		}
		done += (size_t)k;
	}
	return done;
}

static int do_flush(const waitspec *ws, tt_writer *w)
{
	if (w->n == 0)
		return 0;
	int err = 0;
	size_t k = put(ws, w->fd, w->buf, w->n, &err);
	memmove(w->buf, w->buf + k, w->n - k); /* keep what did not go */
	w->n -= k;
	return err;
}

static ssize_t do_write(const waitspec *ws, tt_writer *w, const void *buf,
			size_t n)
{
	int e = begin(ws, w, buf, n);
	if (e)
		return e;
	if (n <= w->cap - w->n) {
		memcpy(w->buf + w->n, buf, n);
		w->n += n;
		return (ssize_t)n;
	}
	e = do_flush(ws, w);
	if (e)
		return e;
	if (n < w->cap) {
		memcpy(w->buf, buf, n);
		w->n = n;
		return (ssize_t)n;
	}
	/* At least a bufferful: straight out, without a copy. */
	size_t k = put(ws, w->fd, buf, n, &e);
	return k ? (ssize_t)k : e;
}

ssize_t tt_writer_write(tt_writer *w, const void *buf, size_t n,
			int64_t deadline)
{
	waitspec ws = {"tt_writer_write", deadline, NULL};
	return do_write(&ws, w, buf, n);
}

ssize_t tt_writer_write_ctx(tt_ctx *ctx, tt_writer *w, const void *buf,
			    size_t n)
{
	if (ctx == NULL)
		return tt__err(-EINVAL, "tt_writer_write_ctx: ctx is NULL");
	waitspec ws = {"tt_writer_write_ctx", TT_FOREVER, ctx};
	return do_write(&ws, w, buf, n);
}

int tt_writer_printf(tt_writer *w, const char *fmt, ...)
{
	if (w == NULL || fmt == NULL)
		return tt__err(-EINVAL, "tt_writer_printf: %s is NULL",
			       w ? "fmt" : "writer");
	va_list ap;
	va_start(ap, fmt);
	int k = vsnprintf(w->buf + w->n, w->cap - w->n, fmt, ap);
	va_end(ap);
	if (k < 0)
		return tt__err(-EINVAL,
			       "tt_writer_printf: bad format \"%.64s\"", fmt);
	if ((size_t)k >= w->cap - w->n) { /* with its NUL, it did not fit */
		size_t need = w->n + (size_t)k + 1;
		char *b = realloc(w->buf, need);
		if (b == NULL)
			return tt__err(-ENOMEM,
				       "tt_writer_printf: out of memory for "
				       "%zu bytes",
				       need);
		w->buf = b;
		w->cap = need;
		va_start(ap, fmt);
		vsnprintf(w->buf + w->n, w->cap - w->n, fmt, ap);
		va_end(ap);
	}
	w->n += (size_t)k;
	return k;
}

int tt_writer_flush(tt_writer *w, int64_t deadline)
{
	waitspec ws = {"tt_writer_flush", deadline, NULL};
	int e = begin(&ws, w, NULL, 0);
	return e ? e : do_flush(&ws, w);
}

int tt_writer_flush_ctx(tt_ctx *ctx, tt_writer *w)
{
	if (ctx == NULL)
		return tt__err(-EINVAL, "tt_writer_flush_ctx: ctx is NULL");
	waitspec ws = {"tt_writer_flush_ctx", TT_FOREVER, ctx};
	int e = begin(&ws, w, NULL, 0);
	return e ? e : do_flush(&ws, w);
}
