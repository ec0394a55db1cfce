/* `make bench`, batching part: dynamic batching (Triton's) where it pays, measured from
 * outside the daemon, against the engine's own ceiling in the same run.
 *
 * The model is generated here: an MLP 1024-8192-8192-1024 (ReLU between; 84 M float32
 * parameters, 336 MB, more than any last-level cache), written once to a temporary model
 * directory. A batch-1 pass streams all 336 MB of weights from memory for one row (gemv); a
 * batch of 64 reads them once for 64 rows (gemm), so batching can approach the ceiling 64 / t64
 * (nn_net_run over 64 rows in this process, with the daemon's BLAS thread count).
 *
 * build/relud serves it twice, one daemon at a time (each holds its own 336 MB): batching off
 * (the model file without the batching keys), then on (the same file with "max_batch_size" and
 * "dynamic_batching"). A closed-loop load generator, N client threads each with its own
 * keep-alive connection sending batch-1 requests back to back (binary OIP, then JSON), measures
 * throughput and latency at each N after a warm-up. Every reply is checked against nn_net_run
 * here: a pool of 64 distinct input rows, cycled so that 64 concurrent clients send 64 different
 * rows (a batch that hands a row's output to the wrong request is caught).
 *
 *   build/bench/bench_batch [--clients 1,4,16,64,256] [--seconds 4] [--warmup 1]
 *                           [--format binary|json|both] [--batching off|on|both]
 *                           [--batch-workers N] [--max-batch-size 64] [--queue-delay-us 500]
 *
 * --batching defaults to both when build/relud has the batch_workers option, else off (the
 * daemon refuses a model file with keys it does not know). Never a pass/fail test: it exits 0
 * unless something is broken (a wrong number, a non-200, a daemon that does not start). */
#include <cblas.h>
#include <curl/curl.h>
#include <fcntl.h>
#include <math.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "bench/stats.h"
#include "core/nn.h"
#include "server/blas.h"
#include "server/json.h"
#include "server/numconv.h"

#define IN 1024
#define HID 8192
#define OUT 1024
#define NLAYERS 5 /* linear, relu, linear, relu, linear: state_dict indices 0, 2, 4 */
#define POOL 64   /* distinct input rows, and the ceiling's batch */
#define RTOL 1e-4
#define ATOL 1e-5
#define MAX_POINTS 16
#define MAX_CLIENTS 4096
#define MAX_BATCH 4096 /* batch sizes past it count as the largest */
#define CEIL_RUNS 7    /* timed nn_net_run passes for the ceiling, after one warm */
#define DAEMON_THREADS "2"
#define BLAS_THREADS 1 /* the daemon's --blas-threads, and this process's for the ceiling */
#define STR_(x) #x
#define STR(x) STR_(x)
#define MODEL "mlp"

/* ---- options -------------------------------------------------------------------------------- */
enum fmt { FMT_BINARY, FMT_JSON, FMT_COUNT };
static const char *const fmt_name[FMT_COUNT] = {"binary", "json"};
static const char *const fmt_title[FMT_COUNT] = {"binary OIP", "JSON OIP"};
enum mode { MODE_OFF, MODE_ON, MODE_COUNT };
static const char *const mode_name[MODE_COUNT] = {"off", "on"};

static struct {
    int clients[MAX_POINTS], npoints;
    double seconds, warmup;
    int fmt[FMT_COUNT], mode[MODE_COUNT];
    int batch_workers, max_batch, delay_us;
    int has_batching; /* build/relud knows batch_workers */
} opt = {{1, 4, 16, 64, 256}, 5, 4, 1, {1, 1}, {1, -1}, 0, 64, 500, 0};

/* ---- cleanup: the daemon and the 336 MB temp dir go on every exit ----------------------------- */
static char tmpdir[] = "/tmp/relud-bench-batch-XXXXXX";
static char path_json[96], path_st[96], path_log[96];
static int tmpdir_made, log_made;
static volatile pid_t relud_pid;
static int relud_port;

/* Async-signal-safe: also the SIGINT/SIGTERM handler's body. */
static void cleanup(void)
{
    pid_t pid = relud_pid;
    if (pid > 0) {
        relud_pid = 0;
        kill(pid, SIGTERM);
        waitpid(pid, NULL, 0);
    }
    if (log_made)
        unlink(path_log), log_made = 0;
    if (tmpdir_made) {
        unlink(path_json);
        unlink(path_st);
        rmdir(tmpdir);
        tmpdir_made = 0;
    }
}

static volatile sig_atomic_t interrupted;
static void on_signal(int sig)
{
    static const char msg[] =
        "bench_batch: interrupted: stopping the daemon, removing the temp dir\n";
    interrupted = 1;
    if (write(2, msg, sizeof msg - 1) < 0)
        _exit(128 + sig);
    cleanup();
    _exit(128 + sig);
}

static void print_log_tail(void)
{
    if (!log_made)
        return;
    char text[4096];
    int fd = open(path_log, O_RDONLY);
    if (fd < 0)
        return;
    off_t end = lseek(fd, 0, SEEK_END);
    lseek(fd, end > (off_t)sizeof text - 1 ? end - (off_t)sizeof text + 1 : 0, SEEK_SET);
    ssize_t n = read(fd, text, sizeof text - 1);
    close(fd);
    if (n > 0) {
        text[n] = 0;
        fprintf(stderr, "bench_batch: the daemon's log ends:\n%s", text);
    }
}

/* From any thread: the first caller reports and cleans up; the others wait for its exit (a
 * client thread's curl handle must not go on against a daemon being stopped). */
