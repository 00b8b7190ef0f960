/* A table of namespaces: each name with its labels and its
 * spark-identity.io/ annotations (the only ones the policy reads), filled
 * by ns_table_add(), then sorted once by ns_table_sort() and looked up by
 * name (bsearch). `audit` keeps the namespaces it read in one; the
 * namespace cache builds one per state it publishes. Pure: no I/O, no
 * locks; one owner at a time.
 *
 * Ownership: the table owns its entries and every string of them (copied
 * into its pool); what ns_table_find() and ns_table_entry_fill() give points
 * into the table or the pool and lives until ns_table_free() or
 * pool_free(). */
#pragma once
#include <stdbool.h>
#include <stddef.h>

#include <cjson/cJSON.h>

#include "policy.h"
#include "pool.h"

struct ns_entry {
        const char *name;               /* first: the key the table is sorted by */
        struct ns_info info;            /* its labels and spark-identity.io/ annotations */
};

struct ns_table {
        struct pool pool;               /* the entries' strings */
        struct ns_entry *v;             /* malloc'd; sorted by name after ns_table_sort() */
        size_t n, cap;
        size_t max;                     /* at most this many entries */
        bool sorted;
};

/* An empty table of at most `max` entries. */
void ns_table_init(struct ns_table *t, size_t max);

/* Copies one namespace into the table: `name`, the string values of
 * `labels` and those of `annotations` under POLICY_ANNOTATION_PREFIX
 * (either map may be NULL; values that are not strings are left out). The
 * table is unsorted until ns_table_sort(). A name added twice is kept twice
 * (ns_table_find() finds one of them). 0; -E2BIG when the table holds `max`
 * entries already; -ENOMEM. */
int ns_table_add(struct ns_table *t, const char *name, const cJSON *labels, const cJSON *annotations);

/* Sorts the table by name, for ns_table_find(). */
void ns_table_sort(struct ns_table *t);

/* The entry named `name`, or NULL (also when the table is not sorted). */
const struct ns_entry *ns_table_find(const struct ns_table *t, const char *name);

/* Whether `s` can name a namespace: a DNS label (RFC 1123), at most 63 of
 * a-z, 0-9 and '-', not starting or ending with '-' (the policy's own
 * check, policy_value_valid(POLICY_VALUE_DNS_LABEL)). */
bool ns_table_name_valid(const char *s);

/* Releases everything; the table is empty, with the same bound. */
void ns_table_free(struct ns_table *t);

/* Fills `e` as ns_table_add() fills an entry, its strings copied into
 * `pool`: for one namespace kept outside a table. 0 or -ENOMEM. */
int ns_table_entry_fill(struct pool *pool, const char *name, const cJSON *labels, const cJSON *annotations,
                        struct ns_entry *e);
