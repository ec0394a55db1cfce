/* relud: the daemon. The only place that exits. */
#include <cblas.h>
#include <semaphore.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>

#include "server/auth.h"
#include "server/batch.h"
#include "server/blas.h"
#include "server/http.h"
#include "server/log.h"
#include "server/metrics.h"
#include "server/models.h"
#include "server/srv.h"
#include "server/tls.h"
#include "server/train.h"

extern char **environ;

/* SIGTERM/SIGINT: the first starts the drain, a second one cuts it short. A handler
 * (not sigwait) because OpenBLAS starts its threads before main and they do not block
 * the signals; sem_post is async-signal-safe. */
static sem_t stop_sem;
static atomic_int stop_signals;
static atomic_int last_signal;

static atomic_int hangups;

static void on_stop_signal(int sig)
{
    atomic_store(&last_signal, sig);
    atomic_fetch_add(&stop_signals, 1);
    sem_post(&stop_sem);
}

/* SIGHUP: reload what may change without a restart (the access keys). */
static void on_hangup(int sig)
{
    (void)sig;
    atomic_fetch_add(&hangups, 1);
    sem_post(&stop_sem);
}

/* SIGHUP: the HTTPS certificate and key, for the next handshakes. */
static void reload_tls(const struct srv *s)
{
    if (!s->cfg.tls_cert_file[0])
        return;
    struct nn_err err;
    char d[300];
    if (srv_tls_reload(&err)) {
        srv_log(CFG_LOG_ERROR, "tls: %s; keeping the certificate loaded before", err.msg);
        return;
    }
    srv_tls_describe(d, sizeof d);
    srv_log(CFG_LOG_INFO, "tls: reloaded, serving %s", d);
}

/* (Re)reads api_keys_file into s->keys. At start a failure stops it; on SIGHUP the old
 * keys stay. */
static int load_keys(struct srv *s, int reload)
{
    if (!s->cfg.api_keys_file[0])
        return 0;
    struct srv_keys *k;
    struct nn_err err;
    if (srv_keys_load(s->cfg.api_keys_file, &k, &err)) {
        srv_log(CFG_LOG_ERROR, "%s%s", err.msg, reload ? "; keeping the keys loaded before" : "");
        return -1;
    }
    pthread_rwlock_wrlock(&s->keys_lock);
    struct srv_keys *old = s->keys;
    s->keys = k;
    pthread_rwlock_unlock(&s->keys_lock);
    srv_keys_free(old);
    srv_log(CFG_LOG_INFO, "api keys: %zu key(s) %s from %s", srv_keys_count(k),
            reload ? "reloaded" : "loaded", s->cfg.api_keys_file);
    return 0;
}

/* cfg_print_warnings goes through the log so it keeps log_format. */
static void log_cfg_warnings(const struct cfg *c)
{
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    if (!f)
        return;
    cfg_print_warnings(f, c);
    fclose(f);
    for (char *line = strtok(buf, "\n"); line; line = strtok(NULL, "\n"))
        srv_log(CFG_LOG_WARN, "%s", strncmp(line, "relud: ", 7) ? line : line + 7);
    free(buf);
}

/* "OpenBLAS 0.3.21, kernel SkylakeX (relud: ...)" */
static void blas_line(char *buf, size_t len, const struct srv_blas *b)
{
    snprintf(buf, len, "%s, kernel %s (%s: %s)", b->version, b->core, b->source, b->note);
}

static void print_version(const struct srv_blas *b)
{
    char line[512], feats[128];
    blas_line(line, sizeof line, b);
    printf("relud %s\nblas: %s\ncpu: %s (family %d, model %d): %s\n", RELUD_VERSION, line,
           b->cpu.brand[0] ? b->cpu.brand : "unknown", b->cpu.family, b->cpu.model,
           srv_cpu_feat_str(b->cpu.feat, feats, sizeof feats));
}

