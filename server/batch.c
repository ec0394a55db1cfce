/* Dynamic batching: see batch.h.
 *
 * Locking. One mutex (the engine's) guards every queue and the list of queues with jobs;
 * workers hold it only to look at queues and take jobs, never during a pass. A job's
 * fields after `next` are the engine's; the rest are read-only once submitted, until done.
 * The batch statistics' size table has its own mutex (taken once per execution). */
#include "server/batch.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "server/srv.h"

/* ---- settings ------------------------------------------------------------------------ */
static const char *const dyn_keys[] = {"max_queue_delay_microseconds",
                                       "preferred_batch_size",
                                       "max_queue_size",
                                       "default_timeout_microseconds",
                                       "default_queue_policy",
                                       "preserve_ordering",
                                       NULL};
static const char *const policy_keys[] = {"timeout_action", "default_timeout_microseconds",
                                          "allow_timeout_override", "max_queue_size", NULL};

/* A count: a non-negative integer, or (protobuf's JSON mapping of uint64) a string of
 * digits. */
static enum nn_status get_count(const struct srv_json *d, srv_jv v, const char *where, uint64_t max,
                                uint64_t *out, struct nn_err *err)
{
    char buf[32], *end;
    int64_t n = -1;
    if (srv_json_type(d, v) == SRV_J_STRING) {
        if (srv_json_str(d, v, buf, sizeof buf) < sizeof buf && buf[0] >= '0' && buf[0] <= '9') {
            errno = 0;
            unsigned long long u = strtoull(buf, &end, 10);
            if (!errno && !*end && u <= (unsigned long long)INT64_MAX)
                n = (int64_t)u;
        }
    } else if (srv_json_type(d, v) != SRV_J_NUMBER || srv_json_int(d, v, &n, where, NULL)) {
        n = -1;
    }
    if (n < 0 || (uint64_t)n > max)
        return nn_err_set(err, NN_EINVAL, "%s: expected an integer from 0 to %llu", where,
                          (unsigned long long)max);
    *out = (uint64_t)n;
    return NN_OK;
}

static enum nn_status unknown_key(const struct srv_json *d, srv_jv obj, const char *where,
                                  const char *const *known, struct nn_err *err)
{
    char k[64], list[320];
    if (!srv_json_unknown_field(d, obj, known, k, sizeof k, list, sizeof list))
        return NN_OK;
    return nn_err_set(err, NN_EINVAL, "%s: unknown or unsupported field \"%s\" (relud reads: %s)",
                      where, k, list);
}

/* Triton's default_queue_policy (or its fields given directly in dynamic_batching). */
static enum nn_status parse_policy(const struct srv_json *d, srv_jv obj, const char *where,
                                   struct srv_batch_cfg *c, struct nn_err *err)
{
    char w[96];
    uint64_t v;
    enum nn_status st;
    srv_jv x;
    if ((x = srv_json_get(d, obj, "max_queue_size"))) {
        snprintf(w, sizeof w, "%s.max_queue_size", where);
        if ((st = get_count(d, x, w, 1u << 30, &v, err)))
            return st;
        c->max_queue_size = (size_t)v;
    }
    if ((x = srv_json_get(d, obj, "default_timeout_microseconds"))) {
        snprintf(w, sizeof w, "%s.default_timeout_microseconds", where);
        if ((st = get_count(d, x, w, 86400000000ull, &v, err)))
            return st;
        c->default_timeout_us = v;
    }
    if ((x = srv_json_get(d, obj, "allow_timeout_override"))) {
        if (srv_json_type(d, x) != SRV_J_BOOL)
            return nn_err_set(err, NN_EINVAL, "%s.allow_timeout_override: expected true or false",
                              where);
        c->allow_timeout_override = srv_json_is_true(d, x);
    }
    if ((x = srv_json_get(d, obj, "timeout_action")) && !srv_json_str_is(d, x, "REJECT"))
        return nn_err_set(err, NN_EINVAL,
                          "%s.timeout_action: only \"REJECT\" is supported (a request past its "
                          "timeout is answered 503 and never run)",
                          where);
    return NN_OK;
}

