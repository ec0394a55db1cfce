/* POST /v1/forward: layers (or a model) + input -> output, and on request loss, gradients,
 * clipping and per-layer diagnostics. The request flows parse -> plan -> run -> reply:
 * the body is read once (json.h), the input's shape found, the net checked and the
 * workspace sized, then the input decoded straight into the workspace. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "server/json.h"
#include "server/layers.h"
#include "server/models.h"
#include "server/pass.h"
#include "server/srv.h"
#include "server/tensors.h"

static const char *const body_keys[] = {"input",       "layers", "model",     "dtype",
                                        "grad_output", "loss",   "gradients", "clip_grad_norm",
                                        "stats",       NULL};

/* A flag: absent or null is false; anything but true/false is an error. */
static enum nn_status get_bool(const struct srv_json *d, srv_jv root, const char *key, int *v,
                               struct nn_err *err)
{
    srv_jv b = srv_json_get(d, root, key);
    enum srv_jtype t = srv_json_type(d, b);
    *v = srv_json_is_true(d, b);
    if (t != SRV_J_NONE && t != SRV_J_NULL && t != SRV_J_BOOL)
        return nn_err_set(err, NN_EINVAL, "%s: expected true or false", key);
    return NN_OK;
}

/* One /v1/forward request while it is handled (heap: a batched one outlives the handler
 * call). */
struct forward {
    struct srv_req *req;
    struct srv_json *d;
    srv_jv root;
    struct srv_pass p;
    struct nn_net inline_net;
    struct srv_model *model;
    struct srv_tfind input;
    unsigned status; /* set by a model lookup that fails */
    struct srv_req_times tm;
    struct srv_batch_job *job; /* a batched request's, or NULL */
};

/* The "loss" object: its type, options and target (loaded into the pass). */
static enum nn_status parse_loss(struct forward *f, srv_jv lo, size_t max_elems, struct nn_err *err)
{
    const struct srv_json *d = f->d;
    struct srv_pass *p = &f->p;
    char type[48];
    if (srv_json_type(d, lo) != SRV_J_OBJECT)
        return nn_err_set(err, NN_EINVAL, "loss: expected an object with \"type\" and \"target\"");
    if (srv_json_str(d, srv_json_get(d, lo, "type"), type, sizeof type) == (size_t)-1)
        return nn_err_set(err, NN_EINVAL, "loss.type: expected a loss name");
    enum nn_status st = nn_loss_lookup(type, &p->loss, err);
    if (st)
        return st;
    const struct nn_loss_info *li = &nn_losses[p->loss];
    const char *known[] = {"type", "target", "reduction", li->param, NULL};
    char k[96], key[64];
    if (srv_json_unknown_field(d, lo, known, key, sizeof key, k, sizeof k))
        return nn_err_set(err, NN_EINVAL, "loss: unknown field \"%s\" for %s (known: %s)", key,
                          li->name, k);
    if ((st = srv_pass_loss_opts(p, d, lo, "loss", err)))
        return st;
    srv_jv tg = srv_json_get(d, lo, "target");
    if (!tg)
        return nn_err_set(err, NN_EINVAL, "loss.target: required");
    if (!li->class_target)
        return srv_tensor_load(d, tg, p->net->dtype, max_elems, "loss.target", &p->target, NULL,
                               err);
    struct srv_tfind tf;
    if ((st = srv_tensor_find(d, tg, max_elems, 1, "loss.target", &tf, err)))
        return st;
    if (!(p->classes = malloc(tf.numel ? tf.numel * sizeof *p->classes : 1)))
        return nn_err_set(err, NN_ENOMEM, "loss.target: out of memory");
    p->target.ndim = tf.scalar ? 0 : tf.ndim;
    memcpy(p->target.shape, tf.shape, sizeof tf.shape);
    return srv_tensor_read(d, &tf, SRV_I64, p->classes, "loss.target", err);
}

