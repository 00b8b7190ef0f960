/* Unit tests for webhook/certs.c: what certs_generate() writes is checked
 * with OpenSSL itself (chain and host name verification, extensions, key
 * types), and certs_check_pair() is fed pairs made here to be wrong. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <ftw.h>
#include <limits.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include "certs.h"
#include "webhook_limits.h"

#ifndef WH_MAX_PEM_BYTES   /* as in webhook/certs.c until the header has it */
#define WH_MAX_PEM_BYTES (1u * 1024u * 1024u)
#endif

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

#define assert_contains(s, sub)                                                      \
        do {                                                                         \
                if (!strstr((s), (sub)))                                             \
                        fail_msg("\"%s\" does not contain \"%s\"", (s), (sub));      \
        } while (0)

struct fixture {
        char dir[64];              /* the mkdtemp directory, removed after */
        char out[PATH_MAX];        /* dir/certs, made by certs_generate() */
        char err[512];
};

static const char *const default_dns[] = { "localhost" };
static const char *const default_ips[] = { "127.0.0.1" };

static int setup(void **state)
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

static int rm_entry(const char *path, const struct stat *st, int type, struct FTW *ftw)
{
        (void)st;
        (void)type;
        (void)ftw;
        return remove(path);
}

static int teardown(void **state)
{
        struct fixture *f = *state;
        int r = nftw(f->dir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);

        free(f);
        return r;
}

static const char *path_in(const struct fixture *f, const char *name)
{
        static char buf[4][PATH_MAX];   /* a few live at once in one expression */
        static unsigned next;
        char *p = buf[next++ % 4];

        assert_true(snprintf(p, PATH_MAX, "%s/%s", f->out, name) < PATH_MAX);
        return p;
}

static struct certs_request default_request(const struct fixture *f)
{
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

static void generate(struct fixture *f)
{
        struct certs_request req = default_request(f);
        int r = certs_generate(&req, f->err, sizeof(f->err));

        if (r != 0)
                fail_msg("certs_generate: %d %s", r, f->err);
}

static X509 *read_cert(const char *path)
{
        FILE *fp = fopen(path, "r");
        X509 *x;

        assert_non_null(fp);
        x = PEM_read_X509(fp, NULL, NULL, NULL);
        fclose(fp);
        assert_non_null(x);
        return x;
}

static EVP_PKEY *read_key(const char *path)
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
static char *slurp(const char *path, size_t *ret_len)
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

static void write_text(const char *path, const char *text, size_t len)
{
        FILE *fp = fopen(path, "wb");

        assert_non_null(fp);
        assert_int_equal(fwrite(text, 1, len, fp), len);
        assert_int_equal(fclose(fp), 0);
}

/* A self-signed certificate for `key` valid from `not_before` to
 * `not_after`, written with the key beside it. The key is PKCS#8 or, with
 * `traditional`, the older per-algorithm PEM ("BEGIN RSA PRIVATE KEY"). */
static void write_selfsigned(const char *crt_path, const char *key_path, EVP_PKEY *key,
                             time_t not_before, time_t not_after, bool traditional)
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

static EVP_PKEY *new_ec_key(void)
{
        EVP_PKEY *k = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");

        assert_non_null(k);
        return k;
}

/* 1 when `leaf` chains to `ca` for a TLS server, else 0. */
static int verify_chain(X509 *ca, X509 *leaf)
{
        X509_STORE *store = X509_STORE_new();
        X509_STORE_CTX *ctx = X509_STORE_CTX_new();
        int ok;

        assert_non_null(store);
        assert_non_null(ctx);
        assert_true(X509_STORE_add_cert(store, ca));
        assert_true(X509_STORE_CTX_init(ctx, store, leaf, NULL));
        assert_true(X509_STORE_CTX_set_purpose(ctx, X509_PURPOSE_SSL_SERVER));
        ok = X509_verify_cert(ctx);
        X509_STORE_CTX_free(ctx);
        X509_STORE_free(store);
        ERR_clear_error();
        return ok;
}

static bool ext_critical(X509 *x, int nid)
{
        int i = X509_get_ext_by_NID(x, nid, -1);

        assert_true(i >= 0);
        return X509_EXTENSION_get_critical(X509_get_ext(x, i)) == 1;
}

/* ---- certs_generate ------------------------------------------------------ */

static void test_generate_writes_four_files_with_modes(void **state)
{
        struct fixture *f = *state;
        static const struct {
                const char *name;
                mode_t mode;
        } want[] = { { "ca.crt", 0644 }, { "ca.key", 0600 }, { "tls.crt", 0644 }, { "tls.key", 0600 } };
        struct stat st;
        struct dirent *e;
        DIR *d;
        char *text;
        size_t len;
        int entries = 0;

        assert_int_equal(stat(f->out, &st), -1);   /* made by generate */
        generate(f);
        assert_int_equal(stat(f->out, &st), 0);
        assert_true(S_ISDIR(st.st_mode));
        assert_int_equal(st.st_mode & 07777, 0755);
        for (size_t i = 0; i < sizeof(want) / sizeof(want[0]); i++) {
                assert_int_equal(stat(path_in(f, want[i].name), &st), 0);
                assert_true(S_ISREG(st.st_mode));
                assert_true(st.st_size > 0);
                if ((st.st_mode & 07777) != want[i].mode)
                        fail_msg("%s has mode %o, want %o", want[i].name, st.st_mode & 07777, want[i].mode);
                /* Whole PEM, up to the last newline, so that files can be
                 * concatenated into bundles. */
                text = slurp(path_in(f, want[i].name), &len);
                assert_true(len > 6);
                assert_string_equal(text + len - 6, "-----\n");
                assert_non_null(strstr(text, "-----END "));
                free(text);
        }
        /* Nothing else: no temporary file left behind. */
        d = opendir(f->out);
        assert_non_null(d);
        while ((e = readdir(d)))
                if (strcmp(e->d_name, ".") != 0 && strcmp(e->d_name, "..") != 0)
                        entries++;
        closedir(d);
        assert_int_equal(entries, 4);
}

static void test_serving_cert_verifies_for_every_name(void **state)
{
        struct fixture *f = *state;
        static const char *const good[] = {
                SERVICE, SERVICE "." NAMESPACE, SVC_NAME, SVC_NAME ".cluster.local", "localhost",
        };
        static const char *const bad[] = {
                "other." NAMESPACE ".svc", SERVICE ".default.svc", "example.com", SVC_NAME ".evil.com",
        };
        X509 *ca, *leaf;

        generate(f);
        ca = read_cert(path_in(f, "ca.crt"));
        leaf = read_cert(path_in(f, "tls.crt"));

        assert_int_equal(verify_chain(ca, leaf), 1);
        for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++)
                if (X509_check_host(leaf, good[i], 0, 0, NULL) != 1)
                        fail_msg("tls.crt does not match %s", good[i]);
        for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
                if (X509_check_host(leaf, bad[i], 0, 0, NULL) != 0)
                        fail_msg("tls.crt matches %s", bad[i]);
        assert_int_equal(X509_check_ip_asc(leaf, "127.0.0.1", 0), 1);
        assert_int_equal(X509_check_ip_asc(leaf, "127.0.0.2", 0), 0);
        /* The CA is not a server certificate for anything. */
        assert_int_equal(X509_check_host(ca, SVC_NAME, 0, 0, NULL), 0);

