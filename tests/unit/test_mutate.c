/* The decision on one pod: Spark detection, the label, JAVA_HOME, the JVM
 * flags in each env style, conflicts, modes, and foreign identities. The
 * real-shaped Spark fixtures are checked in test_fixture_* at the end. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "buf.h"
#include "mutate.h"
#include "policy.h"
#include "pool.h"

#include "mutate_fixture.h"

#define TENANT "72f988bf-86f1-41af-91ab-2d7cd011db47"
#define CLIENT "5f4c1b2a-8d3e-4f6a-9b7c-1d2e3f4a5b6c"
#define MSI "org.apache.hadoop.fs.azurebfs.oauth2.MsiTokenProvider"
#define F1 "-Dio.netty.tryReflectionSetAccessible=true"
#define F2 "-Dspark.hadoop.fs.azure.account.auth.type=OAuth"
#define F3 "-Dspark.hadoop.fs.azure.account.oauth.provider.type=" MSI
#define F4 "-Dspark.hadoop.fs.azure.account.oauth2.client.id=" CLIENT
#define F5 "-Dspark.hadoop.fs.azure.account.oauth2.msi.tenant=" TENANT
#define FLAGS F1 " " F2 " " F3 " " F4 " " F5

static const char policy_text[] =
        "defaults:\n"
        "  java: {home: /opt/java/openjdk, options: [\"" F1 "\"]}\n"
        "namespaces:\n"
        "  team-a: {identity: sparkaks, tenantId: " TENANT ", clientId: " CLIENT ", allowedIdentities: [team-a-api]}\n"
        "  team-b: {identity: team-b-spark}\n"
        "  team-c: {identity: c-spark, mode: audit, onConflict: deny, tenantId: " TENANT ", clientId: " CLIENT "}\n"
        "  team-e: {identity: e-spark, jvmEnv: JAVA_TOOL_OPTIONS, tenantId: " TENANT ", clientId: " CLIENT "}\n"
        "  team-f: {identity: f-spark, onConflict: deny}\n"
        "  team-off: {identity: off-spark, mode: off}\n"
        "unmatched: allow\n";

static int setup(void **state)
{
        *state = fixture_new(policy_text);
        return 0;
}

#define teardown fixture_teardown

/* Runs the mutation of `pod_json` in `ns` and parses the patch. */
static void run(struct fixture *f, const char *ns, const char *pod_json)
{
        cJSON *pod = cJSON_Parse(pod_json);
        if (!pod)
                fail_msg("bad pod JSON in test: %s", pod_json);
        fixture_run(f, ns, pod);
}

/* Asserts op number `i`: its op, path, and value as compact JSON. */
static void assert_op(const struct fixture *f, int i, const char *op, const char *path, const char *value_json)
{
        const cJSON *o = cJSON_GetArrayItem(f->ops, i);
        if (!o)
                fail_msg("no op %d in %s", i, f->m.patch.text.data ? f->m.patch.text.data : "(none)");
        assert_string_equal(cJSON_GetObjectItem(o, "op")->valuestring, op);
        assert_string_equal(cJSON_GetObjectItem(o, "path")->valuestring, path);
        char *v = cJSON_PrintUnformatted(cJSON_GetObjectItem(o, "value"));
        cJSON *want = cJSON_Parse(value_json);
        char *w = cJSON_PrintUnformatted(want);
        assert_string_equal(v, w);
        free(v);
        free(w);
        cJSON_Delete(want);
}

#define DRIVER(labels, env)                                                                           \
        "{\"metadata\":{\"name\":\"app-1234567890abcdef-driver\",\"labels\":{\"spark-app-selector\":" \
        "\"spark-0123456789abcdef0123456789abcdef\",\"spark-role\":\"driver\"" labels "}},"           \
        "\"spec\":{\"containers\":[{\"name\":\"spark-kubernetes-driver\"" env "}]}}"
#define EXECUTOR(labels, env)                                                                    \
        "{\"metadata\":{\"name\":\"app-exec-1\",\"labels\":{\"spark-app-selector\":\"spark-1\"," \
        "\"spark-role\":\"executor\",\"spark-exec-id\":\"1\"" labels "}},"                       \
        "\"spec\":{\"containers\":[{\"name\":\"spark-kubernetes-executor\"" env "}]}}"

static void test_driver_without_env_gets_whole_list(void **state)
{
        struct fixture *f = *state;
        run(f, "team-a", DRIVER("", ""));
        assert_int_equal(f->m.decision, DECISION_MUTATED);
        assert_int_equal(f->m.role, POD_ROLE_DRIVER);
        assert_int_equal(f->m.patch.n_ops, 2);
        assert_op(f, 0, "add", "/metadata/labels/aadpodidbinding", "\"sparkaks\"");
        assert_op(f, 1, "add", "/spec/containers/0/env",
                  "[{\"name\":\"JAVA_HOME\",\"value\":\"/opt/java/openjdk\"},"
                  "{\"name\":\"SPARK_SUBMIT_OPTS\",\"value\":\"" FLAGS "\"}]");
        assert_null(f->m.identity_before);
        assert_string_equal(f->m.identity_after, "sparkaks");
        assert_string_equal(f->m.app_id, "spark-0123456789abcdef0123456789abcdef");
        assert_int_equal(f->m.n_warnings, 0);
}

static void test_driver_env_appended(void **state)
{
        struct fixture *f = *state;
        run(f, "team-a", DRIVER("", ",\"env\":[{\"name\":\"SPARK_USER\",\"value\":\"alice\"}]"));
        assert_int_equal(f->m.patch.n_ops, 3);
        assert_op(f, 1, "add", "/spec/containers/0/env/-", "{\"name\":\"JAVA_HOME\",\"value\":\"/opt/java/openjdk\"}");
        assert_op(f, 2, "add", "/spec/containers/0/env/-", "{\"name\":\"SPARK_SUBMIT_OPTS\",\"value\":\"" FLAGS "\"}");
}

