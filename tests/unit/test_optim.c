/* Optimizers, learning-rate schedulers and the training loop against PyTorch: every case of
 * tests/golden/train/ (tools/gen_train_golden.py), one cmocka test each, runs the core's
 * trainer on the body the daemon would get (read by the daemon's own reader) and compares
 * after every step the loss, the learning rate (exactly: the schedulers are torch's to the
 * bit), the gradient norm, whether it clipped, the per-layer diagnostics, every parameter,
 * and at an epoch's end its mean loss, the validation loss and early stopping, within the
 * case's torch.allclose tolerance. tests/golden/lr_schedules.json checks every scheduler
 * over 30 steps. Also: the tables' checks (torch's ValueErrors), the exploding-gradient and
 * non-finite-update cases, cancellation, the memory plan, and docs/api.md documenting every
 * optimizer and scheduler with torch's defaults. */
#include <limits.h>
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>
#include <cmocka.h>

#include "config/cfg.h"
#include "core/nn.h"
#include "core/optim.h"
#include "core/train.h"
#include "server/json.h"
#include "server/layers.h"
#include "server/train.h"
#include "tests/common/fs.h"
#include "tests/common/golden.h"

static char root[PATH_MAX];
static struct cfg cfg; /* the daemon's defaults: the caps the body is read under */

/* ---- reading a case ------------------------------------------------------------------- */
static const cJSON *at(const cJSON *o, const char *k)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, k);
    if (!v)
        fail_msg("no \"%s\"", k);
    return v;
}

/* The model's layers, read by the daemon's layer reader. */
static void load_net(const cJSON *model, enum nn_dtype dt, struct nn_net *net)
{
    char *text = cJSON_PrintUnformatted(model);
    struct srv_json *d = NULL;
    struct nn_err err;
    assert_int_equal(srv_json_parse(text, strlen(text), 0, &d, &err), NN_OK);
    enum nn_status st = srv_layers_parse(d, srv_json_get(d, srv_json_root(d), "layers"), dt, 0, 0,
                                         NULL, NULL, net, &err);
    if (st)
        fail_msg("model: %s", err.msg);
    srv_json_free(d);
    free(text);
}

/* The train body, read by the daemon's reader. */
static void load_req(const cJSON *train, enum nn_dtype dt, struct srv_train_req *r)
{
    char *text = cJSON_PrintUnformatted(train);
    struct nn_err err;
    enum nn_status st = srv_train_parse(text, strlen(text), &cfg, dt, r, &err);
    free(text);
    if (st)
        fail_msg("train body: %s", err.msg);
}

static struct nn_train_set as_set(const struct srv_train_data *d)
{
    return (struct nn_train_set){.x = d->x, .y = d->y, .classes = d->classes};
}

static void expect_close(const char *name, long step, const char *what, double got, double want,
                         double rtol, double atol)
{
    if (!t_close(got, want, rtol, atol))
        fail_msg("%s: step %ld: %s is %.9g, torch %.9g (rtol %g, atol %g)", name, step, what, got,
                 want, rtol, atol);
}

