/* A program outside the tether tree, built against an installed tether
 * (find_package or pkg-config) by tests/install/run.cmake. */
#include <stdio.h>

#include <tether.h>

int main(void)
{
	tt_chan *c;
	int v = 42, got = 0;

	if (tt_now() <= 0) {
		fprintf(stderr, "consumer: tt_now() <= 0\n");
		return 1;
	}
	if (tt_chan_make(&c, sizeof(int), 1) != 0) {
		fprintf(stderr, "consumer: tt_chan_make: %s\n",
			tt_last_error());
		return 1;
	}
	if (tt_chan_send(c, &v, sizeof v) != 0 ||
	    tt_chan_recv(c, &got, sizeof got, NULL) != 0 || got != 42) {
		fprintf(stderr, "consumer: send/recv failed\n");
		return 1;
	}
	tt_chan_release(c);
	printf("consumer: tether %s works\n", TT_VERSION_STRING);
	return 0;
}
