/* The audit outputs, from findings made on the real fixtures: the table's
 * columns and summary, the JSON document, the PolicyReports and their bound
 * on results. */

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

#include "audit_report.h"
#include "buf.h"
#include "findings.h"
#include "policy.h"


struct fixture {
        struct policy *policy;
        struct findings f;
        struct audit_report_info info;
        char *out;
        size_t len;
};

static void add(struct fixture *fx, const char *file, const char *ns, const char *uid)
{
        cJSON *pod = fixture_pod(file);
        if (uid)
                cJSON_AddStringToObject(cJSON_GetObjectItem(pod, "metadata"), "uid", uid);
        assert_int_equal(findings_check_pod(fx->policy, ns, NULL, pod, &fx->f, NULL), 0);
        cJSON_Delete(pod);
}

/* Pods in an order the outputs must sort: team-x before team-a, and so on. */
static int setup(void **state)
{
        struct fixture *fx = calloc(1, sizeof *fx);
        fx->policy = fixture_policy("policy.yaml");
        findings_init(&fx->f, 100);
        add(fx, "rogue-pod.json", "team-x", "uid-rogue");                   /* foreign-identity */
        add(fx, "spark35-driver.json", "team-a", "uid-driver");             /* missing-identity, jvm */
        add(fx, "spark35-driver-mutated.json", "team-a", NULL);             /* compliant */
        add(fx, "nginx-pod.json", "team-a", NULL);                          /* not concerned */
        add(fx, "spark35-driver-foreign-identity.json", "team-a", NULL);    /* wrong, foreign, jvm */
        add(fx, "spark35-executor.json", "team-c", NULL);                   /* audit mode: missing, jvm */
        add(fx, "spark35-driver.json", "team-off", NULL);                   /* off */
        fx->info = (struct audit_report_info){
                .source = "pods.json",
                .policy_path = "policy.yaml",
                .policy_sha256 = "abc123",
                .time = 1718093692,
                .max_findings = 100,
                .namespaces_known = true,
        };
        *state = fx;
        return 0;
}

static int teardown(void **state)
{
        struct fixture *fx = *state;
        findings_free(&fx->f);
        policy_free(fx->policy);
        free(fx->out);
        free(fx);
        return 0;
}

static FILE *capture(struct fixture *fx)
{
        free(fx->out);
        fx->out = NULL;
        FILE *fp = open_memstream(&fx->out, &fx->len);
        assert_non_null(fp);
        return fp;
}

