/* Policy loading, validation, compilation and lookups: see include/policy.h. */
#include "policy.h"

#include <errno.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "buf.h"
#include "doc.h"
#include "pool.h"
#include "webhook_limits.h"

/* Problems reported in one load before the rest is skipped. */
#define POLICY_MAX_ERRORS 50u
#define PATH_MAX_CHARS 256u

/* The built-in layer under `defaults`. */
static const char *const builtin_java_options[] = { "-Dio.netty.tryReflectionSetAccessible=true" };
static const struct hadoop_prop builtin_hadoop[] = {
        { "fs.azure.account.auth.type", "OAuth" },
        { "fs.azure.account.oauth.provider.type", "org.apache.hadoop.fs.azurebfs.oauth2.MsiTokenProvider" },
};
#define N_BUILTIN_OPTIONS (sizeof builtin_java_options / sizeof builtin_java_options[0])
#define N_BUILTIN_HADOOP (sizeof builtin_hadoop / sizeof builtin_hadoop[0])
#define KEY_TENANT "fs.azure.account.oauth2.msi.tenant"
#define KEY_CLIENT "fs.azure.account.oauth2.client.id"
#define KEY_PROVIDER "fs.azure.account.oauth.provider.type"
#define KEY_TOKEN_FILE "fs.azure.account.oauth2.token.file"
#define KEY_AUTHORITY "fs.azure.account.oauth2.msi.authority"
#define WI_PROVIDER "org.apache.hadoop.fs.azurebfs.oauth2.WorkloadIdentityTokenProvider"
#define ACCOUNT_SUFFIX ".dfs.core.windows.net"

#define POLICY_TOP_KEYS "defaults, namespaces, selectors, namespaceAnnotations, onLookupFailure, " \
                        "unmatched, unlistedIdentities, delegableIdentities and grantors"
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
        const char *identity, *tenant_id, *client_id, *java_home;
        const char *service_account, *authority_host;
        bool java_home_set;
        int mode, on_conflict, jvm_env, auth;  /* -1: not set here */
        long token_expiration;                 /* -1: not set here */
        struct words java_options, storage_accounts, allowed_identities, extra_containers;
        struct hadoop_prop hadoop[WH_MAX_RULE_HADOOP_KEYS];   /* a NULL value removes the key */
        size_t n_hadoop;
};

#define LAYER_INIT(p) { .path = (p), .mode = -1, .on_conflict = -1, .jvm_env = -1, .auth = -1, \
                        .token_expiration = -1 }


struct selector_rule {
        struct policy_label_req *reqs;
        size_t n_reqs;
        struct rule rule;
};

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

void policy_free(struct policy *p)
{
        if (!p)
                return;
        pool_free(&p->pool);
        free(p);
}

/* ---- error reporting ---- */

struct loader {
        const struct doc *doc;
        struct policy *p;
        struct buf *errors;
        unsigned n_errors;
        bool oom;
        int defaults_auth;      /* defaults.auth, -1 when not set */
};

static void vfail(struct loader *l, const cJSON *node, bool at_key, const char *path,
                  const char *fmt, va_list ap)
{
        if (++l->n_errors > POLICY_MAX_ERRORS)
                return;
        unsigned line = 0, col = 0;
        if (node && ((at_key && doc_key_position(l->doc, node, &line, &col) == 0) ||
                     doc_position(l->doc, node, &line, &col) == 0))
                buf_printf(l->errors, "%u:%u: ", line, col);
        if (path && *path)
                buf_printf(l->errors, "%s: ", path);
        char msg[512];
        vsnprintf(msg, sizeof msg, fmt, ap);
        buf_puts(l->errors, msg);
        buf_putc(l->errors, '\n');
}

/* A problem with a value, placed at the value. */
__attribute__((format(printf, 4, 5)))
static void fail(struct loader *l, const cJSON *node, const char *path, const char *fmt, ...)
{
        va_list ap;
        va_start(ap, fmt);
        vfail(l, node, false, path, fmt, ap);
        va_end(ap);
}

/* A problem with a key (unknown, misplaced, malformed), placed at the key. */
__attribute__((format(printf, 4, 5)))
static void fail_key(struct loader *l, const cJSON *node, const char *path, const char *fmt, ...)
{
        va_list ap;
        va_start(ap, fmt);
        vfail(l, node, true, path, fmt, ap);
        va_end(ap);
}

static void oom(struct loader *l)
{
        if (!l->oom)
                fail(l, NULL, NULL, "out of memory");
        l->oom = true;
}

/* Writes a place in the policy, like namespaces.team-a.java.options[0]; a
 * place too long for the buffer ends in "...". */
__attribute__((format(printf, 2, 3)))
static void path_printf(char out[PATH_MAX_CHARS], const char *fmt, ...)
{
        va_list ap;
        va_start(ap, fmt);
        int n = vsnprintf(out, PATH_MAX_CHARS, fmt, ap);
        va_end(ap);
        if (n >= (int)PATH_MAX_CHARS)
                memcpy(out + PATH_MAX_CHARS - 4, "...", 4);
}

/* ---- value checks ---- */

static bool has_space(const char *s)
{
        for (; *s; s++)
                if (*s == ' ' || *s == '\t' || *s == '\n' || *s == '\r' || *s == '\v' || *s == '\f')
                        return true;
        return false;
}

static bool is_alnum(char c)
{
        return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');
}

/* A Kubernetes label value, non-empty: what aadpodidbinding may hold. */
static bool is_label_value(const char *s)
{
        size_t n = strlen(s);
        if (n == 0 || n > 63 || !is_alnum(s[0]) || !is_alnum(s[n - 1]))
                return false;
        for (size_t i = 0; i < n; i++)
                if (!is_alnum(s[i]) && s[i] != '-' && s[i] != '_' && s[i] != '.')
                        return false;
        return true;
}

/* An RFC 1123 label: what a namespace name is. */
static bool is_dns_label(const char *s)
{
        size_t n = strlen(s);
        if (n == 0 || n > 63)
                return false;
        for (size_t i = 0; i < n; i++) {
                char c = s[i];
                bool ok = (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
                          (c == '-' && i > 0 && i < n - 1);
                if (!ok)
                        return false;
        }
        return true;
}

/* An RFC 1123 subdomain: what a service account name is. */
static bool is_dns_subdomain(const char *s)
{
        size_t n = strlen(s);
        if (n == 0 || n > 253 || s[0] == '.' || s[0] == '-' || s[n - 1] == '.' || s[n - 1] == '-')
                return false;
        for (size_t i = 0; i < n; i++) {
                char c = s[i];
                if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' || c == '.'))
                        return false;
                if (c == '.' && (s[i + 1] == '.' || s[i + 1] == '-' || s[i - 1] == '-'))
                        return false;
        }
        return true;
}

/* An https URL with a host: what AZURE_AUTHORITY_HOST may be. */
static bool is_https_url(const char *s)
{
        static const char scheme[] = "https://";
        if (strncmp(s, scheme, sizeof scheme - 1) != 0)
                return false;
        const char *host = s + sizeof scheme - 1;
        return *host && *host != '/' && *host != ':';
}

static bool is_uuid(const char *s)
{
        if (strlen(s) != 36)
                return false;
        for (int i = 0; i < 36; i++) {
                char c = s[i];
                if (i == 8 || i == 13 || i == 18 || i == 23) {
                        if (c != '-')
                                return false;
                } else if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F'))) {
                        return false;
                }
        }
        return true;
}

/* An Azure storage account name. */
static bool is_account_name(const char *s)
{
        size_t n = strlen(s);
        if (n < 3 || n > 24)
                return false;
        for (size_t i = 0; i < n; i++)
                if (!((s[i] >= 'a' && s[i] <= 'z') || (s[i] >= '0' && s[i] <= '9')))
                        return false;
        return true;
}

/* A string value: present, a string, short, and without white space. */
static const char *want_word(struct loader *l, const cJSON *v, const char *path)
{
        if (!cJSON_IsString(v)) {
                fail(l, v, path, "must be a string");
                return NULL;
        }
        const char *s = v->valuestring;
        if (!*s) {
                fail(l, v, path, "must not be empty");
                return NULL;
        }
        if (strlen(s) > WH_MAX_POLICY_STRING) {
                fail(l, v, path, "longer than %u characters", WH_MAX_POLICY_STRING);
                return NULL;
        }
        if (has_space(s)) {
                fail(l, v, path, "must be one word without white space (JVM flags are split on it): \"%s\"", s);
                return NULL;
        }
        return s;
}

