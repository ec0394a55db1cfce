/* The libmicrohttpd glue: routing, HTTP framing checks, capped request bodies, early
 * refusals that still read (and drop) the body, replies, request ids, the connection
 * limit, start and drain. Per-request context lives in the connection slot (*con_cls) and
 * is freed in the request-completed callback (libmicrohttpd's own examples, v0.9.75). */
#include <arpa/inet.h>
#include <cjson/cJSON.h>
#include <errno.h>
#include <microhttpd.h>
#include <netdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include "server/srv.h"

/* ---- status table ------------------------------------------------------------ */
static const unsigned status_codes[SRV_S_COUNT] = {
#define X(code, reason, cls) code,
    SRV_STATUS_LIST(X)
#undef X
};
static const char *const status_classes[SRV_S_COUNT] = {
#define X(code, reason, cls) cls,
    SRV_STATUS_LIST(X)
#undef X
        [SRV_S_OTHER] = "other",
};

int srv_status_slot(unsigned code)
{
    for (int i = 0; i < SRV_S_OTHER; i++)
        if (status_codes[i] == code)
            return i;
    return SRV_S_OTHER;
}
unsigned srv_status_code(int slot) { return status_codes[slot]; }
const char *srv_status_class(int slot) { return status_classes[slot]; }

unsigned srv_status_from_nn(enum nn_status st)
{
    switch (st) {
    case NN_OK: return 200;
    case NN_EINVAL: return 400;
    case NN_ETOOBIG: return 413;
    case NN_ENONFINITE: return 422;
    case NN_ENOMEM: return 503;
    case NN_ECANCELED: return 503;
    case NN_STATUS_COUNT: break;
    }
    return 500;
}

/* ---- routes table ------------------------------------------------------------- */
struct route {
    const char *method;
    const char *pattern;
    srv_handler_fn *handler;
};
static const struct route routes[] = {
#define X(ID, m, p, h) [SRV_R_##ID] = {m, p, h},
    SRV_ROUTE_LIST(X)
#undef X
};
const char *const srv_route_patterns[SRV_R_COUNT] = {
#define X(ID, m, p, h) [SRV_R_##ID] = p,
    SRV_ROUTE_LIST(X)
#undef X
        [SRV_R_OTHER] = "other",
};

/* Matches path against pattern segment by segment; captures {name} and {version}.
 * Captures are URL segments as sent (model names are [A-Za-z0-9_.-], checked later). */
static int route_match(const char *pattern, const char *path, struct srv_req *req)
{
    const char *p = pattern, *u = path;
    while (*p && *u) {
        if (*p != '/' || *u != '/')
            return 0;
        p++, u++;
        const char *pe = strchr(p, '/'), *ue = strchr(u, '/');
        size_t pl = pe ? (size_t)(pe - p) : strlen(p), ul = ue ? (size_t)(ue - u) : strlen(u);
        if (pl > 2 && p[0] == '{') {
            char *dst = strncmp(p, "{name}", 6) == 0 ? req->name : req->version;
            size_t cap = dst == req->name ? sizeof req->name : sizeof req->version;
            if (ul == 0 || ul >= cap)
                return 0;
            memcpy(dst, u, ul);
            dst[ul] = 0;
        } else if (pl != ul || memcmp(p, u, pl) != 0) {
            return 0;
        }
        p += pl, u += ul;
    }
    return *p == 0 && (*u == 0 || (u[0] == '/' && u[1] == 0));
}

/* Finds the route; on a path match with the wrong method fills allow ("GET, HEAD"). */
static enum srv_route route_find(struct srv_req *req, const char *path, const char *method,
                                 char *allow, size_t allowlen)
{
    const char *m = strcmp(method, "HEAD") == 0 ? "GET" : method;
    allow[0] = 0;
    for (int i = 0; i < SRV_R_OTHER; i++) {
        if (!route_match(routes[i].pattern, path, req))
            continue;
        if (strcmp(routes[i].method, m) == 0)
            return (enum srv_route)i;
        if (!strstr(allow, routes[i].method)) {
            size_t n = strlen(allow);
            snprintf(allow + n, allowlen - n, "%s%s%s", n ? ", " : "", routes[i].method,
                     strcmp(routes[i].method, "GET") == 0 ? ", HEAD" : "");
        }
    }
    return SRV_R_OTHER;
}

