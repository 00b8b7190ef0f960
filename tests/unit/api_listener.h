/* A small HTTPS listener on 127.0.0.1 for the unit tests of the Kubernetes
 * client (kube.c) and of the namespace cache (nscache.c): it records the
 * shape of each request (the request line's target as sent, not decoded,
 * and the headers the client must send) and answers what the test's
 * function says: a status and a body, after a delay, held until the test
 * releases it, or streamed line by line as a watch is. It serves the
 * certificate certs_generate() made (certs_fixture.h), for 127.0.0.1.
 *
 * libmicrohttpd with a thread per connection, so that a held answer or a
 * stream blocks only its own connection. Include after cmocka.h and
 * certs_fixture.h. listener_stop() ends every held answer and stream. */
#pragma once
#include <arpa/inet.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>

#include <microhttpd.h>

#include "buf.h"

#define LISTENER_LOG_MAX 256u
#define LISTENER_STREAM_MAX (4u * 1024u * 1024u)
#define LISTENER_WAIT_MS 10000u   /* the longest a test waits for the listener to see something */

struct listener_request {
        char method[16];
        char target[8192];        /* path and query as on the request line */
        char authorization[512];
        char accept[128];
        char user_agent[128];
        char content_type[128];
        char expect[64];
        char body[8192];          /* the request's body, its first bytes */
        size_t body_len;          /* all of it, kept or not */
};

struct listener_answer {
        int status;
        const char *body;         /* copied; NULL: empty */
        size_t len;               /* 0: strlen(body) */
        unsigned delay_ms;        /* before answering */
        bool hold;                /* wait for listener_release() (or listener_stop()) first */
        bool stream;              /* after the body, what listener_push() gives, until listener_end_streams() */
};

struct listener {
        struct MHD_Daemon *d;
        unsigned port;
        char cert_path[512], key_path[512];
        pthread_mutex_t lock;
        pthread_cond_t cond;
        struct listener_request log[LISTENER_LOG_MAX];
        unsigned n_requests;      /* seen; log keeps the first LISTENER_LOG_MAX */
        unsigned n_held;          /* waiting for release now */
        unsigned release_gen, end_gen;
        unsigned n_streams;       /* open now */
        bool stopping;
        struct buf pending;       /* stream bytes not yet sent */
        void (*answer)(void *ctx, const struct listener_request *rq, struct listener_answer *ret);
        void *ctx;
};

struct listener_rq {
        char target[8192];
        bool seen;
        char body[8192];
        size_t body_len;
};

struct listener_stream {
        struct listener *l;
        char *head;
        size_t head_len, head_off;
        unsigned end_gen;
};

static inline void listener_sleep_ms(unsigned ms)
{
        nanosleep(&(struct timespec){ .tv_sec = ms / 1000, .tv_nsec = (long)(ms % 1000) * 1000000L }, NULL);
}

static inline void listener_deadline(struct timespec *ts, unsigned ms)
{
        clock_gettime(CLOCK_REALTIME, ts);
        ts->tv_sec += ms / 1000;
        ts->tv_nsec += (long)(ms % 1000) * 1000000L;
        if (ts->tv_nsec >= 1000000000L) {
                ts->tv_sec++;
                ts->tv_nsec -= 1000000000L;
        }
}

static inline void *listener_on_uri(void *cls, const char *uri, struct MHD_Connection *c)
{
        struct listener_rq *rq = calloc(1, sizeof *rq);
        if (rq)
                snprintf(rq->target, sizeof rq->target, "%s", uri);
        return rq;
}

static inline void listener_on_completed(void *cls, struct MHD_Connection *c, void **con_cls,
                                         enum MHD_RequestTerminationCode toe)
{
        free(*con_cls);
        *con_cls = NULL;
}

static inline ssize_t listener_read_stream(void *cls, uint64_t pos, char *out, size_t max)
{
        struct listener_stream *s = cls;
        struct listener *l = s->l;
        if (s->head_off < s->head_len) {
                size_t n = s->head_len - s->head_off < max ? s->head_len - s->head_off : max;
                memcpy(out, s->head + s->head_off, n);
                s->head_off += n;
                return (ssize_t)n;
        }
        pthread_mutex_lock(&l->lock);
        if (!l->pending.len && !l->stopping && l->end_gen == s->end_gen) {
                struct timespec ts;
                listener_deadline(&ts, 20);
                pthread_cond_timedwait(&l->cond, &l->lock, &ts);
        }
        ssize_t r = 0;
        if (l->pending.len) {
                size_t n = l->pending.len < max ? l->pending.len : max;
                memcpy(out, l->pending.data, n);
                memmove(l->pending.data, l->pending.data + n, l->pending.len - n);
                l->pending.len -= n;
                r = (ssize_t)n;
        } else if (l->stopping || l->end_gen != s->end_gen) {
                r = MHD_CONTENT_READER_END_OF_STREAM;
        }
        pthread_mutex_unlock(&l->lock);
        return r;
}

