/* relud JSON codec: see codec.h for the contract.
 *
 * Decode pipeline:
 *   scan_body()   one pass over the body: strict grammar, strings/UTF-8,
 *                 nesting; at every '[' scan_numeric() tries to read a whole
 *                 numeric array (numbers + nested arrays, rank <= 8) and, when
 *                 it is one, records a span and skips it;
 *   skeleton      the body with each span replaced by "\u0001<nonce>:<idx>";
 *   cJSON         parses the skeleton (small: the numbers are gone);
 *   claim_walk()  turns the placeholder strings into cJSON_Raw nodes, checks
 *                 that each span is claimed exactly once, refuses duplicate keys;
 *   numarray_read converts a span's numbers with fast_float (numconv.cc).
 * A failed scan_numeric() (a string inside, or too deep) costs a rescan of at
 * most the bytes it read; since it gives up 8 levels down, a byte is rescanned
 * at most 8 times whatever the input.
 *
 * Encode: placeholders are cJSON_Raw nodes "\x01<nonce>:<idx>"; cJSON never
 * emits a raw 0x01 byte otherwise (it escapes control characters), so
 * srv_out_print finds them with memchr in cJSON's unformatted output.
 */
#include "server/codec.h"

#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>

typedef unsigned char uc;

/* ---- errors (self-contained: the codec does not need core's objects) ----- */
__attribute__((format(printf, 3, 4))) static enum nn_status
cerr(struct nn_err *err, enum nn_status st, const char *fmt, ...)
{
    if (err) {
        va_list ap;
        va_start(ap, fmt);
        int n = vsnprintf(err->msg, sizeof err->msg, fmt, ap);
        va_end(ap);
        if (n >= (int)sizeof err->msg) { /* truncated: do not end inside a UTF-8 sequence */
            size_t L = sizeof err->msg - 1, j = L - 1;
            const unsigned char *m = (const unsigned char *)err->msg;
            while (j > 0 && (m[j] & 0xc0) == 0x80)
                j--;
            size_t need = m[j] >= 0xf0 ? 4 : m[j] >= 0xe0 ? 3 : m[j] >= 0xc0 ? 2 : 1;
            if (j + need > L)
                err->msg[j] = '\0';
        }
    }
    return st;
}

/* Longest prefix of s[0..n) of at most max bytes that does not split a UTF-8
 * sequence (messages end up in JSON replies). */
static int utf8_cut(const char *s, size_t n, size_t max)
{
    if (n <= max)
        return (int)n;
    size_t k = max;
    while (k > 0 && ((unsigned char)s[k] & 0xc0) == 0x80)
        k--;
    return (int)k;
}

static void shape_fmt(char *buf, size_t cap, const size_t *shape, int ndim)
{
    size_t o = 0;
    o += (size_t)snprintf(buf, cap, "[");
    for (int i = 0; i < ndim && o < cap; i++)
        o += (size_t)snprintf(buf + o, cap - o, "%s%zu", i ? ", " : "", shape[i]);
    if (o < cap)
        snprintf(buf + o, cap - o, "]");
}

/* numel = product of shape; nz = product of the non-zero dims. 0 on overflow. */
static int shape_product(const size_t *shape, int ndim, size_t *numel, size_t *nz)
{
    size_t n = 1, z = 1;
    int zero = 0;
    for (int i = 0; i < ndim; i++) {
        if (shape[i] == 0) {
            zero = 1;
            continue;
        }
        if (z > SIZE_MAX / shape[i])
            return 0;
        z *= shape[i];
    }
    n = zero ? 0 : z;
    *numel = n;
    if (nz)
        *nz = z;
    return 1;
}

/* ---- nonce ----------------------------------------------------------------- */
static char g_nonce_hex[17];
static pthread_once_t g_nonce_once = PTHREAD_ONCE_INIT;

static void nonce_init(void)
{
    uint64_t n = 0;
    if (getrandom(&n, sizeof n, GRND_NONBLOCK) != (ssize_t)sizeof n) {
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        n = ((uint64_t)ts.tv_nsec << 32) ^ (uint64_t)ts.tv_sec ^ ((uint64_t)getpid() << 17) ^
            (uint64_t)(uintptr_t)&n;
        n *= 0x9e3779b97f4a7c15ull;
    }
    snprintf(g_nonce_hex, sizeof g_nonce_hex, "%016llx", (unsigned long long)n);
}

static const char *nonce(void)
{
    pthread_once(&g_nonce_once, nonce_init);
    return g_nonce_hex;
}

#define PH_MAX 40 /* "\x01" + 16 + ":" + 20 digits + NUL */

/* Writes the placeholder text "\x01<nonce>:<idx>" (no NUL); returns its length. */
static size_t ph_text(char *buf, size_t idx)
{
    buf[0] = '\x01';
    memcpy(buf + 1, nonce(), 16);
    buf[17] = ':';
    char tmp[24];
    int n = snprintf(tmp, sizeof tmp, "%zu", idx);
    memcpy(buf + 18, tmp, (size_t)n);
    return 18 + (size_t)n;
}

/* Matches "\x01<nonce>:<digits>" at s (at most max bytes); *len its length.
 * exact: the text must end right after the digits (NUL). */
static int ph_match(const char *s, size_t max, size_t *idx, size_t *len, int exact)
{
    if (max < 19 || s[0] != '\x01' || s[17] != ':' || memcmp(s + 1, nonce(), 16) != 0)
        return 0;
    size_t i = 18, v = 0;
    while (i < max && i < 38 && s[i] >= '0' && s[i] <= '9') {
        v = v * 10 + (size_t)(s[i] - '0');
        i++;
    }
    if (i == 18 || i - 18 > 19)
        return 0;
    if (exact && (i >= max || s[i] != '\0'))
        return 0;
    *idx = v;
    *len = i;
    return 1;
}

/* ---- spans + document ------------------------------------------------------ */
struct span {
    size_t off, len; /* the array's bytes in the body, '[' to ']' */
    size_t numel;
    int ndim;
    size_t shape[NN_MAX_DIMS];
};

struct srv_doc {
    const char *body; /* borrowed */
    size_t len;
    cJSON *root;
    struct span *sp;
    size_t nsp;
};

/* ---- scanner ---------------------------------------------------------------- */
struct glevel {
    int is_arr;
    size_t cnt;              /* arrays: elements started (index = cnt - 1) */
    size_t key_off, key_len; /* objects: current key (raw text, no quotes) */
};

struct scan {
    const uc *b, *e;
    struct glevel *st; /* max_depth levels */
    int depth, max_depth;
    size_t nvalues, max_values; /* values outside numeric arrays (a numeric array is one) */
    struct span *sp;
    size_t nsp, capsp;
    enum nn_status st_code;
    struct nn_err *err;
};

static int is_digit(uc c) { return (unsigned)(c - '0') < 10u; }

static const uc *skip_ws(const uc *p, const uc *e)
{
    while (p < e && (*p == ' ' || *p == '\n' || *p == '\r' || *p == '\t'))
        p++;
    return p;
}

static int syn(struct scan *s, const uc *at, const char *what)
{
    size_t off = (size_t)(at - s->b);
    if (at >= s->e)
        cerr(s->err, NN_EINVAL, "invalid JSON at byte %zu: unexpected end of input", off);
    else if (*at >= 0x21 && *at < 0x7f)
        cerr(s->err, NN_EINVAL, "invalid JSON at byte %zu: %s, got '%c'", off, what, *at);
    else
        cerr(s->err, NN_EINVAL, "invalid JSON at byte %zu: %s, got byte 0x%02x", off, what, *at);
    s->st_code = NN_EINVAL;
    return -1;
}

