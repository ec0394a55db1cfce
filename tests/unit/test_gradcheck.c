/* Finite-difference gradient checks in float64, looping over nn_kinds[] and nn_losses[]:
 * a new row is checked without touching this file (unless it has a weight, which needs
 * a shape below). Objective for layers: sum(g * y) for a fixed random g. Points within
 * 1e-2 of a kink are skipped: detected as one-sided difference quotients at h = 1e-2
 * that disagree, so no per-kind kink list is needed. */
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

#define EPS 1e-6
#define KINK_H 1e-2

static uint64_t rng = 88172645463325252ull;
static double urand(double lo, double hi)
{
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return lo + (hi - lo) * (double)(rng >> 11) / 9007199254740992.0;
}

typedef double objective_fn(void *ctx);

/* Checks ana[i] = d f / d x[i] for every i, perturbing x in place. Returns the number
 * of points checked; fails the test on a mismatch. */
static size_t fd_check(objective_fn *f, void *ctx, double *x, size_t n, const double *ana,
                       const char *what)
{
    size_t checked = 0;
    for (size_t i = 0; i < n; i++) {
        double x0 = x[i], f0 = f(ctx);
        x[i] = x0 - KINK_H;
        double fl = f(ctx);
        x[i] = x0 + KINK_H;
        double fr = f(ctx);
        double dl = (f0 - fl) / KINK_H, dr = (fr - f0) / KINK_H;
        if (fabs(dr - dl) > 0.05 * (1 + fabs(dl) + fabs(dr))) {
            x[i] = x0; /* a kink within 1e-2 */
            continue;
        }
        x[i] = x0 + EPS;
        double fp = f(ctx);
        x[i] = x0 - EPS;
        double fm = f(ctx);
        x[i] = x0;
        double num = (fp - fm) / (2 * EPS);
        if (!(fabs(num - ana[i]) <= 1e-6 + 1e-5 * fabs(ana[i])))
            fail_msg("%s: d/dx[%zu] at x=%.6g: analytic %.10g, numeric %.10g", what, i, x0, ana[i],
                     num);
        checked++;
    }
    return checked;
}

/* ---- layers -------------------------------------------------------------------- */

struct layer_ctx {
    struct nn_net net;
    struct nn_ws ws;
    double *x, *g; /* input and the fixed upstream gradient */
};

static double layer_objective(void *p)
{
    struct layer_ctx *c = p;
    struct nn_err err;
    enum nn_status st = nn_net_forward(&c->net, &c->ws, c->x, &err);
    if (st)
        fail_msg("forward: %s", err.msg);
    const struct nn_tensor *y = &c->ws.act[c->net.nlayers];
    double s = 0;
    for (size_t i = 0; i < y->numel; i++)
        s += c->g[i] * ((double *)y->data)[i];
    return s;
}

static void set_tensor(struct nn_tensor *t, int ndim, const size_t *shape, double *data)
{
    memset(t, 0, sizeof *t);
    t->dtype = NN_F64;
    t->ndim = ndim;
    t->numel = 1;
    for (int i = 0; i < ndim; i++) {
        t->shape[i] = shape[i];
        t->numel *= shape[i];
    }
    t->data = data;
}

static void check_kind(enum nn_kind k, int variant)
{
    const struct nn_kind_info *ki = &nn_kinds[k];
    struct layer_ctx c;
    struct nn_err err;
    char what[96];
    snprintf(what, sizeof what, "%s (variant %d)", ki->name, variant);
    assert_int_equal(nn_net_init(&c.net, NN_F64, 1, &err), NN_OK);
    struct nn_layer *l = &c.net.layers[0];
    nn_layer_init(l, k);
    size_t in_shape[2] = {3, 4};
    int in_ndim = 2;
    double w[64], b[8];
    for (int i = 0; i < ki->nparams; i++) {
        const struct nn_param_spec *ps = &ki->params[i];
        if (variant == 0)
            continue;
        switch (ps->kind) {
        case NN_P_REAL: l->p[ps->slot] = ps->def * 1.5 + 0.25; break;
        case NN_P_DIM: l->dim = 0; break;
        case NN_P_APPROX: l->approx = 1; break;
        default: break;
        }
    }
    if (k == NN_LINEAR) {
        size_t ws_[2] = {5, 4}, bs_[1] = {5};
        for (int i = 0; i < 20; i++)
            w[i] = urand(-1, 1);
        for (int i = 0; i < 5; i++)
            b[i] = urand(-1, 1);
        set_tensor(&l->weight, 2, ws_, w);
        set_tensor(&l->bias, 1, bs_, b);
        if (variant == 1) { /* a single sample */
            in_shape[0] = 4;
            in_ndim = 1;
        }
    } else if (k == NN_PRELU) {
        size_t c1[1] = {1}, c4[1] = {4};
        double slopes[4] = {0.25, -0.3, 1.5, 0.0};
        memcpy(w, slopes, sizeof slopes);
        set_tensor(&l->weight, 1, variant ? c4 : c1, w);
    } else {
        for (int i = 0; i < ki->nparams; i++)
            if (ki->params[i].kind == NN_P_WEIGHT)
                fail_msg("%s has a weight: give it a shape in test_gradcheck.c", ki->name);
    }
    struct nn_plan plan;
    if (nn_net_check(&c.net, in_shape, in_ndim, 1, 0, &plan, &err))
        fail_msg("%s: check: %s", what, err.msg);
    assert_int_equal(nn_ws_init(&c.ws, &plan, &err), NN_OK);
    size_t nin = plan.shapes[0].numel, nout = plan.shapes[1].numel;
    double x[64], g[64], dx[64], dw[64], db[8];
    for (size_t i = 0; i < nin; i++)
        x[i] = urand(-4, 7);
    for (size_t i = 0; i < nout; i++)
        g[i] = urand(-1, 1);
    c.x = x;
    c.g = g;
    layer_objective(&c);
    if (nn_net_backward(&c.net, &c.ws, g, &err))
        fail_msg("%s: backward: %s", what, err.msg);
    memcpy(dx, c.ws.dinput.data, nin * sizeof *dx);
    size_t checked = fd_check(layer_objective, &c, x, nin, dx, what);
    if (checked < nin / 2)
        fail_msg("%s: only %zu of %zu input points away from kinks", what, checked, nin);
    if (l->weight.ndim) {
        memcpy(dw, c.ws.dweight[0].data, l->weight.numel * sizeof *dw);
        snprintf(what, sizeof what, "%s (variant %d) weight", ki->name, variant);
        fd_check(layer_objective, &c, w, l->weight.numel, dw, what);
    }
    if (l->bias.ndim) {
        memcpy(db, c.ws.dbias[0].data, l->bias.numel * sizeof *db);
        snprintf(what, sizeof what, "%s (variant %d) bias", ki->name, variant);
        fd_check(layer_objective, &c, b, l->bias.numel, db, what);
    }
    nn_ws_free(&c.ws);
    nn_plan_free(&plan);
    nn_net_free(&c.net);
}

