/* Unit tests for webhook/core/policytest.c and policytest_run.c: a test
 * file read (every key, every problem at its LINE:COL, an inline policy
 * whose problems keep the test file's places), pod files (a Pod, an
 * AdmissionReview), the RFC 6902 patch applied, and cases run on the
 * fixtures of tests/fixtures against tests/fixtures/policy.yaml: passing,
 * and failing with the differences a person reads. */
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

#include <cjson/cJSON.h>

#include "admission.h"
#include "buf.h"
#include "policy.h"
#include "policytest.h"
#include "webhook_limits.h"

#include "b64_decode.h"
#include "fixture_files.h"

#define assert_contains(s, sub)                                                                  \
        do {                                                                                     \
                if (!(s) || !strstr((s), (sub)))                                                 \
                        fail_msg("\"%s\" does not contain \"%s\"", (s) ? (s) : "(null)", (sub)); \
        } while (0)

static struct ptest_file *parse_ok(const char *text)
{
        struct buf errors;
        struct ptest_file *f = NULL;
        buf_init(&errors, WH_POLICY_ERRORS_MAX_BYTES);
        if (ptest_file_parse(text, strlen(text), &f, &errors) < 0)
                fail_msg("test file: %s", errors.data);
        buf_free(&errors);
        return f;
}

/* The problems of a file that must not parse, as one string (free it). */
static char *parse_bad(const char *text)
{
        struct buf errors;
        struct ptest_file *f = NULL;
        buf_init(&errors, WH_POLICY_ERRORS_MAX_BYTES);
        int r = ptest_file_parse(text, strlen(text), &f, &errors);
        assert_int_equal(r, -EINVAL);
        assert_null(f);
        assert_non_null(errors.data);
        char *s = strdup(errors.data);
        buf_free(&errors);
        return s;
}

static const char good[] = "description: two cases\n"                                  /* 1 */
                           "policy: ../policy.yaml\n"                                  /* 2 */
                           "cases:\n"                                                  /* 3 */
                           "  - name: driver\n"                                        /* 4 */
                           "    namespace:\n"                                          /* 5 */
                           "      name: team-a\n"                                      /* 6 */
                           "      labels: {team: a, env: prod}\n"                      /* 7 */
                           "      annotations: {spark-identity.io/identity: x}\n"      /* 8 */
                           "    podFile: pods/driver.yaml\n"                           /* 9 */
                           "    userInfo: {username: alice, groups: [dev, ops]}\n"     /* 10 */
                           "    expect:\n"                                             /* 11 */
                           "      allowed: true\n"                                     /* 12 */
                           "      identity: sparkaks\n"                                /* 13 */
                           "      env: {JAVA_HOME: /opt/java/openjdk, AZURE_CLIENT_ID: null}\n"
                           "      warnings: []\n"
                           "      patched: true\n"
                           "  - name: relabel\n"                                       /* 17 */
                           "    namespace: {name: team-b}\n"
                           "    operation: UPDATE\n"
                           "    oldPod: {metadata: {name: p}}\n"
                           "    pod: {kind: Pod, metadata: {name: p, labels: {aadpodidbinding: x}}}\n"
                           "    expect: {allowed: false, message: may not use, warnings: [one, two]}\n";

static void test_parse_every_key(void **state)
{
        (void)state;
        struct ptest_file *f = parse_ok(good);
        assert_string_equal(f->policy_file, "../policy.yaml");
        assert_null(f->policy_text);
        assert_int_equal(f->n_cases, 2);

        const struct ptest_case *c = &f->cases[0];
        assert_string_equal(c->name, "driver");
        assert_int_equal(c->line, 4);
        assert_int_equal(c->col, 5);
        assert_string_equal(c->namespace_, "team-a");
        assert_int_equal(c->n_labels, 2);
        assert_string_equal(c->labels[1].key, "env");
        assert_string_equal(c->labels[1].value, "prod");
        assert_int_equal(c->n_annotations, 1);
        assert_string_equal(c->operation, "CREATE");
        assert_null(c->pod);
        assert_string_equal(c->pod_file, "pods/driver.yaml");
        assert_string_equal(c->username, "alice");
        assert_int_equal(c->n_groups, 2);
        assert_string_equal(c->groups[1], "ops");
        assert_int_equal(c->expect.allowed, 1);
        assert_string_equal(c->expect.identity, "sparkaks");
        assert_int_equal(c->expect.n_env, 2);
        assert_string_equal(c->expect.env[0].value, "/opt/java/openjdk");
        assert_null(c->expect.env[1].value); /* null: must not be set */
        assert_true(c->expect.has_warnings);
        assert_int_equal(c->expect.n_warnings, 0);
        assert_int_equal(c->expect.patched, 1);
        assert_null(c->expect.message);

        c = &f->cases[1];
        assert_int_equal(c->line, 17);
        assert_string_equal(c->operation, "UPDATE");
        assert_non_null(c->pod);
        assert_non_null(c->old_pod);
        assert_null(c->username);
        assert_int_equal(c->expect.allowed, 0);
        assert_int_equal(c->expect.patched, -1);
        assert_null(c->expect.identity);
        assert_string_equal(c->expect.message, "may not use");
        assert_int_equal(c->expect.n_warnings, 2);
        ptest_file_free(f);
}

