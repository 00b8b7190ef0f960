/* Policy from a file: see include/policy_file.h. */
#include "policy_file.h"

#include <errno.h>
#include <stdbool.h>
#include <string.h>

#include "fileio.h"
#include "webhook_limits.h"

/* The problems of one load, before the file name is put in front of each. */
#define POLICY_ERRORS_MAX (64u * 1024u)

int policy_file_load(const char *path, struct policy **ret_policy, struct buf *errors)
{
        struct buf text, raw;
        char err[512];
        buf_init(&text, WH_MAX_POLICY_BYTES);
        buf_init(&raw, POLICY_ERRORS_MAX);
        int r = file_read(path, &text, err, sizeof err);
        if (r < 0) {
                buf_printf(errors, "%s\n", err);
                goto out;
        }
        r = policy_load(text.data ? text.data : "", text.len, ret_policy, &raw);
        if (r < 0) {
                /* One "PATH:" per line. */
                const char *line = raw.data ? raw.data : "";
                while (*line) {
                        const char *nl = strchr(line, '\n');
                        size_t n = nl ? (size_t)(nl - line) : strlen(line);
                        bool placed = line[0] >= '0' && line[0] <= '9';   /* "LINE:COL: ..." */
                        buf_printf(errors, "%s:%s%.*s\n", path, placed ? "" : " ", (int)n, line);
                        line += n + (nl ? 1 : 0);
                }
        }
out:
        buf_free(&text);
        buf_free(&raw);
        return r;
}
