/* The capped byte buffer: see sb.h. */
#include "server/sb.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void srv_strcpy(char *dst, size_t len, const char *src)
{
    size_t n = strnlen(src, len - 1);
    memcpy(dst, src, n);
    dst[n] = 0;
}

void srv_sb_init(struct srv_sb *sb, size_t max)
{
    memset(sb, 0, sizeof *sb);
    sb->max = max;
}

void srv_sb_free(struct srv_sb *sb)
{
    free(sb->p);
    srv_sb_init(sb, sb->max);
}

int srv_sb_reserve(struct srv_sb *sb, size_t n)
{
    if (sb->err)
        return 0;
    if (sb->cap - sb->len > n)
        return 1;
    if (n > (sb->max ? sb->max : (size_t)-1 / 2) - sb->len) {
        sb->err = SRV_SB_TOOBIG;
        return 0;
    }
    size_t want = sb->len + n + 1, ncap = sb->cap ? sb->cap : 256;
    while (ncap < want)
        ncap = ncap > (size_t)-1 / 4 ? want : ncap * 2;
    if (sb->max && ncap > sb->max + 1)
        ncap = sb->max + 1;
    char *np = realloc(sb->p, ncap);
    if (!np) {
        sb->err = SRV_SB_OOM;
        return 0;
    }
    sb->p = np;
    sb->cap = ncap;
    return 1;
}

void srv_sb_append(struct srv_sb *sb, const void *data, size_t n)
{
    if (!srv_sb_reserve(sb, n))
        return;
    memcpy(sb->p + sb->len, data, n);
    sb->len += n;
    sb->p[sb->len] = 0;
}

void srv_sb_puts(struct srv_sb *sb, const char *s) { srv_sb_append(sb, s, strlen(s)); }

void srv_sb_vprintf(struct srv_sb *sb, const char *fmt, va_list ap)
{
    va_list ap2;
    va_copy(ap2, ap);
    int n = vsnprintf(NULL, 0, fmt, ap2);
    va_end(ap2);
    if (n < 0) {
        sb->err = sb->err ? sb->err : SRV_SB_OOM;
        return;
    }
    if (!srv_sb_reserve(sb, (size_t)n))
        return;
    vsnprintf(sb->p + sb->len, sb->cap - sb->len, fmt, ap);
    sb->len += (size_t)n;
}

void srv_sb_printf(struct srv_sb *sb, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    srv_sb_vprintf(sb, fmt, ap);
    va_end(ap);
}

char *srv_sb_take(struct srv_sb *sb, size_t *len)
{
    if (sb->err) {
        srv_sb_free(sb);
        return NULL;
    }
    if (!sb->p && !srv_sb_reserve(sb, 0))
        return NULL;
    sb->p[sb->len] = 0;
    char *p = sb->p;
    if (len)
        *len = sb->len;
    sb->p = NULL;
    sb->len = sb->cap = 0;
    return p;
}