static void test_driver_user_opts_kept_after_ours(void **state)
{
        struct fixture *f = *state;
        run(f, "team-a",
            DRIVER("", ",\"env\":[{\"name\":\"JAVA_HOME\",\"value\":\"/opt/java/openjdk\"},"
                       "{\"name\":\"SPARK_SUBMIT_OPTS\",\"value\":\"-Dfoo=bar "
                       "-Dspark.hadoop.fs.azure.account.auth.type=SharedKey\"}]"));
        assert_int_equal(f->m.patch.n_ops, 2);
        assert_op(f, 1, "add", "/spec/containers/0/env/1/value",
                  "\"" FLAGS " -Dfoo=bar -Dspark.hadoop.fs.azure.account.auth.type=SharedKey\"");
}

static void test_driver_only_missing_flags_added(void **state)
{
        struct fixture *f = *state;
        run(f, "team-a",
            DRIVER(",\"aadpodidbinding\":\"sparkaks\"",
                   ",\"env\":[{\"name\":\"JAVA_HOME\",\"value\":\"/opt/java/openjdk\"},"
                   "{\"name\":\"SPARK_SUBMIT_OPTS\",\"value\":\"" F2 " -Dx=1 " F4 "\"}]"));
        assert_int_equal(f->m.patch.n_ops, 1);
        assert_op(f, 0, "add", "/spec/containers/0/env/1/value", "\"" F1 " " F3 " " F5 " " F2 " -Dx=1 " F4 "\"");
}

static void test_driver_already_mutated_is_untouched(void **state)
{
        struct fixture *f = *state;
        run(f, "team-a",
            DRIVER(",\"aadpodidbinding\":\"sparkaks\"",
                   ",\"env\":[{\"name\":\"JAVA_HOME\",\"value\":\"/opt/java/openjdk\"},"
                   "{\"name\":\"SPARK_SUBMIT_OPTS\",\"value\":\"" FLAGS " -Dfoo=bar\"}]"));
        assert_int_equal(f->m.decision, DECISION_UNCHANGED);
        assert_int_equal(f->m.patch.n_ops, 0);
        assert_int_equal(f->m.n_warnings, 0);
        assert_string_equal(f->m.identity_after, "sparkaks");
}

static void test_driver_value_from_left_alone(void **state)
{
        struct fixture *f = *state;
        run(f, "team-a",
            DRIVER("", ",\"env\":[{\"name\":\"SPARK_SUBMIT_OPTS\",\"valueFrom\":"
                       "{\"configMapKeyRef\":{\"name\":\"opts\",\"key\":\"k\"}}}]"));
        assert_int_equal(f->m.patch.n_ops, 2);   /* label, JAVA_HOME */
        assert_op(f, 1, "add", "/spec/containers/0/env/-", "{\"name\":\"JAVA_HOME\",\"value\":\"/opt/java/openjdk\"}");
        assert_true(has_warning(&f->m, "SPARK_SUBMIT_OPTS comes from valueFrom"));
}

static void test_driver_entry_without_value(void **state)
{
        struct fixture *f = *state;
        run(f, "team-a",
            DRIVER(",\"aadpodidbinding\":\"sparkaks\"", ",\"env\":[{\"name\":\"JAVA_HOME\",\"value\":\"/opt/java/"
                                                        "openjdk\"},{\"name\":\"SPARK_SUBMIT_OPTS\"}]"));
        assert_int_equal(f->m.patch.n_ops, 1);
        /* "add" creates the missing member; "replace" would fail to apply. */
        assert_op(f, 0, "add", "/spec/containers/0/env/1/value", "\"" FLAGS "\"");
}

static void test_java_home_replaced_with_warning(void **state)
{
        struct fixture *f = *state;
        run(f, "team-a",
            DRIVER(",\"aadpodidbinding\":\"sparkaks\"",
                   ",\"env\":[{\"name\":\"JAVA_HOME\",\"value\":\"/usr/lib/jvm/java-8\"},"
                   "{\"name\":\"SPARK_SUBMIT_OPTS\",\"value\":\"" FLAGS "\"}]"));
        assert_int_equal(f->m.patch.n_ops, 1);
        assert_op(f, 0, "add", "/spec/containers/0/env/0/value", "\"/opt/java/openjdk\"");
        assert_true(has_warning(&f->m, "JAVA_HOME /usr/lib/jvm/java-8 replaced by /opt/java/openjdk"));
}

static void test_executor_java_opts_numbered_past_highest(void **state)
{
        struct fixture *f = *state;
        /* Spark 3.4+ emits these in hash order; _10 is the highest. */
        run(f, "team-a",
            EXECUTOR("", ",\"env\":[{\"name\":\"SPARK_USER\",\"value\":\"u\"},"
                         "{\"name\":\"SPARK_JAVA_OPT_0\",\"value\":\"-Xss4m\"},"
                         "{\"name\":\"SPARK_JAVA_OPT_10\",\"value\":\"" F1 "\"},"
                         "{\"name\":\"SPARK_JAVA_OPT_2\",\"value\":\"-Da=b\"}]"));
        assert_int_equal(f->m.role, POD_ROLE_EXECUTOR);
        assert_int_equal(f->m.patch.n_ops, 6);
        assert_op(f, 1, "add", "/spec/containers/0/env/-", "{\"name\":\"JAVA_HOME\",\"value\":\"/opt/java/openjdk\"}");
        /* F1 is there already: not added again. */
        assert_op(f, 2, "add", "/spec/containers/0/env/-", "{\"name\":\"SPARK_JAVA_OPT_11\",\"value\":\"" F2 "\"}");
        assert_op(f, 3, "add", "/spec/containers/0/env/-", "{\"name\":\"SPARK_JAVA_OPT_12\",\"value\":\"" F3 "\"}");
        assert_op(f, 4, "add", "/spec/containers/0/env/-", "{\"name\":\"SPARK_JAVA_OPT_13\",\"value\":\"" F4 "\"}");
        assert_op(f, 5, "add", "/spec/containers/0/env/-", "{\"name\":\"SPARK_JAVA_OPT_14\",\"value\":\"" F5 "\"}");
}

