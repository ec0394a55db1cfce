/* The console's routes against the real daemon: GET / and /docs (the page), /console/{name}
 * (each file of web/console byte for byte, with its Content-Type), /openapi.json; ETag and
 * If-None-Match (304, weak tags, lists, *), Cache-Control, HEAD, the page's security
 * headers, an unknown file. And GET /v1/models/{name}: each bundled model described, its
 * parameter counts adding up, 404 and 503. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "tests/common/fs.h"
#include "tests/common/http.h"

#define TOKEN "s3cret"
static struct t_daemon d;
static char model_dir[64];

static int setup(void **state)
{
    (void)state;
    if (t_tmp_copy(model_dir, sizeof model_dir, "console", "config/models"))
        return -1;
    const char *args[] = {"--model-dir", model_dir, "--admin-token", TOKEN, NULL};
    return t_daemon_start(&d, args, NULL);
}

static int teardown(void **state)
{
    (void)state;
    int rc = t_daemon_stop(&d, 0, 30) == 0 ? 0 : -1;
    t_rm_dir(model_dir);
    return rc;
}

static struct t_resp get(const char *path, const char *const *headers, long status)
{
    char url[512];
    snprintf(url, sizeof url, "%s%s", d.url, path);
    struct t_resp r;
    assert_int_equal(t_http("GET", url, NULL, 0, headers, &r), 0);
    if (r.status != status)
        fprintf(stderr, "GET %s: %ld %s\n", path, r.status, r.body);
    assert_int_equal(r.status, status);
    return r;
}

/* Each file: its bytes as in web/, its Content-Type, an ETag, Cache-Control: no-cache. */
static void files_served_as_they_are(void **state)
{
    (void)state;
    static const struct {
        const char *path, *file, *ctype;
    } files[] = {
        {"/", "web/index.html", "text/html; charset=utf-8"},
        {"/docs", "web/index.html", "text/html; charset=utf-8"},
        {"/openapi.json", "web/openapi.json", "application/json"},
        {"/console/app.js", "web/console/app.js", "text/javascript; charset=utf-8"},
        {"/console/plot.js", "web/console/plot.js", "text/javascript; charset=utf-8"},
        {"/console/style.css", "web/console/style.css", "text/css; charset=utf-8"},
        {"/console/favicon.svg", "web/console/favicon.svg", "image/svg+xml"},
    };
    for (size_t i = 0; i < sizeof files / sizeof *files; i++) {
        char path[512], buf[128];
        snprintf(path, sizeof path, "%s/%s", t_root(), files[i].file);
        size_t len;
        char *want = t_read_file(path, &len);
        assert_non_null(want);
        struct t_resp r = get(files[i].path, NULL, 200);
        if (r.len != len || memcmp(r.body, want, len))
            fail_msg("%s: not the bytes of %s (rebuild relud?)", files[i].path, files[i].file);
        assert_string_equal(t_resp_header(&r, "Content-Type", buf, sizeof buf), files[i].ctype);
        assert_string_equal(t_resp_header(&r, "Cache-Control", buf, sizeof buf), "no-cache");
        assert_string_equal(t_resp_header(&r, "X-Content-Type-Options", buf, sizeof buf),
                            "nosniff");
        assert_non_null(t_resp_header(&r, "ETag", buf, sizeof buf));
        assert_int_equal(buf[0], '"');
        free(want);
        t_resp_free(&r);
    }
}

/* The page may run only its own scripts and talk only to this relud. */
static void page_security_headers(void **state)
{
    (void)state;
    char buf[128];
    struct t_resp r = get("/", NULL, 200);
    const char *csp = t_resp_header(&r, "Content-Security-Policy", buf, sizeof buf);
    assert_non_null(csp);
    assert_non_null(strstr(csp, "default-src 'self'"));
    assert_null(strstr(csp, "unsafe-inline"));
    /* and the page has no inline script or style that policy would block */
    assert_null(strstr(r.body, "<script>"));
    assert_null(strstr(r.body, "<style"));
    assert_null(strstr(r.body, " style="));
    assert_null(strstr(r.body, " onclick="));
    t_resp_free(&r);
}

