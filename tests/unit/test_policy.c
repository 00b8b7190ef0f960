/* Policy loading, merging, compiling and lookups. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include <openssl/evp.h>

#include "buf.h"
#include "policy.h"
#include "policy_file.h"
#include "pool.h"

#define TENANT "72f988bf-86f1-41af-91ab-2d7cd011db47"
#define CLIENT_A "5f4c1b2a-8d3e-4f6a-9b7c-1d2e3f4a5b6c"
#define CLIENT_D "0d7e5c1a-2b3c-4d5e-8f90-a1b2c3d4e5f6"
#define SUB "6513270e-269e-4d37-b2a7-4de452e6b438"
#define RID_PREFIX \
        "/subscriptions/" SUB "/resourceGroups/rg-spark/providers/Microsoft.ManagedIdentity/userAssignedIdentities/"
#define MSI "org.apache.hadoop.fs.azurebfs.oauth2.MsiTokenProvider"

static const char example[] =
        "defaults:\n"
        "  mode: enforce\n"
        "  onConflict: override\n"
        "  java:\n"
        "    home: /opt/java/openjdk\n"
        "    options: [\"-Dio.netty.tryReflectionSetAccessible=true\"]\n"
        "  hadoop:\n"
        "    fs.azure.account.auth.type: OAuth\n"
        "    fs.azure.account.oauth.provider.type: " MSI "\n"
        "  jvmEnv: spark\n"
        "namespaces:\n"
        "  team-a: {identity: sparkaks, tenantId: " TENANT ", clientId: " CLIENT_A
        ", allowedIdentities: [team-a-api]}\n"
        "  team-d: {identity: lake-spark, clientId: " CLIENT_D ", storageAccounts: [lakeprod, lakedev]}\n"
        "  team-c: {identity: c-spark, mode: audit, onConflict: deny}\n"
        "unmatched: allow\n";

/* Loads `text`; on failure the problems are left in *errors for the test. */
static struct policy *load(const char *text, struct buf *errors)
{
        struct policy *p = NULL;
        buf_init(errors, 1 << 20);
        int r = policy_load(text, strlen(text), &p, errors);
        if (r < 0)
                return NULL;
        return p;
}

static struct policy *load_ok(const char *text)
{
        struct buf errors;
        struct policy *p = load(text, &errors);
        if (!p)
                fail_msg("policy did not load:\n%s", errors.data);
        buf_free(&errors);
        return p;
}

/* Loads a policy that must fail; returns the problems (caller frees). */
static char *load_bad(const char *text)
{
        struct buf errors;
        struct policy *p = load(text, &errors);
        assert_null(p);
        assert_non_null(errors.data);
        return buf_steal(&errors);
}

static void assert_flags(const struct rule *r, const char *const *want, size_t n)
{
        assert_int_equal(r->n_flags, n);
        for (size_t i = 0; i < n; i++)
                assert_string_equal(r->flags[i], want[i]);
}

static void test_example_rules(void **state)
{
        struct policy *p = load_ok(example);
        assert_int_equal(policy_rule_count(p), 3);
        assert_false(policy_unmatched_deny(p));
        assert_int_equal(policy_default_mode(p), POLICY_MODE_ENFORCE);

        const struct rule *a = policy_rule_for(p, "team-a");
        assert_non_null(a);
        assert_string_equal(a->name, "team-a");
        assert_int_equal(a->source, RULE_NAMED);
        assert_string_equal(a->identity, "sparkaks");
        assert_string_equal(a->tenant_id, TENANT);
        assert_string_equal(a->client_id, CLIENT_A);
        assert_string_equal(a->java_home, "/opt/java/openjdk");
        assert_int_equal(a->mode, POLICY_MODE_ENFORCE);
        assert_int_equal(a->on_conflict, POLICY_CONFLICT_OVERRIDE);
        assert_int_equal(a->jvm_env, POLICY_JVM_ENV_SPARK);
        /* java.options first, then -Dspark.hadoop.* sorted by key. */
        static const char *const want[] = {
                "-Dio.netty.tryReflectionSetAccessible=true",
                "-Dspark.hadoop.fs.azure.account.auth.type=OAuth",
                "-Dspark.hadoop.fs.azure.account.oauth.provider.type=" MSI,
                "-Dspark.hadoop.fs.azure.account.oauth2.client.id=" CLIENT_A,
                "-Dspark.hadoop.fs.azure.account.oauth2.msi.tenant=" TENANT,
        };
        assert_flags(a, want, 5);
        assert_string_equal(a->flags_joined, "-Dio.netty.tryReflectionSetAccessible=true "
                                             "-Dspark.hadoop.fs.azure.account.auth.type=OAuth "
                                             "-Dspark.hadoop.fs.azure.account.oauth.provider.type=" MSI " "
                                             "-Dspark.hadoop.fs.azure.account.oauth2.client.id=" CLIENT_A " "
                                             "-Dspark.hadoop.fs.azure.account.oauth2.msi.tenant=" TENANT);

        const struct rule *c = policy_rule_for(p, "team-c");
        assert_non_null(c);
        assert_int_equal(c->mode, POLICY_MODE_AUDIT);
        assert_int_equal(c->on_conflict, POLICY_CONFLICT_DENY);
        assert_null(c->tenant_id);
        assert_null(c->client_id);
        assert_int_equal(c->n_flags, 3);

        assert_null(policy_rule_for(p, "team-b"));
        assert_null(policy_rule_for(p, NULL));
        assert_null(policy_rule_for(p, ""));
        policy_free(p);
}

static void test_storage_accounts_per_account_keys(void **state)
{
        struct policy *p = load_ok(example);
        const struct rule *d = policy_rule_for(p, "team-d");
        assert_non_null(d);
        static const char *const want[] = {
                "-Dio.netty.tryReflectionSetAccessible=true",
                "-Dspark.hadoop.fs.azure.account.auth.type.lakedev.dfs.core.windows.net=OAuth",
                "-Dspark.hadoop.fs.azure.account.auth.type.lakeprod.dfs.core.windows.net=OAuth",
                "-Dspark.hadoop.fs.azure.account.oauth.provider.type.lakedev.dfs.core.windows.net=" MSI,
                "-Dspark.hadoop.fs.azure.account.oauth.provider.type.lakeprod.dfs.core.windows.net=" MSI,
                "-Dspark.hadoop.fs.azure.account.oauth2.client.id.lakedev.dfs.core.windows.net=" CLIENT_D,
                "-Dspark.hadoop.fs.azure.account.oauth2.client.id.lakeprod.dfs.core.windows.net=" CLIENT_D,
        };
        assert_flags(d, want, 7);
        assert_int_equal(d->n_storage_accounts, 2);
        assert_string_equal(d->storage_accounts[0], "lakeprod");
        policy_free(p);
}

