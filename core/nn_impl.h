/* relud core, internal: the per-kind dispatch generated from NN_LAYER_TABLE.
 * Only the core sources include this; the server and tests use nn.h. */
#ifndef RELUD_NN_IMPL_H
#define RELUD_NN_IMPL_H

#include "core/nn.h"

/* Always-on invariant check (never for user input): aborts with file:line. */
#define NN_ASSERT(c) ((c) ? (void)0 : nn_assert_fail(#c, __FILE__, __LINE__))
_Noreturn void nn_assert_fail(const char *expr, const char *file, int line);

/* Shapes are validated by the kind's check before any kernel runs. */
/* out = layer(in); out->shape was set by check. Never fails, never allocates. */
typedef void nn_fwd_fn(const struct nn_layer *l, struct nn_tensor *out, const struct nn_tensor *in);
/* Writes (does not add to) dinp (in's shape) = d out / d in . dout and dweight/dbias (param
 * shapes): in a Sequential each gradient has one writer. out is the forward output.
 * dweight/dbias are NULL for kinds without parameters. */
typedef void nn_bwd_fn(const struct nn_layer *l, void *dinp, void *dweight, void *dbias,
                       const void *dout, const struct nn_tensor *in, const struct nn_tensor *out);
/* Validates layer idx against its input shape `in` (data NULL) and writes its output
 * shape into `out` (preset to a copy of in). Messages start "layers[idx] (name): ". */
typedef enum nn_status nn_check_fn(const struct nn_layer *l, int idx, const struct nn_tensor *in,
                                   struct nn_tensor *out, size_t max_elems, struct nn_err *err);

struct nn_kind_ops {
    nn_fwd_fn *fwd;
    nn_bwd_fn *bwd;
    nn_check_fn *check; /* NULL: output shape = input shape, nothing to validate */
    int elementwise;
};
extern const struct nn_kind_ops nn_kind_ops[NN_KIND_COUNT];

/* Prototypes for every row: tensor-level fwd/bwd for all kinds (generated in act.c for
 * ELEM rows from its static scalar pairs, so a missing scalar is a compile error; a
 * missing TENSOR function fails the link), check for CHECK rows. */
#define NN_CHECK_PROTO_CHECK(name) nn_check_fn nn_##name##_check;
#define NN_CHECK_PROTO_NOCHECK(name)
#define NN_KIND_PROTOS_(X, ID, name, torch, impl, check, params) \
    nn_fwd_fn nn_##name##_fwd_t;                                 \
    nn_bwd_fn nn_##name##_bwd_t;                                 \
    NN_CHECK_PROTO_##check(name)
NN_LAYER_TABLE(NN_KIND_PROTOS_, _)
#undef NN_KIND_PROTOS_

/* dst = src (n values of dt) and the same test, in one pass. */
int nn_copy_has_nonfinite(enum nn_dtype dt, void *dst, const void *src, size_t n);

/* The sum of squares of n values of dt, in order from 0, each term the exact product in
 * double: how clip_grad_norm_ adds up one tensor (core/stats.c). */
double nn_sumsq(enum nn_dtype dt, const void *data, size_t n);

/* size_t arithmetic that reports overflow */
static inline int nn_mul_ovf(size_t a, size_t b, size_t *r)
{
    return __builtin_mul_overflow(a, b, r);
}
static inline int nn_add_ovf(size_t a, size_t b, size_t *r)
{
    return __builtin_add_overflow(a, b, r);
}

#endif