/* state: (kind << 1) | variant, one cmocka test each */
static void test_kind(void **state)
{
    intptr_t id = (intptr_t)*state;
    check_kind((enum nn_kind)(id >> 1), (int)(id & 1));
}

/* ---- losses ---------------------------------------------------------------------- */

struct loss_ctx {
    enum nn_loss loss;
    enum nn_reduction red;
    double param;
    struct nn_tensor out, target;
    int64_t classes[4];
};

static double loss_objective(void *p)
{
    struct loss_ctx *c = p;
    struct nn_err err;
    double v;
    if (nn_loss_forward(c->loss, c->red, c->param, &c->out, &c->target, c->classes, &v, NULL,
                        &err))
        fail_msg("loss: %s", err.msg);
    return v;
}

/* state: (loss << 1) | sum */
static void test_loss(void **state)
{
    intptr_t id = (intptr_t)*state;
    int k = (int)(id >> 1);
    {
        {
            int r = (int)(id & 1);
            const struct nn_loss_info *li = &nn_losses[k];
            struct loss_ctx c;
            memset(&c, 0, sizeof c);
            c.loss = (enum nn_loss)k;
            c.red = r ? NN_SUM : NN_MEAN;
            c.param = li->param ? li->param_def * (r ? 0.5 : 1.0) : 0;
            double x[20], t[20], d[20];
            size_t shape[2] = {4, 5}, tshape[1] = {4};
            for (int i = 0; i < 20; i++) {
                x[i] = urand(-3, 3);
                t[i] = k == NN_LOSS_BCE_WITH_LOGITS ? urand(0, 1) : urand(-3, 3);
            }
            set_tensor(&c.out, 2, shape, x);
            if (li->class_target) {
                set_tensor(&c.target, 1, tshape, NULL);
                for (int i = 0; i < 4; i++)
                    c.classes[i] = (int64_t)(urand(0, 5)) % 5;
            } else {
                set_tensor(&c.target, 2, shape, t);
            }
            struct nn_err err;
            double v;
            if (nn_loss_forward(c.loss, c.red, c.param, &c.out, &c.target, c.classes, &v, d, &err))
                fail_msg("%s: %s", li->name, err.msg);
            char what[64];
            snprintf(what, sizeof what, "loss %s (%s)", li->name, r ? "sum" : "mean");
            size_t checked = fd_check(loss_objective, &c, x, 20, d, what);
            if (checked < 10)
                fail_msg("%s: only %zu of 20 points away from kinks", what, checked);
        }
    }
}

int main(void)
{
    enum { NK = 2 * NN_KIND_COUNT, NL = 2 * NN_LOSS_COUNT };
    struct CMUnitTest tests[NK + NL];
    static char names[NK + NL][64];
    for (int i = 0; i < NK; i++) {
        snprintf(names[i], sizeof names[i], "%s%s", nn_kinds[i >> 1].name,
                 i & 1 ? " (other params)" : "");
        tests[i] = (struct CMUnitTest){names[i], test_kind, NULL, NULL, (void *)(intptr_t)i};
    }
    for (int i = 0; i < NL; i++) {
        snprintf(names[NK + i], sizeof names[0], "loss %s %s", nn_losses[i >> 1].name,
                 i & 1 ? "sum" : "mean");
        tests[NK + i] = (struct CMUnitTest){names[NK + i], test_loss, NULL, NULL,
                                            (void *)(intptr_t)i};
    }
    return _cmocka_run_group_tests("gradcheck (float64, finite differences)", tests, NK + NL,
                                   NULL, NULL);
}
