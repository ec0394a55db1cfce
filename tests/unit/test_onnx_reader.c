/* The ONNX reader (server/onnx.c) on files: every fixture of tests/fixtures/onnx (the good
 * ones load with the graph's names and their parameters, the broken ones fail with their
 * message), then damage no exporter writes: every truncation and a byte-mutation sweep of
 * real files (never a crash: run it under the ASan build), nesting deeper than the limit,
 * a length past the end, many empty messages against the decode budget, the node cap, and
 * external data (good, short, missing, refused without a model_dir). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "server/onnx.h"
#include "tests/common/fs.h"

#define FIX "tests/fixtures/onnx"

static unsigned char *load(const char *name, size_t *len)
{
    char p[512];
    snprintf(p, sizeof p, "%s/%s", FIX, name);
    unsigned char *b = (unsigned char *)t_read_file(p, len);
    if (!b)
        fail_msg("cannot read %s", p);
    return b;
}

static enum nn_status parse(const void *b, size_t len, const char *dir, struct nn_err *err)
{
    struct srv_onnx_model m;
    err->msg[0] = 0;
    enum nn_status st = srv_onnx_parse(b, len, "t.onnx", dir, &m, err);
    srv_onnx_model_free(&m);
    return st;
}

#define EXPECT_ERR(buf, len, dir, part)                                            \
    do {                                                                           \
        struct nn_err e_;                                                          \
        enum nn_status st_ = parse(buf, len, dir, &e_);                            \
        if (st_ == NN_OK || !strstr(e_.msg, part))                                 \
            fail_msg("status %d, message \"%s\" lacks \"%s\"", st_, e_.msg, part); \
    } while (0)

/* ---- protobuf bytes, by hand ----------------------------------------------------- */
struct buf {
    unsigned char *p;
    size_t n, cap;
};
static void put(struct buf *b, const void *d, size_t n)
{
    if (!n)
        return;
    if (b->n + n > b->cap) {
        b->cap = (b->n + n) * 2 + 64;
        b->p = realloc(b->p, b->cap);
        assert_non_null(b->p);
    }
    memcpy(b->p + b->n, d, n);
    b->n += n;
}
static void varint(struct buf *b, uint64_t v)
{
    unsigned char c[10];
    int n = 0;
    do {
        c[n++] = (unsigned char)((v & 0x7f) | (v > 0x7f ? 0x80 : 0));
        v >>= 7;
    } while (v);
    put(b, c, (size_t)n);
}
/* field (length-delimited) holding inner */
static void field(struct buf *b, unsigned num, const struct buf *inner)
{
    varint(b, (uint64_t)num << 3 | 2);
    varint(b, inner->n);
    put(b, inner->p, inner->n);
}
/* ModelProto.opset_import {domain "", version 13}: field 8 */
static void opset13(struct buf *b)
{
    static const unsigned char o[] = {0x42, 0x02, 0x10, 0x0d};
    put(b, o, sizeof o);
}

/* ---- fixtures -------------------------------------------------------------------- */

static void good_fixtures_load(void **state)
{
    (void)state;
    static const char *const good[] = {
        "mlp_a_o11.onnx",   "mlp_a_o13.onnx", "mlp_a_o17.onnx",     "mlp_b_o11.onnx",
        "mlp_b_o13.onnx",   "mlp_b_o17.onnx", "mlp_c_o11.onnx",     "mlp_c_o13.onnx",
        "mlp_c_o17.onnx",   "mlp_d_o13.onnx", "mlp_d_o17.onnx",     "seq3d_o11.onnx",
        "seq3d_o13.onnx",   "seq3d_o17.onnx", "flat4d_o11.onnx",    "flat4d_o13.onnx",
        "flat4d_o17.onnx",  "view_o11.onnx",  "view_o13.onnx",      "view_o17.onnx",
        "reshape_o13.onnx", "mlp_o9_o9.onnx", "gemm_gelu_o20.onnx", "f64_o13.onnx",
        "f16_o13.onnx",     "ext_o13.onnx"};
    for (size_t i = 0; i < sizeof good / sizeof *good; i++) {
        char p[512];
        snprintf(p, sizeof p, "%s/%s", FIX, good[i]);
        struct srv_onnx_model m;
        struct nn_err err;
        enum nn_status st = srv_onnx_open(p, good[i], FIX, &m, &err);
        if (st)
            fail_msg("%s: %s", good[i], err.msg);
        assert_string_equal(m.sig->input, "x");
        assert_string_equal(m.sig->output, "y");
        assert_true(m.net.nlayers >= 1);
        srv_onnx_model_free(&m);
    }
}

