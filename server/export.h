/* A model as its model file: the inverse of the reader in models.c. The net's layers with
 * every parameter written out (torch's names, weights inline as {"shape", "data"}, floats
 * shortest round-trip so the file reads back bit for bit), its description and batching
 * settings. A trained copy of a model goes into the repository through this and
 * srv_models_put, the path of a PUT. */
#ifndef RELUD_EXPORT_H
#define RELUD_EXPORT_H

#include "core/nn.h"
#include "server/batch.h"
#include "server/jsonw.h"

/* {"name", "description", "dtype", "layers", "max_batch_size", "dynamic_batching"} into w.
 * description may be NULL, batch NULL (none). The writer's error (a non-finite weight, out
 * of memory) is w's, sticky. */
void srv_model_export(struct srv_jw *w, const char *name, const char *description,
                      const struct nn_net *net, const struct srv_batch_cfg *batch);

#endif
