// Number <-> text (see server/numconv.h): a thin extern "C" shim over fast_float and
// std::to_chars. The read loops live here so that the converter inlines into them.
#include "server/numconv.h"

#include <charconv>
#include <cfloat>
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

// Exact powers of ten as doubles (10^22 is the largest exactly representable).
constexpr double pow10_exact[23] = {1e0,  1e1,  1e2,  1e3,  1e4,  1e5,  1e6,  1e7,
                                    1e8,  1e9,  1e10, 1e11, 1e12, 1e13, 1e14, 1e15,
                                    1e16, 1e17, 1e18, 1e19, 1e20, 1e21, 1e22};

// The common case of a tensor's number, done inline: a JSON number of at most 19
// significant digits whose value w * 10^q has |q| <= 22. When w <= 2^53, w and 10^|q| are
// exact doubles and one IEEE multiply or divide rounds w * 10^q correctly (Clinger's fast
// path): that is the double. For a float, rounding that double again to float gives the
// correctly rounded float unless the double sits exactly on a midpoint between two floats
// (its 29 bits below float precision are 1000...0): any value strictly between two float
// midpoints has its double in the same interval, so it rounds the same way. Those
// midpoints (and, for a float from 17-19 digits, their near neighbours), and everything
// else (more digits, large exponents, anything not a plain JSON
// number followed by a separator), go to fast_float and the checks below it: this path
// only ever answers what fast_float would, faster. Returns the end of the number, or NULL.
template <typename T>
[[gnu::always_inline]] inline const char *fast_json(const char *p, const char *end, T *out)
{
    const char *s = p;
    bool neg = s < end && *s == '-';
    s += neg;
    if (s >= end || !digit(*s))
        return nullptr;
    uint64_t w = 0;
    int nd = 0, q = 0;
    if (*s == '0') {
        s++;
    } else {
        for (; s < end && digit(*s); s++, nd++)
            w = w * 10 + (uint64_t)(*s - '0');
    }
    if (s < end && *s == '.') {
        const char *f = ++s;
        for (; s < end && digit(*s); s++)
            w = w * 10 + (uint64_t)(*s - '0');
        if (s == f)
            return nullptr;
        nd += (int)(s - f);
        q = -(int)(s - f);
    }
    if (s < end && (*s | 0x20) == 'e') {
        s++;
        bool eneg = s < end && *s == '-';
        s += s < end && (*s == '-' || *s == '+');
        const char *e0 = s;
        int e = 0;
        for (; s < end && digit(*s); s++)
            if (e < 10000)
                e = e * 10 + (*s - '0');
        if (s == e0)
            return nullptr;
        q += eneg ? -e : e;
    }
    if (nd > 19 || (s < end && !skip.v[(unsigned char)*s]) || q < -22 || q > 22)
        return nullptr;
    bool exact = w <= (1ull << 53);
    if (sizeof(T) == sizeof(double) && !exact)
        return nullptr;
    double d = (double)w;
    d = q < 0 ? d / pow10_exact[-q] : d * pow10_exact[q];
    if constexpr (sizeof(T) == sizeof(float)) {
        // Past 2^53 (17-19 digits, as json.dumps writes float32 values) w itself rounds,
        // so d is within 2 units in its last place of the value: then keep 4 away.
        uint64_t bits, slack = exact ? 0 : 4, half = 1ull << 28;
        std::memcpy(&bits, &d, sizeof bits);
        bits &= (1ull << 29) - 1;
        if (bits - (half - slack) <= 2 * slack) // one compare: two cost a third here
            return nullptr;
        if (d > (double)FLT_MAX)
            return nullptr; // fast_float says whether it rounds to FLT_MAX or overflows
    }
    T v = (T)d;
    *out = neg ? -v : v;
    return s;
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
        const char *stop = fast_json(p, end, &dst[i]);
        if (!stop) {
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
            stop = r.ptr;
        }
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
