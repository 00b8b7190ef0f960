/* fuzz_http: the input, as raw bytes, is one HTTP connection's worth of
 * requests to the real server of server.c over plain TCP: server_start_plain()
 * (the --metrics-listen server: GET /metrics, /healthz, /readyz; /mutate and
 * everything else answered 404), started once on 127.0.0.1, port 0.
 *
 * What this reaches: libmicrohttpd's request-line and header parsing,
 * pipelining, chunked and Content-Length bodies, and our on_request(),
 * screen() (routing, methods, the 404 and 405 answers), send_error(),
 * send_health(), send_metrics() with the real metrics_render(), and
 * on_completed(). What it does not: TLS, and POST /mutate's own screening
 * (Content-Type, Content-Length against --max-body, ?timeout=) and body
 * accumulation, which the plain server never reaches: fuzz_https does those.
 * libmicrohttpd itself is Debian's build, not instrumented: a memory error
 * inside it is seen only when it crashes or trips an interceptor, and its
 * branches give the fuzzer no coverage feedback; ours do.
 *
 * A request head with "Content-Length: *" gets the real length of what
 * follows "\r\n\r\n" (see http_fix_length()), so mutated bodies stay whole.
 *
 * After the input the harness sends http_last_request (GET /healthz,
 * Connection: close) on the same connection and half-closes (see
 * fuzz_util.h for why), then reads until the server closes; after 250 ms of
 * silence (the server waits for more) or 2 s it resets the connection.
 *
 * Invariants: the server never hands a body to admit(); what it answers
 * starts with an HTTP/1.x status line; afterwards (closed or still idling)
 * it answers GET /healthz on a new connection with 200 within 10 s. */
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "buf.h"
#include "log.h"
#include "metrics.h"
#include "server.h"

#include "fuzz_util.h"

#define ANSWER_TIMEOUT_MS 2000   /* the server keeps sending: give up */
#define SILENCE_MS 250           /* the server waits for more: give up */
#define HEALTH_TIMEOUT_MS 10000

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static struct server *server;
static unsigned port;

static void admit_never(void *ctx, const char *body, size_t len, int *ret_status, struct buf *out)
{
        fuzz_fail("the plain server handed a %zu-byte body to admit()", len);
}

static bool ready(void *ctx, struct buf *out)
{
        buf_puts(out, "{\"status\":\"ready\"}\n");
        return true;
}

static void metrics(void *ctx, struct buf *out)
{
        struct metrics_state st = {
                .policy_sha256 = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef",
                .cert_not_after = time(NULL) + 86400,
                .namespaces_watched = true,
                .namespaces = 3,
        };
        metrics_render(&st, out);
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
        static const struct server_handler h = { .admit = admit_never, .ready = ready, .metrics = metrics };
        char err[512];
        signal(SIGPIPE, SIG_IGN);
        log_set_level(LOG_ERROR);   /* every refused request logs a warning */
        if (server_start_plain("127.0.0.1:0", &h, &server, err, sizeof err) < 0) {
                fprintf(stderr, "fuzz_http: %s\n", err);
                exit(2);
        }
        port = server_port(server);
        if (!port) {
                fprintf(stderr, "fuzz_http: no port\n");
                exit(2);
        }
        return 0;
}

/* Sends `req` (and then http_last_request when `last`), half-closes, and
 * reads the answer until the server closes. False when it has not closed
 * after `timeout_ms`, or stays silent for `silence_ms`: then the connection
 * is reset. */
static bool exchange(const void *req, size_t n, bool last, char *out, size_t cap, size_t *ret_len,
                     int silence_ms, int timeout_ms)
{
        int fd = tcp_connect(port);
        size_t len = 0;
        tcp_send_all(fd, req, n);
        if (last)
                tcp_send_all(fd, http_last_request, sizeof http_last_request - 1);
        shutdown(fd, SHUT_WR);
        bool closed = tcp_read_until_close(fd, out, cap - 1, &len, silence_ms, timeout_ms) == 0;
        if (closed)
                close(fd);
        else
                tcp_abort(fd);
        out[len] = '\0';
        *ret_len = len;
        return closed;
}

static void check_health(char *answer, size_t cap, const char *after)
{
        static const char health[] = "GET /healthz HTTP/1.1\r\nHost: fuzz\r\nConnection: close\r\n\r\n";
        size_t len;
        if (!exchange(health, sizeof health - 1, false, answer, cap, &len, HEALTH_TIMEOUT_MS, HEALTH_TIMEOUT_MS))
                fuzz_fail("GET /healthz %s: no answer within %d ms", after, HEALTH_TIMEOUT_MS);
        if (http_status(answer, len) != 200 || !strstr(answer, "{\"status\":\"ok\"}"))
                fuzz_fail("GET /healthz %s: %.300s", after, answer);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
        static char answer[1 << 16];
        size_t n, len;
        unsigned char *req = http_fix_length(data, size, &n);
        bool closed = exchange(req, n, true, answer, sizeof answer, &len, SILENCE_MS, ANSWER_TIMEOUT_MS);
        free(req);
        if (len > 0) {
                int code = http_status(answer, len);
                if (code < 100 || code > 599)
                        fuzz_fail("an answer that is not HTTP/1.x: %.200s", answer);
        }
        /* Not closed: the input left the server waiting for more (a body
         * that swallowed the last request, say); it must still serve others. */
        check_health(answer, sizeof answer, closed ? "after the input" : "after a connection left waiting");
        return 0;
}
