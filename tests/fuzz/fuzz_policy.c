/* fuzz_policy: policy_load() on arbitrary bytes: the YAML/JSON reader
 * (doc.c over libyaml: positions, aliases, depth and node bounds) and the
 * policy's checks and compilation.
 *
 * The values are judged by the loader's own checks (policy_value_valid()),
 * not by a copy of them here; what this target checks is that the loader
 * keeps to them and to its other promises:
 *   - a failure is -EINVAL or -ENOMEM and explains itself: the errors are
 *     non-empty, NUL-terminated and every line ends with '\n'; the same text
 *     fails again with the same errors;
 *   - a success gives a policy whose every rule, by name and by selector,
 *     walked as check-policy walks them, holds only values that pass the
 *     check of their kind (identities and allowed identities, GUIDs, storage
 *     accounts, java.home and java.options, hadoop keys and values, service
 *     account, authority host, extra containers), the identity first among
 *     the allowed ones and none twice; the hadoop properties sorted by key,
 *     per storage account when it names some, and carrying tenantId/clientId;
 *     at most WH_MAX_RULE_FLAGS JVM flags, the hadoop ones exactly
 *     -Dspark.hadoop.KEY=VALUE in key order, and flags_joined the flags
 *     joined by single spaces; the enums in range and named; the rules by
 *     name sorted, namespace names, and found by policy_rule_for(); the
 *     listed identities and the grant labels sorted, unique and valid; the
 *     selectors' requirements valid label keys and values; no digest
 *     (policy_load() is given none);
 *   - the same text loads again, with policy_load_sha256(), into the same
 *     rules, carrying the digest it was given;
 *   - resolving a few namespaces (named, unknown, unreadable, with
 *     annotations that make a rule and ones that do not) neither crashes nor
 *     leaks; a name finds its entry, an unreadable namespace is unknown
 *     exactly when the policy reads namespaces, labels find the first
 *     selector that matches them, annotations count only when the policy
 *     reads them and then make a rule or say why not, the same namespace
 *     resolves the same way twice, and a rule made from annotations holds
 *     the same invariants. */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "policy.h"
#include "pool.h"
#include "webhook_limits.h"

#include "fuzz_util.h"

#define ACCOUNT_SUFFIX ".dfs.core.windows.net"
#define DIGEST "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const char *or_null(const char *s)
{
        return s ? s : "(null)";
}

/* `s` passes the loader's check of `kind`; NULL only where `optional`. */
static void want_value(const char *rule, const char *what, enum policy_value kind, const char *s, bool optional)
{
        if (!s && optional)
                return;
        if (!policy_value_valid(kind, s))
                fuzz_fail("%s: %s \"%.300s\" does not pass its check", rule, what, or_null(s));
}

static void want_values(const char *rule, const char *what, enum policy_value kind, const char *const *items, size_t n,
                        size_t max)
{
        if (n > max)
                fuzz_fail("%s: %zu %s, at most %zu", rule, n, what, max);
        for (size_t i = 0; i < n; i++) {
                want_value(rule, what, kind, items[i], false);
                for (size_t j = 0; j < i; j++)
                        if (strcmp(items[i], items[j]) == 0)
                                fuzz_fail("%s: %s %s twice", rule, what, items[i]);
        }
}

/* Workload identity settings, or none of them with pod identity. */
static void check_auth(const struct rule *r)
{
        if (r->auth >= POLICY_AUTH_MAX || !policy_auth_name(r->auth))
                fuzz_fail("%s: auth out of range", r->name);
        if (r->auth != POLICY_AUTH_WORKLOAD_IDENTITY) {
                if (!r->identity)
                        fuzz_fail("%s: a pod-identity rule without an identity", r->name);
                if (r->service_account || r->authority_host || r->n_extra_containers)
                        fuzz_fail("%s: workload identity settings on a pod-identity rule", r->name);
                return;
        }
        if (!r->client_id || !r->tenant_id)
                fuzz_fail("%s: workload identity without clientId or tenantId", r->name);
        want_value(r->name, "authorityHost", POLICY_VALUE_HTTPS_URL, r->authority_host, false);
        want_value(r->name, "serviceAccount", POLICY_VALUE_SERVICE_ACCOUNT, r->service_account, true);
        if (r->token_expiration_s < POLICY_WI_TOKEN_EXPIRATION_MIN ||
            r->token_expiration_s > POLICY_WI_TOKEN_EXPIRATION_MAX)
                fuzz_fail("%s: token lifetime %u", r->name, r->token_expiration_s);
        want_values(r->name, "extra container", POLICY_VALUE_DNS_LABEL, r->extra_containers, r->n_extra_containers,
                    WH_MAX_RULE_LIST_ITEMS);
        if (!strstr(r->flags_joined, "oauth2.token.file"))
                fuzz_fail("%s: workload identity without the token file among its flags", r->name);
}

