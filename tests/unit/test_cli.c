/* Unit tests for webhook/io/cli.c: key=value lists given once or over
 * repeated flags, whole numbers and sizes with their bounds, usage errors
 * and what each prints on stderr, and the namespace source the `mutate`
 * command hands to admission_handle(). */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cjson/cJSON.h>

#include "admission.h"
#include "cli.h"
#include "webhook_limits.h"

#include "fixture_files.h"

#define CMD "mutate"

#define assert_contains(s, sub)                                                 \
        do {                                                                    \
                if (!strstr((s), (sub)))                                        \
                        fail_msg("\"%s\" does not contain \"%s\"", (s), (sub)); \
        } while (0)

/* What the code under test writes on stderr between capture_begin() and
 * capture_end(). */
static struct {
        FILE *tmp;
        int saved;
        char text[4096];
} cap;

static void capture_begin(void)
{
        fflush(stderr);
        cap.tmp = tmpfile();
        assert_non_null(cap.tmp);
        cap.saved = dup(STDERR_FILENO);
        assert_true(cap.saved >= 0);
        assert_true(dup2(fileno(cap.tmp), STDERR_FILENO) >= 0);
}

static const char *capture_end(void)
{
        fflush(stderr);
        assert_true(dup2(cap.saved, STDERR_FILENO) >= 0);
        close(cap.saved);
        rewind(cap.tmp);
        size_t n = fread(cap.text, 1, sizeof cap.text - 1, cap.tmp);
        cap.text[n] = '\0';
        fclose(cap.tmp);
        return cap.text;
}

/* ---- key=value lists ---- */

static void test_kvs_split_in_place(void **state)
{
        char arg[] = "team=data,tier=gold,empty=";
        struct kv kv[CLI_KV_MAX];
        size_t n = 0;
        capture_begin();
        int r = cli_parse_kvs(CMD, "--namespace-labels", arg, kv, &n);
        const char *err = capture_end();
        assert_int_equal(r, 0);
        assert_string_equal(err, "");
        assert_int_equal(n, 3);
        assert_string_equal(kv[0].key, "team");
        assert_string_equal(kv[0].value, "data");
        assert_string_equal(kv[1].key, "tier");
        assert_string_equal(kv[1].value, "gold");
        assert_string_equal(kv[2].key, "empty");
        assert_string_equal(kv[2].value, "");
        /* In place: the strings point into the argument. */
        assert_ptr_equal(kv[0].key, arg);
        assert_true(kv[2].value >= arg && kv[2].value < arg + sizeof arg);
}

static void test_kvs_value_keeps_later_equals_and_empty_items_are_skipped(void **state)
{
        char arg[] = ",a=b=c,,spark-identity.io/identity=x,";
        struct kv kv[CLI_KV_MAX];
        size_t n = 0;
        assert_int_equal(cli_parse_kvs(CMD, "--namespace-annotations", arg, kv, &n), 0);
        assert_int_equal(n, 2);
        assert_string_equal(kv[0].key, "a");
        assert_string_equal(kv[0].value, "b=c");
        assert_string_equal(kv[1].key, "spark-identity.io/identity");
        assert_string_equal(kv[1].value, "x");
}

/* A flag given twice adds to what the first gave, in order: the list is
 * the flags' values one after the other. */
static void test_kvs_repeated_flags_accumulate_in_order(void **state)
{
        char first[] = "team=data,tier=gold";
        char second[] = "team=web";
        struct kv kv[CLI_KV_MAX];
        size_t n = 0;
        assert_int_equal(cli_parse_kvs(CMD, "--namespace-labels", first, kv, &n), 0);
        assert_int_equal(cli_parse_kvs(CMD, "--namespace-labels", second, kv, &n), 0);
        assert_int_equal(n, 3);
        assert_string_equal(kv[0].key, "team");
        assert_string_equal(kv[0].value, "data");
        assert_string_equal(kv[2].key, "team");
        assert_string_equal(kv[2].value, "web");
}

