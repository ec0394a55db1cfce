/* Dynamic batching's engine without HTTP (server/batch.h): the model file settings, when a
 * batch runs and what it takes, each job's rows against the same rows run alone, queue
 * caps, timeouts, a job whose values fail the pass, and stopping with jobs queued. Jobs are
 * submitted from this thread; their done callbacks post a semaphore. No timing assertions:
 * the delays only decide what may batch, and waits are generous. */
#include <math.h>
#include <pthread.h>
#include <semaphore.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cmocka.h>

#include "core/nn.h"
#include "server/batch.h"
#include "server/json.h"
#include "server/jsonw.h"

/* ---- settings -------------------------------------------------------------------------- */
static enum nn_status t_cfg(const char *text, struct srv_batch_cfg *c, struct nn_err *err)
{
    struct srv_json *d = NULL;
    enum nn_status st = srv_json_parse(text, strlen(text), 0, &d, err);
    if (!st)
        st = srv_batch_cfg_parse(d, srv_json_root(d), c, err);
    srv_json_free(d);
    return st;
}

static void t_cfg_fails(const char *text, const char *msg)
{
    struct srv_batch_cfg c;
    struct nn_err err = {{0}};
    assert_int_equal(t_cfg(text, &c, &err), NN_EINVAL);
    if (!strstr(err.msg, msg))
        fail_msg("\"%s\" lacks \"%s\"", err.msg, msg);
}

static void test_cfg_forms(void **state)
{
    (void)state;
    struct srv_batch_cfg c;
    struct nn_err err;
    assert_int_equal(t_cfg("{\"name\": \"x\"}", &c, &err), NN_OK);
    assert_int_equal(c.dynamic, 0);
    assert_int_equal(c.max_batch_size, 0);
    assert_int_equal(t_cfg("{\"max_batch_size\": 8}", &c, &err), NN_OK);
    assert_int_equal(c.dynamic, 0);
    assert_int_equal(c.max_batch_size, 8);
    /* the flat form */
    assert_int_equal(t_cfg("{\"max_batch_size\": 64, \"dynamic_batching\": "
                           "{\"max_queue_delay_microseconds\": 500, \"preferred_batch_size\": "
                           "[32, 64], \"max_queue_size\": 1024, "
                           "\"default_timeout_microseconds\": 7}}",
                           &c, &err),
                     NN_OK);
    assert_int_equal(c.dynamic, 1);
    assert_int_equal(c.max_queue_delay_us, 500);
    assert_int_equal(c.npreferred, 2);
    assert_int_equal(c.preferred[1], 64);
    assert_int_equal(c.max_queue_size, 1024);
    assert_int_equal(c.default_timeout_us, 7);
    assert_int_equal(c.allow_timeout_override, 1);
    /* Triton's nesting, with protobuf's uint64-as-string */
    assert_int_equal(t_cfg("{\"max_batch_size\": 4, \"dynamic_batching\": "
                           "{\"max_queue_delay_microseconds\": \"100\", \"default_queue_policy\": "
                           "{\"timeout_action\": \"REJECT\", \"default_timeout_microseconds\": "
                           "\"9\", \"allow_timeout_override\": false, \"max_queue_size\": 3}}}",
                           &c, &err),
                     NN_OK);
    assert_int_equal(c.max_queue_delay_us, 100);
    assert_int_equal(c.default_timeout_us, 9);
    assert_int_equal(c.allow_timeout_override, 0);
    assert_int_equal(c.max_queue_size, 3);
    /* what /config writes reads back the same */
    struct srv_jw w;
    srv_jw_init(&w, 256, 0);
    srv_jw_obj(&w);
    srv_batch_cfg_write(&c, &w);
    srv_jw_end(&w);
    size_t len;
    char *text = srv_jw_finish(&w, &len, NULL, NULL);
    struct srv_batch_cfg back;
    assert_int_equal(t_cfg(text, &back, &err), NN_OK);
    assert_memory_equal(&back, &c, sizeof c);
    free(text);
}

