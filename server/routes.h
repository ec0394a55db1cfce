/* The routes relud serves: one list. X(ID, method, pattern, handler). Pattern segments
 * "{name}" capture a model name (a file name under /console/) and "{version}" a version
 * (any other "{...}", e.g. a training job's "{id}", lands in the version slot too);
 * metrics and the access log label a request by its pattern. The handlers are declared in
 * srv.h; the transport dispatches. */
#ifndef RELUD_ROUTES_H
#define RELUD_ROUTES_H

#define SRV_ROUTE_LIST(X)                                                                       \
    X(V2_META, "GET", "/v2", srv_h_server_meta)                                                 \
    X(LIVE, "GET", "/v2/health/live", srv_h_live)                                               \
    X(READY, "GET", "/v2/health/ready", srv_h_ready)                                            \
    X(METRICS, "GET", "/metrics", srv_h_metrics)                                                \
    X(FORWARD, "POST", "/v1/forward", srv_h_forward)                                            \
    X(MODELS_LIST, "GET", "/v1/models", srv_h_models_list)                                      \
    X(MODEL_PUT, "PUT", "/v1/models/{name}", srv_h_model_put)                                   \
    X(MODEL_DELETE, "DELETE", "/v1/models/{name}", srv_h_model_delete)                          \
    X(MODEL_INFO, "GET", "/v1/models/{name}", srv_h_model_info)                                 \
    X(TRAIN_START, "POST", "/v1/models/{name}/train", srv_h_train_start)                        \
    X(TRAIN_LIST, "GET", "/v1/train", srv_h_train_list)                                         \
    X(TRAIN_GET, "GET", "/v1/train/{id}", srv_h_train_get)                                      \
    X(TRAIN_CANCEL, "DELETE", "/v1/train/{id}", srv_h_train_cancel)                             \
    X(ALL_STATS, "GET", "/v2/models/stats", srv_h_model_stats)                                  \
    X(MODEL_META, "GET", "/v2/models/{name}", srv_h_model_meta)                                 \
    X(MODEL_META_V, "GET", "/v2/models/{name}/versions/{version}", srv_h_model_meta)            \
    X(MODEL_READY, "GET", "/v2/models/{name}/ready", srv_h_model_ready)                         \
    X(MODEL_READY_V, "GET", "/v2/models/{name}/versions/{version}/ready", srv_h_model_ready)    \
    X(INFER, "POST", "/v2/models/{name}/infer", srv_h_infer)                                    \
    X(INFER_V, "POST", "/v2/models/{name}/versions/{version}/infer", srv_h_infer)               \
    X(MODEL_CONFIG, "GET", "/v2/models/{name}/config", srv_h_model_config)                      \
    X(MODEL_CONFIG_V, "GET", "/v2/models/{name}/versions/{version}/config", srv_h_model_config) \
    X(MODEL_STATS, "GET", "/v2/models/{name}/stats", srv_h_model_stats)                         \
    X(MODEL_STATS_V, "GET", "/v2/models/{name}/versions/{version}/stats", srv_h_model_stats)    \
    X(REPO_INDEX, "POST", "/v2/repository/index", srv_h_repo_index)                             \
    X(REPO_LOAD, "POST", "/v2/repository/models/{name}/load", srv_h_repo_load)                  \
    X(REPO_UNLOAD, "POST", "/v2/repository/models/{name}/unload", srv_h_repo_unload)            \
    X(CONSOLE, "GET", "/", srv_h_console)                                                       \
    X(CONSOLE_FILE, "GET", "/console/{name}", srv_h_console_file)                               \
    X(DOCS, "GET", "/docs", srv_h_docs)                                                         \
    X(OPENAPI, "GET", "/openapi.json", srv_h_openapi)

enum srv_route {
#define X(ID, m, p, h) SRV_R_##ID,
    SRV_ROUTE_LIST(X)
#undef X
        SRV_R_OTHER, /* unknown path or method: labelled "other" */
    SRV_R_COUNT
};

extern const char *const srv_route_methods[SRV_R_COUNT];
extern const char *const srv_route_patterns[SRV_R_COUNT];

/* Health probes and /metrics: answered while draining and over the connection limit. */
int srv_route_is_health(enum srv_route r);
/* Model control (admin_token): never open to every web origin (cors_origins "*"). */
int srv_route_is_admin(enum srv_route r);
/* Pages with no data of anyone's (the readiness probes, the console's files, the API
 * document): no access key needed. */
int srv_route_is_public(enum srv_route r);

#endif
