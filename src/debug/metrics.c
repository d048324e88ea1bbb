/* tether — /metrics in Prometheus's text exposition format (0.0.4), and
 * /debug/pprof/cmdline.
 *
 * Design notes
 * ------------
 * A scrape must cost the same with ten goroutines as with a million, and
 * must not hold the thread long enough to delay the program's other
 * goroutines: so it reads counters, never goroutine records or stacks.
 * Every figure is either kept incrementally by the layer that knows it or
 * read from the kernel:
 *
 *   goroutines, by scheduler      s->ngoroutines (sched, at start and end)
 *   waiting, by reason and age    s->waits (sched: one cell at each park
 *                                 and wake; see tt__waits in internal.h)
 *   running, runnable             per scheduler, from the two above: a
 *                                 scheduler whose goroutines do not all
 *                                 wait runs exactly one of them
 *   switches                      s->nparks + s->nswitches (sched)
 *   proven leaks                  tt__leak_proven_all (leak layer)
 *   goroutines by a label's value tt__labels_counts (sched: a bucket per
 *                                 value, at most 65, counted at start,
 *                                 end and tt_labels_set)
 *   stacks                        tt_runtime_info_get (stack layer)
 *   pthreads (preload in use)     the threads registry: at most 4096
 *                                 slots, under its lock
 *   process_*, go_threads         /proc/self/stat (statm, task where
 *                                 it has zeros), getrusage, getrlimit,
 *                                 /proc/self/fd
 *
 * Figures are gathered first (tt__metrics_gather) into a plain struct and
 * then written (tt__metrics_write), so the format can be tested on its
 * own. Another thread's counters are read with relaxed loads while that
 * thread runs: each is exact, their sum is a picture of an instant that
 * may be a few parks off.
 *
 * The format (Prometheus, "Exposition formats", text 0.0.4): per metric
 * family a "# HELP name text" line (backslash and newline escaped), a
 * "# TYPE name gauge|counter" line, then its samples, "name{l="v",...}
 * value", label values with backslash, double quote and newline escaped;
 * every line ends in "\n", the last one included. Names are Go's
 * client_golang names where the figure means the same (go_goroutines,
 * process_*), tether_ otherwise. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/time.h>
#include <unistd.h>

#include "debug/debug.h"
#include "threads/threads.h"

const int64_t tt__metrics_thresholds[TT__METRICS_NTHRESH] = {
	TT_MINUTE, 10 * TT_MINUTE, 60 * TT_MINUTE};
static const char *const threshold_label[TT__METRICS_NTHRESH] = {
	"1m", "10m", "1h"};

/* ---- escaping ----------------------------------------------------------- */

static void escape(tt__buf *b, const char *s, bool quote)
{
	size_t run = 0;
	size_t n = strlen(s);
	for (size_t i = 0; i < n; i++) {
		const char *rep = NULL;
		if (s[i] == '\\')
			rep = "\\\\";
		else if (s[i] == '\n')
			rep = "\\n";
		else if (s[i] == '"' && quote)
			rep = "\\\"";
		if (rep) {
			tt__buf_put(b, s + i - run, run);
			tt__buf_puts(b, rep);
			run = 0;
		} else {
			run++;
		}
	}
	tt__buf_put(b, s + n - run, run);
}

void tt__prom_label_value(tt__buf *b, const char *s)
{
	escape(b, s, true);
}

void tt__prom_help_text(tt__buf *b, const char *s)
{
	escape(b, s, false);
}

/* ---- gathering ---------------------------------------------------------- */

/* The wait reason as the dumps print it ("waiting" for none). */
const char *tt__metrics_reason(unsigned r)
{
	return r > TT_WAIT_NONE && r < TT_WAIT__COUNT ? tt__wait_reason_str[r]
						      : "waiting";
}

typedef struct gather_ctx {
	tt__metrics *m;
	int64_t now;
} gather_ctx;

