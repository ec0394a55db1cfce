/* Linear (torch.nn.Linear): out = inp . W^T + b over the last dim, on OpenBLAS.
 *
 * gemv or gemm, measured on this machine (AMD EPYC, 2 cores, OpenBLAS 0.3.21 pthread,
 * median of 15 runs, f32, y (M, N) = x (M, K) . W (N, K)^T):
 *   K=1024 N=1024  M=1: sgemm 140 us, sgemv 23 us;  M=4: 286 / 94;  M=8: 305 / 189;
 *                  M=16: 228 / 371;  M=32: 358 / 747
 *   K=4096 N=1024  M=1: 536 / 103;  M=8: 1221 / 792;  M=16: 937 / 1692
 *   K=784  N=128   M=1: 22.6 / 2.2; M=8: 28.9 / 17.6; M=16: 22.1 / 35.9
 *   K=128  N=64    M=1: 1.8 / 0.3;  M=4: 1.7 / 1.1;   M=8: 2.3 / 2.2
 *   K=10   N=5     M=1: 0.1 / 0.04; M=6: 0.1 / 0.2
 *   K=4096 N=4096  M=1: 3.0 ms / 12.6 ms; M=3: 8.9 / 13.7; M=4: 11.8 / 13.0; M=8: 23.1 / 14.1
 *   K=8192 N=8192  M=1: 13.7 ms / 53.4 ms; M=3: 40.7 / 56.7; M=4: 55.8 / 54.1; M=8: 111 / 58
 * (the transposed call, C^T = W . x^T, times the same). A weight out of the cache is read
 * from memory once per sgemv row but packed once per sgemm (about the cost of 4 rows). So:
 * one sgemv per row while M <= 3 for weights over 8 M values, M <= 8 down to 8192 values,
 * M <= 4 below that, M == 1 always; sgemm otherwise.
 * Bias: the output rows are preset to the bias and the BLAS call uses beta = 1. A bare
 * sgemm with beta = 0 makes the same pass over C to zero it, so the bias costs nothing. */
#include <cblas.h>
#include <limits.h>
#include <string.h>

#include "core/nn_impl.h"

static int use_gemv(size_t B, size_t IN, size_t OUT)
{
    if (B == 1)
        return 1;
    if (IN * OUT > ((size_t)8 << 20)) /* over 32 MB of float32: out of cache */
        return B <= 3;
    return B <= (IN * OUT >= 8192 ? 8 : 4);
}

static void preset_rows(enum nn_dtype dt, void *out, const void *bias, size_t B, size_t OUT)
{
    size_t row = OUT * nn_dtype_size(dt);
    for (size_t b = 0; b < B; b++)
        memcpy((char *)out + b * row, bias, row);
}

void nn_linear_fwd(enum nn_dtype dt, void *out, const void *inp, const void *weight,
                   const void *bias, size_t B, size_t IN, size_t OUT)
{
    /* out (B, OUT), inp (B, IN), weight (OUT, IN), bias (OUT) or NULL */
    int b_ = (int)B, in = (int)IN, o = (int)OUT;
    if (bias)
        preset_rows(dt, out, bias, B, OUT);
    if (dt == NN_F32) {
        float beta = bias ? 1.0f : 0.0f;
        const float *x = inp, *w = weight;
        float *y = out;
        if (use_gemv(B, IN, OUT)) {
            for (size_t b = 0; b < B; b++)
                cblas_sgemv(CblasRowMajor, CblasNoTrans, o, in, 1.0f, w, in, x + b * IN, 1, beta,
                            y + b * OUT, 1);
        } else {
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, b_, o, in, 1.0f, x, in, w, in,
                        beta, y, o);
        }
    } else {
        double beta = bias ? 1.0 : 0.0;
        const double *x = inp, *w = weight;
        double *y = out;
        if (use_gemv(B, IN, OUT)) {
            for (size_t b = 0; b < B; b++)
                cblas_dgemv(CblasRowMajor, CblasNoTrans, o, in, 1.0, w, in, x + b * IN, 1, beta,
                            y + b * OUT, 1);
        } else {
            cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasTrans, b_, o, in, 1.0, x, in, w, in, beta,
                        y, o);
        }
    }
}

#define LINEAR_REF(T)                                                     \
    do {                                                                  \
        const T *x = inp, *w = weight, *bs = bias;                        \
        T *y = out;                                                       \
        for (size_t b = 0; b < B; b++)                                    \
            for (size_t o = 0; o < OUT; o++) {                            \
                double acc = bs ? (double)bs[o] : 0.0;                    \
                for (size_t i = 0; i < IN; i++)                           \
                    acc += (double)x[b * IN + i] * (double)w[o * IN + i]; \
                y[b * OUT + o] = (T)acc;                                  \
            }                                                             \
    } while (0)

void nn_linear_fwd_ref(enum nn_dtype dt, void *out, const void *inp, const void *weight,
                       const void *bias, size_t B, size_t IN, size_t OUT)
{
    if (dt == NN_F32)
        LINEAR_REF(float);
    else
        LINEAR_REF(double);
}

/* dbias (OUT) = colsum(dout (B, OUT)), summed in double, 64 columns at a time */
#define COLSUM(T)                                           \
    do {                                                    \
        const T *gs = dout;                                 \
        T *db = dbias;                                      \
        for (size_t o0 = 0; o0 < OUT; o0 += 64) {           \
            size_t nb = OUT - o0 < 64 ? OUT - o0 : 64;      \
            double acc[64] = {0};                           \
            for (size_t b = 0; b < B; b++)                  \
                for (size_t k = 0; k < nb; k++)             \
                    acc[k] += (double)gs[b * OUT + o0 + k]; \
            for (size_t k = 0; k < nb; k++)                 \
                db[o0 + k] = (T)acc[k];                     \
        }                                                   \
    } while (0)

