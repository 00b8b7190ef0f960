/* Unit tests for webhook/io/certs.c: what certs_generate() and certs_renew()
 * write is checked with OpenSSL itself (chain and host name verification,
 * extensions, key types) and loaded as `serve` loads it (tls_pair_read()),
 * caBundles are decoded and used as trust stores, and certs_renew() is fed
 * files made here to be wrong. The shared fixture is certs_fixture.h. */
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

#include "b64_decode.h"
#include "certs.h"
#include "certs_fixture.h"
#include "tls_pair.h"
#include "webhook_limits.h"

static int ca_bundle1(const char *path, char **ret, char *err, size_t errlen)
{
        const char *const paths[] = { path };

        return certs_ca_bundle(paths, 1, ret, err, errlen);
}

/* out/tls.crt and out/tls.key are a pair that `serve` accepts. */
static void assert_servable(struct fixture *f)
{
        struct tls_pair pair;

        if (tls_pair_read(path_in(f, "tls.crt"), path_in(f, "tls.key"), &pair, f->err, sizeof(f->err)) != 0)
                fail_msg("tls_pair_read: %s", f->err);
        tls_pair_free(&pair);
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
                "other." NAMESPACE ".svc",
                SERVICE ".default.svc",
                "example.com",
                SVC_NAME ".evil.com",
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
                { GEN_DNS, SERVICE },       { GEN_DNS, SERVICE "." NAMESPACE },
                { GEN_DNS, SVC_NAME },      { GEN_DNS, SVC_NAME ".cluster.local" },
                { GEN_DNS, "localhost" },   { GEN_DNS, "webhook.example.com" },
                { GEN_IPADD, "127.0.0.1" }, { GEN_IPADD, "fd00::1" },
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
                assert_true(EVP_PKEY_get_utf8_string_param(k, OSSL_PKEY_PARAM_GROUP_NAME, group, sizeof(group), NULL));
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
        xsnprintf(want,
                  "%s already exists: --renew keeps the CA there and signs a new tls.crt and tls.key (the caBundle "
                  "stays valid); --force makes a new CA and pair over them (the caBundle must then change)",
                  path_in(f, "ca.crt"));
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
        assert_servable(f);
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
                case DNS_:
                        one_dns[0] = cases[i].value;
                        req.dns = one_dns;
                        break;
                case IP_:
                        one_ip[0] = cases[i].value;
                        req.ips = one_ip;
                        break;
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

/* ---- certs_renew --------------------------------------------------------- */

static void copy_file(const char *from, const char *to)
{
        size_t len;
        char *text = slurp(from, &len);

        write_text(to, text, len);
        free(text);
}

static int count_entries(const char *dir)
{
        struct dirent *e;
        DIR *d = opendir(dir);
        int n = 0;

        assert_non_null(d);
        while ((e = readdir(d)))
                if (strcmp(e->d_name, ".") != 0 && strcmp(e->d_name, "..") != 0)
                        n++;
        closedir(d);
        return n;
}

/* A CA made elsewhere: self-signed, basicConstraints critical CA:TRUE,
 * keyUsage keyCertSign, and no subjectKeyIdentifier. */
static void write_ca(const char *crt_path, const char *key_path, EVP_PKEY *key, time_t not_before, time_t not_after)
{
        bool eddsa = EVP_PKEY_is_a(key, "ED25519");
        X509 *x = X509_new();
        X509_EXTENSION *ext;
        X509V3_CTX ctx;
        FILE *fp;
        BIO *bio;

        assert_non_null(x);
        assert_true(X509_set_version(x, X509_VERSION_3));
        assert_true(ASN1_INTEGER_set(X509_get_serialNumber(x), 0x4242));
        assert_non_null(ASN1_TIME_set(X509_getm_notBefore(x), not_before));
        assert_non_null(ASN1_TIME_set(X509_getm_notAfter(x), not_after));
        assert_true(X509_NAME_add_entry_by_txt(X509_get_subject_name(x), "CN", MBSTRING_ASC,
                                               (const unsigned char *)"elsewhere CA", -1, -1, 0));
        assert_true(X509_set_issuer_name(x, X509_get_subject_name(x)));
        assert_true(X509_set_pubkey(x, key));
        X509V3_set_ctx(&ctx, x, x, NULL, NULL, 0);
        ext = X509V3_EXT_conf_nid(NULL, &ctx, NID_basic_constraints, "critical,CA:TRUE");
        assert_non_null(ext);
        assert_true(X509_add_ext(x, ext, -1));
        X509_EXTENSION_free(ext);
        ext = X509V3_EXT_conf_nid(NULL, &ctx, NID_key_usage, "critical,keyCertSign");
        assert_non_null(ext);
        assert_true(X509_add_ext(x, ext, -1));
        X509_EXTENSION_free(ext);
        assert_true(X509_sign(x, key, eddsa ? NULL : EVP_sha256()) > 0);

        fp = fopen(crt_path, "w");
        assert_non_null(fp);
        assert_true(PEM_write_X509(fp, x));
        assert_int_equal(fclose(fp), 0);
        bio = BIO_new_file(key_path, "w");
        assert_non_null(bio);
        assert_true(PEM_write_bio_PKCS8PrivateKey(bio, key, NULL, NULL, 0, NULL, NULL));
        BIO_free(bio);
        X509_free(x);
}

/* The four files' texts, to show what a call left alone. */
struct snapshot {
        char *text[4];
        size_t len[4];
};

static const char *const four[] = { "ca.crt", "ca.key", "tls.crt", "tls.key" };

static struct snapshot take(const struct fixture *f)
{
        struct snapshot s;

        for (int i = 0; i < 4; i++)
                s.text[i] = slurp(path_in(f, four[i]), &s.len[i]);
        return s;
}

static bool same_file(const struct fixture *f, const struct snapshot *s, int i)
{
        size_t len;
        char *now = slurp(path_in(f, four[i]), &len);
        bool same = len == s->len[i] && memcmp(now, s->text[i], len) == 0;

        free(now);
        return same;
}

static void assert_unchanged(const struct fixture *f, const struct snapshot *s)
{
        for (int i = 0; i < 4; i++)
                if (!same_file(f, s, i))
                        fail_msg("%s changed", four[i]);
}

static void drop(struct snapshot *s)
{
        for (int i = 0; i < 4; i++)
                free(s->text[i]);
}

static void test_renew_keeps_the_ca_and_replaces_the_serving_pair(void **state)
{
        struct fixture *f = *state;
        static const char *const dns[] = { "localhost", "renewed.example.com" };
        static const char *const good[] = {
                SERVICE, SERVICE "." NAMESPACE, SVC_NAME, SVC_NAME ".cluster.local", "localhost", "renewed.example.com",
        };
        struct certs_request req = default_request(f);
        struct stat ca_before[2], st;
        struct snapshot before;
        X509 *ca, *old_leaf, *leaf;
        EVP_PKEY *old_key, *key;
        char cn[256];

        generate(f);
        before = take(f);
        assert_int_equal(stat(path_in(f, "ca.crt"), &ca_before[0]), 0);
        assert_int_equal(stat(path_in(f, "ca.key"), &ca_before[1]), 0);
        old_leaf = read_cert(path_in(f, "tls.crt"));
        old_key = read_key(path_in(f, "tls.key"));

        req.dns = dns;
        req.n_dns = 2;
        req.days = 7;
        renew(f, &req);

        /* ca.* byte for byte, and not even rewritten. */
        assert_true(same_file(f, &before, 0));
        assert_true(same_file(f, &before, 1));
        assert_int_equal(stat(path_in(f, "ca.crt"), &st), 0);
        assert_int_equal(st.st_ino, ca_before[0].st_ino);
        assert_int_equal(stat(path_in(f, "ca.key"), &st), 0);
        assert_int_equal(st.st_ino, ca_before[1].st_ino);
        assert_false(same_file(f, &before, 2));
        assert_false(same_file(f, &before, 3));

        ca = read_cert(path_in(f, "ca.crt"));
        leaf = read_cert(path_in(f, "tls.crt"));
        key = read_key(path_in(f, "tls.key"));
        assert_int_not_equal(ASN1_INTEGER_cmp(X509_get0_serialNumber(leaf), X509_get0_serialNumber(old_leaf)), 0);
        assert_int_not_equal(EVP_PKEY_eq(key, old_key), 1);
        assert_int_equal(EVP_PKEY_eq(X509_get0_pubkey(leaf), key), 1);
        assert_true(EVP_PKEY_is_a(key, "EC"));
        /* The same CA verifies the new certificate and the old one: the
         * caBundle keeps working. */
        assert_int_equal(verify_chain(ca, leaf), 1);
        assert_int_equal(verify_chain(ca, old_leaf), 1);
        for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++)
                if (X509_check_host(leaf, good[i], 0, 0, NULL) != 1)
                        fail_msg("renewed tls.crt does not match %s", good[i]);
        assert_int_equal(X509_check_host(leaf, "example.com", 0, 0, NULL), 0);
        assert_int_equal(X509_check_ip_asc(leaf, "127.0.0.1", 0), 1);
        assert_true(X509_NAME_get_text_by_NID(X509_get_subject_name(leaf), NID_commonName, cn, sizeof(cn)) > 0);
        assert_string_equal(cn, SVC_NAME);
        assert_int_equal(X509_NAME_cmp(X509_get_issuer_name(leaf), X509_get_subject_name(ca)), 0);
        assert_int_equal(ASN1_OCTET_STRING_cmp(X509_get0_authority_key_id(leaf), X509_get0_subject_key_id(ca)), 0);
        assert_int_equal(X509_get_extended_key_usage(leaf), XKU_SSL_SERVER);
        assert_int_equal(X509_check_ca(leaf), 0);
        assert_int_equal(span_seconds(X509_get0_notBefore(leaf), X509_get0_notAfter(leaf)), 7 * DAY_S + SKEW_S);

        /* Modes as certs_generate() makes them, and no temporary left. */
        assert_int_equal(stat(path_in(f, "tls.crt"), &st), 0);
        assert_int_equal(st.st_mode & 07777, 0644);
        assert_int_equal(stat(path_in(f, "tls.key"), &st), 0);
        assert_int_equal(st.st_mode & 07777, 0600);
        assert_int_equal(count_entries(f->out), 4);
        assert_servable(f);

        /* Again: renewing does not need --force. */
        renew(f, &req);
        assert_true(same_file(f, &before, 0));
        assert_true(same_file(f, &before, 1));

        EVP_PKEY_free(key);
        EVP_PKEY_free(old_key);
        X509_free(leaf);
        X509_free(old_leaf);
        X509_free(ca);
        drop(&before);
}

