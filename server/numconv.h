/* Number <-> text, the one C++ file's C face (server/numconv.cc): fast_float (Debian's
 * libfast-float-dev) reads text straight into the target type (float32 text is never read
 * as double and narrowed: that would round twice), GCC's std::to_chars writes the shortest
 * text that reads back to the same value. */
#ifndef RELUD_NUMCONV_H
#define RELUD_NUMCONV_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define SRV_F32_MAXLEN 24 /* buffer bound for one float32, no NUL */
#define SRV_F64_MAXLEN 32

/* Shortest round-trip text of a finite value; returns the length. */
size_t srv_f32_to_str(float v, char *buf);  /* buf >= SRV_F32_MAXLEN bytes */
size_t srv_f64_to_str(double v, char *buf); /* buf >= SRV_F64_MAXLEN bytes */
/* "v0,v1,...": out holds n * (MAXLEN + 1) bytes. Returns the length, or SIZE_MAX with
 * *bad = the index of the first non-finite value (which JSON cannot carry). */
size_t srv_f32_row_to_str(char *out, const float *v, size_t n, size_t *bad);
size_t srv_f64_row_to_str(char *out, const double *v, size_t n, size_t *bad);

/* Why a read of numbers stopped. */
enum srv_num_fail { SRV_NUM_OK, SRV_NUM_SYNTAX, SRV_NUM_RANGE };

/* Reads n numbers from the text of a numeric array (p..end), skipping " \t\r\n,[]" before
 * each, into dst as float32 / float64, checking each against the JSON number grammar
 * (-?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?) and that it is followed by a separator.
 * Returns how many were read; when fewer than n, *bad is where the failing token starts
 * and *why says SYNTAX (not a JSON number) or RANGE (it would be infinite in the type). */
size_t srv_f32_read(const char *p, const char *end, float *dst, size_t n, const char **bad,
                    enum srv_num_fail *why);
size_t srv_f64_read(const char *p, const char *end, double *dst, size_t n, const char **bad,
                    enum srv_num_fail *why);
/* One number at p (already checked against the grammar): 1 with *v, 0 if none. */
int srv_f64_parse(const char *p, const char *end, double *v, const char **stop);
int srv_f32_parse(const char *p, const char *end, float *v, const char **stop);

#ifdef __cplusplus
}
#endif

#endif