static void test_non_azure_keys_stay_global(void **state)
{
        struct policy *p = load_ok("namespaces:\n"
                                   "  t:\n"
                                   "    identity: x\n"
                                   "    storageAccounts: [acct1]\n"
                                   "    hadoop:\n"
                                   "      fs.azure.account.auth.type.other.dfs.core.windows.net: OAuth\n"
                                   "      io.file.buffer.size: 65536\n"
                                   "      fs.azure.enable.flush: false\n");
        const struct rule *r = policy_rule_for(p, "t");
        static const char *const want[] = {
                "-Dio.netty.tryReflectionSetAccessible=true",
                "-Dspark.hadoop.fs.azure.account.auth.type.acct1.dfs.core.windows.net=OAuth",
                "-Dspark.hadoop.fs.azure.account.auth.type.other.dfs.core.windows.net=OAuth",
                "-Dspark.hadoop.fs.azure.account.oauth.provider.type.acct1.dfs.core.windows.net=" MSI,
                "-Dspark.hadoop.fs.azure.enable.flush.acct1.dfs.core.windows.net=false",
                "-Dspark.hadoop.io.file.buffer.size=65536",
        };
        assert_flags(r, want, 6);
        policy_free(p);
}

static void test_builtin_defaults(void **state)
{
        /* No defaults at all: OAuth + MsiTokenProvider and the netty flag,
         * enforce, override, spark env, no JAVA_HOME. */
        struct policy *p = load_ok("namespaces:\n  t: {identity: x}\n");
        const struct rule *r = policy_rule_for(p, "t");
        static const char *const want[] = {
                "-Dio.netty.tryReflectionSetAccessible=true",
                "-Dspark.hadoop.fs.azure.account.auth.type=OAuth",
                "-Dspark.hadoop.fs.azure.account.oauth.provider.type=" MSI,
        };
        assert_flags(r, want, 3);
        assert_null(r->java_home);
        assert_int_equal(r->mode, POLICY_MODE_ENFORCE);
        assert_int_equal(r->on_conflict, POLICY_CONFLICT_OVERRIDE);
        assert_int_equal(r->jvm_env, POLICY_JVM_ENV_SPARK);
        assert_false(policy_unmatched_deny(p));
        policy_free(p);
}

static void test_entry_overlays_defaults(void **state)
{
        struct policy *p = load_ok("defaults:\n"
                                   "  mode: audit\n"
                                   "  jvmEnv: JAVA_TOOL_OPTIONS\n"
                                   "  tenantId: " TENANT "\n"
                                   "  java: {home: /opt/java/openjdk, options: [-Da=1, -Db=2]}\n"
                                   "  hadoop: {fs.azure.account.auth.type: OAuth, x.keep: k, x.drop: d}\n"
                                   "namespaces:\n"
                                   "  t:\n"
                                   "    identity: x\n"
                                   "    mode: enforce\n"
                                   "    java: {options: [-Dc=3]}\n"
                                   "    hadoop: {x.keep: K2, x.drop: null, x.new: n}\n"
                                   "  u: {identity: y, java: {home: null}}\n"
                                   "unmatched: deny\n");
        const struct rule *t = policy_rule_for(p, "t");
        assert_int_equal(t->mode, POLICY_MODE_ENFORCE);
        assert_int_equal(t->jvm_env, POLICY_JVM_ENV_JAVA_TOOL_OPTIONS);
        assert_string_equal(t->tenant_id, TENANT);
        /* java maps merge key by key: home from defaults, options replaced. */
        assert_string_equal(t->java_home, "/opt/java/openjdk");
        static const char *const want[] = {
                "-Dc=3",
                "-Dspark.hadoop.fs.azure.account.auth.type=OAuth",
                "-Dspark.hadoop.fs.azure.account.oauth.provider.type=" MSI,
                "-Dspark.hadoop.fs.azure.account.oauth2.msi.tenant=" TENANT,
                "-Dspark.hadoop.x.keep=K2",
                "-Dspark.hadoop.x.new=n",
        };
        assert_flags(t, want, 6);

        const struct rule *u = policy_rule_for(p, "u");
        assert_int_equal(u->mode, POLICY_MODE_AUDIT);
        assert_null(u->java_home);   /* an entry may unset the default */
        assert_string_equal(u->flags[0], "-Da=1");
        assert_string_equal(u->flags[1], "-Db=2");
        assert_true(policy_unmatched_deny(p));
        assert_int_equal(policy_default_mode(p), POLICY_MODE_AUDIT);
        policy_free(p);
}

static void test_identities_allowed(void **state)
{
        struct policy *p = load_ok(example);
        const struct rule *a = policy_rule_for(p, "team-a");
        assert_int_equal(a->n_allowed_identities, 2);
        assert_string_equal(a->allowed_identities[0], "sparkaks");
        assert_string_equal(a->allowed_identities[1], "team-a-api");
        assert_int_equal(policy_judge_claim(p, a, "sparkaks").claim, POLICY_CLAIM_ALLOWED);
        assert_int_equal(policy_judge_claim(p, a, "team-a-api").claim, POLICY_CLAIM_ALLOWED);
        assert_int_equal(policy_judge_claim(p, a, "lake-spark").claim, POLICY_CLAIM_DENIED);
        /* Unlisted: a namespace with a rule may use only what it names. */
        assert_int_equal(policy_judge_claim(p, a, "unknown-identity").claim, POLICY_CLAIM_DENIED);
        assert_int_equal(policy_judge_claim(p, a, "unknown-identity").reason, POLICY_CLAIM_UNLISTED_RULE);
        /* A namespace without a rule: nothing the policy names. */
        assert_int_equal(policy_judge_claim(p, NULL, "sparkaks").claim, POLICY_CLAIM_DENIED);
        assert_int_equal(policy_judge_claim(p, NULL, "team-a-api").claim, POLICY_CLAIM_DENIED);
        /* c-spark's only owner audits: a claim of it is warned about. */
        assert_int_equal(policy_judge_claim(p, NULL, "c-spark").claim, POLICY_CLAIM_WARN);
        assert_int_equal(policy_judge_claim(p, NULL, "someone-elses").claim, POLICY_CLAIM_ALLOWED);
        assert_int_equal(policy_judge_claim(p, NULL, "someone-elses").reason, POLICY_CLAIM_UNLISTED_FREE);
        /* The claimer's mode does not soften a claim of an enforced identity. */
        const struct rule *c = policy_rule_for(p, "team-c");
        assert_int_equal(c->mode, POLICY_MODE_AUDIT);
        assert_int_equal(policy_judge_claim(p, c, "sparkaks").claim, POLICY_CLAIM_DENIED);
        assert_int_equal(policy_judge_claim(p, c, "sparkaks").reason, POLICY_CLAIM_OWNED);
        assert_int_equal(policy_judge_claim(p, c, "nobodys").claim, POLICY_CLAIM_WARN);
        assert_int_equal(policy_identity_count(p), 4);
        assert_string_equal(policy_identity_at(p, 0)->identity, "c-spark");
        assert_true(policy_identity_find(p, "team-a-api")->reserved);
        assert_null(policy_identity_find(p, "nobodys"));
        assert_false(policy_unlisted_deny(p));
        policy_free(p);
}

