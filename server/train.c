/* Training jobs: see train.h.
 *
 * Locking. One mutex (the trainer's) guards the job table and every job's state, progress,
 * error and history; a worker takes it to start a job, after each step to record it, and to
 * finish; a GET takes it to write a job. Outside it a worker touches only its running job's
 * net, data and trainer, which nobody else reads, and a running job is never freed (only
 * finished ones are forgotten). The cancel flag is an atomic read between steps and, through
 * the workspaces, between layers.
 *
 * History. Each job keeps at most train_history entries: every step while they fit; when the
 * buffer is full every other entry is dropped and from then on every 2nd step is kept (then
 * every 4th, ...: "history_stride"), always with the steps that end an epoch (they carry
 * val_loss and the epoch's mean loss) and the last one. */
#define _GNU_SOURCE /* SCHED_IDLE */
#include "server/train.h"

#include <errno.h>
#include <math.h>
#include <pthread.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "server/auth.h"
#include "server/export.h"
#include "server/layers.h"
#include "server/log.h"
#include "server/metrics.h"
#include "server/srv.h"

enum job_state { JOB_QUEUED, JOB_RUNNING, JOB_DONE, JOB_FAILED, JOB_CANCELLED, JOB_STATE_COUNT };
static const char *const state_names[JOB_STATE_COUNT] = {"queued", "running", "done", "failed",
                                                         "cancelled"};

/* One recorded step; nlayers struct hist_layer follow it in the job's layer array. */
struct hist {
    long step, epoch;
    double loss, lr, grad_norm, epoch_loss, val_loss; /* the last two NaN but at an epoch's end */
    int clipped, epoch_end;
};
struct hist_layer {
    double weight_grad_norm; /* -1: no weight */
    double zero_fraction;
    size_t dead_units;
};

struct job {
    char id[24];
    char model[SRV_MODEL_NAME];  /* trained from */
    char target[SRV_MODEL_NAME]; /* installed as (the model itself, or save_as) */
    enum job_state state;
    atomic_int cancel;     /* set by DELETE or the drain: the worker stops at its next step */
    const char *cancel_by; /* "DELETE /v1/train/ID" or "the server is draining" */
    struct srv_model *src; /* held while queued or running */
    struct nn_net net;     /* the copy being trained (its tensors malloc'd) */
    struct srv_train_req req;
    uint64_t t_created, t_started, t_ended; /* monotonic ns; 0 = not yet */
    long step, total_steps, epoch;
    double lr;
    double clip; /* the body's clip_grad_norm (req is freed when the job ends), 0 = none */
    int stopped_early, created; /* created: save_as named a new model */
    char error[NN_ERR_LEN];
    size_t bytes; /* counted against max_train_bytes */
    enum nn_dtype dtype;
    /* history */
    int nlayers, nhist, cap;
    const char **types; /* (nlayers) the layers' kinds, for the history's legend */
    long stride;
    struct hist *hist;     /* (cap) */
    struct hist_layer *hl; /* (cap, nlayers) */
};

struct srv_trainer {
    const struct cfg *cfg;
    struct srv_models *models;
    pthread_mutex_t lock;
    pthread_cond_t cond;
    struct job **jobs; /* in creation order */
    int njobs, capjobs;
    int queued, running;
    int stopping;
    unsigned long seq;
    pthread_t *threads;
    int nthreads;
};

/* ---- jobs --------------------------------------------------------------------------------- */
static void job_free(struct job *j)
{
    if (!j)
        return;
    srv_model_release(j->src);
    srv_net_free(&j->net);
    srv_train_req_free(&j->req);
    free(j->hist);
    free(j->hl);
    free(j->types);
    free(j);
}

