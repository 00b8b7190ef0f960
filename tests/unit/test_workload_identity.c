/* Workload identity mode: the policy keys and their checks, the mutation
 * (env, token volume and mount, service account, label), coexistence with
 * Azure Workload Identity's own webhook, reinvocation, audit mode, and the
 * audit finding missing-workload-identity.
 *
 * Pods and expected values are written with ' for " to stay readable;
 * json() turns them back. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "buf.h"
#include "findings.h"
#include "mutate.h"
#include "policy.h"
#include "pool.h"

#include "mutate_fixture.h"

#define TENANT "72f988bf-86f1-41af-91ab-2d7cd011db47"
#define CLIENT "22222222-2222-2222-2222-222222222222"
#define OTHER "33333333-3333-3333-3333-333333333333"
#define WIP "org.apache.hadoop.fs.azurebfs.oauth2.WorkloadIdentityTokenProvider"
#define MSI "org.apache.hadoop.fs.azurebfs.oauth2.MsiTokenProvider"
#define TOKEN "/var/run/secrets/spark-identity/azure/azure-identity-token"
#define AUTHORITY "https://login.microsoftonline.com/"
#define F1 "-Dio.netty.tryReflectionSetAccessible=true"
#define F2 "-Dspark.hadoop.fs.azure.account.auth.type=OAuth"
#define F3 "-Dspark.hadoop.fs.azure.account.oauth.provider.type=" WIP
#define F4 "-Dspark.hadoop.fs.azure.account.oauth2.client.id=" CLIENT
#define F5 "-Dspark.hadoop.fs.azure.account.oauth2.msi.tenant=" TENANT
#define F6 "-Dspark.hadoop.fs.azure.account.oauth2.token.file=" TOKEN
#define FLAGS F1 " " F2 " " F3 " " F4 " " F5 " " F6

/* defaults.hadoop names MsiTokenProvider on purpose: workload identity
 * rules must not inherit it. */
static const char policy_text[] =
        "defaults:\n"
        "  tenantId: " TENANT "\n"
        "  hadoop: {fs.azure.account.oauth.provider.type: " MSI "}\n"
        "namespaces:\n"
        "  team-a: {identity: sparkaks, clientId: 11111111-1111-1111-1111-111111111111}\n"
        "  team-w: {auth: workloadIdentity, clientId: " CLIENT ", serviceAccount: spark,\n"
        "           allowedIdentities: [old-spark]}\n"
        "  team-d: {auth: workloadIdentity, clientId: " CLIENT ", serviceAccount: spark, onConflict: deny}\n"
        "  team-u: {auth: workloadIdentity, clientId: " CLIENT ", mode: audit, serviceAccount: spark}\n"
        "  team-x: {auth: workloadIdentity, clientId: " CLIENT ", extraContainers: [fetch, proxy]}\n"
        "  team-n: {auth: workloadIdentity, clientId: " CLIENT "}\n";

/* JSON written with ' for ", parsed; the caller deletes it. */
static cJSON *json(const char *text)
{
        char *s = strdup(text);
        for (char *c = s; *c; c++)
                if (*c == '\'')
                        *c = '"';
        cJSON *v = cJSON_Parse(s);
        if (!v)
                fail_msg("bad JSON in test: %s", s);
        free(s);
        return v;
}

static struct policy *load(const char *text, struct buf *errors)
{
        struct policy *p = NULL;
        buf_init(errors, 1 << 16);
        if (policy_load(text, strlen(text), &p, errors) < 0)
                return NULL;
        return p;
}

static int setup(void **state)
{
        *state = fixture_new(policy_text);
        return 0;
}

#define teardown fixture_teardown

static void run(struct fixture *f, const char *ns, const char *pod)
{
        fixture_run(f, ns, json(pod));
}

static void assert_op(const struct fixture *f, int i, const char *op, const char *path, const char *value)
{
        const cJSON *o = cJSON_GetArrayItem(f->ops, i);
        if (!o)
                fail_msg("no op %d in %s", i, f->m.patch.text.data ? f->m.patch.text.data : "(none)");
        assert_string_equal(cJSON_GetObjectItem(o, "op")->valuestring, op);
        assert_string_equal(cJSON_GetObjectItem(o, "path")->valuestring, path);
        if (!value) {
                assert_null(cJSON_GetObjectItem(o, "value"));
                return;
        }
        cJSON *want = json(value);
        if (!cJSON_Compare(cJSON_GetObjectItem(o, "value"), want, true)) {
                char *got = cJSON_PrintUnformatted(cJSON_GetObjectItem(o, "value"));
                char *w = cJSON_PrintUnformatted(want);
                fail_msg("op %d value:\n got  %s\n want %s", i, got, w);
        }
        cJSON_Delete(want);
}

#define VOLUME                                                                                 \
        "{'name':'spark-identity-azure-token','projected':{'sources':[{'serviceAccountToken':" \
        "{'audience':'api://AzureADTokenExchange','expirationSeconds':3600,'path':'azure-identity-token'}}]}}"
#define MOUNT \
        "{'name':'spark-identity-azure-token','mountPath':'/var/run/secrets/spark-identity/azure','readOnly':true}"