/* ---- allocation failures ----------------------------------------------------------
 * A reply built with cJSON drops a member whose allocation failed (cJSON_Add... returns
 * false, and callers do not check each one). Every cJSON allocation goes through this hook,
 * which marks the thread; a handler whose reply was built while an allocation failed
 * answers 503, never a 200 with a field missing. */
static _Thread_local int alloc_failed;

static void *hook_malloc(size_t n)
{
    void *p = malloc(n);
    if (!p)
        alloc_failed = 1;
    return p;
}

void srv_alloc_hooks_init(void)
{
    cJSON_Hooks h = {hook_malloc, free};
    cJSON_InitHooks(&h);
}

/* ---- replies ------------------------------------------------------------------- */
void srv_reply_body(struct srv_reply *rep, unsigned status, const char *ctype, char *body,
                    size_t len)
{
    free(rep->body);
    rep->status = status;
    rep->ctype = ctype;
    rep->body = body;
    rep->len = len;
}

void srv_reply_json(struct srv_reply *rep, unsigned status, cJSON *doc)
{
    char *s = doc ? cJSON_PrintUnformatted(doc) : NULL;
    cJSON_Delete(doc);
    if (!s) {
        srv_reply_error(rep, 503, "out of memory building the response");
        return;
    }
    srv_reply_body(rep, status, "application/json", s, strlen(s));
}

/* Length of the valid UTF-8 sequence at p (RFC 3629: no overlongs, no surrogates, at most
 * U+10FFFF), or 0. */
static size_t utf8_seq(const unsigned char *p)
{
    unsigned c = p[0];
    if (c < 0x80)
        return 1;
    size_t n = c >= 0xf0 ? 4 : c >= 0xe0 ? 3 : c >= 0xc2 ? 2 : 0;
    if (!n || c > 0xf4)
        return 0;
    for (size_t i = 1; i < n; i++)
        if ((p[i] & 0xc0) != 0x80)
            return 0;
    if ((c == 0xe0 && p[1] < 0xa0) || (c == 0xed && p[1] > 0x9f) || (c == 0xf0 && p[1] < 0x90) ||
        (c == 0xf4 && p[1] > 0x8f))
        return 0;
    return n;
}

void srv_utf8_repair(char *s)
{
    unsigned char *p = (unsigned char *)s;
    while (*p) {
        size_t n = utf8_seq(p);
        if (n) {
            p += n;
            continue;
        }
        /* a sequence cut short by the end of the string is dropped; anything else is one
         * bad byte */
        size_t rest = strlen((char *)p);
        if (p[0] >= 0xc2 && p[0] <= 0xf4 && rest < (p[0] >= 0xf0 ? 4u : p[0] >= 0xe0 ? 3u : 2u)) {
            int tail_ok = 1;
            for (size_t i = 1; i < rest; i++)
                tail_ok &= (p[i] & 0xc0) == 0x80;
            if (tail_ok) {
                *p = 0;
                return;
            }
        }
        *p++ = '?';
    }
}

/* The reply of last resort: valid JSON without an allocation. */
static const char oom_body[] = "{\"error\":\"out of memory building the response; retry\"}";

