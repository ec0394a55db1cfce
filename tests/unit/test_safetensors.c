/* safetensors reader: good files, every bounds check with its message, dtype conversion,
 * the fixtures, and a mutation sweep that must never crash (run it under the ASan build). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "server/safetensors.h"

#define FIX "tests/fixtures/models/"

/* A file in memory: 8-byte LE length (hlen, or strlen(hdr) when hlen == UINT64_MAX), the
 * header text, then dlen data bytes. */
static unsigned char *t_mk(uint64_t hlen, const char *hdr, const void *data, size_t dlen,
                           size_t *len)
{
    size_t n = strlen(hdr);
    if (hlen == UINT64_MAX)
        hlen = n;
    *len = 8 + n + dlen;
    unsigned char *b = malloc(*len ? *len : 1);
    assert_non_null(b);
    for (int i = 0; i < 8; i++)
        b[i] = (unsigned char)(hlen >> (8 * i));
    memcpy(b + 8, hdr, n);
    if (dlen)
        memcpy(b + 8 + n, data, dlen);
    return b;
}

/* Parses hdr + dlen bytes of data; returns the status, message in err. */
static enum nn_status t_parse(const char *hdr, size_t dlen, struct nn_err *err)
{
    unsigned char *data = calloc(1, dlen + 1);
    size_t len;
    unsigned char *b = t_mk(UINT64_MAX, hdr, data, dlen, &len);
    struct srv_st_file f;
    err->msg[0] = '\0';
    enum nn_status st = srv_st_parse(&f, b, len, "m.safetensors", err);
    srv_st_close(&f);
    free(b);
    free(data);
    return st;
}

#define EXPECT_ERR(hdr, dlen, substr)                                                   \
    do {                                                                              \
        struct nn_err e_;                                                             \
        assert_int_equal(t_parse(hdr, dlen, &e_), NN_EINVAL);                         \
        if (!strstr(e_.msg, substr))                                                  \
            fail_msg("message \"%s\" lacks \"%s\"", e_.msg, substr);                   \
    } while (0)

static void test_good_f32(void **state)
{
    float w[6] = {1, -2, 3.5f, 0.25f, -0.125f, 6}, bias[2] = {0.5f, -0.5f};
    unsigned char data[32];
    memcpy(data, bias, 8);
    memcpy(data + 8, w, 24);
    size_t len;
    unsigned char *b = t_mk(UINT64_MAX,
                            "{\"__metadata__\":{\"format\":\"pt\"},"
                            "\"0.bias\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},"
                            "\"0.weight\":{\"dtype\":\"F32\",\"shape\":[2,3],\"data_offsets\":[8,32]}}"
                            "    ",
                            data, sizeof data, &len);
    struct srv_st_file f;
    struct nn_err err;
    assert_int_equal(srv_st_parse(&f, b, len, "m.safetensors", &err), NN_OK);
    assert_int_equal(f.ntensors, 2);
    assert_int_equal(f.data_len, 32);
    struct srv_st_tensor *t = srv_st_find(&f, "0.weight");
    assert_non_null(t);
    assert_null(srv_st_find(&f, "1.weight"));
    assert_int_equal(t->dtype, SRV_ST_F32);
    assert_int_equal(t->ndim, 2);
    assert_int_equal(t->shape[0], 2);
    assert_int_equal(t->shape[1], 3);
    assert_int_equal(t->numel, 6);
    assert_int_equal(t->used, 0);

    struct nn_tensor o32, o64;
    assert_int_equal(srv_st_tensor_load(&f, t, NN_F32, &o32, &err), NN_OK);
    assert_int_equal(t->used, 1);
    assert_int_equal(o32.dtype, NN_F32);
    assert_int_equal(o32.ndim, 2);
    assert_int_equal(o32.numel, 6);
    assert_memory_equal(o32.data, w, sizeof w);
    assert_int_equal(srv_st_tensor_load(&f, t, NN_F64, &o64, &err), NN_OK);
    for (int i = 0; i < 6; i++)
        assert_true(((double *)o64.data)[i] == (double)w[i]);
    free(o32.data);
    free(o64.data);
    srv_st_close(&f);
    srv_st_close(&f); /* second close: no-op */
    free(b);
}

