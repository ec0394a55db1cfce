/* Operating the daemon: health, metrics, access log, request limits, slow clients,
 * concurrency, draining on SIGTERM, and start-up errors. */
#include <arpa/inet.h>
#include <math.h>
#include <netinet/in.h>
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "tests/common/http.h"

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* A raw TCP connection to the daemon, for clients that misbehave on purpose. */
static int raw_connect(const struct t_daemon *d)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)d->port)};
    inet_pton(AF_INET, "127.0.0.1", &a.sin_addr);
    assert_int_equal(connect(fd, (struct sockaddr *)&a, sizeof a), 0);
    struct timeval tv = {10, 0};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    return fd;
}

static void raw_send(int fd, const char *s)
{
    size_t n = strlen(s);
    assert_int_equal(send(fd, s, n, MSG_NOSIGNAL), (ssize_t)n);
}

/* Reads until the peer closes or n bytes; returns bytes read. */
static size_t raw_recv_all(int fd, char *buf, size_t n)
{
    size_t got = 0;
    ssize_t r;
    while (got < n - 1 && (r = recv(fd, buf + got, n - 1 - got, 0)) > 0)
        got += (size_t)r;
    buf[got] = 0;
    return got;
}

static const char *relu_body = "{\"input\": [-2, -1, 0, 1, 2], \"layers\": [{\"type\": \"relu\"}]}";

static void health_and_metrics(void **state)
{
    (void)state;
    struct t_daemon d;
    assert_int_equal(t_daemon_start(&d, NULL, NULL), 0);
    struct t_resp r;
    assert_int_equal(t_get(&d, "/v2/health/live", &r), 0);
    assert_int_equal(r.status, 200);
    assert_string_equal(r.body, "{\"live\":true}");
    t_resp_free(&r);
    assert_int_equal(t_get(&d, "/v2/health/ready", &r), 0);
    assert_int_equal(r.status, 200);
    assert_string_equal(r.body, "{\"ready\":true}");
    t_resp_free(&r);
    for (int i = 0; i < 3; i++) {
        assert_int_equal(t_post(&d, "/v1/forward", relu_body, &r), 0);
        assert_int_equal(r.status, 200);
        t_resp_free(&r);
    }
    assert_int_equal(t_post(&d, "/v1/forward", "{", &r), 0);
    assert_int_equal(r.status, 400);
    t_resp_free(&r);
    /* the last of the four, counted once its reply was sent */
    assert_int_equal(
        t_metrics_wait(&d, "relud_request_duration_seconds_count{route=\"/v1/forward\"} 4\n", &r),
        0);
    char ct[96];
    assert_non_null(t_resp_header(&r, "Content-Type", ct, sizeof ct));
    assert_non_null(strstr(ct, "text/plain; version=0.0.4"));
    assert_non_null(strstr(r.body, "relud_requests_total{route=\"/v1/forward\",code=\"200\"} 3\n"));
    assert_non_null(strstr(r.body, "relud_requests_total{route=\"/v1/forward\",code=\"400\"} 1\n"));
    assert_non_null(strstr(r.body, "relud_errors_total{class=\"invalid_request\"} 1\n"));
    assert_non_null(
        strstr(r.body, "relud_request_duration_seconds_count{route=\"/v1/forward\"} 4\n"));
    assert_non_null(strstr(
        r.body, "relud_request_duration_seconds_bucket{route=\"/v1/forward\",le=\"+Inf\"} 4\n"));
    assert_non_null(strstr(r.body, "# TYPE relud_request_duration_seconds histogram"));
    /* this request, and maybe an earlier poll of t_metrics_wait: a request is counted until
     * its completion, which can come after its client has read the reply */
    const char *inflight = strstr(r.body, "\nrelud_inflight_requests ");
    assert_non_null(inflight);
    assert_true(atol(inflight + strlen("\nrelud_inflight_requests ")) >= 1);
    assert_non_null(strstr(r.body, "relud_request_bytes_total{route=\"/v1/forward\"}"));
    assert_non_null(strstr(r.body, "relud_response_bytes_total{route=\"/v1/forward\"}"));
    t_resp_free(&r);
    assert_int_equal(t_daemon_stop(&d, SIGTERM, 30), 0);
    /* one access-log line per request, with the request id */
    char *log = t_daemon_log(&d);
    assert_non_null(log);
    assert_non_null(strstr(log, "access POST /v1/forward route=/v1/forward status=400"));
    assert_non_null(strstr(log, " id="));
    free(log);
}

