/* The body of POST /v1/models/{name}/train, read: see train.h. The optimizer's and the
 * scheduler's fields come from the core's tables (core/optim.h), so the known names, the
 * defaults and the messages follow the rows. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "server/models.h"
#include "server/pass.h"
#include "server/tensors.h"
#include "server/train.h"

static const char *const body_keys[] = {"input",          "target",
                                        "loss",           "optimizer",
                                        "lr_scheduler",   "scheduler_interval",
                                        "clip_grad_norm", "batch_size",
                                        "epochs",         "steps",
                                        "shuffle",        "seed",
                                        "validation",     "early_stopping",
                                        "save_as",        NULL};

static enum nn_status unknown_key(const struct srv_json *d, srv_jv obj, const char *what,
                                  const char *const *known, struct nn_err *err)
{
    char k[64], list[320];
    if (!srv_json_unknown_field(d, obj, known, k, sizeof k, list, sizeof list))
        return NN_OK;
    return nn_err_set(err, NN_EINVAL, "%s: unknown field \"%s\" (known: %s)", what, k, list);
}

/* A member that is there and not null. */
static srv_jv member(const struct srv_json *d, srv_jv obj, const char *key)
{
    srv_jv v = srv_json_get(d, obj, key);
    return srv_json_type(d, v) == SRV_J_NULL ? 0 : v;
}

static enum nn_status get_long(const struct srv_json *d, srv_jv v, const char *where, long lo,
                               long *out, struct nn_err *err)
{
    int64_t x;
    struct nn_err e;
    if (srv_json_type(d, v) != SRV_J_NUMBER || srv_json_int(d, v, &x, where, &e) || x < lo ||
        x > (int64_t)(1LL << 53))
        return nn_err_set(err, NN_EINVAL, "%s: expected an integer >= %ld", where, lo);
    *out = (long)x;
    return NN_OK;
}

static enum nn_status get_bool(const struct srv_json *d, srv_jv v, const char *where, int *out,
                               struct nn_err *err)
{
    if (srv_json_type(d, v) != SRV_J_BOOL)
        return nn_err_set(err, NN_EINVAL, "%s: expected true or false", where);
    *out = srv_json_is_true(d, v);
    return NN_OK;
}

/* One of names (a NULL-terminated list) -> its index. */
static enum nn_status get_choice(const struct srv_json *d, srv_jv v, const char *where,
                                 const char *const *names, int *out, struct nn_err *err)
{
    for (int i = 0; names[i]; i++)
        if (srv_json_str_is(d, v, names[i])) {
            *out = i;
            return NN_OK;
        }
    char list[160];
    size_t n = 0;
    for (int i = 0; names[i] && n < sizeof list; i++)
        n += (size_t)snprintf(list + n, sizeof list - n, "%s\"%s\"", i ? " or " : "", names[i]);
    return nn_err_set(err, NN_EINVAL, "%s: expected %s", where, list);
}

/* The row's hyperparameters from obj into base (defaults already there). */
static enum nn_status read_hparams(const struct srv_json *d, srv_jv obj, const char *what,
                                   const struct nn_hparam *ps, int n, void *base,
                                   struct nn_err *err)
{
    char where[96];
    enum nn_status st;
    for (int i = 0; i < n; i++) {
        srv_jv v = member(d, obj, ps[i].name);
        if (!v)
            continue;
        snprintf(where, sizeof where, "%s.%s", what, ps[i].name);
        char *f = (char *)base + ps[i].off;
        size_t shape[NN_MAX_DIMS], cnt;
        int ndim;
        switch (ps[i].kind) {
        case NN_H_REAL:
            if (!srv_json_number(d, v, (double *)f))
                return nn_err_set(err, NN_EINVAL, "%s: expected a number", where);
            break;
        case NN_H_INT:
            if ((st = get_long(d, v, where, -(1L << 53), (long *)f, err)))
                return st;
            break;
        case NN_H_BOOL:
            if ((st = get_bool(d, v, where, (int *)f, err)))
                return st;
            break;
        case NN_H_CHOICE:
            if ((st = get_choice(d, v, where, ps[i].choices, (int *)f, err)))
                return st;
            break;
        case NN_H_PAIR:
            if (!srv_json_numarray(d, v, shape, &ndim, &cnt) || ndim != 1 || cnt != 2)
                return nn_err_set(err, NN_EINVAL, "%s: expected two numbers [a, b]", where);
            if ((st = srv_json_read(d, v, SRV_F64, f, 2, where, err)))
                return st;
            break;
        case NN_H_INTS: {
            int64_t vals[NN_SCHED_MAX_MILESTONES];
            if (!srv_json_numarray(d, v, shape, &ndim, &cnt) || ndim != 1 ||
                cnt > NN_SCHED_MAX_MILESTONES)
                return nn_err_set(err, NN_EINVAL, "%s: expected an array of up to %d integers",
                                  where, NN_SCHED_MAX_MILESTONES);
            if ((st = srv_json_read(d, v, SRV_I64, vals, cnt, where, err)))
                return st;
            for (size_t k = 0; k < cnt; k++)
                ((long *)f)[k] = (long)vals[k];
            *(int *)((char *)base + ps[i].count_off) = (int)cnt;
            break;
        }
        }
    }
    return NN_OK;
}

