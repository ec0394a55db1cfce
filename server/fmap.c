#include "server/fmap.h"

#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

enum nn_status srv_fmap(const char *path, const char *label, size_t max, void **map, size_t *len,
                        struct nn_err *err)
{
    *map = NULL;
    *len = 0;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return nn_err_set(err, NN_EINVAL, "%s: cannot open: %s", label, strerror(errno));
    struct stat sb;
    enum nn_status st = NN_OK;
    if (fstat(fd, &sb) != 0 || !S_ISREG(sb.st_mode))
        st = nn_err_set(err, NN_EINVAL, "%s: not a regular file", label);
    else if (max && (unsigned long long)sb.st_size > max)
        st = nn_err_set(err, NN_ETOOBIG, "%s: %lld bytes, over the limit of %zu", label,
                        (long long)sb.st_size, max);
    else if (sb.st_size > 0) {
        void *m = mmap(NULL, (size_t)sb.st_size, PROT_READ, MAP_PRIVATE, fd, 0);
        if (m == MAP_FAILED)
            st = nn_err_set(err, NN_ENOMEM, "%s: cannot map %zu bytes: %s", label,
                            (size_t)sb.st_size, strerror(errno));
        else {
            *map = m;
            *len = (size_t)sb.st_size;
        }
    }
    close(fd);
    return st;
}