static void test_cfg_errors(void **state)
{
    (void)state;
    t_cfg_fails("{\"dynamic_batching\": {}}", "dynamic_batching: needs \"max_batch_size\" > 0");
    t_cfg_fails("{\"max_batch_size\": -1}", "max_batch_size: expected an integer from 0");
    t_cfg_fails("{\"max_batch_size\": 2.5}", "max_batch_size: expected an integer");
    t_cfg_fails("{\"max_batch_size\": 8, \"dynamic_batching\": {\"preferred_batch_size\": [4, 9]}}",
                "dynamic_batching.preferred_batch_size[1]: 9 is not from 1 to max_batch_size (8)");
    t_cfg_fails("{\"max_batch_size\": 8, \"dynamic_batching\": {\"priority_levels\": 2}}",
                "dynamic_batching: unknown or unsupported field \"priority_levels\"");
    t_cfg_fails("{\"max_batch_size\": 8, \"dynamic_batching\": {\"default_queue_policy\": "
                "{\"timeout_action\": \"DELAY\"}}}",
                "timeout_action: only \"REJECT\" is supported");
    t_cfg_fails("{\"max_batch_size\": 8, \"dynamic_batching\": "
                "{\"max_queue_delay_microseconds\": \"soon\"}}",
                "dynamic_batching.max_queue_delay_microseconds: expected an integer");
    t_cfg_fails("{\"max_batch_size\": 8, \"dynamic_batching\": []}",
                "dynamic_batching: expected an object");
}

/* ---- the engine --------------------------------------------------------------------------- */
#define IN 4
#define OUT 3
static float g_w[OUT * IN] = {0.5f, -1, 0.25f, 2, 1, 1, -1, 0.125f, -0.5f, 3, 0.75f, -2};
static float g_b[OUT] = {0.1f, -0.2f, 0.3f};

/* Linear(4 -> 3) + ReLU (plus a softmax over dim when softmax_dim is not 99). */
static void t_net(struct nn_net *net, int softmax_dim)
{
    struct nn_err err;
    assert_int_equal(nn_net_init(net, NN_F32, softmax_dim == 99 ? 2 : 3, &err), NN_OK);
    nn_layer_init(&net->layers[0], NN_LINEAR);
    net->layers[0].weight = (struct nn_tensor){NN_F32, 2, {OUT, IN}, OUT * IN, g_w};
    net->layers[0].bias = (struct nn_tensor){NN_F32, 1, {OUT}, OUT, g_b};
    nn_layer_init(&net->layers[1], NN_RELU);
    if (softmax_dim != 99) {
        nn_layer_init(&net->layers[2], NN_SOFTMAX);
        net->layers[2].dim = softmax_dim;
    }
}

struct t_job {
    struct srv_batch_job j;
    float in[8 * 2 * IN], out[8 * 2 * OUT];
    sem_t *sem;
};

static void t_done(struct srv_batch_job *j)
{
    struct t_job *t = j->ctx;
    sem_post(t->sem);
}

/* A job of rows rows (ndim 2, or ndim 3 with a middle dimension of 2), inputs from seed. */
static void t_job_init(struct t_job *t, sem_t *sem, struct srv_batch_stats *stats, size_t rows,
                       int ndim, int seed)
{
    memset(t, 0, sizeof *t);
    t->sem = sem;
    size_t per = ndim == 3 ? 2 : 1;
    for (size_t i = 0; i < rows * per * IN; i++)
        t->in[i] = (float)((int)((i * 7 + (size_t)seed * 13) % 17) - 8) / 4;
    t->j.input = t->in;
    t->j.output = t->out;
    t->j.ndim = ndim;
    t->j.shape[0] = rows;
    t->j.shape[1] = ndim == 3 ? 2 : IN;
    t->j.shape[2] = IN;
    t->j.stats = stats;
    t->j.done = t_done;
    t->j.ctx = t;
}

/* Waits for n done callbacks (30 s each at most). */
static void t_wait(sem_t *sem, int n)
{
    for (int i = 0; i < n; i++) {
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        ts.tv_sec += 30;
        if (sem_timedwait(sem, &ts) != 0)
            fail_msg("a job was never answered");
    }
}

