/* Certificates with OpenSSL 3: see include/io/certs.h. */
#include "certs.h"
#include "buf.h"
#include "err.h"
#include "fileio.h"
#include "webhook_limits.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/bio.h>
#include <openssl/bn.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

/* Until include/core/webhook_limits.h carries it. */
#ifndef WH_CERT_CLOCK_SKEW_S
#define WH_CERT_CLOCK_SKEW_S 300                /* notBefore is backdated by this */
#endif

#define SERIAL_BITS 159          /* positive and at most 20 octets in DER (RFC 5280 4.1.2.2) */
#define DNS_NAME_MAX 253         /* RFC 1035 2.3.4, without the trailing dot */
#define DNS_LABEL_MAX 63
#define CN_MAX 64                /* ub-common-name, RFC 5280 appendix A */
#define CA_COMMON_NAME "spark-identity-webhook CA"
#define TIME_TEXT_MAX sizeof("9999-12-31T23:59:59Z")

enum { FILE_CA_CRT, FILE_CA_KEY, FILE_TLS_CRT, FILE_TLS_KEY, FILE_MAX };

static const struct {
        const char *name;
        mode_t mode;
} out_files[FILE_MAX] = {
        [FILE_CA_CRT] = { "ca.crt", 0644 },
        [FILE_CA_KEY] = { "ca.key", 0600 },
        [FILE_TLS_CRT] = { "tls.crt", 0644 },
        [FILE_TLS_KEY] = { "tls.key", 0600 },
};

/* "what: <OpenSSL's reason>", and empties OpenSSL's (thread-local) queue so
 * that the next failure does not report this one. */
static void err_set_ssl(char *err, size_t errlen, const char *what)
{
        unsigned long e = ERR_peek_last_error();
        char reason[256] = "unknown error";

        if (e != 0)
                ERR_error_string_n(e, reason, sizeof(reason));
        ERR_clear_error();
        err_set(err, errlen, "%s: %s", what, reason);
}

/* ---- validation ---------------------------------------------------------- */

/* IPv4 or IPv6 text to its 4 or 16 octets. */
static int parse_ip(const char *s, unsigned char ret[static sizeof(struct in6_addr)], size_t *ret_len)
{
        if (!s)
                return -EINVAL;
        if (inet_pton(AF_INET, s, ret) == 1) {
                *ret_len = sizeof(struct in_addr);
                return 0;
        }
        if (inet_pton(AF_INET6, s, ret) == 1) {
                *ret_len = sizeof(struct in6_addr);
                return 0;
        }
        return -EINVAL;
}

static bool is_alnum_lower(char c)
{
        return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9');
}

static bool is_alnum(char c)
{
        return is_alnum_lower(c) || (c >= 'A' && c <= 'Z');
}

/* A Kubernetes DNS-1123 label: [a-z0-9]([-a-z0-9]*[a-z0-9])?, 1..63. */
static int check_dns1123_label(const char *what, const char *s, char *err, size_t errlen)
{
        size_t n;

        if (!s || !*s) {
                err_set(err, errlen, "%s is empty", what);
                return -EINVAL;
        }
        n = strlen(s);
        if (n > DNS_LABEL_MAX) {
                err_set(err, errlen, "%s \"%s\" is longer than %d characters", what, s, DNS_LABEL_MAX);
                return -EINVAL;
        }
        for (size_t i = 0; i < n; i++) {
                if (!is_alnum_lower(s[i]) && s[i] != '-') {
                        err_set(err, errlen,
                                "%s \"%s\" is not a DNS-1123 label: only lowercase letters, digits and '-' are allowed",
                                what, s);
                        return -EINVAL;
                }
        }
        if (s[0] == '-' || s[n - 1] == '-') {
                err_set(err, errlen, "%s \"%s\" is not a DNS-1123 label: it must start and end with a letter or digit",
                        what, s);
                return -EINVAL;
        }
        return 0;
}

/* An RFC 1123 host name label: letters, digits and '-', not at either end. */
static bool is_host_label(const char *s, size_t n)
{
        if (n == 0 || n > DNS_LABEL_MAX || s[0] == '-' || s[n - 1] == '-')
                return false;
        for (size_t i = 0; i < n; i++)
                if (!is_alnum(s[i]) && s[i] != '-')
                        return false;
        return true;
}

/* A host name, or "*." and a host name of at least two labels (OpenSSL's
 * X509_check_host() matches no shorter wildcard). */
