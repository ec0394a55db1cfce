/* `make bench`, training-steps part: relud's trainer (core/train.h) against PyTorch 1.13 doing
 * the same steps with the same thread count, in the same run (issue 15: >= 1.0x torch).
 *
 * MLP 784-256-256-10 (Linear+ReLU, Linear+ReLU, Linear), float32, cross_entropy (mean), Adam
 * lr 1e-3 with torch's default betas and eps, batch 64: 640 rows of fixed random data, the ten
 * batches cycled in order (no shuffle). A step is torch's zero_grad, forward, loss, backward,
 * optimizer.step; relud's nn_trainer_step does that (and its non-finite checks and gradient
 * norm). bench/torch_train.py is served over pipes so the two alternate round by round; the
 * figures are medians of the rounds' steps per second and of the per-round ratios.
 *
 * Threads: openblas_set_num_threads(T) here, torch.set_num_threads(T) there, for T = 1 and
 * the online CPU count. Before timing, both run a few steps from the same initial weights and
 * data (written to a temp file torch reads) and the losses are compared: a printed sanity
 * line, so the two are seen to compute the same thing. Never a pass/fail test.
 *
 *   bench_train [DIR] [--rounds R] [--steps S] [--threads T] [--no-torch]
 * (DIR holds torch_train.py, default bench; --threads T: only T; --no-torch times relud
 * alone, for profiling) */
#include <cblas.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "bench/stats.h"
#include "bench/torch_child.h"
#include "core/train.h"
#include "server/blas.h"

#define NLIN 3
#define ROWS 640
#define BATCH 64
#define SANITY_STEPS 5
#define MAX_ROUNDS 101

static const size_t sizes[NLIN + 1] = {784, 256, 256, 10};
static char kernel[SRV_BLAS_NAME];

static void *xmalloc(size_t n)
{
    void *p = malloc(n);
    if (!p) {
        fprintf(stderr, "bench_train: out of memory\n");
        exit(1);
    }
    return p;
}

static void die(enum nn_status st, const struct nn_err *err)
{
    if (st) {
        fprintf(stderr, "bench_train: %s\n", err->msg);
        exit(1);
    }
}

