/* The JSON writer: see jsonw.h. */
#include "server/jsonw.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "server/numconv.h"

void srv_jw_init(struct srv_jw *w, size_t reserve, size_t max)
{
    memset(w, 0, sizeof *w);
    srv_sb_init(&w->sb, max);
    if (reserve) /* a guess: never a reason to fail */
        srv_sb_reserve(&w->sb, max && reserve >= max ? max - 1 : reserve);
}

void srv_jw_free(struct srv_jw *w) { srv_sb_free(&w->sb); }

static int ok(const struct srv_jw *w) { return w->st == NN_OK && !w->sb.err; }

/* Before a value (or a key): the comma it needs. */
static void sep(struct srv_jw *w)
{
    if (w->after_key) {
        w->after_key = 0;
        return;
    }
    if (w->depth > 0) {
        if (w->need[w->depth - 1])
            srv_sb_append(&w->sb, ",", 1);
        w->need[w->depth - 1] = 1;
    }
}

static void open(struct srv_jw *w, int is_arr)
{
    if (!ok(w))
        return;
    sep(w);
    if (w->depth == SRV_JW_MAX_DEPTH) { /* a writer bug, not user input */
        w->st = nn_err_set(&w->err, NN_EINVAL, "response: nested too deep");
        return;
    }
    srv_sb_append(&w->sb, is_arr ? "[" : "{", 1);
    w->need[w->depth] = 0;
    w->is_arr[w->depth++] = (unsigned char)is_arr;
}

void srv_jw_obj(struct srv_jw *w) { open(w, 0); }
void srv_jw_arr(struct srv_jw *w) { open(w, 1); }

void srv_jw_end(struct srv_jw *w)
{
    if (!ok(w) || w->depth == 0)
        return;
    w->depth--;
    srv_sb_append(&w->sb, w->is_arr[w->depth] ? "]" : "}", 1);
}

/* Length of the valid UTF-8 sequence at p (p < e; RFC 3629: no overlongs, no surrogates,
 * at most U+10FFFF), or 0. */
static size_t utf8_seq(const unsigned char *p, const unsigned char *e)
{
    unsigned c = p[0];
    size_t n = c >= 0xf0 ? 4 : c >= 0xe0 ? 3 : c >= 0xc2 ? 2 : 0;
    if (!n || c > 0xf4 || (size_t)(e - p) < n)
        return 0;
    for (size_t i = 1; i < n; i++)
        if ((p[i] & 0xc0) != 0x80)
            return 0;
    if ((c == 0xe0 && p[1] < 0xa0) || (c == 0xed && p[1] > 0x9f) || (c == 0xf0 && p[1] < 0x90) ||
        (c == 0xf4 && p[1] > 0x8f))
        return 0;
    return n;
}

/* The string quoted and escaped; a byte that is not part of valid UTF-8 (a message that cut
 * a user's string mid-character, a URL's %-decoded bytes) is written as '?': every string
 * this writer emits is valid UTF-8, so every reply and log line is valid JSON. */
static void escaped(struct srv_jw *w, const char *s, size_t n)
{
    static const char hex[] = "0123456789abcdef";
    const unsigned char *u = (const unsigned char *)s, *e = u + n;
    if (!srv_sb_reserve(&w->sb, n + 2))
        return;
    srv_sb_append(&w->sb, "\"", 1);
    size_t run = 0;
    for (size_t i = 0; i < n;) {
        unsigned char c = u[i];
        if (c >= 0x20 && c < 0x80 && c != '"' && c != '\\') {
            i++;
            continue;
        }
        if (c >= 0x80) {
            size_t k = utf8_seq(u + i, e);
            if (k) {
                i += k;
                continue;
            }
        }
        srv_sb_append(&w->sb, s + run, i - run);
        run = ++i;
        char esc[7] = {'\\', 0};
        size_t el = 2;
        switch (c) {
        case '"': esc[1] = '"'; break;
        case '\\': esc[1] = '\\'; break;
        case '\n': esc[1] = 'n'; break;
        case '\r': esc[1] = 'r'; break;
        case '\t': esc[1] = 't'; break;
        case '\b': esc[1] = 'b'; break;
        case '\f': esc[1] = 'f'; break;
        default:
            if (c >= 0x80) { /* not UTF-8 */
                esc[0] = '?';
                el = 1;
                break;
            }
            memcpy(esc, "\\u00", 4);
            esc[4] = hex[c >> 4];
            esc[5] = hex[c & 15];
            el = 6;
        }
        srv_sb_append(&w->sb, esc, el);
    }
    srv_sb_append(&w->sb, s + run, n - run);
    srv_sb_append(&w->sb, "\"", 1);
}

