/* POST /v1/forward against the real daemon: results, tensor forms, gradients, loss,
 * clipping, stats, numbers, and every error class with its message. */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "tests/common/http.h"

static struct t_daemon d;

static int setup(void **state)
{
    (void)state;
    const char *args[] = {"--model-dir", "config/models", "--max-workspace-bytes", "64MiB",
                          "--max-body-bytes", "1MiB", NULL};
    return t_daemon_start(&d, args, NULL);
}

static int teardown(void **state)
{
    (void)state;
    return t_daemon_stop(&d, 0, 30) == 0 ? 0 : -1;
}

/* POSTs body to /v1/forward and checks the status; returns the response. */
static struct t_resp forward(const char *body, long status)
{
    struct t_resp r;
    assert_int_equal(t_post(&d, "/v1/forward", body, &r), 0);
    if (r.status != status)
        fprintf(stderr, "body: %s\nresponse %ld: %s\n", body, r.status, r.body);
    assert_int_equal(r.status, status);
    return r;
}

/* Exact text comparison of the response body. */
static void expect_body(const char *req, long status, const char *want)
{
    struct t_resp r = forward(req, status);
    if (strcmp(r.body, want))
        fprintf(stderr, "want: %s\ngot:  %s\n", want, r.body);
    assert_string_equal(r.body, want);
    t_resp_free(&r);
}

/* The error message must contain `part`, in {"error": ...} with JSON content type. */
static void expect_error(const char *req, long status, const char *part)
{
    struct t_resp r = forward(req, status);
    t_check_error(&r, part);
    t_resp_free(&r);
}

static void relu_guide(void **state)
{
    (void)state;
    expect_body("{\"input\": [-2, -1, 0, 1, 2], \"layers\": [{\"type\": \"relu\"}]}", 200,
                "{\"output\":[0,0,0,1,2]}");
    /* torch class names are aliases */
    expect_body("{\"input\": [-2, -1, 0, 1, 2], \"layers\": [{\"type\": \"ReLU\"}]}", 200,
                "{\"output\":[0,0,0,1,2]}");
}

static void tensor_forms(void **state)
{
    (void)state;
    /* the reply uses the form of the input */
    expect_body("{\"input\": {\"shape\": [2, 2], \"data\": [1, -2, 3, -4]}, \"layers\": "
                "[{\"type\": \"relu\"}]}",
                200, "{\"output\":{\"shape\":[2,2],\"data\":[1,0,3,0]}}");
    expect_body("{\"input\": [[1, -2], [3, -4]], \"layers\": [{\"type\": \"relu\"}]}", 200,
                "{\"output\":[[1,0],[3,0]]}");
    expect_body("{\"input\": [[[0.5]]], \"layers\": [{\"type\": \"leaky_relu\", "
                "\"negative_slope\": 0.2}]}",
                200, "{\"output\":[[[0.5]]]}");
}

static void numbers_shortest(void **state)
{
    (void)state;
    /* float32 0.1 prints as 0.1, not 0.10000000149011612 */
    expect_body("{\"input\": [0.1, 2, -0.0, 1e-45], \"layers\": [{\"type\": \"hardtanh\", "
                "\"min_val\": -10, \"max_val\": 10}]}",
                200, "{\"output\":[0.1,2,-0,1e-45]}");
    expect_body("{\"dtype\": \"float64\", \"input\": [0.1, 0.30000000000000004], \"layers\": "
                "[{\"type\": \"hardtanh\", \"min_val\": -10, \"max_val\": 10}]}",
                200, "{\"output\":[0.1,0.30000000000000004]}");
}

static const char *simple_nn_layers =
    "[{\"type\": \"linear\", \"weight\": [[1, 0], [0, 1], [1, 1]], \"bias\": [0, 0, -5]}, "
    "{\"type\": \"relu\"}]";

