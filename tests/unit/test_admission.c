/* Unit tests for webhook/core/admission.c: body in, answer out, through the two
 * halves the server calls (admission_parse, admission_namespace,
 * admission_decide) and through admission_handle, on the review fixtures of
 * tests/fixtures: drivers and executors, pods that are not Spark, UPDATEs,
 * objects that are not pods, namespaces known or not, and bodies that are
 * not reviews. The answer is parsed back as the API server would. */
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
#include "webhook_limits.h"

#include "b64_decode.h"
#include "fixture_files.h"

#define assert_contains(s, sub)                                                                  \
        do {                                                                                     \
                if (!(s) || !strstr((s), (sub)))                                                 \
                        fail_msg("\"%s\" does not contain \"%s\"", (s) ? (s) : "(null)", (sub)); \
        } while (0)

/* A policy that reads namespaces: one named namespace, a selector, and a
 * refusal when a namespace cannot be read. */
static const char selector_policy[] =
        "namespaces:\n"
        "  team-a: {identity: sparkaks}\n"
        "selectors:\n"
        "  - {name: data, namespaceSelector: {matchLabels: {team: data}}, identity: data-spark}\n"
        "unmatched: allow\n"
        "onLookupFailure: deny\n";

/* What the API server reads of an answer. */
struct answer {
        cJSON *root;
        const cJSON *response;
        bool allowed;
        const char *uid;
        cJSON *ops;                  /* the decoded patch, or NULL */
        const char *status_message;  /* response.status.message of a refusal */
        int status_code;
};

static void answer_free(struct answer *an)
{
        cJSON_Delete(an->ops);
        cJSON_Delete(an->root);
        memset(an, 0, sizeof *an);
}

/* Parses a->body as an AdmissionReview answer to `request_uid`. */
static void read_answer(const struct admission *a, const char *api_version, const char *request_uid, struct answer *an)
{
        memset(an, 0, sizeof *an);
        assert_int_equal(a->status, 200);
        assert_non_null(a->body.data);
        an->root = cJSON_ParseWithLength(a->body.data, a->body.len);
        if (!an->root)
                fail_msg("the answer is not JSON: %s", a->body.data);
        assert_string_equal(cJSON_GetObjectItem(an->root, "kind")->valuestring, "AdmissionReview");
        assert_string_equal(cJSON_GetObjectItem(an->root, "apiVersion")->valuestring, api_version);
        an->response = cJSON_GetObjectItem(an->root, "response");
        assert_true(cJSON_IsObject(an->response));
        an->uid = cJSON_GetObjectItem(an->response, "uid")->valuestring;
        assert_string_equal(an->uid, request_uid);
        const cJSON *allowed = cJSON_GetObjectItem(an->response, "allowed");
        assert_true(cJSON_IsBool(allowed));
        an->allowed = cJSON_IsTrue(allowed);
        const cJSON *patch = cJSON_GetObjectItem(an->response, "patch");
        if (patch) {
                assert_string_equal(cJSON_GetObjectItem(an->response, "patchType")->valuestring, "JSONPatch");
                size_t n = strlen(patch->valuestring);
                unsigned char *raw = malloc(n + 1);
                assert_non_null(raw);
                size_t len = test_b64_decode(patch->valuestring, n, raw);
                an->ops = cJSON_ParseWithLength((const char *)raw, len);
                free(raw);
                assert_true(cJSON_IsArray(an->ops));
        } else {
                assert_null(cJSON_GetObjectItem(an->response, "patchType"));
        }
        const cJSON *st = cJSON_GetObjectItem(an->response, "status");
        if (st) {
                an->status_message = cJSON_GetObjectItem(st, "message")->valuestring;
                an->status_code = cJSON_GetObjectItem(st, "code")->valueint;
        }
}

/* The value the patch gives `path`, or NULL. */
static const char *patched(const struct answer *an, const char *path)
{
        const cJSON *op;
        cJSON_ArrayForEach(op, an->ops) {
                const cJSON *p = cJSON_GetObjectItem(op, "path");
                const cJSON *v = cJSON_GetObjectItem(op, "value");
                if (cJSON_IsString(p) && strcmp(p->valuestring, path) == 0)
                        return cJSON_IsString(v) ? v->valuestring : "";
        }
        return NULL;
}

/* A fixture's text, changed: request.namespace (and the object's), and the
 * object's aadpodidbinding label (NULL: left as it is). */
