# tether — the commands a newcomer types. The real build is CMake; this file
# only strings the steps together.
#
#   make demo [ARGS="--count 100000 --seconds 5"]   build, run examples/massive
#   make test           build in build/, run the whole suite
#   make asan           the suite under clang ASan+UBSan, in build-asan/
#   make tsan           the suite under clang ThreadSanitizer, in build-tsan/
#                       (goroutines are TSan fibers: races between them are
#                       reported, channel and lock hand-offs are not)
#   make aarch64        cross-build for aarch64 in build-aarch64/, smoke-run
#                       the examples under qemu-user
#   make test-aarch64   run the aarch64 suite under qemu-user
#                       (TESTS=regex for a subset, e.g. TESTS='chan|select';
#                       EXCLUDE=regex to leave tests out)
#   make bench [ARGS=--quick]   build, then run bench/run (tether against Go)
#   make fuzz [FUZZ_TIME=120]   build the fuzz targets (clang, libFuzzer,
#                       ASan+UBSan) in build-fuzz/ and run each that long;
#                       new inputs go to build-fuzz/corpus/
#   make fuzz-merge     add the inputs of build-fuzz/corpus/ that reach new
#                       code to fuzz/corpus/ (to commit)
#   make test-browser   the debug server's page in headless Chromium
#                       (scripts/install-deps --browser); the screenshots
#                       are build/browser/page.png (steady) and
#                       growing.png (a growing leak, marked)
#   make clean          remove every build directory
#
# Variables: ARGS (demo, bench); FUZZ_TIME (seconds per fuzz target); TESTS and EXCLUDE (ctest -R and -E regexes, for
# the test targets); CMAKE_FLAGS (extra cmake -D options for any build);
# JOBS.

CMAKE ?= cmake
CTEST ?= ctest
JOBS ?= $(shell nproc 2>/dev/null || echo 2)
CMAKE_FLAGS ?=
ARGS ?=
TESTS ?=
EXCLUDE ?=

CTEST_FLAGS = --output-on-failure -j2 --no-tests=error \
	$(if $(TESTS),-R '$(TESTS)') $(if $(EXCLUDE),-E '$(EXCLUDE)')

AARCH64_TOOLCHAIN = $(CURDIR)/cmake/aarch64-linux-gnu.cmake

MAKEFLAGS += --no-print-directory

# The steps run in order; cmake --build does the parallel part.
.NOTPARALLEL:

.PHONY: all deps deps-bench deps-cross build demo test asan build-asan \
	tsan build-tsan \
	aarch64 build-aarch64 test-aarch64 bench clean fuzz build-fuzz \
	fuzz-merge deps-browser test-browser

all: build

deps:
	@scripts/install-deps

deps-bench:
	@scripts/install-deps --bench

deps-cross:
	@scripts/install-deps --cross

deps-browser:
	@scripts/install-deps --browser

build: deps
	$(CMAKE) -S . -B build $(CMAKE_FLAGS)
	$(CMAKE) --build build -j $(JOBS)

demo: build
	build/examples/massive $(ARGS)

test: build
	$(CTEST) --test-dir build $(CTEST_FLAGS)

build-asan: deps
	CC=clang $(CMAKE) -S . -B build-asan \
		-DTETHER_SANITIZE=address,undefined $(CMAKE_FLAGS)
	$(CMAKE) --build build-asan -j $(JOBS)

asan: build-asan
	$(CTEST) --test-dir build-asan $(CTEST_FLAGS)

build-tsan: deps
	CC=clang $(CMAKE) -S . -B build-tsan -DTETHER_TSAN=ON \
		-DTETHER_BUILD_BENCH=OFF $(CMAKE_FLAGS)
	$(CMAKE) --build build-tsan -j $(JOBS)

tsan: build-tsan
	$(CTEST) --test-dir build-tsan $(CTEST_FLAGS)

build-aarch64: deps-cross
	$(CMAKE) -S . -B build-aarch64 \
		-DCMAKE_TOOLCHAIN_FILE=$(AARCH64_TOOLCHAIN) $(CMAKE_FLAGS)
	$(CMAKE) --build build-aarch64 -j $(JOBS)

# Smoke test: the examples, run and checked under qemu-user.
aarch64: build-aarch64
	readelf -h build-aarch64/examples/hello | grep -q AArch64
	$(CTEST) --test-dir build-aarch64 --output-on-failure --no-tests=error \
		-R '^examples$$'

test-aarch64: build-aarch64
	$(CTEST) --test-dir build-aarch64 $(CTEST_FLAGS)

bench: deps-bench build
	bench/run $(ARGS)

# Fuzz targets: fuzz/NAME.c, with the sources it tests, seed corpus
# fuzz/corpus/NAME/ and dictionary fuzz/NAME.dict. The corpora are also
# replayed by `make test` (tests/test_http_corpus.c).
FUZZ_TIME ?= 120
FUZZ_CC ?= clang
FUZZ_FLAGS = -g -O1 -std=c11 -D_GNU_SOURCE -Wall -Wextra -Werror \
	-fsanitize=fuzzer,address,undefined -fno-sanitize-recover=all
FUZZ_TARGETS = http_request
fuzz_srcs_http_request = fuzz/http_request.c src/debug/http_parse.c

build-fuzz: deps
	@mkdir -p build-fuzz
	$(foreach t,$(FUZZ_TARGETS),$(FUZZ_CC) $(FUZZ_FLAGS) \
		$(fuzz_srcs_$(t)) -o build-fuzz/$(t) &&) true

fuzz: build-fuzz
	$(foreach t,$(FUZZ_TARGETS),mkdir -p build-fuzz/corpus/$(t) && \
		build-fuzz/$(t) -max_total_time=$(FUZZ_TIME) -max_len=12000 \
		-dict=fuzz/$(t).dict -print_final_stats=1 \
		build-fuzz/corpus/$(t) fuzz/corpus/$(t) &&) true

fuzz-merge: build-fuzz
	$(foreach t,$(FUZZ_TARGETS),build-fuzz/$(t) -merge=1 \
		fuzz/corpus/$(t) build-fuzz/corpus/$(t) &&) true

# Starts a small server program on a free port, loads its page in
# headless Chromium (DOM and screenshot) and checks what it shows.
test-browser: deps-browser build
	scripts/test-browser build

clean:
	rm -rf build build-asan build-tsan build-aarch64 build-fuzz
