// relud: the one C++ file of the JSON codec, a thin extern "C" shim over
// well-kept float converters (see server/codec.h for the contract):
//   text -> float/double: fast_float::from_chars (Debian libfast-float-dev),
//     parsed directly in the target type (float32 text is never parsed as
//     double and narrowed: that would round twice);
//   float/double -> text: GCC 12's C++17 std::to_chars shortest round-trip.
// The run functions loop here so that the converters inline into the loop.
// Inputs to the parse functions are already validated by codec.c against the
// strict JSON number grammar, so fast_float's laxer grammar never matters.
#include <charconv>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstring>

#include <fast_float/fast_float.h>

#include "server/codec.h"

namespace
{

// Bytes that may separate two numbers inside a validated numeric array.
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

template <typename T>
size_t parse_run(const char *p, const char *end, T *dst, size_t n, const char **bad,
                 const char **bad_end)
{
    for (size_t i = 0; i < n; i++) {
        while (p < end && skip.v[(unsigned char)*p])
            p++;
        T v;
        fast_float::from_chars_result r = fast_float::from_chars(p, end, v);
        if (r.ec != std::errc() || r.ptr == p || std::isinf(v)) {
            *bad = p;
            *bad_end = r.ec != std::errc() ? p : r.ptr;
            return i;
        }
        dst[i] = v;
        p = r.ptr;
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

/* Shortest round-trip text; non-finite values as NaN/Infinity/-Infinity (not JSON). */
template <typename T, size_t MAXLEN> size_t format_one(T v, char *buf)
{
    if (!std::isfinite(v)) {
        const char *s = std::isnan(v) ? "NaN" : v < 0 ? "-Infinity" : "Infinity";
        size_t n = std::strlen(s);
        std::memcpy(buf, s, n);
        return n;
    }
    return (size_t)(std::to_chars(buf, buf + MAXLEN, v).ptr - buf);
}

} // namespace

extern "C" {

size_t srv_f32_to_str(float v, char *buf) { return format_one<float, SRV_F32_MAXLEN>(v, buf); }

size_t srv_f64_to_str(double v, char *buf) { return format_one<double, SRV_F64_MAXLEN>(v, buf); }

size_t srv_f32_row_to_str(char *out, const float *v, size_t n, size_t *bad)
{
    return format_row<float, SRV_F32_MAXLEN>(out, v, n, bad);
}

size_t srv_f64_row_to_str(char *out, const double *v, size_t n, size_t *bad)
{
    return format_row<double, SRV_F64_MAXLEN>(out, v, n, bad);
}

size_t srv_f32_parse_run(const char *p, const char *end, float *dst, size_t n, const char **bad,
                         const char **bad_end)
{
    return parse_run<float>(p, end, dst, n, bad, bad_end);
}

size_t srv_f64_parse_run(const char *p, const char *end, double *dst, size_t n, const char **bad,
                         const char **bad_end)
{
    return parse_run<double>(p, end, dst, n, bad, bad_end);
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
