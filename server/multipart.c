/* multipart/form-data: a strict reader of a buffered body (see multipart.h). */
#include "server/multipart.h"

#include <stdio.h>
#include <string.h>
#include <strings.h>

/* RFC 2046 5.1.1 bcharsnospace, and space inside a boundary. */
static int bchar(char c)
{
    return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
           strchr("'()+_,-./:=? ", c) != NULL;
}

static const char *skip_ows(const char *p, const char *e)
{
    while (p < e && (*p == ' ' || *p == '\t'))
        p++;
    return p;
}

/* A parameter value at p (token or quoted-string, backslash escapes) into out (truncated to
 * cap - 1); returns the end, or NULL for an unterminated quoted string. */
static const char *param_value(const char *p, const char *e, char *out, size_t cap)
{
    size_t n = 0;
    if (p < e && *p == '"') {
        for (p++; p < e && *p != '"'; p++) {
            if (*p == '\\' && p + 1 < e)
                p++;
            if (n + 1 < cap)
                out[n++] = *p;
        }
        if (p >= e)
            return NULL;
        p++;
    } else {
        for (; p < e && *p != ';' && *p != ' ' && *p != '\t'; p++)
            if (n + 1 < cap)
                out[n++] = *p;
    }
    out[n] = 0;
    return p;
}

/* Walks "type; k=v; k=v" in [p, e): calls back per parameter through the two names wanted
 * (want1/out1, want2/out2; NULL to skip). 0, or -1 for a malformed parameter. Sets *has1,
 * *has2 when found. */
static int params(const char *p, const char *e, const char *want1, char *out1, int *has1,
                  const char *want2, char *out2, int *has2, size_t cap)
{
    while (p < e) {
        p = skip_ows(p, e);
        if (p >= e)
            break;
        if (*p != ';')
            return -1;
        p = skip_ows(p + 1, e);
        if (p >= e)
            break; /* a trailing ';' */
        const char *k = p;
        while (p < e && *p != '=' && *p != ';' && *p != ' ' && *p != '\t')
            p++;
        size_t kl = (size_t)(p - k);
        p = skip_ows(p, e);
        if (p >= e || *p != '=' || !kl)
            return -1;
        p = skip_ows(p + 1, e);
        char scratch[SRV_MP_NAME + 8];
        char *out = scratch;
        size_t ocap = sizeof scratch;
        if (want1 && strlen(want1) == kl && !strncasecmp(k, want1, kl))
            out = out1, ocap = cap, *has1 = 1;
        else if (want2 && strlen(want2) == kl && !strncasecmp(k, want2, kl))
            out = out2, ocap = cap, *has2 = 1;
        if (!(p = param_value(p, e, out, ocap)))
            return -1;
    }
    return 0;
}

enum nn_status srv_mp_boundary(const char *ct, char buf[71], struct nn_err *err)
{
    static const char type[] = "multipart/form-data";
    size_t tl = sizeof type - 1;
    if (!ct || strncasecmp(ct, type, tl) || (ct[tl] && ct[tl] != ';' && ct[tl] != ' '))
        return nn_err_set(err, NN_EINVAL, "Content-Type: \"%.60s\" is not multipart/form-data",
                          ct ? ct : "");
    const char *e = ct + strlen(ct);
    int has = 0, unused = 0;
    char b[80];
    if (params(ct + tl, e, "boundary", b, &has, NULL, NULL, &unused, sizeof b) != 0)
        return nn_err_set(err, NN_EINVAL,
                          "Content-Type: malformed parameters in \"%.80s\" (RFC 9110 5.6.6)", ct);
    size_t bl = has ? strlen(b) : 0;
    int ok = bl >= 1 && bl <= 70 && b[bl - 1] != ' ';
    for (size_t i = 0; ok && i < bl; i++)
        ok = bchar(b[i]);
    if (!has)
        return nn_err_set(err, NN_EINVAL,
                          "Content-Type: multipart/form-data needs a boundary parameter");
    if (!ok)
        return nn_err_set(err, NN_EINVAL,
                          "Content-Type: boundary \"%.72s\" is not 1 to 70 of RFC 2046's "
                          "characters (letters, digits, '()+_,-./:=? , not ending in a space)",
                          b);
    memcpy(buf, b, bl + 1);
    return NN_OK;
}

/* The first occurrence of needle in [h, h + hl), or NULL. */
static const char *find(const char *h, size_t hl, const char *needle, size_t nl)
{
    const char *end = h + hl;
    while ((size_t)(end - h) >= nl) {
        const char *c = memchr(h, needle[0], (size_t)(end - h) - nl + 1);
        if (!c)
            return NULL;
        if (!memcmp(c, needle, nl))
            return c;
        h = c + 1;
    }
    return NULL;
}

