/* loadgen: concurrent SimpleNN load against relud (directly or through a balancer), checking
 * the numbers of every reply against a float64 reference computed here from the model file.
 * Used by tests/failover/run.sh and tests/containers/smoke.sh.
 *
 *   loadgen --url http://127.0.0.1:8080 [--requests 3000] [--concurrency 8]
 *           [--model-file config/models/simple_nn.json] [--oip] [--timeout 30]
 *           [--at FRACTION 'shell command']...
 *
 * Request i cycles through: POST /v1/forward with the model's layers inline; POST /v1/forward
 * {"model": NAME} (with --model-file); POST /v2/models/NAME/infer (with --oip). Its input is
 * 1..3 rows of 10 values derived from i (multiples of 1/16, exact in float32), so a reply
 * given to the wrong request is caught too. No client-side retries: a request fails on a
 * transport error, a status other than 200, or any number off by more than 1e-5 + 1e-4*|want|.
 * --at runs a shell command (in its own thread, the load goes on) once that fraction of the
 * requests has completed: `--at 0.33 'kill -KILL 1234'`.
 * Prints latency percentiles and the replies per X-Relud-Instance in each phase (between
 * --at events). Exit 0 only when every request and every --at command succeeded. */
#include <cjson/cJSON.h>
#include <curl/curl.h>
#include <math.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define LG_MAX_EVENTS 8
#define LG_MAX_INST 64
#define LG_MAX_LAYERS 16
#define LG_COLS_MAX 4096

enum lg_kind { LG_INLINE, LG_BY_NAME, LG_OIP, LG_KIND_COUNT };
static const char *const lg_kind_name[LG_KIND_COUNT] = {"/v1/forward layers", "/v1/forward model",
                                                         "OIP infer"};

struct lg_layer {
    int relu;     /* 1: relu; 0: linear */
    int in, out;  /* linear dims */
    double *w;    /* (out, in), float32-rounded */
    double *b;    /* (out) or NULL */
};

struct lg_event {
    double at;
    const char *cmd;
    int fired, done, status;
    long req_at, req_done; /* requests completed when it started / finished */
    double ms;
    pthread_t th;
};

struct lg_inst {
    char name[128];
    long count[LG_MAX_EVENTS + 1]; /* per phase */
};

static struct {
    const char *url, *model_name;
    long n;
    int conc, oip, timeout_s, in_dim, out_dim;
    struct lg_layer layers[LG_MAX_LAYERS];
    int nlayers;
    char *layers_json;            /* the "layers" array as JSON text */
    struct lg_event ev[LG_MAX_EVENTS];
    int nev;
    atomic_long next, completed, fail_transport, fail_http, fail_numbers;
    atomic_int phase;
    double *lat_ms;               /* (n) */
    pthread_mutex_t mu;
    struct lg_inst inst[LG_MAX_INST];
    int ninst;
    int nmsg;
    long kinds_ok[LG_KIND_COUNT];
} G;

static double now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

