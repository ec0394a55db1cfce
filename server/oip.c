/* The Open Inference Protocol (KServe v2) as Triton speaks it over REST: model metadata,
 * readiness, statistics and infer (JSON and the binary tensor data extension); gradients
 * and diagnostics as relud's own extension (request parameters "gradients", "loss",
 * "reduction", "clip_grad_norm", "stats"). Infer flows parse -> plan -> run -> reply: the
 * inputs are located (their shapes, where their numbers or bytes are), the pass planned,
 * then the input decoded or converted straight into the workspace. */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "server/json.h"
#include "server/models.h"
#include "server/pass.h"
#include "server/srv.h"
#include "server/tensors.h"

static const char *model_datatype(enum nn_dtype dt) { return dt == NN_F32 ? "FP32" : "FP64"; }

/* Looks the model up and replies 404/503 if it is not there. */
static struct srv_model *get_model(struct srv_req *req, struct srv_reply *rep)
{
    if (req->version[0] && strcmp(req->version, "1") != 0) {
        srv_reply_error(rep, 404, "model %s has no version \"%s\" (versions: [\"1\"])", req->name,
                        req->version);
        return NULL;
    }
    enum nn_status st;
    struct nn_err err;
    struct srv_model *m = srv_models_get(req->srv->models, req->name, &st, &err);
    if (!m) {
        srv_reply_nn_error(rep, st, &err);
        return NULL;
    }
    srv_strcpy(req->model, sizeof req->model, m->name);
    return m;
}

/* An input or output: its name and shape as the model has them (models.h). */
static void tensor_meta(struct srv_jw *w, const struct srv_model_io *io, enum nn_dtype dt)
{
    srv_jw_obj(w);
    srv_jw_kstr(w, "name", io->name);
    srv_jw_kstr(w, "datatype", model_datatype(dt));
    srv_jw_key(w, "shape");
    srv_jw_arr(w);
    for (int i = 0; i < io->ndim; i++)
        srv_jw_int(w, io->shape[i]);
    srv_jw_end(w);
    srv_jw_end(w);
}

void srv_h_model_meta(struct srv_req *req, struct srv_reply *rep)
{
    struct srv_model *m = get_model(req, rep);
    if (!m)
        return;
    struct srv_jw w;
    srv_jw_init(&w, 512, 0);
    srv_jw_obj(&w);
    srv_jw_kstr(&w, "name", m->name);
    srv_jw_key(&w, "versions");
    srv_jw_arr(&w);
    srv_jw_str(&w, "1");
    srv_jw_end(&w);
    srv_jw_kstr(&w, "platform", m->platform);
    srv_jw_key(&w, "inputs");
    srv_jw_arr(&w);
    tensor_meta(&w, &m->input, m->dtype);
    srv_jw_end(&w);
    srv_jw_key(&w, "outputs");
    srv_jw_arr(&w);
    tensor_meta(&w, &m->output, m->dtype);
    srv_jw_end(&w);
    srv_jw_end(&w);
    srv_model_release(m);
    srv_reply_jw(rep, 200, &w);
}

/* One input or output of Triton's model configuration: without the batch dimension when
 * the model has max_batch_size (Triton's convention), else the whole shape. */
static void config_tensor(struct srv_jw *w, const struct srv_model_io *io,
                          const struct srv_model *m)
{
    srv_jw_obj(w);
    srv_jw_kstr(w, "name", io->name);
    srv_jw_kstr(w, "data_type", m->dtype == NN_F32 ? "TYPE_FP32" : "TYPE_FP64");
    srv_jw_key(w, "dims");
    srv_jw_arr(w);
    for (int i = m->batch.max_batch_size ? 1 : 0; i < io->ndim; i++)
        srv_jw_int(w, io->shape[i]);
    srv_jw_end(w);
    srv_jw_end(w);
}

/* Triton's model configuration (GET /v2/models/NAME/config), as its JSON form. */
void srv_h_model_config(struct srv_req *req, struct srv_reply *rep)
{
    struct srv_model *m = get_model(req, rep);
    if (!m)
        return;
    struct srv_jw w;
    srv_jw_init(&w, 1024, 0);
    srv_jw_obj(&w);
    srv_jw_kstr(&w, "name", m->name);
    srv_jw_kstr(&w, "platform", m->platform);
    srv_jw_kstr(&w, "backend", "relud");
    srv_batch_cfg_write(&m->batch, &w);
    srv_jw_key(&w, "input");
    srv_jw_arr(&w);
    config_tensor(&w, &m->input, m);
    srv_jw_end(&w);
    srv_jw_key(&w, "output");
    srv_jw_arr(&w);
    config_tensor(&w, &m->output, m);
    srv_jw_end(&w);
    srv_jw_end(&w);
    srv_model_release(m);
    srv_reply_jw(rep, 200, &w);
}

void srv_h_model_ready(struct srv_req *req, struct srv_reply *rep)
{
    struct srv_model *m = get_model(req, rep);
    if (!m)
        return;
    struct srv_jw w;
    srv_jw_init(&w, 256, 0);
    srv_jw_obj(&w);
    srv_jw_kstr(&w, "name", m->name);
    srv_jw_kbool(&w, "ready", 1);
    srv_jw_end(&w);
    srv_model_release(m);
    srv_reply_jw(rep, 200, &w);
}

/* ---- statistics ------------------------------------------------------------------------ */
static void duration(struct srv_jw *w, const char *key, unsigned long long count,
                     unsigned long long ns)
{
    srv_jw_key(w, key);
    srv_jw_obj(w);
    srv_jw_kuint(w, "count", count);
    srv_jw_kuint(w, "ns", ns);
    srv_jw_end(w);
}

