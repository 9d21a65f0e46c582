# Benchmarks (test/bench): the load generators warren-perf (pipelined,
# batched) and warren-everyday (rabbitmq-c, one publish per write), and
# compare.py, which runs the scenario matrix against Warren and RabbitMQ
# and writes BENCHMARKS.md. Included from test/CMakeLists.txt.
include(bench/perf/perf.cmake OPTIONAL)
include(bench/everyday/everyday.cmake OPTIONAL)