static void die(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fputs("loadgen: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
    exit(2);
}

static void fail_msg(const char *fmt, ...)
{
    pthread_mutex_lock(&G.mu);
    if (G.nmsg++ < 15) {
        va_list ap;
        va_start(ap, fmt);
        fputs("loadgen: FAIL ", stdout);
        vprintf(fmt, ap);
        fputc('\n', stdout);
        va_end(ap);
        fflush(stdout);
    }
    pthread_mutex_unlock(&G.mu);
}

/* ---- the model: the file's linear/relu layers, or a built-in Linear(10,5)+ReLU ---------- */

/* Flattens a tensor (nested arrays or {"shape","data"}) into out (cap values); returns count,
 * dims in rows and cols (rank 1: rows = 1). -1 on error. */
static long tensor_flat(const cJSON *t, double *out, long cap, int *rows, int *cols)
{
    if (cJSON_IsObject(t)) {
        const cJSON *shape = cJSON_GetObjectItem(t, "shape"), *data = cJSON_GetObjectItem(t, "data");
        int rank = cJSON_GetArraySize(shape);
        if (!cJSON_IsArray(data) || rank < 1 || rank > 2)
            return -1;
        *rows = rank == 2 ? cJSON_GetArrayItem(shape, 0)->valueint : 1;
        *cols = cJSON_GetArrayItem(shape, rank - 1)->valueint;
        long k = 0;
        const cJSON *v;
        cJSON_ArrayForEach(v, data)
        {
            if (k >= cap || !cJSON_IsNumber(v))
                return -1;
            out[k++] = (float)v->valuedouble;
        }
        return k == (long)*rows * *cols ? k : -1;
    }
    if (!cJSON_IsArray(t))
        return -1;
    const cJSON *first = cJSON_GetArrayItem(t, 0);
    long k = 0;
    if (cJSON_IsArray(first)) {
        *rows = cJSON_GetArraySize(t);
        *cols = cJSON_GetArraySize(first);
        const cJSON *row, *v;
        cJSON_ArrayForEach(row, t)
        {
            if (cJSON_GetArraySize(row) != *cols)
                return -1;
            cJSON_ArrayForEach(v, row)
            {
                if (k >= cap || !cJSON_IsNumber(v))
                    return -1;
                out[k++] = (float)v->valuedouble;
            }
        }
        return k;
    }
    *rows = 1;
    *cols = cJSON_GetArraySize(t);
    const cJSON *v;
    cJSON_ArrayForEach(v, t)
    {
        if (k >= cap || !cJSON_IsNumber(v))
            return -1;
        out[k++] = (float)v->valuedouble;
    }
    return k;
}

static void model_builtin(void)
{
    static double w[5 * 10], b[5];
    for (int o = 0; o < 5; o++) {
        for (int i = 0; i < 10; i++)
            w[o * 10 + i] = ((o * 10 + i) % 7 - 3) / 8.0;
        b[o] = (o - 2) / 4.0;
    }
    G.layers[0] = (struct lg_layer){.relu = 0, .in = 10, .out = 5, .w = w, .b = b};
    G.layers[1] = (struct lg_layer){.relu = 1};
    G.nlayers = 2;
    cJSON *arr = cJSON_CreateArray(), *lin = cJSON_CreateObject(), *W = cJSON_CreateArray();
    for (int o = 0; o < 5; o++)
        cJSON_AddItemToArray(W, cJSON_CreateDoubleArray(w + o * 10, 10));
    cJSON_AddStringToObject(lin, "type", "linear");
    cJSON_AddItemToObject(lin, "weight", W);
    cJSON_AddItemToObject(lin, "bias", cJSON_CreateDoubleArray(b, 5));
    cJSON_AddItemToArray(arr, lin);
    cJSON *relu = cJSON_CreateObject();
    cJSON_AddStringToObject(relu, "type", "relu");
    cJSON_AddItemToArray(arr, relu);
    G.layers_json = cJSON_PrintUnformatted(arr);
    cJSON_Delete(arr);
}

static void model_load(const char *path)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        die("cannot open %s", path);
    fseek(f, 0, SEEK_END);
    long len = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *text = malloc(len + 1);
    if (!text || fread(text, 1, len, f) != (size_t)len)
        die("cannot read %s", path);
    text[len] = 0;
    fclose(f);
    cJSON *m = cJSON_Parse(text);
    free(text);
    const cJSON *name = cJSON_GetObjectItem(m, "name"), *layers = cJSON_GetObjectItem(m, "layers");
    if (!cJSON_IsString(name) || !cJSON_IsArray(layers))
        die("%s: expected {\"name\": ..., \"layers\": [...]} with inline weights", path);
    G.model_name = strdup(name->valuestring);
    const cJSON *l;
    cJSON_ArrayForEach(l, layers)
    {
        if (G.nlayers == LG_MAX_LAYERS)
            die("%s: too many layers", path);
        const char *type = cJSON_GetStringValue(cJSON_GetObjectItem(l, "type"));
        struct lg_layer *L = &G.layers[G.nlayers++];
        if (type && !strcmp(type, "relu")) {
            L->relu = 1;
        } else if (type && !strcmp(type, "linear")) {
            int r, c, rb, cb;
            L->w = malloc(sizeof(double) * LG_COLS_MAX * 64);
            if (tensor_flat(cJSON_GetObjectItem(l, "weight"), L->w, LG_COLS_MAX * 64, &r, &c) < 0)
                die("%s: layers[%d].weight unreadable", path, G.nlayers - 1);
            L->out = r;
            L->in = c;
            const cJSON *bias = cJSON_GetObjectItem(l, "bias");
            if (bias && !cJSON_IsNull(bias)) {
                L->b = malloc(sizeof(double) * r);
                if (tensor_flat(bias, L->b, r, &rb, &cb) != r)
                    die("%s: layers[%d].bias unreadable", path, G.nlayers - 1);
            }
        } else {
            die("%s: layers[%d]: loadgen knows linear and relu only", path, G.nlayers - 1);
        }
    }
    G.layers_json = cJSON_PrintUnformatted(layers);
    cJSON_Delete(m);
}

