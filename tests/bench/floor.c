/* The floor probe: the cheapest admission webhook these libraries allow, to
 * measure the server against in the same run (issue 6, "Benchmark").
 *
 * libmicrohttpd over GnuTLS, exactly as webhook/io/server.c starts it (internal
 * polling thread, epoll, a thread pool of one thread per core, the same TLS
 * priorities, the same serving pair), and nothing else: POST /mutate reads
 * the whole body, parses it with cJSON and answers
 *   {"apiVersion":<the request's>,"kind":"AdmissionReview",
 *    "response":{"uid":<the request's>,"allowed":true}}
 * --no-parse skips cJSON (the body is still read) and answers a fixed uid.
 * GET /readyz and /healthz answer 200, so start-up is timed the same way.
 *
 * Usage: floor --cert FILE --key FILE [--listen PORT] [--threads N] [--no-parse]
 *        floor --print-priorities
 * Stops on SIGINT or SIGTERM. Listens on 127.0.0.1 only. */
#include <arpa/inet.h>
#include <errno.h>
#include <getopt.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cjson/cJSON.h>
#include <microhttpd.h>

#include "bench_util.h"

/* Copied from webhook/io/server.c (TLS_PRIORITIES with TLS 1.2 and 1.3);
 * tests/bench/run.sh checks that the two still agree. */
static const char tls_priorities[] = "SECURE:-VERS-ALL:+VERS-TLS1.3:+VERS-TLS1.2:-CIPHER-ALL:+AES-256-GCM:+AES-128-GCM:"
                                     "+CHACHA20-POLY1305:-MAC-ALL:+AEAD:-KX-ALL:+ECDHE-ECDSA:+ECDHE-RSA:-SIGN-RSA-SHA1:"
                                     "-SIGN-ECDSA-SHA1:%SERVER_PRECEDENCE";

/* The server's --max-body default. */
#define MAX_BODY (8u * 1024u * 1024u)
/* Room for the answer besides the two strings copied from the request. */
#define ANSWER_SLACK 128u
#define FIELD_MAX 256u

static bool no_parse;

struct request {
        char *body;
        size_t len, cap;
        bool too_big;
};

/* Appends `s` as a JSON string; false when it does not fit. */
static bool put_json_str(char **p, char *end, const char *s)
{
        static const char hex[] = "0123456789abcdef";
        if (*p >= end)
                return false;
        *(*p)++ = '"';
        for (; *s; s++) {
                unsigned char ch = (unsigned char)*s;
                if (end - *p < 7)
                        return false;
                if (ch == '"' || ch == '\\') {
                        *(*p)++ = '\\';
                        *(*p)++ = (char)ch;
                } else if (ch < 0x20) {
                        memcpy(*p, "\\u00", 4);
                        (*p)[4] = hex[ch >> 4];
                        (*p)[5] = hex[ch & 15];
                        *p += 6;
                } else {
                        *(*p)++ = (char)ch;
                }
        }
        if (*p >= end)
                return false;
        *(*p)++ = '"';
        return true;
}

static enum MHD_Result answer(struct MHD_Connection *c, unsigned status, char *body, size_t len)
{
        struct MHD_Response *resp = MHD_create_response_from_buffer_with_free_callback(len, body, free);
        if (!resp) {
                free(body);
                return MHD_NO;
        }
        MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, "application/json");
        enum MHD_Result r = MHD_queue_response(c, status, resp);
        MHD_destroy_response(resp);
        return r;
}

static enum MHD_Result answer_text(struct MHD_Connection *c, unsigned status, const char *text)
{
        char *body = strdup(text);
        return body ? answer(c, status, body, strlen(body)) : MHD_NO;
}

static enum MHD_Result admit(struct MHD_Connection *c, struct request *rq)
{
        char api_version[FIELD_MAX] = "admission.k8s.io/v1", uid[FIELD_MAX] = "floor-no-parse";
        if (!no_parse) {
                cJSON *root = cJSON_ParseWithLength(rq->body ? rq->body : "", rq->len);
                const cJSON *av = cJSON_GetObjectItemCaseSensitive(root, "apiVersion");
                const cJSON *req = cJSON_GetObjectItemCaseSensitive(root, "request");
                const cJSON *id = cJSON_GetObjectItemCaseSensitive(req, "uid");
                bool ok = cJSON_IsString(av) && cJSON_IsString(id) && strlen(av->valuestring) < FIELD_MAX &&
                          strlen(id->valuestring) < FIELD_MAX;
                if (ok) {
                        strcpy(api_version, av->valuestring);
                        strcpy(uid, id->valuestring);
                }
                cJSON_Delete(root);
                if (!ok)
                        return answer_text(c, MHD_HTTP_BAD_REQUEST, "{\"error\":\"not an AdmissionReview\"}\n");
        }
        size_t cap = 6 * (strlen(api_version) + strlen(uid)) + ANSWER_SLACK;
        char *out = malloc(cap), *p = out, *end = out + cap;
        if (!out)
                return MHD_NO;
        p += snprintf(p, (size_t)(end - p), "{\"apiVersion\":");
        put_json_str(&p, end, api_version);
        p += snprintf(p, (size_t)(end - p), ",\"kind\":\"AdmissionReview\",\"response\":{\"uid\":");
        put_json_str(&p, end, uid);
        p += snprintf(p, (size_t)(end - p), ",\"allowed\":true}}\n");
        return answer(c, MHD_HTTP_OK, out, (size_t)(p - out));
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *c, const char *url, const char *method,
                                  const char *version, const char *upload_data, size_t *upload_size, void **con_cls)
{
        struct request *rq = *con_cls;
        if (!rq) {
                rq = calloc(1, sizeof *rq);
                if (!rq)
                        return MHD_NO;
                *con_cls = rq;
                const char *cl = MHD_lookup_connection_value(c, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_LENGTH);
                unsigned long long n = cl ? strtoull(cl, NULL, 10) : 0;
                if (n > MAX_BODY)
                        rq->too_big = true;
                else if (n && (rq->body = malloc(n + 1)))
                        rq->cap = n;   /* one allocation for the whole body, as the server does */
                return MHD_YES;
        }
        if (*upload_size) {
                size_t n = *upload_size;
                *upload_size = 0;
                if (rq->too_big || rq->len + n > MAX_BODY) {
                        rq->too_big = true;
                        return MHD_YES;
                }
                if (rq->len + n > rq->cap) {
                        size_t cap = rq->cap ? rq->cap : 4096;
                        while (cap < rq->len + n)
                                cap *= 2;
                        char *grown = realloc(rq->body, cap + 1);
                        if (!grown)
                                return MHD_NO;
                        rq->body = grown;
                        rq->cap = cap;
                }
                memcpy(rq->body + rq->len, upload_data, n);
                rq->len += n;
                return MHD_YES;
        }
        if (strcmp(url, "/readyz") == 0 || strcmp(url, "/healthz") == 0)
                return answer_text(c, MHD_HTTP_OK, "{\"status\":\"ready\"}\n");
        if (strcmp(url, "/mutate") != 0 || strcmp(method, "POST") != 0)
                return answer_text(c, MHD_HTTP_NOT_FOUND, "{\"error\":\"POST /mutate\"}\n");
        if (rq->too_big)
                return answer_text(c, 413u, "{\"error\":\"too large\"}\n");
        if (rq->body)
                rq->body[rq->len] = '\0';
        return admit(c, rq);
}

