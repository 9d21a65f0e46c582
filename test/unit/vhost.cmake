wr_unit_test(test_vhost unit/test_vhost.c LIBS warren_vhost)
wr_unit_test(test_delayheap unit/test_delayheap.c LIBS warren_vhost)
