/* Training jobs: a registered model fine-tuned in place, in the background.
 *
 *   POST   /v1/models/{name}/train   (admin) parses the body, copies the model's net, queues a
 *                                    job: 202 {"id", "state": "queued"}
 *   GET    /v1/train/{id}            the job: state, progress, history (loss, lr, gradient
 *                                    norms, per-layer dead units), error
 *   DELETE /v1/train/{id}            (admin) cancels it
 *   GET    /v1/train                 the jobs remembered (train_jobs_kept, oldest finished
 *                                    forgotten first)
 *
 * The arithmetic is the core's (core/train.h, core/optim.h): torch's optimizers, schedulers,
 * clipping and loop. This file is the runner: a table of jobs under one mutex, max_train_jobs
 * worker threads at the lowest priority (SCHED_IDLE, or nice 19 where that is refused) so
 * inference keeps its latency, cancellation checked between steps (and between layers), a
 * time limit, the history kept within train_history entries, and the result installed through
 * srv_models_put (written atomically, hot-swapped; requests in flight finish on the old
 * version). A failed or cancelled job changes nothing. A drain cancels every job (reported
 * "cancelled") and joins the workers before libmicrohttpd stops. */
#ifndef RELUD_TRAIN_SRV_H
#define RELUD_TRAIN_SRV_H

#include <stdint.h>

#include "config/cfg.h"
#include "core/train.h"
#include "server/json.h"
#include "server/models.h"

/* ---- the body ------------------------------------------------------------------------ */
/* One data set read from a body: rows, and targets or class indices; owned. */
struct srv_train_data {
    struct nn_tensor x, y; /* y: elementwise targets, ndim 0 for class targets */
    int64_t *classes;
    size_t bytes; /* what it holds */
};

/* A train body, read: the loop's settings (the loss, optimizer, scheduler, clipping, batches,
 * epochs or steps, shuffle, early stopping), the data, and where the result goes. */
struct srv_train_req {
    struct nn_train_cfg cfg;
    struct srv_train_data train, val;
    int have_val;
    char save_as[SRV_MODEL_NAME]; /* "" = a new version of the model itself */
};

/* Reads body (a JSON object, torch's names: see docs/api.md, "Training") for a model of dtype
 * dt: NN_EINVAL naming the field ("optimizer.betas[1]: must be in [0, 1), got 1",
 * "lr_scheduler.type: unknown scheduler ... (valid: ...)"), NN_ETOOBIG over a cap
 * (max_tensor_elements, max_train_steps is the caller's). r is srv_train_req_free'd on
 * failure too. The caps come from c (max_json_values, max_tensor_elements,
 * max_workspace_bytes). */
enum nn_status srv_train_parse(const char *body, size_t len, const struct cfg *c, enum nn_dtype dt,
                               struct srv_train_req *r, struct nn_err *err);
void srv_train_req_free(struct srv_train_req *r);

/* ---- the jobs ---------------------------------------------------------------------------- */
struct srv_trainer;
/* The job table and its workers (none when max_train_jobs is 0). c and models outlive it. */
struct srv_trainer *srv_trainer_start(const struct cfg *c, struct srv_models *models,
                                      struct nn_err *err);
/* The drain: no new job is accepted, queued ones are cancelled, running ones cancelled at
 * their next step (or layer), and the workers joined; every job then reads "cancelled" with
 * the reason. Any number of times; NULL is a no-op. */
void srv_train_stop(struct srv_trainer *t);
void srv_trainer_free(struct srv_trainer *t);

#endif
