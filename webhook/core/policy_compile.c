/* Compiling a rule: the layers (built-in < `defaults` < the entry or the
 * annotations) merged into a `struct rule`, with its hadoop properties
 * (per storage account when it names some) and its JVM flags computed once,
 * so that the admission path only looks them up. */
#include "policy_internal.h"
#include "err.h"

#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* The built-in layer under `defaults`. */
static const char *const builtin_java_options[] = { "-Dio.netty.tryReflectionSetAccessible=true" };
static const struct hadoop_prop builtin_hadoop[] = {
        { "fs.azure.account.auth.type", "OAuth" },
        { "fs.azure.account.oauth.provider.type", "org.apache.hadoop.fs.azurebfs.oauth2.MsiTokenProvider" },
};
#define N_BUILTIN_OPTIONS (sizeof builtin_java_options / sizeof builtin_java_options[0])
#define N_BUILTIN_HADOOP (sizeof builtin_hadoop / sizeof builtin_hadoop[0])
#define WI_PROVIDER "org.apache.hadoop.fs.azurebfs.oauth2.WorkloadIdentityTokenProvider"
#define ACCOUNT_SUFFIX ".dfs.core.windows.net"

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

static const char *const *pool_words(struct pool *pool, const char *first, const char *const *items, size_t n,
                                     size_t *ret_n)
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

/* Whether the merged settings make a rule of its auth: 0, or -EINVAL with
 * the message in `err`. */
static int check_auth(const struct layer *e, bool wi, const char *tenant, const char *client, char *err, size_t errlen)
{
        if (!wi && !e->identity) {
                err_set(err, errlen,
                        "identity is required (the aadpodidbinding label; with "
                        "auth: workloadIdentity it is optional)");
                return -EINVAL;
        }
        if (!wi && (e->service_account || e->authority_host || e->token_expiration >= 0 || e->extra_containers.set)) {
                err_set(err, errlen,
                        "%s applies to auth: workloadIdentity only, and this rule's auth "
                        "is podIdentity",
                        e->service_account         ? "serviceAccount"
                        : e->authority_host        ? "authorityHost"
                        : e->token_expiration >= 0 ? "tokenExpirationSeconds"
                                                   : "extraContainers");
                return -EINVAL;
        }
        if (wi && (!tenant || !client)) {
                err_set(err, errlen,
                        "auth: workloadIdentity needs %s (in the rule or in defaults): "
                        "the federated identity's %s",
                        !client ? "clientId" : "tenantId", !client ? "client ID" : "tenant");
                return -EINVAL;
        }
        return 0;
}

/* The workload identity settings of `r`. 0 or -ENOMEM. */
static int compile_workload_identity(struct pool *pool, const struct layer *d, const struct layer *e, struct rule *r)
{
        const char *sa = PICK(service_account, NULL), *authority = PICK(authority_host, NULL);
        const struct words *extra = e->extra_containers.set ? &e->extra_containers : &d->extra_containers;
        long expiration = PICK(token_expiration, -1);
        r->service_account = pool_strdup(pool, sa);
        r->authority_host = pool_strdup(pool, authority ? authority : POLICY_WI_AUTHORITY_DEFAULT);
        r->token_expiration_s = expiration >= 0 ? (unsigned)expiration : POLICY_WI_TOKEN_EXPIRATION_DEFAULT;
        r->extra_containers = pool_words(pool, NULL, extra->items, extra->n, &r->n_extra_containers);
        if ((sa && !r->service_account) || !r->authority_host || !r->extra_containers)
                return -ENOMEM;
        return 0;
}

/* Hadoop properties: built-in < defaults < entry, then the identity's. */
static void collect_props(const struct layer *d, const struct layer *e, const struct rule *r, bool wi,
                          struct prop_list *pl)
{
        pl->n = 0;
        for (size_t i = 0; i < N_BUILTIN_HADOOP; i++)
                props_set(pl, builtin_hadoop[i].key, builtin_hadoop[i].value);
        for (size_t i = 0; i < d->n_hadoop; i++)
                props_set(pl, d->hadoop[i].key, d->hadoop[i].value);
        if (wi)   /* the provider follows auth, unless the rule itself names one */
                props_set(pl, KEY_PROVIDER, WI_PROVIDER);
        for (size_t i = 0; i < e->n_hadoop; i++)
                props_set(pl, e->hadoop[i].key, e->hadoop[i].value);
        if (r->tenant_id)
                props_set(pl, KEY_TENANT, r->tenant_id);
        if (r->client_id)
                props_set(pl, KEY_CLIENT, r->client_id);
        if (wi)
                props_set(pl, KEY_TOKEN_FILE, POLICY_WI_TOKEN_FILE);
        if (wi && strcmp(r->authority_host, POLICY_WI_AUTHORITY_DEFAULT) != 0)
                props_set(pl, KEY_AUTHORITY, r->authority_host);   /* hadoop-azure's default is the public cloud */
}

