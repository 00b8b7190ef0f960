/* Unit tests for webhook/core/review.c: AdmissionReview parsing, the response
 * and the Status body. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include "b64_decode.h"

#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "buf.h"
#include "jsonpatch.h"
#include "mutate.h"
#include "review.h"
#include "webhook_limits.h"

/* A pod CREATE for a Spark driver as the API server sends it (v1), with the
 * fields it always fills in. */
static const char REVIEW_V1[] =
        "{\"kind\":\"AdmissionReview\",\"apiVersion\":\"admission.k8s.io/v1\","
        "\"request\":{"
        "\"uid\":\"705ab4f5-6393-11e8-b7cc-42010a800002\","
        "\"kind\":{\"group\":\"\",\"version\":\"v1\",\"kind\":\"Pod\"},"
        "\"resource\":{\"group\":\"\",\"version\":\"v1\",\"resource\":\"pods\"},"
        "\"requestKind\":{\"group\":\"\",\"version\":\"v1\",\"kind\":\"Pod\"},"
        "\"requestResource\":{\"group\":\"\",\"version\":\"v1\",\"resource\":\"pods\"},"
        "\"name\":\"spark-pi-driver\",\"namespace\":\"team-a\",\"operation\":\"CREATE\","
        "\"userInfo\":{\"username\":\"system:serviceaccount:team-a:spark\","
        "\"uid\":\"1b2c3d4e-0000-4000-8000-000000000001\","
        "\"groups\":[\"system:serviceaccounts\",\"system:serviceaccounts:team-a\",\"system:authenticated\"]},"
        "\"object\":{\"apiVersion\":\"v1\",\"kind\":\"Pod\","
        "\"metadata\":{\"name\":\"spark-pi-driver\",\"namespace\":\"team-a\","
        "\"labels\":{\"spark-app-selector\":\"spark-0123456789abcdef\",\"spark-role\":\"driver\"}},"
        "\"spec\":{\"serviceAccountName\":\"spark\",\"restartPolicy\":\"Never\","
        "\"containers\":[{\"name\":\"spark-kubernetes-driver\",\"image\":\"apache/spark:3.5.1\","
        "\"args\":[\"driver\",\"--class\",\"org.apache.spark.examples.SparkPi\"],"
        "\"env\":[{\"name\":\"SPARK_DRIVER_BIND_ADDRESS\",\"valueFrom\":{\"fieldRef\":{\"apiVersion\":\"v1\","
        "\"fieldPath\":\"status.podIP\"}}}]}]},"
        "\"status\":{}},"
        "\"oldObject\":null,\"dryRun\":false,"
        "\"options\":{\"kind\":\"CreateOptions\",\"apiVersion\":\"meta.k8s.io/v1\"}}}";

/* The same for an executor, as an older API server sends it (v1beta1), in
 * a dry run, with the name left for the API server to generate. */
static const char REVIEW_V1BETA1[] =
        "{\"kind\":\"AdmissionReview\",\"apiVersion\":\"admission.k8s.io/v1beta1\","
        "\"request\":{"
        "\"uid\":\"0df28fbd-5f5f-11e8-bc74-36e6bb280816\","
        "\"kind\":{\"group\":\"\",\"version\":\"v1\",\"kind\":\"Pod\"},"
        "\"resource\":{\"group\":\"\",\"version\":\"v1\",\"resource\":\"pods\"},"
        "\"namespace\":\"team-d\",\"operation\":\"CREATE\","
        "\"userInfo\":{\"username\":\"system:serviceaccount:team-d:spark-driver\",\"groups\":[\"system:authenticated\"]"
        "},"
        "\"object\":{\"apiVersion\":\"v1\",\"kind\":\"Pod\","
        "\"metadata\":{\"generateName\":\"spark-pi-exec-\",\"namespace\":\"team-d\","
        "\"labels\":{\"spark-role\":\"executor\",\"spark-exec-id\":\"1\"}},"
        "\"spec\":{\"containers\":[{\"name\":\"spark-kubernetes-executor\",\"image\":\"apache/spark:3.5.1\"}]}},"
        "\"oldObject\":null,\"dryRun\":true}}";

/* Builds a review from the parts that differ between cases. */
static char *make_review(const char *api_version, const char *request_fields)
{
        size_t n = strlen(api_version) + strlen(request_fields) + 128;
        char *s = malloc(n);
        assert_non_null(s);
        snprintf(s, n, "{\"kind\":\"AdmissionReview\",\"apiVersion\":\"%s\",\"request\":{%s}}", api_version,
                 request_fields);
        return s;
}

#define POD_RESOURCE "\"resource\":{\"group\":\"\",\"version\":\"v1\",\"resource\":\"pods\"}"

/* The body in an allocation of exactly its length, without a NUL after it,
 * as the server hands it over: a read past `len` is caught by ASan. */
static int parse_exact(const char *body, size_t len, struct review *ret, char *err, size_t errlen)
{
        char *copy = malloc(len ? len : 1);
        assert_non_null(copy);
        memcpy(copy, body, len);
        int r = review_parse(copy, len, ret, err, errlen);
        free(copy);     /* the review must not point into the body */
        return r;
}

static void parse_ok(const char *body, struct review *rv)
{
        char err[256] = "";
        int r = parse_exact(body, strlen(body), rv, err, sizeof err);
        if (r != 0)
                fail_msg("review_parse = %d: %s\nbody: %.300s", r, err, body);
        assert_non_null(rv->root);
}