/* ---- the golden runs -------------------------------------------------------------------- */
static void run_case(void **state)
{
    const char *path = *state;
    char *text = t_read_file(path, NULL);
    assert_non_null(text);
    cJSON *doc = cJSON_Parse(text);
    free(text);
    assert_non_null(doc);
    const char *name = cJSON_GetStringValue(at(doc, "name"));
    enum nn_dtype dt = !strcmp(cJSON_GetStringValue(at(doc, "dtype")), "float64") ? NN_F64 : NN_F32;
    double rtol = at(at(doc, "tolerance"), "rtol")->valuedouble;
    double atol = at(at(doc, "tolerance"), "atol")->valuedouble;
    struct nn_net net;
    struct srv_train_req req;
    load_net(at(doc, "model"), dt, &net);
    load_req(at(doc, "train"), dt, &req);
    struct nn_train_set train = as_set(&req.train), val = as_set(&req.val);
    struct nn_trainer tr;
    struct nn_err err;
    size_t planned;
    assert_int_equal(
        nn_train_plan(&net, &req.cfg, &train, req.have_val ? &val : NULL, &planned, &err), NN_OK);
    if (nn_trainer_init(&tr, &net, &req.cfg, &train, req.have_val ? &val : NULL, &err))
        fail_msg("%s: init: %s", name, err.msg);
    assert_int_equal(tr.bytes, planned);
    const cJSON *exp = at(doc, "expected"), *steps = at(exp, "steps"), *es;
    assert_int_equal(tr.total_steps, (long)at(exp, "total_steps")->valuedouble);
    char msg[512];
    cJSON_ArrayForEach(es, steps)
    {
        long k = (long)at(es, "step")->valuedouble;
        if (nn_trainer_done(&tr))
            fail_msg("%s: stopped before step %ld", name, k);
        struct nn_train_step s;
        if (nn_trainer_step(&tr, 1, &s, &err))
            fail_msg("%s: step %ld: %s", name, k, err.msg);
        assert_int_equal(s.step, k);
        assert_int_equal(s.epoch, (long)at(es, "epoch")->valuedouble);
        expect_close(name, k, "loss", s.loss, at(es, "loss")->valuedouble, rtol, atol);
        if (s.lr != at(es, "lr")->valuedouble)
            fail_msg("%s: step %ld: lr %.17g, torch %.17g", name, k, s.lr,
                     at(es, "lr")->valuedouble);
        expect_close(name, k, "grad_norm", s.grad_norm, at(es, "grad_norm")->valuedouble, rtol,
                     atol);
        if (s.clipped != cJSON_IsTrue(at(es, "clipped")))
            fail_msg("%s: step %ld: clipped %d", name, k, s.clipped);
        if (s.epoch_end != cJSON_IsTrue(at(es, "epoch_end")))
            fail_msg("%s: step %ld: epoch_end %d", name, k, s.epoch_end);
        if (s.epoch_end) {
            expect_close(name, k, "epoch_loss", s.epoch_loss, at(es, "epoch_loss")->valuedouble,
                         rtol, atol);
            const cJSON *vl = at(es, "val_loss");
            if (cJSON_IsNull(vl) != isnan(s.val_loss))
                fail_msg("%s: step %ld: val_loss %g", name, k, s.val_loss);
            if (!cJSON_IsNull(vl))
                expect_close(name, k, "val_loss", s.val_loss, vl->valuedouble, rtol, atol);
            if (s.stop != cJSON_IsTrue(at(es, "stop")))
                fail_msg("%s: step %ld: early stopping %d", name, k, s.stop);
        }
        int i = 0;
        const cJSON *ls;
        cJSON_ArrayForEach(ls, at(es, "stats"))
        {
            const cJSON *w = at(ls, "weight_grad_norm");
            if (cJSON_IsNull(w) != (s.stats[i].weight_grad_norm < 0))
                fail_msg("%s: step %ld: layers[%d] weight_grad_norm presence", name, k, i);
            if (!cJSON_IsNull(w))
                expect_close(name, k, "weight_grad_norm", s.stats[i].weight_grad_norm,
                             w->valuedouble, rtol, atol);
            if (s.stats[i].ndead != (size_t)at(ls, "dead_units")->valuedouble ||
                fabs(s.stats[i].zero_fraction - at(ls, "zero_fraction")->valuedouble) > 1e-12)
                fail_msg("%s: step %ld: layers[%d]: %zu dead units, zero fraction %g", name, k, i,
                         s.stats[i].ndead, s.stats[i].zero_fraction);
            i++;
        }
        assert_int_equal(i, net.nlayers);
        i = 0;
        const cJSON *ps;
        cJSON_ArrayForEach(ps, at(es, "params"))
        {
            const char *keys[2] = {"weight", "bias"};
            const struct nn_tensor *got[2] = {&net.layers[i].weight, &net.layers[i].bias};
            for (int q = 0; q < 2; q++) {
                const cJSON *e = cJSON_GetObjectItemCaseSensitive(ps, keys[q]);
                if (!e)
                    continue;
                struct nn_tensor want;
                assert_int_equal(t_tensor_load(e, dt, &want, keys[q], msg, sizeof msg), 0);
                char what[64];
                snprintf(what, sizeof what, "step %ld: layers[%d].%s", k, i, keys[q]);
                int rc = t_allclose(dt, got[q]->data, got[q]->numel, &want, rtol, atol, what, msg,
                                    sizeof msg);
                free(want.data);
                if (rc)
                    fail_msg("%s: %s", name, msg);
            }
            i++;
        }
    }
    if (!nn_trainer_done(&tr))
        fail_msg("%s: not done after the expected steps", name);
    nn_trainer_free(&tr);
    srv_train_req_free(&req);
    srv_net_free(&net);
    cJSON_Delete(doc);
}

