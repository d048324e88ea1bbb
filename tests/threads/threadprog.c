#define _GNU_SOURCE
/* A program that is not built with tether, run under libtether-preload.so
 * by test_threads.c. One mode per argument:
 *
 *   clean        threads joined or detached and finished: no report
 *   detached     a detached thread still running at exit
 *   unjoined     a joinable thread that finished, never joined
 *   running      a joinable thread spinning at exit
 *   blocked      a thread blocked in read() on a pipe
 *   named        a thread named "leaky-named" (pthread_setname_np)
 *   exit_thread  exit(0) called from another thread while one leaks
 *   main_exit    pthread_exit in main; the last thread ends the process
 *   fork         the child forks; both parent and child exit 0, the parent
 *                leaks, the child has no thread of its own
 *   exec         exec of itself in mode "blocked" (the check follows)
 *   _exit        a leak, then _exit(0): no check runs
 *   tryjoin      joined by pthread_tryjoin_np / timedjoin: clean
 *   self_detach  many threads that detach themselves at once (before
 *                their creator's pthread_create returns): clean */
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static int pipefd[2];
static volatile int stop;
/* Set by spin_worker once it runs: until then a new thread still has every
 * signal blocked (glibc's start-up), and a check at exit would catch it
 * half-made. */
static volatile int spinning;
static volatile int reader_tid;

/* Waits (at most 10 s) until the reader is asleep in read(), so the
 * report's state does not depend on how busy the machine is. */
static void wait_reader_asleep(void)
{
	for (int i = 0; i < 10000; i++) {
		char path[64], buf[512];
		if (reader_tid) {
			snprintf(path, sizeof path, "/proc/self/task/%d/stat",
				 reader_tid);
			FILE *f = fopen(path, "r");
			if (f) {
				size_t n = fread(buf, 1, sizeof buf - 1, f);
				fclose(f);
				buf[n] = 0;
				char *p = strrchr(buf, ')');
				if (p && p[1] == ' ' && p[2] == 'S')
					return;
			}
		}
		struct timespec ts = {0, 1000000};
		nanosleep(&ts, NULL);
	}
}

static void nap(long ms)
{
	struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
	while (nanosleep(&ts, &ts) != 0)
		;
}

__attribute__((noinline)) static void *quick_worker(void *p)
{
	(void)p;
	return NULL;
}

__attribute__((noinline)) static void *spin_worker(void *p)
{
	(void)p;
	spinning = 1;
	while (!stop)
		__asm__ volatile("" ::: "memory");
	return NULL;
}

__attribute__((noinline)) static void *reader_worker(void *p)
{
	(void)p;
	char c;
	reader_tid = (int)gettid();
	while (read(pipefd[0], &c, 1) < 0)
		;
	return NULL;
}

__attribute__((noinline)) static void *named_worker(void *p)
{
	(void)p;
	pthread_setname_np(pthread_self(), "leaky-named");
	void *r = reader_worker(p);
	__asm__ volatile("" ::: "memory"); /* no tail call */
	return r;
}

__attribute__((noinline)) static void *exiter_worker(void *p)
{
	(void)p;
	nap(50);
	exit(0);
}

__attribute__((noinline)) static void *last_worker(void *p)
{
	(void)p;
	nap(50);
	return NULL;
}

static volatile int self_detached; /* self_detach_worker calls done */

static void *self_detach_worker(void *arg)
{
	(void)arg;
	pthread_detach(pthread_self());
	__atomic_add_fetch(&self_detached, 1, __ATOMIC_SEQ_CST);
	return NULL;
}

static pthread_t start(void *(*fn)(void *), int detached)
{
	pthread_t t;
	pthread_attr_t a;
	pthread_attr_init(&a);
	if (detached)
		pthread_attr_setdetachstate(&a, PTHREAD_CREATE_DETACHED);
	if (pthread_create(&t, &a, fn, NULL) != 0) {
		perror("pthread_create");
		exit(2);
	}
	pthread_attr_destroy(&a);
	return t;
}

