/* Goroutine labels (tether/labels.h): inheritance, merging, the calls of
 * the running goroutine, freeing, bad input, and the labels in the
 * profiles (debug=1 against Go's own output, debug=0 read by go tool
 * pprof) and in /metrics. */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "debug/debug.h"
#include "internal.h"
#include "testutil.h"

/* ---- helpers -------------------------------------------------------------- */

typedef struct seen {
	const char *key;
	/* What tt_label(key) gave the goroutine, copied: the string is its
	 * set's, gone when the goroutine ends with the last reference. */
	char value[32];
	bool found;
	const void *set;   /* its set */
	tt_chan *done;
	tt_chan *hold;     /* NULL: end at once; else wait for a close */
} seen;

static void look(void *arg)
{
	seen *s = arg;
	const char *v = tt_label(s->key);
	s->found = v != NULL;
	snprintf(s->value, sizeof s->value, "%s", v ? v : "");
	s->set = tt__current()->labels;
	tu_done(s->done);
	if (s->hold)
		TU_UNCHECKED(tt_chan_recv(s->hold, NULL, 0, NULL));
}

/* Whole output of tt_profile_write. */
static int collect(void *arg, const void *data, size_t len)
{
	tt__buf *b = arg;
	tt__buf_put(b, data, len);
	return b->err;
}

static char *profile_text(int debug, size_t *len)
{
	tt__buf b = {0};
	TU_ASSERT_OK(tt_profile_write("goroutine", debug, collect, &b));
	tt__buf_put(&b, "", 1);
	TU_ASSERT_OK(b.err);
	if (len)
		*len = b.len - 1;
	return b.data;
}

/* ---- inheritance, merging, the calls ----------------------------------------- */

static void test_inherit_merge_override(void **state)
{
	(void)state;
	int64_t live0 = tt__labels_live();
	tt_chan *done = tu_chan(0, 8);
	TU_ASSERT_OK(tt_labels_set(TT_LABELS("handler", "login", "user",
					     "ann")));
	const void *mine = tt__current()->labels;
	TU_ASSERT(mine != NULL);
	TU_ASSERT_EQ(tt__labels_live(), live0 + 1);

	/* Without labels: the parent's set itself, shared. */
	seen a = {.key = "user", .done = done};
	tu_go(look, &a);
	TU_WAIT_DONE(done, 1, TT_SECOND);
	TU_ASSERT(a.found && strcmp(a.value, "ann") == 0);
	TU_ASSERT(a.set == mine);

	/* With labels: merged, the child's keys winning. */
	seen b = {.key = "user", .done = done};
	tt_go_attr at = {.labels = TT_LABELS("user", "bob", "req", "7")};
	tu_go_with(&at, look, &b);
	TU_WAIT_DONE(done, 1, TT_SECOND);
	TU_ASSERT(b.found && strcmp(b.value, "bob") == 0);
	TU_ASSERT(b.set != mine);
	const tt__labels *bl = b.set;
	(void)bl; /* freed already: only compared by address below */
	/* The parent is untouched. */
	TU_ASSERT(strcmp(tt_label("user"), "ann") == 0);
	TU_ASSERT(tt_label("req") == NULL);

	/* A grandchild of a labelled child inherits the child's set. */
	seen c = {.key = "handler", .done = done};
	tt_go_attr at2 = {.labels = TT_LABELS("handler", "admin")};
	tu_go_with(&at2, look, &c);
	TU_WAIT_DONE(done, 1, TT_SECOND);
	TU_ASSERT(c.found && strcmp(c.value, "admin") == 0);

	/* Within one list the last of a key wins (pprof.Labels). */
	TU_ASSERT_OK(tt_labels_set(TT_LABELS("k", "1", "k", "2")));
	TU_ASSERT(strcmp(tt_label("k"), "2") == 0);
	TU_ASSERT(tt_label("handler") == NULL); /* set replaces */
	TU_ASSERT_OK(tt_labels_add(TT_LABELS("j", "x")));
	TU_ASSERT(strcmp(tt_label("k"), "2") == 0);
	TU_ASSERT(strcmp(tt_label("j"), "x") == 0);
	/* Adding what is there already keeps the same set. */
	const void *before = tt__current()->labels;
	TU_ASSERT_OK(tt_labels_add(TT_LABELS("j", "x")));
	TU_ASSERT(tt__current()->labels == before);

	TU_ASSERT_OK(tt_labels_set(NULL));
	TU_ASSERT(tt__current()->labels == NULL);
	TU_ASSERT(tt_label("k") == NULL);
	/* The children's own sets go when they end; at two Ps a child on
	 * the other P may still be ending after it signalled done. */
	TU_WAIT_FOR(tt__labels_live() == live0, 2 * TT_SECOND);
	tt_chan_release(done);
}

