# Unit tests of amqp/ (frames, the generated codec, field tables) and the fuzz
# corpus replay: each fuzz target built with fuzz/replay_main.c instead of
# libFuzzer, run over its committed corpus as the ctest test
# fuzz_replay.<target>, so that plain gcc builds (and ASan/UBSan CI builds)
# exercise every seed.
wr_unit_test(test_codec unit/test_codec.c LIBS warren_amqp)
wr_unit_test(test_frame unit/test_frame.c LIBS warren_amqp)
wr_unit_test(test_ftable unit/test_ftable.c LIBS warren_amqp)
wr_unit_test(test_amqp_props unit/test_amqp_props.c LIBS warren_amqp)
target_compile_definitions(test_codec PRIVATE
  WR_FUZZ_CORPUS_DIR="${CMAKE_CURRENT_SOURCE_DIR}/fuzz/corpus")

foreach(target fuzz_frame fuzz_method fuzz_table)
  add_executable(replay_${target} fuzz/${target}.c fuzz/replay_main.c)
  target_link_libraries(replay_${target} PRIVATE warren_amqp)
  add_test(NAME fuzz_replay.${target}
           COMMAND replay_${target}
                   ${CMAKE_CURRENT_SOURCE_DIR}/fuzz/corpus/${target})
endforeach()

# x-delivery-count's cost per counted delivery (not a test):
# test/bench/bench_dcount.c.
add_executable(bench_dcount bench/bench_dcount.c)
target_link_libraries(bench_dcount PRIVATE warren_amqp)
