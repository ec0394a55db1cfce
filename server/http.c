/* The transport: libmicrohttpd glue. Routing, HTTP framing checks, capped request bodies,
 * early refusals that still read (and drop) the body, the connection limit, request ids,
 * sending replies, the access log and metrics, start and drain. Per-request context lives
 * in the connection slot (*con_cls) and is freed in the request-completed callback
 * (libmicrohttpd's own examples, v0.9.75). Handlers see only struct srv_req (srv.h). */
#include <arpa/inet.h>
#include <errno.h>
#include <microhttpd.h>
#include <netdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>
#include <zlib.h>

#include "server/auth.h"
#include "server/batch.h"
#include "server/http.h"
#include "server/log.h"
#include "server/metrics.h"
#include "server/srv.h"
#include "server/status.h"
#include "server/tls.h"
#include "server/train.h"

/* One request as the transport holds it: what the handler sees, and the rest. */
struct hreq {
    struct srv_req r;
    struct MHD_Connection *conn;
    size_t cap;      /* of r.body */
    size_t reserved; /* bytes counted in srv.buffered for this request */
    /* An early refusal (413/503/404/405/415) waits here while the rest of the body is read
     * and dropped, for up to linger_timeout and linger_bytes, so a client that sends its
     * whole body before reading sees the reply, not a reset. */
    struct srv_reply *early; /* or NULL (a pointer: hreq stays in malloc's small sizes) */
    uint64_t linger_since;   /* ns */
    size_t dropped;          /* body bytes read and dropped */
    int close;               /* the reply carries Connection: close */
    unsigned status;         /* the reply's status, once queued */
    const char *cors;        /* Access-Control-Allow-Origin to send ("*" or the Origin), or NULL */
    z_stream *z;             /* a compressed body (Content-Encoding) being inflated, or NULL */
    const char *zname;       /* its coding, for messages */
    int z_end;               /* the compressed stream ended */
    int gzipped, vary_ae;    /* the reply is gzip-compressed / could have been */
    const char *undelivered; /* why the queued reply never fully reached the client, or NULL */
    size_t bytes_out;
};

/* ---- routes -------------------------------------------------------------------------- */
static srv_handler_fn *const handlers[SRV_R_COUNT] = {
#define X(ID, m, p, h) [SRV_R_##ID] = h,
    SRV_ROUTE_LIST(X)
#undef X
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
        if (!route_match(srv_route_patterns[i], path, req))
            continue;
        if (strcmp(srv_route_methods[i], m) == 0)
            return (enum srv_route)i;
        if (!strstr(allow, srv_route_methods[i])) {
            size_t n = strlen(allow);
            snprintf(allow + n, allowlen - n, "%s%s%s", n ? ", " : "", srv_route_methods[i],
                     strcmp(srv_route_methods[i], "GET") == 0 ? ", HEAD" : "");
        }
    }
    return SRV_R_OTHER;
}

/* ---- replies ------------------------------------------------------------------------ */
/* The reply of last resort: valid JSON without an allocation. */
static const char oom_body[] = "{\"error\":\"out of memory building the response; retry\"}";

/* Whether an Accept-Encoding value takes gzip (RFC 9110 12.5.3): "gzip" or "*" with a
 * q-value other than 0. */
static int accepts_gzip(const char *ae)
{
    for (const char *p = ae; p && *p;) {
        while (*p == ' ' || *p == ',')
            p++;
        const char *e = p + strcspn(p, ",");
        size_t tl = strcspn(p, ";, ");
        int hit = (tl == 4 && !strncasecmp(p, "gzip", 4)) ||
                  (tl == 6 && !strncasecmp(p, "x-gzip", 6)) || (tl == 1 && *p == '*');
        const char *q = strstr(p, "q=");
        if (hit && !(q && q < e && strtod(q + 2, NULL) == 0))
            return 1;
        p = e;
    }
    return 0;
}

/* Replaces rep's body by its gzip form when the client takes it and it is worth it: JSON or
 * text of at least gzip_min_bytes, and smaller compressed. Out of memory: sent as it is. */