/* The strings are copied: the list may go right after the call. */
static void test_strings_copied(void **state)
{
	(void)state;
	char key[16], val[16];
	strcpy(key, "mutable");
	strcpy(val, "before");
	const char *list[] = {key, val, NULL};
	TU_ASSERT_OK(tt_labels_set(list));
	strcpy(key, "xxxxxxx");
	strcpy(val, "after!");
	TU_ASSERT(tt_label("mutable") && strcmp(tt_label("mutable"),
						  "before") == 0);
	TU_ASSERT(tt_label("xxxxxxx") == NULL);
	TU_ASSERT_OK(tt_labels_set(NULL));
}

static bool count_each(const char *k, const char *v, void *arg)
{
	tt__buf *b = arg;
	tt__buf_printf(b, "%s=%s;", k, v);
	return strcmp(k, "b") != 0; /* stop after b */
}

static void in_do(void *arg)
{
	int *ran = arg;
	TU_ASSERT(strcmp(tt_label("a"), "1") == 0);
	TU_ASSERT(strcmp(tt_label("b"), "do") == 0);
	/* Changes inside fn are undone when Do returns. */
	TU_ASSERT_OK(tt_labels_set(TT_LABELS("z", "z")));
	(*ran)++;
}

static void test_do_and_each(void **state)
{
	(void)state;
	int64_t live0 = tt__labels_live();
	TU_ASSERT_OK(tt_labels_set(TT_LABELS("c", "3", "a", "1", "b", "2")));
	tt__buf b = {0};
	TU_ASSERT_EQ(tt_labels_each(count_each, &b), 2);
	tt__buf_put(&b, "", 1);
	TU_ASSERT(strcmp(b.data, "a=1;b=2;") == 0);
	tt__buf_free(&b);

	int ran = 0;
	TU_ASSERT_OK(tt_labels_do(TT_LABELS("b", "do"), in_do, &ran));
	TU_ASSERT_EQ(ran, 1);
	TU_ASSERT(strcmp(tt_label("b"), "2") == 0);
	TU_ASSERT(tt_label("z") == NULL);
	TU_ASSERT_ERR(tt_labels_do(TT_LABELS("b", "x"), NULL, NULL), -EINVAL);
	TU_ASSERT_OK(tt_labels_set(NULL));
	TU_ASSERT_EQ(tt_labels_each(count_each, NULL), 0);
	TU_ASSERT_EQ(tt__labels_live(), live0);
}

/* ---- freeing -------------------------------------------------------------------- */

static void test_sets_freed_with_last_goroutine(void **state)
{
	(void)state;
	int64_t live0 = tt__labels_live();
	int64_t n0 = tt_num_goroutine();
	tt_chan *done = tu_chan(0, 64);
	tt_chan *hold = tu_chan(0, 0);
	enum { N = 20 };
	seen s[N];
	tt_go_attr at = {.labels = TT_LABELS("pool", "w")};
	for (int i = 0; i < N; i++) {
		s[i] = (seen){.key = "pool", .done = done, .hold = hold};
		/* Half with a set of their own, half sharing the main's. */
		if (i == N / 2)
			TU_ASSERT_OK(tt_labels_set(TT_LABELS("pool", "m")));
		if (i < N / 2)
			tu_go_with(&at, look, &s[i]);
		else
			tu_go(look, &s[i]);
	}
	TU_WAIT_DONE(done, N, 2 * TT_SECOND);
	TU_ASSERT_EQ(tt__labels_live(), live0 + N / 2 + 1);
	for (int i = N / 2; i < N; i++)
		TU_ASSERT(s[i].set == s[N - 1].set);
	/* The main goroutine drops its set; the children still hold it. */
	TU_ASSERT_OK(tt_labels_set(NULL));
	TU_ASSERT_EQ(tt__labels_live(), live0 + N / 2 + 1);
	/* A snapshot holds references too, freed with it: one of every
	 * thread's goroutines, as with two Ps some run on the other. */
	tt__snapshot snap;
	TU_ASSERT_OK(tt__snapshot_take_all(&snap, NULL));
	TU_ASSERT_OK(tt_chan_close(hold));
	TU_WAIT_FOR(tt_num_goroutine() == n0, 2 * TT_SECOND);
	/* Every goroutine has ended; the snapshot's records keep them. */
	TU_ASSERT_EQ(tt__labels_live(), live0 + N / 2 + 1);
	size_t labelled = 0;
	for (size_t i = 0; i < snap.n; i++)
		labelled += snap.g[i].labels != NULL;
	TU_ASSERT_EQ(labelled, N);
	tt__snapshot_free(&snap);
	TU_WAIT_FOR(tt__labels_live() == live0, 2 * TT_SECOND);
	tt_chan_release(hold);
	tt_chan_release(done);
}