/* One entry of Triton's batch_stats. */
static void batch_stat(void *ctx, const struct srv_batch_size_stat *b)
{
    struct srv_jw *w = ctx;
    srv_jw_obj(w);
    srv_jw_kuint(w, "batch_size", b->batch_size);
    duration(w, "compute_input", b->count, b->input_ns);
    duration(w, "compute_infer", b->count, b->infer_ns);
    duration(w, "compute_output", b->count, b->output_ns);
    srv_jw_end(w);
}

struct stats_ctx {
    struct srv_jw *w;
    const char *only; /* one model's name, or NULL for all */
};

static void model_stats(void *ctx, const char *name, enum srv_model_state state, const char *reason,
                        const struct srv_model_stats *st, const struct srv_model *model)
{
    struct stats_ctx *c = ctx;
    struct srv_jw *w = c->w;
    (void)state, (void)reason;
    if (c->only && strcmp(c->only, name))
        return;
    unsigned long long ok = atomic_load(&st->success_count);
    srv_jw_obj(w);
    srv_jw_kstr(w, "name", name);
    srv_jw_kstr(w, "version", "1");
    srv_jw_kuint(w, "last_inference", atomic_load(&st->last_inference_ms));
    srv_jw_kuint(w, "inference_count", atomic_load(&st->inference_count));
    srv_jw_kuint(w, "execution_count", atomic_load(&st->batch.executions));
    srv_jw_key(w, "inference_stats");
    srv_jw_obj(w);
    duration(w, "success", ok, atomic_load(&st->success_ns));
    duration(w, "fail", atomic_load(&st->fail_count), atomic_load(&st->fail_ns));
    duration(w, "queue", ok, atomic_load(&st->queue_ns));
    duration(w, "compute_input", ok, atomic_load(&st->compute_input_ns));
    duration(w, "compute_infer", ok, atomic_load(&st->compute_infer_ns));
    duration(w, "compute_output", ok, atomic_load(&st->compute_output_ns));
    duration(w, "cache_hit", 0, 0); /* relud has no response cache */
    duration(w, "cache_miss", 0, 0);
    srv_jw_end(w);
    srv_jw_key(w, "response_stats"); /* per response of a decoupled model: relud has none */
    srv_jw_obj(w);
    srv_jw_end(w);
    srv_jw_key(w, "batch_stats");
    srv_jw_arr(w);
    srv_batch_stats_foreach(&st->batch, batch_stat, w);
    srv_jw_end(w);
    /* the serving version's parameters, in host memory */
    srv_jw_key(w, "memory_usage");
    srv_jw_arr(w);
    if (model) {
        size_t bytes = 0;
        for (int i = 0; i < model->net.nlayers; i++) {
            const struct nn_layer *l = &model->net.layers[i];
            bytes += (l->weight.numel + l->bias.numel) * nn_dtype_size(model->dtype);
        }
        srv_jw_obj(w);
        srv_jw_kstr(w, "type", "CPU");
        srv_jw_kint(w, "id", 0);
        srv_jw_kuint(w, "byte_size", bytes);
        srv_jw_end(w);
    }
    srv_jw_end(w);
    srv_jw_end(w);
}

void srv_h_model_stats(struct srv_req *req, struct srv_reply *rep)
{
    struct srv_model *m = NULL;
    if (req->name[0] && !(m = get_model(req, rep)))
        return;
    struct srv_jw w;
    srv_jw_init(&w, 2048, 0);
    srv_jw_obj(&w);
    srv_jw_key(&w, "model_stats");
    srv_jw_arr(&w);
    struct stats_ctx c = {&w, m ? m->name : NULL};
    srv_models_foreach(req->srv->models, model_stats, &c);
    srv_jw_end(&w);
    srv_jw_end(&w);
    srv_model_release(m);
    srv_reply_jw(rep, 200, &w);
}

/* ---- infer: request parameters ---------------------------------------------------------- */
/* Request parameters relud reads, and Triton's reserved ones (accepted, and ignored unless
 * docs/api.md says otherwise); any other name is refused, as /v1 refuses unknown fields,
 * so that a typo ("lossx") is not silently a request without a loss. */
static const char *const relud_params[] = {
    "gradients",      "loss",  "reduction",          "beta", "delta",
    "clip_grad_norm", "stats", "binary_data_output", NULL};
static const char *const triton_params[] = {
    "sequence_id", "sequence_start", "sequence_end", "priority", "timeout", "headers", NULL};

/* Edit distance of two short names, capped at 9. */
static int edits(const char *a, const char *b)
{
    size_t la = strlen(a), lb = strlen(b);
    if (la > 40 || lb > 40)
        return 9;
    int d[41][41];
    for (size_t i = 0; i <= la; i++)
        d[i][0] = (int)i;
    for (size_t j = 0; j <= lb; j++)
        d[0][j] = (int)j;
    for (size_t i = 1; i <= la; i++)
        for (size_t j = 1; j <= lb; j++) {
            int c = d[i - 1][j - 1] + (a[i - 1] != b[j - 1]);
            int x = d[i - 1][j] + 1, y = d[i][j - 1] + 1;
            d[i][j] = c < x ? (c < y ? c : y) : (x < y ? x : y);
        }
    return d[la][lb] > 9 ? 9 : d[la][lb];
}

