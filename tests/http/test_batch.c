/* Dynamic batching against the real daemon (server/batch.h): a row's result in a batch of
 * every size 1..K is its result alone up to float32 rounding (and torch's, for the golden
 * rows); concurrent clients over the OIP's JSON and binary forms and /v1/forward each get
 * their own rows back; a full queue answers 503 with Retry-After; timeouts (the model's
 * and the request's) answer 503 and never run; a model replaced or deleted while requests
 * are queued answers each with the version it was queued on; a drain answers what is
 * queued (200 while there is time, 503 at its end) and exits 0; shapes that differ after the
 * first dimension never share a batch; requests that must run alone (gradients, losses,
 * stats, 1-D inputs) do; Triton's model configuration; model file errors.
 *
 * Every batching model here is mnist_mlp's weights (784-128-64-10) under another name with
 * its own batching keys, PUT for the test; mnist_ref, the same weights without them, gives
 * each row's unbatched result. A batch of an exact size is forced with max_batch_size = k
 * and a long max_queue_delay: it runs when k rows are queued, and its batch_stats entry
 * proves it did. Worker threads make requests only; every assertion runs on the main thread
 * after they are joined. No assertion is about time: waits poll for a condition. */
#include <arpa/inet.h>
#include <math.h>
#include <netinet/in.h>
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
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>
#include <curl/curl.h>

#include "server/sb.h"
#include "tests/common/fs.h"
#include "tests/common/http.h"

#define TOKEN "b4tch"
#define AUTH "Authorization: Bearer " TOKEN

#define IN 784         /* mnist_mlp's features */
#define OUT 10         /* its logits */
#define MAXR 16        /* rows in one test request */
#define INT_ROW 100000 /* row ids from here hold integers 0..255 (for the integer wire types) */

static struct t_daemon d;  /* the group's daemon */
static struct t_daemon d2; /* a test's own daemon (several engine workers, drains) */
static char dir[64], dir2[64];

