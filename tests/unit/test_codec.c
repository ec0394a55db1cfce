/* The JSON codec (server/codec.h): float text both ways for every float32 bit
 * class (shortest and round-trip exact), the strict number grammar, the scanner
 * (strings with brackets, escapes, UTF-8, NUL bytes, nesting, trailing data),
 * numeric spans and their shapes (ragged arrays named by path), tensors in both
 * forms with their messages and caps, int64 targets, placeholders that clients
 * cannot forge, duplicate keys, and the encoder's forms and non-finite refusal. */
#include <dirent.h>
#include <float.h>
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "server/codec.h"

/* ---- helpers ------------------------------------------------------------- */
static uint64_t rng = 0x9E3779B97F4A7C15ull;
static uint64_t rnd64(void)
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

#define assert_contains(hay, needle)                                                   \
    do {                                                                               \
        const char *h_ = (hay), *n_ = (needle);                                        \
        if (!h_ || !strstr(h_, n_)) fail_msg("\"%s\" does not contain \"%s\"", h_ ? h_ : "(null)", n_); \
    } while (0)

static struct srv_doc *parse_ok(const char *s)
{
    struct nn_err err = {{0}};
    struct srv_doc *d = srv_doc_parse(s, strlen(s), &err);
    if (!d) fail_msg("parse of %s failed: %s", s, err.msg);
    return d;
}

/* Parse must fail with a message containing want. */
static void parse_err_n(const char *s, size_t n, const char *want)
{
    struct nn_err err = {{0}};
    struct srv_doc *d = srv_doc_parse(s, n, &err);
    if (d) {
        srv_doc_free(d);
        fail_msg("parse of %.*s succeeded, expected \"%s\"", (int)n, s, want);
    }
    assert_contains(err.msg, want);
}
static void parse_err(const char *s, const char *want)
{
    parse_err_n(s, strlen(s), want);
}

static const cJSON *get(const struct srv_doc *d, const char *key)
{
    return cJSON_GetObjectItemCaseSensitive(srv_doc_root(d), key);
}

/* Parses {"input": X} as a float32 tensor; returns the status, message in err. */
static enum nn_status tensor_of(const char *body, enum nn_dtype dt, size_t max, struct nn_tensor *t,
                                enum srv_form *form, struct nn_err *err)
{
    struct srv_doc *d = srv_doc_parse(body, strlen(body), err);
    if (!d) return NN_EINVAL + 100;
    enum nn_status st = srv_doc_tensor(d, get(d, "input"), dt, max, "input", t, form, err);
    srv_doc_free(d);
    return st;
}

static void tensor_err(const char *body, enum nn_status want_st, const char *want)
{
    struct nn_err err = {{0}};
    struct nn_tensor t;
    enum nn_status st = tensor_of(body, NN_F32, 1000, &t, NULL, &err);
    if (st == NN_OK) {
        free(t.data);
        fail_msg("%s: tensor accepted, expected \"%s\"", body, want);
    }
    if (st != want_st) fail_msg("%s: status %d (%s), expected %d", body, st, err.msg, want_st);
    assert_contains(err.msg, want);
}

static char *print_doc(struct srv_out *o, cJSON *root)
{
    struct nn_err err = {{0}};
    size_t len;
    char *s = srv_out_print(o, root, &len, &err);
    if (!s) fail_msg("print failed: %s", err.msg);
    assert_int_equal(strlen(s), len);
    return s;
}

/* ---- float text ------------------------------------------------------------ */
static void check_f32_roundtrip(float v)
{
    char buf[SRV_F32_MAXLEN + 1];
    size_t n = srv_f32_to_str(v, buf);
    assert_true(n > 0 && n <= 16);
    buf[n] = '\0';
    float back = strtof(buf, NULL);
    if (f2u(back) != f2u(v)) fail_msg("%a printed as %s reads back as %a", (double)v, buf, (double)back);
    /* and through the codec's own reader */
    const char *stop;
    float mine;
    assert_true(srv_f32_parse(buf, buf + n, &mine, &stop));
    assert_ptr_equal(stop, buf + n);
    assert_int_equal(f2u(mine), f2u(v));
}

static void test_f32_special_classes(void **state)
{
    (void)state;
    const float vals[] = {0.0f, -0.0f, 1.0f, -1.0f, 0.1f, 0.2f, 0.3f, 1.0f / 3, 2.0f / 3, FLT_MIN,
                          -FLT_MIN, FLT_MAX, -FLT_MAX, FLT_TRUE_MIN, -FLT_TRUE_MIN,
                          u2f(0x007fffff) /* largest subnormal */, u2f(0x00400000), 16777216.0f,
                          16777217.0f, 1e20f, 1e-20f, 123456789.0f, 1e10f, 9.999999e-5f, 1e-5f,
                          3.4028234e38f, 1.17549435e-38f, 8388608.5f, 0.5f, 1e7f, 1e-7f};
    for (size_t i = 0; i < sizeof vals / sizeof *vals; i++) check_f32_roundtrip(vals[i]);
    /* every exponent (incl. subnormals), with edge and random mantissas */
    for (uint32_t ex = 0; ex < 255; ex++) {
        uint32_t mants[] = {0, 1, 2, 0x7fffff, 0x7ffffe, 0x400000, 0x3fffff,
                            (uint32_t)rnd64() & 0x7fffff, (uint32_t)rnd64() & 0x7fffff};
        for (size_t m = 0; m < sizeof mants / sizeof *mants; m++)
            for (uint32_t sgn = 0; sgn < 2; sgn++)
                check_f32_roundtrip(u2f(sgn << 31 | ex << 23 | mants[m]));
    }
}

static void test_f32_random_bits_1e6(void **state)
{
    (void)state;
    size_t n = 1000000, done = 0;
    while (done < n) {
        uint32_t u = (uint32_t)rnd64();
        if (((u >> 23) & 0xff) == 0xff) continue; /* inf/nan are not JSON */
        check_f32_roundtrip(u2f(u));
        done++;
    }
}