static pthread_mutex_t die_mu = PTHREAD_MUTEX_INITIALIZER;
__attribute__((format(printf, 1, 2), noreturn)) static void die(const char *fmt, ...)
{
    while (interrupted) /* the handler is cleaning up; a client sees the daemon go */
        pause();
    pthread_mutex_lock(&die_mu);
    fflush(stdout);
    va_list ap;
    va_start(ap, fmt);
    fputs("bench_batch: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
    print_log_tail();
    cleanup();
    _exit(1);
}

/* ---- the model: weights, the net over them, the files ----------------------------------------- */
static uint64_t rng = 0x2545F4914F6CDD1DULL;
static float randu(float a) /* U(-a, a) */
{
    rng ^= rng << 13, rng ^= rng >> 7, rng ^= rng << 17;
    return a * ((float)(rng >> 40) / 16777216.0f * 2.0f - 1.0f);
}

/* The three Linears by state_dict index; every tensor in one block, in file order. */
static const struct {
    int idx, out, in;
} lin[3] = {{0, HID, IN}, {2, HID, HID}, {4, OUT, HID}};
static float *params;           /* 0.weight (HID, IN), 0.bias (HID), 2.weight (HID, HID), ... */
static size_t nparams;          /* floats in params */
static size_t woff[3], boff[3]; /* offsets in params, floats */

/* torch's nn.Linear init: weight and bias ~ U(-1/sqrt(fan_in), 1/sqrt(fan_in)). */
static void model_generate(void)
{
    for (int l = 0; l < 3; l++) {
        woff[l] = nparams, nparams += (size_t)lin[l].out * lin[l].in;
        boff[l] = nparams, nparams += (size_t)lin[l].out;
    }
    if (!(params = malloc(nparams * sizeof *params)))
        die("out of memory for %zu parameters", nparams);
    for (int l = 0; l < 3; l++) {
        float a = 1.0f / sqrtf((float)lin[l].in);
        for (size_t i = 0; i < (size_t)lin[l].out * lin[l].in + (size_t)lin[l].out; i++)
            params[woff[l] + i] = randu(a);
    }
}

static void net_build(struct nn_net *net)
{
    struct nn_err err;
    if (nn_net_init(net, NN_F32, NLAYERS, &err))
        die("%s", err.msg);
    for (int i = 0; i < NLAYERS; i++)
        nn_layer_init(&net->layers[i], i % 2 ? NN_RELU : NN_LINEAR);
    for (int l = 0; l < 3; l++) {
        struct nn_layer *L = &net->layers[lin[l].idx];
        size_t o = (size_t)lin[l].out, in = (size_t)lin[l].in;
        L->weight = (struct nn_tensor){NN_F32, 2, {o, in}, o * in, params + woff[l]};
        L->bias = (struct nn_tensor){NN_F32, 1, {o}, o, params + boff[l]};
    }
}

/* safetensors: u64 header length, the JSON header (padded with spaces to 8 bytes), the data. */
static void write_weights(void)
{
    char hdr[1024];
    int hn = 1;
    hdr[0] = '{';
    for (int l = 0; l < 3; l++) {
        size_t w0 = woff[l] * 4, b0 = boff[l] * 4, b1 = (boff[l] + (size_t)lin[l].out) * 4;
        hn += snprintf(hdr + hn, sizeof hdr - (size_t)hn,
                       "%s\"%d.weight\":{\"dtype\":\"F32\",\"shape\":[%d,%d],\"data_offsets\":"
                       "[%zu,%zu]},\"%d.bias\":{\"dtype\":\"F32\",\"shape\":[%d],"
                       "\"data_offsets\":[%zu,%zu]}",
                       l ? "," : "", lin[l].idx, lin[l].out, lin[l].in, w0, b0, lin[l].idx,
                       lin[l].out, b0, b1);
    }
    hdr[hn++] = '}';
    while (hn % 8)
        hdr[hn++] = ' ';
    FILE *f = fopen(path_st, "wb");
    if (!f)
        die("cannot write %s", path_st);
    uint64_t hl = (uint64_t)hn;
    if (fwrite(&hl, 8, 1, f) != 1 || fwrite(hdr, 1, (size_t)hn, f) != (size_t)hn ||
        fwrite(params, sizeof *params, nparams, f) != nparams || fclose(f))
        die("cannot write %s (%zu MB: is /tmp full?)", path_st, nparams * 4 >> 20);
}

static char batch_keys[256]; /* the model file's batching keys (set in main) */

static void write_model(int batching)
{
    FILE *f = fopen(path_json, "w");
    if (!f)
        die("cannot write %s", path_json);
    fprintf(f,
            "{\"name\": \"" MODEL "\", \"dtype\": \"float32\", \"weights\": \"" MODEL
            ".safetensors\", \"layers\": [{\"type\": \"linear\"}, {\"type\": \"relu\"}, "
            "{\"type\": \"linear\"}, {\"type\": \"relu\"}, {\"type\": \"linear\"}]%s%s}\n",
            batching ? ", " : "", batching ? batch_keys : "");
    if (fclose(f))
        die("cannot write %s", path_json);
}

/* ---- the input pool, its reference outputs, the ceiling ---------------------------------------- */
static float pool[POOL * IN]; /* (POOL, IN) */
static float ref[POOL * OUT]; /* (POOL, OUT): nn_net_run over the pool, as one batch */
static double t1_s, t64_s;    /* medians: nn_net_run over 1 row, over POOL rows */

static int allclose_row(const float *got, const float *want, int *bad)
{
    for (int i = 0; i < OUT; i++)
        if (!(fabs((double)got[i] - want[i]) <= ATOL + RTOL * fabs((double)want[i]))) {
            *bad = i;
            return 0;
        }
    return 1;
}

/* One warm pass (page faults, BLAS buffers), then the median of CEIL_RUNS. */
static double time_pass(const struct nn_net *net, size_t rows, float *out)
{
    size_t shape[2] = {rows, IN};
    struct nn_plan plan;
    struct nn_ws ws;
    struct nn_err err;
    if (nn_net_check(net, shape, 2, 0, 0, &plan, &err) || nn_ws_init(&ws, &plan, &err))
        die("%s", err.msg);
    memcpy(ws.act[0].data, pool, rows * IN * sizeof(float)); /* kept by the pass */
    double t[CEIL_RUNS];
    for (int r = -1; r < CEIL_RUNS; r++) {
        double t0 = now();
        if (nn_net_run(net, &ws, &err))
            die("%s", err.msg);
        if (r >= 0)
            t[r] = now() - t0;
    }
    memcpy(out, ws.act[NLAYERS].data, rows * OUT * sizeof(float));
    nn_ws_free(&ws);
    nn_plan_free(&plan);
    return median(t, CEIL_RUNS);
}

static void ceiling(void)
{
    for (int i = 0; i < POOL * IN; i++)
        pool[i] = randu(1.0f);
    struct nn_net net;
    net_build(&net);
    float out1[OUT];
    t64_s = time_pass(&net, POOL, ref);
    t1_s = time_pass(&net, 1, out1);
    /* the reference is a gemm; a batch-1 pass (the daemon without batching) is a gemv, which
     * sums in another order: the tolerance must hold between them, or every check would fail */
    int bad;
    if (!allclose_row(out1, ref, &bad))
        die("reference: row 0 through gemv gives output[%d] = %.9g, through gemm %.9g: over "
            "rtol %g atol %g",
            bad, out1[bad], ref[bad], RTOL, ATOL);
    nn_net_free(&net);
}

/* The goal's ceiling is one pass at a time; the daemon's batch workers run passes at once
 * (batch_workers 0 = cores / blas_threads). The same 64-row passes from that many threads at
 * once, for the line beside the goal: what the machine gives when they share memory and cores. */
#define PAR_RUNS 5
static int par_n;      /* passes at once */
static double par_rps; /* rows/s with par_n at once */
static pthread_barrier_t par_go;

static void *par_main(void *arg)
{
    const struct nn_net *net = arg;
    size_t shape[2] = {POOL, IN};
    struct nn_plan plan;
    struct nn_ws ws;
    struct nn_err err;
    if (nn_net_check(net, shape, 2, 0, 0, &plan, &err) || nn_ws_init(&ws, &plan, &err))
        die("%s", err.msg);
    memcpy(ws.act[0].data, pool, sizeof pool);
    if (nn_net_run(net, &ws, &err)) /* warm */
        die("%s", err.msg);
    for (int r = 0; r < PAR_RUNS; r++) { /* rounds: all start together, the last one ends it */
        pthread_barrier_wait(&par_go);
        if (nn_net_run(net, &ws, &err))
            die("%s", err.msg);
        pthread_barrier_wait(&par_go);
    }
    nn_ws_free(&ws);
    nn_plan_free(&plan);
    return NULL;
}

static void ceiling_parallel(void)
{
    long cores = sysconf(_SC_NPROCESSORS_ONLN);
    par_n = opt.batch_workers ? opt.batch_workers : (int)(cores / BLAS_THREADS);
    if (par_n < 2)
        return;
    struct nn_net net;
    net_build(&net);
    pthread_t th[64];
    if (par_n > 64)
        par_n = 64;
    if (pthread_barrier_init(&par_go, NULL, (unsigned)par_n + 1))
        die("pthread_barrier_init");
    for (int i = 0; i < par_n; i++)
        if (pthread_create(&th[i], NULL, par_main, &net))
            die("pthread_create");
    double t[PAR_RUNS];
    for (int r = 0; r < PAR_RUNS; r++) {
        pthread_barrier_wait(&par_go);
        double t0 = now();
        pthread_barrier_wait(&par_go);
        t[r] = now() - t0;
    }
    for (int i = 0; i < par_n; i++)
        pthread_join(th[i], NULL);
    par_rps = (double)par_n * POOL / median(t, PAR_RUNS);
    pthread_barrier_destroy(&par_go);
    nn_net_free(&net);
}

/* ---- request bodies, one per pool row and format ---------------------------------------------- */
struct body {
    char *p;
    size_t n;
};
static struct body bodies[FMT_COUNT][POOL];
static int bin_head_len; /* the binary request's JSON header (the same for every row) */

static void bodies_build(void)
{
    char head[512];
    bin_head_len = snprintf(head, sizeof head,
                            "{\"inputs\": [{\"name\": \"input\", \"shape\": [1, %d], \"datatype\": "
                            "\"FP32\", \"parameters\": {\"binary_data_size\": %d}}], "
                            "\"parameters\": {\"binary_data_output\": true}}",
                            IN, IN * 4);
    static const char jhead[] = "{\"inputs\": [{\"name\": \"input\", \"shape\": [1, 1024], "
                                "\"datatype\": \"FP32\", \"data\": [";
    for (int r = 0; r < POOL; r++) {
        struct body *b = &bodies[FMT_BINARY][r];
        b->n = (size_t)bin_head_len + IN * 4;
        if (!(b->p = malloc(b->n)))
            die("out of memory");
        memcpy(b->p, head, (size_t)bin_head_len);
        memcpy(b->p + bin_head_len, pool + r * IN, IN * 4); /* x86-64: little-endian */

        /* shortest float32 text: the daemon reads back exactly the row the reference ran */
        b = &bodies[FMT_JSON][r];
        if (!(b->p = malloc(sizeof jhead + (size_t)IN * (SRV_F32_MAXLEN + 1) + 8)))
            die("out of memory");
        memcpy(b->p, jhead, sizeof jhead - 1);
        size_t bad, n = sizeof jhead - 1;
        for (int i = 0; i < IN; i++) {
            if (i)
                b->p[n++] = ',';
            n += srv_f32_row_to_str(b->p + n, pool + r * IN + i, 1, &bad);
        }
        memcpy(b->p + n, "]}]}", 4);
        b->n = n + 4;
    }
}

/* ---- HTTP through libcurl ------------------------------------------------------------------------ */
struct reply {
    char *p;
    size_t n, cap;
    long ihcl; /* Inference-Header-Content-Length, or -1 */
};

/* Each client keeps one buffer across requests (doubling): not what is measured. */
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
    r->p[r->n] = 0;
    return n;
}

