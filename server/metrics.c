/* Prometheus metrics: lock-free counters per (route, status) and a latency histogram
 * per route, rendered in the text exposition format 0.0.4. */
#include <fcntl.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "config/cfg.h"
#include "server/metrics.h"
#include "server/models.h"
#include "server/sb.h"
#include "server/status.h"

#define NBUCKETS SRV_LAT_BUCKETS

struct srv_metrics {
    atomic_ullong requests[SRV_R_COUNT][SRV_S_COUNT];
    atomic_ullong hist[SRV_R_COUNT][NBUCKETS + 1]; /* last: +Inf */
    atomic_ullong sum_us[SRV_R_COUNT];
    atomic_ullong bytes_in[SRV_R_COUNT];
    atomic_ullong bytes_out[SRV_R_COUNT];
    atomic_ullong protocol_errors[200]; /* answered by libmicrohttpd itself, by status - 400 */
    atomic_ullong auth_failures[2][2];  /* [admin][wrong] */
};

struct srv_metrics *srv_metrics_new(void) { return calloc(1, sizeof(struct srv_metrics)); }
void srv_metrics_free(struct srv_metrics *m) { free(m); }

void srv_metrics_observe(struct srv_metrics *m, enum srv_route route, unsigned status,
                         double seconds, size_t bytes_in, size_t bytes_out)
{
    atomic_fetch_add(&m->requests[route][srv_status_slot(status)], 1);
    atomic_fetch_add(&m->hist[route][srv_latency_bucket(seconds)], 1);
    atomic_fetch_add(&m->sum_us[route], (unsigned long long)(seconds * 1e6));
    atomic_fetch_add(&m->bytes_in[route], bytes_in);
    atomic_fetch_add(&m->bytes_out[route], bytes_out);
}

void srv_metrics_protocol_error(struct srv_metrics *m, unsigned status)
{
    if (status >= 400 && status < 600)
        atomic_fetch_add(&m->protocol_errors[status - 400], 1);
}

void srv_metrics_auth_failure(struct srv_metrics *m, int admin, int wrong)
{
    if (m)
        atomic_fetch_add(&m->auth_failures[admin != 0][wrong != 0], 1);
}

/* A model's histogram from n per-bucket counts (the last is +Inf) and their sum. */
static void histogram(struct srv_sb *sb, const char *family, const char *model, const double *le,
                      const atomic_ullong *counts, int n, double sum)
{
    unsigned long long cum = 0;
    for (int i = 0; i < n; i++) {
        cum += atomic_load(&counts[i]);
        if (i < n - 1)
            srv_sb_printf(sb, "%s_bucket{model=\"%s\",le=\"%g\"} %llu\n", family, model, le[i],
                          cum);
        else
            srv_sb_printf(sb, "%s_bucket{model=\"%s\",le=\"+Inf\"} %llu\n", family, model, cum);
    }
    srv_sb_printf(sb, "%s_sum{model=\"%s\"} %.9g\n%s_count{model=\"%s\"} %llu\n", family, model,
                  sum, family, model, cum);
}

/* A model that batches, or did: its queue series are worth a scrape. */
static int batching(const struct srv_model_stats *st, const struct srv_model *model)
{
    unsigned long long queued = 0;
    for (int i = 0; i < SRV_QUEUE_HIST; i++)
        queued += atomic_load(&st->batch.queue_hist[i]);
    return (model && model->batcher) || queued || atomic_load(&st->batch.rejected_full) ||
           atomic_load(&st->batch.rejected_timeout);
}

/* The repository's series, one family at a time: a visitor per family. */
struct model_series {
    struct srv_sb *sb;
    int family;
};