static void linear_relu_gradients(void **state)
{
    (void)state;
    char body[1024];
    /* y = relu(W x + b): x = [1, 2] -> [1, 2, -2] -> [1, 2, 0]; sum().backward() */
    snprintf(body, sizeof body, "{\"input\": [[1, 2]], \"layers\": %s, \"gradients\": true}",
             simple_nn_layers);
    expect_body(body, 200,
                "{\"output\":[[1,2,0]],\"gradients\":{\"input\":[[1,1]],\"layers\":[{\"weight\":"
                "[[1,2],[1,2],[0,0]],\"bias\":[1,1,0]},{}]}}");
    /* grad_output */
    snprintf(body, sizeof body,
             "{\"input\": [[1, 2]], \"layers\": %s, \"grad_output\": [[0.5, -1, 3]]}",
             simple_nn_layers);
    expect_body(body, 200,
                "{\"output\":[[1,2,0]],\"gradients\":{\"input\":[[0.5,-1]],\"layers\":[{\"weight\":"
                "[[0.5,1],[-1,-2],[0,0]],\"bias\":[0.5,-1,0]},{}]}}");
    /* linear without bias reports "bias": null */
    expect_body("{\"input\": [3], \"layers\": [{\"type\": \"linear\", \"weight\": [[2]]}], "
                "\"gradients\": true}",
                200,
                "{\"output\":[6],\"gradients\":{\"input\":[2],\"layers\":[{\"weight\":[[3]],"
                "\"bias\":null}]}}");
    /* prelu reports its weight gradient */
    expect_body("{\"input\": [-2, 3], \"layers\": [{\"type\": \"prelu\", \"weight\": [0.25]}], "
                "\"gradients\": true}",
                200,
                "{\"output\":[-0.5,3],\"gradients\":{\"input\":[0.25,1],\"layers\":[{\"weight\":"
                "[-2]}]}}");
}

static void loss_and_clip(void **state)
{
    (void)state;
    char body[1024];
    /* mse mean: out [1, 2, 0] vs [0, 2, 1] -> (1 + 0 + 1) / 3 */
    snprintf(body, sizeof body,
             "{\"input\": [[1, 2]], \"layers\": %s, \"loss\": {\"type\": \"mse\", \"target\": "
             "[[0, 2, 1]]}}",
             simple_nn_layers);
    struct t_resp r = forward(body, 200);
    const cJSON *loss = cJSON_GetObjectItemCaseSensitive(r.json, "loss");
    assert_true(cJSON_IsNumber(loss));
    assert_true(fabs(loss->valuedouble - 2.0 / 3.0) < 1e-6);
    t_resp_free(&r);
    /* cross_entropy with class targets, sum */
    snprintf(body, sizeof body,
             "{\"input\": [[0, 0]], \"layers\": [{\"type\": \"linear\", \"weight\": [[0, 0], [0, "
             "0]]}], \"loss\": {\"type\": \"cross_entropy\", \"target\": [1], \"reduction\": "
             "\"sum\"}}");
    r = forward(body, 200);
    loss = cJSON_GetObjectItemCaseSensitive(r.json, "loss");
    assert_true(fabs(loss->valuedouble - log(2.0)) < 1e-6);
    t_resp_free(&r);
    /* clip_grad_norm reports the total norm before clipping and scales the gradients
     * (torch: weight 0.948683, bias 0.31622767, total_norm 3.1622777) */
    r = forward("{\"input\": [3], \"layers\": [{\"type\": \"linear\", \"weight\": [[2]], "
                "\"bias\": [0]}], \"gradients\": true, \"clip_grad_norm\": 1}",
                200);
    const cJSON *g = cJSON_GetObjectItemCaseSensitive(r.json, "gradients");
    const cJSON *l0 = cJSON_GetArrayItem(cJSON_GetObjectItemCaseSensitive(g, "layers"), 0);
    double w = cJSON_GetArrayItem(cJSON_GetArrayItem(cJSON_GetObjectItemCaseSensitive(l0, "weight"), 0), 0)->valuedouble;
    double bb = cJSON_GetArrayItem(cJSON_GetObjectItemCaseSensitive(l0, "bias"), 0)->valuedouble;
    double tn = cJSON_GetObjectItemCaseSensitive(g, "total_norm")->valuedouble;
    assert_true(fabs(w - 0.948683) < 1e-6 && fabs(bb - 0.31622767) < 1e-7 && fabs(tn - 3.1622777) < 1e-6);
    /* the input gradient is not clipped */
    assert_int_equal(cJSON_GetArrayItem(cJSON_GetObjectItemCaseSensitive(g, "input"), 0)->valueint, 2);
    t_resp_free(&r);
}

static void stats_dead_units(void **state)
{
    (void)state;
    struct t_resp r = forward("{\"input\": [[1, -1, 0], [2, -3, 0]], \"layers\": [{\"type\": "
                              "\"relu\"}], \"stats\": true}",
                              200);
    const cJSON *l0 = cJSON_GetArrayItem(
        cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(r.json, "stats"), "layers"),
        0);
    assert_non_null(l0);
    assert_string_equal(cJSON_GetObjectItemCaseSensitive(l0, "type")->valuestring, "relu");
    double zf = cJSON_GetObjectItemCaseSensitive(l0, "zero_fraction")->valuedouble;
    assert_true(fabs(zf - 4.0 / 6.0) < 1e-12);
    const cJSON *dead = cJSON_GetObjectItemCaseSensitive(l0, "dead_units");
    assert_int_equal(cJSON_GetArraySize(dead), 2);
    assert_int_equal(cJSON_GetArrayItem(dead, 0)->valueint, 1);
    assert_int_equal(cJSON_GetArrayItem(dead, 1)->valueint, 2);
    t_resp_free(&r);
}