static int want_enum(struct loader *l, const cJSON *v, const char *path,
                     const char *const *names, int n)
{
        if (cJSON_IsString(v))
                for (int i = 0; i < n; i++)
                        if (strcmp(v->valuestring, names[i]) == 0)
                                return i;
        char choices[128] = "";
        for (int i = 0; i < n; i++) {
                strncat(choices, names[i], sizeof choices - strlen(choices) - 1);
                if (i + 1 < n)
                        strncat(choices, " | ", sizeof choices - strlen(choices) - 1);
        }
        fail(l, v, path, "must be one of %s", choices);
        return -1;
}

static const char *const mode_names[POLICY_MODE_MAX] = { "enforce", "audit", "off" };
static const char *const conflict_names[POLICY_CONFLICT_MAX] = { "override", "deny" };
static const char *const jvm_env_names[POLICY_JVM_ENV_MAX] = { "spark", "JAVA_TOOL_OPTIONS" };
static const char *const auth_names[POLICY_AUTH_MAX] = { "podIdentity", "workloadIdentity" };

const char *policy_auth_name(enum policy_auth a)
{
        return a < POLICY_AUTH_MAX ? auth_names[a] : "?";
}

const char *policy_mode_name(enum policy_mode m)
{
        return m < POLICY_MODE_MAX ? mode_names[m] : "?";
}

const char *policy_conflict_name(enum policy_conflict c)
{
        return c < POLICY_CONFLICT_MAX ? conflict_names[c] : "?";
}

const char *policy_jvm_env_name(enum policy_jvm_env e)
{
        return e < POLICY_JVM_ENV_MAX ? jvm_env_names[e] : "?";
}

/* ---- layers: `defaults` and each rule entry, checked on their own ---- */

enum word_kind { WORD_ANY, WORD_FLAG, WORD_IDENTITY, WORD_ACCOUNT, WORD_CONTAINER };

static void want_words(struct loader *l, const cJSON *v, const char *path,
                       enum word_kind kind, struct words *ret)
{
        char ipath[PATH_MAX_CHARS];
        ret->set = true;
        if (!cJSON_IsArray(v)) {
                fail(l, v, path, "must be a list");
                return;
        }
        int i = 0;
        const cJSON *it;
        cJSON_ArrayForEach(it, v) {
                path_printf(ipath, "%s[%d]", path, i++);
                if (ret->n == WH_MAX_RULE_LIST_ITEMS) {
                        fail(l, it, ipath, "more than %u items", WH_MAX_RULE_LIST_ITEMS);
                        return;
                }
                const char *s = want_word(l, it, ipath);
                if (!s)
                        continue;
                if (kind == WORD_FLAG && s[0] != '-') {
                        fail(l, it, ipath, "a JVM option starts with '-': \"%s\"", s);
                        continue;
                }
                if (kind == WORD_IDENTITY && !is_label_value(s)) {
                        fail(l, it, ipath, "\"%s\" is not a valid label value (at most 63 of "
                             "A-Z a-z 0-9 - _ ., starting and ending alphanumeric)", s);
                        continue;
                }
                if (kind == WORD_CONTAINER && !is_dns_label(s)) {
                        fail(l, it, ipath, "\"%s\" is not a container name (lowercase letters, "
                             "digits and '-', at most 63)", s);
                        continue;
                }
                if (kind == WORD_ACCOUNT && !is_account_name(s)) {
                        fail(l, it, ipath, "\"%s\" is not a storage account name (3 to 24 "
                             "lowercase letters and digits)", s);
                        continue;
                }
                ret->items[ret->n++] = s;
        }
}

static const char *want_uuid(struct loader *l, const cJSON *v, const char *path)
{
        const char *s = want_word(l, v, path);
        if (s && !is_uuid(s)) {
                fail(l, v, path, "\"%s\" is not a GUID like 72f988bf-86f1-41af-91ab-2d7cd011db47", s);
                return NULL;
        }
        return s;
}

/* A scalar hadoop value as text; numbers and booleans print as YAML wrote them. */
static const char *scalar_text(struct loader *l, const cJSON *v)
{
        if (cJSON_IsString(v))
                return v->valuestring;
        if (cJSON_IsBool(v))
                return cJSON_IsTrue(v) ? "true" : "false";
        char num[64];
        double d = v->valuedouble;
        if (d > -1e15 && d < 1e15 && d == (double)(long long)d)   /* range first: the cast must fit */
                snprintf(num, sizeof num, "%lld", (long long)d);
        else
                snprintf(num, sizeof num, "%.17g", d);
        const char *s = pool_strdup(&l->p->pool, num);
        if (!s)
                oom(l);
        return s;
}

static void check_hadoop_map(struct loader *l, const cJSON *map, const char *path, struct layer *ret)
{
        char kpath[PATH_MAX_CHARS];
        if (!cJSON_IsObject(map)) {
                fail(l, map, path, "must be a map of hadoop property to value");
                return;
        }
        const cJSON *it;
        cJSON_ArrayForEach(it, map) {
                path_printf(kpath, "%s.%s", path, it->string);
                if (ret->n_hadoop == WH_MAX_RULE_HADOOP_KEYS) {
                        fail(l, it, kpath, "more than %u hadoop properties", WH_MAX_RULE_HADOOP_KEYS);
                        return;
                }
                if (!*it->string || has_space(it->string) || strchr(it->string, '=')) {
                        fail_key(l, it, kpath, "a hadoop property name has no white space or '='");
                        continue;
                }
                if (strlen(it->string) > WH_MAX_POLICY_STRING) {
                        fail_key(l, it, kpath, "a hadoop property name is at most %u characters",
                                 WH_MAX_POLICY_STRING);
                        continue;
                }
                if (strcmp(it->string, KEY_TOKEN_FILE) == 0) {
                        fail_key(l, it, kpath, "auth: workloadIdentity sets this to the token it mounts "
                                 "(%s); it is not set under hadoop", POLICY_WI_TOKEN_FILE);
                        continue;
                }
                if (strcmp(it->string, KEY_TENANT) == 0 || strcmp(it->string, KEY_CLIENT) == 0) {
                        fail_key(l, it, kpath, "set this through %s, not under hadoop",
                                 strcmp(it->string, KEY_TENANT) == 0 ? "tenantId" : "clientId");
                        continue;
                }
                const char *value = NULL;   /* null: remove the key set below */
                if (cJSON_IsBool(it) || cJSON_IsNumber(it))
                        value = scalar_text(l, it);
                else if (!cJSON_IsNull(it) && !(value = want_word(l, it, kpath)))
                        continue;
                ret->hadoop[ret->n_hadoop++] = (struct hadoop_prop){ it->string, value };
        }
}

static void check_java(struct loader *l, const cJSON *java, const char *path, struct layer *ret)
{
        char kpath[PATH_MAX_CHARS];
        if (!cJSON_IsObject(java)) {
                fail(l, java, path, "must be a map with home and options");
                return;
        }
        const cJSON *it;
        cJSON_ArrayForEach(it, java) {
                path_printf(kpath, "%s.%s", path, it->string);
                if (strcmp(it->string, "home") == 0) {
                        ret->java_home_set = true;
                        if (cJSON_IsNull(it))
                                continue;  /* an entry may unset the default */
                        const char *s = want_word(l, it, kpath);
                        if (s && s[0] != '/')
                                fail(l, it, kpath, "must be an absolute path");
                        else
                                ret->java_home = s;
                } else if (strcmp(it->string, "options") == 0) {
                        want_words(l, it, kpath, WORD_FLAG, &ret->java_options);
                } else {
                        fail_key(l, it, kpath, "unknown key (java has home and options)");
                }
        }
}

static void check_selector(struct loader *l, const cJSON *sel, const char *path,
                           struct selector_rule *ret);

enum layer_kind { LAYER_DEFAULTS, LAYER_NAMED, LAYER_SELECTOR };

/* Reads one layer. */
static void check_layer(struct loader *l, const cJSON *map, const char *path, enum layer_kind kind,
                        struct layer *ret, struct selector_rule *sel, const char **ret_name)
{
        char kpath[PATH_MAX_CHARS];
        static const char *const what[] = { "defaults section", "namespace entry", "selector entry" };

