/* The admission policy rendered from a policy: the three objects and their
 * order, the ConfigMap's data for every kind of rule and identity, the
 * selectors' CEL (every operator, no selector, many selectors split over
 * several expressions), CEL string escaping, YAML that reads back as the
 * same objects as the JSON, the header, and the errors; and the
 * namespace-grants policy and its binding, printed only for a policy that
 * reads namespaces, with the grantors and grant labels in the ConfigMap. */
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
#include "doc.h"
#include "policy.h"
#include "render.h"
#include "webhook_limits.h"

#define TENANT "72f988bf-86f1-41af-91ab-2d7cd011db47"
#define CLIENT "5f4c1b2a-8d3e-4f6a-9b7c-1d2e3f4a5b6c"

static const char namespaces_policy[] =
        "defaults: {mode: enforce, allowedIdentities: [shared-api]}\n"
        "namespaces:\n"
        "  team-a: {identity: sparkaks, allowedIdentities: [team-a-api]}\n"
        "  team-c: {identity: c-spark, mode: audit}\n"
        "  team-off: {identity: off-spark, mode: \"off\"}\n"
        "  team-w: {auth: workloadIdentity, tenantId: " TENANT ", clientId: " CLIENT "}\n"
        "unlistedIdentities: deny\n";

static const char selectors_policy[] = "namespaces:\n"
                                       "  team-a: {identity: sparkaks}\n"
                                       "selectors:\n"
                                       "  - name: data-platform\n"
                                       "    namespaceSelector:\n"
                                       "      matchLabels: {spark-identity.io/team: data}\n"
                                       "      matchExpressions:\n"
                                       "        - {key: env, operator: NotIn, values: [frozen, old]}\n"
                                       "        - {key: tier, operator: Exists}\n"
                                       "        - {key: legacy, operator: DoesNotExist}\n"
                                       "        - {key: zone, operator: In, values: [a, b]}\n"
                                       "    identity: data-spark\n"
                                       "    mode: audit\n"
                                       "  - namespaceSelector: {}\n"
                                       "    identity: catch-all\n"
                                       "namespaceAnnotations: true\n"
                                       "delegableIdentities: [ann-spark, ann-other]\n";

/* Renders `p`; the output is the caller's. */
static char *render(const struct policy *p, const char *ns, enum render_format f)
{
        struct buf out;
        char err[256] = "";
        buf_init(&out, RENDER_MAX_OUTPUT_BYTES);
        int r = render_admission_policy(p, ns, f, &out, err, sizeof err);
        if (r < 0)
                fail_msg("render: %d %s", r, err);
        char *s = buf_steal(&out);
        assert_non_null(s);
        return s;
}

/* How many objects a policy renders to: the ConfigMap and the claims
 * policy and binding; the grants policy and binding when it reads namespaces. */
static int objects_of(const struct policy *p)
{
        return policy_uses_namespaces(p) ? 5 : 3;
}

/* The JSON List's items, parsed. */
static cJSON *render_json(const struct policy *p, const char *ns)
{
        char *s = render(p, ns, RENDER_JSON);
        cJSON *list = cJSON_Parse(s);
        free(s);
        assert_non_null(list);
        assert_string_equal(cJSON_GetObjectItem(list, "kind")->valuestring, "List");
        assert_int_equal(cJSON_GetArraySize(cJSON_GetObjectItem(list, "items")), objects_of(p));
        return list;
}

static cJSON *item(cJSON *list, int i)
{
        return cJSON_GetArrayItem(cJSON_GetObjectItem(list, "items"), i);
}

static const char *data_of(cJSON *list, const char *key)
{
        cJSON *v = cJSON_GetObjectItem(cJSON_GetObjectItem(item(list, 0), "data"), key);
        return cJSON_IsString(v) ? v->valuestring : NULL;
}

/* The expression of variables[name] of the ValidatingAdmissionPolicy item i. */
static const char *variable_of(cJSON *list, int i, const char *name)
{
        cJSON *v;
        cJSON_ArrayForEach(v, cJSON_GetObjectItem(cJSON_GetObjectItem(item(list, i), "spec"), "variables"))
                if (strcmp(cJSON_GetObjectItem(v, "name")->valuestring, name) == 0)
                        return cJSON_GetObjectItem(v, "expression")->valuestring;
        return NULL;
}

/* ... of the claims policy. */
static const char *variable(cJSON *list, const char *name)
{
        return variable_of(list, 1, name);
}

