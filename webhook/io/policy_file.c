/* Policy from a file: see include/io/policy_file.h. */
#include "policy_file.h"

#include <errno.h>
#include <stdbool.h>
#include <string.h>

#include <gnutls/crypto.h>
#include <gnutls/gnutls.h>

#include "fileio.h"
#include "webhook_limits.h"

/* The problems of one load, before the file name is put in front of each. */

/* With GnuTLS, which the server has loaded and set up for TLS anyway:
 * OpenSSL's digest would set up its default provider and configuration
 * first, about 2 MiB resident in `serve` for one hash. */
static void sha256_hex(const char *text, size_t len, char out[65])
{
        static const char hex[] = "0123456789abcdef";
        unsigned char md[32];
        if (gnutls_hash_get_len(GNUTLS_DIG_SHA256) != sizeof md ||
            gnutls_hash_fast(GNUTLS_DIG_SHA256, text, len, md) < 0) {
                memset(out, '0', 64);
        } else {
                for (unsigned i = 0; i < sizeof md; i++) {
                        out[2 * i] = hex[md[i] >> 4];
                        out[2 * i + 1] = hex[md[i] & 0x0f];
                }
        }
        out[64] = '\0';
}

/* `path` is what is read, `name` what the problem lines are named after. */
static int load(const char *path, const char *name, struct policy **ret_policy, struct buf *errors)
{
        struct buf text, raw;
        char err[512];
        buf_init(&text, WH_MAX_POLICY_BYTES);
        buf_init(&raw, WH_POLICY_ERRORS_MAX_BYTES);
        int r = fileio_read(path, &text, err, sizeof err);
        if (r < 0) {
                if (name != path)
                        buf_printf(errors, "cannot read %s: %s\n", name, strerror(-r));
                else
                        buf_printf(errors, "%s\n", err);
                r = r == -EINVAL ? -EIO : r; /* -EINVAL says: read, and not a policy */
                goto out;
        }
        char sha256[65];
        sha256_hex(text.data ? text.data : "", text.len, sha256);
        r = policy_load_sha256(text.data ? text.data : "", text.len, sha256, ret_policy, &raw);
        if (r < 0)
                policy_errors_prefix(errors, name, raw.data ? raw.data : "");   /* one "PATH:" per line */
out:
        buf_free(&text);
        buf_free(&raw);
        return r;
}

int policy_file_load(const char *path, struct policy **ret_policy, struct buf *errors)
{
        return load(path, path, ret_policy, errors);
}

int policy_file_load_stdin(struct policy **ret_policy, struct buf *errors)
{
        return load("/dev/stdin", POLICY_FILE_STDIN_NAME, ret_policy, errors);
}
