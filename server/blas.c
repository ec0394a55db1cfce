/* The BLAS kernel check: see blas.h. */
#include "server/blas.h"

#include <cblas.h>
#include <errno.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/wait.h>
#include <unistd.h>

#if defined(__x86_64__) || defined(__i386__)
#include <cpuid.h>
#endif

#include "core/nn.h"

extern char **environ;

/* ---- the kernels: one list --------------------------------------------------------------
 * X(name, rank, features it needs, in Debian's OpenBLAS and settable by OPENBLAS_CORETYPE).
 * rank orders the instruction sets (1 SSE3 .. 6 AVX-512); a kernel relud may choose must be
 * settable (0.3.21 reports "Cooperlake" but cannot be set to it: its force_coretype list
 * stops before that name). Names OpenBLAS may report that are not listed have rank 0:
 * relud leaves them alone. */
#define F_SSE3 SRV_CPU_SSE3
#define F_SSSE3 (F_SSE3 | SRV_CPU_SSSE3)
#define F_SSE42 (F_SSSE3 | SRV_CPU_SSE42)
#define F_AVX (F_SSE42 | SRV_CPU_AVX)
#define F_AVX2 (F_AVX | SRV_CPU_FMA | SRV_CPU_AVX2)
#define F_AVX512 (F_AVX2 | SRV_CPU_AVX512)
#define BLAS_KERNELS(X)                                   \
    X("SapphireRapids", 6, F_AVX512 | SRV_CPU_AMX, 0)     \
    X("Cooperlake", 6, F_AVX512 | SRV_CPU_AVX512_BF16, 0) \
    X("SkylakeX", 6, F_AVX512, 1)                         \
    X("Zen", 5, F_AVX2, 1)                                \
    X("Haswell", 5, F_AVX2, 1)                            \
    X("Excavator", 4, F_AVX | SRV_CPU_FMA, 0)             \
    X("Steamroller", 4, F_AVX | SRV_CPU_FMA, 0)           \
    X("Piledriver", 4, F_AVX | SRV_CPU_FMA, 0)            \
    X("Bulldozer", 4, F_AVX, 0)                           \
    X("Sandybridge", 4, F_AVX, 1)                         \
    X("Nehalem", 3, F_SSE42, 1)                           \
    X("Dunnington", 2, F_SSSE3, 0)                        \
    X("Penryn", 2, F_SSSE3, 0)                            \
    X("Core2", 2, F_SSSE3, 1)                             \
    X("Atom", 2, F_SSSE3, 0)                              \
    X("Prescott", 1, F_SSE3, 1)

static const struct kernel {
    const char *name;
    int rank;
    unsigned need;
    int settable;
} kernels[] = {
#define X(n, r, f, s) {n, r, f, s},
    BLAS_KERNELS(X)
#undef X
};
#define NKERNELS (sizeof kernels / sizeof kernels[0])
#define GENERIC "Prescott"

static const struct kernel *kernel_find(const char *name)
{
    for (size_t i = 0; i < NKERNELS; i++)
        if (!strcasecmp(kernels[i].name, name))
            return &kernels[i];
    return NULL;
}

int srv_blas_rank(const char *core)
{
    const struct kernel *k = kernel_find(core);
    return k ? k->rank : 0;
}

int srv_blas_runs(const struct srv_cpu *cpu, const char *core)
{
    const struct kernel *k = kernel_find(core);
    return k && (cpu->feat & k->need) == k->need;
}

const char *srv_blas_best(const struct srv_cpu *cpu)
{
    /* Among equal ranks AMD parts take "Zen" (OpenBLAS's own choice for them), Intel
     * "Haswell": the same AVX2 kernels with blocking tuned for each. */
    for (size_t i = 0; i < NKERNELS; i++) {
        const struct kernel *k = &kernels[i];
        if (!k->settable || (cpu->feat & k->need) != k->need)
            continue;
        if (!strcmp(k->name, "Zen") && !(cpu->feat & SRV_CPU_AMD))
            continue;
        if (!strcmp(k->name, "Haswell") && (cpu->feat & SRV_CPU_AMD))
            continue;
        return k->name;
    }
    return NULL;
}