static int check_dns_name(const char *s, char *err, size_t errlen)
{
        const char *host = s;
        const char *p;
        unsigned char ip[sizeof(struct in6_addr)];
        size_t labels = 0, iplen;

        if (!s || !*s) {
                err_set(err, errlen, "empty DNS name");
                return -EINVAL;
        }
        if (strlen(s) > DNS_NAME_MAX) {
                err_set(err, errlen, "DNS name \"%.40s...\" is longer than %d characters", s, DNS_NAME_MAX);
                return -EINVAL;
        }
        if (parse_ip(s, ip, &iplen) == 0) {
                err_set(err, errlen, "\"%s\" is an IP address, not a DNS name (use --ip)", s);
                return -EINVAL;
        }
        if (strncmp(s, "*.", 2) == 0)
                host = s + 2;
        p = host;
        for (;;) {
                size_t n = strcspn(p, ".");

                if (!is_host_label(p, n)) {
                        err_set(err, errlen,
                                "\"%s\" is not a valid DNS name: each dot-separated label must be 1..%d letters, "
                                "digits "
                                "or '-', not starting or ending with '-' (a wildcard is allowed only as a whole first "
                                "label, \"*.\")",
                                s, DNS_LABEL_MAX);
                        return -EINVAL;
                }
                labels++;
                if (p[n] == '\0')
                        break;
                p += n + 1;
        }
        if (host != s && labels < 2) {
                err_set(err, errlen, "wildcard \"%s\" needs at least two labels after \"*.\"", s);
                return -EINVAL;
        }
        return 0;
}

/* ---- building certificates ----------------------------------------------- */

static int set_random_serial(X509 *x, char *err, size_t errlen)
{
        BIGNUM *bn = BN_new();
        int ret = -EIO;

        /* TOP_ONE: exactly SERIAL_BITS long, so never zero and never more
         * than 20 octets once DER adds no sign byte. */
        if (!bn || !BN_rand(bn, SERIAL_BITS, BN_RAND_TOP_ONE, BN_RAND_BOTTOM_ANY) ||
            !BN_to_ASN1_INTEGER(bn, X509_get_serialNumber(x))) {
                err_set_ssl(err, errlen, "cannot make a serial number");
                goto out;
        }
        ret = 0;
out:
        BN_free(bn);
        return ret;
}

static int add_ext(X509 *x, X509V3_CTX *ctx, int nid, const char *value, char *err, size_t errlen)
{
        X509_EXTENSION *ext = X509V3_EXT_conf_nid(NULL, ctx, nid, value);
        int ret = -EIO;

        if (!ext || !X509_add_ext(x, ext, -1)) {
                err_set_ssl(err, errlen, "cannot add a certificate extension");
                goto out;
        }
        ret = 0;
out:
        X509_EXTENSION_free(ext);
        return ret;
}

/* A certificate with version, serial, validity, subject and public key set;
 * the issuer, extensions and signature are the caller's. */
static int new_cert(EVP_PKEY *key, const char *cn, time_t now, unsigned days, X509 **ret_x, char *err, size_t errlen)
{
        X509 *x = X509_new();
        int r;

        if (!x) {
                err_set_ssl(err, errlen, "cannot make a certificate");
                return -ENOMEM;
        }
        if (!X509_set_version(x, X509_VERSION_3) ||
            !X509_time_adj_ex(X509_getm_notBefore(x), 0, -WH_CERT_CLOCK_SKEW_S, &now) ||
            !X509_time_adj_ex(X509_getm_notAfter(x), (int)days, 0, &now) || !X509_set_pubkey(x, key)) {
                err_set_ssl(err, errlen, "cannot make a certificate");
                r = -EIO;
                goto fail;
        }
        r = set_random_serial(x, err, errlen);
        if (r < 0)
                goto fail;
        if (!X509_NAME_add_entry_by_NID(X509_get_subject_name(x), NID_commonName, MBSTRING_UTF8,
                                        (const unsigned char *)cn, -1, -1, 0)) {
                err_set_ssl(err, errlen, "cannot set the subject name");
                r = -EIO;
                goto fail;
        }
        *ret_x = x;
        return 0;
fail:
        X509_free(x);
        return r;
}

static int gen_key(EVP_PKEY **ret_key, char *err, size_t errlen)
{
        EVP_PKEY *key = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");

        if (!key) {
                err_set_ssl(err, errlen, "cannot generate an ECDSA P-256 key");
                return -EIO;
        }
        *ret_key = key;
        return 0;
}

static int sign_cert(X509 *x, EVP_PKEY *ca_key, char *err, size_t errlen)
{
        /* A renewal may sign with a CA key that was not made here; EdDSA
         * hashes by itself and takes no digest. */
        bool eddsa = EVP_PKEY_is_a(ca_key, "ED25519") || EVP_PKEY_is_a(ca_key, "ED448");

        if (X509_sign(x, ca_key, eddsa ? NULL : EVP_sha256()) <= 0) {
                err_set_ssl(err, errlen, "cannot sign the certificate");
                return -EIO;
        }
        return 0;
}

