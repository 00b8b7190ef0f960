/* The outputs of the `audit` command: see include/io/audit_report.h. */
#include "audit_report.h"

#include <errno.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "buf.h"
#include "strs.h"

/* Table columns wider than this are not padded further (a longer name
 * still prints whole, pushing its row out of line). 63 is the longest
 * namespace name and label value. */
#define TABLE_COLUMN_MAX 63
/* One JSON value being written (a finding's strings are bounded by findings.c). */
#define JSON_SCRATCH_MAX (256u * 1024u)
/* A text being escaped is written out in pieces of about this size, so that
 * a name of any length (a pods file may hold one) takes bounded memory. */
#define TEXT_FLUSH_BYTES (64u * 1024u)
/* Plain ASCII copied in one piece. */
#define TEXT_RUN_MAX 4096u

static const char *const problem_text[FINDING_PROBLEM_MAX] = {
        [FINDING_MISSING_IDENTITY] = "Spark pod without its namespace's Azure identity",
        [FINDING_WRONG_IDENTITY] = "Spark pod with another Azure identity than its namespace's",
        [FINDING_FOREIGN_IDENTITY] = "pod claims an Azure identity its namespace may not use",
        [FINDING_MISSING_JVM_SETTINGS] = "Spark container lacks the policy's JVM settings",
        [FINDING_NO_POLICY] = "Spark pod in a namespace without a valid rule, which the policy refuses",
        [FINDING_MISSING_WORKLOAD_IDENTITY] = "Spark pod without its namespace's Azure workload identity",
        [FINDING_TOO_LARGE] = "pod too large for the audit to read, so not judged",
};
static const char *const problem_severity[FINDING_PROBLEM_MAX] = {
        [FINDING_MISSING_IDENTITY] = "medium", [FINDING_WRONG_IDENTITY] = "high",
        [FINDING_FOREIGN_IDENTITY] = "high",   [FINDING_MISSING_JVM_SETTINGS] = "low",
        [FINDING_NO_POLICY] = "medium",        [FINDING_MISSING_WORKLOAD_IDENTITY] = "medium",
        [FINDING_TOO_LARGE] = "high",           /* it may hide any of the others */
};

/* ---- text a tenant controls ---- */

/* The valid UTF-8 sequence at s, as a code point: its length, or 0 when s
 * does not start one (a stray, overlong, surrogate or cut sequence; the NUL
 * that ends s is never a continuation byte). */
static size_t utf8_char(const unsigned char *s, uint32_t *ret_cp)
{
        unsigned c = s[0], lo = 0x80, hi = 0xBF;
        size_t n;
        uint32_t cp;
        if (c < 0x80) {
                *ret_cp = c;
                return 1;
        }
        if (c >= 0xC2 && c <= 0xDF) {
                n = 2;
                cp = c & 0x1F;
        } else if (c >= 0xE0 && c <= 0xEF) {
                n = 3;
                cp = c & 0x0F;
                lo = c == 0xE0 ? 0xA0 : lo;     /* overlong */
                hi = c == 0xED ? 0x9F : hi;     /* surrogates */
        } else if (c >= 0xF0 && c <= 0xF4) {
                n = 4;
                cp = c & 0x07;
                lo = c == 0xF0 ? 0x90 : lo;     /* overlong */
                hi = c == 0xF4 ? 0x8F : hi;     /* past U+10FFFF */
        } else {
                return 0;
        }
        for (size_t k = 1; k < n; k++) {
                unsigned d = s[k];
                if (d < (k == 1 ? lo : 0x80u) || d > (k == 1 ? hi : 0xBFu))
                        return 0;
                cp = cp << 6 | (d & 0x3F);
        }
        *ret_cp = cp;
        return n;
}

/* Characters that steer a terminal or the order of a line instead of
 * showing: C0, DEL, C1, the bidi formatting characters (ALM, LRM, RLM,
 * LRE..RLO, LRI..PDI) and the line and paragraph separators. */
