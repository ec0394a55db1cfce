/* HTTPS credentials: see tls.h. */
#include "server/tls.h"

#include <errno.h>
#include <gnutls/abstract.h>
#include <gnutls/gnutls.h>
#include <gnutls/x509.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define MAX_CHAIN 16

/* One loaded certificate chain and its key. */
struct gen {
    gnutls_pcert_st pcert[MAX_CHAIN];
    unsigned n;
    gnutls_privkey_t key;
    char desc[256];
    struct gen *older;
};

/* The retrieve callback has no user pointer: one set of credentials per process. */
static struct {
    pthread_rwlock_t lock;
    struct gen *cur; /* serving; older ones hang off it until srv_tls_free */
    char *cert_file, *key_file;
    char *ca_pem;
    gnutls_certificate_credentials_t ca; /* the client CA, for verification */
    int ready;
} tls = {.lock = PTHREAD_RWLOCK_INITIALIZER};

/* A whole file, NUL-terminated. */
static char *slurp(const char *path, size_t *len, struct nn_err *err)
{
    FILE *f = fopen(path, "rb");
    if (!f) {
        nn_err_set(err, NN_EIO, "%s: %s", path, strerror(errno));
        return NULL;
    }
    size_t cap = 4096, n = 0;
    char *buf = malloc(cap + 1);
    size_t got;
    while (buf && (got = fread(buf + n, 1, cap - n, f)) > 0) {
        n += got;
        if (n == cap) {
            char *nb = cap < ((size_t)1 << 24) ? realloc(buf, 2 * cap + 1) : NULL;
            if (!nb) {
                free(buf);
                buf = NULL;
                break;
            }
            buf = nb;
            cap *= 2;
        }
    }
    fclose(f);
    if (!buf) {
        nn_err_set(err, NN_EINVAL, "%s: too large for a PEM file (or out of memory)", path);
        return NULL;
    }
    buf[n] = 0;
    *len = n;
    return buf;
}

static void fmt_date(time_t t, char *buf, size_t len)
{
    struct tm tm;
    gmtime_r(&t, &tm);
    strftime(buf, len, "%Y-%m-%d %H:%M:%S UTC", &tm);
}

static void gen_free(struct gen *g)
{
    while (g) {
        struct gen *o = g->older;
        for (unsigned i = 0; i < g->n; i++)
            gnutls_pcert_deinit(&g->pcert[i]);
        if (g->key)
            gnutls_privkey_deinit(g->key);
        free(g);
        g = o;
    }
}

/* The leaf's validity now: NN_EINVAL with the dates when outside them. */
static enum nn_status check_dates(const gnutls_datum_t *der, const char *file, char *desc,
                                  size_t desclen, struct nn_err *err)
{
    gnutls_x509_crt_t crt;
    if (gnutls_x509_crt_init(&crt) < 0)
        return nn_err_set(err, NN_ENOMEM, "out of memory");
    enum nn_status st = NN_OK;
    if (gnutls_x509_crt_import(crt, der, GNUTLS_X509_FMT_DER) < 0) {
        st = nn_err_set(err, NN_EINVAL, "%s: the certificate cannot be read", file);
    } else {
        time_t from = gnutls_x509_crt_get_activation_time(crt);
        time_t to = gnutls_x509_crt_get_expiration_time(crt), now = time(NULL);
        char a[40], b[40], dn[160] = "";
        size_t dnl = sizeof dn;
        fmt_date(from, a, sizeof a);
        fmt_date(to, b, sizeof b);
        gnutls_x509_crt_get_dn(crt, dn, &dnl);
        if (now > to)
            st = nn_err_set(err, NN_EINVAL, "%s: the certificate (%s) expired on %s", file, dn, b);
        else if (now < from)
            st = nn_err_set(err, NN_EINVAL, "%s: the certificate (%s) is not valid before %s", file,
                            dn, a);
        snprintf(desc, desclen, "%s, valid until %s", dn, b);
    }
    gnutls_x509_crt_deinit(crt);
    return st;
}