static int make_ca(EVP_PKEY *ca_key, time_t now, X509 **ret_ca, char *err, size_t errlen)
{
        X509 *ca = NULL;
        X509V3_CTX ctx;
        int r;

        r = new_cert(ca_key, CA_COMMON_NAME, now, WH_CA_DAYS, &ca, err, errlen);
        if (r < 0)
                return r;
        if (!X509_set_issuer_name(ca, X509_get_subject_name(ca))) {
                err_set_ssl(err, errlen, "cannot set the issuer name");
                r = -EIO;
                goto out;
        }
        X509V3_set_ctx(&ctx, ca, ca, NULL, NULL, 0);
        /* pathlen:0 because this CA signs serving certificates only. */
        if ((r = add_ext(ca, &ctx, NID_basic_constraints, "critical,CA:TRUE,pathlen:0", err, errlen)) < 0 ||
            (r = add_ext(ca, &ctx, NID_key_usage, "critical,keyCertSign,cRLSign", err, errlen)) < 0 ||
            (r = add_ext(ca, &ctx, NID_subject_key_identifier, "hash", err, errlen)) < 0 ||
            (r = sign_cert(ca, ca_key, err, errlen)) < 0)
                goto out;
        *ret_ca = ca;
        ca = NULL;
out:
        X509_free(ca);
        return r;
}

static bool gens_have(const GENERAL_NAMES *gens, int type, const void *data, size_t len)
{
        for (int i = 0; i < sk_GENERAL_NAME_num(gens); i++) {
                const GENERAL_NAME *g = sk_GENERAL_NAME_value(gens, i);
                const ASN1_STRING *s = type == GEN_DNS ? g->d.dNSName : g->d.iPAddress;

                if (g->type != type || (size_t)ASN1_STRING_length(s) != len)
                        continue;
                if (type == GEN_DNS ? strncasecmp((const char *)ASN1_STRING_get0_data(s), data, len) == 0
                                    : memcmp(ASN1_STRING_get0_data(s), data, len) == 0)
                        return true;
        }
        return false;
}

/* Appends one dNSName or iPAddress, unless the list already holds it. */
static int gens_add(GENERAL_NAMES *gens, int type, const void *data, size_t len, char *err, size_t errlen)
{
        GENERAL_NAME *g = NULL;
        ASN1_STRING *s = NULL;

        if (gens_have(gens, type, data, len))
                return 0;
        g = GENERAL_NAME_new();
        s = type == GEN_DNS ? ASN1_IA5STRING_new() : ASN1_OCTET_STRING_new();
        if (!g || !s || !ASN1_STRING_set(s, data, (int)len))
                goto fail;
        GENERAL_NAME_set0_value(g, type, s);
        s = NULL;
        if (!sk_GENERAL_NAME_push(gens, g))
                goto fail;
        return 0;
fail:
        ASN1_STRING_free(s);
        GENERAL_NAME_free(g);
        err_set_ssl(err, errlen, "cannot build the subject alternative names");
        return -ENOMEM;
}

static int gens_add_dns(GENERAL_NAMES *gens, const char *name, char *err, size_t errlen)
{
        return gens_add(gens, GEN_DNS, name, strlen(name), err, errlen);
}

/* The four names of the Service, then the extra DNS names, then the IPs;
 * all inputs are validated before. */
static int build_sans(const struct certs_request *req, GENERAL_NAMES **ret_gens, char *err, size_t errlen)
{
        static const char *const service_suffixes[] = { "", ".svc", ".svc.cluster.local" };
        GENERAL_NAMES *gens = sk_GENERAL_NAME_new_null();
        char name[DNS_NAME_MAX + 1];
        int r = -ENOMEM;

        if (!gens) {
                err_set_ssl(err, errlen, "cannot build the subject alternative names");
                goto out;
        }
        r = gens_add_dns(gens, req->service, err, errlen);
        for (size_t i = 0; r == 0 && i < sizeof(service_suffixes) / sizeof(service_suffixes[0]); i++) {
                /* Cannot truncate: two labels of at most 63 and a suffix. */
                snprintf(name, sizeof(name), "%s.%s%s", req->service, req->namespace_, service_suffixes[i]);
                r = gens_add_dns(gens, name, err, errlen);
        }
        for (size_t i = 0; r == 0 && i < req->n_dns; i++)
                r = gens_add_dns(gens, req->dns[i], err, errlen);
        for (size_t i = 0; r == 0 && i < req->n_ips; i++) {
                unsigned char ip[sizeof(struct in6_addr)];
                size_t len;

                r = parse_ip(req->ips[i], ip, &len);   /* validated by check_request() */
                if (r == 0)
                        r = gens_add(gens, GEN_IPADD, ip, len, err, errlen);
        }
        if (r < 0)
                goto out;
        *ret_gens = gens;
        gens = NULL;
out:
        GENERAL_NAMES_free(gens);
        return r;
}