static void test_f64_to_f32_range(void **state)
{
    double v[2] = {0.1, 1e300};
    size_t len;
    unsigned char *b = t_mk(
        UINT64_MAX, "{\"w\":{\"dtype\":\"F64\",\"shape\":[2],\"data_offsets\":[0,16]}}", v, 16,
        &len);
    struct srv_st_file f;
    struct nn_err err;
    assert_int_equal(srv_st_parse(&f, b, len, "m.safetensors", &err), NN_OK);
    struct nn_tensor o;
    assert_int_equal(srv_st_tensor_load(&f, &f.tensors[0], NN_F64, &o, &err), NN_OK);
    assert_true(((double *)o.data)[0] == 0.1);
    free(o.data);
    assert_int_equal(srv_st_tensor_load(&f, &f.tensors[0], NN_F32, &o, &err), NN_EINVAL);
    assert_non_null(strstr(err.msg, "m.safetensors: tensor \"w\" value 1e+300 at 1 is out of "
                                    "float32 range"));
    srv_st_close(&f);
    free(b);
}

static void test_half_conversions(void **state)
{
    assert_true(srv_st_f16_to_f32(0x3C00) == 1.0f);
    assert_true(srv_st_f16_to_f32(0xC000) == -2.0f);
    assert_true(srv_st_f16_to_f32(0x3800) == 0.5f);
    assert_true(srv_st_f16_to_f32(0x7BFF) == 65504.0f);
    assert_true(srv_st_f16_to_f32(0x0001) == 0x1p-24f);  /* smallest subnormal */
    assert_true(srv_st_f16_to_f32(0x03FF) == 1023 * 0x1p-24f);
    assert_true(srv_st_f16_to_f32(0x0400) == 0x1p-14f);  /* smallest normal */
    assert_true(srv_st_f16_to_f32(0x0000) == 0.0f);
    float nz = srv_st_f16_to_f32(0x8000);
    assert_true(nz == 0.0f && signbit(nz));
    assert_true(isinf(srv_st_f16_to_f32(0x7C00)));
    assert_true(isnan(srv_st_f16_to_f32(0x7E00)));
    assert_true(srv_st_f16_to_f32(0x3555) == 0x1.554p-2f); /* ~1/3 */
    assert_true(srv_st_bf16_to_f32(0x3F80) == 1.0f);
    assert_true(srv_st_bf16_to_f32(0xC040) == -3.0f);
    assert_true(srv_st_bf16_to_f32(0x3E20) == 0.15625f);

    /* through a file: F16 [1, -2, 0.5] and BF16 [1, -3] into float64 */
    unsigned short h[5] = {0x3C00, 0xC000, 0x3800, 0x3F80, 0xC040};
    size_t len;
    unsigned char *b = t_mk(UINT64_MAX,
                            "{\"a\":{\"dtype\":\"F16\",\"shape\":[3],\"data_offsets\":[0,6]},"
                            "\"b\":{\"dtype\":\"BF16\",\"shape\":[1,2],\"data_offsets\":[6,10]}}",
                            h, sizeof h, &len);
    struct srv_st_file f;
    struct nn_err err;
    assert_int_equal(srv_st_parse(&f, b, len, "h.safetensors", &err), NN_OK);
    struct nn_tensor o;
    assert_int_equal(srv_st_tensor_load(&f, srv_st_find(&f, "a"), NN_F64, &o, &err), NN_OK);
    assert_true(((double *)o.data)[0] == 1.0 && ((double *)o.data)[1] == -2.0 &&
                ((double *)o.data)[2] == 0.5);
    free(o.data);
    assert_int_equal(srv_st_tensor_load(&f, srv_st_find(&f, "b"), NN_F32, &o, &err), NN_OK);
    assert_true(((float *)o.data)[0] == 1.0f && ((float *)o.data)[1] == -3.0f);
    assert_int_equal(o.ndim, 2);
    free(o.data);
    srv_st_close(&f);
    free(b);
}