/* Text of `name` is still `text`. */
static void assert_same_text(const struct fixture *f, const char *name, const char *text, size_t len)
{
        size_t now_len;
        char *now = slurp(path_in(f, name), &now_len);

        if (now_len != len || memcmp(now, text, len) != 0)
                fail_msg("%s changed", name);
        free(now);
}

static void test_renew_needs_the_ca(void **state)
{
        struct fixture *f = *state;
        struct certs_request req = default_request(f);
        struct stat st;
        char want[3 * PATH_MAX + 128];
        char *crt, *key;
        size_t crt_len, key_len;

        /* No directory at all: nothing is made. */
        assert_int_equal(certs_renew(&req, f->err, sizeof(f->err)), -ENOENT);
        xsnprintf(want,
                  "cannot renew: %s/ca.crt and %s/ca.key are missing; renewing needs the CA (ca.crt and ca.key) that "
                  "signed the current certificate in %s",
                  f->out, f->out, f->out);
        assert_string_equal(f->err, want);
        assert_int_equal(stat(f->out, &st), -1);

        /* No ca.key: the serving pair is left as it was. */
        generate(f);
        crt = slurp(path_in(f, "tls.crt"), &crt_len);
        key = slurp(path_in(f, "tls.key"), &key_len);
        assert_int_equal(unlink(path_in(f, "ca.key")), 0);
        assert_int_equal(certs_renew(&req, f->err, sizeof(f->err)), -ENOENT);
        xsnprintf(want, "cannot renew: %s is missing; renewing needs both ca.crt and ca.key of the CA in %s",
                  path_in(f, "ca.key"), f->out);
        assert_string_equal(f->err, want);
        assert_same_text(f, "tls.crt", crt, crt_len);
        assert_same_text(f, "tls.key", key, key_len);
        assert_int_equal(access(path_in(f, "ca.key"), F_OK), -1);
        assert_int_equal(count_entries(f->out), 3);

        /* No ca.crt. */
        req.force = true;
        assert_int_equal(certs_generate(&req, f->err, sizeof(f->err)), 0);
        assert_int_equal(unlink(path_in(f, "ca.crt")), 0);
        assert_int_equal(certs_renew(&req, f->err, sizeof(f->err)), -ENOENT);
        assert_contains(f->err, "/ca.crt is missing");

        /* An unreadable CA is the read's error, not "missing". */
        write_text(path_in(f, "ca.crt"), "junk\n", 5);
        assert_int_equal(certs_renew(&req, f->err, sizeof(f->err)), -EINVAL);
        assert_contains(f->err, "ca.crt holds no PEM certificate");
        free(crt);
        free(key);
}

