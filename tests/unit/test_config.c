/* config/: the option table, its four sources, its printers, and the committed files it
 * generates (config/relud.conf, docs/configuration.md). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "config/cfg.h"

/* ---- helpers ---- */

/* cfg_load with argv = "relud" + args (NULL-terminated) and env (NULL-terminated, or NULL). */
static enum cfg_result t_load(struct cfg *c, const char *const *args, const char *const *env,
                              char *err)
{
    char *argv[64] = {"relud"};
    int argc = 1;
    for (; args && args[argc - 1]; argc++) {
        assert_true(argc < 63);
        argv[argc] = (char *)args[argc - 1];
    }
    argv[argc] = NULL;
    cfg_defaults(c);
    return cfg_load(c, argc, argv, (char **)env, err, CFG_ERR_LEN);
}

/* Loads, expects CFG_ERROR with exactly msg. */
static void t_expect_error(const char *const *args, const char *const *env, const char *msg)
{
    struct cfg c;
    char err[CFG_ERR_LEN];
    assert_int_equal(t_load(&c, args, env, err), CFG_ERROR);
    assert_string_equal(err, msg);
    cfg_free(&c);
}

/* Writes text to a fresh temporary file; returns its path (static buffer per slot). */
static const char *t_file(int slot, const char *text)
{
    static char paths[4][64];
    snprintf(paths[slot], sizeof paths[slot], "/tmp/relud-test-config-XXXXXX");
    int fd = mkstemp(paths[slot]);
    assert_true(fd >= 0);
    size_t n = strlen(text);
    assert_int_equal(write(fd, text, n), (ssize_t)n);
    close(fd);
    return paths[slot];
}

/* Everything a printer writes, as a malloc'd string. */
typedef void (*t_printer)(FILE *f, const struct cfg *c);
static char *t_print(t_printer p, const struct cfg *c)
{
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    assert_non_null(f);
    p(f, c);
    fclose(f);
    return buf;
}
static void t_conf(FILE *f, const struct cfg *c) { cfg_print_conf(f, c); }
static void t_effective(FILE *f, const struct cfg *c) { cfg_print_effective(f, c); }
static void t_markdown(FILE *f, const struct cfg *c) { (void)c, cfg_print_markdown(f); }
static void t_help(FILE *f, const struct cfg *c) { (void)c, cfg_print_help(f, "relud"); }
static void t_warnings(FILE *f, const struct cfg *c) { cfg_print_warnings(f, c); }

/* A committed file of the repository, found from the working directory (the repo root,
 * or build/tests, build/asan/tests). */
static char *t_repo_file(const char *rel)
{
    static const char *const ups[] = {"", "../", "../../", "../../../"};
    for (size_t i = 0; i < sizeof ups / sizeof ups[0]; i++) {
        char path[256];
        snprintf(path, sizeof path, "%s%s", ups[i], rel);
        FILE *f = fopen(path, "rb");
        if (!f)
            continue;
        char *buf = NULL;
        size_t len = 0;
        FILE *m = open_memstream(&buf, &len);
        char chunk[4096];
        size_t n;
        while ((n = fread(chunk, 1, sizeof chunk, f)) > 0)
            fwrite(chunk, 1, n, m);
        fclose(f);
        fclose(m);
        return buf;
    }
    fail_msg("%s not found: run the test from the repository root", rel);
    return NULL;
}

/* ---- the table ---- */

static void test_table_is_well_formed(void **state)
{
    (void)state;
    assert_true(cfg_option_count > 0 && cfg_option_count <= CFG_OPT_MAX);
    for (size_t i = 0; i < cfg_option_count; i++) {
        const struct cfg_option *o = &cfg_options[i];
        assert_non_null(o->name);
        for (const char *p = o->name; *p; p++)
            assert_true(islower((unsigned char)*p) || *p == '_');
        assert_ptr_equal(cfg_option_find(o->name), o);
        assert_true(o->help && strlen(o->help) > 20);
        assert_non_null(o->def);
        assert_true(o->type < CFG_TYPE_COUNT);
        assert_true(o->min <= o->max);
        assert_true((o->type == CFG_T_ENUM) == (o->values != NULL));
        for (size_t j = 0; j < i; j++)
            assert_string_not_equal(cfg_options[j].name, o->name);
    }
    assert_null(cfg_option_find("nope"));
    char buf[64];
    cfg_option_flag(cfg_option_find("max_body_bytes"), buf, sizeof buf);
    assert_string_equal(buf, "--max-body-bytes");
    cfg_option_env(cfg_option_find("max_body_bytes"), buf, sizeof buf);
    assert_string_equal(buf, "RELUD_MAX_BODY_BYTES");
}

/* ---- defaults ---- */