        X509_free(leaf);
        X509_free(ca);
}

static void test_serving_cert_does_not_verify_against_another_ca(void **state)
{
        struct fixture *f = *state;
        struct certs_request req = default_request(f);
        char other[PATH_MAX], other_ca[PATH_MAX];
        X509 *ca, *leaf;

        generate(f);
        xsnprintf(other, "%s/other", f->dir);
        xsnprintf(other_ca, "%s/ca.crt", other);
        req.out_dir = other;
        assert_int_equal(certs_generate(&req, f->err, sizeof(f->err)), 0);

        ca = read_cert(other_ca);
        leaf = read_cert(path_in(f, "tls.crt"));
        assert_int_equal(verify_chain(ca, leaf), 0);
        X509_free(leaf);
        X509_free(ca);
}

static void test_san_order_and_subject(void **state)
{
        struct fixture *f = *state;
        static const char *const dns[] = { "localhost", "webhook.example.com", SVC_NAME, "LOCALHOST" };
        static const char *const ips[] = { "127.0.0.1", "fd00::1", "127.0.0.1" };
        static const struct {
                int type;
                const char *text;
        } want[] = {
                { GEN_DNS, SERVICE },
                { GEN_DNS, SERVICE "." NAMESPACE },
                { GEN_DNS, SVC_NAME },
                { GEN_DNS, SVC_NAME ".cluster.local" },
                { GEN_DNS, "localhost" },
                { GEN_DNS, "webhook.example.com" },
                { GEN_IPADD, "127.0.0.1" },
                { GEN_IPADD, "fd00::1" },
        };
        struct certs_request req = default_request(f);
        GENERAL_NAMES *gens;
        X509 *ca, *leaf;
        char cn[256];

        req.dns = dns;
        req.n_dns = sizeof(dns) / sizeof(dns[0]);
        req.ips = ips;
        req.n_ips = sizeof(ips) / sizeof(ips[0]);
        assert_int_equal(certs_generate(&req, f->err, sizeof(f->err)), 0);
        ca = read_cert(path_in(f, "ca.crt"));
        leaf = read_cert(path_in(f, "tls.crt"));

        gens = X509_get_ext_d2i(leaf, NID_subject_alt_name, NULL, NULL);
        assert_non_null(gens);
        /* Names given twice (also in another case) are listed once. */
        assert_int_equal(sk_GENERAL_NAME_num(gens), sizeof(want) / sizeof(want[0]));
        for (int i = 0; i < sk_GENERAL_NAME_num(gens); i++) {
                GENERAL_NAME *g = sk_GENERAL_NAME_value(gens, i);

                assert_int_equal(g->type, want[i].type);
                if (g->type == GEN_DNS) {
                        assert_string_equal((const char *)ASN1_STRING_get0_data(g->d.dNSName), want[i].text);
                } else {
                        unsigned char ip[16];
                        bool v4 = inet_pton(AF_INET, want[i].text, ip) == 1;

                        assert_true(v4 || inet_pton(AF_INET6, want[i].text, ip) == 1);
                        assert_int_equal(ASN1_STRING_length(g->d.iPAddress), v4 ? 4 : 16);
                        assert_memory_equal(ASN1_STRING_get0_data(g->d.iPAddress), ip, v4 ? 4 : 16);
                }
        }
        GENERAL_NAMES_free(gens);

        assert_true(X509_NAME_get_text_by_NID(X509_get_subject_name(leaf), NID_commonName, cn, sizeof(cn)) > 0);
        assert_string_equal(cn, SVC_NAME);
        assert_int_equal(X509_NAME_cmp(X509_get_issuer_name(leaf), X509_get_subject_name(ca)), 0);
        assert_int_equal(X509_NAME_cmp(X509_get_issuer_name(ca), X509_get_subject_name(ca)), 0);
        assert_int_equal(X509_check_ip_asc(leaf, "fd00::1", 0), 1);
        X509_free(leaf);
        X509_free(ca);
}