static void model_series(void *ctx, const char *name, enum srv_model_state state,
                         const char *reason, const struct srv_model_stats *st,
                         const struct srv_model *model)
{
    struct model_series *ms = ctx;
    struct srv_sb *sb = ms->sb;
    (void)reason, (void)model;
    switch (ms->family) {
    case 0:
        srv_sb_printf(sb, "relud_model_requests_total{model=\"%s\",outcome=\"success\"} %llu\n",
                      name, atomic_load(&st->success_count));
        srv_sb_printf(sb, "relud_model_requests_total{model=\"%s\",outcome=\"failure\"} %llu\n",
                      name, atomic_load(&st->fail_count));
        break;
    case 1:
        histogram(sb, "relud_model_request_duration_seconds", name, srv_latency_le, st->latency,
                  SRV_LAT_BUCKETS + 1,
                  (double)(atomic_load(&st->success_ns) + atomic_load(&st->fail_ns)) / 1e9);
        break;
    case 2:
        srv_sb_printf(sb, "relud_model_inferences_total{model=\"%s\"} %llu\n", name,
                      atomic_load(&st->inference_count));
        break;
    case 3:
        srv_sb_printf(sb, "relud_model_ready{model=\"%s\"} %d\n", name, state == SRV_MODEL_READY);
        break;
    case 4:
        histogram(sb, "relud_model_batch_size", name, srv_batch_hist_le, st->batch.size_hist,
                  SRV_BATCH_HIST, (double)atomic_load(&st->batch.size_sum));
        break;
    case 5:
        if (!batching(st, model))
            break;
        histogram(sb, "relud_model_queue_seconds", name, srv_queue_hist_le, st->batch.queue_hist,
                  SRV_QUEUE_HIST, (double)atomic_load(&st->batch.queue_sum_ns) / 1e9);
        break;
    default:
        if (!batching(st, model))
            break;
        srv_sb_printf(sb, "relud_model_rejected_total{model=\"%s\",reason=\"queue_full\"} %llu\n",
                      name, atomic_load(&st->batch.rejected_full));
        srv_sb_printf(sb, "relud_model_rejected_total{model=\"%s\",reason=\"timeout\"} %llu\n",
                      name, atomic_load(&st->batch.rejected_timeout));
    }
}

static void render_models(struct srv_models *models, struct srv_sb *sb)
{
    static const char *const heads[] = {
        "# HELP relud_model_requests_total Inference requests per model, by outcome.\n"
        "# TYPE relud_model_requests_total counter\n",
        "# HELP relud_model_request_duration_seconds Time spent in inference requests per "
        "model.\n# TYPE relud_model_request_duration_seconds histogram\n",
        "# HELP relud_model_inferences_total Samples inferred per model.\n"
        "# TYPE relud_model_inferences_total counter\n",
        "# HELP relud_model_ready 1 when the model is ready to serve.\n"
        "# TYPE relud_model_ready gauge\n",
        "# HELP relud_model_batch_size Rows per pass (executions) per model: batches, and "
        "requests run alone.\n# TYPE relud_model_batch_size histogram\n",
        "# HELP relud_model_queue_seconds Time requests waited in a model's batch queue.\n"
        "# TYPE relud_model_queue_seconds histogram\n",
        "# HELP relud_model_rejected_total Requests a model's batch queue refused: queue_full "
        "(max_queue_size) or timeout (still queued past their timeout).\n"
        "# TYPE relud_model_rejected_total counter\n",
    };
    for (int f = 0; f < (int)(sizeof heads / sizeof *heads); f++) {
        struct model_series ms = {sb, f};
        srv_sb_puts(sb, heads[f]);
        srv_models_foreach(models, model_series, &ms);
    }
}

/* A small /proc file into buf (NUL-terminated); its length, or -1. With open and read, not
 * stdio: nothing here allocates, so a scrape under memory pressure is whole or a 503. */
static ssize_t proc_read(const char *path, char *buf, size_t cap)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return -1;
    size_t n = 0;
    ssize_t r;
    while (n < cap - 1 && (r = read(fd, buf + n, cap - 1 - n)) > 0)
        n += (size_t)r;
    close(fd);
    buf[n] = 0;
    return (ssize_t)n;
}

/* Open descriptors: the entries of /proc/self/fd, read with getdents64 (no allocation). */
static long count_fds(void)
{
    int fd = open("/proc/self/fd", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0)
        return -1;
    long n = 0;
    char buf[4096];
    long got;
    while ((got = syscall(SYS_getdents64, fd, buf, sizeof buf)) > 0)
        for (long off = 0; off < got;) {
            const char *name = buf + off + 19; /* d_ino 8, d_off 8, d_reclen 2, d_type 1 */
            unsigned short reclen;
            memcpy(&reclen, buf + off + 16, sizeof reclen);
            if (name[0] != '.')
                n++;
            off += reclen;
        }
    close(fd);
    return n - 1; /* not the descriptor reading it */
}

/* The standard process_* series, as Prometheus's client libraries name them, from /proc
 * (Linux). A series whose source cannot be read is left out. */
