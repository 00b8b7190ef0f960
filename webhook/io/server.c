/* The HTTPS server: see include/io/server.h.
 *
 * Requests follow libmicrohttpd's largepost pattern: the first call sees
 * only the headers and sets up per-request state in *con_cls; later calls
 * bring body chunks; the last call (no data) answers; the completion
 * callback frees the state. Everything that can be refused from the
 * headers alone (path, method, media type, declared size, timeout) is
 * refused before a byte of body is read. */
#include "server.h"

#include <arpa/inet.h>
#include <errno.h>
#include <malloc.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <gnutls/abstract.h>
#include <gnutls/gnutls.h>
#include <gnutls/x509.h>
#include <microhttpd.h>
#include <pthread.h>
#include <stdatomic.h>

#include "budget.h"
#include "conntrack.h"
#include "log.h"
#include "metrics.h"
#include "review.h"
#include "webhook_limits.h"
#include "err.h"

/* TLS 1.2 and 1.3 only (or 1.3 only); AEAD ciphers; ECDHE key exchange; no
 * SHA-1 signatures. */
#define TLS_PRIORITIES(versions)                                                            \
        "SECURE:-VERS-ALL:" versions ":-CIPHER-ALL:+AES-256-GCM:+AES-128-GCM:"              \
        "+CHACHA20-POLY1305:-MAC-ALL:+AEAD:-KX-ALL:+ECDHE-ECDSA:+ECDHE-RSA:-SIGN-RSA-SHA1:" \
        "-SIGN-ECDSA-SHA1:%SERVER_PRECEDENCE"
static const char tls_priorities_12[] = TLS_PRIORITIES("+VERS-TLS1.3:+VERS-TLS1.2");
static const char tls_priorities_13[] = TLS_PRIORITIES("+VERS-TLS1.3");

/* A replaced pair is freed this long after it stopped serving new
 * handshakes: the handshakes that picked it have long finished by then. */
#define TLS_RETIRED_KEEP_S 600

/* The body of small answers (errors, health). */
#define SMALL_BODY_MAX 4096u

enum route { ROUTE_MUTATE, ROUTE_VALIDATE, ROUTE_VALIDATE_POLICY, ROUTE_HEALTHZ, ROUTE_READYZ, ROUTE_METRICS };

/* A scrape's text. */
#define METRICS_BODY_MAX (256u * 1024u)

struct request {
        struct server *s;
        enum route route;
        struct buf body;
        size_t charged;         /* bytes of body.cap taken from the server's budget */
        int refused;            /* HTTP status decided before the body ended, or 0 */
        char why[256];          /* its message */
        uint64_t deadline_ns;   /* CLOCK_MONOTONIC */
};

/* A certificate chain and its key, loaded for GnuTLS. */
struct loaded_pair {
        gnutls_pcert_st pcert[WH_TLS_MAX_CHAIN];
        unsigned n;
        gnutls_privkey_t key;
        time_t retired;                 /* when it stopped serving new handshakes */
        struct loaded_pair *older;
};

struct server {
        struct MHD_Daemon *daemon;
        struct server_handler h;
        size_t max_body;
        struct budget *budget;          /* memory of requests in flight, or NULL */
        struct conntrack *conns;        /* deadlines and room (NULL on the plain port) */
        atomic_bool trim_wanted;        /* a large request ended: give memory back */
        bool plain;                     /* the metrics port: no TLS, no /mutate */
        atomic_uint in_flight;          /* requests begun and not completed */
        atomic_bool draining;           /* answer with Connection: close */
        MHD_socket quiesced;            /* the listener server_drain() took back, closed by server_stop() */
        struct loaded_pair *retired;    /* replaced pairs, newest first */
};

/* The pair new handshakes get. GnuTLS's certificate callback has no
 * argument of ours, so it lives here; one server per process. */
static _Atomic(struct loaded_pair *) serving_pair;

/* Mutual TLS (--client-ca, --client-cn): set before the server starts,
 * read-only after; GnuTLS's verify callback has no argument of ours either. */
static struct {
        bool on;
        char **cns;             /* allowed subject common names; none: any chain to the CA */
        size_t n_cns;
} client_auth;

static void loaded_pair_free(struct loaded_pair *p)
{
        if (!p)
                return;
        for (unsigned i = 0; i < p->n; i++)
                gnutls_pcert_deinit(&p->pcert[i]);
        if (p->key)
                gnutls_privkey_deinit(p->key);
        free(p);
}