static void assert_parse_fails(const char *body, size_t len, const char *want_in_message)
{
        struct review rv;
        memset(&rv, 0x5a, sizeof rv);
        struct review untouched = rv;
        char err[256];
        memset(err, 0, sizeof err);
        int r = parse_exact(body, len, &rv, err, sizeof err);
        if (r != -EINVAL)
                fail_msg("review_parse = %d, want -EINVAL, for: %.200s", r, body);
        assert_memory_equal(&rv, &untouched, sizeof rv);
        if (!strstr(err, want_in_message))
                fail_msg("message \"%s\" does not say \"%s\" (body: %.200s)", err, want_in_message, body);
}

static void assert_parse_fails_str(const char *body, const char *want_in_message)
{
        assert_parse_fails(body, strlen(body), want_in_message);
}

/* --- parsing ------------------------------------------------------------ */

static void test_parse_v1(void **state)
{
        struct review rv;
        parse_ok(REVIEW_V1, &rv);
        assert_string_equal(rv.api_version, "admission.k8s.io/v1");
        assert_string_equal(rv.uid, "705ab4f5-6393-11e8-b7cc-42010a800002");
        assert_string_equal(rv.operation, "CREATE");
        assert_string_equal(rv.namespace_, "team-a");
        assert_string_equal(rv.name, "spark-pi-driver");
        assert_string_equal(rv.username, "system:serviceaccount:team-a:spark");
        assert_false(rv.dry_run);
        assert_true(rv.is_pod);
        assert_non_null(rv.object);
        assert_true(cJSON_IsObject(rv.object));
        const cJSON *kind = cJSON_GetObjectItemCaseSensitive(rv.object, "kind");
        assert_string_equal(cJSON_GetStringValue(kind), "Pod");
        const cJSON *labels =
                cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(rv.object, "metadata"), "labels");
        assert_string_equal(cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(labels, "spark-role")), "driver");
        review_free(&rv);
        assert_null(rv.root);
}

static void test_parse_v1beta1(void **state)
{
        struct review rv;
        parse_ok(REVIEW_V1BETA1, &rv);
        assert_string_equal(rv.api_version, "admission.k8s.io/v1beta1");
        assert_string_equal(rv.uid, "0df28fbd-5f5f-11e8-bc74-36e6bb280816");
        assert_string_equal(rv.operation, "CREATE");
        assert_string_equal(rv.namespace_, "team-d");
        assert_string_equal(rv.name, "spark-pi-exec-");         /* generateName */
        assert_string_equal(rv.username, "system:serviceaccount:team-d:spark-driver");
        assert_true(rv.dry_run);
        assert_true(rv.is_pod);
        assert_non_null(rv.object);
        review_free(&rv);
}

static void test_parse_minimal(void **state)
{
        struct review rv;
        parse_ok("{\"apiVersion\":\"admission.k8s.io/v1\",\"kind\":\"AdmissionReview\",\"request\":{\"uid\":\"u\"}}",
                 &rv);
        assert_string_equal(rv.uid, "u");
        assert_null(rv.operation);
        assert_null(rv.namespace_);
        assert_null(rv.name);
        assert_null(rv.username);
        assert_false(rv.dry_run);
        assert_false(rv.is_pod);
        assert_null(rv.object);
        review_free(&rv);
}

static void test_name_fallback(void **state)
{
        struct review rv;
        char *body;

        /* request.name wins over the object's. */
        body = make_review("admission.k8s.io/v1", "\"uid\":\"u\",\"operation\":\"CREATE\"," POD_RESOURCE ","
                                                  "\"name\":\"from-request\",\"object\":{\"metadata\":{\"name\":\"from-"
                                                  "object\",\"generateName\":\"gen-\"}}");
        parse_ok(body, &rv);
        assert_string_equal(rv.name, "from-request");
        review_free(&rv);
        free(body);

        body = make_review("admission.k8s.io/v1",
                           "\"uid\":\"u\",\"operation\":\"CREATE\"," POD_RESOURCE ","
                           "\"object\":{\"metadata\":{\"name\":\"from-object\",\"generateName\":\"gen-\"}}");
        parse_ok(body, &rv);
        assert_string_equal(rv.name, "from-object");
        review_free(&rv);
        free(body);

        body = make_review("admission.k8s.io/v1", "\"uid\":\"u\",\"operation\":\"CREATE\"," POD_RESOURCE ","
                                                  "\"object\":{\"metadata\":{\"generateName\":\"gen-\"}}");
        parse_ok(body, &rv);
        assert_string_equal(rv.name, "gen-");
        review_free(&rv);
        free(body);

        /* A name that is not a string does not count. */
        body = make_review("admission.k8s.io/v1",
                           "\"uid\":\"u\",\"operation\":\"CREATE\"," POD_RESOURCE ","
                           "\"name\":7,\"object\":{\"metadata\":{\"name\":[],\"generateName\":\"gen-\"}}");
        parse_ok(body, &rv);
        assert_string_equal(rv.name, "gen-");
        review_free(&rv);
        free(body);

        body = make_review("admission.k8s.io/v1", "\"uid\":\"u\",\"operation\":\"CREATE\"," POD_RESOURCE ","
                                                  "\"object\":{\"metadata\":{}}");
        parse_ok(body, &rv);
        assert_null(rv.name);
        review_free(&rv);
        free(body);

        body = make_review("admission.k8s.io/v1", "\"uid\":\"u\",\"operation\":\"CREATE\"," POD_RESOURCE ","
                                                  "\"object\":{\"spec\":{}}");
        parse_ok(body, &rv);
        assert_null(rv.name);
        review_free(&rv);
        free(body);
}

