/* Unit tests for webhook/io/log.c: every line is one valid JSON object, a
 * field that does not fit is dropped whole and named, decision lines go to
 * the audit file. Lines are read back from the descriptors they go to. */
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

#include "log.h"
#include "webhook_limits.h"

/* Runs with stderr on a temporary file; returns what was written. */
static int saved_stderr = -1;
static FILE *capture;

static void capture_begin(void)
{
        fflush(stderr);
        capture = tmpfile();
        assert_non_null(capture);
        saved_stderr = dup(STDERR_FILENO);
        assert_true(dup2(fileno(capture), STDERR_FILENO) >= 0);
}

static char *capture_end(void)
{
        fflush(stderr);
        assert_true(dup2(saved_stderr, STDERR_FILENO) >= 0);
        close(saved_stderr);
        long n = ftell(capture);
        assert_true(n >= 0);
        char *out = calloc(1, (size_t)n + 1);
        rewind(capture);
        assert_int_equal(fread(out, 1, (size_t)n, capture), (size_t)n);
        fclose(capture);
        return out;
}

/* The one line written, parsed; fails unless it is exactly one JSON object. */
static cJSON *one_line(const char *text)
{
        const char *nl = strchr(text, '\n');
        assert_non_null(nl);
        assert_int_equal(nl[1], '\0');
        cJSON *j = cJSON_ParseWithLength(text, (size_t)(nl - text));
        if (!cJSON_IsObject(j))
                fail_msg("not a JSON object: %.300s", text);
        return j;
}

static void test_line_is_json(void **state)
{
        capture_begin();
        struct log_line l;
        log_begin(&l, LOG_INFO, "policy \"loaded\"\n");
        log_str(&l, "sha256", "ab\001cd");
        log_int(&l, "n", -42);
        log_bool(&l, "ok", true);
        log_raw(&l, "list", "[1,2]");
        log_str(&l, "absent", NULL);
        log_end(&l);
        char *text = capture_end();
        cJSON *j = one_line(text);
        assert_string_equal(cJSON_GetObjectItem(j, "msg")->valuestring, "policy \"loaded\"\n");
        assert_string_equal(cJSON_GetObjectItem(j, "level")->valuestring, "info");
        assert_string_equal(cJSON_GetObjectItem(j, "sha256")->valuestring, "ab\001cd");
        assert_int_equal(cJSON_GetObjectItem(j, "n")->valueint, -42);
        assert_true(cJSON_IsTrue(cJSON_GetObjectItem(j, "ok")));
        assert_int_equal(cJSON_GetArraySize(cJSON_GetObjectItem(j, "list")), 2);
        assert_null(cJSON_GetObjectItem(j, "absent"));
        assert_null(cJSON_GetObjectItem(j, "truncated"));
        cJSON_Delete(j);
        free(text);
}

/* A 256 KiB patch in a 64 KiB line: the patch goes, the rest stays, and
 * the line says what went. The fields after it still fit. */
static void test_field_that_does_not_fit_is_dropped_and_named(void **state)
{
        size_t n = 256u * 1024u;
        char *big = malloc(n + 3);
        big[0] = '[';
        memset(big + 1, '1', n);
        big[n + 1] = ']';
        big[n + 2] = '\0';
        char *str = malloc(WH_LOG_LINE_MAX + 1);
        memset(str, 'x', WH_LOG_LINE_MAX);
        str[WH_LOG_LINE_MAX] = '\0';

        capture_begin();
        struct log_line l;
        log_begin_audit(&l, LOG_WARN, "admission");
        log_str(&l, "uid", "u-1");
        log_raw(&l, "patch", big);
        log_str(&l, "reason", str);
        log_int(&l, "micros", 31);
        log_end(&l);
        char *text = capture_end();
        assert_true(strlen(text) <= WH_LOG_LINE_MAX);
        cJSON *j = one_line(text);
        assert_string_equal(cJSON_GetObjectItem(j, "uid")->valuestring, "u-1");
        assert_null(cJSON_GetObjectItem(j, "patch"));
        assert_null(cJSON_GetObjectItem(j, "reason"));
        assert_int_equal(cJSON_GetObjectItem(j, "micros")->valueint, 31);
        const cJSON *t = cJSON_GetObjectItem(j, "truncated");
        assert_int_equal(cJSON_GetArraySize(t), 2);
        assert_string_equal(cJSON_GetArrayItem(t, 0)->valuestring, "patch");
        assert_string_equal(cJSON_GetArrayItem(t, 1)->valuestring, "reason");
        cJSON_Delete(j);
        free(text);
        free(big);
        free(str);
}

/* A field that just fits, and many that do not: still one valid line. */
static void test_many_fields_up_to_the_bound(void **state)
{
        char value[1000];
        memset(value, 'v', sizeof value - 1);
        value[sizeof value - 1] = '\0';
        static const char *const keys[] = { "k0", "k1", "k2", "k3", "k4", "k5", "k6", "k7", "k8", "k9" };
        capture_begin();
        struct log_line l;
        log_begin(&l, LOG_ERROR, "many");
        for (int i = 0; i < 200; i++)
                log_str(&l, keys[i % 10], value);
        log_end(&l);
        char *text = capture_end();
        assert_true(strlen(text) <= WH_LOG_LINE_MAX);
        cJSON *j = one_line(text);
        const cJSON *t = cJSON_GetObjectItem(j, "truncated");
        assert_int_equal(cJSON_GetArraySize(t), WH_LOG_MAX_TRUNCATED);
        cJSON_Delete(j);
        free(text);
}

static void test_levels_and_one_call_form(void **state)
{
        capture_begin();
        log_set_level(LOG_WARN);
        log_message(LOG_INFO, "quiet", "not shown");
        log_message(LOG_ERROR, "loud", "shown");
        log_set_level(LOG_INFO);
        char *text = capture_end();
        cJSON *j = one_line(text);
        assert_string_equal(cJSON_GetObjectItem(j, "msg")->valuestring, "loud");
        assert_string_equal(cJSON_GetObjectItem(j, "error")->valuestring, "shown");
        cJSON_Delete(j);
        free(text);
}

/* Decision lines go to --audit-log, whatever the level; others to stderr. */
static void test_audit_file(void **state)
{
        char path[] = "/tmp/test_log_XXXXXX";
        int fd = mkstemp(path);
        assert_true(fd >= 0);
        close(fd);
        char err[256];
        assert_int_equal(log_set_audit_file(path, err, sizeof err), 0);
        capture_begin();
        log_set_level(LOG_ERROR);
        struct log_line l;
        log_begin_audit(&l, LOG_INFO, "admission");
        log_str(&l, "decision", "denied");
        log_end(&l);
        log_message(LOG_WARN, "not a decision", NULL);
        log_set_level(LOG_INFO);
        char *text = capture_end();
        assert_string_equal(text, "");
        free(text);
        FILE *f = fopen(path, "r");
        char line[512];
        assert_non_null(fgets(line, sizeof line, f));
        fclose(f);
        unlink(path);
        cJSON *j = one_line(line);
        assert_string_equal(cJSON_GetObjectItem(j, "decision")->valuestring, "denied");
        cJSON_Delete(j);
}

int main(void)
{
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_line_is_json),
                cmocka_unit_test(test_field_that_does_not_fit_is_dropped_and_named),
                cmocka_unit_test(test_many_fields_up_to_the_bound),
                cmocka_unit_test(test_levels_and_one_call_form),
                cmocka_unit_test(test_audit_file),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