static int count_data(cJSON *list, const char *prefix)
{
        int n = 0;
        cJSON *v;
        cJSON_ArrayForEach(v, cJSON_GetObjectItem(item(list, 0), "data"))
                n += strncmp(v->string, prefix, strlen(prefix)) == 0;
        return n;
}

static void test_objects_and_their_order(void **state)
{
        struct policy *p = load_policy(namespaces_policy);
        cJSON *list = render_json(p, RENDER_NAMESPACE_DEFAULT);
        const char *kinds[] = { "ConfigMap", "ValidatingAdmissionPolicy", "ValidatingAdmissionPolicyBinding" };
        for (int i = 0; i < 3; i++) {
                cJSON *o = item(list, i), *md = cJSON_GetObjectItem(o, "metadata");
                assert_string_equal(cJSON_GetObjectItem(o, "kind")->valuestring, kinds[i]);
                cJSON *ann = cJSON_GetObjectItem(md, "annotations");
                assert_string_equal(cJSON_GetObjectItem(ann, "spark-identity.io/policy-sha256")->valuestring,
                                    policy_sha256(p));
                assert_string_equal(cJSON_GetObjectItem(ann, "spark-identity.io/generated-by")->valuestring,
                                    RENDER_COMMAND);
        }
        cJSON *cm_md = cJSON_GetObjectItem(item(list, 0), "metadata");
        assert_string_equal(cJSON_GetObjectItem(cm_md, "name")->valuestring, RENDER_PARAMS_NAME);
        assert_string_equal(cJSON_GetObjectItem(cm_md, "namespace")->valuestring, "spark-identity-system");

        cJSON *spec = cJSON_GetObjectItem(item(list, 1), "spec");
        assert_string_equal(cJSON_GetObjectItem(spec, "failurePolicy")->valuestring, "Fail");
        assert_string_equal(cJSON_GetObjectItem(cJSON_GetObjectItem(spec, "paramKind"), "kind")->valuestring,
                            "ConfigMap");
        cJSON *rule = cJSON_GetArrayItem(
                cJSON_GetObjectItem(cJSON_GetObjectItem(spec, "matchConstraints"), "resourceRules"), 0);
        char *ops = cJSON_PrintUnformatted(cJSON_GetObjectItem(rule, "operations"));
        char *res = cJSON_PrintUnformatted(cJSON_GetObjectItem(rule, "resources"));
        assert_string_equal(ops, "[\"CREATE\",\"UPDATE\"]");
        assert_string_equal(res, "[\"pods\",\"pods/status\"]");
        free(ops);
        free(res);
        cJSON *cond = cJSON_GetArrayItem(cJSON_GetObjectItem(spec, "matchConditions"), 0);
        assert_non_null(strstr(cJSON_GetObjectItem(cond, "expression")->valuestring, "oldObject == null"));
        cJSON *val = cJSON_GetArrayItem(cJSON_GetObjectItem(spec, "validations"), 0);
        assert_string_equal(cJSON_GetObjectItem(val, "expression")->valuestring, "variables.allowed");
        assert_string_equal(cJSON_GetObjectItem(val, "reason")->valuestring, "Forbidden");
        const char *msg = cJSON_GetObjectItem(val, "messageExpression")->valuestring;
        assert_non_null(strstr(msg, "may not use Azure identity"));
        assert_non_null(strstr(msg, "(unlistedIdentities: deny)"));
        assert_non_null(strstr(msg, "the policy reserves it to other namespaces"));
        /* The API server refuses a message with a line break. */
        assert_null(strchr(cJSON_GetObjectItem(val, "message")->valuestring, '\n'));

        cJSON *bspec = cJSON_GetObjectItem(item(list, 2), "spec");
        assert_string_equal(cJSON_GetObjectItem(bspec, "policyName")->valuestring, RENDER_POLICY_NAME);
        cJSON *ref = cJSON_GetObjectItem(bspec, "paramRef");
        assert_string_equal(cJSON_GetObjectItem(ref, "name")->valuestring, RENDER_PARAMS_NAME);
        assert_string_equal(cJSON_GetObjectItem(ref, "namespace")->valuestring, "spark-identity-system");
        assert_string_equal(cJSON_GetObjectItem(ref, "parameterNotFoundAction")->valuestring, "Deny");
        char *actions = cJSON_PrintUnformatted(cJSON_GetObjectItem(bspec, "validationActions"));
        assert_string_equal(actions, "[\"Deny\"]");
        free(actions);
        cJSON *sel = cJSON_GetObjectItem(cJSON_GetObjectItem(bspec, "matchResources"), "namespaceSelector");
        cJSON *req = cJSON_GetArrayItem(cJSON_GetObjectItem(sel, "matchExpressions"), 0);
        char *values = cJSON_PrintUnformatted(cJSON_GetObjectItem(req, "values"));
        assert_string_equal(cJSON_GetObjectItem(req, "key")->valuestring, "kubernetes.io/metadata.name");
        assert_string_equal(cJSON_GetObjectItem(req, "operator")->valuestring, "NotIn");
        assert_string_equal(values, "[\"kube-system\",\"spark-identity-system\"]");
        free(values);
        cJSON_Delete(list);
        policy_free(p);
}

