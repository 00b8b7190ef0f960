/* Unit tests for webhook/io/server.c: the HTTPS server started on 127.0.0.1
 * (a free port) with the certs fixture and a test handler, and the plain
 * metrics port, driven by a raw client (a socket, with GnuTLS for HTTPS)
 * that writes requests byte for byte, framing errors included. Checked:
 * routes and methods, status codes with their Status bodies, the body and
 * deadline handed to the handler, the bounds (Content-Type, body size,
 * request memory), readiness, Connection: close when draining, and the
 * listen address parser. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <cjson/cJSON.h>
#include <gnutls/gnutls.h>

#include "certs_fixture.h"
#include "budget.h"
#include "buf.h"
#include "metrics.h"
#include "server.h"
#include "webhook_limits.h"

#define MAX_BODY WH_BODY_SMALL_BYTES
#define REPLY_MAX (1u << 20)
#define IO_TIMEOUT_MS 10000

/* ---- the handler ---- */

static struct {
        pthread_mutex_t lock;
        unsigned calls;
        enum server_path path;
        char body[MAX_BODY + 1];
        size_t len;
        uint64_t deadline_ns, called_ns;
        bool ready;
        int status;             /* what admit answers */
} h = { .lock = PTHREAD_MUTEX_INITIALIZER };

static uint64_t now_ns(void)
{
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static void admit(void *ctx, enum server_path path, const char *body, size_t len, uint64_t deadline_ns, int *ret_status,
                  struct buf *out)
{
        pthread_mutex_lock(&h.lock);
        h.calls++;
        h.path = path;
        h.len = len;
        memcpy(h.body, body, len < MAX_BODY ? len : MAX_BODY);
        h.deadline_ns = deadline_ns;
        h.called_ns = now_ns();
        *ret_status = h.status;
        pthread_mutex_unlock(&h.lock);
        buf_printf(out, "{\"path\":\"%s\",\"len\":%zu}",
                   path == SERVER_PATH_MUTATE     ? "mutate"
                   : path == SERVER_PATH_VALIDATE ? "validate"
                                                  : "validate-policy",
                   len);
}

static bool ready(void *ctx, struct buf *out)
{
        buf_printf(out, "{\"ready\":%s}", h.ready ? "true" : "false");
        return h.ready;
}

static void metrics(void *ctx, struct buf *out)
{
        buf_puts(out, "# TYPE test_up gauge\ntest_up 1\n");
}

static const struct server_handler handler = { .admit = admit, .ready = ready, .metrics = metrics };

/* ---- the raw client ---- */

struct reply {
        int status;
        char head[8192];        /* status line and headers */
        char *body;             /* NUL-terminated; the caller frees */
        size_t len;
};

static void reply_free(struct reply *r)
{
        free(r->body);
        memset(r, 0, sizeof *r);
}

/* A header's value in the reply (case-insensitive name), or NULL. */
static const char *header(const struct reply *r, const char *name)
{
        static char value[512];
        size_t n = strlen(name);
        for (const char *p = strstr(r->head, "\r\n"); p && p[2]; p = strstr(p + 2, "\r\n")) {
                const char *line = p + 2;
                if (strncasecmp(line, name, n) == 0 && line[n] == ':') {
                        const char *v = line + n + 1;
                        while (*v == ' ')
                                v++;
                        const char *end = strstr(v, "\r\n");
                        snprintf(value, sizeof value, "%.*s", (int)(end ? end - v : (long)strlen(v)), v);
                        return value;
                }
        }
        return NULL;
}

struct conn {
        int fd;
        gnutls_session_t tls;   /* NULL: plain */
        gnutls_certificate_credentials_t cred;
};

static int conn_open(struct conn *c, unsigned port, const char *ca_path)
{
        memset(c, 0, sizeof *c);
        c->fd = socket(AF_INET, SOCK_STREAM, 0);
        assert_true(c->fd >= 0);
        struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons((uint16_t)port) };
        a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        if (connect(c->fd, (struct sockaddr *)&a, sizeof a) < 0) {
                int e = errno;
                close(c->fd);
                return -e;
        }
        if (!ca_path)
                return 0;
        assert_int_equal(gnutls_certificate_allocate_credentials(&c->cred), 0);
        assert_true(gnutls_certificate_set_x509_trust_file(c->cred, ca_path, GNUTLS_X509_FMT_PEM) > 0);
        assert_int_equal(gnutls_init(&c->tls, GNUTLS_CLIENT), 0);
        assert_int_equal(gnutls_set_default_priority(c->tls), 0);
        assert_int_equal(gnutls_credentials_set(c->tls, GNUTLS_CRD_CERTIFICATE, c->cred), 0);
        gnutls_session_set_verify_cert(c->tls, "localhost", 0);
        gnutls_transport_set_int(c->tls, c->fd);
        gnutls_handshake_set_timeout(c->tls, IO_TIMEOUT_MS);
        int r;
        do
                r = gnutls_handshake(c->tls);
        while (r < 0 && !gnutls_error_is_fatal(r));
        if (r < 0)
                fail_msg("TLS handshake: %s", gnutls_strerror(r));
        return 0;
}