static char *fixture_changed(const char *name, const char *ns, const char *label)
{
        char *text = fixture_text(name);
        cJSON *review = cJSON_Parse(text);
        free(text);
        assert_non_null(review);
        cJSON *req = cJSON_GetObjectItem(review, "request");
        cJSON *meta = cJSON_GetObjectItem(cJSON_GetObjectItem(req, "object"), "metadata");
        if (ns) {
                cJSON_ReplaceItemInObject(req, "namespace", cJSON_CreateString(ns));
                if (cJSON_GetObjectItem(meta, "namespace"))
                        cJSON_ReplaceItemInObject(meta, "namespace", cJSON_CreateString(ns));
        }
        if (label) {
                cJSON *labels = cJSON_GetObjectItem(meta, "labels");
                cJSON_DeleteItemFromObject(labels, "aadpodidbinding");
                cJSON_AddStringToObject(labels, "aadpodidbinding", label);
        }
        char *out = cJSON_PrintUnformatted(review);
        cJSON_Delete(review);
        assert_non_null(out);
        return out;
}

static const char *uid_of(const char *body)
{
        static char uid[128];
        cJSON *review = cJSON_Parse(body);
        assert_non_null(review);
        snprintf(uid, sizeof uid, "%s",
                 cJSON_GetObjectItem(cJSON_GetObjectItem(review, "request"), "uid")->valuestring);
        cJSON_Delete(review);
        return uid;
}

/* admission_handle() on `body` with no namespace source. */
static void handle(const struct policy *p, enum admission_path path, const char *body, struct admission *a)
{
        admission_init(a, WH_MAX_RESPONSE_BYTES);
        a->path = path;
        assert_int_equal(admission_handle(p, NULL, body, strlen(body), a), 0);
}

/* ---- pods of the fixtures ---- */

struct pod_case {
        const char *fixture;
        enum admission_path path;
        bool allowed;
        enum decision decision;
        enum pod_role role;
        const char *label_after;        /* the aadpodidbinding the patch sets, or NULL: no patch */
        const char *message_part;       /* of a refusal */
};

static const struct pod_case pod_cases[] = {
        { "spark35-driver.json", ADMISSION_MUTATE, true, DECISION_MUTATED, POD_ROLE_DRIVER, "sparkaks", NULL },
        { "spark35-executor.json", ADMISSION_MUTATE, true, DECISION_MUTATED, POD_ROLE_EXECUTOR, "sparkaks", NULL },
        { "spark33-executor.json", ADMISSION_MUTATE, true, DECISION_MUTATED, POD_ROLE_EXECUTOR, "sparkaks", NULL },
        /* A driver claiming another namespace's identity: override replaces it. */
        { "spark35-driver-foreign-identity.json", ADMISSION_MUTATE, true, DECISION_MUTATED, POD_ROLE_DRIVER, "sparkaks",
          NULL },
        /* Not Spark, no claim: left alone. */
        { "nginx-pod.json", ADMISSION_MUTATE, true, DECISION_UNCHANGED, POD_ROLE_NONE, NULL, NULL },
        /* Not Spark, an identity team-a may also use. */
        { "api-pod-allowed.json", ADMISSION_MUTATE, true, DECISION_UNCHANGED, POD_ROLE_NONE, NULL, NULL },
        /* Another namespace's identity, in a namespace the policy does not name. */
        { "rogue-pod.json", ADMISSION_MUTATE, false, DECISION_DENIED, POD_ROLE_NONE, NULL,
          "namespace team-x may not use Azure identity \"sparkaks\"" },
        /* The validating path judges and never patches. */
        { "spark35-driver.json", ADMISSION_VALIDATE, true, DECISION_UNCHANGED, POD_ROLE_DRIVER, NULL, NULL },
        { "rogue-pod.json", ADMISSION_VALIDATE, false, DECISION_DENIED, POD_ROLE_NONE, NULL, "sparkaks" },
        { "spark35-driver-foreign-identity.json", ADMISSION_VALIDATE, false, DECISION_DENIED, POD_ROLE_DRIVER, NULL,
          "namespace team-a may not use Azure identity \"team-b-spark\"" },
        /* An UPDATE that claims nothing new is allowed unchanged, never patched. */
        { "spark35-driver-update.json", ADMISSION_MUTATE, true, DECISION_UNCHANGED, POD_ROLE_DRIVER, NULL, NULL },
};

