/* safetensors reader: header parse with full bounds checks, read-only mapping, copies into
 * the net's dtype. See safetensors.h for the format and the copy decision. */
#include <errno.h>
#include <fcntl.h>
#include <float.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "server/safetensors.h"
#include "server/fmap.h"
#include "server/json.h"

#if !defined(__BYTE_ORDER__) || __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "safetensors.c reads little-endian data in place: port the loads for this host"
#endif

const char *const srv_st_dtype_names[SRV_ST_DTYPE_COUNT] = {
#define X(ID, name, size, loadable) [SRV_ST_##ID] = name,
    SRV_ST_DTYPE_LIST(X)
#undef X
};
static const unsigned char st_sizes[SRV_ST_DTYPE_COUNT] = {
#define X(ID, name, size, loadable) [SRV_ST_##ID] = size,
    SRV_ST_DTYPE_LIST(X)
#undef X
};
static const unsigned char st_loadable[SRV_ST_DTYPE_COUNT] = {
#define X(ID, name, size, loadable) [SRV_ST_##ID] = loadable,
    SRV_ST_DTYPE_LIST(X)
#undef X
};

size_t srv_st_dtype_size(enum srv_st_dtype dt) { return st_sizes[dt]; }

float srv_st_f16_to_f32(unsigned short h)
{
    uint32_t sign = (uint32_t)(h & 0x8000u) << 16;
    uint32_t exp = (h >> 10) & 0x1fu, man = h & 0x3ffu, u;
    if (exp == 0) {
        /* zero or subnormal: man * 2^-24, exact in float */
        float f = (float)man * 0x1p-24f;
        return sign ? -f : f;
    }
    if (exp == 31)
        u = sign | 0x7f800000u | (man << 13); /* inf / nan */
    else
        u = sign | ((exp + 112u) << 23) | (man << 13); /* rebias 15 -> 127 */
    float f;
    memcpy(&f, &u, sizeof f);
    return f;
}

float srv_st_bf16_to_f32(unsigned short h)
{
    uint32_t u = (uint32_t)h << 16;
    float f;
    memcpy(&f, &u, sizeof f);
    return f;
}

void srv_st_close(struct srv_st_file *f)
{
    if (!f)
        return;
    for (int i = 0; i < f->ntensors; i++)
        free(f->tensors[i].name);
    free(f->tensors);
    if (f->map)
        munmap(f->map, f->map_len);
    f->tensors = NULL;
    f->ntensors = 0;
    f->map = NULL;
    f->map_len = 0;
    f->data = NULL;
    f->data_len = 0;
}

/* Header integers: a flat array of count numbers, each integral and in [0, 2^53). */
static int st_uints(const struct srv_json *d, srv_jv v, size_t count, size_t *out)
{
    int64_t x[NN_MAX_DIMS];
    size_t n;
    int nd;
    if (count > NN_MAX_DIMS || !srv_json_numarray(d, v, NULL, &nd, &n) || nd != 1 || n != count ||
        srv_json_read(d, v, SRV_I64, x, n, "", NULL))
        return -1;
    for (size_t i = 0; i < n; i++) {
        if (x[i] < 0 || x[i] >= (int64_t)1 << 53)
            return -1;
        out[i] = (size_t)x[i];
    }
    return 0;
}

