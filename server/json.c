/* The JSON reader: see json.h.
 *
 * One pass over the text: parse_doc() walks it with an explicit stack of open containers
 * and appends one node per value to a growing array. At every '[' numeric() first tries
 * to read the whole array as numbers and arrays of numbers: a byte loop that finds the
 * tokens, counts them per level and checks the shape is rectangular, without converting
 * anything (srv_json_read converts, and checks each number's grammar, when the caller
 * asks, into the caller's buffer). When it meets a string, an object, a literal or a rank
 * over 8 it gives up and the array is read as a generic one: it gives up at the first such
 * byte, and a byte is re-read at most once per level it is nested in (8). */
#include "server/json.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "server/numconv.h"

#if defined(__SSE2__)
#include <emmintrin.h>
#endif

typedef unsigned char uc;

const char *const srv_num_names[SRV_NUM_COUNT] = {"float32", "float64", "int64"};

enum { ESC_VAL = 1, ESC_KEY = 2 };

struct node {
    uint8_t type;     /* enum srv_jtype */
    uint8_t esc;      /* ESC_*: the string / the key holds backslash escapes */
    uint8_t ndim;     /* numeric arrays */
    uint8_t has_key;  /* an object member */
    uint32_t next;    /* next sibling (srv_jv), 0 = last */
    uint32_t child;   /* arrays, objects: first child (srv_jv); numeric arrays: shape row */
    uint32_t count;   /* arrays, objects: children */
    uint64_t off;     /* strings: after the quote; others: the first byte */
    uint64_t len;     /* strings: up to the closing quote; others: the whole text */
    uint64_t key_off; /* members: the key, after its quote */
    uint32_t key_len;
};

struct srv_json {
    const char *text;
    size_t len;
    struct node *n;
    size_t nn, capn;
    size_t (*shapes)[NN_MAX_DIMS];
    size_t nsh, capsh;
};

/* ---- messages ------------------------------------------------------------------------- */
/* Longest prefix of s[0..n) of at most max bytes that does not split a UTF-8 sequence. */
static int utf8_cut(const char *s, size_t n, size_t max)
{
    if (n <= max)
        return (int)n;
    size_t k = max;
    while (k > 0 && ((uc)s[k] & 0xc0) == 0x80)
        k--;
    return (int)k;
}

static void shape_fmt(char *buf, size_t cap, const size_t *shape, int ndim)
{
    size_t o = (size_t)snprintf(buf, cap, "[");
    for (int i = 0; i < ndim && o < cap; i++)
        o += (size_t)snprintf(buf + o, cap - o, "%s%zu", i ? ", " : "", shape[i]);
    if (o < cap)
        snprintf(buf + o, cap - o, "]");
}

/* ---- the parser's state ------------------------------------------------------------------ */
struct frame {
    uint32_t node; /* the container's index */
    uint32_t last; /* its last child (srv_jv), 0 none yet */
    int is_arr;
    size_t cnt;              /* children started */
    size_t key_off, key_len; /* objects: the current member's key (raw) */
    int key_esc;
};

struct parser {
    struct srv_json *d;
    const uc *b, *e;
    struct frame st[SRV_JSON_MAX_DEPTH];
    int depth;
    size_t max_values;
    enum nn_status code;
    struct nn_err *err;
};

static int is_digit(uc c) { return (unsigned)(c - '0') < 10u; }
static int is_ws(uc c) { return c == ' ' || c == '\n' || c == '\r' || c == '\t'; }

static const uc *skip_ws(const uc *p, const uc *e)
{
    while (p < e && is_ws(*p))
        p++;
    return p;
}

static int perr(struct parser *ps, enum nn_status st, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static int perr(struct parser *ps, enum nn_status st, const char *fmt, ...)
{
    if (ps->err) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(ps->err->msg, sizeof ps->err->msg, fmt, ap);
        va_end(ap);
    }
    ps->code = st;
    return -1;
}

static int syn(struct parser *ps, const uc *at, const char *what)
{
    size_t off = (size_t)(at - ps->b);
    if (at >= ps->e)
        return perr(ps, NN_EINVAL, "invalid JSON at byte %zu: unexpected end of input", off);
    if (*at >= 0x21 && *at < 0x7f)
        return perr(ps, NN_EINVAL, "invalid JSON at byte %zu: %s, got '%c'", off, what, *at);
    return perr(ps, NN_EINVAL, "invalid JSON at byte %zu: %s, got byte 0x%02x", off, what, *at);
}

/* NaN or Infinity, signed or not, at p. */
static int nonfinite_word(const uc *p, const uc *e)
{
    p += p < e && (*p == '-' || *p == '+');
    return (e - p >= 3 && !memcmp(p, "NaN", 3)) || (e - p >= 8 && !memcmp(p, "Infinity", 8));
}

/* What to say where a value was expected: NaN and Infinity get a hint. */
static const char *not_a_value(const uc *p, const uc *e)
{
    if (nonfinite_word(p, e))
        return "expected a value (NaN and Infinity are not JSON numbers, and relud takes finite "
               "values only)";
    return "expected a value";
}

/* Path of the value being read at the current depth: "layers[1].weight". */
static size_t path(const struct parser *ps, int depth, char *buf, size_t cap)
{
    size_t o = 0;
    buf[0] = '\0';
    for (int i = 0; i < depth && o + 1 < cap; i++) {
        const struct frame *f = &ps->st[i];
        int n;
        if (f->is_arr)
            n = snprintf(buf + o, cap - o, "[%zu]", f->cnt ? f->cnt - 1 : 0);
        else
            n = snprintf(buf + o, cap - o, "%s%.*s", o ? "." : "",
                         utf8_cut((const char *)ps->b + f->key_off, f->key_len, 48),
                         (const char *)ps->b + f->key_off);
        if (n < 0)
            break;
        o += (size_t)n;
        if (o >= cap)
            o = cap - 1;
    }
    return o;
}

