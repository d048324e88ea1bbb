/* tether — file descriptor I/O that parks the goroutine, not the thread.
 *
 * The calls below expect non-blocking descriptors (tt_fd_nonblock sets
 * O_NONBLOCK; tt_accept returns them so). When the kernel says EAGAIN the
 * goroutine parks in the scheduler's poller (epoll) until the descriptor
 * is ready or the deadline passes, and the thread runs other goroutines
 * meanwhile. Parked descriptors count as possible wake-ups: a program
 * whose goroutines all wait on descriptors is not deadlocked.
 *
 * One goroutine at a time may wait to read a descriptor, and one to write
 * it (as with Go's net.Conn, a reader and a writer may work at once); a
 * second would-be reader gets -EBUSY. Regular files are always ready.
 *
 * Close with tt_close a descriptor that goroutines have waited on (or
 * call tt_fd_forget before closing it some other way), as Go closes
 * through its runtime: the poller keeps each descriptor registered from
 * its first wait on, and a later descriptor that reuses the number of
 * one closed behind its back could otherwise wait forever. tt_accept,
 * tt_connect and tt_fd_nonblock treat their descriptor as new, so
 * sockets made through them are safe either way. */
#ifndef TETHER_FD_H
#define TETHER_FD_H

#include <sys/socket.h>
#include <sys/types.h>

#include "common.h"
#include "ctx.h"

#ifdef __cplusplus
extern "C" {
#endif

#define TT_FD_READ 1
#define TT_FD_WRITE 2

/* Park until fd is ready for any of `events` (TT_FD_READ | TT_FD_WRITE).
 * Returns the ready events (> 0), -ETIMEDOUT, -EAGAIN (TT_TRY, not
 * ready), -EBUSY (another goroutine already waits for that), -EBADF
 * (also when tt_close closes fd meanwhile), -EINVAL. Error and hang-up
 * conditions count as ready for both. As with epoll, readiness can be
 * stale by the time the caller acts on it (another reader got there
 * first): treat EAGAIN from the call that follows as "wait again". */
TT_EXPORT int tt_fd_wait(int fd, int events, int64_t deadline);

/* Go's Close: wakes the goroutines waiting on fd (their calls return
 * -EBADF), takes fd out of the poller, and closes it. 0 or -errno. */
TT_EXPORT int tt_close(int fd);

/* Take fd out of the poller (waking its waiters with -EBADF) without
 * closing it: for descriptors closed by other means (fclose, dup2). */
TT_EXPORT int tt_fd_forget(int fd);

/* Set O_NONBLOCK on fd (and start its poller record afresh). */
TT_EXPORT int tt_fd_nonblock(int fd);

/* read(2) that parks on EAGAIN: bytes read (0 at end of file) or -errno
 * (-ETIMEDOUT at the deadline). */
TT_EXPORT ssize_t tt_read(int fd, void *buf, size_t n, int64_t deadline);

/* Writes all n bytes, parking as needed, like Go's Write: returns n, or,
 * if it stops early (error or deadline), the bytes written if any, else
 * -errno. */
TT_EXPORT ssize_t tt_write(int fd, const void *buf, size_t n,
			   int64_t deadline);

/* accept4 that parks: a new non-blocking, close-on-exec descriptor, or
 * -errno. A TCP connection gets TCP_NODELAY, as Go's net package sets. */
TT_EXPORT int tt_accept(int fd, struct sockaddr *addr, socklen_t *addrlen,
			int64_t deadline);

/* connect on a non-blocking socket, parking until it completes: 0 or
 * -errno (the connection's error, e.g. -ECONNREFUSED). */
TT_EXPORT int tt_connect(int fd, const struct sockaddr *addr,
			 socklen_t addrlen, int64_t deadline);

/* The same calls told to stop by a context, as Go's net.Conn is by
 * SetDeadline and net.Dialer by DialContext: they wait until the context
 * is done, then return its error (-ECANCELED after tt_ctx_cancel,
 * -ETIMEDOUT past its deadline), so a server can shut down every
 * connection by cancelling one context. A context already done returns
 * its error before trying the I/O. Otherwise they behave as the plain
 * forms above, with the context's deadline as theirs. -EINVAL / -EBADF
 * for a bad ctx. */
TT_EXPORT int tt_fd_wait_ctx(tt_ctx *ctx, int fd, int events);
TT_EXPORT ssize_t tt_read_ctx(tt_ctx *ctx, int fd, void *buf, size_t n);
/* Like tt_write: returns n, or the bytes written before the context ended
 * (if any), else its error. */
TT_EXPORT ssize_t tt_write_ctx(tt_ctx *ctx, int fd, const void *buf,
			       size_t n);
TT_EXPORT int tt_accept_ctx(tt_ctx *ctx, int fd, struct sockaddr *addr,
			    socklen_t *addrlen);
TT_EXPORT int tt_connect_ctx(tt_ctx *ctx, int fd,
			     const struct sockaddr *addr, socklen_t addrlen);

#ifdef __cplusplus
}
#endif
#endif
