/* tether — version of the headers this program was compiled against.
 *
 * ABI rule: within one major version, headers only grow. Existing
 * functions keep their signatures and meaning; structs that callers
 * allocate (tt_case, tt_go_attr, tt_runtime_info) only gain fields at the
 * end, and each has a size or zero-initialisation rule that keeps old
 * callers working. Debug dumps and text formats are outside the ABI. */
#ifndef TETHER_VERSION_H
#define TETHER_VERSION_H

#define TT_VERSION_MAJOR 0
#define TT_VERSION_MINOR 1
#define TT_VERSION_PATCH 0
#define TT_VERSION_STRING "0.1.0"

/* One number for comparisons: 0x00MMmmpp. */
#define TT_VERSION_HEX \
	((TT_VERSION_MAJOR << 16) | (TT_VERSION_MINOR << 8) | TT_VERSION_PATCH)

#endif
