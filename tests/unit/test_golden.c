/* Every golden case, one cmocka test each: the project's own vectors
 * (tests/golden/vectors/, every .json) and the public ones (../shared/golden/, every .json, or
 * $RELUD_SHARED_GOLDEN). Output, loss, grad_input and grad_params must all pass. */
#include <limits.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "core/nn.h"
#include "tests/common/golden.h"

static void check(int rc, const char *name, const char *msg)
{
    if (rc)
        fail_msg("%s: %s", name, msg);
}

static void run_case(void **state)
{
    const char *path = *state;
    struct t_golden g;
    char msg[512];
    struct nn_err err = {{0}};
    int rc = t_golden_load(path, &g, msg, sizeof msg);
    if (rc) {
        t_golden_free(&g);
        fail_msg("%s: %s", path, msg);
    }
    int backward = g.grad_output.ndim != 0 || g.has_loss;
    struct nn_plan plan;
    struct nn_ws ws;
    enum nn_status st = nn_net_check(&g.net, g.input.shape, g.input.ndim, backward, 0, &plan, &err);
    if (st == NN_OK)
        st = nn_ws_init(&ws, &plan, &err);
    if (st == NN_OK)
        st = nn_net_forward(&g.net, &ws, g.input.data, &err);
    if (st) {
        t_golden_free(&g);
        fail_msg("%s: status %d: %s", path, st, err.msg);
    }
    int n = g.net.nlayers;
    const struct nn_tensor *y = &ws.act[n];
    rc = t_allclose(g.dtype, y->data, y->numel, &g.exp_output, g.rtol, g.atol, "output", msg,
                    sizeof msg);
    void *dout = NULL;
    if (!rc && g.has_loss) {
        double value = 0;
        dout = malloc(y->numel * nn_dtype_size(g.dtype));
        assert_non_null(dout);
        st = nn_loss_forward(g.loss, g.reduction, g.loss_param, y, &g.target, g.classes, &value,
                             dout, &err);
        if (st)
            rc = snprintf(msg, sizeof msg, "loss: status %d: %s", st, err.msg) > 0 ? -1 : -1;
        else if (g.has_exp_loss && !t_close(value, g.exp_loss, g.rtol, g.atol))
            rc = snprintf(msg, sizeof msg, "loss: got %.9g, expected %.9g", value, g.exp_loss) > 0
                     ? -1
                     : -1;
    }
    if (!rc && backward) {
        st = nn_net_backward(&g.net, &ws, g.has_loss ? dout : g.grad_output.data, &err);
        if (st)
            rc = snprintf(msg, sizeof msg, "backward: status %d: %s", st, err.msg) > 0 ? -1 : -1;
    }
    if (!rc && g.exp_grad_input.ndim)
        rc = t_allclose(g.dtype, ws.dinput.data, ws.dinput.numel, &g.exp_grad_input, g.rtol,
                        g.atol, "grad_input", msg, sizeof msg);
    for (int i = 0; !rc && g.has_exp_grad_params && i < n; i++) {
        char what[64];
        if (g.exp_dweight[i].ndim) {
            snprintf(what, sizeof what, "grad_params[%d].weight", i);
            rc = t_allclose(g.dtype, ws.dweight[i].data, ws.dweight[i].numel, &g.exp_dweight[i],
                            g.rtol, g.atol, what, msg, sizeof msg);
        }
        if (!rc && g.exp_dbias[i].ndim) {
            snprintf(what, sizeof what, "grad_params[%d].bias", i);
            rc = t_allclose(g.dtype, ws.dbias[i].data, ws.dbias[i].numel, &g.exp_dbias[i],
                            g.rtol, g.atol, what, msg, sizeof msg);
        }
        if (!rc && !g.exp_dbias[i].ndim && ws.dbias[i].data)
            rc = snprintf(msg, sizeof msg, "grad_params[%d]: a bias gradient nobody expects", i) > 0
                     ? -1
                     : -1;
    }
    free(dout);
    nn_ws_free(&ws);
    nn_plan_free(&plan);
    char name[sizeof g.name];
    snprintf(name, sizeof name, "%s", g.name);
    t_golden_free(&g);
    check(rc, name, msg);
}

static const char *skip_reason;
static void skipped(void **state)
{
    print_message("%s\n", skip_reason);
    skip();
}

static int run_dir(const char *group, const char *dir)
{
    char **paths;
    int n = t_list_json(dir, &paths);
    static char reason[PATH_MAX + 128];
    if (n <= 0) {
        snprintf(reason, sizeof reason, "%s: no golden vectors in %s (%s); skipping", group, dir,
                 n < 0 ? "folder missing" : "folder empty");
        printf("%s\n", reason);
        skip_reason = reason;
        const struct CMUnitTest one[] = {cmocka_unit_test(skipped)};
        int rc = _cmocka_run_group_tests(group, one, 1, NULL, NULL);
        t_list_free(paths, n < 0 ? 0 : n);
        return rc;
    }
    struct CMUnitTest *tests = calloc((size_t)n, sizeof *tests);
    char **names = calloc((size_t)n, sizeof *names);
    if (!tests || !names)
        return 1;
    for (int i = 0; i < n; i++) {
        const char *base = strrchr(paths[i], '/');
        names[i] = strdup(base ? base + 1 : paths[i]);
        tests[i].name = names[i];
        tests[i].test_func = run_case;
        tests[i].initial_state = paths[i];
    }
    int rc = _cmocka_run_group_tests(group, tests, (size_t)n, NULL, NULL);
    for (int i = 0; i < n; i++)
        free(names[i]);
    free(names);
    free(tests);
    t_list_free(paths, n);
    return rc;
}

int main(void)
{
    char root[PATH_MAX], own[PATH_MAX + 32], shared[PATH_MAX + 32];
    t_repo_root(root, sizeof root);
    snprintf(own, sizeof own, "%s/tests/golden/vectors", root);
    const char *env = getenv("RELUD_SHARED_GOLDEN");
    if (env && *env)
        snprintf(shared, sizeof shared, "%s", env);
    else
        snprintf(shared, sizeof shared, "%s/../shared/golden", root);
    int rc = 0;
    rc |= run_dir("golden (project vectors)", own);
    rc |= run_dir("golden (shared public vectors)", shared);
    return rc ? 1 : 0;
}
