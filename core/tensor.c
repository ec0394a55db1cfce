/* Tensor shapes: checked element counts, printing, the non-finite scan. */
#include <stdio.h>
#include <string.h>

#include "core/nn_impl.h"

enum nn_status nn_shape_count(const size_t *shape, int ndim, size_t max_elems, size_t *numel)
{
    if (ndim < 1 || ndim > NN_MAX_DIMS)
        return NN_EINVAL;
    size_t n = 1;
    for (int i = 0; i < ndim; i++)
        if (nn_mul_ovf(n, shape[i], &n))
            return NN_ETOOBIG;
    if (max_elems && n > max_elems)
        return NN_ETOOBIG;
    *numel = n;
    return NN_OK;
}

enum nn_status nn_shape_numel(const size_t *shape, int ndim, size_t max_elems, size_t *numel,
                              const char *what, struct nn_err *err)
{
    char buf[160];
    size_t n = 0;
    enum nn_status st = nn_shape_count(shape, ndim, 0, &n);
    if (st == NN_EINVAL)
        return nn_err_set(err, st, "%s: rank %d is not in [1, %d]", what, ndim, NN_MAX_DIMS);
    if (st)
        return nn_err_set(err, st, "%s: shape %s has too many elements", what,
                          nn_shape_str(buf, sizeof buf, shape, ndim));
    if (max_elems && n > max_elems)
        return nn_err_set(err, NN_ETOOBIG, "%s: shape %s has %zu elements, over the cap of %zu",
                          what, nn_shape_str(buf, sizeof buf, shape, ndim), n, max_elems);
    *numel = n;
    return NN_OK;
}

char *nn_shape_str(char *buf, size_t len, const size_t *shape, int ndim)
{
    size_t at = 0;
    if (len == 0)
        return buf;
    buf[0] = '\0';
    at += (size_t)snprintf(buf, len, "[");
    for (int i = 0; i < ndim && at < len; i++)
        at += (size_t)snprintf(buf + at, len - at, i ? ", %zu" : "%zu", shape[i]);
    if (at < len)
        snprintf(buf + at, len - at, "]");
    return buf;
}

/* Exponent bits all ones = inf or nan. GCC/clang vector extensions, 4 x 16 bytes per
 * step: a plain loop stays scalar at -O2 and cost ~7% of a 256^3 sgemm per scan
 * (24 us vs 3 us for 65536 floats on this machine). */
typedef uint32_t nn_v4u32 __attribute__((vector_size(16)));
typedef uint64_t nn_v2u64 __attribute__((vector_size(16)));

/* DST: NULL for a pure scan, else the copy's destination (same layout as data) */
#define NONFINITE_SCAN(VT, ST, MASK, PER, DST)                                                     \
    do {                                                                                           \
        const unsigned char *p = data;                                                             \
        unsigned char *q = DST;                                                                    \
        const VT m = (VT){0} + (ST)(MASK);                                                         \
        VT acc = {0};                                                                              \
        size_t i = 0;                                                                              \
        for (; i + 4 * PER <= n; i += 4 * PER) {                                                   \
            VT a, b, c, d;                                                                         \
            memcpy(&a, p + i * sizeof(ST), 16);                                                    \
            memcpy(&b, p + i * sizeof(ST) + 16, 16);                                               \
            memcpy(&c, p + i * sizeof(ST) + 32, 16);                                               \
            memcpy(&d, p + i * sizeof(ST) + 48, 16);                                               \
            if (q) {                                                                               \
                memcpy(q + i * sizeof(ST), &a, 16);                                                \
                memcpy(q + i * sizeof(ST) + 16, &b, 16);                                           \
                memcpy(q + i * sizeof(ST) + 32, &c, 16);                                           \
                memcpy(q + i * sizeof(ST) + 48, &d, 16);                                           \
            }                                                                                      \
            acc |=                                                                                 \
                (VT)((a & m) == m) | (VT)((b & m) == m) | (VT)((c & m) == m) | (VT)((d & m) == m); \
        }                                                                                          \
        int bad = 0;                                                                               \
        for (int k = 0; k < PER; k++)                                                              \
            bad |= acc[k] != 0;                                                                    \
        for (; i < n; i++) {                                                                       \
            ST u;                                                                                  \
            memcpy(&u, p + i * sizeof(ST), sizeof u);                                              \
            if (q)                                                                                 \
                memcpy(q + i * sizeof(ST), &u, sizeof u);                                          \
            bad |= (u & (ST)(MASK)) == (ST)(MASK);                                                 \
        }                                                                                          \
        return bad;                                                                                \
    } while (0)

int nn_has_nonfinite(enum nn_dtype dt, const void *data, size_t n)
{
    if (dt == NN_F32)
        NONFINITE_SCAN(nn_v4u32, uint32_t, 0x7f800000u, 4, NULL);
    NONFINITE_SCAN(nn_v2u64, uint64_t, 0x7ff0000000000000u, 2, NULL);
}

int nn_copy_has_nonfinite(enum nn_dtype dt, void *dst, const void *data, size_t n)
{
    if (dt == NN_F32)
        NONFINITE_SCAN(nn_v4u32, uint32_t, 0x7f800000u, 4, dst);
    NONFINITE_SCAN(nn_v2u64, uint64_t, 0x7ff0000000000000u, 2, dst);
}