static void test_kvs_refuse_items_without_a_key_or_equals(void **state)
{
        static const char *const bad[] = { "novalue", "=value", "a=1,=2", "a=1,b" };
        for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
                char arg[64];
                struct kv kv[CLI_KV_MAX];
                size_t n = 0;
                snprintf(arg, sizeof arg, "%s", bad[i]);
                capture_begin();
                int r = cli_parse_kvs(CMD, "--namespace-labels", arg, kv, &n);
                const char *err = capture_end();
                assert_int_equal(r, 2);
                assert_contains(err, CMD ": --namespace-labels wants key=value[,key=value...], not \"");
                assert_contains(err, "(see 'spark-identity-webhook help " CMD "')");
                assert_true(n <= 1);   /* what came before the bad item only */
        }
}

static void test_kvs_bounded_by_cli_kv_max(void **state)
{
        struct kv kv[CLI_KV_MAX];
        size_t n = 0;
        char arg[CLI_KV_MAX * 8 + 16];
        size_t len = 0;
        for (unsigned i = 0; i < CLI_KV_MAX; i++)
                len += (size_t)snprintf(arg + len, sizeof arg - len, "%sk%u=v", i ? "," : "", i);
        assert_int_equal(cli_parse_kvs(CMD, "--namespace-labels", arg, kv, &n), 0);
        assert_int_equal(n, CLI_KV_MAX);
        assert_string_equal(kv[CLI_KV_MAX - 1].key, "k63");

        /* One more, in a repeated flag: refused, nothing written past the array. */
        char more[] = "extra=1";
        capture_begin();
        int r = cli_parse_kvs(CMD, "--namespace-labels", more, kv, &n);
        const char *err = capture_end();
        assert_int_equal(r, 2);
        assert_int_equal(n, CLI_KV_MAX);
        char want[64];
        snprintf(want, sizeof want, "more than %u pairs", CLI_KV_MAX);
        assert_contains(err, want);
}

/* ---- numbers and sizes ---- */

static void test_uint_in_range(void **state)
{
        unsigned long long v = 0;
        assert_int_equal(cli_uint(CMD, "--threads", "0", 0, WH_MAX_THREADS, &v), 0);
        assert_int_equal(v, 0);
        assert_int_equal(cli_uint(CMD, "--threads", "64", 0, WH_MAX_THREADS, &v), 0);
        assert_int_equal(v, WH_MAX_THREADS);
        assert_int_equal(cli_uint(CMD, "--max", "18446744073709551615", 0, ULLONG_MAX, &v), 0);
        assert_true(v == ULLONG_MAX);
}

static void test_uint_refuses_what_is_not_a_whole_number(void **state)
{
        static const char *const bad[] = { "",   "x",   "12x",  "1.5",
                                           "-1", "12K", "0x10", "18446744073709551616" /* ULLONG_MAX + 1 */ };
        for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
                unsigned long long v = 7;
                capture_begin();
                int r = cli_uint(CMD, "--threads", bad[i], 0, ULLONG_MAX, &v);
                const char *err = capture_end();
                if (r != -EINVAL)
                        fail_msg("\"%s\": %d", bad[i], r);
                assert_int_equal(v, 7);   /* untouched */
                char want[128];
                snprintf(want, sizeof want, CMD ": --threads wants a whole number, not \"%s\"\n", bad[i]);
                assert_string_equal(err, want);
        }
}

static void test_uint_bounds(void **state)
{
        unsigned long long v = 7;
        capture_begin();
        int r = cli_uint(CMD, "--threads", "65", 1, WH_MAX_THREADS, &v);
        const char *err = capture_end();
        assert_int_equal(r, -EINVAL);
        assert_int_equal(v, 7);
        assert_string_equal(err, CMD ": --threads must be between 1 and 64, not 65\n");
        capture_begin();
        r = cli_uint(CMD, "--threads", "0", 1, WH_MAX_THREADS, &v);
        capture_end();
        assert_int_equal(r, -EINVAL);
        assert_int_equal(v, 7);
}

static void test_size_suffixes(void **state)
{
        static const struct {
                const char *s;
                unsigned long long want;
        } cases[] = {
                { "65536", 65536 },
                { "64K", 64ull << 10 },
                { "64k", 64ull << 10 },
                { "64Ki", 64ull << 10 },
                { "64KiB", 64ull << 10 },
                { "64KB", 64ull << 10 },
                { "8M", 8ull << 20 },
                { "8m", 8ull << 20 },
                { "1G", 1ull << 30 },
                { "2g", 2ull << 30 },
                { "0K", 0 },
        };
        for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
                unsigned long long v = 0;
                if (cli_size(CMD, "--request-memory", cases[i].s, 0, 1ull << 40, &v) != 0)
                        fail_msg("\"%s\" refused", cases[i].s);
                if (v != cases[i].want)
                        fail_msg("\"%s\": %llu, want %llu", cases[i].s, v, cases[i].want);
        }
}

