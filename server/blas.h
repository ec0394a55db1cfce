/* The BLAS kernel check: OpenBLAS picks its kernel from the CPU model when the library
 * loads (before main), and on a CPU newer than the library it falls back to a generic one
 * (Debian's 0.3.21 runs Sapphire Rapids on "Prescott", about 5x slower at sgemm). At start
 * relud compares the kernel in use with what the CPU can run and, when a better kernel the
 * library ships fits, re-executes itself once with OPENBLAS_CORETYPE set to it — after a
 * self-check of that kernel in a child process (a wrong kernel is worse than a slow one: a
 * kernel that gives wrong numbers or dies on an illegal instruction is never used).
 *
 *   blas_core = auto   the above, unless the environment set OPENBLAS_CORETYPE (kept)
 *               keep   whatever OpenBLAS chose
 *               NAME   that kernel (refused when the CPU cannot run it)
 *
 * Every process that serves also self-checks the kernel it runs on before serving; when
 * that fails relud falls back to "Prescott" (the generic kernel), and stops if that fails
 * too. Internal environment (read and removed at start, before the options are read):
 *   RELUD_BLAS_PROBE=1          run the self-check, print the verdict, exit 0/1
 *   RELUD_BLAS_FROM=KERNEL      set by relud on its re-exec: OpenBLAS's own pick, and
 *                               the proof that OPENBLAS_CORETYPE came from relud
 * and two knobs for tests and the bench (docs/configuration.md):
 *   RELUD_BLAS_EMULATE_FALLBACK=1  treat OPENBLAS_CORETYPE as OpenBLAS's own pick, as on a
 *                                  CPU the library does not know
 *   RELUD_BLAS_TEST_FAIL=KERNEL    the self-check fails on KERNEL */
#ifndef RELUD_BLAS_H
#define RELUD_BLAS_H

#include <stddef.h>

#define SRV_BLAS_NAME 32

/* CPU features that decide which OpenBLAS kernels can run (cpuid + what the OS saves). */
enum srv_cpu_feat {
    SRV_CPU_SSE3 = 1 << 0,
    SRV_CPU_SSSE3 = 1 << 1,
    SRV_CPU_SSE42 = 1 << 2,
    SRV_CPU_AVX = 1 << 3, /* with OS support for the YMM state */
    SRV_CPU_FMA = 1 << 4,
    SRV_CPU_AVX2 = 1 << 5,
    SRV_CPU_AVX512 = 1 << 6, /* F, CD, BW, DQ, VL, with OS support for the ZMM state */
    SRV_CPU_AVX512_BF16 = 1 << 7,
    SRV_CPU_AMX = 1 << 8,
    SRV_CPU_AMD = 1 << 9, /* vendor AuthenticAMD / HygonGenuine */
};

struct srv_cpu {
    unsigned feat; /* enum srv_cpu_feat bits; 0 off x86-64 */
    int family, model;
    char brand[64]; /* "AMD EPYC 9R14", or "" */
};
void srv_cpu_detect(struct srv_cpu *cpu);
/* "avx2 fma avx512 avx512_bf16" into buf; returns buf. */
char *srv_cpu_feat_str(unsigned feat, char *buf, size_t len);

/* What the check decided, for the log, --version and /metrics. */
struct srv_blas {
    char config[160];         /* openblas_get_config(): "OpenBLAS 0.3.21 DYNAMIC_ARCH ..." */
    char version[32];         /* "OpenBLAS 0.3.21" */
    char core[SRV_BLAS_NAME]; /* kernel in use, as openblas_get_corename() says it */
    char from[SRV_BLAS_NAME]; /* OpenBLAS's own pick when relud changed it, else "" */
    const char *source;       /* "openblas" | "relud" | "environment" | "option" | "fallback" */
    char note[400];           /* why, one sentence */
    struct srv_cpu cpu;
};

/* The best kernel this CPU can run among those relud knows the library ships, or NULL
 * (not x86-64, or nothing known fits). */
const char *srv_blas_best(const struct srv_cpu *cpu);
/* The rank of a kernel name as OpenBLAS reports it (1 generic SSE3 .. 6 AVX-512), or 0
 * for a name relud does not know (then relud never second-guesses it). */
int srv_blas_rank(const char *core);
/* 1 when the CPU can run the named kernel; 0 (unknown name or missing features). */
int srv_blas_runs(const struct srv_cpu *cpu, const char *core);
/* "Prescott, Core2, ..., SkylakeX" */
char *srv_blas_known(char *buf, size_t len);

/* Runs the self-check on the kernel this process loaded: Linear forward and backward
 * through core's kernels (gemv and gemm paths, float32 and float64, odd sizes) against a
 * float64 reference, allclose. Returns 0, or -1 with the first difference in msg. */
int srv_blas_selftest(char *msg, size_t len);

/* First thing in main: takes the internal variables out of the environment, and in a
 * probe child runs the self-check and exits. */
void srv_blas_early(void);

/* After the options are read: applies blas_core (may re-execute the process and not
 * return). Fills b. Returns 0, or -1 with err (an unknown or unrunnable kernel, or no
 * kernel that passes the self-check). */
int srv_blas_select(const char *blas_core, char **argv, struct srv_blas *b, char *err,
                    size_t errlen);

#endif
