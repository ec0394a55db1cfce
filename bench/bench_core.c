/* `make bench`, core part: same-run ratios for this machine (medians of repeated runs).
 *   1. Linear forward at M = N = K >= 256 vs a bare cblas_sgemm of the same shape
 *      (goal: linear >= 0.95 x sgemm speed), kernel and whole net pass.
 *   2. Batch-1 Linear 1024 -> 1024 vs a bare cblas_sgemv (goal: <= 1.3 x sgemv time).
 *   3. Forward + backward of a 1024-4096-1024 ReLU MLP at batch 256 vs PyTorch
 *      (/usr/bin/python3, same thread count), when torch imports.
 *   4. SimpleNN (Linear(10,5) + ReLU) batch-1 forward: us per call, including the
 *      check + workspace a request pays.
 * Never a pass/fail test. */
#include <cblas.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "bench/stats.h"
#include "bench/torch_child.h"
#include "core/nn.h"
#include "server/blas.h"

static char kernel[SRV_BLAS_NAME]; /* the OpenBLAS kernel every figure below ran on */

#define RUNS 61

static float *randf(size_t n)
{
    float *p = malloc(n * sizeof *p);
    if (!p) {
        fprintf(stderr, "bench: out of memory\n");
        exit(1);
    }
    for (size_t i = 0; i < n; i++)
        p[i] = (float)((double)rand() / RAND_MAX - 0.5);
    return p;
}

/* Runs body_a and body_b `reps` times each, alternating A and B blocks RUNS times, so
 * both see the same machine state (other processes come and go). Medians of seconds per
 * call into ta, tb, and the median of the per-pair ratios tb/ta into ratio. */
#define TIME_PAIR(reps, ta, tb, ratio, body_a, body_b)           \
    do {                                                         \
        double va_[RUNS], vb_[RUNS], vr_[RUNS];                  \
        for (int w_ = 0; w_ < 2; w_++) {                         \
            body_a;                                              \
            body_b;                                              \
        }                                                        \
        for (int r_ = 0; r_ < RUNS; r_++) {                      \
            double t0_ = now();                                  \
            for (int k_ = 0; k_ < (reps); k_++) {                \
                body_a;                                          \
            }                                                    \
            double t1_ = now();                                  \
            for (int k_ = 0; k_ < (reps); k_++) {                \
                body_b;                                          \
            }                                                    \
            double t2_ = now();                                  \
            va_[r_] = (t1_ - t0_) / (reps);                      \
            vb_[r_] = (t2_ - t1_) / (reps);                      \
            vr_[r_] = vb_[r_] / va_[r_];                         \
        }                                                        \
        ta = median(va_, RUNS);                                  \
        tb = median(vb_, RUNS);                                  \
        ratio = median(vr_, RUNS);                               \
    } while (0)

static void die(enum nn_status st, const struct nn_err *err)
{
    if (st) {
        fprintf(stderr, "bench: %s\n", err->msg);
        exit(1);
    }
}

static void set_t(struct nn_tensor *t, size_t d0, size_t d1, int ndim, float *data)
{
    memset(t, 0, sizeof *t);
    t->dtype = NN_F32;
    t->ndim = ndim;
    t->shape[0] = d0;
    t->shape[1] = d1;
    t->numel = ndim == 2 ? d0 * d1 : d0;
    t->data = data;
}