/* Sorted, valid, per storage account when the rule names some, and
 * carrying the rule's tenant and client. */
static void check_hadoop(const struct rule *r)
{
        bool tenant = false, client = false;
        for (size_t i = 0; i < r->n_hadoop; i++) {
                const struct hadoop_prop *hp = &r->hadoop[i];
                want_value(r->name, "hadoop property name", POLICY_VALUE_HADOOP_KEY, hp->key, false);
                want_value(r->name, "hadoop value", POLICY_VALUE_WORD, hp->value, false);
                if (i && strcmp(r->hadoop[i - 1].key, hp->key) > 0)
                        fuzz_fail("%s: hadoop properties out of order: %s before %s", r->name, r->hadoop[i - 1].key,
                                  hp->key);
                if (r->n_storage_accounts && strncmp(hp->key, "fs.azure.", 9) == 0) {
                        size_t n = strlen(hp->key), m = strlen(ACCOUNT_SUFFIX);
                        if (n < m || strcmp(hp->key + n - m, ACCOUNT_SUFFIX) != 0)
                                fuzz_fail("%s: %s is not per storage account", r->name, hp->key);
                }
                if (strstr(hp->key, "fs.azure.account.oauth2.msi.tenant") == hp->key)
                        tenant = tenant || (r->tenant_id && strcmp(hp->value, r->tenant_id) == 0);
                if (strstr(hp->key, "fs.azure.account.oauth2.client.id") == hp->key)
                        client = client || (r->client_id && strcmp(hp->value, r->client_id) == 0);
        }
        if ((r->tenant_id && !tenant) || (r->client_id && !client))
                fuzz_fail("%s: tenantId or clientId is not among the hadoop properties", r->name);
}

/* java.options first, then -Dspark.hadoop.KEY=VALUE in key order; and
 * flags_joined: all of them joined by single spaces. */
static void check_flags(const struct rule *r)
{
        if (r->n_flags > WH_MAX_RULE_FLAGS || r->n_flags < r->n_hadoop)
                fuzz_fail("%s: %zu JVM flags for %zu hadoop properties", r->name, r->n_flags, r->n_hadoop);
        size_t n_options = r->n_flags - r->n_hadoop, joined = 0;
        if (!r->flags_joined)
                fuzz_fail("%s: no flags_joined", r->name);
        for (size_t i = 0; i < r->n_flags; i++) {
                const char *f = r->flags[i];
                if (i < n_options) {
                        want_value(r->name, "java option", POLICY_VALUE_JVM_OPTION, f, false);
                } else {
                        const struct hadoop_prop *hp = &r->hadoop[i - n_options];
                        static const char pre[] = "-Dspark.hadoop.";
                        size_t kl = strlen(hp->key);
                        if (!f || strncmp(f, pre, sizeof pre - 1) != 0 ||
                            strncmp(f + sizeof pre - 1, hp->key, kl) != 0 || f[sizeof pre - 1 + kl] != '=' ||
                            strcmp(f + sizeof pre + kl, hp->value) != 0)
                                fuzz_fail("%s: JVM flag %zu is \"%.200s\", not -Dspark.hadoop.%.200s=%.200s", r->name,
                                          i, or_null(f), hp->key, hp->value);
                }
                if (strncmp(r->flags_joined + joined, f, strlen(f)) != 0)
                        fuzz_fail("%s: flags_joined does not hold flag %zu", r->name, i);
                joined += strlen(f);
                if (i + 1 < r->n_flags) {
                        if (r->flags_joined[joined] != ' ')
                                fuzz_fail("%s: flags_joined is not joined by single spaces", r->name);
                        joined++;
                }
        }
        if (r->flags_joined[joined] != '\0')
                fuzz_fail("%s: flags_joined has more than the flags", r->name);
}

