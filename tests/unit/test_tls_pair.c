/* Unit tests for webhook/io/tls_pair.c: pairs from certs_generate() and
 * certs_renew(), and certificates and keys made here with OpenSSL to be
 * right or wrong on purpose, read as `serve` reads them. What the pair
 * says (serial, subject, validity) is compared with what OpenSSL reads from
 * the same files. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <errno.h>
#include <limits.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <openssl/bn.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>

#include "certs_fixture.h"
#include "tls_pair.h"
#include "webhook_limits.h"

/* Reads a pair that must be accepted. */
static void read_ok(struct fixture *f, const char *crt, const char *key, struct tls_pair *ret)
{
        int r = tls_pair_read(crt, key, ret, f->err, sizeof(f->err));

        if (r != 0)
                fail_msg("tls_pair_read: %d %s", r, f->err);
}

/* Lowercase hex of the serial, from OpenSSL's own BIGNUM printing. */
static void serial_of(X509 *x, char *out, size_t len)
{
        BIGNUM *bn = ASN1_INTEGER_to_BN(X509_get_serialNumber(x), NULL);
        char *hex = bn ? BN_bn2hex(bn) : NULL;

        assert_non_null(hex);
        assert_true(strlen(hex) < len);
        for (size_t i = 0; hex[i]; i++)
                out[i] = (char)(hex[i] >= 'A' && hex[i] <= 'F' ? hex[i] - 'A' + 'a' : hex[i]);
        out[strlen(hex)] = '\0';
        OPENSSL_free(hex);
        BN_free(bn);
}

/* A self-signed certificate for `key`, valid from a day ago for a day,
 * with this serial and a subject of `n` (attribute, UTF-8 value) pairs. */
static void write_named(const char *crt_path, const char *key_path, EVP_PKEY *key, long serial,
                        const char *const names[][2], size_t n)
{
        time_t now = time(NULL);
        X509 *x = X509_new();
        FILE *fp;

        assert_non_null(x);
        assert_true(X509_set_version(x, X509_VERSION_3));
        assert_true(ASN1_INTEGER_set(X509_get_serialNumber(x), serial));
        assert_non_null(ASN1_TIME_set(X509_getm_notBefore(x), now - DAY_S));
        assert_non_null(ASN1_TIME_set(X509_getm_notAfter(x), now + DAY_S));
        for (size_t i = 0; i < n; i++)
                assert_true(X509_NAME_add_entry_by_txt(X509_get_subject_name(x), names[i][0], MBSTRING_UTF8,
                                                       (const unsigned char *)names[i][1], -1, -1, 0));
        assert_true(X509_set_issuer_name(x, X509_get_subject_name(x)));
        assert_true(X509_set_pubkey(x, key));
        assert_true(X509_sign(x, key, EVP_sha256()) > 0);
        fp = fopen(crt_path, "w");
        assert_non_null(fp);
        assert_true(PEM_write_X509(fp, x));
        assert_int_equal(fclose(fp), 0);
        fp = fopen(key_path, "w");
        assert_non_null(fp);
        assert_true(PEM_write_PKCS8PrivateKey(fp, key, NULL, NULL, 0, NULL, NULL));
        assert_int_equal(fclose(fp), 0);
        X509_free(x);
}

/* A file that is the texts of `a` and `b` one after the other. */
static void write_both(const char *path, const char *a, const char *b)
{
        char *ta = slurp(a, NULL), *tb = slurp(b, NULL);
        size_t na = strlen(ta), nb = strlen(tb);
        char *both = malloc(na + nb + 1);

        assert_non_null(both);
        memcpy(both, ta, na);
        memcpy(both + na, tb, nb + 1);
        write_text(path, both, na + nb);
        free(both);
        free(tb);
        free(ta);
}