static void test_is_pod(void **state)
{
        static const struct {
                const char *fields;
                bool is_pod;
        } cases[] = {
                { POD_RESOURCE, true },
                { POD_RESOURCE ",\"subResource\":\"\"", true },
                { "\"resource\":{\"version\":\"v1\",\"resource\":\"pods\"}", true },
                { POD_RESOURCE ",\"subResource\":\"status\"", false },
                { POD_RESOURCE ",\"subResource\":\"ephemeralcontainers\"", false },
                { POD_RESOURCE ",\"subResource\":\"binding\"", false },
                { "\"resource\":{\"group\":\"\",\"version\":\"v1\",\"resource\":\"configmaps\"}", false },
                { "\"resource\":{\"group\":\"apps\",\"version\":\"v1\",\"resource\":\"pods\"}", false },
                { "\"resource\":{\"group\":\"apps\",\"version\":\"v1\",\"resource\":\"deployments\"}", false },
                { "\"resource\":{\"group\":\"\",\"version\":\"v1\",\"resource\":\"Pods\"}", false },
                { "\"resource\":{\"group\":\"\",\"version\":\"v1\"}", false },
                { "\"resource\":\"pods\"", false },
                { "\"resource\":{\"group\":0,\"version\":\"v1\",\"resource\":\"pods\"}", false },
                { "\"resource\":{\"group\":null,\"version\":\"v1\",\"resource\":\"pods\"}", false },
                { "\"kind\":{\"group\":\"\",\"version\":\"v1\",\"kind\":\"Pod\"}", false },       /* no resource */
        };
        for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
                char fields[512];
                snprintf(fields, sizeof fields,
                         "\"uid\":\"u\",\"operation\":\"CREATE\",%s,\"object\":{\"kind\":\"ConfigMap\"}",
                         cases[i].fields);
                char *body = make_review("admission.k8s.io/v1", fields);
                struct review rv;
                parse_ok(body, &rv);
                if (rv.is_pod != cases[i].is_pod)
                        fail_msg("is_pod = %d, want %d, for %s", rv.is_pod, cases[i].is_pod, cases[i].fields);
                review_free(&rv);
                free(body);
        }
}

/* Only a pod CREATE needs the object; other requests may come without one. */
static void test_object_optional_elsewhere(void **state)
{
        static const char *const fields[] = {
                "\"uid\":\"u\",\"operation\":\"DELETE\"," POD_RESOURCE ",\"object\":null",
                "\"uid\":\"u\",\"operation\":\"CONNECT\"," POD_RESOURCE ",\"subResource\":\"exec\"",
                "\"uid\":\"u\",\"operation\":\"CREATE\",\"resource\":{\"group\":\"\",\"version\":\"v1\",\"resource\":"
                "\"configmaps\"}",
                "\"uid\":\"u\"," POD_RESOURCE,  /* no operation */
        };
        for (size_t i = 0; i < sizeof fields / sizeof fields[0]; i++) {
                char *body = make_review("admission.k8s.io/v1", fields[i]);
                struct review rv;
                parse_ok(body, &rv);
                assert_null(rv.object);
                review_free(&rv);
                free(body);
        }
}

static void test_parse_errors(void **state)
{
        static const struct {
                const char *body, *says;
        } cases[] = {
                { "", "not JSON" },
                { "   ", "not JSON" },
                { "not json", "not JSON" },
                { "{\"kind\":", "not JSON" },
                { "{'kind':'AdmissionReview'}", "not JSON" },
                { "{\"kind\":\"AdmissionReview\",\"apiVersion\":\"admission.k8s.io/"
                  "v1\",\"request\":{\"uid\":\"u\"}}garbage",
                  "unexpected data after the document" },
                { "{\"kind\":\"AdmissionReview\",\"apiVersion\":\"admission.k8s.io/v1\",\"request\":{\"uid\":\"u\"}}{}",
                  "unexpected data after the document" },
                { "[]", "not an AdmissionReview" },
                { "[{\"kind\":\"AdmissionReview\",\"apiVersion\":\"admission.k8s.io/v1\",\"request\":{\"uid\":\"u\"}}]",
                  "not an AdmissionReview" },
                { "\"AdmissionReview\"", "not an AdmissionReview" },
                { "42", "not an AdmissionReview" },
                { "null", "not an AdmissionReview" },
                { "{}", "not an AdmissionReview" },
                { "{\"apiVersion\":\"admission.k8s.io/v1\",\"request\":{\"uid\":\"u\"}}", "kind" },
                { "{\"kind\":\"AdmissionRequest\",\"apiVersion\":\"admission.k8s.io/v1\",\"request\":{\"uid\":\"u\"}}",
                  "kind" },
                { "{\"kind\":\"admissionreview\",\"apiVersion\":\"admission.k8s.io/v1\",\"request\":{\"uid\":\"u\"}}",
                  "kind" },
                { "{\"kind\":[\"AdmissionReview\"],\"apiVersion\":\"admission.k8s.io/v1\",\"request\":{\"uid\":\"u\"}}",
                  "kind" },
                { "{\"kind\":\"AdmissionReview\",\"apiVersion\":\"admission.k8s.io/v2\",\"request\":{\"uid\":\"u\"}}",
                  "apiVersion" },
                { "{\"kind\":\"AdmissionReview\",\"apiVersion\":\"admission.k8s.io/"
                  "v1beta2\",\"request\":{\"uid\":\"u\"}}",
                  "apiVersion" },
                { "{\"kind\":\"AdmissionReview\",\"apiVersion\":\"v1\",\"request\":{\"uid\":\"u\"}}", "apiVersion" },
                { "{\"kind\":\"AdmissionReview\",\"apiVersion\":\"admission.k8s.io/v1 \",\"request\":{\"uid\":\"u\"}}",
                  "apiVersion" },
                { "{\"kind\":\"AdmissionReview\",\"request\":{\"uid\":\"u\"}}", "apiVersion" },
                { "{\"kind\":\"AdmissionReview\",\"apiVersion\":1,\"request\":{\"uid\":\"u\"}}", "apiVersion" },
                { "{\"kind\":\"AdmissionReview\",\"apiVersion\":\"admission.k8s.io/v1\"}", "no request" },
                { "{\"kind\":\"AdmissionReview\",\"apiVersion\":\"admission.k8s.io/v1\",\"response\":{\"uid\":\"u\"}}",
                  "no request" },
                { "{\"kind\":\"AdmissionReview\",\"apiVersion\":\"admission.k8s.io/v1\",\"request\":null}",
                  "no request" },
                { "{\"kind\":\"AdmissionReview\",\"apiVersion\":\"admission.k8s.io/v1\",\"request\":\"u\"}",
                  "no request" },
                { "{\"kind\":\"AdmissionReview\",\"apiVersion\":\"admission.k8s.io/v1\",\"request\":[{\"uid\":\"u\"}]}",
                  "no request" },
                { "{\"kind\":\"AdmissionReview\",\"apiVersion\":\"admission.k8s.io/v1\",\"request\":{}}", "uid" },
                { "{\"kind\":\"AdmissionReview\",\"apiVersion\":\"admission.k8s.io/v1\",\"request\":{\"uid\":\"\"}}",
                  "uid" },
                { "{\"kind\":\"AdmissionReview\",\"apiVersion\":\"admission.k8s.io/v1\",\"request\":{\"uid\":42}}",
                  "uid" },
                { "{\"kind\":\"AdmissionReview\",\"apiVersion\":\"admission.k8s.io/v1\",\"request\":{\"uid\":null}}",
                  "uid" },
                { "{\"kind\":\"AdmissionReview\",\"apiVersion\":\"admission.k8s.io/v1\",\"request\":{\"uid\":[\"u\"]}}",
                  "uid" },
                { "{\"kind\":\"AdmissionReview\",\"apiVersion\":\"admission.k8s.io/v1\",\"request\":{\"UID\":\"u\"}}",
                  "uid" },
                { "{\"kind\":\"AdmissionReview\",\"apiVersion\":\"admission.k8s.io/"
                  "v1beta1\",\"request\":{\"uid\":\"u\","
                  "\"operation\":\"CREATE\"," POD_RESOURCE "}}",
                  "no object" },
                { "{\"kind\":\"AdmissionReview\",\"apiVersion\":\"admission.k8s.io/v1\",\"request\":{\"uid\":\"u\","
                  "\"operation\":\"CREATE\"," POD_RESOURCE ",\"object\":null}}",
                  "no object" },
                { "{\"kind\":\"AdmissionReview\",\"apiVersion\":\"admission.k8s.io/v1\",\"request\":{\"uid\":\"u\","
                  "\"operation\":\"CREATE\"," POD_RESOURCE ",\"object\":\"{}\"}}",
                  "no object" },
                { "{\"kind\":\"AdmissionReview\",\"apiVersion\":\"admission.k8s.io/v1\",\"request\":{\"uid\":\"u\","
                  "\"operation\":\"CREATE\"," POD_RESOURCE ",\"object\":[]}}",
                  "no object" },
        };
        for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
                assert_parse_fails_str(cases[i].body, cases[i].says);
}