/* The net: a registered model, or the layers inline. */
static enum nn_status parse_net(struct forward *f, struct srv_req *req, unsigned *status,
                                struct nn_err *err)
{
    const struct srv_json *d = f->d;
    const struct cfg *c = &req->srv->cfg;
    srv_jv jmodel = srv_json_get(d, f->root, "model"), jlayers = srv_json_get(d, f->root, "layers");
    srv_jv jdtype = srv_json_get(d, f->root, "dtype");
    enum nn_dtype dt = NN_F32;
    enum nn_status st;
    if (jdtype && (st = srv_dtype_parse(d, jdtype, "dtype", &dt, err)))
        return st;
    if (jmodel && jlayers)
        return nn_err_set(err, NN_EINVAL, "body: give either \"model\" or \"layers\", not both");
    if (!jmodel) {
        if (!jlayers)
            return nn_err_set(err, NN_EINVAL, "layers: required (or \"model\": a model name)");
        if ((st = srv_layers_parse(d, jlayers, dt, c->max_layers, c->max_tensor_elements, NULL,
                                   NULL, &f->inline_net, err)))
            return st;
        f->p.net = &f->inline_net;
        return NN_OK;
    }
    char name[SRV_MODEL_NAME];
    if (srv_json_str(d, jmodel, name, sizeof name) == (size_t)-1)
        return nn_err_set(err, NN_EINVAL, "model: expected a model name");
    struct nn_err merr;
    f->model = srv_models_get(req->srv->models, name, &st, &merr);
    if (!f->model) {
        *status = st == NN_ENOTFOUND ? 404 : 503;
        return nn_err_set(err, NN_EINVAL, "model: %s", merr.msg);
    }
    srv_strcpy(req->model, sizeof req->model, f->model->name);
    if (jdtype && dt != f->model->dtype)
        return nn_err_set(err, NN_EINVAL, "dtype: model %s is %s; omit dtype or send \"%s\"",
                          f->model->name, nn_dtype_names[f->model->dtype],
                          nn_dtype_names[f->model->dtype]);
    f->p.net = &f->model->net;
    return NN_OK;
}

/* What the request asks besides the forward pass: grad_output, a loss, gradients, clipping,
 * stats. */
static enum nn_status parse_backward(struct forward *f, size_t max_elems, struct nn_err *err)
{
    const struct srv_json *d = f->d;
    struct srv_pass *p = &f->p;
    srv_jv jgo = srv_json_get(d, f->root, "grad_output"), jloss = srv_json_get(d, f->root, "loss");
    if (srv_json_type(d, jgo) == SRV_J_NULL)
        jgo = 0;
    if (srv_json_type(d, jloss) == SRV_J_NULL)
        jloss = 0;
    if (jgo && jloss)
        return nn_err_set(err, NN_EINVAL,
                          "body: give either \"grad_output\" or \"loss\", not both");
    int want_grads;
    enum nn_status st;
    if ((st = get_bool(d, f->root, "gradients", &want_grads, err)) ||
        (st = get_bool(d, f->root, "stats", &p->want_stats, err)))
        return st;
    if (jgo) {
        if ((st = srv_tensor_load(d, jgo, p->net->dtype, max_elems, "grad_output", &p->grad_output,
                                  NULL, err)))
            return st;
        p->backward = SRV_BWD_GRAD_OUTPUT;
    } else if (jloss) {
        if ((st = parse_loss(f, jloss, max_elems, err)))
            return st;
        p->backward = SRV_BWD_LOSS;
    } else if (want_grads) {
        p->backward = SRV_BWD_SUM;
    }
    srv_jv jclip = srv_json_get(d, f->root, "clip_grad_norm");
    if (jclip && srv_json_type(d, jclip) != SRV_J_NULL) {
        if (!srv_json_number(d, jclip, &p->clip) || !(p->clip > 0))
            return nn_err_set(err, NN_EINVAL, "clip_grad_norm: expected a max_norm > 0");
        if (!p->backward)
            return nn_err_set(err, NN_EINVAL,
                              "clip_grad_norm: needs gradients (send \"grad_output\", \"loss\" or "
                              "\"gradients\": true)");
    }
    return NN_OK;
}

/* parse: the body, the net, the input's shape and what else the request asks. */
static enum nn_status parse(struct forward *f, struct srv_req *req, unsigned *status,
                            struct nn_err *err)
{
    const struct cfg *c = &req->srv->cfg;
    enum nn_status st = srv_json_parse(req->body, req->len, c->max_json_values, &f->d, err);
    if (st)
        return st;
    f->root = srv_json_root(f->d);
    if (srv_json_type(f->d, f->root) != SRV_J_OBJECT)
        return nn_err_set(err, NN_EINVAL, "body: expected a JSON object");
    char k[160], key[64];
    if (srv_json_unknown_field(f->d, f->root, body_keys, key, sizeof key, k, sizeof k))
        return nn_err_set(err, NN_EINVAL, "body: unknown field \"%s\" (known: %s)", key, k);
    if ((st = parse_net(f, req, status, err)))
        return st;
    srv_jv jin = srv_json_get(f->d, f->root, "input");
    if (!jin)
        return nn_err_set(err, NN_EINVAL, "input: required");
    if ((st = srv_tensor_find(f->d, jin, c->max_tensor_elements, 0, "input", &f->input, err)))
        return st;
    f->p.in_ndim = f->input.ndim;
    memcpy(f->p.in_shape, f->input.shape, sizeof f->input.shape);
    if (f->model && (st = srv_model_input_shape(f->model, f->input.shape, f->input.ndim,
                                                f->p.in_shape, &f->p.in_ndim, "input", err)))
        return st;
    f->p.form = f->input.form;
    return parse_backward(f, c->max_tensor_elements, err);
}