static enum nn_status unknown_param(const char *name, struct nn_err *err)
{
    const char *best = NULL;
    int bd = 3; /* a near miss: at most 2 edits */
    for (int l = 0; l < 2; l++)
        for (const char *const *k = l ? triton_params : relud_params; *k; k++) {
            int e = edits(name, *k);
            if (e < bd)
                bd = e, best = *k;
        }
    char list[200];
    size_t n = 0;
    for (const char *const *k = relud_params; *k && n < sizeof list; k++)
        n += (size_t)snprintf(list + n, sizeof list - n, "%s%s", n ? ", " : "", *k);
    return nn_err_set(err, NN_EINVAL,
                      "parameters: unknown parameter \"%.40s\"%s%s%s (relud's: %s; Triton's "
                      "sequence_*, priority, timeout, headers and triton_* are accepted)",
                      name, best ? "; did you mean \"" : "", best ? best : "", best ? "\"?" : "",
                      list);
}

static int listed(const struct srv_json *d, srv_jv member, const char *const *list)
{
    for (; *list; list++)
        if (srv_json_key_is(d, member, *list))
            return 1;
    return 0;
}

/* One infer request while it is handled. */
struct infer {
    struct srv_req *req;
    struct srv_model *m;
    struct srv_json *d;
    srv_jv root, params;
    struct srv_pass p;
    int has_loss, want_grads, binary_out;
    const char *bin; /* the body after the JSON header: binary tensor data */
    size_t bin_len, bin_off;
    uint64_t timeout_us; /* Triton's "timeout": the most time queued for a batch */
    struct srv_req_times tm;
    struct srv_batch_job *job;    /* a batched request's, or NULL */
    size_t in_shape[NN_MAX_DIMS]; /* the input's shape as sent (an ONNX model may flatten it) */
    int in_ndim;
    struct nn_tensor dinput; /* grad:<input>, in that shape */
    struct nn_tensor *grads; /* an ONNX model's gradients by initializer */
    void *grad_buf;
};

/* relud's extension parameters (see the file comment). Flags that are not booleans are
 * errors, not false. Sets the loss, clipping and stats of the pass. */
static enum nn_status parse_params(struct infer *q, struct nn_err *err)
{
    const struct srv_json *d = q->d;
    srv_jv params = q->params;
    if (!params)
        return NN_OK;
    if (srv_json_type(d, params) != SRV_J_OBJECT)
        return nn_err_set(err, NN_EINVAL, "parameters: expected an object");
    char key[64];
    for (srv_jv k = srv_json_child(d, params); k; k = srv_json_next(d, k))
        if (!listed(d, k, relud_params) && !listed(d, k, triton_params) &&
            strncmp(srv_json_key(d, k, key, sizeof key), "triton_", 7))
            return unknown_param(key, err);
    static const char *const flags[] = {"gradients", "stats", "binary_data_output"};
    for (size_t f = 0; f < sizeof flags / sizeof *flags; f++) {
        srv_jv v = srv_json_get(d, params, flags[f]);
        if (v && srv_json_type(d, v) != SRV_J_BOOL)
            return nn_err_set(err, NN_EINVAL, "parameters.%s: expected true or false", flags[f]);
    }
    enum nn_status st;
    srv_jv jloss = srv_json_get(d, params, "loss");
    if (jloss) {
        char name[48];
        if (srv_json_str(d, jloss, name, sizeof name) == (size_t)-1)
            return nn_err_set(err, NN_EINVAL, "parameters.loss: expected a loss name");
        if ((st = nn_loss_lookup(name, &q->p.loss, err)) ||
            (st = srv_pass_loss_opts(&q->p, d, params, "parameters", err)))
            return st;
        q->has_loss = 1;
    }
    q->want_grads = srv_json_is_true(d, srv_json_get(d, params, "gradients")) || jloss;
    q->p.want_stats = srv_json_is_true(d, srv_json_get(d, params, "stats"));
    q->binary_out = srv_json_is_true(d, srv_json_get(d, params, "binary_data_output"));
    srv_jv tmo = srv_json_get(d, params, "timeout");
    int64_t us;
    if (tmo && (srv_json_int(d, tmo, &us, "parameters.timeout", NULL) || us < 0))
        return nn_err_set(err, NN_EINVAL,
                          "parameters.timeout: expected microseconds, an integer >= 0");
    q->timeout_us = tmo ? (uint64_t)us : 0;
    srv_jv clip = srv_json_get(d, params, "clip_grad_norm");
    if (clip) {
        if (!srv_json_number(d, clip, &q->p.clip) || !(q->p.clip > 0))
            return nn_err_set(err, NN_EINVAL, "parameters.clip_grad_norm: expected a max_norm > 0");
        q->want_grads = 1;
    }
    return NN_OK;
}

/* ---- infer: inputs ------------------------------------------------------------------------ */
/* One request input, located: its shape and where its values are (JSON numbers, or binary
 * bytes of a wire datatype). */
struct located {
    char where[96];
    size_t shape[NN_MAX_DIMS];
    int ndim;
    size_t numel;
    enum srv_wire wire;
    const void *bin; /* binary data, or NULL */
    srv_jv data;     /* JSON data */
};

