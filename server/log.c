/* Logging to stderr, one line per event, text or JSON (log_format). */
#include <cjson/cJSON.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "server/srv.h"

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
        cJSON *o = cJSON_CreateObject();
        cJSON_AddStringToObject(o, "ts", ts);
        cJSON_AddStringToObject(o, "level", level_names[level]);
        cJSON_AddStringToObject(o, "msg", msg);
        char *s = cJSON_PrintUnformatted(o);
        cJSON_Delete(o);
        if (s) {
            size_t n = strlen(s);
            s[n] = '\n'; /* replace the NUL; print n+1 bytes */
            emit(s, n + 1);
            free(s);
        }
        return;
    }
    char line[2200];
    int n = snprintf(line, sizeof line, "%s %s %s\n", ts, level_names[level], msg);
    emit(line, n < (int)sizeof line ? (size_t)n : sizeof line - 1);
}

void srv_log_access(const struct srv_req *req, double us)
{
    if (!log_access || log_level < CFG_LOG_INFO)
        return;
    char ts[40];
    timestamp(ts, sizeof ts);
    const char *route = srv_route_patterns[req->route];
    if (log_format == CFG_LOG_JSON) {
        cJSON *o = cJSON_CreateObject();
        cJSON_AddStringToObject(o, "ts", ts);
        cJSON_AddStringToObject(o, "level", "info");
        cJSON_AddStringToObject(o, "type", "access");
        cJSON_AddStringToObject(o, "method", req->method);
        cJSON_AddStringToObject(o, "path", req->path);
        cJSON_AddStringToObject(o, "route", route);
        cJSON_AddNumberToObject(o, "status", req->status);
        if (req->undelivered)
            cJSON_AddStringToObject(o, "undelivered", req->undelivered);
        cJSON_AddNumberToObject(o, "bytes_in", (double)(req->len + req->dropped));
        cJSON_AddNumberToObject(o, "bytes_out", req->undelivered ? 0 : (double)req->bytes_out);
        cJSON_AddNumberToObject(o, "us", (double)(long long)us);
        cJSON_AddStringToObject(o, "request_id", req->id);
        if (req->model[0])
            cJSON_AddStringToObject(o, "model", req->model);
        char *s = cJSON_PrintUnformatted(o);
        cJSON_Delete(o);
        if (s) {
            size_t n = strlen(s);
            s[n] = '\n';
            emit(s, n + 1);
            free(s);
        }
        return;
    }
    char line[800];
    /* the path is printed with %.200s and without control characters */
    char path[201];
    size_t i = 0;
    for (; req->path[i] && i < 200; i++)
        path[i] = (req->path[i] < 0x20 || req->path[i] == 0x7f) ? '?' : req->path[i];
    path[i] = 0;
    int n =
        snprintf(line, sizeof line,
                 "%s access %s %s route=%s status=%u%s%s in=%zu out=%zu us=%lld id=%s%s%s\n", ts,
                 req->method, path, route, req->status, req->undelivered ? " undelivered=" : "",
                 req->undelivered ? req->undelivered : "", req->len + req->dropped,
                 req->undelivered ? 0 : req->bytes_out, (long long)us, req->id,
                 req->model[0] ? " model=" : "", req->model);
    emit(line, n < (int)sizeof line ? (size_t)n : sizeof line - 1);
}
