/* Access keys (api_keys_file) against the real daemon: 401 with WWW-Authenticate without
 * or with a wrong key, 200 with a right one on every kind of route; the probes, the console
 * and (by default) /metrics open; the admin routes on the admin token, not a key; failures
 * counted; the access log names the key by its id, never the key; SIGHUP reloads the file,
 * and a broken file keeps the old keys; a missing file stops the start. */
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "tests/common/fs.h"
#include "tests/common/http.h"

static struct t_daemon d, dm;
static char keys[96], dir[64];

static const char body[] =
    "{\"inputs\": [{\"name\": \"input\", \"shape\": [1, 10], \"datatype\": \"FP32\", \"data\": "
    "[1, 2, 3, 4, 5, 6, 7, 8, 9, 10]}]}";

static int group_setup(void **state)
{
    (void)state;
    if (t_tmp_copy(dir, sizeof dir, "keys", NULL))
        return -1;
    snprintf(keys, sizeof keys, "%s/keys.txt", dir);
    t_write_str(dir, "keys.txt", "# test keys\nalpha-key\nbeta-key\n");
    const char *args[] = {
        "--model-dir", "config/models", "--api-keys-file", keys, "--admin-token", "adm1n", NULL};
    const char *margs[] = {"--model-dir", "config/models",      "--api-keys-file",
                           keys,          "--metrics-need-key", "true",
                           NULL};
    return t_daemon_start(&d, args, NULL) || t_daemon_start(&dm, margs, NULL);
}

static int group_teardown(void **state)
{
    (void)state;
    t_daemon_stop(&d, 0, 10);
    t_daemon_stop(&dm, 0, 10);
    t_rm_dir(dir);
    return 0;
}

static long call(const struct t_daemon *dd, const char *method, const char *path, const char *auth,
                 const char *data, struct t_resp *r)
{
    char url[256], h[128];
    const char *hs[2] = {NULL, NULL};
    if (auth) {
        snprintf(h, sizeof h, "Authorization: %s", auth);
        hs[0] = h;
    }
    snprintf(url, sizeof url, "%s%s", dd->url, path);
    assert_int_equal(t_http(method, url, data, data ? strlen(data) : 0, hs, r), 0);
    return r->status;
}

static long status_of(const struct t_daemon *dd, const char *method, const char *path,
                      const char *auth, const char *data)
{
    struct t_resp r;
    long s = call(dd, method, path, auth, data, &r);
    t_resp_free(&r);
    return s;
}

static void refused_without_a_key(void **state)
{
    (void)state;
    struct t_resp r;
    assert_int_equal(call(&d, "POST", "/v2/models/simple_nn/infer", NULL, body, &r), 401);
    t_check_error(&r, "Authorization: \"Bearer <access key>\" required");
    char buf[64];
    assert_string_equal(t_resp_header(&r, "WWW-Authenticate", buf, sizeof buf),
                        "Bearer realm=\"relud\"");
    t_resp_free(&r);
    assert_int_equal(call(&d, "POST", "/v2/models/simple_nn/infer", "Bearer gamma-key", body, &r),
                     401);
    t_check_error(&r, "Authorization: unknown access key");
    t_resp_free(&r);
    /* a key's prefix, another scheme: refused */
    assert_int_equal(status_of(&d, "POST", "/v2/models/simple_nn/infer", "Bearer alpha", body),
                     401);
    assert_int_equal(status_of(&d, "GET", "/v2/models/simple_nn", "Basic YWxwaGEta2V5", NULL), 401);
    assert_int_equal(status_of(&d, "GET", "/v1/models", NULL, NULL), 401);
    assert_int_equal(status_of(&d, "POST", "/v1/forward", NULL,
                               "{\"input\": [1], \"layers\": [{\"type\": \"relu\"}]}"),
                     401);
}

static void served_with_a_key(void **state)
{
    (void)state;
    assert_int_equal(status_of(&d, "POST", "/v2/models/simple_nn/infer", "Bearer alpha-key", body),
                     200);
    assert_int_equal(status_of(&d, "GET", "/v2/models/simple_nn", "bearer beta-key", NULL), 200);
    assert_int_equal(status_of(&d, "POST", "/v1/forward", "Bearer beta-key",
                               "{\"input\": [1], \"layers\": [{\"type\": \"relu\"}]}"),
                     200);
    assert_int_equal(status_of(&d, "GET", "/v2", "Bearer alpha-key", NULL), 200);
}

static void open_routes(void **state)
{
    (void)state;
    assert_int_equal(status_of(&d, "GET", "/v2/health/live", NULL, NULL), 200);
    assert_int_equal(status_of(&d, "GET", "/v2/health/ready", NULL, NULL), 200);
    assert_int_equal(status_of(&d, "GET", "/metrics", NULL, NULL), 200);
    assert_int_equal(status_of(&d, "GET", "/", NULL, NULL), 200);
    assert_int_equal(status_of(&d, "GET", "/openapi.json", NULL, NULL), 200);
    /* metrics_need_key */
    assert_int_equal(status_of(&dm, "GET", "/metrics", NULL, NULL), 401);
    assert_int_equal(status_of(&dm, "GET", "/metrics", "Bearer alpha-key", NULL), 200);
    assert_int_equal(status_of(&dm, "GET", "/v2/health/ready", NULL, NULL), 200);
}

