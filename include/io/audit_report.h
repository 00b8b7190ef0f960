/* The outputs of the `audit` command, from the findings it gathered: a table
 * for a terminal, JSON for programs, and PolicyReports (wgpolicyk8s.io
 * v1alpha2, one per namespace) for `kubectl apply -f -`.
 *
 * Findings come out sorted by namespace, pod and problem, whatever order the
 * pods were read in. Each function writes to `out` only; it returns 0, or
 * -ENOMEM, or -EIO when writing failed. */
#pragma once
#include "webhook_limits.h"
#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>

#include "buf.h"
#include "findings.h"


#define AUDIT_REPORT_NAME "spark-identity"       /* metadata.name of every report */
#define AUDIT_REPORT_POLICY "spark-identity"     /* results[].policy */
#define AUDIT_REPORT_LEFT_OUT_ANNOTATION "spark-identity.io/results-left-out"
#define AUDIT_REPORT_SHA256_ANNOTATION "spark-identity.io/policy-sha256"
/* The label every report carries: `audit --apply` replaces and deletes
 * only the reports that have it. */
#define AUDIT_REPORT_MANAGED_BY_LABEL "app.kubernetes.io/managed-by"
#define AUDIT_REPORT_MANAGED_BY "spark-identity-webhook"

/* What the outputs say besides the findings. */
struct audit_report_info {
        const char *source;             /* where the pods came from: a file name, or the API server's URL */
        const char *policy_path;
        const char *policy_sha256;
        long long time;                 /* when the audit ran, seconds since the epoch */
        size_t max_results;             /* PolicyReport results per namespace; 0: AUDIT_REPORT_MAX_RESULTS */
        size_t max_findings;            /* how many findings the audit keeps (for the note on the rest) */
        bool namespaces_known;          /* labels and annotations were read (else "unknown" says why) */
        const char *const *namespaces;  /* namespaces known to exist, sorted (PolicyReports only); may be NULL */
        size_t n_namespaces;
};

/* Appends `s` as a terminal shows it without being steered by it, one way
 * for every text a tenant controls (names, label values, env values, image
 * names): a backslash becomes \\, a newline \n, a carriage return \r, a tab
 * \t, the other C0 controls and DEL \xHH (ESC is \x1b), the C1 controls
 * U+0080..U+009F and the characters that reorder or break a line (bidi
 * marks, embeddings, overrides and isolates; U+2028, U+2029) \uHHHH, and each
 * byte that is not part of valid UTF-8 \xHH. The rest is copied, so the text
 * stays on one line and shows what is there. 0, or -ENOBUFS past b's
 * maximum, or -ENOMEM. Pure. */
int audit_report_escape(struct buf *b, const char *s);

/* Findings as aligned columns, each followed by what was expected and
 * found, then a summary per namespace and the totals. Every text in it
 * goes through audit_report_escape(): a row is always one line. */
int audit_report_table(const struct findings *f, const struct audit_report_info *info, FILE *out);

/* {"summary": {...}, "findings": [...]}, one finding per line. Strings
 * are JSON-escaped, DEL, C1 and the line-reordering characters as \uHHHH
 * too, and bytes that are not UTF-8 become U+FFFD: the output is valid JSON
 * in UTF-8 whatever the pods hold. The same holds for the PolicyReports. */
int audit_report_json(const struct findings *f, const struct audit_report_info *info, FILE *out);

/* A v1 List of PolicyReports: one per namespace that has pods or is in
 * info->namespaces, with no results where nothing fails, so that applying
 * it again replaces every earlier report: a namespace whose pods were fixed
 * or deleted gets its report emptied. *ret_left_out (may be NULL) is the
 * number of results left out over all reports. */
int audit_report_policyreports(const struct findings *f, const struct audit_report_info *info, FILE *out,
                               size_t *ret_left_out);

/* One namespace's PolicyReport, as audit_report_policyreports() lists it.
 * Every pointer lives until on_report() returns. */
struct audit_report_one {
        const char *namespace_;
        size_t pass;            /* summary.pass: pods judged compliant (the table's COMPLIANT) */
        size_t fail;            /* summary.fail: findings, listed or left out */
        size_t skip;            /* summary.skip: pods not judged, their rule unknown (the table's UNKNOWN) */
        size_t left_out;        /* fail results not in the report (past info->max_results) */
        const char *json;       /* the report: one JSON object, `len` bytes, not NUL-terminated */
        size_t len;
};

/* The reports audit_report_policyreports() lists, one call of on_report()
 * each, in the same order. Stops at on_report()'s first non-zero answer and
 * returns it; 0, or -ENOMEM. */
int audit_report_policyreports_each(const struct findings *f, const struct audit_report_info *info,
                                    int (*on_report)(void *ctx, const struct audit_report_one *r), void *ctx);