/* The properties as rule `r` keeps them, in `pool`: per-account keys
 * replace the global fs.azure.* ones. -EINVAL with a message in `err` for a
 * key too long; -ENOMEM. */
static int expand_props(struct pool *pool, const struct prop_list *pl, const struct rule *r, struct hadoop_prop **ret,
                        size_t *ret_n, char *err, size_t errlen)
{
        size_t n_props = 0;
        size_t cap = pl->n * (r->n_storage_accounts ? r->n_storage_accounts : 1) + 1;
        struct hadoop_prop *props = pool_alloc(pool, cap * sizeof *props);
        if (!props)
                return -ENOMEM;
        for (size_t i = 0; i < pl->n; i++) {
                const struct hadoop_prop *hp = &pl->items[i];
                bool per_account = r->n_storage_accounts && strncmp(hp->key, "fs.azure.", 9) == 0 &&
                                   !ends_with(hp->key, ACCOUNT_SUFFIX);
                if (!per_account) {
                        props[n_props++] =
                                (struct hadoop_prop){ pool_strdup(pool, hp->key), pool_strdup(pool, hp->value) };
                        continue;
                }
                for (size_t a = 0; a < r->n_storage_accounts; a++) {
                        char key[WH_MAX_POLICY_STRING + 64];
                        int kn = snprintf(key, sizeof key, "%s.%s" ACCOUNT_SUFFIX, hp->key, r->storage_accounts[a]);
                        if (kn < 0 || (size_t)kn >= sizeof key) {
                                err_set(err, errlen, "the hadoop property %.60s... is too long", hp->key);
                                return -EINVAL;
                        }
                        props[n_props++] = (struct hadoop_prop){ pool_strdup(pool, key), pool_strdup(pool, hp->value) };
                }
        }
        *ret = props;
        *ret_n = n_props;
        return 0;
}

/* The JVM flags of `r`: java.options as listed (the built-in ones when no
 * layer lists any), then -Dspark.hadoop.KEY=VALUE for each of r->hadoop;
 * and all of them joined by single spaces. -EINVAL with a message in `err`
 * for too many flags or one too long; -ENOMEM. */
static int compile_flags(struct pool *pool, const struct layer *d, const struct layer *e, struct rule *r, char *err,
                         size_t errlen)
{
        const struct hadoop_prop *props = r->hadoop;
        size_t n_props = r->n_hadoop;
        const struct words *opt = e->java_options.set ? &e->java_options : &d->java_options;
        const char *const *options = opt->set ? opt->items : builtin_java_options;
        size_t n_options = opt->set ? opt->n : N_BUILTIN_OPTIONS;
        if (n_options + n_props > WH_MAX_RULE_FLAGS) {
                err_set(err, errlen, "this rule makes %zu JVM flags; at most %u", n_options + n_props,
                        WH_MAX_RULE_FLAGS);
                return -EINVAL;
        }

        const char **flags = pool_alloc(pool, (n_options + n_props + 1) * sizeof *flags);
        struct buf joined;
        buf_init(&joined, SIZE_MAX / 2);
        int rc = flags ? 0 : -ENOMEM;
        for (size_t i = 0; rc == 0 && i < n_options; i++) {
                flags[r->n_flags++] = pool_strdup(pool, options[i]);
                rc = buf_printf(&joined, "%s%s", i ? " " : "", options[i]);
        }
        for (size_t i = 0; rc == 0 && i < n_props; i++) {
                char flag[2 * WH_MAX_POLICY_STRING + 128];
                int fn = snprintf(flag, sizeof flag, "-Dspark.hadoop.%s=%s", props[i].key, props[i].value);
                if (fn < 0 || (size_t)fn >= sizeof flag) {
                        err_set(err, errlen, "the JVM flag for %.60s... is too long", props[i].key);
                        rc = -EINVAL;
                        break;
                }
                flags[r->n_flags++] = pool_strdup(pool, flag);
                rc = buf_printf(&joined, "%s%s", joined.len ? " " : "", flag);
        }
        if (rc == 0) {
                r->flags = flags;
                r->flags_joined = pool_strdup(pool, joined.data ? joined.data : "");
        }
        buf_free(&joined);
        if (rc < 0)
                return rc == -EINVAL ? rc : -ENOMEM;
        for (size_t i = 0; i < r->n_flags; i++)
                if (!r->flags[i])
                        return -ENOMEM;
        return 0;
}

