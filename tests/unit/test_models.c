/* Model repository: loading (good, broken, strict), the model-file rules, names, PUT
 * (atomic, replace under live references), DELETE, Triton load/unload, index, metrics,
 * and concurrent lookups during replacement. Run the ASan build too: a model freed while
 * referenced, or never freed, shows up there. */
#include <dirent.h>
#include <math.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>
#include <cjson/cJSON.h>

#include "server/log.h"
#include "server/metrics.h"
#include "server/models.h"
#include "server/status.h"
#include "tests/common/fs.h"
#include "tests/common/http.h"

#define FIX "tests/fixtures/models"

/* ---- helpers ---------------------------------------------------------------------- */

static char *t_read(const char *dir, const char *file)
{
    char path[512];
    snprintf(path, sizeof path, "%s/%s", dir, file);
    FILE *fp = fopen(path, "rb");
    if (!fp)
        return NULL;
    char *buf = calloc(1, 1 << 20);
    size_t n = fread(buf, 1, (1 << 20) - 1, fp);
    buf[n] = '\0';
    fclose(fp);
    return buf;
}

/* Files in dir whose name contains needle. */
static int t_count(const char *dir, const char *needle)
{
    DIR *d = opendir(dir);
    assert_non_null(d);
    int n = 0;
    struct dirent *de;
    while ((de = readdir(d)))
        n += strstr(de->d_name, needle) != NULL;
    closedir(d);
    return n;
}

/* A safetensors file of F64 tensors: names[i] with shapes[i] (rank <= 2, 0 = unused
 * dim) and their values, laid out back to back. */
static void t_write_st64(const char *dir, const char *file, int n, const char *const *names,
                         const size_t (*shapes)[2], const double *const *vals)
{
    char hdr[2048];
    size_t at = 0, off = 0, total = 0;
    at += (size_t)snprintf(hdr + at, sizeof hdr - at, "{");
    for (int i = 0; i < n; i++) {
        size_t numel = shapes[i][0] * (shapes[i][1] ? shapes[i][1] : 1);
        if (shapes[i][1])
            at += (size_t)snprintf(hdr + at, sizeof hdr - at,
                                   "%s\"%s\":{\"dtype\":\"F64\",\"shape\":[%zu,%zu],"
                                   "\"data_offsets\":[%zu,%zu]}",
                                   i ? "," : "", names[i], shapes[i][0], shapes[i][1], off,
                                   off + 8 * numel);
        else
            at += (size_t)snprintf(hdr + at, sizeof hdr - at,
                                   "%s\"%s\":{\"dtype\":\"F64\",\"shape\":[%zu],"
                                   "\"data_offsets\":[%zu,%zu]}",
                                   i ? "," : "", names[i], shapes[i][0], off, off + 8 * numel);
        off += 8 * numel;
    }
    at += (size_t)snprintf(hdr + at, sizeof hdr - at, "}");
    total = 8 + at + off;
    unsigned char *b = malloc(total);
    for (int i = 0; i < 8; i++)
        b[i] = (unsigned char)((uint64_t)at >> (8 * i));
    memcpy(b + 8, hdr, at);
    off = 8 + at;
    for (int i = 0; i < n; i++) {
        size_t numel = shapes[i][0] * (shapes[i][1] ? shapes[i][1] : 1);
        memcpy(b + off, vals[i], 8 * numel);
        off += 8 * numel;
    }
    t_write_file(dir, file, b, total);
    free(b);
}

/* y = model(x) for one sample of `in` features (x, y as double whatever the dtype). */
static int t_forward(const struct srv_model *mo, const double *x, size_t in, double *y,
                     size_t ycap)
{
    struct nn_err err;
    struct nn_plan plan;
    memset(&plan, 0, sizeof plan);
    size_t shape[2] = {1, in};
    if (nn_net_check(&mo->net, shape, 2, 0, 0, &plan, &err) != NN_OK)
        return -1;
    struct nn_ws ws;
    int rc = -1;
    if (nn_ws_init(&ws, &plan, &err) != NN_OK) {
        nn_plan_free(&plan);
        return -1;
    }
    double xb[64];
    float xf[64];
    for (size_t i = 0; i < in && i < 64; i++) {
        xb[i] = x[i];
        xf[i] = (float)x[i];
    }
    if (nn_net_forward(&mo->net, &ws, mo->dtype == NN_F64 ? (void *)xb : (void *)xf, &err) ==
        NN_OK) {
        const struct nn_tensor *o = &ws.act[mo->net.nlayers];
        for (size_t i = 0; i < o->numel && i < ycap; i++)
            y[i] = mo->dtype == NN_F64 ? ((double *)o->data)[i] : ((float *)o->data)[i];
        rc = (int)o->numel;
    }
    nn_ws_free(&ws);
    nn_plan_free(&plan);
    return rc;
}


