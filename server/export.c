/* A model as its model file: see export.h. */
#include "server/export.h"

#include <stdio.h>

static void write_layer(struct srv_jw *w, const struct nn_layer *l, int i)
{
    const struct nn_kind_info *ki = &nn_kinds[l->kind];
    char where[64];
    srv_jw_obj(w);
    srv_jw_kstr(w, "type", ki->name);
    for (int j = 0; j < ki->nparams; j++) {
        const struct nn_param_spec *ps = &ki->params[j];
        srv_jw_key(w, ps->name);
        snprintf(where, sizeof where, "layers[%d].%s", i, ps->name);
        switch (ps->kind) {
        case NN_P_REAL: srv_jw_num(w, l->p[ps->slot], NN_F64, where); break;
        case NN_P_DIM: srv_jw_int(w, l->dim); break;
        case NN_P_APPROX: srv_jw_str(w, l->approx ? "tanh" : "none"); break;
        case NN_P_WEIGHT: srv_jw_tensor(w, &l->weight, SRV_FORM_OBJECT, where); break;
        case NN_P_BIAS:
            if (l->bias.ndim)
                srv_jw_tensor(w, &l->bias, SRV_FORM_OBJECT, where);
            else
                srv_jw_null(w);
            break;
        }
    }
    srv_jw_end(w);
}

void srv_model_export(struct srv_jw *w, const char *name, const char *description,
                      const struct nn_net *net, const struct srv_batch_cfg *batch)
{
    srv_jw_obj(w);
    srv_jw_kstr(w, "name", name);
    if (description)
        srv_jw_kstr(w, "description", description);
    srv_jw_kstr(w, "dtype", nn_dtype_names[net->dtype]);
    srv_jw_key(w, "layers");
    srv_jw_arr(w);
    for (int i = 0; i < net->nlayers; i++)
        write_layer(w, &net->layers[i], i);
    srv_jw_end(w);
    if (batch && (batch->max_batch_size || batch->dynamic))
        srv_batch_cfg_write(batch, w);
    srv_jw_end(w);
}