/* Appends a node as the next child of the open container (if any); returns its index. */
static long add_node(struct parser *ps, enum srv_jtype type, const uc *at)
{
    struct srv_json *d = ps->d;
    if (d->nn >= ps->max_values)
        return perr(ps, NN_ETOOBIG,
                    "body: more than max_json_values (%zu) JSON values (numeric arrays count as "
                    "one)",
                    ps->max_values);
    if (d->nn == d->capn) {
        size_t cap = d->capn ? d->capn * 2 : 64;
        if (cap > ps->max_values)
            cap = ps->max_values;
        struct node *n = realloc(d->n, cap * sizeof *n);
        if (!n)
            return perr(ps, NN_ENOMEM, "out of memory");
        d->n = n;
        d->capn = cap;
    }
    uint32_t idx = (uint32_t)d->nn++;
    struct node *x = &d->n[idx];
    memset(x, 0, sizeof *x);
    x->type = (uint8_t)type;
    x->off = (uint64_t)(at - ps->b);
    if (ps->depth > 0) {
        struct frame *f = &ps->st[ps->depth - 1];
        struct node *parent = &d->n[f->node];
        if (f->last)
            d->n[f->last - 1].next = idx + 1;
        else
            parent->child = idx + 1;
        f->last = idx + 1;
        parent->count++;
        if (!f->is_arr) {
            x->has_key = 1;
            x->key_off = f->key_off;
            x->key_len = (uint32_t)f->key_len;
            x->esc |= f->key_esc ? ESC_KEY : 0;
        }
    }
    return idx;
}

/* ---- strings ------------------------------------------------------------------------------ */
static int hex4(const uc *p, unsigned *v)
{
    unsigned r = 0;
    for (int i = 0; i < 4; i++) {
        uc c = p[i];
        unsigned dv;
        if (c >= '0' && c <= '9')
            dv = (unsigned)(c - '0');
        else if ((c | 0x20) >= 'a' && (c | 0x20) <= 'f')
            dv = (unsigned)((c | 0x20) - 'a' + 10);
        else
            return 0;
        r = r << 4 | dv;
    }
    *v = r;
    return 1;
}

/* Length of the valid UTF-8 sequence at p (lead byte >= 0x80), or 0. */
static size_t utf8_len(const uc *p, const uc *e)
{
    uc c = p[0], lo = 0x80, hi = 0xbf;
    size_t n;
    if (c >= 0xc2 && c <= 0xdf)
        n = 2;
    else if (c >= 0xe0 && c <= 0xef) {
        n = 3;
        lo = c == 0xe0 ? 0xa0 : lo;
        hi = c == 0xed ? 0x9f : hi; /* no UTF-16 surrogates */
    } else if (c >= 0xf0 && c <= 0xf4) {
        n = 4;
        lo = c == 0xf0 ? 0x90 : lo;
        hi = c == 0xf4 ? 0x8f : hi; /* <= U+10FFFF */
    } else
        return 0;
    if ((size_t)(e - p) < n || p[1] < lo || p[1] > hi)
        return 0;
    for (size_t i = 2; i < n; i++)
        if ((p[i] & 0xc0) != 0x80)
            return 0;
    return n;
}

/* p at the opening quote; returns the byte after the closing quote or NULL; *esc when the
 * string holds escapes. */