static void test_json_policy_same_rules(void **state)
{
        static const char json[] =
                "{\"defaults\": {\"mode\": \"enforce\", \"onConflict\": \"override\",\n"
                " \"java\": {\"home\": \"/opt/java/openjdk\", \"options\": "
                "[\"-Dio.netty.tryReflectionSetAccessible=true\"]},\n"
                " \"hadoop\": {\"fs.azure.account.auth.type\": \"OAuth\", \"fs.azure.account.oauth.provider.type\": "
                "\"" MSI "\"},\n"
                " \"jvmEnv\": \"spark\"},\n"
                " \"namespaces\": {\n"
                "  \"team-a\": {\"identity\": \"sparkaks\", \"tenantId\": \"" TENANT "\", \"clientId\": \"" CLIENT_A
                "\", \"allowedIdentities\": [\"team-a-api\"]},\n"
                "  \"team-d\": {\"identity\": \"lake-spark\", \"clientId\": \"" CLIENT_D
                "\", \"storageAccounts\": [\"lakeprod\", \"lakedev\"]},\n"
                "  \"team-c\": {\"identity\": \"c-spark\", \"mode\": \"audit\", \"onConflict\": \"deny\"}},\n"
                " \"unmatched\": \"allow\"}\n";
        struct policy *y = load_ok(example), *j = load_ok(json);
        assert_int_equal(policy_rule_count(y), policy_rule_count(j));
        for (size_t i = 0; i < policy_rule_count(y); i++) {
                const struct rule *a = policy_rule_at(y, i), *b = policy_rule_at(j, i);
                assert_string_equal(a->name, b->name);
                assert_string_equal(a->identity, b->identity);
                assert_int_equal(a->mode, b->mode);
                assert_int_equal(a->on_conflict, b->on_conflict);
                assert_string_equal(a->flags_joined, b->flags_joined);
        }
        assert_null(policy_rule_at(y, policy_rule_count(y)));
        policy_free(y);
        policy_free(j);
}

static void sha256_hex(const char *text, char hex[65])
{
        unsigned char md[32];
        unsigned n = 0;
        assert_true(EVP_Digest(text, strlen(text), md, &n, EVP_sha256(), NULL));
        for (int i = 0; i < 32; i++)
                snprintf(hex + 2 * i, 3, "%02x", md[i]);
}

/* policy_file_load() hashes the bytes it read: two texts of one policy
 * (YAML and JSON) have two digests. */
static void test_sha256_of_text(void **state)
{
        const char *texts[] = { example, "{\"namespaces\": {\"team-a\": {\"identity\": \"sparkaks\"}}}\n" };
        char seen[2][65];
        for (int i = 0; i < 2; i++) {
                char path[] = "/tmp/test_policy_XXXXXX";
                int fd = mkstemp(path);
                assert_true(fd >= 0);
                assert_int_equal(write(fd, texts[i], strlen(texts[i])), (ssize_t)strlen(texts[i]));
                close(fd);
                struct buf errors;
                struct policy *p = NULL;
                buf_init(&errors, 1 << 16);
                int r = policy_file_load(path, &p, &errors);
                unlink(path);
                if (r < 0)
                        fail_msg("policy did not load:\n%s", errors.data);
                buf_free(&errors);
                sha256_hex(texts[i], seen[i]);
                assert_string_equal(policy_sha256(p), seen[i]);
                policy_free(p);
        }
        assert_string_not_equal(seen[0], seen[1]);
}

/* The policy carries the digest its reader gives it, and none without one. */
static void test_sha256_given(void **state)
{
        char hex[65];
        sha256_hex(example, hex);
        struct buf errors;
        struct policy *p = NULL;
        buf_init(&errors, 1 << 16);
        assert_int_equal(policy_load_sha256(example, strlen(example), hex, &p, &errors), 0);
        assert_string_equal(policy_sha256(p), hex);
        policy_free(p);
        p = load_ok(example);
        assert_string_equal(policy_sha256(p), "");
        policy_free(p);
        buf_free(&errors);
}

static void test_empty_namespaces(void **state)
{
        struct policy *p = load_ok("unmatched: deny\n");
        assert_int_equal(policy_rule_count(p), 0);
        assert_true(policy_unmatched_deny(p));
        assert_int_equal(policy_judge_claim(p, NULL, "anything").claim, POLICY_CLAIM_ALLOWED);
        policy_free(p);
        p = load_ok("namespaces: {}\n");
        assert_int_equal(policy_rule_count(p), 0);
        policy_free(p);
}

/* Each bad policy, and a piece of the message that must explain it, with
 * its place. */
static const struct bad_case {
        const char *text;
        const char *want;
} bad_cases[] = {
        { "namespaces:\n  t: {identity: x, java: {options: [\"-Da=1 -Db=2\"]}}\n",
          "2:37: namespaces.t.java.options[0]: must be one word without white space" },
        { "namespaces:\n  t: {identity: x, hadoop: {a.b: \"v w\"}}\n",
          "2:34: namespaces.t.hadoop.a.b: must be one word without white space" },
        { "namespaces:\n  t: {identity: x, hadoop: {\"a b\": v}}\n",
          "namespaces.t.hadoop.a b: a hadoop property name has no white space or '='" },
        { "namespaces:\n  t: {identity: x, hadoop: {a=b: v}}\n", "has no white space or '='" },
        { "namespaces:\n  t: {identity: x, hadoop: {fs.azure.account.oauth2.client.id: v}}\n",
          "set this through clientId, not under hadoop" },
        { "namespaces:\n  t: {identity: x, hadoop: {fs.azure.account.oauth2.msi.tenant: v}}\n",
          "set this through tenantId" },
        { "namespaces:\n  t: {identity: x, mode: of}\n",
          "2:26: namespaces.t.mode: must be one of enforce | audit | off" },
        { "namespaces:\n  t: {identity: x, onConflict: replace}\n", "must be one of override | deny" },
        { "namespaces:\n  t: {identity: x, jvmEnv: JAVA_OPTS}\n", "must be one of spark | JAVA_TOOL_OPTIONS" },
        { "unmatched: maybe\n", "1:12: unmatched: must be one of allow | deny" },
        { "namespaces:\n  t: {identity: x, clientId: not-a-guid}\n",
          "namespaces.t.clientId: \"not-a-guid\" is not a GUID" },
        { "namespaces:\n  t: {identity: x, tenantId: 12}\n", "namespaces.t.tenantId: must be a string" },
        { "namespaces:\n  Team_A: {identity: x}\n", "2:3: namespaces.Team_A: \"Team_A\" is not a namespace name" },
        { "namespaces:\n  t: {clientId: " CLIENT_A "}\n", "2:3: namespaces.t: identity is required" },
        { "namespaces:\n  t: {identity: \"bad identity\"}\n", "namespaces.t.identity" },
        { "namespaces:\n  t: {identity: -x-}\n", "is not a valid label value" },
        { "namespaces:\n  t: {identity: x, allowedIdentities: [ok, \"no/slash\"]}\n",
          "namespaces.t.allowedIdentities[1]: \"no/slash\" is not a valid label value" },
        { "namespaces:\n  t: {identity: x, storageAccounts: [Lake_Prod]}\n",
          "namespaces.t.storageAccounts[0]: \"Lake_Prod\" is not a storage account name" },
        { "namespaces:\n  t: {identity: x, storageAccounts: lakeprod}\n",
          "namespaces.t.storageAccounts: must be a list" },
        { "namespaces:\n  t: {identity: x, java: {options: [Xmx4g]}}\n", "a JVM option starts with '-'" },
        { "namespaces:\n  t: {identity: x, java: {home: opt/java}}\n",
          "namespaces.t.java.home: must be an absolute path" },
        { "namespaces:\n  t: {identity: x, java: {path: /x}}\n", "unknown key (java has home and options)" },
        { "namespaces:\n  t: {identity: x, clientID: " CLIENT_A "}\n", "2:20: namespaces.t.clientID: unknown key" },
        { "defaults:\n  identity: x\n",
          "2:3: defaults.identity: an identity belongs to a namespace or selector entry" },
        { "namespace:\n  t: {identity: x}\n", "1:1: namespace: unknown key" },
        { "namespaces: [t]\n", "namespaces: must be a map of namespace name to its rule" },
        { "namespaces:\n  t: x\n", "namespaces.t: must be a map with at least identity" },
        { "- a\n- b\n", "a policy is a map with defaults, namespaces, selectors" },
        { "namespaces:\n  t: {identity: x\n", "3:1:" },
        { "namespaces:\n  t: {identity: x}\n  t: {identity: y}\n", "3:3:" },
        { "namespaces:\n  t: {identity: x, resourceId: /subscriptions/" SUB "/resourceGroups/rg/providers/"
          "Microsoft.Compute/userAssignedIdentities/id-x}\n",
          "2:32: namespaces.t.resourceId: \"/subscriptions/" SUB
          "/resourceGroups/rg/providers/Microsoft.Compute/userAssignedIdentities/id-x\" is not a user-assigned "
          "managed identity's resource id (/subscriptions/GUID/resourceGroups/RG/providers/"
          "Microsoft.ManagedIdentity/userAssignedIdentities/NAME): segment 6 is \"Microsoft.Compute\", not "
          "Microsoft.ManagedIdentity" },
        { "defaults:\n  resourceId: 12\n", "2:15: defaults.resourceId: must be a string" },
        { "namespaces:\n  t: {identity: x, resourceID: " RID_PREFIX "x1}\n",
          "2:20: namespaces.t.resourceID: unknown key, did you mean resourceId? (a namespace entry has identity, "
          "tenantId, clientId, "
          "resourceId," },
        { "", "empty" },
};