static void test_executor_without_java_opts_starts_at_zero(void **state)
{
        struct fixture *f = *state;
        run(f, "team-a",
            EXECUTOR(",\"aadpodidbinding\":\"sparkaks\"",
                     ",\"env\":[{\"name\":\"JAVA_HOME\",\"value\":\"/opt/java/openjdk\"},"
                     "{\"name\":\"SPARK_JAVA_OPT_X\",\"value\":\"-Dno=index\"}]"));
        assert_int_equal(f->m.patch.n_ops, 5);
        assert_op(f, 0, "add", "/spec/containers/0/env/-", "{\"name\":\"SPARK_JAVA_OPT_0\",\"value\":\"" F1 "\"}");
        assert_op(f, 4, "add", "/spec/containers/0/env/-", "{\"name\":\"SPARK_JAVA_OPT_4\",\"value\":\"" F5 "\"}");
}

static void test_executor_complete_is_untouched(void **state)
{
        struct fixture *f = *state;
        run(f, "team-a",
            EXECUTOR(",\"aadpodidbinding\":\"sparkaks\"",
                     ",\"env\":[{\"name\":\"JAVA_HOME\",\"value\":\"/opt/java/openjdk\"},"
                     "{\"name\":\"SPARK_JAVA_OPT_3\",\"value\":\"" F5 "\"},"
                     "{\"name\":\"SPARK_JAVA_OPT_1\",\"value\":\"" F1 "\"},"
                     "{\"name\":\"SPARK_JAVA_OPT_7\",\"value\":\"" F2 "\"},"
                     "{\"name\":\"SPARK_JAVA_OPT_12\",\"value\":\"" F3 "\"},"
                     "{\"name\":\"SPARK_JAVA_OPT_4\",\"value\":\"" F4 "\"}]"));
        assert_int_equal(f->m.decision, DECISION_UNCHANGED);
        assert_int_equal(f->m.patch.n_ops, 0);
}

static void test_java_tool_options(void **state)
{
        struct fixture *f = *state;
        run(f, "team-e", EXECUTOR("", ",\"env\":[{\"name\":\"JAVA_TOOL_OPTIONS\",\"value\":\"-Xshare:off\"}]"));
        assert_int_equal(f->m.patch.n_ops, 3);
        assert_op(f, 0, "add", "/metadata/labels/aadpodidbinding", "\"e-spark\"");
        assert_op(f, 1, "add", "/spec/containers/0/env/0/value", "\"" FLAGS " -Xshare:off\"");
        assert_op(f, 2, "add", "/spec/containers/0/env/-", "{\"name\":\"JAVA_HOME\",\"value\":\"/opt/java/openjdk\"}");
        fixture_reset(f);
        run(f, "team-e", DRIVER("", ""));
        assert_op(f, 1, "add", "/spec/containers/0/env",
                  "[{\"name\":\"JAVA_HOME\",\"value\":\"/opt/java/openjdk\"},"
                  "{\"name\":\"JAVA_TOOL_OPTIONS\",\"value\":\"" FLAGS "\"}]");
}

static void test_conflict_override(void **state)
{
        struct fixture *f = *state;
        run(f, "team-a", DRIVER(",\"aadpodidbinding\":\"team-b-spark\"", ""));
        assert_int_equal(f->m.decision, DECISION_MUTATED);
        assert_op(f, 0, "replace", "/metadata/labels/aadpodidbinding", "\"sparkaks\"");
        assert_true(has_warning(&f->m, "aadpodidbinding team-b-spark replaced by sparkaks"));
        assert_string_equal(f->m.identity_before, "team-b-spark");
        assert_string_equal(f->m.identity_after, "sparkaks");
}

static void test_conflict_deny(void **state)
{
        struct fixture *f = *state;
        run(f, "team-f", DRIVER(",\"aadpodidbinding\":\"sparkaks\"", ""));
        assert_int_equal(f->m.decision, DECISION_DENIED);
        assert_non_null(strstr(f->m.message, "namespace team-f may not use Azure identity \"sparkaks\""));
        assert_non_null(strstr(f->m.message, "it may use: f-spark"));
        assert_int_equal(f->m.patch.n_ops, 0);
}

static void test_audit_mode_only_warns(void **state)
{
        struct fixture *f = *state;
        run(f, "team-c", DRIVER("", ""));
        assert_int_equal(f->m.decision, DECISION_WOULD_MUTATE);
        assert_int_equal(f->m.mode, POLICY_MODE_AUDIT);
        assert_true(has_warning(&f->m, "audit: would set label aadpodidbinding=c-spark"));
        assert_true(has_warning(&f->m, "audit: would set JAVA_HOME=/opt/java/openjdk"));
        assert_true(has_warning(&f->m, "audit: would add the policy's JVM flags to SPARK_SUBMIT_OPTS"));
        assert_null(f->m.identity_after);
}

static void test_audit_mode_conflict_deny_warns(void **state)
{
        struct fixture *f = *state;
        run(f, "team-c", DRIVER(",\"aadpodidbinding\":\"nobodys\"", ""));
        assert_int_equal(f->m.decision, DECISION_UNCHANGED);
        assert_true(has_warning(
                &f->m, "audit: identity nobodys is not allowed in namespace team-c; the pod would be refused"));
        assert_true(has_warning(&f->m, "audit: identity nobodys conflicts with c-spark; the pod would be refused"));
}

