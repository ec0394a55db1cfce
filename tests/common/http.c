/* Test helpers: the real daemon as a child process, libcurl requests. */
#include "tests/common/http.h"

#include "tests/common/fs.h"

#include <curl/curl.h>
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

const char *t_root(void)
{
    const char *r = getenv("RELUD_ROOT");
    return r && *r ? r : ".";
}

char *t_daemon_log(const struct t_daemon *d) { return t_read_file(d->log_path, NULL); }

static void sleep_ms(int ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

int t_daemon_start(struct t_daemon *d, const char *const *args, const char *const *envs)
{
    memset(d, 0, sizeof *d);
    const char *bin = getenv("RELUD");
    if (!bin || !*bin)
        bin = "build/relud";
    snprintf(d->log_path, sizeof d->log_path, "/tmp/relud-test-%d-%ld.log", (int)getpid(),
             (long)random());
    const char *argv[64];
    int n = 0;
    argv[n++] = bin;
    argv[n++] = "--host";
    argv[n++] = "127.0.0.1";
    argv[n++] = "--port";
    argv[n++] = "0";
    for (int i = 0; args && args[i] && n < 62; i++)
        argv[n++] = args[i];
    argv[n] = NULL;

    /* The log is created (emptied) here, before the fork: were the child to do it, this
       process could read a stale file left at the same path (pids are reused, random() is
       unseeded) and take its port for the new daemon's. */
    int fd = open(d->log_path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (fd < 0)
        return -1;
    pid_t pid = fork();
    if (pid < 0) {
        close(fd);
        return -1;
    }
    if (pid == 0) {
        dup2(fd, 2); /* dup2 clears O_CLOEXEC on 2 */
        int nul = open("/dev/null", O_RDWR);
        if (nul >= 0) {
            dup2(nul, 0);
            dup2(nul, 1);
            close(nul);
        }
        for (int i = 0; envs && envs[i]; i++)
            putenv((char *)envs[i]);
        execv(bin, (char *const *)argv);
        _exit(127);
    }
    close(fd);
    d->pid = pid;
    /* Wait for "listening on http://HOST:PORT", then for readiness: up to 30 s each (a
       shared CI machine can stall a start for seconds), saying which wait ran out. */
    for (int i = 0; i < 1500; i++) {
        int st;
        if (waitpid(pid, &st, WNOHANG) == pid) {
            d->pid = 0;
            char *log = t_daemon_log(d);
            fprintf(stderr, "relud exited during start:\n%s\n", log ? log : "");
            free(log);
            return -1;
        }
        char *log = t_daemon_log(d);
        const char *p = log ? strstr(log, "listening on http://") : NULL;
        if (p) { /* the port only once its line is whole (the log may be mid-write) */
            const char *colon = strchr(p + strlen("listening on http://"), ':');
            char *end = NULL;
            long port = colon ? strtol(colon + 1, &end, 10) : 0;
            d->port = end && end > colon + 1 && *end == ' ' && strchr(end, '\n') ? (int)port : 0;
        }
        free(log);
        if (d->port > 0)
            break;
        sleep_ms(20);
    }
    if (d->port <= 0) {
        char *log = t_daemon_log(d);
        fprintf(stderr, "relud did not log \"listening on\" within 30 s:\n%s\n", log ? log : "");
        free(log);
        t_daemon_stop(d, SIGKILL, 5);
        return -1;
    }
    snprintf(d->url, sizeof d->url, "http://127.0.0.1:%d", d->port);
    int rc = 0;
    long status = 0;
    char body[128] = "";
    for (int i = 0; i < 1500; i++) {
        int st;
        if (waitpid(pid, &st, WNOHANG) == pid) { /* e.g. strict_models refused a model */
            d->pid = 0;
            char *log = t_daemon_log(d);
            fprintf(stderr, "relud exited during start:\n%s\n", log ? log : "");
            free(log);
            return -1;
        }
        struct t_resp r;
        rc = t_get(d, "/v2/health/ready", &r);
        status = r.status;
        snprintf(body, sizeof body, "%s", r.body ? r.body : "");
        t_resp_free(&r);
        if (rc == 0 && status == 200)
            return 0;
        sleep_ms(20);
    }
    char *log = t_daemon_log(d);
    fprintf(stderr,
            "relud was not ready within 30 s (GET %s/v2/health/ready: curl %d %s, status %ld, "
            "%s):\n%s\n",
            d->url, rc, curl_easy_strerror((CURLcode)rc), status, body, log ? log : "");
    free(log);
    t_daemon_stop(d, SIGKILL, 5);
    return -1;
}

int t_daemon_stop(struct t_daemon *d, int sig, int timeout_s)
{
    if (d->pid <= 0)
        return -1;
    kill(d->pid, sig ? sig : SIGTERM);
    int st = 0;
    for (int i = 0; i < timeout_s * 100; i++) {
        pid_t w = waitpid(d->pid, &st, WNOHANG);
        if (w == d->pid) {
            d->pid = 0;
            if (WIFEXITED(st))
                return WEXITSTATUS(st);
            return 128 + WTERMSIG(st);
        }
        sleep_ms(10);
    }
    kill(d->pid, SIGKILL);
    waitpid(d->pid, &st, 0);
    d->pid = 0;
    return -1;
}

struct t_buf {
    char *p;
    size_t n;
};

static size_t t_write(char *data, size_t sz, size_t nm, void *ud)
{
    struct t_buf *b = ud;
    size_t add = sz * nm;
    char *np = realloc(b->p, b->n + add + 1);
    if (!np)
        return 0;
    memcpy(np + b->n, data, add);
    b->p = np;
    b->n += add;
    b->p[b->n] = 0;
    return add;
}

int t_http(const char *method, const char *url, const char *body, size_t body_len,
           const char *const *headers, struct t_resp *r)
{
    memset(r, 0, sizeof *r);
    CURL *c = curl_easy_init();
    if (!c)
        return -1;
    struct t_buf b = {0}, h = {0};
    struct curl_slist *hl = NULL;
    int has_ct = 0;
    for (int i = 0; headers && headers[i]; i++) {
        hl = curl_slist_append(hl, headers[i]);
        if (strncasecmp(headers[i], "content-type:", 13) == 0)
            has_ct = 1;
    }
    if (body && !has_ct)
        hl = curl_slist_append(hl, "Content-Type: application/json");
    hl = curl_slist_append(hl, "Expect:");
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, method);
    if (body) {
        curl_easy_setopt(c, CURLOPT_POSTFIELDS, body);
        curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)body_len);
    } else if (strcmp(method, "HEAD") == 0) {
        curl_easy_setopt(c, CURLOPT_NOBODY, 1L);
    }
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, hl);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, t_write);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, &b);
    curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, t_write);
    curl_easy_setopt(c, CURLOPT_HEADERDATA, &h);
    curl_easy_setopt(c, CURLOPT_TIMEOUT, 60L);
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    CURLcode rc = curl_easy_perform(c);
    curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &r->status);
    curl_slist_free_all(hl);
    curl_easy_cleanup(c);
    r->body = b.p ? b.p : calloc(1, 1);
    r->len = b.n;
    r->headers = h.p ? h.p : calloc(1, 1);
    r->json = r->len ? cJSON_Parse(r->body) : NULL;
    return (int)rc;
}

