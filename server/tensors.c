/* Request tensors and binary tensor data: see tensors.h. */
#include "server/tensors.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void srv_shape_fmt(char *buf, size_t cap, const size_t *shape, int ndim)
{
    nn_shape_str(buf, cap, shape, ndim);
}

/* numel = product of shape; nz = product of the non-zero dims. 0 on overflow. */
static int shape_product(const size_t *shape, int ndim, size_t *numel, size_t *nz)
{
    size_t z = 1;
    int zero = 0;
    for (int i = 0; i < ndim; i++) {
        if (shape[i] == 0) {
            zero = 1;
            continue;
        }
        if (z > SIZE_MAX / shape[i])
            return 0;
        z *= shape[i];
    }
    *numel = zero ? 0 : z;
    *nz = z;
    return 1;
}

static enum nn_status too_big(const char *where, const size_t *sh, int nd, size_t max,
                              struct nn_err *err)
{
    char s[128];
    srv_shape_fmt(s, sizeof s, sh, nd);
    return nn_err_set(err, NN_ETOOBIG, "%s: shape %s is over the limit of %zu elements", where, s,
                      max);
}

enum nn_status srv_tensor_shape(const struct srv_json *d, srv_jv v, int allow_scalar,
                                const char *where, size_t shape[NN_MAX_DIMS], int *ndim,
                                struct nn_err *err)
{
    size_t ssh[NN_MAX_DIMS], sn;
    int snd;
    if (!srv_json_numarray(d, v, ssh, &snd, &sn) || snd != 1)
        return nn_err_set(err, NN_EINVAL, "%s.shape: expected a flat array of dimensions", where);
    if (sn > NN_MAX_DIMS || (sn == 0 && !allow_scalar))
        return nn_err_set(err, NN_EINVAL, "%s.shape: a tensor has %d to %d dimensions, got %zu",
                          where, allow_scalar ? 0 : 1, NN_MAX_DIMS, sn);
    int64_t dims[NN_MAX_DIMS];
    char w[96];
    snprintf(w, sizeof w, "%s.shape", where);
    enum nn_status st = srv_json_read(d, v, SRV_I64, dims, sn, w, err);
    if (st)
        return st;
    *ndim = (int)sn;
    memset(shape, 0, NN_MAX_DIMS * sizeof *shape);
    for (int i = 0; i < *ndim; i++) {
        if (dims[i] < 0)
            return nn_err_set(err, NN_EINVAL, "%s.shape[%d]: dimensions must be >= 0, got %lld",
                              where, i, (long long)dims[i]);
        shape[i] = (size_t)dims[i];
    }
    return NN_OK;
}

enum nn_status srv_tensor_find(const struct srv_json *d, srv_jv v, size_t max_elems,
                               int allow_scalar, const char *where, struct srv_tfind *f,
                               struct nn_err *err)
{
    memset(f, 0, sizeof *f);
    size_t nz;
    if (srv_json_numarray(d, v, f->shape, &f->ndim, &f->numel)) {
        if (max_elems && f->numel > max_elems)
            return too_big(where, f->shape, f->ndim, max_elems, err);
        f->data = v;
        f->form = SRV_FORM_NESTED;
        return NN_OK;
    }
    enum srv_jtype ty = srv_json_type(d, v);
    if (allow_scalar && ty == SRV_J_NUMBER) {
        enum nn_status st = srv_json_int(d, v, &f->scalar_value, where, err);
        if (st)
            return st;
        f->scalar = 1;
        f->numel = 1;
        f->form = SRV_FORM_NESTED;
        return NN_OK;
    }
    if (ty != SRV_J_OBJECT)
        return nn_err_set(err, NN_EINVAL,
                          "%s: expected a tensor (nested arrays or {\"shape\", \"data\"})", where);
    static const char *const known[] = {"shape", "data", NULL};
    srv_jv bad = srv_json_unknown_key(d, v, known);
    if (bad) {
        char k[64];
        return nn_err_set(err, NN_EINVAL, "%s: unknown field \"%s\" in tensor (known: shape, data)",
                          where, srv_json_key(d, bad, k, sizeof k));
    }
    srv_jv jshape = srv_json_get(d, v, "shape"), jdata = srv_json_get(d, v, "data");
    if (!jshape)
        return nn_err_set(err, NN_EINVAL, "%s: missing \"shape\"", where);
    if (!jdata)
        return nn_err_set(err, NN_EINVAL, "%s: missing \"data\"", where);
    enum nn_status st = srv_tensor_shape(d, jshape, allow_scalar, where, f->shape, &f->ndim, err);
    if (st)
        return st;
    if (!shape_product(f->shape, f->ndim, &f->numel, &nz)) {
        char s[128];
        srv_shape_fmt(s, sizeof s, f->shape, f->ndim);
        return nn_err_set(err, NN_ETOOBIG, "%s: shape %s has too many elements", where, s);
    }
    if (max_elems && (f->numel > max_elems || nz > max_elems))
        return too_big(where, f->shape, f->ndim, max_elems, err);
    size_t dsh[NN_MAX_DIMS], dn;
    int dnd;
    if (!srv_json_numarray(d, jdata, dsh, &dnd, &dn))
        return nn_err_set(err, NN_EINVAL, "%s.data: expected an array of numbers", where);
    if (dn != f->numel ||
        (dnd > 1 && (dnd != f->ndim || memcmp(dsh, f->shape, (size_t)dnd * sizeof *dsh)))) {
        char s1[128], s2[128];
        srv_shape_fmt(s1, sizeof s1, f->shape, f->ndim);
        if (dnd > 1 && dn == f->numel) {
            srv_shape_fmt(s2, sizeof s2, dsh, dnd);
            return nn_err_set(err, NN_EINVAL, "%s: data has shape %s but shape is %s", where, s2,
                              s1);
        }
        return nn_err_set(err, NN_EINVAL, "%s: data has %zu value%s but shape %s needs %zu", where,
                          dn, dn == 1 ? "" : "s", s1, f->numel);
    }
    f->data = jdata;
    f->form = SRV_FORM_OBJECT;
    return NN_OK;
}

