/* Findings: how a stored pod (as `kubectl get pods -o json` shows it,
 * mutated or not) stands against the policy, judged the way admission would
 * judge it if the pod were created now.
 *
 * findings_check_pod() resolves the namespace's rule with policy_resolve()
 * and runs mutate_pod() on the pod: every change admission would make (its
 * typed changes, change.h) is something the pod lacks. Namespaces in `audit` mode are judged like
 * `enforce` (an auditor wants to know what enforce would change), and
 * onConflict like `override` (so that a pod with another identity is also
 * checked for its JVM settings); namespaces in `off` mode are not judged.
 *
 * The findings accumulate in a `struct findings`, with counts per namespace
 * for a summary. Everything a finding says is copied into the findings'
 * pool, so the pod may be freed right after the call (the `audit` command
 * drops each page of pods once it is judged).
 *
 * Pure: no I/O, no globals, no locks. */
#pragma once
#include <stdbool.h>
#include <stddef.h>

#include <cjson/cJSON.h>

#include "mutate.h"
#include "policy.h"
#include "pool.h"

enum finding_problem {
        FINDING_MISSING_IDENTITY,       /* Spark pod without the aadpodidbinding label */
        FINDING_WRONG_IDENTITY,         /* Spark pod with another identity than its rule's */
        FINDING_FOREIGN_IDENTITY,       /* any pod claiming an identity its namespace may not use */
        FINDING_MISSING_JVM_SETTINGS,   /* Spark container lacks the rule's JVM flags or JAVA_HOME */
        FINDING_NO_POLICY,              /* Spark pod without a rule while unmatched: deny (or
                                           whose namespace's annotations make no valid rule) */
        FINDING_MISSING_WORKLOAD_IDENTITY,  /* Spark pod of a workload-identity namespace without
                                           the AZURE_* env, the token volume or its mount, or
                                           running as another service account */
        FINDING_TOO_LARGE,              /* any pod too large for the audit to read: not judged */
        FINDING_PROBLEM_MAX,
};

/* How one pod came out. */
enum pod_verdict {
        VERDICT_NOT_CONCERNED,  /* not a Spark pod and claims no identity */
        VERDICT_COMPLIANT,      /* judged; nothing to say */
        VERDICT_FINDINGS,       /* judged; one or more findings */
        VERDICT_UNKNOWN,        /* its rule depends on its namespace, which is not known */
        VERDICT_OFF,            /* the namespace's mode is off */
        VERDICT_MAX,
};

/* One finding. Every string belongs to the findings' pool. */
struct finding {
        enum finding_problem problem;
        const char *namespace_;
        const char *pod;                /* metadata.name, or generateName */
        const char *uid;                /* metadata.uid, or NULL */
        const char *phase;              /* status.phase (Running, Succeeded, ...), or NULL */
        enum pod_role role;             /* POD_ROLE_NONE for a pod that is not Spark's */
        const char *app_id;             /* label spark-app-selector, or NULL */
        const char *rule;               /* the rule's name ("team-a", "selector x"), or NULL */
        enum policy_mode mode;          /* the namespace's mode (audit: admission only warns) */
        const char *expected;           /* what the policy wants, e.g. "aadpodidbinding=sparkaks" */
        const char *found;              /* what the pod has, e.g. "no aadpodidbinding label" */
};

/* The counts of one namespace. `name` and `rule` belong to the pool. */
struct findings_namespace {
        const char *name;
        const char *rule;               /* NULL: no rule (or not known) */
        enum policy_mode mode;          /* the mode its pods were judged under */
        size_t pods;                    /* every pod seen */
        size_t spark_pods;
        size_t verdicts[VERDICT_MAX];
        size_t problems[FINDING_PROBLEM_MAX];
};

struct findings {
        struct pool pool;
        struct finding *items;          /* in the order found */
        size_t n, cap;
        size_t max;                     /* findings kept at most; the rest are only counted */
        size_t not_kept;                /* findings past `max` */
        struct findings_namespace *namespaces;  /* sorted by name */
        size_t n_namespaces, cap_namespaces;
        size_t last_namespace;          /* the index hit last: pods come grouped by namespace */
};

/* What the caller knows of the pod's namespace. */
struct findings_context {
        const struct ns_info *info;             /* NULL: the namespace is not known */
};

/* Prepares an empty list that keeps at most `max` findings. Allocates nothing. */
void findings_init(struct findings *f, size_t max);

/* Releases everything. NULL and a zeroed struct are fine. */
void findings_free(struct findings *f);

/* Judges one pod of `namespace_` (NULL: the pod's metadata.namespace) and
 * adds its findings and counts to `f`. *ret_verdict (may be NULL) tells how
 * the pod came out. 0; -EINVAL when the pod is not an object or has no
 * namespace; -ENOMEM; -E2BIG when the changes admission would make pass
 * their bounds. Each kind of change (change.h) has its finding: a new kind
 * does not compile until this module names it. */
int findings_check_pod(const struct policy *p, const char *namespace_, const struct findings_context *fc,
                       const cJSON *pod, struct findings *f, enum pod_verdict *ret_verdict);

/* Adds a pod of `namespace_` (NULL: metadata's namespace) that could not be
 * read whole, so not judged: the answer that held it alone passed `bound`
 * bytes. A `too-large` finding in any mode, whatever the pod is: no pod the
 * API server stores comes near the bound, and one that passes it would
 * otherwise hide what it claims. `metadata` is what came of the pod's
 * (name, uid, labels; any may lack). 0; -EINVAL when no namespace is known;
 * -ENOMEM. */
int findings_add_too_large(const struct policy *p, const char *namespace_, const struct findings_context *fc,
                           const cJSON *metadata, size_t bound, struct findings *f);

/* The number of findings, kept or not. */
size_t findings_total(const struct findings *f);

/* Totals over all namespaces, into *ret_totals (name and rule NULL). */
void findings_totals(const struct findings *f, struct findings_namespace *ret_totals);

/* "missing-identity", ...; "?" out of range. */
const char *finding_problem_name(enum finding_problem problem);

/* "not-concerned", "compliant", "findings", "unknown", "off". */
const char *findings_verdict_name(enum pod_verdict verdict);
