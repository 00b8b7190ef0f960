/* Certificates with OpenSSL, for the `certs` command: a development CA and
 * a serving certificate for the webhook's Service, its renewal under the
 * same CA, and the caBundle for a webhook configuration (one CA, or old and
 * new during a rollover). `serve` checks the pair it serves with GnuTLS
 * instead (include/io/tls_pair.h), so that it never initialises OpenSSL.
 *
 * Library-style: returns 0 or a negative errno and writes a message to the
 * caller's `err` buffer; never logs, never exits. */
#pragma once
#include <stdbool.h>
#include <stddef.h>

struct certs_request {
        const char *service;          /* Service name, e.g. "spark-identity-webhook" */
        const char *namespace_;       /* its namespace */
        const char *const *dns;       /* extra DNS SANs */
        size_t n_dns;
        const char *const *ips;       /* extra IP SANs, IPv4 or IPv6 text */
        size_t n_ips;
        unsigned days;                /* serving certificate validity */
        const char *out_dir;          /* created 0755 if missing */
        bool force;                   /* overwrite existing files */
};

/* Makes an ECDSA P-256 CA (10 years) and a serving certificate signed by it
 * (SHA-256, SANs: service, service.ns, service.ns.svc,
 * service.ns.svc.cluster.local, then the extras; EKU serverAuth), and writes
 * out_dir/ca.crt, out_dir/ca.key (0600), out_dir/tls.crt, out_dir/tls.key
 * (0600). Files are written to a temporary name and renamed into place.
 * Existing files are an error (-EEXIST) unless `force`. */
int certs_generate(const struct certs_request *req, char *err, size_t errlen);

/* Renews the serving certificate under the CA that out_dir already holds:
 * a new P-256 key and a certificate with the same names and rules as
 * certs_generate(), signed by out_dir/ca.key, replace out_dir/tls.crt and
 * out_dir/tls.key (0600) through temporary files and renames. ca.crt and
 * ca.key are only read. `force` is not used: renewing always replaces tls.*.
 * -ENOENT when ca.crt or ca.key is missing; -EINVAL when the key does not
 * match the certificate or the certificate is not a CA; -EKEYEXPIRED when
 * the CA is outside its validity period; -ERANGE when it expires before
 * `days` would end. */
int certs_renew(const struct certs_request *req, char *err, size_t errlen);

/* Reads `n` PEM files of certificates and returns the base64 of their
 * texts one after the other (a newline is put between when a file does not
 * end with one): the value of a webhook's `clientConfig.caBundle`. Every PEM
 * block in every file must be a certificate (a private key is refused); the
 * whole is bounded by WH_MAX_PEM_BYTES (-EFBIG). The caller frees *ret_pem. */
int certs_ca_bundle(const char *const *ca_paths, size_t n, char **ret_pem, char *err, size_t errlen);
