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

#include "findings.h"


#define AUDIT_REPORT_NAME "spark-identity"       /* metadata.name of every report */
#define AUDIT_REPORT_POLICY "spark-identity"     /* results[].policy */
#define AUDIT_REPORT_LEFT_OUT_ANNOTATION "spark-identity.io/results-left-out"

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

/* Findings as aligned columns, each followed by what was expected and
 * found, then a summary per namespace and the totals. */
int audit_report_table(const struct findings *f, const struct audit_report_info *info, FILE *out);

/* {"summary": {...}, "findings": [...]}, one finding per line. */
int audit_report_json(const struct findings *f, const struct audit_report_info *info, FILE *out);

/* A v1 List of PolicyReports: one per namespace that has pods or is in
 * info->namespaces, with no results where nothing fails, so that applying
 * it again replaces every earlier report: a namespace whose pods were fixed
 * or deleted gets its report emptied. *ret_left_out (may be NULL) is the
 * number of results left out over all reports. */
int audit_report_policyreports(const struct findings *f, const struct audit_report_info *info, FILE *out,
                               size_t *ret_left_out);