static void test_accepts_the_generated_pair(void **state)
{
        struct fixture *f = *state;
        time_t before = time(NULL), after;
        struct tls_pair pair;

        generate(f);
        after = time(NULL);
        read_ok(f, path_in(f, "tls.crt"), path_in(f, "tls.key"), &pair);
        assert_true(pair.info.not_after >= before + (time_t)DAYS * DAY_S);
        assert_true(pair.info.not_after <= after + (time_t)DAYS * DAY_S);
        assert_int_equal(pair.info.not_after - pair.info.not_before, (time_t)DAYS * DAY_S + SKEW_S);
        tls_pair_free(&pair);
        read_ok(f, path_in(f, "ca.crt"), path_in(f, "ca.key"), &pair);
        tls_pair_free(&pair);
        tls_pair_free(&pair);   /* again: a freed pair is fine */
        tls_pair_free(NULL);
}

/* The server is given the very bytes that were checked. */
static void test_holds_the_files_texts(void **state)
{
        struct fixture *f = *state;
        struct tls_pair pair;
        char *crt, *key;

        generate(f);
        read_ok(f, path_in(f, "tls.crt"), path_in(f, "tls.key"), &pair);
        crt = slurp(path_in(f, "tls.crt"), NULL);
        key = slurp(path_in(f, "tls.key"), NULL);
        assert_string_equal(pair.cert_pem.data, crt);
        assert_string_equal(pair.key_pem.data, key);
        assert_int_equal(pair.cert_pem.len, strlen(crt));
        assert_int_equal(pair.key_pem.len, strlen(key));
        tls_pair_free(&pair);
        assert_null(pair.cert_pem.data);
        assert_null(pair.key_pem.data);
        free(key);
        free(crt);
}

static void test_mismatch(void **state)
{
        struct fixture *f = *state;
        char want[2 * PATH_MAX + 32];
        struct tls_pair pair, untouched;

        memset(&pair, 0x5a, sizeof(pair));
        untouched = pair;
        generate(f);
        assert_int_equal(tls_pair_read(path_in(f, "tls.crt"), path_in(f, "ca.key"), &pair, f->err, sizeof(f->err)),
                         -EINVAL);
        xsnprintf(want, "%s does not match %s", path_in(f, "ca.key"), path_in(f, "tls.crt"));
        assert_string_equal(f->err, want);
        assert_memory_equal(&pair, &untouched, sizeof(pair));   /* written only on success */
}

/* A key of another algorithm (RSA for an ECDSA certificate) is a mismatch
 * too, not an error of another kind. */
static void test_mismatch_of_another_algorithm(void **state)
{
        struct fixture *f = *state;
        char crt[PATH_MAX], key[PATH_MAX], want[2 * PATH_MAX + 32];
        EVP_PKEY *k = EVP_PKEY_Q_keygen(NULL, NULL, "RSA", (size_t)2048);
        struct tls_pair pair;

        assert_non_null(k);
        generate(f);
        xsnprintf(crt, "%s/rsa.crt", f->dir);
        xsnprintf(key, "%s/rsa.key", f->dir);
        write_selfsigned(crt, key, k, time(NULL) - DAY_S, time(NULL) + DAY_S, false);
        assert_int_equal(tls_pair_read(path_in(f, "tls.crt"), key, &pair, f->err, sizeof(f->err)), -EINVAL);
        xsnprintf(want, "%s does not match %s", key, path_in(f, "tls.crt"));
        assert_string_equal(f->err, want);
        assert_int_equal(tls_pair_read(crt, path_in(f, "tls.key"), &pair, f->err, sizeof(f->err)), -EINVAL);
        xsnprintf(want, "%s does not match %s", path_in(f, "tls.key"), crt);
        assert_string_equal(f->err, want);
        EVP_PKEY_free(k);
}

static void test_missing_files(void **state)
{
        struct fixture *f = *state;
        char want[PATH_MAX + 64];
        struct tls_pair pair;

        generate(f);
        assert_int_equal(tls_pair_read(path_in(f, "nope.crt"), path_in(f, "tls.key"), &pair, f->err, sizeof(f->err)),
                         -ENOENT);
        xsnprintf(want, "cannot read %s: No such file or directory", path_in(f, "nope.crt"));
        assert_string_equal(f->err, want);

        assert_int_equal(tls_pair_read(path_in(f, "tls.crt"), path_in(f, "nope.key"), &pair, f->err, sizeof(f->err)),
                         -ENOENT);
        xsnprintf(want, "cannot read %s: No such file or directory", path_in(f, "nope.key"));
        assert_string_equal(f->err, want);
}