static void conn_close(struct conn *c)
{
        if (c->tls) {
                gnutls_bye(c->tls, GNUTLS_SHUT_WR);
                gnutls_deinit(c->tls);
                gnutls_certificate_free_credentials(c->cred);
        }
        close(c->fd);
        memset(c, 0, sizeof *c);
}

static void conn_write(struct conn *c, const char *data, size_t len)
{
        while (len) {
                ssize_t n = c->tls ? gnutls_record_send(c->tls, data, len) : write(c->fd, data, len);
                if (n == GNUTLS_E_AGAIN || n == GNUTLS_E_INTERRUPTED)
                        continue;
                if (n <= 0)
                        return;   /* the server may close early (413); the reply says why */
                data += n;
                len -= (size_t)n;
        }
}

/* Reads up to `max` bytes; 0 at EOF or on error. */
static size_t conn_read(struct conn *c, char *out, size_t max)
{
        struct pollfd p = { .fd = c->fd, .events = POLLIN };
        if (!(c->tls && gnutls_record_check_pending(c->tls)) && poll(&p, 1, IO_TIMEOUT_MS) != 1)
                fail_msg("no answer within %d ms", IO_TIMEOUT_MS);
        for (;;) {
                ssize_t n = c->tls ? gnutls_record_recv(c->tls, out, max) : read(c->fd, out, max);
                if (n == GNUTLS_E_AGAIN || n == GNUTLS_E_INTERRUPTED)
                        continue;
                return n > 0 ? (size_t)n : 0;
        }
}

/* Reads one reply: headers, then Content-Length bytes (none for HEAD), or
 * to the end of the connection. */
static void conn_reply(struct conn *c, bool head_only, struct reply *r)
{
        memset(r, 0, sizeof *r);
        char *data = malloc(REPLY_MAX + 1);
        assert_non_null(data);
        size_t len = 0;
        char *end = NULL;
        while (!end) {
                size_t n = conn_read(c, data + len, REPLY_MAX - len);
                if (!n)
                        fail_msg("the connection ended before the headers: %.*s", (int)len, data);
                len += n;
                data[len] = '\0';
                end = strstr(data, "\r\n\r\n");
        }
        size_t head_len = (size_t)(end - data) + 2;
        assert_true(head_len < sizeof r->head);
        memcpy(r->head, data, head_len);
        r->head[head_len] = '\0';
        assert_int_equal(sscanf(r->head, "HTTP/1.1 %d ", &r->status), 1);
        size_t body_at = head_len + 2;
        const char *cl = header(r, "Content-Length");
        size_t want = head_only ? 0 : cl ? strtoul(cl, NULL, 10) : SIZE_MAX;
        while (len - body_at < want) {
                size_t n = conn_read(c, data + len, REPLY_MAX - len);
                if (!n)
                        break;
                len += n;
        }
        if (want != SIZE_MAX)
                assert_true(len - body_at >= want);
        r->len = want == SIZE_MAX ? len - body_at : want;
        r->body = malloc(r->len + 1);
        assert_non_null(r->body);
        memcpy(r->body, data + body_at, r->len);
        r->body[r->len] = '\0';
        free(data);
}