static void test_short_and_lying_lengths(void **state)
{
    struct srv_st_file f;
    struct nn_err err;
    unsigned char tiny[5] = {1, 0, 0, 0, 0};
    assert_int_equal(srv_st_parse(&f, tiny, sizeof tiny, "m.safetensors", &err), NN_EINVAL);
    assert_string_equal(err.msg,
                        "m.safetensors: file is 5 bytes, too short for the 8-byte header length");

    size_t len;
    unsigned char *b = t_mk(1000, "{}", NULL, 0, &len); /* N > file */
    assert_int_equal(srv_st_parse(&f, b, len, "m.safetensors", &err), NN_EINVAL);
    assert_string_equal(err.msg, "m.safetensors: header length 1000 exceeds the 2 bytes after "
                                 "the length field");
    free(b);

    b = t_mk(UINT64_MAX - 1, "{}", NULL, 0, &len); /* huge N: no wraparound */
    assert_int_equal(srv_st_parse(&f, b, len, "m.safetensors", &err), NN_EINVAL);
    assert_non_null(strstr(err.msg, "header length 18446744073709551614 exceeds"));
    free(b);

    /* N within the file but over the 100 MiB cap (calloc: pages untouched) */
    size_t big = SRV_ST_MAX_HEADER + 16;
    unsigned char *z = calloc(1, big + 8);
    assert_non_null(z);
    uint64_t n = SRV_ST_MAX_HEADER + 1;
    for (int i = 0; i < 8; i++)
        z[i] = (unsigned char)(n >> (8 * i));
    assert_int_equal(srv_st_parse(&f, z, big + 8, "m.safetensors", &err), NN_EINVAL);
    assert_string_equal(err.msg,
                        "m.safetensors: header length 104857601 is over the limit of 104857600 "
                        "bytes");
    free(z);

    b = t_mk(0, "", NULL, 0, &len); /* N = 0: no object at all */
    assert_int_equal(srv_st_parse(&f, b, len, "m.safetensors", &err), NN_EINVAL);
    assert_string_equal(err.msg, "m.safetensors: header is not a JSON object");
    free(b);
}

static void test_header_shape(void **state)
{
    EXPECT_ERR("[1, 2]", 0, "m.safetensors: header is not a JSON object");
    EXPECT_ERR("{\"a\": ", 0, "m.safetensors: header is not valid JSON");
    EXPECT_ERR("{\"a\":1}", 0, "m.safetensors: tensor \"a\" is not an object");
    EXPECT_ERR("{} x", 0, "header is not valid JSON: invalid JSON at byte 3: unexpected data after "
                          "the JSON value");
    EXPECT_ERR("{\"__metadata__\": [1]}", 0, "__metadata__ is not an object");
    struct nn_err e;
    assert_int_equal(t_parse("{}", 0, &e), NN_OK);            /* an empty file is valid */
    assert_int_equal(t_parse("{}       ", 0, &e), NN_OK);     /* space padding */
    assert_int_equal(t_parse("{\"__metadata__\":{\"a\":\"b\"}}", 0, &e), NN_OK);
}

static void test_tensor_fields(void **state)
{
    EXPECT_ERR("{\"w\":{\"shape\":[1],\"data_offsets\":[0,4]}}", 4,
               "tensor \"w\": dtype is missing or not a string");
    EXPECT_ERR("{\"w\":{\"dtype\":\"F33\",\"shape\":[1],\"data_offsets\":[0,4]}}", 4,
               "m.safetensors: tensor \"w\": unknown dtype \"F33\"");
    EXPECT_ERR("{\"w\":{\"dtype\":\"F32\",\"data_offsets\":[0,4]}}", 4,
               "tensor \"w\": shape is missing or not an array");
    EXPECT_ERR("{\"w\":{\"dtype\":\"F32\",\"shape\":[\"a\"],\"data_offsets\":[0,4]}}", 4,
               "tensor \"w\": shape is missing or not an array of integers");
    EXPECT_ERR("{\"w\":{\"dtype\":\"F32\",\"shape\":[2,-1],\"data_offsets\":[0,4]}}", 4,
               "tensor \"w\": shape[1] is not a non-negative integer");
    EXPECT_ERR("{\"w\":{\"dtype\":\"F32\",\"shape\":[1.5],\"data_offsets\":[0,4]}}", 4,
               "shape holds a value that is not a non-negative integer");
    EXPECT_ERR("{\"w\":{\"dtype\":\"F32\",\"shape\":[1e300],\"data_offsets\":[0,4]}}", 4,
               "shape holds a value that is not a non-negative integer");
    EXPECT_ERR("{\"w\":{\"dtype\":\"F32\",\"shape\":[1,1,1,1,1,1,1,1,1],\"data_offsets\":[0,4]}}",
               4, "tensor \"w\": rank 9 is over 8");
    EXPECT_ERR("{\"w\":{\"dtype\":\"F32\",\"shape\":[4294967296,4294967296,16],"
               "\"data_offsets\":[0,4]}}",
               4, "tensor \"w\": shape overflows");
    EXPECT_ERR("{\"w\":{\"dtype\":\"F64\",\"shape\":[4294967296,536870912],"
               "\"data_offsets\":[0,4]}}",
               4, "tensor \"w\": shape overflows"); /* numel fits, bytes do not */
    EXPECT_ERR("{\"w\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0]}}", 4,
               "data_offsets must be [begin, end]");
    EXPECT_ERR("{\"w\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[\"0\",4]}}", 4,
               "data_offsets must be [begin, end]");
    EXPECT_ERR("{\"w\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,-4]}}", 4,
               "data_offsets must be [begin, end]");
}