static int loaded_pair_load(const char *cert_pem, const char *key_pem, struct loaded_pair **ret, char *err,
                            size_t errlen)
{
        struct loaded_pair *p = calloc(1, sizeof *p);
        if (!p)
                return -ENOMEM;
        gnutls_datum_t cert = { (unsigned char *)cert_pem, (unsigned)strlen(cert_pem) };
        gnutls_datum_t key = { (unsigned char *)key_pem, (unsigned)strlen(key_pem) };
        unsigned n = WH_TLS_MAX_CHAIN;
        int g = gnutls_pcert_list_import_x509_raw(p->pcert, &n, &cert, GNUTLS_X509_FMT_PEM, 0);
        if (g < 0) {
                err_set(err, errlen, "the certificate does not load: %s", gnutls_strerror(g));
                goto fail;
        }
        p->n = n;
        g = gnutls_privkey_init(&p->key);
        if (g == 0)
                g = gnutls_privkey_import_x509_raw(p->key, &key, GNUTLS_X509_FMT_PEM, NULL, 0);
        if (g < 0) {
                err_set(err, errlen, "the key does not load: %s", gnutls_strerror(g));
                goto fail;
        }
        *ret = p;
        return 0;
fail:
        loaded_pair_free(p);
        return -EINVAL;
}

/* GnuTLS asks which certificate a new handshake gets. */
static int on_certificate(gnutls_session_t session, const gnutls_datum_t *req_ca_dn, int nreqs,
                          const gnutls_pk_algorithm_t *pk_algos, int pk_algos_length, gnutls_pcert_st **pcert,
                          unsigned int *pcert_length, gnutls_privkey_t *pkey)
{
        struct loaded_pair *p = atomic_load(&serving_pair);
        if (!p)
                return -1;
        *pcert = p->pcert;
        *pcert_length = p->n;
        *pkey = p->key;
        return 0;
}

int server_set_certificate(struct server *s, const char *cert_pem, const char *key_pem, char *err, size_t errlen)
{
        struct loaded_pair *next;
        int r = loaded_pair_load(cert_pem, key_pem, &next, err, errlen);
        if (r < 0)
                return r;
        struct loaded_pair *old = atomic_exchange(&serving_pair, next);
        time_t now = time(NULL);
        if (old) {
                old->retired = now;
                old->older = s->retired;
                s->retired = old;
        }
        /* Free what stopped serving long ago (the list is newest first). */
        for (struct loaded_pair **pp = &s->retired; *pp; pp = &(*pp)->older) {
                if (now - (*pp)->retired > TLS_RETIRED_KEEP_S) {
                        struct loaded_pair *dead = *pp;
                        *pp = NULL;
                        while (dead) {
                                struct loaded_pair *o = dead->older;
                                loaded_pair_free(dead);
                                dead = o;
                        }
                        break;
                }
        }
        return 0;
}

static uint64_t now_ns(void)
{
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

/* Parses a Go duration as the API server writes it ("10s", "1m30s",
 * "500ms", "1.5s") into milliseconds. */
static int parse_duration_ms(const char *s, uint64_t *ret_ms)
{
        static const struct {
                const char *unit;
                double ms;
        } units[] = {
                { "ns", 1e-6 }, { "us", 1e-3 }, { "\xc2\xb5s", 1e-3 }, { "ms", 1 },
                { "s", 1e3 },   { "m", 60e3 },  { "h", 3600e3 },
        };
        double total = 0;
        if (!*s)
                return -EINVAL;
        while (*s) {
                char *end;
                if (!((*s >= '0' && *s <= '9') || *s == '.'))
                        return -EINVAL;
                double v = strtod(s, &end);
                if (end == s)
                        return -EINVAL;
                s = end;
                size_t best = 0;
                double mult = 0;
                for (size_t i = 0; i < sizeof units / sizeof *units; i++) {
                        size_t n = strlen(units[i].unit);
                        if (n > best && strncmp(s, units[i].unit, n) == 0) {
                                best = n;
                                mult = units[i].ms;
                        }
                }
                if (!best)
                        return -EINVAL;
                s += best;
                total += v * mult;
                if (total > 1e12)
                        return -EINVAL;
        }
        *ret_ms = (uint64_t)total;
        return 0;
}

static bool is_tchar(char c)
{
        return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
               (c && strchr("!#$%&'*+-.^_`|~", c));
}

static const char *skip_ows(const char *s)
{
        while (*s == ' ' || *s == '\t')
                s++;
        return s;
}

/* application/json, then only well-formed parameters (RFC 9110:
 * ; token=token or ; token="quoted"), nothing else: no NUL inside (`len`
 * is the value's real length), no trailing garbage. */
static bool is_json_media_type(const char *ct, size_t len)
{
        if (!ct || strlen(ct) != len)
                return false;
        ct = skip_ows(ct);
        size_t n = strlen("application/json");
        if (strncasecmp(ct, "application/json", n) != 0)
                return false;
        ct = skip_ows(ct + n);
        while (*ct == ';') {
                ct = skip_ows(ct + 1);
                const char *name = ct;
                while (is_tchar(*ct))
                        ct++;
                if (ct == name || *ct++ != '=')
                        return false;
                if (*ct == '"') {
                        for (ct++; *ct && *ct != '"'; ct++)
                                if (*ct == '\\' && !*++ct)
                                        return false;
                        if (*ct++ != '"')
                                return false;
                } else {
                        const char *value = ct;
                        while (is_tchar(*ct))
                                ct++;
                        if (ct == value)
                                return false;
                }
                ct = skip_ows(ct);
        }
        return *ct == '\0';
}

/* What the framing headers say: how many Content-Length headers, whether
 * they agree, whether Transfer-Encoding is there too. */
struct framing {
        unsigned content_lengths;
        bool differ;
        bool transfer_encoding;
        const char *first;
};

static enum MHD_Result count_framing(void *cls, enum MHD_ValueKind kind, const char *key, const char *value)
{
        struct framing *f = cls;
        if (!key)
                return MHD_YES;
        if (strcasecmp(key, MHD_HTTP_HEADER_TRANSFER_ENCODING) == 0)
                f->transfer_encoding = true;
        if (strcasecmp(key, MHD_HTTP_HEADER_CONTENT_LENGTH) == 0) {
                if (f->content_lengths++ && (!value || !f->first || strcmp(value, f->first) != 0))
                        f->differ = true;
                if (!f->first)
                        f->first = value;
        }
        return MHD_YES;
}

static enum MHD_Result send_body(struct MHD_Connection *c, int status, struct buf *body, const char *allow, bool close)
{
        size_t len = body->len;
        char *data = buf_steal(body);
        if (!data)
                return MHD_NO;
        struct MHD_Response *resp = MHD_create_response_from_buffer_with_free_callback(len, data, free);
        if (!resp) {
                free(data);
                return MHD_NO;
        }
        MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, "application/json");
        MHD_add_response_header(resp, "X-Content-Type-Options", "nosniff");
        if (allow)
                MHD_add_response_header(resp, MHD_HTTP_HEADER_ALLOW, allow);
        if (close)
                MHD_add_response_header(resp, MHD_HTTP_HEADER_CONNECTION, "close");
        enum MHD_Result r = MHD_queue_response(c, (unsigned)status, resp);
        MHD_destroy_response(resp);
        return r;
}

