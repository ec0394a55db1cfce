/* The Open Inference Protocol (KServe v2, as Triton speaks it) against the real daemon on
 * the bundled config/models: server and model metadata, readiness, infer with JSON data
 * (forms, datatypes, errors, extra keys, output selection, numbers against torch's
 * tests/golden/models/mnist_mlp_expected.json), the binary tensor data extension built byte
 * by byte, relud's gradients extension, statistics and per-model /metrics series.
 * Model control (auth, index, load/unload, PUT/DELETE, restarts, crashes) is in
 * test_repo.c. */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>
#include <curl/curl.h>

#include "server/srv.h"
#include "tests/common/fs.h"
#include "tests/common/http.h"

static struct t_daemon d;

static int setup(void **state)
{
    (void)state;
    const char *args[] = {"--model-dir", "config/models", NULL};
    return t_daemon_start(&d, args, NULL);
}

static int teardown(void **state)
{
    (void)state;
    if (t_daemon_stop(&d, 0, 30) != 0) {
        fprintf(stderr, "relud did not exit cleanly; log: %s\n", d.log_path);
        return -1;
    }
    unlink(d.log_path);
    return 0;
}

/* ---- helpers ------------------------------------------------------------------ */

/* POSTs body (len bytes; strlen when len == 0) to path with extra headers; checks the
 * status (printing both sides on a mismatch) and returns the response. */
static struct t_resp post_raw(const char *path, const char *body, size_t len,
                              const char *const *hdrs, long status)
{
    char url[512];
    snprintf(url, sizeof url, "%s%s", d.url, path);
    struct t_resp r;
    assert_int_equal(t_http("POST", url, body, len ? len : strlen(body), hdrs, &r), 0);
    if (r.status != status)
        fprintf(stderr, "POST %s\nbody: %.2000s\nresponse %ld: %.2000s\n", path, body, r.status,
                r.body);
    assert_int_equal(r.status, status);
    return r;
}

static struct t_resp infer(const char *model, const char *body, long status)
{
    char path[256];
    snprintf(path, sizeof path, "/v2/models/%s/infer", model);
    struct t_resp r = post_raw(path, body, 0, NULL, status);
    if (status == 200)
        assert_non_null(r.json);
    return r;
}

static struct t_resp get(const char *path, long status)
{
    struct t_resp r;
    assert_int_equal(t_get(&d, path, &r), 0);
    if (r.status != status)
        fprintf(stderr, "GET %s\nresponse %ld: %.2000s\n", path, r.status, r.body);
    assert_int_equal(r.status, status);
    return r;
}

static void infer_error(const char *model, const char *body, long status, const char *part)
{
    struct t_resp r = infer(model, body, status);
    t_check_error(&r, part);
    t_resp_free(&r);
}

/* The response output named name (NULL if absent). */
static const cJSON *find_output(const cJSON *resp, const char *name)
{
    const cJSON *outs = cJSON_GetObjectItemCaseSensitive(resp, "outputs");
    const cJSON *o;
    cJSON_ArrayForEach(o, outs)
    {
        const cJSON *n = cJSON_GetObjectItemCaseSensitive(o, "name");
        if (cJSON_IsString(n) && !strcmp(n->valuestring, name))
            return o;
    }
    return NULL;
}

static const cJSON *output(const cJSON *resp, const char *name)
{
    const cJSON *o = find_output(resp, name);
    if (!o)
        fprintf(stderr, "no output named \"%s\"\n", name);
    assert_non_null(o);
    return o;
}

static int count_outputs(const cJSON *resp)
{
    return cJSON_GetArraySize(cJSON_GetObjectItemCaseSensitive(resp, "outputs"));
}

/* Checks the output's shape equals shape[0..ndim) and returns its flat data (malloc'd). */
static double *output_data(const cJSON *resp, const char *name, const char *datatype,
                           const int *shape, int ndim, size_t *n)
{
    const cJSON *o = output(resp, name);
    assert_string_equal(t_item(o, "datatype")->valuestring, datatype);
    const cJSON *sh = t_item(o, "shape");
    assert_int_equal(cJSON_GetArraySize(sh), ndim);
    size_t numel = 1;
    for (int i = 0; i < ndim; i++) {
        assert_int_equal((int)cJSON_GetArrayItem(sh, i)->valuedouble, shape[i]);
        numel *= (size_t)shape[i];
    }
    const cJSON *data = t_item(o, "data");
    assert_true(cJSON_IsArray(data));
    assert_int_equal((size_t)cJSON_GetArraySize(data), numel);
    double *v = malloc(numel * sizeof *v + 1);
    assert_non_null(v);
    size_t i = 0;
    const cJSON *e;
    cJSON_ArrayForEach(e, data)
    {
        assert_true(cJSON_IsNumber(e));
        v[i++] = e->valuedouble;
    }
    *n = numel;
    return v;
}

/* |got - want| <= atol + rtol |want| elementwise; prints the first miss. */
static void check_close(const char *what, const double *got, const double *want, size_t n,
                        double atol, double rtol)
{
    for (size_t i = 0; i < n; i++) {
        if (!(fabs(got[i] - want[i]) <= atol + rtol * fabs(want[i]))) {
            fprintf(stderr, "%s[%zu]: got %.9g, want %.9g (atol %g, rtol %g)\n", what, i, got[i],
                    want[i], atol, rtol);
            fail();
        }
    }
}

/* A JSON array of numbers as doubles (malloc'd). */
static double *json_doubles(const cJSON *arr, size_t *n)
{
    size_t k = (size_t)cJSON_GetArraySize(arr), i = 0;
    double *v = malloc(k * sizeof *v + 1);
    assert_non_null(v);
    const cJSON *e;
    cJSON_ArrayForEach(e, arr) v[i++] = e->valuedouble;
    *n = k;
    return v;
}

/* simple_nn's weights from config/models/simple_nn.json, for an independent reference. */
static double W[5][10], B[5];

static void load_simple_nn(void)
{
    char path[512];
    snprintf(path, sizeof path, "%s/config/models/simple_nn.json", t_root());
    char *txt = t_read_file(path, NULL);
    assert_non_null(txt);
    cJSON *m = cJSON_Parse(txt);
    free(txt);
    assert_non_null(m);
    const cJSON *l0 = cJSON_GetArrayItem(t_item(m, "layers"), 0);
    const cJSON *w = t_item(l0, "weight"), *b = t_item(l0, "bias");
    assert_int_equal(cJSON_GetArraySize(w), 5);
    for (int j = 0; j < 5; j++) {
        const cJSON *row = cJSON_GetArrayItem(w, j);
        assert_int_equal(cJSON_GetArraySize(row), 10);
        for (int k = 0; k < 10; k++)
            W[j][k] = (float)cJSON_GetArrayItem(row, k)->valuedouble;
        B[j] = (float)cJSON_GetArrayItem(b, j)->valuedouble;
    }
    cJSON_Delete(m);
}

/* pre[r][j] = W x_r + b; out = relu(pre). x is (rows, 10). */
static void simple_nn_ref(const double *x, int rows, double *pre, double *out)
{
    for (int r = 0; r < rows; r++)
        for (int j = 0; j < 5; j++) {
            double s = B[j];
            for (int k = 0; k < 10; k++)
                s += W[j][k] * x[r * 10 + k];
            pre[r * 5 + j] = s;
            out[r * 5 + j] = s > 0 ? s : 0;
        }
}

static const double X2[20] = {1,    -2,  3,   0.5, -0.25, 2,   1,    -1,  0.75, 4,
                              -1.5, 0.5, 2.5, -3,  1,     0.1, -0.2, 0.3, 3,    -0.5};

/* mnist_mlp_expected.json, parsed once. */
static cJSON *g_mnist;

static cJSON *mnist_golden(void)
{
    cJSON *g = g_mnist;
    if (!g) {
        char path[512];
        snprintf(path, sizeof path, "%s/tests/golden/models/mnist_mlp_expected.json", t_root());
        char *txt = t_read_file(path, NULL);
        assert_non_null(txt);
        g = g_mnist = cJSON_Parse(txt);
        free(txt);
        assert_non_null(g);
    }
    return g;
}

/* The golden input as a "data" list (row-major) in a request body. */
static void sb_golden_input(struct srv_sb *b, const cJSON *g)
{
    const cJSON *in = t_item(g, "input");
    const cJSON *sh = t_item(in, "shape"), *data = t_item(in, "data");
    srv_sb_printf(
        b, "{\"name\": \"input\", \"datatype\": \"FP32\", \"shape\": [%d, %d], \"data\": [",
        (int)cJSON_GetArrayItem(sh, 0)->valuedouble, (int)cJSON_GetArrayItem(sh, 1)->valuedouble);
    const cJSON *e;
    int first = 1;
    cJSON_ArrayForEach(e, data)
    {
        srv_sb_printf(b, first ? "%.9g" : ",%.9g", e->valuedouble);
        first = 0;
    }
    srv_sb_printf(b, "]}");
}

/* Compares the OIP output `name` with the golden tensor {"shape", "data"}. */
static void check_golden_tensor(const cJSON *resp, const char *name, const cJSON *gt,
                                const char *datatype, double atol, double rtol)
{
    const cJSON *sh = t_item(gt, "shape");
    int shape[8], nd = cJSON_GetArraySize(sh);
    assert_true(nd >= 1 && nd <= 8);
    for (int i = 0; i < nd; i++)
        shape[i] = (int)cJSON_GetArrayItem(sh, i)->valuedouble;
    size_t n, nw;
    double *got = output_data(resp, name, datatype, shape, nd, &n);
    double *want = json_doubles(t_item(gt, "data"), &nw);
    assert_int_equal(n, nw);
    check_close(name, got, want, n, atol, rtol);
    free(got);
    free(want);
}

