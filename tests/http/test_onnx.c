/* ONNX models (NAME.onnx) served by the real daemon, on a temporary copy of
 * tests/fixtures/onnx plus the bundled config/models/simple_nn_onnx.onnx:
 *   - every golden case of tests/golden/onnx (tools/gen_onnx.py: torch's exports at opsets
 *     9, 11, 13, 17 and hand-built graphs): metadata from the graph (names, shapes,
 *     platform), infer output, and mse loss with the gradients of the input and of every
 *     initializer by name, as torch.allclose with the case's tolerance; one test per case;
 *   - the broken fixtures listed UNAVAILABLE with the reason a person can act on;
 *   - the graph's input contract (name, rank, fixed dims), /v1/forward by model name,
 *     Triton's config and statistics;
 *   - hot swap through the repository extension, PUT refused over a NAME.onnx, DELETE,
 *     NAME.json beside NAME.onnx refused, strict_models stopping the start. */
#include <dirent.h>
#include <math.h>
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

#include "tests/common/fs.h"
#include "tests/common/http.h"

#define TOKEN "s3cret"
#define AUTH "Authorization: Bearer " TOKEN

static struct t_daemon d;
static char dir[64];

/* ---- helpers ------------------------------------------------------------------ */

static struct t_resp req(const char *method, const char *path, const char *auth, const char *body,
                         long status)
{
    return t_call(&d, method, path, auth, body, 0, status);
}

static void req_error(const char *method, const char *path, const char *body, long status,
                      const char *part)
{
    struct t_resp r = req(method, path, AUTH, body, status);
    t_check_error(&r, part);
    t_resp_free(&r);
}

/* Every number of a tensor in any form (flat data, nested). */
static void numbers(const cJSON *t, double **v, size_t *n, size_t *cap)
{
    if (cJSON_IsObject(t)) {
        numbers(cJSON_GetObjectItemCaseSensitive(t, "data"), v, n, cap);
        return;
    }
    if (cJSON_IsNumber(t)) {
        if (*n == *cap) {
            *cap = *cap ? *cap * 2 : 64;
            *v = realloc(*v, *cap * sizeof **v);
            assert_non_null(*v);
        }
        (*v)[(*n)++] = t->valuedouble;
        return;
    }
    for (const cJSON *c = t ? t->child : NULL; c; c = c->next)
        numbers(c, v, n, cap);
}

/* torch.allclose of got's numbers with want's; both any tensor form. */
static void check_close(const char *what, const cJSON *got, const cJSON *want, double rtol,
                        double atol)
{
    double *g = NULL, *w = NULL;
    size_t ng = 0, nw = 0, cg = 0, cw = 0;
    numbers(got, &g, &ng, &cg);
    numbers(want, &w, &nw, &cw);
    int ok = ng == nw && nw > 0;
    if (!ok)
        fprintf(stderr, "  %s: %zu values, expected %zu\n", what, ng, nw);
    for (size_t i = 0; ok && i < nw; i++)
        if (!(fabs(g[i] - w[i]) <= atol + rtol * fabs(w[i]))) {
            fprintf(stderr, "  %s[%zu]: got %.9g, expected %.9g (rtol %g, atol %g)\n", what, i,
                    g[i], w[i], rtol, atol);
            ok = 0;
        }
    free(g);
    free(w);
    assert_true(ok);
}

/* The JSON array of ints a == b (a cJSON array of numbers). */
static void check_shape(const char *what, const cJSON *a, const cJSON *b)
{
    char *x = cJSON_PrintUnformatted(a), *y = cJSON_PrintUnformatted(b);
    if (strcmp(x, y))
        fprintf(stderr, "  %s: shape %s, expected %s\n", what, x, y);
    assert_string_equal(x, y);
    free(x);
    free(y);
}

/* The entry named name of an OIP outputs array, or NULL. */
static const cJSON *output_named(const cJSON *outs, const char *name)
{
    const cJSON *o;
    cJSON_ArrayForEach(o, outs)
    {
        if (!strcmp(t_item(o, "name")->valuestring, name))
            return o;
    }
    return NULL;
}