/* The job's rows against the same rows run alone (gemv vs gemm: allclose). */
static void t_check_alone(const struct nn_net *net, const struct t_job *t)
{
    struct nn_plan plan;
    struct nn_ws ws;
    struct nn_err err;
    assert_int_equal(t->j.st, NN_OK);
    assert_int_equal(nn_net_check(net, t->j.shape, t->j.ndim, 0, 0, &plan, &err), NN_OK);
    assert_int_equal(nn_ws_init(&ws, &plan, &err), NN_OK);
    assert_int_equal(nn_net_forward(net, &ws, t->in, &err), NN_OK);
    const struct nn_tensor *o = &ws.act[net->nlayers];
    for (size_t i = 0; i < o->numel; i++) {
        float want = ((const float *)o->data)[i], got = t->out[i];
        if (!(fabsf(got - want) <= 1e-6f + 1e-5f * fabsf(want)))
            fail_msg("row value %zu: %g, alone %g", i, (double)got, (double)want);
    }
    nn_ws_free(&ws);
    nn_plan_free(&plan);
}

struct t_env {
    struct nn_net net;
    struct srv_batch_cfg cfg;
    struct srv_batcher *b;
    struct srv_engine *e;
    struct srv_batch_stats stats;
    atomic_int cancel;
    sem_t sem;
};

static void t_env_start(struct t_env *v, size_t max_batch, uint64_t delay_us, int workers)
{
    memset(v, 0, sizeof *v);
    t_net(&v->net, 99);
    v->cfg.max_batch_size = max_batch;
    v->cfg.dynamic = 1;
    v->cfg.max_queue_delay_us = delay_us;
    v->cfg.allow_timeout_override = 1;
    srv_batch_stats_init(&v->stats);
    sem_init(&v->sem, 0, 0);
    struct nn_err err;
    assert_non_null(v->b = srv_batcher_new(&v->net, &v->cfg));
    assert_non_null(v->e = srv_engine_start(workers, 0, 0, &v->cancel, &err));
}

static void t_env_stop(struct t_env *v)
{
    srv_engine_free(v->e);
    srv_batcher_free(v->b);
    srv_batch_stats_destroy(&v->stats);
    sem_destroy(&v->sem);
    nn_net_free(&v->net);
}

struct t_size_ctx {
    size_t sizes[16];
    unsigned long long counts[16];
    int n;
};
static void t_size_visit(void *ctx, const struct srv_batch_size_stat *b)
{
    struct t_size_ctx *c = ctx;
    if (c->n < 16) {
        c->sizes[c->n] = b->batch_size;
        c->counts[c->n++] = b->count;
    }
}

/* A full batch runs at once and each job gets its own rows; the stats say one batch of 4. */
static void test_full_batch(void **state)
{
    (void)state;
    struct t_env v;
    t_env_start(&v, 4, 30000000, 1); /* a 30 s delay: only a full batch runs */
    struct t_job jobs[4];
    struct nn_err err;
    for (int i = 0; i < 4; i++) {
        t_job_init(&jobs[i], &v.sem, &v.stats, 1, 2, i);
        assert_int_equal(srv_batch_submit(v.e, v.b, &jobs[i].j, &err), NN_OK);
    }
    t_wait(&v.sem, 4);
    for (int i = 0; i < 4; i++) {
        assert_int_equal(jobs[i].j.batch_rows, 4);
        t_check_alone(&v.net, &jobs[i]);
    }
    struct t_size_ctx c = {0};
    srv_batch_stats_foreach(&v.stats, t_size_visit, &c);
    assert_int_equal(c.n, 1);
    assert_int_equal(c.sizes[0], 4);
    assert_int_equal(c.counts[0], 1);
    assert_int_equal(atomic_load(&v.stats.executions), 1);
    t_env_stop(&v);
}

/* Under max_batch_size the queue waits out the delay, then runs what it has as one batch;
 * multi-row jobs count their rows. */
static void test_delay_then_partial(void **state)
{
    (void)state;
    struct t_env v;
    t_env_start(&v, 8, 1000000, 1); /* 1 s: the three submits below land well within */
    struct t_job jobs[3];
    struct nn_err err;
    size_t rows[3] = {1, 3, 2};
    for (int i = 0; i < 3; i++) {
        t_job_init(&jobs[i], &v.sem, &v.stats, rows[i], 2, 10 + i);
        assert_int_equal(srv_batch_submit(v.e, v.b, &jobs[i].j, &err), NN_OK);
    }
    t_wait(&v.sem, 3);
    for (int i = 0; i < 3; i++) {
        assert_int_equal(jobs[i].j.batch_rows, 6);
        assert_true(jobs[i].j.t_started >= jobs[i].j.t_queued);
        t_check_alone(&v.net, &jobs[i]);
    }
    t_env_stop(&v);
}