void nn_linear_bwd(enum nn_dtype dt, void *dinp, void *dweight, void *dbias, const void *dout,
                   const void *inp, const void *weight, size_t B, size_t IN, size_t OUT)
{
    /* dinp (B, IN), dweight (OUT, IN), dbias (OUT), dout (B, OUT), inp (B, IN), weight (OUT, IN) */
    int b_ = (int)B, in = (int)IN, o = (int)OUT;
    int small = use_gemv(B, IN, OUT);
    if (dt == NN_F32) {
        const float *g = dout, *x = inp, *w = weight;
        if (dinp) {
            float *dx = dinp;
            if (small) {
                for (size_t b = 0; b < B; b++)
                    cblas_sgemv(CblasRowMajor, CblasTrans, o, in, 1.0f, w, in, g + b * OUT, 1, 0.0f,
                                dx + b * IN, 1);
            } else {
                cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, b_, in, o, 1.0f, g, o, w, in,
                            0.0f, dx, in);
            }
        }
        if (dweight) {
            if (small) {
                memset(dweight, 0, OUT * IN * sizeof(float)); /* ger accumulates */
                for (size_t b = 0; b < B; b++)
                    cblas_sger(CblasRowMajor, o, in, 1.0f, g + b * OUT, 1, x + b * IN, 1, dweight,
                               in);
            } else {
                cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, o, in, b_, 1.0f, g, o, x, in,
                            0.0f, dweight, in);
            }
        }
        if (dbias)
            COLSUM(float);
    } else {
        const double *g = dout, *x = inp, *w = weight;
        if (dinp) {
            double *dx = dinp;
            if (small) {
                for (size_t b = 0; b < B; b++)
                    cblas_dgemv(CblasRowMajor, CblasTrans, o, in, 1.0, w, in, g + b * OUT, 1, 0.0,
                                dx + b * IN, 1);
            } else {
                cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, b_, in, o, 1.0, g, o, w, in,
                            0.0, dx, in);
            }
        }
        if (dweight) {
            if (small) {
                memset(dweight, 0, OUT * IN * sizeof(double)); /* ger accumulates */
                for (size_t b = 0; b < B; b++)
                    cblas_dger(CblasRowMajor, o, in, 1.0, g + b * OUT, 1, x + b * IN, 1, dweight,
                               in);
            } else {
                cblas_dgemm(CblasRowMajor, CblasTrans, CblasNoTrans, o, in, b_, 1.0, g, o, x, in,
                            0.0, dweight, in);
            }
        }
        if (dbias)
            COLSUM(double);
    }
}

/* ---- the layer ----------------------------------------------------------------- */

enum nn_status nn_linear_check(const struct nn_layer *l, int idx, const struct nn_tensor *in,
                               struct nn_tensor *out, size_t max_elems, struct nn_err *err)
{
    char b1[160], b2[160];
    const struct nn_tensor *w = &l->weight, *bs = &l->bias;
    if (w->ndim != 2)
        return nn_err_set(err, NN_EINVAL,
                          "layers[%d] (linear): weight must be 2-D [out, in], got %s", idx,
                          nn_shape_str(b1, sizeof b1, w->shape, w->ndim));
    size_t nout = w->shape[0], nin = w->shape[1];
    size_t feat = in->shape[in->ndim - 1];
    if (nin != feat)
        return nn_err_set(err, NN_EINVAL,
                          "layers[%d] (linear): weight is %s but the input has %zu features", idx,
                          nn_shape_str(b1, sizeof b1, w->shape, 2), feat);
    if (bs->ndim != 0 && (bs->ndim != 1 || bs->shape[0] != nout))
        return nn_err_set(err, NN_EINVAL, "layers[%d] (linear): bias is %s but weight is %s", idx,
                          nn_shape_str(b1, sizeof b1, bs->shape, bs->ndim),
                          nn_shape_str(b2, sizeof b2, w->shape, 2));
    size_t rows = in->numel / feat;
    if (nout > INT_MAX || nin > INT_MAX || rows > INT_MAX)
        return nn_err_set(err, NN_ETOOBIG,
                          "layers[%d] (linear): %zu x %zu by %zu rows is over the BLAS limit", idx,
                          nout, nin, rows);
    out->shape[out->ndim - 1] = nout;
    return NN_OK;
}

void nn_linear_fwd_t(const struct nn_layer *l, struct nn_tensor *out, const struct nn_tensor *in)
{
    size_t IN = l->weight.shape[1], OUT = l->weight.shape[0];
    nn_linear_fwd(in->dtype, out->data, in->data, l->weight.data,
                  l->bias.ndim ? l->bias.data : NULL, in->numel / IN, IN, OUT);
}

void nn_linear_bwd_t(const struct nn_layer *l, void *dinp, void *dweight, void *dbias,
                     const void *dout, const struct nn_tensor *in, const struct nn_tensor *out)
{
    size_t IN = l->weight.shape[1], OUT = l->weight.shape[0];
    nn_linear_bwd(in->dtype, dinp, dweight, l->bias.ndim ? dbias : NULL, dout, in->data,
                  l->weight.data, in->numel / IN, IN, OUT);
}