/* The reply once the pass ran (or failed with st), the model's statistics, and the
 * request's memory: the end of every /v1/forward, batched or not. */
static void forward_reply(struct forward *f, enum nn_status st, const struct nn_err *err,
                          struct srv_reply *rep)
{
    if (!st) {
        struct srv_jw w;
        const struct nn_tensor *out = srv_pass_output(&f->p);
        size_t per = f->p.net->dtype == NN_F32 ? 16 : 25; /* the writer's guess per value */
        size_t guess =
            (out->numel + (f->p.backward ? f->p.ws.dinput.numel + f->p.plan.param_elems : 0)) * per;
        srv_jw_init(&w, guess + 256, 0);
        srv_pass_write_v1(&f->p, &w);
        srv_reply_jw(rep, 200, &w);
        st = rep->status == 200 ? NN_OK : NN_EINVAL;
    } else if (f->status) {
        srv_reply_error(rep, f->status, "%s", err->msg);
    } else {
        srv_reply_nn_error(rep, st, err);
    }
    if (f->model)
        srv_pass_record(&f->p, f->model->stats, !st, f->job != NULL, &f->tm);
    srv_pass_free(&f->p);
    srv_net_free(&f->inline_net);
    srv_model_release(f->model);
    srv_json_free(f->d);
    free(f->job);
    free(f);
}

/* A batched request, woken: its output rows are in its workspace, or the job failed. */
static void forward_finish(struct srv_req *req, struct srv_reply *rep, void *ctx)
{
    struct forward *f = ctx;
    (void)req;
    enum nn_status st = f->job->st;
    struct nn_err err = f->job->err;
    srv_pass_job_times(f->job, &f->tm);
    forward_reply(f, st, &err, rep);
    if (st == NN_EUNAVAILABLE) /* queue full, or queued past its timeout */
        srv_reply_header(rep, "Retry-After", "1");
}

void srv_h_forward(struct srv_req *req, struct srv_reply *rep)
{
    struct srv *s = req->srv;
    const struct cfg *c = &s->cfg;
    struct nn_err err = {{0}};
    struct forward *f = calloc(1, sizeof *f);
    if (!f) {
        srv_reply_error(rep, 503, "out of memory");
        srv_reply_header(rep, "Retry-After", "1");
        return;
    }
    f->req = req;
    srv_pass_init(&f->p);
    f->p.cancel = &s->cancel;
    f->tm.start = srv_now_ns(); /* model statistics, as the OIP's infer */
    enum nn_status st = parse(f, req, &f->status, &err);
    if (!st && f->model)
        st = srv_batch_check_rows(&f->model->batch, f->p.in_shape, f->p.in_ndim, "input", &err);
    /* plan, then decode the input straight into the workspace */
    if (!st)
        st = srv_pass_plan(&f->p, c->max_tensor_elements, c->max_workspace_bytes, &err);
    if (!st)
        st = srv_tensor_read(f->d, &f->input, f->p.net->dtype == NN_F32 ? SRV_F32 : SRV_F64,
                             srv_pass_input(&f->p), "input", &err);
    f->tm.inputs_read = f->tm.pass_start = srv_now_ns();
    /* (the job is allocated apart: the struct stays in malloc's small sizes) */
    if (!st && srv_pass_batchable(&f->p, f->model) && (f->job = calloc(1, sizeof *f->job))) {
        srv_pass_defer(&f->p, req, f->model, 0, f->job, forward_finish, f);
        return;
    }
    if (!st)
        st = srv_pass_run(&f->p, &err);
    if (!st && f->p.backward && f->p.in_ndim != f->input.ndim) { /* an ONNX model flattened it */
        f->p.ws.dinput.ndim = f->input.ndim;
        memcpy(f->p.ws.dinput.shape, f->input.shape, sizeof f->input.shape);
    }
    f->tm.pass_end = srv_now_ns();
    forward_reply(f, st, &err, rep);
}
