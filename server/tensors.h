/* Tensors in requests, in two steps so each is decoded once, into its place: find() reads
 * a tensor's shape (and checks it against the caps) without converting a number; the
 * caller plans (checks the net, sizes the workspace) and then read() converts the numbers
 * straight into the buffer that will use them.
 *
 * A request tensor is nested arrays ([[1, 2], [3, 4]], rank 1..8), or {"shape": [...],
 * "data": [...]} with data flat (the shape's product of values) or nested in exactly that
 * shape. A bare number is a tensor only where a rank-0 integer is allowed (class targets).
 *
 * Binary tensor data (the Open Inference Protocol's extension) converts through a table of
 * converters indexed by the wire datatype, chosen once per tensor (ggml's type_traits):
 * srv_wire_convert. */
#ifndef RELUD_TENSORS_H
#define RELUD_TENSORS_H

#include <stddef.h>
#include <stdint.h>

#include "core/nn.h"
#include "server/json.h"
#include "server/jsonw.h"

struct srv_tfind {
    size_t shape[NN_MAX_DIMS];
    int ndim;
    size_t numel;
    srv_jv data;        /* the numeric array holding the numbers */
    enum srv_form form; /* NESTED or OBJECT: a reply answers in the form it was asked */
    int scalar;         /* a bare number (allow_scalar): its value below */
    int64_t scalar_value;
};

/* Finds the tensor at v: shape, numel <= max_elems (0 = no cap; in the object form also
 * the product of the non-zero dims, so [1e9, 0] cannot promise a huge nested reply):
 * NN_ETOOBIG. Everything else NN_EINVAL naming where:
 * "input: expected a tensor (nested arrays or {\"shape\", \"data\"})",
 * "grad_output: data has 5 values but shape [2, 3] needs 6",
 * "input: unknown field \"dtype\" in tensor (known: shape, data)". */
enum nn_status srv_tensor_find(const struct srv_json *d, srv_jv v, size_t max_elems,
                               int allow_scalar, const char *where, struct srv_tfind *f,
                               struct nn_err *err);
/* Converts its numbers into dst (f->numel values of type t). */
enum nn_status srv_tensor_read(const struct srv_json *d, const struct srv_tfind *f, enum srv_num t,
                               void *dst, const char *where, struct nn_err *err);
/* find + a malloc'd buffer of dtype dt + read: for tensors whose place is their own buffer
 * (inline weights, targets, grad_output). t->data is malloc'd (never NULL on success). */
enum nn_status srv_tensor_load(const struct srv_json *d, srv_jv v, enum nn_dtype dt,
                               size_t max_elems, const char *where, struct nn_tensor *t,
                               enum srv_form *form, struct nn_err *err);

/* A shape: a flat array of 1..8 (0..8 with allow_scalar) integers >= 0. Errors name
 * "<where>.shape". */
enum nn_status srv_tensor_shape(const struct srv_json *d, srv_jv v, int allow_scalar,
                                const char *where, size_t shape[NN_MAX_DIMS], int *ndim,
                                struct nn_err *err);

/* "[5, 10]" */
void srv_shape_fmt(char *buf, size_t cap, const size_t *shape, int ndim);

/* ---- binary tensor data: the Open Inference Protocol's datatypes, one list ----------
 * X(name, bytes, kind): kind 0 float, 1 signed int, 2 unsigned int, -1 refused. */
#define SRV_WIRE_LIST(X) \
    X(FP32, 4, 0)        \
    X(FP64, 8, 0)        \
    X(FP16, 2, -1)       \
    X(BF16, 2, -1)       \
    X(INT8, 1, 1)        \
    X(INT16, 2, 1)       \
    X(INT32, 4, 1)       \
    X(INT64, 8, 1)       \
    X(UINT8, 1, 2)       \
    X(UINT16, 2, 2)      \
    X(UINT32, 4, 2)      \
    X(UINT64, 8, 2)      \
    X(BOOL, 1, -1)       \
    X(BYTES, 0, -1)

enum srv_wire {
#define X(n, b, k) SRV_WIRE_##n,
    SRV_WIRE_LIST(X)
#undef X
        SRV_WIRE_COUNT
};

struct srv_wire_info {
    const char *name;
    int bytes, kind;
};
extern const struct srv_wire_info srv_wire[SRV_WIRE_COUNT];
int srv_wire_find(const char *name); /* -1 when unknown */

/* Converts n little-endian values of wire type w at src into dst of type t (float32,
 * float64, or int64 class indices): one converter per (w, t), chosen once. A value that t
 * cannot hold (inf/nan, out of float32's range, a fraction or out of range for a class
 * index, UINT64 over INT64_MAX) is an error naming where and the index. */
enum nn_status srv_wire_convert(enum srv_wire w, const void *src, size_t n, enum srv_num t,
                                void *dst, const char *where, struct nn_err *err);

#endif
