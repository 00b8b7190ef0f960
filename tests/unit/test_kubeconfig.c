/* Unit tests for webhook/core/kubeconfig.c: kubeconfig files merged as
 * kubectl merges a KUBECONFIG list, the context chosen, an exec map
 * checked, the ExecCredential request written and the plugin's answer
 * read, RFC 3339 times. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "doc.h"
#include "kubeconfig.h"

#define assert_contains(s, sub)                                                 \
        do {                                                                    \
                if (!strstr((s), (sub)))                                        \
                        fail_msg("\"%s\" does not contain \"%s\"", (s), (sub)); \
        } while (0)

#define MAX_DOCS 4

/* Parsed files for one case. */
struct files {
        struct doc *docs[MAX_DOCS];
        struct kubeconfig_file f[MAX_DOCS];
        size_t n;
};

static void add(struct files *fs, const char *path, const char *yaml)
{
        char err[256] = "";
        assert_true(fs->n < MAX_DOCS);
        if (doc_parse(yaml, strlen(yaml), &fs->docs[fs->n], err, sizeof err) != 0)
                fail_msg("%s: %s", path, err);
        fs->f[fs->n] = (struct kubeconfig_file){ .path = path, .root = doc_root(fs->docs[fs->n]) };
        fs->n++;
}

static void release(struct files *fs)
{
        for (size_t i = 0; i < fs->n; i++)
                doc_free(fs->docs[i]);
        fs->n = 0;
}

/* The first file: a current-context "a" of cluster "shared" and user "ua",
 * and a context "b" whose user only the second file defines. */
static const char FIRST[] = "apiVersion: v1\nkind: Config\ncurrent-context: a\n"
                            "clusters:\n- name: shared\n  cluster: {server: 'https://first:6443'}\n"
                            "contexts:\n- name: a\n  context: {cluster: shared, user: ua}\n"
                            "- name: b\n  context: {cluster: other, user: ub}\n"
                            "users:\n- name: ua\n  user: {token: first-a}\n";
/* The second: its own current-context "c" (ignored: the first file sets one),
 * "shared" again (ignored: the first file defines it), "other", "ub", and a
 * context "a" again (ignored). */
static const char SECOND[] = "current-context: c\n"
                             "clusters:\n- name: shared\n  cluster: {server: 'https://second:6443'}\n"
                             "- name: other\n  cluster: {server: 'https://other:6443'}\n"
                             "contexts:\n- name: a\n  context: {cluster: other, user: ub}\n"
                             "- name: c\n  context: {cluster: other, user: ub}\n"
                             "users:\n- name: ua\n  user: {token: second-a}\n- name: ub\n  user: {token: second-b}\n";

static const char *server_of(const struct kubeconfig_choice *c)
{
        return cJSON_GetObjectItemCaseSensitive(c->cluster, "server")->valuestring;
}

static const char *token_of(const struct kubeconfig_choice *c)
{
        return cJSON_GetObjectItemCaseSensitive(c->user, "token")->valuestring;
}

/* The first file that sets current-context gives it; the first file that
 * defines a name gives that entry, and its index. */