/* Goroutines that end without ever parking (they return to their parent
 * as from a call) drop their labels too: given, inherited, or set by the
 * goroutine itself. */
static void set_own(void *arg)
{
	(void)arg;
	TU_ASSERT_OK(tt_labels_set(TT_LABELS("own", "1")));
	const char *v = tt_label("own");
	TU_ASSERT_MSG(v && strcmp(v, "1") == 0, "own=%s", v ? v : "(none)");
}

static void read_label(void *arg)
{
	const char **want = arg;
	const char *v = tt_label(want[0]);
	TU_ASSERT_MSG(v && strcmp(v, want[1]) == 0, "%s=%s", want[0],
		      v ? v : "(none)");
}

static void test_unparked_end_frees(void **state)
{
	(void)state;
	/* A child that never parks returns to its parent as from a call,
	 * before tt_go does: the path of a goroutine started on one P. */
	tu_one_p();
	int64_t live0 = tt__labels_live();
	int64_t n0 = tt_num_goroutine();
	const char *given[] = {"given", "g"};
	tt_go_attr at = {.labels = TT_LABELS("given", "g")};
	for (int i = 0; i < 100; i++) {
		tu_go_with(&at, read_label, given);
		tu_go(set_own, NULL);
	}
	TU_ASSERT_EQ(tt_num_goroutine(), n0);
	TU_ASSERT_EQ(tt__labels_live(), live0);
	const char *inherited[] = {"main", "m"};
	TU_ASSERT_OK(tt_labels_set(TT_LABELS("main", "m")));
	for (int i = 0; i < 100; i++)
		tu_go(read_label, inherited);
	TU_ASSERT_EQ(tt__labels_live(), live0 + 1);
	TU_ASSERT_OK(tt_labels_set(NULL));
	TU_ASSERT_EQ(tt__labels_live(), live0);
}

/* ---- bad input -------------------------------------------------------------------- */

static void nothing(void *arg)
{
	(void)arg;
}