static size_t on_header(char *d, size_t sz, size_t nm, void *u)
{
    static const char h[] = "inference-header-content-length:";
    struct reply *r = u;
    size_t n = sz * nm;
    if (n > sizeof h - 1 && !strncasecmp(d, h, sizeof h - 1))
        r->ihcl = strtol(d + sizeof h - 1, NULL, 10);
    return n;
}

static long http_get(const char *path, struct reply *r)
{
    char url[160];
    snprintf(url, sizeof url, "http://127.0.0.1:%d%s", relud_port, path);
    CURL *h = curl_easy_init();
    if (!h)
        die("curl_easy_init failed");
    r->n = 0;
    curl_easy_setopt(h, CURLOPT_URL, url);
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_data);
    curl_easy_setopt(h, CURLOPT_WRITEDATA, r);
    curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(h, CURLOPT_TIMEOUT, 60L);
    CURLcode rc = curl_easy_perform(h);
    long code = 0;
    curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &code);
    curl_easy_cleanup(h);
    if (rc != CURLE_OK)
        die("GET %s: %s", path, curl_easy_strerror(rc));
    return code;
}

/* ---- the daemon ------------------------------------------------------------------------------------ */
static const char *relud_args[32];
static char relud_opts[256]; /* its options as printed */
static char workers_arg[16];

