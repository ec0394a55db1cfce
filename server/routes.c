/* The route table's names: see routes.h. */
#include "server/routes.h"

const char *const srv_route_methods[SRV_R_COUNT] = {
#define X(ID, m, p, h) [SRV_R_##ID] = m,
    SRV_ROUTE_LIST(X)
#undef X
        [SRV_R_OTHER] = "",
};

const char *const srv_route_patterns[SRV_R_COUNT] = {
#define X(ID, m, p, h) [SRV_R_##ID] = p,
    SRV_ROUTE_LIST(X)
#undef X
        [SRV_R_OTHER] = "other",
};

int srv_route_is_health(enum srv_route r)
{
    return r == SRV_R_LIVE || r == SRV_R_READY || r == SRV_R_METRICS;
}

int srv_route_is_admin(enum srv_route r)
{
    return r == SRV_R_MODEL_PUT || r == SRV_R_MODEL_DELETE || r == SRV_R_REPO_LOAD ||
           r == SRV_R_REPO_UNLOAD || r == SRV_R_TRAIN_START || r == SRV_R_TRAIN_CANCEL;
}

int srv_route_is_public(enum srv_route r)
{
    return r == SRV_R_LIVE || r == SRV_R_READY || r == SRV_R_CONSOLE || r == SRV_R_CONSOLE_FILE ||
           r == SRV_R_DOCS || r == SRV_R_OPENAPI;
}