static void test_json(void **state)
{
        struct fixture *fx = *state;
        FILE *fp = capture(fx);
        assert_int_equal(audit_report_json(&fx->f, &fx->info, fp), 0);
        fclose(fp);
        cJSON *doc = cJSON_Parse(fx->out);
        if (!doc)
                fail_msg("not JSON:\n%s", fx->out);
        const cJSON *s = cJSON_GetObjectItem(doc, "summary");
        assert_int_equal(cJSON_GetObjectItem(s, "pods")->valueint, 7);
        assert_int_equal(cJSON_GetObjectItem(s, "sparkPods")->valueint, 5);
        assert_int_equal(cJSON_GetObjectItem(s, "compliant")->valueint, 1);
        assert_int_equal(cJSON_GetObjectItem(s, "withFindings")->valueint, 4);
        assert_int_equal(cJSON_GetObjectItem(s, "off")->valueint, 1);
        assert_int_equal(cJSON_GetObjectItem(s, "notConcerned")->valueint, 1);
        assert_int_equal(cJSON_GetObjectItem(s, "unknown")->valueint, 0);
        assert_int_equal(cJSON_GetObjectItem(s, "findings")->valueint, 8);
        assert_int_equal(cJSON_GetObjectItem(s, "findingsListed")->valueint, 8);
        assert_string_equal(cJSON_GetObjectItem(s, "policySha256")->valuestring, "abc123");
        assert_string_equal(cJSON_GetObjectItem(s, "time")->valuestring, "2024-06-11T08:14:52Z");
        const cJSON *problems = cJSON_GetObjectItem(s, "problems");
        assert_int_equal(cJSON_GetObjectItem(problems, "missing-identity")->valueint, 2);
        assert_int_equal(cJSON_GetObjectItem(problems, "wrong-identity")->valueint, 1);
        assert_int_equal(cJSON_GetObjectItem(problems, "foreign-identity")->valueint, 2);
        assert_int_equal(cJSON_GetObjectItem(problems, "missing-jvm-settings")->valueint, 3);
        assert_int_equal(cJSON_GetObjectItem(problems, "no-policy")->valueint, 0);

        const cJSON *nss = cJSON_GetObjectItem(s, "namespaces");
        assert_int_equal(cJSON_GetArraySize(nss), 4);
        const cJSON *first = cJSON_GetArrayItem(nss, 0), *last = cJSON_GetArrayItem(nss, 3);
        assert_string_equal(cJSON_GetObjectItem(first, "namespace")->valuestring, "team-a");
        assert_string_equal(cJSON_GetObjectItem(first, "rule")->valuestring, "team-a");
        assert_int_equal(cJSON_GetObjectItem(first, "pods")->valueint, 4);
        assert_string_equal(cJSON_GetObjectItem(last, "namespace")->valuestring, "team-x");
        assert_true(cJSON_IsNull(cJSON_GetObjectItem(last, "rule")));

        /* Sorted by namespace, pod, problem. */
        const cJSON *findings = cJSON_GetObjectItem(doc, "findings"), *it;
        assert_int_equal(cJSON_GetArraySize(findings), 8);
        char prev[512] = "";
        cJSON_ArrayForEach(it, findings) {
                char key[512];
                snprintf(key, sizeof key, "%s/%s", cJSON_GetObjectItem(it, "namespace")->valuestring,
                         cJSON_GetObjectItem(it, "pod")->valuestring);
                assert_true(strcmp(prev, key) <= 0);
                snprintf(prev, sizeof prev, "%s", key);
                for (const char *const *k = (const char *const[]){ "role", "appId", "problem", "expected", "found",
                                                                   "rule", "mode", "uid", "phase", NULL };
                     *k; k++)
                        if (!cJSON_HasObjectItem(it, *k))
                                fail_msg("a finding without %s", *k);
        }
        it = cJSON_GetArrayItem(findings, 0);
        assert_string_equal(cJSON_GetObjectItem(it, "pod")->valuestring, "spark-pi-84bba090065d3cdb-driver");
        assert_string_equal(cJSON_GetObjectItem(it, "problem")->valuestring, "missing-identity");
        assert_string_equal(cJSON_GetObjectItem(it, "role")->valuestring, "driver");
        assert_string_equal(cJSON_GetObjectItem(it, "uid")->valuestring, "uid-driver");
        assert_string_equal(cJSON_GetObjectItem(it, "expected")->valuestring, "aadpodidbinding=sparkaks");
        it = cJSON_GetArrayItem(findings, 7);
        assert_string_equal(cJSON_GetObjectItem(it, "namespace")->valuestring, "team-x");
        assert_true(cJSON_IsNull(cJSON_GetObjectItem(it, "role")));
        assert_true(cJSON_IsNull(cJSON_GetObjectItem(it, "appId")));
        it = cJSON_GetArrayItem(findings, 5);
        assert_string_equal(cJSON_GetObjectItem(it, "namespace")->valuestring, "team-c");
        assert_string_equal(cJSON_GetObjectItem(it, "mode")->valuestring, "audit");
        cJSON_Delete(doc);
}

static void test_json_empty(void **state)
{
        struct fixture *fx = *state;
        struct findings empty;
        findings_init(&empty, 10);
        FILE *fp = capture(fx);
        assert_int_equal(audit_report_json(&empty, &fx->info, fp), 0);
        fclose(fp);
        cJSON *doc = cJSON_Parse(fx->out);
        assert_non_null(doc);
        assert_int_equal(cJSON_GetArraySize(cJSON_GetObjectItem(doc, "findings")), 0);
        assert_int_equal(cJSON_GetObjectItem(cJSON_GetObjectItem(doc, "summary"), "pods")->valueint, 0);
        cJSON_Delete(doc);
        findings_free(&empty);
}

static const cJSON *report_of(const cJSON *list, const char *ns)
{
        const cJSON *it;
        cJSON_ArrayForEach(it, cJSON_GetObjectItem(list, "items"))
                if (strcmp(cJSON_GetObjectItem(cJSON_GetObjectItem(it, "metadata"), "namespace")->valuestring, ns) == 0)
                        return it;
        return NULL;
}

