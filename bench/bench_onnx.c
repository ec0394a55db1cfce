/* `make bench`, ONNX part: a 10 M-parameter MLP (1024-2048-2048-1024-1024-512, ReLU) loaded
 * from NAME.onnx against the same weights as NAME.json + NAME.safetensors, in the same run:
 * srv_models_load of each, alternating, medians of ROUNDS (the files in the page cache: the
 * decode, the checks and the copies, not the disk). Then one forward pass of each (batch
 * 32) to show the engine is the same: equal outputs, the time ratio ~1. The ONNX file is
 * written here with protobuf-c's generated packer (Gemm transB=1 + Relu, raw_data weights,
 * as torch.onnx.export writes an nn.Sequential). Never a pass/fail test: the ceiling it
 * reports against is the 1.5x. */
#include <cblas.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "bench/stats.h"
#include "core/nn.h"
#include "onnx/onnx.pb-c.h"
#include "server/blas.h"
#include "server/log.h"
#include "server/models.h"

#define ROUNDS 9
#define NL 5
static const int dims[NL + 1] = {1024, 2048, 2048, 1024, 1024, 512};

static void die(const char *what)
{
    fprintf(stderr, "bench_onnx: %s\n", what);
    exit(1);
}

static uint64_t rng = 0x9E3779B97F4A7C15ULL;
static float randf(float scale)
{
    rng ^= rng << 13, rng ^= rng >> 7, rng ^= rng << 17;
    return scale * ((float)(rng >> 40) / 16777216.0f * 2.0f - 1.0f);
}

static void write_file(const char *dir, const char *name, const void *p, size_t n)
{
    char path[512];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    FILE *f = fopen(path, "wb");
    if (!f || fwrite(p, 1, n, f) != n || fclose(f))
        die(path);
}

static float *w[NL], *b[NL]; /* [out, in], [out] */

/* mlp_st.json + mlp_st.safetensors ("0.weight", "0.bias", "2.weight", ...). */
static void write_safetensors(const char *dir)
{
    char hdr[4096];
    size_t n = 0, off = 0;
    n += (size_t)snprintf(hdr + n, sizeof hdr - n, "{");
    for (int l = 0; l < NL; l++) {
        size_t wb = (size_t)dims[l + 1] * dims[l] * 4, bb = (size_t)dims[l + 1] * 4;
        n += (size_t)snprintf(hdr + n, sizeof hdr - n,
                              "%s\"%d.weight\":{\"dtype\":\"F32\",\"shape\":[%d,%d],"
                              "\"data_offsets\":[%zu,%zu]},\"%d.bias\":{\"dtype\":\"F32\","
                              "\"shape\":[%d],\"data_offsets\":[%zu,%zu]}",
                              l ? "," : "", 2 * l, dims[l + 1], dims[l], off, off + wb, 2 * l,
                              dims[l + 1], off + wb, off + wb + bb);
        off += wb + bb;
    }
    n += (size_t)snprintf(hdr + n, sizeof hdr - n, "}");
    while (n % 8)
        hdr[n++] = ' ';
    size_t total = 8 + n + off;
    unsigned char *f = malloc(total);
    if (!f)
        die("out of memory");
    for (int i = 0; i < 8; i++)
        f[i] = (unsigned char)((uint64_t)n >> (8 * i));
    memcpy(f + 8, hdr, n);
    unsigned char *p = f + 8 + n;
    for (int l = 0; l < NL; l++) {
        size_t wb = (size_t)dims[l + 1] * dims[l] * 4, bb = (size_t)dims[l + 1] * 4;
        memcpy(p, w[l], wb);
        memcpy(p + wb, b[l], bb);
        p += wb + bb;
    }
    write_file(dir, "mlp_st.safetensors", f, total);
    free(f);
    char json[1024];
    n = (size_t)snprintf(json, sizeof json, "{\"weights\": \"mlp_st.safetensors\", \"layers\": [");
    for (int l = 0; l < NL; l++)
        n += (size_t)snprintf(json + n, sizeof json - n, "%s{\"type\": \"linear\"}%s",
                              l ? ", " : "", l < NL - 1 ? ", {\"type\": \"relu\"}" : "");
    n += (size_t)snprintf(json + n, sizeof json - n, "]}\n");
    write_file(dir, "mlp_st.json", json, n);
}

