wr_unit_test(test_base unit/test_base.c LIBS warren_base)
wr_unit_test(test_ring unit/test_ring.c LIBS warren_base)