/* The byte the parser stopped at is in the message. */
static void test_parse_error_position(void **state)
{
        char err[256];
        struct review rv;
        const char *body = "{\"kind\":\"AdmissionReview\",,}";
        assert_int_equal(parse_exact(body, strlen(body), &rv, err, sizeof err), -EINVAL);
        const char *at = strstr(err, "byte ");
        assert_non_null(at);
        long pos = strtol(at + 5, NULL, 10);
        /* The second comma is byte 26; cJSON reports where it stopped, just after. */
        assert_in_range(pos, 26, 27);
}

/* Every proper prefix of a valid review is an error, not a crash nor a
 * read past the length. */
static void test_truncated(void **state)
{
        size_t n = strlen(REVIEW_V1);
        for (size_t len = 0; len < n; len++)
                assert_parse_fails(REVIEW_V1, len, "not JSON");
        n = strlen(REVIEW_V1BETA1);
        for (size_t len = 0; len < n; len++)
                assert_parse_fails(REVIEW_V1BETA1, len, "not JSON");

        /* The length is what counts, not a NUL. */
        struct review rv;
        char err[256];
        char *longer = malloc(strlen(REVIEW_V1) + 10);
        assert_non_null(longer);
        strcpy(longer, REVIEW_V1);
        assert_int_equal(review_parse(longer, strlen(REVIEW_V1) - 1, &rv, err, sizeof err), -EINVAL);
        assert_int_equal(review_parse(longer, strlen(REVIEW_V1), &rv, err, sizeof err), 0);
        assert_string_equal(rv.uid, "705ab4f5-6393-11e8-b7cc-42010a800002");
        review_free(&rv);
        free(longer);
}

static char *repeat(const char *unit, size_t times, const char *tail)
{
        size_t u = strlen(unit), t = strlen(tail);
        char *s = malloc(u * times + t + 1);
        assert_non_null(s);
        for (size_t i = 0; i < times; i++)
                memcpy(s + i * u, unit, u);
        memcpy(s + u * times, tail, t + 1);
        return s;
}

/* Deep nesting ends in an error (cJSON stops at CJSON_NESTING_LIMIT), not
 * in a stack overflow. */
static void test_deep_nesting(void **state)
{
        char *s = repeat("[", 100000, "");
        assert_parse_fails_str(s, "not JSON");
        free(s);

        s = repeat("{\"a\":", 100000, "1");
        assert_parse_fails_str(s, "not JSON");
        free(s);

        /* Inside a valid-looking review. */
        char *inner = repeat("[", 100000, "");
        size_t n = strlen(inner) + 256;
        s = malloc(n);
        assert_non_null(s);
        snprintf(s, n,
                 "{\"kind\":\"AdmissionReview\",\"apiVersion\":\"admission.k8s.io/v1\","
                 "\"request\":{\"uid\":\"u\",\"object\":%s",
                 inner);
        assert_parse_fails_str(s, "not JSON");
        free(s);
        free(inner);
}

