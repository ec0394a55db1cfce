/* One pass: see pass.h. */
#include "server/pass.h"

#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "server/json.h"

void srv_pass_init(struct srv_pass *p) { memset(p, 0, sizeof *p); }

void srv_pass_free(struct srv_pass *p)
{
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

size_t srv_pass_block_bytes(const struct srv_pass *p)
{
    return p->have_ws && p->ws.block ? p->plan.ws_bytes : 0;
}

int srv_pass_holds(const struct srv_pass *p, const void *data, size_t len)
{
    uintptr_t b = (uintptr_t)p->ws.block, d = (uintptr_t)data;
    size_t n = srv_pass_block_bytes(p);
    return n && d >= b && d - b <= n && len <= n - (d - b);
}

void *srv_pass_take_block(struct srv_pass *p)
{
    void *b = p->ws.block;
    p->ws.block = NULL;
    return b;
}

const struct nn_tensor *srv_pass_output(const struct srv_pass *p)
{
    return &p->ws.act[p->net->nlayers];
}

void *srv_pass_input(struct srv_pass *p) { return p->ws.act[0].data; }

static int same_shape(const struct nn_tensor *a, const struct nn_tensor *b)
{
    return a->ndim == b->ndim && !memcmp(a->shape, b->shape, (size_t)a->ndim * sizeof *a->shape);
}

enum nn_status srv_pass_plan(struct srv_pass *p, size_t max_elems, size_t max_ws_bytes,
                             struct nn_err *err)
{
    unsigned flags =
        (p->backward != SRV_BWD_NONE ? NN_PLAN_BACKWARD : 0) | (p->want_stats ? NN_PLAN_KEEP : 0);
    enum nn_status st =
        nn_net_check(p->net, p->in_shape, p->in_ndim, flags, max_elems, &p->plan, err);
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
    return NN_OK;
}

/* ---- batching ------------------------------------------------------------------------- */
int srv_pass_batchable(const struct srv_pass *p, const struct srv_model *m)
{
    return m && m->batcher && p->backward == SRV_BWD_NONE && !p->want_stats && p->have_ws &&
           srv_batch_fits(m->batcher, p->in_shape, p->in_ndim) &&
           !nn_has_nonfinite(m->dtype, p->ws.act[0].data, p->ws.act[0].numel);
}

static void job_woken(struct srv_batch_job *j) { srv_req_wake(j->ctx); }

void srv_pass_defer(struct srv_pass *p, struct srv_req *req, struct srv_model *m,
                    uint64_t timeout_us, struct srv_batch_job *j,
                    void (*finish)(struct srv_req *req, struct srv_reply *rep, void *ctx),
                    void *ctx)
{
    j->input = srv_pass_input(p);
    j->output = srv_pass_output(p)->data;
    memcpy(j->shape, p->in_shape, sizeof j->shape);
    j->ndim = p->in_ndim;
    j->timeout_us = timeout_us;
    j->stats = &m->stats->batch;
    j->done = job_woken;
    j->ctx = req;
    srv_req_defer(req, finish, ctx);
    if (srv_batch_submit(req->srv->engine, m->batcher, j, &j->err)) {
        j->st = NN_EUNAVAILABLE; /* answered at once */
        srv_req_wake(req);
    }
}

void srv_pass_job_times(const struct srv_batch_job *j, struct srv_req_times *tm)
{
    tm->pass_start = j->t_started ? j->t_started : tm->inputs_read;
    tm->pass_end = j->t_ended ? j->t_ended : tm->pass_start;
    tm->in_extra = j->input_ns;
    tm->out_extra = j->output_ns;
}

/* d loss / d output into p->dout: the loss's, or ones for gradients of the sum. */
static enum nn_status output_grad(struct srv_pass *p, struct nn_err *err)
{
    const struct nn_tensor *out = srv_pass_output(p);
    enum nn_dtype dt = p->net->dtype;
    if (!(p->dout = calloc(out->numel ? out->numel : 1, nn_dtype_size(dt))))
        return nn_err_set(err, NN_ENOMEM, "out of memory for the output gradient");
    if (p->backward == SRV_BWD_SUM) {
        for (size_t i = 0; i < out->numel; i++) {
            if (dt == NN_F32)
                ((float *)p->dout)[i] = 1.0f;
            else
                ((double *)p->dout)[i] = 1.0;
        }
        return NN_OK;
    }
    const struct nn_tensor *target = &p->target;
    struct nn_tensor tcls = {0};
    if (nn_losses[p->loss].class_target) {
        tcls = p->target;
        tcls.dtype = dt;
        tcls.numel = 1;
        for (int i = 0; i < tcls.ndim; i++)
            tcls.numel *= tcls.shape[i];
        target = &tcls;
    }
    /* (a non-finite loss is the core's NN_ENONFINITE) */
    return nn_loss_forward(p->loss, p->reduction, p->loss_param, out, target, p->classes,
                           &p->loss_value, p->dout, err);
}

enum nn_status srv_pass_run(struct srv_pass *p, struct nn_err *err)
{
    const struct nn_net *net = p->net;
    enum nn_status st = nn_net_run(net, &p->ws, err);
    if (st)
        return st;
    const void *dout = NULL;
    if (p->backward == SRV_BWD_GRAD_OUTPUT) {
        const struct nn_tensor *out = srv_pass_output(p);
        char a[96], b[96];
        if (!same_shape(&p->grad_output, out))
            return nn_err_set(err, NN_EINVAL, "grad_output: expected the output's shape %s, got %s",
                              nn_shape_str(a, sizeof a, out->shape, out->ndim),
                              nn_shape_str(b, sizeof b, p->grad_output.shape, p->grad_output.ndim));
        dout = p->grad_output.data;
    } else if (p->backward != SRV_BWD_NONE) {
        if ((st = output_grad(p, err)))
            return st;
        dout = p->dout;
    }
    if (dout) {
        if ((st = nn_net_backward(net, &p->ws, dout, err)))
            return st;
        /* gradients are checked finite where they are written (the reply names them) */
        if (p->clip > 0) {
            p->total_norm = nn_clip_grad_norm(net, &p->ws, p->clip);
            if (!isfinite(p->total_norm))
                return nn_err_set(err, NN_ENONFINITE,
                                  "gradients.total_norm: not finite (a gradient overflowed)");
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

enum nn_status srv_pass_loss_opts(struct srv_pass *p, const struct srv_json *d, srv_jv obj,
                                  const char *where, struct nn_err *err)
{
    const struct nn_loss_info *li = &nn_losses[p->loss];
    p->loss_param = li->param_def;
    srv_jv pv = li->param ? srv_json_get(d, obj, li->param) : 0;
    if (pv && !srv_json_number(d, pv, &p->loss_param)) /* its range is the core's to check */
        return nn_err_set(err, NN_EINVAL, "%s.%s: expected a number", where, li->param);
    p->reduction = NN_MEAN;
    srv_jv red = srv_json_get(d, obj, "reduction");
    if (red) {
        if (srv_json_str_is(d, red, "sum"))
            p->reduction = NN_SUM;
        else if (!srv_json_str_is(d, red, "mean"))
            return nn_err_set(err, NN_EINVAL, "%s.reduction: expected \"mean\" or \"sum\"", where);
    }
    return NN_OK;
}

void srv_pass_record(const struct srv_pass *p, struct srv_model_stats *stats, int ok, int batched,
                     struct srv_req_times *tm)
{
    size_t samples = 1;
    for (int i = 0; i < p->in_ndim - 1; i++)
        samples *= p->in_shape[i];
    tm->reply_built = srv_now_ns();
    if (ok && !batched)
        srv_model_stats_exec(stats, p->in_ndim >= 2 ? p->in_shape[0] : 1, tm);
    srv_model_stats_observe(stats, ok, tm, ok ? samples : 0);
}

void srv_pass_write_stats(const struct srv_pass *p, struct srv_jw *w)
{
    srv_jw_arr(w);
    for (int i = 0; i < p->net->nlayers; i++) {
        const struct nn_layer_stats *ls = &p->stats[i];
        srv_jw_obj(w);
        srv_jw_kstr(w, "type", nn_kinds[p->net->layers[i].kind].name);
        srv_jw_key(w, "zero_fraction");
        srv_jw_num(w, ls->zero_fraction, NN_F64, "stats.zero_fraction");
        srv_jw_key(w, "dead_units");
        srv_jw_arr(w);
        for (size_t k = 0; k < ls->ndead; k++)
            srv_jw_uint(w, ls->dead[k]);
        srv_jw_end(w);
        if (ls->weight_grad_norm >= 0) {
            srv_jw_key(w, "weight_grad_norm");
            srv_jw_num(w, ls->weight_grad_norm, p->net->dtype, "stats.weight_grad_norm");
        }
        if (ls->bias_grad_norm >= 0) {
            srv_jw_key(w, "bias_grad_norm");
            srv_jw_num(w, ls->bias_grad_norm, p->net->dtype, "stats.bias_grad_norm");
        }
        srv_jw_end(w);
    }
    srv_jw_end(w);
}

void srv_pass_write_v1(const struct srv_pass *p, struct srv_jw *w)
{
    const struct nn_net *net = p->net;
    srv_jw_obj(w);
    srv_jw_key(w, "output");
    srv_jw_tensor(w, srv_pass_output(p), p->form, "output");
    if (p->backward == SRV_BWD_LOSS) {
        srv_jw_key(w, "loss");
        srv_jw_num(w, p->loss_value, net->dtype, "loss");
    }
    if (p->backward != SRV_BWD_NONE) {
        srv_jw_key(w, "gradients");
        srv_jw_obj(w);
        srv_jw_key(w, "input");
        srv_jw_tensor(w, &p->ws.dinput, p->form, "gradients.input");
        srv_jw_key(w, "layers");
        srv_jw_arr(w);
        for (int i = 0; i < net->nlayers; i++) {
            char where[64];
            srv_jw_obj(w);
            if (p->ws.dweight[i].ndim) {
                snprintf(where, sizeof where, "gradients.layers[%d].weight", i);
                srv_jw_key(w, "weight");
                srv_jw_tensor(w, &p->ws.dweight[i], p->form, where);
            }
            if (net->layers[i].kind == NN_LINEAR) {
                srv_jw_key(w, "bias");
                snprintf(where, sizeof where, "gradients.layers[%d].bias", i);
                if (p->ws.dbias[i].ndim)
                    srv_jw_tensor(w, &p->ws.dbias[i], p->form, where);
                else
                    srv_jw_null(w);
            }
            srv_jw_end(w);
        }
        srv_jw_end(w);
        if (p->clip > 0) {
            srv_jw_key(w, "total_norm");
            srv_jw_num(w, p->total_norm, net->dtype, "gradients.total_norm");
        }
        srv_jw_end(w);
    }
    if (p->want_stats) {
        srv_jw_key(w, "stats");
        srv_jw_obj(w);
        srv_jw_key(w, "layers");
        srv_pass_write_stats(p, w);
        srv_jw_end(w);
    }
    srv_jw_end(w);
}
