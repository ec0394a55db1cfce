/* ONNX models: a NAME.onnx file in model_dir, read with protobuf-c (the C code generated at
 * build time from the onnx.proto Debian's libonnx-dev installs) and mapped onto relud's
 * layers. What loads is a graph of one input and one output whose nodes form a chain of
 * relud layers, in the patterns torch.onnx.export writes for them (opsets 9 to 20):
 *
 *   Gemm (alpha, beta, transB; transA = 0)   linear (weight alpha*B or alpha*B^T, bias beta*C)
 *   MatMul(x, W) [+ Add(bias)]               linear (weight W^T)
 *   Relu LeakyRelu PRelu Elu Selu Celu       relu leaky_relu prelu elu selu celu
 *   Sigmoid Tanh Softplus                    sigmoid tanh softplus
 *   Mul(x, b) -> Softplus -> Div(b)          softplus with beta b (torch's beta != 1)
 *   Clip(0, 6) / Clip(lo, hi) / Clip(0, -)   relu6 / hardtanh / relu (min, max as attributes
 *                                            below opset 11, Constant inputs from 11)
 *   Gelu (opset 20), torch's erf and tanh    gelu (approximate none | tanh)
 *   subgraphs below it
 *   Sigmoid(x) -> Mul(x, .)                  silu (torch's SiLU)
 *   Softmax LogSoftmax (axis)                softmax log_softmax (below opset 13 only over the
 *                                            last axis, their 2-D coercion otherwise)
 *   Flatten, Reshape to [N, -1] (a constant  the input reshaped before the pass (only where
 *   shape, or torch's x.view(x.size(0), -1)  the layers before it are elementwise) or nothing
 *   subgraph)                                on a 2-D tensor
 *   Identity, Dropout (inference)            nothing
 *
 * Anything else makes the model unavailable with a reason naming the node:
 *   mlp.onnx: node "/fc2/Conv" (Conv, opset 13) is not supported (supported: Gemm, ...)
 *
 * Initializers (FLOAT, DOUBLE, FLOAT16, BFLOAT16; raw_data, the typed fields, or external
 * data in a file of model_dir) become the layer weights, converted to the model's dtype: the
 * graph input's type (FLOAT16/BFLOAT16 graphs are served as float32). Gradients are named by
 * the initializers they belong to ("grad:fc1.weight"), in the initializers' own shapes.
 *
 * A hostile file cannot crash the reader nor make it allocate past its size: the file is
 * capped (SRV_ONNX_FILE_MAX); protobuf-c decodes through an allocator with a budget of the
 * file's size plus SRV_ONNX_DECODE_SLACK; before decoding, the wire format is walked once
 * with the generated descriptors to refuse nesting deeper than SRV_ONNX_MAX_DEPTH
 * (protobuf-c recurses per nested message without a limit); node, initializer and dims
 * counts are capped; every tensor's data length is checked against its dims before any
 * value is read; names must resolve (no dangling input), nodes must be in topological
 * order (which also refuses cycles). */
#ifndef RELUD_ONNX_H
#define RELUD_ONNX_H

#include <stddef.h>
#include <stdint.h>

#include "core/nn.h"

#define SRV_ONNX_FILE_MAX ((size_t)1 << 30)      /* as NAME.json files */
#define SRV_ONNX_DECODE_SLACK ((size_t)64 << 20) /* decoded structs beyond the file's bytes */
#define SRV_ONNX_MAX_DEPTH 32                    /* nested messages (a model needs ~8) */
#define SRV_ONNX_MAX_NODES 10000
#define SRV_ONNX_MAX_INITIALIZERS 10000
#define SRV_ONNX_MAX_DIM ((int64_t)1 << 40) /* one dimension of a declared shape */
#define SRV_ONNX_NAME 128                   /* input, output, parameter names */
#define SRV_ONNX_OPSET_MIN 9
#define SRV_ONNX_OPSET_MAX 20

/* One layer tensor an initializer became: layer's weight or bias, as W^T (transpose: a
 * MatMul's [in, out], a Gemm's transB = 0), times scale (Gemm's alpha, beta), or summed
 * from one value (a Gemm C of one element, broadcast). */
struct srv_onnx_use {
    int layer;
    int bias;      /* 0 weight, 1 bias */
    int transpose; /* the initializer is [in, out]; the layer's weight [out, in] */
    double scale;
};

/* An initializer that holds parameters: its name and shape as the file has them (a scalar
 * as [1]), and the layer tensors it became (more than one when layers share it). */
struct srv_onnx_param {
    char name[SRV_ONNX_NAME];
    int ndim;
    size_t shape[NN_MAX_DIMS];
    size_t numel;
    int nuses;
    struct srv_onnx_use uses[4];
};

/* What a request needs to know of an ONNX model beyond its net. */
struct srv_onnx_sig {
    char input[SRV_ONNX_NAME], output[SRV_ONNX_NAME]; /* the graph's names */
    int in_ndim, out_ndim;
    int64_t in_shape[NN_MAX_DIMS], out_shape[NN_MAX_DIMS]; /* -1: any (a dim_param) */
    int flatten_axis; /* >= 0: the input is reshaped to [prod(dims < a), prod(dims >= a)]
                         before the pass (a Flatten or a flattening Reshape); -1: none */
    int opset;        /* of the default domain */
    long long ir_version;
    char producer[64]; /* "pytorch 1.13.1" */
    int nparams;
    struct srv_onnx_param *params; /* owned */
};

struct srv_onnx_model {
    enum nn_dtype dtype;
    struct nn_net net;        /* weights malloc'd (srv_net_free) */
    struct srv_onnx_sig *sig; /* owned (srv_onnx_sig_free) */
    char *description;        /* the model's doc_string, or NULL */
};

/* Reads path (label: its name in messages, "mlp.onnx"; dir: where external data files may
 * be, or NULL to refuse external data). NN_EINVAL with the reason (NN_ETOOBIG for a file
 * over the cap, NN_ENOMEM). On error out is empty (srv_onnx_model_free is still safe). */
enum nn_status srv_onnx_open(const char *path, const char *label, const char *dir,
                             struct srv_onnx_model *out, struct nn_err *err);
/* The same from a buffer (the fuzzer's entry). */
enum nn_status srv_onnx_parse(const void *buf, size_t len, const char *label, const char *dir,
                              struct srv_onnx_model *out, struct nn_err *err);
void srv_onnx_model_free(struct srv_onnx_model *m);
void srv_onnx_sig_free(struct srv_onnx_sig *sig);

/* The gradient of every parameter initializer (sig->nparams tensors into out, in sig's
 * order), from a workspace that ran backward on the model's net: views of the workspace
 * where an initializer is a layer tensor as is, else computed into *buf (one allocation,
 * the caller frees it; NULL when none was needed). */
enum nn_status srv_onnx_grads(const struct srv_onnx_sig *sig, const struct nn_ws *ws,
                              enum nn_dtype dt, struct nn_tensor *out, void **buf,
                              struct nn_err *err);

#endif