/* ---- scheduler sequences ---------------------------------------------------------------- */
static void lr_schedules(void **state)
{
    (void)state;
    char path[PATH_MAX + 64];
    snprintf(path, sizeof path, "%s/tests/golden/lr_schedules.json", root);
    char *text = t_read_file(path, NULL);
    assert_non_null(text);
    cJSON *doc = cJSON_Parse(text);
    free(text);
    assert_non_null(doc);
    const cJSON *q;
    int n = 0;
    cJSON_ArrayForEach(q, at(doc, "sequences"))
    {
        const char *name = cJSON_GetStringValue(at(q, "name"));
        char *spec = cJSON_PrintUnformatted(at(q, "lr_scheduler"));
        char body[1024];
        double lr0 = at(q, "lr")->valuedouble;
        snprintf(
            body, sizeof body,
            "{\"loss\": {\"type\": \"mse\"}, \"optimizer\": {\"type\": \"sgd\", \"lr\": %.17g}, "
            "\"lr_scheduler\": %s, \"input\": [[0]], \"target\": [[0]]}",
            lr0, spec);
        free(spec);
        struct srv_train_req r;
        struct nn_err err;
        if (srv_train_parse(body, strlen(body), &cfg, NN_F64, &r, &err))
            fail_msg("%s: %s", name, err.msg);
        struct nn_sched s;
        nn_sched_init(&s, &r.cfg.sched, lr0);
        const cJSON *lrs = at(q, "lrs"), *metrics = at(q, "metrics");
        for (int k = 0; k < cJSON_GetArraySize(lrs); k++) {
            if (k)
                nn_sched_step(&s, cJSON_GetArrayItem(metrics, k - 1)->valuedouble);
            double want = cJSON_GetArrayItem(lrs, k)->valuedouble;
            if (s.lr != want)
                fail_msg("%s: after %d steps lr %.17g, torch %.17g", name, k, s.lr, want);
        }
        srv_train_req_free(&r);
        n++;
    }
    assert_true(n >= 10);
    cJSON_Delete(doc);
}

/* ---- the tables ------------------------------------------------------------------------- */
static enum nn_status parse_body(const char *body, struct srv_train_req *r, struct nn_err *err)
{
    return srv_train_parse(body, strlen(body), &cfg, NN_F32, r, err);
}

/* body is refused with a message containing part. */
static void refused(const char *body, const char *part)
{
    struct srv_train_req r;
    struct nn_err err = {{0}};
    enum nn_status st = parse_body(body, &r, &err);
    if (st == NN_OK)
        fail_msg("accepted: %s", body);
    if (!strstr(err.msg, part))
        fail_msg("%s\n  message: %s\n  wanted: %s", body, err.msg, part);
}

#define DATA "\"input\": [[1, 2]], \"target\": [[0]], \"loss\": {\"type\": \"mse\"}"

