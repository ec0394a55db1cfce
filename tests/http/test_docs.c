/* The docs cannot drift: every ```sh block of README.md and docs/NAME.md whose command starts
 * with `curl` (or pipes into curl) runs against a real daemon, in document order, and when a ```json or ```text
 * block follows it the output must equal it (JSON as JSON, numbers as torch.allclose with
 * rtol 1e-5 and atol 1e-6, which every BLAS kernel meets; text exactly, trailing whitespace
 * aside). One cmocka test per example, named file:line.
 *
 * The daemon: build/relud on a temporary copy of config/models with the admin token the docs
 * use (s3cret). An example preceded by "<!-- docs-test daemon: FLAGS -->" runs against
 * another daemon started with FLAGS instead (no admin token unless FLAGS give one), started
 * on first use and shared by examples with the same FLAGS; "<!-- docs-test during: CMD -->"
 * runs CMD in the background, waits until it is in flight, then runs the example.
 *
 * Also: every route, every status relud answers, every layer kind with its torch alias,
 * parameters and defaults, and every loss appear in docs/api.md; every option in
 * docs/configuration.md. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <poll.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "config/cfg.h"
#include "core/nn.h"
#include "server/srv.h"
#include "server/status.h"
#include "tests/common/fs.h"
#include "tests/common/http.h"

#define DOCS_TOKEN "s3cret"
/* Outside a cmocka test (parsing, allocation): report and stop. */
#define NEED(x)                                                                       \
    do {                                                                              \
        if (!(x)) {                                                                   \
            fprintf(stderr, "test_docs: %s:%d: %s failed\n", __FILE__, __LINE__, #x); \
            exit(1);                                                                  \
        }                                                                             \
    } while (0)
#define CMD_TIMEOUT_S 10
#define MAX_DAEMONS 8

/* ---- small dynamic strings ------------------------------------------------------ */
struct str {
    char *p;
    size_t n, cap;
};

static void str_addn(struct str *s, const char *p, size_t n)
{
    if (s->n + n + 1 > s->cap) {
        size_t nc = s->cap ? s->cap : 256;
        while (nc < s->n + n + 1)
            nc *= 2;
        char *np = realloc(s->p, nc);
        NEED(np);
        s->p = np;
        s->cap = nc;
    }
    memcpy(s->p + s->n, p, n);
    s->n += n;
    s->p[s->n] = 0;
}
static void str_add(struct str *s, const char *p) { str_addn(s, p, strlen(p)); }
static void str_printf(struct str *s, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void str_printf(struct str *s, const char *fmt, ...)
{
    char buf[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    str_add(s, buf);
}

/* ---- markdown: fenced blocks ------------------------------------------------------ */
struct example {
    char name[160];    /* "docs/api.md:123" (the line of the ```sh fence) */
    char *cmd;         /* the block's text */
    char *expect;      /* the following ```json / ```text block, or NULL */
    int expect_json;   /* 1 json, 0 text */
    char *daemon_args; /* "<!-- docs-test daemon: ... -->" or NULL */
    char *during;      /* "<!-- docs-test during: ... -->" or NULL */
};

static struct example *examples;
static int nexamples, capexamples;

static char *trim_dup(const char *p, size_t n)
{
    while (n && (*p == ' ' || *p == '\t'))
        p++, n--;
    while (n && (p[n - 1] == ' ' || p[n - 1] == '\t' || p[n - 1] == '\n' || p[n - 1] == '\r'))
        n--;
    char *s = malloc(n + 1);
    NEED(s);
    memcpy(s, p, n);
    s[n] = 0;
    return s;
}

/* Splits text into lines (in place); returns the count. */
static int split_lines(char *text, char ***lines)
{
    int n = 0, cap = 256;
    char **l = malloc(sizeof *l * (size_t)cap);
    NEED(l);
    for (char *p = text; p && *p;) {
        if (n == cap) {
            cap *= 2;
            l = realloc(l, sizeof *l * (size_t)cap);
            NEED(l);
        }
        l[n++] = p;
        char *nl = strchr(p, '\n');
        if (!nl)
            break;
        *nl = 0;
        p = nl + 1;
    }
    *lines = l;
    return n;
}

static void doc_error(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));
static void doc_error(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "test_docs: ");
    vfprintf(stderr, fmt, ap);
    fprintf(stderr, "\n");
    va_end(ap);
    exit(1);
}

static int starts(const char *s, const char *prefix)
{
    return strncmp(s, prefix, strlen(prefix)) == 0;
}

/* "<!-- docs-test KEY: VALUE -->" -> VALUE (malloc'd) if the line is that directive. */
static char *directive(const char *line, const char *key)
{
    char pre[64];
    snprintf(pre, sizeof pre, "<!-- docs-test %s:", key);
    if (!starts(line, pre))
        return NULL;
    const char *v = line + strlen(pre), *end = strstr(v, "-->");
    if (!end)
        doc_error("%s: docs-test directive without -->", line);
    return trim_dup(v, (size_t)(end - v));
}

/* Collects the curl examples of one file (path relative to the repo root). */
static void collect(const char *rel)
{
    char path[512];
    snprintf(path, sizeof path, "%s/%s", t_root(), rel);
    char *text = t_read_file(path, NULL);
    if (!text)
        return;
    char **lines;
    int n = split_lines(text, &lines);
    char *daemon_args = NULL, *during = NULL;
    for (int i = 0; i < n; i++) {
        char *d;
        if ((d = directive(lines[i], "daemon"))) {
            free(daemon_args);
            daemon_args = d;
            continue;
        }
        if ((d = directive(lines[i], "during"))) {
            free(during);
            during = d;
            continue;
        }
        if (!starts(lines[i], "```")) {
            if (lines[i][0] && (daemon_args || during)) /* directives bind to the next block */
                doc_error("%s:%d: docs-test directive not followed by a ```sh block", rel, i);
            continue;
        }
        /* a fenced block: find its end */
        char lang[32];
        snprintf(lang, sizeof lang, "%s", lines[i] + 3);
        int j = i + 1;
        struct str body = {0};
        while (j < n && !starts(lines[j], "```")) {
            str_add(&body, lines[j]);
            str_add(&body, "\n");
            j++;
        }
        char *content = trim_dup(body.p ? body.p : "", body.n);
        free(body.p);
        /* curl, or a pipeline into curl (printf ... | gzip | curl ...) */
        int is_curl =
            !strcmp(lang, "sh") && (starts(content, "curl") || strstr(content, "| curl "));
        if (!is_curl) {
            if (daemon_args || during)
                doc_error("%s:%d: docs-test directive before a block that is no curl example", rel,
                          i + 1);
            free(content);
            i = j;
            continue;
        }
        if (nexamples == capexamples) {
            capexamples = capexamples ? capexamples * 2 : 64;
            examples = realloc(examples, sizeof *examples * (size_t)capexamples);
            NEED(examples);
        }
        struct example *e = &examples[nexamples++];
        memset(e, 0, sizeof *e);
        snprintf(e->name, sizeof e->name, "%s:%d", rel, i + 1);
        e->cmd = content;
        e->daemon_args = daemon_args;
        e->during = during;
        daemon_args = during = NULL;
        /* an expected block right after (blank lines allowed) */
        int k = j + 1;
        while (k < n && lines[k][0] == 0)
            k++;
        if (k < n && (!strcmp(lines[k], "```json") || !strcmp(lines[k], "```text"))) {
            e->expect_json = !strcmp(lines[k], "```json");
            int m = k + 1;
            struct str exp = {0};
            while (m < n && !starts(lines[m], "```")) {
                str_add(&exp, lines[m]);
                str_add(&exp, "\n");
                m++;
            }
            e->expect = exp.p ? exp.p : calloc(1, 1);
            j = m;
        }
        i = j;
    }
    if (daemon_args || during)
        doc_error("%s: docs-test directive at the end of the file", rel);
    free(lines);
    free(text);
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* README.md, then docs/NAME.md in name order. */
static void collect_all(void)
{
    collect("README.md");
    char dir[512];
    snprintf(dir, sizeof dir, "%s/docs", t_root());
    DIR *d = opendir(dir);
    if (!d)
        return;
    char *names[256];
    int n = 0;
    struct dirent *de;
    while ((de = readdir(d)) && n < 256) {
        size_t l = strlen(de->d_name);
        if (l > 3 && !strcmp(de->d_name + l - 3, ".md"))
            names[n++] = strdup(de->d_name);
    }
    closedir(d);
    qsort(names, (size_t)n, sizeof *names, cmp_str);
    for (int i = 0; i < n; i++) {
        char rel[300];
        snprintf(rel, sizeof rel, "docs/%s", names[i]);
        collect(rel);
        free(names[i]);
    }
}

/* ---- daemons ------------------------------------------------------------------------- */
static char model_dir[64];
static struct t_daemon main_daemon;
static int main_started;
static struct {
    char *args;
    struct t_daemon d;
    int ok;
} extra[MAX_DAEMONS];
static int nextra;

static int copy_models(void)
{
    return t_tmp_copy(model_dir, sizeof model_dir, "docs", "config/models");
}

static struct t_daemon *daemon_for(const struct example *e)
{
    if (!e->daemon_args)
        return main_started ? &main_daemon : NULL;
    for (int i = 0; i < nextra; i++)
        if (!strcmp(extra[i].args, e->daemon_args))
            return extra[i].ok ? &extra[i].d : NULL;
    NEED(nextra < MAX_DAEMONS);
    int i = nextra++;
    extra[i].args = strdup(e->daemon_args);
    /* split FLAGS on spaces (the docs use no quoting) */
    static char buf[MAX_DAEMONS][512];
    snprintf(buf[i], sizeof buf[i], "%s", e->daemon_args);
    const char *argv[40];
    int n = 0;
    argv[n++] = "--model-dir";
    argv[n++] = model_dir;
    for (char *save = NULL, *tok = strtok_r(buf[i], " ", &save); tok && n < 38;
         tok = strtok_r(NULL, " ", &save))
        argv[n++] = tok;
    argv[n] = NULL;
    extra[i].ok = t_daemon_start(&extra[i].d, argv, NULL) == 0;
    if (!extra[i].ok)
        fprintf(stderr, "could not start relud with: %s\n", e->daemon_args);
    return extra[i].ok ? &extra[i].d : NULL;
}

static int group_setup(void **state)
{
    (void)state;
    if (copy_models())
        return -1;
    const char *args[] = {"--model-dir", model_dir, NULL};
    const char *envs[] = {"RELUD_ADMIN_TOKEN=" DOCS_TOKEN, NULL};
    main_started = t_daemon_start(&main_daemon, args, envs) == 0;
    return main_started ? 0 : -1;
}

static int group_teardown(void **state)
{
    (void)state;
    int rc = 0;
    if (main_started && t_daemon_stop(&main_daemon, 0, 30) != 0)
        rc = -1;
    for (int i = 0; i < nextra; i++)
        if (extra[i].ok && t_daemon_stop(&extra[i].d, 0, 30) != 0)
            rc = -1;
    t_rm_dir(model_dir);
    return rc;
}

/* ---- running a command ----------------------------------------------------------------- */
/* The command with localhost:8080 / 127.0.0.1:8080 pointed at port. */
static char *rewrite(const char *cmd, int port)
{
    static const char *const hosts[] = {"localhost:8080", "127.0.0.1:8080"};
    struct str out = {0};
    char to[32];
    snprintf(to, sizeof to, "127.0.0.1:%d", port);
    for (const char *p = cmd; *p;) {
        size_t hit = 0;
        for (int h = 0; h < 2 && !hit; h++)
            if (starts(p, hosts[h]))
                hit = strlen(hosts[h]);
        if (hit) {
            str_add(&out, to);
            p += hit;
        } else {
            str_addn(&out, p, 1);
            p++;
        }
    }
    return out.p;
}

static pid_t spawn(const char *cmd, int *out_fd, int *err_fd)
{
    int po[2] = {-1, -1}, pe[2] = {-1, -1};
    if (out_fd && (pipe(po) || pipe(pe)))
        return -1;
    pid_t pid = fork();
    if (pid < 0)
        return -1;
    if (pid == 0) {
        setpgid(0, 0);
        if (chdir(t_root()) != 0)
            _exit(126);
        int nul = open("/dev/null", O_RDWR);
        dup2(nul, 0);
        dup2(out_fd ? po[1] : nul, 1);
        dup2(out_fd ? pe[1] : nul, 2);
        execl("/bin/sh", "sh", "-c", cmd, (char *)NULL);
        _exit(127);
    }
    setpgid(pid, pid);
    if (out_fd) {
        close(po[1]);
        close(pe[1]);
        *out_fd = po[0];
        *err_fd = pe[0];
    }
    return pid;
}

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* Waits for pid until deadline; kills its process group after. Returns the exit status,
 * or -1 on timeout. */
static int reap(pid_t pid, double deadline)
{
    int st;
    for (;;) {
        pid_t w = waitpid(pid, &st, WNOHANG);
        if (w == pid)
            return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
        if (now_s() > deadline) {
            kill(-pid, SIGKILL);
            waitpid(pid, &st, 0);
            return -1;
        }
        struct timespec ts = {0, 5 * 1000000L};
        nanosleep(&ts, NULL);
    }
}

/* Runs cmd with /bin/sh in the repo root; collects stdout and stderr. Returns the exit
 * status, -1 on timeout. */
static int run(const char *cmd, struct str *out, struct str *err)
{
    int fo = -1, fe = -1;
    pid_t pid = spawn(cmd, &fo, &fe);
    assert_true(pid > 0);
    double deadline = now_s() + CMD_TIMEOUT_S;
    struct pollfd pf[2] = {{fo, POLLIN, 0}, {fe, POLLIN, 0}};
    int open_fds = 2;
    while (open_fds > 0) {
        int left = (int)((deadline - now_s()) * 1000);
        if (left <= 0)
            break;
        int r = poll(pf, 2, left);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            break;
        for (int i = 0; i < 2; i++) {
            if (pf[i].fd < 0 || !pf[i].revents)
                continue;
            char buf[4096];
            ssize_t n = read(pf[i].fd, buf, sizeof buf);
            if (n > 0) {
                str_addn(i ? err : out, buf, (size_t)n);
            } else {
                close(pf[i].fd);
                pf[i].fd = -1;
                open_fds--;
            }
        }
    }
    for (int i = 0; i < 2; i++)
        if (pf[i].fd >= 0)
            close(pf[i].fd);
    if (!out->p)
        str_add(out, "");
    if (!err->p)
        str_add(err, "");
    return reap(pid, open_fds ? 0 : deadline);
}

static long metric(const char *body, const char *name)
{
    char key[96];
    snprintf(key, sizeof key, "\n%s ", name);
    const char *p = strstr(body, key);
    return p ? strtol(p + strlen(key), NULL, 10) : 0;
}

/* Polls /metrics until the background command bg's request is under way: at least 2
 * requests in flight (the poll itself is one) and its body counted against
 * max_buffered_bytes (the docs' background commands upload a body). In flight alone is
 * not enough: a request is in flight from its first handler call, a moment before its
 * body is reserved, and an example run in that moment races it. 0 then; -2 when bg ended
 * first (refused), -1 after 5 s. */
static int wait_inflight(const struct t_daemon *d, long want, pid_t bg)
{
    for (int i = 0; i < 500; i++) {
        if (waitpid(bg, NULL, WNOHANG) == bg) /* it ended (refused): not in flight */
            return -2;
        struct t_resp r;
        if (t_get(d, "/metrics", &r) == 0 && r.status == 200) {
            long v = metric(r.body, "relud_inflight_requests");
            long b = metric(r.body, "relud_buffered_body_bytes");
            t_resp_free(&r);
            if (v >= want && b > 0)
                return 0;
        } else {
            t_resp_free(&r);
        }
        struct timespec ts = {0, 10 * 1000000L};
        nanosleep(&ts, NULL);
    }
    return -1;
}

/* ---- JSON deep equality -------------------------------------------------------------- */
/* Numbers compare as torch.allclose does for float32, |got - doc| <= ATOL + RTOL * |doc|:
 * the documented values came from one CPU's BLAS kernel, and another kernel sums in another
 * order (float32 keeps ~7 digits). Integers (shapes, counts, indices) are exact under it. */
#define DOC_RTOL 1e-5
#define DOC_ATOL 1e-6

/* 1 if equal; else 0 with the path of the first difference in path. a is the documented
 * value (allclose's `other`), b the reply. */
static int json_eq(const cJSON *a, const cJSON *b, struct str *path)
{
    if (cJSON_IsNumber(a) && cJSON_IsNumber(b))
        return fabs(b->valuedouble - a->valuedouble) <= DOC_ATOL + DOC_RTOL * fabs(a->valuedouble);
    if ((a->type & 0xff) != (b->type & 0xff))
        return 0;
    if (cJSON_IsString(a))
        return strcmp(a->valuestring, b->valuestring) == 0;
    if (cJSON_IsArray(a)) {
        int na = cJSON_GetArraySize(a), nb = cJSON_GetArraySize(b);
        const cJSON *x = a->child, *y = b->child;
        for (int i = 0; x && y; i++, x = x->next, y = y->next) {
            size_t keep = path->n;
            str_printf(path, "[%d]", i);
            if (!json_eq(x, y, path))
                return 0;
            path->n = keep;
            path->p[keep] = 0;
        }
        if (na != nb)
            str_printf(path, " (length %d vs %d)", na, nb);
        return na == nb;
    }
    if (cJSON_IsObject(a)) {
        for (const cJSON *x = a->child; x; x = x->next) {
            size_t keep = path->n;
            str_printf(path, ".%s", x->string);
            const cJSON *y = cJSON_GetObjectItemCaseSensitive(b, x->string);
            if (!y) {
                str_add(path, " (missing)");
                return 0;
            }
            if (!json_eq(x, y, path))
                return 0;
            path->n = keep;
            path->p[keep] = 0;
        }
        for (const cJSON *y = b->child; y; y = y->next)
            if (!cJSON_GetObjectItemCaseSensitive(a, y->string)) {
                str_printf(path, ".%s (unexpected)", y->string);
                return 0;
            }
        return 1;
    }
    return 1; /* true, false, null of the same type */
}

static void rstrip(char *s)
{
    size_t n = strlen(s);
    while (n && (s[n - 1] == '\n' || s[n - 1] == ' ' || s[n - 1] == '\r' || s[n - 1] == '\t'))
        s[--n] = 0;
}

/* ---- one example ----------------------------------------------------------------------- */
static void run_example(void **state)
{
    const struct example *e = *state;
    struct t_daemon *d = daemon_for(e);
    if (!d)
        fail_msg("%s: no daemon%s%s", e->name, e->daemon_args ? " for flags: " : "",
                 e->daemon_args ? e->daemon_args : "");
    char *cmd = rewrite(e->cmd, d->port);
    pid_t bg = 0;
    /* The background command holds a request open. wait_inflight's own /metrics requests can
     * race it for a connection (with --connection-limit 1 the background one may come second
     * and be refused at once), so it is started again, up to 5 times, until it is in flight. */
    for (int tries = 0; e->during && !bg; tries++) {
        char *bcmd = rewrite(e->during, d->port);
        bg = spawn(bcmd, NULL, NULL);
        free(bcmd);
        assert_true(bg > 0);
        int w = wait_inflight(d, 2, bg);
        if (w) {
            if (w == -1)
                reap(bg, 0);
            bg = 0;
            if (tries == 4)
                fail_msg("%s: the background command never reached the daemon: %s", e->name,
                         e->during);
        }
    }
    struct str out = {0}, err = {0};
    int rc = run(cmd, &out, &err);
    if (bg)
        reap(bg, now_s() + CMD_TIMEOUT_S);
    struct str msg = {0};
    if (rc != 0) {
        str_printf(&msg, "%s: the command %s (exit status %d)\n$ %s\n", e->name,
                   rc < 0 ? "timed out" : "failed", rc, e->cmd);
        str_add(&msg, "stdout: ");
        str_add(&msg, out.p);
        str_add(&msg, "\nstderr: ");
        str_add(&msg, err.p);
    } else if (e->expect && e->expect_json) {
        cJSON *want = cJSON_Parse(e->expect), *got = cJSON_Parse(out.p);
        struct str path = {0};
        str_add(&path, "$");
        if (!want) {
            str_printf(&msg, "%s: the ```json block after the example is not valid JSON\n",
                       e->name);
        } else if (!got) {
            str_printf(&msg, "%s: the output is not JSON\n--- documented\n%s+++ actual\n%s\n",
                       e->name, e->expect, out.p);
        } else if (!json_eq(want, got, &path)) {
            char *w = cJSON_PrintUnformatted(want), *g = cJSON_PrintUnformatted(got);
            str_printf(&msg, "%s: the output differs from the docs at %s\n$ ", e->name, path.p);
            str_add(&msg, e->cmd);
            str_add(&msg, "\n--- documented\n");
            str_add(&msg, w);
            str_add(&msg, "\n+++ actual\n");
            str_add(&msg, g);
            str_add(&msg, "\n");
            free(w);
            free(g);
        }
        free(path.p);
        cJSON_Delete(want);
        cJSON_Delete(got);
    } else if (e->expect) {
        char *w = strdup(e->expect);
        rstrip(w);
        rstrip(out.p);
        if (strcmp(w, out.p)) {
            str_printf(&msg, "%s: the output differs from the docs\n$ ", e->name);
            str_add(&msg, e->cmd);
            str_add(&msg, "\n--- documented\n");
            str_add(&msg, w);
            str_add(&msg, "\n+++ actual\n");
            str_add(&msg, out.p);
            str_add(&msg, "\n");
        }
        free(w);
    }
    free(cmd);
    free(out.p);
    free(err.p);
    if (msg.p) {
        /* cmocka's print_error truncates long messages: print in pieces */
        for (size_t at = 0; at < msg.n; at += 512)
            print_error("%.512s", msg.p + at);
        print_error("\n");
        free(msg.p);
        fail();
    }
}

/* ---- coverage: the lists in the code appear in the docs ------------------------------- */
static char *api_md;

/* From heading to the next heading of the same or a higher level. */
static char *section(const char *doc, const char *heading)
{
    const char *p = strstr(doc, heading);
    if (!p)
        return NULL;
    const char *end = strstr(p + strlen(heading), "\n## ");
    if (starts(heading, "\n### ")) {
        const char *h3 = strstr(p + strlen(heading), "\n### ");
        if (h3 && (!end || h3 < end))
            end = h3;
    }
    return trim_dup(p, end ? (size_t)(end - p) : strlen(p));
}

static void routes_documented(void **state)
{
    (void)state;
    int missing = 0;
    char want[200];
#define X(ID, m, p, h)                                                     \
    snprintf(want, sizeof want, "`%s %s`", m, p);                          \
    if (!strstr(api_md, want)) {                                           \
        print_error("docs/api.md does not document the route %s\n", want); \
        missing++;                                                         \
    }
    SRV_ROUTE_LIST(X)
#undef X
    assert_int_equal(missing, 0);
}

/* Statuses relud never sends: they label requests whose client went away (metrics, log). */
static const unsigned never_sent[] = {408, 499};
/* Statuses with no reproducible example (a failing file system). */
static const unsigned no_example[] = {500};

static int in(unsigned v, const unsigned *list, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (list[i] == v)
            return 1;
    return 0;
}

static void statuses_documented(void **state)
{
    (void)state;
    char *errs = section(api_md, "\n## Error classes");
    assert_non_null(errs);
    int missing = 0;
    char want[120];
#define X(code, reason, cls)                                                               \
    if (code >= 400 && !in(code, never_sent, sizeof never_sent / sizeof *never_sent)) {    \
        snprintf(want, sizeof want, "\n### %d %s\n", code, reason);                        \
        const char *h = strstr(errs, want);                                                \
        if (!h) {                                                                          \
            print_error("docs/api.md, Error classes: no heading \"%.*s\"\n",               \
                        (int)strlen(want) - 2, want + 1);                                  \
            missing++;                                                                     \
        } else if (!in(code, no_example, sizeof no_example / sizeof *no_example)) {        \
            const char *next = strstr(h + 1, "\n### ");                                    \
            const char *ex = strstr(h, "```sh\ncurl");                                     \
            if (!ex || (next && ex > next)) {                                              \
                print_error("docs/api.md, Error classes: %d has no curl example\n", code); \
                missing++;                                                                 \
            }                                                                              \
        }                                                                                  \
    }
    SRV_STATUS_LIST(X)
#undef X
    free(errs);
    assert_int_equal(missing, 0);
}

/* The table row "| `name` | `Torch` | ..." of docs/api.md, or NULL. */
static char *table_row(const char *name, const char *torch)
{
    char want[160];
    snprintf(want, sizeof want, "\n| `%s` | `%s` |", name, torch);
    const char *p = strstr(api_md, want);
    if (!p)
        return NULL;
    p++;
    const char *end = strchr(p, '\n');
    return trim_dup(p, end ? (size_t)(end - p) : strlen(p));
}

static void layers_documented(void **state)
{
    (void)state;
    int bad = 0;
    for (int k = 0; k < NN_KIND_COUNT; k++) {
        const struct nn_kind_info *ki = &nn_kinds[k];
        char *row = table_row(ki->name, ki->torch);
        if (!row) {
            print_error("docs/api.md: no layer row \"| `%s` | `%s` |\"\n", ki->name, ki->torch);
            bad++;
            continue;
        }
        for (int i = 0; i < ki->nparams; i++) {
            const struct nn_param_spec *ps = &ki->params[i];
            char want[96];
            switch (ps->kind) {
            case NN_P_REAL:
            case NN_P_DIM: snprintf(want, sizeof want, "`%s = %g`", ps->name, ps->def); break;
            case NN_P_APPROX:
                snprintf(want, sizeof want, "`%s = \"%s\"`", ps->name, ps->def ? "tanh" : "none");
                break;
            case NN_P_WEIGHT: snprintf(want, sizeof want, "`%s` (required)", ps->name); break;
            case NN_P_BIAS: snprintf(want, sizeof want, "`%s` (optional", ps->name); break;
            }
            if (!strstr(row, want)) {
                print_error("docs/api.md, layer %s: parameter %s not in its row: %s\n", ki->name,
                            want, row);
                bad++;
            }
        }
        if (ki->nparams == 0 && !strstr(row, "| none |")) {
            print_error("docs/api.md, layer %s takes no parameters: %s\n", ki->name, row);
            bad++;
        }
        free(row);
    }
    /* and no row for a kind that does not exist: count the rows of the layer table */
    char *tab = section(api_md, "\n### Layers");
    assert_non_null(tab);
    int rows = 0;
    for (const char *p = tab; (p = strstr(p, "\n| `")); p++)
        rows++;
    free(tab);
    if (rows != NN_KIND_COUNT) {
        print_error("docs/api.md: the layer table has %d rows, the code %d kinds\n", rows,
                    NN_KIND_COUNT);
        bad++;
    }
    assert_int_equal(bad, 0);
}

static void losses_documented(void **state)
{
    (void)state;
    int bad = 0;
    for (int l = 0; l < NN_LOSS_COUNT; l++) {
        const struct nn_loss_info *li = &nn_losses[l];
        char *row = table_row(li->name, li->torch);
        if (!row) {
            print_error("docs/api.md: no loss row \"| `%s` | `%s` |\"\n", li->name, li->torch);
            bad++;
            continue;
        }
        char want[96];
        if (li->param)
            snprintf(want, sizeof want, "`%s = %g`", li->param, li->param_def);
        else
            snprintf(want, sizeof want, "| none |");
        if (!strstr(row, want)) {
            print_error("docs/api.md, loss %s: \"%s\" not in its row: %s\n", li->name, want, row);
            bad++;
        }
        free(row);
    }
    assert_int_equal(bad, 0);
}

static void options_documented(void **state)
{
    (void)state;
    char path[512];
    snprintf(path, sizeof path, "%s/docs/configuration.md", t_root());
    char *conf = t_read_file(path, NULL);
    assert_non_null(conf);
    int bad = 0;
    for (size_t i = 0; i < cfg_option_count; i++) {
        char want[96];
        snprintf(want, sizeof want, "| `%s` |", cfg_options[i].name);
        if (!strstr(conf, want)) {
            print_error("docs/configuration.md does not document the option %s\n",
                        cfg_options[i].name);
            bad++;
        }
    }
    free(conf);
    assert_int_equal(bad, 0);
}

/* word appears in text between a space, line break or backquote on either side. */
static int listed(const char *text, const char *word)
{
    size_t n = strlen(word);
    for (const char *q = text; (q = strstr(q, word)); q += n)
        if (q > text && strchr(" \n`", q[-1]) && q[n] && strchr(" \n`", q[n]))
            return 1;
    return 0;
}

/* README.md names every Debian package the Makefile installs (DEB_BUILD and DEB_TEST, with
 * their continuation lines), each in backquotes or in a backquoted list. */
static void packages_documented(void **state)
{
    (void)state;
    char path[512];
    snprintf(path, sizeof path, "%s/Makefile", t_root());
    char *mk = t_read_file(path, NULL);
    snprintf(path, sizeof path, "%s/README.md", t_root());
    char *readme = t_read_file(path, NULL);
    assert_non_null(mk);
    assert_non_null(readme);
    int bad = 0, seen = 0;
    static const char *const vars[] = {"DEB_BUILD", "DEB_TEST"};
    for (size_t v = 0; v < sizeof vars / sizeof vars[0]; v++) {
        char head[32];
        snprintf(head, sizeof head, "\n%s", vars[v]);
        const char *p = strstr(mk, head + 1) == mk ? mk : strstr(mk, head);
        assert_non_null(p);
        p = strstr(p, ":=");
        assert_non_null(p);
        p += 2;
        for (;;) { /* words up to a line end not escaped by a backslash */
            while (*p == ' ' || *p == '\t' || (*p == '\\' && p[1] == '\n'))
                p += *p == '\\' ? 2 : 1;
            if (!*p || *p == '\n')
                break;
            const char *e = p;
            while (*e && *e != ' ' && *e != '\t' && *e != '\n' && *e != '\\')
                e++;
            char pkg[96];
            snprintf(pkg, sizeof pkg, "%.*s", (int)(e - p), p);
            if (!listed(readme, pkg)) {
                print_error("README.md does not list the Debian package %s (Makefile %s)\n", pkg,
                            vars[v]);
                bad++;
            }
            seen++;
            p = e;
        }
    }
    free(mk);
    free(readme);
    assert_true(seen > 10);
    assert_int_equal(bad, 0);
}

int main(void)
{
    char path[512];
    snprintf(path, sizeof path, "%s/docs/api.md", t_root());
    api_md = t_read_file(path, NULL);
    if (!api_md) {
        fprintf(stderr, "test_docs: cannot read %s\n", path);
        return 1;
    }
    signal(SIGPIPE, SIG_IGN);
    snprintf(path, sizeof path, "%s/README.md", t_root());
    if (access(path, R_OK) != 0)
        fprintf(stderr, "test_docs: no README.md yet; its examples are skipped\n");
    collect_all();

    const struct CMUnitTest coverage[] = {
        cmocka_unit_test(routes_documented),  cmocka_unit_test(statuses_documented),
        cmocka_unit_test(layers_documented),  cmocka_unit_test(losses_documented),
        cmocka_unit_test(options_documented), cmocka_unit_test(packages_documented),
    };
    int failed = cmocka_run_group_tests_name("docs coverage", coverage, NULL, NULL);

    struct CMUnitTest *tests = calloc((size_t)nexamples + 1, sizeof *tests);
    NEED(tests);
    for (int i = 0; i < nexamples; i++) {
        tests[i].name = examples[i].name;
        tests[i].test_func = run_example;
        tests[i].initial_state = &examples[i];
    }
    failed += _cmocka_run_group_tests("docs examples", tests, (size_t)nexamples, group_setup,
                                      group_teardown);
    for (int i = 0; i < nexamples; i++) {
        free(examples[i].cmd);
        free(examples[i].expect);
        free(examples[i].daemon_args);
        free(examples[i].during);
    }
    free(examples);
    free(tests);
    free(api_md);
    return failed ? 1 : 0;
}
