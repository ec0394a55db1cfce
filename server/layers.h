/* Layer specs in JSON (the /v1 vocabulary, shared by /v1/forward and model files)
 * -> a struct nn_net whose parameter tensors are malloc'd (srv_net_free frees them). */
#ifndef RELUD_LAYERS_H
#define RELUD_LAYERS_H

#include "core/nn.h"
#include "server/json.h"

/* Per-layer parameter source used by model files that reference safetensors:
 * called for a linear/prelu layer i whose "weight" (or "bias") key is absent.
 * Returns NN_OK with t filled (data malloc'd, owned by the net) or an error; may set
 * t->ndim = 0 for "no such tensor" (then a missing weight is an error, a missing bias
 * means no bias). */
typedef enum nn_status srv_param_source_fn(void *ctx, int layer, const char *param,
                                           enum nn_dtype dt, struct nn_tensor *t,
                                           struct nn_err *err);

/* Parses a "layers" array into net (nn_net_init'd here). max_layers and max_elems are
 * caps (0 = none). Messages: "layers[1]: unknown field \"negative_slop\" for leaky_relu
 * (known: type, negative_slope)", "layers[2].weight: ...". src may be NULL. */
enum nn_status srv_layers_parse(const struct srv_json *d, srv_jv layers, enum nn_dtype dt,
                                int max_layers, size_t max_elems, srv_param_source_fn *src,
                                void *src_ctx, struct nn_net *net, struct nn_err *err);
/* Frees every layer's weight/bias data, then the net. */
void srv_net_free(struct nn_net *net);

/* "float32" | "float64" (also "FP32"/"FP64") -> dtype; NN_EINVAL naming `where` otherwise. */
enum nn_status srv_dtype_parse(const struct srv_json *d, srv_jv v, const char *where,
                               enum nn_dtype *dt, struct nn_err *err);

#endif
