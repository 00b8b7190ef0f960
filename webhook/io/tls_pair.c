/* The serving pair as GnuTLS reads it: see include/io/tls_pair.h. */
#include "tls_pair.h"

#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include <gnutls/gnutls.h>
#include <gnutls/x509.h>

#include "buf.h"
#include "err.h"
#include "fileio.h"
#include "webhook_limits.h"

#define TIME_TEXT_MAX sizeof("9999-12-31T23:59:59Z")
/* Room for a serial's DER octets: RFC 5280 allows 20, and a longer one
 * must be reported as too long, not cut. */
#define SERIAL_DER_MAX 128u
/* A key file is read in one piece this large (fileio's chunk), so that no
 * copy of the key is left behind in memory that a growing buffer freed. */
#define KEY_READ_ROOM 16384u

/* The text as the server gets it: up to the NUL, as server.c measures it. */
static gnutls_datum_t datum_of(const struct buf *b)
{
        return (gnutls_datum_t){ (unsigned char *)(b->data ? b->data : ""), (unsigned)(b->data ? strlen(b->data) : 0) };
}

/* Whether the text has a "-----BEGIN <label>-----" line whose label ends in
 * `suffix` ("CERTIFICATE", "PRIVATE KEY"): tells "no PEM block of that
 * kind" from "a block GnuTLS cannot read". */
static bool has_pem_block(const struct buf *b, const char *suffix)
{
        static const char begin[] = "-----BEGIN ";
        size_t n = strlen(suffix);
        const char *p = b->data, *end = b->data ? b->data + b->len : NULL;

        while (p && (p = memmem(p, (size_t)(end - p), begin, sizeof(begin) - 1))) {
                const char *label = p + sizeof(begin) - 1;
                const char *close = memmem(label, (size_t)(end - label), "-----", 5);

                if (!close)
                        return false;
                if ((size_t)(close - label) >= n && memcmp(close - n, suffix, n) == 0 &&
                    !memchr(label, '\n', (size_t)(close - label)))
                        return true;
                p = label;
        }
        return false;
}

/* Frees a buffer that held a private key. */
static void buf_wipe(struct buf *b)
{
        if (b->data)
                explicit_bzero(b->data, b->cap);
        buf_free(b);
}

/* The chain as server.c imports it (gnutls_pcert_list_import_x509_raw()
 * reads it with gnutls_x509_crt_list_import(), the same bound), so what
 * passes here loads there. Stricter in one way: the server would quietly
 * serve the first WH_TLS_MAX_CHAIN certificates of a longer file, which
 * would leave clients without the rest of the chain. */
static int import_chain(const char *path, const struct buf *pem, gnutls_x509_crt_t crts[static WH_TLS_MAX_CHAIN],
                        unsigned *ret_n, char *err, size_t errlen)
{
        gnutls_datum_t d = datum_of(pem);
        unsigned n = WH_TLS_MAX_CHAIN;
        int g = gnutls_x509_crt_list_import(crts, &n, &d, GNUTLS_X509_FMT_PEM,
                                            GNUTLS_X509_CRT_LIST_IMPORT_FAIL_IF_EXCEED);

        if (g == GNUTLS_E_SHORT_MEMORY_BUFFER) {
                err_set(err, errlen, "%s holds more than %u certificates; the server serves a chain of at most %u",
                        path, WH_TLS_MAX_CHAIN, WH_TLS_MAX_CHAIN);
                return -EINVAL;
        }
        if (g == GNUTLS_E_MEMORY_ERROR) {
                err_set(err, errlen, "out of memory");
                return -ENOMEM;
        }
        if (g <= 0) {
                if (g == 0 || g == GNUTLS_E_NO_CERTIFICATE_FOUND || !has_pem_block(pem, "CERTIFICATE"))
                        err_set(err, errlen, "%s holds no PEM certificate", path);
                else
                        err_set(err, errlen, "%s holds a certificate that GnuTLS cannot read: %s", path,
                                gnutls_strerror(g));
                return -EINVAL;
        }
        *ret_n = (unsigned)g;
        return 0;
}

/* The key as server.c imports it (gnutls_privkey_import_x509_raw() reads it
 * with gnutls_x509_privkey_import2(), no password, no flags): GnuTLS never
 * asks on a terminal for a passphrase. */
static int import_key(const char *path, const struct buf *pem, gnutls_x509_privkey_t *ret, char *err, size_t errlen)
{
        gnutls_datum_t d = datum_of(pem);
        gnutls_x509_privkey_t key;
        int g = gnutls_x509_privkey_init(&key);

        if (g < 0) {
                err_set(err, errlen, "out of memory");
                return -ENOMEM;
        }
        g = gnutls_x509_privkey_import2(key, &d, GNUTLS_X509_FMT_PEM, NULL, 0);
        if (g < 0) {
                gnutls_x509_privkey_deinit(key);
                if (g == GNUTLS_E_MEMORY_ERROR) {
                        err_set(err, errlen, "out of memory");
                        return -ENOMEM;
                }
                if (g == GNUTLS_E_DECRYPTION_FAILED || has_pem_block(pem, "ENCRYPTED PRIVATE KEY") ||
                    (pem->data && memmem(pem->data, pem->len, "Proc-Type: 4,ENCRYPTED", 22)))
                        err_set(err, errlen, "%s is encrypted; only an unencrypted key can be used", path);
                else if (!has_pem_block(pem, "PRIVATE KEY"))
                        err_set(err, errlen, "%s holds no PEM private key", path);
                else
                        err_set(err, errlen, "%s holds a private key that GnuTLS cannot read: %s", path,
                                gnutls_strerror(g));
                return -EINVAL;
        }
        *ret = key;
        return 0;
}