enum nn_status srv_batch_cfg_parse(const struct srv_json *d, srv_jv root, struct srv_batch_cfg *c,
                                   struct nn_err *err)
{
    memset(c, 0, sizeof *c);
    c->allow_timeout_override = 1;
    uint64_t v;
    enum nn_status st;
    srv_jv mbs = srv_json_get(d, root, "max_batch_size");
    if (mbs) {
        if ((st = get_count(d, mbs, "max_batch_size", 1u << 20, &v, err)))
            return st;
        c->max_batch_size = (size_t)v;
    }
    srv_jv dyn = srv_json_get(d, root, "dynamic_batching");
    if (!dyn || srv_json_type(d, dyn) == SRV_J_NULL)
        return NN_OK;
    if (srv_json_type(d, dyn) != SRV_J_OBJECT)
        return nn_err_set(err, NN_EINVAL, "dynamic_batching: expected an object");
    if (!c->max_batch_size)
        return nn_err_set(err, NN_EINVAL,
                          "dynamic_batching: needs \"max_batch_size\" > 0 (the most rows in one "
                          "batch)");
    if ((st = unknown_key(d, dyn, "dynamic_batching", dyn_keys, err)))
        return st;
    c->dynamic = 1;
    srv_jv x = srv_json_get(d, dyn, "max_queue_delay_microseconds");
    if (x) {
        if ((st = get_count(d, x, "dynamic_batching.max_queue_delay_microseconds", 60000000, &v,
                            err)))
            return st;
        c->max_queue_delay_us = v;
    }
    x = srv_json_get(d, dyn, "preferred_batch_size");
    if (x) {
        if (srv_json_type(d, x) != SRV_J_NUMARRAY || srv_json_count(d, x) > SRV_BATCH_MAX_PREFERRED)
            return nn_err_set(err, NN_EINVAL,
                              "dynamic_batching.preferred_batch_size: expected an array of up to "
                              "%d batch sizes",
                              SRV_BATCH_MAX_PREFERRED);
        size_t shape[NN_MAX_DIMS], n;
        int ndim;
        int64_t p[SRV_BATCH_MAX_PREFERRED];
        srv_json_numarray(d, x, shape, &ndim, &n);
        if (ndim != 1 ||
            srv_json_read(d, x, SRV_I64, p, n, "dynamic_batching.preferred_batch_size", err))
            return nn_err_set(err, NN_EINVAL,
                              "dynamic_batching.preferred_batch_size: expected an array of "
                              "integers");
        for (size_t i = 0; i < n; i++) {
            if (p[i] < 1 || (size_t)p[i] > c->max_batch_size)
                return nn_err_set(err, NN_EINVAL,
                                  "dynamic_batching.preferred_batch_size[%zu]: %lld is not from 1 "
                                  "to max_batch_size (%zu)",
                                  i, (long long)p[i], c->max_batch_size);
            c->preferred[c->npreferred++] = (size_t)p[i];
        }
    }
    x = srv_json_get(d, dyn, "preserve_ordering");
    if (x && srv_json_type(d, x) != SRV_J_BOOL)
        return nn_err_set(err, NN_EINVAL,
                          "dynamic_batching.preserve_ordering: expected true or false");
    if ((st = parse_policy(d, dyn, "dynamic_batching", c, err)))
        return st;
    x = srv_json_get(d, dyn, "default_queue_policy");
    if (x) {
        if (srv_json_type(d, x) != SRV_J_OBJECT)
            return nn_err_set(err, NN_EINVAL,
                              "dynamic_batching.default_queue_policy: expected an object");
        if ((st = unknown_key(d, x, "dynamic_batching.default_queue_policy", policy_keys, err)) ||
            (st = parse_policy(d, x, "dynamic_batching.default_queue_policy", c, err)))
            return st;
    }
    return NN_OK;
}