static void test_bad_input(void **state)
{
	(void)state;
	int64_t live0 = tt__labels_live();
	TU_ASSERT_OK(tt_labels_set(TT_LABELS("keep", "me")));
	const void *set = tt__current()->labels;

	TU_ASSERT_ERR(tt_labels_set(TT_LABELS("odd")), -EINVAL);
	TU_ASSERT_CONTAINS(tt_last_error(), "has no value");
	TU_ASSERT_ERR(tt_labels_set(TT_LABELS("a", "1", "b")), -EINVAL);
	TU_ASSERT_ERR(tt_labels_set(TT_LABELS("", "v")), -EINVAL);
	TU_ASSERT_CONTAINS(tt_last_error(), "empty label key");
	TU_ASSERT_ERR(tt_labels_add(TT_LABELS("", "v")), -EINVAL);

	char *big = malloc(TT_LABEL_VALUE_MAX + 2);
	memset(big, 'v', TT_LABEL_VALUE_MAX + 1);
	big[TT_LABEL_VALUE_MAX + 1] = '\0';
	TU_ASSERT_ERR(tt_labels_set(TT_LABELS("k", big)), -EINVAL);
	TU_ASSERT_CONTAINS(tt_last_error(), "longer than 4096 bytes");
	big[TT_LABEL_VALUE_MAX] = '\0'; /* exactly the limit: fine */
	TU_ASSERT_OK(tt_labels_add(TT_LABELS("k", big)));
	TU_ASSERT_OK(tt_labels_set(TT_LABELS("keep", "me")));
	set = tt__current()->labels;
	big[TT_LABEL_KEY_MAX + 1] = '\0';
	TU_ASSERT_ERR(tt_labels_set(TT_LABELS(big, "v")), -EINVAL);
	TU_ASSERT_CONTAINS(tt_last_error(), "more than 256 bytes");

	/* Too many: 65 distinct keys, and a list that never ends within
	 * the bound. */
	char keys[TT_LABELS_MAX + 1][8];
	const char *list[2 * (TT_LABELS_MAX + 1) + 1];
	for (int i = 0; i <= TT_LABELS_MAX; i++) {
		snprintf(keys[i], sizeof keys[i], "k%d", i);
		list[2 * i] = keys[i];
		list[2 * i + 1] = "v";
	}
	list[2 * (TT_LABELS_MAX + 1)] = NULL;
	TU_ASSERT_ERR(tt_labels_set(list), -EINVAL);
	TU_ASSERT_CONTAINS(tt_last_error(), "more than the 64");
	list[2 * TT_LABELS_MAX] = NULL; /* 64: fine */
	TU_ASSERT_OK(tt_labels_set(list));
	TU_ASSERT(strcmp(tt_label("k63"), "v") == 0);
	/* 64 of its own merged with one more inherited: too many. */
	TU_ASSERT_ERR(tt_labels_add(TT_LABELS("one", "more")), -EINVAL);
	TU_ASSERT_OK(tt_labels_set(TT_LABELS("keep", "me")));
	set = tt__current()->labels;

	/* A failed call leaves the labels as they were. */
	TU_ASSERT(tt__current()->labels == set);
	TU_ASSERT(strcmp(tt_label("keep"), "me") == 0);
	TU_ASSERT(tt_label(NULL) == NULL);
	TU_ASSERT_ERR(tt_labels_each(NULL, NULL), -EINVAL);

	/* tt_go_with with a bad list starts nothing. */
	int64_t n0 = tt_num_goroutine();
	tt_go_attr at = {.labels = TT_LABELS("x")};
	TU_ASSERT_ERR(tt_go_with(&at, nothing, NULL), -EINVAL);
	TU_ASSERT_CONTAINS(tt_last_error(), "tt_go_with");
	TU_ASSERT_EQ(tt_num_goroutine(), n0);
	free(big);
	TU_ASSERT_OK(tt_labels_set(NULL));
	TU_ASSERT_EQ(tt__labels_live(), live0);
}

/* ---- the profiles ------------------------------------------------------------------- */

/* Goroutines parked on `hold`, with these labels. */
static void park(void *arg)
{
	TU_UNCHECKED(tt_chan_recv(arg, NULL, 0, NULL));
}

/* Every goroutine made since m0 waits: the n new ones (and any proxy of
 * theirs, a goroutine of the owner's that waits for one on another P). */
static bool parked_since(const tt__metrics *m0, int n)
{
	tt__metrics m;
	tt__metrics_gather(&m, tt_now());
	int64_t waiting = 0;
	for (unsigned r = 0; r < TT_WAIT__COUNT; r++)
		waiting += m.waiting[r] - m0->waiting[r];
	int64_t made = m.goroutines - m0->goroutines;
	return made >= n && waiting == made;
}

static void start_parked(tt_chan *hold, const char *const *labels, int n)
{
	tt__metrics m0;
	tt__metrics_gather(&m0, tt_now());
	tt_go_attr at = {.labels = labels};
	for (int i = 0; i < n; i++)
		tu_go_with(&at, park, hold);
	/* Handed to another P they start and park in their own time. */
	TU_WAIT_FOR(parked_since(&m0, n), 10 * TT_SECOND);
}

