/* Bounded whole-file reads: see include/io/fileio.h. */
#include "fileio.h"
#include "err.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

int fileio_read(const char *path, struct buf *out, char *err, size_t errlen)
{
        char chunk[16384];
        int fd = open(path, O_RDONLY | O_CLOEXEC);
        int r = 0;
        if (fd < 0) {
                r = -errno;
                err_set(err, errlen, "cannot read %s: %s", path, strerror(errno));
                return r;
        }
        for (;;) {
                ssize_t n = read(fd, chunk, sizeof chunk);
                if (n < 0 && errno == EINTR)
                        continue;
                if (n < 0) {
                        r = -errno;
                        err_set(err, errlen, "cannot read %s: %s", path, strerror(errno));
                        break;
                }
                if (n == 0)
                        break;
                r = buf_append(out, chunk, (size_t)n);
                if (r == -ENOBUFS) {
                        r = -EFBIG;
                        err_set(err, errlen, "%s is larger than %zu bytes", path, out->max);
                        break;
                }
                if (r < 0) {
                        err_set(err, errlen, "cannot read %s: out of memory", path);
                        break;
                }
        }
        close(fd);
        return r;
}