enum nn_status srv_tensor_read(const struct srv_json *d, const struct srv_tfind *f, enum srv_num t,
                               void *dst, const char *where, struct nn_err *err)
{
    if (f->scalar) {
        if (t != SRV_I64)
            return nn_err_set(err, NN_EINVAL, "%s: expected a tensor", where);
        *(int64_t *)dst = f->scalar_value;
        return NN_OK;
    }
    return srv_json_read(d, f->data, t, dst, f->numel, where, err);
}

enum nn_status srv_tensor_load(const struct srv_json *d, srv_jv v, enum nn_dtype dt,
                               size_t max_elems, const char *where, struct nn_tensor *t,
                               enum srv_form *form, struct nn_err *err)
{
    struct srv_tfind f;
    memset(t, 0, sizeof *t);
    t->dtype = dt;
    enum nn_status st = srv_tensor_find(d, v, max_elems, 0, where, &f, err);
    if (st)
        return st;
    void *buf = malloc(f.numel ? f.numel * nn_dtype_size(dt) : 1);
    if (!buf)
        return nn_err_set(err, NN_ENOMEM, "%s: out of memory", where);
    if ((st = srv_tensor_read(d, &f, dt == NN_F32 ? SRV_F32 : SRV_F64, buf, where, err))) {
        free(buf);
        return st;
    }
    t->ndim = f.ndim;
    memcpy(t->shape, f.shape, sizeof t->shape);
    t->numel = f.numel;
    t->data = buf;
    if (form)
        *form = f.form;
    return NN_OK;
}

/* ---- binary tensor data ------------------------------------------------------------------- */
const struct srv_wire_info srv_wire[SRV_WIRE_COUNT] = {
#define X(n, b, k) {#n, b, k},
    SRV_WIRE_LIST(X)
#undef X
};

int srv_wire_find(const char *name)
{
    for (int i = 0; i < SRV_WIRE_COUNT; i++)
        if (!strcmp(srv_wire[i].name, name))
            return i;
    return -1;
}

/* One converter per wire type and target: a loop with the load inlined, no per-element
 * dispatch. Each returns the index of the first value the target cannot hold, or n.
 * Loads go through memcpy: binary data in a body has no alignment. */
#define LOADER(T)                                              \
    static inline T load_##T(const void *p, size_t i)          \
    {                                                          \
        T v;                                                   \
        memcpy(&v, (const char *)p + i * sizeof(T), sizeof v); \
        return v;                                              \
    }
LOADER(float)
LOADER(double)
LOADER(int8_t)
LOADER(int16_t)
LOADER(int32_t)
LOADER(int64_t)
LOADER(uint8_t)
LOADER(uint16_t)
LOADER(uint32_t)
LOADER(uint64_t)

#define CONVERTERS(WIRE, T)                                                               \
    static __attribute__((unused)) size_t WIRE##_to_f32(const void *s, size_t n, void *d) \
    {                                                                                     \
        float *o = d;                                                                     \
        for (size_t i = 0; i < n; i++) {                                                  \
            double v = (double)load_##T(s, i);                                            \
            if (!(fabs(v) < 0x1.ffffffp127)) /* inf as f32 */                             \
                return i;                                                                 \
            o[i] = (float)v;                                                              \
        }                                                                                 \
        return n;                                                                         \
    }                                                                                     \
    static __attribute__((unused)) size_t WIRE##_to_f64(const void *s, size_t n, void *d) \
    {                                                                                     \
        double *o = d;                                                                    \
        for (size_t i = 0; i < n; i++) {                                                  \
            double v = (double)load_##T(s, i);                                            \
            if (!isfinite(v))                                                             \
                return i;                                                                 \
            o[i] = v;                                                                     \
        }                                                                                 \
        return n;                                                                         \
    }                                                                                     \
    static size_t WIRE##_to_i64(const void *s, size_t n, void *d)                         \
    {                                                                                     \
        int64_t *o = d;                                                                   \
        for (size_t i = 0; i < n; i++) {                                                  \
            double v = (double)load_##T(s, i); /* exact for every type here */            \
            if (!(isfinite(v) && v == floor(v) && fabs(v) < 9223372036854775808.0))       \
                return i;                                                                 \
            o[i] = (int64_t)v;                                                            \
        }                                                                                 \
        return n;                                                                         \
    }