static void test_bad_policies_explained(void **state)
{
        int misses = 0;
        for (size_t i = 0; i < sizeof bad_cases / sizeof *bad_cases; i++) {
                char *errors = load_bad(bad_cases[i].text);
                if (!strstr(errors, bad_cases[i].want)) {
                        print_error("case %zu: want \"%s\" in:\n%s", i, bad_cases[i].want, errors);
                        misses++;
                }
                free(errors);
        }
        assert_int_equal(misses, 0);
}

static void test_every_problem_reported(void **state)
{
        char *errors = load_bad("defaults:\n"
                                "  mode: of\n"
                                "namespaces:\n"
                                "  a: {identity: x, clientId: nope}\n"
                                "  b: {}\n"
                                "unmatched: sometimes\n");
        assert_non_null(strstr(errors, "2:9: defaults.mode"));
        assert_non_null(strstr(errors, "4:30: namespaces.a.clientId"));
        assert_non_null(strstr(errors, "namespaces.b: identity is required"));
        assert_non_null(strstr(errors, "6:12: unmatched"));
        size_t lines = 0;
        for (const char *s = errors; *s; s++)
                lines += *s == '\n';
        assert_int_equal(lines, 4);
        free(errors);
}

/* Problems come in the order of the file, whatever order they were found in
 * (the rules after the top-level keys, a missing identity at its entry). */
static void test_problems_in_line_order(void **state)
{
        char *errors = load_bad("namespaces:\n"
                                "  b: {clientId: nope}\n"
                                "  a: {identity: x, mode: sometimes}\n"
                                "defaults:\n"
                                "  mode: of\n"
                                "unmatched: sometimes\n"
                                "bogus: 1\n");
        const char *want[] = { "2:3: namespaces.b: identity is required",
                               "2:17: namespaces.b.clientId",
                               "3:26: namespaces.a.mode",
                               "5:9: defaults.mode",
                               "6:12: unmatched",
                               "7:1: bogus: unknown key" };
        const char *at = errors;
        for (size_t i = 0; i < sizeof want / sizeof *want; i++) {
                const char *found = strstr(at, want[i]);
                if (!found)
                        fail_msg("want \"%s\" after the line before it in:\n%s", want[i], errors);
                at = strchr(found, '\n');
                assert_non_null(at);
        }
        free(errors);
}

/* A misspelt key names the key meant, among those valid where it stands. */
static void test_misspelt_keys_name_the_key_meant(void **state)
{
        static const struct {
                const char *text, *want;
        } cases[] = {
                { "namespaces:\n  t: {identity: x, clientID: " CLIENT_A "}\n",
                  "2:20: namespaces.t.clientID: unknown key, did you mean clientId? (a namespace entry has identity," },
                { "namespaces:\n  t: {identity: x, tennantId: " CLIENT_A "}\n", "did you mean tenantId?" },
                { "namespaces:\n  t: {identity: x, onconflict: deny}\n", "did you mean onConflict?" },
                { "namespaces:\n  t: {identity: x, storageAcounts: [a]}\n", "did you mean storageAccounts?" },
                { "namespaces:\n  t: {identity: x, java: {hoem: /x}}\n",
                  "unknown key, did you mean home? (java has home and options)" },
                { "namespace:\n  t: {identity: x}\n", "1:1: namespace: unknown key, did you mean namespaces?" },
                { "unmatch: deny\n", "did you mean unmatched?" },
                { "defaults: {mode: audit, mdoe: off}\n", "defaults.mdoe: unknown key, did you mean mode?" },
                { "selectors:\n  - {namespaceSelector: {}, identity: x, nmae: y}\n", "did you mean name?" },
                { "selectors:\n  - {namespaceSelector: {matchLabel: {a: b}}, identity: x}\n",
                  "matchLabel: unknown key, did you mean matchLabels?" },
                { "selectors:\n  - {namespaceSelector: {matchExpressions: [{key: a, operater: Exists}]}, identity: "
                  "x}\n",
                  "unknown key \"operater\", did you mean operator? (a requirement has key, operator and values)" },
        };
        static const char *const far[] = {
                "namespaces:\n  t: {identity: x, java: {path: /x}}\n",      /* nothing close */
                "namespaces:\n  t: {identity: x, name: y}\n",               /* a selector's key, not an entry's */
                "namespaces:\n  t: {identity: x, "
                "zzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzz: 1}\n",
        };
        int misses = 0;
        for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
                char *errors = load_bad(cases[i].text);
                if (!strstr(errors, cases[i].want)) {
                        print_error("case %zu: want \"%s\" in:\n%s", i, cases[i].want, errors);
                        misses++;
                }
                free(errors);
        }
        for (size_t i = 0; i < sizeof far / sizeof *far; i++) {
                char *errors = load_bad(far[i]);
                if (strstr(errors, "did you mean") || !strstr(errors, "unknown key")) {
                        print_error("far %zu: want an unknown key and no guess in:\n%s", i, errors);
                        misses++;
                }
                free(errors);
        }
        assert_int_equal(misses, 0);
}

static void test_too_many_flags(void **state)
{
        struct buf text;
        buf_init(&text, 1 << 20);
        buf_puts(&text, "namespaces:\n  t:\n    identity: x\n    storageAccounts: [");
        for (int i = 0; i < 40; i++)
                buf_printf(&text, "%sacct%03d", i ? ", " : "", i);
        buf_puts(&text, "]\n    hadoop: {fs.azure.a: 1, fs.azure.b: 2, fs.azure.c: 3, fs.azure.d: 4}\n");
        char *errors = load_bad(text.data);
        assert_non_null(strstr(errors, "namespaces.t: this rule makes"));
        assert_non_null(strstr(errors, "at most 128"));
        free(errors);
        buf_free(&text);
}

