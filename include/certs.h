/* Certificates with OpenSSL: a development CA and a serving certificate for
 * the webhook's Service, the caBundle for a webhook configuration, and the
 * checks the server makes on a key pair before it serves it.
 *
 * Library-style: returns 0 or a negative errno and writes a message to the
 * caller's `err` buffer; never logs, never exits. */
#pragma once
#include <stdbool.h>
#include <stddef.h>
#include <time.h>

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

/* Reads a PEM CA file and returns the base64 of its whole PEM text, the
 * value of a webhook's `clientConfig.caBundle`. The caller frees *ret. */
int certs_ca_bundle(const char *ca_path, char **ret, char *err, size_t errlen);

/* Checks a serving pair: both files readable PEM, the key matches the
 * certificate, the certificate is inside its validity period now. On success
 * writes the certificate's notAfter to *ret_not_after (may be NULL). */
int certs_check_pair(const char *cert_path, const char *key_path, time_t *ret_not_after,
                     char *err, size_t errlen);