char *srv_blas_known(char *buf, size_t len)
{
    size_t n = 0;
    buf[0] = 0;
    for (size_t i = NKERNELS; i-- > 0 && n < len;)
        if (kernels[i].settable)
            n += (size_t)snprintf(buf + n, len - n, "%s%s", n ? ", " : "", kernels[i].name);
    return buf;
}

/* ---- CPU ------------------------------------------------------------------------------ */
char *srv_cpu_feat_str(unsigned feat, char *buf, size_t len)
{
    static const struct {
        unsigned bit;
        const char *name;
    } names[] = {{SRV_CPU_SSE3, "sse3"},     {SRV_CPU_SSSE3, "ssse3"},
                 {SRV_CPU_SSE42, "sse4.2"},  {SRV_CPU_AVX, "avx"},
                 {SRV_CPU_FMA, "fma"},       {SRV_CPU_AVX2, "avx2"},
                 {SRV_CPU_AVX512, "avx512"}, {SRV_CPU_AVX512_BF16, "avx512_bf16"},
                 {SRV_CPU_AMX, "amx"}};
    size_t n = 0;
    buf[0] = 0;
    for (size_t i = 0; i < sizeof names / sizeof names[0] && n < len; i++)
        if (feat & names[i].bit)
            n += (size_t)snprintf(buf + n, len - n, "%s%s", n ? " " : "", names[i].name);
    if (!n)
        snprintf(buf, len, "unknown");
    return buf;
}

#if defined(__x86_64__) || defined(__i386__)
static unsigned long long xgetbv0(void)
{
    unsigned lo, hi;
    __asm__ volatile("xgetbv" : "=a"(lo), "=d"(hi) : "c"(0));
    return ((unsigned long long)hi << 32) | lo;
}

void srv_cpu_detect(struct srv_cpu *cpu)
{
    memset(cpu, 0, sizeof *cpu);
    unsigned a = 0, b = 0, c = 0, d = 0, max = 0;
    if (!__get_cpuid(0, &max, &b, &c, &d))
        return;
    char vendor[13];
    memcpy(vendor, &b, 4), memcpy(vendor + 4, &d, 4), memcpy(vendor + 8, &c, 4);
    vendor[12] = 0;
    if (!strcmp(vendor, "AuthenticAMD") || !strcmp(vendor, "HygonGenuine"))
        cpu->feat |= SRV_CPU_AMD;
    __get_cpuid(1, &a, &b, &c, &d);
    int fam = (int)((a >> 8) & 0xf), model = (int)((a >> 4) & 0xf);
    if (fam == 0xf)
        fam += (int)((a >> 20) & 0xff);
    if (fam == 0x6 || fam >= 0xf)
        model |= (int)((a >> 16) & 0xf) << 4;
    cpu->family = fam;
    cpu->model = model;
    if (c & bit_SSE3)
        cpu->feat |= SRV_CPU_SSE3;
    if (c & bit_SSSE3)
        cpu->feat |= SRV_CPU_SSSE3;
    if (c & bit_SSE4_2)
        cpu->feat |= SRV_CPU_SSE42;
    /* AVX needs the OS to save the YMM state (XCR0 bits 1-2), AVX-512 the ZMM state
     * (bits 5-7): a CPU may have the instructions and the OS (or hypervisor) not. */
    unsigned long long xcr0 = (c & bit_OSXSAVE) ? xgetbv0() : 0;
    int ymm = (xcr0 & 0x6) == 0x6, zmm = (xcr0 & 0xe6) == 0xe6;
    if ((c & bit_AVX) && ymm)
        cpu->feat |= SRV_CPU_AVX;
    if ((c & bit_FMA) && ymm)
        cpu->feat |= SRV_CPU_FMA;
    if (max >= 7) {
        __cpuid_count(7, 0, a, b, c, d);
        if ((b & bit_AVX2) && ymm)
            cpu->feat |= SRV_CPU_AVX2;
        unsigned avx512 = bit_AVX512F | bit_AVX512CD | bit_AVX512BW | bit_AVX512DQ | bit_AVX512VL;
        if ((b & avx512) == avx512 && zmm)
            cpu->feat |= SRV_CPU_AVX512;
        if (d & (1u << 24)) /* AMX-TILE */
            cpu->feat |= SRV_CPU_AMX;
        unsigned a1, b1, c1, d1;
        __cpuid_count(7, 1, a1, b1, c1, d1);
        if ((a1 & (1u << 5)) && (cpu->feat & SRV_CPU_AVX512)) /* AVX512_BF16 */
            cpu->feat |= SRV_CPU_AVX512_BF16;
    }
    unsigned ext = 0;
    __get_cpuid(0x80000000, &ext, &b, &c, &d);
    if (ext >= 0x80000004) {
        unsigned r[12];
        for (unsigned i = 0; i < 3; i++)
            __get_cpuid(0x80000002 + i, &r[4 * i], &r[4 * i + 1], &r[4 * i + 2], &r[4 * i + 3]);
        char brand[49];
        memcpy(brand, r, 48);
        brand[48] = 0;
        char *s = brand;
        while (*s == ' ')
            s++;
        size_t n = strlen(s);
        while (n && s[n - 1] == ' ')
            s[--n] = 0;
        snprintf(cpu->brand, sizeof cpu->brand, "%s", s);
    }
}
#else
void srv_cpu_detect(struct srv_cpu *cpu) { memset(cpu, 0, sizeof *cpu); }
#endif

