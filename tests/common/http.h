/* Test helpers for the HTTP suites: start the real daemon as a child process and
 * talk to it with libcurl. Prefix t_. */
#ifndef RELUD_TEST_HTTP_H
#define RELUD_TEST_HTTP_H

#include <stddef.h>
#include <sys/types.h>
#include <cjson/cJSON.h>

struct t_daemon {
    pid_t pid;
    int port;
    char url[64];        /* "http://127.0.0.1:PORT" */
    char log_path[256];  /* the child's stderr (access log etc.) */
};

/* Starts $RELUD (default build/relud) with "--host 127.0.0.1 --port 0" plus args
 * (NULL-terminated, may be NULL) and waits until it logs the port it listens on and
 * /v2/health/ready answers 200. Returns 0 on success. Extra environment: envs
 * ("NAME=value", NULL-terminated, may be NULL). */
int t_daemon_start(struct t_daemon *d, const char *const *args, const char *const *envs);
/* Sends sig (SIGTERM if 0) and waits up to timeout_s; returns the exit status
 * (0..255), 128+signal if killed by a signal, -1 on timeout (then SIGKILLs). */
int t_daemon_stop(struct t_daemon *d, int sig, int timeout_s);
/* The whole stderr log so far (malloc'd, NUL-terminated). */
char *t_daemon_log(const struct t_daemon *d);

struct t_resp {
    long status;
    char *body;          /* NUL-terminated */
    size_t len;
    char *headers;       /* raw header block, NUL-terminated */
    cJSON *json;         /* parsed body or NULL */
};

/* One request. headers: NULL-terminated "Name: value" list or NULL. Returns the curl
 * code (0 = transport OK). The response must be freed with t_resp_free. */
int t_http(const char *method, const char *url, const char *body, size_t body_len,
           const char *const *headers, struct t_resp *r);
/* Shorthands: POST JSON to d->url + path / GET. */
int t_post(const struct t_daemon *d, const char *path, const char *json, struct t_resp *r);
int t_get(const struct t_daemon *d, const char *path, struct t_resp *r);
/* One request to d->url + path with an optional Authorization header line (auth NULL:
 * none) and body (len 0: strlen), asserting (cmocka) that it was answered with status
 * (0: any); the reply is printed when the status differs. */
struct t_resp t_call(const struct t_daemon *d, const char *method, const char *path,
                     const char *auth, const char *body, size_t len, long status);
/* GET /metrics until its body holds line, up to 10 s: 0 with that reply in r (free it), else
 * -1. A request is counted once its reply has been sent, which can be after the client has
 * read it, so a test that has just made a request waits for its count. */
int t_metrics_wait(const struct t_daemon *d, const char *line, struct t_resp *r);
void t_resp_free(struct t_resp *r);
/* Value of a response header (case-insensitive name), copied into buf; NULL if absent. */
const char *t_resp_header(const struct t_resp *r, const char *name, char *buf, size_t len);

/* Asserts r is an error reply: {"error": "..."} (containing part, unless NULL) with
 * Content-Type application/json (cmocka). */
void t_check_error(const struct t_resp *r, const char *part);
/* o[key], asserting it is there. */
const cJSON *t_item(const cJSON *o, const char *key);

/* The entry named name in a repository index array (NULL if absent). */
const cJSON *t_index_entry(const cJSON *idx, const char *name);

/* Repo root (from $RELUD_ROOT or the current directory). */
const char *t_root(void);

#endif
