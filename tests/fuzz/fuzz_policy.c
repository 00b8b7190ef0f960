/* fuzz_policy: policy_load() on arbitrary bytes: the YAML/JSON reader
 * (doc.c over libyaml: positions, aliases, depth and node bounds) and the
 * policy's checks and compilation.
 *
 * Invariants:
 *   - a failure is -EINVAL or -ENOMEM and explains itself: the errors are
 *     non-empty, NUL-terminated and every line ends with '\n';
 *   - a success gives a policy whose every rule, by name and by selector,
 *     walked as check-policy walks them, holds what README promises and
 *     policy.c checks: the identity is a label value (at most 63 of
 *     A-Z a-z 0-9 - _ ., alphanumeric at both ends) and comes first among
 *     the allowed identities; tenant and client ids are GUIDs; storage
 *     accounts are 3 to 24 lowercase letters and digits; the hadoop
 *     properties are sorted by key and carry tenantId/clientId; there are at
 *     most WH_MAX_RULE_FLAGS JVM flags, each non-empty and without white
 *     space, the hadoop ones exactly -Dspark.hadoop.KEY=VALUE in key order,
 *     and flags_joined is the flags joined by single spaces; JAVA_HOME is an
 *     absolute path; the enums are in range; rules by name are sorted and
 *     found by policy_rule_for(); the sha256 is 64 lowercase hex digits;
 *   - resolving a few namespaces (named, unknown, unreadable, with
 *     annotations that make a rule and ones that do not) neither crashes nor
 *     leaks, and a rule made from annotations holds the same invariants. */
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

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static bool is_alnum(char c)
{
        return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');
}

static bool label_value(const char *s)
{
        size_t n = strlen(s);
        if (n == 0 || n > 63 || !is_alnum(s[0]) || !is_alnum(s[n - 1]))
                return false;
        for (size_t i = 0; i < n; i++)
                if (!is_alnum(s[i]) && s[i] != '-' && s[i] != '_' && s[i] != '.')
                        return false;
        return true;
}

