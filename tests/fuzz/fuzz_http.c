/* libFuzzer target: the HTTP edge. The input is the raw bytes a client sends (request line,
 * headers, body, pipelined requests) to the real daemon (srv_start on a loopback port, the
 * real libmicrohttpd glue: framing checks, first call, early refusals and their lingering
 * read, the reply builder). The target reads everything the daemon answers and checks each
 * response: a well-formed status line; relud's own errors are JSON {"error": "<valid
 * UTF-8>"}; a response without Content-Type is one of the statuses libmicrohttpd answers
 * itself (docs/api.md). Any crash, sanitizer report, hang or malformed reply is a bug. */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cjson/cJSON.h>

#include "server/http.h"
#include "server/log.h"
#include "server/metrics.h"
#include "server/models.h"
#include "server/srv.h"

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const unsigned char *data, size_t size);

static struct srv srv;

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc, (void)argv;
    cfg_defaults(&srv.cfg);
    free(srv.cfg.host);
    srv.cfg.host = strdup("127.0.0.1");
    srv.cfg.port = 0;
    srv.cfg.threads = 2;
    srv.cfg.max_body_bytes = 64 << 10;
    srv.cfg.max_buffered_bytes = 256 << 10;
    srv.cfg.max_tensor_elements = 1 << 14;
    srv.cfg.max_workspace_bytes = 4 << 20;
    srv.cfg.max_layers = 32;
    srv.cfg.linger_timeout = 1;
    srv.cfg.connection_timeout = 1;
    srv.cfg.max_json_values = 4096;
    srv_log_init(CFG_LOG_ERROR, CFG_LOG_TEXT, 0);
    const char *dir = getenv("RELUD_FUZZ_MODELS");
    srv.models = srv_models_new(dir ? dir : "config/models", 4096);
    struct nn_err merr;
    srv_models_load_all(srv.models, 0, &merr);
    srv.metrics = srv_metrics_new();
    char err[256];
    if (srv_start(&srv, err, sizeof err)) {
        fprintf(stderr, "fuzz_http: %s\n", err);
        exit(1);
    }
    atomic_store(&srv.ready, 1);
    return 0;
}

/* Statuses libmicrohttpd sends itself (an HTML page, no Content-Type). */
static int mhd_status(int st)
{
    return st == 400 || st == 413 || st == 414 || st == 431 || st == 500 || st == 505;
}

static int valid_utf8(const unsigned char *p, size_t n)
{
    for (size_t i = 0; i < n;) {
        unsigned c = p[i];
        size_t k = c < 0x80 ? 1 : c >= 0xc2 && c <= 0xdf ? 2 : c >= 0xe0 && c <= 0xef ? 3
                             : c >= 0xf0 && c <= 0xf4 ? 4 : 0;
        if (!k || i + k > n)
            return 0;
        for (size_t j = 1; j < k; j++)
            if ((p[i + j] & 0xc0) != 0x80)
                return 0;
        i += k;
    }
    return 1;
}

/* Checks every response in buf[0..n); aborts on a malformed one. */
static void check_responses(const char *buf, size_t n)
{
    size_t at = 0;
    while (at < n) {
        const char *r = buf + at;
        const char *end = memmem(r, n - at, "\r\n\r\n", 4);
        if (!end)
            return; /* cut off by the peer's close: nothing to judge */
        if (strncmp(r, "HTTP/1.1 ", 9) && strncmp(r, "HTTP/1.0 ", 9)) {
            fprintf(stderr, "fuzz_http: not a status line: %.40s\n", r);
            abort();
        }
        int st = atoi(r + 9);
        size_t hlen = (size_t)(end + 4 - r), blen = 0;
        int json = 0;
        for (const char *h = r; h < end; h = strstr(h, "\r\n") + 2) {
            if (!strncasecmp(h, "\r\nContent-Length:", 17))
                blen = strtoul(h + 17, NULL, 10);
            if (!strncasecmp(h, "\r\nContent-Type: application/json", 32))
                json = 1;
            if (!strstr(h + 2, "\r\n") || strstr(h + 2, "\r\n") > end)
                break;
        }
        if (st < 100 || st > 599) {
            fprintf(stderr, "fuzz_http: status %d\n", st);
            abort();
        }
        if (at + hlen + blen > n)
            return;
        const char *body = r + hlen;
        if (st >= 400 && json) {
            cJSON *o = cJSON_ParseWithLength(body, blen);
            const cJSON *e = o ? cJSON_GetObjectItemCaseSensitive(o, "error") : NULL;
            if (!cJSON_IsString(e) || !valid_utf8((const unsigned char *)body, blen)) {
                fprintf(stderr, "fuzz_http: %d without a valid JSON error: %.*s\n", st,
                        (int)(blen < 300 ? blen : 300), body);
                abort();
            }
            cJSON_Delete(o);
        } else if (st >= 400 && !mhd_status(st)) {
            fprintf(stderr, "fuzz_http: %d that is neither relud's JSON nor libmicrohttpd's\n", st);
            abort();
        }
        at += hlen + blen;
    }
}

int LLVMFuzzerTestOneInput(const unsigned char *data, size_t size)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)srv.port)};
    inet_pton(AF_INET, "127.0.0.1", &a.sin_addr);
    if (connect(fd, (struct sockaddr *)&a, sizeof a)) {
        close(fd);
        return 0;
    }
    size_t off = 0;
    static char buf[1 << 20];
    size_t n = 0;
    /* send and read at once (a reply may come before the whole input is sent) */
    while (1) {
        struct pollfd p = {fd, POLLIN | (off < size ? POLLOUT : 0), 0};
        /* once all is sent, 300 ms of quiet means the daemon waits for the rest of an
           incomplete request (it would close at connection_timeout) */
        if (poll(&p, 1, off < size ? 3000 : 300) <= 0)
            break;
        if (p.revents & POLLOUT) {
            ssize_t w = send(fd, data + off, size - off, MSG_NOSIGNAL);
            if (w > 0)
                off += (size_t)w;
            else
                off = size;
            if (off == size)
                shutdown(fd, SHUT_WR);
        }
        if (p.revents & (POLLIN | POLLHUP | POLLERR)) {
            ssize_t r = recv(fd, buf + n, sizeof buf - n, 0);
            if (r <= 0 || (n += (size_t)r) == sizeof buf)
                break;
        }
    }
    close(fd);
    check_responses(buf, n);
    return 0;
}