static void test_f32_shortest(void **state)
{
    (void)state;
    struct {
        float v;
        const char *s;
    } cases[] = {{0.1f, "0.1"},       {2.0f, "2"},          {1e20f, "1e+20"},
                 {-0.0f, "-0"},       {0.0f, "0"},          {FLT_TRUE_MIN, "1e-45"},
                 {FLT_MAX, "3.4028235e+38"}, {-1.5f, "-1.5"}, {0.3f, "0.3"},
                 {16777216.0f, "16777216"}, {1e-5f, "1e-05"}, {100.0f, "100"}};
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        char buf[SRV_F32_MAXLEN + 1];
        size_t n = srv_f32_to_str(cases[i].v, buf);
        buf[n] = '\0';
        assert_string_equal(buf, cases[i].s);
    }
    /* shortest: no %.*g with fewer significant digits reads back to the same float */
    for (int k = 0; k < 2000; k++) {
        float v;
        do v = u2f((uint32_t)rnd64());
        while (!isfinite(v));
        char buf[SRV_F32_MAXLEN + 1], alt[64];
        size_t n = srv_f32_to_str(v, buf);
        buf[n] = '\0';
        int digits = 0, lead = 1; /* significant digits */
        for (const char *c = buf; *c && *c != 'e'; c++) {
            if (*c == '0' && lead) continue;
            if (*c >= '1' && *c <= '9') lead = 0;
            digits += *c >= '0' && *c <= '9';
        }
        for (int p = 1; p <= 9; p++) {
            snprintf(alt, sizeof alt, "%.*g", p, (double)v);
            if (f2u(strtof(alt, NULL)) == f2u(v)) {
                /* ours may carry trailing zeros of an integer ("100"), never more digits */
                if (!strchr(buf, '.') && !strchr(buf, 'e')) break;
                if (digits > p) fail_msg("%s is longer than %s", buf, alt);
                break;
            }
        }
    }
}

static void test_f64_roundtrip(void **state)
{
    (void)state;
    const double vals[] = {0.0, -0.0, 0.1, 1.0 / 3, DBL_MAX, DBL_MIN, DBL_TRUE_MIN, -DBL_TRUE_MIN,
                           1e300, 9007199254740993.0, 2.0};
    char buf[SRV_F64_MAXLEN + 1];
    for (size_t i = 0; i < sizeof vals / sizeof *vals + 200000; i++) {
        double v;
        if (i < sizeof vals / sizeof *vals) v = vals[i];
        else do v = u2d(rnd64());
            while (!isfinite(v));
        size_t n = srv_f64_to_str(v, buf);
        buf[n] = '\0';
        if (d2u(strtod(buf, NULL)) != d2u(v)) fail_msg("%a printed as %s", v, buf);
    }
    size_t n = srv_f64_to_str(0.1, buf);
    buf[n] = '\0';
    assert_string_equal(buf, "0.1");
    n = srv_f64_to_str(5e-324, buf);
    buf[n] = '\0';
    assert_string_equal(buf, "5e-324");
}

/* Every finite float32 class through a whole document: encode a tensor, decode it. */
static void test_f32_document_roundtrip(void **state)
{
    (void)state;
    size_t n = 200000;
    float *v = malloc(n * sizeof *v);
    assert_non_null(v);
    for (size_t i = 0; i < n; i++) {
        do v[i] = u2f((uint32_t)rnd64());
        while (!isfinite(v[i]));
    }
    v[0] = -0.0f;
    v[1] = FLT_TRUE_MIN;
    v[2] = FLT_MAX;
    struct nn_tensor t = {NN_F32, 2, {n / 100, 100}, n, v};
    for (int form = 0; form < SRV_FORM_COUNT; form++) {
        struct srv_out *o = srv_out_new();
        cJSON *root = cJSON_CreateObject();
        cJSON_AddItemToObject(root, "input", srv_out_tensor(o, &t, form));
        char *s = print_doc(o, root);
        struct nn_err err = {{0}};
        struct nn_tensor back;
        enum srv_form f;
        assert_int_equal(tensor_of(s, NN_F32, 0, &back, &f, &err), NN_OK);
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
        cJSON_Delete(root);
        srv_out_free(o);
    }
    free(v);
}

/* ---- grammar --------------------------------------------------------------- */
static void test_number_grammar(void **state)
{
    (void)state;
    const char *bad[] = {"01", "1.", ".5", "+1", "NaN", "Infinity", "-Infinity", "-", "1e", "1e+",
                         "0x10", "1.2.3", "--1", "1e5e", "- 1", "nan", "inf", "1.e5", "00", "-01",
                         "1e5.5", "0.", "1_000", "١"};
    char body[128];
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        snprintf(body, sizeof body, "{\"input\": [1, %s, 2]}", bad[i]);
        parse_err(body, "invalid JSON at byte");
        snprintf(body, sizeof body, "{\"slope\": %s}", bad[i]);
        parse_err(body, "invalid JSON at byte");
        snprintf(body, sizeof body, "[%s]", bad[i]);
        parse_err(body, "invalid JSON at byte");
    }
    parse_err("{\"input\": [1, 01]}", "invalid JSON at byte 15: invalid number");
    const char *good[] = {"0", "-0", "0.0", "1e5", "1E+5", "1e-5", "-0.0e-0", "12345678901234567890",
                          "1.5E300", "-123.456e-7"};
    for (size_t i = 0; i < sizeof good / sizeof *good; i++) {
        snprintf(body, sizeof body, "{\"input\": [%s, %s], \"s\": %s}", good[i], good[i], good[i]);
        srv_doc_free(parse_ok(body));
    }
    /* scalars stay cJSON numbers; one that overflows a double is refused */
    struct srv_doc *d = parse_ok("{\"negative_slope\": 0.2, \"n\": -3}");
    assert_true(cJSON_IsNumber(get(d, "negative_slope")));
    assert_true(get(d, "negative_slope")->valuedouble == 0.2);
    assert_int_equal(srv_doc_nspans(d), 0);
    srv_doc_free(d);
    parse_err("{\"layers\": [{\"alpha\": 1e400}]}", "layers[0].alpha: 1e400 is out of range");
}

static void test_syntax_errors(void **state)
{
    (void)state;
    parse_err("", "empty body");
    parse_err("   \n\t ", "empty body");
    parse_err("{\"a\": 1} x", "invalid JSON at byte 9: unexpected data after the JSON value");
    parse_err("{\"a\": 1}}", "unexpected data");
    parse_err("[1, 2] [3]", "unexpected data");
    parse_err("{\"a\": [1, 2}", "expected ',' or ']'");
    parse_err("{\"a\": [1 2]}", "expected ',' or ']'");
    parse_err("{\"a\": [1,]}", "expected a value");
    parse_err("{\"a\": [,1]}", "expected a value");
    parse_err("{\"a\": [1, 2", "unexpected end of input");
    parse_err("{\"a\": [1, \"x\",]}", "expected a value");
    parse_err("{\"a\" 1}", "expected ':'");
    parse_err("{a: 1}", "expected a string key");
    parse_err("{\"a\": 1,}", "expected a string key");
    parse_err("{\"a\": tru}", "expected a value");
    parse_err("{\"a\": \"x}", "unterminated string");
    parse_err("{\"a\": \"\\x\"}", "invalid escape");
    parse_err("{\"a\": \"\\u12\"}", "invalid \\u escape");
    parse_err("{\"a\": \"\\ud800\"}", "invalid \\u escape");      /* lone high surrogate */
    parse_err("{\"a\": \"\\udc00\"}", "invalid \\u escape");      /* lone low surrogate */
    parse_err("{\"a\": \"\\u0000\"}", "\\u0000");
    parse_err("{\"a\": \"tab\there\"}", "control character");
    parse_err("'a'", "expected a value");
    srv_doc_free(parse_ok("{\"a\": \"\\ud83d\\ude00 \\u00e9 \\\" \\\\ \\/ \\b\\f\\n\\r\\t\"}"));
    srv_doc_free(parse_ok(" \r\n\t{ \"a\" : [ 1 , 2 ] , \"b\" : { } , \"c\" : [ ] } \n"));
    srv_doc_free(parse_ok("true"));
    srv_doc_free(parse_ok("null"));
    srv_doc_free(parse_ok("\"str\""));
    srv_doc_free(parse_ok("-0.5"));
}