/* ---- the server under test ---- */

struct sfix {
        struct fixture *f;
        char ca[PATH_MAX];
        struct server *s;
        unsigned port;
        char *cert, *key;
        struct budget budget;
};

static struct server_options options(struct sfix *sf)
{
        return (struct server_options){
                .listen = "127.0.0.1:0",
                .cert_pem = sf->cert,
                .key_pem = sf->key,
                .max_body = MAX_BODY,
                .max_connections = 64,
                .max_connections_per_ip = 64,
                .connection_memory = WH_CONNECTION_MEMORY_BYTES,
                .idle_timeout_s = WH_IDLE_TIMEOUT_S,
                .threads = 2,
        };
}

static void start_with(struct sfix *sf, const struct server_options *o)
{
        char err[512] = "";
        int r = server_start(o, &handler, &sf->s, err, sizeof err);
        if (r != 0)
                fail_msg("server_start: %d %s", r, err);
        sf->port = server_port(sf->s);
        assert_true(sf->port > 0);
}

static int sf_setup(void **state)
{
        struct sfix *sf = calloc(1, sizeof *sf);
        void *fs = NULL;
        if (!sf || setup(&fs) != 0)
                return -1;
        sf->f = fs;
        generate(sf->f);
        snprintf(sf->ca, sizeof sf->ca, "%s", path_in(sf->f, "ca.crt"));
        sf->cert = slurp(path_in(sf->f, "tls.crt"), NULL);
        sf->key = slurp(path_in(sf->f, "tls.key"), NULL);
        pthread_mutex_lock(&h.lock);
        h.calls = 0;
        h.len = 0;
        h.ready = true;
        h.status = 200;
        pthread_mutex_unlock(&h.lock);
        *state = sf;
        return 0;
}

static int sf_teardown(void **state)
{
        struct sfix *sf = *state;
        server_stop(sf->s);
        free(sf->cert);
        free(sf->key);
        void *fs = sf->f;
        int r = teardown(&fs);
        free(sf);
        return r;
}

static int sf_setup_started(void **state)
{
        if (sf_setup(state) != 0)
                return -1;
        struct sfix *sf = *state;
        struct server_options o = options(sf);
        start_with(sf, &o);
        return 0;
}

/* One request on a new connection: `raw` as is. */
static void exchange(struct sfix *sf, bool tls, const char *raw, size_t len, struct reply *r)
{
        struct conn c;
        assert_int_equal(conn_open(&c, sf->port, tls ? sf->ca : NULL), 0);
        conn_write(&c, raw, len);
        conn_reply(&c, strncmp(raw, "HEAD ", 5) == 0, r);
        conn_close(&c);
}

static void request(struct sfix *sf, const char *method, const char *target, const char *content_type, const char *body,
                    struct reply *r)
{
        char raw[1024];
        size_t blen = body ? strlen(body) : 0;
        int n = snprintf(raw, sizeof raw, "%s %s HTTP/1.1\r\nHost: localhost\r\n%s%s%s", method, target,
                         content_type ? "Content-Type: " : "", content_type ? content_type : "",
                         content_type ? "\r\n" : "");
        assert_true(n > 0 && (size_t)n < sizeof raw);
        if (body)
                n += snprintf(raw + n, sizeof raw - (size_t)n, "Content-Length: %zu\r\n", blen);
        n += snprintf(raw + n, sizeof raw - (size_t)n, "\r\n%s", body ? body : "");
        assert_true((size_t)n < sizeof raw);
        exchange(sf, true, raw, (size_t)n, r);
}

static unsigned calls(void)
{
        pthread_mutex_lock(&h.lock);
        unsigned n = h.calls;
        pthread_mutex_unlock(&h.lock);
        return n;
}