/* A preferred size runs as soon as it is reached, without the delay; the rest waits. */
static void test_preferred(void **state)
{
    (void)state;
    struct t_env v;
    t_env_start(&v, 8, 30000000, 1);
    v.cfg.npreferred = 1;
    v.cfg.preferred[0] = 2;
    srv_batcher_free(v.b);
    assert_non_null(v.b = srv_batcher_new(&v.net, &v.cfg));
    struct t_job jobs[2];
    struct nn_err err;
    for (int i = 0; i < 2; i++) {
        t_job_init(&jobs[i], &v.sem, &v.stats, 1, 2, 20 + i);
        assert_int_equal(srv_batch_submit(v.e, v.b, &jobs[i].j, &err), NN_OK);
    }
    t_wait(&v.sem, 2);
    assert_int_equal(jobs[0].j.batch_rows, 2);
    t_check_alone(&v.net, &jobs[1]);
    t_env_stop(&v);
}

/* Jobs of different shapes never share a batch. */
static void test_shapes_apart(void **state)
{
    (void)state;
    struct t_env v;
    t_env_start(&v, 2, 30000000, 1);
    struct t_job jobs[4];
    struct nn_err err;
    int ndims[4] = {2, 3, 2, 3};
    for (int i = 0; i < 4; i++) {
        t_job_init(&jobs[i], &v.sem, &v.stats, 1, ndims[i], 30 + i);
        assert_int_equal(srv_batch_submit(v.e, v.b, &jobs[i].j, &err), NN_OK);
    }
    t_wait(&v.sem, 4);
    for (int i = 0; i < 4; i++) {
        assert_int_equal(jobs[i].j.batch_rows, 2);
        t_check_alone(&v.net, &jobs[i]);
    }
    t_env_stop(&v);
}

/* Idle workers share the queue, but never split a request: a 2-row job with two idle
 * workers runs whole. */
static void test_share_keeps_requests_whole(void **state)
{
    (void)state;
    struct t_env v;
    t_env_start(&v, 8, 0, 2); /* no delay: ready at once, both workers idle */
    struct t_job jobs[3];
    struct nn_err err;
    size_t rows[3] = {2, 3, 1};
    for (int i = 0; i < 3; i++) {
        t_job_init(&jobs[i], &v.sem, &v.stats, rows[i], 2, 70 + i);
        assert_int_equal(srv_batch_submit(v.e, v.b, &jobs[i].j, &err), NN_OK);
    }
    t_wait(&v.sem, 3);
    for (int i = 0; i < 3; i++) {
        assert_true(jobs[i].j.batch_rows >= rows[i]);
        t_check_alone(&v.net, &jobs[i]);
    }
    t_env_stop(&v);
}

/* A full batch of one shape runs at once though an older job of another shape still waits
 * out its delay; the stop answers that one. */
static void test_full_shape_not_blocked(void **state)
{
    (void)state;
    struct t_env v;
    t_env_start(&v, 2, 60000000, 1);
    struct t_job old, a, b;
    struct nn_err err;
    t_job_init(&old, &v.sem, &v.stats, 1, 3, 80);
    t_job_init(&a, &v.sem, &v.stats, 1, 2, 81);
    t_job_init(&b, &v.sem, &v.stats, 1, 2, 82);
    assert_int_equal(srv_batch_submit(v.e, v.b, &old.j, &err), NN_OK);
    assert_int_equal(srv_batch_submit(v.e, v.b, &a.j, &err), NN_OK);
    assert_int_equal(srv_batch_submit(v.e, v.b, &b.j, &err), NN_OK);
    t_wait(&v.sem, 2); /* a and b, not after the 60 s delay */
    assert_int_equal(a.j.batch_rows, 2);
    t_check_alone(&v.net, &a);
    t_check_alone(&v.net, &b);
    srv_engine_stop(v.e);
    t_wait(&v.sem, 1);
    assert_int_equal(old.j.st, NN_ECANCELED);
    t_env_stop(&v);
}

/* max_queue_size: one more is refused (not queued, done never called) and counted; the
 * stop answers the queued ones 503 (NN_ECANCELED), none left hanging. */