static void test_nul_bytes(void **state)
{
    (void)state;
    parse_err_n("{\"a\": 1}\0", 9, "invalid JSON at byte 8");
    parse_err_n("{\"a\": \"x\0y\"}", 12, "control character 0x00");
    parse_err_n("{\"a\": [1,\0 2]}", 14, "invalid JSON at byte 9");
    parse_err_n("\0", 1, "invalid JSON at byte 0");
    /* the body is taken by length, not up to a NUL */
    parse_err_n("{\"a\": 1}", 5, "unexpected end of input");
}

static void test_utf8(void **state)
{
    (void)state;
    srv_doc_free(parse_ok("{\"caf\xc3\xa9\": \"\xe2\x82\xac \xf0\x9f\x98\x80 \xf4\x8f\xbf\xbf\"}"));
    const char *bad[] = {"\xff", "\xc0\x80", "\xc3", "\xe2\x82", "\xed\xa0\x80", "\xf4\x90\x80\x80",
                         "\xf8\x88\x80\x80\x80", "\x80", "\xe0\x80\xaf"};
    char body[64];
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        snprintf(body, sizeof body, "{\"a\": \"x%sy\"}", bad[i]);
        parse_err(body, "invalid UTF-8");
    }
    parse_err("{\"a\": 1, \xc3\xa9: 2}", "expected a string key");
    parse_err("\xef\xbb\xbf{}", "invalid JSON at byte 0"); /* no BOM */
}

static void test_strings_with_brackets(void **state)
{
    (void)state;
    struct srv_doc *d = parse_ok("{\"a\": \"[1, 2\", \"b\\\"[\": \"x\\\\\\\"]\", \"c]\": \"]]\", "
                                 "\"input\": [[1, 2]], \"s\": \"[3]\"}");
    assert_int_equal(srv_doc_nspans(d), 1);
    assert_string_equal(get(d, "a")->valuestring, "[1, 2");
    assert_string_equal(get(d, "b\"[")->valuestring, "x\\\"]");
    assert_string_equal(get(d, "c]")->valuestring, "]]");
    assert_string_equal(get(d, "s")->valuestring, "[3]");
    size_t shape[NN_MAX_DIMS];
    int nd;
    size_t n;
    assert_true(srv_doc_numarray(d, get(d, "input"), shape, &nd, &n));
    assert_int_equal(nd, 2);
    assert_int_equal(shape[0], 1);
    assert_int_equal(shape[1], 2);
    assert_false(srv_doc_numarray(d, get(d, "s"), shape, &nd, &n));
    srv_doc_free(d);
}

static void test_mixed_arrays(void **state)
{
    (void)state;
    /* an array with a non-number is left to cJSON; its numeric children are spans */
    struct srv_doc *d = parse_ok("{\"layers\": [{\"type\": \"linear\", \"weight\": [[1, 2]], "
                                 "\"bias\": [3]}, [4, 5], \"x\", [[6], [7]]], \"m\": [1, [2], \"s\"]}");
    assert_int_equal(srv_doc_nspans(d), 5); /* weight, bias, [4,5], [[6],[7]], m's [2] */
    const cJSON *layers = get(d, "layers");
    assert_true(cJSON_IsArray(layers));
    assert_int_equal(cJSON_GetArraySize(layers), 4);
    const cJSON *l0 = cJSON_GetArrayItem(layers, 0);
    assert_string_equal(cJSON_GetObjectItem(l0, "type")->valuestring, "linear");
    size_t shape[NN_MAX_DIMS], n;
    int nd;
    assert_true(srv_doc_numarray(d, cJSON_GetArrayItem(layers, 3), shape, &nd, &n));
    assert_int_equal(nd, 2);
    assert_int_equal(n, 2);
    /* placeholders are not strings nor arrays to a cJSON user */
    const cJSON *w = cJSON_GetObjectItem(l0, "weight");
    assert_false(cJSON_IsString(w));
    assert_false(cJSON_IsArray(w));
    double bias;
    struct nn_err err;
    assert_int_equal(srv_doc_numarray_read(d, cJSON_GetObjectItem(l0, "bias"), SRV_F64, &bias, 1,
                                           "bias", &err),
                     NN_OK);
    assert_true(bias == 3.0);
    srv_doc_free(d);
    /* rank > 8 is not a tensor: left to cJSON, refused by srv_doc_tensor */
    tensor_err("{\"input\": [[[[[[[[[1]]]]]]]]]}", NN_EINVAL, "input: expected a tensor");
    struct nn_tensor t;
    assert_int_equal(tensor_of("{\"input\": [[[[[[[[1]]]]]]]]}", NN_F32, 0, &t, NULL, &err), NN_OK);
    assert_int_equal(t.ndim, 8);
    free(t.data);
}

static void test_ragged(void **state)
{
    (void)state;
    parse_err("{\"input\": [[1, 2], [3]]}",
              "input: ragged array: input[1] has shape [1] but input[0] has shape [2]");
    parse_err("{\"input\": [[1, 2], 3]}", "input: ragged array: input[1] is a number but input[0] is an array");
    parse_err("{\"input\": [1, [2]]}", "input[1] is an array but input[0] is a number");
    parse_err("{\"layers\": [{\"weight\": [[[1], [2]], [[3], [4, 5]]]}]}",
              "layers[0].weight: ragged array: layers[0].weight[1][1] has shape [2] but "
              "layers[0].weight[1][0] has shape [1]");
    parse_err("{\"x\": [[], [1]]}", "x: ragged array");
    parse_err("[[1], [1, 2]]", "ragged array at byte 0: [1] has shape [2] but [0] has shape [1]");
    /* a ragged array holding a string is not numeric: it is cJSON's, not an error */
    srv_doc_free(parse_ok("{\"x\": [[1, 2], [3], \"s\"]}"));
    srv_doc_free(parse_ok("{\"x\": [1, [2], \"s\"]}"));
    /* a ragged numeric child of a non-numeric array is still an error */
    parse_err("{\"x\": [\"s\", [[1], [2, 3]]]}", "x[1]: ragged array");
}