static void kstr_u64(struct srv_jw *w, const char *k, uint64_t v)
{
    char b[24];
    snprintf(b, sizeof b, "%llu", (unsigned long long)v);
    srv_jw_kstr(w, k, b);
}

void srv_batch_cfg_write(const struct srv_batch_cfg *c, struct srv_jw *w)
{
    srv_jw_kuint(w, "max_batch_size", c->max_batch_size);
    if (!c->dynamic)
        return;
    srv_jw_key(w, "dynamic_batching");
    srv_jw_obj(w);
    srv_jw_key(w, "preferred_batch_size");
    srv_jw_arr(w);
    for (int i = 0; i < c->npreferred; i++)
        srv_jw_uint(w, c->preferred[i]);
    srv_jw_end(w);
    kstr_u64(w, "max_queue_delay_microseconds", c->max_queue_delay_us);
    srv_jw_kbool(w, "preserve_ordering", 0);
    srv_jw_key(w, "default_queue_policy");
    srv_jw_obj(w);
    srv_jw_kstr(w, "timeout_action", "REJECT");
    kstr_u64(w, "default_timeout_microseconds", c->default_timeout_us);
    srv_jw_kbool(w, "allow_timeout_override", c->allow_timeout_override);
    srv_jw_kuint(w, "max_queue_size", c->max_queue_size);
    srv_jw_end(w);
    srv_jw_end(w);
}

/* ---- statistics ---------------------------------------------------------------------- */
const double srv_batch_hist_le[SRV_BATCH_HIST - 1] = {1, 2, 4, 8, 16, 32, 64, 128, 256};
const double srv_queue_hist_le[SRV_QUEUE_HIST - 1] = {0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005,
                                                      0.01,   0.025,   0.05,   0.1,   1};

void srv_batch_stats_init(struct srv_batch_stats *s)
{
    memset(s, 0, sizeof *s);
    pthread_mutex_init(&s->lock, NULL);
}

void srv_batch_stats_destroy(struct srv_batch_stats *s)
{
    pthread_mutex_destroy(&s->lock);
    free(s->sizes);
}

static int bucket(const double *le, int n, double v)
{
    int i = 0;
    while (i < n && v > le[i])
        i++;
    return i;
}

void srv_batch_stats_exec(struct srv_batch_stats *s, size_t rows, uint64_t input_ns,
                          uint64_t infer_ns, uint64_t output_ns)
{
    if (!s)
        return;
    atomic_fetch_add(&s->executions, 1);
    atomic_fetch_add(&s->size_hist[bucket(srv_batch_hist_le, SRV_BATCH_HIST - 1, (double)rows)], 1);
    atomic_fetch_add(&s->size_sum, rows);
    pthread_mutex_lock(&s->lock);
    int i = 0;
    while (i < s->nsizes && s->sizes[i].batch_size < rows)
        i++;
    if (i == s->nsizes || s->sizes[i].batch_size != rows) {
        if (s->nsizes == s->capsizes) {
            int ncap = s->capsizes ? 2 * s->capsizes : 8;
            struct srv_batch_size_stat *ns = realloc(s->sizes, (size_t)ncap * sizeof *ns);
            if (!ns) { /* the histogram above still counts it */
                pthread_mutex_unlock(&s->lock);
                return;
            }
            s->sizes = ns;
            s->capsizes = ncap;
        }
        memmove(&s->sizes[i + 1], &s->sizes[i], (size_t)(s->nsizes - i) * sizeof *s->sizes);
        s->sizes[i] = (struct srv_batch_size_stat){.batch_size = rows};
        s->nsizes++;
    }
    s->sizes[i].count++;
    s->sizes[i].input_ns += input_ns;
    s->sizes[i].infer_ns += infer_ns;
    s->sizes[i].output_ns += output_ns;
    pthread_mutex_unlock(&s->lock);
}

static void stats_queued(struct srv_batch_stats *s, uint64_t ns)
{
    if (!s)
        return;
    atomic_fetch_add(
        &s->queue_hist[bucket(srv_queue_hist_le, SRV_QUEUE_HIST - 1, (double)ns * 1e-9)], 1);
    atomic_fetch_add(&s->queue_sum_ns, ns);
}