static const uc *scan_string(struct parser *ps, const uc *p, int *esc)
{
    const uc *e = ps->e;
    *esc = 0;
    p++;
    for (;;) {
        while (p < e && *p >= 0x20 && *p < 0x80 && *p != '"' && *p != '\\')
            p++;
        if (p >= e) {
            perr(ps, NN_EINVAL, "invalid JSON at byte %zu: unterminated string",
                 (size_t)(p - ps->b));
            return NULL;
        }
        uc c = *p;
        if (c == '"')
            return p + 1;
        if (c == '\\') {
            *esc = 1;
            if (e - p < 2) {
                syn(ps, e, "");
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
                perr(ps, NN_EINVAL, "invalid JSON at byte %zu: invalid escape in string",
                     (size_t)(p - ps->b));
                return NULL;
            }
            unsigned cp, lo;
            if (e - p < 6 || !hex4(p + 2, &cp))
                goto bad_u;
            if (cp == 0) {
                perr(ps, NN_EINVAL, "invalid JSON at byte %zu: \\u0000 in strings is not supported",
                     (size_t)(p - ps->b));
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
            perr(ps, NN_EINVAL, "invalid JSON at byte %zu: invalid \\u escape in string",
                 (size_t)(p - ps->b));
            return NULL;
        }
        if (c < 0x20) {
            perr(ps, NN_EINVAL,
                 "invalid JSON at byte %zu: control character 0x%02x in string (escape it)",
                 (size_t)(p - ps->b), c);
            return NULL;
        }
        size_t n = utf8_len(p, e);
        if (!n) {
            perr(ps, NN_EINVAL, "invalid JSON at byte %zu: invalid UTF-8 in string",
                 (size_t)(p - ps->b));
            return NULL;
        }
        p += n;
    }
}

/* Unescapes the string text s[0..n) (valid, as scanned) into dst (room for n bytes);
 * returns the length. */
static size_t unescape(const char *s, size_t n, char *dst)
{
    size_t o = 0;
    for (size_t i = 0; i < n;) {
        if (s[i] != '\\') {
            dst[o++] = s[i++];
            continue;
        }
        char c = s[i + 1];
        i += 2;
        switch (c) {
        case 'b': dst[o++] = '\b'; continue;
        case 'f': dst[o++] = '\f'; continue;
        case 'n': dst[o++] = '\n'; continue;
        case 'r': dst[o++] = '\r'; continue;
        case 't': dst[o++] = '\t'; continue;
        case 'u': break;
        default: dst[o++] = c; continue; /* " \ / */
        }
        unsigned cp = 0, lo = 0xdc00;
        hex4((const uc *)s + i, &cp);
        i += 4;
        if (cp >= 0xd800 && cp <= 0xdbff) {
            hex4((const uc *)s + i + 2, &lo);
            i += 6;
            cp = 0x10000 + ((cp - 0xd800) << 10) + (lo - 0xdc00);
        }
        if (cp < 0x80)
            dst[o++] = (char)cp;
        else if (cp < 0x800) {
            dst[o++] = (char)(0xc0 | cp >> 6);
            dst[o++] = (char)(0x80 | (cp & 0x3f));
        } else if (cp < 0x10000) {
            dst[o++] = (char)(0xe0 | cp >> 12);
            dst[o++] = (char)(0x80 | ((cp >> 6) & 0x3f));
            dst[o++] = (char)(0x80 | (cp & 0x3f));
        } else {
            dst[o++] = (char)(0xf0 | cp >> 18);
            dst[o++] = (char)(0x80 | ((cp >> 12) & 0x3f));
            dst[o++] = (char)(0x80 | ((cp >> 6) & 0x3f));
            dst[o++] = (char)(0x80 | (cp & 0x3f));
        }
    }
    return o;
}

/* ---- numbers -------------------------------------------------------------------------------- */
/* End of the strict JSON number at p (p < e), or NULL with *bad the offending byte. */
static const uc *num_end(const uc *p, const uc *e, const uc **bad)
{
    const uc *s0 = p + (*p == '-'), *q;
    for (p = s0; p < e && is_digit(*p); p++)
        ;
    if (p == s0 || (*s0 == '0' && p - s0 > 1)) {
        *bad = p == s0 ? p : s0 + 1;
        return NULL;
    }
    if (p < e && *p == '.') {
        for (q = p + 1; q < e && is_digit(*q); q++)
            ;
        if (q == p + 1) {
            *bad = q;
            return NULL;
        }
        p = q;
    }
    if (p < e && (*p | 0x20) == 'e') {
        p++;
        if (p < e && (*p == '+' || *p == '-'))
            p++;
        for (q = p; q < e && is_digit(*q); q++)
            ;
        if (q == p) {
            *bad = q;
            return NULL;
        }
        p = q;
    }
    if (p < e && (is_digit(*p) || *p == '.' || ((*p | 0x20) >= 'a' && (*p | 0x20) <= 'z') ||
                  *p == '+' || *p == '-')) {
        *bad = p;
        return NULL;
    }
    return p;
}

/* ---- numeric arrays ------------------------------------------------------------------------ */
enum { K_NONE, K_NUM, K_ARR };

struct nlevel {
    size_t cnt;              /* elements started */
    int kind;                /* of element [0] */
    int cnd;                 /* element [0]'s rank when an array (-1 until it closes) */
    size_t csh[NN_MAX_DIMS]; /* element [0]'s shape when an array */
};

/* Bytes a number token may hold; its grammar is checked when it is read. */
static const uc tok[256] = {
    ['0'] = 1, ['1'] = 1, ['2'] = 1, ['3'] = 1, ['4'] = 1, ['5'] = 1, ['6'] = 1, ['7'] = 1,
    ['8'] = 1, ['9'] = 1, ['-'] = 1, ['+'] = 1, ['.'] = 1, ['e'] = 1, ['E'] = 1,
};

/* The bytes p..q hold only number bytes, white space and commas (then they are one row of
 * numbers: q is its ']'); *commas counts the commas. 16 bytes a step with SSE2 (every
 * x86-64 CPU has it); the separators and each number's grammar are checked when the row is
 * read. */
static int flat_row(const uc *p, const uc *q, size_t *commas)
{
    size_t c = 0;
#if defined(__SSE2__)
    const __m128i comma = _mm_set1_epi8(','), lo = _mm_set1_epi8('0' - 1),
                  hi = _mm_set1_epi8('9' + 1), minus = _mm_set1_epi8('-'),
                  plus = _mm_set1_epi8('+'), dot = _mm_set1_epi8('.'), e20 = _mm_set1_epi8(0x20),
                  elow = _mm_set1_epi8('e'), space = _mm_set1_epi8(' '), nl = _mm_set1_epi8('\n'),
                  cr = _mm_set1_epi8('\r'), tab = _mm_set1_epi8('\t');
    for (; q - p >= 16; p += 16) {
        __m128i v = _mm_loadu_si128((const __m128i *)(const void *)p);
        __m128i isc = _mm_cmpeq_epi8(v, comma);
        __m128i ok = _mm_and_si128(_mm_cmpgt_epi8(v, lo), _mm_cmplt_epi8(v, hi));
        ok = _mm_or_si128(ok, isc);
        ok = _mm_or_si128(ok, _mm_cmpeq_epi8(v, minus));
        ok = _mm_or_si128(ok, _mm_cmpeq_epi8(v, plus));
        ok = _mm_or_si128(ok, _mm_cmpeq_epi8(v, dot));
        ok = _mm_or_si128(ok, _mm_cmpeq_epi8(_mm_or_si128(v, e20), elow));
        ok = _mm_or_si128(ok, _mm_cmpeq_epi8(v, space));
        ok = _mm_or_si128(ok, _mm_cmpeq_epi8(v, nl));
        ok = _mm_or_si128(ok, _mm_cmpeq_epi8(v, cr));
        ok = _mm_or_si128(ok, _mm_cmpeq_epi8(v, tab));
        if (_mm_movemask_epi8(ok) != 0xffff)
            return 0;
        c += (size_t)__builtin_popcount((unsigned)_mm_movemask_epi8(isc));
    }
#endif
    for (; p < q; p++) {
        uc x = *p;
        c += x == ',';
        if (!(is_digit(x) || x == ',' || x == '-' || x == '.' || (x | 0x20) == 'e' || x == '+' ||
              is_ws(x)))
            return 0;
    }
    *commas = c;
    return 1;
}

/* After a ragged element at p (with `open` arrays open there): the array is a ragged numeric
 * one only if nothing but numbers and arrays of numbers (rank <= 8) follow up to its ']'. A
 * string, object or literal further on makes it a generic array (0), as does any other
 * byte (the generic reader then says what is wrong). */
static int still_numeric(const uc *p, const uc *e, int open)
{
    for (; p < e; p++) {
        if (*p == '[') {
            if (++open > NN_MAX_DIMS)
                return 0;
        } else if (*p == ']') {
            if (--open == 0)
                return 1;
        } else if (!tok[*p] && *p != ',' && !is_ws(*p)) {
            return 0;
        }
    }
    return 0;
}

/* The ragged-array error, or 0 (read the array as a generic one) when it holds a
 * non-number further on. */
static int ragged(struct parser *ps, const struct nlevel *L, int d, int kindk, int ndk,
                  const size_t *shk, size_t start, const uc *p, int open)
{
    if (!still_numeric(p, ps->e, open))
        return 0;
    char at[160], sub[160], s0[96], sk[96];
    size_t o = path(ps, ps->depth, at, sizeof at);
    snprintf(sub, sizeof sub, "%s", at);
    for (int i = 0; i < d; i++) {
        size_t m = strlen(sub);
        snprintf(sub + m, sizeof sub - m, "[%zu]", L[i].cnt - 1);
    }
    char head[200];
    if (o)
        snprintf(head, sizeof head, "%.160s: ragged array", at);
    else
        snprintf(head, sizeof head, "ragged array at byte %zu", start);
    size_t k = L[d].cnt - 1;
    if (kindk == K_ARR && L[d].kind == K_ARR) {
        shape_fmt(sk, sizeof sk, shk, ndk);
        shape_fmt(s0, sizeof s0, L[d].csh, L[d].cnd);
        return perr(ps, NN_EINVAL, "%s: %s[%zu] has shape %s but %s[0] has shape %s", head, sub, k,
                    sk, sub, s0);
    }
    return perr(ps, NN_EINVAL, "%s: %s[%zu] is %s but %s[0] is %s", head, sub, k,
                kindk == K_ARR ? "an array" : "a number", sub,
                L[d].kind == K_ARR ? "an array" : "a number");
}

/* Reads the array at b[start] == '[' as a numeric array: 1 with a node added and *end after
 * its ']'; 0 when it is not one (a string, object or literal inside, or rank > 8: read it as
 * a generic array); -1 on an error. */
static int numeric(struct parser *ps, size_t start, size_t *end)
{
    const uc *b = ps->b, *e = ps->e, *p = b + start + 1;
    struct nlevel L[NN_MAX_DIMS];
    int d = 0;
    L[0].cnt = 0, L[0].kind = K_NONE, L[0].cnd = 0;
    for (;;) {
        /* a value, or ']' when the array is still empty */
        p = skip_ws(p, e);
        if (p >= e)
            return syn(ps, p, "");
        uc c = *p;
        if (c == ']' && L[d].cnt == 0)
            goto close;
        L[d].cnt++;
        if (c == '-' || is_digit(c)) {
            if (c == '-' && nonfinite_word(p, e)) /* -Infinity, -NaN */
                return syn(ps, p, not_a_value(p, e));
            if (L[d].kind == K_NONE)
                L[d].kind = K_NUM;
            else if (L[d].kind == K_ARR)
                return ragged(ps, L, d, K_NUM, 0, NULL, start, p, d + 1);
            size_t commas;
            const uc *rb;
            if (L[d].cnt == 1 && (rb = memchr(p, ']', (size_t)(e - p))) &&
                flat_row(p, rb, &commas)) {
                /* the common case: a whole row of numbers up to its ']' */
                L[d].cnt = commas + 1;
                p = rb;
                goto close;
            }
            for (;;) { /* a run of numbers, skipped, not converted */
                while (p < e && tok[*p])
                    p++;
                while (p < e && is_ws(*p))
                    p++;
                if (p >= e)
                    return syn(ps, p, "");
                if (*p == ',') {
                    p++;
                    while (p < e && is_ws(*p))
                        p++;
                    if (p < e && (is_digit(*p) || (*p == '-' && !nonfinite_word(p, e)))) {
                        L[d].cnt++;
                        continue;
                    }
                    break; /* another kind of value follows: the outer loop sees it */
                }
                if (*p == ']')
                    goto close;
                return syn(ps, p, "expected ',' or ']'");
            }
            continue;
        }
        if (c == '[') {
            if (d + 1 == NN_MAX_DIMS)
                return 0; /* rank > 8: not a tensor */
            if (L[d].kind == K_NONE)
                L[d].kind = K_ARR, L[d].cnd = -1; /* shape known when it closes */
            else if (L[d].kind == K_NUM)
                return ragged(ps, L, d, K_ARR, 0, NULL, start, p, d + 1);
            d++;
            L[d].cnt = 0, L[d].kind = K_NONE, L[d].cnd = 0;
            p++;
            continue;
        }
        if (c == '"' || c == '{' || c == 't' || c == 'f' || c == 'n')
            return 0;
        return syn(ps, p, not_a_value(p, e));

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
                struct srv_json *doc = ps->d;
                long idx = add_node(ps, SRV_J_NUMARRAY, b + start);
                if (idx < 0)
                    return -1;
                if (doc->nsh == doc->capsh) {
                    size_t cap = doc->capsh ? doc->capsh * 2 : 8;
                    size_t(*ns)[NN_MAX_DIMS] = realloc(doc->shapes, cap * sizeof *ns);
                    if (!ns)
                        return perr(ps, NN_ENOMEM, "out of memory");
                    doc->shapes = ns;
                    doc->capsh = cap;
                }
                memset(doc->shapes[doc->nsh], 0, sizeof doc->shapes[0]);
                memcpy(doc->shapes[doc->nsh], sh, (size_t)nd * sizeof *sh);
                struct node *x = &doc->n[idx];
                x->child = (uint32_t)doc->nsh++;
                x->ndim = (uint8_t)nd;
                x->len = (uint64_t)(p - b) - start;
                *end = (size_t)(p - b);
                return 1;
            }
            struct nlevel *up = &L[d - 1];
            if (up->kind == K_ARR) {
                if (up->cnd < 0) { /* this was element [0] */
                    up->cnd = nd;
                    memcpy(up->csh, sh, (size_t)nd * sizeof *sh);
                } else if (up->cnd != nd || memcmp(up->csh, sh, (size_t)nd * sizeof *sh) != 0) {
                    return ragged(ps, L, d - 1, K_ARR, nd, sh, start, p, d);
                }
            }
            d--;
        }
        /* after a value: ',' or ']' */
        p = skip_ws(p, e);
        if (p >= e)
            return syn(ps, p, "");
        if (*p == ']')
            goto close;
        if (*p != ',')
            return syn(ps, p, "expected ',' or ']'");
        p++;
    }
}

