/* The identity objects rendered from a policy: per pod-identity rule the
 * AzureIdentity and its binding, per workload-identity rule the
 * ServiceAccount (JSON, and the same in YAML); the federated credentials as
 * az commands and azurerm resources, every value quoted for its language;
 * what a rule lacks, each problem naming its rule; selectors left out with
 * a warning; the output's bound. */
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

#include "buf.h"
#include "policy.h"
#include "render_identities.h"
#include "webhook_limits.h"

#define TENANT "72f988bf-86f1-41af-91ab-2d7cd011db47"
#define CLIENT_A "5f4c1b2a-8d3e-4f6a-9b7c-1d2e3f4a5b6c"
#define CLIENT_W "35904882-c55f-4e4e-a5f8-b01b0a2ab043"
#define SUB "6513270e-269e-4d37-b2a7-4de452e6b438"
#define RID(rg, name)                                                                       \
        "/subscriptions/" SUB "/resourcegroups/" rg "/providers/Microsoft.ManagedIdentity/" \
        "userAssignedIdentities/" name
#define ISSUER "https://eastus.oic.prod-aks.azure.com/" TENANT "/0c1d2e3f-4a5b-4c6d-8e7f-9a0b1c2d3e4f/"

static const char policy_text[] =
        "defaults: {tenantId: " TENANT "}\n"
        "namespaces:\n"
        "  team-a: {identity: sparkaks, clientId: " CLIENT_A ", resourceId: \"" RID(
                "rg-spark",
                "sparkaks") "\"}\n"
                            "  team-b: {identity: Team_B.Spark, clientId: " CLIENT_A ", resourceId: \"" RID(
                                    "rg(x)",
                                    "b-id") "\"}\n"
                                            "  team-w: {auth: workloadIdentity, clientId: " CLIENT_W
                                            ", serviceAccount: spark.driver,\n"
                                            "           resourceId: \"" RID(
                                                    "rg-wi",
                                                    "w-id") "\"}\n"
                                                            "  7days: {auth: workloadIdentity, clientId: " CLIENT_W
                                                            ", serviceAccount: spark,\n"
                                                            "          resourceId: \"" RID(
                                                                    "rg-wi",
                                                                    "w-id") "\"}\n"
                                                                            "selectors:\n"
                                                                            "  - {name: data, namespaceSelector: "
                                                                            "{matchLabels: {team: data}}, identity: "
                                                                            "data-spark}\n"
                                                                            "  - {name: wi-data, namespaceSelector: "
                                                                            "{}, auth: workloadIdentity, "
                                                                            "clientId: " CLIENT_W "}\n";

static struct policy *load_ok(const char *text)
{
        struct policy *p = NULL;
        struct buf errors;
        buf_init(&errors, 1 << 20);
        if (policy_load_sha256(text, strlen(text), "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef",
                               &p, &errors) < 0)
                fail_msg("policy did not load:\n%s", errors.data);
        buf_free(&errors);
        return p;
}

/* Renders `p`; the output and *ret_notes (may be NULL) are the caller's. */
static char *render_ok(const struct policy *p, enum render_identities_format f, const char *issuer, char **ret_notes)
{
        struct buf out, notes;
        buf_init(&out, RENDER_MAX_OUTPUT_BYTES);
        buf_init(&notes, 1 << 16);
        int r = render_identities(p, f, issuer, &out, &notes);
        if (r < 0)
                fail_msg("render: %d %s", r, notes.data ? notes.data : "");
        char *s = buf_steal(&out);
        assert_non_null(s);
        if (ret_notes)
                *ret_notes = notes.data ? buf_steal(&notes) : strdup("");
        buf_free(&notes);
        return s;
}

/* Renders a policy that must fail; returns the problems (caller frees). */
static char *render_bad(const char *text, enum render_identities_format f, const char *issuer)
{
        struct policy *p = load_ok(text);
        struct buf out, notes;
        buf_init(&out, RENDER_MAX_OUTPUT_BYTES);
        buf_init(&notes, 1 << 16);
        assert_int_equal(render_identities(p, f, issuer, &out, &notes), -EINVAL);
        assert_non_null(notes.data);
        buf_free(&out);
        policy_free(p);
        return buf_steal(&notes);
}