static void test_pod_fixtures(void **state)
{
        struct policy *p = fixture_policy("policy.yaml");
        for (size_t i = 0; i < sizeof pod_cases / sizeof *pod_cases; i++) {
                const struct pod_case *c = &pod_cases[i];
                char *body = fixture_text(c->fixture);
                struct admission a;
                struct answer an;
                handle(p, c->path, body, &a);
                read_answer(&a, "admission.k8s.io/v1", uid_of(body), &an);
                if (an.allowed != c->allowed || a.mutation.decision != c->decision || a.mutation.role != c->role)
                        fail_msg("%s (path %d): allowed %d decision %s role %d; want %d %s %d", c->fixture,
                                 (int)c->path, an.allowed, mutate_decision_name(a.mutation.decision),
                                 (int)a.mutation.role, c->allowed, mutate_decision_name(c->decision), (int)c->role);
                assert_true(a.decided);
                if (c->label_after) {
                        assert_non_null(an.ops);
                        assert_int_equal(cJSON_GetArraySize(an.ops), (int)a.mutation.patch.n_ops);
                        const char *v = patched(&an, "/metadata/labels/aadpodidbinding");
                        assert_non_null(v);
                        assert_string_equal(v, c->label_after);
                        assert_string_equal(a.mutation.identity_after, c->label_after);
                } else {
                        if (an.ops)
                                fail_msg("%s (path %d): a patch", c->fixture, (int)c->path);
                }
                if (c->message_part) {
                        assert_int_equal(an.status_code, 403);
                        assert_contains(an.status_message, c->message_part);
                } else {
                        assert_null(an.status_message);
                }
                answer_free(&an);
                admission_free(&a);
                free(body);
        }
        policy_free(p);
}

/* The answer speaks the version of the review it answers. */
static void test_v1beta1_answered_in_v1beta1(void **state)
{
        struct policy *p = fixture_policy("policy.yaml");
        char *body = fixture_text("spark35-driver-v1beta1.json");
        struct admission a;
        struct answer an;
        handle(p, ADMISSION_MUTATE, body, &a);
        read_answer(&a, "admission.k8s.io/v1beta1", uid_of(body), &an);
        assert_true(an.allowed);
        assert_non_null(patched(&an, "/metadata/labels/aadpodidbinding"));
        answer_free(&an);
        admission_free(&a);
        free(body);
        policy_free(p);
}

/* Audit mode says what would change, changes nothing; off leaves it alone. */
static void test_modes(void **state)
{
        struct policy *p = fixture_policy("policy.yaml");
        char *body = fixture_changed("spark35-driver.json", "team-c", NULL);
        struct admission a;
        struct answer an;
        handle(p, ADMISSION_MUTATE, body, &a);
        read_answer(&a, "admission.k8s.io/v1", uid_of(body), &an);
        assert_true(an.allowed);
        assert_null(an.ops);
        assert_int_equal(a.mutation.decision, DECISION_WOULD_MUTATE);
        const cJSON *warnings = cJSON_GetObjectItem(an.response, "warnings");
        assert_true(cJSON_IsArray(warnings) && cJSON_GetArraySize(warnings) > 0);
        answer_free(&an);
        admission_free(&a);
        free(body);

        body = fixture_changed("spark35-driver.json", "team-off", NULL);
        handle(p, ADMISSION_MUTATE, body, &a);
        read_answer(&a, "admission.k8s.io/v1", uid_of(body), &an);
        assert_true(an.allowed);
        assert_null(an.ops);
        assert_int_equal(a.mutation.decision, DECISION_UNCHANGED);
        answer_free(&an);
        admission_free(&a);
        free(body);
        policy_free(p);
}

/* An UPDATE may not add a claim the namespace is not granted, on either path;
 * one it is granted passes unpatched. */
static void test_update_claims(void **state)
{
        struct policy *p = fixture_policy("policy.yaml");
        for (int path = ADMISSION_MUTATE; path <= ADMISSION_VALIDATE; path++) {
                char *body = fixture_changed("spark35-driver-update.json", NULL, "team-b-spark");
                struct admission a;
                struct answer an;
                handle(p, (enum admission_path)path, body, &a);
                read_answer(&a, "admission.k8s.io/v1", uid_of(body), &an);
                assert_false(an.allowed);
                assert_null(an.ops);
                assert_int_equal(an.status_code, 403);
                assert_contains(an.status_message, "team-b-spark");
                answer_free(&an);
                admission_free(&a);
                free(body);

                body = fixture_changed("spark35-driver-update.json", NULL, "team-a-api");
                handle(p, (enum admission_path)path, body, &a);
                read_answer(&a, "admission.k8s.io/v1", uid_of(body), &an);
                assert_true(an.allowed);
                assert_null(an.ops);
                answer_free(&an);
                admission_free(&a);
                free(body);
        }
        policy_free(p);
}

