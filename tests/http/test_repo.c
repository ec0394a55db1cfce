/* Model control against the real daemon: admin token (none configured -> 403, missing or
 * wrong -> 401, --admin-token-file), POST /v2/repository/index (open) listing READY / UNAVAILABLE /
 * UNAVAILABLE with reasons, load/unload, PUT/DELETE /v1/models/{name}, --strict-models, a
 * restart that finds a PUT model, PUTs interrupted by SIGKILL (no torn file, temp files
 * ignored), and infers racing with replacements. Every model_dir here is a mkdtemp copy. */
#include <dirent.h>
#include <errno.h>
#include <math.h>
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>
#include <curl/curl.h>

#include "tests/common/fs.h"
#include "server/srv.h"
#include "tests/common/http.h"

/* The daemon and temp dirs of the running test: the teardown cleans up after a failure. */
static struct t_daemon d;
static char dir[64], tokdir[64];

#define TOKEN "s3cret"
#define AUTH "Authorization: Bearer " TOKEN

/* ---- helpers ------------------------------------------------------------------ */

static void sleep_ms(int ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

/* Removes a test's model folder and forgets it (the teardown removes what is left). */
static void rm_dir(char *path)
{
    t_rm_dir(path);
    path[0] = 0;
}

/* Starts the daemon on model_dir with extra args (NULL-terminated list, may be NULL). */
static void start(struct t_daemon *dm, const char *mdir, const char *const *extra)
{
    const char *args[32] = {"--model-dir", mdir};
    int n = 2;
    for (int i = 0; extra && extra[i] && n < 31; i++)
        args[n++] = extra[i];
    args[n] = NULL;
    assert_int_equal(t_daemon_start(dm, args, NULL), 0);
}

/* SIGTERM: a clean exit; the log is removed then (kept when a test fails). */
static void stop(struct t_daemon *dm)
{
    assert_int_equal(t_daemon_stop(dm, 0, 30), 0);
    unlink(dm->log_path);
}

/* One request with an optional Authorization header line (auth NULL: none). */
static struct t_resp req(const struct t_daemon *dm, const char *method, const char *path,
                         const char *auth, const char *body, size_t len, long status)
{
    char url[512];
    snprintf(url, sizeof url, "%s%s", dm->url, path);
    const char *hdrs[] = {auth, NULL};
    struct t_resp r;
    assert_int_equal(
        t_http(method, url, body, body ? (len ? len : strlen(body)) : 0, auth ? hdrs : NULL, &r),
        0);
    if (r.status != status)
        fprintf(stderr, "%s %s (%s)\nresponse %ld (want %ld): %.2000s\n", method, path,
                auth ? auth : "no Authorization", r.status, status, r.body);
    assert_int_equal(r.status, status);
    return r;
}

static void req_error(const struct t_daemon *dm, const char *method, const char *path,
                      const char *auth, const char *body, long status, const char *part)
{
    struct t_resp r = req(dm, method, path, auth, body, 0, status);
    t_check_error(&r, part);
    t_resp_free(&r);
}

/* A deterministic model: Linear(in, hid) + ReLU + Linear(hid, out), weights from an LCG
 * seeded with seed, as a PUT body / NAME.json (malloc'd). */
static char *gen_model(const char *name, int in, int hid, int out, unsigned seed)
{
    struct srv_sb b = {0};
    uint64_t s = seed * 2654435761u + 1;
    float scale = 1.0f / sqrtf((float)in);
#define RND()                                                   \
    ((s = s * 6364136223846793005ull + 1442695040888963407ull), \
     ((double)(s >> 40) / (double)(1ull << 24) * 2 - 1))
    srv_sb_printf(&b,
                  "{\"name\": \"%s\", \"description\": \"generated, seed %u\", \"dtype\": "
                  "\"float32\", \"layers\": [{\"type\": \"linear\", \"weight\": [",
                  name, seed);
    for (int j = 0; j < hid; j++) {
        srv_sb_printf(&b, j ? ",[" : "[");
        for (int k = 0; k < in; k++)
            srv_sb_printf(&b, k ? ",%.6g" : "%.6g", RND() * scale);
        srv_sb_printf(&b, "]");
    }
    srv_sb_printf(&b, "], \"bias\": [");
    for (int j = 0; j < hid; j++)
        srv_sb_printf(&b, j ? ",%.6g" : "%.6g", RND() * 0.1);
    srv_sb_printf(&b, "]}, {\"type\": \"relu\"}, {\"type\": \"linear\", \"weight\": [");
    for (int j = 0; j < out; j++) {
        srv_sb_printf(&b, j ? ",[" : "[");
        for (int k = 0; k < hid; k++)
            srv_sb_printf(&b, k ? ",%.6g" : "%.6g", RND());
        srv_sb_printf(&b, "]");
    }
    srv_sb_printf(&b, "], \"bias\": [");
    for (int j = 0; j < out; j++)
        srv_sb_printf(&b, j ? ",%.6g" : "%.6g", RND());
    srv_sb_printf(&b, "]}]}\n");
#undef RND
    return b.p;
}

/* An infer body: one row of `in` values 0.5, -0.25, 1, ... */
static char *gen_input(int in)
{
    struct srv_sb b = {0};
    srv_sb_printf(&b,
                  "{\"inputs\": [{\"name\": \"input\", \"datatype\": \"FP32\", \"shape\": [1, "
                  "%d], \"data\": [",
                  in);
    for (int k = 0; k < in; k++)
        srv_sb_printf(&b, k ? ",%g" : "%g", (k % 7) * 0.25 - 0.5);
    srv_sb_printf(&b, "]}]}");
    return b.p;
}

/* POSTs an infer; on 200 returns the "output" data printed compactly (malloc'd), else
 * NULL with *status set. Thread-safe (no cmocka asserts). */
static char *infer_text(const struct t_daemon *dm, const char *model, const char *body,
                        long *status, char **errbody)
{
    char url[512];
    snprintf(url, sizeof url, "%s/v2/models/%s/infer", dm->url, model);
    struct t_resp r;
    int rc = t_http("POST", url, body, strlen(body), NULL, &r);
    *status = rc ? -rc : r.status;
    char *txt = NULL;
    if (!rc && r.status == 200 && r.json) {
        const cJSON *outs = cJSON_GetObjectItemCaseSensitive(r.json, "outputs");
        const cJSON *data = cJSON_GetObjectItemCaseSensitive(cJSON_GetArrayItem(outs, 0), "data");
        if (data)
            txt = cJSON_PrintUnformatted(data);
    }
    if (!txt && errbody)
        *errbody = strdup(r.body ? r.body : "");
    t_resp_free(&r);
    return txt;
}

/* infer_text that must succeed. */
static char *infer_ok(const struct t_daemon *dm, const char *model, const char *body)
{
    long st;
    char *eb = NULL;
    char *t = infer_text(dm, model, body, &st, &eb);
    if (!t)
        fprintf(stderr, "infer %s: %ld %s\n", model, st, eb ? eb : "");
    free(eb);
    assert_non_null(t);
    return t;
}

/* ---- auth ------------------------------------------------------------------------ */

/* Every control endpoint, with a body where one is needed. */
struct ctl {
    const char *method, *path, *body;
};

static const struct ctl ctls[] = {
    {"POST", "/v2/repository/models/simple_nn/load", NULL},
    {"POST", "/v2/repository/models/simple_nn/unload", NULL},
    {"PUT", "/v1/models/newmodel",
     "{\"layers\": [{\"type\": \"linear\", \"weight\": [[1, 2]], \"bias\": [0]}]}"},
    {"PUT", "/v1/models/simple_nn",
     "{\"layers\": [{\"type\": \"linear\", \"weight\": [[1, 2]], \"bias\": [0]}]}"},
    {"DELETE", "/v1/models/simple_nn", NULL},
};
#define NCTL (sizeof ctls / sizeof *ctls)

/* Nothing changed: simple_nn serves as before, newmodel was not created. */
static void check_untouched(const struct t_daemon *dm, const char *mdir)
{
    struct t_resp r = req(dm, "GET", "/v2/models/simple_nn/ready", NULL, NULL, 0, 200);
    t_resp_free(&r);
    r = req(dm, "GET", "/v2/models/simple_nn", NULL, NULL, 0, 200);
    t_resp_free(&r);
    r = req(dm, "GET", "/v2/models/newmodel", NULL, NULL, 0, 404);
    t_resp_free(&r);
    assert_true(t_file_exists(mdir, "simple_nn.json"));
    assert_false(t_file_exists(mdir, "newmodel.json"));
}

static void control_forbidden_without_token(void **state)
{
    (void)state;
    assert_int_equal(t_tmp_copy(dir, sizeof dir, "test-repo", "config/models"), 0);
    start(&d, dir, NULL);
    const char *auths[] = {NULL, AUTH, "Authorization: Bearer "};
    for (size_t i = 0; i < NCTL; i++)
        for (size_t a = 0; a < sizeof auths / sizeof *auths; a++)
            req_error(&d, ctls[i].method, ctls[i].path, auths[a], ctls[i].body, 403, "admin_token");
    check_untouched(&d, dir);
    /* listing is not control */
    struct t_resp r = req(&d, "GET", "/v1/models", NULL, NULL, 0, 200);
    assert_non_null(r.json);
    t_resp_free(&r);
    stop(&d);
    rm_dir(dir);
}

static void control_wrong_tokens(void **state)
{
    (void)state;
    assert_int_equal(t_tmp_copy(dir, sizeof dir, "test-repo", "config/models"), 0);
    const char *extra[] = {"--admin-token", TOKEN, NULL};
    start(&d, dir, extra);
    const char *bad[] = {
        NULL,                            /* missing */
        "Authorization: Bearer wrong",   /* wrong */
        "Authorization: Bearer s3cretX", /* longer */
        "Authorization: Bearer s3cre",   /* prefix */
        "Authorization: Bearer S3CRET",  /* case matters in the token */
        "Authorization: Bearer ",        /* empty */
        "Authorization: Basic czNjcmV0", /* wrong scheme */
        "Authorization: s3cret",         /* no scheme */
        "X-Admin-Token: s3cret",         /* wrong header */
    };
    for (size_t i = 0; i < NCTL; i++)
        for (size_t a = 0; a < sizeof bad / sizeof *bad; a++) {
            struct t_resp r = req(&d, ctls[i].method, ctls[i].path, bad[a], ctls[i].body, 0, 401);
            t_check_error(&r, "Authorization");
            char www[128];
            assert_non_null(t_resp_header(&r, "WWW-Authenticate", www, sizeof www));
            assert_non_null(strstr(www, "Bearer"));
            t_resp_free(&r);
        }
    check_untouched(&d, dir);
    /* the right token works */
    struct t_resp r = req(&d, "POST", "/v2/repository/index", AUTH, NULL, 0, 200);
    assert_true(cJSON_IsArray(r.json));
    assert_non_null(t_index_entry(r.json, "simple_nn"));
    t_resp_free(&r);
    r = req(&d, "POST", "/v2/repository/models/simple_nn/load", AUTH, NULL, 0, 200);
    t_resp_free(&r);
    /* the scheme is case-insensitive (RFC 7235), the token is not */
    r = req(&d, "POST", "/v2/repository/models/simple_nn/load", "Authorization: bearer " TOKEN,
            NULL, 0, 200);
    t_resp_free(&r);
    /* the index only reads: open, as GET /v1/models (and Triton) */
    r = req(&d, "POST", "/v2/repository/index", NULL, NULL, 0, 200);
    assert_non_null(t_index_entry(r.json, "simple_nn"));
    t_resp_free(&r);
    /* Triton's load with a configuration: refused, not silently ignored */
    req_error(&d, "POST", "/v2/repository/models/simple_nn/load", AUTH,
              "{\"parameters\": {\"config\": \"{}\"}}", 400, "parameters.config: relud loads");
    req_error(&d, "POST", "/v2/repository/models/simple_nn/load", AUTH,
              "{\"parameters\": {\"file:1/model.onnx\": \"AAAA\"}}", 400,
              "parameters.file:1/model.onnx");
    /* the token never shows in the log */
    char *log = t_daemon_log(&d);
    assert_non_null(log);
    char *p = log;
    int leaks = 0;
    while ((p = strstr(p, TOKEN))) {
        /* the warning about --admin-token names the flag, not the value */
        leaks++;
        p++;
    }
    if (leaks)
        fprintf(stderr, "admin token found in the log:\n%s\n", log);
    assert_int_equal(leaks, 0);
    free(log);
    stop(&d);
    rm_dir(dir);
}

static void control_token_file(void **state)
{
    (void)state;
    char tokpath[128];
    assert_int_equal(t_tmp_copy(dir, sizeof dir, "test-repo", "config/models"), 0);
    assert_int_equal(t_tmp_copy(tokdir, sizeof tokdir, "test-repo", NULL), 0);
    t_write_file(tokdir, "token", "filetok  \n", 10);
    snprintf(tokpath, sizeof tokpath, "%s/token", tokdir);
    /* the file overrides admin_token */
    const char *extra[] = {"--admin-token-file", tokpath, "--admin-token", "other", NULL};
    start(&d, dir, extra);
    const char *load = "/v2/repository/models/simple_nn/load";
    struct t_resp r = req(&d, "POST", load, "Authorization: Bearer filetok", NULL, 0, 200);
    assert_string_equal(t_item(r.json, "state")->valuestring, "READY");
    t_resp_free(&r);
    req_error(&d, "POST", load, "Authorization: Bearer other", NULL, 401, "Authorization");
    req_error(&d, "POST", load, "Authorization: Bearer filetok  ", NULL, 401, "Authorization");
    req_error(&d, "POST", load, NULL, NULL, 401, "Authorization");
    stop(&d);
    /* an unreadable token file stops the start */
    const char *missing[] = {"--model-dir", dir, "--admin-token-file", "/nonexistent/relud-token",
                             NULL};
    assert_int_equal(t_daemon_start(&d, missing, NULL), -1);
    char *log = t_daemon_log(&d);
    assert_non_null(log);
    assert_non_null(strstr(log, "admin_token_file"));
    free(log);
    unlink(d.log_path);
    rm_dir(tokdir);
    rm_dir(dir);
}

/* ---- repository state ---------------------------------------------------------- */

static const struct {
    const char *name, *reason_part;
} broken[] = {
    {"bad_json", "JSON"},
    {"bad_shape", "layers[2]"},
    {"missing_weights", "missing_weights.safetensors"},
    {"truncated", "truncated.safetensors"},
    {"bad_header", "bad_header.safetensors"},
};
#define NBROKEN (sizeof broken / sizeof *broken)

/* tiny (float64) with cross_entropy through OIP against tests/golden/models/tiny_expected.json */
static void check_tiny_golden(const struct t_daemon *dm)
{
    char path[512];
    snprintf(path, sizeof path, "%s/tests/golden/models/tiny_expected.json", t_root());
    char *txt = t_read_file(path, NULL);
    assert_non_null(txt);
    cJSON *g = cJSON_Parse(txt);
    free(txt);
    assert_non_null(g);
    const cJSON *tol = t_item(g, "tolerance");
    double atol = t_item(tol, "atol")->valuedouble, rtol = t_item(tol, "rtol")->valuedouble;
    const cJSON *in = t_item(g, "input"), *loss = t_item(g, "loss");
    const cJSON *tgt = t_item(loss, "target");
    char *ins = cJSON_PrintUnformatted(t_item(in, "data"));
    char *insh = cJSON_PrintUnformatted(t_item(in, "shape"));
    char *td = cJSON_PrintUnformatted(t_item(tgt, "data"));
    char *tsh = cJSON_PrintUnformatted(t_item(tgt, "shape"));
    struct srv_sb b = {0};
    srv_sb_printf(&b,
                  "{\"parameters\": {\"loss\": \"%s\", \"reduction\": \"%s\"}, \"inputs\": "
                  "[{\"name\": \"input\", \"datatype\": \"FP64\", \"shape\": %s, \"data\": %s}, "
                  "{\"name\": \"target\", \"datatype\": \"INT64\", \"shape\": %s, \"data\": %s}]}",
                  t_item(loss, "type")->valuestring, t_item(loss, "reduction")->valuestring, insh,
                  ins, tsh, td);
    free(ins);
    free(insh);
    free(td);
    free(tsh);
    struct t_resp r = req(dm, "POST", "/v2/models/tiny/infer", NULL, b.p, 0, 200);
    free(b.p);
    /* golden name -> OIP output name */
    struct check {
        const char *out;
        const cJSON *want;
    } checks[8];
    int nc = 0;
    checks[nc++] = (struct check){"output", t_item(g, "output")};
    checks[nc++] = (struct check){"grad:input", t_item(g, "grad_input")};
    static char names[4][64];
    const cJSON *e;
    cJSON_ArrayForEach(e, t_item(g, "grad_params"))
    {
        assert_true(nc < 8);
        snprintf(names[nc - 2], sizeof names[0], "grad:%s", e->string);
        checks[nc] = (struct check){names[nc - 2], e};
        nc++;
    }
    assert_int_equal(nc, 4);
    const cJSON *outs = t_item(r.json, "outputs");
    assert_int_equal(cJSON_GetArraySize(outs), nc + 1); /* + loss */
    for (int i = 0; i < nc + 1; i++) {
        const char *name = i < nc ? checks[i].out : "loss";
        const cJSON *o = NULL;
        cJSON_ArrayForEach(e, outs)
        {
            if (!strcmp(t_item(e, "name")->valuestring, name))
                o = e;
        }
        if (!o)
            fprintf(stderr, "tiny: no output %s\n", name);
        assert_non_null(o);
        assert_string_equal(t_item(o, "datatype")->valuestring, "FP64");
        const cJSON *data = t_item(o, "data");
        if (i < nc) {
            char *ws = cJSON_PrintUnformatted(t_item(checks[i].want, "shape"));
            char *gs = cJSON_PrintUnformatted(t_item(o, "shape"));
            assert_string_equal(gs, ws);
            free(ws);
            free(gs);
        }
        const cJSON *wd = i < nc ? t_item(checks[i].want, "data") : NULL;
        int n = cJSON_GetArraySize(data);
        assert_int_equal(n, wd ? cJSON_GetArraySize(wd) : 1);
        for (int k = 0; k < n; k++) {
            double got = cJSON_GetArrayItem(data, k)->valuedouble;
            double want = wd ? cJSON_GetArrayItem(wd, k)->valuedouble
                             : t_item(g, "expected_loss")->valuedouble;
            if (!(fabs(got - want) <= atol + rtol * fabs(want)))
                fprintf(stderr, "tiny %s[%d]: got %.17g, want %.17g\n", name, k, got, want);
            assert_true(fabs(got - want) <= atol + rtol * fabs(want));
        }
    }
    t_resp_free(&r);
    cJSON_Delete(g);
}

static void index_lists_unavailable(void **state)
{
    (void)state;
    assert_int_equal(t_tmp_copy(dir, sizeof dir, "test-repo", "tests/fixtures/models"), 0);
    const char *extra[] = {"--admin-token", TOKEN, NULL};
    start(&d, dir, extra);
    struct t_resp r = req(&d, "POST", "/v2/repository/index", AUTH, NULL, 0, 200);
    assert_true(cJSON_IsArray(r.json));
    assert_int_equal(cJSON_GetArraySize(r.json), 1 + NBROKEN);
    const cJSON *tiny = t_index_entry(r.json, "tiny");
    assert_non_null(tiny);
    assert_string_equal(t_item(tiny, "state")->valuestring, "READY");
    assert_string_equal(t_item(tiny, "version")->valuestring, "1");
    char *log = t_daemon_log(&d);
    assert_non_null(log);
    for (size_t i = 0; i < NBROKEN; i++) {
        const cJSON *e = t_index_entry(r.json, broken[i].name);
        if (!e)
            fprintf(stderr, "index lacks %s: %s\n", broken[i].name, r.body);
        assert_non_null(e);
        assert_string_equal(t_item(e, "state")->valuestring, "UNAVAILABLE");
        const char *reason = t_item(e, "reason")->valuestring;
        if (!strstr(reason, broken[i].reason_part))
            fprintf(stderr, "%s: reason \"%s\" lacks \"%s\"\n", broken[i].name, reason,
                    broken[i].reason_part);
        assert_non_null(strstr(reason, broken[i].reason_part));
        /* the log names the model and the same reason */
        char line[1024];
        snprintf(line, sizeof line, "model %s: unavailable: ", broken[i].name);
        const char *lp = strstr(log, line);
        assert_non_null(lp);
        assert_int_equal(strncmp(lp + strlen(line), reason, strlen(reason)), 0);
        /* requests to it: 503 with the reason */
        char path[256];
        snprintf(path, sizeof path, "/v2/models/%s/infer", broken[i].name);
        req_error(&d, "POST", path, NULL,
                  "{\"inputs\": [{\"name\": \"input\", \"datatype\": \"FP32\", \"shape\": [1, "
                  "4], \"data\": [1, 2, 3, 4]}]}",
                  503, reason);
        snprintf(path, sizeof path, "/v2/models/%s", broken[i].name);
        req_error(&d, "GET", path, NULL, NULL, 503, reason);
        snprintf(path, sizeof path, "/v2/models/%s/ready", broken[i].name);
        req_error(&d, "GET", path, NULL, NULL, 503, NULL);
    }
    free(log);
    t_resp_free(&r);
    /* {"ready": true} lists only the ready ones */
    r = req(&d, "POST", "/v2/repository/index", AUTH, "{\"ready\": true}", 0, 200);
    assert_int_equal(cJSON_GetArraySize(r.json), 1);
    assert_non_null(t_index_entry(r.json, "tiny"));
    t_resp_free(&r);
    req_error(&d, "POST", "/v2/repository/index", AUTH, "[1, 2", 400, NULL);
    /* /metrics: ready gauge per model */
    r = req(&d, "GET", "/metrics", NULL, NULL, 0, 200);
    assert_non_null(strstr(r.body, "relud_model_ready{model=\"tiny\"} 1\n"));
    assert_non_null(strstr(r.body, "relud_model_ready{model=\"bad_json\"} 0\n"));
    t_resp_free(&r);
    /* the good model serves torch's numbers alongside the broken ones */
    check_tiny_golden(&d);
    stop(&d);
    rm_dir(dir);
}

static void unload_and_load(void **state)
{
    (void)state;
    assert_int_equal(t_tmp_copy(dir, sizeof dir, "test-repo", "tests/fixtures/models"), 0);
    const char *extra[] = {"--admin-token", TOKEN, NULL};
    start(&d, dir, extra);
    const char *x = "{\"inputs\": [{\"name\": \"input\", \"datatype\": \"FP64\", \"shape\": [1, "
                    "4], \"data\": [0.5, -1, 2, 0]}]}";
    char *before = infer_ok(&d, "tiny", x);
    struct t_resp r = req(&d, "POST", "/v2/repository/models/tiny/unload", AUTH, NULL, 0, 200);
    assert_string_equal(t_item(r.json, "state")->valuestring, "UNAVAILABLE");
    t_resp_free(&r);
    req_error(&d, "POST", "/v2/models/tiny/infer", NULL, x, 503, "tiny");
    req_error(&d, "GET", "/v2/models/tiny/ready", NULL, NULL, 503, NULL);
    r = req(&d, "POST", "/v2/repository/index", AUTH, NULL, 0, 200);
    assert_string_equal(t_item(t_index_entry(r.json, "tiny"), "state")->valuestring, "UNAVAILABLE");
    assert_string_equal(t_item(t_index_entry(r.json, "tiny"), "reason")->valuestring, "unloaded");
    t_resp_free(&r);
    r = req(&d, "POST", "/v2/repository/models/tiny/load", AUTH, NULL, 0, 200);
    assert_string_equal(t_item(r.json, "state")->valuestring, "READY");
    t_resp_free(&r);
    char *after = infer_ok(&d, "tiny", x);
    assert_string_equal(after, before);
    r = req(&d, "GET", "/v2/models/tiny/ready", NULL, NULL, 0, 200);
    t_resp_free(&r);
    /* loading a broken model reports why; unknown names are 404 */
    req_error(&d, "POST", "/v2/repository/models/bad_shape/load", AUTH, NULL, 400, "layers[2]");
    req_error(&d, "POST", "/v2/repository/models/nope/load", AUTH, NULL, 404, "nope");
    req_error(&d, "POST", "/v2/repository/models/nope/unload", AUTH, NULL, 404, "nope");
    /* fixing the file on disk and loading makes it READY */
    char *good = gen_model("bad_json", 4, 3, 2, 7);
    t_write_file(dir, "bad_json.json", good, strlen(good));
    free(good);
    r = req(&d, "POST", "/v2/repository/models/bad_json/load", AUTH, NULL, 0, 200);
    t_resp_free(&r);
    char *fixed = infer_ok(&d, "bad_json",
                           "{\"inputs\": [{\"name\": \"input\", \"datatype\": \"FP32\", "
                           "\"shape\": [1, 4], \"data\": [1, 2, 3, 4]}]}");
    free(fixed);
    r = req(&d, "POST", "/v2/repository/index", AUTH, NULL, 0, 200);
    assert_string_equal(t_item(t_index_entry(r.json, "bad_json"), "state")->valuestring, "READY");
    t_resp_free(&r);
    free(before);
    free(after);
    stop(&d);
    rm_dir(dir);
}

static void put_replace_delete(void **state)
{
    (void)state;
    assert_int_equal(t_tmp_copy(dir, sizeof dir, "test-repo", NULL), 0);
    const char *extra[] = {"--admin-token", TOKEN, NULL};
    start(&d, dir, extra);
    char *a = gen_model("m1", 4, 6, 3, 1), *b = gen_model("m1", 4, 6, 3, 2);
    const char *x = "{\"inputs\": [{\"name\": \"input\", \"datatype\": \"FP32\", \"shape\": [1, "
                    "4], \"data\": [1, -0.5, 0.25, 2]}]}";
    req_error(&d, "POST", "/v2/models/m1/infer", NULL, x, 404, "m1");
    struct t_resp r = req(&d, "PUT", "/v1/models/m1", AUTH, a, 0, 201);
    assert_string_equal(t_item(r.json, "name")->valuestring, "m1");
    assert_string_equal(t_item(r.json, "state")->valuestring, "READY");
    t_resp_free(&r);
    /* a 201 is counted as one, not as an internal error (counted when the reply is sent:
       poll until it is) */
    for (int i = 0;; i++) {
        r = req(&d, "GET", "/metrics", NULL, NULL, 0, 200);
        if (strstr(r.body, "relud_requests_total{route=\"/v1/models/{name}\",code=\"201\"} 1"))
            break;
        t_resp_free(&r);
        assert_true(i < 500);
        usleep(10000);
    }
    assert_non_null(strstr(r.body, "relud_errors_total{class=\"internal\"} 0"));
    t_resp_free(&r);
    char *out_a = infer_ok(&d, "m1", x);
    r = req(&d, "GET", "/v2/models/m1", NULL, NULL, 0, 200);
    const cJSON *in0 = cJSON_GetArrayItem(t_item(r.json, "inputs"), 0);
    assert_int_equal((int)cJSON_GetArrayItem(t_item(in0, "shape"), 1)->valuedouble, 4);
    const cJSON *out0 = cJSON_GetArrayItem(t_item(r.json, "outputs"), 0);
    assert_int_equal((int)cJSON_GetArrayItem(t_item(out0, "shape"), 1)->valuedouble, 3);
    t_resp_free(&r);
    /* the file is the body, byte for byte */
    char path[256];
    snprintf(path, sizeof path, "%s/m1.json", dir);
    char *disk = t_read_file(path, NULL);
    assert_non_null(disk);
    assert_string_equal(disk, a);
    free(disk);
    /* replace: 200, new numbers */
    r = req(&d, "PUT", "/v1/models/m1", AUTH, b, 0, 200);
    t_resp_free(&r);
    char *out_b = infer_ok(&d, "m1", x);
    assert_string_not_equal(out_a, out_b);
    disk = t_read_file(path, NULL);
    assert_string_equal(disk, b);
    free(disk);
    /* invalid bodies are refused and leave the model as it was */
    req_error(&d, "PUT", "/v1/models/m1", AUTH, "{\"layers\": [", 400, NULL);
    req_error(&d, "PUT", "/v1/models/m1", AUTH,
              "{\"name\": \"other\", \"layers\": [{\"type\": \"relu\"}]}", 400, "other");
    req_error(&d, "PUT", "/v1/models/m1", AUTH, "{\"layers\": [{\"type\": \"reluu\"}]}", 400,
              "reluu");
    req_error(&d, "PUT", "/v1/models/m1", AUTH,
              "{\"layers\": [{\"type\": \"linear\", \"weight\": [[1, 2]], \"bias\": [0]}, "
              "{\"type\": \"linear\", \"weight\": [[1, 2, 3]], \"bias\": [0]}]}",
              400, "layers[1]");
    req_error(&d, "PUT", "/v1/models/.hidden", AUTH, a, 400, "name");
    char *still_b = infer_ok(&d, "m1", x);
    assert_string_equal(still_b, out_b);
    /* statistics survive the replacement: 3 successful infers on m1 so far */
    r = req(&d, "GET", "/v2/models/m1/stats", NULL, NULL, 0, 200);
    const cJSON *ms = cJSON_GetArrayItem(t_item(r.json, "model_stats"), 0);
    assert_string_equal(t_item(ms, "name")->valuestring, "m1");
    assert_int_equal(
        (int)t_item(t_item(t_item(ms, "inference_stats"), "success"), "count")->valuedouble, 3);
    t_resp_free(&r);
    disk = t_read_file(path, NULL);
    assert_string_equal(disk, b);
    free(disk);
    /* delete: 404 after, file gone, second delete 404 */
    r = req(&d, "DELETE", "/v1/models/m1", AUTH, NULL, 0, 200);
    t_resp_free(&r);
    req_error(&d, "POST", "/v2/models/m1/infer", NULL, x, 404, "m1");
    req_error(&d, "GET", "/v2/models/m1", NULL, NULL, 404, "m1");
    assert_false(t_file_exists(dir, "m1.json"));
    req_error(&d, "DELETE", "/v1/models/m1", AUTH, NULL, 404, "m1");
    r = req(&d, "POST", "/v2/repository/index", AUTH, NULL, 0, 200);
    assert_null(t_index_entry(r.json, "m1"));
    t_resp_free(&r);
    /* and a PUT after the delete creates it again */
    r = req(&d, "PUT", "/v1/models/m1", AUTH, a, 0, 201);
    t_resp_free(&r);
    char *again = infer_ok(&d, "m1", x);
    assert_string_equal(again, out_a);
    free(again);
    free(still_b);
    free(out_a);
    free(out_b);
    free(a);
    free(b);
    stop(&d);
    rm_dir(dir);
}

static void restart_finds_put_model(void **state)
{
    (void)state;
    assert_int_equal(t_tmp_copy(dir, sizeof dir, "test-repo", NULL), 0);
    const char *extra[] = {"--admin-token", TOKEN, "--strict-models", NULL};
    start(&d, dir, extra);
    char *m = gen_model("kept", 5, 4, 2, 11);
    struct t_resp r = req(&d, "PUT", "/v1/models/kept", AUTH, m, 0, 201);
    t_resp_free(&r);
    const char *x = "{\"inputs\": [{\"name\": \"input\", \"datatype\": \"FP32\", \"shape\": [2, "
                    "5], \"data\": [1, 2, 3, 4, 5, -1, -2, 0.5, 0, 3]}]}";
    char *before = infer_ok(&d, "kept", x);
    stop(&d);
    start(&d, dir, extra);
    r = req(&d, "POST", "/v2/repository/index", AUTH, NULL, 0, 200);
    const cJSON *e = t_index_entry(r.json, "kept");
    assert_non_null(e);
    assert_string_equal(t_item(e, "state")->valuestring, "READY");
    t_resp_free(&r);
    char *after = infer_ok(&d, "kept", x);
    assert_string_equal(after, before);
    free(before);
    free(after);
    free(m);
    stop(&d);
    rm_dir(dir);
}

static void strict_models_refuses_broken(void **state)
{
    (void)state;
    assert_int_equal(t_tmp_copy(dir, sizeof dir, "test-repo", "tests/fixtures/models"), 0);
    const char *args[] = {"--model-dir", dir, "--strict-models", NULL};
    assert_int_equal(t_daemon_start(&d, args, NULL), -1);
    char *log = t_daemon_log(&d);
    assert_non_null(log);
    int named = 0;
    for (size_t i = 0; i < NBROKEN; i++) {
        char want[256];
        snprintf(want, sizeof want, "%s.json: ", broken[i].name);
        const char *p = strstr(log, want);
        if (p && strstr(p, broken[i].reason_part))
            named++;
    }
    if (!named || !strstr(log, "strict_models"))
        fprintf(stderr, "strict start log names no broken model:\n%s\n", log);
    assert_true(named >= 1);
    assert_non_null(strstr(log, "strict_models"));
    free(log);
    unlink(d.log_path);
    /* without the broken files the same dir starts under strict_models */
    for (size_t i = 0; i < NBROKEN; i++) {
        char p[256];
        snprintf(p, sizeof p, "%s/%s.json", dir, broken[i].name);
        assert_int_equal(unlink(p), 0);
    }
    assert_int_equal(t_daemon_start(&d, args, NULL), 0);
    stop(&d);
    rm_dir(dir);
}

/* ---- crashes and races ---------------------------------------------------------- */

struct putter {
    const struct t_daemon *d;
    const char *name;
    const char *bodies[2];
    int rounds; /* 0: until the first failure */
    atomic_int done, ok, fail;
    char first_error[512];
};

static void *put_loop(void *arg)
{
    struct putter *p = arg;
    char url[512];
    snprintf(url, sizeof url, "%s/v1/models/%s", p->d->url, p->name);
    const char *hdrs[] = {AUTH, NULL};
    for (int i = 0; !p->rounds || i < p->rounds; i++) {
        const char *body = p->bodies[(i + 1) % 2];
        struct t_resp r;
        int rc = t_http("PUT", url, body, strlen(body), hdrs, &r);
        if (rc || r.status != 200) {
            if (!p->first_error[0])
                snprintf(p->first_error, sizeof p->first_error, "curl %d, status %ld: %.400s", rc,
                         r.status, r.body ? r.body : "");
            atomic_fetch_add(&p->fail, 1);
            t_resp_free(&r);
            if (!p->rounds)
                break;
            continue;
        }
        atomic_fetch_add(&p->ok, 1);
        t_resp_free(&r);
    }
    atomic_store(&p->done, 1);
    return NULL;
}

/* Polls mdir until big.json is being written: a PUT's temp file (".big.json.tmp.<pid>.<n>",
 * not one planted by the test) exists, or big.json itself has a size that is neither
 * version's (a non-atomic writer caught in the act). Up to timeout_ms; returns 1 if seen. */
static int wait_for_write(const char *mdir, size_t len_a, size_t len_b, int timeout_ms)
{
    char path[256];
    snprintf(path, sizeof path, "%s/big.json", mdir);
    struct timespec t0, t;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    for (;;) {
        struct stat st;
        if (stat(path, &st) != 0 || ((size_t)st.st_size != len_a && (size_t)st.st_size != len_b))
            return 1;
        DIR *dd = opendir(mdir);
        if (dd) {
            struct dirent *de;
            int found = 0;
            while (!found && (de = readdir(dd)))
                found = !strncmp(de->d_name, ".big.json.tmp.", 14) &&
                        strncmp(de->d_name, ".big.json.tmp.99999.", 20);
            closedir(dd);
            if (found)
                return 1;
        }
        clock_gettime(CLOCK_MONOTONIC, &t);
        if ((t.tv_sec - t0.tv_sec) * 1000 + (t.tv_nsec - t0.tv_nsec) / 1000000 > timeout_ms)
            return 0;
        struct timespec ts = {0, 50000};
        nanosleep(&ts, NULL);
    }
}

/* PUTs of a large model while the daemon is SIGKILLed, a few times: the file on disk is
 * always one whole version, and a strict start loads the repository (temp files left by
 * the crash are ignored). */
static void put_interrupted_by_kill(void **state)
{
    (void)state;
    enum { IN = 512, HID = 1024, OUT = 2, ROUNDS = 6 };
    assert_int_equal(t_tmp_copy(dir, sizeof dir, "test-repo", NULL), 0);
    char *va = gen_model("big", IN, HID, OUT, 21), *vb = gen_model("big", IN, HID, OUT, 22);
    char *x = gen_input(IN);
    t_write_file(dir, "big.json", va, strlen(va));
    const char *extra[] = {"--admin-token", TOKEN, "--strict-models", NULL};
    start(&d, dir, extra);
    char *out_a = infer_ok(&d, "big", x);
    struct t_resp r = req(&d, "PUT", "/v1/models/big", AUTH, vb, 0, 200);
    t_resp_free(&r);
    char *out_b = infer_ok(&d, "big", x);
    assert_string_not_equal(out_a, out_b);
    char path[256];
    snprintf(path, sizeof path, "%s/big.json", dir);
    int seen_tmp = 0, seen_a = 0, seen_b = 0;
    /* kill at a delay (landing in the upload, parse or write), or (-1) the moment big.json
     * is being written (a temp file exists, or big.json has neither version's size) */
    const int delays_ms[ROUNDS] = {5, -1, 40, -1, 110, -1};
    int killed_mid_write = 0;
    for (int round = 0; round < ROUNDS; round++) {
        struct putter p = {.d = &d, .name = "big", .bodies = {va, vb}};
        pthread_t th;
        assert_int_equal(pthread_create(&th, NULL, put_loop, &p), 0);
        if (delays_ms[round] >= 0)
            sleep_ms(delays_ms[round] + (int)(random() % 10));
        else
            killed_mid_write += wait_for_write(dir, strlen(va), strlen(vb), 3000);
        assert_int_equal(t_daemon_stop(&d, SIGKILL, 10), 128 + SIGKILL);
        unlink(d.log_path);
        pthread_join(th, NULL);
        /* one whole version on disk */
        char *disk = t_read_file(path, NULL);
        assert_non_null(disk);
        int is_a = !strcmp(disk, va), is_b = !strcmp(disk, vb);
        if (!is_a && !is_b)
            fprintf(stderr, "round %d: big.json is neither version (%zu bytes)\n", round,
                    strlen(disk));
        assert_true(is_a || is_b);
        seen_a += is_a;
        seen_b += is_b;
        free(disk);
        /* temp files may be left by the crash; plant a torn one too */
        char torn[64];
        snprintf(torn, sizeof torn, ".big.json.tmp.99999.%d", round);
        t_write_file(dir, torn, vb, strlen(vb) / 2);
        /* the restart loads it whole (strict: anything torn would stop the start) */
        start(&d, dir, extra);
        r = req(&d, "POST", "/v2/repository/index", AUTH, NULL, 0, 200);
        assert_int_equal(cJSON_GetArraySize(r.json), 1);
        assert_string_equal(t_item(t_index_entry(r.json, "big"), "state")->valuestring, "READY");
        t_resp_free(&r);
        char *out = infer_ok(&d, "big", x);
        assert_string_equal(out, is_a ? out_a : out_b);
        free(out);
    }
    stop(&d);
    DIR *dd = opendir(dir);
    assert_non_null(dd);
    struct dirent *de;
    while ((de = readdir(dd)))
        seen_tmp += !strncmp(de->d_name, ".big.json.tmp", 13) &&
                    strncmp(de->d_name, ".big.json.tmp.99999.", 20);
    closedir(dd);
    fprintf(stderr,
            "put_interrupted_by_kill: %d rounds (%d killed in the middle of a "
            "write), file was A %d / B %d times, %d temp files left\n",
            ROUNDS, killed_mid_write, seen_a, seen_b, seen_tmp);
    free(out_a);
    free(out_b);
    free(va);
    free(vb);
    free(x);
    rm_dir(dir);
}

struct inferer {
    const struct t_daemon *d;
    const char *body, *out_a, *out_b;
    struct putter *p;
    int n, n_a, n_b, n_err;
    char first_error[512];
};

static void *infer_loop(void *arg)
{
    struct inferer *w = arg;
    while (!atomic_load(&w->p->done) || w->n < 20) {
        long st;
        char *eb = NULL;
        char *t = infer_text(w->d, "x", w->body, &st, &eb);
        w->n++;
        if (t && !strcmp(t, w->out_a))
            w->n_a++;
        else if (t && !strcmp(t, w->out_b))
            w->n_b++;
        else {
            if (!w->n_err)
                snprintf(w->first_error, sizeof w->first_error, "status %ld: %.200s / %.200s", st,
                         t ? t : "", eb ? eb : "");
            w->n_err++;
        }
        free(t);
        free(eb);
    }
    return NULL;
}

/* Infers on x while another thread replaces it, alternating A and B: every reply is A's or
 * B's output exactly, never an error or a mix. */
static void concurrent_infer_while_replaced(void **state)
{
    (void)state;
    enum { IN = 64, HID = 256, OUT = 4, WORKERS = 4, PUTS = 30 };
    assert_int_equal(t_tmp_copy(dir, sizeof dir, "test-repo", NULL), 0);
    char *va = gen_model("x", IN, HID, OUT, 31), *vb = gen_model("x", IN, HID, OUT, 32);
    char *body = gen_input(IN);
    t_write_file(dir, "x.json", va, strlen(va));
    const char *extra[] = {"--admin-token", TOKEN, "--threads", "8", NULL};
    start(&d, dir, extra);
    char *out_a = infer_ok(&d, "x", body);
    struct t_resp r = req(&d, "PUT", "/v1/models/x", AUTH, vb, 0, 200);
    t_resp_free(&r);
    char *out_b = infer_ok(&d, "x", body);
    assert_string_not_equal(out_a, out_b);
    r = req(&d, "PUT", "/v1/models/x", AUTH, va, 0, 200);
    t_resp_free(&r);

    /* the putter starts with B (bodies[(i + 1) % 2]) */
    struct putter p = {.d = &d, .name = "x", .bodies = {va, vb}, .rounds = PUTS};
    struct inferer w[WORKERS];
    pthread_t th[WORKERS], tp;
    for (int i = 0; i < WORKERS; i++) {
        w[i] = (struct inferer){.d = &d, .body = body, .out_a = out_a, .out_b = out_b, .p = &p};
        assert_int_equal(pthread_create(&th[i], NULL, infer_loop, &w[i]), 0);
    }
    assert_int_equal(pthread_create(&tp, NULL, put_loop, &p), 0);
    pthread_join(tp, NULL);
    int n = 0, na = 0, nb = 0, nerr = 0;
    for (int i = 0; i < WORKERS; i++) {
        pthread_join(th[i], NULL);
        n += w[i].n;
        na += w[i].n_a;
        nb += w[i].n_b;
        nerr += w[i].n_err;
        if (w[i].n_err)
            fprintf(stderr, "worker %d: %d bad replies, first: %s\n", i, w[i].n_err,
                    w[i].first_error);
    }
    if (p.fail)
        fprintf(stderr, "PUT failures: %d, first: %s\n", p.fail, p.first_error);
    assert_int_equal(p.fail, 0);
    assert_int_equal(p.ok, PUTS);
    assert_int_equal(nerr, 0);
    assert_int_equal(na + nb, n);
    assert_true(na > 0 && nb > 0);
    /* the last PUT (i = PUTS - 1, odd) installed A */
    char *last = infer_ok(&d, "x", body);
    assert_string_equal(last, PUTS % 2 ? out_b : out_a);
    free(last);
    stop(&d);
    free(out_a);
    free(out_b);
    free(va);
    free(vb);
    free(body);
    rm_dir(dir);
}

/* After each test (also a failed one): no daemon left running, no temp dir left. */
static int cleanup(void **state)
{
    (void)state;
    if (d.pid > 0) {
        t_daemon_stop(&d, SIGKILL, 5);
        fprintf(stderr, "daemon log kept: %s\n", d.log_path);
    }
    rm_dir(dir);
    rm_dir(tokdir);
    return 0;
}

int main(void)
{
    curl_global_init(CURL_GLOBAL_ALL);
    srandom((unsigned)time(NULL));
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_teardown(control_forbidden_without_token, cleanup),
        cmocka_unit_test_teardown(control_wrong_tokens, cleanup),
        cmocka_unit_test_teardown(control_token_file, cleanup),
        cmocka_unit_test_teardown(index_lists_unavailable, cleanup),
        cmocka_unit_test_teardown(unload_and_load, cleanup),
        cmocka_unit_test_teardown(put_replace_delete, cleanup),
        cmocka_unit_test_teardown(restart_finds_put_model, cleanup),
        cmocka_unit_test_teardown(strict_models_refuses_broken, cleanup),
        cmocka_unit_test_teardown(put_interrupted_by_kill, cleanup),
        cmocka_unit_test_teardown(concurrent_infer_while_replaced, cleanup),
    };
    int rc = cmocka_run_group_tests_name("http_repo", tests, NULL, NULL);
    curl_global_cleanup();
    return rc;
}
