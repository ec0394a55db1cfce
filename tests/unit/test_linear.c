/* Linear on OpenBLAS against the naive reference for every shape class (M = 1, small
 * M 2..8 on the gemv path, large M on gemm), float32 and float64, forward and backward;
 * and the messages of nn_net_check / nn_loss_forward for bad shapes and values. */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "core/nn.h"

static uint64_t rng = 0x9E3779B97F4A7C15ull;
static double urand(void)
{
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return 2.0 * (double)(rng >> 11) / 9007199254740992.0 - 1.0;
}

static void *rand_buf(enum nn_dtype dt, size_t n)
{
    void *p = malloc(n * nn_dtype_size(dt) + 8);
    assert_non_null(p);
    for (size_t i = 0; i < n; i++) {
        if (dt == NN_F32)
            ((float *)p)[i] = (float)urand();
        else
            ((double *)p)[i] = urand();
    }
    return p;
}

static double get(enum nn_dtype dt, const void *p, size_t i)
{
    return dt == NN_F32 ? (double)((const float *)p)[i] : ((const double *)p)[i];
}

/* values in [-1, 1]: a K-term sum is off by at most ~K * eps */
static void expect_close(enum nn_dtype dt, const void *a, const double *ref, size_t n, size_t K,
                         const char *what)
{
    double tol = (dt == NN_F32 ? 1.2e-7 : 2.3e-16) * 4.0 * (double)(K + 1);
    for (size_t i = 0; i < n; i++)
        if (!(fabs(get(dt, a, i) - ref[i]) <= tol * (1 + fabs(ref[i]))))
            fail_msg("%s: [%zu] got %.10g, reference %.10g", what, i, get(dt, a, i), ref[i]);
}

static const size_t batches[] = {1, 2, 3, 4, 5, 8, 9, 16, 33, 300};
static const size_t dims[][2] = {{10, 5}, {37, 129}, {256, 96}, {128, 64}};

static void check_shape(enum nn_dtype dt, size_t B, size_t IN, size_t OUT, int with_bias)
{
    char what[128];
    snprintf(what, sizeof what, "%s B=%zu IN=%zu OUT=%zu bias=%d", nn_dtype_names[dt], B, IN, OUT,
             with_bias);
    void *x = rand_buf(dt, B * IN), *w = rand_buf(dt, OUT * IN), *b = rand_buf(dt, OUT);
    void *y = rand_buf(dt, B * OUT), *yr = rand_buf(dt, B * OUT), *g = rand_buf(dt, B * OUT);
    const void *bias = with_bias ? b : NULL;
    nn_linear_fwd(dt, y, x, w, bias, B, IN, OUT);
    nn_linear_fwd_ref(dt, yr, x, w, bias, B, IN, OUT);
    double *ref = malloc(B * OUT * sizeof *ref);
    for (size_t i = 0; i < B * OUT; i++)
        ref[i] = get(dt, yr, i);
    expect_close(dt, y, ref, B * OUT, IN, what);
    free(ref);

    /* backward writes its outputs: whatever the buffers held before is overwritten */
    void *dx = rand_buf(dt, B * IN), *dw = rand_buf(dt, OUT * IN), *db = rand_buf(dt, OUT);
    double *rdx = calloc(B * IN, sizeof *rdx), *rdw = calloc(OUT * IN, sizeof *rdw),
           *rdb = calloc(OUT, sizeof *rdb);
    for (size_t s = 0; s < B; s++)
        for (size_t o = 0; o < OUT; o++) {
            double go = get(dt, g, s * OUT + o);
            rdb[o] += go;
            for (size_t i = 0; i < IN; i++) {
                rdx[s * IN + i] += go * get(dt, w, o * IN + i);
                rdw[o * IN + i] += go * get(dt, x, s * IN + i);
            }
        }
    nn_linear_bwd(dt, dx, dw, with_bias ? db : NULL, g, x, w, B, IN, OUT);
    char w2[160];
    snprintf(w2, sizeof w2, "%s dinp", what);
    expect_close(dt, dx, rdx, B * IN, OUT + 1, w2);
    snprintf(w2, sizeof w2, "%s dweight", what);
    expect_close(dt, dw, rdw, OUT * IN, B + 1, w2);
    if (with_bias) {
        snprintf(w2, sizeof w2, "%s dbias", what);
        expect_close(dt, db, rdb, OUT, B + 1, w2);
    }
    free(rdx), free(rdw), free(rdb), free(dx), free(dw), free(db);
    free(x), free(w), free(b), free(y), free(yr), free(g);
}