static void test_defaults(void **state)
{
    (void)state;
    struct cfg c;
    cfg_defaults(&c);
    long cores = sysconf(_SC_NPROCESSORS_ONLN);
    assert_string_equal(c.host, "127.0.0.1");
    assert_int_equal(c.port, 8080);
    assert_int_equal(c.threads, cores);
    assert_int_equal(c.cores, cores);
    assert_true(c.threads_auto);
    assert_int_equal(c.blas_threads, 1);
    assert_string_equal(c.model_dir, "config/models");
    assert_int_equal(c.strict_models, 0);
    assert_int_equal(c.max_body_bytes, 64u << 20);
    assert_int_equal(c.max_buffered_bytes, (size_t)1 << 30);
    assert_int_equal(c.max_tensor_elements, 16777216);
    assert_int_equal(c.max_layers, 256);
    assert_int_equal(c.max_workspace_bytes, (size_t)1 << 30);
    assert_int_equal(c.connection_limit, 1024);
    assert_int_equal(c.per_ip_connection_limit, 0);
    assert_int_equal(c.connection_timeout, 30);
    assert_int_equal(c.drain_timeout, 30);
    assert_int_equal(c.log_level, CFG_LOG_INFO);
    assert_int_equal(c.log_format, CFG_LOG_TEXT);
    assert_int_equal(c.access_log, 1);
    assert_string_equal(c.admin_token, "");
    assert_string_equal(c.admin_token_file, "");
    assert_null(c.config_path);
    for (size_t i = 0; i < cfg_option_count; i++)
        assert_int_equal(c.origin[i].source, CFG_SRC_DEFAULT);
    cfg_free(&c);
    assert_null(c.host);
    cfg_free(&c); /* twice: no-op */
    cfg_free(NULL);
}

static void test_load_without_sources_is_defaults(void **state)
{
    (void)state;
    struct cfg c, d;
    char err[CFG_ERR_LEN];
    assert_int_equal(t_load(&c, NULL, NULL, err), CFG_OK);
    assert_string_equal(err, "");
    cfg_defaults(&d);
    char *a = t_print(t_effective, &c), *b = t_print(t_effective, &d);
    assert_string_equal(a, b);
    free(a);
    free(b);
    cfg_free(&c);
    cfg_free(&d);
}

/* ---- sources and precedence ---- */

static void test_file_values_and_origin(void **state)
{
    (void)state;
    const char *path = t_file(0, "# comment\n"
                                 "\n"
                                 "host = 0.0.0.0\n"
                                 "  port=9000   # trailing comment\n"
                                 "max_body_bytes = 128MiB\n"
                                 "log_level = debug\n"
                                 "strict_models = yes\n"
                                 "model_dir = \"/srv/models dir\"\r\n");
    struct cfg c;
    char err[CFG_ERR_LEN];
    const char *args[] = {"--config", path, NULL};
    assert_int_equal(t_load(&c, args, NULL, err), CFG_OK);
    assert_string_equal(c.host, "0.0.0.0");
    assert_int_equal(c.port, 9000);
    assert_int_equal(c.max_body_bytes, 128u << 20);
    assert_int_equal(c.log_level, CFG_LOG_DEBUG);
    assert_int_equal(c.strict_models, 1);
    assert_string_equal(c.model_dir, "/srv/models dir");
    assert_string_equal(c.config_path, path);
    size_t port = (size_t)(cfg_option_find("port") - cfg_options);
    assert_int_equal(c.origin[port].source, CFG_SRC_FILE);
    assert_int_equal(c.origin[port].line, 4);
    char *eff = t_print(t_effective, &c), want[128];
    snprintf(want, sizeof want, "port = 9000 (%s:4)\n", path);
    assert_non_null(strstr(eff, want));
    assert_non_null(strstr(eff, "drain_timeout = 30 (default)\n"));
    free(eff);
    cfg_free(&c);
    unlink(path);
}

static void test_precedence_flag_env_file_default(void **state)
{
    (void)state;
    const char *path = t_file(0, "port = 1\nhost = filehost\nmax_layers = 10\nlog_level = warn\n");
    char cfgenv[128];
    snprintf(cfgenv, sizeof cfgenv, "RELUD_CONFIG=%s", path);
    const char *env[] = {cfgenv, "RELUD_PORT=2", "RELUD_MAX_LAYERS=20", "PATH=/bin", NULL};
    const char *args[] = {"--port", "3", NULL};
    struct cfg c;
    char err[CFG_ERR_LEN];
    assert_int_equal(t_load(&c, args, env, err), CFG_OK);
    assert_int_equal(c.port, 3);              /* flag > env > file */
    assert_int_equal(c.max_layers, 20);       /* env > file */
    assert_string_equal(c.host, "filehost");  /* file > default */
    assert_int_equal(c.log_level, CFG_LOG_WARN);
    assert_int_equal(c.connection_limit, 1024); /* default */
    char *eff = t_print(t_effective, &c);
    assert_non_null(strstr(eff, "port = 3 (--port)\n"));
    assert_non_null(strstr(eff, "max_layers = 20 (env RELUD_MAX_LAYERS)\n"));
    free(eff);
    cfg_free(&c);

    assert_int_equal(t_load(&c, NULL, env, err), CFG_OK);
    assert_int_equal(c.port, 2);
    cfg_free(&c);

    /* --config beats RELUD_CONFIG */
    const char *path2 = t_file(1, "port = 4\n");
    const char *args2[] = {"--config", path2, NULL};
    assert_int_equal(t_load(&c, args2, (const char *const[]){cfgenv, NULL}, err), CFG_OK);
    assert_int_equal(c.port, 4);
    assert_string_equal(c.host, "127.0.0.1");
    cfg_free(&c);
    unlink(path);
    unlink(path2);
}