void srv_jw_key(struct srv_jw *w, const char *k)
{
    if (!ok(w))
        return;
    sep(w);
    escaped(w, k, strlen(k));
    srv_sb_append(&w->sb, ":", 1);
    w->after_key = 1;
}

/* A scalar value: its comma, then the text. */
static void scalar(struct srv_jw *w, const char *text, size_t n)
{
    if (!ok(w))
        return;
    sep(w);
    srv_sb_append(&w->sb, text, n);
}

void srv_jw_strn(struct srv_jw *w, const char *s, size_t n)
{
    if (!ok(w))
        return;
    sep(w);
    escaped(w, s, n);
}

void srv_jw_str(struct srv_jw *w, const char *s) { srv_jw_strn(w, s, strlen(s)); }

void srv_jw_int(struct srv_jw *w, long long v)
{
    char b[24];
    scalar(w, b, (size_t)snprintf(b, sizeof b, "%lld", v));
}

void srv_jw_uint(struct srv_jw *w, unsigned long long v)
{
    char b[24];
    scalar(w, b, (size_t)snprintf(b, sizeof b, "%llu", v));
}

void srv_jw_bool(struct srv_jw *w, int v) { scalar(w, v ? "true" : "false", v ? 4 : 5); }
void srv_jw_null(struct srv_jw *w) { scalar(w, "null", 4); }

static const char *nonfinite_name(double v) { return isnan(v) ? "nan" : v < 0 ? "-inf" : "inf"; }

void srv_jw_num(struct srv_jw *w, double v, enum nn_dtype dt, const char *where)
{
    if (!ok(w))
        return;
    char b[SRV_F64_MAXLEN];
    if (dt == NN_F32 ? !isfinite((float)v) : !isfinite(v)) {
        w->st =
            nn_err_set(&w->err, NN_ENONFINITE, "%s: non-finite value %s cannot be written as JSON",
                       where, nonfinite_name(dt == NN_F32 ? (float)v : v));
        return;
    }
    scalar(w, b, dt == NN_F32 ? srv_f32_to_str((float)v, b) : srv_f64_to_str(v, b));
}

static int nonfinite_at(struct srv_jw *w, const struct nn_tensor *t, size_t i, const char *where)
{
    double v = t->dtype == NN_F32 ? ((const float *)t->data)[i] : ((const double *)t->data)[i];
    w->st = nn_err_set(&w->err, NN_ENONFINITE,
                       "%s: non-finite value %s at index %zu cannot be written as JSON", where,
                       nonfinite_name(v), i);
    return -1;
}

/* One row of `row` values from element `first` whose worst case does not fit under the cap
 * (its text may): 64 values at a time through the stack, so the cap counts the bytes
 * written, not the worst case. */
static int capped_row(struct srv_jw *w, const struct nn_tensor *t, size_t first, size_t row,
                      int comma, int nested, const char *where)
{
    char buf[64 * (SRV_F64_MAXLEN + 1) + 1];
    size_t es = nn_dtype_size(t->dtype);
    if (comma)
        srv_sb_append(&w->sb, ",", 1);
    if (nested)
        srv_sb_append(&w->sb, "[", 1);
    buf[0] = ',';
    for (size_t i = 0; i < row; i += 64) {
        size_t k = row - i < 64 ? row - i : 64, bad, n;
        const char *src = (const char *)t->data + (first + i) * es;
        n = t->dtype == NN_F32 ? srv_f32_row_to_str(buf + 1, (const float *)src, k, &bad)
                               : srv_f64_row_to_str(buf + 1, (const double *)src, k, &bad);
        if (n == SIZE_MAX)
            return nonfinite_at(w, t, first + i + bad, where);
        srv_sb_append(&w->sb, i ? buf : buf + 1, i ? n + 1 : n);
    }
    if (nested)
        srv_sb_append(&w->sb, "]", 1);
    return w->sb.err ? -1 : 0;
}

/* The numbers of t from element `at`, rows of `row` values, `nrows` rows, each row in
 * brackets when `nested` (the innermost dimension); no outer brackets. */