/* An OIP input tensor: {"name", "shape", "datatype", "data"} from a case's {"shape", "data"}. */
static char *input_json(const char *name, const cJSON *t, const char *datatype)
{
    char *shape = cJSON_PrintUnformatted(t_item(t, "shape"));
    char *data = cJSON_PrintUnformatted(t_item(t, "data"));
    size_t n = strlen(shape) + strlen(data) + strlen(name) + 128;
    char *s = malloc(n);
    assert_non_null(s);
    snprintf(s, n, "{\"name\": \"%s\", \"shape\": %s, \"datatype\": \"%s\", \"data\": %s}", name,
             shape, datatype, data);
    free(shape);
    free(data);
    return s;
}

/* ---- the golden cases --------------------------------------------------------- */

struct gcase {
    char path[512];
    char name[128];
};

static void run_case(void **state)
{
    const struct gcase *c = *state;
    char *text = t_read_file(c->path, NULL);
    assert_non_null(text);
    cJSON *doc = cJSON_Parse(text);
    free(text);
    assert_non_null(doc);
    const char *model = t_item(doc, "model")->valuestring;
    const char *in = t_item(doc, "input_name")->valuestring;
    const char *out = t_item(doc, "output_name")->valuestring;
    int f64 = !strcmp(t_item(doc, "dtype")->valuestring, "float64");
    const char *dt = f64 ? "FP64" : "FP32";
    double rtol = t_item(t_item(doc, "tolerance"), "rtol")->valuedouble;
    double atol = t_item(t_item(doc, "tolerance"), "atol")->valuedouble;
    char path[256];

    /* metadata: the graph's names and shapes */
    snprintf(path, sizeof path, "/v2/models/%s", model);
    struct t_resp r = req("GET", path, NULL, NULL, 200);
    assert_string_equal(t_item(r.json, "platform")->valuestring, "onnxruntime_onnx");
    const cJSON *mi = cJSON_GetArrayItem(t_item(r.json, "inputs"), 0);
    const cJSON *mo = cJSON_GetArrayItem(t_item(r.json, "outputs"), 0);
    assert_string_equal(t_item(mi, "name")->valuestring, in);
    assert_string_equal(t_item(mo, "name")->valuestring, out);
    assert_string_equal(t_item(mi, "datatype")->valuestring, dt);
    check_shape("input", t_item(mi, "shape"), t_item(doc, "input_meta"));
    check_shape("output", t_item(mo, "shape"), t_item(doc, "output_meta"));
    t_resp_free(&r);

    /* infer */
    char *x = input_json(in, t_item(doc, "input"), dt);
    size_t n = strlen(x) + 64;
    char *body = malloc(n);
    assert_non_null(body);
    snprintf(body, n, "{\"inputs\": [%s]}", x);
    snprintf(path, sizeof path, "/v2/models/%s/infer", model);
    r = req("POST", path, NULL, body, 200);
    const cJSON *o = output_named(t_item(r.json, "outputs"), out);
    assert_non_null(o);
    check_shape("output", t_item(o, "shape"), t_item(t_item(doc, "output"), "shape"));
    check_close("output", o, t_item(doc, "output"), rtol, atol);
    t_resp_free(&r);
    free(body);

    /* loss and gradients, by initializer name */
    char *tg = input_json("target", t_item(doc, "target"), dt);
    n = strlen(x) + strlen(tg) + 128;
    body = malloc(n);
    assert_non_null(body);
    snprintf(body, n, "{\"parameters\": {\"loss\": \"mse\"}, \"inputs\": [%s, %s]}", x, tg);
    r = req("POST", path, NULL, body, 200);
    const cJSON *outs = t_item(r.json, "outputs");
    check_close("loss", output_named(outs, "loss"), t_item(doc, "expected_loss"), rtol, atol);
    char gname[200];
    snprintf(gname, sizeof gname, "grad:%s", in);
    const cJSON *gi = output_named(outs, gname);
    assert_non_null(gi);
    check_shape(gname, t_item(gi, "shape"), t_item(t_item(doc, "grad_input"), "shape"));
    check_close(gname, gi, t_item(doc, "grad_input"), rtol, atol);
    const cJSON *gp;
    int ngrads = 0;
    cJSON_ArrayForEach(gp, t_item(doc, "grad_params"))
    {
        snprintf(gname, sizeof gname, "grad:%s", gp->string);
        const cJSON *g = output_named(outs, gname);
        if (!g)
            fprintf(stderr, "  no output %s in %s\n", gname, r.body);
        assert_non_null(g);
        check_shape(gname, t_item(g, "shape"), t_item(gp, "shape"));
        check_close(gname, g, gp, rtol, atol);
        ngrads++;
    }
    /* outputs: the output, grad:<input>, one per initializer, loss */
    assert_int_equal(cJSON_GetArraySize(outs), ngrads + 3);
    t_resp_free(&r);
    free(body);
    free(tg);
    free(x);
    cJSON_Delete(doc);
}

