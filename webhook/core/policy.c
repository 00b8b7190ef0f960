/* The loaded policy: its rules looked up by namespace name, annotations or
 * labels (policy_resolve()), claims judged, grantors, and what it holds.
 * Loading is policy_load.c's; see include/core/policy.h. */
#include "policy_internal.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "strs.h"

void policy_free(struct policy *p)
{
        if (!p)
                return;
        pool_free(&p->pool);
        free(p);
}

/* ---- the orders of the policy's arrays ---- */

int policy_cmp_rule(const void *a, const void *b)
{
        return strcmp(((const struct rule *)a)->name, ((const struct rule *)b)->name);
}

int policy_cmp_identity(const void *a, const void *b)
{
        return strcmp(((const struct policy_identity *)a)->identity, ((const struct policy_identity *)b)->identity);
}

/* ---- lookups ---- */

const struct rule *policy_rule_for(const struct policy *p, const char *namespace_)
{
        if (!namespace_ || !p->n_rules)
                return NULL;
        struct rule key = { .name = namespace_ };
        return bsearch(&key, p->rules, p->n_rules, sizeof *p->rules, policy_cmp_rule);
}

bool policy_uses_namespaces(const struct policy *p)
{
        return p->annotations || p->n_selectors > 0;
}

bool policy_needs_namespace(const struct policy *p, const char *namespace_)
{
        return policy_uses_namespaces(p) && !policy_rule_for(p, namespace_);
}

/* Whether annotations may give `identity`: only one the policy lists in
 * delegableIdentities, never one reserved by an entry or a selector. */
static bool delegable(const struct policy *p, const char *identity, char *why, size_t whylen)
{
        const struct policy_identity *id = policy_identity_find(p, identity);
        if (id && id->reserved) {
                snprintf(why, whylen,
                         ANNOTATION_IDENTITY " \"%.63s\" is reserved by the policy to other "
                                             "namespaces",
                         identity);
                return false;
        }
        if (!id || !id->delegable) {
                snprintf(why, whylen,
                         ANNOTATION_IDENTITY " \"%.63s\" is not in the policy's "
                                             "delegableIdentities",
                         identity);
                return false;
        }
        return true;
}

int policy_resolve(const struct policy *p, const char *namespace_, const struct ns_info *info, struct pool *pool,
                   struct resolution *ret_res)
{
        ret_res->rule = policy_rule_for(p, namespace_);
        ret_res->unknown = false;
        ret_res->problem[0] = '\0';
        if (ret_res->rule || !policy_uses_namespaces(p))
                return 0;
        if (!info) {
                ret_res->unknown = true;
                return 0;
        }
        if (p->annotations &&
            (policy_annotation_of(info, ANNOTATION_IDENTITY) || policy_annotation_of(info, ANNOTATION_AUTH))) {
                struct layer *e = malloc(sizeof *e);
                char name[128], err[256];
                if (!e)
                        return -ENOMEM;
                if (!policy_annotation_layer(info, e, ret_res->problem, sizeof ret_res->problem)) {
                        free(e);
                        return 0;
                }
                if (e->identity && !delegable(p, e->identity, ret_res->problem, sizeof ret_res->problem)) {
                        free(e);
                        return 0;
                }
                snprintf(name, sizeof name, "annotations of %s", namespace_ ? namespace_ : "");
                int r = policy_compile_rule(pool, name, RULE_ANNOTATIONS, &p->base, e, &ret_res->annotated, err,
                                            sizeof err);
                free(e);
                if (r == -EINVAL) {
                        snprintf(ret_res->problem, sizeof ret_res->problem, "%s", err);
                        return 0;
                }
                if (r < 0)
                        return r;
                ret_res->rule = &ret_res->annotated;
                return 0;
        }
        for (size_t i = 0; i < p->n_selectors; i++) {
                if (policy_selector_rule_matches(&p->selectors[i], info)) {
                        ret_res->rule = &p->selectors[i].rule;
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
        return bsearch(&key, p->identities, p->n_identities, sizeof *p->identities, policy_cmp_identity);
}

static enum policy_claim claim_by_mode(enum policy_mode m)
{
        return m == POLICY_MODE_ENFORCE ? POLICY_CLAIM_DENIED
               : m == POLICY_MODE_AUDIT ? POLICY_CLAIM_WARN
                                        : POLICY_CLAIM_ALLOWED;
}

struct policy_claim_verdict policy_judge_claim(const struct policy *p, const struct rule *r, const char *identity)
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
        return str_sorted_has(p->grant_labels, p->n_grant_labels, key);
}

size_t policy_grant_label_count(const struct policy *p)
{
        return p->n_grant_labels;
}

const char *policy_grant_label_at(const struct policy *p, size_t index)
{
        return index < p->n_grant_labels ? p->grant_labels[index] : NULL;
}

bool policy_is_grantor(const struct policy *p, const char *user, const char *const *groups, size_t n_groups)
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