CONVERTERS(FP32, float)
CONVERTERS(FP64, double)
CONVERTERS(INT8, int8_t)
CONVERTERS(INT16, int16_t)
CONVERTERS(INT32, int32_t)
CONVERTERS(UINT8, uint8_t)
CONVERTERS(UINT16, uint16_t)
CONVERTERS(UINT32, uint32_t)

/* 64-bit integers convert exactly to int64 (UINT64 within INT64_MAX); to floats by
 * rounding, as torch does. */
static size_t INT64_to_i64(const void *s, size_t n, void *d)
{
    memcpy(d, s, n * sizeof(int64_t));
    return n;
}
static size_t UINT64_to_i64(const void *s, size_t n, void *d)
{
    int64_t *o = d;
    for (size_t i = 0; i < n; i++) {
        uint64_t v = load_uint64_t(s, i);
        if (v > INT64_MAX)
            return i;
        o[i] = (int64_t)v;
    }
    return n;
}
static size_t INT64_to_f32(const void *s, size_t n, void *d)
{
    for (size_t i = 0; i < n; i++)
        ((float *)d)[i] = (float)load_int64_t(s, i);
    return n;
}
static size_t INT64_to_f64(const void *s, size_t n, void *d)
{
    for (size_t i = 0; i < n; i++)
        ((double *)d)[i] = (double)load_int64_t(s, i);
    return n;
}
static size_t UINT64_to_f32(const void *s, size_t n, void *d)
{
    for (size_t i = 0; i < n; i++)
        ((float *)d)[i] = (float)load_uint64_t(s, i);
    return n;
}
static size_t UINT64_to_f64(const void *s, size_t n, void *d)
{
    for (size_t i = 0; i < n; i++)
        ((double *)d)[i] = (double)load_uint64_t(s, i);
    return n;
}

/* The same type: a copy. Its finiteness is checked by whoever uses it (the pass scans its
 * input once and names it; a target goes through the loss). */
static size_t FP32_copy(const void *s, size_t n, void *d)
{
    memcpy(d, s, n * sizeof(float));
    return n;
}
static size_t FP64_copy(const void *s, size_t n, void *d)
{
    memcpy(d, s, n * sizeof(double));
    return n;
}

typedef size_t convert_fn(const void *src, size_t n, void *dst);
#define ROW(W) [SRV_WIRE_##W] = {W##_to_f32, W##_to_f64, W##_to_i64},
static convert_fn *const converters[SRV_WIRE_COUNT][SRV_NUM_COUNT] = {
    [SRV_WIRE_FP32] = {FP32_copy, FP32_to_f64, FP32_to_i64},
    [SRV_WIRE_FP64] = {FP64_to_f32, FP64_copy, FP64_to_i64},
    ROW(INT8) ROW(INT16) ROW(INT32) ROW(INT64) ROW(UINT8) ROW(UINT16) ROW(UINT32) ROW(UINT64)};
#undef ROW

enum nn_status srv_wire_convert(enum srv_wire w, const void *src, size_t n, enum srv_num t,
                                void *dst, const char *where, struct nn_err *err)
{
    convert_fn *fn =
        (unsigned)w < SRV_WIRE_COUNT && (unsigned)t < SRV_NUM_COUNT ? converters[w][t] : NULL;
    if (!fn)
        return nn_err_set(err, NN_EINVAL, "%s: %s data cannot be read", where,
                          (unsigned)w < SRV_WIRE_COUNT ? srv_wire[w].name : "this");
    size_t i = fn(src, n, dst);
    if (i == n)
        return NN_OK;
    if (w == SRV_WIRE_UINT64)
        return nn_err_set(err, NN_EINVAL, "%s: value %llu at index %zu is too large", where,
                          (unsigned long long)load_uint64_t(src, i), i);
    if (srv_wire[w].kind != 0) /* an integer that is no class index: out of int64's range */
        return nn_err_set(err, NN_EINVAL, "%s: value at index %zu is out of range", where, i);
    double v = w == SRV_WIRE_FP32 ? (double)load_float(src, i) : load_double(src, i);
    if (!isfinite(v))
        return nn_err_set(err, NN_EINVAL, "%s: value at index %zu is not finite", where, i);
    if (t == SRV_I64)
        return nn_err_set(err, NN_EINVAL, "%s: %g at index %zu is not a class index", where, v, i);
    return nn_err_set(err, NN_EINVAL, "%s: %g at index %zu is out of range for float32", where, v,
                      i);
}
