/* JSON layer specs -> struct nn_net, driven by the core's layer table (nn_kinds):
 * the table's parameter list is both the parser and the "known fields" message. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "server/layers.h"

enum nn_status srv_dtype_parse(const cJSON *item, const char *where, enum nn_dtype *dt,
                               struct nn_err *err)
{
    if (cJSON_IsString(item)) {
        const char *s = item->valuestring;
        if (!strcmp(s, "float32") || !strcmp(s, "FP32")) {
            *dt = NN_F32;
            return NN_OK;
        }
        if (!strcmp(s, "float64") || !strcmp(s, "FP64")) {
            *dt = NN_F64;
            return NN_OK;
        }
    }
    return nn_err_set(err, NN_EINVAL, "%s: expected \"float32\" or \"float64\"", where);
}

static void known_fields(char *buf, size_t len, const struct nn_kind_info *ki)
{
    size_t n = (size_t)snprintf(buf, len, "type");
    for (int i = 0; i < ki->nparams && n < len; i++)
        n += (size_t)snprintf(buf + n, len - n, ", %s", ki->params[i].name);
}

static enum nn_status parse_param(const struct srv_doc *doc, const cJSON *v,
                                  const struct nn_param_spec *ps, int i, enum nn_dtype dt,
                                  size_t max_elems, struct nn_layer *l, struct nn_err *err)
{
    char where[96];
    snprintf(where, sizeof where, "layers[%d].%s", i, ps->name);
    switch (ps->kind) {
    case NN_P_REAL:
        if (!cJSON_IsNumber(v) || !isfinite(v->valuedouble))
            return nn_err_set(err, NN_EINVAL, "%s: expected a number", where);
        l->p[ps->slot] = v->valuedouble;
        return NN_OK;
    case NN_P_DIM:
        if (!cJSON_IsNumber(v) || v->valuedouble != floor(v->valuedouble) ||
            fabs(v->valuedouble) > 64)
            return nn_err_set(err, NN_EINVAL, "%s: expected an integer dimension", where);
        l->dim = (int)v->valuedouble;
        return NN_OK;
    case NN_P_APPROX:
        if (cJSON_IsString(v) && !strcmp(v->valuestring, "none"))
            l->approx = 0;
        else if (cJSON_IsString(v) && !strcmp(v->valuestring, "tanh"))
            l->approx = 1;
        else
            return nn_err_set(err, NN_EINVAL, "%s: expected \"none\" or \"tanh\"", where);
        return NN_OK;
    case NN_P_BIAS:
        if (cJSON_IsNull(v))
            return NN_OK;
        /* fall through */
    case NN_P_WEIGHT: {
        struct nn_tensor *t = ps->kind == NN_P_WEIGHT ? &l->weight : &l->bias;
        enum srv_form form;
        return srv_doc_tensor(doc, v, dt, max_elems, where, t, &form, err);
    }
    }
    return nn_err_set(err, NN_EINVAL, "%s: unsupported parameter", where);
}

static enum nn_status parse_layer(const struct srv_doc *doc, const cJSON *item, int i,
                                  enum nn_dtype dt, size_t max_elems, srv_param_source_fn *src,
                                  void *src_ctx, struct nn_layer *l, struct nn_err *err)
{
    if (!cJSON_IsObject(item))
        return nn_err_set(err, NN_EINVAL, "layers[%d]: expected an object with a \"type\"", i);
    const cJSON *type = cJSON_GetObjectItemCaseSensitive(item, "type");
    if (!cJSON_IsString(type))
        return nn_err_set(err, NN_EINVAL, "layers[%d].type: expected a layer type name", i);
    char where[64];
    snprintf(where, sizeof where, "layers[%d].type", i);
    enum nn_kind kind;
    enum nn_status st = nn_kind_lookup(type->valuestring, &kind, where, err);
    if (st)
        return st;
    nn_layer_init(l, kind);
    const struct nn_kind_info *ki = &nn_kinds[kind];
    int seen_weight = 0, seen_bias = 0;
    for (const cJSON *f = item->child; f; f = f->next) {
        if (!strcmp(f->string, "type"))
            continue;
        const struct nn_param_spec *ps = NULL;
        for (int k = 0; k < ki->nparams; k++)
            if (!strcmp(ki->params[k].name, f->string))
                ps = &ki->params[k];
        if (!ps) {
            char known[160];
            known_fields(known, sizeof known, ki);
            return nn_err_set(err, NN_EINVAL,
                              "layers[%d]: unknown field \"%.60s\" for %s (known: %s)", i,
                              f->string, ki->name, known);
        }
        if ((ps->kind == NN_P_WEIGHT && seen_weight) || (ps->kind == NN_P_BIAS && seen_bias))
            return nn_err_set(err, NN_EINVAL, "layers[%d]: duplicate field \"%s\"", i, ps->name);
        seen_weight |= ps->kind == NN_P_WEIGHT;
        seen_bias |= ps->kind == NN_P_BIAS;
        if ((st = parse_param(doc, f, ps, i, dt, max_elems, l, err)))
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

enum nn_status srv_layers_parse(const struct srv_doc *doc, const cJSON *layers, enum nn_dtype dt,
                                int max_layers, size_t max_elems, srv_param_source_fn *src,
                                void *src_ctx, struct nn_net *net, struct nn_err *err)
{
    memset(net, 0, sizeof *net);
    int n = cJSON_IsArray(layers) ? cJSON_GetArraySize(layers) : -1;
    if (n < 1 && max_layers > 0)
        return nn_err_set(err, NN_EINVAL, "layers: expected an array of 1 to %d layer objects",
                          max_layers);
    if (n < 1)
        return nn_err_set(err, NN_EINVAL, "layers: expected a non-empty array of layer objects");
    if (max_layers > 0 && n > max_layers)
        return nn_err_set(err, NN_ETOOBIG, "layers: %d layers exceed max_layers (%d)", n,
                          max_layers);
    enum nn_status st = nn_net_init(net, dt, n, err);
    if (st)
        return st;
    int i = 0;
    for (const cJSON *item = layers->child; item; item = item->next, i++) {
        if ((st = parse_layer(doc, item, i, dt, max_elems, src, src_ctx, &net->layers[i], err))) {
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