        *ret = (struct layer)LAYER_INIT(path);
        if (!cJSON_IsObject(map)) {
                fail(l, map, path, kind == LAYER_DEFAULTS ? "must be a map"
                                                          : "must be a map with at least identity");
                return;
        }
        const cJSON *it;
        cJSON_ArrayForEach(it, map) {
                const char *k = it->string;
                path_printf(kpath, "%s.%s", path, k);
                if (strcmp(k, "identity") == 0) {
                        if (kind == LAYER_DEFAULTS) {
                                fail_key(l, it, kpath, "an identity belongs to a namespace or selector "
                                         "entry, not to defaults");
                                continue;
                        }
                        const char *s = want_word(l, it, kpath);
                        if (s && !is_label_value(s))
                                fail(l, it, kpath, "\"%s\" is not a valid label value (at most 63 "
                                     "of A-Z a-z 0-9 - _ ., starting and ending alphanumeric)", s);
                        else
                                ret->identity = s;
                } else if (strcmp(k, "tenantId") == 0) {
                        ret->tenant_id = want_uuid(l, it, kpath);
                } else if (strcmp(k, "clientId") == 0) {
                        ret->client_id = want_uuid(l, it, kpath);
                } else if (strcmp(k, "mode") == 0) {
                        ret->mode = want_enum(l, it, kpath, mode_names, POLICY_MODE_MAX);
                } else if (strcmp(k, "onConflict") == 0) {
                        ret->on_conflict = want_enum(l, it, kpath, conflict_names, POLICY_CONFLICT_MAX);
                } else if (strcmp(k, "jvmEnv") == 0) {
                        ret->jvm_env = want_enum(l, it, kpath, jvm_env_names, POLICY_JVM_ENV_MAX);
                } else if (strcmp(k, "java") == 0) {
                        check_java(l, it, kpath, ret);
                } else if (strcmp(k, "hadoop") == 0) {
                        check_hadoop_map(l, it, kpath, ret);
                } else if (strcmp(k, "storageAccounts") == 0) {
                        want_words(l, it, kpath, WORD_ACCOUNT, &ret->storage_accounts);
                } else if (strcmp(k, "allowedIdentities") == 0) {
                        want_words(l, it, kpath, WORD_IDENTITY, &ret->allowed_identities);
                } else if (strcmp(k, "auth") == 0) {
                        ret->auth = want_enum(l, it, kpath, auth_names, POLICY_AUTH_MAX);
                } else if (strcmp(k, "serviceAccount") == 0) {
                        const char *s = want_word(l, it, kpath);
                        if (s && !is_dns_subdomain(s))
                                fail(l, it, kpath, "\"%s\" is not a service account name (lowercase "
                                     "letters, digits, '-' and '.', at most 253)", s);
                        else
                                ret->service_account = s;
                } else if (strcmp(k, "authorityHost") == 0) {
                        const char *s = want_word(l, it, kpath);
                        if (s && !is_https_url(s))
                                fail(l, it, kpath, "\"%s\" is not an https URL like %s", s,
                                     POLICY_WI_AUTHORITY_DEFAULT);
                        else
                                ret->authority_host = s;
                } else if (strcmp(k, "tokenExpirationSeconds") == 0) {
                        double d = cJSON_IsNumber(it) ? it->valuedouble : -1;
                        if (d < POLICY_WI_TOKEN_EXPIRATION_MIN || d > POLICY_WI_TOKEN_EXPIRATION_MAX ||
                            d != (double)(long)d)
                                fail(l, it, kpath, "must be a whole number of seconds from %u to %u",
                                     POLICY_WI_TOKEN_EXPIRATION_MIN, POLICY_WI_TOKEN_EXPIRATION_MAX);
                        else
                                ret->token_expiration = (long)d;
                } else if (strcmp(k, "extraContainers") == 0) {
                        want_words(l, it, kpath, WORD_CONTAINER, &ret->extra_containers);
                } else if (kind == LAYER_SELECTOR && strcmp(k, "namespaceSelector") == 0) {
                        check_selector(l, it, kpath, sel);
                } else if (kind == LAYER_SELECTOR && strcmp(k, "name") == 0) {
                        *ret_name = want_word(l, it, kpath);
                } else {
                        fail_key(l, it, kpath, "unknown key (a %s has %sidentity, tenantId, clientId, "
                                 "allowedIdentities, storageAccounts, mode, onConflict, java, hadoop, "
                                 "jvmEnv, auth, serviceAccount, authorityHost, tokenExpirationSeconds, "
                                 "extraContainers)", what[kind],
                                 kind == LAYER_SELECTOR ? "name, namespaceSelector, " : "");
                }
        }
        int auth = ret->auth >= 0 ? ret->auth : l->defaults_auth;
        if (kind != LAYER_DEFAULTS && auth != POLICY_AUTH_WORKLOAD_IDENTITY && !ret->identity &&
            !cJSON_GetObjectItemCaseSensitive(map, "identity"))
                fail_key(l, map, path, "identity is required (the aadpodidbinding label; with "
                         "auth: workloadIdentity it is optional)");
        if (kind == LAYER_SELECTOR && !cJSON_GetObjectItemCaseSensitive(map, "namespaceSelector"))
                fail_key(l, map, path, "namespaceSelector is required (use {} to match every namespace)");
}

/* ---- label selectors, Kubernetes semantics ---- */

/* A label key: an optional DNS-subdomain prefix and '/', then a name of at
 * most 63 characters of alphanumerics, '-', '_', '.', alphanumeric at both ends. */
static bool is_label_key(const char *s)
{
        const char *slash = strrchr(s, '/');
        const char *name = slash ? slash + 1 : s;
        if (slash && (slash == s || slash - s > 253))
                return false;
        for (const char *c = s; slash && c < slash; c++)
                if (!((*c >= 'a' && *c <= 'z') || (*c >= '0' && *c <= '9') || *c == '-' || *c == '.'))
                        return false;
        return is_label_value(name);
}

static void check_selector(struct loader *l, const cJSON *sel, const char *path,
                           struct selector_rule *ret)
{
        static const char *const op_names[POLICY_LABEL_OP_MAX] = { "In", "NotIn", "Exists", "DoesNotExist" };
        char kpath[PATH_MAX_CHARS], ipath[PATH_MAX_CHARS];
        struct pool *pool = &l->p->pool;

