/* The libmicrohttpd glue: routing, capped request bodies, early refusals, replies,
 * request ids, start and drain. Per-request context lives in the connection slot
 * (*con_cls) and is freed in the request-completed callback (libmicrohttpd's own
 * examples, v0.9.75). */
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
};

int srv_status_slot(unsigned code)
{
    for (int i = 0; i < SRV_S_COUNT; i++)
        if (status_codes[i] == code)
            return i;
    return SRV_S_500;
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

void srv_reply_error(struct srv_reply *rep, unsigned status, const char *fmt, ...)
{
    char msg[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    cJSON *doc = cJSON_CreateObject();
    char *s = NULL;
    if (doc && cJSON_AddStringToObject(doc, "error", msg))
        s = cJSON_PrintUnformatted(doc);
    cJSON_Delete(doc);
    if (!s) { /* last resort, still valid JSON */
        s = strdup("{\"error\":\"out of memory\"}");
        status = 503;
    }
    srv_reply_body(rep, status, "application/json", s, s ? strlen(s) : 0);
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

static enum MHD_Result queue_reply(struct srv_req *req, struct srv_reply *rep)
{
    struct srv *s = req->srv;
    if (!rep->body)
        srv_reply_error(rep, 500, "internal error: no reply");
    struct MHD_Response *r =
        MHD_create_response_from_buffer(rep->len, rep->body, MHD_RESPMEM_MUST_FREE);
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
    if (atomic_load(&s->ready) == 2 || req->refused)
        MHD_add_response_header(r, MHD_HTTP_HEADER_CONNECTION, "close");
    req->status = rep->status;
    req->bytes_out = rep->len;
    enum MHD_Result ret = MHD_queue_response(req->conn, rep->status, r);
    MHD_destroy_response(r);
    return ret;
}

/* Refuses now, before (the rest of) the body is read. */
static enum MHD_Result refuse(struct srv_req *req, struct srv_reply *rep)
{
    req->refused = 1;
    return queue_reply(req, rep);
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
static int is_health(enum srv_route r)
{
    return r == SRV_R_LIVE || r == SRV_R_READY || r == SRV_R_METRICS;
}

static enum MHD_Result first_call(struct srv *s, struct MHD_Connection *conn, const char *url,
                                  const char *method, void **con_cls)
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
    char allow[128];
    req->route = route_find(req, url, method, allow, sizeof allow);
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
        size_t now = atomic_fetch_add(&s->buffered, want);
        req->cap = want; /* reserved against max_buffered_bytes, released at completion */
        if (s->cfg.max_buffered_bytes && now + want > s->cfg.max_buffered_bytes) {
            srv_reply_error(&rep, 503,
                            "overloaded: request bodies in progress exceed max_buffered_bytes "
                            "(%zu); retry later",
                            s->cfg.max_buffered_bytes);
            srv_reply_header(&rep, "Retry-After", "1");
            return refuse(req, &rep);
        }
        if (want) {
            req->body = malloc(want + 1);
            if (!req->body) {
                srv_reply_error(&rep, 503, "out of memory for a %zu-byte body", want);
                srv_reply_header(&rep, "Retry-After", "1");
                return refuse(req, &rep);
            }
        }
    }
    return MHD_YES;
}

/* Appends an upload chunk; with no Content-Length (chunked) the buffer grows up to the cap. */
static int body_append(struct srv *s, struct srv_req *req, const char *data, size_t n)
{
    size_t max = s->cfg.max_body_bytes;
    if (n > max || req->len > max - n)
        return 0;
    if (req->len + n > req->cap || !req->body) {
        size_t ncap = req->cap ? req->cap : 4096;
        while (ncap < req->len + n)
            ncap = ncap > max / 2 ? max : ncap * 2;
        char *nb = realloc(req->body, ncap + 1);
        if (!nb)
            return 0;
        atomic_fetch_add(&s->buffered, ncap - req->cap);
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
        return first_call(s, conn, url, method, con_cls);
    struct srv_reply rep = {0};
    int cut = 0; /* an upload over the cap still going on after the linger time */
    if (*upload_size) {
        size_t n = *upload_size;
        *upload_size = 0;
        if (req->refused)
            return MHD_YES;
        if (req->discard_since) {
            /* Over the cap: read and drop the rest, so the client is still listening when
             * the 413 comes (closing on unread data resets the connection before the
             * client reads the reply). An upload that goes on past the linger time gets
             * its 413 now, as nginx's lingering_time does. */
            req->len += n;
            if (srv_now_ns() - req->discard_since < SRV_LINGER_NS)
                return MHD_YES;
            cut = 1;
        } else if (body_append(s, req, upload, n)) {
            return MHD_YES;
        } else {
            atomic_fetch_sub(&s->buffered, req->cap);
            free(req->body);
            req->body = NULL;
            req->cap = 0;
            req->len += n;
            req->discard_since = srv_now_ns();
            return MHD_YES;
        }
    }
    if (req->refused)
        return MHD_YES;
    if (req->discard_since) {
        srv_reply_error(&rep, 413, "request body of %zu bytes%s exceeds max_body_bytes (%zu)",
                        req->len, cut ? " or more" : "", s->cfg.max_body_bytes);
        return refuse(req, &rep);
    }
    if (req->body)
        req->body[req->len] = 0;
    routes[req->route].handler(req, &rep);
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
    if (!req->status) /* the client went away before a reply */
        req->status = toe == MHD_REQUEST_TERMINATED_TIMEOUT_REACHED ? 408 : 499;
    srv_metrics_observe(s->metrics, req->route, req->status, us / 1e6, req->len, req->bytes_out);
    srv_log_access(req, us);
    atomic_fetch_sub(&s->buffered, req->cap);
    free(req->body);
    free(req);
    *con_cls = NULL;
    atomic_fetch_sub(&s->inflight, 1);
}

/* ---- start and drain ------------------------------------------------------------------ */
static void mhd_log(void *cls, const char *fmt, va_list ap)
{
    char msg[512];
    vsnprintf(msg, sizeof msg, fmt, ap);
    size_t n = strlen(msg);
    while (n && (msg[n - 1] == '\n' || msg[n - 1] == '\r'))
        msg[--n] = 0;
    srv_log(CFG_LOG_DEBUG, "libmicrohttpd: %s", msg);
}

/* Draining takes no new connections: each is closed as soon as it is accepted, so a
 * balancer moves on to the next replica at once. (MHD_quiesce_daemon would close the
 * listening socket instead, but with epoll and a thread pool libmicrohttpd 0.9.75 can
 * race its workers and abort: "Failed to remove listen FD from epoll set", seen here
 * about once in ten stops.) */
static enum MHD_Result accept_policy(void *cls, const struct sockaddr *addr, socklen_t len)
{
    const struct srv *s = cls;
    (void)addr, (void)len;
    return atomic_load(&s->ready) == 2 ? MHD_NO : MHD_YES;
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
    struct MHD_OptionItem opts[] = {
        {MHD_OPTION_EXTERNAL_LOGGER, (intptr_t)mhd_log, NULL},
        {MHD_OPTION_SOCK_ADDR, 0, ai->ai_addr},
        {MHD_OPTION_THREAD_POOL_SIZE, threads, NULL},
        {MHD_OPTION_CONNECTION_LIMIT, (intptr_t)s->cfg.connection_limit, NULL},
        {MHD_OPTION_PER_IP_CONNECTION_LIMIT, (intptr_t)s->cfg.per_ip_connection_limit, NULL},
        {MHD_OPTION_CONNECTION_TIMEOUT, (intptr_t)s->cfg.connection_timeout, NULL},
        {MHD_OPTION_NOTIFY_COMPLETED, (intptr_t)on_completed, s},
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

void srv_drain_and_stop(struct srv *s)
{
    atomic_store(&s->ready, 2); /* accept_policy now closes every new connection */
    long left = atomic_load(&s->inflight);
    srv_log(CFG_LOG_INFO,
            "draining: no new connections, %ld request(s) in flight, waiting up to %d s", left,
            s->cfg.drain_timeout);
    uint64_t deadline = srv_now_ns() + (uint64_t)s->cfg.drain_timeout * 1000000000ULL;
    while ((left = atomic_load(&s->inflight)) > 0 && srv_now_ns() < deadline &&
           !(s->stop_signals && atomic_load(s->stop_signals) > 1)) {
        struct timespec ts = {0, 10 * 1000000L};
        nanosleep(&ts, NULL);
    }
    if (left > 0)
        srv_log(CFG_LOG_WARN, "%s with %ld request(s) in flight; closing them",
                srv_now_ns() >= deadline ? "drain_timeout reached" : "second stop signal", left);
    MHD_stop_daemon(s->daemon);
    s->daemon = NULL;
}