static void test_merge_first_wins(void **state)
{
        struct files fs = { 0 };
        struct kubeconfig_choice c;
        char err[512] = "";
        add(&fs, "/k/first", FIRST);
        add(&fs, "/k/second", SECOND);
        assert_int_equal(kubeconfig_choose(fs.f, fs.n, NULL, &c, err, sizeof err), 0);
        assert_string_equal(c.context, "a");
        assert_string_equal(server_of(&c), "https://first:6443");
        assert_string_equal(token_of(&c), "first-a");
        assert_int_equal(c.cluster_file, 0);
        assert_int_equal(c.user_file, 0);

        /* A context of the first file naming a cluster and user of the second. */
        assert_int_equal(kubeconfig_choose(fs.f, fs.n, "b", &c, err, sizeof err), 0);
        assert_string_equal(server_of(&c), "https://other:6443");
        assert_string_equal(token_of(&c), "second-b");
        assert_int_equal(c.cluster_file, 1);
        assert_int_equal(c.user_file, 1);

        /* A context only the second file defines uses the first's "shared"
         * only when it names it: "c" names "other". */
        assert_int_equal(kubeconfig_choose(fs.f, fs.n, "c", &c, err, sizeof err), 0);
        assert_string_equal(server_of(&c), "https://other:6443");
        release(&fs);

        /* The other order: the second's current-context "c" and its entries. */
        add(&fs, "/k/second", SECOND);
        add(&fs, "/k/first", FIRST);
        assert_int_equal(kubeconfig_choose(fs.f, fs.n, NULL, &c, err, sizeof err), 0);
        assert_string_equal(c.context, "c");
        assert_int_equal(kubeconfig_choose(fs.f, fs.n, "a", &c, err, sizeof err), 0);
        assert_string_equal(server_of(&c), "https://other:6443");   /* the second's "a" */
        assert_string_equal(token_of(&c), "second-b");
        release(&fs);
}

/* A file without current-context does not hide a later one's. */
static void test_current_context_from_a_later_file(void **state)
{
        struct files fs = { 0 };
        struct kubeconfig_choice c;
        char err[512] = "";
        add(&fs, "/k/empty", "apiVersion: v1\nkind: Config\n");
        add(&fs, "/k/second", SECOND);
        assert_int_equal(kubeconfig_choose(fs.f, fs.n, NULL, &c, err, sizeof err), 0);
        assert_string_equal(c.context, "c");
        assert_int_equal(c.cluster_file, 1);
        release(&fs);
}

/* The errors name the files and list the contexts there are, each once. */
static void test_context_errors(void **state)
{
        struct files fs = { 0 };
        struct kubeconfig_choice c;
        char err[512] = "";
        add(&fs, "/k/first", FIRST);
        add(&fs, "/k/second", SECOND);
        assert_int_equal(kubeconfig_choose(fs.f, fs.n, "prod", &c, err, sizeof err), -EINVAL);
        assert_string_equal(err, "no context \"prod\" in /k/first and /k/second (contexts: a, b, c)");
        release(&fs);

        add(&fs, "/k/none", "clusters: []\n");
        assert_int_equal(kubeconfig_choose(fs.f, fs.n, NULL, &c, err, sizeof err), -EINVAL);
        assert_string_equal(err, "no current-context in /k/none: give --context (no file defines a context)");
        release(&fs);

        add(&fs, "/k/bad", "current-context: x\ncontexts:\n- name: x\n  context: {cluster: gone, user: u}\n");
        assert_int_equal(kubeconfig_choose(fs.f, fs.n, NULL, &c, err, sizeof err), -EINVAL);
        assert_string_equal(err, "/k/bad: context \"x\" names cluster \"gone\", which no file defines");
        release(&fs);

        add(&fs, "/k/bad",
            "current-context: x\nclusters:\n- name: c\n  cluster: {server: 'https://h'}\n"
            "contexts:\n- name: x\n  context: {cluster: c, user: gone}\n");
        assert_int_equal(kubeconfig_choose(fs.f, fs.n, NULL, &c, err, sizeof err), -EINVAL);
        assert_string_equal(err, "/k/bad: context \"x\" names user \"gone\", which no file defines");
        release(&fs);

        /* No user at all: chosen, with no user map (the caller refuses it). */
        add(&fs, "/k/anon",
            "current-context: x\nclusters:\n- name: c\n  cluster: {server: 'https://h'}\n"
            "contexts:\n- name: x\n  context: {cluster: c}\n");
        assert_int_equal(kubeconfig_choose(fs.f, fs.n, NULL, &c, err, sizeof err), 0);
        assert_null(c.user);
        release(&fs);

        add(&fs, "/k/first", FIRST);
        add(&fs, "/k/cur", "current-context: nowhere\n");
        assert_int_equal(kubeconfig_choose(fs.f + 1, 1, NULL, &c, err, sizeof err), -EINVAL);
        assert_string_equal(err, "no context \"nowhere\" (the current-context) in /k/cur (no file defines a context)");
        release(&fs);
}

