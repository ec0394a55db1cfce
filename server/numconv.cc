// Number <-> text (see server/numconv.h): a thin extern "C" shim over fast_float and
// std::to_chars. The read loops live here so that the converter inlines into them.
#include "server/numconv.h"

#include <charconv>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstring>

#include <fast_float/fast_float.h>

namespace
{

// Bytes that may separate two numbers inside a numeric array.
struct skip_table {
    bool v[256];
    constexpr skip_table() : v()
    {
        v[(unsigned char)' '] = v[(unsigned char)'\t'] = v[(unsigned char)'\n'] = true;
        v[(unsigned char)'\r'] = v[(unsigned char)','] = v[(unsigned char)'['] = true;
        v[(unsigned char)']'] = true;
    }
};
constexpr skip_table skip;

inline bool digit(char c) { return (unsigned)(c - '0') < 10u; }

// What fast_float accepts beyond JSON's grammar, refused here on the token it read
// [p, q): a sign not followed by a digit (-inf, -.5), a leading zero (01), a dot not
// followed by a digit (1., 1.e5), and whatever follows the token that is not a separator
// (1e, 1.2.3, 1x).
inline bool json_number(const char *p, const char *q, const char *end)
{
    const char *s = p + (*p == '-');
    if (s >= q || !digit(*s) || (*s == '0' && s + 1 < q && digit(s[1])))
        return false;
    for (const char *d = s + 1; d < q; d++) {
        if (*d == '.') {
            if (d + 1 >= q || !digit(d[1]))
                return false;
            break;
        }
        if ((*d | 0x20) == 'e')
            break;
    }
    return digit(q[-1]) && (q == end || skip.v[(unsigned char)*q]);
}

inline const char *ws(const char *p, const char *end)
{
    while (p < end && (*p == ' ' || *p == '\n' || *p == '\r' || *p == '\t'))
        p++;
    return p;
}

// The text of a numeric array, whose brackets and shape the reader checked: numbers, each
// followed by ',' (and then any '[') or by ']'s (and then ',' and '[' again, or the end).
// Anything else between two numbers (1 2, 1,,2, ]  [) is a syntax error at the number.
template <typename T>
size_t read_run(const char *p, const char *end, T *dst, size_t n, const char **bad,
                srv_num_fail *why)
{
    p = ws(p, end);
    while (p < end && *p == '[')
        p = ws(p + 1, end);
    for (size_t i = 0; i < n; i++) {
        T v;
        fast_float::from_chars_result r = fast_float::from_chars(p, end, v);
        if (r.ec != std::errc() || !json_number(p, r.ptr, end)) {
            *bad = p;
            *why = SRV_NUM_SYNTAX;
            return i;
        }
        if (std::isinf(v)) {
            *bad = p;
            *why = SRV_NUM_RANGE;
            return i;
        }
        dst[i] = v;
        const char *stop = r.ptr;
        p = ws(stop, end);
        if (p < end && *p == ']') {
            while (p < end && *p == ']')
                p = ws(p + 1, end);
            if (p == end)
                continue; /* the last number: i + 1 == n, or the next read fails */
        }
        if (p < end && *p == ',') {
            p = ws(p + 1, end);
            while (p < end && *p == '[')
                p = ws(p + 1, end);
        } else if (i + 1 < n) {
            *bad = p;
            *why = SRV_NUM_SYNTAX;
            return i + 1;
        }
    }
    if (n && p != end) { // [1 2]: a number after the last one
        *bad = p;
        *why = SRV_NUM_SYNTAX;
        return n - 1;
    }
    return n;
}

template <typename T, size_t MAXLEN> size_t format_row(char *out, const T *v, size_t n, size_t *bad)
{
    char *p = out;
    for (size_t i = 0; i < n; i++) {
        if (!std::isfinite(v[i])) {
            *bad = i;
            return SIZE_MAX;
        }
        if (i)
            *p++ = ',';
        p = std::to_chars(p, p + MAXLEN, v[i]).ptr;
    }
    return (size_t)(p - out);
}

} // namespace

extern "C" {

size_t srv_f32_to_str(float v, char *buf)
{
    return (size_t)(std::to_chars(buf, buf + SRV_F32_MAXLEN, v).ptr - buf);
}

size_t srv_f64_to_str(double v, char *buf)
{
    return (size_t)(std::to_chars(buf, buf + SRV_F64_MAXLEN, v).ptr - buf);
}

size_t srv_f32_row_to_str(char *out, const float *v, size_t n, size_t *bad)
{
    return format_row<float, SRV_F32_MAXLEN>(out, v, n, bad);
}

size_t srv_f64_row_to_str(char *out, const double *v, size_t n, size_t *bad)
{
    return format_row<double, SRV_F64_MAXLEN>(out, v, n, bad);
}

size_t srv_f32_read(const char *p, const char *end, float *dst, size_t n, const char **bad,
                    srv_num_fail *why)
{
    return read_run<float>(p, end, dst, n, bad, why);
}

size_t srv_f64_read(const char *p, const char *end, double *dst, size_t n, const char **bad,
                    srv_num_fail *why)
{
    return read_run<double>(p, end, dst, n, bad, why);
}

int srv_f64_parse(const char *p, const char *end, double *v, const char **stop)
{
    fast_float::from_chars_result r = fast_float::from_chars(p, end, *v);
    *stop = r.ptr;
    return r.ec == std::errc() && r.ptr != p;
}

int srv_f32_parse(const char *p, const char *end, float *v, const char **stop)
{
    fast_float::from_chars_result r = fast_float::from_chars(p, end, *v);
    *stop = r.ptr;
    return r.ec == std::errc() && r.ptr != p;
}

} // extern "C"
