/* Findings on stored pods: every problem kind, from the real Spark fixtures
 * (tests/fixtures, request.object of each AdmissionReview) and
 * tests/fixtures/policy.yaml; the modes; namespaces known, unknown and
 * annotated; the counts; and, over every fixture and namespace, agreement
 * with what admission itself decides. */
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

#include "fixture_files.h"

#include "buf.h"
#include "findings.h"
#include "mutate.h"
#include "policy.h"
#include "pool.h"

#define CLIENT_A "d23f0824-128b-4f33-8c5c-7fd0a6a3a450"
#define TENANT "6513270e-269e-4d37-b2a7-4de452e6b438"
#define MSI "org.apache.hadoop.fs.azurebfs.oauth2.MsiTokenProvider"
#define F1 "-Dio.netty.tryReflectionSetAccessible=true"
#define F2 "-Dspark.hadoop.fs.azure.account.auth.type=OAuth"
#define F3 "-Dspark.hadoop.fs.azure.account.oauth.provider.type=" MSI
#define F4 "-Dspark.hadoop.fs.azure.account.oauth2.client.id=" CLIENT_A
#define F5 "-Dspark.hadoop.fs.azure.account.oauth2.msi.tenant=" TENANT
#define FLAGS_A F1 " " F2 " " F3 " " F4 " " F5

/* ---- fixtures ---- */


/* Sets metadata.labels[key] (NULL removes it). */
static void set_label(cJSON *pod, const char *key, const char *value)
{
        cJSON *labels = cJSON_GetObjectItem(cJSON_GetObjectItem(pod, "metadata"), "labels");
        cJSON_DeleteItemFromObjectCaseSensitive(labels, key);
        if (value)
                cJSON_AddStringToObject(labels, key, value);
}

static cJSON *spark_env(cJSON *pod)
{
        int ci = mutate_find_spark_container(pod);
        assert_true(ci >= 0);
        cJSON *c = cJSON_GetArrayItem(cJSON_GetObjectItem(cJSON_GetObjectItem(pod, "spec"), "containers"), ci);
        cJSON *env = cJSON_GetObjectItem(c, "env");
        if (!env)
                env = cJSON_AddArrayToObject(c, "env");
        return env;
}

/* Sets an env entry of the Spark container (NULL removes it). */
static void set_env(cJSON *pod, const char *name, const char *value)
{
        cJSON *env = spark_env(pod);
        int i = 0;
        cJSON *e;
        cJSON_ArrayForEach(e, env) {
                if (strcmp(cJSON_GetObjectItem(e, "name")->valuestring, name) == 0) {
                        cJSON_DeleteItemFromArray(env, i);
                        break;
                }
                i++;
        }
        if (!value)
                return;
        e = cJSON_CreateObject();
        cJSON_AddStringToObject(e, "name", name);
        cJSON_AddStringToObject(e, "value", value);
        cJSON_AddItemToArray(env, e);
}

/* ---- judging ---- */

struct result {
        int rc;
        enum pod_verdict verdict;
        struct findings f;
};

static void judge_with(const struct policy *p, const char *ns, const struct findings_context *fc, const cJSON *pod,
                       struct result *r)
{
        findings_init(&r->f, 1000);
        r->verdict = VERDICT_MAX;
        r->rc = findings_check_pod(p, ns, fc, pod, &r->f, &r->verdict);
}

/* A namespace known to have no labels and no annotations. */
static void judge(const struct policy *p, const char *ns, const cJSON *pod, struct result *r)
{
        static const struct ns_info none = { 0 };
        struct findings_context fc = { .info = &none };
        judge_with(p, ns, &fc, pod, r);
}

/* The finding with `problem`, or NULL. */
static const struct finding *find(const struct result *r, enum finding_problem problem)
{
        for (size_t i = 0; i < r->f.n; i++)
                if (r->f.items[i].problem == problem)
                        return &r->f.items[i];
        return NULL;
}

/* Asserts exactly these problems, in any order; the list ends with -1. */
static void assert_problems(const struct result *r, ...)
{
        bool want[FINDING_PROBLEM_MAX] = { false };
        size_t n = 0;
        va_list ap;
        va_start(ap, r);
        for (int k = va_arg(ap, int); k >= 0; k = va_arg(ap, int)) {
                want[k] = true;
                n++;
        }
        va_end(ap);
        assert_int_equal(r->rc, 0);
        for (size_t i = 0; i < r->f.n; i++)
                if (!want[r->f.items[i].problem])
                        fail_msg("unexpected %s: expected \"%s\", found \"%s\"",
                                 finding_problem_name(r->f.items[i].problem), r->f.items[i].expected,
                                 r->f.items[i].found);
        for (int k = 0; k < FINDING_PROBLEM_MAX; k++)
                if (want[k] && !find(r, k))
                        fail_msg("no %s finding", finding_problem_name(k));
        assert_int_equal(r->f.n, n);
        assert_int_equal(r->verdict, n ? VERDICT_FINDINGS : VERDICT_COMPLIANT);
}

static void assert_finding(const struct result *r, enum finding_problem problem, const char *expected,
                           const char *found)
{
        const struct finding *it = find(r, problem);
        if (!it)
                fail_msg("no %s finding", finding_problem_name(problem));
        assert_string_equal(it->expected, expected);
        assert_string_equal(it->found, found);
}

static void done(struct result *r)
{
        findings_free(&r->f);
}

/* ---- each problem, on the real fixtures ---- */

static void test_compliant_driver(void **state)
{
        struct policy *p = fixture_policy("policy.yaml");
        cJSON *pod = fixture_pod("spark35-driver-mutated.json");
        struct result r;
        judge(p, "team-a", pod, &r);
        assert_problems(&r, -1);
        assert_int_equal(r.f.n_namespaces, 1);
        assert_int_equal(r.f.namespaces[0].verdicts[VERDICT_COMPLIANT], 1);
        assert_string_equal(r.f.namespaces[0].rule, "team-a");
        done(&r);
        cJSON_Delete(pod);
        policy_free(p);
}

