/* The BLAS kernel check as a process: relud re-executes itself on a better kernel when
 * OpenBLAS fell back (emulated with RELUD_BLAS_EMULATE_FALLBACK, as on a CPU newer than the
 * library), keeps a kernel the environment set, refuses a kernel the CPU cannot run, falls
 * back when a self-check fails, and reports the kernel in --version, the log and /metrics. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "server/blas.h"
#include "tests/common/http.h"

/* Runs "$RELUD args..." with extra environment; stdout+stderr into out. Returns the exit
 * status (or -1). */
static int run_relud(const char *const *envs, const char *const *args, char *out, size_t len)
{
    const char *bin = getenv("RELUD");
    if (!bin || !*bin)
        bin = "build/relud";
    int fd[2];
    assert_int_equal(pipe(fd), 0);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        dup2(fd[1], 1);
        dup2(fd[1], 2);
        close(fd[0]), close(fd[1]);
        unsetenv("OPENBLAS_CORETYPE");
        for (int i = 0; envs && envs[i]; i++)
            putenv((char *)envs[i]);
        const char *argv[16] = {bin};
        for (int i = 0; args && args[i] && i < 14; i++)
            argv[i + 1] = args[i];
        execv(bin, (char *const *)argv);
        _exit(127);
    }
    close(fd[1]);
    size_t n = 0;
    ssize_t r;
    while (n < len - 1 && (r = read(fd[0], out + n, len - 1 - n)) > 0)
        n += (size_t)r;
    out[n] = 0;
    close(fd[0]);
    int st;
    waitpid(pid, &st, 0);
    return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

/* The kernel named on the "blas:" line of --version. */
static void version_kernel(const char *out, char *core, size_t len)
{
    const char *p = strstr(out, ", kernel ");
    assert_non_null(p);
    p += strlen(", kernel ");
    size_t n = strcspn(p, " ");
    snprintf(core, len, "%.*s", (int)n, p);
}

static const char *best_here(void)
{
    struct srv_cpu cpu;
    srv_cpu_detect(&cpu);
    return srv_blas_best(&cpu);
}

/* The case: OpenBLAS on Prescott on a CPU that runs better kernels. relud moves to
 * the best one by itself, and says so. */
static void fallback_is_fixed(void **state)
{
    (void)state;
    const char *best = best_here();
    if (!best || !strcmp(best, "Prescott"))
        skip();
    char out[4096], core[64];
    const char *env[] = {"OPENBLAS_CORETYPE=Prescott", "RELUD_BLAS_EMULATE_FALLBACK=1", NULL};
    const char *args[] = {"--version", NULL};
    assert_int_equal(run_relud(env, args, out, sizeof out), 0);
    version_kernel(out, core, sizeof core);
    assert_string_equal(core, best);
    assert_non_null(strstr(out, "(relud: OpenBLAS picked Prescott"));
}

/* A kernel the user set is theirs; so is blas_core = keep. */
static void environment_is_kept(void **state)
{
    (void)state;
    char out[4096], core[64];
    const char *env[] = {"OPENBLAS_CORETYPE=Prescott", NULL};
    const char *args[] = {"--version", NULL};
    assert_int_equal(run_relud(env, args, out, sizeof out), 0);
    version_kernel(out, core, sizeof core);
    assert_string_equal(core, "Prescott");
    assert_non_null(strstr(out, "(environment: OPENBLAS_CORETYPE=Prescott"));
    const char *env2[] = {"OPENBLAS_CORETYPE=Prescott", "RELUD_BLAS_EMULATE_FALLBACK=1", NULL};
    const char *keep[] = {"--blas-core", "keep", "--version", NULL};
    assert_int_equal(run_relud(env2, keep, out, sizeof out), 0);
    version_kernel(out, core, sizeof core);
    assert_string_equal(core, "Prescott");
}

/* Every kernel relud may choose, and that this CPU runs, is one the installed library
 * really offers: blas_core = NAME runs on NAME. */
static void every_known_kernel_is_offered(void **state)
{
    (void)state;
    struct srv_cpu cpu;
    srv_cpu_detect(&cpu);
    char known[256];
    srv_blas_known(known, sizeof known);
    int tried = 0;
    for (char *k = strtok(known, ", "); k; k = strtok(NULL, ", ")) {
        if (!srv_blas_runs(&cpu, k))
            continue;
        char out[4096], core[64];
        const char *args[] = {"--blas-core", k, "--version", NULL};
        int rc = run_relud(NULL, args, out, sizeof out);
        if (rc != 0)
            fail_msg("blas_core %s: exit %d: %s", k, rc, out);
        version_kernel(out, core, sizeof core);
        assert_string_equal(core, k);
        tried++;
    }
    assert_true(tried > 0);
}