static int make_serving(const struct certs_request *req, EVP_PKEY *key, X509 *ca, EVP_PKEY *ca_key, time_t now,
                        X509 **ret_cert, char *err, size_t errlen)
{
        GENERAL_NAMES *gens = NULL;
        X509 *x = NULL;
        X509V3_CTX ctx;
        char cn[DNS_NAME_MAX + 1];
        int r;

        /* The name the API server dials. CN is capped at 64 characters; a
         * longer one would be refused by OpenSSL, and clients match the SANs
         * anyway, so the Service name alone stands in for it then. */
        snprintf(cn, sizeof(cn), "%s.%s.svc", req->service, req->namespace_);
        if (strlen(cn) > CN_MAX)
                snprintf(cn, sizeof(cn), "%s", req->service);

        r = build_sans(req, &gens, err, errlen);
        if (r < 0)
                goto out;
        r = new_cert(key, cn, now, req->days, &x, err, errlen);
        if (r < 0)
                goto out;
        if (!X509_set_issuer_name(x, X509_get_subject_name(ca))) {
                err_set_ssl(err, errlen, "cannot set the issuer name");
                r = -EIO;
                goto out;
        }
        X509V3_set_ctx(&ctx, ca, x, NULL, NULL, 0);
        if ((r = add_ext(x, &ctx, NID_basic_constraints, "CA:FALSE", err, errlen)) < 0 ||
            (r = add_ext(x, &ctx, NID_key_usage, "critical,digitalSignature", err, errlen)) < 0 ||
            (r = add_ext(x, &ctx, NID_ext_key_usage, "serverAuth", err, errlen)) < 0 ||
            (r = add_ext(x, &ctx, NID_subject_key_identifier, "hash", err, errlen)) < 0 ||
            /* The CA's key identifier, or its name and serial when a CA
             * not made here has no subjectKeyIdentifier. */
            (r = add_ext(x, &ctx, NID_authority_key_identifier, "keyid,issuer", err, errlen)) < 0)
                goto out;
        if (X509_add1_ext_i2d(x, NID_subject_alt_name, gens, 0, X509V3_ADD_DEFAULT) != 1) {
                err_set_ssl(err, errlen, "cannot add the subject alternative names");
                r = -EIO;
                goto out;
        }
        r = sign_cert(x, ca_key, err, errlen);
        if (r < 0)
                goto out;
        *ret_cert = x;
        x = NULL;
out:
        X509_free(x);
        GENERAL_NAMES_free(gens);
        return r;
}

/* ---- PEM in memory ------------------------------------------------------- */

/* A certificate, or a key as unencrypted PKCS#8 ("BEGIN PRIVATE KEY"), in a
 * secure-memory BIO, which wipes the key when freed. */
static int to_pem(X509 *cert, EVP_PKEY *key, BIO **ret, char *err, size_t errlen)
{
        BIO *bio = BIO_new(BIO_s_secmem());

        if (!bio || (cert ? !PEM_write_bio_X509(bio, cert)
                          : !PEM_write_bio_PKCS8PrivateKey(bio, key, NULL, NULL, 0, NULL, NULL))) {
                err_set_ssl(err, errlen, "cannot encode PEM");
                BIO_free(bio);
                return -EIO;
        }
        *ret = bio;
        return 0;
}

/* Frees a buffer that may have held a private key. */
static void buf_wipe(struct buf *b)
{
        if (b->data)
                OPENSSL_cleanse(b->data, b->cap);
        buf_free(b);
}

/* ---- files --------------------------------------------------------------- */

static int path_join(const char *dir, const char *name, char *buf, size_t len, char *err, size_t errlen)
{
        size_t n = strlen(dir);
        const char *sep = n > 0 && dir[n - 1] == '/' ? "" : "/";
        int w = snprintf(buf, len, "%s%s%s", dir, sep, name);

        if (w < 0 || (size_t)w >= len) {
                err_set(err, errlen, "path \"%s%s%s\" is too long", dir, sep, name);
                return -ENAMETOOLONG;
        }
        return 0;
}

static int write_all(int fd, const char *p, size_t n)
{
        while (n > 0) {
                ssize_t w = write(fd, p, n);

                if (w < 0) {
                        if (errno == EINTR)
                                continue;
                        return -errno;
                }
                p += w;
                n -= (size_t)w;
        }
        return 0;
}

/* Writes `pem` to a new temporary file beside `path` with `mode`, synced;
 * the caller renames it into place or unlinks it. */
static int write_temp(const char *path, BIO *pem, mode_t mode, char *ret_tmp, size_t tmplen, char *err, size_t errlen)
{
        char tmp[PATH_MAX];
        char *data;
        long len = BIO_get_mem_data(pem, &data);
        int fd = -1;
        int r;

        if (snprintf(tmp, sizeof(tmp), "%s.tmp.XXXXXX", path) >= (int)sizeof(tmp) || strlen(tmp) >= tmplen) {
                err_set(err, errlen, "path \"%s\" is too long", path);
                return -ENAMETOOLONG;
        }
        /* O_CREAT|O_EXCL with mode 0600 from the start: a key is never
         * readable by others, not even for a moment. */
        fd = mkostemp(tmp, O_CLOEXEC);
        if (fd < 0) {
                r = -errno;
                err_set(err, errlen, "cannot create %s: %s", tmp, strerror(-r));
                return r;
        }
        if (fchmod(fd, mode) < 0 || (r = write_all(fd, data, (size_t)len)) < 0 || fsync(fd) < 0) {
                r = -errno;
                goto fail;
        }
        if (close(fd) < 0) {
                fd = -1;
                r = -errno;
                goto fail;
        }
        strcpy(ret_tmp, tmp);
        return 0;
fail:
        err_set(err, errlen, "cannot write %s: %s", tmp, strerror(-r));
        if (fd >= 0)
                close(fd);
        unlink(tmp);
        return r;
}