void srv_reply_error(struct srv_reply *rep, unsigned status, const char *fmt, ...)
{
    char msg[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    srv_utf8_repair(msg);
    cJSON *doc = cJSON_CreateObject();
    char *s = NULL;
    if (doc && cJSON_AddStringToObject(doc, "error", msg))
        s = cJSON_PrintUnformatted(doc);
    cJSON_Delete(doc);
    if (!s) { /* queue_reply sends oom_body for a reply without a body */
        srv_reply_body(rep, 503, "application/json", NULL, 0);
        return;
    }
    srv_reply_body(rep, status, "application/json", s, strlen(s));
}

void srv_reply_nn_error(struct srv_reply *rep, enum nn_status st, const struct nn_err *err)
{
    if (st == NN_ECANCELED)
        srv_reply_error(rep, 503, "draining: this replica is shutting down; %s (retry elsewhere)",
                        err->msg);
    else
        srv_reply_error(rep, srv_status_from_nn(st), "%s", err->msg);
    if (st == NN_ECANCELED || st == NN_ENOMEM)
        srv_reply_header(rep, "Retry-After", "1");
}

void srv_reply_header(struct srv_reply *rep, const char *name, const char *fmt, ...)
{
    if (rep->nhdr >= SRV_MAX_HEADERS)
        return;
    rep->hdr[rep->nhdr].name = name;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(rep->hdr[rep->nhdr].value, sizeof rep->hdr[0].value, fmt, ap);
    va_end(ap);
    rep->nhdr++;
}

const char *srv_req_header(const struct srv_req *req, const char *name)
{
    /* no connection: a handler called directly (the fuzz targets) */
    return req->conn ? MHD_lookup_connection_value(req->conn, MHD_HEADER_KIND, name) : NULL;
}

/* Queues rep (taking its body). A reply without a body is the out-of-memory one. */
static enum MHD_Result queue_reply(struct srv_req *req, struct srv_reply *rep)
{
    struct srv *s = req->srv;
    struct MHD_Response *r =
        rep->body ? MHD_create_response_from_buffer(rep->len, rep->body, MHD_RESPMEM_MUST_FREE)
                  : MHD_create_response_from_buffer(sizeof oom_body - 1, (void *)oom_body,
                                                    MHD_RESPMEM_PERSISTENT);
    if (!rep->body) {
        rep->status = 503;
        rep->ctype = "application/json";
        rep->len = sizeof oom_body - 1;
        rep->nhdr = 0;
        srv_reply_header(rep, "Retry-After", "1");
    }
    if (!r) {
        free(rep->body);
        rep->body = NULL;
        return MHD_NO;
    }
    rep->body = NULL; /* owned by the response now */
    MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE,
                            rep->ctype ? rep->ctype : "application/json");
    MHD_add_response_header(r, "X-Request-Id", req->id);
    MHD_add_response_header(r, "X-Relud-Instance", s->instance);
    for (int i = 0; i < rep->nhdr; i++)
        MHD_add_response_header(r, rep->hdr[i].name, rep->hdr[i].value);
    if (atomic_load(&s->ready) == 2 || req->close)
        MHD_add_response_header(r, MHD_HTTP_HEADER_CONNECTION, "close");
    req->status = rep->status;
    req->bytes_out = rep->len;
    enum MHD_Result ret = MHD_queue_response(req->conn, rep->status, r);
    MHD_destroy_response(r);
    return ret;
}

/* ---- request ids ------------------------------------------------------------------ */
static int id_ok(const char *v)
{
    size_t n = strlen(v);
    if (n == 0 || n >= 80)
        return 0;
    for (; *v; v++)
        if (*v < 0x21 || *v > 0x7e || *v == '"' || *v == '\\')
            return 0;
    return 1;
}

static void req_id(struct srv *s, struct srv_req *req)
{
    const char *v = srv_req_header(req, "X-Request-Id");
    if (v && id_ok(v)) {
        snprintf(req->id, sizeof req->id, "%s", v);
        return;
    }
    /* splitmix64 over a per-process random start: unique, unpredictable enough */
    static atomic_uint_fast64_t counter;
    uint64_t z = s->nonce + 0x9e3779b97f4a7c15ULL * (atomic_fetch_add(&counter, 1) + 1);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    z ^= z >> 31;
    snprintf(req->id, sizeof req->id, "%016llx", (unsigned long long)z);
}

uint64_t srv_now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ULL + (uint64_t)ts.tv_nsec;
}

/* ---- the access handler ---------------------------------------------------------- */
/* The socket context of a connection opened over connection_limit. */
static char conn_over_limit_tag;
#define CONN_OVER_LIMIT ((void *)&conn_over_limit_tag)

