/* libFuzzer target: the ONNX reader (server/onnx.c) on arbitrary bytes, as a NAME.onnx file
 * in model_dir would reach it (external data refused: no directory). Any crash, leak,
 * sanitizer report, or a status other than a load or a refusal is a bug; a file that loads
 * has a net and the graph's names, a refusal names the file. Seeds: tests/fuzz/corpus_onnx (small
 * fixtures of tests/fixtures/onnx). */
#include <stdlib.h>
#include <string.h>

#include "server/onnx.h"

int LLVMFuzzerTestOneInput(const unsigned char *data, size_t size);

int LLVMFuzzerTestOneInput(const unsigned char *data, size_t size)
{
    struct srv_onnx_model m;
    struct nn_err err;
    enum nn_status st = srv_onnx_parse(data, size, "fuzz.onnx", NULL, &m, &err);
    if (st != NN_OK && st != NN_EINVAL && st != NN_ETOOBIG && st != NN_ENOMEM)
        abort();
    if (st == NN_OK) {
        if (!m.sig || m.net.nlayers < 1 || !m.sig->input[0] || !m.sig->output[0])
            abort();
    } else if (!strstr(err.msg, "fuzz.onnx")) {
        abort(); /* every refusal names the file */
    }
    srv_onnx_model_free(&m);
    return 0;
}