/* Whether every string the rule copies made it into the pool. */
static bool rule_complete(const struct rule *r, const struct layer *e, const char *tenant, const char *client,
                          const char *home)
{
        for (size_t i = 0; i < r->n_hadoop; i++)
                if (!r->hadoop[i].key || !r->hadoop[i].value)
                        return false;
        return r->name && (!e->identity || r->identity) && r->flags_joined && r->allowed_identities &&
               (!tenant || r->tenant_id) && (!client || r->client_id) && (!home || r->java_home);
}

int policy_compile_rule(struct pool *pool, const char *name, enum rule_source source, const struct layer *d,
                        const struct layer *e, struct rule *ret, char *err, size_t errlen)
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
                .on_conflict = on_conflict >= 0 ? (enum policy_conflict)on_conflict : POLICY_CONFLICT_OVERRIDE,
                .jvm_env = jvm_env >= 0 ? (enum policy_jvm_env)jvm_env : POLICY_JVM_ENV_SPARK,
        };
        const char *tenant = PICK(tenant_id, NULL), *client = PICK(client_id, NULL);
        const char *resource = PICK(resource_id, NULL);
        const char *home = e->java_home_set ? e->java_home : d->java_home;

        int rc = check_auth(e, wi, tenant, client, err, errlen);
        if (rc < 0)
                return rc;
        if (wi && compile_workload_identity(pool, d, e, &r) < 0)
                return -ENOMEM;
        r.tenant_id = pool_strdup(pool, tenant);
        r.client_id = pool_strdup(pool, client);
        r.resource_id = pool_strdup(pool, resource);
        if (resource && !r.resource_id)
                return -ENOMEM;
        r.java_home = pool_strdup(pool, home);

        const struct words *acc = e->storage_accounts.set ? &e->storage_accounts : &d->storage_accounts;
        const struct words *alw = e->allowed_identities.set ? &e->allowed_identities : &d->allowed_identities;
        r.storage_accounts = pool_words(pool, NULL, acc->items, acc->n, &r.n_storage_accounts);
        r.allowed_identities = pool_words(pool, e->identity, alw->items, alw->n, &r.n_allowed_identities);
        if (!r.storage_accounts)
                return -ENOMEM;

        struct prop_list *pl = malloc(sizeof *pl);
        if (!pl)
                return -ENOMEM;
        collect_props(d, e, &r, wi, pl);
        struct hadoop_prop *props = NULL;
        size_t n_props = 0;
        rc = expand_props(pool, pl, &r, &props, &n_props, err, errlen);
        free(pl);   /* after the message: it may quote a key of pl */
        if (rc < 0)
                return rc;
        qsort(props, n_props, sizeof *props, cmp_prop);
        r.hadoop = props;
        r.n_hadoop = n_props;
        rc = compile_flags(pool, d, e, &r, err, errlen);
        if (rc < 0)
                return rc;
        if (!rule_complete(&r, e, tenant, client, home))
                return -ENOMEM;
        *ret = r;
        return 0;
}

/* Copies a checked layer's strings into the policy's pool, so that it
 * outlives the document: `defaults` is the base of rules made later from
 * annotations. */
int policy_layer_keep(struct pool *pool, struct layer *ly)
{
        const char **fields[] = { &ly->identity,        &ly->tenant_id,      &ly->client_id,  &ly->java_home,
                                  &ly->service_account, &ly->authority_host, &ly->resource_id };
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
                if (!ly->hadoop[k].key ||
                    (ly->hadoop[k].value && !(ly->hadoop[k].value = pool_strdup(pool, ly->hadoop[k].value))))
                        return -ENOMEM;
        }
        ly->path = "defaults";
        return 0;
}