static bool starts_with(const char *s, const char *prefix)
{
        return strncmp(s, prefix, strlen(prefix)) == 0;
}

static size_t lines_of(const char *s)
{
        size_t n = 0;
        for (; *s; s++)
                n += *s == '\n';
        return n;
}

static const char *str_at(const cJSON *o, const char *a, const char *b, const char *c)
{
        const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, a);
        if (b)
                v = cJSON_GetObjectItemCaseSensitive(v, b);
        if (c)
                v = cJSON_GetObjectItemCaseSensitive(v, c);
        if (!cJSON_IsString(v))
                fail_msg("%s.%s.%s is not a string", a, b ? b : "", c ? c : "");
        return v->valuestring;
}

static void assert_metadata(const cJSON *o, const char *api_version, const char *kind, const char *name, const char *ns)
{
        assert_string_equal(str_at(o, "apiVersion", NULL, NULL), api_version);
        assert_string_equal(str_at(o, "kind", NULL, NULL), kind);
        assert_string_equal(str_at(o, "metadata", "name", NULL), name);
        assert_string_equal(str_at(o, "metadata", "namespace", NULL), ns);
        const cJSON *md = cJSON_GetObjectItemCaseSensitive(o, "metadata");
        assert_string_equal(str_at(md, "annotations", "spark-identity.io/policy-sha256", NULL),
                            "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef");
        assert_string_equal(str_at(md, "labels", "app.kubernetes.io/component", NULL), "identities");
}