/* A Kubernetes Status body for an HTTP error, logged once here. */
static enum MHD_Result send_error(struct MHD_Connection *c, const char *url, int status, const char *allow, bool close,
                                  const char *message)
{
        struct buf b;
        buf_init(&b, SMALL_BODY_MAX);
        review_status_body(&b, status, message);

        metrics_bad_request(status);
        struct log_line l;
        log_begin(&l, LOG_WARN, "request refused");
        log_int(&l, "status", status);
        log_str(&l, "path", url);
        log_str(&l, "error", message);
        log_end(&l);

        enum MHD_Result r = send_body(c, status, &b, allow, close);
        buf_free(&b);
        return r;
}

static enum MHD_Result send_metrics(struct server *s, struct MHD_Connection *c)
{
        struct buf b;
        buf_init(&b, METRICS_BODY_MAX);
        s->h.metrics(s->h.ctx, &b);
        size_t len = b.len;
        char *data = buf_steal(&b);
        struct MHD_Response *resp = data ? MHD_create_response_from_buffer_with_free_callback(len, data, free) : NULL;
        if (!resp) {
                free(data);
                return MHD_NO;
        }
        MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, "text/plain; version=0.0.4; charset=utf-8");
        enum MHD_Result r = MHD_queue_response(c, MHD_HTTP_OK, resp);
        MHD_destroy_response(resp);
        return r;
}

static enum MHD_Result send_health(struct server *s, struct MHD_Connection *c, enum route route)
{
        struct buf b;
        buf_init(&b, SMALL_BODY_MAX);
        int status = 200;
        if (route == ROUTE_METRICS) {
                buf_free(&b);
                return send_metrics(s, c);
        }
        if (route == ROUTE_HEALTHZ)
                buf_puts(&b, "{\"status\":\"ok\"}\n");
        else if (!s->h.ready(s->h.ctx, &b))
                status = 503;
        enum MHD_Result r = send_body(c, status, &b, NULL, false);
        buf_free(&b);
        return r;
}

/* The connection's entry in the deadline table, or NULL. */
static struct conn *conn_of(struct MHD_Connection *c)
{
        const union MHD_ConnectionInfo *ci = MHD_get_connection_info(c, MHD_CONNECTION_INFO_SOCKET_CONTEXT);
        return ci ? ci->socket_context : NULL;
}

/* Frees a request's body and gives its memory back to the budget. */
static void release_body(struct request *rq)
{
        if (rq->charged > WH_BODY_SMALL_BYTES || rq->refused)
                atomic_store(&rq->s->trim_wanted, true);
        buf_free(&rq->body);
        if (rq->charged && rq->s->budget)
                budget_give(rq->s->budget, rq->charged);
        rq->charged = 0;
}

/* First call for a request: route it and refuse what the headers already
 * condemn. Returns the status to refuse with, or 0. */
