/* The outputs of the `audit` command: see include/audit_report.h. */
#include "audit_report.h"

#include <errno.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "buf.h"

/* Table columns wider than this are not padded further (a longer name
 * still prints whole, pushing its row out of line). 63 is the longest
 * namespace name and label value. */
#define TABLE_COLUMN_MAX 63
/* One JSON value being written (a finding's strings are bounded by findings.c). */
#define JSON_SCRATCH_MAX (256u * 1024u)

static const char *const problem_text[FINDING_PROBLEM_MAX] = {
        [FINDING_MISSING_IDENTITY] = "Spark pod without its namespace's Azure identity",
        [FINDING_WRONG_IDENTITY] = "Spark pod with another Azure identity than its namespace's",
        [FINDING_FOREIGN_IDENTITY] = "pod claims an Azure identity its namespace may not use",
        [FINDING_MISSING_JVM_SETTINGS] = "Spark container lacks the policy's JVM settings",
        [FINDING_NO_POLICY] = "Spark pod in a namespace without a valid rule, which the policy refuses",
        [FINDING_MISSING_WORKLOAD_IDENTITY] = "Spark pod without its namespace's Azure workload identity",
};
static const char *const problem_severity[FINDING_PROBLEM_MAX] = {
        [FINDING_MISSING_IDENTITY] = "medium",
        [FINDING_WRONG_IDENTITY] = "high",
        [FINDING_FOREIGN_IDENTITY] = "high",
        [FINDING_MISSING_JVM_SETTINGS] = "low",
        [FINDING_NO_POLICY] = "medium",
        [FINDING_MISSING_WORKLOAD_IDENTITY] = "medium",
};

/* ---- order ---- */

static int cmp_str0(const char *a, const char *b)
{
        return strcmp(a ? a : "", b ? b : "");
}

static int cmp_finding(const void *a, const void *b)
{
        const struct finding *x = *(const struct finding *const *)a, *y = *(const struct finding *const *)b;
        int c = cmp_str0(x->namespace_, y->namespace_);
        if (c == 0)
                c = cmp_str0(x->pod, y->pod);
        if (c == 0)
                c = (int)x->problem - (int)y->problem;
        if (c == 0)
                c = x < y ? -1 : x > y;   /* stable: the order found */
        return c;
}

/* The findings sorted; the caller frees the array (not the findings). */
static const struct finding **sorted(const struct findings *f)
{
        const struct finding **v = malloc((f->n ? f->n : 1) * sizeof *v);
        if (!v)
                return NULL;
        for (size_t i = 0; i < f->n; i++)
                v[i] = &f->items[i];
        qsort(v, f->n, sizeof *v, cmp_finding);
        return v;
}

static const char *or_dash(const char *s)
{
        return s && *s ? s : "-";
}

static void rfc3339(long long t, char *out, size_t outlen)
{
        time_t tt = (time_t)t;
        struct tm tm;
        if (!gmtime_r(&tt, &tm) || !strftime(out, outlen, "%Y-%m-%dT%H:%M:%SZ", &tm))
                snprintf(out, outlen, "%lld", t);
}

static const char *plural(size_t n)
{
        return n == 1 ? "" : "s";
}

static size_t judged(const struct findings_namespace *ns)
{
        return ns->verdicts[VERDICT_COMPLIANT] + ns->verdicts[VERDICT_FINDINGS];
}

static int finish(FILE *out, int r)
{
        if (r < 0)
                return r;
        return ferror(out) ? -EIO : 0;
}

/* ---- table ---- */

static int width(size_t w, const char *s)
{
        size_t n = strlen(or_dash(s));
        if (n > w)
                w = n;
        return (int)(w > TABLE_COLUMN_MAX ? TABLE_COLUMN_MAX : w);
}