void srv_batch_stats_foreach(const struct srv_batch_stats *cs,
                             void (*fn)(void *ctx, const struct srv_batch_size_stat *b), void *ctx)
{
    struct srv_batch_stats *s = (struct srv_batch_stats *)cs; /* the lock is not the data */
    pthread_mutex_lock(&s->lock);
    for (int i = 0; i < s->nsizes; i++)
        fn(ctx, &s->sizes[i]);
    pthread_mutex_unlock(&s->lock);
}

enum nn_status srv_batch_check_rows(const struct srv_batch_cfg *c, const size_t *shape, int ndim,
                                    const char *where, struct nn_err *err)
{
    if (c->max_batch_size && ndim >= 2 && shape[0] > c->max_batch_size)
        return nn_err_set(err, NN_EINVAL,
                          "%s: a batch of %zu rows is over the model's max_batch_size (%zu); "
                          "send at most %zu rows a request",
                          where, shape[0], c->max_batch_size, c->max_batch_size);
    return NN_OK;
}

/* ---- queues ------------------------------------------------------------------------- */
struct srv_batcher {
    const struct nn_net *net;
    struct srv_batch_cfg cfg;
    /* under the engine's lock */
    struct srv_batch_job *head, *tail;
    size_t queued;
    int active;               /* on the engine's list of queues with jobs */
    struct srv_batcher *next; /* that list */
};

struct srv_batcher *srv_batcher_new(const struct nn_net *net, const struct srv_batch_cfg *c)
{
    struct srv_batcher *b = calloc(1, sizeof *b);
    if (b) {
        b->net = net;
        b->cfg = *c;
    }
    return b;
}

void srv_batcher_free(struct srv_batcher *b) { free(b); }

static int first_dim_softmax(const struct nn_net *net, int ndim)
{
    for (int i = 0; i < net->nlayers; i++) {
        const struct nn_layer *l = &net->layers[i];
        if ((l->kind == NN_SOFTMAX || l->kind == NN_LOG_SOFTMAX) &&
            (l->dim < 0 ? l->dim + ndim : l->dim) == 0)
            return 1;
    }
    return 0;
}

int srv_batch_fits(const struct srv_batcher *b, const size_t *shape, int ndim)
{
    return b && b->cfg.dynamic && ndim >= 2 && shape[0] >= 1 && shape[0] <= b->cfg.max_batch_size &&
           !first_dim_softmax(b->net, ndim);
}

/* Two jobs can share a batch: the same rank and the same dimensions after the first. */
static int same_rows(const struct srv_batch_job *a, const struct srv_batch_job *b)
{
    return a->ndim == b->ndim &&
           !memcmp(a->shape + 1, b->shape + 1, (size_t)(a->ndim - 1) * sizeof *a->shape);
}

/* ---- the engine ------------------------------------------------------------------------ */
struct srv_engine {
    pthread_mutex_t lock;
    pthread_cond_t cond;        /* a job was queued, or stop */
    struct srv_batcher *active; /* queues with jobs */
    int stopping;
    int nworkers, busy; /* busy: running a batch */
    pthread_t *threads;
    size_t max_elems, max_ws_bytes;
    const atomic_int *cancel;
};

static void queue_remove(struct srv_engine *e, struct srv_batcher *b, struct srv_batch_job *prev,
                         struct srv_batch_job *j)
{
    if (prev)
        prev->next = j->next;
    else
        b->head = j->next;
    if (b->tail == j)
        b->tail = prev;
    j->next = NULL;
    b->queued--;
    if (!b->head && b->active) { /* off the active list */
        struct srv_batcher **pp = &e->active;
        while (*pp != b)
            pp = &(*pp)->next;
        *pp = b->next;
        b->active = 0;
        b->next = NULL;
    }
}

/* Moves jobs past their deadline from every queue to *expired. Returns the earliest
 * deadline still pending (UINT64_MAX none). Under the lock. */