/* ---- the broken fixtures --------------------------------------------------------- */

static const struct {
    const char *name, *reason;
} broken[] = {
    {"bad_conv", "bad_conv.onnx: node \"/0/Conv\" (Conv, opset 13) is not supported (supported: "
                 "Gemm, MatMul+Add, Relu"},
    {"bad_hardsigmoid", "(HardSigmoid, opset 13) is not supported"},
    {"bad_cycle", "before the node that computes it (nodes out of order, or a cycle)"},
    {"bad_dangling", "reads \"nowhere\", which no node, initializer or graph input defines"},
    {"bad_opset8", "opset 8 of the default domain is not supported (9 to 20)"},
    {"bad_rawlen", "tensor \"w\": raw_data holds 40 bytes but dims [4, 4] of F32 need 64"},
    {"bad_hugedims", "tensor \"w\": dims overflow"},
    {"bad_ext_escape", "external data location \"../../etc/passwd\" must be a file name in "
                       "model_dir"},
    {"bad_two_inputs", "the graph has 2 inputs and 1 outputs (relud serves one of each)"},
    {"bad_gelu_like", "starts a subgraph like torch's GELU"},
    {"bad_reshape", "is not a flatten"},
    {"bad_truncated", "bad_truncated.onnx: not a protobuf message (truncated"},
};
#define NBROKEN (sizeof broken / sizeof *broken)

static void broken_models_unavailable(void **state)
{
    (void)state;
    struct t_resp r = req("POST", "/v2/repository/index", AUTH, NULL, 200);
    for (size_t i = 0; i < NBROKEN; i++) {
        const cJSON *e = t_index_entry(r.json, broken[i].name);
        assert_non_null(e);
        assert_string_equal(t_item(e, "state")->valuestring, "UNAVAILABLE");
        const char *why = t_item(e, "reason")->valuestring;
        if (!strstr(why, broken[i].reason))
            fprintf(stderr, "%s: reason \"%s\" lacks \"%s\"\n", broken[i].name, why,
                    broken[i].reason);
        assert_non_null(strstr(why, broken[i].reason));
    }
    t_resp_free(&r);
    /* and requests for one get the reason with a 503 */
    r = req("POST", "/v2/models/bad_conv/infer", NULL,
            "{\"inputs\": [{\"name\": \"x\", \"shape\": [1, 2, 4], \"datatype\": \"FP32\", "
            "\"data\": [1, 2, 3, 4, 5, 6, 7, 8]}]}",
            503);
    t_check_error(&r, "is unavailable: bad_conv.onnx: node \"/0/Conv\"");
    t_resp_free(&r);
}

/* ---- the graph's input contract ------------------------------------------------ */