/* A deep copy of src (its parameters malloc'd, srv_net_free frees them). */
static enum nn_status net_copy(struct nn_net *dst, const struct nn_net *src, size_t *bytes,
                               struct nn_err *err)
{
    enum nn_status st = nn_net_init(dst, src->dtype, src->nlayers, err);
    if (st)
        return st;
    size_t es = nn_dtype_size(src->dtype);
    *bytes = (size_t)src->nlayers * sizeof *src->layers;
    for (int i = 0; i < src->nlayers; i++) {
        struct nn_layer *l = &dst->layers[i];
        *l = src->layers[i];
        l->weight.data = l->bias.data = NULL;
        struct nn_tensor *d[2] = {&l->weight, &l->bias};
        const struct nn_tensor *s[2] = {&src->layers[i].weight, &src->layers[i].bias};
        for (int k = 0; k < 2; k++) {
            if (!s[k]->ndim)
                continue;
            if (!(d[k]->data = malloc(s[k]->numel * es))) {
                srv_net_free(dst);
                return nn_err_set(err, NN_ENOMEM, "out of memory for a copy of the model");
            }
            memcpy(d[k]->data, s[k]->data, s[k]->numel * es);
            *bytes += s[k]->numel * es;
        }
    }
    return NN_OK;
}

static uint64_t now_ns(void) { return srv_now_ns(); }

/* The core's view of a data set read from a body. */
static struct nn_train_set as_set(const struct srv_train_data *d)
{
    return (struct nn_train_set){.x = d->x, .y = d->y, .classes = d->classes};
}

/* Forgets the oldest finished jobs past train_jobs_kept (under the lock). */
static void trim(struct srv_trainer *t)
{
    int finished = 0;
    for (int i = 0; i < t->njobs; i++)
        finished += t->jobs[i]->state >= JOB_DONE;
    for (int i = 0; i < t->njobs && finished > t->cfg->train_jobs_kept;) {
        if (t->jobs[i]->state < JOB_DONE) {
            i++;
            continue;
        }
        job_free(t->jobs[i]);
        memmove(&t->jobs[i], &t->jobs[i + 1], (size_t)(t->njobs - i - 1) * sizeof *t->jobs);
        t->njobs--;
        finished--;
    }
}

static struct job *job_find(struct srv_trainer *t, const char *id)
{
    for (int i = 0; i < t->njobs; i++)
        if (!strcmp(t->jobs[i]->id, id))
            return t->jobs[i];
    return NULL;
}

/* Ends a job (under the lock): its state, error, the model reference and the memory it held
 * for the run. */
static void job_end(struct srv_trainer *t, struct job *j, enum job_state st, const char *error)
{
    if (j->state == JOB_RUNNING)
        t->running--;
    else if (j->state == JOB_QUEUED)
        t->queued--;
    j->state = st;
    j->t_ended = now_ns();
    if (!j->t_started)
        j->t_started = j->t_ended;
    snprintf(j->error, sizeof j->error, "%s", error ? error : "");
    srv_model_release(j->src);
    j->src = NULL;
    srv_net_free(&j->net);
    srv_train_req_free(&j->req);
    trim(t);
}

/* ---- history ------------------------------------------------------------------------------ */
static int record_this(const struct job *j, const struct nn_trainer *tr)
{
    long next = tr->step + 1;
    return next % j->stride == 0 || tr->epoch_pos + 1 == tr->steps_per_epoch ||
           next == tr->total_steps;
}

/* Appends step s (under the lock), halving the history when it is full. */
static void record(struct job *j, const struct nn_train_step *s)
{
    if (j->nhist == j->cap) { /* keep the odd positions: the steps on the doubled stride */
        int k = 0;
        for (int i = 1; i < j->nhist; i += 2, k++) {
            j->hist[k] = j->hist[i];
            memcpy(&j->hl[(size_t)k * j->nlayers], &j->hl[(size_t)i * j->nlayers],
                   (size_t)j->nlayers * sizeof *j->hl);
        }
        j->nhist = k;
        j->stride *= 2;
    }
    struct hist *h = &j->hist[j->nhist];
    *h = (struct hist){s->step,       s->epoch,    s->loss,    s->lr,       s->grad_norm,
                       s->epoch_loss, s->val_loss, s->clipped, s->epoch_end};
    struct hist_layer *hl = &j->hl[(size_t)j->nhist * j->nlayers];
    for (int i = 0; i < j->nlayers; i++) {
        const struct nn_layer_stats *ls = s->stats ? &s->stats[i] : NULL;
        hl[i] = (struct hist_layer){ls ? ls->weight_grad_norm : -1, ls ? ls->zero_fraction : 0,
                                    ls ? ls->ndead : 0};
    }
    j->nhist++;
}