/* The owner's mode protects the identity: a claimer in audit or off mode
 * cannot take an identity whose owner enforces. */
static void test_claimer_mode_does_not_soften(void **state)
{
        static const char *const claimers[] = { "team-c", "team-off" };
        for (size_t i = 0; i < 2; i++) {
                struct fixture f = { .policy = load_policy(policy_text) };
                mutation_init(&f.m);
                run(&f, claimers[i], DRIVER(",\"aadpodidbinding\":\"sparkaks\"", ""));
                assert_int_equal(f.m.decision, DECISION_DENIED);
                assert_non_null(strstr(f.m.message, "may not use Azure identity \"sparkaks\""));
                assert_int_equal(f.m.patch.n_ops, 0);
                cJSON_Delete(f.pod);
                cJSON_Delete(f.ops);
                mutation_free(&f.m);
                policy_free(f.policy);
        }
}

static void test_mode_off_does_nothing(void **state)
{
        struct fixture *f = *state;
        run(f, "team-off", DRIVER(",\"aadpodidbinding\":\"off-spark\"", ""));
        assert_int_equal(f->m.decision, DECISION_UNCHANGED);
        assert_int_equal(f->m.patch.n_ops, 0);
        assert_int_equal(f->m.n_warnings, 0);
}

static void test_non_spark_pods(void **state)
{
        static const struct {
                const char *ns, *label;
                enum decision want;
                const char *message;
        } cases[] = {
                { "team-a", NULL, DECISION_UNCHANGED, NULL },
                { "team-a", "sparkaks", DECISION_UNCHANGED, NULL },
                { "team-a", "team-a-api", DECISION_UNCHANGED, NULL },
                { "team-a", "team-b-spark", DECISION_DENIED,
                  "namespace team-a may not use Azure identity \"team-b-spark\" (label aadpodidbinding); "
                  "it may use: sparkaks, team-a-api" },
                { "team-x", "sparkaks", DECISION_DENIED,
                  "namespace team-x may not use Azure identity \"sparkaks\" (label aadpodidbinding): "
                  "the policy grants it to other namespaces only" },
                { "team-x", "not-in-policy", DECISION_UNCHANGED, NULL },
                { "team-x", NULL, DECISION_UNCHANGED, NULL },
                { "team-c", "nobodys", DECISION_UNCHANGED, NULL },    /* audit, unlisted: warned */
                { "team-c", "sparkaks", DECISION_DENIED,              /* the owner enforces */
                  "namespace team-c may not use Azure identity \"sparkaks\" (label aadpodidbinding); "
                  "it may use: c-spark" },
                { "team-off", "sparkaks", DECISION_DENIED, NULL },
                { "team-off", "nobodys", DECISION_UNCHANGED, NULL },
        };
        for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
                struct fixture f = { .policy = load_policy(policy_text) };
                char pod[512];
                snprintf(pod, sizeof pod,
                         "{\"metadata\":{\"generateName\":\"web-\",\"labels\":{\"app\":\"web\"%s%s%s}},"
                         "\"spec\":{\"containers\":[{\"name\":\"nginx\"}]}}",
                         cases[i].label ? ",\"aadpodidbinding\":\"" : "", cases[i].label ? cases[i].label : "",
                         cases[i].label ? "\"" : "");
                mutation_init(&f.m);
                run(&f, cases[i].ns, pod);
                if (f.m.decision != cases[i].want)
                        fail_msg("case %zu: decision %s", i, mutate_decision_name(f.m.decision));
                assert_int_equal(f.m.role, POD_ROLE_NONE);
                assert_int_equal(f.m.patch.n_ops, 0);
                if (cases[i].message)
                        assert_string_equal(f.m.message, cases[i].message);
                if (strcmp(cases[i].ns, "team-c") == 0 && cases[i].want != DECISION_DENIED)
                        assert_true(has_warning(&f.m, "audit: identity nobodys is not allowed in namespace team-c"));
                else
                        assert_int_equal(f.m.n_warnings, 0);
                cJSON_Delete(f.pod);
                cJSON_Delete(f.ops);
                mutation_free(&f.m);
                policy_free(f.policy);
        }
}

static void test_spark_pod_in_unmatched_namespace(void **state)
{
        struct fixture *f = *state;
        run(f, "team-x", DRIVER("", ""));
        assert_int_equal(f->m.decision, DECISION_UNCHANGED);
        assert_null(f->m.rule);

        struct policy *deny = load_policy("namespaces:\n  team-a: {identity: sparkaks}\nunmatched: deny\n");
        struct mutation m;
        mutation_init(&m);
        assert_int_equal(fixture_decide(deny, "team-x", f->pod, &m), 0);
        assert_int_equal(m.decision, DECISION_DENIED);
        assert_non_null(strstr(m.message, "namespace team-x has no Spark identity in the policy"));
        mutation_free(&m);

        /* A Spark pod there claiming a granted identity is refused too. */
        cJSON *labels = cJSON_GetObjectItem(cJSON_GetObjectItem(f->pod, "metadata"), "labels");
        cJSON_AddStringToObject(labels, "aadpodidbinding", "sparkaks");
        mutation_init(&m);
        assert_int_equal(fixture_decide(f->policy, "team-x", f->pod, &m), 0);
        assert_int_equal(m.decision, DECISION_DENIED);
        assert_non_null(strstr(m.message, "the policy grants it to other namespaces only"));
        mutation_free(&m);
        policy_free(deny);
}

