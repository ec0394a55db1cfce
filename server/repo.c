/* Model control: Triton's repository extension (index, load, unload) and relud's
 * PUT/DELETE /v1/models/{name}; GET /v1/models lists. Control needs
 * "Authorization: Bearer <admin_token>"; with no token configured it answers 403. */
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "server/models.h"
#include "server/srv.h"

/* Constant-time comparison, so the token can't be guessed byte by byte from timings. */
static int token_eq(const char *a, const char *b)
{
    size_t la = strlen(a), lb = strlen(b);
    unsigned char d = (unsigned char)(la != lb);
    for (size_t i = 0; i < la; i++)
        d |= (unsigned char)(a[i] ^ b[i % (lb ? lb : 1)]);
    return d == 0;
}

static int authorized(struct srv_req *req, struct srv_reply *rep)
{
    const char *tok = req->srv->cfg.admin_token;
    if (!tok || !tok[0]) {
        srv_reply_error(rep, 403,
                        "model control is disabled: no admin_token is configured (set admin_token "
                        "or admin_token_file)");
        return 0;
    }
    const char *h = srv_req_header(req, "Authorization");
    /* the auth scheme is case-insensitive (RFC 7235 2.1); the token is not */
    if (!h || strncasecmp(h, "Bearer ", 7) != 0 || !token_eq(h + 7, tok)) {
        srv_reply_error(rep, 401, "%s",
                        h ? "Authorization: wrong bearer token"
                          : "Authorization: \"Bearer <admin_token>\" required");
        srv_reply_header(rep, "WWW-Authenticate", "Bearer realm=\"relud\"");
        return 0;
    }
    return 1;
}

static void reply_status(struct srv_reply *rep, unsigned status, const char *name,
                         const char *state, const char *err)
{
    if (status >= 400) {
        srv_reply_error(rep, status, "%s", err);
        return;
    }
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "name", name);
    cJSON_AddStringToObject(o, "state", state);
    srv_reply_json(rep, status, o);
}

void srv_h_repo_index(struct srv_req *req, struct srv_reply *rep)
{
    if (!authorized(req, rep))
        return;
    int ready_only = 0;
    if (req->len) { /* optional {"ready": true} */
        cJSON *b = cJSON_ParseWithLength(req->body, req->len);
        if (!cJSON_IsObject(b)) {
            cJSON_Delete(b);
            srv_reply_error(rep, 400, "body: expected a JSON object like {\"ready\": true}");
            return;
        }
        ready_only = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(b, "ready"));
        cJSON_Delete(b);
    }
    srv_reply_json(rep, 200, srv_models_index(req->srv->models, ready_only));
}

void srv_h_models_list(struct srv_req *req, struct srv_reply *rep)
{
    cJSON *o = cJSON_CreateObject();
    cJSON_AddItemToObject(o, "models", srv_models_index(req->srv->models, 0));
    srv_reply_json(rep, 200, o);
}

void srv_h_repo_load(struct srv_req *req, struct srv_reply *rep)
{
    if (!authorized(req, rep))
        return;
    char err[NN_ERR_LEN + 128] = "";
    unsigned st = srv_models_load(req->srv->models, req->name, err, sizeof err);
    reply_status(rep, st, req->name, "READY", err);
}

void srv_h_repo_unload(struct srv_req *req, struct srv_reply *rep)
{
    if (!authorized(req, rep))
        return;
    char err[NN_ERR_LEN + 128] = "";
    unsigned st = srv_models_unload(req->srv->models, req->name, err, sizeof err);
    reply_status(rep, st, req->name, "UNLOADED", err);
}

void srv_h_model_put(struct srv_req *req, struct srv_reply *rep)
{
    if (!authorized(req, rep))
        return;
    char err[NN_ERR_LEN + 128] = "";
    unsigned st = srv_models_put(req->srv->models, req->name, req->body ? req->body : "", req->len,
                                 err, sizeof err);
    reply_status(rep, st, req->name, "READY", err);
}

void srv_h_model_delete(struct srv_req *req, struct srv_reply *rep)
{
    if (!authorized(req, rep))
        return;
    char err[NN_ERR_LEN + 128] = "";
    unsigned st = srv_models_delete(req->srv->models, req->name, err, sizeof err);
    reply_status(rep, st, req->name, "DELETED", err);
}
