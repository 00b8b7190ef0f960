/* The policy: which identity, Java settings and hadoop-azure properties each
 * namespace's Spark pods get, and which identities a namespace may claim.
 *
 * policy_load() turns the policy text (YAML or JSON) into an immutable,
 * precompiled `struct policy`: every rule of the file is already merged
 * (built-in defaults < `defaults` < the rule) and its JVM flags are already
 * computed, so the admission path only looks things up. A namespace's rule
 * comes, first match wins, from:
 *   1. its entry under `namespaces` (by name);
 *   2. its annotations, when `namespaceAnnotations: true`
 *      (spark-identity.io/identity, /client-id, /tenant-id, /mode, /auth,
 *      /service-account);
 *   3. the first entry of `selectors` whose namespaceSelector matches its
 *      labels (Kubernetes label-selector semantics).
 * policy_resolve() does that lookup for one namespace.
 *
 * Pure: no I/O, no globals, no locks. A loaded policy is read-only and may be
 * shared by any number of threads. */
#pragma once
#include <stdbool.h>
#include <stddef.h>

#include "webhook_limits.h"

struct buf;
struct pool;

enum policy_mode {
        POLICY_MODE_ENFORCE,    /* mutate, and refuse what is not allowed */
        POLICY_MODE_AUDIT,      /* allow everything unchanged; warn what would change */
        POLICY_MODE_OFF,        /* allow everything unchanged, say nothing */
        POLICY_MODE_MAX,
};

enum policy_conflict {
        POLICY_CONFLICT_OVERRIDE,  /* another identity on a Spark pod is replaced, with a warning */
        POLICY_CONFLICT_DENY,      /* ... is refused */
        POLICY_CONFLICT_MAX,
};

enum policy_jvm_env {
        POLICY_JVM_ENV_SPARK,              /* SPARK_SUBMIT_OPTS (driver), SPARK_JAVA_OPT_n (executor) */
        POLICY_JVM_ENV_JAVA_TOOL_OPTIONS,  /* JAVA_TOOL_OPTIONS, for images with their own entrypoint */
        POLICY_JVM_ENV_MAX,
};

/* How a namespace's Spark pods get their Azure identity. */
enum policy_auth {
        POLICY_AUTH_POD_IDENTITY,        /* aad-pod-identity: label aadpodidbinding, MsiTokenProvider */
        POLICY_AUTH_WORKLOAD_IDENTITY,   /* Azure Workload Identity: a projected service-account
                                            token, AZURE_* env, WorkloadIdentityTokenProvider */
        POLICY_AUTH_MAX,
};

/* Workload identity: what the pods get. The token volume and its mount have
 * names of their own, so they never collide with what Azure Workload
 * Identity's webhook adds (azure-identity-token at /var/run/secrets/azure/tokens). */
#define POLICY_WI_AUDIENCE "api://AzureADTokenExchange"
#define POLICY_WI_VOLUME "spark-identity-azure-token"
#define POLICY_WI_MOUNT_PATH "/var/run/secrets/spark-identity/azure"
#define POLICY_WI_TOKEN_NAME "azure-identity-token"
#define POLICY_WI_TOKEN_FILE POLICY_WI_MOUNT_PATH "/" POLICY_WI_TOKEN_NAME
#define POLICY_WI_AUTHORITY_DEFAULT "https://login.microsoftonline.com/"
/* The projected token's lifetime, as Azure Workload Identity allows it. */
#define POLICY_WI_TOKEN_EXPIRATION_MIN 3600u
#define POLICY_WI_TOKEN_EXPIRATION_DEFAULT 3600u
#define POLICY_WI_TOKEN_EXPIRATION_MAX 86400u

enum rule_source {
        RULE_NONE,              /* no rule applies */
        RULE_NAMED,             /* namespaces.NAME */
        RULE_ANNOTATIONS,       /* the namespace's spark-identity.io/ annotations */
        RULE_SELECTOR,          /* selectors[i] */
        RULE_SOURCE_MAX,
};

struct hadoop_prop {
        const char *key;         /* final key, per account when storageAccounts is set */
        const char *value;
};

/* One merged rule. All strings belong to the policy (or, for a rule made
 * from annotations, to the pool given to policy_resolve()). */
