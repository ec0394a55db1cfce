/* The JSON reader (server/json.h), the writer (server/jsonw.h), request tensors and binary
 * wire data (server/tensors.h), and float text (server/numconv.h), one behaviour per test:
 *  - float text: every float32 class round-trips shortest (1e6 random bit patterns too),
 *    float64 likewise, float32 text is read straight into float32 (one rounding);
 *  - the parser: errors as "invalid JSON at byte N: ...", NUL bytes, UTF-8, escapes, the
 *    number grammar (scalars at parse, numbers of numeric arrays when read, separators too),
 *    strings holding brackets, mixed and ragged arrays, nesting depth, duplicate keys
 *    (compared unescaped), the max_values cap (counted before allocation), out of memory;
 *  - accessors: keys with escapes, keys and strings cut at a UTF-8 boundary, unknown keys;
 *  - tensors: nested and object forms, their messages and caps, int64 exact past 2^53,
 *    messages that stay valid UTF-8 in a reply, every golden file (cross-checked with cJSON),
 *    random mutations that never crash and never accept what cJSON refuses;
 *  - the writer: tensor forms, commas and nesting, escaping, invalid UTF-8 as '?',
 *    non-finite values named with their index, sticky errors, the cap, out of memory;
 *  - binary wire data: every datatype of the list to every target, and its range errors. */
#include <float.h>
#include <limits.h>
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cjson/cJSON.h>
#include <cmocka.h>

#include "server/json.h"
#include "server/jsonw.h"
#include "server/numconv.h"
#include "server/tensors.h"
#include "tests/common/golden.h"
#include "tests/common/fs.h"

/* ---- an allocator that counts (and can fail), as in test_oom.c ------------------------
 * ASan's allocator cannot be replaced: the tests that need this one skip there. */
#if defined(__SANITIZE_ADDRESS__)
#define HAVE_ALLOC_HOOK 0
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define HAVE_ALLOC_HOOK 0
#endif
#endif
#ifndef HAVE_ALLOC_HOOK
#define HAVE_ALLOC_HOOK 1
#endif

static int t_armed;      /* count (and maybe fail) allocations */
static size_t t_biggest; /* largest single request while armed */
static long t_nalloc;    /* allocations while armed */
static long t_fail_at;   /* 0: never fail; else the allocation number that fails */
static int t_failed;     /* an allocation was failed */

#if HAVE_ALLOC_HOOK
extern void *__libc_malloc(size_t);
extern void *__libc_calloc(size_t, size_t);
extern void *__libc_realloc(void *, size_t);
extern void *__libc_memalign(size_t, size_t);
extern void __libc_free(void *);

static int t_alloc_fails(size_t n)
{
    if (!t_armed)
        return 0;
    if (n > t_biggest)
        t_biggest = n;
    if (++t_nalloc == t_fail_at) {
        t_failed = 1;
        return 1;
    }
    return 0;
}

void *malloc(size_t n) { return t_alloc_fails(n) ? NULL : __libc_malloc(n); }
void *calloc(size_t a, size_t b) { return t_alloc_fails(a * b) ? NULL : __libc_calloc(a, b); }
void *realloc(void *p, size_t n) { return t_alloc_fails(n) ? NULL : __libc_realloc(p, n); }
void free(void *p) { __libc_free(p); }
int posix_memalign(void **out, size_t align, size_t n)
{
    void *p = t_alloc_fails(n) ? NULL : __libc_memalign(align, n);
    if (!p)
        return 12; /* ENOMEM */
    *out = p;
    return 0;
}
void *aligned_alloc(size_t align, size_t n)
{
    return t_alloc_fails(n) ? NULL : __libc_memalign(align, n);
}
#endif

static void t_arm(long fail_at)
{
    t_biggest = 0;
    t_nalloc = 0;
    t_failed = 0;
    t_fail_at = fail_at;
    t_armed = 1;
}

static void t_disarm(void) { t_armed = 0; }

/* ---- helpers ------------------------------------------------------------------------- */
static uint64_t rng = 0x9E3779B97F4A7C15ull;
static uint64_t t_rnd(void)
{
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return rng;
}

static uint32_t f2u(float f)
{
    uint32_t u;
    memcpy(&u, &f, 4);
    return u;
}
static float u2f(uint32_t u)
{
    float f;
    memcpy(&f, &u, 4);
    return f;
}
static uint64_t d2u(double d)
{
    uint64_t u;
    memcpy(&u, &d, 8);
    return u;
}
static double u2d(uint64_t u)
{
    double d;
    memcpy(&d, &u, 8);
    return d;
}

#define assert_contains(hay, needle)                                            \
    do {                                                                        \
        const char *h_ = (hay), *n_ = (needle);                                 \
        if (!h_ || !strstr(h_, n_))                                             \
            fail_msg("\"%s\" does not contain \"%s\"", h_ ? h_ : "(null)", n_); \
    } while (0)

static struct srv_json *t_parse(const char *s)
{
    struct nn_err err = {{0}};
    struct srv_json *d = NULL;
    if (srv_json_parse(s, strlen(s), 0, &d, &err) != NN_OK)
        fail_msg("parse of %s failed: %s", s, err.msg);
    assert_non_null(d);
    return d;
}

/* The parse of s[0..n) fails with status st and a message containing want. */
static void t_parse_fails_n(const char *s, size_t n, enum nn_status st, const char *want)
{
    struct nn_err err = {{0}};
    struct srv_json *d = (struct srv_json *)1;
    enum nn_status got = srv_json_parse(s, n, 0, &d, &err);
    if (got == NN_OK) {
        srv_json_free(d);
        fail_msg("parse of %.*s succeeded, expected \"%s\"", (int)n, s, want);
    }
    assert_null(d);
    if (got != st)
        fail_msg("parse of %.*s: status %d (%s), expected %d", (int)n, s, got, err.msg, st);
    assert_contains(err.msg, want);
}

static void t_parse_fails(const char *s, const char *want)
{
    t_parse_fails_n(s, strlen(s), NN_EINVAL, want);
}

static srv_jv t_get(const struct srv_json *d, const char *key)
{
    return srv_json_get(d, srv_json_root(d), key);
}

/* The i-th element of an array (or member of an object). */
static srv_jv t_at(const struct srv_json *d, srv_jv v, size_t i)
{
    srv_jv x = srv_json_child(d, v);
    while (x && i--)
        x = srv_json_next(d, x);
    return x;
}

/* Numeric arrays under v (v included). */
static size_t t_count_numarrays(const struct srv_json *d, srv_jv v)
{
    size_t n = srv_json_type(d, v) == SRV_J_NUMARRAY;
    for (srv_jv x = srv_json_child(d, v); x; x = srv_json_next(d, x))
        n += t_count_numarrays(d, x);
    return n;
}

/* Reading the numeric array at key of body as t (all its values) fails with want. */
static void t_read_fails(const char *body, const char *key, enum srv_num t, const char *want)
{
    struct srv_json *d = t_parse(body);
    srv_jv v = key ? t_get(d, key) : srv_json_root(d);
    size_t n;
    if (!srv_json_numarray(d, v, NULL, NULL, &n))
        fail_msg("%s: %s is not a numeric array", body, key ? key : "the root");
    double *buf = malloc((n ? n : 1) * sizeof(double));
    struct nn_err err = {{0}};
    enum nn_status st = srv_json_read(d, v, t, buf, n, key ? key : "value", &err);
    free(buf);
    srv_json_free(d);
    if (st == NN_OK)
        fail_msg("%s read as %s, expected \"%s\"", body, srv_num_names[t], want);
    assert_int_equal(st, NN_EINVAL);
    assert_contains(err.msg, want);
}

/* {"input": X} loaded as a tensor of dt (srv_tensor_load); message in err. */
static enum nn_status t_tensor_of(const char *body, enum nn_dtype dt, size_t max,
                                  struct nn_tensor *t, enum srv_form *form, struct nn_err *err)
{
    struct srv_json *d = t_parse(body);
    enum nn_status st = srv_tensor_load(d, t_get(d, "input"), dt, max, "input", t, form, err);
    srv_json_free(d);
    return st;
}

static void t_tensor_fails(const char *body, enum nn_status want_st, const char *want)
{
    struct nn_err err = {{0}};
    struct nn_tensor t;
    enum nn_status st = t_tensor_of(body, NN_F32, 1000, &t, NULL, &err);
    if (st == NN_OK) {
        free(t.data);
        fail_msg("%s: tensor accepted, expected \"%s\"", body, want);
    }
    if (st != want_st)
        fail_msg("%s: status %d (%s), expected %d", body, st, err.msg, want_st);
    assert_contains(err.msg, want);
}

/* The writer's text (it must have succeeded); the caller frees it. */
static char *t_finish(struct srv_jw *w)
{
    struct nn_err err = {{0}};
    enum nn_status st = NN_EINVAL;
    size_t len = 0;
    char *s = srv_jw_finish(w, &len, &st, &err);
    if (!s)
        fail_msg("writer failed (%d): %s", st, err.msg);
    assert_int_equal(st, NN_OK);
    assert_int_equal(strlen(s), len);
    return s;
}

/* The writer fails with st and exactly the message want. */
static void t_finish_fails(struct srv_jw *w, enum nn_status st, const char *want)
{
    struct nn_err err = {{0}};
    enum nn_status got = NN_OK;
    size_t len = 0;
    char *s = srv_jw_finish(w, &len, &got, &err);
    if (s) {
        print_error("writer succeeded with %s, expected \"%s\"\n", s, want);
        free(s);
        fail();
    }
    assert_int_equal(got, st);
    assert_string_equal(err.msg, want);
}

/* s is valid UTF-8: cJSON quotes it as it is, and the reader checks every sequence. */
static void t_assert_utf8(const char *s)
{
    cJSON *j = cJSON_CreateString(s);
    char *txt = cJSON_PrintUnformatted(j);
    struct nn_err err = {{0}};
    struct srv_json *d = NULL;
    if (srv_json_parse(txt, strlen(txt), 0, &d, &err) != NN_OK)
        fail_msg("not valid UTF-8 (%s): %s", err.msg, s);
    srv_json_free(d);
    free(txt);
    cJSON_Delete(j);
}

/* Every numeric array under v reads as float64. */
static int t_all_read(const struct srv_json *d, srv_jv v)
{
    size_t n;
    if (srv_json_numarray(d, v, NULL, NULL, &n)) {
        double *buf = malloc((n ? n : 1) * sizeof *buf);
        enum nn_status st = srv_json_read(d, v, SRV_F64, buf, n, "x", NULL);
        free(buf);
        return st == NN_OK;
    }
    for (srv_jv x = srv_json_child(d, v); x; x = srv_json_next(d, x))
        if (!t_all_read(d, x))
            return 0;
    return 1;
}

/* The cJSON array c holds exactly vals[*at..] in the shape sh[0..nd). */
static int t_same_nums(const cJSON *c, const size_t *sh, int nd, const double *vals, size_t *at)
{
    if (!cJSON_IsArray(c) || (size_t)cJSON_GetArraySize(c) != sh[0])
        return 0;
    for (const cJSON *x = c->child; x; x = x->next) {
        if (nd > 1) {
            if (!t_same_nums(x, sh + 1, nd - 1, vals, at))
                return 0;
        } else if (!cJSON_IsNumber(x) || d2u(x->valuedouble) != d2u(vals[(*at)++])) {
            return 0;
        }
    }
    return 1;
}

/* v of d and the cJSON value c are the same JSON: types, strings, keys in order, numbers
 * bit for bit (fast_float and glibc's strtod both round correctly), a numeric array the
 * same nested arrays. */
static int t_same(const struct srv_json *d, srv_jv v, const cJSON *c)
{
    double num;
    switch (srv_json_type(d, v)) {
    case SRV_J_NULL: return cJSON_IsNull(c);
    case SRV_J_BOOL: return srv_json_is_true(d, v) ? cJSON_IsTrue(c) : cJSON_IsFalse(c);
    case SRV_J_NUMBER:
        return srv_json_number(d, v, &num) && cJSON_IsNumber(c) && d2u(num) == d2u(c->valuedouble);
    case SRV_J_STRING: {
        char *s = srv_json_strdup(d, v);
        int same = s && cJSON_IsString(c) && !strcmp(s, c->valuestring);
        free(s);
        return same;
    }
    case SRV_J_NUMARRAY: {
        size_t sh[NN_MAX_DIMS], n, at = 0;
        int nd;
        srv_json_numarray(d, v, sh, &nd, &n);
        double *vals = malloc((n ? n : 1) * sizeof *vals);
        int same = srv_json_read(d, v, SRV_F64, vals, n, "x", NULL) == NN_OK &&
                   t_same_nums(c, sh, nd, vals, &at) && at == n;
        free(vals);
        return same;
    }
    case SRV_J_ARRAY:
    case SRV_J_OBJECT: {
        int obj = srv_json_type(d, v) == SRV_J_OBJECT;
        if (obj ? !cJSON_IsObject(c) : !cJSON_IsArray(c))
            return 0;
        const cJSON *y = c->child;
        for (srv_jv x = srv_json_child(d, v); x; x = srv_json_next(d, x), y = y->next) {
            if (!y)
                return 0;
            if (obj) {
                char *k = srv_json_keydup(d, x);
                int same = k && y->string && !strcmp(k, y->string);
                free(k);
                if (!same)
                    return 0;
            }
            if (!t_same(d, x, y))
                return 0;
        }
        return y == NULL && srv_json_count(d, v) == (size_t)cJSON_GetArraySize(c);
    }
    default: return 0;
    }
}

/* ---- float text ------------------------------------------------------------------------ */
static void t_f32_round_trip(float v)
{
    char buf[SRV_F32_MAXLEN + 1];
    size_t n = srv_f32_to_str(v, buf);
    assert_true(n > 0 && n <= 16);
    buf[n] = '\0';
    float back = strtof(buf, NULL);
    if (f2u(back) != f2u(v))
        fail_msg("%a printed as %s reads back as %a", (double)v, buf, (double)back);
    /* and through the reader's own converter */
    const char *stop;
    float mine;
    assert_true(srv_f32_parse(buf, buf + n, &mine, &stop));
    assert_ptr_equal(stop, buf + n);
    assert_int_equal(f2u(mine), f2u(v));
}

static void test_f32_special_values_round_trip(void **state)
{
    (void)state;
    const float sub_max = u2f(0x007fffff), sub_half = u2f(0x00400000); /* subnormals */
    const float vals[] = {0.0f,         -0.0f,         1.0f,
                          -1.0f,        0.1f,          0.2f,
                          0.3f,         1.0f / 3,      2.0f / 3,
                          FLT_MIN,      -FLT_MIN,      FLT_MAX,
                          -FLT_MAX,     FLT_TRUE_MIN,  -FLT_TRUE_MIN,
                          sub_max,      sub_half,      16777216.0f,
                          16777217.0f,  1e20f,         1e-20f,
                          123456789.0f, 1e10f,         9.999999e-5f,
                          1e-5f,        3.4028234e38f, 1.17549435e-38f,
                          8388608.5f,   0.5f,          1e7f,
                          1e-7f};
    for (size_t i = 0; i < sizeof vals / sizeof *vals; i++)
        t_f32_round_trip(vals[i]);
}

/* Every exponent (subnormals included) with edge and random mantissas, both signs. */
static void test_f32_every_exponent_round_trips(void **state)
{
    (void)state;
    for (uint32_t ex = 0; ex < 255; ex++) {
        uint32_t r1 = (uint32_t)t_rnd() & 0x7fffff, r2 = (uint32_t)t_rnd() & 0x7fffff;
        uint32_t mants[] = {0, 1, 2, 0x7fffff, 0x7ffffe, 0x400000, 0x3fffff, r1, r2};
        for (size_t m = 0; m < sizeof mants / sizeof *mants; m++)
            for (uint32_t sgn = 0; sgn < 2; sgn++)
                t_f32_round_trip(u2f(sgn << 31 | ex << 23 | mants[m]));
    }
}

static void test_f32_random_bits_1e6_round_trip(void **state)
{
    (void)state;
    size_t done = 0;
    while (done < 1000000) {
        uint32_t u = (uint32_t)t_rnd();
        if (((u >> 23) & 0xff) == 0xff)
            continue; /* inf/nan are not JSON */
        t_f32_round_trip(u2f(u));
        done++;
    }
}

static void test_f32_shortest_text(void **state)
{
    (void)state;
    struct {
        float v;
        const char *s;
    } cases[] = {{0.1f, "0.1"},
                 {2.0f, "2"},
                 {1e20f, "1e+20"},
                 {-0.0f, "-0"},
                 {0.0f, "0"},
                 {FLT_TRUE_MIN, "1e-45"},
                 {FLT_MAX, "3.4028235e+38"},
                 {-1.5f, "-1.5"},
                 {0.3f, "0.3"},
                 {16777216.0f, "16777216"},
                 {1e-5f, "1e-05"},
                 {100.0f, "100"}};
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        char buf[SRV_F32_MAXLEN + 1];
        size_t n = srv_f32_to_str(cases[i].v, buf);
        buf[n] = '\0';
        assert_string_equal(buf, cases[i].s);
    }
}