/* ---- the repository through the HTTP codes the handlers map its statuses to ---------- */
static unsigned t_code(enum nn_status st, const struct nn_err *e, char *err)
{
    snprintf(err, 512, "%s", st ? e->msg : "");
    return st ? srv_status_from_nn(st) : 200;
}
static unsigned t_delete(struct srv_models *m, const char *name, char *err)
{
    struct nn_err e;
    return t_code(srv_models_delete(m, name, &e), &e, err);
}
static unsigned t_unload(struct srv_models *m, const char *name, char *err)
{
    struct nn_err e;
    return t_code(srv_models_unload(m, name, &e), &e, err);
}
static unsigned t_load(struct srv_models *m, const char *name, char *err)
{
    struct nn_err e;
    return t_code(srv_models_load(m, name, &e), &e, err);
}
static int t_load_all(struct srv_models *m, int strict, char *err)
{
    struct nn_err e;
    enum nn_status st = srv_models_load_all(m, strict, &e);
    snprintf(err, 512, "%s", st ? e.msg : "");
    return st ? -1 : 0;
}
static struct srv_model *t_mget(struct srv_models *m, const char *name, unsigned *status,
                               char *err)
{
    struct nn_err e;
    enum nn_status st;
    struct srv_model *mo = srv_models_get(m, name, &st, &e);
    *status = t_code(st, &e, err);
    return mo;
}
static unsigned t_put_raw(struct srv_models *m, const char *name, const char *body, size_t len,
                          char *err)
{
    struct nn_err e;
    int created;
    enum nn_status st = srv_models_put(m, name, body, len, &created, &e);
    return st ? t_code(st, &e, err) : created ? 201 : 200;
}

static void t_index_visit(void *ctx, const char *name, enum srv_model_state state,
                          const char *reason, const struct srv_model_stats *stats,
                          const struct srv_model *model)
{
    cJSON **arr = ctx;
    (void)stats, (void)model;
    if (!arr[1] || state == SRV_MODEL_READY) {
        cJSON *o = cJSON_CreateObject();
        cJSON_AddStringToObject(o, "name", name);
        cJSON_AddStringToObject(o, "version", "1");
        cJSON_AddStringToObject(o, "state", srv_model_state_names[state]);
        cJSON_AddStringToObject(o, "reason", reason);
        cJSON_AddItemToArray(arr[0], o);
    }
}
/* The index as the repository's visitor sees it, as JSON (ready_only: READY only). */
static cJSON *t_models_index(struct srv_models *m, int ready_only)
{
    cJSON *arr[2] = {cJSON_CreateArray(), ready_only ? (cJSON *)1 : NULL};
    srv_models_foreach(m, t_index_visit, arr);
    return arr[0];
}

struct t_stats_ctx {
    const char *name;
    const struct srv_model_stats *st;
};
static void t_stats_visit(void *ctx, const char *name, enum srv_model_state state,
                          const char *reason, const struct srv_model_stats *stats,
                          const struct srv_model *model)
{
    struct t_stats_ctx *c = ctx;
    (void)state, (void)reason, (void)model;
    if (!strcmp(name, c->name))
        c->st = stats;
}
static const struct srv_model_stats *t_models_stats(struct srv_models *m, const char *name)
{
    struct t_stats_ctx c = {name, NULL};
    srv_models_foreach(m, t_stats_visit, &c);
    return c.st;
}

static const char *t_field(const cJSON *e, const char *key)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(e, key);
    return cJSON_IsString(v) ? v->valuestring : NULL;
}

#define ASSERT_HAS(hay, needle)                                                    \
    do {                                                                          \
        const char *h_ = (hay);                                                   \
        if (!h_ || !strstr(h_, needle))                                           \
            fail_msg("\"%s\" lacks \"%s\"", h_ ? h_ : "(null)", needle);           \
    } while (0)

/* Checks name's index state and that its reason contains `reason` (NULL: reason ""). */
static void t_expect_state(struct srv_models *m, const char *name, const char *state,
                           const char *reason)
{
    cJSON *idx = t_models_index(m, 0);
    assert_non_null(idx);
    const cJSON *e = t_index_entry(idx, name);
    if (!e)
        fail_msg("model %s is not in the index", name);
    assert_string_equal(t_field(e, "state"), state);
    assert_string_equal(t_field(e, "version"), "1");
    if (reason)
        ASSERT_HAS(t_field(e, "reason"), reason);
    else
        assert_string_equal(t_field(e, "reason"), "");
    cJSON_Delete(idx);
}

/* {"name": NAME, "layers": [linear 2x2 = v * I, bias 0]} */
static void t_model_json(char *buf, size_t len, const char *name, double v)
{
    snprintf(buf, len,
             "{\"name\": \"%s\", \"description\": \"scale by %g\", \"dtype\": \"float32\", "
             "\"layers\": [{\"type\": \"linear\", \"weight\": [[%g, 0], [0, %g]], \"bias\": [0, "
             "0]}]}",
             name, v, v, v);
}

static unsigned t_put(struct srv_models *m, const char *name, double v)
{
    char body[512], err[512];
    t_model_json(body, sizeof body, name, v);
    unsigned st = t_put_raw(m, name, body, strlen(body), err);
    if (st != 200 && st != 201)
        fail_msg("PUT %s: %u %s", name, st, err);
    return st;
}

