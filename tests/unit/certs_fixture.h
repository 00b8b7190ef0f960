/* What the unit tests of certs.c and tls_pair.c share: a temporary
 * directory per test with certs_generate()'s files under `out`, and
 * certificates and keys made with OpenSSL, written to be right or wrong on
 * purpose. Include after cmocka.h; teardown() removes the directory. */
#pragma once
#include <errno.h>
#include <ftw.h>
#include <limits.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>

#include "certs.h"

#define SERVICE "spark-identity-webhook"
#define NAMESPACE "spark-webhook"
#define SVC_NAME SERVICE "." NAMESPACE ".svc"
#define DAYS 30u
#define DAY_S 86400L
#define SKEW_S 300L
#define T_2024_12_01 ((time_t)1733011200)
#define T_2025_01_01 ((time_t)1735689600)

/* snprintf() into an array, failing the test on truncation. */
#define xsnprintf(buf, ...) assert_true(snprintf((buf), sizeof(buf), __VA_ARGS__) < (int)sizeof(buf))

#define assert_contains(s, sub)                                                 \
        do {                                                                    \
                if (!strstr((s), (sub)))                                        \
                        fail_msg("\"%s\" does not contain \"%s\"", (s), (sub)); \
        } while (0)

struct fixture {
        char dir[64];              /* the mkdtemp directory, removed after */
        char out[PATH_MAX];        /* dir/certs, made by certs_generate() */
        char err[512];
};

static inline int setup(void **state)
{
        struct fixture *f = calloc(1, sizeof(*f));

        if (!f)
                return -1;
        strcpy(f->dir, "/tmp/test_certs.XXXXXX");
        if (!mkdtemp(f->dir)) {
                free(f);
                return -1;
        }
        snprintf(f->out, sizeof(f->out), "%s/certs", f->dir);
        *state = f;
        return 0;
}

static inline int rm_entry(const char *path, const struct stat *st, int type, struct FTW *ftw)
{
        (void)st;
        (void)type;
        (void)ftw;
        return remove(path);
}

static inline int teardown(void **state)
{
        struct fixture *f = *state;
        int r = nftw(f->dir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);

        free(f);
        return r;
}

static inline const char *path_in(const struct fixture *f, const char *name)
{
        static char buf[4][PATH_MAX];   /* a few live at once in one expression */
        static unsigned next;
        char *p = buf[next++ % 4];

        assert_true(snprintf(p, PATH_MAX, "%s/%s", f->out, name) < PATH_MAX);
        return p;
}

static inline struct certs_request default_request(const struct fixture *f)
{
        static const char *const default_dns[] = { "localhost" };
        static const char *const default_ips[] = { "127.0.0.1" };

        return (struct certs_request){
                .service = SERVICE,
                .namespace_ = NAMESPACE,
                .dns = default_dns,
                .n_dns = 1,
                .ips = default_ips,
                .n_ips = 1,
                .days = DAYS,
                .out_dir = f->out,
        };
}

static inline void generate(struct fixture *f)
{
        struct certs_request req = default_request(f);
        int r = certs_generate(&req, f->err, sizeof(f->err));

        if (r != 0)
                fail_msg("certs_generate: %d %s", r, f->err);
}

static inline X509 *read_cert(const char *path)
{
        FILE *fp = fopen(path, "r");
        X509 *x;

        assert_non_null(fp);
        x = PEM_read_X509(fp, NULL, NULL, NULL);
        fclose(fp);
        assert_non_null(x);
        return x;
}

static inline EVP_PKEY *read_key(const char *path)
{
        FILE *fp = fopen(path, "r");
        EVP_PKEY *k;

        assert_non_null(fp);
        k = PEM_read_PrivateKey(fp, NULL, NULL, NULL);
        fclose(fp);
        assert_non_null(k);
        return k;
}

/* The whole file; the caller frees. */
static inline char *slurp(const char *path, size_t *ret_len)
{
        FILE *fp = fopen(path, "rb");
        char *data;
        long n;

        assert_non_null(fp);
        assert_int_equal(fseek(fp, 0, SEEK_END), 0);
        n = ftell(fp);
        assert_true(n >= 0);
        rewind(fp);
        data = malloc((size_t)n + 1);
        assert_non_null(data);
        assert_int_equal(fread(data, 1, (size_t)n, fp), (size_t)n);
        data[n] = '\0';
        fclose(fp);
        if (ret_len)
                *ret_len = (size_t)n;
        return data;
}

static inline void write_text(const char *path, const char *text, size_t len)
{
        FILE *fp = fopen(path, "wb");

        assert_non_null(fp);
        assert_int_equal(fwrite(text, 1, len, fp), len);
        assert_int_equal(fclose(fp), 0);
}

/* A self-signed certificate for `key` valid from `not_before` to
 * `not_after`, written with the key beside it. The key is PKCS#8 or, with
 * `traditional`, the older per-algorithm PEM ("BEGIN RSA PRIVATE KEY"). */
static inline void write_selfsigned(const char *crt_path, const char *key_path, EVP_PKEY *key, time_t not_before,
                                    time_t not_after, bool traditional)
{
        X509 *x = X509_new();
        FILE *fp;
        BIO *bio;

        assert_non_null(x);
        assert_true(X509_set_version(x, X509_VERSION_3));
        assert_true(ASN1_INTEGER_set(X509_get_serialNumber(x), 1));
        assert_non_null(ASN1_TIME_set(X509_getm_notBefore(x), not_before));
        assert_non_null(ASN1_TIME_set(X509_getm_notAfter(x), not_after));
        assert_true(X509_NAME_add_entry_by_txt(X509_get_subject_name(x), "CN", MBSTRING_ASC,
                                               (const unsigned char *)"test", -1, -1, 0));
        assert_true(X509_set_issuer_name(x, X509_get_subject_name(x)));
        assert_true(X509_set_pubkey(x, key));
        assert_true(X509_sign(x, key, EVP_sha256()) > 0);

        fp = fopen(crt_path, "w");
        assert_non_null(fp);
        assert_true(PEM_write_X509(fp, x));
        assert_int_equal(fclose(fp), 0);
        bio = BIO_new_file(key_path, "w");
        assert_non_null(bio);
        assert_true(traditional ? PEM_write_bio_PrivateKey_traditional(bio, key, NULL, NULL, 0, NULL, NULL)
                                : PEM_write_bio_PKCS8PrivateKey(bio, key, NULL, NULL, 0, NULL, NULL));
        BIO_free(bio);
        X509_free(x);
}

static inline EVP_PKEY *new_ec_key(void)
{
        EVP_PKEY *k = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");

        assert_non_null(k);
        return k;
}

static inline time_t to_time_t(const ASN1_TIME *t)
{
        struct tm tm;

        assert_true(ASN1_TIME_to_tm(t, &tm));
        return timegm(&tm);
}

static inline void renew(struct fixture *f, const struct certs_request *req)
{
        int r = certs_renew(req, f->err, sizeof(f->err));

        if (r != 0)
                fail_msg("certs_renew: %d %s", r, f->err);
}