static void json_access_log(void **state)
{
    (void)state;
    struct t_daemon d;
    const char *args[] = {"--log-format", "json", NULL};
    assert_int_equal(t_daemon_start(&d, args, NULL), 0);
    char url[128];
    snprintf(url, sizeof url, "%s/v1/forward", d.url);
    const char *h[] = {"X-Request-Id: trace-7", NULL};
    struct t_resp r;
    assert_int_equal(t_http("POST", url, relu_body, strlen(relu_body), h, &r), 0);
    assert_int_equal(r.status, 200);
    t_resp_free(&r);
    assert_int_equal(t_daemon_stop(&d, SIGTERM, 30), 0);
    char *log = t_daemon_log(&d);
    int found = 0;
    for (char *line = strtok(log, "\n"); line; line = strtok(NULL, "\n")) {
        cJSON *j = cJSON_Parse(line);
        assert_non_null(j); /* every line is JSON */
        const cJSON *id = cJSON_GetObjectItemCaseSensitive(j, "request_id");
        if (cJSON_IsString(id) && !strcmp(id->valuestring, "trace-7")) {
            found = 1;
            assert_string_equal(cJSON_GetObjectItemCaseSensitive(j, "method")->valuestring, "POST");
            assert_string_equal(cJSON_GetObjectItemCaseSensitive(j, "route")->valuestring,
                                "/v1/forward");
            assert_int_equal(cJSON_GetObjectItemCaseSensitive(j, "status")->valueint, 200);
            assert_int_equal(cJSON_GetObjectItemCaseSensitive(j, "bytes_in")->valueint,
                             (int)strlen(relu_body));
            assert_true(cJSON_IsNumber(cJSON_GetObjectItemCaseSensitive(j, "us")));
        }
        cJSON_Delete(j);
    }
    free(log);
    assert_true(found);
}

/* ---- concurrency ------------------------------------------------------------- */
struct worker {
    const struct t_daemon *d;
    int id, ok, bad;
};

static void *worker_main(void *arg)
{
    struct worker *w = arg;
    for (int i = 0; i < 40; i++) {
        /* y = 2x + k through linear, so every reply is checkable */
        int k = w->id * 1000 + i;
        char body[256], want[64];
        snprintf(body, sizeof body,
                 "{\"input\": [[%d]], \"layers\": [{\"type\": \"linear\", \"weight\": [[2]], "
                 "\"bias\": [%d]}]}",
                 i, k);
        snprintf(want, sizeof want, "{\"output\":[[%d]]}", 2 * i + k);
        struct t_resp r;
        if (t_post(w->d, "/v1/forward", body, &r) == 0 && r.status == 200 && !strcmp(r.body, want))
            w->ok++;
        else
            w->bad++;
        t_resp_free(&r);
    }
    return NULL;
}

static void concurrent_clients(void **state)
{
    (void)state;
    struct t_daemon d;
    assert_int_equal(t_daemon_start(&d, NULL, NULL), 0);
    enum { N = 8 };
    pthread_t th[N];
    struct worker w[N];
    for (int i = 0; i < N; i++) {
        w[i] = (struct worker){&d, i, 0, 0};
        pthread_create(&th[i], NULL, worker_main, &w[i]);
    }
    int ok = 0, bad = 0;
    for (int i = 0; i < N; i++) {
        pthread_join(th[i], NULL);
        ok += w[i].ok;
        bad += w[i].bad;
    }
    assert_int_equal(bad, 0);
    assert_int_equal(ok, N * 40);
    assert_int_equal(t_daemon_stop(&d, SIGTERM, 30), 0);
}