/* y (rows, out_dim) = model(x (rows, in_dim)), float64 */
static void model_forward(double *y, const double *x, int rows)
{
    static _Thread_local double a[2][LG_COLS_MAX * 4];
    int dim = G.in_dim, cur = 0;
    memcpy(a[0], x, sizeof(double) * rows * dim);
    for (int li = 0; li < G.nlayers; li++) {
        const struct lg_layer *L = &G.layers[li];
        if (L->relu) {
            for (int k = 0; k < rows * dim; k++)
                a[cur][k] = a[cur][k] > 0 ? a[cur][k] : 0;
            continue;
        }
        for (int r = 0; r < rows; r++)
            for (int o = 0; o < L->out; o++) {
                double s = L->b ? L->b[o] : 0;
                for (int i = 0; i < L->in; i++)
                    s += L->w[o * L->in + i] * a[cur][r * dim + i];
                a[1 - cur][r * L->out + o] = s;
            }
        dim = L->out;
        cur = 1 - cur;
    }
    memcpy(y, a[cur], sizeof(double) * rows * dim);
}

/* ---- one request ---------------------------------------------------------------------- */

struct lg_buf {
    char *p;
    size_t len, cap;
    char inst[128];
};

static size_t on_body(char *d, size_t sz, size_t n, void *u)
{
    struct lg_buf *b = u;
    size_t k = sz * n;
    if (b->len + k + 1 > b->cap) {
        b->cap = (b->len + k + 1) * 2;
        b->p = realloc(b->p, b->cap);
    }
    memcpy(b->p + b->len, d, k);
    b->len += k;
    b->p[b->len] = 0;
    return k;
}

static size_t on_header(char *d, size_t sz, size_t n, void *u)
{
    struct lg_buf *b = u;
    size_t k = sz * n;
    static const char h[] = "x-relud-instance:";
    if (k > sizeof h - 1 && !strncasecmp(d, h, sizeof h - 1)) {
        const char *v = d + sizeof h - 1;
        while (*v == ' ')
            v++;
        size_t m = k - (v - d);
        while (m && (v[m - 1] == '\r' || v[m - 1] == '\n'))
            m--;
        if (m >= sizeof b->inst)
            m = sizeof b->inst - 1;
        memcpy(b->inst, v, m);
        b->inst[m] = 0;
    }
    return k;
}

static void count_instance(const char *name, int phase)
{
    pthread_mutex_lock(&G.mu);
    int i;
    for (i = 0; i < G.ninst && strcmp(G.inst[i].name, name); i++)
        ;
    if (i == G.ninst && G.ninst < LG_MAX_INST)
        snprintf(G.inst[G.ninst++].name, sizeof G.inst[0].name, "%s", name);
    if (i < G.ninst)
        G.inst[i].count[phase]++;
    pthread_mutex_unlock(&G.mu);
}

