/* relud core: Linear + activations + losses, forward and backward, as PyTorch.
 *
 * Depends on libc, libm and cblas only: no JSON, no HTTP, no globals, no exit().
 * Everything reachable from a request returns an enum nn_status and fills a
 * caller-owned struct nn_err (passed last) with a message naming the place.
 *
 * Life of a pass:
 *   struct nn_net net;  nn_net_init(&net, NN_F32, nlayers, err);
 *   fill net.layers[i] (kind, scalar params, weight/bias tensors pointing at
 *     caller-owned memory that outlives the net);
 *   nn_net_check(&net, in_shape, in_ndim, flags, max_elems, &plan, err);  (NN_PLAN_*)
 *     -> shapes + workspace size
 *   refuse if plan.ws_bytes > cap;
 *   nn_ws_init(&ws, &plan, err); nn_net_forward(&net, &ws, input_data, err);
 *   optional: nn_loss_forward(...) / nn_net_backward(&net, &ws, dout, err);
 *   read ws.act[nlayers] (output), ws.dinput, ws.dweight[i], ws.dbias[i];
 *   nn_ws_free(&ws); nn_plan_free(&plan); nn_net_free(&net);
 * A built net is immutable during passes: any number of threads may run passes
 * on one net, each with its own workspace.
 */
#ifndef RELUD_NN_H
#define RELUD_NN_H

#ifndef __cplusplus
#include <stdatomic.h>
#endif
#include <stddef.h>
#include <stdint.h>

#define NN_MAX_DIMS 8
#define NN_ERR_LEN 256

enum nn_status {
    NN_OK = 0,
    NN_EINVAL,     /* bad input: 400 */
    NN_ETOOBIG,    /* over a size cap (workspace, elements): 413 */
    NN_ENONFINITE, /* a non-finite value appeared in the pass: 422 */
    NN_ENOMEM,     /* allocation failed: 503 */
    NN_ECANCELED,  /* the caller's cancel flag was set (between layers): 503 */
    /* Beyond the engine, for the server's own objects (it never returns these): */
    NN_ENOTFOUND,    /* no such model or file: 404 */
    NN_EUNAVAILABLE, /* there, but not serving (unloaded, failed to load): 503 */
    NN_EIO,          /* the file system refused (write, fsync, rename): 500 */
    NN_STATUS_COUNT
};

struct nn_err {
    char msg[NN_ERR_LEN];
};