/* ---- the worker ---------------------------------------------------------------------------- */
/* This thread below every request thread: SCHED_IDLE runs it only on an otherwise idle core
 * (glibc; allowed unprivileged), else nice 19 for the thread. */
static void lower_priority(void)
{
    struct sched_param sp = {0};
    if (pthread_setschedparam(pthread_self(), SCHED_IDLE, &sp) == 0)
        return;
    if (setpriority(PRIO_PROCESS, (id_t)syscall(SYS_gettid), 19) != 0)
        srv_log(CFG_LOG_WARN, "train: cannot lower the worker's priority: %s", strerror(errno));
}

/* The trained net into the repository (the path of a PUT): NAME.json written atomically and
 * hot-swapped. A new version of the model itself only if it is still the one trained from. */
static enum nn_status install(struct srv_trainer *t, struct job *j, struct nn_err *err)
{
    const struct srv_model *src = j->src;
    if (!j->req.save_as[0]) {
        enum nn_status st;
        struct nn_err e;
        struct srv_model *now = srv_models_get(t->models, j->model, &st, &e);
        int same = now == src;
        srv_model_release(now);
        if (!same)
            return nn_err_set(err, NN_EUNAVAILABLE,
                              "model \"%s\" was replaced, unloaded or deleted while the job ran: "
                              "the trained weights were not installed (use \"save_as\" to keep "
                              "them under another name)",
                              j->model);
    }
    struct srv_jw w;
    srv_jw_init(&w, (j->bytes / 2) + 1024, 0);
    srv_model_export(&w, j->target, src->description, &j->net, src->onnx ? NULL : &src->batch);
    size_t len;
    enum nn_status st;
    char *text = srv_jw_finish(&w, &len, &st, err);
    if (!text)
        return st;
    st = srv_models_put(t->models, j->target, text, len, &j->created, err);
    free(text);
    return st;
}

/* Runs j to its end (outside the lock but for the bookkeeping). */
static void run_job(struct srv_trainer *t, struct job *j)
{
    struct nn_trainer tr;
    struct nn_err err = {{0}};
    enum job_state end = JOB_FAILED;
    const struct srv_train_req *r = &j->req;
    struct nn_train_set train = as_set(&r->train), val = as_set(&r->val);
    enum nn_status st =
        nn_trainer_init(&tr, &j->net, &r->cfg, &train, r->have_val ? &val : NULL, &err);
    if (st)
        goto out;
    nn_trainer_set_cancel(&tr, &j->cancel);
    uint64_t deadline = j->t_started + (uint64_t)t->cfg->max_train_seconds * 1000000000ull;
    while (!nn_trainer_done(&tr)) {
        if (atomic_load(&j->cancel)) {
            st = NN_ECANCELED;
            break;
        }
        if (now_ns() > deadline) {
            st = nn_err_set(&err, NN_ETOOBIG,
                            "max_train_seconds (%d s) reached after %ld of %ld steps; nothing was "
                            "installed",
                            t->cfg->max_train_seconds, tr.step, tr.total_steps);
            break;
        }
        int rec = record_this(j, &tr);
        struct nn_train_step s;
        if ((st = nn_trainer_step(&tr, rec, &s, &err)))
            break;
        pthread_mutex_lock(&t->lock);
        j->step = s.step;
        j->epoch = s.epoch;
        j->lr = tr.cfg.have_sched ? tr.sched.lr : s.lr;
        j->stopped_early = s.stop;
        if (rec || s.epoch_end || s.stop)
            record(j, &s);
        pthread_mutex_unlock(&t->lock);
    }
    if (st == NN_OK && atomic_load(&j->cancel))
        st = NN_ECANCELED;
    nn_trainer_free(&tr);
    if (st == NN_OK && (st = install(t, j, &err)) == NN_OK)
        end = JOB_DONE;
out:
    if (st == NN_ECANCELED) {
        end = JOB_CANCELLED;
        snprintf(err.msg, sizeof err.msg, "cancelled by %s at step %ld; nothing was installed",
                 j->cancel_by ? j->cancel_by : "request", j->step);
    }
    /* what the log line needs: job_end may forget j (train_jobs_kept) */
    char id[sizeof j->id], model[SRV_MODEL_NAME], target[SRV_MODEL_NAME];
    snprintf(id, sizeof id, "%s", j->id);
    snprintf(model, sizeof model, "%s", j->model);
    snprintf(target, sizeof target, "%s", j->target);
    long steps = j->step;
    pthread_mutex_lock(&t->lock);
    int created = j->created;
    job_end(t, j, end, end == JOB_DONE ? NULL : err.msg);
    pthread_mutex_unlock(&t->lock);
    if (end == JOB_DONE)
        srv_log(CFG_LOG_INFO, "train %s: model %s: done after %ld steps; installed as %s%s", id,
                model, steps, target, created ? " (a new model)" : "");
    else
        srv_log(end == JOB_CANCELLED ? CFG_LOG_INFO : CFG_LOG_WARN, "train %s: model %s: %s: %s",
                id, model, state_names[end], err.msg);
}