/* ---- duplicate keys --------------------------------------------------------------------------- */
struct keyview {
    const char *p;
    size_t n;
};

static int keyview_cmp(const void *a, const void *b)
{
    const struct keyview *x = a, *y = b;
    int c = memcmp(x->p, y->p, x->n < y->n ? x->n : y->n);
    return c ? c : (x->n > y->n) - (x->n < y->n);
}

/* The object obj has no key twice (compared unescaped); -1 with the message otherwise. */
static int no_duplicates(struct parser *ps, uint32_t obj)
{
    struct srv_json *d = ps->d;
    size_t k = d->n[obj].count;
    if (k < 2)
        return 0;
    struct keyview *kv = malloc(k * sizeof *kv);
    char *tmp = NULL;
    size_t tlen = 0;
    if (!kv)
        return perr(ps, NN_ENOMEM, "out of memory");
    for (uint32_t c = d->n[obj].child; c; c = d->n[c - 1].next)
        if (d->n[c - 1].esc & ESC_KEY)
            tlen += d->n[c - 1].key_len;
    if (tlen && !(tmp = malloc(tlen))) {
        free(kv);
        return perr(ps, NN_ENOMEM, "out of memory");
    }
    size_t i = 0, t = 0;
    for (uint32_t c = d->n[obj].child; c; c = d->n[c - 1].next, i++) {
        const struct node *x = &d->n[c - 1];
        const char *raw = d->text + x->key_off;
        if (x->esc & ESC_KEY) {
            kv[i].p = tmp + t;
            kv[i].n = unescape(raw, x->key_len, tmp + t);
            t += x->key_len;
        } else {
            kv[i].p = raw;
            kv[i].n = x->key_len;
        }
    }
    const struct keyview *dup = NULL;
    if (k <= 8) {
        for (size_t a = 0; a < k && !dup; a++)
            for (size_t b2 = a + 1; b2 < k && !dup; b2++)
                if (!keyview_cmp(&kv[a], &kv[b2]))
                    dup = &kv[a];
    } else {
        qsort(kv, k, sizeof *kv, keyview_cmp);
        for (i = 1; i < k && !dup; i++)
            if (!keyview_cmp(&kv[i - 1], &kv[i]))
                dup = &kv[i];
    }
    int rc = 0;
    if (dup) {
        char at[160];
        path(ps, ps->depth, at, sizeof at);
        rc = perr(ps, NN_EINVAL, "%s%sduplicate key \"%.*s\"", at, at[0] ? ": " : "",
                  utf8_cut(dup->p, dup->n, 64), dup->p);
    }
    free(kv);
    free(tmp);
    return rc;
}

