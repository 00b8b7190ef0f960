/* `explain`: the rule a namespace gets and where it comes from, and the
 * exact label and env a Spark driver and executor created there would get,
 * found by running admission's own decision on a minimal driver and
 * executor (mutate_pod(), as the server does). */
#include <errno.h>
#include <getopt.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "buf.h"
#include "cli.h"
#include "commands.h"
#include "mutate.h"
#include "policy_file.h"
#include "pool.h"
#include "webhook_limits.h"

#define CMD "explain"

void cmd_explain_help(void)
{
        printf("Usage: spark-identity-webhook explain --policy FILE --namespace NS\n"
               "                                      [--labels K=V,...] [--annotations K=V,...]\n"
               "\n"
               "Says which rule of the policy a namespace gets and why (its auth: podIdentity or\n"
               "workloadIdentity, with the federated client, tenant and service account), and shows\n"
               "the exact label, env, token volume and mount a Spark driver and a Spark executor\n"
               "created there would get. Those are\n"
               "not computed apart: a minimal driver pod and executor pod go through the same\n"
               "decision the server makes on admission, and what it would change is printed.\n"
               "\n"
               "  --policy FILE             the policy\n"
               "  --namespace NS            the namespace\n"
               "  --labels K=V,...          the namespace's labels, for policies with selectors\n"
               "                            (default: none)\n"
               "  --annotations K=V,...     its annotations, for namespaceAnnotations: true\n"
               "                            (spark-identity.io/identity, /client-id, /tenant-id,\n"
               "                            /mode, /auth, /service-account)\n"
               "\n"
               "A namespace's rule is, first match wins: its entry under namespaces; its\n"
               "spark-identity.io/ annotations (with namespaceAnnotations: true); the first selector\n"
               "whose namespaceSelector matches its labels. See what a live namespace has with\n"
               "  kubectl get namespace NS -o jsonpath='{.metadata.labels}{\"\\n\"}{.metadata.annotations}'\n"
               "\n"
               "Executors: the SPARK_JAVA_OPT_<n> shown are numbered from 0; a real executor gets\n"
               "them numbered after its own. Flags a pod already carries are not added again.\n"
               "\n"
               "Exit status: 0, or 2 when the policy or the arguments are not valid.\n"
               "\n"
               "Examples:\n"
               "  spark-identity-webhook explain --policy deploy/policy.yaml --namespace team-a\n"
               "  spark-identity-webhook explain --policy policy.yaml --namespace lake-1 \\\n"
               "      --labels spark-identity.io/team=data,env=prod\n");
}

static const char *source_text(const struct rule *r)
{
        switch (r->source) {
        case RULE_NAMED: return "its entry under namespaces";
        case RULE_ANNOTATIONS: return "its " POLICY_ANNOTATION_PREFIX " annotations, over defaults";
        case RULE_SELECTOR: return "the first selector whose namespaceSelector matches its labels";
        default: return "?";
        }
}

static const char *mode_text(enum policy_mode m)
{
        switch (m) {
        case POLICY_MODE_ENFORCE: return "Spark pods are changed; claims of other identities are refused";
        case POLICY_MODE_AUDIT: return "pods are admitted unchanged; warnings say what enforce would do";
        default: return "the webhook leaves the namespace's pods alone";
        }
}