static void model_by_name(void **state)
{
    (void)state;
    struct t_resp r = forward("{\"model\": \"simple_nn\", \"input\": [[1, 2, 3, 4, 5, 6, 7, 8, 9, "
                              "10]]}",
                              200);
    const cJSON *out = cJSON_GetObjectItemCaseSensitive(r.json, "output");
    assert_int_equal(cJSON_GetArraySize(cJSON_GetArrayItem(out, 0)), 5);
    t_resp_free(&r);
    expect_error("{\"model\": \"no_such_model\", \"input\": [1]}", 404, "no_such_model");
    expect_error("{\"model\": \"simple_nn\", \"input\": [[1, 2]]}", 400, "layers[0] (linear)");
}

static void errors_400(void **state)
{
    (void)state;
    expect_error("{\"input\": [1], \"layers\": [{\"type\": \"leaky_relu\", \"negative_slop\": 0.2}]}",
                 400, "layers[0]: unknown field \"negative_slop\" for leaky_relu (known: type, "
                      "negative_slope)");
    expect_error("{\"input\": [1], \"layers\": [{\"type\": \"relu\"}], \"extra\": 1}", 400,
                 "unknown field \"extra\"");
    expect_error("{\"input\": [1], \"layers\": [{\"type\": \"swish\"}]}", 400, "swish");
    expect_error("{\"input\": [[1, 2, 3]], \"layers\": [{\"type\": \"relu\"}, {\"type\": "
                 "\"relu\"}, {\"type\": \"linear\", \"weight\": [[1, 2], [3, 4]]}]}",
                 400, "layers[2] (linear)");
    expect_error("{\"input\": [1, 2", 400, "invalid JSON");
    expect_error("{\"input\": [[1, 2], [3]], \"layers\": [{\"type\": \"relu\"}]}", 400, "ragged");
    expect_error("{\"input\": [1e39], \"layers\": [{\"type\": \"relu\"}]}", 400,
                 "out of range for float32");
    expect_error("{\"input\": [1], \"layers\": [{\"type\": \"relu\"}], \"grad_output\": [1], "
                 "\"loss\": {\"type\": \"mse\", \"target\": [1]}}",
                 400, "not both");
    expect_error("{\"input\": [1, 2], \"layers\": [{\"type\": \"relu\"}], \"grad_output\": [1]}",
                 400, "grad_output");
    expect_error("{\"input\": [[1, 2]], \"layers\": [{\"type\": \"relu\"}], \"loss\": {\"type\": "
                 "\"cross_entropy\", \"target\": [7]}}",
                 400, "loss.target: class 7 out of range [0, 2)");
    expect_error("{\"input\": [1], \"layers\": [{\"type\": \"relu\"}], \"loss\": {\"type\": "
                 "\"mse\", \"target\": [1], \"delta\": 2}}",
                 400, "loss: unknown field \"delta\" for mse");
    expect_error("{\"input\": [1], \"layers\": []}", 400, "layers");
    expect_error("{\"layers\": [{\"type\": \"relu\"}]}", 400, "input: required");
    expect_error("{\"input\": 3, \"layers\": [{\"type\": \"relu\"}]}", 400, "input: expected a tensor");
    expect_error("[1, 2]", 400, "body: expected a JSON object");
    expect_error("{\"input\": [1], \"layers\": [{\"type\": \"relu\"}], \"dtype\": \"float16\"}", 400,
                 "dtype");
    expect_error("{\"input\": [1], \"layers\": [{\"type\": \"relu\"}], \"clip_grad_norm\": 1}", 400,
                 "clip_grad_norm: needs gradients");
    expect_error("{\"input\": [1, NaN], \"layers\": [{\"type\": \"relu\"}]}", 400,
                 "NaN and Infinity are not JSON numbers");
}

/* Every reply is valid UTF-8, even when a message cuts a user's string in the middle of a
 * character ("a" + 30 x "é" cut at 40 bytes ends on half an "é"). */
static void error_bodies_are_utf8(void **state)
{
    (void)state;
    char body[256] = "{\"input\": [1], \"layers\": [{\"type\": \"a";
    for (int i = 0; i < 30; i++)
        strcat(body, "\xc3\xa9");
    strcat(body, "\"}]}");
    struct t_resp r;
    assert_int_equal(t_post(&d, "/v1/forward", body, &r), 0);
    assert_int_equal(r.status, 400);
    const unsigned char *p = (const unsigned char *)r.body;
    for (size_t i = 0; i < r.len;) { /* every sequence complete */
        size_t k = p[i] < 0x80 ? 1 : p[i] >= 0xf0 ? 4 : p[i] >= 0xe0 ? 3 : p[i] >= 0xc2 ? 2 : 0;
        assert_true(k > 0 && i + k <= r.len);
        for (size_t j = 1; j < k; j++)
            assert_true((p[i + j] & 0xc0) == 0x80);
        i += k;
    }
    assert_non_null(r.json); /* and parses */
    t_resp_free(&r);
}

