/* A real Prometheus server scrapes a tether program's /metrics.
 *
 * The program is this test binary run again with --serve-metrics: it
 * parks N_PARKED goroutines on a channel, serves the debug server on
 * 127.0.0.1:0, prints its port, and answers "count" on its stdin with its
 * own tt_num_goroutine() until stdin closes. Prometheus (Debian's
 * package, installed by scripts/install-deps; its own service, if any,
 * plays no part) runs from a temporary directory with its own config,
 * scraping that port every second, and listens on a free loopback port.
 * The test asks Prometheus's HTTP API for go_goroutines of the job until
 * a sample arrives (at most 60 s) and checks it against the program's
 * count, and the program's parked goroutines against
 * tether_goroutines{reason="chan receive"}, and that Prometheus took
 * every sample line (scrape_samples_scraped): so Prometheus's own parser
 * has accepted the exposition, labels included. promtool (same package)
 * must find nothing to lint in it either.
 *
 * Both processes die with the test (PR_SET_PDEATHSIG) and are killed and
 * reaped by the teardown on every other path; the directory is removed.
 * A missing prometheus binary is a failure, not a skip. */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "testutil.h"

#define N_PARKED 7
#define JOB "tether_test"

/* ---- the program being scraped -------------------------------------------- */

static void parked(void *p)
{
	tt_chan *c = p;
	TU_UNCHECKED(tt_chan_recv(c, NULL, 0, NULL));
}

static int serve_main(void)
{
	tt_chan *c;
	if (tt_chan_make(&c, 0, 0))
		return 1;
	for (int i = 0; i < N_PARKED; i++)
		if (tt_go(parked, c) < 0)
			return 1;
	tt_debug_server *srv;
	if (tt_debug_serve("127.0.0.1:0", NULL, &srv)) {
		fprintf(stderr, "serve: %s\n", tt_last_error());
		return 1;
	}
	printf("port=%d\n", tt_debug_port(srv));
	fflush(stdout);
	fcntl(0, F_SETFL, fcntl(0, F_GETFL) | O_NONBLOCK);
	char buf[256];
	for (;;) {
		ssize_t n = tt_read(0, buf, sizeof buf, TT_FOREVER);
		if (n <= 0)
			break;
		/* Every request is the one word "count\n". */
		for (ssize_t i = 0; i < n; i++)
			if (buf[i] == '\n') {
				printf("goroutines=%lld\n",
				       (long long)tt_num_goroutine());
				fflush(stdout);
			}
	}
	tt_debug_shutdown(srv);
	tt_chan_close(c);
	tt_yield();
	tt_chan_release(c);
	return 0;
}

/* ---- processes and files -------------------------------------------------- */

static struct {
	pid_t target, prom;
	int to_target, from_target; /* the target's stdin and stdout */
	char dir[64];
} st = {.to_target = -1, .from_target = -1};

static int rm_one(const char *path, const struct stat *sb, int flag,
		  struct FTW *ftw)
{
	(void)sb;
	(void)flag;
	(void)ftw;
	remove(path);
	return 0;
}

static void kill_wait(pid_t *pid)
{
	if (*pid > 0) {
		kill(*pid, SIGKILL);
		waitpid(*pid, NULL, 0);
	}
	*pid = 0;
}

static void cleanup(void)
{
	kill_wait(&st.prom);
	if (st.to_target >= 0)
		close(st.to_target);
	if (st.from_target >= 0)
		close(st.from_target);
	st.to_target = st.from_target = -1;
	kill_wait(&st.target);
	if (st.dir[0])
		nftw(st.dir, rm_one, 16, FTW_DEPTH | FTW_PHYS);
	st.dir[0] = '\0';
}

static int teardown(void **state)
{
	cleanup();
	return tu_teardown(state);
}

/* argv[0] of a program of this build, with the emulator in front when
 * the tests run under one; fills v (NULL-ended), returns the count. */
static int with_emulator(char **v, int max, char *words, size_t cap)
{
	int n = 0;
	const char *e = getenv("TETHER_EMULATOR");
	if (e && *e) {
		snprintf(words, cap, "%s", e);
		for (char *save, *w = strtok_r(words, " ", &save);
		     w && n < max - 4; w = strtok_r(NULL, " ", &save))
			v[n++] = w;
	}
	return n;
}

/* fork + exec v; stdin from in_fd, stdout to out_fd, stderr to err_fd
 * (-1: unchanged). The child dies with this process. */