static void gzip_reply(const struct srv *s, struct hreq *h, struct srv_reply *rep)
{
    size_t min = s->cfg.gzip_min_bytes;
    const char *ct = rep->ctype ? rep->ctype : "application/json";
    if (!min || !rep->body || rep->tail || rep->len < min ||
        (strncmp(ct, "application/json", 16) && strncmp(ct, "text/", 5)))
        return;
    h->vary_ae = 1; /* the representation depends on Accept-Encoding */
    if (!accepts_gzip(srv_req_header(&h->r, MHD_HTTP_HEADER_ACCEPT_ENCODING)))
        return;
    z_stream z = {0};
    if (deflateInit2(&z, s->cfg.gzip_level, Z_DEFLATED, 16 + 15, 8, Z_DEFAULT_STRATEGY) != Z_OK)
        return;
    uLong bound = deflateBound(&z, (uLong)rep->len);
    char *out = malloc(bound);
    z.next_in = (Bytef *)rep->body;
    z.avail_in = (uInt)rep->len;
    z.next_out = (Bytef *)out;
    z.avail_out = (uInt)bound;
    if (out && deflate(&z, Z_FINISH) == Z_STREAM_END && z.total_out < rep->len) {
        free(rep->body);
        rep->body = out;
        rep->len = z.total_out;
        h->gzipped = 1;
    } else {
        free(out);
    }
    deflateEnd(&z);
}

static void free_tail(void *cls) { srv_tail_free(cls); }

/* The response over rep's body and its tail: with a tail, one iovec response (libmicrohttpd
 * sends the pieces where they lie with sendmsg; no copy of a megabyte of tensor data). */
static struct MHD_Response *make_response(struct srv_reply *rep)
{
    struct srv_tail *t = rep->tail;
    if (!t)
        return MHD_create_response_from_buffer(rep->len, rep->body, MHD_RESPMEM_MUST_FREE);
    struct MHD_IoVec *iov = malloc((size_t)(t->n + 1) * sizeof *iov);
    if (!iov)
        return NULL;
    iov[0] = (struct MHD_IoVec){rep->body, rep->len};
    for (int i = 0; i < t->n; i++)
        iov[i + 1] = (struct MHD_IoVec){t->piece[i].base, t->piece[i].len};
    t->body = rep->body;
    struct MHD_Response *r =
        MHD_create_response_from_iovec(iov, (unsigned)t->n + 1, free_tail, t); /* copies iov */
    free(iov);
    if (!r)
        t->body = NULL;
    return r;
}

/* Queues rep (taking its body and tail). A reply without a body is the out-of-memory one. */
static enum MHD_Result queue_reply(struct hreq *h, struct srv_reply *rep)
{
    struct srv *s = h->r.srv;
    if (rep->len < ((size_t)1 << 31))
        gzip_reply(s, h, rep);
    size_t bytes = rep->len + (rep->tail ? rep->tail->bytes : 0);
    struct MHD_Response *r =
        rep->body ? make_response(rep)
                  : MHD_create_response_from_buffer(sizeof oom_body - 1, (void *)oom_body,
                                                    MHD_RESPMEM_PERSISTENT);
    if (!rep->body) {
        rep->status = 503;
        rep->ctype = "application/json";
        rep->len = bytes = sizeof oom_body - 1;
        rep->nhdr = 0;
        srv_reply_free(rep); /* a tail without its body */
        srv_reply_header(rep, "Retry-After", "1");
    }
    if (!r) {
        srv_reply_free(rep);
        return MHD_NO;
    }
    rep->body = NULL; /* owned by the response now */
    rep->tail = NULL;
    if (rep->status != 204)
        MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE,
                                rep->ctype ? rep->ctype : "application/json");
    MHD_add_response_header(r, "X-Request-Id", h->r.id);
    MHD_add_response_header(r, "X-Relud-Instance", s->instance);
    for (int i = 0; i < rep->nhdr; i++)
        MHD_add_response_header(r, rep->hdr[i].name, rep->hdr[i].value);
    if (atomic_load(&s->ready) == 2 || h->close)
        MHD_add_response_header(r, MHD_HTTP_HEADER_CONNECTION, "close");
    if (h->gzipped)
        MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_ENCODING, "gzip");
    if (h->vary_ae)
        MHD_add_response_header(r, MHD_HTTP_HEADER_VARY, "Accept-Encoding");
    if (h->cors) {
        MHD_add_response_header(r, "Access-Control-Allow-Origin", h->cors);
        MHD_add_response_header(r, "Access-Control-Expose-Headers",
                                "X-Request-Id, X-Relud-Instance, Inference-Header-Content-Length, "
                                "Retry-After");
        if (strcmp(h->cors, "*"))
            MHD_add_response_header(r, MHD_HTTP_HEADER_VARY, "Origin");
    }
    h->status = rep->status;
    h->bytes_out = bytes;
    enum MHD_Result ret = MHD_queue_response(h->conn, rep->status, r);
    MHD_destroy_response(r);
    return ret;
}