static void test_unmutated_driver(void **state)
{
        struct policy *p = fixture_policy("policy.yaml");
        cJSON *pod = fixture_pod("spark35-driver.json");
        struct result r;
        judge(p, "team-a", pod, &r);
        assert_problems(&r, FINDING_MISSING_IDENTITY, FINDING_MISSING_JVM_SETTINGS, -1);
        assert_finding(&r, FINDING_MISSING_IDENTITY, "aadpodidbinding=sparkaks", "no aadpodidbinding label");
        assert_finding(&r, FINDING_MISSING_JVM_SETTINGS, "JAVA_HOME=/opt/java/openjdk; SPARK_SUBMIT_OPTS=" FLAGS_A,
                       "JAVA_HOME unset; SPARK_SUBMIT_OPTS unset");
        const struct finding *it = find(&r, FINDING_MISSING_IDENTITY);
        assert_string_equal(it->namespace_, "team-a");
        assert_string_equal(it->pod, "spark-pi-84bba090065d3cdb-driver");
        assert_int_equal(it->role, POD_ROLE_DRIVER);
        assert_string_equal(it->app_id, "spark-566bf9d7c55a45f891a6e55e9b9b1325");
        assert_string_equal(it->rule, "team-a");
        assert_int_equal(it->mode, POLICY_MODE_ENFORCE);
        assert_null(it->phase);
        done(&r);

        /* A stored pod's phase goes with its findings. */
        cJSON *st = cJSON_GetObjectItem(pod, "status");
        if (!st)
                st = cJSON_AddObjectToObject(pod, "status");
        cJSON_AddStringToObject(st, "phase", "Succeeded");
        judge(p, "team-a", pod, &r);
        assert_string_equal(find(&r, FINDING_MISSING_IDENTITY)->phase, "Succeeded");
        done(&r);
        cJSON_Delete(pod);
        policy_free(p);
}

/* The Spark 3.5 executor already carries the netty flag among Spark's own
 * SPARK_JAVA_OPT_n: only the hadoop flags are missing. */
static void test_unmutated_executor(void **state)
{
        struct policy *p = fixture_policy("policy.yaml");
        cJSON *pod = fixture_pod("spark35-executor.json");
        struct result r;
        judge(p, "team-a", pod, &r);
        assert_problems(&r, FINDING_MISSING_IDENTITY, FINDING_MISSING_JVM_SETTINGS, -1);
        assert_finding(&r, FINDING_MISSING_JVM_SETTINGS,
                       "JAVA_HOME=/opt/java/openjdk; SPARK_JAVA_OPT_<n> for each of: " F2 " " F3 " " F4 " " F5,
                       "JAVA_HOME unset; no SPARK_JAVA_OPT_<n> with them");
        assert_int_equal(find(&r, FINDING_MISSING_IDENTITY)->role, POD_ROLE_EXECUTOR);
        done(&r);
        cJSON_Delete(pod);
        policy_free(p);
}

/* An executor with everything admission would add is compliant. */
static void test_compliant_executor(void **state)
{
        static const char *const names[] = { "spark33-executor.json", "spark24-executor.json",
                                             "spark35-executor.json" };
        struct policy *p = fixture_policy("policy.yaml");
        for (size_t i = 0; i < sizeof names / sizeof *names; i++) {
                cJSON *pod = fixture_pod(names[i]);
                struct result r;
                set_label(pod, "aadpodidbinding", "sparkaks");
                set_env(pod, "JAVA_HOME", "/opt/java/openjdk");
                set_env(pod, "SPARK_JAVA_OPT_100", F1);
                set_env(pod, "SPARK_JAVA_OPT_101", F2);
                set_env(pod, "SPARK_JAVA_OPT_102", F3);
                set_env(pod, "SPARK_JAVA_OPT_103", F4);
                judge(p, "team-a", pod, &r);
                assert_problems(&r, FINDING_MISSING_JVM_SETTINGS, -1);
                assert_finding(&r, FINDING_MISSING_JVM_SETTINGS, "SPARK_JAVA_OPT_<n> for each of: " F5,
                               "no SPARK_JAVA_OPT_<n> with it");
                done(&r);
                set_env(pod, "SPARK_JAVA_OPT_104", F5);
                judge(p, "team-a", pod, &r);
                assert_problems(&r, -1);
                done(&r);
                cJSON_Delete(pod);
        }
        policy_free(p);
}

/* The fixture's driver claims team-b's identity in team-a: another identity
 * than its rule's (admission would replace it), and one team-a may not use. */
static void test_wrong_and_foreign_identity(void **state)
{
        struct policy *p = fixture_policy("policy.yaml");
        cJSON *pod = fixture_pod("spark35-driver-foreign-identity.json");
        struct result r;
        judge(p, "team-a", pod, &r);
        assert_problems(&r, FINDING_WRONG_IDENTITY, FINDING_FOREIGN_IDENTITY, FINDING_MISSING_JVM_SETTINGS, -1);
        assert_finding(&r, FINDING_WRONG_IDENTITY, "aadpodidbinding=sparkaks", "aadpodidbinding=team-b-spark");
        assert_finding(&r, FINDING_FOREIGN_IDENTITY, "an identity namespace team-a may use: sparkaks, team-a-api",
                       "aadpodidbinding=team-b-spark");
        done(&r);

        /* team-a-api is allowed in team-a, but a Spark pod gets sparkaks. */
        set_label(pod, "aadpodidbinding", "team-a-api");
        judge(p, "team-a", pod, &r);
        assert_problems(&r, FINDING_WRONG_IDENTITY, FINDING_MISSING_JVM_SETTINGS, -1);
        done(&r);

        /* onConflict: deny (team-f) is judged like override, so the JVM
         * settings are checked too. */
        set_label(pod, "aadpodidbinding", "sparkaks");
        judge(p, "team-f", pod, &r);
        assert_problems(&r, FINDING_WRONG_IDENTITY, FINDING_FOREIGN_IDENTITY, FINDING_MISSING_JVM_SETTINGS, -1);
        assert_finding(&r, FINDING_WRONG_IDENTITY, "aadpodidbinding=f-spark", "aadpodidbinding=sparkaks");
        done(&r);
        cJSON_Delete(pod);
        policy_free(p);
}