void srv_run_handler(struct srv_req *req, struct srv_reply *rep)
{
    alloc_failed = 0;
    routes[req->route].handler(req, rep);
    if (alloc_failed && rep->status < 400) {
        free(rep->body);
        *rep = (struct srv_reply){0};
        srv_reply_error(rep, 503, "out of memory building the response; retry");
        srv_reply_header(rep, "Retry-After", "1");
    }
    alloc_failed = 0;
}

/* The framing header fields of a request (bad_framing). */
struct framing {
    int ncl, nte;
    const char *cl, *te;
};

static enum MHD_Result count_framing(void *cls, enum MHD_ValueKind kind, const char *key,
                                     const char *value)
{
    struct framing *f = cls;
    (void)kind;
    if (!strcasecmp(key, MHD_HTTP_HEADER_CONTENT_LENGTH))
        f->ncl++, f->cl = value;
    else if (!strcasecmp(key, MHD_HTTP_HEADER_TRANSFER_ENCODING))
        f->nte++, f->te = value;
    return MHD_YES;
}

static int is_health(enum srv_route r)
{
    return r == SRV_R_LIVE || r == SRV_R_READY || r == SRV_R_METRICS;
}

/* Counts n more body bytes in srv.buffered for req; 0 (and nothing counted) when that would
 * go over max_buffered_bytes. One path for Content-Length and chunked bodies. */
static int reserve(struct srv *s, struct srv_req *req, size_t n)
{
    size_t now = atomic_fetch_add(&s->buffered, n);
    if (s->cfg.max_buffered_bytes && now + n > s->cfg.max_buffered_bytes) {
        atomic_fetch_sub(&s->buffered, n);
        return 0;
    }
    req->reserved += n;
    return 1;
}

static void release_body(struct srv *s, struct srv_req *req)
{
    atomic_fetch_sub(&s->buffered, req->reserved);
    req->reserved = 0;
    free(req->body);
    req->body = NULL;
    req->cap = 0;
}

static void reply_overloaded(struct srv *s, struct srv_reply *rep)
{
    srv_reply_error(rep, 503,
                    "overloaded: request bodies in progress exceed max_buffered_bytes (%zu); "
                    "retry later",
                    s->cfg.max_buffered_bytes);
    srv_reply_header(rep, "Retry-After", "1");
}

/* The body the request declares: 0 none, 1 some (Content-Length > 0 or chunked). */
static int has_body(const struct srv_req *req)
{
    const char *te = srv_req_header(req, MHD_HTTP_HEADER_TRANSFER_ENCODING);
    const char *cl = srv_req_header(req, MHD_HTTP_HEADER_CONTENT_LENGTH);
    return te != NULL || (cl && strcmp(cl, "0") != 0);
}

/* A refusal decided before the body is read. With `Expect: 100-continue` (the client waits
 * for the go-ahead) or no body, it is sent now; otherwise it waits while the body is read
 * and dropped (linger_timeout, linger_bytes), because a client that writes its whole body
 * first would see a reset connection instead of the reply. */
static enum MHD_Result refuse(struct srv_req *req, struct srv_reply *rep)
{
    const char *expect = srv_req_header(req, MHD_HTTP_HEADER_EXPECT);
    release_body(req->srv, req);
    if (!has_body(req) || (expect && !strcasecmp(expect, "100-continue"))) {
        req->close = has_body(req);
        return queue_reply(req, rep);
    }
    req->early = *rep;
    req->has_early = 1;
    req->linger_since = srv_now_ns();
    return MHD_YES;
}

/* Sends the refusal that waited for the body. When the whole body was read the connection
 * stays open for the next request, except after a 413 or a 503 (relud is shedding load). */
static enum MHD_Result refuse_now(struct srv_req *req, int whole_body)
{
    req->has_early = 0;
    req->close = !whole_body || req->early.status == 413 || req->early.status == 503;
    return queue_reply(req, &req->early);
}

/* Framing that RFC 9112 section 6 makes an error, checked before anything else: the
 * request-smuggling patterns (two Content-Lengths, Content-Length with Transfer-Encoding)
 * and a transfer coding relud does not know. These close the connection without reading
 * on: where the body ends is not known. Returns 0 when the framing is sound. */