static void test_offsets(void **state)
{
    EXPECT_ERR("{\"0.weight\":{\"dtype\":\"F32\",\"shape\":[784,128],"
               "\"data_offsets\":[0,401408]}}",
               1000,
               "m.safetensors: tensor \"0.weight\" data_offsets [0, 401408] exceed the data "
               "size 1000");
    EXPECT_ERR("{\"w\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[8,4]}}", 8,
               "tensor \"w\" data_offsets [8, 4]: begin > end");
    EXPECT_ERR("{\"w\":{\"dtype\":\"F32\",\"shape\":[3],\"data_offsets\":[0,8]}}", 8,
               "tensor \"w\" data_offsets [0, 8] hold 8 bytes, but F32 [3] needs 12");
    EXPECT_ERR("{\"w\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[9007199254740992,"
               "9007199254740996]}}",
               8, "data_offsets must be [begin, end]"); /* 2^53: not exact in JSON doubles */
    /* overlap */
    EXPECT_ERR("{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},"
               "\"b\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[4,12]}}",
               12,
               "m.safetensors: tensor \"b\" data_offsets [4, 12] overlap tensor \"a\" [0, 8]");
    EXPECT_ERR("{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},"
               "\"b\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}}",
               8, "overlap tensor");
    /* hole and trailing bytes */
    EXPECT_ERR("{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[4,8]}}", 8,
               "m.safetensors: data bytes [0, 4) before tensor \"a\" belong to no tensor");
    EXPECT_ERR("{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]}}", 8,
               "m.safetensors: 4 data bytes after the last tensor (data size 8, tensors end at "
               "4)");
    EXPECT_ERR("{}", 3, "3 data bytes after the last tensor");
    /* duplicate names (JSON allows them; the format does not; relud's reader never does) */
    EXPECT_ERR("{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]},"
               "\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[4,8]}}",
               8, "m.safetensors: header is not valid JSON: duplicate key \"a\"");
    /* empty tensors sit anywhere on the tiling */
    struct nn_err e;
    assert_int_equal(t_parse("{\"e\":{\"dtype\":\"F32\",\"shape\":[0,5],\"data_offsets\":[4,4]},"
                             "\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]},"
                             "\"z\":{\"dtype\":\"F64\",\"shape\":[0],\"data_offsets\":[4,4]}}",
                             4, &e),
                     NN_OK);
}

static void test_load_refusals(void **state)
{
    unsigned char data[24] = {0};
    float nan = NAN;
    memcpy(data + 12, &nan, 4);
    size_t len;
    unsigned char *b = t_mk(UINT64_MAX,
                            "{\"i\":{\"dtype\":\"I64\",\"shape\":[1],\"data_offsets\":[0,8]},"
                            "\"s\":{\"dtype\":\"F32\",\"shape\":[],\"data_offsets\":[8,12]},"
                            "\"n\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[12,20]},"
                            "\"b\":{\"dtype\":\"BOOL\",\"shape\":[4],\"data_offsets\":[20,24]}}",
                            data, sizeof data, &len);
    struct srv_st_file f;
    struct nn_err err;
    assert_int_equal(srv_st_parse(&f, b, len, "m.safetensors", &err), NN_OK);
    struct nn_tensor o;
    assert_int_equal(srv_st_tensor_load(&f, srv_st_find(&f, "i"), NN_F32, &o, &err), NN_EINVAL);
    assert_string_equal(err.msg, "m.safetensors: tensor \"i\" has dtype I64; parameters must be "
                                 "F32, F64, F16 or BF16");
    assert_int_equal(srv_st_tensor_load(&f, srv_st_find(&f, "s"), NN_F32, &o, &err), NN_EINVAL);
    assert_string_equal(err.msg, "m.safetensors: tensor \"s\" is a scalar (shape []); parameters "
                                 "need rank >= 1");
    assert_int_equal(srv_st_tensor_load(&f, srv_st_find(&f, "n"), NN_F64, &o, &err), NN_EINVAL);
    assert_string_equal(err.msg, "m.safetensors: tensor \"n\" holds a non-finite value at 0");
    assert_int_equal(srv_st_tensor_load(&f, srv_st_find(&f, "b"), NN_F64, &o, &err), NN_EINVAL);
    assert_int_equal(srv_st_find(&f, "n")->used, 0);
    srv_st_close(&f);
    free(b);
}