/* GnuTLS's own test when a pair is set on credentials: the same algorithm,
 * and a signature by the key that the first certificate verifies. */
static int check_match(const char *cert_path, gnutls_x509_crt_t *crts, unsigned n, const char *key_path,
                       gnutls_x509_privkey_t key, char *err, size_t errlen)
{
        gnutls_certificate_credentials_t cred;
        int g = gnutls_certificate_allocate_credentials(&cred);

        if (g < 0) {
                err_set(err, errlen, "out of memory");
                return -ENOMEM;
        }
        g = gnutls_certificate_set_x509_key(cred, crts, n, key);
        gnutls_certificate_free_credentials(cred);
        if (g == GNUTLS_E_CERTIFICATE_KEY_MISMATCH) {
                err_set(err, errlen, "%s does not match %s", key_path, cert_path);
                return -EINVAL;
        }
        if (g == GNUTLS_E_MEMORY_ERROR) {
                err_set(err, errlen, "out of memory");
                return -ENOMEM;
        }
        if (g < 0) {
                err_set(err, errlen, "%s and %s cannot be served together: %s", cert_path, key_path,
                        gnutls_strerror(g));
                return -EINVAL;
        }
        return 0;
}

static void time_text(time_t t, char text[static TIME_TEXT_MAX])
{
        struct tm tm;

        if (!gmtime_r(&t, &tm) || strftime(text, TIME_TEXT_MAX, "%Y-%m-%dT%H:%M:%SZ", &tm) == 0)
                snprintf(text, TIME_TEXT_MAX, "%lld", (long long)t);
}

static int check_validity(const char *path, gnutls_x509_crt_t crt, struct tls_pair_info *info, char *err, size_t errlen)
{
        char when[TIME_TEXT_MAX];
        time_t now = time(NULL);

        info->not_before = gnutls_x509_crt_get_activation_time(crt);
        info->not_after = gnutls_x509_crt_get_expiration_time(crt);
        if (info->not_before == (time_t)-1 || info->not_after == (time_t)-1) {
                err_set(err, errlen, "certificate %s has an unreadable validity period", path);
                return -EINVAL;
        }
        if (now < info->not_before) {
                time_text(info->not_before, when);
                err_set(err, errlen, "certificate %s is not yet valid until %s", path, when);
                return -EKEYEXPIRED;
        }
        if (now > info->not_after) {
                time_text(info->not_after, when);
                err_set(err, errlen, "certificate %s expired on %s", path, when);
                return -EKEYEXPIRED;
        }
        return 0;
}

/* The serial's octets as DER holds them, in lowercase hex, the way
 * `openssl x509 -serial` prints them: the sign octet that DER puts before a
 * positive number with its high bit set is not part of the number. */
static int serial_hex(const char *path, gnutls_x509_crt_t crt, char *ret, size_t len, char *err, size_t errlen)
{
        static const char hex[] = "0123456789abcdef";
        unsigned char der[SERIAL_DER_MAX];
        size_t n = sizeof(der), skip = 0, o = 0;
        int g = gnutls_x509_crt_get_serial(crt, der, &n);
        bool negative;

        if (g < 0 && g != GNUTLS_E_SHORT_MEMORY_BUFFER) {
                err_set(err, errlen, "certificate %s has an unreadable serial number: %s", path, gnutls_strerror(g));
                return -EINVAL;
        }
        negative = g == 0 && n > 0 && (der[0] & 0x80);
        if (negative) {
                /* Two's complement to magnitude: invert, add one. */
                unsigned carry = 1;

                for (size_t i = n; i-- > 0;) {
                        unsigned v = (unsigned)(unsigned char)~der[i] + carry;

                        der[i] = (unsigned char)v;
                        carry = v >> 8;
                }
        }
        while (g == 0 && n - skip > 1 && der[skip] == 0)
                skip++;
        if (g < 0 || (n - skip) * 2 + negative + 1 > len) {
                err_set(err, errlen, "certificate %s has a serial number longer than %zu octets", path, (len - 2) / 2);
                return -EINVAL;
        }
        if (negative)
                ret[o++] = '-';
        for (size_t i = skip; i < n; i++) {
                ret[o++] = hex[der[i] >> 4];
                ret[o++] = hex[der[i] & 0x0f];
        }
        ret[o] = '\0';
        return 0;
}

/* GnuTLS's RFC 4514 text with every byte outside printable ASCII escaped
 * as \XX (RFC 4514 allows any character so), cut to fit `len`: it is for
 * logs and JSON. */