/* ---- server and model metadata -------------------------------------------------- */

static void server_metadata(void **state)
{
    (void)state;
    struct t_resp r = get("/v2", 200);
    char ct[64];
    assert_non_null(t_resp_header(&r, "Content-Type", ct, sizeof ct));
    assert_string_equal(ct, "application/json");
    assert_string_equal(t_item(r.json, "name")->valuestring, "relud");
    const cJSON *v = t_item(r.json, "version");
    assert_true(cJSON_IsString(v) && v->valuestring[0]);
    const cJSON *ext = t_item(r.json, "extensions");
    assert_true(cJSON_IsArray(ext));
    const char *want[] = {"binary_tensor_data", "model_repository", "statistics"};
    for (size_t i = 0; i < sizeof want / sizeof *want; i++) {
        int found = 0;
        const cJSON *e;
        cJSON_ArrayForEach(e, ext) found |= cJSON_IsString(e) && !strcmp(e->valuestring, want[i]);
        if (!found)
            fprintf(stderr, "extension %s not listed: %s\n", want[i], r.body);
        assert_true(found);
    }
    /* relud's own gradients extension, under its own (non-Triton) name */
    int grads = 0;
    const cJSON *e;
    cJSON_ArrayForEach(e, ext) grads |= cJSON_IsString(e) && strstr(e->valuestring, "gradients");
    assert_true(grads);
    t_resp_free(&r);
}

static void health(void **state)
{
    (void)state;
    struct t_resp r = get("/v2/health/live", 200);
    assert_true(cJSON_IsTrue(t_item(r.json, "live")));
    t_resp_free(&r);
    r = get("/v2/health/ready", 200);
    assert_true(cJSON_IsTrue(t_item(r.json, "ready")));
    t_resp_free(&r);
}

static void check_model_meta(const char *path, const char *name, int in, int out)
{
    struct t_resp r = get(path, 200);
    assert_string_equal(t_item(r.json, "name")->valuestring, name);
    const cJSON *vs = t_item(r.json, "versions");
    assert_int_equal(cJSON_GetArraySize(vs), 1);
    assert_string_equal(cJSON_GetArrayItem(vs, 0)->valuestring, "1");
    assert_string_equal(t_item(r.json, "platform")->valuestring, "relud_json");
    const char *keys[] = {"inputs", "outputs"};
    const char *names[] = {"input", "output"};
    int feats[] = {in, out};
    for (int k = 0; k < 2; k++) {
        const cJSON *arr = t_item(r.json, keys[k]);
        assert_int_equal(cJSON_GetArraySize(arr), 1);
        const cJSON *t = cJSON_GetArrayItem(arr, 0);
        assert_string_equal(t_item(t, "name")->valuestring, names[k]);
        assert_string_equal(t_item(t, "datatype")->valuestring, "FP32");
        const cJSON *sh = t_item(t, "shape");
        assert_int_equal(cJSON_GetArraySize(sh), 2);
        assert_int_equal((int)cJSON_GetArrayItem(sh, 0)->valuedouble, -1);
        assert_int_equal((int)cJSON_GetArrayItem(sh, 1)->valuedouble, feats[k]);
    }
    t_resp_free(&r);
}

static void model_metadata(void **state)
{
    (void)state;
    check_model_meta("/v2/models/simple_nn", "simple_nn", 10, 5);
    check_model_meta("/v2/models/mnist_mlp", "mnist_mlp", 784, 10);
    check_model_meta("/v2/models/simple_nn/versions/1", "simple_nn", 10, 5);
    check_model_meta("/v2/models/mnist_mlp/versions/1", "mnist_mlp", 784, 10);
}

static void model_metadata_errors(void **state)
{
    (void)state;
    struct t_resp r = get("/v2/models/simple_nn/versions/2", 404);
    t_check_error(&r, "version");
    t_resp_free(&r);
    r = get("/v2/models/no_such_model", 404);
    t_check_error(&r, "no_such_model");
    t_resp_free(&r);
    r = get("/v2/models/no_such_model/ready", 404);
    t_check_error(&r, "no_such_model");
    t_resp_free(&r);
    r = get("/v2/models/simple_nn/versions/2/ready", 404);
    t_check_error(&r, NULL);
    t_resp_free(&r);
    infer_error("no_such_model",
                "{\"inputs\": [{\"name\": \"input\", \"datatype\": \"FP32\", \"shape\": [1], "
                "\"data\": [1]}]}",
                404, "no_such_model");
    struct t_resp r2 = post_raw("/v2/models/simple_nn/versions/2/infer",
                                "{\"inputs\": [{\"name\": \"input\", \"datatype\": \"FP32\", "
                                "\"shape\": [1, 10], \"data\": [1,2,3,4,5,6,7,8,9,10]}]}",
                                0, NULL, 404);
    t_check_error(&r2, "version");
    t_resp_free(&r2);
}

static void model_ready(void **state)
{
    (void)state;
    const char *paths[] = {"/v2/models/simple_nn/ready", "/v2/models/simple_nn/versions/1/ready",
                           "/v2/models/mnist_mlp/ready"};
    for (size_t i = 0; i < 3; i++) {
        struct t_resp r = get(paths[i], 200);
        assert_true(cJSON_IsTrue(t_item(r.json, "ready")));
        assert_true(cJSON_IsString(t_item(r.json, "name")));
        t_resp_free(&r);
    }
}

/* ---- infer: JSON ---------------------------------------------------------------- */

static void infer_flat_and_nested(void **state)
{
    (void)state;
    load_simple_nn();
    double pre[10], want[10];
    simple_nn_ref(X2, 2, pre, want);
    const int shape[] = {2, 5};
    size_t n;
    /* flat */
    struct srv_sb b = {0};
    srv_sb_printf(&b, "{\"inputs\": [{\"name\": \"input\", \"shape\": [2, 10], \"datatype\": "
                      "\"FP32\", \"data\": [");
    for (int i = 0; i < 20; i++)
        srv_sb_printf(&b, i ? ",%.9g" : "%.9g", X2[i]);
    srv_sb_printf(&b, "]}]}");
    struct t_resp r = infer("simple_nn", b.p, 200);
    assert_string_equal(t_item(r.json, "model_name")->valuestring, "simple_nn");
    assert_int_equal(count_outputs(r.json), 1);
    double *flat = output_data(r.json, "output", "FP32", shape, 2, &n);
    check_close("flat", flat, want, n, 1e-5, 1e-5);
    t_resp_free(&r);
    /* nested: same numbers, same reply */
    b.len = 0;
    srv_sb_printf(&b, "{\"inputs\": [{\"name\": \"input\", \"shape\": [2, 10], \"datatype\": "
                      "\"FP32\", \"data\": [[");
    for (int i = 0; i < 20; i++)
        srv_sb_printf(&b, i == 10 ? "],[%.9g" : i ? ",%.9g" : "%.9g", X2[i]);
    srv_sb_printf(&b, "]]}]}");
    r = infer("simple_nn", b.p, 200);
    double *nested = output_data(r.json, "output", "FP32", shape, 2, &n);
    for (size_t i = 0; i < n; i++)
        assert_true(nested[i] == flat[i]);
    t_resp_free(&r);
    /* the /versions/1 path infers too */
    struct t_resp r2 = post_raw("/v2/models/simple_nn/versions/1/infer", b.p, 0, NULL, 200);
    double *v1 = output_data(r2.json, "output", "FP32", shape, 2, &n);
    for (size_t i = 0; i < n; i++)
        assert_true(v1[i] == flat[i]);
    t_resp_free(&r2);
    free(v1);
    free(nested);
    free(flat);
    free(b.p);
}

/* The reply's "output" data for simple_nn on one row given as datatype dt with text data. */
static double *simple_nn_one(const char *dt, const char *data)
{
    char body[1024];
    snprintf(body, sizeof body,
             "{\"inputs\": [{\"name\": \"input\", \"shape\": [1, 10], \"datatype\": \"%s\", "
             "\"data\": %s}]}",
             dt, data);
    struct t_resp r = infer("simple_nn", body, 200);
    const int shape[] = {1, 5};
    size_t n;
    double *v = output_data(r.json, "output", "FP32", shape, 2, &n);
    t_resp_free(&r);
    return v;
}

static void infer_datatypes_coerced(void **state)
{
    (void)state;
    const char *ints = "[1, -2, 3, 0, 5, -6, 7, 8, -9, 10]";
    double *f32 = simple_nn_one("FP32", ints);
    const char *dts[] = {"FP64", "INT32", "INT64", "INT8", "INT16"};
    for (size_t k = 0; k < sizeof dts / sizeof *dts; k++) {
        double *v = simple_nn_one(dts[k], ints);
        for (int i = 0; i < 5; i++) {
            if (v[i] != f32[i])
                fprintf(stderr, "%s output[%d]: %.9g, FP32 gave %.9g\n", dts[k], i, v[i], f32[i]);
            assert_true(v[i] == f32[i]);
        }
        free(v);
    }
    /* the extremes of a datatype are accepted */
    double *e8 = simple_nn_one("INT8", "[-128, 127, 0, 0, 0, 0, 0, 0, 0, 0]");
    double *f8 = simple_nn_one("FP32", "[-128, 127, 0, 0, 0, 0, 0, 0, 0, 0]");
    double *e16 = simple_nn_one("UINT16", "[65535, 0, 0, 0, 0, 0, 0, 0, 0, 0]");
    double *f16 = simple_nn_one("FP32", "[65535, 0, 0, 0, 0, 0, 0, 0, 0, 0]");
    for (int i = 0; i < 5; i++)
        assert_true(e8[i] == f8[i] && e16[i] == f16[i]);
    free(e8);
    free(f8);
    free(e16);
    free(f16);
    double *u = simple_nn_one("UINT32", "[1, 2, 3, 0, 5, 6, 7, 8, 9, 10]");
    double *uf = simple_nn_one("FP32", "[1, 2, 3, 0, 5, 6, 7, 8, 9, 10]");
    for (int i = 0; i < 5; i++)
        assert_true(u[i] == uf[i]);
    /* FP64 data with more precision than float32: rounded to the model's float32 */
    double *d64 = simple_nn_one("FP64", "[0.1000000000000000055, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, "
                                        "0.8, 0.9, 1.0000000000000002]");
    double *d32 = simple_nn_one("FP32", "[0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1]");
    for (int i = 0; i < 5; i++)
        assert_true(d64[i] == d32[i]);
    free(d64);
    free(d32);
    free(u);
    free(uf);
    free(f32);
}