/* ---- exec ---- */

static const cJSON *exec_of(struct files *fs, const char *yaml)
{
        add(fs, "/k/exec", yaml);
        return cJSON_GetObjectItemCaseSensitive(fs->f[fs->n - 1].root, "exec");
}

/* What `az aks get-credentials` and kubelogin write. */
static void test_exec_parse_kubelogin(void **state)
{
        struct files fs = { 0 };
        struct kubeconfig_exec x;
        char err[512] = "";
        const cJSON *e = exec_of(&fs, "exec:\n"
                                      "  apiVersion: client.authentication.k8s.io/v1beta1\n"
                                      "  args: [get-token, --login, azurecli, --server-id, 6dae42f8-4368]\n"
                                      "  command: kubelogin\n"
                                      "  env: null\n"
                                      "  installHint: |\n    kubelogin is not installed\n"
                                      "  provideClusterInfo: false\n");
        assert_int_equal(kubeconfig_exec_parse(e, &x, err, sizeof err), 0);
        assert_string_equal(x.api_version, KUBECONFIG_EXEC_V1BETA1);
        assert_string_equal(x.command, "kubelogin");
        assert_int_equal(x.n_args, 5);
        assert_string_equal(x.args[0], "get-token");
        assert_string_equal(x.args[4], "6dae42f8-4368");
        assert_int_equal(x.n_env, 0);
        assert_string_equal(x.install_hint, "kubelogin is not installed\n");
        assert_false(x.provide_cluster_info);
        release(&fs);

        e = exec_of(&fs, "exec:\n  apiVersion: client.authentication.k8s.io/v1\n  command: ./bin/get-token\n"
                         "  interactiveMode: Never\n  provideClusterInfo: true\n"
                         "  env:\n  - {name: A, value: '1'}\n  - {name: B, value: ''}\n");
        assert_int_equal(kubeconfig_exec_parse(e, &x, err, sizeof err), 0);
        assert_int_equal(x.n_env, 2);
        assert_string_equal(x.env_names[1], "B");
        assert_string_equal(x.env_values[1], "");
        assert_true(x.provide_cluster_info);

        struct buf req;
        buf_init(&req, 4096);
        assert_int_equal(kubeconfig_exec_request(&x, "https://h:6443", "Q0E=", &req), 0);
        assert_string_equal(req.data, "{\"apiVersion\":\"client.authentication.k8s.io/v1\",\"kind\":\"ExecCredential\","
                                      "\"spec\":{\"cluster\":{\"server\":\"https://h:6443\","
                                      "\"certificate-authority-data\":\"Q0E=\"},\"interactive\":false}}");
        x.provide_cluster_info = false;
        buf_reset(&req);
        assert_int_equal(kubeconfig_exec_request(&x, "https://h:6443", "Q0E=", &req), 0);
        assert_string_equal(req.data, "{\"apiVersion\":\"client.authentication.k8s.io/v1\",\"kind\":\"ExecCredential\","
                                      "\"spec\":{\"interactive\":false}}");
        buf_free(&req);
        release(&fs);
}