static void gather_sched(const tt__sched *s, void *arg)
{
	gather_ctx *x = arg;
	tt__metrics *m = x->m;
	int64_t cut[TT__METRICS_NTHRESH];
	for (int k = 0; k < TT__METRICS_NTHRESH; k++)
		cut[k] = x->now - tt__metrics_thresholds[k];
	uint64_t before[TT__METRICS_NTHRESH][TT_WAIT__COUNT] = {{0}};
	uint64_t total[TT_WAIT__COUNT] = {0};
	tt__waits_sums(&s->waits, TT__METRICS_NTHRESH, cut, before, total);
	int64_t waiting = 0;
	for (unsigned r = 0; r < TT_WAIT__COUNT; r++) {
		m->waiting[r] += (int64_t)total[r];
		waiting += (int64_t)total[r];
		for (int k = 0; k < TT__METRICS_NTHRESH; k++)
			m->waiting_longer[k][r] += (int64_t)before[k][r];
	}
	int64_t live = atomic_load_explicit(&((tt__sched *)s)->nuser,
					    memory_order_relaxed);
	/* One goroutine runs unless all of them wait (the thread is then
	 * idle inside the park of its current one). */
	int64_t other = live > waiting ? live - waiting : 0;
	m->running += other > 0;
	m->runnable += other > 0 ? other - 1 : 0;
	m->switches += atomic_load_explicit(&((tt__sched *)s)->nparks,
					    memory_order_relaxed);
	m->switches += atomic_load_explicit(&((tt__sched *)s)->nswitches,
					    memory_order_relaxed);
	m->schedulers++;
}

/* /proc/self/stat: fields from the third on (after the command name in
 * parentheses, which may hold anything). */
