wr_unit_test(test_vhost unit/test_vhost.c LIBS warren_vhost)