static void test_policyreports(void **state)
{
        struct fixture *fx = *state;
        size_t left_out = 99;
        FILE *fp = capture(fx);
        assert_int_equal(audit_report_policyreports(&fx->f, &fx->info, fp, &left_out), 0);
        fclose(fp);
        assert_int_equal(left_out, 0);
        cJSON *list = cJSON_Parse(fx->out);
        if (!list)
                fail_msg("not JSON:\n%s", fx->out);
        assert_string_equal(cJSON_GetObjectItem(list, "kind")->valuestring, "List");
        assert_string_equal(cJSON_GetObjectItem(list, "apiVersion")->valuestring, "v1");
        /* team-a, team-c, team-off (nothing judged there: an empty report), team-x. */
        assert_int_equal(cJSON_GetArraySize(cJSON_GetObjectItem(list, "items")), 4);
        const cJSON *off = report_of(list, "team-off");
        assert_non_null(off);
        assert_int_equal(cJSON_GetArraySize(cJSON_GetObjectItem(off, "results")), 0);
        assert_int_equal(cJSON_GetObjectItem(cJSON_GetObjectItem(off, "summary"), "pass")->valueint, 0);
        assert_int_equal(cJSON_GetObjectItem(cJSON_GetObjectItem(off, "summary"), "fail")->valueint, 0);

        const cJSON *a = report_of(list, "team-a");
        assert_non_null(a);
        assert_string_equal(cJSON_GetObjectItem(a, "apiVersion")->valuestring, "wgpolicyk8s.io/v1alpha2");
        assert_string_equal(cJSON_GetObjectItem(a, "kind")->valuestring, "PolicyReport");
        const cJSON *md = cJSON_GetObjectItem(a, "metadata");
        assert_string_equal(cJSON_GetObjectItem(md, "name")->valuestring, AUDIT_REPORT_NAME);
        assert_string_equal(
                cJSON_GetObjectItem(cJSON_GetObjectItem(md, "annotations"), AUDIT_REPORT_LEFT_OUT_ANNOTATION)
                        ->valuestring,
                "0");
        const cJSON *sum = cJSON_GetObjectItem(a, "summary");
        assert_int_equal(cJSON_GetObjectItem(sum, "pass")->valueint, 1);
        assert_int_equal(cJSON_GetObjectItem(sum, "fail")->valueint, 5);
        assert_int_equal(cJSON_GetObjectItem(sum, "skip")->valueint, 0);
        const cJSON *results = cJSON_GetObjectItem(a, "results"), *r;
        assert_int_equal(cJSON_GetArraySize(results), 5);
        cJSON_ArrayForEach(r, results) {
                assert_string_equal(cJSON_GetObjectItem(r, "policy")->valuestring, AUDIT_REPORT_POLICY);
                assert_string_equal(cJSON_GetObjectItem(r, "result")->valuestring, "fail");
                assert_non_null(cJSON_GetObjectItem(r, "message")->valuestring);
                const cJSON *res = cJSON_GetArrayItem(cJSON_GetObjectItem(r, "resources"), 0);
                assert_string_equal(cJSON_GetObjectItem(res, "kind")->valuestring, "Pod");
                assert_string_equal(cJSON_GetObjectItem(res, "apiVersion")->valuestring, "v1");
                assert_string_equal(cJSON_GetObjectItem(res, "namespace")->valuestring, "team-a");
                /* properties is a map of strings (the CRD says so). */
                const cJSON *pv;
                cJSON_ArrayForEach(pv, cJSON_GetObjectItem(r, "properties"))
                        assert_true(cJSON_IsString(pv));
                assert_int_equal(cJSON_GetObjectItem(cJSON_GetObjectItem(r, "timestamp"), "seconds")->valuedouble,
                                 1718093692);
        }
        r = cJSON_GetArrayItem(results, 0);
        assert_string_equal(cJSON_GetObjectItem(r, "rule")->valuestring, "missing-identity");
        assert_string_equal(cJSON_GetObjectItem(r, "message")->valuestring,
                            "Spark pod without its namespace's Azure identity: expected aadpodidbinding=sparkaks; "
                            "found no aadpodidbinding label");
        assert_string_equal(
                cJSON_GetObjectItem(cJSON_GetArrayItem(cJSON_GetObjectItem(r, "resources"), 0), "uid")->valuestring,
                "uid-driver");

        const cJSON *x = report_of(list, "team-x");
        r = cJSON_GetArrayItem(cJSON_GetObjectItem(x, "results"), 0);
        assert_string_equal(cJSON_GetObjectItem(r, "rule")->valuestring, "foreign-identity");
        assert_string_equal(cJSON_GetObjectItem(r, "severity")->valuestring, "high");
        cJSON_Delete(list);
}

/* Namespaces known to exist get a report even without pods, so that an
 * earlier report of theirs is emptied; the order is the namespaces'. */
