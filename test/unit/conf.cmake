# conf: unit tests of the config parser. WARREN_CONF_FILE points the tests
# that load the shipped default config at conf/warren.conf in the source
# tree.
wr_unit_test(test_conf unit/test_conf.c LIBS warren_conf)
target_compile_definitions(test_conf PRIVATE
  WARREN_CONF_FILE="${PROJECT_SOURCE_DIR}/conf/warren.conf")

# The fuzz target replayed over its seed corpus without libFuzzer (any
# compiler, ASan/UBSan builds too), with the shared replay driver.
set(_wr_fuzz ${PROJECT_SOURCE_DIR}/test/fuzz)
if(EXISTS ${_wr_fuzz}/replay_main.c)
  add_executable(replay_fuzz_conf ${_wr_fuzz}/fuzz_conf.c
                                  ${_wr_fuzz}/replay_main.c)
  target_link_libraries(replay_fuzz_conf PRIVATE warren_conf)
  add_test(NAME fuzz_replay.fuzz_conf
           COMMAND replay_fuzz_conf ${_wr_fuzz}/corpus/fuzz_conf)
endif()
