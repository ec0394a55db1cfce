/* Dynamic batching, as Triton's dynamic batcher: requests for one model whose inputs agree
 * in every dimension but the first wait in that model's queue, and a worker runs them as
 * one pass (for a Linear layer one sgemm instead of a memory-bound sgemv per request); each
 * request gets back exactly its own rows.
 *
 * Threads. A fixed set of engine workers (batch_workers) runs the batches. HTTP threads
 * never wait for them: the handler parks its connection (srv_req_defer), submits a job and
 * returns to serving other connections; the worker writes the job's output rows where the
 * job said, then calls the job's done function, whose last act is to wake the connection,
 * and the reply is written on an HTTP thread. A queued request therefore waits for at most
 * the batch running before it, never for an HTTP thread.
 *
 * When a batch runs (the worker holding the engine's lock looks at each model's queue):
 *  - the rows queued for the oldest request's shape reach max_batch_size, or one of
 *    preferred_batch_size (the largest one reached is taken), or
 *  - the oldest request has waited max_queue_delay_microseconds, or
 *  - the engine is stopping (then the queue is answered 503, not run).
 * A batch takes queued requests of that shape in arrival order while their rows fit; when
 * several workers are idle they share the queued rows (on a CPU, two half batches side by
 * side beat one full batch and an idle core: each pass is bound by reading the weights).
 * A request still queued past its timeout (the model's default_timeout_microseconds, or the
 * request's own "timeout" parameter when shorter) is answered 503 and never run.
 * A batch whose pass fails on a value (an inf in one request's rows) is rerun a request at
 * a time, so each request gets the answer it would have got alone. */
#ifndef RELUD_BATCH_H
#define RELUD_BATCH_H

#include <pthread.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#include "core/nn.h"
#include "server/json.h"
#include "server/jsonw.h"

#define SRV_BATCH_MAX_PREFERRED 16

/* A model's batching settings: the model file's "max_batch_size" and "dynamic_batching",
 * Triton's names. */
struct srv_batch_cfg {
    size_t max_batch_size;       /* rows in one request or batch; 0 = no limit, no batching */
    int dynamic;                 /* "dynamic_batching" given: batch */
    uint64_t max_queue_delay_us; /* how long the oldest request waits for company */
    size_t preferred[SRV_BATCH_MAX_PREFERRED];
    int npreferred;
    size_t max_queue_size;       /* requests queued; 0 = no limit (connection_limit bounds it) */
    uint64_t default_timeout_us; /* 0 = none */
    int allow_timeout_override;  /* a request's "timeout" may shorten the default */
};

/* Reads "max_batch_size" and "dynamic_batching" from a model file's root object (absent:
 * zeros, no batching). Errors name the field: "dynamic_batching.preferred_batch_size[1]: 80
 * is over max_batch_size (64)". */
enum nn_status srv_batch_cfg_parse(const struct srv_json *d, srv_jv root, struct srv_batch_cfg *c,
                                   struct nn_err *err);
/* Triton's rule for a model with max_batch_size: an input's first dimension is its batch,
 * at most max_batch_size rows (NN_EINVAL naming where). */
enum nn_status srv_batch_check_rows(const struct srv_batch_cfg *c, const size_t *shape, int ndim,
                                    const char *where, struct nn_err *err);
/* The settings as Triton's model configuration writes them: "max_batch_size" and, when
 * batching, "dynamic_batching" (uint64 fields as strings, as protobuf's JSON mapping). */
void srv_batch_cfg_write(const struct srv_batch_cfg *c, struct srv_jw *w);

/* ---- statistics of one model name (kept across its versions) ------------------------- */
#define SRV_BATCH_HIST 10 /* batch sizes: 1, 2, 4, ..., 256, +Inf */
#define SRV_QUEUE_HIST 12 /* queue seconds: 0.0001 .. 10, +Inf */
extern const double srv_batch_hist_le[SRV_BATCH_HIST - 1];
extern const double srv_queue_hist_le[SRV_QUEUE_HIST - 1];

/* Triton's batch_stats: per batch size, the executions and their phases. */
struct srv_batch_size_stat {
    size_t batch_size;
    unsigned long long count, input_ns, infer_ns, output_ns;
};