/* mlp_onnx.onnx: x [N, 1024] -> Gemm(transB=1) -> Relu -> ... -> y [N, 512]. */
static void write_onnx(const char *dir)
{
    char names[3 * NL][32];
    Onnx__TensorProto inits[2 * NL], *pinits[2 * NL];
    int64_t idims[2 * NL][2];
    Onnx__NodeProto nodes[2 * NL - 1], *pnodes[2 * NL - 1];
    char *nin[2 * NL - 1][3], *nout[2 * NL - 1][1];
    Onnx__AttributeProto tb = ONNX__ATTRIBUTE_PROTO__INIT, *ptb[1] = {&tb};
    tb.name = "transB";
    tb.has_type = 1, tb.type = ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__INT;
    tb.has_i = 1, tb.i = 1;
    int nn = 0;
    const char *prev = "x";
    for (int l = 0; l < NL; l++) {
        for (int k = 0; k < 2; k++) {
            Onnx__TensorProto *t = &inits[2 * l + k];
            onnx__tensor_proto__init(t);
            snprintf(names[2 * l + k], sizeof names[0], "%d.%s", 2 * l, k ? "bias" : "weight");
            t->name = names[2 * l + k];
            t->has_data_type = 1, t->data_type = ONNX__TENSOR_PROTO__DATA_TYPE__FLOAT;
            idims[2 * l + k][0] = dims[l + 1], idims[2 * l + k][1] = dims[l];
            t->n_dims = k ? 1 : 2, t->dims = idims[2 * l + k];
            t->has_raw_data = 1;
            t->raw_data.len = (size_t)dims[l + 1] * (k ? 1 : dims[l]) * 4;
            t->raw_data.data = (uint8_t *)(k ? b[l] : w[l]);
            pinits[2 * l + k] = t;
        }
        Onnx__NodeProto *g = &nodes[nn];
        onnx__node_proto__init(g);
        g->op_type = "Gemm";
        nin[nn][0] = (char *)prev, nin[nn][1] = names[2 * l], nin[nn][2] = names[2 * l + 1];
        g->n_input = 3, g->input = nin[nn];
        snprintf(names[2 * NL + l], sizeof names[0], l == NL - 1 ? "y" : "h%d", l);
        nout[nn][0] = names[2 * NL + l];
        g->n_output = 1, g->output = nout[nn];
        g->n_attribute = 1, g->attribute = ptb;
        pnodes[nn] = g;
        prev = names[2 * NL + l];
        nn++;
        if (l == NL - 1)
            break;
        Onnx__NodeProto *r = &nodes[nn];
        onnx__node_proto__init(r);
        r->op_type = "Relu";
        static char rn[NL][16];
        snprintf(rn[l], sizeof rn[l], "r%d", l);
        nin[nn][0] = (char *)prev, nout[nn][0] = rn[l];
        r->n_input = 1, r->input = nin[nn], r->n_output = 1, r->output = nout[nn];
        pnodes[nn] = r;
        prev = rn[l];
        nn++;
    }
    /* x [N, 1024], y [N, 512] */
    Onnx__TensorShapeProto__Dimension d[2][2], *pd[2][2];
    Onnx__TensorShapeProto sh[2];
    Onnx__TypeProto__Tensor tt[2];
    Onnx__TypeProto tp[2];
    Onnx__ValueInfoProto vi[2], *pin[1] = {&vi[0]}, *pout[1] = {&vi[1]};
    for (int k = 0; k < 2; k++) {
        for (int j = 0; j < 2; j++) {
            onnx__tensor_shape_proto__dimension__init(&d[k][j]);
            pd[k][j] = &d[k][j];
        }
        d[k][0].value_case = ONNX__TENSOR_SHAPE_PROTO__DIMENSION__VALUE_DIM_PARAM;
        d[k][0].dim_param = "N";
        d[k][1].value_case = ONNX__TENSOR_SHAPE_PROTO__DIMENSION__VALUE_DIM_VALUE;
        d[k][1].dim_value = k ? dims[NL] : dims[0];
        onnx__tensor_shape_proto__init(&sh[k]);
        sh[k].n_dim = 2, sh[k].dim = pd[k];
        onnx__type_proto__tensor__init(&tt[k]);
        tt[k].has_elem_type = 1, tt[k].elem_type = ONNX__TENSOR_PROTO__DATA_TYPE__FLOAT;
        tt[k].shape = &sh[k];
        onnx__type_proto__init(&tp[k]);
        tp[k].value_case = ONNX__TYPE_PROTO__VALUE_TENSOR_TYPE;
        tp[k].tensor_type = &tt[k];
        onnx__value_info_proto__init(&vi[k]);
        vi[k].name = k ? "y" : "x";
        vi[k].type = &tp[k];
    }
    Onnx__GraphProto g = ONNX__GRAPH_PROTO__INIT;
    g.name = "mlp";
    g.n_node = (size_t)nn, g.node = pnodes;
    g.n_initializer = 2 * NL, g.initializer = pinits;
    g.n_input = 1, g.input = pin, g.n_output = 1, g.output = pout;
    Onnx__OperatorSetIdProto os = ONNX__OPERATOR_SET_ID_PROTO__INIT, *pos[1] = {&os};
    os.domain = "", os.has_version = 1, os.version = 13;
    Onnx__ModelProto m = ONNX__MODEL_PROTO__INIT;
    m.has_ir_version = 1, m.ir_version = 8;
    m.producer_name = "relud-bench";
    m.n_opset_import = 1, m.opset_import = pos;
    m.graph = &g;
    size_t len = onnx__model_proto__get_packed_size(&m);
    uint8_t *buf = malloc(len);
    if (!buf || onnx__model_proto__pack(&m, buf) != len)
        die("pack");
    write_file(dir, "mlp_onnx.onnx", buf, len);
    free(buf);
}