/* A small error buffer gets a truncated, terminated message, and nothing
 * past it is written. */
static void test_small_error_buffer(void **state)
{
        char err[32];
        memset(err, 'Z', sizeof err);
        struct review rv;
        assert_int_equal(review_parse("[]", 2, &rv, err, 8), -EINVAL);
        assert_int_equal(strlen(err), 7);
        for (size_t i = 8; i < sizeof err; i++)
                assert_int_equal(err[i], 'Z');
}

static void test_free_zeroed(void **state)
{
        struct review rv;
        memset(&rv, 0, sizeof rv);
        review_free(&rv);
        assert_null(rv.root);
        review_free(&rv);

        parse_ok(REVIEW_V1, &rv);
        review_free(&rv);
        review_free(&rv);       /* twice */
        assert_null(rv.root);
}

/* --- the response ------------------------------------------------------- */

/* Decodes a base64 string with the tests' strict decoder; the caller frees. */
static char *b64_decode(const char *s, size_t *ret_len)
{
        size_t n = strlen(s);
        char *out = malloc(n / 4 * 3 + 1);
        assert_non_null(out);
        size_t o = test_b64_decode(s, n, (unsigned char *)out);
        out[o] = '\0';
        *ret_len = o;
        return out;
}

/* Writes the response and parses it back; checks the envelope. */
static cJSON *respond(const struct review *rv, const struct mutation *m)
{
        struct buf out;
        buf_init(&out, WH_MAX_RESPONSE_BYTES);
        int r = review_respond(rv, m, &out);
        if (r != 0)
                fail_msg("review_respond = %d", r);
        const char *end = NULL;
        cJSON *root = cJSON_ParseWithLengthOpts(out.data, out.len + 1, &end, true);
        if (!root)
                fail_msg("the response is not JSON: %.300s", out.data);
        buf_free(&out);

        assert_true(cJSON_IsObject(root));
        assert_int_equal(cJSON_GetArraySize(root), 3);
        assert_string_equal(cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(root, "apiVersion")),
                            rv->api_version);
        assert_string_equal(cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(root, "kind")), "AdmissionReview");
        const cJSON *resp = cJSON_GetObjectItemCaseSensitive(root, "response");
        assert_true(cJSON_IsObject(resp));
        assert_string_equal(cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(resp, "uid")), rv->uid);
        assert_true(cJSON_IsBool(cJSON_GetObjectItemCaseSensitive(resp, "allowed")));
        return root;
}

static const cJSON *response_of(const cJSON *root)
{
        return cJSON_GetObjectItemCaseSensitive(root, "response");
}

static bool allowed(const cJSON *root)
{
        return cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(response_of(root), "allowed"));
}

static const cJSON *field(const cJSON *root, const char *name)
{
        return cJSON_GetObjectItemCaseSensitive(response_of(root), name);
}

/* The mutation mutate_pod() would make for the v1 driver, built by hand. */
static void build_mutation(struct mutation *m, enum decision d)
{
        mutation_init(m);
        struct jsonpatch *p = &m->patch;
        jsonpatch_path_reset(p);
        assert_int_equal(jsonpatch_path_token(p, "metadata"), 0);
        assert_int_equal(jsonpatch_path_token(p, "labels"), 0);
        assert_int_equal(jsonpatch_path_token(p, "aadpodidbinding"), 0);
        assert_int_equal(jsonpatch_op(p, "add", "\"sparkaks\""), 0);
        jsonpatch_path_reset(p);
        assert_int_equal(jsonpatch_path_token(p, "spec"), 0);
        assert_int_equal(jsonpatch_path_token(p, "containers"), 0);
        assert_int_equal(jsonpatch_path_index(p, 0), 0);
        assert_int_equal(jsonpatch_path_token(p, "env"), 0);
        assert_int_equal(jsonpatch_path_token(p, "-"), 0);
        assert_int_equal(jsonpatch_op(p, "add",
                                      "{\"name\":\"SPARK_SUBMIT_OPTS\",\"value\":\"-Dspark.hadoop.fs.azure.account."
                                      "auth.type=OAuth \\\"quoted\\\"\"}"),
                         0);
        assert_int_equal(jsonpatch_finish(p), 0);
        m->decision = d;
}

static void add_warning(struct mutation *m, const char *w)
{
        assert_true(m->n_warnings < WH_MAX_WARNINGS);
        assert_true(strlen(w) <= WH_MAX_WARNING_CHARS);
        strcpy(m->warnings[m->n_warnings++], w);
}

static void assert_warnings(const cJSON *root, const struct mutation *m)
{
        const cJSON *w = field(root, "warnings");
        if (!m->n_warnings) {
                assert_null(w);
                return;
        }
        assert_true(cJSON_IsArray(w));
        assert_int_equal(cJSON_GetArraySize(w), (int)m->n_warnings);
        for (unsigned i = 0; i < m->n_warnings; i++)
                assert_string_equal(cJSON_GetStringValue(cJSON_GetArrayItem(w, (int)i)), m->warnings[i]);
}

static void test_respond_allowed_no_mutation(void **state)
{
        const char *bodies[] = { REVIEW_V1, REVIEW_V1BETA1 };
        for (size_t i = 0; i < 2; i++) {
                struct review rv;
                parse_ok(bodies[i], &rv);
                cJSON *root = respond(&rv, NULL);
                assert_true(allowed(root));
                /* uid and allowed, nothing else. */
                assert_int_equal(cJSON_GetArraySize(response_of(root)), 2);
                assert_null(field(root, "patch"));
                assert_null(field(root, "patchType"));
                assert_null(field(root, "warnings"));
                assert_null(field(root, "status"));
                cJSON_Delete(root);
                review_free(&rv);
        }
}

