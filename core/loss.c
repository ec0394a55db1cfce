/* Losses (torch.nn.*Loss, reduction mean | sum), value and d loss / d out, in double. */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "core/nn_impl.h"

/* ---- elementwise losses: value of one element, *d = d value / d x ------------------ */

static double sign0(double v) { return v > 0 ? 1.0 : v < 0 ? -1.0 : 0.0; }

static double nn_mse_loss(double x, double t, double p, double *d)
{
    double e = x - t;
    *d = 2 * e;
    return e * e;
}

/* sign(0) = 0 */
static double nn_l1_loss(double x, double t, double p, double *d)
{
    double e = x - t;
    *d = sign0(e);
    return fabs(e);
}

/* p = beta >= 0. The derivative takes torch 1.13's branches in its order:
 * d <= -beta ? -1 : d >= beta ? 1 : d/beta, so beta == 0 gives -1 at d == 0 (the
 * forward is then l1). */
static double nn_smooth_l1_loss(double x, double t, double p, double *d)
{
    double e = x - t, a = fabs(e);
    *d = e <= -p ? -1.0 : e >= p ? 1.0 : e / p;
    return a < p ? 0.5 * e * e / p : a - 0.5 * p;
}

/* p = delta > 0 */
static double nn_huber_loss(double x, double t, double p, double *d)
{
    double e = x - t, a = fabs(e);
    if (a < p) {
        *d = e;
        return 0.5 * e * e;
    }
    *d = p * sign0(e);
    return p * (a - 0.5 * p);
}

static double nn_bce_with_logits_loss(double x, double t, double p, double *d)
{
    double e = exp(-fabs(x));
    *d = (x >= 0 ? 1.0 / (1.0 + e) : e / (1.0 + e)) - t;
    return fmax(x, 0.0) - x * t + log1p(e);
}

/* ---- class-index losses: one row (C) per sample; returns the row's value and writes
 * dx (C) = scale * d value / d x ------------------------------------------------------ */

/* -log_softmax(x)[c] = logsumexp(x) - x[c];  d = softmax - onehot */
#define CE_ROW(T)                                                                               \
    static double nn_cross_entropy_row_##T(const T *x, size_t C, size_t c, double scale, T *dx) \
    {                                                                                           \
        double mx = -INFINITY, s = 0;                                                           \
        for (size_t k = 0; k < C; k++)                                                          \
            mx = fmax(mx, (double)x[k]);                                                        \
        for (size_t k = 0; k < C; k++)                                                          \
            s += exp((double)x[k] - mx);                                                        \
        double lse = mx + log(s);                                                               \
        if (dx)                                                                                 \
            for (size_t k = 0; k < C; k++)                                                      \
                dx[k] = (T)(scale * (exp((double)x[k] - lse) - (k == c ? 1.0 : 0.0)));          \
        return lse - (double)x[c];                                                              \
    }
CE_ROW(float)
CE_ROW(double)

#define NLL_ROW(T)                                                                    \
    static double nn_nll_row_##T(const T *x, size_t C, size_t c, double scale, T *dx) \
    {                                                                                 \
        if (dx)                                                                       \
            for (size_t k = 0; k < C; k++)                                            \
                dx[k] = (T)(k == c ? -scale : 0.0);                                   \
        return -(double)x[c];                                                         \
    }
NLL_ROW(float)
NLL_ROW(double)

/* ---- the table ------------------------------------------------------------------- */

typedef double nn_elem_loss_fn(double x, double t, double p, double *d);
typedef double nn_row_f32_fn(const float *x, size_t C, size_t c, double scale, float *dx);
typedef double nn_row_f64_fn(const double *x, size_t C, size_t c, double scale, double *dx);
struct nn_loss_ops {
    nn_elem_loss_fn *elem;
    nn_row_f32_fn *row_f32;
    nn_row_f64_fn *row_f64;
};

#define NN_LOSS_INFO_(X, ID, nm, tn, impl, prm, def) \
    [NN_LOSS_##ID] = {                               \
        .name = #nm,                                 \
        .torch = #tn,                                \
        .class_target = NN_LOSS_IS_CLASS_##impl,     \
        .param = prm,                                \
        .param_def = def,                            \
    },
#define NN_LOSS_IS_CLASS_ELEM 0
#define NN_LOSS_IS_CLASS_CLASS 1
const struct nn_loss_info nn_losses[NN_LOSS_COUNT] = {NN_LOSS_TABLE(NN_LOSS_INFO_, _)};

#define NN_LOSS_OPS_ELEM(name)   \
    {                            \
        .elem = nn_##name##_loss \
    }
#define NN_LOSS_OPS_CLASS(name)                                             \
    {                                                                       \
        .row_f32 = nn_##name##_row_float, .row_f64 = nn_##name##_row_double \
    }
#define NN_LOSS_OPS_(X, ID, name, tn, impl, prm, def) [NN_LOSS_##ID] = NN_LOSS_OPS_##impl(name),
static const struct nn_loss_ops nn_loss_ops[NN_LOSS_COUNT] = {NN_LOSS_TABLE(NN_LOSS_OPS_, _)};

enum nn_status nn_loss_lookup(const char *name, enum nn_loss *loss, struct nn_err *err)
{
    for (int k = 0; k < NN_LOSS_COUNT; k++) {
        if (strcmp(name, nn_losses[k].name) == 0 || strcmp(name, nn_losses[k].torch) == 0) {
            *loss = (enum nn_loss)k;
            return NN_OK;
        }
    }
    char list[NN_ERR_LEN];
    size_t at = 0;
    list[0] = '\0';
    for (int k = 0; k < NN_LOSS_COUNT && at < sizeof list; k++)
        at += (size_t)snprintf(list + at, sizeof list - at, k ? ", %s" : "%s", nn_losses[k].name);
    return nn_err_set(err, NN_EINVAL, "loss.type: unknown loss \"%.40s\" (valid: %s)", name, list);
}