static int screen(struct server *s, struct MHD_Connection *c, const char *url, const char *method, struct request *rq,
                  const char **allow)
{
        if (strcmp(url, "/healthz") == 0 || strcmp(url, "/readyz") == 0 || strcmp(url, "/metrics") == 0) {
                rq->route = url[1] == 'h' ? ROUTE_HEALTHZ : url[1] == 'r' ? ROUTE_READYZ : ROUTE_METRICS;
                if (strcmp(method, "GET") != 0 && strcmp(method, "HEAD") != 0) {
                        *allow = "GET, HEAD";
                        snprintf(rq->why, sizeof rq->why, "%s takes GET, not %s", url, method);
                        return 405;
                }
                return 0;
        }
        bool review = true;
        if (strcmp(url, "/mutate") == 0)
                rq->route = ROUTE_MUTATE;
        else if (strcmp(url, "/validate") == 0)
                rq->route = ROUTE_VALIDATE;
        else if (strcmp(url, "/validate-policy") == 0)
                rq->route = ROUTE_VALIDATE_POLICY;
        else
                review = false;
        if (s->plain || !review) {
                snprintf(rq->why, sizeof rq->why, "no such path: %.100s (%s)", url,
                         s->plain ? "this port serves GET /metrics, /healthz and /readyz"
                                  : "the webhook serves POST /mutate, POST /validate, POST /validate-policy, "
                                    "GET /healthz, /readyz and /metrics");
                return 404;
        }
        if (strcmp(method, "POST") != 0) {
                *allow = "POST";
                snprintf(rq->why, sizeof rq->why, "%s takes POST, not %.20s", url, method);
                return 405;
        }
        /* Request smuggling shapes: a body framed two ways, or two lengths. */
        struct framing fr = { 0 };
        MHD_get_connection_values(c, MHD_HEADER_KIND, count_framing, &fr);
        if (fr.transfer_encoding && fr.content_lengths) {
                snprintf(rq->why, sizeof rq->why, "Content-Length together with Transfer-Encoding");
                return 400;
        }
        if (fr.differ) {
                snprintf(rq->why, sizeof rq->why, "two different Content-Length headers");
                return 400;
        }
        const char *ct = NULL;
        size_t ct_len = 0;
        if (MHD_lookup_connection_value_n(c, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_TYPE,
                                          strlen(MHD_HTTP_HEADER_CONTENT_TYPE), &ct, &ct_len) != MHD_YES)
                ct = NULL;
        if (!is_json_media_type(ct, ct_len)) {
                snprintf(rq->why, sizeof rq->why, "Content-Type must be application/json, not %.60s",
                         ct ? ct : "(none)");
                return 415;
        }
        const char *cl = MHD_lookup_connection_value(c, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_LENGTH);
        if (cl) {
                char *end;
                errno = 0;
                unsigned long long n = strtoull(cl, &end, 10);
                if (errno == 0 && *end == '\0' && n > s->max_body) {
                        snprintf(rq->why, sizeof rq->why, "the body is %llu bytes; the limit is %zu", n, s->max_body);
                        return 413;
                }
                /* Nothing is reserved from what the client says: the body
                 * takes memory (and budget) as it arrives. */
        }
        uint64_t timeout_ms = WH_REQUEST_TIMEOUT_DEFAULT_MS;
        const char *t = MHD_lookup_connection_value(c, MHD_GET_ARGUMENT_KIND, "timeout");
        if (t && parse_duration_ms(t, &timeout_ms) < 0) {
                snprintf(rq->why, sizeof rq->why, "timeout=%.40s is not a duration like 10s", t);
                return 400;
        }
        if (timeout_ms == 0 || timeout_ms > WH_REQUEST_TIMEOUT_MAX_MS)
                timeout_ms = WH_REQUEST_TIMEOUT_MAX_MS;
        rq->deadline_ns = now_ns() + timeout_ms * 1000000ull;
        return 0;
}

/* First call for a request: its state, then the headers screened; a request
 * they condemn is answered at once. */
static enum MHD_Result request_begin(struct server *s, struct MHD_Connection *c, const char *url, const char *method,
                                     void **con_cls)
{
        struct request *rq = calloc(1, sizeof *rq);
        if (!rq)
                return MHD_NO;
        rq->s = s;
        atomic_fetch_add(&s->in_flight, 1);
        buf_init(&rq->body, s->max_body);
        *con_cls = rq;
        const char *allow = NULL;
        int refuse = screen(s, c, url, method, rq, &allow);
        /* Headers in: the body's deadline now, absolute. */
        if (s->conns)
                conntrack_request(s->conns, conn_of(c), rq->deadline_ns);
        if (!refuse)
                return MHD_YES;
        rq->refused = -1;   /* answered: whatever body follows is dropped */
        return send_error(c, url, refuse, allow, true, rq->why);
}

/* A piece of the body: kept, within the request's deadline, the body's limit
 * and the budget, or the request refused. */