static void test_renew_refuses_a_ca_key_that_does_not_match(void **state)
{
        struct fixture *f = *state;
        struct certs_request req = default_request(f);
        struct snapshot before;
        char other[PATH_MAX], other_key[PATH_MAX], want[2 * PATH_MAX + 64];

        generate(f);
        xsnprintf(other, "%s/other", f->dir);
        xsnprintf(other_key, "%s/ca.key", other);
        req.out_dir = other;
        assert_int_equal(certs_generate(&req, f->err, sizeof(f->err)), 0);
        copy_file(other_key, path_in(f, "ca.key"));
        before = take(f);

        req.out_dir = f->out;
        assert_int_equal(certs_renew(&req, f->err, sizeof(f->err)), -EINVAL);
        xsnprintf(want, "cannot renew: %s does not match %s", path_in(f, "ca.key"), path_in(f, "ca.crt"));
        assert_string_equal(f->err, want);
        assert_unchanged(f, &before);
        assert_int_equal(count_entries(f->out), 4);
        drop(&before);
}

static void test_renew_refuses_a_certificate_that_is_not_a_ca(void **state)
{
        struct fixture *f = *state;
        struct certs_request req = default_request(f);
        struct snapshot before;
        EVP_PKEY *k = new_ec_key();
        time_t now = time(NULL);

        /* The serving pair in the CA's place: CA:FALSE. */
        generate(f);
        copy_file(path_in(f, "tls.crt"), path_in(f, "ca.crt"));
        copy_file(path_in(f, "tls.key"), path_in(f, "ca.key"));
        before = take(f);
        assert_int_equal(certs_renew(&req, f->err, sizeof(f->err)), -EINVAL);
        assert_contains(f->err, "ca.crt is not a CA certificate");
        assert_unchanged(f, &before);
        drop(&before);

        /* Self-signed, but with no basicConstraints at all. */
        write_selfsigned(path_in(f, "ca.crt"), path_in(f, "ca.key"), k, now - DAY_S, now + 100 * DAY_S, false);
        assert_int_equal(certs_renew(&req, f->err, sizeof(f->err)), -EINVAL);
        assert_contains(f->err, "ca.crt is not a CA certificate");
        EVP_PKEY_free(k);
}