static void test_respond_unchanged(void **state)
{
        struct review rv;
        parse_ok(REVIEW_V1, &rv);
        struct mutation m;
        mutation_init(&m);
        assert_int_equal(jsonpatch_finish(&m.patch), 0);
        m.decision = DECISION_UNCHANGED;
        cJSON *root = respond(&rv, &m);
        assert_true(allowed(root));
        assert_int_equal(cJSON_GetArraySize(response_of(root)), 2);
        cJSON_Delete(root);
        mutation_free(&m);

        /* A patch built but not decided on is not sent. */
        build_mutation(&m, DECISION_UNCHANGED);
        root = respond(&rv, &m);
        assert_true(allowed(root));
        assert_null(field(root, "patch"));
        assert_null(field(root, "patchType"));
        cJSON_Delete(root);
        mutation_free(&m);
        review_free(&rv);
}

static void test_respond_mutated(void **state)
{
        const char *bodies[] = { REVIEW_V1, REVIEW_V1BETA1 };
        for (size_t i = 0; i < 2; i++) {
                struct review rv;
                parse_ok(bodies[i], &rv);
                struct mutation m;
                build_mutation(&m, DECISION_MUTATED);
                add_warning(&m, "spark-identity-webhook: set aadpodidbinding=sparkaks");

                cJSON *root = respond(&rv, &m);
                assert_true(allowed(root));
                assert_string_equal(cJSON_GetStringValue(field(root, "patchType")), "JSONPatch");
                const char *b64 = cJSON_GetStringValue(field(root, "patch"));
                assert_non_null(b64);
                size_t n;
                char *patch = b64_decode(b64, &n);
                assert_int_equal(n, m.patch.text.len);
                assert_memory_equal(patch, m.patch.text.data, n);
                cJSON *ops = cJSON_Parse(patch);
                assert_true(cJSON_IsArray(ops));
                assert_int_equal(cJSON_GetArraySize(ops), 2);
                assert_string_equal(
                        cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(cJSON_GetArrayItem(ops, 0), "path")),
                        "/metadata/labels/aadpodidbinding");
                cJSON_Delete(ops);
                free(patch);
                assert_warnings(root, &m);
                assert_null(field(root, "status"));
                assert_int_equal(cJSON_GetArraySize(response_of(root)), 5);
                cJSON_Delete(root);
                mutation_free(&m);
                review_free(&rv);
        }
}

/* MUTATED with nothing in the patch sends no patch. */
static void test_respond_mutated_empty_patch(void **state)
{
        struct review rv;
        parse_ok(REVIEW_V1, &rv);
        struct mutation m;
        mutation_init(&m);
        assert_int_equal(jsonpatch_finish(&m.patch), 0);
        m.decision = DECISION_MUTATED;
        cJSON *root = respond(&rv, &m);
        assert_true(allowed(root));
        assert_null(field(root, "patch"));
        assert_null(field(root, "patchType"));
        cJSON_Delete(root);
        mutation_free(&m);
        review_free(&rv);
}

static void test_respond_would_mutate(void **state)
{
        struct review rv;
        parse_ok(REVIEW_V1, &rv);
        struct mutation m;
        build_mutation(&m, DECISION_WOULD_MUTATE);
        add_warning(&m, "audit: would set aadpodidbinding=sparkaks");
        add_warning(&m, "audit: would add SPARK_SUBMIT_OPTS to spark-kubernetes-driver");

        cJSON *root = respond(&rv, &m);
        assert_true(allowed(root));
        assert_null(field(root, "patch"));
        assert_null(field(root, "patchType"));
        assert_null(field(root, "status"));
        assert_warnings(root, &m);
        cJSON_Delete(root);
        mutation_free(&m);
        review_free(&rv);
}

static void test_respond_denied(void **state)
{
        const char *bodies[] = { REVIEW_V1, REVIEW_V1BETA1 };
        for (size_t i = 0; i < 2; i++) {
                struct review rv;
                parse_ok(bodies[i], &rv);
                struct mutation m;
                build_mutation(&m, DECISION_DENIED);    /* a patch is never sent with a denial */
                snprintf(m.message, sizeof m.message,
                         "pod claims identity \"team-b-admin\" which namespace team-a may not use;\n"
                         "allowed: [\"team-a-api\"] \\ see policy");
                add_warning(&m, "denied by policy");

                cJSON *root = respond(&rv, &m);
                assert_false(allowed(root));
                assert_null(field(root, "patch"));
                assert_null(field(root, "patchType"));
                assert_warnings(root, &m);
                const cJSON *st = field(root, "status");
                assert_true(cJSON_IsObject(st));
                assert_int_equal(cJSON_GetNumberValue(cJSON_GetObjectItemCaseSensitive(st, "code")), 403);
                assert_string_equal(cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(st, "reason")), "Forbidden");
                assert_string_equal(cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(st, "status")), "Failure");
                assert_string_equal(cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(st, "message")), m.message);
                assert_true(cJSON_IsObject(cJSON_GetObjectItemCaseSensitive(st, "metadata")));
                cJSON_Delete(root);
                mutation_free(&m);
                review_free(&rv);
        }
}

