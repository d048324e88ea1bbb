/* tether — Go's concurrency model for C, and the tools that catch
 * goroutine leaks. One header for everything; each layer also has its own
 * under tether/. */
#ifndef TETHER_H
#define TETHER_H

#include "tether/version.h"
#include "tether/common.h"
#include "tether/go.h"
#include "tether/labels.h"
#include "tether/chan.h"
#include "tether/time.h"
#include "tether/sync.h"
#include "tether/ctx.h"
#include "tether/fd.h"
#include "tether/blocking.h"
#include "tether/net.h"
#include "tether/profile.h"
#include "tether/debug.h"
#include "tether/leak.h"
#include "tether/threads.h"
#include "tether/defer.h"

#endif
