/* Golden-vector loader (cJSON) and the allclose comparison. */
#include "tests/common/golden.h"

#include <cjson/cJSON.h>
#include <dirent.h>
#include <limits.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static int fail(char *msg, size_t len, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static int fail(char *msg, size_t len, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, len, fmt, ap);
    va_end(ap);
    return -1;
}

static char *slurp(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *buf = n >= 0 ? malloc((size_t)n + 1) : NULL;
    if (buf && fread(buf, 1, (size_t)n, f) != (size_t)n) {
        free(buf);
        buf = NULL;
    }
    fclose(f);
    if (buf) {
        buf[n] = '\0';
        *len = (size_t)n;
    }
    return buf;
}

int t_tensor_load(const cJSON *j, enum nn_dtype dt, struct nn_tensor *t, const char *what,
                       char *msg, size_t len)
{
    memset(t, 0, sizeof *t);
    if (!j || cJSON_IsNull(j))
        return 0;
    const cJSON *shape = cJSON_GetObjectItemCaseSensitive(j, "shape");
    const cJSON *data = cJSON_GetObjectItemCaseSensitive(j, "data");
    if (!cJSON_IsArray(shape) || !cJSON_IsArray(data))
        return fail(msg, len, "%s: needs shape and data arrays", what);
    int nd = cJSON_GetArraySize(shape);
    if (nd > NN_MAX_DIMS)
        return fail(msg, len, "%s: rank %d", what, nd);
    t->dtype = dt;
    t->ndim = nd;
    size_t n = 1;
    int i = 0;
    const cJSON *e;
    cJSON_ArrayForEach(e, shape) {
        t->shape[i++] = (size_t)e->valuedouble;
        n *= (size_t)e->valuedouble;
    }
    if (nd == 0) /* a scalar [] : keep ndim 0 = absent, but hold the value */
        n = 1;
    if ((size_t)cJSON_GetArraySize(data) != n)
        return fail(msg, len, "%s: %d values for %zu elements", what, cJSON_GetArraySize(data), n);
    t->numel = n;
    t->data = malloc(n * nn_dtype_size(dt) + 1);
    if (!t->data)
        return fail(msg, len, "%s: out of memory", what);
    i = 0;
    cJSON_ArrayForEach(e, data) {
        if (dt == NN_F32)
            ((float *)t->data)[i++] = (float)e->valuedouble;
        else
            ((double *)t->data)[i++] = e->valuedouble;
    }
    return 0;
}

static int load_layers(const cJSON *layers, struct t_golden *g, char *msg, size_t len)
{
    struct nn_err err;
    int n = cJSON_GetArraySize(layers);
    if (nn_net_init(&g->net, g->dtype, n, &err))
        return fail(msg, len, "%s", err.msg);
    int i = 0;
    const cJSON *lj;
    cJSON_ArrayForEach(lj, layers) {
        char where[32];
        snprintf(where, sizeof where, "layers[%d].type", i);
        const cJSON *type = cJSON_GetObjectItemCaseSensitive(lj, "type");
        enum nn_kind kind;
        if (!cJSON_IsString(type))
            return fail(msg, len, "%s: missing", where);
        if (nn_kind_lookup(type->valuestring, &kind, where, &err))
            return fail(msg, len, "%s", err.msg);
        struct nn_layer *l = &g->net.layers[i];
        nn_layer_init(l, kind);
        const struct nn_kind_info *ki = &nn_kinds[kind];
        /* every field must be a known parameter: the table drives the parsing */
        const cJSON *f;
        cJSON_ArrayForEach(f, lj) {
            if (strcmp(f->string, "type") == 0)
                continue;
            int found = 0;
            for (int p = 0; p < ki->nparams; p++) {
                const struct nn_param_spec *ps = &ki->params[p];
                if (strcmp(ps->name, f->string) != 0)
                    continue;
                found = 1;
                char what[64];
                snprintf(what, sizeof what, "layers[%d].%s", i, ps->name);
                switch (ps->kind) {
                case NN_P_REAL: l->p[ps->slot] = f->valuedouble; break;
                case NN_P_DIM: l->dim = f->valueint; break;
                case NN_P_APPROX:
                    if (!cJSON_IsString(f))
                        return fail(msg, len, "%s: not a string", what);
                    l->approx = strcmp(f->valuestring, "tanh") == 0;
                    break;
                case NN_P_WEIGHT:
                    if (t_tensor_load(f, g->dtype, &l->weight, what, msg, len))
                        return -1;
                    break;
                case NN_P_BIAS:
                    if (t_tensor_load(f, g->dtype, &l->bias, what, msg, len))
                        return -1;
                    break;
                }
            }
            if (!found)
                return fail(msg, len, "layers[%d]: unknown field %s for %s", i, f->string,
                            ki->name);
        }
        i++;
    }
    return 0;
}