static void test_foreign_identity_on_other_pods(void **state)
{
        struct policy *p = fixture_policy("policy.yaml");
        cJSON *rogue = fixture_pod("rogue-pod.json");
        cJSON *api = fixture_pod("api-pod-allowed.json");
        cJSON *nginx = fixture_pod("nginx-pod.json");
        struct result r;

        /* team-x has no rule: it may not claim an identity granted to team-a. */
        judge(p, "team-x", rogue, &r);
        assert_problems(&r, FINDING_FOREIGN_IDENTITY, -1);
        assert_finding(&r, FINDING_FOREIGN_IDENTITY,
                       "an identity the policy does not grant to other namespaces (namespace team-x has no rule)",
                       "aadpodidbinding=sparkaks");
        assert_int_equal(find(&r, FINDING_FOREIGN_IDENTITY)->role, POD_ROLE_NONE);
        assert_null(find(&r, FINDING_FOREIGN_IDENTITY)->app_id);
        assert_null(find(&r, FINDING_FOREIGN_IDENTITY)->rule);
        assert_string_equal(find(&r, FINDING_FOREIGN_IDENTITY)->pod, "debug-shell");
        done(&r);

        /* In team-b, sparkaks is not team-b's. */
        judge(p, "team-b", rogue, &r);
        assert_problems(&r, FINDING_FOREIGN_IDENTITY, -1);
        assert_finding(&r, FINDING_FOREIGN_IDENTITY, "an identity namespace team-b may use: team-b-spark",
                       "aadpodidbinding=sparkaks");
        done(&r);

        /* An identity the policy never mentions is not our business in team-x. */
        set_label(rogue, "aadpodidbinding", "someone-elses");
        judge(p, "team-x", rogue, &r);
        assert_problems(&r, -1);
        done(&r);

        /* team-a may use team-a-api: compliant. The pod has only a generateName. */
        judge(p, "team-a", api, &r);
        assert_problems(&r, -1);
        done(&r);
        judge(p, "team-b", api, &r);
        assert_problems(&r, FINDING_FOREIGN_IDENTITY, -1);
        assert_string_equal(find(&r, FINDING_FOREIGN_IDENTITY)->pod, "orders-api-6c4b8d7f95-");
        done(&r);

        /* Not Spark's, no claim: only counted. */
        judge(p, "team-a", nginx, &r);
        assert_int_equal(r.rc, 0);
        assert_int_equal(r.verdict, VERDICT_NOT_CONCERNED);
        assert_int_equal(r.f.n, 0);
        assert_int_equal(r.f.namespaces[0].pods, 1);
        assert_int_equal(r.f.namespaces[0].spark_pods, 0);
        done(&r);
        cJSON_Delete(rogue);
        cJSON_Delete(api);
        cJSON_Delete(nginx);
        policy_free(p);
}

static void test_no_policy(void **state)
{
        struct policy *deny = fixture_policy("policy-unmatched-deny.yaml");
        struct policy *allow = fixture_policy("policy.yaml");
        cJSON *pod = fixture_pod("spark35-driver.json");
        struct result r;

        judge(deny, "team-x", pod, &r);
        assert_problems(&r, FINDING_NO_POLICY, -1);
        assert_finding(&r, FINDING_NO_POLICY,
                       "a rule for namespace team-x (unmatched: deny refuses Spark pods elsewhere)", "no rule");
        done(&r);

        /* unmatched: allow admits it unchanged: nothing to say. */
        judge(allow, "team-x", pod, &r);
        assert_problems(&r, -1);
        done(&r);

        /* A Spark pod in team-x with team-a's identity: both. */
        set_label(pod, "aadpodidbinding", "sparkaks");
        judge(deny, "team-x", pod, &r);
        assert_problems(&r, FINDING_FOREIGN_IDENTITY, FINDING_NO_POLICY, -1);
        done(&r);
        cJSON_Delete(pod);
        policy_free(deny);
        policy_free(allow);
}

static void test_jvm_settings_partly_there(void **state)
{
        struct policy *p = fixture_policy("policy.yaml");
        cJSON *pod = fixture_pod("spark35-driver-mutated.json");
        struct result r;

        /* Another JAVA_HOME. */
        set_env(pod, "JAVA_HOME", "/usr/lib/jvm/java-8");
        judge(p, "team-a", pod, &r);
        assert_problems(&r, FINDING_MISSING_JVM_SETTINGS, -1);
        assert_finding(&r, FINDING_MISSING_JVM_SETTINGS, "JAVA_HOME=/opt/java/openjdk",
                       "JAVA_HOME=/usr/lib/jvm/java-8");
        done(&r);
        set_env(pod, "JAVA_HOME", "/opt/java/openjdk");

        /* A user's own SPARK_SUBMIT_OPTS with one of ours: admission would
         * put the missing ones first and keep the user's. */
        set_env(pod, "SPARK_SUBMIT_OPTS", "-Dfoo=bar " F4);
        judge(p, "team-a", pod, &r);
        assert_problems(&r, FINDING_MISSING_JVM_SETTINGS, -1);
        assert_finding(&r, FINDING_MISSING_JVM_SETTINGS, "SPARK_SUBMIT_OPTS=" F1 " " F2 " " F3 " " F5 " -Dfoo=bar " F4,
                       "SPARK_SUBMIT_OPTS=-Dfoo=bar " F4);
        done(&r);

        /* Every flag, in any order, with the user's: compliant. */
        set_env(pod, "SPARK_SUBMIT_OPTS", "-Dfoo=bar " F5 " " F4 " " F3 " " F2 " " F1);
        judge(p, "team-a", pod, &r);
        assert_problems(&r, -1);
        done(&r);
        cJSON_Delete(pod);
        policy_free(p);
}

