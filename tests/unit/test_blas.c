/* The BLAS kernel check's decisions (server/blas.c) on CPUs described by their features, and
 * the self-check on the kernel this process loaded. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "server/blas.h"

#define SSE (SRV_CPU_SSE3 | SRV_CPU_SSSE3 | SRV_CPU_SSE42)
#define AVX2 (SSE | SRV_CPU_AVX | SRV_CPU_FMA | SRV_CPU_AVX2)
#define AVX512 (AVX2 | SRV_CPU_AVX512)

static const char *best(unsigned feat)
{
    struct srv_cpu cpu = {.feat = feat};
    return srv_blas_best(&cpu);
}

/* The CPUs of the issue: a new Xeon the library does not know gets SkylakeX, AMD parts Zen,
 * older Intel Haswell; without AVX the SSE kernels. */
static void best_kernel_per_cpu(void **state)
{
    (void)state;
    assert_string_equal(best(AVX512 | SRV_CPU_AVX512_BF16 | SRV_CPU_AMX), "SkylakeX");
    assert_string_equal(best(AVX512 | SRV_CPU_AMD), "SkylakeX");
    assert_string_equal(best(AVX2 | SRV_CPU_AMD), "Zen");
    assert_string_equal(best(AVX2), "Haswell");
    assert_string_equal(best(SSE | SRV_CPU_AVX), "Sandybridge");
    assert_string_equal(best(SSE), "Nehalem");
    assert_string_equal(best(SRV_CPU_SSE3 | SRV_CPU_SSSE3), "Core2");
    assert_string_equal(best(SRV_CPU_SSE3), "Prescott");
    assert_null(best(0));
    /* AVX-512 instructions without the OS saving the ZMM state are not AVX-512 to relud:
     * srv_cpu_detect leaves the bit off, so such a CPU is an AVX2 one. */
}

/* A fall-back is a kernel of a lower rank than the best that fits; unknown names rank 0
 * and are never second-guessed. */
static void ranks(void **state)
{
    (void)state;
    assert_true(srv_blas_rank("Prescott") < srv_blas_rank("Haswell"));
    assert_true(srv_blas_rank("Haswell") < srv_blas_rank("SkylakeX"));
    assert_int_equal(srv_blas_rank("Cooperlake"), srv_blas_rank("SkylakeX"));
    assert_int_equal(srv_blas_rank("Zen"), srv_blas_rank("Haswell"));
    assert_int_equal(srv_blas_rank("skylakex"), srv_blas_rank("SkylakeX"));
    assert_int_equal(srv_blas_rank("NewCoreFrom2030"), 0);
}

static void runs(void **state)
{
    (void)state;
    struct srv_cpu old = {.feat = SSE}, avx512 = {.feat = AVX512};
    assert_false(srv_blas_runs(&old, "SkylakeX"));
    assert_false(srv_blas_runs(&old, "Haswell"));
    assert_true(srv_blas_runs(&old, "Nehalem"));
    assert_true(srv_blas_runs(&avx512, "SkylakeX"));
    assert_false(srv_blas_runs(&avx512, "Bogus"));
    char buf[256];
    srv_blas_known(buf, sizeof buf);
    assert_non_null(strstr(buf, "SkylakeX"));
    assert_non_null(strstr(buf, "Prescott"));
    assert_null(strstr(buf, "Cooperlake")); /* reported by 0.3.21, but it cannot be set */
}

/* This machine's CPU: whatever it is, the features are consistent with each other. */
static void detect(void **state)
{
    (void)state;
    struct srv_cpu cpu;
    srv_cpu_detect(&cpu);
#if defined(__x86_64__)
    assert_true(cpu.feat & SRV_CPU_SSE3); /* every x86-64 CPU relud can meet */
    if (cpu.feat & SRV_CPU_AVX512)
        assert_true(cpu.feat & SRV_CPU_AVX2);
    if (cpu.feat & SRV_CPU_AVX2)
        assert_true(cpu.feat & SRV_CPU_AVX);
    assert_non_null(best(cpu.feat));
#endif
}

/* The self-check passes on the kernel this test loaded (make test-kernels runs the suite
 * under several). */
static void selftest_passes(void **state)
{
    (void)state;
    char msg[512] = "";
    int rc = srv_blas_selftest(msg, sizeof msg);
    if (rc)
        fail_msg("%s", msg);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(best_kernel_per_cpu), cmocka_unit_test(ranks), cmocka_unit_test(runs),
        cmocka_unit_test(detect),              cmocka_unit_test(selftest_passes),
    };
    return cmocka_run_group_tests_name("blas", tests, NULL, NULL);
}