static enum nn_status loss_elem(const struct nn_loss_ops *ops, enum nn_reduction red, double p,
                                const struct nn_tensor *out, const struct nn_tensor *target,
                                double *value, void *dout)
{
    size_t n = out->numel;
    double scale = red == NN_MEAN ? 1.0 / (double)n : 1.0, s = 0, d;
    if (out->dtype == NN_F32) {
        const float *x = out->data, *t = target->data; /* (n) */
        float *dx = dout;                              /* (n) */
        for (size_t i = 0; i < n; i++) {
            s += ops->elem(x[i], t[i], p, &d);
            if (dx)
                dx[i] = (float)(scale * d);
        }
    } else {
        const double *x = out->data, *t = target->data;
        double *dx = dout;
        for (size_t i = 0; i < n; i++) {
            s += ops->elem(x[i], t[i], p, &d);
            if (dx)
                dx[i] = scale * d;
        }
    }
    *value = s * scale;
    return NN_OK;
}

enum nn_status nn_loss_forward(enum nn_loss loss, enum nn_reduction red, double param,
                               const struct nn_tensor *out, const struct nn_tensor *target,
                               const int64_t *classes, double *value, void *dout,
                               struct nn_err *err)
{
    char b1[160], b2[160];
    if ((int)loss < 0 || loss >= NN_LOSS_COUNT)
        return nn_err_set(err, NN_EINVAL, "loss.type: unknown loss %d", (int)loss);
    if (red != NN_MEAN && red != NN_SUM)
        return nn_err_set(err, NN_EINVAL, "loss.reduction: must be \"mean\" or \"sum\"");
    const struct nn_loss_info *li = &nn_losses[loss];
    const struct nn_loss_ops *ops = &nn_loss_ops[loss];
    if (li->param) {
        if (isnan(param))
            return nn_err_set(err, NN_EINVAL, "loss.%s: is not a number", li->param);
        if (loss == NN_LOSS_SMOOTH_L1 && param < 0)
            return nn_err_set(err, NN_EINVAL, "loss.beta: must be >= 0, got %g", param);
        if (loss == NN_LOSS_HUBER && !(param > 0))
            return nn_err_set(err, NN_EINVAL, "loss.delta: must be > 0, got %g", param);
    }
    enum nn_status st = NN_OK;
    if (!li->class_target) {
        if (!target || target->ndim != out->ndim ||
            memcmp(target->shape, out->shape, (size_t)out->ndim * sizeof(size_t)) != 0)
            return nn_err_set(err, NN_EINVAL, "loss.target: shape %s but the output is %s",
                              target ? nn_shape_str(b1, sizeof b1, target->shape, target->ndim)
                                     : "(none)",
                              nn_shape_str(b2, sizeof b2, out->shape, out->ndim));
        if (target->dtype != out->dtype || !target->data)
            return nn_err_set(err, NN_EINVAL, "loss.target: must be %s like the output",
                              nn_dtype_names[out->dtype]);
        if (nn_has_nonfinite(out->dtype, target->data, target->numel))
            return nn_err_set(err, NN_ENONFINITE,
                              "loss.target: has a non-finite value (inf or nan)");
        st = loss_elem(ops, red, param, out, target, value, dout);
    } else {
        size_t N, C;
        if (out->ndim == 2) {
            N = out->shape[0];
            C = out->shape[1];
        } else if (out->ndim == 1) {
            N = 1;
            C = out->shape[0];
        } else {
            return nn_err_set(err, NN_EINVAL, "loss: %s takes an output of [N, C] or [C], got %s",
                              li->name, nn_shape_str(b1, sizeof b1, out->shape, out->ndim));
        }
        if (target && target->ndim != 0 &&
            (out->ndim == 1 || target->ndim != 1 || target->shape[0] != N))
            return nn_err_set(err, NN_EINVAL,
                              "loss.target: shape %s but the output is %s (needs %s)",
                              nn_shape_str(b1, sizeof b1, target->shape, target->ndim),
                              nn_shape_str(b2, sizeof b2, out->shape, out->ndim),
                              out->ndim == 1 ? "one class index" : "[N] class indices");
        if (!classes)
            return nn_err_set(err, NN_EINVAL, "loss.target: class indices are missing");
        for (size_t i = 0; i < N; i++)
            if (classes[i] < 0 || (uint64_t)classes[i] >= C)
                return nn_err_set(err, NN_EINVAL, "loss.target: class %lld out of range [0, %zu)",
                                  (long long)classes[i], C);
        double scale = red == NN_MEAN ? 1.0 / (double)N : 1.0, s = 0;
        for (size_t i = 0; i < N; i++) {
            if (out->dtype == NN_F32)
                s += ops->row_f32((const float *)out->data + i * C, C, (size_t)classes[i], scale,
                                  dout ? (float *)dout + i * C : NULL);
            else
                s += ops->row_f64((const double *)out->data + i * C, C, (size_t)classes[i], scale,
                                  dout ? (double *)dout + i * C : NULL);
        }
        *value = s * scale;
    }
    if (st == NN_OK && !isfinite(*value))
        return nn_err_set(err, NN_ENONFINITE, "loss: the value is not finite (inf or nan)");
    return st;
}