static enum nn_status st_tensor_parse(struct srv_st_file *f, const struct srv_json *d, srv_jv item,
                                      struct srv_st_tensor *t, struct nn_err *err)
{
    const char *L = f->label, *N = t->name;
    if (srv_json_type(d, item) != SRV_J_OBJECT)
        return nn_err_set(err, NN_EINVAL, "%s: tensor \"%s\" is not an object", L, N);
    srv_jv dtype = srv_json_get(d, item, "dtype"), shape = srv_json_get(d, item, "shape");
    srv_jv offs = srv_json_get(d, item, "data_offsets");
    char dname[40];
    if (srv_json_str(d, dtype, dname, sizeof dname) == (size_t)-1)
        return nn_err_set(err, NN_EINVAL, "%s: tensor \"%s\": dtype is missing or not a string", L,
                          N);
    int found = 0;
    for (int k = 0; k < SRV_ST_DTYPE_COUNT && !found; k++)
        if (strcmp(dname, srv_st_dtype_names[k]) == 0) {
            t->dtype = (enum srv_st_dtype)k;
            found = 1;
        }
    if (!found)
        return nn_err_set(err, NN_EINVAL, "%s: tensor \"%s\": unknown dtype \"%.32s\"", L, N,
                          dname);
    size_t rank;
    if (!srv_json_numarray(d, shape, NULL, NULL, &rank))
        return nn_err_set(err, NN_EINVAL,
                          "%s: tensor \"%s\": shape is missing or not an array of integers", L, N);
    if (rank > NN_MAX_DIMS)
        return nn_err_set(err, NN_EINVAL, "%s: tensor \"%s\": rank %zu is over %d", L, N, rank,
                          NN_MAX_DIMS);
    t->ndim = (int)rank;
    int64_t dims[NN_MAX_DIMS];
    if (srv_json_read(d, shape, SRV_I64, dims, rank, "shape", NULL))
        return nn_err_set(
            err, NN_EINVAL,
            "%s: tensor \"%s\": shape holds a value that is not a non-negative integer", L, N);
    for (int k = 0; k < t->ndim; k++) {
        if (dims[k] < 0 || dims[k] >= (int64_t)1 << 53)
            return nn_err_set(err, NN_EINVAL,
                              "%s: tensor \"%s\": shape[%d] is not a non-negative integer", L, N,
                              k);
        t->shape[k] = (size_t)dims[k];
    }
    size_t numel = 1;
    for (int k = 0; k < t->ndim; k++)
        if (__builtin_mul_overflow(numel, t->shape[k], &numel))
            return nn_err_set(err, NN_EINVAL, "%s: tensor \"%s\": shape overflows", L, N);
    t->numel = numel;
    size_t nbytes, be[2];
    if (__builtin_mul_overflow(numel, (size_t)st_sizes[t->dtype], &nbytes))
        return nn_err_set(err, NN_EINVAL, "%s: tensor \"%s\": shape overflows", L, N);
    if (st_uints(d, offs, 2, be))
        return nn_err_set(err, NN_EINVAL,
                          "%s: tensor \"%s\": data_offsets must be [begin, end], two "
                          "non-negative integers",
                          L, N);
    t->begin = be[0];
    t->end = be[1];
    if (t->begin > t->end)
        return nn_err_set(err, NN_EINVAL, "%s: tensor \"%s\" data_offsets [%zu, %zu]: begin > end",
                          L, N, t->begin, t->end);
    if (t->end > f->data_len)
        return nn_err_set(err, NN_EINVAL,
                          "%s: tensor \"%s\" data_offsets [%zu, %zu] exceed the data size %zu", L,
                          N, t->begin, t->end, f->data_len);
    if (t->end - t->begin != nbytes) {
        char sb[160];
        return nn_err_set(err, NN_EINVAL,
                          "%s: tensor \"%s\" data_offsets [%zu, %zu] hold %zu bytes, but %s %s "
                          "needs %zu",
                          L, N, t->begin, t->end, t->end - t->begin, srv_st_dtype_names[t->dtype],
                          nn_shape_str(sb, sizeof sb, t->shape, t->ndim), nbytes);
    }
    t->data = f->data + t->begin;
    return NN_OK;
}

static int st_cmp_offset(const void *a, const void *b)
{
    const struct srv_st_tensor *x = *(const struct srv_st_tensor *const *)a;
    const struct srv_st_tensor *y = *(const struct srv_st_tensor *const *)b;
    if (x->begin != y->begin)
        return x->begin < y->begin ? -1 : 1;
    return x->end < y->end ? -1 : x->end > y->end;
}

/* The tensors tile the data buffer exactly, as the format requires
 * ("entirely indexed, no holes": no overlap, no gap, nothing after the last tensor), so a
 * file the reference implementation refuses is refused here too. */
static enum nn_status st_check_table(struct srv_st_file *f, struct nn_err *err)
{
    int n = f->ntensors;
    struct srv_st_tensor **ix = malloc((n ? (size_t)n : 1) * sizeof *ix);
    if (!ix)
        return nn_err_set(err, NN_ENOMEM, "%s: out of memory", f->label);
    enum nn_status st = NN_OK;
    for (int i = 0; i < n; i++)
        ix[i] = &f->tensors[i];
    { /* (a name twice is refused by the JSON reader: a duplicate key) */
        if (n > 1)
            qsort(ix, (size_t)n, sizeof *ix, st_cmp_offset);
        size_t at = 0;                           /* where the next tensor must begin */
        const struct srv_st_tensor *prev = NULL; /* the last non-empty tensor */
        for (int i = 0; i < n && st == NN_OK; i++) {
            const struct srv_st_tensor *t = ix[i];
            if (t->begin < at)
                st = nn_err_set(err, NN_EINVAL,
                                "%s: tensor \"%s\" data_offsets [%zu, %zu] overlap tensor \"%s\" "
                                "[%zu, %zu]",
                                f->label, t->name, t->begin, t->end, prev->name, prev->begin,
                                prev->end);
            else if (t->begin > at)
                st = nn_err_set(err, NN_EINVAL,
                                "%s: data bytes [%zu, %zu) before tensor \"%s\" belong to no "
                                "tensor (the format allows no holes)",
                                f->label, at, t->begin, t->name);
            if (t->end > t->begin) {
                prev = t;
                at = t->end;
            }
        }
        if (st == NN_OK && at != f->data_len)
            st = nn_err_set(err, NN_EINVAL,
                            "%s: %zu data bytes after the last tensor (data size %zu, tensors "
                            "end at %zu)",
                            f->label, f->data_len - at, f->data_len, at);
    }
    free(ix);
    return st;
}

