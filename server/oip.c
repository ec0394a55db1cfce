/* The Open Inference Protocol (KServe v2) as Triton speaks it over REST: model
 * metadata, readiness, infer (JSON and the binary tensor data extension), statistics;
 * gradients and diagnostics as relud's own extension (request parameters "gradients",
 * "loss", "reduction", "clip_grad_norm", "stats"). */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "server/layers.h"
#include "server/models.h"
#include "server/pass.h"
#include "server/srv.h"

/* ---- datatypes: one list ----------------------------------------------------
 * X(name, bytes, kind): kind 0 float, 1 signed int, 2 unsigned int, -1 refused */
#define OIP_DTYPE_LIST(X) \
    X(FP32, 4, 0)         \
    X(FP64, 8, 0)         \
    X(FP16, 2, -1)        \
    X(BF16, 2, -1)        \
    X(INT8, 1, 1)         \
    X(INT16, 2, 1)        \
    X(INT32, 4, 1)        \
    X(INT64, 8, 1)        \
    X(UINT8, 1, 2)        \
    X(UINT16, 2, 2)       \
    X(UINT32, 4, 2)       \
    X(UINT64, 8, 2)       \
    X(BOOL, 1, -1)        \
    X(BYTES, 0, -1)

enum oip_dtype {
#define X(n, b, k) OIP_##n,
    OIP_DTYPE_LIST(X)
#undef X
        OIP_DTYPE_COUNT
};
static const struct {
    const char *name;
    int bytes, kind;
} oip_dtypes[] = {
#define X(n, b, k) {#n, b, k},
    OIP_DTYPE_LIST(X)
#undef X
};

static int oip_dtype_find(const char *s)
{
    for (int i = 0; i < OIP_DTYPE_COUNT; i++)
        if (!strcmp(oip_dtypes[i].name, s))
            return i;
    return -1;
}

static const char *model_datatype(const struct srv_model *m)
{
    return m->dtype == NN_F32 ? "FP32" : "FP64";
}

/* Looks the model up and replies 404/503 if it is not there. */
static struct srv_model *get_model(struct srv_req *req, struct srv_reply *rep)
{
    if (req->version[0] && strcmp(req->version, "1") != 0) {
        srv_reply_error(rep, 404, "model %s has no version \"%s\" (versions: [\"1\"])", req->name,
                        req->version);
        return NULL;
    }
    unsigned status = 404;
    char msg[NN_ERR_LEN + 64];
    struct srv_model *m = srv_models_get(req->srv->models, req->name, &status, msg, sizeof msg);
    if (!m) {
        srv_reply_error(rep, status, "%s", msg);
        return NULL;
    }
    snprintf(req->model, sizeof req->model, "%s", m->name);
    return m;
}

static cJSON *tensor_meta(const char *name, const char *dt, size_t features)
{
    cJSON *t = cJSON_CreateObject();
    cJSON_AddStringToObject(t, "name", name);
    cJSON_AddStringToObject(t, "datatype", dt);
    cJSON *shape = cJSON_AddArrayToObject(t, "shape");
    cJSON_AddItemToArray(shape, cJSON_CreateNumber(-1));
    cJSON_AddItemToArray(shape, cJSON_CreateNumber(features ? (double)features : -1));
    return t;
}

void srv_h_model_meta(struct srv_req *req, struct srv_reply *rep)
{
    struct srv_model *m = get_model(req, rep);
    if (!m)
        return;
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "name", m->name);
    const char *v[] = {"1"};
    cJSON_AddItemToObject(o, "versions", cJSON_CreateStringArray(v, 1));
    cJSON_AddStringToObject(o, "platform", "relud_json");
    cJSON *in = cJSON_AddArrayToObject(o, "inputs");
    cJSON_AddItemToArray(in, tensor_meta("input", model_datatype(m), m->in_features));
    cJSON *out = cJSON_AddArrayToObject(o, "outputs");
    cJSON_AddItemToArray(out, tensor_meta("output", model_datatype(m), m->out_features));
    srv_model_release(m);
    srv_reply_json(rep, 200, o);
}