static bool guid(const char *s)
{
        if (strlen(s) != 36)
                return false;
        for (int i = 0; i < 36; i++) {
                bool dash = i == 8 || i == 13 || i == 18 || i == 23;
                char c = s[i];
                if (dash ? c != '-' : !((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F')))
                        return false;
        }
        return true;
}

static bool has_space(const char *s)
{
        return strpbrk(s, " \t\n\r\v\f") != NULL;
}

static void check_rule(const struct rule *r, const char *where)
{
        if (!r || !r->name || !*r->name)
                fuzz_fail("%s: a rule without a name", where);
        bool wi = r->auth == POLICY_AUTH_WORKLOAD_IDENTITY;
        if (r->auth >= POLICY_AUTH_MAX || !policy_auth_name(r->auth))
                fuzz_fail("%s: auth out of range", r->name);
        if ((!wi && !r->identity) || (r->identity && !label_value(r->identity)))
                fuzz_fail("%s: identity \"%s\" is not a label value", r->name, r->identity ? r->identity : "(null)");
        if (wi) {
                /* Workload identity: the federated client and tenant, an
                 * https authority, a lifetime Azure allows, a DNS-name account. */
                if (!r->client_id || !r->tenant_id)
                        fuzz_fail("%s: workload identity without clientId or tenantId", r->name);
                if (!r->authority_host || strncmp(r->authority_host, "https://", 8) != 0 ||
                    has_space(r->authority_host))
                        fuzz_fail("%s: authorityHost \"%s\"", r->name,
                                  r->authority_host ? r->authority_host : "(null)");
                if (r->token_expiration_s < 3600 || r->token_expiration_s > 86400)
                        fuzz_fail("%s: token lifetime %u", r->name, r->token_expiration_s);
                if (r->service_account && (!*r->service_account || strlen(r->service_account) > 253 ||
                                           strspn(r->service_account, "abcdefghijklmnopqrstuvwxyz0123456789-.") !=
                                                   strlen(r->service_account)))
                        fuzz_fail("%s: serviceAccount \"%s\"", r->name, r->service_account);
                for (size_t i = 0; i < r->n_extra_containers; i++)
                        if (!label_value(r->extra_containers[i]))
                                fuzz_fail("%s: extra container \"%s\"", r->name, r->extra_containers[i]);
                if (!strstr(r->flags_joined, "oauth2.token.file"))
                        fuzz_fail("%s: workload identity without the token file among its flags", r->name);
        } else if (r->service_account || r->authority_host || r->n_extra_containers) {
                fuzz_fail("%s: workload identity settings on a pod-identity rule", r->name);
        }
        if (r->mode >= POLICY_MODE_MAX || r->on_conflict >= POLICY_CONFLICT_MAX || r->jvm_env >= POLICY_JVM_ENV_MAX ||
            r->source >= RULE_SOURCE_MAX || r->source == RULE_NONE)
                fuzz_fail("%s: an enum out of range", r->name);
        /* check-policy prints these names */
        if (!policy_mode_name(r->mode) || !policy_conflict_name(r->on_conflict) || !policy_jvm_env_name(r->jvm_env))
                fuzz_fail("%s: an enum without a name", r->name);
        if (r->tenant_id && !guid(r->tenant_id))
                fuzz_fail("%s: tenantId \"%s\" is not a GUID", r->name, r->tenant_id);
        if (r->client_id && !guid(r->client_id))
                fuzz_fail("%s: clientId \"%s\" is not a GUID", r->name, r->client_id);
        if (r->java_home && (r->java_home[0] != '/' || has_space(r->java_home)))
                fuzz_fail("%s: JAVA_HOME \"%s\"", r->name, r->java_home);
        if (r->identity && (r->n_allowed_identities < 1 || strcmp(r->allowed_identities[0], r->identity) != 0))
                fuzz_fail("%s: the identity is not the first allowed identity", r->name);
        if (r->n_allowed_identities > WH_MAX_RULE_LIST_ITEMS + 1)
                fuzz_fail("%s: %zu allowed identities", r->name, r->n_allowed_identities);
        for (size_t i = 0; i < r->n_allowed_identities; i++) {
                if (!label_value(r->allowed_identities[i]))
                        fuzz_fail("%s: allowed identity \"%s\" is not a label value", r->name,
                                  r->allowed_identities[i]);
                for (size_t j = 0; j < i; j++)
                        if (strcmp(r->allowed_identities[i], r->allowed_identities[j]) == 0)
                                fuzz_fail("%s: allowed identity %s twice", r->name, r->allowed_identities[i]);
        }
        if (r->n_storage_accounts > WH_MAX_RULE_LIST_ITEMS)
                fuzz_fail("%s: %zu storage accounts", r->name, r->n_storage_accounts);
        for (size_t i = 0; i < r->n_storage_accounts; i++) {
                const char *a = r->storage_accounts[i];
                size_t n = strlen(a);
                if (n < 3 || n > 24 || strspn(a, "abcdefghijklmnopqrstuvwxyz0123456789") != n)
                        fuzz_fail("%s: storage account \"%s\"", r->name, a);
        }

        bool tenant = false, client = false;
        for (size_t i = 0; i < r->n_hadoop; i++) {
                const struct hadoop_prop *hp = &r->hadoop[i];
                if (!hp->key || !*hp->key || !hp->value || has_space(hp->key) || strchr(hp->key, '='))
                        fuzz_fail("%s: hadoop property %zu \"%s\"", r->name, i, hp->key ? hp->key : "(null)");
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

        if (r->n_flags > WH_MAX_RULE_FLAGS || r->n_flags < r->n_hadoop)
                fuzz_fail("%s: %zu JVM flags for %zu hadoop properties", r->name, r->n_flags, r->n_hadoop);
        size_t n_options = r->n_flags - r->n_hadoop, joined = 0;
        for (size_t i = 0; i < r->n_flags; i++) {
                const char *f = r->flags[i];
                if (!f || f[0] != '-' || has_space(f))
                        fuzz_fail("%s: JVM flag %zu \"%s\"", r->name, i, f ? f : "(null)");
                if (i >= n_options) {
                        const struct hadoop_prop *hp = &r->hadoop[i - n_options];
                        static const char pre[] = "-Dspark.hadoop.";
                        size_t kl = strlen(hp->key);
                        if (strncmp(f, pre, sizeof pre - 1) != 0 || strncmp(f + sizeof pre - 1, hp->key, kl) != 0 ||
                            f[sizeof pre - 1 + kl] != '=' || strcmp(f + sizeof pre + kl, hp->value) != 0)
                                fuzz_fail("%s: JVM flag %zu is \"%.200s\", not -Dspark.hadoop.%.200s=%.200s", r->name,
                                          i, f, hp->key, hp->value);
                }
                if (!r->flags_joined || strncmp(r->flags_joined + joined, f, strlen(f)) != 0)
                        fuzz_fail("%s: flags_joined does not hold flag %zu", r->name, i);
                joined += strlen(f);
                if (i + 1 < r->n_flags) {
                        if (r->flags_joined[joined] != ' ')
                                fuzz_fail("%s: flags_joined is not joined by single spaces", r->name);
                        joined++;
                }
        }
        if (r->flags_joined && r->flags_joined[joined] != '\0')
                fuzz_fail("%s: flags_joined has more than the flags", r->name);
}

static void resolve(const struct policy *p, const char *ns, const struct ns_info *info)
{
        struct pool pool = POOL_INIT;
        struct resolution res;
        memset(&res, 0, sizeof res);
        if (policy_resolve(p, ns, info, &pool, &res) < 0)
                fuzz_fail("policy_resolve(%s) failed", ns);
        if (res.rule) {
                check_rule(res.rule, ns);
                if (res.problem[0])
                        fuzz_fail("%s: a rule and a problem: %s", ns, res.problem);
        }
        const char *who[] = { "sparkaks", "team-a-api", "x-spark", "nobody" };
        for (size_t i = 0; i < sizeof who / sizeof *who; i++) {
                struct policy_claim_verdict v = policy_judge_claim(p, res.rule, who[i]);
                if (policy_rule_grants(res.rule, who[i]) && v.claim != POLICY_CLAIM_ALLOWED)
                        fuzz_fail("%s: identity %s granted by its rule yet not allowed", ns, who[i]);
                if (v.reason != POLICY_CLAIM_GRANTED && v.listed != policy_identity_find(p, who[i]))
                        fuzz_fail("%s: identity %s judged as listed by another entry", ns, who[i]);
        }
        /* Annotations give only delegable identities, never reserved ones. */
        if (res.rule && res.rule->source == RULE_ANNOTATIONS && res.rule->identity) {
                const struct policy_identity *id = policy_identity_find(p, res.rule->identity);
                if (!id || !id->delegable || id->reserved)
                        fuzz_fail("%s: annotations gave %s, which is not delegable", ns, res.rule->identity);
        }
        pool_free(&pool);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
        struct buf errors;
        struct policy *p = NULL;
        buf_init(&errors, 64u * 1024u);
        int r = policy_load((const char *)data, size, &p, &errors);
        if (r < 0) {
                if (r != -EINVAL && r != -ENOMEM)
                        fuzz_fail("policy_load returned %d", r);
                if (p)
                        fuzz_fail("a failed load wrote the policy");
                if (!errors.data || errors.len == 0)
                        fuzz_fail("policy_load failed (%d) without saying why", r);
                if (strlen(errors.data) != errors.len || errors.data[errors.len - 1] != '\n')
                        fuzz_fail("the errors are not whole lines: %.300s", errors.data);
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
        (void)policy_mode_name(policy_default_mode(p));
        (void)policy_unmatched_deny(p);
        (void)policy_lookup_deny(p);
        (void)policy_reads_annotations(p);

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

        /* Namespaces of every kind. */
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
        for (size_t i = 0; i < n_sel; i++) {
                (void)policy_selector_matches(p, i, &empty);
                (void)policy_selector_matches(p, i, &labelled);
        }
        if (n_named)
                resolve(p, policy_rule_at(p, 0)->name, NULL);
        resolve(p, NULL, NULL);
        resolve(p, "team-zz", NULL);
        resolve(p, "team-zz", &empty);
        resolve(p, "team-zz", &labelled);
        resolve(p, "team-zz", &annotated);
        resolve(p, "team-zz", &broken);
        policy_free(p);
        return 0;
}