static void test_debug1_layout(void **state)
{
	(void)state;
	tt_chan *hold = tu_chan(0, 0);
	start_parked(hold, TT_LABELS("user", "a\"b\n\x01\xc3\xa9\xc2\xa0",
				     "handler", "login"),
		     2);
	start_parked(hold, TT_LABELS("a", "2", "a ", "1"), 1);
	start_parked(hold, NULL, 1);
	char *txt = profile_text(1, NULL);
	/* Go's labelMap.String: %q-quoted pairs sorted as strings. */
	TU_ASSERT_CONTAINS(txt, "\n# labels: {\"handler\":\"login\", "
				"\"user\":\"a\\\"b\\n\\x01\xc3\xa9\\u00a0\"}\n");
	TU_ASSERT_CONTAINS(txt, "\n# labels: {\"a \":\"1\", \"a\":\"2\"}\n");
	/* One stack, three label sets: three records, the pair counted 2. */
	const char *p = strstr(txt, "# labels: {\"handler\"");
	TU_ASSERT(p != NULL);
	const char *line = p - 1;
	while (line > txt && line[-1] != '\n')
		line--;
	TU_ASSERT(strncmp(line, "2 @ ", 4) == 0);
	/* Same stack, same count, no labels: that record comes first, as
	 * Go sorts its keys. */
	char *lbl = strstr(txt, "# labels: {\"a \"");
	TU_ASSERT(lbl != NULL);
	free(txt);
	/* debug=2 prints no labels, as Go's. */
	txt = profile_text(2, NULL);
	TU_ASSERT_NOT_CONTAINS(txt, "login");
	free(txt);
	TU_ASSERT_OK(tt_chan_close(hold));
	tt_chan_release(hold);
}

/* A name is the label "name", hiding one of the set; the page shows the
 * labels in the group's header, escaped. */
static void test_name_and_page(void **state)
{
	(void)state;
	tt_chan *hold = tu_chan(0, 0);
	tt_go_attr at = {.name = "srv",
			 .labels = TT_LABELS("name", "hidden", "h", "<b>")};
	tu_go_with(&at, park, hold);
	char *txt = profile_text(1, NULL);
	TU_ASSERT_CONTAINS(txt, "\n# labels: {\"h\":\"<b>\", \"name\":\"srv\"}\n");
	TU_ASSERT_NOT_CONTAINS(txt, "hidden");
	free(txt);
	tt__buf b = {0};
	tt__page_opts po = {.min_wait = TT_MINUTE};
	tt__page_hist *hist = NULL;
	char why[200];
	TU_ASSERT_OK(tt__debug_page(&b, &po, &hist, why, sizeof why));
	free(hist);
	tt__buf_put(&b, "", 1);
	TU_ASSERT_CONTAINS(b.data, "<span class=\"meta labels\">{&quot;h&quot;:"
				   "&quot;&lt;b&gt;&quot;, &quot;name&quot;:"
				   "&quot;hidden&quot;}</span>");
	tt__buf_free(&b);
	TU_ASSERT_OK(tt_chan_close(hold));
	tt_chan_release(hold);
}

/* The Go twin: the same label sets on goroutines parked in a Go program,
 * its goroutine?debug=1 labels lines against ours. */
static const char twin_go[] =
	"package main\n"
	"import (\"context\"; \"os\"; \"runtime/pprof\"; \"sync\"; "
	"\"time\")\n"
	"func main() {\n"
	"\tch := make(chan int)\n"
	"\tvar wg sync.WaitGroup\n"
	"\tsets := [][]string{\n"
	"\t\t{\"twin\", \"1\", \"handler\", \"login\", \"user\", "
	"\"a\\\"b\\n\\x01\xc3\xa9\\u00a0\"},\n"
	"\t\t{\"twin\", \"2\", \"a \", \"1\", \"a\", \"2\"},\n"
	"\t\t{\"twin\", \"3\", \"k\", \"\\t\\x7f\\xff\\xfe\", "
	"\"\\u2028\", \"\\U0001F600\"},\n"
	"\t\t{\"twin\", \"4\", \"z\", \"\\\\\", \"Z\", \"\\u0085\\u200b\"},\n"
	"\t}\n"
	"\tfor _, s := range sets {\n"
	"\t\twg.Add(1)\n"
	"\t\tpprof.Do(context.Background(), pprof.Labels(s...), "
	"func(context.Context) {\n"
	"\t\t\tgo func() { wg.Done(); <-ch }()\n"
	"\t\t})\n"
	"\t}\n"
	"\twg.Wait()\n"
	"\ttime.Sleep(100 * time.Millisecond) // all parked in <-ch\n"
	"\tpprof.Lookup(\"goroutine\").WriteTo(os.Stdout, 1)\n"
	"}\n";

