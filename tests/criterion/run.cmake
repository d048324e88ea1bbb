# Run leak_criterion and check what Criterion said about each test:
# leak::leaky failed because it leaked a goroutine, leak::clean passed.
#   cmake -DPROG=path/to/leak_criterion [-DEMULATOR=...] -P run.cmake
# The TAP report goes to a file: with --tap alone Criterion also drops
# what the tests print on stderr, where the leak report is.
set(tap "${CMAKE_CURRENT_BINARY_DIR}/leak_criterion.tap")
file(REMOVE "${tap}")
execute_process(
	COMMAND ${EMULATOR} "${PROG}" "--tap=${tap}" -j1
	OUTPUT_VARIABLE ignored
	ERROR_VARIABLE err
	RESULT_VARIABLE rc)
file(READ "${tap}" out)
message("${out}")
message("${err}")

function(require what text)
	string(FIND "${text}" "${what}" at)
	if(at EQUAL -1)
		message(FATAL_ERROR "criterion: expected to find: ${what}")
	endif()
endfunction()
function(forbid what text)
	string(FIND "${text}" "${what}" at)
	if(NOT at EQUAL -1)
		message(FATAL_ERROR "criterion: did not expect: ${what}")
	endif()
endfunction()

if(rc EQUAL 0)
	message(FATAL_ERROR "criterion: the run passed, but leak::leaky leaks")
endif()
require("not ok - leak::leaky" "${out}")
require("1 goroutine(s) leaked" "${out}")
require("ok - leak::clean" "${out}")
forbid("not ok - leak::clean" "${out}")
require("found unexpected goroutines:\n[Goroutine " "${err}")
require("wait_forever" "${err}")
