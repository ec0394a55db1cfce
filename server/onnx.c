/* ONNX reader: NAME.onnx -> struct nn_net and the graph's signature. See onnx.h for what
 * loads and the limits. The file is decoded by protobuf-c's generated code (onnx.pb-c.c,
 * made from Debian's onnx.proto at build time); this file only walks the decoded graph.
 *
 * How a graph becomes a net: every value (the graph input, initializers, node outputs) is
 * indexed by name, each node's inputs resolved (dangling names and out-of-order nodes are
 * refused), and then the data path is walked from the graph input: at each value its
 * consumers must be one node relud maps onto a layer (the op table below), or one of the
 * multi-node patterns torch.onnx.export writes (GELU, SiLU, x.view(x.size(0), -1)). The walk
 * tracks the tensor's static shape (from the input's declared one) to check weights as it
 * goes. It ends at the graph output, and every node (but Constants) must have been used. */
#include <errno.h>
#include <fcntl.h>
#include <float.h>
#include <malloc.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <protobuf-c/protobuf-c.h>

#include "onnx/onnx.pb-c.h"
#include "server/fmap.h"
#include "server/layers.h"
#include "server/onnx.h"
#include "server/safetensors.h"

#if !defined(__BYTE_ORDER__) || __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "onnx.c reads little-endian tensor data in place: port the loads for this host"
#endif

#define EXT_FILE_MAX ((size_t)16 << 30) /* one external data file */
#define MAX_EXT_FILES 16

static const char *S(const char *s) { return s ? s : ""; }

/* ---- protobuf-c with a budget ------------------------------------------------------ */
/* Every allocation of the decoder is counted against the file's size plus a slack, so a
 * file of many empty messages (2 bytes each on the wire, ~100 bytes decoded) cannot make
 * it allocate without bound: the decode fails instead.
 * Small blocks carry their size in a header (the pointer returned is 16 past a 64-aligned
 * block); big ones (BIG and up: an initializer's raw_data) are plain 64-aligned malloc
 * blocks, so that a float32 weight decoded into one can become the layer's tensor as it is
 * (adopt_raw) instead of being copied once more: the decode's copy is the only one. */
struct budget {
    size_t left;
    int exhausted;
};

#define HDR 16
#define BIG ((size_t)256 << 10)
static void *b_alloc(void *ctx, size_t n)
{
    struct budget *b = ctx;
    void *p;
    if (n > b->left || b->left - n < HDR) {
        b->exhausted = 1;
        return NULL;
    }
    if (n >= BIG) {
        if (posix_memalign(&p, 64, n))
            return NULL;
        size_t u = malloc_usable_size(p);
        if (u > b->left) {
            free(p);
            b->exhausted = 1;
            return NULL;
        }
        b->left -= u;
        return p;
    }
    if (posix_memalign(&p, 64, n + HDR))
        return NULL;
    memcpy(p, &n, sizeof n);
    b->left -= n + HDR;
    return (unsigned char *)p + HDR;
}

static void b_free(void *ctx, void *ptr)
{
    struct budget *b = ctx;
    if (!ptr)
        return;
    if ((uintptr_t)ptr % 64 != HDR) { /* a big block */
        b->left += malloc_usable_size(ptr);
        free(ptr);
        return;
    }
    unsigned char *p = (unsigned char *)ptr - HDR;
    size_t n;
    memcpy(&n, p, sizeof n);
    b->left += n + HDR;
    free(p);
}

/* ---- the wire format's nesting, before decoding -------------------------------------- */
/* protobuf-c's unpack recurses once per nested message and has no depth limit, so a file of
 * messages nested a few bytes per level would overflow the stack. This walks the wire once
 * with the generated descriptors (tags, lengths, which fields are messages; no value is
 * read or kept) and refuses nesting deeper than SRV_ONNX_MAX_DEPTH and malformed framing.
 * Recursion here is bounded by that depth. */
static int read_varint(const uint8_t **p, const uint8_t *end, uint64_t *v)
{
    uint64_t x = 0;
    for (int shift = 0; shift < 64 && *p < end; shift += 7) {
        uint8_t c = *(*p)++;
        x |= (uint64_t)(c & 0x7f) << shift;
        if (!(c & 0x80)) {
            *v = x;
            return 0;
        }
    }
    return -1;
}

/* 0 ok; -1 malformed; -2 too deep. */
static int wire_check(const uint8_t *p, const uint8_t *end, const ProtobufCMessageDescriptor *desc,
                      int depth)
{
    if (depth > SRV_ONNX_MAX_DEPTH)
        return -2;
    while (p < end) {
        uint64_t key, n;
        if (read_varint(&p, end, &key))
            return -1;
        unsigned wt = (unsigned)(key & 7);
        uint64_t field = key >> 3;
        switch (wt) {
        case 0: /* varint */
            if (read_varint(&p, end, &n))
                return -1;
            break;
        case 1: /* 64-bit */
            if (end - p < 8)
                return -1;
            p += 8;
            break;
        case 5: /* 32-bit */
            if (end - p < 4)
                return -1;
            p += 4;
            break;
        case 2: { /* length-delimited: a message, a string, bytes or a packed array */
            if (read_varint(&p, end, &n) || n > (uint64_t)(end - p))
                return -1;
            const ProtobufCFieldDescriptor *f =
                desc && field <= 0x1fffffff
                    ? protobuf_c_message_descriptor_get_field(desc, (unsigned)field)
                    : NULL;
            if (f && f->type == PROTOBUF_C_TYPE_MESSAGE) {
                int rc = wire_check(p, p + n, f->descriptor, depth + 1);
                if (rc)
                    return rc;
            }
            p += n;
            break;
        }
        default: /* groups (3, 4) are not in ONNX; 6 and 7 do not exist */ return -1;
        }
    }
    return 0;
}

/* ---- tensors: initializers and Constant values ----------------------------------------- */
/* A tensor's data as little-endian bytes of a safetensors dtype (the same converter table
 * loads both formats). */
struct tview {
    const char *name;
    enum srv_st_dtype dt;
    int ndim;
    size_t shape[NN_MAX_DIMS];
    size_t numel;
    const unsigned char *data;
    Onnx__TensorProto *raw; /* the tensor whose decoded raw_data data is, or NULL */
};

struct ext_map {
    char name[SRV_ONNX_NAME];
    void *map;
    size_t len;
};

struct rd {
    const char *label, *dir;
    struct nn_err *err;
    enum nn_status st; /* of the first failure */
    Onnx__ModelProto *mp;
    const Onnx__GraphProto *g;
    int opset;
    enum nn_dtype dt;
    /* values, sorted by name */
    struct val *vals;
    int nvals;
    int *cons; /* consumer node indices, per value a run */
    unsigned char *done;
    const char *input, *output;
    /* the chain so far */
    struct nn_layer *layers;
    int nlayers, caplayers;
    struct srv_onnx_param *params;
    int nparams, capparams;
    int rank;
    int64_t dims[NN_MAX_DIMS]; /* the current value's static shape, -1 unknown */
    int pointwise;             /* every layer so far is elementwise */
    int flatten_axis;
    struct ext_map ext[MAX_EXT_FILES];
    int next;
    Onnx__TensorProto **adopted; /* whose raw_data a layer owns now */
    int nadopted, capadopted;
    void **scratch;
    int nscratch, capscratch;
};

enum { V_INPUT, V_INIT, V_NODE };
struct val {
    const char *name;
    int kind, idx, slot;
    int ncons, first;
};

