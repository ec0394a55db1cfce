#include "server/fmap.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

/* Opens path read-only and checks it: a regular file of at most max bytes (0: any). */
static enum nn_status open_regular(const char *path, const char *label, size_t max, int *fd,
                                   size_t *size, int *eno, struct nn_err *err)
{
    struct stat sb;
    enum nn_status st = NN_OK;
    *eno = 0;
    *size = 0;
    if ((*fd = open(path, O_RDONLY | O_CLOEXEC)) < 0) {
        *eno = errno;
        return nn_err_set(err, NN_EINVAL, "%s: cannot open: %s", label, strerror(errno));
    }
    if (fstat(*fd, &sb) != 0 || !S_ISREG(sb.st_mode)) {
        *eno = EINVAL;
        st = nn_err_set(err, NN_EINVAL, "%s: not a regular file", label);
    } else if (max && (unsigned long long)sb.st_size > max) {
        *eno = EFBIG;
        st = nn_err_set(err, NN_ETOOBIG, "%s: %lld bytes, over the limit of %zu", label,
                        (long long)sb.st_size, max);
    }
    if (st)
        close(*fd);
    else
        *size = (size_t)sb.st_size;
    return st;
}

enum nn_status srv_fmap(const char *path, const char *label, size_t max, void **map, size_t *len,
                        struct nn_err *err)
{
    int fd, eno;
    size_t size;
    *map = NULL;
    *len = 0;
    enum nn_status st = open_regular(path, label, max, &fd, &size, &eno, err);
    if (st)
        return st;
    void *m = size ? mmap(NULL, size, PROT_READ, MAP_PRIVATE, fd, 0) : NULL;
    if (m == MAP_FAILED)
        st = nn_err_set(err, NN_ENOMEM, "%s: cannot map %zu bytes: %s", label, size,
                        strerror(errno));
    else if (m) {
        *map = m;
        *len = size;
    }
    close(fd);
    return st;
}

char *srv_fread(const char *path, const char *label, size_t max, size_t *len, int *eno,
                struct nn_err *err)
{
    int fd;
    size_t cap, n = 0;
    *len = 0;
    if (open_regular(path, label, max, &fd, &cap, eno, err))
        return NULL;
    char *buf = malloc(cap + 1);
    if (!buf) {
        *eno = ENOMEM;
        nn_err_set(err, NN_ENOMEM, "%s: out of memory for %zu bytes", label, cap);
    }
    while (buf && n < cap) { /* a file that grew since fstat is read as it was then */
        ssize_t r = read(fd, buf + n, cap - n);
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0) {
            *eno = errno;
            nn_err_set(err, NN_EINVAL, "%s: read: %s", label, strerror(errno));
            free(buf);
            buf = NULL;
        } else if (r == 0) {
            break;
        } else {
            n += (size_t)r;
        }
    }
    close(fd);
    if (buf) {
        buf[n] = 0;
        *len = n;
    }
    return buf;
}