/* Returns 1 when the reply matched. */
static int check_reply(long i, enum lg_kind kind, const char *body, const double *want, int rows)
{
    cJSON *j = cJSON_Parse(body);
    const cJSON *out = NULL;
    double got[LG_COLS_MAX];
    int r = 0, c = 0, ok = 0;
    long k = -1;
    if (kind == LG_OIP) {
        const cJSON *o0 = cJSON_GetArrayItem(cJSON_GetObjectItem(j, "outputs"), 0);
        out = cJSON_GetObjectItem(o0, "data");
        if (out) {
            cJSON *shaped = cJSON_CreateObject();
            cJSON_AddItemReferenceToObject(shaped, "shape", cJSON_GetObjectItem(o0, "shape"));
            cJSON_AddItemReferenceToObject(shaped, "data", (cJSON *)out);
            k = tensor_flat(shaped, got, LG_COLS_MAX, &r, &c);
            cJSON_Delete(shaped);
        }
    } else {
        out = cJSON_GetObjectItem(j, "output");
        k = out ? tensor_flat(out, got, LG_COLS_MAX, &r, &c) : -1;
    }
    if (k != (long)rows * G.out_dim || r != rows || c != G.out_dim) {
        fail_msg("request %ld (%s): output shape [%d, %d], want [%d, %d]: %.200s", i,
                 lg_kind_name[kind], r, c, rows, G.out_dim, body);
        goto done;
    }
    for (long q = 0; q < k; q++)
        if (!(fabs(got[q] - want[q]) <= 1e-5 + 1e-4 * fabs(want[q]))) {
            fail_msg("request %ld (%s): output[%ld] = %.9g, want %.9g", i, lg_kind_name[kind], q,
                     got[q], want[q]);
            goto done;
        }
    ok = 1;
done:
    cJSON_Delete(j);
    return ok;
}

static void *worker(void *arg)
{
    (void)arg;
    CURL *h = curl_easy_init();
    struct lg_buf b = {0};
    struct curl_slist *hdr = curl_slist_append(NULL, "Content-Type: application/json");
    hdr = curl_slist_append(hdr, "Expect:");
    int nkinds = G.oip ? 3 : G.model_name ? 2 : 1;
    char url[512], rid[64], *body = malloc(1 << 20);
    for (;;) {
        long i = atomic_fetch_add(&G.next, 1);
        if (i >= G.n)
            break;
        enum lg_kind kind = (enum lg_kind)(i % nkinds);
        int rows = 1 + (int)(i % 3);
        double x[3 * LG_COLS_MAX], want[3 * LG_COLS_MAX];
        for (int q = 0; q < rows * G.in_dim; q++)
            x[q] = (double)((i * 31 + q * 17) % 97 - 48) / 16.0;
        model_forward(want, x, rows);

        /* body */
        size_t o = 0;
        if (kind == LG_OIP) {
            o += sprintf(body + o, "{\"id\": \"lg-%ld\", \"inputs\": [{\"name\": \"input\", "
                                   "\"shape\": [%d, %d], \"datatype\": \"FP32\", \"data\": [",
                         i, rows, G.in_dim);
            for (int q = 0; q < rows * G.in_dim; q++)
                o += sprintf(body + o, "%s%g", q ? ", " : "", x[q]);
            o += sprintf(body + o, "]}]}");
            snprintf(url, sizeof url, "%s/v2/models/%s/infer", G.url, G.model_name);
        } else {
            o += sprintf(body + o, "{\"input\": [");
            for (int r = 0; r < rows; r++) {
                o += sprintf(body + o, "%s[", r ? ", " : "");
                for (int q = 0; q < G.in_dim; q++)
                    o += sprintf(body + o, "%s%g", q ? ", " : "", x[r * G.in_dim + q]);
                o += sprintf(body + o, "]");
            }
            if (kind == LG_BY_NAME)
                o += sprintf(body + o, "], \"model\": \"%s\"}", G.model_name);
            else
                o += snprintf(body + o, (1 << 20) - o, "], \"layers\": %s}", G.layers_json);
            snprintf(url, sizeof url, "%s/v1/forward", G.url);
        }
        snprintf(rid, sizeof rid, "X-Request-Id: lg-%ld", i);
        struct curl_slist *h2 = curl_slist_append(NULL, rid);
        for (struct curl_slist *s = hdr; s; s = s->next)
            h2 = curl_slist_append(h2, s->data);

        b.len = 0;
        if (b.p)
            b.p[0] = 0;
        strcpy(b.inst, "(no X-Relud-Instance)");
        curl_easy_reset(h);
        curl_easy_setopt(h, CURLOPT_URL, url);
        curl_easy_setopt(h, CURLOPT_POSTFIELDS, body);
        curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE, (long)o);
        curl_easy_setopt(h, CURLOPT_HTTPHEADER, h2);
        curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_body);
        curl_easy_setopt(h, CURLOPT_WRITEDATA, &b);
        curl_easy_setopt(h, CURLOPT_HEADERFUNCTION, on_header);
        curl_easy_setopt(h, CURLOPT_HEADERDATA, &b);
        curl_easy_setopt(h, CURLOPT_TIMEOUT, (long)G.timeout_s);
        curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
        int phase = atomic_load(&G.phase);
        double t0 = now_ms();
        CURLcode rc = curl_easy_perform(h);
        G.lat_ms[i] = now_ms() - t0;
        curl_slist_free_all(h2);
        long status = 0;
        curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &status);
        if (rc != CURLE_OK) {
            atomic_fetch_add(&G.fail_transport, 1);
            fail_msg("request %ld (%s): transport error: %s", i, lg_kind_name[kind],
                     curl_easy_strerror(rc));
        } else if (status != 200) {
            atomic_fetch_add(&G.fail_http, 1);
            fail_msg("request %ld (%s): HTTP %ld from %s: %.200s", i, lg_kind_name[kind], status,
                     b.inst, b.p ? b.p : "");
        } else if (!check_reply(i, kind, b.p ? b.p : "", want, rows)) {
            atomic_fetch_add(&G.fail_numbers, 1);
        } else {
            pthread_mutex_lock(&G.mu);
            G.kinds_ok[kind]++;
            pthread_mutex_unlock(&G.mu);
        }
        count_instance(b.inst, phase);
        atomic_fetch_add(&G.completed, 1);
    }
    free(body);
    free(b.p);
    curl_slist_free_all(hdr);
    curl_easy_cleanup(h);
    return NULL;
}