static void relud_args_build(void)
{
    int n = 0;
    const char **a = relud_args;
    a[n++] = "build/relud", a[n++] = "--host", a[n++] = "127.0.0.1", a[n++] = "--port";
    a[n++] = "0", a[n++] = "--model-dir", a[n++] = tmpdir;
    int first = n;
    a[n++] = "--threads", a[n++] = DAEMON_THREADS, a[n++] = "--blas-threads";
    a[n++] = STR(BLAS_THREADS), a[n++] = "--access-log", a[n++] = "false";
    a[n++] = "--max-body-bytes", a[n++] = "64MiB";
    if (opt.has_batching) {
        snprintf(workers_arg, sizeof workers_arg, "%d", opt.batch_workers);
        a[n++] = "--batch-workers", a[n++] = workers_arg;
    }
    a[n] = NULL;
    for (int i = first; i < n; i++)
        snprintf(relud_opts + strlen(relud_opts), sizeof relud_opts - strlen(relud_opts), "%s%s",
                 i > first ? " " : "", a[i]);
}

/* Its stderr goes to a file until it stops: the port comes from its "ready" line, and die()
 * shows the end of it. Waits for the condition (the line, or the child's exit), not a time. */
static void relud_start(void)
{
    snprintf(path_log, sizeof path_log, "/tmp/relud-bench-batch-log-XXXXXX");
    int fd = mkstemp(path_log);
    if (fd < 0)
        die("mkstemp for the daemon's log");
    log_made = 1;
    relud_port = 0;
    pid_t pid = fork();
    if (pid < 0)
        die("fork");
    if (pid == 0) {
        dup2(fd, 2);
        execv("build/relud", (char *const *)relud_args);
        _exit(127);
    }
    relud_pid = pid;
    close(fd);
    static const char ready[] = "ready: serving on http://127.0.0.1:";
    for (int i = 0; i < 12000 && !relud_port; i++) { /* 2 min: it loads 336 MB */
        nanosleep(&(struct timespec){0, 10000000}, NULL);
        char text[16384] = "";
        int r = open(path_log, O_RDONLY);
        ssize_t n = r >= 0 ? read(r, text, sizeof text - 1) : 0;
        if (r >= 0)
            close(r);
        text[n > 0 ? n : 0] = 0;
        const char *p = strstr(text, ready);
        if (p)
            relud_port = atoi(p + sizeof ready - 1);
        else if (waitpid(pid, NULL, WNOHANG) == pid)
            relud_pid = 0, die("build/relud exited before it was ready");
    }
    if (!relud_port)
        die("build/relud was not ready after 2 minutes");
    struct reply r = {0};
    long code = http_get("/v2/models/" MODEL "/ready", &r);
    if (code != 200)
        die("the model is not ready (HTTP %ld): %.300s", code, r.p ? r.p : "");
    free(r.p);
}

static void relud_stop(void)
{
    pid_t pid = relud_pid;
    relud_pid = 0;
    kill(pid, SIGTERM);
    waitpid(pid, NULL, 0);
    unlink(path_log), log_made = 0;
}

/* build/relud --print-config names every option: batch_workers means it batches. */
static int relud_has_batching(void)
{
    if (access("build/relud", X_OK))
        die("build/relud not found (run make first)");
    FILE *p = popen("build/relud --print-config 2>/dev/null", "r");
    if (!p)
        die("popen");
    char line[512];
    int found = 0;
    while (fgets(line, sizeof line, p))
        found |= !strncmp(line, "batch_workers", 13);
    pclose(p);
    return found;
}