static const char *req_header(const struct srv_req *req, const char *name)
{
    return MHD_lookup_connection_value(req->conn, MHD_HEADER_KIND, name);
}

static void req_park(struct srv_req *req) { MHD_suspend_connection(req->conn); }
static void req_wake(struct srv_req *req) { MHD_resume_connection(req->conn); }

void srv_run_handler(struct srv_req *req, struct srv_reply *rep) { handlers[req->route](req, rep); }

/* The deferred reply's finish, once (rep gets the reply). */
static void run_finish(struct srv_req *req, struct srv_reply *rep)
{
    void (*fn)(struct srv_req *, struct srv_reply *, void *) = req->finish;
    req->finish = NULL;
    fn(req, rep, req->finish_ctx);
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
        srv_strcpy(req->id, sizeof req->id, v);
        return;
    }
    /* splitmix64 over a per-process random start: unique, unpredictable enough */
    static atomic_uint_fast64_t counter;
    uint64_t z = s->nonce + 0x9e3779b97f4a7c15ULL * (atomic_fetch_add(&counter, 1) + 1);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    z ^= z >> 31;
    for (int i = 15; i >= 0; i--, z >>= 4) /* "%016llx", without printf on every request */
        req->id[i] = "0123456789abcdef"[z & 15];
    req->id[16] = 0;
}

/* ---- CORS -------------------------------------------------------------------------- */
/* What Access-Control-Allow-Origin answers the request's Origin on route: the Origin when
 * cors_origins lists it, "*" when it has * (not on the admin routes), else NULL. */
static const char *cors_allow(const struct srv *s, const struct srv_req *req, enum srv_route route)
{
    const char *o = srv_req_header(req, "Origin"), *p = s->cfg.cors_origins;
    int any = 0;
    if (!o || !*p)
        return NULL;
    size_t n = strlen(o);
    while (*p) {
        while (*p == ' ' || *p == ',')
            p++;
        const char *e = p;
        while (*e && *e != ',' && *e != ' ')
            e++;
        if ((size_t)(e - p) == n && n && !strncasecmp(p, o, n))
            return o;
        any |= e - p == 1 && *p == '*';
        p = e;
    }
    return any && !srv_route_is_admin(route) ? "*" : NULL;
}

/* ---- mutual TLS ---------------------------------------------------------------------- */
/* With tls_client_ca_file, every request but the health probes must come on a connection
 * whose client presented a certificate the CA signed (libmicrohttpd only asks for one);
 * else rep has the 403. */
static int client_cert_refused(struct srv *s, struct hreq *h, struct srv_reply *rep)
{
    if (!s->cfg.tls_client_ca_file[0] || srv_route_is_health(h->r.route))
        return 0;
    const union MHD_ConnectionInfo *ci =
        MHD_get_connection_info(h->conn, MHD_CONNECTION_INFO_GNUTLS_SESSION);
    char why[256];
    if (!srv_tls_client_ok(ci ? ci->tls_session : NULL, why, sizeof why))
        return 0;
    srv_reply_error(rep, 403, "TLS: %s (a certificate signed by tls_client_ca_file is required)",
                    why);
    return 1;
}

/* ---- access keys ------------------------------------------------------------------- */
/* 0 when the request may go on (no keys configured, a route that needs none, a good key:
 * its id is noted for the access log); else rep has the 401. */
static int key_refused(struct srv *s, struct srv_req *req, struct srv_reply *rep)
{
    enum srv_route r = req->route;
    if (!s->keys || srv_route_is_public(r) || srv_route_is_admin(r) ||
        (r == SRV_R_METRICS && !s->cfg.metrics_need_key))
        return 0;
    const char *h = srv_req_header(req, MHD_HTTP_HEADER_AUTHORIZATION);
    pthread_rwlock_rdlock(&s->keys_lock);
    enum srv_auth a = srv_keys_check(s->keys, h, req->key_id);
    pthread_rwlock_unlock(&s->keys_lock);
    if (a == SRV_AUTH_OK)
        return 0;
    srv_metrics_auth_failure(s->metrics, 0, a == SRV_AUTH_WRONG);
    srv_reply_error(rep, 401, "%s",
                    a == SRV_AUTH_WRONG ? "Authorization: unknown access key"
                                        : "Authorization: \"Bearer <access key>\" required "
                                          "(api_keys_file is set)");
    srv_reply_header(rep, "WWW-Authenticate", "Bearer realm=\"relud\"");
    return 1;
}

