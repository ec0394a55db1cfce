/* Diagnostics (zero fraction, dead units, gradient norms) and clip_grad_norm as
 * torch.nn.utils.clip_grad_norm_ (torch 1.13). */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "core/nn.h"

static void set_t(struct nn_tensor *t, int ndim, size_t d0, size_t d1, double *data)
{
    memset(t, 0, sizeof *t);
    t->dtype = NN_F64;
    t->ndim = ndim;
    t->shape[0] = d0;
    t->shape[1] = d1;
    t->numel = ndim == 2 ? d0 * d1 : d0;
    t->data = data;
}

/* Linear(2 -> 3) + ReLU on 2 samples: unit 1 is dead (negative for both), unit 2 is
 * zero for one sample only. */
static void test_dead_units_and_norms(void **state)
{
    double w[6] = {1, 0, -1, -1, 0, 1}, b[3] = {0, 0, 0};
    double x[4] = {1, 2, 3, -1};
    struct nn_net net;
    struct nn_err err;
    assert_int_equal(nn_net_init(&net, NN_F64, 2, &err), NN_OK);
    nn_layer_init(&net.layers[0], NN_LINEAR);
    set_t(&net.layers[0].weight, 2, 3, 2, w);
    set_t(&net.layers[0].bias, 1, 3, 0, b);
    nn_layer_init(&net.layers[1], NN_RELU);
    size_t shape[2] = {2, 2};
    struct nn_plan plan;
    struct nn_ws ws;
    assert_int_equal(nn_net_check(&net, shape, 2, 1, 0, &plan, &err), NN_OK);
    assert_int_equal(nn_ws_init(&ws, &plan, &err), NN_OK);
    assert_int_equal(nn_net_forward(&net, &ws, x, &err), NN_OK);
    /* linear out: [1, -3, 2], [3, -2, -1]; relu: [1, 0, 2], [3, 0, 0] */
    double g[6] = {1, 1, 1, 1, 1, 1};
    assert_int_equal(nn_net_backward(&net, &ws, g, &err), NN_OK);
    struct nn_layer_stats st[2];
    assert_int_equal(nn_stats_compute(&net, &ws, st, &err), NN_OK);
    assert_true(st[0].zero_fraction == 0);
    assert_int_equal(st[0].ndead, 0);
    assert_true(fabs(st[1].zero_fraction - 3.0 / 6.0) < 1e-15);
    assert_int_equal(st[1].ndead, 1);
    assert_int_equal(st[1].dead[0], 1);
    /* relu passes g where out > 0: dlin = [1,0,1],[1,0,0]; dW = dlin^T x; db = colsum */
    double dw_expect[6] = {1 + 3, 2 - 1, 0, 0, 1, 2}, db_expect[3] = {2, 0, 1};
    double nw = 0, nb = 0;
    for (int i = 0; i < 6; i++) {
        assert_true(fabs(((double *)ws.dweight[0].data)[i] - dw_expect[i]) < 1e-15);
        nw += dw_expect[i] * dw_expect[i];
    }
    for (int i = 0; i < 3; i++)
        nb += db_expect[i] * db_expect[i];
    assert_true(fabs(st[0].weight_grad_norm - sqrt(nw)) < 1e-12);
    assert_true(fabs(st[0].bias_grad_norm - sqrt(nb)) < 1e-12);
    assert_true(st[1].weight_grad_norm == -1 && st[1].bias_grad_norm == -1);
    nn_stats_free(st, 2);

    /* clip: total = sqrt(nw + nb) = sqrt(22 + 5); max_norm 1 -> coef 1/(total + 1e-6) */
    double total = sqrt(nw + nb);
    assert_true(fabs(nn_clip_grad_norm(&net, &ws, 1.0) - total) < 1e-12);
    double coef = 1.0 / (total + 1e-6);
    for (int i = 0; i < 6; i++)
        assert_true(fabs(((double *)ws.dweight[0].data)[i] - dw_expect[i] * coef) < 1e-12);
    /* now below max_norm: unchanged (coef clamped to 1) */
    double before = ((double *)ws.dbias[0].data)[0];
    double t2 = nn_clip_grad_norm(&net, &ws, 100.0);
    assert_true(fabs(t2 - total * coef) < 1e-9);
    assert_true(((double *)ws.dbias[0].data)[0] == before);
    nn_ws_free(&ws);
    nn_plan_free(&plan);
    nn_net_free(&net);
}

/* a 1-D output: its zero elements are the dead units */
static void test_dead_1d(void **state)
{
    double x[4] = {-1, 2, 0, -0.5};
    struct nn_net net;
    struct nn_err err;
    assert_int_equal(nn_net_init(&net, NN_F64, 1, &err), NN_OK);
    nn_layer_init(&net.layers[0], NN_RELU);
    size_t shape[1] = {4};
    struct nn_plan plan;
    struct nn_ws ws;
    assert_int_equal(nn_net_check(&net, shape, 1, NN_PLAN_KEEP, 0, &plan, &err), NN_OK);
    assert_int_equal(nn_ws_init(&ws, &plan, &err), NN_OK);
    assert_int_equal(nn_net_forward(&net, &ws, x, &err), NN_OK);
    struct nn_layer_stats st[1];
    assert_int_equal(nn_stats_compute(&net, &ws, st, &err), NN_OK);
    assert_int_equal(st[0].ndead, 3);
    assert_int_equal(st[0].dead[0], 0);
    assert_int_equal(st[0].dead[1], 2);
    assert_int_equal(st[0].dead[2], 3);
    assert_true(st[0].weight_grad_norm == -1);
    nn_stats_free(st, 1);
    nn_ws_free(&ws);
    nn_plan_free(&plan);
    nn_net_free(&net);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_dead_units_and_norms),
        cmocka_unit_test(test_dead_1d),
    };
    return cmocka_run_group_tests_name("stats + clip_grad_norm", tests, NULL, NULL);
}