static void test_garbage(void **state)
{
        struct fixture *f = *state;
        char crt[PATH_MAX], want[PATH_MAX + 64];
        struct tls_pair pair;

        generate(f);
        xsnprintf(crt, "%s/garbage.crt", f->dir);
        write_text(crt, "hello\n", 6);
        assert_int_equal(tls_pair_read(crt, path_in(f, "tls.key"), &pair, f->err, sizeof(f->err)), -EINVAL);
        xsnprintf(want, "%s holds no PEM certificate", crt);
        assert_string_equal(f->err, want);
        write_text(crt, "", 0);
        assert_int_equal(tls_pair_read(crt, path_in(f, "tls.key"), &pair, f->err, sizeof(f->err)), -EINVAL);
        assert_string_equal(f->err, want);
        /* A key where the certificate should be. */
        assert_int_equal(tls_pair_read(path_in(f, "tls.key"), path_in(f, "tls.key"), &pair, f->err, sizeof(f->err)),
                         -EINVAL);
        assert_contains(f->err, "tls.key holds no PEM certificate");
        assert_int_equal(tls_pair_read(path_in(f, "tls.crt"), crt, &pair, f->err, sizeof(f->err)), -EINVAL);
        xsnprintf(want, "%s holds no PEM private key", crt);
        assert_string_equal(f->err, want);
        write_text(crt, "hello\n", 6);
        assert_int_equal(tls_pair_read(path_in(f, "tls.crt"), crt, &pair, f->err, sizeof(f->err)), -EINVAL);
        assert_string_equal(f->err, want);
        /* A certificate where the key should be. */
        assert_int_equal(tls_pair_read(path_in(f, "tls.crt"), path_in(f, "tls.crt"), &pair, f->err, sizeof(f->err)),
                         -EINVAL);
        assert_contains(f->err, "tls.crt holds no PEM private key");
}

/* PEM blocks of the right kind whose insides are broken say so, with
 * GnuTLS's reason, rather than that there is no such block. */
static void test_broken_blocks(void **state)
{
        struct fixture *f = *state;
        static const char crt_text[] = "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n";
        static const char key_text[] = "-----BEGIN PRIVATE KEY-----\nMIIB\n-----END PRIVATE KEY-----\n";
        char path[PATH_MAX], want[PATH_MAX + 64];
        struct tls_pair pair;

        generate(f);
        xsnprintf(path, "%s/broken.pem", f->dir);
        write_text(path, crt_text, sizeof(crt_text) - 1);
        assert_int_equal(tls_pair_read(path, path_in(f, "tls.key"), &pair, f->err, sizeof(f->err)), -EINVAL);
        xsnprintf(want, "%s holds a certificate that GnuTLS cannot read: ", path);
        if (strncmp(f->err, want, strlen(want)) != 0 || strlen(f->err) <= strlen(want))
                fail_msg("\"%s\" does not start with \"%s\" and a reason", f->err, want);
        write_text(path, key_text, sizeof(key_text) - 1);
        assert_int_equal(tls_pair_read(path_in(f, "tls.crt"), path, &pair, f->err, sizeof(f->err)), -EINVAL);
        xsnprintf(want, "%s holds a private key that GnuTLS cannot read: ", path);
        if (strncmp(f->err, want, strlen(want)) != 0 || strlen(f->err) <= strlen(want))
                fail_msg("\"%s\" does not start with \"%s\" and a reason", f->err, want);
}