static int t_have(const char *path)
{
    FILE *fp = fopen(path, "rb");
    if (fp)
        fclose(fp);
    return fp != NULL;
}

static void test_fixtures(void **state)
{
    if (!t_have(FIX "tiny.safetensors"))
        skip();
    struct srv_st_file f;
    struct nn_err err;
    assert_int_equal(srv_st_open(&f, FIX "tiny.safetensors", "tiny.safetensors", &err), NN_OK);
    assert_non_null(f.map);
    assert_int_equal(f.ntensors, 2);
    struct srv_st_tensor *w = srv_st_find(&f, "0.weight");
    assert_non_null(w);
    assert_int_equal(w->dtype, SRV_ST_F64);
    assert_int_equal(w->shape[0], 3);
    assert_int_equal(w->shape[1], 4);
    srv_st_close(&f);
    assert_null(f.map);

    assert_int_equal(srv_st_open(&f, FIX "truncated.safetensors", "truncated.safetensors", &err),
                     NN_EINVAL);
    assert_non_null(strstr(err.msg, "truncated.safetensors: tensor \""));
    assert_non_null(strstr(err.msg, "exceed the data size"));
    assert_int_equal(srv_st_open(&f, FIX "bad_header.safetensors", "bad_header.safetensors", &err),
                     NN_EINVAL);
    assert_non_null(strstr(err.msg, "bad_header.safetensors: header length"));
    assert_non_null(strstr(err.msg, "exceeds"));
    assert_int_equal(srv_st_open(&f, FIX "nope.safetensors", "nope.safetensors", &err),
                     NN_EINVAL);
    assert_string_equal(err.msg, "nope.safetensors: cannot open: No such file or directory");
    assert_int_equal(srv_st_open(&f, FIX "tiny.json", "tiny.json", &err), NN_EINVAL);
    srv_st_close(&f);
}

/* Every truncation and thousands of byte mutations of a good file: each must parse or
 * fail cleanly, and whatever parses must load without reading out of bounds. */
static void test_mutation_sweep(void **state)
{
    float v[7] = {1, 2, 3, 4, 5, 6, 7};
    size_t len;
    unsigned char *good = t_mk(
        UINT64_MAX,
        "{\"0.bias\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]},"
        "\"0.weight\":{\"dtype\":\"F32\",\"shape\":[2,3],\"data_offsets\":[4,28]}}",
        v, sizeof v, &len);
    struct srv_st_file f;
    struct nn_err err;
    int ok = 0;
    for (size_t cut = 0; cut <= len; cut++) {
        unsigned char *b = malloc(cut ? cut : 1); /* exact size: ASan sees any overread */
        memcpy(b, good, cut);
        if (srv_st_parse(&f, b, cut, "m", &err) == NN_OK)
            ok++;
        srv_st_close(&f);
        free(b);
    }
    assert_int_equal(ok, 1); /* only the whole file */
    static const unsigned char pokes[] = {0, '0', '9', '-', '[', ']', '{', '}', '"', ',', 0xff, 'e'};
    unsigned seed = 12345;
    for (int iter = 0; iter < 20000; iter++) {
        unsigned char *b = malloc(len);
        memcpy(b, good, len);
        int nmut = 1 + iter % 3;
        for (int k = 0; k < nmut; k++) {
            seed = seed * 1103515245u + 12345u;
            size_t at = (seed >> 8) % len;
            seed = seed * 1103515245u + 12345u;
            b[at] = (seed >> 16) & 1 ? pokes[(seed >> 8) % sizeof pokes] : (unsigned char)(seed >> 8);
        }
        if (srv_st_parse(&f, b, len, "m", &err) == NN_OK) {
            for (int i = 0; i < f.ntensors; i++) {
                struct nn_tensor o;
                if (srv_st_tensor_load(&f, &f.tensors[i], NN_F64, &o, &err) == NN_OK)
                    free(o.data);
            }
        }
        srv_st_close(&f);
        free(b);
    }
    free(good);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_good_f32),
        cmocka_unit_test(test_f64_to_f32_range),
        cmocka_unit_test(test_half_conversions),
        cmocka_unit_test(test_short_and_lying_lengths),
        cmocka_unit_test(test_header_shape),
        cmocka_unit_test(test_tensor_fields),
        cmocka_unit_test(test_offsets),
        cmocka_unit_test(test_load_refusals),
        cmocka_unit_test(test_fixtures),
        cmocka_unit_test(test_mutation_sweep),
    };
    return cmocka_run_group_tests_name("safetensors", tests, NULL, NULL);
}