static void test_no_grants_policy_without_namespaces(void **state)
{
        struct policy *p = load_policy(namespaces_policy);
        cJSON *list = render_json(p, RENDER_NAMESPACE_DEFAULT);
        /* Still written: a namespace-grants policy of an earlier rendering reads them. */
        assert_string_equal(data_of(list, "grants"), "false");
        assert_string_equal(data_of(list, "grantors"), "group:system:masters");
        assert_string_equal(data_of(list, "grantlabels"), "");
        for (int i = 0; i < 3; i++)
                assert_string_not_equal(
                        cJSON_GetObjectItem(cJSON_GetObjectItem(item(list, i), "metadata"), "name")->valuestring,
                        RENDER_GRANTS_POLICY_NAME);
        cJSON_Delete(list);

        char *yaml = render(p, RENDER_NAMESPACE_DEFAULT, RENDER_YAML);
        assert_non_null(strstr(yaml, "# namespaceAnnotations): it has no grant keys, so namespace changes are not "
                                     "judged\n# and no " RENDER_GRANTS_POLICY_NAME " policy is printed"));
        assert_null(strstr(yaml, "kind: ValidatingAdmissionPolicy\nmetadata:\n  name: " RENDER_GRANTS_POLICY_NAME));
        free(yaml);
        policy_free(p);
}

static const char grantors_policy[] =
        "selectors:\n"
        "  - namespaceSelector: {matchLabels: {spark-identity.io/team: data}, matchExpressions: [{key: env, "
        "operator: NotIn, values: [frozen]}]}\n"
        "    identity: data-spark\n"
        "  - namespaceSelector: {matchLabels: {env: prod}}\n"
        "    identity: prod-spark\n"
        "grantors: [\"alice smith\", \"group:platform admins\", \"bob, jr.\", \"it's \\\"quoted\\\"\", "
        "\"group:system:masters\"]\n";