static void test_policyreports_for_known_namespaces(void **state)
{
        struct fixture *fx = *state;
        static const char *const known[] = { "aa-empty", "team-a", "team-b", "zz-empty" };
        fx->info.namespaces = known;
        fx->info.n_namespaces = 4;
        FILE *fp = capture(fx);
        assert_int_equal(audit_report_policyreports(&fx->f, &fx->info, fp, NULL), 0);
        fclose(fp);
        cJSON *list = cJSON_Parse(fx->out);
        assert_non_null(list);
        static const char *const want[] = {
                "aa-empty", "team-a", "team-b", "team-c", "team-off", "team-x", "zz-empty"
        };
        const cJSON *items = cJSON_GetObjectItem(list, "items");
        assert_int_equal(cJSON_GetArraySize(items), 7);
        for (int i = 0; i < 7; i++)
                assert_string_equal(
                        cJSON_GetObjectItem(cJSON_GetObjectItem(cJSON_GetArrayItem(items, i), "metadata"), "namespace")
                                ->valuestring,
                        want[i]);
        const cJSON *b = report_of(list, "team-b");
        assert_int_equal(cJSON_GetArraySize(cJSON_GetObjectItem(b, "results")), 0);
        assert_int_equal(cJSON_GetObjectItem(cJSON_GetObjectItem(b, "summary"), "fail")->valueint, 0);
        assert_int_equal(cJSON_GetArraySize(cJSON_GetObjectItem(report_of(list, "team-a"), "results")), 5);
        assert_int_equal(cJSON_GetArraySize(cJSON_GetObjectItem(report_of(list, "team-x"), "results")), 1);
        cJSON_Delete(list);
}

static void test_policyreports_bounded(void **state)
{
        struct fixture *fx = *state;
        size_t left_out = 0;
        fx->info.max_results = 2;
        FILE *fp = capture(fx);
        assert_int_equal(audit_report_policyreports(&fx->f, &fx->info, fp, &left_out), 0);
        fclose(fp);
        /* team-a: 5 findings, 2 listed; team-c: 2, 2; team-x: 1, 1. */
        assert_int_equal(left_out, 3);
        cJSON *list = cJSON_Parse(fx->out);
        assert_non_null(list);
        const cJSON *a = report_of(list, "team-a");
        assert_int_equal(cJSON_GetArraySize(cJSON_GetObjectItem(a, "results")), 2);
        assert_int_equal(cJSON_GetObjectItem(cJSON_GetObjectItem(a, "summary"), "fail")->valueint, 5);
        assert_string_equal(cJSON_GetObjectItem(cJSON_GetObjectItem(cJSON_GetObjectItem(a, "metadata"), "annotations"),
                                                AUDIT_REPORT_LEFT_OUT_ANNOTATION)
                                    ->valuestring,
                            "3");
        cJSON_Delete(list);

        /* Findings past the audit's own bound count as left out too. */
        struct findings small;
        findings_init(&small, 1);
        cJSON *pod = fixture_pod("spark35-driver.json");
        assert_int_equal(findings_check_pod(fx->policy, "team-a", NULL, pod, &small, NULL), 0);
        cJSON_Delete(pod);
        fx->info.max_results = 0;   /* the default */
        fp = capture(fx);
        assert_int_equal(audit_report_policyreports(&small, &fx->info, fp, &left_out), 0);
        fclose(fp);
        assert_int_equal(left_out, 1);
        findings_free(&small);
}

/* Column starts in the header line and in a row line agree. */
static void assert_aligned(const char *header, const char *row, const char *const *columns, size_t n)
{
        size_t at = 0;
        for (size_t i = 0; i < n; i++) {
                const char *h = strstr(header, columns[i]);
                assert_non_null(h);
                size_t pos = (size_t)(h - header);
                assert_true(pos >= at);
                assert_true(pos < strlen(row));
                assert_true(row[pos] != ' ');
                assert_true(pos == 0 || row[pos - 1] == ' ');
                at = pos;
        }
}

/* The number right-aligned under `column` of `header` in `row`. */
static unsigned long count_under(const char *header, const char *row, const char *column)
{
        const char *h = strstr(header, column);
        assert_non_null(h);
        size_t end = (size_t)(h - header) + strlen(column);
        size_t start = end;
        while (start > 0 && row[start - 1] >= '0' && row[start - 1] <= '9')
                start--;
        assert_true(start < end);
        return strtoul(row + start, NULL, 10);
}

