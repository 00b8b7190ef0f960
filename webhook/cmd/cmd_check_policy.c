/* `check-policy`: validates a policy file and shows what each namespace
 * gets, or explains every problem with its place in the file. */
#include <errno.h>
#include <getopt.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "commands.h"
#include "policy_file.h"
#include "webhook_limits.h"

#define CMD "check-policy"

void cmd_check_policy_help(void)
{
        printf("Usage: spark-identity-webhook check-policy [--policy] FILE|-\n"
               "\n"
               "Validates a policy (YAML or JSON), from FILE or, with -, from stdin. The file\n"
               "may be given as --policy FILE, as every other command takes it, or alone.\n"
               "Each problem is printed as\n"
               "  FILE:LINE:COLUMN: where.in.policy: what is wrong\n"
               "in the order of the file (<stdin> in place of FILE for -), with the key meant\n"
               "when a key is misspelt (did you mean `clientId`?), and the exit status is 1.\n"
               "A valid policy prints who may carry which identity (each identity the policy\n"
               "names, the mode that protects it from other namespaces and its owners; what\n"
               "happens to unlisted ones), the grant keys and grantors, then, per namespace,\n"
               "its auth (podIdentity or workloadIdentity), the identity or the federated\n"
               "client, tenant and service account, the mode and the JVM flags its Spark pods\n"
               "get, and exits 0.\n"
               "\n"
               "  --policy FILE   the policy to check (- for stdin)\n"
               "  -h, --help      this text\n"
               "\n"
               "Exit status: 0 valid, 1 the policy has problems (listed on stdout), 2 a usage\n"
               "error or a file that cannot be read (the message on stderr names it).\n"
               "\n"
               "Examples:\n"
               "  spark-identity-webhook check-policy deploy/policy.yaml\n"
               "  kubectl -n spark-identity-system get configmap spark-identity-policy \\\n"
               "      -o jsonpath='{.data.policy\\.yaml}' | spark-identity-webhook check-policy -\n"
               "\n"
               "The policy reference is in README.md; deploy/policy.yaml is a commented example.\n");
}

static void print_rule(const struct rule *r)
{
        printf("\n%s:\n  auth %s", r->name, policy_auth_name(r->auth));
        if (r->identity)
                printf("  identity %s", r->identity);
        printf("  mode %s  onConflict %s  jvmEnv %s\n", policy_mode_name(r->mode), policy_conflict_name(r->on_conflict),
               policy_jvm_env_name(r->jvm_env));
        if (r->auth == POLICY_AUTH_WORKLOAD_IDENTITY) {
                printf("  clientId %s  tenantId %s\n", r->client_id, r->tenant_id);
                printf("  serviceAccount %s  authorityHost %s  tokenExpirationSeconds %u\n",
                       r->service_account ? r->service_account : "(any: not checked)", r->authority_host,
                       r->token_expiration_s);
                if (r->n_extra_containers) {
                        printf("  extraContainers:");
                        for (size_t k = 0; k < r->n_extra_containers; k++)
                                printf(" %s", r->extra_containers[k]);
                        printf("\n");
                }
        }
        if (r->resource_id)
                printf("  resourceId %s\n", r->resource_id);
        size_t first_other = r->identity ? 1 : 0;
        if (r->n_allowed_identities > first_other) {
                printf("  may also use:");
                for (size_t k = first_other; k < r->n_allowed_identities; k++)
                        printf(" %s", r->allowed_identities[k]);
                printf("\n");
        }
        if (r->java_home)
                printf("  JAVA_HOME=%s\n", r->java_home);
        for (size_t k = 0; k < r->n_flags; k++)
                printf("  %s\n", r->flags[k]);
}

/* The named rules, then the selectors' rules, as one list. */
static size_t rules_and_selectors(const struct policy *p)
{
        return policy_rule_count(p) + policy_selector_count(p);
}

