/* Kubernetes API client over libcurl: see include/io/kube.h. */
#include "kube.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>
#include <curl/curl.h>
#include <openssl/evp.h>

#include "doc.h"
#include "fileio.h"
#include "webhook_limits.h"
#include "err.h"

/* A kubeconfig, a CA bundle, a client certificate or a token file. */
#define KUBE_FILE_MAX (1u * 1024u * 1024u)
#define KUBE_CONNECT_TIMEOUT_MS 5000L
#define KUBE_URL_MAX 4096u

struct kube {
        char *server;           /* https://host:port, no trailing slash */
        struct buf ca;          /* CA bundle, PEM; empty: the system's */
        char *token;            /* a fixed bearer token, or NULL */
        char *token_file;       /* a token file read at every call, or NULL */
        struct buf cert, key;   /* client certificate and key, PEM; empty: none */
};

int kube_global_init(void)
{
        return curl_global_init(CURL_GLOBAL_DEFAULT) == CURLE_OK ? 0 : -EIO;
}

void kube_free(struct kube *k)
{
        if (!k)
                return;
        free(k->server);
        free(k->token);
        free(k->token_file);
        buf_free(&k->ca);
        buf_free(&k->cert);
        if (k->key.data)
                explicit_bzero(k->key.data, k->key.len);
        buf_free(&k->key);
        free(k);
}

const char *kube_server(const struct kube *k)
{
        return k->server;
}

static struct kube *kube_new(void)
{
        struct kube *k = calloc(1, sizeof *k);
        if (!k)
                return NULL;
        buf_init(&k->ca, KUBE_FILE_MAX);
        buf_init(&k->cert, KUBE_FILE_MAX);
        buf_init(&k->key, KUBE_FILE_MAX);
        return k;
}

int kube_in_cluster(const char *sa_dir, struct kube **ret_kube, char *err, size_t errlen)
{
        const char *host = getenv("KUBERNETES_SERVICE_HOST");
        const char *port = getenv("KUBERNETES_SERVICE_PORT");
        char path[512];
        if (!host || !*host) {
                err_set(err, errlen, "not in a cluster (KUBERNETES_SERVICE_HOST is not set)");
                return -ENOENT;
        }
        struct kube *k = kube_new();
        if (!k)
                return -ENOMEM;
        bool v6 = strchr(host, ':') != NULL;
        if (asprintf(&k->server, "https://%s%s%s:%s", v6 ? "[" : "", host, v6 ? "]" : "",
                     port && *port ? port : "443") < 0) {
                k->server = NULL;
                kube_free(k);
                return -ENOMEM;
        }
        snprintf(path, sizeof path, "%s/ca.crt", sa_dir);
        int r = fileio_read(path, &k->ca, err, errlen);
        if (r == 0) {
                snprintf(path, sizeof path, "%s/token", sa_dir);
                k->token_file = strdup(path);
                r = k->token_file ? 0 : -ENOMEM;
        }
        if (r < 0) {
                kube_free(k);
                return r;
        }
        *ret_kube = k;
        return 0;
}

/* ---- kubeconfig ---- */

static const char *str(const cJSON *obj, const char *key)
{
        const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, key);
        return cJSON_IsString(v) && *v->valuestring ? v->valuestring : NULL;
}

/* The entry of `list` (clusters, users, contexts) named `name`: its inner map. */
static const cJSON *named(const cJSON *root, const char *list, const char *inner, const char *name)
{
        const cJSON *it;
        cJSON_ArrayForEach(it, cJSON_GetObjectItemCaseSensitive(root, list)) {
                const char *n = str(it, "name");
                if (n && name && strcmp(n, name) == 0)
                        return cJSON_GetObjectItemCaseSensitive(it, inner);
        }
        return NULL;
}

static int base64_into(const char *b64, struct buf *out, const char *what, char *err, size_t errlen)
{
        size_t n = strlen(b64);
        unsigned char *tmp = malloc(n / 4 * 3 + 4);
        if (!tmp)
                return -ENOMEM;
        int len = n % 4 == 0 ? EVP_DecodeBlock(tmp, (const unsigned char *)b64, (int)n) : -1;
        if (len < 0) {
                free(tmp);
                err_set(err, errlen, "the kubeconfig's %s is not base64", what);
                return -EINVAL;
        }
        for (size_t i = n; i > 0 && b64[i - 1] == '='; i--)
                len--;   /* EVP_DecodeBlock counts the padding as bytes */
        int r = buf_append(out, tmp, (size_t)len);
        explicit_bzero(tmp, n / 4 * 3 + 4);
        free(tmp);
        return r;
}

