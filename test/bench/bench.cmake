# Benchmarks (test/bench): the load generator warren-perf, and
# compare.py, which runs the scenario matrix against Warren and RabbitMQ
# and writes BENCHMARKS.md. Included from test/CMakeLists.txt.
include(bench/perf/perf.cmake OPTIONAL)