static const struct {
        const char *text;
        const char *problem;   /* one line of the problems */
} bad[] = {
        { "policy: p.yaml\ncases:\n  - name: a\n    namespace: {name: ns}\n    podFile: x\n    expect: {alowed: "
          "true}\n",
          "6:14: cases[0].expect.alowed: unknown key, did you mean allowed? (expect has allowed, message, identity, "
          "env, warnings and patched)" },
        { "policy: p.yaml\ncases:\n  - name: a\n    namespace: {name: ns}\n    podfile: x\n    expect: {allowed: "
          "true}\n",
          "5:5: cases[0].podfile: unknown key, did you mean podFile? (a case has name, namespace, pod, podFile" },
        { "policy: p.yaml\ncases:\n  - name: a\n    namespace: {name: ns}\n    podFile: x\n    expect: {allowed: "
          "true}\n"
          "tests: []\n",
          "7:1: tests: unknown key (a test file has policy, cases and description)" },
        { "policy: p.yaml\ncases:\n  - name: a\n    namespace: {name: ns}\n    expect: {identity: x}\n",
          "5:14: cases[0].expect.identity: is about a pod, and this case has none (pod or podFile)" },
        { "policy: p.yaml\ncases:\n  - name: a\n    namespace: {name: ns}\n    operation: UPDATE\n"
          "    expect: {allowed: true}\n",
          "3:5: cases[0]: an UPDATE of the namespace (a case without a pod) needs the namespace as it was" },
        { "policy: p.yaml\ncases:\n  - name: a\n    namespace: {name: ns}\n    oldNamespace: {name: ns}\n"
          "    expect: {allowed: true}\n",
          "5:5: cases[0]: oldNamespace is for operation: UPDATE" },
        { "policy: p.yaml\ncases:\n  - name: a\n    namespace: {name: ns}\n    operation: UPDATE\n"
          "    oldNamespace: {name: other}\n    expect: {allowed: true}\n",
          "6:26: cases[0].oldNamespace.name: \"other\": the namespace is ns before and after" },
        { "policy: p.yaml\ncases:\n  - name: a\n    namespace: {name: ns}\n    podFile: x\n    operation: UPDATE\n"
          "    oldPodFile: y\n    oldNamespace: {name: ns}\n    expect: {allowed: true}\n",
          "8:5: cases[0]: oldNamespace is for a case without a pod (a namespace change)" },
        { "policy: p.yaml\ncases:\n  - name: a\n    namespace: {name: ns}\n    oldPodFile: y\n"
          "    expect: {allowed: true}\n",
          "3:5: cases[0]: oldPod and oldPodFile need pod or podFile" },
        { "policy: p.yaml\ncases:\n  - namespace: {name: ns}\n    podFile: x\n", "3:5: cases[0]: name is required" },
        { "policy: p.yaml\ncases:\n  - name: a\n    namespace: {name: ns}\n    podFile: x\n", "expect is required" },
        { "policy: p.yaml\ncases:\n  - name: a\n    namespace: {name: ns}\n    pod: {}\n    podFile: x\n"
          "    expect: {allowed: true}\n",
          "6:5: cases[0]: pod and podFile: give one of them" },
        { "policy: p.yaml\ncases:\n  - name: a\n    namespace: {name: ns}\n    podFile: x\n    operation: UPDATE\n"
          "    expect: {allowed: true}\n",
          "cases[0]: an UPDATE needs the pod as it was: oldPod or oldPodFile" },
        { "policy: p.yaml\ncases:\n  - name: a\n    namespace: {name: ns}\n    podFile: x\n    oldPodFile: y\n"
          "    expect: {allowed: true}\n",
          "cases[0]: oldPod and oldPodFile are for operation: UPDATE" },
        { "policy: p.yaml\ncases:\n  - name: a\n    namespace: {name: ns}\n    podFile: x\n    operation: DELETE\n"
          "    expect: {allowed: true}\n",
          "6:16: cases[0].operation: \"DELETE\": must be CREATE or UPDATE" },
        { "policy: p.yaml\ncases:\n  - name: a\n    namespace: {name: ns, labels: {n: 1}}\n    podFile: x\n"
          "    expect: {allowed: true}\n",
          "4:39: cases[0].namespace.labels.n: must be a string (quote it)" },
        { "policy: p.yaml\ncases:\n  - name: a\n    namespace: {name: Team_A}\n    podFile: x\n"
          "    expect: {allowed: true}\n",
          "cases[0].namespace.name: \"Team_A\" is not a namespace name" },
        { "policy: p.yaml\ncases:\n  - name: a\n    namespace: {labels: {}}\n    podFile: x\n    expect: {allowed: "
          "true}\n",
          "4:16: cases[0].namespace: name is required" },
        { "policy: p.yaml\ncases:\n  - name: a\n    namespace: {name: ns}\n    podFile: x\n    expect: {allowed: "
          "yes}\n",
          "6:23: cases[0].expect.allowed: must be true or false" },
        { "policy: p.yaml\ncases:\n  - name: a\n    namespace: {name: ns}\n    podFile: x\n    expect: {}\n",
          "cases[0].expect: must be a map with at least one of" },
        { "policy: p.yaml\ncases:\n  - name: a\n    namespace: {name: ns}\n    pod: {kind: Namespace}\n"
          "    expect: {allowed: true}\n",
          "cases[0].pod: kind must be Pod" },
        { "policy: p.yaml\ncases:\n  - name: a\n    namespace: {name: ns}\n    podFile: x\n    expect: {env: {A: 1}}\n",
          "cases[0].expect.env.A: must be a string (quote it), or null for \"not set\"" },
        { "policy: p.yaml\ncases:\n  - name: a\n    namespace: {name: ns}\n    podFile: x\n    expect: {warnings: w}\n",
          "cases[0].expect.warnings: must be a list of strings" },
        { "policy: p.yaml\ncases:\n  - name: a\n    namespace: {name: ns}\n    podFile: x\n    expect: {allowed: "
          "true}\n"
          "  - name: a\n    namespace: {name: ns}\n    podFile: y\n    expect: {allowed: true}\n",
          "7:11: cases: two cases named \"a\" (the first at line 3): names must be unique" },
        { "policy: p.yaml\ncases: []\n", "2:8: cases: must be a list of at least one case" },
        { "cases:\n  - name: a\n    namespace: {name: ns}\n    podFile: x\n    expect: {allowed: true}\n",
          "1:1: policy is required" },
        { "policy: 3\ncases: [{name: a, namespace: {name: ns}, podFile: x, expect: {allowed: true}}]\n",
          "1:9: policy: must be the policy file's path" },
        { "- a list\n", "1:1: a test file is a map with policy, cases and description" },
        { "policy: [\n", "2:1:" },
};

