/* The fuzz corpus of the HTTP request parser, replayed: every file of
 * fuzz/corpus/http_request goes through the fuzz target's own entry point
 * (fuzz/http_request.c, built here without libFuzzer), whose checks trap
 * on a wrong result. Then a few of the files are parsed again here and
 * their outcome compared with what the server must answer. */
#include <dirent.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "testutil.h"

/* The target, and the parser it calls, in this program. */
#include "../fuzz/http_request.c"

/* fuzz/corpus/http_request beside this source file, unless
 * TETHER_HTTP_CORPUS names another directory. */
static const char *corpus_dir(void)
{
	static char dir[PATH_MAX];
	const char *env = getenv("TETHER_HTTP_CORPUS");
	if (env && *env)
		return env;
	const char *src = __FILE__;
	const char *slash = strrchr(src, '/');
	size_t n = slash ? (size_t)(slash - src) : 1;
	snprintf(dir, sizeof dir, "%.*s/../fuzz/corpus/http_request", (int)n,
		 slash ? src : ".");
	return dir;
}

static char *read_file(const char *path, size_t *len)
{
	FILE *f = fopen(path, "rb");
	if (!f)
		return NULL;
	size_t cap = 4096, n = 0;
	char *buf = malloc(cap);
	size_t k;
	while (buf && (k = fread(buf + n, 1, cap - n, f)) > 0) {
		n += k;
		if (n == cap)
			buf = realloc(buf, cap *= 2);
	}
	fclose(f);
	*len = n;
	return buf;
}

static void test_replay_corpus(void **state)
{
	(void)state;
	const char *dir = corpus_dir();
	DIR *d = opendir(dir);
	TU_ASSERT_MSG(d != NULL, "cannot open the corpus %s", dir);
	int files = 0;
	struct dirent *e;
	while ((e = readdir(d)) != NULL) {
		if (e->d_name[0] == '.')
			continue;
		char path[PATH_MAX + 256];
		snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
		size_t len;
		char *data = read_file(path, &len);
		TU_ASSERT_MSG(data != NULL, "cannot read %s", path);
		LLVMFuzzerTestOneInput((const uint8_t *)data, len);
		free(data);
		files++;
	}
	closedir(d);
	print_message("replayed %d corpus files from %s\n", files, dir);
	TU_ASSERT_GE(files, 12);
}

/* What parsing a corpus file gives. */
static int parse_file(const char *name, tt__http_req *q)
{
	char path[PATH_MAX + 256];
	snprintf(path, sizeof path, "%s/%s", corpus_dir(), name);
	size_t len;
	char *data = read_file(path, &len);
	TU_ASSERT_MSG(data != NULL, "cannot read %s", path);
	tt__http_limits lim = {.max_header_bytes = 8192, .max_headers = 64};
	int r = tt__http_parse(data, len, &lim, q);
	free(data); /* q's pointers are not used after this */
	return r;
}

static void test_corpus_outcomes(void **state)
{
	(void)state;
	tt__http_req q;
	TU_ASSERT_GT(parse_file("get_debug1", &q), 0);
	TU_ASSERT_EQ(q.method, TT__HTTP_GET);
	TU_ASSERT_EQ(q.version, 11);
	TU_ASSERT(q.keep_alive);
	TU_ASSERT_GT(parse_file("head_close", &q), 0);
	TU_ASSERT_EQ(q.method, TT__HTTP_HEAD);
	TU_ASSERT(!q.keep_alive);
	TU_ASSERT_GT(parse_file("bare_lf_keepalive", &q), 0);
	TU_ASSERT(q.keep_alive && q.version == 10);
	TU_ASSERT_GT(parse_file("http10_debug2", &q), 0);
	TU_ASSERT(!q.keep_alive);
	TU_ASSERT_GT(parse_file("options_star", &q), 0);
	TU_ASSERT_EQ(q.method, TT__HTTP_OTHER);
	TU_ASSERT_EQ(parse_file("post_body", &q), -413);
	TU_ASSERT_EQ(parse_file("chunked_body", &q), -413);
	TU_ASSERT_EQ(parse_file("http2_version", &q), -505);
	TU_ASSERT_EQ(parse_file("obs_fold", &q), -400);
	TU_ASSERT_EQ(parse_file("dup_host", &q), -400);
	TU_ASSERT_EQ(parse_file("space_before_colon", &q), -400);
	TU_ASSERT_EQ(parse_file("bare_cr", &q), -400);
	TU_ASSERT_EQ(parse_file("absolute_form", &q), -400);
	TU_ASSERT_EQ(parse_file("control_in_value", &q), -400);
	TU_ASSERT_EQ(parse_file("double_space", &q), -400);
	TU_ASSERT_EQ(parse_file("cl_overflow", &q), -400);
	TU_ASSERT_EQ(parse_file("oversized_target", &q), -431);
	TU_ASSERT_EQ(parse_file("too_many_headers", &q), -431);
}

/* The query helpers, on their own. */
static void test_query(void **state)
{
	(void)state;
	char v[16];
	const char *q = "gc=1&debug=2&debug=1";
	TU_ASSERT_EQ(tt__http_query_get(q, strlen(q), "debug", v, sizeof v), 1);
	TU_ASSERT(strcmp(v, "2") == 0);
	q = "de%62ug=%31";
	TU_ASSERT_EQ(tt__http_query_get(q, strlen(q), "debug", v, sizeof v), 1);
	TU_ASSERT(strcmp(v, "1") == 0);
	q = "debug=a+b%2B";
	TU_ASSERT_EQ(tt__http_query_get(q, strlen(q), "debug", v, sizeof v), 4);
	TU_ASSERT(strcmp(v, "a b+") == 0);
	q = "x=1";
	TU_ASSERT_EQ(tt__http_query_get(q, strlen(q), "debug", v, sizeof v), -1);
	q = "debug";
	TU_ASSERT_EQ(tt__http_query_get(q, strlen(q), "debug", v, sizeof v), 0);
	q = "debug=%4";
	TU_ASSERT_EQ(tt__http_query_get(q, strlen(q), "debug", v, sizeof v), -2);
	q = "debug=0123456789abcdefgh";
	TU_ASSERT_EQ(tt__http_query_get(q, strlen(q), "debug", v, sizeof v), -2);
	TU_ASSERT_EQ(tt__http_query_check("a=%zz", 5), -1);
	char p[8];
	TU_ASSERT_EQ(tt__http_path_decode("/a%2fb", 6, p, sizeof p), -1);
	TU_ASSERT_EQ(tt__http_path_decode("/a%00", 5, p, sizeof p), -1);
	TU_ASSERT_EQ(tt__http_path_decode("/%41b", 5, p, sizeof p), 3);
	TU_ASSERT(memcmp(p, "/Ab", 3) == 0);
	TU_ASSERT_EQ(tt__http_path_decode("/123456789", 10, p, sizeof p), -1);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_replay_corpus),
		cmocka_unit_test(test_corpus_outcomes),
		cmocka_unit_test(test_query),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