static void test_queue_full_and_stop(void **state)
{
    (void)state;
    struct t_env v;
    t_env_start(&v, 8, 30000000, 2);
    v.cfg.max_queue_size = 2;
    srv_batcher_free(v.b);
    assert_non_null(v.b = srv_batcher_new(&v.net, &v.cfg));
    struct t_job jobs[3];
    struct nn_err err;
    for (int i = 0; i < 3; i++)
        t_job_init(&jobs[i], &v.sem, &v.stats, 1, 2, 40 + i);
    assert_int_equal(srv_batch_submit(v.e, v.b, &jobs[0].j, &err), NN_OK);
    assert_int_equal(srv_batch_submit(v.e, v.b, &jobs[1].j, &err), NN_OK);
    assert_int_equal(srv_batch_submit(v.e, v.b, &jobs[2].j, &err), NN_EUNAVAILABLE);
    assert_non_null(strstr(err.msg, "exceeds maximum queue size (2 requests queued"));
    assert_int_equal(atomic_load(&v.stats.rejected_full), 1);
    srv_engine_stop(v.e);
    t_wait(&v.sem, 2);
    assert_int_equal(srv_batch_submit(v.e, v.b, &jobs[2].j, &err), NN_EUNAVAILABLE);
    assert_non_null(strstr(err.msg, "draining"));
    assert_int_equal(jobs[0].j.st, NN_ECANCELED);
    assert_int_equal(jobs[1].j.st, NN_ECANCELED);
    assert_int_equal(atomic_load(&v.stats.executions), 0);
    t_env_stop(&v);
}

/* A job past its timeout is answered NN_EUNAVAILABLE and never run; a job's own timeout
 * shortens the default, never lengthens it. */
static void test_timeouts(void **state)
{
    (void)state;
    struct t_env v;
    t_env_start(&v, 8, 30000000, 1);
    v.cfg.default_timeout_us = 20000;
    srv_batcher_free(v.b);
    assert_non_null(v.b = srv_batcher_new(&v.net, &v.cfg));
    struct t_job jobs[2];
    struct nn_err err;
    t_job_init(&jobs[0], &v.sem, &v.stats, 1, 2, 50);
    t_job_init(&jobs[1], &v.sem, &v.stats, 1, 2, 51);
    jobs[0].j.timeout_us = 1000;     /* shorter: kept */
    jobs[1].j.timeout_us = 60000000; /* longer than the default: the default holds */
    assert_int_equal(srv_batch_submit(v.e, v.b, &jobs[0].j, &err), NN_OK);
    assert_int_equal(srv_batch_submit(v.e, v.b, &jobs[1].j, &err), NN_OK);
    t_wait(&v.sem, 2);
    for (int i = 0; i < 2; i++) {
        assert_int_equal(jobs[i].j.st, NN_EUNAVAILABLE);
        assert_non_null(strstr(jobs[i].j.err.msg, "request timeout expired"));
    }
    assert_non_null(strstr(jobs[0].j.err.msg, "timeout of 1000 us"));
    assert_non_null(strstr(jobs[1].j.err.msg, "timeout of 20000 us"));
    assert_int_equal(atomic_load(&v.stats.rejected_timeout), 2);
    assert_int_equal(atomic_load(&v.stats.executions), 0);
    t_env_stop(&v);
}

/* A job whose input is not finite fails the batch's pass; the batch is rerun a job at a
 * time, so the others get their rows and that one the error it would get alone. */
static void test_bad_values_rerun_alone(void **state)
{
    (void)state;
    struct t_env v;
    t_env_start(&v, 3, 30000000, 1);
    struct t_job jobs[3];
    struct nn_err err;
    for (int i = 0; i < 3; i++)
        t_job_init(&jobs[i], &v.sem, &v.stats, 1, 2, 60 + i);
    jobs[1].in[2] = INFINITY;
    for (int i = 0; i < 3; i++)
        assert_int_equal(srv_batch_submit(v.e, v.b, &jobs[i].j, &err), NN_OK);
    t_wait(&v.sem, 3);
    t_check_alone(&v.net, &jobs[0]);
    t_check_alone(&v.net, &jobs[2]);
    assert_int_equal(jobs[0].j.batch_rows, 1);
    assert_int_equal(jobs[1].j.st, NN_EINVAL);
    t_env_stop(&v);
}