static void print_rule(const char *ns, const struct resolution *res, const struct policy *p)
{
        const struct rule *r = res->rule;
        printf("Namespace %s\n", ns);
        if (!r) {
                if (res->problem[0])
                        printf("  rule        " POLICY_NO_RULE ": its " POLICY_ANNOTATION_PREFIX
                               " annotations make no valid rule: %s\n",
                               res->problem);
                else
                        printf("  rule        " POLICY_NO_RULE ": no entry under namespaces%s%s\n",
                               policy_reads_annotations(p) ? ", no " POLICY_ANNOTATION_PREFIX "identity annotation"
                                                           : "",
                               policy_selector_count(p) ? ", no selector matches its labels" : "");
                enum policy_mode m = policy_default_mode(p);
                printf("  mode        %s (defaults.mode): %s\n", policy_mode_name(m),
                       m == POLICY_MODE_ENFORCE ? "refusals below are enforced"
                       : m == POLICY_MODE_AUDIT ? "pods are admitted; warnings say what enforce would refuse"
                                                : "the webhook leaves the namespace's pods alone");
                printf("  unmatched   %s\n", policy_unmatched_deny(p)
                                                     ? "deny: Spark pods are refused here"
                                                     : "allow: Spark pods are admitted unchanged here");
                printf("  identities  pods here may carry no identity the policy names (its owners' mode decides: "
                       "enforce refuses, audit warns); unlisted ones %s\n",
                       policy_unlisted_deny(p) ? "are refused (unlistedIdentities: deny)"
                                               : "are free here (unlistedIdentities: allow)");
                return;
        }
        printf("  rule        %s, from %s\n", r->name, source_text(r));
        if (r->auth == POLICY_AUTH_WORKLOAD_IDENTITY) {
                printf("  auth        workloadIdentity: Azure Workload Identity, a projected service-account "
                       "token exchanged for client %s in tenant %s at %s\n",
                       r->client_id, r->tenant_id, r->authority_host);
                if (r->service_account)
                        printf("  account     %s: drivers must run as it; executors with the default account "
                               "are %s\n",
                               r->service_account, r->on_conflict == POLICY_CONFLICT_DENY ? "refused" : "moved to it");
                else
                        printf("  account     any: serviceAccount is not set, so it is not checked\n");
                printf("  token       %s, expires after %u s, audience " POLICY_WI_AUDIENCE "\n", POLICY_WI_TOKEN_FILE,
                       r->token_expiration_s);
                if (r->n_extra_containers) {
                        printf("  containers  the Spark container, and these when present:");
                        for (size_t i = 0; i < r->n_extra_containers; i++)
                                printf("%s %s", i ? "," : "", r->extra_containers[i]);
                        printf("\n");
                }
        } else {
                printf("  auth        podIdentity: aad-pod-identity, label aadpodidbinding\n");
        }
        size_t first_other = r->identity ? 1 : 0;
        if (r->identity)
                printf("  identity    %s", r->identity);
        else if (r->n_allowed_identities)
                printf("  identity    none added");
        if (r->n_allowed_identities > first_other) {
                printf("; pods may also claim");
                for (size_t i = first_other; i < r->n_allowed_identities; i++)
                        printf("%s %s", i > first_other ? "," : "", r->allowed_identities[i]);
        }
        if (r->n_allowed_identities)
                printf("\n");
        printf("  claims      pods here may carry only the identities above; another one the policy names is "
               "judged by its owners' mode (not this namespace's), an unlisted one %s\n",
               policy_unlisted_deny(p) ? "is refused (unlistedIdentities: deny)"
                                       : "by this namespace's mode (unlistedIdentities: allow)");
        printf("  mode        %s: %s\n", policy_mode_name(r->mode), mode_text(r->mode));
        printf("  onConflict  %s: %s\n", policy_conflict_name(r->on_conflict),
               r->on_conflict == POLICY_CONFLICT_DENY ? "a Spark pod with another identity is refused"
                                                      : "another identity on a Spark pod is replaced, with a warning");
        printf("  jvmEnv      %s: %s\n", policy_jvm_env_name(r->jvm_env),
               r->jvm_env == POLICY_JVM_ENV_JAVA_TOOL_OPTIONS
                       ? "the flags go into JAVA_TOOL_OPTIONS, drivers and executors alike"
                       : "drivers get SPARK_SUBMIT_OPTS, executors SPARK_JAVA_OPT_<n>");
}

/* A Spark pod as Spark builds it, reduced to what admission looks at; it
 * runs as the rule's federated service account, as a driver submitted
 * right would. */
static cJSON *minimal_pod(const char *ns, enum pod_role role, const struct rule *r)
{
        const char *name = mutate_role_name(role);
        char text[1024];
        snprintf(text, sizeof text,
                 "{\"apiVersion\":\"v1\",\"kind\":\"Pod\",\"metadata\":{\"name\":\"explain-%s\","
                 "\"labels\":{\"spark-app-selector\":\"spark-explain\",\"spark-role\":\"%s\"}},"
                 "\"spec\":{\"containers\":[{\"name\":\"spark-kubernetes-%s\",\"image\":\"apache/spark\","
                 "\"args\":[\"%s\"]}]}}",
                 role == POD_ROLE_DRIVER ? "driver" : "exec-1", name, name, name);
        cJSON *pod = cJSON_Parse(text);
        if (pod && !cJSON_AddStringToObject(cJSON_GetObjectItemCaseSensitive(pod, "metadata"), "namespace", ns)) {
                cJSON_Delete(pod);
                return NULL;
        }
        if (pod && r && r->service_account &&
            !cJSON_AddStringToObject(cJSON_GetObjectItemCaseSensitive(pod, "spec"), "serviceAccountName",
                                     r->service_account)) {
                cJSON_Delete(pod);
                return NULL;
        }
        return pod;
}

/* The changes admission makes, as the label, env entries, volume and mount they set. */
static void print_changes(const struct mutation *m)
{
        struct buf item;
        buf_init(&item, WH_MAX_PATCH_BYTES);
        for (size_t i = 0; i < m->n_changes; i++) {
                const struct change *c = &m->changes[i];
                switch (c->kind) {
                case CHANGE_SET_IDENTITY_LABEL: printf("    label  " CHANGE_IDENTITY_LABEL "=%s\n", c->value); break;
                case CHANGE_REMOVE_IDENTITY_LABEL: printf("    label  " CHANGE_IDENTITY_LABEL " removed\n"); break;
                case CHANGE_SET_SERVICE_ACCOUNT: printf("    serviceAccountName %s\n", c->value); break;
                case CHANGE_SET_DEPRECATED_SERVICE_ACCOUNT: printf("    serviceAccount %s\n", c->value); break;
                case CHANGE_SET_ENV:
                case CHANGE_ADD_ENV: printf("    env    %s=%s\n", c->name, c->value); break;
                case CHANGE_ADD_JAVA_OPT:
                        printf("    env    " CHANGE_JAVA_OPT_PREFIX "%u=%s\n", c->index, c->value);
                        break;
                case CHANGE_TOKEN_VOLUME:
                        buf_reset(&item);
                        printf("    volume %s\n", jsonpatch_change_item(&item, c) == 0 ? item.data : "?");
                        break;
                case CHANGE_TOKEN_MOUNT:
                        printf("    mount  " POLICY_WI_VOLUME " at " POLICY_WI_MOUNT_PATH ", read-only\n");
                        break;
                case CHANGE_KIND_MAX: break;
                }
        }
        buf_free(&item);
}

