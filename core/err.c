/* Status messages, dtypes and the invariant assert. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>

#include "core/nn_impl.h"

enum nn_status nn_err_set(struct nn_err *err, enum nn_status st, const char *fmt, ...)
{
    if (err) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(err->msg, sizeof err->msg, fmt, ap);
        va_end(ap);
    }
    return st;
}

_Noreturn void nn_assert_fail(const char *expr, const char *file, int line)
{
    fprintf(stderr, "%s:%d: internal invariant failed: %s\n", file, line, expr);
    abort();
}

const char *const nn_dtype_names[NN_DTYPE_COUNT] = {
    [NN_F32] = "float32",
    [NN_F64] = "float64",
};

size_t nn_dtype_size(enum nn_dtype dt) { return dt == NN_F64 ? sizeof(double) : sizeof(float); }