/* Path of the value being scanned at generic depth s->depth: "layers[1].weight". */
static size_t gpath(const struct scan *s, char *buf, size_t cap)
{
    size_t o = 0;
    buf[0] = '\0';
    for (int i = 0; i < s->depth && o + 1 < cap; i++) {
        const struct glevel *l = &s->st[i];
        int n;
        if (l->is_arr)
            n = snprintf(buf + o, cap - o, "[%zu]", l->cnt ? l->cnt - 1 : 0);
        else
            n = snprintf(buf + o, cap - o, "%s%.*s", o ? "." : "",
                         utf8_cut((const char *)s->b + l->key_off, l->key_len, 48),
                         (const char *)s->b + l->key_off);
        if (n < 0)
            break;
        o += (size_t)n;
        if (o >= cap)
            o = cap - 1;
    }
    return o;
}

/* End of the run of ASCII digits at p. (A 16-byte SSE2 classification was
 * measured slower here: it puts a load->movemask->ctz latency chain between
 * consecutive numbers, where the byte loop lets the branch predictor run ahead.) */
static inline const uc *skip_digits(const uc *p, const uc *e)
{
    while (p < e && is_digit(*p))
        p++;
    return p;
}

/* Bytes that may not directly follow a number: "01", "1.2.3", "1e5e", "0x1". */
static const uc num_glue[256] = {
    ['0'] = 1, ['1'] = 1, ['2'] = 1, ['3'] = 1, ['4'] = 1, ['5'] = 1, ['6'] = 1, ['7'] = 1,
    ['8'] = 1, ['9'] = 1, ['.'] = 1, ['+'] = 1, ['-'] = 1, ['a'] = 1, ['b'] = 1, ['c'] = 1,
    ['d'] = 1, ['e'] = 1, ['f'] = 1, ['g'] = 1, ['h'] = 1, ['i'] = 1, ['j'] = 1, ['k'] = 1,
    ['l'] = 1, ['m'] = 1, ['n'] = 1, ['o'] = 1, ['p'] = 1, ['q'] = 1, ['r'] = 1, ['s'] = 1,
    ['t'] = 1, ['u'] = 1, ['v'] = 1, ['w'] = 1, ['x'] = 1, ['y'] = 1, ['z'] = 1, ['A'] = 1,
    ['B'] = 1, ['C'] = 1, ['D'] = 1, ['E'] = 1, ['F'] = 1, ['G'] = 1, ['H'] = 1, ['I'] = 1,
    ['J'] = 1, ['K'] = 1, ['L'] = 1, ['M'] = 1, ['N'] = 1, ['O'] = 1, ['P'] = 1, ['Q'] = 1,
    ['R'] = 1, ['S'] = 1, ['T'] = 1, ['U'] = 1, ['V'] = 1, ['W'] = 1, ['X'] = 1, ['Y'] = 1,
    ['Z'] = 1,
};

/* Validates the number at p (p < e); returns its end or NULL (*bad = the
 * offending byte). Written so that the common shapes of numbers take no
 * data-dependent branch. */
static inline __attribute__((always_inline)) const uc *num_end(const uc *p, const uc *e,
                                                               const uc **bad)
{
    const uc *s0 = p + (*p == '-'), *q;
    p = skip_digits(s0, e);
    if (p == s0)
        goto fail;
    if ((*s0 == '0') & (p - s0 > 1)) { /* "01": one branch, rarely taken */
        p = s0 + 1;
        goto fail;
    }
    if (p < e && *p == '.') {
        q = skip_digits(p + 1, e);
        if (q == p + 1) {
            p = q;
            goto fail;
        }
        p = q;
    }
    if (p < e && (*p | 0x20) == 'e') {
        p++;
        if (p < e && (*p == '+' || *p == '-'))
            p++;
        q = skip_digits(p, e);
        if (q == p)
            goto fail;
        p = q;
    }
    if (p < e && num_glue[*p])
        goto fail;
    return p;
fail:
    *bad = p;
    return NULL;
}

/* What to say where a value was expected: NaN and Infinity get a hint. */
static const char *not_a_value(const uc *p, const uc *e)
{
    p += p < e && (*p == '-' || *p == '+');
    if ((e - p >= 3 && !memcmp(p, "NaN", 3)) || (e - p >= 8 && !memcmp(p, "Infinity", 8)))
        return "expected a value (NaN and Infinity are not JSON numbers, and relud takes finite "
               "values only)";
    return "expected a value";
}

static int bad_number(struct scan *s, const uc *at)
{
    cerr(s->err, NN_EINVAL, "invalid JSON at byte %zu: invalid number", (size_t)(at - s->b));
    s->st_code = NN_EINVAL;
    return -1;
}

static int hex4(const uc *p, unsigned *v)
{
    unsigned r = 0;
    for (int i = 0; i < 4; i++) {
        uc c = p[i];
        unsigned d;
        if (c >= '0' && c <= '9')
            d = (unsigned)(c - '0');
        else if ((c | 0x20) >= 'a' && (c | 0x20) <= 'f')
            d = (unsigned)((c | 0x20) - 'a' + 10);
        else
            return 0;
        r = r << 4 | d;
    }
    *v = r;
    return 1;
}

/* Length of the valid UTF-8 sequence at p (lead byte >= 0x80), or 0. */
static size_t utf8_len(const uc *p, const uc *e)
{
    uc c = p[0];
    size_t n;
    uc lo = 0x80, hi = 0xbf;
    if (c >= 0xc2 && c <= 0xdf)
        n = 2;
    else if (c >= 0xe0 && c <= 0xef) {
        n = 3;
        if (c == 0xe0)
            lo = 0xa0;
        if (c == 0xed)
            hi = 0x9f; /* no UTF-16 surrogates */
    } else if (c >= 0xf0 && c <= 0xf4) {
        n = 4;
        if (c == 0xf0)
            lo = 0x90;
        if (c == 0xf4)
            hi = 0x8f; /* <= U+10FFFF */
    } else
        return 0;
    if ((size_t)(e - p) < n)
        return 0;
    if (p[1] < lo || p[1] > hi)
        return 0;
    for (size_t i = 2; i < n; i++)
        if ((p[i] & 0xc0) != 0x80)
            return 0;
    return n;
}

/* p at the opening quote; returns the byte after the closing quote or NULL. */
static const uc *scan_string(struct scan *s, const uc *p)
{
    const uc *e = s->e;
    p++;
    for (;;) {
        while (p < e && *p >= 0x20 && *p < 0x80 && *p != '"' && *p != '\\')
            p++;
        if (p >= e) {
            cerr(s->err, NN_EINVAL, "invalid JSON at byte %zu: unterminated string",
                 (size_t)(p - s->b));
            s->st_code = NN_EINVAL;
            return NULL;
        }
        uc c = *p;
        if (c == '"')
            return p + 1;
        if (c == '\\') {
            if (e - p < 2) {
                syn(s, e, "");
                return NULL;
            }
            switch (p[1]) {
            case '"':
            case '\\':
            case '/':
            case 'b':
            case 'f':
            case 'n':
            case 'r':
            case 't': p += 2; continue;
            case 'u': break;
            default:
                cerr(s->err, NN_EINVAL, "invalid JSON at byte %zu: invalid escape in string",
                     (size_t)(p - s->b));
                s->st_code = NN_EINVAL;
                return NULL;
            }
            unsigned cp, lo;
            if (e - p < 6 || !hex4(p + 2, &cp))
                goto bad_u;
            if (cp == 0) {
                cerr(s->err, NN_EINVAL,
                     "invalid JSON at byte %zu: \\u0000 in strings is not "
                     "supported",
                     (size_t)(p - s->b));
                s->st_code = NN_EINVAL;
                return NULL;
            }
            if (cp >= 0xdc00 && cp <= 0xdfff)
                goto bad_u;
            if (cp >= 0xd800 && cp <= 0xdbff) {
                if (e - p < 12 || p[6] != '\\' || p[7] != 'u' || !hex4(p + 8, &lo) || lo < 0xdc00 ||
                    lo > 0xdfff)
                    goto bad_u;
                p += 12;
            } else
                p += 6;
            continue;
        bad_u:
            cerr(s->err, NN_EINVAL, "invalid JSON at byte %zu: invalid \\u escape in string",
                 (size_t)(p - s->b));
            s->st_code = NN_EINVAL;
            return NULL;
        }
        if (c < 0x20) {
            cerr(s->err, NN_EINVAL,
                 "invalid JSON at byte %zu: control character 0x%02x in string (escape it)",
                 (size_t)(p - s->b), c);
            s->st_code = NN_EINVAL;
            return NULL;
        }
        size_t n = utf8_len(p, e);
        if (!n) {
            cerr(s->err, NN_EINVAL, "invalid JSON at byte %zu: invalid UTF-8 in string",
                 (size_t)(p - s->b));
            s->st_code = NN_EINVAL;
            return NULL;
        }
        p += n;
    }
}