static void test_wildcard_and_ipv6_names(void **state)
{
        struct fixture *f = *state;
        static const char *const dns[] = { "*.example.com" };
        static const char *const ips[] = { "::1" };
        struct certs_request req = default_request(f);
        X509 *leaf;

        req.dns = dns;
        req.n_dns = 1;
        req.ips = ips;
        req.n_ips = 1;
        assert_int_equal(certs_generate(&req, f->err, sizeof(f->err)), 0);
        leaf = read_cert(path_in(f, "tls.crt"));
        assert_int_equal(X509_check_host(leaf, "webhook.example.com", 0, 0, NULL), 1);
        assert_int_equal(X509_check_host(leaf, "a.b.example.com", 0, 0, NULL), 0);
        assert_int_equal(X509_check_ip_asc(leaf, "::1", 0), 1);
        assert_int_equal(X509_check_ip_asc(leaf, "127.0.0.1", 0), 0);
        X509_free(leaf);
}

/* service.namespace.svc can pass the 64 characters a CN may have; the
 * certificate is still made, and the full name is in the SANs. */
static void test_long_names_still_make_a_certificate(void **state)
{
        struct fixture *f = *state;
        char service[64], ns[64], full[256], cn[256];
        struct certs_request req = default_request(f);
        X509 *leaf;

        memset(service, 's', 63);
        service[63] = '\0';
        memset(ns, 'n', 63);
        ns[63] = '\0';
        xsnprintf(full, "%s.%s.svc.cluster.local", service, ns);
        req.service = service;
        req.namespace_ = ns;
        if (certs_generate(&req, f->err, sizeof(f->err)) != 0)
                fail_msg("certs_generate: %s", f->err);
        leaf = read_cert(path_in(f, "tls.crt"));
        assert_int_equal(X509_check_host(leaf, full, 0, 0, NULL), 1);
        assert_true(X509_NAME_get_text_by_NID(X509_get_subject_name(leaf), NID_commonName, cn, sizeof(cn)) > 0);
        assert_string_equal(cn, service);
        X509_free(leaf);
}