#define AZ_ENV                                                                                                         \
        "{'name':'AZURE_CLIENT_ID','value':'" CLIENT "'},{'name':'AZURE_TENANT_ID','value':'" TENANT "'},"             \
        "{'name':'AZURE_FEDERATED_TOKEN_FILE','value':'" TOKEN "'},{'name':'AZURE_AUTHORITY_HOST','value':'" AUTHORITY \
        "'}"

/* A Spark pod: role, labels after spark-role, service account, the Spark
 * container's extra fields, more of spec. */
#define POD(role, labels, sa, container, spec)                                                                       \
        "{'metadata':{'name':'app-" role "','labels':{'spark-app-selector':'spark-1','spark-role':'" role "'" labels \
        "}},'spec':{'serviceAccountName':'" sa "','containers':[{'name':'spark-kubernetes-" role "',"                \
        "'image':'apache/spark:4.0.0','args':['" role "']" container "}]" spec "}}"

/* ---- the policy ---- */

static void test_rule_compiled(void **state)
{
        struct fixture *f = *state;
        const struct rule *r = policy_rule_for(f->policy, "team-w");
        assert_non_null(r);
        assert_int_equal(r->auth, POLICY_AUTH_WORKLOAD_IDENTITY);
        assert_null(r->identity);
        assert_string_equal(r->client_id, CLIENT);
        assert_string_equal(r->tenant_id, TENANT);
        assert_string_equal(r->service_account, "spark");
        assert_string_equal(r->authority_host, AUTHORITY);
        assert_int_equal(r->token_expiration_s, 3600);
        assert_int_equal(r->n_allowed_identities, 1);
        assert_string_equal(r->allowed_identities[0], "old-spark");
        assert_string_equal(r->flags_joined, FLAGS);

        const struct rule *a = policy_rule_for(f->policy, "team-a");
        assert_int_equal(a->auth, POLICY_AUTH_POD_IDENTITY);
        assert_non_null(strstr(a->flags_joined, MSI));
        assert_null(a->service_account);
        assert_null(a->authority_host);
        assert_null(strstr(a->flags_joined, "token.file"));

        assert_null(policy_rule_for(f->policy, "team-n")->service_account);
        assert_int_equal(policy_rule_for(f->policy, "team-x")->n_extra_containers, 2);
}

static void test_other_cloud_and_lifetime(void **state)
{
        struct buf errors;
        struct policy *p =
                load("namespaces:\n"
                     "  t: {auth: workloadIdentity, tenantId: " TENANT ", clientId: " CLIENT ",\n"
                     "      authorityHost: 'https://login.chinacloudapi.cn/', tokenExpirationSeconds: 86400,\n"
                     "      storageAccounts: [lake1]}\n",
                     &errors);
        if (!p)
                fail_msg("%s", errors.data);
        const struct rule *r = policy_rule_for(p, "t");
        assert_string_equal(r->authority_host, "https://login.chinacloudapi.cn/");
        assert_int_equal(r->token_expiration_s, 86400);
        /* hadoop-azure defaults to the public cloud: another one is said. Per-account keys as always. */
        assert_non_null(strstr(r->flags_joined,
                               "-Dspark.hadoop.fs.azure.account.oauth2.msi.authority.lake1.dfs.core.windows.net="
                               "https://login.chinacloudapi.cn/"));
        assert_non_null(strstr(r->flags_joined,
                               "-Dspark.hadoop.fs.azure.account.oauth2.token.file.lake1.dfs.core.windows.net=" TOKEN));
        assert_null(strstr(r->flags_joined, "-Dspark.hadoop.fs.azure.account.oauth2.token.file=" TOKEN));
        policy_free(p);
        buf_free(&errors);
}

static const struct {
        const char *text, *want;
} bad[] = {
        { "namespaces:\n  t: {auth: workloadIdentity, tenantId: " TENANT "}\n",
          "2:3: namespaces.t: auth: workloadIdentity needs clientId" },
        { "namespaces:\n  t: {auth: workloadIdentity, clientId: " CLIENT "}\n",
          "namespaces.t: auth: workloadIdentity needs tenantId" },
        { "defaults: {tenantId: " TENANT "}\nnamespaces:\n  t: {auth: workloadIdentity, clientId: " CLIENT
          ", tokenExpirationSeconds: 600}\n",
          "namespaces.t.tokenExpirationSeconds: must be a whole number of seconds from 3600 to 86400" },
        { "defaults: {tenantId: " TENANT "}\nnamespaces:\n  t: {auth: workloadIdentity, clientId: " CLIENT
          ", tokenExpirationSeconds: 3600.5}\n",
          "tokenExpirationSeconds: must be a whole number" },
        { "defaults: {tenantId: " TENANT "}\nnamespaces:\n  t: {auth: workloadIdentity, clientId: " CLIENT
          ", tokenExpirationSeconds: 90000}\n",
          "tokenExpirationSeconds: must be a whole number" },
        { "namespaces:\n  t: {identity: x, serviceAccount: spark}\n",
          "namespaces.t: serviceAccount applies to auth: workloadIdentity only" },
        { "namespaces:\n  t: {identity: x, extraContainers: [a]}\n",
          "namespaces.t: extraContainers applies to auth: workloadIdentity only" },
        { "namespaces:\n  t: {auth: podIdentity}\n", "namespaces.t: identity is required" },
        { "namespaces:\n  t: {}\n", "namespaces.t: identity is required" },
        { "namespaces:\n  t: {auth: workload}\n", "namespaces.t.auth: must be one of podIdentity | workloadIdentity" },
        { "namespaces:\n  t: {auth: workloadIdentity, serviceAccount: Spark_SA}\n",
          "namespaces.t.serviceAccount: \"Spark_SA\" is not a service account name" },
        { "defaults: {authorityHost: 'http://login.microsoftonline.com/'}\n",
          "defaults.authorityHost: \"http://login.microsoftonline.com/\" is not an https URL" },
        { "defaults: {extraContainers: [Fetch]}\n", "defaults.extraContainers[0]: \"Fetch\" is not a container name" },
        { "defaults:\n  hadoop: {fs.azure.account.oauth2.token.file: /x}\n",
          "defaults.hadoop.fs.azure.account.oauth2.token.file: auth: workloadIdentity sets this" },
};

