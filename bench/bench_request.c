/* `make bench`, request part: the whole request path of the real daemon against its parts,
 * in the same run (medians of alternating rounds):
 *   1. a large /v1/forward JSON request (256 x 1024 input through an inline 1024 x 1024
 *      Linear + ReLU, ~14 MB) from a keep-alive client on loopback: MB/s, and the end-to-end
 *      time against the sum of its parts measured alone here (decode of the body into its
 *      buffers, the engine pass, the encode of the reply);
 *   2. a binary OIP infer (batch 256 x 1024 FP32 through a registered 1024 -> 1024 model):
 *      end-to-end time against nn_net_run alone, and the transport floor: the same bytes
 *      through a ReLU-only model;
 *   3. a JSON reply of 256 x 1024 floats with and without gzip (bytes on the wire, time);
 * (the reader's memory for adversarial bodies is measured by tests/clients/memory.py, from
 * outside the daemon.)
 * The daemon is build/relud with one worker thread and blas_threads 1 (as this process).
 * Never a pass/fail test. */
#include <cblas.h>
#include <curl/curl.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "bench/stats.h"
#include "core/nn.h"
#include "server/blas.h"
#include "server/json.h"
#include "server/jsonw.h"
#include "server/layers.h"
#include "server/numconv.h"
#include "server/tensors.h"

#define ROUNDS 15
#define B 256
#define N 1024

static void die(const char *what)
{
    fprintf(stderr, "bench_request: %s\n", what);
    exit(1);
}

static uint64_t rng = 0x2545F4914F6CDD1DULL;
static float randf(float scale)
{
    rng ^= rng << 13, rng ^= rng >> 7, rng ^= rng << 17;
    return scale * ((float)(rng >> 40) / 16777216.0f * 2.0f - 1.0f);
}

/* ---- a growing text buffer ------------------------------------------------------------ */
struct buf {
    char *p;
    size_t n, cap;
};
static void put(struct buf *b, const char *s, size_t n)
{
    if (b->n + n + 1 > b->cap) {
        b->cap = (b->n + n + 1) * 2;
        if (!(b->p = realloc(b->p, b->cap)))
            die("out of memory");
    }
    memcpy(b->p + b->n, s, n);
    b->n += n;
    b->p[b->n] = 0;
}
static void puts_(struct buf *b, const char *s) { put(b, s, strlen(s)); }
static void put_matrix(struct buf *b, const float *v, size_t rows, size_t cols)
{
    char row[SRV_F32_MAXLEN * 1100 + 8];
    puts_(b, "[");
    for (size_t r = 0; r < rows; r++) {
        size_t bad, n = srv_f32_row_to_str(row, v + r * cols, cols, &bad);
        puts_(b, r ? ",[" : "[");
        put(b, row, n);
        puts_(b, "]");
    }
    puts_(b, "]");
}

/* ---- the daemon --------------------------------------------------------------------------- */
static pid_t relud_pid;
static int relud_port;

static void relud_start(const char *model_dir)
{
    char logp[] = "/tmp/relud-bench-XXXXXX";
    int fd = mkstemp(logp);
    if (fd < 0)
        die("mkstemp");
    relud_pid = fork();
    if (relud_pid == 0) {
        dup2(fd, 2);
        execl("build/relud", "relud", "--host", "127.0.0.1", "--port", "0", "--model-dir",
              model_dir, "--threads", "1", "--blas-threads", "1", "--access-log", "false",
              "--max-body-bytes", "64MiB", (char *)NULL);
        _exit(127);
    }
    for (int i = 0; i < 500 && !relud_port; i++) {
        struct timespec ts = {0, 10000000};
        nanosleep(&ts, NULL);
        char text[8192] = "";
        int r = open(logp, O_RDONLY);
        ssize_t n = r >= 0 ? read(r, text, sizeof text - 1) : 0;
        if (r >= 0)
            close(r);
        text[n > 0 ? n : 0] = 0;
        const char *p = strstr(text, "ready: serving on http://127.0.0.1:");
        if (p)
            relud_port = atoi(p + strlen("ready: serving on http://127.0.0.1:"));
    }
    close(fd);
    unlink(logp);
    if (!relud_port)
        die("relud did not start (build/relud)");
}

static void relud_stop(void)
{
    kill(relud_pid, SIGTERM);
    waitpid(relud_pid, NULL, 0);
}

/* ---- requests through libcurl, one keep-alive connection ------------------------------------ */
struct reply {
    char *p;
    size_t n, cap;
};
/* The client keeps one buffer across requests (doubling), so it is not what is measured. */
static size_t on_data(char *d, size_t sz, size_t nm, void *u)
{
    struct reply *r = u;
    size_t n = sz * nm;
    if (r->n + n + 1 > r->cap) {
        r->cap = (r->n + n + 1) * 2;
        if (!(r->p = realloc(r->p, r->cap)))
            return 0;
    }
    memcpy(r->p + r->n, d, n);
    r->n += n;
    return n;
}