/* A path in a kubeconfig is relative to the file's directory. */
static char *resolve_path(const char *kubeconfig, const char *p)
{
        if (p[0] == '/')
                return strdup(p);
        const char *slash = strrchr(kubeconfig, '/');
        char *out = NULL;
        if (!slash)
                return strdup(p);
        if (asprintf(&out, "%.*s/%s", (int)(slash - kubeconfig), kubeconfig, p) < 0)
                return NULL;
        return out;
}

/* Reads a `X-data` (base64) or `X` (file) pair of a kubeconfig into `out`. */
static int data_or_file(const char *kubeconfig, const cJSON *obj, const char *data_key, const char *file_key,
                        struct buf *out, char *err, size_t errlen)
{
        const char *data = str(obj, data_key), *file = str(obj, file_key);
        if (data)
                return base64_into(data, out, data_key, err, errlen);
        if (!file)
                return 0;
        char *path = resolve_path(kubeconfig, file);
        if (!path)
                return -ENOMEM;
        int r = fileio_read(path, out, err, errlen);
        free(path);
        return r;
}

/* The current context's cluster and user, and the cluster's https://
 * server; -EINVAL for a context that is missing or that asks for what is
 * not supported. */
static int kubeconfig_context(const char *path, const cJSON *root, const cJSON **ret_cluster, const cJSON **ret_user,
                              const char **ret_server, char *err, size_t errlen)
{
        const char *current = str(root, "current-context");
        const cJSON *ctx = named(root, "contexts", "context", current);
        if (!ctx) {
                err_set(err, errlen, "%s: no context named by current-context \"%s\"", path, current ? current : "");
                return -EINVAL;
        }
        const cJSON *cluster = named(root, "clusters", "cluster", str(ctx, "cluster"));
        const cJSON *user = named(root, "users", "user", str(ctx, "user"));
        const char *server = str(cluster, "server");
        if (!server || strncmp(server, "https://", 8) != 0) {
                err_set(err, errlen, "%s: the current context's cluster has no https:// server", path);
                return -EINVAL;
        }
        if (cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(cluster, "insecure-skip-tls-verify"))) {
                err_set(err, errlen,
                        "%s: insecure-skip-tls-verify is not supported: give the "
                        "cluster's certificate-authority",
                        path);
                return -EINVAL;
        }
        if (cJSON_GetObjectItemCaseSensitive(user, "exec") || cJSON_GetObjectItemCaseSensitive(user, "auth-provider")) {
                err_set(err, errlen,
                        "%s: exec and auth-provider credentials are not supported: "
                        "use a token, tokenFile, or a client certificate",
                        path);
                return -EINVAL;
        }
        *ret_cluster = cluster;
        *ret_user = user;
        *ret_server = server;
        return 0;
}

/* A client of a checked context: its server (without trailing '/'), the
 * cluster's CA and the user's credentials, of which it needs one. */
static int kubeconfig_client(const char *path, const cJSON *cluster, const cJSON *user, const char *server,
                             struct kube **ret, char *err, size_t errlen)
{
        struct kube *k = kube_new();
        int r;
        if (!k || !(k->server = strdup(server))) {
                r = -ENOMEM;
                goto out;
        }
        size_t n = strlen(k->server);
        while (n && k->server[n - 1] == '/')
                k->server[--n] = '\0';
        r = data_or_file(path, cluster, "certificate-authority-data", "certificate-authority", &k->ca, err, errlen);
        if (r == 0)
                r = data_or_file(path, user, "client-certificate-data", "client-certificate", &k->cert, err, errlen);
        if (r == 0)
                r = data_or_file(path, user, "client-key-data", "client-key", &k->key, err, errlen);
        if (r < 0)
                goto out;
        if (str(user, "token") && !(k->token = strdup(str(user, "token")))) {
                r = -ENOMEM;
                goto out;
        }
        if (str(user, "tokenFile") && !(k->token_file = resolve_path(path, str(user, "tokenFile")))) {
                r = -ENOMEM;
                goto out;
        }
        if (!k->token && !k->token_file && !k->cert.len) {
                err_set(err, errlen,
                        "%s: the current context's user has no token, tokenFile or "
                        "client certificate",
                        path);
                r = -EINVAL;
                goto out;
        }
        *ret = k;
        k = NULL;
        r = 0;
out:
        kube_free(k);
        return r;
}

