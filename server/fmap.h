/* A model file mapped read-only (safetensors weights, ONNX models) or read whole (NAME.json):
 * the open, the checks and the mapping or read every reader of such a file needs, with one
 * set of messages. */
#ifndef RELUD_FMAP_H
#define RELUD_FMAP_H

#include <stddef.h>

#include "core/nn.h"

/* path mapped private and read-only into *map (*len bytes; munmap it). max 0 = no limit.
 * Errors start with label: "L: cannot open: <errno>" and "L: not a regular file" (NN_EINVAL),
 * "L: N bytes, over the limit of MAX" (NN_ETOOBIG), "L: cannot map N bytes: <errno>"
 * (NN_ENOMEM). An empty file is NN_OK with *map NULL and *len 0: what a format needs at
 * least is its reader's to say. */
enum nn_status srv_fmap(const char *path, const char *label, size_t max, void **map, size_t *len,
                        struct nn_err *err);

/* path read whole into a malloc'd, NUL-terminated buffer (*len bytes before the NUL): the
 * same checks and messages as srv_fmap (an empty file is an empty buffer), plus
 * "L: read: <errno>" and NN_ENOMEM. *eno gets the errno of a failure (ENOENT: no such
 * file), 0 on success. For files read once and parsed (NAME.json), where a map would be
 * kept no longer than the read. */
char *srv_fread(const char *path, const char *label, size_t max, size_t *len, int *eno,
                struct nn_err *err);

#endif