static enum nn_status locate_input(struct infer *q, srv_jv in, int idx, const char *name,
                                   struct located *l, struct nn_err *err)
{
    const struct srv_json *d = q->d;
    size_t max_elems = q->req->srv->cfg.max_tensor_elements;
    memset(l, 0, sizeof *l);
    snprintf(l->where, sizeof l->where, "inputs[%d] (%s)", idx, name);
    const char *where = l->where;
    char dtn[40], sh[96];
    if (srv_json_str(d, srv_json_get(d, in, "datatype"), dtn, sizeof dtn) == (size_t)-1)
        return nn_err_set(err, NN_EINVAL, "%s.datatype: required (FP32, FP64 or an integer type)",
                          where);
    int w = srv_wire_find(dtn);
    if (w < 0)
        return nn_err_set(err, NN_EINVAL, "%s.datatype: unknown datatype \"%.32s\"", where, dtn);
    if (srv_wire[w].kind < 0)
        return nn_err_set(err, NN_EINVAL,
                          "%s.datatype: %s is not supported by relud (use FP32, FP64 or an integer "
                          "type)",
                          where, srv_wire[w].name);
    l->wire = (enum srv_wire)w;
    enum nn_status st =
        srv_tensor_shape(d, srv_json_get(d, in, "shape"), 0, where, l->shape, &l->ndim, err);
    if (st || (st = nn_shape_numel(l->shape, l->ndim, max_elems, &l->numel, where, err)))
        return st;
    srv_jv params = srv_json_get(d, in, "parameters");
    srv_jv bsize = srv_json_get(d, params, "binary_data_size");
    srv_jv data = srv_json_get(d, in, "data");
    if (bsize) {
        int64_t n;
        size_t eb = (size_t)srv_wire[w].bytes;
        if (data)
            return nn_err_set(err, NN_EINVAL, "%s: both \"data\" and binary_data_size given",
                              where);
        if (srv_json_int(d, bsize, &n, where, NULL) || n < 0)
            return nn_err_set(err, NN_EINVAL,
                              "%s.parameters.binary_data_size: expected a byte count", where);
        if ((size_t)n != l->numel * eb)
            return nn_err_set(err, NN_EINVAL,
                              "%s: binary_data_size %lld but shape %s of %s needs %zu bytes", where,
                              (long long)n, nn_shape_str(sh, sizeof sh, l->shape, l->ndim),
                              srv_wire[w].name, l->numel * eb);
        if ((size_t)n > q->bin_len - q->bin_off)
            return nn_err_set(err, NN_EINVAL,
                              "%s: binary_data_size %lld runs past the end of the body (%zu binary "
                              "bytes left)",
                              where, (long long)n, q->bin_len - q->bin_off);
        l->bin = q->bin + q->bin_off;
        q->bin_off += (size_t)n;
        return NN_OK;
    }
    size_t dnumel;
    if (!data || !srv_json_numarray(d, data, NULL, NULL, &dnumel))
        return nn_err_set(err, NN_EINVAL,
                          "%s.data: expected an array of numbers (flat or nested), or "
                          "parameters.binary_data_size with binary data",
                          where);
    if (dnumel != l->numel)
        return nn_err_set(err, NN_EINVAL, "%s: data has %zu values but shape %s needs %zu", where,
                          dnumel, nn_shape_str(sh, sizeof sh, l->shape, l->ndim), l->numel);
    l->data = data;
    return NN_OK;
}

/* Decodes a located input into dst (l->numel values of t): binary through the wire
 * converter; JSON floats straight into t; JSON integers read exactly, checked against
 * their datatype's range (INT8 300 is an error), then converted. */
static enum nn_status decode(const struct infer *q, const struct located *l, enum srv_num t,
                             void *dst, struct nn_err *err)
{
    if (l->bin)
        return srv_wire_convert(l->wire, l->bin, l->numel, t, dst, l->where, err);
    char w2[112];
    snprintf(w2, sizeof w2, "%s.data", l->where);
    const struct srv_wire_info *wi = &srv_wire[l->wire];
    if (wi->kind == 0 && t != SRV_I64)
        return srv_json_read(q->d, l->data, t, dst, l->numel, w2, err);
    int64_t *iv = t == SRV_I64 ? dst : malloc(l->numel ? l->numel * sizeof *iv : 1);
    if (!iv)
        return nn_err_set(err, NN_ENOMEM, "%s: out of memory", l->where);
    enum nn_status st = srv_json_read(q->d, l->data, SRV_I64, iv, l->numel, w2, err);
    if (!st && wi->kind > 0) {
        int bits = 8 * wi->bytes, sgn = wi->kind == 1;
        int64_t lo = !sgn ? 0 : bits == 64 ? INT64_MIN : -((int64_t)1 << (bits - 1));
        int64_t hi = bits == 64 ? INT64_MAX : ((int64_t)1 << (bits - sgn)) - 1;
        for (size_t i = 0; !st && i < l->numel; i++)
            if (iv[i] < lo || iv[i] > hi)
                st = nn_err_set(err, NN_EINVAL, "%s[%zu]: %lld is out of range for %s", w2, i,
                                (long long)iv[i], wi->name);
    }
    if (!st && t != SRV_I64)
        st = srv_wire_convert(SRV_WIRE_INT64, iv, l->numel, t, dst, l->where, err);
    if (iv != dst)
        free(iv);
    return st;
}

/* grad_output / a float target: decoded into its own buffer. */
static enum nn_status load_input(const struct infer *q, const struct located *l,
                                 struct nn_tensor *t, struct nn_err *err)
{
    enum nn_dtype dt = q->m->dtype;
    memset(t, 0, sizeof *t);
    t->dtype = dt;
    t->ndim = l->ndim;
    memcpy(t->shape, l->shape, sizeof t->shape);
    t->numel = l->numel;
    if (!(t->data = malloc(l->numel ? l->numel * nn_dtype_size(dt) : 1)))
        return nn_err_set(err, NN_ENOMEM, "%s: out of memory", l->where);
    return decode(q, l, dt == NN_F32 ? SRV_F32 : SRV_F64, t->data, err);
}

/* The request's inputs: "input" (located; decoded after the plan), and with gradients
 * "grad_output" or "target" (each once, decoded now). Sets the pass's backward mode. */