static void etag_revalidation(void **state)
{
    (void)state;
    char etag[64], h[160], buf[64];
    struct t_resp r = get("/console/app.js", NULL, 200);
    assert_non_null(t_resp_header(&r, "ETag", etag, sizeof etag));
    t_resp_free(&r);
    /* the same tag, a weak one, one in a list, and *: 304 without a body, with the ETag */
    const char *fmts[] = {"If-None-Match: %s", "If-None-Match: W/%s",
                          "If-None-Match: \"other\", %s", "If-None-Match: *"};
    for (size_t i = 0; i < sizeof fmts / sizeof *fmts; i++) {
        snprintf(h, sizeof h, fmts[i], etag);
        const char *hs[] = {h, NULL};
        r = get("/console/app.js", hs, 304);
        assert_int_equal(r.len, 0);
        assert_string_equal(t_resp_header(&r, "ETag", buf, sizeof buf), etag);
        t_resp_free(&r);
    }
    /* another file's tag, or an old one: the file */
    struct t_resp css = get("/console/style.css", NULL, 200);
    char other[64];
    assert_non_null(t_resp_header(&css, "ETag", other, sizeof other));
    assert_string_not_equal(other, etag);
    t_resp_free(&css);
    snprintf(h, sizeof h, "If-None-Match: %s", other);
    const char *hs[] = {h, NULL};
    r = get("/console/app.js", hs, 200);
    assert_true(r.len > 1000);
    t_resp_free(&r);
    const char *old[] = {"If-None-Match: \"0000000000000000\"", NULL};
    r = get("/", old, 200);
    t_resp_free(&r);
}

static void head_has_no_body(void **state)
{
    (void)state;
    char url[256], buf[64];
    snprintf(url, sizeof url, "%s/console/plot.js", d.url);
    struct t_resp r;
    assert_int_equal(t_http("HEAD", url, NULL, 0, NULL, &r), 0);
    assert_int_equal(r.status, 200);
    assert_int_equal(r.len, 0);
    assert_non_null(t_resp_header(&r, "ETag", buf, sizeof buf));
    t_resp_free(&r);
}

static void unknown_file_404(void **state)
{
    (void)state;
    struct t_resp r = get("/console/secrets.txt", NULL, 404);
    t_check_error(&r, "no such console file: secrets.txt");
    t_resp_free(&r);
    r = get("/console/..%2Fopenapi.json", NULL, 404);
    t_resp_free(&r);
    /* the page and the document are not files under /console/ */
    r = get("/console/index.html", NULL, 404);
    t_resp_free(&r);
    r = get("/console/openapi.json", NULL, 404);
    t_resp_free(&r);
}

/* The parameters of every layer add up to the model's; shapes make the counts. */
static void model_described(void **state)
{
    (void)state;
    struct t_resp r = get("/v1/models/mnist_mlp", NULL, 200);
    assert_non_null(r.json);
    assert_string_equal(t_item(r.json, "name")->valuestring, "mnist_mlp");
    assert_int_equal(t_item(r.json, "in_features")->valueint, 784);
    assert_int_equal(t_item(r.json, "out_features")->valueint, 10);
    assert_int_equal(t_item(r.json, "max_batch_size")->valueint, 64);
    assert_non_null(t_item(r.json, "dynamic_batching"));
    const cJSON *layers = t_item(r.json, "layers");
    assert_int_equal(cJSON_GetArraySize(layers), 5);
    static const char *const types[] = {"linear", "relu", "linear", "relu", "linear"};
    static const int outs[] = {128, 128, 64, 64, 10};
    long total = 0;
    int i = 0;
    for (const cJSON *l = layers->child; l; l = l->next, i++) {
        assert_string_equal(t_item(l, "type")->valuestring, types[i]);
        assert_int_equal(t_item(l, "out_features")->valueint, outs[i]);
        const cJSON *ws = t_item(l, "weight_shape"), *bs = t_item(l, "bias_shape");
        long n = 0;
        if (cJSON_IsArray(ws))
            n += (long)cJSON_GetArrayItem(ws, 0)->valuedouble *
                 (long)cJSON_GetArrayItem(ws, 1)->valuedouble;
        if (cJSON_IsArray(bs))
            n += (long)cJSON_GetArrayItem(bs, 0)->valuedouble;
        assert_int_equal((long)t_item(l, "parameters")->valuedouble, n);
        total += n;
    }
    assert_int_equal((long)t_item(r.json, "parameters")->valuedouble, total);
    assert_int_equal(total, 784 * 128 + 128 + 128 * 64 + 64 + 64 * 10 + 10);
    t_resp_free(&r);
}