static void test_too_large(void **state)
{
        struct fixture *f = *state;
        char key[PATH_MAX], want[PATH_MAX + 64];
        char *filler = malloc(WH_MAX_PEM_BYTES + 1);
        struct tls_pair pair;

        assert_non_null(filler);
        memset(filler, '\n', WH_MAX_PEM_BYTES + 1);
        generate(f);
        xsnprintf(key, "%s/big.key", f->dir);
        write_text(key, filler, WH_MAX_PEM_BYTES + 1);
        assert_int_equal(tls_pair_read(path_in(f, "tls.crt"), key, &pair, f->err, sizeof(f->err)), -EFBIG);
        xsnprintf(want, "%s is larger than %u bytes", key, WH_MAX_PEM_BYTES);
        assert_string_equal(f->err, want);
        free(filler);
}

static void test_expired(void **state)
{
        struct fixture *f = *state;
        char crt[PATH_MAX], key[PATH_MAX], want[PATH_MAX + 64];
        EVP_PKEY *k = new_ec_key();
        struct tls_pair pair;

        xsnprintf(crt, "%s/old.crt", f->dir);
        xsnprintf(key, "%s/old.key", f->dir);
        write_selfsigned(crt, key, k, T_2024_12_01, T_2025_01_01, false);
        assert_int_equal(tls_pair_read(crt, key, &pair, f->err, sizeof(f->err)), -EKEYEXPIRED);
        xsnprintf(want, "certificate %s expired on 2025-01-01T00:00:00Z", crt);
        assert_string_equal(f->err, want);
        EVP_PKEY_free(k);
}

static void test_not_yet_valid(void **state)
{
        struct fixture *f = *state;
        char crt[PATH_MAX], key[PATH_MAX], want[PATH_MAX + 64], when[32];
        time_t from = time(NULL) + 2 * DAY_S;
        EVP_PKEY *k = new_ec_key();
        struct tls_pair pair;

        xsnprintf(crt, "%s/future.crt", f->dir);
        xsnprintf(key, "%s/future.key", f->dir);
        write_selfsigned(crt, key, k, from, from + DAY_S, false);
        assert_int_equal(tls_pair_read(crt, key, &pair, f->err, sizeof(f->err)), -EKEYEXPIRED);
        strftime(when, sizeof(when), "%Y-%m-%dT%H:%M:%SZ", gmtime(&from));
        xsnprintf(want, "certificate %s is not yet valid until %s", crt, when);
        assert_string_equal(f->err, want);
        EVP_PKEY_free(k);
}

/* The key in the older per-algorithm PEM ("BEGIN RSA PRIVATE KEY"). */
static void test_accepts_rsa(void **state)
{
        struct fixture *f = *state;
        char crt[PATH_MAX], key[PATH_MAX];
        EVP_PKEY *k = EVP_PKEY_Q_keygen(NULL, NULL, "RSA", (size_t)2048);
        time_t now = time(NULL);
        struct tls_pair pair;
        char *text;

        assert_non_null(k);
        xsnprintf(crt, "%s/rsa.crt", f->dir);
        xsnprintf(key, "%s/rsa.key", f->dir);
        write_selfsigned(crt, key, k, now - DAY_S, now + DAY_S, true);
        text = slurp(key, NULL);
        assert_true(strncmp(text, "-----BEGIN RSA PRIVATE KEY-----", 31) == 0);
        free(text);
        read_ok(f, crt, key, &pair);
        assert_int_equal(pair.info.not_after, now + DAY_S);
        assert_int_equal(pair.info.not_before, now - DAY_S);
        assert_string_equal(pair.info.serial, "01");   /* whole octets */
        assert_string_equal(pair.info.subject, "CN=test");
        tls_pair_free(&pair);
        EVP_PKEY_free(k);
}