/* Reads and checks the certificate chain and key into a new generation. */
static enum nn_status load_gen(const char *cert_file, const char *key_file, struct gen **out,
                               struct nn_err *err)
{
    size_t cl, kl;
    char *cert = slurp(cert_file, &cl, err), *key = cert ? slurp(key_file, &kl, err) : NULL;
    struct gen *g = key ? calloc(1, sizeof *g) : NULL;
    enum nn_status st = NN_OK;
    if (!cert || !key) {
        st = err->msg[0] ? NN_EIO : NN_ENOMEM;
        goto done;
    }
    if (!g) {
        st = nn_err_set(err, NN_ENOMEM, "out of memory");
        goto done;
    }
    gnutls_datum_t cd = {(unsigned char *)cert, (unsigned)cl};
    gnutls_datum_t kd = {(unsigned char *)key, (unsigned)kl};
    g->n = MAX_CHAIN;
    int rc = gnutls_pcert_list_import_x509_raw(g->pcert, &g->n, &cd, GNUTLS_X509_FMT_PEM, 0);
    if (rc < 0 || !g->n) {
        g->n = 0;
        st = nn_err_set(err, NN_EINVAL, "%s: not a PEM certificate chain (%s)", cert_file,
                        rc < 0 ? gnutls_strerror(rc) : "no certificate");
        goto done;
    }
    if ((rc = gnutls_privkey_init(&g->key)) < 0 ||
        (rc = gnutls_privkey_import_x509_raw(g->key, &kd, GNUTLS_X509_FMT_PEM, NULL, 0)) < 0) {
        st = nn_err_set(err, NN_EINVAL, "%s: not an unencrypted PEM private key (%s)", key_file,
                        gnutls_strerror(rc));
        goto done;
    }
    /* the key must be the certificate's: compare the public key ids */
    gnutls_pubkey_t pub;
    unsigned char id1[64], id2[64];
    size_t l1 = sizeof id1, l2 = sizeof id2;
    if (gnutls_pubkey_init(&pub) < 0) {
        st = nn_err_set(err, NN_ENOMEM, "out of memory");
        goto done;
    }
    rc = gnutls_pubkey_import_privkey(pub, g->key, 0, 0);
    int match = rc >= 0 && gnutls_pubkey_get_key_id(pub, 0, id1, &l1) >= 0 &&
                gnutls_pubkey_get_key_id(g->pcert[0].pubkey, 0, id2, &l2) >= 0 && l1 == l2 &&
                !memcmp(id1, id2, l1);
    gnutls_pubkey_deinit(pub);
    if (!match) {
        st = nn_err_set(err, NN_EINVAL, "%s: the key does not belong to the certificate in %s",
                        key_file, cert_file);
        goto done;
    }
    st = check_dates(&g->pcert[0].cert, cert_file, g->desc, sizeof g->desc, err);
done:
    if (key)
        memset(key, 0, kl); /* the key in clear lives no longer than this */
    free(key);
    free(cert);
    if (st) {
        gen_free(g);
        return st;
    }
    *out = g;
    return NN_OK;
}

enum nn_status srv_tls_load(const char *cert_file, const char *key_file, const char *ca_file,
                            struct nn_err *err)
{
    err->msg[0] = 0;
    struct gen *g;
    enum nn_status st = load_gen(cert_file, key_file, &g, err);
    if (st)
        return st;
    if (ca_file && ca_file[0]) {
        size_t len;
        char *pem = slurp(ca_file, &len, err);
        gnutls_datum_t d = {(unsigned char *)pem, (unsigned)len};
        int n = -1;
        if (pem && gnutls_certificate_allocate_credentials(&tls.ca) >= 0)
            n = gnutls_certificate_set_x509_trust_mem(tls.ca, &d, GNUTLS_X509_FMT_PEM);
        if (n <= 0) {
            if (pem)
                nn_err_set(err, NN_EINVAL, "%s: no PEM CA certificate in it", ca_file);
            free(pem);
            gen_free(g);
            return pem ? NN_EINVAL : NN_EIO;
        }
        tls.ca_pem = pem;
    }
    tls.cert_file = strdup(cert_file);
    tls.key_file = strdup(key_file);
    tls.cur = g;
    tls.ready = 1;
    return NN_OK;
}

