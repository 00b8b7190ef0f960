/* Label selectors, Kubernetes semantics: a `namespaceSelector` of the
 * policy checked into requirements (matchLabels, matchExpressions), and a
 * namespace's labels matched against them. */
#include "policy_internal.h"

#include <errno.h>
#include <string.h>

/* A label key: an optional DNS-subdomain prefix and '/', then a name of at
 * most 63 characters of alphanumerics, '-', '_', '.', alphanumeric at both ends. */
bool policy_is_label_key(const char *s)
{
        const char *slash = strrchr(s, '/');
        const char *name = slash ? slash + 1 : s;
        if (slash && (slash == s || slash - s > 253))
                return false;
        for (const char *c = s; slash && c < slash; c++)
                if (!((*c >= 'a' && *c <= 'z') || (*c >= '0' && *c <= '9') || *c == '-' || *c == '.'))
                        return false;
        return policy_is_label_value(name);
}

static const char *const op_names[POLICY_LABEL_OP_MAX] = { "In", "NotIn", "Exists", "DoesNotExist" };

/* matchLabels: each label=value is an In requirement with one value.
 * -ENOMEM stops the selector; a bad pair is reported and skipped. */
static int check_match_labels(struct loader *l, const cJSON *labels, const char *path, struct selector_rule *ret)
{
        char kpath[PATH_MAX_CHARS], ipath[PATH_MAX_CHARS];
        struct pool *pool = &l->p->pool;
        policy_path_printf(kpath, "%s.matchLabels", path);
        if (!cJSON_IsObject(labels))
                policy_fail(l, labels, kpath, "must be a map of label to value");
        const cJSON *label_map = cJSON_IsObject(labels) ? labels : NULL;
        const cJSON *it;
        cJSON_ArrayForEach(it, label_map) {
                policy_path_printf(ipath, "%s.%s", kpath, it->string);
                if (!policy_is_label_key(it->string)) {
                        policy_fail_key(l, it, ipath, "\"%s\" is not a label key", it->string);
                        continue;
                }
                if (!cJSON_IsString(it) || (*it->valuestring && !policy_is_label_value(it->valuestring))) {
                        policy_fail(l, it, ipath, "must be a label value (a string)");
                        continue;
                }
                const char **v = pool_alloc(pool, sizeof *v);
                if (!v) {
                        policy_oom(l);
                        return -ENOMEM;
                }
                v[0] = pool_strdup(pool, it->valuestring);
                ret->reqs[ret->n_reqs++] = (struct policy_label_req){
                        .key = pool_strdup(pool, it->string), .op = POLICY_LABEL_IN, .values = v, .n_values = 1
                };
        }
        return 0;
}

/* The operator of a requirement, or -1. */
static int label_op(const cJSON *op)
{
        int o = -1;
        for (int k = 0; cJSON_IsString(op) && k < POLICY_LABEL_OP_MAX; k++)
                if (strcmp(op->valuestring, op_names[k]) == 0)
                        o = k;
        return o;
}

/* One requirement of matchExpressions, {key, operator, values}, at `ipath`.
 * -ENOMEM stops the selector; a bad one is reported and skipped. */