/* Each named rule's objects, in namespace order; selectors left out. */
static void test_objects(void **state)
{
        struct policy *p = load_ok(policy_text);
        char *notes = NULL;
        char *json = render_ok(p, RENDER_IDENTITIES_JSON, NULL, &notes);
        cJSON *list = cJSON_Parse(json);
        assert_non_null(list);
        assert_string_equal(str_at(list, "apiVersion", NULL, NULL), "v1");
        assert_string_equal(str_at(list, "kind", NULL, NULL), "List");
        const cJSON *items = cJSON_GetObjectItemCaseSensitive(list, "items");
        assert_int_equal(cJSON_GetArraySize(items), 6);

        const cJSON *o = cJSON_GetArrayItem(items, 0);
        assert_metadata(o, "v1", "ServiceAccount", "spark", "7days");
        assert_string_equal(str_at(o, "metadata", "annotations", "azure.workload.identity/client-id"), CLIENT_W);
        assert_string_equal(str_at(o, "metadata", "annotations", "azure.workload.identity/tenant-id"), TENANT);
        assert_null(cJSON_GetObjectItemCaseSensitive(o, "spec"));

        o = cJSON_GetArrayItem(items, 1);
        assert_metadata(o, "aadpodidentity.k8s.io/v1", "AzureIdentity", "sparkaks", "team-a");
        assert_string_equal(str_at(o, "metadata", "annotations", "aadpodidentity.k8s.io/Behavior"), "namespaced");
        const cJSON *spec = cJSON_GetObjectItemCaseSensitive(o, "spec");
        assert_true(cJSON_IsNumber(cJSON_GetObjectItemCaseSensitive(spec, "type")));
        assert_int_equal(cJSON_GetObjectItemCaseSensitive(spec, "type")->valueint, 0);
        assert_string_equal(str_at(spec, "resourceID", NULL, NULL), RID("rg-spark", "sparkaks"));
        assert_string_equal(str_at(spec, "clientID", NULL, NULL), CLIENT_A);

        o = cJSON_GetArrayItem(items, 2);
        assert_metadata(o, "aadpodidentity.k8s.io/v1", "AzureIdentityBinding", "sparkaks-binding", "team-a");
        assert_string_equal(str_at(o, "spec", "azureIdentity", NULL), "sparkaks");
        assert_string_equal(str_at(o, "spec", "selector", NULL), "sparkaks");

        /* A label value that is no object name: lowercased, '_' and '.'
         * made '-'; the selector keeps the identity as pods carry it. */
        o = cJSON_GetArrayItem(items, 3);
        assert_metadata(o, "aadpodidentity.k8s.io/v1", "AzureIdentity", "team-b-spark", "team-b");
        assert_string_equal(str_at(o, "spec", "resourceID", NULL), RID("rg(x)", "b-id"));
        o = cJSON_GetArrayItem(items, 4);
        assert_metadata(o, "aadpodidentity.k8s.io/v1", "AzureIdentityBinding", "team-b-spark-binding", "team-b");
        assert_string_equal(str_at(o, "spec", "azureIdentity", NULL), "team-b-spark");
        assert_string_equal(str_at(o, "spec", "selector", NULL), "Team_B.Spark");

        o = cJSON_GetArrayItem(items, 5);
        assert_metadata(o, "v1", "ServiceAccount", "spark.driver", "team-w");

        /* Both selectors are warnings, one line each, naming them. */
        assert_int_equal(lines_of(notes), 2);
        assert_non_null(strstr(notes, "selector data matches namespaces by their labels"));
        assert_non_null(strstr(notes, "selector wi-data matches"));
        cJSON_Delete(list);
        free(json);
        free(notes);

        /* YAML: the header, then the same objects. */
        char *yaml = render_ok(p, RENDER_IDENTITIES_YAML, NULL, NULL);
        assert_true(starts_with(yaml, "# The Azure identity objects of the policy"));
        assert_non_null(strstr(yaml, "# from the policy with sha256 0123456789abcdef"));
        assert_non_null(strstr(yaml, "# Not rendered: selector data matches namespaces by their labels"));
        assert_non_null(strstr(yaml, "\n---\napiVersion: aadpodidentity.k8s.io/v1\nkind: AzureIdentity\n"));
        assert_non_null(strstr(yaml, "  selector: Team_B.Spark\n"));
        assert_non_null(strstr(yaml, "  type: 0\n"));
        assert_non_null(strstr(yaml, "  namespace: \"7days\"\n"));   /* a number to YAML 1.1 would not be */
        free(yaml);
        policy_free(p);
}

/* -o shell: a script of az commands, one per workload-identity rule. */
static void test_shell(void **state)
{
        struct policy *p = load_ok(policy_text);
        char *notes = NULL;
        char *sh = render_ok(p, RENDER_IDENTITIES_SHELL, ISSUER, &notes);
        assert_true(starts_with(sh, "#!/bin/sh\n# The federated identity credentials"));
        assert_non_null(strstr(sh, "\nset -eu\n"));
        assert_non_null(strstr(sh, "az identity federated-credential create \\\n"
                                   "    --name team-w-spark-driver \\\n"
                                   "    --identity-name w-id \\\n"
                                   "    --resource-group rg-wi \\\n"
                                   "    --subscription " SUB " \\\n"
                                   "    --issuer " ISSUER " \\\n"
                                   "    --subject system:serviceaccount:team-w:spark.driver \\\n"
                                   "    --audience api://AzureADTokenExchange\n"));
        assert_non_null(strstr(sh, "--name 7days-spark \\"));
        /* Pod identity rules have nothing to federate; nor a
         * podIdentity selector: only the workloadIdentity one is left out. */
        assert_null(strstr(sh, "sparkaks"));
        assert_int_equal(lines_of(notes), 1);
        assert_non_null(strstr(notes, "selector wi-data"));
        free(sh);
        free(notes);

        /* Quoted where the shell would read a character itself. */
        sh = render_ok(p, RENDER_IDENTITIES_SHELL, "https://issuer.example/it's/$HOME;x", NULL);
        assert_non_null(strstr(sh, "--issuer 'https://issuer.example/it'\\''s/$HOME;x' \\\n"));
        policy_free(p);
        free(sh);

        p = load_ok("namespaces:\n  t: {auth: workloadIdentity, tenantId: " TENANT ", clientId: " CLIENT_W
                    ", serviceAccount: sa, resourceId: \"" RID("rg(x)", "w-id") "\"}\n");
        sh = render_ok(p, RENDER_IDENTITIES_SHELL, ISSUER, NULL);
        assert_non_null(strstr(sh, "--resource-group 'rg(x)' \\\n"));
        free(sh);
        policy_free(p);

        /* No workload identity at all: a script that does nothing, and says so. */
        p = load_ok("namespaces:\n  t: {identity: x}\n");
        sh = render_ok(p, RENDER_IDENTITIES_SHELL, ISSUER, NULL);
        assert_non_null(strstr(sh, "nothing to federate"));
        assert_null(strstr(sh, "az identity"));
        free(sh);
        policy_free(p);
}