void srv_h_model_ready(struct srv_req *req, struct srv_reply *rep)
{
    struct srv_model *m = get_model(req, rep);
    if (!m)
        return;
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "name", m->name);
    cJSON_AddTrueToObject(o, "ready");
    srv_model_release(m);
    srv_reply_json(rep, 200, o);
}

/* ---- statistics ------------------------------------------------------------- */
static cJSON *duration(unsigned long long count, unsigned long long ns)
{
    cJSON *d = cJSON_CreateObject();
    cJSON_AddNumberToObject(d, "count", (double)count);
    cJSON_AddNumberToObject(d, "ns", (double)ns);
    return d;
}

static cJSON *model_stats_json(const char *name, struct srv_model_stats *st)
{
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "name", name);
    cJSON_AddStringToObject(o, "version", "1");
    cJSON_AddNumberToObject(o, "last_inference", (double)atomic_load(&st->last_inference_ms));
    cJSON_AddNumberToObject(o, "inference_count", (double)atomic_load(&st->inference_count));
    cJSON_AddNumberToObject(o, "execution_count", (double)atomic_load(&st->exec_count));
    cJSON *is = cJSON_AddObjectToObject(o, "inference_stats");
    unsigned long long ok = atomic_load(&st->success_count);
    cJSON_AddItemToObject(is, "success", duration(ok, atomic_load(&st->success_ns)));
    cJSON_AddItemToObject(is, "fail",
                          duration(atomic_load(&st->fail_count), atomic_load(&st->fail_ns)));
    cJSON_AddItemToObject(is, "queue", duration(ok, atomic_load(&st->queue_ns)));
    cJSON_AddItemToObject(is, "compute_input", duration(ok, atomic_load(&st->compute_input_ns)));
    cJSON_AddItemToObject(is, "compute_infer", duration(ok, atomic_load(&st->compute_infer_ns)));
    cJSON_AddItemToObject(is, "compute_output", duration(ok, atomic_load(&st->compute_output_ns)));
    cJSON_AddArrayToObject(o, "batch_stats");
    return o;
}

void srv_h_model_stats(struct srv_req *req, struct srv_reply *rep)
{
    cJSON *o = cJSON_CreateObject(), *arr = cJSON_AddArrayToObject(o, "model_stats");
    if (req->name[0]) {
        struct srv_model *m = get_model(req, rep);
        if (!m) {
            cJSON_Delete(o);
            return;
        }
        struct srv_model_stats *st = srv_models_stats(req->srv->models, m->name);
        if (st)
            cJSON_AddItemToArray(arr, model_stats_json(m->name, st));
        srv_model_release(m);
    } else {
        cJSON *idx = srv_models_index(req->srv->models, 0);
        for (const cJSON *e = idx ? idx->child : NULL; e; e = e->next) {
            const cJSON *n = cJSON_GetObjectItemCaseSensitive(e, "name");
            struct srv_model_stats *st =
                cJSON_IsString(n) ? srv_models_stats(req->srv->models, n->valuestring) : NULL;
            if (st)
                cJSON_AddItemToArray(arr, model_stats_json(n->valuestring, st));
        }
        cJSON_Delete(idx);
    }
    srv_reply_json(rep, 200, o);
}

/* ---- infer -------------------------------------------------------------------- */
struct oip_in {
    const char *body; /* whole body */
    size_t hlen, len; /* JSON header length, whole length */
    size_t bin_off;   /* next unread binary byte */
};