/* ---- numeric arrays ---------------------------------------------------------- */
enum { K_NONE, K_NUM, K_ARR };

struct nlevel {
    size_t cnt;              /* elements started */
    int kind;                /* of element [0] */
    int cnd;                 /* element [0]'s rank when an array */
    size_t csh[NN_MAX_DIMS]; /* element [0]'s shape when an array */
};

struct ragged {
    int set;
    int depth;               /* level whose elements disagree */
    size_t idx[NN_MAX_DIMS]; /* indices of the enclosing elements, then the bad one */
    int kind0, kindk;        /* element [0] and element [k] */
    int nd0, ndk;
    size_t sh0[NN_MAX_DIMS], shk[NN_MAX_DIMS];
};

static void ragged_note(struct ragged *r, const struct nlevel *L, int d, int kindk, int ndk,
                        const size_t *shk)
{
    if (r->set)
        return;
    r->set = 1;
    r->depth = d;
    for (int i = 0; i <= d; i++)
        r->idx[i] = L[i].cnt - 1;
    r->kind0 = L[d].kind;
    r->nd0 = L[d].cnd;
    memcpy(r->sh0, L[d].csh, sizeof r->sh0);
    r->kindk = kindk;
    r->ndk = ndk;
    if (shk)
        memcpy(r->shk, shk, sizeof r->shk);
}

static int ragged_error(struct scan *s, const struct ragged *r, size_t start)
{
    char path[160], shk[96], sh0[96], head[200];
    size_t o = gpath(s, path, sizeof path);
    for (int i = 0; i < r->depth && o + 1 < sizeof path; i++) {
        int n = snprintf(path + o, sizeof path - o, "[%zu]", r->idx[i]);
        if (n < 0)
            break;
        o += (size_t)n;
        if (o >= sizeof path)
            o = sizeof path - 1;
    }
    if (r->kindk == K_ARR)
        shape_fmt(shk, sizeof shk, r->shk, r->ndk);
    if (r->kind0 == K_ARR)
        shape_fmt(sh0, sizeof sh0, r->sh0, r->nd0);
    char span_path[160];
    gpath(s, span_path, sizeof span_path);
    if (span_path[0])
        snprintf(head, sizeof head, "%.160s: ragged array", span_path);
    else
        snprintf(head, sizeof head, "ragged array at byte %zu", start);
    if (r->kindk == K_ARR && r->kind0 == K_ARR)
        cerr(s->err, NN_EINVAL, "%s: %s[%zu] has shape %s but %s[0] has shape %s", head, path,
             r->idx[r->depth], shk, path, sh0);
    else
        cerr(s->err, NN_EINVAL, "%s: %s[%zu] is %s but %s[0] is %s", head, path, r->idx[r->depth],
             r->kindk == K_ARR ? "an array" : "a number", path,
             r->kind0 == K_ARR ? "an array" : "a number");
    s->st_code = NN_EINVAL;
    return -1;
}

static int push_span(struct scan *s, size_t off, size_t len, int nd, const size_t *sh)
{
    if (s->nsp == s->capsp) {
        size_t cap = s->capsp ? s->capsp * 2 : 16;
        struct span *n = realloc(s->sp, cap * sizeof *n);
        if (!n) {
            cerr(s->err, NN_ENOMEM, "out of memory");
            s->st_code = NN_ENOMEM;
            return -1;
        }
        s->sp = n;
        s->capsp = cap;
    }
    struct span *sp = &s->sp[s->nsp++];
    sp->off = off;
    sp->len = len;
    sp->ndim = nd;
    memset(sp->shape, 0, sizeof sp->shape);
    memcpy(sp->shape, sh, (size_t)nd * sizeof *sh);
    size_t nz;
    shape_product(sh, nd, &sp->numel, &nz); /* cannot overflow: counts of real elements */
    return 0;
}

/* Tries to read the whole array at b[start] == '[' as a numeric array.
 * 1: a span was recorded, *end = offset after its ']'. 0: not numeric (a
 * non-number value inside, or deeper than NN_MAX_DIMS): scan it generically.
 * -1: error (bad syntax, a ragged numeric array). */
static int scan_numeric(struct scan *s, size_t start, size_t *end)
{
    const uc *b = s->b, *e = s->e, *p = b + start + 1;
    struct nlevel L[NN_MAX_DIMS];
    struct ragged rg;
    int d = 0;
    rg.set = 0;
    L[0].cnt = 0;
    L[0].kind = K_NONE;
    L[0].cnd = 0;
    for (;;) {
        /* a value, or ']' when the array is still empty */
        p = skip_ws(p, e);
        if (p >= e)
            return syn(s, p, "");
        uc c = *p;
        if (c == ']' && L[d].cnt == 0)
            goto close;
        L[d].cnt++;
        if (c == '-' || is_digit(c)) {
            if (L[d].kind != K_NUM) {
                if (L[d].kind == K_NONE)
                    L[d].kind = K_NUM;
                else
                    ragged_note(&rg, L, d, K_NUM, 0, NULL);
            }
            for (;;) { /* the hot loop: a run of numbers */
                const uc *bad, *q = num_end(p, e, &bad);
                if (!q)
                    return bad_number(s, bad);
                p = q;
                while (p < e && (*p == ' ' || *p == '\n' || *p == '\r' || *p == '\t'))
                    p++;
                if (p >= e)
                    return syn(s, p, "");
                if (*p == ',') {
                    p++;
                    while (p < e && (*p == ' ' || *p == '\n' || *p == '\r' || *p == '\t'))
                        p++;
                    if (p < e && (*p == '-' || is_digit(*p))) {
                        L[d].cnt++;
                        continue;
                    }
                    break; /* another kind of value follows: the outer loop sees it */
                }
                if (*p == ']')
                    goto close;
                return syn(s, p, "expected ',' or ']'");
            }
            continue;
        }
        if (c == '[') {
            if (d + 1 == NN_MAX_DIMS)
                return 0; /* rank > 8: not a tensor, let cJSON have it */
            if (L[d].kind == K_NONE)
                L[d].kind = K_ARR, L[d].cnd = -1; /* shape set at close */
            else if (L[d].kind == K_NUM)
                ragged_note(&rg, L, d, K_ARR, 0, NULL);
            d++;
            L[d].cnt = 0;
            L[d].kind = K_NONE;
            L[d].cnd = 0;
            p++;
            continue;
        }
        if (c == '"' || c == '{' || c == 't' || c == 'f' || c == 'n')
            return 0;
        return syn(s, p, not_a_value(p, e));

    close:
        p++; /* past ']' */
        {
            size_t sh[NN_MAX_DIMS];
            int nd = 1;
            sh[0] = L[d].cnt;
            if (L[d].kind == K_ARR) {
                memcpy(sh + 1, L[d].csh, (size_t)L[d].cnd * sizeof *sh);
                nd = L[d].cnd + 1;
            }
            if (d == 0) {
                if (rg.set)
                    return ragged_error(s, &rg, start);
                if (push_span(s, start, (size_t)(p - b) - start, nd, sh) < 0)
                    return -1;
                *end = (size_t)(p - b);
                return 1;
            }
            struct nlevel *up = &L[d - 1];
            if (up->kind == K_ARR) {
                if (up->cnd < 0) { /* this is element [0] */
                    up->cnd = nd;
                    memcpy(up->csh, sh, (size_t)nd * sizeof *sh);
                } else if (up->cnd != nd || memcmp(up->csh, sh, (size_t)nd * sizeof *sh) != 0) {
                    ragged_note(&rg, L, d - 1, K_ARR, nd, sh);
                }
            }
            d--;
        }
        /* after a value: ',' or ']' */
        p = skip_ws(p, e);
        if (p >= e)
            return syn(s, p, "");
        if (*p == ']')
            goto close;
        if (*p != ',')
            return syn(s, p, "expected ',' or ']'");
        p++;
    }
}