static void test_flag_forms(void **state)
{
    (void)state;
    struct cfg c;
    char err[CFG_ERR_LEN];
    const char *a1[] = {"--port=81", "--log-format", "json", "--strict-models", "--no-access-log",
                        "--max-workspace-bytes=2GiB", NULL};
    assert_int_equal(t_load(&c, a1, NULL, err), CFG_OK);
    assert_int_equal(c.port, 81);
    assert_int_equal(c.log_format, CFG_LOG_JSON);
    assert_int_equal(c.strict_models, 1);
    assert_int_equal(c.access_log, 0);
    assert_int_equal(c.max_workspace_bytes, (size_t)2 << 30);
    cfg_free(&c);
    /* a bare boolean flag is true; the next argument, not a boolean word, stays an option */
    const char *a2[] = {"--strict-models=false", "--access-log", "--port", "82", NULL};
    assert_int_equal(t_load(&c, a2, NULL, err), CFG_OK);
    assert_int_equal(c.strict_models, 0);
    assert_int_equal(c.access_log, 1);
    assert_int_equal(c.port, 82);
    cfg_free(&c);
    /* "--access-log false" works as "--access-log=false" does (a boolean word after a
       boolean flag is its value) */
    const char *a4[] = {"--access-log", "false", "--strict-models", "yes", "--port", "83", NULL};
    assert_int_equal(t_load(&c, a4, NULL, err), CFG_OK);
    assert_int_equal(c.access_log, 0);
    assert_int_equal(c.strict_models, 1);
    assert_int_equal(c.port, 83);
    cfg_free(&c);
    /* last flag wins; a value may start with "--" after '=' */
    const char *a3[] = {"--port", "1", "--port", "2", "--admin-token=--x", NULL};
    assert_int_equal(t_load(&c, a3, NULL, err), CFG_OK);
    assert_int_equal(c.port, 2);
    assert_string_equal(c.admin_token, "--x");
    cfg_free(&c);
}

static void test_threads_resolution(void **state)
{
    (void)state;
    struct cfg c;
    char err[CFG_ERR_LEN];
    assert_int_equal(t_load(&c, (const char *const[]){"--threads", "3", NULL}, NULL, err), CFG_OK);
    assert_int_equal(c.threads, 3);
    assert_false(c.threads_auto);
    char *conf = t_print(t_conf, &c);
    assert_non_null(strstr(conf, "\nthreads = 3\n"));
    free(conf);
    cfg_free(&c);
    assert_int_equal(t_load(&c, (const char *const[]){"--threads=0", NULL}, NULL, err), CFG_OK);
    assert_int_equal(c.threads, sysconf(_SC_NPROCESSORS_ONLN));
    assert_true(c.threads_auto);
    conf = t_print(t_conf, &c);
    assert_non_null(strstr(conf, "\nthreads = 0\n"));
    free(conf);
    cfg_free(&c);
}

/* ---- values of every type ---- */

static size_t t_size(const char *v)
{
    struct cfg c;
    char err[CFG_ERR_LEN];
    const char *args[] = {"--max-workspace-bytes", v, NULL};
    enum cfg_result r = t_load(&c, args, NULL, err);
    if (r != CFG_OK)
        fail_msg("%s: %s", v, err);
    size_t got = c.max_workspace_bytes;
    cfg_free(&c);
    return got;
}

static void test_size_suffixes(void **state)
{
    (void)state;
    assert_int_equal(t_size("1024"), 1024);
    assert_int_equal(t_size("1024 bytes"), 1024);
    assert_int_equal(t_size("2048B"), 2048);
    assert_int_equal(t_size("512KiB"), 512u << 10);
    assert_int_equal(t_size("512k"), 512u << 10);
    assert_int_equal(t_size("512KB"), 512u << 10);
    assert_int_equal(t_size("64MiB"), 64u << 20);
    assert_int_equal(t_size("64 mib"), 64u << 20);
    assert_int_equal(t_size(" 64M "), 64u << 20);
    assert_int_equal(t_size("1GiB"), (size_t)1 << 30);
    assert_int_equal(t_size("3g"), (size_t)3 << 30);
    assert_int_equal(t_size("1TiB"), (size_t)1 << 40);
    assert_int_equal(t_size("1099511627776"), (size_t)1 << 40);
    /* the printer writes the largest exact unit, and reads back */
    struct cfg c;
    char err[CFG_ERR_LEN];
    const char *args[] = {"--max-body-bytes", "1536KiB", "--max-workspace-bytes", "1025", NULL};
    assert_int_equal(t_load(&c, args, NULL, err), CFG_OK);
    char *conf = t_print(t_conf, &c);
    assert_non_null(strstr(conf, "\nmax_body_bytes = 1536KiB\n"));
    assert_non_null(strstr(conf, "\nmax_workspace_bytes = 1025\n"));
    free(conf);
    cfg_free(&c);
}