/* ---- the access handler ---------------------------------------------------------- */
/* The socket context of a connection opened over connection_limit. */
static char conn_over_limit_tag;
#define CONN_OVER_LIMIT ((void *)&conn_over_limit_tag)

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

/* Counts n more body bytes in srv.buffered for h; 0 (and nothing counted) when that would
 * go over max_buffered_bytes. One path for Content-Length and chunked bodies. */
static int reserve(struct srv *s, struct hreq *h, size_t n)
{
    size_t now = atomic_fetch_add(&s->buffered, n);
    if (s->cfg.max_buffered_bytes && now + n > s->cfg.max_buffered_bytes) {
        atomic_fetch_sub(&s->buffered, n);
        return 0;
    }
    h->reserved += n;
    return 1;
}

static void release_body(struct srv *s, struct hreq *h)
{
    atomic_fetch_sub(&s->buffered, h->reserved);
    h->reserved = 0;
    free(h->r.body);
    h->r.body = NULL;
    h->cap = 0;
    if (h->z) {
        inflateEnd(h->z);
        free(h->z);
        h->z = NULL;
    }
}

static void reply_overloaded(struct srv *s, struct srv_reply *rep)
{
    srv_reply_error(rep, 503,
                    "overloaded: request bodies in progress exceed max_buffered_bytes (%zu); "
                    "retry later",
                    s->cfg.max_buffered_bytes);
    srv_reply_header(rep, "Retry-After", "1");
}

/* The body cap of a route and the option that sets it: max_model_bytes for a model upload
 * (PUT /v1/models/{name}), max_body_bytes for the rest; never over max_buffered_bytes, since
 * a body over that could never be accepted (413 then, not a 503 to retry forever). */
static size_t body_cap(const struct srv *s, enum srv_route r, const char **opt)
{
    size_t cap = r == SRV_R_MODEL_PUT ? s->cfg.max_model_bytes : s->cfg.max_body_bytes;
    *opt = r == SRV_R_MODEL_PUT ? "max_model_bytes" : "max_body_bytes";
    if (s->cfg.max_buffered_bytes && s->cfg.max_buffered_bytes < cap) {
        cap = s->cfg.max_buffered_bytes;
        *opt = "max_buffered_bytes";
    }
    return cap;
}

/* The body the request declares: 0 none, 1 some (Content-Length > 0 or chunked). */
static int has_body(const struct hreq *h)
{
    const char *te = srv_req_header(&h->r, MHD_HTTP_HEADER_TRANSFER_ENCODING);
    const char *cl = srv_req_header(&h->r, MHD_HTTP_HEADER_CONTENT_LENGTH);
    return te != NULL || (cl && strcmp(cl, "0") != 0);
}

/* A refusal decided before the body is read. With `Expect: 100-continue` (the client waits
 * for the go-ahead) it is sent now; otherwise it waits while the body, if any, is read and
 * dropped (linger_timeout, linger_bytes), because a client that writes its whole body first
 * would see a reset connection instead of the reply. */
static enum MHD_Result refuse(struct hreq *h, struct srv_reply *rep)
{
    const char *expect = srv_req_header(&h->r, MHD_HTTP_HEADER_EXPECT);
    release_body(h->r.srv, h);
    if (has_body(h) && expect && !strcasecmp(expect, "100-continue")) {
        h->close = 1;
        return queue_reply(h, rep);
    }
    /* Without a body it waits for libmicrohttpd's last call all the same: a reply queued
     * before the request is complete closes the connection (libmicrohttpd 0.9.75). */
    if (!(h->early = malloc(sizeof *h->early))) {
        h->close = 1;
        return queue_reply(h, rep);
    }
    *h->early = *rep;
    h->linger_since = srv_now_ns();
    return MHD_YES;
}

/* Sends the refusal that waited for the body. When the whole body was read the connection
 * stays open for the next request, except after a 413 or a 503 (relud is shedding load). */
static enum MHD_Result refuse_now(struct hreq *h, int whole_body)
{
    struct srv_reply *e = h->early;
    h->early = NULL;
    h->close = !whole_body || e->status == 413 || e->status == 503;
    enum MHD_Result r = queue_reply(h, e);
    free(e);
    return r;
}