static enum MHD_Result request_body(struct server *s, struct request *rq, struct MHD_Connection *c, const char *url,
                                    const char *upload_data, size_t *upload_size)
{
        size_t n = *upload_size;
        *upload_size = 0;
        if (rq->refused)
                return MHD_YES;   /* draining after a refusal; nothing is kept */
        if (now_ns() > rq->deadline_ns) {
                log_message(LOG_WARN,
                            "request body still arriving after its timeout; "
                            "connection closed",
                            url);
                return MHD_NO;
        }
        size_t cap = buf_cap_after(&rq->body, n);
        if (cap > rq->body.cap && s->budget) {
                size_t more = cap - rq->body.cap;
                if (!budget_take(s->budget, more, cap > WH_BODY_SMALL_BYTES)) {
                        release_body(rq);
                        snprintf(rq->why, sizeof rq->why,
                                 "the server's memory for requests in "
                                 "flight (--request-memory, %zu MiB) is in use; try again",
                                 s->budget->limit >> 20);
                        rq->refused = 503;
                        /* Answer now if the library lets us; else when the body ends. */
                        if (send_error(c, url, 503, NULL, true, rq->why) == MHD_YES)
                                rq->refused = -1;
                        return MHD_YES;
                }
                rq->charged += more;
        }
        int r = buf_append(&rq->body, upload_data, n);
        if (r == -ENOBUFS) {
                release_body(rq);
                rq->refused = 413;
                snprintf(rq->why, sizeof rq->why, "the body is larger than the limit of %zu bytes", s->max_body);
                /* Answer now if the library lets us; else when the body ends. */
                if (send_error(c, url, 413, NULL, true, rq->why) == MHD_YES)
                        rq->refused = -1;
                return MHD_YES;
        }
        return r < 0 ? MHD_NO : MHD_YES;
}

/* The body is whole: the answer (a refusal kept for now, a health check, or
 * the admission callback's). */
static enum MHD_Result request_answer(struct server *s, struct request *rq, struct MHD_Connection *c, const char *url)
{
        if (rq->refused > 0)
                return send_error(c, url, rq->refused, NULL, true, rq->why);
        if (rq->refused < 0)
                return MHD_YES; /* answered already */
        enum server_path path;
        switch (rq->route) {
        case ROUTE_MUTATE: path = SERVER_PATH_MUTATE; break;
        case ROUTE_VALIDATE: path = SERVER_PATH_VALIDATE; break;
        case ROUTE_VALIDATE_POLICY: path = SERVER_PATH_VALIDATE_POLICY; break;
        case ROUTE_HEALTHZ:
        case ROUTE_READYZ:
        case ROUTE_METRICS:
        default: return send_health(s, c, rq->route);
        }
        bool close = atomic_load(&s->draining);

        struct buf out;
        int status = 500;
        buf_init(&out, WH_MAX_RESPONSE_BYTES);
        s->h.admit(s->h.ctx, path, rq->body.data ? rq->body.data : "", rq->body.len, rq->deadline_ns, &status, &out);
        release_body(rq);
        enum MHD_Result r = send_body(c, status, &out, NULL, close);
        buf_free(&out);
        return r;
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *c, const char *url, const char *method,
                                  const char *version, const char *upload_data, size_t *upload_size, void **con_cls)
{
        struct server *s = cls;
        struct request *rq = *con_cls;

        if (!rq)
                return request_begin(s, c, url, method, con_cls);
        if (*upload_size)
                return request_body(s, rq, c, url, upload_data, upload_size);
        return request_answer(s, rq, c, url);
}

void server_close_connections(struct server *s)
{
        atomic_store(&s->draining, true);
}

static unsigned open_connections(struct server *s)
{
        const union MHD_DaemonInfo *info = MHD_get_daemon_info(s->daemon, MHD_DAEMON_INFO_CURRENT_CONNECTIONS);
        unsigned n = info ? info->num_connections : 0;
        unsigned busy = atomic_load(&s->in_flight);
        return n > busy ? n : busy;
}

unsigned server_drain(struct server *s, unsigned grace_ms)
{
        atomic_store(&s->draining, true);
        /* Not closed here: the library's worker threads may still be using
         * the descriptor (its manual: close it only after MHD_stop_daemon()),
         * and a number closed now could come back as the next socket or file
         * opened while they do. shutdown() stops the listening all the same:
         * new connections are refused, those in the backlog reset. */
        MHD_socket listener = MHD_quiesce_daemon(s->daemon);
        if (listener != MHD_INVALID_SOCKET) {
                shutdown(listener, SHUT_RDWR);
                s->quiesced = listener;
        }
        for (unsigned waited = 0; waited < grace_ms && open_connections(s) > 0; waited += 10)
                nanosleep(&(struct timespec){ .tv_nsec = 10 * 1000000L }, NULL);
        return open_connections(s);
}

static void on_completed(void *cls, struct MHD_Connection *c, void **con_cls, enum MHD_RequestTerminationCode toe)
{
        struct request *rq = *con_cls;
        if (!rq)
                return;
        if (rq->s->conns)
                conntrack_done(rq->s->conns, conn_of(c));
        atomic_fetch_sub(&rq->s->in_flight, 1);
        release_body(rq);
        free(rq);
        *con_cls = NULL;
}

/* After large requests, refusals or many closed connections (an attack,
 * often), the allocator gives what it keeps back to the system, at most
 * once a reaper pass. */
static void housekeeping(void *cls, unsigned closed)
{
        struct server *s = cls;
        if (atomic_exchange(&s->trim_wanted, false) | (closed >= WH_TRIM_AFTER_CLOSES))
                malloc_trim(0);
}

/* During the handshake: the client's chain must verify against
 * --client-ca and, with --client-cn, its subject CN be one listed; else the
 * handshake fails, before any HTTP. */