static void test_parse_problems_have_their_place(void **state)
{
        (void)state;
        for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
                char *problems = parse_bad(bad[i].text);
                if (!strstr(problems, bad[i].problem))
                        fail_msg("case %zu: \"%s\" does not contain \"%s\"", i, problems, bad[i].problem);
                free(problems);
        }
}

static void test_all_problems_are_listed(void **state)
{
        (void)state;
        /* In the order of the file, whatever the order they are found in. */
        char *sorted = parse_bad("policy: p.yaml\ncases:\n  - namespace: {name: ns, lables: {}}\n"
                                 "    podFile: x\n    expect: {allowed: true, identiy: x}\n"
                                 "  - {name: b, namespace: {name: ns}, podFile: x, expect: {allowed: yes}}\n");
        assert_string_equal(sorted, "3:5: cases[0]: name is required\n"
                                    "3:27: cases[0].namespace.lables: unknown key, did you mean labels? (a namespace "
                                    "has name, labels and annotations)\n"
                                    "5:29: cases[0].expect.identiy: unknown key, did you mean identity? (expect has "
                                    "allowed, message, identity, env, warnings and patched)\n"
                                    "6:68: cases[1].expect.allowed: must be true or false\n");
        free(sorted);
        char *problems = parse_bad("policy: p.yaml\ncases:\n"
                                   "  - {name: a, namespace: {name: ns}, podFile: x, expect: {allowd: true}}\n"
                                   "  - {name: b, namespace: {name: ns}, podFile: x, expect: {identty: x}}\n");
        assert_contains(problems, "cases[0].expect.allowd: unknown key");
        assert_contains(problems, "cases[1].expect.identty: unknown key");
        free(problems);
}

