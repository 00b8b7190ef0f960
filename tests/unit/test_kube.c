/* Unit tests for webhook/io/kube.c: percent-encoding, the in-cluster and
 * kubeconfig configurations with what they refuse, and the shape and
 * bounds of a GET and a streamed GET, against a small HTTPS listener the
 * test starts on 127.0.0.1 (api_listener.h), which answers what each test
 * tells it. It is not an API server: only the client's side is checked. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <errno.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <curl/curl.h>

#include "certs_fixture.h"
#include "api_listener.h"
#include "buf.h"
#include "kube.h"
#include "kubeconfig.h"
#include "webhook_limits.h"

#define TOKEN "t0ken-for-tests"

/* What the listener answers: one answer for every request. The listener's
 * threads read it while the test sets it (a timed-out request's thread may
 * still be answering), so both sides take answer_lock. */
static pthread_mutex_t answer_lock = PTHREAD_MUTEX_INITIALIZER;
static struct listener_answer next;
static char big_body[WH_KUBE_MAX_EVENT_BYTES + 16];

/* An Authorization header answered 401 whatever `next` says, or NULL. */
static const char *refuse_authorization;

static void set_next(struct listener_answer a)
{
        pthread_mutex_lock(&answer_lock);
        next = a;
        pthread_mutex_unlock(&answer_lock);
}

static void set_refuse_authorization(const char *authorization)
{
        pthread_mutex_lock(&answer_lock);
        refuse_authorization = authorization;
        pthread_mutex_unlock(&answer_lock);
}

static void answer_next(void *ctx, const struct listener_request *rq, struct listener_answer *ret)
{
        pthread_mutex_lock(&answer_lock);
        if (refuse_authorization && strcmp(rq->authorization, refuse_authorization) == 0)
                *ret = (struct listener_answer){ .status = 401, .body = "{\"kind\":\"Status\",\"code\":401}" };
        else
                *ret = next;
        pthread_mutex_unlock(&answer_lock);
}

struct kfix {
        struct fixture *f;
        struct listener l;
        struct kube *k;
};

static int kube_setup(void **state)
{
        struct kfix *kf = calloc(1, sizeof *kf);
        void *fs = NULL;
        if (!kf || setup(&fs) != 0)
                return -1;
        kf->f = fs;
        generate(kf->f);
        set_next((struct listener_answer){ .status = 200, .body = "{\"kind\":\"NamespaceList\"}" });
        listener_start(&kf->l, path_in(kf->f, "tls.crt"), path_in(kf->f, "tls.key"), answer_next, NULL);
        const char *kc = listener_kubeconfig(kf->f->dir, kf->l.port, path_in(kf->f, "ca.crt"), TOKEN);
        char err[256] = "";
        int r = kube_from_kubeconfig(kc, &kf->k, err, sizeof err);
        if (r != 0)
                fail_msg("kube_from_kubeconfig: %d %s", r, err);
        *state = kf;
        return 0;
}

static int kube_teardown(void **state)
{
        struct kfix *kf = *state;
        kube_free(kf->k);
        listener_stop(&kf->l);
        void *fs = kf->f;
        int r = teardown(&fs);
        free(kf);
        return r;
}

/* ---- percent-encoding ---- */

static void test_put_query_value(void **state)
{
        static const struct {
                const char *in, *out;
        } cases[] = {
                { "", "" },
                { "team-a", "team-a" },
                { "AZaz09-_.~", "AZaz09-_.~" },
                { "a b", "a%20b" },
                { "a/b", "a%2Fb" },
                { "a&limit=1", "a%26limit%3D1" },
                { "100%", "100%25" },
                { "a+b?c#d", "a%2Bb%3Fc%23d" },
                { "\xc3\xa9", "%C3%A9" },   /* é in UTF-8, byte by byte */
                { "\x01\x7f\xff", "%01%7F%FF" },
                { "eyJ2IjoibWV0YS5rOHMuaW8vdjEiLCJydiI6MTAsInN0YXJ0IjoiYVx1MDAwMCJ9==",
                  "eyJ2IjoibWV0YS5rOHMuaW8vdjEiLCJydiI6MTAsInN0YXJ0IjoiYVx1MDAwMCJ9%3D%3D" },
        };
        for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
                struct buf b;
                buf_init(&b, 1024);
                assert_int_equal(buf_puts(&b, "?continue="), 0);
                assert_int_equal(kube_put_query_value(&b, cases[i].in), 0);
                char want[256];
                snprintf(want, sizeof want, "?continue=%s", cases[i].out);
                assert_string_equal(b.data, want);
                buf_free(&b);
        }
}

static void test_put_query_value_bounded(void **state)
{
        struct buf b;
        buf_init(&b, 8);
        assert_true(kube_put_query_value(&b, "////////") < 0);   /* 24 bytes encoded */
        assert_true(b.len <= 8);
        buf_free(&b);
}

/* ---- kubeconfig ---- */