static struct srv_model *model_get(struct srv_models *m, const char *name)
{
    unsigned status = 0;
    char err[512];
    struct srv_model *mo = t_mget(m, name, &status, err);
    if (!mo)
        fail_msg("get %s: %u %s", name, status, err);
    assert_int_equal(status, 200);
    return mo;
}

/* ---- tests ------------------------------------------------------------------------ */

static void test_name_ok(void **state)
{
    assert_true(srv_model_name_ok("simple_nn"));
    assert_true(srv_model_name_ok("a"));
    assert_true(srv_model_name_ok("Model-1.2_x"));
    assert_true(srv_model_name_ok("a..b"));
    char n127[128], n128[129];
    memset(n127, 'a', 127);
    n127[127] = '\0';
    memset(n128, 'a', 128);
    n128[128] = '\0';
    assert_true(srv_model_name_ok(n127));
    assert_false(srv_model_name_ok(n128));
    assert_false(srv_model_name_ok(NULL));
    assert_false(srv_model_name_ok(""));
    assert_false(srv_model_name_ok("."));
    assert_false(srv_model_name_ok(".."));
    assert_false(srv_model_name_ok(".hidden"));
    assert_false(srv_model_name_ok("../x"));
    assert_false(srv_model_name_ok("a/b"));
    assert_false(srv_model_name_ok("/etc/passwd"));
    assert_false(srv_model_name_ok("a b"));
    assert_false(srv_model_name_ok("a%2fb"));
    assert_false(srv_model_name_ok("a\\b"));
    assert_false(srv_model_name_ok("caf\xc3\xa9"));
}

static void test_fixture_repository(void **state)
{
    if (!t_file_exists(FIX, "tiny.json"))
        skip();
    struct srv_models *m = srv_models_new(FIX, 0);
    assert_non_null(m);
    char err[512];
    assert_int_equal(t_load_all(m, 0, err), 0);

    cJSON *idx = t_models_index(m, 0);
    assert_int_equal(cJSON_GetArraySize(idx), 6); /* *.safetensors and README.md not listed */
    cJSON_Delete(idx);
    idx = t_models_index(m, 1);
    assert_int_equal(cJSON_GetArraySize(idx), 1);
    assert_string_equal(t_field(cJSON_GetArrayItem(idx, 0), "name"), "tiny");
    cJSON_Delete(idx);

    t_expect_state(m, "tiny", "READY", NULL);
    t_expect_state(m, "bad_json", "UNAVAILABLE", "invalid JSON at byte");
    t_expect_state(m, "bad_shape", "UNAVAILABLE",
                   "layers[2] (linear): weight is [2, 5] but the input has 3 features");
    t_expect_state(m, "missing_weights", "UNAVAILABLE",
                   "missing_weights.safetensors: cannot open: No such file or directory");
    t_expect_state(m, "truncated", "UNAVAILABLE", "truncated.safetensors: tensor \"");
    t_expect_state(m, "truncated", "UNAVAILABLE", "exceed the data size");
    t_expect_state(m, "bad_header", "UNAVAILABLE", "bad_header.safetensors: header length");

    unsigned status = 0;
    assert_null(t_mget(m, "bad_shape", &status, err));
    assert_int_equal(status, 503);
    ASSERT_HAS(err, "model \"bad_shape\" is unavailable: layers[2] (linear)");
    assert_null(t_mget(m, "nope", &status, err));
    assert_int_equal(status, 404);
    assert_string_equal(err, "unknown model \"nope\"");
    assert_null(t_mget(m, "../tiny", &status, err));
    assert_int_equal(status, 404);

    /* tiny computes what torch computed (tests/golden/models/tiny_expected.json) */
    struct srv_model *tiny = model_get(m, "tiny");
    assert_int_equal(tiny->dtype, NN_F64);
    assert_int_equal(tiny->in_features, 4);
    assert_int_equal(tiny->out_features, 3);
    assert_string_equal(tiny->name, "tiny");
    ASSERT_HAS(tiny->description, "Linear(4, 3)");
    static const double x[2][4] = {{0.5, -1.0, 2.0, 0.0}, {-0.25, 0.75, -1.5, 3.0}};
    static const double want[2][3] = {
        {-0.8390158684784846, -0.4638729222994035, -0.6337955495445527},
        {0.9694302981171329, 0.33146126189359865, 0.9321401208846811}};
    for (int r = 0; r < 2; r++) {
        double y[3];
        assert_int_equal(t_forward(tiny, x[r], 4, y, 3), 3);
        for (int i = 0; i < 3; i++)
            assert_true(fabs(y[i] - want[r][i]) <= 1e-12 + 1e-10 * fabs(want[r][i]));
    }
    srv_model_release(tiny);
    srv_models_free(m);
}