static void test_size_errors(void **state)
{
    (void)state;
    t_expect_error((const char *const[]){"--max-body-bytes", "18446744073709551616", NULL}, NULL,
                   "max_body_bytes: \"18446744073709551616\" is too large (from --max-body-bytes)");
    t_expect_error((const char *const[]){"--max-body-bytes", "99999999TiB", NULL}, NULL,
                   "max_body_bytes: \"99999999TiB\" is too large (from --max-body-bytes)");
    t_expect_error((const char *const[]){"--max-body-bytes", "18446744073709551615", NULL}, NULL,
                   "max_body_bytes: \"18446744073709551615\" is out of range 1KiB..64GiB (from "
                   "--max-body-bytes)");
    t_expect_error((const char *const[]){"--max-body-bytes=100", NULL}, NULL,
                   "max_body_bytes: \"100\" is out of range 1KiB..64GiB (from --max-body-bytes)");
    t_expect_error((const char *const[]){"--max-body-bytes", "1.5GiB", NULL}, NULL,
                   "max_body_bytes: \"1.5GiB\" has an unknown unit \".5GiB\" (use bytes, KiB, "
                   "MiB, GiB or TiB) (from --max-body-bytes)");
    t_expect_error((const char *const[]){"--max-body-bytes", "-1", NULL}, NULL,
                   "max_body_bytes: \"-1\" is not a size: use an integer with an optional unit, "
                   "e.g. 512KiB, 64MiB, 1GiB (from --max-body-bytes)");
    t_expect_error((const char *const[]){"--max-body-bytes", "", NULL}, NULL,
                   "max_body_bytes: \"\" is not a size: use an integer with an optional unit, "
                   "e.g. 512KiB, 64MiB, 1GiB (from --max-body-bytes)");
    /* the brief's example, from a file: names the option, the value, the file and line */
    const char *path = t_file(0, "# limits\nmax_body_bytes = 12 PB\n");
    char want[256];
    snprintf(want, sizeof want,
             "max_body_bytes: \"12 PB\" has an unknown unit \"PB\" (use bytes, KiB, MiB, GiB or "
             "TiB) (from %s:2)",
             path);
    t_expect_error((const char *const[]){"--config", path, NULL}, NULL, want);
    unlink(path);
    /* counts take no units */
    t_expect_error((const char *const[]){"--max-tensor-elements", "16M", NULL}, NULL,
                   "max_tensor_elements: \"16M\" is not a whole number (from "
                   "--max-tensor-elements)");
    t_expect_error((const char *const[]){"--max-tensor-elements", "0", NULL}, NULL,
                   "max_tensor_elements: \"0\" is out of range 1..68719476736 (from "
                   "--max-tensor-elements)");
}

static void test_int_errors_name_option_and_source(void **state)
{
    (void)state;
    t_expect_error((const char *const[]){"--port", "80x", NULL}, NULL,
                   "port: \"80x\" is not an integer (from --port)");
    t_expect_error((const char *const[]){"--port=70000", NULL}, NULL,
                   "port: 70000 is out of range 0..65535 (from --port)");
    t_expect_error((const char *const[]){"--port=-1", NULL}, NULL,
                   "port: -1 is out of range 0..65535 (from --port)");
    t_expect_error((const char *const[]){"--port=99999999999999999999", NULL}, NULL,
                   "port: \"99999999999999999999\" is out of range 0..65535 (from --port)");
    t_expect_error(NULL, (const char *const[]){"RELUD_PORT=", NULL},
                   "port: \"\" is not an integer (from env RELUD_PORT)");
    t_expect_error(NULL, (const char *const[]){"RELUD_BLAS_THREADS=0", NULL},
                   "blas_threads: 0 is out of range 1..1024 (from env RELUD_BLAS_THREADS)");
    const char *path = t_file(0, "port = 8080\nmax_layers = lots\n");
    char want[256];
    snprintf(want, sizeof want, "max_layers: \"lots\" is not an integer (from %s:2)", path);
    t_expect_error((const char *const[]){"--config", path, NULL}, NULL, want);
    unlink(path);
}

static void test_seconds(void **state)
{
    (void)state;
    struct cfg c;
    char err[CFG_ERR_LEN];
    const char *args[] = {"--connection-timeout", "10s", "--drain-timeout", "0", NULL};
    assert_int_equal(t_load(&c, args, NULL, err), CFG_OK);
    assert_int_equal(c.connection_timeout, 10);
    assert_int_equal(c.drain_timeout, 0);
    cfg_free(&c);
    t_expect_error((const char *const[]){"--connection-timeout", "0", NULL}, NULL,
                   "connection_timeout: 0 is out of range 1..86400 seconds (from "
                   "--connection-timeout)");
    t_expect_error((const char *const[]){"--drain-timeout", "5m", NULL}, NULL,
                   "drain_timeout: \"5m\" is not a number of seconds (from --drain-timeout)");
}

static void test_bool_forms(void **state)
{
    (void)state;
    static const struct {
        const char *text;
        int value;
    } forms[] = {{"true", 1}, {"TRUE", 1}, {"yes", 1}, {"on", 1},   {"1", 1},
                 {"false", 0}, {"False", 0}, {"no", 0}, {"off", 0}, {"0", 0}};
    for (size_t i = 0; i < sizeof forms / sizeof forms[0]; i++) {
        char env[64];
        snprintf(env, sizeof env, "RELUD_STRICT_MODELS=%s", forms[i].text);
        struct cfg c;
        char err[CFG_ERR_LEN];
        assert_int_equal(t_load(&c, NULL, (const char *const[]){env, NULL}, err), CFG_OK);
        assert_int_equal(c.strict_models, forms[i].value);
        cfg_free(&c);
    }
    t_expect_error((const char *const[]){"--strict-models=maybe", NULL}, NULL,
                   "strict_models: \"maybe\" is not a boolean (use true or false) (from "
                   "--strict-models)");
    t_expect_error((const char *const[]){"--no-port", NULL}, NULL,
                   "\"--no-port\": --no- is only for true/false options, not port");
}

static void test_enums(void **state)
{
    (void)state;
    struct cfg c;
    char err[CFG_ERR_LEN];
    for (int i = 0; i < CFG_LOG_LEVEL_COUNT; i++) {
        const char *args[] = {"--log-level", cfg_log_level_names[i], NULL};
        assert_int_equal(t_load(&c, args, NULL, err), CFG_OK);
        assert_int_equal(c.log_level, i);
        cfg_free(&c);
    }
    t_expect_error((const char *const[]){"--log-level", "verbose", NULL}, NULL,
                   "log_level: \"verbose\" is not one of: error, warn, info, debug (from "
                   "--log-level)");
    t_expect_error((const char *const[]){"--log-format=xml", NULL}, NULL,
                   "log_format: \"xml\" is not one of: text, json (from --log-format)");
}

