/* Kubernetes API client over libcurl: see include/io/kube.h. */
#include "kube.h"

#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>
#include <curl/curl.h>
#include <openssl/evp.h>

#include "doc.h"
#include "exec_credential.h"
#include "fileio.h"
#include "kubeconfig.h"
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
        struct exec_credential *exec;   /* an exec plugin's credential, or NULL */
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
        exec_credential_free(k->exec);
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

/* The chosen context's cluster, checked: an https:// server, no
 * insecure-skip-tls-verify. */
static int check_cluster(const struct kubeconfig_file *f, const struct kubeconfig_choice *c, char *err, size_t errlen)
{
        const char *server = str(c->cluster, "server");
        if (!server || strncmp(server, "https://", 8) != 0) {
                err_set(err, errlen, "%s: the cluster of context \"%s\" has no https:// server", f->path, c->context);
                return -EINVAL;
        }
        if (cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(c->cluster, "insecure-skip-tls-verify"))) {
                err_set(err, errlen,
                        "%s: insecure-skip-tls-verify is not supported: give the "
                        "cluster's certificate-authority",
                        f->path);
                return -EINVAL;
        }
        return 0;
}

/* The user's exec plugin, when it has one: set up to run when a call needs
 * a credential. */
static int kubeconfig_exec(struct kube *k, const char *path, const cJSON *exec, char *err, size_t errlen)
{
        struct kubeconfig_exec x;
        char why[512];
        int r = kubeconfig_exec_parse(exec, &x, why, sizeof why);
        if (r < 0) {
                err_set(err, errlen, "%s: %s", path, why);
                return r;
        }
        struct buf ca_b64, request;
        buf_init(&ca_b64, 2u * WH_KUBECONFIG_MAX_BYTES);
        buf_init(&request, 4u * WH_KUBECONFIG_MAX_BYTES);
        r = x.provide_cluster_info && k->ca.len ? buf_put_base64(&ca_b64, k->ca.data, k->ca.len) : 0;
        if (r == 0)
                r = kubeconfig_exec_request(&x, k->server, ca_b64.data, &request);
        if (r == 0)
                r = exec_credential_new(&x, path, request.data, &k->exec, err, errlen);
        else
                err_set(err, errlen, "%s: the exec request: %s", path, strerror(-r));
        buf_free(&ca_b64);
        buf_free(&request);
        return r;
}

/* The user's credentials: a token, a token file, a client certificate, an
 * exec plugin; auth-provider is refused. */
static int kubeconfig_user(struct kube *k, const struct kubeconfig_file *files, const struct kubeconfig_choice *c,
                           char *err, size_t errlen)
{
        const char *path = files[c->user_file].path;
        const cJSON *user = c->user, *exec = cJSON_GetObjectItemCaseSensitive(user, "exec");
        const cJSON *provider = cJSON_GetObjectItemCaseSensitive(user, "auth-provider");
        if (provider) {
                err_set(err, errlen,
                        "%s: the user of context \"%s\" uses auth-provider \"%s\", which is not supported "
                        "(kubectl dropped the azure and gcp ones): use an exec plugin; on AKS, "
                        "'kubelogin convert-kubeconfig' writes one",
                        path, c->context, str(provider, "name") ? str(provider, "name") : "");
                return -EINVAL;
        }
        int r = data_or_file(path, user, "client-certificate-data", "client-certificate", &k->cert, err, errlen);
        if (r == 0)
                r = data_or_file(path, user, "client-key-data", "client-key", &k->key, err, errlen);
        if (r < 0)
                return r;
        if (str(user, "token") && !(k->token = strdup(str(user, "token"))))
                return -ENOMEM;
        if (str(user, "tokenFile") && !(k->token_file = resolve_path(path, str(user, "tokenFile"))))
                return -ENOMEM;
        if (exec && (k->token || k->token_file)) {
                err_set(err, errlen, "%s: the user of context \"%s\" has both a token and an exec plugin: keep one",
                        path, c->context);
                return -EINVAL;
        }
        if (exec)
                return kubeconfig_exec(k, path, exec, err, errlen);
        if (!k->token && !k->token_file && !k->cert.len) {
                err_set(err, errlen,
                        "%s: the user of context \"%s\" has no token, tokenFile, client certificate or exec "
                        "plugin",
                        c->user ? path : files[0].path, c->context);
                return -EINVAL;
        }
        return 0;
}

/* A client of the chosen context: its server (without trailing '/'), the
 * cluster's CA and the user's credentials, of which it needs one. */