static enum nn_status read_inputs(struct infer *q, struct located *input, struct nn_err *err)
{
    const struct srv_json *d = q->d;
    struct srv_pass *p = &q->p;
    srv_jv inputs = srv_json_get(d, q->root, "inputs");
    if (srv_json_type(d, inputs) != SRV_J_ARRAY || !srv_json_count(d, inputs))
        return nn_err_set(err, NN_EINVAL, "inputs: expected a non-empty array of input tensors");
    int have_input = 0, have_go = 0, have_target = 0, i = 0;
    enum nn_status st = NN_OK;
    for (srv_jv in = srv_json_child(d, inputs); in && !st; in = srv_json_next(d, in), i++) {
        char n[SRV_MODEL_NAME];
        struct located l;
        srv_jv name = srv_json_type(d, in) == SRV_J_OBJECT ? srv_json_get(d, in, "name") : 0;
        if (srv_json_str(d, name, n, sizeof n) == (size_t)-1)
            return nn_err_set(err, NN_EINVAL, "inputs[%d].name: required", i);
        if (!strcmp(n, q->m->input.name) && !have_input) {
            st = locate_input(q, in, i, n, input, err);
            have_input = 1;
        } else if (!strcmp(n, "grad_output") && !have_go) {
            if (!(st = locate_input(q, in, i, n, &l, err)))
                st = load_input(q, &l, &p->grad_output, err);
            have_go = 1;
        } else if (!strcmp(n, "target") && !have_target && q->has_loss) {
            if ((st = locate_input(q, in, i, n, &l, err)))
                break;
            if (nn_losses[p->loss].class_target) {
                p->target.ndim = l.ndim;
                memcpy(p->target.shape, l.shape, sizeof l.shape);
                if (!(p->classes = malloc(l.numel ? l.numel * sizeof *p->classes : 1)))
                    st = nn_err_set(err, NN_ENOMEM, "%s: out of memory", l.where);
                else
                    st = decode(q, &l, SRV_I64, p->classes, err);
            } else {
                st = load_input(q, &l, &p->target, err);
            }
            have_target = 1;
        } else if (!strcmp(n, "target") && !q->has_loss) {
            return nn_err_set(err, NN_EINVAL,
                              "inputs[%d] (target): needs the request parameter \"loss\"", i);
        } else {
            return nn_err_set(err, NN_EINVAL,
                              "inputs[%d].name: unexpected input \"%.60s\" (model %s takes "
                              "\"%.60s\"; with gradients also \"grad_output\" or \"target\"; "
                              "each once)",
                              i, n, q->m->name, q->m->input.name);
        }
    }
    if (st)
        return st;
    if (!have_input)
        return nn_err_set(err, NN_EINVAL, "inputs: no input named \"%s\" (model %s)",
                          q->m->input.name, q->m->name);
    if (have_go && q->has_loss)
        return nn_err_set(err, NN_EINVAL,
                          "inputs: give either \"grad_output\" or parameters.loss, not both");
    if (q->has_loss && !have_target)
        return nn_err_set(err, NN_EINVAL,
                          "inputs: parameters.loss needs an input named \"target\"");
    if (have_go && !q->want_grads)
        return nn_err_set(err, NN_EINVAL,
                          "inputs: \"grad_output\" needs parameters.gradients = true");
    p->backward = q->has_loss     ? SRV_BWD_LOSS
                  : have_go       ? SRV_BWD_GRAD_OUTPUT
                  : q->want_grads ? SRV_BWD_SUM
                                  : SRV_BWD_NONE;
    if (q->bin_off != q->bin_len)
        return nn_err_set(err, NN_EINVAL,
                          "body: %zu bytes of binary data are not claimed by any binary_data_size",
                          q->bin_len - q->bin_off);
    return NN_OK;
}

/* ---- infer: outputs ----------------------------------------------------------------------- */
/* An output the pass offers: "output", and with gradients "grad:input", "grad:<i>.weight",
 * "grad:<i>.bias" (state_dict names) and "loss". An ONNX model's are named by its graph:
 * "<output>", "grad:<input>", "grad:<initializer>". */
struct oip_out {
    char name[SRV_MODEL_NAME + 8];
    const struct nn_tensor *t;
    int binary;
    int finite; /* scanned for inf/nan already: the pass's output (nn_net_run's scan) */
};

/* Fills outs (room for 2 * nlayers + nparams + 3) and returns how many; loss is the
 * 1-element tensor for "loss". */
static int offered_outputs(const struct infer *q, const struct nn_tensor *loss,
                           struct oip_out *outs)
{
    const struct srv_pass *p = &q->p;
    const struct srv_model *m = q->m;
    int n = 0;
    outs[n].t = srv_pass_output(p);
    outs[n].finite = 1;
    srv_strcpy(outs[n++].name, sizeof outs[0].name, m->output.name);
    if (p->backward == SRV_BWD_NONE)
        return n;
    outs[n].t = &q->dinput;
    snprintf(outs[n++].name, sizeof outs[0].name, "grad:%s", m->input.name);
    for (int k = 0; m->onnx && k < m->onnx->nparams; k++) {
        outs[n].t = &q->grads[k];
        snprintf(outs[n++].name, sizeof outs[0].name, "grad:%s", m->onnx->params[k].name);
    }
    for (int l = 0; !m->onnx && l < p->net->nlayers; l++) {
        if (p->ws.dweight[l].ndim) {
            outs[n].t = &p->ws.dweight[l];
            snprintf(outs[n++].name, sizeof outs[0].name, "grad:%d.weight", l);
        }
        if (p->ws.dbias[l].ndim) {
            outs[n].t = &p->ws.dbias[l];
            snprintf(outs[n++].name, sizeof outs[0].name, "grad:%d.bias", l);
        }
    }
    if (p->backward == SRV_BWD_LOSS)
        outs[n++] = (struct oip_out){"loss", loss, 0, 1}; /* the core checks the loss */
    return n;
}

