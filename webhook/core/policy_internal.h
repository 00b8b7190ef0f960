/* What the files of the policy module share (webhook/policy*.c), and
 * nothing else may use: the loaded policy's layout, the layers a rule is
 * merged from, the loader that reports a problem at its LINE:COL, and what
 * each file offers the others:
 *   policy_schema.c    value checks, the layers' keys, annotations as a layer
 *   policy_selector.c  label selectors: checking and matching
 *   policy_compile.c   merging layers into a rule (hadoop properties, JVM flags)
 *   policy_load.c      the document's top level, entries and lists: policy_load()
 *   policy.c           the loaded policy: rule lookups, claims, grantors
 * Pure, like policy.h: no I/O, no globals, no locks. */
#pragma once
#include <stdbool.h>
#include <stddef.h>

#include <cjson/cJSON.h>

#include "buf.h"
#include "doc.h"
#include "policy.h"
#include "pool.h"
#include "webhook_limits.h"

/* Problems reported in one load before the rest is skipped. */
#define POLICY_MAX_ERRORS 50u
#define PATH_MAX_CHARS 256u

/* Hadoop properties the policy sets itself, or refuses under `hadoop`. */
#define KEY_TENANT "fs.azure.account.oauth2.msi.tenant"
#define KEY_CLIENT "fs.azure.account.oauth2.client.id"
#define KEY_PROVIDER "fs.azure.account.oauth.provider.type"
#define KEY_TOKEN_FILE "fs.azure.account.oauth2.token.file"
#define KEY_AUTHORITY "fs.azure.account.oauth2.msi.authority"

#define GRANTOR_GROUP_PREFIX "group:"
#define GRANTOR_DEFAULT GRANTOR_GROUP_PREFIX "system:masters"

#define ANNOTATION_IDENTITY POLICY_ANNOTATION_PREFIX "identity"
#define ANNOTATION_CLIENT POLICY_ANNOTATION_PREFIX "client-id"
#define ANNOTATION_TENANT POLICY_ANNOTATION_PREFIX "tenant-id"
#define ANNOTATION_MODE POLICY_ANNOTATION_PREFIX "mode"
#define ANNOTATION_AUTH POLICY_ANNOTATION_PREFIX "auth"
#define ANNOTATION_SERVICE_ACCOUNT POLICY_ANNOTATION_PREFIX "service-account"

/* A list of words as checked. */
struct words {
        const char *items[WH_MAX_RULE_LIST_ITEMS];
        size_t n;
        bool set;
};

/* One layer of settings: `defaults`, a namespace entry, a selector entry, or
 * a namespace's annotations. Unset fields fall through to the layer below. */
struct layer {
        const char *path;                      /* "defaults", "namespaces.NAME", "selectors[i]" */
        const char *identity, *tenant_id, *client_id, *java_home, *resource_id;
        const char *service_account, *authority_host;
        bool java_home_set;
        int mode, on_conflict, jvm_env, auth;  /* -1: not set here */
        long token_expiration;                 /* -1: not set here */
        struct words java_options, storage_accounts, allowed_identities, extra_containers;
        struct hadoop_prop hadoop[WH_MAX_RULE_HADOOP_KEYS];   /* a NULL value removes the key */
        size_t n_hadoop;
};

#define LAYER_INIT(p) { .path = (p), .mode = -1, .on_conflict = -1, .jvm_env = -1, .auth = -1, .token_expiration = -1 }

/* A `selectors` entry: its requirements (all must hold) and its rule. */
struct selector_rule {
        struct policy_label_req *reqs;
        size_t n_reqs;
        struct rule rule;
};

/* A loaded policy: immutable once policy_load() returns it. Everything it
 * points to lives in its pool (the default grantor list excepted, static). */
struct policy {
        struct pool pool;
        struct layer base;                     /* `defaults`, its strings in the pool */
        struct rule *rules;                    /* `namespaces`, sorted by name */
        size_t n_rules;
        struct selector_rule *selectors;       /* `selectors`, in file order */
        size_t n_selectors;
        struct policy_identity *identities;    /* every identity the file names, sorted, unique */
        size_t n_identities;
        const char **grantors;                 /* as written: "alice", "group:NAME" */
        size_t n_grantors;
        const char **grant_labels;             /* label keys that selectors read, sorted, unique */
        size_t n_grant_labels;
        bool unlisted_deny;                    /* unlistedIdentities: deny */
        enum policy_mode default_mode;
        bool unmatched_deny;
        bool annotations;                      /* namespaceAnnotations: true */
        bool lookup_deny;                      /* onLookupFailure: deny */
        char sha256[65];
};

/* One load in progress: the document (for positions), the policy being
 * filled, and the problems found so far. */
