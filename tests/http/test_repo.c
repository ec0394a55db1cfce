/* Model control against the real daemon: admin token (none configured -> 403, missing or
 * wrong -> 401, --admin-token-file), POST /v2/repository/index (open) listing READY / UNAVAILABLE /
 * UNAVAILABLE with reasons, load/unload, PUT/DELETE /v1/models/{name}, uploads of ONNX files
 * and of JSON models with their safetensors weights (multipart), max_model_bytes,
 * --strict-models, a restart that finds a PUT model, PUTs and uploads interrupted by SIGKILL
 * (no torn file, temp files and unnamed uploaded weights removed at the next start), and
 * infers racing with replacements. Every model_dir here is a mkdtemp copy. */
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
#include "server/sb.h"
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

static void req_error(const struct t_daemon *dm, const char *method, const char *path,
                      const char *auth, const char *body, long status, const char *part)
{
    struct t_resp r = t_call(dm, method, path, auth, body, 0, status);
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
    struct t_resp r = t_call(dm, "GET", "/v2/models/simple_nn/ready", NULL, NULL, 0, 200);
    t_resp_free(&r);
    r = t_call(dm, "GET", "/v2/models/simple_nn", NULL, NULL, 0, 200);
    t_resp_free(&r);
    r = t_call(dm, "GET", "/v2/models/newmodel", NULL, NULL, 0, 404);
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
    struct t_resp r = t_call(&d, "GET", "/v1/models", NULL, NULL, 0, 200);
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
            struct t_resp r =
                t_call(&d, ctls[i].method, ctls[i].path, bad[a], ctls[i].body, 0, 401);
            t_check_error(&r, "Authorization");
            char www[128];
            assert_non_null(t_resp_header(&r, "WWW-Authenticate", www, sizeof www));
            assert_non_null(strstr(www, "Bearer"));
            t_resp_free(&r);
        }
    check_untouched(&d, dir);
    /* the right token works */
    struct t_resp r = t_call(&d, "POST", "/v2/repository/index", AUTH, NULL, 0, 200);
    assert_true(cJSON_IsArray(r.json));
    assert_non_null(t_index_entry(r.json, "simple_nn"));
    t_resp_free(&r);
    r = t_call(&d, "POST", "/v2/repository/models/simple_nn/load", AUTH, NULL, 0, 200);
    t_resp_free(&r);
    /* the scheme is case-insensitive (RFC 7235), the token is not */
    r = t_call(&d, "POST", "/v2/repository/models/simple_nn/load", "Authorization: bearer " TOKEN,
               NULL, 0, 200);
    t_resp_free(&r);
    /* the index only reads: open, as GET /v1/models (and Triton) */
    r = t_call(&d, "POST", "/v2/repository/index", NULL, NULL, 0, 200);
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
    struct t_resp r = t_call(&d, "POST", load, "Authorization: Bearer filetok", NULL, 0, 200);
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
    struct t_resp r = t_call(dm, "POST", "/v2/models/tiny/infer", NULL, b.p, 0, 200);
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
    struct t_resp r = t_call(&d, "POST", "/v2/repository/index", AUTH, NULL, 0, 200);
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
    r = t_call(&d, "POST", "/v2/repository/index", AUTH, "{\"ready\": true}", 0, 200);
    assert_int_equal(cJSON_GetArraySize(r.json), 1);
    assert_non_null(t_index_entry(r.json, "tiny"));
    t_resp_free(&r);
    req_error(&d, "POST", "/v2/repository/index", AUTH, "[1, 2", 400, NULL);
    /* /metrics: ready gauge per model */
    r = t_call(&d, "GET", "/metrics", NULL, NULL, 0, 200);
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
    struct t_resp r = t_call(&d, "POST", "/v2/repository/models/tiny/unload", AUTH, NULL, 0, 200);
    assert_string_equal(t_item(r.json, "state")->valuestring, "UNAVAILABLE");
    t_resp_free(&r);
    req_error(&d, "POST", "/v2/models/tiny/infer", NULL, x, 503, "tiny");
    req_error(&d, "GET", "/v2/models/tiny/ready", NULL, NULL, 503, NULL);
    r = t_call(&d, "POST", "/v2/repository/index", AUTH, NULL, 0, 200);
    assert_string_equal(t_item(t_index_entry(r.json, "tiny"), "state")->valuestring, "UNAVAILABLE");
    assert_string_equal(t_item(t_index_entry(r.json, "tiny"), "reason")->valuestring, "unloaded");
    t_resp_free(&r);
    r = t_call(&d, "POST", "/v2/repository/models/tiny/load", AUTH, NULL, 0, 200);
    assert_string_equal(t_item(r.json, "state")->valuestring, "READY");
    t_resp_free(&r);
    char *after = infer_ok(&d, "tiny", x);
    assert_string_equal(after, before);
    r = t_call(&d, "GET", "/v2/models/tiny/ready", NULL, NULL, 0, 200);
    t_resp_free(&r);
    /* loading a broken model reports why; unknown names are 404 */
    req_error(&d, "POST", "/v2/repository/models/bad_shape/load", AUTH, NULL, 400, "layers[2]");
    req_error(&d, "POST", "/v2/repository/models/nope/load", AUTH, NULL, 404, "nope");
    req_error(&d, "POST", "/v2/repository/models/nope/unload", AUTH, NULL, 404, "nope");
    /* fixing the file on disk and loading makes it READY */
    char *good = gen_model("bad_json", 4, 3, 2, 7);
    t_write_file(dir, "bad_json.json", good, strlen(good));
    free(good);
    r = t_call(&d, "POST", "/v2/repository/models/bad_json/load", AUTH, NULL, 0, 200);
    t_resp_free(&r);
    char *fixed = infer_ok(&d, "bad_json",
                           "{\"inputs\": [{\"name\": \"input\", \"datatype\": \"FP32\", "
                           "\"shape\": [1, 4], \"data\": [1, 2, 3, 4]}]}");
    free(fixed);
    r = t_call(&d, "POST", "/v2/repository/index", AUTH, NULL, 0, 200);
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
    struct t_resp r = t_call(&d, "PUT", "/v1/models/m1", AUTH, a, 0, 201);
    assert_string_equal(t_item(r.json, "name")->valuestring, "m1");
    assert_string_equal(t_item(r.json, "state")->valuestring, "READY");
    t_resp_free(&r);
    /* a 201 is counted as one, not as an internal error */
    assert_int_equal(
        t_metrics_wait(&d, "relud_requests_total{route=\"/v1/models/{name}\",code=\"201\"} 1", &r),
        0);
    assert_non_null(strstr(r.body, "relud_errors_total{class=\"internal\"} 0"));
    t_resp_free(&r);
    char *out_a = infer_ok(&d, "m1", x);
    r = t_call(&d, "GET", "/v2/models/m1", NULL, NULL, 0, 200);
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
    r = t_call(&d, "PUT", "/v1/models/m1", AUTH, b, 0, 200);
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
    r = t_call(&d, "GET", "/v2/models/m1/stats", NULL, NULL, 0, 200);
    const cJSON *ms = cJSON_GetArrayItem(t_item(r.json, "model_stats"), 0);
    assert_string_equal(t_item(ms, "name")->valuestring, "m1");
    assert_int_equal(
        (int)t_item(t_item(t_item(ms, "inference_stats"), "success"), "count")->valuedouble, 3);
    t_resp_free(&r);
    disk = t_read_file(path, NULL);
    assert_string_equal(disk, b);
    free(disk);
    /* delete: 404 after, file gone, second delete 404 */
    r = t_call(&d, "DELETE", "/v1/models/m1", AUTH, NULL, 0, 200);
    t_resp_free(&r);
    req_error(&d, "POST", "/v2/models/m1/infer", NULL, x, 404, "m1");
    req_error(&d, "GET", "/v2/models/m1", NULL, NULL, 404, "m1");
    assert_false(t_file_exists(dir, "m1.json"));
    req_error(&d, "DELETE", "/v1/models/m1", AUTH, NULL, 404, "m1");
    r = t_call(&d, "POST", "/v2/repository/index", AUTH, NULL, 0, 200);
    assert_null(t_index_entry(r.json, "m1"));
    t_resp_free(&r);
    /* and a PUT after the delete creates it again */
    r = t_call(&d, "PUT", "/v1/models/m1", AUTH, a, 0, 201);
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
    struct t_resp r = t_call(&d, "PUT", "/v1/models/kept", AUTH, m, 0, 201);
    t_resp_free(&r);
    const char *x = "{\"inputs\": [{\"name\": \"input\", \"datatype\": \"FP32\", \"shape\": [2, "
                    "5], \"data\": [1, 2, 3, 4, 5, -1, -2, 0.5, 0, 3]}]}";
    char *before = infer_ok(&d, "kept", x);
    stop(&d);
    start(&d, dir, extra);
    r = t_call(&d, "POST", "/v2/repository/index", AUTH, NULL, 0, 200);
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
    size_t lens[2];    /* 0: strlen */
    const char *ctype; /* a Content-Type header line, or NULL */
    int rounds;        /* 0: until the first failure */
    atomic_int done, ok, fail;
    char first_error[512];
};