static int rows(struct srv_jw *w, const struct nn_tensor *t, size_t at, size_t row, size_t nrows,
                int nested, const char *where)
{
    size_t es = nn_dtype_size(t->dtype), per = t->dtype == NN_F32 ? SRV_F32_MAXLEN : SRV_F64_MAXLEN;
    for (size_t r = 0; r < nrows; r++) {
        if (w->sb.max && row * (per + 1) + 3 >= w->sb.max - w->sb.len) {
            if (capped_row(w, t, at + r * row, row, r > 0, nested, where) < 0)
                return -1;
            continue;
        }
        if (!srv_sb_reserve(&w->sb, row * (per + 1) + 3))
            return -1;
        char *o = w->sb.p + w->sb.len;
        if (r)
            *o++ = ',';
        if (nested)
            *o++ = '[';
        size_t bad, n;
        const char *src = (const char *)t->data + (at + r * row) * es;
        n = t->dtype == NN_F32 ? srv_f32_row_to_str(o, (const float *)src, row, &bad)
                               : srv_f64_row_to_str(o, (const double *)src, row, &bad);
        if (n == SIZE_MAX)
            return nonfinite_at(w, t, at + r * row + bad, where);
        o += n;
        if (nested)
            *o++ = ']';
        w->sb.len = (size_t)(o - w->sb.p);
        w->sb.p[w->sb.len] = 0;
    }
    return 0;
}

/* Nested arrays of dimensions d.. of t, from element `at`. */
static int nested(struct srv_jw *w, const struct nn_tensor *t, int d, size_t at, const char *where)
{
    size_t inner = 1;
    for (int i = d + 1; i < t->ndim; i++)
        inner *= t->shape[i];
    if (d == t->ndim - 1) { /* one row */
        srv_sb_append(&w->sb, "[", 1);
        if (t->shape[d] && rows(w, t, at, t->shape[d], 1, 0, where) < 0)
            return -1;
        srv_sb_append(&w->sb, "]", 1);
        return 0;
    }
    srv_sb_append(&w->sb, "[", 1);
    if (d == t->ndim - 2 && t->shape[d + 1]) { /* a matrix: rows at once */
        if (rows(w, t, at, t->shape[d + 1], t->shape[d], 1, where) < 0)
            return -1;
    } else {
        for (size_t i = 0; i < t->shape[d]; i++) {
            if (i)
                srv_sb_append(&w->sb, ",", 1);
            if (nested(w, t, d + 1, at + i * inner, where) < 0)
                return -1;
        }
    }
    srv_sb_append(&w->sb, "]", 1);
    return 0;
}

void srv_jw_tensor(struct srv_jw *w, const struct nn_tensor *t, enum srv_form form,
                   const char *where)
{
    if (!ok(w))
        return;
    if (form == SRV_FORM_NESTED && t->ndim == 0) { /* a scalar: a bare number */
        double v = t->dtype == NN_F32 ? ((const float *)t->data)[0] : ((const double *)t->data)[0];
        srv_jw_num(w, v, t->dtype, where);
        return;
    }
    sep(w);
    if (form == SRV_FORM_NESTED) {
        nested(w, t, 0, 0, where);
        return;
    }
    if (form == SRV_FORM_OBJECT) {
        srv_sb_append(&w->sb, "{\"shape\":[", 10);
        for (int i = 0; i < t->ndim; i++) {
            char b[24];
            srv_sb_append(&w->sb, b,
                          (size_t)snprintf(b, sizeof b, i ? ",%zu" : "%zu", t->shape[i]));
        }
        srv_sb_append(&w->sb, "],\"data\":", 9);
    }
    srv_sb_append(&w->sb, "[", 1);
    if (t->numel && rows(w, t, 0, t->numel, 1, 0, where) < 0)
        return;
    srv_sb_append(&w->sb, form == SRV_FORM_OBJECT ? "]}" : "]", form == SRV_FORM_OBJECT ? 2 : 1);
}

void srv_jw_kstr(struct srv_jw *w, const char *k, const char *s)
{
    srv_jw_key(w, k);
    srv_jw_str(w, s);
}

void srv_jw_kint(struct srv_jw *w, const char *k, long long v)
{
    srv_jw_key(w, k);
    srv_jw_int(w, v);
}

void srv_jw_kuint(struct srv_jw *w, const char *k, unsigned long long v)
{
    srv_jw_key(w, k);
    srv_jw_uint(w, v);
}

void srv_jw_kbool(struct srv_jw *w, const char *k, int v)
{
    srv_jw_key(w, k);
    srv_jw_bool(w, v);
}

char *srv_jw_finish(struct srv_jw *w, size_t *len, enum nn_status *st, struct nn_err *err)
{
    enum nn_status s = w->st;
    if (!s && w->sb.err)
        s = nn_err_set(&w->err, w->sb.err == SRV_SB_TOOBIG ? NN_ETOOBIG : NN_ENOMEM,
                       w->sb.err == SRV_SB_TOOBIG ? "response: larger than its cap"
                                                  : "out of memory while writing the response");
    if (s) {
        if (err)
            *err = w->err;
        if (st)
            *st = s;
        srv_jw_free(w);
        return NULL;
    }
    if (st)
        *st = NN_OK;
    return srv_sb_take(&w->sb, len);
}