static void input_contract(void **state)
{
    (void)state;
    req_error("POST", "/v2/models/mlp_a_o13/infer",
              "{\"inputs\": [{\"name\": \"input\", \"shape\": [1, 6], \"datatype\": \"FP32\", "
              "\"data\": [1, 2, 3, 4, 5, 6]}]}",
              400, "unexpected input \"input\" (model mlp_a_o13 takes \"x\"");
    req_error("POST", "/v2/models/mlp_a_o13/infer",
              "{\"inputs\": [{\"name\": \"x\", \"shape\": [1, 5], \"datatype\": \"FP32\", "
              "\"data\": [1, 2, 3, 4, 5]}]}",
              400, "inputs[0] (x): shape [1, 5] does not fit the model's input \"x\" [-1, 6]");
    req_error("POST", "/v2/models/flat4d_o13/infer",
              "{\"inputs\": [{\"name\": \"x\", \"shape\": [1, 12], \"datatype\": \"FP32\", "
              "\"data\": [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12]}]}",
              400, "does not fit the model's input \"x\" [-1, 1, 3, 4]");
    /* outputs are named by the graph; "output" is not one */
    req_error("POST", "/v2/models/mlp_a_o13/infer",
              "{\"inputs\": [{\"name\": \"x\", \"shape\": [1, 6], \"datatype\": \"FP32\", "
              "\"data\": [1, 2, 3, 4, 5, 6]}], \"outputs\": [{\"name\": \"output\"}]}",
              400, "unknown output \"output\"");
    /* binary data in and out, a flattened input: rows of [1, 3, 4] */
    float xs[2 * 12];
    for (int i = 0; i < 24; i++)
        xs[i] = (float)(i % 7) * 0.25f - 0.5f;
    char hdr[512];
    int hl = snprintf(hdr, sizeof hdr,
                      "{\"inputs\": [{\"name\": \"x\", \"shape\": [2, 1, 3, 4], \"datatype\": "
                      "\"FP32\", \"parameters\": {\"binary_data_size\": 96}}], \"outputs\": "
                      "[{\"name\": \"y\", \"parameters\": {\"binary_data\": true}}]}");
    char body[1024];
    memcpy(body, hdr, (size_t)hl);
    memcpy(body + hl, xs, sizeof xs);
    char url[256], h[64];
    snprintf(url, sizeof url, "%s/v2/models/flat4d_o13/infer", d.url);
    snprintf(h, sizeof h, "Inference-Header-Content-Length: %d", hl);
    const char *hdrs[] = {h, NULL};
    struct t_resp r;
    assert_int_equal(t_http("POST", url, body, (size_t)hl + sizeof xs, hdrs, &r), 0);
    assert_int_equal(r.status, 200);
    char v[32];
    assert_non_null(t_resp_header(&r, "Inference-Header-Content-Length", v, sizeof v));
    size_t jl = (size_t)atol(v);
    assert_int_equal(r.len, jl + 2 * 4 * sizeof(float)); /* [2, 4] floats */
    t_resp_free(&r);
}

/* /v1/forward serves an ONNX model by name (its input flattened the same way), with the
 * gradient of the input in the shape it was sent. */
static void v1_forward_by_name(void **state)
{
    (void)state;
    struct t_resp r =
        req("POST", "/v1/forward", NULL,
            "{\"model\": \"flat4d_o13\", \"gradients\": true, \"input\": [[[[1, -2, 3, -4], "
            "[0.5, 0, -0.5, 1], [2, 2, -2, 0.25]]]]}",
            200);
    const cJSON *out = t_item(r.json, "output");
    assert_int_equal(cJSON_GetArraySize(out), 1);
    assert_int_equal(cJSON_GetArraySize(cJSON_GetArrayItem(out, 0)), 4);
    const cJSON *gi = t_item(t_item(r.json, "gradients"), "input");
    /* [1, 1, 3, 4], nested as sent */
    assert_int_equal(cJSON_GetArraySize(gi), 1);
    assert_int_equal(cJSON_GetArraySize(cJSON_GetArrayItem(gi, 0)), 1);
    assert_int_equal(cJSON_GetArraySize(cJSON_GetArrayItem(cJSON_GetArrayItem(gi, 0), 0)), 3);
    t_resp_free(&r);
}