        if (!cJSON_IsObject(sel)) {
                fail(l, sel, path, "must be a map with matchLabels and/or matchExpressions");
                return;
        }
        const cJSON *labels = cJSON_GetObjectItemCaseSensitive(sel, "matchLabels");
        const cJSON *exprs = cJSON_GetObjectItemCaseSensitive(sel, "matchExpressions");
        const cJSON *it;
        cJSON_ArrayForEach(it, sel)
                if (strcmp(it->string, "matchLabels") != 0 && strcmp(it->string, "matchExpressions") != 0) {
                        path_printf(kpath, "%s.%s", path, it->string);
                        fail_key(l, it, kpath, "unknown key (a namespaceSelector has matchLabels "
                                 "and matchExpressions)");
                }
        size_t n = (size_t)(cJSON_IsObject(labels) ? cJSON_GetArraySize(labels) : 0) +
                   (size_t)(cJSON_IsArray(exprs) ? cJSON_GetArraySize(exprs) : 0);
        if (n > WH_MAX_RULE_LIST_ITEMS) {
                fail(l, sel, path, "more than %u requirements", WH_MAX_RULE_LIST_ITEMS);
                return;
        }
        ret->reqs = pool_alloc(pool, (n ? n : 1) * sizeof *ret->reqs);
        if (!ret->reqs) {
                oom(l);
                return;
        }
        if (labels) {
                path_printf(kpath, "%s.matchLabels", path);
                if (!cJSON_IsObject(labels))
                        fail(l, labels, kpath, "must be a map of label to value");
                const cJSON *label_map = cJSON_IsObject(labels) ? labels : NULL;
                cJSON_ArrayForEach(it, label_map) {
                        path_printf(ipath, "%s.%s", kpath, it->string);
                        if (!is_label_key(it->string)) {
                                fail_key(l, it, ipath, "\"%s\" is not a label key", it->string);
                                continue;
                        }
                        if (!cJSON_IsString(it) || (*it->valuestring && !is_label_value(it->valuestring))) {
                                fail(l, it, ipath, "must be a label value (a string)");
                                continue;
                        }
                        const char **v = pool_alloc(pool, sizeof *v);
                        if (!v) {
                                oom(l);
                                return;
                        }
                        v[0] = pool_strdup(pool, it->valuestring);
                        ret->reqs[ret->n_reqs++] = (struct policy_label_req){
                                .key = pool_strdup(pool, it->string), .op = POLICY_LABEL_IN, .values = v, .n_values = 1 };
                }
        }
        if (!exprs)
                return;
        path_printf(kpath, "%s.matchExpressions", path);
        if (!cJSON_IsArray(exprs)) {
                fail(l, exprs, kpath, "must be a list of {key, operator, values}");
                return;
        }
        int i = 0;
        cJSON_ArrayForEach(it, exprs) {
                path_printf(ipath, "%s[%d]", kpath, i++);
                const cJSON *key = cJSON_GetObjectItemCaseSensitive(it, "key");
                const cJSON *op = cJSON_GetObjectItemCaseSensitive(it, "operator");
                const cJSON *values = cJSON_GetObjectItemCaseSensitive(it, "values");
                if (!cJSON_IsObject(it)) {
                        fail(l, it, ipath, "must be a map with key, operator and values");
                        continue;
                }
                const cJSON *f;
                bool bad = false;
                cJSON_ArrayForEach(f, it)
                        if (strcmp(f->string, "key") && strcmp(f->string, "operator") && strcmp(f->string, "values")) {
                                fail_key(l, f, ipath, "unknown key \"%s\" (a requirement has key, "
                                         "operator and values)", f->string);
                                bad = true;
                        }
                if (!cJSON_IsString(key) || !is_label_key(key->valuestring)) {
                        fail(l, key ? key : it, ipath, "key must be a label key");
                        continue;
                }
                int o = -1;
                for (int k = 0; cJSON_IsString(op) && k < POLICY_LABEL_OP_MAX; k++)
                        if (strcmp(op->valuestring, op_names[k]) == 0)
                                o = k;
                if (o < 0) {
                        fail(l, op ? op : it, ipath, "operator must be one of In | NotIn | Exists | DoesNotExist");
                        continue;
                }
                int nv = cJSON_IsArray(values) ? cJSON_GetArraySize(values) : 0;
                if (values && !cJSON_IsArray(values)) {
                        fail(l, values, ipath, "values must be a list");
                        continue;
                }
                if ((o == POLICY_LABEL_IN || o == POLICY_LABEL_NOT_IN) && nv == 0) {
                        fail(l, it, ipath, "%s needs at least one value", op_names[o]);
                        continue;
                }
                if ((o == POLICY_LABEL_EXISTS || o == POLICY_LABEL_DOES_NOT_EXIST) && nv > 0) {
                        fail(l, values, ipath, "%s takes no values", op_names[o]);
                        continue;
                }
                if (nv > (int)WH_MAX_RULE_LIST_ITEMS) {
                        fail(l, values, ipath, "more than %u values", WH_MAX_RULE_LIST_ITEMS);
                        continue;
                }
                const char **vs = pool_alloc(pool, (size_t)(nv ? nv : 1) * sizeof *vs);
                if (!vs) {
                        oom(l);
                        return;
                }
                int k = 0;
                cJSON_ArrayForEach(f, values) {
                        if (!cJSON_IsString(f) || (*f->valuestring && !is_label_value(f->valuestring))) {
                                fail(l, f, ipath, "values must be label values (strings)");
                                bad = true;
                                break;
                        }
                        vs[k++] = pool_strdup(pool, f->valuestring);
                }
                if (bad)
                        continue;
                ret->reqs[ret->n_reqs++] = (struct policy_label_req){
                        .key = pool_strdup(pool, key->valuestring), .op = (enum policy_label_op)o,
                        .values = vs, .n_values = (size_t)nv };
        }
}

static const char *label_of(const struct ns_info *ns, const char *key)
{
        for (size_t i = 0; ns && i < ns->n_labels; i++)
                if (strcmp(ns->labels[i].key, key) == 0)
                        return ns->labels[i].value;
        return NULL;
}

static bool requirement_holds(const struct policy_label_req *r, const struct ns_info *ns)
{
        const char *v = label_of(ns, r->key);
        bool in = false;
        for (size_t i = 0; v && i < r->n_values; i++)
                in = in || strcmp(v, r->values[i]) == 0;
        switch (r->op) {
        case POLICY_LABEL_IN: return in;
        case POLICY_LABEL_NOT_IN: return !in;        /* a missing label is "not in" */
        case POLICY_LABEL_EXISTS: return v != NULL;
        case POLICY_LABEL_DOES_NOT_EXIST: return v == NULL;
        default: return false;
        }
}

static bool selector_matches(const struct selector_rule *s, const struct ns_info *ns)
{
        for (size_t i = 0; i < s->n_reqs; i++)
                if (!requirement_holds(&s->reqs[i], ns))
                        return false;
        return true;
}

/* ---- compiling a rule from the layers ---- */

struct prop_list {
        struct hadoop_prop items[2 * WH_MAX_RULE_HADOOP_KEYS + N_BUILTIN_HADOOP + 2];
        size_t n;
};

static void props_set(struct prop_list *pl, const char *key, const char *value)
{
        for (size_t i = 0; i < pl->n; i++) {
                if (strcmp(pl->items[i].key, key) == 0) {
                        if (value)
                                pl->items[i].value = value;
                        else
                                pl->items[i] = pl->items[--pl->n];
                        return;
                }
        }
        if (value && pl->n < sizeof pl->items / sizeof pl->items[0])
                pl->items[pl->n++] = (struct hadoop_prop){ key, value };
}

static int cmp_prop(const void *a, const void *b)
{
        return strcmp(((const struct hadoop_prop *)a)->key, ((const struct hadoop_prop *)b)->key);
}

static bool ends_with(const char *s, const char *suffix)
{
        size_t n = strlen(s), m = strlen(suffix);
        return n >= m && strcmp(s + n - m, suffix) == 0;
}

static const char *const *pool_words(struct pool *pool, const char *first,
                                     const char *const *items, size_t n, size_t *ret_n)
{
        size_t total = n + (first ? 1 : 0);
        const char **out = pool_alloc(pool, (total ? total : 1) * sizeof *out);
        if (!out)
                return NULL;
        size_t k = 0;
        if (first)
                out[k++] = pool_strdup(pool, first);
        for (size_t i = 0; i < n; i++) {
                bool dup = false;
                for (size_t j = 0; j < k; j++)
                        dup = dup || (out[j] && strcmp(out[j], items[i]) == 0);
                if (!dup)
                        out[k++] = pool_strdup(pool, items[i]);
        }
        for (size_t j = 0; j < k; j++)
                if (!out[j])
                        return NULL;
        *ret_n = k;
        return out;
}

/* The entry's value where it set one, else the default's. */
#define PICK(field, unset) (e->field != (unset) ? e->field : d->field)

/* Merges the layers into a rule whose strings live in `pool`. -EINVAL with a
 * message in `err` for a rule with too many flags; -ENOMEM. */
