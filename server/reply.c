/* Replies as handlers build them (srv.h): error bodies, the writer's text, headers. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "server/srv.h"
#include "server/status.h"

uint64_t srv_now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ULL + (uint64_t)ts.tv_nsec;
}

void srv_tail_free(struct srv_tail *t)
{
    if (t) {
        free(t->block);
        free(t->body);
    }
    free(t);
}

void srv_reply_free(struct srv_reply *rep)
{
    free(rep->body);
    srv_tail_free(rep->tail);
    rep->body = NULL;
    rep->tail = NULL;
}

void srv_reply_body(struct srv_reply *rep, unsigned status, const char *ctype, char *body,
                    size_t len)
{
    srv_reply_free(rep);
    rep->status = status;
    rep->ctype = ctype;
    rep->body = body;
    rep->len = len;
}

void srv_reply_error(struct srv_reply *rep, unsigned status, const char *fmt, ...)
{
    char msg[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    struct srv_jw w;
    srv_jw_init(&w, strlen(msg) + 32, 0);
    srv_jw_obj(&w);
    srv_jw_kstr(&w, "error", msg);
    srv_jw_end(&w);
    size_t len;
    char *body = srv_jw_finish(&w, &len, NULL, NULL);
    /* NULL: out of memory; the transport sends its static out-of-memory reply */
    srv_reply_body(rep, body ? status : 503, "application/json", body, body ? len : 0);
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

void srv_reply_jw(struct srv_reply *rep, unsigned status, struct srv_jw *w)
{
    size_t len;
    enum nn_status st;
    struct nn_err err;
    char *body = srv_jw_finish(w, &len, &st, &err);
    if (body)
        srv_reply_body(rep, status, "application/json", body, len);
    else
        srv_reply_nn_error(rep, st, &err);
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
