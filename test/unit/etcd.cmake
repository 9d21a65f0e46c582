# cluster/etcd*: the etcd client, tested against real etcd members that
# each case starts and kills (etcd-server and etcd-client, installed by
# .ci/deps; a case fails, saying so, when etcd is missing). Members keep
# their data on tmpfs when the machine has one.
add_library(warren_etcd_tutil STATIC unit/test_etcd_util.c)
target_link_libraries(warren_etcd_tutil PUBLIC warren_etcd warren_t)
wr_unit_test(test_etcd unit/test_etcd.c LIBS warren_etcd_tutil)

file(STRINGS unit/test_etcd.c _etcd_cases REGEX "^T_CASE\\(")
foreach(line ${_etcd_cases})
  string(REGEX REPLACE "^T_CASE\\(([A-Za-z0-9_]+)\\).*" "\\1" case "${line}")
  set_tests_properties(test_etcd.${case} PROPERTIES TIMEOUT 120)
  if(EXISTS /dev/shm)
    set_tests_properties(test_etcd.${case} PROPERTIES
                         ENVIRONMENT "TMPDIR=/dev/shm")
  endif()
endforeach()