static int compile_rule(struct pool *pool, const char *name, enum rule_source source,
                        const struct layer *d, const struct layer *e, struct rule *ret,
                        char *err, size_t errlen)
{
        int mode = PICK(mode, -1), on_conflict = PICK(on_conflict, -1), jvm_env = PICK(jvm_env, -1);
        int auth = PICK(auth, -1);
        bool wi = auth == POLICY_AUTH_WORKLOAD_IDENTITY;
        struct rule r = {
                .name = pool_strdup(pool, name),
                .source = source,
                .auth = wi ? POLICY_AUTH_WORKLOAD_IDENTITY : POLICY_AUTH_POD_IDENTITY,
                .identity = pool_strdup(pool, e->identity),
                .mode = mode >= 0 ? (enum policy_mode)mode : POLICY_MODE_ENFORCE,
                .on_conflict = on_conflict >= 0 ? (enum policy_conflict)on_conflict
                                                : POLICY_CONFLICT_OVERRIDE,
                .jvm_env = jvm_env >= 0 ? (enum policy_jvm_env)jvm_env : POLICY_JVM_ENV_SPARK,
        };
        const char *tenant = PICK(tenant_id, NULL), *client = PICK(client_id, NULL);
        const char *home = e->java_home_set ? e->java_home : d->java_home;
        const char *sa = PICK(service_account, NULL), *authority = PICK(authority_host, NULL);
        const struct words *extra = e->extra_containers.set ? &e->extra_containers : &d->extra_containers;
        long expiration = PICK(token_expiration, -1);

        if (!wi && !e->identity) {
                snprintf(err, errlen, "identity is required (the aadpodidbinding label; with "
                         "auth: workloadIdentity it is optional)");
                return -EINVAL;
        }
        if (!wi && (e->service_account || e->authority_host || e->token_expiration >= 0 ||
                    e->extra_containers.set)) {
                snprintf(err, errlen, "%s applies to auth: workloadIdentity only, and this rule's auth "
                         "is podIdentity", e->service_account ? "serviceAccount"
                         : e->authority_host ? "authorityHost"
                         : e->token_expiration >= 0 ? "tokenExpirationSeconds" : "extraContainers");
                return -EINVAL;
        }
        if (wi && (!tenant || !client)) {
                snprintf(err, errlen, "auth: workloadIdentity needs %s (in the rule or in defaults): "
                         "the federated identity's %s", !client ? "clientId" : "tenantId",
                         !client ? "client ID" : "tenant");
                return -EINVAL;
        }
        if (wi) {
                r.service_account = pool_strdup(pool, sa);
                r.authority_host = pool_strdup(pool, authority ? authority : POLICY_WI_AUTHORITY_DEFAULT);
                r.token_expiration_s = expiration >= 0 ? (unsigned)expiration : POLICY_WI_TOKEN_EXPIRATION_DEFAULT;
                r.extra_containers = pool_words(pool, NULL, extra->items, extra->n, &r.n_extra_containers);
                if ((sa && !r.service_account) || !r.authority_host || !r.extra_containers)
                        return -ENOMEM;
        }
        r.tenant_id = pool_strdup(pool, tenant);
        r.client_id = pool_strdup(pool, client);
        r.java_home = pool_strdup(pool, home);

        const struct words *acc = e->storage_accounts.set ? &e->storage_accounts : &d->storage_accounts;
        const struct words *alw = e->allowed_identities.set ? &e->allowed_identities
                                                            : &d->allowed_identities;
        r.storage_accounts = pool_words(pool, NULL, acc->items, acc->n, &r.n_storage_accounts);
        r.allowed_identities = pool_words(pool, e->identity, alw->items, alw->n, &r.n_allowed_identities);
        if (!r.storage_accounts)
                return -ENOMEM;

        /* Hadoop properties: built-in < defaults < entry, then the identity's. */
        struct prop_list *pl = malloc(sizeof *pl);
        if (!pl)
                return -ENOMEM;
        pl->n = 0;
        for (size_t i = 0; i < N_BUILTIN_HADOOP; i++)
                props_set(pl, builtin_hadoop[i].key, builtin_hadoop[i].value);
        for (size_t i = 0; i < d->n_hadoop; i++)
                props_set(pl, d->hadoop[i].key, d->hadoop[i].value);
        if (wi)   /* the provider follows auth, unless the rule itself names one */
                props_set(pl, KEY_PROVIDER, WI_PROVIDER);
        for (size_t i = 0; i < e->n_hadoop; i++)
                props_set(pl, e->hadoop[i].key, e->hadoop[i].value);
        if (r.tenant_id)
                props_set(pl, KEY_TENANT, r.tenant_id);
        if (r.client_id)
                props_set(pl, KEY_CLIENT, r.client_id);
        if (wi)
                props_set(pl, KEY_TOKEN_FILE, POLICY_WI_TOKEN_FILE);
        if (wi && strcmp(r.authority_host, POLICY_WI_AUTHORITY_DEFAULT) != 0)
                props_set(pl, KEY_AUTHORITY, r.authority_host);   /* hadoop-azure's default is the public cloud */

        /* Per-account keys replace the global fs.azure.* ones. */
        size_t n_props = 0;
        size_t cap = pl->n * (r.n_storage_accounts ? r.n_storage_accounts : 1) + 1;
        struct hadoop_prop *props = pool_alloc(pool, cap * sizeof *props);
        for (size_t i = 0; props && i < pl->n; i++) {
                const struct hadoop_prop *hp = &pl->items[i];
                bool per_account = r.n_storage_accounts && strncmp(hp->key, "fs.azure.", 9) == 0 &&
                                   !ends_with(hp->key, ACCOUNT_SUFFIX);
                if (!per_account) {
                        props[n_props++] = (struct hadoop_prop){ pool_strdup(pool, hp->key),
                                                                 pool_strdup(pool, hp->value) };
                        continue;
                }
                for (size_t a = 0; a < r.n_storage_accounts; a++) {
                        char key[WH_MAX_POLICY_STRING + 64];
                        int kn = snprintf(key, sizeof key, "%s.%s" ACCOUNT_SUFFIX, hp->key, r.storage_accounts[a]);
                        if (kn < 0 || (size_t)kn >= sizeof key) {
                                snprintf(err, errlen, "the hadoop property %.60s... is too long", hp->key);
                                free(pl);   /* after the message: hp points into it */
                                return -EINVAL;
                        }
                        props[n_props++] = (struct hadoop_prop){ pool_strdup(pool, key),
                                                                 pool_strdup(pool, hp->value) };
                }
        }
        free(pl);
        if (!props)
                return -ENOMEM;

        /* The JVM flags: java.options as listed, then the hadoop properties. */
        const struct words *opt = e->java_options.set ? &e->java_options : &d->java_options;
        const char *const *options = opt->set ? opt->items : builtin_java_options;
        size_t n_options = opt->set ? opt->n : N_BUILTIN_OPTIONS;
        if (n_options + n_props > WH_MAX_RULE_FLAGS) {
                snprintf(err, errlen, "this rule makes %zu JVM flags; at most %u",
                         n_options + n_props, WH_MAX_RULE_FLAGS);
                return -EINVAL;
        }
        qsort(props, n_props, sizeof *props, cmp_prop);
        r.hadoop = props;
        r.n_hadoop = n_props;

        const char **flags = pool_alloc(pool, (n_options + n_props + 1) * sizeof *flags);
        struct buf joined;
        buf_init(&joined, SIZE_MAX / 2);
        int rc = flags ? 0 : -ENOMEM;
        for (size_t i = 0; rc == 0 && i < n_options; i++) {
                flags[r.n_flags++] = pool_strdup(pool, options[i]);
                rc = buf_printf(&joined, "%s%s", i ? " " : "", options[i]);
        }
        for (size_t i = 0; rc == 0 && i < n_props; i++) {
                char flag[2 * WH_MAX_POLICY_STRING + 128];
                int fn = snprintf(flag, sizeof flag, "-Dspark.hadoop.%s=%s", props[i].key, props[i].value);
                if (fn < 0 || (size_t)fn >= sizeof flag) {
                        snprintf(err, errlen, "the JVM flag for %.60s... is too long", props[i].key);
                        rc = -EINVAL;
                        break;
                }
                flags[r.n_flags++] = pool_strdup(pool, flag);
                rc = buf_printf(&joined, "%s%s", joined.len ? " " : "", flag);
        }
        if (rc == 0) {
                r.flags = flags;
                r.flags_joined = pool_strdup(pool, joined.data ? joined.data : "");
        }
        buf_free(&joined);
        if (rc < 0)
                return rc == -EINVAL ? rc : -ENOMEM;
        for (size_t i = 0; i < r.n_flags; i++)
                if (!r.flags[i])
                        rc = -ENOMEM;
        for (size_t i = 0; i < n_props; i++)
                if (!props[i].key || !props[i].value)
                        rc = -ENOMEM;
        if (rc < 0 || !r.name || (e->identity && !r.identity) || !r.flags_joined || !r.allowed_identities ||
            (tenant && !r.tenant_id) || (client && !r.client_id) || (home && !r.java_home))
                return -ENOMEM;
        *ret = r;
        return 0;
}

/* Copies a checked layer's strings into the policy's pool, so that it
 * outlives the document: `defaults` is the base of rules made later from
 * annotations. */
static int layer_keep(struct pool *pool, struct layer *ly)
{
        const char **fields[] = { &ly->identity, &ly->tenant_id, &ly->client_id, &ly->java_home,
                                  &ly->service_account, &ly->authority_host };
        for (size_t i = 0; i < sizeof fields / sizeof *fields; i++)
                if (*fields[i] && !(*fields[i] = pool_strdup(pool, *fields[i])))
                        return -ENOMEM;
        struct words *lists[] = { &ly->java_options, &ly->storage_accounts, &ly->allowed_identities,
                                  &ly->extra_containers };
        for (size_t i = 0; i < sizeof lists / sizeof *lists; i++)
                for (size_t k = 0; k < lists[i]->n; k++)
                        if (!(lists[i]->items[k] = pool_strdup(pool, lists[i]->items[k])))
                                return -ENOMEM;
        for (size_t k = 0; k < ly->n_hadoop; k++) {
                ly->hadoop[k].key = pool_strdup(pool, ly->hadoop[k].key);
                if (!ly->hadoop[k].key || (ly->hadoop[k].value &&
                                           !(ly->hadoop[k].value = pool_strdup(pool, ly->hadoop[k].value))))
                        return -ENOMEM;
        }
        ly->path = "defaults";
        return 0;
}

/* ---- the whole policy ---- */

static int cmp_rule(const void *a, const void *b)
{
        return strcmp(((const struct rule *)a)->name, ((const struct rule *)b)->name);
}

static int cmp_str(const void *a, const void *b)
{
        return strcmp(*(const char *const *)a, *(const char *const *)b);
}

