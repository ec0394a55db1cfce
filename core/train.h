/* relud core: the training loop, as the PyTorch loop it reproduces.
 *
 *   loader = DataLoader(TensorDataset(x, y), batch_size, shuffle=False)   (drop_last=False)
 *   for epoch in range(epochs):
 *       for xb, yb in loader:                      (one nn_trainer_step each)
 *           opt.zero_grad(); loss = loss_fn(net(xb), yb); loss.backward()
 *           grad_norm = clip_grad_norm_(net.parameters(), clip)     (or the norm, unclipped)
 *           opt.step(); [sched.step() with scheduler_interval "step"]
 *       [val_loss = loss_fn(net(x_val), y_val)]
 *       [sched.step() or sched.step(monitored) with scheduler_interval "epoch"]
 *       [early stopping on the monitored value]
 *
 * Batches are consecutive rows, the last one partial. With shuffle, each epoch's order is
 * relud's own generator (not torch's): SplitMix64 seeded with `seed`, the state carried
 * from epoch to epoch; each epoch a Fisher-Yates shuffle of 0..N-1, for i = N-1 down to 1
 * swapping i with j = an unbiased draw below i+1 (64-bit draws r, rejected while
 * r < 2^64 mod (i+1), then j = r mod (i+1)). tools/gen_train_golden.py has it in Python.
 *
 * The monitored value ("loss" or "val_loss") is, at an epoch's end, the mean of its steps'
 * losses or the validation loss (one pass over the whole validation set, the loss's own
 * reduction); with scheduler_interval "step", reduce_on_plateau steps on each step's loss.
 * Early stopping is Keras's rule (torch has none): an epoch improves when its value is below
 * the best so far minus min_delta; after `patience` epochs in a row without improvement the
 * run stops.
 *
 * Non-finite values never reach the weights unnoticed: an inf or NaN in an activation, the
 * loss, a gradient, the gradient norm or a parameter after the update ends the step with
 * NN_ENONFINITE naming the step and the layer ("step 7: layers[2] (linear): weight gradient
 * has a non-finite value"); the caller discards the net.
 *
 * The net is trained in place: give the trainer a copy of a served model. Memory: the
 * workspaces (a full batch with gradients, the last partial one, the validation set's
 * forward pass), the optimizer state and the batch buffers, all allocated by
 * nn_trainer_init; nn_train_plan says how much before anything is allocated. */
#ifndef RELUD_TRAIN_H
#define RELUD_TRAIN_H

#include <stdint.h>

#include "core/nn.h"
#include "core/optim.h"

/* Rows of data: x [N, ...] in the net's dtype; targets y [N, ...] (an elementwise loss, the
 * net's dtype) or class indices [N] (cross_entropy, nll). Not owned. */
struct nn_train_set {
    struct nn_tensor x;
    struct nn_tensor y;     /* elementwise targets, or ndim 0 */
    const int64_t *classes; /* class targets (x.shape[0] of them), or NULL */
};

enum nn_monitor { NN_MON_LOSS, NN_MON_VAL_LOSS, NN_MONITOR_COUNT };
extern const char *const nn_monitor_names[NN_MONITOR_COUNT]; /* "loss", "val_loss" */

struct nn_train_cfg {
    enum nn_loss loss;
    enum nn_reduction reduction;
    double loss_param;
    struct nn_optim_cfg optim;
    int have_sched;
    struct nn_sched_cfg sched;
    int sched_per_step;            /* scheduler_interval "step" (else "epoch") */
    enum nn_monitor sched_monitor; /* reduce_on_plateau's value at an epoch's end */
    double clip;                   /* clip_grad_norm max_norm; 0 = none */
    size_t batch_size;             /* >= 1 */
    long epochs;                   /* used when steps is 0 */
    long steps;                    /* > 0: this many steps, the epochs as they come */
    int shuffle;
    uint64_t seed;
    int early_stop;
    long es_patience;
    double es_min_delta;
    enum nn_monitor es_monitor;
    size_t max_elems, max_ws_bytes; /* caps on each plan (0 = none), as a request's */
};

/* What one step did (and, at an epoch's end, the epoch). */
struct nn_train_step {
    long step, epoch;             /* 1-based */
    double loss;                  /* the batch's loss (its reduction) */
    double lr;                    /* the rate this step used */
    double grad_norm;             /* the total 2-norm before clipping (clip_grad_norm_'s return) */
    int clipped;                  /* the gradients were scaled (max_norm / (norm + 1e-6) < 1) */
    int epoch_end;                /* the step ended a pass over the data: */
    double epoch_loss;            /*   the mean of the epoch's step losses */
    double val_loss;              /*   the validation loss, NaN without validation data */
    int stop;                     /* early stopping ended the run */
    struct nn_layer_stats *stats; /* want_stats: per layer, the batch's forward + gradients
                                     before clipping; valid until the next step */
};

struct nn_trainer {
    struct nn_net *net; /* trained in place */
    struct nn_train_cfg cfg;
    struct nn_train_set train, val;
    int have_val;
    size_t n;             /* training rows */
    long steps_per_epoch; /* ceil(n / batch_size) */
    long total_steps;
    /* progress */
    long step;      /* steps done */
    long epoch_pos; /* steps done in the current epoch */
    double epoch_loss_sum;
    int stopped; /* early stopping */
    double es_best;
    long es_wait;
    uint64_t rng;  /* SplitMix64 state */
    size_t *order; /* (n) this epoch's row order */
    /* passes: [0] a full batch, [1] the last partial one (when n % batch_size), [2] validation */
    struct nn_plan plan[3];
    struct nn_ws ws[3];
    int have[3];
    void *tbuf;                   /* (batch_size, target row) gathered targets */
    int64_t *cbuf;                /* (batch_size) gathered class indices */
    void *dout;                   /* (batch_size, output row) d loss / d output */
    struct nn_layer_stats *stats; /* (nlayers) */
    struct nn_optim opt;
    struct nn_sched sched;
    size_t bytes; /* everything allocated */
};

/* Plans everything (the three passes against max_elems / max_ws_bytes, the data's shapes
 * against the net and the loss, the optimizer and scheduler settings) without allocating
 * the workspaces: *bytes gets what nn_trainer_init will allocate. val may be NULL. Errors
 * name the place: "validation.input: ...", "batch_size: ...", "loss.target: ...". */
enum nn_status nn_train_plan(const struct nn_net *net, const struct nn_train_cfg *c,
                             const struct nn_train_set *train, const struct nn_train_set *val,
                             size_t *bytes, struct nn_err *err);
/* Plans and allocates. The net, the data and val (may be NULL) must outlive the trainer. */
enum nn_status nn_trainer_init(struct nn_trainer *t, struct nn_net *net,
                               const struct nn_train_cfg *c, const struct nn_train_set *train,
                               const struct nn_train_set *val, struct nn_err *err);
/* The passes stop between layers with NN_ECANCELED when *cancel reads non-zero. */
void nn_trainer_set_cancel(struct nn_trainer *t, const atomic_int *cancel);
/* One optimizer step (and the epoch's end when it completes one). NN_ENONFINITE as above,
 * NN_ECANCELED, NN_ENOMEM (stats). After an error the net is not to be used. */
enum nn_status nn_trainer_step(struct nn_trainer *t, int want_stats, struct nn_train_step *out,
                               struct nn_err *err);
/* Every step done, or early stopping ended the run. */
int nn_trainer_done(const struct nn_trainer *t);
void nn_trainer_free(struct nn_trainer *t);

#endif