/* ---- the self-check --------------------------------------------------------------------- */
/* Deterministic values in [-1, 1). */
static double lcg(uint64_t *s)
{
    *s = *s * 6364136223846793005ULL + 1442695040888963407ULL;
    return (double)(*s >> 11) / 9007199254740992.0 * 2.0 - 1.0;
}

static double val(enum nn_dtype dt, const void *p, size_t i)
{
    return dt == NN_F32 ? (double)((const float *)p)[i] : ((const double *)p)[i];
}

/* allclose with a tolerance scaled to the summation length: float32 rounding grows with
 * the number of terms; a wrong kernel is off by far more (a dropped term is ~0.3). */
static int compare(enum nn_dtype dt, const void *got, const double *want, size_t n, size_t terms,
                   const char *what, size_t B, size_t IN, size_t OUT, char *msg, size_t len)
{
    double eps = dt == NN_F32 ? 1.2e-7 : 2.3e-16;
    double rtol = 8 * eps * (double)terms, atol = rtol;
    for (size_t i = 0; i < n; i++) {
        double g = val(dt, got, i), w = want[i];
        if (!(fabs(g - w) <= atol + rtol * fabs(w))) {
            snprintf(msg, len,
                     "%s %s of a Linear with batch %zu, %zu -> %zu features: element %zu is %.9g, "
                     "the float64 reference says %.9g",
                     nn_dtype_names[dt], what, B, IN, OUT, i, g, w);
            return -1;
        }
    }
    return 0;
}

