/* Unit tests of the identity guarantee through admission_handle(), body to
 * body: pod UPDATEs (and their subresources), the validating path, and
 * namespace grant keys (webhook/core/mutate.c mutate_claim(), webhook/core/grants.c,
 * webhook/core/review.c, webhook/core/admission.c). */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "admission.h"
#include "buf.h"
#include "policy.h"
#include "webhook_limits.h"

static const char policy_text[] =
        "namespaces:\n"
        "  team-a: {identity: sparkaks, allowedIdentities: [team-a-api]}\n"
        "  team-c: {identity: c-spark, mode: audit}\n"
        "  team-off: {identity: off-spark, mode: \"off\"}\n"
        "selectors:\n"
        "  - {name: data, namespaceSelector: {matchLabels: {team: data}}, identity: data-spark}\n"
        "namespaceAnnotations: true\n"
        "delegableIdentities: [shared-spark]\n"
        "grantors: [platform-bot, \"group:platform-admins\"]\n"
        "onLookupFailure: deny\n";

static struct policy *load(const char *text)
{
        struct buf errors;
        struct policy *p = NULL;
        buf_init(&errors, 1 << 16);
        if (policy_load(text, strlen(text), &p, &errors) < 0)
                fail_msg("policy: %s", errors.data ? errors.data : "");
        buf_free(&errors);
        return p;
}

/* The namespace of every review, as the caller read it before. */
static struct ns_info current;

/* A pod review: `op` on `ns` of a pod whose aadpodidbinding is `label`
 * (NULL: none), and for UPDATE an oldObject whose label is `old_label`. */
static char *pod_review(const char *op, const char *sub, const char *ns, const char *label, const char *old_label,
                        bool spark)
{
        cJSON *rv = cJSON_CreateObject();
        cJSON_AddStringToObject(rv, "apiVersion", "admission.k8s.io/v1");
        cJSON_AddStringToObject(rv, "kind", "AdmissionReview");
        cJSON *req = cJSON_AddObjectToObject(rv, "request");
        cJSON_AddStringToObject(req, "uid", "u-1");
        cJSON *res = cJSON_AddObjectToObject(req, "resource");
        cJSON_AddStringToObject(res, "group", "");
        cJSON_AddStringToObject(res, "version", "v1");
        cJSON_AddStringToObject(res, "resource", "pods");
        if (sub)
                cJSON_AddStringToObject(req, "subResource", sub);
        cJSON_AddStringToObject(req, "namespace", ns);
        cJSON_AddStringToObject(req, "operation", op);
        cJSON *user = cJSON_AddObjectToObject(req, "userInfo");
        cJSON_AddStringToObject(user, "username", "tenant");
        for (int i = 0; i < 2; i++) {
                const char *l = i == 0 ? label : old_label;
                if (i == 1 && strcmp(op, "UPDATE") != 0)
                        break;
                cJSON *obj = cJSON_AddObjectToObject(req, i == 0 ? "object" : "oldObject");
                cJSON_AddStringToObject(obj, "apiVersion", "v1");
                cJSON_AddStringToObject(obj, "kind", "Pod");
                cJSON *meta = cJSON_AddObjectToObject(obj, "metadata");
                cJSON_AddStringToObject(meta, "name", "p");
                cJSON *labels = cJSON_AddObjectToObject(meta, "labels");
                cJSON_AddStringToObject(labels, "app", "web");
                if (spark)
                        cJSON_AddStringToObject(labels, "spark-role", "driver");
                if (l)
                        cJSON_AddStringToObject(labels, "aadpodidbinding", l);
                cJSON *spec = cJSON_AddObjectToObject(obj, "spec");
                cJSON *cs = cJSON_AddArrayToObject(spec, "containers");
                cJSON *c = cJSON_CreateObject();
                cJSON_AddStringToObject(c, "name", spark ? "spark-kubernetes-driver" : "web");
                cJSON_AddItemToArray(cs, c);
        }
        char *s = cJSON_PrintUnformatted(rv);
        cJSON_Delete(rv);
        return s;
}

