/* The model repository: NAME.json files in model_dir, loaded at start, replaced at run time
 * (PUT, Triton load), unloaded, deleted; refcounted so a replaced model keeps serving the
 * requests that hold it.
 *
 * Locking. `lock` (a mutex) guards the entry table: lookups hold it for a binary search
 * and a refcount increment; swaps hold it just long enough to exchange a pointer. (A plain
 * mutex rather than a rwlock: the sections are tens of nanoseconds, and glibc's default
 * rwlock lets a stream of readers starve a PUT.) No lock is held during a forward pass,
 * and lookups never wait on disk I/O.
 * `ctl` (a mutex) serialises the control operations (load_all, load, unload, PUT, DELETE)
 * end to end, disk included, so two PUTs of one name cannot interleave their swaps.
 *
 * Entries are never freed before srv_models_free: DELETE only unlists one. So the stats
 * pointer a handler holds (srv_models_stats, model->stats) stays valid, and statistics
 * survive replacement, unload and a DELETE followed by a new PUT of the same name. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "server/auth.h"
#include "server/fmap.h"
#include "server/json.h"
#include "server/layers.h"
#include "server/log.h"
#include "server/models.h"
#include "server/safetensors.h"

#define MODEL_FILE_MAX ((size_t)1 << 30) /* a NAME.json bigger than 1 GiB is refused */

struct entry {
    char name[SRV_MODEL_NAME];
    int listed; /* 0 after DELETE (the entry stays for its stats) */
    enum srv_model_state state;
    char reason[NN_ERR_LEN]; /* not READY: why ("unloaded" after an unload); "" when READY */
    struct srv_model *model; /* READY: the serving version (holds one reference) */
    struct srv_model_stats stats;
};

struct srv_models {
    char *dir;
    size_t max_values;      /* JSON value cap of model files and PUT bodies */
    pthread_mutex_t lock;   /* entries[], and each entry's listed/state/reason/model */
    pthread_mutex_t ctl;    /* serialises control operations */
    struct entry **entries; /* sorted by name */
    int n, cap;
    unsigned tmp_seq; /* temp file names: .NAME.json.tmp.<pid>.<seq> (under ctl) */
};

static const char *const model_keys[] = {
    "name",           "description",      "dtype", "layers", "weights",
    "max_batch_size", "dynamic_batching", NULL};

const char *const srv_model_state_names[] = {
    [SRV_MODEL_READY] = "READY",
    [SRV_MODEL_UNAVAILABLE] = "UNAVAILABLE",
    [SRV_MODEL_UNLOADED] = "UNAVAILABLE", /* with reason "unloaded", as Triton */
};