static CURL *curl;
static double post(const char *path, const char *body, size_t len, struct curl_slist *hdr,
                   struct reply *r)
{
    char url[128];
    snprintf(url, sizeof url, "http://127.0.0.1:%d%s", relud_port, path);
    r->n = 0;
    curl_easy_setopt(curl, CURLOPT_URL, url);
    curl_easy_setopt(curl, CURLOPT_POSTFIELDS, body);
    curl_easy_setopt(curl, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)len);
    curl_easy_setopt(curl, CURLOPT_HTTPHEADER, hdr);
    curl_easy_setopt(curl, CURLOPT_WRITEFUNCTION, on_data);
    curl_easy_setopt(curl, CURLOPT_WRITEDATA, r);
    double t0 = now();
    if (curl_easy_perform(curl) != CURLE_OK)
        die("request failed");
    double t = now() - t0;
    long code;
    curl_easy_getinfo(curl, CURLINFO_RESPONSE_CODE, &code);
    if (code != 200) {
        fprintf(stderr, "%.*s\n", (int)(r->n < 300 ? r->n : 300), r->p);
        die("request not 200");
    }
    return t;
}

/* ---- 1. the large JSON request -------------------------------------------------------------- */
static float *x, *w, *bias;

/* The parts alone: decode (the reader over the body, the input and the weights into their
 * buffers), the pass (nn_net_run), the encode (the reply's output). */
static void parts(const char *body, size_t len, double *t_dec, double *t_pass, double *t_enc)
{
    double t0 = now();
    struct srv_json *d;
    struct nn_err err;
    if (srv_json_parse(body, len, 100000, &d, &err))
        die(err.msg);
    srv_jv root = srv_json_root(d);
    struct nn_net net;
    if (srv_layers_parse(d, srv_json_get(d, root, "layers"), NN_F32, 256, 0, NULL, NULL, &net,
                         &err))
        die(err.msg);
    struct srv_tfind in;
    if (srv_tensor_find(d, srv_json_get(d, root, "input"), 0, 0, "input", &in, &err))
        die(err.msg);
    struct nn_plan plan;
    struct nn_ws ws;
    if (nn_net_check(&net, in.shape, in.ndim, 0, 0, &plan, &err) || nn_ws_init(&ws, &plan, &err))
        die(err.msg);
    if (srv_tensor_read(d, &in, SRV_F32, ws.act[0].data, "input", &err))
        die(err.msg);
    double t1 = now();
    if (nn_net_run(&net, &ws, &err))
        die(err.msg);
    double t2 = now();
    struct srv_jw jw;
    srv_jw_init(&jw, (size_t)B * N * 16 + 64, 0);
    srv_jw_obj(&jw);
    srv_jw_key(&jw, "output");
    srv_jw_tensor(&jw, &ws.act[net.nlayers], SRV_FORM_NESTED, "output");
    srv_jw_end(&jw);
    size_t olen;
    char *out = srv_jw_finish(&jw, &olen, NULL, NULL);
    double t3 = now();
    *t_dec = t1 - t0, *t_pass = t2 - t1, *t_enc = t3 - t2;
    free(out);
    nn_ws_free(&ws);
    nn_plan_free(&plan);
    srv_net_free(&net);
    srv_json_free(d);
}

static void bench_large_json(void)
{
    struct buf b = {0};
    puts_(&b, "{\"input\": ");
    put_matrix(&b, x, B, N);
    puts_(&b, ", \"layers\": [{\"type\": \"linear\", \"weight\": ");
    put_matrix(&b, w, N, N);
    puts_(&b, ", \"bias\": [");
    char row[SRV_F32_MAXLEN * 1100];
    size_t bad, rn = srv_f32_row_to_str(row, bias, N, &bad);
    put(&b, row, rn);
    puts_(&b, "]}, {\"type\": \"relu\"}]}");
    struct reply r = {0};
    struct curl_slist *h = curl_slist_append(NULL, "Content-Type: application/json");
    h = curl_slist_append(h, "Expect:");
    double te[ROUNDS], td[ROUNDS], tp[ROUNDS], tc[ROUNDS], ratio[ROUNDS];
    post("/v1/forward", b.p, b.n, h, &r); /* warm */
    for (int i = 0; i < ROUNDS; i++) {
        te[i] = post("/v1/forward", b.p, b.n, h, &r);
        parts(b.p, b.n, &td[i], &tp[i], &tc[i]);
        ratio[i] = te[i] / (td[i] + tp[i] + tc[i]);
    }
    double e = median(te, ROUNDS), rr = median(ratio, ROUNDS);
    printf("large /v1/forward JSON (%zu bytes: %dx%d input, inline %dx%d Linear + ReLU; reply %zu "
           "bytes)\n",
           b.n, B, N, N, N, r.n);
    printf("  end to end %.1f ms = %.0f MB/s  (goal >= 300)\n", e * 1e3, (double)b.n / e / 1e6);
    printf("  alone: decode %.1f ms (%.0f MB/s), pass %.1f ms, encode %.1f ms; end to end / "
           "their sum %.2fx  (goal <= 1.3)\n",
           median(td, ROUNDS) * 1e3, (double)b.n / median(td, ROUNDS) / 1e6,
           median(tp, ROUNDS) * 1e3, median(tc, ROUNDS) * 1e3, rr);
    curl_slist_free_all(h);
    free(r.p);
    free(b.p);
}