static int kubeconfig_client(const struct kubeconfig_file *files, const struct kubeconfig_choice *c, struct kube **ret,
                             char *err, size_t errlen)
{
        const struct kubeconfig_file *cf = &files[c->cluster_file];
        int r = check_cluster(cf, c, err, errlen);
        if (r < 0)
                return r;
        struct kube *k = kube_new();
        if (!k || !(k->server = strdup(str(c->cluster, "server")))) {
                r = -ENOMEM;
                goto out;
        }
        size_t n = strlen(k->server);
        while (n && k->server[n - 1] == '/')
                k->server[--n] = '\0';
        r = data_or_file(cf->path, c->cluster, "certificate-authority-data", "certificate-authority", &k->ca, err,
                         errlen);
        if (r == 0)
                r = kubeconfig_user(k, files, c, err, errlen);
        if (r < 0)
                goto out;
        *ret = k;
        k = NULL;
out:
        kube_free(k);
        return r;
}

/* The files of a kubeconfig, read and parsed. */
struct kubeconfigs {
        size_t n;
        struct kubeconfig_file files[WH_KUBECONFIG_MAX_FILES];
        char *paths[WH_KUBECONFIG_MAX_FILES];
        struct buf text[WH_KUBECONFIG_MAX_FILES];
        struct doc *docs[WH_KUBECONFIG_MAX_FILES];
};

static void kubeconfigs_free_last(struct kubeconfigs *kc)
{
        size_t i = --kc->n;
        doc_free(kc->docs[i]);
        if (kc->text[i].data)
                explicit_bzero(kc->text[i].data, kc->text[i].len);   /* it may hold a token or a key */
        buf_free(&kc->text[i]);
        free(kc->paths[i]);
        kc->docs[i] = NULL;
        kc->paths[i] = NULL;
}

static void kubeconfigs_free(struct kubeconfigs *kc)
{
        while (kc->n)
                kubeconfigs_free_last(kc);
}

/* Reads and parses `path` as the next file. A missing file is skipped
 * (-ENOENT, nothing said) when `optional`. */
static int kubeconfigs_add(struct kubeconfigs *kc, const char *path, bool optional, char *err, size_t errlen)
{
        char derr[256];
        for (size_t i = 0; i < kc->n; i++)
                if (strcmp(kc->paths[i], path) == 0)
                        return 0;   /* kubectl reads a file named twice once */
        if (kc->n == WH_KUBECONFIG_MAX_FILES) {
                err_set(err, errlen, "KUBECONFIG names more than %u files", WH_KUBECONFIG_MAX_FILES);
                return -E2BIG;
        }
        size_t i = kc->n;
        buf_init(&kc->text[i], WH_KUBECONFIG_MAX_BYTES);
        if (!(kc->paths[i] = strdup(path)))
                return -ENOMEM;
        kc->n++;
        int r = fileio_read(path, &kc->text[i], err, errlen);
        if (r == -ENOENT && optional) {
                kubeconfigs_free_last(kc);
                return -ENOENT;
        }
        if (r < 0)
                return r;
        r = doc_parse(kc->text[i].data ? kc->text[i].data : "", kc->text[i].len, &kc->docs[i], derr, sizeof derr);
        if (r < 0) {
                err_set(err, errlen, "%s:%s", path, derr);
                return r;
        }
        kc->files[i] = (struct kubeconfig_file){ .path = kc->paths[i], .root = doc_root(kc->docs[i]) };
        return 0;
}

/* The files of $KUBECONFIG (':'-separated; missing ones skipped, at least
 * one must be there), else ~/.kube/config. */
static int kubeconfigs_default(struct kubeconfigs *kc, char *err, size_t errlen)
{
        const char *list = getenv("KUBECONFIG"), *home = getenv("HOME");
        char path[PATH_MAX];
        if (!list || !*list) {
                if (!home || !*home) {
                        err_set(err, errlen, "neither KUBECONFIG nor HOME is set: give --kubeconfig FILE");
                        return -ENOENT;
                }
                snprintf(path, sizeof path, "%s/.kube/config", home);
                int r = kubeconfigs_add(kc, path, false, err, errlen);
                if (r == -ENOENT)
                        err_set(err, errlen, "no kubeconfig: KUBECONFIG is not set and %s does not exist", path);
                return r;
        }
        for (const char *p = list; *p;) {
                size_t len = strcspn(p, ":");
                if (len >= sizeof path) {
                        err_set(err, errlen, "KUBECONFIG: a path longer than %zu bytes", sizeof path - 1);
                        return -ENAMETOOLONG;
                }
                memcpy(path, p, len);
                path[len] = '\0';
                int r = len ? kubeconfigs_add(kc, path, true, err, errlen) : 0;
                if (r < 0 && r != -ENOENT)
                        return r;
                p += len + (p[len] == ':');
        }
        if (kc->n == 0) {
                err_set(err, errlen, "KUBECONFIG=%s: none of its files exists", list);
                return -ENOENT;
        }
        return 0;
}