static void test_fixture_strict(void **state)
{
    if (!t_file_exists(FIX, "tiny.json"))
        skip();
    struct srv_models *m = srv_models_new(FIX, 0);
    char err[512];
    assert_int_equal(t_load_all(m, 1, err), -1);
    /* the first broken file in name order */
    ASSERT_HAS(err, FIX "/bad_header.json: bad_header.safetensors: header length");
    srv_models_free(m);

    char dir[64];
    assert_int_equal(t_tmp_copy(dir, sizeof dir, "test-models", NULL), 0);
    m = srv_models_new(dir, 0);
    t_write_str(dir, "bad name.json", "{}");
    assert_int_equal(t_load_all(m, 1, err), -1);
    ASSERT_HAS(err, "bad name.json: \"bad name\" is not a valid model name");
    srv_models_free(m);
    /* the same directory without strict: skipped, start goes on */
    m = srv_models_new(dir, 0);
    assert_int_equal(t_load_all(m, 0, err), 0);
    srv_models_free(m);
    /* a missing model_dir stops the start, strict or not: ready must mean serving what was
       configured (a mistyped mount must not pass a readiness probe with no models) */
    m = srv_models_new("/nonexistent/relud/models", 0);
    assert_int_equal(t_load_all(m, 1, err), -1);
    assert_non_null(strstr(err, "model_dir /nonexistent/relud/models: No such file or directory"));
    assert_int_equal(t_load_all(m, 0, err), -1);
    assert_non_null(strstr(err, "model_dir /nonexistent/relud/models: No such file or directory"));
    srv_models_free(m);
    t_rm_dir(dir);
}

static void test_bundled_models(void **state)
{
    if (!t_file_exists("config/models", "mnist_mlp.json"))
        skip();
    struct srv_models *m = srv_models_new("config/models/", 0);
    char err[512];
    assert_int_equal(t_load_all(m, 1, err), 0);
    struct srv_model *s = model_get(m, "simple_nn");
    assert_int_equal(s->in_features, 10);
    assert_int_equal(s->out_features, 5);
    assert_int_equal(s->dtype, NN_F32);
    struct srv_model *mn = model_get(m, "mnist_mlp");
    assert_int_equal(mn->in_features, 784);
    assert_int_equal(mn->out_features, 10);
    assert_int_equal(mn->net.nlayers, 5);
    assert_int_equal(mn->net.layers[0].weight.shape[0], 128);
    assert_int_equal(mn->net.layers[4].bias.numel, 10);
    srv_model_release(s);
    srv_model_release(mn);
    srv_models_free(m);
}