static void *worker(void *arg)
{
    struct srv_trainer *t = arg;
    lower_priority();
    pthread_mutex_lock(&t->lock);
    while (!t->stopping) {
        struct job *j = NULL;
        for (int i = 0; i < t->njobs && !j; i++)
            if (t->jobs[i]->state == JOB_QUEUED)
                j = t->jobs[i];
        if (!j) {
            pthread_cond_wait(&t->cond, &t->lock);
            continue;
        }
        j->state = JOB_RUNNING;
        j->t_started = now_ns();
        t->queued--;
        t->running++;
        pthread_mutex_unlock(&t->lock);
        run_job(t, j); /* j may be forgotten once it ended: not touched after */
        pthread_mutex_lock(&t->lock);
    }
    pthread_mutex_unlock(&t->lock);
    return NULL;
}

struct srv_trainer *srv_trainer_start(const struct cfg *c, struct srv_models *models,
                                      struct nn_err *err)
{
    struct srv_trainer *t = calloc(1, sizeof *t);
    if (!t || !(t->threads = calloc((size_t)(c->max_train_jobs ? c->max_train_jobs : 1),
                                    sizeof *t->threads))) {
        free(t);
        nn_err_set(err, NN_ENOMEM, "out of memory for the training jobs");
        return NULL;
    }
    t->cfg = c;
    t->models = models;
    pthread_mutex_init(&t->lock, NULL);
    pthread_cond_init(&t->cond, NULL);
    for (int i = 0; i < c->max_train_jobs; i++) {
        int rc = pthread_create(&t->threads[i], NULL, worker, t);
        if (rc) {
            nn_err_set(err, NN_ENOMEM, "cannot start training worker %d: %s", i, strerror(rc));
            srv_trainer_free(t);
            return NULL;
        }
        t->nthreads++;
    }
    return t;
}

void srv_train_stop(struct srv_trainer *t)
{
    if (!t)
        return;
    pthread_mutex_lock(&t->lock);
    int first = !t->stopping;
    t->stopping = 1;
    for (int i = 0; i < t->njobs; i++) {
        struct job *j = t->jobs[i];
        if (j->state == JOB_QUEUED) {
            j->cancel_by = "the server draining";
            job_end(t, j, JOB_CANCELLED,
                    "cancelled by the server draining before it started; nothing was installed");
            i = -1; /* job_end may have forgotten jobs: start over */
        } else if (j->state == JOB_RUNNING && !atomic_load(&j->cancel)) {
            j->cancel_by = "the server draining";
            atomic_store(&j->cancel, 1);
        }
    }
    pthread_cond_broadcast(&t->cond);
    pthread_mutex_unlock(&t->lock);
    if (first)
        for (int i = 0; i < t->nthreads; i++)
            pthread_join(t->threads[i], NULL);
}