/* ---- --at events ---------------------------------------------------------------------- */

static void *event_run(void *arg)
{
    struct lg_event *e = arg;
    double t0 = now_ms();
    int st = system(e->cmd);
    e->ms = now_ms() - t0;
    e->status = st == -1 ? -1 : WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
    e->req_done = atomic_load(&G.completed);
    e->done = 1;
    return NULL;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

int main(int argc, char **argv)
{
    G.n = 3000;
    G.conc = 8;
    G.timeout_s = 30;
    const char *model_file = NULL;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "--url") && i + 1 < argc)
            G.url = argv[++i];
        else if (!strcmp(a, "--requests") && i + 1 < argc)
            G.n = atol(argv[++i]);
        else if (!strcmp(a, "--concurrency") && i + 1 < argc)
            G.conc = atoi(argv[++i]);
        else if (!strcmp(a, "--timeout") && i + 1 < argc)
            G.timeout_s = atoi(argv[++i]);
        else if (!strcmp(a, "--model-file") && i + 1 < argc)
            model_file = argv[++i];
        else if (!strcmp(a, "--oip"))
            G.oip = 1;
        else if (!strcmp(a, "--at") && i + 2 < argc && G.nev < LG_MAX_EVENTS) {
            G.ev[G.nev].at = atof(argv[++i]);
            G.ev[G.nev++].cmd = argv[++i];
        } else
            die("usage: loadgen --url URL [--requests N] [--concurrency C] [--model-file F] "
                "[--oip] [--timeout S] [--at FRACTION CMD]...  (bad argument %s)",
                a);
    }
    if (!G.url || G.n < 1 || G.conc < 1)
        die("--url is required; --requests and --concurrency must be >= 1");
    if (G.oip && !model_file)
        die("--oip needs --model-file (the model's name)");
    if (model_file)
        model_load(model_file);
    else
        model_builtin();
    G.in_dim = G.layers[0].relu ? 0 : G.layers[0].in;
    for (int l = 0; l < G.nlayers; l++)
        if (!G.layers[l].relu)
            G.out_dim = G.layers[l].out;
    if (G.in_dim < 1 || G.in_dim > LG_COLS_MAX || G.out_dim * 3 > LG_COLS_MAX)
        die("model must start with a linear layer of at most %d inputs", LG_COLS_MAX);

    curl_global_init(CURL_GLOBAL_ALL);
    pthread_mutex_init(&G.mu, NULL);
    G.lat_ms = calloc(G.n, sizeof(double));
    pthread_t *th = calloc(G.conc, sizeof *th);
    double t0 = now_ms();
    for (int i = 0; i < G.conc; i++)
        pthread_create(&th[i], NULL, worker, NULL);
    /* fire the --at commands in order as the load progresses */
    for (int e = 0; e < G.nev;) {
        long done = atomic_load(&G.completed);
        if (done >= (long)(G.ev[e].at * G.n) || done >= G.n) {
            G.ev[e].req_at = done;
            G.ev[e].fired = 1;
            pthread_create(&G.ev[e].th, NULL, event_run, &G.ev[e]);
            atomic_store(&G.phase, ++e);
            continue;
        }
        nanosleep(&(struct timespec){0, 500000}, NULL);
    }
    for (int i = 0; i < G.conc; i++)
        pthread_join(th[i], NULL);
    double secs = (now_ms() - t0) / 1e3;
    for (int e = 0; e < G.nev; e++)
        pthread_join(G.ev[e].th, NULL);

    long ft = atomic_load(&G.fail_transport), fh = atomic_load(&G.fail_http),
         fn = atomic_load(&G.fail_numbers), failed = ft + fh + fn;
    qsort(G.lat_ms, G.n, sizeof(double), cmp_double);
