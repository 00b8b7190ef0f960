/* A table of namespaces: see include/core/ns_table.h. */
#include "ns_table.h"

#include <assert.h>
#include <errno.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include "strs.h"
#include "policy.h"

/* The entries are compared by str_cmp_ptr(), which reads their first member. */
static_assert(offsetof(struct ns_entry, name) == 0, "an entry begins with its name");

void ns_table_init(struct ns_table *t, size_t max)
{
        *t = (struct ns_table){ .pool = POOL_INIT, .max = max };
}

/* The string values of `map` (only the keys under `prefix` when it is not
 * NULL), copied into the pool. */
static int copy_map(struct pool *pool, const cJSON *map, const char *prefix, const struct kv **ret, size_t *ret_n)
{
        size_t n = 0;
        const cJSON *it;
        cJSON_ArrayForEach(it, map)
                n++;
        struct kv *kv = pool_alloc(pool, (n ? n : 1) * sizeof *kv);
        if (!kv)
                return -ENOMEM;
        n = 0;
        cJSON_ArrayForEach(it, map) {
                if (!cJSON_IsString(it) || !it->string || (prefix && strncmp(it->string, prefix, strlen(prefix))))
                        continue;
                kv[n].key = pool_strdup(pool, it->string);
                kv[n].value = pool_strdup(pool, it->valuestring);
                if (!kv[n].key || !kv[n].value)
                        return -ENOMEM;
                n++;
        }
        *ret = kv;
        *ret_n = n;
        return 0;
}

int ns_table_entry_fill(struct pool *pool, const char *name, const cJSON *labels, const cJSON *annotations,
                        struct ns_entry *e)
{
        memset(e, 0, sizeof *e);
        e->name = pool_strdup(pool, name);
        if (!e->name)
                return -ENOMEM;
        int r = copy_map(pool, labels, NULL, &e->info.labels, &e->info.n_labels);
        if (r == 0)
                r = copy_map(pool, annotations, POLICY_ANNOTATION_PREFIX, &e->info.annotations, &e->info.n_annotations);
        return r;
}

int ns_table_add(struct ns_table *t, const char *name, const cJSON *labels, const cJSON *annotations)
{
        if (t->n >= t->max)
                return -E2BIG;
        if (t->n == t->cap) {
                size_t cap = t->cap ? t->cap * 2 : 64;
                if (cap > t->max)
                        cap = t->max;
                struct ns_entry *v = realloc(t->v, cap * sizeof *v);
                if (!v)
                        return -ENOMEM;
                t->v = v;
                t->cap = cap;
        }
        int r = ns_table_entry_fill(&t->pool, name, labels, annotations, &t->v[t->n]);
        if (r < 0)
                return r;
        t->n++;
        t->sorted = false;
        return 0;
}

void ns_table_sort(struct ns_table *t)
{
        if (t->n)
                qsort(t->v, t->n, sizeof *t->v, str_cmp_ptr);
        t->sorted = true;
}

const struct ns_entry *ns_table_find(const struct ns_table *t, const char *name)
{
        struct ns_entry key = { .name = name };
        if (!t->sorted || !t->n || !name)
                return NULL;
        return bsearch(&key, t->v, t->n, sizeof *t->v, str_cmp_ptr);
}

void ns_table_free(struct ns_table *t)
{
        size_t max = t->max;
        pool_free(&t->pool);
        free(t->v);
        ns_table_init(t, max);
}

bool ns_table_name_valid(const char *s)
{
        return policy_value_valid(POLICY_VALUE_DNS_LABEL, s);
}
