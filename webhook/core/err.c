/* Error messages into the caller's buffer: see include/core/err.h. */
#include "err.h"

#include <stdio.h>
#include <string.h>

void err_vset(char *err, size_t errlen, const char *fmt, va_list ap)
{
        if (!err || errlen == 0)
                return;
        vsnprintf(err, errlen, fmt, ap);
}

void err_set(char *err, size_t errlen, const char *fmt, ...)
{
        va_list ap;

        va_start(ap, fmt);
        err_vset(err, errlen, fmt, ap);
        va_end(ap);
}

void err_vappend(char *err, size_t errlen, const char *fmt, va_list ap)
{
        size_t n;

        if (!err || errlen == 0)
                return;
        n = strnlen(err, errlen);
        if (n >= errlen - 1)
                return;
        vsnprintf(err + n, errlen - n, fmt, ap);
}

void err_append(char *err, size_t errlen, const char *fmt, ...)
{
        va_list ap;

        va_start(ap, fmt);
        err_vappend(err, errlen, fmt, ap);
        va_end(ap);
}