/* ---- the daemon's batch statistics ----------------------------------------------------------------- */
struct bstats {
    int present;                             /* batch_stats had an entry */
    unsigned long long count[MAX_BATCH + 1]; /* executions by batch size */
    double inferences, executions;           /* inference_count, execution_count */
};

/* Triton's batch_stats: [{"batch_size": 8, "compute_infer": {"count": executions, "ns": ...}},
 * ...]. */
static void bstats_get(struct bstats *s)
{
    memset(s, 0, sizeof *s);
    struct reply r = {0};
    long code = http_get("/v2/models/" MODEL "/stats", &r);
    if (code != 200)
        die("GET /v2/models/" MODEL "/stats: HTTP %ld: %.300s", code, r.p ? r.p : "");
    struct srv_json *d;
    struct nn_err err;
    if (srv_json_parse(r.p, r.n, 0, &d, &err))
        die("stats reply: %s", err.msg);
    srv_jv m = srv_json_child(d, srv_json_get(d, srv_json_root(d), "model_stats"));
    srv_json_number(d, srv_json_get(d, m, "inference_count"), &s->inferences);
    srv_json_number(d, srv_json_get(d, m, "execution_count"), &s->executions);
    for (srv_jv b = srv_json_child(d, srv_json_get(d, m, "batch_stats")); b;
         b = srv_json_next(d, b)) {
        double size, count;
        srv_jv infer = srv_json_get(d, b, "compute_infer");
        if (!srv_json_number(d, srv_json_get(d, b, "batch_size"), &size) ||
            !srv_json_number(d, srv_json_get(d, infer, "count"), &count) || size < 1)
            die("stats reply: a batch_stats entry without batch_size and compute_infer.count");
        s->count[size > MAX_BATCH ? MAX_BATCH : (int)size] += (unsigned long long)count;
        s->present = 1;
    }
    srv_json_free(d);
    free(r.p);
}

/* ---- the closed-loop load ---------------------------------------------------------------------- */
struct client {
    pthread_t th;
    int id;
    double *lat; /* latencies of requests completed in the window, s */
    size_t nlat, cap;
    struct reply r;
};

static struct {
    enum mode m;
    enum fmt f;
    int n;
    double t_warm, t_end; /* the window: requests completed in it count */
    pthread_barrier_t go;
    char url[128];
    struct curl_slist *hdr;
} run;

static void check_reply(struct client *c, int row)
{
    float got[OUT];
    struct reply *r = &c->r;
    if (run.f == FMT_BINARY) {
        if (r->ihcl < 0 || (size_t)r->ihcl + OUT * 4 != r->n)
            die("%s %s, %d clients: binary reply of %zu bytes with Inference-Header-Content-"
                "Length %ld (want the header and %d bytes)",
                mode_name[run.m], fmt_name[run.f], run.n, r->n, r->ihcl, OUT * 4);
        memcpy(got, r->p + r->ihcl, sizeof got);
    } else {
        struct srv_json *d;
        struct nn_err err;
        if (srv_json_parse(r->p, r->n, 0, &d, &err))
            die("%s %s: reply: %s", mode_name[run.m], fmt_name[run.f], err.msg);
        srv_jv o = srv_json_child(d, srv_json_get(d, srv_json_root(d), "outputs"));
        srv_jv data = srv_json_get(d, o, "data");
        size_t numel = 0;
        if (!srv_json_numarray(d, data, NULL, NULL, &numel) || numel != OUT)
            die("%s %s: reply without outputs[0].data of %d numbers: %.200s", mode_name[run.m],
                fmt_name[run.f], OUT, r->p);
        if (srv_json_read(d, data, SRV_F32, got, OUT, "outputs[0].data", &err))
            die("%s %s: reply: %s", mode_name[run.m], fmt_name[run.f], err.msg);
        srv_json_free(d);
    }
    int bad;
    if (!allclose_row(got, ref + row * OUT, &bad))
        die("%s %s, %d clients: the reply to input row %d has output[%d] = %.9g, want %.9g "
            "(rtol %g atol %g)",
            mode_name[run.m], fmt_name[run.f], run.n, row, bad, got[bad], ref[row * OUT + bad],
            RTOL, ATOL);
}

static void *client_main(void *arg)
{
    struct client *c = arg;
    CURL *h = curl_easy_init();
    if (!h)
        die("curl_easy_init failed");
    curl_easy_setopt(h, CURLOPT_URL, run.url);
    curl_easy_setopt(h, CURLOPT_HTTPHEADER, run.hdr);
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_data);
    curl_easy_setopt(h, CURLOPT_WRITEDATA, &c->r);
    curl_easy_setopt(h, CURLOPT_HEADERFUNCTION, on_header);
    curl_easy_setopt(h, CURLOPT_HEADERDATA, &c->r);
    curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(h, CURLOPT_TIMEOUT, 300L); /* a hung request is broken, not slow */
    pthread_barrier_wait(&run.go);
    for (long i = 0;; i++) {
        double t0 = now();
        if (t0 >= run.t_end)
            break;
        /* 7 is odd: at any i, 64 clients hold 64 different rows */
        int row = (int)((c->id * 7L + i) % POOL);
        const struct body *b = &bodies[run.f][row];
        curl_easy_setopt(h, CURLOPT_POSTFIELDS, b->p);
        curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)b->n);
        c->r.n = 0, c->r.ihcl = -1;
        CURLcode rc = curl_easy_perform(h);
        double t1 = now();
        if (rc != CURLE_OK)
            die("%s %s, %d clients: request failed: %s", mode_name[run.m], fmt_name[run.f], run.n,
                curl_easy_strerror(rc));
        long code = 0;
        curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &code);
        if (code != 200)
            die("%s %s, %d clients: HTTP %ld: %.300s", mode_name[run.m], fmt_name[run.f], run.n,
                code, c->r.p ? c->r.p : "");
        check_reply(c, row);
        if (t1 < run.t_warm || t1 > run.t_end)
            continue;
        if (c->nlat == c->cap) {
            c->cap = c->cap ? c->cap * 2 : 256;
            if (!(c->lat = realloc(c->lat, c->cap * sizeof *c->lat)))
                die("out of memory");
        }
        c->lat[c->nlat++] = t1 - t0;
    }
    curl_easy_cleanup(h);
    return NULL;
}