/* No %.*g with fewer significant digits reads back to the same float32. */
static void test_f32_never_longer_than_shortest(void **state)
{
    (void)state;
    for (int k = 0; k < 2000; k++) {
        float v;
        do
            v = u2f((uint32_t)t_rnd());
        while (!isfinite(v));
        char buf[SRV_F32_MAXLEN + 1], alt[64];
        size_t n = srv_f32_to_str(v, buf);
        buf[n] = '\0';
        int digits = 0, lead = 1; /* significant digits */
        for (const char *c = buf; *c && *c != 'e'; c++) {
            if (*c == '0' && lead)
                continue;
            if (*c >= '1' && *c <= '9')
                lead = 0;
            digits += *c >= '0' && *c <= '9';
        }
        for (int p = 1; p <= 9; p++) {
            snprintf(alt, sizeof alt, "%.*g", p, (double)v);
            if (f2u(strtof(alt, NULL)) == f2u(v)) {
                /* ours may carry the trailing zeros of an integer ("100"), never more digits */
                if (!strchr(buf, '.') && !strchr(buf, 'e'))
                    break;
                if (digits > p)
                    fail_msg("%s is longer than %s", buf, alt);
                break;
            }
        }
    }
}

static void test_f64_round_trip(void **state)
{
    (void)state;
    const double vals[] = {0.0,     -0.0,         0.1,           1.0 / 3, DBL_MAX,
                           DBL_MIN, DBL_TRUE_MIN, -DBL_TRUE_MIN, 1e300,   9007199254740993.0,
                           2.0};
    size_t nv = sizeof vals / sizeof *vals;
    char buf[SRV_F64_MAXLEN + 1];
    for (size_t i = 0; i < nv + 200000; i++) {
        double v;
        if (i < nv)
            v = vals[i];
        else
            do
                v = u2d(t_rnd());
            while (!isfinite(v));
        size_t n = srv_f64_to_str(v, buf);
        assert_true(n > 0 && n <= SRV_F64_MAXLEN);
        buf[n] = '\0';
        if (d2u(strtod(buf, NULL)) != d2u(v))
            fail_msg("%a printed as %s", v, buf);
        const char *stop;
        double mine;
        assert_true(srv_f64_parse(buf, buf + n, &mine, &stop));
        assert_int_equal(d2u(mine), d2u(v));
    }
}

static void test_f64_shortest_text(void **state)
{
    (void)state;
    struct {
        double v;
        const char *s;
    } cases[] = {{0.1, "0.1"},
                 {5e-324, "5e-324"},
                 {1.0 / 3, "0.3333333333333333"},
                 {-0.0, "-0"},
                 {1e21, "1e+21"},
                 {DBL_MAX, "1.7976931348623157e+308"},
                 {(double)0.1f, "0.10000000149011612"}};
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        char buf[SRV_F64_MAXLEN + 1];
        size_t n = srv_f64_to_str(cases[i].v, buf);
        buf[n] = '\0';
        assert_string_equal(buf, cases[i].s);
    }
}

/* float32 text is read as float32 (never as double and then narrowed: two roundings). */
static void test_f32_read_rounds_once(void **state)
{
    (void)state;
    struct nn_err err;
    struct nn_tensor t;
    enum srv_form f;
    /* just above the midpoint between 1 and 1 + 2^-23: float32 rounds up, a double first
     * rounds to the midpoint and then to even (1) */
    assert_int_equal(t_tensor_of("{\"input\": [1.00000005960464477539062500001, 1e-45, -0, 1e-50]}",
                                 NN_F32, 0, &t, &f, &err),
                     NN_OK);
    assert_int_equal(f2u(((float *)t.data)[0]), 0x3f800001u);
    assert_int_equal(f2u(((float *)t.data)[1]), 1u);
    assert_int_equal(f2u(((float *)t.data)[2]), 0x80000000u);
    assert_int_equal(f2u(((float *)t.data)[3]), 0u); /* underflow rounds to zero */
    free(t.data);
}

static void test_f64_read_keeps_what_f32_cannot(void **state)
{
    (void)state;
    struct nn_err err;
    struct nn_tensor t;
    assert_int_equal(t_tensor_of("{\"input\": [1e39, 1e-320, -0.0]}", NN_F64, 0, &t, NULL, &err),
                     NN_OK);
    assert_true(((double *)t.data)[0] == 1e39);
    assert_true(((double *)t.data)[1] == 1e-320);
    assert_int_equal(d2u(((double *)t.data)[2]), d2u(-0.0));
    free(t.data);
}

/* The row readers say why they stopped and where. */
static void test_num_read_says_why_and_where(void **state)
{
    (void)state;
    const char *txt = "[1, 2e39, 3]";
    float f[3];
    double dv[3];
    const char *bad = NULL;
    enum srv_num_fail why = SRV_NUM_OK;
    assert_int_equal(srv_f32_read(txt, txt + strlen(txt), f, 3, &bad, &why), 1);
    assert_int_equal(why, SRV_NUM_RANGE);
    assert_ptr_equal(bad, txt + 4);
    assert_int_equal(srv_f64_read(txt, txt + strlen(txt), dv, 3, &bad, &why), 3);
    assert_true(dv[1] == 2e39);
    const char *syn = "[1, 2., 3]";
    why = SRV_NUM_OK;
    assert_int_equal(srv_f64_read(syn, syn + strlen(syn), dv, 3, &bad, &why), 1);
    assert_int_equal(why, SRV_NUM_SYNTAX);
    assert_ptr_equal(bad, syn + 4);
}

/* The row readers' inline fast path (Clinger's, with the float midpoint check) answers
 * exactly what glibc's correctly rounded strtof/strtod answer, bit for bit, on numbers of
 * every form a client sends: shortest float text, 9 and 17 digits, random mantissas and
 * exponents around the fast path's edges (19 digits, 2^53, 10^+-22), and float midpoints
 * (2^24 + 1 rounds to even; 1.784889042377472 rounds up, though its double is the midpoint). */
static uint64_t t_rng = 0x9e3779b97f4a7c15ull;
static uint64_t t_next(void)
{
    t_rng ^= t_rng << 13;
    t_rng ^= t_rng >> 7;
    t_rng ^= t_rng << 17;
    return t_rng;
}

static void test_num_read_matches_strtof(void **state)
{
    (void)state;
    enum { N = 200000 };
    char *txt = malloc((size_t)N * 40 + 2), *p = txt;
    float *f = malloc(N * sizeof *f);
    double *dv = malloc(N * sizeof *dv);
    assert_non_null(txt);
    assert_non_null(f);
    assert_non_null(dv);
    *p++ = '[';
    for (int i = 0; i < N; i++) {
        uint64_t r = t_next();
        float x;
        uint32_t u = (uint32_t)(r >> 32);
        memcpy(&x, &u, sizeof x);
        if (!isfinite(x))
            x = 1.5f;
        if (i)
            *p++ = ',';
        switch (i % 8) {
        case 0:
            p += srv_f32_to_str(x, p);
            break;
        case 1:
            p += sprintf(p, "%.9g", (double)x);
            break;
        case 2:
            p += sprintf(p, "%.17g", (double)x);
            break;
        case 3: /* a Gaussian-ish value, as a model's tensors are */
            p += srv_f32_to_str((float)((double)(int32_t)u / 2147483648.0 * 3.0), p);
            break;
        case 4: /* 1..20 digits, exponent -30..30, with and without a fraction */
            p += sprintf(p, "%s%llu%se%d", r & 1 ? "-" : "",
                         (unsigned long long)(t_next() % 10000000000000000000ull >>
                                              (t_next() % 64)),
                         r & 2 ? ".5" : "", (int)(t_next() % 49) - 30);
            break;
        case 5: /* around 2^53 */
            p += sprintf(p, "%llue%d", (unsigned long long)((1ull << 53) - 4 + (r % 8)),
                         (int)(t_next() % 45) - 22);
            break;
        case 6: /* a float midpoint: exact (2^k + 2^(k-24) * odd), or its 15-19 digit
                 * decimal neighbour, whose double can land on the midpoint itself */
            if (r & 1) {
                int k = 24 + (int)(t_next() % 29);
                p += sprintf(p, "%llu",
                             (unsigned long long)((1ull << k) +
                                                  (1ull << (k - 24)) * (2 * (t_next() % 1000) + 1)));
            } else {
                float lo = 1.0f + (float)(t_next() % (1u << 23)) * 0x1p-23f;
                double mid = ((double)lo + (double)nextafterf(lo, 2.0f)) / 2;
                p += sprintf(p, "%.*g", 15 + (int)(t_next() % 5), mid);
            }
            break;
        default:
            p += sprintf(p, "0.%06u%s", (unsigned)(r % 1000000), r & 4 ? "e-17" : "");
        }
    }
    *p++ = ']';
    const char *bad = NULL;
    enum srv_num_fail why = SRV_NUM_OK;
    assert_int_equal(srv_f32_read(txt, p, f, N, &bad, &why), N);
    assert_int_equal(srv_f64_read(txt, p, dv, N, &bad, &why), N);
    char *q = txt + 1;
    for (int i = 0; i < N; i++) {
        char *e1, *e2;
        float want = strtof(q, &e1);
        double wantd = strtod(q, &e2);
        assert_ptr_equal(e1, e2);
        if (memcmp(&want, &f[i], sizeof want) || memcmp(&wantd, &dv[i], sizeof wantd)) {
            int len = (int)(e1 - q);
            fail_msg("value %d \"%.*s\": float %a (strtof %a), double %a (strtod %a)", i, len, q,
                     (double)f[i], (double)want, dv[i], wantd);
        }
        q = e1 + 1;
    }
    free(txt);
    free(f);
    free(dv);
}

static void test_row_to_str_stops_at_nonfinite(void **state)
{
    (void)state;
    float f[4] = {1, 0.5f, -INFINITY, 2};
    double dv[3] = {1, 2, NAN};
    char out[4 * (SRV_F64_MAXLEN + 1)];
    size_t bad = 99;
    assert_int_equal(srv_f32_row_to_str(out, f, 2, &bad), 5);
    assert_memory_equal(out, "1,0.5", 5);
    assert_int_equal(srv_f32_row_to_str(out, f, 4, &bad), SIZE_MAX);
    assert_int_equal(bad, 2);
    assert_int_equal(srv_f64_row_to_str(out, dv, 3, &bad), SIZE_MAX);
    assert_int_equal(bad, 2);
}

/* ---- the parser: errors --------------------------------------------------------------- */
static void test_parse_empty_body(void **state)
{
    (void)state;
    t_parse_fails("", "invalid JSON: empty body");
    t_parse_fails("   \n\t ", "invalid JSON: empty body");
    t_parse_fails_n(NULL, 0, NN_EINVAL, "invalid JSON: empty body");
}

static void test_parse_data_after_the_value(void **state)
{
    (void)state;
    t_parse_fails("{\"a\": 1} x",
                  "invalid JSON at byte 9: unexpected data after the JSON value, got 'x'");
    t_parse_fails("{\"a\": 1}}", "invalid JSON at byte 8: unexpected data after the JSON value");
    t_parse_fails("[1, 2] [3]", "invalid JSON at byte 7: unexpected data after the JSON value");
    t_parse_fails("[[1],[2]][", "invalid JSON at byte 9: unexpected data after the JSON value");
    t_parse_fails("\"s\" \"t\"", "invalid JSON at byte 4: unexpected data");
}

static void test_parse_unexpected_end(void **state)
{
    (void)state;
    t_parse_fails("{\"a\": [1, 2", "invalid JSON at byte 11: unexpected end of input");
    t_parse_fails("{\"a\": [1, \"x\"", "invalid JSON at byte 13: unexpected end of input");
    t_parse_fails("{\"a\": 1", "invalid JSON at byte 7: unexpected end of input");
    t_parse_fails("{\"a\":", "invalid JSON at byte 5: unexpected end of input");
    t_parse_fails("[", "invalid JSON at byte 1: unexpected end of input");
    t_parse_fails("{\"a\": \"\\", "invalid JSON at byte 8: unexpected end of input");
}

static void test_parse_object_syntax(void **state)
{
    (void)state;
    t_parse_fails("{\"a\" 1}", "invalid JSON at byte 5: expected ':', got '1'");
    t_parse_fails("{a: 1}", "invalid JSON at byte 1: expected a string key, got 'a'");
    t_parse_fails("{\"a\": 1,}", "invalid JSON at byte 8: expected a string key, got '}'");
    t_parse_fails("{\"a\": 1 \"b\": 2}", "invalid JSON at byte 8: expected ',' or '}', got '\"'");
    t_parse_fails("{\"a\": 1]", "expected ',' or '}', got ']'");
}

/* Arrays that hold a non-number keep the generic grammar, checked at parse. */
static void test_parse_array_syntax(void **state)
{
    (void)state;
    t_parse_fails("{\"a\": [1, \"x\",]}", "invalid JSON at byte 14: expected a value, got ']'");
    t_parse_fails("{\"a\": [,1]}", "invalid JSON at byte 7: expected a value, got ','");
    t_parse_fails("{\"a\": [1, 2}", "invalid JSON at byte 11: expected ',' or ']', got '}'");
    t_parse_fails("{\"a\": [\"x\" 1]}", "invalid JSON at byte 11: expected ',' or ']', got '1'");
    t_parse_fails("[[1], [2] [3]]", "invalid JSON at byte 10: expected ',' or ']', got '['");
}

static void test_parse_literals(void **state)
{
    (void)state;
    t_parse_fails("{\"a\": tru}", "invalid JSON at byte 6: expected a value, got 't'");
    t_parse_fails("[nul]", "invalid JSON at byte 1: expected a value, got 'n'");
    t_parse_fails("'a'", "invalid JSON at byte 0: expected a value, got '''");
    t_parse_fails("True", "invalid JSON at byte 0: expected a value, got 'T'");
    struct srv_json *d = t_parse("[true, false, null]");
    srv_jv r = srv_json_root(d);
    assert_int_equal(srv_json_type(d, r), SRV_J_ARRAY);
    assert_int_equal(srv_json_type(d, t_at(d, r, 0)), SRV_J_BOOL);
    assert_true(srv_json_is_true(d, t_at(d, r, 0)));
    assert_false(srv_json_is_true(d, t_at(d, r, 1)));
    assert_int_equal(srv_json_type(d, t_at(d, r, 2)), SRV_J_NULL);
    srv_json_free(d);
}

static void test_parse_string_escape_errors(void **state)
{
    (void)state;
    t_parse_fails("{\"a\": \"x}", "invalid JSON at byte 9: unterminated string");
    t_parse_fails("{\"a\": \"\\x\"}", "invalid JSON at byte 7: invalid escape in string");
    t_parse_fails("{\"a\": \"\\u12\"}", "invalid JSON at byte 7: invalid \\u escape in string");
    t_parse_fails("{\"a\": \"\\u12g4\"}", "invalid \\u escape");
    t_parse_fails("{\"a\": \"\\ud800\"}", "invalid \\u escape");        /* lone high surrogate */
    t_parse_fails("{\"a\": \"\\udc00\"}", "invalid \\u escape");        /* lone low surrogate */
    t_parse_fails("{\"a\": \"\\ud800\\u0041\"}", "invalid \\u escape"); /* high, not low */
    t_parse_fails("{\"\\q\": 1}", "invalid JSON at byte 2: invalid escape in string");
}

static void test_parse_u0000_refused(void **state)
{
    (void)state;
    t_parse_fails("{\"a\": \"x\\u0000y\"}",
                  "invalid JSON at byte 8: \\u0000 in strings is not supported");
    t_parse_fails("{\"\\u0000\": 1}", "\\u0000 in strings is not supported");
}

static void test_parse_control_character_refused(void **state)
{
    (void)state;
    t_parse_fails("{\"a\": \"tab\there\"}",
                  "invalid JSON at byte 10: control character 0x09 in string (escape it)");
    t_parse_fails("{\"a\": \"x\ny\"}", "control character 0x0a");
    t_parse_fails("{\"a\x1f\": 1}", "control character 0x1f");
}

/* NaN and Infinity (signed or not, scalar or in an array) get a hint. */
static void test_parse_nan_and_infinity_hint(void **state)
{
    (void)state;
    const char *hint = "expected a value (NaN and Infinity are not JSON numbers, and relud takes "
                       "finite values only)";
    const char *bodies[] = {"{\"a\": NaN}",         "{\"a\": Infinity}",
                            "{\"a\": -Infinity}",   "{\"a\": [NaN]}",
                            "{\"a\": [1, NaN]}",    "{\"a\": [1, Infinity, 2]}",
                            "{\"a\": [-Infinity]}", "{\"a\": [[1], [2, -Infinity]]}",
                            "{\"a\": +Infinity}",   "{\"a\": [1, -NaN]}"};
    for (size_t i = 0; i < sizeof bodies / sizeof *bodies; i++)
        t_parse_fails(bodies[i], hint);
    t_parse_fails("{\"a\": NaN}", "invalid JSON at byte 6: expected a value (NaN");
    t_parse_fails("{\"a\": [1, -Infinity]}", "invalid JSON at byte 10: expected a value (NaN");
}

static void test_parse_valid_documents(void **state)
{
    (void)state;
    const char *good[] = {" \r\n\t{ \"a\" : [ 1 , 2 ] , \"b\" : { } , \"c\" : [ ] } \n",
                          "true",
                          "null",
                          "\"str\"",
                          "-0.5",
                          "[]",
                          "{}",
                          "[[]]",
                          "[{}, [], \"\", 0]",
                          "{\"a\": {\"b\": {\"c\": [1, {\"d\": null}]}}}"};
    for (size_t i = 0; i < sizeof good / sizeof *good; i++) {
        struct srv_json *d = t_parse(good[i]);
        cJSON *c = cJSON_Parse(good[i]);
        assert_non_null(c);
        if (!t_same(d, srv_json_root(d), c))
            fail_msg("%s reads differently from cJSON", good[i]);
        cJSON_Delete(c);
        srv_json_free(d);
    }
}