static void infer_refused_datatypes(void **state)
{
    (void)state;
    infer_error("simple_nn",
                "{\"inputs\": [{\"name\": \"input\", \"shape\": [1, 10], \"datatype\": \"BOOL\", "
                "\"data\": [true, false, true, true, false, true, true, false, true, true]}]}",
                400, "BOOL");
    infer_error("simple_nn",
                "{\"inputs\": [{\"name\": \"input\", \"shape\": [1, 10], \"datatype\": \"BOOL\", "
                "\"data\": [1, 0, 1, 1, 0, 1, 1, 0, 1, 1]}]}",
                400, "(input)");
    infer_error("simple_nn",
                "{\"inputs\": [{\"name\": \"input\", \"shape\": [1], \"datatype\": \"BYTES\", "
                "\"data\": [\"hello\"]}]}",
                400, "BYTES");
    infer_error("simple_nn",
                "{\"inputs\": [{\"name\": \"input\", \"shape\": [1], \"datatype\": \"BYTES\", "
                "\"data\": [\"hello\"]}]}",
                400, "(input)");
    infer_error("simple_nn",
                "{\"inputs\": [{\"name\": \"input\", \"shape\": [1, 10], \"datatype\": \"FP33\", "
                "\"data\": [1, 2, 3, 4, 5, 6, 7, 8, 9, 10]}]}",
                400, "FP33");
    /* an integer datatype with a fractional value is not silently truncated */
    infer_error("simple_nn",
                "{\"inputs\": [{\"name\": \"input\", \"shape\": [1, 10], \"datatype\": \"INT32\", "
                "\"data\": [1.5, 2, 3, 4, 5, 6, 7, 8, 9, 10]}]}",
                400, "input");
    /* integer values outside their declared datatype */
    infer_error("simple_nn",
                "{\"inputs\": [{\"name\": \"input\", \"shape\": [1, 10], \"datatype\": \"INT8\", "
                "\"data\": [300, 2, 3, 4, 5, 6, 7, 8, 9, 10]}]}",
                400, "INT8");
    infer_error("simple_nn",
                "{\"inputs\": [{\"name\": \"input\", \"shape\": [1, 10], \"datatype\": \"UINT8\", "
                "\"data\": [1, 2, 3, 4, 5, 6, 7, 8, 9, -1]}]}",
                400, "UINT8");
    infer_error("simple_nn",
                "{\"inputs\": [{\"name\": \"input\", \"shape\": [1, 10], \"datatype\": \"UINT64\", "
                "\"data\": [1, 2, 3, 4, 5, 6, 7, 8, 9, -1]}]}",
                400, "UINT64");
    infer_error("simple_nn",
                "{\"inputs\": [{\"name\": \"input\", \"shape\": [1, 10], \"datatype\": \"INT16\", "
                "\"data\": [1, 2, 3, 4, 5, 6, 7, 8, 9, -32769]}]}",
                400, "INT16");
    /* float32 overflow from FP64 data */
    infer_error("simple_nn",
                "{\"inputs\": [{\"name\": \"input\", \"shape\": [1, 10], \"datatype\": \"FP64\", "
                "\"data\": [1e39, 2, 3, 4, 5, 6, 7, 8, 9, 10]}]}",
                400, "input");
}

static void infer_shape_errors(void **state)
{
    (void)state;
    /* 9 values for shape [1, 10] */
    infer_error("simple_nn",
                "{\"inputs\": [{\"name\": \"input\", \"shape\": [1, 10], \"datatype\": \"FP32\", "
                "\"data\": [1, 2, 3, 4, 5, 6, 7, 8, 9]}]}",
                400, "9 values");
    /* 11 values, nested */
    infer_error("simple_nn",
                "{\"inputs\": [{\"name\": \"input\", \"shape\": [1, 10], \"datatype\": \"FP32\", "
                "\"data\": [[1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11]]}]}",
                400, "11 values");
    /* consistent shape and data, but the model takes 10 features */
    infer_error("simple_nn",
                "{\"inputs\": [{\"name\": \"input\", \"shape\": [1, 3], \"datatype\": \"FP32\", "
                "\"data\": [1, 2, 3]}]}",
                400, NULL);
    /* negative dimension */
    infer_error("simple_nn",
                "{\"inputs\": [{\"name\": \"input\", \"shape\": [-1, 10], \"datatype\": \"FP32\", "
                "\"data\": [1, 2, 3, 4, 5, 6, 7, 8, 9, 10]}]}",
                400, "shape");
    /* missing pieces */
    infer_error("simple_nn", "{\"inputs\": []}", 400, "inputs");
    infer_error("simple_nn", "{}", 400, "inputs");
    infer_error("simple_nn", "{\"inputs\": [", 400, NULL);
    infer_error("simple_nn",
                "{\"inputs\": [{\"name\": \"input\", \"datatype\": \"FP32\", \"data\": [1]}]}", 400,
                "shape");
    infer_error("simple_nn",
                "{\"inputs\": [{\"name\": \"input\", \"shape\": [1, 10], \"data\": [1, 2, 3, 4, "
                "5, 6, 7, 8, 9, 10]}]}",
                400, "datatype");
    infer_error("simple_nn",
                "{\"inputs\": [{\"name\": \"pixels\", \"shape\": [1, 10], \"datatype\": "
                "\"FP32\", \"data\": [1, 2, 3, 4, 5, 6, 7, 8, 9, 10]}]}",
                400, "pixels");
}

/* A client sending the KServe/Triton documentation's request shapes, with the keys relud
 * has no use for: they are ignored, not refused. */
static void infer_extra_keys_ignored(void **state)
{
    (void)state;
    double *want = simple_nn_one("FP32", "[1, 2, 3, 4, 5, 6, 7, 8, 9, 10]");
    const char *body =
        "{\n"
        "  \"id\" : \"42\",\n"
        "  \"sequence_id\": 0, \"priority\": 0, \"x-client\": {\"lang\": \"python\", \"v\": [1]},\n"
        "  \"parameters\": {\"binary_data_output\": false, \"timeout\": 10000,\n"
        "                   \"headers\": {\"a\": \"b\"}, \"sequence_start\": false},\n"
        "  \"inputs\" : [\n"
        "    {\n"
        "      \"name\" : \"input\",\n"
        "      \"shape\" : [ 1, 10 ],\n"
        "      \"datatype\" : \"UINT32\",\n"
        "      \"parameters\": {\"content_type\": \"np\", \"shared_memory_region\": null},\n"
        "      \"comment\": \"extra input key\",\n"
        "      \"data\" : [ 1, 2, 3, 4, 5, 6, 7, 8, 9, 10 ]\n"
        "    }\n"
        "  ],\n"
        "  \"outputs\" : [\n"
        "    {\n"
        "      \"name\" : \"output\",\n"
        "      \"parameters\": {\"binary_data\": false},\n"
        "      \"unused\": 1\n"
        "    }\n"
        "  ]\n"
        "}\n";
    struct t_resp r = infer("simple_nn", body, 200);
    assert_string_equal(t_item(r.json, "id")->valuestring, "42");
    assert_string_equal(t_item(r.json, "model_name")->valuestring, "simple_nn");
    const int shape[] = {1, 5};
    size_t n;
    double *got = output_data(r.json, "output", "FP32", shape, 2, &n);
    for (size_t i = 0; i < n; i++)
        assert_true(got[i] == want[i]);
    free(got);
    free(want);
    t_resp_free(&r);
}

/* Request parameters that are neither relud's nor Triton's are refused, with a did-you-mean,
 * as /v1 refuses unknown fields: a typo must not silently drop the loss. */
static void infer_unknown_parameters(void **state)
{
    (void)state;
    const char *in = "\"inputs\": [{\"name\": \"input\", \"shape\": [1, 10], \"datatype\": "
                     "\"FP32\", \"data\": [1, 2, 3, 4, 5, 6, 7, 8, 9, 10]}]";
    char body[512];
    snprintf(body, sizeof body, "{\"parameters\": {\"lossx\": \"mse\"}, %s}", in);
    infer_error("simple_nn", body, 400,
                "parameters: unknown parameter \"lossx\"; did you mean \"loss\"?");
    snprintf(body, sizeof body,
             "{\"parameters\": {\"triton_enable_empty_final_response\": true, "
             "\"priority\": 1}, %s}",
             in);
    struct t_resp r = infer("simple_nn", body, 200);
    t_resp_free(&r);
    /* "outputs": [] is every output, as in Triton */
    snprintf(body, sizeof body, "{\"outputs\": [], %s}", in);
    r = infer("simple_nn", body, 200);
    assert_int_equal(cJSON_GetArraySize(t_item(r.json, "outputs")), 1);
    t_resp_free(&r);
    /* binary data without Inference-Header-Content-Length: the message says what to send */
    snprintf(body, sizeof body, "{%s}\x01\x02", in);
    infer_error("simple_nn", body, 400,
                "send the JSON part's length in Inference-Header-Content-Length");
}