/* A Kubernetes Status body with `code`, whose message holds `part`. */
static void check_status(const struct reply *r, int code, const char *reason, const char *part)
{
        if (r->status != code)
                fail_msg("status %d, want %d: %s", r->status, code, r->body);
        const char *ct = header(r, "Content-Type");
        if (!ct || strcmp(ct, "application/json") != 0)
                fail_msg("Content-Type %s: %s", ct ? ct : "(none)", r->body);
        cJSON *st = cJSON_Parse(r->body);
        if (!st)
                fail_msg("not JSON: %s", r->body);
        assert_string_equal(cJSON_GetObjectItem(st, "kind")->valuestring, "Status");
        assert_string_equal(cJSON_GetObjectItem(st, "status")->valuestring, "Failure");
        assert_int_equal(cJSON_GetObjectItem(st, "code")->valueint, code);
        assert_string_equal(cJSON_GetObjectItem(st, "reason")->valuestring, reason);
        assert_contains(cJSON_GetObjectItem(st, "message")->valuestring, part);
        cJSON_Delete(st);
}

/* The value of one series in the process's metrics. */
static double bad_requests(int code)
{
        struct buf out;
        struct metrics_state st = { 0 };
        buf_init(&out, 1u << 20);
        assert_int_equal(metrics_render(&st, &out), 0);
        char series[128];
        xsnprintf(series, "spark_identity_webhook_bad_requests_total{code=\"%d\"} ", code);
        const char *p = strstr(out.data, series);
        assert_non_null(p);
        double v = strtod(p + strlen(series), NULL);
        buf_free(&out);
        return v;
}

/* ---- probes ---- */

static void test_healthz_readyz_metrics(void **state)
{
        struct sfix *sf = *state;
        struct reply r;
        request(sf, "GET", "/healthz", NULL, NULL, &r);
        assert_int_equal(r.status, 200);
        assert_string_equal(header(&r, "Content-Type"), "application/json");
        assert_string_equal(r.body, "{\"status\":\"ok\"}\n");
        reply_free(&r);

        request(sf, "HEAD", "/healthz", NULL, NULL, &r);
        assert_int_equal(r.status, 200);
        assert_int_equal(r.len, 0);
        reply_free(&r);

        request(sf, "GET", "/readyz", NULL, NULL, &r);
        assert_int_equal(r.status, 200);
        assert_string_equal(r.body, "{\"ready\":true}");
        reply_free(&r);
        h.ready = false;
        request(sf, "GET", "/readyz", NULL, NULL, &r);
        assert_int_equal(r.status, 503);
        assert_string_equal(r.body, "{\"ready\":false}");
        reply_free(&r);

        request(sf, "GET", "/metrics", NULL, NULL, &r);
        assert_int_equal(r.status, 200);
        assert_string_equal(header(&r, "Content-Type"), "text/plain; version=0.0.4; charset=utf-8");
        assert_string_equal(r.body, "# TYPE test_up gauge\ntest_up 1\n");
        reply_free(&r);
        assert_int_equal(calls(), 0);
}

/* ---- reviews ---- */

