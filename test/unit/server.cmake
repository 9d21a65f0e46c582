# Unit tests of server/'s socket-free parts: the unacked list and the
# confirm list (each executable pulls only those objects out of
# warren_server).
wr_unit_test(test_unacked unit/test_unacked.c LIBS warren_server)
wr_unit_test(test_confirm unit/test_confirm.c LIBS warren_server)
