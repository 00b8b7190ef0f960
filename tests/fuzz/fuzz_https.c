/* fuzz_https: the input, as raw bytes, is one connection's worth of HTTP
 * requests to the real webhook server over TLS: server_start() (GnuTLS,
 * thread pool, epoll; the serve command's routes) with a certificate that
 * certs_generate() makes at start, on 127.0.0.1, port 0, with a 16 KiB body
 * limit so that the 413 paths are within reach, and an admit() like the
 * serve command's: the cJSON arena, admission_handle() with
 * tests/fixtures/policy.yaml.
 *
 * What this reaches beyond fuzz_http: POST /mutate's screening (method,
 * Content-Type, Content-Length against the limit, ?timeout= durations), body
 * accumulation and the 413 refusal mid-body, the hand-off to admit(), and
 * the answer. Every input pays for a TLS handshake (GnuTLS, not
 * instrumented), so this target runs some hundreds of inputs a second where
 * fuzz_http runs thousands: the body's content is fuzzed far faster by
 * fuzz_review.
 *
 * A request head with "Content-Length: *" gets the real length of what
 * follows "\r\n\r\n", so mutated bodies stay whole.
 *
 * After the input the harness sends http_last_request (GET /healthz,
 * Connection: close) on the same connection and closes its side
 * (close_notify), then reads until the server closes; after 250 ms of
 * silence (the server waits for more) or 2 s it resets the connection.
 *
 * Invariants: admit() gets at most the body limit and answers 200, 400 or
 * 500 with strict JSON; what the server answers starts with an HTTP/1.x
 * status line; every 32 inputs, after a 5xx, after no answer, and whenever
 * the input's connection is left waiting, GET /healthz on a new connection
 * gets 200 within 10 s. */
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <gnutls/gnutls.h>

#include "admission.h"
#include "arena.h"
#include "buf.h"
#include "certs.h"
#include "log.h"
#include "metrics.h"
#include "policy.h"
#include "server.h"
#include "webhook_limits.h"

#include "fuzz_util.h"

#define FUZZ_MAX_BODY (16u * 1024u)

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static struct server *server;
static unsigned port;
static struct policy *policy;
static gnutls_certificate_credentials_t client_cred;
static unsigned long inputs;

static void admit(void *ctx, enum server_path path, const char *body, size_t len, uint64_t deadline_ns, int *ret_status,
                  struct buf *out)
{
        struct admission a;
        arena_begin();
        admission_init(&a, out->max);
        a.path = path == SERVER_PATH_VALIDATE ? ADMISSION_VALIDATE : ADMISSION_MUTATE;
        admission_handle(policy, NULL, body, len, &a);
        const char *why;
        size_t at;
        if (a.status != 200 && a.status != 400 && a.status != 500)
                fuzz_fail("admit answered %d", a.status);
        if (!json_strict(a.body.data ? a.body.data : "", a.body.len, &why, &at))
                fuzz_fail("admit answered %d with no JSON: %s at %zu", a.status, why, at);
        if (len > FUZZ_MAX_BODY)
                fuzz_fail("admit() got %zu bytes; the limit is %u", len, FUZZ_MAX_BODY);
        *ret_status = a.status;
        buf_free(out);
        *out = a.body;
        buf_init(&a.body, 0);
        admission_free(&a);
        arena_end();
}

static bool ready(void *ctx, struct buf *out)
{
        buf_puts(out, "{\"status\":\"ready\"}\n");
        return true;
}

static void metrics(void *ctx, struct buf *out)
{
        struct metrics_state st = { .policy_sha256 = policy_sha256(policy), .cert_not_after = time(NULL) + 86400 };
        metrics_render(&st, out);
}

