/* The policy: which identity, Java settings and hadoop-azure properties each
 * namespace's Spark pods get, and which identities a namespace may claim.
 *
 * policy_load() turns the policy text (YAML or JSON) into an immutable,
 * precompiled `struct policy`: every rule is already merged
 * (built-in defaults < `defaults` < the namespace's entry) and its JVM flags
 * are already computed, so the admission path only looks things up.
 *
 * Pure: no I/O, no globals, no locks. A loaded policy is read-only and may be
 * shared by any number of threads. */
#pragma once
#include <stdbool.h>
#include <stddef.h>

struct buf;

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

struct hadoop_prop {
        const char *key;         /* final key, per account when storageAccounts is set */
        const char *value;
};

/* One namespace's merged rule. All strings belong to the policy. */
struct rule {
        const char *namespace_;
        const char *identity;                  /* the aadpodidbinding value */
        const char *tenant_id;                 /* NULL when not set */
        const char *client_id;                 /* NULL when not set */
        enum policy_mode mode;
        enum policy_conflict on_conflict;
        enum policy_jvm_env jvm_env;
        const char *java_home;                 /* NULL: JAVA_HOME is left alone */
        const char *const *allowed_identities; /* identity first, then allowedIdentities */
        size_t n_allowed_identities;
        const char *const *storage_accounts;
        size_t n_storage_accounts;
        const struct hadoop_prop *hadoop;      /* sorted by key */
        size_t n_hadoop;
        const char *const *flags;              /* java.options, then -Dspark.hadoop.KEY=VALUE by key */
        size_t n_flags;
        const char *flags_joined;              /* the flags joined by single spaces */
};

struct policy;

/* Parses, validates and compiles a policy. On success writes a new policy to
 * *ret_policy (free with policy_free()) and returns 0. On failure returns
 * -EINVAL (or -ENOMEM) and appends one line per problem to `errors`, each
 * shaped "LINE:COL: PATH: message\n" (PATH like namespaces.team-a.clientId);
 * the caller prefixes the file name. */
int policy_load(const char *text, size_t len, struct policy **ret_policy, struct buf *errors);

/* Releases a policy. NULL is fine. */
void policy_free(struct policy *p);

/* The rule for a namespace, or NULL when the policy has no entry for it.
 * The rule lives as long as the policy. */
const struct rule *policy_rule_for(const struct policy *p, const char *namespace_);

/* Whether a pod in a namespace may carry `identity` in its aadpodidbinding
 * label. With a rule: its identity or one of its allowedIdentities. Without:
 * any identity the policy does not grant to some namespace. */
bool policy_identity_allowed(const struct policy *p, const struct rule *r, const char *identity);

/* The mode for pods in namespaces without an entry (`defaults.mode`). */
enum policy_mode policy_default_mode(const struct policy *p);

/* Whether Spark pods in namespaces without an entry are refused. */
bool policy_unmatched_deny(const struct policy *p);

/* The number of namespace entries. */
size_t policy_rule_count(const struct policy *p);

/* The rule at `index` in name order, for listing; NULL past the end. */
const struct rule *policy_rule_at(const struct policy *p, size_t index);

/* The sha256 of the policy text, 64 lowercase hex digits. */
const char *policy_sha256(const struct policy *p);

const char *policy_mode_name(enum policy_mode m);
const char *policy_conflict_name(enum policy_conflict c);
const char *policy_jvm_env_name(enum policy_jvm_env e);
