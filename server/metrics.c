/* Prometheus metrics: lock-free counters per (route, status) and a latency histogram
 * per route, rendered in the text exposition format 0.0.4. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "server/models.h"
#include "server/srv.h"

static const double buckets[] = {0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05,
                                 0.1,    0.25,  0.5,    1,     2.5,  5,     10};
#define NBUCKETS (sizeof buckets / sizeof buckets[0])

struct srv_metrics {
    atomic_ullong requests[SRV_R_COUNT][SRV_S_COUNT];
    atomic_ullong hist[SRV_R_COUNT][NBUCKETS + 1]; /* last: +Inf */
    atomic_ullong sum_us[SRV_R_COUNT];
    atomic_ullong bytes_in[SRV_R_COUNT];
    atomic_ullong bytes_out[SRV_R_COUNT];
    atomic_ullong protocol_errors[200]; /* answered by libmicrohttpd itself, by status - 400 */
};

struct srv_metrics *srv_metrics_new(void) { return calloc(1, sizeof(struct srv_metrics)); }
void srv_metrics_free(struct srv_metrics *m) { free(m); }

void srv_metrics_observe(struct srv_metrics *m, enum srv_route route, unsigned status,
                         double seconds, size_t bytes_in, size_t bytes_out)
{
    atomic_fetch_add(&m->requests[route][srv_status_slot(status)], 1);
    size_t b = 0;
    while (b < NBUCKETS && seconds > buckets[b])
        b++;
    atomic_fetch_add(&m->hist[route][b], 1);
    atomic_fetch_add(&m->sum_us[route], (unsigned long long)(seconds * 1e6));
    atomic_fetch_add(&m->bytes_in[route], bytes_in);
    atomic_fetch_add(&m->bytes_out[route], bytes_out);
}

void srv_metrics_protocol_error(struct srv_metrics *m, unsigned status)
{
    if (status >= 400 && status < 600)
        atomic_fetch_add(&m->protocol_errors[status - 400], 1);
}

/* Room for n more bytes and a NUL; 0 (and sb->oom) when it cannot be had. */
static int sb_reserve(struct srv_sb *sb, size_t n)
{
    if (sb->oom)
        return 0;
    if (sb->cap - sb->len > n)
        return 1;
    size_t ncap = (sb->cap ? sb->cap * 2 : 4096) + n + 1;
    char *np = realloc(sb->p, ncap);
    if (!np) {
        sb->oom = 1;
        return 0;
    }
    sb->p = np;
    sb->cap = ncap;
    return 1;
}

void srv_sb_printf(struct srv_sb *sb, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (n < 0)
        sb->oom = 1;
    if (n < 0 || !sb_reserve(sb, (size_t)n))
        return;
    va_start(ap, fmt);
    vsnprintf(sb->p + sb->len, sb->cap - sb->len, fmt, ap);
    va_end(ap);
    sb->len += (size_t)n;
}

void srv_sb_append(struct srv_sb *sb, const void *data, size_t n)
{
    if (!sb_reserve(sb, n))
        return;
    memcpy(sb->p + sb->len, data, n);
    sb->len += n;
    sb->p[sb->len] = 0;
}

/* "200", or "other" for a code outside the status list */
static const char *code_label(int slot)
{
    static char codes[SRV_S_COUNT][8];
    static atomic_int done;
    if (!atomic_load(&done)) {
        for (int c = 0; c < SRV_S_OTHER; c++)
            snprintf(codes[c], sizeof codes[c], "%u", srv_status_code(c));
        snprintf(codes[SRV_S_OTHER], sizeof codes[0], "other");
        atomic_store(&done, 1);
    }
    return codes[slot];
}