static void test_spark_container_selection(void **state)
{
        static const struct {
                const char *containers;
                int want;
        } cases[] = {
                { "[{\"name\":\"spark-kubernetes-driver\"}]", 0 },
                { "[{\"name\":\"istio-proxy\"},{\"name\":\"spark-kubernetes-executor\"}]", 1 },
                { "[{\"name\":\"sidecar\"},{\"name\":\"executor\"}]", 1 },
                { "[{\"name\":\"main\"},{\"name\":\"fluent-bit\"}]", 0 },
                /* A template's sidecar first: Spark appends its own container. */
                { "[{\"name\":\"fluent-bit\",\"args\":[\"-c\"]},{\"name\":\"main\",\"args\":[\"driver\",\"--properties-"
                  "file\"]}]",
                  1 },
                { "[{\"name\":\"log\"},{\"name\":\"main\",\"args\":[\"executor\"]}]", 1 },
                { "[{\"name\":\"log\"},{\"name\":\"main\",\"env\":[{\"name\":\"SPARK_APPLICATION_ID\",\"value\":"
                  "\"spark-1\"}]}]",
                  1 },
                { "[{\"name\":\"log\",\"args\":[\"driverless\"]},{\"name\":\"main\"}]", 0 },
                { "[]", -1 },
        };
        for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
                char json[512];
                snprintf(json, sizeof json, "{\"spec\":{\"containers\":%s}}", cases[i].containers);
                cJSON *pod = cJSON_Parse(json);
                assert_int_equal(mutate_find_spark_container(pod), cases[i].want);
                cJSON_Delete(pod);
        }
        cJSON *none = cJSON_Parse("{\"spec\":{}}");
        assert_int_equal(mutate_find_spark_container(none), -1);
        cJSON_Delete(none);
}

static void test_sidecar_untouched(void **state)
{
        struct fixture *f = *state;
        run(f, "team-a",
            "{\"metadata\":{\"labels\":{\"spark-role\":\"executor\"}},\"spec\":{\"containers\":["
            "{\"name\":\"istio-proxy\",\"env\":[{\"name\":\"A\",\"value\":\"b\"}]},"
            "{\"name\":\"spark-kubernetes-executor\",\"env\":[]}]}}");
        for (int i = 1; i < cJSON_GetArraySize(f->ops); i++) {
                const char *path = cJSON_GetObjectItem(cJSON_GetArrayItem(f->ops, i), "path")->valuestring;
                assert_int_equal(strncmp(path, "/spec/containers/1/env/", 23), 0);
        }
}

static void test_role_detection(void **state)
{
        static const struct {
                const char *labels;
                enum pod_role want;
        } cases[] = {
                { "{\"spark-role\":\"driver\"}", POD_ROLE_DRIVER },
                { "{\"spark-role\":\"executor\"}", POD_ROLE_EXECUTOR },
                { "{\"spark-role\":\"Driver\"}", POD_ROLE_NONE },
                { "{\"spark-role\":\"\"}", POD_ROLE_NONE },
                { "{\"app\":\"spark\"}", POD_ROLE_NONE },
                { "null", POD_ROLE_NONE },
        };
        for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
                char json[256];
                snprintf(json, sizeof json, "{\"metadata\":{\"labels\":%s}}", cases[i].labels);
                cJSON *pod = cJSON_Parse(json);
                assert_int_equal(mutate_pod_role(pod), cases[i].want);
                cJSON_Delete(pod);
        }
        assert_int_equal(mutate_pod_role(NULL), POD_ROLE_NONE);
}

static void test_no_containers_only_label(void **state)
{
        struct fixture *f = *state;
        run(f, "team-a", "{\"metadata\":{\"labels\":{\"spark-role\":\"driver\"}},\"spec\":{}}");
        assert_int_equal(f->m.patch.n_ops, 1);
        assert_op(f, 0, "add", "/metadata/labels/aadpodidbinding", "\"sparkaks\"");
}

/* ---- rules from labels and annotations, and namespaces that cannot be read ---- */

static const char ns_policy[] =
        "selectors:\n"
        "  - {name: data, namespaceSelector: {matchLabels: {team: data}}, identity: data-spark}\n"
        "namespaceAnnotations: true\n"
        "delegableIdentities: [ann-spark]\n";

struct decided {
        struct pool pool;
        struct resolution res;
        struct mutation m;
        cJSON *pod;
};

static void decide_ns(struct decided *d, const struct policy *p, const char *ns, const struct ns_info *info,
                      const char *lookup_error, const char *pod_json)
{
        d->pool = (struct pool)POOL_INIT;
        mutation_init(&d->m);
        d->pod = cJSON_Parse(pod_json);
        assert_int_equal(policy_resolve(p, ns, info, &d->pool, &d->res), 0);
        struct mutate_context mc = { .res = &d->res, .lookup_error = lookup_error };
        assert_int_equal(mutate_pod(p, ns, &mc, d->pod, &d->m), 0);
}

static void decided_free(struct decided *d)
{
        mutation_free(&d->m);
        pool_free(&d->pool);
        cJSON_Delete(d->pod);
}

static void test_rule_from_selector_and_annotations(void **state)
{
        struct policy *p = load_policy(ns_policy);
        struct decided d;
        struct kv data[] = { { "team", "data" } };
        struct ns_info by_label = { .labels = data, .n_labels = 1 };
        decide_ns(&d, p, "lake", &by_label, NULL, DRIVER("", ""));
        assert_int_equal(d.m.decision, DECISION_MUTATED);
        assert_string_equal(d.m.rule->name, "selector data");
        assert_string_equal(d.m.identity_after, "data-spark");
        decided_free(&d);

        struct kv ann[] = { { "spark-identity.io/identity", "ann-spark" } };
        struct ns_info by_ann = { .labels = data, .n_labels = 1, .annotations = ann, .n_annotations = 1 };
        decide_ns(&d, p, "lake", &by_ann, NULL, DRIVER("", ""));
        assert_int_equal(d.m.decision, DECISION_MUTATED);
        assert_string_equal(d.m.rule->name, "annotations of lake");
        assert_string_equal(d.m.identity_after, "ann-spark");
        decided_free(&d);

        struct kv bad[] = { { "spark-identity.io/identity", "ann-spark" }, { "spark-identity.io/client-id", "x" } };
        struct ns_info by_bad = { .annotations = bad, .n_annotations = 2 };
        decide_ns(&d, p, "lake", &by_bad, NULL, DRIVER("", ""));
        assert_int_equal(d.m.decision, DECISION_DENIED);
        assert_non_null(strstr(d.m.message, "namespace lake's spark-identity.io annotations do not make a valid "
                                            "rule: spark-identity.io/client-id \"x\" is not a GUID"));
        decided_free(&d);
        policy_free(p);
}