/* ---- the document ------------------------------------------------------------------------------ */
static int push(struct parser *ps, uint32_t node, int is_arr, const uc *at)
{
    if (ps->depth == SRV_JSON_MAX_DEPTH)
        return perr(ps, NN_EINVAL, "invalid JSON at byte %zu: nesting deeper than %d",
                    (size_t)(at - ps->b), SRV_JSON_MAX_DEPTH);
    struct frame *f = &ps->st[ps->depth++];
    memset(f, 0, sizeof *f);
    f->node = node;
    f->is_arr = is_arr;
    return 0;
}

static int parse_doc(struct parser *ps)
{
    const uc *b = ps->b, *e = ps->e, *p = b;
    struct frame *top;
    long idx;
    if (skip_ws(p, e) == e)
        return perr(ps, NN_EINVAL, "invalid JSON: empty body");
value:
    p = skip_ws(p, e);
    if (p >= e)
        return syn(ps, p, "");
    switch (*p) {
    case '[': {
        size_t end = 0;
        int r = numeric(ps, (size_t)(p - b), &end);
        if (r < 0)
            return -1;
        if (r > 0) {
            p = b + end;
            goto after;
        }
        goto container; /* not numeric: a generic array */
    }
    case '{':
    container:
        if ((idx = add_node(ps, *p == '[' ? SRV_J_ARRAY : SRV_J_OBJECT, p)) < 0 ||
            push(ps, (uint32_t)idx, *p == '[', p) < 0)
            return -1;
        top = &ps->st[ps->depth - 1];
        p = skip_ws(p + 1, e);
        if (p < e && *p == (top->is_arr ? ']' : '}'))
            goto close;
        if (top->is_arr) {
            top->cnt = 1;
            goto value;
        }
        goto key;
    case '"': {
        int esc;
        const uc *q = scan_string(ps, p, &esc);
        if (!q || (idx = add_node(ps, SRV_J_STRING, p + 1)) < 0)
            return -1;
        ps->d->n[idx].len = (uint64_t)(q - p) - 2;
        ps->d->n[idx].esc |= esc ? ESC_VAL : 0;
        p = q;
        goto after;
    }
    case 't':
    case 'f':
    case 'n': {
        const char *w = *p == 't' ? "true" : *p == 'f' ? "false" : "null";
        size_t wl = strlen(w);
        if ((size_t)(e - p) < wl || memcmp(p, w, wl))
            return syn(ps, p, "expected a value");
        if ((idx = add_node(ps, *p == 'n' ? SRV_J_NULL : SRV_J_BOOL, p)) < 0)
            return -1;
        ps->d->n[idx].len = wl;
        p += wl;
        goto after;
    }
    default:
        if (*p == '-' || is_digit(*p)) {
            const uc *bad, *q = num_end(p, e, &bad);
            double v;
            const char *stop;
            if (!q && nonfinite_word(p, e)) /* -Infinity, -NaN */
                return syn(ps, p, not_a_value(p, e));
            if (!q)
                return perr(ps, NN_EINVAL, "invalid JSON at byte %zu: invalid number",
                            (size_t)(bad - b));
            if (!srv_f64_parse((const char *)p, (const char *)q, &v, &stop) || isinf(v)) {
                char at[128];
                path(ps, ps->depth, at, sizeof at);
                return perr(ps, NN_EINVAL, "%s%s%.*s is out of range", at, at[0] ? ": " : "",
                            (int)(q - p > 40 ? 40 : q - p), (const char *)p);
            }
            if ((idx = add_node(ps, SRV_J_NUMBER, p)) < 0)
                return -1;
            ps->d->n[idx].len = (uint64_t)(q - p);
            p = q;
            goto after;
        }
        return syn(ps, p, not_a_value(p, e));
    }

key:
    p = skip_ws(p, e);
    if (p >= e || *p != '"')
        return syn(ps, p, "expected a string key");
    {
        int esc;
        const uc *k = p;
        if (!(p = scan_string(ps, p, &esc)))
            return -1;
        top = &ps->st[ps->depth - 1];
        top->key_off = (size_t)(k + 1 - b);
        top->key_len = (size_t)(p - k) - 2;
        top->key_esc = esc;
        top->cnt++;
        if (top->key_len > UINT32_MAX)
            return perr(ps, NN_ETOOBIG, "invalid JSON at byte %zu: key too long", (size_t)(k - b));
    }
    p = skip_ws(p, e);
    if (p >= e || *p != ':')
        return syn(ps, p, "expected ':'");
    p++;
    goto value;

after:
    if (ps->depth == 0) {
        p = skip_ws(p, e);
        if (p < e)
            return syn(ps, p, "unexpected data after the JSON value");
        return 0;
    }
    p = skip_ws(p, e);
    if (p >= e)
        return syn(ps, p, "");
    top = &ps->st[ps->depth - 1];
    if (*p == ',') {
        p++;
        if (top->is_arr) {
            top->cnt++;
            goto value;
        }
        goto key;
    }
    if (*p == (top->is_arr ? ']' : '}'))
        goto close;
    return syn(ps, p, top->is_arr ? "expected ',' or ']'" : "expected ',' or '}'");

close:
    top = &ps->st[ps->depth - 1];
    ps->d->n[top->node].len = (uint64_t)(p + 1 - b) - ps->d->n[top->node].off;
    ps->depth--;
    if (!top->is_arr && no_duplicates(ps, top->node) < 0)
        return -1;
    p++;
    goto after;
}