/* state: index into batches */
static void test_blas_vs_ref(void **state)
{
    size_t B = batches[(intptr_t)*state];
    for (int dt = 0; dt < NN_DTYPE_COUNT; dt++)
        for (size_t d = 0; d < sizeof dims / sizeof dims[0]; d++)
            for (int bias = 0; bias < 2; bias++)
                check_shape((enum nn_dtype)dt, B, dims[d][0], dims[d][1], bias);
}

/* ---- error messages -------------------------------------------------------------- */

static float wbuf[4096];

static void tensor(struct nn_tensor *t, int ndim, const size_t *shape)
{
    memset(t, 0, sizeof *t);
    t->dtype = NN_F32;
    t->ndim = ndim;
    t->numel = 1;
    for (int i = 0; i < ndim; i++) {
        t->shape[i] = shape[i];
        t->numel *= shape[i];
    }
    t->data = wbuf;
}

/* a net of (n - 1) relus and then `last` */
static void net_with_last(struct nn_net *net, int n, enum nn_kind last)
{
    struct nn_err err;
    assert_int_equal(nn_net_init(net, NN_F32, n, &err), NN_OK);
    for (int i = 0; i < n - 1; i++)
        nn_layer_init(&net->layers[i], NN_RELU);
    nn_layer_init(&net->layers[n - 1], last);
}

static void want_check(const struct nn_net *net, const size_t *in, int ndim, size_t max_elems,
                         enum nn_status want, const char *msg)
{
    struct nn_plan plan;
    struct nn_err err = {{0}};
    enum nn_status st = nn_net_check(net, in, ndim, 1, max_elems, &plan, &err);
    if (st == NN_OK)
        nn_plan_free(&plan);
    assert_int_equal(st, want);
    assert_string_equal(err.msg, msg);
}

static void test_msg_linear_features(void **state)
{
    struct nn_net net;
    net_with_last(&net, 3, NN_LINEAR);
    size_t ws[2] = {5, 8}, bs[1] = {5}, in[2] = {4, 10};
    tensor(&net.layers[2].weight, 2, ws);
    tensor(&net.layers[2].bias, 1, bs);
    want_check(&net, in, 2, 0, NN_EINVAL,
                 "layers[2] (linear): weight is [5, 8] but the input has 10 features");
    size_t bs2[1] = {4}, in2[2] = {4, 8};
    tensor(&net.layers[2].bias, 1, bs2);
    want_check(&net, in2, 2, 0, NN_EINVAL, "layers[2] (linear): bias is [4] but weight is [5, 8]");
    net.layers[2].bias.ndim = 0;
    net.layers[2].weight.ndim = 0;
    want_check(&net, in2, 2, 0, NN_EINVAL, "layers[2] (linear): weight is missing");
    nn_net_free(&net);
}

static void test_msg_prelu_channels(void **state)
{
    struct nn_net net;
    net_with_last(&net, 5, NN_PRELU);
    size_t ws[1] = {3}, in[2] = {2, 7}, in1[1] = {3};
    tensor(&net.layers[4].weight, 1, ws);
    want_check(&net, in, 2, 0, NN_EINVAL,
                 "layers[4] (prelu): 3 weights but the input has 7 channels (dim 1)");
    want_check(&net, in1, 1, 0, NN_EINVAL,
                 "layers[4] (prelu): 3 weights but a 1-D input has no channel dim (use 1 weight)");
    nn_net_free(&net);
}

static void test_msg_params(void **state)
{
    struct nn_net net;
    size_t in[2] = {2, 3};
    net_with_last(&net, 2, NN_HARDTANH);
    net.layers[1].p[0] = 1;
    net.layers[1].p[1] = 1;
    want_check(&net, in, 2, 0, NN_EINVAL,
                 "layers[1] (hardtanh): max_val (1) must be greater than min_val (1)");
    nn_layer_init(&net.layers[1], NN_SOFTPLUS);
    net.layers[1].p[0] = 0;
    want_check(&net, in, 2, 0, NN_EINVAL,
                 "layers[1] (softplus): beta cannot be 0 (torch returns inf)");
    nn_layer_init(&net.layers[1], NN_CELU);
    net.layers[1].p[0] = 0;
    want_check(&net, in, 2, 0, NN_EINVAL, "layers[1] (celu): alpha cannot be 0");
    nn_layer_init(&net.layers[1], NN_SOFTMAX);
    net.layers[1].dim = 2;
    want_check(&net, in, 2, 0, NN_EINVAL,
                 "layers[1] (softmax): dim 2 out of range [-2, 1] for a 2-D input");
    net.layers[1].dim = -2; /* fine */
    want_check(&net, in, 2, 0, NN_OK, "");
    nn_layer_init(&net.layers[1], NN_LEAKY_RELU);
    net.layers[1].p[0] = NAN;
    want_check(&net, in, 2, 0, NN_EINVAL, "layers[1] (leaky_relu): negative_slope is not a number");
    nn_net_free(&net);
}