static uint64_t take_expired(struct srv_engine *e, uint64_t now, struct srv_batch_job **expired)
{
    uint64_t next = UINT64_MAX;
    for (struct srv_batcher *b = e->active, *bn; b; b = bn) {
        bn = b->next; /* queue_remove may unlink b */
        for (struct srv_batch_job *j = b->head, *prev = NULL, *jn; j; j = jn) {
            jn = j->next;
            if (j->deadline && j->deadline <= now) {
                queue_remove(e, b, prev, j);
                j->next = *expired;
                *expired = j;
            } else {
                if (j->deadline && j->deadline < next)
                    next = j->deadline;
                prev = j;
            }
        }
    }
    return next;
}

/* The batch led by `lead` (the oldest job of its shape): the rows of that shape queued
 * (*queued_rows, those that fit), *ready when it should run now, else *wake is when it
 * will (lead's delay); returns how many rows it may take. Under the lock. */
static size_t batch_target(const struct srv_batcher *b, const struct srv_batch_job *lead,
                           uint64_t now, int *ready, uint64_t *wake, size_t *queued_rows)
{
    const struct srv_batch_cfg *c = &b->cfg;
    size_t rows = 0;
    int blocked = 0; /* a job of this shape did not fit: the batch cannot grow */
    for (const struct srv_batch_job *j = lead; j; j = j->next) {
        if (!same_rows(j, lead))
            continue;
        if (rows + j->shape[0] > c->max_batch_size) {
            blocked = 1;
            break;
        }
        rows += j->shape[0];
    }
    uint64_t due = lead->t_queued + c->max_queue_delay_us * 1000;
    size_t pref = 0;
    for (int i = 0; i < c->npreferred; i++)
        if (c->preferred[i] <= rows && c->preferred[i] > pref)
            pref = c->preferred[i];
    *ready = rows >= c->max_batch_size || blocked || pref || now >= due;
    *wake = due;
    *queued_rows = rows;
    if (pref && !blocked && rows < c->max_batch_size && now < due)
        return pref; /* a preferred size reached before the delay: take that many */
    return c->max_batch_size;
}

/* Whether j is the oldest queued job of its shape. */
static int leads(const struct srv_batcher *b, const struct srv_batch_job *j)
{
    for (const struct srv_batch_job *k = b->head; k != j; k = k->next)
        if (same_rows(k, j))
            return 0;
    return 1;
}

/* Takes lead and the later jobs of its shape, in order, while they fit in limit rows
 * (lead always: limit is at least its rows). Under the lock. */
static struct srv_batch_job *take_batch(struct srv_engine *e, struct srv_batcher *b,
                                        const struct srv_batch_job *lead, size_t limit,
                                        size_t *rows)
{
    struct srv_batch_job *out = NULL, **tail = &out, *prev = NULL;
    *rows = 0;
    for (struct srv_batch_job *j = b->head, *jn; j; j = jn) {
        jn = j->next;
        if (j == lead)
            break;
        prev = j;
    }
    for (struct srv_batch_job *j = prev ? prev->next : b->head, *jn; j; j = jn) {
        jn = j->next;
        if (!same_rows(j, lead)) {
            prev = j;
            continue;
        }
        if (*rows + j->shape[0] > limit)
            break;
        *rows += j->shape[0];
        queue_remove(e, b, prev, j);
        *tail = j;
        tail = &j->next;
    }
    return out;
}

static void finish_job(struct srv_batch_job *j, enum nn_status st, const struct nn_err *err)
{
    j->st = st;
    if (st && err)
        j->err = *err;
    j->t_ended = srv_now_ns();
    j->done(j); /* the job may be gone after this */
}

