/* JSON log lines: see include/log.h. */
#include "log.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

/* One log line; a longer one is cut, never split. */
#define LOG_LINE_MAX (64u * 1024u)

static enum log_level min_level = LOG_INFO;
static const char *const level_names[LOG_LEVEL_MAX] = { "debug", "info", "warn", "error" };

void log_set_level(enum log_level level)
{
        min_level = level;
}

void log_begin(struct log_line *l, enum log_level level, const char *msg)
{
        l->on = level >= min_level && level < LOG_LEVEL_MAX;
        if (!l->on)
                return;
        buf_init(&l->b, LOG_LINE_MAX);
        struct timespec ts;
        struct tm tm;
        char when[40];
        clock_gettime(CLOCK_REALTIME, &ts);
        gmtime_r(&ts.tv_sec, &tm);
        strftime(when, sizeof when, "%Y-%m-%dT%H:%M:%S", &tm);
        buf_printf(&l->b, "{\"time\":\"%s.%03ldZ\",\"level\":\"%s\",\"msg\":", when,
                   ts.tv_nsec / 1000000, level_names[level]);
        buf_put_json_str(&l->b, msg);
}

static void key(struct log_line *l, const char *k)
{
        buf_putc(&l->b, ',');
        buf_put_json_str(&l->b, k);
        buf_putc(&l->b, ':');
}

void log_str(struct log_line *l, const char *k, const char *value)
{
        if (!l->on || !value)
                return;
        key(l, k);
        buf_put_json_str(&l->b, value);
}

void log_int(struct log_line *l, const char *k, long long value)
{
        if (!l->on)
                return;
        key(l, k);
        buf_printf(&l->b, "%lld", value);
}

void log_bool(struct log_line *l, const char *k, bool value)
{
        if (!l->on)
                return;
        key(l, k);
        buf_puts(&l->b, value ? "true" : "false");
}

void log_raw(struct log_line *l, const char *k, const char *json)
{
        if (!l->on || !json)
                return;
        key(l, k);
        buf_puts(&l->b, json);
}

void log_end(struct log_line *l)
{
        if (!l->on)
                return;
        if (buf_puts(&l->b, "}\n") < 0) {
                /* Cut: the line is still one valid JSON object. */
                buf_reset(&l->b);
                buf_puts(&l->b, "{\"level\":\"warn\",\"msg\":\"log line too long, dropped\"}\n");
        }
        const char *p = l->b.data;
        size_t n = l->b.len;
        while (n) {
                ssize_t w = write(STDERR_FILENO, p, n);
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