static const char *write_file(struct fixture *f, const char *name, const char *text)
{
        static char path[4][PATH_MAX];
        static unsigned k;
        char *p = path[k++ % 4];
        snprintf(p, PATH_MAX, "%s/%s", f->dir, name);
        write_text(p, text, strlen(text));
        return p;
}

struct bad_kubeconfig {
        const char *text;
        const char *message_part;
};

#define CLUSTER(server, extra) "clusters:\n- name: c\n  cluster:\n    server: " server "\n" extra
#define CONTEXTS "contexts:\n- name: x\n  context: {cluster: c, user: u}\n"
#define CONTEXT CONTEXTS "current-context: x\n"
#define USER(body) "users:\n- name: u\n  user:\n" body

static const struct bad_kubeconfig bad_kubeconfigs[] = {
        { "clusters: []\n", "no current-context in " },
        { CLUSTER("https://h:6443", "") CONTEXTS "current-context: y\n" USER("    token: t\n"),
          "no context \"y\" (the current-context) in " },
        { CLUSTER("http://h:8080", "") CONTEXT USER("    token: t\n"), "has no https:// server" },
        { CLUSTER("https://h:6443", "    insecure-skip-tls-verify: true\n") CONTEXT USER("    token: t\n"),
          "insecure-skip-tls-verify is not supported" },
        { CLUSTER("https://h:6443", "") CONTEXT USER("    exec: {command: kubelogin}\n"),
          "exec.apiVersion must be client.authentication.k8s.io/v1 or" },
        { CLUSTER("https://h:6443", "")
                  CONTEXT USER("    exec: {apiVersion: " KUBECONFIG_EXEC_V1 ", command: k, interactiveMode: Always}\n"),
          "exec.interactiveMode Always: the plugin wants a terminal" },
        { CLUSTER("https://h:6443", "")
                  CONTEXT USER("    token: t\n    exec: {apiVersion: " KUBECONFIG_EXEC_V1 ", command: k}\n"),
          "has both a token and an exec plugin" },
        { CLUSTER("https://h:6443", "") CONTEXT USER("    auth-provider: {name: azure}\n"),
          "uses auth-provider \"azure\", which is not supported" },
        { CLUSTER("https://h:6443", "") CONTEXT USER("    username: admin\n"),
          "has no token, tokenFile, client certificate or exec plugin" },
        { CLUSTER("https://h:6443", "    certificate-authority-data: \"not*base64!\"\n") CONTEXT USER("    token: t\n"),
          "certificate-authority-data is not base64" },
        { CLUSTER("https://h:6443", "") CONTEXT USER("    token: t\n    client-key-data: abc\n"),
          "client-key-data is not base64" },
};

static void test_kubeconfig_refusals(void **state)
{
        struct kfix *kf = *state;
        for (size_t i = 0; i < sizeof bad_kubeconfigs / sizeof *bad_kubeconfigs; i++) {
                const char *path = write_file(kf->f, "bad-kubeconfig", bad_kubeconfigs[i].text);
                struct kube *k = NULL;
                char err[256] = "";
                int r = kube_from_kubeconfig(path, &k, err, sizeof err);
                if (r != -EINVAL)
                        fail_msg("case %zu: %d (%s)", i, r, err);
                assert_null(k);
                assert_contains(err, bad_kubeconfigs[i].message_part);
        }
        struct kube *k = NULL;
        char err[256] = "";
        char missing[PATH_MAX];
        xsnprintf(missing, "%s/no-such-kubeconfig", kf->f->dir);
        assert_true(kube_from_kubeconfig(missing, &k, err, sizeof err) < 0);
        assert_null(k);
        assert_true(err[0] != '\0');
}

/* A CA file named relative to the kubeconfig is read from the kubeconfig's
 * directory, whatever the working directory; the server keeps no trailing
 * slash; data fields are base64. */
static void test_kubeconfig_paths_and_data(void **state)
{
        struct kfix *kf = *state;
        char text[1024];
        xsnprintf(text,
                  CLUSTER("https://127.0.0.1:%u///", "    certificate-authority: certs/ca.crt\n")
                          CONTEXT USER("    tokenFile: token\n"),
                  kf->l.port);
        const char *path = write_file(kf->f, "kubeconfig-relative", text);
        write_file(kf->f, "token", "from-file\n");
        struct kube *k = NULL;
        char err[256] = "";
        assert_int_equal(kube_from_kubeconfig(path, &k, err, sizeof err), 0);
        char want[64];
        xsnprintf(want, "https://127.0.0.1:%u", kf->l.port);
        assert_string_equal(kube_server(k), want);

        /* The CA was read: the listener's certificate is trusted; the token
         * comes from the file, without its newline. */
        struct buf out;
        long status = 0;
        buf_init(&out, 4096);
        assert_int_equal(kube_get(k, "/api/v1/namespaces", 5000, &out, &status, err, sizeof err), 0);
        assert_int_equal(status, 200);
        struct listener_request rq = listener_request_at(&kf->l, 0);
        assert_string_equal(rq.authorization, "Bearer from-file");
        buf_free(&out);
        kube_free(k);

        /* The same CA as certificate-authority-data. */
        size_t ca_len;
        char *ca = slurp(path_in(kf->f, "ca.crt"), &ca_len);
        unsigned char b64[8192];
        int n = EVP_EncodeBlock(b64, (const unsigned char *)ca, (int)ca_len);
        free(ca);
        assert_true(n > 0);
        xsnprintf(text,
                  CLUSTER("https://127.0.0.1:%u", "    certificate-authority-data: %s\n")
                          CONTEXT USER("    token: data-token\n"),
                  kf->l.port, (const char *)b64);
        path = write_file(kf->f, "kubeconfig-data", text);
        assert_int_equal(kube_from_kubeconfig(path, &k, err, sizeof err), 0);
        buf_init(&out, 4096);
        assert_int_equal(kube_get(k, "/api/v1/namespaces", 5000, &out, &status, err, sizeof err), 0);
        assert_int_equal(status, 200);
        assert_string_equal(listener_request_at(&kf->l, 1).authorization, "Bearer data-token");
        buf_free(&out);
        kube_free(k);
}