char *srv_metrics_render(const struct srv *s, size_t *len)
{
    struct srv_metrics *m = s->metrics;
    struct srv_sb sb = {0};
    srv_sb_printf(&sb, "# HELP relud_requests_total HTTP requests by route pattern and status.\n"
                       "# TYPE relud_requests_total counter\n");
    for (int r = 0; r < SRV_R_COUNT; r++)
        for (int c = 0; c < SRV_S_COUNT; c++) {
            unsigned long long v = atomic_load(&m->requests[r][c]);
            if (v)
                srv_sb_printf(&sb, "relud_requests_total{route=\"%s\",code=\"%s\"} %llu\n",
                              srv_route_patterns[r], code_label(c), v);
        }
    srv_sb_printf(&sb, "# HELP relud_errors_total Error replies by class.\n"
                       "# TYPE relud_errors_total counter\n");
    for (int c = 0; c < SRV_S_COUNT; c++) {
        if (c == SRV_S_OTHER || srv_status_code(c) < 400)
            continue;
        unsigned long long v = 0;
        for (int r = 0; r < SRV_R_COUNT; r++)
            v += atomic_load(&m->requests[r][c]);
        srv_sb_printf(&sb, "relud_errors_total{class=\"%s\"} %llu\n", srv_status_class(c), v);
    }
    srv_sb_printf(&sb, "# HELP relud_request_duration_seconds Request latency by route pattern.\n"
                       "# TYPE relud_request_duration_seconds histogram\n");
    for (int r = 0; r < SRV_R_COUNT; r++) {
        unsigned long long cum = 0;
        for (size_t b = 0; b <= NBUCKETS; b++)
            cum += atomic_load(&m->hist[r][b]);
        if (!cum)
            continue;
        unsigned long long acc = 0;
        for (size_t b = 0; b < NBUCKETS; b++) {
            acc += atomic_load(&m->hist[r][b]);
            srv_sb_printf(&sb,
                          "relud_request_duration_seconds_bucket{route=\"%s\",le=\"%g\"} %llu\n",
                          srv_route_patterns[r], buckets[b], acc);
        }
        srv_sb_printf(&sb,
                      "relud_request_duration_seconds_bucket{route=\"%s\",le=\"+Inf\"} %llu\n"
                      "relud_request_duration_seconds_sum{route=\"%s\"} %.6f\n"
                      "relud_request_duration_seconds_count{route=\"%s\"} %llu\n",
                      srv_route_patterns[r], cum, srv_route_patterns[r],
                      (double)atomic_load(&m->sum_us[r]) / 1e6, srv_route_patterns[r], cum);
    }
    srv_sb_printf(&sb, "# HELP relud_request_bytes_total Request body bytes received.\n"
                       "# TYPE relud_request_bytes_total counter\n");
    for (int r = 0; r < SRV_R_COUNT; r++)
        if (atomic_load(&m->bytes_in[r]))
            srv_sb_printf(&sb, "relud_request_bytes_total{route=\"%s\"} %llu\n",
                          srv_route_patterns[r], atomic_load(&m->bytes_in[r]));
    srv_sb_printf(&sb, "# HELP relud_response_bytes_total Response body bytes sent.\n"
                       "# TYPE relud_response_bytes_total counter\n");
    for (int r = 0; r < SRV_R_COUNT; r++)
        if (atomic_load(&m->bytes_out[r]))
            srv_sb_printf(&sb, "relud_response_bytes_total{route=\"%s\"} %llu\n",
                          srv_route_patterns[r], atomic_load(&m->bytes_out[r]));
    srv_sb_printf(&sb, "# HELP relud_http_protocol_errors_total Malformed requests libmicrohttpd "
                       "answered itself, before relud saw them, by status.\n"
                       "# TYPE relud_http_protocol_errors_total counter\n");
    for (int c = 0; c < 200; c++)
        if (atomic_load(&m->protocol_errors[c]))
            srv_sb_printf(&sb, "relud_http_protocol_errors_total{code=\"%d\"} %llu\n", c + 400,
                          atomic_load(&m->protocol_errors[c]));
    srv_sb_printf(&sb,
                  "# HELP relud_inflight_requests Requests received and not yet completed.\n"
                  "# TYPE relud_inflight_requests gauge\n"
                  "relud_inflight_requests %ld\n"
                  "# HELP relud_open_connections Client connections open.\n"
                  "# TYPE relud_open_connections gauge\n"
                  "relud_open_connections %ld\n"
                  "# HELP relud_buffered_body_bytes Request body bytes held in memory.\n"
                  "# TYPE relud_buffered_body_bytes gauge\n"
                  "relud_buffered_body_bytes %zu\n"
                  "# HELP relud_ready 1 when ready, 0 while starting or draining.\n"
                  "# TYPE relud_ready gauge\n"
                  "relud_ready %d\n",
                  atomic_load(&s->inflight), atomic_load(&s->conns), atomic_load(&s->buffered),
                  atomic_load(&s->ready) == 1);
    srv_sb_printf(
        &sb,
        "# HELP relud_build_info relud's version and the BLAS library and kernel in use.\n"
        "# TYPE relud_build_info gauge\n"
        "relud_build_info{version=\"%s\",blas=\"%s\",blas_core=\"%s\","
        "blas_core_source=\"%s\"} 1\n",
        RELUD_VERSION, s->blas.version, s->blas.core, s->blas.source ? s->blas.source : "");
    srv_models_render_metrics(s->models, &sb);
    if (sb.oom) {
        free(sb.p);
        return NULL;
    }
    *len = sb.len;
    return sb.p;
}
