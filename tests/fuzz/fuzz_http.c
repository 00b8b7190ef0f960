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


int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static struct server *server;
static unsigned port;

static void admit_never(void *ctx, enum server_path path, const char *body, size_t len, uint64_t deadline_ns,
                        int *ret_status, struct buf *out)
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

/* Plain TCP; the connection is the socket. */
static void *plain_open(void)
{
        return (void *)(intptr_t)tcp_connect(port);
}

static void plain_send_all(void *conn, const void *p, size_t n)
{
        tcp_send_all((int)(intptr_t)conn, p, n);
}

static void plain_shut_write(void *conn)
{
        shutdown((int)(intptr_t)conn, SHUT_WR);
}

static ssize_t plain_recv_some(void *conn, char *buf, size_t cap, int timeout_ms)
{
        return tcp_recv_some((int)(intptr_t)conn, buf, cap, timeout_ms);
}

static void plain_close(void *conn, bool peer_closed)
{
        if (peer_closed)
                close((int)(intptr_t)conn);
        else
                tcp_abort((int)(intptr_t)conn);
}

static const struct fuzz_transport plain = {
        .open = plain_open,
        .send_all = plain_send_all,
        .shut_write = plain_shut_write,
        .recv_some = plain_recv_some,
        .close = plain_close,
};

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
        static char answer[1 << 16];
        size_t n, len;
        unsigned char *req = http_fix_length(data, size, &n);
        bool closed = fuzz_exchange(&plain, req, n, true, answer, sizeof answer, &len, FUZZ_SILENCE_MS,
                                    FUZZ_ANSWER_TIMEOUT_MS);
        free(req);
        if (len > 0) {
                int code = http_status(answer, len);
                if (code < 100 || code > 599)
                        fuzz_fail("an answer that is not HTTP/1.x: %.200s", answer);
        }
        /* Not closed: the input left the server waiting for more (a body
         * that swallowed the last request, say); it must still serve others. */
        fuzz_check_health(&plain, answer, sizeof answer,
                          closed ? "after the input" : "after a connection left waiting");
        return 0;
}