/* Reads one request input into a tensor of dtype dt (or int64 classes when cls != NULL). */
static enum nn_status read_input(const struct srv_doc *doc, const cJSON *in, int idx,
                                 struct oip_in *bi, enum nn_dtype dt, size_t max_elems,
                                 struct nn_tensor *t, int64_t **cls, struct nn_err *err)
{
    char where[96];
    const cJSON *name = cJSON_GetObjectItemCaseSensitive(in, "name");
    snprintf(where, sizeof where, "inputs[%d] (%s)", idx, name->valuestring);
    const cJSON *jdt = cJSON_GetObjectItemCaseSensitive(in, "datatype");
    if (!cJSON_IsString(jdt))
        return nn_err_set(err, NN_EINVAL, "%s.datatype: required (FP32, FP64 or an integer type)",
                          where);
    int odt = oip_dtype_find(jdt->valuestring);
    if (odt < 0)
        return nn_err_set(err, NN_EINVAL, "%s.datatype: unknown datatype \"%.32s\"", where,
                          jdt->valuestring);
    if (oip_dtypes[odt].kind < 0)
        return nn_err_set(err, NN_EINVAL,
                          "%s.datatype: %s is not supported by relud (use FP32, FP64 or an integer "
                          "type)",
                          where, oip_dtypes[odt].name);
    memset(t, 0, sizeof *t);
    t->dtype = dt;
    char w2[112];
    enum nn_status st = srv_doc_shape(doc, cJSON_GetObjectItemCaseSensitive(in, "shape"), 0, where,
                                      t->shape, &t->ndim, err);
    if (st)
        return st;
    if ((st = nn_shape_numel(t->shape, t->ndim, max_elems, &t->numel, where, err)))
        return st;
    size_t esz = cls ? sizeof(int64_t) : nn_dtype_size(dt);
    void *dst = malloc(t->numel ? t->numel * esz : 1);
    if (!dst)
        return nn_err_set(err, NN_ENOMEM, "%s: out of memory", where);
    if (cls)
        *cls = dst;
    else
        t->data = dst;

