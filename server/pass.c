/* One inference pass: see pass.h. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "server/pass.h"

void srv_pass_init(struct srv_pass *p) { memset(p, 0, sizeof *p); }

void srv_pass_free(struct srv_pass *p)
{
    free(p->input.data);
    free(p->grad_output.data);
    free(p->target.data);
    free(p->classes);
    free(p->dout);
    if (p->stats)
        nn_stats_free(p->stats, p->net->nlayers);
    free(p->stats);
    if (p->have_ws)
        nn_ws_free(&p->ws);
    nn_plan_free(&p->plan);
    memset(p, 0, sizeof *p);
}

const struct nn_tensor *srv_pass_output(const struct srv_pass *p)
{
    return &p->ws.act[p->net->nlayers];
}

static int all_finite(const struct nn_tensor *t)
{
    if (t->dtype == NN_F32) {
        const float *x = t->data;
        for (size_t i = 0; i < t->numel; i++)
            if (!isfinite(x[i]))
                return 0;
    } else {
        const double *x = t->data;
        for (size_t i = 0; i < t->numel; i++)
            if (!isfinite(x[i]))
                return 0;
    }
    return 1;
}

static int same_shape(const struct nn_tensor *a, const struct nn_tensor *b)
{
    if (a->ndim != b->ndim)
        return 0;
    for (int i = 0; i < a->ndim; i++)
        if (a->shape[i] != b->shape[i])
            return 0;
    return 1;
}

static enum nn_status check_grads(const struct srv_pass *p, struct nn_err *err)
{
    if (!all_finite(&p->ws.dinput))
        return nn_err_set(err, NN_ENONFINITE,
                          "gradients.input: non-finite value (overflow in the backward pass)");
    for (int i = 0; i < p->net->nlayers; i++) {
        if (p->ws.dweight[i].ndim && !all_finite(&p->ws.dweight[i]))
            return nn_err_set(err, NN_ENONFINITE,
                              "gradients.layers[%d].weight: non-finite value (overflow in the "
                              "backward pass)",
                              i);
        if (p->ws.dbias[i].ndim && !all_finite(&p->ws.dbias[i]))
            return nn_err_set(err, NN_ENONFINITE,
                              "gradients.layers[%d].bias: non-finite value (overflow in the "
                              "backward pass)",
                              i);
    }
    return NN_OK;
}

enum nn_status srv_pass_run(struct srv_pass *p, size_t max_elems, size_t max_ws_bytes,
                            struct nn_err *err)
{
    const struct nn_net *net = p->net;
    unsigned flags =
        (p->backward != SRV_BWD_NONE ? NN_PLAN_BACKWARD : 0) | (p->want_stats ? NN_PLAN_KEEP : 0);
    enum nn_status st =
        nn_net_check(net, p->input.shape, p->input.ndim, flags, max_elems, &p->plan, err);
    if (st)
        return st;
    if (max_ws_bytes && p->plan.ws_bytes > max_ws_bytes)
        return nn_err_set(err, NN_ETOOBIG,
                          "workspace: this request needs %zu bytes, over max_workspace_bytes (%zu)",
                          p->plan.ws_bytes, max_ws_bytes);
    if ((st = nn_ws_init(&p->ws, &p->plan, err)))
        return st;
    p->have_ws = 1;
    p->ws.cancel = p->cancel;
    if ((st = nn_net_forward(net, &p->ws, p->input.data, err)))
        return st;
    const struct nn_tensor *out = srv_pass_output(p);
    const void *dout = NULL;
    size_t esz = nn_dtype_size(net->dtype);
    char a[96], b[96];
    switch (p->backward) {
    case SRV_BWD_NONE: break;
    case SRV_BWD_GRAD_OUTPUT:
        if (!same_shape(&p->grad_output, out))
            return nn_err_set(err, NN_EINVAL, "grad_output: expected the output's shape %s, got %s",
                              nn_shape_str(a, sizeof a, out->shape, out->ndim),
                              nn_shape_str(b, sizeof b, p->grad_output.shape, p->grad_output.ndim));
        dout = p->grad_output.data;
        break;
    case SRV_BWD_LOSS:
    case SRV_BWD_SUM:
        if (!(p->dout = calloc(out->numel ? out->numel : 1, esz)))
            return nn_err_set(err, NN_ENOMEM, "out of memory for the output gradient");
        dout = p->dout;
        if (p->backward == SRV_BWD_SUM) {
            for (size_t i = 0; i < out->numel; i++) {
                if (net->dtype == NN_F32)
                    ((float *)p->dout)[i] = 1.0f;
                else
                    ((double *)p->dout)[i] = 1.0;
            }
            break;
        }
        {
            struct nn_tensor tcls = {0};
            const struct nn_tensor *target = &p->target;
            if (nn_losses[p->loss].class_target) {
                tcls.dtype = net->dtype;
                tcls.ndim = p->target_cls.ndim;
                memcpy(tcls.shape, p->target_cls.shape, sizeof tcls.shape);
                tcls.numel = 1;
                for (int i = 0; i < tcls.ndim; i++)
                    tcls.numel *= tcls.shape[i];
                target = &tcls;
            }
            if ((st = nn_loss_forward(p->loss, p->reduction, p->loss_param, out, target, p->classes,
                                      &p->loss_value, p->dout, err)))
                return st;
            if (!isfinite(p->loss_value))
                return nn_err_set(err, NN_ENONFINITE, "loss: the %s loss is not finite",
                                  nn_losses[p->loss].name);
        }
        break;
    }
    if (dout) {
        if ((st = nn_net_backward(net, &p->ws, dout, err)))
            return st;
        if ((st = check_grads(p, err)))
            return st;
        if (p->clip > 0) {
            p->total_norm = nn_clip_grad_norm(net, &p->ws, p->clip);
            if (!isfinite(p->total_norm))
                return nn_err_set(err, NN_ENONFINITE, "gradients.total_norm: not finite");
        }
    }
    if (p->want_stats) {
        if (!(p->stats = calloc((size_t)net->nlayers, sizeof *p->stats)))
            return nn_err_set(err, NN_ENOMEM, "out of memory for stats");
        if ((st = nn_stats_compute(net, &p->ws, p->stats, err)))
            return st;
    }
    return NN_OK;
}

enum nn_status srv_pass_loss_opts(struct srv_pass *p, const cJSON *obj, const char *where,
                                  struct nn_err *err)
{
    const struct nn_loss_info *li = &nn_losses[p->loss];
    p->loss_param = li->param_def;
    const cJSON *pv = li->param ? cJSON_GetObjectItemCaseSensitive(obj, li->param) : NULL;
    if (pv) {
        if (!cJSON_IsNumber(pv) || !isfinite(pv->valuedouble))
            return nn_err_set(err, NN_EINVAL, "%s.%s: expected a number", where, li->param);
        p->loss_param = pv->valuedouble; /* its range is the core's to check */
    }
    p->reduction = NN_MEAN;
    const cJSON *red = cJSON_GetObjectItemCaseSensitive(obj, "reduction");
    if (red) {
        if (cJSON_IsString(red) && !strcmp(red->valuestring, "sum"))
            p->reduction = NN_SUM;
        else if (!cJSON_IsString(red) || strcmp(red->valuestring, "mean"))
            return nn_err_set(err, NN_EINVAL, "%s.reduction: expected \"mean\" or \"sum\"", where);
    }
    return NN_OK;
}