/* `dir` and its missing parents (0755), as mkdir -p makes them: "--out
 * certs/cluster" works in a directory that has no certs/ yet. */
static int ensure_dir(const char *dir, char *err, size_t errlen)
{
        struct stat st;
        char parent[PATH_MAX];

        if (snprintf(parent, sizeof parent, "%s", dir) >= (int)sizeof parent) {
                err_set(err, errlen, "%s: path too long", dir);
                return -ENAMETOOLONG;
        }
        for (char *slash = strchr(parent + 1, '/'); slash; slash = strchr(slash + 1, '/')) {
                *slash = '\0';
                (void)mkdir(parent, 0755); /* exists already, or the last mkdir() below says why not */
                *slash = '/';
        }
        if (mkdir(dir, 0755) == 0)
                return 0;
        if (errno != EEXIST) {
                int r = -errno;

                err_set(err, errlen, "cannot create directory %s: %s", dir, strerror(-r));
                return r;
        }
        if (stat(dir, &st) < 0 || !S_ISDIR(st.st_mode)) {
                err_set(err, errlen, "%s exists and is not a directory", dir);
                return -ENOTDIR;
        }
        return 0;
}

static int sync_dir(const char *dir, char *err, size_t errlen)
{
        int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        int r = 0;

        if (fd < 0 || fsync(fd) < 0) {
                r = -errno;
                err_set(err, errlen, "cannot sync directory %s: %s", dir, strerror(-r));
        }
        if (fd >= 0)
                close(fd);
        return r;
}

/* Writes files `first` to FILE_MAX - 1: every temporary first, then the
 * renames, so that a failure while writing (a full disk) leaves the files
 * that were there untouched. */
static int write_outputs(const char *dir, int first, bool force, BIO *pems[FILE_MAX], char *err, size_t errlen)
{
        char paths[FILE_MAX][PATH_MAX];
        char tmps[FILE_MAX][PATH_MAX] = { { 0 } };
        int r;

        for (int i = first; i < FILE_MAX; i++) {
                r = path_join(dir, out_files[i].name, paths[i], sizeof(paths[i]), err, errlen);
                if (r < 0)
                        return r;
        }
        r = ensure_dir(dir, err, errlen);
        if (r < 0)
                return r;
        if (!force) {
                for (int i = first; i < FILE_MAX; i++) {
                        struct stat st;

                        if (lstat(paths[i], &st) == 0) {
                                err_set(err, errlen,
                                        "%s already exists: --renew keeps the CA there and signs a new "
                                        "tls.crt and tls.key (the caBundle stays valid); --force makes a new "
                                        "CA and pair over them (the caBundle must then change)",
                                        paths[i]);
                                return -EEXIST;
                        }
                }
        }
        for (int i = first; i < FILE_MAX; i++) {
                r = write_temp(paths[i], pems[i], out_files[i].mode, tmps[i], sizeof(tmps[i]), err, errlen);
                if (r < 0)
                        goto out;
        }
        for (int i = first; i < FILE_MAX; i++) {
                if (rename(tmps[i], paths[i]) < 0) {
                        r = -errno;
                        err_set(err, errlen, "cannot rename %s to %s: %s", tmps[i], paths[i], strerror(-r));
                        goto out;
                }
                tmps[i][0] = '\0';
        }
        r = sync_dir(dir, err, errlen);
out:
        for (int i = first; i < FILE_MAX; i++)
                if (tmps[i][0])
                        unlink(tmps[i]);
        return r;
}

static int check_request(const struct certs_request *req, char *err, size_t errlen)
{
        unsigned char ip[sizeof(struct in6_addr)];
        size_t iplen;
        int r;

        if (!req || !req->out_dir || !*req->out_dir) {
                err_set(err, errlen, "no output directory");
                return -EINVAL;
        }
        if ((r = check_dns1123_label("service name", req->service, err, errlen)) < 0 ||
            (r = check_dns1123_label("namespace", req->namespace_, err, errlen)) < 0)
                return r;
        if (req->days < 1 || req->days > WH_CERT_DAYS_MAX) {
                err_set(err, errlen, "days must be between 1 and %u, not %u", WH_CERT_DAYS_MAX, req->days);
                return -EINVAL;
        }
        if ((req->n_dns > 0 && !req->dns) || (req->n_ips > 0 && !req->ips)) {
                err_set(err, errlen, "no list of extra names");
                return -EINVAL;
        }
        for (size_t i = 0; i < req->n_dns; i++)
                if ((r = check_dns_name(req->dns[i], err, errlen)) < 0)
                        return r;
        for (size_t i = 0; i < req->n_ips; i++) {
                const char *s = req->ips[i];

                if (parse_ip(s, ip, &iplen) < 0) {
                        err_set(err, errlen,
                                "invalid IP address \"%s\" (expected IPv4 like 10.0.0.1 or IPv6 like fd00::1)",
                                s ? s : "");
                        return -EINVAL;
                }
        }
        return 0;
}

