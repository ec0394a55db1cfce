/* Logging to stderr, one line per event, text or JSON (log_format), one write a line so
 * threads never interleave within one. */
#ifndef RELUD_LOG_H
#define RELUD_LOG_H

#include <stddef.h>

#include "config/cfg.h"

void srv_log_init(int level, int format, int access);
void srv_log(int level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* One request, as the access log records it: what the client got. */
struct srv_access {
    const char *method, *path, *route, *id, *model; /* model "" when none */
    const char *key;                                /* the access key's id, "" none */
    const char *undelivered; /* why a queued reply never fully went out, or NULL */
    unsigned status;
    size_t bytes_in, bytes_out;
    double us;
};
void srv_log_access(const struct srv_access *a);

#endif