static void test_bad_policies(void **state)
{
        int misses = 0;
        for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
                struct buf errors;
                struct policy *p = load(bad[i].text, &errors);
                if (p || !errors.data || !strstr(errors.data, bad[i].want)) {
                        print_error("case %zu: want \"%s\" in:\n%s", i, bad[i].want,
                                    errors.data ? errors.data : "(loaded)");
                        misses++;
                }
                policy_free(p);
                buf_free(&errors);
        }
        assert_int_equal(misses, 0);
}

static void test_defaults_make_every_rule_workload_identity(void **state)
{
        struct buf errors;
        struct policy *p = load("defaults: {auth: workloadIdentity, tenantId: " TENANT ", serviceAccount: spark}\n"
                                "namespaces:\n  t: {clientId: " CLIENT "}\n  u: {auth: podIdentity, identity: u}\n",
                                &errors);
        if (!p)
                fail_msg("%s", errors.data);
        assert_int_equal(policy_rule_for(p, "t")->auth, POLICY_AUTH_WORKLOAD_IDENTITY);
        assert_string_equal(policy_rule_for(p, "t")->service_account, "spark");
        assert_int_equal(policy_rule_for(p, "u")->auth, POLICY_AUTH_POD_IDENTITY);
        assert_null(policy_rule_for(p, "u")->service_account);
        policy_free(p);
        buf_free(&errors);
}

static void test_annotations(void **state)
{
        struct buf errors;
        struct pool pool = POOL_INIT;
        struct resolution res;
        struct policy *p = load("namespaceAnnotations: true\ndefaults: {tenantId: " TENANT "}\n", &errors);
        assert_non_null(p);
        const struct kv ann[] = {
                { "spark-identity.io/auth", "workloadIdentity" },
                { "spark-identity.io/client-id", CLIENT },
                { "spark-identity.io/service-account", "jobs" },
        };
        struct ns_info info = { .annotations = ann, .n_annotations = 3 };
        assert_int_equal(policy_resolve(p, "lake", &info, &pool, &res), 0);
        assert_non_null(res.rule);
        assert_int_equal(res.rule->auth, POLICY_AUTH_WORKLOAD_IDENTITY);
        assert_string_equal(res.rule->service_account, "jobs");
        assert_string_equal(res.rule->client_id, CLIENT);

        const struct kv bad_sa[] = { { "spark-identity.io/auth", "workloadIdentity" },
                                     { "spark-identity.io/client-id", CLIENT },
                                     { "spark-identity.io/service-account", "No" } };
        info.annotations = bad_sa;
        assert_int_equal(policy_resolve(p, "lake", &info, &pool, &res), 0);
        assert_null(res.rule);
        assert_non_null(strstr(res.problem, "service-account"));

        const struct kv no_client[] = { { "spark-identity.io/auth", "workloadIdentity" } };
        info.annotations = no_client;
        info.n_annotations = 1;
        assert_int_equal(policy_resolve(p, "lake", &info, &pool, &res), 0);
        assert_null(res.rule);
        assert_non_null(strstr(res.problem, "needs clientId"));
        pool_free(&pool);
        policy_free(p);
        buf_free(&errors);
}

/* ---- the mutation ---- */

static void test_driver(void **state)
{
        struct fixture *f = *state;
        run(f, "team-w", POD("driver", "", "spark", "", ""));
        assert_int_equal(f->m.decision, DECISION_MUTATED);
        assert_int_equal(f->m.auth, POLICY_AUTH_WORKLOAD_IDENTITY);
        assert_int_equal(f->m.patch.n_ops, 3);
        assert_op(f, 0, "add", "/spec/volumes", "[" VOLUME "]");
        assert_op(f, 1, "add", "/spec/containers/0/env",
                  "[{'name':'SPARK_SUBMIT_OPTS','value':'" FLAGS "'}," AZ_ENV "]");
        assert_op(f, 2, "add", "/spec/containers/0/volumeMounts", "[" MOUNT "]");
        assert_null(f->m.identity_after);
        assert_string_equal(f->m.client_id, CLIENT);
        assert_string_equal(f->m.service_account, "spark");
        assert_int_equal(f->m.n_warnings, 0);
}