static void test_scalars_as_hadoop_values(void **state)
{
        struct policy *p = load_ok("namespaces:\n  t:\n    identity: x\n    hadoop: {a.int: 42, a.bool: true, a.float: "
                                   "0.5, a.str: \"007\"}\n");
        const struct rule *r = policy_rule_for(p, "t");
        assert_string_equal(r->hadoop[0].key, "a.bool");
        assert_string_equal(r->hadoop[0].value, "true");
        assert_string_equal(r->hadoop[1].value, "0.5");
        assert_string_equal(r->hadoop[2].value, "42");
        assert_string_equal(r->hadoop[3].value, "007");
        policy_free(p);
}

/* ---- namespaces chosen by labels and annotations ---- */

static const char selector_policy[] = "defaults:\n"
                                      "  java: {home: /opt/java/openjdk}\n"
                                      "namespaces:\n"
                                      "  team-a: {identity: sparkaks}\n"
                                      "selectors:\n"
                                      "  - name: data-prod\n"
                                      "    namespaceSelector:\n"
                                      "      matchLabels: {spark-identity.io/team: data}\n"
                                      "      matchExpressions:\n"
                                      "        - {key: env, operator: In, values: [prod, production]}\n"
                                      "    identity: data-prod-spark\n"
                                      "    clientId: " CLIENT_A "\n"
                                      "  - namespaceSelector:\n"
                                      "      matchLabels: {spark-identity.io/team: data}\n"
                                      "    identity: data-spark\n"
                                      "    mode: audit\n"
                                      "  - namespaceSelector:\n"
                                      "      matchExpressions:\n"
                                      "        - {key: legacy, operator: Exists}\n"
                                      "        - {key: env, operator: NotIn, values: [prod]}\n"
                                      "        - {key: frozen, operator: DoesNotExist}\n"
                                      "    identity: legacy-spark\n"
                                      "namespaceAnnotations: true\n"
                                      "delegableIdentities: [ann-spark, ok-spark]\n"
                                      "onLookupFailure: allow\n";

#define NS(l, n) (&(struct ns_info){ .labels = (l), .n_labels = (n) })

static const char *resolved(const struct policy *p, const char *ns, const struct ns_info *info)
{
        static char name[128];
        struct pool pool = POOL_INIT;
        struct resolution res;
        assert_int_equal(policy_resolve(p, ns, info, &pool, &res), 0);
        snprintf(name, sizeof name, "%s", res.unknown ? "?" : res.rule ? res.rule->identity : "-");
        pool_free(&pool);
        return name;
}

static void test_selectors_kubernetes_semantics(void **state)
{
        struct policy *p = load_ok(selector_policy);
        assert_int_equal(policy_selector_count(p), 3);
        assert_true(policy_uses_namespaces(p));
        assert_true(policy_reads_annotations(p));
        assert_false(policy_lookup_deny(p));
        assert_string_equal(policy_selector_at(p, 0)->name, "selector data-prod");
        assert_string_equal(policy_selector_at(p, 1)->name, "selector selectors[1]");
        assert_int_equal(policy_selector_at(p, 0)->source, RULE_SELECTOR);
        /* Selector rules are merged with defaults like named ones. */
        assert_string_equal(policy_selector_at(p, 0)->java_home, "/opt/java/openjdk");
        assert_int_equal(policy_selector_at(p, 1)->mode, POLICY_MODE_AUDIT);

        struct kv data_prod[] = { { "spark-identity.io/team", "data" }, { "env", "production" } };
        struct kv data_dev[] = { { "spark-identity.io/team", "data" }, { "env", "dev" } };
        struct kv legacy[] = { { "legacy", "" } };
        struct kv legacy_prod[] = { { "legacy", "yes" }, { "env", "prod" } };
        struct kv legacy_frozen[] = { { "legacy", "yes" }, { "frozen", "true" } };
        struct kv other[] = { { "spark-identity.io/team", "web" } };

        /* First match in file order; every requirement must hold. */
        assert_string_equal(resolved(p, "x", NS(data_prod, 2)), "data-prod-spark");
        assert_string_equal(resolved(p, "x", NS(data_dev, 2)), "data-spark");
        assert_string_equal(resolved(p, "x", NS(data_dev, 1)), "data-spark");
        /* Exists with an empty value; NotIn holds for a missing label. */
        assert_string_equal(resolved(p, "x", NS(legacy, 1)), "legacy-spark");
        assert_string_equal(resolved(p, "x", NS(legacy_prod, 2)), "-");
        assert_string_equal(resolved(p, "x", NS(legacy_frozen, 2)), "-");
        assert_string_equal(resolved(p, "x", NS(other, 1)), "-");
        assert_string_equal(resolved(p, "x", NS(NULL, 0)), "-");
        /* A named entry wins over any selector; an unknown namespace is unknown. */
        assert_string_equal(resolved(p, "team-a", NS(data_prod, 2)), "sparkaks");
        assert_string_equal(resolved(p, "team-a", NULL), "sparkaks");
        assert_string_equal(resolved(p, "x", NULL), "?");
        assert_false(policy_needs_namespace(p, "team-a"));
        assert_true(policy_needs_namespace(p, "x"));

        assert_true(policy_selector_matches(p, 2, NS(legacy, 1)));
        assert_false(policy_selector_matches(p, 2, NS(legacy_prod, 2)));
        assert_false(policy_selector_matches(p, 9, NS(legacy, 1)));
        /* Identities granted by selectors are not free for the others. */
        assert_int_equal(policy_judge_claim(p, NULL, "data-spark").claim, POLICY_CLAIM_WARN);   /* its owner audits */
        assert_int_equal(policy_judge_claim(p, NULL, "legacy-spark").claim, POLICY_CLAIM_DENIED);
        policy_free(p);
}

static void test_empty_selector_matches_all(void **state)
{
        struct policy *p = load_ok("selectors:\n  - {namespaceSelector: {}, identity: everyone}\n");
        assert_string_equal(resolved(p, "any", NS(NULL, 0)), "everyone");
        assert_true(policy_lookup_deny(p));   /* the default */
        assert_false(policy_reads_annotations(p));
        policy_free(p);
}