/* KUBECONFIG with kubectl's list semantics: missing files skipped, the
 * first current-context, the first definition of each name, paths relative
 * to the file that defined the entry; --context. */
static void test_kubeconfig_list(void **state)
{
        struct kfix *kf = *state;
        char text[2048], sub[PATH_MAX], list[4 * PATH_MAX];
        xsnprintf(sub, "%s/second", kf->f->dir);
        assert_int_equal(mkdir(sub, 0700), 0);
        /* The first file: the current-context, a context naming what only
         * the second defines, and a user "u" shadowing the second's. */
        const char *first = write_file(kf->f, "first",
                                       "current-context: remote\n"
                                       "contexts:\n- name: remote\n  context: {cluster: c, user: u}\n"
                                       "- name: other\n  context: {cluster: c, user: v}\n"
                                       "users:\n- name: v\n  user: {token: from-first}\n");
        xsnprintf(text,
                  CLUSTER("https://127.0.0.1:%u",
                          "    certificate-authority: ca.crt\n") "contexts:\n- name: remote\n  context: {cluster: "
                                                                 "nowhere, user: nobody}\n"
                                                                 "current-context: ignored\n" USER(
                                                                         "    tokenFile: token\n"),
                  kf->l.port);
        char second[PATH_MAX], p[PATH_MAX];
        xsnprintf(second, "%s/kubeconfig", sub);
        write_text(second, text, strlen(text));
        xsnprintf(p, "%s/token", sub);
        write_text(p, "from-second\n", 12);
        size_t ca_len;
        char *ca = slurp(path_in(kf->f, "ca.crt"), &ca_len);
        xsnprintf(p, "%s/ca.crt", sub);
        write_text(p, ca, ca_len);
        free(ca);

        xsnprintf(list, "%s/missing::%s:%s", kf->f->dir, first, second);
        setenv("KUBECONFIG", list, 1);
        struct kube *k = NULL;
        char err[512] = "";
        struct buf out;
        long status = 0;
        buf_init(&out, 4096);
        assert_int_equal(kube_from_kubeconfig_context(NULL, NULL, &k, err, sizeof err), 0);
        assert_int_equal(kube_get(k, "/api/v1/namespaces", 5000, &out, &status, err, sizeof err), 0);
        assert_int_equal(status, 200);
        assert_string_equal(listener_request_at(&kf->l, 0).authorization, "Bearer from-second");
        kube_free(k);

        /* --context: the first file's user "v". */
        assert_int_equal(kube_from_kubeconfig_context(NULL, "other", &k, err, sizeof err), 0);
        buf_reset(&out);
        assert_int_equal(kube_get(k, "/api/v1/namespaces", 5000, &out, &status, err, sizeof err), 0);
        assert_string_equal(listener_request_at(&kf->l, 1).authorization, "Bearer from-first");
        kube_free(k);
        k = NULL;
        buf_free(&out);

        /* An unknown context lists those there are. */
        assert_int_equal(kube_from_kubeconfig_context(NULL, "prod", &k, err, sizeof err), -EINVAL);
        assert_contains(err, "no context \"prod\" in ");
        assert_contains(err, "(contexts: remote, other)");
        /* --kubeconfig FILE is that file alone: the second's "remote" names
         * what it does not define. */
        assert_int_equal(kube_from_kubeconfig_context(second, "remote", &k, err, sizeof err), -EINVAL);
        assert_contains(err, "names cluster \"nowhere\", which no file defines");

        /* Every file missing; a file that does not parse names itself. */
        xsnprintf(list, "%s/missing:%s/gone", kf->f->dir, kf->f->dir);
        setenv("KUBECONFIG", list, 1);
        assert_int_equal(kube_from_kubeconfig_context(NULL, NULL, &k, err, sizeof err), -ENOENT);
        assert_contains(err, ": none of its files exists");
        const char *bad = write_file(kf->f, "bad", "clusters: [\n");
        setenv("KUBECONFIG", bad, 1);
        assert_true(kube_from_kubeconfig_context(NULL, NULL, &k, err, sizeof err) < 0);
        assert_contains(err, bad);
        unsetenv("KUBECONFIG");
        assert_null(k);
}

