/* relud JSON codec: cJSON for documents, a fast path for numeric arrays.
 *
 * Decode. srv_doc_parse() scans the body once with a strict JSON validator
 * (RFC 8259 grammar, UTF-8 in strings, numbers -?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?,
 * no NaN/Infinity/+1/.5/01/1.). Every maximal array holding only numbers and
 * nested arrays of numbers (`[2, 2]`, `[[1, 2], [3, 4]]`, `[]`) becomes a span:
 * its offset, length and shape (rectangular, rank 1..8; a ragged one is an error
 * naming its JSON path). A skeleton copy of the body with every span replaced by
 * a placeholder string holding a per-process random nonce goes through cJSON.
 * After parsing, placeholder nodes are turned into cJSON_Raw nodes (so code
 * that expects a string or an array rejects them, and the nonce never reaches
 * an error message); a client string equal to a placeholder without the
 * nonce stays an ordinary string. Numbers are converted only when asked
 * (srv_doc_numarray_read), straight into the wanted type with fast_float.
 * Arrays nested deeper than 8 levels inside otherwise numeric data are left
 * to cJSON (they are not tensors; callers reject them as such).
 *
 * Document rules beyond the JSON grammar:
 *  - nesting deeper than SRV_DOC_MAX_DEPTH objects/arrays is an error;
 *  - duplicate keys in one object are an error (`layers[0]: duplicate key "bias"`),
 *    compared after unescaping: no parser differential between "first wins"
 *    and "last wins";
 *  - "\u0000" inside strings is refused (cJSON would truncate the string there);
 *  - a scalar number that overflows a double (1e400) is an error;
 *  - invalid UTF-8, NUL bytes, trailing data and an empty body are errors:
 *    "invalid JSON at byte N: <what>".
 *
 * Encode. The caller builds the response with cJSON; tensors and float scalars
 * are placeholder nodes from srv_out_tensor()/srv_out_number(). srv_out_print()
 * prints the document unformatted with cJSON and splices the numbers in,
 * written by std::to_chars as the shortest text that reads back to the same
 * float32 (0.1f -> "0.1", 2.0f -> "2", 1e20f -> "1e+20", -0.0f -> "-0") or
 * float64.
 *
 * Thread safety: every function is reentrant; a doc or an out is used by one
 * thread at a time. All *_free(NULL) are no-ops.
 */
#ifndef RELUD_CODEC_H
#define RELUD_CODEC_H

#include <stddef.h>
#include <stdint.h>

#include <cjson/cJSON.h>

