/* The model repository: model_dir holds NAME.json files (layers inline, or types only
 * with "weights": "NAME.safetensors" beside it). Models are immutable and refcounted:
 * a request holds its model from lookup to completion, so a replaced model serves the
 * requests that started on it until they finish. */
#ifndef RELUD_MODELS_H
#define RELUD_MODELS_H

#include <stdatomic.h>
#include <stdint.h>

#include "core/nn.h"
#include "server/srv.h"

struct srv_model {
    atomic_int refs;
    char name[SRV_MAX_CAPTURE];
    char *description; /* may be NULL */
    enum nn_dtype dtype;
    struct nn_net net;   /* immutable after load; layer i's parameters are the
                                   state_dict tensors "i.weight" and "i.bias" */
    size_t in_features;  /* last-dim size the first layer needs (0 = any) */
    size_t out_features; /* last-dim size of the output (0 = same as input) */
    void *map;           /* safetensors mapping (read-only) or NULL; always NULL
                                   today: parameters are copied out of the file at load
                                   (see server/safetensors.h), the mapping is dropped */
    size_t map_len;
    struct srv_model_stats *stats; /* its name's statistics (survive replacement); valid
                                      until srv_models_free */
};

enum srv_model_state { SRV_MODEL_READY, SRV_MODEL_UNAVAILABLE, SRV_MODEL_UNLOADED };

/* Per-model statistics (Triton statistics extension shape). */
struct srv_model_stats {
    atomic_ullong success_count, success_ns;
    atomic_ullong fail_count, fail_ns;
    atomic_ullong exec_count;        /* successful passes (batches) */
    atomic_ullong inference_count;   /* samples */
    atomic_ullong last_inference_ms; /* unix ms */
    atomic_ullong queue_ns, compute_input_ns, compute_infer_ns, compute_output_ns;
};

struct srv_models;

struct srv_models *srv_models_new(const char *model_dir);
void srv_models_free(struct srv_models *m);

/* Loads every NAME.json in model_dir at start. A broken file is logged and listed as
 * unavailable with its reason; with strict != 0 the first broken file fails the call (err
 * says which and why). A model_dir that cannot be read fails it always. Returns 0 on
 * success. (One model is reloaded by srv_models_load, Triton's load.) */
int srv_models_load_all(struct srv_models *m, int strict, char *err, size_t errlen);

/* Looks up a ready model and takes a reference. On failure returns NULL, *status = 404
 * (unknown) or 503 (unavailable/unloaded), and err has the message (with the reason). */
struct srv_model *srv_models_get(struct srv_models *m, const char *name, unsigned *status,
                                 char *err, size_t errlen);
void srv_model_release(struct srv_model *model);
struct srv_model_stats *srv_models_stats(struct srv_models *m, const char *name);
/* Records one inference request. t: monotonic ns at its start, when its inputs were read,
 * when the pass was done and when the reply was built (Triton's compute_input,
 * compute_infer, compute_output). ok -> success_count/ns, the phases, exec_count,
 * inference_count += samples, last_inference_ms; else fail_count/ns (t[3] - t[0]).
 * s may be NULL (no-op). */
void srv_model_stats_observe(struct srv_model_stats *s, int ok, const uint64_t t[4],
                             size_t samples);

/* Repository control. Each returns an HTTP status and fills err on failure. */
/* (Re)loads NAME.json from disk (Triton load). */
unsigned srv_models_load(struct srv_models *m, const char *name, char *err, size_t errlen);
/* Marks NAME unloaded (Triton unload): later requests get 503, running ones finish. */
unsigned srv_models_unload(struct srv_models *m, const char *name, char *err, size_t errlen);
/* Validates body as a model (name must match or be absent), writes model_dir/NAME.json
 * atomically (temp file, fsync, rename, fsync dir) and swaps it in. 201 created / 200
 * replaced / 400 invalid. */
unsigned srv_models_put(struct srv_models *m, const char *name, const char *body, size_t len,
                        char *err, size_t errlen);
/* Removes model_dir/NAME.json (and nothing else) and unlists the model. 200 / 404. */
unsigned srv_models_delete(struct srv_models *m, const char *name, char *err, size_t errlen);

/* Repository index: [{"name", "version": "1", "state": "READY"|"UNAVAILABLE"|"UNLOADED",
 * "reason": ""}] as Triton's POST /v2/repository/index; ready_only filters. */
cJSON *srv_models_index(struct srv_models *m, int ready_only);

/* Appends per-model Prometheus series (relud_model_*). m may be NULL. */
void srv_models_render_metrics(struct srv_models *m, struct srv_sb *sb);

/* Valid model names: 1..127 of [A-Za-z0-9_.-], not starting with '.'. */
int srv_model_name_ok(const char *name);

#endif