int kube_from_kubeconfig_context(const char *path, const char *context, struct kube **ret_kube, char *err,
                                 size_t errlen)
{
        struct kubeconfigs kc = { 0 };
        struct kubeconfig_choice choice;
        int r = path ? kubeconfigs_add(&kc, path, false, err, errlen) : kubeconfigs_default(&kc, err, errlen);
        if (r == 0)
                r = kubeconfig_choose(kc.files, kc.n, context, &choice, err, errlen);
        if (r == 0)
                r = kubeconfig_client(kc.files, &choice, ret_kube, err, errlen);
        kubeconfigs_free(&kc);
        return r;
}

int kube_from_kubeconfig(const char *path, struct kube **ret_kube, char *err, size_t errlen)
{
        return kube_from_kubeconfig_context(path, NULL, ret_kube, err, errlen);
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
        unsigned long exec_generation;   /* the exec plugin's run whose credential this call sends */
};

/* The bearer token for this call: the exec plugin's, fixed, or read from
 * its file now. */
static int auth_header(const struct kube *k, const char *exec_token, struct curl_slist **headers, char *err,
                       size_t errlen)
{
        const char *token = NULL;
        struct buf file;
        buf_init(&file, 64u * 1024u);
        if (exec_token) {
                token = exec_token;
        } else if (k->token_file) {
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
        struct exec_credential_value cred = { 0 };
        int r = k->exec ? exec_credential_get(k->exec, &cred, err, errlen) : 0;
        if (r == 0)
                r = auth_header(k, cred.token, &c->headers, err, errlen);
        if (r < 0) {
                exec_credential_value_free(&cred);
                return r;
        }
        c->exec_generation = cred.generation;
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
        if (cred.cert && cred.key) {
                /* The plugin's pair: copied by libcurl, as the kept one may change. */
                struct curl_blob cert = { .data = cred.cert, .len = strlen(cred.cert), .flags = CURL_BLOB_COPY };
                struct curl_blob key = { .data = cred.key, .len = strlen(cred.key), .flags = CURL_BLOB_COPY };
                curl_easy_setopt(cu, CURLOPT_SSLCERT_BLOB, &cert);
                curl_easy_setopt(cu, CURLOPT_SSLCERTTYPE, "PEM");
                curl_easy_setopt(cu, CURLOPT_SSLKEY_BLOB, &key);
                curl_easy_setopt(cu, CURLOPT_SSLKEYTYPE, "PEM");
        }
        exec_credential_value_free(&cred);
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
        if (*ret_status == 401 && k->exec)
                exec_credential_refused(k->exec, c->exec_generation);   /* the next call runs the plugin again */
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
        size_t start = out->len;
        /* A credential from an exec plugin that the API server refuses (it
         * expired early, was revoked) is asked for again, once. */
        for (int attempt = 0;; attempt++) {
                int r = call_setup(k, path, &c, err, errlen);
                if (r == 0) {
                        curl_easy_setopt(c.curl, CURLOPT_WRITEFUNCTION, on_body);
                        curl_easy_setopt(c.curl, CURLOPT_WRITEDATA, out);
                        curl_easy_setopt(c.curl, CURLOPT_TIMEOUT_MS, (long)timeout_ms);
                        r = call_perform(k, &c, ret_status, err, errlen);
                        if (r == -E2BIG) {
                                /* The status that came, and `out` keeps the answer's head. */
                                curl_easy_getinfo(c.curl, CURLINFO_RESPONSE_CODE, ret_status);
                                err_set(err, errlen, "%s%s: the answer is larger than %zu bytes", k->server, path,
                                        out->max);
                        }
                }
                call_cleanup(&c);
                if (r != 0 || *ret_status != 401 || !k->exec || attempt > 0)
                        return r;
                out->len = start;
                if (out->data)
                        out->data[start] = '\0';
        }
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
        int stopped_with; /* on_line()'s non-zero answer */
        const atomic_bool *stop;
};

static size_t on_stream(char *data, size_t size, size_t n, void *ud)
{
        struct stream *s = ud;
        size_t total = size * n;
        for (size_t i = 0; i < total; i++) {
                if (data[i] != '\n') {
                        if (buf_putc(&s->line, data[i]) < 0)
                                return 0; /* a line past the bound: CURLE_WRITE_ERROR */
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