int certs_generate(const struct certs_request *req, char *err, size_t errlen)
{
        EVP_PKEY *ca_key = NULL, *key = NULL;
        X509 *ca = NULL, *cert = NULL;
        BIO *pems[FILE_MAX] = { NULL };
        time_t now = time(NULL);
        int r;

        r = check_request(req, err, errlen);
        if (r < 0)
                goto out;
        if ((r = gen_key(&ca_key, err, errlen)) < 0 || (r = make_ca(ca_key, now, &ca, err, errlen)) < 0 ||
            (r = gen_key(&key, err, errlen)) < 0 ||
            (r = make_serving(req, key, ca, ca_key, now, &cert, err, errlen)) < 0)
                goto out;
        if ((r = to_pem(ca, NULL, &pems[FILE_CA_CRT], err, errlen)) < 0 ||
            (r = to_pem(NULL, ca_key, &pems[FILE_CA_KEY], err, errlen)) < 0 ||
            (r = to_pem(cert, NULL, &pems[FILE_TLS_CRT], err, errlen)) < 0 ||
            (r = to_pem(NULL, key, &pems[FILE_TLS_KEY], err, errlen)) < 0)
                goto out;
        r = write_outputs(req->out_dir, FILE_CA_CRT, req->force, pems, err, errlen);
out:
        for (int i = 0; i < FILE_MAX; i++)
                BIO_free(pems[i]);
        X509_free(cert);
        X509_free(ca);
        EVP_PKEY_free(key);
        EVP_PKEY_free(ca_key);
        return r;
}

/* ---- reading ------------------------------------------------------------- */

static int parse_cert(const char *path, const struct buf *pem, X509 **ret, char *err, size_t errlen)
{
        BIO *bio = BIO_new_mem_buf(pem->data, (int)pem->len);
        X509 *x = bio ? PEM_read_bio_X509(bio, NULL, NULL, NULL) : NULL;

        BIO_free(bio);
        if (!x) {
                ERR_clear_error();
                err_set(err, errlen, "%s holds no PEM certificate", path);
                return -EINVAL;
        }
        *ret = x;
        return 0;
}

/* Refuses to prompt on the terminal for a passphrase, and remembers that it
 * was asked for one. */
static int no_passphrase(char *buf, int size, int rwflag, void *u)
{
        (void)buf;
        (void)size;
        (void)rwflag;
        *(bool *)u = true;
        return -1;
}

static int parse_key(const char *path, const struct buf *pem, EVP_PKEY **ret, char *err, size_t errlen)
{
        BIO *bio = BIO_new_mem_buf(pem->data, (int)pem->len);
        bool encrypted = false;
        EVP_PKEY *key = bio ? PEM_read_bio_PrivateKey(bio, NULL, no_passphrase, &encrypted) : NULL;

        BIO_free(bio);
        ERR_clear_error();
        if (!key) {
                if (encrypted)
                        err_set(err, errlen, "%s is encrypted; only an unencrypted key can be used", path);
                else
                        err_set(err, errlen, "%s holds no PEM private key", path);
                return -EINVAL;
        }
        *ret = key;
        return 0;
}

static int load_cert(const char *path, X509 **ret, char *err, size_t errlen)
{
        struct buf pem;
        int r;

        buf_init(&pem, WH_MAX_PEM_BYTES);
        r = fileio_read(path, &pem, err, errlen);
        if (r == 0)
                r = parse_cert(path, &pem, ret, err, errlen);
        buf_free(&pem);
        return r;
}

static int load_key(const char *path, EVP_PKEY **ret, char *err, size_t errlen)
{
        struct buf pem;
        int r;

        buf_init(&pem, WH_MAX_PEM_BYTES);
        r = fileio_read(path, &pem, err, errlen);
        if (r == 0)
                r = parse_key(path, &pem, ret, err, errlen);
        buf_wipe(&pem);
        return r;
}

static int asn1_time_to_time_t(const ASN1_TIME *t, time_t *ret, char *text, size_t textlen)
{
        struct tm tm;
        time_t v;

        if (!t || !ASN1_TIME_to_tm(t, &tm))
                return -EINVAL;
        v = timegm(&tm);
        if (v == (time_t)-1)
                return -ERANGE;
        strftime(text, textlen, "%Y-%m-%dT%H:%M:%SZ", &tm);
        *ret = v;
        return 0;
}