enum nn_status srv_tls_reload(struct nn_err *err)
{
    err->msg[0] = 0;
    struct gen *g;
    enum nn_status st = load_gen(tls.cert_file, tls.key_file, &g, err);
    if (st)
        return st;
    pthread_rwlock_wrlock(&tls.lock);
    g->older = tls.cur;
    tls.cur = g;
    pthread_rwlock_unlock(&tls.lock);
    return NN_OK;
}

void srv_tls_free(void)
{
    gen_free(tls.cur);
    tls.cur = NULL;
    if (tls.ca)
        gnutls_certificate_free_credentials(tls.ca);
    tls.ca = NULL;
    free(tls.ca_pem);
    free(tls.cert_file);
    free(tls.key_file);
    tls.ca_pem = tls.cert_file = tls.key_file = NULL;
    tls.ready = 0;
}

static int retrieve(gnutls_session_t session, const gnutls_datum_t *req_ca_rdn, int nreqs,
                    const gnutls_pk_algorithm_t *pk_algos, int pk_algos_length,
                    gnutls_pcert_st **pcert, unsigned int *pcert_length, gnutls_privkey_t *pkey)
{
    (void)session, (void)req_ca_rdn, (void)nreqs, (void)pk_algos, (void)pk_algos_length;
    pthread_rwlock_rdlock(&tls.lock);
    struct gen *g = tls.cur;
    pthread_rwlock_unlock(&tls.lock);
    if (!g)
        return -1;
    *pcert = g->pcert;
    *pcert_length = g->n;
    *pkey = g->key;
    return 0;
}

void *srv_tls_retrieve_fn(void)
{
    gnutls_certificate_retrieve_function2 *fn = retrieve;
    return (void *)fn;
}

const char *srv_tls_client_ca(void) { return tls.ca_pem; }

void srv_tls_describe(char *buf, size_t len)
{
    pthread_rwlock_rdlock(&tls.lock);
    snprintf(buf, len, "%s", tls.cur ? tls.cur->desc : "none");
    pthread_rwlock_unlock(&tls.lock);
}

int srv_tls_client_ok(void *session, char *why, size_t len)
{
    gnutls_session_t s = session;
    unsigned n = 0;
    why[0] = 0;
    const gnutls_datum_t *chain = s ? gnutls_certificate_get_peers(s, &n) : NULL;
    if (!chain || !n) {
        snprintf(why, len, "no client certificate was presented");
        return -1;
    }
    gnutls_x509_crt_t crt[MAX_CHAIN];
    unsigned m = 0;
    int ok = 0;
    for (; m < n && m < MAX_CHAIN; m++) {
        if (gnutls_x509_crt_init(&crt[m]) < 0)
            goto out;
        if (gnutls_x509_crt_import(crt[m], &chain[m], GNUTLS_X509_FMT_DER) < 0) {
            m++;
            goto out;
        }
    }
    gnutls_x509_trust_list_t tl;
    unsigned status = 0;
    gnutls_certificate_get_trust_list(tls.ca, &tl);
    /* flags 0: signatures and validity dates checked against the CA bundle */
    ok = gnutls_x509_trust_list_verify_crt(tl, crt, m, 0, &status, NULL) >= 0 && status == 0;
    if (!ok) {
        gnutls_datum_t txt;
        if (gnutls_certificate_verification_status_print(status, GNUTLS_CRT_X509, &txt, 0) >= 0) {
            snprintf(why, len, "the client certificate is not accepted: %s", txt.data);
            gnutls_free(txt.data);
        }
    }
out:
    for (unsigned i = 0; i < m; i++)
        gnutls_x509_crt_deinit(crt[i]);
    if (!ok && !why[0])
        snprintf(why, len, "the client certificate cannot be read");
    return ok ? 0 : -1;
}