/* Known keys of a table row: "type", its hyperparameters, extra (may be NULL). */
static void row_keys(const char **keys, const struct nn_hparam *ps, int n, const char *extra)
{
    int k = 0;
    keys[k++] = "type";
    for (int i = 0; i < n; i++)
        keys[k++] = ps[i].name;
    if (extra)
        keys[k++] = extra;
    keys[k] = NULL;
}

static enum nn_status parse_optimizer(const struct srv_json *d, srv_jv o, struct nn_optim_cfg *c,
                                      struct nn_err *err)
{
    char type[48];
    if (srv_json_type(d, o) != SRV_J_OBJECT)
        return nn_err_set(err, NN_EINVAL,
                          "optimizer: required: an object like {\"type\": \"sgd\", \"lr\": 0.1}");
    if (srv_json_str(d, srv_json_get(d, o, "type"), type, sizeof type) == (size_t)-1)
        return nn_err_set(err, NN_EINVAL, "optimizer.type: expected an optimizer name");
    enum nn_optim_type ot;
    enum nn_status st = nn_optim_lookup(type, &ot, err);
    if (st)
        return st;
    const struct nn_optim_info *oi = &nn_optims[ot];
    const char *keys[NN_MAX_HPARAMS + 3];
    row_keys(keys, oi->params, oi->nparams, NULL);
    char what[64];
    snprintf(what, sizeof what, "optimizer (%s)", oi->name);
    nn_optim_defaults(c, ot);
    if ((st = unknown_key(d, o, what, keys, err)) ||
        (st = read_hparams(d, o, "optimizer", oi->params, oi->nparams, c, err)))
        return st;
    return nn_optim_check(c, err);
}

static enum nn_status parse_monitor(const struct srv_json *d, srv_jv v, const char *where,
                                    enum nn_monitor *m, struct nn_err *err)
{
    int i;
    enum nn_status st = get_choice(d, v, where, nn_monitor_names, &i, err);
    *m = (enum nn_monitor)i;
    return st;
}

static enum nn_status parse_scheduler(const struct srv_json *d, srv_jv o, struct nn_train_cfg *c,
                                      int have_val, struct nn_err *err)
{
    char type[48];
    if (srv_json_type(d, o) != SRV_J_OBJECT)
        return nn_err_set(err, NN_EINVAL,
                          "lr_scheduler: expected an object like {\"type\": \"step\", "
                          "\"step_size\": 10, \"gamma\": 0.1}");
    if (srv_json_str(d, srv_json_get(d, o, "type"), type, sizeof type) == (size_t)-1)
        return nn_err_set(err, NN_EINVAL, "lr_scheduler.type: expected a scheduler name");
    enum nn_sched_type stype;
    enum nn_status st = nn_sched_lookup(type, &stype, err);
    if (st)
        return st;
    const struct nn_sched_info *si = &nn_scheds[stype];
    const char *keys[NN_MAX_HPARAMS + 3];
    row_keys(keys, si->params, si->nparams, si->metric ? "monitor" : NULL);
    char what[64];
    snprintf(what, sizeof what, "lr_scheduler (%s)", si->name);
    nn_sched_defaults(&c->sched, stype);
    c->have_sched = 1;
    c->sched_monitor = have_val ? NN_MON_VAL_LOSS : NN_MON_LOSS;
    srv_jv mon = si->metric ? member(d, o, "monitor") : 0;
    if ((st = unknown_key(d, o, what, keys, err)) ||
        (st = read_hparams(d, o, "lr_scheduler", si->params, si->nparams, &c->sched, err)) ||
        (mon && (st = parse_monitor(d, mon, "lr_scheduler.monitor", &c->sched_monitor, err))))
        return st;
    return nn_sched_check(&c->sched, err);
}

