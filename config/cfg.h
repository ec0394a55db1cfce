/* relud configuration: one option table, four sources.
 *
 * The table (cfg_options[], defined in cfg.c) lists every option once: name, type, field,
 * default, bounds, help. It drives the config file parser, the environment (RELUD_<NAME>),
 * the flags (--name-with-dashes), --help, --print-config (config/relud.conf) and
 * --print-docs (docs/configuration.md). Adding an option is one row there plus its field
 * here; a field whose C type does not match the row's type is a compile error.
 *
 * Precedence: flag > env > file > default. The file is read only when named by
 * --config FILE or RELUD_CONFIG.
 *
 * Use (server/main.c, the only place that prints and exits):
 *   struct cfg c; char err[CFG_ERR_LEN];
 *   cfg_defaults(&c);
 *   switch (cfg_load(&c, argc, argv, environ, err, sizeof err)) {
 *   case CFG_OK: break;
 *   case CFG_ERROR: fprintf(stderr, "relud: %s\n", err); cfg_free(&c); return 2;
 *   case CFG_EXIT_HELP: cfg_print_help(stdout, argv[0]); cfg_free(&c); return 0;
 *   case CFG_EXIT_VERSION: cfg_print_version(stdout); ...
 *   case CFG_EXIT_PRINT: cfg_print_conf(stdout, &c); ...
 *   case CFG_EXIT_DOCS: cfg_print_markdown(stdout); ...
 *   }
 *   cfg_print_warnings(stderr, &c);      (oversubscribed cores, token on the command line)
 *   ... cfg_print_effective(log, &c) at debug level ...
 *   cfg_free(&c);
 *
 * Depends on libc only. Never exits, never prints except to a FILE* it is given.
 */
#ifndef RELUD_CFG_H
#define RELUD_CFG_H

#include <stddef.h>
#include <stdio.h>

#define RELUD_VERSION "0.1.0"
#define CFG_ERR_LEN 512 /* enough for any cfg_load message */
#define CFG_OPT_MAX 48  /* capacity of struct cfg.origin; cfg.c checks the table fits */

enum cfg_log_level {
    CFG_LOG_ERROR,
    CFG_LOG_WARN,
    CFG_LOG_INFO,
    CFG_LOG_DEBUG,
    CFG_LOG_LEVEL_COUNT
};
enum cfg_log_format { CFG_LOG_TEXT, CFG_LOG_JSON, CFG_LOG_FORMAT_COUNT };
/* "error", "warn", "info", "debug" / "text", "json"; NULL-terminated. */
extern const char *const cfg_log_level_names[CFG_LOG_LEVEL_COUNT + 1];
extern const char *const cfg_log_format_names[CFG_LOG_FORMAT_COUNT + 1];

/* Where an option's value came from (struct cfg.origin[i], i = index in cfg_options). */
enum cfg_source {
    CFG_SRC_DEFAULT,
    CFG_SRC_FILE,       /* the config file; origin.line is the line */
    CFG_SRC_ENV,        /* RELUD_<NAME> */
    CFG_SRC_FLAG,       /* --name */
    CFG_SRC_TOKEN_FILE, /* admin_token, read from admin_token_file */
    CFG_SOURCE_COUNT
};
struct cfg_origin {
    unsigned char source; /* enum cfg_source */
    int line;             /* CFG_SRC_FILE: 1-based line in cfg.config_path */
};

struct cfg {
    /* listening */
    char *host; /* never NULL after cfg_defaults */
    int port;   /* 0..65535; 0 = any free port */
    /* CPU */
    int threads;       /* >= 1 after load: 0 in a source is resolved to `cores` */
    int blas_threads;  /* >= 1 */
    int batch_workers; /* 0 = cores / blas_threads, at least 1 (resolved by the server) */
    char *blas_core;   /* "auto", "keep" or an OpenBLAS kernel name (server/blas.h) */
    /* models */
    char *model_dir; /* never NULL, never empty */
    int strict_models;
    /* request limits */
    size_t max_body_bytes;
    size_t max_model_bytes;    /* PUT /v1/models/{name} instead of max_body_bytes */
    size_t max_buffered_bytes; /* all bodies being received, together; 0 = no limit */
    size_t max_json_values;
    size_t max_tensor_elements;
    int max_layers;
    size_t max_workspace_bytes;
    /* connections */
    int linger_timeout;      /* seconds an early-refused body is read and dropped */
    size_t linger_bytes;     /* and at most this many bytes */
    size_t max_header_bytes; /* libmicrohttpd's per-connection memory */
    int connection_limit;
    int per_ip_connection_limit; /* 0 = no limit */
    int connection_timeout;      /* seconds of inactivity, >= 1 */
    int drain_timeout;           /* seconds, 0 = exit at once */
    /* logging */
    int log_level;  /* enum cfg_log_level */
    int log_format; /* enum cfg_log_format */
    int access_log;
    /* HTTPS */
    char *tls_cert_file, *tls_key_file, *tls_client_ca_file; /* never NULL; "" none */
    char *tls_priorities;
    /* compression */
    size_t gzip_min_bytes; /* 0 = never compress replies */
    int gzip_level;
    /* inference access */
    char *api_keys_file; /* never NULL; "" none */
    int metrics_need_key;
    /* browsers */
    char *cors_origins; /* never NULL; "" none, "*" any, or "scheme://host[:port],..." */
    /* admin */
    char *admin_token;      /* never NULL; "" = admin endpoints answer 403. A secret. */
    char *admin_token_file; /* never NULL; "" = none. Already read into admin_token by cfg_load. */
    /* training jobs */
    int max_train_jobs; /* workers; 0 = training disabled */
    int max_train_queue;
    size_t max_train_steps;
    int max_train_seconds;
    size_t max_train_bytes;      /* one job's memory */
    size_t max_train_body_bytes; /* <= max_body_bytes in effect */
    int train_history;           /* entries per job */
    int train_jobs_kept;         /* finished jobs listed */