static int load_loss(const cJSON *lj, struct t_golden *g, char *msg, size_t len)
{
    struct nn_err err;
    const cJSON *type = cJSON_GetObjectItemCaseSensitive(lj, "type");
    if (!cJSON_IsString(type) || nn_loss_lookup(type->valuestring, &g->loss, &err))
        return fail(msg, len, "loss.type: %s", cJSON_IsString(type) ? err.msg : "missing");
    g->has_loss = 1;
    const cJSON *red = cJSON_GetObjectItemCaseSensitive(lj, "reduction");
    g->reduction = cJSON_IsString(red) && strcmp(red->valuestring, "sum") == 0 ? NN_SUM : NN_MEAN;
    const struct nn_loss_info *li = &nn_losses[g->loss];
    g->loss_param = li->param_def;
    if (li->param) {
        const cJSON *p = cJSON_GetObjectItemCaseSensitive(lj, li->param);
        if (cJSON_IsNumber(p))
            g->loss_param = p->valuedouble;
    }
    const cJSON *tj = cJSON_GetObjectItemCaseSensitive(lj, "target");
    if (!li->class_target)
        return t_tensor_load(tj, g->dtype, &g->target, "loss.target", msg, len);
    if (t_tensor_load(tj, NN_F64, &g->target, "loss.target", msg, len))
        return -1;
    g->classes = malloc((g->target.numel + 1) * sizeof *g->classes);
    if (!g->classes)
        return fail(msg, len, "out of memory");
    for (size_t i = 0; i < g->target.numel; i++)
        g->classes[i] = (int64_t)((double *)g->target.data)[i];
    free(g->target.data);
    g->target.data = NULL;
    return 0;
}

int t_golden_load(const char *path, struct t_golden *g, char *msg, size_t len)
{
    memset(g, 0, sizeof *g);
    size_t n;
    char *text = slurp(path, &n);
    if (!text)
        return fail(msg, len, "%s: cannot read", path);
    cJSON *root = cJSON_ParseWithLength(text, n);
    free(text);
    if (!root)
        return fail(msg, len, "%s: not JSON", path);
    g->json = root;
    const cJSON *name = cJSON_GetObjectItemCaseSensitive(root, "name");
    snprintf(g->name, sizeof g->name, "%s", cJSON_IsString(name) ? name->valuestring : path);
    const cJSON *dt = cJSON_GetObjectItemCaseSensitive(root, "dtype");
    g->dtype = cJSON_IsString(dt) && strcmp(dt->valuestring, "float64") == 0 ? NN_F64 : NN_F32;
    if (t_tensor_load(cJSON_GetObjectItemCaseSensitive(root, "input"), g->dtype, &g->input, "input",
                    msg, len))
        return -1;
    if (load_layers(cJSON_GetObjectItemCaseSensitive(root, "layers"), g, msg, len))
        return -1;
    if (t_tensor_load(cJSON_GetObjectItemCaseSensitive(root, "grad_output"), g->dtype,
                    &g->grad_output, "grad_output", msg, len))
        return -1;
    const cJSON *lj = cJSON_GetObjectItemCaseSensitive(root, "loss");
    if (lj && !cJSON_IsNull(lj) && load_loss(lj, g, msg, len))
        return -1;
    const cJSON *ex = cJSON_GetObjectItemCaseSensitive(root, "expected");
    if (t_tensor_load(cJSON_GetObjectItemCaseSensitive(ex, "output"), g->dtype, &g->exp_output,
                    "expected.output", msg, len))
        return -1;
    const cJSON *el = cJSON_GetObjectItemCaseSensitive(ex, "loss");
    if (cJSON_IsNumber(el)) {
        g->has_exp_loss = 1;
        g->exp_loss = el->valuedouble;
    }
    if (t_tensor_load(cJSON_GetObjectItemCaseSensitive(ex, "grad_input"), g->dtype,
                    &g->exp_grad_input, "expected.grad_input", msg, len))
        return -1;
    const cJSON *gp = cJSON_GetObjectItemCaseSensitive(ex, "grad_params");
    int nl = g->net.nlayers;
    g->exp_dweight = calloc((size_t)nl + 1, sizeof *g->exp_dweight);
    g->exp_dbias = calloc((size_t)nl + 1, sizeof *g->exp_dbias);
    if (!g->exp_dweight || !g->exp_dbias)
        return fail(msg, len, "out of memory");
    if (cJSON_IsArray(gp)) {
        g->has_exp_grad_params = 1;
        if (cJSON_GetArraySize(gp) != nl)
            return fail(msg, len, "expected.grad_params: %d entries for %d layers",
                        cJSON_GetArraySize(gp), nl);
        for (int i = 0; i < nl; i++) {
            const cJSON *e = cJSON_GetArrayItem(gp, i);
            if (t_tensor_load(cJSON_GetObjectItemCaseSensitive(e, "weight"), g->dtype,
                            &g->exp_dweight[i], "expected.grad_params.weight", msg, len) ||
                t_tensor_load(cJSON_GetObjectItemCaseSensitive(e, "bias"), g->dtype,
                            &g->exp_dbias[i], "expected.grad_params.bias", msg, len))
                return -1;
        }
    }
    const cJSON *tol = cJSON_GetObjectItemCaseSensitive(root, "tolerance");
    const cJSON *rt = cJSON_GetObjectItemCaseSensitive(tol, "rtol");
    const cJSON *at = cJSON_GetObjectItemCaseSensitive(tol, "atol");
    if (!cJSON_IsNumber(rt) || !cJSON_IsNumber(at))
        return fail(msg, len, "tolerance: needs rtol and atol");
    g->rtol = rt->valuedouble;
    g->atol = at->valuedouble;
    return 0;
}