static double load_time(struct srv_models *ms, const char *name)
{
    struct nn_err err;
    double t0 = now();
    if (srv_models_load(ms, name, &err))
        die(err.msg);
    return now() - t0;
}

/* One forward pass of model name on x (32 x 1024): seconds; the output into out. */
static double forward(struct srv_models *ms, const char *name, const float *x, float *out)
{
    enum nn_status st;
    struct nn_err err;
    struct srv_model *m = srv_models_get(ms, name, &st, &err);
    if (!m)
        die(err.msg);
    size_t shape[2] = {32, (size_t)dims[0]};
    struct nn_plan plan;
    struct nn_ws ws;
    if (nn_net_check(&m->net, shape, 2, 0, 0, &plan, &err) || nn_ws_init(&ws, &plan, &err))
        die(err.msg);
    double t0 = now();
    if (nn_net_forward(&m->net, &ws, x, &err))
        die(err.msg);
    double t = now() - t0;
    memcpy(out, ws.act[m->net.nlayers].data, 32 * (size_t)dims[NL] * sizeof *out);
    nn_ws_free(&ws);
    nn_plan_free(&plan);
    srv_model_release(m);
    return t;
}

int main(void)
{
    struct srv_blas bl;
    char e[512], *argv[] = {"bench_onnx", NULL};
    srv_blas_early();
    if (srv_blas_select("auto", argv, &bl, e, sizeof e))
        die(e);
    openblas_set_num_threads(1);
    srv_log_init(CFG_LOG_WARN, CFG_LOG_TEXT, 0);
    size_t params = 0;
    for (int l = 0; l < NL; l++) {
        size_t nw = (size_t)dims[l + 1] * dims[l];
        w[l] = malloc(nw * 4), b[l] = malloc((size_t)dims[l + 1] * 4);
        if (!w[l] || !b[l])
            die("out of memory");
        for (size_t i = 0; i < nw; i++)
            w[l][i] = randf(0.03f);
        for (int i = 0; i < dims[l + 1]; i++)
            b[l][i] = randf(0.1f);
        params += nw + (size_t)dims[l + 1];
    }
    char dir[] = "/tmp/relud-bench-onnx-XXXXXX";
    if (!mkdtemp(dir))
        die("mkdtemp");
    write_safetensors(dir);
    write_onnx(dir);
    struct srv_models *ms = srv_models_new(dir, 0);
    if (!ms)
        die("out of memory");
    printf("\nonnx: an MLP of %.1f M parameters (%.0f MB float32) loaded from NAME.onnx vs "
           "NAME.json + NAME.safetensors, medians of %d alternating rounds [cpu %s, kernel %s]\n",
           params / 1e6, params * 4 / 1e6, ROUNDS, bl.cpu.brand[0] ? bl.cpu.brand : "?", bl.core);
    load_time(ms, "mlp_st"); /* both files into the page cache */
    load_time(ms, "mlp_onnx");
    double ts[ROUNDS], to[ROUNDS];
    for (int r = 0; r < ROUNDS; r++) {
        ts[r] = load_time(ms, "mlp_st");
        to[r] = load_time(ms, "mlp_onnx");
    }
    double mst = median(ts, ROUNDS), mon = median(to, ROUNDS);
    printf("  load  safetensors %8.2f ms   onnx %8.2f ms   onnx / safetensors %.2fx "
           "(ceiling 1.5x)\n",
           mst * 1e3, mon * 1e3, mon / mst);
    float *x = malloc(32 * (size_t)dims[0] * 4), *ys = malloc(32 * (size_t)dims[NL] * 4),
          *yo = malloc(32 * (size_t)dims[NL] * 4);
    if (!x || !ys || !yo)
        die("out of memory");
    for (size_t i = 0; i < 32 * (size_t)dims[0]; i++)
        x[i] = randf(1.0f);
    for (int r = 0; r < ROUNDS; r++) {
        ts[r] = forward(ms, "mlp_st", x, ys);
        to[r] = forward(ms, "mlp_onnx", x, yo);
    }
    mst = median(ts, ROUNDS), mon = median(to, ROUNDS);
    printf("  infer (batch 32)  json %8.3f ms   onnx %8.3f ms   onnx / json %.2fx, outputs %s\n",
           mst * 1e3, mon * 1e3, mon / mst,
           memcmp(ys, yo, 32 * (size_t)dims[NL] * 4) ? "DIFFER" : "bit-identical");
    srv_models_free(ms);
    char cmd[600];
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    if (system(cmd) != 0)
        fprintf(stderr, "bench_onnx: could not remove %s\n", dir);
    for (int l = 0; l < NL; l++)
        free(w[l]), free(b[l]);
    free(x), free(ys), free(yo);
    return 0;
}