static void sleep_ms(int ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

/* ---- rows and their references ---------------------------------------------------------- */

/* torch's numbers for mnist_mlp (tests/golden/models/mnist_mlp_expected.json). */
static cJSON *g_gold;
static float gold_in[3][IN];
static double gold_out[3][OUT], gold_atol, gold_rtol;

static void load_golden(void)
{
    char path[512];
    snprintf(path, sizeof path, "%s/tests/golden/models/mnist_mlp_expected.json", t_root());
    char *txt = t_read_file(path, NULL);
    assert_non_null(txt);
    g_gold = cJSON_Parse(txt);
    free(txt);
    assert_non_null(g_gold);
    const cJSON *tol = t_item(g_gold, "tolerance");
    gold_atol = t_item(tol, "atol")->valuedouble;
    gold_rtol = t_item(tol, "rtol")->valuedouble;
    const cJSON *in = t_item(t_item(g_gold, "input"), "data");
    const cJSON *out = t_item(t_item(g_gold, "output"), "data");
    assert_int_equal(cJSON_GetArraySize(in), 3 * IN);
    assert_int_equal(cJSON_GetArraySize(out), 3 * OUT);
    for (int i = 0; i < 3 * IN; i++)
        gold_in[i / IN][i % IN] = (float)cJSON_GetArrayItem(in, i)->valuedouble;
    for (int i = 0; i < 3 * OUT; i++)
        gold_out[i / OUT][i % OUT] = cJSON_GetArrayItem(out, i)->valuedouble;
}

/* Row id's 784 values: ids 0..2 the golden inputs; from INT_ROW integers 0..255; else
 * pseudo-random pixels in [0, 1). Deterministic, distinct per id. */
static void row(int id, float *x)
{
    if (id >= 0 && id < 3) {
        memcpy(x, gold_in[id], sizeof gold_in[id]);
        return;
    }
    uint64_t s = (uint64_t)id * 0x9E3779B97F4A7C15ull + 0x1234567ull;
    for (int k = 0; k < IN; k++) {
        s = s * 6364136223846793005ull + 1442695040888963407ull;
        x[k] = id >= INT_ROW ? (float)(s >> 56) : (float)((double)(s >> 40) / (double)(1ull << 24));
    }
}

/* ---- one request, from any thread --------------------------------------------------------- */

enum proto {
    P_JSON,    /* OIP, JSON FP32 data */
    P_BIN,     /* OIP, binary FP32 in, JSON out */
    P_BINOUT,  /* OIP, binary FP32 in, binary out */
    P_V1,      /* /v1/forward {"model", "input": nested} */
    P_V1SD,    /* /v1/forward {"model", "input": {"shape", "data"}} */
    P_JSON64,  /* OIP, JSON FP64 data */
    P_BIN64,   /* OIP, binary FP64 */
    P_BINU8,   /* OIP, binary UINT8 (integer rows) */
    P_JSONI32, /* OIP, JSON INT32 (integer rows) */
};

/* One request and what came back. The caller fills the first block; do_call the rest and
 * never asserts (it runs on worker threads). */
struct call {
    const struct t_daemon *dm; /* NULL: the group's */
    const char *model;
    enum proto proto;
    int ndim;
    size_t shape[3];    /* the last dimension is in_f */
    int ids[MAXR];      /* the rows, in order (rows = product of the dimensions but the last) */
    const float *data;  /* or explicit values (rows x in_f) instead of ids */
    int in_f, out_f;    /* 0: 784 and 10 */
    const char *params; /* OIP "parameters" object, or NULL */
    /* the outcome */
    int rc; /* curl's */
    long status;
    int bad; /* the reply did not parse as expected: see error */
    char error[600];
    char retry_after[32];
    double out[MAXR][OUT];
    atomic_int done;
};

static int c_rows(const struct call *c)
{
    int r = 1;
    for (int i = 0; i + 1 < c->ndim; i++)
        r *= (int)c->shape[i];
    return r;
}
static int c_in(const struct call *c) { return c->in_f ? c->in_f : IN; }
static int c_out(const struct call *c) { return c->out_f ? c->out_f : OUT; }

__attribute__((format(printf, 2, 3))) static int bad(struct call *c, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(c->error, sizeof c->error, fmt, ap);
    va_end(ap);
    c->bad = 1;
    return -1;
}

static void sb_shape(struct srv_sb *b, const struct call *c)
{
    srv_sb_puts(b, "[");
    for (int i = 0; i < c->ndim; i++)
        srv_sb_printf(b, i ? ", %zu" : "%zu", c->shape[i]);
    srv_sb_puts(b, "]");
}

/* Nested JSON of x (shape dims[0..nd)). */
static void sb_nested(struct srv_sb *b, const float *x, const size_t *dims, int nd, size_t *pos)
{
    srv_sb_puts(b, "[");
    for (size_t i = 0; i < dims[0]; i++) {
        if (i)
            srv_sb_puts(b, ",");
        if (nd == 1)
            srv_sb_printf(b, "%.9g", (double)x[(*pos)++]);
        else
            sb_nested(b, x, dims + 1, nd - 1, pos);
    }
    srv_sb_puts(b, "]");
}

static void put_le(unsigned char *dst, uint64_t u, int n)
{
    for (int i = 0; i < n; i++)
        dst[i] = (unsigned char)(u >> (8 * i));
}

static const char *wire_name(enum proto p)
{
    switch (p) {
    case P_JSON64:
    case P_BIN64: return "FP64";
    case P_BINU8: return "UINT8";
    case P_JSONI32: return "INT32";
    default: return "FP32";
    }
}

/* The request body (malloc'd; *len its bytes, *hlen the JSON header's for binary data). */
static char *build_body(const struct call *c, const float *x, size_t n, size_t *len, size_t *hlen)
{
    struct srv_sb b;
    srv_sb_init(&b, 0);
    int binary =
        c->proto == P_BIN || c->proto == P_BINOUT || c->proto == P_BIN64 || c->proto == P_BINU8;
    if (c->proto == P_V1 || c->proto == P_V1SD) {
        srv_sb_printf(&b, "{\"model\": \"%s\", \"input\": ", c->model);
        if (c->proto == P_V1) {
            size_t pos = 0;
            sb_nested(&b, x, c->shape, c->ndim, &pos);
        } else {
            srv_sb_puts(&b, "{\"shape\": ");
            sb_shape(&b, c);
            srv_sb_puts(&b, ", \"data\": [");
            for (size_t i = 0; i < n; i++)
                srv_sb_printf(&b, i ? ",%.9g" : "%.9g", (double)x[i]);
            srv_sb_puts(&b, "]}");
        }
        srv_sb_puts(&b, "}");
        *hlen = 0;
        return srv_sb_take(&b, len);
    }
    srv_sb_puts(&b, "{");
    if (c->params || c->proto == P_BINOUT)
        srv_sb_printf(&b, "\"parameters\": %s, ",
                      c->params ? c->params : "{\"binary_data_output\": true}");
    srv_sb_printf(&b, "\"inputs\": [{\"name\": \"input\", \"datatype\": \"%s\", \"shape\": ",
                  wire_name(c->proto));
    sb_shape(&b, c);
    size_t es = c->proto == P_BIN64 ? 8 : c->proto == P_BINU8 ? 1 : 4;
    if (binary) {
        srv_sb_printf(&b, ", \"parameters\": {\"binary_data_size\": %zu}}]}", n * es);
        *hlen = b.len;
        unsigned char *raw = malloc(n * es + 1);
        for (size_t i = 0; raw && i < n; i++) {
            if (es == 8) {
                double v = x[i];
                uint64_t u;
                memcpy(&u, &v, 8);
                put_le(raw + 8 * i, u, 8);
            } else if (es == 4) {
                uint32_t u;
                memcpy(&u, &x[i], 4);
                put_le(raw + 4 * i, u, 4);
            } else {
                raw[i] = (unsigned char)x[i];
            }
        }
        if (raw)
            srv_sb_append(&b, raw, n * es);
        free(raw);
    } else {
        srv_sb_puts(&b, ", \"data\": [");
        for (size_t i = 0; i < n; i++) {
            const char *sep = i ? "," : "";
            if (c->proto == P_JSONI32)
                srv_sb_printf(&b, "%s%d", sep, (int)x[i]);
            else if (c->proto == P_JSON64)
                srv_sb_printf(&b, "%s%.17g", sep, (double)x[i]);
            else
                srv_sb_printf(&b, "%s%.9g", sep, (double)x[i]);
        }
        srv_sb_puts(&b, "]}]}");
        *hlen = 0;
    }
    return srv_sb_take(&b, len);
}

/* Flattens nested arrays of numbers into v (at most cap), checking their shape is dims. */
static int flatten(struct call *c, const cJSON *a, const size_t *dims, int nd, double *v,
                   size_t *pos, size_t cap)
{
    if (!cJSON_IsArray(a) || (size_t)cJSON_GetArraySize(a) != dims[0])
        return bad(c, "output: expected a nested array of %zu at this level", dims[0]);
    const cJSON *e;
    cJSON_ArrayForEach(e, a)
    {
        if (nd == 1) {
            if (!cJSON_IsNumber(e) || *pos >= cap)
                return bad(c, "output: expected numbers");
            v[(*pos)++] = e->valuedouble;
        } else if (flatten(c, e, dims + 1, nd - 1, v, pos, cap)) {
            return -1;
        }
    }
    return 0;
}

/* The reply's output rows into c->out (its shape is the input's with the last dimension
 * out_f). */
static int parse_reply(struct call *c, const struct t_resp *r)
{
    size_t dims[3], nout = (size_t)c_rows(c) * (size_t)c_out(c), pos = 0;
    memcpy(dims, c->shape, sizeof dims);
    dims[c->ndim - 1] = (size_t)c_out(c);
    double *v = &c->out[0][0];
    /* c->out is [MAXR][OUT]: rows are stored OUT apart whatever out_f is */
    double flat[MAXR * OUT];
    if (nout > MAXR * OUT)
        return bad(c, "too many output values for the test's buffer");
    if (c->proto == P_V1 || c->proto == P_V1SD) {
        const cJSON *o = r->json ? cJSON_GetObjectItemCaseSensitive(r->json, "output") : NULL;
        if (!o)
            return bad(c, "no \"output\" in %.300s", r->body);
        if (c->proto == P_V1 && flatten(c, o, dims, c->ndim, flat, &pos, nout))
            return -1;
        if (c->proto == P_V1SD) {
            const cJSON *sh = cJSON_GetObjectItemCaseSensitive(o, "shape");
            const cJSON *data = cJSON_GetObjectItemCaseSensitive(o, "data");
            if (cJSON_GetArraySize(sh) != c->ndim)
                return bad(c, "output.shape: %.200s", r->body);
            for (int i = 0; i < c->ndim; i++)
                if ((size_t)cJSON_GetArrayItem(sh, i)->valuedouble != dims[i])
                    return bad(c, "output.shape: %.200s", r->body);
            size_t one = nout;
            if (flatten(c, data, &one, 1, flat, &pos, nout))
                return -1;
        }
    } else {
        cJSON *h = r->json;
        const unsigned char *bin = NULL;
        size_t binlen = 0;
        if (c->proto == P_BINOUT) {
            char hl[32];
            if (!t_resp_header(r, "Inference-Header-Content-Length", hl, sizeof hl))
                return bad(c, "binary reply without Inference-Header-Content-Length");
            size_t n = strtoul(hl, NULL, 10);
            if (n > r->len || !(h = cJSON_ParseWithLength(r->body, n)))
                return bad(c, "binary reply: header of %zu bytes is not JSON", n);
            bin = (const unsigned char *)r->body + n;
            binlen = r->len - n;
        }
        const cJSON *outs = h ? cJSON_GetObjectItemCaseSensitive(h, "outputs") : NULL;
        const cJSON *o = cJSON_GetArrayItem(outs, 0);
        const cJSON *name = cJSON_GetObjectItemCaseSensitive(o, "name");
        const cJSON *sh = cJSON_GetObjectItemCaseSensitive(o, "shape");
        int ok = cJSON_GetArraySize(outs) >= 1 && cJSON_IsString(name) &&
                 !strcmp(name->valuestring, "output") && cJSON_GetArraySize(sh) == c->ndim;
        for (int i = 0; ok && i < c->ndim; i++)
            ok = (size_t)cJSON_GetArrayItem(sh, i)->valuedouble == dims[i];
        if (!ok) {
            bad(c, "outputs[0]: not \"output\" of the input's shape: %.300s",
                h ? r->body : "(no JSON)");
        } else if (bin) {
            if (binlen != nout * 4)
                bad(c, "binary output of %zu bytes, want %zu", binlen, nout * 4);
            for (size_t i = 0; !c->bad && i < nout; i++) {
                uint32_t u = 0;
                for (int k = 0; k < 4; k++)
                    u |= (uint32_t)bin[4 * i + k] << (8 * k);
                float f;
                memcpy(&f, &u, 4);
                flat[pos++] = f;
            }
        } else {
            size_t one = nout;
            flatten(c, cJSON_GetObjectItemCaseSensitive(o, "data"), &one, 1, flat, &pos, nout);
        }
        if (h != r->json)
            cJSON_Delete(h);
        if (c->bad)
            return -1;
    }
    for (size_t i = 0; i < nout; i++)
        v[(i / (size_t)c_out(c)) * OUT + i % (size_t)c_out(c)] = flat[i];
    return 0;
}

static void do_call(struct call *c)
{
    int in_f = c_in(c), rows = c_rows(c);
    size_t n = (size_t)rows * (size_t)in_f;
    float *x = malloc(n * sizeof *x + 1);
    if (!x || rows > MAXR) {
        bad(c, "test: bad call");
        free(x);
        atomic_store(&c->done, 1);
        return;
    }
    for (int i = 0; i < rows; i++) {
        if (c->data)
            memcpy(x + (size_t)i * in_f, c->data + (size_t)i * in_f, (size_t)in_f * sizeof *x);
        else
            row(c->ids[i], x + (size_t)i * in_f);
    }
    size_t len = 0, hlen = 0;
    char *body = build_body(c, x, n, &len, &hlen);
    free(x);
    const struct t_daemon *dm = c->dm ? c->dm : &d;
    char url[512], hl[64];
    if (c->proto == P_V1 || c->proto == P_V1SD)
        snprintf(url, sizeof url, "%s/v1/forward", dm->url);
    else
        snprintf(url, sizeof url, "%s/v2/models/%s/infer", dm->url, c->model);
    snprintf(hl, sizeof hl, "Inference-Header-Content-Length: %zu", hlen);
    const char *hdrs[] = {hl, "Content-Type: application/octet-stream", NULL};
    struct t_resp r = {0};
    c->rc = body ? t_http("POST", url, body, len, hlen ? hdrs : NULL, &r) : -1;
    free(body);
    if (!c->rc) {
        c->status = r.status;
        t_resp_header(&r, "Retry-After", c->retry_after, sizeof c->retry_after);
        if (r.status == 200) {
            parse_reply(c, &r);
        } else {
            const cJSON *e = r.json ? cJSON_GetObjectItemCaseSensitive(r.json, "error") : NULL;
            if (cJSON_IsString(e))
                snprintf(c->error, sizeof c->error, "%s", e->valuestring);
            else
                bad(c, "error reply is not {\"error\": ...}: %.300s", r.body);
        }
    }
    t_resp_free(&r);
    atomic_store(&c->done, 1);
}

static void *call_thread(void *arg)
{
    do_call(arg);
    return NULL;
}

static void start_calls(struct call *cs, int n, pthread_t *th)
{
    for (int i = 0; i < n; i++)
        assert_int_equal(pthread_create(&th[i], NULL, call_thread, &cs[i]), 0);
}

static void join_calls(int n, pthread_t *th)
{
    for (int i = 0; i < n; i++)
        pthread_join(th[i], NULL);
}

/* All n at once, each on its own thread. */
static void run_concurrent(struct call *cs, int n)
{
    pthread_t th[64];
    assert_true(n <= 64);
    start_calls(cs, n, th);
    join_calls(n, th);
}

/* A one-row call of row id (shape [1, 784]). */
static struct call row_call(const char *model, enum proto p, int id)
{
    return (struct call){.model = model, .proto = p, .ndim = 2, .shape = {1, IN}, .ids = {id}};
}

/* ---- references and checks (main thread) ----------------------------------------------- */

static struct {
    int id;
    double out[OUT];
} refs[1024];
static int nrefs;

/* Row id's output from mnist_ref, a model without batching, the row alone. */
static const double *ref(int id)
{
    for (int i = 0; i < nrefs; i++)
        if (refs[i].id == id)
            return refs[i].out;
    assert_true(nrefs < (int)(sizeof refs / sizeof *refs));
    struct call c = row_call("mnist_ref", P_JSON, id);
    do_call(&c);
    if (c.rc || c.status != 200 || c.bad)
        fprintf(stderr, "mnist_ref, row %d: curl %d, status %ld: %s\n", id, c.rc, c.status,
                c.error);
    assert_int_equal(c.rc, 0);
    assert_int_equal(c.status, 200);
    assert_false(c.bad);
    refs[nrefs].id = id;
    memcpy(refs[nrefs].out, c.out[0], sizeof refs[0].out);
    return refs[nrefs++].out;
}

static int close_enough(double got, double want)
{
    return fabs(got - want) <= gold_atol + gold_rtol * fabs(want);
}

/* got[0..n) against want, torch.allclose with mnist's golden tolerance. */
static void check_row(const char *what, int id, const double *got, const double *want, int n)
{
    for (int j = 0; j < n; j++)
        if (!close_enough(got[j], want[j])) {
            fprintf(stderr, "%s, row %d [%d]: got %.9g, want %.9g (atol %g, rtol %g)\n", what, id,
                    j, got[j], want[j], gold_atol, gold_rtol);
            fail();
        }
}

/* A batch can only swap rows unnoticed if their results agree: they must not. */
static void check_rows_distinct(const int *ids, int n)
{
    for (int a = 0; a < n; a++)
        for (int b = a + 1; b < n; b++) {
            const double *ra = ref(ids[a]), *rb = ref(ids[b]);
            int differ = 0;
            for (int j = 0; j < OUT; j++)
                differ |= fabs(ra[j] - rb[j]) > 100 * (gold_atol + gold_rtol * fabs(rb[j]));
            if (!differ)
                fprintf(stderr, "rows %d and %d give the same output\n", ids[a], ids[b]);
            assert_true(differ);
        }
}

static void print_call(const struct call *c)
{
    fprintf(stderr, "%s (proto %d, %d rows, first %d): curl %d, status %ld, %s\n", c->model,
            (int)c->proto, c_rows(c), c->ids[0], c->rc, c->status, c->error);
}

/* The call got status (and for an error, a message containing part); a 200 holds each of
 * its rows' unbatched result (and torch's for the golden rows). */
static void check_call(const struct call *c, long status, const char *part)
{
    if (c->rc || c->status != status || c->bad || (part && !strstr(c->error, part))) {
        print_call(c);
        if (part)
            fprintf(stderr, "want status %ld, error containing: %s\n", status, part);
    }
    assert_int_equal(c->rc, 0);
    assert_int_equal(c->status, status);
    assert_false(c->bad);
    if (part)
        assert_non_null(strstr(c->error, part));
    if (status != 200 || c->data)
        return;
    for (int i = 0; i < c_rows(c); i++) {
        check_row(c->model, c->ids[i], c->out[i], ref(c->ids[i]), OUT);
        if (c->ids[i] < 3)
            check_row("golden", c->ids[i], c->out[i], gold_out[c->ids[i]], OUT);
    }
}

/* ---- the daemon's view ------------------------------------------------------------------- */

static struct t_resp get_on(const struct t_daemon *dm, const char *path)
{
    struct t_resp r;
    assert_int_equal(t_get(dm, path, &r), 0);
    if (r.status != 200)
        fprintf(stderr, "GET %s: %ld %.500s\n", path, r.status, r.body);
    assert_int_equal(r.status, 200);
    return r;
}

/* A series' value in /metrics of dm (the whole line's name and labels), -1 when absent or
 * unreachable. Does not assert. */
static double metric_of(const struct t_daemon *dm, const char *series)
{
    struct t_resp r;
    double v = -1;
    if (t_get(dm, "/metrics", &r) == 0 && r.status == 200) {
        size_t n = strlen(series);
        for (const char *p = r.body; (p = strstr(p, series)); p += n)
            if ((p == r.body || p[-1] == '\n') && p[n] == ' ') {
                v = strtod(p + n + 1, NULL);
                break;
            }
    }
    t_resp_free(&r);
    return v;
}

static double rejected(const char *model, const char *reason)
{
    char s[256];
    snprintf(s, sizeof s, "relud_model_rejected_total{model=\"%s\",reason=\"%s\"}", model, reason);
    return metric_of(&d, s);
}

/* Waits until dm has n requests in flight besides the /metrics poll itself, then a moment
 * for their handlers to queue them (a body arrives in one go: the handler runs at once).
 * 0, or -1 after 30 s. Does not assert (requests are under way on other threads). */
static int wait_inflight(const struct t_daemon *dm, int n)
{
    for (int i = 0; i < 3000; i++) {
        if (metric_of(dm, "relud_inflight_requests") >= n + 1) {
            sleep_ms(100);
            return 0;
        }
        sleep_ms(10);
    }
    fprintf(stderr, "never saw %d requests in flight\n", n);
    return -1;
}

#define MAXB 64
/* A model's statistics: executions, and of batch_stats the executions per batch size and
 * the rows they ran. */
struct bstats {
    double exec, success, fail, rows;
    double count[MAXB + 1]; /* by batch size; MAXB: that or more */
};

static struct bstats stats_on(const struct t_daemon *dm, const char *name)
{
    char path[256];
    snprintf(path, sizeof path, "/v2/models/%s/stats", name);
    struct t_resp r = get_on(dm, path);
    const cJSON *ms = cJSON_GetArrayItem(t_item(r.json, "model_stats"), 0);
    assert_non_null(ms);
    assert_string_equal(t_item(ms, "name")->valuestring, name);
    struct bstats s;
    memset(&s, 0, sizeof s);
    s.exec = t_item(ms, "execution_count")->valuedouble;
    const cJSON *is = t_item(ms, "inference_stats");
    s.success = t_item(t_item(is, "success"), "count")->valuedouble;
    s.fail = t_item(t_item(is, "fail"), "count")->valuedouble;
    const cJSON *b, *bs = t_item(ms, "batch_stats");
    double total = 0, prev = 0;
    cJSON_ArrayForEach(b, bs)
    {
        double size = t_item(b, "batch_size")->valuedouble;
        double n = t_item(t_item(b, "compute_input"), "count")->valuedouble;
        /* Triton's form: the three phases count the same executions; sizes ascending */
        assert_true(t_item(t_item(b, "compute_infer"), "count")->valuedouble == n);
        assert_true(t_item(t_item(b, "compute_output"), "count")->valuedouble == n);
        assert_true(size >= 1 && size > prev);
        prev = size;
        s.count[size < MAXB ? (int)size : MAXB] += n;
        s.rows += size * n;
        total += n;
    }
    /* every execution is one batch_stats count */
    if (total != s.exec)
        fprintf(stderr, "%s: execution_count %.0f, batch_stats counts %.0f: %s\n", name, s.exec,
                total, r.body);
    assert_true(total == s.exec);
    t_resp_free(&r);
    return s;
}

static struct t_resp get_ok(const char *path) { return get_on(&d, path); }
static struct bstats stats_of(const char *name) { return stats_on(&d, name); }

/* ---- models --------------------------------------------------------------------------- */

/* mnist_mlp's weights as NAME.json with extra root keys (batching; "" none), malloc'd. */
static char *mnist_json(const char *name, const char *extra)
{
    struct srv_sb b;
    srv_sb_init(&b, 0);
    srv_sb_printf(
        &b,
        "{\"name\": \"%s\", \"dtype\": \"float32\", \"weights\": \"mnist_mlp.safetensors\", "
        "\"layers\": [{\"type\": \"linear\"}, {\"type\": \"relu\"}, {\"type\": \"linear\"}, "
        "{\"type\": \"relu\"}, {\"type\": \"linear\"}]%s%s}\n",
        name, extra[0] ? ", " : "", extra);
    char *s = srv_sb_take(&b, NULL);
    assert_non_null(s);
    return s;
}

/* PUT /v1/models/NAME: the status, and the reply's error in err. Does not assert. */
static long put_raw(const char *name, const char *body, char *err, size_t errlen)
{
    char url[512];
    snprintf(url, sizeof url, "%s/v1/models/%s", d.url, name);
    const char *hdrs[] = {AUTH, NULL};
    struct t_resp r;
    long st = -1;
    if (t_http("PUT", url, body, strlen(body), hdrs, &r) == 0) {
        st = r.status;
        const cJSON *e = r.json ? cJSON_GetObjectItemCaseSensitive(r.json, "error") : NULL;
        snprintf(err, errlen, "%s", cJSON_IsString(e) ? e->valuestring : r.body);
    }
    t_resp_free(&r);
    return st;
}

static void put_body(const char *name, const char *body)
{
    char err[1024];
    long st = put_raw(name, body, err, sizeof err);
    if (st != 200 && st != 201)
        fprintf(stderr, "PUT %s: %ld %s\n", name, st, err);
    assert_true(st == 200 || st == 201);
}

/* PUTs mnist_mlp's weights as name with the batching keys extra. */
static void put_mnist(const char *name, const char *extra)
{
    char *m = mnist_json(name, extra);
    put_body(name, m);
    free(m);
}

/* Copies mnist_mlp.safetensors into folder. */
static void copy_weights(const char *folder)
{
    char path[512];
    size_t n;
    snprintf(path, sizeof path, "%s/config/models/mnist_mlp.safetensors", t_root());
    char *w = t_read_file(path, &n);
    assert_non_null(w);
    t_write_file(folder, "mnist_mlp.safetensors", w, n);
    free(w);
}

/* Model files with bad batching settings, found at start (see model_file_errors). */
static const struct bad_model {
    const char *name, *extra, *part;
} bad_models[] = {
    {"bad_no_mbs", "\"dynamic_batching\": {}", "dynamic_batching: needs \"max_batch_size\""},
    {"bad_zero_mbs",
     "\"max_batch_size\": 0, \"dynamic_batching\": {\"max_queue_delay_microseconds\": 100}",
     "dynamic_batching: needs \"max_batch_size\""},
    {"bad_pref", "\"max_batch_size\": 8, \"dynamic_batching\": {\"preferred_batch_size\": [4, 16]}",
     "dynamic_batching.preferred_batch_size[1]: 16 is not from 1 to max_batch_size (8)"},
    {"bad_pref0", "\"max_batch_size\": 8, \"dynamic_batching\": {\"preferred_batch_size\": [0]}",
     "dynamic_batching.preferred_batch_size[0]"},
    {"bad_dyn_key", "\"max_batch_size\": 8, \"dynamic_batching\": {\"max_queue_delay_us\": 100}",
     "dynamic_batching: unknown or unsupported field \"max_queue_delay_us\""},
    {"bad_policy_key",
     "\"max_batch_size\": 8, \"dynamic_batching\": {\"default_queue_policy\": {\"timeout\": 1}}",
     "dynamic_batching.default_queue_policy: unknown or unsupported field \"timeout\""},
    {"bad_delay_action",
     "\"max_batch_size\": 8, \"dynamic_batching\": {\"default_queue_policy\": {\"timeout_action\": "
     "\"DELAY\"}}",
     "dynamic_batching.default_queue_policy.timeout_action: only \"REJECT\""},
    {"bad_mbs_neg", "\"max_batch_size\": -1", "max_batch_size: expected an integer"},
    {"bad_mbs_str", "\"max_batch_size\": \"eight\"", "max_batch_size: expected an integer"},
    {"bad_delay_big",
     "\"max_batch_size\": 8, \"dynamic_batching\": {\"max_queue_delay_microseconds\": 1e12}",
     "dynamic_batching.max_queue_delay_microseconds"},
    {"bad_dyn_type", "\"max_batch_size\": 8, \"dynamic_batching\": [1]",
     "dynamic_batching: expected an object"},
    {"bad_queue_size", "\"max_batch_size\": 8, \"dynamic_batching\": {\"max_queue_size\": -2}",
     "dynamic_batching.max_queue_size"},
    {"bad_root_key", "\"max_batch\": 8", "unknown field \"max_batch\""},
};
#define NBAD (sizeof bad_models / sizeof *bad_models)

static int group_setup(void **state)
{
    (void)state;
    curl_global_init(CURL_GLOBAL_ALL);
    load_golden();
    if (t_tmp_copy(dir, sizeof dir, "test-batch", NULL))
        return -1;
    copy_weights(dir);
    char *m = mnist_json("mnist_ref", "");
    t_write_str(dir, "mnist_ref.json", m);
    free(m);
    for (size_t i = 0; i < NBAD; i++) {
        char f[160];
        m = mnist_json(bad_models[i].name, bad_models[i].extra);
        snprintf(f, sizeof f, "%s.json", bad_models[i].name);
        t_write_str(dir, f, m);
        free(m);
    }
    /* One engine worker: a batch of exactly k rows runs when k are queued (idle workers
     * would share them, batch.h), so batch_stats can prove what ran together. */
    const char *args[] = {"--model-dir", dir, "--admin-token", TOKEN, "--batch-workers", "1", NULL};
    return t_daemon_start(&d, args, NULL);
}

static int group_teardown(void **state)
{
    (void)state;
    int rc = t_daemon_stop(&d, 0, 30);
    if (rc != 0)
        fprintf(stderr, "relud exited %d; log: %s\n", rc, d.log_path);
    else
        unlink(d.log_path);
    t_rm_dir(dir);
    cJSON_Delete(g_gold);
    curl_global_cleanup();
    return rc ? -1 : 0;
}

/* After each test: a test's own daemon and folder, also after a failure. */
static void stop_own(void)
{
    if (d2.pid > 0) {
        t_daemon_stop(&d2, SIGKILL, 5);
        fprintf(stderr, "daemon log kept: %s\n", d2.log_path);
    }
    t_rm_dir(dir2);
    dir2[0] = 0;
}

static int cleanup(void **state)
{
    (void)state;
    stop_own();
    return 0;
}

/* Starts d2 on its own folder with model name (mnist_mlp's weights, batching keys extra)
 * and the options args (NULL-terminated). */
static void start_own(const char *name, const char *extra, const char *const *args)
{
    assert_int_equal(t_tmp_copy(dir2, sizeof dir2, "test-batch", NULL), 0);
    copy_weights(dir2);
    char *m = mnist_json(name, extra), file[160];
    snprintf(file, sizeof file, "%s.json", name);
    t_write_str(dir2, file, m);
    free(m);
    const char *argv[16] = {"--model-dir", dir2};
    int n = 2;
    for (int i = 0; args && args[i] && n < 15; i++)
        argv[n++] = args[i];
    argv[n] = NULL;
    assert_int_equal(t_daemon_start(&d2, argv, NULL), 0);
}

/* SIGTERM to d2: it must exit 0 (the log is kept otherwise). */
static void stop_own_clean(void)
{
    int rc = t_daemon_stop(&d2, SIGTERM, 30);
    if (rc != 0) {
        char *log = t_daemon_log(&d2);
        fprintf(stderr, "relud exited %d; its log:\n%s\n", rc, log ? log : "");
        free(log);
    }
    assert_int_equal(rc, 0);
    unlink(d2.log_path);
}

/* ---- 1. numbers: every batch size against the row alone -------------------------------- */

static void batch_sizes_match_alone(void **state)
{
    (void)state;
    enum { K = 16 };
    int ids[K];
    for (int i = 0; i < K; i++)
        ids[i] = i; /* 0..2 the golden rows */
    check_rows_distinct(ids, K);
    static const enum proto protos[] = {P_JSON, P_BIN, P_V1, P_BINOUT, P_V1SD};
    for (int k = 1; k <= K; k++) {
        char extra[256];
        snprintf(extra, sizeof extra,
                 "\"max_batch_size\": %d, \"dynamic_batching\": "
                 "{\"max_queue_delay_microseconds\": 10000000}",
                 k);
        put_mnist("sizes", extra);
        struct bstats s0 = stats_of("sizes");
        struct call cs[K];
        for (int i = 0; i < k; i++)
            cs[i] = row_call("sizes", protos[(i + k) % 5], ids[i]);
        run_concurrent(cs, k);
        for (int i = 0; i < k; i++)
            check_call(&cs[i], 200, NULL);
        /* one execution, of k rows: they ran as one batch */
        struct bstats s1 = stats_of("sizes");
        if (s1.exec != s0.exec + 1 || s1.count[k] != s0.count[k] + 1)
            fprintf(stderr, "k = %d: executions %.0f -> %.0f, of size k %.0f -> %.0f\n", k, s0.exec,
                    s1.exec, s0.count[k], s1.count[k]);
        assert_true(s1.exec == s0.exec + 1);
        assert_true(s1.count[k] == s0.count[k] + 1);
        assert_true(s1.success == s0.success + k);
    }
}

/* ---- 2. concurrent clients, every form ------------------------------------------------- */

enum { NCLIENTS = 16, NPER = 6 };

struct client {
    struct call calls[NPER];
};

static void *client_thread(void *arg)
{
    struct client *c = arg;
    for (int j = 0; j < NPER; j++)
        do_call(&c->calls[j]);
    return NULL;
}

static void concurrent_clients_get_their_rows(void **state)
{
    (void)state;
    /* two engine workers: idle ones share what is queued (batch.h) */
    const char *args[] = {"--batch-workers", "2", NULL};
    start_own("busy",
              "\"max_batch_size\": 16, \"dynamic_batching\": "
              "{\"max_queue_delay_microseconds\": 2000}",
              args);
    struct bstats s0 = stats_on(&d2, "busy");
    static const enum proto protos[] = {P_JSON, P_BIN, P_BINOUT, P_V1, P_V1SD};
    struct client *cl = calloc(NCLIENTS, sizeof *cl);
    assert_non_null(cl);
    int rows = 0, next = 1000;
    for (int c = 0; c < NCLIENTS; c++)
        for (int j = 0; j < NPER; j++) {
            struct call *x = &cl[c].calls[j];
            int r = 1 + (c + j) % 3;
            *x = (struct call){.dm = &d2,
                               .model = "busy",
                               .proto = protos[(c * NPER + j) % 5],
                               .ndim = 2,
                               .shape = {(size_t)r, IN}};
            for (int i = 0; i < r; i++)
                x->ids[i] = next++; /* every row of every client distinct */
            if (c == 0 && j == 0)
                x->ids[0] = 0, x->ids[1] = 1; /* two golden rows in the mix */
            rows += r;
        }
    pthread_t th[NCLIENTS];
    for (int c = 0; c < NCLIENTS; c++)
        assert_int_equal(pthread_create(&th[c], NULL, client_thread, &cl[c]), 0);
    for (int c = 0; c < NCLIENTS; c++)
        pthread_join(th[c], NULL);
    for (int c = 0; c < NCLIENTS; c++)
        for (int j = 0; j < NPER; j++)
            check_call(&cl[c].calls[j], 200, NULL);
    /* every row ran exactly once, and batches formed */
    struct bstats s1 = stats_on(&d2, "busy");
    int biggest = 0;
    for (int k = 2; k <= MAXB; k++)
        if (s1.count[k] > s0.count[k])
            biggest = k;
    fprintf(stderr, "busy: %d requests, %d rows in %.0f executions, largest batch %d rows\n",
            NCLIENTS * NPER, rows, s1.exec - s0.exec, biggest);
    assert_true(s1.rows - s0.rows == rows);
    assert_true(s1.success - s0.success == NCLIENTS * NPER);
    assert_true(biggest > 3); /* more rows than any one request has: requests shared a pass */
    assert_true(s1.exec - s0.exec < NCLIENTS * NPER);
    free(cl);
    stop_own_clean();
}

/* Requests of several rows while more than one engine worker is idle: each is run whole
 * (a request's rows are never split between passes), and the daemon lives on. */
static void multirow_with_idle_workers(void **state)
{
    (void)state;
    const char *args[] = {"--batch-workers", "2", NULL};
    start_own("multi",
              "\"max_batch_size\": 8, \"dynamic_batching\": "
              "{\"max_queue_delay_microseconds\": 1000}",
              args);
    static const size_t rows[] = {2, 3, 8, 1, 5};
    int id = 200;
    for (size_t i = 0; i < sizeof rows / sizeof *rows; i++) {
        struct call c = {
            .dm = &d2, .model = "multi", .proto = P_JSON, .ndim = 2, .shape = {rows[i], IN}};
        for (size_t k = 0; k < rows[i]; k++)
            c.ids[k] = id++;
        do_call(&c);
        check_call(&c, 200, NULL);
    }
    stop_own_clean();
}

/* ---- 3. a full queue -------------------------------------------------------------------- */

static void queue_full_503(void **state)
{
    (void)state;
    put_mnist("full", "\"max_batch_size\": 8, \"dynamic_batching\": "
                      "{\"max_queue_delay_microseconds\": 2000000, \"max_queue_size\": 2}");
    double rej0 = rejected("full", "queue_full");
    assert_true(rej0 >= 0); /* the series is there for a batching model */
    struct bstats s0 = stats_of("full");
    struct call q[2] = {row_call("full", P_JSON, 3), row_call("full", P_V1, 4)};
    struct call over[4] = {row_call("full", P_JSON, 5), row_call("full", P_BIN, 6),
                           row_call("full", P_V1, 7), row_call("full", P_BINOUT, 8)};
    pthread_t th[2];
    start_calls(q, 2, th);
    int waited = wait_inflight(&d, 2);
    if (!waited)
        run_concurrent(over, 4);
    int q_done_early = atomic_load(&q[0].done) + atomic_load(&q[1].done);
    join_calls(2, th);
    assert_int_equal(waited, 0);
    /* the two queued ones were still waiting for their delay when the others were refused */
    assert_int_equal(q_done_early, 0);
    for (int i = 0; i < 4; i++) {
        check_call(&over[i], 503, "exceeds maximum queue size");
        if (!over[i].retry_after[0])
            fprintf(stderr, "queue full reply without Retry-After: %s\n", over[i].error);
        assert_true(over[i].retry_after[0] != 0);
    }
    for (int i = 0; i < 2; i++)
        check_call(&q[i], 200, NULL);
    struct bstats s1 = stats_of("full");
    assert_true(s1.exec == s0.exec + 1); /* the two queued, together */
    assert_true(s1.count[2] == s0.count[2] + 1);
    assert_true(s1.fail == s0.fail + 4);
    assert_true(rejected("full", "queue_full") == rej0 + 4);
    assert_true(rejected("full", "timeout") == 0);
    /* the queue takes requests again: a full batch runs at once */
    struct call again = {.model = "full",
                         .proto = P_JSON,
                         .ndim = 2,
                         .shape = {8, IN},
                         .ids = {9, 10, 11, 12, 13, 14, 15, 16}};
    do_call(&again);
    check_call(&again, 200, NULL);
}

/* ---- 4. timeouts ------------------------------------------------------------------------ */

static void timeouts(void **state)
{
    (void)state;
    /* the model's default timeout: 100 ms in a queue that waits 5 s */
    put_mnist("tmo", "\"max_batch_size\": 8, \"dynamic_batching\": "
                     "{\"max_queue_delay_microseconds\": 5000000, "
                     "\"default_timeout_microseconds\": 100000}");
    struct bstats s0 = stats_of("tmo");
    double rej0 = rejected("tmo", "timeout");
    struct call c[3] = {row_call("tmo", P_JSON, 20), row_call("tmo", P_V1, 21),
                        row_call("tmo", P_JSON, 22)};
    c[2].params = "{\"timeout\": 10000000}"; /* longer than the model's: the model's holds */
    run_concurrent(c, 3);
    for (int i = 0; i < 3; i++)
        check_call(&c[i], 503, "request timeout expired");
    struct bstats s1 = stats_of("tmo");
    assert_true(s1.exec == s0.exec); /* never run */
    assert_true(s1.rows == s0.rows);
    assert_true(s1.success == s0.success);
    assert_true(s1.fail == s0.fail + 3);
    assert_true(rejected("tmo", "timeout") == rej0 + 3);
    assert_true(rejected("tmo", "queue_full") == 0);

    /* Triton's per-request "timeout" on a model without a default */
    put_mnist("tmo_req", "\"max_batch_size\": 8, \"dynamic_batching\": "
                         "{\"max_queue_delay_microseconds\": 5000000}");
    s0 = stats_of("tmo_req");
    struct call t = row_call("tmo_req", P_JSON, 23);
    t.params = "{\"timeout\": 50000}";
    do_call(&t);
    check_call(&t, 503, "request timeout expired");
    s1 = stats_of("tmo_req");
    assert_true(s1.exec == s0.exec);
    assert_true(rejected("tmo_req", "timeout") == 1);
    /* a request that fills its batch before its timeout runs */
    struct call full = {.model = "tmo_req",
                        .proto = P_BIN,
                        .ndim = 2,
                        .shape = {8, IN},
                        .ids = {24, 25, 26, 27, 28, 29, 30, 31},
                        .params = "{\"timeout\": 50000000}"};
    do_call(&full);
    check_call(&full, 200, NULL);
    assert_true(rejected("tmo_req", "timeout") == 1);

    /* allow_timeout_override false: the request's own timeout is not taken */
    put_mnist("tmo_fixed", "\"max_batch_size\": 8, \"dynamic_batching\": "
                           "{\"max_queue_delay_microseconds\": 300000, \"default_queue_policy\": "
                           "{\"allow_timeout_override\": false}}");
    t = row_call("tmo_fixed", P_JSON, 32);
    t.params = "{\"timeout\": 1000}";
    do_call(&t);
    check_call(&t, 200, NULL);
    assert_true(rejected("tmo_fixed", "timeout") == 0);

    /* the timeout is ignored where nothing is queued */
    t = row_call("mnist_ref", P_JSON, 33);
    t.params = "{\"timeout\": 1}";
    do_call(&t);
    check_call(&t, 200, NULL);

    /* bad timeout values: 400 naming parameters.timeout, batching model or not */
    static const char *const bads[] = {"{\"timeout\": -1}",   "{\"timeout\": \"x\"}",
                                       "{\"timeout\": 1.5}",  "{\"timeout\": true}",
                                       "{\"timeout\": null}", "{\"timeout\": [1]}"};
    const char *models[] = {"tmo_req", "mnist_ref"};
    for (int m = 0; m < 2; m++)
        for (size_t i = 0; i < sizeof bads / sizeof *bads; i++) {
            t = row_call(models[m], P_JSON, 34);
            t.params = bads[i];
            do_call(&t);
            if (t.status != 400)
                fprintf(stderr, "%s with %s\n", models[m], bads[i]);
            check_call(&t, 400, "parameters.timeout");
        }
}

/* ---- 5. a model replaced or deleted while requests are queued ---------------------------- */

/* A 10 -> 5 Linear + ReLU with inline weights times scale. */
static char *small_json(const char *name, double scale, const char *extra)
{
    struct srv_sb b;
    srv_sb_init(&b, 0);
    srv_sb_printf(&b, "{\"name\": \"%s\", \"layers\": [{\"type\": \"linear\", \"weight\": [", name);
    for (int j = 0; j < 5; j++) {
        srv_sb_puts(&b, j ? ",[" : "[");
        for (int k = 0; k < 10; k++)
            srv_sb_printf(&b, k ? ",%g" : "%g", scale * (((j * 10 + k) * 37 % 19) - 9) / 16.0);
        srv_sb_puts(&b, "]");
    }
    srv_sb_puts(&b, "], \"bias\": [");
    for (int j = 0; j < 5; j++)
        srv_sb_printf(&b, j ? ",%g" : "%g", scale * (j - 2) / 8.0);
    srv_sb_printf(&b, "]}, {\"type\": \"relu\"}], %s}", extra);
    char *s = srv_sb_take(&b, NULL);
    assert_non_null(s);
    return s;
}

static const float SX[10] = {1, -2, 3, 0.5f, -0.25f, 2, 1, -1, 0.75f, 4};

/* small_json's output for SX, in double. */
static void small_ref(double scale, double *out)
{
    for (int j = 0; j < 5; j++) {
        double s = scale * (j - 2) / 8.0;
        for (int k = 0; k < 10; k++)
            s += scale * (((j * 10 + k) * 37 % 19) - 9) / 16.0 * SX[k];
        out[j] = s > 0 ? s : 0;
    }
}

static void check_small(const struct call *c, double scale)
{
    double want[5];
    small_ref(scale, want);
    for (int j = 0; j < 5; j++)
        if (!(fabs(c->out[0][j] - want[j]) <= 1e-5 + 1e-5 * fabs(want[j]))) {
            fprintf(stderr, "%s (scale %g) [%d]: got %.9g, want %.9g\n", c->model, scale, j,
                    c->out[0][j], want[j]);
            fail();
        }
}

static struct call small_call(const char *model, enum proto p)
{
    return (struct call){.model = model,
                         .proto = p,
                         .ndim = 2,
                         .shape = {1, 10},
                         .data = SX,
                         .in_f = 10,
                         .out_f = 5};
}

static void replaced_while_queued(void **state)
{
    (void)state;
    double v1[5], v2[5];
    small_ref(1, v1);
    small_ref(2, v2);
    int positive = 0;
    for (int j = 0; j < 5; j++)
        positive += v1[j] > 0.1;
    assert_true(positive >= 2); /* the versions' outputs differ well beyond the tolerance */
    const char *b1 = "\"max_batch_size\": 4, \"dynamic_batching\": "
                     "{\"max_queue_delay_microseconds\": 1500000}";
    const char *b2 = "\"max_batch_size\": 4, \"dynamic_batching\": "
                     "{\"max_queue_delay_microseconds\": 100000}";
    char *j1 = small_json("swap", 1, b1), *j2 = small_json("swap", 2, b2);
    int attempt;
    for (attempt = 0; attempt < 3; attempt++) {
        put_body("swap", j1);
        struct bstats s0 = stats_of("swap");
        struct call a = small_call("swap", P_JSON), b = small_call("swap", P_V1);
        pthread_t th;
        start_calls(&a, 1, &th);
        int waited = wait_inflight(&d, 1);
        char err[512] = "";
        long put = waited ? -1 : put_raw("swap", j2, err, sizeof err);
        int a_early = atomic_load(&a.done); /* answered before v2 was in: no test */
        if (put == 200)
            do_call(&b);
        join_calls(1, &th);
        assert_int_equal(waited, 0);
        if (put != 200)
            fprintf(stderr, "PUT v2: %ld %s\n", put, err);
        assert_int_equal(put, 200);
        check_call(&a, 200, NULL);
        check_call(&b, 200, NULL);
        if (a_early) {
            fprintf(stderr, "replaced_while_queued: A answered before the PUT; again\n");
            continue;
        }
        check_small(&a, 1); /* queued on v1: v1's numbers, after v1's delay */
        check_small(&b, 2);
        struct bstats s1 = stats_of("swap");
        assert_true(s1.exec == s0.exec + 2); /* one pass each: never one batch */
        assert_true(s1.count[1] == s0.count[1] + 2);
        break;
    }
    assert_true(attempt < 3);

    /* deleted while queued: still answered, by the version it was queued on */
    char *jg = small_json("gone", 2, b1);
    for (attempt = 0; attempt < 3; attempt++) {
        put_body("gone", jg);
        struct call a = small_call("gone", P_BIN);
        pthread_t th;
        start_calls(&a, 1, &th);
        int waited = wait_inflight(&d, 1);
        struct t_resp r = {0};
        char url[512];
        snprintf(url, sizeof url, "%s/v1/models/gone", d.url);
        const char *hdrs[] = {AUTH, NULL};
        int rc = waited ? -1 : t_http("DELETE", url, NULL, 0, hdrs, &r);
        long del = rc ? -1 : r.status;
        t_resp_free(&r);
        int a_early = atomic_load(&a.done);
        join_calls(1, &th);
        assert_int_equal(waited, 0);
        assert_int_equal(del, 200);
        check_call(&a, 200, NULL);
        check_small(&a, 2);
        struct call after = small_call("gone", P_JSON);
        do_call(&after);
        check_call(&after, 404, "gone");
        if (!a_early)
            break;
        fprintf(stderr, "replaced_while_queued: A answered before the DELETE; again\n");
    }
    assert_true(attempt < 3);
    free(jg);
    free(j1);
    free(j2);
}

/* ---- 6. a drain with requests queued ---------------------------------------------------- */

static void drain_answers_queued(void **state)
{
    (void)state;
    const char *args[] = {"--drain-timeout", "10", NULL};
    start_own("drainer",
              "\"max_batch_size\": 8, \"dynamic_batching\": "
              "{\"max_queue_delay_microseconds\": 1000000}",
              args);
    static const enum proto protos[] = {P_JSON, P_BIN, P_V1, P_BINOUT, P_V1SD};
    struct call c[5];
    for (int i = 0; i < 5; i++) {
        c[i] = row_call("drainer", protos[i], 40 + i);
        c[i].dm = &d2;
    }
    pthread_t th[5];
    start_calls(c, 5, th);
    int waited = wait_inflight(&d2, 5);
    int early = 0;
    for (int i = 0; i < 5; i++)
        early += atomic_load(&c[i].done);
    int rc = waited ? -2 : t_daemon_stop(&d2, SIGTERM, 30);
    join_calls(5, th);
    assert_int_equal(waited, 0);
    if (rc != 0)
        fprintf(stderr, "relud exited %d after the drain; log: %s\n", rc, d2.log_path);
    assert_int_equal(rc, 0);
    assert_int_equal(early, 0); /* they were queued when the drain began */
    for (int i = 0; i < 5; i++)
        check_call(&c[i], 200, NULL);
    unlink(d2.log_path);
}

/* drain_timeout ends with requests still queued: they are answered 503, and libmicrohttpd
 * is not stopped with their connections parked (it aborts then). */
/* Connects to port on 127.0.0.1 (-1 on failure). */
static int connect_local(int port)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (fd >= 0 && connect(fd, (struct sockaddr *)&a, sizeof a) != 0) {
        close(fd);
        fd = -1;
    }
    return fd;
}