static void test_parse_unescapes_strings(void **state)
{
    (void)state;
    struct srv_json *d =
        t_parse("{\"a\": \"\\ud83d\\ude00 \\u00e9 \\u20AC \\\" \\\\ \\/ \\b\\f\\n\\r\\t\"}");
    char *s = srv_json_strdup(d, t_get(d, "a"));
    assert_string_equal(s, "\xf0\x9f\x98\x80 \xc3\xa9 \xe2\x82\xac \" \\ / \b\f\n\r\t");
    assert_true(srv_json_str_is(d, t_get(d, "a"), s));
    assert_false(srv_json_str_is(d, t_get(d, "a"), "x"));
    free(s);
    srv_json_free(d);
}

static void test_parse_nul_bytes(void **state)
{
    (void)state;
    t_parse_fails_n("{\"a\": 1}\0", 9, NN_EINVAL,
                    "invalid JSON at byte 8: unexpected data after the JSON value, got byte 0x00");
    t_parse_fails_n("{\"a\": \"x\0y\"}", 12, NN_EINVAL,
                    "invalid JSON at byte 8: control character 0x00");
    t_parse_fails_n("{\"a\": [1,\0 2]}", 14, NN_EINVAL, "invalid JSON at byte 9: expected a value");
    t_parse_fails_n("\0", 1, NN_EINVAL, "invalid JSON at byte 0: expected a value, got byte 0x00");
    t_parse_fails_n("{\"a\0\": 1}", 9, NN_EINVAL, "invalid JSON at byte 3: control character 0x00");
}

/* The body is taken by its length, not up to a NUL. */
static void test_parse_reads_by_length(void **state)
{
    (void)state;
    t_parse_fails_n("{\"a\": 1}", 5, NN_EINVAL, "invalid JSON at byte 5: unexpected end of input");
    struct nn_err err;
    struct srv_json *d;
    assert_int_equal(srv_json_parse("[1, 2] garbage", 6, 0, &d, &err), NN_OK);
    assert_int_equal(srv_json_count(d, srv_json_root(d)), 2);
    srv_json_free(d);
}

/* ---- the parser: UTF-8 ------------------------------------------------------------------ */
static void test_utf8_valid_strings_and_keys(void **state)
{
    (void)state;
    struct srv_json *d = t_parse("{\"caf\xc3\xa9\": \"\xe2\x82\xac \xf0\x9f\x98\x80 "
                                 "\xf4\x8f\xbf\xbf \xed\x9f\xbf \xee\x80\x80\"}");
    srv_jv v = t_get(d, "caf\xc3\xa9");
    assert_int_equal(srv_json_type(d, v), SRV_J_STRING);
    assert_true(srv_json_str_is(d, v,
                                "\xe2\x82\xac \xf0\x9f\x98\x80 \xf4\x8f\xbf\xbf \xed\x9f\xbf "
                                "\xee\x80\x80"));
    srv_json_free(d);
}

static void test_utf8_invalid_sequences_refused(void **state)
{
    (void)state;
    const char *bad[] = {"\xff",     "\xc0\x80",     "\xc1\xbf",         "\xc3",
                         "\xe2\x82", "\xed\xa0\x80", "\xf4\x90\x80\x80", "\xf8\x88\x80\x80\x80",
                         "\x80",     "\xe0\x80\xaf", "\xf0\x80\x80\xaf", "\xc3\x28"};
    char body[64];
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        snprintf(body, sizeof body, "{\"a\": \"x%sy\"}", bad[i]);
        t_parse_fails(body, "invalid JSON at byte 8: invalid UTF-8 in string");
        snprintf(body, sizeof body, "{\"x%sy\": 1}", bad[i]);
        t_parse_fails(body, "invalid JSON at byte 3: invalid UTF-8 in string");
    }
}

static void test_utf8_outside_strings_refused(void **state)
{
    (void)state;
    t_parse_fails("{\"a\": 1, \xc3\xa9: 2}", "invalid JSON at byte 9: expected a string key, got "
                                             "byte 0xc3");
    t_parse_fails("\xef\xbb\xbf{}", "invalid JSON at byte 0: expected a value, got byte 0xef");
}

/* ---- the parser: numbers ---------------------------------------------------------------- */
/* Texts that are not JSON numbers. */
static const char *const t_bad_numbers[] = {
    "01",  "1.",    ".5",   "+1",    "NaN",   "Infinity", "-Infinity", "-",
    "1e",  "1e+",   "0x10", "1.2.3", "--1",   "1e5e",     "- 1",       "nan",
    "inf", "1.e5",  "00",   "-01",   "1e5.5", "0.",       "1_000",     "\xd9\xa1",
    "1-2", "1e--2", "2+",   "-.5",   "1ee5",  "0e",       "-0x1"};

/* A scalar number is checked when the document is parsed. */
static void test_scalar_number_grammar_at_parse(void **state)
{
    (void)state;
    char body[128];
    for (size_t i = 0; i < sizeof t_bad_numbers / sizeof *t_bad_numbers; i++) {
        snprintf(body, sizeof body, "{\"slope\": %s}", t_bad_numbers[i]);
        t_parse_fails(body, "invalid JSON at byte");
    }
    t_parse_fails("{\"s\": 01}", "invalid JSON at byte 7: invalid number");
    t_parse_fails("{\"s\": 1.}", "invalid JSON at byte 8: invalid number");
    t_parse_fails("{\"s\": 1e+}", "invalid JSON at byte 9: invalid number");
    t_parse_fails("[1x]", "invalid JSON at byte 2: expected ',' or ']', got 'x'");
}

/* A bad number in a numeric array fails either at parse (a byte no number holds) or when
 * it is read (made of number bytes: its grammar is checked then), in every type. */
static void test_numarray_number_grammar(void **state)
{
    (void)state;
    char body[128];
    for (size_t i = 0; i < sizeof t_bad_numbers / sizeof *t_bad_numbers; i++) {
        for (int inner = 0; inner < 2; inner++) {
            snprintf(body, sizeof body,
                     inner ? "{\"input\": [[1, %s, 2]]}" : "{\"input\": [1, %s, 2]}",
                     t_bad_numbers[i]);
            struct nn_err err = {{0}};
            struct srv_json *d = NULL;
            if (srv_json_parse(body, strlen(body), 0, &d, &err) != NN_OK) {
                assert_contains(err.msg, "invalid JSON at byte");
                continue;
            }
            for (int t = 0; t < SRV_NUM_COUNT; t++)
                t_read_fails(body, "input", (enum srv_num)t, "invalid JSON at byte");
            srv_json_free(d);
        }
    }
}

/* Made of number bytes, these parse (shape [3]) and fail when read. */
static void test_numarray_grammar_checked_when_read(void **state)
{
    (void)state;
    const char *lazy[] = {"01",   "1.", "-",   "1e",    "1e+", "1.2.3", "--1",   "1e5e", "- 1",
                          "1.e5", "00", "-01", "1e5.5", "0.",  "1-2",   "1e--2", "2+",   "1ee5"};
    char body[128];
    for (size_t i = 0; i < sizeof lazy / sizeof *lazy; i++) {
        snprintf(body, sizeof body, "{\"input\": [1, %s, 2]}", lazy[i]);
        struct srv_json *d = t_parse(body);
        size_t sh[NN_MAX_DIMS];
        int nd;
        assert_true(srv_json_numarray(d, t_get(d, "input"), sh, &nd, NULL));
        assert_int_equal(nd, 1);
        assert_int_equal(sh[0], 3);
        srv_json_free(d);
        for (int t = 0; t < SRV_NUM_COUNT; t++)
            t_read_fails(body, "input", (enum srv_num)t, "invalid JSON at byte");
    }
}

/* The message names the byte where the grammar breaks, whatever type is read. */
static void test_numarray_error_names_the_byte(void **state)
{
    (void)state;
    for (int t = 0; t < SRV_NUM_COUNT; t++) {
        t_read_fails("{\"input\": [1, 01]}", "input", (enum srv_num)t,
                     "invalid JSON at byte 15: invalid number");
        t_read_fails("{\"input\": [1, 2.]}", "input", (enum srv_num)t,
                     "invalid JSON at byte 16: invalid number");
        t_read_fails("{\"input\": [[1e+], [2]]}", "input", (enum srv_num)t,
                     "invalid JSON at byte 15: invalid number");
    }
}

/* Separators inside a numeric array are checked when it is read: the parse only counts
 * commas, so each of these parses with a shape that the text does not hold. */
static void test_numarray_separators_checked_when_read(void **state)
{
    (void)state;
    for (int t = 0; t < SRV_NUM_COUNT; t++) {
        enum srv_num ty = (enum srv_num)t;
        t_read_fails("[1 2]", NULL, ty, "invalid JSON at byte 3: invalid number");
        t_read_fails("[1,,2]", NULL, ty, "invalid JSON at byte 3: invalid number");
        t_read_fails("[1,2,]", NULL, ty, "invalid JSON at byte 5: invalid number");
        t_read_fails("[1, 2 3]", NULL, ty, "invalid JSON at byte 6: invalid number");
        t_read_fails("[1 2, 3]", NULL, ty, "invalid JSON at byte 3: invalid number");
        t_read_fails("[1 -2]", NULL, ty, "invalid JSON at byte 3: invalid number");
        t_read_fails("[[1, 2], [3 4, 5]]", NULL, ty, "invalid JSON at byte 12: invalid number");
        t_read_fails("[[1, 2], [3,]]", NULL, ty, "invalid JSON at byte 12: invalid number");
        t_read_fails("[[1, 2,], [3, 4, 5]]", NULL, ty, "invalid JSON at byte 7: invalid number");
    }
}

static void test_numarray_good_numbers(void **state)
{
    (void)state;
    const char *good[] = {
        "0",       "-0",          "0.0", "1e5", "1E+5",  "1e-5", "-0.0e-0", "12345678901234567890",
        "1.5E300", "-123.456e-7", "0.5", "1E1", "1e-400"};
    char body[128];
    for (size_t i = 0; i < sizeof good / sizeof *good; i++) {
        snprintf(body, sizeof body, "{\"input\": [%s, %s], \"s\": %s}", good[i], good[i], good[i]);
        struct srv_json *d = t_parse(body);
        double v[2], s;
        struct nn_err err;
        assert_int_equal(srv_json_read(d, t_get(d, "input"), SRV_F64, v, 2, "input", &err), NN_OK);
        assert_true(srv_json_number(d, t_get(d, "s"), &s));
        double want = strtod(good[i], NULL);
        assert_int_equal(d2u(v[0]), d2u(want));
        assert_int_equal(d2u(v[1]), d2u(want));
        assert_int_equal(d2u(s), d2u(want));
        srv_json_free(d);
    }
}

/* Scalars stay numbers (not numeric arrays); one that overflows a double is refused at
 * parse, named by its path. */
static void test_scalar_numbers(void **state)
{
    (void)state;
    struct srv_json *d = t_parse("{\"negative_slope\": 0.2, \"n\": -3}");
    double v;
    assert_int_equal(srv_json_type(d, t_get(d, "negative_slope")), SRV_J_NUMBER);
    assert_true(srv_json_number(d, t_get(d, "negative_slope"), &v));
    assert_true(v == 0.2);
    assert_true(srv_json_number(d, t_get(d, "n"), &v));
    assert_true(v == -3);
    assert_false(srv_json_number(d, srv_json_root(d), &v));
    assert_int_equal(t_count_numarrays(d, srv_json_root(d)), 0);
    srv_json_free(d);
    t_parse_fails("{\"layers\": [{\"alpha\": 1e400}]}", "layers[0].alpha: 1e400 is out of range");
    t_parse_fails("[\"x\", -1e309]", "[1]: -1e309 is out of range");
    t_parse_fails("1e999", "1e999 is out of range");
}

/* ---- the parser: structure --------------------------------------------------------------- */
static void test_strings_holding_brackets(void **state)
{
    (void)state;
    struct srv_json *d = t_parse("{\"a\": \"[1, 2\", \"b\\\"[\": \"x\\\\\\\"]\", \"c]\": \"]]\", "
                                 "\"input\": [[1, 2]], \"s\": \"[3]\"}");
    assert_int_equal(t_count_numarrays(d, srv_json_root(d)), 1);
    assert_true(srv_json_str_is(d, t_get(d, "a"), "[1, 2"));
    assert_true(srv_json_str_is(d, t_get(d, "b\"["), "x\\\"]"));
    assert_true(srv_json_str_is(d, t_get(d, "c]"), "]]"));
    assert_true(srv_json_str_is(d, t_get(d, "s"), "[3]"));
    size_t shape[NN_MAX_DIMS], n;
    int nd;
    assert_true(srv_json_numarray(d, t_get(d, "input"), shape, &nd, &n));
    assert_int_equal(nd, 2);
    assert_int_equal(shape[0], 1);
    assert_int_equal(shape[1], 2);
    assert_false(srv_json_numarray(d, t_get(d, "s"), shape, &nd, &n));
    srv_json_free(d);
}

/* An array holding a non-number is generic; its numeric children are numeric arrays. */
static void test_mixed_arrays(void **state)
{
    (void)state;
    struct srv_json *d =
        t_parse("{\"layers\": [{\"type\": \"linear\", \"weight\": [[1, 2]], "
                "\"bias\": [3]}, [4, 5], \"x\", [[6], [7]]], \"m\": [1, [2], \"s\"]}");
    /* weight, bias, [4, 5], [[6], [7]], m's [2] */
    assert_int_equal(t_count_numarrays(d, srv_json_root(d)), 5);
    srv_jv layers = t_get(d, "layers");
    assert_int_equal(srv_json_type(d, layers), SRV_J_ARRAY);
    assert_int_equal(srv_json_count(d, layers), 4);
    srv_jv l0 = t_at(d, layers, 0);
    assert_true(srv_json_str_is(d, srv_json_get(d, l0, "type"), "linear"));
    size_t shape[NN_MAX_DIMS], n;
    int nd;
    assert_true(srv_json_numarray(d, t_at(d, layers, 3), shape, &nd, &n));
    assert_int_equal(nd, 2);
    assert_int_equal(n, 2);
    double bias;
    struct nn_err err;
    assert_int_equal(srv_json_read(d, srv_json_get(d, l0, "bias"), SRV_F64, &bias, 1, "bias", &err),
                     NN_OK);
    assert_true(bias == 3.0);
    srv_jv m = t_get(d, "m");
    assert_int_equal(srv_json_type(d, m), SRV_J_ARRAY);
    assert_int_equal(srv_json_type(d, t_at(d, m, 0)), SRV_J_NUMBER);
    assert_int_equal(srv_json_type(d, t_at(d, m, 1)), SRV_J_NUMARRAY);
    assert_int_equal(srv_json_type(d, t_at(d, m, 2)), SRV_J_STRING);
    srv_json_free(d);
}

/* An array that would be ragged but holds a string (or an object, a literal) is not a
 * numeric array: it is generic, not an error. */
static void test_ragged_with_a_string_is_generic(void **state)
{
    (void)state;
    const char *bodies[] = {"{\"x\": [[1, 2], [3], \"s\"]}", "{\"x\": [1, [2], \"s\"]}",
                            "{\"x\": [[1], 2, {}]}", "{\"x\": [[[1]], [[2, 3]], null]}",
                            "{\"x\": [[1, 2], [3], [true]]}"};
    for (size_t i = 0; i < sizeof bodies / sizeof *bodies; i++) {
        struct srv_json *d = t_parse(bodies[i]);
        assert_int_equal(srv_json_type(d, t_get(d, "x")), SRV_J_ARRAY);
        cJSON *c = cJSON_Parse(bodies[i]);
        assert_true(t_same(d, srv_json_root(d), c));
        cJSON_Delete(c);
        srv_json_free(d);
    }
}

static void test_ragged_messages(void **state)
{
    (void)state;
    t_parse_fails("{\"input\": [[1, 2], [3]]}",
                  "input: ragged array: input[1] has shape [1] but input[0] has shape [2]");
    t_parse_fails("{\"input\": [[1, 2], 3]}",
                  "input: ragged array: input[1] is a number but input[0] is an array");
    t_parse_fails("{\"input\": [1, [2]]}",
                  "input: ragged array: input[1] is an array but input[0] is a number");
    t_parse_fails("{\"layers\": [{\"weight\": [[[1], [2]], [[3], [4, 5]]]}]}",
                  "layers[0].weight: ragged array: layers[0].weight[1][1] has shape [2] but "
                  "layers[0].weight[1][0] has shape [1]");
    t_parse_fails("{\"x\": [[], [1]]}",
                  "x: ragged array: x[1] has shape [1] but x[0] has shape [0]");
    t_parse_fails("[[1], [1, 2]]",
                  "ragged array at byte 0: [1] has shape [2] but [0] has shape [1]");
    t_parse_fails("[[[1, 2]], [[3, 4], [5, 6]]]",
                  "ragged array at byte 0: [1] has shape [2, 2] but [0] has shape [1, 2]");
}

/* A ragged numeric child of a generic array is still an error, named by its path. */
static void test_ragged_child_of_generic_array(void **state)
{
    (void)state;
    t_parse_fails("{\"x\": [\"s\", [[1], [2, 3]]]}",
                  "x[1]: ragged array: x[1][1] has shape [2] but x[1][0] has shape [1]");
    t_parse_fails("[{\"a\": [[1], 2]}]",
                  "[0].a: ragged array: [0].a[1] is a number but [0].a[0] is an array");
}