static const struct rule *rule_or_selector_at(const struct policy *p, size_t i)
{
        return i < policy_rule_count(p) ? policy_rule_at(p, i) : policy_selector_at(p, i - policy_rule_count(p));
}

/* Who names each identity: "team-a, selector data", as many names as fit,
 * then how many more. */
struct owners {
        char text[240];
        size_t len;
        size_t count;       /* rules that name it */
        size_t shown;       /* of them, in text */
};

/* Counts the rule named `name` among the owners in `o` (a rule lists an
 * identity once: struct rule). */
static void owners_add(struct owners *o, const char *name)
{
        o->count++;
        if (o->shown + 1 < o->count)
                return;   /* the text is full: a later, shorter name would read out of order */
        size_t room = sizeof o->text - o->len;
        int n = snprintf(o->text + o->len, room, "%s%s", o->len ? ", " : "", name);
        if (n >= 0 && (size_t)n < room) {
                o->len += (size_t)n;
                o->shown++;
        } else {
                o->text[o->len] = '\0';
        }
}

/* The owners of every listed identity, in one pass over the rules (a pass
 * per identity made check-policy quadratic in the policy's size); NULL when
 * out of memory. */
static struct owners *owners_of_all(const struct policy *p)
{
        size_t n = policy_identity_count(p);
        struct owners *all = calloc(n ? n : 1, sizeof *all);
        if (!all)
                return NULL;
        const struct policy_identity *first = policy_identity_at(p, 0);
        for (size_t i = 0; i < rules_and_selectors(p); i++) {
                const struct rule *r = rule_or_selector_at(p, i);
                for (size_t k = 0; k < r->n_allowed_identities; k++) {
                        const struct policy_identity *id = policy_identity_find(p, r->allowed_identities[k]);
                        if (id && (size_t)(id - first) < n)
                                owners_add(&all[id - first], r->name);
                }
        }
        return all;
}

/* The claim rule as this policy makes it; false when out of memory. */
static bool print_claims(const struct policy *p)
{
        struct owners *owners = owners_of_all(p);
        if (!owners)
                return false;
        printf("\nidentities (a pod may carry one only where its namespace's rule names it; elsewhere\n"
               "the strongest mode of its owners decides: enforce refuses, audit warns, off ignores):\n");
        for (size_t i = 0; i < policy_identity_count(p); i++) {
                const struct policy_identity *id = policy_identity_at(p, i);
                const struct owners *o = &owners[i];
                char more[48] = "";
                if (o->count > o->shown)
                        snprintf(more, sizeof more, "%sand %zu more", o->shown ? ", " : "", o->count - o->shown);
                printf("  %-24s %-7s %s%s%s%s\n", id->identity, policy_mode_name(id->protection), o->text, more,
                       id->delegable && o->count ? ", " : "",
                       id->delegable ? "delegable: namespaces whose annotations name it" : "");
        }
        free(owners);
        if (!policy_identity_count(p))
                printf("  (none)\n");
        printf("unlisted identities: %s\n",
               policy_unlisted_deny(p)
                       ? "refused everywhere (unlistedIdentities: deny)"
                       : "refused where a namespace's rule does not name them (by its mode); free in namespaces "
                         "without a rule (unlistedIdentities: allow)");
        if (!policy_uses_namespaces(p)) {
                printf("grant keys: none (no selectors, no namespaceAnnotations): namespace changes are not judged\n");
                return true;
        }
        printf("grant keys (only grantors may add, change or remove them): annotations " POLICY_ANNOTATION_PREFIX "*");
        for (size_t i = 0; i < policy_grant_label_count(p); i++)
                printf("%slabel %s", i ? ", " : "; ", policy_grant_label_at(p, i));
        printf("\n  for the namespace-grants webhook's matchConditions (deploy/base/webhook.yaml): k in [");
        size_t listed = 0;
        for (size_t i = 0; i < policy_grant_label_count(p); i++) {
                const char *k = policy_grant_label_at(p, i);
                if (strncmp(k, POLICY_ANNOTATION_PREFIX, strlen(POLICY_ANNOTATION_PREFIX)) != 0)
                        printf("%s'%s'", listed++ ? ", " : "", k);
        }
        printf("]\ngrantors:");
        for (size_t i = 0; i < policy_grantor_count(p); i++)
                printf(" %s", policy_grantor_at(p, i));
        printf("%s\n", policy_grantor_count(p) ? "" : " none (grantors: []): grant keys cannot change");
        return true;
}