/* Answers every job of list: past its timeout (timeout), or cut by the stop. */
static void answer_all(struct srv_batch_job *list, int timeout)
{
    while (list) {
        struct srv_batch_job *j = list;
        list = j->next;
        struct nn_err err;
        if (timeout) {
            nn_err_set(&err, NN_EUNAVAILABLE,
                       "request timeout expired: still queued after its timeout of %llu us (the "
                       "request's \"timeout\" parameter or the model's "
                       "default_timeout_microseconds); retry later",
                       (unsigned long long)j->timeout_eff_us);
            if (j->stats)
                atomic_fetch_add(&j->stats->rejected_timeout, 1);
        } else {
            nn_err_set(&err, NN_ECANCELED, "queued %.0f ms for a batch when the drain ended",
                       (double)(srv_now_ns() - j->t_queued) / 1e6);
        }
        finish_job(j, timeout ? NN_EUNAVAILABLE : NN_ECANCELED, &err);
    }
}

/* One pass over rows: plan, workspace, run. */
static enum nn_status plan_ws(const struct srv_engine *e, const struct nn_net *net,
                              const struct srv_batch_job *j, size_t rows, struct nn_plan *plan,
                              struct nn_ws *ws, struct nn_err *err)
{
    size_t shape[NN_MAX_DIMS];
    memcpy(shape, j->shape, sizeof shape);
    shape[0] = rows;
    memset(plan, 0, sizeof *plan);
    enum nn_status st = nn_net_check(net, shape, j->ndim, 0, e->max_elems, plan, err);
    if (!st && e->max_ws_bytes && plan->ws_bytes > e->max_ws_bytes)
        st = nn_err_set(err, NN_ETOOBIG, "batch workspace over max_workspace_bytes");
    if (!st && !(st = nn_ws_init(ws, plan, err))) {
        ws->cancel = e->cancel;
        return NN_OK;
    }
    nn_plan_free(plan);
    return st;
}

static size_t row_bytes(const struct nn_tensor *t)
{
    return t->shape[0] ? t->numel / t->shape[0] * nn_dtype_size(t->dtype) : 0;
}

/* A job alone (a batch that failed on a value is rerun this way). */
static void run_alone(const struct srv_engine *e, const struct nn_net *net, struct srv_batch_job *j)
{
    struct nn_plan plan;
    struct nn_ws ws;
    struct nn_err err;
    uint64_t t0 = srv_now_ns();
    enum nn_status st = plan_ws(e, net, j, j->shape[0], &plan, &ws, &err);
    if (!st) {
        memcpy(ws.act[0].data, j->input, ws.act[0].numel * nn_dtype_size(net->dtype));
        uint64_t t1 = srv_now_ns();
        if (!(st = nn_net_run(net, &ws, &err))) {
            uint64_t t2 = srv_now_ns();
            const struct nn_tensor *o = &ws.act[net->nlayers];
            memcpy(j->output, o->data, o->numel * nn_dtype_size(o->dtype));
            j->batch_rows = j->shape[0];
            j->input_ns = t1 - t0;
            j->output_ns = srv_now_ns() - t2;
            srv_batch_stats_exec(j->stats, j->shape[0], t1 - t0, t2 - t1, j->output_ns);
        }
        nn_ws_free(&ws);
        nn_plan_free(&plan);
    }
    j->t_started = t0;
    finish_job(j, st, &err);
}

/* Runs a batch: gathers the jobs' rows into one input, one pass, scatters the output rows
 * back, then answers every job. */