static bool is_hidden(uint32_t cp)
{
        return cp < 0x20 || (cp >= 0x7F && cp <= 0x9F) || cp == 0x061C || cp == 0x200E || cp == 0x200F ||
               (cp >= 0x2028 && cp <= 0x202E) || (cp >= 0x2066 && cp <= 0x2069);
}

/* One character of s as the table shows it, into out (NUL-terminated), and
 * the columns it takes in *ret_cols: the bytes of s it stands for, 0 at the
 * end of s. */
static size_t shown_char(const char *s, char out[16], size_t *ret_cols)
{
        const unsigned char *u = (const unsigned char *)s;
        uint32_t cp = 0;
        size_t n;
        if (!*u)
                return 0;
        n = utf8_char(u, &cp);
        if (n == 0) {
                snprintf(out, 16, "\\x%02x", u[0]);
                n = 1;
        } else if (cp == '\\') {
                snprintf(out, 16, "\\\\");
        } else if (cp == '\n' || cp == '\r' || cp == '\t') {
                snprintf(out, 16, "\\%c", cp == '\n' ? 'n' : cp == '\r' ? 'r' : 't');
        } else if (is_hidden(cp)) {
                snprintf(out, 16, cp <= 0x7F ? "\\x%02x" : "\\u%04x", (unsigned)cp);
        } else {
                memcpy(out, s, n);
                out[n] = '\0';
                *ret_cols = 1;
                return n;
        }
        *ret_cols = strlen(out);
        return n;
}

static bool plain_ascii(char c)
{
        return c >= 0x20 && c < 0x7F && c != '\\';
}

/* Writes the buffer out once it holds TEXT_FLUSH_BYTES (never when `out`
 * is NULL). */
static int flush_at(struct buf *b, FILE *out)
{
        if (!out || b->len < TEXT_FLUSH_BYTES)
                return 0;
        if (fwrite(b->data, 1, b->len, out) != b->len)
                return -EIO;
        buf_reset(b);
        return 0;
}

/* audit_report_escape(), flushing to `out` (may be NULL) as it goes. */
static int escape_text(struct buf *b, const char *s, FILE *out)
{
        int r = 0;
        while (r == 0 && *s) {
                size_t run = 0;
                while (run < TEXT_RUN_MAX && plain_ascii(s[run]))
                        run++;
                if (run) {
                        r = buf_append(b, s, run);
                        s += run;
                } else {
                        char one[16];
                        size_t cols;
                        s += shown_char(s, one, &cols);
                        r = buf_puts(b, one);
                }
                if (r == 0)
                        r = flush_at(b, out);
        }
        return r;
}

int audit_report_escape(struct buf *b, const char *s)
{
        return escape_text(b, s, NULL);
}

/* The columns `s` takes in the table, escaped. */
static size_t shown_width(const char *s)
{
        size_t w = 0;
        while (*s) {
                char one[16];
                size_t cols = 1;
                s += plain_ascii(*s) ? 1 : shown_char(s, one, &cols);
                w += cols;
        }
        return w;
}

/* Appends `s` as a JSON string, valid UTF-8 whatever s holds: invalid
 * bytes become U+FFFD; DEL, C1 and the bidi and line-separating
 * characters are escaped too, for whoever reads the JSON on a terminal. */
static int put_json_text(struct buf *b, const char *s, FILE *out)
{
        int r = buf_putc(b, '"');
        while (r == 0 && *s) {
                const unsigned char *u = (const unsigned char *)s;
                uint32_t cp = 0;
                size_t n = utf8_char(u, &cp);
                if (n == 0) {
                        r = buf_puts(b, "\\ufffd");
                        n = 1;
                } else if (cp == '"' || cp == '\\') {
                        r = buf_printf(b, "\\%c", (char)cp);
                } else if (cp == '\n' || cp == '\r' || cp == '\t') {
                        r = buf_printf(b, "\\%c", cp == '\n' ? 'n' : cp == '\r' ? 'r' : 't');
                } else if (is_hidden(cp)) {
                        r = buf_printf(b, "\\u%04x", (unsigned)cp);
                } else {
                        r = buf_append(b, s, n);
                }
                s += n;
                if (r == 0)
                        r = flush_at(b, out);
        }
        if (r == 0)
                r = buf_putc(b, '"');
        return r;
}