static void test_keys_are_p256_and_signatures_sha256(void **state)
{
        struct fixture *f = *state;
        static const char *const keys[] = { "ca.key", "tls.key" };
        X509 *ca, *leaf;
        EVP_PKEY *ca_key, *key;

        generate(f);
        for (size_t i = 0; i < 2; i++) {
                char group[64];
                char *text = slurp(path_in(f, keys[i]), NULL);
                EVP_PKEY *k = read_key(path_in(f, keys[i]));

                /* PKCS#8, not "BEGIN EC PRIVATE KEY", and not encrypted. */
                assert_true(strncmp(text, "-----BEGIN PRIVATE KEY-----\n", 28) == 0);
                assert_true(EVP_PKEY_is_a(k, "EC"));
                assert_true(EVP_PKEY_get_utf8_string_param(k, OSSL_PKEY_PARAM_GROUP_NAME, group,
                                                           sizeof(group), NULL));
                assert_string_equal(group, "prime256v1");
                EVP_PKEY_free(k);
                free(text);
        }
        ca = read_cert(path_in(f, "ca.crt"));
        leaf = read_cert(path_in(f, "tls.crt"));
        ca_key = read_key(path_in(f, "ca.key"));
        key = read_key(path_in(f, "tls.key"));
        assert_int_equal(X509_get_signature_nid(ca), NID_ecdsa_with_SHA256);
        assert_int_equal(X509_get_signature_nid(leaf), NID_ecdsa_with_SHA256);
        assert_int_equal(EVP_PKEY_eq(X509_get0_pubkey(ca), ca_key), 1);
        assert_int_equal(EVP_PKEY_eq(X509_get0_pubkey(leaf), key), 1);
        assert_int_equal(EVP_PKEY_eq(ca_key, key), 0);
        assert_int_equal(X509_verify(ca, ca_key), 1);
        assert_int_equal(X509_verify(leaf, ca_key), 1);
        assert_int_equal(X509_verify(leaf, key), 0);
        ERR_clear_error();
        EVP_PKEY_free(key);
        EVP_PKEY_free(ca_key);
        X509_free(leaf);
        X509_free(ca);
}

static void test_extensions(void **state)
{
        struct fixture *f = *state;
        BASIC_CONSTRAINTS *bc;
        X509 *ca, *leaf;

        generate(f);
        ca = read_cert(path_in(f, "ca.crt"));
        leaf = read_cert(path_in(f, "tls.crt"));

        /* CA: basicConstraints critical CA:TRUE; keyUsage critical
         * keyCertSign and cRLSign only; a subject key identifier. */
        bc = X509_get_ext_d2i(ca, NID_basic_constraints, NULL, NULL);
        assert_non_null(bc);
        assert_true(bc->ca);
        BASIC_CONSTRAINTS_free(bc);
        assert_true(ext_critical(ca, NID_basic_constraints));
        assert_true(ext_critical(ca, NID_key_usage));
        assert_int_equal(X509_get_key_usage(ca), KU_KEY_CERT_SIGN | KU_CRL_SIGN);
        assert_true(X509_check_ca(ca) >= 1);
        assert_non_null(X509_get0_subject_key_id(ca));
        assert_int_equal(X509_get_version(ca), X509_VERSION_3);

        /* Serving: CA:FALSE; keyUsage critical digitalSignature only;
         * extendedKeyUsage serverAuth only; SKI, and AKI naming the CA. */
        bc = X509_get_ext_d2i(leaf, NID_basic_constraints, NULL, NULL);
        assert_non_null(bc);
        assert_false(bc->ca);
        BASIC_CONSTRAINTS_free(bc);
        assert_int_equal(X509_check_ca(leaf), 0);
        assert_true(ext_critical(leaf, NID_key_usage));
        assert_int_equal(X509_get_key_usage(leaf), KU_DIGITAL_SIGNATURE);
        assert_int_equal(X509_get_extended_key_usage(leaf), XKU_SSL_SERVER);
        assert_int_equal(X509_check_purpose(leaf, X509_PURPOSE_SSL_SERVER, 0), 1);
        assert_int_equal(X509_check_purpose(leaf, X509_PURPOSE_SSL_CLIENT, 0), 0);
        assert_non_null(X509_get0_subject_key_id(leaf));
        assert_non_null(X509_get0_authority_key_id(leaf));
        assert_int_equal(ASN1_OCTET_STRING_cmp(X509_get0_authority_key_id(leaf), X509_get0_subject_key_id(ca)), 0);
        assert_int_not_equal(ASN1_OCTET_STRING_cmp(X509_get0_subject_key_id(leaf), X509_get0_subject_key_id(ca)), 0);
        assert_int_equal(X509_get_version(leaf), X509_VERSION_3);
        X509_free(leaf);
        X509_free(ca);
}

static long span_seconds(const ASN1_TIME *from, const ASN1_TIME *to)
{
        int days, secs;

        assert_true(ASN1_TIME_diff(&days, &secs, from, to));
        return days * DAY_S + secs;
}

static time_t to_time_t(const ASN1_TIME *t)
{
        struct tm tm;

        assert_true(ASN1_TIME_to_tm(t, &tm));
        return timegm(&tm);
}