    const cJSON *params = cJSON_GetObjectItemCaseSensitive(in, "parameters");
    const cJSON *bsize =
        params ? cJSON_GetObjectItemCaseSensitive(params, "binary_data_size") : NULL;
    const cJSON *data = cJSON_GetObjectItemCaseSensitive(in, "data");
    char sh[96];
    if (bsize) {
        if (data)
            return nn_err_set(err, NN_EINVAL, "%s: both \"data\" and binary_data_size given",
                              where);
        if (!cJSON_IsNumber(bsize) || bsize->valuedouble < 0 ||
            bsize->valuedouble != floor(bsize->valuedouble))
            return nn_err_set(err, NN_EINVAL,
                              "%s.parameters.binary_data_size: expected a byte count", where);
        size_t n = (size_t)bsize->valuedouble, eb = (size_t)oip_dtypes[odt].bytes;
        if (n != t->numel * eb)
            return nn_err_set(err, NN_EINVAL,
                              "%s: binary_data_size %zu but shape %s of %s needs %zu bytes", where,
                              n, nn_shape_str(sh, sizeof sh, t->shape, t->ndim),
                              oip_dtypes[odt].name, t->numel * eb);
        if (n > bi->len - bi->bin_off)
            return nn_err_set(err, NN_EINVAL,
                              "%s: binary_data_size %zu runs past the end of the body (%zu binary "
                              "bytes left)",
                              where, n, bi->len - bi->bin_off);
        const unsigned char *src = (const unsigned char *)bi->body + bi->bin_off;
        bi->bin_off += n;
        for (size_t i = 0; i < t->numel; i++, src += eb) {
            double v;
            int64_t iv = 0;
            int isint = oip_dtypes[odt].kind > 0;
            switch (odt) {
            case OIP_FP32: {
                float f;
                memcpy(&f, src, 4);
                v = f;
                break;
            }
            case OIP_FP64: memcpy(&v, src, 8); break;
            case OIP_INT8: iv = (int8_t)src[0]; break;
            case OIP_UINT8: iv = src[0]; break;
            case OIP_INT16: {
                int16_t x;
                memcpy(&x, src, 2);
                iv = x;
                break;
            }
            case OIP_UINT16: {
                uint16_t x;
                memcpy(&x, src, 2);
                iv = x;
                break;
            }
            case OIP_INT32: {
                int32_t x;
                memcpy(&x, src, 4);
                iv = x;
                break;
            }
            case OIP_UINT32: {
                uint32_t x;
                memcpy(&x, src, 4);
                iv = x;
                break;
            }
            case OIP_INT64: memcpy(&iv, src, 8); break;
            case OIP_UINT64: {
                uint64_t x;
                memcpy(&x, src, 8);
                if (x > INT64_MAX)
                    return nn_err_set(err, NN_EINVAL, "%s: value %llu at index %zu is too large",
                                      where, (unsigned long long)x, i);
                iv = (int64_t)x;
                break;
            }
            default: return nn_err_set(err, NN_EINVAL, "%s: unsupported datatype", where);
            }
            if (isint)
                v = (double)iv;
            if (!isfinite(v))
                return nn_err_set(err, NN_EINVAL, "%s: value at index %zu is not finite", where, i);
            if (cls) {
                if (!isint && v != floor(v))
                    return nn_err_set(err, NN_EINVAL, "%s: %g at index %zu is not a class index",
                                      where, v, i);
                (*cls)[i] = isint ? iv : (int64_t)v;
            } else if (dt == NN_F32) {
                if (fabs(v) > 3.4028234663852886e38)
                    return nn_err_set(err, NN_EINVAL,
                                      "%s: %g at index %zu is out of range for float32", where, v,
                                      i);
                ((float *)dst)[i] = (float)v;
            } else {
                ((double *)dst)[i] = v;
            }
        }
        return NN_OK;
    }
    size_t dnumel;
    if (!data || !srv_doc_numarray(doc, data, NULL, NULL, &dnumel))
        return nn_err_set(err, NN_EINVAL,
                          "%s.data: expected an array of numbers (flat or nested), or "
                          "parameters.binary_data_size with binary data",
                          where);
    if (dnumel != t->numel)
        return nn_err_set(err, NN_EINVAL, "%s: data has %zu values but shape %s needs %zu", where,
                          dnumel, nn_shape_str(sh, sizeof sh, t->shape, t->ndim), t->numel);
    snprintf(w2, sizeof w2, "%s.data", where);
    if (cls || oip_dtypes[odt].kind > 0) {
        /* integer datatypes are read exactly, then coerced */
        int64_t *iv = cls ? *cls : malloc(t->numel ? t->numel * sizeof *iv : 1);
        if (!iv)
            return nn_err_set(err, NN_ENOMEM, "%s: out of memory", where);
        st = srv_doc_numarray_read(doc, data, SRV_I64, iv, t->numel, w2, err);
        if (!st && oip_dtypes[odt].kind > 0) {
            /* each value must fit the declared datatype: INT8 300 or UINT8 -1 is an error */
            int bits = 8 * oip_dtypes[odt].bytes, sgn = oip_dtypes[odt].kind == 1;
            int64_t lo = !sgn ? 0 : bits == 64 ? INT64_MIN : -((int64_t)1 << (bits - 1));
            int64_t hi = bits == 64 ? INT64_MAX : ((int64_t)1 << (bits - sgn)) - 1;
            for (size_t i = 0; !st && i < t->numel; i++)
                if (iv[i] < lo || iv[i] > hi)
                    st = nn_err_set(err, NN_EINVAL, "%s[%zu]: %lld is out of range for %s", w2, i,
                                    (long long)iv[i], oip_dtypes[odt].name);
        }
        if (!cls) {
            for (size_t i = 0; !st && i < t->numel; i++) {
                if (dt == NN_F32)
                    ((float *)dst)[i] = (float)iv[i];
                else
                    ((double *)dst)[i] = (double)iv[i];
            }
            free(iv);
        }
        return st;
    }
    return srv_doc_numarray_read(doc, data, dt == NN_F32 ? SRV_F32 : SRV_F64, dst, t->numel, w2,
                                 err);
}

/* Request parameter lookup helpers. */
static int param_bool(const cJSON *params, const char *key)
{
    const cJSON *v = params ? cJSON_GetObjectItemCaseSensitive(params, key) : NULL;
    return cJSON_IsTrue(v);
}

/* Request parameters relud reads, and Triton's reserved ones (accepted, and ignored unless
 * a note says otherwise in docs/api.md); any other name is refused, as /v1 refuses unknown
 * fields, so that a typo ("lossx") is not silently a request without a loss. */
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

static int listed(const char *name, const char *const *list)
{
    for (; *list; list++)
        if (!strcmp(name, *list))
            return 1;
    return 0;
}