static void sleep_until(double t)
{
    double d;
    while ((d = t - now()) > 0) {
        struct timespec ts = {(time_t)d, (long)((d - (double)(time_t)d) * 1e9)};
        nanosleep(&ts, NULL);
    }
}

struct result {
    int done;
    long n;          /* requests completed in the window */
    double rps;      /* n / seconds */
    double p50, p99; /* s */
    struct bstats before, after;
};
static struct result res[MODE_COUNT][FMT_COUNT][MAX_POINTS];

static void run_point(enum mode m, enum fmt f, int k)
{
    struct result *out = &res[m][f][k];
    run.m = m, run.f = f, run.n = opt.clients[k];
    snprintf(run.url, sizeof run.url, "http://127.0.0.1:%d/v2/models/" MODEL "/infer", relud_port);
    struct client *cl = calloc((size_t)run.n, sizeof *cl);
    if (!cl)
        die("out of memory");
    if (pthread_barrier_init(&run.go, NULL, (unsigned)run.n + 1))
        die("pthread_barrier_init");
    for (int i = 0; i < run.n; i++) {
        cl[i].id = i;
        if (pthread_create(&cl[i].th, NULL, client_main, &cl[i]))
            die("pthread_create (client %d)", i);
    }
    run.t_warm = now() + opt.warmup;
    run.t_end = run.t_warm + opt.seconds;
    pthread_barrier_wait(&run.go);
    if (m == MODE_ON) {
        sleep_until(run.t_warm);
        bstats_get(&out->before);
        sleep_until(run.t_end);
        bstats_get(&out->after);
    }
    size_t n = 0;
    for (int i = 0; i < run.n; i++) {
        pthread_join(cl[i].th, NULL);
        n += cl[i].nlat;
    }
    double *lat = malloc((n ? n : 1) * sizeof *lat);
    if (!lat)
        die("out of memory");
    n = 0;
    for (int i = 0; i < run.n; i++) {
        memcpy(lat + n, cl[i].lat, cl[i].nlat * sizeof *lat);
        n += cl[i].nlat;
        free(cl[i].lat);
        free(cl[i].r.p);
    }
    qsort(lat, n, sizeof *lat, cmpd);
    out->done = 1;
    out->n = (long)n;
    out->rps = (double)n / opt.seconds;
    out->p50 = n ? lat[n / 2] : NAN;
    out->p99 = n ? lat[(size_t)(0.99 * (double)(n - 1) + 0.5)] : NAN;
    fprintf(stderr,
            "  batching %-3s %-6s %4d clients: %7.1f req/s  p50 %7.1f ms  p99 %7.1f ms  (%ld)\n",
            mode_name[m], fmt_name[f], run.n, out->rps, out->p50 * 1e3, out->p99 * 1e3, out->n);
    free(lat);
    free(cl);
    pthread_barrier_destroy(&run.go);
}

static void run_daemon(enum mode m)
{
    write_model(m == MODE_ON);
    relud_start();
    for (int f = 0; f < FMT_COUNT; f++) {
        if (!opt.fmt[f])
            continue;
        struct curl_slist *h = curl_slist_append(NULL, "Expect:");
        char hl[64];
        if (f == FMT_BINARY) {
            snprintf(hl, sizeof hl, "Inference-Header-Content-Length: %d", bin_head_len);
            h = curl_slist_append(h, "Content-Type: application/octet-stream");
            h = curl_slist_append(h, hl);
        } else {
            h = curl_slist_append(h, "Content-Type: application/json");
        }
        run.hdr = h;
        for (int k = 0; k < opt.npoints; k++)
            run_point(m, (enum fmt)f, k);
        curl_slist_free_all(h);
    }
    relud_stop();
}

/* ---- the report --------------------------------------------------------------------------------- */
static int point_of(int clients)
{
    for (int k = 0; k < opt.npoints; k++)
        if (opt.clients[k] == clients)
            return k;
    return -1;
}

static void print_hist(enum fmt f)
{
    static const char *const label[] = {"1", "2-3", "4-7", "8-15", "16-31", "32-63", "64+"};
    enum { NBUCKET = 7 };
    int any = 0;
    for (int k = 0; k < opt.npoints; k++)
        any |= res[MODE_ON][f][k].after.present;
    if (!any) {
        /* Triton's counts: inferences are rows, executions passes (batches) */
        printf("  batch sizes: no batch_stats entries in the daemon's stats; inference_count / "
               "execution_count over each\n  measured window:");
        for (int k = 0; k < opt.npoints; k++) {
            const struct result *r = &res[MODE_ON][f][k];
            double ex = r->after.executions - r->before.executions;
            printf(" %d clients %.1f%s", opt.clients[k],
                   ex > 0 ? (r->after.inferences - r->before.inferences) / ex : 0.0,
                   k + 1 < opt.npoints ? ";" : "\n");
        }
        return;
    }
    printf("  batch sizes on (the daemon's batch_stats over each measured window: batches "
           "per size)\n  clients  batches  mean");
    for (int b = 0; b < NBUCKET; b++)
        printf(" %6s", label[b]);
    printf("\n");
    for (int k = 0; k < opt.npoints; k++) {
        const struct result *r = &res[MODE_ON][f][k];
        unsigned long long bucket[NBUCKET] = {0}, batches = 0, rows = 0;
        for (int s = 1; s <= MAX_BATCH; s++) {
            unsigned long long c = r->after.count[s] - r->before.count[s];
            int b = 0;
            while (b < NBUCKET - 1 && s >= 2 << b)
                b++;
            bucket[b] += c, batches += c, rows += c * (unsigned long long)s;
        }
        printf("  %7d  %7llu  %4.1f", opt.clients[k], batches,
               batches ? (double)rows / (double)batches : 0.0);
        for (int b = 0; b < NBUCKET; b++)
            printf(" %6llu", bucket[b]);
        printf("\n");
    }
}

