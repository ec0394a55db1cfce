/* HTTPS: the server's certificate and key (tls_cert_file, tls_key_file), reloadable on
 * SIGHUP without dropping a connection, and mutual TLS (tls_client_ca_file). GnuTLS, the
 * library Debian's libmicrohttpd is built with; this is the only file that speaks it.
 *
 * The certificate reaches GnuTLS through its certificate-retrieve callback, asked at every
 * handshake, so a reload takes effect for the next handshake while connections already up
 * keep theirs. A loaded set is checked before it is used: the files parse, the key belongs
 * to the certificate, the certificate is valid now (not expired, not yet valid is an
 * error naming the dates). Sets replaced by a reload are kept until relud stops (a handshake
 * may still be using one; a few KiB each). */
#ifndef RELUD_TLS_H
#define RELUD_TLS_H

#include <stddef.h>

#include "core/nn.h"

/* Loads cert_file (PEM, the server certificate first, then any intermediates) and key_file
 * (PEM, unencrypted) and, when ca_file is not empty, the client CA bundle. NN_EIO for a file
 * that cannot be read, NN_EINVAL for one that is not what it should be, naming the file. */
enum nn_status srv_tls_load(const char *cert_file, const char *key_file, const char *ca_file,
                            struct nn_err *err);
/* Rereads the certificate and key (SIGHUP). On failure the loaded ones stay. */
enum nn_status srv_tls_reload(struct nn_err *err);
void srv_tls_free(void);

/* For libmicrohttpd's options: the certificate-retrieve callback (GnuTLS's
 * gnutls_certificate_retrieve_function2, as a void pointer here), and the client CA bundle
 * (PEM text) or NULL. */
void *srv_tls_retrieve_fn(void);
const char *srv_tls_client_ca(void);
/* "CN=..., expires 2027-11-29" of the certificate served now, for logs. */
void srv_tls_describe(char *buf, size_t len);

/* With a client CA: 0 when the connection's TLS session (GnuTLS's, from libmicrohttpd)
 * presented a certificate the CA signed and that is valid now; else -1 with why. */
int srv_tls_client_ok(void *session, char *why, size_t len);

#endif