    /* Filled by cfg_defaults/cfg_load, not options: */
    char *config_path; /* the file read, or NULL */
    char *ignored_env; /* "RELUD_X, RELUD_Y": RELUD_* variables that are no option, or NULL */
    int cores;         /* online CPUs (sysconf), >= 1 */
    int threads_auto;  /* threads was 0 and was set to cores */
    struct cfg_origin origin[CFG_OPT_MAX];
};

enum cfg_result {
    CFG_OK,
    CFG_ERROR,        /* err holds the message, without a "relud: " prefix */
    CFG_EXIT_HELP,    /* -h/--help: print cfg_print_help, exit 0 */
    CFG_EXIT_VERSION, /* --version: print cfg_print_version, exit 0 */
    CFG_EXIT_PRINT,   /* --print-config: print cfg_print_conf(loaded config), exit 0 */
    CFG_EXIT_DOCS,    /* --print-docs: print cfg_print_markdown, exit 0 */
    CFG_RESULT_COUNT
};

/* Every option at its default; threads resolved to the cores. Aborts only on out-of-memory. */
void cfg_defaults(struct cfg *c);

/* c must hold cfg_defaults (or an earlier load); the sources are applied over it. Whatever
 * the result, release it with cfg_free.
 * argv[0] is the program name. envp: NULL-terminated "NAME=value" array (pass environ; NULL =
 * empty). A RELUD_* variable that is a near miss of an option is an error (a typo); others
 * are listed in ignored_env (cfg_print_warnings reports them), except RELUD_CONFIG and the
 * Kubernetes service-link variables (RELUD_SERVICE_*, RELUD_PORT_<n>_*), ignored silently.
 * err/errlen: caller's buffer (CFG_ERR_LEN is enough); always NUL-terminated when errlen > 0. */
enum cfg_result cfg_load(struct cfg *c, int argc, char **argv, char **envp, char *err,
                         size_t errlen);

/* Frees the strings and leaves c empty; cfg_free(NULL) and a second cfg_free are no-ops. */
void cfg_free(struct cfg *c);

void cfg_print_help(FILE *f, const char *prog);
void cfg_print_version(FILE *f); /* "relud 0.1.0" */
/* A relud.conf with every option, its help as a comment. With cfg_defaults it is byte for byte
 * config/relud.conf (threads auto is written as 0). Secrets are written as "". */
void cfg_print_conf(FILE *f, const struct cfg *c);
/* docs/configuration.md: intro, the option table (option, flag, env, default, help), threads. */
void cfg_print_markdown(FILE *f);
/* One line per option, "name = value (source)"; secrets masked as "***". */
void cfg_print_effective(FILE *f, const struct cfg *c);
/* "relud: warning: ..." lines for legal but doubtful settings (threads * blas_threads over the
 * cores, ignored RELUD_* variables, a token given as a flag); returns how many. */
int cfg_print_warnings(FILE *f, const struct cfg *c);

/* ---- The option table, exposed for tests and tools. ---- */
enum cfg_type {
    CFG_T_STRING,  /* char *; quoted in relud.conf */
    CFG_T_PATH,    /* char *; a file or directory, relative to the working directory */
    CFG_T_INT,     /* int within [min, max] */
    CFG_T_SECONDS, /* int within [min, max]; "30" or "30s" */
    CFG_T_BOOL,    /* int 0/1; true/false, yes/no, on/off, 1/0 */
    CFG_T_ENUM,    /* int index into values[] */
    CFG_T_SIZE,    /* size_t bytes; "64MiB", units of 1024: B, K/KB/KiB, M.., G.., T.. */
    CFG_T_UINT,    /* size_t count within [min, max] */
    CFG_TYPE_COUNT
};
extern const char *const cfg_type_names[CFG_TYPE_COUNT]; /* "string", "path", ... */

enum cfg_opt_flags {
    CFG_F_SECRET = 1,   /* never printed: --print-config writes "", effective dump "***" */
    CFG_F_NONEMPTY = 2, /* a string that must not be empty */
};

struct cfg_option {
    const char *name; /* file key; env RELUD_<NAME upper>; flag --<name, _ as -> */
    enum cfg_type type;
    size_t offset;             /* of the field in struct cfg */
    const char *def;           /* default as written in relud.conf (parsed by cfg_defaults) */
    long long min, max;        /* numeric bounds, inclusive */
    const char *const *values; /* CFG_T_ENUM: names by stored value, NULL-terminated */
    unsigned flags;            /* enum cfg_opt_flags */
    const char *help;          /* one paragraph; printers wrap it */
};
extern const struct cfg_option cfg_options[];
extern const size_t cfg_option_count;

const struct cfg_option *cfg_option_find(const char *name); /* by file key, or NULL */
/* "--max-body-bytes" / "RELUD_MAX_BODY_BYTES" into buf (64 bytes is enough). */
void cfg_option_flag(const struct cfg_option *o, char *buf, size_t len);
void cfg_option_env(const struct cfg_option *o, char *buf, size_t len);

#endif