static int send_all(int fd, const char *p, size_t n)
{
    while (n) {
        ssize_t k = send(fd, p, n, MSG_NOSIGNAL);
        if (k <= 0)
            return -1;
        p += k, n -= (size_t)k;
    }
    return 0;
}

/* Polls dm's log for part, up to 60 s: 0 when it appears. */
static int wait_log(const struct t_daemon *dm, const char *part)
{
    for (int i = 0; i < 12000; i++) {
        char *log = t_daemon_log(dm);
        int found = log && strstr(log, part);
        free(log);
        if (found)
            return 0;
        sleep_ms(5);
    }
    fprintf(stderr, "the daemon never logged \"%s\"\n", part);
    return -1;
}

/* The exit status of dm (it was signalled already), as t_daemon_stop's; -1 after 30 s. */
static int wait_exit(struct t_daemon *dm)
{
    for (int i = 0; i < 3000; i++) {
        int st;
        if (waitpid(dm->pid, &st, WNOHANG) == dm->pid) {
            dm->pid = 0;
            return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
        }
        sleep_ms(10);
    }
    return -1;
}

/* A request whose body is still arriving when the drain's end cuts what is queued (the
 * engine stops a moment before libmicrohttpd does): it gets a reply (a 503, or its
 * answer), and the daemon exits 0. */