static void check_rule(const struct rule *r, const char *where)
{
        if (!r || !r->name || !*r->name)
                fuzz_fail("%s: a rule without a name", where);
        check_auth(r);
        if (r->mode >= POLICY_MODE_MAX || r->on_conflict >= POLICY_CONFLICT_MAX || r->jvm_env >= POLICY_JVM_ENV_MAX ||
            r->source >= RULE_SOURCE_MAX || r->source == RULE_NONE)
                fuzz_fail("%s: an enum out of range", r->name);
        /* check-policy prints these names */
        if (!policy_mode_name(r->mode) || !policy_conflict_name(r->on_conflict) || !policy_jvm_env_name(r->jvm_env))
                fuzz_fail("%s: an enum without a name", r->name);
        if (r->source == RULE_NAMED)
                want_value(r->name, "namespace name", POLICY_VALUE_DNS_LABEL, r->name, false);
        want_value(r->name, "identity", POLICY_VALUE_LABEL_VALUE, r->identity, true);
        want_value(r->name, "tenantId", POLICY_VALUE_GUID, r->tenant_id, true);
        want_value(r->name, "clientId", POLICY_VALUE_GUID, r->client_id, true);
        want_value(r->name, "java.home", POLICY_VALUE_JAVA_HOME, r->java_home, true);
        if (r->identity && (r->n_allowed_identities < 1 || strcmp(r->allowed_identities[0], r->identity) != 0))
                fuzz_fail("%s: the identity is not the first allowed identity", r->name);
        want_values(r->name, "allowed identity", POLICY_VALUE_LABEL_VALUE, r->allowed_identities,
                    r->n_allowed_identities, WH_MAX_RULE_LIST_ITEMS + 1);
        want_values(r->name, "storage account", POLICY_VALUE_STORAGE_ACCOUNT, r->storage_accounts,
                    r->n_storage_accounts, WH_MAX_RULE_LIST_ITEMS);
        check_hadoop(r);
        check_flags(r);
}

/* Two loads of one text made the same rule. */
static void same_rule(const struct rule *a, const struct rule *b)
{
        bool same = strcmp(a->name, b->name) == 0 && a->source == b->source && a->auth == b->auth &&
                    a->mode == b->mode && a->on_conflict == b->on_conflict && a->jvm_env == b->jvm_env &&
                    strcmp(or_null(a->identity), or_null(b->identity)) == 0 &&
                    strcmp(or_null(a->java_home), or_null(b->java_home)) == 0 &&
                    strcmp(or_null(a->service_account), or_null(b->service_account)) == 0 &&
                    a->token_expiration_s == b->token_expiration_s &&
                    a->n_allowed_identities == b->n_allowed_identities && a->n_hadoop == b->n_hadoop &&
                    a->n_extra_containers == b->n_extra_containers && strcmp(a->flags_joined, b->flags_joined) == 0;
        if (!same)
                fuzz_fail("%s: loaded twice, two different rules", a->name);
}

/* The listed identities and the grant labels: sorted, unique, valid. */
static void check_lists(const struct policy *p)
{
        size_t n = policy_identity_count(p);
        for (size_t i = 0; i < n; i++) {
                const struct policy_identity *id = policy_identity_at(p, i);
                want_value("identities", "listed identity", POLICY_VALUE_LABEL_VALUE, id->identity, false);
                if (id->protection >= POLICY_MODE_MAX || (!id->reserved && !id->delegable))
                        fuzz_fail("%s: listed for no reason, or protected out of range", id->identity);
                if (i && strcmp(policy_identity_at(p, i - 1)->identity, id->identity) >= 0)
                        fuzz_fail("the identities are not sorted and unique at %s", id->identity);
                if (policy_identity_find(p, id->identity) != id)
                        fuzz_fail("%s: not found", id->identity);
        }
        n = policy_grant_label_count(p);
        for (size_t i = 0; i < n; i++) {
                const char *k = policy_grant_label_at(p, i);
                want_value("grant labels", "label key", POLICY_VALUE_LABEL_KEY, k, false);
                if (i && strcmp(policy_grant_label_at(p, i - 1), k) >= 0)
                        fuzz_fail("the grant labels are not sorted and unique at %s", k);
                if (!policy_grant_label(p, k))
                        fuzz_fail("%s: a grant label that policy_grant_label() does not know", k);
        }
        if (policy_identity_at(p, policy_identity_count(p)) || policy_grant_label_at(p, n))
                fuzz_fail("an identity or a grant label past the end");
}

