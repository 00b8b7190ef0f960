/* Unit tests for webhook/cmd/decision_log.c: the decision line's
 * "changeKinds" (the changes counted by kind) for a driver, an executor and
 * a refused claim, and a line that stays one JSON object at its bound. The
 * lines are read back from stderr. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cjson/cJSON.h>

#include "admission.h"
#include "decision_log.h"
#include "fixture_files.h"
#include "webhook_limits.h"

/* The admission of a fixture review in `ns` (NULL: as it is), decided. */
static struct admission *decide(const struct policy *p, const char *fixture, const char *ns)
{
        char *body = fixture_text(fixture);
        cJSON *review = cJSON_Parse(body);
        assert_non_null(review);
        free(body);
        if (ns) {
                cJSON *req = cJSON_GetObjectItem(review, "request");
                cJSON_ReplaceItemInObject(req, "namespace", cJSON_CreateString(ns));
        }
        body = cJSON_PrintUnformatted(review);
        cJSON_Delete(review);
        struct admission *a = calloc(1, sizeof *a);
        assert_non_null(a);
        admission_init(a, WH_MAX_RESPONSE_BYTES);
        assert_int_equal(admission_parse(a, body, strlen(body)), 0);
        struct ns_known known = { .state = NS_NOT_READ };
        assert_int_equal(admission_decide(p, &known, a), 0);
        assert_true(a->decided);
        free(body);
        return a;
}

static void release(struct admission *a)
{
        admission_free(a);
        free(a);
}

/* decision_log_write()'s line, parsed; fails unless it is exactly one JSON object
 * of at most WH_LOG_LINE_MAX bytes. */
static cJSON *logged(const struct admission *a)
{
        fflush(stderr);
        FILE *capture = tmpfile();
        assert_non_null(capture);
        int saved = dup(STDERR_FILENO);
        assert_true(dup2(fileno(capture), STDERR_FILENO) >= 0);
        decision_log_write(a, 42);
        fflush(stderr);
        assert_true(dup2(saved, STDERR_FILENO) >= 0);
        close(saved);
        long n = ftell(capture);
        assert_true(n > 0);
        char *text = calloc(1, (size_t)n + 1);
        assert_non_null(text);
        rewind(capture);
        assert_int_equal(fread(text, 1, (size_t)n, capture), (size_t)n);
        fclose(capture);
        const char *nl = strchr(text, '\n');
        assert_non_null(nl);
        assert_int_equal(nl[1], '\0');
        assert_true((size_t)(nl - text) + 1 <= WH_LOG_LINE_MAX);
        cJSON *j = cJSON_ParseWithLength(text, (size_t)(nl - text));
        if (!cJSON_IsObject(j))
                fail_msg("not a JSON object: %.300s", text);
        free(text);
        return j;
}

static long long count(const cJSON *kinds, const char *key)
{
        const cJSON *v = cJSON_GetObjectItem(kinds, key);
        return cJSON_IsNumber(v) ? (long long)v->valuedouble : 0;
}

/* The counts add up to the mutation's changes, and every key is a kind's. */
static void assert_counts_whole(const cJSON *kinds, const struct mutation *m)
{
        long long total = 0;
        const cJSON *it;
        assert_true(cJSON_IsObject(kinds));
        cJSON_ArrayForEach(it, kinds) {
                bool known = false;
                for (unsigned k = 0; k < CHANGE_KIND_MAX; k++)
                        known |= strcmp(it->string, decision_log_kind_key((enum change_kind)k)) == 0;
                if (!known)
                        fail_msg("\"%s\" is not a kind of change", it->string);
                assert_true(cJSON_IsNumber(it) && it->valuedouble >= 1);
                total += (long long)it->valuedouble;
        }
        assert_int_equal(total, m->n_changes);
}

static void test_every_kind_has_its_own_key(void **state)
{
        for (unsigned k = 0; k < CHANGE_KIND_MAX; k++) {
                const char *key = decision_log_kind_key((enum change_kind)k);
                assert_non_null(key);
                for (unsigned j = 0; j < k; j++)
                        assert_string_not_equal(key, decision_log_kind_key((enum change_kind)j));
        }
        assert_null(decision_log_kind_key(CHANGE_KIND_MAX));
}