static void drain_end_body_still_arriving(void **state)
{
    (void)state;
    const char *args[] = {"--drain-timeout", "2", NULL};
    start_own("drainer",
              "\"max_batch_size\": 8, \"dynamic_batching\": "
              "{\"max_queue_delay_microseconds\": 1000}",
              args);
    struct call c = row_call("drainer", P_JSON, 48);
    float x[IN];
    row(48, x);
    size_t len = 0, hlen;
    char *body = build_body(&c, x, IN, &len, &hlen);
    assert_non_null(body);
    char head[256];
    snprintf(head, sizeof head,
             "POST /v2/models/drainer/infer HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: "
             "application/json\r\nContent-Length: %zu\r\n\r\n",
             len);
    int fd = connect_local(d2.port);
    assert_true(fd >= 0);
    struct timeval tv = {30, 0};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    /* the headers and half the body; wait until the daemon has the request in flight */
    int ok =
        !send_all(fd, head, strlen(head)) && !send_all(fd, body, len / 2) && !wait_inflight(&d2, 1);
    /* the drain: the rest of the body once the daemon says it cuts what is left */
    ok = ok && kill(d2.pid, SIGTERM) == 0 && !wait_log(&d2, "cutting their passes") &&
         !send_all(fd, body + len / 2, len - len / 2);
    char reply[8192];
    size_t got = 0;
    ssize_t k;
    while (ok && got < sizeof reply - 1 &&
           (k = recv(fd, reply + got, sizeof reply - 1 - got, 0)) > 0)
        got += (size_t)k;
    reply[got] = 0;
    close(fd);
    free(body);
    int rc = wait_exit(&d2);
    if (rc != 0 || (strncmp(reply, "HTTP/1.1 503", 12) && strncmp(reply, "HTTP/1.1 200", 12))) {
        char *log = t_daemon_log(&d2);
        fprintf(stderr, "exit %d, reply: %.300s\nlog:\n%s\n", rc, reply, log ? log : "");
        free(log);
    }
    assert_true(ok);
    assert_int_equal(rc, 0);
    assert_true(!strncmp(reply, "HTTP/1.1 503", 12) || !strncmp(reply, "HTTP/1.1 200", 12));
    unlink(d2.log_path);
}