static void problems_list(const struct findings_namespace *ns, FILE *out)
{
        bool any = false;
        for (int k = 0; k < FINDING_PROBLEM_MAX; k++) {
                if (!ns->problems[k])
                        continue;
                fprintf(out, "%s%s %zu", any ? ", " : "", finding_problem_name(k), ns->problems[k]);
                any = true;
        }
        if (!any)
                fputc('-', out);
}

int audit_report_table(const struct findings *f, const struct audit_report_info *info, FILE *out)
{
        const struct finding **v = sorted(f);
        if (!v)
                return -ENOMEM;
        int wn = width(9, "NAMESPACE"), wp = width(3, "POD"), wr = 8, wa = width(6, "APP ID");
        for (size_t i = 0; i < f->n; i++) {
                wn = width((size_t)wn, v[i]->namespace_);
                wp = width((size_t)wp, v[i]->pod);
                wa = width((size_t)wa, v[i]->app_id);
        }
        if (f->n) {
                fprintf(out, "%-*s  %-*s  %-*s  %-*s  %s\n", wn, "NAMESPACE", wp, "POD", wr, "ROLE", wa, "APP ID",
                        "PROBLEM");
                for (size_t i = 0; i < f->n; i++) {
                        const struct finding *it = v[i];
                        fprintf(out, "%-*s  %-*s  %-*s  %-*s  %s%s\n", wn, it->namespace_, wp, it->pod, wr,
                                or_dash(pod_role_name(it->role)), wa, or_dash(it->app_id),
                                finding_problem_name(it->problem),
                                it->mode == POLICY_MODE_AUDIT ? " (namespace in audit mode)" : "");
                        fprintf(out, "    expected  %s\n    found     %s\n", it->expected, it->found);
                }
                fputc('\n', out);
        } else if (findings_total(f) == 0) {
                fprintf(out, "No findings.\n\n");
        }
        free(v);

        /* The summary per namespace. */
        wn = width(9, "NAMESPACE");
        int wru = width(4, "RULE");
        for (size_t i = 0; i < f->n_namespaces; i++) {
                wn = width((size_t)wn, f->namespaces[i].name);
                wru = width((size_t)wru, f->namespaces[i].rule);
        }
        fprintf(out, "%-*s  %-*s  %-7s  %5s  %5s  %9s  %8s  %7s  %s\n", wn, "NAMESPACE", wru, "RULE", "MODE",
                "PODS", "SPARK", "COMPLIANT", "FINDINGS", "UNKNOWN", "PROBLEMS");
        for (size_t i = 0; i < f->n_namespaces; i++) {
                const struct findings_namespace *ns = &f->namespaces[i];
                fprintf(out, "%-*s  %-*s  %-7s  %5zu  %5zu  %9zu  %8zu  %7zu  ", wn, ns->name, wru, or_dash(ns->rule),
                        ns->rule || !ns->verdicts[VERDICT_UNKNOWN] ? policy_mode_name(ns->mode) : "?", ns->pods,
                        ns->spark_pods, ns->verdicts[VERDICT_COMPLIANT], ns->verdicts[VERDICT_FINDINGS],
                        ns->verdicts[VERDICT_UNKNOWN]);
                problems_list(ns, out);
                fputc('\n', out);
        }

        struct findings_namespace t;
        findings_totals(f, &t);
        fprintf(out, "\n%zu pod%s in %zu namespace%s, %zu of them Spark pods; judged %zu: %zu compliant, "
                "%zu with %zu finding%s", t.pods, plural(t.pods), f->n_namespaces, plural(f->n_namespaces),
                t.spark_pods, judged(&t), t.verdicts[VERDICT_COMPLIANT], t.verdicts[VERDICT_FINDINGS],
                findings_total(f), plural(findings_total(f)));
        if (t.verdicts[VERDICT_OFF])
                fprintf(out, "; %zu not judged (mode off)", t.verdicts[VERDICT_OFF]);
        fprintf(out, ".\n");
        if (t.verdicts[VERDICT_UNKNOWN])
                fprintf(out, "%zu pod%s unknown: %s rule depends on %s namespace's labels or annotations, "
                        "which %s.\n", t.verdicts[VERDICT_UNKNOWN], t.verdicts[VERDICT_UNKNOWN] == 1 ? "" : "s",
                        t.verdicts[VERDICT_UNKNOWN] == 1 ? "its" : "their",
                        t.verdicts[VERDICT_UNKNOWN] == 1 ? "its" : "their",
                        info->namespaces_known ? "were not in the namespaces read"
                                               : "were not read (give --namespaces FILE, from "
                                                 "'kubectl get namespaces -o json')");
        if (f->not_kept)
                fprintf(out, "%zu finding%s %s not listed: the audit keeps at most %zu (-o json says the "
                        "same; narrow with --namespace).\n", f->not_kept, plural(f->not_kept),
                        f->not_kept == 1 ? "is" : "are", info->max_findings);
        fprintf(out, "Pods from %s; policy %s (sha256 %s).\n", info->source, info->policy_path, info->policy_sha256);
        return finish(out, 0);
}