static void bad_kernel_names(void **state)
{
    (void)state;
    char out[4096];
    const char *args[] = {"--blas-core", "Bogus", NULL};
    assert_int_equal(run_relud(NULL, args, out, sizeof out), 2);
    assert_non_null(strstr(out, "blas_core: unknown kernel \"Bogus\" (auto, keep, or one of:"));
    struct srv_cpu cpu;
    srv_cpu_detect(&cpu);
    if (srv_blas_runs(&cpu, "SkylakeX"))
        return; /* the refusal of a kernel the CPU cannot run is a unit test (test_blas) */
    const char *sk[] = {"--blas-core", "SkylakeX", NULL};
    assert_int_equal(run_relud(NULL, sk, out, sizeof out), 2);
    assert_non_null(strstr(out, "this CPU cannot run the SkylakeX kernel"));
}

/* A wrong kernel is worse than a slow one: a better kernel that fails its self-check is not
 * used, and a kernel in use that fails it falls back to the generic one. */
static void failed_selfcheck(void **state)
{
    (void)state;
    const char *best = best_here();
    if (!best || !strcmp(best, "Prescott"))
        skip();
    char out[4096], core[64], fail[64];
    snprintf(fail, sizeof fail, "RELUD_BLAS_TEST_FAIL=%s", best);
    const char *env[] = {"OPENBLAS_CORETYPE=Prescott", "RELUD_BLAS_EMULATE_FALLBACK=1", fail,
                         NULL};
    const char *args[] = {"--version", NULL};
    assert_int_equal(run_relud(env, args, out, sizeof out), 0);
    version_kernel(out, core, sizeof core);
    assert_string_equal(core, "Prescott");
    assert_non_null(strstr(out, "failed its self-check"));

    /* the kernel OpenBLAS chose fails: fall back to Prescott */
    snprintf(fail, sizeof fail, "RELUD_BLAS_TEST_FAIL=%s", best);
    char ct[64];
    snprintf(ct, sizeof ct, "OPENBLAS_CORETYPE=%s", best);
    const char *env2[] = {ct, "RELUD_BLAS_EMULATE_FALLBACK=1", fail, NULL};
    assert_int_equal(run_relud(env2, args, out, sizeof out), 0);
    version_kernel(out, core, sizeof core);
    assert_string_equal(core, "Prescott");
    assert_non_null(strstr(out, "(fallback: the "));

    /* an explicit blas_core that fails its self-check stops the start */
    const char *env3[] = {fail, NULL};
    const char *opt[] = {"--blas-core", best, NULL};
    assert_int_equal(run_relud(env3, opt, out, sizeof out), 2);
    assert_non_null(strstr(out, "failed its self-check"));
}

/* The daemon logs the kernel at start and exports it as relud_build_info; a re-exec keeps
 * the pid, the options and the port. */
static void daemon_reports_kernel(void **state)
{
    (void)state;
    const char *best = best_here();
    if (!best || !strcmp(best, "Prescott"))
        skip();
    struct t_daemon d;
    const char *env[] = {"OPENBLAS_CORETYPE=Prescott", "RELUD_BLAS_EMULATE_FALLBACK=1", NULL};
    const char *args[] = {"--model-dir", "config/models", NULL};
    assert_int_equal(t_daemon_start(&d, args, env), 0);
    struct t_resp r;
    assert_int_equal(t_get(&d, "/metrics", &r), 0);
    char want[160];
    snprintf(want, sizeof want, "blas_core=\"%s\",blas_core_source=\"relud\",", best);
    assert_non_null(strstr(r.body, "relud_build_info{version=\""));
    assert_non_null(strstr(r.body, want));
    t_resp_free(&r);
    assert_int_equal(t_post(&d, "/v1/forward",
                            "{\"model\": \"simple_nn\", \"input\": [[1,2,3,4,5,6,7,8,9,10]]}", &r),
                     0);
    assert_int_equal(r.status, 200);
    t_resp_free(&r);
    char *log = t_daemon_log(&d);
    snprintf(want, sizeof want, "kernel %s (relud: OpenBLAS picked Prescott", best);
    assert_non_null(strstr(log, want));
    free(log);
    assert_int_equal(t_daemon_stop(&d, 0, 10), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(fallback_is_fixed),  cmocka_unit_test(environment_is_kept),
        cmocka_unit_test(every_known_kernel_is_offered), cmocka_unit_test(bad_kernel_names),
        cmocka_unit_test(failed_selfcheck),   cmocka_unit_test(daemon_reports_kernel),
    };
    return cmocka_run_group_tests_name("kernel", tests, NULL, NULL);
}