/* Reads a certificate's validity period; `from` and `until` get it as text. */
static int cert_validity(const char *path, X509 *x, time_t *ret_from, time_t *ret_until,
                         char from[static TIME_TEXT_MAX], char until[static TIME_TEXT_MAX], char *err, size_t errlen)
{
        if (asn1_time_to_time_t(X509_get0_notBefore(x), ret_from, from, TIME_TEXT_MAX) < 0 ||
            asn1_time_to_time_t(X509_get0_notAfter(x), ret_until, until, TIME_TEXT_MAX) < 0) {
                ERR_clear_error();
                err_set(err, errlen, "certificate %s has an unreadable validity period", path);
                return -EINVAL;
        }
        return 0;
}

/* ---- renewing ------------------------------------------------------------ */

/* -ENOENT naming what is missing, so that the message says what to bring
 * rather than "cannot read". Other errors are left to the reads. */
static int check_ca_present(const char *crt, const char *key, const char *dir, char *err, size_t errlen)
{
        struct stat st;
        bool no_crt = stat(crt, &st) < 0 && errno == ENOENT;
        bool no_key = stat(key, &st) < 0 && errno == ENOENT;

        if (!no_crt && !no_key)
                return 0;
        if (no_crt && no_key)
                err_set(err, errlen,
                        "cannot renew: %s and %s are missing; renewing needs the CA (ca.crt and ca.key) that signed "
                        "the "
                        "current certificate in %s",
                        crt, key, dir);
        else
                err_set(err, errlen,
                        "cannot renew: %s is missing; renewing needs both ca.crt and ca.key of the CA in %s",
                        no_crt ? crt : key, dir);
        return -ENOENT;
}

/* The CA must be able to sign, now, a certificate valid for `days`. */
static int check_ca(const char *crt_path, X509 *ca, const char *key_path, EVP_PKEY *ca_key, time_t now, unsigned days,
                    char *err, size_t errlen)
{
        char from[TIME_TEXT_MAX], until[TIME_TEXT_MAX];
        time_t not_before, not_after;
        int r;

        if (X509_check_private_key(ca, ca_key) != 1) {
                ERR_clear_error();
                err_set(err, errlen, "cannot renew: %s does not match %s", key_path, crt_path);
                return -EINVAL;
        }
        /* 1 only with basicConstraints CA:TRUE, and keyCertSign if a
         * keyUsage is there. */
        if (X509_check_ca(ca) != 1) {
                ERR_clear_error();
                err_set(err, errlen,
                        "cannot renew: %s is not a CA certificate (it needs basicConstraints CA:TRUE, and keyCertSign "
                        "in its keyUsage)",
                        crt_path);
                return -EINVAL;
        }
        r = cert_validity(crt_path, ca, &not_before, &not_after, from, until, err, errlen);
        if (r < 0)
                return r;
        if (now < not_before) {
                err_set(err, errlen, "cannot renew: the CA certificate %s is not yet valid until %s", crt_path, from);
                return -EKEYEXPIRED;
        }
        if (now > not_after) {
                err_set(err, errlen,
                        "cannot renew: the CA certificate %s expired on %s; make a new CA and roll over to it",
                        crt_path, until);
                return -EKEYEXPIRED;
        }
        /* A certificate that outlives its CA stops verifying when the CA
         * expires, whatever its own notAfter says: better to say so now. */
        if (not_after - now < (time_t)days * 86400) {
                long left = (long)((not_after - now) / 86400);

                if (left < 1)
                        err_set(err, errlen,
                                "cannot renew: the CA certificate %s expires on %s, in less than a day; make a new CA "
                                "and roll over to it",
                                crt_path, until);
                else
                        err_set(err, errlen,
                                "cannot renew for %u days: the CA certificate %s expires on %s; renew for at most %ld "
                                "days, and roll over to a new CA before then",
                                days, crt_path, until, left);
                return -ERANGE;
        }
        return 0;
}

int certs_renew(const struct certs_request *req, char *err, size_t errlen)
{
        char ca_crt_path[PATH_MAX], ca_key_path[PATH_MAX];
        EVP_PKEY *ca_key = NULL, *key = NULL;
        X509 *ca = NULL, *cert = NULL;
        BIO *pems[FILE_MAX] = { NULL };
        time_t now = time(NULL);
        int r;

        r = check_request(req, err, errlen);
        if (r < 0)
                goto out;
        if ((r = path_join(req->out_dir, out_files[FILE_CA_CRT].name, ca_crt_path, sizeof(ca_crt_path), err, errlen)) <
                    0 ||
            (r = path_join(req->out_dir, out_files[FILE_CA_KEY].name, ca_key_path, sizeof(ca_key_path), err, errlen)) <
                    0 ||
            (r = check_ca_present(ca_crt_path, ca_key_path, req->out_dir, err, errlen)) < 0 ||
            (r = load_cert(ca_crt_path, &ca, err, errlen)) < 0 ||
            (r = load_key(ca_key_path, &ca_key, err, errlen)) < 0 ||
            (r = check_ca(ca_crt_path, ca, ca_key_path, ca_key, now, req->days, err, errlen)) < 0)
                goto out;
        if ((r = gen_key(&key, err, errlen)) < 0 ||
            (r = make_serving(req, key, ca, ca_key, now, &cert, err, errlen)) < 0 ||
            (r = to_pem(cert, NULL, &pems[FILE_TLS_CRT], err, errlen)) < 0 ||
            (r = to_pem(NULL, key, &pems[FILE_TLS_KEY], err, errlen)) < 0)
                goto out;
        r = write_outputs(req->out_dir, FILE_TLS_CRT, true, pems, err, errlen);
out:
        for (int i = 0; i < FILE_MAX; i++)
                BIO_free(pems[i]);
        X509_free(cert);
        X509_free(ca);
        EVP_PKEY_free(key);
        EVP_PKEY_free(ca_key);
        return r;
}

