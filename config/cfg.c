/* relud configuration: the option table and its loaders (see cfg.h). */
#include "config/cfg.h"

#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* Internal invariant (out of memory in cfg_defaults, a default that does not parse): abort.
 * config/ prints nothing on its own, so there is no message; the core dump has the place. */
#define CFG_ASSERT(x) \
    do {              \
        if (!(x))     \
            abort();  \
    } while (0)

#define KiB (1LL << 10)
#define MiB (1LL << 20)
#define GiB (1LL << 30)
#define TiB (1LL << 40)

const char *const cfg_log_level_names[CFG_LOG_LEVEL_COUNT + 1] = {"error", "warn", "info", "debug",
                                                                  NULL};
const char *const cfg_log_format_names[CFG_LOG_FORMAT_COUNT + 1] = {"text", "json", NULL};
const char *const cfg_type_names[CFG_TYPE_COUNT] = {
    [CFG_T_STRING] = "string",   [CFG_T_PATH] = "path",    [CFG_T_INT] = "integer",
    [CFG_T_SECONDS] = "seconds", [CFG_T_BOOL] = "boolean", [CFG_T_ENUM] = "enum",
    [CFG_T_SIZE] = "size",       [CFG_T_UINT] = "count",
};
_Static_assert(sizeof cfg_type_names / sizeof cfg_type_names[0] == CFG_TYPE_COUNT, "type names");

/* ---- The option table: the one list. ----
 * X(field, TYPE, default, min, max, enum values, flags, help)
 * field is both the struct cfg member and the option's name. */
#define CFG_OPTIONS(X)                                                                           \
    X(host, STRING, "127.0.0.1", 0, 0, NULL, CFG_F_NONEMPTY,                                     \
      "Address to listen on: an IPv4 or IPv6 address or a host name. 127.0.0.1 accepts "         \
      "local clients only; 0.0.0.0 (or ::) accepts clients from any network. relud speaks "      \
      "plain HTTP: put a TLS-terminating proxy in front of it on an open network.")              \
    X(port, INT, "8080", 0, 65535, NULL, 0,                                                      \
      "TCP port to listen on. 0 picks a free port, which relud logs at start.")                  \
    X(threads, INT, "0", 0, 1024, NULL, 0,                                                       \
      "Worker threads serving requests; each request runs its whole pass on one of them. "       \
      "0 = one per CPU core, detected at start. Keep threads * blas_threads at or below the "    \
      "cores: for many small requests threads = cores and blas_threads = 1 (the defaults); "     \
      "for a few large batches fewer threads and more BLAS threads (8 cores: threads = 2, "      \
      "blas_threads = 4). See \"Threads and cores\" in docs/configuration.md.")                  \
    X(blas_threads, INT, "1", 1, 1024, NULL, 0,                                                  \
      "Threads OpenBLAS may use inside one matrix multiply (relud sets it at start, "            \
      "overriding OPENBLAS_NUM_THREADS). 1 keeps each request on its own worker thread, "        \
      "best when many requests run at once; raise it, with fewer threads, for large "            \
      "batches. threads * blas_threads should not exceed the cores.")                            \
    X(batch_workers, INT, "0", 0, 1024, NULL, 0,                                                 \
      "Engine threads that run dynamically batched passes (models with \"dynamic_batching\"); "  \
      "each uses blas_threads BLAS threads. Request threads never wait for them: a queued "      \
      "request's connection is parked until its batch is done. 0 = cores / blas_threads (at "    \
      "least 1). See \"Threads and cores\" in docs/configuration.md.")                           \
    X(blas_core, STRING, "auto", 0, 0, NULL, CFG_F_NONEMPTY,                                     \
      "The OpenBLAS kernel (its instruction set). auto: when OpenBLAS fell back to a generic "   \
      "kernel on a CPU newer than the library (e.g. Prescott on Sapphire Rapids, about 5x "      \
      "slower), relud re-executes itself once on the best kernel the CPU can run, after that "   \
      "kernel passes a self-check; it keeps OPENBLAS_CORETYPE when the environment sets it. "    \
      "keep: whatever OpenBLAS chose. Or a kernel name (SkylakeX, Haswell, Zen, Sandybridge, "   \
      "Nehalem, Core2, Prescott), refused when the CPU cannot run it. The kernel in use is "     \
      "logged, shown by --version and exported as relud_build_info in /metrics.")                \
    X(model_dir, PATH, "config/models", 0, 0, NULL, CFG_F_NONEMPTY,                              \
      "Directory of models loaded at start, one NAME.json per model (its weights inline or "     \
      "in a .safetensors file beside it). A relative path is relative to the working "           \
      "directory, not to this file.")                                                            \
    X(strict_models, BOOL, "false", 0, 1, NULL, 0,                                               \
      "true: a model file that fails to load stops the start. false: the model is listed as "    \
      "unavailable, with the reason, and the others are served.")                                \
    X(max_body_bytes, SIZE, "64MiB", 1 * KiB, 64 * GiB, NULL, 0,                                 \
      "Largest request body accepted; a larger one is refused with 413 before it is read.")      \
    X(max_model_bytes, SIZE, "256MiB", 1 * KiB, 1 * GiB, NULL, 0,                                \
      "Largest model upload (PUT /v1/models/NAME: a JSON model, an ONNX file, or a JSON model "  \
      "and its safetensors file together) accepted, in place of max_body_bytes for that route; " \
      "a larger one is refused with 413 before it is read (and so is one over "                  \
      "max_buffered_bytes, which every body counts against). Only an admin_token holder can "    \
      "send one; while it is checked (one upload at a time) it takes up to about 4 times its "   \
      "size in memory.")                                                                         \
    X(max_buffered_bytes, SIZE, "1GiB", 0, 1 * TiB, NULL, 0,                                     \
      "Most memory all request bodies being received may take together; a request that "         \
      "would go over it is refused with 503 and Retry-After (the client retries), so a burst "   \
      "of large uploads cannot exhaust memory. 0 = no limit.")                                   \
    X(max_json_values, UINT, "100000", 16, 1LL << 32, NULL, 0,                                   \
      "Most JSON values (objects, arrays, strings, numbers, true/false/null) in one request "    \
      "body outside its numeric arrays, which are tensors and cost no parse memory beyond "      \
      "their own bytes; more is refused with 413 before the body is parsed. It bounds the "      \
      "parse memory of a body full of tiny values, e.g. [\"\",\"\",...].")                       \
    X(max_tensor_elements, UINT, "16777216", 1, 1LL << 36, NULL, 0,                              \
      "Most elements in any one tensor of a request (input, target, grad_output, weights); "     \
      "more is refused with 413.")                                                               \
    X(max_layers, INT, "256", 1, 65536, NULL, 0,                                                 \
      "Most layers in a request's network; more is refused with 413.")                           \
    X(max_workspace_bytes, SIZE, "1GiB", 1 * KiB, 1 * TiB, NULL, 0,                              \
      "Most memory one request may use for activations (and gradients when asked), computed "    \
      "before the pass; a request needing more is refused with 413. Worst-case memory is "       \
      "about max_buffered_bytes + threads * (4 * max_body_bytes + max_json_values * 128 B + "    \
      "5 * max_workspace_bytes), plus the models and batching's queues (see Memory in "          \
      "docs/configuration.md).")                                                                 \
    X(linger_timeout, SECONDS, "5", 0, 3600, NULL, 0,                                            \
      "A request refused before its body is read (413 over max_body_bytes, 503 overloaded "      \
      "or draining, 404/405/415) still has its body read and dropped, for up to this long "      \
      "and linger_bytes, so that a client that sends its whole body before reading the "         \
      "reply sees the error instead of a reset connection (nginx's lingering close). A client "  \
      "that sent Expect: 100-continue gets the error at once, without sending the body.")        \
    X(linger_bytes, SIZE, "64MiB", 0, 64 * GiB, NULL, 0,                                         \
      "Most body bytes read and dropped after an early refusal (see linger_timeout); past it "   \
      "the reply is sent and the connection closed.")                                            \
    X(max_header_bytes, SIZE, "32KiB", 4 * KiB, 1 * MiB, NULL, 0,                                \
      "Memory per connection for the request line, the headers and I/O buffers "                 \
      "(libmicrohttpd's connection memory limit). A header block that does not fit gets "        \
      "libmicrohttpd's own 431 reply (see Errors libmicrohttpd answers in docs/api.md).")        \
    X(connection_limit, INT, "1024", 1, 1000000, NULL, 0,                                        \
      "Most simultaneous client connections served. A connection over it gets one 503 JSON "     \
      "reply (Retry-After, Connection: close) to its first request (health probes and "          \
      "/metrics are answered all the same); past connection_limit + "                            \
      "max(16, connection_limit / 4) connections are closed at accept. Each needs a file "       \
      "descriptor: keep it below the open-files limit (ulimit -n).")                             \
    X(per_ip_connection_limit, INT, "0", 0, 1000000, NULL, 0,                                    \
      "Most simultaneous connections from one IP address; 0 = no limit. Connections over it "    \
      "are closed at accept. Useful when clients connect directly; behind a proxy every "        \
      "client has the proxy's address.")                                                         \
    X(connection_timeout, SECONDS, "30", 1, 86400, NULL, 0,                                      \
      "Seconds a connection may stay idle (nothing received or sent) before relud closes "       \
      "it. Connections are event-driven, so a slow client never holds a worker thread; this "    \
      "frees its connection slot.")                                                              \
    X(drain_timeout, SECONDS, "30", 0, 86400, NULL, 0,                                           \
      "On SIGTERM or SIGINT, readiness turns 503 and new connections stop; requests under "      \
      "way get this many seconds to finish. A pass still running half a second before the "      \
      "end (a quarter of drain_timeout when shorter) is cut between two layers and answered "    \
      "503 with Connection: close, and relud exits at drain_timeout (later only by the one "     \
      "layer a cut pass was in). 0 = exit at once.")                                             \
    X(log_level, ENUM, "info", 0, 0, cfg_log_level_names, 0,                                     \
      "Least severe message written to stderr.")                                                 \
    X(log_format, ENUM, "text", 0, 0, cfg_log_format_names, 0,                                   \
      "Log line format: text (for people) or json (one object per line, for collectors).")       \
    X(access_log, BOOL, "true", 0, 1, NULL, 0,                                                   \
      "One log line per request: method, route, status, bytes in and out, microseconds, "        \
      "request id.")                                                                             \
    X(tls_cert_file, PATH, "", 0, 0, NULL, 0,                                                    \
      "HTTPS: the server certificate (PEM; intermediates after it). With tls_key_file, relud "   \
      "speaks HTTPS only on its port. SIGHUP rereads both files without dropping connections "   \
      "(a broken pair is logged and the old one stays). An unreadable, mismatched, expired or "  \
      "not yet valid certificate stops the start.")                                              \
    X(tls_key_file, PATH, "", 0, 0, NULL, 0,                                                     \
      "HTTPS: the private key of tls_cert_file (PEM, unencrypted; keep the file 0600).")         \
    X(tls_client_ca_file, PATH, "", 0, 0, NULL, 0,                                               \
      "Mutual TLS: the CA bundle (PEM) whose certificates clients must present. Every request "  \
      "but the health probes without one is refused with 403.")                                  \
    X(tls_priorities, STRING, "NORMAL:-VERS-ALL:+VERS-TLS1.3:+VERS-TLS1.2", 0, 0, NULL,          \
      CFG_F_NONEMPTY,                                                                            \
      "GnuTLS priority string for HTTPS: protocol versions and ciphers. The default is "         \
      "GnuTLS's NORMAL with TLS 1.2 and 1.3 only.")                                              \
    X(gzip_min_bytes, SIZE, "1KiB", 0, 1 * GiB, NULL, 0,                                         \
      "Replies of at least this many bytes are gzip-compressed for a client that sends "         \
      "Accept-Encoding: gzip (JSON and text; binary tensor data is not: it hardly compresses). " \
      "0 = never. Requests may always be sent compressed (Content-Encoding: gzip or deflate).")  \
    X(gzip_level, INT, "1", 1, 9, NULL, 0,                                                       \
      "zlib's level for compressed replies: 1 is fastest (a JSON tensor reply shrinks about "    \
      "2.2x at ~110 MB/s), 9 smallest.")                                                         \
    X(api_keys_file, PATH, "", 0, 0, NULL, 0,                                                    \
      "File of access keys for inference, one a line (# comments). When set, every route but "   \
      "the health probes, the console's pages and (unless metrics_need_key) /metrics needs "     \
      "Authorization: Bearer <key>; 401 otherwise. Keys are kept only as SHA-256 digests; "      \
      "SIGHUP reloads the file (a broken file keeps the old keys). The admin routes take the "   \
      "admin token instead. An unreadable file or one without keys stops the start.")            \
    X(metrics_need_key, BOOL, "false", 0, 1, NULL, 0,                                            \
      "With api_keys_file: /metrics needs a key too (Prometheus's authorization: "               \
      "credentials_file). Off by default: scrapers usually reach it on a private network.")      \
    X(cors_origins, STRING, "", 0, 0, NULL, 0,                                                   \
      "Web origins whose pages may call the API from a browser (CORS), comma-separated: "        \
      "\"https://app.example.com,http://localhost:3000\", or * for any. Empty = none (the "      \
      "browser's same-origin rule holds). Preflight OPTIONS requests are answered for them. "    \
      "The admin routes answer only origins listed by name, never *.")                           \
    X(admin_token, STRING, "", 0, 0, NULL, CFG_F_SECRET,                                         \
      "Bearer token the model-control endpoints (PUT and DELETE /v1/models/NAME, "               \
      "/v2/repository/...) require. Empty = they answer 403. Never printed. Prefer "             \
      "admin_token_file: flags show in ps, the environment in /proc.")                           \
    X(admin_token_file, PATH, "", 0, 0, NULL, 0,                                                 \
      "File holding the admin token (trailing newline and spaces removed), e.g. a "              \
      "Kubernetes or Docker secret; overrides admin_token. An unreadable or empty file "         \
      "stops the start.")                                                                        \
    X(max_train_jobs, INT, "1", 0, 64, NULL, 0,                                                  \
      "Training jobs (POST /v1/models/NAME/train) running at once, each on its own thread at "   \
      "the lowest CPU priority (SCHED_IDLE) so that inference keeps its latency; more wait in "  \
      "a queue. 0 = training is disabled (403).")                                                \
    X(max_train_queue, INT, "8", 0, 10000, NULL, 0,                                              \
      "Training jobs waiting for a free worker; a job beyond them is refused with 503 and "      \
      "Retry-After.")                                                                            \
    X(max_train_steps, UINT, "100000", 1, 1LL << 40, NULL, 0,                                    \
      "Most optimizer steps in one training job (epochs times batches per epoch, or steps); "    \
      "more is refused with 413.")                                                               \
    X(max_train_seconds, SECONDS, "3600", 1, 2592000, NULL, 0,                                   \
      "A training job still running after this many seconds fails; nothing is installed.")       \
    X(max_train_bytes, SIZE, "256MiB", 1 * MiB, 1 * TiB, NULL, 0,                                \
      "Most memory one training job may hold: its data, a copy of the model, its workspaces "    \
      "(a batch with gradients, the last partial batch, the validation set), the optimizer "     \
      "state and its history, computed before it is queued; more is refused with 413. All "      \
      "jobs together hold at most (max_train_jobs + max_train_queue) * max_train_bytes.")        \
    X(max_train_body_bytes, SIZE, "64MiB", 1 * KiB, 64 * GiB, NULL, 0,                           \
      "Largest training body accepted (413 beyond it; max_body_bytes caps every body first). "   \
      "Its data stays in memory, as numbers, while the job waits and runs.")                     \
    X(train_history, INT, "1000", 2, 1000000, NULL, 0,                                           \
      "History entries a training job keeps (GET /v1/train/ID): every step while they fit; "     \
      "when full, every other entry is dropped and every 2nd step recorded, then every 4th, "    \
      "... (history_stride). An epoch's last step (it carries val_loss) and the job's last "     \
      "step are always recorded.")                                                               \
    X(train_jobs_kept, INT, "64", 0, 100000, NULL, 0,                                            \
      "Finished training jobs remembered for GET /v1/train; past it the oldest finished one "    \
      "is forgotten. Jobs live in memory: a restart forgets them (and numbers them from 1 "      \
      "again).")