static void test_refuses_encrypted_key(void **state)
{
        struct fixture *f = *state;
        char key[PATH_MAX], want[PATH_MAX + 64];
        EVP_PKEY *k;
        struct tls_pair pair;
        char *text;
        FILE *fp;
        BIO *bio;

        generate(f);
        k = read_key(path_in(f, "tls.key"));
        xsnprintf(key, "%s/encrypted.key", f->dir);
        xsnprintf(want, "%s is encrypted; only an unencrypted key can be used", key);
        fp = fopen(key, "w");
        assert_non_null(fp);
        assert_true(PEM_write_PKCS8PrivateKey(fp, k, EVP_aes_256_cbc(), "secret", 6, NULL, NULL));
        assert_int_equal(fclose(fp), 0);
        /* Must fail without asking on the terminal for a passphrase. */
        assert_int_equal(tls_pair_read(path_in(f, "tls.crt"), key, &pair, f->err, sizeof(f->err)), -EINVAL);
        assert_string_equal(f->err, want);
        /* The older form, with a Proc-Type header. */
        bio = BIO_new_file(key, "w");
        assert_non_null(bio);
        assert_true(PEM_write_bio_PrivateKey_traditional(bio, k, EVP_aes_256_cbc(), (unsigned char *)"secret", 6, NULL,
                                                         NULL));
        BIO_free(bio);
        text = slurp(key, NULL);
        assert_non_null(strstr(text, "Proc-Type: 4,ENCRYPTED"));
        free(text);
        assert_int_equal(tls_pair_read(path_in(f, "tls.crt"), key, &pair, f->err, sizeof(f->err)), -EINVAL);
        assert_string_equal(f->err, want);
        EVP_PKEY_free(k);
}

static void test_fills_info(void **state)
{
        struct fixture *f = *state;
        static const struct {
                const char *crt, *key, *subject;
        } pairs[] = {
                { "tls.crt", "tls.key", "CN=" SVC_NAME },
                { "ca.crt", "ca.key", "CN=spark-identity-webhook CA" },
        };
        struct tls_pair pair;
        char want[80];
        X509 *x;

        generate(f);
        for (size_t i = 0; i < sizeof(pairs) / sizeof(pairs[0]); i++) {
                read_ok(f, path_in(f, pairs[i].crt), path_in(f, pairs[i].key), &pair);
                x = read_cert(path_in(f, pairs[i].crt));
                serial_of(x, want, sizeof(want));
                assert_string_equal(pair.info.serial, want);
                assert_int_equal(strlen(pair.info.serial), 40);   /* 159 bits: 20 octets */
                assert_int_equal(strspn(pair.info.serial, "0123456789abcdef"), 40);
                assert_int_equal(pair.info.not_after, to_time_t(X509_get0_notAfter(x)));
                assert_int_equal(pair.info.not_before, to_time_t(X509_get0_notBefore(x)));
                assert_string_equal(pair.info.subject, pairs[i].subject);
                X509_free(x);
                tls_pair_free(&pair);
        }
}

/* As `openssl x509 -serial` prints it: DER's sign octet before a high bit
 * is not part of the number; a negative serial gets a "-". */
static void test_serial_as_openssl_prints_it(void **state)
{
        struct fixture *f = *state;
        static const struct {
                long serial;
                const char *want;
        } cases[] = {
                { 0xff0102, "ff0102" },        /* DER 00 ff 01 02 */
                { 0x7f, "7f" },         { 0x80, "80" },                /* DER 00 80 */
                { 0x100, "0100" },             /* whole octets */
                { -5, "-05" },          { -0x81, "-81" },              /* DER ff 7f */
        };
        static const char *const cn[][2] = { { "CN", "serial" } };
        char crt[PATH_MAX], key[PATH_MAX], want[80];
        EVP_PKEY *k = new_ec_key();
        struct tls_pair pair;

        xsnprintf(crt, "%s/serial.crt", f->dir);
        xsnprintf(key, "%s/serial.key", f->dir);
        for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
                write_named(crt, key, k, cases[i].serial, cn, 1);
                read_ok(f, crt, key, &pair);
                assert_string_equal(pair.info.serial, cases[i].want);
                if (cases[i].serial > 0) {   /* and as OpenSSL reads the file */
                        X509 *x = read_cert(crt);

                        serial_of(x, want, sizeof(want));
                        assert_string_equal(pair.info.serial, want);
                        X509_free(x);
                }
                tls_pair_free(&pair);
        }
        EVP_PKEY_free(k);
}

/* RFC 4514 text in ASCII: UTF-8 and control bytes escaped as \XX, RFC
 * 4514's specials as GnuTLS escapes them, most specific name first; cut to
 * fit, never inside an escape; an empty name is "". */
