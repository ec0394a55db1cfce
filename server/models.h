/* The model repository: model_dir holds NAME.json files (layers inline, or types only with
 * "weights": "NAME.safetensors" beside it) and NAME.onnx files (server/onnx.h). Models are
 * immutable and refcounted: a request holds its model from lookup to completion, so a
 * replaced model serves the requests that started on it until they finish. Every operation
 * answers an nn_status with a message in a caller's nn_err (NN_ENOTFOUND, NN_EUNAVAILABLE,
 * NN_EIO beyond the core's). */
#ifndef RELUD_MODELS_H
#define RELUD_MODELS_H

#include <stdatomic.h>
#include <stdint.h>

#include "core/nn.h"
#include "server/batch.h"
#include "server/onnx.h"

#define SRV_MODEL_NAME 128

/* Latency buckets (seconds) of every request-duration histogram, per route and per model:
 * from 25 us (a small request takes ~75 us) to 30 s. */
#define SRV_LAT_BUCKETS 19
extern const double srv_latency_le[SRV_LAT_BUCKETS];
/* The bucket of a duration: 0..SRV_LAT_BUCKETS (the last is +Inf). */
int srv_latency_bucket(double seconds);

/* Per-model statistics (the shape of Triton's statistics extension). */
struct srv_model_stats {
    atomic_ullong success_count, success_ns;
    atomic_ullong fail_count, fail_ns;
    atomic_ullong inference_count;   /* samples */
    atomic_ullong last_inference_ms; /* unix ms */
    atomic_ullong queue_ns, compute_input_ns, compute_infer_ns, compute_output_ns;
    atomic_ullong latency[SRV_LAT_BUCKETS + 1]; /* every request, by duration bucket */
    struct srv_batch_stats batch; /* executions by batch size, queue times, rejections */
};

/* One tensor of a model's signature as metadata shows it: its name and shape (-1: any). */
struct srv_model_io {
    char name[SRV_MODEL_NAME];
    int ndim;
    int64_t shape[NN_MAX_DIMS];
};

struct srv_model {
    atomic_int refs;
    char name[SRV_MODEL_NAME];
    char *description; /* may be NULL */
    enum nn_dtype dtype;
    struct nn_net net;             /* immutable after load; layer i's parameters are the state_dict
                            tensors "i.weight" and "i.bias" (copied out of their file) */
    size_t in_features;            /* last-dim size the first layer needs (0 = any) */
    size_t out_features;           /* last-dim size of the output (0 = same as the input) */
    struct srv_batch_cfg batch;    /* max_batch_size, dynamic_batching */
    struct srv_batcher *batcher;   /* this version's queue; NULL without dynamic_batching */
    struct srv_model_stats *stats; /* its name's statistics: they survive replacement; valid
                                      until srv_models_free */
    /* Where it came from: NAME.json ("relud_json": tensors "input" [-1, in_features] and
     * "output"), or NAME.onnx ("onnxruntime_onnx": the graph's names and shapes, its
     * request contract in onnx; NULL for JSON models). */
    const char *platform;
    struct srv_model_io input, output;
    struct srv_onnx_sig *onnx;
};

/* The shape a request's input takes through the pass: a JSON model's any shape as is; an
 * ONNX model's checked against the graph input (rank, fixed dims) and flattened as its
 * graph does. NN_EINVAL naming `where` when it does not fit. */
enum nn_status srv_model_input_shape(const struct srv_model *m, const size_t *shape, int ndim,
                                     size_t *out, int *out_ndim, const char *where,
                                     struct nn_err *err);

enum srv_model_state { SRV_MODEL_READY, SRV_MODEL_UNAVAILABLE, SRV_MODEL_UNLOADED };
extern const char *const srv_model_state_names
    []; /* "READY", "UNAVAILABLE" (both not-ready states, as Triton names them) */

struct srv_models;

/* max_values: the JSON value cap for model files and PUT bodies (max_json_values; 0 none). */
struct srv_models *srv_models_new(const char *model_dir, size_t max_values);
void srv_models_free(struct srv_models *m);

/* Loads every NAME.json and NAME.onnx in model_dir at start (a name with both is broken). A
 * broken file is logged and listed as unavailable with its reason; with strict the first
 * broken file fails the call (err says which and why). A model_dir that cannot be read fails it always. */
enum nn_status srv_models_load_all(struct srv_models *m, int strict, struct nn_err *err);