struct answer {
        bool allowed;
        bool patched;
        char message[WH_MAX_MESSAGE_CHARS];
        char warnings[2048];
        char decision[32];
        int status;
};

static struct answer answer(const struct policy *p, enum admission_path path, char *body)
{
        struct admission a;
        struct answer out = { 0 };
        admission_init(&a, WH_MAX_RESPONSE_BYTES);
        a.path = path;
        struct ns_known known = { .state = NS_FOUND, .info = current };
        assert_int_equal(admission_handle(p, &known, body, strlen(body), &a), 0);
        out.status = a.status;
        if (a.status == 200) {
                cJSON *r = cJSON_Parse(a.body.data);
                const cJSON *resp = cJSON_GetObjectItem(r, "response");
                out.allowed = cJSON_IsTrue(cJSON_GetObjectItem(resp, "allowed"));
                out.patched = cJSON_GetObjectItem(resp, "patch") != NULL;
                const cJSON *st = cJSON_GetObjectItem(resp, "status");
                const cJSON *msg = cJSON_GetObjectItem(st, "message");
                if (cJSON_IsString(msg))
                        snprintf(out.message, sizeof out.message, "%s", msg->valuestring);
                const cJSON *w;
                cJSON_ArrayForEach(w, cJSON_GetObjectItem(resp, "warnings")) {
                        size_t n = strlen(out.warnings);
                        snprintf(out.warnings + n, sizeof out.warnings - n, "%s|", w->valuestring);
                }
                const cJSON *ann = cJSON_GetObjectItem(resp, "auditAnnotations");
                const cJSON *d = cJSON_GetObjectItem(ann, "decision");
                if (cJSON_IsString(d))
                        snprintf(out.decision, sizeof out.decision, "%s", d->valuestring);
                cJSON_Delete(r);
        } else {
                snprintf(out.message, sizeof out.message, "%s", a.error);
        }
        admission_free(&a);
        free(body);
        return out;
}

static void test_update_that_adds_or_changes_a_claim(void **state)
{
        struct policy *p = load(policy_text);
        current = (struct ns_info){ 0 };
        static const struct {
                const char *ns, *label, *old;
                bool allowed;
                const char *message;
        } cases[] = {
                /* team-b has no rule: sparkaks is team-a's, which enforces. */
                { "team-b", "sparkaks", NULL, false,
                  "namespace team-b may not use Azure identity \"sparkaks\" (label aadpodidbinding): "
                  "the policy grants it to other namespaces only" },
                { "team-b", "sparkaks", "nobodys", false, "may not use Azure identity \"sparkaks\"" },
                /* Left as it was: allowed whatever the policy says now. */
                { "team-b", "sparkaks", "sparkaks", true, NULL },
                /* Removed: always allowed. */
                { "team-b", NULL, "sparkaks", true, NULL },
                /* The owner may; so may it for what it also may use. */
                { "team-a", "sparkaks", NULL, true, NULL },
                { "team-a", "team-a-api", "sparkaks", true, NULL },
                /* The claimer's own mode does not soften it. */
                { "team-c", "sparkaks", NULL, false, "namespace team-c may not use Azure identity \"sparkaks\"" },
                { "team-off", "sparkaks", NULL, false, "namespace team-off may not use Azure identity \"sparkaks\"" },
                /* Unlisted: free without a rule, the rule's mode with one. */
                { "team-b", "nobodys", NULL, true, NULL },
                { "team-a", "nobodys", NULL, false, "it may use: sparkaks, team-a-api" },
                { "team-off", "nobodys", NULL, true, NULL },
        };
        for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
                for (int path = 0; path < 2; path++) {
                        struct answer a =
                                answer(p, path ? ADMISSION_VALIDATE : ADMISSION_MUTATE,
                                       pod_review("UPDATE", NULL, cases[i].ns, cases[i].label, cases[i].old, false));
                        if (a.status != 200 || a.allowed != cases[i].allowed)
                                fail_msg("case %zu path %d: status %d allowed %d: %s", i, path, a.status, a.allowed,
                                         a.message);
                        assert_false(a.patched);
                        if (cases[i].message && !strstr(a.message, cases[i].message))
                                fail_msg("case %zu: %s", i, a.message);
                }
        }
        policy_free(p);
}

