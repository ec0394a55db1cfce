/* CORS (cors_origins) and OPTIONS against the real daemon: a preflight from a listed origin
 * gets the permissions, from another origin none; "*" opens every route but the admin ones,
 * which answer only origins listed by name; simple requests carry Allow-Origin and the
 * exposed headers; without the option or an Origin nothing changes; OPTIONS always answers
 * the path's methods, on a connection that stays open. (The browser test of the console
 * calls the API from another origin for real.) */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "tests/common/http.h"

static struct t_daemon d_list, d_any, d_none;

static int group_setup(void **state)
{
    (void)state;
    const char *list[] = {"--model-dir", "config/models", "--cors-origins",
                          "http://app.example, http://localhost:3000", NULL};
    const char *any[] = {"--model-dir",
                         "config/models",
                         "--cors-origins",
                         "*,http://admin.example",
                         "--admin-token",
                         "tok",
                         NULL};
    const char *none[] = {"--model-dir", "config/models", NULL};
    return t_daemon_start(&d_list, list, NULL) || t_daemon_start(&d_any, any, NULL) ||
           t_daemon_start(&d_none, none, NULL);
}

static int group_teardown(void **state)
{
    (void)state;
    t_daemon_stop(&d_list, 0, 10);
    t_daemon_stop(&d_any, 0, 10);
    t_daemon_stop(&d_none, 0, 10);
    return 0;
}

/* method path on d with an Origin (NULL: none) and a preflight method (NULL: none). */
static void req(const struct t_daemon *d, const char *method, const char *path, const char *origin,
                const char *want_method, struct t_resp *r)
{
    char url[256], o[160], m[160];
    const char *h[4] = {NULL};
    int n = 0;
    if (origin) {
        snprintf(o, sizeof o, "Origin: %s", origin);
        h[n++] = o;
    }
    if (want_method) {
        snprintf(m, sizeof m, "Access-Control-Request-Method: %s", want_method);
        h[n++] = m;
    }
    snprintf(url, sizeof url, "%s%s", d->url, path);
    assert_int_equal(t_http(method, url, NULL, 0, h, r), 0);
}

static void expect_header(const struct t_resp *r, const char *name, const char *value)
{
    char buf[512];
    const char *v = t_resp_header(r, name, buf, sizeof buf);
    if (!value) {
        if (v)
            fail_msg("%s: unexpected \"%s\"", name, v);
        return;
    }
    if (!v || strcmp(v, value))
        fail_msg("%s: \"%s\", expected \"%s\"", name, v ? v : "(absent)", value);
}

static void preflight_listed_origin(void **state)
{
    (void)state;
    struct t_resp r;
    req(&d_list, "OPTIONS", "/v1/forward", "http://localhost:3000", "POST", &r);
    assert_int_equal(r.status, 204);
    expect_header(&r, "Access-Control-Allow-Origin", "http://localhost:3000");
    expect_header(&r, "Access-Control-Allow-Methods", "POST");
    expect_header(&r, "Vary", "Origin");
    char buf[256];
    const char *ah = t_resp_header(&r, "Access-Control-Allow-Headers", buf, sizeof buf);
    assert_non_null(ah);
    assert_non_null(strstr(ah, "Content-Type"));
    assert_non_null(strstr(ah, "Authorization"));
    assert_non_null(strstr(ah, "Inference-Header-Content-Length"));
    expect_header(&r, "Allow", "POST, OPTIONS");
    expect_header(&r, "Content-Type", NULL);
    t_resp_free(&r);
}

static void preflight_other_origin(void **state)
{
    (void)state;
    struct t_resp r;
    req(&d_list, "OPTIONS", "/v1/forward", "http://evil.example", "POST", &r);
    assert_int_equal(r.status, 204);
    expect_header(&r, "Access-Control-Allow-Origin", NULL);
    expect_header(&r, "Access-Control-Allow-Methods", NULL);
    expect_header(&r, "Allow", "POST, OPTIONS");
    t_resp_free(&r);
    /* a listed origin differing in its port is another origin */
    req(&d_list, "OPTIONS", "/v1/forward", "http://localhost:3001", "POST", &r);
    expect_header(&r, "Access-Control-Allow-Origin", NULL);
    t_resp_free(&r);
}

