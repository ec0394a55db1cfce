/* Logging: see log.h. */
#include "server/log.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "server/jsonw.h"

static int log_level = CFG_LOG_INFO;
static int log_format = CFG_LOG_TEXT;
static int log_access = 1;
static const char *const level_names[] = {"error", "warn", "info", "debug"};

void srv_log_init(int level, int format, int access)
{
    log_level = level;
    log_format = format;
    log_access = access;
}

static void timestamp(char *buf, size_t len)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    struct tm tm;
    gmtime_r(&ts.tv_sec, &tm);
    size_t n = strftime(buf, len, "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf(buf + n, len - n, ".%03ldZ", ts.tv_nsec / 1000000L);
}

/* One write per line so concurrent threads never interleave within a line. */
static void emit(const char *line, size_t n)
{
    fwrite(line, 1, n, stderr);
    fflush(stderr);
}

/* Finishes a JSON line: the object closed, a newline, written. */
static void emit_jw(struct srv_jw *w)
{
    srv_jw_end(w);
    size_t n;
    char *s = srv_jw_finish(w, &n, NULL, NULL);
    if (!s)
        return;
    char *nl = realloc(s, n + 2);
    if (nl) {
        nl[n] = '\n';
        emit(nl, n + 1);
        s = nl;
    }
    free(s);
}

void srv_log(int level, const char *fmt, ...)
{
    if (level > log_level)
        return;
    char msg[2048], ts[40];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    timestamp(ts, sizeof ts);
    if (log_format == CFG_LOG_JSON) {
        struct srv_jw w;
        srv_jw_init(&w, strlen(msg) + 96, 0);
        srv_jw_obj(&w);
        srv_jw_kstr(&w, "ts", ts);
        srv_jw_kstr(&w, "level", level_names[level]);
        srv_jw_kstr(&w, "msg", msg);
        emit_jw(&w);
        return;
    }
    char line[2200];
    int n = snprintf(line, sizeof line, "%s %s %s\n", ts, level_names[level], msg);
    emit(line, n < (int)sizeof line ? (size_t)n : sizeof line - 1);
}

void srv_log_access(const struct srv_access *a)
{
    if (!log_access || log_level < CFG_LOG_INFO)
        return;
    char ts[40];
    timestamp(ts, sizeof ts);
    if (log_format == CFG_LOG_JSON) {
        struct srv_jw w;
        srv_jw_init(&w, 512, 0);
        srv_jw_obj(&w);
        srv_jw_kstr(&w, "ts", ts);
        srv_jw_kstr(&w, "level", "info");
        srv_jw_kstr(&w, "type", "access");
        srv_jw_kstr(&w, "method", a->method);
        srv_jw_kstr(&w, "path", a->path); /* the writer escapes it */
        srv_jw_kstr(&w, "route", a->route);
        srv_jw_kuint(&w, "status", a->status);
        if (a->undelivered)
            srv_jw_kstr(&w, "undelivered", a->undelivered);
        srv_jw_kuint(&w, "bytes_in", a->bytes_in);
        srv_jw_kuint(&w, "bytes_out", a->bytes_out);
        srv_jw_kint(&w, "us", (long long)a->us);
        srv_jw_kstr(&w, "request_id", a->id);
        if (a->model[0])
            srv_jw_kstr(&w, "model", a->model);
        if (a->key[0])
            srv_jw_kstr(&w, "key", a->key);
        emit_jw(&w);
        return;
    }
    char line[800];
    /* the path is printed with %.200s and without control characters */
    char path[201];
    size_t i = 0;
    for (; a->path[i] && i < 200; i++)
        path[i] = (a->path[i] < 0x20 || a->path[i] == 0x7f) ? '?' : a->path[i];
    path[i] = 0;
    int n =
        snprintf(line, sizeof line,
                 "%s access %s %s route=%s status=%u%s%s in=%zu out=%zu us=%lld id=%s%s%s%s%s\n",
                 ts, a->method, path, a->route, a->status, a->undelivered ? " undelivered=" : "",
                 a->undelivered ? a->undelivered : "", a->bytes_in, a->bytes_out, (long long)a->us,
                 a->id, a->model[0] ? " model=" : "", a->model, a->key[0] ? " key=" : "", a->key);
    emit(line, n < (int)sizeof line ? (size_t)n : sizeof line - 1);
}