/* ---- JSON ---- */

struct json_out {
        FILE *out;
        struct buf b;
        int r;
};

/* Appends a JSON string (or null) to the scratch buffer. */
static void js(struct json_out *j, const char *s)
{
        if (j->r == 0)
                j->r = s ? buf_put_json_str(&j->b, s) : buf_puts(&j->b, "null");
}

__attribute__((format(printf, 2, 3)))
static void jf(struct json_out *j, const char *fmt, ...)
{
        if (j->r)
                return;
        char tmp[1024];
        va_list ap;
        va_start(ap, fmt);
        int n = vsnprintf(tmp, sizeof tmp, fmt, ap);
        va_end(ap);
        j->r = n < 0 || (size_t)n >= sizeof tmp ? -ENOMEM : buf_append(&j->b, tmp, (size_t)n);
}

/* Writes the scratch buffer out and empties it. */
static void jflush(struct json_out *j)
{
        if (j->r == 0 && j->b.len && fwrite(j->b.data, 1, j->b.len, j->out) != j->b.len)
                j->r = -EIO;
        buf_reset(&j->b);
}

static void json_problems(struct json_out *j, const struct findings_namespace *ns)
{
        jf(j, "{");
        for (int k = 0; k < FINDING_PROBLEM_MAX; k++)
                jf(j, "%s\"%s\": %zu", k ? ", " : "", finding_problem_name(k), ns->problems[k]);
        jf(j, "}");
}

static void json_counts(struct json_out *j, const struct findings_namespace *ns)
{
        jf(j, "\"pods\": %zu, \"sparkPods\": %zu, \"compliant\": %zu, \"withFindings\": %zu, "
           "\"unknown\": %zu, \"off\": %zu, \"notConcerned\": %zu, \"problems\": ", ns->pods, ns->spark_pods,
           ns->verdicts[VERDICT_COMPLIANT], ns->verdicts[VERDICT_FINDINGS], ns->verdicts[VERDICT_UNKNOWN],
           ns->verdicts[VERDICT_OFF], ns->verdicts[VERDICT_NOT_CONCERNED]);
        json_problems(j, ns);
}

static void json_finding(struct json_out *j, const struct finding *it)
{
        jf(j, "{\"namespace\": ");
        js(j, it->namespace_);
        jf(j, ", \"pod\": ");
        js(j, it->pod);
        jf(j, ", \"uid\": ");
        js(j, it->uid);
        jf(j, ", \"phase\": ");
        js(j, it->phase);
        jf(j, ", \"role\": ");
        js(j, it->role == POD_ROLE_NONE ? NULL : pod_role_name(it->role));
        jf(j, ", \"appId\": ");
        js(j, it->app_id);
        jf(j, ", \"problem\": \"%s\", \"expected\": ", finding_problem_name(it->problem));
        js(j, it->expected);
        jf(j, ", \"found\": ");
        js(j, it->found);
        jf(j, ", \"rule\": ");
        js(j, it->rule);
        jf(j, ", \"mode\": \"%s\"}", policy_mode_name(it->mode));
}

