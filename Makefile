# tether — the commands a newcomer types. The real build is CMake; this file
# only strings the steps together.
#
#   make demo [ARGS="--count 100000 --seconds 5"]   build, run examples/massive
#   make test           build in build/, run the whole suite
#   make asan           the suite under clang ASan+UBSan, in build-asan/
#   make aarch64        cross-build for aarch64 in build-aarch64/, smoke-run
#                       the examples under qemu-user
#   make test-aarch64   run the aarch64 suite under qemu-user
#                       (TESTS=regex for a subset, e.g. TESTS='chan|select';
#                       EXCLUDE=regex to leave tests out)
#   make bench [ARGS=--quick]   build, then run bench/run (tether against Go)
#   make clean          remove every build directory
#
# Variables: ARGS (demo, bench); TESTS and EXCLUDE (ctest -R and -E regexes, for
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
	aarch64 build-aarch64 test-aarch64 bench clean

all: build

deps:
	@scripts/install-deps

deps-bench:
	@scripts/install-deps --bench

deps-cross:
	@scripts/install-deps --cross

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

clean:
	rm -rf build build-asan build-aarch64
