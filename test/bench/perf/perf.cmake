# warren-perf: the bundled AMQP 0-9-1 load generator (test/bench/perf).
# Built on the project's codec (warren_amqp, warren_base); it links none
# of the broker's libraries. The binary lands in <build>/test/warren-perf.
set(WARREN_PERF_DIR ${CMAKE_CURRENT_LIST_DIR})

# warren_benchkit (kit.h): what warren-perf and warren-everyday share to
# measure a broker the same way: body format and checks, sequence
# tracking, histograms, per-process and per-thread CPU from /proc.
add_library(warren_benchkit STATIC
  ${WARREN_PERF_DIR}/hist.c
  ${WARREN_PERF_DIR}/kit_cli.c
  ${WARREN_PERF_DIR}/pmsg_body.c
  ${WARREN_PERF_DIR}/sysstat.c
  ${WARREN_PERF_DIR}/track.c)
target_link_libraries(warren_benchkit PUBLIC warren_base PkgConfig::XXHASH
                      PkgConfig::JANSSON)

add_executable(warren-perf
  ${WARREN_PERF_DIR}/warren_perf.c
  ${WARREN_PERF_DIR}/admin.c
  ${WARREN_PERF_DIR}/consumer.c
  ${WARREN_PERF_DIR}/pconn.c
  ${WARREN_PERF_DIR}/pmsg.c
  ${WARREN_PERF_DIR}/producer.c
  ${WARREN_PERF_DIR}/report.c
  ${WARREN_PERF_DIR}/run.c
  ${WARREN_PERF_DIR}/topo.c
  ${WARREN_PERF_DIR}/wq.c)
target_link_libraries(warren-perf PRIVATE warren_benchkit warren_amqp
                      warren_base PkgConfig::XXHASH PkgConfig::JANSSON
                      Threads::Threads)

# warren-latency-floor: the same wake-ups as scenario 8 through a bare
# relay process, i.e. the best one-way latency this machine allows.
add_executable(warren-latency-floor ${WARREN_PERF_DIR}/latency_floor.c)
target_link_libraries(warren-latency-floor PRIVATE warren_benchkit
                      Threads::Threads)