/* Framing that RFC 9112 section 6 makes an error, checked before anything else: the
 * request-smuggling patterns (two Content-Lengths, Content-Length with Transfer-Encoding)
 * and a transfer coding relud does not know. These close the connection without reading
 * on: where the body ends is not known. Returns 0 when the framing is sound. */
static int bad_framing(struct hreq *h, struct srv_reply *rep)
{
    struct framing f = {0};
    MHD_get_connection_values(h->conn, MHD_HEADER_KIND, count_framing, &f);
    if (f.ncl > 1 || (f.cl && strchr(f.cl, ',')))
        srv_reply_error(rep, 400,
                        "Content-Length: the request has %d Content-Length values; one is "
                        "allowed (RFC 9112 section 6.3)",
                        f.ncl > 1 ? f.ncl : 2);
    else if (f.cl && f.nte)
        srv_reply_error(rep, 400,
                        "Content-Length and Transfer-Encoding together: send one of them "
                        "(RFC 9112 section 6.3)");
    else if (f.nte > 1 || (f.te && strcasecmp(f.te, "chunked")))
        srv_reply_error(rep, 501, "Transfer-Encoding: \"%.40s\" is not supported (only chunked)",
                        f.te ? f.te : "");
    else
        return 0;
    h->close = 1;
    return 1;
}

/* OPTIONS: the methods the path allows (RFC 9110 section 9.3.7), and to a browser's
 * preflight from an allowed origin the CORS permissions. */
static enum MHD_Result preflight(struct hreq *h, const char *url, const char *allow)
{
    struct srv_reply rep = {0};
    struct srv_req *req = &h->r;
    char scratch[128];
    const char *want = srv_req_header(req, "Access-Control-Request-Method");
    enum srv_route r = want ? route_find(req, url, want, scratch, sizeof scratch) : SRV_R_OTHER;
    h->cors = want && r != SRV_R_OTHER ? cors_allow(req->srv, req, r) : NULL;
    srv_reply_body(&rep, 204, NULL, malloc(1), 0);
    srv_reply_header(&rep, "Allow", "%s, OPTIONS", allow);
    if (h->cors) {
        srv_reply_header(&rep, "Access-Control-Allow-Methods", "%s", allow);
        srv_reply_header(&rep, "Access-Control-Allow-Headers",
                         "Content-Type, Authorization, Inference-Header-Content-Length, "
                         "X-Request-Id, Content-Encoding");
        srv_reply_header(&rep, "Access-Control-Max-Age", "600");
    }
    return refuse(h, &rep);
}