/* The request's "outputs" (all when absent or []) into order[] (reply order, each once),
 * with each one's binary flag: a per-output "binary_data" overrides binary_data_output, as
 * in Triton. Returns how many, or -1 with err. */
static int select_outputs(const struct infer *q, struct oip_out *outs, int nout, int *order,
                          struct nn_err *err)
{
    const struct srv_json *d = q->d;
    srv_jv routs = srv_json_get(d, q->root, "outputs");
    int nsel = 0, k = 0, gradients = q->p.backward != SRV_BWD_NONE;
    if (!routs || srv_json_count(d, routs) == 0) {
        for (int j = 0; j < nout; j++)
            outs[j].binary = q->binary_out, order[nsel++] = j;
        if (routs && srv_json_type(d, routs) != SRV_J_ARRAY &&
            srv_json_type(d, routs) != SRV_J_NUMARRAY) {
            nn_err_set(err, NN_EINVAL, "outputs: expected an array");
            return -1;
        }
        return nsel;
    }
    if (srv_json_type(d, routs) != SRV_J_ARRAY) {
        nn_err_set(err, NN_EINVAL, "outputs: expected an array");
        return -1;
    }
    for (srv_jv ro = srv_json_child(d, routs); ro; ro = srv_json_next(d, ro), k++) {
        srv_jv rn = srv_json_type(d, ro) == SRV_J_OBJECT ? srv_json_get(d, ro, "name") : 0;
        int found = -1;
        for (int j = 0; j < nout && found < 0; j++)
            if (srv_json_str_is(d, rn, outs[j].name))
                found = j;
        if (found < 0) {
            char n[64];
            if (srv_json_str(d, rn, n, sizeof n) == (size_t)-1)
                n[0] = 0;
            nn_err_set(err, NN_EINVAL, "outputs[%d].name: unknown output \"%s\"%s", k, n,
                       gradients ? "" : " (gradient outputs need parameters.gradients)");
            return -1;
        }
        int dup = 0;
        for (int j = 0; j < nsel && !dup; j++)
            dup = order[j] == found;
        if (!dup)
            order[nsel++] = found;
        srv_jv bd = srv_json_get(d, srv_json_get(d, ro, "parameters"), "binary_data");
        outs[found].binary = bd ? srv_json_is_true(d, bd) : q->binary_out;
    }
    return nsel;
}

/* The response: JSON, or with binary outputs the JSON header followed by their raw
 * little-endian bytes and Inference-Header-Content-Length. */
static void write_reply(struct infer *q, struct srv_reply *rep, const struct oip_out *outs,
                        const int *order, int nsel)
{
    const struct srv_model *m = q->m;
    const struct srv_json *d = q->d;
    size_t guess = 512, binlen = 0;
    int nbin = 0, in_ws = 1;
    for (int k = 0; k < nsel; k++) {
        const struct nn_tensor *t = outs[order[k]].t;
        size_t bytes = t->numel * nn_dtype_size(t->dtype);
        if (outs[order[k]].binary)
            binlen += bytes, nbin++, in_ws &= srv_pass_holds(&q->p, t->data, bytes);
        else
            guess += t->numel * (m->dtype == NN_F32 ? 16 : 25);
    }
    in_ws &= binlen >= srv_pass_block_bytes(&q->p) / 3;
    struct srv_jw w;
    srv_jw_init(&w, guess + (in_ws ? 0 : binlen), 0);
    srv_jw_obj(&w);
    srv_jw_kstr(&w, "model_name", m->name);
    srv_jw_kstr(&w, "model_version", "1");
    srv_jv id = srv_json_get(d, q->root, "id");
    if (id) {
        char *s = srv_json_strdup(d, id);
        if (!s) {
            srv_jw_free(&w);
            srv_reply_error(rep, 503, "out of memory building the response");
            return;
        }
        srv_jw_key(&w, "id");
        srv_jw_str(&w, s);
        free(s);
    }
    if (q->p.want_stats || q->p.clip > 0) {
        srv_jw_key(&w, "parameters");
        srv_jw_obj(&w);
        if (q->p.want_stats) {
            /* A response parameter holds a string, a number or a boolean (the protocol's
             * schema; gRPC clients cannot carry more): the per-layer array, as JSON text. */
            struct srv_jw sw;
            size_t sl;
            enum nn_status sst;
            struct nn_err serr;
            srv_jw_init(&sw, 1024, 0);
            srv_pass_write_stats(&q->p, &sw);
            char *stxt = srv_jw_finish(&sw, &sl, &sst, &serr);
            if (!stxt) {
                srv_jw_free(&w);
                srv_reply_nn_error(rep, sst, &serr);
                return;
            }
            srv_jw_kstr(&w, "stats", stxt);
            free(stxt);
        }
        if (q->p.clip > 0) {
            srv_jw_key(&w, "total_norm");
            srv_jw_num(&w, q->p.total_norm, m->dtype, "total_norm");
        }
        srv_jw_end(&w);
    }
    srv_jw_key(&w, "outputs");
    srv_jw_arr(&w);
    for (int k = 0; k < nsel; k++) {
        const struct oip_out *out = &outs[order[k]];
        const struct nn_tensor *t = out->t;
        srv_jw_obj(&w);
        srv_jw_kstr(&w, "name", out->name);
        srv_jw_kstr(&w, "datatype", model_datatype(m->dtype));
        srv_jw_key(&w, "shape");
        srv_jw_arr(&w);
        for (int i = 0; i < t->ndim; i++)
            srv_jw_uint(&w, t->shape[i]);
        srv_jw_end(&w);
        if (out->binary) {
            /* JSON cannot carry inf/nan; binary can, but a client that asked for a
               gradient gets the same error either way: one scan, naming it */
            size_t es = nn_dtype_size(t->dtype);
            if (!out->finite && nn_has_nonfinite(t->dtype, t->data, t->numel)) {
                size_t bad = 0;
                while (!nn_has_nonfinite(t->dtype, (const char *)t->data + bad * es, 1))
                    bad++;
                srv_jw_free(&w);
                srv_reply_error(rep, 422, "%s: non-finite value at index %zu", out->name, bad);
                return;
            }
            srv_jw_key(&w, "parameters");
            srv_jw_obj(&w);
            srv_jw_kuint(&w, "binary_data_size", t->numel * es);
            srv_jw_end(&w);
        } else {
            srv_jw_key(&w, "data");
            srv_jw_tensor(&w, t, SRV_FORM_FLAT, out->name);
        }
        srv_jw_end(&w);
    }
    srv_jw_end(&w);
    srv_jw_end(&w);
    if (!binlen) {
        srv_reply_jw(rep, 200, &w);
        return;
    }
    /* Binary outputs in the workspace (the output, a net's gradients) are sent where they
     * lie, the workspace going with the reply, when they are at least a third of it (a
     * small output of a wide net is copied rather than keep the whole block until a slow
     * client has read it); others (ONNX gradients, the loss) are copied after the header. */
    size_t jlen = w.sb.len;
    struct srv_tail *tail =
        in_ws ? malloc(sizeof *tail + (size_t)nbin * sizeof tail->piece[0]) : NULL;
    if (tail)
        *tail = (struct srv_tail){.bytes = binlen};
    for (int k = 0; k < nsel; k++) { /* x86-64 is little-endian, as the extension wants */
        const struct oip_out *out = &outs[order[k]];
        size_t bytes = out->t->numel * nn_dtype_size(out->t->dtype);
        if (out->binary && tail)
            tail->piece[tail->n++] = (struct srv_piece){out->t->data, bytes};
        else if (out->binary)
            srv_sb_append(&w.sb, out->t->data, bytes);
    }
    srv_reply_jw(rep, 200, &w);
    if (rep->status != 200) {
        free(tail);
        return;
    }
    if (tail) {
        tail->block = srv_pass_take_block(&q->p);
        rep->tail = tail;
    }
    rep->ctype = "application/octet-stream";
    srv_reply_header(rep, "Inference-Header-Content-Length", "%zu", jlen);
}