/* A selector's requirements: valid label keys and values (or ""), every
 * key a grant label. */
static void check_requirements(const struct policy *p, size_t index)
{
        size_t n = 0;
        const struct policy_label_req *reqs = policy_selector_requirements(p, index, &n);
        for (size_t i = 0; i < n; i++) {
                const struct policy_label_req *q = &reqs[i];
                want_value("selectors", "label key", POLICY_VALUE_LABEL_KEY, q->key, false);
                if (q->op >= POLICY_LABEL_OP_MAX || !policy_grant_label(p, q->key))
                        fuzz_fail("%s: an operator out of range, or not a grant label", q->key);
                for (size_t k = 0; k < q->n_values; k++)
                        if (*q->values[k])
                                want_value("selectors", "label value", POLICY_VALUE_LABEL_VALUE, q->values[k], false);
        }
}

/* What resolving a namespace gave: the rule (NULL for one made from
 * annotations, which lives no longer than its pool), where it came from,
 * whether the namespace was unknown, whether there was a problem. */
struct outcome {
        const struct rule *rule;
        enum rule_source source;
        bool unknown, problem;
};

/* Resolves `ns` twice, the same way both times; checks the rule and the
 * claims judged under it. */
static struct outcome resolve(const struct policy *p, const char *ns, const struct ns_info *info)
{
        const char *where = ns ? ns : "(no name)";
        struct pool pool = POOL_INIT;
        struct resolution res, again;
        memset(&res, 0, sizeof res);
        memset(&again, 0, sizeof again);
        if (policy_resolve(p, ns, info, &pool, &res) < 0 || policy_resolve(p, ns, info, &pool, &again) < 0)
                fuzz_fail("policy_resolve(%s) failed", where);
        if (res.unknown != again.unknown || strcmp(res.problem, again.problem) != 0 || !res.rule != !again.rule ||
            (res.rule && res.rule->source != again.rule->source))
                fuzz_fail("%s: resolved twice, two answers", where);
        if (res.rule && res.rule->source == RULE_ANNOTATIONS)
                same_rule(res.rule, again.rule);
        else if (res.rule != again.rule)
                fuzz_fail("%s: resolved twice, two rules", where);
        if (res.rule) {
                check_rule(res.rule, where);
                if (res.problem[0] || res.unknown)
                        fuzz_fail("%s: a rule and a problem: %s", where, res.problem);
        }
        if (res.unknown && res.problem[0])
                fuzz_fail("%s: unknown, and a problem: %s", where, res.problem);
        const char *who[] = { "sparkaks", "team-a-api", "x-spark", "nobody" };
        for (size_t i = 0; i < sizeof who / sizeof *who; i++) {
                struct policy_claim_verdict v = policy_judge_claim(p, res.rule, who[i]);
                if (policy_rule_grants(res.rule, who[i]) && v.claim != POLICY_CLAIM_ALLOWED)
                        fuzz_fail("%s: identity %s granted by its rule yet not allowed", where, who[i]);
                if (v.reason != POLICY_CLAIM_GRANTED && v.listed != policy_identity_find(p, who[i]))
                        fuzz_fail("%s: identity %s judged as listed by another entry", where, who[i]);
        }
        /* Annotations give only delegable identities, never reserved ones. */
        if (res.rule && res.rule->source == RULE_ANNOTATIONS && res.rule->identity) {
                const struct policy_identity *id = policy_identity_find(p, res.rule->identity);
                if (!id || !id->delegable || id->reserved)
                        fuzz_fail("%s: annotations gave %s, which is not delegable", where, res.rule->identity);
        }
        struct outcome o = {
                .rule = res.rule && res.rule->source != RULE_ANNOTATIONS ? res.rule : NULL,
                .source = res.rule ? res.rule->source : RULE_NONE,
                .unknown = res.unknown,
                .problem = res.problem[0] != '\0',
        };
        pool_free(&pool);
        return o;
}

/* The rule of a namespace without an entry, by its labels: the first
 * selector that matches them. */
static const struct rule *by_labels(const struct policy *p, const struct ns_info *info)
{
        for (size_t i = 0; i < policy_selector_count(p); i++)
                if (policy_selector_matches(p, i, info))
                        return policy_selector_at(p, i);
        return NULL;
}