/* ---- slow clients ---------------------------------------------------------------- */
static void slow_client_does_not_block(void **state)
{
    (void)state;
    struct t_daemon d;
    /* one worker thread: a slow upload must still not hold it (the slow client would hold
     * it until connection_timeout, 60 s here, far past the bound below) */
    const char *args[] = {"--threads", "1", "--connection-timeout", "60", NULL};
    assert_int_equal(t_daemon_start(&d, args, NULL), 0);
    int fd = raw_connect(&d);
    raw_send(fd, "POST /v1/forward HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                 "Content-Length: 60\r\n\r\n{\"input\": [1, 2");
    double t0 = now_s();
    for (int i = 0; i < 20; i++) {
        struct t_resp r;
        assert_int_equal(t_post(&d, "/v1/forward", relu_body, &r), 0);
        assert_int_equal(r.status, 200);
        t_resp_free(&r);
    }
    /* 20 tiny requests take milliseconds unless the slow client blocks them (then 60 s);
     * the bound is that far from both, so a loaded machine cannot make it flaky */
    assert_true(now_s() - t0 < 30.0);
    close(fd);
    assert_int_equal(t_daemon_stop(&d, SIGTERM, 30), 0);
}

static void idle_client_is_dropped(void **state)
{
    (void)state;
    struct t_daemon d;
    const char *args[] = {"--connection-timeout", "1", NULL};
    assert_int_equal(t_daemon_start(&d, args, NULL), 0);
    int fd = raw_connect(&d);
    raw_send(fd, "POST /v1/forward HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n{");
    char buf[256];
    double t0 = now_s();
    raw_recv_all(fd, buf, sizeof buf); /* returns when the daemon closes the connection */
    double waited = now_s() - t0;
    /* dropped after ~1 s of silence; SO_RCVTIMEO (10 s) would end the wait otherwise */
    assert_true(waited >= 0.5 && waited < 9.5);
    close(fd);
    assert_int_equal(t_daemon_stop(&d, SIGTERM, 30), 0);
}

static void overloaded_503(void **state)
{
    (void)state;
    struct t_daemon d;
    const char *args[] = {"--max-buffered-bytes", "3000", "--max-body-bytes", "2048", NULL};
    assert_int_equal(t_daemon_start(&d, args, NULL), 0);
    int fd = raw_connect(&d);
    /* holds 2000 of the 3000 buffered bytes while it uploads slowly */
    raw_send(fd, "POST /v1/forward HTTP/1.1\r\nHost: x\r\nContent-Length: 2000\r\n\r\n{");
    usleep(200 * 1000);
    char body[1500];
    memset(body, ' ', sizeof body - 1);
    body[sizeof body - 1] = 0;
    memcpy(body, relu_body, strlen(relu_body));
    struct t_resp r;
    assert_int_equal(t_post(&d, "/v1/forward", body, &r), 0);
    assert_int_equal(r.status, 503);
    char ra[16];
    assert_non_null(t_resp_header(&r, "Retry-After", ra, sizeof ra));
    assert_non_null(strstr(r.body, "max_buffered_bytes"));
    t_resp_free(&r);
    close(fd);
    usleep(200 * 1000);
    /* once the slow client is gone the same request goes through */
    assert_int_equal(t_post(&d, "/v1/forward", body, &r), 0);
    assert_int_equal(r.status, 200);
    t_resp_free(&r);
    assert_int_equal(t_daemon_stop(&d, SIGTERM, 30), 0);
}

/* ---- draining ------------------------------------------------------------------- */
static void sigterm_during_upload_gets_200(void **state)
{
    (void)state;
    struct t_daemon d;
    assert_int_equal(t_daemon_start(&d, NULL, NULL), 0);
    const char *body = relu_body;
    char head[256];
    snprintf(head, sizeof head,
             "POST /v1/forward HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
             "Content-Length: %zu\r\n\r\n",
             strlen(body));
    int fd = raw_connect(&d);
    raw_send(fd, head);
    char half[64];
    snprintf(half, sizeof half, "%.20s", body);
    raw_send(fd, half);
    usleep(200 * 1000);
    kill(d.pid, SIGTERM);
    usleep(300 * 1000);
    /* draining: no new connections are accepted */
    struct t_resp r;
    int rc = t_get(&d, "/v2/health/ready", &r);
    assert_true(rc != 0 || r.status == 503);
    t_resp_free(&r);
    /* the upload under way completes and gets its answer */
    raw_send(fd, body + 20);
    char buf[2048];
    raw_recv_all(fd, buf, sizeof buf);
    assert_non_null(strstr(buf, "HTTP/1.1 200"));
    assert_non_null(strstr(buf, "{\"output\":[0,0,0,1,2]}"));
    close(fd);
    assert_int_equal(t_daemon_stop(&d, SIGTERM, 30), 0); /* exit status 0 */
}

/* ---- start-up ---------------------------------------------------------------------- */
static int run_relud(const char *args, char *out, size_t outlen)
{
    const char *bin = getenv("RELUD");
    char cmd[512];
    snprintf(cmd, sizeof cmd, "%s %s 2>&1", bin && *bin ? bin : "build/relud", args);
    FILE *p = popen(cmd, "r");
    size_t n = fread(out, 1, outlen - 1, p);
    out[n] = 0;
    int st = pclose(p);
    return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

static void startup_errors(void **state)
{
    (void)state;
    char out[8192];
    assert_int_equal(run_relud("--port 80x", out, sizeof out), 2);
    assert_non_null(strstr(out, "port"));
    assert_non_null(strstr(out, "--port"));
    assert_int_equal(run_relud("--no-such-option 1", out, sizeof out), 2);
    assert_non_null(strstr(out, "no-such-option"));
    assert_int_equal(run_relud("--version", out, sizeof out), 0);
    assert_non_null(strstr(out, "relud 0."));
    assert_int_equal(run_relud("--help", out, sizeof out), 0);
    assert_non_null(strstr(out, "--max-body-bytes"));
    assert_non_null(strstr(out, "RELUD_"));
    /* an address that is not ours */
    assert_int_equal(run_relud("--host 192.0.2.1 --port 0", out, sizeof out), 1);
    assert_non_null(strstr(out, "cannot listen"));
    /* a mistyped model_dir stops the start: ready must mean serving what was configured */
    assert_int_equal(run_relud("--port 0 --model-dir /nonexistent/models", out, sizeof out), 1);
    assert_non_null(strstr(out, "model_dir /nonexistent/models: No such file or directory"));
}

/* The ready line gives the address really bound (port 0 picks one). */
static void ready_line_names_bound_port(void **state)
{
    (void)state;
    struct t_daemon d;
    assert_int_equal(t_daemon_start(&d, NULL, NULL), 0);
    char *log = t_daemon_log(&d), want[96];
    snprintf(want, sizeof want, "ready: serving on http://127.0.0.1:%d/", d.port);
    assert_non_null(strstr(log, want));
    free(log);
    assert_int_equal(t_daemon_stop(&d, SIGTERM, 30), 0);
}

int main(void)
{
    signal(SIGPIPE, SIG_IGN);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(health_and_metrics),
        cmocka_unit_test(json_access_log),
        cmocka_unit_test(concurrent_clients),
        cmocka_unit_test(slow_client_does_not_block),
        cmocka_unit_test(idle_client_is_dropped),
        cmocka_unit_test(overloaded_503),
        cmocka_unit_test(sigterm_during_upload_gets_200),
        cmocka_unit_test(startup_errors),
        cmocka_unit_test(ready_line_names_bound_port),
    };
    return cmocka_run_group_tests_name("http_ops", tests, NULL, NULL);
}