static enum MHD_Result first_call(struct srv *s, struct MHD_Connection *conn, const char *url,
                                  const char *method, const char *version, void **con_cls)
{
    struct hreq *h = calloc(1, sizeof *h);
    if (!h)
        return MHD_NO;
    *con_cls = h;
    atomic_fetch_add(&s->inflight, 1);
    struct srv_req *req = &h->r;
    h->conn = conn;
    req->srv = s;
    req->conn = conn;
    req->header = req_header;
    req->park = req_park;
    req->wake = req_wake;
    req->method = method;
    req->t0_ns = srv_now_ns();
    srv_strcpy(req->path, sizeof req->path, url);
    req_id(s, req);

    struct srv_reply rep = {0};
    if (bad_framing(h, &rep))
        return queue_reply(h, &rep);
    if (!strcmp(version, MHD_HTTP_VERSION_1_1) && !srv_req_header(req, MHD_HTTP_HEADER_HOST)) {
        /* RFC 9112 section 3.2: a server MUST answer 400 */
        srv_reply_error(&rep, 400, "Host: an HTTP/1.1 request needs a Host header");
        return refuse(h, &rep);
    }
    char allow[128];
    req->route = route_find(req, url, method, allow, sizeof allow);
    const union MHD_ConnectionInfo *ci =
        MHD_get_connection_info(conn, MHD_CONNECTION_INFO_SOCKET_CONTEXT);
    if (ci && ci->socket_context == CONN_OVER_LIMIT && !srv_route_is_health(req->route)) {
        srv_reply_error(&rep, 503,
                        "overloaded: more connections open than connection_limit (%d); retry "
                        "later",
                        s->cfg.connection_limit);
        srv_reply_header(&rep, "Retry-After", "1");
        return refuse(h, &rep);
    }
    if (req->route == SRV_R_OTHER && allow[0] && !strcmp(method, "OPTIONS"))
        return preflight(h, url, allow);
    h->cors = cors_allow(s, req, req->route);
    if (req->route == SRV_R_OTHER) {
        if (allow[0]) {
            srv_reply_error(&rep, 405, "method %s not allowed on %s (allowed: %s)", method,
                            req->path, allow);
            srv_reply_header(&rep, "Allow", "%s", allow);
        } else {
            srv_reply_error(&rep, 404, "no such endpoint: %s %s", method, req->path);
        }
        return refuse(h, &rep);
    }
    if (client_cert_refused(s, h, &rep) || key_refused(s, req, &rep))
        return refuse(h, &rep);
    /* a model upload may be far larger than other bodies (max_model_bytes): its admin token
       is checked before the body is read, so only a token holder can make relud buffer one */
    if (req->route == SRV_R_MODEL_PUT && !srv_admin_authorized(req, &rep, "model control"))
        return refuse(h, &rep);
    if (atomic_load(&s->ready) == 2 && !srv_route_is_health(req->route)) {
        srv_reply_error(&rep, 503, "draining: this replica is shutting down");
        srv_reply_header(&rep, "Retry-After", "1");
        return refuse(h, &rep);
    }
    const char *ce = srv_req_header(req, MHD_HTTP_HEADER_CONTENT_ENCODING);
    if (ce && strcasecmp(ce, "identity")) {
        /* gzip (RFC 1952) or deflate, which HTTP means as zlib's format (RFC 9110 8.4.1.2) */
        int gz = !strcasecmp(ce, "gzip") || !strcasecmp(ce, "x-gzip");
        if (!gz && strcasecmp(ce, "deflate")) {
            srv_reply_error(&rep, 415,
                            "Content-Encoding: \"%.40s\" is not supported (gzip, deflate or "
                            "identity)",
                            ce);
            return refuse(h, &rep);
        }
        if (!(h->z = calloc(1, sizeof *h->z)) || inflateInit2(h->z, gz ? 16 + 15 : 15) != Z_OK) {
            free(h->z);
            h->z = NULL;
            srv_reply_error(&rep, 503, "out of memory for a compressed body");
            srv_reply_header(&rep, "Retry-After", "1");
            return refuse(h, &rep);
        }
        h->zname = gz ? "gzip" : "deflate";
    }
    const char *cl = srv_req_header(req, MHD_HTTP_HEADER_CONTENT_LENGTH);
    if (cl) {
        char *end;
        const char *opt;
        size_t cap = body_cap(s, req->route, &opt);
        errno = 0;
        unsigned long long n = strtoull(cl, &end, 10);
        if (errno || *end || n > cap) {
            srv_reply_error(&rep, 413, "request body of %s bytes exceeds %s (%zu)", cl, opt, cap);
            return refuse(h, &rep);
        }
        size_t want = h->z ? 0 : (size_t)n; /* an inflated body grows as it comes */
        if (!reserve(s, h, want)) {
            reply_overloaded(s, &rep);
            return refuse(h, &rep);
        }
        if (want) {
            req->body = malloc(want + 1);
            if (!req->body) {
                srv_reply_error(&rep, 503, "out of memory for a %zu-byte body", want);
                srv_reply_header(&rep, "Retry-After", "1");
                return refuse(h, &rep);
            }
            h->cap = want;
        }
    }
    return MHD_YES;
}

/* Appends an upload chunk; with no Content-Length (chunked) the buffer grows up to the cap,
 * each step reserved against max_buffered_bytes. 0 with rep filled when it cannot. */