static void test_deep_nesting(void **state)
{
    (void)state;
    size_t n = 100000;
    char *s = malloc(2 * n + 8);
    assert_non_null(s);
    memset(s, '[', n);
    parse_err_n(s, n, "nesting deeper than 64");
    memset(s, ']', 2 * n);
    memset(s, '[', n);
    parse_err_n(s, 2 * n, "nesting deeper than 64");
    for (size_t i = 0; i < n / 5; i++) memcpy(s + 5 * i, "{\"a\":", 5);
    parse_err_n(s, n, "nesting deeper than 64");
    /* [[...[1]...]] nested 64 + 8 deep: the outer 64 are generic, the inner 8 a span */
    size_t k = 0;
    for (int i = 0; i < 64 + 8; i++) s[k++] = '[';
    s[k++] = '1';
    for (int i = 0; i < 64 + 8; i++) s[k++] = ']';
    struct nn_err err;
    struct srv_doc *d = srv_doc_parse(s, k, &err);
    assert_non_null(d);
    srv_doc_free(d);
    k = 0;
    for (int i = 0; i < 65 + 8; i++) s[k++] = '[';
    s[k++] = '1';
    for (int i = 0; i < 65 + 8; i++) s[k++] = ']';
    parse_err_n(s, k, "nesting deeper than 64");
    /* max_depth of the _ex form */
    assert_int_equal(srv_doc_parse_ex("{\"a\": {\"b\": {}}}", 16, 2, &d, &err), NN_EINVAL);
    assert_contains(err.msg, "nesting deeper than 2");
    assert_int_equal(srv_doc_parse_ex("{\"a\": {\"b\": {}}}", 16, 3, &d, &err), NN_OK);
    srv_doc_free(d);
    free(s);
}

static void test_duplicate_keys(void **state)
{
    (void)state;
    parse_err("{\"input\": [1], \"input\": [2]}", "duplicate key \"input\"");
    parse_err("{\"layers\": [{\"type\": \"relu\"}, {\"bias\": 1, \"type\": \"x\", \"bias\": 2}]}",
              "layers[1]: duplicate key \"bias\"");
    /* compared after unescaping */
    parse_err("{\"a\": 1, \"\\u0061\": 2}", "duplicate key \"a\"");
    /* many keys (the sorted path) */
    char *s = malloc(64 * 1000);
    size_t o = 0;
    o += (size_t)sprintf(s + o, "{");
    for (int i = 0; i < 1000; i++) o += (size_t)sprintf(s + o, "%s\"k%d\": %d", i ? "," : "", i, i);
    o += (size_t)sprintf(s + o, "}");
    srv_doc_free(parse_ok(s));
    o -= 1;
    o += (size_t)sprintf(s + o, ", \"k500\": 1}");
    parse_err(s, "duplicate key \"k500\"");
    free(s);
}

static void test_placeholder_forgery(void **state)
{
    (void)state;
    /* strings shaped like placeholders, without the process nonce, stay strings */
    struct srv_doc *d = parse_ok("{\"input\": \"\\u00010000000000000000:0\", \"b\": [1], "
                                 "\"c\": \"\\u0001\", \"d\": \"\\u0001ffffffffffffffff:1\"}");
    const cJSON *in = get(d, "input");
    assert_true(cJSON_IsString(in));
    assert_string_equal(in->valuestring, "\x01" "0000000000000000:0");
    assert_false(srv_doc_numarray(d, in, NULL, NULL, NULL));
    assert_true(cJSON_IsString(get(d, "c")));
    assert_true(cJSON_IsString(get(d, "d")));
    assert_true(srv_doc_numarray(d, get(d, "b"), NULL, NULL, NULL));
    struct nn_err err;
    struct nn_tensor t;
    assert_int_equal(srv_doc_tensor(d, in, NN_F32, 0, "input", &t, NULL, &err), NN_EINVAL);
    assert_contains(err.msg, "input: expected a tensor");
    srv_doc_free(d);
    /* a placeholder from another document is not a numeric array of this one */
    struct srv_doc *d1 = parse_ok("{\"a\": [1], \"b\": [2], \"c\": [3]}");
    struct srv_doc *d2 = parse_ok("{\"a\": [1]}");
    assert_false(srv_doc_numarray(d2, get(d1, "c"), NULL, NULL, NULL));
    srv_doc_free(d1);
    srv_doc_free(d2);
}

/* ---- tensors ---------------------------------------------------------------- */
static void test_tensor_forms(void **state)
{
    (void)state;
    struct nn_err err;
    struct nn_tensor t;
    enum srv_form f;
    assert_int_equal(tensor_of("{\"input\": [[1, 2], [3, 4]]}", NN_F32, 0, &t, &f, &err), NN_OK);
    assert_int_equal(f, SRV_FORM_NESTED);
    assert_int_equal(t.dtype, NN_F32);
    assert_int_equal(t.ndim, 2);
    assert_int_equal(t.numel, 4);
    assert_true(((float *)t.data)[3] == 4.0f);
    free(t.data);
    assert_int_equal(tensor_of("{\"input\": {\"shape\": [2, 3], \"data\": [1, 2, 3, 4, 5, 6]}}",
                               NN_F64, 0, &t, &f, &err),
                     NN_OK);
    assert_int_equal(f, SRV_FORM_OBJECT);
    assert_int_equal(t.dtype, NN_F64);
    assert_int_equal(t.ndim, 2);
    assert_int_equal(t.shape[1], 3);
    assert_true(((double *)t.data)[5] == 6.0);
    free(t.data);
    /* nested data of exactly the shape is accepted in the object form */
    assert_int_equal(tensor_of("{\"input\": {\"data\": [[1, 2, 3], [4, 5, 6]], \"shape\": [2, 3]}}",
                               NN_F32, 0, &t, &f, &err),
                     NN_OK);
    assert_true(((float *)t.data)[4] == 5.0f);
    free(t.data);
    /* empty tensors */
    assert_int_equal(tensor_of("{\"input\": []}", NN_F32, 0, &t, &f, &err), NN_OK);
    assert_int_equal(t.numel, 0);
    assert_non_null(t.data);
    free(t.data);
    assert_int_equal(tensor_of("{\"input\": {\"shape\": [0, 3], \"data\": []}}", NN_F32, 0, &t, &f,
                               &err),
                     NN_OK);
    assert_int_equal(t.ndim, 2);
    assert_int_equal(t.numel, 0);
    free(t.data);
    /* f32 is parsed as float32 directly (no double rounding): 1.00000005960464477539062500001
     * is just above the midpoint between 1 and 1+2^-23, as float32 it rounds up */
    assert_int_equal(tensor_of("{\"input\": [1.00000005960464477539062500001, 1e-45, -0, 1e-50]}",
                               NN_F32, 0, &t, &f, &err),
                     NN_OK);
    assert_int_equal(f2u(((float *)t.data)[0]), 0x3f800001u);
    assert_int_equal(f2u(((float *)t.data)[1]), 1u);
    assert_int_equal(f2u(((float *)t.data)[2]), 0x80000000u);
    assert_int_equal(f2u(((float *)t.data)[3]), 0u); /* underflow rounds to zero */
    free(t.data);
    assert_int_equal(tensor_of("{\"input\": [1e39, 1e-320]}", NN_F64, 0, &t, &f, &err), NN_OK);
    assert_true(((double *)t.data)[0] == 1e39);
    assert_true(((double *)t.data)[1] == 1e-320);
    free(t.data);
}