/* Rank 8 is a tensor; rank 9 is a generic array holding a rank-8 numeric array. */
static void test_rank_over_8_is_generic(void **state)
{
    (void)state;
    struct nn_err err;
    struct nn_tensor t;
    assert_int_equal(t_tensor_of("{\"input\": [[[[[[[[1]]]]]]]]}", NN_F32, 0, &t, NULL, &err),
                     NN_OK);
    assert_int_equal(t.ndim, 8);
    free(t.data);
    struct srv_json *d = t_parse("{\"input\": [[[[[[[[[1, 2]]]]]]]]]}");
    srv_jv in = t_get(d, "input");
    assert_int_equal(srv_json_type(d, in), SRV_J_ARRAY);
    int nd;
    assert_true(srv_json_numarray(d, t_at(d, in, 0), NULL, &nd, NULL));
    assert_int_equal(nd, 8);
    srv_json_free(d);
    t_tensor_fails("{\"input\": [[[[[[[[[1]]]]]]]]]}", NN_EINVAL, "input: expected a tensor");
}

static void test_nesting_depth_64(void **state)
{
    (void)state;
    size_t n = 100000;
    char *s = malloc(2 * n + 8);
    assert_non_null(s);
    memset(s, '[', n);
    t_parse_fails_n(s, n, NN_EINVAL, "invalid JSON at byte 64: nesting deeper than 64");
    memset(s, ']', 2 * n);
    memset(s, '[', n);
    t_parse_fails_n(s, 2 * n, NN_EINVAL, "nesting deeper than 64");
    for (size_t i = 0; i < n / 5; i++)
        memcpy(s + 5 * i, "{\"a\":", 5);
    t_parse_fails_n(s, n, NN_EINVAL, "invalid JSON at byte 320: nesting deeper than 64");
    /* 64 generic levels (objects) around a rank-8 numeric array: fine; 65: too deep */
    for (int depth = 64; depth <= 65; depth++) {
        size_t k = 0;
        for (int i = 0; i < depth; i++)
            k += (size_t)sprintf(s + k, "{\"a\":");
        k += (size_t)sprintf(s + k, "[[[[[[[[1]]]]]]]]");
        for (int i = 0; i < depth; i++)
            s[k++] = '}';
        if (depth == 64) {
            struct nn_err err;
            struct srv_json *d;
            assert_int_equal(srv_json_parse(s, k, 0, &d, &err), NN_OK);
            srv_json_free(d);
        } else {
            t_parse_fails_n(s, k, NN_EINVAL, "nesting deeper than 64");
        }
    }
    /* [[...[1]...]] 64 + 8 deep: the outer 64 are generic, the inner 8 a numeric array */
    for (int depth = 64 + 8; depth <= 65 + 8; depth++) {
        size_t k = 0;
        for (int i = 0; i < depth; i++)
            s[k++] = '[';
        s[k++] = '1';
        for (int i = 0; i < depth; i++)
            s[k++] = ']';
        if (depth == 64 + 8) {
            struct nn_err err;
            struct srv_json *d;
            assert_int_equal(srv_json_parse(s, k, 0, &d, &err), NN_OK);
            assert_int_equal(t_count_numarrays(d, srv_json_root(d)), 1);
            srv_json_free(d);
        } else {
            t_parse_fails_n(s, k, NN_EINVAL, "nesting deeper than 64");
        }
    }
    free(s);
}

static void test_duplicate_keys(void **state)
{
    (void)state;
    t_parse_fails("{\"input\": [1], \"input\": [2]}", "duplicate key \"input\"");
    t_parse_fails(
        "{\"layers\": [{\"type\": \"relu\"}, {\"bias\": 1, \"type\": \"x\", \"bias\": 2}]}",
        "layers[1]: duplicate key \"bias\"");
    t_parse_fails("{\"a\": {\"b\": {\"c\": 1, \"c\": 1}}}", "a.b: duplicate key \"c\"");
    struct srv_json *d = t_parse("{\"a\": {\"x\": 1}, \"b\": {\"x\": 1}, \"A\": 1}");
    srv_json_free(d);
}

/* Keys are compared after unescaping: "first wins" and "last wins" readers cannot disagree. */
static void test_duplicate_keys_after_unescaping(void **state)
{
    (void)state;
    t_parse_fails("{\"a\": 1, \"\\u0061\": 2}", "duplicate key \"a\"");
    t_parse_fails("{\"\\u00e9\": 1, \"\xc3\xa9\": 2}", "duplicate key \"\xc3\xa9\"");
    t_parse_fails("{\"a/b\": 1, \"a\\/b\": 2}", "duplicate key \"a/b\"");
    t_parse_fails("{\"\\ud83d\\ude00\": 1, \"\xf0\x9f\x98\x80\": 2}", "duplicate key");
    struct srv_json *d = t_parse("{\"a\": 1, \"\\u0062\": 2, \"a\\n\": 3}");
    srv_json_free(d);
}

/* Many keys (the sorted path). */
static void test_duplicate_keys_many(void **state)
{
    (void)state;
    char *s = malloc(64 * 1000);
    assert_non_null(s);
    size_t o = (size_t)sprintf(s, "{");
    for (int i = 0; i < 1000; i++)
        o += (size_t)sprintf(s + o, "%s\"k%d\": %d", i ? "," : "", i, i);
    o += (size_t)sprintf(s + o, "}");
    srv_json_free(t_parse(s));
    o -= 1;
    o += (size_t)sprintf(s + o, ", \"k\\u0035\\u00300\": 1}");
    t_parse_fails(s, "duplicate key \"k500\"");
    free(s);
}

/* ---- the parser: caps and memory ---------------------------------------------------------- */
static void test_max_values_cap(void **state)
{
    (void)state;
    const char *body = "{\"a\": [1, 2, 3], \"b\": [\"x\", 1], \"c\": null}"; /* 6 values */
    struct nn_err err;
    struct srv_json *d = NULL;
    assert_int_equal(srv_json_parse(body, strlen(body), 6, &d, &err), NN_OK);
    srv_json_free(d);
    assert_int_equal(srv_json_parse(body, strlen(body), 5, &d, &err), NN_ETOOBIG);
    assert_null(d);
    assert_string_equal(err.msg, "body: more than max_json_values (5) JSON values (numeric arrays "
                                 "count as one)");
    /* a numeric array is one value, whatever its size */
    char *big = malloc(2 * 100000 + 8);
    size_t o = 0;
    big[o++] = '[';
    for (int i = 0; i < 100000; i++)
        o += (size_t)sprintf(big + o, "%s%d", i ? "," : "", i % 10);
    big[o++] = ']';
    assert_int_equal(srv_json_parse(big, o, 1, &d, &err), NN_OK);
    srv_json_free(d);
    free(big);
}

/* Past the cap the parse stops before it allocates for the values: a body of a million
 * values under a cap of 1000 never asks for more than the cap's nodes. */
static void test_max_values_counted_before_allocation(void **state)
{
    (void)state;
    if (!HAVE_ALLOC_HOOK)
        skip();
    size_t n = 1000000, o = 0;
    char *body = malloc(3 * n + 8);
    assert_non_null(body);
    body[o++] = '[';
    for (size_t i = 0; i < n; i++) {
        memcpy(body + o, i ? ",\"\"" : "\"\"", i ? 3 : 2);
        o += i ? 3 : 2;
    }
    body[o++] = ']';
    struct nn_err err;
    struct srv_json *d = NULL;
    t_arm(0);
    enum nn_status st = srv_json_parse(body, o, 1000, &d, &err);
    size_t capped = t_biggest;
    t_arm(0);
    enum nn_status st2 = srv_json_parse(body, o, 0, &d, &err);
    size_t uncapped = t_biggest;
    t_disarm();
    srv_json_free(d);
    free(body);
    assert_int_equal(st, NN_ETOOBIG);
    assert_int_equal(st2, NN_OK);
    if (capped > 1000 * 64)
        fail_msg("a cap of 1000 values asked for %zu bytes at once", capped);
    if (uncapped < n * 16)
        fail_msg("the uncapped parse asked for %zu bytes: this test measures nothing", uncapped);
}

/* Out of memory at any allocation of a parse is NN_ENOMEM, never a crash or a leak. */
static void test_parse_out_of_memory(void **state)
{
    (void)state;
    if (!HAVE_ALLOC_HOOK)
        skip();
    char body[4096];
    size_t o = (size_t)sprintf(body, "{\"input\": [[1, 2], [3, 4]], \"s\": \"\\u00e9\", \"l\": [");
    for (int i = 0; i < 40; i++)
        o += (size_t)sprintf(body + o, "%s{\"k%d\": [%d], \"k\\u0030\": 1, \"x\": \"y\"}",
                             i ? "," : "", i + 1, i);
    sprintf(body + o, "], \"z\": [1, [2], \"t\"]}");
    int fails = 0;
    for (long at = 1;; at++) {
        struct nn_err err = {{0}};
        struct srv_json *d = NULL;
        t_arm(at);
        enum nn_status st = srv_json_parse(body, strlen(body), 0, &d, &err);
        int failed = t_failed;
        t_disarm();
        if (!failed) {
            assert_int_equal(st, NN_OK);
            srv_json_free(d);
            break;
        }
        fails++;
        assert_int_equal(st, NN_ENOMEM);
        assert_null(d);
        assert_string_equal(err.msg, "out of memory");
    }
    assert_true(fails >= 3);
}

/* ---- accessors --------------------------------------------------------------------------- */
static void test_get_with_escaped_keys(void **state)
{
    (void)state;
    struct srv_json *d =
        t_parse("{\"a\\\"b\": 1, \"\\u0063\": 2, \"caf\\u00e9\": 3, \"n\\nl\": 4, \"plain\": 5}");
    srv_jv r = srv_json_root(d);
    double v;
    assert_true(srv_json_number(d, srv_json_get(d, r, "a\"b"), &v) && v == 1);
    assert_true(srv_json_number(d, srv_json_get(d, r, "c"), &v) && v == 2);
    assert_true(srv_json_number(d, srv_json_get(d, r, "caf\xc3\xa9"), &v) && v == 3);
    assert_true(srv_json_number(d, srv_json_get(d, r, "n\nl"), &v) && v == 4);
    assert_true(srv_json_number(d, srv_json_get(d, r, "plain"), &v) && v == 5);
    assert_int_equal(srv_json_get(d, r, "\\u0063"), 0);
    assert_int_equal(srv_json_get(d, r, "caf"), 0);
    assert_int_equal(srv_json_get(d, r, "missing"), 0);
    assert_true(srv_json_key_is(d, t_at(d, r, 1), "c"));
    assert_false(srv_json_key_is(d, t_at(d, r, 1), "\\u0063"));
    assert_false(srv_json_key_is(d, r, "c")); /* the root has no key */
    /* get on a non-object */
    struct srv_json *a = t_parse("[{\"c\": 1}]");
    assert_int_equal(srv_json_get(a, srv_json_root(a), "c"), 0);
    srv_json_free(a);
    srv_json_free(d);
}

static void test_key_unescaped_and_cut(void **state)
{
    (void)state;
    char body[512], want[128];
    size_t o = (size_t)sprintf(body, "{\"x");
    for (int i = 0; i < 40; i++)
        o += (size_t)sprintf(body + o, "\\u20ac"); /* the key: "x" and 40 euro signs */
    sprintf(body + o, "\": 1, \"a\\tb\": 2}");
    struct srv_json *d = t_parse(body);
    srv_jv m = t_at(d, srv_json_root(d), 0);
    char buf[128];
    /* 48 bytes at most, cut at a character: "x" + 15 euro signs (46 bytes) */
    o = (size_t)sprintf(want, "x");
    for (int i = 0; i < 15; i++)
        o += (size_t)sprintf(want + o, "\xe2\x82\xac");
    assert_string_equal(srv_json_key(d, m, buf, sizeof buf), want);
    /* a smaller buffer: 9 bytes hold "x" and two euro signs */
    assert_string_equal(srv_json_key(d, m, buf, 9), "x\xe2\x82\xac\xe2\x82\xac");
    assert_string_equal(srv_json_key(d, t_at(d, srv_json_root(d), 1), buf, sizeof buf), "a\tb");
    assert_string_equal(srv_json_key(d, srv_json_root(d), buf, sizeof buf), "");
    srv_json_free(d);
}

static void test_keydup_whole_key(void **state)
{
    (void)state;
    char body[1024], want[512];
    size_t o = (size_t)sprintf(body, "{\""), w = 0;
    for (int i = 0; i < 100; i++) {
        o += (size_t)sprintf(body + o, "\\u00e9");
        w += (size_t)sprintf(want + w, "\xc3\xa9");
    }
    sprintf(body + o, "\": 1, \"k\": 2}");
    struct srv_json *d = t_parse(body);
    char *k = srv_json_keydup(d, t_at(d, srv_json_root(d), 0));
    assert_string_equal(k, want);
    free(k);
    k = srv_json_keydup(d, t_at(d, srv_json_root(d), 1));
    assert_string_equal(k, "k");
    free(k);
    assert_null(srv_json_keydup(d, srv_json_root(d)));
    srv_json_free(d);
}

static void test_unknown_key(void **state)
{
    (void)state;
    static const char *const known[] = {"shape", "data", NULL};
    struct srv_json *d =
        t_parse("{\"a\": {\"shape\": [1], \"d\\u0061ta\": [1]}, \"b\": {\"shape\": [1], "
                "\"dtype\": 1, \"more\": 2}, \"c\": {}, \"e\": [1]}");
    assert_int_equal(srv_json_unknown_key(d, t_get(d, "a"), known), 0);
    srv_jv bad = srv_json_unknown_key(d, t_get(d, "b"), known);
    assert_true(srv_json_key_is(d, bad, "dtype"));
    assert_int_equal(srv_json_unknown_key(d, t_get(d, "c"), known), 0);
    assert_int_equal(srv_json_unknown_key(d, t_get(d, "e"), known), 0);
    static const char *const none[] = {NULL};
    assert_true(srv_json_key_is(d, srv_json_unknown_key(d, t_get(d, "a"), none), "shape"));
    srv_json_free(d);
}

static void test_str_length_and_cut(void **state)
{
    (void)state;
    struct srv_json *d = t_parse("{\"s\": \"ab\\u20accd\", \"n\": 1}");
    srv_jv s = t_get(d, "s");
    char buf[16];
    assert_int_equal(srv_json_str(d, s, buf, sizeof buf), 7);
    assert_string_equal(buf, "ab\xe2\x82\xac"
                             "cd");
    /* cut to fit, never inside the euro sign */
    assert_int_equal(srv_json_str(d, s, buf, 5), 7);
    assert_string_equal(buf, "ab");
    assert_int_equal(srv_json_str(d, s, buf, 6), 7);
    assert_string_equal(buf, "ab\xe2\x82\xac");
    assert_int_equal(srv_json_str(d, t_get(d, "n"), buf, sizeof buf), SIZE_MAX);
    assert_string_equal(buf, "");
    assert_null(srv_json_strdup(d, t_get(d, "n")));
    assert_false(srv_json_str_is(d, t_get(d, "n"), "1"));
    srv_json_free(d);
}

/* srv_jv 0 answers "absent" everywhere; srv_json_free(NULL) is a no-op. */
static void test_accessors_take_zero(void **state)
{
    (void)state;
    struct srv_json *d = t_parse("{\"a\": 1}");
    char buf[8] = "x";
    double v;
    int64_t i;
    struct nn_err err;
    assert_int_equal(srv_json_type(d, 0), SRV_J_NONE);
    assert_int_equal(srv_json_type(d, 99), SRV_J_NONE);
    assert_int_equal(srv_json_child(d, 0), 0);
    assert_int_equal(srv_json_next(d, 0), 0);
    assert_int_equal(srv_json_count(d, 0), 0);
    assert_int_equal(srv_json_get(d, 0, "a"), 0);
    assert_false(srv_json_key_is(d, 0, "a"));
    assert_string_equal(srv_json_key(d, 0, buf, sizeof buf), "");
    assert_null(srv_json_keydup(d, 0));
    assert_int_equal(srv_json_unknown_key(d, 0, (const char *const[]){NULL}), 0);
    assert_false(srv_json_is_true(d, 0));
    assert_false(srv_json_number(d, 0, &v));
    assert_int_equal(srv_json_str(d, 0, buf, sizeof buf), SIZE_MAX);
    assert_false(srv_json_str_is(d, 0, ""));
    assert_null(srv_json_strdup(d, 0));
    assert_false(srv_json_numarray(d, 0, NULL, NULL, NULL));
    assert_int_equal(srv_json_read(d, 0, SRV_F32, &v, 1, "x", &err), NN_EINVAL);
    assert_string_equal(err.msg, "x: expected an array of numbers");
    assert_int_equal(srv_json_int(d, 0, &i, "x", &err), NN_EINVAL);
    assert_string_equal(err.msg, "x: expected an integer");
    srv_json_free(d);
    srv_json_free(NULL);
}

static void test_positions_and_children(void **state)
{
    (void)state;
    const char *body = "{\"a\": [1, 2], \"b\": \"s\", \"c\": [{}, [\"x\"], true]}";
    struct srv_json *d = t_parse(body);
    srv_jv r = srv_json_root(d);
    assert_int_equal(srv_json_pos(d, r), 0);
    assert_int_equal(srv_json_pos(d, t_get(d, "a")), 6);
    assert_int_equal(srv_json_pos(d, t_get(d, "b")), 19); /* the quote */
    srv_jv c = t_get(d, "c");
    assert_int_equal(srv_json_count(d, r), 3);
    assert_int_equal(srv_json_count(d, c), 3);
    assert_int_equal(srv_json_count(d, t_get(d, "a")), 2);
    assert_int_equal(srv_json_child(d, t_get(d, "a")), 0); /* numbers are not nodes */
    assert_int_equal(srv_json_type(d, t_at(d, c, 0)), SRV_J_OBJECT);
    assert_int_equal(srv_json_count(d, t_at(d, c, 0)), 0);
    assert_int_equal(srv_json_type(d, t_at(d, c, 1)), SRV_J_ARRAY);
    assert_int_equal(srv_json_pos(d, t_at(d, c, 2)), strlen(body) - 6);
    assert_int_equal(t_at(d, c, 3), 0);
    const char *keys[] = {"a", "b", "c"};
    size_t k = 0;
    for (srv_jv x = srv_json_child(d, r); x; x = srv_json_next(d, x))
        assert_true(srv_json_key_is(d, x, keys[k++]));
    assert_int_equal(k, 3);
    srv_json_free(d);
}

