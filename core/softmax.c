/* softmax and log_softmax along one dim (torch.nn.Softmax / LogSoftmax), max-subtracted
 * and computed in double. The tensor is viewed as (outer, n, inner) around dim. */
#include <math.h>

#include "core/nn_impl.h"

static int norm_dim(int dim, int ndim) { return dim < 0 ? dim + ndim : dim; }

static void split3(const struct nn_tensor *t, int dim, size_t *outer, size_t *n, size_t *inner)
{
    int d = norm_dim(dim, t->ndim);
    *outer = 1;
    *inner = 1;
    for (int i = 0; i < d; i++)
        *outer *= t->shape[i];
    for (int i = d + 1; i < t->ndim; i++)
        *inner *= t->shape[i];
    *n = t->shape[d];
}

static enum nn_status check_dim(const char *kname, const struct nn_layer *l, int idx,
                                const struct nn_tensor *in, struct nn_err *err)
{
    if (l->dim < -in->ndim || l->dim >= in->ndim)
        return nn_err_set(err, NN_EINVAL,
                          "layers[%d] (%s): dim %d out of range [%d, %d] for a %d-D input", idx,
                          kname, l->dim, -in->ndim, in->ndim - 1, in->ndim);
    return NN_OK;
}

enum nn_status nn_softmax_check(const struct nn_layer *l, int idx, const struct nn_tensor *in,
                                struct nn_tensor *out, size_t max_elems, struct nn_err *err)
{
    return check_dim("softmax", l, idx, in, err);
}

enum nn_status nn_log_softmax_check(const struct nn_layer *l, int idx, const struct nn_tensor *in,
                                    struct nn_tensor *out, size_t max_elems, struct nn_err *err)
{
    return check_dim("log_softmax", l, idx, in, err);
}

/* T: element type. LOG: 0 softmax, 1 log_softmax. */
#define SOFTMAX_FWD(T, LOG)                                         \
    do {                                                            \
        const T *x = in->data; /* (outer, n, inner) */              \
        T *y = out->data;      /* (outer, n, inner) */              \
        for (size_t o = 0; o < outer; o++)                          \
            for (size_t j = 0; j < inner; j++) {                    \
                const T *xr = x + o * n * inner + j;                \
                T *yr = y + o * n * inner + j;                      \
                double mx = -INFINITY, s = 0;                       \
                for (size_t k = 0; k < n; k++)                      \
                    mx = fmax(mx, (double)xr[k * inner]);           \
                for (size_t k = 0; k < n; k++)                      \
                    s += exp((double)xr[k * inner] - mx);           \
                double ls = log(s);                                 \
                for (size_t k = 0; k < n; k++) {                    \
                    double z = (double)xr[k * inner] - mx;          \
                    yr[k * inner] = (T)(LOG ? z - ls : exp(z) / s); \
                }                                                   \
            }                                                       \
    } while (0)

/* softmax: dx = s*(g - sum(g*s));  log_softmax: dx = g - exp(y)*sum(g) */
#define SOFTMAX_BWD(T, LOG)                                                \
    do {                                                                   \
        const T *y = out->data, *g = dout; /* (outer, n, inner) */         \
        T *dx = dinp;                      /* (outer, n, inner) */         \
        for (size_t o = 0; o < outer; o++)                                 \
            for (size_t j = 0; j < inner; j++) {                           \
                size_t base = o * n * inner + j;                           \
                double s = 0;                                              \
                for (size_t k = 0; k < n; k++) {                           \
                    size_t i = base + k * inner;                           \
                    s += LOG ? (double)g[i] : (double)g[i] * (double)y[i]; \
                }                                                          \
                for (size_t k = 0; k < n; k++) {                           \
                    size_t i = base + k * inner;                           \
                    double v = LOG ? (double)g[i] - exp((double)y[i]) * s  \
                                   : (double)y[i] * ((double)g[i] - s);    \
                    dx[i] = (T)v;                                          \
                }                                                          \
            }                                                              \
    } while (0)

void nn_softmax_fwd_t(const struct nn_layer *l, struct nn_tensor *out, const struct nn_tensor *in)
{
    size_t outer, n, inner;
    split3(in, l->dim, &outer, &n, &inner);
    if (in->dtype == NN_F32)
        SOFTMAX_FWD(float, 0);
    else
        SOFTMAX_FWD(double, 0);
}

void nn_log_softmax_fwd_t(const struct nn_layer *l, struct nn_tensor *out,
                          const struct nn_tensor *in)
{
    size_t outer, n, inner;
    split3(in, l->dim, &outer, &n, &inner);
    if (in->dtype == NN_F32)
        SOFTMAX_FWD(float, 1);
    else
        SOFTMAX_FWD(double, 1);
}

void nn_softmax_bwd_t(const struct nn_layer *l, void *dinp, void *dweight, void *dbias,
                      const void *dout, const struct nn_tensor *in, const struct nn_tensor *out)
{
    size_t outer, n, inner;
    split3(in, l->dim, &outer, &n, &inner);
    if (in->dtype == NN_F32)
        SOFTMAX_BWD(float, 0);
    else
        SOFTMAX_BWD(double, 0);
}

void nn_log_softmax_bwd_t(const struct nn_layer *l, void *dinp, void *dweight, void *dbias,
                          const void *dout, const struct nn_tensor *in, const struct nn_tensor *out)
{
    size_t outer, n, inner;
    split3(in, l->dim, &outer, &n, &inner);
    if (in->dtype == NN_F32)
        SOFTMAX_BWD(float, 1);
    else
        SOFTMAX_BWD(double, 1);
}
