/* Loading a policy: the document's top level, its `namespaces` and
 * `selectors` entries checked and compiled, its lists (delegableIdentities,
 * grantors), and the identities and grant labels gathered from them, into
 * one immutable `struct policy` (policy_load()). */
#include "policy_internal.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "strs.h"

#define POLICY_TOP_KEYS                                                            \
        "defaults, namespaces, selectors, namespaceAnnotations, onLookupFailure, " \
        "unmatched, unlistedIdentities, delegableIdentities and grantors"
/* The same keys, for "did you mean". */
static const char *const top_keys[] = { "defaults",        "namespaces", "selectors",          "namespaceAnnotations",
                                        "onLookupFailure", "unmatched",  "unlistedIdentities", "delegableIdentities",
                                        "grantors" };

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
                                                             .protection = r->mode,
                                                             .reserved = true };
        }
        for (size_t i = 0; i < n_delegable; i++)
                ids[n++] = (struct policy_identity){ .identity = delegable[i],
                                                     .protection = p->default_mode,
                                                     .delegable = true };
        qsort(ids, n, sizeof *ids, policy_cmp_identity);
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
        qsort(keys, n, sizeof *keys, str_cmp_ptr);
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
        int r = policy_compile_rule(&l->p->pool, name, source, d, e, ret, err, sizeof err);
        if (r == -EINVAL)
                policy_fail_key(l, node, e->path, "%s", err);
        else if (r < 0)
                policy_oom(l);
        return r == 0;
}

static void load_selectors(struct loader *l, const cJSON *list, const struct layer *d, bool compile)
{
        struct policy *p = l->p;
        if (!cJSON_IsArray(list)) {
                policy_fail(l, list, "selectors", "must be a list of rules, each with a namespaceSelector");
                return;
        }
        size_t n = (size_t)cJSON_GetArraySize(list);
        if (n > WH_MAX_POLICY_NAMESPACES) {
                policy_fail(l, list, "selectors", "more than %u selectors", WH_MAX_POLICY_NAMESPACES);
                return;
        }
        p->selectors = pool_alloc(&p->pool, (n ? n : 1) * sizeof *p->selectors);
        struct layer *e = malloc(sizeof *e);
        if (!p->selectors || !e) {
                free(e);
                policy_oom(l);
                return;
        }
        size_t i = 0;
        const cJSON *it;
        cJSON_ArrayForEach(it, list) {
                char path[PATH_MAX_CHARS], name[PATH_MAX_CHARS];
                const char *given = NULL;
                struct selector_rule *s = &p->selectors[p->n_selectors];
                *s = (struct selector_rule){ 0 };
                policy_path_printf(path, "selectors[%zu]", i++);
                unsigned before = l->n_errors;
                policy_check_layer(l, it, path, LAYER_SELECTOR, e, s, &given);
                if (l->n_errors != before || l->oom || !compile)
                        continue;
                policy_path_printf(name, "selector %s", given ? given : path);
                if (compile_entry(l, it, name, RULE_SELECTOR, d, e, &s->rule))
                        p->n_selectors++;
        }
        free(e);
}