static int bad_framing(struct srv_req *req, struct srv_reply *rep)
{
    struct framing f = {0};
    MHD_get_connection_values(req->conn, MHD_HEADER_KIND, count_framing, &f);
    int ncl = f.ncl, nte = f.nte;
    const char *cl = f.cl, *te = f.te;
    if (ncl > 1 || (cl && strchr(cl, ',')))
        srv_reply_error(rep, 400,
                        "Content-Length: the request has %d Content-Length values; one is "
                        "allowed (RFC 9112 section 6.3)",
                        ncl > 1 ? ncl : 2);
    else if (cl && nte)
        srv_reply_error(rep, 400,
                        "Content-Length and Transfer-Encoding together: send one of them "
                        "(RFC 9112 section 6.3)");
    else if (nte > 1 || (te && strcasecmp(te, "chunked")))
        srv_reply_error(rep, 501, "Transfer-Encoding: \"%.40s\" is not supported (only chunked)",
                        te ? te : "");
    else
        return 0;
    req->close = 1;
    return 1;
}

static enum MHD_Result first_call(struct srv *s, struct MHD_Connection *conn, const char *url,
                                  const char *method, const char *version, void **con_cls)
{
    struct srv_req *req = calloc(1, sizeof *req);
    if (!req)
        return MHD_NO;
    *con_cls = req;
    atomic_fetch_add(&s->inflight, 1);
    req->srv = s;
    req->conn = conn;
    req->method = method;
    req->t0_ns = srv_now_ns();
    snprintf(req->path, sizeof req->path, "%s", url);
    req_id(s, req);

    struct srv_reply rep = {0};
    if (bad_framing(req, &rep))
        return queue_reply(req, &rep);
    if (!strcmp(version, MHD_HTTP_VERSION_1_1) && !srv_req_header(req, MHD_HTTP_HEADER_HOST)) {
        /* RFC 9112 section 3.2: a server MUST answer 400 */
        srv_reply_error(&rep, 400, "Host: an HTTP/1.1 request needs a Host header");
        return refuse(req, &rep);
    }
    char allow[128];
    req->route = route_find(req, url, method, allow, sizeof allow);
    const union MHD_ConnectionInfo *ci =
        MHD_get_connection_info(conn, MHD_CONNECTION_INFO_SOCKET_CONTEXT);
    if (ci && ci->socket_context == CONN_OVER_LIMIT && !is_health(req->route)) {
        srv_reply_error(&rep, 503,
                        "overloaded: more connections open than connection_limit (%d); retry "
                        "later",
                        s->cfg.connection_limit);
        srv_reply_header(&rep, "Retry-After", "1");
        return refuse(req, &rep);
    }
    if (req->route == SRV_R_OTHER) {
        if (allow[0]) {
            srv_reply_error(&rep, 405, "method %s not allowed on %s (allowed: %s)", method,
                            req->path, allow);
            srv_reply_header(&rep, "Allow", "%s", allow);
        } else {
            srv_reply_error(&rep, 404, "no such endpoint: %s %s", method, req->path);
        }
        return refuse(req, &rep);
    }
    if (atomic_load(&s->ready) == 2 && !is_health(req->route)) {
        srv_reply_error(&rep, 503, "draining: this replica is shutting down");
        srv_reply_header(&rep, "Retry-After", "1");
        return refuse(req, &rep);
    }
    const char *ce = srv_req_header(req, MHD_HTTP_HEADER_CONTENT_ENCODING);
    if (ce && strcasecmp(ce, "identity")) {
        srv_reply_error(&rep, 415,
                        "Content-Encoding: \"%.40s\" is not supported; send the body "
                        "uncompressed",
                        ce);
        return refuse(req, &rep);
    }
    const char *cl = srv_req_header(req, MHD_HTTP_HEADER_CONTENT_LENGTH);
    if (cl) {
        char *end;
        errno = 0;
        unsigned long long n = strtoull(cl, &end, 10);
        if (errno || *end || n > s->cfg.max_body_bytes) {
            srv_reply_error(&rep, 413, "request body of %s bytes exceeds max_body_bytes (%zu)", cl,
                            s->cfg.max_body_bytes);
            return refuse(req, &rep);
        }
        size_t want = (size_t)n;
        if (!reserve(s, req, want)) {
            reply_overloaded(s, &rep);
            return refuse(req, &rep);
        }
        if (want) {
            req->body = malloc(want + 1);
            if (!req->body) {
                srv_reply_error(&rep, 503, "out of memory for a %zu-byte body", want);
                srv_reply_header(&rep, "Retry-After", "1");
                return refuse(req, &rep);
            }
            req->cap = want;
        }
    }
    return MHD_YES;
}