int main(int argc, char **argv)
{
    static struct srv s;
    char err[1024];
    srv_blas_early();
    cfg_defaults(&s.cfg);
    enum cfg_result r = cfg_load(&s.cfg, argc, argv, environ, err, sizeof err);
    switch (r) {
    case CFG_OK:
    case CFG_EXIT_VERSION: break;
    case CFG_EXIT_HELP: cfg_print_help(stdout, argv[0]); return 0;
    case CFG_EXIT_PRINT: cfg_print_conf(stdout, &s.cfg); return 0;
    case CFG_EXIT_DOCS: cfg_print_markdown(stdout); return 0;
    case CFG_ERROR:
    default:
        fprintf(stderr, "relud: %s\n", err);
        cfg_free(&s.cfg);
        return 2;
    }
    srv_log_init(s.cfg.log_level, s.cfg.log_format, s.cfg.access_log);
    /* May re-execute the process on a better kernel: before anything else starts. */
    if (srv_blas_select(s.cfg.blas_core, argv, &s.blas, err, sizeof err)) {
        fprintf(stderr, "relud: %s\n", err);
        cfg_free(&s.cfg);
        return 2;
    }
    if (r == CFG_EXIT_VERSION) {
        print_version(&s.blas);
        cfg_free(&s.cfg);
        return 0;
    }
    log_cfg_warnings(&s.cfg);
    char bl[512];
    blas_line(bl, sizeof bl, &s.blas);
    srv_log(CFG_LOG_INFO, "blas: %s; cpu: %s, family %d model %d", bl,
            s.blas.cpu.brand[0] ? s.blas.cpu.brand : "unknown", s.blas.cpu.family,
            s.blas.cpu.model);
    openblas_set_num_threads(s.cfg.blas_threads > 0 ? s.cfg.blas_threads : 1);

    sem_init(&stop_sem, 0, 0);
    struct sigaction sa = {0};
    sa.sa_handler = on_stop_signal;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    sa.sa_handler = on_hangup;
    sigaction(SIGHUP, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);
    s.stop_signals = &stop_signals;

    char host[64] = "localhost";
    gethostname(host, sizeof host - 1);
    snprintf(s.instance, sizeof s.instance, "%s:%d", host, (int)getpid());
    if (getrandom(&s.nonce, sizeof s.nonce, 0) != (ssize_t)sizeof s.nonce)
        s.nonce = (uint64_t)time(NULL) ^ ((uint64_t)getpid() << 32);
    s.metrics = srv_metrics_new();
    s.models = srv_models_new(s.cfg.model_dir, s.cfg.max_json_values);
    if (!s.metrics || !s.models) {
        fprintf(stderr, "relud: out of memory\n");
        return 1;
    }
    pthread_rwlock_init(&s.keys_lock, NULL);
    if (load_keys(&s, 0))
        return 2;
    if (s.cfg.tls_cert_file[0]) {
        struct nn_err terr;
        if (srv_tls_load(s.cfg.tls_cert_file, s.cfg.tls_key_file, s.cfg.tls_client_ca_file,
                         &terr)) {
            srv_log(CFG_LOG_ERROR, "tls: %s", terr.msg);
            return 2;
        }
        char d[300];
        srv_tls_describe(d, sizeof d);
        srv_log(CFG_LOG_INFO, "tls: serving %s%s", d,
                s.cfg.tls_client_ca_file[0] ? "; client certificates required" : "");
    }
    int workers = s.cfg.batch_workers;
    if (workers == 0)
        workers = s.cfg.cores / s.cfg.blas_threads > 1 ? s.cfg.cores / s.cfg.blas_threads : 1;
    struct nn_err eerr;
    s.engine = srv_engine_start(workers, s.cfg.max_tensor_elements, s.cfg.max_workspace_bytes,
                                &s.cancel, &eerr);
    if (!s.engine) {
        srv_log(CFG_LOG_ERROR, "%s", eerr.msg);
        return 1;
    }
    if (!(s.trainer = srv_trainer_start(&s.cfg, s.models, &eerr))) {
        srv_log(CFG_LOG_ERROR, "%s", eerr.msg);
        return 1;
    }
    if (srv_start(&s, err, sizeof err)) {
        srv_log(CFG_LOG_ERROR, "%s", err);
        return 1;
    }
    srv_log(CFG_LOG_INFO,
            "relud %s listening on http://%s:%d (threads=%d, blas_threads=%d, batch_workers=%d)",
            RELUD_VERSION, s.cfg.host, s.port, s.cfg.threads, s.cfg.blas_threads,
            srv_engine_workers(s.engine));
    if (s.cfg.log_level >= CFG_LOG_DEBUG)
        cfg_print_effective(stderr, &s.cfg);

    struct nn_err merr;
    if (srv_models_load_all(s.models, s.cfg.strict_models, &merr)) {
        srv_log(CFG_LOG_ERROR, "%s", merr.msg);
        srv_drain_and_stop(&s);
        return 1;
    }
    atomic_store(&s.ready, 1);
    int v6 = strchr(s.cfg.host, ':') != NULL;
    srv_log(CFG_LOG_INFO,
            "ready: serving on http://%s%s%s:%d/ (SIGTERM or Ctrl-C drains and stops)",
            v6 ? "[" : "", s.cfg.host, v6 ? "]" : "", s.port);

    for (;;) {
        while (sem_wait(&stop_sem) != 0)
            ; /* EINTR */
        if (atomic_exchange(&hangups, 0)) {
            load_keys(&s, 1);
            reload_tls(&s);
        }
        if (atomic_load(&stop_signals))
            break;
    }
    srv_log(CFG_LOG_INFO, "received %s",
            atomic_load(&last_signal) == SIGINT ? "SIGINT" : "SIGTERM");
    srv_drain_and_stop(&s);
    srv_engine_free(s.engine);
    srv_trainer_free(s.trainer);
    srv_keys_free(s.keys);
    srv_tls_free();
    srv_models_free(s.models);
    srv_metrics_free(s.metrics);
    cfg_free(&s.cfg);
    srv_log(CFG_LOG_INFO, "stopped");
    return 0;
}