struct srv_batch_stats {
    pthread_mutex_t lock;              /* sizes */
    struct srv_batch_size_stat *sizes; /* sorted by batch_size */
    int nsizes, capsizes;
    atomic_ullong executions;                /* passes: batches, and requests run alone */
    atomic_ullong size_hist[SRV_BATCH_HIST]; /* executions by batch size (not cumulative) */
    atomic_ullong size_sum;
    atomic_ullong queue_hist[SRV_QUEUE_HIST]; /* queued requests by time queued */
    atomic_ullong queue_sum_ns;
    atomic_ullong rejected_full, rejected_timeout;
};

void srv_batch_stats_init(struct srv_batch_stats *s);
void srv_batch_stats_destroy(struct srv_batch_stats *s);
/* One execution (a batch, or a request run alone) of rows rows and its phases. */
void srv_batch_stats_exec(struct srv_batch_stats *s, size_t rows, uint64_t input_ns,
                          uint64_t infer_ns, uint64_t output_ns);
/* Calls fn for each batch size executed, in size order, under the stats' lock. */
void srv_batch_stats_foreach(const struct srv_batch_stats *s,
                             void (*fn)(void *ctx, const struct srv_batch_size_stat *b), void *ctx);

/* ---- jobs, queues, the engine ----------------------------------------------------------- */
struct srv_batch_job {
    /* the submitter's */
    const void *input; /* shape's elements of the net's dtype */
    void *output;      /* where the job's output rows go (its own pass's output buffer) */
    size_t shape[NN_MAX_DIMS];
    int ndim;            /* >= 2: shape[0] is the job's rows */
    uint64_t timeout_us; /* the request's "timeout", 0 none */
    struct srv_batch_stats *stats;
    void (*done)(struct srv_batch_job *job); /* the engine's last touch of the job */
    void *ctx;
    /* the engine's answer */
    enum nn_status st; /* NN_OK: output written */
    struct nn_err err;
    uint64_t t_queued, t_started, t_ended; /* monotonic ns */
    uint64_t input_ns, output_ns;          /* the batch's gather and scatter */
    size_t batch_rows;                     /* rows of the pass it ran in */
    /* the engine's */
    struct srv_batch_job *next;
    uint64_t timeout_eff_us, deadline;
};

/* A model version's queue. */
struct srv_batcher;
struct srv_batcher *srv_batcher_new(const struct nn_net *net, const struct srv_batch_cfg *c);
void srv_batcher_free(struct srv_batcher *b); /* its queue must be empty */

/* Whether a request of this input shape may join a batch: a batching model, an input of
 * rank >= 2 whose first dimension is the batch (no softmax over it), and a forward pass
 * only (gradients, losses and per-layer statistics are per batch: those run alone). */
int srv_batch_fits(const struct srv_batcher *b, const size_t *shape, int ndim);

struct srv_engine;
/* Starts workers threads. max_elems, max_ws_bytes: the caps a batch's plan is held to (a
 * batch over them runs its requests alone); cancel: the server's drain cut. */
struct srv_engine *srv_engine_start(int workers, size_t max_elems, size_t max_ws_bytes,
                                    const atomic_int *cancel, struct nn_err *err);
/* Answers every queued job 503 and waits for running batches (the drain cut stops them):
 * when it returns every job has been answered, and a later submit is refused (NN_EUNAVAILABLE,
 * "draining"). Any number of times, from any thread; NULL is a no-op. */
void srv_engine_stop(struct srv_engine *e);
/* Stops it and frees it: once nothing can submit any more. */
void srv_engine_free(struct srv_engine *e);
int srv_engine_workers(const struct srv_engine *e);

/* Queues job on b. NN_EUNAVAILABLE (nothing queued, job->done not called) when the queue
 * holds max_queue_size requests or the engine is stopping. Otherwise job->done is called
 * exactly once, on another thread, possibly before this returns. */
enum nn_status srv_batch_submit(struct srv_engine *e, struct srv_batcher *b,
                                struct srv_batch_job *job, struct nn_err *err);

#endif