/* The layers and parameters of two: torch's names where Gemm keeps them, MatMul's copies
 * transposed, the flatten recorded. */
static void layers_and_params(void **state)
{
    (void)state;
    struct srv_onnx_model m;
    struct nn_err err;
    assert_int_equal(srv_onnx_open(FIX "/mlp_c_o13.onnx", "c", NULL, &m, &err), NN_OK);
    static const enum nn_kind want[] = {NN_LINEAR, NN_GELU,  NN_LINEAR, NN_GELU,
                                        NN_LINEAR, NN_SILU,  NN_LINEAR, NN_PRELU,
                                        NN_LINEAR, NN_PRELU, NN_LINEAR, NN_LOG_SOFTMAX};
    assert_int_equal(m.net.nlayers, 12);
    for (int i = 0; i < 12; i++)
        assert_int_equal(m.net.layers[i].kind, want[i]);
    assert_int_equal(m.net.layers[1].approx, 0);
    assert_int_equal(m.net.layers[3].approx, 1);
    assert_int_equal(m.net.layers[7].weight.numel, 8);
    assert_int_equal(m.net.layers[9].weight.numel, 1);
    assert_int_equal(m.sig->nparams, 14);
    assert_string_equal(m.sig->params[0].name, "0.weight");
    assert_int_equal(m.sig->flatten_axis, -1);
    assert_int_equal(m.sig->opset, 13);
    assert_non_null(strstr(m.sig->producer, "pytorch"));
    srv_onnx_model_free(&m);

    assert_int_equal(srv_onnx_open(FIX "/mlp_d_o13.onnx", "d", NULL, &m, &err), NN_OK);
    assert_int_equal(m.sig->flatten_axis, 1);
    assert_int_equal(m.sig->in_ndim, 3);
    assert_int_equal(m.net.layers[1].kind, NN_CELU);
    assert_true(m.net.layers[1].p[0] == 0.7); /* the float attribute's shortest decimal */
    const struct srv_onnx_param *last = &m.sig->params[m.sig->nparams - 1];
    assert_int_equal(last->uses[0].transpose, 1); /* MatMul's [in, out] */
    assert_int_equal(last->shape[0], 8);
    assert_int_equal(m.net.layers[m.net.nlayers - 1].weight.shape[0], 3); /* [out, in] */
    srv_onnx_model_free(&m);
}