/* Without KUBECONFIG: ~/.kube/config, or an error naming it. */
static void test_kubeconfig_home(void **state)
{
        struct kfix *kf = *state;
        char home[PATH_MAX], p[PATH_MAX], text[2048];
        const char *saved = getenv("HOME");
        char *saved_home = saved ? strdup(saved) : NULL;
        xsnprintf(home, "%s/home", kf->f->dir);
        assert_int_equal(mkdir(home, 0700), 0);
        unsetenv("KUBECONFIG");
        setenv("HOME", home, 1);
        struct kube *k = NULL;
        char err[512] = "";
        assert_int_equal(kube_from_kubeconfig_context(NULL, NULL, &k, err, sizeof err), -ENOENT);
        xsnprintf(p, "no kubeconfig: KUBECONFIG is not set and %s/.kube/config does not exist", home);
        assert_string_equal(err, p);

        xsnprintf(p, "%s/.kube", home);
        assert_int_equal(mkdir(p, 0700), 0);
        xsnprintf(text,
                  CLUSTER("https://127.0.0.1:%u", "    certificate-authority: %s\n") CONTEXT USER("    token: t\n"),
                  kf->l.port, path_in(kf->f, "ca.crt"));
        xsnprintf(p, "%s/.kube/config", home);
        write_text(p, text, strlen(text));
        setenv("KUBECONFIG", "", 1);   /* empty: as unset */
        assert_int_equal(kube_from_kubeconfig_context(NULL, NULL, &k, err, sizeof err), 0);
        xsnprintf(p, "https://127.0.0.1:%u", kf->l.port);
        assert_string_equal(kube_server(k), p);
        kube_free(k);
        unsetenv("KUBECONFIG");
        if (saved_home)
                setenv("HOME", saved_home, 1);
        free(saved_home);
}

/* A user whose credential comes from an exec plugin: run once for several
 * calls; a 401 runs it again and the GET is made again once with the new
 * token; a plugin that fails fails the call before anything is sent. */
static void test_exec_plugin(void **state)
{
        struct kfix *kf = *state;
        char text[4096], script[PATH_MAX];
        xsnprintf(script, "%s/bin", kf->f->dir);
        assert_int_equal(mkdir(script, 0700), 0);
        xsnprintf(script, "%s/bin/plugin", kf->f->dir);
        xsnprintf(text,
                  "#!/bin/sh\n"
                  "n=$(cat '%s/runs' 2>/dev/null || echo 0); n=$((n + 1)); echo $n > '%s/runs'\n"
                  "[ -e '%s/fail' ] && { echo \"login required ($MODE)\" >&2; exit 1; }\n"
                  "echo '{\"apiVersion\":\"" KUBECONFIG_EXEC_V1 "\",\"kind\":\"ExecCredential\","
                  "\"status\":{\"token\":\"exec-'$n'\"}}'\n",
                  kf->f->dir, kf->f->dir, kf->f->dir);
        write_text(script, text, strlen(text));
        assert_int_equal(chmod(script, 0755), 0);
        xsnprintf(text,
                  CLUSTER("https://127.0.0.1:%u", "    certificate-authority: %s\n") CONTEXT USER(
                          "    exec:\n      apiVersion: " KUBECONFIG_EXEC_V1 "\n      command: bin/plugin\n"
                          "      interactiveMode: Never\n      env: [{name: MODE, value: test}]\n"),
                  kf->l.port, path_in(kf->f, "ca.crt"));
        const char *path = write_file(kf->f, "kubeconfig-exec", text);
        struct kube *k = NULL;
        char err[512] = "";
        assert_int_equal(kube_from_kubeconfig(path, &k, err, sizeof err), 0);
        struct buf out;
        long status = 0;
        buf_init(&out, 4096);
        for (int i = 0; i < 2; i++) {
                buf_reset(&out);
                assert_int_equal(kube_get(k, "/api/v1/namespaces", 5000, &out, &status, err, sizeof err), 0);
                assert_int_equal(status, 200);
                assert_string_equal(listener_request_at(&kf->l, (unsigned)i).authorization, "Bearer exec-1");
        }
        /* exec-1 is refused from now on: one 401, a new run, the same GET again. */
        set_refuse_authorization("Bearer exec-1");
        buf_reset(&out);
        assert_int_equal(kube_get(k, "/api/v1/namespaces", 5000, &out, &status, err, sizeof err), 0);
        set_refuse_authorization(NULL);
        assert_int_equal(status, 200);
        assert_string_equal(out.data, "{\"kind\":\"NamespaceList\"}");   /* the 401's body is not kept */
        assert_int_equal(listener_requests(&kf->l), 4);
        assert_string_equal(listener_request_at(&kf->l, 2).authorization, "Bearer exec-1");
        assert_string_equal(listener_request_at(&kf->l, 3).authorization, "Bearer exec-2");

        /* Refused again: the plugin now fails, and says why. */
        set_refuse_authorization("Bearer exec-2");
        xsnprintf(text, "%s/fail", kf->f->dir);
        write_text(text, "", 0);
        buf_reset(&out);
        assert_int_equal(kube_get(k, "/api/v1/namespaces", 5000, &out, &status, err, sizeof err), -EIO);
        set_refuse_authorization(NULL);
        assert_contains(err, "bin/plugin\" failed with exit status 1: login required (test)");
        assert_int_equal(listener_requests(&kf->l), 5);
        buf_free(&out);
        kube_free(k);
}