static void test_renew_refuses_a_ca_out_of_its_validity(void **state)
{
        struct fixture *f = *state;
        struct certs_request req = default_request(f);
        EVP_PKEY *k = new_ec_key();
        time_t now = time(NULL);
        char want[PATH_MAX + 128], when[32];
        time_t from = now + 2 * DAY_S;
        X509 *ca, *leaf;

        assert_int_equal(mkdir(f->out, 0755), 0);
        write_ca(path_in(f, "ca.crt"), path_in(f, "ca.key"), k, T_2024_12_01, T_2025_01_01);
        assert_int_equal(certs_renew(&req, f->err, sizeof(f->err)), -EKEYEXPIRED);
        xsnprintf(want,
                  "cannot renew: the CA certificate %s expired on 2025-01-01T00:00:00Z; make a new CA and roll over to "
                  "it",
                  path_in(f, "ca.crt"));
        assert_string_equal(f->err, want);
        assert_int_equal(count_entries(f->out), 2);   /* no tls.* written */

        write_ca(path_in(f, "ca.crt"), path_in(f, "ca.key"), k, from, from + 100 * DAY_S);
        assert_int_equal(certs_renew(&req, f->err, sizeof(f->err)), -EKEYEXPIRED);
        strftime(when, sizeof(when), "%Y-%m-%dT%H:%M:%SZ", gmtime(&from));
        xsnprintf(want, "cannot renew: the CA certificate %s is not yet valid until %s", path_in(f, "ca.crt"), when);
        assert_string_equal(f->err, want);

        /* Ten days and an hour left: 30 days would outlive the CA; ten fit. */
        write_ca(path_in(f, "ca.crt"), path_in(f, "ca.key"), k, now - DAY_S, now + 10 * DAY_S + 3600);
        assert_int_equal(certs_renew(&req, f->err, sizeof(f->err)), -ERANGE);
        assert_contains(f->err, "cannot renew for 30 days");
        assert_contains(f->err, "renew for at most 10 days");
        assert_int_equal(count_entries(f->out), 2);
        req.days = 10;
        renew(f, &req);
        ca = read_cert(path_in(f, "ca.crt"));
        leaf = read_cert(path_in(f, "tls.crt"));
        assert_int_equal(verify_chain(ca, leaf), 1);
        X509_free(leaf);
        X509_free(ca);

        /* Less than a day left. */
        write_ca(path_in(f, "ca.crt"), path_in(f, "ca.key"), k, now - DAY_S, now + 3600);
        req.days = 1;
        assert_int_equal(certs_renew(&req, f->err, sizeof(f->err)), -ERANGE);
        assert_contains(f->err, "in less than a day; make a new CA");
        EVP_PKEY_free(k);
}