static void test_read_checks_count_and_type(void **state)
{
    (void)state;
    struct srv_json *d = t_parse("{\"a\": [1, 2, 3], \"s\": \"x\", \"g\": [1, \"x\"]}");
    float f[4];
    struct nn_err err;
    assert_int_equal(srv_json_read(d, t_get(d, "a"), SRV_F32, f, 2, "a", &err), NN_EINVAL);
    assert_string_equal(err.msg, "a: has 3 values, expected 2");
    assert_int_equal(srv_json_read(d, t_get(d, "s"), SRV_F32, f, 1, "s", &err), NN_EINVAL);
    assert_string_equal(err.msg, "s: expected an array of numbers");
    assert_int_equal(srv_json_read(d, t_get(d, "g"), SRV_F32, f, 2, "g", &err), NN_EINVAL);
    assert_string_equal(err.msg, "g: expected an array of numbers");
    assert_int_equal(srv_json_read(d, t_get(d, "a"), SRV_NUM_COUNT, f, 3, "a", &err), NN_EINVAL);
    assert_int_equal(srv_json_read(d, t_get(d, "a"), SRV_F32, f, 3, NULL, &err), NN_OK);
    assert_true(f[2] == 3.0f);
    srv_json_free(d);
}

/* ---- tensors ----------------------------------------------------------------------------- */
static void test_tensor_nested_form(void **state)
{
    (void)state;
    struct nn_err err;
    struct nn_tensor t;
    enum srv_form f = SRV_FORM_COUNT;
    assert_int_equal(t_tensor_of("{\"input\": [[1, 2], [3, 4]]}", NN_F32, 0, &t, &f, &err), NN_OK);
    assert_int_equal(f, SRV_FORM_NESTED);
    assert_int_equal(t.dtype, NN_F32);
    assert_int_equal(t.ndim, 2);
    assert_int_equal(t.shape[0], 2);
    assert_int_equal(t.shape[1], 2);
    assert_int_equal(t.numel, 4);
    assert_true(((float *)t.data)[3] == 4.0f);
    free(t.data);
}

static void test_tensor_object_form(void **state)
{
    (void)state;
    struct nn_err err;
    struct nn_tensor t;
    enum srv_form f = SRV_FORM_COUNT;
    assert_int_equal(t_tensor_of("{\"input\": {\"shape\": [2, 3], \"data\": [1, 2, 3, 4, 5, 6]}}",
                                 NN_F64, 0, &t, &f, &err),
                     NN_OK);
    assert_int_equal(f, SRV_FORM_OBJECT);
    assert_int_equal(t.dtype, NN_F64);
    assert_int_equal(t.ndim, 2);
    assert_int_equal(t.shape[1], 3);
    assert_true(((double *)t.data)[5] == 6.0);
    free(t.data);
}

/* Nested data of exactly the shape is accepted in the object form. */
static void test_tensor_object_form_nested_data(void **state)
{
    (void)state;
    struct nn_err err;
    struct nn_tensor t;
    assert_int_equal(
        t_tensor_of("{\"input\": {\"data\": [[1, 2, 3], [4, 5, 6]], \"shape\": [2, 3]}}", NN_F32, 0,
                    &t, NULL, &err),
        NN_OK);
    assert_true(((float *)t.data)[4] == 5.0f);
    free(t.data);
}

static void test_tensor_empty(void **state)
{
    (void)state;
    struct nn_err err;
    struct nn_tensor t;
    assert_int_equal(t_tensor_of("{\"input\": []}", NN_F32, 0, &t, NULL, &err), NN_OK);
    assert_int_equal(t.ndim, 1);
    assert_int_equal(t.numel, 0);
    assert_non_null(t.data);
    free(t.data);
    assert_int_equal(t_tensor_of("{\"input\": [[], []]}", NN_F32, 0, &t, NULL, &err), NN_OK);
    assert_int_equal(t.ndim, 2);
    assert_int_equal(t.shape[0], 2);
    assert_int_equal(t.numel, 0);
    free(t.data);
    assert_int_equal(
        t_tensor_of("{\"input\": {\"shape\": [0, 3], \"data\": []}}", NN_F32, 0, &t, NULL, &err),
        NN_OK);
    assert_int_equal(t.ndim, 2);
    assert_int_equal(t.shape[1], 3);
    assert_int_equal(t.numel, 0);
    free(t.data);
}

static void test_tensor_not_a_tensor(void **state)
{
    (void)state;
    const char *want = "input: expected a tensor (nested arrays or {\"shape\", \"data\"})";
    t_tensor_fails("{\"input\": 3}", NN_EINVAL, want);
    t_tensor_fails("{\"input\": \"x\"}", NN_EINVAL, want);
    t_tensor_fails("{\"input\": null}", NN_EINVAL, want);
    t_tensor_fails("{\"input\": true}", NN_EINVAL, want);
    t_tensor_fails("{\"input\": [1, \"x\"]}", NN_EINVAL, want);
    t_tensor_fails("{\"input\": [[1], {}]}", NN_EINVAL, want);
    t_tensor_fails("{}", NN_EINVAL, want);
}

static void test_tensor_object_errors(void **state)
{
    (void)state;
    t_tensor_fails("{\"input\": {\"shape\": [2, 3], \"data\": [1, 2, 3, 4, 5]}}", NN_EINVAL,
                   "input: data has 5 values but shape [2, 3] needs 6");
    t_tensor_fails("{\"input\": {\"shape\": [2], \"data\": [1]}}", NN_EINVAL,
                   "input: data has 1 value but shape [2] needs 2");
    t_tensor_fails("{\"input\": {\"shape\": [2, 3], \"data\": [[1, 2], [3, 4], [5, 6]]}}",
                   NN_EINVAL, "input: data has shape [3, 2] but shape is [2, 3]");
    t_tensor_fails("{\"input\": {\"shape\": [2], \"data\": [1, 2], \"dtype\": \"float32\"}}",
                   NN_EINVAL, "input: unknown field \"dtype\" in tensor (known: shape, data)");
    t_tensor_fails("{\"input\": {\"data\": [1]}}", NN_EINVAL, "input: missing \"shape\"");
    t_tensor_fails("{\"input\": {\"shape\": [1]}}", NN_EINVAL, "input: missing \"data\"");
    t_tensor_fails("{\"input\": {\"shape\": [1], \"data\": \"x\"}}", NN_EINVAL,
                   "input.data: expected an array of numbers");
    t_tensor_fails("{\"input\": {\"shape\": [2], \"data\": [1, \"x\"]}}", NN_EINVAL,
                   "input.data: expected an array of numbers");
}

static void test_tensor_shape_errors(void **state)
{
    (void)state;
    t_tensor_fails("{\"input\": {\"shape\": 2, \"data\": [1, 2]}}", NN_EINVAL,
                   "input.shape: expected a flat array of dimensions");
    t_tensor_fails("{\"input\": {\"shape\": [[2]], \"data\": [1, 2]}}", NN_EINVAL,
                   "input.shape: expected a flat array of dimensions");
    t_tensor_fails("{\"input\": {\"shape\": [\"2\"], \"data\": [1, 2]}}", NN_EINVAL,
                   "input.shape: expected a flat array of dimensions");
    t_tensor_fails("{\"input\": {\"shape\": [2, -1], \"data\": [1, 2]}}", NN_EINVAL,
                   "input.shape[1]: dimensions must be >= 0, got -1");
    t_tensor_fails("{\"input\": {\"shape\": [2.5], \"data\": [1, 2]}}", NN_EINVAL,
                   "input.shape: 2.5 is not an integer");
    t_tensor_fails("{\"input\": {\"shape\": [], \"data\": [1]}}", NN_EINVAL,
                   "input.shape: a tensor has 1 to 8 dimensions, got 0");
    t_tensor_fails("{\"input\": {\"shape\": [1,1,1,1,1,1,1,1,1], \"data\": [1]}}", NN_EINVAL,
                   "input.shape: a tensor has 1 to 8 dimensions, got 9");
    t_tensor_fails("{\"input\": {\"shape\": [2, 01], \"data\": [1, 2]}}", NN_EINVAL,
                   "invalid JSON at byte 25: invalid number");
}

static void test_tensor_range_errors(void **state)
{
    (void)state;
    t_tensor_fails("{\"input\": [1e39]}", NN_EINVAL, "input: 1e39 is out of range for float32");
    t_tensor_fails("{\"input\": [[1, 2], [3, -4e38]]}", NN_EINVAL,
                   "input: -4e38 is out of range for float32");
    t_tensor_fails("{\"input\": {\"shape\": [1], \"data\": [3.5e38]}}", NN_EINVAL,
                   "input: 3.5e38 is out of range for float32");
    struct nn_err err;
    struct nn_tensor t;
    assert_int_equal(t_tensor_of("{\"input\": [1e309]}", NN_F64, 0, &t, NULL, &err), NN_EINVAL);
    assert_string_equal(err.msg, "input: 1e309 is out of range for float64");
    /* the largest float32 and the text that rounds to it are in range */
    assert_int_equal(
        t_tensor_of("{\"input\": [3.4028235e38, -3.40282356e38]}", NN_F32, 0, &t, NULL, &err),
        NN_OK);
    assert_true(((float *)t.data)[0] == FLT_MAX);
    assert_true(((float *)t.data)[1] == -FLT_MAX);
    free(t.data);
}

static void test_tensor_caps(void **state)
{
    (void)state;
    char *s = malloc(16 * 1024);
    size_t o = (size_t)sprintf(s, "{\"input\": [");
    for (int i = 0; i < 1001; i++)
        o += (size_t)sprintf(s + o, "%s%d", i ? "," : "", i);
    sprintf(s + o, "]}");
    t_tensor_fails(s, NN_ETOOBIG, "input: shape [1001] is over the limit of 1000 elements");
    free(s);
    t_tensor_fails("{\"input\": {\"shape\": [10, 10, 11], \"data\": [1]}}", NN_ETOOBIG,
                   "input: shape [10, 10, 11] is over the limit of 1000 elements");
    /* zero-sized but with a huge structure: refused too (a nested reply would be huge) */
    t_tensor_fails("{\"input\": {\"shape\": [1000000000, 0], \"data\": []}}", NN_ETOOBIG,
                   "input: shape [1000000000, 0] is over the limit of 1000 elements");
    /* at the cap exactly: fine */
    struct nn_err err;
    struct nn_tensor t;
    assert_int_equal(t_tensor_of("{\"input\": {\"shape\": [2, 2], \"data\": [1, 2, 3, 4]}}", NN_F32,
                                 4, &t, NULL, &err),
                     NN_OK);
    free(t.data);
    assert_int_equal(t_tensor_of("{\"input\": [[1, 2], [3, 4]]}", NN_F32, 4, &t, NULL, &err),
                     NN_OK);
    free(t.data);
    assert_int_equal(t_tensor_of("{\"input\": [[1, 2], [3, 4]]}", NN_F32, 3, &t, NULL, &err),
                     NN_ETOOBIG);
}

/* Shapes whose product overflows size_t: NN_ETOOBIG with or without a cap; a dimension over
 * int64 is not a number we take. */
static void test_tensor_shape_overflow(void **state)
{
    (void)state;
    t_tensor_fails("{\"input\": {\"shape\": [4294967296, 4294967296, 2], \"data\": [1]}}",
                   NN_ETOOBIG, "input: shape [4294967296, 4294967296, 2] has too many elements");
    struct nn_err err;
    struct nn_tensor t;
    assert_int_equal(
        t_tensor_of("{\"input\": {\"shape\": [4294967296, 4294967296], \"data\": [1]}}", NN_F32, 0,
                    &t, NULL, &err),
        NN_ETOOBIG);
    assert_int_equal(
        t_tensor_of("{\"input\": {\"shape\": [9223372036854775807, 3], \"data\": [1]}}", NN_F32, 0,
                    &t, NULL, &err),
        NN_ETOOBIG);
    assert_int_equal(t_tensor_of("{\"input\": {\"shape\": [9223372036854775808], \"data\": [1]}}",
                                 NN_F32, 0, &t, NULL, &err),
                     NN_EINVAL);
    assert_string_equal(err.msg, "input.shape: 9223372036854775808 is out of range for int64");
}

/* Class targets: find (a bare integer allowed) + read as int64. */
static enum nn_status t_targets(const struct srv_json *d, const char *key, size_t max,
                                struct srv_tfind *f, int64_t **v, struct nn_err *err)
{
    *v = NULL;
    enum nn_status st = srv_tensor_find(d, t_get(d, key), max, 1, key, f, err);
    if (st)
        return st;
    *v = malloc((f->numel ? f->numel : 1) * sizeof **v);
    if ((st = srv_tensor_read(d, f, SRV_I64, *v, key, err))) {
        free(*v);
        *v = NULL;
    }
    return st;
}

static void test_tensor_int64_targets(void **state)
{
    (void)state;
    struct srv_json *d =
        t_parse("{\"a\": [0, 2, 1], \"b\": [3.0, 3e2, -0, 1E1], \"d\": 3, \"e\": 2.5, "
                "\"f\": {\"shape\": [], \"data\": [7]}, \"l\": \"x\"}");
    struct srv_tfind f;
    int64_t *v;
    struct nn_err err;
    assert_int_equal(t_targets(d, "a", 0, &f, &v, &err), NN_OK);
    assert_int_equal(f.ndim, 1);
    assert_int_equal(f.shape[0], 3);
    assert_int_equal(v[1], 2);
    free(v);
    assert_int_equal(t_targets(d, "b", 0, &f, &v, &err), NN_OK);
    assert_int_equal(v[0], 3);
    assert_int_equal(v[1], 300);
    assert_int_equal(v[2], 0);
    assert_int_equal(v[3], 10);
    free(v);
    assert_int_equal(t_targets(d, "d", 0, &f, &v, &err), NN_OK); /* a bare integer: rank 0 */
    assert_true(f.scalar);
    assert_int_equal(f.ndim, 0);
    assert_int_equal(v[0], 3);
    free(v);
    assert_int_equal(t_targets(d, "e", 0, &f, &v, &err), NN_EINVAL);
    assert_string_equal(err.msg, "e: 2.5 is not an integer");
    assert_int_equal(t_targets(d, "f", 0, &f, &v, &err), NN_OK); /* shape [] in the object form */
    assert_int_equal(f.ndim, 0);
    assert_int_equal(f.form, SRV_FORM_OBJECT);
    assert_int_equal(v[0], 7);
    free(v);
    assert_int_equal(t_targets(d, "l", 0, &f, &v, &err), NN_EINVAL);
    assert_contains(err.msg, "l: expected a tensor");
    assert_int_equal(t_targets(d, "a", 2, &f, &v, &err), NN_ETOOBIG);
    /* a bare number read as floats is not a tensor */
    float x;
    assert_int_equal(srv_tensor_find(d, t_get(d, "d"), 0, 1, "d", &f, &err), NN_OK);
    assert_int_equal(srv_tensor_read(d, &f, SRV_F32, &x, "d", &err), NN_EINVAL);
    assert_string_equal(err.msg, "d: expected a tensor");
    srv_json_free(d);
}

static void test_tensor_int64_errors(void **state)
{
    (void)state;
    struct srv_json *d = t_parse("{\"c\": [2.5], \"h\": [9223372036854775808], \"i\": [1e300], "
                                 "\"k\": {\"shape\": [2], \"data\": [[1], [2]]}, \"m\": [-1e400], "
                                 "\"n\": -9223372036854775809}");
    struct srv_tfind f;
    int64_t *v;
    struct nn_err err;
    assert_int_equal(t_targets(d, "c", 0, &f, &v, &err), NN_EINVAL);
    assert_string_equal(err.msg, "c: 2.5 is not an integer");
    assert_null(v);
    assert_int_equal(t_targets(d, "h", 0, &f, &v, &err), NN_EINVAL);
    assert_string_equal(err.msg, "h: 9223372036854775808 is out of range for int64");
    assert_int_equal(t_targets(d, "i", 0, &f, &v, &err), NN_EINVAL);
    assert_string_equal(err.msg, "i: 1e300 is out of range for int64");
    assert_int_equal(t_targets(d, "k", 0, &f, &v, &err), NN_EINVAL);
    assert_string_equal(err.msg, "k: data has shape [2, 1] but shape is [2]");
    assert_int_equal(t_targets(d, "m", 0, &f, &v, &err), NN_EINVAL);
    assert_string_equal(err.msg, "m: -1e400 is out of range for int64");
    assert_int_equal(t_targets(d, "n", 0, &f, &v, &err), NN_EINVAL);
    assert_string_equal(err.msg, "n: -9223372036854775809 is out of range for int64");
    srv_json_free(d);
}

/* Plain digits are exact to the last unit; a fraction or exponent past 2^53 might be a
 * neighbour's rounding, so it is refused. */