enum nn_status srv_json_parse(const char *text, size_t len, size_t max_values,
                              struct srv_json **out, struct nn_err *err)
{
    *out = NULL;
    struct srv_json *d = calloc(1, sizeof *d);
    struct parser pstate, *ps = &pstate; /* 3 KB: on the stack, not a large malloc a request */
    if (!d)
        return nn_err_set(err, NN_ENOMEM, "out of memory");
    d->text = text ? text : "";
    d->len = text ? len : 0;
    ps->d = d;
    ps->b = (const uc *)d->text;
    ps->e = ps->b + d->len;
    ps->depth = 0;
    ps->max_values = max_values && max_values < UINT32_MAX ? max_values : UINT32_MAX - 1;
    ps->code = NN_OK;
    ps->err = err;
    int rc = parse_doc(ps);
    enum nn_status st = rc < 0 ? (ps->code ? ps->code : NN_EINVAL) : NN_OK;
    if (st) {
        srv_json_free(d);
        return st;
    }
    *out = d;
    return NN_OK;
}

void srv_json_free(struct srv_json *d)
{
    if (!d)
        return;
    free(d->n);
    free(d->shapes);
    free(d);
}

/* ---- access -------------------------------------------------------------------------------- */
static const struct node *node(const struct srv_json *d, srv_jv v)
{
    return d && v && v <= d->nn ? &d->n[v - 1] : NULL;
}

srv_jv srv_json_root(const struct srv_json *d) { return d && d->nn ? 1 : 0; }

enum srv_jtype srv_json_type(const struct srv_json *d, srv_jv v)
{
    const struct node *x = node(d, v);
    return x ? (enum srv_jtype)x->type : SRV_J_NONE;
}

size_t srv_json_pos(const struct srv_json *d, srv_jv v)
{
    const struct node *x = node(d, v);
    return x ? (size_t)x->off - (x->type == SRV_J_STRING) : 0;
}

srv_jv srv_json_child(const struct srv_json *d, srv_jv v)
{
    const struct node *x = node(d, v);
    return x && (x->type == SRV_J_ARRAY || x->type == SRV_J_OBJECT) ? x->child : 0;
}

srv_jv srv_json_next(const struct srv_json *d, srv_jv v)
{
    const struct node *x = node(d, v);
    return x ? x->next : 0;
}

size_t srv_json_count(const struct srv_json *d, srv_jv v)
{
    const struct node *x = node(d, v);
    if (!x)
        return 0;
    if (x->type == SRV_J_NUMARRAY)
        return d->shapes[x->child][0];
    return x->type == SRV_J_ARRAY || x->type == SRV_J_OBJECT ? x->count : 0;
}

