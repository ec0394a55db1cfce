/* The status table: see status.h. */
#include "server/status.h"

static const unsigned codes[SRV_S_COUNT] = {
#define X(code, reason, cls) code,
    SRV_STATUS_LIST(X)
#undef X
};
static const char *const classes[SRV_S_COUNT] = {
#define X(code, reason, cls) cls,
    SRV_STATUS_LIST(X)
#undef X
        [SRV_S_OTHER] = "other",
};
static const char *const labels[SRV_S_COUNT] = {
#define X(code, reason, cls) #code,
    SRV_STATUS_LIST(X)
#undef X
        [SRV_S_OTHER] = "other",
};

int srv_status_slot(unsigned code)
{
    for (int i = 0; i < SRV_S_OTHER; i++)
        if (codes[i] == code)
            return i;
    return SRV_S_OTHER;
}
unsigned srv_status_code(int slot) { return codes[slot]; }
const char *srv_status_class(int slot) { return classes[slot]; }
const char *srv_status_label(int slot) { return labels[slot]; }

unsigned srv_status_from_nn(enum nn_status st)
{
    switch (st) {
    case NN_OK: return 200;
    case NN_EINVAL: return 400;
    case NN_ETOOBIG: return 413;
    case NN_ENONFINITE: return 422;
    case NN_ENOMEM:
    case NN_ECANCELED:
    case NN_EUNAVAILABLE: return 503;
    case NN_ENOTFOUND: return 404;
    case NN_EIO: return 500;
    case NN_STATUS_COUNT: break;
    }
    return 500;
}
