/* tether — networking that parks: Go's net.Listen and net.Dial, and a
 * buffered reader and writer (Go's bufio.Reader and bufio.Writer) over
 * any descriptor.
 *
 * Connections are plain descriptors, non-blocking and close-on-exec, for
 * the calls of fd.h: tt_accept (or tt_accept_ctx) on a listener,
 * tt_read, tt_write and tt_close on a connection. Every call below that
 * waits parks the goroutine in the poller, never the thread.
 *
 * Networks and addresses, as Go's net package spells them:
 *
 *   "tcp"   "host:port"  IPv4 or IPv6 ("[::1]:8080", "127.0.0.1:0")
 *   "tcp4"  "host:port"  IPv4 only
 *   "tcp6"  "host:port"  IPv6 only ("[::1]:0")
 *   "unix"  "/path"      a Unix stream socket; "@name" is Linux's
 *                        abstract namespace (no file)
 *
 * The host is an IP literal (IPv6 in brackets, no zone), "localhost" or
 * empty. "localhost" is 127.0.0.1 for "tcp4" and ::1 for "tcp6"; "tcp"
 * dials 127.0.0.1, then ::1, and listens on 127.0.0.1. An empty host
 * (":8080") listens on every interface (0.0.0.0 for "tcp" and "tcp4",
 * [::] for "tcp6") and dials this machine (127.0.0.1, or ::1 for
 * "tcp6"). "tcp" on "[::]" listens for IPv4 too (dual stack), "tcp6"
 * does not. The port is a
 * decimal number; port 0 when listening picks a free port, which
 * tt_local_addr or tt_local_port then tell. tt_dial also takes host
 * names, looked up with getaddrinfo(3), which BLOCKS THE THREAD (every
 * goroutine of it) until the resolver answers: dial names from a thread
 * that may block, or resolve them beforehand. tt_listen never looks
 * names up: it takes IP literals and "localhost" only.
 *
 * Errors: a negative errno and a message that names the address, as Go's
 * do ("tt_dial: tcp 127.0.0.1:1: connection refused"). An address or
 * network that cannot be parsed is -EINVAL, with a message saying what is
 * wrong with it; a name that does not resolve is -ENOENT ("no such
 * host"), and -EAGAIN when the resolver fails for now (Go's temporary
 * DNS error). */
#ifndef TETHER_NET_H
#define TETHER_NET_H

#include <sys/types.h>

#include "common.h"
#include "ctx.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Room for any address tt_local_addr and tt_remote_addr write, with its
 * terminating NUL. */
#define TT_ADDR_MAX 128

/* ---- listening and dialing ------------------------------------------- */

/* net.Listen(network, address): a listening socket (non-blocking,
 * close-on-exec) or -errno. TCP listeners set SO_REUSEADDR, as Go's do;
 * the backlog is the system's maximum (net.core.somaxconn). A "unix"
 * listener's file is made by the call and stays after tt_close: remove it
 * (unlink) when done; a path that exists already is -EADDRINUSE, as in
 * Go. Accept connections with tt_accept or tt_accept_ctx. */
TT_EXPORT int tt_listen(const char *network, const char *address);

/* net.DialTimeout: a connected socket (non-blocking, close-on-exec) or
 * -errno: -ECONNREFUSED, -ETIMEDOUT when the absolute deadline passes
 * first (TT_FOREVER waits as long as the kernel does), -EAGAIN for TT_TRY
 * when the connection is not made at once. When a name has several
 * addresses they are tried in order until one answers, within the one
 * deadline; the error is the first address's. TCP connections have
 * TCP_NODELAY set, as Go's do. */
TT_EXPORT int tt_dial(const char *network, const char *address,
		      int64_t deadline);

/* net.Dialer.DialContext: tt_dial that gives up when ctx is done, with
 * its error (-ECANCELED, or -ETIMEDOUT past its deadline). A context
 * already done returns its error before dialing. */
TT_EXPORT int tt_dial_ctx(tt_ctx *ctx, const char *network,
			  const char *address);

/* Go's Addr().String() of a socket's own end (tt_local_addr; for a
 * listener, where it listens) or of its peer (tt_remote_addr): written to
 * buf (n bytes, TT_ADDR_MAX is enough) as "127.0.0.1:8080", "[::1]:8080",
 * a Unix socket's path, "@name" for an abstract one or "" for an unnamed
 * one. Returns the length (without the NUL), -ERANGE if buf is too small,
 * or -errno (-ENOTCONN for tt_remote_addr on a listener). */
TT_EXPORT int tt_local_addr(int fd, char *buf, size_t n);
TT_EXPORT int tt_remote_addr(int fd, char *buf, size_t n);

/* The port a TCP socket is bound to (the one picked for ":0"), or -errno
 * (-EAFNOSUPPORT for a socket that is not TCP/IP). */
TT_EXPORT int tt_local_port(int fd);

/* ---- a buffered reader ------------------------------------------------
 *
 * bufio.Reader over a descriptor: reads what the kernel has in chunks of
 * the buffer's size and hands it out as lines, exact counts or whatever
 * is there. One goroutine uses a reader at a time. The reader does not
 * own the descriptor: close it yourself (tt_close) after
 * tt_reader_release. Bytes the reader has buffered are not in the
 * descriptor any more: once you read through a reader, read only through
 * it.
 *
 * Each read has a deadline form and a ctx form, as tt_read has; a
 * context already done returns its error before anything is read, even
 * if bytes are buffered. Returns: 0 at end of stream with nothing read,
 * the byte count, or -errno (-ETIMEDOUT, -ECANCELED, -EBADF, ...). A
 * read that fails part way loses nothing: tt_reader_read_line and
 * tt_reader_read_full keep what they had read in the buffer, and the
 * next call (say with a later deadline) returns it first. */