void srv_trainer_free(struct srv_trainer *t)
{
    if (!t)
        return;
    srv_train_stop(t);
    for (int i = 0; i < t->njobs; i++)
        job_free(t->jobs[i]);
    free(t->jobs);
    free(t->threads);
    pthread_cond_destroy(&t->cond);
    pthread_mutex_destroy(&t->lock);
    free(t);
}

/* ---- the handlers --------------------------------------------------------------------------- */
/* Total steps of a parsed request, as the trainer counts them (0 on overflow). */
static long total_steps(const struct srv_train_req *r)
{
    if (r->cfg.steps)
        return r->cfg.steps;
    size_t n = r->train.x.ndim ? r->train.x.shape[0] : 0, bs = r->cfg.batch_size;
    long per = (long)((n + bs - 1) / bs), total;
    if (__builtin_mul_overflow(per, r->cfg.epochs, &total))
        return 0;
    return total;
}

/* Reads the request into a new job (not yet listed). *status: the HTTP status of an error. */
static enum nn_status job_new(struct srv_req *req, struct job **out, unsigned *status,
                              struct nn_err *err)
{
    const struct cfg *c = &req->srv->cfg;
    *out = NULL;
    *status = 0;
    if (req->len > c->max_train_body_bytes) {
        *status = 413;
        return nn_err_set(err, NN_ETOOBIG,
                          "body: %zu bytes, over max_train_body_bytes (%zu): send fewer rows",
                          req->len, c->max_train_body_bytes);
    }
    enum nn_status st;
    struct srv_model *m = srv_models_get(req->srv->models, req->name, &st, err);
    if (!m)
        return st;
    snprintf(req->model, sizeof req->model, "%s", m->name);
    struct job *j = calloc(1, sizeof *j);
    if (!j) {
        srv_model_release(m);
        return nn_err_set(err, NN_ENOMEM, "out of memory");
    }
    j->src = m;
    snprintf(j->model, sizeof j->model, "%s", m->name);
    if ((st = srv_train_parse(req->body, req->len, c, m->dtype, &j->req, err)))
        goto fail;
    snprintf(j->target, sizeof j->target, "%s", j->req.save_as[0] ? j->req.save_as : m->name);
    if (m->onnx && !j->req.save_as[0]) {
        st = nn_err_set(err, NN_EINVAL,
                        "model \"%s\" is %s.onnx: a trained copy is a model file (NAME.json); give "
                        "\"save_as\" a new name for it",
                        m->name, m->name);
        goto fail;
    }
    j->total_steps = total_steps(&j->req);
    if (j->total_steps <= 0 || j->total_steps > (long)c->max_train_steps) {
        st = nn_err_set(err, NN_ETOOBIG, "%s: %ld steps, over max_train_steps (%zu)",
                        j->req.cfg.steps ? "steps" : "epochs", j->total_steps, c->max_train_steps);
        goto fail;
    }
    size_t bytes;
    struct nn_train_set train = as_set(&j->req.train), val = as_set(&j->req.val);
    if ((st = net_copy(&j->net, &m->net, &j->bytes, err)) ||
        (st = nn_train_plan(&j->net, &j->req.cfg, &train, j->req.have_val ? &val : NULL, &bytes,
                            err)))
        goto fail;
    j->nlayers = m->net.nlayers;
    j->dtype = m->net.dtype;
    if (!(j->types = calloc((size_t)(j->nlayers ? j->nlayers : 1), sizeof *j->types))) {
        st = nn_err_set(err, NN_ENOMEM, "out of memory");
        goto fail;
    }
    for (int i = 0; i < j->nlayers; i++)
        j->types[i] = nn_kinds[m->net.layers[i].kind].name;
    j->cap = c->train_history;
    j->stride = 1;
    size_t hist_bytes = (size_t)j->cap * (sizeof *j->hist + (size_t)j->nlayers * sizeof *j->hl);
    j->bytes += bytes + hist_bytes + j->req.train.bytes + j->req.val.bytes;
    if (j->bytes > c->max_train_bytes) {
        st = nn_err_set(err, NN_ETOOBIG,
                        "this job needs %zu bytes (data, a copy of the model, workspaces, "
                        "optimizer state, history), over max_train_bytes (%zu)",
                        j->bytes, c->max_train_bytes);
        goto fail;
    }
    j->hist = calloc((size_t)j->cap, sizeof *j->hist);
    j->hl = calloc((size_t)j->cap * (size_t)(j->nlayers ? j->nlayers : 1), sizeof *j->hl);
    if (!j->hist || !j->hl) {
        st = nn_err_set(err, NN_ENOMEM, "out of memory");
        goto fail;
    }
    j->lr = j->req.cfg.optim.lr;
    j->clip = j->req.cfg.clip;
    *out = j;
    return NN_OK;
fail:
    job_free(j);
    return st;
}