static void test_model_file_rules(void **state)
{
    char dir[64], err[512];
    assert_int_equal(t_tmp_copy(dir, sizeof dir, "test-models", NULL), 0);
    static const double w[4] = {1, 2, 3, 4}, b[2] = {0.5, -0.5}, extra[1] = {9};
    const char *names3[3] = {"0.weight", "0.bias", "6.weight"};
    const size_t shapes3[3][2] = {{2, 2}, {2, 0}, {1, 0}};
    const double *vals3[3] = {w, b, extra};
    t_write_st64(dir, "st.safetensors", 2, names3, shapes3, vals3);
    t_write_st64(dir, "unused.safetensors", 3, names3, shapes3, vals3);
    const char *names_b[1] = {"0.bias"};
    const double *vals_b[1] = {b};
    const size_t shapes_b[1][2] = {{2, 0}};
    t_write_st64(dir, "biasonly.safetensors", 1, names_b, shapes_b, vals_b);
    /* F16 weights [[1, 2], [3, 4]] + bias [0.5, -0.5] for a float32 model */
    {
        static const char hdr[] =
            "{\"0.weight\":{\"dtype\":\"F16\",\"shape\":[2,2],\"data_offsets\":[0,8]},"
            "\"0.bias\":{\"dtype\":\"BF16\",\"shape\":[2],\"data_offsets\":[8,12]}}";
        unsigned char f[8 + sizeof hdr - 1 + 12];
        uint64_t n = sizeof hdr - 1;
        for (int i = 0; i < 8; i++)
            f[i] = (unsigned char)(n >> (8 * i));
        memcpy(f + 8, hdr, n);
        unsigned short h[6] = {0x3C00, 0x4000, 0x4200, 0x4400, 0x3F00, 0xBF00};
        memcpy(f + 8 + n, h, 12);
        t_write_file(dir, "half.safetensors", f, sizeof f);
    }
    t_write_str(dir, "good.json",
                "{\"name\": \"good\", \"dtype\": \"float64\", \"weights\": \"st.safetensors\", "
                "\"layers\": [{\"type\": \"linear\"}, {\"type\": \"relu\"}]}");
    t_write_str(dir, "narrow.json", /* F64 file into a float32 model */
                "{\"weights\": \"st.safetensors\", \"layers\": [{\"type\": \"Linear\"}]}");
    t_write_str(dir, "half.json",
                "{\"name\": \"half\", \"weights\": \"half.safetensors\", \"layers\": [{\"type\": "
                "\"linear\"}]}");
    t_write_str(dir, "mismatch.json", "{\"name\": \"other\", \"layers\": [{\"type\": \"relu\"}]}");
    t_write_str(dir, "unknown.json",
                "{\"name\": \"unknown\", \"layers\": [{\"type\": \"relu\"}], \"foo\": 1}");
    t_write_str(dir, "unused.json",
                "{\"name\": \"unused\", \"weights\": \"unused.safetensors\", \"layers\": "
                "[{\"type\": \"linear\"}, {\"type\": \"relu\"}]}");
    t_write_str(dir, "trav.json",
                "{\"weights\": \"../st.safetensors\", \"layers\": [{\"type\": \"linear\"}]}");
    t_write_str(dir, "nolayers.json", "{\"name\": \"nolayers\"}");
    t_write_str(dir, "noweight.json",
                "{\"weights\": \"biasonly.safetensors\", \"layers\": [{\"type\": \"linear\"}]}");
    t_write_str(dir, "badtype.json", "{\"layers\": [{\"type\": \"relu\"}], \"dtype\": \"int8\"}");
    t_write_str(dir, "notobj.json", "[1, 2]");
    t_write_str(dir, "empty.json", "");
    /* inline weight for layer 0 although the file has "0.weight": the file's is unused */
    t_write_str(dir, "both.json",
                "{\"weights\": \"st.safetensors\", \"layers\": [{\"type\": \"linear\", "
                "\"weight\": [[1, 0], [0, 1]]}]}");
    /* not models: */
    t_write_str(dir, "notes.txt", "hello");
    t_write_str(dir, ".hidden.json", "{");
    t_write_str(dir, ".good.json.tmp.4242.0", "{\"name\": \"go");
    t_write_str(dir, "x.json.bak", "{");
    t_write_str(dir, ".json", "{");

    struct srv_models *m = srv_models_new(dir, 0);
    assert_int_equal(t_load_all(m, 0, err), 0);
    cJSON *idx = t_models_index(m, 0);
    assert_int_equal(cJSON_GetArraySize(idx), 13);
    cJSON_Delete(idx);
    t_expect_state(m, "good", "READY", NULL);
    t_expect_state(m, "narrow", "READY", NULL);
    t_expect_state(m, "half", "READY", NULL);
    t_expect_state(m, "mismatch", "UNAVAILABLE",
                   "name: \"other\" does not match the file name \"mismatch\"");
    t_expect_state(m, "unknown", "UNAVAILABLE",
                   "unknown field \"foo\" (known: name, description, dtype, layers, weights, "
                   "max_batch_size, dynamic_batching)");
    t_expect_state(m, "unused", "UNAVAILABLE",
                   "weights: tensor \"6.weight\" is not used by any layer");
    t_expect_state(m, "trav", "UNAVAILABLE", "weights: expected the name of a safetensors file");
    t_expect_state(m, "nolayers", "UNAVAILABLE", "layers: required");
    t_expect_state(m, "noweight", "UNAVAILABLE", "layers[0] (linear): missing \"weight\"");
    t_expect_state(m, "badtype", "UNAVAILABLE", "dtype: expected \"float32\" or \"float64\"");
    t_expect_state(m, "notobj", "UNAVAILABLE", "expected a JSON object");
    t_expect_state(m, "empty", "UNAVAILABLE", "invalid JSON");
    t_expect_state(m, "both", "UNAVAILABLE", "weights: tensor \"0.weight\" is not used");

    double x[2] = {1, -1}, y[2];
    struct srv_model *g = model_get(m, "good");
    assert_int_equal(t_forward(g, x, 2, y, 2), 2);
    /* [[1,2],[3,4]] . [1,-1] + [0.5,-0.5] = [-0.5, -1.5], relu -> 0, 0 */
    assert_true(y[0] == 0 && y[1] == 0);
    x[0] = 2;
    x[1] = 1;
    assert_int_equal(t_forward(g, x, 2, y, 2), 2);
    assert_true(y[0] == 4.5 && y[1] == 9.5);
    srv_model_release(g);
    struct srv_model *h = model_get(m, "half");
    assert_int_equal(h->dtype, NN_F32);
    assert_int_equal(t_forward(h, x, 2, y, 2), 2);
    assert_true(y[0] == 4.5 && y[1] == 9.5);
    srv_model_release(h);
    srv_models_free(m);
    t_rm_dir(dir);
}

static void test_put_replace_keeps_old_version(void **state)
{
    char dir[64], err[512];
    assert_int_equal(t_tmp_copy(dir, sizeof dir, "test-models", NULL), 0);
    struct srv_models *m = srv_models_new(dir, 0);
    assert_int_equal(t_load_all(m, 0, err), 0);
    assert_int_equal(t_put(m, "m", 2), 201);
    struct srv_model *a = model_get(m, "m");
    assert_int_equal(atomic_load(&a->refs), 2); /* the repository's + ours */
    srv_model_stats_observe(a->stats, 1, &(struct srv_req_times){.reply_built = 1000000}, 4);
    assert_ptr_equal(a->stats, t_models_stats(m, "m"));

    assert_int_equal(t_put(m, "m", 3), 200); /* replaced while a request holds v1 */
    assert_int_equal(atomic_load(&a->refs), 1); /* only ours now */
    struct srv_model *b = model_get(m, "m");
    assert_ptr_not_equal(a, b);
    double x[2] = {1, -2}, y[2];
    assert_int_equal(t_forward(a, x, 2, y, 2), 2); /* the old version still runs */
    assert_true(y[0] == 2 && y[1] == -4);
    assert_int_equal(t_forward(b, x, 2, y, 2), 2);
    assert_true(y[0] == 3 && y[1] == -6);
    assert_string_equal(b->description, "scale by 3");
    srv_model_release(a); /* last reference: freed here (ASan: no leak, no later use) */
    /* statistics belong to the name and survive the replacement */
    assert_ptr_equal(b->stats, t_models_stats(m, "m"));
    assert_int_equal(atomic_load(&b->stats->success_count), 1);
    assert_int_equal(atomic_load(&b->stats->inference_count), 4);
    srv_model_release(b);
    srv_model_release(NULL);
    srv_models_free(m);
    t_rm_dir(dir);
}

