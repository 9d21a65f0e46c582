# Fault-injection tests (test/cluster, label "faults"): the Jepsen-style
# harness validated on what exists today, a single Warren node and real
# etcd members, each in its own network namespace.
#
#   faults.checker           the total-queue checker's arithmetic (no root)
#   faults.netns             namespaces, partitions, process faults, cleanup
#   faults.etcd_partition    3 etcd members, leader isolated, heal, converge
#   faults.single_node_kill  one node, 5 kill -9 / restart cycles under load
#   faults.table.<fault>     issue 12's fault table, 3 nodes and 3 etcd
#                            members, one case per fault with the issue's
#                            CI trial counts and pass criteria (faults.py;
#                            README.md); a sanitizer build runs a smoke of
#                            each kind. Label faults_table.
#   faults.mgmt_leader       a leader that lost etcd names no leader in
#                            GET /api/vhosts/<vhost> (loopback, no root)
#   faults.negative_control  a wiped data directory and a foreign message:
#                            the harness must report lost and unexpected
#   faults.sweep             (cleanup fixture) removes leftovers of any run
#                            whose driver died (e.g. a ctest timeout)
#
# All but faults.checker need root (CI runs as root) and fail with a clear
# message otherwise; a developer may set WARREN_FAULTS_SKIP_NONROOT=1 to
# have them skipped (status 77) instead. Needs /usr/bin/python3 with
# python3-pytest and python3-pika, iproute2, nftables and etcd-server.
if(NOT TARGET warren)
  return()
endif()

set(FAULTS_PYTHON /usr/bin/python3)
execute_process(
  COMMAND ${FAULTS_PYTHON} -c "import pytest, pika"
  RESULT_VARIABLE faults_deps_missing
  OUTPUT_QUIET ERROR_QUIET)
if(faults_deps_missing)
  message(WARNING "test/cluster skipped: ${FAULTS_PYTHON} lacks pytest or "
                  "pika (apt-get install python3-pytest python3-pika)")
  return()
endif()

set(FAULTS_DIR ${CMAKE_CURRENT_SOURCE_DIR}/cluster)
set(faults_pytest ${FAULTS_PYTHON} -m pytest -q -s -p no:cacheprovider)
add_test(NAME faults.checker
         COMMAND ${faults_pytest} ${FAULTS_DIR}/test_checker.py
         WORKING_DIRECTORY ${FAULTS_DIR})
add_test(NAME faults.netns
         COMMAND ${faults_pytest} ${FAULTS_DIR}/test_netns.py
         WORKING_DIRECTORY ${FAULTS_DIR})
add_test(NAME faults.etcd_partition
         COMMAND ${faults_pytest} ${FAULTS_DIR}/test_etcd_partition.py
         WORKING_DIRECTORY ${FAULTS_DIR})
add_test(NAME faults.single_node_kill
         COMMAND ${FAULTS_PYTHON} ${FAULTS_DIR}/faults.py
                 --fault single-kill --cycles 5 --rate 150
                 --warren $<TARGET_FILE:warren>
         WORKING_DIRECTORY ${FAULTS_DIR})

# The fault table of issue 12, one ctest case per fault: the CI trial
# counts in a plain build; a sanitizer build (several times slower, and
# CI's second ctest run) runs a smoke of each kind instead: one trial,
# partitions 20 s, and no capacity probe in mirror-stop (a sanitized
# warren-perf against a sanitized leader measures the sanitizers).
# Entries: fault, trials, lane (see below), extra options.
if(WARREN_SANITIZE)
  set(faults_table
      "kill|2|a|" "pause|1|a|" "divergence|1|a|" "etcd-quorum|1|a|"
      "mirror-stop|1|a|--perf=none" "rolling-restart|1|a|"
      "partition-halves|1|b|--minutes=0.34"
      "partition-leader-mirrors|1|b|--minutes=0.34"
      "partition-leader-etcd|1|b|--minutes=0.34"
      "partition-ring|1|b|--minutes=0.34")
else()
  set(faults_table
      "kill|20|a|" "pause|5|a|" "divergence|5|a|" "etcd-quorum|2|a|"
      "mirror-stop|2|a|" "rolling-restart|2|a|"
      "partition-halves|2|b|" "partition-leader-mirrors|2|b|"
      "partition-leader-etcd|2|b|" "partition-ring|2|b|")
endif()
set(faults_table_tests)
foreach(entry IN LISTS faults_table)
  string(REPLACE "|" ";" f "${entry}")
  list(GET f 0 fault)
  list(GET f 1 trials)
  list(GET f 2 lane)
  list(SUBLIST f 3 -1 extra)
  set(name faults.table.${fault})
  add_test(NAME ${name}
           COMMAND ${FAULTS_PYTHON} ${FAULTS_DIR}/faults.py
                   --fault ${fault} --nodes 3 --etcd 3 --trials ${trials}
                   ${extra} --warren $<TARGET_FILE:warren>
           WORKING_DIRECTORY ${FAULTS_DIR})
  # Two lanes: at most two fault runs at a time (each in its own
  # namespaces and subnet), so the table takes about half its serial
  # time; the partition runs (60 s of mostly waiting each) in one lane,
  # the rest in the other.
  set_tests_properties(${name} PROPERTIES RESOURCE_LOCK faults_lane_${lane})
  list(APPEND faults_table_tests ${name})
endforeach()
add_test(NAME faults.mgmt_leader
         COMMAND ${faults_pytest} ${FAULTS_DIR}/test_mgmt_leader.py
         WORKING_DIRECTORY ${FAULTS_DIR})
add_test(NAME faults.negative_control
         COMMAND ${faults_pytest} ${FAULTS_DIR}/test_negative_control.py
         WORKING_DIRECTORY ${FAULTS_DIR})
add_test(NAME faults.sweep
         COMMAND ${FAULTS_PYTHON} ${FAULTS_DIR}/netns.py --sweep
         WORKING_DIRECTORY ${FAULTS_DIR})
set(faults_tests faults.checker faults.netns faults.etcd_partition
    faults.single_node_kill faults.negative_control faults.sweep
    faults.mgmt_leader
    ${faults_table_tests})
set_tests_properties(${faults_tests} PROPERTIES
  ENVIRONMENT "PYTHONDONTWRITEBYTECODE=1;WARREN_BIN=$<TARGET_FILE:warren>"
  SKIP_RETURN_CODE 77
  TIMEOUT 300
  LABELS faults)
# kill: 20 trials of ~16 s; partitions: 2 runs of 60-75 s plus start and
# drain; the rest below 5 minutes. Bounds with room for a loaded machine.
set_tests_properties(${faults_table_tests} PROPERTIES
  FIXTURES_REQUIRED faults_ns
  TIMEOUT 900
  LABELS "faults;faults_table")
set_tests_properties(faults.table.kill PROPERTIES TIMEOUT 1200)
set_tests_properties(faults.etcd_partition faults.single_node_kill
                     faults.negative_control
                     PROPERTIES
  FIXTURES_REQUIRED faults_ns
  RESOURCE_LOCK faults_lane_b)
# test_netns compares the root namespace before and after, and times its
# own waits: it runs alone.
set_tests_properties(faults.netns PROPERTIES FIXTURES_REQUIRED faults_ns
                     RUN_SERIAL TRUE)
set_tests_properties(faults.sweep PROPERTIES FIXTURES_CLEANUP faults_ns)