static void test_review_reaches_the_handler(void **state)
{
        struct sfix *sf = *state;
        static const char body[] = "{\"kind\":\"AdmissionReview\",\"x\":\"\\u0000 and more\"}";
        struct reply r;
        request(sf, "POST", "/mutate", "application/json", body, &r);
        assert_int_equal(r.status, 200);
        assert_string_equal(header(&r, "Content-Type"), "application/json");
        assert_string_equal(header(&r, "X-Content-Type-Options"), "nosniff");
        char want[64];
        xsnprintf(want, "{\"path\":\"mutate\",\"len\":%zu}", strlen(body));
        assert_string_equal(r.body, want);
        reply_free(&r);
        assert_int_equal(calls(), 1);
        assert_int_equal(h.path, SERVER_PATH_MUTATE);
        assert_int_equal(h.len, strlen(body));
        assert_memory_equal(h.body, body, h.len);
        /* No ?timeout=: the default. */
        uint64_t left_ms = (h.deadline_ns - h.called_ns) / 1000000ull;
        assert_true(left_ms <= WH_REQUEST_TIMEOUT_DEFAULT_MS && left_ms + 1000 > WH_REQUEST_TIMEOUT_DEFAULT_MS);

        /* The validating path, a media type with parameters, the handler's status. */
        h.status = 500;
        request(sf, "POST", "/validate?timeout=2s", "application/json; charset=utf-8", body, &r);
        assert_int_equal(r.status, 500);
        xsnprintf(want, "{\"path\":\"validate\",\"len\":%zu}", strlen(body));
        assert_string_equal(r.body, want);
        reply_free(&r);
        assert_int_equal(h.path, SERVER_PATH_VALIDATE);
        left_ms = (h.deadline_ns - h.called_ns) / 1000000ull;
        assert_true(left_ms <= 2000 && left_ms > 1000);

        /* The policy ConfigMap's path: the server only says which it is. */
        request(sf, "POST", "/validate-policy?timeout=2s", "application/json", body, &r);
        assert_int_equal(r.status, 500);
        xsnprintf(want, "{\"path\":\"validate-policy\",\"len\":%zu}", strlen(body));
        assert_string_equal(r.body, want);
        reply_free(&r);
        assert_int_equal(h.path, SERVER_PATH_VALIDATE_POLICY);

        /* The API server's ?timeout= is capped, and must be a duration. */
        h.status = 200;
        request(sf, "POST", "/mutate?timeout=5m", "application/json", body, &r);
        assert_int_equal(r.status, 200);
        reply_free(&r);
        left_ms = (h.deadline_ns - h.called_ns) / 1000000ull;
        assert_true(left_ms <= WH_REQUEST_TIMEOUT_MAX_MS && left_ms + 1000 > WH_REQUEST_TIMEOUT_MAX_MS);
        request(sf, "POST", "/mutate?timeout=1m30s", "application/json", body, &r);
        reply_free(&r);
        left_ms = (h.deadline_ns - h.called_ns) / 1000000ull;
        assert_true(left_ms <= WH_REQUEST_TIMEOUT_MAX_MS);   /* 90 s, capped too */
        request(sf, "POST", "/mutate?timeout=500ms", "application/json", body, &r);
        reply_free(&r);
        left_ms = (h.deadline_ns - h.called_ns) / 1000000ull;
        assert_true(left_ms <= 500);
        unsigned before = calls();
        request(sf, "POST", "/mutate?timeout=soon", "application/json", body, &r);
        check_status(&r, 400, "BadRequest", "timeout=soon is not a duration");
        reply_free(&r);
        assert_int_equal(calls(), before);
}

/* An empty body still reaches the handler (which answers it). */
static void test_empty_body(void **state)
{
        struct sfix *sf = *state;
        struct reply r;
        request(sf, "POST", "/mutate", "application/json", "", &r);
        assert_int_equal(r.status, 200);
        assert_string_equal(r.body, "{\"path\":\"mutate\",\"len\":0}");
        reply_free(&r);
        assert_int_equal(calls(), 1);
}

/* ---- refusals ---- */

static void test_unknown_path_404(void **state)
{
        struct sfix *sf = *state;
        double before = bad_requests(404);
        struct reply r;
        request(sf, "GET", "/nope", NULL, NULL, &r);
        check_status(&r, 404, "NotFound", "no such path: /nope");
        assert_contains(r.body, "POST /mutate, POST /validate");
        reply_free(&r);
        request(sf, "POST", "/mutate/extra", "application/json", "{}", &r);
        check_status(&r, 404, "NotFound", "no such path: /mutate/extra");
        reply_free(&r);
        assert_int_equal(calls(), 0);
        assert_true(bad_requests(404) - before == 2);
}

static void test_wrong_method_405(void **state)
{
        struct sfix *sf = *state;
        struct reply r;
        request(sf, "GET", "/mutate", NULL, NULL, &r);
        check_status(&r, 405, "MethodNotAllowed", "/mutate takes POST, not GET");
        assert_string_equal(header(&r, "Allow"), "POST");
        assert_string_equal(header(&r, "Connection"), "close");
        reply_free(&r);
        request(sf, "PUT", "/validate", "application/json", "{}", &r);
        check_status(&r, 405, "MethodNotAllowed", "/validate takes POST, not PUT");
        reply_free(&r);
        request(sf, "POST", "/healthz", "application/json", "{}", &r);
        check_status(&r, 405, "MethodNotAllowed", "/healthz takes GET, not POST");
        assert_string_equal(header(&r, "Allow"), "GET, HEAD");
        reply_free(&r);
        assert_int_equal(calls(), 0);
}