static void test_size_refuses_bad_suffixes(void **state)
{
        static const char *const bad[] = { "64X", "64T", "64Kx", "64KiBs", "64 K", "K", "", "-1K", "1.5M" };
        for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
                unsigned long long v = 7;
                capture_begin();
                int r = cli_size(CMD, "--max-body", bad[i], 0, 1ull << 40, &v);
                const char *err = capture_end();
                if (r != -EINVAL)
                        fail_msg("\"%s\": %d", bad[i], r);
                assert_int_equal(v, 7);
                char want[128];
                snprintf(want, sizeof want, CMD ": --max-body wants a size like 65536, 64K or 8M, not \"%s\"\n",
                         bad[i]);
                assert_string_equal(err, want);
        }
}

/* A size past the maximum once its suffix multiplies it is refused, even
 * when the multiplication itself would wrap. */
static void test_size_bounds_after_the_suffix(void **state)
{
        unsigned long long v = 7;
        assert_int_equal(
                cli_size(CMD, "--request-memory", "64M", WH_REQUEST_MEMORY_MIN_BYTES, WH_REQUEST_MEMORY_BYTES, &v), 0);
        assert_int_equal(v, WH_REQUEST_MEMORY_BYTES);
        v = 7;
        capture_begin();
        int r = cli_size(CMD, "--request-memory", "65M", WH_REQUEST_MEMORY_MIN_BYTES, WH_REQUEST_MEMORY_BYTES, &v);
        const char *err = capture_end();
        assert_int_equal(r, -EINVAL);
        assert_int_equal(v, 7);
        assert_contains(err, "--request-memory must be between");
        assert_contains(err, "not 65M");
        capture_begin();
        r = cli_size(CMD, "--request-memory", "3M", WH_REQUEST_MEMORY_MIN_BYTES, WH_REQUEST_MEMORY_BYTES, &v);
        capture_end();
        assert_int_equal(r, -EINVAL);
        /* 2^34 G = 2^64 would wrap an unsigned long long to 0. */
        capture_begin();
        r = cli_size(CMD, "--max-body", "17179869184G", 1024, 1ull << 30, &v);
        capture_end();
        assert_int_equal(r, -EINVAL);
        assert_int_equal(v, 7);
}

/* ---- usage errors ---- */

static void test_usage_error(void **state)
{
        capture_begin();
        int r = cli_usage_error(CMD, "unknown option %s", "--bogus");
        const char *err = capture_end();
        assert_int_equal(r, 2);
        assert_string_equal(err, CMD ": unknown option --bogus (see 'spark-identity-webhook help " CMD "')\n");
}

/* What getopt_long() returns for argv under ":h" and --out VALUE, and what
 * cli_getopt_error() then prints. */
static const char *getopt_error_for(int argc, char **argv, int *ret)
{
        static const struct option longopts[] = {
                { "out", required_argument, NULL, 'o' },
                { "help", no_argument, NULL, 'h' },
                { 0 },
        };
        int c;

        optind = 1;
        opterr = 0;
        while ((c = getopt_long(argc, argv, ":h", longopts, NULL)) == 'o')
                ;
        assert_true(c == ':' || c == '?');
        capture_begin();
        *ret = cli_getopt_error(CMD, c, argv);
        return capture_end();
}

static void test_getopt_error_unknown_option(void **state)
{
        char *argv[] = { CMD, "--out", "x", "--bogus", "y", NULL };
        int r;
        const char *err = getopt_error_for(5, argv, &r);

        assert_int_equal(r, 2);
        assert_string_equal(err, CMD ": unknown option --bogus (see 'spark-identity-webhook help " CMD "')\n");
        char *argv2[] = { CMD, "--bogus=1", NULL };
        err = getopt_error_for(2, argv2, &r);
        assert_int_equal(r, 2);
        assert_string_equal(err, CMD ": unknown option --bogus=1 (see 'spark-identity-webhook help " CMD "')\n");
        char *argv3[] = { CMD, "-x", NULL };
        err = getopt_error_for(2, argv3, &r);
        assert_string_equal(err, CMD ": unknown option -x (see 'spark-identity-webhook help " CMD "')\n");
}

