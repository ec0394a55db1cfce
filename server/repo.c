/* Model control: Triton's repository extension (index, load, unload) and relud's
 * PUT/DELETE /v1/models/{name}; GET /v1/models lists. Control needs
 * "Authorization: Bearer <admin_token>"; with no token configured it answers 403. */
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "server/auth.h"
#include "server/json.h"
#include "server/metrics.h"
#include "server/models.h"
#include "server/multipart.h"
#include "server/srv.h"
#include "server/status.h"

int srv_admin_authorized(struct srv_req *req, struct srv_reply *rep, const char *what)
{
    const char *tok = req->srv->cfg.admin_token;
    if (!tok || !tok[0]) {
        srv_reply_error(rep, 403,
                        "%s is disabled: no admin_token is configured (set admin_token or "
                        "admin_token_file)",
                        what);
        return 0;
    }
    const char *h = srv_req_header(req, "Authorization");
    /* the auth scheme is case-insensitive (RFC 7235 2.1); the token is not */
    /* compared as digests: the time taken says nothing about the token (auth.h) */
    if (!h || strncasecmp(h, "Bearer ", 7) != 0 || !srv_secret_eq(h + 7, tok)) {
        srv_metrics_auth_failure(req->srv->metrics, 1, h != NULL);
        srv_reply_error(rep, 401, "%s",
                        h ? "Authorization: wrong bearer token"
                          : "Authorization: \"Bearer <admin_token>\" required");
        srv_reply_header(rep, "WWW-Authenticate", "Bearer realm=\"relud\"");
        return 0;
    }
    return 1;
}

/* {"name": ..., "state": ...} with status, or the error. */
static void reply_state(struct srv_reply *rep, enum nn_status st, unsigned status, const char *name,
                        const char *state, const struct nn_err *err)
{
    if (st) {
        srv_reply_nn_error(rep, st, err);
        return;
    }
    struct srv_jw w;
    srv_jw_init(&w, 128, 0);
    srv_jw_obj(&w);
    srv_jw_kstr(&w, "name", name);
    srv_jw_kstr(&w, "state", state);
    srv_jw_end(&w);
    srv_reply_jw(rep, status, &w);
}

struct index_ctx {
    struct srv_jw *w;
    int ready_only;
};

static void index_entry(void *ctx, const char *name, enum srv_model_state state, const char *reason,
                        const struct srv_model_stats *stats, const struct srv_model *model)
{
    struct index_ctx *c = ctx;
    (void)stats, (void)model;
    if (c->ready_only && state != SRV_MODEL_READY)
        return;
    srv_jw_obj(c->w);
    srv_jw_kstr(c->w, "name", name);
    srv_jw_kstr(c->w, "version", "1");
    srv_jw_kstr(c->w, "state", srv_model_state_names[state]);
    srv_jw_kstr(c->w, "reason", reason);
    srv_jw_end(c->w);
}

/* The repository index array, as Triton's POST /v2/repository/index. */
static void write_index(struct srv_models *m, int ready_only, struct srv_jw *w)
{
    struct index_ctx c = {w, ready_only};
    srv_jw_arr(w);
    srv_models_foreach(m, index_entry, &c);
    srv_jw_end(w);
}

/* The index only reads: open as GET /v1/models is (Triton needs no credential either). */
void srv_h_repo_index(struct srv_req *req, struct srv_reply *rep)
{
    int ready_only = 0;
    if (req->len) { /* optional {"ready": true} */
        struct srv_json *d = NULL;
        struct nn_err err;
        if (srv_json_parse(req->body, req->len, req->srv->cfg.max_json_values, &d, &err) ||
            srv_json_type(d, srv_json_root(d)) != SRV_J_OBJECT) {
            srv_json_free(d);
            srv_reply_error(rep, 400, "body: expected a JSON object like {\"ready\": true}");
            return;
        }
        ready_only = srv_json_is_true(d, srv_json_get(d, srv_json_root(d), "ready"));
        srv_json_free(d);
    }
    struct srv_jw w;
    srv_jw_init(&w, 1024, 0);
    write_index(req->srv->models, ready_only, &w);
    srv_reply_jw(rep, 200, &w);
}