static void test_annotations_make_a_rule(void **state)
{
        struct policy *p = load_ok(selector_policy);
        struct kv ann[] = { { "spark-identity.io/identity", "ann-spark" },
                            { "spark-identity.io/client-id", CLIENT_A },
                            { "spark-identity.io/tenant-id", TENANT },
                            { "spark-identity.io/mode", "audit" } };
        struct kv data[] = { { "spark-identity.io/team", "data" } };
        struct ns_info info = { .labels = data, .n_labels = 1, .annotations = ann, .n_annotations = 4 };
        struct pool pool = POOL_INIT;
        struct resolution res;
        assert_int_equal(policy_resolve(p, "team-x", &info, &pool, &res), 0);
        const struct rule *r = res.rule;
        assert_non_null(r);
        /* Annotations win over a matching selector. */
        assert_int_equal(r->source, RULE_ANNOTATIONS);
        assert_string_equal(r->name, "annotations of team-x");
        assert_string_equal(r->identity, "ann-spark");
        assert_int_equal(r->mode, POLICY_MODE_AUDIT);
        assert_string_equal(r->java_home, "/opt/java/openjdk");
        assert_string_equal(r->flags[r->n_flags - 2], "-Dspark.hadoop.fs.azure.account.oauth2.client.id=" CLIENT_A);
        assert_string_equal(r->flags[r->n_flags - 1], "-Dspark.hadoop.fs.azure.account.oauth2.msi.tenant=" TENANT);
        pool_free(&pool);

        /* A named entry wins over annotations. */
        assert_string_equal(resolved(p, "team-a", &info), "sparkaks");

        /* Annotations that do not make a rule say why. */
        static const struct {
                const char *key, *value, *why;
        } bad[] = {
                { "spark-identity.io/identity", "not valid!", "is not a valid label value" },
                { "spark-identity.io/client-id", "nope", "spark-identity.io/client-id \"nope\" is not a GUID" },
                { "spark-identity.io/mode", "loud", "is not enforce, audit or off" },
        };
        for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
                struct kv kv[] = { { bad[i].key, bad[i].value }, { "spark-identity.io/identity", "ok-spark" } };
                struct ns_info bi = { .annotations = kv, .n_annotations = 2 };   /* the first one counts */
                assert_int_equal(policy_resolve(p, "team-x", &bi, &pool, &res), 0);
                assert_null(res.rule);
                if (!strstr(res.problem, bad[i].why))
                        fail_msg("%zu: %s", i, res.problem);
                pool_free(&pool);
        }

        /* A delegable identity is not free for the others: defaults.mode protects it. */
        assert_int_equal(policy_judge_claim(p, NULL, "ann-spark").claim, POLICY_CLAIM_DENIED);
        assert_true(policy_identity_find(p, "ann-spark")->delegable);
        assert_false(policy_identity_find(p, "ann-spark")->reserved);

        /* Annotations give only delegable identities, never reserved ones. */
        static const struct {
                const char *identity, *why;
        } denied[] = {
                { "sparkaks", "spark-identity.io/identity \"sparkaks\" is reserved by the policy" },
                { "data-spark", "spark-identity.io/identity \"data-spark\" is reserved by the policy" },
                { "free-spark",
                  "spark-identity.io/identity \"free-spark\" is not in the policy's delegableIdentities" },
        };
        for (size_t i = 0; i < sizeof denied / sizeof *denied; i++) {
                struct kv kv[] = { { "spark-identity.io/identity", denied[i].identity } };
                struct ns_info di = { .annotations = kv, .n_annotations = 1 };
                assert_int_equal(policy_resolve(p, "team-x", &di, &pool, &res), 0);
                assert_null(res.rule);
                if (!strstr(res.problem, denied[i].why))
                        fail_msg("%zu: %s", i, res.problem);
                pool_free(&pool);
        }
        policy_free(p);

        /* Without namespaceAnnotations: true, annotations are ignored. */
        p = load_ok("namespaces:\n  t: {identity: x}\n");
        assert_false(policy_uses_namespaces(p));
        assert_string_equal(resolved(p, "team-x", &info), "-");
        assert_int_equal(policy_judge_claim(p, NULL, "ann-spark").claim, POLICY_CLAIM_ALLOWED);
        policy_free(p);
}

/* The claim rule: the owner's mode protects the identity, the strongest
 * owner wins, unlisted identities follow unlistedIdentities. */
static void test_claim_rule(void **state)
{
        struct policy *p = load_ok("defaults: {mode: audit}\n"
                                   "namespaces:\n"
                                   "  a: {identity: shared, mode: off}\n"
                                   "  b: {identity: shared, mode: audit}\n"
                                   "  c: {identity: c-id, mode: off, allowedIdentities: [shared]}\n"
                                   "  d: {identity: d-id, mode: enforce}\n"
                                   "  e: {identity: e-id, mode: off}\n"
                                   "selectors:\n"
                                   "  - {namespaceSelector: {matchLabels: {team: s}}, identity: d-id, mode: off}\n"
                                   "namespaceAnnotations: true\n"
                                   "delegableIdentities: [deleg]\n"
                                   "unlistedIdentities: deny\n");
        const struct rule *a = policy_rule_for(p, "a"), *e = policy_rule_for(p, "e");
        /* shared: owners off, audit, off: the strongest is audit. */
        assert_int_equal(policy_identity_find(p, "shared")->protection, POLICY_MODE_AUDIT);
        assert_int_equal(policy_judge_claim(p, e, "shared").claim, POLICY_CLAIM_WARN);
        assert_int_equal(policy_judge_claim(p, a, "shared").claim, POLICY_CLAIM_ALLOWED);
        /* d-id: enforce by d beats off by the selector. */
        assert_int_equal(policy_identity_find(p, "d-id")->protection, POLICY_MODE_ENFORCE);
        assert_int_equal(policy_judge_claim(p, e, "d-id").claim, POLICY_CLAIM_DENIED);
        /* e-id: its only owner is off: claims are ignored. */
        assert_int_equal(policy_judge_claim(p, a, "e-id").claim, POLICY_CLAIM_ALLOWED);
        assert_int_equal(policy_judge_claim(p, NULL, "e-id").claim, POLICY_CLAIM_ALLOWED);
        /* deleg: protected by defaults.mode (audit here). */
        assert_int_equal(policy_judge_claim(p, NULL, "deleg").claim, POLICY_CLAIM_WARN);
        /* Unlisted, with unlistedIdentities: deny: refused everywhere. */
        struct policy_claim_verdict v = policy_judge_claim(p, NULL, "nobodys");
        assert_int_equal(v.claim, POLICY_CLAIM_DENIED);
        assert_int_equal(v.reason, POLICY_CLAIM_UNLISTED_DENY);
        assert_null(v.listed);
        assert_int_equal(policy_judge_claim(p, e, "nobodys").claim, POLICY_CLAIM_DENIED);
        assert_true(policy_unlisted_deny(p));
        assert_int_equal(policy_identity_count(p), 5);
        policy_free(p);
}

static void test_grantors_and_grant_labels(void **state)
{
        struct policy *p = load_ok(selector_policy);
        const char *masters[] = { "system:authenticated", "system:masters" };
        const char *tenants[] = { "system:authenticated", "tenants" };
        /* Default: group:system:masters. */
        assert_int_equal(policy_grantor_count(p), 1);
        assert_string_equal(policy_grantor_at(p, 0), "group:system:masters");
        assert_true(policy_is_grantor(p, "admin", masters, 2));
        assert_false(policy_is_grantor(p, "alice", tenants, 2));
        assert_false(policy_is_grantor(p, "system:masters", NULL, 0));   /* a user is not a group */
        /* The label keys the selectors read, sorted, once each. */
        assert_int_equal(policy_grant_label_count(p), 4);
        assert_string_equal(policy_grant_label_at(p, 0), "env");
        assert_string_equal(policy_grant_label_at(p, 1), "frozen");
        assert_string_equal(policy_grant_label_at(p, 2), "legacy");
        assert_string_equal(policy_grant_label_at(p, 3), "spark-identity.io/team");
        assert_null(policy_grant_label_at(p, 4));
        assert_true(policy_grant_label(p, "legacy"));
        assert_false(policy_grant_label(p, "team"));
        size_t n;
        const struct policy_label_req *reqs = policy_selector_requirements(p, 2, &n);
        assert_int_equal(n, 3);
        assert_string_equal(reqs[1].key, "env");
        assert_int_equal(reqs[1].op, POLICY_LABEL_NOT_IN);
        assert_null(policy_selector_requirements(p, 3, &n));
        assert_int_equal(n, 0);
        policy_free(p);

        p = load_ok("grantors: [alice, \"group:platform admins\"]\n");
        assert_true(policy_is_grantor(p, "alice", NULL, 0));
        assert_false(policy_is_grantor(p, "bob", masters, 2));
        const char *platform[] = { "platform admins" };
        assert_true(policy_is_grantor(p, "bob", platform, 1));
        assert_int_equal(policy_grant_label_count(p), 0);
        policy_free(p);

        p = load_ok("grantors: []\n");   /* nobody: grant keys are frozen */
        assert_false(policy_is_grantor(p, "admin", masters, 2));
        policy_free(p);
}