static void test_subject_text(void **state)
{
        struct fixture *f = *state;
        static const char *const cafe[][2] = { { "O", "Caf\xc3\xa9, Inc." },
                                               { "CN", "a\x01"
                                                       "b" } };
        static const char *const plain[][2] = { { "C", "DE" }, { "O", "Spark" }, { "CN", "x" } };
        char crt[PATH_MAX], key[PATH_MAX];
        const char *(*many)[2] = calloc(40, sizeof(*many));
        char value[64], full[40 * 30 + 1] = "";
        EVP_PKEY *k = new_ec_key();
        struct tls_pair pair;
        size_t n;

        assert_non_null(many);
        xsnprintf(crt, "%s/name.crt", f->dir);
        xsnprintf(key, "%s/name.key", f->dir);

        write_named(crt, key, k, 1, cafe, 2);
        read_ok(f, crt, key, &pair);
        assert_string_equal(pair.info.subject, "CN=a\\01b,O=Caf\\C3\\A9\\, Inc.");
        tls_pair_free(&pair);

        write_named(crt, key, k, 1, plain, 3);
        read_ok(f, crt, key, &pair);
        assert_string_equal(pair.info.subject, "CN=x,O=Spark,C=DE");
        tls_pair_free(&pair);

        write_named(crt, key, k, 1, NULL, 0);
        read_ok(f, crt, key, &pair);
        assert_string_equal(pair.info.subject, "");
        tls_pair_free(&pair);

        /* 40 OUs of "\xc3\xa9" and 20 characters: 40 * 30 characters of text. */
        memcpy(value,
               "\xc3\xa9"
               "ABCDEFGHIJKLMNOPQRST",
               23);
        for (size_t i = 0; i < 40; i++) {
                many[i][0] = "OU";
                many[i][1] = value;
                strcat(full, i ? ",OU=\\C3\\A9ABCDEFGHIJKLMNOPQRST" : "OU=\\C3\\A9ABCDEFGHIJKLMNOPQRST");
        }
        write_named(crt, key, k, 1, (const char *const(*)[2])many, 40);
        read_ok(f, crt, key, &pair);
        n = strlen(pair.info.subject);
        assert_true(n <= sizeof(pair.info.subject) - 1);
        assert_true(n > sizeof(pair.info.subject) - 1 - 3);   /* as much as fits */
        assert_int_equal(strncmp(pair.info.subject, full, n), 0);
        assert_true(full[n - 1] != '\\' && full[n - 2] != '\\');   /* not inside an escape */
        tls_pair_free(&pair);
        free(many);
        EVP_PKEY_free(k);
}

/* tls.crt with the CA after the leaf, as cert-manager writes it: served,
 * and described by the leaf. The key must match the first certificate. */
static void test_chain(void **state)
{
        struct fixture *f = *state;
        char chain[PATH_MAX], reversed[PATH_MAX], want[2 * PATH_MAX + 32];
        struct tls_pair pair;

        generate(f);
        xsnprintf(chain, "%s/chain.crt", f->dir);
        xsnprintf(reversed, "%s/reversed.crt", f->dir);
        write_both(chain, path_in(f, "tls.crt"), path_in(f, "ca.crt"));
        write_both(reversed, path_in(f, "ca.crt"), path_in(f, "tls.crt"));
        read_ok(f, chain, path_in(f, "tls.key"), &pair);
        assert_string_equal(pair.info.subject, "CN=" SVC_NAME);
        tls_pair_free(&pair);
        assert_int_equal(tls_pair_read(reversed, path_in(f, "tls.key"), &pair, f->err, sizeof(f->err)), -EINVAL);
        xsnprintf(want, "%s does not match %s", path_in(f, "tls.key"), reversed);
        assert_string_equal(f->err, want);
}