/* pods/status keeps label changes (its strategy resets only the spec), and
 * so may the other subresources whose object is the Pod. */
static void test_subresources_whose_object_is_the_pod(void **state)
{
        struct policy *p = load(policy_text);
        current = (struct ns_info){ 0 };
        static const char *const subs[] = { "status", "ephemeralcontainers", "resize" };
        for (size_t i = 0; i < 3; i++) {
                struct answer a =
                        answer(p, ADMISSION_VALIDATE, pod_review("UPDATE", subs[i], "team-b", "sparkaks", NULL, false));
                if (a.allowed)
                        fail_msg("%s: allowed", subs[i]);
                assert_non_null(strstr(a.message, "sparkaks"));
                /* A status update that leaves the label alone is not our business. */
                a = answer(p, ADMISSION_VALIDATE, pod_review("UPDATE", subs[i], "team-b", "x", "x", false));
                assert_true(a.allowed);
        }
        /* pods/binding carries a Binding, not the pod: nothing to judge. */
        char *b = pod_review("CREATE", "binding", "team-b", "sparkaks", NULL, false);
        char *k = strstr(b, "\"kind\":\"Pod\"");
        memcpy(k, "\"kind\":\"Bin\"", 12);
        struct answer a = answer(p, ADMISSION_VALIDATE, b);
        assert_true(a.allowed);
        assert_string_equal(a.decision, "");
        policy_free(p);
}

/* The validating path sees the pod after every mutating webhook: it judges
 * and never patches, not even a Spark pod that lacks its identity. */
static void test_validate_judges_and_never_patches(void **state)
{
        struct policy *p = load(policy_text);
        current = (struct ns_info){ 0 };
        struct answer a = answer(p, ADMISSION_MUTATE, pod_review("CREATE", NULL, "team-a", NULL, NULL, true));
        assert_true(a.allowed && a.patched);
        a = answer(p, ADMISSION_VALIDATE, pod_review("CREATE", NULL, "team-a", NULL, NULL, true));
        assert_true(a.allowed);
        assert_false(a.patched);
        /* A later webhook put another team's identity on our Spark pod. */
        a = answer(p, ADMISSION_VALIDATE, pod_review("CREATE", NULL, "team-a", "data-spark", NULL, true));
        assert_false(a.allowed);
        assert_non_null(strstr(a.message, "namespace team-a may not use Azure identity \"data-spark\""));
        assert_string_equal(a.decision, "denied");
        /* On /mutate, an enforcing rule overrides it instead. */
        a = answer(p, ADMISSION_MUTATE, pod_review("CREATE", NULL, "team-a", "data-spark", NULL, true));
        assert_true(a.allowed && a.patched);
        /* An audit-mode claimer keeps its label: an enforced one is refused, even on /mutate. */
        a = answer(p, ADMISSION_MUTATE, pod_review("CREATE", NULL, "team-c", "sparkaks", NULL, true));
        assert_false(a.allowed);
        assert_false(a.patched);
        policy_free(p);
}