size_t srv_pass_samples(const struct srv_pass *p)
{
    const struct nn_tensor *t = &p->input;
    return t->ndim > 1 && t->shape[t->ndim - 1] ? t->numel / t->shape[t->ndim - 1] : 1;
}

cJSON *srv_pass_stats_json(const struct srv_pass *p, struct srv_out *o)
{
    cJSON *layers = cJSON_CreateArray();
    for (int i = 0; i < p->net->nlayers; i++) {
        const struct nn_layer_stats *ls = &p->stats[i];
        cJSON *l = cJSON_CreateObject();
        cJSON_AddStringToObject(l, "type", nn_kinds[p->net->layers[i].kind].name);
        cJSON_AddItemToObject(l, "zero_fraction", srv_out_number(o, ls->zero_fraction, NN_F64));
        cJSON *dead = cJSON_AddArrayToObject(l, "dead_units");
        for (size_t k = 0; k < ls->ndead; k++)
            cJSON_AddItemToArray(dead, cJSON_CreateNumber((double)ls->dead[k]));
        if (ls->weight_grad_norm >= 0)
            cJSON_AddItemToObject(l, "weight_grad_norm",
                                  srv_out_number(o, ls->weight_grad_norm, p->net->dtype));
        if (ls->bias_grad_norm >= 0)
            cJSON_AddItemToObject(l, "bias_grad_norm",
                                  srv_out_number(o, ls->bias_grad_norm, p->net->dtype));
        cJSON_AddItemToArray(layers, l);
    }
    return layers;
}

enum nn_status srv_pass_reply_v1(struct srv_pass *p, char **body, size_t *len, struct nn_err *err)
{
    struct srv_out *o = srv_out_new();
    cJSON *root = cJSON_CreateObject();
    enum nn_status st = NN_OK;
    *body = NULL;
    if (!o || !root) {
        st = nn_err_set(err, NN_ENOMEM, "out of memory building the response");
        goto done;
    }
    const struct nn_net *net = p->net;
    cJSON_AddItemToObject(root, "output", srv_out_tensor(o, srv_pass_output(p), (int)p->form));
    if (p->backward == SRV_BWD_LOSS)
        cJSON_AddItemToObject(root, "loss", srv_out_number(o, p->loss_value, net->dtype));
    if (p->backward != SRV_BWD_NONE) {
        cJSON *g = cJSON_AddObjectToObject(root, "gradients");
        cJSON_AddItemToObject(g, "input", srv_out_tensor(o, &p->ws.dinput, (int)p->form));
        cJSON *layers = cJSON_AddArrayToObject(g, "layers");
        for (int i = 0; i < net->nlayers; i++) {
            cJSON *l = cJSON_CreateObject();
            if (p->ws.dweight[i].ndim)
                cJSON_AddItemToObject(l, "weight",
                                      srv_out_tensor(o, &p->ws.dweight[i], (int)p->form));
            if (net->layers[i].kind == NN_LINEAR)
                cJSON_AddItemToObject(l, "bias",
                                      p->ws.dbias[i].ndim
                                          ? srv_out_tensor(o, &p->ws.dbias[i], (int)p->form)
                                          : cJSON_CreateNull());
            cJSON_AddItemToArray(layers, l);
        }
        if (p->clip > 0)
            cJSON_AddItemToObject(g, "total_norm", srv_out_number(o, p->total_norm, net->dtype));
    }
    if (p->want_stats) {
        cJSON *stats = cJSON_AddObjectToObject(root, "stats");
        cJSON_AddItemToObject(stats, "layers", srv_pass_stats_json(p, o));
    }
    if (!(*body = srv_out_print(o, root, len, err)))
        st = srv_out_status(o);
done:
    cJSON_Delete(root);
    srv_out_free(o);
    return st;
}