/* The labels lines with "twin" in them, sorted, one string. */
static char *twin_lines(const char *txt)
{
	char *v[16];
	size_t n = 0;
	for (const char *p = txt; (p = strstr(p, "# labels: ")) && n < 16;) {
		const char *e = strchr(p, '\n');
		size_t len = e ? (size_t)(e - p) : strlen(p);
		char *l = strndup(p, len);
		if (strstr(l, "\"twin\""))
			v[n++] = l;
		else
			free(l);
		p += len;
	}
	for (size_t i = 1; i < n; i++)
		for (size_t j = i; j > 0 && strcmp(v[j - 1], v[j]) > 0; j--) {
			char *t = v[j];
			v[j] = v[j - 1];
			v[j - 1] = t;
		}
	tt__buf b = {0};
	for (size_t i = 0; i < n; i++) {
		tt__buf_puts(&b, v[i]);
		tt__buf_put(&b, "\n", 1);
		free(v[i]);
	}
	tt__buf_put(&b, "", 1);
	return b.data;
}

static void test_debug1_go_twin(void **state)
{
	(void)state;
	char go[4096];
	TU_REQUIRE_GO(go, sizeof go);
	char src[4200];
	tu_write_temp("main.go", twin_go, sizeof twin_go - 1, src, sizeof src);
	char cmd[16384];
	snprintf(cmd, sizeof cmd, "cd \"$(dirname '%s')\" && GO111MODULE=off "
				  "GOCACHE=/tmp/tether-gocache '%s' run '%s'",
		 src, go, src);
	FILE *f = popen(cmd, "r");
	TU_ASSERT(f != NULL);
	tt__buf gout = {0};
	char tmp[4096];
	size_t k;
	while ((k = fread(tmp, 1, sizeof tmp, f)) > 0)
		tt__buf_put(&gout, tmp, k);
	TU_ASSERT_EQ(pclose(f), 0);
	tt__buf_put(&gout, "", 1);
	tu_unlink_temp(src);

	tt_chan *hold = tu_chan(0, 0);
	start_parked(hold, TT_LABELS("twin", "1", "handler", "login", "user",
				     "a\"b\n\x01\xc3\xa9\xc2\xa0"),
		     1);
	start_parked(hold, TT_LABELS("twin", "2", "a ", "1", "a", "2"), 1);
	start_parked(hold, TT_LABELS("twin", "3", "k", "\t\x7f\xff\xfe",
				     "\xe2\x80\xa8", "\xf0\x9f\x98\x80"),
		     1);
	start_parked(hold, TT_LABELS("twin", "4", "z", "\\", "Z",
				     "\xc2\x85\xe2\x80\x8b"),
		     1);
	char *txt = profile_text(1, NULL);
	char *mine = twin_lines(txt);
	char *theirs = twin_lines(gout.data);
	free(txt);
	TU_ASSERT_OK(tt_chan_close(hold));
	tt_chan_release(hold);
	size_t lines = 0;
	for (const char *p = theirs; (p = strchr(p, '\n')); p++)
		lines++;
	TU_ASSERT_MSG(lines == 4, "Go's four sets, not all found in:\n%s",
		      gout.data);
	tt__buf_free(&gout);
	TU_ASSERT_MSG(strcmp(mine, theirs) == 0, "ours:\n%s\nGo's:\n%s", mine,
		      theirs);
	free(mine);
	free(theirs);
}