enum nn_status srv_st_parse(struct srv_st_file *f, const void *buf, size_t len, const char *label,
                            struct nn_err *err)
{
    memset(f, 0, sizeof *f);
    snprintf(f->label, sizeof f->label, "%s", label ? label : "safetensors");
    const char *L = f->label;
    const unsigned char *p = buf;
    if (len < 8)
        return nn_err_set(err, NN_EINVAL,
                          "%s: file is %zu bytes, too short for the 8-byte header length", L, len);
    uint64_t hlen = 0;
    for (int i = 7; i >= 0; i--)
        hlen = (hlen << 8) | p[i];
    if (hlen > len - 8)
        return nn_err_set(err, NN_EINVAL,
                          "%s: header length %llu exceeds the %zu bytes after the length field", L,
                          (unsigned long long)hlen, len - 8);
    if (hlen > SRV_ST_MAX_HEADER)
        return nn_err_set(err, NN_EINVAL, "%s: header length %llu is over the limit of %zu bytes",
                          L, (unsigned long long)hlen, SRV_ST_MAX_HEADER);
    const char *hdr = (const char *)p + 8;
    size_t hn = (size_t)hlen;
    if (hn < 2 || hdr[0] != '{')
        return nn_err_set(err, NN_EINVAL, "%s: header is not a JSON object", L);
    f->data = p + 8 + hn;
    f->data_len = len - 8 - hn;

    /* writers pad the header with spaces to 8-byte alignment: the reader skips them */
    struct srv_json *d = NULL;
    struct nn_err jerr;
    enum nn_status st = srv_json_parse(hdr, hn, 0, &d, &jerr);
    if (st) {
        if (st == NN_ENOMEM)
            return nn_err_set(err, NN_ENOMEM, "%s: out of memory", L);
        return nn_err_set(err, NN_EINVAL, "%s: header is not valid JSON: %s", L, jerr.msg);
    }
    srv_jv root = srv_json_root(d);
    if (srv_json_type(d, root) != SRV_J_OBJECT) {
        st = nn_err_set(err, NN_EINVAL, "%s: header is not a JSON object", L);
        goto out;
    }
    int n = 0;
    for (srv_jv it = srv_json_child(d, root); it; it = srv_json_next(d, it)) {
        if (srv_json_key_is(d, it, "__metadata__")) {
            if (srv_json_type(d, it) != SRV_J_OBJECT) {
                st = nn_err_set(err, NN_EINVAL, "%s: __metadata__ is not an object", L);
                goto out;
            }
            continue;
        }
        n++;
    }
    f->tensors = calloc(n ? (size_t)n : 1, sizeof *f->tensors);
    if (!f->tensors) {
        st = nn_err_set(err, NN_ENOMEM, "%s: out of memory", L);
        goto out;
    }
    for (srv_jv it = srv_json_child(d, root); it; it = srv_json_next(d, it)) {
        if (srv_json_key_is(d, it, "__metadata__"))
            continue;
        struct srv_st_tensor *t = &f->tensors[f->ntensors];
        if (!(t->name = srv_json_keydup(d, it))) {
            st = nn_err_set(err, NN_ENOMEM, "%s: out of memory", L);
            goto out;
        }
        f->ntensors++;
        st = st_tensor_parse(f, d, it, t, err);
        if (st != NN_OK)
            goto out;
    }
    st = st_check_table(f, err);
out:
    srv_json_free(d);
    if (st != NN_OK)
        srv_st_close(f);
    return st;
}

enum nn_status srv_st_open(struct srv_st_file *f, const char *path, const char *label,
                           struct nn_err *err)
{
    memset(f, 0, sizeof *f);
    const char *L = label ? label : path;
    void *map;
    size_t len; /* srv_st_parse refuses fewer than 8 bytes (an empty file too) */
    enum nn_status st = srv_fmap(path, L, 0, &map, &len, err);
    if (st)
        return st;
    st = srv_st_parse(f, map ? map : "", len, L, err);
    if (st != NN_OK) {
        if (map)
            munmap(map, len);
        return st;
    }
    f->map = map;
    f->map_len = len;
    return NN_OK;
}

struct srv_st_tensor *srv_st_find(struct srv_st_file *f, const char *name)
{
    for (int i = 0; i < f->ntensors; i++)
        if (strcmp(f->tensors[i].name, name) == 0)
            return &f->tensors[i];
    return NULL;
}

