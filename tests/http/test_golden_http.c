/* Every golden case (the public ../shared/golden when present, the project's
 * tests/golden/vectors and vectors_ext) through POST /v1/forward of the real daemon,
 * compared with torch.allclose's rule and the case's tolerance. One test per case. */
#include <dirent.h>
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "tests/common/fs.h"
#include "tests/common/http.h"

static struct t_daemon d;

struct gcase {
    char path[512];
    char name[128];
};

/* Keys of a case file that are not request fields. */
static const char *const not_request[] = {"name", "expected", "tolerance", "format", "description",
                                          "tags", "generator", "note", NULL};

static int is_request_key(const char *k)
{
    for (int i = 0; not_request[i]; i++)
        if (!strcmp(k, not_request[i]))
            return 0;
    return 1;
}

/* Flat list of the numbers of a result tensor in any form (object, nested, flat). */
static void flatten(const cJSON *t, double **v, size_t *n, size_t *cap)
{
    if (cJSON_IsObject(t)) {
        flatten(cJSON_GetObjectItemCaseSensitive(t, "data"), v, n, cap);
        return;
    }
    if (cJSON_IsNumber(t)) {
        if (*n == *cap) {
            *cap = *cap ? *cap * 2 : 64;
            *v = realloc(*v, *cap * sizeof **v);
        }
        (*v)[(*n)++] = t->valuedouble;
        return;
    }
    for (const cJSON *c = t ? t->child : NULL; c; c = c->next)
        flatten(c, v, n, cap);
}

/* Compares got with want (both any tensor form, or numbers); NULL want = nothing. */
static int close_enough(const char *what, const cJSON *got, const cJSON *want, double rtol,
                        double atol)
{
    if (!want || cJSON_IsNull(want))
        return 1;
    double *g = NULL, *w = NULL;
    size_t ng = 0, nw = 0, cg = 0, cw = 0;
    flatten(got, &g, &ng, &cg);
    flatten(want, &w, &nw, &cw);
    int ok = got != NULL && ng == nw;
    if (!ok)
        fprintf(stderr, "  %s: %zu values, expected %zu\n", what, ng, nw);
    for (size_t i = 0; ok && i < nw; i++) {
        if (!(fabs(g[i] - w[i]) <= atol + rtol * fabs(w[i]))) {
            fprintf(stderr, "  %s[%zu]: got %.9g, expected %.9g (rtol %g, atol %g)\n", what, i, g[i],
                    w[i], rtol, atol);
            ok = 0;
        }
    }
    free(g);
    free(w);
    return ok;
}

