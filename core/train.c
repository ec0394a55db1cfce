/* The training loop: see train.h. */
#include "core/train.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/nn_impl.h"

const char *const nn_monitor_names[NN_MONITOR_COUNT] = {
    [NN_MON_LOSS] = "loss", [NN_MON_VAL_LOSS] = "val_loss"};

/* ---- relud's shuffle: SplitMix64 + Fisher-Yates (train.h) ----------------------------- */
static uint64_t splitmix64(uint64_t *s)
{
    uint64_t z = (*s += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

/* Unbiased draw in [0, n), n >= 1: 64-bit draws below 2^64 mod n are rejected. */
static uint64_t draw_below(uint64_t *s, uint64_t n)
{
    uint64_t threshold = (0 - n) % n, r;
    do
        r = splitmix64(s);
    while (r < threshold);
    return r % n;
}

static void shuffle_order(size_t *order, size_t n, uint64_t *s)
{
    for (size_t i = 0; i < n; i++)
        order[i] = i;
    for (size_t i = n; i-- > 1;) {
        size_t j = (size_t)draw_below(s, (uint64_t)i + 1), t = order[i];
        order[i] = order[j];
        order[j] = t;
    }
}

/* ---- planning ---------------------------------------------------------------------------- */
/* Elements per row of a [N, ...] tensor. */
static size_t row_elems(const struct nn_tensor *t)
{
    return t->shape[0] ? t->numel / t->shape[0] : 0;
}

/* The rows of set match each other and the net; `what` is "" or "validation.". */
static enum nn_status check_set(const struct nn_net *net, const struct nn_train_cfg *c,
                                const struct nn_train_set *s, const char *what, struct nn_err *err)
{
    char b1[160], b2[160];
    const struct nn_tensor *x = &s->x;
    if (x->ndim < 2 || !x->data)
        return nn_err_set(err, NN_EINVAL,
                          "%sinput: expected rows [N, features...] (rank >= 2), got %s", what,
                          nn_shape_str(b1, sizeof b1, x->shape, x->ndim));
    if (x->shape[0] == 0 || x->numel == 0)
        return nn_err_set(err, NN_EINVAL, "%sinput: no rows", what);
    if (x->dtype != net->dtype)
        return nn_err_set(err, NN_EINVAL, "%sinput: is %s but the model is %s", what,
                          nn_dtype_names[x->dtype], nn_dtype_names[net->dtype]);
    if (nn_has_nonfinite(x->dtype, x->data, x->numel))
        return nn_err_set(err, NN_EINVAL, "%sinput: has a non-finite value (inf or nan)", what);
    size_t n = x->shape[0];
    if (nn_losses[c->loss].class_target) {
        if (!s->classes)
            return nn_err_set(err, NN_EINVAL, "%starget: %s takes class indices [N]", what,
                              nn_losses[c->loss].name);
        return NN_OK; /* their count and range: check_out */
    }
    const struct nn_tensor *y = &s->y;
    if (!y->ndim || !y->data || y->shape[0] != n)
        return nn_err_set(err, NN_EINVAL, "%starget: expected %zu rows like the input, got %s",
                          what, n, nn_shape_str(b2, sizeof b2, y->shape, y->ndim));
    if (y->dtype != net->dtype)
        return nn_err_set(err, NN_EINVAL, "%starget: must be %s like the model", what,
                          nn_dtype_names[net->dtype]);
    if (nn_has_nonfinite(y->dtype, y->data, y->numel))
        return nn_err_set(err, NN_EINVAL, "%starget: has a non-finite value (inf or nan)", what);
    return NN_OK;
}

/* The output of a pass planned for rows of set fits its targets. */
static enum nn_status check_out(const struct nn_plan *p, const struct nn_train_cfg *c,
                                const struct nn_train_set *s, const char *what, struct nn_err *err)
{
    char b1[160], b2[160];
    const struct nn_tensor *o = &p->shapes[p->nlayers];
    if (nn_losses[c->loss].class_target) {
        if (o->ndim != 2)
            return nn_err_set(
                err, NN_EINVAL, "loss: %s takes an output of [N, C], the model gives %s",
                nn_losses[c->loss].name, nn_shape_str(b1, sizeof b1, o->shape, o->ndim));
        size_t C = o->shape[1];
        for (size_t i = 0; i < s->x.shape[0]; i++)
            if (s->classes[i] < 0 || (uint64_t)s->classes[i] >= C)
                return nn_err_set(err, NN_EINVAL, "%starget[%zu]: class %lld out of range [0, %zu)",
                                  what, i, (long long)s->classes[i], C);
        return NN_OK;
    }
    const struct nn_tensor *y = &s->y;
    int same = o->ndim == y->ndim;
    for (int d = 1; same && d < o->ndim; d++)
        same = o->shape[d] == y->shape[d];
    if (!same) {
        size_t want[NN_MAX_DIMS];
        memcpy(want, y->shape, sizeof want);
        want[0] = o->shape[0];
        return nn_err_set(err, NN_EINVAL, "%starget: rows of %s but the model's output is %s", what,
                          nn_shape_str(b1, sizeof b1, want, y->ndim),
                          nn_shape_str(b2, sizeof b2, o->shape, o->ndim));
    }
    return NN_OK;
}

/* Plans a pass over `rows` rows of x's row shape. */
static enum nn_status plan_pass(const struct nn_net *net, const struct nn_train_cfg *c,
                                const struct nn_tensor *x, size_t rows, unsigned flags,
                                const char *what, struct nn_plan *p, struct nn_err *err)
{
    size_t shape[NN_MAX_DIMS];
    memcpy(shape, x->shape, sizeof shape);
    shape[0] = rows;
    struct nn_err e;
    enum nn_status st = nn_net_check(net, shape, x->ndim, flags, c->max_elems, p, &e);
    if (st)
        return nn_err_set(err, st, "%s%s", what, e.msg);
    if (c->max_ws_bytes && p->ws_bytes > c->max_ws_bytes) {
        nn_plan_free(p);
        return nn_err_set(err, NN_ETOOBIG,
                          "%sworkspace: %zu rows need %zu bytes, over max_workspace_bytes (%zu)",
                          what, rows, p->ws_bytes, c->max_ws_bytes);
    }
    return NN_OK;
}

static int add_bytes(size_t *total, size_t a, size_t b)
{
    size_t p;
    return nn_mul_ovf(a, b, &p) || nn_add_ovf(*total, p, total);
}

static enum nn_status check_cfg(const struct nn_train_cfg *c, int have_val, struct nn_err *err)
{
    enum nn_status st;
    if (c->batch_size < 1)
        return nn_err_set(err, NN_EINVAL, "batch_size: must be >= 1");
    if (c->steps < 0 || (c->steps == 0 && c->epochs < 1))
        return nn_err_set(err, NN_EINVAL, "%s: must be >= 1", c->steps ? "steps" : "epochs");
    if (!(c->clip >= 0) || !isfinite(c->clip))
        return nn_err_set(err, NN_EINVAL, "clip_grad_norm: expected a max_norm > 0");
    if ((st = nn_optim_check(&c->optim, err)))
        return st;
    if (c->have_sched && (st = nn_sched_check(&c->sched, err)))
        return st;
    if (c->have_sched && nn_scheds[c->sched.type].metric && !c->sched_per_step &&
        c->sched_monitor == NN_MON_VAL_LOSS && !have_val)
        return nn_err_set(err, NN_EINVAL,
                          "lr_scheduler.monitor: \"val_loss\" needs \"validation\" data");
    if (c->early_stop) {
        if (c->es_patience < 0)
            return nn_err_set(err, NN_EINVAL, "early_stopping.patience: must be >= 0");
        if (!(c->es_min_delta >= 0) || !isfinite(c->es_min_delta))
            return nn_err_set(err, NN_EINVAL, "early_stopping.min_delta: must be >= 0");
        if (c->es_monitor == NN_MON_VAL_LOSS && !have_val)
            return nn_err_set(err, NN_EINVAL,
                              "early_stopping.monitor: \"val_loss\" needs \"validation\" data");
    }
    return NN_OK;
}

/* Plans the passes into plan[3] (have[] says which) and sums every byte init allocates. */
static enum nn_status plan_all(const struct nn_net *net, const struct nn_train_cfg *c,
                               const struct nn_train_set *train, const struct nn_train_set *val,
                               struct nn_plan plan[3], int have[3], size_t *bytes,
                               struct nn_err *err)
{
    enum nn_status st;
    memset(have, 0, 3 * sizeof *have);
    if ((st = check_cfg(c, val != NULL, err)) || (st = check_set(net, c, train, "", err)) ||
        (val && (st = check_set(net, c, val, "validation.", err))))
        return st;
    size_t n = train->x.shape[0], bs = c->batch_size < n ? c->batch_size : n;
    size_t rest = n % bs, es = nn_dtype_size(net->dtype);
    if ((st = plan_pass(net, c, &train->x, bs, NN_PLAN_BACKWARD, "", &plan[0], err)))
        return st;
    have[0] = 1;
    if ((st = check_out(&plan[0], c, train, "", err)))
        goto fail;
    if (rest) {
        if ((st = plan_pass(net, c, &train->x, rest, NN_PLAN_BACKWARD, "", &plan[1], err)))
            goto fail;
        have[1] = 1;
    }
    if (val) {
        if ((st = plan_pass(net, c, &val->x, val->x.shape[0], 0, "validation.", &plan[2], err)))
            goto fail;
        have[2] = 1;
        if ((st = check_out(&plan[2], c, val, "validation.", err)))
            goto fail;
    }
    const struct nn_tensor *out = &plan[0].shapes[net->nlayers];
    size_t total = 0;
    int ovf = 0;
    for (int k = 0; k < 3; k++)
        if (have[k])
            ovf |= nn_add_ovf(total, plan[k].ws_bytes, &total);
    ovf |= nn_add_ovf(total, nn_optim_state_bytes(&c->optim, net), &total);
    ovf |= add_bytes(&total, n, sizeof(size_t)); /* order */
    ovf |= add_bytes(&total, out->numel, es);    /* dout */
    ovf |= add_bytes(&total, (size_t)net->nlayers, sizeof(struct nn_layer_stats));
    if (nn_losses[c->loss].class_target)
        ovf |= add_bytes(&total, bs, sizeof(int64_t)); /* cbuf */
    else
        ovf |= add_bytes(&total, bs * row_elems(&train->y), es); /* tbuf */
    if (ovf) {
        st = nn_err_set(err, NN_ETOOBIG, "training: its memory size overflows");
        goto fail;
    }
    *bytes = total;
    return NN_OK;
fail:
    for (int k = 0; k < 3; k++)
        if (have[k])
            nn_plan_free(&plan[k]);
    memset(have, 0, 3 * sizeof *have);
    return st;
}

enum nn_status nn_train_plan(const struct nn_net *net, const struct nn_train_cfg *c,
                             const struct nn_train_set *train, const struct nn_train_set *val,
                             size_t *bytes, struct nn_err *err)
{
    struct nn_plan plan[3];
    int have[3];
    enum nn_status st = plan_all(net, c, train, val, plan, have, bytes, err);
    for (int k = 0; k < 3; k++)
        if (have[k])
            nn_plan_free(&plan[k]);
    return st;
}

enum nn_status nn_trainer_init(struct nn_trainer *t, struct nn_net *net,
                               const struct nn_train_cfg *c, const struct nn_train_set *train,
                               const struct nn_train_set *val, struct nn_err *err)
{
    memset(t, 0, sizeof *t);
    enum nn_status st = plan_all(net, c, train, val, t->plan, t->have, &t->bytes, err);
    if (st)
        return st;
    t->net = net;
    t->cfg = *c;
    t->train = *train;
    if (val) {
        t->val = *val;
        t->have_val = 1;
    }
    t->n = train->x.shape[0];
    size_t bs = c->batch_size < t->n ? c->batch_size : t->n;
    t->steps_per_epoch = (long)((t->n + bs - 1) / bs);
    t->total_steps = c->steps ? c->steps : c->epochs * t->steps_per_epoch;
    if (!c->steps && t->total_steps / t->steps_per_epoch != c->epochs) {
        st = nn_err_set(err, NN_ETOOBIG, "epochs: %ld epochs of %ld steps overflow", c->epochs,
                        t->steps_per_epoch);
        goto fail;
    }
    t->rng = c->seed;
    t->es_best = INFINITY;
    size_t es = nn_dtype_size(net->dtype);
    const struct nn_tensor *out = &t->plan[0].shapes[net->nlayers];
    t->order = malloc(t->n * sizeof *t->order);
    t->dout = malloc(out->numel * es);
    t->stats = calloc((size_t)(net->nlayers ? net->nlayers : 1), sizeof *t->stats);
    if (nn_losses[c->loss].class_target)
        t->cbuf = malloc(bs * sizeof *t->cbuf);
    else
        t->tbuf = malloc(bs * row_elems(&train->y) * es);
    if (!t->order || !t->dout || !t->stats || (!t->cbuf && !t->tbuf)) {
        st = nn_err_set(err, NN_ENOMEM, "training: out of memory");
        goto fail;
    }
    for (size_t i = 0; i < t->n; i++)
        t->order[i] = i;
    for (int k = 0; k < 3; k++) {
        if (!t->have[k])
            continue;
        if ((st = nn_ws_init(&t->ws[k], &t->plan[k], err))) {
            t->have[k] = 0; /* nn_ws_init freed nothing of its own on failure */
            nn_plan_free(&t->plan[k]);
            goto fail;
        }
    }
    if (t->have_val) /* the validation input stays in its workspace: passes never write act[0] */
        memcpy(t->ws[2].act[0].data, val->x.data, val->x.numel * es);
    if ((st = nn_optim_init(&t->opt, &c->optim, net, err)))
        goto fail;
    if (c->have_sched)
        nn_sched_init(&t->sched, &c->sched, c->optim.lr);
    return NN_OK;
fail:
    nn_trainer_free(t);
    return st;
}

void nn_trainer_set_cancel(struct nn_trainer *t, const atomic_int *cancel)
{
    for (int k = 0; k < 3; k++)
        if (t->have[k])
            t->ws[k].cancel = cancel;
}

int nn_trainer_done(const struct nn_trainer *t) { return t->stopped || t->step >= t->total_steps; }

void nn_trainer_free(struct nn_trainer *t)
{
    if (!t)
        return;
    if (t->net && t->stats)
        nn_stats_free(t->stats, t->net->nlayers);
    for (int k = 0; k < 3; k++) {
        if (t->have[k]) {
            nn_ws_free(&t->ws[k]);
            nn_plan_free(&t->plan[k]);
        }
    }
    nn_optim_free(&t->opt);
    free(t->order);
    free(t->dout);
    free(t->stats);
    free(t->tbuf);
    free(t->cbuf);
    memset(t, 0, sizeof *t);
}

/* ---- a step ---------------------------------------------------------------------------- */
/* err := "<prefix>: <err>" keeping the status. */
static enum nn_status prefixed(struct nn_err *err, enum nn_status st, const char *fmt, long v)
{
    struct nn_err e = err ? *err : (struct nn_err){{0}};
    char pre[48];
    snprintf(pre, sizeof pre, fmt, v);
    return nn_err_set(err, st, "%s: %s", pre, e.msg);
}

/* The first layer whose weight or bias (or their gradients, grads) holds an inf or nan;
 * -1 if none. *which gets "weight" or "bias". */
static int nonfinite_param(const struct nn_net *net, const struct nn_ws *ws, int grads,
                           const char **which)
{
    for (int i = 0; i < net->nlayers; i++) {
        const struct nn_tensor *w = grads ? &ws->dweight[i] : &net->layers[i].weight;
        const struct nn_tensor *b = grads ? &ws->dbias[i] : &net->layers[i].bias;
        if (w->ndim && nn_has_nonfinite(net->dtype, w->data, w->numel)) {
            *which = "weight";
            return i;
        }
        if (b->ndim && nn_has_nonfinite(net->dtype, b->data, b->numel)) {
            *which = "bias";
            return i;
        }
    }
    return -1;
}

/* The loss of ws's output against rows of targets (tensor y or classes). */
static enum nn_status batch_loss(const struct nn_trainer *t, const struct nn_ws *ws,
                                 const struct nn_tensor *y, const int64_t *classes, size_t rows,
                                 double *value, void *dout, struct nn_err *err)
{
    const struct nn_tensor *out = &ws->act[t->net->nlayers];
    struct nn_tensor target = {0};
    if (classes) {
        target.dtype = t->net->dtype;
        target.ndim = 1;
        target.shape[0] = rows;
        target.numel = rows;
    } else {
        target = *y;
        target.shape[0] = rows;
        target.numel = rows * row_elems(y);
    }
    return nn_loss_forward(t->cfg.loss, t->cfg.reduction, t->cfg.loss_param, out, &target, classes,
                           value, dout, err);
}

/* nn_net_backward without the input's gradient, which training never reads: layer 0's kernel
 * gets no dinp when it does without one (linear: it skips the GEMM, a third of a first
 * Linear's backward), and a first layer without parameters is not run. The same checks,
 * messages and kernels otherwise, so every parameter gradient is nn_net_backward's. */
static enum nn_status backward(const struct nn_net *net, struct nn_ws *ws, const void *dout,
                               struct nn_err *err)
{
    int n = net->nlayers;
    if (n == 0 || !ws->plan->backward)
        return nn_net_backward(net, ws, dout, err);
    if (nn_has_nonfinite(net->dtype, dout, ws->act[n].numel))
        return nn_err_set(err, NN_ENONFINITE, "grad_output: has a non-finite value (inf or nan)");
    const void *g = dout;
    int k = 0;
    for (int i = n - 1; i >= 0; i--) {
        const struct nn_layer *l = &net->layers[i];
        if (ws->cancel && atomic_load_explicit(ws->cancel, memory_order_relaxed))
            return nn_err_set(err, NN_ECANCELED, "layers[%d] (%s): the backward pass was cancelled",
                              i, nn_kinds[l->kind].name);
        void *dst = i ? ws->scratch[k] : l->kind == NN_LINEAR ? NULL : ws->dinput.data;
        if (i == 0 && !ws->dweight[0].data && !ws->dbias[0].data)
            break;
        nn_kind_ops[l->kind].bwd(l, dst, ws->dweight[i].data, ws->dbias[i].data, g, &ws->act[i],
                                 &ws->act[i + 1]);
        g = dst;
        k ^= 1;
    }
    return NN_OK;
}

/* The epoch's end: validation, the scheduler, early stopping. */
static enum nn_status epoch_end(struct nn_trainer *t, struct nn_train_step *o, struct nn_err *err)
{
    enum nn_status st;
    o->epoch_end = 1;
    o->epoch_loss = t->epoch_loss_sum / (double)t->steps_per_epoch;
    o->val_loss = NAN;
    t->epoch_pos = 0;
    t->epoch_loss_sum = 0;
    if (t->have_val) {
        struct nn_ws *ws = &t->ws[2];
        if ((st = nn_net_run(t->net, ws, err)) ||
            (st = batch_loss(t, ws, &t->val.y, t->val.classes, t->val.x.shape[0], &o->val_loss,
                             NULL, err)))
            return prefixed(err, st, "epoch %ld: validation", o->epoch);
    }
    const struct nn_train_cfg *c = &t->cfg;
    if (c->have_sched && !c->sched_per_step)
        nn_sched_step(&t->sched, c->sched_monitor == NN_MON_VAL_LOSS ? o->val_loss : o->epoch_loss);
    if (c->early_stop) {
        double v = c->es_monitor == NN_MON_VAL_LOSS ? o->val_loss : o->epoch_loss;
        if (v < t->es_best - c->es_min_delta) {
            t->es_best = v;
            t->es_wait = 0;
        } else if (++t->es_wait >= c->es_patience) {
            t->stopped = o->stop = 1;
        }
    }
    return NN_OK;
}

enum nn_status nn_trainer_step(struct nn_trainer *t, int want_stats, struct nn_train_step *o,
                               struct nn_err *err)
{
    NN_ASSERT(!nn_trainer_done(t));
    const struct nn_train_cfg *c = &t->cfg;
    struct nn_net *net = t->net;
    enum nn_status st;
    memset(o, 0, sizeof *o);
    o->step = t->step + 1;
    o->epoch = t->step / t->steps_per_epoch + 1;
    o->val_loss = o->epoch_loss = NAN;
    if (t->epoch_pos == 0 && c->shuffle)
        shuffle_order(t->order, t->n, &t->rng);
    /* gather the batch's rows into the workspace's input and the target buffers */
    size_t bs = c->batch_size < t->n ? c->batch_size : t->n;
    size_t start = (size_t)t->epoch_pos * bs, rows = t->n - start < bs ? t->n - start : bs;
    struct nn_ws *ws = &t->ws[rows == bs ? 0 : 1];
    size_t es = nn_dtype_size(net->dtype), xrow = row_elems(&t->train.x) * es;
    size_t yrow = t->tbuf ? row_elems(&t->train.y) * es : 0;
    for (size_t r = 0; r < rows; r++) {
        size_t i = t->order[start + r];
        memcpy((char *)ws->act[0].data + r * xrow, (const char *)t->train.x.data + i * xrow, xrow);
        if (t->tbuf)
            memcpy((char *)t->tbuf + r * yrow, (const char *)t->train.y.data + i * yrow, yrow);
        else
            t->cbuf[r] = t->train.classes[i];
    }
    struct nn_tensor y = t->train.y;
    y.data = t->tbuf;
    /* zero_grad (backward writes), forward, loss, backward */
    if ((st = nn_net_run(net, ws, err)) ||
        (st = batch_loss(t, ws, &y, t->cbuf, rows, &o->loss, t->dout, err)) ||
        (st = backward(net, ws, t->dout, err)))
        return prefixed(err, st, "step %ld", o->step);
    const char *which;
    int bad = nonfinite_param(net, ws, 1, &which);
    if (bad >= 0)
        return nn_err_set(err, NN_ENONFINITE,
                          "step %ld: layers[%d] (%s): %s gradient has a non-finite value (inf or "
                          "nan): the gradients exploded",
                          o->step, bad, nn_kinds[net->layers[bad].kind].name, which);
    if (want_stats) {
        nn_stats_free(t->stats, net->nlayers);
        if ((st = nn_stats_compute(net, ws, t->stats, err)))
            return prefixed(err, st, "step %ld", o->step);
        o->stats = t->stats;
    }
    /* clip_grad_norm_ (with no clip: the same norm, nothing scaled); without clipping the
     * norm's pass over the gradients and the scan of the new parameters are folded into the
     * optimizer's pass (the same numbers; the net is discarded after an error either way) */
    o->lr = c->have_sched ? t->sched.lr : c->optim.lr;
    int stepped = 0, became_bad = 1;
    if (c->clip > 0) {
        o->grad_norm = nn_clip_grad_norm(net, ws, c->clip);
    } else {
        double ss;
        became_bad = nn_optim_step_fused(&t->opt, net, ws, o->lr, &ss);
        o->grad_norm = sqrt(ss);
        stepped = 1;
    }
    if (!isfinite(o->grad_norm))
        return nn_err_set(err, NN_ENONFINITE,
                          "step %ld: the gradients' total norm is not finite (it overflowed): the "
                          "gradients exploded",
                          o->step);
    o->clipped = c->clip > 0 && c->clip / (o->grad_norm + 1e-6) < 1.0;
    if (!stepped)
        nn_optim_step(&t->opt, net, ws, o->lr);
    if (became_bad && (bad = nonfinite_param(net, ws, 0, &which)) >= 0)
        return nn_err_set(err, NN_ENONFINITE,
                          "step %ld: layers[%d] (%s): %s became non-finite (inf or nan) in the "
                          "optimizer step (lr %g too high?)",
                          o->step, bad, nn_kinds[net->layers[bad].kind].name, which, o->lr);
    t->step++;
    t->epoch_pos++;
    t->epoch_loss_sum += o->loss;
    if (c->have_sched && c->sched_per_step)
        nn_sched_step(&t->sched, o->loss);
    if (t->epoch_pos == t->steps_per_epoch && (st = epoch_end(t, o, err)))
        return st;
    return NN_OK;
}
