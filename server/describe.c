/* GET /v1/models/{name}: a served model described for people (the console's Models page):
 * its description, dtype, input and output, batching, and its layer stack, each layer with
 * its kind, scalar parameters (from the core's layer table, so a new kind or parameter shows
 * up by itself), weight and bias shapes, output width and parameter count. No weights. */
#include <stdio.h>
#include <string.h>

#include "server/models.h"
#include "server/srv.h"

static void shape(struct srv_jw *w, const char *key, const struct nn_tensor *t)
{
    srv_jw_key(w, key);
    if (!t->ndim) {
        srv_jw_null(w);
        return;
    }
    srv_jw_arr(w);
    for (int d = 0; d < t->ndim; d++)
        srv_jw_uint(w, t->shape[d]);
    srv_jw_end(w);
}

static void features(struct srv_jw *w, const char *key, size_t n)
{
    srv_jw_key(w, key);
    if (n)
        srv_jw_uint(w, n);
    else
        srv_jw_null(w); /* any width */
}

/* One layer; *width is the width of its input's last dimension (0: any), then of its output. */
static size_t layer(struct srv_jw *w, const struct nn_layer *l, size_t *width)
{
    const struct nn_kind_info *ki = &nn_kinds[l->kind];
    size_t count = l->weight.numel + l->bias.numel;
    srv_jw_obj(w);
    srv_jw_kstr(w, "type", ki->name);
    srv_jw_kstr(w, "torch", ki->torch);
    srv_jw_key(w, "params");
    srv_jw_obj(w);
    for (int i = 0; i < ki->nparams; i++) {
        const struct nn_param_spec *ps = &ki->params[i];
        switch (ps->kind) {
        case NN_P_REAL:
            srv_jw_key(w, ps->name);
            srv_jw_num(w, l->p[ps->slot], NN_F64, ps->name);
            break;
        case NN_P_DIM: srv_jw_kint(w, ps->name, l->dim); break;
        case NN_P_APPROX: srv_jw_kstr(w, ps->name, l->approx ? "tanh" : "none"); break;
        case NN_P_WEIGHT:
        case NN_P_BIAS: break; /* shapes below */
        }
    }
    srv_jw_end(w);
    shape(w, "weight_shape", &l->weight);
    shape(w, "bias_shape", &l->bias);
    if (l->kind == NN_LINEAR && l->weight.ndim == 2)
        *width = l->weight.shape[0];
    features(w, "out_features", *width);
    srv_jw_kuint(w, "parameters", count);
    srv_jw_end(w);
    return count;
}

void srv_h_model_info(struct srv_req *req, struct srv_reply *rep)
{
    enum nn_status st;
    struct nn_err err;
    struct srv_model *m = srv_models_get(req->srv->models, req->name, &st, &err);
    if (!m) {
        srv_reply_nn_error(rep, st, &err);
        return;
    }
    snprintf(req->model, sizeof req->model, "%s", m->name);
    struct srv_jw w;
    srv_jw_init(&w, 2048, 0);
    srv_jw_obj(&w);
    srv_jw_kstr(&w, "name", m->name);
    srv_jw_kstr(&w, "version", "1");
    srv_jw_kstr(&w, "state", "READY");
    srv_jw_kstr(&w, "description", m->description ? m->description : "");
    srv_jw_kstr(&w, "dtype", nn_dtype_names[m->dtype]);
    features(&w, "in_features", m->in_features);
    features(&w, "out_features", m->out_features);
    srv_batch_cfg_write(&m->batch, &w);
    srv_jw_key(&w, "layers");
    srv_jw_arr(&w);
    size_t width = m->in_features, total = 0;
    for (int i = 0; i < m->net.nlayers; i++)
        total += layer(&w, &m->net.layers[i], &width);
    srv_jw_end(&w);
    srv_jw_kuint(&w, "parameters", total);
    srv_jw_end(&w);
    srv_model_release(m);
    srv_reply_jw(rep, 200, &w);
}