static void test_too_many_cases(void **state)
{
        (void)state;
        struct buf text;
        buf_init(&text, 1u << 24);
        buf_puts(&text, "policy: p.yaml\ncases:\n");
        for (unsigned i = 0; i <= WH_MAX_TEST_CASES; i++)
                buf_printf(&text, "  - {name: c%u, namespace: {name: ns}, podFile: x, expect: {allowed: true}}\n", i);
        char *problems = parse_bad(text.data);
        assert_contains(problems, "more than 1000 in one file: split it");
        free(problems);
        buf_free(&text);
}

/* An inline policy keeps the test file's lines and columns: a problem in it
 * is placed where it is in the test file. */
static void test_inline_policy_keeps_places(void **state)
{
        (void)state;
        static const char text[] = "# a comment\n"
                                   "cases:\n"
                                   "  - {name: a, namespace: {name: team-a}, podFile: x, expect: {allowed: true}}\n"
                                   "policy:\n"
                                   "  namespaces:\n"
                                   "    team-a: {identity: sparkaks, mode: enforced}\n"
                                   "description: after the policy\n";
        struct ptest_file *f = parse_ok(text);
        assert_null(f->policy_file);
        assert_false(f->policy_text_is_json);
        assert_int_equal(f->policy_line, 5);
        struct buf errors;
        struct policy *p = NULL;
        buf_init(&errors, WH_POLICY_ERRORS_MAX_BYTES);
        assert_int_equal(policy_load(f->policy_text, f->policy_len, &p, &errors), -EINVAL);
        assert_contains(errors.data, "6:40: namespaces.team-a.mode");
        buf_free(&errors);
        ptest_file_free(f);

        /* Valid, it loads, and a case runs with it. */
        static const char ok[] = "policy:\n  namespaces: {team-a: {identity: sparkaks}}\ncases:\n"
                                 "  - {name: a, namespace: {name: team-a}, podFile: x, expect: {allowed: true}}\n";
        f = parse_ok(ok);
        buf_init(&errors, WH_POLICY_ERRORS_MAX_BYTES);
        assert_int_equal(policy_load(f->policy_text, f->policy_len, &p, &errors), 0);
        assert_non_null(policy_rule_for(p, "team-a"));
        policy_free(p);
        buf_free(&errors);
        ptest_file_free(f);
}

/* When the policy shares its line with another key (flow style, JSON), it
 * is read back as JSON. */
static void test_inline_policy_in_json(void **state)
{
        (void)state;
        static const char text[] = "{\"policy\": {\"namespaces\": {\"team-a\": {\"identity\": \"sparkaks\"}}}, "
                                   "\"cases\": [{\"name\": \"a\", \"namespace\": {\"name\": \"team-a\"}, "
                                   "\"podFile\": \"x\", \"expect\": {\"allowed\": true}}]}";
        struct ptest_file *f = parse_ok(text);
        assert_true(f->policy_text_is_json);
        assert_int_equal(f->policy_line, 1);
        struct buf errors;
        struct policy *p = NULL;
        buf_init(&errors, WH_POLICY_ERRORS_MAX_BYTES);
        assert_int_equal(policy_load(f->policy_text, f->policy_len, &p, &errors), 0);
        assert_non_null(policy_rule_for(p, "team-a"));
        policy_free(p);
        buf_free(&errors);
        ptest_file_free(f);
}

