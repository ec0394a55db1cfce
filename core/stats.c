/* Gradient clipping (torch.nn.utils.clip_grad_norm_) and per-layer diagnostics for the
 * dying-ReLU and exploding-gradient problems. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core/nn_impl.h"

double nn_sumsq(enum nn_dtype dt, const void *data, size_t n)
{
    double s = 0;
    if (dt == NN_F32) {
        const float *x = data;
        for (size_t i = 0; i < n; i++)
            s += (double)x[i] * (double)x[i];
    } else {
        const double *x = data;
        for (size_t i = 0; i < n; i++)
            s += x[i] * x[i];
    }
    return s;
}

static void scale(enum nn_dtype dt, void *data, size_t n, double c)
{
    if (dt == NN_F32) {
        float *x = data, cf = (float)c;
        for (size_t i = 0; i < n; i++)
            x[i] *= cf;
    } else {
        double *x = data;
        for (size_t i = 0; i < n; i++)
            x[i] *= c;
    }
}

/* total = sqrt(sum of squared norms); coef = max_norm / (total + 1e-6), clamped to <= 1;
 * every gradient is multiplied by coef (a no-op at 1; nan total gives nan, as torch). */
double nn_clip_grad_norm(const struct nn_net *net, struct nn_ws *ws, double max_norm)
{
    const struct nn_plan *plan = ws->plan;
    NN_ASSERT(plan && plan->backward);
    double s = 0;
    for (int i = 0; i < net->nlayers; i++) {
        if (ws->dweight[i].data)
            s += nn_sumsq(net->dtype, ws->dweight[i].data, ws->dweight[i].numel);
        if (ws->dbias[i].data)
            s += nn_sumsq(net->dtype, ws->dbias[i].data, ws->dbias[i].numel);
    }
    double total = sqrt(s);
    double coef = max_norm / (total + 1e-6);
    if (coef > 1.0)
        coef = 1.0;
    if (coef != 1.0) {
        for (int i = 0; i < net->nlayers; i++) {
            if (ws->dweight[i].data)
                scale(net->dtype, ws->dweight[i].data, ws->dweight[i].numel, coef);
            if (ws->dbias[i].data)
                scale(net->dtype, ws->dbias[i].data, ws->dbias[i].numel, coef);
        }
    }
    return total;
}

/* One row-major pass over y (rows, units), dtype chosen once: counts exact zeros and marks
 * alive[u] for every unit that is non-zero in some row. */
#define ZERO_SCAN(T)                              \
    do {                                          \
        const T *v = y->data; /* (rows, units) */ \
        for (size_t r = 0; r < rows; r++)         \
            for (size_t u = 0; u < units; u++) {  \
                int z = v[r * units + u] == 0;    \
                zeros += (size_t)z;               \
                alive[u] |= (unsigned char)!z;    \
            }                                     \
    } while (0)

enum nn_status nn_stats_compute(const struct nn_net *net, const struct nn_ws *ws,
                                struct nn_layer_stats *stats, struct nn_err *err)
{
    const struct nn_plan *plan = ws->plan;
    enum nn_dtype dt = net->dtype;
    NN_ASSERT(plan && plan->keep);
    memset(stats, 0, (size_t)net->nlayers * sizeof *stats);
    for (int l = 0; l < net->nlayers; l++) {
        const struct nn_tensor *y = &ws->act[l + 1];
        struct nn_layer_stats *st = &stats[l];
        /* units along the last dim; a 1-D output is one sample, its zero elements are dead */
        size_t units = y->shape[y->ndim - 1], rows = units ? y->numel / units : 0, zeros = 0;
        unsigned char *alive = calloc(units ? units : 1, 1);
        if (!alive) {
            nn_stats_free(stats, l);
            return nn_err_set(err, NN_ENOMEM, "stats: out of memory");
        }
        if (dt == NN_F32)
            ZERO_SCAN(float);
        else
            ZERO_SCAN(double);
        st->zero_fraction = y->numel ? (double)zeros / (double)y->numel : 0;
        for (size_t u = 0; u < units; u++)
            st->ndead += !alive[u];
        if (st->ndead && !(st->dead = malloc(st->ndead * sizeof *st->dead))) {
            free(alive);
            nn_stats_free(stats, l + 1);
            return nn_err_set(err, NN_ENOMEM, "stats: out of memory");
        }
        for (size_t u = 0, k = 0; u < units && st->ndead; u++)
            if (!alive[u])
                st->dead[k++] = u;
        free(alive);
        st->weight_grad_norm = -1;
        st->bias_grad_norm = -1;
        if (plan->backward) {
            if (ws->dweight[l].data)
                st->weight_grad_norm =
                    sqrt(nn_sumsq(dt, ws->dweight[l].data, ws->dweight[l].numel));
            if (ws->dbias[l].data)
                st->bias_grad_norm = sqrt(nn_sumsq(dt, ws->dbias[l].data, ws->dbias[l].numel));
        }
    }
    return NN_OK;
}

void nn_stats_free(struct nn_layer_stats *stats, int n)
{
    if (!stats)
        return;
    for (int i = 0; i < n; i++) {
        free(stats[i].dead);
        stats[i].dead = NULL;
        stats[i].ndead = 0;
    }
}