static void drain_end_answers_503(void **state)
{
    (void)state;
    const char *args[] = {"--drain-timeout", "1", NULL};
    start_own("drainer",
              "\"max_batch_size\": 8, \"dynamic_batching\": "
              "{\"max_queue_delay_microseconds\": 30000000}",
              args);
    static const enum proto protos[] = {P_JSON, P_V1, P_BINOUT};
    struct call c[3];
    for (int i = 0; i < 3; i++) {
        c[i] = row_call("drainer", protos[i], 45 + i);
        c[i].dm = &d2;
    }
    pthread_t th[3];
    start_calls(c, 3, th);
    int waited = wait_inflight(&d2, 3);
    int rc = waited ? -2 : t_daemon_stop(&d2, SIGTERM, 30);
    join_calls(3, th);
    assert_int_equal(waited, 0);
    if (rc != 0) {
        char *log = t_daemon_log(&d2);
        fprintf(stderr, "relud exited %d at the end of the drain; log:\n%s\n", rc, log ? log : "");
        free(log);
    }
    assert_int_equal(rc, 0);
    for (int i = 0; i < 3; i++) {
        check_call(&c[i], 503, "draining");
        assert_true(c[i].retry_after[0] != 0);
    }
    unlink(d2.log_path);
}

/* ---- 7. shapes that differ after the first dimension; wire datatypes --------------------- */