/* ---- in cluster ---- */

static void test_in_cluster(void **state)
{
        struct kfix *kf = *state;
        char sa[PATH_MAX], p[PATH_MAX];
        xsnprintf(sa, "%s/sa", kf->f->dir);
        assert_int_equal(mkdir(sa, 0700), 0);
        struct kube *k = NULL;
        char err[256] = "";

        unsetenv("KUBERNETES_SERVICE_HOST");
        assert_int_equal(kube_in_cluster(sa, &k, err, sizeof err), -ENOENT);
        assert_contains(err, "KUBERNETES_SERVICE_HOST");
        assert_null(k);

        /* No CA in the directory. */
        setenv("KUBERNETES_SERVICE_HOST", "127.0.0.1", 1);
        char port[16];
        xsnprintf(port, "%u", kf->l.port);
        setenv("KUBERNETES_SERVICE_PORT", port, 1);
        assert_true(kube_in_cluster(sa, &k, err, sizeof err) < 0);
        assert_null(k);

        size_t ca_len;
        char *ca = slurp(path_in(kf->f, "ca.crt"), &ca_len);
        xsnprintf(p, "%s/ca.crt", sa);
        write_text(p, ca, ca_len);
        free(ca);
        xsnprintf(p, "%s/token", sa);
        write_text(p, "first\n", 6);
        assert_int_equal(kube_in_cluster(sa, &k, err, sizeof err), 0);
        char want[64];
        xsnprintf(want, "https://127.0.0.1:%u", kf->l.port);
        assert_string_equal(kube_server(k), want);

        /* The token is read at every call: a rotated one is used at once. */
        struct buf out;
        long status = 0;
        buf_init(&out, 4096);
        assert_int_equal(kube_get(k, "/api/v1/namespaces", 5000, &out, &status, err, sizeof err), 0);
        write_text(p, "second \r\n", 9);
        buf_reset(&out);
        assert_int_equal(kube_get(k, "/api/v1/namespaces", 5000, &out, &status, err, sizeof err), 0);
        assert_string_equal(listener_request_at(&kf->l, 0).authorization, "Bearer first");
        assert_string_equal(listener_request_at(&kf->l, 1).authorization, "Bearer second");
        /* A token file gone: the call fails before anything is sent. */
        assert_int_equal(unlink(p), 0);
        buf_reset(&out);
        assert_true(kube_get(k, "/api/v1/namespaces", 5000, &out, &status, err, sizeof err) < 0);
        assert_int_equal(listener_requests(&kf->l), 2);
        buf_free(&out);
        kube_free(k);

        /* An IPv6 service host is bracketed; no port means 443. */
        setenv("KUBERNETES_SERVICE_HOST", "fd00::1", 1);
        unsetenv("KUBERNETES_SERVICE_PORT");
        assert_int_equal(kube_in_cluster(sa, &k, err, sizeof err), 0);
        assert_string_equal(kube_server(k), "https://[fd00::1]:443");
        kube_free(k);
        unsetenv("KUBERNETES_SERVICE_HOST");
}

/* ---- GET ---- */

static void test_get_request_shape(void **state)
{
        struct kfix *kf = *state;
        struct buf path, out;
        long status = 0;
        char err[256] = "";
        buf_init(&path, 1024);
        buf_init(&out, WH_KUBE_MAX_RESPONSE_BYTES);
        assert_int_equal(buf_printf(&path, "/api/v1/namespaces?limit=%u&continue=", WH_KUBE_LIST_PAGE), 0);
        assert_int_equal(kube_put_query_value(&path, "a b/c=="), 0);
        set_next((struct listener_answer){ .status = 200, .body = "{\"items\":[]}" });
        assert_int_equal(kube_get(kf->k, path.data, 5000, &out, &status, err, sizeof err), 0);
        assert_int_equal(status, 200);
        assert_int_equal(out.len, strlen("{\"items\":[]}"));
        assert_memory_equal(out.data, "{\"items\":[]}", out.len);

        assert_int_equal(listener_requests(&kf->l), 1);
        struct listener_request rq = listener_request_at(&kf->l, 0);
        assert_string_equal(rq.method, "GET");
        assert_string_equal(rq.target, "/api/v1/namespaces?limit=500&continue=a%20b%2Fc%3D%3D");
        assert_string_equal(rq.authorization, "Bearer " TOKEN);
        assert_string_equal(rq.accept, "application/json");
        assert_string_equal(rq.user_agent, "spark-identity-webhook/" WH_VERSION);
        buf_free(&path);
        buf_free(&out);
}