/* Appends an upload chunk; with no Content-Length (chunked) the buffer grows up to the cap,
 * each step reserved against max_buffered_bytes. 0 with rep filled when it cannot. */
static int body_append(struct srv *s, struct srv_req *req, const char *data, size_t n,
                       struct srv_reply *rep)
{
    size_t max = s->cfg.max_body_bytes;
    if (n > max || req->len > max - n) {
        srv_reply_error(rep, 413, "request body of %zu bytes or more exceeds max_body_bytes (%zu)",
                        req->len + n, max);
        return 0;
    }
    if (req->len + n > req->cap || !req->body) {
        size_t ncap = req->cap ? req->cap : 4096;
        while (ncap < req->len + n)
            ncap = ncap > max / 2 ? max : ncap * 2;
        if (ncap > req->reserved && !reserve(s, req, ncap - req->reserved)) {
            reply_overloaded(s, rep);
            return 0;
        }
        char *nb = realloc(req->body, ncap + 1);
        if (!nb) {
            srv_reply_error(rep, 503, "out of memory for a %zu-byte body", ncap);
            srv_reply_header(rep, "Retry-After", "1");
            return 0;
        }
        req->body = nb;
        req->cap = ncap;
    }
    memcpy(req->body + req->len, data, n);
    req->len += n;
    return 1;
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *conn, const char *url,
                                  const char *method, const char *version, const char *upload,
                                  size_t *upload_size, void **con_cls)
{
    struct srv *s = cls;
    struct srv_req *req = *con_cls;
    if (!req)
        return first_call(s, conn, url, method, version, con_cls);
    if (req->status) /* a reply is queued already */
        return MHD_YES;
    if (*upload_size) {
        size_t n = *upload_size;
        *upload_size = 0;
        if (req->has_early) {
            req->dropped += n;
            if (srv_now_ns() - req->linger_since <
                    (uint64_t)s->cfg.linger_timeout * 1000000000ULL &&
                req->dropped <= s->cfg.linger_bytes)
                return MHD_YES;
            return refuse_now(req, 0); /* past the linger bounds: reply and close */
        }
        struct srv_reply rep = {0};
        if (!body_append(s, req, upload, n, &rep)) {
            req->dropped = req->len + n;
            req->len = 0;
            return refuse(req, &rep);
        }
        return MHD_YES;
    }
    if (req->has_early)
        return refuse_now(req, 1);
    if (req->body)
        req->body[req->len] = 0;
    struct srv_reply rep = {0};
    srv_run_handler(req, &rep);
    return queue_reply(req, &rep);
}

static void on_completed(void *cls, struct MHD_Connection *conn, void **con_cls,
                         enum MHD_RequestTerminationCode toe)
{
    struct srv *s = cls;
    struct srv_req *req = *con_cls;
    if (!req)
        return;
    double us = (double)(srv_now_ns() - req->t0_ns) / 1e3;
    /* What the log and metrics record is what the client got. */
    if (toe != MHD_REQUEST_TERMINATED_COMPLETED_OK) {
        int client_left =
            toe == MHD_REQUEST_TERMINATED_CLIENT_ABORT || toe == MHD_REQUEST_TERMINATED_READ_ERROR;
        if (!req->status) /* the client went away before a reply */
            req->status = toe == MHD_REQUEST_TERMINATED_TIMEOUT_REACHED ? 408 : 499;
        else
            req->undelivered = client_left                                     ? "client closed"
                               : toe == MHD_REQUEST_TERMINATED_DAEMON_SHUTDOWN ? "shutdown"
                               : toe == MHD_REQUEST_TERMINATED_TIMEOUT_REACHED ? "timeout"
                                                                               : "error";
        if (req->undelivered && client_left)
            req->status = 499;
    }
    if (req->has_early) {
        free(req->early.body);
        req->has_early = 0;
    }
    srv_metrics_observe(s->metrics, req->route, req->status, us / 1e6, req->len + req->dropped,
                        req->undelivered ? 0 : req->bytes_out);
    srv_log_access(req, us);
    release_body(s, req);
    free(req);
    *con_cls = NULL;
    atomic_fetch_sub(&s->inflight, 1);
}