static void *put_loop(void *arg)
{
    struct putter *p = arg;
    char url[512];
    snprintf(url, sizeof url, "%s/v1/models/%s", p->d->url, p->name);
    const char *hdrs[] = {AUTH, p->ctype, NULL};
    for (int i = 0; !p->rounds || i < p->rounds; i++) {
        const char *body = p->bodies[(i + 1) % 2];
        size_t len = p->lens[(i + 1) % 2] ? p->lens[(i + 1) % 2] : strlen(body);
        struct t_resp r;
        int rc = t_http("PUT", url, body, len, hdrs, &r);
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
 * the crash are not models, and the start removes them). */
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
    struct t_resp r = t_call(&d, "PUT", "/v1/models/big", AUTH, vb, 0, 200);
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
        r = t_call(&d, "POST", "/v2/repository/index", AUTH, NULL, 0, 200);
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
        seen_tmp += !strncmp(de->d_name, ".big.json.tmp", 13);
    closedir(dd);
    assert_int_equal(seen_tmp, 0); /* the crash's and the planted ones: removed at start */
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

/* ---- uploads: ONNX files, JSON models with their safetensors weights ---------------- */

#define BOUNDARY "relud-test-7Hq2"
#define MP_CT "Content-Type: multipart/form-data; boundary=" BOUNDARY
#define ONNX_CT "Content-Type: application/onnx"

/* A file of the repository (malloc'd; *len its size). */
static char *repo_file(const char *rel, size_t *len)
{
    char path[512];
    snprintf(path, sizeof path, "%s/%s", t_root(), rel);
    char *p = t_read_file(path, len);
    assert_non_null(p);
    return p;
}

/* One request with a body of len bytes and up to two header lines (NULL: none). */
static struct t_resp req_h(const struct t_daemon *dm, const char *method, const char *path,
                           const char *h1, const char *h2, const void *body, size_t len,
                           long status)
{
    char url[512];
    snprintf(url, sizeof url, "%s%s", dm->url, path);
    const char *hdrs[] = {h1, h2, NULL};
    struct t_resp r;
    assert_int_equal(t_http(method, url, body, len, h1 ? hdrs : NULL, &r), 0);
    if (r.status != status)
        fprintf(stderr, "%s %s\nresponse %ld (want %ld): %.2000s\n", method, path, r.status, status,
                r.body);
    assert_int_equal(r.status, status);
    return r;
}

static void req_h_error(const struct t_daemon *dm, const char *path, const char *h1, const char *h2,
                        const void *body, size_t len, long status, const char *part)
{
    struct t_resp r = req_h(dm, "PUT", path, h1, h2, body, len, status);
    t_check_error(&r, part);
    t_resp_free(&r);
}

struct mp_part {
    const char *name, *filename; /* filename NULL: none */
    const void *data;
    size_t len;
};

/* A multipart/form-data body (boundary BOUNDARY) of n parts, as curl -F writes it (a part
 * of len 0 is a string). */
static char *mp_body(const struct mp_part *parts, int n, size_t *len)
{
    struct srv_sb b = {0};
    for (int i = 0; i < n; i++) {
        srv_sb_printf(&b, "--" BOUNDARY "\r\nContent-Disposition: form-data; name=\"%s\"",
                      parts[i].name);
        if (parts[i].filename)
            srv_sb_printf(&b, "; filename=\"%s\"", parts[i].filename);
        srv_sb_printf(&b, "\r\nContent-Type: application/octet-stream\r\n\r\n");
        srv_sb_append(&b, parts[i].data, parts[i].len ? parts[i].len : strlen(parts[i].data));
        srv_sb_puts(&b, "\r\n");
    }
    srv_sb_puts(&b, "--" BOUNDARY "--\r\n");
    return srv_sb_take(&b, len);
}

/* The POST /v2/models/NAME/infer of one row of in values 0.5, -0.25, ... as dtype ("FP32",
 * "FP64") under input name iname. */
static char *gen_input_as(int in, const char *iname, const char *dtype)
{
    struct srv_sb b = {0};
    srv_sb_printf(&b,
                  "{\"inputs\": [{\"name\": \"%s\", \"datatype\": \"%s\", \"shape\": [1, %d], "
                  "\"data\": [",
                  iname, dtype, in);
    for (int k = 0; k < in; k++)
        srv_sb_printf(&b, k ? ",%g" : "%g", (k % 7) * 0.25 - 0.5);
    srv_sb_printf(&b, "]}]}");
    return b.p;
}

/* Two infer outputs (JSON arrays) agree as torch.allclose(rtol 1e-5, atol 1e-6). */
static void assert_close(const char *a, const char *b)
{
    cJSON *x = cJSON_Parse(a), *y = cJSON_Parse(b);
    assert_non_null(x);
    assert_non_null(y);
    assert_int_equal(cJSON_GetArraySize(x), cJSON_GetArraySize(y));
    for (int i = 0; i < cJSON_GetArraySize(x); i++) {
        double u = cJSON_GetArrayItem(x, i)->valuedouble, v = cJSON_GetArrayItem(y, i)->valuedouble;
        if (!(fabs(u - v) <= 1e-6 + 1e-5 * fabs(v)))
            fprintf(stderr, "%s\nvs %s\n", a, b);
        assert_true(fabs(u - v) <= 1e-6 + 1e-5 * fabs(v));
    }
    cJSON_Delete(x);
    cJSON_Delete(y);
}

/* The files of mdir whose names start with prefix (dotfiles too). */
static int count_files(const char *mdir, const char *prefix)
{
    DIR *dd = opendir(mdir);
    assert_non_null(dd);
    int n = 0;
    struct dirent *de;
    while ((de = readdir(dd)))
        n += strcmp(de->d_name, ".") && strcmp(de->d_name, "..") &&
             !strncmp(de->d_name, prefix, strlen(prefix));
    closedir(dd);
    return n;
}

/* The "weights" a model file in mdir names, into buf. */
static void json_weights_of(const char *mdir, const char *file, char *buf, size_t cap)
{
    char path[256];
    snprintf(path, sizeof path, "%s/%s", mdir, file);
    char *t = t_read_file(path, NULL);
    assert_non_null(t);
    cJSON *j = cJSON_Parse(t);
    assert_non_null(j);
    const cJSON *w = cJSON_GetObjectItemCaseSensitive(j, "weights");
    assert_true(cJSON_IsString(w));
    snprintf(buf, cap, "%s", w->valuestring);
    cJSON_Delete(j);
    free(t);
}

/* PUT of an ONNX file (application/onnx or application/octet-stream): served as the same
 * model from a file would be, refused when damaged or unsupported (the reader's message),
 * refused beside a NAME.json and vice versa, capped by max_model_bytes (its token checked
 * first), DELETE removes it. */
static void put_onnx(void **state)
{
    (void)state;
    assert_int_equal(t_tmp_copy(dir, sizeof dir, "test-repo", "config/models"), 0);
    const char *extra[] = {"--admin-token", TOKEN, "--strict-models", NULL};
    start(&d, dir, extra);
    size_t olen, tlen;
    char *onnx = repo_file("config/models/simple_nn_onnx.onnx", &olen);
    struct t_resp r = req_h(&d, "PUT", "/v1/models/onx", AUTH, ONNX_CT, onnx, olen, 201);
    assert_string_equal(t_item(r.json, "state")->valuestring, "READY");
    t_resp_free(&r);
    r = req_h(&d, "PUT", "/v1/models/onx", AUTH, "Content-Type: application/octet-stream", onnx,
              olen, 200);
    t_resp_free(&r);
    /* the file is the body; the model is the graph's, with the JSON model's numbers */
    char path[256];
    snprintf(path, sizeof path, "%s/onx.onnx", dir);
    size_t dlen;
    char *disk = t_read_file(path, &dlen);
    assert_non_null(disk);
    assert_int_equal(dlen, olen);
    assert_memory_equal(disk, onnx, olen);
    free(disk);
    r = t_call(&d, "GET", "/v2/models/onx", NULL, NULL, 0, 200);
    assert_string_equal(t_item(r.json, "platform")->valuestring, "onnxruntime_onnx");
    t_resp_free(&r);
    char *xo = gen_input_as(10, "x", "FP32"), *xj = gen_input_as(10, "input", "FP32");
    char *out_onnx = infer_ok(&d, "onx", xo), *out_json = infer_ok(&d, "simple_nn", xj);
    assert_close(out_onnx, out_json);
    /* damaged or unsupported files: 400 with the reader's message; the model stays */
    req_h_error(&d, "/v1/models/onx", AUTH, ONNX_CT, onnx, olen / 2, 400, "onx.onnx: ");
    char *conv = repo_file("tests/fixtures/onnx/bad_conv.onnx", &tlen);
    req_h_error(&d, "/v1/models/onx", AUTH, ONNX_CT, conv, tlen, 400, "Conv");
    free(conv);
    char *ext = repo_file("tests/fixtures/onnx/ext_o13.onnx", &tlen);
    req_h_error(&d, "/v1/models/onx", AUTH, ONNX_CT, ext, tlen, 400, "external data");
    free(ext);
    req_h_error(&d, "/v1/models/onx", AUTH, ONNX_CT, "{}", 2, 400, "onx.onnx: ");
    /* sent without its Content-Type, it is read as JSON: the message says what to send */
    req_h_error(&d, "/v1/models/onx", AUTH, NULL, onnx, olen, 400,
                "Content-Type: application/onnx");
    char *again = infer_ok(&d, "onx", xo);
    assert_string_equal(again, out_onnx);
    free(again);
    /* one model, one file: ONNX over NAME.json and JSON over NAME.onnx are refused */
    req_h_error(&d, "/v1/models/simple_nn", AUTH, ONNX_CT, onnx, olen, 400, "simple_nn.json");
    assert_false(t_file_exists(dir, "simple_nn.onnx"));
    req_error(&d, "PUT", "/v1/models/onx", AUTH, "{\"layers\": [{\"type\": \"relu\"}]}", 400,
              "onx.onnx");
    /* token: none or wrong is 401, before the body is read */
    req_h_error(&d, "/v1/models/onx", ONNX_CT, NULL, onnx, olen, 401, "Authorization");
    req_h_error(&d, "/v1/models/onx", "Authorization: Bearer nope", ONNX_CT, onnx, olen, 401,
                "wrong bearer token");
    assert_int_equal(count_files(dir, "."), 0); /* no temp file left */
    r = t_call(&d, "DELETE", "/v1/models/onx", AUTH, NULL, 0, 200);
    t_resp_free(&r);
    assert_false(t_file_exists(dir, "onx.onnx"));
    stop(&d);

    /* max_model_bytes caps uploads (413 from Content-Length, and chunked), not other bodies;
       max_body_bytes does not cap uploads */
    const char *small[] = {"--admin-token", TOKEN, "--max-model-bytes", "2KiB", "--max-body-bytes",
                           "1KiB",          NULL};
    start(&d, dir, small);
    char *big = repo_file("config/models/mnist_mlp.safetensors", &tlen);
    req_h_error(&d, "/v1/models/onx", AUTH, ONNX_CT, big, tlen, 413, "max_model_bytes (2048)");
    req_h_error(&d, "/v1/models/onx", AUTH, "Transfer-Encoding: chunked", big, tlen, 413,
                "max_model_bytes (2048)");
    req_h_error(&d, "/v1/models/onx", NULL, NULL, big, tlen, 401, "Authorization");
    r = req_h(&d, "PUT", "/v1/models/onx", AUTH, ONNX_CT, onnx, olen, 201); /* 491 bytes */
    t_resp_free(&r);
    char *fwd = malloc(1500);
    assert_non_null(fwd);
    int n = snprintf(fwd, 1500, "{\"input\": [1], \"layers\": [{\"type\": \"relu\"}]");
    memset(fwd + n, ' ', 1400 - (size_t)n);
    snprintf(fwd + 1400, 100, "}");
    req_error(&d, "POST", "/v1/forward", NULL, fwd, 413, "max_body_bytes (1024)");
    free(fwd);
    /* a JSON model over max_body_bytes but within max_model_bytes is taken */
    char *m = gen_model("wide", 12, 8, 2, 5);
    assert_true(strlen(m) > 1024 && strlen(m) < 2048);
    r = t_call(&d, "PUT", "/v1/models/wide", AUTH, m, 0, 201);
    t_resp_free(&r);
    free(m);
    stop(&d);
    free(big);
    free(xo);
    free(xj);
    free(out_onnx);
    free(out_json);
    free(onnx);
    rm_dir(dir);
}

/* PUT of a JSON model and its safetensors file as multipart/form-data: served as the same
 * files in model_dir are; the weights written as NAME.put-<hex>.safetensors and named by
 * NAME.json; a replacement removes the weights it no longer uses; a restart serves it;
 * malformed bodies are 400 naming the fault; DELETE removes the weights a PUT wrote. */
static void put_multipart(void **state)
{
    (void)state;
    assert_int_equal(t_tmp_copy(dir, sizeof dir, "test-repo", NULL), 0);
    size_t wlen, jlen;
    char *w = repo_file("tests/fixtures/models/tiny.safetensors", &wlen);
    char *tj = repo_file("tests/fixtures/models/tiny.json", &jlen);
    t_write_file(dir, "tiny.json", tj, jlen);
    t_write_file(dir, "tiny.safetensors", w, wlen);
    const char *extra[] = {"--admin-token", TOKEN, "--strict-models", NULL};
    start(&d, dir, extra);
    const char *mj = "{\"description\": \"tiny, uploaded\", \"dtype\": \"float64\", \"weights\": "
                     "\"tiny.safetensors\", \"layers\": [{\"type\": \"linear\"}, {\"type\": "
                     "\"tanh\"}]}";
    struct mp_part parts[] = {{"model", "up.json", mj, strlen(mj)},
                              {"weights", "w.safetensors", w, wlen}};
    size_t blen;
    char *body = mp_body(parts, 2, &blen);
    struct t_resp r = req_h(&d, "PUT", "/v1/models/up", AUTH, MP_CT, body, blen, 201);
    t_resp_free(&r);
    free(body);
    char *x = gen_input_as(4, "input", "FP64");
    char *out_ref = infer_ok(&d, "tiny", x), *out_up = infer_ok(&d, "up", x);
    assert_string_equal(out_up, out_ref);
    /* on disk: up.json naming up.put-<16 hex>.safetensors, the weights byte for byte */
    char wname[128], path[256];
    json_weights_of(dir, "up.json", wname, sizeof wname);
    assert_int_equal(strlen(wname), strlen("up.put-0123456789abcdef.safetensors"));
    assert_int_equal(strncmp(wname, "up.put-", 7), 0);
    snprintf(path, sizeof path, "%s/%s", dir, wname);
    size_t dlen;
    char *disk = t_read_file(path, &dlen);
    assert_non_null(disk);
    assert_int_equal(dlen, wlen);
    assert_memory_equal(disk, w, wlen);
    free(disk);
    /* the same weights again, the model without "weights" (it is added): the same file */
    const char *mj2 = "{\"dtype\": \"float64\", \"layers\": [{\"type\": \"linear\"}, {\"type\": "
                      "\"tanh\"}]}";
    parts[0] = (struct mp_part){"model", NULL, mj2, strlen(mj2)};
    body = mp_body(parts, 2, &blen);
    r = req_h(&d, "PUT", "/v1/models/up", AUTH, MP_CT, body, blen, 200);
    t_resp_free(&r);
    free(body);
    char wname2[128];
    json_weights_of(dir, "up.json", wname2, sizeof wname2);
    assert_string_equal(wname2, wname);
    assert_int_equal(count_files(dir, "up.put-"), 1);
    /* other weights: a new file, the old one removed, new numbers */
    char *w2 = malloc(wlen);
    assert_non_null(w2);
    memcpy(w2, w, wlen);
    w2[wlen - 1] = 0x3f; /* the last float64's top byte: a finite value near 1 */
    w2[wlen - 2] = (char)0xf0;
    parts[1] = (struct mp_part){"weights", NULL, w2, wlen};
    body = mp_body(parts, 2, &blen);
    r = req_h(&d, "PUT", "/v1/models/up", AUTH, MP_CT, body, blen, 200);
    t_resp_free(&r);
    free(body);
    json_weights_of(dir, "up.json", wname2, sizeof wname2);
    assert_string_not_equal(wname2, wname);
    assert_false(t_file_exists(dir, wname));
    assert_true(t_file_exists(dir, wname2));
    assert_int_equal(count_files(dir, "up.put-"), 1);
    char *out_up2 = infer_ok(&d, "up", x);
    assert_string_not_equal(out_up2, out_ref);

    /* malformed bodies: 400 naming the fault; nothing changes */
    struct bad {
        const char *ctype;
        const char *body; /* NULL: built from parts below */
        struct mp_part parts[3];
        int nparts;
        const char *part;
    } bads[] = {
        {MP_CT, NULL, {{"model", NULL, mj, strlen(mj)}}, 1, "part \"weights\" is missing"},
        {MP_CT, NULL, {{"weights", NULL, w, wlen}}, 1, "part \"model\" is missing"},
        {MP_CT,
         NULL,
         {{"model", NULL, mj, strlen(mj)},
          {"model", NULL, mj, strlen(mj)},
          {"weights", NULL, w, wlen}},
         3,
         "part \"model\" appears twice"},
        {MP_CT,
         NULL,
         {{"model", NULL, mj, strlen(mj)}, {"weights", NULL, w, wlen}, {"extra", NULL, "1", 1}},
         3,
         "unknown part \"extra\""},
        {"Content-Type: multipart/form-data", "x", {{0}}, 0, "needs a boundary parameter"},
        {"Content-Type: multipart/form-data; boundary=\"\"", "x", {{0}}, 0, "boundary"},
        {MP_CT, "preamble\r\n--" BOUNDARY "--\r\n", {{0}}, 0, "does not start with the boundary"},
        {MP_CT, "--" BOUNDARY "--\r\n", {{0}}, 0, "no parts"},
        {MP_CT,
         "--" BOUNDARY "\r\nContent-Disposition: form-data; name=\"model\"\r\n\r\n{}",
         {{0}},
         0,
         "part 1 (\"model\"): no boundary delimiter after its content"},
        {MP_CT,
         "--" BOUNDARY "\r\nContent-Type: text/plain\r\n\r\n{}\r\n--" BOUNDARY "--",
         {{0}},
         0,
         "part 1: no Content-Disposition header"},
        {MP_CT,
         "--" BOUNDARY
         "\r\nContent-Disposition: attachment; name=\"model\"\r\n\r\n{}\r\n--" BOUNDARY "--",
         {{0}},
         0,
         "not form-data"},
        {MP_CT,
         "--" BOUNDARY "\r\nContent-Disposition: form-data; filename=\"a\"\r\n\r\n{}\r\n--" BOUNDARY
         "--",
         {{0}},
         0,
         "has no name"},
        {MP_CT,
         "--" BOUNDARY "\r\nContent-Disposition: form-data; name=\"model\"\r\n",
         {{0}},
         0,
         "headers do not end"},
        {MP_CT, "--" BOUNDARY "junk", {{0}}, 0, "not followed by CRLF"},
        {MP_CT,
         NULL,
         {{"model", NULL, mj, strlen(mj)}, {"weights", "bad.safetensors", mj, strlen(mj)}},
         2,
         "bad.safetensors: "},
        {MP_CT,
         NULL,
         {{"model", NULL,
           "{\"layers\": [{\"type\": \"linear\"}, {\"type\": \"relu\"}, {\"type\": \"linear\"}]}",
           0},
          {"weights", NULL, w, wlen}},
         2,
         "layers[2]"},
        {MP_CT,
         NULL,
         {{"model", NULL, "{\"weights\": 5, \"layers\": [{\"type\": \"linear\"}]}", 0},
          {"weights", NULL, w, wlen}},
         2,
         "weights: expected a file name or null"},
        {MP_CT,
         NULL,
         {{"model", NULL,
           "{\"name\": \"other\", \"layers\": [{\"type\": \"linear\"}, {\"type\": \"tanh\"}]}", 0},
          {"weights", NULL, w, wlen}},
         2,
         "\"other\" does not match"},
    };
    for (size_t i = 0; i < sizeof bads / sizeof *bads; i++) {
        size_t n = bads[i].body ? strlen(bads[i].body) : 0;
        char *b = bads[i].body ? NULL : mp_body(bads[i].parts, bads[i].nparts, &n);
        req_h_error(&d, "/v1/models/up", AUTH, bads[i].ctype, b ? b : bads[i].body, n, 400,
                    bads[i].part);
        free(b);
    }
    req_h_error(&d, "/v1/models/up", AUTH, "Content-Type: multipart/mixed; boundary=b", "x", 1, 415,
                "multipart/mixed");
    char *still = infer_ok(&d, "up", x);
    assert_string_equal(still, out_up2);
    free(still);
    assert_int_equal(count_files(dir, "up.put-"), 1);
    assert_int_equal(count_files(dir, "."), 0);
    /* no token: 401 */
    parts[0] = (struct mp_part){"model", NULL, mj, strlen(mj)};
    body = mp_body(parts, 2, &blen);
    req_h_error(&d, "/v1/models/up", MP_CT, NULL, body, blen, 401, "Authorization");
    /* an ONNX model's name takes no JSON upload */
    size_t olen;
    char *onnx = repo_file("config/models/simple_nn_onnx.onnx", &olen);
    r = req_h(&d, "PUT", "/v1/models/onx", AUTH, ONNX_CT, onnx, olen, 201);
    t_resp_free(&r);
    req_h_error(&d, "/v1/models/onx", AUTH, MP_CT, body, blen, 400, "onx.onnx");
    free(onnx);
    free(body);
    /* a restart serves it (strict: everything loads), and keeps its weights */
    stop(&d);
    start(&d, dir, extra);
    char *after = infer_ok(&d, "up", x);
    assert_string_equal(after, out_up2);
    free(after);
    assert_true(t_file_exists(dir, wname2));
    /* a JSON PUT naming a file of its own: the uploaded weights go */
    char *inl = gen_model("up", 4, 3, 2, 9);
    r = t_call(&d, "PUT", "/v1/models/up", AUTH, inl, 0, 200);
    t_resp_free(&r);
    free(inl);
    assert_int_equal(count_files(dir, "up.put-"), 0);
    /* DELETE removes the weights a PUT wrote, never a file of the user's */
    parts[0] = (struct mp_part){"model", NULL, mj, strlen(mj)};
    body = mp_body(parts, 2, &blen);
    r = req_h(&d, "PUT", "/v1/models/up", AUTH, MP_CT, body, blen, 200);
    t_resp_free(&r);
    free(body);
    assert_int_equal(count_files(dir, "up.put-"), 1);
    r = t_call(&d, "DELETE", "/v1/models/up", AUTH, NULL, 0, 200);
    t_resp_free(&r);
    assert_int_equal(count_files(dir, "up."), 0);
    assert_true(t_file_exists(dir, "tiny.safetensors"));
    stop(&d);
    free(out_ref);
    free(out_up);
    free(out_up2);
    free(x);
    free(w2);
    free(w);
    free(tj);
    rm_dir(dir);
}

/* Polls mdir up to timeout_ms for a temp file of a PUT (".<prefix>...tmp.<pid>.<n>", not one
 * the test planted: pid 99999). 1 if seen. */
static int wait_for_tmp(const char *mdir, const char *prefix, int timeout_ms)
{
    struct timespec t0, t;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    for (;;) {
        DIR *dd = opendir(mdir);
        if (dd) {
            struct dirent *de;
            int found = 0;
            while (!found && (de = readdir(dd)))
                found = de->d_name[0] == '.' && !strncmp(de->d_name + 1, prefix, strlen(prefix)) &&
                        strstr(de->d_name, ".tmp.") && !strstr(de->d_name, ".tmp.99999.");
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

/* A safetensors file of Linear(in, hid) + ReLU + Linear(hid, out), F32 from an LCG. */
static char *gen_st(int in, int hid, int out, unsigned seed, size_t *len)
{
    size_t n[4] = {(size_t)hid * in, (size_t)hid, (size_t)out * hid, (size_t)out}, off = 0;
    const char *names[4] = {"0.weight", "0.bias", "2.weight", "2.bias"};
    struct srv_sb h = {0};
    srv_sb_puts(&h, "{");
    for (int i = 0; i < 4; i++) {
        srv_sb_printf(&h, "%s\"%s\": {\"dtype\": \"F32\", \"shape\": ", i ? ", " : "", names[i]);
        if (i % 2 == 0)
            srv_sb_printf(&h, "[%d, %d]", i ? out : hid, i ? hid : in);
        else
            srv_sb_printf(&h, "[%d]", i == 1 ? hid : out);
        srv_sb_printf(&h, ", \"data_offsets\": [%zu, %zu]}", off, off + n[i] * 4);
        off += n[i] * 4;
    }
    srv_sb_puts(&h, "}");
    while (h.len % 8)
        srv_sb_puts(&h, " ");
    size_t total = 8 + h.len + off;
    unsigned char *b = malloc(total);
    assert_non_null(b);
    uint64_t hl = h.len;
    for (int i = 0; i < 8; i++)
        b[i] = (unsigned char)(hl >> (8 * i));
    memcpy(b + 8, h.p, h.len);
    srv_sb_free(&h);
    uint64_t s = seed * 2654435761u + 1;
    float *f = malloc(off);
    assert_non_null(f);
    for (size_t i = 0; i < off / 4; i++) {
        s = s * 6364136223846793005ull + 1442695040888963407ull;
        f[i] = (float)(((double)(s >> 40) / (double)(1ull << 24) * 2 - 1) * 0.05);
    }
    memcpy(b + 8 + hl, f, off); /* little-endian hosts (x86-64, arm64) */
    free(f);
    *len = total;
    return (char *)b;
}

/* Uploads interrupted by SIGKILL: a multipart PUT (JSON + 2 MiB of weights) of "big" and
 * an ONNX PUT of "onx" race a kill -9 at random moments; after each, the model on disk is
 * whole (big.json names a weights file holding one version whole, onx.onnx is one file
 * whole), and a strict restart serves it, with no temp file and no unnamed uploaded weights
 * left (planted ones too), a weights file of the user's kept. */
static void put_upload_interrupted_by_kill(void **state)
{
    (void)state;
    enum { IN = 512, HID = 1024, OUT = 2, ROUNDS = 6 };
    assert_int_equal(t_tmp_copy(dir, sizeof dir, "test-repo", NULL), 0);
    size_t wl[2], ol[2], bl[2];
    char *w[2] = {gen_st(IN, HID, OUT, 41, &wl[0]), gen_st(IN, HID, OUT, 42, &wl[1])};
    char *onnx[2] = {repo_file("tests/fixtures/onnx/mlp_a_o13.onnx", &ol[0]),
                     repo_file("tests/fixtures/onnx/mlp_b_o13.onnx", &ol[1])};
    const char *mj = "{\"layers\": [{\"type\": \"linear\"}, {\"type\": \"relu\"}, {\"type\": "
                     "\"linear\"}]}";
    char *mp[2];
    for (int v = 0; v < 2; v++) {
        struct mp_part parts[] = {{"model", "big.json", mj, 0},
                                  {"weights", "big.safetensors", w[v], wl[v]}};
        mp[v] = mp_body(parts, 2, &bl[v]);
    }
    char *x = gen_input(IN);
    t_write_str(dir, "big.safetensors", "a file of the user's, named by no model");
    const char *extra[] = {"--admin-token", TOKEN, "--strict-models", NULL};
    start(&d, dir, extra);
    char *out[2];
    for (int v = 1; v >= 0; v--) { /* ends on A */
        struct t_resp r =
            req_h(&d, "PUT", "/v1/models/big", AUTH, MP_CT, mp[v], bl[v], v ? 201 : 200);
        t_resp_free(&r);
        out[v] = infer_ok(&d, "big", x);
        r = req_h(&d, "PUT", "/v1/models/onx", AUTH, ONNX_CT, onnx[v], ol[v], v ? 201 : 200);
        t_resp_free(&r);
    }
    assert_string_not_equal(out[0], out[1]);
    const int delays_ms[ROUNDS] = {5, -1, 30, -1, 80, -1};
    int seen[2] = {0, 0}, mid = 0;
    for (int round = 0; round < ROUNDS; round++) {
        struct putter p = {.d = &d,
                           .name = "big",
                           .bodies = {mp[0], mp[1]},
                           .lens = {bl[0], bl[1]},
                           .ctype = MP_CT};
        struct putter q = {.d = &d,
                           .name = "onx",
                           .bodies = {onnx[0], onnx[1]},
                           .lens = {ol[0], ol[1]},
                           .ctype = ONNX_CT};
        pthread_t tp, tq;
        assert_int_equal(pthread_create(&tp, NULL, put_loop, &p), 0);
        assert_int_equal(pthread_create(&tq, NULL, put_loop, &q), 0);
        if (delays_ms[round] >= 0)
            sleep_ms(delays_ms[round] + (int)(random() % 10));
        else /* the moment the weights or big.json are being written */
            mid += wait_for_tmp(dir, round % 4 == 1 ? "big.put-" : "big.json", 3000);
        assert_int_equal(t_daemon_stop(&d, SIGKILL, 10), 128 + SIGKILL);
        unlink(d.log_path);
        pthread_join(tp, NULL);
        pthread_join(tq, NULL);
        /* big.json names a weights file holding one version, whole */
        char wname[128], path[256];
        json_weights_of(dir, "big.json", wname, sizeof wname);
        snprintf(path, sizeof path, "%s/%s", dir, wname);
        size_t len;
        char *disk = t_read_file(path, &len);
        assert_non_null(disk);
        int v = len == wl[1] && !memcmp(disk, w[1], len);
        assert_true(v || (len == wl[0] && !memcmp(disk, w[0], len)));
        seen[v]++;
        free(disk);
        snprintf(path, sizeof path, "%s/onx.onnx", dir);
        disk = t_read_file(path, &len);
        assert_non_null(disk);
        assert_true((len == ol[0] && !memcmp(disk, onnx[0], len)) ||
                    (len == ol[1] && !memcmp(disk, onnx[1], len)));
        free(disk);
        /* plant what a crash may leave: torn temp files, unnamed uploaded weights */
        char torn[96];
        snprintf(torn, sizeof torn, ".big.json.tmp.99999.%d", round);
        t_write_file(dir, torn, mj, 10);
        snprintf(torn, sizeof torn, ".onx.onnx.tmp.99999.%d", round);
        t_write_file(dir, torn, onnx[0], ol[0] / 2);
        snprintf(torn, sizeof torn, ".big.put-00000000000000%02x.safetensors.tmp.99999.1", round);
        t_write_file(dir, torn, w[0], wl[0] / 3);
        snprintf(torn, sizeof torn, "big.put-00000000000000%02x.safetensors", round);
        t_write_file(dir, torn, w[1], wl[1]);
        /* the restart serves it (strict) and leaves only the model's files */
        start(&d, dir, extra);
        struct t_resp r = t_call(&d, "POST", "/v2/repository/index", NULL, NULL, 0, 200);
        assert_int_equal(cJSON_GetArraySize(r.json), 2);
        assert_string_equal(t_item(t_index_entry(r.json, "big"), "state")->valuestring, "READY");
        assert_string_equal(t_item(t_index_entry(r.json, "onx"), "state")->valuestring, "READY");
        t_resp_free(&r);
        char *o = infer_ok(&d, "big", x);
        assert_string_equal(o, out[v]);
        free(o);
        assert_int_equal(count_files(dir, "."), 0);
        assert_int_equal(count_files(dir, "big.put-"), 1);
        assert_true(t_file_exists(dir, wname));
        assert_true(t_file_exists(dir, "big.safetensors"));
    }
    stop(&d);
    fprintf(stderr,
            "put_upload_interrupted_by_kill: %d rounds (%d killed while a file was being "
            "written), weights were A %d / B %d times\n",
            ROUNDS, mid, seen[0], seen[1]);
    for (int v = 0; v < 2; v++) {
        free(w[v]);
        free(onnx[v]);
        free(mp[v]);
        free(out[v]);
    }
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
    struct t_resp r = t_call(&d, "PUT", "/v1/models/x", AUTH, vb, 0, 200);
    t_resp_free(&r);
    char *out_b = infer_ok(&d, "x", body);
    assert_string_not_equal(out_a, out_b);
    r = t_call(&d, "PUT", "/v1/models/x", AUTH, va, 0, 200);
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
        cmocka_unit_test_teardown(put_onnx, cleanup),
        cmocka_unit_test_teardown(put_multipart, cleanup),
        cmocka_unit_test_teardown(put_interrupted_by_kill, cleanup),
        cmocka_unit_test_teardown(put_upload_interrupted_by_kill, cleanup),
        cmocka_unit_test_teardown(concurrent_infer_while_replaced, cleanup),
    };
    int rc = cmocka_run_group_tests_name("http_repo", tests, NULL, NULL);
    curl_global_cleanup();
    return rc;
}