static void mixed_shapes_batched_apart(void **state)
{
    (void)state;
    put_mnist("mixed", "\"max_batch_size\": 4, \"dynamic_batching\": "
                       "{\"max_queue_delay_microseconds\": 10000000}");
    struct bstats s0 = stats_of("mixed");
    /* rows of [784]: 1 + 1 + 2; rows of [2, 784]: 1 + 1 + 2; rows of [1, 784] (the same rank
     * as the last kind): 1 + 3. Each kind fills a batch of 4. */
    struct call c[8] = {
        {.model = "mixed", .proto = P_JSON, .ndim = 2, .shape = {1, IN}, .ids = {50}},
        {.model = "mixed", .proto = P_V1, .ndim = 2, .shape = {1, IN}, .ids = {51}},
        {.model = "mixed", .proto = P_BIN, .ndim = 2, .shape = {2, IN}, .ids = {52, 53}},
        {.model = "mixed", .proto = P_JSON, .ndim = 3, .shape = {1, 2, IN}, .ids = {54, 55}},
        {.model = "mixed", .proto = P_BINOUT, .ndim = 3, .shape = {1, 2, IN}, .ids = {0, 1}},
        {.model = "mixed", .proto = P_V1, .ndim = 3, .shape = {2, 2, IN}, .ids = {2, 56, 57, 58}},
        {.model = "mixed", .proto = P_BIN, .ndim = 3, .shape = {1, 1, IN}, .ids = {59}},
        {.model = "mixed", .proto = P_V1SD, .ndim = 3, .shape = {3, 1, IN}, .ids = {60, 61, 62}},
    };
    run_concurrent(c, 8);
    for (int i = 0; i < 8; i++)
        check_call(&c[i], 200, NULL);
    struct bstats s1 = stats_of("mixed");
    assert_true(s1.exec == s0.exec + 3);
    assert_true(s1.count[4] == s0.count[4] + 3);
}