static void test_jvm_settings_from_value_from(void **state)
{
        struct policy *p = fixture_policy("policy.yaml");
        cJSON *pod = fixture_pod("spark35-driver-valuefrom.json");
        struct result r;
        judge(p, "team-a", pod, &r);
        assert_problems(&r, FINDING_MISSING_IDENTITY, FINDING_MISSING_JVM_SETTINGS, -1);
        assert_finding(&r, FINDING_MISSING_JVM_SETTINGS, "JAVA_HOME=/opt/java/openjdk; SPARK_SUBMIT_OPTS=" FLAGS_A,
                       "JAVA_HOME unset; SPARK_SUBMIT_OPTS from valueFrom (not checked; admission leaves it alone)");
        done(&r);

        /* Everything else in place: only the valueFrom variable remains. */
        set_label(pod, "aadpodidbinding", "sparkaks");
        set_env(pod, "JAVA_HOME", "/opt/java/openjdk");
        judge(p, "team-a", pod, &r);
        assert_problems(&r, FINDING_MISSING_JVM_SETTINGS, -1);
        assert_finding(&r, FINDING_MISSING_JVM_SETTINGS, "SPARK_SUBMIT_OPTS=" FLAGS_A,
                       "SPARK_SUBMIT_OPTS from valueFrom (not checked; admission leaves it alone)");
        done(&r);
        cJSON_Delete(pod);
        policy_free(p);
}

/* jvmEnv: JAVA_TOOL_OPTIONS (team-e); a pod template's renamed container. */
static void test_java_tool_options_and_templates(void **state)
{
        struct policy *p = fixture_policy("policy.yaml");
        cJSON *pod = fixture_pod("spark35-pyspark-driver.json");
        struct result r;
        judge(p, "team-e", pod, &r);
        assert_problems(&r, FINDING_MISSING_IDENTITY, FINDING_MISSING_JVM_SETTINGS, -1);
        const struct finding *it = find(&r, FINDING_MISSING_JVM_SETTINGS);
        assert_non_null(strstr(it->expected, "JAVA_TOOL_OPTIONS=" F1 " -Djava.net.preferIPv4Stack=true"));
        assert_non_null(strstr(it->found, "JAVA_TOOL_OPTIONS unset"));
        assert_null(strstr(it->expected, "SPARK_SUBMIT_OPTS"));
        done(&r);

        static const char *const templates[] = { "spark35-driver-template-sidecar.json",
                                                 "spark35-driver-template-sidecar-first.json" };
        for (size_t i = 0; i < 2; i++) {
                cJSON *t = fixture_pod(templates[i]);
                judge(p, "team-a", t, &r);
                assert_problems(&r, FINDING_MISSING_IDENTITY, FINDING_MISSING_JVM_SETTINGS, -1);
                done(&r);
                set_label(t, "aadpodidbinding", "sparkaks");
                set_env(t, "JAVA_HOME", "/opt/java/openjdk");
                set_env(t, "SPARK_SUBMIT_OPTS", FLAGS_A);
                judge(p, "team-a", t, &r);
                assert_problems(&r, -1);
                done(&r);
                cJSON_Delete(t);
        }
        cJSON_Delete(pod);
        policy_free(p);
}

static void test_modes(void **state)
{
        struct policy *p = fixture_policy("policy.yaml");
        cJSON *pod = fixture_pod("spark35-driver.json");
        struct result r;

        /* audit (team-c): judged like enforce, the finding says the mode. */
        judge(p, "team-c", pod, &r);
        assert_problems(&r, FINDING_MISSING_IDENTITY, FINDING_MISSING_JVM_SETTINGS, -1);
        assert_int_equal(find(&r, FINDING_MISSING_IDENTITY)->mode, POLICY_MODE_AUDIT);
        assert_int_equal(r.f.namespaces[0].mode, POLICY_MODE_AUDIT);
        done(&r);

        /* off: not judged. */
        judge(p, "team-off", pod, &r);
        assert_int_equal(r.rc, 0);
        assert_int_equal(r.verdict, VERDICT_OFF);
        assert_int_equal(r.f.n, 0);
        assert_int_equal(r.f.namespaces[0].verdicts[VERDICT_OFF], 1);
        done(&r);

        /* defaults.mode: audit and off for namespaces without a rule. */
        static const char audit_defaults[] = "defaults: {mode: audit}\n"
                                             "namespaces:\n  team-a: {identity: sparkaks}\n"
                                             "unmatched: deny\n";
        static const char off_defaults[] = "defaults: {mode: \"off\"}\n"
                                           "namespaces:\n  team-a: {identity: sparkaks, mode: enforce}\n"
                                           "unmatched: deny\n";
        struct policy *pa = load_policy(audit_defaults), *po = load_policy(off_defaults);
        set_label(pod, "aadpodidbinding", "sparkaks");
        judge(pa, "team-x", pod, &r);
        assert_problems(&r, FINDING_FOREIGN_IDENTITY, FINDING_NO_POLICY, -1);
        assert_int_equal(find(&r, FINDING_NO_POLICY)->mode, POLICY_MODE_AUDIT);
        done(&r);
        /* Off governs what a namespace's own pods get, not what they may
         * claim: team-a enforces sparkaks. */
        judge(po, "team-x", pod, &r);
        assert_int_equal(r.verdict, VERDICT_FINDINGS);
        assert_problems(&r, FINDING_FOREIGN_IDENTITY, -1);
        done(&r);
        set_label(pod, "aadpodidbinding", "nobodys");
        judge(po, "team-x", pod, &r);
        assert_int_equal(r.verdict, VERDICT_OFF);
        assert_int_equal(r.f.n, 0);
        done(&r);
        policy_free(pa);
        policy_free(po);
        cJSON_Delete(pod);
        policy_free(p);
}