static void test_getopt_error_needs_a_value(void **state)
{
        char *argv[] = { CMD, "--out", "x", "--out", NULL };
        int r;
        const char *err = getopt_error_for(4, argv, &r);

        assert_int_equal(r, 2);
        assert_string_equal(err, CMD ": --out needs a value (see 'spark-identity-webhook help " CMD "')\n");
}

/* ---- the namespace source ---- */

static const char policy_text[] =
        "namespaces:\n"
        "  team-a: {identity: sparkaks}\n"
        "selectors:\n"
        "  - {name: data, namespaceSelector: {matchLabels: {team: data}}, identity: data-spark}\n"
        "namespaceAnnotations: true\n"
        "unmatched: allow\n";

/* The driver fixture, moved to namespace `ns`. */
static char *driver_in(const char *ns)
{
        char *text = fixture_text("spark35-driver.json");
        cJSON *review = cJSON_Parse(text);
        free(text);
        assert_non_null(review);
        cJSON *req = cJSON_GetObjectItem(review, "request");
        cJSON_ReplaceItemInObject(req, "namespace", cJSON_CreateString(ns));
        cJSON_ReplaceItemInObject(cJSON_GetObjectItem(cJSON_GetObjectItem(req, "object"), "metadata"), "namespace",
                                  cJSON_CreateString(ns));
        char *out = cJSON_PrintUnformatted(review);
        cJSON_Delete(review);
        assert_non_null(out);
        return out;
}

static const char *identity_of(const struct admission *a)
{
        return a->decided ? a->mutation.identity_after : NULL;
}

static void test_ns_known_answers_with_the_flags(void **state)
{
        struct policy *p = load_policy(policy_text);
        struct cli_namespace ns = { 0 };
        char labels[] = "team=data";
        assert_int_equal(cli_parse_kvs(CMD, "--namespace-labels", labels, ns.labels, &ns.n_labels), 0);
        struct ns_known src = cli_ns_known(&ns);

        assert_int_equal(src.state, NS_FOUND);
        assert_int_equal(src.info.n_labels, 1);
        assert_ptr_equal(src.info.labels, ns.labels);
        assert_int_equal(src.info.n_annotations, 0);

        /* Through admission: the selector matches the labels given. */
        char *body = driver_in("analytics");
        struct admission a;
        admission_init(&a, WH_MAX_RESPONSE_BYTES);
        assert_int_equal(admission_handle(p, &src, body, strlen(body), &a), 0);
        assert_int_equal(a.status, 200);
        assert_non_null(identity_of(&a));
        assert_string_equal(identity_of(&a), "data-spark");
        admission_free(&a);

        /* Without the label the selector does not match: unchanged. */
        struct cli_namespace none = { 0 };
        struct ns_known bare = cli_ns_known(&none);
        admission_init(&a, WH_MAX_RESPONSE_BYTES);
        assert_int_equal(admission_handle(p, &bare, body, strlen(body), &a), 0);
        assert_int_equal(a.status, 200);
        assert_int_equal(a.mutation.decision, DECISION_UNCHANGED);
        admission_free(&a);

        free(body);
        policy_free(p);
}

int main(void)
{
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_kvs_split_in_place),
                cmocka_unit_test(test_kvs_value_keeps_later_equals_and_empty_items_are_skipped),
                cmocka_unit_test(test_kvs_repeated_flags_accumulate_in_order),
                cmocka_unit_test(test_kvs_refuse_items_without_a_key_or_equals),
                cmocka_unit_test(test_kvs_bounded_by_cli_kv_max),
                cmocka_unit_test(test_uint_in_range),
                cmocka_unit_test(test_uint_refuses_what_is_not_a_whole_number),
                cmocka_unit_test(test_uint_bounds),
                cmocka_unit_test(test_size_suffixes),
                cmocka_unit_test(test_size_refuses_bad_suffixes),
                cmocka_unit_test(test_size_bounds_after_the_suffix),
                cmocka_unit_test(test_usage_error),
                cmocka_unit_test(test_getopt_error_unknown_option),
                cmocka_unit_test(test_getopt_error_needs_a_value),
                cmocka_unit_test(test_ns_known_answers_with_the_flags),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