/* A CA not made here (no subjectKeyIdentifier; RSA or Ed25519 keys) signs
 * a renewal that verifies. */
static void test_renew_under_a_ca_made_elsewhere(void **state)
{
        struct fixture *f = *state;
        struct certs_request req = default_request(f);
        time_t now = time(NULL);
        EVP_PKEY *keys[3];

        keys[0] = new_ec_key();
        keys[1] = EVP_PKEY_Q_keygen(NULL, NULL, "RSA", (size_t)2048);
        keys[2] = EVP_PKEY_Q_keygen(NULL, NULL, "ED25519");
        assert_int_equal(mkdir(f->out, 0755), 0);
        for (int i = 0; i < 3; i++) {
                X509 *ca, *leaf;

                assert_non_null(keys[i]);
                write_ca(path_in(f, "ca.crt"), path_in(f, "ca.key"), keys[i], now - DAY_S, now + 100 * DAY_S);
                renew(f, &req);
                ca = read_cert(path_in(f, "ca.crt"));
                leaf = read_cert(path_in(f, "tls.crt"));
                if (verify_chain(ca, leaf) != 1)
                        fail_msg("key %d: the renewed certificate does not verify", i);
                assert_int_equal(X509_check_host(leaf, SVC_NAME, 0, 0, NULL), 1);
                assert_true(X509_get0_authority_key_id(leaf) || X509_get0_authority_issuer(leaf));
                assert_servable(f);
                X509_free(leaf);
                X509_free(ca);
                EVP_PKEY_free(keys[i]);
        }
}