static void config_and_statistics(void **state)
{
    (void)state;
    struct t_resp r = req("GET", "/v2/models/seq3d_o13/config", NULL, NULL, 200);
    assert_string_equal(t_item(r.json, "platform")->valuestring, "onnxruntime_onnx");
    const cJSON *in = cJSON_GetArrayItem(t_item(r.json, "input"), 0);
    assert_string_equal(t_item(in, "name")->valuestring, "x");
    cJSON *want = cJSON_Parse("[-1, 5, 4]");
    check_shape("config input", t_item(in, "dims"), want);
    cJSON_Delete(want);
    t_resp_free(&r);
    for (int i = 0; i < 3; i++) {
        r = req("POST", "/v2/models/simple_nn_onnx/infer", NULL,
                "{\"inputs\": [{\"name\": \"x\", \"shape\": [2, 10], \"datatype\": \"FP32\", "
                "\"data\": [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10]}]}",
                200);
        t_resp_free(&r);
    }
    r = req("GET", "/v2/models/simple_nn_onnx/stats", NULL, NULL, 200);
    const cJSON *ms = cJSON_GetArrayItem(t_item(r.json, "model_stats"), 0);
    const cJSON *succ = t_item(t_item(ms, "inference_stats"), "success");
    assert_true(t_item(succ, "count")->valuedouble >= 3);
    assert_true(t_item(ms, "inference_count")->valuedouble >= 6);
    t_resp_free(&r);
}

/* Copies src (in dir) over dst.onnx by a temp file and rename, as a deploy would. */
static void install_file(const char *src, const char *dst)
{
    char p[512];
    snprintf(p, sizeof p, "%s/%s", dir, src);
    size_t len;
    char *data = t_read_file(p, &len);
    assert_non_null(data);
    t_write_file(dir, ".swap.tmp", data, len);
    free(data);
    char a[512], b[512];
    snprintf(a, sizeof a, "%s/.swap.tmp", dir);
    snprintf(b, sizeof b, "%s/%s", dir, dst);
    assert_int_equal(rename(a, b), 0);
}

static long out_features(const char *model)
{
    char path[256];
    snprintf(path, sizeof path, "/v2/models/%s", model);
    struct t_resp r = req("GET", path, NULL, NULL, 200);
    const cJSON *sh = t_item(cJSON_GetArrayItem(t_item(r.json, "outputs"), 0), "shape");
    long f = (long)cJSON_GetArrayItem(sh, cJSON_GetArraySize(sh) - 1)->valuedouble;
    t_resp_free(&r);
    return f;
}

static void hot_swap(void **state)
{
    (void)state;
    struct t_resp r;
    req_error("POST", "/v2/repository/models/swap/load", NULL, 404, "no file");
    install_file("mlp_a_o13.onnx", "swap.onnx");
    r = req("POST", "/v2/repository/models/swap/load", AUTH, NULL, 200);
    t_resp_free(&r);
    assert_int_equal(out_features("swap"), 4);
    install_file("mlp_b_o13.onnx", "swap.onnx");
    r = req("POST", "/v2/repository/models/swap/load", AUTH, NULL, 200);
    t_resp_free(&r);
    assert_int_equal(out_features("swap"), 5);
    /* a broken replacement leaves the working version serving */
    install_file("bad_conv.onnx", "swap.onnx");
    req_error("POST", "/v2/repository/models/swap/load", NULL, 400, "swap.onnx: node");
    assert_int_equal(out_features("swap"), 5);
    install_file("mlp_b_o13.onnx", "swap.onnx");
    r = req("POST", "/v2/repository/models/swap/unload", AUTH, NULL, 200);
    t_resp_free(&r);
    r = req("GET", "/v2/models/swap/ready", NULL, NULL, 503);
    t_resp_free(&r);
    r = req("POST", "/v2/repository/models/swap/load", AUTH, NULL, 200);
    t_resp_free(&r);
    /* PUT of a JSON model over an ONNX one is refused; DELETE removes NAME.onnx */
    req_error("PUT", "/v1/models/swap", "{\"layers\": [{\"type\": \"relu\"}]}", 400,
              "model \"swap\" is swap.onnx in model_dir");
    r = req("DELETE", "/v1/models/swap", AUTH, NULL, 200);
    t_resp_free(&r);
    assert_false(t_file_exists(dir, "swap.onnx"));
    r = req("GET", "/v2/models/swap", NULL, NULL, 404);
    t_resp_free(&r);
}