/* relud's extension parameters (see the file comment). Flags that are not booleans are
 * errors, not false. Sets the loss, clipping and stats of p; *has_loss, *want_grads. */
static enum nn_status parse_params(struct srv_pass *p, const cJSON *params, int *has_loss,
                                   int *want_grads, struct nn_err *err)
{
    *has_loss = *want_grads = 0;
    if (!params)
        return NN_OK;
    if (!cJSON_IsObject(params))
        return nn_err_set(err, NN_EINVAL, "parameters: expected an object");
    for (const cJSON *k = params->child; k; k = k->next)
        if (!listed(k->string, relud_params) && !listed(k->string, triton_params) &&
            strncmp(k->string, "triton_", 7))
            return unknown_param(k->string, err);
    static const char *const flags[] = {"gradients", "stats", "binary_data_output"};
    for (size_t f = 0; f < sizeof flags / sizeof *flags; f++) {
        const cJSON *v = cJSON_GetObjectItemCaseSensitive(params, flags[f]);
        if (v && !cJSON_IsBool(v))
            return nn_err_set(err, NN_EINVAL, "parameters.%s: expected true or false", flags[f]);
    }
    enum nn_status st;
    const cJSON *jloss = cJSON_GetObjectItemCaseSensitive(params, "loss");
    if (jloss) {
        if (!cJSON_IsString(jloss))
            return nn_err_set(err, NN_EINVAL, "parameters.loss: expected a loss name");
        if ((st = nn_loss_lookup(jloss->valuestring, &p->loss, err)) ||
            (st = srv_pass_loss_opts(p, params, "parameters", err)))
            return st;
        *has_loss = 1;
    }
    *want_grads = param_bool(params, "gradients") || jloss;
    p->want_stats = param_bool(params, "stats");
    const cJSON *clip = cJSON_GetObjectItemCaseSensitive(params, "clip_grad_norm");
    if (clip) {
        if (!cJSON_IsNumber(clip) || !(clip->valuedouble > 0) || !isfinite(clip->valuedouble))
            return nn_err_set(err, NN_EINVAL, "parameters.clip_grad_norm: expected a max_norm > 0");
        p->clip = clip->valuedouble;
        *want_grads = 1;
    }
    return NN_OK;
}

/* The request's inputs: "input", and with gradients "grad_output" or "target" (each once).
 * Sets p->backward from what came. */
static enum nn_status read_inputs(const struct srv_doc *doc, const cJSON *inputs, struct oip_in *bi,
                                  const struct srv_model *m, size_t max_elems, int has_loss,
                                  int want_grads, struct srv_pass *p, struct nn_err *err)
{
    if (!cJSON_IsArray(inputs) || !inputs->child)
        return nn_err_set(err, NN_EINVAL, "inputs: expected a non-empty array of input tensors");
    int have_input = 0, have_go = 0, have_target = 0, i = 0;
    enum nn_status st = NN_OK;
    for (const cJSON *in = inputs->child; in && !st; in = in->next, i++) {
        const cJSON *name =
            cJSON_IsObject(in) ? cJSON_GetObjectItemCaseSensitive(in, "name") : NULL;
        if (!cJSON_IsString(name))
            return nn_err_set(err, NN_EINVAL, "inputs[%d].name: required", i);
        const char *n = name->valuestring;
        if (!strcmp(n, "input") && !have_input) {
            st = read_input(doc, in, i, bi, m->dtype, max_elems, &p->input, NULL, err);
            have_input = 1;
        } else if (!strcmp(n, "grad_output") && !have_go) {
            st = read_input(doc, in, i, bi, m->dtype, max_elems, &p->grad_output, NULL, err);
            have_go = 1;
        } else if (!strcmp(n, "target") && !have_target && has_loss) {
            if (nn_losses[p->loss].class_target) {
                struct nn_tensor shape;
                st = read_input(doc, in, i, bi, m->dtype, max_elems, &shape, &p->classes, err);
                p->target_cls.ndim = shape.ndim;
                memcpy(p->target_cls.shape, shape.shape, sizeof shape.shape);
            } else {
                st = read_input(doc, in, i, bi, m->dtype, max_elems, &p->target, NULL, err);
            }
            have_target = 1;
        } else if (!strcmp(n, "target") && !has_loss) {
            return nn_err_set(err, NN_EINVAL,
                              "inputs[%d] (target): needs the request parameter \"loss\"", i);
        } else {
            return nn_err_set(err, NN_EINVAL,
                              "inputs[%d].name: unexpected input \"%.64s\" (model %s takes "
                              "\"input\"; with gradients also \"grad_output\" or \"target\"; "
                              "each once)",
                              i, n, m->name);
        }
    }
    if (st)
        return st;
    if (!have_input)
        return nn_err_set(err, NN_EINVAL, "inputs: no input named \"input\" (model %s)", m->name);
    if (have_go && has_loss)
        return nn_err_set(err, NN_EINVAL,
                          "inputs: give either \"grad_output\" or parameters.loss, not both");
    if (has_loss && !have_target)
        return nn_err_set(err, NN_EINVAL,
                          "inputs: parameters.loss needs an input named \"target\"");
    if (have_go && !want_grads)
        return nn_err_set(err, NN_EINVAL,
                          "inputs: \"grad_output\" needs parameters.gradients = true");
    p->backward = has_loss     ? SRV_BWD_LOSS
                  : have_go    ? SRV_BWD_GRAD_OUTPUT
                  : want_grads ? SRV_BWD_SUM
                               : SRV_BWD_NONE;
    if (bi->bin_off != bi->len)
        return nn_err_set(err, NN_EINVAL,
                          "body: %zu bytes of binary data are not claimed by any binary_data_size",
                          bi->len - bi->bin_off);
    return NN_OK;
}