/* Formats into err (if non-NULL) and returns status; for one-line error returns. */
enum nn_status nn_err_set(struct nn_err *err, enum nn_status st, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

enum nn_dtype { NN_F32, NN_F64, NN_DTYPE_COUNT };
extern const char *const nn_dtype_names[NN_DTYPE_COUNT]; /* "float32", "float64" */
size_t nn_dtype_size(enum nn_dtype dt);

/* A dense row-major tensor. data is not owned by the struct. */
struct nn_tensor {
    enum nn_dtype dtype;
    int ndim; /* 0 = absent; 1..NN_MAX_DIMS */
    size_t shape[NN_MAX_DIMS];
    size_t numel; /* product of shape, overflow-checked by nn_shape_numel */
    void *data;
};

/* numel = product(shape[0..ndim)); NN_EINVAL for a rank outside [1, NN_MAX_DIMS],
 * NN_ETOOBIG on size_t overflow or numel > max_elems (0 = no cap). `what` names the tensor
 * in the message. nn_shape_count is the same check without a message (a hot path's, which
 * calls nn_shape_numel only to name what failed). */
enum nn_status nn_shape_numel(const size_t *shape, int ndim, size_t max_elems, size_t *numel,
                              const char *what, struct nn_err *err);
enum nn_status nn_shape_count(const size_t *shape, int ndim, size_t max_elems, size_t *numel);
/* "[5, 10]" into buf; returns buf. */
char *nn_shape_str(char *buf, size_t len, const size_t *shape, int ndim);
/* 1 when data (n values of dt) holds an inf or a nan. Bit test: vectorizes, and stays
 * correct whatever the floating-point flags. */
int nn_has_nonfinite(enum nn_dtype dt, const void *data, size_t n);

/* ---- layer kinds: one list -------------------------------------------------
 * Elementwise activations are rows too; their fwd/bwd are generated from a
 * scalar pair nn_<name>_fwd(x, layer) / nn_<name>_bwd(x, y, layer) (see act.c).
 * The param list names the fields a request may set; defaults are torch's. */
enum nn_pkind {
    NN_P_REAL,   /* number -> layer->p[slot] */
    NN_P_DIM,    /* integer (negative counts from the end) -> layer->dim */
    NN_P_APPROX, /* "none" | "tanh" -> layer->approx */
    NN_P_WEIGHT, /* tensor -> layer->weight (required) */
    NN_P_BIAS,   /* tensor or null -> layer->bias (optional) */
};

struct nn_param_spec {
    const char *name;
    enum nn_pkind kind;
    int slot;   /* index into layer->p for NN_P_REAL */
    double def; /* default for REAL/DIM/APPROX */
};

/* One row per layer kind: NN_LAYER_TABLE(M, X) expands M(X, ID, name, TorchName, impl,
 * check, (params...)) for every row.
 *   impl   ELEM: elementwise; the float and double tensor loops are generated (core/act.c)
 *                from scalar double nn_<name>_fwd(double x, const struct nn_layer *) and
 *                double nn_<name>_bwd(double x, double y, const struct nn_layer *) = dy/dx.
 *          TENSOR: hand-written nn_<name>_fwd_t / nn_<name>_bwd_t (core/nn_impl.h).
 *   check  CHECK: nn_<name>_check validates params against the input shape; NOCHECK: none.
 *   params the fields a request may set, torch's names and defaults (NN_PS_* below).
 * A missing function for a row is a compile error. */
#define NN_PS_REAL(name, slot, def) \
    {                               \
        name, NN_P_REAL, slot, def  \
    }
#define NN_PS_DIM(name, def)   \
    {                          \
        name, NN_P_DIM, 0, def \
    }
#define NN_PS_APPROX(name)      \
    {                           \
        name, NN_P_APPROX, 0, 0 \
    }
#define NN_PS_WEIGHT(name)      \
    {                           \
        name, NN_P_WEIGHT, 0, 0 \
    }
#define NN_PS_BIAS(name)      \
    {                         \
        name, NN_P_BIAS, 0, 0 \
    }

#define NN_LAYER_TABLE(M, X)                                                                  \
    M(X, LINEAR, linear, Linear, TENSOR, CHECK, (NN_PS_WEIGHT("weight"), NN_PS_BIAS("bias"))) \
    M(X, RELU, relu, ReLU, ELEM, NOCHECK, ())                                                 \
    M(X, RELU6, relu6, ReLU6, ELEM, NOCHECK, ())                                              \
    M(X, LEAKY_RELU, leaky_relu, LeakyReLU, ELEM, NOCHECK,                                    \
      (NN_PS_REAL("negative_slope", 0, 0.01)))                                                \
    M(X, PRELU, prelu, PReLU, TENSOR, CHECK, (NN_PS_WEIGHT("weight")))                        \
    M(X, ELU, elu, ELU, ELEM, NOCHECK, (NN_PS_REAL("alpha", 0, 1.0)))                         \
    M(X, CELU, celu, CELU, ELEM, CHECK, (NN_PS_REAL("alpha", 0, 1.0)))                        \
    M(X, SELU, selu, SELU, ELEM, NOCHECK, ())                                                 \
    M(X, GELU, gelu, GELU, ELEM, NOCHECK, (NN_PS_APPROX("approximate")))                      \
    M(X, SILU, silu, SiLU, ELEM, NOCHECK, ())                                                 \
    M(X, SIGMOID, sigmoid, Sigmoid, ELEM, NOCHECK, ())                                        \
    M(X, TANH, tanh, Tanh, ELEM, NOCHECK, ())                                                 \
    M(X, SOFTPLUS, softplus, Softplus, ELEM, CHECK,                                           \
      (NN_PS_REAL("beta", 0, 1.0), NN_PS_REAL("threshold", 1, 20.0)))                         \
    M(X, HARDTANH, hardtanh, Hardtanh, ELEM, CHECK,                                           \
      (NN_PS_REAL("min_val", 0, -1.0), NN_PS_REAL("max_val", 1, 1.0)))                        \
    M(X, SOFTMAX, softmax, Softmax, TENSOR, CHECK, (NN_PS_DIM("dim", -1)))                    \
    M(X, LOG_SOFTMAX, log_softmax, LogSoftmax, TENSOR, CHECK, (NN_PS_DIM("dim", -1)))

/* X(ID, name, TorchName): the enum/name view of the table above. */
#define NN_LAYER_ROW3_(X, ID, name, torch, ...) X(ID, name, torch)
#define NN_LAYER_LIST(X) NN_LAYER_TABLE(NN_LAYER_ROW3_, X)

enum nn_kind {
#define X(ID, name, torch) NN_##ID,
    NN_LAYER_LIST(X)
#undef X
        NN_KIND_COUNT
};

#define NN_MAX_PARAMS 4
struct nn_kind_info {
    const char *name;  /* "leaky_relu" */
    const char *torch; /* "LeakyReLU" */
    int nparams;
    struct nn_param_spec params[NN_MAX_PARAMS];
};
extern const struct nn_kind_info nn_kinds[NN_KIND_COUNT];

/* Looks up "leaky_relu" or "LeakyReLU"; on failure the message lists the valid names. */
enum nn_status nn_kind_lookup(const char *name, enum nn_kind *kind, const char *where,
                              struct nn_err *err);

struct nn_layer {
    enum nn_kind kind;
    double p[3]; /* scalar params by slot (negative_slope, alpha, beta/threshold, min/max) */
    int dim;     /* softmax/log_softmax */
    int approx;  /* gelu: 0 none, 1 tanh */
    struct nn_tensor weight; /* linear [out, in]; prelu [C]; ndim 0 when absent */
    struct nn_tensor bias;   /* linear [out] or ndim 0 */
};

/* Sets kind and torch's defaults for every scalar param. */
void nn_layer_init(struct nn_layer *l, enum nn_kind kind);

struct nn_net {
    enum nn_dtype dtype;
    int nlayers;
    struct nn_layer *layers; /* owned */
};

enum nn_status nn_net_init(struct nn_net *net, enum nn_dtype dtype, int nlayers,
                           struct nn_err *err);
void nn_net_free(struct nn_net *net); /* frees layers, not tensor data */

/* ---- plan + workspace ---------------------------------------------------- */
/* What a plan keeps: NN_PLAN_BACKWARD gradients (and every activation, which backward
 * reads); NN_PLAN_KEEP every activation (per-layer stats). Without either, the hidden
 * activations share two buffers (a forward pass of any depth needs 2 of them). */
enum nn_plan_flags { NN_PLAN_BACKWARD = 1, NN_PLAN_KEEP = 2 };

struct nn_plan {
    int nlayers;
    enum nn_dtype dtype;
    int backward;
    int keep; /* every activation has its own buffer (backward or NN_PLAN_KEEP) */
    /* shapes[i] is the input of layer i; shapes[nlayers] the output */
    struct nn_tensor *shapes;  /* nlayers+1 entries, data NULL; owned (nn_plan_free) */
    struct nn_tensor *wshapes; /* per layer: weight shape (ndim 0 = none); same allocation */
    struct nn_tensor *bshapes; /* per layer: bias shape (ndim 0 = none); same allocation */
    size_t ws_bytes;           /* total bytes nn_ws_init will allocate */
    size_t param_elems;        /* total parameter elements (gradient buffer when backward) */
};

/* Validates every layer against the input shape and computes all shapes and the
 * workspace size. Messages: "layers[2] (linear): weight is [5, 8] but the input has 10 features".
 * max_elems (0 = none) caps the input and every activation (NN_ETOOBIG), not the
 * parameters: the caller caps those where it reads them. */
enum nn_status nn_net_check(const struct nn_net *net, const size_t *in_shape, int in_ndim,
                            unsigned flags, size_t max_elems, struct nn_plan *plan,
                            struct nn_err *err);
void nn_plan_free(struct nn_plan *plan);

struct nn_ws {
    const struct nn_plan *plan;
    void *block; /* one allocation */
    /* act[i] = input of layer i (act[0] is a copy of the input), act[nlayers] = output;
     * without plan->keep, act[1..nlayers] alternate between two buffers (one for a single
     * layer): only act[0] and the output are valid after a pass */
    struct nn_tensor *act; /* nlayers+1 */
    /* with backward: */
    struct nn_tensor dinput;   /* gradient w.r.t. the input */
    struct nn_tensor *dweight; /* per layer, ndim 0 when none */
    struct nn_tensor *dbias;   /* per layer, ndim 0 when none */
    void *scratch[2];          /* ping-pong dout buffers of the largest activation */
    /* Set by the caller after nn_ws_init, or NULL: when it reads non-zero the passes stop
     * between two layers with NN_ECANCELED (a server cutting passes at shutdown). */
#ifndef __cplusplus
    const atomic_int *cancel;
#else
    const void *cancel; /* C++ includes this header only for its types (server/numconv.cc) */
#endif
};

enum nn_status nn_ws_init(struct nn_ws *ws, const struct nn_plan *plan, struct nn_err *err);
void nn_ws_free(struct nn_ws *ws);

/* Copies input (plan->shapes[0], net dtype) into act[0] and runs every layer. NN_EINVAL
 * when the input holds inf/nan (bad input); NN_ENONFINITE when the output does, naming the
 * first layer whose output does (only the output is scanned unless it has one). */
enum nn_status nn_net_forward(const struct nn_net *net, struct nn_ws *ws, const void *input,
                              struct nn_err *err);

/* The same pass for a caller that wrote the input straight into ws->act[0].data (e.g. a
 * decoder writing into the workspace): no copy. Checks the input is finite. */
enum nn_status nn_net_run(const struct nn_net *net, struct nn_ws *ws, struct nn_err *err);

/* dout has the output's shape and dtype. Writes ws->dinput, dweight, dbias (no zeroing
 * needed). Gradients are not scanned for inf/nan here: a caller that returns them checks
 * (the server does, naming the tensor). */
enum nn_status nn_net_backward(const struct nn_net *net, struct nn_ws *ws, const void *dout,
                               struct nn_err *err);

/* ---- losses: one list --------------------------------------------------- */
/* One row per loss: M(X, ID, name, TorchName, impl, param, param_default).
 *   impl ELEM: static nn_<name>_loss(x, t, param, &dx) per element (core/loss.c);
 *        CLASS: class-index targets, a row function per dtype (core/loss.c).
 *   param torch's name of the loss's scalar parameter, or NULL. */
#define NN_LOSS_TABLE(M, X)                                                  \
    M(X, MSE, mse, MSELoss, ELEM, NULL, 0)                                   \
    M(X, L1, l1, L1Loss, ELEM, NULL, 0)                                      \
    M(X, SMOOTH_L1, smooth_l1, SmoothL1Loss, ELEM, "beta", 1.0)              \
    M(X, HUBER, huber, HuberLoss, ELEM, "delta", 1.0)                        \
    M(X, BCE_WITH_LOGITS, bce_with_logits, BCEWithLogitsLoss, ELEM, NULL, 0) \
    M(X, CROSS_ENTROPY, cross_entropy, CrossEntropyLoss, CLASS, NULL, 0)     \
    M(X, NLL, nll, NLLLoss, CLASS, NULL, 0)

/* X(ID, name, TorchName): the enum/name view of the table above. */
#define NN_LOSS_ROW3_(X, ID, name, torch, ...) X(ID, name, torch)
#define NN_LOSS_LIST(X) NN_LOSS_TABLE(NN_LOSS_ROW3_, X)

enum nn_loss {
#define X(ID, name, torch) NN_LOSS_##ID,
    NN_LOSS_LIST(X)
#undef X
        NN_LOSS_COUNT
};

struct nn_loss_info {
    const char *name;
    const char *torch;
    int class_target;  /* target holds class indices [N] */
    const char *param; /* "beta", "delta" or NULL */
    double param_def;
};
extern const struct nn_loss_info nn_losses[NN_LOSS_COUNT];
enum nn_status nn_loss_lookup(const char *name, enum nn_loss *loss, struct nn_err *err);

enum nn_reduction { NN_MEAN, NN_SUM };

/* out: the network output (dtype dt); target: same shape and dtype, or for class
 * targets int64 class indices [N] for out [N, C] (or [] scalar for out [C]): then
 * `classes` holds the N indices and `target` is NULL or only gives their shape.
 * param: beta (smooth_l1, >= 0) or delta (huber, > 0); ignored by the others.
 * Writes the scalar loss (as double, computed in dt's precision semantics) and,
 * when dout != NULL, d loss / d out (out's shape and dtype).
 * Errors name "loss.target": "loss.target: class 7 out of range [0, 5)". */
enum nn_status nn_loss_forward(enum nn_loss loss, enum nn_reduction red, double param,
                               const struct nn_tensor *out, const struct nn_tensor *target,
                               const int64_t *classes, double *value, void *dout,
                               struct nn_err *err);

/* ---- gradient clipping and diagnostics ---------------------------------- */
/* torch.nn.utils.clip_grad_norm_(params, max_norm): total 2-norm over every
 * dweight/dbias, then scale by min(1, max_norm / (total + 1e-6)). Returns the total. */
double nn_clip_grad_norm(const struct nn_net *net, struct nn_ws *ws, double max_norm);

struct nn_layer_stats {
    double zero_fraction;    /* exactly-zero outputs / outputs */
    size_t ndead;            /* units (last dim) zero for every sample */
    size_t *dead;            /* indices, ndead entries; owned (nn_stats_free) */
    double weight_grad_norm; /* -1 when no gradient */
    double bias_grad_norm;   /* -1 when none */
};
/* stats has net->nlayers entries; grad norms only when ws has gradients. The plan must
 * keep every activation (NN_PLAN_KEEP or NN_PLAN_BACKWARD). */
enum nn_status nn_stats_compute(const struct nn_net *net, const struct nn_ws *ws,
                                struct nn_layer_stats *stats, struct nn_err *err);
void nn_stats_free(struct nn_layer_stats *stats, int n);

/* ---- linear kernels (exposed for tests and bench) ----------------------- */
/* out (B, OUT) = inp (B, IN) . weight(OUT, IN)^T + bias (OUT) or no bias.
 * Picks gemv for small B (see linear.c for the measured threshold). */
void nn_linear_fwd(enum nn_dtype dt, void *out, const void *inp, const void *weight,
                   const void *bias, size_t B, size_t IN, size_t OUT);
/* Naive triple loop in double accumulation: the reference for tests. */
void nn_linear_fwd_ref(enum nn_dtype dt, void *out, const void *inp, const void *weight,
                       const void *bias, size_t B, size_t IN, size_t OUT);
/* dinp (B, IN) = dout . weight; dweight (OUT, IN) = dout^T . inp; dbias (OUT) = colsum(dout).
 * Any of dinp/dweight/dbias may be NULL. Like every backward kernel it writes its outputs
 * (BLAS beta = 0) rather than adding to them: in a Sequential each gradient has exactly one
 * writer, and zeroing first cost a full extra pass over every weight gradient. */
void nn_linear_bwd(enum nn_dtype dt, void *dinp, void *dweight, void *dbias, const void *dout,
                   const void *inp, const void *weight, size_t B, size_t IN, size_t OUT);

/* Elementwise activation rows, for the test that loops over the table. */
int nn_kind_is_elementwise(enum nn_kind k);

#endif