#define PCT(p) G.lat_ms[(long)((p) / 100.0 * (G.n - 1) + 0.5)]
    printf("loadgen: %ld requests, %d concurrent, %.2f s, %.0f req/s (%s)\n", G.n, G.conc, secs,
           G.n / secs, G.url);
    printf("loadgen: %ld ok (%ld %s, %ld %s, %ld %s), %ld failed (transport %ld, http %ld, "
           "wrong numbers %ld)\n",
           G.n - failed, G.kinds_ok[0], lg_kind_name[0], G.kinds_ok[1], lg_kind_name[1],
           G.kinds_ok[2], lg_kind_name[2], failed, ft, fh, fn);
    printf("loadgen: latency ms: p50 %.2f  p90 %.2f  p99 %.2f  max %.2f\n", PCT(50), PCT(90),
           PCT(99), G.lat_ms[G.n - 1]);
    int ev_failed = 0;
    for (int e = 0; e < G.nev; e++) {
        printf("loadgen: event %d at %ld/%ld done: \"%s\" -> exit %d after %.0f ms, "
               "when %ld/%ld were done\n",
               e + 1, G.ev[e].req_at, G.n, G.ev[e].cmd, G.ev[e].status, G.ev[e].ms,
               G.ev[e].req_done, G.n);
        ev_failed += G.ev[e].status != 0;
    }
    printf("loadgen: replies by X-Relud-Instance");
    if (G.nev) {
        printf(" [before event 1");
        for (int p = 1; p <= G.nev; p++)
            printf(" | after event %d", p);
        printf("]");
    }
    printf("\n");
    for (int i = 0; i < G.ninst; i++) {
        long tot = 0;
        for (int p = 0; p <= G.nev; p++)
            tot += G.inst[i].count[p];
        printf("loadgen:   %-40s %6ld", G.inst[i].name, tot);
        if (G.nev) {
            printf("   [");
            for (int p = 0; p <= G.nev; p++)
                printf("%s%ld", p ? " | " : "", G.inst[i].count[p]);
            printf("]");
        }
        printf("\n");
    }
    curl_global_cleanup();
    return failed || ev_failed ? 1 : 0;
}
