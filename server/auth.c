/* Credentials: see auth.h. SHA-256 as FIPS 180-4 specifies it (checked against its test
 * vectors in tests/unit/test_auth.c). */
#include "server/auth.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

/* ---- SHA-256 -------------------------------------------------------------------------- */
static const uint32_t K256[64] = {
    0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4, 0xab1c5ed5,
    0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe, 0x9bdc06a7, 0xc19bf174,
    0xe49b69c1, 0xefbe4786, 0x0fc19dc6, 0x240ca1cc, 0x2de92c6f, 0x4a7484aa, 0x5cb0a9dc, 0x76f988da,
    0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7, 0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967,
    0x27b70a85, 0x2e1b2138, 0x4d2c6dfc, 0x53380d13, 0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85,
    0xa2bfe8a1, 0xa81a664b, 0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070,
    0x19a4c116, 0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a, 0x5b9cca4f, 0x682e6ff3,
    0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7, 0xc67178f2};

static uint32_t ror(uint32_t x, int n) { return (x >> n) | (x << (32 - n)); }

static void sha256_block(uint32_t h[8], const uint8_t *p)
{
    uint32_t w[64];
    for (int i = 0; i < 16; i++)
        w[i] = (uint32_t)p[4 * i] << 24 | (uint32_t)p[4 * i + 1] << 16 |
               (uint32_t)p[4 * i + 2] << 8 | p[4 * i + 3];
    for (int i = 16; i < 64; i++) {
        uint32_t s0 = ror(w[i - 15], 7) ^ ror(w[i - 15], 18) ^ (w[i - 15] >> 3);
        uint32_t s1 = ror(w[i - 2], 17) ^ ror(w[i - 2], 19) ^ (w[i - 2] >> 10);
        w[i] = w[i - 16] + s0 + w[i - 7] + s1;
    }
    uint32_t a = h[0], b = h[1], c = h[2], d = h[3], e = h[4], f = h[5], g = h[6], k = h[7];
    for (int i = 0; i < 64; i++) {
        uint32_t t1 =
            k + (ror(e, 6) ^ ror(e, 11) ^ ror(e, 25)) + ((e & f) ^ (~e & g)) + K256[i] + w[i];
        uint32_t t2 = (ror(a, 2) ^ ror(a, 13) ^ ror(a, 22)) + ((a & b) ^ (a & c) ^ (b & c));
        k = g, g = f, f = e, e = d + t1, d = c, c = b, b = a, a = t1 + t2;
    }
    h[0] += a, h[1] += b, h[2] += c, h[3] += d, h[4] += e, h[5] += f, h[6] += g, h[7] += k;
}

void srv_sha256(const void *data, size_t len, uint8_t out[32])
{
    uint32_t h[8] = {0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a,
                     0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19};
    const uint8_t *p = data;
    size_t n = len;
    for (; n >= 64; p += 64, n -= 64)
        sha256_block(h, p);
    uint8_t tail[128] = {0};
    memcpy(tail, p, n);
    tail[n] = 0x80;
    size_t tl = n < 56 ? 64 : 128;
    uint64_t bits = (uint64_t)len * 8;
    for (int i = 0; i < 8; i++)
        tail[tl - 1 - i] = (uint8_t)(bits >> (8 * i));
    sha256_block(h, tail);
    if (tl == 128)
        sha256_block(h, tail + 64);
    for (int i = 0; i < 8; i++) {
        out[4 * i] = (uint8_t)(h[i] >> 24);
        out[4 * i + 1] = (uint8_t)(h[i] >> 16);
        out[4 * i + 2] = (uint8_t)(h[i] >> 8);
        out[4 * i + 3] = (uint8_t)h[i];
    }
}

/* Digests compared without an early exit. */
static int digest_eq(const uint8_t *a, const uint8_t *b)
{
    uint8_t d = 0;
    for (int i = 0; i < 32; i++)
        d |= (uint8_t)(a[i] ^ b[i]);
    return d == 0;
}

int srv_secret_eq(const char *a, const char *b)
{
    uint8_t da[32], db[32];
    srv_sha256(a, strlen(a), da);
    srv_sha256(b, strlen(b), db);
    return digest_eq(da, db);
}

/* ---- the key set ---------------------------------------------------------------------- */
struct srv_keys {
    size_t n;
    uint8_t (*digest)[32];
};

void srv_keys_free(struct srv_keys *k)
{
    if (k) {
        free(k->digest);
        free(k);
    }
}

size_t srv_keys_count(const struct srv_keys *k) { return k ? k->n : 0; }

static void key_id(const uint8_t *digest, char *id)
{
    snprintf(id, SRV_KEY_ID_LEN, "%02x%02x%02x%02x", digest[0], digest[1], digest[2], digest[3]);
}

enum nn_status srv_keys_load(const char *path, struct srv_keys **out, struct nn_err *err)
{
    *out = NULL;
    FILE *f = fopen(path, "r");
    if (!f)
        return nn_err_set(err, NN_EIO, "api_keys_file %s: %s", path, strerror(errno));
    struct srv_keys *k = calloc(1, sizeof *k);
    if (!k) {
        fclose(f);
        return nn_err_set(err, NN_ENOMEM, "out of memory");
    }
    size_t cap = 0;
    char line[1024];
    enum nn_status st = NN_OK;
    for (int ln = 1; fgets(line, sizeof line, f); ln++) {
        char *s = line, *e = line + strlen(line);
        while (*s == ' ' || *s == '\t')
            s++;
        while (e > s && (e[-1] == '\n' || e[-1] == '\r' || e[-1] == ' ' || e[-1] == '\t'))
            *--e = 0;
        if (!*s || *s == '#')
            continue;
        if (strpbrk(s, " \t") || e - s > 512) {
            st = nn_err_set(err, NN_EINVAL,
                            "api_keys_file %s, line %d: not a key (one key a line, no spaces, "
                            "at most 512 characters)",
                            path, ln);
            break;
        }
        if (k->n == cap) {
            cap = cap ? 2 * cap : 16;
            void *nd = realloc(k->digest, cap * sizeof *k->digest);
            if (!nd) {
                st = nn_err_set(err, NN_ENOMEM, "out of memory");
                break;
            }
            k->digest = nd;
        }
        srv_sha256(s, (size_t)(e - s), k->digest[k->n++]);
        memset(line, 0, sizeof line); /* the key in clear lives no longer than this */
    }
    int rerr = ferror(f);
    fclose(f);
    if (!st && rerr)
        st = nn_err_set(err, NN_EIO, "api_keys_file %s: read error", path);
    if (!st && !k->n)
        st = nn_err_set(err, NN_EINVAL, "api_keys_file %s: no keys (one key a line)", path);
    if (st) {
        srv_keys_free(k);
        return st;
    }
    *out = k;
    return NN_OK;
}

enum srv_auth srv_keys_check(const struct srv_keys *k, const char *authorization, char *id)
{
    /* the auth scheme is case-insensitive (RFC 9110 11.1); the key is not */
    if (!authorization || strncasecmp(authorization, "Bearer ", 7))
        return SRV_AUTH_MISSING;
    const char *key = authorization + 7;
    while (*key == ' ')
        key++;
    uint8_t d[32];
    srv_sha256(key, strlen(key), d);
    size_t hit = SIZE_MAX;
    for (size_t i = 0; i < k->n; i++) /* every digest, whatever matched */
        if (digest_eq(d, k->digest[i]) && hit == SIZE_MAX)
            hit = i;
    if (hit == SIZE_MAX)
        return SRV_AUTH_WRONG;
    key_id(k->digest[hit], id);
    return SRV_AUTH_OK;
}
