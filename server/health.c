/* GET /v2, /v2/health/live, /v2/health/ready, /metrics. */
#include <cjson/cJSON.h>
#include <stdlib.h>

#include "server/srv.h"

/* Extensions of the Open Inference Protocol relud implements (GET /v2): three of
 * Triton's, and relud's own "gradients" (backward pass, loss, clipping, stats through
 * infer) and "model_put" (PUT/DELETE /v1/models/{name}). */
static const char *const extensions[] = {"binary_tensor_data", "model_repository", "statistics",
                                         "gradients", "model_put"};

void srv_h_server_meta(struct srv_req *req, struct srv_reply *rep)
{
    (void)req;
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "name", "relud");
    cJSON_AddStringToObject(o, "version", RELUD_VERSION);
    cJSON_AddItemToObject(
        o, "extensions",
        cJSON_CreateStringArray(extensions, sizeof extensions / sizeof *extensions));
    srv_reply_json(rep, 200, o);
}

void srv_h_live(struct srv_req *req, struct srv_reply *rep)
{
    (void)req;
    cJSON *o = cJSON_CreateObject();
    cJSON_AddTrueToObject(o, "live");
    srv_reply_json(rep, 200, o);
}

void srv_h_ready(struct srv_req *req, struct srv_reply *rep)
{
    int r = atomic_load(&req->srv->ready);
    if (r == 1) {
        cJSON *o = cJSON_CreateObject();
        cJSON_AddTrueToObject(o, "ready");
        srv_reply_json(rep, 200, o);
        return;
    }
    srv_reply_error(rep, 503, r == 0 ? "starting: loading models" : "draining: shutting down");
    srv_reply_header(rep, "Retry-After", "1");
}

void srv_h_metrics(struct srv_req *req, struct srv_reply *rep)
{
    size_t len;
    char *text = srv_metrics_render(req->srv, &len);
    if (!text) {
        srv_reply_error(rep, 503, "out of memory rendering metrics");
        return;
    }
    srv_reply_body(rep, 200, "text/plain; version=0.0.4; charset=utf-8", text, len);
}