static enum nn_status parse_loss(const struct srv_json *d, srv_jv lo, struct nn_train_cfg *c,
                                 struct nn_err *err)
{
    char type[48];
    if (srv_json_type(d, lo) != SRV_J_OBJECT)
        return nn_err_set(err, NN_EINVAL,
                          "loss: required: an object like {\"type\": \"cross_entropy\"} (the "
                          "targets are the body's \"target\")");
    if (srv_json_str(d, srv_json_get(d, lo, "type"), type, sizeof type) == (size_t)-1)
        return nn_err_set(err, NN_EINVAL, "loss.type: expected a loss name");
    enum nn_status st = nn_loss_lookup(type, &c->loss, err);
    if (st)
        return st;
    const struct nn_loss_info *li = &nn_losses[c->loss];
    const char *known[] = {"type", "reduction", li->param, NULL};
    if ((st = unknown_key(d, lo, "loss", known, err)))
        return st;
    struct srv_pass p; /* the loss options read as /v1/forward reads them */
    memset(&p, 0, sizeof p);
    p.loss = c->loss;
    if ((st = srv_pass_loss_opts(&p, d, lo, "loss", err)))
        return st;
    c->reduction = p.reduction;
    c->loss_param = p.loss_param;
    return NN_OK;
}

static enum nn_status parse_early_stop(const struct srv_json *d, srv_jv o, struct nn_train_cfg *c,
                                       int have_val, struct nn_err *err)
{
    static const char *const keys[] = {"patience", "min_delta", "monitor", NULL};
    enum nn_status st;
    if (srv_json_type(d, o) != SRV_J_OBJECT)
        return nn_err_set(err, NN_EINVAL,
                          "early_stopping: expected an object like {\"patience\": 3}");
    if ((st = unknown_key(d, o, "early_stopping", keys, err)))
        return st;
    c->early_stop = 1;
    c->es_patience = 3;
    c->es_min_delta = 0;
    c->es_monitor = have_val ? NN_MON_VAL_LOSS : NN_MON_LOSS;
    srv_jv v;
    if ((v = member(d, o, "patience")) &&
        (st = get_long(d, v, "early_stopping.patience", 0, &c->es_patience, err)))
        return st;
    if ((v = member(d, o, "min_delta")) && !srv_json_number(d, v, &c->es_min_delta))
        return nn_err_set(err, NN_EINVAL, "early_stopping.min_delta: expected a number >= 0");
    if ((v = member(d, o, "monitor")) &&
        (st = parse_monitor(d, v, "early_stopping.monitor", &c->es_monitor, err)))
        return st;
    return NN_OK;
}

/* The loop's settings besides the loss, optimizer and scheduler. */
static enum nn_status parse_loop(const struct srv_json *d, srv_jv root, struct nn_train_cfg *c,
                                 struct nn_err *err)
{
    static const char *const intervals[] = {"epoch", "step", NULL};
    enum nn_status st;
    long v;
    srv_jv x;
    c->batch_size = 1; /* DataLoader's defaults: batch_size 1, shuffle False */
    c->epochs = 1;
    if ((x = member(d, root, "batch_size"))) {
        if ((st = get_long(d, x, "batch_size", 1, &v, err)))
            return st;
        c->batch_size = (size_t)v;
    }
    srv_jv je = member(d, root, "epochs"), js = member(d, root, "steps");
    if (je && js)
        return nn_err_set(err, NN_EINVAL, "body: give \"epochs\" or \"steps\", not both");
    if (je && (st = get_long(d, je, "epochs", 1, &c->epochs, err)))
        return st;
    if (js && (st = get_long(d, js, "steps", 1, &c->steps, err)))
        return st;
    if ((x = member(d, root, "shuffle")) && (st = get_bool(d, x, "shuffle", &c->shuffle, err)))
        return st;
    if ((x = member(d, root, "seed"))) {
        if ((st = get_long(d, x, "seed", 0, &v, err)))
            return st;
        c->seed = (uint64_t)v;
    }
    int iv = 0;
    if ((x = member(d, root, "scheduler_interval")) &&
        (st = get_choice(d, x, "scheduler_interval", intervals, &iv, err)))
        return st;
    c->sched_per_step = iv == 1;
    if ((x = member(d, root, "clip_grad_norm")) &&
        (!srv_json_number(d, x, &c->clip) || !(c->clip > 0)))
        return nn_err_set(err, NN_EINVAL, "clip_grad_norm: expected a max_norm > 0");
    return NN_OK;
}

