/* Structured log lines: one JSON object per line on stderr, written with a
 * single write() so that lines from several threads never interleave. Every
 * line is valid JSON whatever it is given: a field that does not fit in the
 * line (WH_LOG_LINE_MAX) is dropped whole and named in a "truncated" list,
 * e.g. {"msg":"admission",...,"truncated":["patch"]}.
 * Only the top layer (main, commands, server glue) logs.
 *
 *   struct log_line l;
 *   log_begin(&l, LOG_INFO, "policy loaded");
 *   log_str(&l, "sha256", sha);
 *   log_end(&l);
 *
 * A log_line lives on the caller's stack between log_begin() and log_end();
 * log_end() releases it. */
#pragma once
#include <stdbool.h>
#include <stddef.h>

#include "buf.h"
#include "webhook_limits.h"

enum log_level { LOG_DEBUG, LOG_INFO, LOG_WARN, LOG_ERROR, LOG_LEVEL_MAX };

struct log_line {
        struct buf b;
        bool on;        /* false: below the level in force, every call is a no-op */
        bool audit;     /* goes to the audit log (--audit-log), not stderr */
        /* Fields that did not fit, dropped whole; named in the line's
         * "truncated" list. The keys are the callers' (string literals). */
        const char *truncated[WH_LOG_MAX_TRUNCATED];
        unsigned n_truncated;
};

/* Lines below `level` are dropped. Default LOG_INFO. Call before threads start. */
void log_set_level(enum log_level level);

void log_begin(struct log_line *l, enum log_level level, const char *msg);

/* Begins a decision line: it goes to the audit log file when one is set,
 * else to stderr like the others, whatever the level in force. */
void log_begin_audit(struct log_line *l, enum log_level level, const char *msg);

/* Sends decision lines to `path` (appended, created 0640). 0 or a negative
 * errno with a message. Call before threads start. */
int log_set_audit_file(const char *path, char *err, size_t errlen);

/* Reopens the audit log file when it was renamed or removed (logrotate), or
 * always when `force` (SIGHUP). Lines being written meanwhile are not lost:
 * the new file replaces the old descriptor in one step. 0, or a negative
 * errno with a message (the old file stays in use). */
int log_reopen_audit(bool force, char *err, size_t errlen);
/* The key must stay valid until log_end() (a string literal). */
void log_str(struct log_line *l, const char *key, const char *value);   /* NULL value: skipped */
void log_int(struct log_line *l, const char *key, long long value);
void log_bool(struct log_line *l, const char *key, bool value);
/* Appends `json` (already valid JSON text) as the value of `key`. */
void log_raw(struct log_line *l, const char *key, const char *json);
void log_end(struct log_line *l);

/* One-call forms: {"level":..,"msg":msg,"error":detail}. */
void log_message(enum log_level level, const char *msg, const char *detail);