static void test_table(void **state)
{
        struct fixture *fx = *state;
        FILE *fp = capture(fx);
        assert_int_equal(audit_report_table(&fx->f, &fx->info, fp), 0);
        fclose(fp);
        char *lines[64];
        size_t n = 0;
        for (char *save = NULL, *l = strtok_r(fx->out, "\n", &save); l && n < 64; l = strtok_r(NULL, "\n", &save))
                lines[n++] = l;
        static const char *const fcols[] = { "NAMESPACE", "POD", "ROLE", "APP ID", "PROBLEM" };
        assert_true(strncmp(lines[0], "NAMESPACE", 9) == 0);
        /* Each finding: a row, then expected and found. */
        assert_true(strncmp(lines[1], "team-a ", 7) == 0);
        assert_non_null(strstr(lines[1], "spark-pi-84bba090065d3cdb-driver"));
        assert_non_null(strstr(lines[1], "missing-identity"));
        assert_aligned(lines[0], lines[1], fcols, 5);
        assert_string_equal(lines[2], "    expected  aadpodidbinding=sparkaks");
        assert_string_equal(lines[3], "    found     no aadpodidbinding label");
        /* The rogue pod: no role, no app id. */
        assert_true(strncmp(lines[22], "team-x ", 7) == 0);
        assert_aligned(lines[0], lines[22], fcols, 5);
        assert_non_null(strstr(lines[22], " -  "));
        /* Audit-mode findings say so. */
        assert_non_null(strstr(lines[16], "(namespace in audit mode)"));

        /* The summary per namespace. */
        static const char *const scols[] = { "NAMESPACE", "RULE", "MODE", "PROBLEMS" };
        assert_true(strncmp(lines[25], "NAMESPACE", 9) == 0);
        assert_non_null(strstr(lines[25], "COMPLIANT"));
        assert_true(strncmp(lines[26], "team-a ", 7) == 0);
        assert_aligned(lines[25], lines[26], scols, 4);
        /* Counts are right-aligned under their heading. */
        for (const char *const *k =
                     (const char *const[]){ "PODS", "SPARK", "COMPLIANT", "NONCOMPLIANT", "UNKNOWN", "FINDINGS", NULL };
             *k; k++) {
                size_t end = (size_t)(strstr(lines[25], *k) - lines[25]) + strlen(*k);
                assert_true(lines[26][end - 1] >= '0' && lines[26][end - 1] <= '9');
                assert_true(lines[26][end] == ' ');
        }
        assert_non_null(strstr(lines[26], "missing-identity 1, wrong-identity 1, foreign-identity 1, "
                                          "missing-jvm-settings 2"));
        /* FINDINGS counts the findings (those five), NONCOMPLIANT the pods that have them. */
        assert_int_equal(count_under(lines[25], lines[26], "FINDINGS"), 5);
        assert_true(count_under(lines[25], lines[26], "NONCOMPLIANT") < 5);
        assert_true(strncmp(lines[28], "team-off ", 9) == 0);
        assert_non_null(strstr(lines[28], " off "));
        assert_true(strncmp(lines[29], "team-x ", 7) == 0);
        assert_non_null(strstr(lines[29], "team-x     none "));   /* no rule: the word none, not "-" */
        assert_string_equal(lines[30], "7 pods in 4 namespaces, 5 of them Spark pods; judged 5: 1 compliant, "
                                       "4 with 8 findings; 1 not judged (mode off).");
        assert_string_equal(lines[31], "Pods from pods.json; policy policy.yaml (sha256 abc123).");
        assert_int_equal(n, 32);
}

static void test_table_empty_and_unknown(void **state)
{
        struct fixture *fx = *state;
        struct findings f;
        findings_init(&f, 10);
        cJSON *pod = fixture_pod("spark35-driver-mutated.json");
        assert_int_equal(findings_check_pod(fx->policy, "team-a", NULL, pod, &f, NULL), 0);
        FILE *fp = capture(fx);
        assert_int_equal(audit_report_table(&f, &fx->info, fp), 0);
        fclose(fp);
        assert_true(strncmp(fx->out, "No findings.\n\nNAMESPACE", 23) == 0);
        assert_non_null(strstr(fx->out, "judged 1: 1 compliant, 0 with 0 findings."));
        findings_free(&f);

        /* A policy with selectors and nothing known of the namespace. */
        static const char text[] = "selectors:\n  - {namespaceSelector: {}, identity: all-spark}\n";
        struct buf errors;
        struct policy *p = NULL;
        buf_init(&errors, 4096);
        assert_int_equal(policy_load(text, strlen(text), &p, &errors), 0);
        buf_free(&errors);
        findings_init(&f, 10);
        assert_int_equal(findings_check_pod(p, "team-q", NULL, pod, &f, NULL), 0);
        assert_int_equal(findings_check_pod(p, "team-q", NULL, pod, &f, NULL), 0);
        fx->info.namespaces_known = false;
        fp = capture(fx);
        assert_int_equal(audit_report_table(&f, &fx->info, fp), 0);
        fclose(fp);
        assert_non_null(strstr(fx->out, "2 pods unknown: their rule depends on their namespace's labels or "
                                        "annotations, which were not read (give --namespaces FILE"));
        assert_non_null(strstr(fx->out, "team-q     ?     ?  "));   /* rule and mode not known */

        /* The PolicyReport of such a namespace: nothing failed, all skipped. */
        fp = capture(fx);
        assert_int_equal(audit_report_policyreports(&f, &fx->info, fp, NULL), 0);
        fclose(fp);
        cJSON *list = cJSON_Parse(fx->out);
        const cJSON *sum = cJSON_GetObjectItem(report_of(list, "team-q"), "summary");
        assert_int_equal(cJSON_GetObjectItem(sum, "skip")->valueint, 2);
        assert_int_equal(cJSON_GetObjectItem(sum, "fail")->valueint, 0);
        cJSON_Delete(list);
        findings_free(&f);
        policy_free(p);
        cJSON_Delete(pod);
}

