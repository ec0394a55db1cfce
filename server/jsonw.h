/* The one JSON writer: every reply and JSON log line, written straight into a capped byte
 * buffer (server/sb.h), commas and nesting tracked for the caller. Floats are written as
 * the shortest text that reads back to the same float32 (0.1f -> 0.1, 2.0f -> 2, 1e20f ->
 * 1e+20, -0.0f -> -0) or float64, tensors a row at a time; a tensor's one scan for inf and
 * NaN (which JSON cannot carry) is the writing itself, and the error names the tensor and
 * the index. Strings are escaped, and a byte that is not valid UTF-8 is written as '?'
 * (a message that cut a user's string mid-character): everything it writes is valid JSON.
 *
 * Errors are sticky: the first one (out of memory, over the cap, a non-finite value) is
 * kept and later calls do nothing; srv_jw_finish reports it. */
#ifndef RELUD_JSONW_H
#define RELUD_JSONW_H

#include <stddef.h>

#include "core/nn.h"
#include "server/sb.h"

#define SRV_JW_MAX_DEPTH 32

/* How a tensor is written: nested arrays of its shape (a bare number for rank 0),
 * {"shape": [...], "data": [flat]}, or one flat array (the Open Inference Protocol). */
enum srv_form { SRV_FORM_NESTED, SRV_FORM_OBJECT, SRV_FORM_FLAT, SRV_FORM_COUNT };

struct srv_jw {
    struct srv_sb sb;
    int depth;
    unsigned char need[SRV_JW_MAX_DEPTH];   /* a value was written at this depth: a comma next */
    unsigned char is_arr[SRV_JW_MAX_DEPTH]; /* the container open at this depth */
    int after_key;                          /* a key was written: its value needs no comma */
    enum nn_status st;                      /* first error, NN_OK */
    struct nn_err err;
};

/* An empty writer; reserve: bytes to allocate at once (a good guess saves reallocs), max:
 * the cap (0 = none). */
void srv_jw_init(struct srv_jw *w, size_t reserve, size_t max);
void srv_jw_free(struct srv_jw *w);

void srv_jw_obj(struct srv_jw *w); /* { */
void srv_jw_arr(struct srv_jw *w); /* [ */
void srv_jw_end(struct srv_jw *w); /* the matching } or ] */
/* A member's key; the value follows. */
void srv_jw_key(struct srv_jw *w, const char *k);
void srv_jw_str(struct srv_jw *w, const char *s);
void srv_jw_strn(struct srv_jw *w, const char *s, size_t n);
void srv_jw_int(struct srv_jw *w, long long v);
void srv_jw_uint(struct srv_jw *w, unsigned long long v);
void srv_jw_bool(struct srv_jw *w, int v);
void srv_jw_null(struct srv_jw *w);
/* v printed shortest for dt; a non-finite v is an error naming where. */
void srv_jw_num(struct srv_jw *w, double v, enum nn_dtype dt, const char *where);
/* The tensor t in the given form; a non-finite element is an error naming where and the
 * index: "gradients.input: non-finite value inf at index 3 cannot be written as JSON". */
void srv_jw_tensor(struct srv_jw *w, const struct nn_tensor *t, enum srv_form form,
                   const char *where);

/* Key + value shorthands. */
void srv_jw_kstr(struct srv_jw *w, const char *k, const char *s);
void srv_jw_kint(struct srv_jw *w, const char *k, long long v);
void srv_jw_kuint(struct srv_jw *w, const char *k, unsigned long long v);
void srv_jw_kbool(struct srv_jw *w, const char *k, int v);

/* The text (malloc'd, NUL-terminated; *len without the NUL), or NULL with the error:
 * NN_ENONFINITE (the message names the value), NN_ENOMEM, NN_ETOOBIG (over the cap). */
char *srv_jw_finish(struct srv_jw *w, size_t *len, enum nn_status *st, struct nn_err *err);

#endif
