/* Out of memory anywhere while a request is handled gives a 503 with {"error": ...}, never a
 * 200 with a field missing, a crash or a leak: every handler is run in-process with an
 * allocator that fails its Nth call, for every N until a run needs no more allocations
 * than it was allowed, and each reply must be either byte-identical to the reply of a run
 * without failures or a 503 error. (Replaces malloc and friends, so it does not run in the
 * ASan build, whose allocator cannot be replaced.) */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "server/http.h"
#include "server/log.h"
#include "server/metrics.h"
#include "server/models.h"
#include "server/srv.h"

#if defined(__SANITIZE_ADDRESS__)
#define HAVE_FAILING_MALLOC 0
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define HAVE_FAILING_MALLOC 0
#endif
#endif
#ifndef HAVE_FAILING_MALLOC
#define HAVE_FAILING_MALLOC 1
#endif

#if HAVE_FAILING_MALLOC
/* glibc lets a program replace its allocator; these forward to it and fail the Nth call
 * while armed. */
extern void *__libc_malloc(size_t);
extern void *__libc_calloc(size_t, size_t);
extern void *__libc_realloc(void *, size_t);
extern void *__libc_memalign(size_t, size_t);
extern void __libc_free(void *);

static long fail_at;  /* 0: disarmed; else the allocation number that fails */
static long nalloc;   /* allocations since armed */
static int any_failed; /* the armed run had an allocation failed */

static int should_fail(void)
{
    if (!fail_at)
        return 0;
    if (++nalloc == fail_at) {
        any_failed = 1;
        return 1;
    }
    return 0;
}

void *malloc(size_t n) { return should_fail() ? NULL : __libc_malloc(n); }
void *calloc(size_t a, size_t b) { return should_fail() ? NULL : __libc_calloc(a, b); }
void *realloc(void *p, size_t n) { return should_fail() ? NULL : __libc_realloc(p, n); }
void free(void *p) { __libc_free(p); }
int posix_memalign(void **out, size_t align, size_t n)
{
    if (should_fail())
        return 12; /* ENOMEM */
    void *p = __libc_memalign(align, n);
    if (!p)
        return 12;
    *out = p;
    return 0;
}
void *aligned_alloc(size_t align, size_t n) { return should_fail() ? NULL : __libc_memalign(align, n); }
#endif

static struct srv srv;

struct oom_case {
    const char *name;
    enum srv_route route;
    const char *model; /* {name} */
    const char *body;  /* NULL: no body */
};

static const struct oom_case cases[] = {
    {"forward_layers_loss_grads_stats", SRV_R_FORWARD, NULL,
     "{\"input\": [[1, 2], [3, -4]], \"layers\": [{\"type\": \"linear\", \"weight\": [[1, 0], [0, "
     "1], [1, 1]], \"bias\": [0, 0, -5]}, {\"type\": \"relu\"}], \"loss\": {\"type\": \"mse\", "
     "\"target\": [[0, 2, 1], [1, 1, 1]]}, \"clip_grad_norm\": 0.5, \"stats\": true}"},
    {"forward_model", SRV_R_FORWARD, NULL,
     "{\"model\": \"simple_nn\", \"input\": {\"shape\": [1, 10], \"data\": [1, 2, 3, 4, 5, 6, 7, "
     "8, 9, 10]}}"},
    {"infer_json_gradients_stats", SRV_R_INFER, "simple_nn",
     "{\"id\": \"7\", \"parameters\": {\"loss\": \"cross_entropy\", \"stats\": true}, \"inputs\": "
     "[{\"name\": \"input\", \"shape\": [2, 10], \"datatype\": \"FP32\", \"data\": [1, 2, 3, 4, 5, "
     "6, 7, 8, 9, 10, 0, 1, 0, 1, 0, 1, 0, 1, 0, 1]}, {\"name\": \"target\", \"shape\": [2], "
     "\"datatype\": \"INT64\", \"data\": [0, 3]}]}"},
    {"infer_binary_output", SRV_R_INFER, "simple_nn",
     "{\"parameters\": {\"binary_data_output\": true}, \"inputs\": [{\"name\": \"input\", "
     "\"shape\": [1, 10], \"datatype\": \"FP64\", \"data\": [1, 2, 3, 4, 5, 6, 7, 8, 9, 10]}]}"},
    {"model_meta", SRV_R_MODEL_META, "mnist_mlp", NULL},
    {"model_stats", SRV_R_ALL_STATS, NULL, NULL},
    {"metrics", SRV_R_METRICS, NULL, NULL},
    {"server_meta", SRV_R_V2_META, NULL, NULL},
};

