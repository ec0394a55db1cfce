/* JSON layer specs -> struct nn_net, driven by the core's layer table (nn_kinds):
 * the table's parameter list is both the parser and the "known fields" message. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "server/layers.h"
#include "server/tensors.h"

enum nn_status srv_dtype_parse(const struct srv_json *d, srv_jv v, const char *where,
                               enum nn_dtype *dt, struct nn_err *err)
{
    if (srv_json_str_is(d, v, "float32") || srv_json_str_is(d, v, "FP32")) {
        *dt = NN_F32;
        return NN_OK;
    }
    if (srv_json_str_is(d, v, "float64") || srv_json_str_is(d, v, "FP64")) {
        *dt = NN_F64;
        return NN_OK;
    }
    return nn_err_set(err, NN_EINVAL, "%s: expected \"float32\" or \"float64\"", where);
}

static void known_fields(char *buf, size_t len, const struct nn_kind_info *ki)
{
    size_t n = (size_t)snprintf(buf, len, "type");
    for (int i = 0; i < ki->nparams && n < len; i++)
        n += (size_t)snprintf(buf + n, len - n, ", %s", ki->params[i].name);
}

static enum nn_status parse_param(const struct srv_json *d, srv_jv v,
                                  const struct nn_param_spec *ps, int i, enum nn_dtype dt,
                                  size_t max_elems, struct nn_layer *l, struct nn_err *err)
{
    char where[96];
    double x;
    snprintf(where, sizeof where, "layers[%d].%s", i, ps->name);
    switch (ps->kind) {
    case NN_P_REAL:
        if (!srv_json_number(d, v, &x))
            return nn_err_set(err, NN_EINVAL, "%s: expected a number", where);
        l->p[ps->slot] = x;
        return NN_OK;
    case NN_P_DIM:
        if (!srv_json_number(d, v, &x) || x != floor(x) || fabs(x) > 64)
            return nn_err_set(err, NN_EINVAL, "%s: expected an integer dimension", where);
        l->dim = (int)x;
        return NN_OK;
    case NN_P_APPROX:
        if (srv_json_str_is(d, v, "none"))
            l->approx = 0;
        else if (srv_json_str_is(d, v, "tanh"))
            l->approx = 1;
        else
            return nn_err_set(err, NN_EINVAL, "%s: expected \"none\" or \"tanh\"", where);
        return NN_OK;
    case NN_P_BIAS:
        if (srv_json_type(d, v) == SRV_J_NULL)
            return NN_OK;
        /* fall through */
    case NN_P_WEIGHT:
        return srv_tensor_load(d, v, dt, max_elems, where,
                               ps->kind == NN_P_WEIGHT ? &l->weight : &l->bias, NULL, err);
    }
    return nn_err_set(err, NN_EINVAL, "%s: unsupported parameter", where);
}

static enum nn_status parse_layer(const struct srv_json *d, srv_jv item, int i, enum nn_dtype dt,
                                  size_t max_elems, srv_param_source_fn *src, void *src_ctx,
                                  struct nn_layer *l, struct nn_err *err)
{
    if (srv_json_type(d, item) != SRV_J_OBJECT)
        return nn_err_set(err, NN_EINVAL, "layers[%d]: expected an object with a \"type\"", i);
    char type[64], where[64];
    if (srv_json_str(d, srv_json_get(d, item, "type"), type, sizeof type) == (size_t)-1)
        return nn_err_set(err, NN_EINVAL, "layers[%d].type: expected a layer type name", i);
    snprintf(where, sizeof where, "layers[%d].type", i);
    enum nn_kind kind;
    enum nn_status st = nn_kind_lookup(type, &kind, where, err);
    if (st)
        return st;
    nn_layer_init(l, kind);
    const struct nn_kind_info *ki = &nn_kinds[kind];
    int seen_weight = 0, seen_bias = 0;
    for (srv_jv f = srv_json_child(d, item); f; f = srv_json_next(d, f)) {
        if (srv_json_key_is(d, f, "type"))
            continue;
        const struct nn_param_spec *ps = NULL;
        for (int k = 0; k < ki->nparams && !ps; k++)
            if (srv_json_key_is(d, f, ki->params[k].name))
                ps = &ki->params[k];
        if (!ps) {
            char known[160], key[64];
            known_fields(known, sizeof known, ki);
            return nn_err_set(err, NN_EINVAL, "layers[%d]: unknown field \"%s\" for %s (known: %s)",
                              i, srv_json_key(d, f, key, sizeof key), ki->name, known);
        }
        seen_weight |= ps->kind == NN_P_WEIGHT;
        seen_bias |= ps->kind == NN_P_BIAS;
        if ((st = parse_param(d, f, ps, i, dt, max_elems, l, err)))
            return st;
    }
    /* Parameters not given inline come from the source (safetensors) if there is one. */
    for (int k = 0; k < ki->nparams; k++) {
        const struct nn_param_spec *ps = &ki->params[k];
        struct nn_tensor *t = ps->kind == NN_P_WEIGHT ? &l->weight
                              : ps->kind == NN_P_BIAS ? &l->bias
                                                      : NULL;
        int given = ps->kind == NN_P_WEIGHT ? seen_weight : seen_bias;
        if (!t || given)
            continue;
        if (src && (st = src(src_ctx, i, ps->name, dt, t, err)))
            return st;
        if (ps->kind == NN_P_WEIGHT && t->ndim == 0)
            return nn_err_set(err, NN_EINVAL, "layers[%d] (%s): missing \"weight\"%s", i, ki->name,
                              src ? " (not inline and not in the weights file)" : "");
    }
    return NN_OK;
}

enum nn_status srv_layers_parse(const struct srv_json *d, srv_jv layers, enum nn_dtype dt,
                                int max_layers, size_t max_elems, srv_param_source_fn *src,
                                void *src_ctx, struct nn_net *net, struct nn_err *err)
{
    memset(net, 0, sizeof *net);
    long n = srv_json_type(d, layers) == SRV_J_ARRAY ? (long)srv_json_count(d, layers) : -1;
    if (n < 1 && max_layers > 0)
        return nn_err_set(err, NN_EINVAL, "layers: expected an array of 1 to %d layer objects",
                          max_layers);
    if (n < 1)
        return nn_err_set(err, NN_EINVAL, "layers: expected a non-empty array of layer objects");
    if (max_layers > 0 && n > max_layers)
        return nn_err_set(err, NN_ETOOBIG, "layers: %ld layers exceed max_layers (%d)", n,
                          max_layers);
    enum nn_status st = nn_net_init(net, dt, (int)n, err);
    if (st)
        return st;
    int i = 0;
    for (srv_jv item = srv_json_child(d, layers); item; item = srv_json_next(d, item), i++) {
        if ((st = parse_layer(d, item, i, dt, max_elems, src, src_ctx, &net->layers[i], err))) {
            srv_net_free(net);
            return st;
        }
    }
    return NN_OK;
}

void srv_net_free(struct nn_net *net)
{
    if (!net)
        return;
    for (int i = 0; net->layers && i < net->nlayers; i++) {
        free(net->layers[i].weight.data);
        free(net->layers[i].bias.data);
    }
    nn_net_free(net);
}