static void torch_value_errors(void **state)
{
    (void)state;
    refused("{" DATA ", \"optimizer\": {\"type\": \"sgd\"}}",
            "optimizer.lr: required (torch's SGD has no default)");
    refused("{" DATA ", \"optimizer\": {\"type\": \"sgd\", \"lr\": -1}}",
            "optimizer.lr: must be >= 0");
    refused("{" DATA ", \"optimizer\": {\"type\": \"sgd\", \"lr\": 1, \"momentum\": -0.5}}",
            "optimizer.momentum");
    refused("{" DATA ", \"optimizer\": {\"type\": \"sgd\", \"lr\": 1, \"nesterov\": true}}",
            "Nesterov momentum requires a momentum > 0 and dampening 0");
    refused("{" DATA ", \"optimizer\": {\"type\": \"sgd\", \"lr\": 1, \"nesterov\": true, "
            "\"momentum\": 0.9, \"dampening\": 0.1}}",
            "Nesterov");
    refused("{" DATA ", \"optimizer\": {\"type\": \"adam\", \"betas\": [0.9, 1]}}",
            "optimizer.betas[1]: must be in [0, 1), got 1");
    refused("{" DATA ", \"optimizer\": {\"type\": \"adam\", \"betas\": [0.9]}}",
            "optimizer.betas: expected two numbers");
    refused("{" DATA ", \"optimizer\": {\"type\": \"adamw\", \"eps\": -1}}", "optimizer.eps");
    refused("{" DATA ", \"optimizer\": {\"type\": \"adam\", \"weight_decay\": -0.1}}",
            "optimizer.weight_decay");
    refused("{" DATA ", \"optimizer\": {\"type\": \"adam\", \"momentum\": 0.9}}",
            "optimizer (adam): unknown field \"momentum\" (known: type, lr, betas, eps, "
            "weight_decay, amsgrad, maximize)");
    refused("{" DATA ", \"optimizer\": {\"type\": \"rmsprop\"}}",
            "optimizer.type: unknown optimizer \"rmsprop\" (valid: sgd, adam, adamw)");
    refused("{" DATA
            ", \"optimizer\": {\"type\": \"adam\"}, \"lr_scheduler\": {\"type\": \"step\"}}",
            "lr_scheduler.step_size: required (torch's StepLR has no default)");
    refused("{" DATA
            ", \"optimizer\": {\"type\": \"adam\"}, \"lr_scheduler\": {\"type\": \"step\", "
            "\"step_size\": 0}}",
            "lr_scheduler.step_size: must be >= 1");
    refused("{" DATA ", \"optimizer\": {\"type\": \"adam\"}, \"lr_scheduler\": {\"type\": "
            "\"reduce_on_plateau\", \"factor\": 1}}",
            "lr_scheduler.factor: must be < 1");
    refused("{" DATA ", \"optimizer\": {\"type\": \"adam\"}, \"lr_scheduler\": {\"type\": "
            "\"reduce_on_plateau\", \"mode\": \"up\"}}",
            "lr_scheduler.mode: expected \"min\" or \"max\"");
    refused("{" DATA ", \"optimizer\": {\"type\": \"adam\"}, \"lr_scheduler\": {\"type\": "
            "\"cosine\", \"T_max\": 0}}",
            "lr_scheduler.T_max: must be >= 1");
    refused("{" DATA ", \"optimizer\": {\"type\": \"adam\"}, \"lr_scheduler\": {\"type\": "
            "\"exponential\"}}",
            "lr_scheduler.gamma: required");
    refused("{" DATA ", \"optimizer\": {\"type\": \"adam\"}, \"lr_scheduler\": {\"type\": "
            "\"multistep\", \"milestones\": [1.5]}}",
            "lr_scheduler.milestones");
    refused("{" DATA ", \"optimizer\": {\"type\": \"adam\"}, \"lr_scheduler\": {\"type\": "
            "\"step\", \"step_size\": 2, \"monitor\": \"loss\"}}",
            "unknown field \"monitor\"");
    refused("{" DATA ", \"optimizer\": {\"type\": \"adam\"}, \"lr_scheduler\": {\"type\": "
            "\"cyclic\"}}",
            "lr_scheduler.type: unknown scheduler \"cyclic\" (valid: step, multistep, "
            "exponential, cosine, reduce_on_plateau)");
    refused("{" DATA ", \"optimizer\": {\"type\": \"adam\"}, \"epochs\": 2, \"steps\": 3}",
            "\"epochs\" or \"steps\", not both");
    refused("{" DATA ", \"optimizer\": {\"type\": \"adam\"}, \"batch_size\": 0}", "batch_size");
    refused("{" DATA ", \"optimizer\": {\"type\": \"adam\"}, \"scheduler_interval\": \"batch\"}",
            "scheduler_interval: expected \"epoch\" or \"step\"");
    refused("{" DATA ", \"optimizer\": {\"type\": \"adam\"}, \"clip_grad_norm\": 0}",
            "clip_grad_norm: expected a max_norm > 0");
    refused("{" DATA ", \"optimizer\": {\"type\": \"adam\"}, \"save_as\": \".x\"}", "save_as");
    refused("{" DATA ", \"optimizer\": {\"type\": \"adam\"}, \"lr\": 0.1}",
            "body: unknown field \"lr\"");
    refused("{\"input\": [[1, 2]], \"target\": [[0]], \"optimizer\": {\"type\": \"adam\"}}",
            "loss: required");
    refused("{\"input\": [[1, 2]], \"target\": [0.5], \"loss\": {\"type\": \"cross_entropy\"}, "
            "\"optimizer\": {\"type\": \"adam\"}}",
            "target: 0.5 is not an integer");
    refused("{\"input\": [[1, 2], [3, 4]], \"target\": [0], \"loss\": {\"type\": \"nll\"}, "
            "\"optimizer\": {\"type\": \"adam\"}}",
            "target: nll takes 2 class indices [N], one per row");
}