static void test_strings(void **state)
{
    (void)state;
    t_expect_error((const char *const[]){"--host=", NULL}, NULL,
                   "host: must not be empty (from --host)");
    t_expect_error(NULL, (const char *const[]){"RELUD_MODEL_DIR=", NULL},
                   "model_dir: must not be empty (from env RELUD_MODEL_DIR)");
    /* values in messages are escaped and cut */
    t_expect_error((const char *const[]){"--port", "1\n2", NULL}, NULL,
                   "port: \"1\\x0a2\" is not an integer (from --port)");
}

/* ---- the file's syntax ---- */

static void test_file_quoted_strings_and_comments(void **state)
{
    (void)state;
    const char *path = t_file(0, "admin_token = \"a#b \\\"q\\\" c\\\\\"   # the token\n"
                                 "model_dir = models#1   # '#' after a space starts a comment\n"
                                 "host = \" spaced \"\n"
                                 "admin_token_file =\n"
                                 "log_format = \"json\"\n");
    struct cfg c;
    char err[CFG_ERR_LEN];
    assert_int_equal(t_load(&c, (const char *const[]){"--config", path, NULL}, NULL, err),
                     CFG_OK);
    assert_string_equal(c.admin_token, "a#b \"q\" c\\");
    assert_string_equal(c.model_dir, "models#1");
    assert_string_equal(c.host, " spaced ");
    assert_string_equal(c.admin_token_file, "");
    assert_int_equal(c.log_format, CFG_LOG_JSON);
    cfg_free(&c);
    unlink(path);
}