static void test_msg_overflow(void **state)
{
    struct nn_net net;
    net_with_last(&net, 1, NN_RELU);
    size_t huge[2] = {SIZE_MAX / 2 + 1, 2};
    want_check(&net, huge, 2, 0, NN_ETOOBIG,
                 "input: shape [9223372036854775808, 2] has too many elements");
    size_t big[2] = {(size_t)1 << 62, 2}; /* numel fits, bytes do not */
    want_check(&net, big, 2, 0, NN_ETOOBIG, "workspace: size overflows");
    size_t capped[2] = {1000, 100};
    want_check(&net, capped, 2, 50000, NN_ETOOBIG,
                 "input: shape [1000, 100] has 100000 elements, over the cap of 50000");
    nn_net_free(&net);
    net_with_last(&net, 1, NN_LINEAR);
    size_t ws[2] = {100, 1}, in[2] = {1000, 1};
    tensor(&net.layers[0].weight, 2, ws);
    want_check(&net, in, 2, 50000, NN_ETOOBIG,
                 "layers[0] (linear): output: shape [1000, 100] has 100000 elements, over the cap "
                 "of 50000");
    size_t zero[2] = {0, 1};
    want_check(&net, zero, 2, 0, NN_EINVAL, "input: shape [0, 1] has no elements");
    nn_net_free(&net);
}

static void test_msg_loss(void **state)
{
    float out[10] = {0};
    size_t os[2] = {2, 5}, ts[1] = {2};
    struct nn_tensor o, t;
    tensor(&o, 2, os);
    o.data = out;
    tensor(&t, 1, ts);
    t.data = NULL;
    int64_t cls[2] = {1, 7};
    struct nn_err err;
    double v;
    assert_int_equal(nn_loss_forward(NN_LOSS_CROSS_ENTROPY, NN_MEAN, 0, &o, &t, cls, &v, NULL, &err),
                     NN_EINVAL);
    assert_string_equal(err.msg, "loss.target: class 7 out of range [0, 5)");
    cls[1] = -1;
    assert_int_equal(nn_loss_forward(NN_LOSS_NLL, NN_SUM, 0, &o, &t, cls, &v, NULL, &err), NN_EINVAL);
    assert_string_equal(err.msg, "loss.target: class -1 out of range [0, 5)");
    size_t ts2[2] = {2, 4};
    tensor(&t, 2, ts2);
    assert_int_equal(nn_loss_forward(NN_LOSS_MSE, NN_MEAN, 0, &o, &t, NULL, &v, NULL, &err),
                     NN_EINVAL);
    assert_string_equal(err.msg, "loss.target: shape [2, 4] but the output is [2, 5]");
    enum nn_loss l;
    assert_int_equal(nn_loss_lookup("HuberLoss", &l, &err), NN_OK);
    assert_int_equal(l, NN_LOSS_HUBER);
    assert_int_equal(nn_loss_lookup("hinge", &l, &err), NN_EINVAL);
    assert_string_equal(err.msg, "loss.type: unknown loss \"hinge\" (valid: mse, l1, smooth_l1, "
                                 "huber, bce_with_logits, cross_entropy, nll)");
}

static void test_msg_kind_lookup(void **state)
{
    struct nn_err err;
    enum nn_kind k;
    assert_int_equal(nn_kind_lookup("LeakyReLU", &k, "layers[0].type", &err), NN_OK);
    assert_int_equal(k, NN_LEAKY_RELU);
    assert_int_equal(nn_kind_lookup("swish", &k, "layers[3].type", &err), NN_EINVAL);
    assert_non_null(strstr(err.msg, "layers[3].type: unknown layer type \"swish\" (valid: linear, "
                                    "relu, relu6, leaky_relu, prelu,"));
    assert_non_null(strstr(err.msg, "log_softmax)"));
    /* the table carries torch's parameter names and defaults */
    assert_int_equal(nn_kinds[NN_LEAKY_RELU].nparams, 1);
    assert_string_equal(nn_kinds[NN_LEAKY_RELU].params[0].name, "negative_slope");
    assert_true(nn_kinds[NN_LEAKY_RELU].params[0].def == 0.01);
    assert_int_equal(nn_kinds[NN_RELU].nparams, 0);
    assert_int_equal(nn_kinds[NN_SOFTPLUS].nparams, 2);
    assert_true(nn_kinds[NN_SOFTPLUS].params[1].def == 20);
}