static void run_batch(const struct srv_engine *e, const struct nn_net *net,
                      struct srv_batch_job *list, size_t rows)
{
    uint64_t t0 = srv_now_ns();
    for (struct srv_batch_job *j = list; j; j = j->next) {
        j->t_started = t0;
        stats_queued(j->stats, t0 - j->t_queued);
    }
    struct nn_plan plan;
    struct nn_ws ws;
    struct nn_err err;
    enum nn_status st = plan_ws(e, net, list, rows, &plan, &ws, &err);
    if (st == NN_ETOOBIG) { /* over a cap the requests were each under */
        for (struct srv_batch_job *j = list, *jn; j; j = jn) {
            jn = j->next;
            run_alone(e, net, j);
        }
        return;
    }
    uint64_t t1 = t0, t2 = t0, t3 = t0;
    if (!st) {
        size_t in_row = row_bytes(&ws.act[0]), out_row = row_bytes(&ws.act[net->nlayers]);
        char *in = ws.act[0].data;
        for (const struct srv_batch_job *j = list; j; j = j->next) {
            memcpy(in, j->input, j->shape[0] * in_row);
            in += j->shape[0] * in_row;
        }
        t1 = srv_now_ns();
        st = nn_net_run(net, &ws, &err);
        t2 = srv_now_ns();
        if (st == NN_EINVAL || st == NN_ENONFINITE) { /* one request's values: find whose */
            nn_ws_free(&ws);
            nn_plan_free(&plan);
            for (struct srv_batch_job *j = list, *jn; j; j = jn) {
                jn = j->next;
                run_alone(e, net, j);
            }
            return;
        }
        if (!st) {
            const char *out = ws.act[net->nlayers].data;
            for (struct srv_batch_job *j = list; j; j = j->next) {
                memcpy(j->output, out, j->shape[0] * out_row);
                out += j->shape[0] * out_row;
            }
        }
        t3 = srv_now_ns();
        nn_ws_free(&ws);
        nn_plan_free(&plan);
        if (!st)
            srv_batch_stats_exec(list->stats, rows, t1 - t0, t2 - t1, t3 - t2);
    }
    for (struct srv_batch_job *j = list, *jn; j; j = jn) {
        jn = j->next;
        j->batch_rows = rows;
        j->input_ns = t1 - t0;
        j->output_ns = t3 - t2;
        j->t_ended = t2;
        finish_job(j, st, &err);
    }
}

static void *worker(void *arg)
{
    struct srv_engine *e = arg;
    pthread_mutex_lock(&e->lock);
    for (;;) {
        uint64_t now = srv_now_ns();
        struct srv_batch_job *expired = NULL;
        uint64_t wake = take_expired(e, now, &expired);
        /* The ready batch whose oldest job is oldest, over every queue and shape (a full
         * batch of one shape does not wait behind another shape's delay). */
        struct srv_batcher *pick = NULL;
        const struct srv_batch_job *lead = NULL;
        size_t limit = 0, queued = 0;
        for (struct srv_batcher *b = e->active; b && !e->stopping; b = b->next) {
            for (const struct srv_batch_job *j = b->head; j; j = j->next) {
                if (!leads(b, j))
                    continue;
                int ready;
                uint64_t due;
                size_t q, lim = batch_target(b, j, now, &ready, &due, &q);
                if (ready && (!lead || j->t_queued < lead->t_queued))
                    pick = b, lead = j, limit = lim, queued = q;
                else if (!ready && due < wake)
                    wake = due;
            }
        }
        if (expired) {
            pthread_mutex_unlock(&e->lock);
            answer_all(expired, 1);
            pthread_mutex_lock(&e->lock);
            continue;
        }
        if (pick) {
            /* Idle workers share what is queued: on a CPU two half batches side by side
             * beat one full batch and an idle core (each pass is bound by reading the
             * weights once, whatever its rows). */
            int idle = e->nworkers - e->busy;
            size_t share = idle > 1 ? (queued + (size_t)idle - 1) / (size_t)idle : queued;
            if (share < limit)
                limit = share;
            if (limit < lead->shape[0]) /* a request's rows are never split */
                limit = lead->shape[0];
            size_t rows;
            struct srv_batch_job *list = take_batch(e, pick, lead, limit, &rows);
            const struct nn_net *net = pick->net; /* pick may be freed once its jobs are done */
            if (pick->head)
                pthread_cond_signal(&e->cond); /* the rest for another worker */
            e->busy++;
            pthread_mutex_unlock(&e->lock);
            run_batch(e, net, list, rows);
            pthread_mutex_lock(&e->lock);
            e->busy--;
            continue;
        }
        if (e->stopping)
            break;
        if (wake == UINT64_MAX) {
            pthread_cond_wait(&e->cond, &e->lock);
        } else {
            struct timespec ts = {(time_t)(wake / 1000000000ull), (long)(wake % 1000000000ull)};
            pthread_cond_timedwait(&e->cond, &e->lock, &ts);
        }
    }
    pthread_mutex_unlock(&e->lock);
    return NULL;
}