static void test_serials_and_validity(void **state)
{
        struct fixture *f = *state;
        X509 *certs[2];
        BIGNUM *serials[2];
        time_t before = time(NULL), after, not_before;

        generate(f);
        after = time(NULL);
        certs[0] = read_cert(path_in(f, "ca.crt"));
        certs[1] = read_cert(path_in(f, "tls.crt"));
        for (int i = 0; i < 2; i++) {
                serials[i] = ASN1_INTEGER_to_BN(X509_get0_serialNumber(certs[i]), NULL);
                assert_non_null(serials[i]);
                assert_false(BN_is_negative(serials[i]));
                assert_int_equal(BN_num_bits(serials[i]), 159);
                /* notBefore is five minutes back, for clock skew. */
                not_before = to_time_t(X509_get0_notBefore(certs[i]));
                assert_true(not_before >= before - SKEW_S);
                assert_true(not_before <= after - SKEW_S);
        }
        assert_int_not_equal(BN_cmp(serials[0], serials[1]), 0);
        assert_int_equal(span_seconds(X509_get0_notBefore(certs[0]), X509_get0_notAfter(certs[0])),
                         (long)WH_CA_DAYS * DAY_S + SKEW_S);
        assert_int_equal(span_seconds(X509_get0_notBefore(certs[1]), X509_get0_notAfter(certs[1])),
                         (long)DAYS * DAY_S + SKEW_S);
        for (int i = 0; i < 2; i++) {
                BN_free(serials[i]);
                X509_free(certs[i]);
        }
}

static void test_existing_files_need_force(void **state)
{
        struct fixture *f = *state;
        struct certs_request req = default_request(f);
        char *first, *now;
        char want[PATH_MAX + 64];

        generate(f);
        first = slurp(path_in(f, "tls.crt"), NULL);

        assert_int_equal(certs_generate(&req, f->err, sizeof(f->err)), -EEXIST);
        xsnprintf(want, "%s already exists (use --force to overwrite)", path_in(f, "ca.crt"));
        assert_string_equal(f->err, want);
        now = slurp(path_in(f, "tls.crt"), NULL);
        assert_string_equal(now, first);   /* untouched */
        free(now);

        /* Any one of the four is enough to refuse. */
        assert_int_equal(unlink(path_in(f, "ca.crt")), 0);
        assert_int_equal(unlink(path_in(f, "ca.key")), 0);
        assert_int_equal(unlink(path_in(f, "tls.crt")), 0);
        assert_int_equal(certs_generate(&req, f->err, sizeof(f->err)), -EEXIST);
        assert_contains(f->err, "tls.key already exists");
        assert_int_equal(access(path_in(f, "ca.crt"), F_OK), -1);

        req.force = true;
        assert_int_equal(certs_generate(&req, f->err, sizeof(f->err)), 0);
        now = slurp(path_in(f, "tls.crt"), NULL);
        assert_string_not_equal(now, first);
        free(now);
        /* Overwritten, so the new files are a pair again. */
        assert_int_equal(certs_check_pair(path_in(f, "tls.crt"), path_in(f, "tls.key"), NULL,
                                          f->err, sizeof(f->err)), 0);
        req.force = true;
        assert_int_equal(certs_generate(&req, f->err, sizeof(f->err)), 0);
        free(first);
}

