/* Credentials: the inference access keys (api_keys_file) and the comparison of any bearer
 * secret. Keys are held only as SHA-256 digests; a presented key is hashed and compared with
 * every digest in constant time (no early exit, no length leak), so neither the key set nor a
 * key can be learnt from timings or a memory dump. A key's id in logs is the first 8 hex
 * digits of its digest, never the key. */
#ifndef RELUD_AUTH_H
#define RELUD_AUTH_H

#include <stddef.h>
#include <stdint.h>

#include "core/nn.h"

#define SRV_KEY_ID_LEN 9 /* 8 hex digits and a NUL */

void srv_sha256(const void *data, size_t len, uint8_t out[32]);

/* a == b for two NUL-terminated secrets, in time independent of where they differ. */
int srv_secret_eq(const char *a, const char *b);

struct srv_keys;
/* Reads path: one key per line; blank lines and lines starting with # are skipped, spaces
 * around a key trimmed. An unreadable file or one without keys is NN_EIO / NN_EINVAL with a
 * message naming it (the first line that is not a key, too: a key has no spaces). */
enum nn_status srv_keys_load(const char *path, struct srv_keys **out, struct nn_err *err);
void srv_keys_free(struct srv_keys *k);
size_t srv_keys_count(const struct srv_keys *k);

enum srv_auth { SRV_AUTH_OK, SRV_AUTH_MISSING, SRV_AUTH_WRONG };
/* Checks an Authorization header value ("Bearer <key>"; NULL: none) against k; on success
 * id (SRV_KEY_ID_LEN bytes) gets the key's id. */
enum srv_auth srv_keys_check(const struct srv_keys *k, const char *authorization, char *id);

#endif
