/* relud server: shared types of the HTTP glue, routes, handlers, metrics, logging. */
#ifndef RELUD_SRV_H
#define RELUD_SRV_H

#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#include <cjson/cJSON.h>

#include "config/cfg.h"
#include "core/nn.h"
#include "server/blas.h"

struct MHD_Connection;
struct MHD_Daemon;
struct srv_models;

/* ---- HTTP status codes relud answers: one list ----------------------------
 * X(code, reason, error class label for metrics) */
#define SRV_STATUS_LIST(X)                                     \
    X(200, "OK", "ok")                                         \
    X(201, "Created", "ok")                                    \
    X(400, "Bad Request", "invalid_request")                   \
    X(401, "Unauthorized", "unauthorized")                     \
    X(403, "Forbidden", "forbidden")                           \
    X(404, "Not Found", "not_found")                           \
    X(405, "Method Not Allowed", "method_not_allowed")         \
    X(408, "Request Timeout", "timeout")                       \
    X(413, "Content Too Large", "too_large")                   \
    X(415, "Unsupported Media Type", "unsupported_media_type") \
    X(422, "Unprocessable Content", "non_finite")              \
    X(499, "Client Closed Request", "client_closed")           \
    X(500, "Internal Server Error", "internal")                \
    X(501, "Not Implemented", "not_implemented")               \
    X(503, "Service Unavailable", "unavailable")

enum srv_status_slot {
#define X(code, reason, cls) SRV_S_##code,
    SRV_STATUS_LIST(X)
#undef X
        SRV_S_OTHER, /* a code not in the list: counted as code="other", never as 500 */
    SRV_S_COUNT
};
int srv_status_slot(unsigned code); /* slot, or SRV_S_OTHER for a code not in the list */
unsigned srv_status_code(int slot);
const char *srv_status_class(int slot);
/* The HTTP status for a core status: EINVAL 400, ETOOBIG 413, ENONFINITE 422, ENOMEM 503. */
unsigned srv_status_from_nn(enum nn_status st);
/* Makes s valid UTF-8 in place: a byte that does not start a valid sequence becomes '?',
 * a sequence cut at the end is dropped. Every message of a JSON reply passes here. */
void srv_utf8_repair(char *s);

/* ---- routes: one list ------------------------------------------------------
 * X(ID, method, pattern, handler). Pattern segments "{name}" capture a model name and
 * "{version}" a version; metrics label a request by its pattern. */
#define SRV_ROUTE_LIST(X)                                                                    \
    X(V2_META, "GET", "/v2", srv_h_server_meta)                                              \
    X(LIVE, "GET", "/v2/health/live", srv_h_live)                                            \
    X(READY, "GET", "/v2/health/ready", srv_h_ready)                                         \
    X(METRICS, "GET", "/metrics", srv_h_metrics)                                             \
    X(FORWARD, "POST", "/v1/forward", srv_h_forward)                                         \
    X(MODELS_LIST, "GET", "/v1/models", srv_h_models_list)                                   \
    X(MODEL_PUT, "PUT", "/v1/models/{name}", srv_h_model_put)                                \
    X(MODEL_DELETE, "DELETE", "/v1/models/{name}", srv_h_model_delete)                       \
    X(ALL_STATS, "GET", "/v2/models/stats", srv_h_model_stats)                               \
    X(MODEL_META, "GET", "/v2/models/{name}", srv_h_model_meta)                              \
    X(MODEL_META_V, "GET", "/v2/models/{name}/versions/{version}", srv_h_model_meta)         \
    X(MODEL_READY, "GET", "/v2/models/{name}/ready", srv_h_model_ready)                      \
    X(MODEL_READY_V, "GET", "/v2/models/{name}/versions/{version}/ready", srv_h_model_ready) \
    X(INFER, "POST", "/v2/models/{name}/infer", srv_h_infer)                                 \
    X(INFER_V, "POST", "/v2/models/{name}/versions/{version}/infer", srv_h_infer)            \
    X(MODEL_STATS, "GET", "/v2/models/{name}/stats", srv_h_model_stats)                      \
    X(MODEL_STATS_V, "GET", "/v2/models/{name}/versions/{version}/stats", srv_h_model_stats) \
    X(REPO_INDEX, "POST", "/v2/repository/index", srv_h_repo_index)                          \
    X(REPO_LOAD, "POST", "/v2/repository/models/{name}/load", srv_h_repo_load)               \
    X(REPO_UNLOAD, "POST", "/v2/repository/models/{name}/unload", srv_h_repo_unload)

enum srv_route {
#define X(ID, m, p, h) SRV_R_##ID,
    SRV_ROUTE_LIST(X)
#undef X
        SRV_R_OTHER, /* unknown path or method: labelled "other" in metrics */
    SRV_R_COUNT
};
extern const char *const srv_route_patterns[SRV_R_COUNT];

/* ---- the running server ---------------------------------------------------- */
struct srv_metrics;

