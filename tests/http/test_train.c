/* Training jobs against the real daemon: POST /v1/models/{name}/train, GET /v1/train/{id},
 * DELETE, GET /v1/train. A done job leaves torch's weights (golden runs from
 * tools/gen_train_golden.py, read back from the model file the job wrote) and torch's
 * history; save_as makes a new model; a failed (exploding) or cancelled job changes nothing;
 * the queue cap answers 503, the limits 413, the admin token 401/403; the history keeps its
 * bound; finished jobs are forgotten oldest first; a model replaced during a job is not
 * overwritten; inference answers during a job; a drain cancels a running job, reports it and
 * leaves no partial file. Every wait is for a state, never for a time. */
#include <dirent.h>
#include <limits.h>
#include <math.h>
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

#include <cjson/cJSON.h>
#include <cmocka.h>
#include <curl/curl.h>

#include "core/nn.h"
#include "tests/common/fs.h"
#include "tests/common/golden.h"
#include "tests/common/http.h"

#define TOKEN "s3cret"
#define AUTH "Authorization: Bearer " TOKEN

static struct t_daemon d;
static int running;
static char dir[64];

/* ---- helpers ----------------------------------------------------------------------------- */
static void sleep_ms(int ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

/* A daemon with the admin token on a temporary copy of config/models, plus extra flags. */
static void start(const char *const *extra)
{
    assert_int_equal(t_tmp_copy(dir, sizeof dir, "train", "config/models"), 0);
    const char *args[32] = {"--model-dir", dir};
    int n = 2;
    for (int i = 0; extra && extra[i] && n < 31; i++)
        args[n++] = extra[i];
    args[n] = NULL;
    const char *envs[] = {"RELUD_ADMIN_TOKEN=" TOKEN, NULL};
    assert_int_equal(t_daemon_start(&d, args, envs), 0);
    running = 1;
}

/* Stops the daemon: a clean exit (0) or the teardown fails (a sanitizer's report, a crash);
 * the log is kept then. */
static int cleanup(void **state)
{
    (void)state;
    int rc = 0;
    if (running) {
        rc = t_daemon_stop(&d, 0, 30);
        if (rc == 0)
            unlink(d.log_path);
        else
            fprintf(stderr, "relud exited with %d; its log: %s\n", rc, d.log_path);
    }
    running = 0;
    t_rm_dir(dir);
    dir[0] = 0;
    return rc ? -1 : 0;
}

static struct t_resp call(const char *method, const char *path, const char *auth, const char *body,
                          long status)
{
    return t_call(&d, method, path, auth, body, 0, status);
}

static void put_model(const char *name, const char *json)
{
    char path[256];
    snprintf(path, sizeof path, "/v1/models/%s", name);
    struct t_resp r = call("PUT", path, AUTH, json, 0);
    if (r.status != 200 && r.status != 201)
        fail_msg("PUT %s: %ld %s", name, r.status, r.body);
    t_resp_free(&r);
}

/* POSTs a job; its id (static buffer per call site: copy it). */
static void submit(const char *model, const char *body, char *id, size_t idlen)
{
    char path[256];
    snprintf(path, sizeof path, "/v1/models/%s/train", model);
    struct t_resp r = call("POST", path, AUTH, body, 202);
    assert_non_null(r.json);
    assert_string_equal(cJSON_GetStringValue(t_item(r.json, "state")), "queued");
    snprintf(id, idlen, "%s", cJSON_GetStringValue(t_item(r.json, "id")));
    char loc[128], want[128];
    snprintf(want, sizeof want, "/v1/train/%s", id);
    assert_non_null(t_resp_header(&r, "Location", loc, sizeof loc));
    assert_string_equal(loc, want);
    t_resp_free(&r);
}

static cJSON *job(const char *id)
{
    char path[128];
    snprintf(path, sizeof path, "/v1/train/%s", id);
    struct t_resp r = call("GET", path, NULL, NULL, 200);
    cJSON *j = r.json;
    r.json = NULL;
    t_resp_free(&r);
    assert_non_null(j);
    return j;
}

static const char *state_of(const cJSON *j) { return cJSON_GetStringValue(t_item(j, "state")); }

/* Polls until the job leaves queued/running (or until `until` is reached, when given). */
static cJSON *wait_job(const char *id, const char *until)
{
    for (int i = 0; i < 60000; i++) {
        cJSON *j = job(id);
        const char *s = state_of(j);
        if (until ? !strcmp(s, until) &&
                        (strcmp(until, "running") || t_item(j, "step")->valuedouble >= 1)
                  : strcmp(s, "queued") && strcmp(s, "running"))
            return j;
        if (until && strcmp(s, "queued") && strcmp(s, "running"))
            fail_msg("job %s ended %s before reaching %s: %s", id, s, until,
                     cJSON_GetStringValue(t_item(j, "error")));
        cJSON_Delete(j);
        sleep_ms(5);
    }
    fail_msg("job %s never got there", id);
    return NULL;
}

static char *model_file(const char *name)
{
    char path[PATH_MAX];
    snprintf(path, sizeof path, "%s/%s.json", dir, name);
    return t_read_file(path, NULL);
}

/* No temporary file (a half-written model) left in model_dir. */
static void no_temp_files(void)
{
    DIR *dd = opendir(dir);
    assert_non_null(dd);
    struct dirent *e;
    while ((e = readdir(dd)))
        if (strstr(e->d_name, ".tmp."))
            fail_msg("temporary file left in model_dir: %s", e->d_name);
    closedir(dd);
}

/* A float32 MLP in -> hid -> act -> out (no biases), small deterministic weights, as JSON. */
static char *mlp_json(int in, int hid, int out, const char *act)
{
    size_t cap = (size_t)(in * hid + hid * out) * 16 + 512, n = 0;
    char *s = malloc(cap);
    assert_non_null(s);
    int dims[2][2] = {{hid, in}, {out, hid}};
    n += (size_t)snprintf(s + n, cap - n, "{\"layers\": [");
    for (int l = 0; l < 2; l++) {
        if (l)
            n += (size_t)snprintf(s + n, cap - n, ", {\"type\": \"%s\"}, ", act);
        n += (size_t)snprintf(s + n, cap - n, "{\"type\": \"linear\", \"weight\": [");
        for (int o = 0; o < dims[l][0]; o++) {
            n += (size_t)snprintf(s + n, cap - n, "%s[", o ? "," : "");
            for (int i = 0; i < dims[l][1]; i++)
                n += (size_t)snprintf(s + n, cap - n, "%s%.4f", i ? "," : "",
                                      0.05 * sin(0.7 * o + 1.3 * i + l));
            n += (size_t)snprintf(s + n, cap - n, "]");
        }
        n += (size_t)snprintf(s + n, cap - n, "]}");
    }
    snprintf(s + n, cap - n, "]}");
    return s;
}

/* rows x cols of values in [-1, 1], nested. */
static char *matrix(int rows, int cols, double phase)
{
    size_t cap = (size_t)rows * (size_t)cols * 12 + 16, n = 0;
    char *s = malloc(cap);
    assert_non_null(s);
    n += (size_t)snprintf(s + n, cap - n, "[");
    for (int r = 0; r < rows; r++) {
        n += (size_t)snprintf(s + n, cap - n, "%s[", r ? "," : "");
        for (int c = 0; c < cols; c++)
            n += (size_t)snprintf(s + n, cap - n, "%s%.3f", c ? "," : "",
                                  sin(phase + 0.37 * r + 0.11 * c));
        n += (size_t)snprintf(s + n, cap - n, "]");
    }
    snprintf(s + n, cap - n, "]");
    return s;
}

/* "wide": 128 -> 128 -> 8, and a body that trains it for `steps` steps of 64 rows (long). */
static char *long_body(long steps)
{
    char *x = matrix(64, 128, 0.5), *y = matrix(64, 8, 1.5);
    size_t cap = strlen(x) + strlen(y) + 512;
    char *b = malloc(cap);
    assert_non_null(b);
    snprintf(b, cap,
             "{\"input\": %s, \"target\": %s, \"loss\": {\"type\": \"mse\"}, \"optimizer\": "
             "{\"type\": \"sgd\", \"lr\": 0.001}, \"batch_size\": 64, \"steps\": %ld}",
             x, y, steps);
    free(x);
    free(y);
    return b;
}

static void put_wide(void)
{
    char *m = mlp_json(128, 128, 8, "relu");
    put_model("wide", m);
    free(m);
}

/* ---- golden runs through the daemon --------------------------------------------------------- */
static int near(double a, double e, double rtol, double atol) { return t_close(a, e, rtol, atol); }

static void golden_through_daemon(const char *name)
{
    char path[PATH_MAX];
    snprintf(path, sizeof path, "%s/tests/golden/train/%s.json", t_root(), name);
    char *text = t_read_file(path, NULL);
    assert_non_null(text);
    cJSON *g = cJSON_Parse(text);
    free(text);
    assert_non_null(g);
    enum nn_dtype dt =
        !strcmp(cJSON_GetStringValue(t_item(g, "dtype")), "float64") ? NN_F64 : NN_F32;
    double rtol = t_item(t_item(g, "tolerance"), "rtol")->valuedouble;
    double atol = t_item(t_item(g, "tolerance"), "atol")->valuedouble;
    char *model = cJSON_PrintUnformatted(t_item(g, "model"));
    put_model(name, model);
    free(model);
    char *body = cJSON_PrintUnformatted(t_item(g, "train"));
    char id[32];
    submit(name, body, id, sizeof id);
    free(body);
    cJSON *j = wait_job(id, NULL);
    if (strcmp(state_of(j), "done"))
        fail_msg("%s: job %s: %s", name, state_of(j), cJSON_GetStringValue(t_item(j, "error")));
    const cJSON *steps = t_item(t_item(g, "expected"), "steps");
    int n = cJSON_GetArraySize(steps);
    const cJSON *hist = t_item(j, "history");
    assert_int_equal(cJSON_GetArraySize(hist), n); /* few steps: every one kept */
    assert_int_equal((long)t_item(j, "step")->valuedouble, n);
    for (int k = 0; k < n; k++) {
        const cJSON *e = cJSON_GetArrayItem(steps, k), *h = cJSON_GetArrayItem(hist, k);
        assert_int_equal((int)t_item(h, "step")->valuedouble, (int)t_item(e, "step")->valuedouble);
        const char *keys[] = {"loss", "grad_norm"};
        for (int q = 0; q < 2; q++)
            if (!near(t_item(h, keys[q])->valuedouble, t_item(e, keys[q])->valuedouble, rtol, atol))
                fail_msg("%s: step %d: %s %.9g, torch %.9g", name, k + 1, keys[q],
                         t_item(h, keys[q])->valuedouble, t_item(e, keys[q])->valuedouble);
        if (t_item(h, "lr")->valuedouble != t_item(e, "lr")->valuedouble)
            fail_msg("%s: step %d: lr %.17g, torch %.17g", name, k + 1,
                     t_item(h, "lr")->valuedouble, t_item(e, "lr")->valuedouble);
        assert_int_equal(cJSON_IsTrue(t_item(h, "clipped")), cJSON_IsTrue(t_item(e, "clipped")));
        const cJSON *vl = cJSON_GetObjectItemCaseSensitive(e, "val_loss");
        if (vl && !cJSON_IsNull(vl) &&
            !near(t_item(h, "val_loss")->valuedouble, vl->valuedouble, rtol, atol))
            fail_msg("%s: step %d: val_loss", name, k + 1);
    }
    const cJSON *last = cJSON_GetArrayItem(steps, n - 1);
    const cJSON *stop = cJSON_GetObjectItemCaseSensitive(last, "stop");
    assert_int_equal(cJSON_IsTrue(t_item(j, "stopped_early")), stop && cJSON_IsTrue(stop));
    /* the weights the job installed: the model file, read back */
    char *file = model_file(name);
    assert_non_null(file);
    cJSON *mf = cJSON_Parse(file);
    free(file);
    assert_non_null(mf);
    const cJSON *layers = t_item(mf, "layers"), *params = t_item(last, "params");
    assert_int_equal(cJSON_GetArraySize(layers), cJSON_GetArraySize(params));
    char msg[512];
    for (int i = 0; i < cJSON_GetArraySize(params); i++) {
        const cJSON *p = cJSON_GetArrayItem(params, i), *l = cJSON_GetArrayItem(layers, i);
        const char *keys[] = {"weight", "bias"};
        for (int q = 0; q < 2; q++) {
            const cJSON *want = cJSON_GetObjectItemCaseSensitive(p, keys[q]);
            if (!want)
                continue;
            struct nn_tensor w, got;
            assert_int_equal(t_tensor_load(want, dt, &w, keys[q], msg, sizeof msg), 0);
            assert_int_equal(t_tensor_load(t_item(l, keys[q]), dt, &got, keys[q], msg, sizeof msg),
                             0);
            assert_int_equal(got.numel, w.numel);
            char what[64];
            snprintf(what, sizeof what, "layers[%d].%s", i, keys[q]);
            int rc = t_allclose(dt, got.data, got.numel, &w, rtol, atol, what, msg, sizeof msg);
            free(w.data);
            free(got.data);
            if (rc)
                fail_msg("%s: the installed model: %s", name, msg);
        }
    }
    cJSON_Delete(mf);
    cJSON_Delete(j);
    cJSON_Delete(g);
}

static void done_jobs_leave_torchs_weights(void **state)
{
    (void)state;
    start(NULL);
    golden_through_daemon("tr_adamw_cosine_clip");
    golden_through_daemon("tr_sgdmom_plateau_noclip_f64");
    golden_through_daemon("tr_shuffle");
    golden_through_daemon("tr_early_stop_val_f64");
    golden_through_daemon("tr_amsgrad_multistep_clip");
    no_temp_files();
}

/* ---- save_as, failures, cancellation ------------------------------------------------------ */
#define SIMPLE_BODY                                                                             \
    "{\"input\": [[1,2,3,4,5,6,7,8,9,10],[0,1,0,1,0,1,0,1,0,1]], \"target\": [[1,0,0,1,0],"     \
    "[0,1,0,0,1]], \"loss\": {\"type\": \"mse\"}, \"optimizer\": {\"type\": \"adam\", \"lr\": " \
    "0.01}, \"epochs\": 2%s}"

static void save_as_makes_a_new_model(void **state)
{
    (void)state;
    start(NULL);
    char *before = model_file("simple_nn");
    char body[1024], id[32];
    snprintf(body, sizeof body, SIMPLE_BODY, ", \"save_as\": \"simple_tuned\"");
    submit("simple_nn", body, id, sizeof id);
    cJSON *j = wait_job(id, NULL);
    assert_string_equal(state_of(j), "done");
    assert_string_equal(cJSON_GetStringValue(t_item(j, "save_as")), "simple_tuned");
    const cJSON *res = t_item(j, "result");
    assert_string_equal(cJSON_GetStringValue(t_item(res, "model")), "simple_tuned");
    assert_true(cJSON_IsTrue(t_item(res, "created")));
    cJSON_Delete(j);
    char *after = model_file("simple_nn"), *tuned = model_file("simple_tuned");
    assert_string_equal(before, after); /* the source is untouched */
    assert_non_null(tuned);
    struct t_resp r =
        call("POST", "/v1/forward", NULL,
             "{\"model\": \"simple_tuned\", \"input\": [[1,2,3,4,5,6,7,8,9,10]]}", 200);
    t_resp_free(&r);
    free(before);
    free(after);
    free(tuned);
    /* an ONNX model trains only into a new name */
    snprintf(body, sizeof body, SIMPLE_BODY, "");
    r = call("POST", "/v1/models/simple_nn_onnx/train", AUTH, body, 400);
    t_check_error(&r, "give \"save_as\" a new name");
    t_resp_free(&r);
    snprintf(body, sizeof body, SIMPLE_BODY, ", \"save_as\": \"from_onnx\"");
    submit("simple_nn_onnx", body, id, sizeof id);
    j = wait_job(id, NULL);
    assert_string_equal(state_of(j), "done");
    cJSON_Delete(j);
    char *fo = model_file("from_onnx");
    assert_non_null(fo);
    free(fo);
}

/* The exploding-gradient net: failed, the step and the layer named, nothing installed. */
static void exploding_job_fails_and_changes_nothing(void **state)
{
    (void)state;
    start(NULL);
    const char *m =
        "{\"layers\": [{\"type\": \"linear\", \"weight\": [[3e18, 3e18], [2e18, -1e18]]}, "
        "{\"type\": \"relu\"}, {\"type\": \"linear\", \"weight\": [[3e18, 1e18]]}]}";
    put_model("boom", m);
    char *before = model_file("boom");
    char id[32];
    submit("boom",
           "{\"input\": [[1, 2], [2, 1]], \"target\": [[0], [1]], \"loss\": {\"type\": \"mse\"}, "
           "\"optimizer\": {\"type\": \"sgd\", \"lr\": 0.1}, \"epochs\": 3}",
           id, sizeof id);
    cJSON *j = wait_job(id, NULL);
    assert_string_equal(state_of(j), "failed");
    const char *e = cJSON_GetStringValue(t_item(j, "error"));
    if (!strstr(e, "step 1: ") || !strstr(e, "layers["))
        fail_msg("error: %s", e);
    assert_true(cJSON_IsNull(t_item(j, "result")));
    cJSON_Delete(j);
    char *after = model_file("boom");
    assert_string_equal(before, after);
    free(before);
    free(after);
    no_temp_files();
}

/* A daemon with "wide" and a long job on it, running: its id into id; returns the model
 * file as it was before the job (malloc'd). */
static char *start_long_job(char *id, size_t len)
{
    start(NULL);
    put_wide();
    char *before = model_file("wide"), *body = long_body(100000);
    submit("wide", body, id, len);
    free(body);
    cJSON_Delete(wait_job(id, "running"));
    return before;
}

/* DELETE: a running job ends cancelled, the model unchanged; inference on the model answers
 * while it runs. */
static void cancel_running_job(void **state)
{
    (void)state;
    char id[32], *before = start_long_job(id, sizeof id);
    char *x = matrix(2, 128, 0.1), fwd[8192];
    snprintf(fwd, sizeof fwd, "{\"model\": \"wide\", \"input\": %s}", x);
    free(x);
    struct t_resp r = call("POST", "/v1/forward", NULL, fwd, 200);
    t_resp_free(&r);
    char path[64];
    snprintf(path, sizeof path, "/v1/train/%s", id);
    r = call("DELETE", path, NULL, NULL, 401);
    t_resp_free(&r);
    r = call("DELETE", path, AUTH, NULL, 0);
    assert_true(r.status == 202 || r.status == 200);
    assert_true(cJSON_IsTrue(t_item(r.json, "cancel_requested")));
    t_resp_free(&r);
    cJSON *j = wait_job(id, NULL);
    assert_string_equal(state_of(j), "cancelled");
    assert_non_null(strstr(cJSON_GetStringValue(t_item(j, "error")), "cancelled by a DELETE"));
    cJSON_Delete(j);
    char *after = model_file("wide");
    assert_string_equal(before, after);
    free(before);
    free(after);
    r = call("DELETE", path, AUTH, NULL, 200); /* again: nothing to cancel */
    assert_false(cJSON_IsTrue(t_item(r.json, "cancel_requested")));
    assert_string_equal(cJSON_GetStringValue(t_item(r.json, "state")), "cancelled");
    t_resp_free(&r);
}

/* One worker, a queue of one: the next job waits, the one after is refused 503; a queued job
 * cancels at once; a model replaced while its job waited is not overwritten. */
static void queue_cap_and_replaced_model(void **state)
{
    (void)state;
    const char *args[] = {"--max-train-jobs", "1", "--max-train-queue", "1", NULL};
    start(args);
    put_wide();
    char *body = long_body(100000), a[32], b[32], c[32];
    submit("wide", body, a, sizeof a);
    cJSON_Delete(wait_job(a, "running"));
    char small[1024];
    snprintf(small, sizeof small, SIMPLE_BODY, "");
    submit("simple_nn", small, b, sizeof b);
    struct t_resp r = call("POST", "/v1/models/simple_nn/train", AUTH, small, 503);
    t_check_error(&r, "training queue full");
    char ra[16];
    assert_non_null(t_resp_header(&r, "Retry-After", ra, sizeof ra));
    t_resp_free(&r);
    cJSON *jb = job(b);
    assert_string_equal(state_of(jb), "queued");
    assert_true(cJSON_IsNull(t_item(jb, "eta_s")));
    cJSON_Delete(jb);
    char path[64];
    snprintf(path, sizeof path, "/v1/train/%s", b);
    r = call("DELETE", path, AUTH, NULL, 200);
    assert_string_equal(cJSON_GetStringValue(t_item(r.json, "state")), "cancelled");
    t_resp_free(&r);
    /* a job queued on simple_nn, the model replaced before it runs: not overwritten */
    submit("simple_nn", small, c, sizeof c);
    put_model("simple_nn",
              "{\"layers\": [{\"type\": \"linear\", \"weight\": [[1,1,1,1,1,1,1,1,1,1],"
              "[1,1,1,1,1,1,1,1,1,1],[1,1,1,1,1,1,1,1,1,1],[1,1,1,1,1,1,1,1,1,1],"
              "[1,1,1,1,1,1,1,1,1,1]]}]}");
    char *replaced = model_file("simple_nn");
    snprintf(path, sizeof path, "/v1/train/%s", a);
    r = call("DELETE", path, AUTH, NULL, 0);
    t_resp_free(&r);
    cJSON *jc = wait_job(c, NULL);
    assert_string_equal(state_of(jc), "failed");
    assert_non_null(strstr(cJSON_GetStringValue(t_item(jc, "error")), "was replaced"));
    cJSON_Delete(jc);
    char *now = model_file("simple_nn");
    assert_string_equal(replaced, now);
    free(replaced);
    free(now);
    free(body);
    r = call("GET", "/v1/train", NULL, NULL, 200);
    const cJSON *jobs = t_item(r.json, "jobs");
    assert_int_equal(cJSON_GetArraySize(jobs), 3);
    assert_string_equal(cJSON_GetStringValue(t_item(cJSON_GetArrayItem(jobs, 0), "state")),
                        "cancelled");
    t_resp_free(&r);
}

/* The caps: steps, memory, body; the admin token; unknown jobs and models; bad bodies. */
static void limits_and_errors(void **state)
{
    (void)state;
    const char *args[] = {"--max-train-steps",
                          "10",
                          "--max-train-bytes",
                          "1MiB",
                          "--max-train-body-bytes",
                          "4KiB",
                          NULL};
    start(args);
    char body[1024];
    snprintf(body, sizeof body, SIMPLE_BODY, "");
    struct t_resp r = call("POST", "/v1/models/simple_nn/train", AUTH,
                           "{\"input\": [[1,2,3,4,5,6,7,8,9,10]], \"target\": [[1,0,0,1,0]], "
                           "\"loss\": {\"type\": \"mse\"}, \"optimizer\": {\"type\": \"sgd\", "
                           "\"lr\": 0.1}, \"steps\": 11}",
                           413);
    t_check_error(&r, "steps: 11 steps, over max_train_steps (10)");
    t_resp_free(&r);
    r = call(
        "POST", "/v1/models/simple_nn/train", AUTH,
        "{\"input\": [[1,2,3,4,5,6,7,8,9,10]], \"target\": [[1,0,0,1,0]], \"loss\": {\"type\": "
        "\"mse\"}, \"optimizer\": {\"type\": \"sgd\", \"lr\": 0.1}, \"epochs\": 11}",
        413);
    t_check_error(&r, "epochs: 11 steps, over max_train_steps (10)");
    t_resp_free(&r);
    /* a body over max_train_body_bytes */
    char *x = matrix(1, 784, 0.2), *big = malloc(strlen(x) + 256);
    sprintf(big,
            "{\"input\": %s, \"target\": [3], \"loss\": {\"type\": \"cross_entropy\"}, "
            "\"optimizer\": {\"type\": \"adam\"}}",
            x);
    free(x);
    r = call("POST", "/v1/models/mnist_mlp/train", AUTH, big, 413);
    t_check_error(&r, "over max_train_body_bytes");
    t_resp_free(&r);
    free(big);
    r = call("POST", "/v1/models/simple_nn/train", NULL, body, 401);
    t_check_error(&r, "Bearer <admin_token>");
    t_resp_free(&r);
    r = call("POST", "/v1/models/simple_nn/train", "Authorization: Bearer nope", body, 401);
    t_resp_free(&r);
    r = call("POST", "/v1/models/nope/train", AUTH, body, 404);
    t_check_error(&r, "unknown model \"nope\"");
    t_resp_free(&r);
    r = call(
        "POST", "/v1/models/simple_nn/train", AUTH,
        "{\"input\": [[1,2,3,4,5,6,7,8,9,10]], \"target\": [[1,0,0,1,0]], \"loss\": {\"type\": "
        "\"mse\"}, \"optimizer\": {\"type\": \"lbfgs\"}}",
        400);
    t_check_error(&r, "optimizer.type: unknown optimizer \"lbfgs\" (valid: sgd, adam, adamw)");
    t_resp_free(&r);
    r = call("POST", "/v1/models/simple_nn/train", AUTH,
             "{\"input\": [[1,2,3]], \"target\": [[1,0,0,1,0]], \"loss\": {\"type\": \"mse\"}, "
             "\"optimizer\": {\"type\": \"sgd\", \"lr\": 0.1}}",
             400);
    t_check_error(&r, "layers[0] (linear)");
    t_resp_free(&r);
    r = call("GET", "/v1/train/404", NULL, NULL, 404);
    t_check_error(&r, "unknown training job \"404\"");
    t_resp_free(&r);
    r = call("DELETE", "/v1/train/404", AUTH, NULL, 404);
    t_resp_free(&r);
    r = call("GET", "/v1/train", NULL, NULL, 200);
    assert_int_equal(cJSON_GetArraySize(t_item(r.json, "jobs")), 0);
    t_resp_free(&r);
}

/* max_train_bytes counts the job's memory before it is queued. */
static void memory_cap(void **state)
{
    (void)state;
    const char *args[] = {"--max-train-bytes", "1MiB", NULL};
    start(args);
    char *x = matrix(4, 784, 0.2), *big = malloc(strlen(x) + 256);
    sprintf(big,
            "{\"input\": %s, \"target\": [3, 1, 4, 1], \"loss\": {\"type\": "
            "\"cross_entropy\"}, \"optimizer\": {\"type\": \"adam\"}}",
            x);
    free(x);
    struct t_resp r = call("POST", "/v1/models/mnist_mlp/train", AUTH, big, 413);
    t_check_error(&r, "over max_train_bytes (1048576)");
    t_resp_free(&r);
    free(big);
}

static void disabled_without_token_or_workers(void **state)
{
    (void)state;
    assert_int_equal(t_tmp_copy(dir, sizeof dir, "train", "config/models"), 0);
    const char *args[] = {"--model-dir", dir, NULL};
    assert_int_equal(t_daemon_start(&d, args, NULL), 0);
    running = 1;
    char body[1024];
    snprintf(body, sizeof body, SIMPLE_BODY, "");
    struct t_resp r = call("POST", "/v1/models/simple_nn/train", AUTH, body, 403);
    t_check_error(&r, "no admin_token is configured");
    t_resp_free(&r);
    assert_int_equal(cleanup(NULL), 0);
    const char *args2[] = {"--max-train-jobs", "0", NULL};
    start(args2);
    r = call("POST", "/v1/models/simple_nn/train", AUTH, body, 403);
    t_check_error(&r, "max_train_jobs is 0");
    t_resp_free(&r);
}

/* The history keeps its bound, with the last step; finished jobs are forgotten oldest
 * first. */
static void history_and_list_bounds(void **state)
{
    (void)state;
    const char *args[] = {"--train-history", "4", "--train-jobs-kept", "2", NULL};
    start(args);
    char body[1024], ids[3][32];
    snprintf(body, sizeof body, "%s",
             "{\"input\": [[1,2,3,4,5,6,7,8,9,10],[0,1,0,1,0,1,0,1,0,1],[1,0,1,0,1,0,1,0,1,0]], "
             "\"target\": [[1,0,0,1,0],[0,1,0,0,1],[1,1,0,0,0]], \"loss\": {\"type\": \"mse\"}, "
             "\"optimizer\": {\"type\": \"sgd\", \"lr\": 0.001}, \"steps\": 37}");
    for (int i = 0; i < 3; i++) {
        submit("simple_nn", body, ids[i], sizeof ids[i]);
        cJSON *j = wait_job(ids[i], NULL);
        assert_string_equal(state_of(j), "done");
        const cJSON *h = t_item(j, "history");
        int n = cJSON_GetArraySize(h);
        assert_true(n >= 1 && n <= 4);
        assert_int_equal((int)t_item(cJSON_GetArrayItem(h, n - 1), "step")->valuedouble, 37);
        assert_true(t_item(j, "history_stride")->valuedouble >= 8);
        for (int k = 1; k < n; k++) /* in step order */
            assert_true(t_item(cJSON_GetArrayItem(h, k), "step")->valuedouble >
                        t_item(cJSON_GetArrayItem(h, k - 1), "step")->valuedouble);
        cJSON_Delete(j);
    }
    char path[64];
    snprintf(path, sizeof path, "/v1/train/%s", ids[0]);
    struct t_resp r = call("GET", path, NULL, NULL, 404);
    t_resp_free(&r);
    r = call("GET", "/v1/train", NULL, NULL, 200);
    const cJSON *jobs = t_item(r.json, "jobs");
    assert_int_equal(cJSON_GetArraySize(jobs), 2);
    assert_string_equal(cJSON_GetStringValue(t_item(cJSON_GetArrayItem(jobs, 0), "id")), ids[1]);
    t_resp_free(&r);
}

/* SIGTERM during a job: the job is cancelled and logged so, the daemon exits 0, the model file
 * is the old one and no temporary file is left. */
static void drain_cancels_a_running_job(void **state)
{
    (void)state;
    char id[32], *before = start_long_job(id, sizeof id);
    assert_int_equal(t_daemon_stop(&d, SIGTERM, 30), 0);
    running = 0;
    char *log = t_daemon_log(&d);
    char want[128];
    snprintf(want, sizeof want, "train %s: model wide: cancelled: cancelled by the server draining",
             id);
    if (!strstr(log, want))
        fail_msg("no \"%s\" in the log:\n%s", want, log);
    free(log);
    unlink(d.log_path);
    char *after = model_file("wide");
    assert_string_equal(before, after);
    free(before);
    free(after);
    no_temp_files();
}

int main(void)
{
    curl_global_init(CURL_GLOBAL_ALL);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_teardown(done_jobs_leave_torchs_weights, cleanup),
        cmocka_unit_test_teardown(save_as_makes_a_new_model, cleanup),
        cmocka_unit_test_teardown(exploding_job_fails_and_changes_nothing, cleanup),
        cmocka_unit_test_teardown(cancel_running_job, cleanup),
        cmocka_unit_test_teardown(queue_cap_and_replaced_model, cleanup),
        cmocka_unit_test_teardown(limits_and_errors, cleanup),
        cmocka_unit_test_teardown(memory_cap, cleanup),
        cmocka_unit_test_teardown(disabled_without_token_or_workers, cleanup),
        cmocka_unit_test_teardown(history_and_list_bounds, cleanup),
        cmocka_unit_test_teardown(drain_cancels_a_running_job, cleanup),
    };
    int rc = cmocka_run_group_tests_name("http_train", tests, NULL, NULL);
    curl_global_cleanup();
    return rc;
}