/* The first layer whose output is non-finite is named, whether the plan kept every
 * activation (it searches them) or let them share two buffers (it runs the pass again). */
static void test_nonfinite_names_layer(void **state)
{
    (void)state;
    for (unsigned flags = 0; flags <= NN_PLAN_KEEP; flags += NN_PLAN_KEEP) {
        struct nn_net net;
        struct nn_err err;
        net_with_last(&net, 2, NN_LINEAR);
        size_t ws[2] = {2, 2}, in[2] = {1, 2};
        float w[4] = {3e38f, 3e38f, 0, 0};
        tensor(&net.layers[1].weight, 2, ws);
        net.layers[1].weight.data = w;
        /* two relus after it carry the inf to the output */
        struct nn_layer *l = realloc(net.layers, 4 * sizeof *l);
        assert_non_null(l);
        net.layers = l;
        nn_layer_init(&net.layers[2], NN_RELU);
        nn_layer_init(&net.layers[3], NN_RELU);
        net.nlayers = 4;
        struct nn_plan plan;
        struct nn_ws wsp;
        assert_int_equal(nn_net_check(&net, in, 2, flags, 0, &plan, &err), NN_OK);
        assert_int_equal(nn_ws_init(&wsp, &plan, &err), NN_OK);
        float x[2] = {1, 1};
        assert_int_equal(nn_net_forward(&net, &wsp, x, &err), NN_ENONFINITE);
        assert_string_equal(err.msg,
                            "layers[1] (linear): output has a non-finite value (inf or nan)");
        x[0] = NAN;
        assert_int_equal(nn_net_forward(&net, &wsp, x, &err), NN_EINVAL);
        assert_string_equal(err.msg, "input: has a non-finite value (inf or nan)");
        nn_ws_free(&wsp);
        nn_plan_free(&plan);
        nn_net_free(&net);
    }
}

/* the vectorized scan: every position (vector body and tail), inf, -inf and nan */
static void test_nonfinite_every_position(void **state)
{
    for (int dt = 0; dt < NN_DTYPE_COUNT; dt++) {
        struct nn_net net;
        struct nn_err err;
        struct nn_plan plan;
        struct nn_ws ws;
        size_t n = 71, shape[1] = {71};
        assert_int_equal(nn_net_init(&net, (enum nn_dtype)dt, 1, &err), NN_OK);
        nn_layer_init(&net.layers[0], NN_TANH);
        assert_int_equal(nn_net_check(&net, shape, 1, 0, 0, &plan, &err), NN_OK);
        assert_int_equal(nn_ws_init(&ws, &plan, &err), NN_OK);
        double bad[3] = {INFINITY, -INFINITY, NAN};
        for (size_t pos = 0; pos <= n; pos++)
            for (int b = 0; b < 3; b++) {
                float xf[71];
                double xd[71];
                for (size_t i = 0; i < n; i++)
                    xf[i] = (float)(xd[i] = 1e30 * (i % 2 ? 1 : -1));
                if (pos < n)
                    xf[pos] = (float)(xd[pos] = bad[b]);
                enum nn_status st = nn_net_forward(&net, &ws, dt == NN_F32 ? (void *)xf : (void *)xd, &err);
                assert_int_equal(st, pos < n ? NN_EINVAL : NN_OK);
            }
        nn_ws_free(&ws);
        nn_plan_free(&plan);
        nn_net_free(&net);
    }
}

/* One row of a model gives the same numbers at every batch size: batch 1 runs on gemv,
 * larger batches on gemm, which sum in another order. The row's output and its input
 * gradient at batch B (the row in the middle, random rows around it) must be allclose to
 * batch 1 with the golden tolerances: float32 rtol 1e-4, atol 1e-5 * max(1, sqrt(K) / 4). */