/* ---- connections --------------------------------------------------------------------- */
/* Connections over connection_limit are marked at start; their first request gets a 503.
 * Past the overflow allowance they are closed at accept (accept_policy). */
static long conn_overflow(const struct srv *s)
{
    long l = s->cfg.connection_limit;
    return l / 4 > 16 ? l / 4 : 16;
}

static void on_connection(void *cls, struct MHD_Connection *conn, void **socket_context,
                          enum MHD_ConnectionNotificationCode code)
{
    struct srv *s = cls;
    (void)conn;
    if (code == MHD_CONNECTION_NOTIFY_STARTED) {
        long n = atomic_fetch_add(&s->conns, 1) + 1;
        *socket_context = n > s->cfg.connection_limit ? CONN_OVER_LIMIT : NULL;
    } else if (code == MHD_CONNECTION_NOTIFY_CLOSED) {
        atomic_fetch_sub(&s->conns, 1);
    }
}

/* libmicrohttpd answers some malformed requests itself, before relud sees them (see
 * docs/api.md, "Errors libmicrohttpd answers"): its log line names the status, which is
 * counted here (relud_http_protocol_errors_total) and logged at info. */
static void mhd_log(void *cls, const char *fmt, va_list ap)
{
    struct srv *s = cls;
    char msg[512];
    vsnprintf(msg, sizeof msg, fmt, ap);
    size_t n = strlen(msg);
    while (n && (msg[n - 1] == '\n' || msg[n - 1] == '\r'))
        msg[--n] = 0;
    unsigned code;
    if (sscanf(msg, "Error processing request (HTTP response code is %u", &code) == 1) {
        /* its HTML page's <title> says what was wrong */
        const char *t = strstr(msg, "<title>"), *e = t ? strstr(t, "</title>") : NULL;
        srv_metrics_protocol_error(s->metrics, code);
        srv_log(CFG_LOG_INFO, "libmicrohttpd answered %u itself: %.*s", code,
                t && e ? (int)(e - t - 7) : 40, t && e ? t + 7 : msg);
        return;
    }
    srv_log(CFG_LOG_DEBUG, "libmicrohttpd: %s", msg);
}

/* Draining takes no new connections: each is closed as soon as it is accepted, so a
 * balancer moves on to the next replica at once. (MHD_quiesce_daemon would close the
 * listening socket instead, but with epoll and a thread pool libmicrohttpd 0.9.75 can
 * race its workers and abort: "Failed to remove listen FD from epoll set", seen here
 * about once in ten stops.) Past the connection limit's overflow allowance too. */
static enum MHD_Result accept_policy(void *cls, const struct sockaddr *addr, socklen_t len)
{
    const struct srv *s = cls;
    (void)addr, (void)len;
    if (atomic_load(&s->ready) == 2)
        return MHD_NO;
    return atomic_load(&s->conns) >= s->cfg.connection_limit + conn_overflow(s) ? MHD_NO : MHD_YES;
}