void srv_h_train_start(struct srv_req *req, struct srv_reply *rep)
{
    if (!srv_admin_authorized(req, rep, "training"))
        return;
    struct srv_trainer *t = req->srv->trainer;
    const struct cfg *c = &req->srv->cfg;
    if (!t || c->max_train_jobs == 0) {
        srv_reply_error(rep, 403, "training is disabled (max_train_jobs is 0)");
        return;
    }
    struct nn_err err;
    struct job *j;
    unsigned status;
    enum nn_status st = job_new(req, &j, &status, &err);
    if (st) {
        if (status)
            srv_reply_error(rep, status, "%s", err.msg);
        else
            srv_reply_nn_error(rep, st, &err);
        return;
    }
    pthread_mutex_lock(&t->lock);
    const char *refuse = NULL;
    if (t->stopping)
        refuse = "draining: this replica is shutting down";
    else if (t->queued >= c->max_train_queue)
        refuse = "queue full";
    else if (t->njobs == t->capjobs) {
        int nc = t->capjobs ? 2 * t->capjobs : 16;
        struct job **nj = realloc(t->jobs, (size_t)nc * sizeof *nj);
        if (!nj)
            refuse = "out of memory";
        else {
            t->jobs = nj;
            t->capjobs = nc;
        }
    }
    if (refuse) {
        int running = t->running, queued = t->queued;
        pthread_mutex_unlock(&t->lock);
        job_free(j);
        if (!strcmp(refuse, "queue full"))
            srv_reply_error(rep, 503,
                            "training queue full: %d job(s) running (max_train_jobs %d) and %d "
                            "queued (max_train_queue %d); retry later",
                            running, c->max_train_jobs, queued, c->max_train_queue);
        else
            srv_reply_error(rep, 503, "%s", refuse);
        srv_reply_header(rep, "Retry-After", "%d", t->stopping ? 5 : 10);
        return;
    }
    snprintf(j->id, sizeof j->id, "%lu", ++t->seq);
    j->t_created = now_ns();
    j->state = JOB_QUEUED;
    t->jobs[t->njobs++] = j;
    t->queued++;
    pthread_cond_signal(&t->cond);
    char id[sizeof j->id], target[SRV_MODEL_NAME]; /* j is the worker's once unlocked */
    snprintf(id, sizeof id, "%s", j->id);
    snprintf(target, sizeof target, "%s", j->target);
    long steps = j->total_steps;
    size_t bytes = j->bytes;
    pthread_mutex_unlock(&t->lock);
    srv_log(CFG_LOG_INFO, "train %s: model %s: queued: %ld steps, %zu bytes, into %s", id,
            req->name, steps, bytes, target);
    struct srv_jw w;
    srv_jw_init(&w, 64, 0);
    srv_jw_obj(&w);
    srv_jw_kstr(&w, "id", id);
    srv_jw_kstr(&w, "state", "queued");
    srv_jw_end(&w);
    srv_reply_jw(rep, 202, &w);
    srv_reply_header(rep, "Location", "/v1/train/%s", id);
}

static double seconds(uint64_t ns) { return (double)ns / 1e9; }

