/* tether — goroutine labels (Go's pprof labels) and their counts for
 * /metrics.
 *
 * Design notes
 * ------------
 * A label set (tt__labels, internal.h) is made once — strings copied,
 * sorted by key — and never changed; a goroutine holds a reference to
 * the set in g->labels, and a child that inherits takes another
 * reference to the same set. So a goroutine without labels pays a load
 * and a branch at its start (its parent's g->labels) and at its end (its
 * own); one with labels an atomic increment and decrement on top. Sets
 * may be released from any thread (a profile record, a CPU sample), so
 * the count is atomic.
 *
 * Counting for /metrics (tt_metrics_label_key): a table of at most
 * TT_METRICS_LABEL_VALUES + 1 buckets, one per value of the key, with an
 * atomic count of goroutines each. A set learns its bucket when it is
 * made (under metrics_lock, with the table); from then on a goroutine is
 * counted in its set's bucket while g->labels is that set: +1 when it
 * starts with it or takes it (tt_labels_set), -1 when it ends or drops
 * it. A scrape reads the table (under the lock: a few dozen entries),
 * never a goroutine. The key may change only while no set exists, which
 * keeps every set's bucket meaningful; metrics_lock also orders that
 * check against the making of sets (live is counted under it). */
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"

/* ---- metrics buckets -------------------------------------------------------- */

#define NBUCKETS (TT_METRICS_LABEL_VALUES + 1)

static pthread_mutex_t metrics_lock = PTHREAD_MUTEX_INITIALIZER;
/* Under metrics_lock: the key ("" for off), whether TETHER_METRICS_LABEL
 * was looked at, and buckets [0, nbuckets) with their values. The counts
 * are atomic: goroutines move between buckets without the lock. */
static char metric_key[TT_LABEL_KEY_MAX + 1];
static bool env_read;
static size_t nbuckets;
static char bucket_value[NBUCKETS][TT_METRICS_LABEL_VALUE_MAX + 1];
static _Atomic int64_t bucket_count[NBUCKETS];
/* Sets made and not yet freed (written under metrics_lock when made,
 * atomically when freed). */
static _Atomic int64_t live_sets;

static void bucket_add(const tt__labels *l, int64_t d)
{
	if (l && l->bucket >= 0)
		atomic_fetch_add_explicit(&bucket_count[l->bucket], d,
					  memory_order_relaxed);
}

/* The bucket of value v (the key's value in a new set). Under
 * metrics_lock, counting on. */
static int32_t bucket_of(const char *v)
{
	if (strlen(v) > TT_METRICS_LABEL_VALUE_MAX)
		v = "other";
	for (int pass = 0; pass < 2; pass++) {
		for (size_t i = 0; i < nbuckets; i++)
			if (strcmp(bucket_value[i], v) == 0)
				return (int32_t)i;
		/* Room for every value up to the bound, then for "other"
		 * once. */
		if (nbuckets < TT_METRICS_LABEL_VALUES ||
		    (nbuckets < NBUCKETS && strcmp(v, "other") == 0)) {
			strcpy(bucket_value[nbuckets], v);
			atomic_store_explicit(&bucket_count[nbuckets], 0,
					      memory_order_relaxed);
			return (int32_t)nbuckets++;
		}
		v = "other";
	}
	return -1; /* not reached: "other" always finds room */
}

static int key_check(const char *key, const char *op)
{
	if (key[0] == '\0')
		return tt__err(-EINVAL, "%s: empty label key", op);
	if (strnlen(key, TT_LABEL_KEY_MAX + 1) > TT_LABEL_KEY_MAX)
		return tt__err(-EINVAL,
			       "%s: label key of more than %d bytes", op,
			       TT_LABEL_KEY_MAX);
	return 0;
}

/* Set the key; under metrics_lock with no set live. */
static void key_set(const char *key)
{
	strcpy(metric_key, key ? key : "");
	nbuckets = 0;
	for (size_t i = 0; i < NBUCKETS; i++)
		atomic_store_explicit(&bucket_count[i], 0,
				      memory_order_relaxed);
}

int tt_metrics_label_key(const char *key)
{
	if (key) {
		int r = key_check(key, "tt_metrics_label_key");
		if (r)
			return r;
	}
	pthread_mutex_lock(&metrics_lock);
	env_read = true; /* an explicit call wins over the environment */
	int64_t live = atomic_load_explicit(&live_sets, memory_order_relaxed);
	if (live > 0) {
		pthread_mutex_unlock(&metrics_lock);
		return tt__err(-EBUSY,
			       "tt_metrics_label_key: %lld label sets exist; "
			       "the key must be set before labels are made",
			       (long long)live);
	}
	key_set(key);
	pthread_mutex_unlock(&metrics_lock);
	return 0;
}

