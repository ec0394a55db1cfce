/* Tensor shapes: checked element counts, printing, the non-finite scan. */
#include <stdio.h>
#include <string.h>

#include "core/nn_impl.h"

enum nn_status nn_shape_numel(const size_t *shape, int ndim, size_t max_elems, size_t *numel,
                              const char *what, struct nn_err *err)
{
    char buf[160];
    if (ndim < 1 || ndim > NN_MAX_DIMS)
        return nn_err_set(err, NN_EINVAL, "%s: rank %d is not in [1, %d]", what, ndim,
                          NN_MAX_DIMS);
    size_t n = 1;
    for (int i = 0; i < ndim; i++) {
        if (nn_mul_ovf(n, shape[i], &n))
            return nn_err_set(err, NN_ETOOBIG, "%s: shape %s has too many elements", what,
                              nn_shape_str(buf, sizeof buf, shape, ndim));
    }
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

int nn_has_nonfinite(enum nn_dtype dt, const void *data, size_t n)
{
    if (dt == NN_F32) {
        const unsigned char *p = data;
        unsigned bad = 0;
        for (size_t i = 0; i < n; i++) {
            uint32_t u;
            memcpy(&u, p + 4 * i, 4);
            bad |= (u & 0x7f800000u) == 0x7f800000u;
        }
        return bad != 0;
    }
    const unsigned char *p = data;
    unsigned bad = 0;
    for (size_t i = 0; i < n; i++) {
        uint64_t u;
        memcpy(&u, p + 8 * i, 8);
        bad |= (u & 0x7ff0000000000000u) == 0x7ff0000000000000u;
    }
    return bad != 0;
}
