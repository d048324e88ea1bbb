/* hello — the README's example: a worker goroutine drains a buffered
 * channel of jobs until it is closed, then says it is done. */
#include <stdio.h>

#include <tether.h>

struct work {
	tt_chan *jobs; /* chan int */
	tt_chan *done; /* chan struct{} */
};

static void worker(void *arg)
{
	struct work *w = arg;
	int job;
	bool ok;
	while (tt_recv(w->jobs, &job, &ok) == 0 && ok)
		printf("job %d\n", job);
	tt_chan_close(w->done);
}

int main(void)
{
	struct work w;
	if (tt_chan_make(&w.jobs, sizeof(int), 16) ||
	    tt_chan_make(&w.done, 0, 0)) {
		fprintf(stderr, "hello: %s\n", tt_last_error());
		return 1;
	}
	tt_go(worker, &w);                  /* go worker(jobs, done) */
	for (int i = 1; i <= 3; i++)
		if (tt_send(w.jobs, &i) != 0)   /* jobs <- i */
			return 1;
	tt_chan_close(w.jobs);              /* close(jobs) */
	if (tt_recv_discard(w.done, NULL) != 0) /* <-done */
		return 1;
	printf("worker done\n");
	tt_chan_release(w.jobs);
	tt_chan_release(w.done);
	return 0;
}