/* ---- namespaces: selectors, annotations, unknown ---- */

static const char ns_policy[] =
        "namespaces:\n"
        "  team-a: {identity: sparkaks}\n"
        "selectors:\n"
        "  - {name: data, namespaceSelector: {matchLabels: {team: data}}, identity: data-spark}\n"
        "namespaceAnnotations: true\n"
        "delegableIdentities: [x-spark]\n"
        "unmatched: deny\n";

static void test_namespaces(void **state)
{
        struct policy *p = load_policy(ns_policy);
        cJSON *pod = fixture_pod("spark35-driver.json");
        cJSON *rogue = fixture_pod("rogue-pod.json");
        cJSON *nginx = fixture_pod("nginx-pod.json");
        struct result r;

        /* Unknown namespace: a count, not a guess; other pods are only counted. */
        struct findings_context unknown = { 0 };
        judge_with(p, "lake", &unknown, pod, &r);
        assert_int_equal(r.rc, 0);
        assert_int_equal(r.verdict, VERDICT_UNKNOWN);
        assert_int_equal(r.f.n, 0);
        assert_null(r.f.namespaces[0].rule);
        assert_int_equal(findings_check_pod(p, "lake", &unknown, nginx, &r.f, &r.verdict), 0);
        assert_int_equal(r.verdict, VERDICT_NOT_CONCERNED);
        assert_int_equal(findings_check_pod(p, "lake", &unknown, rogue, &r.f, &r.verdict), 0);
        assert_int_equal(r.verdict, VERDICT_UNKNOWN);
        assert_int_equal(r.f.namespaces[0].verdicts[VERDICT_UNKNOWN], 2);
        done(&r);

        /* ... but a namespace with an entry needs nothing. */
        judge_with(p, "team-a", &unknown, pod, &r);
        assert_problems(&r, FINDING_MISSING_IDENTITY, FINDING_MISSING_JVM_SETTINGS, -1);
        done(&r);

        /* By selector. */
        struct kv labels[] = { { "team", "data" } };
        struct ns_info data = { .labels = labels, .n_labels = 1 };
        struct findings_context fc = { .info = &data };
        judge_with(p, "lake", &fc, pod, &r);
        assert_problems(&r, FINDING_MISSING_IDENTITY, FINDING_MISSING_JVM_SETTINGS, -1);
        assert_finding(&r, FINDING_MISSING_IDENTITY, "aadpodidbinding=data-spark", "no aadpodidbinding label");
        assert_string_equal(find(&r, FINDING_MISSING_IDENTITY)->rule, "selector data");
        done(&r);

        /* By annotations; their rule's name is copied (its pool is gone). */
        struct kv ann[] = { { "spark-identity.io/identity", "x-spark" } };
        struct ns_info annotated = { .annotations = ann, .n_annotations = 1 };
        fc.info = &annotated;
        judge_with(p, "team-x", &fc, pod, &r);
        assert_problems(&r, FINDING_MISSING_IDENTITY, FINDING_MISSING_JVM_SETTINGS, -1);
        assert_string_equal(find(&r, FINDING_MISSING_IDENTITY)->rule, "annotations of team-x");
        assert_string_equal(r.f.namespaces[0].rule, "annotations of team-x");
        done(&r);

        /* Annotations that make no rule: refused by admission, so no-policy. */
        struct kv bad[] = { { "spark-identity.io/identity", "not a label value" } };
        struct ns_info bad_ns = { .annotations = bad, .n_annotations = 1 };
        fc.info = &bad_ns;
        judge_with(p, "team-y", &fc, pod, &r);
        assert_problems(&r, FINDING_NO_POLICY, -1);
        assert_finding(&r, FINDING_NO_POLICY,
                       "a valid rule from the spark-identity.io/ annotations of namespace team-y",
                       "spark-identity.io/identity \"not a label value\" is not a valid label value");
        done(&r);

        /* A delegable identity is listed: protected (defaults.mode) from
         * namespaces whose annotations do not give it; an unlisted one is
         * not the business of a namespace without a rule. */
        static const struct ns_info none = { 0 };
        set_label(rogue, "aadpodidbinding", "x-spark");
        struct findings_context other = { .info = &none };
        judge_with(p, "team-z", &other, rogue, &r);
        assert_problems(&r, FINDING_FOREIGN_IDENTITY, -1);
        done(&r);
        set_label(rogue, "aadpodidbinding", "someone-else");
        judge_with(p, "team-z", &other, rogue, &r);
        assert_problems(&r, -1);
        done(&r);
        cJSON_Delete(pod);
        cJSON_Delete(rogue);
        cJSON_Delete(nginx);
        policy_free(p);
}

/* ---- the list: counts, bound, errors ---- */