static void bench_large(size_t n)
{
    float *x = randf(n * n), *w = randf(n * n), *b = randf(n), *y = randf(n * n);
    int reps = n <= 256 ? 4 : 1, in = (int)n;
    double tl, tg, tn, tg2, rk, rn;
    TIME_PAIR(reps, tl, tg, rk, nn_linear_fwd(NN_F32, y, x, w, b, n, n, n),
              cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, in, in, in, 1.0f, x, in, w, in,
                          0.0f, y, in));
    /* the whole pass: input copy, non-finite scans, bias (check + workspace done once) */
    struct nn_net net;
    struct nn_err err;
    struct nn_plan plan;
    struct nn_ws ws;
    die(nn_net_init(&net, NN_F32, 1, &err), &err);
    nn_layer_init(&net.layers[0], NN_LINEAR);
    set_t(&net.layers[0].weight, n, n, 2, w);
    set_t(&net.layers[0].bias, n, 0, 1, b);
    size_t shape[2] = {n, n};
    die(nn_net_check(&net, shape, 2, 0, 0, &plan, &err), &err);
    die(nn_ws_init(&ws, &plan, &err), &err);
    TIME_PAIR(reps, tn, tg2, rn, nn_net_forward(&net, &ws, x, &err),
              cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, in, in, in, 1.0f, x, in, w, in,
                          0.0f, y, in));
    double tp, tg3, rp; /* input decoded straight into ws.act[0]: nn_net_run */
    memcpy(ws.act[0].data, x, n * n * sizeof(float));
    TIME_PAIR(reps, tp, tg3, rp, nn_net_run(&net, &ws, &err),
              cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, in, in, in, 1.0f, x, in, w, in,
                          0.0f, y, in));
    printf("linear fwd M=N=K=%-4zu  sgemm %8.1f us | speed vs sgemm: kernel %.3fx (%.1f us), "
           "net pass %.3fx (%.1f us), in-place input %.3fx (%.1f us)  (goal >= 0.95) [%s]\n",
           n, tg * 1e6, rk, tl * 1e6, rn, tn * 1e6, rp, tp * 1e6, kernel);
    (void)tg2, (void)tg3;
    nn_ws_free(&ws);
    nn_plan_free(&plan);
    nn_net_free(&net);
    free(x), free(w), free(b), free(y);
}

static void bench_batch1(void)
{
    size_t n = 1024;
    int in = (int)n;
    float *x = randf(n), *w = randf(n * n), *b = randf(n), *y = randf(n);
    double tl, tv, tr, tv2, rk, rr;
    TIME_PAIR(20, tl, tv, rk, nn_linear_fwd(NN_F32, y, x, w, b, 1, n, n),
              cblas_sgemv(CblasRowMajor, CblasNoTrans, in, in, 1.0f, w, in, x, 1, 0.0f, y, 1));
    /* what a request pays: check + workspace + forward + free */
    struct nn_net net;
    struct nn_err err;
    die(nn_net_init(&net, NN_F32, 1, &err), &err);
    nn_layer_init(&net.layers[0], NN_LINEAR);
    set_t(&net.layers[0].weight, n, n, 2, w);
    set_t(&net.layers[0].bias, n, 0, 1, b);
    size_t shape[1] = {n};
    struct nn_plan plan;
    struct nn_ws ws;
    TIME_PAIR(20, tr, tv2, rr,
              {
                  nn_net_check(&net, shape, 1, 0, 0, &plan, &err);
                  nn_ws_init(&ws, &plan, &err);
                  nn_net_forward(&net, &ws, x, &err);
                  nn_ws_free(&ws);
                  nn_plan_free(&plan);
              },
              cblas_sgemv(CblasRowMajor, CblasNoTrans, in, in, 1.0f, w, in, x, 1, 0.0f, y, 1));
    printf("batch-1 linear 1024->1024  kernel %6.1f us  request %6.1f us  sgemv %6.1f us  "
           "time vs sgemv: kernel %.3fx, request %.3fx  (goal <= 1.3) [%s]\n",
           tl * 1e6, tr * 1e6, tv * 1e6, 1.0 / rk, 1.0 / rr, kernel);
    (void)tv2;
    nn_net_free(&net);
    free(x), free(w), free(b), free(y);
}

