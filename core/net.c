/* The network: layers, the shape check + plan, the one-block workspace, forward and
 * backward passes. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/nn_impl.h"

#define WS_ALIGN 64

enum nn_status nn_net_init(struct nn_net *net, enum nn_dtype dtype, int nlayers, struct nn_err *err)
{
    memset(net, 0, sizeof *net);
    if ((int)dtype < 0 || dtype >= NN_DTYPE_COUNT)
        return nn_err_set(err, NN_EINVAL, "dtype: unknown dtype %d", (int)dtype);
    if (nlayers < 0)
        return nn_err_set(err, NN_EINVAL, "layers: negative count %d", nlayers);
    net->layers = calloc(nlayers ? (size_t)nlayers : 1, sizeof *net->layers);
    if (!net->layers)
        return nn_err_set(err, NN_ENOMEM, "layers: out of memory for %d layers", nlayers);
    net->dtype = dtype;
    net->nlayers = nlayers;
    for (int i = 0; i < nlayers; i++)
        nn_layer_init(&net->layers[i], NN_RELU);
    return NN_OK;
}

void nn_net_free(struct nn_net *net)
{
    if (!net)
        return;
    free(net->layers);
    net->layers = NULL;
    net->nlayers = 0;
}

void nn_plan_free(struct nn_plan *plan)
{
    if (!plan)
        return;
    free(plan->shapes);
    memset(plan, 0, sizeof *plan);
}

/* A parameter tensor from outside: right dtype, data present, numel consistent. Not held
 * to max_elems: that caps what a request makes the pass allocate (its input, the
 * activations); a served model's weights were read once, under their own limits. */
static enum nn_status check_param(const struct nn_tensor *t, int idx, const char *kname,
                                  const char *pname, enum nn_dtype dt, struct nn_err *err)
{
    size_t n;
    if (t->dtype == dt && !nn_shape_count(t->shape, t->ndim, 0, &n) && n && n == t->numel &&
        t->data)
        return NN_OK; /* every request checks its net: no message built unless one is due */
    char what[96], buf[160];
    snprintf(what, sizeof what, "layers[%d] (%s): %s", idx, kname, pname);
    if (t->dtype != dt)
        return nn_err_set(err, NN_EINVAL, "%s is %s but the network is %s", what,
                          (int)t->dtype >= 0 && t->dtype < NN_DTYPE_COUNT ? nn_dtype_names[t->dtype]
                                                                          : "of an unknown dtype",
                          nn_dtype_names[dt]);
    enum nn_status st = nn_shape_numel(t->shape, t->ndim, 0, &n, what, err);
    if (st)
        return st;
    if (n == 0)
        return nn_err_set(err, NN_EINVAL, "%s: shape %s has no elements", what,
                          nn_shape_str(buf, sizeof buf, t->shape, t->ndim));
    if (n != t->numel || !t->data)
        return nn_err_set(err, NN_EINVAL, "%s: shape %s needs %zu values, has %zu", what,
                          nn_shape_str(buf, sizeof buf, t->shape, t->ndim), n,
                          t->data ? t->numel : 0);
    return NN_OK;
}

static enum nn_status check_layer_params(const struct nn_layer *l, int idx, enum nn_dtype dt,
                                         struct nn_err *err)
{
    const struct nn_kind_info *ki = &nn_kinds[l->kind];
    int has_w = 0, has_b = 0;
    for (int j = 0; j < ki->nparams; j++) {
        const struct nn_param_spec *ps = &ki->params[j];
        enum nn_status st;
        switch (ps->kind) {
        case NN_P_REAL:
            if (isnan(l->p[ps->slot]))
                return nn_err_set(err, NN_EINVAL, "layers[%d] (%s): %s is not a number", idx,
                                  ki->name, ps->name);
            break;
        case NN_P_DIM: break;
        case NN_P_APPROX:
            if (l->approx != 0 && l->approx != 1)
                return nn_err_set(err, NN_EINVAL,
                                  "layers[%d] (%s): %s must be \"none\" or \"tanh\"", idx, ki->name,
                                  ps->name);
            break;
        case NN_P_WEIGHT:
            has_w = 1;
            if (l->weight.ndim == 0)
                return nn_err_set(err, NN_EINVAL, "layers[%d] (%s): %s is missing", idx, ki->name,
                                  ps->name);
            st = check_param(&l->weight, idx, ki->name, ps->name, dt, err);
            if (st)
                return st;
            break;
        case NN_P_BIAS:
            has_b = 1;
            if (l->bias.ndim != 0) {
                st = check_param(&l->bias, idx, ki->name, ps->name, dt, err);
                if (st)
                    return st;
            }
            break;
        }
    }
    if (!has_w && l->weight.ndim != 0)
        return nn_err_set(err, NN_EINVAL, "layers[%d] (%s): takes no weight", idx, ki->name);
    if (!has_b && l->bias.ndim != 0)
        return nn_err_set(err, NN_EINVAL, "layers[%d] (%s): takes no bias", idx, ki->name);
    return NN_OK;
}