static void test_content_type_415(void **state)
{
        struct sfix *sf = *state;
        static const char *const bad[] = { NULL,
                                           "text/plain",
                                           "application/jsonx",
                                           "application/json; charset",
                                           "application/json; =x",
                                           "application/json;charset=\"utf-8",
                                           "application/json garbage",
                                           "application/x-www-form-urlencoded" };
        for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
                struct reply r;
                request(sf, "POST", "/mutate", bad[i], "{}", &r);
                if (r.status != 415)
                        fail_msg("Content-Type %s: %d", bad[i] ? bad[i] : "(none)", r.status);
                check_status(&r, 415, "UnsupportedMediaType", "Content-Type must be application/json");
                reply_free(&r);
        }
        static const char *const good[] = { "application/json", "Application/JSON", "application/json;charset=utf-8",
                                            "application/json; charset=\"utf-8\"" };
        for (size_t i = 0; i < sizeof good / sizeof *good; i++) {
                struct reply r;
                request(sf, "POST", "/mutate", good[i], "{}", &r);
                if (r.status != 200)
                        fail_msg("Content-Type %s: %d %s", good[i], r.status, r.body);
                reply_free(&r);
        }
        assert_int_equal(calls(), sizeof good / sizeof *good);
}

static void test_body_too_large_413(void **state)
{
        struct sfix *sf = *state;
        /* Announced: refused before the body is read. */
        char raw[512];
        int n = snprintf(raw, sizeof raw,
                         "POST /mutate HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\n"
                         "Content-Length: %u\r\n\r\n{",
                         MAX_BODY + 1);
        struct reply r;
        exchange(sf, true, raw, (size_t)n, &r);
        char want[128];
        xsnprintf(want, "the body is %u bytes; the limit is %u", MAX_BODY + 1, MAX_BODY);
        check_status(&r, 413, "RequestEntityTooLarge", want);
        reply_free(&r);

        /* Chunked, no length announced: refused when it passes the limit. */
        struct conn c;
        assert_int_equal(conn_open(&c, sf->port, sf->ca), 0);
        const char *headers = "POST /mutate HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\n"
                              "Transfer-Encoding: chunked\r\n\r\n";
        conn_write(&c, headers, strlen(headers));
        char *chunk = malloc(4096 + 16);
        assert_non_null(chunk);
        int hl = snprintf(chunk, 16, "1000\r\n");
        memset(chunk + hl, ' ', 4096);
        memcpy(chunk + hl + 4096, "\r\n", 2);
        for (unsigned sent = 0; sent <= MAX_BODY; sent += 4096)
                conn_write(&c, chunk, (size_t)hl + 4096 + 2);
        conn_write(&c, "0\r\n\r\n", 5);
        free(chunk);
        conn_reply(&c, false, &r);
        conn_close(&c);
        xsnprintf(want, "the body is larger than the limit of %u bytes", MAX_BODY);
        check_status(&r, 413, "RequestEntityTooLarge", want);
        reply_free(&r);

        /* Exactly the limit is fine. */
        char *body = malloc(MAX_BODY + 512);
        assert_non_null(body);
        n = snprintf(body, 512,
                     "POST /mutate HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\n"
                     "Content-Length: %u\r\n\r\n",
                     MAX_BODY);
        memset(body + n, ' ', MAX_BODY);
        exchange(sf, true, body, (size_t)n + MAX_BODY, &r);
        free(body);
        assert_int_equal(r.status, 200);
        reply_free(&r);
        assert_int_equal(calls(), 1);
        assert_int_equal(h.len, MAX_BODY);
}