void t_golden_free(struct t_golden *g)
{
    if (!g)
        return;
    for (int i = 0; i < g->net.nlayers; i++) {
        free(g->net.layers[i].weight.data);
        free(g->net.layers[i].bias.data);
        if (g->exp_dweight)
            free(g->exp_dweight[i].data);
        if (g->exp_dbias)
            free(g->exp_dbias[i].data);
    }
    nn_net_free(&g->net);
    free(g->exp_dweight);
    free(g->exp_dbias);
    free(g->input.data);
    free(g->grad_output.data);
    free(g->target.data);
    free(g->classes);
    free(g->exp_output.data);
    free(g->exp_grad_input.data);
    cJSON_Delete(g->json);
    memset(g, 0, sizeof *g);
}

int t_close(double a, double e, double rtol, double atol)
{
    return !isnan(a) && !isnan(e) && fabs(a - e) <= atol + rtol * fabs(e);
}

static double at(enum nn_dtype dt, const void *p, size_t i)
{
    return dt == NN_F32 ? (double)((const float *)p)[i] : ((const double *)p)[i];
}

int t_allclose(enum nn_dtype dt_actual, const void *actual, size_t n,
               const struct nn_tensor *expected, double rtol, double atol, const char *what,
               char *msg, size_t len)
{
    if (n != expected->numel)
        return fail(msg, len, "%s: %zu values, expected %zu", what, n, expected->numel);
    size_t nbad = 0, first = 0;
    double worst = 0;
    for (size_t i = 0; i < n; i++) {
        double a = at(dt_actual, actual, i), e = at(expected->dtype, expected->data, i);
        if (!t_close(a, e, rtol, atol)) {
            if (!nbad)
                first = i;
            nbad++;
        }
        double r = fabs(a - e) / (atol + rtol * fabs(e));
        if (r > worst || isnan(r))
            worst = r;
    }
    if (!nbad)
        return 0;
    return fail(msg, len, "%s: %zu of %zu values differ; first [%zu]: got %.9g, expected %.9g "
                "(worst %.3g x tolerance)",
                what, nbad, n, first, at(dt_actual, actual, first),
                at(expected->dtype, expected->data, first), worst);
}

static int cmpstr(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

int t_list_json(const char *dir, char ***paths)
{
    *paths = NULL;
    DIR *d = opendir(dir);
    if (!d)
        return -1;
    int n = 0, cap = 0;
    char **v = NULL;
    struct dirent *e;
    while ((e = readdir(d))) {
        size_t l = strlen(e->d_name);
        if (l < 6 || strcmp(e->d_name + l - 5, ".json") != 0)
            continue;
        if (n == cap) {
            cap = cap ? 2 * cap : 64;
            char **nv = realloc(v, (size_t)cap * sizeof *v);
            if (!nv)
                break;
            v = nv;
        }
        size_t pl = strlen(dir) + l + 2;
        v[n] = malloc(pl);
        if (!v[n])
            break;
        snprintf(v[n], pl, "%s/%s", dir, e->d_name);
        n++;
    }
    closedir(d);
    if (n)
        qsort(v, (size_t)n, sizeof *v, cmpstr);
    *paths = v;
    return n;
}

void t_list_free(char **paths, int n)
{
    for (int i = 0; i < n; i++)
        free(paths[i]);
    free(paths);
}

/* The repository root: walk up from the binary until core/nn.h is there. */
void t_repo_root(char *out, size_t len)
{
    char exe[PATH_MAX];
    ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
    if (n > 0) {
        exe[n] = '\0';
        char *slash;
        while ((slash = strrchr(exe, '/'))) {
            *slash = '\0';
            char probe[PATH_MAX + 16];
            snprintf(probe, sizeof probe, "%s/core/nn.h", exe);
            if (access(probe, R_OK) == 0) {
                snprintf(out, len, "%s", exe);
                return;
            }
        }
    }
    snprintf(out, len, ".");
}
