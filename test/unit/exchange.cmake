# Unit tests of exchange/ (each links only warren_exchange and below).
wr_unit_test(test_exchange unit/test_exchange.c LIBS warren_exchange)
wr_unit_test(test_topic unit/test_topic.c LIBS warren_exchange)
wr_unit_test(test_headers unit/test_headers.c LIBS warren_exchange)

# Routing micro-benchmark: a plain executable, not a test.
add_executable(bench_topic bench/bench_topic.c)
target_link_libraries(bench_topic PRIVATE warren_exchange)
