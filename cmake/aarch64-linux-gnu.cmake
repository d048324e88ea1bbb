# Cross build for aarch64 Linux with Debian's cross toolchain
# (gcc-aarch64-linux-gnu, libc6-dev-arm64-cross), running programs under
# qemu-user so that ctest works:
#
#   cmake -S . -B build-aarch64 \
#         -DCMAKE_TOOLCHAIN_FILE=cmake/aarch64-linux-gnu.cmake
#
# Libraries for aarch64 (cmocka, zlib) come from Debian's multiarch
# packages (dpkg --add-architecture arm64; apt-get install
# libcmocka-dev:arm64 zlib1g-dev:arm64), which live in
# /usr/lib/aarch64-linux-gnu; scripts/install-deps --cross sets that up.
set(CMAKE_SYSTEM_NAME Linux)
set(CMAKE_SYSTEM_PROCESSOR aarch64)

set(TETHER_CROSS_TRIPLET aarch64-linux-gnu)
set(CMAKE_C_COMPILER ${TETHER_CROSS_TRIPLET}-gcc)
set(CMAKE_ASM_COMPILER ${TETHER_CROSS_TRIPLET}-gcc)
set(CMAKE_LIBRARY_ARCHITECTURE ${TETHER_CROSS_TRIPLET})

# ctest and add_test() put this in front of every program built here.
#
# Where Debian's multiarch libc6:arm64 is installed (it comes with
# libcmocka0:arm64), the programs run with it, from the host's own root:
# no -L. "-L /usr/aarch64-linux-gnu" would then mix two builds of glibc —
# the cross package's ld.so with the multiarch libc.so.6, which ld.so finds
# through the host's ld.so.cache — and pthread_create hangs. Without the
# multiarch libc, the cross toolchain's copy under /usr/aarch64-linux-gnu
# is the only one, and -L points qemu at it.
if(EXISTS "/lib/ld-linux-aarch64.so.1")
	set(CMAKE_CROSSCOMPILING_EMULATOR "qemu-aarch64")
else()
	set(CMAKE_CROSSCOMPILING_EMULATOR
		"qemu-aarch64;-L;/usr/${TETHER_CROSS_TRIPLET}")
endif()

# Look for aarch64 libraries and headers in the cross sysroot and in the
# multiarch directories of the host (/usr/lib/aarch64-linux-gnu), never
# for programs there.
set(CMAKE_FIND_ROOT_PATH /usr/${TETHER_CROSS_TRIPLET} /)
set(CMAKE_FIND_ROOT_PATH_MODE_PROGRAM NEVER)
set(CMAKE_FIND_ROOT_PATH_MODE_LIBRARY ONLY)
set(CMAKE_FIND_ROOT_PATH_MODE_INCLUDE ONLY)
set(CMAKE_FIND_ROOT_PATH_MODE_PACKAGE BOTH)

# pkg-config: aarch64 .pc files only.
set(ENV{PKG_CONFIG_LIBDIR}
	"/usr/lib/${TETHER_CROSS_TRIPLET}/pkgconfig:/usr/share/pkgconfig")