static void test_int64_exact_past_2_53(void **state)
{
    (void)state;
    struct srv_json *d = t_parse(
        "{\"g\": [9223372036854775807, -9223372036854775808, 9007199254740993, -9007199254740993], "
        "\"j\": [9007199254740993.0], \"k\": [9.007199254740992e15], \"l\": [9007199254740992.0], "
        "\"s\": 9007199254740993, \"t\": 1e16}");
    struct srv_tfind f;
    int64_t *v;
    struct nn_err err;
    assert_int_equal(t_targets(d, "g", 0, &f, &v, &err), NN_OK);
    assert_true(v[0] == INT64_MAX);
    assert_true(v[1] == INT64_MIN);
    assert_true(v[2] == 9007199254740993ll);
    assert_true(v[3] == -9007199254740993ll);
    free(v);
    assert_int_equal(t_targets(d, "j", 0, &f, &v, &err), NN_EINVAL);
    assert_string_equal(err.msg, "j: 9007199254740993.0 is too large to be exact; write it as "
                                 "plain integer digits");
    assert_int_equal(t_targets(d, "k", 0, &f, &v, &err), NN_EINVAL);
    assert_contains(err.msg, "too large to be exact");
    assert_int_equal(t_targets(d, "l", 0, &f, &v, &err), NN_EINVAL);
    assert_contains(err.msg, "too large to be exact");
    int64_t x;
    assert_int_equal(srv_json_int(d, t_get(d, "s"), &x, "s", &err), NN_OK);
    assert_true(x == 9007199254740993ll);
    assert_int_equal(srv_json_int(d, t_get(d, "t"), &x, "t", &err), NN_EINVAL);
    assert_string_equal(err.msg,
                        "t: 1e16 is too large to be exact; write it as plain integer digits");
    srv_json_free(d);
}

static void test_tensor_shape_reader(void **state)
{
    (void)state;
    struct srv_json *d = t_parse("{\"a\": [2, 0, 3], \"z\": [], \"b\": [1, 2, 3, 4, 5, 6, 7, 8]}");
    size_t sh[NN_MAX_DIMS];
    int nd;
    struct nn_err err;
    assert_int_equal(srv_tensor_shape(d, t_get(d, "a"), 0, "w", sh, &nd, &err), NN_OK);
    assert_int_equal(nd, 3);
    assert_int_equal(sh[2], 3);
    assert_int_equal(sh[3], 0); /* the rest zeroed */
    assert_int_equal(srv_tensor_shape(d, t_get(d, "z"), 1, "w", sh, &nd, &err), NN_OK);
    assert_int_equal(nd, 0);
    assert_int_equal(srv_tensor_shape(d, t_get(d, "z"), 0, "w", sh, &nd, &err), NN_EINVAL);
    assert_string_equal(err.msg, "w.shape: a tensor has 1 to 8 dimensions, got 0");
    assert_int_equal(srv_tensor_shape(d, t_get(d, "b"), 0, "w", sh, &nd, &err), NN_OK);
    assert_int_equal(nd, 8);
    char buf[64];
    srv_shape_fmt(buf, sizeof buf, sh, nd);
    assert_string_equal(buf, "[1, 2, 3, 4, 5, 6, 7, 8]");
    srv_json_free(d);
}

/* ---- messages: valid UTF-8 in a reply -------------------------------------------------- */
/* Keys quoted in messages are cut at a character, never inside one. */
static void test_messages_cut_keys_at_utf8_boundary(void **state)
{
    (void)state;
    char body[2048];
    /* an unknown field (srv_json_key: 48 bytes), "x" then 2-byte characters */
    size_t o = (size_t)sprintf(body, "{\"input\": {\"shape\": [1], \"data\": [1], \"x");
    for (int i = 0; i < 200; i++)
        o += (size_t)sprintf(body + o, "\xc3\xa9");
    sprintf(body + o, "\": 1}}");
    struct nn_err err = {{0}};
    struct nn_tensor t;
    assert_int_equal(t_tensor_of(body, NN_F32, 0, &t, NULL, &err), NN_EINVAL);
    assert_contains(err.msg, "input: unknown field \"x\xc3\xa9");
    t_assert_utf8(err.msg);
    /* a duplicate key (64 bytes) and a path (48 bytes a key), with 3-byte characters */
    const char *shapes[] = {"{\"k\": {\"%s\": 1, \"%s\": 2}}",
                            "{\"%s\": [[1], [1, 2]], \"y\": %s}"};
    for (int s = 0; s < 2; s++) {
        char key[400];
        o = (size_t)sprintf(key, "ab");
        for (int i = 0; i < 100; i++)
            o += (size_t)sprintf(key + o, "\xe2\x82\xac");
        if (s == 0)
            snprintf(body, sizeof body, shapes[s], key, key);
        else
            snprintf(body, sizeof body, shapes[s], key, "1");
        struct srv_json *d = NULL;
        assert_int_equal(srv_json_parse(body, strlen(body), 0, &d, &err), NN_EINVAL);
        assert_contains(err.msg, s == 0 ? "k: duplicate key \"ab\xe2\x82\xac" : "ab\xe2\x82\xac");
        t_assert_utf8(err.msg);
    }
}

/* A message cut at NN_ERR_LEN in the middle of a character is still written as valid JSON:
 * the writer turns the broken bytes into '?'. */
static void test_messages_cut_mid_character_written_valid(void **state)
{
    (void)state;
    char where[600];
    memset(where, 'x', 250);
    strcpy(where + 250, "\xe2\x82\xac\xe2\x82\xac\xe2\x82\xac");
    struct srv_json *d = t_parse("{\"input\": 1}");
    struct nn_err err;
    struct nn_tensor t;
    assert_int_equal(srv_tensor_load(d, t_get(d, "input"), NN_F32, 0, where, &t, NULL, &err),
                     NN_EINVAL);
    srv_json_free(d);
    assert_int_equal(strlen(err.msg), NN_ERR_LEN - 1); /* 250 x, one euro sign, 2 bytes of one */
    struct srv_jw w;
    srv_jw_init(&w, 0, 0);
    srv_jw_obj(&w);
    srv_jw_kstr(&w, "error", err.msg);
    srv_jw_end(&w);
    char *s = t_finish(&w);
    assert_int_equal(s[strlen(s) - 3], '?');
    assert_int_equal(s[strlen(s) - 4], '?');
    d = t_parse(s); /* valid UTF-8 and JSON */
    free(s);
    srv_json_free(d);
}

/* ---- golden files ------------------------------------------------------------------------- */
/* One golden case: it parses, its input loads as a tensor of its dtype, and every value
 * reads the same as through cJSON and strtod. */
static void t_golden_case(const char *path)
{
    size_t len;
    char *buf = t_read_file(path, &len);
    if (!buf)
        fail_msg("cannot read %s", path);
    struct nn_err err = {{0}};
    struct srv_json *d = NULL;
    if (srv_json_parse(buf, len, 0, &d, &err) != NN_OK)
        fail_msg("%s: %s", path, err.msg);
    enum nn_dtype dt = srv_json_str_is(d, t_get(d, "dtype"), "float64") ? NN_F64 : NN_F32;
    struct nn_tensor in;
    if (srv_tensor_load(d, t_get(d, "input"), dt, 0, "input", &in, NULL, &err) != NN_OK)
        fail_msg("%s: %s", path, err.msg);
    assert_true(in.numel > 0);
    free(in.data);
    cJSON *c = cJSON_ParseWithLength(buf, len);
    assert_non_null(c);
    if (!t_same(d, srv_json_root(d), c))
        fail_msg("%s reads differently from cJSON", path);
    cJSON_Delete(c);
    srv_json_free(d);
    free(buf);
}

static void test_golden_files(void **state)
{
    (void)state;
    char root[PATH_MAX], dirs[3][PATH_MAX + 32];
    t_repo_root(root, sizeof root);
    snprintf(dirs[0], sizeof dirs[0], "%s/tests/golden/vectors", root);
    snprintf(dirs[1], sizeof dirs[1], "%s/tests/golden/vectors_ext", root);
    const char *env = getenv("RELUD_SHARED_GOLDEN");
    if (env && *env)
        snprintf(dirs[2], sizeof dirs[2], "%s", env);
    else
        snprintf(dirs[2], sizeof dirs[2], "%s/../shared/golden", root);
    int count = 0;
    for (int k = 0; k < 3; k++) {
        char **paths;
        int n = t_list_json(dirs[k], &paths);
        for (int i = 0; i < n; i++)
            t_golden_case(paths[i]);
        if (n > 0)
            count += n;
        t_list_free(paths, n < 0 ? 0 : n);
    }
    if (count == 0)
        skip();
}

/* ---- random mutations ------------------------------------------------------------------------ */
/* Random mutations of valid requests: never a crash (run the ASan/UBSan build too); every
 * tensor lookup answers or fails with a message; and a document that parses with all its
 * numeric arrays readable is one cJSON reads the same way (strict subset). */
static void test_random_mutations(void **state)
{
    (void)state;
    const char *seeds[] = {
        "{\"input\": [[1.5, -2e-3], [3, 4]], \"layers\": [{\"type\": \"linear\", "
        "\"weight\": {\"shape\": [2, 2], \"data\": [0.1, 0.2, 0.3, 0.4]}, \"bias\": null}], "
        "\"s\": \"a[b]\\\"c\", \"n\": -0.25, \"t\": true}",
        "[[[1, 2], [3, 4]], [[5, 6], [7, 8]], [], \"x\", {\"a\": [0]}]",
        "{\"loss\": {\"type\": \"cross_entropy\", \"target\": [0, 2, 1]}, "
        "\"e\": \"\\u00e9\\ud83d\\ude00\", \"k\\u0031\": [[1], [2]], \"z\": 12345678901234567890}",
    };
    const char alphabet[] = "[]{},:\"\\-+.eE0123456789 \tnul\x01\x80\xff";
    char buf[512];
    int accepted = 0;
    for (int it = 0; it < 30000; it++) {
        const char *seed = seeds[it % 3];
        size_t n = strlen(seed);
        memcpy(buf, seed, n);
        int muts = 1 + (int)(t_rnd() % 4);
        for (int m = 0; m < muts; m++) {
            size_t at = (size_t)(t_rnd() % n);
            int op = (int)(t_rnd() % 3);
            char c = alphabet[t_rnd() % (sizeof alphabet - 1)];
            if (op == 0) {
                buf[at] = c;
            } else if (op == 1 && n + 1 < sizeof buf) {
                memmove(buf + at + 1, buf + at, n - at);
                buf[at] = c;
                n++;
            } else if (n > 1) {
                memmove(buf + at, buf + at + 1, n - at - 1);
                n--;
            }
        }
        /* exactly n bytes: the reader must not look past them */
        char *body = malloc(n);
        memcpy(body, buf, n);
        struct nn_err err = {{0}};
        struct srv_json *d = NULL;
        if (srv_json_parse(body, n, 0, &d, &err) != NN_OK) {
            assert_true(err.msg[0] != '\0');
            assert_null(d);
            free(body);
            continue;
        }
        srv_jv root = srv_json_root(d);
        srv_jv items[] = {root, t_get(d, "input"), t_at(d, root, 0), t_get(d, "k1")};
        for (size_t k = 0; k < sizeof items / sizeof *items; k++) {
            struct nn_tensor t;
            err.msg[0] = '\0';
            if (srv_tensor_load(d, items[k], NN_F32, 100, "x", &t, NULL, &err) == NN_OK)
                free(t.data);
            else
                assert_true(err.msg[0] != '\0');
            struct srv_tfind f;
            int64_t iv[100];
            if (srv_tensor_find(d, items[k], 100, 1, "x", &f, &err) == NN_OK)
                srv_tensor_read(d, &f, SRV_I64, iv, "x", &err);
        }
        if (t_all_read(d, root)) {
            accepted++;
            cJSON *ref = cJSON_ParseWithLength(body, n);
            if (!ref)
                fail_msg("the reader accepted what cJSON refuses: %.*s", (int)n, body);
            if (!t_same(d, root, ref))
                fail_msg("the reader and cJSON disagree on: %.*s", (int)n, body);
            cJSON_Delete(ref);
        }
        srv_json_free(d);
        free(body);
    }
    assert_true(accepted > 100);
}

/* ---- the writer ------------------------------------------------------------------------------ */
static void test_encode_forms(void **state)
{
    (void)state;
    float v[6] = {0.1f, 2.0f, -0.0f, 1e20f, FLT_TRUE_MIN, -1.5f};
    double dv[2] = {0.1, 1.0 / 3};
    struct nn_tensor t23 = {NN_F32, 2, {2, 3}, 6, v};
    struct nn_tensor t6 = {NN_F32, 1, {6}, 6, v};
    struct nn_tensor t0 = {NN_F32, 0, {0}, 1, v};
    struct nn_tensor tz = {NN_F32, 3, {2, 0, 3}, 0, v};
    struct nn_tensor te = {NN_F32, 1, {0}, 0, v};
    struct nn_tensor td = {NN_F64, 1, {2}, 2, dv};
    struct srv_jw w;
    srv_jw_init(&w, 16, 0);
    srv_jw_obj(&w);
    srv_jw_key(&w, "nested");
    srv_jw_tensor(&w, &t23, SRV_FORM_NESTED, "nested");
    srv_jw_key(&w, "object");
    srv_jw_tensor(&w, &t23, SRV_FORM_OBJECT, "object");
    srv_jw_key(&w, "flat");
    srv_jw_tensor(&w, &t23, SRV_FORM_FLAT, "flat");
    srv_jw_key(&w, "vec");
    srv_jw_tensor(&w, &t6, SRV_FORM_NESTED, "vec");
    srv_jw_key(&w, "scalar");
    srv_jw_tensor(&w, &t0, SRV_FORM_NESTED, "scalar");
    srv_jw_key(&w, "scalar_obj");
    srv_jw_tensor(&w, &t0, SRV_FORM_OBJECT, "scalar_obj");
    srv_jw_key(&w, "scalar_flat");
    srv_jw_tensor(&w, &t0, SRV_FORM_FLAT, "scalar_flat");
    srv_jw_key(&w, "zero");
    srv_jw_tensor(&w, &tz, SRV_FORM_NESTED, "zero");
    srv_jw_key(&w, "zero_obj");
    srv_jw_tensor(&w, &tz, SRV_FORM_OBJECT, "zero_obj");
    srv_jw_key(&w, "empty");
    srv_jw_tensor(&w, &te, SRV_FORM_NESTED, "empty");
    srv_jw_key(&w, "f64");
    srv_jw_tensor(&w, &td, SRV_FORM_NESTED, "f64");
    srv_jw_key(&w, "loss");
    srv_jw_num(&w, 0.1, NN_F32, "loss");
    srv_jw_key(&w, "loss64");
    srv_jw_num(&w, 0.1, NN_F64, "loss64");
    srv_jw_key(&w, "norm");
    srv_jw_num(&w, (double)0.3f, NN_F32, "norm");
    srv_jw_kstr(&w, "name",
                "a\x01"
                "b \"[1]\"");
    srv_jw_kint(&w, "n", 3);
    srv_jw_end(&w);
    char *s = t_finish(&w);
    assert_string_equal(s,
                        "{\"nested\":[[0.1,2,-0],[1e+20,1e-45,-1.5]],"
                        "\"object\":{\"shape\":[2,3],\"data\":[0.1,2,-0,1e+20,1e-45,-1.5]},"
                        "\"flat\":[0.1,2,-0,1e+20,1e-45,-1.5],\"vec\":[0.1,2,-0,1e+20,1e-45,-1.5],"
                        "\"scalar\":0.1,\"scalar_obj\":{\"shape\":[],\"data\":[0.1]},"
                        "\"scalar_flat\":[0.1],\"zero\":[[],[]],"
                        "\"zero_obj\":{\"shape\":[2,0,3],\"data\":[]},\"empty\":[],"
                        "\"f64\":[0.1,0.3333333333333333],\"loss\":0.1,\"loss64\":0.1,"
                        "\"norm\":0.3,\"name\":\"a\\u0001b \\\"[1]\\\"\",\"n\":3}");
    /* and it reads back */
    struct srv_json *d = t_parse(s);
    assert_true(srv_json_str_is(d, t_get(d, "name"),
                                "a\x01"
                                "b \"[1]\""));
    srv_json_free(d);
    free(s);
    srv_jw_free(&w);
}

/* Commas and nesting are the writer's: objects in arrays in objects, tensors as values. */
static void test_encode_commas_and_nesting(void **state)
{
    (void)state;
    float v[2] = {1, 2};
    struct nn_tensor t = {NN_F32, 1, {2}, 2, v};
    struct srv_jw w;
    srv_jw_init(&w, 0, 0);
    srv_jw_obj(&w);
    srv_jw_key(&w, "a");
    srv_jw_arr(&w);
    srv_jw_obj(&w);
    srv_jw_kint(&w, "x", 1);
    srv_jw_end(&w);
    srv_jw_obj(&w);
    srv_jw_key(&w, "y");
    srv_jw_arr(&w);
    srv_jw_int(&w, -1);
    srv_jw_obj(&w);
    srv_jw_end(&w);
    srv_jw_arr(&w);
    srv_jw_end(&w);
    srv_jw_tensor(&w, &t, SRV_FORM_NESTED, "t");
    srv_jw_tensor(&w, &t, SRV_FORM_OBJECT, "t");
    srv_jw_end(&w);
    srv_jw_kbool(&w, "z", 0);
    srv_jw_end(&w);
    srv_jw_null(&w);
    srv_jw_end(&w);
    srv_jw_key(&w, "b");
    srv_jw_obj(&w);
    srv_jw_key(&w, "c");
    srv_jw_obj(&w);
    srv_jw_end(&w);
    srv_jw_kuint(&w, "u", 18446744073709551615ull);
    srv_jw_end(&w);
    srv_jw_kbool(&w, "t", 1);
    srv_jw_key(&w, "s");
    srv_jw_strn(&w, "abcdef", 3);
    srv_jw_end(&w);
    char *s = t_finish(&w);
    assert_string_equal(s,
                        "{\"a\":[{\"x\":1},{\"y\":[-1,{},[],[1,2],{\"shape\":[2],\"data\":[1,2]}],"
                        "\"z\":false},null],\"b\":{\"c\":{},\"u\":18446744073709551615},"
                        "\"t\":true,\"s\":\"abc\"}");
    cJSON *c = cJSON_Parse(s);
    assert_non_null(c);
    cJSON_Delete(c);
    free(s);
}