/* 1 to max characters of [A-Za-z0-9_.-], not starting with '.'. */
static int name_ok(const char *name, size_t max)
{
    if (!name || !name[0] || name[0] == '.')
        return 0;
    size_t n = 0;
    for (const char *p = name; *p; p++, n++) {
        char c = *p;
        int ok = (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
                 c == '_' || c == '.' || c == '-';
        if (!ok || n >= max)
            return 0;
    }
    return 1;
}

int srv_model_name_ok(const char *name) { return name_ok(name, 127); }

/* An uploaded weights file's name: NAME.put-<16 hex>.safetensors (the first 8 bytes of its
 * SHA-256), so a new upload never overwrites the file the serving NAME.json names. */
#define PUT_TAG ".put-"
#define PUT_HEX 16
#define ST_EXT ".safetensors"

/* The owner of an uploaded weights file name (NAME of NAME.put-<hex>.safetensors) into
 * owner; 0 when fn is not one. */
static int put_weights_owner(const char *fn, char *owner, size_t cap)
{
    size_t fl = strlen(fn), el = sizeof ST_EXT - 1, tl = sizeof PUT_TAG - 1;
    if (fl <= el + tl + PUT_HEX || strcmp(fn + fl - el, ST_EXT) != 0)
        return 0;
    const char *hex = fn + fl - el - PUT_HEX, *tag = hex - tl;
    for (int i = 0; i < PUT_HEX; i++)
        if (!((hex[i] >= '0' && hex[i] <= '9') || (hex[i] >= 'a' && hex[i] <= 'f')))
            return 0;
    size_t ol = (size_t)(tag - fn);
    if (strncmp(tag, PUT_TAG, tl) != 0 || ol >= cap)
        return 0;
    memcpy(owner, fn, ol);
    owner[ol] = 0;
    return srv_model_name_ok(owner);
}

/* ---- one model --------------------------------------------------------------------- */

static void model_free(struct srv_model *model)
{
    if (!model)
        return;
    srv_batcher_free(model->batcher);
    srv_net_free(&model->net);
    srv_onnx_sig_free(model->onnx);
    free(model->description);
    free(model);
}

void srv_model_release(struct srv_model *model)
{
    if (model && atomic_fetch_sub(&model->refs, 1) == 1)
        model_free(model);
}

/* "layer i wants param": the state_dict tensor "i.param" from the safetensors file, or
 * "none" (ndim 0) so layers.c applies its missing-weight / no-bias rules. */
static enum nn_status st_source(void *ctx, int layer, const char *param, enum nn_dtype dt,
                                struct nn_tensor *t, struct nn_err *err)
{
    struct srv_st_file *f = ctx;
    char key[64];
    snprintf(key, sizeof key, "%d.%s", layer, param);
    struct srv_st_tensor *st = srv_st_find(f, key);
    if (!st) {
        memset(t, 0, sizeof *t);
        return NN_OK;
    }
    return srv_st_tensor_load(f, st, dt, t, err);
}

/* The last-dimension sizes a model takes and gives, found from its first and last
 * parameterised layers, and the whole chain checked once with a [1, in] input so a
 * mismatched file fails at load ("layers[2] (linear): weight is [64, 100] but the input
 * has 128 features"), not on every request. */
static enum nn_status model_features(struct srv_model *model, struct nn_err *err)
{
    const struct nn_net *net = &model->net;
    size_t in = 0;
    for (int i = 0; i < net->nlayers && !in; i++) {
        const struct nn_layer *l = &net->layers[i];
        if (l->kind == NN_LINEAR && l->weight.ndim == 2)
            in = l->weight.shape[1];
        else if (l->kind == NN_PRELU && l->weight.ndim == 1 && l->weight.numel > 1)
            in = l->weight.shape[0];
    }
    model->in_features = in;
    model->out_features = 0;
    if (!in)
        return NN_OK;
    size_t shape[2] = {1, in};
    struct nn_plan plan;
    memset(&plan, 0, sizeof plan);
    enum nn_status st = nn_net_check(net, shape, 2, 0, 0, &plan, err);
    if (st == NN_OK) {
        const struct nn_tensor *o = &plan.shapes[net->nlayers];
        model->out_features = o->ndim >= 1 ? o->shape[o->ndim - 1] : 0;
    }
    nn_plan_free(&plan);
    return st;
}

/* A JSON model's signature: "input" [-1, in_features] and "output" [-1, out_features]. */
static void json_io(struct srv_model *model)
{
    model->platform = "relud_json";
    model->input = (struct srv_model_io){"input", 2, {-1, -1}};
    model->output = (struct srv_model_io){"output", 2, {-1, -1}};
    if (model->in_features)
        model->input.shape[1] = (int64_t)model->in_features;
    if (model->out_features)
        model->output.shape[1] = (int64_t)model->out_features;
}

/* Builds a model from NAME.onnx: the file at path, or (path NULL) an upload of len bytes at
 * buf, which may not name external data (an upload is one self-contained file). The
 * graph's net and signature, no batching. */
static enum nn_status model_build_onnx(const struct srv_models *m, const char *name,
                                       const char *path, const void *buf, size_t len,
                                       struct srv_model **out, struct nn_err *err)
{
    *out = NULL;
    char label[SRV_MODEL_NAME + 8];
    snprintf(label, sizeof label, "%s.onnx", name);
    struct srv_onnx_model om;
    enum nn_status st = path ? srv_onnx_open(path, label, m->dir, &om, err)
                             : srv_onnx_parse(buf, len, label, NULL, &om, err);
    if (st)
        return st;
    struct srv_model *model = calloc(1, sizeof *model);
    if (!model) {
        srv_onnx_model_free(&om);
        return nn_err_set(err, NN_ENOMEM, "out of memory");
    }
    atomic_init(&model->refs, 1);
    snprintf(model->name, sizeof model->name, "%s", name);
    model->dtype = om.dtype;
    model->net = om.net;
    model->description = om.description;
    model->onnx = om.sig;
    model->platform = "onnxruntime_onnx";
    const struct srv_onnx_sig *s = om.sig;
    struct srv_model_io *io[2] = {&model->input, &model->output};
    for (int k = 0; k < 2; k++) {
        snprintf(io[k]->name, sizeof io[k]->name, "%s", k ? s->output : s->input);
        io[k]->ndim = k ? s->out_ndim : s->in_ndim;
        memcpy(io[k]->shape, k ? s->out_shape : s->in_shape, sizeof io[k]->shape);
    }
    int64_t last = s->flatten_axis >= 0 ? -1 : s->in_shape[s->in_ndim - 1];
    if (s->flatten_axis >= 0) { /* the pass's features: the flattened dims */
        int64_t p = 1;
        for (int i = s->flatten_axis; i < s->in_ndim && p > 0; i++)
            p = s->in_shape[i] > 0 ? p * s->in_shape[i] : -1;
        last = p;
    }
    model->in_features = last > 0 ? (size_t)last : 0;
    last = s->out_shape[s->out_ndim - 1];
    model->out_features = last > 0 ? (size_t)last : 0;
    *out = model;
    return NN_OK;
}

enum nn_status srv_model_input_shape(const struct srv_model *m, const size_t *shape, int ndim,
                                     size_t *out, int *out_ndim, const char *where,
                                     struct nn_err *err)
{
    const struct srv_onnx_sig *s = m->onnx;
    int ok = !s || ndim == s->in_ndim;
    for (int i = 0; s && ok && i < ndim; i++)
        ok = s->in_shape[i] < 0 || (size_t)s->in_shape[i] == shape[i];
    if (!ok) {
        char a[96], b[96];
        size_t n = (size_t)snprintf(b, sizeof b, "[");
        for (int i = 0; i < s->in_ndim && n < sizeof b; i++)
            n += (size_t)(s->in_shape[i] < 0 ? snprintf(b + n, sizeof b - n, "%s-1", i ? ", " : "")
                                             : snprintf(b + n, sizeof b - n, "%s%lld",
                                                        i ? ", " : "", (long long)s->in_shape[i]));
        if (n < sizeof b)
            snprintf(b + n, sizeof b - n, "]");
        return nn_err_set(err, NN_EINVAL, "%s: shape %s does not fit the model's input \"%s\" %s%s",
                          where, nn_shape_str(a, sizeof a, shape, ndim), s->input, b,
                          s->in_ndim > 1 && s->in_shape[0] > 0
                              ? " (its batch size is fixed: export with dynamic_axes for any)"
                              : "");
    }
    if (!s || s->flatten_axis < 0) {
        memcpy(out, shape, (size_t)ndim * sizeof *shape);
        *out_ndim = ndim;
        return NN_OK;
    }
    size_t d[2] = {1, 1}; /* no overflow: the request's element count was checked */
    for (int i = 0; i < ndim; i++)
        d[i >= s->flatten_axis] *= shape[i];
    out[0] = d[0];
    out[1] = d[1];
    *out_ndim = 2;
    return NN_OK;
}

/* The weights a JSON model is built with: up->buf (an upload in memory, its "weights"
 * value ignored: it is replaced by the name the file is written under) or, when buf is
 * NULL, the file its "weights" names. */
struct weights_src {
    const void *buf;
    size_t len;
    const char *label; /* buf's name in messages */
};

/* Builds a model from JSON text. `name` is the name it must have; `origin` says where the
 * name came from for the mismatch message ("the file name", "the URL's model name").
 * ws: weights uploaded with it (NULL: none). wname (may be NULL; PATH_MAX bytes) gets the
 * safetensors file the text names ("" when none); wpos/wend (may be NULL) the byte span of
 * its "weights" value (both 0 when it has none). */
static enum nn_status model_build(const struct srv_models *m, const char *name, const char *origin,
                                  const char *text, size_t len, const struct weights_src *ws,
                                  char *wname_out, size_t *wspan, struct srv_model **out,
                                  struct nn_err *err)
{
    *out = NULL;
    if (wname_out)
        wname_out[0] = 0;
    struct srv_st_file stf;
    memset(&stf, 0, sizeof stf);
    int have_st = 0;
    struct srv_model *model = NULL;
    struct srv_json *d = NULL;
    enum nn_status st = srv_json_parse(text, len, m->max_values, &d, err);
    if (st)
        return st;
    srv_jv root = srv_json_root(d), bad;
    char k[64];
    if (srv_json_type(d, root) != SRV_J_OBJECT) {
        st = nn_err_set(err, NN_EINVAL,
                        "expected a JSON object (a model: name, description, dtype, layers, "
                        "weights)");
        goto fail;
    }
    if ((bad = srv_json_unknown_key(d, root, model_keys))) {
        st = nn_err_set(err, NN_EINVAL,
                        "unknown field \"%s\" (known: name, description, dtype, layers, weights, "
                        "max_batch_size, dynamic_batching)",
                        srv_json_key(d, bad, k, sizeof k));
        goto fail;
    }
    srv_jv jname = srv_json_get(d, root, "name"), jdesc = srv_json_get(d, root, "description");
    srv_jv jdtype = srv_json_get(d, root, "dtype"), jlayers = srv_json_get(d, root, "layers");
    srv_jv jweights = srv_json_get(d, root, "weights");
    char buf[SRV_MODEL_NAME];
    if (jname && srv_json_type(d, jname) != SRV_J_STRING) {
        st = nn_err_set(err, NN_EINVAL, "name: expected a string");
        goto fail;
    }
    if (jname && !srv_json_str_is(d, jname, name)) {
        srv_json_str(d, jname, buf, sizeof buf);
        st = nn_err_set(err, NN_EINVAL, "name: \"%.100s\" does not match %s \"%s\"", buf, origin,
                        name);
        goto fail;
    }
    enum srv_jtype dty = srv_json_type(d, jdesc);
    if (jdesc && dty != SRV_J_STRING && dty != SRV_J_NULL) {
        st = nn_err_set(err, NN_EINVAL, "description: expected a string");
        goto fail;
    }
    enum nn_dtype dt = NN_F32;
    if (jdtype && (st = srv_dtype_parse(d, jdtype, "dtype", &dt, err)))
        goto fail;
    if (!jlayers) {
        st = nn_err_set(err, NN_EINVAL, "layers: required");
        goto fail;
    }
    enum srv_jtype wty = srv_json_type(d, jweights);
    if (wspan && jweights && (wty == SRV_J_STRING || wty == SRV_J_NULL)) {
        /* the value's bytes: a string to its closing quote, or null */
        size_t a = srv_json_pos(d, jweights), b = a + 1;
        while (wty == SRV_J_STRING && b < len && text[b] != '"')
            b += text[b] == '\\' ? 2 : 1;
        wspan[0] = a;
        wspan[1] = wty == SRV_J_STRING ? b + 1 : a + 4;
    } else if (wspan) {
        wspan[0] = wspan[1] = 0;
    }
    if (ws) {
        if (jweights && wty != SRV_J_STRING && wty != SRV_J_NULL) {
            st = nn_err_set(err, NN_EINVAL,
                            "weights: expected a file name or null (the uploaded weights replace "
                            "it)");
            goto fail;
        }
        if ((st = srv_st_parse(&stf, ws->buf, ws->len, ws->label, err)))
            goto fail;
        have_st = 1;
    } else if (jweights && wty != SRV_J_NULL) {
        char wname[PATH_MAX];
        if (srv_json_str(d, jweights, wname, sizeof wname) >= sizeof wname ||
            !name_ok(wname, 255)) {
            st = nn_err_set(err, NN_EINVAL,
                            "weights: expected the name of a safetensors file in model_dir "
                            "([A-Za-z0-9_.-], not starting with '.')");
            goto fail;
        }
        char path[PATH_MAX];
        if ((size_t)snprintf(path, sizeof path, "%s/%s", m->dir, wname) >= sizeof path) {
            st = nn_err_set(err, NN_EINVAL, "weights: path too long");
            goto fail;
        }
        if ((st = srv_st_open(&stf, path, wname, err)))
            goto fail;
        have_st = 1;
        if (wname_out)
            snprintf(wname_out, PATH_MAX, "%s", wname);
    }

    model = calloc(1, sizeof *model);
    if (!model) {
        st = nn_err_set(err, NN_ENOMEM, "out of memory");
        goto fail;
    }
    atomic_init(&model->refs, 1);
    snprintf(model->name, sizeof model->name, "%s", name);
    model->dtype = dt;
    if (dty == SRV_J_STRING && !(model->description = srv_json_strdup(d, jdesc))) {
        st = nn_err_set(err, NN_ENOMEM, "out of memory");
        goto fail;
    }
    if ((st = srv_layers_parse(d, jlayers, dt, 0, 0, have_st ? st_source : NULL, &stf, &model->net,
                               err)))
        goto fail;
    for (int i = 0; i < stf.ntensors; i++) {
        if (!stf.tensors[i].used) {
            st = nn_err_set(err, NN_EINVAL, "weights: tensor \"%.100s\" is not used by any layer",
                            stf.tensors[i].name);
            goto fail;
        }
    }
    if ((st = model_features(model, err)) ||
        (st = srv_batch_cfg_parse(d, root, &model->batch, err)))
        goto fail;
    json_io(model);
    if (model->batch.dynamic && !(model->batcher = srv_batcher_new(&model->net, &model->batch))) {
        st = nn_err_set(err, NN_ENOMEM, "out of memory");
        goto fail;
    }
    srv_st_close(&stf);
    srv_json_free(d);
    *out = model;
    return NN_OK;
fail:
    model_free(model);
    srv_st_close(&stf);
    srv_json_free(d);
    return st;
}

/* ---- the entry table (callers hold lock) ------------------------------------------ */

static int entry_index(const struct srv_models *m, const char *name, int *found)
{
    int lo = 0, hi = m->n;
    while (lo < hi) {
        int mid = (lo + hi) / 2, c = strcmp(m->entries[mid]->name, name);
        if (c == 0) {
            *found = 1;
            return mid;
        }
        if (c < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    *found = 0;
    return lo;
}

static struct entry *entry_find(const struct srv_models *m, const char *name)
{
    int found, i = entry_index(m, name, &found);
    return found ? m->entries[i] : NULL;
}

static struct entry *entry_get_or_add(struct srv_models *m, const char *name)
{
    int found, i = entry_index(m, name, &found);
    if (found)
        return m->entries[i];
    if (m->n == m->cap) {
        int ncap = m->cap ? m->cap * 2 : 16;
        struct entry **ne = realloc(m->entries, (size_t)ncap * sizeof *ne);
        if (!ne)
            return NULL;
        m->entries = ne;
        m->cap = ncap;
    }
    struct entry *e = calloc(1, sizeof *e);
    if (!e)
        return NULL;
    snprintf(e->name, sizeof e->name, "%s", name);
    srv_batch_stats_init(&e->stats.batch);
    e->state = SRV_MODEL_UNAVAILABLE;
    memmove(&m->entries[i + 1], &m->entries[i], (size_t)(m->n - i) * sizeof *m->entries);
    m->entries[i] = e;
    m->n++;
    return e;
}

/* Makes model the serving version of its name (takes over the caller's reference);
 * the previous version is released once its last request finishes. */
static enum nn_status install(struct srv_models *m, struct srv_model *model, struct nn_err *err)
{
    pthread_mutex_lock(&m->lock);
    struct entry *e = entry_get_or_add(m, model->name);
    struct srv_model *old = NULL;
    if (e) {
        old = e->model;
        e->model = model;
        model->stats = &e->stats;
        e->state = SRV_MODEL_READY;
        e->reason[0] = '\0';
        e->listed = 1;
    }
    pthread_mutex_unlock(&m->lock);
    if (!e) {
        srv_model_release(model);
        return nn_err_set(err, NN_ENOMEM, "out of memory");
    }
    srv_model_release(old);
    return NN_OK;
}

/* Lists name without a serving model, UNAVAILABLE with a reason; listed = 0
 * unlists it (DELETE). */
static void set_state(struct srv_models *m, const char *name, enum srv_model_state state,
                      int listed, const char *reason)
{
    pthread_mutex_lock(&m->lock);
    struct entry *e = listed ? entry_get_or_add(m, name) : entry_find(m, name);
    struct srv_model *old = NULL;
    if (e) {
        old = e->model;
        e->model = NULL;
        e->state = state;
        snprintf(e->reason, sizeof e->reason, "%s", reason);
        e->listed = listed;
    }
    pthread_mutex_unlock(&m->lock);
    srv_model_release(old);
}

/* ---- public ---------------------------------------------------------------------- */

struct srv_models *srv_models_new(const char *model_dir, size_t max_values)
{
    struct srv_models *m = calloc(1, sizeof *m);
    if (!m)
        return NULL;
    m->max_values = max_values;
    m->dir = strdup(model_dir && model_dir[0] ? model_dir : ".");
    if (!m->dir) {
        free(m);
        return NULL;
    }
    /* trailing slashes only make messages ugly: "dir//x.json" */
    for (size_t n = strlen(m->dir); n > 1 && m->dir[n - 1] == '/'; n--)
        m->dir[n - 1] = '\0';
    pthread_mutex_init(&m->lock, NULL);
    pthread_mutex_init(&m->ctl, NULL);
    return m;
}

void srv_models_free(struct srv_models *m)
{
    if (!m)
        return;
    for (int i = 0; i < m->n; i++) {
        srv_model_release(m->entries[i]->model);
        srv_batch_stats_destroy(&m->entries[i]->stats.batch);
        free(m->entries[i]);
    }
    free(m->entries);
    pthread_mutex_destroy(&m->lock);
    pthread_mutex_destroy(&m->ctl);
    free(m->dir);
    free(m);
}

/* Reads model_dir/NAME.json and installs it: NN_ENOTFOUND (no file), NN_EINVAL (broken:
 * err has the reason), NN_ENOMEM. A broken file leaves a READY entry serving its previous
 * version (a failed reload never takes a working model down); otherwise the entry is
 * listed UNAVAILABLE with the reason. Caller holds ctl. */
static enum nn_status load_one(struct srv_models *m, const char *name, struct nn_err *err)
{
    char path[PATH_MAX], opath[PATH_MAX];
    if ((size_t)snprintf(path, sizeof path, "%s/%s.json", m->dir, name) >= sizeof path ||
        (size_t)snprintf(opath, sizeof opath, "%s/%s.onnx", m->dir, name) >= sizeof opath)
        return nn_err_set(err, NN_EINVAL, "%s: path too long", name);
    size_t len = 0;
    int eno = 0, onnx = access(opath, F_OK) == 0;
    struct nn_err rerr;
    char label[SRV_MODEL_NAME + 8];
    snprintf(label, sizeof label, "%s.json", name);
    char *text = srv_fread(path, label, MODEL_FILE_MAX, &len, &eno, &rerr);
    if (!text && eno == ENOENT && !onnx)
        return nn_err_set(err, NN_ENOTFOUND, "model \"%s\": no file %s (nor %s.onnx)", name, path,
                          name);
    struct srv_model *model = NULL;
    enum nn_status st;
    if (onnx && (text || eno != ENOENT))
        st = nn_err_set(err, NN_EINVAL,
                        "%s.onnx: %s.json is in model_dir too: one model, one file (remove one)",
                        name, name);
    else if (onnx)
        st = model_build_onnx(m, name, opath, NULL, 0, &model, err);
    else if (!text)
        st = nn_err_set(err, NN_EINVAL, "%s", rerr.msg);
    else
        st = model_build(m, name, "the file name", text, len, NULL, NULL, NULL, &model, err);
    free(text);
    if (st == NN_OK)
        return install(m, model, err);
    pthread_mutex_lock(&m->lock);
    struct entry *e = entry_find(m, name);
    int serving = e && e->listed && e->state == SRV_MODEL_READY;
    pthread_mutex_unlock(&m->lock);
    if (!serving)
        set_state(m, name, SRV_MODEL_UNAVAILABLE, 1, err->msg);
    return st == NN_ENOMEM ? NN_ENOMEM : NN_EINVAL;
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static void sweep(struct srv_models *m);

enum nn_status srv_models_load_all(struct srv_models *m, int strict, struct nn_err *err)
{
    pthread_mutex_lock(&m->ctl);
    sweep(m);
    DIR *dir = opendir(m->dir);
    if (!dir) {
        /* Ready must mean "serving what it was configured to serve": a mistyped mount or
         * path stops the start, so it cannot pass a readiness probe with no models. */
        int e = errno;
        pthread_mutex_unlock(&m->ctl);
        return nn_err_set(err, NN_ENOTFOUND,
                          "model_dir %s: %s (point model_dir at the folder of models; an empty "
                          "folder serves none)",
                          m->dir, strerror(e));
    }
    char **names = NULL;
    size_t n = 0, cap = 0;
    enum nn_status rc = NN_OK;
    struct dirent *de;
    while ((de = readdir(dir))) {
        const char *fn = de->d_name;
        size_t fl = strlen(fn);
        /* dotfiles (".NAME.json.tmp.<pid>.<n>" left by a crash in PUT) and files other than
           NAME.json and NAME.onnx (the safetensors beside a model) are not models */
        if (fn[0] == '.' || fl <= 5 ||
            (strcmp(fn + fl - 5, ".json") != 0 && strcmp(fn + fl - 5, ".onnx") != 0))
            continue;
        if (n == cap) {
            size_t nc = cap ? cap * 2 : 16;
            char **nn = realloc(names, nc * sizeof *nn);
            if (!nn) {
                rc = nn_err_set(err, NN_ENOMEM, "model_dir %s: out of memory", m->dir);
                break;
            }
            names = nn;
            cap = nc;
        }
        if (!(names[n] = strndup(fn, fl - 5))) {
            rc = nn_err_set(err, NN_ENOMEM, "model_dir %s: out of memory", m->dir);
            break;
        }
        n++;
    }
    closedir(dir);
    if (n)
        qsort(names, n, sizeof *names, cmp_str);
    size_t u = 0; /* NAME.json and NAME.onnx: one name (load_one refuses the pair) */
    for (size_t i = 0; i < n; i++) {
        if (u && !strcmp(names[u - 1], names[i]))
            free(names[i]);
        else
            names[u++] = names[i];
    }
    n = u;
    int ready = 0, broken = 0;
    for (size_t i = 0; i < n && rc == NN_OK; i++) {
        const char *name = names[i];
        if (!srv_model_name_ok(name)) {
            if (strict)
                rc = nn_err_set(err, NN_EINVAL,
                                "strict_models: %s/%s.json: \"%s\" is not a valid model name "
                                "([A-Za-z0-9_.-], 1 to 127 characters)",
                                m->dir, name, name);
            else
                srv_log(CFG_LOG_WARN,
                        "%s/%s.json: ignored: not a valid model name ([A-Za-z0-9_.-], 1 to 127 "
                        "characters)",
                        m->dir, name);
            continue;
        }
        struct nn_err e;
        enum nn_status st = load_one(m, name, &e);
        if (st == NN_OK) {
            ready++;
            continue;
        }
        if (st == NN_ENOTFOUND)
            continue; /* deleted between readdir and open */
        broken++;
        char op[PATH_MAX]; /* an ONNX model's messages start with "NAME.onnx: " */
        snprintf(op, sizeof op, "%s/%s.onnx", m->dir, name);
        if (strict && access(op, F_OK) == 0)
            rc = nn_err_set(err, st, "strict_models: %s/%s", m->dir, e.msg);
        else if (strict)
            rc = nn_err_set(err, st, "strict_models: %s/%s.json: %s", m->dir, name, e.msg);
        else
            srv_log(CFG_LOG_WARN, "model %s: unavailable: %s", name, e.msg);
    }
    for (size_t i = 0; i < n; i++)
        free(names[i]);
    free(names);
    pthread_mutex_unlock(&m->ctl);
    if (rc == NN_OK)
        srv_log(CFG_LOG_INFO, "models: %d ready, %d unavailable in %s", ready, broken, m->dir);
    return rc;
}

struct srv_model *srv_models_get(struct srv_models *m, const char *name, enum nn_status *st,
                                 struct nn_err *err)
{
    struct srv_model *model = NULL;
    if (!m || !name || !srv_model_name_ok(name)) {
        *st = nn_err_set(err, NN_ENOTFOUND, "unknown model \"%.127s\"", name ? name : "");
        return NULL;
    }
    pthread_mutex_lock(&m->lock);
    struct entry *e = entry_find(m, name);
    if (!e || !e->listed) {
        *st = nn_err_set(err, NN_ENOTFOUND, "unknown model \"%s\"", name);
    } else if (e->state == SRV_MODEL_READY) {
        model = e->model;
        atomic_fetch_add(&model->refs, 1);
        *st = NN_OK;
    } else if (e->state == SRV_MODEL_UNLOADED) {
        *st = nn_err_set(err, NN_EUNAVAILABLE, "model \"%s\" is unloaded", name);
    } else {
        *st = nn_err_set(err, NN_EUNAVAILABLE, "model \"%s\" is unavailable: %s", name, e->reason);
    }
    pthread_mutex_unlock(&m->lock);
    return model;
}

const double srv_latency_le[SRV_LAT_BUCKETS] = {
    0.000025, 0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025,
    0.05,     0.1,     0.25,   0.5,     1,      2.5,   5,      10,    30};

int srv_latency_bucket(double seconds)
{
    int b = 0;
    while (b < SRV_LAT_BUCKETS && seconds > srv_latency_le[b])
        b++;
    return b;
}

void srv_model_stats_observe(struct srv_model_stats *s, int ok, const struct srv_req_times *t,
                             size_t samples)
{
    if (!s)
        return;
    uint64_t ns = t->reply_built - t->start;
    atomic_fetch_add(&s->latency[srv_latency_bucket((double)ns * 1e-9)], 1);
    if (ok) {
        atomic_fetch_add(&s->success_count, 1);
        atomic_fetch_add(&s->success_ns, ns);
        atomic_fetch_add(&s->queue_ns, t->pass_start - t->inputs_read);
        atomic_fetch_add(&s->compute_input_ns, t->inputs_read - t->start + t->in_extra);
        atomic_fetch_add(&s->compute_infer_ns, t->pass_end - t->pass_start);
        atomic_fetch_add(&s->compute_output_ns, t->reply_built - t->pass_end + t->out_extra);
        atomic_fetch_add(&s->inference_count, samples);
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        atomic_store(&s->last_inference_ms, (unsigned long long)ts.tv_sec * 1000ull +
                                                (unsigned long long)ts.tv_nsec / 1000000ull);
    } else {
        atomic_fetch_add(&s->fail_count, 1);
        atomic_fetch_add(&s->fail_ns, ns);
    }
}

void srv_model_stats_exec(struct srv_model_stats *s, size_t rows, const struct srv_req_times *t)
{
    if (!s)
        return;
    srv_batch_stats_exec(&s->batch, rows, t->inputs_read - t->start, t->pass_end - t->pass_start,
                         t->reply_built - t->pass_end);
}

static enum nn_status bad_name(const char *name, struct nn_err *err)
{
    return nn_err_set(err, NN_EINVAL,
                      "invalid model name \"%.127s\" ([A-Za-z0-9_.-], 1 to 127 characters, not "
                      "starting with '.')",
                      name);
}

enum nn_status srv_models_load(struct srv_models *m, const char *name, struct nn_err *err)
{
    if (!srv_model_name_ok(name))
        return bad_name(name, err);
    pthread_mutex_lock(&m->ctl);
    enum nn_status st = load_one(m, name, err);
    pthread_mutex_unlock(&m->ctl);
    if (st == NN_OK)
        srv_log(CFG_LOG_INFO, "model %s: loaded", name);
    else if (st != NN_ENOTFOUND)
        srv_log(CFG_LOG_WARN, "model %s: load failed: %s", name, err->msg);
    return st;
}

enum nn_status srv_models_unload(struct srv_models *m, const char *name, struct nn_err *err)
{
    pthread_mutex_lock(&m->ctl);
    pthread_mutex_lock(&m->lock);
    struct entry *e = srv_model_name_ok(name) ? entry_find(m, name) : NULL;
    int listed = e && e->listed;
    pthread_mutex_unlock(&m->lock);
    if (listed)
        set_state(m, name, SRV_MODEL_UNLOADED, 1, "unloaded");
    pthread_mutex_unlock(&m->ctl);
    if (!listed)
        return nn_err_set(err, NN_ENOTFOUND, "unknown model \"%.127s\"", name);
    srv_log(CFG_LOG_INFO, "model %s: unloaded", name);
    return NN_OK;
}

static int fsync_dir(const char *dir)
{
    int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0)
        return -1;
    int rc = fsync(fd);
    int e = errno;
    close(fd);
    errno = e;
    return rc;
}

/* Writes body to dir/FILE (NAME.json, NAME.onnx, NAME.put-<hex>.safetensors) so that a
 * crash at any moment leaves the old file or the new one whole: a fresh temp file in the
 * same directory (".FILE.tmp.<pid>.<n>": load_all ignores it, and removes it at the next
 * start), fsync, rename over the target (atomic), fsync the directory (the rename is
 * durable). */
static enum nn_status write_atomic(struct srv_models *m, const char *file, const void *body,
                                   size_t len, struct nn_err *err)
{
    char tmp[PATH_MAX], path[PATH_MAX];
    if ((size_t)snprintf(tmp, sizeof tmp, "%s/.%s.tmp.%ld.%u", m->dir, file, (long)getpid(),
                         m->tmp_seq++) >= sizeof tmp ||
        (size_t)snprintf(path, sizeof path, "%s/%s", m->dir, file) >= sizeof path) {
        return nn_err_set(err, NN_EINVAL, "%s/%s: path too long", m->dir, file);
    }
    int fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
    if (fd < 0)
        return nn_err_set(err, NN_EIO, "cannot create %s: %s", tmp, strerror(errno));
    const char *what = NULL;
    size_t done = 0;
    while (done < len) {
        ssize_t w = write(fd, (const char *)body + done, len - done);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0) {
            what = "write";
            break;
        }
        done += (size_t)w;
    }
    if (!what && fsync(fd) != 0)
        what = "fsync";
    int e = errno;
    if (close(fd) != 0 && !what) {
        what = "close";
        e = errno;
    }
    if (!what && rename(tmp, path) != 0) {
        what = "rename";
        e = errno;
    }
    if (what) {
        unlink(tmp);
        return nn_err_set(err, NN_EIO, "%s %s: %s", what, what[0] == 'r' ? path : tmp, strerror(e));
    }
    if (fsync_dir(m->dir) != 0) {
        /* the new file is in place and complete; only its durability across a power cut
           is in doubt */
        srv_log(CFG_LOG_WARN, "fsync %s: %s", m->dir, strerror(errno));
    }
    return NN_OK;
}

/* The safetensors file NAME.json names (its "weights"), into wname (PATH_MAX); "" when it
 * names none. 0 then; 1 when there is no NAME.json; -1 when it is unreadable or not a JSON
 * object with a string or no "weights" (what it names is then unknown). */
static int json_weights(const struct srv_models *m, const char *name, char *wname)
{
    char path[PATH_MAX];
    wname[0] = 0;
    if ((size_t)snprintf(path, sizeof path, "%s/%s.json", m->dir, name) >= sizeof path)
        return -1;
    size_t len;
    int eno;
    struct nn_err e;
    char *text = srv_fread(path, name, MODEL_FILE_MAX, &len, &eno, &e);
    struct srv_json *d = NULL;
    int rc = !text && eno == ENOENT ? 1 : -1;
    if (text && srv_json_parse(text, len, m->max_values, &d, &e) == NN_OK &&
        srv_json_type(d, srv_json_root(d)) == SRV_J_OBJECT) {
        srv_jv w = srv_json_get(d, srv_json_root(d), "weights");
        enum srv_jtype t = srv_json_type(d, w);
        if (!w || t == SRV_J_NULL)
            rc = 0;
        else if (t == SRV_J_STRING && srv_json_str(d, w, wname, PATH_MAX) < PATH_MAX)
            rc = 0;
        else
            wname[0] = 0;
    }
    srv_json_free(d);
    free(text);
    return rc;
}

/* Removes dir/file (an uploaded weights file no NAME.json names any more); a failure is
 * only logged: the next start removes it. */
static void remove_weights(const struct srv_models *m, const char *file)
{
    char path[PATH_MAX];
    if ((size_t)snprintf(path, sizeof path, "%s/%s", m->dir, file) >= sizeof path)
        return;
    if (unlink(path) != 0 && errno != ENOENT)
        srv_log(CFG_LOG_WARN, "unlink %s: %s", path, strerror(errno));
    else
        srv_log(CFG_LOG_DEBUG, "removed %s (no longer used)", path);
}

/* text with its "weights" value (the bytes [span[0], span[1]), or none: span {0, 0}) set to
 * "wname", malloc'd, its length in *out_len. NULL when out of memory. */
static char *splice_weights(const char *text, size_t len, const size_t span[2], const char *wname,
                            size_t *out_len)
{
    char ins[PATH_MAX + 32];
    size_t a = span[0], b = span[1];
    size_t il;
    if (b) {
        il = (size_t)snprintf(ins, sizeof ins, "\"%s\"", wname);
    } else { /* after the object's "{" (the root is an object: model_build checked) */
        while (a < len && text[a] != '{')
            a++;
        b = ++a;
        il = (size_t)snprintf(ins, sizeof ins, "\"weights\": \"%s\", ", wname);
    }
    char *out = malloc(len - (b - a) + il + 1);
    if (!out)
        return NULL;
    memcpy(out, text, a);
    memcpy(out + a, ins, il);
    memcpy(out + a + il, text + b, len - b);
    *out_len = len - (b - a) + il;
    out[*out_len] = 0;
    return out;
}

/* A temp file of write_atomic: ".FILE.tmp.<pid>.<n>". */
static int is_temp(const char *fn)
{
    size_t l = strlen(fn), i = l;
    if (fn[0] != '.')
        return 0;
    for (int k = 0; k < 2; k++) { /* <n>, then <pid>, each after a '.' */
        size_t d = i;
        while (i > 0 && fn[i - 1] >= '0' && fn[i - 1] <= '9')
            i--;
        if (i == d || i == 0 || fn[i - 1] != '.')
            return 0;
        i--;
    }
    return i > 5 && !strncmp(fn + i - 4, ".tmp", 4);
}

/* At start, what a PUT interrupted by a crash leaves behind: its temp files, and uploaded
 * weights (NAME.put-<hex>.safetensors) that NAME.json does not name (written, but NAME.json
 * was never renamed into place). Model_dir is this daemon's to write: two daemons writing
 * one model_dir would remove each other's uploads in progress. */
static void sweep(struct srv_models *m)
{
    DIR *dir = opendir(m->dir);
    if (!dir)
        return;
    struct dirent *de;
    while ((de = readdir(dir))) {
        const char *fn = de->d_name;
        char owner[SRV_MODEL_NAME], wname[PATH_MAX], path[PATH_MAX];
        int doomed = is_temp(fn);
        if (!doomed && put_weights_owner(fn, owner, sizeof owner)) {
            int k = json_weights(m, owner, wname);
            doomed = k == 1 || (k == 0 && strcmp(wname, fn) != 0);
        }
        if (!doomed || (size_t)snprintf(path, sizeof path, "%s/%s", m->dir, fn) >= sizeof path)
            continue;
        if (unlink(path) == 0)
            srv_log(CFG_LOG_INFO, "removed %s (left by an interrupted PUT)", path);
        else if (errno != ENOENT)
            srv_log(CFG_LOG_WARN, "unlink %s: %s", path, strerror(errno));
    }
    closedir(dir);
}

enum nn_status srv_models_put_upload(struct srv_models *m, const char *name,
                                     const struct srv_model_upload *up, int *created,
                                     struct nn_err *err)
{
    *created = 0;
    if (!srv_model_name_ok(name))
        return bad_name(name, err);
    int onnx = up->kind == SRV_UPLOAD_ONNX;
    struct srv_model *model = NULL;
    char path[PATH_MAX], other[PATH_MAX], file[SRV_MODEL_NAME + 8], wfile[PATH_MAX] = "";
    char old_w[PATH_MAX] = "", new_w[PATH_MAX] = "";
    snprintf(file, sizeof file, "%s.%s", name, onnx ? "onnx" : "json");
    if ((size_t)snprintf(path, sizeof path, "%s/%s", m->dir, file) >= sizeof path ||
        (size_t)snprintf(other, sizeof other, "%s/%s.%s", m->dir, name, onnx ? "json" : "onnx") >=
            sizeof other)
        return nn_err_set(err, NN_EINVAL, "%s/%s: path too long", m->dir, file);
    pthread_mutex_lock(&m->ctl);
    /* NAME.json and NAME.onnx together are a broken model, and replacing one by the other
       takes two steps (a crash between them would leave both or neither): refused */
    if (access(other, F_OK) == 0) {
        pthread_mutex_unlock(&m->ctl);
        if (onnx)
            return nn_err_set(err, NN_EINVAL,
                              "model \"%s\" is %s.json in model_dir: DELETE /v1/models/%s "
                              "first, then PUT the ONNX file",
                              name, name, name);
        return nn_err_set(err, NN_EINVAL,
                          "model \"%s\" is %s.onnx in model_dir: replace that file and load it "
                          "(POST /v2/repository/models/%s/load), or DELETE the model first",
                          name, name, name);
    }
    const char *body = up->body ? up->body : "";
    size_t len = up->len, span[2];
    char *text = NULL; /* the JSON written when it is not the body (weights renamed) */
    enum nn_status st;
    if (onnx) {
        st = model_build_onnx(m, name, NULL, body, len, &model, err);
    } else if (up->kind == SRV_UPLOAD_JSON) {
        st =
            model_build(m, name, "the URL's model name", body, len, NULL, new_w, NULL, &model, err);
    } else {
        struct weights_src ws = {up->weights, up->weights_len,
                                 up->weights_label ? up->weights_label : "weights"};
        st = model_build(m, name, "the URL's model name", body, len, &ws, NULL, span, &model, err);
        if (st == NN_OK) {
            uint8_t h[32];
            srv_sha256(up->weights, up->weights_len, h);
            int n = snprintf(new_w, sizeof new_w, "%s" PUT_TAG, name);
            for (int i = 0; i < PUT_HEX / 2; i++)
                n += snprintf(new_w + n, sizeof new_w - (size_t)n, "%02x", h[i]);
            snprintf(new_w + n, sizeof new_w - (size_t)n, ST_EXT);
            snprintf(wfile, sizeof wfile, "%s", new_w);
            if (!(text = splice_weights(body, len, span, new_w, &len)))
                st = nn_err_set(err, NN_ENOMEM, "out of memory");
            else
                body = text;
        }
    }
    if (st != NN_OK) {
        pthread_mutex_unlock(&m->ctl);
        srv_model_release(model);
        return st;
    }
    pthread_mutex_lock(&m->lock);
    struct entry *en = entry_find(m, name);
    int existed = (en && en->listed) || access(path, F_OK) == 0;
    pthread_mutex_unlock(&m->lock);
    int old_known = !onnx && json_weights(m, name, old_w) == 0;
    /* the weights first, under a name of their own: until NAME.json is renamed into place
       the old model (and the file it names) is what a crash leaves */
    if (wfile[0])
        st = write_atomic(m, wfile, up->weights, up->weights_len, err);
    if (st == NN_OK && (st = write_atomic(m, file, body, len, err)) != NN_OK && wfile[0] &&
        strcmp(old_w, wfile) != 0)
        remove_weights(m, wfile);
    free(text);
    if (st) {
        pthread_mutex_unlock(&m->ctl);
        srv_model_release(model);
        srv_log(CFG_LOG_ERROR, "model %s: PUT: %s", name, err->msg);
        return st;
    }
    st = install(m, model, err);
    /* the weights a previous upload left that the new NAME.json does not name */
    char owner[SRV_MODEL_NAME];
    if (old_known && old_w[0] && strcmp(old_w, new_w) != 0 &&
        put_weights_owner(old_w, owner, sizeof owner) && !strcmp(owner, name))
        remove_weights(m, old_w);
    pthread_mutex_unlock(&m->ctl);
    if (st)
        return st;
    srv_log(CFG_LOG_INFO, "model %s: %s by PUT%s", name, existed ? "replaced" : "created",
            onnx       ? " (ONNX)"
            : wfile[0] ? " (with weights)"
                       : "");
    *created = !existed;
    return NN_OK;
}

enum nn_status srv_models_put(struct srv_models *m, const char *name, const char *body, size_t len,
                              int *created, struct nn_err *err)
{
    struct srv_model_upload up = {.kind = SRV_UPLOAD_JSON, .body = body, .len = len};
    return srv_models_put_upload(m, name, &up, created, err);
}

enum nn_status srv_models_delete(struct srv_models *m, const char *name, struct nn_err *err)
{
    char path[PATH_MAX];
    if (!srv_model_name_ok(name) ||
        (size_t)snprintf(path, sizeof path, "%s/%s.json", m->dir, name) >= sizeof path)
        return nn_err_set(err, NN_ENOTFOUND, "unknown model \"%.127s\"", name);
    pthread_mutex_lock(&m->ctl);
    pthread_mutex_lock(&m->lock);
    struct entry *e = entry_find(m, name);
    int listed = e && e->listed;
    pthread_mutex_unlock(&m->lock);
    enum nn_status st = NN_OK;
    int removed = 0;
    char wname[PATH_MAX], owner[SRV_MODEL_NAME];
    if (json_weights(m, name, wname) != 0 || !put_weights_owner(wname, owner, sizeof owner) ||
        strcmp(owner, name) != 0)
        wname[0] = 0;                            /* only weights a PUT wrote for NAME go with it */
    for (int k = 0; k < 2 && st == NN_OK; k++) { /* NAME.json, then NAME.onnx */
        if (k)
            snprintf(path, sizeof path, "%s/%s.onnx", m->dir, name);
        if (unlink(path) == 0)
            removed = 1;
        else if (errno != ENOENT)
            st = nn_err_set(err, NN_EIO, "unlink %s: %s", path, strerror(errno));
    }
    if (st == NN_OK && !removed && !listed)
        st = nn_err_set(err, NN_ENOTFOUND, "unknown model \"%s\"", name);
    else if (removed && fsync_dir(m->dir) != 0)
        srv_log(CFG_LOG_WARN, "fsync %s: %s", m->dir, strerror(errno));
    if (st == NN_OK && removed && wname[0])
        remove_weights(m, wname);
    if (st == NN_OK)
        set_state(m, name, SRV_MODEL_UNAVAILABLE, 0, "deleted");
    pthread_mutex_unlock(&m->ctl);
    if (st == NN_OK)
        srv_log(CFG_LOG_INFO, "model %s: deleted", name);
    return st;
}

void srv_models_foreach(struct srv_models *m, srv_models_visit_fn *fn, void *ctx)
{
    if (!m)
        return;
    pthread_mutex_lock(&m->lock);
    for (int i = 0; i < m->n; i++) {
        const struct entry *e = m->entries[i];
        if (e->listed)
            fn(ctx, e->name, e->state, e->reason, &e->stats,
               e->state == SRV_MODEL_READY ? e->model : NULL);
    }
    pthread_mutex_unlock(&m->lock);
}
