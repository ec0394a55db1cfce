/* safetensors: the format PyTorch users get from safetensors.torch.save_file(state_dict).
 *
 *   [8 bytes]  N, little-endian u64: the header length
 *   [N bytes]  JSON object: {"NAME": {"dtype": "F32", "shape": [out, in],
 *                                     "data_offsets": [begin, end]}, ...,
 *                            "__metadata__": {"k": "v", ...}}   (optional)
 *   [rest]     the data buffer; offsets are relative to its start, tensors row-major,
 *              little-endian
 *
 * Every number in the header is bounds-checked before use: N <= file size - 8 and
 * <= SRV_ST_MAX_HEADER; each [begin, end] inside the data buffer with begin <= end and
 * end - begin == numel * dtype size (overflow-checked); rank <= NN_MAX_DIMS; the tensors
 * tile the data buffer exactly (no overlap, no hole, no trailing bytes: the format's own
 * rule, so polyglot files are refused); a tensor name appears once; the header is one JSON
 * object, optionally padded with spaces. Messages name the file (the label) and the tensor:
 *   mnist_mlp.safetensors: tensor "0.weight" data_offsets [0, 401408] exceed the data size 1000
 *
 * Files are mapped read-only (PROT_READ, MAP_PRIVATE) only while a model is built. Replace
 * a safetensors file by rename, never by rewriting it in place: a file truncated while
 * mapped faults (SIGBUS) on access. Parameters are always COPIED out of
 * the map (srv_st_tensor_load) into malloc'd memory in the net's dtype: the data buffer
 * has no alignment guarantee (its start is 8 + N), F16/BF16 need converting anyway, the
 * layer parser's contract is "malloc'd, owned by the net", and a copy makes the model
 * independent of the file (which a PUT or an editor may replace under us). So a model
 * keeps no mapping once built; srv_st_close unmaps.
 *
 * Values are checked finite when loaded: a NaN or inf weight is an error naming the
 * tensor and the index, never a silent 422 on every request later. */
#ifndef RELUD_SAFETENSORS_H
#define RELUD_SAFETENSORS_H

#include <stddef.h>

#include "core/nn.h"

#define SRV_ST_MAX_HEADER ((size_t)100 * 1024 * 1024)

/* Every dtype the format defines: X(ID, name in the header, element bytes, loadable).
 * Loadable rows convert to float32/float64 parameters; the others parse (so the file's
 * layout is still checked) but are refused when a layer asks for them. */
#define SRV_ST_DTYPE_LIST(X)    \
    X(F64, "F64", 8, 1)         \
    X(F32, "F32", 4, 1)         \
    X(F16, "F16", 2, 1)         \
    X(BF16, "BF16", 2, 1)       \
    X(I64, "I64", 8, 0)         \
    X(I32, "I32", 4, 0)         \
    X(I16, "I16", 2, 0)         \
    X(I8, "I8", 1, 0)           \
    X(U64, "U64", 8, 0)         \
    X(U32, "U32", 4, 0)         \
    X(U16, "U16", 2, 0)         \
    X(U8, "U8", 1, 0)           \
    X(BOOL, "BOOL", 1, 0)       \
    X(F8_E5M2, "F8_E5M2", 1, 0) \
    X(F8_E4M3, "F8_E4M3", 1, 0)

enum srv_st_dtype {
#define X(ID, name, size, loadable) SRV_ST_##ID,
    SRV_ST_DTYPE_LIST(X)
#undef X
        SRV_ST_DTYPE_COUNT
};

struct srv_st_tensor {
    char *name; /* owned */
    enum srv_st_dtype dtype;
    int ndim; /* 0 (a scalar) .. NN_MAX_DIMS */
    size_t shape[NN_MAX_DIMS];
    size_t numel;
    size_t begin, end;         /* data_offsets, relative to the data buffer */
    const unsigned char *data; /* begin's address in the buffer; unaligned */
    int used;                  /* set by srv_st_tensor_load: for "not used by any layer" */
};

struct srv_st_file {
    char label[96]; /* the file's name for messages ("mnist_mlp.safetensors") */
    void *map;      /* srv_st_open's mapping, or NULL (srv_st_parse on a buffer) */
    size_t map_len;
    const unsigned char *data; /* the data buffer */
    size_t data_len;
    int ntensors;
    struct srv_st_tensor *tensors; /* owned, in header order */
};

/* Maps path read-only and parses it (label: the name used in messages, usually the base
 * name). On error f is left empty (srv_st_close is still safe). NN_EINVAL for a bad
 * file, NN_ENOMEM. */
enum nn_status srv_st_open(struct srv_st_file *f, const char *path, const char *label,
                           struct nn_err *err);
/* Parses a file already in memory (buf must outlive f; not copied, not freed). */
enum nn_status srv_st_parse(struct srv_st_file *f, const void *buf, size_t len, const char *label,
                            struct nn_err *err);
/* Frees the table and unmaps; srv_st_close on a zeroed or closed f is a no-op. */
void srv_st_close(struct srv_st_file *f);

/* The tensor called name, or NULL. Not const: srv_st_tensor_load marks it used. */
struct srv_st_tensor *srv_st_find(struct srv_st_file *f, const char *name);

/* Copies (and converts) t into a fresh malloc'd buffer of dtype dt and fills out (ndim,
 * shape, numel, dtype, data); marks t used. F16/BF16/F32/F64 -> float32/float64; a value
 * outside dt's range or non-finite is an error naming the tensor and index; integer,
 * bool and fp8 dtypes are refused; a scalar (rank 0) is refused (layers need rank >= 1). */
enum nn_status srv_st_tensor_load(const struct srv_st_file *f, struct srv_st_tensor *t,
                                  enum nn_dtype dt, struct nn_tensor *out, struct nn_err *err);

extern const char *const srv_st_dtype_names[SRV_ST_DTYPE_COUNT];
size_t srv_st_dtype_size(enum srv_st_dtype dt);

/* IEEE half / bfloat16 bits -> float (exact: every such value is a float). */
float srv_st_f16_to_f32(unsigned short h);
float srv_st_bf16_to_f32(unsigned short h);

#endif