static int check_case(enum nn_dtype dt, size_t B, size_t IN, size_t OUT, char *msg, size_t len)
{
    size_t es = nn_dtype_size(dt);
    size_t n_in = B * IN, n_w = OUT * IN, n_out = B * OUT;
    /* inp, w, bias, dout as dt; out, dinp, dw, db as dt; the references in double */
    char *m = calloc(1, (n_in + n_w + OUT + n_out) * es * 2 + (n_out + n_in + n_w + OUT) * 8);
    if (!m) {
        snprintf(msg, len, "out of memory for the BLAS self-check");
        return -1;
    }
    char *p = m;
    void *inp = p, *w = (p += n_in * es), *bias = (p += n_w * es), *dout = (p += OUT * es);
    void *out = (p += n_out * es), *dinp = (p += n_out * es), *dw = (p += n_in * es),
         *db = (p += n_w * es);
    double *r_out = (double *)(void *)(p += OUT * es), *r_dinp = r_out + n_out,
           *r_dw = r_dinp + n_in, *r_db = r_dw + n_w;
    uint64_t seed = 0x5eed ^ (B * 1000003u + IN * 1009u + OUT);
    struct {
        void *p;
        size_t n;
    } fill[] = {{inp, n_in}, {w, n_w}, {bias, OUT}, {dout, n_out}};
    for (size_t f = 0; f < 4; f++)
        for (size_t i = 0; i < fill[f].n; i++) {
            double v = lcg(&seed);
            if (dt == NN_F32)
                ((float *)fill[f].p)[i] = (float)v;
            else
                ((double *)fill[f].p)[i] = v;
        }
    for (size_t b = 0; b < B; b++)
        for (size_t o = 0; o < OUT; o++) {
            double s = val(dt, bias, o);
            for (size_t k = 0; k < IN; k++)
                s += val(dt, inp, b * IN + k) * val(dt, w, o * IN + k);
            r_out[b * OUT + o] = s;
        }
    for (size_t b = 0; b < B; b++)
        for (size_t k = 0; k < IN; k++) {
            double s = 0;
            for (size_t o = 0; o < OUT; o++)
                s += val(dt, dout, b * OUT + o) * val(dt, w, o * IN + k);
            r_dinp[b * IN + k] = s;
        }
    for (size_t o = 0; o < OUT; o++) {
        double sb = 0;
        for (size_t b = 0; b < B; b++)
            sb += val(dt, dout, b * OUT + o);
        r_db[o] = sb;
        for (size_t k = 0; k < IN; k++) {
            double s = 0;
            for (size_t b = 0; b < B; b++)
                s += val(dt, dout, b * OUT + o) * val(dt, inp, b * IN + k);
            r_dw[o * IN + k] = s;
        }
    }
    nn_linear_fwd(dt, out, inp, w, bias, B, IN, OUT);
    nn_linear_bwd(dt, dinp, dw, db, dout, inp, w, B, IN, OUT);
    int rc = compare(dt, out, r_out, n_out, IN + 1, "forward", B, IN, OUT, msg, len);
    if (!rc)
        rc = compare(dt, dinp, r_dinp, n_in, OUT, "input gradient", B, IN, OUT, msg, len);
    if (!rc)
        rc = compare(dt, dw, r_dw, n_w, B, "weight gradient", B, IN, OUT, msg, len);
    if (!rc)
        rc = compare(dt, db, r_db, OUT, B, "bias gradient", B, IN, OUT, msg, len);
    free(m);
    return rc;
}

int srv_blas_selftest(char *msg, size_t len)
{
    /* batch 1 (gemv), small batches, and sizes off every kernel's unroll and block. */
    static const size_t cases[][3] = {{1, 67, 33},   {1, 300, 257}, {3, 64, 17},
                                      {17, 129, 65}, {64, 257, 96}, {130, 100, 300}};
    const char *fail = getenv("RELUD_BLAS_TEST_FAIL");
    if (fail && *fail && !strcasecmp(fail, openblas_get_corename())) {
        snprintf(msg, len, "RELUD_BLAS_TEST_FAIL=%s (a test asked this kernel to fail)", fail);
        return -1;
    }
    for (int dt = 0; dt < NN_DTYPE_COUNT; dt++)
        for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
            if (check_case((enum nn_dtype)dt, cases[i][0], cases[i][1], cases[i][2], msg, len))
                return -1;
    return 0;
}

/* ---- start: the environment, the probe, the re-exec --------------------------------------- */
static char early_from[SRV_BLAS_NAME]; /* RELUD_BLAS_FROM as found */
static int early_emulate;              /* RELUD_BLAS_EMULATE_FALLBACK=1 */
static char early_fail[SRV_BLAS_NAME]; /* RELUD_BLAS_TEST_FAIL, passed on to probes */
static char early_note[256];           /* RELUD_BLAS_NOTE: why the re-exec (a fallback) */

void srv_blas_early(void)
{
    const char *v;
    if ((v = getenv("RELUD_BLAS_PROBE")) && !strcmp(v, "1")) {
        char msg[512];
        const char *asked = getenv("OPENBLAS_CORETYPE"), *got = openblas_get_corename();
        int rc = asked && strcasecmp(asked, got) ? -1 : 0;
        if (rc)
            snprintf(msg, sizeof msg, "OpenBLAS does not offer %.40s here (it loaded %.40s)", asked,
                     got);
        else
            rc = srv_blas_selftest(msg, sizeof msg);
        if (rc)
            fprintf(stderr, "%s\n", msg);
        _exit(rc ? 1 : 0);
    }
    if ((v = getenv("RELUD_BLAS_FROM")))
        snprintf(early_from, sizeof early_from, "%s", v);
    if ((v = getenv("RELUD_BLAS_NOTE")))
        snprintf(early_note, sizeof early_note, "%s", v);
    early_emulate = (v = getenv("RELUD_BLAS_EMULATE_FALLBACK")) && !strcmp(v, "1");
    if ((v = getenv("RELUD_BLAS_TEST_FAIL")))
        snprintf(early_fail, sizeof early_fail, "%s", v);
    unsetenv("RELUD_BLAS_FROM");
    unsetenv("RELUD_BLAS_NOTE");
    unsetenv("RELUD_BLAS_EMULATE_FALLBACK");
    /* RELUD_BLAS_TEST_FAIL stays for this process's own self-check; the options loader
     * must not see it as a typo of an option, so it is restored after (srv_blas_select). */
    unsetenv("RELUD_BLAS_TEST_FAIL");
}

