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

/* The daemon's state the text shows as gauges. */
struct srv_gauges {
    long inflight, conns;
    size_t buffered;
    int ready;
    const struct srv_blas *blas;
};
/* The exposition text (malloc'd), or NULL when out of memory. */
char *srv_metrics_render(struct srv_metrics *m, const struct srv_gauges *g,
                         struct srv_models *models, size_t *len);

#endif
