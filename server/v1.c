/* POST /v1/forward: layers (or a model) + input -> output, and on request loss,
 * gradients, clipping and per-layer diagnostics. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "server/layers.h"
#include "server/models.h"
#include "server/pass.h"
#include "server/srv.h"

static const char *const body_keys[] = {"input",       "layers", "model",     "dtype",
                                        "grad_output", "loss",   "gradients", "clip_grad_norm",
                                        "stats",       NULL};

/* The body's unknown key, if any. */
static const char *unknown_key(const cJSON *root, const char *const *known)
{
    for (const cJSON *f = root->child; f; f = f->next) {
        int ok = 0;
        for (int i = 0; known[i] && !ok; i++)
            ok = !strcmp(f->string, known[i]);
        if (!ok)
            return f->string;
    }
    return NULL;
}

static void known_list(char *buf, size_t len, const char *const *known)
{
    size_t n = 0;
    buf[0] = 0;
    for (int i = 0; known[i] && n < len; i++)
        n += (size_t)snprintf(buf + n, len - n, "%s%s", i ? ", " : "", known[i]);
}

static int get_bool(const cJSON *root, const char *key, int *v, struct nn_err *err)
{
    const cJSON *b = cJSON_GetObjectItemCaseSensitive(root, key);
    *v = 0;
    if (!b || cJSON_IsNull(b))
        return 0;
    if (!cJSON_IsBool(b))
        return nn_err_set(err, NN_EINVAL, "%s: expected true or false", key);
    *v = cJSON_IsTrue(b);
    return 0;
}

/* The "loss" object. */
static enum nn_status parse_loss(const struct srv_doc *doc, const cJSON *lo, struct srv_pass *p,
                                 size_t max_elems, struct nn_err *err)
{
    if (!cJSON_IsObject(lo))
        return nn_err_set(err, NN_EINVAL, "loss: expected an object with \"type\" and \"target\"");
    const cJSON *type = cJSON_GetObjectItemCaseSensitive(lo, "type");
    if (!cJSON_IsString(type))
        return nn_err_set(err, NN_EINVAL, "loss.type: expected a loss name");
    enum nn_status st = nn_loss_lookup(type->valuestring, &p->loss, err);
    if (st)
        return st;
    const struct nn_loss_info *li = &nn_losses[p->loss];
    const char *known[] = {"type", "target", "reduction", li->param, NULL};
    const char *bad = unknown_key(lo, known);
    if (bad) {
        char k[96];
        known_list(k, sizeof k, known);
        return nn_err_set(err, NN_EINVAL, "loss: unknown field \"%.60s\" for %s (known: %s)", bad,
                          li->name, k);
    }
    if ((st = srv_pass_loss_opts(p, lo, "loss", err)))
        return st;
    const cJSON *tg = cJSON_GetObjectItemCaseSensitive(lo, "target");
    if (!tg)
        return nn_err_set(err, NN_EINVAL, "loss.target: required");
    if (li->class_target)
        return srv_doc_tensor_i64(doc, tg, max_elems, "loss.target", p->target_cls.shape,
                                  &p->target_cls.ndim, &p->classes, err);
    enum srv_form form;
    return srv_doc_tensor(doc, tg, p->net->dtype, max_elems, "loss.target", &p->target, &form, err);
}