static void errors_422_413(void **state)
{
    (void)state;
    /* overflow inside the pass: 1e30 * 1e30 is inf in float32 */
    expect_error("{\"input\": [1e30], \"layers\": [{\"type\": \"linear\", \"weight\": [[1e30]]}]}",
                 422, "layers[0] (linear)");
    /* the workspace cap (64 MiB here): 100000 float64 values through 200 layers, backward
       (a forward pass alone keeps two hidden activations whatever the depth) */
    size_t n = 100000, cap = n * 2 + 200 * 20 + 200;
    char *body = malloc(cap), *p = body;
    p += sprintf(p, "{\"dtype\": \"float64\", \"gradients\": true, \"input\": [");
    for (size_t i = 0; i < n; i++)
        p += sprintf(p, i ? ",1" : "1");
    p += sprintf(p, "], \"layers\": [");
    for (int i = 0; i < 200; i++)
        p += sprintf(p, i ? ",{\"type\":\"relu\"}" : "{\"type\":\"relu\"}");
    sprintf(p, "]}");
    expect_error(body, 413, "max_workspace_bytes");
    free(body);
}

static void body_too_large(void **state)
{
    (void)state;
    size_t n = 2 * 1024 * 1024;
    char *big = malloc(n + 1);
    memset(big, ' ', n);
    memcpy(big, "{\"input\": [1]", 13);
    big[n - 1] = '}';
    big[n] = 0;
    struct t_resp r;
    assert_int_equal(t_post(&d, "/v1/forward", big, &r), 0);
    assert_int_equal(r.status, 413);
    assert_non_null(strstr(r.body, "max_body_bytes"));
    t_resp_free(&r);
    /* without a Content-Length (chunked) the cap is found while reading: still a 413 */
    char url[128];
    snprintf(url, sizeof url, "%s/v1/forward", d.url);
    const char *chunked[] = {"Transfer-Encoding: chunked", NULL};
    assert_int_equal(t_http("POST", url, big, n, chunked, &r), 0);
    assert_int_equal(r.status, 413);
    assert_non_null(strstr(r.body, "max_body_bytes"));
    t_resp_free(&r);
    free(big);
    /* the daemon still serves */
    expect_body("{\"input\": [-1], \"layers\": [{\"type\": \"relu\"}]}", 200, "{\"output\":[0]}");
}

static void not_found_and_method(void **state)
{
    (void)state;
    struct t_resp r;
    assert_int_equal(t_get(&d, "/nope", &r), 0);
    assert_int_equal(r.status, 404);
    assert_non_null(cJSON_GetObjectItemCaseSensitive(r.json, "error"));
    t_resp_free(&r);
    assert_int_equal(t_get(&d, "/v1/forward", &r), 0);
    assert_int_equal(r.status, 405);
    char allow[64];
    assert_non_null(t_resp_header(&r, "Allow", allow, sizeof allow));
    assert_string_equal(allow, "POST");
    t_resp_free(&r);
}

static void request_id(void **state)
{
    (void)state;
    char url[128], id[96];
    snprintf(url, sizeof url, "%s/v2/health/live", d.url);
    const char *h[] = {"X-Request-Id: my-trace-42", NULL};
    struct t_resp r;
    assert_int_equal(t_http("GET", url, NULL, 0, h, &r), 0);
    assert_non_null(t_resp_header(&r, "X-Request-Id", id, sizeof id));
    assert_string_equal(id, "my-trace-42");
    t_resp_free(&r);
    assert_int_equal(t_http("GET", url, NULL, 0, NULL, &r), 0);
    assert_non_null(t_resp_header(&r, "X-Request-Id", id, sizeof id));
    assert_int_equal(strlen(id), 16);
    t_resp_free(&r);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(relu_guide),
        cmocka_unit_test(tensor_forms),
        cmocka_unit_test(numbers_shortest),
        cmocka_unit_test(linear_relu_gradients),
        cmocka_unit_test(loss_and_clip),
        cmocka_unit_test(stats_dead_units),
        cmocka_unit_test(model_by_name),
        cmocka_unit_test(errors_400),
        cmocka_unit_test(error_bodies_are_utf8),
        cmocka_unit_test(errors_422_413),
        cmocka_unit_test(body_too_large),
        cmocka_unit_test(not_found_and_method),
        cmocka_unit_test(request_id),
    };
    return cmocka_run_group_tests_name("http_v1", tests, setup, teardown);
}