static void test_pprof_reads_labels(void **state)
{
	(void)state;
	char go[4096];
	TU_REQUIRE_GO(go, sizeof go);
	tt_chan *hold = tu_chan(0, 0);
	start_parked(hold, TT_LABELS("handler", "login", "user", "ann"), 3);
	start_parked(hold, TT_LABELS("handler", "export"), 2);
	size_t len;
	char *pb = profile_text(0, &len);
	TU_ASSERT_OK(tt_chan_close(hold));
	tt_chan_release(hold);
	char path[4200];
	tu_write_temp("goroutine.pb.gz", pb, len, path, sizeof path);
	free(pb);

	char *raw = tu_pprof(go, "-raw -symbolize=none", path);
	TU_ASSERT_CONTAINS(raw, "handler:[login]");
	TU_ASSERT_CONTAINS(raw, "user:[ann]");
	TU_ASSERT_CONTAINS(raw, "handler:[export]");
	free(raw);
	char *tags = tu_pprof(go, "-tags -symbolize=none", path);
	TU_ASSERT_CONTAINS(tags, "handler: Total 5.0");
	TU_ASSERT_CONTAINS(tags, "3.0 (60.00%): login");
	TU_ASSERT_CONTAINS(tags, "2.0 (40.00%): export");
	TU_ASSERT_CONTAINS(tags, "user: Total 3.0");
	free(tags);
	char *focus = tu_pprof(go, "-tagfocus=handler=export -traces "
				   "-symbolize=none",
			       path);
	TU_ASSERT_CONTAINS(focus, "handler:  export\n         2 ");
	TU_ASSERT_NOT_CONTAINS(focus, "login");
	free(focus);
	tu_unlink_temp(path);
}

/* ---- threads ---------------------------------------------------------------------- */

/* A thread that ends with labelled goroutines parked for good frees
 * their sets (and its main goroutine's). */
static void *labelled_thread(void *arg)
{
	(void)arg;
	TU_ASSERT_OK(tt_labels_set(TT_LABELS("thread", "main")));
	tt_chan *never = tu_chan(0, 0);
	start_parked(never, TT_LABELS("thread", "child"), 3);
	start_parked(never, NULL, 2); /* share the main's set */
	/* The main's, and one per start with labels of its own. */
	TU_ASSERT_EQ(tt__labels_live(), 1 + 3);
	return NULL;
}

static void child_thread_exit(void)
{
	/* The thread's goroutines must start on it (tt_go on one P) to end
	 * with it: handed to a P they would outlive it. */
	TU_ASSERT_GE(tt_runtime_procs_set(1), 1);
	pthread_t t;
	TU_ASSERT_OK(-pthread_create(&t, NULL, labelled_thread, NULL));
	TU_ASSERT_OK(-pthread_join(t, NULL));
	TU_ASSERT_EQ(tt__labels_live(), 0);
	printf("tu-freed=1\n");
}

static void test_thread_exit_frees(void **state)
{
	(void)state;
	TU_REQUIRE_THREADS();
	tu_child c;
	TU_ASSERT_OK(tu_spawn_self("thread_exit", 30 * TT_SECOND, &c));
	TU_ASSERT_MSG(c.exited && c.exit_code == 0, "child: %s", c.err);
	tu_child_free(&c);
}

/* TETHER_METRICS_LABEL sets the key at the first set made. */
static void child_env_key(void)
{
	TU_ASSERT_OK(tt_labels_set(TT_LABELS("route", "/a", "x", "y")));
	char key[TT_LABEL_KEY_MAX + 1];
	tt__label_count c[TT_METRICS_LABEL_VALUES + 1];
	TU_ASSERT_EQ(tt__labels_counts(key, c), 1);
	TU_ASSERT(strcmp(key, "route") == 0);
	TU_ASSERT(strcmp(c[0].value, "/a") == 0);
	TU_ASSERT_EQ(c[0].n, 1);
}

static void test_env_key(void **state)
{
	(void)state;
	tu_child c;
	setenv("TETHER_METRICS_LABEL", "route", 1);
	int r = tu_spawn_self("env_key", 30 * TT_SECOND, &c);
	unsetenv("TETHER_METRICS_LABEL");
	TU_ASSERT_OK(r);
	TU_ASSERT_MSG(c.exited && c.exit_code == 0, "child: %s", c.err);
	tu_child_free(&c);
}

/* ---- metrics ------------------------------------------------------------------------- */

static char *metrics_text(void)
{
	tt__buf b = {0};
	TU_ASSERT_OK(tt__debug_metrics(&b));
	tt__buf_put(&b, "", 1);
	return b.data;
}