/* Every row is reachable by its name and torch's, and its defaults are torch's. */
static void tables(void **state)
{
    (void)state;
    struct nn_err err;
    for (int k = 0; k < NN_OPTIM_COUNT; k++) {
        enum nn_optim_type a, b;
        assert_int_equal(nn_optim_lookup(nn_optims[k].name, &a, &err), NN_OK);
        assert_int_equal(nn_optim_lookup(nn_optims[k].torch, &b, &err), NN_OK);
        assert_int_equal(a, k);
        assert_int_equal(b, k);
    }
    for (int k = 0; k < NN_SCHED_COUNT; k++) {
        enum nn_sched_type a, b;
        assert_int_equal(nn_sched_lookup(nn_scheds[k].name, &a, &err), NN_OK);
        assert_int_equal(nn_sched_lookup(nn_scheds[k].torch, &b, &err), NN_OK);
        assert_int_equal(a, k);
        assert_int_equal(b, k);
    }
    struct nn_optim_cfg c;
    nn_optim_defaults(&c, NN_OPTIM_ADAMW);
    assert_true(c.lr == 1e-3 && c.betas[0] == 0.9 && c.betas[1] == 0.999 && c.eps == 1e-8 &&
                c.weight_decay == 1e-2 && !c.amsgrad && !c.maximize);
    nn_optim_defaults(&c, NN_OPTIM_ADAM);
    assert_true(c.weight_decay == 0);
    nn_optim_defaults(&c, NN_OPTIM_SGD);
    assert_true(isnan(c.lr) && c.momentum == 0 && c.dampening == 0 && !c.nesterov);
    struct nn_sched_cfg s;
    nn_sched_defaults(&s, NN_SCHED_PLATEAU);
    assert_true(s.mode == 0 && s.factor == 0.1 && s.patience == 10 && s.threshold == 1e-4 &&
                s.threshold_mode == 0 && s.cooldown == 0 && s.min_lr == 0 && s.eps == 1e-8);
    nn_sched_defaults(&s, NN_SCHED_STEP);
    assert_true(s.gamma == 0.1 && s.step_size == LONG_MIN);
}

/* docs/api.md's optimizer and scheduler tables are the core's: one row each, every field with
 * its default (or "(required)"). */