static void test_file_syntax_errors(void **state)
{
    (void)state;
    static const struct {
        const char *text, *msg; /* msg: "%s" is the path */
    } cases[] = {
        {"port 8080\n", "expected \"name = value\", got \"port 8080\" (from %s:1)"},
        {"\n= 1\n", "expected \"name = value\", got \"= 1\" (from %s:2)"},
        {"host = \"abc\n", "missing closing quote (from %s:1)"},
        {"host = \"abc\" def\n", "unexpected text after the closing quote (from %s:1)"},
        {"port = 1\n# again\nport = 2\n", "port: set twice, first on line 1 (from %s:3)"},
        {"prot = 1\n", "unknown option \"prot\" (from %s:1); did you mean \"port\"?"},
        {"max-body-bytes = 1MiB\n",
         "unknown option \"max-body-bytes\" (from %s:1); did you mean \"max_body_bytes\"?"},
        {"frobnicate = 1\n", "unknown option \"frobnicate\" (from %s:1)"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        const char *path = t_file(0, cases[i].text);
        char want[256];
        snprintf(want, sizeof want, cases[i].msg, path);
        t_expect_error((const char *const[]){"--config", path, NULL}, NULL, want);
        unlink(path);
    }
}

static void test_missing_config_file(void **state)
{
    (void)state;
    t_expect_error((const char *const[]){"--config", "/nonexistent/relud.conf", NULL}, NULL,
                   "cannot read config file \"/nonexistent/relud.conf\": No such file or "
                   "directory (from --config)");
    t_expect_error(NULL, (const char *const[]){"RELUD_CONFIG=/nonexistent/x.conf", NULL},
                   "cannot read config file \"/nonexistent/x.conf\": No such file or directory "
                   "(from env RELUD_CONFIG)");
    t_expect_error((const char *const[]){"--config", "/tmp", NULL}, NULL,
                   "cannot read config file \"/tmp\": Is a directory (from --config)");
    t_expect_error((const char *const[]){"--config", NULL}, NULL, "--config needs a file name");
    /* an empty RELUD_CONFIG means no file */
    struct cfg c;
    char err[CFG_ERR_LEN];
    assert_int_equal(t_load(&c, NULL, (const char *const[]){"RELUD_CONFIG=", NULL}, err), CFG_OK);
    assert_null(c.config_path);
    cfg_free(&c);
}

/* ---- unknown names ---- */

static void test_unknown_flags_and_arguments(void **state)
{
    (void)state;
    t_expect_error((const char *const[]){"--prot", "1", NULL}, NULL,
                   "unknown option \"--prot\"; did you mean --port?");
    t_expect_error((const char *const[]){"--max_body_bytes=1MiB", NULL}, NULL,
                   "unknown option \"--max_body_bytes\"; did you mean --max-body-bytes?");
    t_expect_error((const char *const[]){"--frobnicate", NULL}, NULL,
                   "unknown option \"--frobnicate\"");
    t_expect_error((const char *const[]){"serve", NULL}, NULL,
                   "unexpected argument \"serve\": options are --name value (see --help)");
    t_expect_error((const char *const[]){"-p", "1", NULL}, NULL,
                   "unexpected argument \"-p\": options are --name value (see --help)");
    t_expect_error((const char *const[]){"--port", NULL}, NULL,
                   "--port needs a value (--port=VALUE for a value starting with --)");
    t_expect_error((const char *const[]){"--host", "--port", "1", NULL}, NULL,
                   "--host needs a value (--host=VALUE for a value starting with --)");
}

static void test_unknown_env(void **state)
{
    (void)state;
    /* near misses of an option are typos: errors */
    t_expect_error(NULL, (const char *const[]){"HOME=/root", "RELUD_PROT=1", NULL},
                   "unknown environment variable RELUD_PROT (from the environment); did you "
                   "mean RELUD_PORT?");
    t_expect_error(NULL, (const char *const[]){"RELUD_port=1", NULL},
                   "unknown environment variable RELUD_port (from the environment); did you "
                   "mean RELUD_PORT?");
    t_expect_error(NULL, (const char *const[]){"RELUD_MAX_BODY_BYTE=1MiB", NULL},
                   "unknown environment variable RELUD_MAX_BODY_BYTE (from the environment); "
                   "did you mean RELUD_MAX_BODY_BYTES?");
    t_expect_error(NULL, (const char *const[]){"RELUD_DRAIN_TIMOUT=1", NULL},
                   "unknown environment variable RELUD_DRAIN_TIMOUT (from the environment); did "
                   "you mean RELUD_DRAIN_TIMEOUT?");
    t_expect_error(NULL, (const char *const[]){"RELUD_PORT=tcp://10.0.0.1:8080", NULL},
                   "port: \"tcp://10.0.0.1:8080\" looks like a Kubernetes service link, not a "
                   "port (from env RELUD_PORT): set enableServiceLinks: false in the pod spec, "
                   "or name the Service something other than relud");
    /* ignored silently: not RELUD_*, RELUD_CONFIG, Kubernetes service links */
    struct cfg c;
    char err[CFG_ERR_LEN];
    const char *env[] = {"RELUD=build/relud",
                         "RELUDX=1",
                         "RELUD_SERVICE_HOST=10.0.0.1",
                         "RELUD_SERVICE_PORT=8080",
                         "RELUD_SERVICE_PORT_HTTP=8080",
                         "RELUD_PORT_8080_TCP=tcp://10.0.0.1:8080",
                         "RELUD_PORT_8080_TCP_ADDR=10.0.0.1",
                         "NOEQUALS",
                         NULL};
    assert_int_equal(t_load(&c, NULL, env, err), CFG_OK);
    assert_int_equal(c.port, 8080);
    assert_null(c.ignored_env);
    cfg_free(&c);
    /* other RELUD_* variables (the test suite's, compose's) are someone else's: a warning */
    const char *env2[] = {"RELUD_ROOT=/src", "RELUD_SHARED_GOLDEN=/g", "RELUD_LB_PORT=9000",
                          "RELUD_MODELS=./m", NULL};
    assert_int_equal(t_load(&c, NULL, env2, err), CFG_OK);
    assert_string_equal(c.ignored_env,
                        "RELUD_ROOT, RELUD_SHARED_GOLDEN, RELUD_LB_PORT, RELUD_MODELS");
    char *warn = t_print(t_warnings, &c);
    assert_non_null(strstr(warn, "relud: warning: ignoring environment variables that are not "
                                 "relud options: RELUD_ROOT, RELUD_SHARED_GOLDEN, RELUD_LB_PORT, "
                                 "RELUD_MODELS\n"));
    free(warn);
    cfg_free(&c);
}

/* ---- meta flags ---- */

static void test_meta_flags(void **state)
{
    (void)state;
    static const struct {
        const char *flag;
        enum cfg_result r;
    } cases[] = {{"-h", CFG_EXIT_HELP},
                 {"--help", CFG_EXIT_HELP},
                 {"--version", CFG_EXIT_VERSION},
                 {"--print-config", CFG_EXIT_PRINT},
                 {"--print-docs", CFG_EXIT_DOCS}};
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        struct cfg c;
        char err[CFG_ERR_LEN];
        assert_int_equal(t_load(&c, (const char *const[]){cases[i].flag, NULL}, NULL, err),
                         cases[i].r);
        cfg_free(&c);
    }
    /* help and version win over bad flags, a missing file and bad env */
    struct cfg c;
    char err[CFG_ERR_LEN];
    const char *args[] = {"--prot", "--config", "/nonexistent", "--help", NULL};
    assert_int_equal(t_load(&c, args, (const char *const[]){"RELUD_X=1", NULL}, err),
                     CFG_EXIT_HELP);
    cfg_free(&c);
    /* --print-config prints the loaded configuration, so it needs a valid one */
    const char *args2[] = {"--print-config", "--port", "x", NULL};
    assert_int_equal(t_load(&c, args2, NULL, err), CFG_ERROR);
    cfg_free(&c);
    const char *args3[] = {"--print-config", "--port", "9", NULL};
    assert_int_equal(t_load(&c, args3, NULL, err), CFG_EXIT_PRINT);
    assert_int_equal(c.port, 9);
    cfg_free(&c);

    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    cfg_print_version(f);
    fclose(f);
    assert_string_equal(buf, "relud " RELUD_VERSION "\n");
    free(buf);
}

/* ---- the admin token ---- */