static int cmp_identity(const void *a, const void *b)
{
        return strcmp(((const struct policy_identity *)a)->identity,
                      ((const struct policy_identity *)b)->identity);
}

/* The strongest of two modes: enforce, then audit, then off. */
static enum policy_mode mode_strongest(enum policy_mode a, enum policy_mode b)
{
        return a < b ? a : b;
}

/* Every identity the file names, with its protection (the strongest mode of
 * the rules that name it; defaults.mode for a delegable one). */
static int collect_identities(struct policy *p, const char *const *delegable, size_t n_delegable)
{
        size_t total = n_delegable;
        for (size_t i = 0; i < p->n_rules; i++)
                total += p->rules[i].n_allowed_identities;
        for (size_t i = 0; i < p->n_selectors; i++)
                total += p->selectors[i].rule.n_allowed_identities;
        struct policy_identity *ids = pool_alloc(&p->pool, (total ? total : 1) * sizeof *ids);
        if (!ids)
                return -ENOMEM;
        size_t n = 0;
        for (size_t i = 0; i < p->n_rules + p->n_selectors; i++) {
                const struct rule *r = i < p->n_rules ? &p->rules[i] : &p->selectors[i - p->n_rules].rule;
                for (size_t j = 0; j < r->n_allowed_identities; j++)
                        ids[n++] = (struct policy_identity){ .identity = r->allowed_identities[j],
                                                             .protection = r->mode, .reserved = true };
        }
        for (size_t i = 0; i < n_delegable; i++)
                ids[n++] = (struct policy_identity){ .identity = delegable[i], .protection = p->default_mode,
                                                     .delegable = true };
        qsort(ids, n, sizeof *ids, cmp_identity);
        size_t u = 0;
        for (size_t i = 0; i < n; i++) {
                if (u && strcmp(ids[u - 1].identity, ids[i].identity) == 0) {
                        struct policy_identity *d = &ids[u - 1];
                        d->protection = mode_strongest(d->protection, ids[i].protection);
                        d->reserved = d->reserved || ids[i].reserved;
                        d->delegable = d->delegable || ids[i].delegable;
                        continue;
                }
                ids[u++] = ids[i];
        }
        p->identities = ids;
        p->n_identities = u;
        return 0;
}

/* The label keys that selectors read: a change to one may change a
 * namespace's rule, so only grantors may make it. */
static int collect_grant_labels(struct policy *p)
{
        size_t total = 0;
        for (size_t i = 0; i < p->n_selectors; i++)
                total += p->selectors[i].n_reqs;
        const char **keys = pool_alloc(&p->pool, (total ? total : 1) * sizeof *keys);
        if (!keys)
                return -ENOMEM;
        size_t n = 0;
        for (size_t i = 0; i < p->n_selectors; i++)
                for (size_t j = 0; j < p->selectors[i].n_reqs; j++)
                        keys[n++] = p->selectors[i].reqs[j].key;
        qsort(keys, n, sizeof *keys, cmp_str);
        size_t u = 0;
        for (size_t i = 0; i < n; i++)
                if (u == 0 || strcmp(keys[u - 1], keys[i]) != 0)
                        keys[u++] = keys[i];
        p->grant_labels = keys;
        p->n_grant_labels = u;
        return 0;
}

/* Compiles one checked entry into `ret`, reporting problems at `node`. */
static bool compile_entry(struct loader *l, const cJSON *node, const char *name, enum rule_source source,
                          const struct layer *d, const struct layer *e, struct rule *ret)
{
        char err[256];
        int r = compile_rule(&l->p->pool, name, source, d, e, ret, err, sizeof err);
        if (r == -EINVAL)
                fail_key(l, node, e->path, "%s", err);
        else if (r < 0)
                oom(l);
        return r == 0;
}

static void load_selectors(struct loader *l, const cJSON *list, const struct layer *d, bool compile)
{
        struct policy *p = l->p;
        if (!cJSON_IsArray(list)) {
                fail(l, list, "selectors", "must be a list of rules, each with a namespaceSelector");
                return;
        }
        size_t n = (size_t)cJSON_GetArraySize(list);
        if (n > WH_MAX_POLICY_NAMESPACES) {
                fail(l, list, "selectors", "more than %u selectors", WH_MAX_POLICY_NAMESPACES);
                return;
        }
        p->selectors = pool_alloc(&p->pool, (n ? n : 1) * sizeof *p->selectors);
        struct layer *e = malloc(sizeof *e);
        if (!p->selectors || !e) {
                free(e);
                oom(l);
                return;
        }
        size_t i = 0;
        const cJSON *it;
        cJSON_ArrayForEach(it, list) {
                char path[PATH_MAX_CHARS], name[PATH_MAX_CHARS];
                const char *given = NULL;
                struct selector_rule *s = &p->selectors[p->n_selectors];
                *s = (struct selector_rule){ 0 };
                path_printf(path, "selectors[%zu]", i++);
                unsigned before = l->n_errors;
                check_layer(l, it, path, LAYER_SELECTOR, e, s, &given);
                if (l->n_errors != before || l->oom || !compile)
                        continue;
                path_printf(name, "selector %s", given ? given : path);
                if (compile_entry(l, it, name, RULE_SELECTOR, d, e, &s->rule))
                        p->n_selectors++;
        }
        free(e);
}

static void load_namespaces(struct loader *l, const cJSON *map, const struct layer *d, bool compile)
{
        struct policy *p = l->p;
        if (!cJSON_IsObject(map)) {
                fail(l, map, "namespaces", "must be a map of namespace name to its rule");
                return;
        }
        size_t n = (size_t)cJSON_GetArraySize(map);
        if (n > WH_MAX_POLICY_NAMESPACES) {
                fail(l, map, "namespaces", "more than %u namespaces", WH_MAX_POLICY_NAMESPACES);
                return;
        }
        p->rules = pool_alloc(&p->pool, (n ? n : 1) * sizeof *p->rules);
        struct layer *e = malloc(sizeof *e);
        if (!p->rules || !e) {
                free(e);
                oom(l);
                return;
        }
        const cJSON *it;
        cJSON_ArrayForEach(it, map) {
                char path[PATH_MAX_CHARS];
                path_printf(path, "namespaces.%s", it->string);
                unsigned before = l->n_errors;
                if (!is_dns_label(it->string))
                        fail_key(l, it, path, "\"%s\" is not a namespace name (lowercase letters, "
                                 "digits and '-', at most 63)", it->string);
                check_layer(l, it, path, LAYER_NAMED, e, NULL, NULL);
                if (l->n_errors != before || l->oom || !compile)
                        continue;
                if (compile_entry(l, it, it->string, RULE_NAMED, d, e, &p->rules[p->n_rules]))
                        p->n_rules++;
        }
        free(e);
        qsort(p->rules, p->n_rules, sizeof *p->rules, cmp_rule);
}

/* A grantor: a user name, or group:NAME. Any printable text. */
static bool is_grantor(const char *s)
{
        if (!*s || strcmp(s, GRANTOR_GROUP_PREFIX) == 0)
                return false;
        for (const unsigned char *c = (const unsigned char *)s; *c; c++)
                if (*c < 0x20 || *c == 0x7f)
                        return false;
        return true;
}

/* A top-level list of identities or grantors, copied into the policy's pool. */
static void load_list(struct loader *l, const cJSON *list, const char *path, bool identities,
                      const char ***ret, size_t *ret_n)
{
        char ipath[PATH_MAX_CHARS];
        if (!cJSON_IsArray(list)) {
                fail(l, list, path, "must be a list");
                return;
        }
        size_t n = (size_t)cJSON_GetArraySize(list);
        if (n > WH_MAX_POLICY_LIST_ITEMS) {
                fail(l, list, path, "more than %u items", WH_MAX_POLICY_LIST_ITEMS);
                return;
        }
        const char **items = pool_alloc(&l->p->pool, (n ? n : 1) * sizeof *items);
        if (!items) {
                oom(l);
                return;
        }
        size_t k = 0;
        int i = 0;
        const cJSON *it;
        cJSON_ArrayForEach(it, list) {
                path_printf(ipath, "%s[%d]", path, i++);
                const char *s = cJSON_IsString(it) ? it->valuestring : NULL;
                if (!s || strlen(s) > WH_MAX_POLICY_STRING) {
                        fail(l, it, ipath, "must be a string of at most %u characters", WH_MAX_POLICY_STRING);
                        continue;
                }
                if (identities && !is_label_value(s)) {
                        fail(l, it, ipath, "\"%s\" is not a valid label value (at most 63 of "
                             "A-Z a-z 0-9 - _ ., starting and ending alphanumeric)", s);
                        continue;
                }
                if (!identities && !is_grantor(s)) {
                        fail(l, it, ipath, "a grantor is a user name or group:NAME, not empty and "
                             "without control characters");
                        continue;
                }
                if (!(items[k++] = pool_strdup(&l->p->pool, s))) {
                        oom(l);
                        return;
                }
        }
        *ret = items;
        *ret_n = k;
}