static void test_table_findings_not_kept(void **state)
{
        struct fixture *fx = *state;
        struct findings f;
        findings_init(&f, 1);
        cJSON *pod = fixture_pod("spark35-driver.json");
        assert_int_equal(findings_check_pod(fx->policy, "team-a", NULL, pod, &f, NULL), 0);
        fx->info.max_findings = 1;
        FILE *fp = capture(fx);
        assert_int_equal(audit_report_table(&f, &fx->info, fp), 0);
        fclose(fp);
        assert_non_null(strstr(fx->out, "1 finding is not listed: the audit keeps at most 1"));
        fp = capture(fx);
        assert_int_equal(audit_report_json(&f, &fx->info, fp), 0);
        fclose(fp);
        cJSON *doc = cJSON_Parse(fx->out);
        assert_int_equal(cJSON_GetObjectItem(cJSON_GetObjectItem(doc, "summary"), "findings")->valueint, 2);
        assert_int_equal(cJSON_GetObjectItem(cJSON_GetObjectItem(doc, "summary"), "findingsListed")->valueint, 1);
        cJSON_Delete(doc);
        findings_free(&f);
        cJSON_Delete(pod);
}

/* ---- text a tenant controls ---- */

static char *escaped(const char *s)
{
        struct buf b;
        buf_init(&b, 1u << 16);
        assert_int_equal(audit_report_escape(&b, s), 0);
        return buf_steal(&b);
}

