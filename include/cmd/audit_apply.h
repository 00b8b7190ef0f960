/* `audit -o policyreport --apply`: the PolicyReports of one audit written
 * through the API (README.md, "For auditors"). A namespace with findings
 * gets its report created, or replaced when what it says changed; the
 * reports this tool made (AUDIT_REPORT_MANAGED_BY_LABEL) in namespaces
 * without findings are deleted. One line per namespace on `out` says what
 * was done; errors go to stderr through audit_say().
 *
 * Ownership: nothing is kept; the findings and the info are read during the
 * call. */
#pragma once
#include <stddef.h>
#include <stdio.h>

#include "audit_report.h"
#include "findings.h"
#include "kube.h"

/* The reports' API, and the label selector of the reports this tool made. */
#define AUDIT_APPLY_API "/apis/wgpolicyk8s.io/v1alpha2"
#define AUDIT_APPLY_SELECTOR AUDIT_REPORT_MANAGED_BY_LABEL "=" AUDIT_REPORT_MANAGED_BY

/* What one run did. */
struct audit_apply_counts {
        size_t created, updated, unchanged, deleted;
        size_t failed;          /* namespaces whose report could not be written or deleted */
};

/* Writes the reports of `f` (those audit_report_policyreports() would list)
 * for every namespace in scope: `only_namespace`, or the whole cluster when
 * NULL. The existing reports are listed `page_size` a page, at most
 * AUDIT_REPORT_LIST_PAGE. 0 when every report was written or deleted, even with findings (the
 * reports hold them); a negative errno after saying why: -ENOENT when the
 * PolicyReport CRD is not installed, -EACCES for a 401 or 403 (the
 * permission named), -EIO when some namespaces failed (each said; the
 * others were done). *ret_counts is written in every case. */
int audit_apply(const struct kube *k, const struct findings *f, const struct audit_report_info *info,
                const char *only_namespace, unsigned page_size, FILE *out, struct audit_apply_counts *ret_counts);

/* Prints `audit: MESSAGE` on stderr, MESSAGE escaped as the table escapes
 * (it may quote the API server or a file): one line. In cmd_audit.c. */
__attribute__((format(printf, 1, 2))) void audit_say(const char *fmt, ...);