/* Annotations give only delegable identities, never reserved ones. */
static void test_annotations_cannot_give_reserved_identities(void **state)
{
        struct policy *p = load(policy_text);
        struct kv ann[] = { { "spark-identity.io/identity", "sparkaks" } };
        current = (struct ns_info){ .annotations = ann, .n_annotations = 1 };
        struct answer a = answer(p, ADMISSION_MUTATE, pod_review("CREATE", NULL, "team-z", NULL, NULL, true));
        assert_false(a.allowed);
        assert_non_null(strstr(a.message, "spark-identity.io/identity \"sparkaks\" is reserved by the policy"));
        a = answer(p, ADMISSION_VALIDATE, pod_review("UPDATE", NULL, "team-z", "sparkaks", NULL, false));
        assert_false(a.allowed);
        assert_non_null(strstr(a.message, "its annotations make no rule"));

        ann[0].value = "shared-spark";
        a = answer(p, ADMISSION_MUTATE, pod_review("CREATE", NULL, "team-z", NULL, NULL, true));
        assert_true(a.allowed && a.patched);
        a = answer(p, ADMISSION_VALIDATE, pod_review("UPDATE", NULL, "team-z", "shared-spark", NULL, false));
        assert_true(a.allowed);
        /* ...which others may not carry: defaults.mode (enforce) protects it. */
        current = (struct ns_info){ 0 };
        a = answer(p, ADMISSION_VALIDATE, pod_review("UPDATE", NULL, "team-b", "shared-spark", NULL, false));
        assert_false(a.allowed);
        assert_non_null(strstr(a.message, "gives it only to namespaces a grantor annotated with it"));
        policy_free(p);
}

static char *ns_review(const char *op, const char *user, const char *group, const char *labels, const char *annotations,
                       const char *old_labels, const char *old_annotations)
{
        char *s = malloc(4096);
        char old[1024] = "";
        if (strcmp(op, "UPDATE") == 0)
                snprintf(old, sizeof old,
                         ",\"oldObject\":{\"apiVersion\":\"v1\",\"kind\":\"Namespace\","
                         "\"metadata\":{\"name\":\"team-n\",\"labels\":{%s},\"annotations\":{%s}}}",
                         old_labels, old_annotations);
        snprintf(s, 4096,
                 "{\"apiVersion\":\"admission.k8s.io/v1\",\"kind\":\"AdmissionReview\",\"request\":{"
                 "\"uid\":\"n-1\",\"resource\":{\"group\":\"\",\"version\":\"v1\",\"resource\":\"namespaces\"},"
                 "\"name\":\"team-n\",\"operation\":\"%s\",\"userInfo\":{\"username\":\"%s\",\"groups\":"
                 "[\"system:authenticated\",\"%s\"]},\"object\":{\"apiVersion\":\"v1\",\"kind\":\"Namespace\","
                 "\"metadata\":{\"name\":\"team-n\",\"labels\":{%s},\"annotations\":{%s}}}%s}}",
                 op, user, group, labels, annotations, old);
        return s;
}