static pid_t spawn(char **v, int in_fd, int out_fd, int err_fd)
{
	pid_t parent = getpid();
	pid_t pid = fork();
	TU_ASSERT_MSG(pid >= 0, "fork: %s", strerror(errno));
	if (pid == 0) {
		prctl(PR_SET_PDEATHSIG, SIGKILL);
		if (getppid() != parent)
			_exit(127);
		if (in_fd >= 0)
			dup2(in_fd, 0);
		if (out_fd >= 0)
			dup2(out_fd, 1);
		if (err_fd >= 0)
			dup2(err_fd, 2);
		execvp(v[0], v);
		fprintf(stderr, "exec %s: %s\n", v[0], strerror(errno));
		_exit(127);
	}
	return pid;
}

/* One line from fd, waiting at most until deadline (tt_now()). */
static bool read_line(int fd, char *out, size_t cap, int64_t deadline)
{
	size_t n = 0;
	while (n + 1 < cap) {
		int64_t left = deadline - tt_now();
		if (left <= 0)
			return false;
		struct pollfd p = {.fd = fd, .events = POLLIN};
		if (poll(&p, 1, (int)(left / TT_MILLISECOND) + 1) <= 0)
			continue;
		char c;
		if (read(fd, &c, 1) != 1)
			return false;
		if (c == '\n')
			break;
		out[n++] = c;
	}
	out[n] = '\0';
	return true;
}

static bool find_prometheus(char *path, size_t len)
{
	const char *env = getenv("PATH");
	char dirs[8192];
	snprintf(dirs, sizeof dirs, "%s:/usr/bin:/usr/local/bin",
		 env ? env : "");
	for (char *save, *d = strtok_r(dirs, ":", &save); d;
	     d = strtok_r(NULL, ":", &save)) {
		snprintf(path, len, "%s/prometheus", *d ? d : ".");
		if (access(path, X_OK) == 0)
			return true;
	}
	return false;
}