/* A ready model, with a reference taken (srv_model_release gives it back); NULL with
 * NN_ENOTFOUND (unknown) or NN_EUNAVAILABLE (unloaded, or failed to load: the message has
 * the reason) in *st and err. */
struct srv_model *srv_models_get(struct srv_models *m, const char *name, enum nn_status *st,
                                 struct nn_err *err);
void srv_model_release(struct srv_model *model);

/* One inference request's times (monotonic ns), Triton's phases: start; inputs read;
 * the pass started (after its time queued, for a batched request) and done; reply built. A
 * batched request's compute_input and compute_output include its batch's gather and
 * scatter (in_extra, out_extra). */
struct srv_req_times {
    uint64_t start, inputs_read, pass_start, pass_end, reply_built;
    uint64_t in_extra, out_extra;
};

/* Records one inference request on s (may be NULL). ok -> success_count/ns, the phases,
 * inference_count += samples, last_inference_ms; else fail_count/ns. */
void srv_model_stats_observe(struct srv_model_stats *s, int ok, const struct srv_req_times *t,
                             size_t samples);
/* One execution: a request run alone of rows rows (a batch records itself). */
void srv_model_stats_exec(struct srv_model_stats *s, size_t rows, const struct srv_req_times *t);

/* Control. */
/* (Re)loads NAME.json or NAME.onnx from disk (Triton's load): NN_ENOTFOUND without either. */
enum nn_status srv_models_load(struct srv_models *m, const char *name, struct nn_err *err);
/* Marks NAME unloaded (Triton's unload): later requests get NN_EUNAVAILABLE, running ones
 * finish. */
enum nn_status srv_models_unload(struct srv_models *m, const char *name, struct nn_err *err);
/* Validates body as a model (its name must match or be absent; NAME.onnx must not exist),
 * writes model_dir/NAME.json atomically (temp file, fsync, rename, fsync of the directory) and swaps it in; *created
 * says whether the name is new. NN_EINVAL for a bad model, NN_EIO. */
enum nn_status srv_models_put(struct srv_models *m, const char *name, const char *body, size_t len,
                              int *created, struct nn_err *err);
/* What a PUT carries: a JSON model (its weights inline or in a file of model_dir), an ONNX
 * file, or a JSON model with its safetensors file (the model's "weights" is set to the name
 * the file is written under: NAME.put-<16 hex of its SHA-256>.safetensors). */
enum srv_upload_kind { SRV_UPLOAD_JSON, SRV_UPLOAD_ONNX, SRV_UPLOAD_JSON_WEIGHTS };
struct srv_model_upload {
    enum srv_upload_kind kind;
    const char *body; /* the JSON model or the ONNX file */
    size_t len;
    const void *weights; /* SRV_UPLOAD_JSON_WEIGHTS: the safetensors file */
    size_t weights_len;
    const char *weights_label; /* its name in messages (NULL: "weights") */
};
/* srv_models_put for any upload. ONNX: written as NAME.onnx (refused while NAME.json
 * exists; external data refused). With weights: the weights file is written first, then
 * NAME.json naming it (the rename of NAME.json is the commit: a crash before it leaves the
 * old model, and the next start removes the unnamed weights file); the weights file the old
 * NAME.json named, if a PUT wrote it, is removed once no longer named. */
enum nn_status srv_models_put_upload(struct srv_models *m, const char *name,
                                     const struct srv_model_upload *up, int *created,
                                     struct nn_err *err);
/* Removes model_dir/NAME.json or NAME.onnx (not the weights beside them, except a weights
 * file a PUT wrote for NAME) and unlists the model. */
enum nn_status srv_models_delete(struct srv_models *m, const char *name, struct nn_err *err);

/* Calls fn for every listed name, in name order, under the repository's lock (fn must be
 * quick and must not call back into the repository): its state, the reason when not ready,
 * its statistics and its serving model (NULL unless READY). Index, statistics and metrics
 * render from this. */
typedef void srv_models_visit_fn(void *ctx, const char *name, enum srv_model_state state,
                                 const char *reason, const struct srv_model_stats *stats,
                                 const struct srv_model *model);
void srv_models_foreach(struct srv_models *m, srv_models_visit_fn *fn, void *ctx);

/* Valid model names: 1..127 of [A-Za-z0-9_.-], not starting with '.'. */
int srv_model_name_ok(const char *name);

#endif