static int read_stat(tt__metrics *m, unsigned long long *starttime)
{
	char buf[1024];
	int fd = open("/proc/self/stat", O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	ssize_t n = read(fd, buf, sizeof buf - 1);
	close(fd);
	if (n <= 0)
		return -EIO;
	buf[n] = '\0';
	char *p = strrchr(buf, ')');
	if (!p)
		return -EIO;
	/* Field 3 (state) is token 0: num_threads is field 20, starttime
	 * 22, vsize 23, rss 24. */
	unsigned long long f[22] = {0};
	int k = 0;
	for (char *save, *t = strtok_r(p + 1, " ", &save); t && k < 22;
	     t = strtok_r(NULL, " ", &save), k++)
		f[k] = strtoull(t, NULL, 10);
	if (k < 22)
		return -EIO;
	m->threads = (int64_t)f[17];
	*starttime = f[19];
	m->vsize = (int64_t)f[20];
	m->rss = (int64_t)f[21] * (int64_t)sysconf(_SC_PAGESIZE);
	return 0;
}

/* Where /proc/self/stat leaves them out (qemu-user fills in little of
 * it): the sizes from /proc/self/statm (the same counters, in pages), the
 * threads from /proc/self/task. */
static void read_statm(tt__metrics *m)
{
	FILE *f = fopen("/proc/self/statm", "re");
	unsigned long long size, resident;
	if (f && fscanf(f, "%llu %llu", &size, &resident) == 2) {
		int64_t page = (int64_t)sysconf(_SC_PAGESIZE);
		if (m->vsize <= 0)
			m->vsize = (int64_t)size * page;
		if (m->rss <= 0)
			m->rss = (int64_t)resident * page;
	}
	if (f)
		fclose(f);
}

/* Seconds since the epoch when the machine booted (/proc/stat). */
static long long boot_time(void)
{
	FILE *f = fopen("/proc/stat", "re");
	if (!f)
		return -1;
	char line[256];
	long long bt = -1;
	while (fgets(line, sizeof line, f))
		if (sscanf(line, "btime %lld", &bt) == 1)
			break;
	fclose(f);
	return bt;
}

/* When the process started: its start in clock ticks after boot, and
 * the boot time. Computed once. */
static pthread_once_t start_once = PTHREAD_ONCE_INIT;
static double start_time = -1;

static void start_init(void)
{
	tt__metrics tmp;
	unsigned long long ticks;
	long long bt = boot_time();
	long hz = sysconf(_SC_CLK_TCK);
	if (read_stat(&tmp, &ticks) == 0 && bt >= 0 && hz > 0)
		start_time = (double)bt + (double)ticks / (double)hz;
}

static int64_t count_fds(void)
{
	DIR *d = opendir("/proc/self/fd");
	if (!d)
		return -1;
	int self = dirfd(d);
	int64_t n = 0;
	for (struct dirent *e; (e = readdir(d));) {
		if (e->d_name[0] == '.')
			continue;
		if (atoi(e->d_name) != self)
			n++;
	}
	closedir(d);
	return n;
}

static void gather_pthreads(tt__metrics *m)
{
	m->pthreads = tt__thr_tracking();
	if (!m->pthreads)
		return;
	tt__thr_registry *r = tt__thr_registry_get();
	pthread_mutex_lock(&r->lock);
	for (int i = 0; i < r->hw; i++) {
		const tt__thr *t = &r->slot[i];
		if (t->state == TT__THR_LIVE)
			m->pthreads_live++;
		else if (t->state == TT__THR_EXITED)
			m->pthreads_unjoined++;
	}
	m->pthreads_untracked = r->untracked;
	pthread_mutex_unlock(&r->lock);
}

int tt__metrics_gather(tt__metrics *m, int64_t now)
{
	memset(m, 0, sizeof *m);
	m->goroutines = tt_num_goroutine();
	gather_ctx x = {.m = m, .now = now};
	tt__sched_each(gather_sched, &x, &m->orphaned);
	m->proven = tt__leak_proven_all();

	tt_runtime_info info;
	tt_runtime_info_get(&info);
	m->stacks_mapped = info.stacks_mapped;
	m->stacks_pooled = info.stacks_pooled;
	m->guard_budget = info.guard_budget;

	m->threads = m->vsize = m->rss = m->open_fds = m->max_fds = -1;
	m->start_time = m->cpu_seconds = -1;
	unsigned long long ticks;
	read_stat(m, &ticks);
	if (m->vsize <= 0 || m->rss <= 0)
		read_statm(m);
	if (m->threads <= 0)
		m->threads = tt__proc_threads();
	pthread_once(&start_once, start_init);
	m->start_time = start_time;
	struct rusage ru;
	if (getrusage(RUSAGE_SELF, &ru) == 0)
		m->cpu_seconds = (double)ru.ru_utime.tv_sec +
				 (double)ru.ru_stime.tv_sec +
				 (double)(ru.ru_utime.tv_usec +
					  ru.ru_stime.tv_usec) / 1e6;
	struct rlimit rl;
	if (getrlimit(RLIMIT_NOFILE, &rl) == 0)
		m->max_fds = rl.rlim_cur == RLIM_INFINITY ? INT64_MAX
							  : (int64_t)rl.rlim_cur;
	m->open_fds = count_fds();
	gather_pthreads(m);
	return 0;
}

/* ---- writing ------------------------------------------------------------ */

static void family(tt__buf *b, const char *name, const char *type,
		   const char *help)
{
	tt__buf_printf(b, "# HELP %s ", name);
	tt__prom_help_text(b, help);
	tt__buf_printf(b, "\n# TYPE %s %s\n", name, type);
}

static void put_int(tt__buf *b, const char *name, int64_t v)
{
	tt__buf_printf(b, "%s %lld\n", name, (long long)v);
}

/* One family of a single sample, left out when the figure is unknown
 * (v < 0). */
static void gauge1(tt__buf *b, const char *name, const char *help, int64_t v)
{
	if (v < 0)
		return;
	family(b, name, "gauge", help);
	put_int(b, name, v);
}

int tt__metrics_write(tt__buf *b, const tt__metrics *m)
{
	family(b, "go_goroutines", "gauge",
	       "Number of goroutines that currently exist.");
	put_int(b, "go_goroutines", m->goroutines);
	gauge1(b, "go_threads", "Number of OS threads in the process.",
	       m->threads);

	if (m->cpu_seconds >= 0) {
		family(b, "process_cpu_seconds_total", "counter",
		       "Total user and system CPU time spent in seconds.");
		tt__buf_printf(b, "process_cpu_seconds_total %.6f\n",
			       m->cpu_seconds);
	}
	if (m->max_fds == INT64_MAX) {
		family(b, "process_max_fds", "gauge",
		       "Maximum number of open file descriptors.");
		tt__buf_puts(b, "process_max_fds +Inf\n");
	} else {
		gauge1(b, "process_max_fds",
		       "Maximum number of open file descriptors.", m->max_fds);
	}
	gauge1(b, "process_open_fds", "Number of open file descriptors.",
	       m->open_fds);
	gauge1(b, "process_resident_memory_bytes",
	       "Resident memory size in bytes.", m->rss);
	if (m->start_time >= 0) {
		family(b, "process_start_time_seconds", "gauge",
		       "Start time of the process since unix epoch in "
		       "seconds.");
		tt__buf_printf(b, "process_start_time_seconds %.2f\n",
			       m->start_time);
	}
	gauge1(b, "process_virtual_memory_bytes",
	       "Virtual memory size in bytes.", m->vsize);

	family(b, "tether_goroutines", "gauge",
	       "Goroutines of the threads that are running, by state and, "
	       "for waiting ones, by wait reason (as in the stack dumps).");
	tt__buf_printf(b, "tether_goroutines{state=\"running\"} %lld\n",
		       (long long)m->running);
	tt__buf_printf(b, "tether_goroutines{state=\"runnable\"} %lld\n",
		       (long long)m->runnable);
	for (unsigned r = 0; r < TT_WAIT__COUNT; r++) {
		tt__buf_puts(b, "tether_goroutines{state=\"waiting\",reason=\"");
		tt__prom_label_value(b, tt__metrics_reason(r));
		tt__buf_printf(b, "\"} %lld\n", (long long)m->waiting[r]);
	}
	family(b, "tether_goroutines_orphaned", "gauge",
	       "Goroutines left parked or runnable by threads that ended; "
	       "they never run again (counted in go_goroutines, not in "
	       "tether_goroutines).");
	put_int(b, "tether_goroutines_orphaned", m->orphaned);

	family(b, "tether_goroutines_waiting_longer_than", "gauge",
	       "Waiting goroutines that parked more than threshold ago, by "
	       "wait reason (counted in steps of about 1 s up to 1m, 17 s "
	       "beyond: one that parked just over the threshold ago may "
	       "not be counted yet).");
	for (int k = 0; k < TT__METRICS_NTHRESH; k++)
		for (unsigned r = 0; r < TT_WAIT__COUNT; r++) {
			tt__buf_puts(b, "tether_goroutines_waiting_longer_than"
					"{reason=\"");
			tt__prom_label_value(b, tt__metrics_reason(r));
			tt__buf_printf(b, "\",threshold=\"%s\"} %lld\n",
				       threshold_label[k],
				       (long long)m->waiting_longer[k][r]);
		}

	family(b, "tether_goroutines_leaked_proven", "gauge",
	       "Goroutines proven leaked (parked on objects nobody can "
	       "reach any more) that exist now; they never run again.");
	put_int(b, "tether_goroutines_leaked_proven", (int64_t)m->proven);
	family(b, "tether_goroutines_leaked_proven_total", "counter",
	       "Goroutines proven leaked since the process started.");
	put_int(b, "tether_goroutines_leaked_proven_total",
		(int64_t)m->proven);

	family(b, "tether_schedulers", "gauge",
	       "Threads with a tether scheduler.");
	put_int(b, "tether_schedulers", m->schedulers);
	family(b, "tether_sched_switches_total", "counter",
	       "Times a goroutine parked, yielded or ended and its thread "
	       "went on with another goroutine (threads that are running).");
	tt__buf_printf(b, "tether_sched_switches_total %llu\n",
		       (unsigned long long)m->switches);

	family(b, "tether_stacks_mapped", "gauge",
	       "Goroutine stacks mapped now, in use or pooled, in every "
	       "thread.");
	put_int(b, "tether_stacks_mapped", m->stacks_mapped);
	family(b, "tether_stacks_pooled", "gauge",
	       "Of the serving thread's stacks, those free for reuse.");
	put_int(b, "tether_stacks_pooled", m->stacks_pooled);
	gauge1(b, "tether_stack_guard_budget",
	       "Stacks that may still get an mprotect guard (mprotect guard "
	       "mode only).",
	       m->guard_budget);

	if (m->pthreads) {
		family(b, "tether_pthreads_live", "gauge",
		       "Threads made with pthread_create that have not ended "
		       "(libtether-preload.so).");
		put_int(b, "tether_pthreads_live", m->pthreads_live);
		family(b, "tether_pthreads_unjoined", "gauge",
		       "Joinable threads that have ended but were never "
		       "joined (libtether-preload.so).");
		put_int(b, "tether_pthreads_unjoined", m->pthreads_unjoined);
		family(b, "tether_pthreads_untracked_total", "counter",
		       "Threads made when the preload's registry was full, "
		       "so not tracked.");
		tt__buf_printf(b, "tether_pthreads_untracked_total %llu\n",
			       (unsigned long long)m->pthreads_untracked);
	}
	return b->err;
}

/* tether_goroutines_by_label, when tt_metrics_label_key asked for it:
 * the buckets' counts (src/sched/labels.c keeps them), no goroutine
 * visited. */
static int write_by_label(tt__buf *b)
{
	char key[TT_LABEL_KEY_MAX + 1];
	tt__label_count *c = malloc((TT_METRICS_LABEL_VALUES + 1) * sizeof *c);
	if (c == NULL)
		return -ENOMEM;
	size_t n = tt__labels_counts(key, c);
	if (n) {
		family(b, "tether_goroutines_by_label", "gauge",
		       "Goroutines by the value of the label that "
		       "tt_metrics_label_key names (at most 64 values; the "
		       "rest as \"other\").");
		for (size_t i = 0; i < n; i++) {
			/* The key is a label name only if it is one in
			 * Prometheus's syntax; otherwise it goes as a value. */
			bool ok = key[0] && !(key[0] >= '0' && key[0] <= '9') &&
				  !(key[0] == '_' && key[1] == '_');
			for (const char *p = key; *p && ok; p++)
				ok = (*p >= 'a' && *p <= 'z') ||
				     (*p >= 'A' && *p <= 'Z') ||
				     (*p >= '0' && *p <= '9') || *p == '_';
			if (ok) {
				tt__buf_printf(b, "tether_goroutines_by_label{%s=\"",
					       key);
			} else {
				tt__buf_puts(b, "tether_goroutines_by_label{key=\"");
				tt__prom_label_value(b, key);
				tt__buf_puts(b, "\",value=\"");
			}
			tt__prom_label_value(b, c[i].value);
			tt__buf_printf(b, "\"} %lld\n", (long long)c[i].n);
		}
	}
	free(c);
	return b->err;
}

int tt__debug_metrics(tt__buf *b)
{
	tt__metrics m;
	int r = tt__metrics_gather(&m, tt_now());
	if (r == 0)
		r = tt__metrics_write(b, &m);
	return r ? r : write_by_label(b);
}

/* ---- cmdline -------------------------------------------------------------- */

int tt__debug_cmdline(tt__buf *b)
{
	int fd = open("/proc/self/cmdline", O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	char tmp[4096];
	ssize_t n;
	while ((n = read(fd, tmp, sizeof tmp)) > 0 || (n < 0 && errno == EINTR))
		if (n > 0)
			tt__buf_put(b, tmp, (size_t)n);
	int err = n < 0 ? -errno : 0;
	close(fd);
	/* The kernel ends every argument with a NUL; Go joins them with
	 * one (strings.Join(os.Args, "\x00")): no NUL after the last. */
	if (b->len > 0 && b->data[b->len - 1] == '\0')
		b->len--;
	return err ? err : b->err;
}