/* Who may batch: rank >= 2, rows within max_batch_size, no softmax over the first
 * dimension; and Triton's row cap for any model with max_batch_size. */
static void test_fits(void **state)
{
    (void)state;
    struct srv_batch_cfg c = {.max_batch_size = 4, .dynamic = 1};
    struct nn_net plain, sm0, sm1;
    t_net(&plain, 99);
    t_net(&sm0, 0);
    t_net(&sm1, -1);
    struct srv_batcher *b = srv_batcher_new(&plain, &c), *b0 = srv_batcher_new(&sm0, &c),
                       *b1 = srv_batcher_new(&sm1, &c);
    size_t two[2] = {2, IN}, five[2] = {5, IN}, one[1] = {IN}, three[3] = {1, 2, IN};
    assert_true(srv_batch_fits(b, two, 2));
    assert_true(srv_batch_fits(b, three, 3));
    assert_false(srv_batch_fits(b, one, 1));
    assert_false(srv_batch_fits(b, five, 2));
    assert_false(srv_batch_fits(b0, two, 2));
    assert_true(srv_batch_fits(b1, two, 2));
    assert_false(srv_batch_fits(NULL, two, 2));
    struct nn_err err;
    assert_int_equal(srv_batch_check_rows(&c, two, 2, "input", &err), NN_OK);
    assert_int_equal(srv_batch_check_rows(&c, one, 1, "input", &err), NN_OK);
    assert_int_equal(srv_batch_check_rows(&c, five, 2, "input", &err), NN_EINVAL);
    assert_string_equal(err.msg, "input: a batch of 5 rows is over the model's max_batch_size "
                                 "(4); send at most 4 rows a request");
    srv_batcher_free(b);
    srv_batcher_free(b0);
    srv_batcher_free(b1);
    nn_net_free(&plain);
    nn_net_free(&sm0);
    nn_net_free(&sm1);
}

/* Many jobs from two submitting threads through two workers: every job answered once with
 * its own rows. */
struct t_many {
    struct t_env *v;
    struct t_job *jobs;
    int n, base;
};
static void *t_submit_many(void *arg)
{
    struct t_many *m = arg;
    struct nn_err err;
    for (int i = 0; i < m->n; i++) {
        t_job_init(&m->jobs[i], &m->v->sem, &m->v->stats, 1 + (size_t)(i % 3), 2, m->base + i);
        if (srv_batch_submit(m->v->e, m->v->b, &m->jobs[i].j, &err) != NN_OK)
            return (void *)1;
    }
    return NULL;
}

static void test_many_concurrent(void **state)
{
    (void)state;
    enum { PER = 300 };
    struct t_env v;
    t_env_start(&v, 8, 100, 2);
    static struct t_job a[PER], b[PER];
    struct t_many ma = {&v, a, PER, 1000}, mb = {&v, b, PER, 5000};
    pthread_t ta, tb;
    pthread_create(&ta, NULL, t_submit_many, &ma);
    pthread_create(&tb, NULL, t_submit_many, &mb);
    void *ra, *rb;
    pthread_join(ta, &ra);
    pthread_join(tb, &rb);
    assert_null(ra);
    assert_null(rb);
    t_wait(&v.sem, 2 * PER);
    for (int i = 0; i < PER; i++) {
        t_check_alone(&v.net, &a[i]);
        t_check_alone(&v.net, &b[i]);
    }
    assert_true(atomic_load(&v.stats.executions) >= 1);
    t_env_stop(&v);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_cfg_forms),
        cmocka_unit_test(test_cfg_errors),
        cmocka_unit_test(test_full_batch),
        cmocka_unit_test(test_delay_then_partial),
        cmocka_unit_test(test_preferred),
        cmocka_unit_test(test_shapes_apart),
        cmocka_unit_test(test_share_keeps_requests_whole),
        cmocka_unit_test(test_full_shape_not_blocked),
        cmocka_unit_test(test_queue_full_and_stop),
        cmocka_unit_test(test_timeouts),
        cmocka_unit_test(test_bad_values_rerun_alone),
        cmocka_unit_test(test_fits),
        cmocka_unit_test(test_many_concurrent),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