/* ---- caBundle ------------------------------------------------------------ */

/* Every PEM block of `pem` is a certificate that parses, and there is at
 * least one. A private key must never reach a webhook configuration, which
 * anyone who can read the cluster's configuration can read. */
static int check_certs_only(const char *path, const struct buf *pem, char *err, size_t errlen)
{
        /* An empty file leaves `data` NULL, which the BIO refuses. */
        BIO *bio = BIO_new_mem_buf(pem->data ? pem->data : "", (int)pem->len);
        char other[64] = "";
        size_t n_certs = 0;
        int r = 0;

        if (!bio) {
                err_set_ssl(err, errlen, "out of memory");
                return -ENOMEM;
        }
        for (;;) {
                char *name = NULL, *header = NULL;
                unsigned char *data = NULL;
                long len = 0;

                if (!PEM_read_bio(bio, &name, &header, &data, &len)) {
                        unsigned long e = ERR_peek_last_error();

                        ERR_clear_error();
                        if (ERR_GET_LIB(e) != ERR_LIB_PEM || ERR_GET_REASON(e) != PEM_R_NO_START_LINE) {
                                err_set(err, errlen, "%s holds a malformed PEM block", path);
                                r = -EINVAL;
                        }
                        break;
                }
                if (strcmp(name, PEM_STRING_X509) == 0) {
                        const unsigned char *p = data;
                        X509 *x = d2i_X509(NULL, &p, len);

                        if (!x) {
                                ERR_clear_error();
                                err_set(err, errlen, "%s holds a certificate that cannot be parsed", path);
                                r = -EINVAL;
                        }
                        X509_free(x);
                        n_certs++;
                } else if (!other[0]) {
                        snprintf(other, sizeof(other), "%s", name);
                }
                OPENSSL_free(name);
                OPENSSL_free(header);
                OPENSSL_clear_free(data, (size_t)len);
                if (r < 0)
                        break;
        }
        BIO_free(bio);
        if (r < 0)
                return r;
        if (n_certs == 0) {
                err_set(err, errlen, "%s holds no PEM certificate", path);
                return -EINVAL;
        }
        if (other[0]) {
                err_set(err, errlen, "%s holds a \"%s\" PEM block; a caBundle holds certificates only", path, other);
                return -EINVAL;
        }
        return 0;
}

int certs_ca_bundle(const char *const *ca_paths, size_t n, char **ret_pem, char *err, size_t errlen)
{
        struct buf all, one, b64;
        char *out;
        int r = 0;

        if (!ca_paths || n == 0) {
                err_set(err, errlen, "no CA certificate file for the caBundle");
                return -EINVAL;
        }
        buf_init(&all, WH_MAX_PEM_BYTES);
        buf_init(&one, WH_MAX_PEM_BYTES);
        buf_init(&b64, 4 * ((WH_MAX_PEM_BYTES + 2) / 3));
        /* The files' whole texts are encoded, not the certificates
         * re-encoded, so that what the caller gave is what is trusted. */
        for (size_t i = 0; i < n; i++) {
                if (!ca_paths[i]) {
                        err_set(err, errlen, "no CA certificate file for the caBundle");
                        r = -EINVAL;
                        goto out;
                }
                buf_reset(&one);
                if ((r = fileio_read(ca_paths[i], &one, err, errlen)) < 0 ||
                    (r = check_certs_only(ca_paths[i], &one, err, errlen)) < 0)
                        goto out;
                if (all.len > 0 && all.data[all.len - 1] != '\n')
                        r = buf_putc(&all, '\n');
                if (r == 0)
                        r = buf_append(&all, one.data, one.len);
                if (r == -ENOBUFS) {
                        err_set(err, errlen, "the caBundle would be larger than %zu bytes", (size_t)WH_MAX_PEM_BYTES);
                        r = -EFBIG;
                        goto out;
                }
                if (r < 0) {
                        err_set(err, errlen, "out of memory");
                        goto out;
                }
        }
        r = buf_put_base64(&b64, all.data, all.len);
        out = r == 0 ? buf_steal(&b64) : NULL;
        if (!out) {
                err_set(err, errlen, "out of memory");
                r = -ENOMEM;
                goto out;
        }
        *ret_pem = out;
out:
        buf_free(&b64);
        buf_free(&one);
        buf_free(&all);
        return r;
}