static void test_grants_policy_and_binding(void **state)
{
        struct policy *p = load_policy(grantors_policy);
        cJSON *list = render_json(p, "webhooks");
        assert_string_equal(data_of(list, "grants"), "true");
        /* One a line, as written: spaces, commas and quotes are part of a name. */
        assert_string_equal(data_of(list, "grantors"),
                            "alice smith\ngroup:platform admins\nbob, jr.\nit's \"quoted\"\ngroup:system:masters");
        /* Sorted, unique: env is read by both selectors. */
        assert_string_equal(data_of(list, "grantlabels"), "env\nspark-identity.io/team");

        cJSON *vap = item(list, 3), *binding = item(list, 4);
        assert_string_equal(cJSON_GetObjectItem(vap, "kind")->valuestring, "ValidatingAdmissionPolicy");
        assert_string_equal(cJSON_GetObjectItem(binding, "kind")->valuestring, "ValidatingAdmissionPolicyBinding");
        for (int i = 3; i < 5; i++) {
                cJSON *md = cJSON_GetObjectItem(item(list, i), "metadata");
                assert_string_equal(cJSON_GetObjectItem(md, "name")->valuestring, RENDER_GRANTS_POLICY_NAME);
                assert_null(cJSON_GetObjectItem(md, "namespace"));
                assert_string_equal(
                        cJSON_GetObjectItem(cJSON_GetObjectItem(md, "annotations"), "spark-identity.io/policy-sha256")
                                ->valuestring,
                        policy_sha256(p));
        }

        cJSON *spec = cJSON_GetObjectItem(vap, "spec");
        assert_string_equal(cJSON_GetObjectItem(spec, "failurePolicy")->valuestring, "Fail");
        assert_string_equal(cJSON_GetObjectItem(cJSON_GetObjectItem(spec, "paramKind"), "kind")->valuestring,
                            "ConfigMap");
        cJSON *rules = cJSON_GetObjectItem(cJSON_GetObjectItem(spec, "matchConstraints"), "resourceRules");
        assert_int_equal(cJSON_GetArraySize(rules), 1);
        char *rule = cJSON_PrintUnformatted(cJSON_GetArrayItem(rules, 0));
        assert_string_equal(rule, "{\"apiGroups\":[\"\"],\"apiVersions\":[\"v1\"],\"operations\":[\"CREATE\","
                                  "\"UPDATE\"],\"resources\":[\"namespaces\",\"namespaces/status\","
                                  "\"namespaces/finalize\"],\"scope\":\"Cluster\"}");
        free(rule);
        /* Every namespace change is evaluated (params first, then CEL). */
        assert_null(cJSON_GetObjectItem(spec, "matchConditions"));

        const char *changed = variable_of(list, 3, "changed");
        assert_non_null(changed);
        /* Added or changed, then removed; annotations by prefix, labels by the list. */
        assert_non_null(strstr(changed, "variables.newAnnotations.filter(k, k.startsWith('spark-identity.io/') &&"));
        assert_non_null(strstr(changed, "variables.oldAnnotations.filter(k, k.startsWith('spark-identity.io/') &&\n"
                                        "  !(k in variables.newAnnotations))"));
        assert_non_null(strstr(changed, "variables.newLabels.filter(k, k in variables.grantLabels &&"));
        assert_non_null(strstr(changed, "variables.oldLabels.filter(k, k in variables.grantLabels &&\n"
                                        "  !(k in variables.newLabels))"));
        assert_non_null(strstr(changed, ".map(k, 'annotation ' + k)"));
        assert_non_null(strstr(changed, ".map(k, 'label ' + k)"));
        assert_string_equal(variable_of(list, 3, "oldAnnotations"),
                            "oldObject != null && has(oldObject.metadata.annotations) ? "
                            "oldObject.metadata.annotations : {}");
        /* The lists come from the ConfigMap, never as CEL text; '' is no item. */
        assert_string_equal(variable_of(list, 3, "grantors"),
                            "params.data['grantors'].split('\\n').filter(g, g != '')");
        assert_string_equal(variable_of(list, 3, "grantLabels"),
                            "params.data['grantlabels'].split('\\n').filter(k, k != '')");
        char *spec_text = cJSON_PrintUnformatted(spec);
        assert_null(strstr(spec_text, "alice"));
        assert_null(strstr(spec_text, "platform admins"));
        free(spec_text);
        const char *grantor = variable_of(list, 3, "grantor");
        assert_non_null(strstr(grantor, "g.startsWith('group:')"));
        assert_non_null(strstr(grantor, "g.substring(6) in request.userInfo.groups"));
        assert_non_null(strstr(grantor, "g == request.userInfo.username"));
        assert_string_equal(variable_of(list, 3, "allowed"),
                            "params.data['grants'] != 'true' || variables.changed.size() == 0 || variables.grantor");

        cJSON *val = cJSON_GetArrayItem(cJSON_GetObjectItem(spec, "validations"), 0);
        assert_string_equal(cJSON_GetObjectItem(val, "expression")->valuestring, "variables.allowed");
        assert_string_equal(cJSON_GetObjectItem(val, "reason")->valuestring, "Forbidden");
        assert_null(strchr(cJSON_GetObjectItem(val, "message")->valuestring, '\n'));
        assert_non_null(strstr(cJSON_GetObjectItem(val, "messageExpression")->valuestring,
                               "variables.message.substring(0, 511)"));
        const char *msg = variable_of(list, 3, "message");
        /* grants.c's words, and its cuts. */
        assert_non_null(strstr(msg, "' may not set grant keys of namespace ' + object.metadata.name + ' (' +"));
        assert_non_null(strstr(msg, "'): they decide which Azure identity its pods may use, and only the "
                                    "policy\\'s grantors may ' +\n'change them (' +"));
        assert_non_null(strstr(msg, "'(unknown)'"));
        assert_non_null(strstr(msg, "'none: the policy\\'s grantors list is empty'"));
        assert_non_null(strstr(msg, "request.userInfo.username.substring(0, 100)"));
        assert_non_null(strstr(msg, "variables.changed.join(', ').substring(0, 255)"));
        assert_non_null(strstr(msg, "variables.grantors.join(', ').substring(0, 159)"));

        /* The binding: the same ConfigMap, Deny, and no namespace left out
         * (the namespace-grants webhook has no namespaceSelector). */
        cJSON *bspec = cJSON_GetObjectItem(binding, "spec");
        assert_string_equal(cJSON_GetObjectItem(bspec, "policyName")->valuestring, RENDER_GRANTS_POLICY_NAME);
        char *ref = cJSON_PrintUnformatted(cJSON_GetObjectItem(bspec, "paramRef"));
        assert_string_equal(ref, "{\"name\":\"" RENDER_PARAMS_NAME "\",\"namespace\":\"webhooks\","
                                 "\"parameterNotFoundAction\":\"Deny\"}");
        free(ref);
        char *actions = cJSON_PrintUnformatted(cJSON_GetObjectItem(bspec, "validationActions"));
        assert_string_equal(actions, "[\"Deny\"]");
        free(actions);
        assert_null(cJSON_GetObjectItem(bspec, "matchResources"));
        /* The claims binding still leaves kube-system and the webhook's namespace out. */
        assert_non_null(cJSON_GetObjectItem(cJSON_GetObjectItem(item(list, 2), "spec"), "matchResources"));
        cJSON_Delete(list);

        char *yaml = render(p, "webhooks", RENDER_YAML);
        assert_non_null(strstr(yaml, "# And a second ValidatingAdmissionPolicy (" RENDER_GRANTS_POLICY_NAME ")"));
        assert_null(strstr(yaml, "no " RENDER_GRANTS_POLICY_NAME " policy is printed"));
        /* The ConfigMap first, then the claims objects, then the grants ones. */
        const char *cm = strstr(yaml, "kind: ConfigMap\n"), *claims = strstr(yaml, "  name: " RENDER_POLICY_NAME "\n"),
                   *grants = strstr(yaml, "  name: " RENDER_GRANTS_POLICY_NAME "\n");
        assert_true(cm && claims && grants && cm < claims && claims < grants);
        free(yaml);
        policy_free(p);
}

