/* Policy loading, validation and compilation: see include/policy.h. */
#include "policy.h"

#include <errno.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>
#include <openssl/evp.h>

#include "buf.h"
#include "doc.h"
#include "webhook_limits.h"

/* Problems reported in one load before the rest is skipped. */
#define POLICY_MAX_ERRORS 50u
/* One pool chunk; larger requests get a chunk of their own. */
#define POOL_CHUNK_BYTES 16384u
#define PATH_MAX_CHARS 256u

/* The built-in layer under `defaults`. */
static const char *const builtin_java_options[] = { "-Dio.netty.tryReflectionSetAccessible=true" };
static const struct hadoop_prop builtin_hadoop[] = {
        { "fs.azure.account.auth.type", "OAuth" },
        { "fs.azure.account.oauth.provider.type", "org.apache.hadoop.fs.azurebfs.oauth2.MsiTokenProvider" },
};
#define KEY_TENANT "fs.azure.account.oauth2.msi.tenant"
#define KEY_CLIENT "fs.azure.account.oauth2.client.id"
#define ACCOUNT_SUFFIX ".dfs.core.windows.net"

struct pool_chunk {
        struct pool_chunk *next;
        size_t used, cap;
        max_align_t data[];
};

struct policy {
        struct pool_chunk *pool;
        struct rule *rules;           /* sorted by namespace */
        size_t n_rules;
        const char **granted;         /* every identity some rule grants, sorted, unique */
        size_t n_granted;
        enum policy_mode default_mode;
        bool unmatched_deny;
        char sha256[65];
};

/* ---- memory: everything a policy holds lives in its pool ---- */

static void *pool_alloc(struct policy *p, size_t n)
{
        n = (n + sizeof(max_align_t) - 1) / sizeof(max_align_t) * sizeof(max_align_t);
        struct pool_chunk *c = p->pool;
        if (!c || c->cap - c->used < n) {
                size_t cap = n > POOL_CHUNK_BYTES ? n : POOL_CHUNK_BYTES;
                c = malloc(sizeof *c + cap);
                if (!c)
                        return NULL;
                c->cap = cap;
                c->used = 0;
                c->next = p->pool;
                p->pool = c;
        }
        void *r = (char *)c->data + c->used;
        c->used += n;
        return r;
}

static char *pool_strdup(struct policy *p, const char *s)
{
        size_t n = strlen(s) + 1;
        char *r = pool_alloc(p, n);
        if (r)
                memcpy(r, s, n);
        return r;
}

void policy_free(struct policy *p)
{
        if (!p)
                return;
        for (struct pool_chunk *c = p->pool, *next; c; c = next) {
                next = c->next;
                free(c);
        }
        free(p);
}

/* ---- error reporting ---- */