/* Triton's raw binary request (Inference-Header-Content-Length: 0): the whole body is the
 * model's one input, little-endian in the model's datatype, its shape the model's with the
 * first dimension (the batch) taken from the byte count. No parameters: a forward pass,
 * JSON outputs. */
static enum nn_status parse_raw(struct infer *q, struct located *l, struct nn_err *err)
{
    const struct srv_model *m = q->m;
    const struct srv_model_io *io = &m->input;
    memset(l, 0, sizeof *l);
    snprintf(l->where, sizeof l->where, "body (raw binary input %.60s)", io->name);
    l->wire = m->dtype == NN_F32 ? SRV_WIRE_FP32 : SRV_WIRE_FP64;
    size_t es = nn_dtype_size(m->dtype), row = es;
    int ok = io->ndim >= 1;
    for (int i = 1; ok && i < io->ndim; i++) {
        ok = io->shape[i] > 0;
        row *= ok ? (size_t)io->shape[i] : 1;
    }
    if (!ok)
        return nn_err_set(err, NN_EINVAL,
                          "%s: a raw binary request needs a model whose input has one variable "
                          "dimension, the first; %s's does not (send the JSON header)",
                          l->where, m->name);
    if (q->bin_len % row)
        return nn_err_set(err, NN_EINVAL,
                          "%s: %zu bytes are not whole rows of %zu %s bytes (%s's input row)",
                          l->where, q->bin_len, row, model_datatype(m->dtype), m->name);
    l->ndim = io->ndim;
    l->shape[0] = q->bin_len / row;
    for (int i = 1; i < io->ndim; i++)
        l->shape[i] = (size_t)io->shape[i];
    if (io->shape[0] > 0 && l->shape[0] != (size_t)io->shape[0])
        return nn_err_set(err, NN_EINVAL, "%s: %zu rows, the model's input takes %lld", l->where,
                          l->shape[0], (long long)io->shape[0]);
    l->numel = q->bin_len / es;
    l->bin = q->bin;
    q->bin_off = q->bin_len;
    static const char empty[] = "{}";
    enum nn_status st = srv_json_parse(empty, 2, 0, &q->d, err);
    if (!st)
        q->root = srv_json_root(q->d);
    return st;
}

/* parse: the header (and where binary data starts), the parameters and the inputs. */
static enum nn_status parse(struct infer *q, struct located *input, struct nn_err *err)
{
    struct srv_req *req = q->req;
    size_t hlen = req->len;
    const char *hl = srv_req_header(req, "Inference-Header-Content-Length");
    if (hl) {
        char *end;
        unsigned long long n = strtoull(hl, &end, 10);
        if (*hl < '0' || *hl > '9' || *end || n > req->len)
            return nn_err_set(err, NN_EINVAL,
                              "Inference-Header-Content-Length: \"%.32s\" is not a length within "
                              "the body (%zu bytes)",
                              hl, req->len);
        hlen = (size_t)n;
    }
    const char *body = req->body ? req->body : "";
    q->bin = body + hlen;
    q->bin_len = req->len - hlen;
    if (hl && !hlen && req->len)
        return parse_raw(q, input, err);
    enum nn_status st = srv_json_parse(body, hlen, req->srv->cfg.max_json_values, &q->d, err);
    if (st && !hl && strstr(err->msg, "unexpected data after the JSON value")) {
        size_t n = strlen(err->msg);
        snprintf(err->msg + n, sizeof err->msg - n,
                 " (binary tensor data? send the JSON part's length in "
                 "Inference-Header-Content-Length)");
    }
    if (st)
        return st;
    /* unknown request keys are ignored: clients send extra ones */
    q->root = srv_json_root(q->d);
    if (srv_json_type(q->d, q->root) != SRV_J_OBJECT)
        return nn_err_set(err, NN_EINVAL, "body: expected a JSON object");
    srv_jv id = srv_json_get(q->d, q->root, "id");
    if (id && srv_json_type(q->d, id) != SRV_J_STRING)
        return nn_err_set(err, NN_EINVAL, "id: expected a string");
    q->params = srv_json_get(q->d, q->root, "parameters");
    if ((st = parse_params(q, err)))
        return st;
    return read_inputs(q, input, err);
}