/* -o terraform: one azurerm_federated_identity_credential per
 * workload-identity rule, strings escaped for HCL. */
static void test_terraform(void **state)
{
        struct policy *p = load_ok(policy_text);
        char *tf = render_ok(p, RENDER_IDENTITIES_TERRAFORM, ISSUER, NULL);
        assert_non_null(strstr(
                tf, "resource \"azurerm_federated_identity_credential\" \"team-w_spark-driver\" {\n"
                    "  name                = \"team-w-spark-driver\"\n"
                    "  resource_group_name = \"rg-wi\"\n"
                    "  parent_id           = \"" RID(
                            "rg-wi", "w-id") "\"\n"
                                             "  audience            = [\"api://AzureADTokenExchange\"]\n"
                                             "  issuer              = \"" ISSUER "\"\n"
                                             "  subject             = \"system:serviceaccount:team-w:spark.driver\"\n"
                                             "}\n"));
        /* A label starts with a letter or '_'. */
        assert_non_null(strstr(tf, "\"azurerm_federated_identity_credential\" \"_7days_spark\" {\n"));
        assert_non_null(strstr(tf, "# For the azurerm provider 3.x and 4.x"));
        free(tf);

        tf = render_ok(p, RENDER_IDENTITIES_TERRAFORM, "https://x.example/${var.a}/%{if}\"\\", NULL);
        assert_non_null(strstr(tf, "  issuer              = \"https://x.example/$${var.a}/%%{if}\\\"\\\\\"\n"));
        free(tf);
        policy_free(p);
}

/* Every rule that lacks what its objects need is named, all in one go;
 * nothing is written. */
static void test_what_rules_lack(void **state)
{
        static const char lacking[] =
                "defaults: {tenantId: " TENANT "}\n"
                "namespaces:\n"
                "  a: {identity: a-spark, clientId: " CLIENT_A "}\n"
                "  b: {identity: b-spark, resourceId: \"" RID(
                        "rg", "b-id") "\"}\n"
                                      "  c: {identity: c-spark, clientId: " CLIENT_A ", resourceId: \"" RID(
                                              "rg", "c-id") "\"}\n"
                                                            "  w: {auth: workloadIdentity, clientId: " CLIENT_W "}\n"
                                                            "  v: {auth: workloadIdentity, clientId: " CLIENT_W
                                                            ", serviceAccount: spark}\n";
        char *e = render_bad(lacking, RENDER_IDENTITIES_YAML, NULL);
        assert_int_equal(lines_of(e), 3);
        assert_non_null(strstr(e, "namespaces.a: resourceId is not set (in the rule or in defaults): the "
                                  "AzureIdentity of identity a-spark needs the managed identity's resource id"));
        assert_non_null(strstr(e, "namespaces.b: clientId is not set"));
        assert_non_null(strstr(e, "namespaces.w: serviceAccount is not set"));
        free(e);

        /* For the federated credentials, pod identity rules do not matter,
         * and a workload identity rule needs its resourceId. */
        e = render_bad(lacking, RENDER_IDENTITIES_SHELL, ISSUER);
        assert_int_equal(lines_of(e), 2);
        assert_non_null(strstr(e, "namespaces.w: serviceAccount is not set"));
        assert_non_null(strstr(e, "namespaces.v: resourceId is not set (in the rule or in defaults): the "
                                  "federated credential is made on the managed identity it names"));
        free(e);

        e = render_bad("namespaces:\n  t: {identity: x}\n", RENDER_IDENTITIES_TERRAFORM, NULL);
        assert_string_equal(e, "the federated credentials need the cluster's OIDC issuer (--oidc-issuer URL)\n");
        free(e);
        e = render_bad("namespaces:\n  t: {identity: x}\n", RENDER_IDENTITIES_SHELL, "http://issuer.example/");
        assert_string_equal(e, "the OIDC issuer \"http://issuer.example/\" is not an https URL with a host\n");
        free(e);

        /* A credential's name Azure would refuse. */
        char text[1024];
        char sa[200];
        memset(sa, 'a', 150);
        sa[150] = '\0';
        snprintf(text, sizeof text,
                 "namespaces:\n  t: {auth: workloadIdentity, tenantId: " TENANT ", clientId: " CLIENT_W
                 ", serviceAccount: %s}\n",
                 sa);
        e = render_bad(text, RENDER_IDENTITIES_YAML, NULL);
        assert_non_null(strstr(e, "would be longer than the 120 characters Azure allows"));
        free(e);
}