static void star_opens_all_but_admin(void **state)
{
    (void)state;
    struct t_resp r;
    req(&d_any, "OPTIONS", "/v2/models/simple_nn/infer", "http://anyone.example", "POST", &r);
    expect_header(&r, "Access-Control-Allow-Origin", "*");
    expect_header(&r, "Vary", NULL);
    t_resp_free(&r);
    req(&d_any, "OPTIONS", "/v1/models/simple_nn", "http://anyone.example", "PUT", &r);
    assert_int_equal(r.status, 204);
    expect_header(&r, "Access-Control-Allow-Origin", NULL);
    t_resp_free(&r);
    req(&d_any, "OPTIONS", "/v2/repository/models/simple_nn/load", "http://admin.example", "POST",
        &r);
    expect_header(&r, "Access-Control-Allow-Origin", "http://admin.example");
    t_resp_free(&r);
    /* the admin route's own reply: no Allow-Origin for "*" */
    req(&d_any, "POST", "/v2/repository/models/simple_nn/unload", "http://anyone.example", NULL,
        &r);
    assert_int_equal(r.status, 401);
    expect_header(&r, "Access-Control-Allow-Origin", NULL);
    t_resp_free(&r);
    /* the repository index is open (Triton's clients list it), so "*" reaches it */
    req(&d_any, "POST", "/v2/repository/index", "http://anyone.example", NULL, &r);
    assert_int_equal(r.status, 200);
    expect_header(&r, "Access-Control-Allow-Origin", "*");
    t_resp_free(&r);
}

static void simple_requests_carry_origin(void **state)
{
    (void)state;
    struct t_resp r;
    req(&d_list, "GET", "/v2/models/simple_nn", "http://app.example", NULL, &r);
    assert_int_equal(r.status, 200);
    expect_header(&r, "Access-Control-Allow-Origin", "http://app.example");
    char buf[256];
    const char *ex = t_resp_header(&r, "Access-Control-Expose-Headers", buf, sizeof buf);
    assert_non_null(ex);
    assert_non_null(strstr(ex, "X-Request-Id"));
    assert_non_null(strstr(ex, "Inference-Header-Content-Length"));
    t_resp_free(&r);
    /* errors too: a browser must be able to read the message */
    req(&d_list, "GET", "/v2/models/nope", "http://app.example", NULL, &r);
    assert_int_equal(r.status, 404);
    expect_header(&r, "Access-Control-Allow-Origin", "http://app.example");
    t_resp_free(&r);
    req(&d_list, "GET", "/v2/models/simple_nn", NULL, NULL, &r);
    expect_header(&r, "Access-Control-Allow-Origin", NULL);
    t_resp_free(&r);
}

static void off_by_default(void **state)
{
    (void)state;
    struct t_resp r;
    req(&d_none, "OPTIONS", "/v1/forward", "http://app.example", "POST", &r);
    assert_int_equal(r.status, 204);
    expect_header(&r, "Access-Control-Allow-Origin", NULL);
    expect_header(&r, "Allow", "POST, OPTIONS");
    t_resp_free(&r);
    req(&d_none, "OPTIONS", "/v2/models/simple_nn", NULL, NULL, &r);
    expect_header(&r, "Allow", "GET, HEAD, OPTIONS");
    expect_header(&r, "Connection", NULL); /* the connection stays open */
    t_resp_free(&r);
    req(&d_none, "OPTIONS", "/nowhere", NULL, NULL, &r);
    assert_int_equal(r.status, 404);
    t_resp_free(&r);
}

/* A bad origin stops the start with a message naming it. */
static void bad_origin_refused(void **state)
{
    (void)state;
    struct t_daemon d;
    const char *args[] = {"--cors-origins", "http://ok.example,http://bad.example/path", NULL};
    assert_int_not_equal(t_daemon_start(&d, args, NULL), 0);
    char *log = t_daemon_log(&d);
    assert_non_null(strstr(log, "cors_origins: \"http://bad.example/path\" is not an origin"));
    free(log);
    t_daemon_stop(&d, 0, 5);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(preflight_listed_origin),  cmocka_unit_test(preflight_other_origin),
        cmocka_unit_test(star_opens_all_but_admin), cmocka_unit_test(simple_requests_carry_origin),
        cmocka_unit_test(off_by_default),           cmocka_unit_test(bad_origin_refused),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