static void test_namespace_that_cannot_be_read(void **state)
{
        struct policy *deny = load_policy(ns_policy);
        struct decided d;
        decide_ns(&d, deny, "lake", NULL, "timed out", EXECUTOR("", ""));
        assert_int_equal(d.m.decision, DECISION_DENIED);
        assert_string_equal(d.m.message, "namespace lake could not be read (timed out), and the policy refuses "
                                         "its Spark and identity-claiming pods then (onLookupFailure: deny)");
        decided_free(&d);

        /* A pod that neither runs Spark nor claims an identity does not depend on it. */
        decide_ns(&d, deny, "lake", NULL, "timed out",
                  "{\"metadata\":{\"labels\":{\"app\":\"web\"}},\"spec\":{\"containers\":[{\"name\":\"w\"}]}}");
        assert_int_equal(d.m.decision, DECISION_UNCHANGED);
        assert_int_equal(d.m.n_warnings, 0);
        decided_free(&d);
        policy_free(deny);

        char text[512];
        snprintf(text, sizeof text, "%sonLookupFailure: allow\n", ns_policy);
        struct policy *allow = load_policy(text);
        decide_ns(&d, allow, "lake", NULL, "HTTP 403: forbidden",
                  "{\"metadata\":{\"labels\":{\"aadpodidbinding\":\"data-spark\"}},\"spec\":{}}");
        assert_int_equal(d.m.decision, DECISION_UNCHANGED);
        assert_true(has_warning(&d.m, "namespace lake could not be read (HTTP 403: forbidden); allowed unchanged"));
        decided_free(&d);
        policy_free(allow);
}

/* Found by fuzz_review: a warning cut a JAVA_HOME inside a UTF-8 character. */
static void test_warnings_stay_utf8(void **state)
{
        struct fixture *f = *state;
        char pod[1024], home[200] = "/opt/";
        for (int i = 0; i < 30; i++)
                strcat(home, "\xc3\xa9");   /* é, two bytes each */
        snprintf(pod, sizeof pod,
                 DRIVER(",\"aadpodidbinding\":\"sparkaks\"", ",\"env\":[{\"name\":\"JAVA_HOME\",\"value\":\"%s\"}]"),
                 home);
        run(f, "team-a", pod);
        assert_true(has_warning(&f->m, "JAVA_HOME /opt/"));
        for (unsigned i = 0; i < f->m.n_warnings; i++) {
                const unsigned char *w = (const unsigned char *)f->m.warnings[i];
                for (size_t k = 0; w[k]; k++) {
                        if (w[k] == 0xc3)
                                assert_int_equal(w[k + 1], 0xa9);   /* never a lead byte alone */
                        if (w[k] == 0xa9)
                                assert_int_equal(w[k - 1], 0xc3);
                }
        }
}

static void test_names(void **state)
{
        assert_string_equal(mutate_decision_name(DECISION_WOULD_MUTATE), "would-mutate");
        assert_string_equal(mutate_decision_name(DECISION_MAX), "?");
        assert_string_equal(mutate_role_name(POD_ROLE_EXECUTOR), "executor");
}

/* ---- the real-shaped fixtures (tests/fixtures, as the API server sends them) ---- */

static void test_fixture_spark_pods(void **state)
{
        static const struct {
                const char *file;
                enum pod_role role;
                enum decision want;
        } cases[] = {
                { "spark35-driver.json", POD_ROLE_DRIVER, DECISION_MUTATED },
                { "spark35-pyspark-driver.json", POD_ROLE_DRIVER, DECISION_MUTATED },
                { "spark35-executor.json", POD_ROLE_EXECUTOR, DECISION_MUTATED },
                { "spark33-executor.json", POD_ROLE_EXECUTOR, DECISION_MUTATED },
                { "spark24-executor.json", POD_ROLE_EXECUTOR, DECISION_MUTATED },
                { "spark35-driver-template-sidecar.json", POD_ROLE_DRIVER, DECISION_MUTATED },
                { "spark35-driver-template-sidecar-first.json", POD_ROLE_DRIVER, DECISION_MUTATED },
                { "spark35-driver-mutated.json", POD_ROLE_DRIVER, DECISION_UNCHANGED },
                { "nginx-pod.json", POD_ROLE_NONE, DECISION_UNCHANGED },
                { "api-pod-allowed.json", POD_ROLE_NONE, DECISION_UNCHANGED },
        };
        struct policy *p = fixture_policy("policy.yaml");
        for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
                cJSON *pod = fixture_pod(cases[i].file);
                struct mutation m;
                mutation_init(&m);
                assert_int_equal(fixture_decide(p, "team-a", pod, &m), 0);
                if (m.role != cases[i].role || m.decision != cases[i].want)
                        fail_msg("%s: role %s decision %s", cases[i].file, mutate_role_name(m.role),
                                 mutate_decision_name(m.decision));
                if (m.decision == DECISION_MUTATED) {
                        cJSON *ops = cJSON_Parse(m.patch.text.data);
                        assert_non_null(ops);
                        /* Nothing but the label and the Spark container's env. */
                        const cJSON *op;
                        int ci = mutate_find_spark_container(pod);
                        char prefix[64];
                        snprintf(prefix, sizeof prefix, "/spec/containers/%d/env", ci);
                        cJSON_ArrayForEach(op, ops) {
                                const char *path = cJSON_GetObjectItem(op, "path")->valuestring;
                                if (strcmp(path, "/metadata/labels/aadpodidbinding") != 0 &&
                                    strncmp(path, prefix, strlen(prefix)) != 0)
                                        fail_msg("%s: unexpected path %s", cases[i].file, path);
                        }
                        cJSON_Delete(ops);
                }
                mutation_free(&m);
                cJSON_Delete(pod);
        }
        policy_free(p);
}