#ifdef __cplusplus
extern "C" {
#endif

#include "core/nn.h"

#define SRV_DOC_MAX_DEPTH 64 /* objects + arrays, outside numeric arrays */

struct srv_doc; /* parsed request: skeleton cJSON + span table; borrows body */

/* Parses body[0..len) (not NUL-terminated; may hold any bytes). On error returns
 * NULL and writes the message into err: "invalid JSON at byte 17: expected ','
 * or ']'", "input: ragged array: input[1] has shape [3] but input[0] has shape
 * [2]", "out of memory". */
struct srv_doc *srv_doc_parse(const char *body, size_t len, struct nn_err *err);
/* Same, with a status (NN_EINVAL bad JSON, NN_ENOMEM) and a nesting bound
 * (1..SRV_DOC_MAX_DEPTH; out of range means SRV_DOC_MAX_DEPTH). */
enum nn_status srv_doc_parse_ex(const char *body, size_t len, int max_depth, struct srv_doc **doc,
                                struct nn_err *err);
/* The most JSON values a document may hold outside its numeric arrays (a numeric array counts
 * as one): more is NN_ETOOBIG before anything is allocated for them. Set once at start from
 * max_json_values (default 100000); 0 = no cap. */
void srv_doc_set_max_values(size_t n);
const cJSON *srv_doc_root(const struct srv_doc *doc);
void srv_doc_free(struct srv_doc *doc);
/* Number of numeric arrays recorded (for tests and bench). */
size_t srv_doc_nspans(const struct srv_doc *doc);

/* Is item a numeric array (a placeholder of doc, or a cJSON array of numbers /
 * nested arrays of numbers, rectangular, rank <= 8)? Fills shape/ndim/numel
 * (any may be NULL) and returns 1; else 0. */
int srv_doc_numarray(const struct srv_doc *doc, const cJSON *item, size_t shape[NN_MAX_DIMS],
                     int *ndim, size_t *numel);

enum srv_num { SRV_F32, SRV_F64, SRV_I64, SRV_NUM_COUNT };

/* Parses the numbers of the numeric array item, row-major, into dst (numel
 * values of type t; numel must equal the array's). `where` names it in errors:
 * "input: 1e39 is out of range for float32", "loss.target: 2.5 is not an
 * integer". Underflow rounds (to a subnormal or zero), as strtof does; -0 and
 * subnormals are preserved. SRV_I64 accepts integral values only (3, -0, 3.0,
 * 3e2); past 2^53 only plain integer digits are accepted (exactness). */
enum nn_status srv_doc_numarray_read(const struct srv_doc *doc, const cJSON *item, enum srv_num t,
                                     void *dst, size_t numel, const char *where,
                                     struct nn_err *err);

enum srv_form { SRV_FORM_NESTED, SRV_FORM_OBJECT, SRV_FORM_FLAT, SRV_FORM_COUNT };

/* A request tensor: nested arrays ([[1, 2], [3, 4]], rank 1..8) or
 * {"shape": [...], "data": [...]} where data is flat with the shape's product
 * of values, or nested with exactly that shape. Allocates t->data (malloc,
 * caller frees, never NULL on success even for 0 elements), sets t->dtype = dt.
 * numel <= max_elems (0 = no cap) with overflow-checked products, and in the
 * object form also the product of the non-zero dims (so [1e9, 0] cannot
 * make a huge nested reply): NN_ETOOBIG. Everything else NN_EINVAL:
 * "input: expected a tensor (nested arrays or {\"shape\", \"data\"})",
 * "grad_output: data has 5 values but shape [2, 3] needs 6",
 * "input: unknown field \"dtype\" in tensor (known: shape, data)".
 * A bare number is not a tensor. form (may be NULL) gets NESTED or OBJECT. */
enum nn_status srv_doc_tensor(const struct srv_doc *doc, const cJSON *item, enum nn_dtype dt,
                              size_t max_elems, const char *where, struct nn_tensor *t,
                              enum srv_form *form, struct nn_err *err);

/* A shape: item is a flat array of 1..8 (0..8 with allow_scalar) integers >= 0.
 * Errors name "<where>.shape". Used by the tensor object form and the OIP inputs. */
enum nn_status srv_doc_shape(const struct srv_doc *doc, const cJSON *item, int allow_scalar,
                             const char *where, size_t shape[NN_MAX_DIMS], int *ndim,
                             struct nn_err *err);

/* Same, for integer class targets (int64). Also accepts rank 0: a bare integer
 * (3) or {"shape": [], "data": [3]}, giving ndim 0 and numel 1. *data is
 * malloc'd (caller frees). */
enum nn_status srv_doc_tensor_i64(const struct srv_doc *doc, const cJSON *item, size_t max_elems,
                                  const char *where, size_t shape[NN_MAX_DIMS], int *ndim,
                                  int64_t **data, struct nn_err *err);

/* ---- output side ---------------------------------------------------------- */
struct srv_out; /* collects placeholders for one response */
struct srv_out *srv_out_new(void);
void srv_out_free(struct srv_out *o);

/* New cJSON node (a cJSON_Raw placeholder) standing for tensor t in the given
 * form: SRV_FORM_NESTED nested arrays of t's shape (a bare number for ndim 0),
 * SRV_FORM_OBJECT {"shape": [...], "data": [flat]}, SRV_FORM_FLAT a flat array
 * (KServe). t->data is borrowed until srv_out_print. NULL on out of memory. */
cJSON *srv_out_tensor(struct srv_out *o, const struct nn_tensor *t, int form);
/* A float scalar printed shortest for its dtype (0.1 as NN_F32 prints "0.1"). */
cJSON *srv_out_number(struct srv_out *o, double v, enum nn_dtype dt);
/* Prints root unformatted with the placeholders spliced in, into a malloc'd
 * NUL-terminated buffer (*len excludes the NUL). NULL + err on failure:
 * NN_ENONFINITE "gradients.input: non-finite value inf at index 3 cannot be
 * written as JSON" (the place is the node's path in root), NN_ENOMEM. */
char *srv_out_print(struct srv_out *o, const cJSON *root, size_t *len, struct nn_err *err);

/* Why the last srv_out_print of o returned NULL: NN_ENONFINITE or NN_ENOMEM. */
enum nn_status srv_out_status(const struct srv_out *o);

/* ---- low level (numconv.cc), for tests and bench -------------------------- */
#define SRV_F32_MAXLEN 24 /* buffer bound for one float32, no NUL */
#define SRV_F64_MAXLEN 32
/* Shortest round-trip text; non-finite values give NaN/Infinity/-Infinity
 * (not JSON: the callers above refuse them first). Returns the length. */
size_t srv_f32_to_str(float v, char *buf);  /* buf >= SRV_F32_MAXLEN bytes */
size_t srv_f64_to_str(double v, char *buf); /* buf >= SRV_F64_MAXLEN bytes */
/* "v0,v1,...": out holds n * (MAXLEN + 1) bytes. Returns the length, or
 * SIZE_MAX with *bad = index of the first non-finite value. */
size_t srv_f32_row_to_str(char *out, const float *v, size_t n, size_t *bad);
size_t srv_f64_row_to_str(char *out, const double *v, size_t n, size_t *bad);
/* Parses n numbers from validated text p..end, skipping any of " \t\r\n,[]"
 * before each. Returns n, or the index of the failing value with
 * [*bad, *bad_end) its text (out of range: the value would be infinite). */
size_t srv_f32_parse_run(const char *p, const char *end, float *dst, size_t n, const char **bad,
                         const char **bad_end);
size_t srv_f64_parse_run(const char *p, const char *end, double *dst, size_t n, const char **bad,
                         const char **bad_end);
/* One number at p; returns 1 if one was read (*stop = its end), else 0. */
int srv_f32_parse(const char *p, const char *end, float *v, const char **stop);
int srv_f64_parse(const char *p, const char *end, double *v, const char **stop);

#ifdef __cplusplus
}
#endif

#endif