static void test_admin_token_file(void **state)
{
    (void)state;
    const char *tok = t_file(0, "s3cret-token\n");
    struct cfg c;
    char err[CFG_ERR_LEN];
    const char *args[] = {"--admin-token", "other", "--admin-token-file", tok, NULL};
    assert_int_equal(t_load(&c, args, NULL, err), CFG_OK);
    assert_string_equal(c.admin_token, "s3cret-token"); /* read, trimmed, overrides */
    size_t i = (size_t)(cfg_option_find("admin_token") - cfg_options);
    assert_int_equal(c.origin[i].source, CFG_SRC_TOKEN_FILE);
    char *eff = t_print(t_effective, &c);
    assert_non_null(strstr(eff, "admin_token = \"***\" (admin_token_file)\n"));
    free(eff);
    cfg_free(&c);
    unlink(tok);

    tok = t_file(0, "tok\r\n\n  ");
    char env[128];
    snprintf(env, sizeof env, "RELUD_ADMIN_TOKEN_FILE=%s", tok);
    assert_int_equal(t_load(&c, NULL, (const char *const[]){env, NULL}, err), CFG_OK);
    assert_string_equal(c.admin_token, "tok");
    cfg_free(&c);
    unlink(tok);

    t_expect_error((const char *const[]){"--admin-token-file", "/nonexistent/token", NULL}, NULL,
                   "admin_token_file: cannot read \"/nonexistent/token\": No such file or "
                   "directory (from --admin-token-file)");
    char want[256];
    tok = t_file(0, "\n\n");
    snprintf(want, sizeof want,
             "admin_token_file: \"%s\" is empty (from env RELUD_ADMIN_TOKEN_FILE)", tok);
    snprintf(env, sizeof env, "RELUD_ADMIN_TOKEN_FILE=%s", tok);
    t_expect_error(NULL, (const char *const[]){env, NULL}, want);
    unlink(tok);
    tok = t_file(0, "line1\nline2\n");
    snprintf(want, sizeof want,
             "admin_token_file: \"%s\" must hold one line of text (from --admin-token-file)", tok);
    t_expect_error((const char *const[]){"--admin-token-file", tok, NULL}, NULL, want);
    unlink(tok);
    /* from the config file: the message names the line */
    const char *conf_text = "admin_token_file = /nonexistent/t\n";
    const char *conf = t_file(1, conf_text);
    snprintf(want, sizeof want,
             "admin_token_file: cannot read \"/nonexistent/t\": No such file or directory (from "
             "%s:1)",
             conf);
    t_expect_error((const char *const[]){"--config", conf, NULL}, NULL, want);
    unlink(conf);
}

static void test_secrets_never_printed(void **state)
{
    (void)state;
    struct cfg c;
    char err[CFG_ERR_LEN];
    const char *args[] = {"--admin-token", "TOPSECRET-42", NULL};
    assert_int_equal(t_load(&c, args, NULL, err), CFG_OK);
    assert_string_equal(c.admin_token, "TOPSECRET-42");
    t_printer printers[] = {t_conf, t_effective, t_markdown, t_help, t_warnings};
    for (size_t i = 0; i < sizeof printers / sizeof printers[0]; i++) {
        char *out = t_print(printers[i], &c);
        assert_null(strstr(out, "TOPSECRET"));
        free(out);
    }
    char *conf = t_print(t_conf, &c);
    assert_non_null(strstr(conf, "# (a value is set but not shown)\nadmin_token = \"\"\n"));
    free(conf);
    char *eff = t_print(t_effective, &c);
    assert_non_null(strstr(eff, "admin_token = \"***\" (--admin-token)\n"));
    free(eff);
    char *warn = t_print(t_warnings, &c);
    assert_non_null(strstr(warn, "--admin-token is visible"));
    free(warn);
    cfg_free(&c);
}

static void test_warnings(void **state)
{
    (void)state;
    struct cfg c;
    cfg_defaults(&c);
    char *out = t_print(t_warnings, &c);
    assert_string_equal(out, ""); /* the defaults use every core once */
    free(out);
    c.threads = c.cores;
    c.blas_threads = 2;
    out = t_print(t_warnings, &c);
    assert_non_null(strstr(out, "relud: warning: threads * blas_threads"));
    free(out);
    cfg_free(&c);
}

/* ---- printers and the committed files ---- */

/* --print-config output read back gives the same configuration (quoting, sizes, enums). */
static void test_print_conf_reads_back(void **state)
{
    (void)state;
    struct cfg a, b;
    char err[CFG_ERR_LEN];
    const char *args[] = {"--host", "we\"ird # host\\", "--port", "0", "--threads", "5",
                          "--model-dir", "/m d", "--strict-models", "--max-body-bytes", "1000000",
                          "--log-level", "debug", "--log-format", "json", "--no-access-log",
                          "--drain-timeout", "7", NULL};
    assert_int_equal(t_load(&a, args, NULL, err), CFG_OK);
    char *conf = t_print(t_conf, &a);
    const char *path = t_file(0, conf);
    assert_int_equal(t_load(&b, (const char *const[]){"--config", path, NULL}, NULL, err), CFG_OK);
    char *conf2 = t_print(t_conf, &b);
    assert_string_equal(conf, conf2);
    assert_string_equal(b.host, "we\"ird # host\\");
    assert_int_equal(b.max_body_bytes, 1000000);
    assert_int_equal(b.threads, 5);
    free(conf);
    free(conf2);
    cfg_free(&a);
    cfg_free(&b);
    unlink(path);
}

static void test_committed_relud_conf_in_sync(void **state)
{
    (void)state;
    struct cfg c;
    cfg_defaults(&c);
    char *want = t_print(t_conf, &c);
    char *have = t_repo_file("config/relud.conf");
    if (strcmp(want, have) != 0)
        fail_msg("config/relud.conf differs from the option table; run: "
                 "build/relud --print-config > config/relud.conf");
    /* and it loads, giving the defaults, every option from the file */
    char err[CFG_ERR_LEN];
    struct cfg d;
    const char *path = t_file(0, have);
    assert_int_equal(t_load(&d, (const char *const[]){"--config", path, NULL}, NULL, err), CFG_OK);
    char *back = t_print(t_conf, &d);
    assert_string_equal(back, want);
    for (size_t i = 0; i < cfg_option_count; i++)
        assert_int_equal(d.origin[i].source, CFG_SRC_FILE);
    free(back);
    free(want);
    free(have);
    cfg_free(&c);
    cfg_free(&d);
    unlink(path);
}