/* Warnings that need escaping, and as many as fit, survive exactly. */
static void test_respond_warnings_escaped(void **state)
{
        static const char *const ws[] = {
                "has \"quotes\"",
                "has\nnewlines\r\nand\ttabs",
                "back\\slash and \\\" both",
                "control \x01\x1f bytes",
                "UTF-8: caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x9a\x80",
                "</script><!-- ]}\"",
                "",
        };
        struct review rv;
        parse_ok(REVIEW_V1, &rv);
        struct mutation m;
        build_mutation(&m, DECISION_MUTATED);
        for (size_t i = 0; i < sizeof ws / sizeof ws[0]; i++)
                add_warning(&m, ws[i]);
        cJSON *root = respond(&rv, &m);
        assert_warnings(root, &m);
        cJSON_Delete(root);
        mutation_free(&m);

        /* WH_MAX_WARNINGS warnings of WH_MAX_WARNING_CHARS each. */
        mutation_init(&m);
        m.decision = DECISION_WOULD_MUTATE;
        for (unsigned i = 0; i < WH_MAX_WARNINGS; i++) {
                char w[WH_MAX_WARNING_CHARS + 1];
                memset(w, (int)('a' + i), WH_MAX_WARNING_CHARS);
                w[0] = '"';
                w[WH_MAX_WARNING_CHARS - 1] = '\n';
                w[WH_MAX_WARNING_CHARS] = '\0';
                add_warning(&m, w);
        }
        root = respond(&rv, &m);
        assert_warnings(root, &m);
        cJSON_Delete(root);
        mutation_free(&m);
        review_free(&rv);
}

/* The uid goes back as it came, escaped where needed. */
static void test_respond_uid_escaped(void **state)
{
        char *body = make_review("admission.k8s.io/v1", "\"uid\":\"a\\\"b\\\\c\\nd\\u00e9\"");
        struct review rv;
        parse_ok(body, &rv);
        assert_string_equal(rv.uid, "a\"b\\c\nd\xc3\xa9");
        cJSON *root = respond(&rv, NULL);       /* compares the uid */
        cJSON_Delete(root);
        review_free(&rv);
        free(body);
}

/* The response is bounded by the buffer it is written to. */
static void test_respond_bounded(void **state)
{
        struct review rv;
        parse_ok(REVIEW_V1, &rv);
        struct mutation m;
        build_mutation(&m, DECISION_MUTATED);
        struct buf out;
        buf_init(&out, 64);
        assert_int_equal(review_respond(&rv, &m, &out), -ENOBUFS);
        buf_free(&out);
        mutation_free(&m);
        review_free(&rv);
}

/* --- Status ------------------------------------------------------------- */

static void test_status_body(void **state)
{
        static const struct {
                int code;
                const char *reason;
        } cases[] = {
                { 400, "BadRequest" },
                { 404, "NotFound" },
                { 405, "MethodNotAllowed" },
                { 408, "Timeout" },
                { 413, "RequestEntityTooLarge" },
                { 415, "UnsupportedMediaType" },
                { 500, "InternalError" },
                { 503, "ServiceUnavailable" },
        };
        static const char *const messages[] = {
                "the body is not JSON (error near byte 3)",
                "",
                "say \"hi\"\nand \\ bye\t\x01",
                "caf\xc3\xa9 \xe2\x82\xac",
        };
        for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
                for (size_t k = 0; k < sizeof messages / sizeof messages[0]; k++) {
                        struct buf out;
                        buf_init(&out, 4096);
                        assert_int_equal(review_status_body(&out, cases[i].code, messages[k]), 0);
                        const char *end = NULL;
                        cJSON *st = cJSON_ParseWithLengthOpts(out.data, out.len + 1, &end, true);
                        if (!st)
                                fail_msg("the Status is not JSON: %s", out.data);
                        assert_true(cJSON_IsObject(st));
                        assert_string_equal(cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(st, "apiVersion")),
                                            "v1");
                        assert_string_equal(cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(st, "kind")),
                                            "Status");
                        assert_true(cJSON_IsObject(cJSON_GetObjectItemCaseSensitive(st, "metadata")));
                        assert_string_equal(cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(st, "status")),
                                            "Failure");
                        const cJSON *code = cJSON_GetObjectItemCaseSensitive(st, "code");
                        assert_true(cJSON_IsNumber(code));
                        assert_int_equal(code->valueint, cases[i].code);
                        assert_string_equal(cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(st, "reason")),
                                            cases[i].reason);
                        assert_string_equal(cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(st, "message")),
                                            messages[k]);
                        assert_int_equal(cJSON_GetArraySize(st), 7);
                        cJSON_Delete(st);
                        buf_free(&out);
                }
        }
}

/* The exact bytes of every Status either writer produced before there was
 * one (the server's HTTP errors and admission's), and 408 with them: the
 * server's answers and admission's may not drift apart again. */