static void test_counts_in_kind_order(void **state)
{
        static struct mutation m;
        mutation_init(&m);
        enum change_kind kinds[] = { CHANGE_TOKEN_MOUNT, CHANGE_ADD_ENV,     CHANGE_SET_IDENTITY_LABEL,
                                     CHANGE_ADD_ENV,     CHANGE_TOKEN_MOUNT, CHANGE_TOKEN_MOUNT };
        for (size_t i = 0; i < sizeof kinds / sizeof *kinds; i++)
                m.changes[m.n_changes++] = (struct change){ .kind = kinds[i] };
        struct buf out;
        buf_init(&out, 1024);
        assert_int_equal(decision_log_kinds(&m, &out), 0);
        assert_string_equal(out.data, "{\"setIdentityLabel\":1,\"addEnv\":2,\"addTokenMount\":3}");
        buf_reset(&out);
        m.n_changes = 0;
        assert_int_equal(decision_log_kinds(&m, &out), 0);
        assert_string_equal(out.data, "{}");
        /* A buffer too small says so rather than writing half an object. */
        struct buf tiny;
        buf_init(&tiny, 8);
        m.n_changes = 3;
        assert_true(decision_log_kinds(&m, &tiny) < 0);
        buf_free(&tiny);
        buf_free(&out);
        mutation_free(&m);
}

static void test_driver(void **state)
{
        struct policy *p = fixture_policy("policy.yaml");
        struct admission *a = decide(p, "spark35-driver.json", NULL);
        assert_int_equal(a->mutation.decision, DECISION_MUTATED);
        cJSON *j = logged(a);
        const cJSON *kinds = cJSON_GetObjectItem(j, "changeKinds");
        assert_counts_whole(kinds, &a->mutation);
        assert_int_equal(count(kinds, "setIdentityLabel"), 1);
        assert_true(count(kinds, "addEnv") + count(kinds, "setEnv") + count(kinds, "addJavaOpt") >= 1);
        assert_int_equal(count(kinds, "removeIdentityLabel"), 0);
        /* The fields that were there stay as they were. */
        assert_int_equal(cJSON_GetObjectItem(j, "changes")->valuedouble, a->mutation.patch.n_ops);
        assert_true(cJSON_IsArray(cJSON_GetObjectItem(j, "patch")));
        assert_string_equal(cJSON_GetObjectItem(j, "decision")->valuestring, "mutated");
        cJSON_Delete(j);
        release(a);
        policy_free(p);
}

static void test_executor(void **state)
{
        struct policy *p = fixture_policy("policy.yaml");
        struct admission *a = decide(p, "spark35-executor.json", NULL);
        assert_int_equal(a->mutation.decision, DECISION_MUTATED);
        assert_int_equal(a->mutation.role, POD_ROLE_EXECUTOR);
        cJSON *j = logged(a);
        const cJSON *kinds = cJSON_GetObjectItem(j, "changeKinds");
        assert_counts_whole(kinds, &a->mutation);
        assert_int_equal(count(kinds, "setIdentityLabel"), 1);
        cJSON_Delete(j);
        release(a);
        policy_free(p);
}

/* Audit mode: what enforce would change is counted too. */
static void test_would_mutate(void **state)
{
        struct policy *p = fixture_policy("policy.yaml");
        struct admission *a = decide(p, "spark35-driver.json", "team-c");
        assert_int_equal(a->mutation.decision, DECISION_WOULD_MUTATE);
        cJSON *j = logged(a);
        const cJSON *kinds = cJSON_GetObjectItem(j, "changeKinds");
        assert_counts_whole(kinds, &a->mutation);
        assert_int_equal(count(kinds, "setIdentityLabel"), 1);
        cJSON_Delete(j);
        release(a);
        policy_free(p);
}

