/* Unit tests for webhook/core/configmap_policy.c: the policy ConfigMap's
 * validating webhook. A policy that does not load is refused (422 Invalid)
 * with its "KEY:LINE:COL: ..." lines, bounded; one that loads is allowed;
 * other objects, DELETE, a ConfigMap without the key and an UPDATE that
 * leaves the policy as it was are allowed unjudged. */
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
#include "configmap_policy.h"
#include "policy.h"
#include "review.h"
#include "webhook_limits.h"

#define KEY "policy.yaml"
#define GOOD "namespaces:\n  team-a: {identity: spark-a}\n"
#define BROKEN "namespaces:\n  team-a: {identity: \"two words\", mode: loud}\n"

/* A review of the ConfigMap, built with cJSON: `data` and `old_data` are
 * the policy key's value (NULL: no key), `resource` the request's. */
static char *review_json(const char *operation, const char *resource, const char *data, const char *old_data)
{
        cJSON *root = cJSON_CreateObject();
        cJSON_AddStringToObject(root, "apiVersion", "admission.k8s.io/v1");
        cJSON_AddStringToObject(root, "kind", "AdmissionReview");
        cJSON *req = cJSON_AddObjectToObject(root, "request");
        cJSON_AddStringToObject(req, "uid", "u-1");
        cJSON_AddStringToObject(req, "operation", operation);
        cJSON_AddStringToObject(req, "namespace", "spark-identity-system");
        cJSON_AddStringToObject(req, "name", "spark-identity-policy");
        cJSON *res = cJSON_AddObjectToObject(req, "resource");
        cJSON_AddStringToObject(res, "group", "");
        cJSON_AddStringToObject(res, "version", "v1");
        cJSON_AddStringToObject(res, "resource", resource);
        const char *which[2] = { data, old_data };
        const char *names[2] = { "object", "oldObject" };
        for (int i = 0; i < 2; i++) {
                if (i == 1 && strcmp(operation, "UPDATE") != 0)
                        break;
                cJSON *obj = cJSON_AddObjectToObject(req, names[i]);
                cJSON_AddStringToObject(obj, "apiVersion", "v1");
                cJSON_AddStringToObject(obj, "kind", "ConfigMap");
                cJSON *d = cJSON_AddObjectToObject(obj, "data");
                cJSON_AddStringToObject(d, "README", "not the policy");
                if (which[i])
                        cJSON_AddStringToObject(d, KEY, which[i]);
        }
        char *s = cJSON_PrintUnformatted(root);
        cJSON_Delete(root);
        return s;
}

/* Judges a review; the answer parsed into *ret_answer (cJSON_Delete it). */
static enum configmap_policy_verdict judge(const char *operation, const char *resource, const char *data,
                                           const char *old_data, struct configmap_policy_result *res,
                                           cJSON **ret_answer)
{
        char *body = review_json(operation, resource, data, old_data);
        struct review rv = { 0 };
        char err[256];
        assert_int_equal(review_parse(body, strlen(body), &rv, err, sizeof err), 0);
        struct buf out;
        buf_init(&out, WH_MAX_RESPONSE_BYTES);
        assert_int_equal(configmap_policy_judge(&rv, KEY, res, &out), 0);
        *ret_answer = cJSON_ParseWithLength(out.data, out.len);
        assert_non_null(*ret_answer);
        buf_free(&out);
        review_free(&rv);
        free(body);
        return res->verdict;
}

static bool allowed(const cJSON *answer)
{
        const cJSON *r = cJSON_GetObjectItemCaseSensitive(answer, "response");
        assert_string_equal(cJSON_GetObjectItemCaseSensitive(r, "uid")->valuestring, "u-1");
        assert_null(cJSON_GetObjectItemCaseSensitive(r, "patch"));
        return cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(r, "allowed"));
}

static void test_broken_policy_refused_with_its_lines(void **state)
{
        (void)state;
        struct configmap_policy_result res;
        cJSON *answer;
        assert_int_equal(judge("CREATE", "configmaps", BROKEN, NULL, &res, &answer), CONFIGMAP_POLICY_INVALID);
        assert_false(allowed(answer));
        const cJSON *st =
                cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(answer, "response"), "status");
        assert_int_equal(cJSON_GetObjectItemCaseSensitive(st, "code")->valueint, 422);
        assert_string_equal(cJSON_GetObjectItemCaseSensitive(st, "reason")->valuestring, "Invalid");
        const char *msg = cJSON_GetObjectItemCaseSensitive(st, "message")->valuestring;
        assert_string_equal(msg, res.message);

        /* The very lines policy_load() writes, with the key in front. */
        struct buf raw, want;
        struct policy *p = NULL;
        buf_init(&raw, WH_POLICY_ERRORS_MAX_BYTES);
        buf_init(&want, WH_POLICY_ERRORS_MAX_BYTES * 2);
        assert_int_equal(policy_load(BROKEN, strlen(BROKEN), &p, &raw), -EINVAL);
        assert_int_equal(policy_errors_prefix(&want, KEY, raw.data), 0);
        assert_true(want.len > 1);
        want.data[--want.len] = '\0';   /* the message has no final newline */
        assert_string_equal(msg, want.data);
        assert_non_null(strstr(msg, KEY ":2:22: namespaces.team-a.identity: "));
        assert_non_null(strstr(msg, "\n" KEY ":2:"));
        buf_free(&raw);
        buf_free(&want);
        cJSON_Delete(answer);
}