static void test_executor_appends(void **state)
{
        struct fixture *f = *state;
        run(f, "team-w",
            POD("executor", ",'spark-exec-id':'1'", "spark",
                ",'env':[{'name':'SPARK_JAVA_OPT_0','value':'-Xss4m'}],"
                "'volumeMounts':[{'name':'spark-local-dir-1','mountPath':'/var/data'}]",
                ",'volumes':[{'name':'spark-local-dir-1','emptyDir':{}}]"));
        assert_int_equal(f->m.decision, DECISION_MUTATED);
        assert_op(f, 0, "add", "/spec/volumes/-", VOLUME);
        assert_op(f, 1, "add", "/spec/containers/0/env/-", "{'name':'SPARK_JAVA_OPT_1','value':'" F1 "'}");
        assert_op(f, 6, "add", "/spec/containers/0/env/-", "{'name':'SPARK_JAVA_OPT_6','value':'" F6 "'}");
        assert_op(f, 7, "add", "/spec/containers/0/env/-", "{'name':'AZURE_CLIENT_ID','value':'" CLIENT "'}");
        assert_op(f, 10, "add", "/spec/containers/0/env/-", "{'name':'AZURE_AUTHORITY_HOST','value':'" AUTHORITY "'}");
        assert_op(f, 11, "add", "/spec/containers/0/volumeMounts/-", MOUNT);
        assert_int_equal(f->m.patch.n_ops, 12);
}

/* What the API server stores after our patch: defaultMode on the volume. */
static void test_reinvocation_is_empty(void **state)
{
        struct fixture *f = *state;
        run(f, "team-w",
            POD("driver", "", "spark",
                ",'env':[{'name':'SPARK_SUBMIT_OPTS','value':'" FLAGS "'}," AZ_ENV "],"
                "'volumeMounts':[{'name':'kube-api-access-x','mountPath':"
                "'/var/run/secrets/kubernetes.io/serviceaccount','readOnly':true}," MOUNT "]",
                ",'volumes':[{'name':'kube-api-access-x','projected':{'defaultMode':420,'sources':[]}},"
                "{'name':'spark-identity-azure-token','projected':{'defaultMode':420,'sources':"
                "[{'serviceAccountToken':{'audience':'api://AzureADTokenExchange',"
                "'expirationSeconds':3600,'path':'azure-identity-token'}}]}}]"));
        assert_int_equal(f->m.decision, DECISION_UNCHANGED);
        assert_int_equal(f->m.patch.n_ops, 0);
        assert_int_equal(f->m.n_warnings, 0);
}

/* A changed policy (another lifetime) corrects the volume in place. */
static void test_volume_not_as_policy_is_replaced(void **state)
{
        struct fixture *f = *state;
        run(f, "team-w",
            POD("driver", "", "spark",
                ",'env':[{'name':'SPARK_SUBMIT_OPTS','value':'" FLAGS "'}," AZ_ENV "],"
                "'volumeMounts':[" MOUNT "]",
                ",'volumes':[{'name':'spark-identity-azure-token','projected':{'sources':"
                "[{'serviceAccountToken':{'audience':'api://AzureADTokenExchange',"
                "'expirationSeconds':7200,'path':'azure-identity-token'}}]}}]"));
        assert_int_equal(f->m.patch.n_ops, 1);
        assert_op(f, 0, "replace", "/spec/volumes/0", VOLUME);
}

/* Azure Workload Identity's webhook ran first (its configuration's name
 * sorts before ours): its env, volume and mount are there. */
#define AZWI_ENV                                                                                              \
        "{'name':'AZURE_CLIENT_ID','value':'" CLIENT "'},{'name':'AZURE_TENANT_ID','value':'" TENANT "'},"    \
        "{'name':'AZURE_FEDERATED_TOKEN_FILE','value':'/var/run/secrets/azure/tokens/azure-identity-token'}," \
        "{'name':'AZURE_AUTHORITY_HOST','value':'" AUTHORITY "'}"
#define AZWI_MOUNT "{'name':'azure-identity-token','mountPath':'/var/run/secrets/azure/tokens','readOnly':true}"
#define AZWI_VOLUME                                                                                        \
        "{'name':'azure-identity-token','projected':{'defaultMode':420,'sources':[{'serviceAccountToken':" \
        "{'audience':'api://AzureADTokenExchange','expirationSeconds':3600,'path':'azure-identity-token'}}]}}"

static void test_after_azure_workload_identity_webhook(void **state)
{
        struct fixture *f = *state;
        run(f, "team-w",
            POD("driver", ",'azure.workload.identity/use':'true'", "spark",
                ",'env':[" AZWI_ENV "],'volumeMounts':[" AZWI_MOUNT "]", ",'volumes':[" AZWI_VOLUME "]"));
        assert_int_equal(f->m.decision, DECISION_MUTATED);
        assert_op(f, 0, "add", "/spec/volumes/-", VOLUME);
        assert_op(f, 1, "add", "/spec/containers/0/env/2/value", "'" TOKEN "'");
        assert_op(f, 2, "add", "/spec/containers/0/env/-", "{'name':'SPARK_SUBMIT_OPTS','value':'" FLAGS "'}");
        assert_op(f, 3, "add", "/spec/containers/0/volumeMounts/-", MOUNT);
        assert_int_equal(f->m.patch.n_ops, 4);
        assert_true(has_warning(&f->m, "AZURE_FEDERATED_TOKEN_FILE /var/run/secrets/azure/tokens/azure-identity-token "
                                       "replaced by the policy's"));
}