static void wire_dtypes_batched(void **state)
{
    (void)state;
    put_mnist("wire", "\"max_batch_size\": 5, \"dynamic_batching\": "
                      "{\"max_queue_delay_microseconds\": 10000000}");
    struct bstats s0 = stats_of("wire");
    struct call c[5] = {
        row_call("wire", P_JSON64, 60),         row_call("wire", P_BIN64, 61),
        row_call("wire", P_BINU8, INT_ROW + 1), row_call("wire", P_JSONI32, INT_ROW + 2),
        row_call("wire", P_JSON, 62),
    };
    run_concurrent(c, 5);
    for (int i = 0; i < 5; i++)
        check_call(&c[i], 200, NULL);
    struct bstats s1 = stats_of("wire");
    assert_true(s1.exec == s0.exec + 1); /* one batch of every wire type */
    assert_true(s1.count[5] == s0.count[5] + 1);
}

/* ---- 8. requests that run alone on a batching model -------------------------------------- */

/* The golden input as an OIP input. */
static void sb_golden_input(struct srv_sb *b)
{
    srv_sb_puts(b,
                "{\"name\": \"input\", \"datatype\": \"FP32\", \"shape\": [3, 784], \"data\": [");
    for (int i = 0; i < 3 * IN; i++)
        srv_sb_printf(b, i ? ",%.9g" : "%.9g", (double)gold_in[i / IN][i % IN]);
    srv_sb_puts(b, "]}");
}

static struct t_resp post_ok(const char *path, const char *body)
{
    char url[512];
    snprintf(url, sizeof url, "%s%s", d.url, path);
    struct t_resp r;
    assert_int_equal(t_http("POST", url, body, strlen(body), NULL, &r), 0);
    if (r.status != 200)
        fprintf(stderr, "POST %s: %ld %.1000s\n", path, r.status, r.body);
    assert_int_equal(r.status, 200);
    assert_non_null(r.json);
    return r;
}

static const cJSON *find_output(const cJSON *resp, const char *name)
{
    const cJSON *o;
    cJSON_ArrayForEach(o, t_item(resp, "outputs"))
    {
        const cJSON *n = cJSON_GetObjectItemCaseSensitive(o, "name");
        if (cJSON_IsString(n) && !strcmp(n->valuestring, name))
            return o;
    }
    fprintf(stderr, "no output \"%s\"\n", name);
    fail();
    return NULL;
}

/* The OIP output name against the golden tensor gt ({"shape", "data"}). */
static void check_golden_output(const cJSON *resp, const char *name, const cJSON *gt)
{
    const cJSON *o = find_output(resp, name);
    const cJSON *sh = t_item(o, "shape"), *gsh = t_item(gt, "shape");
    assert_int_equal(cJSON_GetArraySize(sh), cJSON_GetArraySize(gsh));
    for (int i = 0; i < cJSON_GetArraySize(sh); i++)
        assert_true(cJSON_GetArrayItem(sh, i)->valuedouble ==
                    cJSON_GetArrayItem(gsh, i)->valuedouble);
    const cJSON *data = t_item(o, "data"), *gd = t_item(gt, "data");
    assert_int_equal(cJSON_GetArraySize(data), cJSON_GetArraySize(gd));
    const cJSON *x = data->child, *y = gd->child; /* walked: cJSON arrays are lists */
    for (int i = 0; x && y; i++, x = x->next, y = y->next)
        if (!close_enough(x->valuedouble, y->valuedouble)) {
            fprintf(stderr, "%s[%d]: got %.9g, want %.9g\n", name, i, x->valuedouble,
                    y->valuedouble);
            fail();
        }
}

static void alone_on_batching_model(void **state)
{
    (void)state;
    /* A request queued here would wait 60 s for company: its 2 s timeout answers 503
     * instead, so a request wrongly queued fails fast. */
    put_mnist("alone", "\"max_batch_size\": 8, \"dynamic_batching\": "
                       "{\"max_queue_delay_microseconds\": 60000000, "
                       "\"default_timeout_microseconds\": 2000000}");
    struct bstats s0 = stats_of("alone");
    int ok = 0, rows = 0;

    /* loss and gradients: torch's numbers (as test_oip's gradients_mnist_golden) */
    const cJSON *loss = t_item(g_gold, "loss");
    const cJSON *tgt = t_item(t_item(loss, "target"), "data");
    struct srv_sb b;
    srv_sb_init(&b, 0);
    srv_sb_printf(&b, "{\"parameters\": {\"loss\": \"%s\", \"reduction\": \"%s\"}, \"inputs\": [",
                  t_item(loss, "type")->valuestring, t_item(loss, "reduction")->valuestring);
    sb_golden_input(&b);
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
    srv_sb_puts(&b, "]}]}");
    char *body = srv_sb_take(&b, NULL);
    struct t_resp r = post_ok("/v2/models/alone/infer", body);
    free(body);
    check_golden_output(r.json, "output", t_item(g_gold, "output"));
    check_golden_output(r.json, "grad:input", t_item(g_gold, "grad_input"));
    int nparams = 0;
    cJSON_ArrayForEach(e, t_item(g_gold, "grad_params"))
    {
        char name[96];
        snprintf(name, sizeof name, "grad:%s", e->string);
        check_golden_output(r.json, name, e);
        nparams++;
    }
    assert_int_equal(nparams, 6);
    const cJSON *lo = find_output(r.json, "loss");
    double lv = cJSON_GetArrayItem(t_item(lo, "data"), 0)->valuedouble;
    assert_true(close_enough(lv, t_item(g_gold, "expected_loss")->valuedouble));
    t_resp_free(&r);
    ok++, rows += 3;

    /* gradients of output.sum(), and per-layer statistics */
    const char *params[] = {"{\"gradients\": true}", "{\"stats\": true}"};
    for (int i = 0; i < 2; i++) {
        srv_sb_init(&b, 0);
        srv_sb_printf(&b, "{\"parameters\": %s, \"inputs\": [", params[i]);
        sb_golden_input(&b);
        srv_sb_puts(&b, "]}");
        body = srv_sb_take(&b, NULL);
        r = post_ok("/v2/models/alone/infer", body);
        free(body);
        check_golden_output(r.json, "output", t_item(g_gold, "output"));
        if (i == 0)
            assert_non_null(find_output(r.json, "grad:input"));
        else
            assert_non_null(t_item(t_item(r.json, "parameters"), "stats"));
        t_resp_free(&r);
        ok++, rows += 3;
    }

    /* a 1-D input (no batch dimension) */
    struct call c[2] = {
        {.model = "alone", .proto = P_JSON, .ndim = 1, .shape = {IN}, .ids = {1}},
        {.model = "alone", .proto = P_V1, .ndim = 1, .shape = {IN}, .ids = {2}},
    };
    for (int i = 0; i < 2; i++) {
        do_call(&c[i]);
        check_call(&c[i], 200, NULL);
        ok++, rows += 1;
    }

    /* /v1/forward with gradients */
    srv_sb_init(&b, 0);
    srv_sb_puts(&b, "{\"model\": \"alone\", \"gradients\": true, \"input\": [[");
    for (int k = 0; k < IN; k++)
        srv_sb_printf(&b, k ? ",%.9g" : "%.9g", (double)gold_in[0][k]);
    srv_sb_puts(&b, "]]}");
    body = srv_sb_take(&b, NULL);
    r = post_ok("/v1/forward", body);
    free(body);
    const cJSON *out0 = cJSON_GetArrayItem(t_item(r.json, "output"), 0);
    assert_int_equal(cJSON_GetArraySize(out0), OUT);
    for (int j = 0; j < OUT; j++)
        assert_true(close_enough(cJSON_GetArrayItem(out0, j)->valuedouble, gold_out[0][j]));
    assert_non_null(t_item(t_item(r.json, "gradients"), "input"));
    t_resp_free(&r);
    ok++, rows += 1;

    /* over max_batch_size: 400 naming it, in every form */
    static const enum proto protos[] = {P_JSON, P_BIN, P_V1, P_V1SD};
    for (int i = 0; i < 4; i++) {
        struct call big = {.model = "alone",
                           .proto = protos[i],
                           .ndim = 2,
                           .shape = {9, IN},
                           .ids = {70, 71, 72, 73, 74, 75, 76, 77, 78}};
        do_call(&big);
        check_call(&big, 400, "max_batch_size");
        struct call big3 = {.model = "alone",
                            .proto = protos[i],
                            .ndim = 3,
                            .shape = {9, 1, IN},
                            .ids = {70, 71, 72, 73, 74, 75, 76, 77, 78}};
        do_call(&big3);
        check_call(&big3, 400, "max_batch_size");
    }

    struct bstats s1 = stats_of("alone");
    assert_true(s1.exec == s0.exec + ok); /* each ran, each alone */
    assert_true(s1.rows == s0.rows + rows);
    assert_true(s1.success == s0.success + ok);
    assert_true(rejected("alone", "timeout") == 0);
}