/* Any status is an answer: the caller judges it. */
static void test_get_any_status(void **state)
{
        struct kfix *kf = *state;
        static const int statuses[] = { 404, 403, 410, 500 };
        for (size_t i = 0; i < sizeof statuses / sizeof *statuses; i++) {
                struct buf out;
                long status = 0;
                char err[256] = "";
                buf_init(&out, 4096);
                set_next((struct listener_answer){ .status = statuses[i], .body = "{\"kind\":\"Status\"}" });
                assert_int_equal(kube_get(kf->k, "/api/v1/namespaces/x", 5000, &out, &status, err, sizeof err), 0);
                assert_int_equal(status, statuses[i]);
                assert_int_equal(out.len, strlen("{\"kind\":\"Status\"}"));
                buf_free(&out);
        }
}

/* An answer past out's max: -E2BIG, the status that came, and the head of
 * the answer kept (whole pieces as curl hands them over, so up to one
 * CURL_MAX_WRITE_SIZE short of the max). */
#define ANSWER_MAX (64u * 1024u)
static void test_get_answer_bound(void **state)
{
        struct kfix *kf = *state;
        size_t len = 4 * ANSWER_MAX;
        for (size_t i = 0; i < len; i++)
                big_body[i] = (char)('a' + i % 26);
        set_next((struct listener_answer){ .status = 200, .body = big_body, .len = len });
        struct buf out;
        long status = 0;
        char err[256] = "";
        buf_init(&out, ANSWER_MAX);
        assert_int_equal(kube_get(kf->k, "/api/v1/namespaces", 5000, &out, &status, err, sizeof err), -E2BIG);
        assert_int_equal(status, 200);
        assert_true(out.len <= ANSWER_MAX);
        assert_true(out.len + CURL_MAX_WRITE_SIZE > ANSWER_MAX);
        assert_memory_equal(out.data, big_body, out.len);
        char want[64];
        xsnprintf(want, "the answer is larger than %u bytes", ANSWER_MAX);
        assert_contains(err, want);
        buf_free(&out);

        /* Exactly the max fits. */
        set_next((struct listener_answer){ .status = 200, .body = big_body, .len = ANSWER_MAX });
        buf_init(&out, ANSWER_MAX);
        assert_int_equal(kube_get(kf->k, "/api/v1/namespaces", 5000, &out, &status, err, sizeof err), 0);
        assert_int_equal(out.len, ANSWER_MAX);
        buf_free(&out);
}

/* A path too long for a URL: -E2BIG before anything is sent, status untouched. */
static void test_get_path_bound(void **state)
{
        struct kfix *kf = *state;
        char *path = malloc(8192);
        assert_non_null(path);
        memset(path, 'a', 8191);
        path[0] = '/';
        path[8191] = '\0';
        struct buf out;
        long status = -7;
        char err[256] = "";
        buf_init(&out, 1000);
        assert_int_equal(kube_get(kf->k, path, 5000, &out, &status, err, sizeof err), -E2BIG);
        assert_int_equal(status, -7);
        assert_contains(err, "too long");
        assert_int_equal(listener_requests(&kf->l), 0);
        buf_free(&out);
        free(path);
}

static void test_get_timeout(void **state)
{
        struct kfix *kf = *state;
        set_next((struct listener_answer){ .status = 200, .body = "{}", .delay_ms = 1500 });
        struct buf out;
        long status = 0;
        char err[256] = "";
        buf_init(&out, 1000);
        assert_int_equal(kube_get(kf->k, "/api/v1/namespaces", 200, &out, &status, err, sizeof err), -ETIMEDOUT);
        assert_true(err[0] != '\0');
        buf_free(&out);
}

/* ---- writes ---- */

/* POST, PUT and DELETE: the method on the request line, the body whole
 * (larger than libcurl's upload piece), its Content-Type, no Expect, and
 * the answer and status back. A body-less DELETE sends no Content-Type. */
static void test_request_methods_and_bodies(void **state)
{
        struct kfix *kf = *state;
        static const char *const methods[] = { "POST", "PUT", "DELETE", "PATCH" };
        char *body = malloc(6000);
        assert_non_null(body);
        for (size_t i = 0; i < 6000; i++)
                body[i] = (char)('a' + i % 26);
        for (size_t i = 0; i < sizeof methods / sizeof *methods; i++) {
                struct buf out;
                long status = 0;
                char err[256] = "";
                buf_init(&out, 4096);
                struct kube_body kb = { .data = body, .len = 6000 };
                if (i == 3)
                        kb.content_type = "application/merge-patch+json";
                set_next((struct listener_answer){ .status = 200 + (int)i, .body = "{\"kind\":\"PolicyReport\"}" });
                assert_int_equal(kube_request(kf->k, methods[i], "/apis/g/v1/namespaces/a/things", &kb, 5000, &out,
                                              &status, err, sizeof err),
                                 0);
                assert_int_equal(status, 200 + (int)i);
                assert_int_equal(out.len, strlen("{\"kind\":\"PolicyReport\"}"));
                struct listener_request rq = listener_request_at(&kf->l, (unsigned)i);
                assert_string_equal(rq.method, methods[i]);
                assert_string_equal(rq.target, "/apis/g/v1/namespaces/a/things");
                assert_string_equal(rq.authorization, "Bearer " TOKEN);
                assert_string_equal(rq.content_type, i == 3 ? "application/merge-patch+json" : "application/json");
                assert_string_equal(rq.expect, "");
                assert_int_equal(rq.body_len, 6000);
                assert_memory_equal(rq.body, body, 6000);
                buf_free(&out);
        }
        struct buf out;
        long status = 0;
        char err[256] = "";
        buf_init(&out, 4096);
        set_next((struct listener_answer){ .status = 200, .body = "{}" });
        assert_int_equal(kube_request(kf->k, "DELETE", "/apis/g/v1/namespaces/a/things/x", NULL, 5000, &out, &status,
                                      err, sizeof err),
                         0);
        struct listener_request rq = listener_request_at(&kf->l, 4);
        assert_string_equal(rq.method, "DELETE");
        assert_string_equal(rq.content_type, "");
        assert_int_equal(rq.body_len, 0);
        buf_free(&out);
        free(body);
}