static int verify_client(gnutls_session_t session)
{
        unsigned status = 0;
        if (gnutls_certificate_verify_peers2(session, &status) < 0 || status != 0)
                return -1;
        if (!client_auth.n_cns)
                return 0;
        unsigned n = 0;
        const gnutls_datum_t *chain = gnutls_certificate_get_peers(session, &n);
        gnutls_x509_crt_t crt;
        if (!chain || n == 0 || gnutls_x509_crt_init(&crt) < 0)
                return -1;
        int ok = -1;
        char cn[256];
        size_t cn_len = sizeof cn;
        if (gnutls_x509_crt_import(crt, &chain[0], GNUTLS_X509_FMT_DER) >= 0 &&
            gnutls_x509_crt_get_dn_by_oid(crt, GNUTLS_OID_X520_COMMON_NAME, 0, 0, cn, &cn_len) >= 0)
                for (size_t i = 0; i < client_auth.n_cns && ok < 0; i++)
                        if (strcmp(cn, client_auth.cns[i]) == 0)
                                ok = 0;
        gnutls_x509_crt_deinit(crt);
        return ok;
}

/* A new connection: room is made for it at the limit, or it is refused. */
static enum MHD_Result on_accept(void *cls, const struct sockaddr *addr, socklen_t addrlen)
{
        struct server *s = cls;
        return conntrack_admit(s->conns) ? MHD_YES : MHD_NO;
}

/* Connections begin (before their handshake) and end. */
static void on_connection(void *cls, struct MHD_Connection *c, void **socket_context,
                          enum MHD_ConnectionNotificationCode code)
{
        struct server *s = cls;
        if (code == MHD_CONNECTION_NOTIFY_STARTED) {
                const union MHD_ConnectionInfo *ci = MHD_get_connection_info(c, MHD_CONNECTION_INFO_CONNECTION_FD);
                *socket_context = ci ? conntrack_started(s->conns, ci->connect_fd) : NULL;
                if (client_auth.on) {
                        /* Before the handshake: a certificate is required, and verified in it. */
                        const union MHD_ConnectionInfo *ti =
                                MHD_get_connection_info(c, MHD_CONNECTION_INFO_GNUTLS_SESSION);
                        if (ti && ti->tls_session) {
                                gnutls_certificate_server_set_request(ti->tls_session, GNUTLS_CERT_REQUIRE);
                                gnutls_session_set_verify_function(ti->tls_session, verify_client);
                        } else if (ci) {
                                shutdown(ci->connect_fd, SHUT_RDWR); /* never served unverified */
                        }
                }
        } else if (code == MHD_CONNECTION_NOTIFY_CLOSED) {
                conntrack_closed(s->conns, *socket_context);
                *socket_context = NULL;
        }
}

static void on_mhd_log(void *cls, const char *fmt, va_list ap)
{
        char msg[512];
        vsnprintf(msg, sizeof msg, fmt, ap);
        size_t n = strlen(msg);
        while (n && (msg[n - 1] == '\n' || msg[n - 1] == '\r'))
                msg[--n] = '\0';
        log_message(LOG_WARN, "http", msg);
}

/* Splits "ADDR:PORT" into a socket address. */
static int parse_listen(const char *listen, struct sockaddr_storage *ret, bool *ret_v6, char *err, size_t errlen)
{
        char host[128];
        const char *colon = strrchr(listen, ':');
        if (!colon || colon - listen >= (long)sizeof host)
                goto bad;
        memcpy(host, listen, (size_t)(colon - listen));
        host[colon - listen] = '\0';
        char *end;
        errno = 0;
        unsigned long port = strtoul(colon + 1, &end, 10);
        if (errno || *end || end == colon + 1 || port > 65535)
                goto bad;

        memset(ret, 0, sizeof *ret);
        size_t hl = strlen(host);
        if (hl >= 2 && host[0] == '[' && host[hl - 1] == ']') {
                struct sockaddr_in6 *a6 = (struct sockaddr_in6 *)ret;
                host[hl - 1] = '\0';
                if (inet_pton(AF_INET6, host + 1, &a6->sin6_addr) != 1)
                        goto bad;
                a6->sin6_family = AF_INET6;
                a6->sin6_port = htons((uint16_t)port);
                *ret_v6 = true;
                return 0;
        }
        struct sockaddr_in *a4 = (struct sockaddr_in *)ret;
        a4->sin_family = AF_INET;
        a4->sin_port = htons((uint16_t)port);
        if (hl == 0)
                a4->sin_addr.s_addr = htonl(INADDR_ANY);
        else if (inet_pton(AF_INET, host, &a4->sin_addr) != 1)
                goto bad;
        *ret_v6 = false;
        return 0;
bad:
        err_set(err, errlen,
                "listen address \"%s\" is not ADDR:PORT (like 0.0.0.0:8443, "
                "127.0.0.1:8443 or [::]:8443)",
                listen);
        return -EINVAL;
}