static void test_renew_refuses_an_invalid_request(void **state)
{
        struct fixture *f = *state;
        struct certs_request req = default_request(f);
        struct snapshot before;

        generate(f);
        before = take(f);
        req.service = "Bad_Name";
        assert_int_equal(certs_renew(&req, f->err, sizeof(f->err)), -EINVAL);
        assert_contains(f->err, "is not a DNS-1123 label");
        req = default_request(f);
        req.days = 0;
        assert_int_equal(certs_renew(&req, f->err, sizeof(f->err)), -EINVAL);
        assert_contains(f->err, "days must be between 1 and");
        assert_unchanged(f, &before);
        drop(&before);
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
        assert_int_equal(ca_bundle1(path_in(f, "ca.crt"), &bundle, f->err, sizeof(f->err)), 0);
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
        assert_int_equal(ca_bundle1(path_in(f, "missing.crt"), &bundle, f->err, sizeof(f->err)), -ENOENT);
        xsnprintf(want, "cannot read %s: No such file or directory", path_in(f, "missing.crt"));
        assert_string_equal(f->err, want);

        assert_int_equal(ca_bundle1(path_in(f, "ca.key"), &bundle, f->err, sizeof(f->err)), -EINVAL);
        assert_contains(f->err, "holds no PEM certificate");

        /* A certificate followed by more than the bound. */
        xsnprintf(big, "%s/big.crt", f->dir);
        filler = slurp(path_in(f, "ca.crt"), NULL);
        filler = realloc(filler, WH_MAX_PEM_BYTES + 1);
        assert_non_null(filler);
        memset(filler + strlen(filler), '\n', WH_MAX_PEM_BYTES + 1 - strlen(filler));
        write_text(big, filler, WH_MAX_PEM_BYTES + 1);
        assert_int_equal(ca_bundle1(big, &bundle, f->err, sizeof(f->err)), -EFBIG);
        assert_contains(f->err, "is larger than");
        /* One byte less is fine. */
        write_text(big, filler, WH_MAX_PEM_BYTES);
        assert_int_equal(ca_bundle1(big, &bundle, f->err, sizeof(f->err)), 0);
        free(bundle);
        free(filler);
}

/* The bytes a caBundle stands for; the caller frees. */
static unsigned char *decode_bundle(const char *bundle, size_t *ret_len)
{
        size_t n = strlen(bundle);
        unsigned char *out = malloc(n + 1);

        assert_non_null(out);
        assert_null(strchr(bundle, '\n'));
        *ret_len = test_b64_decode(bundle, n, out);
        return out;
}

/* A trust store of every certificate in `pem`, as the API server builds
 * from a caBundle; *ret_n gets how many. */
static X509_STORE *store_of(const unsigned char *pem, size_t len, X509 *ret_certs[], int max, int *ret_n)
{
        X509_STORE *store = X509_STORE_new();
        BIO *bio = BIO_new_mem_buf(pem, (int)len);
        X509 *x;
        int n = 0;

        assert_non_null(store);
        assert_non_null(bio);
        while ((x = PEM_read_bio_X509(bio, NULL, NULL, NULL))) {
                assert_true(n < max);
                assert_true(X509_STORE_add_cert(store, x));
                ret_certs[n++] = x;
        }
        ERR_clear_error();
        BIO_free(bio);
        *ret_n = n;
        return store;
}

static int verify_in(X509_STORE *store, X509 *leaf)
{
        X509_STORE_CTX *ctx = X509_STORE_CTX_new();
        int ok;

        assert_non_null(ctx);
        assert_true(X509_STORE_CTX_init(ctx, store, leaf, NULL));
        assert_true(X509_STORE_CTX_set_purpose(ctx, X509_PURPOSE_SSL_SERVER));
        ok = X509_verify_cert(ctx);
        X509_STORE_CTX_free(ctx);
        ERR_clear_error();
        return ok;
}