static void test_invalid_requests_are_refused(void **state)
{
        struct fixture *f = *state;
        static char long_label[65], long_dns[300];
        static const char *one_dns[1], *one_ip[1];
        enum { SERVICE_, NAMESPACE_, DNS_, IP_, DAYS_, OUT_ };
        static const struct {
                int field;
                const char *value;
                unsigned days;
                const char *want;
        } cases[] = {
                { SERVICE_, "Spark-Webhook", 0, "service name \"Spark-Webhook\" is not a DNS-1123 label" },
                { SERVICE_, "spark_webhook", 0, "is not a DNS-1123 label" },
                { SERVICE_, "", 0, "service name is empty" },
                { SERVICE_, NULL, 0, "service name is empty" },
                { SERVICE_, "-webhook", 0, "must start and end with a letter or digit" },
                { SERVICE_, "webhook-", 0, "must start and end with a letter or digit" },
                { SERVICE_, "web.hook", 0, "is not a DNS-1123 label" },
                { SERVICE_, long_label, 0, "is longer than 63 characters" },
                { NAMESPACE_, "Default", 0, "namespace \"Default\" is not a DNS-1123 label" },
                { NAMESPACE_, "", 0, "namespace is empty" },
                { DNS_, "bad..name", 0, "\"bad..name\" is not a valid DNS name" },
                { DNS_, "-lead.example.com", 0, "is not a valid DNS name" },
                { DNS_, "a*.example.com", 0, "is not a valid DNS name" },
                { DNS_, "*.*.example.com", 0, "is not a valid DNS name" },
                { DNS_, "trailing.dot.", 0, "is not a valid DNS name" },
                { DNS_, "under_score.example.com", 0, "is not a valid DNS name" },
                { DNS_, "*.com", 0, "wildcard \"*.com\" needs at least two labels" },
                { DNS_, "10.0.0.1", 0, "is an IP address, not a DNS name (use --ip)" },
                { DNS_, "", 0, "empty DNS name" },
                { DNS_, long_dns, 0, "is longer than 253 characters" },
                { IP_, "300.1.1.1", 0, "invalid IP address \"300.1.1.1\"" },
                { IP_, "10.0.0", 0, "invalid IP address \"10.0.0\"" },
                { IP_, "fe80::zz", 0, "invalid IP address \"fe80::zz\"" },
                { IP_, "localhost", 0, "invalid IP address \"localhost\"" },
                { IP_, "", 0, "invalid IP address \"\"" },
                { DAYS_, NULL, 0, "days must be between 1 and 3650, not 0" },
                { DAYS_, NULL, WH_CERT_DAYS_MAX + 1, "days must be between 1 and 3650, not 3651" },
                { OUT_, "", 0, "no output directory" },
        };
        struct stat st;

        memset(long_label, 'a', 64);
        /* 4 labels of 63 and 4 dots: 255 characters */
        for (int i = 0; i < 4; i++) {
                memset(long_dns + i * 64, 'd', 63);
                long_dns[i * 64 + 63] = i < 3 ? '.' : '\0';
        }
        for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
                struct certs_request req = default_request(f);
                int r;

                switch (cases[i].field) {
                case SERVICE_: req.service = cases[i].value; break;
                case NAMESPACE_: req.namespace_ = cases[i].value; break;
                case DNS_: one_dns[0] = cases[i].value; req.dns = one_dns; break;
                case IP_: one_ip[0] = cases[i].value; req.ips = one_ip; break;
                case DAYS_: req.days = cases[i].days; break;
                case OUT_: req.out_dir = cases[i].value; break;
                }
                f->err[0] = '\0';
                r = certs_generate(&req, f->err, sizeof(f->err));
                if (r != -EINVAL)
                        fail_msg("case %zu: %d, want -EINVAL (%s)", i, r, f->err);
                assert_contains(f->err, cases[i].want);
                /* Refused before anything was written. */
                assert_int_equal(stat(f->out, &st), -1);
        }
        /* Both ends of the range of days are fine. */
        for (unsigned days = 1; days <= WH_CERT_DAYS_MAX; days += WH_CERT_DAYS_MAX - 1) {
                struct certs_request req = default_request(f);

                req.days = days;
                req.force = true;
                assert_int_equal(certs_generate(&req, f->err, sizeof(f->err)), 0);
        }
}

static void test_out_dir_that_is_a_file(void **state)
{
        struct fixture *f = *state;
        struct certs_request req = default_request(f);

        write_text(f->out, "x", 1);
        assert_int_equal(certs_generate(&req, f->err, sizeof(f->err)), -ENOTDIR);
        assert_contains(f->err, "exists and is not a directory");
}

/* ---- certs_ca_bundle ----------------------------------------------------- */

static void test_ca_bundle_decodes_to_the_pem(void **state)
{
        struct fixture *f = *state;
        char *bundle = NULL, *pem;
        unsigned char *decoded;
        size_t pem_len, blen;
        int n;

        generate(f);
        assert_int_equal(certs_ca_bundle(path_in(f, "ca.crt"), &bundle, f->err, sizeof(f->err)), 0);
        assert_non_null(bundle);
        assert_null(strchr(bundle, '\n'));
        pem = slurp(path_in(f, "ca.crt"), &pem_len);
        blen = strlen(bundle);
        assert_int_equal(blen, 4 * ((pem_len + 2) / 3));
        decoded = malloc(blen);
        assert_non_null(decoded);
        n = EVP_DecodeBlock(decoded, (const unsigned char *)bundle, (int)blen);
        /* EVP_DecodeBlock() keeps the zero bytes that padding stands for. */
        n -= (blen > 0 && bundle[blen - 1] == '=') + (blen > 1 && bundle[blen - 2] == '=');
        assert_int_equal(n, pem_len);
        assert_memory_equal(decoded, pem, pem_len);
        assert_true(strncmp(pem, "-----BEGIN CERTIFICATE-----", 27) == 0);
        free(decoded);
        free(pem);
        free(bundle);
}