static inline void listener_free_stream(void *cls)
{
        struct listener_stream *s = cls;
        pthread_mutex_lock(&s->l->lock);
        s->l->n_streams--;
        pthread_mutex_unlock(&s->l->lock);
        free(s->head);
        free(s);
}

static inline void listener_header(struct MHD_Connection *c, const char *name, char *out, size_t outlen)
{
        const char *v = MHD_lookup_connection_value(c, MHD_HEADER_KIND, name);
        snprintf(out, outlen, "%s", v ? v : "");
}

static inline enum MHD_Result listener_on_request(void *cls, struct MHD_Connection *c, const char *url,
                                                  const char *method, const char *version, const char *upload_data,
                                                  size_t *upload_size, void **con_cls)
{
        struct listener *l = cls;
        struct listener_rq *rq = *con_cls;
        if (!rq)
                return MHD_NO;
        if (!rq->seen) {
                rq->seen = true;
                return MHD_YES;
        }
        if (*upload_size) {
                size_t room = rq->body_len < sizeof rq->body ? sizeof rq->body - rq->body_len : 0;
                memcpy(rq->body + rq->body_len, upload_data, *upload_size < room ? *upload_size : room);
                rq->body_len += *upload_size;
                *upload_size = 0;
                return MHD_YES;
        }
        struct listener_request r = { 0 };
        snprintf(r.method, sizeof r.method, "%s", method);
        snprintf(r.target, sizeof r.target, "%s", rq->target);
        listener_header(c, MHD_HTTP_HEADER_AUTHORIZATION, r.authorization, sizeof r.authorization);
        listener_header(c, MHD_HTTP_HEADER_ACCEPT, r.accept, sizeof r.accept);
        listener_header(c, MHD_HTTP_HEADER_USER_AGENT, r.user_agent, sizeof r.user_agent);
        listener_header(c, MHD_HTTP_HEADER_CONTENT_TYPE, r.content_type, sizeof r.content_type);
        listener_header(c, MHD_HTTP_HEADER_EXPECT, r.expect, sizeof r.expect);
        memcpy(r.body, rq->body, sizeof r.body);
        r.body_len = rq->body_len;

        struct listener_answer a = { .status = 404, .body = "{}" };
        pthread_mutex_lock(&l->lock);
        if (l->n_requests < LISTENER_LOG_MAX)
                l->log[l->n_requests] = r;
        l->n_requests++;
        pthread_cond_broadcast(&l->cond);
        pthread_mutex_unlock(&l->lock);
        if (l->answer)
                l->answer(l->ctx, &r, &a);
        if (a.delay_ms)
                listener_sleep_ms(a.delay_ms);
        if (a.hold) {
                pthread_mutex_lock(&l->lock);
                unsigned gen = l->release_gen;
                l->n_held++;
                pthread_cond_broadcast(&l->cond);
                while (gen == l->release_gen && !l->stopping)
                        pthread_cond_wait(&l->cond, &l->lock);
                l->n_held--;
                pthread_mutex_unlock(&l->lock);
        }
        size_t len = a.body ? (a.len ? a.len : strlen(a.body)) : 0;
        struct MHD_Response *resp;
        if (a.stream) {
                struct listener_stream *s = calloc(1, sizeof *s);
                if (!s)
                        return MHD_NO;
                s->l = l;
                s->head = malloc(len + 1);
                if (!s->head) {
                        free(s);
                        return MHD_NO;
                }
                if (len)
                        memcpy(s->head, a.body, len);
                s->head_len = len;
                pthread_mutex_lock(&l->lock);
                s->end_gen = l->end_gen;
                l->n_streams++;
                pthread_cond_broadcast(&l->cond);
                pthread_mutex_unlock(&l->lock);
                resp = MHD_create_response_from_callback(MHD_SIZE_UNKNOWN, 4096, listener_read_stream, s,
                                                         listener_free_stream);
                if (!resp) {
                        listener_free_stream(s);
                        return MHD_NO;
                }
        } else {
                resp = MHD_create_response_from_buffer_copy(len, a.body ? a.body : "");
                if (!resp)
                        return MHD_NO;
        }
        MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, "application/json");
        enum MHD_Result ret = MHD_queue_response(c, (unsigned)a.status, resp);
        MHD_destroy_response(resp);
        return ret;
}