int t_post(const struct t_daemon *d, const char *path, const char *json, struct t_resp *r)
{
    char url[512];
    snprintf(url, sizeof url, "%s%s", d->url, path);
    return t_http("POST", url, json, strlen(json), NULL, r);
}

int t_get(const struct t_daemon *d, const char *path, struct t_resp *r)
{
    char url[512];
    snprintf(url, sizeof url, "%s%s", d->url, path);
    return t_http("GET", url, NULL, 0, NULL, r);
}

struct t_resp t_call(const struct t_daemon *d, const char *method, const char *path,
                     const char *auth, const char *body, size_t len, long status)
{
    char url[512];
    snprintf(url, sizeof url, "%s%s", d->url, path);
    const char *hdrs[] = {auth, NULL};
    struct t_resp r;
    assert_int_equal(
        t_http(method, url, body, body ? (len ? len : strlen(body)) : 0, auth ? hdrs : NULL, &r),
        0);
    if (status && r.status != status)
        fprintf(stderr, "%s %s (%s)\nresponse %ld (want %ld): %.2000s\n", method, path,
                auth ? auth : "no Authorization", r.status, status, r.body);
    if (status)
        assert_int_equal(r.status, status);
    return r;
}

int t_metrics_wait(const struct t_daemon *d, const char *line, struct t_resp *r)
{
    for (int i = 0; i < 1000; i++) {
        if (t_get(d, "/metrics", r) == 0 && r->status == 200 && strstr(r->body, line))
            return 0;
        t_resp_free(r);
        sleep_ms(10);
    }
    return -1;
}

void t_resp_free(struct t_resp *r)
{
    free(r->body);
    free(r->headers);
    cJSON_Delete(r->json);
    memset(r, 0, sizeof *r);
}

const char *t_resp_header(const struct t_resp *r, const char *name, char *buf, size_t len)
{
    size_t nl = strlen(name);
    for (const char *p = r->headers; p && *p;) {
        const char *eol = strstr(p, "\r\n");
        size_t ll = eol ? (size_t)(eol - p) : strlen(p);
        if (ll > nl && strncasecmp(p, name, nl) == 0 && p[nl] == ':') {
            const char *v = p + nl + 1;
            while (*v == ' ')
                v++;
            size_t vl = (size_t)(p + ll - v);
            if (vl >= len)
                vl = len - 1;
            memcpy(buf, v, vl);
            buf[vl] = 0;
            return buf; /* the last response's header wins below if repeated */
        }
        p = eol ? eol + 2 : p + ll;
    }
    return NULL;
}

void t_check_error(const struct t_resp *r, const char *part)
{
    char ct[64];
    assert_non_null(t_resp_header(r, "Content-Type", ct, sizeof ct));
    assert_string_equal(ct, "application/json");
    assert_non_null(r->json);
    const cJSON *e = cJSON_GetObjectItemCaseSensitive(r->json, "error");
    assert_true(cJSON_IsString(e));
    if (part && !strstr(e->valuestring, part))
        fprintf(stderr, "want error containing: %s\ngot: %s\n", part, e->valuestring);
    if (part)
        assert_non_null(strstr(e->valuestring, part));
}

const cJSON *t_item(const cJSON *o, const char *key)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    if (!v)
        fprintf(stderr, "missing key \"%s\"\n", key);
    assert_non_null(v);
    return v;
}

const cJSON *t_index_entry(const cJSON *idx, const char *name)
{
    const cJSON *e;
    cJSON_ArrayForEach(e, idx)
    {
        const cJSON *n = cJSON_GetObjectItemCaseSensitive(e, "name");
        if (cJSON_IsString(n) && !strcmp(n->valuestring, name))
            return e;
    }
    return NULL;
}