/* The creator every leaky mode goes through, so tests can look for it. */
__attribute__((noinline)) static pthread_t start_leaky(void *(*fn)(void *),
						       int detached)
{
	pthread_t t = start(fn, detached);
	__asm__ volatile("" ::: "memory"); /* no tail call: keep the frame */
	return t;
}

static void wait_spinning(void)
{
	while (!spinning)
		sched_yield();
}

int main(int argc, char **argv)
{
	if (argc < 2) {
		fprintf(stderr, "usage: threadprog MODE\n");
		return 2;
	}
	const char *m = argv[1];
	if (pipe(pipefd) != 0)
		return 2;
	if (!strcmp(m, "clean")) {
		pthread_join(start(quick_worker, 0), NULL);
		pthread_t t = start(quick_worker, 0);
		pthread_detach(t);
		start(quick_worker, 1);
		nap(50);
	} else if (!strcmp(m, "self_detach")) {
		/* 8 rounds of 25; each thread detaches itself first thing. */
		int n = 0;
		for (int round = 0; round < 8; round++) {
			for (int i = 0; i < 25; i++) {
				pthread_t t;
				if (pthread_create(&t, NULL, self_detach_worker,
						   NULL) == 0)
					n++;
			}
			nap(5);
		}
		for (int i = 0; i < 1000 && __atomic_load_n(&self_detached,
						     __ATOMIC_SEQ_CST) < n;
		     i++)
			nap(5);
		nap(50); /* the last ones finish exiting */
	} else if (!strcmp(m, "tryjoin")) {
		pthread_t t = start(quick_worker, 0);
		nap(50);
		if (pthread_tryjoin_np(t, NULL) != 0)
			return 2;
		t = start(quick_worker, 0);
		struct timespec ts;
		clock_gettime(CLOCK_REALTIME, &ts);
		ts.tv_sec += 5;
		if (pthread_timedjoin_np(t, NULL, &ts) != 0)
			return 2;
	} else if (!strcmp(m, "detached")) {
		start_leaky(spin_worker, 1);
		wait_spinning();
	} else if (!strcmp(m, "unjoined")) {
		start_leaky(quick_worker, 0);
		nap(50);
	} else if (!strcmp(m, "running")) {
		start_leaky(spin_worker, 0);
		wait_spinning();
	} else if (!strcmp(m, "blocked")) {
		start_leaky(reader_worker, 0);
		wait_reader_asleep();
	} else if (!strcmp(m, "named")) {
		start_leaky(named_worker, 0);
		wait_reader_asleep();
	} else if (!strcmp(m, "exit_thread")) {
		start_leaky(reader_worker, 0);
		wait_reader_asleep();
		start(exiter_worker, 0);
		for (;;)
			pause();
	} else if (!strcmp(m, "main_exit")) {
		start_leaky(last_worker, 1);
		pthread_exit(NULL);
	} else if (!strcmp(m, "fork")) {
		start_leaky(reader_worker, 0);
		nap(20);
		pid_t pid = fork();
		if (pid < 0)
			return 2;
		if (pid == 0) {
			/* The child has one thread; it may start and join
			 * its own. */
			pthread_join(start(quick_worker, 0), NULL);
			exit(0);
		}
		int st;
		if (waitpid(pid, &st, 0) != pid || !WIFEXITED(st) ||
		    WEXITSTATUS(st) != 0) {
			fprintf(stderr, "threadprog: child failed\n");
			return 3;
		}
		printf("child ok\n");
	} else if (!strcmp(m, "exec")) {
		start_leaky(spin_worker, 1);
		execl("/proc/self/exe", argv[0], "blocked", (char *)NULL);
		return 2;
	} else if (!strcmp(m, "_exit")) {
		start_leaky(reader_worker, 0);
		nap(20);
		_exit(0);
	} else {
		fprintf(stderr, "threadprog: unknown mode %s\n", m);
		return 2;
	}
	return 0;
}