/* One part's header block at *pp (up to and including its blank line) into part. */
static enum nn_status part_headers(const char **pp, const char *e, int i, struct srv_mp_part *part,
                                   struct nn_err *err)
{
    const char *p = *pp;
    int disposition = 0;
    for (;;) {
        const char *eol = find(p, (size_t)(e - p), "\r\n", 2);
        if (!eol)
            return nn_err_set(err, NN_EINVAL,
                              "multipart: part %d: its headers do not end with a blank line", i);
        if (eol == p) {
            *pp = p + 2;
            break;
        }
        const char *colon = memchr(p, ':', (size_t)(eol - p));
        if (!colon || colon == p || *p == ' ' || *p == '\t')
            return nn_err_set(err, NN_EINVAL, "multipart: part %d: malformed header line \"%.*s\"",
                              i, (int)(eol - p > 60 ? 60 : eol - p), p);
        static const char cd[] = "Content-Disposition";
        if ((size_t)(colon - p) == sizeof cd - 1 && !strncasecmp(p, cd, sizeof cd - 1)) {
            if (disposition++)
                return nn_err_set(err, NN_EINVAL,
                                  "multipart: part %d: two Content-Disposition headers", i);
            const char *v = skip_ows(colon + 1, eol), *ve = v;
            while (ve < eol && *ve != ';' && *ve != ' ' && *ve != '\t')
                ve++;
            if ((size_t)(ve - v) != 9 || strncasecmp(v, "form-data", 9))
                return nn_err_set(err, NN_EINVAL,
                                  "multipart: part %d: Content-Disposition is \"%.*s\", not "
                                  "form-data",
                                  i, (int)(ve - v > 40 ? 40 : ve - v), v);
            int has_name = 0, has_file = 0;
            if (params(ve, eol, "name", part->name, &has_name, "filename", part->filename,
                       &has_file, SRV_MP_NAME) != 0)
                return nn_err_set(err, NN_EINVAL,
                                  "multipart: part %d: malformed Content-Disposition parameters",
                                  i);
            if (!has_name || !part->name[0])
                return nn_err_set(err, NN_EINVAL,
                                  "multipart: part %d: Content-Disposition has no name", i);
        }
        p = eol + 2;
    }
    if (!disposition)
        return nn_err_set(err, NN_EINVAL, "multipart: part %d: no Content-Disposition header", i);
    return NN_OK;
}

enum nn_status srv_mp_parse(const char *boundary, const char *body, size_t len,
                            struct srv_mp_part *parts, int max, int *n, struct nn_err *err)
{
    char delim[2 + 2 + 71]; /* "\r\n--" boundary */
    size_t bl = strlen(boundary);
    if (max > SRV_MP_MAX_PARTS)
        max = SRV_MP_MAX_PARTS;
    *n = 0;
    if (bl < 1 || bl > 70)
        return nn_err_set(err, NN_EINVAL, "multipart: bad boundary");
    size_t dl = (size_t)snprintf(delim, sizeof delim, "\r\n--%s", boundary);
    const char *p = body, *e = body + len;
    if (len < dl - 2 || memcmp(p, delim + 2, dl - 2))
        return nn_err_set(err, NN_EINVAL,
                          "multipart: the body does not start with the boundary delimiter "
                          "\"--%.70s\"",
                          boundary);
    p += dl - 2;
    for (int i = 1;; i++) {
        if (e - p >= 2 && p[0] == '-' && p[1] == '-') {
            if (i == 1)
                return nn_err_set(err, NN_EINVAL, "multipart: no parts");
            return NN_OK; /* the close delimiter; the epilogue is ignored */
        }
        p = skip_ows(p, e);
        if (e - p < 2 || p[0] != '\r' || p[1] != '\n')
            return nn_err_set(err, NN_EINVAL,
                              "multipart: part %d: the boundary delimiter is not followed by "
                              "CRLF or \"--\"",
                              i);
        p += 2;
        if (*n == max)
            return nn_err_set(err, NN_EINVAL, "multipart: more than %d parts", max);
        struct srv_mp_part *part = &parts[(*n)++];
        memset(part, 0, sizeof *part);
        enum nn_status st = part_headers(&p, e, i, part, err);
        if (st)
            return st;
        const char *end = find(p, (size_t)(e - p), delim, dl);
        if (!end)
            return nn_err_set(err, NN_EINVAL,
                              "multipart: part %d (\"%s\"): no boundary delimiter after its "
                              "content (the body is cut short, or the boundary is wrong)",
                              i, part->name);
        part->data = p;
        part->len = (size_t)(end - p);
        p = end + dl;
    }
}