/* Bounded as kube_get() is: a body past WH_KUBE_MAX_REQUEST_BYTES is not
 * sent; an answer past out's max is -E2BIG with the status; a slow answer
 * times out; any status is an answer. */
static void test_request_bounds(void **state)
{
        struct kfix *kf = *state;
        struct buf out;
        long status = -7;
        char err[256] = "";
        struct kube_body kb = { .data = big_body, .len = WH_KUBE_MAX_REQUEST_BYTES + 1u };
        buf_init(&out, 4096);
        assert_int_equal(kube_request(kf->k, "POST", "/x", &kb, 5000, &out, &status, err, sizeof err), -E2BIG);
        assert_int_equal(status, -7);
        assert_contains(err, "the request body passes");
        assert_int_equal(listener_requests(&kf->l), 0);

        for (size_t i = 0; i < 4 * ANSWER_MAX; i++)
                big_body[i] = (char)('a' + i % 26);
        set_next((struct listener_answer){ .status = 409, .body = big_body, .len = 4 * ANSWER_MAX });
        kb.len = 10;
        buf_free(&out);
        buf_init(&out, ANSWER_MAX);
        assert_int_equal(kube_request(kf->k, "PUT", "/x", &kb, 5000, &out, &status, err, sizeof err), -E2BIG);
        assert_int_equal(status, 409);
        assert_contains(err, "PUT ");
        assert_contains(err, "the answer is larger than");

        set_next((struct listener_answer){ .status = 200, .body = "{}", .delay_ms = 1500 });
        buf_reset(&out);
        assert_int_equal(kube_request(kf->k, "POST", "/x", &kb, 200, &out, &status, err, sizeof err), -ETIMEDOUT);

        set_next((struct listener_answer){ .status = 403, .body = "{\"kind\":\"Status\"}" });
        buf_reset(&out);
        assert_int_equal(kube_request(kf->k, "POST", "/x", &kb, 5000, &out, &status, err, sizeof err), 0);
        assert_int_equal(status, 403);
        buf_free(&out);
}

/* A server whose certificate does not chain to the configured CA, and a
 * port nobody listens on: -EIO with the reason. */
static void test_get_untrusted_and_refused(void **state)
{
        struct kfix *kf = *state;
        char other_ca[PATH_MAX], other_key[PATH_MAX];
        xsnprintf(other_ca, "%s/other-ca.crt", kf->f->dir);
        xsnprintf(other_key, "%s/other-ca.key", kf->f->dir);
        EVP_PKEY *key = new_ec_key();
        time_t now = time(NULL);
        write_selfsigned(other_ca, other_key, key, now - DAY_S, now + DAY_S, false);
        EVP_PKEY_free(key);
        const char *kc = listener_kubeconfig(kf->f->dir, kf->l.port, other_ca, TOKEN);
        struct kube *k = NULL;
        char err[256] = "";
        assert_int_equal(kube_from_kubeconfig(kc, &k, err, sizeof err), 0);
        struct buf out;
        long status = 0;
        buf_init(&out, 1000);
        assert_int_equal(kube_get(k, "/api/v1/namespaces", 5000, &out, &status, err, sizeof err), -EIO);
        assert_true(err[0] != '\0');
        assert_int_equal(listener_requests(&kf->l), 0);   /* nothing reached the handler */
        kube_free(k);

        /* A port that refuses: bind one, close it, use it. */
        int fd = socket(AF_INET, SOCK_STREAM, 0);
        struct sockaddr_in a = { .sin_family = AF_INET };
        a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        socklen_t alen = sizeof a;
        assert_int_equal(bind(fd, (struct sockaddr *)&a, sizeof a), 0);
        assert_int_equal(getsockname(fd, (struct sockaddr *)&a, &alen), 0);
        close(fd);
        kc = listener_kubeconfig(kf->f->dir, ntohs(a.sin_port), path_in(kf->f, "ca.crt"), TOKEN);
        assert_int_equal(kube_from_kubeconfig(kc, &k, err, sizeof err), 0);
        buf_reset(&out);
        assert_int_equal(kube_get(k, "/api/v1/namespaces", 5000, &out, &status, err, sizeof err), -EIO);
        assert_contains(err, "https://127.0.0.1:");
        kube_free(k);
        buf_free(&out);
}