#define assert_escaped(in, want)                                                          \
        do {                                                                              \
                char *got_ = escaped(in);                                                 \
                if (strcmp(got_, want) != 0)                                              \
                        fail_msg("escape(%s): got \"%s\", want \"%s\"", #in, got_, want); \
                free(got_);                                                               \
        } while (0)

static void test_escape(void **state)
{
        (void)state;
        /* Plain text and valid UTF-8 are copied. */
        assert_escaped("", "");
        assert_escaped("team-a spark-pi-driver", "team-a spark-pi-driver");
        assert_escaped("caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80 \xc2\xa0nbsp",
                       "caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80 \xc2\xa0nbsp");
        /* The backslash itself, so that an escape cannot be faked. */
        assert_escaped("a\\x1b", "a\\\\x1b");
        /* C0: the usual names, the rest as \xHH; DEL. */
        assert_escaped("\x1b[2J\nfake-ns fake-pod\r\t.", "\\x1b[2J\\nfake-ns fake-pod\\r\\t.");
        assert_escaped("\x01\x07\x08\x0b\x0c\x1f\x7f", "\\x01\\x07\\x08\\x0b\\x0c\\x1f\\x7f");
        /* C1 as UTF-8: U+0080..U+009F (U+009B is CSI). */
        assert_escaped("\xc2\x80|\xc2\x9b"
                       "2J|\xc2\x9f|\xc2\xa0",
                       "\\u0080|\\u009b2J|\\u009f|\xc2\xa0");
        /* Characters that reorder or break a line. */
        assert_escaped("\xe2\x80\xae"
                       "gnp.exe",
                       "\\u202egnp.exe");
        assert_escaped("\xe2\x80\xa8\xe2\x80\xa9\xe2\x80\x8e\xe2\x80\x8f\xd8\x9c\xe2\x81\xa6\xe2\x81\xa9",
                       "\\u2028\\u2029\\u200e\\u200f\\u061c\\u2066\\u2069");
        /* Bytes that are not UTF-8, each as \xHH: a raw C1 byte, 0xFF, a
         * stray continuation, overlongs, a surrogate, past U+10FFFF, a cut
         * sequence (before another character and at the end). */
        assert_escaped("\x9b"
                       "2J",
                       "\\x9b2J");
        assert_escaped("\xff\xfe", "\\xff\\xfe");
        assert_escaped("\x80x", "\\x80x");
        assert_escaped("\xc0\xaf\xc1\xbf", "\\xc0\\xaf\\xc1\\xbf");
        assert_escaped("\xe0\x80\xaf", "\\xe0\\x80\\xaf");
        assert_escaped("\xf0\x80\x80\xaf", "\\xf0\\x80\\x80\\xaf");
        assert_escaped("\xed\xa0\x80", "\\xed\\xa0\\x80");
        assert_escaped("\xf4\x90\x80\x80", "\\xf4\\x90\\x80\\x80");
        assert_escaped("\xe2\x82"
                       "A",
                       "\\xe2\\x82A");
        assert_escaped("ok\xe2\x82", "ok\\xe2\\x82");
        assert_escaped("\xf0\x9f\x98", "\\xf0\\x9f\\x98");

        /* The bound of the buffer holds. */
        struct buf b;
        buf_init(&b, 5);
        assert_int_equal(audit_report_escape(&b, "\x1b\x1b"), -ENOBUFS);
        buf_free(&b);
}

/* Adds a Spark driver whose name, app id and env come from a tenant. */
static void add_hostile(struct findings *f, const struct policy *p, const char *name, const char *app_id,
                        const char *java_home)
{
        cJSON *pod = fixture_pod("spark35-driver.json");
        cJSON *md = cJSON_GetObjectItem(pod, "metadata");
        cJSON_ReplaceItemInObject(md, "name", cJSON_CreateString(name));
        cJSON_ReplaceItemInObject(cJSON_GetObjectItem(md, "labels"), "spark-app-selector", cJSON_CreateString(app_id));
        cJSON *env = cJSON_GetObjectItem(
                cJSON_GetArrayItem(cJSON_GetObjectItem(cJSON_GetObjectItem(pod, "spec"), "containers"), 0), "env");
        cJSON *e = cJSON_CreateObject();
        cJSON_AddStringToObject(e, "name", "JAVA_HOME");
        cJSON_AddStringToObject(e, "value", java_home);
        cJSON_AddItemToArray(env, e);
        assert_int_equal(findings_check_pod(p, "team-a", NULL, pod, f, NULL), 0);
        cJSON_Delete(pod);
}

/* Every row of the table is one line that shows what the pod holds, in
 * aligned columns; JSON stays valid UTF-8 JSON with the same strings. */
static void test_hostile_text(void **state)
{
        struct fixture *fx = *state;
        struct findings f;
        findings_init(&f, 10);
        add_hostile(&f, fx->policy,
                    "evil\x1b[2J\xc2\x9b"
                    "1;1H",
                    "app\x9b\xe2\x80\xae", "\x1b[2J\nteam-a  fake-pod  driver  x  missing-identity\r");
        FILE *fp = capture(fx);
        assert_int_equal(audit_report_table(&f, &fx->info, fp), 0);
        fclose(fp);
        for (const char *c = fx->out; *c; c++)
                if ((unsigned char)*c < 0x20 && *c != '\n')
                        fail_msg("a control character in the table:\n%s", fx->out);
        assert_null(strstr(fx->out, "\xc2\x9b"));
        char *lines[16];
        size_t n = 0;
        for (char *save = NULL, *l = strtok_r(fx->out, "\n", &save); l && n < 16; l = strtok_r(NULL, "\n", &save))
                lines[n++] = l;
        static const char *const fcols[] = { "NAMESPACE", "POD", "ROLE", "APP ID", "PROBLEM" };
        /* missing-identity, then missing-jvm-settings: two rows of three lines. */
        assert_true(n >= 7);
        assert_non_null(strstr(lines[1], " evil\\x1b[2J\\u009b1;1H "));
        assert_non_null(strstr(lines[1], " app\\x9b\\u202e "));
        assert_aligned(lines[0], lines[1], fcols, 5);
        assert_aligned(lines[0], lines[4], fcols, 5);
        assert_non_null(strstr(lines[6], "JAVA_HOME=\\x1b[2J\\nteam-a  fake-pod  driver  x  missing-identity\\r"));
        assert_true(strncmp(lines[6], "    found     ", 14) == 0);

        /* JSON and PolicyReports: valid, and the strings as they were (the
         * byte that is not UTF-8 becomes U+FFFD). */
        fp = capture(fx);
        assert_int_equal(audit_report_json(&f, &fx->info, fp), 0);
        fclose(fp);
        for (const char *c = fx->out; *c; c++)
                if ((unsigned char)*c < 0x20 && *c != '\n')
                        fail_msg("a control character in the JSON");
        assert_null(strstr(fx->out, "\xc2\x9b"));
        assert_null(strstr(fx->out, "\x9b"));
        assert_non_null(strstr(fx->out, "\"evil\\u001b[2J\\u009b1;1H\""));
        assert_non_null(strstr(fx->out, "\"app\\ufffd\\u202e\""));
        cJSON *doc = cJSON_Parse(fx->out);
        assert_non_null(doc);
        const cJSON *it = cJSON_GetArrayItem(cJSON_GetObjectItem(doc, "findings"), 0);
        assert_string_equal(cJSON_GetObjectItem(it, "pod")->valuestring, "evil\x1b[2J\xc2\x9b"
                                                                         "1;1H");
        assert_string_equal(cJSON_GetObjectItem(it, "appId")->valuestring, "app\xef\xbf\xbd\xe2\x80\xae");
        cJSON_Delete(doc);
        fp = capture(fx);
        assert_int_equal(audit_report_policyreports(&f, &fx->info, fp, NULL), 0);
        fclose(fp);
        assert_null(strstr(fx->out, "\x9b"));
        doc = cJSON_Parse(fx->out);
        assert_non_null(doc);
        it = cJSON_GetArrayItem(cJSON_GetObjectItem(report_of(doc, "team-a"), "results"), 1);
        assert_non_null(strstr(cJSON_GetObjectItem(cJSON_GetObjectItem(it, "properties"), "found")->valuestring,
                               "JAVA_HOME=\x1b[2J\nteam-a  fake-pod"));
        cJSON_Delete(doc);
        findings_free(&f);
}

/* A name of any length is written whole, in bounded memory. */
static void test_long_text(void **state)
{
        struct fixture *fx = *state;
        struct findings f;
        size_t n = 300u * 1024u;
        char *name = malloc(n + 1);
        assert_non_null(name);
        for (size_t i = 0; i < n; i++)
                name[i] = i % 3 == 0 ? '\x1b' : 'a';
        name[n] = '\0';
        findings_init(&f, 10);
        add_hostile(&f, fx->policy, name, "app", "/opt/java");
        FILE *fp = capture(fx);
        assert_int_equal(audit_report_table(&f, &fx->info, fp), 0);
        fclose(fp);
        assert_true(fx->len > n / 3 * 4 * 2);
        fp = capture(fx);
        assert_int_equal(audit_report_json(&f, &fx->info, fp), 0);
        fclose(fp);
        cJSON *doc = cJSON_Parse(fx->out);
        assert_non_null(doc);
        assert_string_equal(
                cJSON_GetObjectItem(cJSON_GetArrayItem(cJSON_GetObjectItem(doc, "findings"), 0), "pod")->valuestring,
                name);
        cJSON_Delete(doc);
        fp = capture(fx);
        assert_int_equal(audit_report_policyreports(&f, &fx->info, fp, NULL), 0);
        fclose(fp);
        doc = cJSON_Parse(fx->out);
        assert_non_null(doc);
        cJSON_Delete(doc);
        findings_free(&f);
        free(name);
}

/* A write error is reported. */
static void test_write_error(void **state)
{
        struct fixture *fx = *state;
        FILE *fp = fopen("/dev/full", "w");
        assert_non_null(fp);
        setvbuf(fp, NULL, _IONBF, 0);
        assert_int_equal(audit_report_json(&fx->f, &fx->info, fp), -EIO);
        assert_int_equal(audit_report_policyreports(&fx->f, &fx->info, fp, NULL), -EIO);
        assert_int_equal(audit_report_table(&fx->f, &fx->info, fp), -EIO);
        fclose(fp);
}

int main(void)
{
        const struct CMUnitTest tests[] = {
                cmocka_unit_test_setup_teardown(test_json, setup, teardown),
                cmocka_unit_test_setup_teardown(test_json_empty, setup, teardown),
                cmocka_unit_test_setup_teardown(test_policyreports, setup, teardown),
                cmocka_unit_test_setup_teardown(test_policyreports_for_known_namespaces, setup, teardown),
                cmocka_unit_test_setup_teardown(test_policyreports_bounded, setup, teardown),
                cmocka_unit_test_setup_teardown(test_table, setup, teardown),
                cmocka_unit_test_setup_teardown(test_table_empty_and_unknown, setup, teardown),
                cmocka_unit_test_setup_teardown(test_table_findings_not_kept, setup, teardown),
                cmocka_unit_test_setup_teardown(test_write_error, setup, teardown),
                cmocka_unit_test(test_escape),
                cmocka_unit_test_setup_teardown(test_hostile_text, setup, teardown),
                cmocka_unit_test_setup_teardown(test_long_text, setup, teardown),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