static void test_exec_parse_refusals(void **state)
{
        static const struct {
                const char *yaml, *message;
        } cases[] = {
                { "exec: kubelogin\n", "exec must be a map" },
                { "exec: {command: x}\n", "exec.apiVersion must be client.authentication.k8s.io/v1 or" },
                { "exec: {apiVersion: client.authentication.k8s.io/v1alpha1, command: x}\n", "v1alpha1 is gone" },
                { "exec: {apiVersion: client.authentication.k8s.io/v1}\n", "exec.command is missing" },
                { "exec: {apiVersion: client.authentication.k8s.io/v1, command: x, interactiveMode: Always}\n",
                  "never gives it one" },
                { "exec: {apiVersion: client.authentication.k8s.io/v1, command: x, interactiveMode: Sometimes}\n",
                  "must be Never, IfAvailable or Always, not \"Sometimes\"" },
                { "exec: {apiVersion: client.authentication.k8s.io/v1, command: x, args: [a, 1]}\n",
                  "exec.args must be a list of strings" },
                { "exec: {apiVersion: client.authentication.k8s.io/v1, command: x, args: a}\n",
                  "exec.args must be a list of strings" },
                { "exec: {apiVersion: client.authentication.k8s.io/v1, command: x, env: [{name: 'A=B', value: c}]}\n",
                  "exec.env: each entry needs a name" },
                { "exec: {apiVersion: client.authentication.k8s.io/v1, command: x, env: [{name: A}]}\n",
                  "exec.env: each entry needs a name" },
                { "exec: {apiVersion: client.authentication.k8s.io/v1, command: x, env: {A: b}}\n",
                  "exec.env must be a list" },
        };
        for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
                struct files fs = { 0 };
                struct kubeconfig_exec x;
                char err[512] = "";
                const cJSON *e = exec_of(&fs, cases[i].yaml);
                if (kubeconfig_exec_parse(e, &x, err, sizeof err) != -EINVAL)
                        fail_msg("case %zu accepted", i);
                assert_contains(err, cases[i].message);
                release(&fs);
        }
        /* More args than the bound. */
        char yaml[4096] = "exec: {apiVersion: client.authentication.k8s.io/v1, command: x, args: [";
        for (unsigned i = 0; i <= WH_EXEC_MAX_ARGS; i++)
                strcat(yaml, i ? ", a" : "a");
        strcat(yaml, "]}\n");
        struct files fs = { 0 };
        struct kubeconfig_exec x;
        char err[512] = "";
        assert_int_equal(kubeconfig_exec_parse(exec_of(&fs, yaml), &x, err, sizeof err), -EINVAL);
        assert_contains(err, "exec.args: more than");
        release(&fs);
}

/* ---- the answer ---- */

#define V1 "client.authentication.k8s.io/v1"

static int answer(const char *json, struct kubeconfig_exec_answer *a, char *err, size_t errlen)
{
        return kubeconfig_exec_answer(json, strlen(json), V1, a, err, errlen);
}