static void test_issuer_and_names(void **state)
{
        assert_true(render_identities_issuer_valid(ISSUER));
        assert_false(render_identities_issuer_valid(NULL));
        assert_false(render_identities_issuer_valid(""));
        assert_false(render_identities_issuer_valid("https://"));
        assert_false(render_identities_issuer_valid("https://a b/"));
        assert_false(render_identities_issuer_valid("https://a\x01/"));
        assert_false(render_identities_issuer_valid("oidc.example/"));
        assert_string_equal(render_identities_format_name(RENDER_IDENTITIES_YAML), "yaml");
        assert_string_equal(render_identities_format_name(RENDER_IDENTITIES_JSON), "json");
        assert_string_equal(render_identities_format_name(RENDER_IDENTITIES_TERRAFORM), "terraform");
        assert_string_equal(render_identities_format_name(RENDER_IDENTITIES_SHELL), "shell");
        assert_null(render_identities_format_name(RENDER_IDENTITIES_FORMAT_MAX));
}

/* An output that passes its bound is -ENOBUFS, in every format. */
static void test_output_bound(void **state)
{
        struct policy *p = load_ok(policy_text);
        for (int f = 0; f < RENDER_IDENTITIES_FORMAT_MAX; f++) {
                struct buf out, notes;
                buf_init(&out, 256);
                buf_init(&notes, 1 << 16);
                assert_int_equal(render_identities(p, f, ISSUER, &out, &notes), -ENOBUFS);
                buf_free(&out);
                buf_free(&notes);
        }
        policy_free(p);
}

/* The annotations' rules are not in the policy: said in the comment. */
static void test_annotations_said(void **state)
{
        struct policy *p = load_ok("namespaces:\n  t: {identity: x, clientId: " CLIENT_A ", resourceId: \"" RID(
                "rg", "x-id") "\"}\nnamespaceAnnotations: true\ndelegableIdentities: [ann]\n");
        char *notes = NULL;
        char *yaml = render_ok(p, RENDER_IDENTITIES_YAML, NULL, &notes);
        assert_non_null(strstr(yaml, "# Not rendered: rules that namespaces' spark-identity.io/ annotations give.\n"));
        assert_string_equal(notes, "");
        free(yaml);
        free(notes);
        policy_free(p);
}

int main(void)
{
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_objects),          cmocka_unit_test(test_shell),
                cmocka_unit_test(test_terraform),        cmocka_unit_test(test_what_rules_lack),
                cmocka_unit_test(test_issuer_and_names), cmocka_unit_test(test_output_bound),
                cmocka_unit_test(test_annotations_said),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