static void test_pod_files(void **state)
{
        (void)state;
        char err[256];
        cJSON *root = NULL;
        const cJSON *pod = NULL;
        /* An AdmissionReview fixture: its object. */
        char *text = fixture_text("spark35-driver.json");
        assert_int_equal(ptest_pod_parse(text, strlen(text), &root, &pod, err, sizeof err), 0);
        assert_string_equal(cJSON_GetObjectItem(pod, "kind")->valuestring, "Pod");
        assert_ptr_not_equal(pod, root);
        cJSON_Delete(root);
        free(text);
        /* A Pod in YAML. */
        static const char yaml[] = "# a pod\nkind: Pod\nmetadata: {name: p}\n";
        assert_int_equal(ptest_pod_parse(yaml, strlen(yaml), &root, &pod, err, sizeof err), 0);
        assert_ptr_equal(pod, root);
        cJSON_Delete(root);
        /* Neither. */
        static const char *const nots[] = { "kind: Namespace\n", "[1, 2]\n", "{\"kind\": \"Pod\"", "a: [\n" };
        for (size_t i = 0; i < sizeof nots / sizeof *nots; i++) {
                root = NULL;
                assert_int_equal(ptest_pod_parse(nots[i], strlen(nots[i]), &root, &pod, err, sizeof err), -EINVAL);
                assert_null(root);
                assert_true(err[0]);
        }
}

static void test_patch_apply(void **state)
{
        (void)state;
        char err[256];
        cJSON *doc = cJSON_Parse("{\"metadata\":{\"labels\":{\"a/b\":\"1\",\"x\":\"y\"}},\"list\":[1,2,3]}");
        static const char patch[] = "[{\"op\":\"add\",\"path\":\"/metadata/labels/new\",\"value\":\"v\"},"
                                    "{\"op\":\"replace\",\"path\":\"/metadata/labels/a~1b\",\"value\":\"2\"},"
                                    "{\"op\":\"remove\",\"path\":\"/metadata/labels/x\"},"
                                    "{\"op\":\"add\",\"path\":\"/list/-\",\"value\":4},"
                                    "{\"op\":\"add\",\"path\":\"/list/0\",\"value\":0},"
                                    "{\"op\":\"replace\",\"path\":\"/list/1\",\"value\":10},"
                                    "{\"op\":\"remove\",\"path\":\"/list/2\"},"
                                    "{\"op\":\"add\",\"path\":\"/spec\",\"value\":{\"k\":[]}}]";
        assert_int_equal(ptest_patch_apply(doc, patch, strlen(patch), err, sizeof err), 0);
        char *out = cJSON_PrintUnformatted(doc);
        assert_string_equal(out, "{\"metadata\":{\"labels\":{\"a/b\":\"2\",\"new\":\"v\"}},\"list\":[0,10,3,4],"
                                 "\"spec\":{\"k\":[]}}");
        cJSON_free(out);

        static const char *const fails[] = {
                "[{\"op\":\"replace\",\"path\":\"/metadata/none\",\"value\":1}]",
                "[{\"op\":\"remove\",\"path\":\"/list/9\"}]",
                "[{\"op\":\"add\",\"path\":\"/list/01\",\"value\":1}]",
                "[{\"op\":\"add\",\"path\":\"/no/such/place\",\"value\":1}]",
                "[{\"op\":\"move\",\"path\":\"/list/0\",\"from\":\"/list/1\"}]",
                "[{\"op\":\"add\",\"path\":\"/list/0\"}]",
                "[{\"op\":\"add\",\"path\":\"relative\",\"value\":1}]",
                "{\"op\":\"add\"}",
        };
        for (size_t i = 0; i < sizeof fails / sizeof *fails; i++) {
                err[0] = '\0';
                assert_int_equal(ptest_patch_apply(doc, fails[i], strlen(fails[i]), err, sizeof err), -EINVAL);
                assert_true(err[0]);
        }
        cJSON_Delete(doc);

        /* Keys differ by case: "add" of Path beside PATH adds, "replace" of
         * path (absent) fails rather than hitting PATH. */
        doc = cJSON_Parse("{\"env\":{\"PATH\":\"a\"}}");
        static const char cased[] = "[{\"op\":\"add\",\"path\":\"/env/Path\",\"value\":\"b\"}]";
        assert_int_equal(ptest_patch_apply(doc, cased, strlen(cased), err, sizeof err), 0);
        out = cJSON_PrintUnformatted(doc);
        assert_string_equal(out, "{\"env\":{\"PATH\":\"a\",\"Path\":\"b\"}}");
        cJSON_free(out);
        static const char lower[] = "[{\"op\":\"replace\",\"path\":\"/env/path\",\"value\":\"c\"}]";
        assert_int_equal(ptest_patch_apply(doc, lower, strlen(lower), err, sizeof err), -EINVAL);
        cJSON_Delete(doc);
}

