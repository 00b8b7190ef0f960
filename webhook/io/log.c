/* JSON log lines: see include/io/log.h. */
#include "log.h"
#include "err.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <sys/stat.h>
#include <unistd.h>


static enum log_level min_level = LOG_INFO;
/* The audit log: a descriptor that log_reopen_audit() replaces with dup2(),
 * so writers never see it closed. -1: decisions go to stderr. */
static int audit_fd = -1;
static char *audit_path;
#define AUDIT_FILE_MODE 0640
static const char *const level_names[LOG_LEVEL_MAX] = { "debug", "info", "warn", "error" };

void log_set_level(enum log_level level)
{
        min_level = level;
}

static void begin(struct log_line *l, enum log_level level, const char *msg)
{
        buf_init(&l->b, WH_LOG_LINE_MAX - WH_LOG_TAIL_RESERVE);
        l->n_truncated = 0;
        struct timespec ts;
        struct tm tm;
        char when[40];
        clock_gettime(CLOCK_REALTIME, &ts);
        gmtime_r(&ts.tv_sec, &tm);
        strftime(when, sizeof when, "%Y-%m-%dT%H:%M:%S", &tm);
        buf_printf(&l->b, "{\"time\":\"%s.%03ldZ\",\"level\":\"%s\",\"msg\":", when, ts.tv_nsec / 1000000,
                   level_names[level]);
        if (buf_put_json_str(&l->b, msg) < 0)
                buf_put_json_strn(&l->b, msg, strnlen(msg, WH_LOG_KEY_MAX));   /* its start, then */
}

void log_begin(struct log_line *l, enum log_level level, const char *msg)
{
        l->audit = false;
        l->on = level >= min_level && level < LOG_LEVEL_MAX;
        if (l->on)
                begin(l, level, msg);
}

void log_begin_audit(struct log_line *l, enum log_level level, const char *msg)
{
        l->audit = true;
        l->on = level < LOG_LEVEL_MAX;
        if (l->on)
                begin(l, level, msg);
}

int log_set_audit_file(const char *path, char *err, size_t errlen)
{
        int fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, AUDIT_FILE_MODE);
        if (fd < 0) {
                int r = -errno;
                err_set(err, errlen, "cannot open the audit log %s: %s", path, strerror(errno));
                return r;
        }
        char *p = strdup(path);
        if (!p) {
                close(fd);
                return -ENOMEM;
        }
        free(audit_path);
        audit_path = p;
        audit_fd = fd;
        return 0;
}

int log_reopen_audit(bool force, char *err, size_t errlen)
{
        if (audit_fd < 0)
                return 0;
        struct stat now, open_one;
        if (!force && stat(audit_path, &now) == 0 && fstat(audit_fd, &open_one) == 0 && now.st_dev == open_one.st_dev &&
            now.st_ino == open_one.st_ino)
                return 0;   /* still the same file */
        int fd = open(audit_path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, AUDIT_FILE_MODE);
        if (fd < 0) {
                int r = -errno;
                err_set(err, errlen, "cannot reopen the audit log %s: %s", audit_path, strerror(errno));
                return r;
        }
        int r = dup2(fd, audit_fd) < 0 ? -errno : 0;
        if (r < 0)
                err_set(err, errlen, "cannot reopen the audit log %s: %s", audit_path, strerror(-r));
        close(fd);
        return r;
}

/* Starts a field: its key. Returns where the line ended before it. */
static size_t key(struct log_line *l, const char *k, int *r)
{
        size_t mark = l->b.len;
        *r = buf_putc(&l->b, ',');
        if (*r == 0)
                *r = buf_put_json_str(&l->b, k);
        if (*r == 0)
                *r = buf_putc(&l->b, ':');
        return mark;
}

/* Ends a field: one that did not fit goes whole, and its key is named. */
static void field_end(struct log_line *l, const char *k, size_t mark, int r)
{
        if (r == 0)
                return;
        l->b.len = mark;
        if (l->b.data)
                l->b.data[mark] = '\0';
        if (l->n_truncated < WH_LOG_MAX_TRUNCATED)
                l->truncated[l->n_truncated++] = k;
}

void log_str(struct log_line *l, const char *k, const char *value)
{
        if (!l->on || !value)
                return;
        int r;
        size_t mark = key(l, k, &r);
        if (r == 0)
                r = buf_put_json_str(&l->b, value);
        field_end(l, k, mark, r);
}

void log_int(struct log_line *l, const char *k, long long value)
{
        if (!l->on)
                return;
        int r;
        size_t mark = key(l, k, &r);
        if (r == 0)
                r = buf_printf(&l->b, "%lld", value);
        field_end(l, k, mark, r);
}

void log_bool(struct log_line *l, const char *k, bool value)
{
        if (!l->on)
                return;
        int r;
        size_t mark = key(l, k, &r);
        if (r == 0)
                r = buf_puts(&l->b, value ? "true" : "false");
        field_end(l, k, mark, r);
}

void log_raw(struct log_line *l, const char *k, const char *json)
{
        if (!l->on || !json)
                return;
        int r;
        size_t mark = key(l, k, &r);
        if (r == 0)
                r = buf_puts(&l->b, json);
        field_end(l, k, mark, r);
}

void log_end(struct log_line *l)
{
        if (!l->on)
                return;
        /* The reserve is for this tail: the names of what was dropped, and the end. */
        l->b.max = WH_LOG_LINE_MAX;
        int r = 0;
        if (l->n_truncated) {
                r = buf_puts(&l->b, ",\"truncated\":[");
                for (unsigned i = 0; r == 0 && i < l->n_truncated; i++) {
                        if (i)
                                r = buf_putc(&l->b, ',');
                        if (r == 0)
                                r = buf_put_json_strn(&l->b, l->truncated[i], strnlen(l->truncated[i], WH_LOG_KEY_MAX));
                }
                if (r == 0)
                        r = buf_putc(&l->b, ']');
        }
        if (r == 0)
                r = buf_puts(&l->b, "}\n");
        if (r < 0) {
                /* Out of memory (the reserve always fits): one valid line all the same. */
                buf_free(&l->b);
                buf_init(&l->b, WH_LOG_LINE_MAX);
                buf_puts(&l->b, "{\"level\":\"warn\",\"msg\":\"log line dropped: out of memory\"}\n");
        }
        const char *p = l->b.data;
        size_t n = l->b.len;
        int fd = l->audit && audit_fd >= 0 ? audit_fd : STDERR_FILENO;
        while (n) {
                ssize_t w = write(fd, p, n);
                if (w < 0 && errno == EINTR)
                        continue;
                if (w <= 0)
                        break;
                p += w;
                n -= (size_t)w;
        }
        buf_free(&l->b);
        l->on = false;
}

void log_message(enum log_level level, const char *msg, const char *detail)
{
        struct log_line l;
        log_begin(&l, level, msg);
        log_str(&l, "error", detail);
        log_end(&l);
}