/* ---- order ---- */

static int cmp_finding(const void *a, const void *b)
{
        const struct finding *x = *(const struct finding *const *)a, *y = *(const struct finding *const *)b;
        int c = str_cmp0(x->namespace_, y->namespace_);
        if (c == 0)
                c = str_cmp0(x->pod, y->pod);
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

/* The findings of a namespace's pods, listed or not: one per problem found. */
static size_t namespace_findings(const struct findings_namespace *ns)
{
        size_t n = 0;
        for (int k = 0; k < FINDING_PROBLEM_MAX; k++)
                n += ns->problems[k];
        return n;
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

/* One line of the table, built whole, then written. */
struct table {
        FILE *out;
        struct buf line;
        int r;
};

static int width(size_t w, const char *s)
{
        size_t n = shown_width(or_dash(s));
        if (n > w)
                w = n;
        return (int)(w > TABLE_COLUMN_MAX ? TABLE_COLUMN_MAX : w);
}

/* `s` escaped (or "-"), padded to `w` columns. */
static void cell(struct table *t, const char *s, int w)
{
        if (t->r)
                return;
        s = or_dash(s);
        t->r = escape_text(&t->line, s, t->out);
        for (size_t n = shown_width(s); t->r == 0 && n < (size_t)w; n++)
                t->r = buf_putc(&t->line, ' ');
}

__attribute__((format(printf, 2, 3))) static void tf(struct table *t, const char *fmt, ...)
{
        if (t->r)
                return;
        va_list ap;
        va_start(ap, fmt);
        t->r = buf_vprintf(&t->line, fmt, ap);
        va_end(ap);
}

/* Writes the line out, with its newline. */
static void tline(struct table *t)
{
        if (t->r == 0)
                t->r = buf_putc(&t->line, '\n');
        if (t->r == 0 && fwrite(t->line.data, 1, t->line.len, t->out) != t->line.len)
                t->r = -EIO;
        buf_reset(&t->line);
}

static void problems_list(struct table *t, const struct findings_namespace *ns)
{
        bool any = false;
        for (int k = 0; k < FINDING_PROBLEM_MAX; k++) {
                if (!ns->problems[k])
                        continue;
                tf(t, "%s%s %zu", any ? ", " : "", finding_problem_name(k), ns->problems[k]);
                any = true;
        }
        if (!any)
                tf(t, "-");
}

/* The findings, one block of three lines each, sorted (`v`), or "No
 * findings." when there is none at all. */
static void table_findings(struct table *t, const struct findings *f, const struct finding **v)
{
        int wn = width(9, "NAMESPACE"), wp = width(3, "POD"), wr = 8, wa = width(6, "APP ID");
        for (size_t i = 0; i < f->n; i++) {
                wn = width((size_t)wn, v[i]->namespace_);
                wp = width((size_t)wp, v[i]->pod);
                wa = width((size_t)wa, v[i]->app_id);
        }
        if (f->n) {
                tf(t, "%-*s  %-*s  %-*s  %-*s  %s", wn, "NAMESPACE", wp, "POD", wr, "ROLE", wa, "APP ID", "PROBLEM");
                tline(t);
                for (size_t i = 0; i < f->n; i++) {
                        const struct finding *it = v[i];
                        cell(t, it->namespace_, wn);
                        tf(t, "  ");
                        cell(t, it->pod, wp);
                        tf(t, "  %-*s  ", wr, or_dash(mutate_role_name(it->role)));
                        cell(t, it->app_id, wa);
                        tf(t, "  %s%s", finding_problem_name(it->problem),
                           it->mode == POLICY_MODE_AUDIT ? " (namespace in audit mode)" : "");
                        tline(t);
                        tf(t, "    expected  ");
                        cell(t, it->expected, 0);
                        tline(t);
                        tf(t, "    found     ");
                        cell(t, it->found, 0);
                        tline(t);
                }
                tline(t);
        } else if (findings_total(f) == 0) {
                tf(t, "No findings.\n");
                tline(t);
        }
}

/* The summary per namespace, one line each under a header. */
static void table_namespaces(struct table *t, const struct findings *f)
{
        int wn = width(9, "NAMESPACE");
        int wru = width(4, POLICY_NO_RULE);
        for (size_t i = 0; i < f->n_namespaces; i++) {
                wn = width((size_t)wn, f->namespaces[i].name);
                wru = width((size_t)wru, f->namespaces[i].rule);
        }
        /* NONCOMPLIANT counts pods (-o json: withFindings), FINDINGS what
         * they lack (-o json: findings; the PROBLEMS column by kind). */
        tf(t, "%-*s  %-*s  %-7s  %5s  %5s  %9s  %12s  %7s  %8s  %s", wn, "NAMESPACE", wru, "RULE", "MODE", "PODS",
           "SPARK", "COMPLIANT", "NONCOMPLIANT", "UNKNOWN", "FINDINGS", "PROBLEMS");
        tline(t);
        for (size_t i = 0; i < f->n_namespaces; i++) {
                const struct findings_namespace *ns = &f->namespaces[i];
                bool unknown = !ns->rule && ns->verdicts[VERDICT_UNKNOWN];
                cell(t, ns->name, wn);
                tf(t, "  ");
                cell(t, ns->rule ? ns->rule : unknown ? "?" : POLICY_NO_RULE, wru);
                tf(t, "  %-7s  %5zu  %5zu  %9zu  %12zu  %7zu  %8zu  ", unknown ? "?" : policy_mode_name(ns->mode),
                   ns->pods, ns->spark_pods, ns->verdicts[VERDICT_COMPLIANT], ns->verdicts[VERDICT_FINDINGS],
                   ns->verdicts[VERDICT_UNKNOWN], namespace_findings(ns));
                problems_list(t, ns);
                tline(t);
        }
}

/* The totals, what is unknown or not listed and why, and where the pods and
 * the policy came from. */
static void table_totals(struct table *t, const struct findings *f, const struct audit_report_info *info)
{
        struct findings_namespace tot;
        findings_totals(f, &tot);
        tf(t,
           "\n%zu pod%s in %zu namespace%s, %zu of them Spark pods; judged %zu: %zu compliant, "
           "%zu with %zu finding%s",
           tot.pods, plural(tot.pods), f->n_namespaces, plural(f->n_namespaces), tot.spark_pods, judged(&tot),
           tot.verdicts[VERDICT_COMPLIANT], tot.verdicts[VERDICT_FINDINGS], findings_total(f),
           plural(findings_total(f)));
        if (tot.verdicts[VERDICT_OFF])
                tf(t, "; %zu not judged (mode off)", tot.verdicts[VERDICT_OFF]);
        tf(t, ".");
        tline(t);
        if (tot.verdicts[VERDICT_UNKNOWN]) {
                size_t n = tot.verdicts[VERDICT_UNKNOWN];
                tf(t, "%zu pod%s unknown: %s rule depends on %s namespace's labels or annotations, which %s.", n,
                   plural(n), n == 1 ? "its" : "their", n == 1 ? "its" : "their",
                   info->namespaces_known ? "were not in the namespaces read"
                                          : "were not read (give --namespaces FILE, from "
                                            "'kubectl get namespaces -o json')");
                tline(t);
        }
        if (f->not_kept) {
                tf(t,
                   "%zu finding%s %s not listed: the audit keeps at most %zu (-o json says the same; narrow "
                   "with --namespace).",
                   f->not_kept, plural(f->not_kept), f->not_kept == 1 ? "is" : "are", info->max_findings);
                tline(t);
        }
        tf(t, "Pods from ");
        cell(t, info->source, 0);
        tf(t, "; policy ");
        cell(t, info->policy_path, 0);
        tf(t, " (sha256 ");
        cell(t, info->policy_sha256, 0);
        tf(t, ").");
        tline(t);
}

int audit_report_table(const struct findings *f, const struct audit_report_info *info, FILE *out)
{
        const struct finding **v = sorted(f);
        struct table t = { .out = out };
        if (!v)
                return -ENOMEM;
        /* Texts are written out in pieces: a line holds less than a piece more. */
        buf_init(&t.line, 2u * TEXT_FLUSH_BYTES);
        table_findings(&t, f, v);
        free(v);
        table_namespaces(&t, f);
        table_totals(&t, f, info);
        buf_free(&t.line);
        return finish(out, t.r);
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
                j->r = s ? put_json_text(&j->b, s, j->out) : buf_puts(&j->b, "null");
}

__attribute__((format(printf, 2, 3))) static void jf(struct json_out *j, const char *fmt, ...)
{
        if (j->r)
                return;
        va_list ap;
        va_start(ap, fmt);
        j->r = buf_vprintf(&j->b, fmt, ap);
        va_end(ap);
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
        jf(j,
           "\"pods\": %zu, \"sparkPods\": %zu, \"compliant\": %zu, \"withFindings\": %zu, "
           "\"unknown\": %zu, \"off\": %zu, \"notConcerned\": %zu, \"problems\": ",
           ns->pods, ns->spark_pods, ns->verdicts[VERDICT_COMPLIANT], ns->verdicts[VERDICT_FINDINGS],
           ns->verdicts[VERDICT_UNKNOWN], ns->verdicts[VERDICT_OFF], ns->verdicts[VERDICT_NOT_CONCERNED]);
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
        js(j, it->role == POD_ROLE_NONE ? NULL : mutate_role_name(it->role));
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
                jf(&j, ", \"findings\": %zu}", namespace_findings(ns));
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
        jf(j,
           "{\"policy\": \"" AUDIT_REPORT_POLICY "\", \"rule\": \"%s\", \"result\": \"fail\", "
           "\"severity\": \"%s\", \"category\": \"Spark identity\", \"source\": \"spark-identity-webhook\",\n"
           "       \"message\": ",
           finding_problem_name(it->problem), problem_severity[it->problem]);
        if (j->r == 0) {
                struct buf m;
                buf_init(&m, JSON_SCRATCH_MAX);
                j->r = buf_printf(&m, "%s: expected %s; found %s", problem_text[it->problem], it->expected, it->found);
                js(j, j->r == 0 ? m.data : NULL);
                buf_free(&m);
        }
        jf(j, ",\n       \"properties\": {\"expected\": ");
        js(j, it->expected);
        jf(j, ", \"found\": ");
        js(j, it->found);
        if (it->role != POD_ROLE_NONE)
                jf(j, ", \"role\": \"%s\"", mutate_role_name(it->role));
        if (it->app_id) {
                jf(j, ", \"appId\": ");
                js(j, it->app_id);
        }
        jf(j, ", \"rule\": ");
        js(j, it->rule ? it->rule : POLICY_NO_RULE); /* properties are strings: no null */
        if (it->phase) {
                jf(j, ", \"phase\": ");
                js(j, it->phase);
        }
        jf(j,
           ", \"mode\": \"%s\"},\n       \"resources\": [{\"apiVersion\": \"v1\", \"kind\": \"Pod\", "
           "\"namespace\": ",
           policy_mode_name(it->mode));
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
static void report(struct json_out *j, const char *name, const struct findings_namespace *ns, const struct finding **v,
                   size_t n, size_t *next, const struct audit_report_info *info, size_t max, size_t *left_out_total)
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
        jf(j,
           " \"summary\": {\"pass\": %zu, \"fail\": %zu, \"warn\": 0, \"error\": 0, \"skip\": %zu},\n"
           " \"results\": [",
           ns ? ns->verdicts[VERDICT_COMPLIANT] : 0, fails, ns ? ns->verdicts[VERDICT_UNKNOWN] : 0);
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