/* Runs the case's handler; with fail_n > 0 its fail_n-th allocation fails. */
static __attribute__((unused)) void run(const struct oom_case *c, struct srv_reply *rep,
                                        long fail_n)
{
    struct srv_req req = {0};
    req.srv = &srv;
    req.route = c->route;
    req.method = c->body ? "POST" : "GET";
    if (c->model)
        snprintf(req.name, sizeof req.name, "%s", c->model);
    if (c->body) {
        req.len = strlen(c->body);
        req.body = strdup(c->body);
        assert_non_null(req.body);
    }
    memset(rep, 0, sizeof *rep);
#if HAVE_FAILING_MALLOC
    nalloc = 0, any_failed = 0, fail_at = fail_n;
#endif
    srv_run_handler(&req, rep);
#if HAVE_FAILING_MALLOC
    fail_at = 0;
#endif
    free(req.body);
}

static void one_case(void **state)
{
#if !HAVE_FAILING_MALLOC
    (void)state;
    skip();
#else
    const struct oom_case *c = *state;
    struct srv_reply ref;
    run(c, &ref, 0); /* also warms OpenBLAS up: its buffers are not part of a request */
    assert_int_equal(ref.status, 200);
    assert_non_null(ref.body);
    long n = 1, failures = 0, ok = 0;
    for (;; n++) {
        struct srv_reply rep;
        run(c, &rep, n);
        if (!any_failed) { /* the whole request needed fewer than n allocations */
            assert_int_equal(rep.status, 200);
            free(rep.body);
            break;
        }
        if (rep.status == 200) {
            /* an allocation failed and something else was used: the reply must be whole */
            if (rep.len != ref.len || memcmp(rep.body, ref.body, ref.len))
                fail_msg("%s: allocation %ld failed and the 200 reply differs:\n%.*s\nvs\n%.*s",
                         c->name, n, (int)(rep.len < 400 ? rep.len : 400), rep.body,
                         (int)(ref.len < 400 ? ref.len : 400), ref.body);
            ok++;
        } else {
            if (rep.status != 503)
                fail_msg("%s: allocation %ld failed: status %u, body %s", c->name, n, rep.status,
                         rep.body ? rep.body : "(none)");
            /* a NULL body is the static out-of-memory reply queue_reply sends */
            if (rep.body && strncmp(rep.body, "{\"error\":", 9))
                fail_msg("%s: allocation %ld failed: 503 without an error body: %s", c->name, n,
                         rep.body);
            failures++;
        }
        free(rep.body);
    }
    printf("  %s: %ld allocations, %ld failed runs answered 503, %ld answered a whole 200\n",
           c->name, n - 1, failures, ok);
    free(ref.body);
#endif
}

static int setup(void **state)
{
    (void)state;
    cfg_defaults(&srv.cfg);
    srv_log_init(CFG_LOG_ERROR, CFG_LOG_TEXT, 0);
    srv.models = srv_models_new("config/models", 0);
    struct nn_err err;
    if (srv_models_load_all(srv.models, 1, &err)) {
        fprintf(stderr, "%s\n", err.msg);
        return -1;
    }
    srv.metrics = srv_metrics_new();
    atomic_store(&srv.ready, 1);
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    srv_models_free(srv.models);
    srv_metrics_free(srv.metrics);
    cfg_free(&srv.cfg);
    return 0;
}

int main(void)
{
    enum { N = sizeof cases / sizeof cases[0] };
    struct CMUnitTest tests[N];
    for (int i = 0; i < N; i++)
        tests[i] = (struct CMUnitTest){cases[i].name, one_case, NULL, NULL, (void *)&cases[i]};
    return _cmocka_run_group_tests("oom", tests, N, setup, teardown);
}