/* The reply once the pass ran (or failed with st), the statistics, and the request's
 * memory: the end of every infer, batched or not. */
static void infer_reply(struct infer *q, enum nn_status st, struct nn_err *err,
                        struct srv_reply *rep)
{
    const struct srv_model *m = q->m;
    struct oip_out *outs = NULL;
    int *order = NULL;
    struct nn_tensor loss = {.dtype = m->dtype, .ndim = 1, .shape = {1}, .numel = 1};
    double loss_d = q->p.loss_value;
    float loss_f = (float)q->p.loss_value;
    loss.data = m->dtype == NN_F32 ? (void *)&loss_f : (void *)&loss_d;
    size_t room = 2 * (size_t)m->net.nlayers + (m->onnx ? (size_t)m->onnx->nparams : 0) + 3;
    if (!st && (!(outs = calloc(room, sizeof *outs)) || !(order = calloc(room, sizeof *order))))
        st = nn_err_set(err, NN_ENOMEM, "out of memory");
    if (!st && q->p.backward != SRV_BWD_NONE) { /* grad:<input> in the shape it was sent */
        q->dinput = q->p.ws.dinput;
        q->dinput.ndim = q->in_ndim;
        memcpy(q->dinput.shape, q->in_shape, sizeof q->dinput.shape);
        if (m->onnx && !(q->grads = calloc((size_t)m->onnx->nparams + 1, sizeof *q->grads)))
            st = nn_err_set(err, NN_ENOMEM, "out of memory");
        if (!st && m->onnx)
            st = srv_onnx_grads(m->onnx, &q->p.ws, m->dtype, q->grads, &q->grad_buf, err);
    }
    if (!st) {
        int nsel = select_outputs(q, outs, offered_outputs(q, &loss, outs), order, err);
        if (nsel < 0)
            st = NN_EINVAL;
        else
            write_reply(q, rep, outs, order, nsel);
    }
    if (st)
        srv_reply_nn_error(rep, st, err);
    srv_pass_record(&q->p, m->stats, !st && rep->status == 200, q->job != NULL, &q->tm);
    free(outs);
    free(order);
    free(q->grads);
    free(q->grad_buf);
    srv_pass_free(&q->p);
    srv_json_free(q->d);
    srv_model_release(q->m);
    free(q->job);
    free(q);
}

/* A batched request, woken: its output rows are in its workspace, or the job failed. */
static void infer_finish(struct srv_req *req, struct srv_reply *rep, void *ctx)
{
    struct infer *q = ctx;
    (void)req;
    enum nn_status st = q->job->st;
    struct nn_err err = q->job->err;
    srv_pass_job_times(q->job, &q->tm);
    infer_reply(q, st, &err, rep);
    if (st == NN_EUNAVAILABLE) /* queue full, or queued past its timeout */
        srv_reply_header(rep, "Retry-After", "1");
}

void srv_h_infer(struct srv_req *req, struct srv_reply *rep)
{
    struct srv *s = req->srv;
    uint64_t t0 = srv_now_ns();
    struct srv_model *m = get_model(req, rep);
    if (!m)
        return;
    struct infer *q = calloc(1, sizeof *q);
    if (!q) {
        srv_model_release(m);
        srv_reply_error(rep, 503, "out of memory");
        srv_reply_header(rep, "Retry-After", "1");
        return;
    }
    struct nn_err err = {{0}};
    q->req = req;
    q->m = m;
    q->tm.start = t0;
    srv_pass_init(&q->p);
    q->p.cancel = &s->cancel;
    q->p.net = &m->net;
    struct located input;
    enum nn_status st = parse(q, &input, &err);
    if (!st) { /* plan, then the input straight into the workspace */
        q->in_ndim = input.ndim;
        memcpy(q->in_shape, input.shape, sizeof input.shape);
        st = srv_model_input_shape(m, input.shape, input.ndim, q->p.in_shape, &q->p.in_ndim,
                                   input.where, &err);
    }
    if (!st)
        st = srv_batch_check_rows(&m->batch, input.shape, input.ndim, input.where, &err);
    if (!st)
        st = srv_pass_plan(&q->p, s->cfg.max_tensor_elements, s->cfg.max_workspace_bytes, &err);
    if (!st)
        st = decode(q, &input, m->dtype == NN_F32 ? SRV_F32 : SRV_F64, srv_pass_input(&q->p), &err);
    q->tm.inputs_read = q->tm.pass_start = srv_now_ns();
    /* (the job is allocated apart: the struct stays in malloc's small sizes) */
    if (!st && srv_pass_batchable(&q->p, m) && (q->job = calloc(1, sizeof *q->job))) {
        srv_pass_defer(&q->p, req, m, q->timeout_us, q->job, infer_finish, q);
        return;
    }
    if (!st)
        st = srv_pass_run(&q->p, &err);
    q->tm.pass_end = srv_now_ns();
    infer_reply(q, st, &err, rep);
}