static void print_goals(enum fmt f)
{
    int k64 = point_of(64), k1 = point_of(1);
    int on = opt.mode[MODE_ON];
    const struct result *off64 = k64 >= 0 ? &res[MODE_OFF][f][k64] : NULL;
    const struct result *on64 = k64 >= 0 ? &res[MODE_ON][f][k64] : NULL;
    double ceil_rps = POOL / t64_s, bound = opt.delay_us * 1e-6 + 3 * t64_s;
    printf("  goals (same run):\n");
    if (!on) {
        printf("    batching on not measured: no goal line\n");
        return;
    }
    if (k64 < 0) {
        printf("    64 clients not measured (--clients): no 64-client goal line\n");
    } else {
        if (opt.mode[MODE_OFF])
            printf("    64 clients, throughput on / off:                  %5.2fx  (goal >= 5)"
                   "    [%.1f vs %.1f req/s]\n",
                   on64->rps / off64->rps, on64->rps, off64->rps);
        printf("    64 clients, throughput on / ceiling 64/t64:       %5.2fx  (goal >= 0.6)"
               "  [%.1f vs %.1f rows/s]\n",
               on64->rps / ceil_rps, on64->rps, ceil_rps);
        if (par_rps > 0)
            printf("      (on / %d passes at once, %.1f rows/s:              %5.2fx)\n", par_n,
                   par_rps, on64->rps / par_rps);
        printf("    64 clients, p99 on / (queue delay + 3 x t64):     %5.2fx  (goal <= 1)"
               "    [%.1f vs %.1f + 3 x %.1f ms]\n",
               on64->p99 / bound, on64->p99 * 1e3, opt.delay_us * 1e-3, t64_s * 1e3);
    }
    if (k1 < 0)
        printf("    1 client not measured (--clients): no 1-client goal line\n");
    else if (opt.mode[MODE_OFF])
        printf("    1 client, throughput on / off:                    %5.2fx  (goal >= 0.9)"
               "  [%.1f vs %.1f req/s]\n",
               res[MODE_ON][f][k1].rps / res[MODE_OFF][f][k1].rps, res[MODE_ON][f][k1].rps,
               res[MODE_OFF][f][k1].rps);
}

static void print_format(enum fmt f)
{
    printf("\n%s (request %zu bytes, batch 1 x %d FP32)\n", fmt_title[f], bodies[f][0].n, IN);
    printf(
        "  clients  req/s off  req/s on  on/off   p50 off   p99 off    p50 on    p99 on  (ms)\n");
    for (int k = 0; k < opt.npoints; k++) {
        const struct result *a = &res[MODE_OFF][f][k], *b = &res[MODE_ON][f][k];
        char c[7][16];
        snprintf(c[0], 16, a->done ? "%.1f" : "-", a->rps);
        snprintf(c[1], 16, b->done ? "%.1f" : "-", b->rps);
        snprintf(c[2], 16, a->done && b->done ? "%.2fx" : "-", b->rps / a->rps);
        snprintf(c[3], 16, a->done ? "%.1f" : "-", a->p50 * 1e3);
        snprintf(c[4], 16, a->done ? "%.1f" : "-", a->p99 * 1e3);
        snprintf(c[5], 16, b->done ? "%.1f" : "-", b->p50 * 1e3);
        snprintf(c[6], 16, b->done ? "%.1f" : "-", b->p99 * 1e3);
        printf("  %7d  %9s  %8s  %6s  %8s  %8s  %8s  %8s\n", opt.clients[k], c[0], c[1], c[2], c[3],
               c[4], c[5], c[6]);
    }
    if (opt.mode[MODE_ON])
        print_hist(f);
    print_goals(f);
}

static void cpu_model(char *buf, size_t len)
{
    snprintf(buf, len, "unknown CPU");
    FILE *f = fopen("/proc/cpuinfo", "r");
    if (!f)
        return;
    char line[512];
    while (fgets(line, sizeof line, f)) {
        char *colon = strchr(line, ':');
        if (!strncmp(line, "model name", 10) && colon) {
            colon += 1 + (colon[1] == ' ');
            colon[strcspn(colon, "\n")] = 0;
            snprintf(buf, len, "%s", colon);
            break;
        }
    }
    fclose(f);
}

/* ---- main ------------------------------------------------------------------------------------------ */
static void usage(const char *bad)
{
    die("bad argument %s\nusage: bench_batch [--clients 1,4,16,64,256] [--seconds 4] [--warmup 1] "
        "[--format binary|json|both] [--batching off|on|both] [--batch-workers N] "
        "[--max-batch-size 64] [--queue-delay-us 500]",
        bad);
}