/* Runs the one case of `file` (whose pod is the fixture `pod_fixture`,
 * or its own inline pod when NULL) against tests/fixtures/policy.yaml. */
static void run_one(const char *file, const char *pod_fixture, struct ptest_result *res)
{
        char err[512];
        struct policy *p = fixture_policy("policy.yaml");
        struct ptest_file *f = parse_ok(file);
        cJSON *pod = pod_fixture ? fixture_pod(pod_fixture) : NULL;
        int r = ptest_run(p, &f->cases[0], pod ? pod : f->cases[0].pod, f->cases[0].old_pod, res, err, sizeof err);
        if (r < 0)
                fail_msg("ptest_run: %d %s", r, err);
        cJSON_Delete(pod);
        ptest_file_free(f);
        policy_free(p);
}

static const struct ptest_diff *diff_of(const struct ptest_result *res, const char *what)
{
        for (size_t i = 0; i < res->n_diffs; i++)
                if (strcmp(res->diffs[i].what, what) == 0)
                        return &res->diffs[i];
        fail_msg("no difference on %s", what);
        return NULL;
}

static void test_run_driver_passes(void **state)
{
        (void)state;
        struct ptest_result res;
        run_one("policy: x\ncases:\n- name: d\n  namespace: {name: team-a}\n  podFile: f\n  expect:\n"
                "    allowed: true\n    patched: true\n    identity: sparkaks\n    warnings: []\n"
                "    env: {JAVA_HOME: /opt/java/openjdk, SPARK_CONF_DIR: /opt/spark/conf,\n"
                "          SPARK_DRIVER_BIND_ADDRESS: (valueFrom), AZURE_CLIENT_ID: null}\n",
                "spark35-driver.json", &res);
        for (size_t i = 0; i < res.n_diffs; i++)
                print_error("%s: want %s got %s\n", res.diffs[i].what, res.diffs[i].want, res.diffs[i].got);
        assert_true(res.pass);
        assert_true(res.allowed);
        assert_true(res.patched);
        assert_string_equal(res.identity, "sparkaks");
        /* The patch was applied: the namespace the API server sets, the label. */
        const cJSON *meta = cJSON_GetObjectItem(res.pod_after, "metadata");
        assert_string_equal(cJSON_GetObjectItem(meta, "namespace")->valuestring, "team-a");
        ptest_result_free(&res);
}

/* A case that expects the wrong things fails with one difference for each,
 * saying what was wanted and what admission answered. */
static void test_run_differences(void **state)
{
        (void)state;
        struct ptest_result res;
        run_one("policy: x\ncases:\n- name: d\n  namespace: {name: team-a}\n  podFile: f\n  expect:\n"
                "    allowed: false\n    message: refused\n    patched: false\n    identity: lake-spark\n"
                "    warnings: [replaced, also]\n    env: {JAVA_HOME: /usr, AZURE_CLIENT_ID: x, SPARK_USER: null}\n",
                "spark35-driver.json", &res);
        assert_false(res.pass);
        assert_int_equal(res.n_diffs, 9);
        assert_string_equal(diff_of(&res, "allowed")->want, "refused");
        assert_string_equal(diff_of(&res, "allowed")->got, "allowed");
        assert_string_equal(diff_of(&res, "message")->got, "allowed");
        assert_string_equal(diff_of(&res, "identity")->want, "lake-spark");
        assert_string_equal(diff_of(&res, "identity")->got, "sparkaks");
        assert_string_equal(diff_of(&res, "env.JAVA_HOME")->got, "/opt/java/openjdk");
        assert_string_equal(diff_of(&res, "env.AZURE_CLIENT_ID")->got, "(not set)");
        assert_string_equal(diff_of(&res, "env.SPARK_USER")->want, "(not set)");
        assert_string_equal(diff_of(&res, "env.SPARK_USER")->got, "airflow");
        assert_string_equal(diff_of(&res, "warnings")->want, "a warning containing \"replaced\"");
        assert_string_equal(diff_of(&res, "warnings")->got, "no warning");
        assert_string_equal(diff_of(&res, "patched")->got, "a patch");
        ptest_result_free(&res);
}