int kube_from_kubeconfig(const char *path, struct kube **ret_kube, char *err, size_t errlen)
{
        struct buf text;
        struct doc *doc = NULL;
        char derr[256];
        int r;

        buf_init(&text, KUBE_FILE_MAX);
        r = fileio_read(path, &text, err, errlen);
        if (r < 0)
                goto out;
        r = doc_parse(text.data ? text.data : "", text.len, &doc, derr, sizeof derr);
        if (r < 0) {
                err_set(err, errlen, "%s:%s", path, derr);
                goto out;
        }
        const cJSON *cluster = NULL, *user = NULL;
        const char *server = NULL;
        r = kubeconfig_context(path, doc_root(doc), &cluster, &user, &server, err, errlen);
        if (r == 0)
                r = kubeconfig_client(path, cluster, user, server, ret_kube, err, errlen);
out:
        doc_free(doc);
        if (text.data)
                explicit_bzero(text.data, text.len);   /* it may hold a token or a key */
        buf_free(&text);
        return r;
}

/* ---- requests ---- */

int kube_put_query_value(struct buf *b, const char *s)
{
        static const char hex[] = "0123456789ABCDEF";
        int r = 0;
        for (; r == 0 && *s; s++) {
                unsigned char ch = (unsigned char)*s;
                bool plain = (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') ||
                             ch == '-' || ch == '_' || ch == '.' || ch == '~';
                r = plain ? buf_putc(b, (char)ch) : buf_printf(b, "%%%c%c", hex[ch >> 4], hex[ch & 15]);
        }
        return r;
}

struct call {
        CURL *curl;
        struct curl_slist *headers;
        char curl_err[CURL_ERROR_SIZE];
};

/* The bearer token for this call: fixed, or read from its file now. */
static int auth_header(const struct kube *k, struct curl_slist **headers, char *err, size_t errlen)
{
        char *token = NULL;
        struct buf file;
        buf_init(&file, 64u * 1024u);
        if (k->token_file) {
                int r = fileio_read(k->token_file, &file, err, errlen);
                if (r < 0)
                        return r;
                while (file.len && (file.data[file.len - 1] == '\n' || file.data[file.len - 1] == '\r' ||
                                    file.data[file.len - 1] == ' '))
                        file.data[--file.len] = '\0';
                token = file.data;
        } else {
                token = k->token;
        }
        int r = 0;
        if (token && *token) {
                char *h = NULL;
                if (asprintf(&h, "Authorization: Bearer %s", token) < 0)
                        r = -ENOMEM;
                struct curl_slist *l = r == 0 ? curl_slist_append(*headers, h) : NULL;
                if (h) {
                        explicit_bzero(h, strlen(h));
                        free(h);
                }
                if (r == 0 && !l)
                        r = -ENOMEM;
                if (l)
                        *headers = l;
        }
        if (file.data)
                explicit_bzero(file.data, file.len);
        buf_free(&file);
        return r;
}

static int call_setup(const struct kube *k, const char *path, struct call *c, char *err, size_t errlen)
{
        char url[KUBE_URL_MAX];
        memset(c, 0, sizeof *c);
        if ((size_t)snprintf(url, sizeof url, "%s%s", k->server, path) >= sizeof url) {
                err_set(err, errlen, "request path too long");
                return -E2BIG;
        }
        c->curl = curl_easy_init();
        if (!c->curl)
                return -ENOMEM;
        struct curl_slist *h = curl_slist_append(NULL, "Accept: application/json");
        if (!h)
                return -ENOMEM;
        c->headers = h;
        int r = auth_header(k, &c->headers, err, errlen);
        if (r < 0)
                return r;
        CURL *cu = c->curl;
        curl_easy_setopt(cu, CURLOPT_URL, url);
        curl_easy_setopt(cu, CURLOPT_HTTPHEADER, c->headers);
        curl_easy_setopt(cu, CURLOPT_NOSIGNAL, 1L);
        curl_easy_setopt(cu, CURLOPT_ERRORBUFFER, c->curl_err);
        curl_easy_setopt(cu, CURLOPT_PROTOCOLS_STR, "https");
        curl_easy_setopt(cu, CURLOPT_CONNECTTIMEOUT_MS, KUBE_CONNECT_TIMEOUT_MS);
        curl_easy_setopt(cu, CURLOPT_TCP_KEEPALIVE, 1L);
        curl_easy_setopt(cu, CURLOPT_USERAGENT, "spark-identity-webhook/" WH_VERSION);
        if (k->ca.len) {
                struct curl_blob ca = { .data = k->ca.data, .len = k->ca.len, .flags = CURL_BLOB_NOCOPY };
                curl_easy_setopt(cu, CURLOPT_CAINFO_BLOB, &ca);
        }
        if (k->cert.len && k->key.len) {
                struct curl_blob cert = { .data = k->cert.data, .len = k->cert.len, .flags = CURL_BLOB_NOCOPY };
                struct curl_blob key = { .data = k->key.data, .len = k->key.len, .flags = CURL_BLOB_NOCOPY };
                curl_easy_setopt(cu, CURLOPT_SSLCERT_BLOB, &cert);
                curl_easy_setopt(cu, CURLOPT_SSLCERTTYPE, "PEM");
                curl_easy_setopt(cu, CURLOPT_SSLKEY_BLOB, &key);
                curl_easy_setopt(cu, CURLOPT_SSLKEYTYPE, "PEM");
        }
        return 0;
}

static void call_cleanup(struct call *c)
{
        if (c->curl)
                curl_easy_cleanup(c->curl);
        curl_slist_free_all(c->headers);   /* holds the token: curl copied what it needs */
}

static int call_perform(const struct kube *k, struct call *c, long *ret_status, char *err, size_t errlen)
{
        CURLcode cc = curl_easy_perform(c->curl);
        if (cc != CURLE_OK) {
                err_set(err, errlen, "%s: %s", k->server, c->curl_err[0] ? c->curl_err : curl_easy_strerror(cc));
                return cc == CURLE_OPERATION_TIMEDOUT    ? -ETIMEDOUT
                       : cc == CURLE_ABORTED_BY_CALLBACK ? -ECANCELED
                       : cc == CURLE_WRITE_ERROR         ? -E2BIG
                                                         : -EIO;
        }
        curl_easy_getinfo(c->curl, CURLINFO_RESPONSE_CODE, ret_status);
        return 0;
}

static size_t on_body(char *data, size_t size, size_t n, void *ud)
{
        struct buf *out = ud;
        return buf_append(out, data, size * n) == 0 ? size * n : 0;
}

int kube_get(const struct kube *k, const char *path, unsigned timeout_ms, struct buf *out, long *ret_status, char *err,
             size_t errlen)
{
        struct call c;
        int r = call_setup(k, path, &c, err, errlen);
        if (r == 0) {
                curl_easy_setopt(c.curl, CURLOPT_WRITEFUNCTION, on_body);
                curl_easy_setopt(c.curl, CURLOPT_WRITEDATA, out);
                curl_easy_setopt(c.curl, CURLOPT_TIMEOUT_MS, (long)timeout_ms);
                r = call_perform(k, &c, ret_status, err, errlen);
                if (r == -E2BIG) {
                        /* The status that came, and `out` keeps the answer's head. */
                        curl_easy_getinfo(c.curl, CURLINFO_RESPONSE_CODE, ret_status);
                        err_set(err, errlen, "%s%s: the answer is larger than %zu bytes", k->server, path, out->max);
                }
        }
        call_cleanup(&c);
        return r;
}

/* What libcurl reads of a request's body. */
struct upload {
        const char *data;
        size_t len, off;
};

static size_t on_upload(char *out, size_t size, size_t n, void *ud)
{
        struct upload *u = ud;
        size_t room = size * n, left = u->len - u->off;
        size_t k = left < room ? left : room;
        memcpy(out, u->data + u->off, k);
        u->off += k;
        return k;
}

/* The headers of a body: what it is, and no "Expect: 100-continue" (libcurl
 * sends one before a large body and waits for the answer to it). Appended
 * to the list call_setup() gave libcurl, which reads it when it sends. */
static int body_headers(const char *content_type, struct curl_slist **headers)
{
        char h[128];
        if ((size_t)snprintf(h, sizeof h, "Content-Type: %s", content_type) >= sizeof h)
                return -E2BIG;
        struct curl_slist *l = curl_slist_append(*headers, h);
        if (l)
                *headers = l;
        l = l ? curl_slist_append(*headers, "Expect:") : NULL;
        if (!l)
                return -ENOMEM;
        *headers = l;
        return 0;
}

int kube_request(const struct kube *k, const char *method, const char *path, const struct kube_body *body,
                 unsigned timeout_ms, struct buf *out, long *ret_status, char *err, size_t errlen)
{
        struct upload up = { .data = body ? body->data : NULL, .len = body ? body->len : 0 };
        struct call c;
        if (up.len > WH_KUBE_MAX_REQUEST_BYTES) {
                err_set(err, errlen, "%s %s: the request body passes %u bytes", method, path,
                        WH_KUBE_MAX_REQUEST_BYTES);
                return -E2BIG;
        }
        int r = call_setup(k, path, &c, err, errlen);
        if (r == 0 && body)
                r = body_headers(body->content_type ? body->content_type : "application/json", &c.headers);
        if (r == 0) {
                curl_easy_setopt(c.curl, CURLOPT_CUSTOMREQUEST, method);
                if (body) {
                        curl_easy_setopt(c.curl, CURLOPT_UPLOAD, 1L);
                        curl_easy_setopt(c.curl, CURLOPT_READFUNCTION, on_upload);
                        curl_easy_setopt(c.curl, CURLOPT_READDATA, &up);
                        curl_easy_setopt(c.curl, CURLOPT_INFILESIZE_LARGE, (curl_off_t)up.len);
                }
                curl_easy_setopt(c.curl, CURLOPT_WRITEFUNCTION, on_body);
                curl_easy_setopt(c.curl, CURLOPT_WRITEDATA, out);
                curl_easy_setopt(c.curl, CURLOPT_TIMEOUT_MS, (long)timeout_ms);
                r = call_perform(k, &c, ret_status, err, errlen);
                if (r == -E2BIG) {
                        curl_easy_getinfo(c.curl, CURLINFO_RESPONSE_CODE, ret_status);
                        err_set(err, errlen, "%s %s%s: the answer is larger than %zu bytes", method, k->server, path,
                                out->max);
                }
        }
        call_cleanup(&c);
        return r;
}

struct stream {
        struct buf line;
        int (*on_line)(void *ctx, const char *line, size_t len);
        void *ctx;
        int stopped_with;       /* on_line()'s non-zero answer */
        const atomic_bool *stop;
};

static size_t on_stream(char *data, size_t size, size_t n, void *ud)
{
        struct stream *s = ud;
        size_t total = size * n;
        for (size_t i = 0; i < total; i++) {
                if (data[i] != '\n') {
                        if (buf_putc(&s->line, data[i]) < 0)
                                return 0;   /* a line past the bound: CURLE_WRITE_ERROR */
                        continue;
                }
                int r = s->line.len ? s->on_line(s->ctx, s->line.data, s->line.len) : 0;
                buf_reset(&s->line);
                if (r) {
                        s->stopped_with = r;
                        return 0;
                }
        }
        return total;
}

static int on_progress(void *ud, curl_off_t dt, curl_off_t dn, curl_off_t ut, curl_off_t un)
{
        const struct stream *s = ud;
        return s->stop && atomic_load(s->stop) ? 1 : 0;
}

int kube_stream(const struct kube *k, const char *path, int (*on_line)(void *ctx, const char *line, size_t len),
                void *ctx, const atomic_bool *stop, long *ret_status, char *err, size_t errlen)
{
        struct stream s = { .on_line = on_line, .ctx = ctx, .stop = stop };
        struct call c;
        buf_init(&s.line, WH_KUBE_MAX_EVENT_BYTES);
        int r = call_setup(k, path, &c, err, errlen);
        if (r == 0) {
                curl_easy_setopt(c.curl, CURLOPT_WRITEFUNCTION, on_stream);
                curl_easy_setopt(c.curl, CURLOPT_WRITEDATA, &s);
                curl_easy_setopt(c.curl, CURLOPT_NOPROGRESS, 0L);
                curl_easy_setopt(c.curl, CURLOPT_XFERINFOFUNCTION, on_progress);
                curl_easy_setopt(c.curl, CURLOPT_XFERINFODATA, &s);
                r = call_perform(k, &c, ret_status, err, errlen);
                if (r == -E2BIG && s.stopped_with)
                        r = s.stopped_with;
                else if (r == -E2BIG)
                        err_set(err, errlen, "%s: a watch event is larger than %u bytes", k->server,
                                WH_KUBE_MAX_EVENT_BYTES);
                /* The last line may lack its newline. */
                if (r == 0 && s.line.len && (r = on_line(ctx, s.line.data, s.line.len)) != 0)
                        s.stopped_with = r;
        }
        call_cleanup(&c);
        buf_free(&s.line);
        return r;
}
