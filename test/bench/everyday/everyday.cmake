# warren-everyday: the load generator that drives a broker the way
# everyday clients do, on rabbitmq-c (test/bench/everyday). Built only
# when librabbitmq is found (Debian: librabbitmq-dev, in .ci/deps); it
# shares warren_benchkit with warren-perf and links nothing of the broker.
# The binary lands in <build>/test/warren-everyday.
pkg_check_modules(RABBITMQ_C IMPORTED_TARGET librabbitmq)
if(NOT RABBITMQ_C_FOUND)
  message(STATUS "warren-everyday skipped: librabbitmq not found "
                 "(apt-get install librabbitmq-dev)")
  return()
endif()
set(WARREN_EVERYDAY_DIR ${CMAKE_CURRENT_LIST_DIR})
add_executable(warren-everyday
  ${WARREN_EVERYDAY_DIR}/everyday.c
  ${WARREN_EVERYDAY_DIR}/econn.c
  ${WARREN_EVERYDAY_DIR}/econs.c
  ${WARREN_EVERYDAY_DIR}/eprod.c
  ${WARREN_EVERYDAY_DIR}/ereport.c
  ${WARREN_EVERYDAY_DIR}/erun.c)
target_link_libraries(warren-everyday PRIVATE warren_benchkit
                      PkgConfig::RABBITMQ_C Threads::Threads)
# Its wire smoke test (test/wire/test_12_everyday_smoke.py, registered
# by wire.cmake before this file is included) finds it here.
if(TEST wire.12_everyday_smoke)
  set_property(TEST wire.12_everyday_smoke APPEND PROPERTY ENVIRONMENT
               "WARREN_EVERYDAY_BIN=$<TARGET_FILE:warren-everyday>")
endif()