/* ---- streamed GET ---- */

struct lines {
        char text[16][128];
        size_t n;
        int stop_with;      /* returned at line `stop_at` (1-based), 0: never */
        size_t stop_at;
};

static int on_line(void *ctx, const char *line, size_t len)
{
        struct lines *ls = ctx;
        if (ls->n < 16)
                snprintf(ls->text[ls->n], sizeof ls->text[0], "%.*s", (int)len, line);
        ls->n++;
        return ls->stop_at && ls->n == ls->stop_at ? ls->stop_with : 0;
}

static void test_stream_lines(void **state)
{
        struct kfix *kf = *state;
        /* Empty lines are skipped; the last line may lack its newline. */
        set_next((struct listener_answer){ .status = 200,
                                           .body = "{\"type\":\"ADDED\"}\n\n{\"type\":\"MODIFIED\"}\n"
                                                   "{\"type\":\"DELETED\"}" });
        struct lines ls = { 0 };
        long status = 0;
        char err[256] = "";
        atomic_bool stop = false;
        assert_int_equal(
                kube_stream(kf->k, "/api/v1/namespaces?watch=1", on_line, &ls, &stop, &status, err, sizeof err), 0);
        assert_int_equal(status, 200);
        assert_int_equal(ls.n, 3);
        assert_string_equal(ls.text[0], "{\"type\":\"ADDED\"}");
        assert_string_equal(ls.text[1], "{\"type\":\"MODIFIED\"}");
        assert_string_equal(ls.text[2], "{\"type\":\"DELETED\"}");
        struct listener_request rq = listener_request_at(&kf->l, 0);
        assert_string_equal(rq.target, "/api/v1/namespaces?watch=1");
        assert_string_equal(rq.authorization, "Bearer " TOKEN);

        /* on_line() stops the stream with its answer. */
        struct lines stopper = { .stop_at = 2, .stop_with = 42 };
        assert_int_equal(
                kube_stream(kf->k, "/api/v1/namespaces?watch=1", on_line, &stopper, &stop, &status, err, sizeof err),
                42);
        assert_int_equal(stopper.n, 2);

        /* A line past WH_KUBE_MAX_EVENT_BYTES fails the call. */
        memset(big_body, 'x', sizeof big_body);
        set_next((struct listener_answer){ .status = 200, .body = big_body, .len = WH_KUBE_MAX_EVENT_BYTES + 1 });
        struct lines none = { 0 };
        assert_int_equal(
                kube_stream(kf->k, "/api/v1/namespaces?watch=1", on_line, &none, &stop, &status, err, sizeof err),
                -E2BIG);
        assert_int_equal(none.n, 0);
        assert_contains(err, "larger than");
}

struct stopper_arg {
        struct listener *l;
        atomic_bool *stop;
};

static void *stop_when_streaming(void *arg)
{
        struct stopper_arg *s = arg;
        listener_wait_for(s->l, &s->l->n_streams, 1);
        listener_push(s->l, "{\"type\":\"BOOKMARK\"}");
        listener_sleep_ms(100);
        atomic_store(s->stop, true);
        return NULL;
}

/* A stream the server keeps open ends when *stop turns true. */
static void test_stream_stop(void **state)
{
        struct kfix *kf = *state;
        set_next((struct listener_answer){ .status = 200, .body = "", .stream = true });
        atomic_bool stop = false;
        struct stopper_arg sa = { &kf->l, &stop };
        pthread_t t;
        assert_int_equal(pthread_create(&t, NULL, stop_when_streaming, &sa), 0);
        struct lines ls = { 0 };
        long status = 0;
        char err[256] = "";
        int r = kube_stream(kf->k, "/api/v1/namespaces?watch=1", on_line, &ls, &stop, &status, err, sizeof err);
        pthread_join(t, NULL);
        assert_int_equal(r, -ECANCELED);
        assert_int_equal(ls.n, 1);
        assert_string_equal(ls.text[0], "{\"type\":\"BOOKMARK\"}");
}

int main(void)
{
        assert_int_equal(kube_global_init(), 0);
#define T(fn) cmocka_unit_test_setup_teardown(fn, kube_setup, kube_teardown)
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_put_query_value),
                cmocka_unit_test(test_put_query_value_bounded),
                T(test_kubeconfig_refusals),
                T(test_kubeconfig_paths_and_data),
                T(test_kubeconfig_list),
                T(test_kubeconfig_home),
                T(test_exec_plugin),
                T(test_in_cluster),
                T(test_get_request_shape),
                T(test_get_any_status),
                T(test_get_answer_bound),
                T(test_get_path_bound),
                T(test_get_timeout),
                T(test_get_untrusted_and_refused),
                T(test_request_methods_and_bodies),
                T(test_request_bounds),
                T(test_stream_lines),
                T(test_stream_stop),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