static void test_tensor_errors(void **state)
{
    (void)state;
    tensor_err("{\"input\": 3}", NN_EINVAL,
               "input: expected a tensor (nested arrays or {\"shape\", \"data\"})");
    tensor_err("{\"input\": \"x\"}", NN_EINVAL, "input: expected a tensor");
    tensor_err("{\"input\": null}", NN_EINVAL, "input: expected a tensor");
    tensor_err("{\"input\": [1, \"x\"]}", NN_EINVAL, "input: expected a tensor");
    tensor_err("{}", NN_EINVAL, "input: expected a tensor");
    tensor_err("{\"input\": {\"shape\": [2, 3], \"data\": [1, 2, 3, 4, 5]}}", NN_EINVAL,
               "input: data has 5 values but shape [2, 3] needs 6");
    tensor_err("{\"input\": {\"shape\": [2, 3], \"data\": [[1, 2], [3, 4], [5, 6]]}}", NN_EINVAL,
               "input: data has shape [3, 2] but shape is [2, 3]");
    tensor_err("{\"input\": {\"shape\": [2], \"data\": [1, 2], \"dtype\": \"float32\"}}", NN_EINVAL,
               "input: unknown field \"dtype\" in tensor (known: shape, data)");
    tensor_err("{\"input\": {\"data\": [1]}}", NN_EINVAL, "input: missing \"shape\"");
    tensor_err("{\"input\": {\"shape\": [1]}}", NN_EINVAL, "input: missing \"data\"");
    tensor_err("{\"input\": {\"shape\": 2, \"data\": [1, 2]}}", NN_EINVAL,
               "input.shape: expected a flat array of dimensions");
    tensor_err("{\"input\": {\"shape\": [[2]], \"data\": [1, 2]}}", NN_EINVAL,
               "input.shape: expected a flat array");
    tensor_err("{\"input\": {\"shape\": [2, -1], \"data\": [1, 2]}}", NN_EINVAL,
               "input.shape[1]: dimensions must be >= 0, got -1");
    tensor_err("{\"input\": {\"shape\": [2.5], \"data\": [1, 2]}}", NN_EINVAL,
               "input.shape: 2.5 is not an integer");
    tensor_err("{\"input\": {\"shape\": [], \"data\": [1]}}", NN_EINVAL,
               "input.shape: a tensor has 1 to 8 dimensions, got 0");
    tensor_err("{\"input\": {\"shape\": [1,1,1,1,1,1,1,1,1], \"data\": [1]}}", NN_EINVAL,
               "a tensor has 1 to 8 dimensions, got 9");
    tensor_err("{\"input\": {\"shape\": [1], \"data\": \"x\"}}", NN_EINVAL,
               "input.data: expected an array of numbers");
    tensor_err("{\"input\": [1e39]}", NN_EINVAL, "input: 1e39 is out of range for float32");
    tensor_err("{\"input\": [[1, 2], [3, -4e38]]}", NN_EINVAL, "input: -4e38 is out of range for float32");
    tensor_err("{\"input\": {\"shape\": [1], \"data\": [3.5e38]}}", NN_EINVAL,
               "input: 3.5e38 is out of range for float32");
    struct nn_err err;
    struct nn_tensor t;
    assert_int_equal(tensor_of("{\"input\": [1e309]}", NN_F64, 0, &t, NULL, &err), NN_EINVAL);
    assert_contains(err.msg, "input: 1e309 is out of range for float64");
}

/* Messages cut long keys on a UTF-8 boundary: they end up in JSON replies. */
static void test_messages_utf8(void **state)
{
    (void)state;
    char body[1024];
    size_t o = (size_t)sprintf(body, "{\"input\": {\"shape\": [1], \"data\": [1], \"");
    for (int i = 0; i < 200; i++) o += (size_t)sprintf(body + o, "\xc3\xa9");
    sprintf(body + o, "\": 1}}");
    for (int pass = 0; pass < 2; pass++) {
        struct nn_err err = {{0}};
        struct nn_tensor t;
        if (pass == 0) {
            assert_int_equal(tensor_of(body, NN_F32, 0, &t, NULL, &err), NN_EINVAL);
            assert_contains(err.msg, "unknown field");
        } else {
            char *w = malloc(600);
            memset(w, 'x', 250);
            strcpy(w + 250, "\xe2\x82\xac\xe2\x82\xac\xe2\x82\xac");
            struct srv_doc *d = parse_ok("{\"input\": 1}");
            assert_int_equal(srv_doc_tensor(d, get(d, "input"), NN_F32, 0, w, &t, NULL, &err),
                             NN_EINVAL);
            srv_doc_free(d);
            free(w);
        }
        cJSON *s = cJSON_CreateString(err.msg);
        char *txt = cJSON_PrintUnformatted(s);
        struct srv_doc *d = parse_ok(txt); /* the scanner validates UTF-8 */
        srv_doc_free(d);
        free(txt);
        cJSON_Delete(s);
    }
}