static const struct bad_case bad_selectors[] = {
        { "selectors:\n  - {identity: x}\n", "2:5: selectors[0]: namespaceSelector is required" },
        { "selectors:\n  - {identity: x, namespaceSelector: {matchLabels: {a: b}, matchFields: {}}}\n",
          "selectors[0].namespaceSelector.matchFields: unknown key" },
        { "selectors:\n  - namespaceSelector: {matchExpressions: [{key: a, operator: Has}]}\n    identity: x\n",
          "operator must be one of In | NotIn | Exists | DoesNotExist" },
        { "selectors:\n  - namespaceSelector: {matchExpressions: [{key: a, operator: In}]}\n    identity: x\n",
          "In needs at least one value" },
        { "selectors:\n  - namespaceSelector: {matchExpressions: [{key: a, operator: Exists, values: [b]}]}\n    "
          "identity: x\n",
          "Exists takes no values" },
        { "selectors:\n  - namespaceSelector: {matchLabels: {\"bad key!\": b}}\n    identity: x\n",
          "\"bad key!\" is not a label key" },
        { "selectors:\n  - namespaceSelector: {matchLabels: {a: [b]}}\n    identity: x\n", "must be a label value" },
        { "selectors: {a: b}\n", "selectors: must be a list of rules" },
        { "selectors:\n  - {namespaceSelector: {}, identity: x, namespace: y}\n",
          "selectors[0].namespace: unknown key (a selector entry has name, namespaceSelector" },
        { "namespaceAnnotations: yes\n", "namespaceAnnotations: must be true or false" },
        { "unlistedIdentities: refuse\n", "1:21: unlistedIdentities: must be one of allow | deny" },
        { "delegableIdentities: x\n", "1:22: delegableIdentities: must be a list" },
        { "delegableIdentities: [ok, \"not ok\"]\n", "delegableIdentities[1]: \"not ok\" is not a valid label value" },
        { "namespaces: {a: {identity: x}}\ndelegableIdentities: [y, x]\n",
          "2:26: delegableIdentities[1]: \"x\" is named by a namespaces or selectors entry, so it is reserved" },
        { "selectors: [{namespaceSelector: {}, identity: x}]\ndelegableIdentities: [x]\n",
          "delegableIdentities[0]: \"x\" is named by a namespaces or selectors entry" },
        { "grantors: [\"group:\"]\n", "grantors[0]: a grantor is a user name or group:NAME" },
        { "grantors: [\"\"]\n", "grantors[0]: a grantor is a user name or group:NAME" },
        { "grantors: [1]\n", "grantors[0]: must be a string" },
        { "onLookupFailure: retry\n", "onLookupFailure: must be one of allow | deny" },
        { "namespaces:\n  t: {identity: x, namespaceSelector: {}}\n", "namespaces.t.namespaceSelector: unknown key" },
};

static void test_bad_selectors_explained(void **state)
{
        int misses = 0;
        for (size_t i = 0; i < sizeof bad_selectors / sizeof *bad_selectors; i++) {
                char *errors = load_bad(bad_selectors[i].text);
                if (!strstr(errors, bad_selectors[i].want)) {
                        print_error("case %zu: want \"%s\" in:\n%s", i, bad_selectors[i].want, errors);
                        misses++;
                }
                free(errors);
        }
        assert_int_equal(misses, 0);
}

/* Found by fuzz_policy: names were unbounded and flags were cut silently;
 * a huge number was cast to long long before its range was checked. */
static void test_long_hadoop_names_and_huge_numbers(void **state)
{
        struct buf text;
        buf_init(&text, 1 << 20);
        /* An explicit key (?): YAML's implicit keys stop at 1024 characters. */
        buf_puts(&text, "namespaces:\n  t:\n    identity: x\n    hadoop:\n      ? fs.x.");
        for (int i = 0; i < 1100; i++)
                buf_putc(&text, 'a');
        buf_puts(&text, "\n      : v\n");
        char *errors = load_bad(text.data);
        assert_non_null(strstr(errors, "a hadoop property name is at most 1024 characters"));
        free(errors);
        buf_free(&text);

        struct policy *p = load_ok("namespaces:\n  t: {identity: x, hadoop: {a.big: 1e300, a.small: -1e300}}\n");
        const struct rule *r = policy_rule_for(p, "t");
        assert_string_equal(r->hadoop[0].key, "a.big");
        assert_non_null(strstr(r->hadoop[0].value, "e+300"));
        for (size_t i = 0; i < r->n_flags; i++)
                assert_non_null(strchr(r->flags[i], '=') ? r->flags[i] : NULL);
        policy_free(p);
}

static void test_names(void **state)
{
        assert_string_equal(policy_mode_name(POLICY_MODE_OFF), "off");
        assert_string_equal(policy_conflict_name(POLICY_CONFLICT_DENY), "deny");
        assert_string_equal(policy_jvm_env_name(POLICY_JVM_ENV_JAVA_TOOL_OPTIONS), "JAVA_TOOL_OPTIONS");
        assert_string_equal(policy_mode_name(POLICY_MODE_MAX), "?");
        policy_free(NULL);
}

/* The value checks say what the loader accepts: each kind's valid and
 * invalid examples, and a value the loader refuses is refused by its check. */
static void test_value_checks(void **state)
{
        static const struct {
                enum policy_value kind;
                const char *good, *bad;
        } cases[] = {
                { POLICY_VALUE_WORD, "x=1", "two words" },
                { POLICY_VALUE_JVM_OPTION, "-Xmx1g", "Xmx1g" },
                { POLICY_VALUE_JAVA_HOME, "/opt/java", "opt/java" },
                { POLICY_VALUE_LABEL_VALUE, "team-a_1.x", "-team" },
                { POLICY_VALUE_LABEL_KEY, "spark-identity.io/team", "/team" },
                { POLICY_VALUE_DNS_LABEL, "team-a", "Team" },
                { POLICY_VALUE_GUID, TENANT, "72f988bf-86f1-41af-91ab-2d7cd011db4" },
                { POLICY_VALUE_STORAGE_ACCOUNT, "data01", "da" },
                { POLICY_VALUE_SERVICE_ACCOUNT, "spark.driver", "spark..driver" },
                { POLICY_VALUE_HTTPS_URL, "https://login.example/", "https:///x" },
                { POLICY_VALUE_HADOOP_KEY, "fs.azure.x", "fs.azure.x=1" },
        };
        for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
                assert_true(policy_value_valid(cases[i].kind, cases[i].good));
                assert_false(policy_value_valid(cases[i].kind, cases[i].bad));
                assert_false(policy_value_valid(cases[i].kind, ""));
                assert_false(policy_value_valid(cases[i].kind, NULL));
        }
        assert_false(policy_value_valid(POLICY_VALUE_MAX, "x"));

        struct buf errors;
        assert_null(load("namespaces:\n  t: {identity: \"-team\"}\n", &errors));
        assert_non_null(strstr(errors.data, "is not a valid label value"));
        buf_free(&errors);
        struct policy *p = load_ok("namespaces:\n  t: {identity: team-a_1.x, storageAccounts: [data01]}\n");
        const struct rule *r = policy_rule_for(p, "t");
        assert_true(policy_value_valid(POLICY_VALUE_LABEL_VALUE, r->identity));
        assert_true(policy_value_valid(POLICY_VALUE_STORAGE_ACCOUNT, r->storage_accounts[0]));
        policy_free(p);
}

