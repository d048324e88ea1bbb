/* tether — goroutine labels (Go's runtime/pprof labels).
 *
 * A goroutine may carry a set of key=value labels besides its name:
 * `handler=login`, `tenant=42`. They show in every goroutine profile
 * (debug=0's Sample.label, debug=1's "# labels: {...}" line, the debug
 * page's groups), so that `go tool pprof -tagfocus handler=login` picks
 * out one handler's goroutines, and goroutines on the same stack with
 * different labels are counted apart, as Go counts them. Like Go,
 * debug=2 (the full dump) prints no labels.
 *
 * A label list is an array of strings, key, value, key, value, ...,
 * ended by NULL; TT_LABELS builds one in place:
 *
 *     tt_go_attr a = {.labels = TT_LABELS("handler", "login")};
 *     tt_go_with(&a, serve, conn);
 *
 * Inheritance, as Go's goroutines inherit the labels of the goroutine
 * that starts them:
 *   - a goroutine started without labels (tt_go, or tt_go_with with
 *     .labels NULL) gets the current goroutine's set as it is then;
 *   - with .labels, it gets the current goroutine's set merged with them,
 *     its own keys winning (pprof.Do / pprof.WithLabels);
 *   - goroutines started from timer and context callbacks
 *     (tt_after_func, tt_ctx_after_func) get none.
 * Within one list, a key given twice keeps its last value (pprof.Labels);
 * the first NULL where a key would be ends the list.
 * Strings are copied once, when the set is made: nothing given here has
 * to outlive the call. A set is immutable and shared: starting a child
 * that inherits costs one reference count increment; the set is freed
 * when the last goroutine holding it ends. Each start with .labels makes
 * a set of its own (an allocation); to start many goroutines with the
 * same labels, set them first (tt_labels_do) and start plain children.
 *
 * The goroutine's name (tt_go_attr.name) is shown as the label "name",
 * as before; a label "name" in the set is hidden by it where both exist.
 *
 * Limits (beyond them the call fails with -EINVAL and a message, as for a
 * NULL or empty key or an odd number of strings): TT_LABELS_MAX labels
 * per set (after merging), keys of at most TT_LABEL_KEY_MAX bytes, values
 * of at most TT_LABEL_VALUE_MAX bytes. Values may be empty. */
#ifndef TETHER_LABELS_H
#define TETHER_LABELS_H

#include "common.h"
#include "go.h"

#ifdef __cplusplus
extern "C" {
#endif

#define TT_LABELS_MAX 64
#define TT_LABEL_KEY_MAX 256
#define TT_LABEL_VALUE_MAX 4096

/* A NULL-terminated label list from the key, value, ... strings given. */
#define TT_LABELS(...) ((const char *const[]){__VA_ARGS__, NULL})

/* Go's pprof.SetGoroutineLabels: the calling goroutine's labels become
 * exactly `labels` (NULL or an empty list: none). Goroutines it starts
 * afterwards inherit the new set; those already started keep theirs.
 * Returns 0, -EINVAL for a bad list (the labels are left as they were),
 * or -ENOMEM. */
TT_EXPORT int tt_labels_set(const char *const *labels);

/* The calling goroutine's labels merged with `labels`, the new keys
 * winning: pprof.SetGoroutineLabels(pprof.WithLabels(ctx, labels)).
 * Errors as tt_labels_set. */
TT_EXPORT int tt_labels_add(const char *const *labels);

/* Go's pprof.Do: run fn(arg) with the calling goroutine's labels merged
 * with `labels`, then put the labels back as they were. Returns 0 when
 * fn ran, or an error of tt_labels_set without running it. */
TT_EXPORT int tt_labels_do(const char *const *labels, tt_func fn, void *arg);

/* Go's pprof.Label: the value of label `key` of the calling goroutine, or
 * NULL when it has none (or key is NULL). The string belongs to the
 * goroutine's set: valid until the goroutine changes its labels or
 * ends. */
TT_EXPORT const char *tt_label(const char *key);

/* Go's pprof.ForLabels: fn(key, value, arg) for each label of the calling
 * goroutine, in key order (strcmp), until fn returns false. Returns how
 * many labels fn was called with. */
TT_EXPORT int tt_labels_each(bool (*fn)(const char *key, const char *value,
					void *arg),
			     void *arg);

/* The most distinct values tt_metrics_label_key counts separately. */
#define TT_METRICS_LABEL_VALUES 64
/* Values longer than this are counted in the "other" bucket. */
#define TT_METRICS_LABEL_VALUE_MAX 128

/* Count goroutines by the value of label `key` for /metrics (the debug
 * server), as
 *
 *     tether_goroutines_by_label{handler="login"} 12
 *
 * without walking goroutines at scrape time: each label set knows its
 * bucket, and goroutines are counted into it as they start, end or
 * change labels. The bound: the first TT_METRICS_LABEL_VALUES distinct
 * values (of at most TT_METRICS_LABEL_VALUE_MAX bytes) get a series of
 * their own; every later or longer value, and the value "other" itself,
 * is counted as value="other". Goroutines without the key, and those of
 * threads that have ended, are not counted. Values stay listed (at 0)
 * once seen. A key that is not a Prometheus label name
 * ([a-zA-Z_][a-zA-Z0-9_]*, not starting with "__") is exported as
 * tether_goroutines_by_label{key="k",value="v"}.
 *
 * Call it before making labels: it fails with -EBUSY while any label set
 * exists (sets made earlier would have no bucket). NULL turns counting
 * off. -EINVAL for an empty or too long key. Also set, at the first
 * label set made, from TETHER_METRICS_LABEL in the environment. */
TT_EXPORT int tt_metrics_label_key(const char *key);

#ifdef __cplusplus
}
#endif
#endif
