/* Test helpers for files: see fs.h. */
#include "tests/common/fs.h"

#include <dirent.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "tests/common/http.h"

int t_tmp_copy(char *out, size_t len, const char *tag, const char *src)
{
    snprintf(out, len, "/tmp/relud-%s-XXXXXX", tag);
    if (!mkdtemp(out))
        return -1;
    if (!src)
        return 0;
    char sp[512];
    if (src[0] == '/')
        snprintf(sp, sizeof sp, "%s", src);
    else
        snprintf(sp, sizeof sp, "%s/%s", t_root(), src);
    DIR *dd = opendir(sp);
    if (!dd)
        return -1;
    int rc = 0;
    struct dirent *de;
    while (!rc && (de = readdir(dd))) {
        char from[1024], to[1024];
        struct stat st;
        snprintf(from, sizeof from, "%s/%s", sp, de->d_name);
        if (de->d_name[0] == '.' || stat(from, &st) != 0 || !S_ISREG(st.st_mode))
            continue;
        snprintf(to, sizeof to, "%s/%s", out, de->d_name);
        size_t n;
        char *data = t_read_file(from, &n);
        FILE *f = data ? fopen(to, "wb") : NULL;
        rc = !f || fwrite(data, 1, n, f) != n;
        if (f && fclose(f) != 0)
            rc = 1;
        free(data);
    }
    closedir(dd);
    return rc ? -1 : 0;
}

void t_rm_dir(const char *dir)
{
    DIR *dd = dir && dir[0] ? opendir(dir) : NULL;
    if (!dd)
        return;
    struct dirent *de;
    while ((de = readdir(dd))) {
        if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, ".."))
            continue;
        char p[1024];
        snprintf(p, sizeof p, "%s/%s", dir, de->d_name);
        unlink(p);
    }
    closedir(dd);
    rmdir(dir);
}

void t_write_file(const char *dir, const char *name, const void *data, size_t len)
{
    char p[1024];
    snprintf(p, sizeof p, "%s/%s", dir, name);
    FILE *f = fopen(p, "wb");
    assert_non_null(f);
    assert_int_equal(fwrite(data, 1, len, f), len);
    assert_int_equal(fclose(f), 0);
}

void t_write_str(const char *dir, const char *name, const char *s)
{
    t_write_file(dir, name, s, strlen(s));
}

int t_file_exists(const char *dir, const char *name)
{
    char p[1024];
    struct stat st;
    snprintf(p, sizeof p, "%s/%s", dir, name);
    return stat(p, &st) == 0;
}

char *t_read_file(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    size_t cap = 1 << 16, n = 0;
    char *buf = malloc(cap + 1);
    size_t got;
    while (buf && (got = fread(buf + n, 1, cap - n, f)) > 0) {
        n += got;
        if (n == cap) {
            char *nb = realloc(buf, cap * 2 + 1);
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
    if (!buf)
        return NULL;
    buf[n] = 0;
    if (len)
        *len = n;
    return buf;
}