void srv_h_models_list(struct srv_req *req, struct srv_reply *rep)
{
    struct srv_jw w;
    srv_jw_init(&w, 1024, 0);
    srv_jw_obj(&w);
    srv_jw_key(&w, "models");
    write_index(req->srv->models, 0, &w);
    srv_jw_end(&w);
    srv_reply_jw(rep, 200, &w);
}

/* Triton's load request may carry the model's configuration ("config") or its files
 * ("file:<path>"): relud reads a model from model_dir only, so those are refused rather than
 * ignored (a client must not believe a configuration took effect). Other parameters are
 * ignored. 0 when the body (if any) is acceptable; else rep has the 400. */
static int load_body_refused(struct srv_req *req, struct srv_reply *rep)
{
    if (!req->len)
        return 0;
    struct srv_json *d = NULL;
    struct nn_err err;
    srv_jv root, params;
    if (srv_json_parse(req->body, req->len, req->srv->cfg.max_json_values, &d, &err) ||
        srv_json_type(d, root = srv_json_root(d)) != SRV_J_OBJECT) {
        srv_json_free(d);
        srv_reply_error(rep, 400, "body: expected a JSON object like {\"parameters\": {}}");
        return 1;
    }
    params = srv_json_get(d, root, "parameters");
    for (srv_jv k = srv_json_child(d, params); k; k = srv_json_next(d, k)) {
        char key[64];
        srv_json_key(d, k, key, sizeof key);
        if (!strcmp(key, "config") || !strncmp(key, "file:", 5)) {
            srv_reply_error(rep, 400,
                            "parameters.%s: relud loads a model from model_dir only and does not "
                            "apply a configuration or files sent with load; write NAME.json "
                            "(max_batch_size, dynamic_batching: PUT /v1/models/%s), then load",
                            key, req->name);
            srv_json_free(d);
            return 1;
        }
    }
    srv_json_free(d);
    return 0;
}

void srv_h_repo_load(struct srv_req *req, struct srv_reply *rep)
{
    if (!srv_admin_authorized(req, rep, "model control") || load_body_refused(req, rep))
        return;
    struct nn_err err;
    enum nn_status st = srv_models_load(req->srv->models, req->name, &err);
    reply_state(rep, st, 200, req->name, "READY", &err);
}

void srv_h_repo_unload(struct srv_req *req, struct srv_reply *rep)
{
    if (!srv_admin_authorized(req, rep, "model control"))
        return;
    struct nn_err err;
    enum nn_status st = srv_models_unload(req->srv->models, req->name, &err);
    reply_state(rep, st, 200, req->name, "UNAVAILABLE", &err);
}

/* The media type of a Content-Type value (before any ';'), matched case-insensitively. */
static int media_is(const char *ct, const char *type)
{
    size_t n = strlen(type);
    return ct && !strncasecmp(ct, type, n) && (!ct[n] || ct[n] == ';' || ct[n] == ' ');
}

/* multipart/form-data: exactly the parts "model" (the JSON model) and "weights" (its
 * safetensors file). 0 with up filled; else rep has the 400. */
