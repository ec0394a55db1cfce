/* The layer-kind table: names, torch aliases, parameter specs and dispatch, all generated
 * from NN_LAYER_TABLE in nn.h. */
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "core/nn_impl.h"

#define NN_UNPAREN_(...) __VA_ARGS__
#define NN_KIND_INFO_(X, ID, nm, tn, impl, chk, prm)                              \
    [NN_##ID] = {                                                                 \
        .name = #nm,                                                              \
        .torch = #tn,                                                             \
        .nparams = (int)(sizeof((struct nn_param_spec[]){{0}, NN_UNPAREN_ prm}) / \
                         sizeof(struct nn_param_spec)) -                          \
                   1,                                                             \
        .params = {NN_UNPAREN_ prm},                                              \
    },
const struct nn_kind_info nn_kinds[NN_KIND_COUNT] = {NN_LAYER_TABLE(NN_KIND_INFO_, _)};
#undef NN_KIND_INFO_

#define NN_CHECK_FN_CHECK(name) nn_##name##_check
#define NN_CHECK_FN_NOCHECK(name) NULL
#define NN_IS_ELEM_ELEM 1
#define NN_IS_ELEM_TENSOR 0
#define NN_KIND_OPS_(X, ID, name, tn, impl, chk, prm) \
    [NN_##ID] = {                                     \
        .fwd = nn_##name##_fwd_t,                     \
        .bwd = nn_##name##_bwd_t,                     \
        .check = NN_CHECK_FN_##chk(name),             \
        .elementwise = NN_IS_ELEM_##impl,             \
    },
const struct nn_kind_ops nn_kind_ops[NN_KIND_COUNT] = {NN_LAYER_TABLE(NN_KIND_OPS_, _)};
#undef NN_KIND_OPS_

_Static_assert(sizeof nn_kinds / sizeof nn_kinds[0] == NN_KIND_COUNT, "one info per kind");

enum nn_status nn_kind_lookup(const char *name, enum nn_kind *kind, const char *where,
                              struct nn_err *err)
{
    for (int k = 0; k < NN_KIND_COUNT; k++) {
        if (strcmp(name, nn_kinds[k].name) == 0 || strcmp(name, nn_kinds[k].torch) == 0) {
            *kind = (enum nn_kind)k;
            return NN_OK;
        }
    }
    char list[NN_ERR_LEN];
    size_t at = 0;
    list[0] = '\0';
    for (int k = 0; k < NN_KIND_COUNT && at < sizeof list; k++)
        at += (size_t)snprintf(list + at, sizeof list - at, k ? ", %s" : "%s", nn_kinds[k].name);
    return nn_err_set(err, NN_EINVAL, "%s: unknown layer type \"%.40s\" (valid: %s)",
                      where ? where : "type", name, list);
}

void nn_layer_init(struct nn_layer *l, enum nn_kind kind)
{
    NN_ASSERT((int)kind >= 0 && kind < NN_KIND_COUNT);
    memset(l, 0, sizeof *l);
    l->kind = kind;
    const struct nn_kind_info *ki = &nn_kinds[kind];
    for (int i = 0; i < ki->nparams; i++) {
        const struct nn_param_spec *ps = &ki->params[i];
        switch (ps->kind) {
        case NN_P_REAL: l->p[ps->slot] = ps->def; break;
        case NN_P_DIM: l->dim = (int)ps->def; break;
        case NN_P_APPROX: l->approx = (int)ps->def; break;
        case NN_P_WEIGHT:
        case NN_P_BIAS: break;
        }
    }
}

int nn_kind_is_elementwise(enum nn_kind k)
{
    return (int)k >= 0 && k < NN_KIND_COUNT && nn_kind_ops[k].elementwise;
}