static void documented(void **state)
{
    (void)state;
    char path[PATH_MAX + 32];
    snprintf(path, sizeof path, "%s/docs/api.md", root);
    char *md = t_read_file(path, NULL);
    assert_non_null(md);
    int bad = 0;
    for (int t = 0; t < 2; t++) {
        int n = t ? NN_SCHED_COUNT : NN_OPTIM_COUNT;
        for (int k = 0; k < n; k++) {
            const char *name = t ? nn_scheds[k].name : nn_optims[k].name;
            const char *torch = t ? nn_scheds[k].torch : nn_optims[k].torch;
            const struct nn_hparam *ps = t ? nn_scheds[k].params : nn_optims[k].params;
            int np = t ? nn_scheds[k].nparams : nn_optims[k].nparams;
            char want[256];
            snprintf(want, sizeof want, "\n| `%s` | `%s` |", name, torch);
            const char *row = strstr(md, want);
            if (!row) {
                print_error("docs/api.md: no row \"%s\"\n", want + 1);
                bad++;
                continue;
            }
            const char *end = strchr(row + 1, '\n');
            size_t len = end ? (size_t)(end - row) : strlen(row);
            for (int i = 0; i < np; i++) {
                const struct nn_hparam *p = &ps[i];
                if (p->required)
                    snprintf(want, sizeof want, "`%s` (required)", p->name);
                else if (p->kind == NN_H_BOOL)
                    snprintf(want, sizeof want, "`%s = %s`", p->name, p->def[0] ? "true" : "false");
                else if (p->kind == NN_H_PAIR)
                    snprintf(want, sizeof want, "`%s = [%g, %g]`", p->name, p->def[0], p->def[1]);
                else if (p->kind == NN_H_CHOICE)
                    snprintf(want, sizeof want, "`%s = \"%s\"`", p->name,
                             p->choices[(int)p->def[0]]);
                else
                    snprintf(want, sizeof want, "`%s = %g`", p->name, p->def[0]);
                char *r = strndup(row, len);
                if (!strstr(r, want)) {
                    print_error("docs/api.md, %s: no %s in its row\n", name, want);
                    bad++;
                }
                free(r);
            }
        }
    }
    free(md);
    assert_int_equal(bad, 0);
}

/* ---- failures ---------------------------------------------------------------------------- */
/* A model's "layers" (JSON text) as a net of dtype dt (asserts). */
static void net_of(const char *model, enum nn_dtype dt, struct nn_net *net)
{
    struct srv_json *d;
    struct nn_err err;
    assert_int_equal(srv_json_parse(model, strlen(model), 0, &d, &err), NN_OK);
    assert_int_equal(srv_layers_parse(d, srv_json_get(d, srv_json_root(d), "layers"), dt, 0, 0,
                                      NULL, NULL, net, &err),
                     NN_OK);
    srv_json_free(d);
}

/* A float32 net whose gradients overflow: the step fails naming the step and the layer, and
 * the run never reports a non-finite number as a result. */
static void exploding(void **state)
{
    (void)state;
    const char *model = "{\"layers\": [{\"type\": \"linear\", \"weight\": [[1e18, 1e18], [1e18, "
                        "-1e18]], \"bias\": [0, 0]}, {\"type\": \"relu\"}, {\"type\": \"linear\", "
                        "\"weight\": [[1e18, 1e18]]}]}";
    struct nn_err err;
    struct nn_net net;
    net_of(model, NN_F32, &net);
    struct srv_train_req r;
    const char *body =
        "{\"input\": [[1, 2], [3, 1]], \"target\": [[0], [1]], \"loss\": {\"type\": "
        "\"mse\"}, \"optimizer\": {\"type\": \"sgd\", \"lr\": 0.1}, \"batch_size\": 2}";
    assert_int_equal(parse_body(body, &r, &err), NN_OK);
    struct nn_train_set tr = as_set(&r.train);
    struct nn_trainer t;
    assert_int_equal(nn_trainer_init(&t, &net, &r.cfg, &tr, NULL, &err), NN_OK);
    struct nn_train_step s;
    enum nn_status st = nn_trainer_step(&t, 0, &s, &err);
    assert_int_equal(st, NN_ENONFINITE);
    if (!strstr(err.msg, "step 1: ") || !strstr(err.msg, "layers["))
        fail_msg("message: %s", err.msg);
    nn_trainer_free(&t);
    srv_train_req_free(&r);
    srv_net_free(&net);
}