static void test_counts_and_bound(void **state)
{
        struct policy *p = fixture_policy("policy.yaml");
        cJSON *driver = fixture_pod("spark35-driver.json");
        cJSON *ok = fixture_pod("spark35-driver-mutated.json");
        struct findings f;
        enum pod_verdict v;
        findings_init(&f, 3);
        static const char *const order[] = { "team-b", "team-a", "team-c", "team-a", "team-b" };
        for (size_t i = 0; i < 5; i++)
                assert_int_equal(findings_check_pod(p, order[i], NULL, driver, &f, &v), 0);
        assert_int_equal(findings_check_pod(p, "team-a", NULL, ok, &f, &v), 0);
        assert_int_equal(v, VERDICT_COMPLIANT);
        /* Two findings per pod, five pods: three kept, seven counted. */
        assert_int_equal(f.n, 3);
        assert_int_equal(f.not_kept, 7);
        assert_int_equal(findings_total(&f), 10);
        assert_int_equal(f.n_namespaces, 3);
        assert_string_equal(f.namespaces[0].name, "team-a");
        assert_string_equal(f.namespaces[1].name, "team-b");
        assert_string_equal(f.namespaces[2].name, "team-c");
        assert_int_equal(f.namespaces[0].pods, 3);
        assert_int_equal(f.namespaces[0].verdicts[VERDICT_FINDINGS], 2);
        assert_int_equal(f.namespaces[0].verdicts[VERDICT_COMPLIANT], 1);
        assert_int_equal(f.namespaces[0].problems[FINDING_MISSING_IDENTITY], 2);
        struct findings_namespace t;
        findings_totals(&f, &t);
        assert_int_equal(t.pods, 6);
        assert_int_equal(t.spark_pods, 6);
        assert_int_equal(t.problems[FINDING_MISSING_IDENTITY], 5);
        assert_int_equal(t.problems[FINDING_MISSING_JVM_SETTINGS], 5);
        findings_free(&f);
        findings_free(&f);   /* twice is fine */
        findings_free(NULL);

        /* The namespace from the pod itself (kubectl get pods -A). */
        findings_init(&f, 10);
        assert_int_equal(findings_check_pod(p, NULL, NULL, driver, &f, NULL), 0);
        assert_string_equal(f.namespaces[0].name, "team-a");
        findings_free(&f);
        cJSON_Delete(driver);
        cJSON_Delete(ok);
        policy_free(p);
}

static void test_errors(void **state)
{
        struct policy *p = fixture_policy("policy.yaml");
        struct findings f;
        findings_init(&f, 10);
        cJSON *arr = cJSON_CreateArray();
        assert_int_equal(findings_check_pod(p, "team-a", NULL, arr, &f, NULL), -EINVAL);
        assert_int_equal(findings_check_pod(p, "team-a", NULL, NULL, &f, NULL), -EINVAL);
        cJSON *pod = cJSON_Parse("{\"metadata\":{\"name\":\"x\",\"labels\":{\"spark-role\":\"driver\"}}}");
        assert_int_equal(findings_check_pod(p, NULL, NULL, pod, &f, NULL), -EINVAL);
        assert_int_equal(findings_check_pod(p, "", NULL, pod, &f, NULL), -EINVAL);
        assert_int_equal(f.n_namespaces, 0);
        /* Without containers: only the label. */
        assert_int_equal(findings_check_pod(p, "team-a", NULL, pod, &f, NULL), 0);
        assert_int_equal(f.n, 1);
        assert_int_equal(f.items[0].problem, FINDING_MISSING_IDENTITY);
        findings_free(&f);
        cJSON_Delete(pod);
        cJSON_Delete(arr);
        policy_free(p);
}

/* A pod too large to read: a finding named by what came of its metadata, in
 * any mode and whether Spark's or not; the counts say one pod. */
static void test_too_large(void **state)
{
        struct policy *p = fixture_policy("policy.yaml");
        struct findings f;
        findings_init(&f, 10);
        cJSON *md = cJSON_Parse("{\"name\":\"big\",\"namespace\":\"team-a\",\"uid\":\"u-1\","
                                "\"labels\":{\"spark-role\":\"driver\",\"spark-app-selector\":\"spark-1\"}}");
        assert_int_equal(findings_add_too_large(p, NULL, NULL, md, 1000, &f), 0);
        assert_int_equal(f.n, 1);
        const struct finding *it = &f.items[0];
        assert_int_equal(it->problem, FINDING_TOO_LARGE);
        assert_string_equal(it->namespace_, "team-a");
        assert_string_equal(it->pod, "big");
        assert_string_equal(it->uid, "u-1");
        assert_string_equal(it->app_id, "spark-1");
        assert_int_equal(it->role, POD_ROLE_DRIVER);
        assert_string_equal(it->rule, "team-a");
        assert_string_equal(it->expected, "a pod the audit can read: at most 1000 bytes as the API server sends it");
        assert_string_equal(it->found, "more than 1000 bytes (not judged)");
        assert_int_equal(f.namespaces[0].pods, 1);
        assert_int_equal(f.namespaces[0].spark_pods, 1);
        assert_int_equal(f.namespaces[0].verdicts[VERDICT_FINDINGS], 1);
        assert_int_equal(f.namespaces[0].problems[FINDING_TOO_LARGE], 1);

        /* Only a name came; the namespace given; an off namespace. */
        cJSON *name_only = cJSON_Parse("{\"name\":\"web\"}");
        assert_int_equal(findings_add_too_large(p, "team-off", NULL, name_only, 1000, &f), 0);
        assert_int_equal(f.n, 2);
        assert_int_equal(f.items[1].role, POD_ROLE_NONE);
        assert_null(f.items[1].uid);
        assert_int_equal(f.items[1].mode, POLICY_MODE_OFF);
        assert_int_equal(findings_total(&f), 2);

        /* No namespace known. */
        assert_int_equal(findings_add_too_large(p, NULL, NULL, name_only, 1000, &f), -EINVAL);
        assert_int_equal(findings_add_too_large(p, NULL, NULL, NULL, 1000, &f), -EINVAL);
        cJSON_Delete(name_only);
        cJSON_Delete(md);
        findings_free(&f);
        policy_free(p);
}