int audit_report_json(const struct findings *f, const struct audit_report_info *info, FILE *out)
{
        struct json_out j = { .out = out };
        const struct finding **v = sorted(f);
        char when[64];
        if (!v)
                return -ENOMEM;
        buf_init(&j.b, JSON_SCRATCH_MAX);
        rfc3339(info->time, when, sizeof when);

        struct findings_namespace t;
        findings_totals(f, &t);
        jf(&j, "{\n  \"summary\": {\"source\": ");
        js(&j, info->source);
        jf(&j, ", \"policy\": ");
        js(&j, info->policy_path);
        jf(&j, ", \"policySha256\": ");
        js(&j, info->policy_sha256);
        jf(&j, ", \"time\": \"%s\", \"namespacesKnown\": %s,\n    ", when, info->namespaces_known ? "true" : "false");
        json_counts(&j, &t);
        jf(&j, ",\n    \"findings\": %zu, \"findingsListed\": %zu,\n    \"namespaces\": [", findings_total(f), f->n);
        for (size_t i = 0; i < f->n_namespaces; i++) {
                const struct findings_namespace *ns = &f->namespaces[i];
                bool unknown = !ns->rule && ns->verdicts[VERDICT_UNKNOWN];
                jf(&j, "%s\n      {\"namespace\": ", i ? "," : "");
                js(&j, ns->name);
                jf(&j, ", \"rule\": ");
                js(&j, ns->rule);
                jf(&j, ", \"mode\": ");
                js(&j, unknown ? NULL : policy_mode_name(ns->mode));
                jf(&j, ", ");
                json_counts(&j, ns);
                jf(&j, "}");
                jflush(&j);
        }
        jf(&j, "%s]},\n  \"findings\": [", f->n_namespaces ? "\n    " : "");
        for (size_t i = 0; i < f->n; i++) {
                jf(&j, "%s\n    ", i ? "," : "");
                json_finding(&j, v[i]);
                jflush(&j);
        }
        jf(&j, "%s]\n}\n", f->n ? "\n  " : "");
        jflush(&j);
        buf_free(&j.b);
        free(v);
        return finish(out, j.r);
}

/* ---- PolicyReports ---- */

static void report_result(struct json_out *j, const struct finding *it, long long time)
{
        jf(j, "{\"policy\": \"" AUDIT_REPORT_POLICY "\", \"rule\": \"%s\", \"result\": \"fail\", "
           "\"severity\": \"%s\", \"category\": \"Spark identity\", \"source\": \"spark-identity-webhook\",\n"
           "       \"message\": ", finding_problem_name(it->problem), problem_severity[it->problem]);
        if (j->r == 0) {
                struct buf m;
                buf_init(&m, JSON_SCRATCH_MAX);
                j->r = buf_printf(&m, "%s: expected %s; found %s", problem_text[it->problem], it->expected,
                                  it->found);
                js(j, j->r == 0 ? m.data : NULL);
                buf_free(&m);
        }
        jf(j, ",\n       \"properties\": {\"expected\": ");
        js(j, it->expected);
        jf(j, ", \"found\": ");
        js(j, it->found);
        if (it->role != POD_ROLE_NONE)
                jf(j, ", \"role\": \"%s\"", pod_role_name(it->role));
        if (it->app_id) {
                jf(j, ", \"appId\": ");
                js(j, it->app_id);
        }
        if (it->rule) {
                jf(j, ", \"rule\": ");
                js(j, it->rule);
        }
        if (it->phase) {
                jf(j, ", \"phase\": ");
                js(j, it->phase);
        }
        jf(j, ", \"mode\": \"%s\"},\n       \"resources\": [{\"apiVersion\": \"v1\", \"kind\": \"Pod\", "
           "\"namespace\": ", policy_mode_name(it->mode));
        js(j, it->namespace_);
        jf(j, ", \"name\": ");
        js(j, it->pod);
        if (it->uid) {
                jf(j, ", \"uid\": ");
                js(j, it->uid);
        }
        jf(j, "}],\n       \"timestamp\": {\"seconds\": %lld, \"nanos\": 0}}", time);
}