static int check_expression(struct loader *l, const cJSON *it, const char *ipath, struct selector_rule *ret)
{
        struct pool *pool = &l->p->pool;
        const cJSON *key = cJSON_GetObjectItemCaseSensitive(it, "key");
        const cJSON *op = cJSON_GetObjectItemCaseSensitive(it, "operator");
        const cJSON *values = cJSON_GetObjectItemCaseSensitive(it, "values");
        if (!cJSON_IsObject(it)) {
                policy_fail(l, it, ipath, "must be a map with key, operator and values");
                return 0;
        }
        const cJSON *f;
        bool bad = false;
        cJSON_ArrayForEach(f, it)
                if (strcmp(f->string, "key") && strcmp(f->string, "operator") && strcmp(f->string, "values")) {
                        static const char *const keys[] = { "key", "operator", "values" };
                        policy_fail_unknown_key(l, f, ipath, true, keys, 3,
                                                "a requirement has key, operator and values");
                        bad = true;
                }
        if (!cJSON_IsString(key) || !policy_is_label_key(key->valuestring)) {
                policy_fail(l, key ? key : it, ipath, "key must be a label key");
                return 0;
        }
        int o = label_op(op);
        if (o < 0) {
                policy_fail(l, op ? op : it, ipath, "operator must be one of In | NotIn | Exists | DoesNotExist");
                return 0;
        }
        int nv = cJSON_IsArray(values) ? cJSON_GetArraySize(values) : 0;
        if (values && !cJSON_IsArray(values)) {
                policy_fail(l, values, ipath, "values must be a list");
                return 0;
        }
        if ((o == POLICY_LABEL_IN || o == POLICY_LABEL_NOT_IN) && nv == 0) {
                policy_fail(l, it, ipath, "%s needs at least one value", op_names[o]);
                return 0;
        }
        if ((o == POLICY_LABEL_EXISTS || o == POLICY_LABEL_DOES_NOT_EXIST) && nv > 0) {
                policy_fail(l, values, ipath, "%s takes no values", op_names[o]);
                return 0;
        }
        if (nv > (int)WH_MAX_RULE_LIST_ITEMS) {
                policy_fail(l, values, ipath, "more than %u values", WH_MAX_RULE_LIST_ITEMS);
                return 0;
        }
        const char **vs = pool_alloc(pool, (size_t)(nv ? nv : 1) * sizeof *vs);
        if (!vs) {
                policy_oom(l);
                return -ENOMEM;
        }
        int k = 0;
        cJSON_ArrayForEach(f, values) {
                if (!cJSON_IsString(f) || (*f->valuestring && !policy_is_label_value(f->valuestring))) {
                        policy_fail(l, f, ipath, "values must be label values (strings)");
                        bad = true;
                        break;
                }
                vs[k++] = pool_strdup(pool, f->valuestring);
        }
        if (bad)
                return 0;
        ret->reqs[ret->n_reqs++] = (struct policy_label_req){ .key = pool_strdup(pool, key->valuestring),
                                                              .op = (enum policy_label_op)o,
                                                              .values = vs,
                                                              .n_values = (size_t)nv };
        return 0;
}

void policy_check_selector(struct loader *l, const cJSON *sel, const char *path, struct selector_rule *ret)
{
        char kpath[PATH_MAX_CHARS], ipath[PATH_MAX_CHARS];

        if (!cJSON_IsObject(sel)) {
                policy_fail(l, sel, path, "must be a map with matchLabels and/or matchExpressions");
                return;
        }
        const cJSON *labels = cJSON_GetObjectItemCaseSensitive(sel, "matchLabels");
        const cJSON *exprs = cJSON_GetObjectItemCaseSensitive(sel, "matchExpressions");
        const cJSON *it;
        cJSON_ArrayForEach(it, sel)
                if (strcmp(it->string, "matchLabels") != 0 && strcmp(it->string, "matchExpressions") != 0) {
                        policy_path_printf(kpath, "%s.%s", path, it->string);
                        static const char *const keys[] = { "matchLabels", "matchExpressions" };
                        policy_fail_unknown_key(l, it, kpath, false, keys, 2,
                                                "a namespaceSelector has matchLabels and matchExpressions");
                }
        size_t n = (size_t)(cJSON_IsObject(labels) ? cJSON_GetArraySize(labels) : 0) +
                   (size_t)(cJSON_IsArray(exprs) ? cJSON_GetArraySize(exprs) : 0);
        if (n > WH_MAX_RULE_LIST_ITEMS) {
                policy_fail(l, sel, path, "more than %u requirements", WH_MAX_RULE_LIST_ITEMS);
                return;
        }
        ret->reqs = pool_alloc(&l->p->pool, (n ? n : 1) * sizeof *ret->reqs);
        if (!ret->reqs) {
                policy_oom(l);
                return;
        }
        if (labels && check_match_labels(l, labels, path, ret) < 0)
                return;
        if (!exprs)
                return;
        policy_path_printf(kpath, "%s.matchExpressions", path);
        if (!cJSON_IsArray(exprs)) {
                policy_fail(l, exprs, kpath, "must be a list of {key, operator, values}");
                return;
        }
        int i = 0;
        cJSON_ArrayForEach(it, exprs) {
                policy_path_printf(ipath, "%s[%d]", kpath, i++);
                if (check_expression(l, it, ipath, ret) < 0)
                        return;
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

bool policy_selector_rule_matches(const struct selector_rule *s, const struct ns_info *ns)
{
        for (size_t i = 0; i < s->n_reqs; i++)
                if (!requirement_holds(&s->reqs[i], ns))
                        return false;
        return true;
}

const struct policy_label_req *policy_selector_requirements(const struct policy *p, size_t index, size_t *ret_n)
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
        return index < p->n_selectors && policy_selector_rule_matches(&p->selectors[index], info);
}