static int body_append(struct srv *s, struct hreq *h, const char *data, size_t n,
                       struct srv_reply *rep)
{
    struct srv_req *req = &h->r;
    const char *opt;
    size_t max = body_cap(s, req->route, &opt);
    if (n > max || req->len > max - n) {
        srv_reply_error(rep, 413, "request body of %zu bytes or more exceeds %s (%zu)",
                        req->len + n, opt, max);
        return 0;
    }
    if (req->len + n > h->cap || !req->body) {
        size_t ncap = h->cap ? h->cap : 4096;
        while (ncap < req->len + n)
            ncap = ncap > max / 2 ? max : ncap * 2;
        if (ncap > h->reserved && !reserve(s, h, ncap - h->reserved)) {
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
        h->cap = ncap;
    }
    memcpy(req->body + req->len, data, n);
    req->len += n;
    return 1;
}

/* Inflates an upload chunk of a compressed body into the body buffer, as body_append: the
 * inflated bytes count against max_body_bytes as they come, so a small body that inflates
 * to gigabytes (a zip bomb) stops at the cap with 413. A stream zlib cannot read is 400. */
static int body_inflate(struct srv *s, struct hreq *h, const char *data, size_t n,
                        struct srv_reply *rep)
{
    z_stream *z = h->z;
    char buf[16384];
    z->next_in = (Bytef *)data;
    z->avail_in = (uInt)n;
    int full = 0; /* the last call filled buf: more output may be pending */
    while (z->avail_in || full) {
        if (h->z_end) {
            if (!strcmp(h->zname, "gzip") && z->avail_in) { /* a next gzip member */
                inflateReset(z);
                h->z_end = 0;
            } else {
                srv_reply_error(rep, 400, "Content-Encoding: %s: data after the end of the stream",
                                h->zname);
                return 0;
            }
        }
        z->next_out = (Bytef *)buf;
        z->avail_out = sizeof buf;
        int r = inflate(z, Z_NO_FLUSH);
        size_t got = sizeof buf - z->avail_out;
        full = z->avail_out == 0;
        if (r == Z_STREAM_END)
            h->z_end = 1;
        else if (r != Z_OK && !(r == Z_BUF_ERROR && !got)) {
            srv_reply_error(rep, 400,
                            "Content-Encoding: %s: the body is not a valid %s stream (%s)",
                            h->zname, h->zname, z->msg ? z->msg : "corrupt data");
            return 0;
        }
        if (got && !body_append(s, h, buf, got, rep)) {
            const char *opt;
            size_t cap = body_cap(s, h->r.route, &opt);
            if (rep->status == 413)
                srv_reply_error(rep, 413,
                                "request body inflates (Content-Encoding: %s) past %s (%zu)",
                                h->zname, opt, cap);
            return 0;
        }
        if (!got && r == Z_BUF_ERROR)
            break; /* it needs more input */
    }
    return 1;
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *conn, const char *url,
                                  const char *method, const char *version, const char *upload,
                                  size_t *upload_size, void **con_cls)
{
    struct srv *s = cls;
    struct hreq *h = *con_cls;
    if (!h)
        return first_call(s, conn, url, method, version, con_cls);
    if (h->status) /* a reply is queued already */
        return MHD_YES;
    if (h->r.finish) { /* woken after srv_req_defer */
        struct srv_reply rep = {0};
        run_finish(&h->r, &rep);
        return queue_reply(h, &rep);
    }
    if (*upload_size) {
        size_t n = *upload_size;
        *upload_size = 0;
        if (h->early) {
            h->dropped += n;
            if (srv_now_ns() - h->linger_since < (uint64_t)s->cfg.linger_timeout * 1000000000ULL &&
                h->dropped <= s->cfg.linger_bytes)
                return MHD_YES;
            return refuse_now(h, 0); /* past the linger bounds: reply and close */
        }
        struct srv_reply rep = {0};
        if (!(h->z ? body_inflate(s, h, upload, n, &rep) : body_append(s, h, upload, n, &rep))) {
            h->dropped = h->r.len + n;
            h->r.len = 0;
            return refuse(h, &rep);
        }
        return MHD_YES;
    }
    if (h->early)
        return refuse_now(h, 1);
    if (h->z && !h->z_end && (h->r.len || h->z->total_in)) {
        struct srv_reply rep = {0};
        srv_reply_error(&rep, 400,
                        "Content-Encoding: %s: the body ends before its compressed "
                        "stream does",
                        h->zname);
        return queue_reply(h, &rep);
    }
    if (h->r.body)
        h->r.body[h->r.len] = 0;
    struct srv_reply rep = {0};
    srv_run_handler(&h->r, &rep);
    if (!rep.status && h->r.finish) /* deferred: the connection is parked */
        return MHD_YES;
    return queue_reply(h, &rep);
}

static void on_completed(void *cls, struct MHD_Connection *conn, void **con_cls,
                         enum MHD_RequestTerminationCode toe)
{
    struct srv *s = cls;
    struct hreq *h = *con_cls;
    (void)conn;
    if (!h)
        return;
    if (h->r.finish) { /* woken, but closed (a stop) before it ran: it frees its work */
        struct srv_reply rep = {0};
        run_finish(&h->r, &rep);
        srv_reply_free(&rep);
    }
    double us = (double)(srv_now_ns() - h->r.t0_ns) / 1e3;
    /* What the log and metrics record is what the client got. */
    if (toe != MHD_REQUEST_TERMINATED_COMPLETED_OK) {
        int client_left =
            toe == MHD_REQUEST_TERMINATED_CLIENT_ABORT || toe == MHD_REQUEST_TERMINATED_READ_ERROR;
        if (!h->status) /* the client went away before a reply */
            h->status = toe == MHD_REQUEST_TERMINATED_TIMEOUT_REACHED ? 408 : 499;
        else
            h->undelivered = client_left                                     ? "client closed"
                             : toe == MHD_REQUEST_TERMINATED_DAEMON_SHUTDOWN ? "shutdown"
                             : toe == MHD_REQUEST_TERMINATED_TIMEOUT_REACHED ? "timeout"
                                                                             : "error";
        if (h->undelivered && client_left)
            h->status = 499;
    }
    if (h->early) {
        srv_reply_free(h->early);
        free(h->early);
        h->early = NULL;
    }
    size_t in = h->r.len + h->dropped, out = h->undelivered ? 0 : h->bytes_out;
    srv_metrics_observe(s->metrics, h->r.route, h->status, us / 1e6, in, out);
    struct srv_access a = {.method = h->r.method,
                           .path = h->r.path,
                           .route = srv_route_patterns[h->r.route],
                           .id = h->r.id,
                           .model = h->r.model,
                           .key = h->r.key_id,
                           .undelivered = h->undelivered,
                           .status = h->status,
                           .bytes_in = in,
                           .bytes_out = out,
                           .us = us};
    srv_log_access(&a);
    release_body(s, h);
    free(h);
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
    unsigned flags = MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_EPOLL | MHD_USE_ERROR_LOG |
                     MHD_USE_TURBO | MHD_ALLOW_SUSPEND_RESUME;
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
        {MHD_OPTION_END, 0, NULL}, /* HTTPS: the 3 below */
        {MHD_OPTION_END, 0, NULL},
        {MHD_OPTION_END, 0, NULL},
        {MHD_OPTION_END, 0, NULL},
    };
    if (s->cfg.tls_cert_file[0]) { /* the credentials were loaded and checked (tls.h) */
        size_t n = sizeof opts / sizeof *opts - 4;
        flags |= MHD_USE_TLS;
        opts[n++] =
            (struct MHD_OptionItem){MHD_OPTION_HTTPS_CERT_CALLBACK, 0, srv_tls_retrieve_fn()};
        opts[n++] =
            (struct MHD_OptionItem){MHD_OPTION_HTTPS_PRIORITIES, 0, (void *)s->cfg.tls_priorities};
        if (srv_tls_client_ca()) /* libmicrohttpd asks for a client certificate */
            opts[n++] =
                (struct MHD_OptionItem){MHD_OPTION_HTTPS_MEM_TRUST, 0, (void *)srv_tls_client_ca()};
    }
    s->daemon = MHD_start_daemon(flags, 0, accept_policy, s, on_request, s, MHD_OPTION_ARRAY, opts,
                                 MHD_OPTION_END);
    freeaddrinfo(ai);
    if (!s->daemon) {
        snprintf(err, errlen, "cannot listen on %s:%d (in use, or not an address of this host?%s)",
                 s->cfg.host, s->cfg.port,
                 s->cfg.tls_cert_file[0] ? " or tls_priorities is not a GnuTLS priority string"
                                         : "");
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
    srv_train_stop(s->trainer); /* training jobs cancelled (reported so) and joined */
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
        /* what is still queued for a batch is answered 503 now, with the cut passes (and a
         * late request's submit is refused) */
        srv_engine_stop(s->engine);
        left = wait_idle(s, t0 + drain);
        if (left > 0)
            srv_log(CFG_LOG_WARN, "%ld request(s) still in flight at drain_timeout; closing them",
                    left);
    }
    /* The batch workers join before libmicrohttpd stops: it refuses to stop with a parked
     * connection, and every queued request has been answered (woken) by then. The engine
     * is freed after it (main.c): request threads use it until they are gone. */
    srv_engine_stop(s->engine);
    MHD_stop_daemon(s->daemon);
    s->daemon = NULL;
}
