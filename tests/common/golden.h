/* Golden test vectors (shared/golden/README.md format): load one case file into nn
 * structures, and compare results with the torch.allclose rule. Loading is separate
 * from running so the HTTP tests can reuse it. */
#ifndef RELUD_TESTS_GOLDEN_H
#define RELUD_TESTS_GOLDEN_H

#include <stddef.h>
#include <stdint.h>

#include "core/nn.h"

struct t_golden {
    char name[128];
    enum nn_dtype dtype;
    struct nn_net net;            /* layers' weight/bias data owned by this struct */
    struct nn_tensor input;       /* owned data */
    struct nn_tensor grad_output; /* ndim 0 when absent */
    int has_loss;
    enum nn_loss loss;
    enum nn_reduction reduction;
    double loss_param;            /* beta/delta, or the table default */
    struct nn_tensor target;      /* elementwise target, or the class shape (data NULL) */
    int64_t *classes;             /* class targets, target.numel entries */
    /* expected results, in the case's dtype; ndim 0 = nothing to check */
    struct nn_tensor exp_output;
    int has_exp_loss;
    double exp_loss;
    struct nn_tensor exp_grad_input;
    int has_exp_grad_params;
    struct nn_tensor *exp_dweight; /* per layer, ndim 0 when none */
    struct nn_tensor *exp_dbias;
    double rtol, atol;
    void *json;                   /* the parsed cJSON document (for the HTTP tests) */
};

/* {"shape": [...], "data": [...]} -> t (data malloc'd, dtype dt; a null j -> ndim 0).
 * Returns 0, or -1 with what is wrong, named `what`, in msg. */
struct cJSON;
int t_tensor_load(const struct cJSON *j, enum nn_dtype dt, struct nn_tensor *t, const char *what,
                  char *msg, size_t len);

/* Reads path into g. Returns 0, or -1 with a message in msg. t_golden_free either way. */
int t_golden_load(const char *path, struct t_golden *g, char *msg, size_t msglen);
void t_golden_free(struct t_golden *g);

/* torch.allclose per element: |a - e| <= atol + rtol*|e|; NaN never passes. actual holds
 * n values of dt_actual. Returns 0, or -1 with the first failing index and values in msg. */
int t_allclose(enum nn_dtype dt_actual, const void *actual, size_t n,
               const struct nn_tensor *expected, double rtol, double atol, const char *what,
               char *msg, size_t msglen);
int t_close(double actual, double expected, double rtol, double atol);

/* Sorted *.json paths in dir (malloc'd array of malloc'd strings); count, or -1 when the
 * folder is missing. */
int t_list_json(const char *dir, char ***paths);
void t_list_free(char **paths, int n);

/* The repository root: walked up from the test binary to where core/nn.h is ("." if
 * none), so a test finds its files from any working directory. */
void t_repo_root(char *out, size_t len);

#endif