/* A learning rate that sends a weight to inf in the update: named as such. */
static void update_overflows(void **state)
{
    (void)state;
    const char *model =
        "{\"layers\": [{\"type\": \"linear\", \"weight\": [[1, 1]], \"bias\": [0]}]}";
    struct nn_err err;
    struct nn_net net;
    net_of(model, NN_F32, &net);
    struct srv_train_req r;
    const char *body = "{\"input\": [[1, 2]], \"target\": [[100]], \"loss\": {\"type\": \"mse\"}, "
                       "\"optimizer\": {\"type\": \"sgd\", \"lr\": 1e38}}";
    assert_int_equal(parse_body(body, &r, &err), NN_OK);
    struct nn_train_set tr = as_set(&r.train);
    struct nn_trainer t;
    assert_int_equal(nn_trainer_init(&t, &net, &r.cfg, &tr, NULL, &err), NN_OK);
    struct nn_train_step s;
    assert_int_equal(nn_trainer_step(&t, 0, &s, &err), NN_ENONFINITE);
    if (!strstr(err.msg, "step 1: layers[0] (linear): weight became non-finite"))
        fail_msg("message: %s", err.msg);
    nn_trainer_free(&t);
    srv_train_req_free(&r);
    srv_net_free(&net);
}

/* The cancel flag cuts a step between layers. */
static void cancelled(void **state)
{
    (void)state;
    const char *model = "{\"layers\": [{\"type\": \"linear\", \"weight\": [[1, 1]]}, {\"type\": "
                        "\"relu\"}]}";
    struct nn_err err;
    struct nn_net net;
    net_of(model, NN_F64, &net);
    struct srv_train_req r;
    const char *body = "{\"input\": [[1, 2]], \"target\": [[1]], \"loss\": {\"type\": \"mse\"}, "
                       "\"optimizer\": {\"type\": \"sgd\", \"lr\": 0.1}, \"epochs\": 3}";
    assert_int_equal(srv_train_parse(body, strlen(body), &cfg, NN_F64, &r, &err), NN_OK);
    struct nn_train_set tr = as_set(&r.train);
    struct nn_trainer t;
    assert_int_equal(nn_trainer_init(&t, &net, &r.cfg, &tr, NULL, &err), NN_OK);
    atomic_int cancel = 0;
    nn_trainer_set_cancel(&t, &cancel);
    struct nn_train_step s;
    assert_int_equal(nn_trainer_step(&t, 0, &s, &err), NN_OK);
    atomic_store(&cancel, 1);
    assert_int_equal(nn_trainer_step(&t, 0, &s, &err), NN_ECANCELED);
    assert_non_null(strstr(err.msg, "step 2: "));
    nn_trainer_free(&t);
    srv_train_req_free(&r);
    srv_net_free(&net);
}