static void json_beside_onnx(void **state)
{
    (void)state;
    t_write_str(dir, "mlp_d_o17.json", "{\"layers\": [{\"type\": \"relu\"}]}");
    /* the serving version stays; the load says why it failed */
    req_error("POST", "/v2/repository/models/mlp_d_o17/load", NULL, 400,
              "mlp_d_o17.onnx: mlp_d_o17.json is in model_dir too: one model, one file");
    struct t_resp r = req("GET", "/v2/models/mlp_d_o17/ready", NULL, NULL, 200);
    t_resp_free(&r);
    char p[512];
    snprintf(p, sizeof p, "%s/mlp_d_o17.json", dir);
    assert_int_equal(unlink(p), 0);
}

static void strict_models_stops_start(void **state)
{
    (void)state;
    struct t_daemon d2;
    const char *args[] = {"--model-dir", dir, "--strict-models", NULL};
    assert_int_equal(t_daemon_start(&d2, args, NULL), -1);
    char *log = t_daemon_log(&d2);
    assert_non_null(log);
    if (!strstr(log, "strict_models: ") || !strstr(log, "/bad_"))
        fprintf(stderr, "strict start log:\n%s\n", log);
    assert_non_null(strstr(log, "strict_models: "));
    assert_non_null(strstr(log, ".onnx: "));
    free(log);
    unlink(d2.log_path);
}

/* ---- main ------------------------------------------------------------------------ */

static int setup(void **state)
{
    (void)state;
    if (t_tmp_copy(dir, sizeof dir, "test-onnx", "tests/fixtures/onnx"))
        return -1;
    char src[512];
    snprintf(src, sizeof src, "%s/config/models/simple_nn_onnx.onnx", t_root());
    size_t len;
    char *data = t_read_file(src, &len);
    if (!data)
        return -1;
    t_write_file(dir, "simple_nn_onnx.onnx", data, len);
    free(data);
    const char *args[] = {"--model-dir", dir, "--admin-token", TOKEN, NULL};
    return t_daemon_start(&d, args, NULL);
}

static int teardown(void **state)
{
    (void)state;
    int rc = t_daemon_stop(&d, 0, 30) == 0 ? 0 : -1;
    if (!rc)
        unlink(d.log_path);
    t_rm_dir(dir);
    return rc;
}

static int by_name(const void *a, const void *b)
{
    return strcmp(((const struct gcase *)a)->name, ((const struct gcase *)b)->name);
}

int main(void)
{
    static const struct CMUnitTest fixed[] = {
        cmocka_unit_test(broken_models_unavailable),
        cmocka_unit_test(input_contract),
        cmocka_unit_test(v1_forward_by_name),
        cmocka_unit_test(config_and_statistics),
        cmocka_unit_test(hot_swap),
        cmocka_unit_test(json_beside_onnx),
        cmocka_unit_test(strict_models_stops_start),
    };
    size_t nfixed = sizeof fixed / sizeof *fixed, n = 0, cap = 64;
    struct gcase *cases = calloc(cap, sizeof *cases);
    DIR *dd = opendir("tests/golden/onnx");
    if (!cases || !dd) {
        fprintf(stderr, "test_onnx: tests/golden/onnx not found (run from the repository)\n");
        return 1;
    }
    struct dirent *de;
    while ((de = readdir(dd))) {
        size_t l = strlen(de->d_name);
        if (l < 6 || strcmp(de->d_name + l - 5, ".json"))
            continue;
        if (n == cap && !(cases = realloc(cases, (cap *= 2) * sizeof *cases)))
            return 1;
        snprintf(cases[n].path, sizeof cases[n].path, "tests/golden/onnx/%s", de->d_name);
        snprintf(cases[n].name, sizeof cases[n].name, "golden %.*s", (int)(l - 5), de->d_name);
        n++;
    }
    closedir(dd);
    qsort(cases, n, sizeof *cases, by_name);
    struct CMUnitTest *tests = calloc(n + nfixed + 1, sizeof *tests);
    if (!tests)
        return 1;
    for (size_t i = 0; i < n; i++) {
        tests[i].name = cases[i].name;
        tests[i].test_func = run_case;
        tests[i].initial_state = &cases[i];
    }
    memcpy(tests + n, fixed, sizeof fixed);
    int rc = _cmocka_run_group_tests("onnx", tests, n + nfixed, setup, teardown);
    free(tests);
    free(cases);
    return rc;
}
