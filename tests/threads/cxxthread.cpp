// A C++ program that is not built with tether: a std::thread left
// running (never joined, never detached) when main returns would call
// std::terminate, so it is detached, and one is joined.
#include <chrono>
#include <thread>
#include <unistd.h>

static int pipefd[2];

__attribute__((noinline)) static void cxx_worker()
{
	char c;
	while (read(pipefd[0], &c, 1) < 0) {
	}
}

__attribute__((noinline)) static void start_cxx_workers()
{
	std::thread joined([] {});
	joined.join();
	std::thread leaked(cxx_worker);
	leaked.detach();
}

int main()
{
	if (pipe(pipefd) != 0)
		return 2;
	start_cxx_workers();
	std::this_thread::sleep_for(std::chrono::milliseconds(50));
	return 0;
}