static void test_ca_bundle_errors(void **state)
{
        struct fixture *f = *state;
        char big[PATH_MAX], want[PATH_MAX + 64];
        char *bundle = NULL;
        char *filler;

        generate(f);
        assert_int_equal(certs_ca_bundle(path_in(f, "missing.crt"), &bundle, f->err, sizeof(f->err)), -ENOENT);
        xsnprintf(want, "cannot read %s: No such file or directory", path_in(f, "missing.crt"));
        assert_string_equal(f->err, want);

        assert_int_equal(certs_ca_bundle(path_in(f, "ca.key"), &bundle, f->err, sizeof(f->err)), -EINVAL);
        assert_contains(f->err, "holds no PEM certificate");

        /* A certificate followed by more than the bound. */
        xsnprintf(big, "%s/big.crt", f->dir);
        filler = slurp(path_in(f, "ca.crt"), NULL);
        filler = realloc(filler, WH_MAX_PEM_BYTES + 1);
        assert_non_null(filler);
        memset(filler + strlen(filler), '\n', WH_MAX_PEM_BYTES + 1 - strlen(filler));
        write_text(big, filler, WH_MAX_PEM_BYTES + 1);
        assert_int_equal(certs_ca_bundle(big, &bundle, f->err, sizeof(f->err)), -EFBIG);
        assert_contains(f->err, "is larger than");
        /* One byte less is fine. */
        write_text(big, filler, WH_MAX_PEM_BYTES);
        assert_int_equal(certs_ca_bundle(big, &bundle, f->err, sizeof(f->err)), 0);
        free(bundle);
        free(filler);
}

/* ---- certs_check_pair ---------------------------------------------------- */

static void test_check_pair_accepts_the_generated_pair(void **state)
{
        struct fixture *f = *state;
        time_t before = time(NULL), after, not_after = 0;

        generate(f);
        after = time(NULL);
        assert_int_equal(certs_check_pair(path_in(f, "tls.crt"), path_in(f, "tls.key"), &not_after,
                                          f->err, sizeof(f->err)), 0);
        assert_true(not_after >= before + (time_t)DAYS * DAY_S);
        assert_true(not_after <= after + (time_t)DAYS * DAY_S);
        assert_int_equal(certs_check_pair(path_in(f, "ca.crt"), path_in(f, "ca.key"), NULL,
                                          f->err, sizeof(f->err)), 0);
}

static void test_check_pair_mismatch(void **state)
{
        struct fixture *f = *state;
        char want[2 * PATH_MAX + 32];
        time_t not_after = 42;

        generate(f);
        assert_int_equal(certs_check_pair(path_in(f, "tls.crt"), path_in(f, "ca.key"), &not_after,
                                          f->err, sizeof(f->err)), -EINVAL);
        xsnprintf(want, "%s does not match %s", path_in(f, "ca.key"), path_in(f, "tls.crt"));
        assert_string_equal(f->err, want);
        assert_int_equal(not_after, 42);   /* written only on success */
}

static void test_check_pair_missing_files(void **state)
{
        struct fixture *f = *state;
        char want[PATH_MAX + 64];

        generate(f);
        assert_int_equal(certs_check_pair(path_in(f, "nope.crt"), path_in(f, "tls.key"), NULL,
                                          f->err, sizeof(f->err)), -ENOENT);
        xsnprintf(want, "cannot read %s: No such file or directory", path_in(f, "nope.crt"));
        assert_string_equal(f->err, want);

        assert_int_equal(certs_check_pair(path_in(f, "tls.crt"), path_in(f, "nope.key"), NULL,
                                          f->err, sizeof(f->err)), -ENOENT);
        xsnprintf(want, "cannot read %s: No such file or directory", path_in(f, "nope.key"));
        assert_string_equal(f->err, want);
}

static void test_check_pair_garbage(void **state)
{
        struct fixture *f = *state;
        char crt[PATH_MAX];

        generate(f);
        xsnprintf(crt, "%s/garbage.crt", f->dir);
        write_text(crt, "hello\n", 6);
        assert_int_equal(certs_check_pair(crt, path_in(f, "tls.key"), NULL, f->err, sizeof(f->err)), -EINVAL);
        assert_contains(f->err, "garbage.crt holds no PEM certificate");
        write_text(crt, "", 0);
        assert_int_equal(certs_check_pair(crt, path_in(f, "tls.key"), NULL, f->err, sizeof(f->err)), -EINVAL);
        assert_contains(f->err, "garbage.crt holds no PEM certificate");
        assert_int_equal(certs_check_pair(path_in(f, "tls.crt"), crt, NULL, f->err, sizeof(f->err)), -EINVAL);
        assert_contains(f->err, "garbage.crt holds no PEM private key");
        /* A certificate where the key should be. */
        assert_int_equal(certs_check_pair(path_in(f, "tls.crt"), path_in(f, "tls.crt"), NULL,
                                          f->err, sizeof(f->err)), -EINVAL);
        assert_contains(f->err, "tls.crt holds no PEM private key");
}