static void test_committed_docs_in_sync(void **state)
{
    (void)state;
    char *want = t_print(t_markdown, NULL);
    char *have = t_repo_file("docs/configuration.md");
    if (strcmp(want, have) != 0)
        fail_msg("docs/configuration.md differs from the option table; run: "
                 "build/relud --print-docs > docs/configuration.md");
    assert_non_null(strstr(have, "## Threads and cores"));
    free(want);
    free(have);
}

/* Every option, by name, flag and env, in every generated text. */
static void test_every_option_documented(void **state)
{
    (void)state;
    char *conf = t_repo_file("config/relud.conf");
    char *md = t_repo_file("docs/configuration.md");
    char *help = t_print(t_help, NULL);
    for (size_t i = 0; i < cfg_option_count; i++) {
        const struct cfg_option *o = &cfg_options[i];
        char key[80], flag[80], env[80], row[96];
        snprintf(key, sizeof key, "\n%s = ", o->name);
        cfg_option_flag(o, flag, sizeof flag);
        cfg_option_env(o, env, sizeof env);
        snprintf(row, sizeof row, "| `%s` |", o->name);
        if (!strstr(conf, key) || !strstr(conf, flag) || !strstr(conf, env))
            fail_msg("config/relud.conf lacks %s", o->name);
        if (!strstr(md, row) || !strstr(md, flag) || !strstr(md, env))
            fail_msg("docs/configuration.md lacks %s", o->name);
        if (!strstr(help, flag) || !strstr(help, env))
            fail_msg("--help lacks %s", o->name);
    }
    free(conf);
    free(md);
    free(help);
}

static void test_cross_checks(void **state)
{
    (void)state;
    t_expect_error((const char *const[]){"--max-buffered-bytes", "32MiB", NULL}, NULL,
                   "max_buffered_bytes: 32MiB is below max_body_bytes (64MiB), so the largest "
                   "bodies could never be accepted; raise it or set it to 0 (no limit)");
    struct cfg c;
    char err[CFG_ERR_LEN];
    const char *args[] = {"--max-buffered-bytes", "0", NULL};
    assert_int_equal(t_load(&c, args, NULL, err), CFG_OK);
    assert_int_equal(c.max_buffered_bytes, 0);
    cfg_free(&c);
}

/* A second cfg_load over a loaded cfg (as main.c does over cfg_defaults) neither leaks nor
 * forgets that threads was automatic. */
static void test_load_over_loaded(void **state)
{
    (void)state;
    struct cfg c;
    char err[CFG_ERR_LEN];
    const char *path = t_file(0, "host = a\n");
    const char *args[] = {"--config", path, "--model-dir", "/m", NULL};
    assert_int_equal(t_load(&c, args, NULL, err), CFG_OK);
    char *argv[] = {"relud", "--config", (char *)path, "--host", "b", NULL};
    assert_int_equal(cfg_load(&c, 5, argv, NULL, err, sizeof err), CFG_OK);
    assert_string_equal(c.host, "b");
    assert_string_equal(c.model_dir, "/m");
    assert_true(c.threads_auto);
    assert_int_equal(c.threads, c.cores);
    cfg_free(&c);
    unlink(path);
}

static void test_small_error_buffer(void **state)
{
    (void)state;
    struct cfg c;
    char small[8];
    char *argv[] = {"relud", "--port", "80x", NULL};
    cfg_defaults(&c);
    assert_int_equal(cfg_load(&c, 3, argv, NULL, small, sizeof small), CFG_ERROR);
    assert_string_equal(small, "port: \"");
    cfg_free(&c);
    cfg_defaults(&c);
    assert_int_equal(cfg_load(&c, 3, argv, NULL, NULL, 0), CFG_ERROR);
    cfg_free(&c);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_table_is_well_formed),
        cmocka_unit_test(test_defaults),
        cmocka_unit_test(test_load_without_sources_is_defaults),
        cmocka_unit_test(test_file_values_and_origin),
        cmocka_unit_test(test_precedence_flag_env_file_default),
        cmocka_unit_test(test_flag_forms),
        cmocka_unit_test(test_threads_resolution),
        cmocka_unit_test(test_size_suffixes),
        cmocka_unit_test(test_size_errors),
        cmocka_unit_test(test_int_errors_name_option_and_source),
        cmocka_unit_test(test_seconds),
        cmocka_unit_test(test_bool_forms),
        cmocka_unit_test(test_enums),
        cmocka_unit_test(test_strings),
        cmocka_unit_test(test_file_quoted_strings_and_comments),
        cmocka_unit_test(test_file_syntax_errors),
        cmocka_unit_test(test_missing_config_file),
        cmocka_unit_test(test_unknown_flags_and_arguments),
        cmocka_unit_test(test_unknown_env),
        cmocka_unit_test(test_meta_flags),
        cmocka_unit_test(test_admin_token_file),
        cmocka_unit_test(test_secrets_never_printed),
        cmocka_unit_test(test_warnings),
        cmocka_unit_test(test_print_conf_reads_back),
        cmocka_unit_test(test_committed_relud_conf_in_sync),
        cmocka_unit_test(test_committed_docs_in_sync),
        cmocka_unit_test(test_every_option_documented),
        cmocka_unit_test(test_cross_checks),
        cmocka_unit_test(test_load_over_loaded),
        cmocka_unit_test(test_small_error_buffer),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