/* A non-finite number as null (a NaN epoch loss outside an epoch's end). */
static void num_or_null(struct srv_jw *w, const char *key, double v, enum nn_dtype dt)
{
    srv_jw_key(w, key);
    if (isfinite(v))
        srv_jw_num(w, v, dt, key);
    else
        srv_jw_null(w);
}

/* The job's summary fields (under the lock). */
static void write_summary(struct srv_jw *w, const struct job *j, const struct cfg *c)
{
    uint64_t now = now_ns();
    srv_jw_kstr(w, "id", j->id);
    srv_jw_kstr(w, "model", j->model);
    srv_jw_key(w, "save_as");
    if (j->req.save_as[0] || strcmp(j->target, j->model))
        srv_jw_str(w, j->target);
    else
        srv_jw_null(w);
    srv_jw_kstr(w, "state", state_names[j->state]);
    srv_jw_kint(w, "step", j->step);
    srv_jw_kint(w, "total_steps", j->total_steps);
    srv_jw_kint(w, "epoch", j->epoch);
    double elapsed = j->t_started ? seconds((j->t_ended ? j->t_ended : now) - j->t_started) : 0;
    srv_jw_key(w, "elapsed_s");
    srv_jw_num(w, elapsed, NN_F64, "elapsed_s");
    srv_jw_key(w, "eta_s");
    if (j->state == JOB_RUNNING && j->step > 0)
        srv_jw_num(w, elapsed / (double)j->step * (double)(j->total_steps - j->step), NN_F64,
                   "eta_s");
    else if (j->state >= JOB_DONE)
        srv_jw_num(w, 0, NN_F64, "eta_s");
    else
        srv_jw_null(w);
    srv_jw_key(w, "error");
    if (j->error[0])
        srv_jw_str(w, j->error);
    else
        srv_jw_null(w);
    (void)c;
}

static void write_job(struct srv_jw *w, const struct job *j, const struct cfg *c)
{
    srv_jw_obj(w);
    write_summary(w, j, c);
    srv_jw_key(w, "lr");
    srv_jw_num(w, j->lr, NN_F64, "lr");
    srv_jw_kbool(w, "stopped_early", j->stopped_early);
    srv_jw_key(w, "clip_grad_norm"); /* the bound the history's "clipped" is against */
    if (j->clip > 0)
        srv_jw_num(w, j->clip, NN_F64, "clip_grad_norm");
    else
        srv_jw_null(w);
    srv_jw_key(w, "result");
    if (j->state == JOB_DONE) {
        srv_jw_obj(w);
        srv_jw_kstr(w, "model", j->target);
        srv_jw_kbool(w, "created", j->created);
        srv_jw_end(w);
    } else {
        srv_jw_null(w);
    }
    srv_jw_kuint(w, "memory_bytes", j->bytes);
    srv_jw_key(w, "layers");
    srv_jw_arr(w);
    for (int k = 0; k < j->nlayers; k++)
        srv_jw_str(w, j->types[k]);
    srv_jw_end(w);
    srv_jw_kint(w, "history_stride", j->stride);
    srv_jw_key(w, "history");
    srv_jw_arr(w);
    enum nn_dtype dt = j->dtype;
    for (int i = 0; i < j->nhist; i++) {
        const struct hist *h = &j->hist[i];
        srv_jw_obj(w);
        srv_jw_kint(w, "step", h->step);
        srv_jw_kint(w, "epoch", h->epoch);
        num_or_null(w, "loss", h->loss, dt);
        num_or_null(w, "val_loss", h->val_loss, dt);
        num_or_null(w, "epoch_loss", h->epoch_loss, dt);
        num_or_null(w, "lr", h->lr, NN_F64);
        num_or_null(w, "grad_norm", h->grad_norm, dt);
        srv_jw_kbool(w, "clipped", h->clipped);
        srv_jw_key(w, "layers");
        srv_jw_arr(w);
        const struct hist_layer *hl = &j->hl[(size_t)i * j->nlayers];
        for (int k = 0; k < j->nlayers; k++) {
            srv_jw_obj(w);
            srv_jw_key(w, "weight_grad_norm");
            if (hl[k].weight_grad_norm >= 0)
                srv_jw_num(w, hl[k].weight_grad_norm, dt, "weight_grad_norm");
            else
                srv_jw_null(w);
            srv_jw_key(w, "zero_fraction");
            srv_jw_num(w, hl[k].zero_fraction, NN_F64, "zero_fraction");
            srv_jw_kuint(w, "dead_units", hl[k].dead_units);
            srv_jw_end(w);
        }
        srv_jw_end(w);
        srv_jw_end(w);
    }
    srv_jw_end(w);
    srv_jw_end(w);
}