struct rule {
        const char *name;                      /* for logs: "team-a", "selector data-teams",
                                                  "annotations of team-x" */
        enum rule_source source;
        enum policy_auth auth;
        const char *identity;                  /* the aadpodidbinding value; NULL only with
                                                  workload identity, where it is optional */
        const char *tenant_id;                 /* NULL when not set */
        const char *client_id;                 /* NULL when not set */
        const char *resource_id;               /* the managed identity's Azure resource id (resourceId),
                                                  for render identities only; NULL when not set */
        enum policy_mode mode;
        enum policy_conflict on_conflict;
        enum policy_jvm_env jvm_env;
        const char *java_home;                 /* NULL: JAVA_HOME is left alone */
        const char *const *allowed_identities; /* identity first, then allowedIdentities; each once */
        size_t n_allowed_identities;
        const char *const *storage_accounts;
        size_t n_storage_accounts;
        const struct hadoop_prop *hadoop;      /* sorted by key */
        size_t n_hadoop;
        const char *const *flags;              /* java.options, then -Dspark.hadoop.KEY=VALUE by key */
        size_t n_flags;
        const char *flags_joined;              /* the flags joined by single spaces */
        /* Workload identity only (NULL, 0 with pod identity): */
        const char *service_account;           /* the federated service account; NULL: not checked */
        const char *authority_host;            /* AZURE_AUTHORITY_HOST */
        unsigned token_expiration_s;           /* the projected token's expirationSeconds */
        const char *const *extra_containers;   /* init containers and sidecars that get it too */
        size_t n_extra_containers;
};

/* A label or an annotation. */
struct kv {
        const char *key;
        const char *value;
};

/* What is known of a namespace: its labels and its spark-identity.io/
 * annotations (others may be left out). Owned by the caller. */
struct ns_info {
        const struct kv *labels;
        size_t n_labels;
        const struct kv *annotations;
        size_t n_annotations;
};

#define POLICY_ANNOTATION_PREFIX "spark-identity.io/"
/* How every output that writes text says a namespace has no rule: tables,
 * explain, the auditAnnotations and PolicyReport properties (string maps);
 * JSON documents that allow it (the decision log, audit -o json) write null. */
#define POLICY_NO_RULE "none"

/* The outcome of policy_resolve(). */
struct resolution {
        const struct rule *rule;      /* NULL: no rule applies (or the namespace is unknown) */
        bool unknown;                 /* the rule depends on the namespace, which is not known */
        char problem[256];            /* annotations that do not make a rule: why; else "" */
        struct rule annotated;        /* storage for a rule made from annotations */
};

struct policy;

/* Parses, validates and compiles a policy. On success writes a new policy to
 * *ret_policy (free with policy_free()) and returns 0. On failure returns
 * -EINVAL (or -ENOMEM) and appends one line per problem to `errors`, each
 * shaped "LINE:COL: PATH: message\n" (PATH like namespaces.team-a.clientId);
 * the caller prefixes the file name. */
int policy_load(const char *text, size_t len, struct policy **ret_policy, struct buf *errors);

/* The same, for a policy that carries the SHA-256 of its text (`sha256`: 64
 * lowercase hex digits, copied; NULL: none), which policy_sha256() returns
 * for logs, metrics and rendered objects. Whoever reads the text hashes it
 * (policy_file_load() does): the policy itself links no crypto library. */
int policy_load_sha256(const char *text, size_t len, const char *sha256, struct policy **ret_policy,
                       struct buf *errors);

/* Releases a policy. NULL is fine. */
void policy_free(struct policy *p);

/* Appends policy_load()'s problem lines (`problems`) to `out`, each with the
 * name of what held the text in front, as compilers do: "FILE:LINE:COL: ..."
 * (a line with no place gets "FILE: ..."). The one writer of the lines
 * check-policy prints, the server logs and the policy ConfigMap's webhook
 * answers. 0, or -ENOBUFS/-ENOMEM from `out` (then part is written). */
int policy_errors_prefix(struct buf *out, const char *file, const char *problems);

/* Whether the rule of `namespace_` could depend on its labels or
 * annotations: it has no entry by name, and the policy has selectors or
 * reads annotations. */
bool policy_needs_namespace(const struct policy *p, const char *namespace_);

/* Whether the policy reads namespaces at all (selectors or annotations). */
bool policy_uses_namespaces(const struct policy *p);

/* Finds the rule of a namespace. `info` is what is known of it, or NULL
 * when it could not be read. A rule made from annotations is compiled into
 * ret_res->annotated with its strings from `pool` (which the caller frees after
 * the rule's last use). Returns 0, or -ENOMEM. */
int policy_resolve(const struct policy *p, const char *namespace_, const struct ns_info *info, struct pool *pool,
                   struct resolution *ret_res);

/* The named rule of a namespace, or NULL: the entry under `namespaces` only. */
const struct rule *policy_rule_for(const struct policy *p, const char *namespace_);

