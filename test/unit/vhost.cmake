wr_unit_test(test_vhost unit/test_vhost.c LIBS warren_vhost)
wr_unit_test(test_dedup unit/test_dedup.c LIBS warren_vhost)