/* The key of member x equals k (k has no escapes to undo; x's key may). */
static int key_eq(const struct srv_json *d, const struct node *x, const char *k, size_t kn)
{
    const char *raw = d->text + x->key_off;
    if (!(x->esc & ESC_KEY))
        return x->key_len == kn && !memcmp(raw, k, kn);
    if (kn > x->key_len)
        return 0;
    char buf[256], *tmp = x->key_len <= sizeof buf ? buf : malloc(x->key_len);
    if (!tmp)
        return 0;
    size_t n = unescape(raw, x->key_len, tmp);
    int eq = n == kn && !memcmp(tmp, k, kn);
    if (tmp != buf)
        free(tmp);
    return eq;
}

srv_jv srv_json_get(const struct srv_json *d, srv_jv obj, const char *key)
{
    const struct node *o = node(d, obj);
    if (!o || o->type != SRV_J_OBJECT)
        return 0;
    size_t kn = strlen(key);
    for (srv_jv c = o->child; c; c = d->n[c - 1].next)
        if (key_eq(d, &d->n[c - 1], key, kn))
            return c;
    return 0;
}

int srv_json_key_is(const struct srv_json *d, srv_jv member, const char *k)
{
    const struct node *x = node(d, member);
    return x && x->has_key && key_eq(d, x, k, strlen(k));
}

/* Unescaped text s[0..n) (escapes when esc) into buf, NUL-terminated and cut at a UTF-8
 * boundary to fit; returns the full unescaped length. */
static size_t copy_text(const char *s, size_t n, int esc, char *buf, size_t cap)
{
    char small[512], *tmp = NULL;
    const char *src = s;
    size_t len = n;
    if (esc) {
        tmp = n <= sizeof small ? small : malloc(n);
        if (!tmp) {
            if (cap)
                buf[0] = 0;
            return 0;
        }
        len = unescape(s, n, tmp);
        src = tmp;
    }
    if (cap) {
        int k = utf8_cut(src, len, cap - 1);
        memcpy(buf, src, (size_t)k);
        buf[k] = 0;
    }
    if (tmp && tmp != small)
        free(tmp);
    return len;
}

const char *srv_json_key(const struct srv_json *d, srv_jv member, char *buf, size_t cap)
{
    const struct node *x = node(d, member);
    if (!x || !x->has_key) {
        if (cap)
            buf[0] = 0;
        return buf;
    }
    copy_text(d->text + x->key_off, x->key_len, x->esc & ESC_KEY, buf, cap > 49 ? 49 : cap);
    return buf;
}

char *srv_json_keydup(const struct srv_json *d, srv_jv member)
{
    const struct node *x = node(d, member);
    if (!x || !x->has_key)
        return NULL;
    char *k = malloc((size_t)x->key_len + 1);
    if (k)
        copy_text(d->text + x->key_off, x->key_len, x->esc & ESC_KEY, k, (size_t)x->key_len + 1);
    return k;
}

srv_jv srv_json_unknown_key(const struct srv_json *d, srv_jv obj, const char *const *known)
{
    const struct node *o = node(d, obj);
    if (!o || o->type != SRV_J_OBJECT)
        return 0;
    for (srv_jv c = o->child; c; c = d->n[c - 1].next) {
        int ok = 0;
        for (int i = 0; known[i] && !ok; i++)
            ok = key_eq(d, &d->n[c - 1], known[i], strlen(known[i]));
        if (!ok)
            return c;
    }
    return 0;
}

int srv_json_unknown_field(const struct srv_json *d, srv_jv obj, const char *const *known,
                           char *key, size_t keycap, char *list, size_t listcap)
{
    srv_jv bad = srv_json_unknown_key(d, obj, known);
    if (!bad)
        return 0;
    srv_json_key(d, bad, key, keycap);
    size_t n = 0;
    list[0] = 0;
    for (int i = 0; known[i] && n < listcap; i++)
        n += (size_t)snprintf(list + n, listcap - n, "%s%s", i ? ", " : "", known[i]);
    return 1;
}

int srv_json_is_true(const struct srv_json *d, srv_jv v)
{
    const struct node *x = node(d, v);
    return x && x->type == SRV_J_BOOL && d->text[x->off] == 't';
}

int srv_json_number(const struct srv_json *d, srv_jv v, double *out)
{
    const struct node *x = node(d, v);
    const char *stop;
    if (!x || x->type != SRV_J_NUMBER)
        return 0;
    return srv_f64_parse(d->text + x->off, d->text + x->off + x->len, out, &stop);
}

size_t srv_json_str(const struct srv_json *d, srv_jv v, char *buf, size_t cap)
{
    const struct node *x = node(d, v);
    if (!x || x->type != SRV_J_STRING) {
        if (cap)
            buf[0] = 0;
        return (size_t)-1;
    }
    return copy_text(d->text + x->off, x->len, x->esc & ESC_VAL, buf, cap);
}

int srv_json_str_is(const struct srv_json *d, srv_jv v, const char *s)
{
    const struct node *x = node(d, v);
    if (!x || x->type != SRV_J_STRING)
        return 0;
    size_t n = strlen(s);
    if (!(x->esc & ESC_VAL))
        return x->len == n && !memcmp(d->text + x->off, s, n);
    char *t = srv_json_strdup(d, v);
    int eq = t && !strcmp(t, s);
    free(t);
    return eq;
}

char *srv_json_strdup(const struct srv_json *d, srv_jv v)
{
    const struct node *x = node(d, v);
    if (!x || x->type != SRV_J_STRING)
        return NULL;
    char *s = malloc(x->len + 1);
    if (!s)
        return NULL;
    size_t n = x->esc & ESC_VAL ? unescape(d->text + x->off, x->len, s) : x->len;
    if (!(x->esc & ESC_VAL))
        memcpy(s, d->text + x->off, n);
    s[n] = 0;
    return s;
}