/* A namespace answered by its labels alone: that selector's rule, or none. */
static void want_by_labels(const struct policy *p, const char *ns, const struct ns_info *info, const char *what)
{
        struct outcome o = resolve(p, ns, info);
        const struct rule *want = policy_rule_for(p, ns);
        if (!want)
                want = by_labels(p, info);
        if (o.rule != want || o.unknown || o.problem || (!want && o.source != RULE_NONE))
                fuzz_fail("%s (%s): rule %s, where its labels give %s", ns, what, o.rule ? o.rule->name : "none",
                          want ? want->name : "none");
}

/* Namespaces of every kind, and what their rules must be. */
static void check_resolution(const struct policy *p)
{
        static const struct kv labels[] = { { "spark-identity.io/team", "data" },
                                            { "env", "prod" },
                                            { "tier", "gold" } };
        static const struct kv good_ann[] = {
                { POLICY_ANNOTATION_PREFIX "identity", "x-spark" },
                { POLICY_ANNOTATION_PREFIX "client-id", "5f4c1b2a-8d3e-4f6a-9b7c-1d2e3f4a5b6c" },
                { POLICY_ANNOTATION_PREFIX "tenant-id", "72f988bf-86f1-41af-91ab-2d7cd011db47" },
                { POLICY_ANNOTATION_PREFIX "mode", "audit" },
        };
        static const struct kv bad_ann[] = {
                { POLICY_ANNOTATION_PREFIX "identity", "not a label!" },
                { POLICY_ANNOTATION_PREFIX "client-id", "nope" },
        };
        struct ns_info empty = { 0 };
        struct ns_info labelled = { .labels = labels, .n_labels = 3 };
        struct ns_info annotated = { .labels = labels, .n_labels = 3, .annotations = good_ann, .n_annotations = 4 };
        struct ns_info broken = { .annotations = bad_ann, .n_annotations = 2 };
        for (size_t i = 0; i < policy_selector_count(p); i++) {
                check_requirements(p, i);
                size_t n_reqs = 0;
                (void)policy_selector_requirements(p, i, &n_reqs);
                bool none = policy_selector_matches(p, i, &empty), some = policy_selector_matches(p, i, &labelled);
                if (n_reqs == 0 && (!none || !some))
                        fuzz_fail("selector %zu has no requirements yet does not match every namespace", i);
        }

        if (policy_rule_count(p)) {
                const struct rule *first = policy_rule_at(p, 0);
                struct outcome o = resolve(p, first->name, NULL);
                if (o.rule != first || o.unknown)
                        fuzz_fail("%s: not resolved to its entry", first->name);
        }
        bool reads = policy_uses_namespaces(p), named = policy_rule_for(p, "team-zz") != NULL;
        struct outcome o = resolve(p, NULL, NULL);
        if (o.rule || o.unknown != reads)
                fuzz_fail("a namespace without a name: rule %s, unknown %d", o.rule ? o.rule->name : "none", o.unknown);
        o = resolve(p, "team-zz", NULL);
        if (o.rule != policy_rule_for(p, "team-zz") || o.unknown != (reads && !named))
                fuzz_fail("team-zz unreadable: rule %s, unknown %d", o.rule ? o.rule->name : "none", o.unknown);
        if (!reads)
                return;
        want_by_labels(p, "team-zz", &empty, "no labels");
        want_by_labels(p, "team-zz", &labelled, "labels");
        if (!policy_reads_annotations(p) || named) {
                want_by_labels(p, "team-zz", &annotated, "annotations not read");
                want_by_labels(p, "team-zz", &broken, "annotations not read");
                return;
        }
        o = resolve(p, "team-zz", &annotated);
        if (o.source != RULE_ANNOTATIONS && !o.problem)
                fuzz_fail("team-zz: annotations neither made a rule nor said why not");
        o = resolve(p, "team-zz", &broken);
        if (o.source != RULE_NONE || !o.problem)
                fuzz_fail("team-zz: invalid annotations made a rule, or no problem");
}

/* A text that fails fails again, with the same errors. */
static void check_failure(const uint8_t *data, size_t size, int r, const struct buf *errors)
{
        if (r != -EINVAL && r != -ENOMEM)
                fuzz_fail("policy_load returned %d", r);
        if (!errors->data || errors->len == 0)
                fuzz_fail("policy_load failed (%d) without saying why", r);
        if (strlen(errors->data) != errors->len || errors->data[errors->len - 1] != '\n')
                fuzz_fail("the errors are not whole lines: %.300s", errors->data);
        struct buf again;
        struct policy *p = NULL;
        buf_init(&again, 64u * 1024u);
        int r2 = policy_load((const char *)data, size, &p, &again);
        if (r2 != r || p || again.len != errors->len || memcmp(again.data, errors->data, errors->len) != 0)
                fuzz_fail("loaded twice, failed differently: %d, then %d: %.300s", r, r2,
                          again.data ? again.data : "(nothing)");
        buf_free(&again);
}