static void test_ca_bundle_of_two_cas_trusts_both(void **state)
{
        struct fixture *f = *state;
        struct certs_request req = default_request(f);
        char dirs[3][PATH_MAX], cas[3][PATH_MAX], tls[3][PATH_MAX];
        char *pems[2], *bundle = NULL;
        size_t lens[2], n;
        unsigned char *decoded;
        X509 *in_bundle[4], *ca, *leaf;
        X509_STORE *store;
        int n_certs;

        /* dirs[0] is the new CA, dirs[1] the previous one, dirs[2] a stranger. */
        for (int i = 0; i < 3; i++) {
                xsnprintf(dirs[i], "%s/ca%d", f->dir, i);
                xsnprintf(cas[i], "%s/ca.crt", dirs[i]);
                xsnprintf(tls[i], "%s/tls.crt", dirs[i]);
                req.out_dir = dirs[i];
                assert_int_equal(certs_generate(&req, f->err, sizeof(f->err)), 0);
        }
        {
                const char *const paths[] = { cas[0], cas[1] };

                if (certs_ca_bundle(paths, 2, &bundle, f->err, sizeof(f->err)) != 0)
                        fail_msg("certs_ca_bundle: %s", f->err);
        }
        decoded = decode_bundle(bundle, &n);
        for (int i = 0; i < 2; i++)
                pems[i] = slurp(cas[i], &lens[i]);
        /* Both PEMs whole, new first. */
        assert_int_equal(n, lens[0] + lens[1]);
        assert_memory_equal(decoded, pems[0], lens[0]);
        assert_memory_equal(decoded + lens[0], pems[1], lens[1]);

        store = store_of(decoded, n, in_bundle, 4, &n_certs);
        assert_int_equal(n_certs, 2);
        for (int i = 0; i < 2; i++) {
                ca = read_cert(cas[i]);
                assert_int_equal(X509_cmp(in_bundle[i], ca), 0);
                X509_free(ca);
        }
        for (int i = 0; i < 3; i++) {
                leaf = read_cert(tls[i]);
                if (verify_in(store, leaf) != (i < 2))
                        fail_msg("the serving certificate of CA %d %s against the bundle", i,
                                 i < 2 ? "does not verify" : "verifies");
                X509_free(leaf);
        }
        for (int i = 0; i < n_certs; i++)
                X509_free(in_bundle[i]);
        X509_STORE_free(store);
        for (int i = 0; i < 2; i++)
                free(pems[i]);
        free(decoded);
        free(bundle);
}

/* A file without a final newline is still followed by a whole PEM. */
static void test_ca_bundle_puts_a_newline_between_files(void **state)
{
        struct fixture *f = *state;
        char nonl[PATH_MAX];
        char *pem, *bundle = NULL;
        size_t len, n;
        unsigned char *decoded;
        X509 *in_bundle[4];
        X509_STORE *store;
        int n_certs;

        generate(f);
        pem = slurp(path_in(f, "ca.crt"), &len);
        xsnprintf(nonl, "%s/nonl.crt", f->dir);
        write_text(nonl, pem, len - 1);
        {
                const char *const paths[] = { nonl, path_in(f, "ca.crt") };

                assert_int_equal(certs_ca_bundle(paths, 2, &bundle, f->err, sizeof(f->err)), 0);
        }
        decoded = decode_bundle(bundle, &n);
        assert_int_equal(n, 2 * len);
        assert_memory_equal(decoded, pem, len);
        assert_memory_equal(decoded + len, pem, len);
        store = store_of(decoded, n, in_bundle, 4, &n_certs);
        assert_int_equal(n_certs, 2);
        for (int i = 0; i < n_certs; i++)
                X509_free(in_bundle[i]);
        X509_STORE_free(store);
        free(decoded);
        free(bundle);
        free(pem);
}

