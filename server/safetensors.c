/* safetensors reader: header parse with full bounds checks, read-only mapping, copies into
 * the net's dtype. See safetensors.h for the format and the copy decision. */
#include <cjson/cJSON.h>
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

/* A header integer: a JSON number that is integral and in [0, 2^53). */
static int st_uint(const cJSON *v, size_t *out)
{
    if (!cJSON_IsNumber(v))
        return -1;
    double d = v->valuedouble;
    if (!(d >= 0) || d >= 0x1p53 || d != floor(d))
        return -1;
    if ((uint64_t)d > SIZE_MAX)
        return -1;
    *out = (size_t)d;
    return 0;
}

static enum nn_status st_tensor_parse(struct srv_st_file *f, const cJSON *item,
                                      struct srv_st_tensor *t, struct nn_err *err)
{
    const char *L = f->label, *N = t->name;
    if (!cJSON_IsObject(item))
        return nn_err_set(err, NN_EINVAL, "%s: tensor \"%s\" is not an object", L, N);
    const cJSON *dtype = cJSON_GetObjectItemCaseSensitive(item, "dtype");
    const cJSON *shape = cJSON_GetObjectItemCaseSensitive(item, "shape");
    const cJSON *offs = cJSON_GetObjectItemCaseSensitive(item, "data_offsets");
    if (!cJSON_IsString(dtype))
        return nn_err_set(err, NN_EINVAL, "%s: tensor \"%s\": dtype is missing or not a string", L,
                          N);
    int found = 0;
    for (int d = 0; d < SRV_ST_DTYPE_COUNT; d++) {
        if (strcmp(dtype->valuestring, srv_st_dtype_names[d]) == 0) {
            t->dtype = (enum srv_st_dtype)d;
            found = 1;
            break;
        }
    }
    if (!found)
        return nn_err_set(err, NN_EINVAL, "%s: tensor \"%s\": unknown dtype \"%.32s\"", L, N,
                          dtype->valuestring);
    if (!cJSON_IsArray(shape))
        return nn_err_set(err, NN_EINVAL, "%s: tensor \"%s\": shape is missing or not an array", L,
                          N);
    int rank = cJSON_GetArraySize(shape);
    if (rank > NN_MAX_DIMS)
        return nn_err_set(err, NN_EINVAL, "%s: tensor \"%s\": rank %d is over %d", L, N, rank,
                          NN_MAX_DIMS);
    t->ndim = rank;
    size_t numel = 1;
    int k = 0;
    const cJSON *dim;
    cJSON_ArrayForEach(dim, shape)
    {
        if (st_uint(dim, &t->shape[k]))
            return nn_err_set(err, NN_EINVAL,
                              "%s: tensor \"%s\": shape[%d] is not a non-negative integer", L, N,
                              k);
        if (__builtin_mul_overflow(numel, t->shape[k], &numel))
            return nn_err_set(err, NN_EINVAL, "%s: tensor \"%s\": shape overflows", L, N);
        k++;
    }
    t->numel = numel;
    size_t nbytes;
    if (__builtin_mul_overflow(numel, (size_t)st_sizes[t->dtype], &nbytes))
        return nn_err_set(err, NN_EINVAL, "%s: tensor \"%s\": shape overflows", L, N);
    if (!cJSON_IsArray(offs) || cJSON_GetArraySize(offs) != 2 ||
        st_uint(cJSON_GetArrayItem(offs, 0), &t->begin) ||
        st_uint(cJSON_GetArrayItem(offs, 1), &t->end))
        return nn_err_set(err, NN_EINVAL,
                          "%s: tensor \"%s\": data_offsets must be [begin, end], two "
                          "non-negative integers",
                          L, N);
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

static int st_cmp_name(const void *a, const void *b)
{
    const struct srv_st_tensor *x = *(const struct srv_st_tensor *const *)a;
    const struct srv_st_tensor *y = *(const struct srv_st_tensor *const *)b;
    return strcmp(x->name, y->name);
}

static int st_cmp_offset(const void *a, const void *b)
{
    const struct srv_st_tensor *x = *(const struct srv_st_tensor *const *)a;
    const struct srv_st_tensor *y = *(const struct srv_st_tensor *const *)b;
    if (x->begin != y->begin)
        return x->begin < y->begin ? -1 : 1;
    return x->end < y->end ? -1 : x->end > y->end;
}

/* Names appear once, and the tensors tile the data buffer exactly, as the format requires
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
    if (n > 1)
        qsort(ix, (size_t)n, sizeof *ix, st_cmp_name);
    for (int i = 1; i < n && st == NN_OK; i++)
        if (strcmp(ix[i - 1]->name, ix[i]->name) == 0)
            st = nn_err_set(err, NN_EINVAL, "%s: tensor \"%s\" appears twice in the header",
                            f->label, ix[i]->name);
    if (st == NN_OK) {
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

    const char *end = NULL;
    cJSON *root = cJSON_ParseWithLengthOpts(hdr, hn, &end, 0);
    if (!root) {
        const char *at = cJSON_GetErrorPtr();
        size_t off = at && at >= hdr && at <= hdr + hn ? (size_t)(at - hdr) : 0;
        return nn_err_set(err, NN_EINVAL, "%s: header is not valid JSON (near byte %zu)", L,
                          off + 8);
    }
    /* writers pad the header with spaces to 8-byte alignment; anything else is garbage */
    for (const char *q = end; q && q < hdr + hn; q++) {
        if (*q != ' ' && *q != '\t' && *q != '\n' && *q != '\r') {
            cJSON_Delete(root);
            return nn_err_set(err, NN_EINVAL, "%s: header has trailing bytes after the JSON object",
                              L);
        }
    }
    enum nn_status st = NN_OK;
    if (!cJSON_IsObject(root)) {
        st = nn_err_set(err, NN_EINVAL, "%s: header is not a JSON object", L);
        goto out;
    }
    int n = 0;
    const cJSON *it;
    cJSON_ArrayForEach(it, root)
    {
        if (!it->string) {
            st = nn_err_set(err, NN_EINVAL, "%s: header is not a JSON object", L);
            goto out;
        }
        if (strcmp(it->string, "__metadata__") == 0) {
            if (!cJSON_IsObject(it)) {
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
    cJSON_ArrayForEach(it, root)
    {
        if (strcmp(it->string, "__metadata__") == 0)
            continue;
        struct srv_st_tensor *t = &f->tensors[f->ntensors];
        t->name = strdup(it->string);
        if (!t->name) {
            st = nn_err_set(err, NN_ENOMEM, "%s: out of memory", L);
            goto out;
        }
        f->ntensors++;
        st = st_tensor_parse(f, it, t, err);
        if (st != NN_OK)
            goto out;
    }
    st = st_check_table(f, err);
out:
    cJSON_Delete(root);
    if (st != NN_OK)
        srv_st_close(f);
    return st;
}

enum nn_status srv_st_open(struct srv_st_file *f, const char *path, const char *label,
                           struct nn_err *err)
{
    memset(f, 0, sizeof *f);
    const char *L = label ? label : path;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return nn_err_set(err, NN_EINVAL, "%s: cannot open: %s", L, strerror(errno));
    struct stat sb;
    if (fstat(fd, &sb) != 0 || !S_ISREG(sb.st_mode)) {
        close(fd);
        return nn_err_set(err, NN_EINVAL, "%s: not a regular file", L);
    }
    size_t len = (size_t)sb.st_size;
    if (len < 8) {
        close(fd);
        return nn_err_set(err, NN_EINVAL,
                          "%s: file is %zu bytes, too short for the 8-byte header length", L, len);
    }
    void *map = mmap(NULL, len, PROT_READ, MAP_PRIVATE, fd, 0);
    int e = errno;
    close(fd);
    if (map == MAP_FAILED)
        return nn_err_set(err, NN_ENOMEM, "%s: cannot map %zu bytes: %s", L, len, strerror(e));
    enum nn_status st = srv_st_parse(f, map, len, L, err);
    if (st != NN_OK) {
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

static double st_elem(enum srv_st_dtype dt, const unsigned char *p)
{
    switch (dt) {
    case SRV_ST_F64: {
        double d;
        memcpy(&d, p, sizeof d);
        return d;
    }
    case SRV_ST_F32: {
        float v;
        memcpy(&v, p, sizeof v);
        return v;
    }
    case SRV_ST_F16:
    case SRV_ST_BF16: {
        unsigned short h;
        memcpy(&h, p, sizeof h);
        return dt == SRV_ST_F16 ? srv_st_f16_to_f32(h) : srv_st_bf16_to_f32(h);
    }
    default: return NAN; /* not loadable: refused before the loop */
    }
}

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
    size_t ss = st_sizes[t->dtype];
    for (size_t i = 0; i < t->numel; i++) {
        double v = st_elem(t->dtype, t->data + i * ss);
        if (!isfinite(v)) {
            free(data);
            return nn_err_set(err, NN_EINVAL, "%s: tensor \"%s\" holds a non-finite value at %zu",
                              L, N, i);
        }
        if (dt == NN_F32) {
            if (fabs(v) > FLT_MAX) {
                free(data);
                return nn_err_set(err, NN_EINVAL,
                                  "%s: tensor \"%s\" value %g at %zu is out of float32 range", L, N,
                                  v, i);
            }
            ((float *)data)[i] = (float)v;
        } else {
            ((double *)data)[i] = v;
        }
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
