# Unit tests of server/'s socket-free parts: the unacked list and the
# confirm list (each executable pulls only those objects out of
# warren_server).
wr_unit_test(test_unacked unit/test_unacked.c LIBS warren_server)
wr_unit_test(test_confirm unit/test_confirm.c LIBS warren_server)
# The Prometheus exposition format's escaping and values (mgmt_prom.c).
wr_unit_test(test_prom unit/test_prom.c LIBS warren_mgmt)