static int fail(struct rd *r, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static int fail(struct rd *r, const char *fmt, ...)
{
    char buf[NN_ERR_LEN];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    r->st = nn_err_set(r->err, NN_EINVAL, "%s: %s", r->label, buf);
    return -1;
}

static int oom(struct rd *r)
{
    r->st = nn_err_set(r->err, NN_ENOMEM, "%s: out of memory", r->label);
    return -1;
}

static const Onnx__NodeProto *N(const struct rd *r, int n) { return r->g->node[n]; }
static const char *out0(const struct rd *r, int n)
{
    return N(r, n)->n_output ? S(N(r, n)->output[0]) : "";
}

/* node "/0/Gemm" (Gemm, opset 13), for messages */
static const char *node_desc(const struct rd *r, int n, char *buf, size_t len)
{
    const Onnx__NodeProto *nd = N(r, n);
    const char *dom = S(nd->domain);
    int def = !dom[0] || !strcmp(dom, "ai.onnx");
    if (S(nd->name)[0])
        snprintf(buf, len, "node \"%.60s\" (%s%s%.40s, opset %d)", nd->name, def ? "" : dom,
                 def ? "" : ".", S(nd->op_type), r->opset);
    else
        snprintf(buf, len, "node #%d (%s%s%.40s, opset %d)", n, def ? "" : dom, def ? "" : ".",
                 S(nd->op_type), r->opset);
    return buf;
}

static int cmp_val(const void *a, const void *b)
{
    return strcmp(((const struct val *)a)->name, ((const struct val *)b)->name);
}

static struct val *val_find(const struct rd *r, const char *name)
{
    struct val key = {.name = name};
    return bsearch(&key, r->vals, (size_t)r->nvals, sizeof *r->vals, cmp_val);
}

static void *scratch(struct rd *r, size_t bytes)
{
    if (r->nscratch == r->capscratch) {
        int nc = r->capscratch ? 2 * r->capscratch : 8;
        void **ns = realloc(r->scratch, (size_t)nc * sizeof *ns);
        if (!ns)
            return NULL;
        r->scratch = ns;
        r->capscratch = nc;
    }
    void *p = malloc(bytes ? bytes : 1);
    if (p)
        r->scratch[r->nscratch++] = p;
    return p;
}

/* ONNX data types -> the safetensors dtype of the same bytes; -1 for none. */
static int st_dtype(int32_t onnx)
{
    switch (onnx) {
    case ONNX__TENSOR_PROTO__DATA_TYPE__FLOAT: return SRV_ST_F32;
    case ONNX__TENSOR_PROTO__DATA_TYPE__DOUBLE: return SRV_ST_F64;
    case ONNX__TENSOR_PROTO__DATA_TYPE__FLOAT16: return SRV_ST_F16;
    case ONNX__TENSOR_PROTO__DATA_TYPE__BFLOAT16: return SRV_ST_BF16;
    case ONNX__TENSOR_PROTO__DATA_TYPE__INT64: return SRV_ST_I64;
    case ONNX__TENSOR_PROTO__DATA_TYPE__INT32: return SRV_ST_I32;
    case ONNX__TENSOR_PROTO__DATA_TYPE__INT16: return SRV_ST_I16;
    case ONNX__TENSOR_PROTO__DATA_TYPE__INT8: return SRV_ST_I8;
    case ONNX__TENSOR_PROTO__DATA_TYPE__UINT64: return SRV_ST_U64;
    case ONNX__TENSOR_PROTO__DATA_TYPE__UINT32: return SRV_ST_U32;
    case ONNX__TENSOR_PROTO__DATA_TYPE__UINT16: return SRV_ST_U16;
    case ONNX__TENSOR_PROTO__DATA_TYPE__UINT8: return SRV_ST_U8;
    case ONNX__TENSOR_PROTO__DATA_TYPE__BOOL: return SRV_ST_BOOL;
    default: return -1;
    }
}

/* A file name in model_dir: [A-Za-z0-9_.-], not starting with '.', no '/'. */
static int plain_name(const char *s)
{
    size_t n = 0;
    if (!s[0] || s[0] == '.')
        return 0;
    for (; s[n]; n++) {
        char c = s[n];
        if (!((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
              c == '_' || c == '.' || c == '-') ||
            n >= SRV_ONNX_NAME - 1)
            return 0;
    }
    return 1;
}

static int parse_u64(const char *s, size_t *v)
{
    if (!s || !s[0])
        return -1;
    size_t x = 0;
    for (; *s; s++) {
        if (*s < '0' || *s > '9' || x > (SIZE_MAX - 9) / 10)
            return -1;
        x = x * 10 + (size_t)(*s - '0');
    }
    *v = x;
    return 0;
}

/* The bytes of an external tensor: location (a file in model_dir), offset, length. */
static int ext_data(struct rd *r, const Onnx__TensorProto *t, const char *what, size_t bytes,
                    const unsigned char **data)
{
    const char *loc = NULL;
    size_t off = 0, len = (size_t)-1;
    for (size_t i = 0; i < t->n_external_data; i++) {
        const char *k = S(t->external_data[i]->key), *v = S(t->external_data[i]->value);
        if (!strcmp(k, "location"))
            loc = v;
        else if (!strcmp(k, "offset") && parse_u64(v, &off))
            return fail(r, "%s: external data offset \"%.30s\" is not a byte offset", what, v);
        else if (!strcmp(k, "length") && parse_u64(v, &len))
            return fail(r, "%s: external data length \"%.30s\" is not a byte count", what, v);
    }
    if (!r->dir)
        return fail(r, "%s: external data (%.60s) is not supported here", what, loc ? loc : "?");
    if (!loc || !plain_name(loc))
        return fail(r,
                    "%s: external data location \"%.60s\" must be a file name in model_dir "
                    "([A-Za-z0-9_.-], not starting with '.')",
                    what, loc ? loc : "");
    if (len != (size_t)-1 && len != bytes)
        return fail(r, "%s: external data length %zu but its dims need %zu bytes", what, len,
                    bytes);
    struct ext_map *m = NULL;
    for (int i = 0; i < r->next && !m; i++)
        if (!strcmp(r->ext[i].name, loc))
            m = &r->ext[i];
    if (!m) {
        if (r->next == MAX_EXT_FILES)
            return fail(r, "%s: more than %d external data files", what, MAX_EXT_FILES);
        char path[4096];
        snprintf(path, sizeof path, "%s/%s", r->dir, loc);
        int fd = open(path, O_RDONLY | O_CLOEXEC);
        if (fd < 0)
            return fail(r, "%s: external data %s: %s", what, loc, strerror(errno));
        struct stat sb;
        if (fstat(fd, &sb) != 0 || !S_ISREG(sb.st_mode) || sb.st_size <= 0 ||
            (unsigned long long)sb.st_size > EXT_FILE_MAX) {
            close(fd);
            return fail(r, "%s: external data %s is not a regular file of 1 byte to %zu GiB", what,
                        loc, EXT_FILE_MAX >> 30);
        }
        void *map = mmap(NULL, (size_t)sb.st_size, PROT_READ, MAP_PRIVATE, fd, 0);
        int e = errno;
        close(fd);
        if (map == MAP_FAILED)
            return fail(r, "%s: external data %s: cannot map: %s", what, loc, strerror(e));
        m = &r->ext[r->next++];
        snprintf(m->name, sizeof m->name, "%s", loc);
        m->map = map;
        m->len = (size_t)sb.st_size;
    }
    if (off > m->len || bytes > m->len - off)
        return fail(r, "%s: external data [%zu, +%zu) runs past the end of %s (%zu bytes)", what,
                    off, bytes, loc, m->len);
    *data = (const unsigned char *)m->map + off;
    return 0;
}

/* Narrows int32_data (one value per element, as ONNX stores FLOAT16, BFLOAT16 and the small
 * integer types) to the element's own bytes. */
static const unsigned char *narrow32(struct rd *r, const int32_t *v, size_t n, size_t es)
{
    unsigned char *p = scratch(r, n * es);
    if (!p)
        return NULL;
    for (size_t i = 0; i < n; i++) {
        uint32_t u = (uint32_t)v[i];
        memcpy(p + i * es, &u, es); /* little-endian: the low bytes */
    }
    return p;
}

/* Checks a TensorProto (dims, data type, where its data is, that the data holds exactly
 * numel values) and views it. */
static int tview_of(struct rd *r, const Onnx__TensorProto *t, const char *name, struct tview *tv)
{
    char what[SRV_ONNX_NAME + 32];
    snprintf(what, sizeof what, "tensor \"%.100s\"", name);
    memset(tv, 0, sizeof *tv);
    tv->name = name;
    int dt = st_dtype(t->data_type);
    if (dt < 0)
        return fail(r, "%s: data type %d is not a number type relud reads", what,
                    (int)t->data_type);
    tv->dt = (enum srv_st_dtype)dt;
    if (t->n_dims > NN_MAX_DIMS)
        return fail(r, "%s: rank %zu is over %d", what, t->n_dims, NN_MAX_DIMS);
    if (t->segment)
        return fail(r, "%s: segmented tensors are not supported", what);
    tv->ndim = (int)t->n_dims;
    size_t numel = 1, bytes, es = srv_st_dtype_size(tv->dt);
    for (int i = 0; i < tv->ndim; i++) {
        if (t->dims[i] < 0)
            return fail(r, "%s: dims[%d] is %lld", what, i, (long long)t->dims[i]);
        tv->shape[i] = (size_t)t->dims[i];
        if (__builtin_mul_overflow(numel, tv->shape[i], &numel))
            return fail(r, "%s: dims overflow", what);
    }
    if (__builtin_mul_overflow(numel, es, &bytes))
        return fail(r, "%s: dims overflow", what);
    tv->numel = numel;
    if (t->has_data_location && t->data_location == ONNX__TENSOR_PROTO__DATA_LOCATION__EXTERNAL)
        return ext_data(r, t, what, bytes, &tv->data);
    if (t->has_raw_data) {
        if (t->raw_data.len != bytes)
            return fail(r, "%s: raw_data holds %zu bytes but dims %s of %s need %zu", what,
                        t->raw_data.len, nn_shape_str((char[96]){0}, 96, tv->shape, tv->ndim),
                        srv_st_dtype_names[tv->dt], bytes);
        tv->data = t->raw_data.data ? t->raw_data.data : (const unsigned char *)"";
        tv->raw = (Onnx__TensorProto *)t;
        return 0;
    }
    size_t have;
    const void *typed = NULL;
    int direct = 1; /* the typed field holds the element's own bytes */
    switch (tv->dt) {
    case SRV_ST_F32: have = t->n_float_data, typed = t->float_data; break;
    case SRV_ST_F64: have = t->n_double_data, typed = t->double_data; break;
    case SRV_ST_I64: have = t->n_int64_data, typed = t->int64_data; break;
    case SRV_ST_U64: have = t->n_uint64_data, typed = t->uint64_data; break;
    case SRV_ST_I32: have = t->n_int32_data, typed = t->int32_data; break;
    case SRV_ST_U32: have = t->n_uint64_data, direct = 0; break;
    default: have = t->n_int32_data, direct = 0; break; /* F16, BF16, 8/16-bit ints, bool */
    }
    if (have != numel)
        return fail(r, "%s: holds %zu values but dims %s need %zu", what, have,
                    nn_shape_str((char[96]){0}, 96, tv->shape, tv->ndim), numel);
    if (direct) {
        tv->data = typed ? typed : (const void *)"";
        return 0;
    }
    if (tv->dt == SRV_ST_U32) {
        uint32_t *p = scratch(r, numel * 4);
        if (!p)
            return oom(r);
        for (size_t i = 0; i < numel; i++)
            p[i] = (uint32_t)t->uint64_data[i];
        tv->data = (const unsigned char *)p;
        return 0;
    }
    if (!(tv->data = narrow32(r, t->int32_data, numel, es)))
        return oom(r);
    return 0;
}

/* Element i as a double (every number type; F32 is the float's shortest decimal, so a
 * LeakyReLU's 0.2f reads as 0.2, as torch had it). */
static double f32_short(float f)
{
    char b[32];
    for (int p = 1; p <= 9; p++) {
        snprintf(b, sizeof b, "%.*g", p, (double)f);
        if (strtof(b, NULL) == f)
            return strtod(b, NULL);
    }
    return f;
}

static double tv_get(const struct tview *tv, size_t i)
{
    const unsigned char *p = tv->data + i * srv_st_dtype_size(tv->dt);
    union {
        float f;
        double d;
        int64_t i64;
        uint64_t u64;
        int32_t i32;
        uint32_t u32;
        int16_t i16;
        uint16_t u16;
        int8_t i8;
        uint8_t u8;
    } u;
    memcpy(&u, p, srv_st_dtype_size(tv->dt));
    switch (tv->dt) {
    case SRV_ST_F64: return u.d;
    case SRV_ST_F32: return f32_short(u.f);
    case SRV_ST_F16: return f32_short(srv_st_f16_to_f32(u.u16));
    case SRV_ST_BF16: return f32_short(srv_st_bf16_to_f32(u.u16));
    case SRV_ST_I64: return (double)u.i64;
    case SRV_ST_U64: return (double)u.u64;
    case SRV_ST_I32: return u.i32;
    case SRV_ST_U32: return u.u32;
    case SRV_ST_I16: return u.i16;
    case SRV_ST_U16: return u.u16;
    case SRV_ST_I8: return u.i8;
    case SRV_ST_U8:
    case SRV_ST_BOOL: return u.u8;
    default: return NAN;
    }
}

/* name's value when it is a constant (an initializer or a Constant node's output): 1 with
 * tv filled, 0 when it is not a constant, -1 on a broken tensor. */
static int const_of(struct rd *r, const char *name, struct tview *tv)
{
    const struct val *v = val_find(r, name);
    if (!v)
        return 0;
    if (v->kind == V_INIT)
        return tview_of(r, r->g->initializer[v->idx], name, tv) ? -1 : 1;
    if (v->kind != V_NODE || strcmp(S(N(r, v->idx)->op_type), "Constant"))
        return 0;
    const Onnx__NodeProto *nd = N(r, v->idx);
    char buf[160];
    for (size_t i = 0; i < nd->n_attribute; i++) {
        const Onnx__AttributeProto *a = nd->attribute[i];
        const char *an = S(a->name);
        memset(tv, 0, sizeof *tv);
        tv->name = name;
        if (!strcmp(an, "value") && a->t)
            return tview_of(r, a->t, name, tv) ? -1 : 1;
        if (!strcmp(an, "value_float")) {
            tv->dt = SRV_ST_F32, tv->numel = 1, tv->data = (const unsigned char *)&a->f;
            return 1;
        }
        if (!strcmp(an, "value_int")) {
            tv->dt = SRV_ST_I64, tv->numel = 1, tv->data = (const unsigned char *)&a->i;
            return 1;
        }
        if (!strcmp(an, "value_floats") || !strcmp(an, "value_ints")) {
            int f = an[6] == 'f';
            tv->dt = f ? SRV_ST_F32 : SRV_ST_I64, tv->ndim = 1;
            tv->numel = tv->shape[0] = f ? a->n_floats : a->n_ints;
            tv->data = f ? (const unsigned char *)a->floats : (const unsigned char *)a->ints;
            if (!tv->data)
                tv->data = (const unsigned char *)"";
            return 1;
        }
    }
    fail(r, "%s: a Constant without a numeric value", node_desc(r, v->idx, buf, sizeof buf));
    return -1;
}

/* A constant of one element: 1 with *x, 0 when name is not one, -1 on error. */
static int const_scalar(struct rd *r, const char *name, double *x)
{
    struct tview tv;
    int rc = const_of(r, name, &tv);
    if (rc != 1)
        return rc;
    if (tv.numel != 1)
        return 0;
    *x = tv_get(&tv, 0);
    return 1;
}

static int near(double a, double b) { return fabs(a - b) <= 1e-6 * fmax(1.0, fabs(b)); }

/* ---- attributes -------------------------------------------------------------------- */
static const Onnx__AttributeProto *attr(const struct rd *r, int n, const char *name)
{
    const Onnx__NodeProto *nd = N(r, n);
    for (size_t i = 0; i < nd->n_attribute; i++)
        if (!strcmp(S(nd->attribute[i]->name), name))
            return nd->attribute[i];
    return NULL;
}

/* Reads a FLOAT / INT / STRING attribute (def when absent); -1 on the wrong type. */
static int attr_f(struct rd *r, int n, const char *name, double def, double *x)
{
    const Onnx__AttributeProto *a = attr(r, n, name);
    char buf[160];
    *x = def;
    if (!a)
        return 0;
    if ((a->has_type && a->type != ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__FLOAT) || !isfinite(a->f))
        return fail(r, "%s: attribute %s is not a finite float", node_desc(r, n, buf, sizeof buf),
                    name);
    *x = f32_short(a->f);
    return 0;
}

static int attr_i(struct rd *r, int n, const char *name, int64_t def, int64_t *x)
{
    const Onnx__AttributeProto *a = attr(r, n, name);
    char buf[160];
    *x = def;
    if (!a)
        return 0;
    if (a->has_type && a->type != ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__INT)
        return fail(r, "%s: attribute %s is not an integer", node_desc(r, n, buf, sizeof buf),
                    name);
    *x = a->i;
    return 0;
}

/* ---- consumers --------------------------------------------------------------------- */
/* The nodes (not yet walked) that read value name, deduplicated; count, up to max. */
static int consumers(const struct rd *r, const char *name, int *out, int max)
{
    const struct val *v = val_find(r, name);
    int k = 0;
    if (!v)
        return 0;
    for (int i = 0; i < v->ncons; i++) {
        int n = r->cons[v->first + i], dup = 0;
        if (r->done[n])
            continue;
        for (int j = 0; j < k && !dup; j++)
            dup = out[j] == n;
        if (!dup && k < max)
            out[k++] = n;
        else if (!dup)
            k++;
    }
    return k;
}

static int is_op(const struct rd *r, int n, const char *op)
{
    const Onnx__NodeProto *nd = N(r, n);
    const char *dom = S(nd->domain);
    return (!dom[0] || !strcmp(dom, "ai.onnx")) && !strcmp(S(nd->op_type), op);
}

static int in_is(const struct rd *r, int n, size_t slot, const char *name)
{
    return N(r, n)->n_input > slot && !strcmp(S(N(r, n)->input[slot]), name);
}

/* The node after n in a pattern: the only reader of n's output, of op op; its output is not
 * the graph's output (a pattern's inner values are not results). -1 otherwise. */
static int inner_next(const struct rd *r, int n, const char *op)
{
    const char *v = out0(r, n);
    int c[2];
    if (!v[0] || !strcmp(v, r->output) || consumers(r, v, c, 2) != 1 || !is_op(r, c[0], op))
        return -1;
    return c[0];
}

/* For a binary node reading v: its other operand ("" if n is not binary over v). */
static const char *other(const struct rd *r, int n, const char *v)
{
    const Onnx__NodeProto *nd = N(r, n);
    if (nd->n_input != 2)
        return "";
    if (!strcmp(S(nd->input[0]), v))
        return S(nd->input[1]);
    if (!strcmp(S(nd->input[1]), v))
        return S(nd->input[0]);
    return "";
}

/* n is a binary node of v and a constant near c (either operand order). */
static int other_const(struct rd *r, int n, const char *v, double c)
{
    double x;
    const char *o = other(r, n, v);
    return o[0] && const_scalar(r, o, &x) == 1 && near(x, c);
}

/* ---- the chain --------------------------------------------------------------------- */
static struct nn_layer *push_layer(struct rd *r, enum nn_kind kind)
{
    if (r->nlayers == r->caplayers) {
        int nc = r->caplayers ? 2 * r->caplayers : 8;
        struct nn_layer *nl = realloc(r->layers, (size_t)nc * sizeof *nl);
        if (!nl) {
            oom(r);
            return NULL;
        }
        r->layers = nl;
        r->caplayers = nc;
    }
    struct nn_layer *l = &r->layers[r->nlayers++];
    memset(l, 0, sizeof *l);
    nn_layer_init(l, kind);
    if (!nn_kind_is_elementwise(kind))
        r->pointwise = 0;
    return l;
}

/* Records that initializer tv became layer's weight or bias. */
static int add_use(struct rd *r, const struct tview *tv, int layer, int bias, int transpose,
                   double scale)
{
    struct srv_onnx_param *p = NULL;
    for (int i = 0; i < r->nparams && !p; i++)
        if (!strcmp(r->params[i].name, tv->name))
            p = &r->params[i];
    if (!p) {
        if (strlen(tv->name) >= SRV_ONNX_NAME)
            return fail(r, "initializer name \"%.60s...\" is longer than %d bytes", tv->name,
                        SRV_ONNX_NAME - 1);
        if (r->nparams == r->capparams) {
            int nc = r->capparams ? 2 * r->capparams : 8;
            struct srv_onnx_param *np = realloc(r->params, (size_t)nc * sizeof *np);
            if (!np)
                return oom(r);
            r->params = np;
            r->capparams = nc;
        }
        p = &r->params[r->nparams++];
        memset(p, 0, sizeof *p);
        snprintf(p->name, sizeof p->name, "%s", tv->name);
        p->ndim = tv->ndim ? tv->ndim : 1;
        for (int i = 0; i < tv->ndim; i++)
            p->shape[i] = tv->shape[i];
        if (!tv->ndim)
            p->shape[0] = 1;
        p->numel = tv->numel;
    }
    if (p->nuses == (int)(sizeof p->uses / sizeof *p->uses))
        return fail(r, "initializer \"%.60s\" is shared by more than %d layers", tv->name,
                    (int)(sizeof p->uses / sizeof *p->uses));
    p->uses[p->nuses++] = (struct srv_onnx_use){layer, bias, transpose, scale};
    return 0;
}

/* (R, C) -> (C, R), in blocks so both sides stay in cache. */
#define TRANSPOSE(T)                                                    \
    static void transpose_##T(T *dst, const T *src, size_t R, size_t C) \
    {                                                                   \
        for (size_t i0 = 0; i0 < R; i0 += 32)                           \
            for (size_t j0 = 0; j0 < C; j0 += 32)                       \
                for (size_t i = i0; i < R && i < i0 + 32; i++)          \
                    for (size_t j = j0; j < C && j < j0 + 32; j++)      \
                        dst[j * R + i] = src[i * C + j];                \
    }
TRANSPOSE(float)
TRANSPOSE(double)

/* A big raw_data block already in the model's dtype becomes the layer's tensor as it is
 * (see the budget): checked finite, and kept from protobuf-c's free. 1 when adopted. */
static int adopt_raw(struct rd *r, const struct tview *tv, struct nn_tensor *out)
{
    size_t es = nn_dtype_size(r->dt);
    Onnx__TensorProto *t = tv->raw;
    int same =
        (r->dt == NN_F32 && tv->dt == SRV_ST_F32) || (r->dt == NN_F64 && tv->dt == SRV_ST_F64);
    if (!t || !same || t->raw_data.len < BIG || (uintptr_t)t->raw_data.data % 64 ||
        t->raw_data.len != tv->numel * es)
        return 0;
    for (int i = 0; i < r->nadopted; i++)
        if (r->adopted[i] == t)
            return 0; /* a second layer gets a copy */
    if (nn_has_nonfinite(r->dt, t->raw_data.data, tv->numel))
        return 0; /* the copying path names the index */
    if (r->nadopted == r->capadopted) {
        int nc = r->capadopted ? 2 * r->capadopted : 8;
        Onnx__TensorProto **na = realloc(r->adopted, (size_t)nc * sizeof *na);
        if (!na)
            return 0;
        r->adopted = na;
        r->capadopted = nc;
    }
    r->adopted[r->nadopted++] = t;
    memset(out, 0, sizeof *out);
    out->dtype = r->dt;
    out->ndim = tv->ndim ? tv->ndim : 1;
    memcpy(out->shape, tv->shape, sizeof out->shape);
    if (!tv->ndim)
        out->shape[0] = 1;
    out->numel = tv->numel;
    out->data = t->raw_data.data;
    return 1;
}

/* Converts tv into a layer tensor of the model's dtype (a scalar as [1]): finite values
 * only; transposed ([R, C] -> [C, R]) and scaled on request. */
static int layer_tensor(struct rd *r, const struct tview *tv, int transpose, double scale,
                        struct nn_tensor *out)
{
    if (!transpose && scale == 1.0 && adopt_raw(r, tv, out))
        return 0;
    struct srv_st_file f;
    memset(&f, 0, sizeof f);
    snprintf(f.label, sizeof f.label, "%s", r->label);
    struct srv_st_tensor st;
    memset(&st, 0, sizeof st);
    st.name = (char *)tv->name;
    st.dtype = tv->dt;
    st.ndim = tv->ndim ? tv->ndim : 1;
    memcpy(st.shape, tv->shape, sizeof st.shape);
    if (!tv->ndim)
        st.shape[0] = 1;
    st.numel = tv->numel;
    st.data = tv->data;
    if ((r->st = srv_st_tensor_load(&f, &st, r->dt, out, r->err)))
        return -1;
    if (transpose) {
        size_t R = out->shape[0], C = out->shape[1];
        void *t = malloc(out->numel ? out->numel * nn_dtype_size(r->dt) : 1);
        if (!t)
            return oom(r);
        if (r->dt == NN_F32)
            transpose_float(t, out->data, R, C);
        else
            transpose_double(t, out->data, R, C);
        free(out->data);
        out->data = t;
        out->shape[0] = C;
        out->shape[1] = R;
    }
    if (scale != 1.0) {
        for (size_t i = 0; i < out->numel; i++) {
            double v = r->dt == NN_F32 ? ((float *)out->data)[i] : ((double *)out->data)[i];
            v *= scale;
            if (!(fabs(v) <= (r->dt == NN_F32 ? FLT_MAX : DBL_MAX)))
                return fail(r, "tensor \"%.100s\" times %g overflows at %zu", tv->name, scale, i);
            if (r->dt == NN_F32)
                ((float *)out->data)[i] = (float)v;
            else
                ((double *)out->data)[i] = v;
        }
    }
    return 0;
}

static char *shape_str(char *buf, size_t len, const int64_t *d, int nd)
{
    size_t n = (size_t)snprintf(buf, len, "[");
    for (int i = 0; i < nd && n < len; i++) {
        if (d[i] < 0)
            n += (size_t)snprintf(buf + n, len - n, "%sN", i ? ", " : "");
        else
            n += (size_t)snprintf(buf + n, len - n, "%s%lld", i ? ", " : "", (long long)d[i]);
    }
    if (n < len)
        snprintf(buf + n, len - n, "]");
    return buf;
}

/* The current value reshaped to [prod(dims < a), prod(dims >= a)] (a Flatten): nothing on
 * a 2-D tensor at axis 1; the input reshaped before the pass when every layer so far is
 * elementwise; refused otherwise. */
static int flatten(struct rd *r, int n, int64_t axis)
{
    char buf[160], sh[96];
    if (axis < 0)
        axis += r->rank;
    if (axis < 0 || axis > r->rank)
        return fail(r, "%s: axis out of range for a %d-D tensor", node_desc(r, n, buf, sizeof buf),
                    r->rank);
    int64_t d[2] = {1, 1};
    for (int i = 0; i < r->rank; i++) {
        int64_t *p = &d[i >= axis];
        if (*p < 0 || r->dims[i] < 0)
            *p = -1;
        else if (__builtin_mul_overflow(*p, r->dims[i], p) || *p > SRV_ONNX_MAX_DIM)
            return fail(r, "%s: the flattened size overflows", node_desc(r, n, buf, sizeof buf));
    }
    if (r->rank == 2 && axis == 1)
        return 0;
    if (!r->pointwise || r->flatten_axis >= 0)
        return fail(r,
                    "%s reshapes %s after a layer that is not elementwise (relud reshapes only "
                    "the input: flatten first)",
                    node_desc(r, n, buf, sizeof buf), shape_str(sh, sizeof sh, r->dims, r->rank));
    r->flatten_axis = (int)axis;
    r->rank = 2;
    r->dims[0] = d[0];
    r->dims[1] = d[1];
    return 0;
}

/* ---- ops: one handler per node kind ------------------------------------------------- */
/* Each maps node n (whose first input is x, the current value) onto layers, marks what it
 * used and sets *next to the value after it: 0, or -1 with the message. */
typedef int op_fn(struct rd *r, int n, const char *x, const char **next);

struct op_row {
    const char *op;   /* the ONNX op_type */
    const char *show; /* in "supported: ..." ("" for a pattern's first node) */
    int since;        /* the opset that has it */
    op_fn *fn;
    enum nn_kind kind; /* op_act */
    const char *attr;  /* op_act: the float attribute -> layer->p[0], or NULL */
    double def;
};

static int op_act(struct rd *r, int n, const char *x, const char **next);
static int op_gemm(struct rd *r, int n, const char *x, const char **next);
static int op_matmul(struct rd *r, int n, const char *x, const char **next);
static int op_prelu(struct rd *r, int n, const char *x, const char **next);
static int op_selu(struct rd *r, int n, const char *x, const char **next);
static int op_gelu(struct rd *r, int n, const char *x, const char **next);
static int op_clip(struct rd *r, int n, const char *x, const char **next);
static int op_softmax(struct rd *r, int n, const char *x, const char **next);
static int op_flatten(struct rd *r, int n, const char *x, const char **next);
static int op_reshape(struct rd *r, int n, const char *x, const char **next);
static int op_identity(struct rd *r, int n, const char *x, const char **next);
static int op_dropout(struct rd *r, int n, const char *x, const char **next);
static int op_mul(struct rd *r, int n, const char *x, const char **next);

static const struct op_row ops[] = {
    {"Gemm", "Gemm", 1, op_gemm, NN_LINEAR, NULL, 0},
    {"MatMul", "MatMul+Add", 1, op_matmul, NN_LINEAR, NULL, 0},
    {"Relu", "Relu", 1, op_act, NN_RELU, NULL, 0},
    {"LeakyRelu", "LeakyRelu", 1, op_act, NN_LEAKY_RELU, "alpha", 0.01},
    {"PRelu", "PRelu", 1, op_prelu, NN_PRELU, NULL, 0},
    {"Elu", "Elu", 1, op_act, NN_ELU, "alpha", 1.0},
    {"Selu", "Selu", 1, op_selu, NN_SELU, NULL, 0},
    {"Celu", "Celu", 12, op_act, NN_CELU, "alpha", 1.0},
    {"Gelu", "Gelu", 20, op_gelu, NN_GELU, NULL, 0},
    {"Sigmoid", "Sigmoid", 1, op_act, NN_SIGMOID, NULL, 0},
    {"Tanh", "Tanh", 1, op_act, NN_TANH, NULL, 0},
    {"Softplus", "Softplus", 1, op_act, NN_SOFTPLUS, NULL, 0},
    {"Clip", "Clip", 1, op_clip, NN_HARDTANH, NULL, 0},
    {"Softmax", "Softmax", 1, op_softmax, NN_SOFTMAX, NULL, 0},
    {"LogSoftmax", "LogSoftmax", 1, op_softmax, NN_LOG_SOFTMAX, NULL, 0},
    {"Flatten", "Flatten", 1, op_flatten, NN_KIND_COUNT, NULL, 0},
    {"Reshape", "Reshape", 5, op_reshape, NN_KIND_COUNT, NULL, 0},
    {"Identity", "Identity", 1, op_identity, NN_KIND_COUNT, NULL, 0},
    {"Dropout", "Dropout", 1, op_dropout, NN_KIND_COUNT, NULL, 0},
    {"Mul", "", 1, op_mul, NN_SOFTPLUS, NULL, 0}, /* Mul(x, beta) -> Softplus -> Div(beta) */
};
#define NOPS ((int)(sizeof ops / sizeof *ops))

static const struct op_row *op_find(const struct rd *r, int n)
{
    for (int i = 0; i < NOPS; i++)
        if (is_op(r, n, ops[i].op))
            return &ops[i];
    return NULL;
}

static int unsupported(struct rd *r, int n)
{
    char buf[160], list[256];
    size_t k = 0;
    list[0] = 0;
    for (int i = 0; i < NOPS && k < sizeof list; i++)
        if (ops[i].show[0])
            k += (size_t)snprintf(list + k, sizeof list - k, "%s%s", k ? ", " : "", ops[i].show);
    return fail(r, "%s is not supported (supported: %s)", node_desc(r, n, buf, sizeof buf), list);
}

static void take(struct rd *r, int n) { r->done[n] = 1; }

static int op_act(struct rd *r, int n, const char *x, const char **next)
{
    const struct op_row *row = op_find(r, n);
    double a = 0;
    if (row->attr && attr_f(r, n, row->attr, row->def, &a))
        return -1;
    struct nn_layer *l = push_layer(r, row->kind);
    if (!l)
        return -1;
    if (row->attr)
        l->p[0] = a;
    take(r, n);
    *next = out0(r, n);
    (void)x;
    return 0;
}

static int op_selu(struct rd *r, int n, const char *x, const char **next)
{
    double alpha, gamma;
    char buf[160];
    if (attr_f(r, n, "alpha", 1.67326319217681884765625, &alpha) ||
        attr_f(r, n, "gamma", 1.05070102214813232421875, &gamma))
        return -1;
    if (!near(alpha, 1.6732632423543772) || !near(gamma, 1.0507009873554805))
        return fail(r, "%s: alpha=%g gamma=%g (relud's SELU has torch's fixed constants)",
                    node_desc(r, n, buf, sizeof buf), alpha, gamma);
    return op_act(r, n, x, next);
}

static int op_gelu(struct rd *r, int n, const char *x, const char **next)
{
    const Onnx__AttributeProto *a = attr(r, n, "approximate");
    char buf[160];
    int tanh_ = 0;
    if (a) {
        size_t len = a->has_s ? a->s.len : 0;
        const char *s = len ? (const char *)a->s.data : "";
        if (len == 4 && !memcmp(s, "tanh", 4))
            tanh_ = 1;
        else if (!(len == 4 && !memcmp(s, "none", 4)))
            return fail(r, "%s: approximate must be \"none\" or \"tanh\"",
                        node_desc(r, n, buf, sizeof buf));
    }
    struct nn_layer *l = push_layer(r, NN_GELU);
    if (!l)
        return -1;
    l->approx = tanh_;
    take(r, n);
    *next = out0(r, n);
    (void)x;
    return 0;
}

static int op_identity(struct rd *r, int n, const char *x, const char **next)
{
    take(r, n);
    *next = out0(r, n);
    (void)x;
    return 0;
}

static int op_dropout(struct rd *r, int n, const char *x, const char **next)
{
    char buf[160];
    double mode;
    if (r->opset >= 12 && N(r, n)->n_input >= 3 && S(N(r, n)->input[2])[0]) {
        if (const_scalar(r, N(r, n)->input[2], &mode) != 1)
            return fail(r, "%s: training_mode is not a constant", node_desc(r, n, buf, sizeof buf));
        if (mode != 0)
            return fail(r,
                        "%s: training_mode is true (relud serves inference: export with "
                        "model.eval())",
                        node_desc(r, n, buf, sizeof buf));
    }
    return op_identity(r, n, x, next);
}

static int op_softmax(struct rd *r, int n, const char *x, const char **next)
{
    char buf[160];
    int64_t axis;
    int legacy = r->opset < 13;
    if (attr_i(r, n, "axis", legacy ? 1 : -1, &axis))
        return -1;
    if (axis < 0)
        axis += r->rank;
    if (axis < 0 || axis >= r->rank)
        return fail(r, "%s: axis out of range for a %d-D tensor", node_desc(r, n, buf, sizeof buf),
                    r->rank);
    if (legacy && axis != r->rank - 1)
        return fail(r,
                    "%s: axis %lld of a %d-D tensor normalises dims %lld.. together (below "
                    "opset 13); relud's softmax is over one dim (export at opset 13+)",
                    node_desc(r, n, buf, sizeof buf), (long long)axis, r->rank, (long long)axis);
    struct nn_layer *l = push_layer(r, op_find(r, n)->kind);
    if (!l)
        return -1;
    l->dim = (int)(axis - r->rank);
    take(r, n);
    *next = out0(r, n);
    (void)x;
    return 0;
}

static int op_clip(struct rd *r, int n, const char *x, const char **next)
{
    char buf[160];
    double lo = -INFINITY, hi = INFINITY;
    const Onnx__NodeProto *nd = N(r, n);
    if (r->opset < 11) {
        if (attr_f(r, n, "min", -INFINITY, &lo) || attr_f(r, n, "max", INFINITY, &hi))
            return -1;
    } else {
        for (int k = 1; k <= 2; k++) {
            if (nd->n_input <= (size_t)k || !S(nd->input[k])[0])
                continue;
            if (const_scalar(r, nd->input[k], k == 1 ? &lo : &hi) != 1)
                return fail(r, "%s: %s is not a constant scalar", node_desc(r, n, buf, sizeof buf),
                            k == 1 ? "min" : "max");
        }
    }
    if (isnan(lo) || isnan(hi))
        return fail(r, "%s: a bound is not a number", node_desc(r, n, buf, sizeof buf));
    if (fabs(lo) >= FLT_MAX)
        lo = -INFINITY;
    if (fabs(hi) >= FLT_MAX)
        hi = INFINITY;
    take(r, n);
    *next = out0(r, n);
    if (isinf(lo) && isinf(hi))
        return 0; /* no bounds: nothing */
    struct nn_layer *l;
    if (lo == 0 && hi == 6)
        l = push_layer(r, NN_RELU6);
    else if (lo == 0 && isinf(hi))
        l = push_layer(r, NN_RELU);
    else if (isfinite(lo) && isfinite(hi) && lo < hi) {
        if ((l = push_layer(r, NN_HARDTANH)))
            l->p[0] = lo, l->p[1] = hi;
    } else {
        return fail(r, "%s: Clip(min=%g, max=%g) has no relud layer (relu6, hardtanh, relu)",
                    node_desc(r, n, buf, sizeof buf), lo, hi);
    }
    (void)x;
    return l ? 0 : -1;
}

static int op_flatten(struct rd *r, int n, const char *x, const char **next)
{
    int64_t axis;
    if (attr_i(r, n, "axis", 1, &axis) || flatten(r, n, axis))
        return -1;
    take(r, n);
    *next = out0(r, n);
    (void)x;
    return 0;
}

/* Reshape to a constant [N, -1] (or [0, -1], [-1, K], [N, K]) that equals Flatten(1). */
static int op_reshape(struct rd *r, int n, const char *x, const char **next)
{
    char buf[160], sh[96];
    const Onnx__NodeProto *nd = N(r, n);
    struct tview tv;
    int rc = nd->n_input == 2 ? const_of(r, S(nd->input[1]), &tv) : 0;
    if (rc < 0)
        return -1;
    if (rc == 0)
        return fail(r,
                    "%s: a shape computed in the graph is not supported (relud serves Reshape "
                    "as nn.Flatten or x.view(x.size(0), -1))",
                    node_desc(r, n, buf, sizeof buf));
    int64_t allowzero;
    if (attr_i(r, n, "allowzero", 0, &allowzero))
        return -1;
    int64_t s[2] = {0, 0};
    int ok = tv.ndim == 1 && tv.numel == 2 && (tv.dt == SRV_ST_I64 || tv.dt == SRV_ST_I32);
    for (int i = 0; ok && i < 2; i++) { /* integers: read exactly, never through a double */
        int32_t v32;
        if (tv.dt == SRV_ST_I64)
            memcpy(&s[i], tv.data + 8 * (size_t)i, 8);
        else
            memcpy(&v32, tv.data + 4 * (size_t)i, 4), s[i] = v32;
    }
    int64_t P = 1; /* prod(dims[1..]) or -1 */
    for (int i = 1; i < r->rank && P >= 0; i++)
        P = r->dims[i] < 0 || __builtin_mul_overflow(P, r->dims[i], &P) ? -1 : P;
    if (ok && r->rank >= 1) {
        int ok0 = (s[0] == 0 && !allowzero) || (s[0] > 0 && s[0] == r->dims[0]) || s[0] == -1;
        int ok1 = (s[1] == -1 && s[0] != -1) || (s[1] > 0 && P >= 0 && s[1] == P);
        ok = ok0 && ok1 && !(s[0] == -1 && s[1] <= 0);
    } else {
        ok = 0;
    }
    if (!ok)
        return fail(r,
                    "%s: reshaping %s to %s is not a flatten (relud serves Reshape as "
                    "nn.Flatten's [N, -1])",
                    node_desc(r, n, buf, sizeof buf), shape_str(sh, sizeof sh, r->dims, r->rank),
                    tv.ndim == 1 && tv.numel == 2 ? "that shape" : "a shape not of 2 dims");
    if (flatten(r, n, 1))
        return -1;
    take(r, n);
    *next = out0(r, n);
    (void)x;
    return 0;
}

/* Gemm(x, B, C): y = alpha * x . op(B) + beta * C, op(B) = B^T when transB. */
static int op_gemm(struct rd *r, int n, const char *x, const char **next)
{
    char buf[160], sh[96];
    const Onnx__NodeProto *nd = N(r, n);
    const char *D = node_desc(r, n, buf, sizeof buf);
    double alpha, beta;
    int64_t ta, tb;
    if (attr_f(r, n, "alpha", 1, &alpha) || attr_f(r, n, "beta", 1, &beta) ||
        attr_i(r, n, "transA", 0, &ta) || attr_i(r, n, "transB", 0, &tb))
        return -1;
    if (ta)
        return fail(r, "%s: transA=1 (a transposed batch) is not supported", D);
    if (r->rank != 2)
        return fail(r, "%s: its input is %d-D (Gemm takes 2-D)", D, r->rank);
    struct tview B, C;
    int rc = nd->n_input >= 2 ? const_of(r, S(nd->input[1]), &B) : 0;
    if (rc < 0)
        return -1;
    if (!rc || B.ndim != 2)
        return fail(r, "%s: B must be a 2-D initializer or Constant", D);
    size_t in = tb ? B.shape[1] : B.shape[0], out = tb ? B.shape[0] : B.shape[1];
    if (r->dims[1] >= 0 && (size_t)r->dims[1] != in)
        return fail(r, "%s: B is %s (transB=%d): %zu input features, but the input has %lld", D,
                    nn_shape_str(sh, sizeof sh, B.shape, 2), (int)tb, in, (long long)r->dims[1]);
    int li = r->nlayers;
    struct nn_layer *l = push_layer(r, NN_LINEAR);
    if (!l || layer_tensor(r, &B, !tb, alpha, &l->weight) || add_use(r, &B, li, 0, !tb, alpha))
        return -1;
    if (nd->n_input >= 3 && S(nd->input[2])[0] && beta != 0) {
        rc = const_of(r, S(nd->input[2]), &C);
        if (rc < 0)
            return -1;
        int row = C.numel == out && (C.ndim == 1 || (C.ndim == 2 && C.shape[0] == 1));
        if (!rc || !(row || C.numel == 1))
            return fail(r, "%s: C must be a constant of [%zu], [1, %zu] or one value", D, out, out);
        if (layer_tensor(r, &C, 0, beta, &l->bias) || add_use(r, &C, li, 1, 0, beta))
            return -1;
        if (C.numel == 1 && out != 1) { /* broadcast */
            void *b = malloc(out * nn_dtype_size(r->dt));
            if (!b)
                return oom(r);
            for (size_t i = 0; i < out; i++) {
                if (r->dt == NN_F32)
                    ((float *)b)[i] = *(float *)l->bias.data;
                else
                    ((double *)b)[i] = *(double *)l->bias.data;
            }
            free(l->bias.data);
            l->bias.data = b;
        }
        l->bias.ndim = 1;
        l->bias.shape[0] = l->bias.numel = out;
    }
    r->dims[1] = (int64_t)out;
    take(r, n);
    *next = out0(r, n);
    (void)x;
    return 0;
}

/* MatMul(x, W) with W [in, out], and an Add of a bias [out] after it when there is one. */
static int op_matmul(struct rd *r, int n, const char *x, const char **next)
{
    char buf[160], sh[96];
    const Onnx__NodeProto *nd = N(r, n);
    const char *D = node_desc(r, n, buf, sizeof buf);
    struct tview W, b;
    int rc = nd->n_input == 2 && in_is(r, n, 0, x) ? const_of(r, S(nd->input[1]), &W) : 0;
    if (rc < 0)
        return -1;
    if (!rc || W.ndim != 2)
        return fail(r, "%s: relud serves MatMul(x, W) with W a 2-D initializer", D);
    if (r->dims[r->rank - 1] >= 0 && (size_t)r->dims[r->rank - 1] != W.shape[0])
        return fail(r, "%s: W is %s but the input has %lld features", D,
                    nn_shape_str(sh, sizeof sh, W.shape, 2), (long long)r->dims[r->rank - 1]);
    int li = r->nlayers;
    struct nn_layer *l = push_layer(r, NN_LINEAR);
    if (!l || layer_tensor(r, &W, 1, 1.0, &l->weight) || add_use(r, &W, li, 0, 1, 1.0))
        return -1;
    take(r, n);
    *next = out0(r, n);
    size_t out = W.shape[1];
    r->dims[r->rank - 1] = (int64_t)out;
    int add = inner_next(r, n, "Add");
    if (add < 0)
        return 0;
    const char *bn = other(r, add, out0(r, n));
    rc = bn[0] ? const_of(r, bn, &b) : 0;
    if (rc < 0)
        return -1;
    int bias = rc == 1 && b.numel == out && b.ndim >= 1 && b.shape[b.ndim - 1] == out;
    if (!bias)
        return fail(r, "%s: adds %s after the MatMul, which is not a bias [%zu]",
                    node_desc(r, add, buf, sizeof buf), rc == 1 ? "a constant" : "a computed value",
                    out);
    if (layer_tensor(r, &b, 0, 1.0, &l->bias) || add_use(r, &b, li, 1, 0, 1.0))
        return -1;
    l->bias.ndim = 1;
    l->bias.shape[0] = out;
    take(r, add);
    *next = out0(r, add);
    return 0;
}

/* PRelu(x, slope): one slope, or one per channel where torch has them (dim 1). */
static int op_prelu(struct rd *r, int n, const char *x, const char **next)
{
    char buf[160], sh[96];
    const Onnx__NodeProto *nd = N(r, n);
    const char *D = node_desc(r, n, buf, sizeof buf);
    struct tview s;
    int rc = nd->n_input == 2 ? const_of(r, S(nd->input[1]), &s) : 0;
    if (rc < 0)
        return -1;
    if (!rc)
        return fail(r, "%s: slope must be an initializer", D);
    int ch = -1; /* the x dim the slope's one non-1 dim lines up with */
    if (s.ndim > r->rank)
        return fail(r, "%s: slope %s has more dims than the input", D,
                    nn_shape_str(sh, sizeof sh, s.shape, s.ndim));
    for (int i = 0; i < s.ndim; i++) {
        if (s.shape[i] == 1)
            continue;
        int xd = r->rank - s.ndim + i;
        if (ch >= 0 || xd != 1 || (r->dims[1] >= 0 && (size_t)r->dims[1] != s.shape[i]))
            return fail(r,
                        "%s: slope %s does not line up with the channels of %s (dim 1, as "
                        "torch's PReLU)",
                        D, nn_shape_str(sh, sizeof sh, s.shape, s.ndim),
                        shape_str((char[96]){0}, 96, r->dims, r->rank));
        ch = xd;
    }
    int li = r->nlayers, pw = r->pointwise;
    struct nn_layer *l = push_layer(r, NN_PRELU);
    if (!l || layer_tensor(r, &s, 0, 1.0, &l->weight) || add_use(r, &s, li, 0, 0, 1.0))
        return -1;
    l->weight.ndim = 1;
    l->weight.shape[0] = l->weight.numel;
    r->pointwise = pw && s.numel == 1; /* one slope: still elementwise */
    take(r, n);
    *next = out0(r, n);
    (void)x;
    return 0;
}

/* Mul(x, b) -> Softplus -> Div(., b): torch's Softplus(beta=b). */
static int op_mul(struct rd *r, int n, const char *x, const char **next)
{
    double b;
    const char *o = other(r, n, x);
    if (!o[0] || const_scalar(r, o, &b) != 1 || !(b > 0) || !isfinite(b))
        return unsupported(r, n);
    int sp = inner_next(r, n, "Softplus");
    int dv = sp >= 0 ? inner_next(r, sp, "Div") : -1;
    if (dv < 0 || !in_is(r, dv, 0, out0(r, sp)) || !other_const(r, dv, out0(r, sp), b))
        return unsupported(r, n);
    struct nn_layer *l = push_layer(r, NN_SOFTPLUS);
    if (!l)
        return -1;
    l->p[0] = b;
    take(r, n);
    take(r, sp);
    take(r, dv);
    *next = out0(r, dv);
    return 0;
}

/* ---- patterns of several nodes reading x -------------------------------------------- */
/* SiLU: s = Sigmoid(x); y = Mul(x, s). */
static int pat_silu(struct rd *r, const int *c, int nc, const char *x, const char **next)
{
    if (nc != 2)
        return 0;
    for (int i = 0; i < 2; i++) {
        int s = c[i], m = c[1 - i];
        if (!is_op(r, s, "Sigmoid") || inner_next(r, s, "Mul") != m ||
            strcmp(other(r, m, out0(r, s)), x))
            continue;
        if (!push_layer(r, NN_SILU))
            return -1;
        take(r, s);
        take(r, m);
        *next = out0(r, m);
        return 1;
    }
    return 0;
}

/* torch's GELU (approximate none) below opset 20:
 *   Div(x, 1.4142135) -> Erf -> Add 1 -> Mul x -> Mul 0.5   (Mul(x, 0.70710677) for the Div) */
static int pat_gelu_erf(struct rd *r, const int *c, int nc, const char *x, const char **next)
{
    if (nc != 2)
        return 0;
    for (int i = 0; i < 2; i++) {
        int d = c[i], m = c[1 - i];
        int isdiv = is_op(r, d, "Div") && in_is(r, d, 0, x) && N(r, d)->n_input == 2 &&
                    other_const(r, d, x, M_SQRT2);
        if (!isdiv && !(is_op(r, d, "Mul") && other_const(r, d, x, M_SQRT1_2)))
            continue;
        int e = inner_next(r, d, "Erf");
        int a = e >= 0 ? inner_next(r, e, "Add") : -1;
        if (a < 0 || !other_const(r, a, out0(r, e), 1.0) || inner_next(r, a, "Mul") != m ||
            strcmp(other(r, m, out0(r, a)), x))
            continue;
        int h = inner_next(r, m, "Mul");
        if (h < 0 || !other_const(r, h, out0(r, m), 0.5))
            continue;
        struct nn_layer *l = push_layer(r, NN_GELU);
        if (!l)
            return -1;
        l->approx = 0;
        int all[] = {d, e, a, m, h};
        for (int k = 0; k < 5; k++)
            take(r, all[k]);
        *next = out0(r, h);
        return 1;
    }
    return 0;
}

/* torch's GELU (approximate tanh) below opset 20:
 *   m0 = Mul(x, x); m1 = Mul(x, m0); m2 = Mul(0.044715, m1); a0 = Add(x, m2);
 *   m3 = Mul(0.7978846, a0); t = Tanh(m3); a1 = Add(1, t); m4 = Mul(x, a1); y = Mul(0.5, m4)
 * (or Pow(x, 3) for m0, m1). */
static int pat_gelu_tanh(struct rd *r, const int *c, int nc, const char *x, const char **next)
{
    if (nc != 3 && nc != 4)
        return 0;
    for (int i = 0; i < nc; i++) {
        int m0 = c[i], cube, nodes[12], k = 0;
        if (is_op(r, m0, "Mul") && in_is(r, m0, 0, x) && in_is(r, m0, 1, x) && nc == 4) {
            cube = inner_next(r, m0, "Mul");
            if (cube < 0 || strcmp(other(r, cube, out0(r, m0)), x))
                continue;
            nodes[k++] = m0;
        } else if (is_op(r, m0, "Pow") && in_is(r, m0, 0, x) && nc == 3 &&
                   other_const(r, m0, x, 3.0)) {
            cube = m0;
        } else {
            continue;
        }
        nodes[k++] = cube;
        int m2 = inner_next(r, cube, "Mul");
        if (m2 < 0 || !other_const(r, m2, out0(r, cube), 0.044715))
            continue;
        int a0 = inner_next(r, m2, "Add");
        if (a0 < 0 || strcmp(other(r, a0, out0(r, m2)), x))
            continue;
        int m3 = inner_next(r, a0, "Mul");
        if (m3 < 0 || !other_const(r, m3, out0(r, a0), sqrt(2.0 / M_PI)))
            continue;
        int t = inner_next(r, m3, "Tanh");
        int a1 = t >= 0 ? inner_next(r, t, "Add") : -1;
        if (a1 < 0 || !other_const(r, a1, out0(r, t), 1.0))
            continue;
        int m4 = inner_next(r, a1, "Mul");
        if (m4 < 0 || strcmp(other(r, m4, out0(r, a1)), x))
            continue;
        int h = inner_next(r, m4, "Mul");
        if (h < 0 || !other_const(r, h, out0(r, m4), 0.5))
            continue;
        int rest[] = {m2, a0, m3, t, a1, m4, h};
        for (int j = 0; j < 7; j++)
            nodes[k++] = rest[j];
        /* every reader of x is in the pattern */
        int seen = 0;
        for (int j = 0; j < nc; j++)
            for (int q = 0; q < k; q++)
                seen += c[j] == nodes[q];
        if (seen != nc)
            continue;
        struct nn_layer *l = push_layer(r, NN_GELU);
        if (!l)
            return -1;
        l->approx = 1;
        for (int j = 0; j < k; j++)
            take(r, nodes[j]);
        *next = out0(r, h);
        return 1;
    }
    return 0;
}

/* torch's x.view(x.size(0), -1) with a dynamic batch:
 *   Shape(x) -> Gather(0) -> Unsqueeze(0) -> Concat(., [-1]) -> Reshape(x, .) */
static int pat_view(struct rd *r, const int *c, int nc, const char *x, const char **next)
{
    if (nc != 2)
        return 0;
    for (int i = 0; i < 2; i++) {
        int sh = c[i], rs = c[1 - i];
        double v;
        int64_t ax;
        if (!is_op(r, sh, "Shape") || attr(r, sh, "start") || attr(r, sh, "end") ||
            !is_op(r, rs, "Reshape") || !in_is(r, rs, 0, x) || N(r, rs)->n_input != 2)
            continue;
        int g = inner_next(r, sh, "Gather");
        if (g < 0 || !in_is(r, g, 0, out0(r, sh)) || N(r, g)->n_input != 2 ||
            const_scalar(r, N(r, g)->input[1], &v) != 1 || v != 0 || attr_i(r, g, "axis", 0, &ax) ||
            ax != 0)
            continue;
        int u = inner_next(r, g, "Unsqueeze");
        if (u < 0)
            continue;
        const Onnx__AttributeProto *axes = attr(r, u, "axes");
        int uok =
            axes ? axes->n_ints == 1 && axes->ints[0] == 0
                 : N(r, u)->n_input == 2 && const_scalar(r, N(r, u)->input[1], &v) == 1 && v == 0;
        int cc = uok ? inner_next(r, u, "Concat") : -1;
        if (cc < 0 || N(r, cc)->n_input != 2 || !in_is(r, cc, 0, out0(r, u)) ||
            const_scalar(r, N(r, cc)->input[1], &v) != 1 || v != -1 ||
            attr_i(r, cc, "axis", 0, &ax) || ax != 0 || inner_next(r, cc, "Reshape") != rs ||
            !in_is(r, rs, 1, out0(r, cc)))
            continue;
        if (flatten(r, rs, 1))
            return -1;
        int all[] = {sh, g, u, cc, rs};
        for (int k = 0; k < 5; k++)
            take(r, all[k]);
        *next = out0(r, rs);
        return 1;
    }
    return 0;
}

typedef int pat_fn(struct rd *r, const int *c, int nc, const char *x, const char **next);
static pat_fn *const patterns[] = {pat_silu, pat_gelu_erf, pat_gelu_tanh, pat_view};

/* One step of the walk from value x. */
static int step(struct rd *r, const char *x, const char **next)
{
    int c[8];
    char buf[160];
    int nc = consumers(r, x, c, 8);
    if (nc == 0)
        return fail(r,
                    "value \"%.60s\" is read by no node: the graph's output \"%.60s\" is not "
                    "reached from its input",
                    x, r->output);
    if (nc == 1) {
        int n = c[0];
        const struct op_row *row = op_find(r, n);
        if (!row)
            return unsupported(r, n);
        if (!in_is(r, n, 0, x) && row->fn != op_mul)
            return fail(r, "%s reads \"%.60s\" as a parameter, not as its data",
                        node_desc(r, n, buf, sizeof buf), x);
        if (r->opset < row->since)
            return fail(r, "%s: %s does not exist below opset %d", node_desc(r, n, buf, sizeof buf),
                        row->op, row->since);
        return row->fn(r, n, x, next);
    }
    if (nc <= 8)
        for (size_t i = 0; i < sizeof patterns / sizeof *patterns; i++) {
            int rc = patterns[i](r, c, nc, x, next);
            if (rc)
                return rc < 0 ? -1 : 0;
        }
    for (int i = 0; i < nc && i < 8; i++) { /* near misses of torch's subgraphs */
        int e = inner_next(r, c[i], "Erf");
        if (e >= 0 || (is_op(r, c[i], "Mul") && in_is(r, c[i], 0, x) && in_is(r, c[i], 1, x)) ||
            is_op(r, c[i], "Pow"))
            return fail(r,
                        "%s starts a subgraph like torch's GELU (%s) that does not match it "
                        "exactly: export with torch.onnx.export, or at opset 20 (a Gelu node)",
                        node_desc(r, c[i], buf, sizeof buf),
                        e >= 0 ? "x/1.4142135 -> Erf -> +1 -> *x -> *0.5"
                               : "x + 0.044715 x^3 -> *0.7978846 -> Tanh -> +1 -> *x -> *0.5");
    }
    for (int i = 0; i < nc && i < 8; i++)
        if (!op_find(r, c[i]))
            return unsupported(r, c[i]);
    return fail(r,
                "value \"%.60s\" is read by %d nodes, which is none of the subgraphs relud "
                "recognises (torch's GELU and SiLU, x.view(x.size(0), -1)): relud serves a chain",
                x, nc);
}

/* ---- the graph --------------------------------------------------------------------- */
/* A graph input or output: a float tensor with a shape; its dims into d (-1: any). */
static int io_of(struct rd *r, const Onnx__ValueInfoProto *vi, const char *what, int *dtype,
                 int *nd, int64_t *d)
{
    const char *name = S(vi->name);
    const Onnx__TypeProto *tp = vi->type;
    if (!name[0] || strlen(name) >= SRV_ONNX_NAME)
        return fail(r, "%s name \"%.60s\" must be 1 to %d bytes", what, name, SRV_ONNX_NAME - 1);
    for (const char *p = name; *p; p++)
        if ((unsigned char)*p < 0x20 || *p == 0x7f)
            return fail(r, "%s name holds a control character", what);
    if (!strcmp(name, "target") || !strcmp(name, "grad_output") || !strcmp(name, "loss") ||
        !strncmp(name, "grad:", 5))
        return fail(r,
                    "%s name \"%s\" is one of relud's own tensor names (target, grad_output, "
                    "loss, grad:*): rename it (input_names/output_names of torch.onnx.export)",
                    what, name);
    if (!tp || tp->value_case != ONNX__TYPE_PROTO__VALUE_TENSOR_TYPE || !tp->tensor_type)
        return fail(r, "%s \"%s\" is not a tensor", what, name);
    const Onnx__TypeProto__Tensor *tt = tp->tensor_type;
    switch (tt->elem_type) {
    case ONNX__TENSOR_PROTO__DATA_TYPE__FLOAT:
    case ONNX__TENSOR_PROTO__DATA_TYPE__FLOAT16:
    case ONNX__TENSOR_PROTO__DATA_TYPE__BFLOAT16: *dtype = NN_F32; break;
    case ONNX__TENSOR_PROTO__DATA_TYPE__DOUBLE: *dtype = NN_F64; break;
    default:
        return fail(r, "%s \"%s\" has element type %d (relud serves float tensors)", what, name,
                    (int)tt->elem_type);
    }
    *nd = -1;
    if (!tt->shape)
        return 0;
    if (tt->shape->n_dim < 1 || tt->shape->n_dim > NN_MAX_DIMS)
        return fail(r, "%s \"%s\" has %zu dims (1 to %d)", what, name, tt->shape->n_dim,
                    NN_MAX_DIMS);
    *nd = (int)tt->shape->n_dim;
    for (int i = 0; i < *nd; i++) {
        const Onnx__TensorShapeProto__Dimension *dm = tt->shape->dim[i];
        d[i] = -1;
        if (dm->value_case == ONNX__TENSOR_SHAPE_PROTO__DIMENSION__VALUE_DIM_VALUE) {
            if (dm->dim_value < 1 || dm->dim_value > SRV_ONNX_MAX_DIM)
                return fail(r, "%s \"%s\": dims[%d] is %lld (1 to 2^40)", what, name, i,
                            (long long)dm->dim_value);
            d[i] = dm->dim_value;
        }
    }
    return 0;
}

static int add_val(struct rd *r, const char *name, int kind, int idx, int slot)
{
    struct val *v = &r->vals[r->nvals++];
    memset(v, 0, sizeof *v);
    v->name = name;
    v->kind = kind;
    v->idx = idx;
    v->slot = slot;
    return 0;
}

/* The value index: every name defined once, every node input defined before the node. */
static int index_graph(struct rd *r)
{
    const Onnx__GraphProto *g = r->g;
    char buf[160];
    size_t nv = 1 + g->n_initializer;
    for (size_t i = 0; i < g->n_node; i++)
        nv += g->node[i]->n_output;
    if (!(r->vals = calloc(nv, sizeof *r->vals)) || !(r->done = calloc(g->n_node + 1, 1)))
        return oom(r);
    add_val(r, r->input, V_INPUT, 0, 0);
    for (size_t i = 0; i < g->n_initializer; i++) {
        const char *nm = S(g->initializer[i]->name);
        if (!nm[0])
            return fail(r, "initializer #%zu has no name", i);
        add_val(r, nm, V_INIT, (int)i, 0);
    }
    for (size_t n = 0; n < g->n_node; n++)
        for (size_t k = 0; k < g->node[n]->n_output; k++)
            if (S(g->node[n]->output[k])[0])
                add_val(r, g->node[n]->output[k], V_NODE, (int)n, (int)k);
    qsort(r->vals, (size_t)r->nvals, sizeof *r->vals, cmp_val);
    for (int i = 1; i < r->nvals; i++)
        if (!strcmp(r->vals[i].name, r->vals[i - 1].name))
            return fail(r, "value \"%.60s\" is defined twice", r->vals[i].name);
    /* consumers, in two passes (count, then fill) */
    size_t total = 0;
    for (size_t n = 0; n < g->n_node; n++) {
        const Onnx__NodeProto *nd = g->node[n];
        if (nd->n_input > 64 || nd->n_output > 64 || nd->n_attribute > 64)
            return fail(r, "%s has more than 64 inputs, outputs or attributes",
                        node_desc(r, (int)n, buf, sizeof buf));
        for (size_t k = 0; k < nd->n_input; k++) {
            const char *in = S(nd->input[k]);
            if (!in[0])
                continue;
            struct val *v = val_find(r, in);
            if (!v)
                return fail(r,
                            "%s reads \"%.60s\", which no node, initializer or graph input "
                            "defines",
                            node_desc(r, (int)n, buf, sizeof buf), in);
            if (v->kind == V_NODE && v->idx >= (int)n)
                return fail(r,
                            "%s reads \"%.60s\" before the node that computes it (nodes out of "
                            "order, or a cycle)",
                            node_desc(r, (int)n, buf, sizeof buf), in);
            v->ncons++;
            total++;
        }
    }
    if (!(r->cons = malloc((total ? total : 1) * sizeof *r->cons)))
        return oom(r);
    size_t at = 0;
    for (int i = 0; i < r->nvals; i++) {
        r->vals[i].first = (int)at;
        at += (size_t)r->vals[i].ncons;
        r->vals[i].ncons = 0;
    }
    for (size_t n = 0; n < g->n_node; n++)
        for (size_t k = 0; k < g->node[n]->n_input; k++) {
            const char *in = S(g->node[n]->input[k]);
            if (!in[0])
                continue;
            struct val *v = val_find(r, in);
            r->cons[v->first + v->ncons++] = (int)n;
        }
    return 0;
}

static int read_graph(struct rd *r, struct srv_onnx_model *out)
{
    const Onnx__ModelProto *mp = r->mp;
    const Onnx__GraphProto *g = r->g = mp->graph;
    char buf[160], a[96], b[96];
    r->opset = -1;
    for (size_t i = 0; i < mp->n_opset_import; i++) {
        const char *dom = S(mp->opset_import[i]->domain);
        if (!dom[0] || !strcmp(dom, "ai.onnx"))
            r->opset = mp->opset_import[i]->has_version ? (int)mp->opset_import[i]->version : -1;
    }
    if (!g)
        return fail(r, "no graph (not an ONNX model?)");
    if (r->opset < SRV_ONNX_OPSET_MIN || r->opset > SRV_ONNX_OPSET_MAX)
        return fail(r, "opset %d of the default domain is not supported (%d to %d)", r->opset,
                    SRV_ONNX_OPSET_MIN, SRV_ONNX_OPSET_MAX);
    if (g->n_node > SRV_ONNX_MAX_NODES || g->n_initializer > SRV_ONNX_MAX_INITIALIZERS)
        return fail(r, "%zu nodes and %zu initializers: over the limits (%d, %d)", g->n_node,
                    g->n_initializer, SRV_ONNX_MAX_NODES, SRV_ONNX_MAX_INITIALIZERS);
    if (g->n_sparse_initializer)
        return fail(r, "sparse initializers are not supported");
    /* one input (initializers may be listed as inputs too: IR < 4), one output */
    const Onnx__ValueInfoProto *in = NULL;
    int nin = 0;
    for (size_t i = 0; i < g->n_input; i++) {
        int init = 0;
        for (size_t k = 0; k < g->n_initializer && !init; k++)
            init = !strcmp(S(g->initializer[k]->name), S(g->input[i]->name));
        if (!init)
            in = g->input[i], nin++;
    }
    if (nin != 1 || g->n_output != 1)
        return fail(r, "the graph has %d inputs and %zu outputs (relud serves one of each)", nin,
                    g->n_output);
    int idt, odt, ond;
    int64_t od[NN_MAX_DIMS];
    struct srv_onnx_sig *sig = out->sig;
    if (io_of(r, in, "input", &idt, &sig->in_ndim, sig->in_shape) ||
        io_of(r, g->output[0], "output", &odt, &ond, od))
        return -1;
    if (sig->in_ndim < 0)
        return fail(r, "input \"%s\" has no shape (relud needs at least its rank)", S(in->name));
    r->input = S(in->name);
    r->output = S(g->output[0]->name);
    r->dt = (enum nn_dtype)idt;
    snprintf(sig->input, sizeof sig->input, "%s", r->input);
    snprintf(sig->output, sizeof sig->output, "%s", r->output);
    if (index_graph(r))
        return -1;
    struct val *ov = val_find(r, r->output);
    if (!ov)
        return fail(r, "output \"%.60s\" is not computed by any node", r->output);
    /* the walk */
    r->rank = sig->in_ndim;
    memcpy(r->dims, sig->in_shape, sizeof r->dims);
    r->pointwise = 1;
    r->flatten_axis = -1;
    const char *x = r->input;
    for (size_t steps = 0; strcmp(x, r->output); steps++) {
        if (steps > g->n_node)
            return fail(r, "the walk from the input does not end"); /* cannot happen: nodes done */
        if (step(r, x, &x))
            return -1;
    }
    for (size_t n = 0; n < g->n_node; n++)
        if (!r->done[n] && !is_op(r, (int)n, "Constant"))
            return fail(r, "%s is not on the chain from input \"%.40s\" to output \"%.40s\"",
                        node_desc(r, (int)n, buf, sizeof buf), r->input, r->output);
    if (!r->nlayers)
        return fail(r, "the graph computes nothing relud has a layer for");
    /* the declared output agrees with the chain */
    int agree = ond < 0 || ond == r->rank;
    for (int i = 0; agree && ond >= 0 && i < ond; i++)
        agree = od[i] < 0 || r->dims[i] < 0 || od[i] == r->dims[i];
    if (!agree)
        return fail(r, "output \"%.40s\" is declared %s but the layers give %s", r->output,
                    shape_str(a, sizeof a, od, ond), shape_str(b, sizeof b, r->dims, r->rank));
    sig->out_ndim = r->rank;
    for (int i = 0; i < r->rank; i++)
        sig->out_shape[i] = r->dims[i] >= 0 ? r->dims[i] : ond == r->rank ? od[i] : -1;
    sig->flatten_axis = r->flatten_axis;
    sig->opset = r->opset;
    sig->ir_version = mp->has_ir_version ? (long long)mp->ir_version : 0;
    snprintf(sig->producer, sizeof sig->producer, "%.30s%s%.30s", S(mp->producer_name),
             S(mp->producer_version)[0] ? " " : "", S(mp->producer_version));
    (void)odt;
    return 0;
}

/* The chain checked as the engine will run it, for an input with the declared shape (any
 * size as 1): a layer that does not fit fails here, at load, not on every request. */
static int check_net(struct rd *r, struct srv_onnx_model *out)
{
    const struct srv_onnx_sig *s = out->sig;
    size_t shape[NN_MAX_DIMS];
    int nd = s->in_ndim;
    for (int i = 0; i < nd; i++)
        shape[i] = s->in_shape[i] > 0 ? (size_t)s->in_shape[i] : 1;
    if (s->flatten_axis >= 0) {
        size_t a = 1, b = 1;
        for (int i = 0; i < nd; i++)
            *(i < s->flatten_axis ? &a : &b) *= shape[i];
        shape[0] = a, shape[1] = b, nd = 2;
    }
    struct nn_plan plan;
    memset(&plan, 0, sizeof plan);
    struct nn_err e;
    enum nn_status st = nn_net_check(&out->net, shape, nd, 0, 0, &plan, &e);
    nn_plan_free(&plan);
    if (st)
        return fail(r, "%s", e.msg);
    return 0;
}

void srv_onnx_sig_free(struct srv_onnx_sig *sig)
{
    if (!sig)
        return;
    free(sig->params);
    free(sig);
}

void srv_onnx_model_free(struct srv_onnx_model *m)
{
    if (!m)
        return;
    srv_net_free(&m->net);
    srv_onnx_sig_free(m->sig);
    free(m->description);
    memset(m, 0, sizeof *m);
}

enum nn_status srv_onnx_parse(const void *buf, size_t len, const char *label, const char *dir,
                              struct srv_onnx_model *out, struct nn_err *err)
{
    memset(out, 0, sizeof *out);
    struct rd r;
    memset(&r, 0, sizeof r);
    r.label = label ? label : "model.onnx";
    r.dir = dir;
    r.err = err;
    if (len > SRV_ONNX_FILE_MAX)
        return nn_err_set(err, NN_ETOOBIG, "%s: %zu bytes, over the limit of %zu", r.label, len,
                          SRV_ONNX_FILE_MAX);
    int wc = wire_check(buf, (const uint8_t *)buf + len, &onnx__model_proto__descriptor, 0);
    if (wc == -2)
        return nn_err_set(err, NN_EINVAL, "%s: messages nested deeper than %d (not an ONNX model)",
                          r.label, SRV_ONNX_MAX_DEPTH);
    if (wc)
        return nn_err_set(err, NN_EINVAL,
                          "%s: not a protobuf message (truncated or not an ONNX file)", r.label);
    struct budget bud = {len + SRV_ONNX_DECODE_SLACK, 0};
    ProtobufCAllocator alloc = {b_alloc, b_free, &bud};
    r.mp = onnx__model_proto__unpack(&alloc, len, buf);
    if (!r.mp) {
        if (bud.exhausted)
            return nn_err_set(err, NN_EINVAL,
                              "%s: decoding needs more than the file's size plus %zu MiB "
                              "(refused)",
                              r.label, SRV_ONNX_DECODE_SLACK >> 20);
        return nn_err_set(err, NN_EINVAL,
                          "%s: not a valid ONNX model (a field of the wrong type, or truncated)",
                          r.label);
    }
    enum nn_status st = NN_OK;
    if (!(out->sig = calloc(1, sizeof *out->sig))) {
        st = nn_err_set(err, NN_ENOMEM, "%s: out of memory", r.label);
        goto done;
    }
    if (read_graph(&r, out)) {
        st = r.st ? r.st : NN_EINVAL;
        goto done;
    }
    out->dtype = r.dt;
    if ((st = nn_net_init(&out->net, r.dt, r.nlayers, err)))
        goto done;
    memcpy(out->net.layers, r.layers, (size_t)r.nlayers * sizeof *r.layers);
    r.nlayers = 0; /* the net owns the tensors now */
    out->sig->params = r.params;
    out->sig->nparams = r.nparams;
    r.params = NULL;
    const char *doc = S(r.mp->doc_string)[0] ? r.mp->doc_string : S(r.mp->graph->doc_string);
    if (doc[0] && !(out->description = strdup(doc))) {
        st = nn_err_set(err, NN_ENOMEM, "%s: out of memory", r.label);
        goto done;
    }
    if (check_net(&r, out))
        st = NN_EINVAL;
done:
    for (int i = 0; i < r.nadopted; i++) { /* the layers own these blocks */
        r.adopted[i]->raw_data.data = NULL;
        r.adopted[i]->raw_data.len = 0;
    }
    free(r.adopted);
    for (int i = 0; i < r.nlayers; i++) {
        free(r.layers[i].weight.data);
        free(r.layers[i].bias.data);
    }
    free(r.layers);
    free(r.params);
    free(r.vals);
    free(r.cons);
    free(r.done);
    for (int i = 0; i < r.nscratch; i++)
        free(r.scratch[i]);
    free(r.scratch);
    for (int i = 0; i < r.next; i++)
        munmap(r.ext[i].map, r.ext[i].len);
    onnx__model_proto__free_unpacked(r.mp, &alloc);
    if (st)
        srv_onnx_model_free(out);
    return st;
}

enum nn_status srv_onnx_open(const char *path, const char *label, const char *dir,
                             struct srv_onnx_model *out, struct nn_err *err)
{
    memset(out, 0, sizeof *out);
    const char *L = label ? label : path;
    void *map;
    size_t len;
    enum nn_status st = srv_fmap(path, L, SRV_ONNX_FILE_MAX, &map, &len, err);
    if (st)
        return st;
    if (!len)
        return nn_err_set(err, NN_EINVAL, "%s: empty file", L);
    st = srv_onnx_parse(map, len, L, dir, out, err);
    munmap(map, len);
    return st;
}

/* ---- gradients by initializer ------------------------------------------------------- */
enum nn_status srv_onnx_grads(const struct srv_onnx_sig *sig, const struct nn_ws *ws,
                              enum nn_dtype dt, struct nn_tensor *out, void **buf,
                              struct nn_err *err)
{
    *buf = NULL;
    size_t es = nn_dtype_size(dt), need = 0;
    /* a view where the initializer is one layer tensor as is; else room in buf */
    for (int i = 0; i < sig->nparams; i++) {
        const struct srv_onnx_param *p = &sig->params[i];
        const struct srv_onnx_use *u = &p->uses[0];
        const struct nn_tensor *g = u->bias ? &ws->dbias[u->layer] : &ws->dweight[u->layer];
        memset(&out[i], 0, sizeof out[i]);
        out[i].dtype = dt;
        out[i].ndim = p->ndim;
        memcpy(out[i].shape, p->shape, sizeof out[i].shape);
        out[i].numel = p->numel;
        if (p->nuses == 1 && !u->transpose && u->scale == 1.0 && g->numel == p->numel)
            out[i].data = g->data;
        else
            need += p->numel;
    }
    if (!need)
        return NN_OK;
    unsigned char *b = calloc(need, es);
    if (!b)
        return nn_err_set(err, NN_ENOMEM, "out of memory for the gradients");
    *buf = b;
    for (int i = 0; i < sig->nparams; i++) {
        const struct srv_onnx_param *p = &sig->params[i];
        if (out[i].data)
            continue;
        out[i].data = b;
        b += p->numel * es;
        for (int k = 0; k < p->nuses; k++) {
            const struct srv_onnx_use *u = &p->uses[k];
            const struct nn_tensor *g = u->bias ? &ws->dbias[u->layer] : &ws->dweight[u->layer];
            size_t n = g->numel, O = g->ndim == 2 ? g->shape[0] : n,
                   I = g->ndim == 2 ? g->shape[1] : 1;
            double s = u->scale;
#define ACCUM(T)                                                     \
    do {                                                             \
        T *o = out[i].data;                                          \
        const T *d = g->data;                                        \
        if (u->transpose) /* param [I, O], layer [O, I] */           \
            for (size_t r = 0; r < O; r++)                           \
                for (size_t c = 0; c < I; c++)                       \
                    o[c * O + r] += (T)(s * d[r * I + c]);           \
        else if (p->numel == 1 && n > 1) { /* one value broadcast */ \
            double sum = 0;                                          \
            for (size_t j = 0; j < n; j++)                           \
                sum += d[j];                                         \
            o[0] += (T)(s * sum);                                    \
        } else                                                       \
            for (size_t j = 0; j < n && j < p->numel; j++)           \
                o[j] += (T)(s * d[j]);                               \
    } while (0)
            if (dt == NN_F32)
                ACCUM(float);
            else
                ACCUM(double);
#undef ACCUM
        }
    }
    return NN_OK;
}