struct srv {
    struct cfg cfg;
    struct MHD_Daemon *daemon;
    int port;               /* bound port */
    char instance[128];     /* "hostname:pid", X-Relud-Instance */
    atomic_int ready;       /* 0 starting, 1 ready, 2 draining */
    atomic_int cancel;      /* 1: passes stop between layers (the end of a drain) */
    atomic_long inflight;   /* requests between first handler call and completion */
    atomic_long conns;      /* open client connections */
    atomic_size_t buffered; /* request body bytes held across connections */
    struct srv_metrics *metrics;
    struct srv_models *models;
    struct srv_blas blas;     /* the BLAS kernel in use and why (relud_build_info) */
    uint64_t nonce;           /* request-id generator state */
    atomic_int *stop_signals; /* SIGTERM/SIGINT count: a second one ends the drain */
};

/* A handler's reply. body is malloc'd and owned by the reply. */
#define SRV_MAX_HEADERS 4
struct srv_reply {
    unsigned status;
    const char *ctype; /* default application/json */
    char *body;
    size_t len;
    struct {
        const char *name;
        char value[96];
    } hdr[SRV_MAX_HEADERS];
    int nhdr;
};

/* ---- one request ----------------------------------------------------------- */
#define SRV_MAX_CAPTURE 128
struct srv_req {
    struct srv *srv;
    struct MHD_Connection *conn;
    enum srv_route route;
    const char *method;
    char path[256];             /* truncated copy for logs */
    char name[SRV_MAX_CAPTURE]; /* {name} */
    char version[32];           /* {version} */
    char id[80];                /* X-Request-Id */
    uint64_t t0_ns;
    char *body; /* request body, NUL-terminated, capped */
    size_t len, cap;
    size_t reserved; /* bytes counted in srv.buffered for this request */
    /* An early refusal (413/503/404/405/415) waits here while the rest of the body is read
     * and dropped, for up to linger_timeout and linger_bytes, so a client that sends its
     * whole body before reading sees the reply, not a reset. */
    struct srv_reply early;
    int has_early;
    uint64_t linger_since;   /* ns */
    size_t dropped;          /* body bytes read and dropped */
    int close;               /* the reply carries Connection: close */
    unsigned status;         /* reply status, for the access log and metrics */
    const char *undelivered; /* why the queued reply never fully reached the client, or NULL */
    size_t bytes_out;
    char model[SRV_MAX_CAPTURE]; /* model used, for per-model metrics ("" none) */
};

typedef void srv_handler_fn(struct srv_req *req, struct srv_reply *rep);
#define X(ID, m, p, h) srv_handler_fn h;
SRV_ROUTE_LIST(X)
#undef X

/* Reply helpers (http.c) */
void srv_reply_error(struct srv_reply *rep, unsigned status, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* The error reply for a core status: its HTTP code and err's message; 503s (out of memory,
 * a pass cut by the drain) carry Retry-After. */
void srv_reply_nn_error(struct srv_reply *rep, enum nn_status st, const struct nn_err *err);
/* Serialises and deletes doc. */
void srv_reply_json(struct srv_reply *rep, unsigned status, cJSON *doc);
void srv_reply_body(struct srv_reply *rep, unsigned status, const char *ctype, char *body,
                    size_t len);
void srv_reply_header(struct srv_reply *rep, const char *name, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
const char *srv_req_header(const struct srv_req *req, const char *name);

/* Routes every cJSON allocation through a hook that notices failures (once, at start). */
void srv_alloc_hooks_init(void);
/* Runs req's route handler into rep; a reply built while an allocation failed becomes a
 * 503 (never a partial 200). The daemon and the in-process tests call handlers this way. */
void srv_run_handler(struct srv_req *req, struct srv_reply *rep);

/* Lifecycle (http.c) */
int srv_start(struct srv *s, char *err, size_t errlen);
/* Flips readiness, stops accepting, waits for in-flight requests up to drain_timeout. */
void srv_drain_and_stop(struct srv *s);

/* ---- metrics (metrics.c) ---------------------------------------------------- */
struct srv_metrics *srv_metrics_new(void);
void srv_metrics_free(struct srv_metrics *m);
void srv_metrics_observe(struct srv_metrics *m, enum srv_route route, unsigned status,
                         double seconds, size_t bytes_in, size_t bytes_out);
/* A request libmicrohttpd answered itself (malformed, header too large...), by status. */
void srv_metrics_protocol_error(struct srv_metrics *m, unsigned status);
/* Prometheus text exposition; malloc'd. */
char *srv_metrics_render(const struct srv *s, size_t *len);

/* A growing string for text replies (metrics.c). */
struct srv_sb {
    char *p;
    size_t len, cap;
    int oom;
};
void srv_sb_printf(struct srv_sb *sb, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Appends n raw bytes (may hold NULs); p stays NUL-terminated after them. */
void srv_sb_append(struct srv_sb *sb, const void *data, size_t n);

/* ---- logging (log.c) -------------------------------------------------------- */
void srv_log_init(int level, int format, int access);
void srv_log(int level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void srv_log_access(const struct srv_req *req, double us);

/* ---- time ------------------------------------------------------------------- */
uint64_t srv_now_ns(void);

#endif