/* A delegable identity is given by annotations; one that an entry or a
 * selector names is reserved to those namespaces, so it cannot be both. */
static void check_delegable(struct loader *l, const cJSON *list)
{
        int i = 0;
        const cJSON *it;
        cJSON_ArrayForEach(it, list) {
                char ipath[PATH_MAX_CHARS];
                path_printf(ipath, "delegableIdentities[%d]", i++);
                const struct policy_identity *id =
                        cJSON_IsString(it) ? policy_identity_find(l->p, it->valuestring) : NULL;
                if (id && id->reserved)
                        fail(l, it, ipath, "\"%s\" is named by a namespaces or selectors entry, so it "
                             "is reserved to those namespaces and cannot be given by annotations",
                             id->identity);
        }
}

static bool want_bool(struct loader *l, const cJSON *v, const char *path)
{
        if (!cJSON_IsBool(v))
                fail(l, v, path, "must be true or false");
        return cJSON_IsTrue(v);
}

int policy_load(const char *text, size_t len, struct policy **ret_policy, struct buf *errors)
{
        return policy_load_sha256(text, len, NULL, ret_policy, errors);
}

int policy_load_sha256(const char *text, size_t len, const char *sha256, struct policy **ret_policy,
                       struct buf *errors)
{
        char err[512];
        struct doc *doc = NULL;
        struct policy *p = NULL;
        struct layer *defaults = NULL;
        int r;

        if (len > WH_MAX_POLICY_BYTES) {
                buf_printf(errors, "the policy is larger than %u bytes\n", WH_MAX_POLICY_BYTES);
                return -EINVAL;
        }
        r = doc_parse(text, len, &doc, err, sizeof err);
        if (r < 0) {
                buf_printf(errors, "%s\n", err);
                return r == -ENOMEM ? r : -EINVAL;
        }
        p = calloc(1, sizeof *p);
        defaults = malloc(sizeof *defaults);
        if (!p || !defaults) {
                r = -ENOMEM;
                goto out;
        }
        *defaults = (struct layer)LAYER_INIT("defaults");
        struct loader l = { .doc = doc, .p = p, .errors = errors, .defaults_auth = -1 };
        const cJSON *root = doc_root(doc);
        const cJSON *namespaces = NULL, *selectors = NULL, *delegable = NULL;
        const char **delegable_ids = NULL;
        size_t n_delegable = 0;
        bool defaults_ok = true, grantors_set = false;

        if (!cJSON_IsObject(root)) {
                fail(&l, root, NULL, "a policy is a map with " POLICY_TOP_KEYS);
                r = -EINVAL;
                goto out;
        }
        const cJSON *it;
        cJSON_ArrayForEach(it, root) {
                const char *k = it->string;
                if (strcmp(k, "defaults") == 0) {
                        unsigned before = l.n_errors;
                        if (!cJSON_IsNull(it))
                                check_layer(&l, it, "defaults", LAYER_DEFAULTS, defaults, NULL, NULL);
                        defaults_ok = l.n_errors == before;
                } else if (strcmp(k, "namespaces") == 0) {
                        namespaces = it;
                } else if (strcmp(k, "selectors") == 0) {
                        selectors = it;
                } else if (strcmp(k, "namespaceAnnotations") == 0) {
                        p->annotations = want_bool(&l, it, k);
                } else if (strcmp(k, "onLookupFailure") == 0) {
                        static const char *const names[] = { "allow", "deny" };
                        p->lookup_deny = want_enum(&l, it, k, names, 2) != 0;
                } else if (strcmp(k, "unmatched") == 0) {
                        static const char *const names[] = { "allow", "deny" };
                        p->unmatched_deny = want_enum(&l, it, k, names, 2) == 1;
                } else if (strcmp(k, "unlistedIdentities") == 0) {
                        static const char *const names[] = { "allow", "deny" };
                        p->unlisted_deny = want_enum(&l, it, k, names, 2) == 1;
                } else if (strcmp(k, "delegableIdentities") == 0) {
                        delegable = it;
                        if (!cJSON_IsNull(it))
                                load_list(&l, it, k, true, &delegable_ids, &n_delegable);
                } else if (strcmp(k, "grantors") == 0) {
                        grantors_set = true;
                        if (!cJSON_IsNull(it))
                                load_list(&l, it, k, false, &p->grantors, &p->n_grantors);
                } else {
                        fail_key(&l, it, k, "unknown key (a policy has " POLICY_TOP_KEYS ")");
                }
        }
        if (!cJSON_GetObjectItemCaseSensitive(root, "onLookupFailure"))
                p->lookup_deny = true;
        if (!grantors_set) {
                static const char *const default_grantors[] = { GRANTOR_DEFAULT };
                p->grantors = (const char **)default_grantors;
                p->n_grantors = 1;
        }
        p->default_mode = defaults->mode >= 0 ? (enum policy_mode)defaults->mode : POLICY_MODE_ENFORCE;
        l.defaults_auth = defaults->auth;

        /* Every entry is checked; rules are compiled only on top of valid defaults. */
        if (namespaces && !cJSON_IsNull(namespaces))
                load_namespaces(&l, namespaces, defaults, defaults_ok);
        if (selectors && !cJSON_IsNull(selectors))
                load_selectors(&l, selectors, defaults, defaults_ok);
        if (!l.n_errors) {
                r = collect_identities(p, delegable_ids, n_delegable);
                if (r == 0)
                        r = collect_grant_labels(p);
                if (r < 0)
                        oom(&l);
                else if (cJSON_IsArray(delegable))
                        check_delegable(&l, delegable);
        }
        if (l.n_errors > POLICY_MAX_ERRORS)
                buf_printf(errors, "... and %u more problems\n", l.n_errors - POLICY_MAX_ERRORS);
        if (l.n_errors) {
                r = l.oom ? -ENOMEM : -EINVAL;
                goto out;
        }
        p->base = *defaults;
        r = layer_keep(&p->pool, &p->base);
        if (r < 0)
                goto out;
        snprintf(p->sha256, sizeof p->sha256, "%s", sha256 ? sha256 : "");
        *ret_policy = p;
        p = NULL;
        r = 0;
out:
        free(defaults);
        policy_free(p);
        doc_free(doc);
        return r;
}

/* ---- lookups ---- */

const struct rule *policy_rule_for(const struct policy *p, const char *namespace_)
{
        if (!namespace_ || !p->n_rules)
                return NULL;
        struct rule key = { .name = namespace_ };
        return bsearch(&key, p->rules, p->n_rules, sizeof *p->rules, cmp_rule);
}

bool policy_uses_namespaces(const struct policy *p)
{
        return p->annotations || p->n_selectors > 0;
}

bool policy_needs_namespace(const struct policy *p, const char *namespace_)
{
        return policy_uses_namespaces(p) && !policy_rule_for(p, namespace_);
}

static const char *annotation_of(const struct ns_info *ns, const char *key)
{
        for (size_t i = 0; ns && i < ns->n_annotations; i++)
                if (strcmp(ns->annotations[i].key, key) == 0)
                        return ns->annotations[i].value;
        return NULL;
}

/* The layer a namespace's annotations make; false (and a reason) when they
 * do not make a valid one. */
