/* Elementwise activations: one scalar pair per ELEM row of NN_LAYER_TABLE, and the float
 * and double tensor loops generated from it. f32 values are computed in double and
 * rounded once, like the golden vectors (torch in f64, rounded to f32).
 *
 * static nn_<name>_fwd(x, l) = y;  nn_<name>_bwd(x, y, l) = dy/dx at x (y = fwd(x), rounded to
 * the tensor's dtype). Branches follow torch 1.13 exactly at the kinks (see
 * tests/golden/README.md): relu'(0) = 0, leaky'(0) = slope, elu'(0) = alpha, celu'(0) = 1,
 * hardtanh/relu6' = 0 on both bounds, softplus linear only for beta*x > threshold. */
#include <math.h>
#include <stdio.h>

#include "core/nn_impl.h"

/* ---- scalar pairs ---------------------------------------------------------------- */

/* exp(-|x|) based: never overflows */
static double sigmoid_d(double x)
{
    if (x >= 0)
        return 1.0 / (1.0 + exp(-x));
    double e = exp(x);
    return e / (1.0 + e);
}

static double nn_relu_fwd(double x, const struct nn_layer *l) { return x < 0 ? 0.0 : x; }
static double nn_relu_bwd(double x, double y, const struct nn_layer *l)
{
    return x > 0 ? 1.0 : 0.0;
}

static double nn_relu6_fwd(double x, const struct nn_layer *l)
{
    return x < 0 ? 0.0 : x > 6 ? 6.0 : x;
}
static double nn_relu6_bwd(double x, double y, const struct nn_layer *l)
{
    return x > 0 && x < 6 ? 1.0 : 0.0;
}

/* p[0] = negative_slope */
static double nn_leaky_relu_fwd(double x, const struct nn_layer *l)
{
    return x > 0 ? x : x * l->p[0];
}
static double nn_leaky_relu_bwd(double x, double y, const struct nn_layer *l)
{
    return x > 0 ? 1.0 : l->p[0];
}

/* p[0] = alpha; the negative branch covers x <= 0 */
static double nn_elu_fwd(double x, const struct nn_layer *l)
{
    return x > 0 ? x : l->p[0] * expm1(x);
}
static double nn_elu_bwd(double x, double y, const struct nn_layer *l)
{
    return x > 0 ? 1.0 : l->p[0] * exp(x);
}

/* p[0] = alpha (!= 0, checked) */
static double nn_celu_fwd(double x, const struct nn_layer *l)
{
    return x > 0 ? x : l->p[0] * expm1(x / l->p[0]);
}
static double nn_celu_bwd(double x, double y, const struct nn_layer *l)
{
    return x > 0 ? 1.0 : exp(x / l->p[0]);
}

#define SELU_ALPHA 1.6732632423543772848170429916717
#define SELU_SCALE 1.0507009873554804934193349852946
static double nn_selu_fwd(double x, const struct nn_layer *l)
{
    return SELU_SCALE * (x > 0 ? x : SELU_ALPHA * expm1(x));
}
static double nn_selu_bwd(double x, double y, const struct nn_layer *l)
{
    return x > 0 ? SELU_SCALE : SELU_SCALE * SELU_ALPHA * exp(x);
}

/* approx 0: x*Phi(x); 1: the tanh form. Both as torch writes them. */
#define GELU_K 0.7978845608028654 /* sqrt(2/pi) */
static double nn_gelu_fwd(double x, const struct nn_layer *l)
{
    if (l->approx)
        return 0.5 * x * (1.0 + tanh(GELU_K * (x + 0.044715 * x * x * x)));
    return x * 0.5 * (1.0 + erf(x * M_SQRT1_2));
}
static double nn_gelu_bwd(double x, double y, const struct nn_layer *l)
{
    if (l->approx) {
        double t = tanh(GELU_K * (x + 0.044715 * x * x * x));
        return 0.5 * (1.0 + t) + 0.5 * x * (1.0 - t * t) * GELU_K * (1.0 + 3 * 0.044715 * x * x);
    }
    double cdf = 0.5 * (1.0 + erf(x * M_SQRT1_2));
    double pdf = exp(-0.5 * x * x) * (0.5 * M_2_SQRTPI * M_SQRT1_2); /* 1/sqrt(2 pi) */
    return cdf + x * pdf;
}

static double nn_silu_fwd(double x, const struct nn_layer *l) { return x * sigmoid_d(x); }
static double nn_silu_bwd(double x, double y, const struct nn_layer *l)
{
    double s = sigmoid_d(x);
    return s * (1.0 + x * (1.0 - s));
}

static double nn_sigmoid_fwd(double x, const struct nn_layer *l) { return sigmoid_d(x); }
static double nn_sigmoid_bwd(double x, double y, const struct nn_layer *l)
{
    double s = sigmoid_d(x);
    return s * (1.0 - s);
}

