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

void srv_h_model_put(struct srv_req *req, struct srv_reply *rep)
{
    if (!srv_admin_authorized(req, rep, "model control"))
        return;
    struct nn_err err;
    int created;
    enum nn_status st = srv_models_put(req->srv->models, req->name, req->body ? req->body : "",
                                       req->len, &created, &err);
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