static bool annotation_layer(const struct ns_info *ns, struct layer *ret, char *why, size_t whylen)
{
        static const char *const modes[POLICY_MODE_MAX] = { "enforce", "audit", "off" };
        const char *identity = annotation_of(ns, ANNOTATION_IDENTITY);
        const char *client = annotation_of(ns, ANNOTATION_CLIENT);
        const char *tenant = annotation_of(ns, ANNOTATION_TENANT);
        const char *mode = annotation_of(ns, ANNOTATION_MODE);
        const char *auth = annotation_of(ns, ANNOTATION_AUTH);
        const char *sa = annotation_of(ns, ANNOTATION_SERVICE_ACCOUNT);

        *ret = (struct layer)LAYER_INIT("annotations");
        if (auth) {
                for (int i = 0; i < POLICY_AUTH_MAX; i++)
                        if (strcmp(auth, auth_names[i]) == 0)
                                ret->auth = i;
                if (ret->auth < 0) {
                        snprintf(why, whylen, ANNOTATION_AUTH " \"%.40s\" is not podIdentity or workloadIdentity", auth);
                        return false;
                }
        }
        if (sa && !is_dns_subdomain(sa)) {
                snprintf(why, whylen, ANNOTATION_SERVICE_ACCOUNT " \"%.63s\" is not a service account name", sa);
                return false;
        }
        ret->service_account = sa;
        if (identity && !is_label_value(identity)) {
                snprintf(why, whylen, ANNOTATION_IDENTITY " \"%.63s\" is not a valid label value", identity);
                return false;
        }
        if (client && !is_uuid(client)) {
                snprintf(why, whylen, ANNOTATION_CLIENT " \"%.40s\" is not a GUID", client);
                return false;
        }
        if (tenant && !is_uuid(tenant)) {
                snprintf(why, whylen, ANNOTATION_TENANT " \"%.40s\" is not a GUID", tenant);
                return false;
        }
        if (mode) {
                for (int i = 0; i < POLICY_MODE_MAX; i++)
                        if (strcmp(mode, modes[i]) == 0)
                                ret->mode = i;
                if (ret->mode < 0) {
                        snprintf(why, whylen, ANNOTATION_MODE " \"%.20s\" is not enforce, audit or off", mode);
                        return false;
                }
        }
        ret->identity = identity;
        ret->client_id = client;
        ret->tenant_id = tenant;
        return true;
}

/* Whether annotations may give `identity`: only one the policy lists in
 * delegableIdentities, never one reserved by an entry or a selector. */
static bool delegable(const struct policy *p, const char *identity, char *why, size_t whylen)
{
        const struct policy_identity *id = policy_identity_find(p, identity);
        if (id && id->reserved) {
                snprintf(why, whylen, ANNOTATION_IDENTITY " \"%.63s\" is reserved by the policy to other "
                         "namespaces", identity);
                return false;
        }
        if (!id || !id->delegable) {
                snprintf(why, whylen, ANNOTATION_IDENTITY " \"%.63s\" is not in the policy's "
                         "delegableIdentities", identity);
                return false;
        }
        return true;
}

int policy_resolve(const struct policy *p, const char *namespace_, const struct ns_info *info,
                   struct pool *pool, struct resolution *ret)
{
        ret->rule = policy_rule_for(p, namespace_);
        ret->unknown = false;
        ret->problem[0] = '\0';
        if (ret->rule || !policy_uses_namespaces(p))
                return 0;
        if (!info) {
                ret->unknown = true;
                return 0;
        }
        if (p->annotations && (annotation_of(info, ANNOTATION_IDENTITY) || annotation_of(info, ANNOTATION_AUTH))) {
                struct layer *e = malloc(sizeof *e);
                char name[128], err[256];
                if (!e)
                        return -ENOMEM;
                if (!annotation_layer(info, e, ret->problem, sizeof ret->problem)) {
                        free(e);
                        return 0;
                }
                if (e->identity && !delegable(p, e->identity, ret->problem, sizeof ret->problem)) {
                        free(e);
                        return 0;
                }
                snprintf(name, sizeof name, "annotations of %s", namespace_ ? namespace_ : "");
                int r = compile_rule(pool, name, RULE_ANNOTATIONS, &p->base, e, &ret->annotated,
                                     err, sizeof err);
                free(e);
                if (r == -EINVAL) {
                        snprintf(ret->problem, sizeof ret->problem, "%s", err);
                        return 0;
                }
                if (r < 0)
                        return r;
                ret->rule = &ret->annotated;
                return 0;
        }
        for (size_t i = 0; i < p->n_selectors; i++) {
                if (selector_matches(&p->selectors[i], info)) {
                        ret->rule = &p->selectors[i].rule;
                        return 0;
                }
        }
        return 0;
}

bool policy_rule_grants(const struct rule *r, const char *identity)
{
        for (size_t i = 0; r && i < r->n_allowed_identities; i++)
                if (strcmp(r->allowed_identities[i], identity) == 0)
                        return true;
        return false;
}

const struct policy_identity *policy_identity_find(const struct policy *p, const char *identity)
{
        struct policy_identity key = { .identity = identity };
        if (!identity || !p->n_identities)
                return NULL;
        return bsearch(&key, p->identities, p->n_identities, sizeof *p->identities, cmp_identity);
}

static enum policy_claim claim_by_mode(enum policy_mode m)
{
        return m == POLICY_MODE_ENFORCE ? POLICY_CLAIM_DENIED
             : m == POLICY_MODE_AUDIT   ? POLICY_CLAIM_WARN
                                        : POLICY_CLAIM_ALLOWED;
}

struct policy_claim_verdict policy_judge_claim(const struct policy *p, const struct rule *r,
                                               const char *identity)
{
        struct policy_claim_verdict v = { .claim = POLICY_CLAIM_ALLOWED, .reason = POLICY_CLAIM_GRANTED };
        if (policy_rule_grants(r, identity))
                return v;
        v.listed = policy_identity_find(p, identity);
        if (v.listed) {
                v.reason = POLICY_CLAIM_OWNED;
                v.claim = claim_by_mode(v.listed->protection);
        } else if (p->unlisted_deny) {
                v.reason = POLICY_CLAIM_UNLISTED_DENY;
                v.claim = POLICY_CLAIM_DENIED;
        } else if (r) {
                v.reason = POLICY_CLAIM_UNLISTED_RULE;
                v.claim = claim_by_mode(r->mode);
        } else {
                v.reason = POLICY_CLAIM_UNLISTED_FREE;
        }
        return v;
}

size_t policy_identity_count(const struct policy *p)
{
        return p->n_identities;
}

const struct policy_identity *policy_identity_at(const struct policy *p, size_t index)
{
        return index < p->n_identities ? &p->identities[index] : NULL;
}

bool policy_unlisted_deny(const struct policy *p)
{
        return p->unlisted_deny;
}

const char *const *policy_default_allowed_identities(const struct policy *p, size_t *ret_n)
{
        *ret_n = p->base.allowed_identities.n;
        return p->base.allowed_identities.items;
}

bool policy_grant_label(const struct policy *p, const char *key)
{
        return p->n_grant_labels &&
               bsearch(&key, p->grant_labels, p->n_grant_labels, sizeof *p->grant_labels, cmp_str);
}

size_t policy_grant_label_count(const struct policy *p)
{
        return p->n_grant_labels;
}

const char *policy_grant_label_at(const struct policy *p, size_t index)
{
        return index < p->n_grant_labels ? p->grant_labels[index] : NULL;
}

bool policy_is_grantor(const struct policy *p, const char *user, const char *const *groups,
                       size_t n_groups)
{
        size_t plen = strlen(GRANTOR_GROUP_PREFIX);
        for (size_t i = 0; i < p->n_grantors; i++) {
                const char *g = p->grantors[i];
                if (strncmp(g, GRANTOR_GROUP_PREFIX, plen) != 0) {
                        if (user && strcmp(user, g) == 0)
                                return true;
                        continue;
                }
                for (size_t j = 0; j < n_groups; j++)
                        if (groups[j] && strcmp(groups[j], g + plen) == 0)
                                return true;
        }
        return false;
}

size_t policy_grantor_count(const struct policy *p)
{
        return p->n_grantors;
}

const char *policy_grantor_at(const struct policy *p, size_t index)
{
        return index < p->n_grantors ? p->grantors[index] : NULL;
}

const struct policy_label_req *policy_selector_requirements(const struct policy *p, size_t index,
                                                            size_t *ret_n)
{
        if (index >= p->n_selectors) {
                *ret_n = 0;
                return NULL;
        }
        *ret_n = p->selectors[index].n_reqs;
        return p->selectors[index].reqs;
}

bool policy_selector_matches(const struct policy *p, size_t index, const struct ns_info *info)
{
        return index < p->n_selectors && selector_matches(&p->selectors[index], info);
}

enum policy_mode policy_default_mode(const struct policy *p)
{
        return p->default_mode;
}

bool policy_unmatched_deny(const struct policy *p)
{
        return p->unmatched_deny;
}

bool policy_lookup_deny(const struct policy *p)
{
        return p->lookup_deny;
}

bool policy_reads_annotations(const struct policy *p)
{
        return p->annotations;
}

size_t policy_rule_count(const struct policy *p)
{
        return p->n_rules;
}

const struct rule *policy_rule_at(const struct policy *p, size_t index)
{
        return index < p->n_rules ? &p->rules[index] : NULL;
}

size_t policy_selector_count(const struct policy *p)
{
        return p->n_selectors;
}

const struct rule *policy_selector_at(const struct policy *p, size_t index)
{
        return index < p->n_selectors ? &p->selectors[index].rule : NULL;
}

const char *policy_sha256(const struct policy *p)
{
        return p->sha256;
}