/* ---- who may carry an identity (the claim rule) ----
 *
 * Namespace N may carry identity I (label aadpodidbinding) when the rule
 * that applies to N names I (`identity` or `allowedIdentities`). Otherwise
 * the claim is judged by the identity's protection, not by the claimer's
 * mode:
 *   - I is listed (named by an entry, a selector or delegableIdentities):
 *     its protection is the strongest mode among the rules that name it
 *     (enforce > audit > off), and `defaults.mode` for a delegable one;
 *     enforce refuses the claim, audit warns, off ignores it;
 *   - I is unlisted: `unlistedIdentities: deny` refuses it; otherwise a
 *     namespace with a rule follows its own mode (its rule lists what it may
 *     use) and one without a rule may carry it. */
enum policy_claim {
        POLICY_CLAIM_ALLOWED,
        POLICY_CLAIM_WARN,      /* allowed, with a warning */
        POLICY_CLAIM_DENIED,
        POLICY_CLAIM_MAX,
};

/* An identity the policy names, and how it is protected. */
struct policy_identity {
        const char *identity;
        enum policy_mode protection;   /* the strongest mode of its owners */
        bool reserved;                 /* named by a `namespaces` or a `selectors` entry */
        bool delegable;                /* listed in delegableIdentities */
};

/* Why policy_judge_claim() answered as it did. */
enum policy_claim_reason {
        POLICY_CLAIM_GRANTED,          /* the namespace's rule names it */
        POLICY_CLAIM_OWNED,            /* listed: `listed` says by whom and how protected */
        POLICY_CLAIM_UNLISTED_DENY,    /* unlisted, and unlistedIdentities: deny */
        POLICY_CLAIM_UNLISTED_RULE,    /* unlisted, and the namespace's rule does not name it */
        POLICY_CLAIM_UNLISTED_FREE,    /* unlisted, the namespace has no rule: not our business */
};

struct policy_claim_verdict {
        enum policy_claim claim;
        enum policy_claim_reason reason;
        const struct policy_identity *listed;   /* NULL when unlisted; owned by the policy */
};

/* Judges whether a pod of a namespace whose rule is `r` (NULL: none) may
 * carry `identity`. Pure and constant-time in the policy's size (bsearch). */
struct policy_claim_verdict policy_judge_claim(const struct policy *p, const struct rule *r, const char *identity);

/* Whether rule `r` names `identity`. */
bool policy_rule_grants(const struct rule *r, const char *identity);

/* The identities the policy names (entries, selectors, delegableIdentities),
 * sorted by name; NULL past the end. policy_identity_find(): NULL when
 * unlisted, else the very element policy_identity_at() gives at its index
 * (one array: `found - policy_identity_at(p, 0)` is that index). */
size_t policy_identity_count(const struct policy *p);
const struct policy_identity *policy_identity_at(const struct policy *p, size_t index);
const struct policy_identity *policy_identity_find(const struct policy *p, const char *identity);

/* Whether a claim of an identity the policy names nowhere is refused
 * (unlistedIdentities: deny). */
bool policy_unlisted_deny(const struct policy *p);

/* The identities of `defaults.allowedIdentities` (which every rule, also one
 * made from annotations, inherits unless it lists its own); *ret_n. */
const char *const *policy_default_allowed_identities(const struct policy *p, size_t *ret_n);

/* ---- grant keys and grantors ----
 * A grant key is what gives a namespace its rule besides its name: any
 * spark-identity.io/ annotation, and every label key that a `selectors`
 * entry reads. Only grantors (top-level `grantors`: user names, and
 * `group:NAME` entries; default group:system:masters) may add, change or
 * remove one. A policy that reads no namespaces has no grant keys. */

/* Whether label `key` is read by some selector. */
bool policy_grant_label(const struct policy *p, const char *key);

/* The label keys selectors read, sorted, unique; NULL past the end. */
size_t policy_grant_label_count(const struct policy *p);
const char *policy_grant_label_at(const struct policy *p, size_t index);

/* Whether the user, or one of its groups, is a grantor. */
bool policy_is_grantor(const struct policy *p, const char *user, const char *const *groups, size_t n_groups);

/* The grantors as written (`alice`, `group:platform-admins`); NULL past the end. */
size_t policy_grantor_count(const struct policy *p);
const char *policy_grantor_at(const struct policy *p, size_t index);

/* ---- selectors, for those who render them elsewhere (CEL) ---- */
enum policy_label_op {
        POLICY_LABEL_IN,
        POLICY_LABEL_NOT_IN,           /* a missing label is "not in" */
        POLICY_LABEL_EXISTS,
        POLICY_LABEL_DOES_NOT_EXIST,
        POLICY_LABEL_OP_MAX,
};

