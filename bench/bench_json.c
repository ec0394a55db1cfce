/* bench_json: the JSON reader's and writer's rates on random N(0,1) float32
 * tensors (server/json.h, server/jsonw.h), next to cJSON's own parse/print of
 * the same array in the same run (the ratio is what matters on a shared
 * machine), and the bare converter ceilings (fast_float over the text,
 * std::to_chars, strtof). Every figure is the median of RUNS runs.
 *
 *   build/bench/bench_json [n_values]      (default 1000000)
 *
 * Targets (issue 3): decode >= 30 M values/s, encode >= 20 M values/s at
 * <= 11.5 bytes/value.
 *
 * Times are the thread's CPU time (CLOCK_THREAD_CPUTIME_ID): the bench machine
 * is shared (2 cores, builds and other benches running), and time spent
 * descheduled is not the reader's or writer's. The relud lines also give the wall-clock rate.
 */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cjson/cJSON.h>

#include "server/json.h"
#include "server/jsonw.h"
#include "server/numconv.h"

#define RUNS 7

static double clk(clockid_t id)
{
    struct timespec ts;
    clock_gettime(id, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}
static double now(void)
{
    return clk(CLOCK_THREAD_CPUTIME_ID);
}
static double wall_rate; /* wall-clock rate of the last relud measurement */

static int cmp_d(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static double median(double *v, int n)
{
    qsort(v, (size_t)n, sizeof *v, cmp_d);
    return v[n / 2];
}

/* xorshift + Box-Muller: reproducible N(0,1) */
static uint64_t rng = 0x2545f4914f6cdd1dull;
static double urand(void)
{
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return ((double)(rng >> 11) + 0.5) / 9007199254740992.0;
}
static float nrand(void)
{
    return (float)(sqrt(-2.0 * log(urand())) * cos(6.283185307179586 * urand()));
}

static volatile double sink;

/* {"input": [v,v,...]}: shortest float32 text with "," (what relud itself
 * writes), or 17 significant digits with ", " (what json.dumps of float32
 * values as Python floats gives, e.g. 0.10000000149011612). */
static char *make_body(const float *v, size_t n, int digits17, size_t *len)
{
    char *b = malloc(n * 26 + 32), *p = b;
    p += sprintf(p, "{\"input\": [");
    for (size_t i = 0; i < n; i++) {
        if (i) *p++ = ',';
        if (i && digits17) *p++ = ' ';
        if (digits17) p += sprintf(p, "%.17g", (double)v[i]);
        else p += srv_f32_to_str(v[i], p);
    }
    p += sprintf(p, "]}");
    *len = (size_t)(p - b);
    return b;
}

static double bench_decode(const char *body, size_t len, size_t n, float *dst)
{
    double t[RUNS], w[RUNS];
    for (int r = 0; r < RUNS; r++) {
        struct nn_err err;
        struct srv_json *doc = NULL;
        double w0 = clk(CLOCK_MONOTONIC), t0 = now();
        float *out = malloc(n * sizeof *out);
        if (!out || srv_json_parse(body, len, 0, &doc, &err) != NN_OK ||
            srv_json_read(doc, srv_json_get(doc, srv_json_root(doc), "input"), SRV_F32, out, n,
                          "input", &err) != NN_OK) {
            fprintf(stderr, "bench_json: decode failed: %s\n", err.msg);
            exit(1);
        }
        t[r] = now() - t0;
        w[r] = clk(CLOCK_MONOTONIC) - w0;
        sink += out[n - 1];
        if (r == 0) memcpy(dst, out, n * sizeof(float));
        free(out);
        srv_json_free(doc);
    }
    wall_rate = (double)n / median(w, RUNS) / 1e6;
    return (double)n / median(t, RUNS) / 1e6;
}

static double bench_cjson_decode(const char *body, size_t len, size_t n, float *dst)
{
    double t[RUNS];
    for (int r = 0; r < RUNS; r++) {
        double t0 = now();
        cJSON *root = cJSON_ParseWithLength(body, len);
        const cJSON *a = cJSON_GetObjectItemCaseSensitive(root, "input");
        size_t i = 0;
        for (const cJSON *x = a->child; x; x = x->next) dst[i++] = (float)x->valuedouble;
        t[r] = now() - t0;
        cJSON_Delete(root);
    }
    return (double)n / median(t, RUNS) / 1e6;
}

static double bench_fastfloat(const char *body, size_t len, size_t n, float *dst)
{
    double t[RUNS];
    const char *s = strchr(body, '['), *bad;
    enum srv_num_fail why;
    for (int r = 0; r < RUNS; r++) {
        double t0 = now();
        if (srv_f32_read(s, body + len - 1, dst, n, &bad, &why) != n) {
            fprintf(stderr, "bench_json: fast_float stopped at byte %td (%d)\n", bad - body, (int)why);
            exit(1);
        }
        t[r] = now() - t0;
    }
    return (double)n / median(t, RUNS) / 1e6;
}

static double bench_strtof(const char *body, size_t n, float *dst)
{
    double t[RUNS];
    for (int r = 0; r < RUNS; r++) {
        char *p = strchr(body, '[') + 1;
        double t0 = now();
        for (size_t i = 0; i < n; i++) {
            dst[i] = strtof(p, &p);
            p++; /* the ',' (strtof skips leading spaces) */
        }
        t[r] = now() - t0;
    }
    return (double)n / median(t, RUNS) / 1e6;
}

static double bench_encode(const float *v, size_t n, size_t *bytes)
{
    double t[RUNS], w[RUNS];
    struct nn_tensor ten = {.dtype = NN_F32, .ndim = 1, .shape = {n}, .numel = n, .data = (void *)v};
    for (int r = 0; r < RUNS; r++) {
        struct nn_err err;
        enum nn_status st;
        size_t len;
        struct srv_jw jw;
        double w0 = clk(CLOCK_MONOTONIC), t0 = now();
        srv_jw_init(&jw, n * 12 + 64, 0);
        srv_jw_obj(&jw);
        srv_jw_key(&jw, "output");
        srv_jw_tensor(&jw, &ten, SRV_FORM_NESTED, "output");
        srv_jw_end(&jw);
        char *s = srv_jw_finish(&jw, &len, &st, &err);
        t[r] = now() - t0;
        w[r] = clk(CLOCK_MONOTONIC) - w0;
        if (!s) {
            fprintf(stderr, "bench_json: encode failed: %s\n", err.msg);
            exit(1);
        }
        *bytes = len - strlen("{\"output\":[]}");
        free(s);
    }
    wall_rate = (double)n / median(w, RUNS) / 1e6;
    return (double)n / median(t, RUNS) / 1e6;
}

static double bench_cjson_encode(const float *v, size_t n, size_t *bytes)
{
    double t[RUNS];
    for (int r = 0; r < RUNS; r++) {
        double t0 = now();
        cJSON *root = cJSON_CreateObject();
        cJSON_AddItemToObject(root, "output", cJSON_CreateFloatArray(v, (int)n));
        char *s = cJSON_PrintUnformatted(root);
        t[r] = now() - t0;
        *bytes = strlen(s) - strlen("{\"output\":[]}");
        free(s);
        cJSON_Delete(root);
    }
    return (double)n / median(t, RUNS) / 1e6;
}

static double bench_tochars(const float *v, size_t n, char *buf)
{
    double t[RUNS];
    for (int r = 0; r < RUNS; r++) {
        size_t bad;
        double t0 = now();
        sink += (double)srv_f32_row_to_str(buf, v, n, &bad);
        t[r] = now() - t0;
    }
    return (double)n / median(t, RUNS) / 1e6;
}

int main(int argc, char **argv)
{
    size_t n = argc > 1 ? (size_t)strtoull(argv[1], NULL, 10) : 1000000;
    if (n < 1) n = 1;
    float *v = malloc(n * sizeof *v), *dst = malloc(n * sizeof *dst);
    char *buf = malloc(n * (SRV_F32_MAXLEN + 1));
    for (size_t i = 0; i < n; i++) v[i] = nrand();

    printf("json bench: %zu float32 values ~ N(0,1), median of %d runs, M values per CPU-second\n",
           n, RUNS);

    size_t len;
    char *body = make_body(v, n, 0, &len);
    double dec = bench_decode(body, len, n, dst), dec_wall = wall_rate;
    int same = memcmp(dst, v, n * sizeof *v) == 0;
    double cj = bench_cjson_decode(body, len, n, dst);
    double ff = bench_fastfloat(body, len, n, dst);
    double sf = bench_strtof(body, n, dst);
    printf("decode shortest text (%.2f B/value): relud %.1f M values/s (wall %.1f) | cJSON %.1f M/s "
           "(x%.1f) | ceilings: fast_float %.1f, strtof %.1f M/s | round-trip %s\n",
           (double)len / (double)n, dec, dec_wall, cj, dec / cj, ff, sf, same ? "exact" : "MISMATCH");
    free(body);

    body = make_body(v, n, 1, &len);
    double dec17 = bench_decode(body, len, n, dst);
    same = memcmp(dst, v, n * sizeof *v) == 0;
    cj = bench_cjson_decode(body, len, n, dst);
    ff = bench_fastfloat(body, len, n, dst);
    printf("decode 17-digit text (%.2f B/value):  relud %.1f M values/s (wall %.1f) | cJSON %.1f M/s "
           "(x%.1f) | ceiling: fast_float %.1f M/s | round-trip %s\n",
           (double)len / (double)n, dec17, wall_rate, cj, dec17 / cj, ff, same ? "exact" : "MISMATCH");
    free(body);

    size_t eb, cb;
    double enc = bench_encode(v, n, &eb), enc_wall = wall_rate;
    double cje = bench_cjson_encode(v, n, &cb);
    double tc = bench_tochars(v, n, buf);
    printf("encode: relud %.1f M values/s (wall %.1f) at %.2f B/value | cJSON %.1f M/s at %.2f "
           "B/value (x%.1f) | ceiling: std::to_chars %.1f M/s\n",
           enc, enc_wall, (double)eb / (double)n, cje, (double)cb / (double)n, enc / cje, tc);

    int ok = dec >= 30 && enc >= 20 && (double)eb / (double)n <= 11.5;
    printf("json targets (decode >= 30, encode >= 20 M/s, <= 11.5 B/value): %s\n",
           ok ? "met" : "NOT met on this run");
    free(v);
    free(dst);
    free(buf);
    return 0;
}