/* A body framed two ways, or with two lengths: 400, never read as one. */
static void test_framing_400(void **state)
{
        struct sfix *sf = *state;
        static const char *const raws[] = {
                "POST /mutate HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\n"
                "Content-Length: 2\r\nTransfer-Encoding: chunked\r\n\r\n2\r\n{}\r\n0\r\n\r\n",
                "POST /mutate HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\n"
                "Content-Length: 2\r\nContent-Length: 3\r\n\r\n{} ",
                "POST /mutate HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\n"
                "Content-Length: 2\r\nX-Bad: a\rb\r\n\r\n{}",
                "POST /mutate HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\n"
                "Content-Length: 2\r\nX-Folded: a\r\n b\r\n\r\n{}",
        };
        for (size_t i = 0; i < sizeof raws / sizeof *raws; i++) {
                struct reply r;
                exchange(sf, true, raws[i], strlen(raws[i]), &r);
                if (r.status != 400)
                        fail_msg("case %zu: %d %s", i, r.status, r.body);
                reply_free(&r);
        }
        /* Two lengths pass libmicrohttpd and reach our check, which says why
         * (it refuses both framings at once itself, before us). */
        struct reply r;
        exchange(sf, true, raws[1], strlen(raws[1]), &r);
        check_status(&r, 400, "BadRequest", "two different Content-Length headers");
        reply_free(&r);
        assert_int_equal(calls(), 0);
}

/* Bodies in flight take from the request memory budget: past it, 503. */
static void test_request_memory_503(void **state)
{
        struct sfix *sf = *state;
        budget_init(&sf->budget, 2048);
        struct server_options o = options(sf);
        o.budget = &sf->budget;
        start_with(sf, &o);
        char *raw = malloc(MAX_BODY + 512);
        assert_non_null(raw);
        int n = snprintf(raw, 512,
                         "POST /mutate HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\n"
                         "Content-Length: %u\r\n\r\n",
                         MAX_BODY);
        memset(raw + n, ' ', MAX_BODY);
        struct reply r;
        exchange(sf, true, raw, (size_t)n + MAX_BODY, &r);
        free(raw);
        check_status(&r, 503, "ServiceUnavailable", "--request-memory");
        reply_free(&r);
        assert_int_equal(calls(), 0);
        /* All given back. */
        for (unsigned waited = 0; atomic_load(&sf->budget.used) != 0 && waited < IO_TIMEOUT_MS; waited += 10)
                nanosleep(&(struct timespec){ .tv_nsec = 10000000L }, NULL);
        assert_int_equal(atomic_load(&sf->budget.used), 0);
        assert_true(atomic_load(&sf->budget.refused) >= 1);

        /* A small body still fits. */
        request(sf, "POST", "/mutate", "application/json", "{}", &r);
        assert_int_equal(r.status, 200);
        reply_free(&r);
}

/* ---- keep-alive, draining ---- */

static void test_keep_alive_then_close_connections(void **state)
{
        struct sfix *sf = *state;
        const char *req = "GET /healthz HTTP/1.1\r\nHost: localhost\r\n\r\n";
        struct conn c;
        struct reply r;
        assert_int_equal(conn_open(&c, sf->port, sf->ca), 0);
        conn_write(&c, req, strlen(req));
        conn_reply(&c, false, &r);
        assert_int_equal(r.status, 200);
        assert_null(header(&r, "Connection"));
        reply_free(&r);
        /* The same connection serves a review next. */
        const char *post = "POST /mutate HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\n"
                           "Content-Length: 2\r\n\r\n{}";
        conn_write(&c, post, strlen(post));
        conn_reply(&c, false, &r);
        assert_int_equal(r.status, 200);
        assert_null(header(&r, "Connection"));
        reply_free(&r);

        server_close_connections(sf->s);
        conn_write(&c, post, strlen(post));
        conn_reply(&c, false, &r);
        assert_int_equal(r.status, 200);
        assert_string_equal(header(&r, "Connection"), "close");
        reply_free(&r);
        char b;
        assert_int_equal(conn_read(&c, &b, 1), 0);   /* and it is closed */
        conn_close(&c);
}

static void test_drain_refuses_new_connections(void **state)
{
        struct sfix *sf = *state;
        struct reply r;
        request(sf, "GET", "/healthz", NULL, NULL, &r);
        assert_int_equal(r.status, 200);
        reply_free(&r);
        assert_int_equal(server_drain(sf->s, 2000), 0);
        struct conn c;
        assert_int_equal(conn_open(&c, sf->port, NULL), -ECONNREFUSED);
}