struct policy_label_req {
        const char *key;
        enum policy_label_op op;
        const char *const *values;
        size_t n_values;
};

/* The requirements of selector number `index` (all must hold; none: it
 * matches every namespace); *ret_n. NULL, 0 past the end. */
const struct policy_label_req *policy_selector_requirements(const struct policy *p, size_t index, size_t *ret_n);

/* The mode for pods in namespaces without a rule (`defaults.mode`). */
enum policy_mode policy_default_mode(const struct policy *p);

/* Whether Spark pods in namespaces without a rule are refused. */
bool policy_unmatched_deny(const struct policy *p);

/* Whether a pod whose namespace cannot be read is refused (onLookupFailure). */
bool policy_lookup_deny(const struct policy *p);

/* The entries under `namespaces`, in name order; NULL past the end. */
size_t policy_rule_count(const struct policy *p);
const struct rule *policy_rule_at(const struct policy *p, size_t index);

/* The entries under `selectors`, in file order; NULL past the end. */
size_t policy_selector_count(const struct policy *p);
const struct rule *policy_selector_at(const struct policy *p, size_t index);

/* Whether namespaces' annotations supply rules. */
bool policy_reads_annotations(const struct policy *p);

/* Whether `info`'s labels match selector number `index` (Kubernetes
 * semantics: every requirement holds; an empty selector matches all). */
bool policy_selector_matches(const struct policy *p, size_t index, const struct ns_info *info);

/* The sha256 of the policy text as policy_load_sha256() was given it, 64
 * lowercase hex digits; "" when it was given none (policy_load()). */
const char *policy_sha256(const struct policy *p);

/* The key of `keys` that `key` most likely meant: the closest by edit
 * distance (insert, delete, replace, swap two neighbours; letters without
 * case), when it is at most a third of that key's length; NULL when none is.
 * What "unknown key, did you mean KEY?" names, in a policy as in a test file. */
const char *policy_key_suggest(const char *key, const char *const *keys, size_t n_keys);

/* ---- the schema's value checks ----
 * What policy_load() accepts for each kind of value, by the checks it
 * applies itself: every value of a loaded policy (and of a rule made from
 * annotations) passes the check of its kind. */
enum policy_value {
        POLICY_VALUE_WORD,            /* non-empty, at most WH_MAX_POLICY_STRING, no white space */
        POLICY_VALUE_JVM_OPTION,      /* a word starting with '-': java.options */
        POLICY_VALUE_JAVA_HOME,       /* a word starting with '/': java.home */
        POLICY_VALUE_LABEL_VALUE,     /* a Kubernetes label value, non-empty: an identity */
        POLICY_VALUE_LABEL_KEY,       /* a Kubernetes label key: what a selector reads */
        POLICY_VALUE_DNS_LABEL,       /* an RFC 1123 label: a namespace, a container name */
        POLICY_VALUE_GUID,            /* tenantId, clientId */
        POLICY_VALUE_STORAGE_ACCOUNT, /* 3 to 24 lowercase letters and digits */
        POLICY_VALUE_SERVICE_ACCOUNT, /* an RFC 1123 subdomain */
        POLICY_VALUE_HTTPS_URL,       /* an https URL with a host: authorityHost */
        POLICY_VALUE_HADOOP_KEY,      /* non-empty, without white space or '=' */
        POLICY_VALUE_RESOURCE_ID,     /* a user-assigned managed identity's resource id: resourceId */
        POLICY_VALUE_MAX,
};

/* Whether `s` is a valid value of `kind`; false for NULL or a kind out of range. */
bool policy_value_valid(enum policy_value kind, const char *s);

/* A user-assigned managed identity's Azure resource id, taken apart:
 * /subscriptions/<GUID>/resourceGroups/<RG>/providers/Microsoft.ManagedIdentity/userAssignedIdentities/<NAME>
 * (the fixed segments in any case, as Azure gives them out: `resourcegroups`
 * from the CLI, `resourceGroups` from the portal). */
struct policy_resource_id {
        char subscription[37];
        char resource_group[WH_AZURE_RESOURCE_GROUP_MAX + 1];
        char name[WH_AZURE_IDENTITY_NAME_MAX + 1];
};

/* Parses `s` into *ret. 0; -EINVAL with what is wrong in `why` (*ret then
 * unspecified). */
int policy_resource_id_parse(const char *s, struct policy_resource_id *ret, char *why, size_t whylen);

const char *policy_mode_name(enum policy_mode m);
const char *policy_conflict_name(enum policy_conflict c);
const char *policy_jvm_env_name(enum policy_jvm_env e);
const char *policy_auth_name(enum policy_auth a);