/* ---- 9. Triton's model configuration ------------------------------------------------------ */

static struct t_resp model_config(const char *name)
{
    char path[256];
    snprintf(path, sizeof path, "/v2/models/%s/config", name);
    struct t_resp r = get_ok(path);
    assert_non_null(r.json);
    assert_string_equal(t_item(r.json, "name")->valuestring, name);
    return r;
}

/* The config's input and output: names, TYPE_FP32, dims. */
static void check_config_io(const cJSON *cfg, const int *in_dims, const int *out_dims, int nd)
{
    const char *keys[] = {"input", "output"};
    for (int k = 0; k < 2; k++) {
        const cJSON *arr = t_item(cfg, keys[k]);
        assert_int_equal(cJSON_GetArraySize(arr), 1);
        const cJSON *t = cJSON_GetArrayItem(arr, 0);
        assert_string_equal(t_item(t, "name")->valuestring, keys[k]);
        assert_string_equal(t_item(t, "data_type")->valuestring, "TYPE_FP32");
        const cJSON *dims = t_item(t, "dims");
        const int *want = k ? out_dims : in_dims;
        assert_int_equal(cJSON_GetArraySize(dims), nd);
        for (int i = 0; i < nd; i++)
            assert_int_equal((int)cJSON_GetArrayItem(dims, i)->valuedouble, want[i]);
    }
}

static void check_str(const cJSON *o, const char *key, const char *want)
{
    const cJSON *v = t_item(o, key);
    if (!cJSON_IsString(v))
        fprintf(stderr, "%s: not a string (protobuf's JSON writes uint64 as one)\n", key);
    assert_true(cJSON_IsString(v));
    assert_string_equal(v->valuestring, want);
}

static void check_num(const cJSON *o, const char *key, double want)
{
    const cJSON *v = t_item(o, key);
    if (!cJSON_IsNumber(v) || v->valuedouble != want)
        fprintf(stderr, "%s: want %g\n", key, want);
    assert_true(cJSON_IsNumber(v));
    assert_true(v->valuedouble == want);
}

static void model_config_triton(void **state)
{
    (void)state;
    const int in1[] = {IN}, out1[] = {OUT}, in2[] = {-1, IN}, out2[] = {-1, OUT};

    put_mnist("cfg_b",
              "\"max_batch_size\": 8, \"dynamic_batching\": "
              "{\"max_queue_delay_microseconds\": 200000, \"preferred_batch_size\": [4, 8], "
              "\"max_queue_size\": 0, \"default_timeout_microseconds\": 0}");
    struct t_resp r = model_config("cfg_b");
    check_num(r.json, "max_batch_size", 8);
    const cJSON *db = t_item(r.json, "dynamic_batching");
    check_str(db, "max_queue_delay_microseconds", "200000");
    const cJSON *pref = t_item(db, "preferred_batch_size");
    assert_int_equal(cJSON_GetArraySize(pref), 2);
    assert_true(cJSON_GetArrayItem(pref, 0)->valuedouble == 4);
    assert_true(cJSON_GetArrayItem(pref, 1)->valuedouble == 8);
    const cJSON *pol = t_item(db, "default_queue_policy");
    check_num(pol, "max_queue_size", 0);
    check_str(pol, "default_timeout_microseconds", "0");
    assert_true(cJSON_IsTrue(t_item(pol, "allow_timeout_override")));
    check_str(pol, "timeout_action", "REJECT");
    check_config_io(r.json, in1, out1, 1); /* without the batch dimension */
    t_resp_free(&r);

    /* the nested default_queue_policy, uint64 fields as strings (protobuf's JSON) */
    put_mnist("cfg_n", "\"max_batch_size\": 16, \"dynamic_batching\": "
                       "{\"max_queue_delay_microseconds\": \"1500\", \"default_queue_policy\": "
                       "{\"max_queue_size\": 5, \"default_timeout_microseconds\": \"250000\", "
                       "\"allow_timeout_override\": false, \"timeout_action\": \"REJECT\"}}");
    r = get_ok("/v2/models/cfg_n/versions/1/config");
    check_num(r.json, "max_batch_size", 16);
    db = t_item(r.json, "dynamic_batching");
    check_str(db, "max_queue_delay_microseconds", "1500");
    assert_int_equal(cJSON_GetArraySize(t_item(db, "preferred_batch_size")), 0);
    pol = t_item(db, "default_queue_policy");
    check_num(pol, "max_queue_size", 5);
    check_str(pol, "default_timeout_microseconds", "250000");
    assert_true(cJSON_IsFalse(t_item(pol, "allow_timeout_override")));
    check_config_io(r.json, in1, out1, 1);
    t_resp_free(&r);

    /* max_batch_size without dynamic_batching: dims without the batch, no batching */
    put_mnist("cfg_mbs", "\"max_batch_size\": 4");
    r = model_config("cfg_mbs");
    check_num(r.json, "max_batch_size", 4);
    assert_null(cJSON_GetObjectItemCaseSensitive(r.json, "dynamic_batching"));
    check_config_io(r.json, in1, out1, 1);
    t_resp_free(&r);
    struct bstats s0 = stats_of("cfg_mbs");
    struct call c = {
        .model = "cfg_mbs", .proto = P_JSON, .ndim = 2, .shape = {4, IN}, .ids = {80, 81, 82, 83}};
    do_call(&c);
    check_call(&c, 200, NULL);
    c.shape[0] = 5;
    c.ids[4] = 84;
    do_call(&c);
    check_call(&c, 400, "max_batch_size (4)");
    assert_true(stats_of("cfg_mbs").exec == s0.exec + 1);

    /* a model without either: max_batch_size 0, the whole shape */
    r = model_config("mnist_ref");
    check_num(r.json, "max_batch_size", 0);
    assert_null(cJSON_GetObjectItemCaseSensitive(r.json, "dynamic_batching"));
    check_config_io(r.json, in2, out2, 2);
    t_resp_free(&r);

    struct t_resp nf;
    assert_int_equal(t_get(&d, "/v2/models/no_such_model/config", &nf), 0);
    assert_int_equal(nf.status, 404);
    t_check_error(&nf, "no_such_model");
    t_resp_free(&nf);
}

/* ---- 10. model files with bad batching settings -------------------------------------------- */

static void model_file_errors(void **state)
{
    (void)state;
    char url[256];
    snprintf(url, sizeof url, "%s/v2/repository/index", d.url);
    const char *hdrs[] = {AUTH, NULL};
    struct t_resp idx;
    assert_int_equal(t_http("POST", url, NULL, 0, hdrs, &idx), 0);
    assert_int_equal(idx.status, 200);
    for (size_t i = 0; i < NBAD; i++) {
        const struct bad_model *bm = &bad_models[i];
        /* found at start: unavailable, the reason naming the field */
        const cJSON *e = t_index_entry(idx.json, bm->name);
        if (!e)
            fprintf(stderr, "index lacks %s: %s\n", bm->name, idx.body);
        assert_non_null(e);
        assert_string_equal(t_item(e, "state")->valuestring, "UNAVAILABLE");
        const char *reason = t_item(e, "reason")->valuestring;
        if (!strstr(reason, bm->part))
            fprintf(stderr, "%s: reason \"%s\" lacks \"%s\"\n", bm->name, reason, bm->part);
        assert_non_null(strstr(reason, bm->part));
        /* a PUT of the same file: 400, the same message */
        char *m = mnist_json(bm->name, bm->extra), err[1024];
        long st = put_raw(bm->name, m, err, sizeof err);
        free(m);
        if (st != 400 || !strstr(err, bm->part))
            fprintf(stderr, "PUT %s: %ld %s\nwant 400 containing: %s\n", bm->name, st, err,
                    bm->part);
        assert_int_equal(st, 400);
        assert_non_null(strstr(err, bm->part));
        /* and it is still not served */
        struct call c = row_call(bm->name, P_JSON, 3);
        do_call(&c);
        check_call(&c, 503, NULL);
    }
    t_resp_free(&idx);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_teardown(batch_sizes_match_alone, cleanup),
        cmocka_unit_test_teardown(concurrent_clients_get_their_rows, cleanup),
        cmocka_unit_test_teardown(multirow_with_idle_workers, cleanup),
        cmocka_unit_test_teardown(queue_full_503, cleanup),
        cmocka_unit_test_teardown(timeouts, cleanup),
        cmocka_unit_test_teardown(replaced_while_queued, cleanup),
        cmocka_unit_test_teardown(drain_answers_queued, cleanup),
        cmocka_unit_test_teardown(drain_end_answers_503, cleanup),
        cmocka_unit_test_teardown(drain_end_body_still_arriving, cleanup),
        cmocka_unit_test_teardown(mixed_shapes_batched_apart, cleanup),
        cmocka_unit_test_teardown(wire_dtypes_batched, cleanup),
        cmocka_unit_test_teardown(alone_on_batching_model, cleanup),
        cmocka_unit_test_teardown(model_config_triton, cleanup),
        cmocka_unit_test_teardown(model_file_errors, cleanup),
    };
    return cmocka_run_group_tests_name("http_batch", tests, group_setup, group_teardown);
}