struct srv_engine *srv_engine_start(int workers, size_t max_elems, size_t max_ws_bytes,
                                    const atomic_int *cancel, struct nn_err *err)
{
    struct srv_engine *e = calloc(1, sizeof *e);
    if (!e || !(e->threads = calloc((size_t)(workers > 0 ? workers : 1), sizeof *e->threads))) {
        free(e);
        nn_err_set(err, NN_ENOMEM, "out of memory for the batch engine");
        return NULL;
    }
    pthread_mutex_init(&e->lock, NULL);
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC); /* srv_now_ns's clock */
    pthread_cond_init(&e->cond, &ca);
    pthread_condattr_destroy(&ca);
    e->max_elems = max_elems;
    e->max_ws_bytes = max_ws_bytes;
    e->cancel = cancel;
    for (int i = 0; i < workers; i++) {
        int rc = pthread_create(&e->threads[i], NULL, worker, e);
        if (rc) {
            nn_err_set(err, NN_ENOMEM, "cannot start batch worker %d: %s", i, strerror(rc));
            srv_engine_free(e);
            return NULL;
        }
        e->nworkers++;
    }
    return e;
}

int srv_engine_workers(const struct srv_engine *e) { return e ? e->nworkers : 0; }

void srv_engine_stop(struct srv_engine *e)
{
    if (!e)
        return;
    pthread_mutex_lock(&e->lock);
    int first = !e->stopping;
    e->stopping = 1;
    struct srv_batch_job *all = NULL;
    while (e->active) {
        struct srv_batcher *b = e->active;
        while (b->head) { /* b leaves the list with its last job */
            struct srv_batch_job *j = b->head;
            queue_remove(e, b, NULL, j);
            j->next = all;
            all = j;
        }
    }
    pthread_cond_broadcast(&e->cond);
    pthread_mutex_unlock(&e->lock);
    answer_all(all, 0);
    if (first)
        for (int i = 0; i < e->nworkers; i++)
            pthread_join(e->threads[i], NULL);
}

void srv_engine_free(struct srv_engine *e)
{
    if (!e)
        return;
    srv_engine_stop(e);
    pthread_cond_destroy(&e->cond);
    pthread_mutex_destroy(&e->lock);
    free(e->threads);
    free(e);
}

enum nn_status srv_batch_submit(struct srv_engine *e, struct srv_batcher *b,
                                struct srv_batch_job *job, struct nn_err *err)
{
    job->t_queued = srv_now_ns();
    uint64_t t = b->cfg.default_timeout_us;
    if (job->timeout_us && b->cfg.allow_timeout_override && (!t || job->timeout_us < t))
        t = job->timeout_us;
    job->timeout_eff_us = t;
    job->deadline = t ? job->t_queued + t * 1000 : 0;
    job->next = NULL;
    pthread_mutex_lock(&e->lock);
    if (e->stopping) {
        pthread_mutex_unlock(&e->lock);
        return nn_err_set(err, NN_EUNAVAILABLE, "draining: this replica is shutting down");
    }
    if (b->cfg.max_queue_size && b->queued >= b->cfg.max_queue_size) {
        pthread_mutex_unlock(&e->lock);
        if (job->stats)
            atomic_fetch_add(&job->stats->rejected_full, 1);
        return nn_err_set(err, NN_EUNAVAILABLE,
                          "queue full: exceeds maximum queue size (%zu requests queued; "
                          "dynamic_batching max_queue_size); retry later",
                          b->cfg.max_queue_size);
    }
    if (b->tail)
        b->tail->next = job;
    else
        b->head = job;
    b->tail = job;
    b->queued++;
    if (!b->active) {
        b->active = 1;
        b->next = e->active;
        e->active = b;
    }
    pthread_cond_signal(&e->cond);
    pthread_mutex_unlock(&e->lock);
    return NN_OK;
}
