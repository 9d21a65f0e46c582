/*
 * mgmt.h: the management API (server/mgmt/), as the executable starts
 * and stops it. Nothing else outside server/mgmt/ includes a header of
 * it: the broker does not know it is there.
 */
#ifndef WARREN_SERVER_MGMT_H
#define WARREN_SERVER_MGMT_H

#include "server/server.h"

/* Starts the listener on management.tcp.ip:management.tcp.port (0: a
 * port the kernel chooses, logged as "listening on HOST:PORT (http)")
 * and the statistics timer. Returns WR_OK, or WR_ERR (logged) when the
 * listener cannot be opened, unless management.tcp.optional is set and
 * the port is in use: then the broker runs without the API. */
int mgmt_start(struct server *s);
/* Closes the listener and every HTTP connection, frees everything. */
void mgmt_stop(struct server *s);

#endif