static void test_grants_data_of_edge_policies(void **state)
{
        /* Annotations only: grant keys without grant labels. */
        struct policy *p = load_policy("namespaceAnnotations: true\ngrantors: [platform-bot]\n");
        cJSON *list = render_json(p, RENDER_NAMESPACE_DEFAULT);
        assert_string_equal(data_of(list, "grants"), "true");
        assert_string_equal(data_of(list, "grantors"), "platform-bot");
        assert_string_equal(data_of(list, "grantlabels"), "");
        cJSON_Delete(list);
        policy_free(p);

        /* grantors: [] freezes grant keys: '' (the CEL's filter leaves no grantor). */
        p = load_policy("selectors: [{namespaceSelector: {}, identity: all-spark}]\ngrantors: []\n");
        list = render_json(p, RENDER_NAMESPACE_DEFAULT);
        assert_string_equal(data_of(list, "grants"), "true");
        assert_string_equal(data_of(list, "grantors"), "");
        /* An empty selector reads no label. */
        assert_string_equal(data_of(list, "grantlabels"), "");
        cJSON_Delete(list);
        policy_free(p);
}

static void test_data_of_named_rules(void **state)
{
        struct policy *p = load_policy(namespaces_policy);
        cJSON *list = render_json(p, RENDER_NAMESPACE_DEFAULT);
        assert_string_equal(data_of(list, "ns.team-a"), "enforce sparkaks team-a-api");
        /* An entry without allowedIdentities inherits the defaults' list. */
        assert_string_equal(data_of(list, "ns.team-c"), "audit c-spark shared-api");
        assert_string_equal(data_of(list, "ns.team-off"), "off off-spark shared-api");
        /* Workload identity without an identity: only what defaults allow. */
        assert_string_equal(data_of(list, "ns.team-w"), "enforce shared-api");
        assert_string_equal(data_of(list, "defaults"), "enforce shared-api");
        assert_string_equal(data_of(list, "unlisted"), "deny");
        assert_string_equal(data_of(list, "annotations"), "false");
        assert_int_equal(count_data(list, "sel."), 0);
        assert_int_equal(count_data(list, "delegable."), 0);
        /* Every listed identity, with the strongest mode of its owners. */
        assert_int_equal(count_data(list, "owner."), (int)policy_identity_count(p));
        assert_string_equal(data_of(list, "owner.sparkaks"), "enforce");
        assert_string_equal(data_of(list, "owner.c-spark"), "audit");
        assert_string_equal(data_of(list, "owner.off-spark"), "off");
        assert_string_equal(data_of(list, "owner.shared-api"), "enforce");
        assert_null(data_of(list, "owner.unlisted"));
        /* No selectors: no CEL for them. */
        assert_string_equal(variable(list, "selector"), "-1");
        assert_null(variable(list, "selector0"));
        cJSON_Delete(list);
        policy_free(p);
}