/* Not a pod, nor a namespace: allowed as it is. */
static void test_other_objects_allowed(void **state)
{
        struct policy *p = fixture_policy("policy.yaml");
        char *body = fixture_text("configmap-create.json");
        struct admission a;
        struct answer an;
        assert_int_equal(admission_parse((admission_init(&a, WH_MAX_RESPONSE_BYTES), &a), body, strlen(body)), 0);
        assert_null(admission_namespace(&a, p));
        assert_int_equal(admission_decide(p, NULL, &a), 0);
        read_answer(&a, "admission.k8s.io/v1", uid_of(body), &an);
        assert_true(an.allowed);
        assert_null(an.ops);
        assert_null(cJSON_GetObjectItem(an.response, "auditAnnotations"));
        answer_free(&an);
        admission_free(&a);
        free(body);
        policy_free(p);
}

/* ---- the namespace, read between the halves ---- */

static const struct kv data_labels[] = { { "team", "data" } };

static void decide_in(const struct policy *p, const char *ns, const struct ns_known *known, struct admission *a,
                      struct answer *an, char **ret_body)
{
        char *body = fixture_changed("spark35-driver.json", ns, NULL);
        admission_init(a, WH_MAX_RESPONSE_BYTES);
        assert_int_equal(admission_parse(a, body, strlen(body)), 0);
        const char *want = admission_namespace(a, p);
        assert_non_null(want);
        assert_string_equal(want, ns);
        assert_int_equal(admission_decide(p, known, a), 0);
        read_answer(a, "admission.k8s.io/v1", uid_of(body), an);
        *ret_body = body;
}

static void test_namespace_named_by_the_policy_is_not_read(void **state)
{
        struct policy *p = load_policy(selector_policy);
        char *body = fixture_text("spark35-driver.json");   /* team-a */
        struct admission a;
        struct answer an;
        admission_init(&a, WH_MAX_RESPONSE_BYTES);
        assert_int_equal(admission_parse(&a, body, strlen(body)), 0);
        assert_null(admission_namespace(&a, p));
        /* Nothing read, and the decision does not need it. */
        struct ns_known nothing = { .state = NS_NOT_READ };
        assert_int_equal(admission_decide(p, &nothing, &a), 0);
        read_answer(&a, "admission.k8s.io/v1", uid_of(body), &an);
        assert_true(an.allowed);
        assert_string_equal(patched(&an, "/metadata/labels/aadpodidbinding"), "sparkaks");
        answer_free(&an);
        admission_free(&a);
        free(body);

        /* A policy that reads no namespaces never asks for one. */
        struct policy *plain = fixture_policy("policy.yaml");
        body = fixture_changed("spark35-driver.json", "analytics", NULL);
        admission_init(&a, WH_MAX_RESPONSE_BYTES);
        assert_int_equal(admission_parse(&a, body, strlen(body)), 0);
        assert_null(admission_namespace(&a, plain));
        admission_free(&a);
        free(body);
        policy_free(plain);
        policy_free(p);
}

static void test_namespace_found_absent_unreadable(void **state)
{
        struct policy *p = load_policy(selector_policy);
        struct admission a;
        struct answer an;
        char *body;

        struct ns_known found = { .state = NS_FOUND, .info = { .labels = data_labels, .n_labels = 1 } };
        decide_in(p, "analytics", &found, &a, &an, &body);
        assert_true(an.allowed);
        assert_string_equal(patched(&an, "/metadata/labels/aadpodidbinding"), "data-spark");
        answer_free(&an);
        admission_free(&a);
        free(body);

        /* No such namespace: no labels, the selector does not match, unmatched: allow. */
        struct ns_known absent = { .state = NS_ABSENT };
        decide_in(p, "analytics", &absent, &a, &an, &body);
        assert_true(an.allowed);
        assert_null(an.ops);
        assert_int_equal(a.mutation.decision, DECISION_UNCHANGED);
        answer_free(&an);
        admission_free(&a);
        free(body);

        /* Unreadable now: onLookupFailure: deny, and the reason is told. */
        struct ns_known unreadable = { .state = NS_UNREADABLE };
        snprintf(unreadable.error, sizeof unreadable.error, "the API server timed out");
        decide_in(p, "analytics", &unreadable, &a, &an, &body);
        assert_false(an.allowed);
        assert_null(an.ops);
        assert_int_equal(an.status_code, 403);
        assert_contains(an.status_message, "the API server timed out");
        assert_string_equal(a.lookup_error, "the API server timed out");
        answer_free(&an);
        admission_free(&a);
        free(body);

        /* Nobody read it (no source): refused the same way, saying so. */
        decide_in(p, "analytics", NULL, &a, &an, &body);
        assert_false(an.allowed);
        assert_contains(an.status_message, "the server has no namespace source");
        answer_free(&an);
        admission_free(&a);
        free(body);
        policy_free(p);
}