static int subject_text(const char *path, gnutls_x509_crt_t crt, char *ret, size_t len, char *err, size_t errlen)
{
        static const char hex[] = "0123456789ABCDEF";
        gnutls_datum_t dn = { NULL, 0 };
        int g = gnutls_x509_crt_get_dn3(crt, &dn, 0);
        size_t i, o = 0;

        if (g == GNUTLS_E_REQUESTED_DATA_NOT_AVAILABLE) {
                ret[0] = '\0';   /* an empty name: cert-manager issues such, with SANs only */
                return 0;
        }
        if (g < 0) {
                err_set(err, errlen, "certificate %s has an unreadable subject name: %s", path, gnutls_strerror(g));
                return -EINVAL;
        }
        for (i = 0; i < dn.size; i++) {
                unsigned char c = dn.data[i];
                bool plain = c >= 0x20 && c < 0x7f;

                if (o + (plain ? 1 : 3) >= len)
                        break;
                if (plain) {
                        ret[o++] = (char)c;
                } else {
                        ret[o++] = '\\';
                        ret[o++] = hex[c >> 4];
                        ret[o++] = hex[c & 0x0f];
                }
        }
        if (i < dn.size) {
                /* Cut: not between GnuTLS's backslash and what it escapes. */
                size_t backslashes = 0;

                while (backslashes < o && ret[o - 1 - backslashes] == '\\')
                        backslashes++;
                o -= backslashes % 2;
        }
        ret[o] = '\0';
        gnutls_free(dn.data);
        return 0;
}

int tls_pair_read(const char *cert_path, const char *key_path, struct tls_pair *ret_pair, char *err, size_t errlen)
{
        struct tls_pair pair = { 0 };
        gnutls_x509_crt_t crts[WH_TLS_MAX_CHAIN];
        gnutls_x509_privkey_t key = NULL;
        unsigned n = 0;
        int r;

        buf_init(&pair.cert_pem, WH_MAX_PEM_BYTES);
        buf_init(&pair.key_pem, WH_MAX_PEM_BYTES);
        if ((r = fileio_read(cert_path, &pair.cert_pem, err, errlen)) < 0 ||
            (r = import_chain(cert_path, &pair.cert_pem, crts, &n, err, errlen)) < 0)
                goto out;
        if (buf_grow(&pair.key_pem, KEY_READ_ROOM) < 0) {
                err_set(err, errlen, "out of memory");
                r = -ENOMEM;
                goto out;
        }
        if ((r = fileio_read(key_path, &pair.key_pem, err, errlen)) < 0 ||
            (r = import_key(key_path, &pair.key_pem, &key, err, errlen)) < 0 ||
            (r = check_match(cert_path, crts, n, key_path, key, err, errlen)) < 0 ||
            (r = check_validity(cert_path, crts[0], &pair.info, err, errlen)) < 0 ||
            (r = serial_hex(cert_path, crts[0], pair.info.serial, sizeof(pair.info.serial), err, errlen)) < 0 ||
            (r = subject_text(cert_path, crts[0], pair.info.subject, sizeof(pair.info.subject), err, errlen)) < 0)
                goto out;
        *ret_pair = pair;
        pair = (struct tls_pair){ 0 };
out:
        if (key)
                gnutls_x509_privkey_deinit(key);
        for (unsigned i = 0; i < n; i++)
                gnutls_x509_crt_deinit(crts[i]);
        tls_pair_free(&pair);
        return r;
}

void tls_pair_free(struct tls_pair *p)
{
        if (!p)
                return;
        buf_free(&p->cert_pem);
        buf_wipe(&p->key_pem);
}

int tls_pair_client_ca_read(const char *path, struct buf *ret_pem, char *err, size_t errlen)
{
        buf_init(ret_pem, WH_MAX_PEM_BYTES);
        int r = fileio_read(path, ret_pem, err, errlen);
        if (r < 0)
                return r;
        gnutls_x509_crt_t *certs = NULL;
        unsigned n = 0;
        gnutls_datum_t d = { .data = (unsigned char *)(ret_pem->data ? ret_pem->data : ""),
                             .size = (unsigned)ret_pem->len };
        r = gnutls_x509_crt_list_import2(&certs, &n, &d, GNUTLS_X509_FMT_PEM, 0);
        if (r < 0 || n == 0) {
                err_set(err, errlen, "%s: no PEM certificate could be read (%s)", path,
                        r < 0 ? gnutls_strerror(r) : "none found");
                buf_free(ret_pem);
                return -EINVAL;
        }
        time_t now = time(NULL);
        int rc = 0;
        for (unsigned i = 0; i < n; i++) {
                if (rc == 0 && gnutls_x509_crt_get_expiration_time(certs[i]) < now) {
                        err_set(err, errlen, "%s: certificate %u of %u has expired", path, i + 1, n);
                        rc = -EINVAL;
                }
                gnutls_x509_crt_deinit(certs[i]);
        }
        gnutls_free(certs);
        if (rc < 0)
                buf_free(ret_pem);
        return rc;
}