static char *read_all(const char *path)
{
        FILE *f = fopen(path, "rb");
        struct buf b;
        char chunk[4096];
        size_t n;
        buf_init(&b, 1u << 20);
        if (!f) {
                fprintf(stderr, "fuzz_https: cannot open %s\n", path);
                exit(2);
        }
        while ((n = fread(chunk, 1, sizeof chunk, f)) > 0)
                buf_append(&b, chunk, n);
        fclose(f);
        return buf_steal(&b);
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
        char err[512], dir[] = "/tmp/fuzz-https-XXXXXX", path[600];
        size_t len;
        signal(SIGPIPE, SIG_IGN);
        log_set_level(LOG_ERROR);
        arena_install();

        char *text = fuzz_read_source_file("tests/fixtures/policy.yaml", &len);
        struct buf errors;
        buf_init(&errors, 1u << 16);
        if (policy_load(text, len, &policy, &errors) < 0) {
                fprintf(stderr, "fuzz_https: the fixture policy does not load:\n%s", errors.data);
                exit(2);
        }
        buf_free(&errors);
        free(text);

        if (!mkdtemp(dir)) {
                perror("fuzz_https: mkdtemp");
                exit(2);
        }
        static const char *const ips[] = { "127.0.0.1" };
        struct certs_request req = {
                .service = "fuzz", .namespace_ = "fuzz", .ips = ips, .n_ips = 1, .days = 2, .out_dir = dir
        };
        if (certs_generate(&req, err, sizeof err) < 0) {
                fprintf(stderr, "fuzz_https: certs_generate: %s\n", err);
                exit(2);
        }
        snprintf(path, sizeof path, "%s/tls.crt", dir);
        char *cert = read_all(path);
        snprintf(path, sizeof path, "%s/tls.key", dir);
        char *key = read_all(path);
        static const char *const names[] = { "ca.crt", "ca.key", "tls.crt", "tls.key" };
        for (size_t i = 0; i < 4; i++) {
                snprintf(path, sizeof path, "%s/%s", dir, names[i]);
                unlink(path);
        }
        rmdir(dir);

        struct server_options opt = {
                .listen = "127.0.0.1:0",
                .cert_pem = cert,
                .key_pem = key,
                .max_body = FUZZ_MAX_BODY,
                .max_connections = 64,
                .max_connections_per_ip = 64,
                .connection_memory = WH_CONNECTION_MEMORY_BYTES,
                .idle_timeout_s = 15,
                .threads = 1,
        };
        static const struct server_handler h = { .admit = admit, .ready = ready, .metrics = metrics };
        if (server_start(&opt, &h, &server, err, sizeof err) < 0) {
                fprintf(stderr, "fuzz_https: server_start: %s\n", err);
                exit(2);
        }
        free(cert);
        free(key);
        port = server_port(server);
        if (gnutls_certificate_allocate_credentials(&client_cred) < 0) {
                fprintf(stderr, "fuzz_https: gnutls credentials\n");
                exit(2);
        }
        return 0;
}

/* TLS over a socket. The certificate is not verified: this is our own
 * server on loopback. */
struct tls_conn {
        int fd;
        gnutls_session_t s;
};

static void *tls_open(void)
{
        struct tls_conn *c = malloc(sizeof *c);
        if (!c)
                fuzz_fail("out of memory");
        c->fd = tcp_connect(port);
        if (gnutls_init(&c->s, GNUTLS_CLIENT) < 0)
                fuzz_fail("gnutls_init");
        gnutls_set_default_priority(c->s);
        gnutls_credentials_set(c->s, GNUTLS_CRD_CERTIFICATE, client_cred);
        gnutls_transport_set_int(c->s, c->fd);
        gnutls_handshake_set_timeout(c->s, FUZZ_HEALTH_TIMEOUT_MS);
        int r;
        do
                r = gnutls_handshake(c->s);
        while (r < 0 && !gnutls_error_is_fatal(r));
        if (r < 0)
                fuzz_fail("TLS handshake with the server: %s", gnutls_strerror(r));
        return c;
}

static void tls_send_all(void *conn, const void *p, size_t n)
{
        struct tls_conn *c = conn;
        const char *s = p;
        while (n) {
                ssize_t w = gnutls_record_send(c->s, s, n);
                if (w == GNUTLS_E_AGAIN || w == GNUTLS_E_INTERRUPTED)
                        continue;
                if (w <= 0)
                        return;   /* the server refused and closed */
                s += w;
                n -= (size_t)w;
        }
}

static void tls_shut_write(void *conn)
{
        struct tls_conn *c = conn;
        gnutls_bye(c->s, GNUTLS_SHUT_WR);
}

static ssize_t tls_recv_some(void *conn, char *buf, size_t cap, int timeout_ms)
{
        struct tls_conn *c = conn;
        gnutls_record_set_timeout(c->s, (unsigned)timeout_ms);
        ssize_t got = gnutls_record_recv(c->s, buf, cap);
        if (got == GNUTLS_E_AGAIN || got == GNUTLS_E_INTERRUPTED)
                return -EINTR;
        if (got == GNUTLS_E_TIMEDOUT)
                return -ETIMEDOUT;
        return got < 0 ? 0 : got;   /* close_notify, or the connection closed or reset */
}

static void tls_close(void *conn, bool peer_closed)
{
        struct tls_conn *c = conn;
        gnutls_deinit(c->s);
        if (peer_closed)
                close(c->fd);
        else
                tcp_abort(c->fd);
        free(c);
}

static const struct fuzz_transport tls = {
        .open = tls_open,
        .send_all = tls_send_all,
        .shut_write = tls_shut_write,
        .recv_some = tls_recv_some,
        .close = tls_close,
};

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
        static char answer[1 << 17];
        size_t n, len;
        unsigned char *req = http_fix_length(data, size, &n);
        bool closed =
                fuzz_exchange(&tls, req, n, true, answer, sizeof answer, &len, FUZZ_SILENCE_MS, FUZZ_ANSWER_TIMEOUT_MS);
        free(req);
        int code = len ? http_status(answer, len) : 0;
        if (len && (code < 100 || code > 599))
                fuzz_fail("an answer that is not HTTP/1.x: %.200s", answer);
        if (!closed)
                fuzz_check_health(&tls, answer, sizeof answer, "after a connection left waiting");
        else if (++inputs % 32 == 0 || code >= 500 || len == 0)
                fuzz_check_health(&tls, answer, sizeof answer, "after the input");
        return 0;
}
