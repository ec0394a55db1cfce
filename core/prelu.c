/* PReLU (torch.nn.PReLU): y = x for x > 0, else a*x, with one slope or one per channel;
 * the channel is dim 1 (a 1-D input has none). The tensor is viewed as (outer, C, inner). */
#include "core/nn_impl.h"

enum nn_status nn_prelu_check(const struct nn_layer *l, int idx, const struct nn_tensor *in,
                              struct nn_tensor *out, size_t max_elems, struct nn_err *err)
{
    char buf[160];
    const struct nn_tensor *w = &l->weight;
    if (w->ndim != 1)
        return nn_err_set(err, NN_EINVAL, "layers[%d] (prelu): weight must be 1-D [C], got %s", idx,
                          nn_shape_str(buf, sizeof buf, w->shape, w->ndim));
    size_t c = w->shape[0];
    if (c == 1)
        return NN_OK;
    if (in->ndim < 2)
        return nn_err_set(err, NN_EINVAL,
                          "layers[%d] (prelu): %zu weights but a 1-D input has no channel dim "
                          "(use 1 weight)",
                          idx, c);
    if (in->shape[1] != c)
        return nn_err_set(err, NN_EINVAL,
                          "layers[%d] (prelu): %zu weights but the input has %zu channels (dim 1)",
                          idx, c, in->shape[1]);
    return NN_OK;
}

/* C == 1: one slope for every element (outer = 1, inner = numel). */
static void split3(const struct nn_layer *l, const struct nn_tensor *in, size_t *outer, size_t *c,
                   size_t *inner)
{
    *c = l->weight.shape[0];
    if (*c == 1) {
        *outer = 1;
        *inner = in->numel;
        return;
    }
    *outer = in->shape[0];
    *inner = in->numel / (*outer * *c);
}

#define PRELU_FWD(T)                                                             \
    do {                                                                         \
        const T *x = in->data, *a = l->weight.data; /* (outer, C, inner), (C) */ \
        T *y = out->data;                           /* (outer, C, inner) */      \
        for (size_t o = 0; o < outer; o++)                                       \
            for (size_t ch = 0; ch < c; ch++) {                                  \
                double s = a[ch];                                                \
                size_t base = (o * c + ch) * inner;                              \
                for (size_t j = 0; j < inner; j++) {                             \
                    double v = x[base + j];                                      \
                    y[base + j] = (T)(v > 0 ? v : s * v);                        \
                }                                                                \
            }                                                                    \
    } while (0)

/* dx = g for x > 0 else a*g;  da[c] = sum of x*g over x <= 0 in channel c (both written) */
#define PRELU_BWD(T)                                              \
    do {                                                          \
        const T *x = in->data, *a = l->weight.data, *g = dout;    \
        T *dx = dinp, *da = dweight; /* (outer, C, inner), (C) */ \
        for (size_t ch = 0; ch < c; ch++) {                       \
            double s = a[ch], acc = 0;                            \
            for (size_t o = 0; o < outer; o++) {                  \
                size_t base = (o * c + ch) * inner;               \
                for (size_t j = 0; j < inner; j++) {              \
                    double v = x[base + j], gv = g[base + j];     \
                    if (v > 0) {                                  \
                        dx[base + j] = (T)gv;                     \
                    } else {                                      \
                        dx[base + j] = (T)(s * gv);               \
                        acc += v * gv;                            \
                    }                                             \
                }                                                 \
            }                                                     \
            if (da)                                               \
                da[ch] = (T)acc;                                  \
        }                                                         \
    } while (0)

void nn_prelu_fwd_t(const struct nn_layer *l, struct nn_tensor *out, const struct nn_tensor *in)
{
    size_t outer, c, inner;
    split3(l, in, &outer, &c, &inner);
    if (in->dtype == NN_F32)
        PRELU_FWD(float);
    else
        PRELU_FWD(double);
}

void nn_prelu_bwd_t(const struct nn_layer *l, void *dinp, void *dweight, void *dbias,
                    const void *dout, const struct nn_tensor *in, const struct nn_tensor *out)
{
    size_t outer, c, inner;
    split3(l, in, &outer, &c, &inner);
    if (in->dtype == NN_F32)
        PRELU_BWD(float);
    else
        PRELU_BWD(double);
}