static void infer_id_and_outputs(void **state)
{
    (void)state;
    const char *in = "{\"name\": \"input\", \"shape\": [1, 10], \"datatype\": \"FP32\", "
                     "\"data\": [1, 2, 3, 4, 5, 6, 7, 8, 9, 10]}";
    char body[1024];
    /* id echoed */
    snprintf(body, sizeof body, "{\"id\": \"req-\\u00e9-7\", \"inputs\": [%s]}", in);
    struct t_resp r = infer("simple_nn", body, 200);
    assert_string_equal(t_item(r.json, "id")->valuestring, "req-\xc3\xa9-7");
    t_resp_free(&r);
    /* no id in, none out */
    snprintf(body, sizeof body, "{\"inputs\": [%s]}", in);
    r = infer("simple_nn", body, 200);
    assert_null(cJSON_GetObjectItemCaseSensitive(r.json, "id"));
    t_resp_free(&r);
    /* a non-string id is refused */
    snprintf(body, sizeof body, "{\"id\": 42, \"inputs\": [%s]}", in);
    infer_error("simple_nn", body, 400, "id");
    /* outputs selects among the offered tensors, in the model's order */
    snprintf(body, sizeof body,
             "{\"parameters\": {\"gradients\": true}, \"inputs\": [%s], \"outputs\": "
             "[{\"name\": \"grad:0.bias\"}, {\"name\": \"output\"}]}",
             in);
    r = infer("simple_nn", body, 200);
    assert_int_equal(count_outputs(r.json), 2);
    /* in the order the request names them */
    const cJSON *outs = t_item(r.json, "outputs");
    assert_string_equal(t_item(cJSON_GetArrayItem(outs, 0), "name")->valuestring, "grad:0.bias");
    assert_string_equal(t_item(cJSON_GetArrayItem(outs, 1), "name")->valuestring, "output");
    assert_null(find_output(r.json, "grad:input"));
    assert_null(find_output(r.json, "grad:0.weight"));
    t_resp_free(&r);
    snprintf(body, sizeof body, "{\"inputs\": [%s], \"outputs\": [{\"name\": \"output\"}]}", in);
    r = infer("simple_nn", body, 200);
    assert_int_equal(count_outputs(r.json), 1);
    t_resp_free(&r);
    /* unknown output names are refused, naming them */
    snprintf(body, sizeof body, "{\"inputs\": [%s], \"outputs\": [{\"name\": \"logits\"}]}", in);
    infer_error("simple_nn", body, 400, "logits");
    /* gradient outputs without the gradients parameter */
    snprintf(body, sizeof body, "{\"inputs\": [%s], \"outputs\": [{\"name\": \"grad:input\"}]}",
             in);
    infer_error("simple_nn", body, 400, "grad:input");
}

/* mnist_mlp on the golden inputs against torch's outputs. */
static void infer_mnist_golden(void **state)
{
    (void)state;
    const cJSON *g = mnist_golden();
    const cJSON *tol = t_item(g, "tolerance");
    double atol = t_item(tol, "atol")->valuedouble, rtol = t_item(tol, "rtol")->valuedouble;
    struct srv_sb b = {0};
    srv_sb_printf(&b, "{\"id\": \"golden\", \"inputs\": [");
    sb_golden_input(&b, g);
    srv_sb_printf(&b, "]}");
    struct t_resp r = infer("mnist_mlp", b.p, 200);
    assert_string_equal(t_item(r.json, "id")->valuestring, "golden");
    assert_int_equal(count_outputs(r.json), 1);
    check_golden_tensor(r.json, "output", t_item(g, "output"), "FP32", atol, rtol);
    t_resp_free(&r);
    free(b.p);
}

/* ---- binary tensor data extension ----------------------------------------------- */

/* header JSON + raw bytes, with Inference-Header-Content-Length: hlen (or hval). */
static struct t_resp post_binary(const char *model, const char *header, const void *bin,
                                 size_t binlen, const char *hval, long status)
{
    struct srv_sb b = {0};
    srv_sb_append(&b, header, strlen(header));
    srv_sb_append(&b, bin, binlen);
    char hl[96];
    if (hval)
        snprintf(hl, sizeof hl, "Inference-Header-Content-Length: %s", hval);
    else
        snprintf(hl, sizeof hl, "Inference-Header-Content-Length: %zu", strlen(header));
    const char *hdrs[] = {hl, "Content-Type: application/octet-stream", NULL};
    char path[256];
    snprintf(path, sizeof path, "/v2/models/%s/infer", model);
    struct t_resp r = post_raw(path, b.p, b.len, hdrs, status);
    free(b.p);
    return r;
}

/* Splits a binary reply: parses its JSON header (returned) and points *bin past it. */
static cJSON *split_binary_reply(const struct t_resp *r, const unsigned char **bin, size_t *binlen)
{
    char hl[32];
    assert_non_null(t_resp_header(r, "Inference-Header-Content-Length", hl, sizeof hl));
    char *end;
    unsigned long n = strtoul(hl, &end, 10);
    assert_true(*hl && !*end);
    assert_true(n <= r->len);
    cJSON *h = cJSON_ParseWithLength(r->body, n);
    if (!h)
        fprintf(stderr, "binary reply header (%lu bytes) is not JSON: %.*s\n", n, (int)n, r->body);
    assert_non_null(h);
    *bin = (const unsigned char *)r->body + n;
    *binlen = r->len - n;
    return h;
}

static size_t binary_size(const cJSON *out)
{
    const cJSON *p = t_item(out, "parameters");
    const cJSON *s = t_item(p, "binary_data_size");
    assert_true(cJSON_IsNumber(s));
    assert_null(cJSON_GetObjectItemCaseSensitive(out, "data"));
    return (size_t)s->valuedouble;
}

static void le_f32(unsigned char *dst, float f)
{
    uint32_t u;
    memcpy(&u, &f, 4);
    for (int i = 0; i < 4; i++)
        dst[i] = (unsigned char)(u >> (8 * i));
}

static float from_le_f32(const unsigned char *src)
{
    uint32_t u = 0;
    for (int i = 0; i < 4; i++)
        u |= (uint32_t)src[i] << (8 * i);
    float f;
    memcpy(&f, &u, 4);
    return f;
}

/* Checks that each binary output of a reply is, in the header's order, the numbers of the
 * same output in json (the same request's JSON reply); returns how many outputs. */
static int blobs_as_json(const struct t_resp *rb, const cJSON *json)
{
    const unsigned char *bin;
    size_t binlen, off = 0;
    cJSON *h = split_binary_reply(rb, &bin, &binlen);
    const cJSON *e;
    int nout = 0;
    cJSON_ArrayForEach(e, t_item(h, "outputs"))
    {
        const char *nm = t_item(e, "name")->valuestring;
        const cJSON *jd = NULL, *je;
        cJSON_ArrayForEach(je, t_item(json, "outputs"))
        {
            if (!strcmp(t_item(je, "name")->valuestring, nm))
                jd = t_item(je, "data");
        }
        assert_non_null(jd);
        size_t sz = binary_size(e);
        assert_int_equal(sz, 4 * (size_t)cJSON_GetArraySize(jd));
        assert_true(off + sz <= binlen);
        for (int i = 0; i < cJSON_GetArraySize(jd); i++)
            assert_true(from_le_f32(bin + off + 4 * i) ==
                        (float)cJSON_GetArrayItem(jd, i)->valuedouble);
        off += sz, nout++;
    }
    assert_int_equal(off, binlen);
    cJSON_Delete(h);
    return nout;
}

/* The JSON-path reply's output data for simple_nn on X2, to compare binary replies with. */
static double *simple_nn_x2_json(void)
{
    struct srv_sb b = {0};
    srv_sb_printf(&b, "{\"inputs\": [{\"name\": \"input\", \"shape\": [2, 10], \"datatype\": "
                      "\"FP32\", \"data\": [");
    for (int i = 0; i < 20; i++)
        srv_sb_printf(&b, i ? ",%.9g" : "%.9g", X2[i]);
    srv_sb_printf(&b, "]}]}");
    struct t_resp r = infer("simple_nn", b.p, 200);
    const int shape[] = {2, 5};
    size_t n;
    double *v = output_data(r.json, "output", "FP32", shape, 2, &n);
    t_resp_free(&r);
    free(b.p);
    return v;
}