/* ... and the other way round: ours first, then theirs (which adds only
 * what is missing), then we are called again. */
static void test_reinvoked_after_azure_workload_identity_webhook(void **state)
{
        struct fixture *f = *state;
        run(f, "team-w",
            POD("driver", ",'azure.workload.identity/use':'true'", "spark",
                ",'env':[{'name':'SPARK_SUBMIT_OPTS','value':'" FLAGS "'}," AZ_ENV "],"
                "'volumeMounts':[" MOUNT "," AZWI_MOUNT "]",
                ",'volumes':[" VOLUME "," AZWI_VOLUME "]"));
        assert_int_equal(f->m.decision, DECISION_UNCHANGED);
        assert_int_equal(f->m.n_warnings, 0);
}

static void test_other_client_id(void **state)
{
        struct fixture *f = *state;
        run(f, "team-w", POD("driver", "", "spark", ",'env':[{'name':'AZURE_CLIENT_ID','value':'" OTHER "'}]", ""));
        assert_int_equal(f->m.decision, DECISION_MUTATED);
        assert_op(f, 1, "add", "/spec/containers/0/env/0/value", "'" CLIENT "'");
        assert_true(has_warning(&f->m, "AZURE_CLIENT_ID " OTHER " replaced by " CLIENT));
}

/* With a name listed twice the kubelet uses the last: that is the one that counts. */
static void test_duplicate_env_last_counts(void **state)
{
        struct fixture *f = *state;
        run(f, "team-w",
            POD("driver", "", "spark",
                ",'env':[{'name':'SPARK_SUBMIT_OPTS','value':'" FLAGS "'}," AZ_ENV ","
                "{'name':'AZURE_CLIENT_ID','value':'" OTHER "'}],'volumeMounts':[" MOUNT "]",
                ",'volumes':[" VOLUME "]"));
        assert_int_equal(f->m.decision, DECISION_MUTATED);
        assert_int_equal(f->m.patch.n_ops, 1);
        assert_op(f, 0, "add", "/spec/containers/0/env/5/value", "'" CLIENT "'");
}

static void test_other_client_id_refused_on_deny(void **state)
{
        struct fixture *f = *state;
        run(f, "team-d", POD("driver", "", "spark", ",'env':[{'name':'AZURE_CLIENT_ID','value':'" OTHER "'}]", ""));
        assert_int_equal(f->m.decision, DECISION_DENIED);
        assert_non_null(strstr(f->m.message, "sets AZURE_CLIENT_ID=" OTHER));
        assert_non_null(strstr(f->m.message, CLIENT));
}

static void test_client_id_from_value_from_left_alone(void **state)
{
        struct fixture *f = *state;
        run(f, "team-w",
            POD("driver", "", "spark",
                ",'env':[{'name':'AZURE_CLIENT_ID','valueFrom':{'secretKeyRef':{'name':'s','key':'k'}}}]", ""));
        assert_int_equal(f->m.decision, DECISION_MUTATED);
        assert_true(has_warning(&f->m, "AZURE_CLIENT_ID of container spark-kubernetes-driver comes from valueFrom"));
        assert_null(strstr(f->m.patch.text.data, "AZURE_CLIENT_ID"));
        assert_non_null(strstr(f->m.patch.text.data, "AZURE_TENANT_ID"));
}

static void test_driver_with_other_account_refused(void **state)
{
        struct fixture *f = *state;
        run(f, "team-w", POD("driver", "", "default", "", ""));
        assert_int_equal(f->m.decision, DECISION_DENIED);
        assert_non_null(strstr(f->m.message, "service account \"spark\""));
        assert_non_null(strstr(f->m.message, "runs as \"default\""));
        assert_non_null(strstr(f->m.message, "spark.kubernetes.authenticate.driver.serviceAccountName=spark"));
}

static void test_executor_with_default_account_corrected(void **state)
{
        struct fixture *f = *state;
        run(f, "team-w", POD("executor", "", "default", "", ",'serviceAccount':'default'"));
        assert_int_equal(f->m.decision, DECISION_MUTATED);
        assert_op(f, 0, "add", "/spec/serviceAccountName", "'spark'");
        assert_op(f, 1, "add", "/spec/serviceAccount", "'spark'");
        assert_true(has_warning(&f->m, "serviceAccountName default replaced by spark"));
        assert_string_equal(f->m.service_account, "spark");
}

static void test_executor_without_account_corrected(void **state)
{
        struct fixture *f = *state;
        run(f, "team-w",
            "{'metadata':{'labels':{'spark-role':'executor'}},'spec':{'containers':"
            "[{'name':'spark-kubernetes-executor','image':'apache/spark:4.0.0'}]}}");
        assert_int_equal(f->m.decision, DECISION_MUTATED);
        assert_op(f, 0, "add", "/spec/serviceAccountName", "'spark'");
}