/* admission_handle() takes what the caller knows of the namespace and uses
 * it only when the policy needs it: a namespace the policy names is decided
 * by its entry whatever `known` says. */
static void test_handle_uses_what_is_known(void **state)
{
        struct policy *p = load_policy(selector_policy);
        struct admission a;
        struct answer an;

        char *body = fixture_changed("spark35-driver.json", "analytics", NULL);
        struct ns_known found = { .state = NS_FOUND, .info = { .labels = data_labels, .n_labels = 1 } };
        admission_init(&a, WH_MAX_RESPONSE_BYTES);
        assert_int_equal(admission_handle(p, &found, body, strlen(body), &a), 0);
        read_answer(&a, "admission.k8s.io/v1", uid_of(body), &an);
        assert_string_equal(patched(&an, "/metadata/labels/aadpodidbinding"), "data-spark");
        answer_free(&an);
        admission_free(&a);

        struct ns_known unreadable = { .state = NS_UNREADABLE };
        snprintf(unreadable.error, sizeof unreadable.error, "lookup failed on purpose");
        admission_init(&a, WH_MAX_RESPONSE_BYTES);
        assert_int_equal(admission_handle(p, &unreadable, body, strlen(body), &a), 0);
        read_answer(&a, "admission.k8s.io/v1", uid_of(body), &an);
        assert_false(an.allowed);
        assert_contains(an.status_message, "lookup failed on purpose");
        answer_free(&an);
        admission_free(&a);

        /* Nothing known (NULL): refused, saying there is no namespace source. */
        admission_init(&a, WH_MAX_RESPONSE_BYTES);
        assert_int_equal(admission_handle(p, NULL, body, strlen(body), &a), 0);
        read_answer(&a, "admission.k8s.io/v1", uid_of(body), &an);
        assert_false(an.allowed);
        assert_contains(an.status_message, "the server has no namespace source");
        answer_free(&an);
        admission_free(&a);
        free(body);

        /* team-a is named by the policy: what is "known" is not consulted. */
        body = fixture_text("spark35-driver.json");
        admission_init(&a, WH_MAX_RESPONSE_BYTES);
        assert_int_equal(admission_handle(p, &unreadable, body, strlen(body), &a), 0);
        read_answer(&a, "admission.k8s.io/v1", uid_of(body), &an);
        assert_true(an.allowed);
        assert_string_equal(patched(&an, "/metadata/labels/aadpodidbinding"), "sparkaks");
        answer_free(&an);
        admission_free(&a);
        free(body);
        policy_free(p);
}

/* ---- bodies that are not reviews ---- */

struct bad_case {
        const char *body;
        const char *message_part;
};

static const struct bad_case bad_cases[] = {
        { "", "the body is not JSON" },
        { "not json", "the body is not JSON" },
        { "{\"kind\":\"AdmissionReview\"} trailing", "unexpected data after the document" },
        { "[1,2]", "the body is not an AdmissionReview" },
        { "{\"apiVersion\":\"admission.k8s.io/v1\",\"kind\":\"Pod\",\"request\":{\"uid\":\"u\"}}",
          "the body is not an AdmissionReview" },
        { "{\"apiVersion\":\"admission.k8s.io/v2\",\"kind\":\"AdmissionReview\",\"request\":{\"uid\":\"u\"}}",
          "unsupported AdmissionReview apiVersion" },
        { "{\"apiVersion\":\"admission.k8s.io/v1\",\"kind\":\"AdmissionReview\"}", "has no request" },
        { "{\"apiVersion\":\"admission.k8s.io/v1\",\"kind\":\"AdmissionReview\",\"request\":{\"uid\":\"\"}}",
          "has no uid" },
        { "{\"apiVersion\":\"admission.k8s.io/v1\",\"kind\":\"AdmissionReview\",\"request\":{\"uid\":\"u\","
          "\"operation\":\"CREATE\",\"namespace\":\"team-a\",\"resource\":{\"group\":\"\",\"version\":\"v1\","
          "\"resource\":\"pods\"}}}",
          "the pod CREATE request has no object" },
        { "{\"apiVersion\":\"admission.k8s.io/v1\",\"kind\":\"AdmissionReview\",\"request\":{\"uid\":\"u\","
          "\"operation\":\"UPDATE\",\"resource\":{\"group\":\"\",\"version\":\"v1\",\"resource\":\"namespaces\"},"
          "\"object\":\"not an object\"}}",
          "the namespace UPDATE request has no object" },
};