static void test_only_grantors_change_grant_keys(void **state)
{
        struct policy *p = load(policy_text);
        static const struct {
                const char *op, *user, *group, *labels, *ann, *old_labels, *old_ann;
                bool allowed;
                const char *keys;
        } cases[] = {
                /* A tenant who may create namespaces cannot grant by annotation or selector label. */
                { "CREATE", "tenant", "tenants", "", "\"spark-identity.io/identity\":\"shared-spark\"", "", "", false,
                  "annotation spark-identity.io/identity" },
                { "CREATE", "tenant", "tenants", "\"team\":\"data\"", "", "", "", false, "label team" },
                /* ...nor change or remove one. */
                { "UPDATE", "tenant", "tenants", "\"team\":\"data\"", "", "\"team\":\"web\"", "", false, "label team" },
                { "UPDATE", "tenant", "tenants", "", "", "", "\"spark-identity.io/mode\":\"enforce\"", false,
                  "annotation spark-identity.io/mode" },
                /* Anything else is ordinary namespace work. */
                { "CREATE", "tenant", "tenants", "\"env\":\"prod\"", "\"owner\":\"me\"", "", "", true, NULL },
                { "UPDATE", "tenant", "tenants", "\"team\":\"data\",\"x\":\"2\"",
                  "\"spark-identity.io/identity\":\"s\"", "\"team\":\"data\",\"x\":\"1\"",
                  "\"spark-identity.io/identity\":\"s\"", true, NULL },
                /* Grantors, by name and by group. */
                { "CREATE", "platform-bot", "tenants", "\"team\":\"data\"", "", "", "", true, NULL },
                { "UPDATE", "alice", "platform-admins", "", "\"spark-identity.io/identity\":\"shared-spark\"", "", "",
                  true, NULL },
                /* system:masters is a grantor only when the policy says so (this one does not). */
                { "CREATE", "admin", "system:masters", "\"team\":\"data\"", "", "", "", false, "label team" },
        };
        for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
                struct answer a = answer(p, ADMISSION_VALIDATE,
                                         ns_review(cases[i].op, cases[i].user, cases[i].group, cases[i].labels,
                                                   cases[i].ann, cases[i].old_labels, cases[i].old_ann));
                if (a.status != 200 || a.allowed != cases[i].allowed)
                        fail_msg("case %zu: status %d allowed %d: %s", i, a.status, a.allowed, a.message);
                if (cases[i].keys && !strstr(a.message, cases[i].keys))
                        fail_msg("case %zu: %s", i, a.message);
                if (!cases[i].allowed)
                        assert_non_null(strstr(a.message, "(platform-bot, group:platform-admins)"));
        }
        /* A grantor's annotation that makes no rule: allowed, with a warning. */
        struct answer a = answer(
                p, ADMISSION_MUTATE,
                ns_review("CREATE", "platform-bot", "x", "", "\"spark-identity.io/identity\":\"sparkaks\"", "", ""));
        assert_true(a.allowed);
        assert_non_null(strstr(a.warnings, "\"sparkaks\" is reserved by the policy"));
        policy_free(p);

        /* The default grantors: group:system:masters. */
        p = load("selectors: [{namespaceSelector: {matchLabels: {team: data}}, identity: d}]\n");
        a = answer(p, ADMISSION_VALIDATE,
                   ns_review("CREATE", "admin", "system:masters", "\"team\":\"data\"", "", "", ""));
        assert_true(a.allowed);
        a = answer(p, ADMISSION_VALIDATE, ns_review("CREATE", "tenant", "tenants", "\"team\":\"data\"", "", "", ""));
        assert_false(a.allowed);
        /* Annotations are grant keys whenever the policy reads namespaces. */
        a = answer(p, ADMISSION_VALIDATE,
                   ns_review("CREATE", "tenant", "tenants", "", "\"spark-identity.io/identity\":\"x\"", "", ""));
        assert_false(a.allowed);
        policy_free(p);

        /* A policy that reads no namespaces judges no namespace change. */
        p = load("namespaces: {team-a: {identity: sparkaks}}\n");
        a = answer(p, ADMISSION_VALIDATE,
                   ns_review("CREATE", "tenant", "tenants", "\"team\":\"data\"",
                             "\"spark-identity.io/identity\":\"sparkaks\"", "", ""));
        assert_true(a.allowed);
        policy_free(p);
}

/* An unreadable namespace: onLookupFailure decides for a claim, whatever the mode. */
static void test_unknown_namespace(void **state)
{
        struct policy *p = load(policy_text);
        struct admission a;
        char *body = pod_review("UPDATE", NULL, "team-q", "sparkaks", NULL, false);
        admission_init(&a, WH_MAX_RESPONSE_BYTES);
        a.path = ADMISSION_VALIDATE;
        assert_int_equal(admission_handle(p, NULL, body, strlen(body), &a), 0);
        assert_int_equal(a.mutation.decision, DECISION_DENIED);
        assert_non_null(strstr(a.mutation.message, "onLookupFailure: deny"));
        admission_free(&a);
        free(body);
        policy_free(p);
}

int main(void)
{
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_update_that_adds_or_changes_a_claim),
                cmocka_unit_test(test_subresources_whose_object_is_the_pod),
                cmocka_unit_test(test_validate_judges_and_never_patches),
                cmocka_unit_test(test_annotations_cannot_give_reserved_identities),
                cmocka_unit_test(test_only_grantors_change_grant_keys),
                cmocka_unit_test(test_unknown_namespace),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