/* Top-level values and arrays of scalars. */
static void test_encode_top_level_values(void **state)
{
    (void)state;
    struct srv_jw w;
    srv_jw_init(&w, 0, 0);
    srv_jw_arr(&w);
    srv_jw_int(&w, LLONG_MIN);
    srv_jw_str(&w, "");
    srv_jw_num(&w, -0.0, NN_F64, "x");
    srv_jw_bool(&w, 1);
    srv_jw_end(&w);
    char *s = t_finish(&w);
    assert_string_equal(s, "[-9223372036854775808,\"\",-0,true]");
    free(s);
    srv_jw_init(&w, 0, 0);
    srv_jw_str(&w, "only");
    s = t_finish(&w);
    assert_string_equal(s, "\"only\"");
    free(s);
}

static void test_encode_escapes_control_characters(void **state)
{
    (void)state;
    char all[33];
    for (int i = 1; i < 32; i++)
        all[i - 1] = (char)i;
    all[31] = 0x7f;
    all[32] = 0;
    struct srv_jw w;
    srv_jw_init(&w, 0, 0);
    srv_jw_obj(&w);
    srv_jw_kstr(&w, "k\"\\\n", all);
    srv_jw_key(&w, "nul");
    srv_jw_strn(&w, "a\0b", 3);
    srv_jw_end(&w);
    char *s = t_finish(&w);
    assert_string_equal(s, "{\"k\\\"\\\\\\n\":\"\\u0001\\u0002\\u0003\\u0004\\u0005\\u0006\\u0007"
                           "\\b\\t\\n\\u000b\\f\\r\\u000e\\u000f\\u0010\\u0011\\u0012\\u0013\\u0014"
                           "\\u0015\\u0016\\u0017\\u0018\\u0019\\u001a\\u001b\\u001c\\u001d\\u001e"
                           "\\u001f\x7f\",\"nul\":\"a\\u0000b\"}");
    cJSON *c = cJSON_Parse(s);
    assert_non_null(c);
    assert_string_equal(cJSON_GetObjectItemCaseSensitive(c, "k\"\\\n")->valuestring, all);
    cJSON_Delete(c);
    free(s);
}

/* A byte that is not part of valid UTF-8 is written as '?'; valid sequences stay. */
static void test_encode_invalid_utf8_as_question_mark(void **state)
{
    (void)state;
    struct {
        const char *in, *out;
    } cases[] = {
        {"caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80", "caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80"},
        {"a\xff"
         "b",
         "a?b"},
        {"\xc3", "?"},
        {"\xe2\x82", "??"},
        {"x\xe2\x82\xac\xe2\x82", "x\xe2\x82\xac??"},
        {"\xc0\x80", "??"},
        {"\xed\xa0\x80", "???"},
        {"\xf4\x90\x80\x80", "????"},
        {"\x80\xbf", "??"},
        {"\xf8\x88", "??"},
        {"\xe0\x80\xaf", "???"},
        {"\xc3\x28", "?("}};
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        struct srv_jw w;
        srv_jw_init(&w, 0, 0);
        srv_jw_obj(&w);
        srv_jw_kstr(&w, cases[i].in, cases[i].in);
        srv_jw_end(&w);
        char *s = t_finish(&w);
        char want[128];
        snprintf(want, sizeof want, "{\"%s\":\"%s\"}", cases[i].out, cases[i].out);
        assert_string_equal(s, want);
        struct srv_json *d = t_parse(s); /* the reader checks UTF-8 */
        srv_json_free(d);
        free(s);
    }
}

static void test_encode_nonfinite_names_tensor_and_index(void **state)
{
    (void)state;
    float v[4] = {1, 2, INFINITY, 4};
    struct nn_tensor t = {NN_F32, 2, {2, 2}, 4, v};
    for (int form = 0; form < SRV_FORM_COUNT; form++) {
        struct srv_jw w;
        srv_jw_init(&w, 0, 0);
        srv_jw_obj(&w);
        srv_jw_key(&w, "weight");
        srv_jw_tensor(&w, &t, (enum srv_form)form, "gradients.layers[1].weight");
        srv_jw_end(&w);
        t_finish_fails(&w, NN_ENONFINITE,
                       "gradients.layers[1].weight: non-finite value inf at index 2 cannot be "
                       "written as JSON");
    }
    double dv[6] = {1, 2, 3, 4, 5, -INFINITY};
    struct nn_tensor td = {NN_F64, 3, {1, 2, 3}, 6, dv};
    struct srv_jw w;
    srv_jw_init(&w, 0, 0);
    srv_jw_tensor(&w, &td, SRV_FORM_NESTED, "output");
    t_finish_fails(&w, NN_ENONFINITE,
                   "output: non-finite value -inf at index 5 cannot be written as JSON");
    dv[5] = 6;
    dv[1] = NAN;
    srv_jw_init(&w, 0, 0);
    srv_jw_tensor(&w, &td, SRV_FORM_OBJECT, "output");
    t_finish_fails(&w, NN_ENONFINITE,
                   "output: non-finite value nan at index 1 cannot be written as JSON");
}

static void test_encode_nonfinite_number(void **state)
{
    (void)state;
    struct srv_jw w;
    srv_jw_init(&w, 0, 0);
    srv_jw_obj(&w);
    srv_jw_key(&w, "loss");
    srv_jw_num(&w, 1e39, NN_F32, "loss"); /* inf as float32 */
    srv_jw_end(&w);
    t_finish_fails(&w, NN_ENONFINITE, "loss: non-finite value inf cannot be written as JSON");
    srv_jw_init(&w, 0, 0);
    srv_jw_num(&w, 1e39, NN_F64, "loss"); /* fine as float64 */
    char *s = t_finish(&w);
    assert_string_equal(s, "1e+39");
    free(s);
    srv_jw_init(&w, 0, 0);
    srv_jw_num(&w, -NAN, NN_F64, "stats.norm");
    t_finish_fails(&w, NN_ENONFINITE, "stats.norm: non-finite value nan cannot be written as JSON");
    float nan32 = NAN;
    struct nn_tensor t0 = {NN_F32, 0, {0}, 1, &nan32};
    srv_jw_init(&w, 0, 0);
    srv_jw_tensor(&w, &t0, SRV_FORM_NESTED, "loss");
    t_finish_fails(&w, NN_ENONFINITE, "loss: non-finite value nan cannot be written as JSON");
}

/* The first error is kept; later calls write nothing and change nothing. */
static void test_encode_errors_are_sticky(void **state)
{
    (void)state;
    float bad[1] = {NAN};
    double worse[1] = {INFINITY};
    struct nn_tensor t1 = {NN_F32, 1, {1}, 1, bad};
    struct nn_tensor t2 = {NN_F64, 1, {1}, 1, worse};
    struct srv_jw w;
    srv_jw_init(&w, 0, 64);
    srv_jw_arr(&w);
    srv_jw_tensor(&w, &t1, SRV_FORM_FLAT, "first");
    size_t len = w.sb.len;
    srv_jw_tensor(&w, &t2, SRV_FORM_FLAT, "second");
    srv_jw_num(&w, INFINITY, NN_F64, "third");
    srv_jw_str(&w, "a string far longer than the cap of sixty-four bytes of this writer, to be "
                   "sure it would fail");
    srv_jw_end(&w);
    assert_int_equal(w.sb.len, len);
    t_finish_fails(&w, NN_ENONFINITE,
                   "first: non-finite value nan at index 0 cannot be written as "
                   "JSON");
    /* and a cap error is kept over a later non-finite value */
    srv_jw_init(&w, 0, 16);
    srv_jw_str(&w, "more than sixteen bytes");
    srv_jw_num(&w, NAN, NN_F64, "later");
    t_finish_fails(&w, NN_ETOOBIG, "response: larger than its cap");
}

static void test_encode_cap(void **state)
{
    (void)state;
    struct srv_jw w;
    srv_jw_init(&w, 0, 100);
    srv_jw_obj(&w);
    for (int i = 0; i < 20; i++)
        srv_jw_kint(&w, "key", i);
    srv_jw_end(&w);
    t_finish_fails(&w, NN_ETOOBIG, "response: larger than its cap");
    /* under the cap: fine */
    srv_jw_init(&w, 0, 100);
    srv_jw_obj(&w);
    for (int i = 0; i < 5; i++)
        srv_jw_kint(&w, "key", i);
    srv_jw_end(&w);
    char *s = t_finish(&w);
    assert_int_equal(strlen(s), 41);
    free(s);
    /* a tensor over the cap */
    float v[64] = {0};
    struct nn_tensor t = {NN_F32, 2, {8, 8}, 64, v};
    for (int form = 0; form < SRV_FORM_COUNT; form++) {
        srv_jw_init(&w, 0, 100);
        srv_jw_tensor(&w, &t, (enum srv_form)form, "t");
        t_finish_fails(&w, NN_ETOOBIG, "response: larger than its cap");
    }
}

/* The writer's text for t in form, with no cap (0) or under the cap max (NULL if over it). */
static char *t_write_tensor(const struct nn_tensor *t, enum srv_form form, size_t max,
                            enum nn_status *st)
{
    struct srv_jw w;
    struct nn_err err;
    size_t len;
    srv_jw_init(&w, 0, max);
    srv_jw_obj(&w);
    srv_jw_key(&w, "t");
    srv_jw_tensor(&w, t, form, "t");
    srv_jw_end(&w);
    return srv_jw_finish(&w, &len, st, &err);
}

/* The cap counts the bytes written, not a worst case: a tensor whose text fits under it is
 * written, the same bytes as without a cap; one byte less is over it. */
static void test_encode_tensor_under_cap(void **state)
{
    (void)state;
    float v[64];
    double dv[150];
    for (int i = 0; i < 64; i++)
        v[i] = (float)i * 0.25f - 3;
    for (int i = 0; i < 150; i++)
        dv[i] = i % 7 ? (double)i : 0.1 * i;
    struct nn_tensor ts[] = {
        {NN_F32, 2, {8, 8}, 64, v}, {NN_F64, 1, {150}, 150, dv}, {NN_F64, 2, {2, 75}, 150, dv}};
    for (size_t k = 0; k < sizeof ts / sizeof *ts; k++) {
        for (int form = 0; form < SRV_FORM_COUNT; form++) {
            enum nn_status st;
            char *free_text = t_write_tensor(&ts[k], (enum srv_form)form, 0, &st);
            assert_non_null(free_text);
            size_t len = strlen(free_text);
            char *capped = t_write_tensor(&ts[k], (enum srv_form)form, len + 1, &st);
            if (!capped)
                fail_msg("%zu bytes refused under a cap of %zu (%d)", len, len + 1, st);
            assert_string_equal(capped, free_text);
            assert_null(t_write_tensor(&ts[k], (enum srv_form)form, len - 1, &st));
            assert_int_equal(st, NN_ETOOBIG);
            free(capped);
            free(free_text);
        }
    }
    /* and a non-finite value is still found there */
    v[63] = NAN;
    struct srv_jw w;
    srv_jw_init(&w, 0, 400);
    srv_jw_tensor(&w, &ts[0], SRV_FORM_NESTED, "t");
    t_finish_fails(&w, NN_ENONFINITE,
                   "t: non-finite value nan at index 63 cannot be written as JSON");
}

/* The reserve is a guess: one over the cap does not fail a reply that fits. */
static void test_encode_reserve_is_a_guess(void **state)
{
    (void)state;
    struct srv_jw w;
    srv_jw_init(&w, 4096, 64);
    srv_jw_obj(&w);
    srv_jw_kstr(&w, "a", "b");
    srv_jw_end(&w);
    char *s = t_finish(&w);
    assert_string_equal(s, "{\"a\":\"b\"}");
    free(s);
}

static void test_encode_depth_cap(void **state)
{
    (void)state;
    struct srv_jw w;
    srv_jw_init(&w, 0, 0);
    for (int i = 0; i < SRV_JW_MAX_DEPTH; i++)
        srv_jw_arr(&w);
    for (int i = 0; i < SRV_JW_MAX_DEPTH; i++)
        srv_jw_end(&w);
    char *s = t_finish(&w);
    assert_int_equal(strlen(s), 2 * SRV_JW_MAX_DEPTH);
    free(s);
    srv_jw_init(&w, 0, 0);
    for (int i = 0; i <= SRV_JW_MAX_DEPTH; i++)
        srv_jw_arr(&w);
    t_finish_fails(&w, NN_EINVAL, "response: nested too deep");
}

/* Out of memory at any allocation of the writer is NN_ENOMEM. */
static void test_encode_out_of_memory(void **state)
{
    (void)state;
    if (!HAVE_ALLOC_HOOK)
        skip();
    float v[600];
    for (int i = 0; i < 600; i++)
        v[i] = (float)i / 7;
    struct nn_tensor t = {NN_F32, 2, {20, 30}, 600, v};
    int fails = 0;
    for (long at = 1;; at++) {
        struct srv_jw w;
        struct nn_err err = {{0}};
        enum nn_status st = NN_OK;
        size_t len;
        t_arm(at);
        srv_jw_init(&w, 0, 0);
        srv_jw_obj(&w);
        srv_jw_kstr(&w, "name", "x");
        srv_jw_key(&w, "t");
        srv_jw_tensor(&w, &t, SRV_FORM_NESTED, "t");
        srv_jw_end(&w);
        char *s = srv_jw_finish(&w, &len, &st, &err);
        int failed = t_failed;
        t_disarm();
        if (!failed) {
            assert_non_null(s);
            free(s);
            break;
        }
        fails++;
        assert_null(s);
        assert_int_equal(st, NN_ENOMEM);
        assert_string_equal(err.msg, "out of memory while writing the response");
    }
    assert_true(fails >= 1);
}

static void test_encode_large_nested(void **state)
{
    (void)state;
    size_t n = 3 * 4 * 5 * 7;
    double *v = malloc(n * sizeof *v);
    for (size_t i = 0; i < n; i++)
        v[i] = u2d(t_rnd() >> 2) * (i % 2 ? -1 : 1);
    struct nn_tensor t = {NN_F64, 4, {3, 4, 5, 7}, n, v};
    struct srv_jw w;
    srv_jw_init(&w, 0, 0);
    srv_jw_obj(&w);
    srv_jw_key(&w, "input");
    srv_jw_tensor(&w, &t, SRV_FORM_NESTED, "input");
    srv_jw_end(&w);
    char *s = t_finish(&w);
    struct nn_err err;
    struct nn_tensor back;
    assert_int_equal(t_tensor_of(s, NN_F64, 0, &back, NULL, &err), NN_OK);
    assert_int_equal(back.ndim, 4);
    assert_int_equal(back.shape[3], 7);
    assert_memory_equal(back.data, v, n * sizeof *v);
    free(back.data);
    free(s);
    free(v);
}

/* Every finite float32 class through a whole document, in each form: write, read back. */
static void test_encode_f32_document_round_trip(void **state)
{
    (void)state;
    size_t n = 200000;
    float *v = malloc(n * sizeof *v);
    assert_non_null(v);
    for (size_t i = 0; i < n; i++) {
        do
            v[i] = u2f((uint32_t)t_rnd());
        while (!isfinite(v[i]));
    }
    v[0] = -0.0f;
    v[1] = FLT_TRUE_MIN;
    v[2] = FLT_MAX;
    struct nn_tensor t = {NN_F32, 2, {n / 100, 100}, n, v};
    for (int form = 0; form < SRV_FORM_COUNT; form++) {
        struct srv_jw w;
        srv_jw_init(&w, 0, 0);
        srv_jw_obj(&w);
        srv_jw_key(&w, "input");
        srv_jw_tensor(&w, &t, (enum srv_form)form, "input");
        srv_jw_end(&w);
        char *s = t_finish(&w);
        struct nn_err err = {{0}};
        struct nn_tensor back;
        enum srv_form f;
        assert_int_equal(t_tensor_of(s, NN_F32, 0, &back, &f, &err), NN_OK);
        assert_int_equal(back.numel, n);
        if (form == SRV_FORM_FLAT) {
            assert_int_equal(back.ndim, 1);
        } else {
            assert_int_equal(back.ndim, 2);
            assert_int_equal(back.shape[0], n / 100);
            assert_int_equal((int)f, form);
        }
        assert_memory_equal(back.data, v, n * sizeof *v);
        free(back.data);
        free(s);
    }
    free(v);
}

/* An independent parser reads the writer's numbers to the same values. */
static void test_encode_read_by_cjson(void **state)
{
    (void)state;
    double v[1000];
    for (int i = 0; i < 1000; i++) {
        do
            v[i] = u2d(t_rnd());
        while (!isfinite(v[i]));
    }
    struct nn_tensor t = {NN_F64, 2, {10, 100}, 1000, v};
    struct srv_jw w;
    srv_jw_init(&w, 0, 0);
    srv_jw_tensor(&w, &t, SRV_FORM_OBJECT, "t");
    char *s = t_finish(&w);
    cJSON *c = cJSON_Parse(s);
    assert_non_null(c);
    const cJSON *data = cJSON_GetObjectItemCaseSensitive(c, "data");
    assert_int_equal(cJSON_GetArraySize(data), 1000);
    int i = 0;
    for (const cJSON *x = data->child; x; x = x->next, i++)
        assert_int_equal(d2u(x->valuedouble), d2u(v[i]));
    cJSON_Delete(c);
    free(s);
}