/* input and target of obj (the body, or its "validation") for rows of a dtype-dt model. */
static enum nn_status parse_set(const struct srv_json *d, srv_jv obj, const char *what,
                                enum nn_dtype dt, enum nn_loss loss, size_t max_elems,
                                struct srv_train_data *s, struct nn_err *err)
{
    char where[48];
    enum nn_status st;
    snprintf(where, sizeof where, "%sinput", what);
    srv_jv jx = srv_json_get(d, obj, "input"), jy = srv_json_get(d, obj, "target");
    if (!jx)
        return nn_err_set(err, NN_EINVAL, "%s: required: the rows to train on [N, features...]",
                          where);
    if ((st = srv_tensor_load(d, jx, dt, max_elems, where, &s->x, NULL, err)))
        return st;
    size_t es = nn_dtype_size(dt), n = s->x.ndim >= 1 ? s->x.shape[0] : 0;
    s->bytes = s->x.numel * es;
    snprintf(where, sizeof where, "%starget", what);
    if (!jy)
        return nn_err_set(err, NN_EINVAL, "%s: required", where);
    if (!nn_losses[loss].class_target) {
        if ((st = srv_tensor_load(d, jy, dt, max_elems, where, &s->y, NULL, err)))
            return st;
        s->bytes += s->y.numel * es;
        return NN_OK;
    }
    struct srv_tfind tf;
    if ((st = srv_tensor_find(d, jy, max_elems, 0, where, &tf, err)))
        return st;
    if (tf.ndim != 1 || tf.numel != n)
        return nn_err_set(err, NN_EINVAL, "%s: %s takes %zu class indices [N], one per row", where,
                          nn_losses[loss].name, n);
    if (!(s->classes = malloc(n ? n * sizeof *s->classes : 1)))
        return nn_err_set(err, NN_ENOMEM, "%s: out of memory", where);
    s->bytes += n * sizeof *s->classes;
    return srv_tensor_read(d, &tf, SRV_I64, s->classes, where, err);
}

static void data_free(struct srv_train_data *s)
{
    free(s->x.data);
    free(s->y.data);
    free(s->classes);
    memset(s, 0, sizeof *s);
}

void srv_train_req_free(struct srv_train_req *r)
{
    if (!r)
        return;
    data_free(&r->train);
    data_free(&r->val);
    memset(r, 0, sizeof *r);
}

static enum nn_status parse_root(const struct srv_json *d, srv_jv root, const struct cfg *c,
                                 enum nn_dtype dt, struct srv_train_req *r, struct nn_err *err)
{
    enum nn_status st;
    if (srv_json_type(d, root) != SRV_J_OBJECT)
        return nn_err_set(err, NN_EINVAL, "body: expected a JSON object");
    if ((st = unknown_key(d, root, "body", body_keys, err)))
        return st;
    struct nn_train_cfg *tc = &r->cfg;
    srv_jv jval = member(d, root, "validation");
    r->have_val = jval != 0;
    if (jval && srv_json_type(d, jval) != SRV_J_OBJECT)
        return nn_err_set(err, NN_EINVAL, "validation: expected {\"input\": ..., \"target\": ...}");
    static const char *const val_keys[] = {"input", "target", NULL};
    srv_jv x;
    if ((st = parse_loss(d, srv_json_get(d, root, "loss"), tc, err)) ||
        (st = parse_optimizer(d, srv_json_get(d, root, "optimizer"), &tc->optim, err)) ||
        ((x = member(d, root, "lr_scheduler")) &&
         (st = parse_scheduler(d, x, tc, r->have_val, err))) ||
        (st = parse_loop(d, root, tc, err)) ||
        ((x = member(d, root, "early_stopping")) &&
         (st = parse_early_stop(d, x, tc, r->have_val, err))))
        return st;
    if ((x = member(d, root, "save_as"))) {
        if (srv_json_str(d, x, r->save_as, sizeof r->save_as) >= sizeof r->save_as ||
            !srv_model_name_ok(r->save_as))
            return nn_err_set(err, NN_EINVAL,
                              "save_as: expected a model name ([A-Za-z0-9_.-], 1 to 127 "
                              "characters, not starting with '.')");
    }
    tc->max_elems = c->max_tensor_elements;
    tc->max_ws_bytes = c->max_workspace_bytes;
    if ((st = parse_set(d, root, "", dt, tc->loss, c->max_tensor_elements, &r->train, err)))
        return st;
    if (jval && ((st = unknown_key(d, jval, "validation", val_keys, err)) ||
                 (st = parse_set(d, jval, "validation.", dt, tc->loss, c->max_tensor_elements,
                                 &r->val, err))))
        return st;
    return NN_OK;
}

enum nn_status srv_train_parse(const char *body, size_t len, const struct cfg *c, enum nn_dtype dt,
                               struct srv_train_req *r, struct nn_err *err)
{
    memset(r, 0, sizeof *r);
    struct srv_json *d = NULL;
    enum nn_status st = srv_json_parse(body ? body : "", len, c->max_json_values, &d, err);
    if (st == NN_OK)
        st = parse_root(d, srv_json_root(d), c, dt, r, err);
    srv_json_free(d);
    if (st)
        srv_train_req_free(r);
    return st;
}