static void test_selectors_and_annotations(void **state)
{
        struct policy *p = load_policy(selectors_policy);
        cJSON *list = render_json(p, RENDER_NAMESPACE_DEFAULT);
        assert_string_equal(data_of(list, "sel.0"), "audit data-spark");
        assert_string_equal(data_of(list, "sel.1"), "enforce catch-all");
        assert_string_equal(data_of(list, "annotations"), "true");
        assert_string_equal(data_of(list, "annotations.auth"), "podIdentity");
        /* defaults give no tenant or client: a workloadIdentity rule made
         * from annotations must carry both. */
        assert_string_equal(data_of(list, "annotations.needs"), "tenant-id client-id");
        assert_string_equal(data_of(list, "delegable.ann-spark"), "true");
        assert_string_equal(data_of(list, "delegable.ann-other"), "true");
        assert_null(data_of(list, "delegable.sparkaks"));
        /* A delegable identity is protected by defaults.mode. */
        assert_string_equal(data_of(list, "owner.ann-spark"), "enforce");
        assert_string_equal(data_of(list, "owner.data-spark"), "audit");

        const char *sel = variable(list, "selector0");
        assert_non_null(sel);
        /* matchLabels and In; NotIn holds for a missing label; Exists;
         * DoesNotExist; the empty selector matches everything. */
        assert_non_null(strstr(sel, "(('spark-identity.io/team' in variables.nsLabels) && "
                                    "variables.nsLabels['spark-identity.io/team'] in ['data'])"));
        assert_non_null(strstr(sel, "!(('env' in variables.nsLabels) && variables.nsLabels['env'] in "
                                    "['frozen', 'old'])"));
        assert_non_null(strstr(sel, "('tier' in variables.nsLabels)"));
        assert_non_null(strstr(sel, "!('legacy' in variables.nsLabels)"));
        assert_non_null(strstr(sel, "variables.nsLabels['zone'] in ['a', 'b'])"));
        assert_non_null(strstr(sel, "\ntrue,  // sel.1: selector selectors[1]\n"));
        assert_non_null(strstr(sel, "// sel.0: selector data-platform\n"));
        assert_non_null(strstr(sel, "].indexOf(true)"));
        assert_string_equal(variable(list, "selector"), "variables.selector0");
        assert_null(variable(list, "selectorFirst"));
        cJSON_Delete(list);
        policy_free(p);
}

static void test_annotation_defaults(void **state)
{
        static const char wi[] =
                "defaults: {auth: workloadIdentity, tenantId: " TENANT ", clientId: " CLIENT ", mode: audit}\n"
                "namespaceAnnotations: true\n"
                "delegableIdentities: [ann-spark]\n";
        static const char tenant_only[] = "defaults: {tenantId: " TENANT "}\n"
                                          "namespaceAnnotations: true\n";
        struct policy *p = load_policy(wi);
        cJSON *list = render_json(p, RENDER_NAMESPACE_DEFAULT);
        assert_string_equal(data_of(list, "annotations.auth"), "workloadIdentity");
        assert_string_equal(data_of(list, "annotations.needs"), "");
        assert_string_equal(data_of(list, "defaults"), "audit");
        assert_string_equal(data_of(list, "owner.ann-spark"), "audit");
        cJSON_Delete(list);
        policy_free(p);

        p = load_policy(tenant_only);
        list = render_json(p, RENDER_NAMESPACE_DEFAULT);
        assert_string_equal(data_of(list, "annotations.auth"), "podIdentity");
        assert_string_equal(data_of(list, "annotations.needs"), "client-id");
        assert_int_equal(count_data(list, "owner."), 0);
        cJSON_Delete(list);
        policy_free(p);
}

static void test_many_selectors_are_split(void **state)
{
        struct buf text;
        const size_t n = 1500;
        buf_init(&text, WH_MAX_POLICY_BYTES);
        assert_int_equal(buf_puts(&text, "selectors:\n"), 0);
        for (size_t i = 0; i < n; i++)
                assert_int_equal(buf_printf(&text,
                                            "  - {namespaceSelector: {matchLabels: {team: t%zu}, "
                                            "matchExpressions: [{key: env, operator: NotIn, values: [frozen, old]}]}, "
                                            "identity: sel-%zu}\n",
                                            i, i),
                                 0);
        struct policy *p = load_policy(text.data);
        buf_free(&text);
        cJSON *list = render_json(p, RENDER_NAMESPACE_DEFAULT);
        size_t chunks = 0, found = 0;
        char name[32];
        for (;; chunks++) {
                snprintf(name, sizeof name, "selector%zu", chunks);
                const char *e = variable(list, name);
                if (!e)
                        break;
                assert_true(strlen(e) <= RENDER_MAX_CEL_CHARS);
                for (const char *s = e; (s = strstr(s, "// sel.")); s++)
                        found++;
        }
        assert_true(chunks > 1);
        assert_int_equal(found, n);
        const char *first = variable(list, "selectorFirst");
        assert_non_null(first);
        assert_non_null(strstr(first, "].min()"));
        /* Each list after the first counts from where the previous stopped. */
        assert_non_null(strstr(first, "variables.selector0 < 0 ? 1000000000 : 0 + variables.selector0"));
        assert_string_equal(data_of(list, "sel.1499"), "enforce sel-1499");
        cJSON_Delete(list);
        policy_free(p);
}