static void test_row_every_batch(void **state)
{
    (void)state;
    enum { IN = 784, H = 128, OUT = 10, MAXB = 300 };
    for (int dti = 0; dti < NN_DTYPE_COUNT; dti++) {
        enum nn_dtype dt = (enum nn_dtype)dti;
        size_t es = nn_dtype_size(dt);
        struct nn_net net;
        assert_int_equal(nn_net_init(&net, dt, 3, NULL), NN_OK);
        size_t ws[] = {H, IN}, bs[] = {H}, ws2[] = {OUT, H}, bs2[] = {OUT};
        nn_layer_init(&net.layers[0], NN_LINEAR);
        nn_layer_init(&net.layers[1], NN_RELU);
        nn_layer_init(&net.layers[2], NN_LINEAR);
        struct nn_tensor *t[] = {&net.layers[0].weight, &net.layers[0].bias,
                                 &net.layers[2].weight, &net.layers[2].bias};
        const size_t *sh[] = {ws, bs, ws2, bs2};
        const int nd[] = {2, 1, 2, 1};
        for (int k = 0; k < 4; k++) {
            tensor(t[k], nd[k], sh[k]);
            t[k]->dtype = dt;
            t[k]->data = rand_buf(dt, t[k]->numel);
        }
        void *row = rand_buf(dt, IN), *drow = rand_buf(dt, OUT);
        void *y1 = malloc(OUT * es), *g1 = malloc(IN * es);
        assert_non_null(y1);
        assert_non_null(g1);
        double rtol = dt == NN_F32 ? 1e-4 : 1e-10;
        double atol = (dt == NN_F32 ? 1e-5 : 1e-12) * sqrt((double)IN) / 4;
        for (size_t B = 1; B <= MAXB; B = B < 64 ? B + 1 : B * 2) {
            size_t in_shape[] = {B, IN}, at = B / 2;
            struct nn_plan plan;
            struct nn_ws w;
            assert_int_equal(nn_net_check(&net, in_shape, 2, 1, 0, &plan, NULL), NN_OK);
            assert_int_equal(nn_ws_init(&w, &plan, NULL), NN_OK);
            void *x = rand_buf(dt, B * IN), *dout = rand_buf(dt, B * OUT);
            memcpy((char *)x + at * IN * es, row, IN * es);
            memcpy((char *)dout + at * OUT * es, drow, OUT * es);
            assert_int_equal(nn_net_forward(&net, &w, x, NULL), NN_OK);
            assert_int_equal(nn_net_backward(&net, &w, dout, NULL), NN_OK);
            const char *y = (const char *)w.act[3].data + at * OUT * es;
            const char *g = (const char *)w.dinput.data + at * IN * es;
            if (B == 1) {
                memcpy(y1, y, OUT * es);
                memcpy(g1, g, IN * es);
            }
            for (size_t i = 0; i < OUT + IN; i++) {
                double a = i < OUT ? get(dt, y, i) : get(dt, g, i - OUT);
                double e = i < OUT ? get(dt, y1, i) : get(dt, g1, i - OUT);
                if (!(fabs(a - e) <= atol + rtol * fabs(e)))
                    fail_msg("%s batch %zu: %s[%zu] is %.9g, at batch 1 %.9g", nn_dtype_names[dt],
                             B, i < OUT ? "output" : "grad_input", i < OUT ? i : i - OUT, a, e);
            }
            free(x);
            free(dout);
            nn_ws_free(&w);
            nn_plan_free(&plan);
        }
        for (int k = 0; k < 4; k++)
            free(t[k]->data);
        free(row), free(drow), free(y1), free(g1);
        nn_net_free(&net);
    }
}

int main(void)
{
    enum { NB = sizeof batches / sizeof batches[0] };
    struct CMUnitTest tests[NB + 9];
    static char names[NB][48];
    for (int i = 0; i < NB; i++) {
        snprintf(names[i], sizeof names[i], "blas_vs_ref_B%zu", batches[i]);
        tests[i] = (struct CMUnitTest){names[i], test_blas_vs_ref, NULL, NULL, (void *)(intptr_t)i};
    }
    tests[NB + 0] = (struct CMUnitTest)cmocka_unit_test(test_msg_linear_features);
    tests[NB + 1] = (struct CMUnitTest)cmocka_unit_test(test_msg_prelu_channels);
    tests[NB + 2] = (struct CMUnitTest)cmocka_unit_test(test_msg_params);
    tests[NB + 3] = (struct CMUnitTest)cmocka_unit_test(test_msg_overflow);
    tests[NB + 4] = (struct CMUnitTest)cmocka_unit_test(test_msg_loss);
    tests[NB + 5] = (struct CMUnitTest)cmocka_unit_test(test_msg_kind_lookup);
    tests[NB + 6] = (struct CMUnitTest)cmocka_unit_test(test_nonfinite_names_layer);
    tests[NB + 7] = (struct CMUnitTest)cmocka_unit_test(test_nonfinite_every_position);
    tests[NB + 8] = (struct CMUnitTest)cmocka_unit_test(test_row_every_batch);
    return _cmocka_run_group_tests("linear + checks", tests, NB + 9, NULL, NULL);
}