/* Found by fuzz_review: nothing is added under a spec that is not there. */
static void test_executor_without_spec(void **state)
{
        struct fixture *f = *state;
        run(f, "team-w", "{'metadata':{'labels':{'spark-role':'executor'}}}");
        assert_int_equal(f->m.decision, DECISION_UNCHANGED);
        assert_int_equal(f->m.patch.n_ops, 0);
}

static void test_executor_with_default_account_refused_on_deny(void **state)
{
        struct fixture *f = *state;
        run(f, "team-d", POD("executor", "", "default", "", ""));
        assert_int_equal(f->m.decision, DECISION_DENIED);
        assert_non_null(strstr(f->m.message, "spark.kubernetes.authenticate.executor.serviceAccountName=spark"));
}

static void test_executor_with_other_account_refused(void **state)
{
        struct fixture *f = *state;
        run(f, "team-w", POD("executor", "", "etl", "", ""));
        assert_int_equal(f->m.decision, DECISION_DENIED);
        assert_non_null(strstr(f->m.message, "runs as \"etl\""));
}

static void test_no_service_account_in_rule(void **state)
{
        struct fixture *f = *state;
        run(f, "team-n", POD("driver", "", "anything", "", ""));
        assert_int_equal(f->m.decision, DECISION_MUTATED);
        assert_string_equal(f->m.service_account, "anything");
}

static void test_claimed_identity(void **state)
{
        struct fixture *f = *state;
        run(f, "team-w", POD("driver", ",'aadpodidbinding':'sparkaks'", "spark", "", ""));
        assert_int_equal(f->m.decision, DECISION_MUTATED);
        assert_op(f, 0, "remove", "/metadata/labels/aadpodidbinding", NULL);
        assert_true(has_warning(&f->m, "label aadpodidbinding=sparkaks removed"));
        assert_null(f->m.identity_after);
}

static void test_claimed_identity_allowed_stays(void **state)
{
        struct fixture *f = *state;
        run(f, "team-w", POD("driver", ",'aadpodidbinding':'old-spark'", "spark", "", ""));
        assert_int_equal(f->m.decision, DECISION_MUTATED);
        assert_op(f, 0, "add", "/spec/volumes", "[" VOLUME "]");
        assert_string_equal(f->m.identity_after, "old-spark");
}

static void test_claimed_identity_refused_on_deny(void **state)
{
        struct fixture *f = *state;
        run(f, "team-d", POD("driver", ",'aadpodidbinding':'sparkaks'", "spark", "", ""));
        assert_int_equal(f->m.decision, DECISION_DENIED);
        assert_non_null(strstr(f->m.message, "may not use Azure identity \"sparkaks\""));
}

static void test_non_spark_pod_claiming_other_namespaces_identity(void **state)
{
        struct fixture *f = *state;
        run(f, "team-w", "{'metadata':{'labels':{'aadpodidbinding':'sparkaks'}},'spec':{'containers':[{'name':'x'}]}}");
        assert_int_equal(f->m.decision, DECISION_DENIED);
}

static void test_audit_mode(void **state)
{
        struct fixture *f = *state;
        run(f, "team-u", POD("executor", "", "default", "", ""));
        assert_int_equal(f->m.decision, DECISION_WOULD_MUTATE);
        assert_true(has_warning(&f->m, "audit: serviceAccountName default would be replaced by spark"));
        assert_true(has_warning(&f->m, "audit: would add volume spark-identity-azure-token"));
        assert_true(has_warning(&f->m, "audit: would add the workload identity's env and token mount to container "
                                       "spark-kubernetes-executor"));
        assert_true(has_warning(&f->m, "audit: would add the policy's JVM flags"));

        fixture_reset(f);
        run(f, "team-u", POD("driver", "", "default", "", ""));
        assert_int_equal(f->m.decision, DECISION_UNCHANGED);
        assert_true(has_warning(&f->m, "audit: service account default is not spark; the pod would be refused"));
}

static void test_extra_containers(void **state)
{
        struct fixture *f = *state;
        run(f, "team-x",
            "{'metadata':{'labels':{'spark-role':'driver'}},'spec':{"
            "'initContainers':[{'name':'fetch','image':'az'}],"
            "'containers':[{'name':'proxy','env':[]},{'name':'log'},"
            "{'name':'spark-kubernetes-driver','image':'apache/spark:4.0.0'}]}}");
        assert_int_equal(f->m.decision, DECISION_MUTATED);
        assert_op(f, 0, "add", "/spec/volumes", "[" VOLUME "]");
        assert_op(f, 1, "add", "/spec/containers/2/env",
                  "[{'name':'SPARK_SUBMIT_OPTS','value':'" FLAGS "'}," AZ_ENV "]");
        assert_op(f, 2, "add", "/spec/containers/2/volumeMounts", "[" MOUNT "]");
        assert_op(f, 3, "add", "/spec/initContainers/0/env", "[" AZ_ENV "]");
        assert_op(f, 4, "add", "/spec/initContainers/0/volumeMounts", "[" MOUNT "]");
        assert_op(f, 5, "add", "/spec/containers/0/env/-", "{'name':'AZURE_CLIENT_ID','value':'" CLIENT "'}");
        assert_op(f, 9, "add", "/spec/containers/0/volumeMounts", "[" MOUNT "]");
        assert_int_equal(f->m.patch.n_ops, 10);
}