static size_t align_up(size_t n) { return (n + WS_ALIGN - 1) / WS_ALIGN * WS_ALIGN; }

/* bytes += align_up(n * es), overflow-checked */
static int ws_add(size_t *bytes, size_t n, size_t es)
{
    size_t b;
    if (nn_mul_ovf(n, es, &b) || b > SIZE_MAX - WS_ALIGN)
        return 1;
    return nn_add_ovf(*bytes, align_up(b), bytes);
}

static size_t max_act(const struct nn_plan *plan)
{
    size_t m = 0;
    for (int i = 1; i <= plan->nlayers; i++)
        if (plan->shapes[i].numel > m)
            m = plan->shapes[i].numel;
    return m;
}

/* The workspace layout; nn_ws_init walks the same sequence. */
static int ws_size(const struct nn_plan *plan, size_t *bytes)
{
    size_t es = nn_dtype_size(plan->dtype), n = (size_t)plan->nlayers;
    *bytes = 0;
    if (ws_add(bytes, 3 * n + 1, sizeof(struct nn_tensor)))
        return 1;
    if (!plan->keep) /* the input, then the buffers the activations alternate between (two,
                        one for a single layer) */
        return ws_add(bytes, plan->shapes[0].numel, es) ||
               (n && ws_add(bytes, max_act(plan), es)) ||
               (n > 1 && ws_add(bytes, max_act(plan), es));
    for (size_t i = 0; i <= n; i++)
        if (ws_add(bytes, plan->shapes[i].numel, es))
            return 1;
    if (!plan->backward)
        return 0;
    if (ws_add(bytes, plan->shapes[0].numel, es))
        return 1;
    for (size_t i = 0; i < n; i++)
        if (ws_add(bytes, plan->wshapes[i].numel, es) || ws_add(bytes, plan->bshapes[i].numel, es))
            return 1;
    size_t m = max_act(plan);
    return ws_add(bytes, m, es) || ws_add(bytes, m, es);
}

enum nn_status nn_net_check(const struct nn_net *net, const size_t *in_shape, int in_ndim,
                            unsigned flags, size_t max_elems, struct nn_plan *plan,
                            struct nn_err *err)
{
    char buf[160];
    enum nn_status st;
    memset(plan, 0, sizeof *plan);
    size_t n_in;
    if ((st = nn_shape_numel(in_shape, in_ndim, max_elems, &n_in, "input", err)))
        return st;
    if (n_in == 0)
        return nn_err_set(err, NN_EINVAL, "input: shape %s has no elements",
                          nn_shape_str(buf, sizeof buf, in_shape, in_ndim));
    int n = net->nlayers;
    struct nn_tensor *t = calloc(3 * (size_t)n + 1, sizeof *t);
    if (!t)
        return nn_err_set(err, NN_ENOMEM, "plan: out of memory for %d layers", n);
    plan->nlayers = n;
    plan->dtype = net->dtype;
    plan->backward = (flags & NN_PLAN_BACKWARD) != 0;
    plan->keep = (flags & (NN_PLAN_BACKWARD | NN_PLAN_KEEP)) != 0;
    plan->shapes = t;
    plan->wshapes = t + n + 1;
    plan->bshapes = t + 2 * n + 1;
    t[0].dtype = net->dtype;
    t[0].ndim = in_ndim;
    memcpy(t[0].shape, in_shape, (size_t)in_ndim * sizeof *in_shape);
    t[0].numel = n_in;
    for (int i = 0; i < n; i++) {
        const struct nn_layer *l = &net->layers[i];
        if ((int)l->kind < 0 || l->kind >= NN_KIND_COUNT) {
            st = nn_err_set(err, NN_EINVAL, "layers[%d]: unknown kind %d", i, (int)l->kind);
            goto fail;
        }
        if ((st = check_layer_params(l, i, net->dtype, err)))
            goto fail;
        t[i + 1] = t[i];
        if (nn_kind_ops[l->kind].check &&
            (st = nn_kind_ops[l->kind].check(l, i, &t[i], &t[i + 1], max_elems, err)))
            goto fail;
        if (nn_shape_count(t[i + 1].shape, t[i + 1].ndim, max_elems, &t[i + 1].numel)) {
            char what[64];
            snprintf(what, sizeof what, "layers[%d] (%s): output", i, nn_kinds[l->kind].name);
            st = nn_shape_numel(t[i + 1].shape, t[i + 1].ndim, max_elems, &t[i + 1].numel, what,
                                err);
            goto fail;
        }
        if (l->weight.ndim) {
            plan->wshapes[i] = l->weight;
            plan->wshapes[i].data = NULL;
        }
        if (l->bias.ndim) {
            plan->bshapes[i] = l->bias;
            plan->bshapes[i].data = NULL;
        }
        if (nn_add_ovf(plan->param_elems, plan->wshapes[i].numel + plan->bshapes[i].numel,
                       &plan->param_elems)) {
            st = nn_err_set(err, NN_ETOOBIG, "layers[%d]: too many parameters", i);
            goto fail;
        }
    }
    if (ws_size(plan, &plan->ws_bytes)) {
        st = nn_err_set(err, NN_ETOOBIG, "workspace: size overflows");
        goto fail;
    }
    return NN_OK;
fail:
    nn_plan_free(plan);
    return st;
}