static void test_names(void **state)
{
        assert_string_equal(finding_problem_name(FINDING_MISSING_IDENTITY), "missing-identity");
        assert_string_equal(finding_problem_name(FINDING_WRONG_IDENTITY), "wrong-identity");
        assert_string_equal(finding_problem_name(FINDING_FOREIGN_IDENTITY), "foreign-identity");
        assert_string_equal(finding_problem_name(FINDING_MISSING_JVM_SETTINGS), "missing-jvm-settings");
        assert_string_equal(finding_problem_name(FINDING_NO_POLICY), "no-policy");
        assert_string_equal(finding_problem_name(FINDING_MISSING_WORKLOAD_IDENTITY), "missing-workload-identity");
        assert_string_equal(finding_problem_name(FINDING_TOO_LARGE), "too-large");
        assert_string_equal(finding_problem_name(FINDING_PROBLEM_MAX), "?");
        assert_string_equal(findings_verdict_name(VERDICT_UNKNOWN), "unknown");
        assert_string_equal(findings_verdict_name(VERDICT_MAX), "?");
}

/* ---- each kind of change admission makes, and its finding ---- */

static void remove_env(cJSON *pod)
{
        cJSON *c = cJSON_GetArrayItem(cJSON_GetObjectItem(cJSON_GetObjectItem(pod, "spec"), "containers"),
                                      mutate_find_spark_container(pod));
        cJSON_DeleteItemFromObject(c, "env");
}

static void claim_other(cJSON *pod)
{
        set_label(pod, "aadpodidbinding", "someone-else");
}

static void java_home_other(cJSON *pod)
{
        set_env(pod, "JAVA_HOME", "/opt/other");
}

static void deprecated_account(cJSON *pod)
{
        cJSON_AddStringToObject(cJSON_GetObjectItem(pod, "spec"), "serviceAccount", "default");
}

/* Every kind of change (change.h) that admission would make to a stored pod
 * is a finding; the table names a pod for each kind, and fails when a kind
 * has none. */
static void test_each_change_kind(void **state)
{
        static const struct {
                enum change_kind kind;
                const char *policy, *pod, *ns;
                void (*edit)(cJSON *pod);
                enum finding_problem problem;
                const char *found;      /* a part of the finding's `found` */
        } cases[] = {
                { CHANGE_SET_IDENTITY_LABEL, "policy.yaml", "spark35-driver.json", "team-a", NULL,
                  FINDING_MISSING_IDENTITY, "no aadpodidbinding label" },
                { CHANGE_SET_IDENTITY_LABEL, "policy.yaml", "spark35-driver.json", "team-a", claim_other,
                  FINDING_WRONG_IDENTITY, "aadpodidbinding=someone-else" },
                { CHANGE_REMOVE_IDENTITY_LABEL, "policy-workload-identity.yaml", "spark40-driver.json", "team-wi",
                  claim_other, FINDING_FOREIGN_IDENTITY, "aadpodidbinding=someone-else" },
                { CHANGE_SET_SERVICE_ACCOUNT, "policy-workload-identity.yaml", "spark40-executor-default-sa.json",
                  "team-wi", NULL, FINDING_MISSING_WORKLOAD_IDENTITY, "serviceAccountName=default" },
                { CHANGE_SET_DEPRECATED_SERVICE_ACCOUNT, "policy-workload-identity.yaml",
                  "spark40-executor-default-sa.json", "team-wi", deprecated_account, FINDING_MISSING_WORKLOAD_IDENTITY,
                  "serviceAccountName=default" },
                { CHANGE_SET_ENV, "policy.yaml", "spark35-driver.json", "team-a", java_home_other,
                  FINDING_MISSING_JVM_SETTINGS, "JAVA_HOME=/opt/other" },
                { CHANGE_ADD_ENV, "policy.yaml", "spark35-driver.json", "team-a", NULL, FINDING_MISSING_JVM_SETTINGS,
                  "SPARK_SUBMIT_OPTS unset" },
                { CHANGE_ADD_ENV, "policy.yaml", "spark35-driver.json", "team-a", remove_env,
                  FINDING_MISSING_JVM_SETTINGS, "SPARK_SUBMIT_OPTS unset" },
                { CHANGE_ADD_JAVA_OPT, "policy.yaml", "spark35-executor.json", "team-a", NULL,
                  FINDING_MISSING_JVM_SETTINGS, "no SPARK_JAVA_OPT_<n> with them" },
                { CHANGE_ADD_JAVA_OPT, "policy.yaml", "spark35-executor.json", "team-a", remove_env,
                  FINDING_MISSING_JVM_SETTINGS, "no SPARK_JAVA_OPT_<n> with them" },
                { CHANGE_TOKEN_VOLUME, "policy-workload-identity.yaml", "spark40-driver.json", "team-wi", NULL,
                  FINDING_MISSING_WORKLOAD_IDENTITY, "no volume " POLICY_WI_VOLUME " as the policy has it" },
                { CHANGE_TOKEN_MOUNT, "policy-workload-identity.yaml", "spark40-driver.json", "team-wi", NULL,
                  FINDING_MISSING_WORKLOAD_IDENTITY, "without the env or the token mount" },
                { CHANGE_ADD_ENV, "policy-workload-identity.yaml", "spark40-driver.json", "team-wi", NULL,
                  FINDING_MISSING_WORKLOAD_IDENTITY, "AZURE_CLIENT_ID unset" },
        };
        bool seen[CHANGE_KIND_MAX] = { false };
        (void)state;
        for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
                struct policy *p = fixture_policy(cases[i].policy);
                cJSON *pod = fixture_pod(cases[i].pod);
                if (cases[i].edit)
                        cases[i].edit(pod);

                /* Admission makes a change of the kind... */
                struct pool pool = POOL_INIT;
                struct resolution res;
                struct ns_info none = { 0 };
                struct mutation *m = malloc(sizeof *m);
                assert_non_null(m);
                assert_int_equal(policy_resolve(p, cases[i].ns, &none, &pool, &res), 0);
                struct mutate_context mc = { .res = &res };
                mutation_init(m);
                assert_int_equal(mutate_pod(p, cases[i].ns, &mc, pod, m), 0);
                assert_int_equal(m->decision, DECISION_MUTATED);
                bool has = false;
                for (size_t k = 0; k < m->n_changes; k++)
                        has = has || m->changes[k].kind == cases[i].kind;
                if (!has)
                        fail_msg("case %zu: %s in %s makes no change of kind %d", i, cases[i].pod, cases[i].ns,
                                 cases[i].kind);
                seen[cases[i].kind] = true;

                /* ...and the audit says what the pod lacks. */
                struct result r;
                judge(p, cases[i].ns, pod, &r);
                assert_int_equal(r.rc, 0);
                assert_int_equal(r.verdict, VERDICT_FINDINGS);
                const struct finding *it = find(&r, cases[i].problem);
                if (!it || !strstr(it->found, cases[i].found))
                        fail_msg("case %zu: no %s finding with \"%s\" (found: \"%s\")", i,
                                 finding_problem_name(cases[i].problem), cases[i].found, it ? it->found : "-");
                done(&r);
                mutation_free(m);
                free(m);
                pool_free(&pool);
                cJSON_Delete(pod);
                policy_free(p);
        }
        for (int k = 0; k < CHANGE_KIND_MAX; k++)
                if (!seen[k])
                        fail_msg("no case for change kind %d", k);
}