static int explain_pod(const struct policy *p, const char *ns, const struct mutate_context *mc, enum pod_role role)
{
        cJSON *pod = minimal_pod(ns, role, mc->res->rule);
        struct mutation m;
        if (!pod)
                return -ENOMEM;
        mutation_init(&m);
        int r = mutate_pod(p, ns, mc, pod, &m);
        if (r < 0)
                goto out;
        printf("\nA Spark %s created in %s: %s", mutate_role_name(role), ns, mutate_decision_name(m.decision));
        switch (m.decision) {
        case DECISION_MUTATED:
                printf(". It gets:\n");
                print_changes(&m);
                break;
        case DECISION_WOULD_MUTATE:
                printf(" (mode audit: admitted unchanged). Under enforce it would get:\n");
                print_changes(&m);
                break;
        case DECISION_DENIED: printf(". Refused:\n    %s\n", m.message); break;
        default:
                printf(m.mode == POLICY_MODE_OFF ? " (mode off): admitted as it is.\n"
                                                 : ": admitted as it is; nothing is added.\n");
                break;
        }
        for (unsigned i = 0; i < m.n_warnings; i++)
                printf("    warning: %s\n", m.warnings[i]);
out:
        mutation_free(&m);
        cJSON_Delete(pod);
        return r;
}

int cmd_explain(int argc, char **argv)
{
        static const struct option longopts[] = {
                { "policy", required_argument, NULL, 'p' }, { "namespace", required_argument, NULL, 'n' },
                { "labels", required_argument, NULL, 'l' }, { "annotations", required_argument, NULL, 'a' },
                { "help", no_argument, NULL, 'h' },         { 0 },
        };
        const char *policy_path = NULL, *ns = NULL;
        struct cli_namespace cns = { 0 };
        int c;

        optind = 1;
        opterr = 0;
        while ((c = getopt_long(argc, argv, ":hn:", longopts, NULL)) != -1) {
                switch (c) {
                case 'p': policy_path = optarg; break;
                case 'n': ns = optarg; break;
                case 'l':
                        if (cli_parse_kvs(CMD, "--labels", optarg, cns.labels, &cns.n_labels))
                                return 2;
                        break;
                case 'a':
                        if (cli_parse_kvs(CMD, "--annotations", optarg, cns.annotations, &cns.n_annotations))
                                return 2;
                        break;
                case 'h': cmd_explain_help(); return 0;
                case ':':
                default: return cli_getopt_error(CMD, c, argv);
                }
        }
        if (optind < argc)
                return cli_usage_error(CMD, "unexpected \"%s\"", argv[optind]);
        if (!policy_path)
                return cli_usage_error(CMD, "--policy is required");
        if (!ns || !*ns)
                return cli_usage_error(CMD, "--namespace is required");

        struct buf errors;
        struct policy *p = NULL;
        struct pool pool = POOL_INIT;
        struct resolution res;
        int rc = 2;
        buf_init(&errors, WH_POLICY_ERRORS_MAX_BYTES);
        if (policy_file_load(policy_path, &p, &errors) < 0) {
                fprintf(stderr, CMD ": the policy is not valid:\n%s", errors.data ? errors.data : "");
                goto out;
        }
        struct ns_info info = { .labels = cns.labels,
                                .n_labels = cns.n_labels,
                                .annotations = cns.annotations,
                                .n_annotations = cns.n_annotations };
        if (policy_resolve(p, ns, &info, &pool, &res) < 0) {
                fprintf(stderr, CMD ": out of memory\n");
                goto out;
        }
        print_rule(ns, &res, p);
        printf("  policy      %s (sha256 %s)\n", policy_path, policy_sha256(p));
        if (policy_needs_namespace(p, ns) && !cns.n_labels && !cns.n_annotations)
                printf("  note        the rule depends on the namespace's labels and annotations, and none were "
                       "given (--labels, --annotations)\n");

        struct mutate_context mc = { .res = &res };
        if (explain_pod(p, ns, &mc, POD_ROLE_DRIVER) < 0 || explain_pod(p, ns, &mc, POD_ROLE_EXECUTOR) < 0) {
                fprintf(stderr, CMD ": out of memory\n");
                goto out;
        }
        rc = fflush(stdout) == 0 ? 0 : 2;
out:
        pool_free(&pool);
        policy_free(p);
        buf_free(&errors);
        return rc;
}