enum nn_status nn_ws_init(struct nn_ws *ws, const struct nn_plan *plan, struct nn_err *err)
{
    memset(ws, 0, sizeof *ws);
    void *block = NULL;
    if (posix_memalign(&block, WS_ALIGN, plan->ws_bytes) != 0)
        return nn_err_set(err, NN_ENOMEM, "workspace: out of memory for %zu bytes", plan->ws_bytes);
    size_t es = nn_dtype_size(plan->dtype), n = (size_t)plan->nlayers;
    char *p = block;
    ws->plan = plan;
    ws->block = block;
    ws->act = (struct nn_tensor *)p;
    ws->dweight = ws->act + n + 1;
    ws->dbias = ws->dweight + n;
    memset(ws->act, 0, (3 * n + 1) * sizeof(struct nn_tensor));
    p += align_up((3 * n + 1) * sizeof(struct nn_tensor));
    if (plan->keep) {
        for (size_t i = 0; i <= n; i++) {
            ws->act[i] = plan->shapes[i];
            ws->act[i].data = p;
            p += align_up(plan->shapes[i].numel * es);
        }
    } else {
        ws->act[0] = plan->shapes[0];
        ws->act[0].data = p;
        p += align_up(plan->shapes[0].numel * es);
        char *buf[2] = {p, p + align_up(max_act(plan) * es)};
        for (size_t i = 1; i <= n; i++) {
            ws->act[i] = plan->shapes[i];
            ws->act[i].data = buf[(i - 1) & 1];
        }
        p += (n > 1 ? 2 : n) * align_up(max_act(plan) * es);
    }
    if (plan->backward) {
        ws->dinput = plan->shapes[0];
        ws->dinput.data = p;
        p += align_up(plan->shapes[0].numel * es);
        for (size_t i = 0; i < n; i++) {
            ws->dweight[i] = plan->wshapes[i];
            ws->dweight[i].data = plan->wshapes[i].ndim ? p : NULL;
            p += align_up(plan->wshapes[i].numel * es);
            ws->dbias[i] = plan->bshapes[i];
            ws->dbias[i].data = plan->bshapes[i].ndim ? p : NULL;
            p += align_up(plan->bshapes[i].numel * es);
        }
        size_t m = max_act(plan);
        ws->scratch[0] = p;
        p += align_up(m * es);
        ws->scratch[1] = p;
        p += align_up(m * es);
    }
    NN_ASSERT((size_t)(p - (char *)block) == plan->ws_bytes);
    return NN_OK;
}

void nn_ws_free(struct nn_ws *ws)
{
    if (!ws)
        return;
    free(ws->block);
    memset(ws, 0, sizeof *ws);
}

static int cancelled(const struct nn_ws *ws)
{
    return ws->cancel && atomic_load_explicit(ws->cancel, memory_order_relaxed);
}