/* A Triton client's request, byte by byte: JSON header, then raw little-endian float32. */
static void binary_request(void **state)
{
    (void)state;
    double *want = simple_nn_x2_json();
    unsigned char raw[80];
    for (int i = 0; i < 20; i++)
        le_f32(raw + 4 * i, (float)X2[i]);
    /* binary in, JSON out (the Triton client's binary_data=False output) */
    const char *h1 = "{\"id\":\"b1\",\"inputs\":[{\"name\":\"input\",\"shape\":[2,10],"
                     "\"datatype\":\"FP32\",\"parameters\":{\"binary_data_size\":80}}],"
                     "\"outputs\":[{\"name\":\"output\",\"parameters\":{\"binary_data\":false}}]}";
    struct t_resp r = post_binary("simple_nn", h1, raw, sizeof raw, NULL, 200);
    assert_non_null(r.json);
    assert_string_equal(t_item(r.json, "id")->valuestring, "b1");
    const int shape[] = {2, 5};
    size_t n;
    double *got = output_data(r.json, "output", "FP32", shape, 2, &n);
    for (size_t i = 0; i < n; i++)
        assert_true(got[i] == want[i]);
    free(got);
    t_resp_free(&r);

    /* FP64 binary input into the FP32 model */
    unsigned char raw64[160];
    for (int i = 0; i < 20; i++) {
        double v = X2[i];
        uint64_t u;
        memcpy(&u, &v, 8);
        for (int k = 0; k < 8; k++)
            raw64[8 * i + k] = (unsigned char)(u >> (8 * k));
    }
    const char *h2 = "{\"inputs\":[{\"name\":\"input\",\"shape\":[2,10],\"datatype\":\"FP64\","
                     "\"parameters\":{\"binary_data_size\":160}}]}";
    r = post_binary("simple_nn", h2, raw64, sizeof raw64, NULL, 200);
    got = output_data(r.json, "output", "FP32", shape, 2, &n);
    for (size_t i = 0; i < n; i++)
        assert_true(got[i] == want[i]);
    free(got);
    t_resp_free(&r);

    /* a JSON input next to a binary one (a mixed request, as Triton allows) */
    const char *h3 = "{\"parameters\":{\"gradients\":true},\"inputs\":[{\"name\":\"input\","
                     "\"shape\":[2,10],\"datatype\":\"FP32\",\"parameters\":{\"binary_data_size\":"
                     "80}},{\"name\":\"grad_output\",\"shape\":[2,5],\"datatype\":\"FP32\","
                     "\"data\":[1,1,1,1,1,1,1,1,1,1]}],\"outputs\":[{\"name\":\"output\"}]}";
    r = post_binary("simple_nn", h3, raw, sizeof raw, NULL, 200);
    got = output_data(r.json, "output", "FP32", shape, 2, &n);
    for (size_t i = 0; i < n; i++)
        assert_true(got[i] == want[i]);
    free(got);
    t_resp_free(&r);
    free(want);
}

static void binary_outputs(void **state)
{
    (void)state;
    load_simple_nn();
    double *want = simple_nn_x2_json();
    unsigned char raw[80];
    for (int i = 0; i < 20; i++)
        le_f32(raw + 4 * i, (float)X2[i]);
    /* request-level binary_data_output */
    const char *h1 = "{\"parameters\":{\"binary_data_output\":true},\"inputs\":[{\"name\":"
                     "\"input\",\"shape\":[2,10],\"datatype\":\"FP32\",\"parameters\":{"
                     "\"binary_data_size\":80}}]}";
    struct t_resp r = post_binary("simple_nn", h1, raw, sizeof raw, NULL, 200);
    const unsigned char *bin;
    size_t binlen;
    cJSON *h = split_binary_reply(&r, &bin, &binlen);
    const cJSON *o = output(h, "output");
    assert_string_equal(t_item(o, "datatype")->valuestring, "FP32");
    assert_int_equal(binary_size(o), 40);
    assert_int_equal(binlen, 40);
    for (int i = 0; i < 10; i++) {
        float f = from_le_f32(bin + 4 * i);
        /* the JSON reply's shortest decimal reads back to the same float32 */
        if (f != (float)want[i])
            fprintf(stderr, "binary output[%d]: %.9g, JSON path gave %.9g\n", i, (double)f,
                    want[i]);
        assert_true(f == (float)want[i]);
    }
    cJSON_Delete(h);
    t_resp_free(&r);

    /* a per-output "binary_data": false overrides binary_data_output (Triton's
     * extension_binary_data.md): output in JSON, grad:0.bias binary */
    const char *h2 = "{\"parameters\":{\"binary_data_output\":true,\"gradients\":true},"
                     "\"inputs\":[{\"name\":\"input\",\"shape\":[2,10],\"datatype\":\"FP32\","
                     "\"parameters\":{\"binary_data_size\":80}}],\"outputs\":[{\"name\":"
                     "\"output\",\"parameters\":{\"binary_data\":false}},{\"name\":"
                     "\"grad:0.bias\"}]}";
    r = post_binary("simple_nn", h2, raw, sizeof raw, NULL, 200);
    h = split_binary_reply(&r, &bin, &binlen);
    o = output(h, "output");
    const cJSON *jd = cJSON_GetObjectItemCaseSensitive(o, "data");
    if (!jd)
        fprintf(stderr, "binary_data: false did not override binary_data_output: %.*s\n",
                (int)(r.len - binlen), r.body);
    assert_non_null(jd);
    assert_int_equal(cJSON_GetArraySize(jd), 10);
    for (int i = 0; i < 10; i++)
        assert_true(cJSON_GetArrayItem(jd, i)->valuedouble == want[i]);
    assert_int_equal(binary_size(output(h, "grad:0.bias")), 20);
    assert_int_equal(binlen, 20);
    cJSON_Delete(h);
    t_resp_free(&r);

    /* per-output binary_data on a JSON request: output binary, grad:0.bias JSON,
     * grad:input binary; blobs follow the header in the order of the JSON outputs */
    struct srv_sb b = {0};
    srv_sb_printf(&b, "{\"parameters\": {\"gradients\": true}, \"inputs\": [{\"name\": \"input\", "
                      "\"shape\": [2, 10], \"datatype\": \"FP32\", \"data\": [");
    for (int i = 0; i < 20; i++)
        srv_sb_printf(&b, i ? ",%.9g" : "%.9g", X2[i]);
    srv_sb_printf(&b, "]}], \"outputs\": [{\"name\": \"output\", \"parameters\": {\"binary_data\": "
                      "true}}, {\"name\": \"grad:0.bias\"}, {\"name\": \"grad:input\", "
                      "\"parameters\": {\"binary_data\": true}}]}");
    r = infer("simple_nn", b.p, 200);
    h = split_binary_reply(&r, &bin, &binlen);
    const cJSON *outs = t_item(h, "outputs");
    assert_int_equal(cJSON_GetArraySize(outs), 3);
    size_t off = 0;
    const cJSON *e;
    double pre[10], ref[10];
    simple_nn_ref(X2, 2, pre, ref);
    cJSON_ArrayForEach(e, outs)
    {
        const char *nm = t_item(e, "name")->valuestring;
        if (!strcmp(nm, "grad:0.bias")) {
            assert_non_null(cJSON_GetObjectItemCaseSensitive(e, "data"));
            continue;
        }
        size_t sz = binary_size(e);
        assert_true(off + sz <= binlen);
        if (!strcmp(nm, "output")) {
            assert_int_equal(sz, 40);
            for (int i = 0; i < 10; i++)
                assert_true(from_le_f32(bin + off + 4 * i) == (float)want[i]);
        } else {
            /* grad:input of sum(): row r = sum over units j alive of W[j] */
            assert_string_equal(nm, "grad:input");
            assert_int_equal(sz, 80);
            for (int rr = 0; rr < 2; rr++)
                for (int k = 0; k < 10; k++) {
                    double s = 0;
                    for (int j = 0; j < 5; j++)
                        s += pre[rr * 5 + j] > 0 ? W[j][k] : 0;
                    double g = from_le_f32(bin + off + 4 * (rr * 10 + k));
                    assert_true(fabs(g - s) <= 1e-5);
                }
        }
        off += sz;
    }
    assert_int_equal(off, binlen);
    cJSON_Delete(h);
    t_resp_free(&r);
    free(b.p);
    free(want);
}

static void binary_malformed(void **state)
{
    (void)state;
    unsigned char raw[88];
    for (int i = 0; i < 22; i++)
        le_f32(raw + 4 * i, (float)i);
    const char *h = "{\"inputs\":[{\"name\":\"input\",\"shape\":[1,10],\"datatype\":\"FP32\","
                    "\"parameters\":{\"binary_data_size\":40}}]}";
    char big[32];
    /* header length past the body */
    snprintf(big, sizeof big, "%zu", strlen(h) + 40 + 1);
    struct t_resp r = post_binary("simple_nn", h, raw, 40, big, 400);
    t_check_error(&r, "Inference-Header-Content-Length");
    t_resp_free(&r);
    /* not a number */
    r = post_binary("simple_nn", h, raw, 40, "12abc", 400);
    t_check_error(&r, "Inference-Header-Content-Length");
    t_resp_free(&r);
    r = post_binary("simple_nn", h, raw, 40, "-5", 400);
    t_check_error(&r, "Inference-Header-Content-Length");
    t_resp_free(&r);
    /* header length cutting the JSON short */
    snprintf(big, sizeof big, "%zu", strlen(h) - 3);
    r = post_binary("simple_nn", h, raw, 40, big, 400);
    t_check_error(&r, NULL);
    t_resp_free(&r);
    /* binary_data_size disagreeing with the shape */
    const char *h2 = "{\"inputs\":[{\"name\":\"input\",\"shape\":[1,10],\"datatype\":\"FP32\","
                     "\"parameters\":{\"binary_data_size\":36}}]}";
    r = post_binary("simple_nn", h2, raw, 36, NULL, 400);
    t_check_error(&r, "binary_data_size");
    t_resp_free(&r);
    /* body shorter than binary_data_size */
    r = post_binary("simple_nn", h, raw, 36, NULL, 400);
    t_check_error(&r, "binary_data_size");
    t_resp_free(&r);
    /* leftover bytes nobody claims */
    r = post_binary("simple_nn", h, raw, 44, NULL, 400);
    t_check_error(&r, "binary");
    t_resp_free(&r);
    /* binary bytes without the header: the body is not JSON */
    struct srv_sb b = {0};
    srv_sb_append(&b, h, strlen(h));
    srv_sb_append(&b, raw, 40);
    r = post_raw("/v2/models/simple_nn/infer", b.p, b.len, NULL, 400);
    t_check_error(&r, NULL);
    t_resp_free(&r);
    free(b.p);
    /* both data and binary_data_size */
    const char *h3 = "{\"inputs\":[{\"name\":\"input\",\"shape\":[1,10],\"datatype\":\"FP32\","
                     "\"data\":[1,2,3,4,5,6,7,8,9,10],\"parameters\":{\"binary_data_size\":40}}]}";
    r = post_binary("simple_nn", h3, raw, 40, NULL, 400);
    t_check_error(&r, "binary_data_size");
    t_resp_free(&r);
    /* a non-finite float in the binary data */
    unsigned char nan[40];
    memcpy(nan, raw, 40);
    le_f32(nan + 8, NAN);
    r = post_binary("simple_nn", h, nan, 40, NULL, 400);
    t_check_error(&r, "finite");
    t_resp_free(&r);
    /* the daemon still serves a good binary request */
    r = post_binary("simple_nn", h, raw, 40, NULL, 200);
    t_resp_free(&r);
}