int srv_start(struct srv *s, char *err, size_t errlen)
{
    struct addrinfo hints = {0}, *ai = NULL;
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
    char port[16];
    snprintf(port, sizeof port, "%d", s->cfg.port);
    int gai = getaddrinfo(s->cfg.host, port, &hints, &ai);
    if (gai) {
        snprintf(err, errlen, "host: cannot resolve \"%s\": %s", s->cfg.host, gai_strerror(gai));
        return -1;
    }
    unsigned flags =
        MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_EPOLL | MHD_USE_ERROR_LOG | MHD_USE_TURBO;
    if (ai->ai_family == AF_INET6)
        flags |= MHD_USE_IPv6;
    unsigned threads = s->cfg.threads > 0 ? (unsigned)s->cfg.threads : 1;
    /* libmicrohttpd splits its own limit between the worker threads and stops accepting when
     * one worker is full (clients then wait unanswered in the backlog): its limit is set
     * high enough never to bind, and relud counts connections itself. */
    long mhd_limit = (s->cfg.connection_limit + conn_overflow(s)) * (long)threads + 16;
    struct MHD_OptionItem opts[] = {
        {MHD_OPTION_EXTERNAL_LOGGER, (intptr_t)mhd_log, s},
        {MHD_OPTION_SOCK_ADDR, 0, ai->ai_addr},
        {MHD_OPTION_THREAD_POOL_SIZE, threads, NULL},
        {MHD_OPTION_CONNECTION_LIMIT, (intptr_t)mhd_limit, NULL},
        {MHD_OPTION_PER_IP_CONNECTION_LIMIT, (intptr_t)s->cfg.per_ip_connection_limit, NULL},
        {MHD_OPTION_CONNECTION_TIMEOUT, (intptr_t)s->cfg.connection_timeout, NULL},
        {MHD_OPTION_CONNECTION_MEMORY_LIMIT, (intptr_t)s->cfg.max_header_bytes, NULL},
        {MHD_OPTION_NOTIFY_COMPLETED, (intptr_t)on_completed, s},
        {MHD_OPTION_NOTIFY_CONNECTION, (intptr_t)on_connection, s},
        {MHD_OPTION_LISTEN_BACKLOG_SIZE, 1024, NULL},
        {MHD_OPTION_END, 0, NULL},
    };
    s->daemon = MHD_start_daemon(flags, 0, accept_policy, s, on_request, s, MHD_OPTION_ARRAY, opts,
                                 MHD_OPTION_END);
    freeaddrinfo(ai);
    if (!s->daemon) {
        snprintf(err, errlen, "cannot listen on %s:%d (in use, or not an address of this host?)",
                 s->cfg.host, s->cfg.port);
        return -1;
    }
    const union MHD_DaemonInfo *info = MHD_get_daemon_info(s->daemon, MHD_DAEMON_INFO_BIND_PORT);
    s->port = info ? info->port : s->cfg.port;
    return 0;
}

static void sleep_ms(long ms)
{
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

/* Waits until no request is in flight, the time is up or a second stop signal came. */
static long wait_idle(struct srv *s, uint64_t until)
{
    long left;
    while ((left = atomic_load(&s->inflight)) > 0 && srv_now_ns() < until &&
           !(s->stop_signals && atomic_load(s->stop_signals) > 1))
        sleep_ms(10);
    return left;
}

void srv_drain_and_stop(struct srv *s)
{
    atomic_store(&s->ready, 2); /* accept_policy now closes every new connection */
    long left = atomic_load(&s->inflight);
    srv_log(CFG_LOG_INFO,
            "draining: no new connections, %ld request(s) in flight, waiting up to %d s", left,
            s->cfg.drain_timeout);
    /* Passes still running near the end are cut between layers and answered 503, early
     * enough for the replies to go out by drain_timeout. */
    uint64_t t0 = srv_now_ns(), drain = (uint64_t)s->cfg.drain_timeout * 1000000000ULL;
    uint64_t grace = drain / 4 < 500000000ULL ? drain / 4 : 500000000ULL;
    left = wait_idle(s, t0 + drain - grace);
    if (left > 0) {
        atomic_store(&s->cancel, 1);
        srv_log(CFG_LOG_WARN, "%s with %ld request(s) in flight: cutting their passes",
                s->stop_signals && atomic_load(s->stop_signals) > 1 ? "second stop signal"
                                                                    : "drain_timeout near",
                left);
        left = wait_idle(s, t0 + drain);
        if (left > 0)
            srv_log(CFG_LOG_WARN, "%ld request(s) still in flight at drain_timeout; closing them",
                    left);
    }
    MHD_stop_daemon(s->daemon);
    s->daemon = NULL;
}
