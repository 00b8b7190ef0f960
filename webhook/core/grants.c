/* Namespace changes that touch grant keys: see include/core/grants.h. */
#include "grants.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "pool.h"

static const cJSON *meta_map(const cJSON *ns, const char *which)
{
        const cJSON *meta = cJSON_GetObjectItemCaseSensitive(ns, "metadata");
        const cJSON *m = cJSON_GetObjectItemCaseSensitive(meta, which);
        return cJSON_IsObject(m) ? m : NULL;
}

static const char *map_value(const cJSON *map, const char *key)
{
        const cJSON *v = cJSON_GetObjectItemCaseSensitive(map, key);
        return cJSON_IsString(v) ? v->valuestring : NULL;
}

static bool is_grant_key(const struct policy *p, bool annotation, const char *key)
{
        if (annotation)
                return strncmp(key, POLICY_ANNOTATION_PREFIX, strlen(POLICY_ANNOTATION_PREFIX)) == 0;
        return policy_grant_label(p, key);
}

static bool same(const char *a, const char *b)
{
        return a == b || (a && b && strcmp(a, b) == 0);
}

/* Appends to `out` each grant key of one map (labels or annotations) whose
 * value was added, changed or removed. */
static void changed_keys(const struct policy *p, bool annotation, const cJSON *old_map, const cJSON *new_map, char *out,
                         size_t outlen, unsigned *n)
{
        const cJSON *maps[2] = { new_map, old_map };
        for (int side = 0; side < 2; side++) {
                const cJSON *it;
                cJSON_ArrayForEach(it, maps[side]) {
                        const char *key = it->string;
                        if (!key || !is_grant_key(p, annotation, key))
                                continue;
                        if (side == 1 && cJSON_GetObjectItemCaseSensitive(new_map, key))
                                continue;   /* seen from the new side */
                        if (same(map_value(new_map, key), map_value(old_map, key)) &&
                            cJSON_GetObjectItemCaseSensitive(old_map, key) &&
                            cJSON_GetObjectItemCaseSensitive(new_map, key))
                                continue;
                        size_t len = strlen(out);
                        if (len + 1 < outlen)
                                snprintf(out + len, outlen - len, "%s%s %s", *n ? ", " : "",
                                         annotation ? "annotation" : "label", key);
                        (*n)++;
                }
        }
}

/* The namespace's labels and spark-identity.io/ annotations as policy_resolve() takes them. */
static int ns_info_of(const cJSON *ns, struct pool *pool, struct ns_info *ret)
{
        const cJSON *maps[2] = { meta_map(ns, "labels"), meta_map(ns, "annotations") };
        struct kv *kvs[2] = { NULL, NULL };
        size_t n[2] = { 0, 0 };
        for (int i = 0; i < 2; i++) {
                size_t cap = (size_t)cJSON_GetArraySize(maps[i]);
                kvs[i] = pool_alloc(pool, (cap ? cap : 1) * sizeof *kvs[i]);
                if (!kvs[i])
                        return -ENOMEM;
                const cJSON *it;
                cJSON_ArrayForEach(it, maps[i])
                        if (it->string && cJSON_IsString(it))
                                kvs[i][n[i]++] = (struct kv){ it->string, it->valuestring };
        }
        *ret = (struct ns_info){ .labels = kvs[0], .n_labels = n[0], .annotations = kvs[1], .n_annotations = n[1] };
        return 0;
}

static void list_grantors(const struct policy *p, char *out, size_t outlen)
{
        size_t off = 0;
        out[0] = '\0';
        for (size_t i = 0; i < policy_grantor_count(p) && off + 1 < outlen; i++)
                off += (size_t)snprintf(out + off, outlen - off, "%s%s", i ? ", " : "", policy_grantor_at(p, i));
        if (!policy_grantor_count(p))
                snprintf(out, outlen, "none: the policy's grantors list is empty");
}

int grants_judge(const struct policy *p, const struct grants_user *user, const cJSON *old_ns, const cJSON *ns,
                 struct pool *pool, struct mutation *m)
{
        const char *name = NULL;
        const cJSON *meta = cJSON_GetObjectItemCaseSensitive(ns, "metadata");
        const cJSON *n = cJSON_GetObjectItemCaseSensitive(meta, "name");
        name = cJSON_IsString(n) ? n->valuestring : "";

        m->decision = DECISION_UNCHANGED;
        m->mode = policy_default_mode(p);
        m->policy_sha256 = policy_sha256(p);
        m->identity_before = map_value(meta_map(old_ns, "annotations"), POLICY_ANNOTATION_PREFIX "identity");
        m->identity_after = map_value(meta_map(ns, "annotations"), POLICY_ANNOTATION_PREFIX "identity");
        if (!policy_uses_namespaces(p))
                return 0;

        char keys[WH_MAX_MESSAGE_CHARS / 2] = "";
        unsigned n_keys = 0;
        changed_keys(p, true, meta_map(old_ns, "annotations"), meta_map(ns, "annotations"), keys, sizeof keys, &n_keys);
        changed_keys(p, false, meta_map(old_ns, "labels"), meta_map(ns, "labels"), keys, sizeof keys, &n_keys);
        snprintf(m->grant_keys, sizeof m->grant_keys, "%s", keys);
        if (!n_keys)
                return 0;
        if (!policy_is_grantor(p, user->name, user->groups, user->n_groups)) {
                char grantors[160];
                list_grantors(p, grantors, sizeof grantors);
                mutation_deny(m,
                              "user %.100s may not set grant keys of namespace %.63s (%s): they decide "
                              "which Azure identity its pods may use, and only the policy's grantors may "
                              "change them (%s)",
                              user->name ? user->name : "(unknown)", name, keys, grantors);
                return 0;
        }
        /* A grantor: allowed; say so now if the annotations make no rule. */
        struct ns_info info;
        struct resolution *res = pool_alloc(pool, sizeof *res);
        if (!res || ns_info_of(ns, pool, &info) < 0)
                return -ENOMEM;
        int r = policy_resolve(p, name, &info, pool, res);
        if (r < 0)
                return r;
        if (res->problem[0])
                mutation_warn(m, "%s: Spark pods of %s would be refused", res->problem, name);
        return 0;
}