/* The same text, given a digest, loads into the same rules. */
static void check_reload(const uint8_t *data, size_t size, const struct policy *p)
{
        struct buf errors;
        struct policy *q = NULL;
        buf_init(&errors, 64u * 1024u);
        if (policy_load_sha256((const char *)data, size, DIGEST, &q, &errors) < 0 || !q)
                fuzz_fail("loaded once, not twice: %.300s", errors.data ? errors.data : "");
        buf_free(&errors);
        if (strcmp(policy_sha256(q), DIGEST) != 0)
                fuzz_fail("sha256 \"%s\", not the one given", policy_sha256(q));
        if (policy_rule_count(q) != policy_rule_count(p) || policy_selector_count(q) != policy_selector_count(p) ||
            policy_identity_count(q) != policy_identity_count(p) ||
            policy_grant_label_count(q) != policy_grant_label_count(p) ||
            policy_grantor_count(q) != policy_grantor_count(p) || policy_default_mode(q) != policy_default_mode(p) ||
            policy_unmatched_deny(q) != policy_unmatched_deny(p) || policy_lookup_deny(q) != policy_lookup_deny(p) ||
            policy_reads_annotations(q) != policy_reads_annotations(p) ||
            policy_unlisted_deny(q) != policy_unlisted_deny(p))
                fuzz_fail("loaded twice, two different policies");
        for (size_t i = 0; i < policy_rule_count(p); i++)
                same_rule(policy_rule_at(p, i), policy_rule_at(q, i));
        for (size_t i = 0; i < policy_selector_count(p); i++)
                same_rule(policy_selector_at(p, i), policy_selector_at(q, i));
        policy_free(q);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
        struct buf errors;
        struct policy *p = NULL;
        buf_init(&errors, 64u * 1024u);
        int r = policy_load((const char *)data, size, &p, &errors);
        if (r < 0) {
                if (p)
                        fuzz_fail("a failed load wrote the policy");
                check_failure(data, size, r, &errors);
                buf_free(&errors);
                return 0;
        }
        if (!p)
                fuzz_fail("policy_load succeeded without a policy");
        if (errors.len)
                fuzz_fail("a policy that loads, with errors: %.300s", errors.data);
        buf_free(&errors);

        const char *sha = policy_sha256(p);   /* policy_load() is given no digest */
        if (!sha || *sha)
                fuzz_fail("sha256 \"%s\"", sha ? sha : "(null)");
        if (policy_default_mode(p) >= POLICY_MODE_MAX)
                fuzz_fail("defaults.mode out of range");

        /* check-policy's walk: the rules by name, then the selectors. */
        size_t n_named = policy_rule_count(p), n_sel = policy_selector_count(p);
        if (policy_uses_namespaces(p) != (n_sel > 0 || policy_reads_annotations(p)))
                fuzz_fail("policy_uses_namespaces disagrees with the selectors and annotations");
        for (size_t i = 0; i < n_named + n_sel; i++) {
                bool named = i < n_named;
                const struct rule *rl = named ? policy_rule_at(p, i) : policy_selector_at(p, i - n_named);
                check_rule(rl, named ? "namespaces" : "selectors");
                if (rl->source != (named ? RULE_NAMED : RULE_SELECTOR))
                        fuzz_fail("%s: source %d", rl->name, rl->source);
                if (named) {
                        if (policy_rule_for(p, rl->name) != rl || policy_needs_namespace(p, rl->name))
                                fuzz_fail("%s: not found by name", rl->name);
                        if (i && strcmp(policy_rule_at(p, i - 1)->name, rl->name) >= 0)
                                fuzz_fail("the rules by name are not sorted: %s, %s", policy_rule_at(p, i - 1)->name,
                                          rl->name);
                }
        }
        if (policy_rule_at(p, n_named) || policy_selector_at(p, n_sel))
                fuzz_fail("a rule past the end");
        check_lists(p);
        check_resolution(p);
        check_reload(data, size, p);
        policy_free(p);
        return 0;
}