/* Runs this binary as a probe with OPENBLAS_CORETYPE=core: 0 when its self-check passed;
 * else -1 and why in msg (its message, or how it died). */
static int probe(const char *core, char *msg, size_t len)
{
    int fd[2];
    if (pipe(fd))
        return snprintf(msg, len, "pipe: %s", strerror(errno)), -1;
    pid_t pid = fork();
    if (pid < 0) {
        close(fd[0]), close(fd[1]);
        return snprintf(msg, len, "fork: %s", strerror(errno)), -1;
    }
    if (pid == 0) {
        dup2(fd[1], 2);
        close(fd[0]), close(fd[1]);
        setenv("OPENBLAS_CORETYPE", core, 1);
        setenv("RELUD_BLAS_PROBE", "1", 1);
        if (early_fail[0])
            setenv("RELUD_BLAS_TEST_FAIL", early_fail, 1);
        char *argv[] = {"relud", NULL};
        execv("/proc/self/exe", argv);
        _exit(127);
    }
    close(fd[1]);
    size_t n = 0;
    ssize_t r;
    char buf[512];
    while ((r = read(fd[0], buf + n, sizeof buf - 1 - n)) > 0 || (r < 0 && errno == EINTR))
        if (r > 0)
            n += (size_t)r;
    close(fd[0]);
    buf[n] = 0;
    while (n && buf[n - 1] == '\n')
        buf[--n] = 0;
    int st;
    while (waitpid(pid, &st, 0) < 0 && errno == EINTR)
        ;
    if (WIFEXITED(st) && WEXITSTATUS(st) == 0)
        return 0;
    if (WIFSIGNALED(st))
        snprintf(msg, len, "the probe died of signal %d%s", WTERMSIG(st),
                 WTERMSIG(st) == 4 ? " (illegal instruction)" : "");
    else if (WIFEXITED(st) && WEXITSTATUS(st) == 127)
        snprintf(msg, len, "the probe could not run /proc/self/exe");
    else
        snprintf(msg, len, "%.300s", n ? buf : "the probe failed without a message");
    return -1;
}

/* Re-executes this process on kernel core (after a probe passed); from = OpenBLAS's own
 * pick, note = why when it is a fall-back. Returns only when exec failed. */
static void reexec(const char *core, const char *from, const char *note, char **argv)
{
    setenv("OPENBLAS_CORETYPE", core, 1);
    setenv("RELUD_BLAS_FROM", from, 1);
    if (note)
        setenv("RELUD_BLAS_NOTE", note, 1);
    if (early_fail[0])
        setenv("RELUD_BLAS_TEST_FAIL", early_fail, 1);
    fflush(NULL);
    execv("/proc/self/exe", argv);
    unsetenv("RELUD_BLAS_FROM");
}

static void blas_info(struct srv_blas *b)
{
    memset(b, 0, sizeof *b);
    srv_cpu_detect(&b->cpu);
    snprintf(b->config, sizeof b->config, "%s", openblas_get_config());
    const char *c = b->config;
    /* "OpenBLAS 0.3.21 NO_LAPACKE ..." -> "OpenBLAS 0.3.21" */
    const char *sp = strchr(c, ' ');
    sp = sp ? strchr(sp + 1, ' ') : NULL;
    snprintf(b->version, sizeof b->version, "%.*s", sp ? (int)(sp - c) : 31, c);
    snprintf(b->core, sizeof b->core, "%s", openblas_get_corename());
}

