/* tether — what the two files of the net layer share. */
#ifndef TT_NET_INTERNAL_H
#define TT_NET_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>

/* The text of a negative errno as Go prints it ("connection refused",
 * "i/o timeout"), into buf[n]. ctx: the call waited for a context, so
 * -ETIMEDOUT is its deadline ("context deadline exceeded"). */
void tt__net_err_text(int err, bool ctx, char *buf, size_t n);

/* Parse a listening address as tt_listen does, without making a socket:
 * how many socket addresses it gives (> 0), or tt_listen's -errno and
 * message. For tests of the parser. */
int tt__net_parse_listen(const char *network, const char *address);

#endif
