/* Prometheus metrics: lock-free counters per (route, status), a latency histogram per
 * route, the requests libmicrohttpd answered itself, gauges, build info and the model
 * repository's series, rendered in the text exposition format 0.0.4. */
#ifndef RELUD_METRICS_H
#define RELUD_METRICS_H

#include <stddef.h>

#include "server/blas.h"
#include "server/routes.h"

struct srv_metrics;
struct srv_models;

struct srv_metrics *srv_metrics_new(void);
void srv_metrics_free(struct srv_metrics *m);
void srv_metrics_observe(struct srv_metrics *m, enum srv_route route, unsigned status,
                         double seconds, size_t bytes_in, size_t bytes_out);
/* A request libmicrohttpd answered itself (malformed, header too large...), by status. */
void srv_metrics_protocol_error(struct srv_metrics *m, unsigned status);
/* A request refused for its credentials: an access key (admin 0) or the admin token
 * (admin 1), missing (wrong 0) or wrong (wrong 1). */
void srv_metrics_auth_failure(struct srv_metrics *m, int admin, int wrong);

/* The daemon's state the text shows as gauges. */
struct srv_gauges {
    long inflight, conns;
    size_t buffered;
    int ready;
    const struct srv_blas *blas;
    int threads, blas_threads, batch_workers; /* relud_build_info's labels */
};
/* The exposition text (malloc'd), or NULL when out of memory. */
char *srv_metrics_render(struct srv_metrics *m, const struct srv_gauges *g,
                         struct srv_models *models, size_t *len);

#endif
