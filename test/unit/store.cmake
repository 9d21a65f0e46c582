# store/ unit tests. The helpers (fault-injecting I/O seam, simulated loop)
# live in their own small library shared by the store's test executables.
add_library(warren_store_tutil STATIC unit/test_store_util.c)
target_link_libraries(warren_store_tutil PUBLIC warren_store warren_t
                      Threads::Threads)

# Segment churn costs a few directory fsyncs per segment (~13 ms each on a
# slow disk), so the functional tests run their temp dirs on tmpfs when
# the machine has one. The SIGKILL crash test stays on the real disk.
function(store_unit_test name source)
  wr_unit_test(${name} ${source} ${ARGN})
  if(EXISTS /dev/shm AND NOT name STREQUAL "test_store_crash")
    file(STRINGS ${source} lines REGEX "^T_CASE\\(")
    foreach(line ${lines})
      string(REGEX REPLACE "^T_CASE\\(([A-Za-z0-9_]+)\\).*" "\\1" case
             "${line}")
      set_tests_properties(${name}.${case} PROPERTIES
                           ENVIRONMENT "TMPDIR=/dev/shm")
    endforeach()
  endif()
endfunction()

store_unit_test(test_store unit/test_store.c
                LIBS warren_store_tutil PkgConfig::XXHASH)
store_unit_test(test_store_io unit/test_store_io.c LIBS warren_store_tutil)
store_unit_test(test_store_space unit/test_store_space.c
                LIBS warren_store_tutil)
store_unit_test(test_store_full unit/test_store_full.c
                LIBS warren_store_tutil)
store_unit_test(test_store_replica unit/test_store_replica.c
                LIBS warren_store_tutil)
store_unit_test(test_store_hot unit/test_store_hot.c LIBS warren_store_tutil)
store_unit_test(test_store_crash unit/test_store_crash.c
                LIBS warren_store_tutil)

# The store's micro-benchmark (not a test): see test/bench/bench_store.c.
add_executable(bench_store bench/bench_store.c)
target_link_libraries(bench_store PRIVATE warren_store Threads::Threads)

# fuzz_record's seeds replayed by ctest with any compiler (the libFuzzer
# build itself is registered in test/fuzz/fuzz.cmake).
add_executable(replay_fuzz_record fuzz/fuzz_record.c fuzz/replay_main.c)
target_link_libraries(replay_fuzz_record PRIVATE warren_store)
add_test(NAME fuzz_replay.fuzz_record
         COMMAND replay_fuzz_record
                 ${CMAKE_CURRENT_SOURCE_DIR}/fuzz/corpus/fuzz_record)

# The stream log (store/slog.c): stream queues' segments and index.
store_unit_test(test_slog unit/test_slog.c LIBS warren_store)

# The sync thread (store/fsyncer.c) streams use for the fsync policy.
store_unit_test(test_fsyncer unit/test_fsyncer.c LIBS warren_store
                Threads::Threads)
