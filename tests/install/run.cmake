# tests/install/run.cmake — the "install" test.
#
# Installs the build in BUILD_DIR into a scratch prefix under WORK_DIR,
# checks the installed files, then builds main.c in this folder against
# that prefix four ways and runs each program:
#   find_package(tether): tether::tether (shared), tether::tether_static
#   pkg-config:           shared (run without LD_LIBRARY_PATH), and
#                         static (pkg-config --static; also -static)
#
# Arguments (-DNAME=VALUE): BUILD_DIR, WORK_DIR, CONSUMER_DIR, LIBDIR,
# C_COMPILER, and optionally TOOLCHAIN_FILE, EMULATOR (a ;-list),
# EXTRA_FLAGS (compile and link flags, e.g. sanitizers), PKG_CONFIG,
# PKG_CONFIG_LIBDIR (where a cross build's .pc files are).
cmake_minimum_required(VERSION 3.16)

foreach(_v BUILD_DIR WORK_DIR CONSUMER_DIR LIBDIR C_COMPILER)
	if(NOT DEFINED ${_v} OR "${${_v}}" STREQUAL "")
		message(FATAL_ERROR "run.cmake: -D${_v}=... is required")
	endif()
endforeach()

function(step what)
	message(STATUS "install test: ${what}")
endfunction()

# run(<name> COMMAND...) — runs a command, fails the test if it fails.
function(run name)
	execute_process(COMMAND ${ARGN}
		RESULT_VARIABLE rc
		OUTPUT_VARIABLE out
		ERROR_VARIABLE out)
	if(NOT rc EQUAL 0)
		string(REPLACE ";" " " cmd "${ARGN}")
		message(FATAL_ERROR
			"install test: ${name} failed (${rc})\n"
			"command: ${cmd}\n${out}")
	endif()
	set(run_output "${out}" PARENT_SCOPE)
endfunction()

separate_arguments(_extra UNIX_COMMAND "${EXTRA_FLAGS}")
set(_prefix "${WORK_DIR}/prefix")
set(_libdir "${_prefix}/${LIBDIR}")
file(REMOVE_RECURSE "${WORK_DIR}")
file(MAKE_DIRECTORY "${WORK_DIR}")

# --- 1. Install ----------------------------------------------------------
step("cmake --install into ${_prefix}")
run("cmake --install" "${CMAKE_COMMAND}" --install "${BUILD_DIR}"
	--prefix "${_prefix}")

file(GLOB _sonames "${_libdir}/libtether.so.*")
if(NOT _sonames)
	message(FATAL_ERROR "install test: no ${_libdir}/libtether.so.*")
endif()
foreach(_f
		include/tether.h
		include/tether/version.h
		include/tether/common.h
		${LIBDIR}/libtether.a
		${LIBDIR}/libtether.so
		${LIBDIR}/cmake/tether/tetherConfig.cmake
		${LIBDIR}/cmake/tether/tetherConfigVersion.cmake
		${LIBDIR}/cmake/tether/tetherTargets.cmake
		${LIBDIR}/pkgconfig/tether.pc)
	if(NOT EXISTS "${_prefix}/${_f}")
		message(FATAL_ERROR "install test: ${_f} was not installed")
	endif()
endforeach()
file(GLOB _internal "${_prefix}/include/*internal*"
	"${_prefix}/include/tether/*internal*")
if(_internal)
	message(FATAL_ERROR "install test: internal headers installed: "
		"${_internal}")
endif()

# --- 2. find_package(tether) --------------------------------------------
step("find_package(tether) consumer")
set(_cm_args
	-S "${CONSUMER_DIR}" -B "${WORK_DIR}/cmake-consumer"
	"-DCMAKE_PREFIX_PATH=${_prefix}"
	"-DCMAKE_C_COMPILER=${C_COMPILER}"
	"-DCMAKE_BUILD_TYPE=RelWithDebInfo")
if(TOOLCHAIN_FILE)
	list(APPEND _cm_args "-DCMAKE_TOOLCHAIN_FILE=${TOOLCHAIN_FILE}")
