/* A growing byte buffer with a size cap (curl's dynbuf): replies, metrics text, log lines.
 * Appends never fail loudly: the first failure is remembered (err) and later appends are
 * no-ops, so a builder checks once at the end. p stays NUL-terminated after its bytes. */
#ifndef RELUD_SB_H
#define RELUD_SB_H

#include <stdarg.h>
#include <stddef.h>

enum srv_sb_err { SRV_SB_OK, SRV_SB_OOM, SRV_SB_TOOBIG };

struct srv_sb {
    char *p;
    size_t len, cap;
    size_t max; /* most bytes it may hold (0 = no cap) */
    enum srv_sb_err err;
};

/* An empty buffer holding at most max bytes (0 = no cap). Allocates nothing. */
/* snprintf(dst, len, "%s", src) (len > 0) without printf's machinery, for the request
 * path: glibc formats even "%s" through its positional-argument path here. */
void srv_strcpy(char *dst, size_t len, const char *src);
void srv_sb_init(struct srv_sb *sb, size_t max);
void srv_sb_free(struct srv_sb *sb);
/* Room for n more bytes and a NUL; 0 (and err set) when it cannot be had. */
int srv_sb_reserve(struct srv_sb *sb, size_t n);
void srv_sb_append(struct srv_sb *sb, const void *data, size_t n);
void srv_sb_puts(struct srv_sb *sb, const char *s);
void srv_sb_printf(struct srv_sb *sb, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void srv_sb_vprintf(struct srv_sb *sb, const char *fmt, va_list ap);
/* The bytes (malloc'd, NUL-terminated, the caller frees) and their length, and an empty sb;
 * NULL when an append failed (then the buffer is freed). */
char *srv_sb_take(struct srv_sb *sb, size_t *len);

#endif
