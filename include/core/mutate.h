/* The admission decision for one pod: what a Spark pod gets from its
 * namespace's rule, and whether any pod may carry the identity it claims.
 *
 * Pure: the pod (a cJSON tree owned by the caller) and the policy in, a
 * decision, the typed changes (change.h), the JSON Patch jsonpatch makes of
 * them, and warnings out. No I/O, no globals, no locks. */
#pragma once
#include <stdbool.h>

#include <cjson/cJSON.h>

#include "change.h"
#include "jsonpatch.h"
#include "policy.h"
#include "pool.h"
#include "webhook_limits.h"

enum pod_role {
        POD_ROLE_NONE,          /* not a Spark pod */
        POD_ROLE_DRIVER,
        POD_ROLE_EXECUTOR,
        POD_ROLE_MAX,
};

enum decision {
        DECISION_UNCHANGED,     /* allowed, nothing to change */
        DECISION_MUTATED,       /* allowed with a patch */
        DECISION_DENIED,        /* refused */
        DECISION_WOULD_MUTATE,  /* audit mode: allowed unchanged, warnings say what would change */
        DECISION_MAX,
};

struct mutation {
        enum decision decision;
        enum pod_role role;
        enum policy_mode mode;          /* the mode that applied */
        const struct rule *rule;        /* NULL when the namespace has no entry; owned by the policy */
        const char *identity_before;    /* the pod's aadpodidbinding or NULL; points into the pod */
        const char *identity_after;     /* the identity the pod carries after us, or NULL */
        const char *app_id;             /* label spark-app-selector, or NULL; points into the pod */
        const char *app_name;           /* label spark-app-name, or NULL; points into the pod */
        const char *policy_sha256;      /* of the policy that decided; owned by the policy */
        enum policy_auth auth;          /* the rule's, or pod identity without a rule */
        const char *client_id;          /* workload identity: the federated client; owned by the policy */
        const char *service_account;    /* workload identity: the account the pod runs as after us;
                                           points into the pod or the policy */
        struct jsonpatch patch;         /* the changes as RFC 6902 operations, made by
                                           jsonpatch_changes() when the decision is MUTATED or
                                           WOULD_MUTATE; sent only when it is MUTATED */
        struct pool strings;            /* values the changes set that the pod and policy lack
                                           (a merged flags variable) */
        unsigned n_warnings;
        char warnings[WH_MAX_WARNINGS][WH_MAX_WARNING_CHARS + 1];
        char message[WH_MAX_MESSAGE_CHARS];  /* why, when DENIED */
        char grant_keys[WH_MAX_MESSAGE_CHARS / 2];   /* a namespace change: the grant keys it
                                                        changes (grants.h); else "" */
        size_t n_changes;
        /* What admission changes, in the order of the patch's operations;
         * complete when the decision is MUTATED or WOULD_MUTATE (a refusal
         * stops part way). Last, so that mutation_init() leaves the unused
         * entries unwritten. */
        struct change changes[WH_MAX_CHANGES];
};

/* What the caller found out about the pod's namespace. */
struct mutate_context {
        const struct resolution *res;          /* policy_resolve()'s answer for the namespace */
        const char *lookup_error;              /* why the namespace is unknown, when res->unknown */
};

/* Prepares an empty mutation. It does not write the change array (about
 * 86 KiB, WH_MAX_CHANGES entries): only n_changes of them are ever read. */
void mutation_init(struct mutation *m);

/* Adds a warning (at most WH_MAX_WARNINGS, each cut to WH_MAX_WARNING_CHARS
 * and kept valid UTF-8). */
__attribute__((format(printf, 2, 3))) void mutation_warn(struct mutation *m, const char *fmt, ...);

/* Refuses, with the message (cut to fit, kept valid UTF-8). */
__attribute__((format(printf, 2, 3))) void mutation_deny(struct mutation *m, const char *fmt, ...);

/* Releases the patch text and the strings of the changes. The pointers
 * into the pod and policy stay as they are, valid as long as those are. */
void mutation_free(struct mutation *m);

/* Decides on a pod CREATE in `namespace_`: a Spark pod gets its rule's
 * settings, and the identity any pod claims is judged by the claim rule. `m` must be freshly initialized.
 * Returns 0 (the outcome is in m: the changes, and their patch), or -ENOMEM,
 * or -E2BIG when the changes or the patch would pass their bounds
 * (WH_MAX_CHANGES, WH_MAX_PATCH_OPS, WH_MAX_PATCH_BYTES). */
int mutate_pod(const struct policy *p, const char *namespace_, const struct mutate_context *mc, const cJSON *pod,
               struct mutation *m);

/* Judges only the identity a pod claims (label aadpodidbinding), never
 * changing the pod: for pod UPDATEs (`old_pod` is the oldObject) and for the
 * validating path, which sees pods after every mutating webhook. A label
 * removed, or left as it was in `old_pod`, is allowed; one added or changed
 * is judged by the claim rule (policy.h). m->identity_before is the old
 * value (CREATE: the same as after). Returns 0 (the outcome is in m). */
int mutate_claim(const struct policy *p, const char *namespace_, const struct mutate_context *mc, const cJSON *old_pod,
                 const cJSON *pod, struct mutation *m);

/* The Spark role from a pod's labels; POD_ROLE_NONE for other pods. */
enum pod_role mutate_pod_role(const cJSON *pod);

/* The index of a Spark pod's Spark container in spec.containers, or -1 when
 * there are none: the one named spark-kubernetes-driver,
 * spark-kubernetes-executor or executor; else (a pod template renamed it)
 * the one whose first arg is driver or executor or whose env has
 * SPARK_APPLICATION_ID; else the first. */
int mutate_find_spark_container(const cJSON *pod);

/* Whether the decision is worth recording for auditors: the pod runs Spark
 * or claims an identity. */
bool mutation_matters(const struct mutation *m);

const char *mutate_decision_name(enum decision d);
const char *mutate_role_name(enum pod_role r);
