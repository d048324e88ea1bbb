/* tether — stacks and the goroutine profile, in Go's formats.
 *
 * Every goroutine of the process can be listed with its stack, unwound
 * from where it is parked (each thread's goroutines by that thread, asked
 * and waited for; a thread outside tether at the time, running C code or
 * blocked in a call tether does not see, is left out after a few
 * milliseconds):
 *
 *   tt_stack_dump(buf, len, true)      runtime.Stack(buf, true)
 *   tt_profile_write("goroutine", 2)   /debug/pprof/goroutine?debug=2
 *   tt_profile_write("goroutine", 1)   ?debug=1: one record per stack
 *   tt_profile_write("goroutine", 0)   ?debug=0: gzipped profile.proto, for
 *                                      go tool pprof
 *   tt_profile_write("goroutineleak", d)  proven leaks only
 *   tt_profile_write("threadcreate", d)   live OS threads by creation
 *                                      stack (debug 0 or 1; 2 is 1)
 *   tt_profile_write("block", d)       where goroutines blocked, and for
 *                                      how long (tt_set_block_profile_rate)
 *   tt_profile_write("mutex", d)       contended tether mutexes, by the
 *                                      unlocker's stack
 *                                      (tt_set_mutex_profile_fraction)
 *   tt_cpu_profile_start/stop          the CPU profile (below)
 *
 * The text is laid out as Go lays it out, so the tools that parse Go's
 * dumps (goleak, panicparse, go tool pprof) read tether's. */
#ifndef TETHER_PROFILE_H
#define TETHER_PROFILE_H

#include "tether/common.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Where a profile goes: called with consecutive pieces of it; returns 0,
 * or a negative errno value that stops the write and is returned. */
typedef int (*tt_write_fn)(void *arg, const void *data, size_t len);

/* Write the profile `name` ("goroutine", "goroutineleak",
 * "threadcreate", "block" or "mutex") at `debug` level 0, 1 or 2. Returns 0 or a negative
 * errno value (-EINVAL for an unknown name or level).
 *
 * "threadcreate" is Go's threadcreate profile over the process's live OS
 * threads (Go counts every thread its runtime ever made): one record per
 * creation stack, as libtether-preload.so recorded it in pthread_create
 * (tether/threads.h), from the function that called pthread_create
 * outward. Threads whose creator is unknown — all of them without the
 * preload, the main thread, threads made before the preload was loaded
 * or not yet running their first instruction — count in one record with
 * no stack. debug=2 writes debug=1's text, as Go does; debug=0 has the
 * sample type threadcreate/count. It reads /proc/self/task and does not
 * yield. The rest of this comment is about the goroutine profiles.
 *
 * The other goroutines of the calling thread run while it works: it
 * yields to them (tt_yield) after every 2 ms or so of work, while it
 * takes its snapshot and while it writes, and fn may park (the debug
 * server's does). The profile is still one snapshot, as in Go 1.19+: it
 * lists exactly the goroutines alive when the call began, each once,
 * each with the state and the stack it had then — also a goroutine that
 * has run, parked elsewhere or ended since (one that resumes before the
 * snapshot has reached it is recorded first, on its way out of the
 * switch, before it changes anything). Goroutines started during the
 * call are not in it. Names are copied as each goroutine is recorded,
 * so a name may go once its goroutine has ended (go.h), even while a
 * profile that lists it is being written. tt_stack_dump(..., true) is
 * written the same way. The
 * stacks printed with a panic, the deadlock report and SIGQUIT stop the
 * thread's goroutines instead. */
TT_EXPORT int tt_profile_write(const char *name, int debug, tt_write_fn fn,
			       void *arg);

/* The block and mutex profiles, as Go's runtime.SetBlockProfileRate and
 * runtime.SetMutexProfileFraction.
 *
 * Block profile: where goroutines blocked on tether's synchronization —
 * channel send and receive (tt_chan_*, and so tt_ctx_done's channel),
 * tt_select, tt_wg_wait, tt_mutex_lock, tt_rwmutex_lock/rlock, tt_once_do
 * waiting for another's fn, tt_cond_wait — and for how long. Sleeping
 * (tt_sleep) and waiting on a descriptor (tt_fd_wait and the I/O calls)
 * are not block events, as in Go. An event is recorded when the
 * goroutine runs again: the time from its park to then (monotonic
 * clock, ns; so the time it spent runnable after being woken is in it),
 * with its own stack from the public call that blocked outward.
 *
 * tt_set_block_profile_rate(rate): rate <= 0 turns it off (the default);
 * 1 records every event; otherwise an event that blocked d ns is recorded
 * always when d >= rate, and with probability d/rate when shorter, in
 * which case it counts rate/d events of rate ns each (Go's correction of
 * the sampling bias), so the totals estimate every event. A goroutine
 * that wakes after the profile was turned off is not recorded, as in Go.
 * A new rate holds from the next park on the calling thread; a thread
 * whose goroutines are already running takes it up within 64 of its
 * parks (the check rides on the scheduler's clock pacing, so a park
 * pays nothing for the profile while it is off).
 *
 * Mutex profile: on an unlock of a tt_mutex or tt_rwmutex (or the end of
 * a tt_once_do another goroutine waits on) that hands the lock to a
 * waiter, the time that waiter has waited — since it parked, or since
 * the previous hand-over from the same queue, whichever is later, so
 * time with several waiters is counted once, as Go's semrelease does —
 * with the stack of the goroutine that unlocked. One event in `rate` is
 * recorded, at random; the protobuf profile (debug=0) multiplies counts
 * and delays by rate, as Go's writer does, and debug=1 prints them as
 * recorded with "sampling period=rate". Waiters that parked while the
 * fraction was 0 are not timed.
 *
 * tt_set_mutex_profile_fraction(rate) sets it (0 off, the default) and
 * returns the previous rate; a negative rate only reads it.
 *
 * Both profiles keep, process-wide and for the life of the process, one
 * record per distinct stack (and kind) with the number of events and
 * their total delay, at most 65,536 records for the two; events of new
 * stacks past that are dropped. They are written by
 * tt_profile_write("block" or "mutex", debug): debug=0 is gzipped
 * profile.proto with sample types contentions/count and
 * delay/nanoseconds (period type contentions/count, period 1), debug=1
 * (and 2) Go's text: "--- contention:" (or "--- mutex:"),
 * "cycles/second=1000000000" (delays are ns), then "DELAY COUNT @ PCs"
 * and the frames of each record, largest delay first. The debug server's
 * /debug/pprof/block?seconds=N (and /mutex) serves Go's delta profile
 * over the next N seconds (tether/debug.h). Thread-safe:
 * goroutines of every thread record into the same profile. When off, the
 * cost is one load and branch on each park (block), and one on a
 * contended lock's park and hand-over (mutex). */