/* A listening socket on `listen` (made here rather than by libmicrohttpd,
 * whose message for a failed bind names the port it was given, 0 when it is
 * given an address). The fd, or a negative errno with "cannot listen on
 * ADDR:PORT: why" in `err`. libmicrohttpd owns the fd once it is handed
 * over (MHD_OPTION_LISTEN_SOCKET), and closes it, on failure too. */
static int open_listener(const char *where, char *err, size_t errlen)
{
        struct sockaddr_storage addr;
        bool v6 = false;
        int r = parse_listen(where, &addr, &v6, err, errlen);
        if (r < 0)
                return r;
        int fd = socket(v6 ? AF_INET6 : AF_INET, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
        if (fd < 0) {
                r = -errno;
                err_set(err, errlen, "cannot listen on %s: %s", where, strerror(-r));
                return r;
        }
        int on = 1;
        /* As libmicrohttpd does: a restart binds while old connections are in TIME_WAIT; [::] is IPv6 only. */
        (void)setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &on, sizeof on);
        if (v6)
                (void)setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &on, sizeof on);
        socklen_t len = v6 ? sizeof(struct sockaddr_in6) : sizeof(struct sockaddr_in);
        if (bind(fd, (const struct sockaddr *)&addr, len) < 0 || listen(fd, (int)WH_LISTEN_BACKLOG) < 0) {
                r = -errno;
                err_set(err, errlen, "cannot listen on %s: %s", where, strerror(-r));
                close(fd);
                return r;
        }
        return fd;
}

int server_check_listen(const char *listen, char *err, size_t errlen)
{
        struct sockaddr_storage ss;
        bool v6;
        return parse_listen(listen, &ss, &v6, err, errlen);
}

void server_stop(struct server *s)
{
        if (!s)
                return;
        if (s->daemon)
                MHD_stop_daemon(s->daemon);
        if (s->quiesced != MHD_INVALID_SOCKET)
                close(s->quiesced);
        conntrack_free(s->conns);
        if (!s->plain) {
                loaded_pair_free(atomic_exchange(&serving_pair, NULL));
                for (size_t i = 0; i < client_auth.n_cns; i++)
                        free(client_auth.cns[i]);
                free(client_auth.cns);
                memset(&client_auth, 0, sizeof client_auth);
        }
        while (s->retired) {
                struct loaded_pair *o = s->retired->older;
                loaded_pair_free(s->retired);
                s->retired = o;
        }
        free(s);
}

/* The size of the thread pool: --threads, or one a CPU, at most WH_MAX_THREADS. */
static unsigned pool_size(unsigned threads)
{
        if (threads == WH_THREADS_AUTO) {
                long n = sysconf(_SC_NPROCESSORS_ONLN);
                threads = n > 0 ? (unsigned)n : 1;
        }
        if (threads > WH_MAX_THREADS)
                threads = WH_MAX_THREADS;
        return threads;
}

/* The connection reaper (conntrack.h), its deadlines from the options. */
static int start_reaper(struct server *s, const struct server_options *opt, char *err, size_t errlen)
{
        struct conntrack_options co = {
                .limit = opt->max_connections,
                .header_timeout_ms = opt->header_timeout_ms ? opt->header_timeout_ms : WH_HEADER_TIMEOUT_S * 1000u,
                .body_timeout_ms = opt->body_timeout_ms ? opt->body_timeout_ms : WH_BODY_TIMEOUT_S * 1000u,
                .idle_timeout_ms = opt->idle_timeout_s * 1000u,
                .tick = housekeeping,
                .tick_ctx = s,
        };
        int r = conntrack_new(&co, &s->conns);
        if (r < 0)
                err_set(err, errlen, "cannot start the connection reaper: %s", strerror(-r));
        return r;
}

