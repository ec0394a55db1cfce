/* libFuzzer target: the multipart/form-data reader (server/multipart.c) of model uploads.
 * The input's first line is the Content-Type, the rest the body (whole inputs are also read
 * as a body with a fixed boundary, so the framing is reached without guessing a boundary).
 * Any crash or sanitizer report is a bug, as is a part outside the body, a count over the
 * cap, or a refusal without a message. Seeds: tests/fuzz/corpus_multipart. */
#include <stdlib.h>
#include <string.h>

#include "server/multipart.h"

int LLVMFuzzerTestOneInput(const unsigned char *data, size_t size);

static void parse(const char *boundary, const char *body, size_t len)
{
    struct srv_mp_part parts[SRV_MP_MAX_PARTS];
    struct nn_err err;
    int n = -1;
    enum nn_status st = srv_mp_parse(boundary, body, len, parts, SRV_MP_MAX_PARTS, &n, &err);
    if (n < 0 || n > SRV_MP_MAX_PARTS || (st != NN_OK && (st != NN_EINVAL || !err.msg[0])))
        abort();
    for (int i = 0; st == NN_OK && i < n; i++)
        if (parts[i].data < body || parts[i].data + parts[i].len > body + len || !parts[i].name[0])
            abort();
}

int LLVMFuzzerTestOneInput(const unsigned char *data, size_t size)
{
    /* the body is copied so that a read past its end is the sanitizer's to catch */
    char *body = malloc(size ? size : 1);
    if (!body)
        return 0;
    memcpy(body, data, size);
    parse("XyZ", body, size);
    const unsigned char *nl = memchr(data, '\n', size);
    if (nl && (size_t)(nl - data) < 200) {
        char ct[201], boundary[71];
        size_t cl = (size_t)(nl - data);
        memcpy(ct, data, cl);
        ct[cl] = 0;
        struct nn_err err;
        if (srv_mp_boundary(ct, boundary, &err) == NN_OK)
            parse(boundary, body + cl + 1, size - cl - 1);
    }
    free(body);
    return 0;
}