TT_EXPORT void tt_set_block_profile_rate(int64_t rate);
TT_EXPORT int tt_set_mutex_profile_fraction(int rate);

/* The same, to a file descriptor (all of it is written). */
TT_EXPORT int tt_profile_write_fd(const char *name, int debug, int fd);

/* runtime.Stack: the calling goroutine's stack, or every goroutine's when
 * `all`, into buf[len]. Returns the number of bytes written, which is len
 * when the text was cut short. */
TT_EXPORT size_t tt_stack_dump(char *buf, size_t len, bool all);

/* ---- The CPU profile: runtime/pprof.StartCPUProfile / StopCPUProfile ----
 *
 *   tt_cpu_profile_start(0, fn, arg)   pprof.StartCPUProfile(w), 100 Hz
 *   tt_cpu_profile_stop()              pprof.StopCPUProfile(): writes it
 *   /debug/pprof/profile?seconds=N     the debug server's (tether/debug.h)
 *
 * While it runs, every OS thread of the process is sampled `hz` times per
 * second of the CPU time it uses (a POSIX timer on each thread's CPU
 * clock, SIGPROF; threads started later are armed within 100 ms; where
 * per-thread timers are refused, setitimer(ITIMER_PROF) for the whole
 * process). A sample is the interrupted stack, walked by frame pointers:
 * code built with -fno-omit-frame-pointer gives whole stacks, other code
 * its innermost frame and what frame pointers can be found above it (on a
 * thread's own stack, as opposed to a goroutine's, the frames are read
 * with process_vm_readv; without it, as under qemu-user, only the
 * innermost frame).
 * Each sample made on a goroutine carries the goroutine's labels
 * (tether/labels.h) and its name as the label "name", as Go's CPU
 * profile carries pprof.Labels (go tool pprof -tags, -tagfocus). Samples that could not be kept
 * (more than about 1000 waiting at once) are counted under one frame,
 * lost_profiling_events.
 *
 * tt_cpu_profile_stop writes Go's CPU profile: gzipped profile.proto with
 * the sample types samples/count and cpu/nanoseconds, period cpu/
 * nanoseconds 1e9/hz, time_nanos and duration_nanos, symbolized (functions,
 * files, lines, inlined frames) and with the mappings of every object, so
 * that `go tool pprof` reads it with no binary at hand.
 *
 * The program's own SIGPROF disposition is saved at start and put back at
 * stop (under the setitimer fallback, a default disposition comes back as
 * SIG_IGN: a signal still pending would otherwise end the process). While
 * profiling, SIGPROF is the profiler's: a program must not install its own
 * handler meanwhile. Blocking calls that a signal interrupts are restarted
 * (SA_RESTART), but calls that never restart (nanosleep, poll, epoll_wait,
 * ...) may return EINTR early, as under Go's profiler. */

/* Go's default rate. */
#define TT_CPU_PROFILE_HZ 100

/* Start the process's CPU profile at hz samples per second of CPU time
 * (0: TT_CPU_PROFILE_HZ; at most 1000), to be written to fn(arg) by
 * tt_cpu_profile_stop. Returns 0; -EBUSY when a CPU profile is already
 * running (its message is Go's "cpu profiling already in use"); -EINVAL
 * for a NULL fn or a bad hz; another negative errno value when the
 * signal or the timers cannot be had. Any thread may call it. */
TT_EXPORT int tt_cpu_profile_start(int hz, tt_write_fn fn, void *arg);

/* The same, writing the profile to fd (all of it). */
TT_EXPORT int tt_cpu_profile_start_fd(int hz, int fd);

/* Stop the profile and write it (fn may park: the profile is no longer
 * running by then, so another may start while it is written). Returns
 * fn's result, -ENOMEM, or -EINVAL when no profile is running. Any
 * thread may call it, one at a time. */
TT_EXPORT int tt_cpu_profile_stop(void);

/* Is a CPU profile running? */
TT_EXPORT bool tt_cpu_profile_running(void);

/* Go's SIGQUIT behaviour, opt in (a library must not take signals on its
 * own): when on, SIGQUIT prints every goroutine's stack to stderr and
 * exits with status 2. TETHER_TRACEBACK=all in the environment turns it on
 * at start. Returns 0 or a negative errno value. */
TT_EXPORT int tt_traceback_on_sigquit(bool on);

#ifdef __cplusplus
}
#endif
#endif