static void test_run_refusal_and_update(void **state)
{
        (void)state;
        struct ptest_result res;
        /* A foreign identity on CREATE: refused by the mutating webhook. */
        run_one("policy: x\ncases:\n- name: r\n  namespace: {name: team-b}\n  podFile: f\n"
                "  expect: {allowed: false, message: 'may not use Azure identity \"sparkaks\"', patched: false}\n",
                "rogue-pod.json", &res);
        assert_true(res.pass);
        assert_false(res.allowed);
        assert_contains(res.message, "namespace team-b may not use");
        ptest_result_free(&res);

        /* The same label added by an UPDATE. */
        run_one("policy: x\ncases:\n- name: u\n  namespace: {name: team-b}\n  operation: UPDATE\n"
                "  oldPod: {kind: Pod, metadata: {name: p}, spec: {containers: [{name: c}]}}\n"
                "  pod: {kind: Pod, metadata: {name: p, labels: {aadpodidbinding: sparkaks}}, spec: {containers: "
                "[{name: c}]}}\n"
                "  expect: {allowed: true}\n",
                NULL, &res);
        assert_false(res.pass);
        assert_contains(diff_of(&res, "allowed")->got, "refused: namespace team-b may not use Azure identity");
        ptest_result_free(&res);

        /* Left as it was on UPDATE: allowed. */
        run_one("policy: x\ncases:\n- name: u\n  namespace: {name: team-b}\n  operation: UPDATE\n"
                "  oldPod: {kind: Pod, metadata: {name: p, labels: {aadpodidbinding: sparkaks}}}\n"
                "  pod: {kind: Pod, metadata: {name: p, labels: {aadpodidbinding: sparkaks, x: y}}}\n"
                "  expect: {allowed: true, identity: sparkaks, patched: false}\n",
                NULL, &res);
        assert_true(res.pass);
        ptest_result_free(&res);
}

static void test_run_audit_warnings(void **state)
{
        (void)state;
        struct ptest_result res;
        run_one("policy: x\ncases:\n- name: a\n  namespace: {name: team-c}\n  podFile: f\n"
                "  expect: {allowed: true, patched: false, identity: none,\n"
                "           warnings: ['audit: would set label aadpodidbinding=c-spark']}\n",
                "spark35-driver.json", &res);
        assert_true(res.pass);
        assert_true(res.n_warnings >= 1);
        ptest_result_free(&res);

        /* warnings: [] fails on a warning, and shows them. */
        run_one("policy: x\ncases:\n- name: a\n  namespace: {name: team-c}\n  podFile: f\n"
                "  expect: {warnings: []}\n",
                "spark35-driver.json", &res);
        assert_false(res.pass);
        assert_string_equal(diff_of(&res, "warnings")->want, "no warning");
        assert_contains(diff_of(&res, "warnings")->got, "\"audit: would set label aadpodidbinding=c-spark\"");
        ptest_result_free(&res);
}

/* A case without a pod changes the namespace: only grantors may touch its
 * grant keys. */