endif()
if(EXTRA_FLAGS)
	list(APPEND _cm_args
		"-DCMAKE_C_FLAGS=${EXTRA_FLAGS}"
		"-DCMAKE_EXE_LINKER_FLAGS=${EXTRA_FLAGS}")
endif()
run("configure consumer" "${CMAKE_COMMAND}" ${_cm_args})
run("build consumer" "${CMAKE_COMMAND}" --build "${WORK_DIR}/cmake-consumer")
foreach(_p consumer_shared consumer_static)
	run("${_p}" ${EMULATOR} "${WORK_DIR}/cmake-consumer/${_p}")
	message(STATUS "  ${_p}: ${run_output}")
endforeach()

# --- 3. pkg-config -------------------------------------------------------
if(NOT PKG_CONFIG)
	find_program(PKG_CONFIG NAMES pkg-config pkgconf)
endif()
if(NOT PKG_CONFIG)
	message(FATAL_ERROR "install test: pkg-config not found")
endif()
set(ENV{PKG_CONFIG_PATH} "${_libdir}/pkgconfig")
# A cross build's own .pc files for what tether.pc requires (the
# toolchain file sets PKG_CONFIG_LIBDIR at configure time).
if(PKG_CONFIG_LIBDIR)
	set(ENV{PKG_CONFIG_LIBDIR} "${PKG_CONFIG_LIBDIR}")
endif()

step("pkg-config consumer (shared)")
run("pkg-config --cflags --libs tether"
	"${PKG_CONFIG}" --cflags --libs tether)
string(STRIP "${run_output}" _flags)
separate_arguments(_flags UNIX_COMMAND "${_flags}")
# Only what pkg-config says (its Libs carry an RPATH to a prefix outside
# the linker's directories), and run with no LD_LIBRARY_PATH: a program
# built so runs from the installed prefix as it is.
run("compile with pkg-config flags" "${C_COMPILER}" ${_extra}
	"${CONSUMER_DIR}/main.c" ${_flags} -o "${WORK_DIR}/pc_shared")
unset(ENV{LD_LIBRARY_PATH})
run("pc_shared (no LD_LIBRARY_PATH)" ${EMULATOR} "${WORK_DIR}/pc_shared")
message(STATUS "  pc_shared: ${run_output}")

step("pkg-config consumer (static)")
run("pkg-config --static --cflags --libs tether"
	"${PKG_CONFIG}" --static --cflags --libs tether)
string(STRIP "${run_output}" _flags)
separate_arguments(_flags UNIX_COMMAND "${_flags}")
# With libtether.so beside libtether.a, -ltether means the shared one;
# ask the linker for the archive.
list(TRANSFORM _flags REPLACE "^-ltether$" "-l:libtether.a")
if(NOT "-l:libtether.a" IN_LIST _flags)
	message(FATAL_ERROR "install test: no -ltether in pkg-config output")
endif()
run("compile with pkg-config --static flags" "${C_COMPILER}" ${_extra}
	"${CONSUMER_DIR}/main.c" ${_flags} -o "${WORK_DIR}/pc_static")
run("pc_static" ${EMULATOR} "${WORK_DIR}/pc_static")
message(STATUS "  pc_static: ${run_output}")

# Every library from archives (-static): pkg-config --static must name
# all of libdw's own dependencies (-lelf -lz -llzma -lbz2 ...), which it
# does through Requires.private. Not with sanitizers (no static runtime)
# nor when cross-building.
if(NOT EXTRA_FLAGS AND NOT EMULATOR AND NOT TOOLCHAIN_FILE)
	step("pkg-config consumer (fully static, -static)")
	run("link -static with pkg-config --static flags" "${C_COMPILER}"
		"${CONSUMER_DIR}/main.c" ${_flags} -static
		-o "${WORK_DIR}/pc_all_static")
	run("pc_all_static" "${WORK_DIR}/pc_all_static")
	message(STATUS "  pc_all_static: ${run_output}")
endif()

message(STATUS "install test: passed")