static void test_check_pair_expired(void **state)
{
        struct fixture *f = *state;
        char crt[PATH_MAX], key[PATH_MAX], want[PATH_MAX + 64];
        EVP_PKEY *k = new_ec_key();

        xsnprintf(crt, "%s/old.crt", f->dir);
        xsnprintf(key, "%s/old.key", f->dir);
        write_selfsigned(crt, key, k, T_2024_12_01, T_2025_01_01, false);
        assert_int_equal(certs_check_pair(crt, key, NULL, f->err, sizeof(f->err)), -EKEYEXPIRED);
        xsnprintf(want, "certificate %s expired on 2025-01-01T00:00:00Z", crt);
        assert_string_equal(f->err, want);
        EVP_PKEY_free(k);
}

static void test_check_pair_not_yet_valid(void **state)
{
        struct fixture *f = *state;
        char crt[PATH_MAX], key[PATH_MAX], want[PATH_MAX + 64], when[32];
        time_t from = time(NULL) + 2 * DAY_S;
        EVP_PKEY *k = new_ec_key();

        xsnprintf(crt, "%s/future.crt", f->dir);
        xsnprintf(key, "%s/future.key", f->dir);
        write_selfsigned(crt, key, k, from, from + DAY_S, false);
        assert_int_equal(certs_check_pair(crt, key, NULL, f->err, sizeof(f->err)), -EKEYEXPIRED);
        strftime(when, sizeof(when), "%Y-%m-%dT%H:%M:%SZ", gmtime(&from));
        xsnprintf(want, "certificate %s is not yet valid until %s", crt, when);
        assert_string_equal(f->err, want);
        EVP_PKEY_free(k);
}

static void test_check_pair_accepts_rsa(void **state)
{
        struct fixture *f = *state;
        char crt[PATH_MAX], key[PATH_MAX];
        EVP_PKEY *k = EVP_PKEY_Q_keygen(NULL, NULL, "RSA", (size_t)2048);
        time_t now = time(NULL), not_after = 0;
        char *text;

        assert_non_null(k);
        xsnprintf(crt, "%s/rsa.crt", f->dir);
        xsnprintf(key, "%s/rsa.key", f->dir);
        write_selfsigned(crt, key, k, now - DAY_S, now + DAY_S, true);
        text = slurp(key, NULL);
        assert_true(strncmp(text, "-----BEGIN RSA PRIVATE KEY-----", 31) == 0);
        free(text);
        if (certs_check_pair(crt, key, &not_after, f->err, sizeof(f->err)) != 0)
                fail_msg("certs_check_pair: %s", f->err);
        assert_int_equal(not_after, now + DAY_S);
        EVP_PKEY_free(k);
}

static void test_check_pair_refuses_encrypted_key(void **state)
{
        struct fixture *f = *state;
        char key[PATH_MAX];
        EVP_PKEY *k;
        FILE *fp;

        generate(f);
        k = read_key(path_in(f, "tls.key"));
        xsnprintf(key, "%s/encrypted.key", f->dir);
        fp = fopen(key, "w");
        assert_non_null(fp);
        assert_true(PEM_write_PKCS8PrivateKey(fp, k, EVP_aes_256_cbc(), "secret", 6, NULL, NULL));
        assert_int_equal(fclose(fp), 0);
        /* Must fail without asking on the terminal for a passphrase. */
        assert_int_equal(certs_check_pair(path_in(f, "tls.crt"), key, NULL, f->err, sizeof(f->err)), -EINVAL);
        assert_contains(f->err, "encrypted.key is encrypted");
        EVP_PKEY_free(k);
}

int main(void)
{
#define T(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)
        const struct CMUnitTest tests[] = {
                T(test_generate_writes_four_files_with_modes),
                T(test_serving_cert_verifies_for_every_name),
                T(test_serving_cert_does_not_verify_against_another_ca),
                T(test_san_order_and_subject),
                T(test_wildcard_and_ipv6_names),
                T(test_long_names_still_make_a_certificate),
                T(test_keys_are_p256_and_signatures_sha256),
                T(test_extensions),
                T(test_serials_and_validity),
                T(test_existing_files_need_force),
                T(test_invalid_requests_are_refused),
                T(test_out_dir_that_is_a_file),
                T(test_ca_bundle_decodes_to_the_pem),
                T(test_ca_bundle_errors),
                T(test_check_pair_accepts_the_generated_pair),
                T(test_check_pair_mismatch),
                T(test_check_pair_missing_files),
                T(test_check_pair_garbage),
                T(test_check_pair_expired),
                T(test_check_pair_not_yet_valid),
                T(test_check_pair_accepts_rsa),
                T(test_check_pair_refuses_encrypted_key),
        };
#undef T

        umask(022);   /* the directory's mode is checked */
        return cmocka_run_group_tests(tests, NULL, NULL);
}