/* Shapes that do not fit are refused before anything runs, naming the place. */
static void plan_errors(void **state)
{
    (void)state;
    const char *model =
        "{\"layers\": [{\"type\": \"linear\", \"weight\": [[1, 1], [2, 2], [3, 3]]}]}";
    struct nn_err err;
    struct nn_net net;
    net_of(model, NN_F32, &net);
    static const struct {
        const char *body, *part;
    } cases[] = {
        {"{\"input\": [[1, 2, 3]], \"target\": [[0, 0, 0]], \"loss\": {\"type\": \"mse\"}, "
         "\"optimizer\": {\"type\": \"adam\"}}",
         "layers[0] (linear)"},
        {"{\"input\": [[1, 2]], \"target\": [[0, 0]], \"loss\": {\"type\": \"mse\"}, "
         "\"optimizer\": {\"type\": \"adam\"}}",
         "target: rows of [1, 2] but the model's output is [1, 3]"},
        {"{\"input\": [[1, 2]], \"target\": [3], \"loss\": {\"type\": \"cross_entropy\"}, "
         "\"optimizer\": {\"type\": \"adam\"}}",
         "target[0]: class 3 out of range [0, 3)"},
        {"{\"input\": [1, 2], \"target\": [[0, 0, 0]], \"loss\": {\"type\": \"mse\"}, "
         "\"optimizer\": {\"type\": \"adam\"}}",
         "input: expected rows [N, features...]"},
        {"{\"input\": [[1, 2]], \"target\": [[0, 0, 0]], \"loss\": {\"type\": \"mse\"}, "
         "\"optimizer\": {\"type\": \"adam\"}, \"validation\": {\"input\": [[1, 2, 3]], "
         "\"target\": [[1, 1, 1]]}}",
         "validation.layers[0] (linear)"},
        {"{\"input\": [[1, 2]], \"target\": [[0, 0, 0]], \"loss\": {\"type\": \"mse\"}, "
         "\"optimizer\": {\"type\": \"adam\"}, \"early_stopping\": {\"monitor\": \"val_loss\"}}",
         "early_stopping.monitor: \"val_loss\" needs \"validation\" data"},
        {"{\"input\": [[1, 2]], \"target\": [[0, 0, 0]], \"loss\": {\"type\": \"mse\"}, "
         "\"optimizer\": {\"type\": \"adam\"}, \"lr_scheduler\": {\"type\": "
         "\"reduce_on_plateau\", \"monitor\": \"val_loss\"}}",
         "lr_scheduler.monitor: \"val_loss\" needs \"validation\" data"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        struct srv_train_req r;
        assert_int_equal(parse_body(cases[i].body, &r, &err), NN_OK);
        struct nn_train_set tr = as_set(&r.train), va = as_set(&r.val);
        size_t bytes;
        enum nn_status st = nn_train_plan(&net, &r.cfg, &tr, r.have_val ? &va : NULL, &bytes, &err);
        if (st == NN_OK || !strstr(err.msg, cases[i].part))
            fail_msg("case %zu: status %d: %s (wanted %s)", i, st, err.msg, cases[i].part);
        srv_train_req_free(&r);
    }
    srv_net_free(&net);
}

int main(void)
{
    t_repo_root(root, sizeof root);
    cfg_defaults(&cfg);
    char dir[PATH_MAX + 32];
    snprintf(dir, sizeof dir, "%s/tests/golden/train", root);
    char **paths = NULL;
    int n = t_list_json(dir, &paths);
    if (n <= 0) {
        fprintf(stderr, "test_optim: no golden runs in %s\n", dir);
        return 1;
    }
    struct CMUnitTest *tests = calloc((size_t)n + 16, sizeof *tests);
    int k = 0;
    for (int i = 0; i < n; i++) {
        const char *base = strrchr(paths[i], '/');
        tests[k++] =
            (struct CMUnitTest){base ? base + 1 : paths[i], run_case, NULL, NULL, paths[i]};
    }
    tests[k++] = (struct CMUnitTest)cmocka_unit_test(lr_schedules);
    tests[k++] = (struct CMUnitTest)cmocka_unit_test(torch_value_errors);
    tests[k++] = (struct CMUnitTest)cmocka_unit_test(tables);
    tests[k++] = (struct CMUnitTest)cmocka_unit_test(documented);
    tests[k++] = (struct CMUnitTest)cmocka_unit_test(exploding);
    tests[k++] = (struct CMUnitTest)cmocka_unit_test(update_overflows);
    tests[k++] = (struct CMUnitTest)cmocka_unit_test(cancelled);
    tests[k++] = (struct CMUnitTest)cmocka_unit_test(plan_errors);
    int rc = _cmocka_run_group_tests("optim", tests, (size_t)k, NULL, NULL);
    t_list_free(paths, n);
    free(tests);
    cfg_free(&cfg);
    return rc;
}