static void bench_simple_nn(void)
{
    float *w = randf(50), *b = randf(5), *x = randf(10);
    struct nn_net net;
    struct nn_err err;
    die(nn_net_init(&net, NN_F32, 2, &err), &err);
    nn_layer_init(&net.layers[0], NN_LINEAR);
    set_t(&net.layers[0].weight, 5, 10, 2, w);
    set_t(&net.layers[0].bias, 5, 0, 1, b);
    nn_layer_init(&net.layers[1], NN_RELU);
    size_t shape[2] = {1, 10};
    struct nn_plan plan, plan1;
    struct nn_ws ws, ws1;
    die(nn_net_check(&net, shape, 2, 0, 0, &plan1, &err), &err);
    die(nn_ws_init(&ws1, &plan1, &err), &err);
    double treq, tfwd, rs;
    TIME_PAIR(2000, treq, tfwd, rs,
              {
                  nn_net_check(&net, shape, 2, 0, 0, &plan, &err);
                  nn_ws_init(&ws, &plan, &err);
                  nn_net_forward(&net, &ws, x, &err);
                  nn_ws_free(&ws);
                  nn_plan_free(&plan);
              },
              nn_net_forward(&net, &ws1, x, &err));
    printf("SimpleNN Linear(10,5)+ReLU batch 1  %.3f us/call with check + workspace, "
           "%.3f us/call forward alone  (PyTorch ~9 us, numpy ~3 us per the issue) [%s]\n",
           treq * 1e6, tfwd * 1e6, kernel);
    (void)rs;
    nn_ws_free(&ws1);
    nn_plan_free(&plan1);
    nn_net_free(&net);
    free(w), free(b), free(x);
}

/* The torch side: bench/torch_mlp.py as a child (bench/torch_child.h); "run 1" times the
 * pass with grad_input, "run 0" without. */
static int torch_mlp_start(struct torch_child *tc, const char *dir, int threads, char *banner,
                           size_t len)
{
    char script[512], th[16];
    snprintf(script, sizeof script, "%s/torch_mlp.py", dir);
    snprintf(th, sizeof th, "%d", threads);
    char *argv[] = {"python3", script, "--threads", th, NULL};
    return torch_start(tc, argv, banner, len);
}

static void pause_ms(long ms)
{
    struct timespec t = {ms / 1000, (ms % 1000) * 1000000L};
    nanosleep(&t, NULL);
}

#define MLP_RUNS 15
static void bench_mlp(const char *dir, int threads)
{
    const size_t batch = 256, s[3] = {1024, 4096, 1024};
    float *w1 = randf(s[1] * s[0]), *b1 = randf(s[1]), *w2 = randf(s[2] * s[1]), *b2 = randf(s[2]);
    float *x = randf(batch * s[0]), *g = randf(batch * s[2]);
    struct nn_net net;
    struct nn_err err;
    die(nn_net_init(&net, NN_F32, 4, &err), &err);
    nn_layer_init(&net.layers[0], NN_LINEAR);
    set_t(&net.layers[0].weight, s[1], s[0], 2, w1);
    set_t(&net.layers[0].bias, s[1], 0, 1, b1);
    nn_layer_init(&net.layers[1], NN_RELU);
    nn_layer_init(&net.layers[2], NN_LINEAR);
    set_t(&net.layers[2].weight, s[2], s[1], 2, w2);
    set_t(&net.layers[2].bias, s[2], 0, 1, b2);
    nn_layer_init(&net.layers[3], NN_RELU);
    size_t shape[2] = {batch, s[0]};
    struct nn_plan plan;
    struct nn_ws ws;
    die(nn_net_check(&net, shape, 2, 1, 0, &plan, &err), &err);
    die(nn_ws_init(&ws, &plan, &err), &err);

    struct torch_child tc = {0};
    char banner[256] = "";
    int have_torch = system("/usr/bin/python3 -c 'import torch' >/dev/null 2>&1") == 0 &&
                     torch_mlp_start(&tc, dir, threads, banner, sizeof banner) == 0;
    double v[MLP_RUNS], t1[MLP_RUNS], t0[MLP_RUNS], r1[MLP_RUNS], r0[MLP_RUNS];
    for (int r = -1; r < MLP_RUNS; r++) {
        pause_ms(150); /* let the other side's threads go idle */
        double a = now();
        die(nn_net_forward(&net, &ws, x, &err), &err);
        die(nn_net_backward(&net, &ws, g, &err), &err);
        double ours = now() - a;
        if (r < 0) {
            if (have_torch)
                torch_run(&tc, 1), torch_run(&tc, 0);
            continue;
        }
        v[r] = ours;
        if (have_torch) {
            pause_ms(150);
            t1[r] = torch_run(&tc, 1);
            pause_ms(150);
            t0[r] = torch_run(&tc, 0);
            r1[r] = t1[r] / ours;
            r0[r] = t0[r] / ours;
        }
    }
    printf("MLP 1024-4096-1024 ReLU batch 256 fwd+bwd (grad_input included)  relud %.2f ms [%s]\n",
           median(v, MLP_RUNS) * 1e3, kernel);
    if (have_torch) {
        printf("  PyTorch (%s), run by run alternating with relud:\n", banner);
        printf("    with grad_input (same work)  %8.2f ms  -> relud speed vs torch %.3fx  "
               "(goal >= 1.0)\n",
               median(t1, MLP_RUNS) * 1e3, median(r1, MLP_RUNS));
        printf("    without grad_input           %8.2f ms  -> relud speed vs torch %.3fx  "
               "(torch skips dx of layer 1)\n",
               median(t0, MLP_RUNS) * 1e3, median(r0, MLP_RUNS));
        torch_stop(&tc);
    } else {
        printf("  PyTorch: not available (/usr/bin/python3 -c 'import torch' failed or the "
               "script did not start); no ratio\n");
    }
    nn_ws_free(&ws);
    nn_plan_free(&plan);
    nn_net_free(&net);
    free(w1), free(b1), free(w2), free(b2), free(x), free(g);
}