static void test_cel_string(void **state)
{
        static const struct {
                const char *in, *out;
        } cases[] = {
                { "plain", "'plain'" },
                { "", "''" },
                { "it's", "'it\\'s'" },
                { "a\"b", "'a\\\"b'" },
                { "back\\slash", "'back\\\\slash'" },
                { "line\nbreak\ttab", "'line\\x0abreak\\x09tab'" },
                { "del\x7f", "'del\\x7f'" },
                { "caf\xc3\xa9", "'caf\xc3\xa9'" },
                { "') || true || ('", "'\\') || true || (\\''" },
        };
        for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
                struct buf b;
                buf_init(&b, 256);
                assert_int_equal(render_cel_string(&b, cases[i].in), 0);
                assert_string_equal(b.data, cases[i].out);
                buf_free(&b);
        }
        struct buf tiny;
        buf_init(&tiny, 4);
        assert_int_equal(render_cel_string(&tiny, "longer than four"), -ENOBUFS);
        buf_free(&tiny);
}

/* Every document of the YAML stream reads back (libyaml, YAML 1.2 core
 * schema) as the same object as the JSON output's item. */
static void check_yaml_is_json(const struct policy *p, const char *ns)
{
        char *yaml = render(p, ns, RENDER_YAML);
        cJSON *list = render_json(p, ns);
        char *doc_start = strstr(yaml, "\n---\n");
        assert_non_null(doc_start);
        int i = 0;
        for (char *s = doc_start + 5; s; i++) {
                char *next = strstr(s, "\n---\n");
                size_t len = next ? (size_t)(next - s) + 1 : strlen(s);
                struct doc *d = NULL;
                char err[256];
                if (doc_parse(s, len, &d, err, sizeof err) < 0)
                        fail_msg("document %d: %s", i, err);
                if (!cJSON_Compare(doc_root(d), item(list, i), true)) {
                        char *a = cJSON_Print(doc_root(d)), *b = cJSON_Print(item(list, i));
                        fail_msg("document %d differs:\n%s\n%s", i, a, b);
                }
                doc_free(d);
                s = next ? next + 5 : NULL;
        }
        assert_int_equal(i, objects_of(p));
        cJSON_Delete(list);
        free(yaml);
}

static void test_yaml_reads_back_as_the_json(void **state)
{
        /* A grantor that ends in a blank cannot be a literal block line. */
        static const char odd_grantors[] =
                "namespaceAnnotations: true\n"
                "grantors: [\"alice \", \"group:a: b # c\", \"caf\xc3\xa9\", \"- x\", \"'q'\", \"true\"]\n";
        const char *policies[] = { namespaces_policy, selectors_policy, grantors_policy, odd_grantors };
        for (size_t i = 0; i < sizeof policies / sizeof *policies; i++) {
                struct policy *p = load_policy(policies[i]);
                check_yaml_is_json(p, RENDER_NAMESPACE_DEFAULT);
                check_yaml_is_json(p, "webhooks");
                policy_free(p);
        }
        struct policy *p = fixture_policy("policy.yaml");
        check_yaml_is_json(p, RENDER_NAMESPACE_DEFAULT);
        policy_free(p);
}

static void test_yaml_quotes_what_yaml_1_1_would_misread(void **state)
{
        struct policy *p = load_policy(namespaces_policy);
        char *yaml = render(p, RENDER_NAMESPACE_DEFAULT, RENDER_YAML);
        assert_non_null(strstr(yaml, "\n  owner.off-spark: \"off\"\n"));
        assert_non_null(strstr(yaml, "\n  annotations: \"false\"\n"));
        assert_non_null(strstr(yaml, "\n  ns.team-a: enforce sparkaks team-a-api\n"));
        /* A digest that starts with a digit could read as a number. */
        char want[128];
        snprintf(want, sizeof want, "    spark-identity.io/policy-sha256: %s%s", policy_sha256(p)[0] <= '9' ? "\"" : "",
                 policy_sha256(p));
        assert_non_null(strstr(yaml, want));
        assert_non_null(strstr(yaml, "    - apiGroups: [\"\"]\n"));
        /* CEL over several lines is a literal block. */
        assert_non_null(strstr(yaml, "    messageExpression: |-\n      'namespace ' + request.namespace"));
        free(yaml);
        policy_free(p);
}