static void test_put_atomic_and_durable(void **state)
{
    char dir[64], err[512];
    assert_int_equal(t_tmp_copy(dir, sizeof dir, "test-models", NULL), 0);
    struct srv_models *m = srv_models_new(dir, 0);
    assert_int_equal(t_load_all(m, 0, err), 0);
    char body[512];
    t_model_json(body, sizeof body, "m", 5);
    assert_int_equal(t_put_raw(m, "m", body, strlen(body), err), 201);
    char *disk = t_read(dir, "m.json");
    assert_non_null(disk);
    assert_string_equal(disk, body); /* the body, byte for byte */
    free(disk);
    assert_int_equal(t_count(dir, ".tmp."), 0);

    /* invalid bodies: refused before the disk is touched */
    static const char *const bad[] = {
        "{\"name\": \"m\", \"layers\": [",                             /* JSON */
        "{\"name\": \"other\", \"layers\": [{\"type\": \"relu\"}]}",    /* name */
        "{\"layers\": [{\"type\": \"relu\"}], \"extra\": true}",        /* key */
        "{\"layers\": [{\"type\": \"linear\"}]}",                       /* no weight */
        "{\"weights\": \"nope.safetensors\", \"layers\": [{\"type\": \"linear\"}]}",
        "{\"weights\": \"../m.json\", \"layers\": [{\"type\": \"linear\"}]}",
        "",
    };
    static const char *const why[] = {
        "invalid JSON",
        "name: \"other\" does not match the URL's model name \"m\"",
        "unknown field \"extra\"",
        "missing \"weight\"",
        "nope.safetensors: cannot open: No such file or directory",
        "weights: expected the name of a safetensors file",
        "invalid JSON",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        assert_int_equal(t_put_raw(m, "m", bad[i], strlen(bad[i]), err), 400);
        ASSERT_HAS(err, why[i]);
        disk = t_read(dir, "m.json");
        assert_string_equal(disk, body);
        free(disk);
    }
    assert_int_equal(t_count(dir, ".tmp."), 0);
    t_expect_state(m, "m", "READY", NULL);

    /* names that must never reach the file system */
    static const char *const bad_names[] = {"../x", ".x", "a/b", "", "..", "x y"};
    for (size_t i = 0; i < sizeof bad_names / sizeof bad_names[0]; i++) {
        assert_int_equal(t_put_raw(m, bad_names[i], body, strlen(body), err),
                         400);
        ASSERT_HAS(err, "invalid model name");
    }
    assert_false(t_file_exists("/tmp", "x.json"));

    /* a weights reference is fine when the file is already there */
    static const double w[4] = {1, 0, 0, 1};
    const char *names[1] = {"0.weight"};
    const size_t shapes[1][2] = {{2, 2}};
    const double *vals[1] = {w};
    t_write_st64(dir, "ref.safetensors", 1, names, shapes, vals);
    const char *ref = "{\"weights\": \"ref.safetensors\", \"layers\": [{\"type\": \"linear\"}]}";
    assert_int_equal(t_put_raw(m, "ref", ref, strlen(ref), err), 201);
    t_expect_state(m, "ref", "READY", NULL);

    /* a crash mid-PUT leaves a temp file: ignored at the next start, the last whole
       version loads, a restart finds what PUT wrote */
    t_write_str(dir, ".m.json.tmp.99999.3", "{\"name\": \"m\", \"layers\": [{\"ty");
    srv_models_free(m);
    m = srv_models_new(dir, 0);
    assert_int_equal(t_load_all(m, 1, err), 0);
    cJSON *idx = t_models_index(m, 0);
    assert_int_equal(cJSON_GetArraySize(idx), 2);
    cJSON_Delete(idx);
    struct srv_model *mo = model_get(m, "m");
    double x[2] = {1, 1}, y[2];
    assert_int_equal(t_forward(mo, x, 2, y, 2), 2);
    assert_true(y[0] == 5 && y[1] == 5);
    srv_model_release(mo);
    srv_models_free(m);
    t_rm_dir(dir);
}

