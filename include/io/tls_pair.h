/* The serving pair as GnuTLS reads it: `serve` reads tls.crt and tls.key
 * once, checks them with the library that will serve them, and hands the
 * very bytes it checked to the server (server_start(),
 * server_set_certificate()), so a pair swapped on disk in between can never
 * be served unchecked.
 *
 * GnuTLS only, on purpose: `serve` never initialises OpenSSL, which the
 * `certs` command (include/io/certs.h) uses to make and renew pairs; its set-up
 * alone would cost `serve` about 2 MiB resident.
 *
 * Library-style: returns 0 or a negative errno and writes a message to the
 * caller's `err` buffer; never logs, never exits. */
#pragma once
#include <stddef.h>
#include <time.h>

#include "buf.h"

/* What the pair's first certificate (the one clients verify) says. */
struct tls_pair_info {
        time_t not_before, not_after;
        char serial[80];              /* hex, lowercase, no colons: whole octets as in DER, without
                                       * the sign octet DER puts before a high bit (as
                                       * `openssl x509 -serial` prints it); "-" before a negative one */
        char subject[256];            /* RFC 4514 text as GnuTLS writes it, every byte outside
                                       * printable ASCII escaped as \XX, cut to fit (never inside an
                                       * escape); "" for an empty name */
};

/* A serving pair read from its files. The struct owns both buffers, each
 * NUL-terminated PEM text; tls_pair_free() wipes the key's bytes before it
 * frees them. */
struct tls_pair {
        struct buf cert_pem;          /* the certificate chain, leaf first */
        struct buf key_pem;           /* its private key */
        struct tls_pair_info info;
};

/* Reads cert_path, then key_path (each at most WH_MAX_PEM_BYTES), and
 * checks them the way the server loads them: the certificate file holds 1
 * to WH_TLS_MAX_CHAIN PEM certificates; the key file an unencrypted PEM
 * private key (PKCS#8, or the older RSA and EC forms); the key matches the
 * first certificate (GnuTLS signs with the key and verifies with the
 * certificate); that certificate is inside its validity period now.
 *
 * On success *ret_pair holds the bytes that were checked and what the
 * certificate says, and the caller calls tls_pair_free(). On failure
 * *ret_pair is untouched and `err` says which file is wrong and how:
 *   -ENOENT, -EACCES, ... a file cannot be read (errno of the open or read)
 *   -EFBIG        a file is larger than WH_MAX_PEM_BYTES
 *   -EINVAL       no PEM certificate, too long a chain, no PEM private key,
 *                 an encrypted key, a key that does not match, an unreadable
 *                 validity period, serial or subject
 *   -EKEYEXPIRED  the certificate is expired or not yet valid
 *   -ENOMEM */
int tls_pair_read(const char *cert_path, const char *key_path, struct tls_pair *ret_pair, char *err, size_t errlen);

/* Wipes the key's bytes and frees both buffers; the struct may be read
 * again with tls_pair_read(). NULL and a freed pair are fine. */
void tls_pair_free(struct tls_pair *p);

/* Reads the CA bundle client certificates must chain to (--client-ca):
 * at least one PEM certificate, each parsed by GnuTLS, none expired. 0 and
 * the PEM text in `ret_pem` (the caller frees it with buf_free()), or
 * -EINVAL / -errno with a message naming the file. */
int tls_pair_client_ca_read(const char *path, struct buf *ret_pem, char *err, size_t errlen);