static void test_status_body_bytes(void **state)
{
        static const struct {
                int code;
                const char *message;
                const char *body;
        } cases[] = {
                { 400, "the body is not JSON (error near byte 3)",
                  "{\"apiVersion\":\"v1\",\"kind\":\"Status\",\"metadata\":{},\"status\":\"Failure\",\"code\":400,"
                  "\"reason\":\"BadRequest\",\"message\":\"the body is not JSON (error near byte 3)\"}\n" },
                { 404, "no such path",
                  "{\"apiVersion\":\"v1\",\"kind\":\"Status\",\"metadata\":{},\"status\":\"Failure\",\"code\":404,"
                  "\"reason\":\"NotFound\",\"message\":\"no such path\"}\n" },
                { 405, "use POST",
                  "{\"apiVersion\":\"v1\",\"kind\":\"Status\",\"metadata\":{},\"status\":\"Failure\",\"code\":405,"
                  "\"reason\":\"MethodNotAllowed\",\"message\":\"use POST\"}\n" },
                { 408, "too slow",
                  "{\"apiVersion\":\"v1\",\"kind\":\"Status\",\"metadata\":{},\"status\":\"Failure\",\"code\":408,"
                  "\"reason\":\"Timeout\",\"message\":\"too slow\"}\n" },
                { 413, "the body passes 1024 bytes",
                  "{\"apiVersion\":\"v1\",\"kind\":\"Status\",\"metadata\":{},\"status\":\"Failure\",\"code\":413,"
                  "\"reason\":\"RequestEntityTooLarge\",\"message\":\"the body passes 1024 bytes\"}\n" },
                { 415, "say \"application/json\"",
                  "{\"apiVersion\":\"v1\",\"kind\":\"Status\",\"metadata\":{},\"status\":\"Failure\",\"code\":415,"
                  "\"reason\":\"UnsupportedMediaType\",\"message\":\"say \\\"application/json\\\"\"}\n" },
                { 500, "out of memory",
                  "{\"apiVersion\":\"v1\",\"kind\":\"Status\",\"metadata\":{},\"status\":\"Failure\",\"code\":500,"
                  "\"reason\":\"InternalError\",\"message\":\"out of memory\"}\n" },
                { 503, "",
                  "{\"apiVersion\":\"v1\",\"kind\":\"Status\",\"metadata\":{},\"status\":\"Failure\",\"code\":503,"
                  "\"reason\":\"ServiceUnavailable\",\"message\":\"\"}\n" },
        };
        for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
                struct buf out;
                buf_init(&out, 4096);
                assert_int_equal(review_status_body(&out, cases[i].code, cases[i].message), 0);
                assert_int_equal(out.len, strlen(cases[i].body));
                assert_memory_equal(out.data, cases[i].body, out.len);
                buf_free(&out);
        }
}

/* A body that does not fit says so. */
static void test_status_body_bounded(void **state)
{
        struct buf out;
        buf_init(&out, 64);
        assert_int_equal(review_status_body(&out, 400, "m"), -ENOBUFS);
        buf_free(&out);
}

/* Codes without a name of their own fall back to the class's. */
static void test_status_reason_fallback(void **state)
{
        static const struct {
                int code;
                const char *reason;
        } cases[] = {
                { 418, "BadRequest" },
                { 502, "InternalError" },
                { 504, "InternalError" },
        };
        for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
                struct buf out;
                buf_init(&out, 4096);
                assert_int_equal(review_status_body(&out, cases[i].code, "m"), 0);
                cJSON *st = cJSON_Parse(out.data);
                assert_non_null(st);
                assert_string_equal(cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(st, "reason")),
                                    cases[i].reason);
                cJSON_Delete(st);
                buf_free(&out);
        }
}

/* review_parse_cost() counts ',', '[' and '{' a word at a time: it must
 * agree with a count byte by byte, at every length and alignment, for every
 * byte value (0x80 and up included), and bytes next to a match or a NUL. */
static size_t cost_byte_by_byte(const char *body, size_t len)
{
        size_t values = 1;
        for (size_t i = 0; i < len; i++)
                values += body[i] == ',' || body[i] == '[' || body[i] == '{';
        return values * (sizeof(cJSON) + 2 * sizeof(void *)) + len;
}

static void test_parse_cost_counts_every_opener(void **state)
{
        (void)state;
        char buf[80];
        uint64_t seed = 0x9e3779b97f4a7c15ull;
        for (int round = 0; round < 20000; round++) {
                size_t len = (size_t)(round % 41), off = (size_t)(round % 8);
                for (size_t i = 0; i < len; i++) {
                        seed = seed * 6364136223846793005ull + 1442695040888963407ull;
                        unsigned v = (unsigned)(seed >> 33);
                        /* Half the bytes from the interesting few, half any byte. */
                        static const char few[] = { ',', '[', '{', '}', ']', '\0', '+', 'Z', (char)0xac, (char)0xfb };
                        buf[off + i] = (v & 1) ? few[(v >> 1) % sizeof few] : (char)(v >> 8);
                }
                assert_int_equal(review_parse_cost(buf + off, len), cost_byte_by_byte(buf + off, len));
        }
        static const char all[] = ",,,,,,,,[[[[[[[[{{{{{{{{";
        assert_int_equal(review_parse_cost(all, 24), cost_byte_by_byte(all, 24));
        assert_int_equal(review_parse_cost(all, 24), 25 * (sizeof(cJSON) + 2 * sizeof(void *)) + 24);
        assert_int_equal(review_parse_cost("", 0), sizeof(cJSON) + 2 * sizeof(void *));
}

int main(void)
{
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_parse_v1),
                cmocka_unit_test(test_parse_v1beta1),
                cmocka_unit_test(test_parse_minimal),
                cmocka_unit_test(test_name_fallback),
                cmocka_unit_test(test_is_pod),
                cmocka_unit_test(test_object_optional_elsewhere),
                cmocka_unit_test(test_parse_errors),
                cmocka_unit_test(test_parse_error_position),
                cmocka_unit_test(test_truncated),
                cmocka_unit_test(test_deep_nesting),
                cmocka_unit_test(test_small_error_buffer),
                cmocka_unit_test(test_free_zeroed),
                cmocka_unit_test(test_respond_allowed_no_mutation),
                cmocka_unit_test(test_respond_unchanged),
                cmocka_unit_test(test_respond_mutated),
                cmocka_unit_test(test_respond_mutated_empty_patch),
                cmocka_unit_test(test_respond_would_mutate),
                cmocka_unit_test(test_respond_denied),
                cmocka_unit_test(test_respond_warnings_escaped),
                cmocka_unit_test(test_respond_uid_escaped),
                cmocka_unit_test(test_respond_bounded),
                cmocka_unit_test(test_status_body),
                cmocka_unit_test(test_status_reason_fallback),
                cmocka_unit_test(test_status_body_bytes),
                cmocka_unit_test(test_status_body_bounded),
                cmocka_unit_test(test_parse_cost_counts_every_opener),
        };
        return cmocka_run_group_tests_name("review", tests, NULL, NULL);
}