/* Runs every layer. Only the output is scanned for inf/nan (a pass over each hidden
 * activation costs as much as the elementwise layers themselves); when it has one, the
 * layers are searched for the first output that has one, to name it. A hidden inf that
 * a later layer maps to a finite value (sigmoid(inf) = 1) is what torch returns too. */
static enum nn_status run_layers(const struct nn_net *net, struct nn_ws *ws, struct nn_err *err)
{
    int n = net->nlayers;
    for (int i = 0; i < n; i++) {
        const struct nn_layer *l = &net->layers[i];
        if (cancelled(ws))
            return nn_err_set(err, NN_ECANCELED, "layers[%d] (%s): the pass was cancelled", i,
                              nn_kinds[l->kind].name);
        nn_kind_ops[l->kind].fwd(l, &ws->act[i + 1], &ws->act[i]);
    }
    if (n == 0 || !nn_has_nonfinite(net->dtype, ws->act[n].data, ws->act[n].numel))
        return NN_OK;
    int i = 0;
    if (ws->plan->keep) {
        while (i < n - 1 &&
               !nn_has_nonfinite(net->dtype, ws->act[i + 1].data, ws->act[i + 1].numel))
            i++;
    } else { /* the hidden outputs were overwritten: run again, checking each (error path) */
        for (; i < n - 1; i++) {
            const struct nn_layer *l = &net->layers[i];
            nn_kind_ops[l->kind].fwd(l, &ws->act[i + 1], &ws->act[i]);
            if (nn_has_nonfinite(net->dtype, ws->act[i + 1].data, ws->act[i + 1].numel))
                break;
        }
    }
    return nn_err_set(err, NN_ENONFINITE,
                      "layers[%d] (%s): output has a non-finite value (inf or nan)", i,
                      nn_kinds[net->layers[i].kind].name);
}

enum nn_status nn_net_forward(const struct nn_net *net, struct nn_ws *ws, const void *input,
                              struct nn_err *err)
{
    const struct nn_plan *plan = ws->plan;
    NN_ASSERT(plan && plan->nlayers == net->nlayers && plan->dtype == net->dtype);
    if (nn_copy_has_nonfinite(net->dtype, ws->act[0].data, input, ws->act[0].numel))
        return nn_err_set(err, NN_EINVAL, "input: has a non-finite value (inf or nan)");
    return run_layers(net, ws, err);
}

enum nn_status nn_net_run(const struct nn_net *net, struct nn_ws *ws, struct nn_err *err)
{
    const struct nn_plan *plan = ws->plan;
    NN_ASSERT(plan && plan->nlayers == net->nlayers && plan->dtype == net->dtype);
    if (nn_has_nonfinite(net->dtype, ws->act[0].data, ws->act[0].numel))
        return nn_err_set(err, NN_EINVAL, "input: has a non-finite value (inf or nan)");
    return run_layers(net, ws, err);
}

enum nn_status nn_net_backward(const struct nn_net *net, struct nn_ws *ws, const void *dout,
                               struct nn_err *err)
{
    const struct nn_plan *plan = ws->plan;
    NN_ASSERT(plan && plan->nlayers == net->nlayers && plan->dtype == net->dtype);
    if (!plan->backward)
        return nn_err_set(err, NN_EINVAL, "backward: the workspace was planned without gradients");
    size_t es = nn_dtype_size(net->dtype);
    int n = net->nlayers;
    if (nn_has_nonfinite(net->dtype, dout, ws->act[n].numel))
        return nn_err_set(err, NN_ENONFINITE, "grad_output: has a non-finite value (inf or nan)");
    if (n == 0) {
        memcpy(ws->dinput.data, dout, ws->dinput.numel * es);
        return NN_OK;
    }
    const void *g = dout;
    int k = 0;
    for (int i = n - 1; i >= 0; i--) {
        const struct nn_layer *l = &net->layers[i];
        if (cancelled(ws))
            return nn_err_set(err, NN_ECANCELED, "layers[%d] (%s): the backward pass was cancelled",
                              i, nn_kinds[l->kind].name);
        void *dst = i == 0 ? ws->dinput.data : ws->scratch[k];
        /* every kernel writes (not adds to) dst and its parameter gradients */
        nn_kind_ops[l->kind].bwd(l, dst, ws->dweight[i].data, ws->dbias[i].data, g, &ws->act[i],
                                 &ws->act[i + 1]);
        g = dst;
        k ^= 1;
    }
    return NN_OK;
}