/* The admin routes take the admin token; an access key is not one. */
static void admin_on_its_token(void **state)
{
    (void)state;
    assert_int_equal(
        status_of(&d, "POST", "/v2/repository/models/simple_nn/load", "Bearer adm1n", NULL), 200);
    struct t_resp r;
    assert_int_equal(
        call(&d, "POST", "/v2/repository/models/simple_nn/load", "Bearer alpha-key", NULL, &r),
        401);
    t_check_error(&r, "wrong bearer token");
    t_resp_free(&r);
}

static long metric(const char *text, const char *series)
{
    const char *p = strstr(text, series);
    return p ? strtol(p + strlen(series), NULL, 10) : -1;
}

static void failures_counted_and_logged_by_id(void **state)
{
    (void)state;
    struct t_resp r;
    assert_int_equal(call(&d, "GET", "/metrics", NULL, NULL, &r), 200);
    long miss =
        metric(r.body, "relud_auth_failures_total{credential=\"api_key\",reason=\"missing\"} ");
    long wrong =
        metric(r.body, "relud_auth_failures_total{credential=\"api_key\",reason=\"wrong\"} ");
    long adm =
        metric(r.body, "relud_auth_failures_total{credential=\"admin_token\",reason=\"wrong\"} ");
    t_resp_free(&r);
    assert_true(miss >= 1 && wrong >= 1 && adm >= 1);
    status_of(&d, "GET", "/v2", NULL, NULL);
    status_of(&d, "GET", "/v2", "Bearer no", NULL);
    assert_int_equal(call(&d, "GET", "/metrics", NULL, NULL, &r), 200);
    assert_int_equal(
        metric(r.body, "relud_auth_failures_total{credential=\"api_key\",reason=\"missing\"} "),
        miss + 1);
    assert_int_equal(
        metric(r.body, "relud_auth_failures_total{credential=\"api_key\",reason=\"wrong\"} "),
        wrong + 1);
    t_resp_free(&r);
    char *log = t_daemon_log(&d);
    assert_null(strstr(log, "alpha-key"));
    assert_null(strstr(log, "beta-key"));
    assert_non_null(strstr(log, " key="));
    free(log);
}

/* SIGHUP rereads the file: a new key works, a removed one no longer; a broken file keeps
 * the keys there were. */
static void reload_on_sighup(void **state)
{
    (void)state;
    t_write_str(dir, "keys.txt", "gamma-key\n");
    kill(d.pid, SIGHUP);
    int ok = 0;
    for (int i = 0; i < 500 && !ok; i++) {
        ok = status_of(&d, "GET", "/v2", "Bearer gamma-key", NULL) == 200;
        if (!ok) {
            struct timespec ts = {0, 10000000};
            nanosleep(&ts, NULL);
        }
    }
    assert_true(ok);
    assert_int_equal(status_of(&d, "GET", "/v2", "Bearer alpha-key", NULL), 401);
    t_write_str(dir, "keys.txt", "two words\n");
    kill(d.pid, SIGHUP);
    char *log = NULL;
    for (int i = 0; i < 500; i++) {
        free(log);
        log = t_daemon_log(&d);
        if (strstr(log, "keeping the keys loaded before"))
            break;
        struct timespec ts = {0, 10000000};
        nanosleep(&ts, NULL);
    }
    assert_non_null(strstr(log, "line 1: not a key"));
    free(log);
    assert_int_equal(status_of(&d, "GET", "/v2", "Bearer gamma-key", NULL), 200);
    t_write_str(dir, "keys.txt", "# test keys\nalpha-key\nbeta-key\n");
    kill(d.pid, SIGHUP);
    for (int i = 0; i < 500 && status_of(&d, "GET", "/v2", "Bearer alpha-key", NULL) != 200; i++) {
        struct timespec ts = {0, 10000000};
        nanosleep(&ts, NULL);
    }
}

static void missing_file_stops_start(void **state)
{
    (void)state;
    struct t_daemon x;
    const char *args[] = {"--api-keys-file", "/nonexistent/relud-keys", NULL};
    assert_int_not_equal(t_daemon_start(&x, args, NULL), 0);
    char *log = t_daemon_log(&x);
    assert_non_null(strstr(log, "api_keys_file /nonexistent/relud-keys"));
    free(log);
    t_daemon_stop(&x, 0, 5);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(refused_without_a_key),
        cmocka_unit_test(served_with_a_key),
        cmocka_unit_test(open_routes),
        cmocka_unit_test(admin_on_its_token),
        cmocka_unit_test(failures_counted_and_logged_by_id),
        cmocka_unit_test(reload_on_sighup),
        cmocka_unit_test(missing_file_stops_start),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
