/* One pass as the HTTP front ends ask for it, in the order a request flows:
 *   srv_pass_plan   check the net against the input's shape and the caps once, size and
 *                   allocate the workspace; the caller then writes the input straight
 *                   into srv_pass_input(p) (decoded from JSON, or converted from binary);
 *   srv_pass_run    the forward pass, and on request the loss, backward, clipping and
 *                   per-layer diagnostics;
 *   srv_pass_write_v1 / the OIP writer: replies written from the workspace.
 * Shared by /v1/forward and the Open Inference Protocol's infer. */
#ifndef RELUD_PASS_H
#define RELUD_PASS_H

#include <stdatomic.h>

#include "core/nn.h"
#include "server/batch.h"
#include "server/json.h"
#include "server/jsonw.h"
#include "server/models.h"
#include "server/srv.h"

enum srv_bwd { SRV_BWD_NONE, SRV_BWD_GRAD_OUTPUT, SRV_BWD_LOSS, SRV_BWD_SUM };

struct srv_pass {
    /* the request (tensor data malloc'd, freed by srv_pass_free) */
    const struct nn_net *net;
    size_t in_shape[NN_MAX_DIMS];
    int in_ndim;
    enum srv_form form; /* the form the input used; replies use it */
    enum srv_bwd backward;
    struct nn_tensor grad_output; /* the output's shape */
    enum nn_loss loss;
    enum nn_reduction reduction;
    double loss_param;
    struct nn_tensor target; /* the output's shape; for class targets only shape and ndim */
    int64_t *classes;        /* class targets */
    double clip;             /* > 0: clip_grad_norm's max_norm */
    int want_stats;
    const atomic_int *cancel; /* the server's drain cut (struct srv.cancel), or NULL */
    /* results */
    struct nn_plan plan;
    struct nn_ws ws;
    int have_ws;
    void *dout; /* d loss / d output (loss, sum) */
    double loss_value;
    double total_norm;
    struct nn_layer_stats *stats; /* net->nlayers entries */
};

void srv_pass_init(struct srv_pass *p);
void srv_pass_free(struct srv_pass *p);
/* The bytes of the pass's workspace block (0 when it has none or gave it away); whether
 * [data, data + len) lies in it; and the block, handed to the caller (a reply sending
 * outputs where they lie), the pass keeping its tensors' shapes but no longer their data. */
size_t srv_pass_block_bytes(const struct srv_pass *p);
int srv_pass_holds(const struct srv_pass *p, const void *data, size_t len);
void *srv_pass_take_block(struct srv_pass *p);
/* Plans the pass for in_shape (NN_EINVAL naming the layer, NN_ETOOBIG over max_elems or
 * max_ws_bytes, NN_ENOMEM). */
enum nn_status srv_pass_plan(struct srv_pass *p, size_t max_elems, size_t max_ws_bytes,
                             struct nn_err *err);
/* Where the caller writes the input: in_shape's elements of the net's dtype. */
void *srv_pass_input(struct srv_pass *p);
/* Runs everything asked for. NN_EINVAL (targets), NN_ENONFINITE (naming the layer or the
 * loss), NN_ECANCELED (the drain cut it), NN_ENOMEM. */
enum nn_status srv_pass_run(struct srv_pass *p, struct nn_err *err);

/* The loss options beside the loss name: "reduction" ("mean" | "sum", default mean) and
 * the loss's own parameter (beta, delta) with its default; p->loss is set. where names obj. */
enum nn_status srv_pass_loss_opts(struct srv_pass *p, const struct srv_json *d, srv_jv obj,
                                  const char *where, struct nn_err *err);
/* Records the request in the model's statistics (stats may be NULL), its reply built now:
 * ok or failed, the samples in its input (elements over the last dim), and, run alone (not
 * batched: a batch records itself), one execution of its rows. */
void srv_pass_record(const struct srv_pass *p, struct srv_model_stats *stats, int ok, int batched,
                     struct srv_req_times *tm);
const struct nn_tensor *srv_pass_output(const struct srv_pass *p);
/* ---- batching (server/batch.h) --------------------------------------------------------
 * Whether this planned pass, its input decoded, may join model m's batches: m batches, the
 * pass is forward only (no gradients, loss or stats: those are per pass), the input's shape
 * fits (batch.h) and its values are finite (a non-finite one gets its own error alone). */
int srv_pass_batchable(const struct srv_pass *p, const struct srv_model *m);
/* Queues the pass on m's batcher instead of running it and parks the request: the batch
 * writes the rows into the pass's output, then finish(req, rep, ctx) runs on a request
 * thread (see srv_req_defer); j (the caller's, alive until finish) says how it went
 * (j->st, j->err). A submit refused (queue full, stopping) is answered the same way. */
void srv_pass_defer(struct srv_pass *p, struct srv_req *req, struct srv_model *m,
                    uint64_t timeout_us, struct srv_batch_job *j,
                    void (*finish)(struct srv_req *req, struct srv_reply *rep, void *ctx),
                    void *ctx);
/* A finished job's times into the request's: its pass, and its batch's gather and scatter. */
void srv_pass_job_times(const struct srv_batch_job *j, struct srv_req_times *tm);

/* The per-layer diagnostics as a JSON array. */
void srv_pass_write_stats(const struct srv_pass *p, struct srv_jw *w);
/* The /v1/forward reply: output, loss, gradients, stats. */
void srv_pass_write_v1(const struct srv_pass *p, struct srv_jw *w);

#endif