/* A layer's scalar parameters, torch's defaults or the file's. */
static void layer_params_described(void **state)
{
    (void)state;
    const char *auth[] = {"Authorization: Bearer " TOKEN, NULL};
    char url[256];
    snprintf(url, sizeof url, "%s/v1/models/leaky", d.url);
    const char *body = "{\"layers\": [{\"type\": \"LeakyReLU\", \"negative_slope\": 0.2}, "
                       "{\"type\": \"gelu\", \"approximate\": \"tanh\"}, {\"type\": \"softmax\"}, "
                       "{\"type\": \"elu\"}]}";
    struct t_resp r;
    assert_int_equal(t_http("PUT", url, body, strlen(body), auth, &r), 0);
    assert_int_equal(r.status, 201);
    t_resp_free(&r);
    r = get("/v1/models/leaky", NULL, 200);
    const cJSON *l = t_item(r.json, "layers");
    const cJSON *p0 = t_item(cJSON_GetArrayItem(l, 0), "params");
    assert_string_equal(t_item(cJSON_GetArrayItem(l, 0), "type")->valuestring, "leaky_relu");
    assert_true(t_item(p0, "negative_slope")->valuedouble == 0.2);
    assert_string_equal(
        t_item(t_item(cJSON_GetArrayItem(l, 1), "params"), "approximate")->valuestring, "tanh");
    assert_int_equal(t_item(t_item(cJSON_GetArrayItem(l, 2), "params"), "dim")->valueint, -1);
    assert_true(t_item(t_item(cJSON_GetArrayItem(l, 3), "params"), "alpha")->valuedouble == 1);
    assert_true(cJSON_IsNull(t_item(r.json, "in_features")));
    assert_int_equal((long)t_item(r.json, "parameters")->valuedouble, 0);
    t_resp_free(&r);
    assert_int_equal(t_http("DELETE", url, NULL, 0, auth, &r), 0);
    assert_int_equal(r.status, 200);
    t_resp_free(&r);
}

static void model_described_errors(void **state)
{
    (void)state;
    struct t_resp r = get("/v1/models/resnet50", NULL, 404);
    t_check_error(&r, "unknown model \"resnet50\"");
    t_resp_free(&r);
    const char *auth[] = {"Authorization: Bearer " TOKEN, NULL};
    char url[256];
    snprintf(url, sizeof url, "%s/v2/repository/models/simple_nn/unload", d.url);
    assert_int_equal(t_http("POST", url, NULL, 0, auth, &r), 0);
    assert_int_equal(r.status, 200);
    t_resp_free(&r);
    r = get("/v1/models/simple_nn", NULL, 503);
    t_check_error(&r, "unloaded");
    t_resp_free(&r);
    snprintf(url, sizeof url, "%s/v2/repository/models/simple_nn/load", d.url);
    assert_int_equal(t_http("POST", url, NULL, 0, auth, &r), 0);
    assert_int_equal(r.status, 200);
    t_resp_free(&r);
    r = get("/v1/models/simple_nn", NULL, 200);
    t_resp_free(&r);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(files_served_as_they_are), cmocka_unit_test(page_security_headers),
        cmocka_unit_test(etag_revalidation),        cmocka_unit_test(head_has_no_body),
        cmocka_unit_test(unknown_file_404),         cmocka_unit_test(model_described),
        cmocka_unit_test(layer_params_described),   cmocka_unit_test(model_described_errors),
    };
    return cmocka_run_group_tests_name("console routes and GET /v1/models/{name}", tests, setup,
                                       teardown);
}