static void test_ca_bundle_of_several_errors(void **state)
{
        struct fixture *f = *state;
        static const char truncated[] = "-----BEGIN CERTIFICATE-----\nMIIB\n";
        static const char not_der[] = "-----BEGIN CERTIFICATE-----\naGVsbG8gd29ybGQ=\n-----END CERTIFICATE-----\n";
        char path[PATH_MAX], want[PATH_MAX + 64];
        char *bundle = NULL, *crt, *key, *both, *filler;
        size_t crt_len, key_len;
        const char *paths[2];

        generate(f);
        paths[0] = path_in(f, "ca.crt");
        assert_int_equal(certs_ca_bundle(paths, 0, &bundle, f->err, sizeof(f->err)), -EINVAL);
        assert_string_equal(f->err, "no CA certificate file for the caBundle");
        assert_int_equal(certs_ca_bundle(NULL, 1, &bundle, f->err, sizeof(f->err)), -EINVAL);
        paths[1] = NULL;
        assert_int_equal(certs_ca_bundle(paths, 2, &bundle, f->err, sizeof(f->err)), -EINVAL);
        paths[1] = path_in(f, "missing.crt");
        assert_int_equal(certs_ca_bundle(paths, 2, &bundle, f->err, sizeof(f->err)), -ENOENT);
        xsnprintf(want, "cannot read %s: No such file or directory", paths[1]);
        assert_string_equal(f->err, want);
        assert_null(bundle);   /* written only on success */

        /* A private key next to the certificate, either way round. */
        crt = slurp(path_in(f, "ca.crt"), &crt_len);
        key = slurp(path_in(f, "ca.key"), &key_len);
        both = malloc(crt_len + key_len);
        assert_non_null(both);
        xsnprintf(path, "%s/withkey.pem", f->dir);
        paths[0] = path_in(f, "tls.crt");
        paths[1] = path;
        for (int order = 0; order < 2; order++) {
                memcpy(both, order ? key : crt, order ? key_len : crt_len);
                memcpy(both + (order ? key_len : crt_len), order ? crt : key, order ? crt_len : key_len);
                write_text(path, both, crt_len + key_len);
                assert_int_equal(certs_ca_bundle(paths, 2, &bundle, f->err, sizeof(f->err)), -EINVAL);
                xsnprintf(want, "%s holds a \"PRIVATE KEY\" PEM block; a caBundle holds certificates only", path);
                assert_string_equal(f->err, want);
        }

        write_text(path, "", 0);
        assert_int_equal(certs_ca_bundle(paths, 2, &bundle, f->err, sizeof(f->err)), -EINVAL);
        assert_contains(f->err, "withkey.pem holds no PEM certificate");
        write_text(path, truncated, sizeof(truncated) - 1);
        assert_int_equal(certs_ca_bundle(paths, 2, &bundle, f->err, sizeof(f->err)), -EINVAL);
        assert_contains(f->err, "withkey.pem holds a malformed PEM block");
        write_text(path, not_der, sizeof(not_der) - 1);
        assert_int_equal(certs_ca_bundle(paths, 2, &bundle, f->err, sizeof(f->err)), -EINVAL);
        assert_contains(f->err, "withkey.pem holds a certificate that cannot be parsed");

        /* Each file fits, the two together do not. */
        filler = malloc(WH_MAX_PEM_BYTES);
        assert_non_null(filler);
        memcpy(filler, crt, crt_len);
        memset(filler + crt_len, '\n', WH_MAX_PEM_BYTES - crt_len);
        write_text(path, filler, WH_MAX_PEM_BYTES - 1);
        paths[0] = path;
        paths[1] = path_in(f, "ca.crt");
        assert_int_equal(certs_ca_bundle(paths, 1, &bundle, f->err, sizeof(f->err)), 0);
        free(bundle);
        bundle = NULL;
        assert_int_equal(certs_ca_bundle(paths, 2, &bundle, f->err, sizeof(f->err)), -EFBIG);
        assert_contains(f->err, "the caBundle would be larger than");
        assert_null(bundle);
        free(filler);
        free(both);
        free(key);
        free(crt);
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
                T(test_renew_keeps_the_ca_and_replaces_the_serving_pair),
                T(test_renew_needs_the_ca),
                T(test_renew_refuses_a_ca_key_that_does_not_match),
                T(test_renew_refuses_a_certificate_that_is_not_a_ca),
                T(test_renew_refuses_a_ca_out_of_its_validity),
                T(test_renew_under_a_ca_made_elsewhere),
                T(test_renew_refuses_an_invalid_request),
                T(test_ca_bundle_decodes_to_the_pem),
                T(test_ca_bundle_errors),
                T(test_ca_bundle_of_two_cas_trusts_both),
                T(test_ca_bundle_puts_a_newline_between_files),
                T(test_ca_bundle_of_several_errors),
        };
#undef T

        umask(022);   /* the directory's mode is checked */
        return cmocka_run_group_tests(tests, NULL, NULL);
}