struct loader {
        const struct doc *doc;
        struct policy *p;
        struct buf *errors;
        unsigned n_errors;
        bool oom;
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

/* ---- layers: `defaults` and each namespace entry, checked on their own ---- */

/* A list of words as checked; points into the document. */
struct words {
        const char *items[WH_MAX_RULE_LIST_ITEMS];
        size_t n;
        bool set;
};

struct layer {
        const char *path;                      /* "defaults" or "namespaces.NAME" */
        const char *identity, *tenant_id, *client_id, *java_home;
        int mode, on_conflict, jvm_env;        /* -1: not set here */
        struct words java_options, storage_accounts, allowed_identities;
        const cJSON *hadoop;                   /* the map node, or NULL */
        const cJSON *tenant_node, *client_node;
        bool java_home_set;
};

enum word_kind { WORD_ANY, WORD_FLAG, WORD_IDENTITY, WORD_ACCOUNT };

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

static void check_hadoop_map(struct loader *l, const cJSON *map, const char *path, bool allow_null)
{
        char kpath[PATH_MAX_CHARS];
        if (!cJSON_IsObject(map)) {
                fail(l, map, path, "must be a map of hadoop property to value");
                return;
        }
        size_t n = 0;
        const cJSON *it;
        cJSON_ArrayForEach(it, map) {
                path_printf(kpath, "%s.%s", path, it->string);
                if (++n > WH_MAX_RULE_HADOOP_KEYS) {
                        fail(l, it, kpath, "more than %u hadoop properties", WH_MAX_RULE_HADOOP_KEYS);
                        return;
                }
                if (!*it->string || has_space(it->string) || strchr(it->string, '=')) {
                        fail_key(l, it, kpath, "a hadoop property name has no white space or '='");
                        continue;
                }
                if (strcmp(it->string, KEY_TENANT) == 0 || strcmp(it->string, KEY_CLIENT) == 0) {
                        fail_key(l, it, kpath, "set this through %s, not under hadoop",
                             strcmp(it->string, KEY_TENANT) == 0 ? "tenantId" : "clientId");
                        continue;
                }
                if (cJSON_IsNull(it)) {
                        if (!allow_null)
                                fail(l, it, kpath, "must have a value");
                        continue;
                }
                if (cJSON_IsBool(it) || cJSON_IsNumber(it))
                        continue;
                want_word(l, it, kpath);
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

/* Reads one layer. `is_entry` tells a namespace entry from `defaults`. */
static void check_layer(struct loader *l, const cJSON *map, const char *path, bool is_entry,
                        struct layer *ret)
{
        char kpath[PATH_MAX_CHARS];
        *ret = (struct layer){ .path = path, .mode = -1, .on_conflict = -1, .jvm_env = -1 };
        if (!cJSON_IsObject(map)) {
                fail(l, map, path, is_entry ? "must be a map with at least identity"
                                            : "must be a map");
                return;
        }
        const cJSON *it;
        cJSON_ArrayForEach(it, map) {
                const char *k = it->string;
                path_printf(kpath, "%s.%s", path, k);
                if (strcmp(k, "identity") == 0) {
                        if (!is_entry) {
                                fail_key(l, it, kpath, "an identity belongs to a namespace entry, "
                                     "not to defaults");
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
                        ret->tenant_node = it;
                } else if (strcmp(k, "clientId") == 0) {
                        ret->client_id = want_uuid(l, it, kpath);
                        ret->client_node = it;
                } else if (strcmp(k, "mode") == 0) {
                        ret->mode = want_enum(l, it, kpath, mode_names, POLICY_MODE_MAX);
                } else if (strcmp(k, "onConflict") == 0) {
                        ret->on_conflict = want_enum(l, it, kpath, conflict_names, POLICY_CONFLICT_MAX);
                } else if (strcmp(k, "jvmEnv") == 0) {
                        ret->jvm_env = want_enum(l, it, kpath, jvm_env_names, POLICY_JVM_ENV_MAX);
                } else if (strcmp(k, "java") == 0) {
                        check_java(l, it, kpath, ret);
                } else if (strcmp(k, "hadoop") == 0) {
                        check_hadoop_map(l, it, kpath, true);
                        ret->hadoop = it;
                } else if (strcmp(k, "storageAccounts") == 0) {
                        want_words(l, it, kpath, WORD_ACCOUNT, &ret->storage_accounts);
                } else if (strcmp(k, "allowedIdentities") == 0) {
                        want_words(l, it, kpath, WORD_IDENTITY, &ret->allowed_identities);
                } else {
                        fail_key(l, it, kpath, "unknown key (a %s has identity, tenantId, clientId, "
                             "allowedIdentities, storageAccounts, mode, onConflict, java, hadoop, "
                             "jvmEnv)", is_entry ? "namespace entry" : "defaults section");
                }
        }
        if (is_entry && !ret->identity && !cJSON_GetObjectItemCaseSensitive(map, "identity"))
                fail_key(l, map, path, "identity is required");
}

/* ---- compiling a rule from the layers ---- */

struct prop_list {
        struct hadoop_prop items[WH_MAX_RULE_HADOOP_KEYS * 4 + 8];
        size_t n;
};

static void props_set(struct prop_list *pl, const char *key, const char *value)
{
        for (size_t i = 0; i < pl->n; i++) {
                if (strcmp(pl->items[i].key, key) == 0) {
                        if (value) {
                                pl->items[i].value = value;
                        } else {
                                pl->items[i] = pl->items[--pl->n];
                        }
                        return;
                }
        }
        if (value && pl->n < sizeof pl->items / sizeof pl->items[0])
                pl->items[pl->n++] = (struct hadoop_prop){ key, value };
}

/* A scalar hadoop value as text; numbers and booleans print as YAML wrote them. */
static const char *scalar_text(struct policy *p, const cJSON *v)
{
        if (cJSON_IsString(v))
                return v->valuestring;
        if (cJSON_IsBool(v))
                return cJSON_IsTrue(v) ? "true" : "false";
        char num[64];
        double d = v->valuedouble;
        if (d == (double)(long long)d && d > -1e15 && d < 1e15)
                snprintf(num, sizeof num, "%lld", (long long)d);
        else
                snprintf(num, sizeof num, "%.17g", d);
        return pool_strdup(p, num);
}

static void props_overlay(struct policy *p, struct prop_list *pl, const cJSON *map)
{
        const cJSON *it;
        if (!map)
                return;
        cJSON_ArrayForEach(it, map)
                props_set(pl, it->string, cJSON_IsNull(it) ? NULL : scalar_text(p, it));
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

static const char *const *pool_words(struct policy *p, const char *first,
                                     const char *const *items, size_t n, size_t *ret_n)
{
        size_t total = n + (first ? 1 : 0);
        const char **out = pool_alloc(p, (total ? total : 1) * sizeof *out);
        if (!out)
                return NULL;
        size_t k = 0;
        if (first)
                out[k++] = pool_strdup(p, first);
        for (size_t i = 0; i < n; i++) {
                bool dup = false;
                for (size_t j = 0; j < k; j++)
                        dup = dup || (out[j] && strcmp(out[j], items[i]) == 0);
                if (!dup)
                        out[k++] = pool_strdup(p, items[i]);
        }
        for (size_t j = 0; j < k; j++)
                if (!out[j])
                        return NULL;
        *ret_n = k;
        return out;
}

static size_t n_options_of(const struct layer *d, const struct layer *e)
{
        const struct words *opt = e->java_options.set ? &e->java_options : &d->java_options;
        return opt->set ? opt->n : sizeof builtin_java_options / sizeof builtin_java_options[0];
}

/* The entry's value where it set one, else the default's. */
#define PICK(field, unset) (e->field != (unset) ? e->field : d->field)

static int compile_rule(struct loader *l, const char *ns, const struct layer *d,
                        const struct layer *e, struct rule *ret)
{
        struct policy *p = l->p;
        int mode = PICK(mode, -1), on_conflict = PICK(on_conflict, -1), jvm_env = PICK(jvm_env, -1);
        struct rule r = {
                .namespace_ = pool_strdup(p, ns),
                .identity = pool_strdup(p, e->identity),
                .mode = mode >= 0 ? (enum policy_mode)mode : POLICY_MODE_ENFORCE,
                .on_conflict = on_conflict >= 0 ? (enum policy_conflict)on_conflict
                                                : POLICY_CONFLICT_OVERRIDE,
                .jvm_env = jvm_env >= 0 ? (enum policy_jvm_env)jvm_env : POLICY_JVM_ENV_SPARK,
        };
        const char *tenant = PICK(tenant_id, NULL), *client = PICK(client_id, NULL);
        const char *home = e->java_home_set ? e->java_home : d->java_home;
        r.tenant_id = tenant ? pool_strdup(p, tenant) : NULL;
        r.client_id = client ? pool_strdup(p, client) : NULL;
        r.java_home = home ? pool_strdup(p, home) : NULL;

        const struct words *acc = e->storage_accounts.set ? &e->storage_accounts : &d->storage_accounts;
        const struct words *alw = e->allowed_identities.set ? &e->allowed_identities
                                                            : &d->allowed_identities;
        r.storage_accounts = pool_words(p, NULL, acc->items, acc->n, &r.n_storage_accounts);
        r.allowed_identities = pool_words(p, e->identity, alw->items, alw->n, &r.n_allowed_identities);

        /* Hadoop properties: built-in < defaults < entry, then the identity's. */
        struct prop_list *pl = malloc(sizeof *pl);
        if (!pl)
                return -ENOMEM;
        pl->n = 0;
        for (size_t i = 0; i < sizeof builtin_hadoop / sizeof builtin_hadoop[0]; i++)
                props_set(pl, builtin_hadoop[i].key, builtin_hadoop[i].value);
        props_overlay(p, pl, d->hadoop);
        props_overlay(p, pl, e->hadoop);
        if (r.tenant_id)
                props_set(pl, KEY_TENANT, r.tenant_id);
        if (r.client_id)
                props_set(pl, KEY_CLIENT, r.client_id);

        /* Per-account keys replace the global fs.azure.* ones. */
        size_t n_props = 0;
        size_t cap = pl->n * (r.n_storage_accounts ? r.n_storage_accounts : 1) + 1;
        struct hadoop_prop *props = pool_alloc(p, cap * sizeof *props);
        for (size_t i = 0; props && i < pl->n; i++) {
                const struct hadoop_prop *hp = &pl->items[i];
                bool per_account = r.n_storage_accounts && strncmp(hp->key, "fs.azure.", 9) == 0 &&
                                   !ends_with(hp->key, ACCOUNT_SUFFIX);
                if (!per_account) {
                        props[n_props++] = (struct hadoop_prop){ pool_strdup(p, hp->key),
                                                                 pool_strdup(p, hp->value) };
                        continue;
                }
                for (size_t a = 0; a < r.n_storage_accounts; a++) {
                        char key[WH_MAX_POLICY_STRING + 64];
                        snprintf(key, sizeof key, "%s.%s" ACCOUNT_SUFFIX, hp->key, r.storage_accounts[a]);
                        props[n_props++] = (struct hadoop_prop){ pool_strdup(p, key),
                                                                 pool_strdup(p, hp->value) };
                }
        }
        free(pl);
        if (!props)
                return -ENOMEM;
        if (n_options_of(d, e) + n_props > WH_MAX_RULE_FLAGS) {
                fail(l, NULL, e->path, "this rule makes %zu JVM flags; at most %u",
                     n_options_of(d, e) + n_props, WH_MAX_RULE_FLAGS);
                return -EINVAL;
        }
        qsort(props, n_props, sizeof *props, cmp_prop);
        r.hadoop = props;
        r.n_hadoop = n_props;

        /* The JVM flags: java.options as listed, then the hadoop properties. */
        const struct words *opt = e->java_options.set ? &e->java_options : &d->java_options;
        const char *const *options = opt->set ? opt->items : builtin_java_options;
        size_t n_options = opt->set ? opt->n : sizeof builtin_java_options / sizeof builtin_java_options[0];
        const char **flags = pool_alloc(p, (n_options + n_props + 1) * sizeof *flags);
        struct buf joined;
        buf_init(&joined, SIZE_MAX / 2);
        int rc = flags ? 0 : -ENOMEM;
        for (size_t i = 0; rc == 0 && i < n_options; i++) {
                flags[r.n_flags++] = pool_strdup(p, options[i]);
                rc = buf_printf(&joined, "%s%s", i ? " " : "", options[i]);
        }
        for (size_t i = 0; rc == 0 && i < n_props; i++) {
                char flag[2 * WH_MAX_POLICY_STRING + 128];
                snprintf(flag, sizeof flag, "-Dspark.hadoop.%s=%s", props[i].key, props[i].value);
                flags[r.n_flags++] = pool_strdup(p, flag);
                rc = buf_printf(&joined, "%s%s", joined.len ? " " : "", flag);
        }
        if (rc == 0) {
                r.flags = flags;
                r.flags_joined = pool_strdup(p, joined.data ? joined.data : "");
        }
        buf_free(&joined);
        for (size_t i = 0; i < r.n_flags; i++)
                if (!r.flags[i])
                        rc = -ENOMEM;
        if (rc < 0 || !r.namespace_ || !r.identity || !r.flags_joined || !r.storage_accounts ||
            !r.allowed_identities || (tenant && !r.tenant_id) || (client && !r.client_id) ||
            (home && !r.java_home))
                return -ENOMEM;
        *ret = r;
        return 0;
}

/* ---- the whole policy ---- */

static int cmp_rule(const void *a, const void *b)
{
        return strcmp(((const struct rule *)a)->namespace_, ((const struct rule *)b)->namespace_);
}

static int cmp_str(const void *a, const void *b)
{
        return strcmp(*(const char *const *)a, *(const char *const *)b);
}

static int collect_granted(struct policy *p)
{
        size_t total = 0;
        for (size_t i = 0; i < p->n_rules; i++)
                total += p->rules[i].n_allowed_identities;
        const char **g = pool_alloc(p, (total ? total : 1) * sizeof *g);
        if (!g)
                return -ENOMEM;
        size_t n = 0;
        for (size_t i = 0; i < p->n_rules; i++)
                for (size_t j = 0; j < p->rules[i].n_allowed_identities; j++)
                        g[n++] = p->rules[i].allowed_identities[j];
        qsort(g, n, sizeof *g, cmp_str);
        size_t u = 0;
        for (size_t i = 0; i < n; i++)
                if (u == 0 || strcmp(g[u - 1], g[i]) != 0)
                        g[u++] = g[i];
        p->granted = g;
        p->n_granted = u;
        return 0;
}

static void sha256_hex(const char *text, size_t len, char out[65])
{
        unsigned char md[EVP_MAX_MD_SIZE];
        unsigned int n = 0;
        if (!EVP_Digest(text, len, md, &n, EVP_sha256(), NULL) || n != 32) {
                memset(out, '0', 64);
        } else {
                for (unsigned i = 0; i < 32; i++)
                        snprintf(out + 2 * i, 3, "%02x", md[i]);
        }
        out[64] = '\0';
}

int policy_load(const char *text, size_t len, struct policy **ret_policy, struct buf *errors)
{
        char err[512];
        struct doc *doc = NULL;
        struct policy *p = NULL;
        struct layer *entries = NULL;
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
        if (!p) {
                r = -ENOMEM;
                goto out;
        }
        struct loader l = { .doc = doc, .p = p, .errors = errors };
        const cJSON *root = doc_root(doc);
        struct layer defaults = { .path = "defaults", .mode = -1, .on_conflict = -1, .jvm_env = -1 };
        const cJSON *namespaces = NULL;

        if (!cJSON_IsObject(root)) {
                fail(&l, root, NULL, "a policy is a map with defaults, namespaces and unmatched");
                r = -EINVAL;
                goto out;
        }
        const cJSON *it;
        cJSON_ArrayForEach(it, root) {
                if (strcmp(it->string, "defaults") == 0) {
                        if (!cJSON_IsNull(it))
                                check_layer(&l, it, "defaults", false, &defaults);
                } else if (strcmp(it->string, "namespaces") == 0) {
                        namespaces = it;
                } else if (strcmp(it->string, "unmatched") == 0) {
                        static const char *const names[] = { "allow", "deny" };
                        p->unmatched_deny = want_enum(&l, it, "unmatched", names, 2) == 1;
                } else {
                        fail_key(&l, it, it->string, "unknown key (a policy has defaults, namespaces "
                             "and unmatched)");
                }
        }
        p->default_mode = defaults.mode >= 0 ? (enum policy_mode)defaults.mode : POLICY_MODE_ENFORCE;

        size_t n_ns = namespaces ? (size_t)cJSON_GetArraySize(namespaces) : 0;
        if (namespaces && !cJSON_IsNull(namespaces) && !cJSON_IsObject(namespaces)) {
                fail(&l, namespaces, "namespaces", "must be a map of namespace name to its rule");
                n_ns = 0;
        } else if (n_ns > WH_MAX_POLICY_NAMESPACES) {
                fail(&l, namespaces, "namespaces", "more than %u namespaces", WH_MAX_POLICY_NAMESPACES);
                n_ns = 0;
        }
        entries = calloc(n_ns ? n_ns : 1, sizeof *entries);
        char (*paths)[PATH_MAX_CHARS] = calloc(n_ns ? n_ns : 1, PATH_MAX_CHARS);
        p->rules = pool_alloc(p, (n_ns ? n_ns : 1) * sizeof *p->rules);
        if (!entries || !paths || !p->rules) {
                free(paths);
                r = -ENOMEM;
                goto out;
        }
        size_t i = 0;
        const cJSON *ns_map = n_ns ? namespaces : NULL;
        cJSON_ArrayForEach(it, ns_map) {
                path_printf(paths[i], "namespaces.%s", it->string);
                if (!is_dns_label(it->string))
                        fail_key(&l, it, paths[i], "\"%s\" is not a namespace name (lowercase letters, "
                             "digits and '-', at most 63)", it->string);
                check_layer(&l, it, paths[i], true, &entries[i]);
                i++;
        }
        bool checked = l.n_errors == 0;
        for (i = 0; checked && i < n_ns; i++) {
                r = compile_rule(&l, entries[i].path + strlen("namespaces."), &defaults, &entries[i],
                                 &p->rules[p->n_rules]);
                if (r == -EINVAL)
                        continue;
                if (r < 0) {
                        oom(&l);
                        break;
                }
                p->n_rules++;
        }
        free(paths);
        if (l.n_errors > POLICY_MAX_ERRORS)
                buf_printf(errors, "... and %u more problems\n", l.n_errors - POLICY_MAX_ERRORS);
        if (l.n_errors) {
                r = l.oom ? -ENOMEM : -EINVAL;
                goto out;
        }
        qsort(p->rules, p->n_rules, sizeof *p->rules, cmp_rule);
        r = collect_granted(p);
        if (r < 0)
                goto out;
        sha256_hex(text, len, p->sha256);
        *ret_policy = p;
        p = NULL;
        r = 0;
out:
        free(entries);
        policy_free(p);
        doc_free(doc);
        return r;
}

const struct rule *policy_rule_for(const struct policy *p, const char *namespace_)
{
        if (!namespace_)
                return NULL;
        struct rule key = { .namespace_ = namespace_ };
        return bsearch(&key, p->rules, p->n_rules, sizeof *p->rules, cmp_rule);
}

bool policy_identity_allowed(const struct policy *p, const struct rule *r, const char *identity)
{
        if (r) {
                for (size_t i = 0; i < r->n_allowed_identities; i++)
                        if (strcmp(r->allowed_identities[i], identity) == 0)
                                return true;
                return false;
        }
        return !bsearch(&identity, p->granted, p->n_granted, sizeof *p->granted, cmp_str);
}

enum policy_mode policy_default_mode(const struct policy *p)
{
        return p->default_mode;
}

bool policy_unmatched_deny(const struct policy *p)
{
        return p->unmatched_deny;
}

size_t policy_rule_count(const struct policy *p)
{
        return p->n_rules;
}

const struct rule *policy_rule_at(const struct policy *p, size_t index)
{
        return index < p->n_rules ? &p->rules[index] : NULL;
}

const char *policy_sha256(const struct policy *p)
{
        return p->sha256;
}
