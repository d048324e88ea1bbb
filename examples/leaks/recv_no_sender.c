/* recv_no_sender — leak shape 1: receiving from a channel nobody sends to.
 *
 * A worker waits for jobs on a channel. The leaky main hands it two jobs
 * and forgets to tell it there will be no more: the worker waits in
 * `<-jobs` forever. Fixed: main closes the channel when the work is
 * handed out; the worker's receive then reports "closed" and it returns.
 *
 *   recv_no_sender [--fixed] [--wait S]
 */
#include "leakex.h"

static void worker(void *arg)
{
	tt_chan *jobs = arg;
	int job;
	bool ok;
	while (tt_recv(jobs, &job, &ok) == 0 && ok)
		printf("worker: job %d\n", job);
	printf("worker: no more jobs, exiting\n");
}

int main(int argc, char **argv)
{
	leakex_args a = leakex_parse(argc, argv, 1.0);
	tt_chan *jobs;
	leakex_must(tt_chan_make(&jobs, sizeof(int), 0), "tt_chan_make");
	leakex_must((int)TT_GO(worker, jobs, jobs), "TT_GO"); /* owns jobs */
	for (int i = 1; i <= 2; i++)
		leakex_must(tt_send(jobs, &i), "tt_send");
	if (a.fixed)
		tt_chan_close(jobs); /* close(jobs): no more work */
	tt_chan_release(jobs);
	return leakex_check(&a);
}