static void test_header(void **state)
{
        struct policy *p = load_policy(namespaces_policy);
        char *yaml = render(p, RENDER_NAMESPACE_DEFAULT, RENDER_YAML);
        char want[256];
        assert_true(yaml[0] == '#');
        snprintf(want, sizeof want, "# with sha256 %s.\n", policy_sha256(p));
        assert_non_null(strstr(yaml, want));
        assert_non_null(strstr(yaml, "# Generated by `" RENDER_COMMAND "` from the policy\n"));
        assert_non_null(strstr(yaml, "render it again whenever the policy changes (make render)"));
        /* Everything before the first document is comment. */
        for (char *line = yaml; line && strncmp(line, "---\n", 4) != 0; line = strchr(line, '\n') + 1)
                assert_true(line[0] == '#');
        free(yaml);

        yaml = render(p, "webhooks", RENDER_YAML);
        assert_non_null(strstr(yaml, "# Generated by `" RENDER_COMMAND " --namespace webhooks` from the policy\n"));
        assert_non_null(strstr(yaml, "  namespace: webhooks\n"));
        assert_non_null(strstr(yaml, "values: [kube-system, webhooks]"));
        free(yaml);

        char *json = render(p, RENDER_NAMESPACE_DEFAULT, RENDER_JSON);
        assert_true(json[0] == '{');
        assert_true(json[strlen(json) - 1] == '\n');
        free(json);
        policy_free(p);
}

static void test_output_bound(void **state)
{
        struct policy *p = load_policy(namespaces_policy);
        for (int f = 0; f < RENDER_FORMAT_MAX; f++) {
                struct buf out;
                char err[256] = "";
                buf_init(&out, 2000);
                assert_int_equal(render_admission_policy(p, "ns", f, &out, err, sizeof err), -ENOBUFS);
                assert_string_equal(err, "the output passes 2000 bytes");
                buf_free(&out);
        }
        policy_free(p);
}

static void test_data_past_what_a_configmap_holds(void **state)
{
        struct buf text;
        buf_init(&text, WH_MAX_POLICY_BYTES);
        assert_int_equal(buf_puts(&text, "namespaces:\n"), 0);
        /* Each entry adds about 250 bytes of data. */
        for (int i = 0; i < 6000; i++)
                assert_int_equal(buf_printf(&text,
                                            "  ns-%05d: {identity: identity-of-namespace-%05d-with-"
                                            "a-long-name, allowedIdentities: [api-of-namespace-%05d-with-a-"
                                            "longer-name]}\n",
                                            i, i, i),
                                 0);
        struct policy *p = load_policy(text.data);
        buf_free(&text);
        struct buf out;
        char err[256] = "";
        buf_init(&out, RENDER_MAX_OUTPUT_BYTES);
        assert_int_equal(render_admission_policy(p, RENDER_NAMESPACE_DEFAULT, RENDER_YAML, &out, err, sizeof err),
                         -EINVAL);
        assert_non_null(strstr(err, "the policy's data passes the 1048576 bytes a ConfigMap may hold"));
        buf_free(&out);
        policy_free(p);
}

static void test_format_names(void **state)
{
        assert_string_equal(render_format_name(RENDER_YAML), "yaml");
        assert_string_equal(render_format_name(RENDER_JSON), "json");
        assert_null(render_format_name(RENDER_FORMAT_MAX));
}

int main(void)
{
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_objects_and_their_order),
                cmocka_unit_test(test_no_grants_policy_without_namespaces),
                cmocka_unit_test(test_grants_policy_and_binding),
                cmocka_unit_test(test_grants_data_of_edge_policies),
                cmocka_unit_test(test_data_of_named_rules),
                cmocka_unit_test(test_selectors_and_annotations),
                cmocka_unit_test(test_annotation_defaults),
                cmocka_unit_test(test_many_selectors_are_split),
                cmocka_unit_test(test_cel_string),
                cmocka_unit_test(test_yaml_reads_back_as_the_json),
                cmocka_unit_test(test_yaml_quotes_what_yaml_1_1_would_misread),
                cmocka_unit_test(test_header),
                cmocka_unit_test(test_output_bound),
                cmocka_unit_test(test_data_past_what_a_configmap_holds),
                cmocka_unit_test(test_format_names),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