/* The loadable dtypes as double, one loader each (bytes in the file are unaligned). */
static inline double ld_F64(const unsigned char *p)
{
    double d;
    memcpy(&d, p, sizeof d);
    return d;
}
static inline double ld_F32(const unsigned char *p)
{
    float v;
    memcpy(&v, p, sizeof v);
    return v;
}
static inline double ld_F16(const unsigned char *p)
{
    unsigned short h;
    memcpy(&h, p, sizeof h);
    return srv_st_f16_to_f32(h);
}
static inline double ld_BF16(const unsigned char *p)
{
    unsigned short h;
    memcpy(&h, p, sizeof h);
    return srv_st_bf16_to_f32(h);
}

/* One converter per (file dtype, parameter dtype), chosen once per tensor: a loop with the
 * load inlined. Returns the index of the first value that is not finite or out of the
 * parameter dtype's range, or n. */
#define ST_CONVERT(SRC)                                                   \
    static size_t SRC##_to_f32(const unsigned char *s, size_t n, void *d) \
    {                                                                     \
        for (size_t i = 0; i < n; i++) {                                  \
            double v = ld_##SRC(s + i * st_sizes[SRV_ST_##SRC]);          \
            if (!(fabs(v) <= FLT_MAX))                                    \
                return i;                                                 \
            ((float *)d)[i] = (float)v;                                   \
        }                                                                 \
        return n;                                                         \
    }                                                                     \
    static size_t SRC##_to_f64(const unsigned char *s, size_t n, void *d) \
    {                                                                     \
        for (size_t i = 0; i < n; i++) {                                  \
            double v = ld_##SRC(s + i * st_sizes[SRV_ST_##SRC]);          \
            if (!isfinite(v))                                             \
                return i;                                                 \
            ((double *)d)[i] = v;                                         \
        }                                                                 \
        return n;                                                         \
    }
ST_CONVERT(F64)
ST_CONVERT(F32)
ST_CONVERT(F16)
ST_CONVERT(BF16)

typedef size_t st_convert_fn(const unsigned char *src, size_t n, void *dst);
static st_convert_fn *const st_converters[SRV_ST_DTYPE_COUNT][NN_DTYPE_COUNT] = {
    [SRV_ST_F64] = {[NN_F32] = F64_to_f32, [NN_F64] = F64_to_f64},
    [SRV_ST_F32] = {[NN_F32] = F32_to_f32, [NN_F64] = F32_to_f64},
    [SRV_ST_F16] = {[NN_F32] = F16_to_f32, [NN_F64] = F16_to_f64},
    [SRV_ST_BF16] = {[NN_F32] = BF16_to_f32, [NN_F64] = BF16_to_f64},
};

enum nn_status srv_st_tensor_load(const struct srv_st_file *f, struct srv_st_tensor *t,
                                  enum nn_dtype dt, struct nn_tensor *out, struct nn_err *err)
{
    const char *L = f->label, *N = t->name;
    if (!st_loadable[t->dtype])
        return nn_err_set(err, NN_EINVAL,
                          "%s: tensor \"%s\" has dtype %s; parameters must be F32, F64, F16 or "
                          "BF16",
                          L, N, srv_st_dtype_names[t->dtype]);
    if (t->ndim == 0)
        return nn_err_set(err, NN_EINVAL,
                          "%s: tensor \"%s\" is a scalar (shape []); parameters need rank >= 1", L,
                          N);
    size_t es = nn_dtype_size(dt), bytes;
    if (__builtin_mul_overflow(t->numel, es, &bytes))
        return nn_err_set(err, NN_EINVAL, "%s: tensor \"%s\": shape overflows", L, N);
    void *data = malloc(bytes ? bytes : 1);
    if (!data)
        return nn_err_set(err, NN_ENOMEM, "%s: tensor \"%s\": out of memory for %zu bytes", L, N,
                          bytes);
    size_t i = st_converters[t->dtype][dt](t->data, t->numel, data);
    if (i < t->numel) {
        double v = t->dtype == SRV_ST_F64 ? ld_F64(t->data + i * 8) : NAN;
        free(data);
        if (isfinite(v)) /* only float64 can overflow float32 */
            return nn_err_set(err, NN_EINVAL,
                              "%s: tensor \"%s\" value %g at %zu is out of float32 range", L, N, v,
                              i);
        return nn_err_set(err, NN_EINVAL, "%s: tensor \"%s\" holds a non-finite value at %zu", L, N,
                          i);
    }
    memset(out, 0, sizeof *out);
    out->dtype = dt;
    out->ndim = t->ndim;
    memcpy(out->shape, t->shape, sizeof out->shape);
    out->numel = t->numel;
    out->data = data;
    t->used = 1;
    return NN_OK;
}