static void broken_fixtures_refused(void **state)
{
    (void)state;
    static const struct {
        const char *file, *part;
    } bad[] = {
        {"bad_conv.onnx", "(Conv, opset 13) is not supported (supported: Gemm, MatMul+Add"},
        {"bad_hardsigmoid.onnx", "(HardSigmoid, opset 13) is not supported"},
        {"bad_cycle.onnx", "before the node that computes it"},
        {"bad_dangling.onnx", "reads \"nowhere\", which no node"},
        {"bad_opset8.onnx", "opset 8 of the default domain is not supported"},
        {"bad_rawlen.onnx", "raw_data holds 40 bytes but dims [4, 4] of F32 need 64"},
        {"bad_hugedims.onnx", "dims overflow"},
        {"bad_ext_escape.onnx", "must be a file name in model_dir"},
        {"bad_two_inputs.onnx", "2 inputs and 1 outputs"},
        {"bad_gelu_like.onnx", "like torch's GELU"},
        {"bad_reshape.onnx", "is not a flatten"},
        {"bad_truncated.onnx", "not a protobuf message"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        size_t len;
        unsigned char *b = load(bad[i].file, &len);
        EXPECT_ERR(b, len, FIX, bad[i].part);
        free(b);
    }
}

/* ---- damage ------------------------------------------------------------------------ */

static void every_truncation(void **state)
{
    (void)state;
    size_t len;
    unsigned char *b = load("mlp_c_o13.onnx", &len);
    struct nn_err err;
    for (size_t n = 0; n < len; n++) {
        unsigned char *c = malloc(n ? n : 1); /* exactly n bytes: ASan sees a read past */
        memcpy(c, b, n);
        enum nn_status st = parse(c, n, NULL, &err);
        free(c);
        if (st == NN_OK)
            fail_msg("the first %zu of %zu bytes loaded", n, len);
    }
    assert_int_equal(parse(b, len, NULL, &err), NN_OK);
    free(b);
}

static void byte_mutations(void **state)
{
    (void)state;
    static const char *const files[] = {"view_o13.onnx", "mlp_b_o11.onnx", "f16_o13.onnx"};
    static const unsigned char vals[] = {0x00, 0xff, 0x80, 0x7f, 0x01};
    struct nn_err err;
    for (size_t f = 0; f < sizeof files / sizeof *files; f++) {
        size_t len;
        unsigned char *b = load(files[f], &len);
        unsigned char *c = malloc(len);
        for (size_t i = 0; i < len; i++)
            for (size_t v = 0; v < sizeof vals; v++) {
                memcpy(c, b, len);
                c[i] = vals[v];
                parse(c, len, NULL, &err); /* any status; never a crash */
                c[i] = (unsigned char)(b[i] + 1);
                parse(c, len, NULL, &err);
            }
        free(c);
        free(b);
    }
}

/* Model.graph(7) -> Graph.node(1) -> Node.attribute(5) -> Attribute.g(6) -> Graph.node ... */
static void nesting_too_deep(void **state)
{
    (void)state;
    struct buf in = {0}, out = {0};
    static const unsigned fields[] = {1, 5, 6};
    for (int level = 0; level < 3000; level++) {
        out.n = 0;
        field(&out, fields[(2999 - level) % 3], &in);
        struct buf t = in;
        in = out;
        out = t;
    }
    struct buf model = {0};
    opset13(&model);
    field(&model, 7, &in);
    EXPECT_ERR(model.p, model.n, NULL, "nested deeper than 32");
    free(in.p);
    free(out.p);
    free(model.p);
}

static void length_past_the_end(void **state)
{
    (void)state;
    struct buf b = {0};
    opset13(&b);
    varint(&b, 7 << 3 | 2);
    varint(&b, (uint64_t)1 << 60);
    put(&b, "\0\0\0\0", 4);
    EXPECT_ERR(b.p, b.n, NULL, "not a protobuf message");
    b.n = 0;
    static const unsigned char group[] = {0x0b, 0x0c}; /* wire types 3, 4: not ONNX */
    put(&b, group, sizeof group);
    EXPECT_ERR(b.p, b.n, NULL, "not a protobuf message");
    free(b.p);
}

/* Millions of empty nodes (2 bytes each on the wire, ~150 decoded): the budget stops the
 * decode before it allocates 75 times the file. */
static void decode_budget(void **state)
{
    (void)state;
    size_t nodes = 3 << 20;
    struct buf g = {0}, m = {0};
    g.cap = nodes * 2 + 16;
    g.p = malloc(g.cap);
    for (size_t i = 0; i < nodes; i++)
        g.p[g.n++] = 0x0a, g.p[g.n++] = 0x00;
    opset13(&m);
    field(&m, 7, &g);
    EXPECT_ERR(m.p, m.n, NULL, "decoding needs more than the file's size plus 64 MiB");
    /* a few more nodes than the cap: decoded, then refused by count */
    g.n = 0;
    for (size_t i = 0; i < SRV_ONNX_MAX_NODES + 1; i++)
        g.p[g.n++] = 0x0a, g.p[g.n++] = 0x00;
    m.n = 0;
    opset13(&m);
    field(&m, 7, &g);
    EXPECT_ERR(m.p, m.n, NULL, "10001 nodes and 0 initializers: over the limits");
    free(g.p);
    free(m.p);
}

static void external_data(void **state)
{
    (void)state;
    char dir[64];
    assert_int_equal(t_tmp_copy(dir, sizeof dir, "onnx-ext", NULL), 0);
    size_t len, dlen;
    unsigned char *b = load("ext_o13.onnx", &len);
    unsigned char *data = load("ext_o13.onnx.data", &dlen);
    struct nn_err err;
    EXPECT_ERR(b, len, dir, "external data ext_o13.onnx.data: No such file");
    EXPECT_ERR(b, len, NULL, "external data (ext_o13.onnx.data) is not supported here");
    t_write_file(dir, "ext_o13.onnx.data", data, dlen - 4);
    EXPECT_ERR(b, len, dir, "runs past the end of ext_o13.onnx.data");
    t_write_file(dir, "ext_o13.onnx.data", data, dlen);
    assert_int_equal(parse(b, len, dir, &err), NN_OK);
    free(b);
    free(data);
    t_rm_dir(dir);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(good_fixtures_load),      cmocka_unit_test(layers_and_params),
        cmocka_unit_test(broken_fixtures_refused), cmocka_unit_test(every_truncation),
        cmocka_unit_test(byte_mutations),          cmocka_unit_test(nesting_too_deep),
        cmocka_unit_test(length_past_the_end),     cmocka_unit_test(decode_budget),
        cmocka_unit_test(external_data),
    };
    return cmocka_run_group_tests_name("onnx_reader", tests, NULL, NULL);
}
