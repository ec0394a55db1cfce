/* libFuzzer target: request parsing + validation + the pass, as the daemon runs them.
 * The first input byte picks the handler (POST /v1/forward or the OIP infer of the
 * bundled simple_nn model); the rest is the body. The handlers are called directly,
 * without libmicrohttpd, with small caps so each run stays fast. Any crash, leak,
 * sanitizer report or a reply that is not 200 with a body or {"error": ...} is a bug. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "server/http.h"
#include "server/log.h"
#include "server/metrics.h"
#include "server/models.h"
#include "server/srv.h"

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const unsigned char *data, size_t size);

static struct srv srv;

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    cfg_defaults(&srv.cfg);
    srv.cfg.max_tensor_elements = 1 << 14;
    srv.cfg.max_workspace_bytes = 4 << 20;
    srv.cfg.max_layers = 32;
    srv.cfg.max_json_values = 4096;
    srv_log_init(CFG_LOG_ERROR, CFG_LOG_TEXT, 0);
    const char *dir = getenv("RELUD_FUZZ_MODELS");
    srv.models = srv_models_new(dir ? dir : "config/models", 4096);
    struct nn_err err;
    srv_models_load_all(srv.models, 0, &err);
    srv.metrics = srv_metrics_new();
    return 0;
}

int LLVMFuzzerTestOneInput(const unsigned char *data, size_t size)
{
    if (size < 1)
        return 0;
    struct srv_req req = {0};
    req.srv = &srv;
    req.method = "POST";
    req.len = size - 1;
    req.body = malloc(size);
    memcpy(req.body, data + 1, size - 1);
    req.body[size - 1] = 0;
    struct srv_reply rep = {0};
    if (data[0] & 1) {
        req.route = SRV_R_INFER;
        snprintf(req.name, sizeof req.name, "simple_nn");
    } else {
        req.route = SRV_R_FORWARD;
    }
    srv_run_handler(&req, &rep);
    if (!rep.body || rep.status < 200 || rep.status == 500 || rep.status >= 600)
        abort();
    if (rep.status != 200 && strncmp(rep.body, "{\"error\":", 9) != 0)
        abort();
    free(rep.body);
    free(req.body);
    return 0;
}