struct loader {
        const struct doc *doc;
        struct policy *p;
        struct buf *errors;
        unsigned n_errors;
        bool oom;
        int defaults_auth;      /* defaults.auth, -1 when not set */
        /* Where each problem line starts in `errors` and the place it names
         * (0:0 for none), for policy_sort_errors(). */
        size_t errors_start;
        struct placed_error {
                unsigned line, col;
                size_t off;
        } placed[POLICY_MAX_ERRORS];
};

enum layer_kind { LAYER_DEFAULTS, LAYER_NAMED, LAYER_SELECTOR };

/* ---- policy_schema.c ---- */

/* A problem with a value, placed at the value; one with a key (unknown,
 * misplaced, malformed), placed at the key. Each is one line of
 * "LINE:COL: PATH: message" in the loader's errors, up to POLICY_MAX_ERRORS. */
__attribute__((format(printf, 4, 5))) void policy_fail(struct loader *l, const cJSON *node, const char *path,
                                                       const char *fmt, ...);
__attribute__((format(printf, 4, 5))) void policy_fail_key(struct loader *l, const cJSON *node, const char *path,
                                                           const char *fmt, ...);
/* Reports running out of memory, once. */
void policy_oom(struct loader *l);

/* An unknown key: "unknown key, did you mean KEY? (HAS)" when one of `keys`
 * is close to it (policy_key_suggest()), else "unknown key (HAS)"; `quoted`
 * names the key in the message too. Placed at the key. */
void policy_fail_unknown_key(struct loader *l, const cJSON *node, const char *path, bool quoted,
                             const char *const *keys, size_t n_keys, const char *has);

/* policy_key_suggest() is in policy.h: test files (policytest.h) suggest
 * keys the same way. */

/* Puts the problem lines written since l->errors_start in the order of the
 * file (by line, then column, lines without a place last, each kept whole). */
void policy_sort_errors(struct loader *l);

/* Writes a place in the policy, like namespaces.team-a.java.options[0]; a
 * place too long for the buffer ends in "...". */
__attribute__((format(printf, 2, 3))) void policy_path_printf(char out[PATH_MAX_CHARS], const char *fmt, ...);

/* A Kubernetes label value, non-empty: what aadpodidbinding may hold. */
bool policy_is_label_value(const char *s);
/* An RFC 1123 label: what a namespace name is. */
bool policy_is_dns_label(const char *s);

/* The index of `v` among `names`; -1 after reporting it. */
int policy_want_enum(struct loader *l, const cJSON *v, const char *path, const char *const *names, int n);
/* `v` as a boolean, reporting one that is not. */
bool policy_want_bool(struct loader *l, const cJSON *v, const char *path);

/* Reads one layer (`defaults`, a namespace entry, a selector entry) into
 * `ret`, reporting every problem; a selector's namespaceSelector goes to
 * `sel` and its name to *ret_name. Its strings point into the document. */
void policy_check_layer(struct loader *l, const cJSON *map, const char *path, enum layer_kind kind, struct layer *ret,
                        struct selector_rule *sel, const char **ret_name);

/* The value of annotation `key` of a namespace, or NULL. */
const char *policy_annotation_of(const struct ns_info *ns, const char *key);
/* The layer a namespace's annotations make; false (and a reason) when they
 * do not make a valid one. Its strings point into `ns`. */
bool policy_annotation_layer(const struct ns_info *ns, struct layer *ret, char *why, size_t whylen);

/* ---- policy_selector.c ---- */

/* A Kubernetes label key: an optional DNS-subdomain prefix and '/', then a
 * label value. */
bool policy_is_label_key(const char *s);

/* Reads a namespaceSelector into ret->reqs (strings in the policy's pool),
 * reporting every problem. */
void policy_check_selector(struct loader *l, const cJSON *sel, const char *path, struct selector_rule *ret);
/* Whether a namespace's labels meet every requirement of `s`. */
bool policy_selector_rule_matches(const struct selector_rule *s, const struct ns_info *ns);

/* ---- policy_compile.c ---- */

/* Merges the layers (defaults `d`, entry `e`) into a rule whose strings live
 * in `pool`. -EINVAL with a message in `err` for a rule that cannot be made
 * (an identity or workload identity setting missing, too many flags);
 * -ENOMEM. */
int policy_compile_rule(struct pool *pool, const char *name, enum rule_source source, const struct layer *d,
                        const struct layer *e, struct rule *ret, char *err, size_t errlen);
/* Copies a checked layer's strings into `pool`, so that it outlives the
 * document. 0 or -ENOMEM. */
int policy_layer_keep(struct pool *pool, struct layer *ly);

/* ---- policy.c: the orders the policy's arrays are sorted in ---- */

int policy_cmp_rule(const void *a, const void *b);          /* struct rule, by name */
int policy_cmp_identity(const void *a, const void *b);      /* struct policy_identity */