static void test_chain_too_long(void **state)
{
        struct fixture *f = *state;
        char path[PATH_MAX], want[PATH_MAX + 128];
        char *leaf, *text;
        size_t n;
        struct tls_pair pair;

        generate(f);
        leaf = slurp(path_in(f, "tls.crt"), &n);
        text = malloc(n * (WH_TLS_MAX_CHAIN + 1) + 1);
        assert_non_null(text);
        for (unsigned i = 0; i <= WH_TLS_MAX_CHAIN; i++)
                memcpy(text + i * n, leaf, n);
        xsnprintf(path, "%s/long.crt", f->dir);
        write_text(path, text, n * WH_TLS_MAX_CHAIN);
        read_ok(f, path, path_in(f, "tls.key"), &pair);   /* the most the server takes */
        tls_pair_free(&pair);
        write_text(path, text, n * (WH_TLS_MAX_CHAIN + 1));
        assert_int_equal(tls_pair_read(path, path_in(f, "tls.key"), &pair, f->err, sizeof(f->err)), -EINVAL);
        xsnprintf(want, "%s holds more than %u certificates; the server serves a chain of at most %u", path,
                  WH_TLS_MAX_CHAIN, WH_TLS_MAX_CHAIN);
        assert_string_equal(f->err, want);
        free(text);
        free(leaf);
}

/* The serial of a renewed pair is the new certificate's, which is how the
 * server's log tells a reload happened. */
static void test_sees_the_renewed_serial(void **state)
{
        struct fixture *f = *state;
        struct certs_request req = default_request(f);
        struct tls_pair before, after;

        generate(f);
        read_ok(f, path_in(f, "tls.crt"), path_in(f, "tls.key"), &before);
        renew(f, &req);
        read_ok(f, path_in(f, "tls.crt"), path_in(f, "tls.key"), &after);
        assert_string_not_equal(before.info.serial, after.info.serial);
        assert_string_equal(before.info.subject, after.info.subject);
        assert_true(after.info.not_before >= before.info.not_before);
        tls_pair_free(&after);
        tls_pair_free(&before);
}

static void test_leaves_the_pair_untouched_on_failure(void **state)
{
        struct fixture *f = *state;
        char crt[PATH_MAX], key[PATH_MAX];
        struct tls_pair pair, untouched;
        EVP_PKEY *k = new_ec_key();

        memset(&pair, 0x5a, sizeof(pair));
        untouched = pair;
        generate(f);
        xsnprintf(crt, "%s/old.crt", f->dir);
        xsnprintf(key, "%s/old.key", f->dir);
        write_selfsigned(crt, key, k, T_2024_12_01, T_2025_01_01, false);
        assert_int_equal(tls_pair_read(crt, key, &pair, f->err, sizeof(f->err)), -EKEYEXPIRED);
        assert_memory_equal(&pair, &untouched, sizeof(pair));
        assert_int_equal(tls_pair_read(path_in(f, "nope.crt"), path_in(f, "tls.key"), &pair, f->err, sizeof(f->err)),
                         -ENOENT);
        assert_memory_equal(&pair, &untouched, sizeof(pair));
        assert_int_equal(tls_pair_read(path_in(f, "tls.crt"), path_in(f, "tls.crt"), &pair, f->err, sizeof(f->err)),
                         -EINVAL);
        assert_memory_equal(&pair, &untouched, sizeof(pair));
        EVP_PKEY_free(k);
}

int main(void)
{
#define T(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)
        const struct CMUnitTest tests[] = {
                T(test_accepts_the_generated_pair),
                T(test_holds_the_files_texts),
                T(test_mismatch),
                T(test_mismatch_of_another_algorithm),
                T(test_missing_files),
                T(test_garbage),
                T(test_broken_blocks),
                T(test_too_large),
                T(test_expired),
                T(test_not_yet_valid),
                T(test_accepts_rsa),
                T(test_refuses_encrypted_key),
                T(test_fills_info),
                T(test_serial_as_openssl_prints_it),
                T(test_subject_text),
                T(test_chain),
                T(test_chain_too_long),
                T(test_sees_the_renewed_serial),
                T(test_leaves_the_pair_untouched_on_failure),
        };
#undef T

        return cmocka_run_group_tests(tests, NULL, NULL);
}