/* The job named by the URL's {id}, or a 404 reply (under the lock: NULL unlocked). */
static struct job *locked_job(struct srv_req *req, struct srv_reply *rep)
{
    struct srv_trainer *t = req->srv->trainer;
    if (t) {
        pthread_mutex_lock(&t->lock);
        struct job *j = job_find(t, req->version);
        if (j)
            return j;
        pthread_mutex_unlock(&t->lock);
    }
    srv_reply_error(rep, 404,
                    "unknown training job \"%.31s\" (jobs live in memory: train_jobs_kept "
                    "finished ones, until the daemon stops)",
                    req->version);
    return NULL;
}

void srv_h_train_get(struct srv_req *req, struct srv_reply *rep)
{
    struct job *j = locked_job(req, rep);
    if (!j)
        return;
    struct srv_jw w;
    srv_jw_init(&w, 512 + (size_t)j->nhist * (200 + (size_t)j->nlayers * 80), 0);
    write_job(&w, j, &req->srv->cfg);
    pthread_mutex_unlock(&req->srv->trainer->lock);
    srv_reply_jw(rep, 200, &w);
}

void srv_h_train_list(struct srv_req *req, struct srv_reply *rep)
{
    struct srv_trainer *t = req->srv->trainer;
    struct srv_jw w;
    srv_jw_init(&w, 1024, 0);
    srv_jw_obj(&w);
    srv_jw_key(&w, "jobs");
    srv_jw_arr(&w);
    if (t) {
        pthread_mutex_lock(&t->lock);
        for (int i = 0; i < t->njobs; i++) {
            srv_jw_obj(&w);
            write_summary(&w, t->jobs[i], &req->srv->cfg);
            srv_jw_end(&w);
        }
        pthread_mutex_unlock(&t->lock);
    }
    srv_jw_end(&w);
    srv_jw_end(&w);
    srv_reply_jw(rep, 200, &w);
}

void srv_h_train_cancel(struct srv_req *req, struct srv_reply *rep)
{
    if (!srv_admin_authorized(req, rep, "training"))
        return;
    struct job *j = locked_job(req, rep);
    if (!j)
        return;
    struct srv_trainer *t = req->srv->trainer;
    unsigned status = 200;
    int requested = 0;
    if (j->state == JOB_QUEUED) {
        j->cancel_by = "a DELETE";
        atomic_store(&j->cancel, 1);
        job_end(t, j, JOB_CANCELLED,
                "cancelled by a DELETE before it started; nothing was installed");
        requested = 1;
    } else if (j->state == JOB_RUNNING) {
        if (!atomic_load(&j->cancel))
            j->cancel_by = "a DELETE";
        atomic_store(&j->cancel, 1);
        status = 202; /* it ends at its next step */
        requested = 1;
    }
    struct srv_jw w;
    srv_jw_init(&w, 128, 0);
    srv_jw_obj(&w);
    /* job_end may have forgotten j (train_jobs_kept 0): the id is the URL's */
    srv_jw_kstr(&w, "id", req->version);
    srv_jw_kstr(&w, "state",
                status == 202 ? "running"
                : requested   ? "cancelled"
                              : state_names[j->state]);
    srv_jw_kbool(&w, "cancel_requested", requested);
    srv_jw_end(&w);
    pthread_mutex_unlock(&t->lock);
    srv_reply_jw(rep, status, &w);
}
