/* The one JSON reader: request bodies, model files, repository bodies, the safetensors
 * header.
 *
 * srv_json_parse scans the text once (RFC 8259 grammar, UTF-8 in strings, nesting) and
 * records every value as one node of a flat array (a "tape"); nothing is copied out of the
 * text, which must outlive the document. Strings are unescaped when asked for. Every array
 * that holds only numbers and arrays of numbers (`[1, 2]`, `[[1, 2], [3, 4]]`, `[]`) is one
 * node, a numeric array, with its shape (rectangular, rank 1..8; a ragged one is an error
 * naming its path): its numbers are not converted at parse time but when the caller reads
 * them, straight into the buffer that uses them and in the type it wants
 * (srv_json_read), and their grammar is checked then. That is the whole cost of a tensor:
 * one scan of its text, one conversion into place.
 *
 * Document rules beyond the grammar:
 *  - at most max_values nodes (a numeric array is one): more is NN_ETOOBIG before anything
 *    is allocated for them, so parse memory is bounded by the body and that cap
 *    (about 48 bytes a node);
 *  - nesting deeper than SRV_JSON_MAX_DEPTH (objects and arrays) is an error;
 *  - a key twice in one object is an error (`layers[0]: duplicate key "bias"`), compared
 *    after unescaping, so "first wins" and "last wins" readers cannot disagree;
 *  - "\u0000" in a string is refused; a scalar number that overflows a double (1e400) is
 *    an error; NaN, Infinity and a byte after the value get a message saying so.
 * Errors: "invalid JSON at byte N: <what>", NN_EINVAL; NN_ETOOBIG; NN_ENOMEM.
 *
 * Values are named by srv_jv (0 = none); every accessor takes 0 and answers "absent".
 * A document is read by one thread at a time; srv_json_free(NULL) is a no-op. */
#ifndef RELUD_JSON_H
#define RELUD_JSON_H

#include <stddef.h>
#include <stdint.h>

#include "core/nn.h"

#define SRV_JSON_MAX_DEPTH 64

enum srv_jtype {
    SRV_J_NONE, /* no value (srv_jv 0) */
    SRV_J_NULL,
    SRV_J_BOOL,
    SRV_J_NUMBER,
    SRV_J_STRING,
    SRV_J_ARRAY,
    SRV_J_OBJECT,
    SRV_J_NUMARRAY, /* an array of numbers / arrays of numbers, with a shape */
};

typedef uint32_t srv_jv;
struct srv_json;

/* Parses text[0..len) (any bytes; not NUL-terminated). max_values 0 = no cap. */
enum nn_status srv_json_parse(const char *text, size_t len, size_t max_values,
                              struct srv_json **doc, struct nn_err *err);
void srv_json_free(struct srv_json *doc);

srv_jv srv_json_root(const struct srv_json *d);
enum srv_jtype srv_json_type(const struct srv_json *d, srv_jv v);
/* Byte offset of the value in the text (for messages). */
size_t srv_json_pos(const struct srv_json *d, srv_jv v);

/* ---- arrays and objects -------------------------------------------------------------
 * The elements of an array, or the members of an object (each member is its value, with
 * a key): for (srv_jv x = srv_json_child(d, v); x; x = srv_json_next(d, x)). */
srv_jv srv_json_child(const struct srv_json *d, srv_jv v);
srv_jv srv_json_next(const struct srv_json *d, srv_jv v);
size_t srv_json_count(const struct srv_json *d, srv_jv v); /* elements or members */
/* obj's member called key, or 0 (also when obj is not an object). */
srv_jv srv_json_get(const struct srv_json *d, srv_jv obj, const char *key);
/* For a member: its key equals k / its key, unescaped, into buf (NUL-terminated, cut at a
 * UTF-8 boundary to fit and to 48 bytes: for messages). */
int srv_json_key_is(const struct srv_json *d, srv_jv member, const char *k);
const char *srv_json_key(const struct srv_json *d, srv_jv member, char *buf, size_t cap);
/* The whole key unescaped, malloc'd; NULL when out of memory. */
char *srv_json_keydup(const struct srv_json *d, srv_jv member);
/* The first member of obj whose key is not in the NULL-terminated list known, or 0. */
srv_jv srv_json_unknown_key(const struct srv_json *d, srv_jv obj, const char *const *known);
/* srv_json_unknown_key for a message: 1 when obj has a member not in known, with its key in
 * key (as srv_json_key) and known joined as "a, b, c" in list (cut to fit); else 0. */
int srv_json_unknown_field(const struct srv_json *d, srv_jv obj, const char *const *known,
                           char *key, size_t keycap, char *list, size_t listcap);

/* ---- scalars ------------------------------------------------------------------------ */
int srv_json_is_true(const struct srv_json *d, srv_jv v);
/* 1 and *out when v is a number (finite, checked at parse). */
int srv_json_number(const struct srv_json *d, srv_jv v, double *out);
/* The string unescaped into buf (NUL-terminated, cut at a UTF-8 boundary to fit); returns
 * its full length, or SIZE_MAX when v is not a string. */
size_t srv_json_str(const struct srv_json *d, srv_jv v, char *buf, size_t cap);
int srv_json_str_is(const struct srv_json *d, srv_jv v, const char *s);
/* The string unescaped, malloc'd; NULL when v is not a string or out of memory. */
char *srv_json_strdup(const struct srv_json *d, srv_jv v);

/* ---- numeric arrays ------------------------------------------------------------------ */
/* 1 with the shape when v is a numeric array (any of shape/ndim/numel may be NULL). */
int srv_json_numarray(const struct srv_json *d, srv_jv v, size_t shape[NN_MAX_DIMS], int *ndim,
                      size_t *numel);

enum srv_num { SRV_F32, SRV_F64, SRV_I64, SRV_NUM_COUNT };
extern const char *const srv_num_names[SRV_NUM_COUNT]; /* "float32", "float64", "int64" */

/* Reads the numbers of the numeric array v, row-major, into dst (numel values of type t,
 * numel must be the array's). `where` names it: "input: 1e39 is out of range for float32",
 * "loss.target: 2.5 is not an integer", "invalid JSON at byte 12: invalid number".
 * Underflow rounds (to a subnormal or zero); -0 is kept. SRV_I64 takes integral values
 * only (3, -0, 3.0, 3e2); past 2^53 only plain digits (exactness). */
enum nn_status srv_json_read(const struct srv_json *d, srv_jv v, enum srv_num t, void *dst,
                             size_t numel, const char *where, struct nn_err *err);
/* A scalar number as int64, with the same rules. */
enum nn_status srv_json_int(const struct srv_json *d, srv_jv v, int64_t *out, const char *where,
                            struct nn_err *err);

#endif