static void run_case(void **state)
{
    const struct gcase *c = *state;
    char *text = t_read_file(c->path, NULL);
    assert_non_null(text);
    cJSON *gc = cJSON_Parse(text);
    free(text);
    assert_non_null(gc);
    cJSON *req = cJSON_CreateObject();
    for (cJSON *f = gc->child; f; f = f->next) {
        if (!is_request_key(f->string) || cJSON_IsNull(f))
            continue;
        cJSON *copy = cJSON_Duplicate(f, 1);
        if (!strcmp(f->string, "loss"))
            cJSON_DeleteItemFromObjectCaseSensitive(copy, "target_note");
        cJSON_AddItemToObject(req, f->string, copy);
    }
    char *body = cJSON_PrintUnformatted(req);
    cJSON_Delete(req);
    struct t_resp r;
    assert_int_equal(t_post(&d, "/v1/forward", body, &r), 0);
    free(body);
    if (r.status != 200)
        fprintf(stderr, "  %s: HTTP %ld %s\n", c->name, r.status, r.body);
    assert_int_equal(r.status, 200);

    const cJSON *exp = cJSON_GetObjectItemCaseSensitive(gc, "expected");
    const cJSON *tol = cJSON_GetObjectItemCaseSensitive(gc, "tolerance");
    double rtol = cJSON_GetObjectItemCaseSensitive(tol, "rtol")->valuedouble;
    double atol = cJSON_GetObjectItemCaseSensitive(tol, "atol")->valuedouble;
    const cJSON *grads = cJSON_GetObjectItemCaseSensitive(r.json, "gradients");
    int ok = 1;
    ok &= close_enough("output", cJSON_GetObjectItemCaseSensitive(r.json, "output"),
                       cJSON_GetObjectItemCaseSensitive(exp, "output"), rtol, atol);
    ok &= close_enough("loss", cJSON_GetObjectItemCaseSensitive(r.json, "loss"),
                       cJSON_GetObjectItemCaseSensitive(exp, "loss"), rtol, atol);
    ok &= close_enough("grad_input", cJSON_GetObjectItemCaseSensitive(grads, "input"),
                       cJSON_GetObjectItemCaseSensitive(exp, "grad_input"), rtol, atol);
    ok &= close_enough("total_norm", cJSON_GetObjectItemCaseSensitive(grads, "total_norm"),
                       cJSON_GetObjectItemCaseSensitive(exp, "total_norm"), rtol, atol);
    const cJSON *gp = cJSON_GetObjectItemCaseSensitive(exp, "grad_params");
    const cJSON *gl = cJSON_GetObjectItemCaseSensitive(grads, "layers");
    int i = 0;
    for (const cJSON *e = gp ? gp->child : NULL; e; e = e->next, i++) {
        const cJSON *got = cJSON_GetArrayItem(gl, i);
        for (const cJSON *p = e->child; p; p = p->next) {
            char what[64];
            snprintf(what, sizeof what, "grad_params[%d].%s", i, p->string);
            const cJSON *gv = cJSON_GetObjectItemCaseSensitive(got, p->string);
            if (cJSON_IsNull(p) && !cJSON_IsNull(gv)) {
                fprintf(stderr, "  %s: expected null\n", what);
                ok = 0;
            }
            ok &= close_enough(what, gv, p, rtol, atol);
        }
    }
    const cJSON *es = cJSON_GetObjectItemCaseSensitive(exp, "stats");
    const cJSON *gs = cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(r.json, "stats"),
                                                       "layers");
    i = 0;
    for (const cJSON *e = es ? cJSON_GetObjectItemCaseSensitive(es, "layers")->child : NULL; e;
         e = e->next, i++) {
        const cJSON *got = cJSON_GetArrayItem(gs, i);
        for (const cJSON *p = e->child; p; p = p->next) {
            char what[64];
            snprintf(what, sizeof what, "stats.layers[%d].%s", i, p->string);
            const cJSON *gv = cJSON_GetObjectItemCaseSensitive(got, p->string);
            if (cJSON_IsString(p)) {
                ok &= cJSON_IsString(gv) && !strcmp(gv->valuestring, p->valuestring);
            } else if (cJSON_IsNull(p)) {
                if (gv && !cJSON_IsNull(gv)) {
                    fprintf(stderr, "  %s: expected none\n", what);
                    ok = 0;
                }
            } else if (!strcmp(p->string, "dead_units")) {
                ok &= close_enough(what, gv, p, 0, 0) && cJSON_GetArraySize(gv) == cJSON_GetArraySize(p);
            } else {
                ok &= close_enough(what, gv, p, rtol, atol);
            }
        }
    }
    t_resp_free(&r);
    cJSON_Delete(gc);
    if (!ok)
        fail_msg("%s differs from torch", c->name);
}

static size_t collect(const char *dir, struct gcase **cases, size_t n, size_t *cap)
{
    DIR *dp = opendir(dir);
    if (!dp)
        return n;
    struct dirent *de;
    while ((de = readdir(dp))) {
        size_t l = strlen(de->d_name);
        if (l < 6 || strcmp(de->d_name + l - 5, ".json"))
            continue;
        if (n == *cap) {
            *cap = *cap ? *cap * 2 : 128;
            *cases = realloc(*cases, *cap * sizeof **cases);
        }
        snprintf((*cases)[n].path, sizeof (*cases)[n].path, "%s/%s", dir, de->d_name);
        snprintf((*cases)[n].name, sizeof (*cases)[n].name, "%s/%.*s", strrchr(dir, '/') + 1,
                 (int)(l - 5), de->d_name);
        n++;
    }
    closedir(dp);
    return n;
}

static int by_name(const void *a, const void *b)
{
    return strcmp(((const struct gcase *)a)->name, ((const struct gcase *)b)->name);
}

static int setup(void **state)
{
    (void)state;
    const char *args[] = {"--model-dir", "config/models", NULL};
    return t_daemon_start(&d, args, NULL);
}

static int teardown(void **state)
{
    (void)state;
    return t_daemon_stop(&d, 0, 30) == 0 ? 0 : -1;
}

int main(void)
{
    char shared[512];
    const char *env = getenv("RELUD_SHARED_GOLDEN");
    snprintf(shared, sizeof shared, "%s", env && *env ? env : "../shared/golden");
    struct gcase *cases = NULL;
    size_t n = 0, cap = 0;
    size_t before = n;
    n = collect(shared, &cases, n, &cap);
    if (n == before)
        printf("[ SKIPPED  ] public golden set: %s not found (it ships beside the project in CI)\n",
               shared);
    n = collect("tests/golden/vectors", &cases, n, &cap);
    n = collect("tests/golden/vectors_ext", &cases, n, &cap);
    qsort(cases, n, sizeof *cases, by_name);
    struct CMUnitTest *tests = calloc(n + 1, sizeof *tests);
    for (size_t i = 0; i < n; i++) {
        tests[i].name = cases[i].name;
        tests[i].test_func = run_case;
        tests[i].initial_state = &cases[i];
    }
    int rc = _cmocka_run_group_tests("http_golden", tests, n, setup, teardown);
    free(tests);
    free(cases);
    return rc;
}