static void test_run_namespace_cases(void **state)
{
        (void)state;
        static const char policy[] = "policy:\n  namespaceAnnotations: true\n  grantors: [platform-bot]\n"
                                     "  namespaces: {team-a: {identity: sparkaks}}\n";
        char err[256];
        struct buf text;
        buf_init(&text, 1 << 16);
        buf_printf(&text,
                   "%scases:\n"
                   "- name: alice may not grant an identity\n"
                   "  namespace: {name: team-x, annotations: {spark-identity.io/identity: sparkaks}}\n"
                   "  userInfo: {username: alice}\n"
                   "  expect: {allowed: false, message: spark-identity.io/identity}\n"
                   "- name: the bot may\n"
                   "  namespace: {name: team-x, annotations: {spark-identity.io/identity: x-spark, "
                   "spark-identity.io/client-id: 66666666-7777-4888-9999-aaaaaaaaaaaa}}\n"
                   "  userInfo: {username: platform-bot}\n"
                   "  expect: {allowed: true, patched: false}\n"
                   "- name: alice may change other labels\n"
                   "  operation: UPDATE\n"
                   "  namespace: {name: team-x, labels: {env: prod}, annotations: {spark-identity.io/identity: x}}\n"
                   "  oldNamespace: {annotations: {spark-identity.io/identity: x}}\n"
                   "  userInfo: {username: alice, groups: [devs]}\n"
                   "  expect: {allowed: true}\n"
                   "- name: nor remove one\n"
                   "  operation: UPDATE\n"
                   "  namespace: {name: team-x}\n"
                   "  oldNamespace: {annotations: {spark-identity.io/identity: x}}\n"
                   "  userInfo: {username: alice}\n"
                   "  expect: {allowed: true}\n",
                   policy);
        struct ptest_file *f = parse_ok(text.data);
        struct buf errors;
        struct policy *p = NULL;
        buf_init(&errors, WH_POLICY_ERRORS_MAX_BYTES);
        assert_int_equal(policy_load(f->policy_text, f->policy_len, &p, &errors), 0);
        assert_int_equal(f->n_cases, 4);
        static const bool pass[] = { true, true, true, false };
        for (size_t i = 0; i < f->n_cases; i++) {
                struct ptest_result res;
                assert_true(f->cases[i].namespace_case);
                assert_int_equal(ptest_run(p, &f->cases[i], NULL, NULL, &res, err, sizeof err), 0);
                if (res.pass != pass[i])
                        fail_msg("case %zu: pass %d, message %s", i, res.pass, res.message);
                ptest_result_free(&res);
        }
        struct ptest_result res;
        assert_int_equal(ptest_run(p, &f->cases[3], NULL, NULL, &res, err, sizeof err), 0);
        assert_false(res.allowed);
        assert_contains(diff_of(&res, "allowed")->got, "refused: ");
        ptest_result_free(&res);
        policy_free(p);
        buf_free(&errors);
        ptest_file_free(f);
        buf_free(&text);
}

/* What a case sees is what admission_handle() answers the same review with. */
static void test_run_agrees_with_admission(void **state)
{
        (void)state;
        static const char *const fixtures[] = { "spark35-driver.json", "spark35-executor.json", "spark40-driver.json",
                                                "rogue-pod.json", "nginx-pod.json" };
        struct policy *p = fixture_policy("policy.yaml");
        for (size_t i = 0; i < sizeof fixtures / sizeof *fixtures; i++) {
                char *body = fixture_text(fixtures[i]);
                struct admission a;
                admission_init(&a, WH_MAX_RESPONSE_BYTES);
                assert_int_equal(admission_handle(p, NULL, body, strlen(body), &a), 0);
                assert_int_equal(a.status, 200);
                cJSON *answer = cJSON_Parse(a.body.data);
                const cJSON *resp = cJSON_GetObjectItem(answer, "response");
                bool allowed = cJSON_IsTrue(cJSON_GetObjectItem(resp, "allowed"));

                cJSON *review = cJSON_Parse(body);
                const cJSON *req = cJSON_GetObjectItem(review, "request");
                const cJSON *pod = cJSON_GetObjectItem(req, "object");
                struct ptest_case c = { .name = fixtures[i],
                                        .namespace_ = cJSON_GetObjectItem(req, "namespace")->valuestring,
                                        .operation = "CREATE",
                                        .expect = { .allowed = allowed, .patched = -1 } };
                struct ptest_result res;
                char err[256];
                assert_int_equal(ptest_run(p, &c, pod, NULL, &res, err, sizeof err), 0);
                assert_true(res.pass);
                assert_int_equal(res.patched, cJSON_GetObjectItem(resp, "patch") != NULL);
                ptest_result_free(&res);
                cJSON_Delete(review);
                cJSON_Delete(answer);
                admission_free(&a);
                free(body);
        }
        policy_free(p);
}

int main(void)
{
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_parse_every_key),
                cmocka_unit_test(test_parse_problems_have_their_place),
                cmocka_unit_test(test_all_problems_are_listed),
                cmocka_unit_test(test_too_many_cases),
                cmocka_unit_test(test_inline_policy_keeps_places),
                cmocka_unit_test(test_inline_policy_in_json),
                cmocka_unit_test(test_pod_files),
                cmocka_unit_test(test_patch_apply),
                cmocka_unit_test(test_run_driver_passes),
                cmocka_unit_test(test_run_differences),
                cmocka_unit_test(test_run_refusal_and_update),
                cmocka_unit_test(test_run_audit_warnings),
                cmocka_unit_test(test_run_namespace_cases),
                cmocka_unit_test(test_run_agrees_with_admission),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
