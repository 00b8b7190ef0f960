/* The HTTPS server: libmicrohttpd over GnuTLS, a thread pool with epoll,
 * bounded requests, and these routes: POST /mutate, POST /validate and POST
 * /validate-policy (the mutating and the validating webhooks, and the one
 * for the policy's own ConfigMap), GET /healthz, /readyz, /metrics. It
 * knows nothing of Spark or policies: it hands each review body to the
 * caller's `admit` function, saying which path it came on, and asks the
 * caller whether it is ready.
 *
 * Ownership: server_start() copies what it needs from the options; the
 * caller's strings may go away after it returns. */
#pragma once
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "buf.h"

struct server_options {
        const char *listen;           /* "ADDR:PORT", "[V6]:PORT" or ":PORT" */
        const char *cert_pem;         /* serving certificate chain, PEM */
        const char *key_pem;          /* its key, PEM */
        bool tls13_only;              /* refuse TLS 1.2 */
        size_t max_body;
        struct budget *budget;        /* memory of bodies in flight is taken from it (NULL: no
                                         budget); owned by the caller, outlives the server */
        unsigned max_connections;
        unsigned max_connections_per_ip;
        unsigned connection_memory;
        unsigned idle_timeout_s;
        unsigned header_timeout_ms;   /* TLS handshake and request headers, from accept; absolute;
                                         0: WH_HEADER_TIMEOUT_S */
        unsigned body_timeout_ms;     /* the body, from the headers; absolute; ?timeout= may shorten it;
                                         0: WH_BODY_TIMEOUT_S */
        unsigned threads;             /* 0: one per online core */
        /* Mutual TLS: every client must present a certificate chaining to
         * these CAs (PEM; NULL: none asked), and, when client_cns are given,
         * whose subject CN is one of them. Checked in the TLS handshake, so
         * it covers every path, probes included. */
        const char *client_ca_pem;
        const char *const *client_cns;
        size_t n_client_cns;
};

/* The path a review came on. */
enum server_path {
        SERVER_PATH_MUTATE,      /* POST /mutate */
        SERVER_PATH_VALIDATE,    /* POST /validate */
        SERVER_PATH_VALIDATE_POLICY,   /* POST /validate-policy */
};

struct server_handler {
        void *ctx;
        /* Answers one POST /mutate, /validate or /validate-policy body by `deadline_ns`
         * (CLOCK_MONOTONIC: the API server's ?timeout=): writes the HTTP
         * status and the JSON body. Called from any worker thread, concurrently. */
        void (*admit)(void *ctx, enum server_path path, const char *body, size_t len, uint64_t deadline_ns,
                      int *ret_status, struct buf *out);
        /* Whether the server is ready; writes a JSON object to `out` either way. */
        bool (*ready)(void *ctx, struct buf *out);
        /* Writes the Prometheus text of GET /metrics to `out`. */
        void (*metrics)(void *ctx, struct buf *out);
};

struct server;


/* Parses "ADDR:PORT" for the listen flag. 0 or -EINVAL with a message. */
int server_check_listen(const char *listen, char *err, size_t errlen);

/* Starts serving. 0 and *ret_server, or a negative errno and a message. */
int server_start(const struct server_options *opt, const struct server_handler *h, struct server **ret_server,
                 char *err, size_t errlen);

/* Serves GET /metrics, /healthz and /readyz over plain HTTP on `listen`
 * (the --metrics-listen port, for scrapers that do not speak our TLS), with
 * one thread. 0 and *ret_server, or a negative errno and a message. */
int server_start_plain(const char *listen, const struct server_handler *h, struct server **ret_server, char *err,
                       size_t errlen);

/* Serves new TLS handshakes with this certificate chain and key (PEM) from
 * now on; connections already open keep the pair they started with. 0, or
 * -EINVAL with a message when the pair does not load (the old one keeps
 * serving). Thread safe with respect to handshakes; one caller at a time. */
int server_set_certificate(struct server *s, const char *cert_pem, const char *key_pem, char *err, size_t errlen);

struct conntrack_stats;
/* The connection counters of the HTTPS server (conntrack.h). */
void server_connection_stats(struct server *s, struct conntrack_stats *ret_stats);

/* The port actually bound (useful with port 0). */
unsigned server_port(const struct server *s);

/* From now on every answer carries Connection: close, so that clients move
 * their keep-alive connections away while the server still serves. */
void server_close_connections(struct server *s);

/* Stops listening (new connections are refused, so clients go to another
 * replica; the socket itself is closed by server_stop()) and waits up to `grace_ms` for the open connections
 * to end, each after the answer to its request in flight. Returns how many
 * were still open when it gave up (0: all ended). */
unsigned server_drain(struct server *s, unsigned grace_ms);

/* Stops accepting, closes connections, joins the threads, frees. NULL is fine. */
void server_stop(struct server *s);