/* An output the pass offers: "output", and with gradients "grad:input", "grad:<i>.weight",
 * "grad:<i>.bias" (state_dict names) and "loss". */
struct oip_out {
    char name[48];
    const struct nn_tensor *t;
    int binary;
};

/* Fills outs (room for 2 * nlayers + 3) and returns how many; loss is the 1-element
 * tensor for "loss". */
static int offered_outputs(const struct srv_pass *p, const struct nn_tensor *loss,
                           struct oip_out *outs)
{
    int n = 0;
    outs[n++] = (struct oip_out){"output", srv_pass_output(p), 0};
    if (p->backward == SRV_BWD_NONE)
        return n;
    outs[n++] = (struct oip_out){"grad:input", &p->ws.dinput, 0};
    for (int l = 0; l < p->net->nlayers; l++) {
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
        outs[n++] = (struct oip_out){"loss", loss, 0};
    return n;
}

/* The request's "outputs" (all when absent) into order[] (reply order, each once), with
 * each one's binary flag: a per-output "binary_data" overrides binary_data_output, as in
 * Triton. Returns how many, or -1 with err. */
static int select_outputs(const struct srv_doc *doc, const cJSON *routs, int all_binary,
                          struct oip_out *outs, int nout, int *order, int gradients,
                          struct nn_err *err)
{
    int nsel = 0, k = 0;
    size_t empty = 1; /* "outputs": [] is every output, as in Triton (the codec reads [] as a
                         numeric array of no elements) */
    if (!routs || (cJSON_IsArray(routs) && !routs->child) ||
        (srv_doc_numarray(doc, routs, NULL, NULL, &empty) && empty == 0)) {
        for (int j = 0; j < nout; j++)
            outs[j].binary = all_binary, order[nsel++] = j;
        return nsel;
    }
    if (!cJSON_IsArray(routs)) {
        nn_err_set(err, NN_EINVAL, "outputs: expected an array");
        return -1;
    }
    for (const cJSON *ro = routs->child; ro; ro = ro->next, k++) {
        const cJSON *rn = cJSON_IsObject(ro) ? cJSON_GetObjectItemCaseSensitive(ro, "name") : NULL;
        int found = -1;
        for (int j = 0; cJSON_IsString(rn) && j < nout && found < 0; j++)
            if (!strcmp(outs[j].name, rn->valuestring))
                found = j;
        if (found < 0) {
            nn_err_set(err, NN_EINVAL, "outputs[%d].name: unknown output \"%.64s\"%s", k,
                       cJSON_IsString(rn) ? rn->valuestring : "",
                       gradients ? "" : " (gradient outputs need parameters.gradients)");
            return -1;
        }
        int dup = 0;
        for (int q = 0; q < nsel && !dup; q++)
            dup = order[q] == found;
        if (!dup)
            order[nsel++] = found;
        const cJSON *op = cJSON_GetObjectItemCaseSensitive(ro, "parameters");
        const cJSON *bd = op ? cJSON_GetObjectItemCaseSensitive(op, "binary_data") : NULL;
        outs[found].binary = bd ? cJSON_IsTrue(bd) : all_binary;
    }
    return nsel;
}

/* The response: JSON, or with binary outputs the JSON header followed by their raw
 * little-endian bytes and Inference-Header-Content-Length. */
static enum nn_status build_reply(struct srv_reply *rep, const struct srv_model *m, const cJSON *id,
                                  struct srv_pass *p, const struct oip_out *outs, const int *order,
                                  int nsel, struct nn_err *err)
{
    struct srv_out *o = srv_out_new();
    cJSON *resp = cJSON_CreateObject();
    if (!o || !resp) {
        srv_out_free(o);
        cJSON_Delete(resp);
        return nn_err_set(err, NN_ENOMEM, "out of memory building the response");
    }
    cJSON_AddStringToObject(resp, "model_name", m->name);
    cJSON_AddStringToObject(resp, "model_version", "1");
    if (id)
        cJSON_AddStringToObject(resp, "id", id->valuestring);
    if (p->want_stats || p->clip > 0) {
        cJSON *rp = cJSON_AddObjectToObject(resp, "parameters");
        if (p->want_stats)
            cJSON_AddItemToObject(rp, "stats", srv_pass_stats_json(p, o));
        if (p->clip > 0)
            cJSON_AddItemToObject(rp, "total_norm", srv_out_number(o, p->total_norm, m->dtype));
    }
    cJSON *ra = cJSON_AddArrayToObject(resp, "outputs");
    size_t binlen = 0;
    for (int k = 0; k < nsel; k++) {
        const struct oip_out *out = &outs[order[k]];
        const struct nn_tensor *t = out->t;
        cJSON *e = cJSON_CreateObject();
        cJSON_AddStringToObject(e, "name", out->name);
        cJSON_AddStringToObject(e, "datatype", model_datatype(m));
        cJSON *shape = cJSON_AddArrayToObject(e, "shape");
        for (int d = 0; d < t->ndim; d++)
            cJSON_AddItemToArray(shape, cJSON_CreateNumber((double)t->shape[d]));
        if (out->binary) {
            size_t nb = t->numel * nn_dtype_size(t->dtype);
            cJSON *pp = cJSON_AddObjectToObject(e, "parameters");
            cJSON_AddNumberToObject(pp, "binary_data_size", (double)nb);
            binlen += nb;
        } else {
            cJSON_AddItemToObject(e, "data", srv_out_tensor(o, t, SRV_FORM_FLAT));
        }
        cJSON_AddItemToArray(ra, e);
    }
    size_t jlen;
    char *json = srv_out_print(o, resp, &jlen, err);
    enum nn_status st = json ? NN_OK : srv_out_status(o);
    cJSON_Delete(resp);
    srv_out_free(o);
    if (!json)
        return st;
    if (!binlen) {
        srv_reply_body(rep, 200, "application/json", json, jlen);
        return NN_OK;
    }
    char *all = realloc(json, jlen + binlen + 1);
    if (!all) {
        free(json);
        return nn_err_set(err, NN_ENOMEM, "out of memory building the response");
    }
    size_t off = jlen;
    for (int k = 0; k < nsel; k++) {
        const struct oip_out *out = &outs[order[k]];
        if (!out->binary)
            continue;
        size_t nb = out->t->numel * nn_dtype_size(out->t->dtype);
        memcpy(all + off, out->t->data, nb); /* x86-64: little-endian, as the extension wants */
        off += nb;
    }
    srv_reply_header(rep, "Inference-Header-Content-Length", "%zu", jlen);
    srv_reply_body(rep, 200, "application/octet-stream", all, off);
    return NN_OK;
}

void srv_h_infer(struct srv_req *req, struct srv_reply *rep)
{
    struct srv *s = req->srv;
    uint64_t tm[4] = {srv_now_ns(), 0, 0, 0}; /* start, inputs read, pass done, reply built */
    struct srv_model *m = get_model(req, rep);
    if (!m)
        return;
    struct nn_err err = {{0}};
    enum nn_status st = NN_OK;
    struct srv_pass p;
    srv_pass_init(&p);
    p.cancel = &s->cancel;
    p.net = &m->net;
    struct srv_doc *doc = NULL;
    struct oip_out *outs = NULL;
    int *order = NULL;

    /* Binary tensor data extension: the JSON header is the first N bytes. */
    struct oip_in bi = {req->body ? req->body : "", req->len, req->len, 0};
    const char *hl = srv_req_header(req, "Inference-Header-Content-Length");
    if (hl) {
        char *end;
        unsigned long long n = strtoull(hl, &end, 10);
        if (*hl < '0' || *hl > '9' || *end || n > req->len) {
            st = nn_err_set(&err, NN_EINVAL,
                            "Inference-Header-Content-Length: \"%.32s\" is not a length within the "
                            "body (%zu bytes)",
                            hl, req->len);
            goto done;
        }
        bi.hlen = (size_t)n;
    }
    bi.bin_off = bi.hlen;
    if ((st = srv_doc_parse_ex(bi.body, bi.hlen, 0, &doc, &err)))
        goto done;
    /* unknown request keys are ignored: clients send extra ones */
    const cJSON *root = srv_doc_root(doc);
    const cJSON *id = cJSON_GetObjectItemCaseSensitive(root, "id");
    const cJSON *params = cJSON_GetObjectItemCaseSensitive(root, "parameters");
    int has_loss, want_grads;
    if (!cJSON_IsObject(root))
        st = nn_err_set(&err, NN_EINVAL, "body: expected a JSON object");
    else if (id && !cJSON_IsString(id))
        st = nn_err_set(&err, NN_EINVAL, "id: expected a string");
    else if (!(st = parse_params(&p, params, &has_loss, &want_grads, &err)))
        st = read_inputs(doc, cJSON_GetObjectItemCaseSensitive(root, "inputs"), &bi, m,
                         s->cfg.max_tensor_elements, has_loss, want_grads, &p, &err);
    if (st)
        goto done;
    tm[1] = srv_now_ns();
    if ((st = srv_pass_run(&p, s->cfg.max_tensor_elements, s->cfg.max_workspace_bytes, &err)))
        goto done;
    tm[2] = srv_now_ns();

    struct nn_tensor loss = {.dtype = m->dtype, .ndim = 1, .shape = {1}, .numel = 1};
    double loss_d = p.loss_value;
    float loss_f = (float)p.loss_value;
    loss.data = m->dtype == NN_F32 ? (void *)&loss_f : (void *)&loss_d;
    size_t room = 2 * (size_t)m->net.nlayers + 3;
    outs = calloc(room, sizeof *outs);
    order = calloc(room, sizeof *order);
    if (!outs || !order) {
        st = nn_err_set(&err, NN_ENOMEM, "out of memory");
        goto done;
    }
    int nout = offered_outputs(&p, &loss, outs);
    int nsel = select_outputs(doc, cJSON_GetObjectItemCaseSensitive(root, "outputs"),
                              param_bool(params, "binary_data_output"), outs, nout, order,
                              p.backward != SRV_BWD_NONE, &err);
    if (nsel < 0)
        st = NN_EINVAL;
    else
        st = build_reply(rep, m, id, &p, outs, order, nsel, &err);
done:
    if (st)
        srv_reply_nn_error(rep, st, &err);
    tm[3] = srv_now_ns();
    srv_model_stats_observe(m->stats, !st, tm, st ? 0 : srv_pass_samples(&p));
    free(outs);
    free(order);
    srv_pass_free(&p);
    srv_doc_free(doc);
    srv_model_release(m);
}