static void parse_args(int argc, char **argv)
{
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        char *end;
        if (!v)
            usage(a);
        i++;
        if (!strcmp(a, "--clients")) {
            opt.npoints = 0;
            for (const char *p = v; *p;) {
                long c = strtol(p, &end, 10);
                if (end == p || c < 1 || c > MAX_CLIENTS || opt.npoints == MAX_POINTS ||
                    (*end && *end != ','))
                    usage(v);
                opt.clients[opt.npoints++] = (int)c;
                p = *end ? end + 1 : end;
            }
            if (!opt.npoints)
                usage(v);
        } else if (!strcmp(a, "--seconds") || !strcmp(a, "--warmup")) {
            double s = strtod(v, &end);
            if (*end || !(s >= 0 && s <= 3600) || (a[2] == 's' && s == 0))
                usage(v);
            *(a[2] == 's' ? &opt.seconds : &opt.warmup) = s;
        } else if (!strcmp(a, "--format") || !strcmp(a, "--batching")) {
            int *sel = a[2] == 'f' ? opt.fmt : opt.mode;
            const char *const *names = a[2] == 'f' ? fmt_name : mode_name;
            int both = !strcmp(v, "both");
            if (!both && strcmp(v, names[0]) && strcmp(v, names[1]))
                usage(v);
            for (int j = 0; j < 2; j++)
                sel[j] = both || !strcmp(v, names[j]);
        } else if (!strcmp(a, "--batch-workers") || !strcmp(a, "--max-batch-size") ||
                   !strcmp(a, "--queue-delay-us")) {
            long n = strtol(v, &end, 10);
            int *dst = a[2] == 'b'   ? &opt.batch_workers
                       : a[2] == 'm' ? &opt.max_batch
                                     : &opt.delay_us;
            if (*end || n < (a[2] == 'm') || n > 10000000)
                usage(v);
            *dst = (int)n;
        } else {
            usage(a);
        }
    }
}

int main(int argc, char **argv)
{
    struct srv_blas bl;
    char e[512];
    srv_blas_early();
    /* may re-execute this process on a better kernel, as the daemon does: before anything */
    if (srv_blas_select("auto", argv, &bl, e, sizeof e))
        die("%s", e);
    openblas_set_num_threads(BLAS_THREADS);
    parse_args(argc, argv);
    opt.has_batching = relud_has_batching();
    if (opt.mode[MODE_ON] < 0)
        opt.mode[MODE_ON] = opt.has_batching;
    if (!opt.mode[MODE_OFF] && !opt.mode[MODE_ON])
        die("nothing to run");

    struct sigaction sa = {0};
    sa.sa_handler = on_signal;
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGHUP, &sa, NULL);
    if (!mkdtemp(tmpdir))
        die("mkdtemp %s", tmpdir);
    snprintf(path_json, sizeof path_json, "%s/" MODEL ".json", tmpdir);
    snprintf(path_st, sizeof path_st, "%s/" MODEL ".safetensors", tmpdir);
    tmpdir_made = 1;
    relud_args_build();

    char cpu[128];
    cpu_model(cpu, sizeof cpu);
    printf("\ndynamic batching: an MLP %d-%d-%d-%d (ReLU between) served by build/relud\n", IN, HID,
           HID, OUT);
    model_generate();
    printf("  model: %.1f M float32 parameters = %zu MB (in a temporary model dir, one daemon at a "
           "time)\n",
           (double)nparams / 1e6, nparams * 4 / 1000000);
    printf("  cpu: %s, %ld cores; BLAS: %s, kernel %s (this process and the daemon: auto)\n", cpu,
           sysconf(_SC_NPROCESSORS_ONLN), bl.version, bl.core);
    printf("  daemon: %s\n", relud_opts);
    snprintf(batch_keys, sizeof batch_keys,
             "\"max_batch_size\": %d, \"dynamic_batching\": {\"max_queue_delay_microseconds\": "
             "%d, \"preferred_batch_size\": [%d]}",
             opt.max_batch, opt.delay_us, opt.max_batch);
    if (opt.mode[MODE_ON]) {
        printf("  batching on: the model file adds %s\n", batch_keys);
    } else {
        printf("  batching on: not measured (%s)\n",
               opt.has_batching ? "--batching off"
                                : "build/relud has no batch_workers option: no batching yet");
    }
    printf("  load: closed loop, N client threads, each with its own keep-alive connection, "
           "sending batch-1\n  requests back to back; %g s warm-up, %g s measured per point; "
           "every reply checked against\n  nn_net_run here (allclose rtol %g atol %g)\n",
           opt.warmup, opt.seconds, RTOL, ATOL);
    fflush(stdout);

    ceiling();
    printf("ceiling: nn_net_run in this process, %d BLAS thread%s as the daemon, median of %d: "
           "1 row %.1f ms (%.1f rows/s),\n  %d rows t64 = %.1f ms -> 64/t64 = %.1f rows/s\n",
           BLAS_THREADS, BLAS_THREADS == 1 ? "" : "s", CEIL_RUNS, t1_s * 1e3, 1 / t1_s, POOL,
           t64_s * 1e3, POOL / t64_s);
    if (opt.mode[MODE_ON])
        ceiling_parallel();
    if (par_rps > 0)
        printf("  (not the goal's: %d such passes at once, as %d batch workers run them, median "
               "of %d: %.1f rows/s)\n",
               par_n, par_n, PAR_RUNS, par_rps);
    fflush(stdout);

    write_weights();
    bodies_build();
    curl_global_init(CURL_GLOBAL_DEFAULT);
    for (int m = 0; m < MODE_COUNT; m++)
        if (opt.mode[m])
            run_daemon((enum mode)m);
    for (int f = 0; f < FMT_COUNT; f++)
        if (opt.fmt[f])
            print_format((enum fmt)f);
    cleanup();
    curl_global_cleanup();
    return 0;
}
