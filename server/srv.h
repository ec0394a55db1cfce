/* relud server: the daemon's state, one request and its reply, as the handlers see them.
 * The transport (http.c) fills a request and sends its reply; handlers never call into it
 * (a request's headers come through the function it leaves in the request). */
#ifndef RELUD_SRV_H
#define RELUD_SRV_H

#include <pthread.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#include "config/cfg.h"
#include "core/nn.h"
#include "server/blas.h"
#include "server/jsonw.h"
#include "server/routes.h"

struct MHD_Daemon;
struct srv_engine;
struct srv_keys;
struct srv_metrics;
struct srv_models;
struct srv_trainer;

/* ---- the running server ---------------------------------------------------------- */
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
    struct srv_engine *engine; /* dynamic batching's workers (server/batch.h) */
    /* training jobs and their workers (server/train.h) */
    struct srv_trainer *trainer;
    struct srv_keys *keys;      /* api_keys_file's digests, or NULL (server/auth.h) */
    pthread_rwlock_t keys_lock; /* keys is swapped under it (SIGHUP) */
    struct srv_blas blas;       /* the BLAS kernel in use and why (relud_build_info) */
    uint64_t nonce;             /* request-id generator state */
    atomic_int *stop_signals;   /* SIGTERM/SIGINT count: a second one ends the drain */
};

/* ---- a reply ------------------------------------------------------------------------ */
#define SRV_MAX_HEADERS 4
/* Bytes sent after a reply's body where they lie, without a copy (OIP's binary outputs,
 * in the pass's workspace): pieces of block, which the reply owns from then on; freed with
 * the response, once the last byte is sent. */
struct srv_tail {
    void *block;
    char *body;   /* the reply's body, once a response holds both (the transport's) */
    size_t bytes; /* of all the pieces */
    int n;
    struct srv_piece {
        const void *base;
        size_t len;
    } piece[];
};
struct srv_reply {
    unsigned status;
    const char *ctype; /* default application/json */
    char *body;        /* malloc'd, owned by the reply; NULL: the out-of-memory reply */
    size_t len;
    struct srv_tail *tail; /* sent after body, or NULL; owned by the reply */
    struct {
        const char *name;
        char value[96];
    } hdr[SRV_MAX_HEADERS];
    int nhdr;
};

/* {"error": "<message>"} with status (the writer makes the message valid UTF-8). */
void srv_reply_error(struct srv_reply *rep, unsigned status, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* The error reply for a core status: its HTTP code and err's message; the 503s (out of
 * memory, a pass cut by the drain) carry Retry-After. */
void srv_reply_nn_error(struct srv_reply *rep, enum nn_status st, const struct nn_err *err);
/* The writer's text as the body; its error (non-finite value, out of memory) as an error
 * reply. Frees the writer. */
void srv_reply_jw(struct srv_reply *rep, unsigned status, struct srv_jw *w);
/* Sets the reply's body (dropping the one it had, and its tail). */
void srv_reply_body(struct srv_reply *rep, unsigned status, const char *ctype, char *body,
                    size_t len);
/* Frees what the reply owns (a reply that will not be sent). */
void srv_reply_free(struct srv_reply *rep);
void srv_tail_free(struct srv_tail *t);
void srv_reply_header(struct srv_reply *rep, const char *name, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* ---- a request ---------------------------------------------------------------------- */
#define SRV_MAX_CAPTURE 128
struct srv_req {
    struct srv *srv;
    enum srv_route route;
    const char *method;
    char path[256];             /* truncated copy for logs */
    char name[SRV_MAX_CAPTURE]; /* {name} */
    char version[32];           /* {version} */
    char id[80];                /* X-Request-Id */
    uint64_t t0_ns;
    char *body; /* request body, NUL-terminated, capped */
    size_t len;
    char model[SRV_MAX_CAPTURE]; /* model used, for per-model metrics ("" none) */
    char key_id[12];             /* the access key's id (auth.h), "" none */
    /* The transport's: a header by name (NULL when absent), its connection, and parking
     * it (see srv_req_defer). */
    const char *(*header)(const struct srv_req *req, const char *name);
    void (*park)(struct srv_req *req);
    void (*wake)(struct srv_req *req);
    void *conn;
    /* A deferred reply (srv_req_defer). */
    void (*finish)(struct srv_req *req, struct srv_reply *rep, void *ctx);
    void *finish_ctx;
};

/* The request header name, or NULL. */
static inline const char *srv_req_header(const struct srv_req *req, const char *name)
{
    return req->header ? req->header(req, name) : NULL;
}

/* The admin token on req (server/repo.c): 1 if it is there and right; else the reply is
 * made (403 when no admin_token is configured, "<what> is disabled: ..."; 401 with
 * WWW-Authenticate when missing or wrong, counted in metrics) and 0. */
int srv_admin_authorized(struct srv_req *req, struct srv_reply *rep, const char *what);

/* A handler that hands its work to another thread (a batch) calls srv_req_defer and
 * returns without a reply (status 0). The transport parks the connection: it is not read,
 * timed out or answered while the work runs, and the thread goes on serving others. The
 * thread that finishes the work calls srv_req_wake as its last touch of the request; the
 * transport then calls finish(req, rep, ctx) on one of its own threads, which builds the
 * reply as a handler would. finish runs exactly once: also when the connection is closed
 * before, with a reply nobody will read, so that it always frees ctx. */
static inline void
srv_req_defer(struct srv_req *req,
              void (*finish)(struct srv_req *req, struct srv_reply *rep, void *ctx), void *ctx)
{
    req->finish = finish;
    req->finish_ctx = ctx;
    req->park(req);
}
static inline void srv_req_wake(struct srv_req *req) { req->wake(req); }

typedef void srv_handler_fn(struct srv_req *req, struct srv_reply *rep);
#define X(ID, m, p, h) srv_handler_fn h;
SRV_ROUTE_LIST(X)
#undef X

uint64_t srv_now_ns(void); /* monotonic */

#endif