/* ---- 2. binary OIP infer ---------------------------------------------------------------------- */
static void write_model(const char *dir)
{
    char path[512];
    snprintf(path, sizeof path, "%s/big.json", dir);
    FILE *f = fopen(path, "w");
    if (!f)
        die("model file");
    fprintf(f, "{\"name\": \"big\", \"dtype\": \"float32\", \"weights\": \"big.safetensors\", "
               "\"layers\": [{\"type\": \"linear\"}]}\n");
    fclose(f);
    char hdr[256];
    int hn = snprintf(hdr, sizeof hdr,
                      "{\"0.bias\":{\"dtype\":\"F32\",\"shape\":[%d],\"data_offsets\":[0,%d]},"
                      "\"0.weight\":{\"dtype\":\"F32\",\"shape\":[%d,%d],\"data_offsets\":[%d,%d]}}",
                      N, N * 4, N, N, N * 4, N * 4 + N * N * 4);
    while (hn % 8)
        hdr[hn++] = ' ';
    snprintf(path, sizeof path, "%s/big.safetensors", dir);
    if (!(f = fopen(path, "wb")))
        die("weights file");
    uint64_t hl = (uint64_t)hn;
    fwrite(&hl, 8, 1, f);
    fwrite(hdr, 1, (size_t)hn, f);
    fwrite(bias, 4, N, f);
    fwrite(w, 4, (size_t)N * N, f);
    fclose(f);
    /* the transport floor: the same bytes in and out, through a ReLU (no GEMM) */
    snprintf(path, sizeof path, "%s/relu.json", dir);
    if (!(f = fopen(path, "w")))
        die("model file");
    fprintf(f, "{\"name\": \"relu\", \"dtype\": \"float32\", \"layers\": [{\"type\": \"relu\"}]}\n");
    fclose(f);
}

static void bench_binary_oip(void)
{
    char head[512];
    int hn = snprintf(head, sizeof head,
                      "{\"inputs\": [{\"name\": \"input\", \"shape\": [%d, %d], \"datatype\": "
                      "\"FP32\", \"parameters\": {\"binary_data_size\": %d}}], \"parameters\": "
                      "{\"binary_data_output\": true}}",
                      B, N, B * N * 4);
    size_t len = (size_t)hn + (size_t)B * N * 4;
    char *body = malloc(len);
    memcpy(body, head, (size_t)hn);
    memcpy(body + hn, x, (size_t)B * N * 4);
    char hl[96];
    snprintf(hl, sizeof hl, "Inference-Header-Content-Length: %d", hn);
    struct curl_slist *h = curl_slist_append(NULL, "Content-Type: application/octet-stream");
    h = curl_slist_append(h, "Expect:");
    h = curl_slist_append(h, hl);
    /* the same pass alone: the model's net, the input in place */
    struct nn_net net;
    struct nn_err err;
    nn_net_init(&net, NN_F32, 1, &err);
    nn_layer_init(&net.layers[0], NN_LINEAR);
    net.layers[0].weight = (struct nn_tensor){NN_F32, 2, {N, N}, (size_t)N * N, w};
    net.layers[0].bias = (struct nn_tensor){NN_F32, 1, {N}, N, bias};
    size_t shape[2] = {B, N};
    struct nn_plan plan;
    struct nn_ws ws;
    if (nn_net_check(&net, shape, 2, 0, 0, &plan, &err) || nn_ws_init(&ws, &plan, &err))
        die(err.msg);
    struct reply r = {0};
    double te[ROUNDS], tr[ROUNDS], ratio[ROUNDS], tf[ROUNDS];
    post("/v2/models/big/infer", body, len, h, &r); /* warm */
    post("/v2/models/relu/infer", body, len, h, &r);
    for (int i = 0; i < ROUNDS; i++) {
        tf[i] = post("/v2/models/relu/infer", body, len, h, &r);
        te[i] = post("/v2/models/big/infer", body, len, h, &r);
        memcpy(ws.act[0].data, x, (size_t)B * N * 4);
        double t0 = now();
        nn_net_run(&net, &ws, &err);
        tr[i] = now() - t0;
        ratio[i] = te[i] / tr[i];
    }
    printf("binary OIP infer (%dx%d FP32 through a %d -> %d model, binary reply of %zu bytes)\n",
           B, N, N, N, r.n);
    printf("  end to end %.2f ms, nn_net_run alone %.2f ms: %.3fx  (goal <= 1.15)\n",
           median(te, ROUNDS) * 1e3, median(tr, ROUNDS) * 1e3, median(ratio, ROUNDS));
    printf("  of which moving the bytes: the same request through a ReLU-only model takes %.2f ms "
           "(%.0f%% of nn_net_run)\n",
           median(tf, ROUNDS) * 1e3, 100 * median(tf, ROUNDS) / median(tr, ROUNDS));
    nn_ws_free(&ws);
    nn_plan_free(&plan);
    nn_net_free(&net);
    curl_slist_free_all(h);
    free(r.p);
    free(body);
}