static void render_process(struct srv_sb *sb)
{
    long tck = sysconf(_SC_CLK_TCK), page = sysconf(_SC_PAGESIZE);
    char buf[4096];
    const char *p = proc_read("/proc/self/stat", buf, sizeof buf) > 0 ? strrchr(buf, ')') : NULL;
    /* after the ")" closing the command name: field 3 (state) onwards */
    unsigned long long v[24] = {0};
    int k = 0;
    for (p = p ? p + 2 : NULL; p && *p && k < 24; k++) {
        while (*p == ' ')
            p++;
        v[k] = strtoull(p, NULL, 10);
        while (*p && *p != ' ')
            p++;
    }
    if (k >= 22 && tck > 0) { /* utime 14, stime 15, starttime 22, vsize 23, rss 24 */
        unsigned long long btime = 0;
        if (proc_read("/proc/stat", buf, sizeof buf) > 0) {
            const char *b = strstr(buf, "\nbtime ");
            btime = b ? strtoull(b + 7, NULL, 10) : 0;
        }
        srv_sb_printf(sb,
                      "# HELP process_cpu_seconds_total Total user and system CPU time spent in "
                      "seconds.\n# TYPE process_cpu_seconds_total counter\n"
                      "process_cpu_seconds_total %.2f\n"
                      "# HELP process_virtual_memory_bytes Virtual memory size in bytes.\n"
                      "# TYPE process_virtual_memory_bytes gauge\nprocess_virtual_memory_bytes "
                      "%llu\n"
                      "# HELP process_resident_memory_bytes Resident memory size in bytes.\n"
                      "# TYPE process_resident_memory_bytes gauge\n"
                      "process_resident_memory_bytes %llu\n",
                      (double)(v[11] + v[12]) / (double)tck, v[20],
                      v[21] * (unsigned long long)page);
        if (btime)
            srv_sb_printf(sb,
                          "# HELP process_start_time_seconds Start time of the process since "
                          "unix epoch in seconds.\n# TYPE process_start_time_seconds gauge\n"
                          "process_start_time_seconds %.2f\n",
                          (double)btime + (double)v[19] / (double)tck);
    }
    long fds = count_fds();
    if (fds >= 0)
        srv_sb_printf(sb,
                      "# HELP process_open_fds Number of open file descriptors.\n"
                      "# TYPE process_open_fds gauge\nprocess_open_fds %ld\n",
                      fds);
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0)
        srv_sb_printf(sb,
                      "# HELP process_max_fds Maximum number of open file descriptors.\n"
                      "# TYPE process_max_fds gauge\nprocess_max_fds %llu\n",
                      (unsigned long long)rl.rlim_cur);
}

char *srv_metrics_render(struct srv_metrics *m, const struct srv_gauges *g,
                         struct srv_models *models, size_t *len)
{
    struct srv_sb sb;
    srv_sb_init(&sb, 0);
    srv_sb_printf(&sb, "# HELP relud_requests_total HTTP requests by route pattern and status.\n"
                       "# TYPE relud_requests_total counter\n");
    for (int r = 0; r < SRV_R_COUNT; r++)
        for (int c = 0; c < SRV_S_COUNT; c++) {
            unsigned long long v = atomic_load(&m->requests[r][c]);
            if (v)
                srv_sb_printf(&sb, "relud_requests_total{route=\"%s\",code=\"%s\"} %llu\n",
                              srv_route_patterns[r], srv_status_label(c), v);
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
                          srv_route_patterns[r], srv_latency_le[b], acc);
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
    srv_sb_printf(&sb, "# HELP relud_auth_failures_total Requests refused for their credentials: "
                       "an access key or the admin token, missing or wrong.\n"
                       "# TYPE relud_auth_failures_total counter\n");
    for (int a = 0; a < 2; a++)
        for (int w = 0; w < 2; w++)
            srv_sb_printf(&sb, "relud_auth_failures_total{credential=\"%s\",reason=\"%s\"} %llu\n",
                          a ? "admin_token" : "api_key", w ? "wrong" : "missing",
                          atomic_load(&m->auth_failures[a][w]));
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
                  g->inflight, g->conns, g->buffered, g->ready == 1);
    srv_sb_printf(
        &sb,
        "# HELP relud_build_info relud's version, the BLAS library and kernel in use, and its "
        "threads.\n"
        "# TYPE relud_build_info gauge\n"
        "relud_build_info{version=\"%s\",blas=\"%s\",blas_core=\"%s\","
        "blas_core_source=\"%s\",threads=\"%d\",blas_threads=\"%d\",batch_workers=\"%d\"} 1\n",
        RELUD_VERSION, g->blas->version, g->blas->core, g->blas->source ? g->blas->source : "",
        g->threads, g->blas_threads, g->batch_workers);
    render_models(models, &sb);
    render_process(&sb);
    return srv_sb_take(&sb, len);
}
