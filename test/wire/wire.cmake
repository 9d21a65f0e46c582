# Wire-level acceptance tests (test/wire): black-box pytest suites that
# start the real broker binary and talk AMQP 0-9-1 to it with a raw-frame
# client (rawamqp.py), pika and Debian's amqp-tools. One ctest test per
# file, in the files' numbered order, so the simplest failures come first.
#
# Needs /usr/bin/python3 with Debian's python3-pytest and python3-pika.
# WARREN_TEST_BROKER is cleared so ctest always tests the built broker; to
# run the suite against another broker (e.g. RabbitMQ), call pytest
# directly (see test/wire/README.md).
if(NOT TARGET warren)
  return()
endif()

set(WIRE_PYTHON /usr/bin/python3)
execute_process(
  COMMAND ${WIRE_PYTHON} -c "import pytest, pika"
  RESULT_VARIABLE wire_deps_missing
  OUTPUT_QUIET ERROR_QUIET)
if(wire_deps_missing)
  message(WARNING "test/wire skipped: ${WIRE_PYTHON} lacks pytest or pika "
                  "(apt-get install python3-pytest python3-pika)")
  return()
endif()

set(WIRE_DIR ${CMAKE_CURRENT_SOURCE_DIR}/wire)
# Tests that measure resident memory know the sanitizers inflate it.
if(WARREN_SANITIZE)
  set(wire_sanitized 1)
else()
  set(wire_sanitized 0)
endif()
file(GLOB wire_tests CONFIGURE_DEPENDS RELATIVE ${WIRE_DIR}
     ${WIRE_DIR}/test_*.py)
list(SORT wire_tests)
foreach(file ${wire_tests})
  string(REGEX REPLACE "^test_(.*)\\.py$" "\\1" name "${file}")
  add_test(NAME wire.${name}
           COMMAND ${WIRE_PYTHON} -m pytest -q -x -p no:cacheprovider
                   ${WIRE_DIR}/${file}
           WORKING_DIRECTORY ${WIRE_DIR})
  set_tests_properties(wire.${name} PROPERTIES
    ENVIRONMENT "WARREN_BIN=$<TARGET_FILE:warren>;WARREN_TEST_BROKER=;PYTHONDONTWRITEBYTECODE=1;WARREN_SANITIZED=${wire_sanitized};WARREN_FAULTIO=$<TARGET_FILE:faultio>;WARREN_PERF_BIN=$<TARGET_FILE:warren-perf>"
    TIMEOUT 300
    LABELS wire)
endforeach()