/* Scans the whole body. 0 on success, -1 with s->err set. */
static int scan_body(struct scan *s)
{
    const uc *b = s->b, *e = s->e, *p = b;
    struct glevel *top;

    if (skip_ws(p, e) == e) {
        cerr(s->err, NN_EINVAL, "invalid JSON: empty body");
        s->st_code = NN_EINVAL;
        return -1;
    }
value:
    p = skip_ws(p, e);
    if (p >= e)
        return syn(s, p, "");
    if (++s->nvalues > s->max_values) {
        cerr(s->err, NN_ETOOBIG,
             "body: more than max_json_values (%zu) JSON values (numeric arrays count as one)",
             s->max_values);
        s->st_code = NN_ETOOBIG;
        return -1;
    }
    switch (*p) {
    case '{':
    case '[':
        if (*p == '[') {
            size_t end = 0;
            int r = scan_numeric(s, (size_t)(p - b), &end);
            if (r < 0)
                return -1;
            if (r > 0) {
                p = b + end;
                goto after;
            }
        }
        if (s->depth == s->max_depth) {
            cerr(s->err, NN_EINVAL, "invalid JSON at byte %zu: nesting deeper than %d",
                 (size_t)(p - b), s->max_depth);
            s->st_code = NN_EINVAL;
            return -1;
        }
        top = &s->st[s->depth++];
        top->is_arr = *p == '[';
        top->cnt = 0;
        top->key_off = top->key_len = 0;
        p = skip_ws(p + 1, e);
        if (p < e && *p == (top->is_arr ? ']' : '}')) {
            s->depth--;
            p++;
            goto after;
        }
        if (top->is_arr) {
            top->cnt = 1;
            goto value;
        }
        goto key;
    case '"':
        p = scan_string(s, p);
        if (!p)
            return -1;
        goto after;
    case 't':
        if (e - p >= 4 && memcmp(p, "true", 4) == 0) {
            p += 4;
            goto after;
        }
        return syn(s, p, "expected a value");
    case 'f':
        if (e - p >= 5 && memcmp(p, "false", 5) == 0) {
            p += 5;
            goto after;
        }
        return syn(s, p, "expected a value");
    case 'n':
        if (e - p >= 4 && memcmp(p, "null", 4) == 0) {
            p += 4;
            goto after;
        }
        return syn(s, p, "expected a value");
    default:
        if (*p == '-' || is_digit(*p)) {
            const uc *bad, *q = num_end(p, e, &bad);
            double v;
            const char *stop;
            if (!q)
                return bad_number(s, bad);
            if (!srv_f64_parse((const char *)p, (const char *)q, &v, &stop) || isinf(v)) {
                char path[128];
                gpath(s, path, sizeof path);
                cerr(s->err, NN_EINVAL, "%s%s%.*s is out of range", path, path[0] ? ": " : "",
                     (int)(q - p > 40 ? 40 : q - p), (const char *)p);
                s->st_code = NN_EINVAL;
                return -1;
            }
            p = q;
            goto after;
        }
        return syn(s, p, not_a_value(p, e));
    }

key:
    p = skip_ws(p, e);
    if (p >= e || *p != '"')
        return syn(s, p, "expected a string key");
    {
        const uc *k = p;
        p = scan_string(s, p);
        if (!p)
            return -1;
        top = &s->st[s->depth - 1];
        top->key_off = (size_t)(k + 1 - b);
        top->key_len = (size_t)(p - k) - 2;
        top->cnt++;
    }
    p = skip_ws(p, e);
    if (p >= e || *p != ':')
        return syn(s, p, "expected ':'");
    p++;
    goto value;

after:
    if (s->depth == 0) {
        p = skip_ws(p, e);
        if (p < e)
            return syn(s, p,
                       "unexpected data after the JSON value (binary tensor data? send the "
                       "JSON part's length in Inference-Header-Content-Length)");
        return 0;
    }
    p = skip_ws(p, e);
    if (p >= e)
        return syn(s, p, "");
    top = &s->st[s->depth - 1];
    if (top->is_arr) {
        if (*p == ',') {
            p++;
            top->cnt++;
            goto value;
        }
        if (*p == ']') {
            s->depth--;
            p++;
            goto after;
        }
        return syn(s, p, "expected ',' or ']'");
    }
    if (*p == ',') {
        p++;
        goto key;
    }
    if (*p == '}') {
        s->depth--;
        p++;
        goto after;
    }
    return syn(s, p, "expected ',' or '}'");
}

/* ---- after cJSON: claim placeholders, refuse duplicate keys ------------------ */
struct claim {
    struct srv_doc *doc;
    unsigned char *claimed;
    size_t nclaimed;
    const cJSON *pnode[SRV_DOC_MAX_DEPTH + 2]; /* path for messages: node at each depth */
    struct nn_err *err;
};