static void test_tensor_caps(void **state)
{
    (void)state;
    /* the cap (1000 in tensor_err) */
    char *s = malloc(16 * 1024);
    size_t o = (size_t)sprintf(s, "{\"input\": [");
    for (int i = 0; i < 1001; i++) o += (size_t)sprintf(s + o, "%s%d", i ? "," : "", i);
    sprintf(s + o, "]}");
    tensor_err(s, NN_ETOOBIG, "input: shape [1001] is over the limit of 1000 elements");
    free(s);
    tensor_err("{\"input\": {\"shape\": [10, 10, 11], \"data\": [1]}}", NN_ETOOBIG,
               "input: shape [10, 10, 11] is over the limit of 1000 elements");
    /* zero-sized but with a huge structure: refused too (a nested reply would be huge) */
    tensor_err("{\"input\": {\"shape\": [1000000000, 0], \"data\": []}}", NN_ETOOBIG,
               "over the limit");
    /* products overflowing size_t: 413, with or without a cap */
    tensor_err("{\"input\": {\"shape\": [4294967296, 4294967296, 2], \"data\": [1]}}", NN_ETOOBIG,
               "has too many elements");
    struct nn_err err;
    struct nn_tensor t;
    assert_int_equal(tensor_of("{\"input\": {\"shape\": [4294967296, 4294967296], \"data\": [1]}}",
                               NN_F32, 0, &t, NULL, &err),
                     NN_ETOOBIG);
    assert_int_equal(tensor_of("{\"input\": {\"shape\": [9223372036854775807, 3], \"data\": [1]}}",
                               NN_F32, 0, &t, NULL, &err),
                     NN_ETOOBIG);
    assert_int_equal(tensor_of("{\"input\": {\"shape\": [9223372036854775808], \"data\": [1]}}",
                               NN_F32, 0, &t, NULL, &err),
                     NN_EINVAL);
    assert_contains(err.msg, "out of range for int64");
    /* at the cap exactly: fine */
    assert_int_equal(tensor_of("{\"input\": {\"shape\": [2, 2], \"data\": [1, 2, 3, 4]}}", NN_F32,
                               4, &t, NULL, &err),
                     NN_OK);
    free(t.data);
}

static void test_tensor_i64(void **state)
{
    (void)state;
    struct srv_doc *d = parse_ok(
        "{\"a\": [0, 2, 1], \"b\": [3.0, 3e2, -0, 1E1], \"c\": [2.5], \"d\": 3, \"e\": 2.5, "
        "\"f\": {\"shape\": [], \"data\": [7]}, \"g\": [9223372036854775807, -9223372036854775808], "
        "\"h\": [9223372036854775808], \"i\": [1e300], \"j\": [9007199254740993.0], "
        "\"k\": {\"shape\": [2], \"data\": [[1], [2]]}, \"l\": \"x\"}");
    size_t shape[NN_MAX_DIMS];
    int nd;
    int64_t *v;
    struct nn_err err;
    assert_int_equal(srv_doc_tensor_i64(d, get(d, "a"), 0, "t", shape, &nd, &v, &err), NN_OK);
    assert_int_equal(nd, 1);
    assert_int_equal(shape[0], 3);
    assert_int_equal(v[1], 2);
    free(v);
    assert_int_equal(srv_doc_tensor_i64(d, get(d, "b"), 0, "t", shape, &nd, &v, &err), NN_OK);
    assert_int_equal(v[0], 3);
    assert_int_equal(v[1], 300);
    assert_int_equal(v[2], 0);
    assert_int_equal(v[3], 10);
    free(v);
    assert_int_equal(srv_doc_tensor_i64(d, get(d, "c"), 0, "loss.target", shape, &nd, &v, &err),
                     NN_EINVAL);
    assert_string_equal(err.msg, "loss.target: 2.5 is not an integer");
    assert_null(v);
    assert_int_equal(srv_doc_tensor_i64(d, get(d, "d"), 0, "t", shape, &nd, &v, &err), NN_OK);
    assert_int_equal(nd, 0);
    assert_int_equal(v[0], 3);
    free(v);
    assert_int_equal(srv_doc_tensor_i64(d, get(d, "e"), 0, "t", shape, &nd, &v, &err), NN_EINVAL);
    assert_contains(err.msg, "not an integer");
    assert_int_equal(srv_doc_tensor_i64(d, get(d, "f"), 0, "t", shape, &nd, &v, &err), NN_OK);
    assert_int_equal(nd, 0);
    assert_int_equal(v[0], 7);
    free(v);
    assert_int_equal(srv_doc_tensor_i64(d, get(d, "g"), 0, "t", shape, &nd, &v, &err), NN_OK);
    assert_true(v[0] == INT64_MAX);
    assert_true(v[1] == INT64_MIN);
    free(v);
    assert_int_equal(srv_doc_tensor_i64(d, get(d, "h"), 0, "t", shape, &nd, &v, &err), NN_EINVAL);
    assert_contains(err.msg, "t: 9223372036854775808 is out of range for int64");
    assert_int_equal(srv_doc_tensor_i64(d, get(d, "i"), 0, "t", shape, &nd, &v, &err), NN_EINVAL);
    assert_contains(err.msg, "out of range for int64");
    assert_int_equal(srv_doc_tensor_i64(d, get(d, "j"), 0, "t", shape, &nd, &v, &err), NN_EINVAL);
    assert_contains(err.msg, "too large to be exact");
    assert_int_equal(srv_doc_tensor_i64(d, get(d, "k"), 0, "t", shape, &nd, &v, &err), NN_EINVAL);
    assert_contains(err.msg, "t: data has shape [2, 1] but shape is [2]");
    assert_int_equal(srv_doc_tensor_i64(d, get(d, "l"), 0, "t", shape, &nd, &v, &err), NN_EINVAL);
    assert_contains(err.msg, "t: expected a tensor");
    assert_int_equal(srv_doc_tensor_i64(d, get(d, "a"), 2, "t", shape, &nd, &v, &err), NN_ETOOBIG);
    srv_doc_free(d);
}

static void test_cjson_built_arrays(void **state)
{
    (void)state;
    /* numeric arrays built with cJSON (not from a parsed body) work too */
    cJSON *a = cJSON_CreateArray();
    for (int r = 0; r < 2; r++) {
        cJSON *row = cJSON_CreateArray();
        for (int c = 0; c < 3; c++) cJSON_AddItemToArray(row, cJSON_CreateNumber(r * 3 + c + 0.5));
        cJSON_AddItemToArray(a, row);
    }
    size_t shape[NN_MAX_DIMS], n;
    int nd;
    assert_true(srv_doc_numarray(NULL, a, shape, &nd, &n));
    assert_int_equal(nd, 2);
    assert_int_equal(shape[1], 3);
    assert_int_equal(n, 6);
    float f[6];
    struct nn_err err;
    assert_int_equal(srv_doc_numarray_read(NULL, a, SRV_F32, f, 6, "a", &err), NN_OK);
    assert_true(f[5] == 5.5f);
    int64_t iv[6];
    assert_int_equal(srv_doc_numarray_read(NULL, a, SRV_I64, iv, 6, "a", &err), NN_EINVAL);
    assert_contains(err.msg, "a: 0.5 is not an integer");
    assert_int_equal(srv_doc_numarray_read(NULL, a, SRV_F32, f, 5, "a", &err), NN_EINVAL);
    cJSON_AddItemToArray(a, cJSON_CreateString("x"));
    assert_false(srv_doc_numarray(NULL, a, shape, &nd, &n));
    cJSON_Delete(a);
}