static int multipart_upload(struct srv_req *req, struct srv_reply *rep, const char *ct,
                            struct srv_model_upload *up, char *label, size_t cap)
{
    char boundary[71];
    struct srv_mp_part parts[SRV_MP_MAX_PARTS];
    int n = 0;
    struct nn_err err;
    if (!media_is(ct, "multipart/form-data")) {
        srv_reply_error(rep, 415,
                        "Content-Type: \"%.60s\" is not a model upload (application/json, "
                        "application/onnx, application/octet-stream or multipart/form-data)",
                        ct);
        return 1;
    }
    if (srv_mp_boundary(ct, boundary, &err) ||
        srv_mp_parse(boundary, req->body ? req->body : "", req->len, parts, SRV_MP_MAX_PARTS, &n,
                     &err)) {
        srv_reply_error(rep, 400, "%s", err.msg);
        return 1;
    }
    static const char *const names[2] = {"model", "weights"};
    const struct srv_mp_part *got[2] = {NULL, NULL};
    for (int i = 0; i < n; i++) {
        int k = !strcmp(parts[i].name, names[0]) ? 0 : !strcmp(parts[i].name, names[1]) ? 1 : -1;
        if (k < 0) {
            srv_reply_error(rep, 400,
                            "multipart: unknown part \"%s\" (send \"model\", the JSON model, "
                            "and \"weights\", its safetensors file)",
                            parts[i].name);
            return 1;
        }
        if (got[k]) {
            srv_reply_error(rep, 400, "multipart: part \"%s\" appears twice", names[k]);
            return 1;
        }
        got[k] = &parts[i];
    }
    for (int k = 0; k < 2; k++) {
        if (!got[k]) {
            srv_reply_error(rep, 400,
                            "multipart: part \"%s\" is missing (curl -F model=@NAME.json -F "
                            "weights=@NAME.safetensors)",
                            names[k]);
            return 1;
        }
    }
    snprintf(label, cap, "%s", got[1]->filename[0] ? got[1]->filename : "weights");
    *up = (struct srv_model_upload){.kind = SRV_UPLOAD_JSON_WEIGHTS,
                                    .body = got[0]->data,
                                    .len = got[0]->len,
                                    .weights = got[1]->data,
                                    .weights_len = got[1]->len,
                                    .weights_label = label};
    return 0;
}

/* The body by its Content-Type: application/onnx or application/octet-stream, an ONNX file;
 * multipart/form-data, a JSON model and its safetensors weights; anything else (curl -d
 * sends application/x-www-form-urlencoded), a JSON model as before. */
void srv_h_model_put(struct srv_req *req, struct srv_reply *rep)
{
    if (!srv_admin_authorized(req, rep, "model control"))
        return;
    const char *ct = srv_req_header(req, "Content-Type");
    struct srv_model_upload up = {
        .kind = SRV_UPLOAD_JSON, .body = req->body ? req->body : "", .len = req->len};
    char label[SRV_MP_NAME];
    if (media_is(ct, "application/onnx") || media_is(ct, "application/octet-stream"))
        up.kind = SRV_UPLOAD_ONNX;
    else if (!strncasecmp(ct ? ct : "", "multipart/", 10) &&
             multipart_upload(req, rep, ct, &up, label, sizeof label))
        return;
    struct nn_err err;
    int created;
    enum nn_status st = srv_models_put_upload(req->srv->models, req->name, &up, &created, &err);
    unsigned char c0 = up.len ? (unsigned char)up.body[0] : '{';
    if (st == NN_EINVAL && up.kind == SRV_UPLOAD_JSON && c0 != '{' && (c0 < 0x20 || c0 > 0x7e) &&
        !strchr(" \t\r\n", c0)) { /* a binary file sent as JSON (curl --data-binary) */
        char msg[NN_ERR_LEN];
        snprintf(msg, sizeof msg, "%s", err.msg);
        nn_err_set(&err, st,
                   "%.60s (an ONNX file? send it with Content-Type: application/onnx; safetensors "
                   "weights go with their model as multipart: -F model=@NAME.json -F "
                   "weights=@NAME.safetensors)",
                   msg);
    }
    reply_state(rep, st, created ? 201 : 200, req->name, "READY", &err);
}

void srv_h_model_delete(struct srv_req *req, struct srv_reply *rep)
{
    if (!srv_admin_authorized(req, rep, "model control"))
        return;
    struct nn_err err;
    enum nn_status st = srv_models_delete(req->srv->models, req->name, &err);
    reply_state(rep, st, 200, req->name, "DELETED", &err);
}
