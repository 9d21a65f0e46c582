# cluster/ above the etcd client: joining, membership and vhost leadership,
# tested against a real etcd member each case starts (test_etcd_util.c).
wr_unit_test(test_cluster unit/test_cluster.c
             LIBS warren_cluster warren_etcd_tutil)

file(STRINGS unit/test_cluster.c _cluster_cases REGEX "^T_CASE\\(")
foreach(line ${_cluster_cases})
  string(REGEX REPLACE "^T_CASE\\(([A-Za-z0-9_]+)\\).*" "\\1" case "${line}")
  set_tests_properties(test_cluster.${case} PROPERTIES TIMEOUT 120)
  if(EXISTS /dev/shm)
    set_tests_properties(test_cluster.${case} PROPERTIES
                         ENVIRONMENT "TMPDIR=/dev/shm")
  endif()
endforeach()

# cluster/peer.c: the node-to-node handshake, no etcd needed.
wr_unit_test(test_peer unit/test_peer.c LIBS warren_cluster)

# cluster/httpc.c: the management forwarding client, against servers the
# cases run on their own loop (good, hostile, silent, absent).
wr_unit_test(test_httpc unit/test_httpc.c
             LIBS warren_cluster warren_etcd_tutil)

# fuzz_peer's seeds replayed by ctest with any compiler (the libFuzzer
# build itself is registered in test/fuzz/fuzz.cmake).
add_executable(replay_fuzz_peer fuzz/fuzz_peer.c fuzz/replay_main.c)
target_link_libraries(replay_fuzz_peer PRIVATE warren_cluster)
add_test(NAME fuzz_replay.fuzz_peer
         COMMAND replay_fuzz_peer
                 ${CMAKE_CURRENT_SOURCE_DIR}/fuzz/corpus/fuzz_peer)

# fuzz_repl's seeds (replication frames and records) replayed by ctest.
add_executable(replay_fuzz_repl fuzz/fuzz_repl.c fuzz/replay_main.c)
target_link_libraries(replay_fuzz_repl PRIVATE warren_cluster warren_store)
add_test(NAME fuzz_replay.fuzz_repl
         COMMAND replay_fuzz_repl
                 ${CMAKE_CURRENT_SOURCE_DIR}/fuzz/corpus/fuzz_repl)

# cluster/mirror.c: a copy's delivery counts (DCNT) fed from a leader's
# log, bounded under churn (tmpfs: thousands of small appends).
wr_unit_test(test_mirror unit/test_mirror.c
             LIBS warren_cluster warren_store_tutil)
if(EXISTS /dev/shm)
  set_tests_properties(
    test_mirror.dcounts_stay_bounded_under_churn_and_keep_the_live_counts
    test_mirror.dcounts_survive_compaction_restart_and_take_over
    test_mirror.a_long_file_found_at_open_is_rewritten
    PROPERTIES ENVIRONMENT "TMPDIR=/dev/shm")
endif()