/* Starts serving the fixture's tls.crt and tls.key on 127.0.0.1 (a free port). */
static inline void listener_start(struct listener *l, const char *cert_path, const char *key_path,
                                  void (*answer)(void *, const struct listener_request *, struct listener_answer *),
                                  void *ctx)
{
        memset(l, 0, sizeof *l);
        pthread_mutex_init(&l->lock, NULL);
        pthread_cond_init(&l->cond, NULL);
        buf_init(&l->pending, LISTENER_STREAM_MAX);
        l->answer = answer;
        l->ctx = ctx;
        char *cert = slurp(cert_path, NULL), *key = slurp(key_path, NULL);
        struct sockaddr_in addr = { .sin_family = AF_INET, .sin_port = 0 };
        addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        l->d = MHD_start_daemon(MHD_USE_THREAD_PER_CONNECTION | MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_TLS, 0, NULL,
                                NULL, listener_on_request, l, MHD_OPTION_SOCK_ADDR, (struct sockaddr *)&addr,
                                MHD_OPTION_HTTPS_MEM_CERT, cert, MHD_OPTION_HTTPS_MEM_KEY, key,
                                MHD_OPTION_URI_LOG_CALLBACK, listener_on_uri, NULL, MHD_OPTION_NOTIFY_COMPLETED,
                                listener_on_completed, NULL, MHD_OPTION_END);
        free(cert);
        free(key);
        assert_non_null(l->d);
        const union MHD_DaemonInfo *info = MHD_get_daemon_info(l->d, MHD_DAEMON_INFO_BIND_PORT);
        assert_non_null(info);
        l->port = info->port;
        assert_true(l->port > 0);
}

static inline void listener_stop(struct listener *l)
{
        if (!l->d)
                return;
        pthread_mutex_lock(&l->lock);
        l->stopping = true;
        pthread_cond_broadcast(&l->cond);
        pthread_mutex_unlock(&l->lock);
        MHD_stop_daemon(l->d);
        l->d = NULL;
        buf_free(&l->pending);
        pthread_cond_destroy(&l->cond);
        pthread_mutex_destroy(&l->lock);
}

static inline unsigned listener_requests(struct listener *l)
{
        pthread_mutex_lock(&l->lock);
        unsigned n = l->n_requests;
        pthread_mutex_unlock(&l->lock);
        return n;
}

/* Request `i` (0: the first seen). */
static inline struct listener_request listener_request_at(struct listener *l, unsigned i)
{
        assert_true(i < LISTENER_LOG_MAX);
        pthread_mutex_lock(&l->lock);
        assert_true(i < l->n_requests);
        struct listener_request r = l->log[i];
        pthread_mutex_unlock(&l->lock);
        return r;
}

/* How many requests seen so far have a target starting with `prefix`. */
static inline unsigned listener_count(struct listener *l, const char *prefix)
{
        unsigned n = 0;
        pthread_mutex_lock(&l->lock);
        for (unsigned i = 0; i < l->n_requests && i < LISTENER_LOG_MAX; i++)
                n += strncmp(l->log[i].target, prefix, strlen(prefix)) == 0;
        pthread_mutex_unlock(&l->lock);
        return n;
}

/* Waits until `*counter` (one of the listener's, read under its lock) is at
 * least `want`; fails the test after LISTENER_WAIT_MS. */
static inline void listener_wait_for(struct listener *l, const unsigned *counter, unsigned want)
{
        struct timespec ts;
        listener_deadline(&ts, LISTENER_WAIT_MS);
        pthread_mutex_lock(&l->lock);
        int r = 0;
        while (*counter < want && r == 0)
                r = pthread_cond_timedwait(&l->cond, &l->lock, &ts);
        unsigned have = *counter;
        pthread_mutex_unlock(&l->lock);
        if (have < want)
                fail_msg("the listener waited for %u, saw %u", want, have);
}

/* Answers every held request. */
static inline void listener_release(struct listener *l)
{
        pthread_mutex_lock(&l->lock);
        l->release_gen++;
        pthread_cond_broadcast(&l->cond);
        pthread_mutex_unlock(&l->lock);
}

/* Adds a line (a newline is appended) to what open streams send next. */
static inline void listener_push(struct listener *l, const char *line)
{
        pthread_mutex_lock(&l->lock);
        assert_int_equal(buf_puts(&l->pending, line), 0);
        assert_int_equal(buf_putc(&l->pending, '\n'), 0);
        pthread_cond_broadcast(&l->cond);
        pthread_mutex_unlock(&l->lock);
}

/* Ends the streams open now, once what was pushed is sent. */
static inline void listener_end_streams(struct listener *l)
{
        pthread_mutex_lock(&l->lock);
        l->end_gen++;
        pthread_cond_broadcast(&l->cond);
        pthread_mutex_unlock(&l->lock);
}

/* A kubeconfig in `dir` for https://127.0.0.1:port with the CA at
 * `ca_path` and the bearer token `token`; its path. */
static inline const char *listener_kubeconfig(const char *dir, unsigned port, const char *ca_path, const char *token)
{
        static char path[512];
        char text[2048];
        snprintf(path, sizeof path, "%s/kubeconfig", dir);
        int n = snprintf(text, sizeof text,
                         "apiVersion: v1\nkind: Config\ncurrent-context: test\n"
                         "clusters:\n- name: local\n  cluster:\n    server: https://127.0.0.1:%u/\n"
                         "    certificate-authority: %s\n"
                         "contexts:\n- name: test\n  context: {cluster: local, user: tester}\n"
                         "users:\n- name: tester\n  user:\n    token: %s\n",
                         port, ca_path, token);
        assert_true(n > 0 && (size_t)n < sizeof text);
        write_text(path, text, (size_t)n);
        return path;
}