static void test_mount_path_taken(void **state)
{
        struct fixture *f = *state;
        run(f, "team-w",
            POD("driver", "", "spark",
                ",'volumeMounts':[{'name':'mine','mountPath':'/var/run/secrets/spark-identity/azure'}]",
                ",'volumes':[{'name':'mine','emptyDir':{}}]"));
        assert_int_equal(f->m.decision, DECISION_DENIED);
        assert_non_null(strstr(f->m.message, "mounts volume mine at /var/run/secrets/spark-identity/azure"));
}

static void test_mount_corrected(void **state)
{
        struct fixture *f = *state;
        run(f, "team-w",
            POD("driver", "", "spark",
                ",'env':[{'name':'SPARK_SUBMIT_OPTS','value':'" FLAGS "'}," AZ_ENV "],"
                "'volumeMounts':[{'name':'spark-identity-azure-token','mountPath':'/tmp/t'}]",
                ",'volumes':[" VOLUME "]"));
        assert_int_equal(f->m.patch.n_ops, 1);
        assert_op(f, 0, "replace", "/spec/containers/0/volumeMounts/0", MOUNT);
}

static void test_spark3_image_warned(void **state)
{
        static const char *const spark3[] = {
                "apache/spark:3.5.1",
                "myacr.azurecr.io:443/spark:v3.4.0-java11",
                "spark:3.5.0-scala2.12-java17-ubuntu@sha256:abc",
        };
        static const char *const not3[] = { "apache/spark:4.0.0", "registry:3000/spark", "spark:latest", "spark" };
        struct fixture *f = *state;
        for (size_t i = 0; i < 3 + 4; i++) {
                const char *image = i < 3 ? spark3[i] : not3[i - 3];
                char pod[512];
                snprintf(pod, sizeof pod,
                         "{'metadata':{'labels':{'spark-role':'driver'}},'spec':{'serviceAccountName':"
                         "'spark','containers':[{'name':'spark-kubernetes-driver','image':'%s'}]}}",
                         image);
                fixture_reset(f);
                run(f, "team-w", pod);
                assert_int_equal(f->m.decision, DECISION_MUTATED);
                if (has_warning(&f->m, "is Spark 3.x: its Hadoop 3.3 lacks WorkloadIdentityTokenProvider") != (i < 3))
                        fail_msg("image %s: warning %s", image, i < 3 ? "missing" : "unexpected");
                if (i == 0)
                        assert_true(has_warning(&f->m, "image apache/spark:3.5.1 is Spark 3.x"));
        }
}

/* Pod identity beside it is unchanged: the label, MsiTokenProvider, no AZURE_*. */
static void test_pod_identity_namespace_beside(void **state)
{
        struct fixture *f = *state;
        run(f, "team-a", POD("driver", "", "default", "", ""));
        assert_int_equal(f->m.decision, DECISION_MUTATED);
        assert_int_equal(f->m.auth, POLICY_AUTH_POD_IDENTITY);
        assert_op(f, 0, "add", "/metadata/labels/aadpodidbinding", "'sparkaks'");
        assert_int_equal(f->m.patch.n_ops, 2);
        assert_null(strstr(f->m.patch.text.data, "AZURE_"));
        assert_non_null(strstr(f->m.patch.text.data, MSI));
}

/* ---- audit findings ---- */

static void test_finding(void **state)
{
        struct fixture *f = *state;
        struct findings fs;
        findings_init(&fs, 100);
        /* A driver mutated under pod identity, before its namespace moved. */
        cJSON *old = json("{'metadata':{'name':'d','namespace':'team-w','labels':{'spark-role':'driver',"
                          "'aadpodidbinding':'old-spark'}},'spec':{'serviceAccountName':'spark','containers':"
                          "[{'name':'spark-kubernetes-driver','env':[]}]}}");
        cJSON *good = json(POD("driver", "", "spark",
                               ",'env':[{'name':'SPARK_SUBMIT_OPTS','value':'" FLAGS "'}," AZ_ENV "],"
                               "'volumeMounts':[" MOUNT "]",
                               ",'volumes':[" VOLUME "]"));
        cJSON *exec = json(POD("executor", "", "default",
                               ",'env':[{'name':'SPARK_JAVA_OPT_0','value':'" F1
                               "'},{'name':'SPARK_JAVA_OPT_1','value':'" F2 "'},{'name':'SPARK_JAVA_OPT_2','value':'" F3
                               "'},{'name':'SPARK_JAVA_OPT_3','value':'" F4 "'},{'name':'SPARK_JAVA_OPT_4','value':'" F5
                               "'},{'name':'SPARK_JAVA_OPT_5','value':'" F6 "'}," AZ_ENV "],'volumeMounts':[" MOUNT "]",
                               ",'volumes':[" VOLUME "]"));
        enum pod_verdict v;
        assert_int_equal(findings_check_pod(f->policy, "team-w", NULL, old, &fs, &v), 0);
        assert_int_equal(v, VERDICT_FINDINGS);
        bool wi = false, jvm = false;
        for (size_t i = 0; i < fs.n; i++) {
                wi = wi || fs.items[i].problem == FINDING_MISSING_WORKLOAD_IDENTITY;
                jvm = jvm || fs.items[i].problem == FINDING_MISSING_JVM_SETTINGS;
                assert_int_not_equal(fs.items[i].problem, FINDING_MISSING_IDENTITY);
        }
        assert_true(wi && jvm);
        assert_string_equal(finding_problem_name(FINDING_MISSING_WORKLOAD_IDENTITY), "missing-workload-identity");

        size_t before = fs.n;
        assert_int_equal(findings_check_pod(f->policy, "team-w", NULL, good, &fs, &v), 0);
        assert_int_equal(v, VERDICT_COMPLIANT);
        assert_int_equal(fs.n, before);

        assert_int_equal(findings_check_pod(f->policy, "team-w", NULL, exec, &fs, &v), 0);
        assert_int_equal(v, VERDICT_FINDINGS);
        assert_int_equal(fs.items[fs.n - 1].problem, FINDING_MISSING_WORKLOAD_IDENTITY);
        assert_string_equal(fs.items[fs.n - 1].found, "serviceAccountName=default");

        cJSON_Delete(old);
        cJSON_Delete(good);
        cJSON_Delete(exec);
        findings_free(&fs);
}