/* A Kubernetes Status body for an HTTP error. */
static void check_status_body(const struct admission *a, int code, const char *reason, const char *message_part)
{
        assert_int_equal(a->status, code);
        cJSON *st = cJSON_ParseWithLength(a->body.data, a->body.len);
        if (!st)
                fail_msg("the Status is not JSON: %s", a->body.data);
        assert_string_equal(cJSON_GetObjectItem(st, "kind")->valuestring, "Status");
        assert_string_equal(cJSON_GetObjectItem(st, "apiVersion")->valuestring, "v1");
        assert_string_equal(cJSON_GetObjectItem(st, "status")->valuestring, "Failure");
        assert_int_equal(cJSON_GetObjectItem(st, "code")->valueint, code);
        assert_string_equal(cJSON_GetObjectItem(st, "reason")->valuestring, reason);
        const char *msg = cJSON_GetObjectItem(st, "message")->valuestring;
        assert_contains(msg, message_part);
        assert_string_equal(msg, a->error);
        cJSON_Delete(st);
}

static void test_bad_bodies(void **state)
{
        struct policy *p = fixture_policy("policy.yaml");
        for (size_t i = 0; i < sizeof bad_cases / sizeof *bad_cases; i++) {
                const struct bad_case *c = &bad_cases[i];
                struct admission a;
                admission_init(&a, WH_MAX_RESPONSE_BYTES);
                int r = admission_parse(&a, c->body, strlen(c->body));
                if (r != 1)
                        fail_msg("case %zu: admission_parse %d", i, r);
                assert_false(a.decided);
                check_status_body(&a, 400, "BadRequest", c->message_part);
                admission_free(&a);

                /* The whole path answers alike. */
                admission_init(&a, WH_MAX_RESPONSE_BYTES);
                assert_int_equal(admission_handle(p, NULL, c->body, strlen(c->body), &a), 0);
                check_status_body(&a, 400, "BadRequest", c->message_part);
                admission_free(&a);
        }
        policy_free(p);
}

/* The body's length, not a NUL, ends it. */
static void test_length_bounds_the_body(void **state)
{
        struct policy *p = fixture_policy("policy.yaml");
        char *body = fixture_text("spark35-driver.json");
        struct admission a;
        admission_init(&a, WH_MAX_RESPONSE_BYTES);
        assert_int_equal(admission_handle(p, NULL, body, strlen(body) / 2, &a), 0);
        check_status_body(&a, 400, "BadRequest", "the body is not JSON");
        admission_free(&a);
        free(body);
        policy_free(p);
}

/* An answer that would pass its bound is a 500 Status, never a cut review;
 * a bound too small for even that is an error to the caller. */
static void test_response_bound(void **state)
{
        struct policy *p = fixture_policy("policy.yaml");
        char *body = fixture_text("spark35-driver.json");
        struct admission a;
        admission_init(&a, 512);
        assert_int_equal(admission_handle(p, NULL, body, strlen(body), &a), 0);
        check_status_body(&a, 500, "InternalError", "the response would pass its size bound");
        admission_free(&a);

        admission_init(&a, 16);
        assert_true(admission_handle(p, NULL, body, strlen(body), &a) < 0);
        admission_free(&a);
        admission_init(&a, 16);
        assert_true(admission_parse(&a, "nope", 4) < 0);
        admission_free(&a);
        free(body);
        policy_free(p);
}

int main(void)
{
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_pod_fixtures),
                cmocka_unit_test(test_v1beta1_answered_in_v1beta1),
                cmocka_unit_test(test_modes),
                cmocka_unit_test(test_update_claims),
                cmocka_unit_test(test_other_objects_allowed),
                cmocka_unit_test(test_namespace_named_by_the_policy_is_not_read),
                cmocka_unit_test(test_namespace_found_absent_unreadable),
                cmocka_unit_test(test_handle_uses_what_is_known),
                cmocka_unit_test(test_bad_bodies),
                cmocka_unit_test(test_length_bounds_the_body),
                cmocka_unit_test(test_response_bound),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