/* Binary outputs where they lie, on a daemon with its own models:
 * - "wide" (1 -> 64 Linear): its output is most of the pass's workspace, so the reply sends
 *   it from there (no copy); with gradients, every output is binary; each blob is the same
 *   request's JSON numbers;
 * - "ovf" (1 -> 2 Linear of 3e38s): a binary output is scanned for inf/nan once, by whoever
 *   can name it: the pass's output by the core (a non-finite output fails the pass), a
 *   gradient where the reply writes it. The output for input 0 is finite, the gradient
 *   w.r.t. the input 3e38 + 3e38 = inf in float32: 422 naming it, binary or JSON. */
static void binary_own_models(void **state)
{
    (void)state;
    char dir[256];
    assert_int_equal(t_tmp_copy(dir, sizeof dir, "oip-own", NULL), 0);
    t_write_str(dir, "ovf.json",
                "{\"name\": \"ovf\", \"dtype\": \"float32\", \"layers\": [{\"type\": \"linear\", "
                "\"weight\": [[3e38], [3e38]], \"bias\": [0, 0]}]}");
    struct srv_sb m = {0};
    srv_sb_printf(&m, "{\"name\": \"wide\", \"dtype\": \"float32\", \"layers\": [{\"type\": "
                      "\"linear\", \"weight\": [");
    for (int i = 0; i < 64; i++)
        srv_sb_printf(&m, "%s[%g]", i ? ", " : "", (i - 31.5) / 16);
    srv_sb_printf(&m, "], \"bias\": [");
    for (int i = 0; i < 64; i++)
        srv_sb_printf(&m, "%s%g", i ? ", " : "", (i % 7) / 8.0);
    srv_sb_printf(&m, "]}]}");
    t_write_str(dir, "wide.json", m.p);
    free(m.p);
    struct t_daemon main_d = d;
    const char *args[] = {"--model-dir", dir, NULL};
    assert_int_equal(t_daemon_start(&d, args, NULL), 0);

    const char *in = "\"inputs\":[{\"name\":\"input\",\"shape\":[4,1],\"datatype\":\"FP32\","
                     "\"data\":[0.5,-1.25,2,3.5]}]}";
    for (int grads = 0; grads < 2; grads++) {
        char jb[512], bb[512];
        const char *g = grads ? ",\"gradients\":true" : "";
        snprintf(jb, sizeof jb, "{\"parameters\":{\"binary_data_output\":false%s},%s", g, in);
        snprintf(bb, sizeof bb, "{\"parameters\":{\"binary_data_output\":true%s},%s", g, in);
        struct t_resp rj = infer("wide", jb, 200), rb = infer("wide", bb, 200);
        assert_int_equal(blobs_as_json(&rb, rj.json), grads ? 4 : 1);
        t_resp_free(&rj);
        t_resp_free(&rb);
    }

    const unsigned char zero[4] = {0};
    const char *hb = "{\"parameters\":{\"binary_data_output\":true,\"gradients\":true},"
                     "\"inputs\":[{\"name\":\"input\",\"shape\":[1,1],\"datatype\":\"FP32\","
                     "\"parameters\":{\"binary_data_size\":4}}]}";
    struct t_resp r = post_binary("ovf", hb, zero, 4, NULL, 422);
    t_check_error(&r, "grad:input: non-finite value at index 0");
    t_resp_free(&r);
    /* the output alone is finite: served, binary */
    const char *ho = "{\"parameters\":{\"binary_data_output\":true},\"inputs\":[{\"name\":"
                     "\"input\",\"shape\":[1,1],\"datatype\":\"FP32\",\"parameters\":"
                     "{\"binary_data_size\":4}}]}";
    r = post_binary("ovf", ho, zero, 4, NULL, 200);
    const unsigned char *bin;
    size_t binlen;
    cJSON *h = split_binary_reply(&r, &bin, &binlen);
    assert_int_equal(binlen, 8);
    assert_true(from_le_f32(bin) == 0 && from_le_f32(bin + 4) == 0);
    cJSON_Delete(h);
    t_resp_free(&r);
    /* the same gradient as JSON: the writer names it */
    r = infer("ovf",
              "{\"parameters\":{\"gradients\":true},\"inputs\":[{\"name\":\"input\",\"shape\":"
              "[1,1],\"datatype\":\"FP32\",\"data\":[0]}]}",
              422);
    t_check_error(&r, "grad:input");
    t_resp_free(&r);
    assert_int_equal(t_daemon_stop(&d, 0, 30), 0);
    d = main_d;
    t_rm_dir(dir);
}

/* ---- gradients extension --------------------------------------------------------- */

static void gradients_sum(void **state)
{
    (void)state;
    load_simple_nn();
    double pre[10], out[10];
    simple_nn_ref(X2, 2, pre, out);
    struct srv_sb b = {0};
    srv_sb_printf(&b, "{\"parameters\": {\"gradients\": true}, \"inputs\": [{\"name\": \"input\", "
                      "\"shape\": [2, 10], \"datatype\": \"FP32\", \"data\": [");
    for (int i = 0; i < 20; i++)
        srv_sb_printf(&b, i ? ",%.9g" : "%.9g", X2[i]);
    srv_sb_printf(&b, "]}]}");
    struct t_resp r = infer("simple_nn", b.p, 200);
    /* exactly: output, grad:input, grad:0.weight, grad:0.bias (relu has no parameters) */
    assert_int_equal(count_outputs(r.json), 4);
    assert_null(find_output(r.json, "loss"));
    assert_null(find_output(r.json, "grad:1.weight"));
    size_t n;
    const int sh_in[] = {2, 10}, sh_w[] = {5, 10}, sh_b[] = {5};
    double *gi = output_data(r.json, "grad:input", "FP32", sh_in, 2, &n);
    double *gw = output_data(r.json, "grad:0.weight", "FP32", sh_w, 2, &n);
    double *gb = output_data(r.json, "grad:0.bias", "FP32", sh_b, 1, &n);
    /* output.sum().backward(): dpre = 1 where pre > 0 */
    for (int j = 0; j < 5; j++) {
        double bj = 0;
        for (int rr = 0; rr < 2; rr++)
            bj += pre[rr * 5 + j] > 0;
        assert_true(fabs(gb[j] - bj) <= 1e-6);
        for (int k = 0; k < 10; k++) {
            double wjk = 0;
            for (int rr = 0; rr < 2; rr++)
                wjk += pre[rr * 5 + j] > 0 ? X2[rr * 10 + k] : 0;
            assert_true(fabs(gw[j * 10 + k] - wjk) <= 1e-5 + 1e-5 * fabs(wjk));
        }
    }
    for (int rr = 0; rr < 2; rr++)
        for (int k = 0; k < 10; k++) {
            double s = 0;
            for (int j = 0; j < 5; j++)
                s += pre[rr * 5 + j] > 0 ? W[j][k] : 0;
            assert_true(fabs(gi[rr * 10 + k] - s) <= 1e-5);
        }
    free(gi);
    free(gw);
    free(gb);
    t_resp_free(&r);
    free(b.p);
}