static void test_good_policy_allowed(void **state)
{
        (void)state;
        struct configmap_policy_result res;
        cJSON *answer;
        assert_int_equal(judge("CREATE", "configmaps", GOOD, NULL, &res, &answer), CONFIGMAP_POLICY_VALID);
        assert_true(allowed(answer));
        cJSON_Delete(answer);
        assert_int_equal(judge("UPDATE", "configmaps", GOOD, BROKEN, &res, &answer), CONFIGMAP_POLICY_VALID);
        assert_true(allowed(answer));
        cJSON_Delete(answer);
        /* A broken policy over a good one is judged on UPDATE too. */
        assert_int_equal(judge("UPDATE", "configmaps", BROKEN, GOOD, &res, &answer), CONFIGMAP_POLICY_INVALID);
        assert_false(allowed(answer));
        cJSON_Delete(answer);
}

static void test_what_carries_no_new_policy_is_allowed(void **state)
{
        (void)state;
        struct configmap_policy_result res;
        cJSON *answer;
        struct {
                const char *op, *resource, *data, *old;
        } cases[] = {
                { "CREATE", "secrets", BROKEN, NULL },        /* not a ConfigMap */
                { "CREATE", "pods", BROKEN, NULL },
                { "DELETE", "configmaps", BROKEN, NULL },     /* the server keeps what it loaded */
                { "CONNECT", "configmaps", BROKEN, NULL },
                { "CREATE", "configmaps", NULL, NULL },       /* no policy key */
                { "UPDATE", "configmaps", NULL, BROKEN },     /* the key removed */
                { "UPDATE", "configmaps", BROKEN, BROKEN },   /* the policy as it was */
        };
        for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
                assert_int_equal(judge(cases[i].op, cases[i].resource, cases[i].data, cases[i].old, &res, &answer),
                                 CONFIGMAP_POLICY_IGNORED);
                assert_non_null(res.why);
                assert_true(allowed(answer));
                cJSON_Delete(answer);
        }
}

static void test_refusal_bounded(void **state)
{
        (void)state;
        /* 2000 problems: far more than the message holds. */
        struct buf text;
        buf_init(&text, WH_MAX_POLICY_BYTES);
        buf_puts(&text, "namespaces:\n");
        for (int i = 0; i < 2000; i++)
                buf_printf(&text, "  team-%d: {identity: \"bad %d\"}\n", i, i);
        struct configmap_policy_result res;
        cJSON *answer;
        assert_int_equal(judge("CREATE", "configmaps", text.data, NULL, &res, &answer), CONFIGMAP_POLICY_INVALID);
        size_t n = strlen(res.message);
        assert_true(n < WH_POLICY_REFUSAL_MAX_CHARS);
        assert_true(n > WH_POLICY_REFUSAL_MAX_CHARS / 2);
        assert_non_null(strstr(res.message, KEY ":3:"));   /* the first problems are kept */
        const char *last = strrchr(res.message, '\n');
        assert_non_null(last);
        assert_true(strncmp(last + 1, KEY ": ... and ", strlen(KEY ": ... and ")) == 0);
        assert_non_null(strstr(last, " more lines (check-policy prints them all)"));
        /* Whole lines only: every line but the last has a place. */
        for (const char *line = res.message; line < last; line = strchr(line, '\n') + 1)
                assert_true(strncmp(line, KEY ":", strlen(KEY ":")) == 0 && line[strlen(KEY ":")] >= '0' &&
                            line[strlen(KEY ":")] <= '9');
        cJSON_Delete(answer);
        buf_free(&text);
}

static void test_answer_bounded(void **state)
{
        (void)state;
        char *body = review_json("CREATE", "configmaps", BROKEN, NULL);
        struct review rv = { 0 };
        char err[256];
        assert_int_equal(review_parse(body, strlen(body), &rv, err, sizeof err), 0);
        struct buf out;
        buf_init(&out, 64);   /* too small for the answer */
        struct configmap_policy_result res;
        assert_int_equal(configmap_policy_judge(&rv, KEY, &res, &out), -ENOBUFS);
        buf_free(&out);
        review_free(&rv);
        free(body);
}

static void test_policy_errors_prefix(void **state)
{
        (void)state;
        struct buf out;
        buf_init(&out, 1024);
        assert_int_equal(policy_errors_prefix(&out, "f.yaml", "1:2: a: b\nno place\n3:4: c"), 0);
        assert_string_equal(out.data, "f.yaml:1:2: a: b\nf.yaml: no place\nf.yaml:3:4: c\n");
        buf_free(&out);
        assert_string_equal(configmap_policy_verdict_name(CONFIGMAP_POLICY_INVALID), "invalid");
}

int main(void)
{
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_broken_policy_refused_with_its_lines),
                cmocka_unit_test(test_good_policy_allowed),
                cmocka_unit_test(test_what_carries_no_new_policy_is_allowed),
                cmocka_unit_test(test_refusal_bounded),
                cmocka_unit_test(test_answer_bounded),
                cmocka_unit_test(test_policy_errors_prefix),
        };
        return cmocka_run_group_tests_name("configmap_policy", tests, NULL, NULL);
}