/* A refused claim changes nothing: no changeKinds. Nor an unchanged pod. */
static void test_refused_claim_and_unchanged(void **state)
{
        struct policy *p = fixture_policy("policy.yaml");
        struct admission *a = decide(p, "rogue-pod.json", NULL);
        assert_int_equal(a->mutation.decision, DECISION_DENIED);
        cJSON *j = logged(a);
        assert_null(cJSON_GetObjectItem(j, "changeKinds"));
        assert_int_equal(cJSON_GetObjectItem(j, "changes")->valuedouble, 0);
        assert_non_null(cJSON_GetObjectItem(j, "reason"));
        cJSON_Delete(j);
        release(a);

        a = decide(p, "nginx-pod.json", NULL);
        assert_int_equal(a->mutation.decision, DECISION_UNCHANGED);
        j = logged(a);
        assert_null(cJSON_GetObjectItem(j, "changeKinds"));
        cJSON_Delete(j);
        release(a);
        policy_free(p);
}

/* A patch too large for the line is dropped whole and named; the counts,
 * written before it, stay. */
static void test_bound_patch_dropped_counts_kept(void **state)
{
        struct policy *p = fixture_policy("policy.yaml");
        struct admission *a = decide(p, "spark35-driver.json", NULL);
        struct jsonpatch *patch = &a->mutation.patch;
        buf_reset(&patch->text);
        patch->text.max = 2 * WH_LOG_LINE_MAX;
        assert_int_equal(buf_puts(&patch->text, "[\""), 0);
        for (size_t i = 0; i < WH_LOG_LINE_MAX; i++)
                assert_int_equal(buf_putc(&patch->text, 'x'), 0);
        assert_int_equal(buf_puts(&patch->text, "\"]"), 0);
        cJSON *j = logged(a);
        assert_null(cJSON_GetObjectItem(j, "patch"));
        assert_counts_whole(cJSON_GetObjectItem(j, "changeKinds"), &a->mutation);
        const cJSON *t = cJSON_GetObjectItem(j, "truncated");
        assert_true(cJSON_IsArray(t));
        assert_string_equal(cJSON_GetArrayItem(t, 0)->valuestring, "patch");
        cJSON_Delete(j);
        release(a);
        policy_free(p);
}

/* A field before it fills the line, a few bytes more each time, until the
 * counts no longer fit and then until that field does not either: the
 * counts are whole in the line or named as dropped, and the line is JSON
 * all the same. Both happen. */
static void test_bound_line_stays_json(void **state)
{
        struct policy *p = fixture_policy("policy.yaml");
        struct admission *a = decide(p, "spark35-driver.json", NULL);
        const char *user = a->review.username;
        unsigned kept = 0, dropped = 0;
        for (size_t fill = WH_LOG_LINE_MAX - 1500; fill < WH_LOG_LINE_MAX; fill += 3) {
                char *big = malloc(fill + 1);
                assert_non_null(big);
                memset(big, 'u', fill);
                big[fill] = '\0';
                a->review.username = big;
                cJSON *j = logged(a);
                const cJSON *kinds = cJSON_GetObjectItem(j, "changeKinds");
                if (kinds) {
                        assert_counts_whole(kinds, &a->mutation);
                        kept++;
                } else {
                        bool named = false;
                        const cJSON *it;
                        cJSON_ArrayForEach(it, cJSON_GetObjectItem(j, "truncated"))
                                named |= strcmp(it->valuestring, "changeKinds") == 0;
                        /* Named, unless the list of dropped fields was full. */
                        assert_true(named || cJSON_GetArraySize(cJSON_GetObjectItem(j, "truncated")) ==
                                                     (int)WH_LOG_MAX_TRUNCATED);
                        dropped++;
                }
                cJSON_Delete(j);
                free(big);
        }
        assert_true(kept > 0);
        assert_true(dropped > 0);
        a->review.username = user;
        release(a);
        policy_free(p);
}

int main(void)
{
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_every_kind_has_its_own_key),
                cmocka_unit_test(test_counts_in_kind_order),
                cmocka_unit_test(test_driver),
                cmocka_unit_test(test_executor),
                cmocka_unit_test(test_would_mutate),
                cmocka_unit_test(test_refused_claim_and_unchanged),
                cmocka_unit_test(test_bound_patch_dropped_counts_kept),
                cmocka_unit_test(test_bound_line_stays_json),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