static void test_delete(void **state)
{
    char dir[64], err[512];
    assert_int_equal(t_tmp_copy(dir, sizeof dir, "test-models", NULL), 0);
    struct srv_models *m = srv_models_new(dir, 0);
    assert_int_equal(t_load_all(m, 0, err), 0);
    t_put(m, "m", 2);
    t_write_str(dir, "m.safetensors", "not ours to delete");
    struct srv_model *held = model_get(m, "m");
    assert_int_equal(t_delete(m, "m", err), 200);
    assert_false(t_file_exists(dir, "m.json"));
    assert_true(t_file_exists(dir, "m.safetensors"));
    unsigned status;
    assert_null(t_mget(m, "m", &status, err));
    assert_int_equal(status, 404);
    cJSON *idx = t_models_index(m, 0);
    assert_int_equal(cJSON_GetArraySize(idx), 0);
    cJSON_Delete(idx);
    assert_null(t_models_stats(m, "m"));
    /* a request that started before the DELETE finishes on its model */
    double x[2] = {1, 1}, y[2];
    assert_int_equal(t_forward(held, x, 2, y, 2), 2);
    assert_true(y[0] == 2);
    srv_model_release(held);

    assert_int_equal(t_delete(m, "m", err), 404);
    assert_string_equal(err, "unknown model \"m\"");
    assert_int_equal(t_delete(m, "../m", err), 404);
    assert_int_equal(t_delete(m, "m.safetensors", err), 404);
    assert_true(t_file_exists(dir, "m.safetensors"));
    /* PUT again: created, and the name's statistics carry on */
    assert_int_equal(t_put(m, "m", 4), 201);
    t_expect_state(m, "m", "READY", NULL);
    srv_models_free(m);
    t_rm_dir(dir);
}

static void test_load_unload(void **state)
{
    char dir[64], err[512];
    assert_int_equal(t_tmp_copy(dir, sizeof dir, "test-models", NULL), 0);
    struct srv_models *m = srv_models_new(dir, 0);
    t_put(m, "m", 2);
    struct srv_model *held = model_get(m, "m");
    assert_int_equal(t_unload(m, "m", err), 200);
    t_expect_state(m, "m", "UNAVAILABLE", "unloaded");
    unsigned status;
    assert_null(t_mget(m, "m", &status, err));
    assert_int_equal(status, 503);
    assert_string_equal(err, "model \"m\" is unloaded");
    double x[2] = {1, 1}, y[2];
    assert_int_equal(t_forward(held, x, 2, y, 2), 2); /* running requests finish */
    srv_model_release(held);
    cJSON *idx = t_models_index(m, 1);
    assert_int_equal(cJSON_GetArraySize(idx), 0);
    cJSON_Delete(idx);

    assert_int_equal(t_load(m, "m", err), 200);
    t_expect_state(m, "m", "READY", NULL);
    held = model_get(m, "m");

    /* the file changed on disk: load picks it up */
    char body[512];
    t_model_json(body, sizeof body, "m", 7);
    t_write_str(dir, "m.json", body);
    assert_int_equal(t_load(m, "m", err), 200);
    struct srv_model *now = model_get(m, "m");
    assert_ptr_not_equal(held, now);
    assert_int_equal(t_forward(now, x, 2, y, 2), 2);
    assert_true(y[0] == 7);
    srv_model_release(now);
    srv_model_release(held);

    /* a broken file on reload: 400, and the working version keeps serving */
    t_write_str(dir, "m.json", "{\"name\": \"m\", \"layers\": [{\"type\": \"relu\", \"x\": 1}]}");
    assert_int_equal(t_load(m, "m", err), 400);
    ASSERT_HAS(err, "layers[0]: unknown field \"x\" for relu");
    t_expect_state(m, "m", "READY", NULL);
    now = model_get(m, "m");
    srv_model_release(now);
    /* ...but a model that was not serving becomes UNAVAILABLE with the reason */
    assert_int_equal(t_unload(m, "m", err), 200);
    assert_int_equal(t_load(m, "m", err), 400);
    t_expect_state(m, "m", "UNAVAILABLE", "layers[0]: unknown field \"x\"");

    assert_int_equal(t_load(m, "nope", err), 404);
    ASSERT_HAS(err, "model \"nope\": no file");
    assert_int_equal(t_load(m, "../m", err), 400);
    assert_int_equal(t_unload(m, "nope", err), 404);
    assert_string_equal(err, "unknown model \"nope\"");
    /* load of a file that appeared after start */
    t_model_json(body, sizeof body, "late", 1);
    t_write_str(dir, "late.json", body);
    assert_int_equal(t_load(m, "late", err), 200);
    t_expect_state(m, "late", "READY", NULL);
    srv_models_free(m);
    t_rm_dir(dir);
}