/* ---- binary wire data ------------------------------------------------------------------------ */
/* value v stored as wire type w at index i (little-endian: the host is, checked below) */
static void t_wire_put(enum srv_wire w, void *buf, size_t i, double v)
{
#define PUT(T)                                               \
    do {                                                     \
        T x_ = (T)v;                                         \
        memcpy((char *)buf + i * sizeof x_, &x_, sizeof x_); \
    } while (0)
    switch (w) {
    case SRV_WIRE_FP32: PUT(float); break;
    case SRV_WIRE_FP64: PUT(double); break;
    case SRV_WIRE_INT8: PUT(int8_t); break;
    case SRV_WIRE_INT16: PUT(int16_t); break;
    case SRV_WIRE_INT32: PUT(int32_t); break;
    case SRV_WIRE_INT64: PUT(int64_t); break;
    case SRV_WIRE_UINT8: PUT(uint8_t); break;
    case SRV_WIRE_UINT16: PUT(uint16_t); break;
    case SRV_WIRE_UINT32: PUT(uint32_t); break;
    case SRV_WIRE_UINT64: PUT(uint64_t); break;
    default: fail_msg("no values for %s", srv_wire[w].name);
    }
#undef PUT
}

static void test_wire_table(void **state)
{
    (void)state;
    static const struct {
        const char *name;
        int bytes, kind;
    } want[SRV_WIRE_COUNT] = {{"FP32", 4, 0},  {"FP64", 8, 0},   {"FP16", 2, -1},  {"BF16", 2, -1},
                              {"INT8", 1, 1},  {"INT16", 2, 1},  {"INT32", 4, 1},  {"INT64", 8, 1},
                              {"UINT8", 1, 2}, {"UINT16", 2, 2}, {"UINT32", 4, 2}, {"UINT64", 8, 2},
                              {"BOOL", 1, -1}, {"BYTES", 0, -1}};
    for (int i = 0; i < SRV_WIRE_COUNT; i++) {
        assert_string_equal(srv_wire[i].name, want[i].name);
        assert_int_equal(srv_wire[i].bytes, want[i].bytes);
        assert_int_equal(srv_wire[i].kind, want[i].kind);
        assert_int_equal(srv_wire_find(want[i].name), i);
    }
    assert_int_equal(srv_wire_find("fp32"), -1);
    assert_int_equal(srv_wire_find("FP8"), -1);
    assert_int_equal(srv_wire_find(""), -1);
}

/* Every readable datatype converts to every target; the refused ones say so. */
static void test_wire_convert_every_type(void **state)
{
    (void)state;
    const uint16_t one = 1;
    assert_int_equal(*(const uint8_t *)&one, 1); /* little-endian host */
    const double vals[] = {0, 1, 2, 100, 127, 7};
    const double svals[] = {-1, -128, 0, 5, 127, -7};
    size_t n = sizeof vals / sizeof *vals;
    for (int w = 0; w < SRV_WIRE_COUNT; w++) {
        unsigned char src[8 * 6 + 1];
        float f[6];
        double dv[6];
        int64_t iv[6];
        void *dst[SRV_NUM_COUNT] = {f, dv, iv};
        struct nn_err err = {{0}};
        if (srv_wire[w].kind < 0) {
            for (int t = 0; t < SRV_NUM_COUNT; t++) {
                char want[64];
                assert_int_equal(
                    srv_wire_convert((enum srv_wire)w, src, 1, (enum srv_num)t, dst[t], "in", &err),
                    NN_EINVAL);
                snprintf(want, sizeof want, "in: %s data cannot be read", srv_wire[w].name);
                assert_string_equal(err.msg, want);
            }
            continue;
        }
        const double *in = srv_wire[w].kind == 2 ? vals : svals;
        /* one byte in: binary data has no alignment */
        for (size_t i = 0; i < n; i++)
            t_wire_put((enum srv_wire)w, src + 1, i, in[i]);
        for (int t = 0; t < SRV_NUM_COUNT; t++) {
            enum nn_status st =
                srv_wire_convert((enum srv_wire)w, src + 1, n, (enum srv_num)t, dst[t], "in", &err);
            if (st)
                fail_msg("%s to %s: %s", srv_wire[w].name, srv_num_names[t], err.msg);
            for (size_t i = 0; i < n; i++) {
                double got = t == SRV_F32 ? (double)f[i] : t == SRV_F64 ? dv[i] : (double)iv[i];
                if (got != in[i])
                    fail_msg("%s to %s: [%zu] is %g, expected %g", srv_wire[w].name,
                             srv_num_names[t], i, got, in[i]);
            }
        }
        assert_int_equal(srv_wire_convert((enum srv_wire)w, src, 0, SRV_F32, f, "in", &err), NN_OK);
    }
    float f;
    struct nn_err err;
    assert_int_equal(srv_wire_convert(SRV_WIRE_COUNT, &f, 1, SRV_F32, &f, "in", &err), NN_EINVAL);
    assert_string_equal(err.msg, "in: this data cannot be read");
    assert_int_equal(srv_wire_convert(SRV_WIRE_FP32, &f, 1, SRV_NUM_COUNT, &f, "in", &err),
                     NN_EINVAL);
}

/* The widest integers: exact to int64, rounded to floats as torch does. */
static void test_wire_64_bit_integers(void **state)
{
    (void)state;
    int64_t s[3] = {INT64_MIN, INT64_MAX, 9007199254740993ll};
    uint64_t u[3] = {0, (uint64_t)INT64_MAX, UINT64_MAX};
    int64_t iv[3];
    double dv[3];
    float f[3];
    struct nn_err err;
    assert_int_equal(srv_wire_convert(SRV_WIRE_INT64, s, 3, SRV_I64, iv, "in", &err), NN_OK);
    assert_memory_equal(iv, s, sizeof s);
    assert_int_equal(srv_wire_convert(SRV_WIRE_INT64, s, 3, SRV_F64, dv, "in", &err), NN_OK);
    assert_true(dv[0] == -9223372036854775808.0);
    assert_true(dv[2] == 9007199254740992.0);
    assert_int_equal(srv_wire_convert(SRV_WIRE_UINT64, u, 2, SRV_I64, iv, "in", &err), NN_OK);
    assert_true(iv[1] == INT64_MAX);
    assert_int_equal(srv_wire_convert(SRV_WIRE_UINT64, u, 3, SRV_F32, f, "in", &err), NN_OK);
    assert_true(f[2] == 18446744073709551616.0f);
    assert_int_equal(srv_wire_convert(SRV_WIRE_UINT64, u, 3, SRV_I64, iv, "in", &err), NN_EINVAL);
    assert_string_equal(err.msg, "in: value 18446744073709551615 at index 2 is too large");
    u[1] = (uint64_t)INT64_MAX + 1;
    assert_int_equal(srv_wire_convert(SRV_WIRE_UINT64, u, 3, SRV_I64, iv, "in", &err), NN_EINVAL);
    assert_string_equal(err.msg, "in: value 9223372036854775808 at index 1 is too large");
}

/* A non-finite value changes type nowhere: to the other float type or to a class index it is
 * refused; within its own type the values are copied (the pass scans its input once and
 * names what it finds). */
static void test_wire_nonfinite(void **state)
{
    (void)state;
    float fs[3] = {1, NAN, 2};
    double ds[2] = {0, -INFINITY};
    float f[3];
    double dv[3];
    int64_t iv[3];
    struct nn_err err;
    assert_int_equal(srv_wire_convert(SRV_WIRE_FP32, fs, 3, SRV_F64, dv, "input", &err), NN_EINVAL);
    assert_string_equal(err.msg, "input: value at index 1 is not finite");
    assert_int_equal(srv_wire_convert(SRV_WIRE_FP32, fs, 3, SRV_I64, iv, "input", &err), NN_EINVAL);
    assert_string_equal(err.msg, "input: value at index 1 is not finite");
    assert_int_equal(srv_wire_convert(SRV_WIRE_FP64, ds, 2, SRV_F32, f, "input", &err), NN_EINVAL);
    assert_string_equal(err.msg, "input: value at index 1 is not finite");
    assert_int_equal(srv_wire_convert(SRV_WIRE_FP64, ds, 2, SRV_I64, iv, "input", &err), NN_EINVAL);
    assert_string_equal(err.msg, "input: value at index 1 is not finite");
    assert_int_equal(srv_wire_convert(SRV_WIRE_FP32, fs, 3, SRV_F32, f, "input", &err), NN_OK);
    assert_memory_equal(f, fs, sizeof fs);
    assert_int_equal(srv_wire_convert(SRV_WIRE_FP64, ds, 2, SRV_F64, dv, "input", &err), NN_OK);
    assert_memory_equal(dv, ds, sizeof ds);
}

/* float64 to float32: refused only where float32 would be infinite, as the JSON reader. */
static void test_wire_f64_to_f32_range(void **state)
{
    (void)state;
    double ds[4] = {1e-50, -FLT_MAX, 3.4028235e38, -3.40282356e38};
    float f[4];
    struct nn_err err;
    assert_int_equal(srv_wire_convert(SRV_WIRE_FP64, ds, 4, SRV_F32, f, "input", &err), NN_OK);
    assert_int_equal(f2u(f[0]), 0u);
    assert_true(f[1] == -FLT_MAX);
    assert_true(f[2] == FLT_MAX);
    assert_true(f[3] == -FLT_MAX);
    /* the same numbers as JSON text read the same */
    float g[4];
    struct srv_json *d = t_parse("[1e-50, -3.4028234663852886e38, 3.4028235e38, -3.40282356e38]");
    assert_int_equal(srv_json_read(d, srv_json_root(d), SRV_F32, g, 4, "input", &err), NN_OK);
    assert_memory_equal(f, g, sizeof f);
    srv_json_free(d);
    double over[2] = {1, 1e39};
    assert_int_equal(srv_wire_convert(SRV_WIRE_FP64, over, 2, SRV_F32, f, "input", &err),
                     NN_EINVAL);
    assert_string_equal(err.msg, "input: 1e+39 at index 1 is out of range for float32");
    over[1] = 0x1.ffffffp127; /* halfway to the next power of two: rounds to inf */
    assert_int_equal(srv_wire_convert(SRV_WIRE_FP64, over, 2, SRV_F32, f, "input", &err),
                     NN_EINVAL);
    assert_contains(err.msg, "at index 1 is out of range for float32");
    assert_int_equal(srv_wire_convert(SRV_WIRE_FP64, over, 2, SRV_F64, ds, "input", &err), NN_OK);
}

/* A class index is an integral float (-0 included) within int64. */
static void test_wire_class_index(void **state)
{
    (void)state;
    float fs[4] = {0, -0.0f, 3, 2.5f};
    double ds[3] = {1, 4, 9.3e18};
    int64_t iv[4];
    struct nn_err err;
    assert_int_equal(srv_wire_convert(SRV_WIRE_FP32, fs, 3, SRV_I64, iv, "target", &err), NN_OK);
    assert_true(iv[1] == 0 && iv[2] == 3);
    assert_int_equal(srv_wire_convert(SRV_WIRE_FP32, fs, 4, SRV_I64, iv, "target", &err),
                     NN_EINVAL);
    assert_string_equal(err.msg, "target: 2.5 at index 3 is not a class index");
    assert_int_equal(srv_wire_convert(SRV_WIRE_FP64, ds, 3, SRV_I64, iv, "target", &err),
                     NN_EINVAL);
    assert_string_equal(err.msg, "target: 9.3e+18 at index 2 is not a class index");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        /* float text */
        cmocka_unit_test(test_f32_special_values_round_trip),
        cmocka_unit_test(test_f32_every_exponent_round_trips),
        cmocka_unit_test(test_f32_random_bits_1e6_round_trip),
        cmocka_unit_test(test_f32_shortest_text),
        cmocka_unit_test(test_f32_never_longer_than_shortest),
        cmocka_unit_test(test_f64_round_trip),
        cmocka_unit_test(test_f64_shortest_text),
        cmocka_unit_test(test_f32_read_rounds_once),
        cmocka_unit_test(test_f64_read_keeps_what_f32_cannot),
        cmocka_unit_test(test_num_read_says_why_and_where),
        cmocka_unit_test(test_num_read_matches_strtof),
        cmocka_unit_test(test_row_to_str_stops_at_nonfinite),
        /* the parser: errors */
        cmocka_unit_test(test_parse_empty_body),
        cmocka_unit_test(test_parse_data_after_the_value),
        cmocka_unit_test(test_parse_unexpected_end),
        cmocka_unit_test(test_parse_object_syntax),
        cmocka_unit_test(test_parse_array_syntax),
        cmocka_unit_test(test_parse_literals),
        cmocka_unit_test(test_parse_string_escape_errors),
        cmocka_unit_test(test_parse_u0000_refused),
        cmocka_unit_test(test_parse_control_character_refused),
        cmocka_unit_test(test_parse_nan_and_infinity_hint),
        cmocka_unit_test(test_parse_valid_documents),
        cmocka_unit_test(test_parse_unescapes_strings),
        cmocka_unit_test(test_parse_nul_bytes),
        cmocka_unit_test(test_parse_reads_by_length),
        /* the parser: UTF-8 */
        cmocka_unit_test(test_utf8_valid_strings_and_keys),
        cmocka_unit_test(test_utf8_invalid_sequences_refused),
        cmocka_unit_test(test_utf8_outside_strings_refused),
        /* the parser: numbers */
        cmocka_unit_test(test_scalar_number_grammar_at_parse),
        cmocka_unit_test(test_numarray_number_grammar),
        cmocka_unit_test(test_numarray_grammar_checked_when_read),
        cmocka_unit_test(test_numarray_error_names_the_byte),
        cmocka_unit_test(test_numarray_separators_checked_when_read),
        cmocka_unit_test(test_numarray_good_numbers),
        cmocka_unit_test(test_scalar_numbers),
        /* the parser: structure */
        cmocka_unit_test(test_strings_holding_brackets),
        cmocka_unit_test(test_mixed_arrays),
        cmocka_unit_test(test_ragged_with_a_string_is_generic),
        cmocka_unit_test(test_ragged_messages),
        cmocka_unit_test(test_ragged_child_of_generic_array),
        cmocka_unit_test(test_rank_over_8_is_generic),
        cmocka_unit_test(test_nesting_depth_64),
        cmocka_unit_test(test_duplicate_keys),
        cmocka_unit_test(test_duplicate_keys_after_unescaping),
        cmocka_unit_test(test_duplicate_keys_many),
        /* the parser: caps and memory */
        cmocka_unit_test(test_max_values_cap),
        cmocka_unit_test(test_max_values_counted_before_allocation),
        cmocka_unit_test(test_parse_out_of_memory),
        /* accessors */
        cmocka_unit_test(test_get_with_escaped_keys),
        cmocka_unit_test(test_key_unescaped_and_cut),
        cmocka_unit_test(test_keydup_whole_key),
        cmocka_unit_test(test_unknown_key),
        cmocka_unit_test(test_str_length_and_cut),
        cmocka_unit_test(test_accessors_take_zero),
        cmocka_unit_test(test_positions_and_children),
        cmocka_unit_test(test_read_checks_count_and_type),
        /* tensors */
        cmocka_unit_test(test_tensor_nested_form),
        cmocka_unit_test(test_tensor_object_form),
        cmocka_unit_test(test_tensor_object_form_nested_data),
        cmocka_unit_test(test_tensor_empty),
        cmocka_unit_test(test_tensor_not_a_tensor),
        cmocka_unit_test(test_tensor_object_errors),
        cmocka_unit_test(test_tensor_shape_errors),
        cmocka_unit_test(test_tensor_range_errors),
        cmocka_unit_test(test_tensor_caps),
        cmocka_unit_test(test_tensor_shape_overflow),
        cmocka_unit_test(test_tensor_int64_targets),
        cmocka_unit_test(test_tensor_int64_errors),
        cmocka_unit_test(test_int64_exact_past_2_53),
        cmocka_unit_test(test_tensor_shape_reader),
        /* messages */
        cmocka_unit_test(test_messages_cut_keys_at_utf8_boundary),
        cmocka_unit_test(test_messages_cut_mid_character_written_valid),
        /* golden files, mutations */
        cmocka_unit_test(test_golden_files),
        cmocka_unit_test(test_random_mutations),
        /* the writer */
        cmocka_unit_test(test_encode_forms),
        cmocka_unit_test(test_encode_commas_and_nesting),
        cmocka_unit_test(test_encode_top_level_values),
        cmocka_unit_test(test_encode_escapes_control_characters),
        cmocka_unit_test(test_encode_invalid_utf8_as_question_mark),
        cmocka_unit_test(test_encode_nonfinite_names_tensor_and_index),
        cmocka_unit_test(test_encode_nonfinite_number),
        cmocka_unit_test(test_encode_errors_are_sticky),
        cmocka_unit_test(test_encode_cap),
        cmocka_unit_test(test_encode_tensor_under_cap),
        cmocka_unit_test(test_encode_reserve_is_a_guess),
        cmocka_unit_test(test_encode_depth_cap),
        cmocka_unit_test(test_encode_out_of_memory),
        cmocka_unit_test(test_encode_large_nested),
        cmocka_unit_test(test_encode_f32_document_round_trip),
        cmocka_unit_test(test_encode_read_by_cjson),
        /* binary wire data */
        cmocka_unit_test(test_wire_table),
        cmocka_unit_test(test_wire_convert_every_type),
        cmocka_unit_test(test_wire_64_bit_integers),
        cmocka_unit_test(test_wire_nonfinite),
        cmocka_unit_test(test_wire_f64_to_f32_range),
        cmocka_unit_test(test_wire_class_index),
    };
    return cmocka_run_group_tests_name("json", tests, NULL, NULL);
}