/* ---- the typed changes ---- */

/* The patch is what jsonpatch_changes() makes of the changes, byte for byte. */
static void assert_patch_of_changes(const struct mutation *m)
{
        struct jsonpatch p;
        jsonpatch_init(&p);
        assert_int_equal(jsonpatch_changes(&p, m->changes, m->n_changes), 0);
        assert_int_equal(p.n_ops, m->patch.n_ops);
        assert_string_equal(p.text.data, m->patch.text.data);
        jsonpatch_free(&p);
}

static void assert_change(const struct change *c, enum change_kind kind, enum change_place place, const char *name,
                          const char *value, const char *old)
{
        assert_int_equal(c->kind, kind);
        assert_int_equal(c->place, place);
        if (name)
                assert_string_equal(c->name, name);
        else
                assert_null(c->name);
        if (value)
                assert_string_equal(c->value, value);
        else
                assert_null(c->value);
        if (old)
                assert_string_equal(c->old, old);
        else
                assert_null(c->old);
}

/* A driver with a JAVA_HOME and flags of its own: the label added, both
 * entries set in place, with what they had; the merged flags are ours
 * first. */
static void test_typed_changes_driver(void **state)
{
        struct fixture *f = *state;
        run(f, "team-a",
            DRIVER("", ",\"env\":[{\"name\":\"JAVA_HOME\",\"value\":\"/opt/jdk8\"},"
                       "{\"name\":\"SPARK_SUBMIT_OPTS\",\"value\":\"-Dfoo=bar\"}]"));
        assert_int_equal(f->m.decision, DECISION_MUTATED);
        assert_int_equal(f->m.n_changes, 3);
        assert_change(&f->m.changes[0], CHANGE_SET_IDENTITY_LABEL, CHANGE_PLACE_ADD, NULL, "sparkaks", NULL);
        assert_change(&f->m.changes[1], CHANGE_SET_ENV, CHANGE_PLACE_ADD, "JAVA_HOME", "/opt/java/openjdk",
                      "/opt/jdk8");
        assert_int_equal(f->m.changes[1].index, 0);
        assert_change(&f->m.changes[2], CHANGE_SET_ENV, CHANGE_PLACE_ADD, "SPARK_SUBMIT_OPTS", FLAGS " -Dfoo=bar",
                      "-Dfoo=bar");
        assert_int_equal(f->m.changes[2].index, 1);
        for (size_t i = 1; i < 3; i++) {
                assert_true(change_in_container(&f->m.changes[i]));
                assert_int_equal(f->m.changes[i].list, CHANGE_CONTAINERS);
                assert_int_equal(f->m.changes[i].container, 0);
                assert_string_equal(f->m.changes[i].container_name, "spark-kubernetes-driver");
        }
        assert_false(change_in_container(&f->m.changes[0]));
        assert_patch_of_changes(&f->m);
}

/* An executor with another identity (override) and one numbered flag: the
 * label replaced, the flags it lacks numbered past its highest; an executor
 * without labels or env gets them whole. */
static void test_typed_changes_executor(void **state)
{
        struct fixture *f = *state;
        run(f, "team-b",
            EXECUTOR(",\"aadpodidbinding\":\"other\"",
                     ",\"env\":[{\"name\":\"SPARK_JAVA_OPT_4\",\"value\":\"-Dx=1\"}]"));
        assert_int_equal(f->m.decision, DECISION_MUTATED);
        assert_int_equal(f->m.n_changes, 5);    /* the label, JAVA_HOME, F1 F2 F3 (team-b has no client) */
        assert_change(&f->m.changes[0], CHANGE_SET_IDENTITY_LABEL, CHANGE_PLACE_REPLACE, NULL, "team-b-spark", "other");
        assert_change(&f->m.changes[1], CHANGE_ADD_ENV, CHANGE_PLACE_ADD, "JAVA_HOME", "/opt/java/openjdk", NULL);
        const char *const flags[] = { F1, F2, F3 };
        for (unsigned i = 0; i < 3; i++) {
                assert_change(&f->m.changes[2 + i], CHANGE_ADD_JAVA_OPT, CHANGE_PLACE_ADD, NULL, flags[i], NULL);
                assert_int_equal(f->m.changes[2 + i].index, 5 + i);
        }
        assert_patch_of_changes(&f->m);

        fixture_reset(f);
        run(f, "team-b", "{\"metadata\":{\"name\":\"e\"},\"spec\":{\"containers\":[{\"name\":\"executor\"}]}}");
        assert_int_equal(f->m.decision, DECISION_UNCHANGED);    /* no spark-role label: not Spark's */
        assert_int_equal(f->m.n_changes, 0);

        fixture_reset(f);
        run(f, "team-b", EXECUTOR("", ""));
        assert_int_equal(f->m.n_changes, 5);
        assert_int_equal(f->m.patch.n_ops, 2);  /* the label; the env list, whole */
        assert_change(&f->m.changes[1], CHANGE_ADD_ENV, CHANGE_PLACE_NEW, "JAVA_HOME", "/opt/java/openjdk", NULL);
        assert_change(&f->m.changes[2], CHANGE_ADD_JAVA_OPT, CHANGE_PLACE_NEW, NULL, F1, NULL);
        assert_int_equal(f->m.changes[2].index, 0);
        assert_false(change_starts_op(&f->m.changes[1], &f->m.changes[2]));
        assert_patch_of_changes(&f->m);
}