void srv_h_forward(struct srv_req *req, struct srv_reply *rep)
{
    struct srv *s = req->srv;
    const struct cfg *c = &s->cfg;
    struct nn_err err = {{0}};
    struct srv_pass p;
    srv_pass_init(&p);
    p.cancel = &s->cancel;
    struct nn_net inline_net = {0};
    struct srv_model *model = NULL;
    uint64_t tm[4] = {srv_now_ns(), 0, 0, 0}; /* model statistics: as the OIP's infer */
    struct srv_doc *doc = NULL;
    enum nn_status st = srv_doc_parse_ex(req->body ? req->body : "", req->len, 0, &doc, &err);
    unsigned status = 0; /* set by a model lookup that fails */
    if (st)
        goto fail;
    const cJSON *root = srv_doc_root(doc);
    if (!cJSON_IsObject(root)) {
        st = nn_err_set(&err, NN_EINVAL, "body: expected a JSON object");
        goto fail;
    }
    const char *bad = unknown_key(root, body_keys);
    if (bad) {
        char k[160];
        known_list(k, sizeof k, body_keys);
        st = nn_err_set(&err, NN_EINVAL, "body: unknown field \"%.60s\" (known: %s)", bad, k);
        goto fail;
    }
    const cJSON *jmodel = cJSON_GetObjectItemCaseSensitive(root, "model");
    const cJSON *jlayers = cJSON_GetObjectItemCaseSensitive(root, "layers");
    const cJSON *jdtype = cJSON_GetObjectItemCaseSensitive(root, "dtype");
    enum nn_dtype dt = NN_F32;
    if (jdtype && (st = srv_dtype_parse(jdtype, "dtype", &dt, &err)))
        goto fail;
    if (jmodel && jlayers) {
        st = nn_err_set(&err, NN_EINVAL, "body: give either \"model\" or \"layers\", not both");
        goto fail;
    }
    if (jmodel) {
        if (!cJSON_IsString(jmodel)) {
            st = nn_err_set(&err, NN_EINVAL, "model: expected a model name");
            goto fail;
        }
        char msg[NN_ERR_LEN];
        unsigned mstatus = 404;
        model = srv_models_get(s->models, jmodel->valuestring, &mstatus, msg, sizeof msg);
        if (!model) {
            status = mstatus;
            st = nn_err_set(&err, NN_EINVAL, "model: %s", msg);
            goto fail;
        }
        snprintf(req->model, sizeof req->model, "%s", model->name);
        if (jdtype && dt != model->dtype) {
            st =
                nn_err_set(&err, NN_EINVAL, "dtype: model %s is %s; omit dtype or send \"%s\"",
                           model->name, nn_dtype_names[model->dtype], nn_dtype_names[model->dtype]);
            goto fail;
        }
        p.net = &model->net;
    } else {
        if (!jlayers) {
            st = nn_err_set(&err, NN_EINVAL, "layers: required (or \"model\": a model name)");
            goto fail;
        }
        if ((st = srv_layers_parse(doc, jlayers, dt, c->max_layers, c->max_tensor_elements, NULL,
                                   NULL, &inline_net, &err)))
            goto fail;
        p.net = &inline_net;
    }
    dt = p.net->dtype;

    const cJSON *jin = cJSON_GetObjectItemCaseSensitive(root, "input");
    if (!jin) {
        st = nn_err_set(&err, NN_EINVAL, "input: required");
        goto fail;
    }
    if ((st = srv_doc_tensor(doc, jin, dt, c->max_tensor_elements, "input", &p.input, &p.form,
                             &err)))
        goto fail;
    const cJSON *jgo = cJSON_GetObjectItemCaseSensitive(root, "grad_output");
    const cJSON *jloss = cJSON_GetObjectItemCaseSensitive(root, "loss");
    if (cJSON_IsNull(jgo))
        jgo = NULL;
    if (cJSON_IsNull(jloss))
        jloss = NULL;
    if (jgo && jloss) {
        st = nn_err_set(&err, NN_EINVAL, "body: give either \"grad_output\" or \"loss\", not both");
        goto fail;
    }
    int want_grads, want_stats;
    if (get_bool(root, "gradients", &want_grads, &err) ||
        get_bool(root, "stats", &want_stats, &err)) {
        st = NN_EINVAL;
        goto fail;
    }
    p.want_stats = want_stats;
    if (jgo) {
        enum srv_form f;
        if ((st = srv_doc_tensor(doc, jgo, dt, c->max_tensor_elements, "grad_output",
                                 &p.grad_output, &f, &err)))
            goto fail;
        p.backward = SRV_BWD_GRAD_OUTPUT;
    } else if (jloss) {
        if ((st = parse_loss(doc, jloss, &p, c->max_tensor_elements, &err)))
            goto fail;
        p.backward = SRV_BWD_LOSS;
    } else if (want_grads) {
        p.backward = SRV_BWD_SUM;
    }
    const cJSON *jclip = cJSON_GetObjectItemCaseSensitive(root, "clip_grad_norm");
    if (jclip && !cJSON_IsNull(jclip)) {
        if (!cJSON_IsNumber(jclip) || !isfinite(jclip->valuedouble) || jclip->valuedouble <= 0) {
            st = nn_err_set(&err, NN_EINVAL, "clip_grad_norm: expected a max_norm > 0");
            goto fail;
        }
        if (!p.backward) {
            st = nn_err_set(&err, NN_EINVAL,
                            "clip_grad_norm: needs gradients (send \"grad_output\", \"loss\" or "
                            "\"gradients\": true)");
            goto fail;
        }
        p.clip = jclip->valuedouble;
    }

    tm[1] = srv_now_ns();
    if ((st = srv_pass_run(&p, c->max_tensor_elements, c->max_workspace_bytes, &err)))
        goto fail;
    size_t len;
    tm[2] = srv_now_ns();
    char *out;
    if ((st = srv_pass_reply_v1(&p, &out, &len, &err)))
        goto fail;
    srv_reply_body(rep, 200, "application/json", out, len);
    if (model) {
        tm[3] = srv_now_ns();
        srv_model_stats_observe(model->stats, 1, tm, srv_pass_samples(&p));
    }
    srv_pass_free(&p);
    srv_net_free(&inline_net);
    srv_model_release(model);
    srv_doc_free(doc);
    return;
fail:
    if (model) {
        tm[3] = srv_now_ns();
        srv_model_stats_observe(model->stats, 0, tm, 0);
    }
    if (status)
        srv_reply_error(rep, status, "%s", err.msg);
    else
        srv_reply_nn_error(rep, st, &err);
    srv_pass_free(&p);
    srv_net_free(&inline_net);
    srv_model_release(model);
    srv_doc_free(doc);
}