int srv_blas_select(const char *blas_core, char **argv, struct srv_blas *b, char *err,
                    size_t errlen)
{
    blas_info(b);
    char known[256], feats[128];
    srv_blas_known(known, sizeof known);
    srv_cpu_feat_str(b->cpu.feat, feats, sizeof feats);
    const char *env = getenv("OPENBLAS_CORETYPE");
    const char *want = NULL;           /* the kernel to switch to, if any */
    int reexeced = early_from[0] != 0; /* relud set OPENBLAS_CORETYPE: never switch twice */
    if (reexeced)
        snprintf(b->from, sizeof b->from, "%s", early_from);

    if (strcmp(blas_core, "auto") && strcmp(blas_core, "keep")) {
        const struct kernel *k = kernel_find(blas_core);
        if (!k || !k->settable) {
            snprintf(err, errlen, "blas_core: unknown kernel \"%.40s\" (auto, keep, or one of: %s)",
                     blas_core, known);
            return -1;
        }
        if (!srv_blas_runs(&b->cpu, k->name)) {
            char needs[128];
            snprintf(err, errlen,
                     "blas_core: this CPU cannot run the %s kernel (it needs %s; the CPU has %s)",
                     k->name, srv_cpu_feat_str(k->need, needs, sizeof needs), feats);
            return -1;
        }
        b->source = "option";
        if (strcasecmp(b->core, k->name) == 0)
            snprintf(b->note, sizeof b->note, "set by blas_core");
        else if (!reexeced)
            want = k->name;
        else {
            snprintf(err, errlen, "blas_core: OpenBLAS did not switch to %s (it runs %s)", k->name,
                     b->core);
            return -1;
        }
    } else if (reexeced) {
        b->source = early_note[0] ? "fallback" : "relud";
        if (early_note[0])
            snprintf(b->note, sizeof b->note, "%s", early_note);
        else
            snprintf(b->note, sizeof b->note,
                     "OpenBLAS picked %s on this CPU; relud chose %s (the CPU has %s)", b->from,
                     b->core, feats);
    } else if (!strcmp(blas_core, "keep")) {
        b->source = env && *env ? "environment" : "openblas";
        snprintf(b->note, sizeof b->note, "blas_core = keep");
    } else if (env && *env && !early_emulate) {
        b->source = "environment";
        snprintf(b->note, sizeof b->note, "OPENBLAS_CORETYPE=%.40s set by the environment: kept",
                 env);
    } else {
        b->source = "openblas";
        const char *best = srv_blas_best(&b->cpu);
        int cur = srv_blas_rank(b->core);
        if (best && cur > 0 && cur < srv_blas_rank(best))
            want = best;
        else
            snprintf(b->note, sizeof b->note, "%s",
                     cur == 0 ? "a kernel relud does not rank: kept"
                     : best   ? "the best kernel this CPU can run"
                              : "no better kernel fits this CPU");
    }

    char why[384];
    if (want) {
        /* The kernel must pass its self-check in a child before this process switches. */
        if (probe(want, why, sizeof why) == 0) {
            reexec(want, b->core, NULL, argv);
            snprintf(b->note, sizeof b->note, "could not re-execute to use %s: %s", want,
                     strerror(errno));
        } else if (!strcmp(b->source, "option")) {
            snprintf(err, errlen, "blas_core: the %s kernel failed its self-check: %.300s", want,
                     why);
            return -1;
        } else {
            snprintf(b->note, sizeof b->note,
                     "OpenBLAS picked %s; %s would be faster on this CPU but failed its "
                     "self-check (%.120s): kept %s",
                     b->core, want, why, b->core);
        }
    }
    if (early_fail[0])
        setenv("RELUD_BLAS_TEST_FAIL", early_fail, 1);

    /* The kernel this process serves on checks itself too; a failure falls back to the
     * generic kernel, once. */
    if (srv_blas_selftest(why, sizeof why) == 0)
        return 0;
    if (strcasecmp(b->core, GENERIC)) {
        char note[256], pwhy[384];
        snprintf(note, sizeof note, "the %s kernel failed its self-check (%.150s): fell back to %s",
                 b->core, why, GENERIC);
        if (probe(GENERIC, pwhy, sizeof pwhy) == 0)
            reexec(GENERIC, reexeced ? b->from : b->core, note, argv);
    }
    snprintf(err, errlen, "BLAS self-check failed on the %s kernel: %.300s", b->core, why);
    return -1;
}