/* ---- 3. compressed replies ------------------------------------------------------------ */
/* A JSON reply of 256 x 1024 floats (a ReLU over the input), with Accept-Encoding: gzip and
 * without: bytes on the wire and end-to-end time (the client does not inflate: that is its
 * own cost, not the server's). */
static void bench_gzip(void)
{
    struct buf b = {0};
    puts_(&b, "{\"input\": ");
    put_matrix(&b, x, B, N);
    puts_(&b, ", \"layers\": [{\"type\": \"relu\"}]}");
    struct curl_slist *plain = curl_slist_append(NULL, "Content-Type: application/json");
    plain = curl_slist_append(plain, "Expect:");
    struct curl_slist *gz = curl_slist_append(NULL, "Content-Type: application/json");
    gz = curl_slist_append(gz, "Expect:");
    gz = curl_slist_append(gz, "Accept-Encoding: gzip");
    struct reply r = {0};
    double tp[ROUNDS], tg[ROUNDS];
    size_t np = 0, ng = 0;
    post("/v1/forward", b.p, b.n, gz, &r); /* warm */
    for (int i = 0; i < ROUNDS; i++) {
        tp[i] = post("/v1/forward", b.p, b.n, plain, &r);
        np = r.n;
        tg[i] = post("/v1/forward", b.p, b.n, gz, &r);
        ng = r.n;
    }
    double mp = median(tp, ROUNDS), mg = median(tg, ROUNDS);
    printf("JSON reply of %dx%d floats (ReLU over the request's input), gzip_level 1\n", B, N);
    printf("  identity: %zu bytes, %.1f ms; gzip: %zu bytes (%.2fx smaller), %.1f ms (%+.1f ms "
           "to compress it)\n",
           np, mp * 1e3, ng, (double)np / (double)(ng ? ng : 1), mg * 1e3, (mg - mp) * 1e3);
    curl_slist_free_all(plain);
    curl_slist_free_all(gz);
    free(r.p);
    free(b.p);
}

int main(void)
{
    struct srv_blas bl;
    char e[512], *argv[] = {"bench_request", NULL};
    srv_blas_early();
    if (srv_blas_select("auto", argv, &bl, e, sizeof e))
        die(e);
    openblas_set_num_threads(1);
    x = malloc((size_t)B * N * 4), w = malloc((size_t)N * N * 4), bias = malloc(N * 4);
    for (size_t i = 0; i < (size_t)B * N; i++)
        x[i] = randf(1.0f);
    for (size_t i = 0; i < (size_t)N * N; i++)
        w[i] = randf(0.03f);
    for (int i = 0; i < N; i++)
        bias[i] = randf(0.1f);
    char dir[] = "/tmp/relud-bench-models-XXXXXX";
    if (!mkdtemp(dir))
        die("mkdtemp");
    write_model(dir);
    relud_start(dir);
    curl_global_init(CURL_GLOBAL_DEFAULT);
    curl = curl_easy_init();
    /* a client built for large tensors reads and writes in large blocks (curl's defaults
     * are 16 KiB and 64 KiB: 64 + 16 syscalls and callbacks a megabyte) */
    curl_easy_setopt(curl, CURLOPT_BUFFERSIZE, 512L * 1024);
    curl_easy_setopt(curl, CURLOPT_UPLOAD_BUFFERSIZE, 2L * 1024 * 1024);
    printf("\nrequest path: build/relud (threads 1, blas_threads 1) on loopback, keep-alive libcurl "
           "client; medians of %d alternating rounds [kernel %s]\n",
           ROUNDS, bl.core);
    bench_large_json();
    bench_binary_oip();
    bench_gzip();
    curl_easy_cleanup(curl);
    relud_stop();
    char cmd[600];
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    if (system(cmd) != 0)
        fprintf(stderr, "bench_request: could not remove %s\n", dir);
    return 0;
}