/* ---- the plain port ---- */

static void test_plain_port(void **state)
{
        struct sfix *sf = *state;
        char err[256] = "";
        assert_int_equal(server_start_plain("127.0.0.1:0", &handler, &sf->s, err, sizeof err), 0);
        sf->port = server_port(sf->s);
        assert_true(sf->port > 0);
        struct reply r;
        const char *get = "GET /healthz HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n";
        exchange(sf, false, get, strlen(get), &r);
        assert_int_equal(r.status, 200);
        assert_string_equal(r.body, "{\"status\":\"ok\"}\n");
        reply_free(&r);
        get = "GET /metrics HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n";
        exchange(sf, false, get, strlen(get), &r);
        assert_int_equal(r.status, 200);
        assert_string_equal(r.body, "# TYPE test_up gauge\ntest_up 1\n");
        reply_free(&r);
        h.ready = false;
        get = "GET /readyz HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n";
        exchange(sf, false, get, strlen(get), &r);
        assert_int_equal(r.status, 503);
        reply_free(&r);
        /* No reviews on this port. */
        const char *post = "POST /mutate HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\n"
                           "Content-Length: 2\r\n\r\n{}";
        exchange(sf, false, post, strlen(post), &r);
        check_status(&r, 404, "NotFound", "this port serves GET /metrics, /healthz and /readyz");
        reply_free(&r);
        assert_int_equal(calls(), 0);

        /* A port taken: an error with the address. */
        char listen[32];
        xsnprintf(listen, "127.0.0.1:%u", sf->port);
        struct server *other = NULL;
        assert_true(server_start_plain(listen, &handler, &other, err, sizeof err) < 0);
        assert_null(other);
        assert_contains(err, listen);
}

/* ---- configuration ---- */

static void test_check_listen(void **state)
{
        static const char *const good[] = { "0.0.0.0:8443", "127.0.0.1:0", ":8443", "[::]:8443", "[::1]:65535" };
        static const char *const bad[] = { "8443",        "localhost:8443", "1.2.3.4:65536", "1.2.3.4:", "1.2.3.4:-1",
                                           "1.2.3.4:80x", "[::1:80",        "::1:80",        "[zz]:80",  "" };
        char err[256];
        for (size_t i = 0; i < sizeof good / sizeof *good; i++)
                if (server_check_listen(good[i], err, sizeof err) != 0)
                        fail_msg("\"%s\" refused: %s", good[i], err);
        for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
                err[0] = '\0';
                if (server_check_listen(bad[i], err, sizeof err) != -EINVAL)
                        fail_msg("\"%s\" taken", bad[i]);
                assert_contains(err, "is not ADDR:PORT");
        }
}

static void test_start_refuses_a_bad_pair(void **state)
{
        struct sfix *sf = *state;
        struct server_options o = options(sf);
        char err[512] = "";
        o.key_pem = "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n";
        assert_true(server_start(&o, &handler, &sf->s, err, sizeof err) < 0);
        assert_null(sf->s);
        assert_true(err[0] != '\0');
        o = options(sf);
        o.listen = "nowhere";
        err[0] = '\0';
        assert_int_equal(server_start(&o, &handler, &sf->s, err, sizeof err), -EINVAL);
        assert_null(sf->s);
        assert_contains(err, "is not ADDR:PORT");
}

int main(void)
{
#define T(fn) cmocka_unit_test_setup_teardown(fn, sf_setup_started, sf_teardown)
#define T0(fn) cmocka_unit_test_setup_teardown(fn, sf_setup, sf_teardown)
        const struct CMUnitTest tests[] = {
                T(test_healthz_readyz_metrics),
                T(test_review_reaches_the_handler),
                T(test_empty_body),
                T(test_unknown_path_404),
                T(test_wrong_method_405),
                T(test_content_type_415),
                T(test_body_too_large_413),
                T(test_framing_400),
                T0(test_request_memory_503),
                T(test_keep_alive_then_close_connections),
                T(test_drain_refuses_new_connections),
                T0(test_plain_port),
                cmocka_unit_test(test_check_listen),
                T0(test_start_refuses_a_bad_pair),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