int server_start(const struct server_options *opt, const struct server_handler *h, struct server **ret_server,
                 char *err, size_t errlen)
{
        struct sockaddr_storage addr;
        bool v6 = false;
        int r = parse_listen(opt->listen, &addr, &v6, err, errlen);
        if (r < 0)
                return r;

        struct server *s = calloc(1, sizeof *s);
        if (!s)
                return -ENOMEM;
        s->quiesced = MHD_INVALID_SOCKET;
        s->h = *h;
        s->max_body = opt->max_body;
        s->budget = opt->budget;
        r = server_set_certificate(s, opt->cert_pem, opt->key_pem, err, errlen);
        if (r < 0) {
                server_stop(s);
                return r;
        }
        unsigned threads = pool_size(opt->threads);
        if (opt->client_ca_pem) {
                client_auth.on = true;
                client_auth.cns = calloc(opt->n_client_cns ? opt->n_client_cns : 1, sizeof *client_auth.cns);
                for (size_t i = 0; client_auth.cns && i < opt->n_client_cns; i++)
                        if ((client_auth.cns[i] = strdup(opt->client_cns[i])))
                                client_auth.n_cns++;
                if (!client_auth.cns || client_auth.n_cns != opt->n_client_cns) {
                        server_stop(s);
                        return -ENOMEM;
                }
        }
        r = start_reaper(s, opt, err, errlen);
        if (r < 0) {
                server_stop(s);
                return r;
        }

        int fd = open_listener(opt->listen, err, errlen);
        if (fd < 0) {
                server_stop(s);
                return fd;
        }
        unsigned flags = MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_EPOLL | MHD_USE_TLS | MHD_USE_ERROR_LOG |
                         MHD_USE_ITC; /* for MHD_quiesce_daemon() */
        if (v6)
                flags |= MHD_USE_IPv6;
        struct MHD_OptionItem ops[] = {
                { MHD_OPTION_EXTERNAL_LOGGER, (intptr_t)on_mhd_log, NULL }, /* first, to catch all */
                { MHD_OPTION_LISTEN_SOCKET, fd, NULL },
                { MHD_OPTION_HTTPS_PRIORITIES, 0, (void *)(opt->tls13_only ? tls_priorities_13 : tls_priorities_12) },
                { MHD_OPTION_THREAD_POOL_SIZE, threads, NULL },
                /* Room beyond --max-connections for those being closed to make room (conntrack.h). */
                { MHD_OPTION_CONNECTION_LIMIT, opt->max_connections + opt->max_connections / 4 + 16, NULL },
                { MHD_OPTION_PER_IP_CONNECTION_LIMIT, opt->max_connections_per_ip, NULL },
                { MHD_OPTION_CONNECTION_MEMORY_LIMIT, opt->connection_memory, NULL },
                { MHD_OPTION_CONNECTION_TIMEOUT, opt->idle_timeout_s, NULL },
                { MHD_OPTION_NOTIFY_COMPLETED, (intptr_t)on_completed, NULL },
                { MHD_OPTION_NOTIFY_CONNECTION, (intptr_t)on_connection, s },
                /* HTTP as RFC 9112 writes it: CRLF line ends, no folded header
                 * lines, no NUL or bare CR in a header (400 before we see it). */
                { MHD_OPTION_CLIENT_DISCIPLINE_LVL, WH_HTTP_DISCIPLINE, NULL },
                /* The CAs client certificates must chain to (mutual TLS), or nothing. */
                { opt->client_ca_pem ? MHD_OPTION_HTTPS_MEM_TRUST : MHD_OPTION_END, 0, (void *)opt->client_ca_pem },
                { MHD_OPTION_END, 0, NULL },
        };
        s->daemon = MHD_start_daemon(flags, 0, on_accept, s, on_request, s, MHD_OPTION_ARRAY, ops,
                                     MHD_OPTION_HTTPS_CERT_CALLBACK, on_certificate, MHD_OPTION_END);
        if (!s->daemon) {
                err_set(err, errlen,
                        "cannot serve HTTPS on %s (the certificate, key or TLS priorities were refused: see the "
                        "log above)",
                        opt->listen);
                server_stop(s);
                return -EADDRNOTAVAIL;
        }
        *ret_server = s;
        return 0;
}

int server_start_plain(const char *listen, const struct server_handler *h, struct server **ret_server, char *err,
                       size_t errlen)
{
        struct sockaddr_storage addr;
        bool v6 = false;
        int r = parse_listen(listen, &addr, &v6, err, errlen);
        if (r < 0)
                return r;
        struct server *s = calloc(1, sizeof *s);
        if (!s)
                return -ENOMEM;
        s->quiesced = MHD_INVALID_SOCKET;
        s->h = *h;
        s->plain = true;
        int fd = open_listener(listen, err, errlen);
        if (fd < 0) {
                free(s);
                return fd;
        }
        unsigned flags = MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_EPOLL | MHD_USE_ERROR_LOG;
        if (v6)
                flags |= MHD_USE_IPv6;
        s->daemon = MHD_start_daemon(flags, 0, NULL, NULL, on_request, s, MHD_OPTION_EXTERNAL_LOGGER, on_mhd_log, NULL,
                                     MHD_OPTION_LISTEN_SOCKET, fd, MHD_OPTION_CONNECTION_LIMIT,
                                     (unsigned)WH_METRICS_MAX_CONNECTIONS, MHD_OPTION_CONNECTION_TIMEOUT,
                                     (unsigned)WH_IDLE_TIMEOUT_S, MHD_OPTION_NOTIFY_COMPLETED, on_completed, NULL,
                                     MHD_OPTION_CLIENT_DISCIPLINE_LVL, (int)WH_HTTP_DISCIPLINE, MHD_OPTION_END);
        if (!s->daemon) {
                err_set(err, errlen, "cannot serve HTTP on %s: see the log above", listen);
                free(s);
                return -EADDRNOTAVAIL;
        }
        *ret_server = s;
        return 0;
}

void server_connection_stats(struct server *s, struct conntrack_stats *ret_stats)
{
        if (s->conns)
                conntrack_stats(s->conns, ret_stats);
        else
                memset(ret_stats, 0, sizeof *ret_stats);
}

unsigned server_port(const struct server *s)
{
        const union MHD_DaemonInfo *info = MHD_get_daemon_info(s->daemon, MHD_DAEMON_INFO_BIND_PORT);
        return info ? info->port : 0;
}