/* The policy file from --policy FILE or the one argument; NULL after a
 * usage error (*ret_rc set) or --help (*ret_rc 0). */
static const char *parse_args(int argc, char **argv, int *ret_rc)
{
        static const struct option longopts[] = {
                { "policy", required_argument, NULL, 'p' },
                { "help", no_argument, NULL, 'h' },
                { 0 },
        };
        const char *path = NULL;
        int c;
        optind = 1;
        opterr = 0;
        while ((c = getopt_long(argc, argv, ":h", longopts, NULL)) != -1) {
                switch (c) {
                case 'p': path = optarg; break;
                case 'h':
                        cmd_check_policy_help();
                        *ret_rc = 0;
                        return NULL;
                default: *ret_rc = cli_getopt_error(CMD, c, argv); return NULL;
                }
        }
        if (path && optind < argc) {
                *ret_rc = cli_usage_error(CMD, "give the policy once: --policy %s, or %s alone", path, argv[optind]);
                return NULL;
        }
        if (!path && optind != argc - 1) {
                *ret_rc = cli_usage_error(CMD, "give exactly one policy file (--policy FILE, FILE, or - for stdin)");
                return NULL;
        }
        return path ? path : argv[optind];
}

int cmd_check_policy(int argc, char **argv)
{
        int rc = 2;
        const char *path = parse_args(argc, argv, &rc);
        if (!path)
                return rc;
        bool from_stdin = strcmp(path, "-") == 0;

        struct buf errors;
        struct policy *p = NULL;
        buf_init(&errors, WH_POLICY_ERRORS_MAX_BYTES);
        int loaded = from_stdin ? policy_file_load_stdin(&p, &errors) : policy_file_load(path, &p, &errors);
        if (loaded < 0) {
                /* Problems of a policy read are the output; a file not read is an error. */
                fprintf(loaded == -EINVAL ? stdout : stderr, "%s%s", loaded == -EINVAL ? "" : CMD ": ",
                        errors.data ? errors.data : "");
                buf_free(&errors);
                return loaded == -EINVAL ? 1 : 2;
        }
        buf_free(&errors);
        if (from_stdin)
                path = POLICY_FILE_STDIN_NAME;

        printf("%s: valid; sha256 %s\n", path, policy_sha256(p));
        printf("namespaces without a rule: Spark pods %s; mode %s\n",
               policy_unmatched_deny(p) ? "refused (unmatched: deny)" : "allowed unchanged (unmatched: allow)",
               policy_mode_name(policy_default_mode(p)));
        if (policy_uses_namespaces(p))
                printf("rules also come from %s%s%s; a namespace that cannot be read: %s\n",
                       policy_reads_annotations(p) ? "namespace annotations (" POLICY_ANNOTATION_PREFIX "*)" : "",
                       policy_reads_annotations(p) && policy_selector_count(p) ? " and " : "",
                       policy_selector_count(p) ? "label selectors" : "",
                       policy_lookup_deny(p) ? "its Spark pods are refused (onLookupFailure: deny)"
                                             : "its pods are allowed (onLookupFailure: allow)");
        if (!print_claims(p)) {
                policy_free(p);
                fprintf(stderr, CMD ": out of memory listing the identities of %s\n", path);
                return 2;
        }
        for (size_t i = 0; i < rules_and_selectors(p); i++) {
                const struct rule *r = rule_or_selector_at(p, i);
                print_rule(r);
        }
        policy_free(p);
        return 0;
}