/* `bench_core kernel`: the large-shape Linear throughput (256 x 1024 -> 1024, the issue's
 * shape) on whatever kernel relud's check leaves this process on; bench/kernel.sh runs it with
 * the check off (OPENBLAS_CORETYPE=Prescott, kept) and on (the same, marked as OpenBLAS's own
 * fall-back), alternating, and prints the ratio. */
static void bench_kernel_gflops(void)
{
    size_t B = 256, n = 1024;
    float *x = randf(B * n), *w = randf(n * n), *b = randf(n), *y = randf(B * n);
    double t[RUNS];
    nn_linear_fwd(NN_F32, y, x, w, b, B, n, n);
    for (int r = 0; r < RUNS; r++) {
        double t0 = now();
        nn_linear_fwd(NN_F32, y, x, w, b, B, n, n);
        t[r] = now() - t0;
    }
    printf("%s %.2f\n", kernel, 2.0 * (double)(B * n * n) / median(t, RUNS) / 1e9);
    free(x), free(w), free(b), free(y);
}

int main(int argc, char **argv)
{
    /* relud's own kernel check (server/blas.c): the figures and their ceilings run on the
     * kernel relud would serve on (it may re-execute this process). */
    struct srv_blas bl;
    char err[512];
    if (srv_blas_early(), srv_blas_select("auto", argv, &bl, err, sizeof err)) {
        fprintf(stderr, "bench: %s\n", err);
        return 1;
    }
    snprintf(kernel, sizeof kernel, "%s", bl.core);
    if (argc > 1 && !strcmp(argv[1], "kernel")) {
        openblas_set_num_threads(1);
        bench_kernel_gflops();
        return 0;
    }
    const char *dir = argc > 1 ? argv[1] : "bench";
    int threads = openblas_get_num_threads();
    printf("relud core bench: %s, %d threads; medians of %d runs, same-run ratios\n"
           "  kernel %s (%s: %s) on %s\n",
           bl.version, threads, RUNS, bl.core, bl.source, bl.note,
           bl.cpu.brand[0] ? bl.cpu.brand : "an unknown CPU");
    bench_large(256);
    bench_large(512);
    bench_large(1024);
    bench_batch1();
    bench_simple_nn();

    bench_mlp(dir, threads);
    return 0;
}