static void test_metrics_by_label(void **state)
{
	(void)state;
	TU_ASSERT_EQ(tt__labels_live(), 0);
	TU_ASSERT_ERR(tt_metrics_label_key(""), -EINVAL);
	TU_ASSERT_OK(tt_metrics_label_key("handler"));
	tt_chan *hold = tu_chan(0, 0);
	start_parked(hold, TT_LABELS("handler", "login", "user", "ann"), 3);
	start_parked(hold, TT_LABELS("handler", "login", "user", "bob"), 1);
	start_parked(hold, TT_LABELS("handler", "export"), 2);
	start_parked(hold, TT_LABELS("other_key", "x"), 2);
	/* The main goroutine counts too, and moves when it changes. */
	TU_ASSERT_OK(tt_labels_set(TT_LABELS("handler", "export")));
	char *m = metrics_text();
	TU_ASSERT_CONTAINS(m, "# TYPE tether_goroutines_by_label gauge\n");
	TU_ASSERT_CONTAINS(m, "\ntether_goroutines_by_label{handler=\"login\"} 4\n");
	TU_ASSERT_CONTAINS(m, "\ntether_goroutines_by_label{handler=\"export\"} 3\n");
	TU_ASSERT_NOT_CONTAINS(m, "other_key");
	free(m);
	TU_ASSERT_ERR(tt_metrics_label_key("user"), -EBUSY);
	TU_ASSERT_CONTAINS(tt_last_error(), "label sets exist");
	TU_ASSERT_OK(tt_labels_set(TT_LABELS("handler", "login")));

	/* The bound: 64 values, then "other". 70 more distinct values. */
	for (int i = 0; i < 70; i++) {
		char v[16];
		snprintf(v, sizeof v, "v%02d", i);
		start_parked(hold, TT_LABELS("handler", v), 1);
	}
	m = metrics_text();
	TU_ASSERT_CONTAINS(m, "\ntether_goroutines_by_label{handler=\"login\"} 5\n");
	TU_ASSERT_CONTAINS(m, "\ntether_goroutines_by_label{handler=\"export\"} 2\n");
	TU_ASSERT_CONTAINS(m, "{handler=\"v61\"} 1\n");
	TU_ASSERT_NOT_CONTAINS(m, "{handler=\"v62\"}");
	/* login, export, v00..v61 are the 64; v62..v69 are other. */
	TU_ASSERT_CONTAINS(m, "\ntether_goroutines_by_label{handler=\"other\"} 8\n");
	size_t series = 0;
	for (const char *p = m; (p = strstr(p, "\ntether_goroutines_by_label{"));
	     p++)
		series++;
	TU_ASSERT_EQ(series, TT_METRICS_LABEL_VALUES + 1);
	free(m);

	TU_ASSERT_OK(tt_chan_close(hold));
	TU_ASSERT_OK(tt_labels_set(NULL));
	TU_WAIT_FOR(tt__labels_live() == 0, 2 * TT_SECOND);
	m = metrics_text();
	TU_ASSERT_CONTAINS(m, "\ntether_goroutines_by_label{handler=\"login\"} 0\n");
	TU_ASSERT_CONTAINS(m, "\ntether_goroutines_by_label{handler=\"other\"} 0\n");
	free(m);
	TU_ASSERT_OK(tt_metrics_label_key(NULL));
	m = metrics_text();
	TU_ASSERT_NOT_CONTAINS(m, "tether_goroutines_by_label");
	free(m);
	tt_chan_release(hold);
}

int main(int argc, char **argv)
{
	static const tu_child_case cases[] = {
		{"thread_exit", child_thread_exit},
		{"env_key", child_env_key},
	};
	tu_child_dispatch(argc, argv, cases, sizeof cases / sizeof cases[0]);
	const struct CMUnitTest tests[] = {
		TU_TEST(test_inherit_merge_override),
		TU_TEST(test_strings_copied),
		TU_TEST(test_do_and_each),
		TU_TEST(test_sets_freed_with_last_goroutine),
		TU_TEST(test_unparked_end_frees),
		TU_TEST(test_bad_input),
		TU_TEST(test_debug1_layout),
		TU_TEST(test_name_and_page),
		TU_TEST(test_debug1_go_twin),
		TU_TEST(test_pprof_reads_labels),
		TU_TEST(test_metrics_by_label),
		TU_TEST(test_thread_exit_frees),
		TU_TEST(test_env_key),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