size_t tt__labels_counts(char *key, tt__label_count *out)
{
	pthread_mutex_lock(&metrics_lock);
	size_t n = metric_key[0] ? nbuckets : 0;
	strcpy(key, metric_key);
	for (size_t i = 0; i < n; i++) {
		strcpy(out[i].value, bucket_value[i]);
		out[i].n = atomic_load_explicit(&bucket_count[i],
						memory_order_relaxed);
	}
	pthread_mutex_unlock(&metrics_lock);
	return n;
}

int64_t tt__labels_live(void)
{
	return atomic_load_explicit(&live_sets, memory_order_relaxed);
}

/* ---- sets ------------------------------------------------------------------- */

static uint64_t hash_str(uint64_t h, const char *s)
{
	for (; *s; s++)
		h = (h ^ (unsigned char)*s) * 0x100000001b3ull;
	return (h ^ 0xff) * 0x100000001b3ull; /* the end, so "ab","c" != "a","bc" */
}

void tt__labels_release(tt__labels *l)
{
	if (l == NULL ||
	    atomic_fetch_sub_explicit(&l->refs, 1, memory_order_acq_rel) != 1)
		return;
	free(l);
	atomic_fetch_sub_explicit(&live_sets, 1, memory_order_relaxed);
}

const char *tt__labels_get(const tt__labels *l, const char *key)
{
	if (l == NULL || key == NULL)
		return NULL;
	size_t lo = 0, hi = l->n;
	while (lo < hi) {
		size_t mid = (lo + hi) / 2;
		int c = strcmp(l->kv[mid].key, key);
		if (c == 0)
			return l->kv[mid].value;
		if (c < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	return NULL;
}

bool tt__labels_equal(const tt__labels *a, const tt__labels *b)
{
	if (a == b)
		return true;
	if (a == NULL || b == NULL || a->n != b->n || a->hash != b->hash)
		return false;
	for (uint32_t i = 0; i < a->n; i++)
		if (strcmp(a->kv[i].key, b->kv[i].key) != 0 ||
		    strcmp(a->kv[i].value, b->kv[i].value) != 0)
			return false;
	return true;
}

int tt__labels_make(tt__labels *base, const char *const *list,
		    const char *op, tt__labels **out)
{
	*out = NULL;
	/* Base's labels, then the list's, in order: after a stable sort by
	 * key, the last of each key is the one that wins. */
	tt__label tmp[TT_LABELS_MAX * 3];
	size_t n = 0;
	if (base)
		for (uint32_t i = 0; i < base->n; i++)
			tmp[n++] = base->kv[i];
	size_t nlist = 0;
	if (list) {
		for (size_t i = 0; list[i]; i += 2) {
			if (nlist == 2 * TT_LABELS_MAX)
				return tt__err(-EINVAL,
					       "%s: more than %d labels in "
					       "the list (or it is not ended "
					       "by NULL)",
					       op, 2 * TT_LABELS_MAX);
			const char *k = list[i], *v = list[i + 1];
			if (v == NULL)
				return tt__err(-EINVAL,
					       "%s: label key \"%.64s\" has no "
					       "value: a label list is key, "
					       "value, ... pairs ended by NULL "
					       "(an odd count here)",
					       op, k);
			int r = key_check(k, op);
			if (r)
				return r;
			if (strnlen(v, TT_LABEL_VALUE_MAX + 1) >
			    TT_LABEL_VALUE_MAX)
				return tt__err(-EINVAL,
					       "%s: value of label \"%.64s\" "
					       "is longer than %d bytes",
					       op, k, TT_LABEL_VALUE_MAX);
			tmp[n++] = (tt__label){k, v};
			nlist++;
		}
	}
	/* Insertion sort: stable, and n is at most 3 * TT_LABELS_MAX. */
	for (size_t i = 1; i < n; i++) {
		tt__label x = tmp[i];
		size_t j = i;
		while (j > 0 && strcmp(tmp[j - 1].key, x.key) > 0) {
			tmp[j] = tmp[j - 1];
			j--;
		}
		tmp[j] = x;
	}
	size_t m = 0, bytes = 0;
	for (size_t i = 0; i < n; i++) {
		if (i + 1 < n && strcmp(tmp[i].key, tmp[i + 1].key) == 0)
			continue; /* a later one wins */
		tmp[m++] = tmp[i];
	}
	if (m > TT_LABELS_MAX)
		return tt__err(-EINVAL, "%s: %zu labels, more than the %d a "
					"goroutine may have",
			       op, m, TT_LABELS_MAX);
	if (m == 0)
		return 0;
	uint64_t h = 0xcbf29ce484222325ull;
	for (size_t i = 0; i < m; i++) {
		h = hash_str(hash_str(h, tmp[i].key), tmp[i].value);
		bytes += strlen(tmp[i].key) + strlen(tmp[i].value) + 2;
	}
	if (base && base->n == m && base->hash == h) {
		bool same = true;
		for (size_t i = 0; i < m && same; i++)
			same = strcmp(base->kv[i].key, tmp[i].key) == 0 &&
			       strcmp(base->kv[i].value, tmp[i].value) == 0;
		if (same) {
			tt__labels_retain(base);
			*out = base;
			return 0;
		}
	}
	size_t head = sizeof(tt__labels) + m * sizeof(tt__label);
	tt__labels *l = malloc(head + bytes);
	if (l == NULL)
		return tt__err(-ENOMEM, "%s: out of memory for %zu labels",
			       op, m);
	char *p = (char *)l + head;
	for (size_t i = 0; i < m; i++) {
		size_t kl = strlen(tmp[i].key) + 1, vl = strlen(tmp[i].value) + 1;
		memcpy(p, tmp[i].key, kl);
		l->kv[i].key = p;
		p += kl;
		memcpy(p, tmp[i].value, vl);
		l->kv[i].value = p;
		p += vl;
	}
	atomic_init(&l->refs, 1);
	l->n = (uint32_t)m;
	l->hash = h;
	l->bucket = -1;

	pthread_mutex_lock(&metrics_lock);
	if (!env_read) {
		env_read = true;
		const char *e = getenv("TETHER_METRICS_LABEL");
		if (e && e[0] && strlen(e) <= TT_LABEL_KEY_MAX &&
		    atomic_load_explicit(&live_sets, memory_order_relaxed) ==
			    0)
			key_set(e);
	}
	if (metric_key[0]) {
		const char *v = tt__labels_get(l, metric_key);
		if (v)
			l->bucket = bucket_of(v);
	}
	atomic_fetch_add_explicit(&live_sets, 1, memory_order_relaxed);
	pthread_mutex_unlock(&metrics_lock);
	*out = l;
	return 0;
}

/* ---- goroutines --------------------------------------------------------------- */

void tt__labels_g_start(tt__g *g, const tt__g *parent, tt__labels *l)
{
	if (l == NULL) {
		l = parent->labels;
		tt__labels_retain(l);
	}
	g->labels = l;
	g->direct = 0;
	bucket_add(l, 1);
}

/* g's labels become l (the caller's reference), the old ones dropped. */
static void relabel(tt__g *g, tt__labels *l)
{
	tt__labels *old = g->labels;
	/* A goroutine with labels ends through the scheduler's g_exit, the
	 * one that drops them (internal.h, tt__labels_g_start). */
	if (l != NULL)
		g->direct = 0;
	bucket_add(l, 1);
	bucket_add(old, -1);
	g->labels = l;
	tt__labels_release(old);
}

void tt__labels_g_exit(tt__g *g)
{
	relabel(g, NULL);
}

void tt__labels_thread_exit(tt__sched *s)
{
	if (s->main_g.labels)
		relabel(&s->main_g, NULL);
	if (atomic_load_explicit(&live_sets, memory_order_relaxed) == 0)
		return;
	for (tt__g *g = s->all; g; g = g->all_next)
		if (g->labels)
			relabel(g, NULL);
}

/* ---- the public calls ----------------------------------------------------------- */

int tt_labels_set(const char *const *labels)
{
	tt__g *g = tt__current();
	tt__labels *l;
	int r = tt__labels_make(NULL, labels, "tt_labels_set", &l);
	if (r == 0)
		relabel(g, l);
	return r;
}

int tt_labels_add(const char *const *labels)
{
	tt__g *g = tt__current();
	tt__labels *l;
	int r = tt__labels_make(g->labels, labels, "tt_labels_add", &l);
	if (r == 0)
		relabel(g, l);
	return r;
}

int tt_labels_do(const char *const *labels, tt_func fn, void *arg)
{
	if (fn == NULL)
		return tt__err(-EINVAL, "tt_labels_do: fn is NULL");
	tt__g *g = tt__current();
	tt__labels *l;
	int r = tt__labels_make(g->labels, labels, "tt_labels_do", &l);
	if (r)
		return r;
	tt__labels *old = g->labels;
	tt__labels_retain(old);
	relabel(g, l);
	fn(arg);
	/* fn may have changed them: put back what there was. */
	relabel(tt__current(), old);
	return 0;
}

const char *tt_label(const char *key)
{
	return tt__labels_get(tt__current()->labels, key);
}

int tt_labels_each(bool (*fn)(const char *key, const char *value, void *arg),
		   void *arg)
{
	if (fn == NULL)
		return tt__err(-EINVAL, "tt_labels_each: fn is NULL");
	/* Held: fn may change the goroutine's labels. */
	tt__labels *l = tt__current()->labels;
	tt__labels_retain(l);
	int n = 0;
	for (uint32_t i = 0; l && i < l->n; i++) {
		n++;
		if (!fn(l->kv[i].key, l->kv[i].value, arg))
			break;
	}
	tt__labels_release(l);
	return n;
}