#define CFG_CTYPE_STRING char *
#define CFG_CTYPE_PATH char *
#define CFG_CTYPE_INT int
#define CFG_CTYPE_SECONDS int
#define CFG_CTYPE_BOOL int
#define CFG_CTYPE_ENUM int
#define CFG_CTYPE_SIZE size_t
#define CFG_CTYPE_UINT size_t

#define CFG_ROW(field, type, def, min, max, values, flags, help) \
    {#field, CFG_T_##type, offsetof(struct cfg, field), def, min, max, values, flags, help},
const struct cfg_option cfg_options[] = {CFG_OPTIONS(CFG_ROW)};
const size_t cfg_option_count = sizeof cfg_options / sizeof cfg_options[0];
_Static_assert(sizeof cfg_options / sizeof cfg_options[0] <= CFG_OPT_MAX,
               "raise CFG_OPT_MAX in cfg.h");

/* A row whose type does not match its struct cfg field does not compile. */
#define CFG_TYPECHECK(field, type, ...)                                                   \
    _Static_assert(_Generic(((struct cfg *)0)->field, CFG_CTYPE_##type : 1, default : 0), \
                   "struct cfg." #field " is not a " #type);
CFG_OPTIONS(CFG_TYPECHECK)

/* ---- small helpers ---- */

static enum cfg_result fail(char *err, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static enum cfg_result fail(char *err, size_t errlen, const char *fmt, ...)
{
    if (err && errlen > 0) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(err, errlen, fmt, ap);
        va_end(ap);
    }
    return CFG_ERROR;
}

static size_t opt_index(const struct cfg_option *o) { return (size_t)(o - cfg_options); }

static void *field(struct cfg *c, const struct cfg_option *o) { return (char *)c + o->offset; }
static const void *cfield(const struct cfg *c, const struct cfg_option *o)
{
    return (const char *)c + o->offset;
}

const struct cfg_option *cfg_option_find(const char *name)
{
    for (size_t i = 0; i < cfg_option_count; i++)
        if (strcmp(cfg_options[i].name, name) == 0)
            return &cfg_options[i];
    return NULL;
}

void cfg_option_flag(const struct cfg_option *o, char *buf, size_t len)
{
    snprintf(buf, len, "--%s", o->name);
    for (char *p = buf; *p; p++)
        if (*p == '_')
            *p = '-';
}

void cfg_option_env(const struct cfg_option *o, char *buf, size_t len)
{
    snprintf(buf, len, "RELUD_%s", o->name);
    for (char *p = buf; *p; p++)
        *p = (char)toupper((unsigned char)*p);
}

/* A value for a message: quoted, escaped, cut at 48 characters; secrets as "***". */
static const char *show(char *buf, size_t n, const struct cfg_option *o, const char *v)
{
    if (o && (o->flags & CFG_F_SECRET))
        v = "***";
    size_t w = 0;
    buf[w++] = '"';
    for (size_t i = 0; v[i] && w + 8 < n; i++) {
        unsigned char ch = (unsigned char)v[i];
        if (i == 48) {
            w += (size_t)snprintf(buf + w, n - w, "...");
            break;
        }
        if (ch == '"' || ch == '\\')
            w += (size_t)snprintf(buf + w, n - w, "\\%c", ch);
        else if (ch < 0x20 || ch == 0x7f)
            w += (size_t)snprintf(buf + w, n - w, "\\x%02x", ch);
        else
            buf[w++] = (char)ch;
    }
    buf[w++] = '"';
    buf[w] = '\0';
    return buf;
}

static void fmt_size(char *buf, size_t n, unsigned long long v)
{
    static const struct {
        unsigned long long mul;
        const char *unit;
    } units[] = {{TiB, "TiB"}, {GiB, "GiB"}, {MiB, "MiB"}, {KiB, "KiB"}};
    for (size_t i = 0; i < sizeof units / sizeof units[0]; i++)
        if (v >= units[i].mul && v % units[i].mul == 0) {
            snprintf(buf, n, "%llu%s", v / units[i].mul, units[i].unit);
            return;
        }
    snprintf(buf, n, "%llu", v);
}

/* Edit distance counting a swap of neighbours as one edit (optimal string alignment). */
static size_t edit_distance(const char *a, const char *b)
{
    size_t la = strlen(a), lb = strlen(b), d[65][65];
    if (la > 64 || lb > 64)
        return SIZE_MAX;
    for (size_t i = 0; i <= la; i++)
        d[i][0] = i;
    for (size_t j = 0; j <= lb; j++)
        d[0][j] = j;
    for (size_t i = 1; i <= la; i++)
        for (size_t j = 1; j <= lb; j++) {
            size_t best = d[i - 1][j - 1] + (a[i - 1] != b[j - 1]);
            if (d[i - 1][j] + 1 < best)
                best = d[i - 1][j] + 1;
            if (d[i][j - 1] + 1 < best)
                best = d[i][j - 1] + 1;
            if (i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] &&
                d[i - 2][j - 2] + 1 < best)
                best = d[i - 2][j - 2] + 1;
            d[i][j] = best;
        }
    return d[la][lb];
}

/* The option closest to name (any case, - or _), or NULL when nothing is close. *dist gets
 * the distance (0 = same name but for case and dashes). */
static const struct cfg_option *suggest_d(const char *name, size_t *dist)
{
    char norm[65];
    size_t n = strlen(name);
    *dist = SIZE_MAX;
    if (n > 64)
        return NULL;
    for (size_t i = 0; i <= n; i++)
        norm[i] = name[i] == '-' ? '_' : (char)tolower((unsigned char)name[i]);
    const struct cfg_option *best = NULL;
    for (size_t i = 0; i < cfg_option_count; i++) {
        size_t d = edit_distance(norm, cfg_options[i].name);
        if (d < *dist) {
            *dist = d;
            best = &cfg_options[i];
        }
    }
    return *dist <= 2 || (best && *dist <= strlen(best->name) / 3) ? best : NULL;
}

static const struct cfg_option *suggest(const char *name)
{
    size_t d;
    return suggest_d(name, &d);
}

/* A near miss, surely meant as that option: one edit (two for names of 8+ characters). */
static int is_typo_of(const struct cfg_option *o, size_t dist)
{
    return o && dist <= (strlen(o->name) >= 8 ? 2u : 1u);
}

/* ---- parsing one value ---- */

union cfg_val {
    long long i;
    unsigned long long u;
    const char *s;
};

static int is_space(char ch) { return ch == ' ' || ch == '\t' || ch == '\r' || ch == '\n'; }

/* Copies s without surrounding whitespace into buf (cut to n-1). */
static const char *trim(char *buf, size_t n, const char *s)
{
    while (is_space(*s))
        s++;
    size_t len = strlen(s);
    while (len > 0 && is_space(s[len - 1]))
        len--;
    if (len >= n)
        len = n - 1;
    memcpy(buf, s, len);
    buf[len] = '\0';
    return buf;
}

/* Decimal digits at *s, advancing it. 0 ok, 1 no digits, 2 over ULLONG_MAX. */
static int parse_digits(const char **s, unsigned long long *out)
{
    const char *p = *s;
    unsigned long long v = 0;
    int over = 0;
    if (!isdigit((unsigned char)*p))
        return 1;
    for (; isdigit((unsigned char)*p); p++) {
        unsigned d = (unsigned)(*p - '0');
        if (v > (ULLONG_MAX - d) / 10)
            over = 1;
        else
            v = v * 10 + d;
    }
    *s = p;
    *out = v;
    return over ? 2 : 0;
}

static int strieq(const char *a, const char *b)
{
    for (; *a && *b; a++, b++)
        if (tolower((unsigned char)*a) != tolower((unsigned char)*b))
            return 0;
    return *a == *b;
}

/* Parses s for o into v; on failure writes the reason (with the value) into why. */
static int parse_value(const struct cfg_option *o, const char *raw, union cfg_val *v, char *why,
                       size_t n)
{
    char tb[128], sb[80], lo[32], hi[32];
    const char *s =
        o->type == CFG_T_STRING || o->type == CFG_T_PATH ? raw : trim(tb, sizeof tb, raw);
    unsigned long long u = 0;
    const char *p = s;
    int r;

    switch (o->type) {
    case CFG_T_STRING:
    case CFG_T_PATH:
        if ((o->flags & CFG_F_NONEMPTY) && s[0] == '\0') {
            snprintf(why, n, "must not be empty");
            return -1;
        }
        v->s = s;
        return 0;
    case CFG_T_BOOL:
        if (strieq(s, "true") || strieq(s, "yes") || strieq(s, "on") || strcmp(s, "1") == 0)
            v->i = 1;
        else if (strieq(s, "false") || strieq(s, "no") || strieq(s, "off") || strcmp(s, "0") == 0)
            v->i = 0;
        else {
            snprintf(why, n, "%s is not a boolean (use true or false)",
                     show(sb, sizeof sb, o, raw));
            return -1;
        }
        return 0;
    case CFG_T_ENUM:
        for (int i = 0; o->values[i]; i++)
            if (strieq(s, o->values[i])) {
                v->i = i;
                return 0;
            }
        {
            int w = snprintf(why, n, "%s is not one of:", show(sb, sizeof sb, o, raw));
            for (int i = 0; o->values[i] && w > 0 && (size_t)w < n; i++)
                w += snprintf(why + w, n - (size_t)w, "%s %s", i ? "," : "", o->values[i]);
        }
        return -1;
    case CFG_T_INT:
    case CFG_T_SECONDS: {
        int neg = 0;
        if (*p == '-' || *p == '+')
            neg = *p++ == '-';
        r = parse_digits(&p, &u);
        if (r == 0 && o->type == CFG_T_SECONDS && *p) {
            while (*p == ' ')
                p++;
            if (*p == 's' && p[1] == '\0')
                p++;
        }
        if (r == 1 || *p) {
            snprintf(why, n, "%s is not %s", show(sb, sizeof sb, o, raw),
                     o->type == CFG_T_INT ? "an integer" : "a number of seconds");
            return -1;
        }
        if (r == 2 || u > (unsigned long long)LLONG_MAX) {
            snprintf(why, n, "%s is out of range %lld..%lld", show(sb, sizeof sb, o, raw), o->min,
                     o->max);
            return -1;
        }
        v->i = neg ? -(long long)u : (long long)u;
        if (v->i < o->min || v->i > o->max) {
            snprintf(why, n, "%lld is out of range %lld..%lld%s", v->i, o->min, o->max,
                     o->type == CFG_T_SECONDS ? " seconds" : "");
            return -1;
        }
        return 0;
    }
    case CFG_T_UINT:
        r = parse_digits(&p, &u);
        if (r == 1 || *p) {
            snprintf(why, n, "%s is not a whole number", show(sb, sizeof sb, o, raw));
            return -1;
        }
        if (r == 2 || u < (unsigned long long)o->min || u > (unsigned long long)o->max) {
            snprintf(why, n, "%s is out of range %lld..%lld", show(sb, sizeof sb, o, raw), o->min,
                     o->max);
            return -1;
        }
        v->u = u;
        return 0;
    case CFG_T_SIZE: {
        static const struct {
            const char *unit;
            unsigned long long mul;
        } units[] = {
            {"", 1},      {"b", 1},   {"byte", 1}, {"bytes", 1}, {"k", KiB}, {"kb", KiB},
            {"kib", KiB}, {"m", MiB}, {"mb", MiB}, {"mib", MiB}, {"g", GiB}, {"gb", GiB},
            {"gib", GiB}, {"t", TiB}, {"tb", TiB}, {"tib", TiB},
        };
        r = parse_digits(&p, &u);
        if (r == 1) {
            snprintf(why, n,
                     "%s is not a size: use an integer with an optional unit, e.g. 512KiB, "
                     "64MiB, 1GiB",
                     show(sb, sizeof sb, o, raw));
            return -1;
        }
        while (*p == ' ' || *p == '\t')
            p++;
        unsigned long long mul = 0;
        for (size_t i = 0; i < sizeof units / sizeof units[0]; i++)
            if (strieq(p, units[i].unit))
                mul = units[i].mul;
        if (mul == 0) {
            char ub[40];
            snprintf(why, n, "%s has an unknown unit %s (use bytes, KiB, MiB, GiB or TiB)",
                     show(sb, sizeof sb, o, raw), show(ub, sizeof ub, NULL, p));
            return -1;
        }
        if (r == 2 || u > ULLONG_MAX / mul) {
            snprintf(why, n, "%s is too large", show(sb, sizeof sb, o, raw));
            return -1;
        }
        u *= mul;
        if (u < (unsigned long long)o->min || u > (unsigned long long)o->max || u > SIZE_MAX) {
            fmt_size(lo, sizeof lo, (unsigned long long)o->min);
            fmt_size(hi, sizeof hi, (unsigned long long)o->max);
            snprintf(why, n, "%s is out of range %s..%s", show(sb, sizeof sb, o, raw), lo, hi);
            return -1;
        }
        v->u = u;
        return 0;
    }
    case CFG_TYPE_COUNT: break;
    }
    snprintf(why, n, "internal error: bad option type");
    return -1;
}

/* Stores a parsed value. Strings are copied; returns -1 on out of memory. */
static int store(struct cfg *c, const struct cfg_option *o, const union cfg_val *v)
{
    void *f = field(c, o);
    switch (o->type) {
    case CFG_T_STRING:
    case CFG_T_PATH: {
        char *dup = strdup(v->s);
        if (!dup)
            return -1;
        free(*(char **)f);
        *(char **)f = dup;
        return 0;
    }
    case CFG_T_INT:
    case CFG_T_SECONDS:
    case CFG_T_BOOL:
    case CFG_T_ENUM: *(int *)f = (int)v->i; return 0;
    case CFG_T_SIZE:
    case CFG_T_UINT: *(size_t *)f = (size_t)v->u; return 0;
    case CFG_TYPE_COUNT: break;
    }
    return -1;
}

/* Parses and stores one value; src names the source in the message ("--port"). */
static enum cfg_result set_value(struct cfg *c, const struct cfg_option *o, const char *val,
                                 const char *src, struct cfg_origin origin, char *err,
                                 size_t errlen)
{
    char why[CFG_ERR_LEN - 64];
    union cfg_val v;
    if (parse_value(o, val, &v, why, sizeof why) != 0)
        return fail(err, errlen, "%s: %s (from %s)", o->name, why, src);
    if (store(c, o, &v) != 0)
        return fail(err, errlen, "%s: out of memory (from %s)", o->name, src);
    c->origin[opt_index(o)] = origin;
    return CFG_OK;
}

/* ---- defaults, free ---- */

static void resolve_threads(struct cfg *c)
{
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    c->cores = n < 1 ? 1 : n > 1024 ? 1024 : (int)n;
    c->threads_auto = c->threads == 0;
    if (c->threads == 0)
        c->threads = c->cores;
}

void cfg_defaults(struct cfg *c)
{
    char why[256];
    memset(c, 0, sizeof *c);
    for (size_t i = 0; i < cfg_option_count; i++) {
        union cfg_val v;
        CFG_ASSERT(parse_value(&cfg_options[i], cfg_options[i].def, &v, why, sizeof why) == 0);
        CFG_ASSERT(store(c, &cfg_options[i], &v) == 0);
    }
    resolve_threads(c);
}

void cfg_free(struct cfg *c)
{
    if (!c)
        return;
    for (size_t i = 0; i < cfg_option_count; i++) {
        const struct cfg_option *o = &cfg_options[i];
        if (o->type == CFG_T_STRING || o->type == CFG_T_PATH) {
            char **p = field(c, o);
            if (*p && (o->flags & CFG_F_SECRET))
                memset(*p, 0, strlen(*p));
            free(*p);
            *p = NULL;
        }
    }
    free(c->config_path);
    c->config_path = NULL;
    free(c->ignored_env);
    c->ignored_env = NULL;
}

/* ---- the config file ---- */

static enum cfg_result load_file(struct cfg *c, const char *path, const char *how, char *err,
                                 size_t errlen)
{
    FILE *f = fopen(path, "r");
    if (!f)
        return fail(err, errlen, "cannot read config file \"%s\": %s (from %s)", path,
                    strerror(errno), how);
    int seen[CFG_OPT_MAX] = {0};
    char *line = NULL, src[320], sb[80];
    size_t cap = 0;
    enum cfg_result res = CFG_OK;
    int lineno = 0;
    errno = 0;
    while (res == CFG_OK && getline(&line, &cap, f) != -1) {
        lineno++;
        snprintf(src, sizeof src, "%s:%d", path, lineno);
        char *p = line;
        if (lineno == 1 && memcmp(p, "\xEF\xBB\xBF", 3) == 0)
            p += 3; /* UTF-8 byte order mark */
        while (*p == ' ' || *p == '\t')
            p++;
        if (*p == '\0' || *p == '\n' || *p == '\r' || *p == '#')
            continue;
        char *key = p;
        while (isalnum((unsigned char)*p) || *p == '_' || *p == '-')
            p++;
        char *keyend = p;
        while (*p == ' ' || *p == '\t')
            p++;
        if (keyend == key || *p != '=') {
            char tb[128];
            res = fail(err, errlen, "expected \"name = value\", got %s (from %s)",
                       show(sb, sizeof sb, NULL, trim(tb, sizeof tb, line)), src);
            break;
        }
        p++;
        while (*p == ' ' || *p == '\t')
            p++;
        char *val;
        if (*p == '"') {
            char *r = p + 1, *w = p + 1;
            val = w;
            for (;;) {
                if (*r == '\0' || *r == '\n' || *r == '\r') {
                    res = fail(err, errlen, "missing closing quote (from %s)", src);
                    break;
                }
                if (*r == '\\' && (r[1] == '"' || r[1] == '\\')) {
                    *w++ = r[1];
                    r += 2;
                } else if (*r == '"') {
                    r++;
                    break;
                } else {
                    *w++ = *r++;
                }
            }
            if (res != CFG_OK)
                break;
            *w = '\0';
            while (*r == ' ' || *r == '\t')
                r++;
            if (*r != '\0' && *r != '\n' && *r != '\r' && *r != '#') {
                res = fail(err, errlen, "unexpected text after the closing quote (from %s)", src);
                break;
            }
        } else {
            val = p;
            char *q = p;
            for (; *q && *q != '\n'; q++)
                if (*q == '#' && (q == val || q[-1] == ' ' || q[-1] == '\t'))
                    break; /* a comment: '#' at the start or after a space */
            while (q > val && is_space(q[-1]))
                q--;
            *q = '\0';
        }
        *keyend = '\0';
        const struct cfg_option *o = cfg_option_find(key);
        if (!o) {
            const struct cfg_option *s = suggest(key);
            res = fail(err, errlen, "unknown option %s (from %s)%s%s%s",
                       show(sb, sizeof sb, NULL, key), src, s ? "; did you mean \"" : "",
                       s ? s->name : "", s ? "\"?" : "");
            break;
        }
        size_t i = opt_index(o);
        if (seen[i]) {
            res = fail(err, errlen, "%s: set twice, first on line %d (from %s)", o->name, seen[i],
                       src);
            break;
        }
        seen[i] = lineno;
        res = set_value(c, o, val, src, (struct cfg_origin){CFG_SRC_FILE, lineno}, err, errlen);
    }
    if (res == CFG_OK && ferror(f))
        res = fail(err, errlen, "cannot read config file \"%s\": %s (from %s)", path,
                   strerror(errno ? errno : EIO), how);
    free(line);
    fclose(f);
    return res;
}

/* ---- the environment ---- */

static enum cfg_result load_env(struct cfg *c, char **envp, char *err, size_t errlen)
{
    for (char **e = envp; e && *e; e++) {
        const char *name = *e, *eq = strchr(name, '=');
        if (strncmp(name, "RELUD_", 6) != 0 || !eq)
            continue;
        size_t len = (size_t)(eq - name);
        const char *rest = name + 6;
        if ((len == 12 && strncmp(rest, "CONFIG", 6) == 0) || strncmp(rest, "SERVICE_", 8) == 0 ||
            (strncmp(rest, "PORT_", 5) == 0 && isdigit((unsigned char)rest[5])))
            continue; /* --config's variable; Kubernetes service links */
        const struct cfg_option *o = NULL;
        char env[80];
        for (size_t i = 0; i < cfg_option_count && !o; i++) {
            cfg_option_env(&cfg_options[i], env, sizeof env);
            if (strlen(env) == len && strncmp(env, name, len) == 0)
                o = &cfg_options[i];
        }
        if (!o) {
            /* A near miss of an option is a typo: stop. Anything else may belong to another
             * tool sharing the prefix (tests, compose files): note it for cfg_print_warnings. */
            char shown[80];
            size_t dist;
            snprintf(shown, sizeof shown, "%.*s", (int)(len < 64 ? len : 64), name);
            const struct cfg_option *s = suggest_d(shown + 6, &dist);
            if (is_typo_of(s, dist)) {
                cfg_option_env(s, env, sizeof env);
                return fail(err, errlen,
                            "unknown environment variable %s (from the environment); did you "
                            "mean %s?",
                            shown, env);
            }
            size_t have = c->ignored_env ? strlen(c->ignored_env) : 0;
            char *grown = realloc(c->ignored_env, have + strlen(shown) + 3);
            if (!grown)
                return fail(err, errlen, "out of memory");
            snprintf(grown + have, strlen(shown) + 3, "%s%s", have ? ", " : "", shown);
            c->ignored_env = grown;
            continue;
        }
        snprintf(env, sizeof env, "env %.*s", (int)len, name);
        if (strcmp(o->name, "port") == 0 && strstr(eq + 1, "://")) {
            char sb[80];
            return fail(err, errlen,
                        "port: %s looks like a Kubernetes service link, not a port (from %s): "
                        "set enableServiceLinks: false in the pod spec, or name the Service "
                        "something other than relud",
                        show(sb, sizeof sb, o, eq + 1), env);
        }
        enum cfg_result r =
            set_value(c, o, eq + 1, env, (struct cfg_origin){CFG_SRC_ENV, 0}, err, errlen);
        if (r != CFG_OK)
            return r;
    }
    return CFG_OK;
}

/* ---- the flags ---- */

struct flag_item {
    const struct cfg_option *opt;
    const char *value;
    int negated; /* --no-NAME */
};

/* Finds the option of "--NAME" (without the dashes, up to '=' or the end), or NULL. */
static const struct cfg_option *flag_option(const char *name, size_t len)
{
    char buf[80];
    for (size_t i = 0; i < cfg_option_count; i++) {
        cfg_option_flag(&cfg_options[i], buf, sizeof buf);
        if (strlen(buf + 2) == len && strncmp(buf + 2, name, len) == 0)
            return &cfg_options[i];
    }
    return NULL;
}

static enum cfg_result load_token_file(struct cfg *c, char *err, size_t errlen)
{
    const struct cfg_option *o = cfg_option_find("admin_token_file");
    const struct cfg_option *tok = cfg_option_find("admin_token");
    const struct cfg_origin *og = &c->origin[opt_index(o)];
    char src[320];
    if (og->source == CFG_SRC_FILE)
        snprintf(src, sizeof src, "%s:%d", c->config_path, og->line);
    else if (og->source == CFG_SRC_ENV)
        snprintf(src, sizeof src, "env RELUD_ADMIN_TOKEN_FILE");
    else
        cfg_option_flag(o, src, sizeof src);

    FILE *f = fopen(c->admin_token_file, "r");
    if (!f)
        return fail(err, errlen, "admin_token_file: cannot read \"%s\": %s (from %s)",
                    c->admin_token_file, strerror(errno), src);
    char buf[4097];
    size_t n = fread(buf, 1, sizeof buf, f);
    int bad = ferror(f), e = errno;
    fclose(f);
    enum cfg_result res = CFG_OK;
    if (bad)
        res = fail(err, errlen, "admin_token_file: cannot read \"%s\": %s (from %s)",
                   c->admin_token_file, strerror(e ? e : EIO), src);
    else if (n == sizeof buf)
        res = fail(err, errlen, "admin_token_file: \"%s\" is larger than 4096 bytes (from %s)",
                   c->admin_token_file, src);
    if (res == CFG_OK) {
        buf[n] = '\0';
        while (n > 0 && is_space(buf[n - 1]))
            buf[--n] = '\0';
        if (n == 0)
            res = fail(err, errlen, "admin_token_file: \"%s\" is empty (from %s)",
                       c->admin_token_file, src);
        else if (strlen(buf) != n || strchr(buf, '\n') || strchr(buf, '\r'))
            res = fail(err, errlen, "admin_token_file: \"%s\" must hold one line of text (from %s)",
                       c->admin_token_file, src);
    }
    if (res == CFG_OK) {
        union cfg_val v = {.s = buf};
        if (store(c, tok, &v) != 0)
            res = fail(err, errlen, "admin_token_file: out of memory");
        else
            c->origin[opt_index(tok)] = (struct cfg_origin){CFG_SRC_TOKEN_FILE, 0};
    }
    memset(buf, 0, sizeof buf);
    return res;
}

/* A word a boolean option takes (see parse_value). */
static int is_bool_word(const char *s)
{
    static const char *const words[] = {"true", "false", "yes", "no", "on", "off", "1", "0"};
    for (size_t i = 0; i < sizeof words / sizeof words[0]; i++)
        if (strieq(s, words[i]))
            return 1;
    return 0;
}

/* argv taken apart: the meta flags, --config, and the option flags in order. */
struct argv_parse {
    int help, version, print, docs, bad;
    const char *config, *config_how;
    struct flag_item *items;
    size_t nitems;
};

/* One "--name[=value]" at argv[*i] (the value may be the next argument) into ap; an error
 * sets ap->bad and err. */
static void parse_flag(struct argv_parse *ap, int argc, char **argv, int *i, char *err,
                       size_t errlen)
{
    char sb[80], fb[80];
    const char *a = argv[*i];
    if (strncmp(a, "--", 2) != 0 || a[2] == '\0') {
        ap->bad = 1;
        fail(err, errlen, "unexpected argument %s: options are --name value (see --help)",
             show(sb, sizeof sb, NULL, a));
        return;
    }
    const char *name = a + 2, *eq = strchr(name, '=');
    size_t len = eq ? (size_t)(eq - name) : strlen(name);
    const char *value = eq ? eq + 1 : NULL;
    int negated = 0;
    if (len == 6 && strncmp(name, "config", 6) == 0) {
        if (!value) {
            if (*i + 1 >= argc || strncmp(argv[*i + 1], "--", 2) == 0) {
                ap->bad = 1;
                fail(err, errlen, "--config needs a file name");
                return;
            }
            value = argv[++*i];
        }
        ap->config = value;
        ap->config_how = "--config";
        return;
    }
    const struct cfg_option *o = flag_option(name, len);
    if (!o && len > 3 && strncmp(name, "no-", 3) == 0 && !value) {
        o = flag_option(name + 3, len - 3);
        if (o && o->type != CFG_T_BOOL) {
            ap->bad = 1;
            fail(err, errlen, "\"--%.*s\": --no- is only for true/false options, not %s",
                 (int)(len < 64 ? len : 64), name, o->name);
            return;
        }
        negated = o != NULL;
    }
    if (!o) {
        char nb[80];
        snprintf(nb, sizeof nb, "%.*s", (int)(len < 64 ? len : 64), name);
        const struct cfg_option *sg = suggest(nb);
        if (sg)
            cfg_option_flag(sg, fb, sizeof fb);
        ap->bad = 1;
        fail(err, errlen, "unknown option \"--%s\"%s%s%s", nb, sg ? "; did you mean " : "",
             sg ? fb : "", sg ? "?" : "");
        return;
    }
    if (!value && o->type == CFG_T_BOOL) {
        /* "--access-log false" as "--access-log=false"; a bare flag means true */
        const char *next = *i + 1 < argc ? argv[*i + 1] : NULL;
        if (next && !negated && is_bool_word(next))
            value = argv[++*i];
        else
            value = negated ? "false" : "true";
    } else if (!value) {
        if (*i + 1 >= argc || strncmp(argv[*i + 1], "--", 2) == 0) {
            cfg_option_flag(o, fb, sizeof fb);
            ap->bad = 1;
            fail(err, errlen, "%s needs a value (%s=VALUE for a value starting with --)", fb, fb);
            return;
        }
        value = argv[++*i];
    }
    ap->items[ap->nitems++] = (struct flag_item){o, value, negated};
}

/* Pass 1: take argv apart. Meta flags win over errors, so "relud --bad --help" helps. */
static void parse_argv(struct argv_parse *ap, int argc, char **argv, char *err, size_t errlen)
{
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (strcmp(a, "-h") == 0 || strcmp(a, "--help") == 0)
            ap->help = 1;
        else if (strcmp(a, "--version") == 0)
            ap->version = 1;
        else if (strcmp(a, "--print-config") == 0)
            ap->print = 1;
        else if (strcmp(a, "--print-docs") == 0)
            ap->docs = 1;
        else if (!ap->bad)
            parse_flag(ap, argc, argv, &i, err, errlen);
    }
}

/* Pass 2: the file, then the environment, then the flags, each overriding the one before;
 * then the token file. */
static enum cfg_result apply_sources(struct cfg *c, struct argv_parse *ap, char **envp, char *err,
                                     size_t errlen)
{
    enum cfg_result res = CFG_OK;
    if (!ap->config) {
        for (char **e = envp; e && *e; e++)
            if (strncmp(*e, "RELUD_CONFIG=", 13) == 0 && (*e)[13] != '\0') {
                ap->config = *e + 13;
                ap->config_how = "env RELUD_CONFIG";
            }
    }
    if (ap->config) {
        free(c->config_path);
        c->config_path = strdup(ap->config);
        if (!c->config_path)
            return fail(err, errlen, "out of memory");
        res = load_file(c, ap->config, ap->config_how, err, errlen);
    }
    if (res == CFG_OK)
        res = load_env(c, envp, err, errlen);
    for (size_t i = 0; i < ap->nitems && res == CFG_OK; i++) {
        char fb[80];
        snprintf(fb, sizeof fb, "--%s%s", ap->items[i].negated ? "no-" : "",
                 ap->items[i].opt->name);
        for (char *p = fb; *p; p++)
            if (*p == '_')
                *p = '-';
        res = set_value(c, ap->items[i].opt, ap->items[i].value, fb,
                        (struct cfg_origin){CFG_SRC_FLAG, 0}, err, errlen);
    }
    if (res == CFG_OK && c->admin_token_file[0])
        res = load_token_file(c, err, errlen);
    return res;
}

/* Settings that are each legal but cannot work together. */
/* cors_origins: "*" or origins "scheme://host[:port]", comma-separated (spaces allowed). */
static enum cfg_result check_origins(const char *list, char *err, size_t errlen)
{
    for (const char *p = list; *p;) {
        while (*p == ' ' || *p == ',')
            p++;
        const char *e = p;
        while (*e && *e != ',' && *e != ' ')
            e++;
        size_t n = (size_t)(e - p);
        if (!n)
            break;
        const char *sep = memchr(p, ':', n);
        int ok = n == 1
                     ? *p == '*'
                     : sep && (size_t)(sep - p) >= 1 && (size_t)(e - sep) > 3 &&
                           !strncmp(sep, "://", 3) && !memchr(sep + 3, '/', (size_t)(e - sep - 3));
        for (const char *q = p; ok && q < sep; q++)
            ok = (*q >= 'a' && *q <= 'z') || (*q >= '0' && *q <= '9') || *q == '+' || *q == '-' ||
                 *q == '.';
        if (!ok)
            return fail(err, errlen,
                        "cors_origins: \"%.*s\" is not an origin (scheme://host[:port], no path, "
                        "lower-case scheme) or *",
                        (int)(n > 100 ? 100 : n), p);
        p = e;
    }
    return CFG_OK;
}

static enum cfg_result cross_checks(const struct cfg *c, char *err, size_t errlen)
{
    if (!c->tls_cert_file[0] != !c->tls_key_file[0])
        return fail(err, errlen, "tls_cert_file and tls_key_file: set both (HTTPS) or neither");
    if (c->tls_client_ca_file[0] && !c->tls_cert_file[0])
        return fail(err, errlen,
                    "tls_client_ca_file: needs HTTPS (tls_cert_file and tls_key_file)");
    if (check_origins(c->cors_origins, err, errlen))
        return CFG_ERROR;
    if (c->max_buffered_bytes && c->max_buffered_bytes < c->max_body_bytes) {
        char a[32], b[32];
        fmt_size(a, sizeof a, c->max_buffered_bytes);
        fmt_size(b, sizeof b, c->max_body_bytes);
        return fail(err, errlen,
                    "max_buffered_bytes: %s is below max_body_bytes (%s), so the largest bodies "
                    "could never be accepted; raise it or set it to 0 (no limit)",
                    a, b);
    }
    return CFG_OK;
}

enum cfg_result cfg_load(struct cfg *c, int argc, char **argv, char **envp, char *err,
                         size_t errlen)
{
    if (err && errlen > 0)
        err[0] = '\0';
    if (c->threads_auto)
        c->threads = 0; /* resolved again after every source */
    free(c->ignored_env);
    c->ignored_env = NULL;
    struct argv_parse ap = {0};
    if (!(ap.items = calloc(argc > 0 ? (size_t)argc : 1, sizeof *ap.items)))
        return fail(err, errlen, "out of memory");
    parse_argv(&ap, argc, argv, err, errlen);
    /* --version reads the sources too (blas_core decides the kernel it reports), but a
     * bad flag or source never stops it. */
    enum cfg_result res = ap.help                ? CFG_EXIT_HELP
                          : ap.version && ap.bad ? CFG_EXIT_VERSION
                          : ap.docs              ? CFG_EXIT_DOCS
                          : ap.bad               ? CFG_ERROR
                                                 : CFG_OK;
    if (res == CFG_OK)
        res = apply_sources(c, &ap, envp, err, errlen);
    if (res == CFG_OK)
        res = cross_checks(c, err, errlen);
    free(ap.items);
    resolve_threads(c);
    if (ap.version && (res == CFG_OK || res == CFG_ERROR))
        res = CFG_EXIT_VERSION;
    if (res == CFG_OK && ap.print)
        res = CFG_EXIT_PRINT;
    if (res == CFG_EXIT_HELP || res == CFG_EXIT_VERSION || res == CFG_EXIT_DOCS)
        if (err && errlen > 0)
            err[0] = '\0';
    return res;
}

/* ---- printing ---- */

/* Writes text wrapped at width columns, each line starting with prefix. */
static void put_wrapped(FILE *f, const char *prefix, const char *text, size_t width)
{
    size_t plen = strlen(prefix);
    const char *p = text;
    while (*p) {
        while (*p == ' ')
            p++;
        if (!*p)
            break;
        size_t room = width > plen + 20 ? width - plen : 20, len = strlen(p), cut = len;
        if (len > room) {
            cut = room;
            while (cut > 0 && p[cut] != ' ')
                cut--;
            if (cut == 0) /* one long word */
                for (cut = room; p[cut] && p[cut] != ' '; cut++)
                    ;
        }
        fprintf(f, "%s%.*s\n", prefix, (int)cut, p);
        p += cut;
    }
}

static void put_quoted(FILE *f, const char *s)
{
    fputc('"', f);
    for (; *s; s++) {
        if (*s == '"' || *s == '\\')
            fputc('\\', f);
        fputc(*s, f);
    }
    fputc('"', f);
}

/* The value as relud.conf writes it; secrets unmasked (callers mask). */
static void put_value(FILE *f, const struct cfg *c, const struct cfg_option *o)
{
    const void *p = cfield(c, o);
    char buf[40];
    switch (o->type) {
    case CFG_T_STRING:
    case CFG_T_PATH: put_quoted(f, *(char *const *)p ? *(char *const *)p : ""); break;
    case CFG_T_INT:
    case CFG_T_SECONDS:
        fprintf(f, "%d", (p == &c->threads && c->threads_auto) ? 0 : *(const int *)p);
        break;
    case CFG_T_BOOL: fputs(*(const int *)p ? "true" : "false", f); break;
    case CFG_T_ENUM: fputs(o->values[*(const int *)p], f); break;
    case CFG_T_SIZE:
        fmt_size(buf, sizeof buf, *(const size_t *)p);
        fputs(buf, f);
        break;
    case CFG_T_UINT: fprintf(f, "%zu", *(const size_t *)p); break;
    case CFG_TYPE_COUNT: break;
    }
}

/* "Default: 64MiB. Range: 1KiB..64GiB." and the like, for help, conf and docs; markdown
 * quotes values as code and leaves the default out (it has its own column). */
static void describe(char *buf, size_t n, const struct cfg_option *o, int markdown)
{
    char lo[32], hi[32];
    const char *q = markdown ? "`" : "";
    int w = 0;
    buf[0] = '\0';
    if (markdown) /* the default has its own column */
        buf[0] = '\0';
    else if ((o->type == CFG_T_STRING || o->type == CFG_T_PATH) && !o->def[0])
        w = snprintf(buf, n, "Default: empty.");
    else if (o->type == CFG_T_STRING || o->type == CFG_T_PATH)
        w = snprintf(buf, n, "Default: \"%s\".", o->def);
    else
        w = snprintf(buf, n, "Default: %s.", o->def);
    if (w < 0 || (size_t)w >= n)
        return;
    const char *sp = w ? " " : "";
    switch (o->type) {
    case CFG_T_INT:
    case CFG_T_UINT:
        snprintf(buf + w, n - (size_t)w, "%sRange: %lld..%lld.", sp, o->min, o->max);
        break;
    case CFG_T_SECONDS:
        snprintf(buf + w, n - (size_t)w, "%sRange: %lld..%lld seconds.", sp, o->min, o->max);
        break;
    case CFG_T_SIZE:
        fmt_size(lo, sizeof lo, (unsigned long long)o->min);
        fmt_size(hi, sizeof hi, (unsigned long long)o->max);
        snprintf(buf + w, n - (size_t)w, "%sRange: %s%s%s..%s%s%s.", sp, q, lo, q, q, hi, q);
        break;
    case CFG_T_ENUM:
        w += snprintf(buf + w, n - (size_t)w, "%sOne of:", sp);
        for (int i = 0; o->values[i] && w > 0 && (size_t)w < n; i++)
            w += snprintf(buf + w, n - (size_t)w, "%s %s%s%s", i ? "," : "", q, o->values[i], q);
        if (w > 0 && (size_t)w < n)
            snprintf(buf + w, n - (size_t)w, ".");
        break;
    case CFG_T_BOOL:
        snprintf(buf + w, n - (size_t)w, "%sOne of: %strue%s, %sfalse%s.", sp, q, q, q, q);
        break;
    default: break;
    }
}

void cfg_print_version(FILE *f) { fprintf(f, "relud %s\n", RELUD_VERSION); }

static const char *metavar(const struct cfg_option *o)
{
    switch (o->type) {
    case CFG_T_STRING:
        return o->flags & CFG_F_SECRET ? "TOKEN" : strcmp(o->name, "host") ? "NAME" : "ADDR";
    case CFG_T_PATH: return "PATH";
    case CFG_T_INT:
    case CFG_T_UINT: return "N";
    case CFG_T_SECONDS: return "SECONDS";
    case CFG_T_SIZE: return "SIZE";
    case CFG_T_ENUM: return "NAME";
    default: return "";
    }
}

void cfg_print_help(FILE *f, const char *prog)
{
    char flag[80], env[80], def[320], text[1024];
    fprintf(f,
            "Usage: %s [--config FILE] [--OPTION VALUE]...\n"
            "relud %s: neural-network inference over HTTP (PyTorch-compatible layers).\n"
            "\n"
            "Every option below can be set in a config file (name = value), in the\n"
            "environment (RELUD_<NAME>) or as a flag; a flag beats the environment, which\n"
            "beats the file, which beats the default. --name=value also works; a boolean\n"
            "flag alone means true, --no-NAME false.\n"
            "\n"
            "  -h, --help        print this help and exit\n"
            "  --version         print the version and exit\n"
            "  --config FILE     read options from FILE (or env RELUD_CONFIG); by default no\n"
            "                    file is read\n"
            "  --print-config    print the effective configuration as a relud.conf and exit\n"
            "  --print-docs      print the options as Markdown (docs/configuration.md), exit\n"
            "\n"
            "Options:\n",
            prog ? prog : "relud", RELUD_VERSION);
    for (size_t i = 0; i < cfg_option_count; i++) {
        const struct cfg_option *o = &cfg_options[i];
        cfg_option_flag(o, flag, sizeof flag);
        cfg_option_env(o, env, sizeof env);
        if (o->type == CFG_T_BOOL)
            fprintf(f, "  %s, --no-%s   (env %s)\n", flag, flag + 2, env);
        else
            fprintf(f, "  %s %s   (env %s)\n", flag, metavar(o), env);
        describe(def, sizeof def, o, 0);
        snprintf(text, sizeof text, "%s %s", o->help, def);
        put_wrapped(f, "      ", text, 80);
    }
}

static const char conf_header[] =
    "# relud.conf: every relud option, its value and what it does.\n"
    "#\n"
    "# Generated from the option table in config/cfg.c by `relud --print-config`;\n"
    "# after changing the table: build/relud --print-config > config/relud.conf\n"
    "#\n"
    "# Syntax: one `name = value` per line; blank lines and `#` comments are ignored.\n"
    "# In an unquoted value a `#` starts a comment when it follows a space; quote a\n"
    "# value (\"...\", with \\\" and \\\\ inside) to keep a `#` or outer spaces.\n"
    "# Sizes: an integer with an optional unit in powers of 1024: 512KiB, 64MiB, 1GiB\n"
    "# (K, KB, KiB mean the same).\n"
    "# Precedence: --flag > environment RELUD_<NAME> > this file > built-in default.\n"
    "# Read only when named: relud --config FILE, or RELUD_CONFIG=FILE.\n";

void cfg_print_conf(FILE *f, const struct cfg *c)
{
    char flag[80], env[80], def[320], text[1024];
    fputs(conf_header, f);
    for (size_t i = 0; i < cfg_option_count; i++) {
        const struct cfg_option *o = &cfg_options[i];
        cfg_option_flag(o, flag, sizeof flag);
        cfg_option_env(o, env, sizeof env);
        describe(def, sizeof def, o, 0);
        snprintf(text, sizeof text, "%s %s Flag %s, env %s.", o->help, def, flag, env);
        fputc('\n', f);
        put_wrapped(f, "# ", text, 80);
        if (o->flags & CFG_F_SECRET) {
            const char *v = *(char *const *)cfield(c, o);
            if (v && v[0])
                fputs("# (a value is set but not shown)\n", f);
            fprintf(f, "%s = \"\"\n", o->name);
            continue;
        }
        fprintf(f, "%s = ", o->name);
        put_value(f, c, o);
        fputc('\n', f);
    }
}

void cfg_print_effective(FILE *f, const struct cfg *c)
{
    for (size_t i = 0; i < cfg_option_count; i++) {
        const struct cfg_option *o = &cfg_options[i];
        const struct cfg_origin *og = &c->origin[i];
        char src[80];
        fprintf(f, "%s = ", o->name);
        if (o->flags & CFG_F_SECRET) {
            const char *v = *(char *const *)cfield(c, o);
            fputs(v && v[0] ? "\"***\"" : "\"\"", f);
        } else if (&c->threads == (const int *)cfield(c, o)) {
            fprintf(f, "%d", c->threads);
        } else {
            put_value(f, c, o);
        }
        switch (og->source) {
        case CFG_SRC_FILE:
            fprintf(f, " (%s:%d", c->config_path ? c->config_path : "?", og->line);
            break;
        case CFG_SRC_ENV:
            cfg_option_env(o, src, sizeof src);
            fprintf(f, " (env %s", src);
            break;
        case CFG_SRC_FLAG:
            cfg_option_flag(o, src, sizeof src);
            fprintf(f, " (%s", src);
            break;
        case CFG_SRC_TOKEN_FILE: fputs(" (admin_token_file", f); break;
        default: fputs(" (default", f); break;
        }
        if (&c->threads == (const int *)cfield(c, o) && c->threads_auto)
            fputs("; 0 = the cores", f);
        fputs(")\n", f);
    }
}

int cfg_print_warnings(FILE *f, const struct cfg *c)
{
    int n = 0;
    if ((long long)c->threads * c->blas_threads > c->cores) {
        fprintf(f,
                "relud: warning: threads * blas_threads = %d * %d exceeds the %d cores; "
                "expect slower requests (see docs/configuration.md, \"Threads and cores\")\n",
                c->threads, c->blas_threads, c->cores);
        n++;
    }
    if (c->ignored_env) {
        fprintf(f,
                "relud: warning: ignoring environment variables that are not relud options: "
                "%s\n",
                c->ignored_env);
        n++;
    }
    const struct cfg_option *tok = cfg_option_find("admin_token");
    if (c->origin[opt_index(tok)].source == CFG_SRC_FLAG && c->admin_token[0]) {
        fputs("relud: warning: --admin-token is visible to every user in ps; use "
              "admin_token_file\n",
              f);
        n++;
    }
    return n;
}

static void put_md_cell(FILE *f, const char *s)
{
    for (; *s; s++) {
        if (*s == '|')
            fputc('\\', f);
        fputc(*s, f);
    }
}

static const char md_intro[] =
    "# Configuration\n"
    "\n"
    "<!-- Generated by `relud --print-docs` from the option table in config/cfg.c; do not edit.\n"
    "     After changing the table: build/relud --print-docs > docs/configuration.md -->\n"
    "\n"
    "relud reads its options from four places. For each option the first of these that sets\n"
    "it wins:\n"
    "\n"
    "1. a flag: `--max-body-bytes 128MiB` or `--max-body-bytes=128MiB`; a boolean flag alone\n"
    "   means true (`--strict-models`), `--no-strict-models` false;\n"
    "2. an environment variable `RELUD_<NAME>`: `RELUD_MAX_BODY_BYTES=128MiB`;\n"
    "3. the config file, when one is named by `--config FILE` or `RELUD_CONFIG=FILE`\n"
    "   (without either, no file is read);\n"
    "4. the built-in default.\n"
    "\n"
    "A bad value, an unknown option (in the file, as a flag, or a misspelt `RELUD_*`\n"
    "variable) or an unreadable file stops the start with a message naming the option and\n"
    "where it came from:\n"
    "\n"
    "```\n"
    "relud: port: \"80x\" is not an integer (from --port)\n"
    "relud: max_body_bytes: \"12 PB\" has an unknown unit \"PB\" (use bytes, KiB, MiB, GiB or "
    "TiB) (from config/relud.conf:14)\n"
    "```\n"
    "\n"
    "`relud --print-config` prints the effective configuration as a config file;\n"
    "[`config/relud.conf`](../config/relud.conf) is that output for the defaults, and is what\n"
    "`make run` uses. `relud --help` lists the options too.\n"
    "\n"
    "## The config file\n"
    "\n"
    "One `name = value` per line; blank lines and lines starting with `#` are ignored. In an\n"
    "unquoted value a `#` that follows a space starts a comment. A value may be quoted\n"
    "(`\"...\"`, with `\\\"` and `\\\\` inside) to keep a `#` or outer spaces. Setting an\n"
    "option twice in the file is an error. Relative paths are relative to relud's working\n"
    "directory, not to the file.\n"
    "\n"
    "```\n"
    "# /etc/relud.conf\n"
    "host = 0.0.0.0\n"
    "port = 8080\n"
    "max_body_bytes = 256MiB\n"
    "log_format = json\n"
    "admin_token_file = /run/secrets/relud-admin\n"
    "```\n"
    "\n"
    "Value types:\n"
    "\n"
    "- **size**: an integer with an optional unit, all in powers of 1024: `1048576`,\n"
    "  `512KiB`, `64MiB`, `1GiB`, `1TiB` (`K`, `KB` and `KiB` mean the same, case does not\n"
    "  matter; no fractions).\n"
    "- **boolean**: `true`/`false` (also `yes`/`no`, `on`/`off`, `1`/`0`).\n"
    "- **seconds**: a whole number, optionally followed by `s`.\n"
    "- **integer**, **count**: a whole number within the option's range.\n"
    "\n"
    "## Environment\n"
    "\n"
    "A `RELUD_*` variable one or two letters away from an option is taken for a typo and\n"
    "stops the start (`RELUD_MAX_BODY_BYTE`: did you mean `RELUD_MAX_BODY_BYTES`?). Other\n"
    "`RELUD_*` variables, which scripts and compose files use for their own purposes, are\n"
    "ignored with a warning at start. `RELUD_CONFIG` and the variables Kubernetes creates\n"
    "for a Service named `relud` (`RELUD_SERVICE_HOST`, `RELUD_SERVICE_PORT*`,\n"
    "`RELUD_PORT_<n>_TCP*`) are ignored silently. Kubernetes also sets\n"
    "`RELUD_PORT=tcp://...`, which relud refuses with a hint: set `enableServiceLinks: false`\n"
    "in the pod spec or give the Service another name.\n"
    "\n"
    "The admin token is a secret: it never appears in `--help`, `--print-config` or the\n"
    "effective configuration logged at debug level. Flags are visible in `ps` and the\n"
    "environment in `/proc/PID/environ`; prefer `admin_token_file`.\n"
    "\n"
    "## Options\n"
    "\n";

static const char md_threads[] =
    "\n"
    "## Threads and cores\n"
    "\n"
    "relud has two kinds of threads. `threads` worker threads each serve one request at a\n"
    "time, running its whole forward/backward pass. Inside a pass, the matrix multiplies of\n"
    "`linear` layers go to OpenBLAS, which may split each one over `blas_threads` threads.\n"
    "At full load up to `threads × blas_threads` threads want a core, so keep\n"
    "\n"
    "    threads × blas_threads ≤ cores\n"
    "\n"
    "Beyond that, threads take turns on the cores: every request slows down and the tail\n"
    "latency grows. (relud warns at start when the product exceeds the cores.)\n"
    "\n"
    "- **Many small requests** (the usual online case: batches of 1 to a few hundred rows):\n"
    "  `threads = cores`, `blas_threads = 1`, the defaults. Requests run side by side, one\n"
    "  per core; a small matrix multiply gains nothing from more threads.\n"
    "- **A few big batches** (thousands of rows through wide layers, one or two clients):\n"
    "  fewer workers, more BLAS threads, e.g. on 8 cores `threads = 2`, `blas_threads = 4`,\n"
    "  or `threads = 1`, `blas_threads = 8` for one client at a time.\n"
    "- **Mixed**: split the difference, e.g. on 8 cores `threads = 4`, `blas_threads = 2`.\n"
    "\n"
    "**Dynamic batching** (models with `dynamic_batching`: many clients sending a row or two\n"
    "each) moves the passes off the request threads: `batch_workers` engine threads run the\n"
    "batches, each with `blas_threads` BLAS threads, while the `threads` request threads only\n"
    "parse and reply (they never wait for a batch). The default, `batch_workers = 0`, is\n"
    "cores / `blas_threads`. On 2 cores: `batch_workers = 1`, `blas_threads = 2` runs one\n"
    "batch on both cores (lowest latency per batch), `batch_workers = 2`, `blas_threads = 1`\n"
    "(the default) two batches side by side; on 8 cores 2 × 4 or 4 × 2; on 64 cores keep each\n"
    "batch on a socket's share (e.g. 8 × 8) rather than 64 × 1, or the batches stay small.\n"
    "See [batching.md](batching.md) for measurements.\n"
    "\n"
    "`threads = 0` means one worker per online CPU, as `sysconf(_SC_NPROCESSORS_ONLN)` reports\n"
    "at start. In a container limited by a CPU quota (`docker --cpus`, Kubernetes CPU limits)\n"
    "that count is the host's, not the quota: set `threads` to the quota explicitly.\n"
    "Measure with `make bench` before and after a change.\n"
    "\n"
    "## Memory\n"
    "\n"
    "Every request's memory is bounded before it is allocated, and each bound is an option:\n"
    "\n"
    "- the body: at most `max_body_bytes` (`max_model_bytes` for a model upload); all bodies\n"
    "  being received together at most `max_buffered_bytes` (a request over it gets 503 and\n"
    "  `Retry-After`); a model upload, while it is checked (one at a time), up to about 4 ×\n"
    "  `max_model_bytes` (its body, the decoded file, the weights converted);\n"
    "- parsing it: at most `max_json_values` × 128 bytes (the reader keeps one small node a\n"
    "  value and copies nothing out of the body; a numeric array, a tensor, is one node);\n"
    "- its tensors: the input is decoded straight into the workspace; targets and inline\n"
    "  weights into their own buffers, at most 4 × the body (a float64 value written `1,`\n"
    "  takes 2 bytes of text and 8 of memory; float32 half);\n"
    "- the pass: at most `max_workspace_bytes` (activations, and gradients when asked),\n"
    "  computed before the pass;\n"
    "- the reply: at most 4 × the bytes of the tensors it returns (a float32 printed\n"
    "  shortest takes at most 16 characters), and those live in the workspace; gzip\n"
    "  (`gzip_min_bytes`) needs at most the reply's size again while it compresses. A\n"
    "  binary reply (the OIP binary tensor extension) is sent from the workspace itself\n"
    "  when its outputs are at least a third of it, so until the client has read it, it\n"
    "  holds at most 3 × the bytes it returns; otherwise they are copied after its JSON\n"
    "  header. A compressed request is inflated into the body buffer, capped like any body.\n"
    "\n"
    "So the worst case, with every worker busy on the largest allowed request, is about\n"
    "\n"
    "    max_buffered_bytes + threads × (4 × max_body_bytes + max_json_values × 128 B\n"
    "                                    + 5 × max_workspace_bytes) + the models\n"
    "\n"
    "plus, for training jobs, (`max_train_jobs` + `max_train_queue`) × `max_train_bytes`:\n"
    "a job's data, its copy of the model, workspaces, optimizer state and history are\n"
    "counted before it is queued and held until it ends.\n"
    "\n"
    "With the defaults (threads = cores) that is far above what real requests use: lower\n"
    "`max_body_bytes` and `max_workspace_bytes` to what your models need, and set the\n"
    "container's memory limit from the formula. `tests/clients/memory.py` measures the\n"
    "daemon's peak RSS for adversarial bodies at the body cap against the parse bound.\n";

void cfg_print_markdown(FILE *f)
{
    char flag[80], env[80], range[320];
    fputs(md_intro, f);
    fputs("| Option | Flag | Environment | Default | Description |\n", f);
    fputs("|---|---|---|---|---|\n", f);
    for (size_t i = 0; i < cfg_option_count; i++) {
        const struct cfg_option *o = &cfg_options[i];
        cfg_option_flag(o, flag, sizeof flag);
        cfg_option_env(o, env, sizeof env);
        describe(range, sizeof range, o, 1);
        fprintf(f, "| `%s` | `%s` | `%s` | ", o->name, flag, env);
        if (o->def[0])
            fprintf(f, "`%s`", o->def);
        else
            fputs("(empty)", f);
        fprintf(f, " | **%s.** ", cfg_type_names[o->type]);
        put_md_cell(f, o->help);
        if (range[0]) {
            fputc(' ', f);
            put_md_cell(f, range);
        }
        fputs(" |\n", f);
    }
    fputs(md_threads, f);
}