int srv_json_numarray(const struct srv_json *d, srv_jv v, size_t shape[NN_MAX_DIMS], int *ndim,
                      size_t *numel)
{
    const struct node *x = node(d, v);
    if (!x || x->type != SRV_J_NUMARRAY)
        return 0;
    const size_t *sh = d->shapes[x->child];
    size_t n = 1;
    for (int i = 0; i < x->ndim; i++)
        n *= sh[i]; /* counts of elements that are there: no overflow */
    if (shape)
        memcpy(shape, sh, NN_MAX_DIMS * sizeof *sh);
    if (ndim)
        *ndim = x->ndim;
    if (numel)
        *numel = n;
    return 1;
}

/* ---- reading numbers ------------------------------------------------------------------------ */
#define TWO53 9007199254740992.0

/* The number token p..q (valid JSON) as int64. */
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
        for (const char *dg = digits; dg < q; dg++) {
            unsigned dv = (unsigned)(*dg - '0');
            if (u > (lim - dv) / 10)
                goto range;
            u = u * 10 + dv;
        }
        *v = !neg ? (int64_t)u : u == (uint64_t)INT64_MAX + 1 ? INT64_MIN : -(int64_t)u;
        return NN_OK;
    }
    double dv;
    const char *stop;
    if (!srv_f64_parse(p, q, &dv, &stop) || isinf(dv))
        goto range;
    if (dv != floor(dv))
        return nn_err_set(err, NN_EINVAL, "%s: %.*s is not an integer", where, tlen, p);
    if (fabs(dv) >= TWO53) { /* a neighbour might have rounded here: not exact */
        if (fabs(dv) >= 9223372036854775808.0)
            goto range;
        return nn_err_set(err, NN_EINVAL,
                          "%s: %.*s is too large to be exact; write it as plain integer digits",
                          where, tlen, p);
    }
    *v = (int64_t)dv;
    return NN_OK;
range:
    return nn_err_set(err, NN_EINVAL, "%s: %.*s is out of range for int64", where, tlen, p);
}

static enum nn_status bad_token(const struct srv_json *d, const char *p, const char *end,
                                enum srv_num_fail why, enum srv_num t, const char *where,
                                struct nn_err *err)
{
    if (why == SRV_NUM_SYNTAX) { /* name the byte where the grammar breaks, as for a scalar */
        const uc *at = (const uc *)p;
        if (at < (const uc *)end)
            num_end(at, (const uc *)end, &at);
        return nn_err_set(err, NN_EINVAL, "invalid JSON at byte %zu: invalid number",
                          (size_t)(at - (const uc *)d->text));
    }
    const char *q = p;
    while (q < end && tok[(uc)*q])
        q++;
    return nn_err_set(err, NN_EINVAL, "%s: %.*s is out of range for %s", where,
                      (int)(q - p > 40 ? 40 : q - p), p, srv_num_names[t]);
}

enum nn_status srv_json_read(const struct srv_json *d, srv_jv v, enum srv_num t, void *dst,
                             size_t numel, const char *where, struct nn_err *err)
{
    size_t n;
    const struct node *x = node(d, v);
    if (!where)
        where = "value";
    if ((unsigned)t >= SRV_NUM_COUNT || !srv_json_numarray(d, v, NULL, NULL, &n))
        return nn_err_set(err, NN_EINVAL, "%s: expected an array of numbers", where);
    if (n != numel)
        return nn_err_set(err, NN_EINVAL, "%s: has %zu values, expected %zu", where, n, numel);
    const char *p = d->text + x->off, *end = p + x->len, *bad = NULL;
    enum srv_num_fail why = SRV_NUM_OK;
    size_t got;
    if (t == SRV_F32)
        got = srv_f32_read(p, end, dst, n, &bad, &why);
    else if (t == SRV_F64)
        got = srv_f64_read(p, end, dst, n, &bad, &why);
    else { /* the separators checked as srv_f64_read checks them */
        int64_t *o = dst;
        const uc *e = (const uc *)end, *q = skip_ws((const uc *)p, e), *bq;
        while (q < e && *q == '[')
            q = skip_ws(q + 1, e);
        for (size_t i = 0; i < n; i++) {
            const uc *tk = q;
            if (tk >= e || !(q = num_end(tk, e, &bq)))
                return nn_err_set(err, NN_EINVAL, "invalid JSON at byte %zu: invalid number",
                                  (size_t)((tk >= e ? e : bq) - (const uc *)d->text));
            enum nn_status st = tok_i64((const char *)tk, (const char *)q, &o[i], where, err);
            if (st)
                return st;
            q = skip_ws(q, e);
            while (q < e && *q == ']')
                q = skip_ws(q + 1, e);
            if (i + 1 < n) {
                if (q >= e || *q != ',')
                    return nn_err_set(err, NN_EINVAL, "invalid JSON at byte %zu: invalid number",
                                      (size_t)(q - (const uc *)d->text));
                q = skip_ws(q + 1, e);
                while (q < e && *q == '[')
                    q = skip_ws(q + 1, e);
            }
        }
        if (n && q != e) /* "[1 2]": a number after the last */
            return nn_err_set(err, NN_EINVAL, "invalid JSON at byte %zu: invalid number",
                              (size_t)(q - (const uc *)d->text));
        return NN_OK;
    }
    return got == n ? NN_OK : bad_token(d, bad, end, why, t, where, err);
}

enum nn_status srv_json_int(const struct srv_json *d, srv_jv v, int64_t *out, const char *where,
                            struct nn_err *err)
{
    const struct node *x = node(d, v);
    if (!x || x->type != SRV_J_NUMBER)
        return nn_err_set(err, NN_EINVAL, "%s: expected an integer", where);
    return tok_i64(d->text + x->off, d->text + x->off + x->len, out, where, err);
}