static void test_exec_answer(void **state)
{
        struct kubeconfig_exec_answer a;
        char err[512] = "";
        assert_int_equal(answer("{\"apiVersion\":\"" V1 "\",\"kind\":\"ExecCredential\","
                                "\"status\":{\"token\":\"tok\"}}\n",
                                &a, err, sizeof err),
                         0);
        assert_string_equal(a.token, "tok");
        assert_null(a.cert);
        assert_false(a.expires);
        kubeconfig_exec_answer_free(&a);

        assert_int_equal(answer("{\"apiVersion\":\"" V1 "\",\"kind\":\"ExecCredential\",\"status\":{"
                                "\"clientCertificateData\":\"-----BEGIN CERTIFICATE-----\\n\","
                                "\"clientKeyData\":\"-----BEGIN PRIVATE KEY-----\\n\","
                                "\"expirationTimestamp\":\"2026-12-05T11:30:00Z\"}}",
                                &a, err, sizeof err),
                         0);
        assert_null(a.token);
        assert_string_equal(a.cert, "-----BEGIN CERTIFICATE-----\n");
        assert_string_equal(a.key, "-----BEGIN PRIVATE KEY-----\n");
        assert_true(a.expires);
        assert_int_equal(a.expiry, 1796470200LL);
        kubeconfig_exec_answer_free(&a);
        assert_null(a.token);

        static const struct {
                const char *json, *message;
        } bad[] = {
                { "token", "not a JSON ExecCredential" },
                { "{\"apiVersion\":\"" KUBECONFIG_EXEC_V1BETA1
                  "\",\"kind\":\"ExecCredential\",\"status\":{\"token\":\"t\"}}",
                  "not the ExecCredential client.authentication.k8s.io/v1 it was asked for" },
                { "{\"apiVersion\":\"" V1 "\",\"kind\":\"Secret\",\"status\":{\"token\":\"t\"}}",
                  "it answered Secret" },
                { "{\"apiVersion\":\"" V1 "\",\"kind\":\"ExecCredential\"}", "has neither status.token nor" },
                { "{\"apiVersion\":\"" V1 "\",\"kind\":\"ExecCredential\",\"status\":{\"token\":\"\"}}",
                  "has neither status.token nor" },
                { "{\"apiVersion\":\"" V1 "\",\"kind\":\"ExecCredential\",\"status\":{\"clientKeyData\":\"k\"}}",
                  "has clientKeyData without clientCertificateData" },
                { "{\"apiVersion\":\"" V1 "\",\"kind\":\"ExecCredential\",\"status\":{\"token\":\"secret-tok\","
                  "\"expirationTimestamp\":\"tomorrow\"}}",
                  "expirationTimestamp is not an RFC 3339 time" },
        };
        for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
                struct kubeconfig_exec_answer none = { 0 };
                if (answer(bad[i].json, &none, err, sizeof err) != -EINVAL)
                        fail_msg("case %zu accepted", i);
                assert_contains(err, bad[i].message);
                assert_null(strstr(err, "secret-tok"));   /* never quoted: it is a secret */
                assert_null(none.token);
        }
}

static void test_rfc3339(void **state)
{
        static const struct {
                const char *s;
                long long want;
        } good[] = {
                { "1970-01-01T00:00:00Z", 0 },
                { "2026-12-05T11:30:00Z", 1796470200LL },
                { "2026-12-05t11:30:00z", 1796470200LL },
                { "2026-12-05T12:30:00+01:00", 1796470200LL },
                { "2026-12-05T11:00:00-00:30", 1796470200LL },
                { "2026-12-05T11:30:00.123456789Z", 1796470200LL },
                { "2024-02-29T00:00:00Z", 1709164800LL },
        };
        for (size_t i = 0; i < sizeof good / sizeof *good; i++) {
                long long v = -1;
                if (kubeconfig_rfc3339(good[i].s, &v) != 0 || v != good[i].want)
                        fail_msg("%s: %lld", good[i].s, v);
        }
        static const char *const bad[] = {
                "",
                "2026-12-05",
                "2026-12-05T11:30Z",
                "2026-12-05 11:30:00Z",
                "2026-13-05T11:30:00Z",
                "2026-12-32T11:30:00Z",
                "2026-12-05T24:00:00Z",
                "2026-12-05T11:30:00",
                "2026-12-05T11:30:00.Z",
                "2026-12-05T11:30:00+0100",
                "2026-12-05T11:30:00Zjunk",
                /* Cut anywhere: never read past the end. */
                "2",
                "2026",
                "2026-",
                "2026-1",
                "2026-12-05T",
                "2026-12-05T11:",
                "2026-12-05T11:30:0",
                "2026-12-05T11:30:00+",
                "2026-12-05T11:30:00+01",
                "2026-12-05T11:30:00+01:",
        };
        for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
                long long v = 0;
                if (kubeconfig_rfc3339(bad[i], &v) != -EINVAL)
                        fail_msg("\"%s\" accepted", bad[i]);
        }
}

int main(void)
{
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_merge_first_wins),
                cmocka_unit_test(test_current_context_from_a_later_file),
                cmocka_unit_test(test_context_errors),
                cmocka_unit_test(test_exec_parse_kubelogin),
                cmocka_unit_test(test_exec_parse_refusals),
                cmocka_unit_test(test_exec_answer),
                cmocka_unit_test(test_rfc3339),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
