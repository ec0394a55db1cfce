/* GET /v2, /v2/health/live, /v2/health/ready, /metrics. */
#include <stdlib.h>

#include "server/batch.h"
#include "server/metrics.h"
#include "server/srv.h"

/* Extensions of the Open Inference Protocol relud implements (GET /v2): three of
 * Triton's, and relud's own "gradients" (backward pass, loss, clipping, stats through
 * infer) and "model_put" (PUT/DELETE /v1/models/{name}). */
static const char *const extensions[] = {"binary_tensor_data", "model_repository", "statistics",
                                         "gradients", "model_put"};

void srv_h_server_meta(struct srv_req *req, struct srv_reply *rep)
{
    (void)req;
    struct srv_jw w;
    srv_jw_init(&w, 256, 0);
    srv_jw_obj(&w);
    srv_jw_kstr(&w, "name", "relud");
    srv_jw_kstr(&w, "version", RELUD_VERSION);
    srv_jw_key(&w, "extensions");
    srv_jw_arr(&w);
    for (size_t i = 0; i < sizeof extensions / sizeof *extensions; i++)
        srv_jw_str(&w, extensions[i]);
    srv_jw_end(&w);
    srv_jw_end(&w);
    srv_reply_jw(rep, 200, &w);
}

static void flag_reply(struct srv_reply *rep, const char *key)
{
    struct srv_jw w;
    srv_jw_init(&w, 32, 0);
    srv_jw_obj(&w);
    srv_jw_kbool(&w, key, 1);
    srv_jw_end(&w);
    srv_reply_jw(rep, 200, &w);
}

void srv_h_live(struct srv_req *req, struct srv_reply *rep)
{
    (void)req;
    flag_reply(rep, "live");
}

void srv_h_ready(struct srv_req *req, struct srv_reply *rep)
{
    int r = atomic_load(&req->srv->ready);
    if (r == 1) {
        flag_reply(rep, "ready");
        return;
    }
    srv_reply_error(rep, 503, r == 0 ? "starting: loading models" : "draining: shutting down");
    srv_reply_header(rep, "Retry-After", "1");
}

void srv_h_metrics(struct srv_req *req, struct srv_reply *rep)
{
    struct srv *s = req->srv;
    struct srv_gauges g = {atomic_load(&s->inflight),
                           atomic_load(&s->conns),
                           atomic_load(&s->buffered),
                           atomic_load(&s->ready),
                           &s->blas,
                           s->cfg.threads,
                           s->cfg.blas_threads,
                           srv_engine_workers(s->engine)};
    size_t len;
    char *text = srv_metrics_render(s->metrics, &g, s->models, &len);
    if (!text) {
        srv_reply_error(rep, 503, "out of memory rendering metrics");
        return;
    }
    srv_reply_body(rep, 200, "text/plain; version=0.0.4; charset=utf-8", text, len);
}
