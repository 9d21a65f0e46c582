wr_unit_test(test_vhost unit/test_vhost.c LIBS warren_vhost)
wr_unit_test(test_dedup unit/test_dedup.c LIBS warren_vhost)
wr_unit_test(test_delayheap unit/test_delayheap.c LIBS warren_vhost)
wr_unit_test(test_side unit/test_side.c LIBS warren_vhost)

# Publish-path micro-benchmark (not a test): see test/bench/bench_route.c.
add_executable(bench_route bench/bench_route.c)
target_link_libraries(bench_route PRIVATE warren_vhost)