/* Deterministic uniform [0, 1) (SplitMix64's top 24 bits: exact in float). */
static uint64_t rng_state = 1;
static float unif(void)
{
    uint64_t z = (rng_state += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    z ^= z >> 31;
    return (float)(z >> 40) * (1.0f / 16777216.0f);
}

/* The initial weights (torch's default Linear init: U(-1/sqrt(in), 1/sqrt(in))) and the data. */
struct model {
    float *w[NLIN], *b[NLIN]; /* initial values */
    float *x;                 /* (ROWS, sizes[0]) */
    int64_t *y;               /* (ROWS) */
};

static void model_make(struct model *m)
{
    for (int l = 0; l < NLIN; l++) {
        size_t in = sizes[l], out = sizes[l + 1];
        float bound = (float)(1.0 / sqrt((double)in));
        m->w[l] = xmalloc(in * out * sizeof(float));
        m->b[l] = xmalloc(out * sizeof(float));
        for (size_t i = 0; i < in * out; i++)
            m->w[l][i] = (2 * unif() - 1) * bound;
        for (size_t i = 0; i < out; i++)
            m->b[l][i] = (2 * unif() - 1) * bound;
    }
    m->x = xmalloc(ROWS * sizes[0] * sizeof(float));
    m->y = xmalloc(ROWS * sizeof(int64_t));
    for (size_t i = 0; i < ROWS * sizes[0]; i++)
        m->x[i] = unif();
    for (size_t i = 0; i < ROWS; i++)
        m->y[i] = (int64_t)(unif() * (float)sizes[NLIN]);
}

/* The file torch_train.py --data reads: W1 b1 W2 b2 W3 b3 x (float32), y (int64). */
static int model_write(const struct model *m, const char *path)
{
    FILE *f = fopen(path, "wb");
    if (!f)
        return -1;
    int bad = 0;
    for (int l = 0; l < NLIN; l++) {
        bad |=
            fwrite(m->w[l], sizeof(float), sizes[l] * sizes[l + 1], f) != sizes[l] * sizes[l + 1];
        bad |= fwrite(m->b[l], sizeof(float), sizes[l + 1], f) != sizes[l + 1];
    }
    bad |= fwrite(m->x, sizeof(float), ROWS * sizes[0], f) != ROWS * sizes[0];
    bad |= fwrite(m->y, sizeof(int64_t), ROWS, f) != ROWS;
    return fclose(f) || bad ? -1 : 0;
}

static void set_t(struct nn_tensor *t, size_t d0, size_t d1, int ndim, void *data)
{
    memset(t, 0, sizeof *t);
    t->dtype = NN_F32;
    t->ndim = ndim;
    t->shape[0] = d0;
    t->shape[1] = d1;
    t->numel = ndim == 2 ? d0 * d1 : d0;
    t->data = data;
}

/* relud's side: a net on its own copy of the initial weights, and its trainer. */
struct relud_side {
    struct nn_net net;
    float *w[NLIN], *b[NLIN];
    struct nn_trainer t;
};

static void relud_start(struct relud_side *r, const struct model *m)
{
    struct nn_err err;
    die(nn_net_init(&r->net, NN_F32, 2 * NLIN - 1, &err), &err);
    for (int l = 0; l < NLIN; l++) {
        size_t in = sizes[l], out = sizes[l + 1];
        r->w[l] = xmalloc(in * out * sizeof(float));
        r->b[l] = xmalloc(out * sizeof(float));
        memcpy(r->w[l], m->w[l], in * out * sizeof(float));
        memcpy(r->b[l], m->b[l], out * sizeof(float));
        struct nn_layer *ly = &r->net.layers[2 * l];
        nn_layer_init(ly, NN_LINEAR);
        set_t(&ly->weight, out, in, 2, r->w[l]);
        set_t(&ly->bias, out, 0, 1, r->b[l]);
        if (l < NLIN - 1)
            nn_layer_init(&r->net.layers[2 * l + 1], NN_RELU);
    }
    struct nn_train_cfg c;
    memset(&c, 0, sizeof c);
    c.loss = NN_LOSS_CROSS_ENTROPY;
    c.reduction = NN_MEAN;
    nn_optim_defaults(&c.optim, NN_OPTIM_ADAM); /* lr 1e-3, betas (0.9, 0.999), eps 1e-8 */
    c.batch_size = BATCH;
    c.steps = 1000000000L;
    struct nn_train_set set = {.classes = m->y};
    set_t(&set.x, ROWS, sizes[0], 2, m->x);
    die(nn_trainer_init(&r->t, &r->net, &c, &set, NULL, &err), &err);
}

static double relud_steps(struct relud_side *r, int n, double *losses)
{
    struct nn_err err;
    struct nn_train_step o;
    double t0 = now();
    for (int k = 0; k < n; k++) {
        die(nn_trainer_step(&r->t, 0, &o, &err), &err);
        if (losses)
            losses[k] = o.loss;
    }
    return now() - t0;
}

static void relud_stop(struct relud_side *r)
{
    nn_trainer_free(&r->t);
    nn_net_free(&r->net);
    for (int l = 0; l < NLIN; l++)
        free(r->w[l]), free(r->b[l]);
}

/* The torch side: bench/torch_train.py as a child (bench/torch_child.h); "run n" times n
 * training steps, "losses n" returns the first n steps' losses. */
static int torch_train_start(struct torch_child *tc, const char *dir, int threads,
                             const char *data, char *banner, size_t len)
{
    char script[512], th[16], rows[16], batch[16];
    snprintf(script, sizeof script, "%s/torch_train.py", dir);
    snprintf(th, sizeof th, "%d", threads);
    snprintf(rows, sizeof rows, "%d", ROWS);
    snprintf(batch, sizeof batch, "%d", BATCH);
    char *argv[] = {"python3", script, "--threads", th, "--rows", rows, "--batch", batch,
                    "--data", (char *)data, NULL};
    return torch_start(tc, argv, banner, len);
}

/* The losses of n steps into v; 0, or -1 when the reply is short. */
static int torch_losses(struct torch_child *tc, int n, double *v)
{
    char line[4096];
    fprintf(tc->to, "losses %d\n", n);
    fflush(tc->to);
    if (!fgets(line, sizeof line, tc->from) || strncmp(line, "losses", 6) != 0)
        return -1;
    char *p = line + 6, *end;
    for (int k = 0; k < n; k++, p = end) {
        v[k] = strtod(p, &end);
        if (end == p)
            return -1;
    }
    return 0;
}

static void pause_ms(long ms)
{
    struct timespec t = {ms / 1000, (ms % 1000) * 1000000L};
    nanosleep(&t, NULL);
}

static void bench_threads(const struct model *m, const char *dir, const char *data, int have_torch,
                          int threads, int rounds, int steps)
{
    openblas_set_num_threads(threads);
    struct relud_side r;
    relud_start(&r, m);
    struct torch_child tc = {0};
    char banner[256] = "";
    int torch_ok = have_torch && torch_train_start(&tc, dir, threads, data, banner, sizeof banner) == 0;
    if (have_torch && !torch_ok)
        torch_stop(&tc);

    /* sanity: the same first steps from the same weights and data */
    double lr_[SANITY_STEPS], lt[SANITY_STEPS];
    relud_steps(&r, SANITY_STEPS, lr_);
    if (torch_ok && torch_losses(&tc, SANITY_STEPS, lt) == 0) {
        double d = 0;
        for (int k = 0; k < SANITY_STEPS; k++)
            d = fmax(d, fabs(lr_[k] - lt[k]));
        printf("  threads %d sanity: the first %d steps from the same weights and data, losses "
               "relud %.7f..%.7f torch %.7f..%.7f, max |diff| %.2g (%s 1e-4)\n",
               threads, SANITY_STEPS, lr_[0], lr_[SANITY_STEPS - 1], lt[0], lt[SANITY_STEPS - 1], d,
               d <= 1e-4 ? "within" : "NOT within");
    } else {
        printf("  threads %d: relud's first %d losses %.7f..%.7f\n", threads, SANITY_STEPS, lr_[0],
               lr_[SANITY_STEPS - 1]);
    }

    /* warm up both, then alternate rounds */
    relud_steps(&r, steps / 2 + 1, NULL);
    if (torch_ok)
        torch_run(&tc, steps / 2 + 1);
    double vr[MAX_ROUNDS], vt[MAX_ROUNDS], ratio[MAX_ROUNDS];
    for (int k = 0; k < rounds; k++) {
        pause_ms(100); /* let the other side's threads go idle */
        double a = relud_steps(&r, steps, NULL);
        vr[k] = steps / a;
        if (torch_ok) {
            pause_ms(100);
            double b = torch_run(&tc, steps);
            vt[k] = b > 0 ? steps / b : 0;
            ratio[k] = b / a;
        }
    }
    printf("  threads %d: relud %8.1f steps/s", threads, median(vr, rounds));
    if (torch_ok)
        printf("   torch %8.1f steps/s   -> relud speed vs torch %.3fx  (goal >= 1.0) [%s]\n",
               median(vt, rounds), median(ratio, rounds), kernel);
    else
        printf("   (no PyTorch: relud only) [%s]\n", kernel);
    if (torch_ok && threads == 1)
        printf("    PyTorch: %s\n", banner);
    torch_stop(&tc);
    relud_stop(&r);
}

int main(int argc, char **argv)
{
    struct srv_blas bl;
    char err[512];
    if (srv_blas_early(), srv_blas_select("auto", argv, &bl, err, sizeof err)) {
        fprintf(stderr, "bench_train: %s\n", err);
        return 1;
    }
    snprintf(kernel, sizeof kernel, "%s", bl.core);
    const char *dir = "bench";
    int rounds = 7, steps = 50, no_torch = 0, only = 0;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--rounds") && i + 1 < argc)
            rounds = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--steps") && i + 1 < argc)
            steps = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--threads") && i + 1 < argc)
            only = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--no-torch"))
            no_torch = 1;
        else
            dir = argv[i];
    }
    if (rounds < 1 || rounds > MAX_ROUNDS || steps < 1) {
        fprintf(stderr, "bench_train: --rounds 1..%d, --steps >= 1\n", MAX_ROUNDS);
        return 2;
    }
    long ncpu = sysconf(_SC_NPROCESSORS_ONLN);
    int nthr = ncpu > 1 ? (int)ncpu : 1;

    struct model m;
    model_make(&m);
    char data[] = "/tmp/relud-bench-train-XXXXXX";
    int fd = mkstemp(data);
    int have_torch = 0;
    if (fd >= 0) {
        close(fd);
        have_torch = !no_torch && model_write(&m, data) == 0 &&
                     system("/usr/bin/python3 -c 'import torch' >/dev/null 2>&1") == 0;
    }
    printf("relud training steps vs PyTorch: MLP 784-256-256-10 ReLU, float32, cross_entropy, "
           "Adam lr 1e-3, batch %d (%d rows cycled, no shuffle)\n"
           "  %s, kernel %s (%s: %s) on %s; medians of %d rounds of %d steps, alternating\n",
           BATCH, ROWS, bl.version, bl.core, bl.source, bl.note,
           bl.cpu.brand[0] ? bl.cpu.brand : "an unknown CPU", rounds, steps);
    if (!have_torch)
        printf("  PyTorch: %s; relud only, no ratio\n",
               no_torch ? "not run (--no-torch)"
                        : "not available (/usr/bin/python3 -c 'import torch' failed)");
    if (only > 0) {
        bench_threads(&m, dir, data, have_torch, only, rounds, steps);
    } else {
        bench_threads(&m, dir, data, have_torch, 1, rounds, steps);
        if (nthr > 1)
            bench_threads(&m, dir, data, have_torch, nthr, rounds, steps);
    }
    if (fd >= 0)
        unlink(data);
    for (int l = 0; l < NLIN; l++)
        free(m.w[l]), free(m.b[l]);
    free(m.x), free(m.y);
    return 0;
}
