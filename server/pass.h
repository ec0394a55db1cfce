/* One inference pass as the HTTP front ends ask for it: check + workspace cap, forward,
 * optional loss / backward / clipping / diagnostics. Shared by /v1/forward and the
 * Open Inference Protocol's infer. */
#ifndef RELUD_PASS_H
#define RELUD_PASS_H

#include "core/nn.h"
#include "server/codec.h"

enum srv_bwd { SRV_BWD_NONE, SRV_BWD_GRAD_OUTPUT, SRV_BWD_LOSS, SRV_BWD_SUM };

struct srv_pass {
    /* inputs (tensor data malloc'd, freed by srv_pass_free) */
    const struct nn_net *net;
    struct nn_tensor input; /* (..., IN) */
    enum srv_form form;     /* the form the input used; replies use it */
    enum srv_bwd backward;
    struct nn_tensor grad_output; /* output's shape */
    enum nn_loss loss;
    enum nn_reduction reduction;
    double loss_param;
    struct nn_tensor target; /* output's shape, or class targets below */
    struct {
        size_t shape[NN_MAX_DIMS];
        int ndim;
    } target_cls;
    int64_t *classes;
    double clip; /* > 0: clip_grad_norm max_norm */
    int want_stats;
    const atomic_int *cancel; /* the server's drain cut (struct srv.cancel), or NULL */
    /* results */
    struct nn_plan plan;
    struct nn_ws ws;
    int have_ws;
    void *dout; /* owned d loss / d output (loss, sum) */
    double loss_value;
    double total_norm;
    struct nn_layer_stats *stats; /* net->nlayers entries */
};

void srv_pass_init(struct srv_pass *p);
void srv_pass_free(struct srv_pass *p);
/* Runs everything asked for. Errors: NN_EINVAL (shapes, targets), NN_ETOOBIG (workspace
 * over max_workspace_bytes), NN_ENONFINITE (naming the layer or gradient), NN_ENOMEM. */
enum nn_status srv_pass_run(struct srv_pass *p, size_t max_elems, size_t max_ws_bytes,
                            struct nn_err *err);
/* The loss options beside the loss name in obj (the /v1 "loss" object, or the OIP
 * request "parameters"): "reduction" ("mean" | "sum", default mean) and the loss's own
 * parameter (beta, delta) with its default. p->loss is set. where names obj in errors. */
enum nn_status srv_pass_loss_opts(struct srv_pass *p, const cJSON *obj, const char *where,
                                  struct nn_err *err);
/* Samples in the input: its elements over its last dim (a 1-D input is one sample). */
size_t srv_pass_samples(const struct srv_pass *p);
/* The per-layer diagnostics as a JSON array (numbers through o, printed shortest). */
cJSON *srv_pass_stats_json(const struct srv_pass *p, struct srv_out *o);
/* The output tensor (valid after a successful run). */
const struct nn_tensor *srv_pass_output(const struct srv_pass *p);
/* The /v1/forward response body (malloc'd) into *body; NN_ENONFINITE (a value JSON
 * cannot carry) or NN_ENOMEM otherwise. */
enum nn_status srv_pass_reply_v1(struct srv_pass *p, char **body, size_t *len, struct nn_err *err);

#endif