static double nn_tanh_fwd(double x, const struct nn_layer *l) { return tanh(x); }
static double nn_tanh_bwd(double x, double y, const struct nn_layer *l)
{
    double t = tanh(x);
    return 1.0 - t * t;
}

/* p[0] = beta (!= 0, checked), p[1] = threshold; linear only when beta*x > threshold */
static double nn_softplus_fwd(double x, const struct nn_layer *l)
{
    double bx = l->p[0] * x;
    if (bx > l->p[1])
        return x;
    return (fmax(bx, 0.0) + log1p(exp(-fabs(bx)))) / l->p[0]; /* log1p(exp(bx)), no overflow */
}
static double nn_softplus_bwd(double x, double y, const struct nn_layer *l)
{
    double bx = l->p[0] * x;
    return bx > l->p[1] ? 1.0 : sigmoid_d(bx);
}

/* p[0] = min_val, p[1] = max_val (max > min, checked) */
static double nn_hardtanh_fwd(double x, const struct nn_layer *l)
{
    return x < l->p[0] ? l->p[0] : x > l->p[1] ? l->p[1] : x;
}
static double nn_hardtanh_bwd(double x, double y, const struct nn_layer *l)
{
    return x > l->p[0] && x < l->p[1] ? 1.0 : 0.0;
}

/* ---- parameter checks (torch's own rules) ------------------------------------------ */

enum nn_status nn_celu_check(const struct nn_layer *l, int idx, const struct nn_tensor *in,
                             struct nn_tensor *out, size_t max_elems, struct nn_err *err)
{
    if (l->p[0] == 0)
        return nn_err_set(err, NN_EINVAL, "layers[%d] (celu): alpha cannot be 0", idx);
    return NN_OK;
}

enum nn_status nn_softplus_check(const struct nn_layer *l, int idx, const struct nn_tensor *in,
                                 struct nn_tensor *out, size_t max_elems, struct nn_err *err)
{
    if (l->p[0] == 0)
        return nn_err_set(err, NN_EINVAL,
                          "layers[%d] (softplus): beta cannot be 0 (torch returns inf)", idx);
    return NN_OK;
}

enum nn_status nn_hardtanh_check(const struct nn_layer *l, int idx, const struct nn_tensor *in,
                                 struct nn_tensor *out, size_t max_elems, struct nn_err *err)
{
    if (!(l->p[1] > l->p[0]))
        return nn_err_set(err, NN_EINVAL,
                          "layers[%d] (hardtanh): max_val (%g) must be greater than min_val (%g)",
                          idx, l->p[1], l->p[0]);
    return NN_OK;
}

/* ---- generated tensor loops: dispatch on dtype once per tensor ---------------------- */

#define NN_ELEM_LOOPS_ELEM(name)                                                             \
    void nn_##name##_fwd_t(const struct nn_layer *l, struct nn_tensor *out,                  \
                           const struct nn_tensor *in)                                       \
    {                                                                                        \
        size_t n = in->numel;                                                                \
        if (in->dtype == NN_F32) {                                                           \
            const float *restrict x = in->data; /* (n) */                                    \
            float *restrict y = out->data;      /* (n) */                                    \
            for (size_t i = 0; i < n; i++)                                                   \
                y[i] = (float)nn_##name##_fwd(x[i], l);                                      \
        } else {                                                                             \
            const double *restrict x = in->data;                                             \
            double *restrict y = out->data;                                                  \
            for (size_t i = 0; i < n; i++)                                                   \
                y[i] = nn_##name##_fwd(x[i], l);                                             \
        }                                                                                    \
    }                                                                                        \
    void nn_##name##_bwd_t(const struct nn_layer *l, void *dinp, void *dweight, void *dbias, \
                           const void *dout, const struct nn_tensor *in,                     \
                           const struct nn_tensor *out)                                      \
    {                                                                                        \
        size_t n = in->numel;                                                                \
        if (in->dtype == NN_F32) {                                                           \
            const float *restrict x = in->data, *restrict y = out->data; /* (n) */           \
            const float *restrict g = dout;                              /* (n) */           \
            float *restrict dx = dinp;                                   /* (n) */           \
            for (size_t i = 0; i < n; i++)                                                   \
                dx[i] = (float)((double)g[i] * nn_##name##_bwd(x[i], y[i], l));              \
        } else {                                                                             \
            const double *restrict x = in->data, *restrict y = out->data;                    \
            const double *restrict g = dout;                                                 \
            double *restrict dx = dinp;                                                      \
            for (size_t i = 0; i < n; i++)                                                   \
                dx[i] = g[i] * nn_##name##_bwd(x[i], y[i], l);                               \
        }                                                                                    \
    }
#define NN_ELEM_LOOPS_TENSOR(name)
#define NN_ELEM_ROW_(X, ID, name, torch, impl, check, params) NN_ELEM_LOOPS_##impl(name)
NN_LAYER_TABLE(NN_ELEM_ROW_, _)