/* resourceId: the segments' names in any case, each part checked, merged
 * like clientId (defaults < entry), and no effect on what pods get. */
static void test_resource_id(void **state)
{
        static const struct {
                const char *id, *why;
        } cases[] = {
                { RID_PREFIX "spark-aks", NULL },
                { "/SUBSCRIPTIONS/" SUB "/resourcegroups/RG_(x).1/PROVIDERS/microsoft.managedidentity/"
                  "USERASSIGNEDIDENTITIES/Id_1",
                  NULL },
                { "/subscriptions/" SUB "/resourceGroups/caf\xc3\xa9/providers/Microsoft.ManagedIdentity/"
                  "userAssignedIdentities/abc",
                  NULL },
                { "subscriptions/" SUB, "fewer than 8 segments" },
                { RID_PREFIX, "the identity's name is not 3 to 128" },
                { RID_PREFIX "ab", "the identity's name is not 3 to 128" },
                { RID_PREFIX "-abc", "the identity's name" },
                { RID_PREFIX "a.bc", "the identity's name" },
                { RID_PREFIX "abc/", "more than 8 segments" },
                { RID_PREFIX "abc/federatedIdentityCredentials/x", "more than 8 segments" },
                { "/subscriptions/not-a-guid/resourceGroups/rg/providers/Microsoft.ManagedIdentity/"
                  "userAssignedIdentities/abc",
                  "the subscription is not a GUID" },
                { "/subscriptions/" SUB "/resourceGroups/rg./providers/Microsoft.ManagedIdentity/"
                  "userAssignedIdentities/abc",
                  "the resource group" },
                { "/subscriptions/" SUB "/resourceGroups//providers/Microsoft.ManagedIdentity/"
                  "userAssignedIdentities/abc",
                  "the resource group" },
                { "/subscriptions/" SUB "/resourceGroups/a b/providers/Microsoft.ManagedIdentity/"
                  "userAssignedIdentities/abc",
                  "the resource group" },
                { "/subscriptions/" SUB "/resourceGroup/rg/providers/Microsoft.ManagedIdentity/"
                  "userAssignedIdentities/abc",
                  "segment 3 is \"resourceGroup\", not resourceGroups" },
                { "/subscriptions/" SUB "/resourceGroups/rg/providers/Microsoft.ManagedIdentity/"
                  "systemAssignedIdentities/abc",
                  "segment 7" },
        };
        for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
                struct policy_resource_id id;
                char why[256] = "";
                int r = policy_resource_id_parse(cases[i].id, &id, why, sizeof why);
                if (!cases[i].why) {
                        assert_int_equal(r, 0);
                        assert_true(policy_value_valid(POLICY_VALUE_RESOURCE_ID, cases[i].id));
                        continue;
                }
                assert_int_equal(r, -EINVAL);
                if (!strstr(why, cases[i].why))
                        fail_msg("%s: want \"%s\" in \"%s\"", cases[i].id, cases[i].why, why);
                assert_false(policy_value_valid(POLICY_VALUE_RESOURCE_ID, cases[i].id));
        }
        struct policy_resource_id id;
        char why[256];
        assert_int_equal(policy_resource_id_parse("/subscriptions/" SUB "/resourcegroups/My.RG/providers/"
                                                  "Microsoft.ManagedIdentity/userAssignedIdentities/spark-id_1",
                                                  &id, why, sizeof why),
                         0);
        assert_string_equal(id.subscription, SUB);
        assert_string_equal(id.resource_group, "My.RG");
        assert_string_equal(id.name, "spark-id_1");

        struct policy *with =
                load_ok("defaults: {resourceId: " RID_PREFIX "shared-id}\n"
                        "namespaces:\n"
                        "  a: {identity: sparkaks, clientId: " CLIENT_A ", resourceId: " RID_PREFIX "a-id}\n"
                        "  b: {identity: b-spark}\n");
        struct policy *without = load_ok("namespaces:\n"
                                         "  a: {identity: sparkaks, clientId: " CLIENT_A "}\n"
                                         "  b: {identity: b-spark}\n");
        assert_string_equal(policy_rule_for(with, "a")->resource_id, RID_PREFIX "a-id");
        assert_string_equal(policy_rule_for(with, "b")->resource_id, RID_PREFIX "shared-id");
        assert_null(policy_rule_for(without, "a")->resource_id);
        for (const char *ns = "a"; ns; ns = strcmp(ns, "a") == 0 ? "b" : NULL) {
                const struct rule *rw = policy_rule_for(with, ns), *ro = policy_rule_for(without, ns);
                assert_string_equal(rw->identity, ro->identity);
                assert_string_equal(rw->flags_joined, ro->flags_joined);
                assert_int_equal(rw->n_allowed_identities, ro->n_allowed_identities);
        }
        policy_free(with);
        policy_free(without);
}

int main(void)
{
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_example_rules),
                cmocka_unit_test(test_storage_accounts_per_account_keys),
                cmocka_unit_test(test_non_azure_keys_stay_global),
                cmocka_unit_test(test_builtin_defaults),
                cmocka_unit_test(test_entry_overlays_defaults),
                cmocka_unit_test(test_identities_allowed),
                cmocka_unit_test(test_json_policy_same_rules),
                cmocka_unit_test(test_sha256_of_text),
                cmocka_unit_test(test_sha256_given),
                cmocka_unit_test(test_empty_namespaces),
                cmocka_unit_test(test_bad_policies_explained),
                cmocka_unit_test(test_every_problem_reported),
                cmocka_unit_test(test_problems_in_line_order),
                cmocka_unit_test(test_misspelt_keys_name_the_key_meant),
                cmocka_unit_test(test_too_many_flags),
                cmocka_unit_test(test_scalars_as_hadoop_values),
                cmocka_unit_test(test_selectors_kubernetes_semantics),
                cmocka_unit_test(test_empty_selector_matches_all),
                cmocka_unit_test(test_annotations_make_a_rule),
                cmocka_unit_test(test_claim_rule),
                cmocka_unit_test(test_grantors_and_grant_labels),
                cmocka_unit_test(test_bad_selectors_explained),
                cmocka_unit_test(test_long_hadoop_names_and_huge_numbers),
                cmocka_unit_test(test_names),
                cmocka_unit_test(test_value_checks),
                cmocka_unit_test(test_resource_id),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