static void test_finding_for_refused_driver(void **state)
{
        struct fixture *f = *state;
        struct findings fs;
        findings_init(&fs, 100);
        cJSON *pod = json(POD("driver", "", "default", "", ""));
        enum pod_verdict v;
        assert_int_equal(findings_check_pod(f->policy, "team-w", NULL, pod, &fs, &v), 0);
        assert_int_equal(v, VERDICT_FINDINGS);
        assert_int_equal(fs.items[0].problem, FINDING_MISSING_WORKLOAD_IDENTITY);
        assert_non_null(strstr(fs.items[0].found, "admission would refuse it"));
        assert_non_null(strstr(fs.items[0].expected, "serviceAccountName=spark"));
        cJSON_Delete(pod);
        findings_free(&fs);
}

int main(void)
{
        const struct CMUnitTest tests[] = {
                cmocka_unit_test_setup_teardown(test_rule_compiled, setup, teardown),
                cmocka_unit_test(test_other_cloud_and_lifetime),
                cmocka_unit_test(test_bad_policies),
                cmocka_unit_test(test_defaults_make_every_rule_workload_identity),
                cmocka_unit_test(test_annotations),
                cmocka_unit_test_setup_teardown(test_driver, setup, teardown),
                cmocka_unit_test_setup_teardown(test_executor_appends, setup, teardown),
                cmocka_unit_test_setup_teardown(test_reinvocation_is_empty, setup, teardown),
                cmocka_unit_test_setup_teardown(test_volume_not_as_policy_is_replaced, setup, teardown),
                cmocka_unit_test_setup_teardown(test_after_azure_workload_identity_webhook, setup, teardown),
                cmocka_unit_test_setup_teardown(test_reinvoked_after_azure_workload_identity_webhook, setup, teardown),
                cmocka_unit_test_setup_teardown(test_other_client_id, setup, teardown),
                cmocka_unit_test_setup_teardown(test_duplicate_env_last_counts, setup, teardown),
                cmocka_unit_test_setup_teardown(test_other_client_id_refused_on_deny, setup, teardown),
                cmocka_unit_test_setup_teardown(test_client_id_from_value_from_left_alone, setup, teardown),
                cmocka_unit_test_setup_teardown(test_driver_with_other_account_refused, setup, teardown),
                cmocka_unit_test_setup_teardown(test_executor_with_default_account_corrected, setup, teardown),
                cmocka_unit_test_setup_teardown(test_executor_without_account_corrected, setup, teardown),
                cmocka_unit_test_setup_teardown(test_executor_without_spec, setup, teardown),
                cmocka_unit_test_setup_teardown(test_executor_with_default_account_refused_on_deny, setup, teardown),
                cmocka_unit_test_setup_teardown(test_executor_with_other_account_refused, setup, teardown),
                cmocka_unit_test_setup_teardown(test_no_service_account_in_rule, setup, teardown),
                cmocka_unit_test_setup_teardown(test_claimed_identity, setup, teardown),
                cmocka_unit_test_setup_teardown(test_claimed_identity_allowed_stays, setup, teardown),
                cmocka_unit_test_setup_teardown(test_claimed_identity_refused_on_deny, setup, teardown),
                cmocka_unit_test_setup_teardown(test_non_spark_pod_claiming_other_namespaces_identity, setup, teardown),
                cmocka_unit_test_setup_teardown(test_audit_mode, setup, teardown),
                cmocka_unit_test_setup_teardown(test_extra_containers, setup, teardown),
                cmocka_unit_test_setup_teardown(test_mount_path_taken, setup, teardown),
                cmocka_unit_test_setup_teardown(test_mount_corrected, setup, teardown),
                cmocka_unit_test_setup_teardown(test_spark3_image_warned, setup, teardown),
                cmocka_unit_test_setup_teardown(test_pod_identity_namespace_beside, setup, teardown),
                cmocka_unit_test_setup_teardown(test_finding, setup, teardown),
                cmocka_unit_test_setup_teardown(test_finding_for_refused_driver, setup, teardown),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