static void gradients_grad_output(void **state)
{
    (void)state;
    load_simple_nn();
    double pre[10], out[10];
    simple_nn_ref(X2, 2, pre, out);
    const double go[10] = {0.5, -1, 2, 0.25, -3, 1.5, 1, -0.5, 4, -2};
    struct srv_sb b = {0};
    srv_sb_printf(&b, "{\"parameters\": {\"gradients\": true}, \"inputs\": [{\"name\": \"input\", "
                      "\"shape\": [2, 10], \"datatype\": \"FP32\", \"data\": [");
    for (int i = 0; i < 20; i++)
        srv_sb_printf(&b, i ? ",%.9g" : "%.9g", X2[i]);
    srv_sb_printf(&b, "]}, {\"name\": \"grad_output\", \"shape\": [2, 5], \"datatype\": \"FP32\", "
                      "\"data\": [[0.5, -1, 2, 0.25, -3], [1.5, 1, -0.5, 4, -2]]}]}");
    struct t_resp r = infer("simple_nn", b.p, 200);
    size_t n;
    const int sh_in[] = {2, 10}, sh_b[] = {5};
    double *gi = output_data(r.json, "grad:input", "FP32", sh_in, 2, &n);
    double *gb = output_data(r.json, "grad:0.bias", "FP32", sh_b, 1, &n);
    for (int j = 0; j < 5; j++) {
        double bj = 0;
        for (int rr = 0; rr < 2; rr++)
            bj += pre[rr * 5 + j] > 0 ? go[rr * 5 + j] : 0;
        assert_true(fabs(gb[j] - bj) <= 1e-5);
    }
    for (int rr = 0; rr < 2; rr++)
        for (int k = 0; k < 10; k++) {
            double s = 0;
            for (int j = 0; j < 5; j++)
                s += pre[rr * 5 + j] > 0 ? go[rr * 5 + j] * W[j][k] : 0;
            assert_true(fabs(gi[rr * 10 + k] - s) <= 1e-5);
        }
    free(gi);
    free(gb);
    t_resp_free(&r);
    /* grad_output needs the gradients parameter; its shape must match the output */
    const char *x = "{\"name\": \"input\", \"shape\": [1, 10], \"datatype\": \"FP32\", \"data\": "
                    "[1, 2, 3, 4, 5, 6, 7, 8, 9, 10]}";
    char body[1024];
    snprintf(body, sizeof body,
             "{\"inputs\": [%s, {\"name\": \"grad_output\", \"shape\": [1, 5], \"datatype\": "
             "\"FP32\", \"data\": [1, 1, 1, 1, 1]}]}",
             x);
    infer_error("simple_nn", body, 400, "grad_output");
    snprintf(body, sizeof body,
             "{\"parameters\": {\"gradients\": true}, \"inputs\": [%s, {\"name\": "
             "\"grad_output\", \"shape\": [1, 4], \"datatype\": \"FP32\", \"data\": [1, 1, 1, "
             "1]}]}",
             x);
    infer_error("simple_nn", body, 400, NULL);
    /* target without a loss, grad_output with a loss */
    snprintf(body, sizeof body,
             "{\"inputs\": [%s, {\"name\": \"target\", \"shape\": [1, 5], \"datatype\": "
             "\"FP32\", \"data\": [1, 1, 1, 1, 1]}]}",
             x);
    infer_error("simple_nn", body, 400, "loss");
    snprintf(body, sizeof body,
             "{\"parameters\": {\"loss\": \"mse\"}, \"inputs\": [%s, {\"name\": \"target\", "
             "\"shape\": [1, 5], \"datatype\": \"FP32\", \"data\": [1, 1, 1, 1, 1]}, {\"name\": "
             "\"grad_output\", \"shape\": [1, 5], \"datatype\": \"FP32\", \"data\": [1, 1, 1, 1, "
             "1]}]}",
             x);
    infer_error("simple_nn", body, 400, "grad_output");
    snprintf(body, sizeof body, "{\"parameters\": {\"loss\": \"mse\"}, \"inputs\": [%s]}", x);
    infer_error("simple_nn", body, 400, "target");
    snprintf(body, sizeof body,
             "{\"parameters\": {\"loss\": \"hinge_of_doom\"}, \"inputs\": [%s, {\"name\": "
             "\"target\", \"shape\": [1, 5], \"datatype\": \"FP32\", \"data\": [1, 1, 1, 1, "
             "1]}]}",
             x);
    infer_error("simple_nn", body, 400, "hinge_of_doom");
    free(b.p);
}

static void gradients_mse_loss(void **state)
{
    (void)state;
    load_simple_nn();
    double pre[10], out[10];
    simple_nn_ref(X2, 2, pre, out);
    const double tgt[10] = {0, 1, 0.5, -1, 2, 0.25, 0, 1, 3, -0.5};
    struct srv_sb b = {0};
    srv_sb_printf(&b, "{\"parameters\": {\"loss\": \"mse\"}, \"inputs\": [{\"name\": \"input\", "
                      "\"shape\": [2, 10], \"datatype\": \"FP32\", \"data\": [");
    for (int i = 0; i < 20; i++)
        srv_sb_printf(&b, i ? ",%.9g" : "%.9g", X2[i]);
    srv_sb_printf(&b, "]}, {\"name\": \"target\", \"shape\": [2, 5], \"datatype\": \"FP32\", "
                      "\"data\": [");
    for (int i = 0; i < 10; i++)
        srv_sb_printf(&b, i ? ",%.9g" : "%.9g", tgt[i]);
    srv_sb_printf(&b, "]}]}");
    struct t_resp r = infer("simple_nn", b.p, 200);
    double want = 0;
    for (int i = 0; i < 10; i++)
        want += (out[i] - tgt[i]) * (out[i] - tgt[i]);
    want /= 10;
    size_t n;
    const int sh1[] = {1};
    double *loss = output_data(r.json, "loss", "FP32", sh1, 1, &n);
    assert_true(fabs(loss[0] - want) <= 1e-5 * (1 + fabs(want)));
    free(loss);
    const int sh_b[] = {5};
    double *gb = output_data(r.json, "grad:0.bias", "FP32", sh_b, 1, &n);
    for (int j = 0; j < 5; j++) {
        double s = 0;
        for (int rr = 0; rr < 2; rr++)
            s += pre[rr * 5 + j] > 0 ? 2 * (out[rr * 5 + j] - tgt[rr * 5 + j]) / 10 : 0;
        assert_true(fabs(gb[j] - s) <= 1e-5);
    }
    free(gb);
    /* the same request with every output binary: the loss is not in the workspace (so the
     * blobs are copied after the header, not sent where they lie); each blob is the JSON
     * reply's numbers, in the header's order */
    const char *tail = strstr(b.p, "\"mse\"}");
    assert_non_null(tail);
    struct srv_sb bb = {0};
    srv_sb_printf(&bb, "{\"parameters\": {\"loss\": \"mse\", \"binary_data_output\": true}%s",
                  tail + strlen("\"mse\"}"));
    struct t_resp rb = infer("simple_nn", bb.p, 200);
    /* output, grad:input, grad:0.weight, grad:0.bias, loss */
    assert_int_equal(blobs_as_json(&rb, r.json), 5);
    t_resp_free(&rb);
    free(bb.p);
    t_resp_free(&r);
    free(b.p);
    /* relud's flags are booleans: "yes" is refused, not read as false */
    infer_error(
        "simple_nn",
        "{\"parameters\": {\"gradients\": \"yes\"}, \"inputs\": [{\"name\": \"input\", "
        "\"shape\": [1, 10], \"datatype\": \"FP32\", \"data\": [1, 2, 3, 4, 5, 6, 7, 8, 9, 10]}]}",
        400, "parameters.gradients: expected true or false");
}

/* mnist_mlp with cross_entropy against torch's loss and state_dict gradients. */
static void gradients_mnist_golden(void **state)
{
    (void)state;
    const cJSON *g = mnist_golden();
    const cJSON *tol = t_item(g, "tolerance");
    double atol = t_item(tol, "atol")->valuedouble, rtol = t_item(tol, "rtol")->valuedouble;
    const cJSON *loss = t_item(g, "loss");
    assert_string_equal(t_item(loss, "type")->valuestring, "cross_entropy");
    const cJSON *tgt = t_item(t_item(loss, "target"), "data");
    struct srv_sb b = {0};
    srv_sb_printf(&b,
                  "{\"parameters\": {\"loss\": \"cross_entropy\", \"reduction\": \"%s\"}, "
                  "\"inputs\": [",
                  t_item(loss, "reduction")->valuestring);
    sb_golden_input(&b, g);
    srv_sb_printf(&b,
                  ", {\"name\": \"target\", \"datatype\": \"INT64\", \"shape\": [%d], \"data\": [",
                  cJSON_GetArraySize(tgt));
    const cJSON *e;
    int first = 1;
    cJSON_ArrayForEach(e, tgt)
    {
        srv_sb_printf(&b, first ? "%d" : ",%d", (int)e->valuedouble);
        first = 0;
    }
    srv_sb_printf(&b, "]}]}");
    struct t_resp r = infer("mnist_mlp", b.p, 200);
    check_golden_tensor(r.json, "output", t_item(g, "output"), "FP32", atol, rtol);
    const int sh1[] = {1};
    size_t n;
    double *lv = output_data(r.json, "loss", "FP32", sh1, 1, &n);
    double want_loss = t_item(g, "expected_loss")->valuedouble;
    check_close("loss", lv, &want_loss, 1, atol, rtol);
    free(lv);
    check_golden_tensor(r.json, "grad:input", t_item(g, "grad_input"), "FP32", atol, rtol);
    const cJSON *gp = t_item(g, "grad_params");
    int nparams = 0;
    cJSON_ArrayForEach(e, gp)
    {
        char name[96];
        snprintf(name, sizeof name, "grad:%s", e->string);
        check_golden_tensor(r.json, name, e, "FP32", atol, rtol);
        nparams++;
    }
    assert_int_equal(nparams, 6); /* 0, 2, 4 . weight, bias */
    /* output, loss, grad:input and one per parameter: nothing else */
    assert_int_equal(count_outputs(r.json), 3 + nparams);
    t_resp_free(&r);
    free(b.p);
}

static void stats_parameter(void **state)
{
    (void)state;
    load_simple_nn();
    double pre[10], out[10];
    simple_nn_ref(X2, 2, pre, out);
    struct srv_sb b = {0};
    srv_sb_printf(&b, "{\"parameters\": {\"stats\": true}, \"inputs\": [{\"name\": \"input\", "
                      "\"shape\": [2, 10], \"datatype\": \"FP32\", \"data\": [");
    for (int i = 0; i < 20; i++)
        srv_sb_printf(&b, i ? ",%.9g" : "%.9g", X2[i]);
    srv_sb_printf(&b, "]}]}");
    struct t_resp r = infer("simple_nn", b.p, 200);
    const cJSON *p = t_item(r.json, "parameters");
    /* a response parameter is a string, number or boolean (the protocol): JSON text */
    const cJSON *stxt = t_item(p, "stats");
    assert_true(cJSON_IsString(stxt));
    cJSON *st = cJSON_Parse(stxt->valuestring);
    assert_non_null(st);
    assert_int_equal(cJSON_GetArraySize(st), 2);
    assert_string_equal(t_item(cJSON_GetArrayItem(st, 0), "type")->valuestring, "linear");
    const cJSON *relu = cJSON_GetArrayItem(st, 1);
    assert_string_equal(t_item(relu, "type")->valuestring, "relu");
    int zeros = 0;
    for (int i = 0; i < 10; i++)
        zeros += out[i] == 0;
    assert_true(fabs(t_item(relu, "zero_fraction")->valuedouble - zeros / 10.0) < 1e-9);
    /* dead units: zero on every row */
    const cJSON *dead = t_item(relu, "dead_units");
    int ndead = 0;
    for (int j = 0; j < 5; j++)
        ndead += pre[j] <= 0 && pre[5 + j] <= 0;
    assert_int_equal(cJSON_GetArraySize(dead), ndead);
    /* no gradients asked: only the output */
    assert_int_equal(count_outputs(r.json), 1);
    cJSON_Delete(st);
    t_resp_free(&r);
    /* without stats there is no parameters object */
    b.len = 0;
    srv_sb_printf(&b, "{\"inputs\": [{\"name\": \"input\", \"shape\": [1, 10], \"datatype\": "
                      "\"FP32\", \"data\": [1, 2, 3, 4, 5, 6, 7, 8, 9, 10]}]}");
    r = infer("simple_nn", b.p, 200);
    assert_null(cJSON_GetObjectItemCaseSensitive(r.json, "parameters"));
    t_resp_free(&r);
    free(b.p);
}