/* One namespace's report; `ns` may be NULL (a namespace without pods).
 * `v[*next...]` are its kept findings (v is sorted by namespace). */
static void report(struct json_out *j, const char *name, const struct findings_namespace *ns,
                   const struct finding **v, size_t n, size_t *next, const struct audit_report_info *info,
                   size_t max, size_t *left_out_total)
{
        size_t fails = 0;
        for (int k = 0; ns && k < FINDING_PROBLEM_MAX; k++)
                fails += ns->problems[k];
        size_t first = *next;
        while (*next < n && strcmp(v[*next]->namespace_, name) == 0)
                (*next)++;
        size_t kept = *next - first, listed = kept < max ? kept : max;
        size_t left_out = fails - listed;
        *left_out_total += left_out;

        jf(j, "\n{\"apiVersion\": \"wgpolicyk8s.io/v1alpha2\", \"kind\": \"PolicyReport\",\n"
           " \"metadata\": {\"name\": \"" AUDIT_REPORT_NAME "\", \"namespace\": ");
        js(j, name);
        jf(j, ",\n   \"labels\": {\"app.kubernetes.io/managed-by\": \"spark-identity-webhook\"},\n"
           "   \"annotations\": {\"spark-identity.io/policy-sha256\": ");
        js(j, info->policy_sha256);
        jf(j, ", \"" AUDIT_REPORT_LEFT_OUT_ANNOTATION "\": \"%zu\"}},\n", left_out);
        jf(j, " \"summary\": {\"pass\": %zu, \"fail\": %zu, \"warn\": 0, \"error\": 0, \"skip\": %zu},\n"
           " \"results\": [", ns ? ns->verdicts[VERDICT_COMPLIANT] : 0, fails, ns ? ns->verdicts[VERDICT_UNKNOWN] : 0);
        for (size_t k = 0; k < listed; k++) {
                jf(j, "%s\n      ", k ? "," : "");
                report_result(j, v[first + k], info->time);
                jflush(j);
        }
        jf(j, "]}");
        jflush(j);
}

int audit_report_policyreports(const struct findings *f, const struct audit_report_info *info, FILE *out,
                               size_t *ret_left_out)
{
        struct json_out j = { .out = out };
        const struct finding **v = sorted(f);
        size_t max = info->max_results ? info->max_results : AUDIT_REPORT_MAX_RESULTS;
        size_t left_out_total = 0, next = 0, n_reports = 0;
        if (!v)
                return -ENOMEM;
        buf_init(&j.b, JSON_SCRATCH_MAX);
        jf(&j, "{\"apiVersion\": \"v1\", \"kind\": \"List\", \"items\": [");
        /* The union of the namespaces with pods and those known, both sorted. */
        size_t a = 0, b = 0;
        while (a < f->n_namespaces || (info->namespaces && b < info->n_namespaces)) {
                const char *known = info->namespaces && b < info->n_namespaces ? info->namespaces[b] : NULL;
                const struct findings_namespace *ns = a < f->n_namespaces ? &f->namespaces[a] : NULL;
                int c = !ns ? 1 : !known ? -1 : strcmp(ns->name, known);
                if (n_reports++)
                        jf(&j, ",");
                if (c <= 0) {
                        report(&j, ns->name, ns, v, f->n, &next, info, max, &left_out_total);
                        a++;
                        b += c == 0;
                } else {
                        report(&j, known, NULL, v, f->n, &next, info, max, &left_out_total);
                        b++;
                }
        }
        jf(&j, "\n]}\n");
        jflush(&j);
        buf_free(&j.b);
        free(v);
        if (j.r == 0 && ret_left_out)
                *ret_left_out = left_out_total;
        return finish(out, j.r);
}