/* Every golden case of ../shared/golden parses and its input is a tensor. */
static void test_golden_files(void **state)
{
    (void)state;
    const char *dir = getenv("RELUD_GOLDEN_DIR") ? getenv("RELUD_GOLDEN_DIR") : "../shared/golden";
    DIR *dh = opendir(dir);
    if (!dh) {
        dh = opendir("/work/shared/golden");
        dir = "/work/shared/golden";
    }
    if (!dh) skip();
    int count = 0;
    struct dirent *de;
    while ((de = readdir(dh))) {
        size_t nl = strlen(de->d_name);
        if (nl < 6 || strcmp(de->d_name + nl - 5, ".json") != 0) continue;
        char path[1024];
        snprintf(path, sizeof path, "%s/%s", dir, de->d_name);
        FILE *fp = fopen(path, "rb");
        assert_non_null(fp);
        fseek(fp, 0, SEEK_END);
        long len = ftell(fp);
        fseek(fp, 0, SEEK_SET);
        char *buf = malloc((size_t)len + 1);
        assert_int_equal(fread(buf, 1, (size_t)len, fp), (size_t)len);
        fclose(fp);
        struct nn_err err = {{0}};
        struct srv_doc *d = srv_doc_parse(buf, (size_t)len, &err);
        if (!d) fail_msg("%s: %s", de->d_name, err.msg);
        const cJSON *dt = get(d, "dtype");
        enum nn_dtype t = dt && cJSON_IsString(dt) && strcmp(dt->valuestring, "float64") == 0 ? NN_F64
                                                                                             : NN_F32;
        struct nn_tensor in;
        if (srv_doc_tensor(d, get(d, "input"), t, 0, "input", &in, NULL, &err) != NN_OK)
            fail_msg("%s: %s", de->d_name, err.msg);
        free(in.data);
        srv_doc_free(d);
        free(buf);
        count++;
    }
    closedir(dh);
    assert_true(count > 0);
}

/* Random mutations of valid requests: never a crash (ASan/UBSan build), and
 * whatever the codec accepts, cJSON accepts too (strict subset), and every
 * numeric array found reads as float32/float64 or fails with a message. */
static void test_random_mutations(void **state)
{
    (void)state;
    const char *seeds[] = {
        "{\"input\": [[1.5, -2e-3], [3, 4]], \"layers\": [{\"type\": \"linear\", "
        "\"weight\": {\"shape\": [2, 2], \"data\": [0.1, 0.2, 0.3, 0.4]}, \"bias\": null}], "
        "\"s\": \"a[b]\\\"c\", \"n\": -0.25, \"t\": true}",
        "[[[1, 2], [3, 4]], [[5, 6], [7, 8]], [], \"x\", {\"a\": [0]}]",
        "{\"loss\": {\"type\": \"cross_entropy\", \"target\": [0, 2, 1]}, \"e\": \"\\u00e9\\ud83d\\ude00\"}",
    };
    const char alphabet[] = "[]{},:\"\\-+.eE0123456789 \tnul\x01\x80\xff";
    char buf[512];
    for (int it = 0; it < 30000; it++) {
        const char *seed = seeds[it % 3];
        size_t n = strlen(seed);
        memcpy(buf, seed, n);
        int muts = 1 + (int)(rnd64() % 4);
        for (int m = 0; m < muts; m++) {
            size_t at = (size_t)(rnd64() % n);
            int op = (int)(rnd64() % 3);
            char c = alphabet[rnd64() % (sizeof alphabet - 1)];
            if (op == 0) buf[at] = c;
            else if (op == 1 && n + 1 < sizeof buf) {
                memmove(buf + at + 1, buf + at, n - at);
                buf[at] = c;
                n++;
            } else if (n > 1) {
                memmove(buf + at, buf + at + 1, n - at - 1);
                n--;
            }
        }
        struct nn_err err = {{0}};
        struct srv_doc *d = srv_doc_parse(buf, n, &err);
        if (!d) {
            assert_true(err.msg[0] != '\0');
            continue;
        }
        cJSON *ref = cJSON_ParseWithLength(buf, n);
        if (!ref) fail_msg("codec accepted what cJSON refuses: %.*s", (int)n, buf);
        cJSON_Delete(ref);
        const cJSON *root = srv_doc_root(d);
        const cJSON *items[] = {root, cJSON_IsObject(root) ? get(d, "input") : NULL,
                                cJSON_IsArray(root) ? cJSON_GetArrayItem(root, 0) : NULL};
        for (size_t k = 0; k < 3; k++) {
            struct nn_tensor t;
            if (srv_doc_tensor(d, items[k], NN_F32, 100, "x", &t, NULL, &err) == NN_OK) free(t.data);
            size_t sh[NN_MAX_DIMS];
            int nd;
            int64_t *iv;
            if (srv_doc_tensor_i64(d, items[k], 100, "x", sh, &nd, &iv, &err) == NN_OK) free(iv);
        }
        srv_doc_free(d);
    }
}