/* ---- statistics ------------------------------------------------------------------ */

struct counts {
    double success, fail, inferences, executions;
};

static struct counts model_stats(const char *path, const char *name)
{
    struct t_resp r = get(path, 200);
    const cJSON *arr = t_item(r.json, "model_stats");
    const cJSON *e, *m = NULL;
    cJSON_ArrayForEach(e, arr)
    {
        if (!strcmp(t_item(e, "name")->valuestring, name))
            m = e;
    }
    if (!m)
        fprintf(stderr, "no model_stats entry for %s: %s\n", name, r.body);
    assert_non_null(m);
    assert_string_equal(t_item(m, "version")->valuestring, "1");
    const cJSON *is = t_item(m, "inference_stats");
    const char *keys[] = {"success",       "fail",          "queue",
                          "compute_input", "compute_infer", "compute_output"};
    for (size_t i = 0; i < sizeof keys / sizeof *keys; i++) {
        const cJSON *k = t_item(is, keys[i]);
        assert_true(cJSON_IsNumber(t_item(k, "count")));
        assert_true(cJSON_IsNumber(t_item(k, "ns")));
    }
    assert_true(cJSON_IsArray(t_item(m, "batch_stats")));
    struct counts c = {
        t_item(t_item(is, "success"), "count")->valuedouble,
        t_item(t_item(is, "fail"), "count")->valuedouble,
        t_item(m, "inference_count")->valuedouble,
        t_item(m, "execution_count")->valuedouble,
    };
    t_resp_free(&r);
    return c;
}

/* Triton's raw binary request: Inference-Header-Content-Length 0, the body is the one
 * input's bytes; rows from the byte count; JSON outputs. */
static void binary_raw_request(void **state)
{
    (void)state;
    float x[20];
    for (int i = 0; i < 20; i++)
        x[i] = (float)(i % 10 + 1);
    const char *h[] = {"Inference-Header-Content-Length: 0",
                       "Content-Type: application/octet-stream", NULL};
    struct t_resp r = post_raw("/v2/models/simple_nn/infer", (const char *)x, sizeof x, h, 200);
    const cJSON *out = cJSON_GetArrayItem(t_item(r.json, "outputs"), 0);
    const cJSON *shape = t_item(out, "shape");
    assert_int_equal(cJSON_GetArrayItem(shape, 0)->valueint, 2);
    assert_int_equal(cJSON_GetArrayItem(shape, 1)->valueint, 5);
    const cJSON *data = t_item(out, "data");
    double want[5] = {1.2734791, 0, 0, 0.072146654, 0};
    for (int i = 0; i < 10; i++)
        assert_true(fabs(cJSON_GetArrayItem(data, i)->valuedouble - want[i % 5]) <=
                    1e-6 + 1e-5 * fabs(want[i % 5]));
    t_resp_free(&r);
    r = post_raw("/v2/models/simple_nn/infer", (const char *)x, sizeof x - 4, h, 400);
    t_check_error(&r, "76 bytes are not whole rows of 40 FP32 bytes");
    t_resp_free(&r);
}

/* The statistics carry every field Triton documents: cache_hit/cache_miss (zeros: relud has
 * no response cache), response_stats (empty: no decoupled models), memory_usage (the
 * serving version's parameters). */
static void statistics_fields(void **state)
{
    (void)state;
    struct t_resp r = get("/v2/models/simple_nn/stats", 200);
    const cJSON *ms = cJSON_GetArrayItem(t_item(r.json, "model_stats"), 0);
    const cJSON *is = t_item(ms, "inference_stats");
    assert_int_equal(t_item(t_item(is, "cache_hit"), "count")->valueint, 0);
    assert_int_equal(t_item(t_item(is, "cache_miss"), "ns")->valueint, 0);
    assert_true(cJSON_IsObject(t_item(ms, "response_stats")));
    const cJSON *mu = cJSON_GetArrayItem(t_item(ms, "memory_usage"), 0);
    assert_string_equal(t_item(mu, "type")->valuestring, "CPU");
    assert_int_equal(t_item(mu, "byte_size")->valueint, (10 * 5 + 5) * 4); /* Linear(10, 5) */
    t_resp_free(&r);
}

static void statistics(void **state)
{
    (void)state;
    struct counts c0 = model_stats("/v2/models/simple_nn/stats", "simple_nn");
    struct counts m0 = model_stats("/v2/models/stats", "mnist_mlp");
    const char *ok = "{\"inputs\": [{\"name\": \"input\", \"shape\": [3, 10], \"datatype\": "
                     "\"FP32\", \"data\": [[1,2,3,4,5,6,7,8,9,10],[1,2,3,4,5,6,7,8,9,10],"
                     "[0,0,0,0,0,0,0,0,0,0]]}]}";
    for (int i = 0; i < 2; i++) {
        struct t_resp r = infer("simple_nn", ok, 200);
        t_resp_free(&r);
    }
    infer_error("simple_nn",
                "{\"inputs\": [{\"name\": \"input\", \"shape\": [1, 10], "
                "\"datatype\": \"BOOL\", \"data\": [1]}]}",
                400, "BOOL");
    struct counts c1 = model_stats("/v2/models/simple_nn/stats", "simple_nn");
    assert_true(c1.success == c0.success + 2);
    assert_true(c1.fail == c0.fail + 1);
    assert_true(c1.inferences == c0.inferences + 6); /* samples: 2 requests x 3 rows */
    assert_true(c1.executions == c0.executions + 2);
    /* the versioned path and the all-models list agree; mnist_mlp unchanged */
    struct counts cv = model_stats("/v2/models/simple_nn/versions/1/stats", "simple_nn");
    assert_true(cv.success == c1.success && cv.fail == c1.fail);
    struct counts ca = model_stats("/v2/models/stats", "simple_nn");
    assert_true(ca.success == c1.success && ca.fail == c1.fail);
    struct counts m1 = model_stats("/v2/models/stats", "mnist_mlp");
    assert_true(m1.success == m0.success && m1.fail == m0.fail);
    /* unknown model */
    struct t_resp r = get("/v2/models/no_such_model/stats", 404);
    t_check_error(&r, "no_such_model");
    t_resp_free(&r);

    /* per-model series in /metrics agree with the statistics */
    r = get("/metrics", 200);
    char want[256];
    snprintf(want, sizeof want,
             "relud_model_requests_total{model=\"simple_nn\",outcome=\"success\"} %.0f\n",
             c1.success);
    if (!strstr(r.body, want))
        fprintf(stderr, "metrics lack: %s", want);
    assert_non_null(strstr(r.body, want));
    snprintf(want, sizeof want,
             "relud_model_requests_total{model=\"simple_nn\",outcome=\"failure\"} %.0f\n", c1.fail);
    assert_non_null(strstr(r.body, want));
    snprintf(want, sizeof want, "relud_model_inferences_total{model=\"simple_nn\"} %.0f\n",
             c1.inferences);
    assert_non_null(strstr(r.body, want));
    assert_non_null(strstr(r.body, "relud_model_ready{model=\"simple_nn\"} 1\n"));
    assert_non_null(strstr(r.body, "relud_model_ready{model=\"mnist_mlp\"} 1\n"));
    assert_non_null(
        strstr(r.body, "relud_model_request_duration_seconds_count{model=\"simple_nn\"}"));
    t_resp_free(&r);
}

int main(void)
{
    curl_global_init(CURL_GLOBAL_ALL);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(server_metadata),
        cmocka_unit_test(health),
        cmocka_unit_test(model_metadata),
        cmocka_unit_test(model_metadata_errors),
        cmocka_unit_test(model_ready),
        cmocka_unit_test(infer_flat_and_nested),
        cmocka_unit_test(infer_datatypes_coerced),
        cmocka_unit_test(infer_refused_datatypes),
        cmocka_unit_test(infer_shape_errors),
        cmocka_unit_test(infer_extra_keys_ignored),
        cmocka_unit_test(infer_unknown_parameters),
        cmocka_unit_test(infer_id_and_outputs),
        cmocka_unit_test(infer_mnist_golden),
        cmocka_unit_test(binary_request),
        cmocka_unit_test(binary_outputs),
        cmocka_unit_test(binary_malformed),
        cmocka_unit_test(binary_own_models),
        cmocka_unit_test(binary_raw_request),
        cmocka_unit_test(statistics_fields),
        cmocka_unit_test(gradients_sum),
        cmocka_unit_test(gradients_grad_output),
        cmocka_unit_test(gradients_mse_loss),
        cmocka_unit_test(gradients_mnist_golden),
        cmocka_unit_test(stats_parameter),
        cmocka_unit_test(statistics),
    };
    int rc = cmocka_run_group_tests_name("http_oip", tests, setup, teardown);
    cJSON_Delete(g_mnist);
    curl_global_cleanup();
    return rc;
}