static void load_namespaces(struct loader *l, const cJSON *map, const struct layer *d, bool compile)
{
        struct policy *p = l->p;
        if (!cJSON_IsObject(map)) {
                policy_fail(l, map, "namespaces", "must be a map of namespace name to its rule");
                return;
        }
        size_t n = (size_t)cJSON_GetArraySize(map);
        if (n > WH_MAX_POLICY_NAMESPACES) {
                policy_fail(l, map, "namespaces", "more than %u namespaces", WH_MAX_POLICY_NAMESPACES);
                return;
        }
        p->rules = pool_alloc(&p->pool, (n ? n : 1) * sizeof *p->rules);
        struct layer *e = malloc(sizeof *e);
        if (!p->rules || !e) {
                free(e);
                policy_oom(l);
                return;
        }
        const cJSON *it;
        cJSON_ArrayForEach(it, map) {
                char path[PATH_MAX_CHARS];
                policy_path_printf(path, "namespaces.%s", it->string);
                unsigned before = l->n_errors;
                if (!policy_is_dns_label(it->string))
                        policy_fail_key(l, it, path,
                                        "\"%s\" is not a namespace name (lowercase letters, "
                                        "digits and '-', at most 63)",
                                        it->string);
                policy_check_layer(l, it, path, LAYER_NAMED, e, NULL, NULL);
                if (l->n_errors != before || l->oom || !compile)
                        continue;
                if (compile_entry(l, it, it->string, RULE_NAMED, d, e, &p->rules[p->n_rules]))
                        p->n_rules++;
        }
        free(e);
        qsort(p->rules, p->n_rules, sizeof *p->rules, policy_cmp_rule);
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
static void load_list(struct loader *l, const cJSON *list, const char *path, bool identities, const char ***ret,
                      size_t *ret_n)
{
        char ipath[PATH_MAX_CHARS];
        if (!cJSON_IsArray(list)) {
                policy_fail(l, list, path, "must be a list");
                return;
        }
        size_t n = (size_t)cJSON_GetArraySize(list);
        if (n > WH_MAX_POLICY_LIST_ITEMS) {
                policy_fail(l, list, path, "more than %u items", WH_MAX_POLICY_LIST_ITEMS);
                return;
        }
        const char **items = pool_alloc(&l->p->pool, (n ? n : 1) * sizeof *items);
        if (!items) {
                policy_oom(l);
                return;
        }
        size_t k = 0;
        int i = 0;
        const cJSON *it;
        cJSON_ArrayForEach(it, list) {
                policy_path_printf(ipath, "%s[%d]", path, i++);
                const char *s = cJSON_IsString(it) ? it->valuestring : NULL;
                if (!s || strlen(s) > WH_MAX_POLICY_STRING) {
                        policy_fail(l, it, ipath, "must be a string of at most %u characters", WH_MAX_POLICY_STRING);
                        continue;
                }
                if (identities && !policy_is_label_value(s)) {
                        policy_fail(l, it, ipath,
                                    "\"%s\" is not a valid label value (at most 63 of "
                                    "A-Z a-z 0-9 - _ ., starting and ending alphanumeric)",
                                    s);
                        continue;
                }
                if (!identities && !is_grantor(s)) {
                        policy_fail(l, it, ipath,
                                    "a grantor is a user name or group:NAME, not empty and "
                                    "without control characters");
                        continue;
                }
                if (!(items[k++] = pool_strdup(&l->p->pool, s))) {
                        policy_oom(l);
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
                policy_path_printf(ipath, "delegableIdentities[%d]", i++);
                const struct policy_identity *id =
                        cJSON_IsString(it) ? policy_identity_find(l->p, it->valuestring) : NULL;
                if (id && id->reserved)
                        policy_fail(l, it, ipath,
                                    "\"%s\" is named by a namespaces or selectors entry, so it "
                                    "is reserved to those namespaces and cannot be given by annotations",
                                    id->identity);
        }
}

/* The top level of the document, as the first pass finds it: the simple
 * settings go straight to the policy, the rule sections wait for `defaults`. */
struct top {
        const cJSON *namespaces, *selectors, *delegable;
        const char **delegable_ids;
        size_t n_delegable;
        bool defaults_ok, grantors_set;
};

/* Reads one top-level key. */
static void load_top_key(struct loader *l, const cJSON *it, struct layer *defaults, struct top *t)
{
        struct policy *p = l->p;
        const char *k = it->string;
        if (strcmp(k, "defaults") == 0) {
                unsigned before = l->n_errors;
                if (!cJSON_IsNull(it))
                        policy_check_layer(l, it, "defaults", LAYER_DEFAULTS, defaults, NULL, NULL);
                t->defaults_ok = l->n_errors == before;
        } else if (strcmp(k, "namespaces") == 0) {
                t->namespaces = it;
        } else if (strcmp(k, "selectors") == 0) {
                t->selectors = it;
        } else if (strcmp(k, "namespaceAnnotations") == 0) {
                p->annotations = policy_want_bool(l, it, k);
        } else if (strcmp(k, "onLookupFailure") == 0) {
                static const char *const names[] = { "allow", "deny" };
                p->lookup_deny = policy_want_enum(l, it, k, names, 2) != 0;
        } else if (strcmp(k, "unmatched") == 0) {
                static const char *const names[] = { "allow", "deny" };
                p->unmatched_deny = policy_want_enum(l, it, k, names, 2) == 1;
        } else if (strcmp(k, "unlistedIdentities") == 0) {
                static const char *const names[] = { "allow", "deny" };
                p->unlisted_deny = policy_want_enum(l, it, k, names, 2) == 1;
        } else if (strcmp(k, "delegableIdentities") == 0) {
                t->delegable = it;
                if (!cJSON_IsNull(it))
                        load_list(l, it, k, true, &t->delegable_ids, &t->n_delegable);
        } else if (strcmp(k, "grantors") == 0) {
                t->grantors_set = true;
                if (!cJSON_IsNull(it))
                        load_list(l, it, k, false, &p->grantors, &p->n_grantors);
        } else {
                policy_fail_unknown_key(l, it, k, false, top_keys, sizeof top_keys / sizeof *top_keys,
                                        "a policy has " POLICY_TOP_KEYS);
        }
}

/* The second pass, on top of `defaults`: the settings' defaults, every
 * entry checked (and compiled when the defaults are valid), then the
 * identities and grant labels gathered from the rules. */
static void load_rules(struct loader *l, const cJSON *root, const struct layer *defaults, const struct top *t)
{
        struct policy *p = l->p;
        if (!cJSON_GetObjectItemCaseSensitive(root, "onLookupFailure"))
                p->lookup_deny = true;
        if (!t->grantors_set) {
                static const char *const default_grantors[] = { GRANTOR_DEFAULT };
                p->grantors = (const char **)default_grantors;
                p->n_grantors = 1;
        }
        p->default_mode = defaults->mode >= 0 ? (enum policy_mode)defaults->mode : POLICY_MODE_ENFORCE;
        l->defaults_auth = defaults->auth;

        /* Every entry is checked; rules are compiled only on top of valid defaults. */
        if (t->namespaces && !cJSON_IsNull(t->namespaces))
                load_namespaces(l, t->namespaces, defaults, t->defaults_ok);
        if (t->selectors && !cJSON_IsNull(t->selectors))
                load_selectors(l, t->selectors, defaults, t->defaults_ok);
        if (!l->n_errors) {
                int r = collect_identities(p, t->delegable_ids, t->n_delegable);
                if (r == 0)
                        r = collect_grant_labels(p);
                if (r < 0)
                        policy_oom(l);
                else if (cJSON_IsArray(t->delegable))
                        check_delegable(l, t->delegable);
        }
}

int policy_load(const char *text, size_t len, struct policy **ret_policy, struct buf *errors)
{
        return policy_load_sha256(text, len, NULL, ret_policy, errors);
}

int policy_load_sha256(const char *text, size_t len, const char *sha256, struct policy **ret_policy, struct buf *errors)
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
        struct loader l = { .doc = doc, .p = p, .errors = errors, .defaults_auth = -1, .errors_start = errors->len };
        struct top t = { .defaults_ok = true };
        const cJSON *root = doc_root(doc);

        if (!cJSON_IsObject(root)) {
                policy_fail(&l, root, NULL, "a policy is a map with " POLICY_TOP_KEYS);
                r = -EINVAL;
                goto out;
        }
        const cJSON *it;
        cJSON_ArrayForEach(it, root)
                load_top_key(&l, it, defaults, &t);
        load_rules(&l, root, defaults, &t);
        policy_sort_errors(&l);
        if (l.n_errors > POLICY_MAX_ERRORS)
                buf_printf(errors, "... and %u more problems\n", l.n_errors - POLICY_MAX_ERRORS);
        if (l.n_errors) {
                r = l.oom ? -ENOMEM : -EINVAL;
                goto out;
        }
        p->base = *defaults;
        r = policy_layer_keep(&p->pool, &p->base);
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

int policy_errors_prefix(struct buf *out, const char *file, const char *problems)
{
        int r = 0;
        const char *line = problems;
        while (r == 0 && *line) {
                const char *nl = strchr(line, '\n');
                size_t n = nl ? (size_t)(nl - line) : strlen(line);
                bool placed = line[0] >= '0' && line[0] <= '9';   /* "LINE:COL: ..." */
                r = buf_printf(out, "%s:%s%.*s\n", file, placed ? "" : " ", (int)n, line);
                line += n + (nl ? 1 : 0);
        }
        return r;
}