typedef struct tt_reader tt_reader;

/* bufio.NewReaderSize(fd, size): size 0 means 4096 (Go's default). fd
 * must be non-blocking (sockets from tt_listen, tt_dial and tt_accept
 * are). 0, -EBADF for a negative fd, -EINVAL (size over 1 GiB) or
 * -ENOMEM. */
TT_EXPORT int tt_reader_make(tt_reader **out, int fd, size_t size);
/* Free the reader and any buffered bytes; the descriptor stays open.
 * NULL is a no-op. Returns 0. */
TT_EXPORT int tt_reader_release(tt_reader *r);
/* The reader's descriptor. */
TT_EXPORT int tt_reader_fd(const tt_reader *r);
/* Bytes buffered: read from the descriptor, not yet handed out. */
TT_EXPORT size_t tt_reader_buffered(const tt_reader *r);

/* bufio.Reader.Read: up to n bytes, what is buffered if anything is,
 * else what one read(2) gives (straight into buf when n is at least the
 * buffer's size). Parks only when nothing is buffered. */
TT_EXPORT ssize_t tt_reader_read(tt_reader *r, void *buf, size_t n,
				 int64_t deadline);
TT_EXPORT ssize_t tt_reader_read_ctx(tt_ctx *ctx, tt_reader *r, void *buf,
				     size_t n);

/* io.ReadFull: exactly n bytes into buf, parking as needed; returns n.
 * At end of stream: 0 if it came before the first byte (Go's io.EOF),
 * else the count read, 0 < count < n, with the bytes in buf (Go's
 * io.ErrUnexpectedEOF; tt_last_error says so). On an error or a deadline
 * nothing is lost: the bytes read so far go back into the reader. */
TT_EXPORT ssize_t tt_reader_read_full(tt_reader *r, void *buf, size_t n,
				      int64_t deadline);
TT_EXPORT ssize_t tt_reader_read_full_ctx(tt_ctx *ctx, tt_reader *r, void *buf,
					  size_t n);

/* bufio.Reader.ReadString('\n') into a buffer of the caller's: copies
 * one line, with its '\n', to buf and NUL-terminates it; returns its
 * length (without the NUL). Lines of any length are handled, whatever
 * the reader's buffer size, as fgets and Go's ReadLine handle them: a
 * line longer than n - 1 bytes comes in pieces of n - 1 bytes, and only
 * its last piece ends in '\n'. At end of stream a last line without '\n'
 * is returned as it is, then 0. The reader's buffer grows, if needed, to
 * hold the line so far (at most n - 1 bytes), which is how a deadline in
 * the middle of a line loses nothing. n must be at least 2 (-EINVAL). */
TT_EXPORT ssize_t tt_reader_read_line(tt_reader *r, char *buf, size_t n,
				      int64_t deadline);
TT_EXPORT ssize_t tt_reader_read_line_ctx(tt_ctx *ctx, tt_reader *r, char *buf,
					  size_t n);

/* ---- a buffered writer ------------------------------------------------
 *
 * bufio.Writer over a descriptor, for many small writes (a line
 * protocol's answers): bytes collect in the buffer and go out in one
 * write(2) when it fills or at tt_writer_flush. tt_write already writes
 * everything it is given; use a writer only to save system calls. One
 * goroutine uses a writer at a time; it does not own the descriptor.
 *
 * Nothing is lost when a write fails: a flush that stops part way (a
 * deadline, a cancelled context) keeps the bytes not yet written, and the
 * next write or flush sends them first. Unlike Go's, errors do not stick:
 * after -ETIMEDOUT a later flush with a later deadline may succeed. */
typedef struct tt_writer tt_writer;

/* bufio.NewWriterSize(fd, size): size 0 means 4096. 0, -EBADF for a
 * negative fd, -EINVAL (size over 1 GiB) or -ENOMEM. */
TT_EXPORT int tt_writer_make(tt_writer **out, int fd, size_t size);
/* Free the writer. Bytes not flushed are dropped: flush first. NULL is a
 * no-op. Returns 0. */
TT_EXPORT int tt_writer_release(tt_writer *w);
/* Bytes buffered, not yet written to the descriptor. */
TT_EXPORT size_t tt_writer_buffered(const tt_writer *w);

/* bufio.Writer.Write: buffers buf, writing the buffer out first when buf
 * does not fit (and buf itself straight to the descriptor when it is at
 * least the buffer's size). Returns n, or, as tt_write, the count taken
 * if it stops early, else -errno. */
TT_EXPORT ssize_t tt_writer_write(tt_writer *w, const void *buf, size_t n,
				  int64_t deadline);
TT_EXPORT ssize_t tt_writer_write_ctx(tt_ctx *ctx, tt_writer *w,
				      const void *buf, size_t n);

/* fmt.Fprintf(w, ...), into the buffer only: never writes, never parks;
 * the buffer grows when the text does not fit in its free room. Returns
 * the text's length, or -ENOMEM / -EINVAL. */
TT_EXPORT int tt_writer_printf(tt_writer *w, const char *fmt, ...)
#if defined(__GNUC__)
	__attribute__((format(printf, 2, 3)))
#endif
	;

/* bufio.Writer.Flush: write out everything buffered, parking as needed.
 * 0, or -errno with the bytes not written still buffered. */
TT_EXPORT int tt_writer_flush(tt_writer *w, int64_t deadline);
TT_EXPORT int tt_writer_flush_ctx(tt_ctx *ctx, tt_writer *w);

#ifdef __cplusplus
}
#endif
#endif