static void on_completed(void *cls, struct MHD_Connection *c, void **con_cls, enum MHD_RequestTerminationCode toe)
{
        struct request *rq = *con_cls;
        if (!rq)
                return;
        free(rq->body);
        free(rq);
        *con_cls = NULL;
}

static void usage(void)
{
        fprintf(stderr, "usage: floor --cert FILE --key FILE [--listen PORT] [--threads N] [--no-parse]\n"
                        "       floor --print-priorities\n");
}

int main(int argc, char **argv)
{
        static const struct option longopts[] = {
                { "cert", required_argument, NULL, 'c' },
                { "key", required_argument, NULL, 'k' },
                { "listen", required_argument, NULL, 'l' },
                { "threads", required_argument, NULL, 't' },
                { "no-parse", no_argument, NULL, 'n' },
                { "print-priorities", no_argument, NULL, 'p' },
                { 0 },
        };
        const char *cert_path = NULL, *key_path = NULL;
        unsigned port = 8444;
        long threads = 0;
        int o;
        while ((o = getopt_long(argc, argv, "", longopts, NULL)) != -1) {
                switch (o) {
                case 'c': cert_path = optarg; break;
                case 'k': key_path = optarg; break;
                case 'l': port = (unsigned)strtoul(optarg, NULL, 10); break;
                case 't': threads = strtol(optarg, NULL, 10); break;
                case 'n': no_parse = true; break;
                case 'p': puts(tls_priorities); return 0;
                default: usage(); return 2;
                }
        }
        if (!cert_path || !key_path || port == 0 || port > 65535) {
                usage();
                return 2;
        }
        if (threads <= 0)
                threads = sysconf(_SC_NPROCESSORS_ONLN);
        if (threads <= 0)
                threads = 1;
        char *cert = bench_read_file(cert_path, NULL), *key = bench_read_file(key_path, NULL);
        if (!cert || !key) {
                fprintf(stderr, "floor: cannot read %s or %s: %s\n", cert_path, key_path, strerror(errno));
                return 2;
        }

        sigset_t mask;
        sigemptyset(&mask);
        sigaddset(&mask, SIGINT);
        sigaddset(&mask, SIGTERM);
        signal(SIGPIPE, SIG_IGN);
        pthread_sigmask(SIG_BLOCK, &mask, NULL);   /* the pool's threads inherit it */

        struct sockaddr_in addr = { .sin_family = AF_INET, .sin_port = htons((uint16_t)port) };
        addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        struct MHD_Daemon *d = MHD_start_daemon(
                MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_EPOLL | MHD_USE_TLS | MHD_USE_ERROR_LOG, 0, NULL, NULL,
                on_request, NULL, MHD_OPTION_SOCK_ADDR, (struct sockaddr *)&addr, MHD_OPTION_HTTPS_MEM_CERT, cert,
                MHD_OPTION_HTTPS_MEM_KEY, key, MHD_OPTION_HTTPS_PRIORITIES, tls_priorities, MHD_OPTION_THREAD_POOL_SIZE,
                (unsigned)threads, MHD_OPTION_CONNECTION_TIMEOUT, 30u, MHD_OPTION_LISTEN_BACKLOG_SIZE, 1024u,
                MHD_OPTION_NOTIFY_COMPLETED, on_completed, NULL, MHD_OPTION_END);
        if (!d) {
                fprintf(stderr, "floor: cannot serve HTTPS on 127.0.0.1:%u\n", port);
                return 2;
        }
        fprintf(stderr, "floor: serving https://127.0.0.1:%u with %ld threads%s\n", port, threads,
                no_parse ? ", no parse" : "");
        int sig;
        sigwait(&mask, &sig);
        MHD_stop_daemon(d);
        free(cert);
        free(key);
        return 0;
}