/* ---- encoder ----------------------------------------------------------------- */
static void test_encode_forms(void **state)
{
    (void)state;
    float v[6] = {0.1f, 2.0f, -0.0f, 1e20f, FLT_TRUE_MIN, -1.5f};
    double dv[2] = {0.1, 1.0 / 3};
    struct nn_tensor t23 = {NN_F32, 2, {2, 3}, 6, v};
    struct nn_tensor t6 = {NN_F32, 1, {6}, 6, v};
    struct nn_tensor t0 = {NN_F32, 0, {0}, 1, v};
    struct nn_tensor tz = {NN_F32, 3, {2, 0, 3}, 0, v};
    struct nn_tensor td = {NN_F64, 1, {2}, 2, dv};
    struct srv_out *o = srv_out_new();
    cJSON *root = cJSON_CreateObject();
    cJSON_AddItemToObject(root, "nested", srv_out_tensor(o, &t23, SRV_FORM_NESTED));
    cJSON_AddItemToObject(root, "object", srv_out_tensor(o, &t23, SRV_FORM_OBJECT));
    cJSON_AddItemToObject(root, "flat", srv_out_tensor(o, &t23, SRV_FORM_FLAT));
    cJSON_AddItemToObject(root, "vec", srv_out_tensor(o, &t6, SRV_FORM_NESTED));
    cJSON_AddItemToObject(root, "scalar", srv_out_tensor(o, &t0, SRV_FORM_NESTED));
    cJSON_AddItemToObject(root, "scalar_obj", srv_out_tensor(o, &t0, SRV_FORM_OBJECT));
    cJSON_AddItemToObject(root, "zero", srv_out_tensor(o, &tz, SRV_FORM_NESTED));
    cJSON_AddItemToObject(root, "f64", srv_out_tensor(o, &td, SRV_FORM_NESTED));
    cJSON_AddItemToObject(root, "loss", srv_out_number(o, 0.1, NN_F32));
    cJSON_AddItemToObject(root, "loss64", srv_out_number(o, 0.1, NN_F64));
    cJSON_AddItemToObject(root, "norm", srv_out_number(o, (double)0.3f, NN_F32));
    cJSON_AddItemToObject(root, "name", cJSON_CreateString("a\x01" "b \"[1]\""));
    cJSON_AddItemToObject(root, "n", cJSON_CreateNumber(3));
    char *s = print_doc(o, root);
    assert_string_equal(
        s, "{\"nested\":[[0.1,2,-0],[1e+20,1e-45,-1.5]],"
           "\"object\":{\"shape\":[2,3],\"data\":[0.1,2,-0,1e+20,1e-45,-1.5]},"
           "\"flat\":[0.1,2,-0,1e+20,1e-45,-1.5],\"vec\":[0.1,2,-0,1e+20,1e-45,-1.5],"
           "\"scalar\":0.1,\"scalar_obj\":{\"shape\":[],\"data\":[0.1]},\"zero\":[[],[]],"
           "\"f64\":[0.1,0.3333333333333333],\"loss\":0.1,\"loss64\":0.1,\"norm\":0.3,"
           "\"name\":\"a\\u0001b \\\"[1]\\\"\",\"n\":3}");
    /* and it reads back */
    struct srv_doc *d = parse_ok(s);
    assert_string_equal(get(d, "name")->valuestring, "a\x01" "b \"[1]\"");
    srv_doc_free(d);
    free(s);
    cJSON_Delete(root);
    srv_out_free(o);
    srv_out_free(NULL);
    srv_doc_free(NULL);
}

static void test_encode_nonfinite(void **state)
{
    (void)state;
    float v[4] = {1, 2, INFINITY, 4};
    double dv[2] = {1, NAN};
    struct nn_tensor t = {NN_F32, 2, {2, 2}, 4, v};
    struct nn_tensor td = {NN_F64, 1, {2}, 2, dv};
    struct nn_err err = {{0}};
    size_t len;

    struct srv_out *o = srv_out_new();
    cJSON *root = cJSON_CreateObject();
    cJSON *g = cJSON_AddObjectToObject(root, "gradients");
    cJSON *layers = cJSON_AddArrayToObject(g, "layers");
    cJSON_AddItemToArray(layers, cJSON_CreateObject());
    cJSON *l1 = cJSON_CreateObject();
    cJSON_AddItemToArray(layers, l1);
    cJSON_AddItemToObject(l1, "weight", srv_out_tensor(o, &t, SRV_FORM_NESTED));
    assert_null(srv_out_print(o, root, &len, &err));
    assert_string_equal(err.msg, "gradients.layers[1].weight: non-finite value inf at index 2 "
                                 "cannot be written as JSON");
    cJSON_Delete(root);
    srv_out_free(o);

    o = srv_out_new();
    root = cJSON_CreateObject();
    cJSON_AddItemToObject(root, "output", srv_out_tensor(o, &td, SRV_FORM_OBJECT));
    assert_null(srv_out_print(o, root, &len, &err));
    assert_string_equal(err.msg, "output: non-finite value nan at index 1 cannot be written as JSON");
    cJSON_Delete(root);
    srv_out_free(o);

    o = srv_out_new();
    root = cJSON_CreateObject();
    cJSON_AddItemToObject(root, "loss", srv_out_number(o, 1e39, NN_F32)); /* inf as float32 */
    assert_null(srv_out_print(o, root, &len, &err));
    assert_string_equal(err.msg, "loss: non-finite value inf cannot be written as JSON");
    cJSON_Delete(root);
    srv_out_free(o);

    /* misuse is refused, not crashed on */
    o = srv_out_new();
    assert_null(srv_out_tensor(o, &t, 7));
    assert_null(srv_out_tensor(o, NULL, SRV_FORM_FLAT));
    srv_out_free(o);
}

static void test_encode_large_nested(void **state)
{
    (void)state;
    size_t n = 3 * 4 * 5 * 7;
    double *v = malloc(n * sizeof *v);
    for (size_t i = 0; i < n; i++) v[i] = u2d(rnd64() >> 2) * (i % 2 ? -1 : 1);
    struct nn_tensor t = {NN_F64, 4, {3, 4, 5, 7}, n, v};
    struct srv_out *o = srv_out_new();
    cJSON *root = cJSON_CreateObject();
    cJSON_AddItemToObject(root, "input", srv_out_tensor(o, &t, SRV_FORM_NESTED));
    char *s = print_doc(o, root);
    struct nn_err err;
    struct nn_tensor back;
    assert_int_equal(tensor_of(s, NN_F64, 0, &back, NULL, &err), NN_OK);
    assert_int_equal(back.ndim, 4);
    assert_int_equal(back.shape[3], 7);
    assert_memory_equal(back.data, v, n * sizeof *v);
    free(back.data);
    free(s);
    cJSON_Delete(root);
    srv_out_free(o);
    free(v);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_f32_special_classes),
        cmocka_unit_test(test_f32_random_bits_1e6),
        cmocka_unit_test(test_f32_shortest),
        cmocka_unit_test(test_f64_roundtrip),
        cmocka_unit_test(test_f32_document_roundtrip),
        cmocka_unit_test(test_number_grammar),
        cmocka_unit_test(test_syntax_errors),
        cmocka_unit_test(test_nul_bytes),
        cmocka_unit_test(test_utf8),
        cmocka_unit_test(test_strings_with_brackets),
        cmocka_unit_test(test_mixed_arrays),
        cmocka_unit_test(test_ragged),
        cmocka_unit_test(test_deep_nesting),
        cmocka_unit_test(test_duplicate_keys),
        cmocka_unit_test(test_placeholder_forgery),
        cmocka_unit_test(test_tensor_forms),
        cmocka_unit_test(test_tensor_errors),
        cmocka_unit_test(test_messages_utf8),
        cmocka_unit_test(test_tensor_caps),
        cmocka_unit_test(test_tensor_i64),
        cmocka_unit_test(test_cjson_built_arrays),
        cmocka_unit_test(test_golden_files),
        cmocka_unit_test(test_random_mutations),
        cmocka_unit_test(test_encode_forms),
        cmocka_unit_test(test_encode_nonfinite),
        cmocka_unit_test(test_encode_large_nested),
    };
    return cmocka_run_group_tests_name("codec", tests, NULL, NULL);
}