/* A refused pod's changes stop part way; audit mode keeps them all (what
 * would change) and their patch, which is never sent. */
static void test_typed_changes_by_decision(void **state)
{
        struct fixture *f = *state;
        run(f, "team-f", DRIVER(",\"aadpodidbinding\":\"other\"", ""));
        assert_int_equal(f->m.decision, DECISION_DENIED);

        fixture_reset(f);
        run(f, "team-c", DRIVER("", ""));
        assert_int_equal(f->m.decision, DECISION_WOULD_MUTATE);
        assert_int_equal(f->m.n_changes, 3);
        assert_int_equal(f->m.changes[0].kind, CHANGE_SET_IDENTITY_LABEL);
        assert_patch_of_changes(&f->m);
}

/* A pod whose changes would pass WH_MAX_CHANGES (and the patch its
 * operations bound): -E2BIG, which admission answers with a 500. */
static void test_typed_changes_bound(void **state)
{
        struct policy *p = fixture_policy("policy-workload-identity.yaml");
        cJSON *pod = cJSON_Parse(DRIVER("", ""));
        cJSON *inits = cJSON_AddArrayToObject(cJSON_GetObjectItem(pod, "spec"), "initContainers");
        (void)state;
        for (unsigned i = 0; i <= WH_MAX_CHANGES / 5; i++) {
                cJSON *c = cJSON_CreateObject();
                cJSON_AddStringToObject(c, "name", "fetch-deps");
                cJSON_AddItemToArray(inits, c);
        }
        cJSON_AddStringToObject(cJSON_GetObjectItem(pod, "spec"), "serviceAccountName", "spark-wi");
        struct mutation *m = malloc(sizeof *m);
        assert_non_null(m);
        mutation_init(m);
        assert_int_equal(fixture_decide(p, "team-wi", pod, m), -E2BIG);
        assert_int_equal(m->n_changes, WH_MAX_CHANGES);
        mutation_free(m);

        /* Fewer containers fit. */
        while (cJSON_GetArraySize(inits) > 10)
                cJSON_DeleteItemFromArray(inits, 0);
        mutation_init(m);
        assert_int_equal(fixture_decide(p, "team-wi", pod, m), 0);
        assert_int_equal(m->decision, DECISION_MUTATED);
        assert_patch_of_changes(m);
        mutation_free(m);
        free(m);
        cJSON_Delete(pod);
        policy_free(p);
}

int main(void)
{
        const struct CMUnitTest tests[] = {
                cmocka_unit_test_setup_teardown(test_driver_without_env_gets_whole_list, setup, teardown),
                cmocka_unit_test_setup_teardown(test_driver_env_appended, setup, teardown),
                cmocka_unit_test_setup_teardown(test_driver_user_opts_kept_after_ours, setup, teardown),
                cmocka_unit_test_setup_teardown(test_driver_only_missing_flags_added, setup, teardown),
                cmocka_unit_test_setup_teardown(test_driver_already_mutated_is_untouched, setup, teardown),
                cmocka_unit_test_setup_teardown(test_driver_value_from_left_alone, setup, teardown),
                cmocka_unit_test_setup_teardown(test_driver_entry_without_value, setup, teardown),
                cmocka_unit_test_setup_teardown(test_java_home_replaced_with_warning, setup, teardown),
                cmocka_unit_test_setup_teardown(test_executor_java_opts_numbered_past_highest, setup, teardown),
                cmocka_unit_test_setup_teardown(test_executor_without_java_opts_starts_at_zero, setup, teardown),
                cmocka_unit_test_setup_teardown(test_executor_complete_is_untouched, setup, teardown),
                cmocka_unit_test_setup_teardown(test_java_tool_options, setup, teardown),
                cmocka_unit_test_setup_teardown(test_conflict_override, setup, teardown),
                cmocka_unit_test_setup_teardown(test_conflict_deny, setup, teardown),
                cmocka_unit_test_setup_teardown(test_audit_mode_only_warns, setup, teardown),
                cmocka_unit_test_setup_teardown(test_audit_mode_conflict_deny_warns, setup, teardown),
                cmocka_unit_test(test_claimer_mode_does_not_soften),
                cmocka_unit_test_setup_teardown(test_mode_off_does_nothing, setup, teardown),
                cmocka_unit_test(test_non_spark_pods),
                cmocka_unit_test_setup_teardown(test_spark_pod_in_unmatched_namespace, setup, teardown),
                cmocka_unit_test(test_spark_container_selection),
                cmocka_unit_test_setup_teardown(test_sidecar_untouched, setup, teardown),
                cmocka_unit_test(test_role_detection),
                cmocka_unit_test_setup_teardown(test_no_containers_only_label, setup, teardown),
                cmocka_unit_test(test_rule_from_selector_and_annotations),
                cmocka_unit_test(test_namespace_that_cannot_be_read),
                cmocka_unit_test_setup_teardown(test_warnings_stay_utf8, setup, teardown),
                cmocka_unit_test(test_names),
                cmocka_unit_test(test_fixture_spark_pods),
                cmocka_unit_test_setup_teardown(test_typed_changes_driver, setup, teardown),
                cmocka_unit_test_setup_teardown(test_typed_changes_executor, setup, teardown),
                cmocka_unit_test_setup_teardown(test_typed_changes_by_decision, setup, teardown),
                cmocka_unit_test(test_typed_changes_bound),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
