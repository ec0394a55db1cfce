/* The transport (libmicrohttpd): start, drain, and the one call that runs a route's handler
 * (the daemon through it, the in-process tests and fuzz targets directly). */
#ifndef RELUD_HTTP_H
#define RELUD_HTTP_H

#include <stddef.h>

#include "server/srv.h"

/* Starts listening (s->cfg host/port, threads, limits); fills s->port. 0, or -1 with err. */
int srv_start(struct srv *s, char *err, size_t errlen);
/* Flips readiness, stops accepting, waits for in-flight requests up to drain_timeout
 * (cutting passes still running near its end), and stops. */
void srv_drain_and_stop(struct srv *s);
/* Runs req->route's handler into rep. */
void srv_run_handler(struct srv_req *req, struct srv_reply *rep);

#endif