/* ---- agreement with admission, over every fixture and namespace ---- */

/* A pod has findings exactly when admission, creating it now, would change
 * it, refuse it or warn about it. */
static void test_agrees_with_admission(void **state)
{
        static const char *const pods[] = {
                "spark35-driver.json",
                "spark35-pyspark-driver.json",
                "spark35-executor.json",
                "spark33-executor.json",
                "spark24-executor.json",
                "spark35-driver-template-sidecar.json",
                "spark35-driver-template-sidecar-first.json",
                "spark35-driver-foreign-identity.json",
                "spark35-driver-mutated.json",
                "spark35-driver-valuefrom.json",
                "nginx-pod.json",
                "api-pod-allowed.json",
                "rogue-pod.json",
        };
        static const char *const namespaces[] = { "team-a", "team-b", "team-c",   "team-d",
                                                  "team-e", "team-f", "team-off", "team-x" };
        static const char *const policies[] = { "policy.yaml", "policy-unmatched-deny.yaml" };
        size_t checked = 0;
        for (size_t pi = 0; pi < 2; pi++) {
                struct policy *p = fixture_policy(policies[pi]);
                for (size_t i = 0; i < sizeof pods / sizeof *pods; i++) {
                        cJSON *pod = fixture_pod(pods[i]);
                        for (size_t k = 0; k < sizeof namespaces / sizeof *namespaces; k++) {
                                const char *ns = namespaces[k];
                                struct result r;
                                judge(p, ns, pod, &r);
                                assert_int_equal(r.rc, 0);

                                struct pool pool = POOL_INIT;
                                struct resolution res;
                                struct ns_info none = { 0 };
                                struct mutation m;
                                assert_int_equal(policy_resolve(p, ns, &none, &pool, &res), 0);
                                struct mutate_context mc = { .res = &res };
                                mutation_init(&m);
                                assert_int_equal(mutate_pod(p, ns, &mc, pod, &m), 0);
                                bool admission_says = m.decision != DECISION_UNCHANGED || m.n_warnings > 0;
                                bool judged = r.verdict == VERDICT_COMPLIANT || r.verdict == VERDICT_FINDINGS;
                                if (judged && admission_says != (r.verdict == VERDICT_FINDINGS))
                                        fail_msg("%s in %s (%s): admission %s with %u warnings, audit %s", pods[i], ns,
                                                 policies[pi], mutate_decision_name(m.decision), m.n_warnings,
                                                 findings_verdict_name(r.verdict));
                                if (!judged && admission_says)
                                        fail_msg("%s in %s (%s): admission %s, audit %s", pods[i], ns, policies[pi],
                                                 mutate_decision_name(m.decision), findings_verdict_name(r.verdict));
                                checked++;
                                mutation_free(&m);
                                pool_free(&pool);
                                done(&r);
                        }
                        cJSON_Delete(pod);
                }
                policy_free(p);
        }
        assert_int_equal(checked, 2 * 13 * 8);
}

int main(void)
{
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_compliant_driver),
                cmocka_unit_test(test_unmutated_driver),
                cmocka_unit_test(test_unmutated_executor),
                cmocka_unit_test(test_compliant_executor),
                cmocka_unit_test(test_wrong_and_foreign_identity),
                cmocka_unit_test(test_foreign_identity_on_other_pods),
                cmocka_unit_test(test_no_policy),
                cmocka_unit_test(test_jvm_settings_partly_there),
                cmocka_unit_test(test_jvm_settings_from_value_from),
                cmocka_unit_test(test_java_tool_options_and_templates),
                cmocka_unit_test(test_modes),
                cmocka_unit_test(test_namespaces),
                cmocka_unit_test(test_counts_and_bound),
                cmocka_unit_test(test_errors),
                cmocka_unit_test(test_names),
                cmocka_unit_test(test_too_large),
                cmocka_unit_test(test_agrees_with_admission),
                cmocka_unit_test(test_each_change_kind),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