static void test_metrics(void **state)
{
    char dir[64], err[512];
    assert_int_equal(t_tmp_copy(dir, sizeof dir, "test-models", NULL), 0);
    struct srv_models *m = srv_models_new(dir, 0);
    t_put(m, "a", 1);
    t_put(m, "b", 1);
    t_write_str(dir, "c.json", "{");
    assert_int_equal(t_load_all(m, 0, err), 0);
    struct srv_model_stats *s = (struct srv_model_stats *)t_models_stats(m, "a");
    assert_non_null(s);
    struct srv_req_times t1 = {.reply_built = 1500000000ull}, t2 = {.reply_built = 500000000ull};
    struct srv_req_times t3 = {.reply_built = 250000000ull}, t4 = {.reply_built = 1};
    srv_model_stats_observe(s, 1, &t1, 3);
    srv_model_stats_exec(s, 3, &t1);
    srv_model_stats_observe(s, 1, &t2, 2);
    srv_model_stats_exec(s, 2, &t2);
    srv_model_stats_observe(s, 0, &t3, 0);
    srv_model_stats_observe(NULL, 1, &t4, 1);
    assert_int_equal(atomic_load(&s->batch.executions), 2);
    assert_true(atomic_load(&s->last_inference_ms) > 1700000000000ull);

    static struct srv_blas blas;
    struct srv_gauges g = {0, 0, 0, 1, &blas, 1, 1, 1};
    struct srv_metrics *mt = srv_metrics_new();
    size_t len;
    char *t = srv_metrics_render(mt, &g, m, &len);
    assert_non_null(t);
    ASSERT_HAS(t, "# TYPE relud_model_requests_total counter\n");
    ASSERT_HAS(t, "relud_model_requests_total{model=\"a\",outcome=\"success\"} 2\n");
    ASSERT_HAS(t, "relud_model_requests_total{model=\"a\",outcome=\"failure\"} 1\n");
    ASSERT_HAS(t, "relud_model_requests_total{model=\"b\",outcome=\"success\"} 0\n");
    ASSERT_HAS(t, "relud_model_request_duration_seconds_sum{model=\"a\"} 2.25\n");
    ASSERT_HAS(t, "relud_model_request_duration_seconds_count{model=\"a\"} 3\n");
    ASSERT_HAS(t, "relud_model_inferences_total{model=\"a\"} 5\n");
    ASSERT_HAS(t, "relud_model_ready{model=\"a\"} 1\n");
    ASSERT_HAS(t, "relud_model_ready{model=\"c\"} 0\n");
    /* HELP and TYPE once per family */
    int helps = 0;
    for (const char *p = t; (p = strstr(p, "# TYPE relud_model_")); p++)
        helps++;
    assert_int_equal(helps, 7);
    free(t);
    srv_metrics_free(mt);
    srv_models_free(m);
    t_rm_dir(dir);
}

/* Lookups and passes on four threads while the main thread replaces the model: every
 * pass sees one whole version (both outputs scaled by the same factor). */
struct t_race {
    struct srv_models *m;
    atomic_int stop;
    atomic_int bad, passes;
};

static void *t_race_worker(void *arg)
{
    struct t_race *r = arg;
    while (!atomic_load(&r->stop)) {
        enum nn_status st;
        struct nn_err err;
        struct srv_model *mo = srv_models_get(r->m, "m", &st, &err);
        if (!mo) {
            atomic_fetch_add(&r->bad, 1);
            continue;
        }
        double x[2] = {1, 2}, y[2];
        if (t_forward(mo, x, 2, y, 2) != 2 || y[1] != 2 * y[0] || y[0] < 1 || y[0] > 8)
            atomic_fetch_add(&r->bad, 1);
        srv_model_stats_observe(mo->stats, 1, &(struct srv_req_times){.reply_built = 1000}, 1);
        srv_model_release(mo);
        atomic_fetch_add(&r->passes, 1);
    }
    return NULL;
}

static void test_concurrent_replace(void **state)
{
    char dir[64];
    assert_int_equal(t_tmp_copy(dir, sizeof dir, "test-models", NULL), 0);
    struct t_race r = {.m = srv_models_new(dir, 0)};
    t_put(r.m, "m", 1);
    pthread_t th[4];
    for (int i = 0; i < 4; i++)
        assert_int_equal(pthread_create(&th[i], NULL, t_race_worker, &r), 0);
    for (int i = 0; i < 40; i++) {
        char body[512], err[512];
        t_model_json(body, sizeof body, "m", 1 + i % 8);
        assert_int_equal(t_put_raw(r.m, "m", body, strlen(body), err), 200);
        if (i % 10 == 9) {
            t_load(r.m, "m", err);
        }
    }
    atomic_store(&r.stop, 1);
    for (int i = 0; i < 4; i++)
        pthread_join(th[i], NULL);
    assert_int_equal(atomic_load(&r.bad), 0);
    assert_true(atomic_load(&r.passes) > 0);
    assert_int_equal(atomic_load(&t_models_stats(r.m, "m")->success_count),
                     (unsigned long long)atomic_load(&r.passes));
    assert_int_equal(t_count(dir, ".tmp."), 0);
    srv_models_free(r.m);
    t_rm_dir(dir);
}

int main(void)
{
    srv_log_init(CFG_LOG_ERROR, CFG_LOG_TEXT, 0); /* the warnings are expected here */
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_name_ok),
        cmocka_unit_test(test_fixture_repository),
        cmocka_unit_test(test_fixture_strict),
        cmocka_unit_test(test_bundled_models),
        cmocka_unit_test(test_model_file_rules),
        cmocka_unit_test(test_put_replace_keeps_old_version),
        cmocka_unit_test(test_put_atomic_and_durable),
        cmocka_unit_test(test_delete),
        cmocka_unit_test(test_load_unload),
        cmocka_unit_test(test_metrics),
        cmocka_unit_test(test_concurrent_replace),
    };
    return cmocka_run_group_tests_name("models", tests, NULL, NULL);
}