static void cj_path(const struct claim *c, int depth, char *buf, size_t cap)
{
    size_t o = 0;
    buf[0] = '\0';
    for (int i = 1; i <= depth && o + 1 < cap; i++) {
        const cJSON *parent = c->pnode[i - 1], *n = c->pnode[i];
        int w;
        if (cJSON_IsArray(parent)) {
            size_t k = 0;
            for (const cJSON *x = parent->child; x && x != n; x = x->next)
                k++;
            w = snprintf(buf + o, cap - o, "[%zu]", k);
        } else {
            const char *k = n->string ? n->string : "";
            w = snprintf(buf + o, cap - o, "%s%.*s", o ? "." : "", utf8_cut(k, strlen(k), 48), k);
        }
        if (w < 0)
            break;
        o += (size_t)w;
        if (o >= cap)
            o = cap - 1;
    }
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

static int claim_one(struct claim *c, cJSON *n)
{
    size_t idx, len;
    if (!cJSON_IsString(n) || !n->valuestring || n->valuestring[0] != '\x01')
        return 0;
    if (!ph_match(n->valuestring, strlen(n->valuestring) + 1, &idx, &len, 1))
        return 0;
    if (idx >= c->doc->nsp || c->claimed[idx])
        return -1; /* cannot happen without the nonce */
    c->claimed[idx] = 1;
    c->nclaimed++;
    n->type = (n->type & ~0xff) | cJSON_Raw;
    return 0;
}

static int claim_walk(struct claim *c, cJSON *node, int depth)
{
    c->pnode[depth] = node;
    if (claim_one(c, node) < 0)
        return -1;
    if (!cJSON_IsArray(node) && !cJSON_IsObject(node))
        return 0;
    size_t nkids = 0;
    for (cJSON *k = node->child; k; k = k->next) {
        nkids++;
        if (claim_walk(c, k, depth + 1) < 0)
            return -1;
    }
    if (!cJSON_IsObject(node) || nkids < 2)
        return 0;
    const char *dup = NULL;
    if (nkids <= 16) {
        for (const cJSON *a = node->child; a && !dup; a = a->next)
            for (const cJSON *k = a->next; k; k = k->next)
                if (strcmp(a->string, k->string) == 0) {
                    dup = a->string;
                    break;
                }
    } else {
        const char **keys = malloc(nkids * sizeof *keys);
        if (!keys) {
            cerr(c->err, NN_ENOMEM, "out of memory");
            return -2;
        }
        size_t i = 0;
        for (const cJSON *k = node->child; k; k = k->next)
            keys[i++] = k->string;
        qsort(keys, nkids, sizeof *keys, cmp_str);
        for (i = 1; i < nkids && !dup; i++)
            if (strcmp(keys[i - 1], keys[i]) == 0)
                dup = keys[i];
        free(keys);
    }
    if (dup) {
        char path[160];
        cj_path(c, depth, path, sizeof path);
        cerr(c->err, NN_EINVAL, "%s%sduplicate key \"%.64s\"", path, path[0] ? ": " : "", dup);
        return -1;
    }
    return 0;
}

/* ---- parse ------------------------------------------------------------------- */
static atomic_size_t g_max_values = 100000;
void srv_doc_set_max_values(size_t n) { atomic_store(&g_max_values, n ? n : SIZE_MAX); }

enum nn_status srv_doc_parse_ex(const char *body, size_t len, int max_depth, struct srv_doc **out,
                                struct nn_err *err)
{
    struct scan s;
    struct srv_doc *doc = NULL;
    char *skel = NULL;
    enum nn_status st;

    *out = NULL;
    if (max_depth <= 0 || max_depth > SRV_DOC_MAX_DEPTH)
        max_depth = SRV_DOC_MAX_DEPTH;
    memset(&s, 0, sizeof s);
    s.b = (const uc *)body;
    s.e = s.b + (body ? len : 0);
    s.max_depth = max_depth;
    s.max_values = atomic_load(&g_max_values);
    s.err = err;
    s.st = malloc((size_t)max_depth * sizeof *s.st);
    if (!s.st)
        return cerr(err, NN_ENOMEM, "out of memory");
    if (!body || len == 0) {
        st = cerr(err, NN_EINVAL, "invalid JSON: empty body");
        goto fail;
    }
    if (scan_body(&s) < 0) {
        st = s.st_code ? s.st_code : NN_EINVAL;
        goto fail;
    }

    /* skeleton */
    size_t slen = len;
    for (size_t i = 0; i < s.nsp; i++) {
        char ph[PH_MAX];
        slen = slen - s.sp[i].len + ph_text(ph, i) + 7; /* quotes + "\u0001" for the 0x01 */
    }
    skel = malloc(slen + 1);
    if (!skel) {
        st = cerr(err, NN_ENOMEM, "out of memory");
        goto fail;
    }
    {
        size_t o = 0, from = 0;
        for (size_t i = 0; i < s.nsp; i++) {
            char ph[PH_MAX];
            size_t n = ph_text(ph, i);
            memcpy(skel + o, body + from, s.sp[i].off - from);
            o += s.sp[i].off - from;
            memcpy(skel + o, "\"\\u0001", 7);
            o += 7;
            memcpy(skel + o, ph + 1, n - 1);
            o += n - 1;
            skel[o++] = '"';
            from = s.sp[i].off + s.sp[i].len;
        }
        memcpy(skel + o, body + from, len - from);
        o += len - from;
        skel[o] = '\0';
        if (o != slen)
            abort(); /* invariant */
    }

    doc = calloc(1, sizeof *doc);
    if (!doc) {
        st = cerr(err, NN_ENOMEM, "out of memory");
        goto fail;
    }
    doc->body = body;
    doc->len = len;
    doc->sp = s.sp;
    doc->nsp = s.nsp;
    s.sp = NULL;
    doc->root = cJSON_ParseWithLength(skel, slen);
    free(skel);
    skel = NULL;
    if (!doc->root) { /* the scanner accepts only what cJSON accepts: memory */
        st = cerr(err, NN_ENOMEM, "out of memory while parsing JSON");
        goto fail;
    }
    {
        struct claim c;
        memset(&c, 0, sizeof c);
        c.doc = doc;
        c.err = err;
        c.claimed = calloc(doc->nsp ? doc->nsp : 1, 1);
        if (!c.claimed) {
            st = cerr(err, NN_ENOMEM, "out of memory");
            goto fail;
        }
        int r = claim_walk(&c, doc->root, 0);
        free(c.claimed);
        if (r == -2) {
            st = NN_ENOMEM;
            goto fail;
        }
        if (r < 0 || c.nclaimed != doc->nsp) {
            if (r == 0)
                cerr(err, NN_EINVAL, "invalid JSON");
            st = NN_EINVAL;
            goto fail;
        }
    }
    free(s.st);
    *out = doc;
    return NN_OK;

fail:
    free(skel);
    free(s.sp);
    free(s.st);
    srv_doc_free(doc);
    return st;
}

struct srv_doc *srv_doc_parse(const char *body, size_t len, struct nn_err *err)
{
    struct srv_doc *doc;
    srv_doc_parse_ex(body, len, SRV_DOC_MAX_DEPTH, &doc, err);
    return doc;
}

const cJSON *srv_doc_root(const struct srv_doc *doc) { return doc ? doc->root : NULL; }

size_t srv_doc_nspans(const struct srv_doc *doc) { return doc ? doc->nsp : 0; }

void srv_doc_free(struct srv_doc *doc)
{
    if (!doc)
        return;
    cJSON_Delete(doc->root);
    free(doc->sp);
    free(doc);
}

/* ---- numeric array access ------------------------------------------------------- */
static const struct span *ph_span(const struct srv_doc *doc, const cJSON *item)
{
    size_t idx, len;
    if (!doc || !item || !cJSON_IsRaw(item) || !item->valuestring)
        return NULL;
    if (!ph_match(item->valuestring, strlen(item->valuestring) + 1, &idx, &len, 1))
        return NULL;
    return idx < doc->nsp ? &doc->sp[idx] : NULL;
}

/* Shape of a cJSON array of numbers (nested, rectangular); 0 if it is not one. */
static int cj_shape(const cJSON *a, size_t *shape, int *ndim, int depth)
{
    if (!cJSON_IsArray(a) || depth >= NN_MAX_DIMS)
        return 0;
    size_t n = 0;
    int kind = K_NONE, cnd = 0;
    size_t csh[NN_MAX_DIMS];
    for (const cJSON *x = a->child; x; x = x->next, n++) {
        if (cJSON_IsNumber(x)) {
            if (kind == K_ARR)
                return 0;
            kind = K_NUM;
        } else {
            size_t sh[NN_MAX_DIMS];
            int nd;
            if (kind == K_NUM || !cj_shape(x, sh, &nd, depth + 1))
                return 0;
            if (kind == K_NONE) {
                kind = K_ARR;
                cnd = nd;
                memcpy(csh, sh, (size_t)nd * sizeof *sh);
            } else if (nd != cnd || memcmp(sh, csh, (size_t)nd * sizeof *sh) != 0)
                return 0;
        }
    }
    shape[0] = n;
    *ndim = 1;
    if (kind == K_ARR) {
        if (cnd + 1 > NN_MAX_DIMS)
            return 0;
        memcpy(shape + 1, csh, (size_t)cnd * sizeof *csh);
        *ndim = cnd + 1;
    }
    return 1;
}

int srv_doc_numarray(const struct srv_doc *doc, const cJSON *item, size_t shape[NN_MAX_DIMS],
                     int *ndim, size_t *numel)
{
    size_t sh[NN_MAX_DIMS] = {0}, n = 0;
    int nd = 0;
    const struct span *sp = ph_span(doc, item);
    if (sp) {
        nd = sp->ndim;
        memcpy(sh, sp->shape, sizeof sh);
        n = sp->numel;
    } else {
        if (!cj_shape(item, sh, &nd, 0))
            return 0;
        shape_product(sh, nd, &n, NULL);
    }
    if (shape)
        memcpy(shape, sh, sizeof sh);
    if (ndim)
        *ndim = nd;
    if (numel)
        *numel = n;
    return 1;
}

static const char *const num_names[SRV_NUM_COUNT] = {"float32", "float64", "int64"};

#define TWO53 9007199254740992.0

/* Token at p..q (valid JSON number) to int64. */
static enum nn_status tok_i64(const char *p, const char *q, int64_t *v, const char *where,
                              struct nn_err *err)
{
    int tlen = (int)(q - p > 40 ? 40 : q - p);
    const char *r = p;
    int neg = *r == '-';
    if (neg)
        r++;
    const char *digits = r;
    while (r < q && is_digit((uc)*r))
        r++;
    if (r == q) { /* plain integer: exact */
        uint64_t u = 0, lim = neg ? (uint64_t)INT64_MAX + 1 : (uint64_t)INT64_MAX;
        for (const char *d = digits; d < q; d++) {
            unsigned dv = (unsigned)(*d - '0');
            if (u > (lim - dv) / 10)
                goto range;
            u = u * 10 + dv;
        }
        if (!neg)
            *v = (int64_t)u;
        else
            *v = u == (uint64_t)INT64_MAX + 1 ? INT64_MIN : -(int64_t)u;
        return NN_OK;
    }
    double d;
    const char *stop;
    if (!srv_f64_parse(p, q, &d, &stop) || isinf(d))
        goto range;
    if (d != floor(d))
        return cerr(err, NN_EINVAL, "%s: %.*s is not an integer", where, tlen, p);
    if (fabs(d) >= TWO53) { /* a neighbour might have rounded here: not exact */
        if (fabs(d) >= 9223372036854775808.0)
            goto range;
        return cerr(err, NN_EINVAL,
                    "%s: %.*s is too large to be exact; write it as plain integer digits", where,
                    tlen, p);
    }
    *v = (int64_t)d;
    return NN_OK;
range:
    return cerr(err, NN_EINVAL, "%s: %.*s is out of range for int64", where, tlen, p);
}

static enum nn_status span_read(const struct srv_doc *doc, const struct span *sp, enum srv_num t,
                                void *dst, const char *where, struct nn_err *err)
{
    const char *p = doc->body + sp->off, *end = p + sp->len;
    const char *bad = NULL, *bad_end = NULL;
    size_t n = sp->numel, got;
    if (t == SRV_F32)
        got = srv_f32_parse_run(p, end, dst, n, &bad, &bad_end);
    else if (t == SRV_F64)
        got = srv_f64_parse_run(p, end, dst, n, &bad, &bad_end);
    else {
        int64_t *o = dst;
        for (size_t i = 0; i < n; i++) {
            while (p < end && !(*p == '-' || is_digit((uc)*p)))
                p++;
            const uc *bq, *q = num_end((const uc *)p, (const uc *)end, &bq);
            if (!q)
                abort(); /* validated by the scanner */
            enum nn_status st = tok_i64(p, (const char *)q, &o[i], where, err);
            if (st)
                return st;
            p = (const char *)q;
        }
        return NN_OK;
    }
    if (got == n)
        return NN_OK;
    if (bad_end <= bad) { /* fast_float refused a validated token: cannot happen */
        bad_end = bad;
        while (bad_end < end && *bad_end != ',' && *bad_end != ']')
            bad_end++;
    }
    return cerr(err, NN_EINVAL, "%s: %.*s is out of range for %s", where,
                (int)(bad_end - bad > 40 ? 40 : bad_end - bad), bad, num_names[t]);
}

static enum nn_status cj_read(const cJSON *a, enum srv_num t, void *dst, size_t *i,
                              const char *where, struct nn_err *err)
{
    for (const cJSON *x = a->child; x; x = x->next) {
        if (cJSON_IsArray(x)) {
            enum nn_status st = cj_read(x, t, dst, i, where, err);
            if (st)
                return st;
            continue;
        }
        double v = x->valuedouble;
        if (t == SRV_F64) {
            if (!isfinite(v))
                goto range;
            ((double *)dst)[*i] = v;
        } else if (t == SRV_F32) {
            float f = (float)v;
            if (!isfinite(f))
                goto range;
            ((float *)dst)[*i] = f;
        } else {
            if (!isfinite(v))
                goto range;
            if (v != floor(v))
                return cerr(err, NN_EINVAL, "%s: %.17g is not an integer", where, v);
            if (fabs(v) > TWO53)
                goto range;
            ((int64_t *)dst)[*i] = (int64_t)v;
        }
        (*i)++;
        continue;
    range:
        return cerr(err, NN_EINVAL, "%s: %.17g is out of range for %s", where, v, num_names[t]);
    }
    return NN_OK;
}

enum nn_status srv_doc_numarray_read(const struct srv_doc *doc, const cJSON *item, enum srv_num t,
                                     void *dst, size_t numel, const char *where, struct nn_err *err)
{
    size_t sh[NN_MAX_DIMS], n;
    int nd;
    if (!where)
        where = "value";
    if ((unsigned)t >= SRV_NUM_COUNT || !srv_doc_numarray(doc, item, sh, &nd, &n))
        return cerr(err, NN_EINVAL, "%s: expected an array of numbers", where);
    if (n != numel)
        return cerr(err, NN_EINVAL, "%s: has %zu values, expected %zu", where, n, numel);
    const struct span *sp = ph_span(doc, item);
    if (sp)
        return span_read(doc, sp, t, dst, where, err);
    size_t i = 0;
    return cj_read(item, t, dst, &i, where, err);
}

/* ---- tensors ------------------------------------------------------------------ */
static enum nn_status not_tensor(const char *where, struct nn_err *err)
{
    return cerr(err, NN_EINVAL, "%s: expected a tensor (nested arrays or {\"shape\", \"data\"})",
                where);
}

static enum nn_status too_big(const char *where, const size_t *sh, int nd, size_t max,
                              struct nn_err *err)
{
    char s[128];
    shape_fmt(s, sizeof s, sh, nd);
    return cerr(err, NN_ETOOBIG, "%s: shape %s is over the limit of %zu elements", where, s, max);
}

enum nn_status srv_doc_shape(const struct srv_doc *doc, const cJSON *item, int allow_scalar,
                             const char *where, size_t shape[NN_MAX_DIMS], int *ndim,
                             struct nn_err *err)
{
    size_t ssh[NN_MAX_DIMS], sn;
    int snd;
    if (!item || !srv_doc_numarray(doc, item, ssh, &snd, &sn) || snd != 1)
        return cerr(err, NN_EINVAL, "%s.shape: expected a flat array of dimensions", where);
    if (sn > NN_MAX_DIMS || (sn == 0 && !allow_scalar))
        return cerr(err, NN_EINVAL, "%s.shape: a tensor has %d to %d dimensions, got %zu", where,
                    allow_scalar ? 0 : 1, NN_MAX_DIMS, sn);
    int64_t dims[NN_MAX_DIMS];
    char w[96];
    snprintf(w, sizeof w, "%s.shape", where);
    enum nn_status st = srv_doc_numarray_read(doc, item, SRV_I64, dims, sn, w, err);
    if (st)
        return st;
    *ndim = (int)sn;
    for (int i = 0; i < *ndim; i++) {
        if (dims[i] < 0)
            return cerr(err, NN_EINVAL, "%s.shape[%d]: dimensions must be >= 0, got %lld", where, i,
                        (long long)dims[i]);
        shape[i] = (size_t)dims[i];
    }
    return NN_OK;
}

/* Common body of srv_doc_tensor and srv_doc_tensor_i64. Returns the data
 * buffer in *data (malloc'd). allow_scalar: rank 0 allowed (i64). */
static enum nn_status tensor_read(const struct srv_doc *doc, const cJSON *item, enum srv_num t,
                                  size_t esize, size_t max_elems, const char *where,
                                  int allow_scalar, size_t *shape, int *ndim, size_t *numel,
                                  void **data, enum srv_form *form, struct nn_err *err)
{
    size_t sh[NN_MAX_DIMS] = {0}, n, nz;
    int nd;
    const cJSON *data_item;
    if (!where)
        where = "tensor";
    *data = NULL;
    if (srv_doc_numarray(doc, item, sh, &nd, &n)) {
        if (max_elems && n > max_elems)
            return too_big(where, sh, nd, max_elems, err);
        data_item = item;
        if (form)
            *form = SRV_FORM_NESTED;
    } else if (allow_scalar && cJSON_IsNumber(item)) {
        int64_t v;
        double d = item->valuedouble;
        if (!isfinite(d) || fabs(d) > TWO53)
            return cerr(err, NN_EINVAL, "%s: %.17g is out of range for int64", where, d);
        if (d != floor(d))
            return cerr(err, NN_EINVAL, "%s: %.17g is not an integer", where, d);
        v = (int64_t)d;
        *data = malloc(sizeof v);
        if (!*data)
            return cerr(err, NN_ENOMEM, "out of memory");
        memcpy(*data, &v, sizeof v);
        memset(shape, 0, NN_MAX_DIMS * sizeof *shape);
        *ndim = 0;
        *numel = 1;
        if (form)
            *form = SRV_FORM_NESTED;
        return NN_OK;
    } else if (cJSON_IsObject(item)) {
        const cJSON *shape_item = NULL;
        data_item = NULL;
        for (const cJSON *k = item->child; k; k = k->next) {
            if (strcmp(k->string, "shape") == 0)
                shape_item = k;
            else if (strcmp(k->string, "data") == 0)
                data_item = k;
            else
                return cerr(err, NN_EINVAL,
                            "%s: unknown field \"%.*s\" in tensor (known: shape, data)", where,
                            utf8_cut(k->string, strlen(k->string), 48), k->string);
        }
        if (!shape_item)
            return cerr(err, NN_EINVAL, "%s: missing \"shape\"", where);
        if (!data_item)
            return cerr(err, NN_EINVAL, "%s: missing \"data\"", where);
        enum nn_status st = srv_doc_shape(doc, shape_item, allow_scalar, where, sh, &nd, err);
        if (st)
            return st;
        if (!shape_product(sh, nd, &n, &nz)) {
            char s[128];
            shape_fmt(s, sizeof s, sh, nd);
            return cerr(err, NN_ETOOBIG, "%s: shape %s has too many elements", where, s);
        }
        if (max_elems && (n > max_elems || nz > max_elems))
            return too_big(where, sh, nd, max_elems, err);
        size_t dsh[NN_MAX_DIMS], dn;
        int dnd;
        if (!srv_doc_numarray(doc, data_item, dsh, &dnd, &dn))
            return cerr(err, NN_EINVAL, "%s.data: expected an array of numbers", where);
        if (dn != n || (dnd > 1 && (dnd != nd || memcmp(dsh, sh, (size_t)nd * sizeof *sh)))) {
            char s1[128], s2[128];
            shape_fmt(s1, sizeof s1, sh, nd);
            if (dnd > 1 && dn == n) {
                shape_fmt(s2, sizeof s2, dsh, dnd);
                return cerr(err, NN_EINVAL, "%s: data has shape %s but shape is %s", where, s2, s1);
            }
            return cerr(err, NN_EINVAL, "%s: data has %zu value%s but shape %s needs %zu", where,
                        dn, dn == 1 ? "" : "s", s1, n);
        }
        if (form)
            *form = SRV_FORM_OBJECT;
    } else
        return not_tensor(where, err);

    void *buf = malloc(n ? n * esize : 1);
    if (!buf)
        return cerr(err, NN_ENOMEM, "out of memory");
    enum nn_status st = srv_doc_numarray_read(doc, data_item, t, buf, n, where, err);
    if (st) {
        free(buf);
        return st;
    }
    memcpy(shape, sh, NN_MAX_DIMS * sizeof *shape);
    *ndim = nd;
    *numel = n;
    *data = buf;
    return NN_OK;
}

enum nn_status srv_doc_tensor(const struct srv_doc *doc, const cJSON *item, enum nn_dtype dt,
                              size_t max_elems, const char *where, struct nn_tensor *t,
                              enum srv_form *form, struct nn_err *err)
{
    memset(t, 0, sizeof *t);
    if ((unsigned)dt >= NN_DTYPE_COUNT)
        return cerr(err, NN_EINVAL, "%s: bad dtype", where);
    t->dtype = dt;
    enum srv_num k = dt == NN_F32 ? SRV_F32 : SRV_F64;
    size_t es = dt == NN_F32 ? sizeof(float) : sizeof(double);
    enum nn_status st = tensor_read(doc, item, k, es, max_elems, where ? where : "tensor", 0,
                                    t->shape, &t->ndim, &t->numel, &t->data, form, err);
    if (st)
        memset(t, 0, sizeof *t), t->dtype = dt;
    return st;
}

enum nn_status srv_doc_tensor_i64(const struct srv_doc *doc, const cJSON *item, size_t max_elems,
                                  const char *where, size_t shape[NN_MAX_DIMS], int *ndim,
                                  int64_t **data, struct nn_err *err)
{
    size_t n;
    void *d = NULL;
    enum nn_status st = tensor_read(doc, item, SRV_I64, sizeof(int64_t), max_elems,
                                    where ? where : "tensor", 1, shape, ndim, &n, &d, NULL, err);
    *data = st ? NULL : d;
    return st;
}

/* ---- output ------------------------------------------------------------------- */
enum { E_TENSOR, E_NUMBER };

struct out_ent {
    int kind, form;
    struct nn_tensor t; /* E_TENSOR; data borrowed */
    double v;           /* E_NUMBER */
    enum nn_dtype dt;
    const cJSON *node;
};

struct srv_out {
    struct out_ent *e;
    size_t n, cap;
    enum nn_status st; /* why the last srv_out_print failed */
};

enum nn_status srv_out_status(const struct srv_out *o) { return o ? o->st : NN_ENOMEM; }

struct srv_out *srv_out_new(void) { return calloc(1, sizeof(struct srv_out)); }

void srv_out_free(struct srv_out *o)
{
    if (!o)
        return;
    free(o->e);
    free(o);
}

static cJSON *out_add(struct srv_out *o, const struct out_ent *en)
{
    if (o->n == o->cap) {
        size_t cap = o->cap ? o->cap * 2 : 8;
        struct out_ent *n = realloc(o->e, cap * sizeof *n);
        if (!n) {
            o->st = NN_ENOMEM;
            return NULL;
        }
        o->e = n;
        o->cap = cap;
    }
    char ph[PH_MAX];
    size_t len = ph_text(ph, o->n);
    ph[len] = '\0';
    cJSON *node = cJSON_CreateRaw(ph);
    if (!node) {
        o->st = NN_ENOMEM; /* srv_out_print refuses: never a reply with a value missing */
        return NULL;
    }
    o->e[o->n] = *en;
    o->e[o->n].node = node;
    o->n++;
    return node;
}

cJSON *srv_out_tensor(struct srv_out *o, const struct nn_tensor *t, int form)
{
    if (!o || !t || form < 0 || form >= SRV_FORM_COUNT || t->ndim < 0 || t->ndim > NN_MAX_DIMS ||
        (unsigned)t->dtype >= NN_DTYPE_COUNT || (t->numel && !t->data))
        return NULL;
    struct out_ent en;
    memset(&en, 0, sizeof en);
    en.kind = E_TENSOR;
    en.form = form;
    en.t = *t;
    en.dt = t->dtype;
    return out_add(o, &en);
}

cJSON *srv_out_number(struct srv_out *o, double v, enum nn_dtype dt)
{
    if (!o || (unsigned)dt >= NN_DTYPE_COUNT)
        return NULL;
    struct out_ent en;
    memset(&en, 0, sizeof en);
    en.kind = E_NUMBER;
    en.v = v;
    en.dt = dt;
    return out_add(o, &en);
}

static size_t sat_add(size_t a, size_t b) { return a > SIZE_MAX - b ? SIZE_MAX : a + b; }

static size_t sat_mul(size_t a, size_t b) { return b && a > SIZE_MAX / b ? SIZE_MAX : a * b; }

/* Upper bound of the text of one entry. */
static size_t ent_bound(const struct out_ent *en)
{
    size_t per = (en->dt == NN_F32 ? SRV_F32_MAXLEN : SRV_F64_MAXLEN) + 1;
    if (en->kind == E_NUMBER)
        return per;
    const struct nn_tensor *t = &en->t;
    size_t n = 1;
    for (int i = 0; i < t->ndim; i++)
        n = sat_mul(n, t->shape[i]);
    size_t b = sat_add(sat_mul(n, per), 8);
    if (en->form == SRV_FORM_NESTED) {
        size_t arrays = 1, prefix = 1;
        for (int i = 0; i + 1 < t->ndim; i++) {
            prefix = sat_mul(prefix, t->shape[i]);
            arrays = sat_add(arrays, prefix);
        }
        b = sat_add(b, sat_mul(arrays, 3));
    } else if (en->form == SRV_FORM_OBJECT)
        b = sat_add(b, 32 + 22 * (size_t)NN_MAX_DIMS);
    return b;
}

struct pctx {
    const struct out_ent *en;
    size_t off; /* values written so far */
    size_t bad; /* index of a non-finite value, or SIZE_MAX */
};

static char *put_row(char *p, struct pctx *c, size_t n)
{
    size_t bad = 0, w;
    if (n == 0)
        return p;
    const void *data = c->en->t.data;
    if (c->en->dt == NN_F32)
        w = srv_f32_row_to_str(p, (const float *)data + c->off, n, &bad);
    else
        w = srv_f64_row_to_str(p, (const double *)data + c->off, n, &bad);
    if (w == SIZE_MAX) {
        c->bad = c->off + bad;
        return NULL;
    }
    c->off += n;
    return p + w;
}

static char *put_nested(char *p, struct pctx *c, int d)
{
    const struct nn_tensor *t = &c->en->t;
    *p++ = '[';
    if (d == t->ndim - 1) {
        if (!(p = put_row(p, c, t->shape[d])))
            return NULL;
    } else {
        for (size_t i = 0; i < t->shape[d]; i++) {
            if (i)
                *p++ = ',';
            if (!(p = put_nested(p, c, d + 1)))
                return NULL;
        }
    }
    *p++ = ']';
    return p;
}

static char *put_ent(char *p, struct pctx *c)
{
    const struct out_ent *en = c->en;
    if (en->kind == E_NUMBER) {
        if (en->dt == NN_F32) {
            float f = (float)en->v;
            if (!isfinite(f))
                goto bad;
            return p + srv_f32_to_str(f, p);
        }
        if (!isfinite(en->v))
            goto bad;
        return p + srv_f64_to_str(en->v, p);
    bad:
        c->bad = 0;
        return NULL;
    }
    const struct nn_tensor *t = &en->t;
    size_t n = 1;
    for (int i = 0; i < t->ndim; i++)
        n *= t->shape[i];
    switch (en->form) {
    case SRV_FORM_NESTED:
        if (t->ndim == 0)
            return put_row(p, c, 1);
        return put_nested(p, c, 0);
    case SRV_FORM_FLAT:
        *p++ = '[';
        if (!(p = put_row(p, c, n)))
            return NULL;
        *p++ = ']';
        return p;
    default: /* SRV_FORM_OBJECT */
        memcpy(p, "{\"shape\":[", 10);
        p += 10;
        for (int i = 0; i < t->ndim; i++)
            p += sprintf(p, "%s%zu", i ? "," : "", t->shape[i]);
        memcpy(p, "],\"data\":[", 10);
        p += 10;
        if (!(p = put_row(p, c, n)))
            return NULL;
        memcpy(p, "]}", 2);
        return p + 2;
    }
}

/* Path of node in root ("gradients.layers[1].weight"); 1 if found. */
static int find_path(const cJSON *cur, const cJSON *node, char *buf, size_t cap, size_t o)
{
    if (cur == node)
        return 1;
    if (!cJSON_IsArray(cur) && !cJSON_IsObject(cur))
        return 0;
    size_t i = 0;
    for (const cJSON *k = cur->child; k; k = k->next, i++) {
        int w = cJSON_IsArray(cur) ? snprintf(buf + o, cap - o, "[%zu]", i)
                                   : snprintf(buf + o, cap - o, "%s%.*s", o ? "." : "",
                                              utf8_cut(k->string ? k->string : "",
                                                       k->string ? strlen(k->string) : 0, 48),
                                              k->string ? k->string : "");
        size_t no = o + (w > 0 ? (size_t)w : 0);
        if (no >= cap)
            no = cap - 1;
        if (find_path(k, node, buf, cap, no))
            return 1;
        buf[o] = '\0';
    }
    return 0;
}

struct hit {
    size_t pos, len, idx;
};

char *srv_out_print(struct srv_out *o, const cJSON *root, size_t *len, struct nn_err *err)
{
    char *txt = NULL, *out = NULL;
    struct hit *hits = NULL;
    size_t nh = 0, caph = 0;
    if (len)
        *len = 0;
    if (!o || !root) {
        cerr(err, NN_EINVAL, "nothing to print");
        return NULL;
    }
    if (o->st == NN_ENOMEM) /* a placeholder could not be made: a value would be missing */
        goto nomem;
    txt = cJSON_PrintUnformatted(root);
    if (!txt)
        goto nomem;
    size_t tlen = strlen(txt), bound = tlen + 1;
    for (const char *p = txt; (p = memchr(p, '\x01', tlen - (size_t)(p - txt)));) {
        size_t idx, plen;
        if (!ph_match(p, tlen - (size_t)(p - txt), &idx, &plen, 0) || idx >= o->n) {
            p++;
            continue;
        }
        if (nh == caph) {
            size_t cap = caph ? caph * 2 : 16;
            struct hit *n = realloc(hits, cap * sizeof *n);
            if (!n)
                goto nomem;
            hits = n;
            caph = cap;
        }
        hits[nh].pos = (size_t)(p - txt);
        hits[nh].len = plen;
        hits[nh].idx = idx;
        nh++;
        bound = sat_add(bound, ent_bound(&o->e[idx]));
        p += plen;
    }
    /* every placeholder made must be in the tree: one that is not was dropped by a
       cJSON_Add... that could not allocate */
    if (nh != o->n)
        goto nomem;
    if (bound == SIZE_MAX || !(out = malloc(bound)))
        goto nomem;
    {
        char *w = out;
        size_t from = 0;
        for (size_t i = 0; i < nh; i++) {
            memcpy(w, txt + from, hits[i].pos - from);
            w += hits[i].pos - from;
            struct pctx c = {&o->e[hits[i].idx], 0, SIZE_MAX};
            char *nw = put_ent(w, &c);
            if (!nw) {
                char path[160] = "";
                const char *vs;
                double v = c.en->kind == E_NUMBER ? (c.en->dt == NN_F32 ? (float)c.en->v : c.en->v)
                           : c.en->dt == NN_F32   ? ((const float *)c.en->t.data)[c.bad]
                                                  : ((const double *)c.en->t.data)[c.bad];
                vs = isnan(v) ? "nan" : v < 0 ? "-inf" : "inf";
                if (!find_path(root, c.en->node, path, sizeof path, 0) || !path[0])
                    snprintf(path, sizeof path, "response");
                o->st = NN_ENONFINITE;
                if (c.en->kind == E_NUMBER)
                    cerr(err, NN_ENONFINITE, "%s: non-finite value %s cannot be written as JSON",
                         path, vs);
                else
                    cerr(err, NN_ENONFINITE,
                         "%s: non-finite value %s at index %zu cannot be written as JSON", path, vs,
                         c.bad);
                free(out);
                out = NULL;
                goto done;
            }
            w = nw;
            from = hits[i].pos + hits[i].len;
        }
        memcpy(w, txt + from, tlen - from);
        w += tlen - from;
        *w = '\0';
        size_t olen = (size_t)(w - out);
        if (len)
            *len = olen;
        if (bound - olen > 65536 && bound / 4 > olen) { /* give back a gross over-estimate */
            char *s = realloc(out, olen + 1);
            if (s)
                out = s;
        }
    }
done:
    free(txt);
    free(hits);
    return out;
nomem:
    o->st = NN_ENOMEM;
    cerr(err, NN_ENOMEM, "out of memory while writing the response");
    free(txt);
    free(hits);
    free(out);
    return NULL;
}