static int free_port(void)
{
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	TU_ASSERT_GE(fd, 0);
	struct sockaddr_in a = {.sin_family = AF_INET,
				.sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	TU_ASSERT_OK(bind(fd, (struct sockaddr *)&a, sizeof a) ? -errno : 0);
	socklen_t l = sizeof a;
	TU_ASSERT_OK(getsockname(fd, (struct sockaddr *)&a, &l) ? -errno : 0);
	close(fd);
	return ntohs(a.sin_port);
}

/* GET http://127.0.0.1:port/target; the body, or NULL if the server is
 * not answering (yet). Blocking, with a 5 s limit. */
static char *http_get(int port, const char *target)
{
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	TU_ASSERT_GE(fd, 0);
	struct timeval tv = {.tv_sec = 5};
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
	setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
	struct sockaddr_in a = {.sin_family = AF_INET,
				.sin_port = htons((uint16_t)port),
				.sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	if (connect(fd, (struct sockaddr *)&a, sizeof a) != 0) {
		close(fd);
		return NULL;
	}
	char req[1024];
	int n = snprintf(req, sizeof req,
			 "GET %s HTTP/1.0\r\nHost: 127.0.0.1:%d\r\n\r\n",
			 target, port);
	if (send(fd, req, (size_t)n, MSG_NOSIGNAL) != n) {
		close(fd);
		return NULL;
	}
	size_t cap = 1 << 14, len = 0;
	char *b = malloc(cap);
	TU_ASSERT(b);
	for (;;) {
		if (cap - len < 1024) {
			cap *= 2;
			b = realloc(b, cap);
			TU_ASSERT(b);
		}
		ssize_t r = read(fd, b + len, cap - len - 1);
		if (r <= 0)
			break;
		len += (size_t)r;
	}
	close(fd);
	b[len] = '\0';
	char *body = strstr(b, "\r\n\r\n");
	if (strncmp(b, "HTTP/1.", 7) != 0 || !body) {
		free(b);
		return NULL;
	}
	memmove(b, body + 4, strlen(body + 4) + 1);
	return b;
}

/* The value of an instant query's only sample, or false if there is
 * none yet. */
static bool query(int port, const char *q, double *out, char *raw, size_t rcap)
{
	char target[512];
	snprintf(target, sizeof target, "/api/v1/query?query=%s", q);
	char *body = http_get(port, target);
	if (!body)
		return false;
	snprintf(raw, rcap, "%s", body);
	const char *v = strstr(body, "\"value\":[");
	bool ok = false;
	if (strstr(body, "\"status\":\"success\"") && v) {
		const char *q1 = strchr(v + 9, '"'); /* [time,"value"] */
		if (q1) {
			char *end;
			*out = strtod(q1 + 1, &end);
			ok = *end == '"';
		}
	}
	free(body);
	return ok;
}

static void slurp(const char *path, char *out, size_t cap)
{
	out[0] = '\0';
	FILE *f = fopen(path, "r");
	if (!f)
		return;
	size_t n = fread(out, 1, cap - 1, f);
	out[n] = '\0';
	fclose(f);
}

/* ---- the test --------------------------------------------------------------- */

static void test_prometheus_scrapes(void **state)
{
	(void)state;
	char prom[4096];
	TU_ASSERT_MSG(find_prometheus(prom, sizeof prom),
		      "prometheus not found in PATH or /usr/bin (Debian: "
		      "prometheus; scripts/install-deps installs it)");
	snprintf(st.dir, sizeof st.dir, "/tmp/tether-prom-XXXXXX");
	TU_ASSERT_MSG(mkdtemp(st.dir), "mkdtemp: %s", strerror(errno));

	/* The program. */
	char self[4096];
	ssize_t sl = readlink("/proc/self/exe", self, sizeof self - 1);
	TU_ASSERT_GT(sl, 0);
	self[sl] = '\0';
	char *v[16], words[1024];
	int n = with_emulator(v, 16, words, sizeof words);
	v[n++] = self;
	v[n++] = "--serve-metrics";
	v[n] = NULL;
	int in[2], out[2];
	TU_ASSERT_OK(pipe2(in, O_CLOEXEC) ? -errno : 0);
	TU_ASSERT_OK(pipe2(out, O_CLOEXEC) ? -errno : 0);
	st.target = spawn(v, in[0], out[1], -1);
	close(in[0]);
	close(out[1]);
	st.to_target = in[1];
	st.from_target = out[0];
	char line[256];
	int port = 0;
	TU_ASSERT_MSG(read_line(st.from_target, line, sizeof line,
				tt_deadline_in(30 * TT_SECOND)) &&
			      sscanf(line, "port=%d", &port) == 1,
		      "the program did not say its port (\"%s\")", line);

	/* Prometheus, on a free port; a port taken in between makes it
	 * exit at once, and another is tried. */
	char cfg[128], log[128], data[128];
	snprintf(cfg, sizeof cfg, "%s/prometheus.yml", st.dir);
	snprintf(log, sizeof log, "%s/prometheus.log", st.dir);
	snprintf(data, sizeof data, "%s/data", st.dir);
	FILE *f = fopen(cfg, "w");
	TU_ASSERT(f);
	fprintf(f,
		"global:\n"
		"  scrape_interval: 1s\n"
		"  scrape_timeout: 1s\n"
		"  evaluation_interval: 1s\n"
		"scrape_configs:\n"
		"  - job_name: " JOB "\n"
		"    static_configs:\n"
		"      - targets: ['127.0.0.1:%d']\n",
		port);
	TU_ASSERT_OK(fclose(f));
	int pport = 0;
	char logtext[16384];
	for (int attempt = 0; attempt < 3 && st.prom == 0; attempt++) {
		pport = free_port();
		char a_cfg[256], a_data[256], a_listen[64];
		snprintf(a_cfg, sizeof a_cfg, "--config.file=%s", cfg);
		snprintf(a_data, sizeof a_data, "--storage.tsdb.path=%s", data);
		snprintf(a_listen, sizeof a_listen,
			 "--web.listen-address=127.0.0.1:%d", pport);
		char *pv[] = {prom, a_cfg, a_data, a_listen, NULL};
		int lfd = open(log, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC,
			       0644);
		TU_ASSERT_GE(lfd, 0);
		st.prom = spawn(pv, -1, lfd, lfd);
		close(lfd);
		/* Up once its API answers; gone if it exits. */
		int64_t dl = tt_deadline_in(30 * TT_SECOND);
		for (;;) {
			int status;
			if (waitpid(st.prom, &status, WNOHANG) == st.prom) {
				st.prom = 0;
				break;
			}
			char *b = http_get(pport, "/-/ready");
			free(b);
			if (b)
				break;
			TU_ASSERT_MSG(tt_now() < dl, "prometheus did not come up");
			usleep(100 * 1000);
		}
	}
	slurp(log, logtext, sizeof logtext);
	TU_ASSERT_MSG(st.prom > 0, "prometheus exited:\n%s", logtext);

	/* Until a sample arrives, and it matches the program's count. */
	int64_t dl = tt_deadline_in(60 * TT_SECOND);
	double got = -1, parked_n = -1;
	long long want = -1;
	char raw[4096] = "";
	bool matched = false;
	while (tt_now() < dl && !matched) {
		usleep(250 * 1000);
		if (!query(pport, "go_goroutines%7Bjob%3D%22" JOB "%22%7D", &got,
			   raw, sizeof raw))
			continue;
		TU_ASSERT_EQ(write(st.to_target, "count\n", 6), 6);
		TU_ASSERT_MSG(read_line(st.from_target, line, sizeof line,
					tt_deadline_in(10 * TT_SECOND)) &&
				      sscanf(line, "goroutines=%lld", &want) == 1,
			      "the program did not answer (\"%s\")", line);
		matched = (long long)got == want;
	}
	slurp(log, logtext, sizeof logtext);
	TU_ASSERT_MSG(matched,
		      "go_goroutines in Prometheus: %g, the program's count: "
		      "%lld; last answer: %s\nprometheus's log:\n%s",
		      got, want, raw, logtext);
	/* main, the acceptor, the connection Prometheus keeps open and the
	 * parked ones. */
	TU_ASSERT_EQ(want, N_PARKED + 3);
	TU_ASSERT_MSG(query(pport,
			    "tether_goroutines%7Bjob%3D%22" JOB "%22%2C"
			    "reason%3D%22chan%20receive%22%7D",
			    &parked_n, raw, sizeof raw),
		      "no tether_goroutines sample: %s", raw);
	TU_ASSERT_EQ((long long)parked_n, N_PARKED);
	TU_ASSERT_MSG(query(pport, "up%7Bjob%3D%22" JOB "%22%7D", &got, raw,
			    sizeof raw) &&
			      got == 1,
		      "up: %s", raw);
	/* Prometheus took every sample line of the exposition. */
	char *expo = http_get(port, "/metrics");
	TU_ASSERT_MSG(expo, "GET /metrics from the program failed");
	long lines = 0;
	for (const char *l = expo; *l;) {
		const char *e = strchr(l, '\n');
		TU_ASSERT(e);
		lines += *l != '#';
		l = e + 1;
	}
	/* And promtool, from the same package, finds nothing to lint. */
	char file[128], cmd[8400], lint[4096] = "";
	snprintf(file, sizeof file, "%s/metrics.txt", st.dir);
	FILE *mf = fopen(file, "w");
	TU_ASSERT(mf);
	fputs(expo, mf);
	TU_ASSERT_OK(fclose(mf));
	free(expo);
	char promtool[4096];
	snprintf(promtool, sizeof promtool, "%s", prom);
	char *slash = strrchr(promtool, '/');
	TU_ASSERT(slash);
	snprintf(slash + 1, sizeof promtool - (size_t)(slash + 1 - promtool),
		 "promtool");
	TU_ASSERT_MSG(access(promtool, X_OK) == 0, "no %s", promtool);
	snprintf(cmd, sizeof cmd, "'%s' check metrics < '%s' 2>&1", promtool,
		 file);
	FILE *pp = popen(cmd, "r");
	TU_ASSERT(pp);
	size_t ln = fread(lint, 1, sizeof lint - 1, pp);
	lint[ln] = '\0';
	int pst = pclose(pp);
	TU_ASSERT_MSG(pst == 0 && ln == 0, "%s: status %d:\n%s", cmd, pst,
		      lint);
	double scraped = -1;
	TU_ASSERT_MSG(query(pport,
			    "scrape_samples_scraped%7Bjob%3D%22" JOB "%22%7D",
			    &scraped, raw, sizeof raw),
		      "no scrape_samples_scraped: %s", raw);
	TU_ASSERT_EQ((long)scraped, lines);
	print_message("prometheus on port %d scraped 127.0.0.1:%d: "
		      "go_goroutines %lld, %ld samples\n",
		      pport, port, want, lines);

	/* The program ends when its stdin closes. */
	close(st.to_target);
	st.to_target = -1;
	int status = 0;
	TU_ASSERT_EQ(waitpid(st.target, &status, 0), st.target);
	st.target = 0;
	TU_ASSERT_MSG(WIFEXITED(status) && WEXITSTATUS(status) == 0,
		      "the program ended with status 0x%x", status);
}

int main(int argc, char **argv)
{
	if (argc == 2 && strcmp(argv[1], "--serve-metrics") == 0)
		return serve_main();
	tu_child_dispatch(argc, argv, NULL, 0);
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_prometheus_scrapes,
						tu_setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
