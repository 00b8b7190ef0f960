/* `render KIND`: prints what the policy becomes for other components.
 * KIND is admission-policy: the ValidatingAdmissionPolicy, its binding and
 * its parameter ConfigMap (render.c) that make the API server judge
 * identity claims itself, and for a policy that reads namespaces a second
 * policy and binding that judge changes of grant keys; or identities: the
 * Azure identity objects the policy presupposes (render_identities.c). */
#include <errno.h>
#include <getopt.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include "buf.h"
#include "cli.h"
#include "commands.h"
#include "policy_file.h"
#include "render.h"
#include "render_identities.h"
#include "webhook_limits.h"

#define CMD "render"

/* Long: it is the help text of both kinds, written as it reads. */
void cmd_render_help(void)
{
        printf("Usage: spark-identity-webhook render KIND --policy FILE [OPTIONS]\n"
               "  render admission-policy --policy FILE [--namespace NS] [-o yaml|json]\n"
               "  render identities --policy FILE [-o yaml|json|terraform|shell] [--oidc-issuer URL]\n"
               "\n"
               "Prints what the policy becomes for another component. KIND is:\n"
               "\n"
               "  admission-policy   the second line of defence: three objects (five for a policy\n"
               "                     that reads namespaces) with which the\n"
               "                     kube-apiserver itself refuses a pod whose aadpodidbinding label\n"
               "                     claims an Azure identity its namespace may not carry, by the\n"
               "                     same claim rule as the webhook, also while the webhook is down\n"
               "                     or failing open (failurePolicy: Ignore):\n"
               "                     - the ConfigMap " RENDER_PARAMS_NAME " in NS: the policy's data\n"
               "                       (namespaces' rules, identities' protection, defaults);\n"
               "                     - the ValidatingAdmissionPolicy " RENDER_POLICY_NAME ":\n"
               "                       pod CREATEs and UPDATEs (also pods/status) that add or change\n"
               "                       the label, judged in CEL; selectors and annotations are read\n"
               "                       from the namespace; a pod update that leaves the label as it\n"
               "                       was, or removes it, is not judged;\n"
               "                     - its binding: Deny, every namespace but kube-system and NS;\n"
               "                     - when the policy reads namespaces (selectors or\n"
               "                       namespaceAnnotations), the ValidatingAdmissionPolicy\n"
               "                       " RENDER_GRANTS_POLICY_NAME " and its binding: a namespace\n"
               "                       CREATE or UPDATE (also namespaces/status and /finalize) that\n"
               "                       adds, changes or removes a grant key (a spark-identity.io/\n"
               "                       annotation, a label the selectors read) is refused unless\n"
               "                       the user or one of its groups is among the policy's grantors\n"
               "                       (in the ConfigMap, one a line); every namespace is judged,\n"
               "                       as by the webhook. Without selectors and annotations there\n"
               "                       are no grant keys and it is not printed.\n"
               "                     Needs Kubernetes 1.30 or newer (ValidatingAdmissionPolicy v1).\n"
               "\n"
               "                     The objects are a copy of the policy, and carry its sha256 in the\n"
               "                     annotation spark-identity.io/policy-sha256: render and apply them\n"
               "                     again whenever the policy changes, or the API server goes on\n"
               "                     judging claims by the old one. deploy/admission-policy/ holds them\n"
               "                     for deploy/policy.yaml (`make render` regenerates it). An\n"
               "                     audit-mode identity is allowed (the webhook warns).\n"
               "\n");
        printf("  identities         the Azure identity objects the policy presupposes, instead of\n"
               "                     writing them by hand per identity. For every rule under\n"
               "                     `namespaces`, in its namespace:\n"
               "                     - auth podIdentity: the aad-pod-identity AzureIdentity\n"
               "                       (" RENDER_AAD_API_VERSION ", type 0 = user-assigned managed identity,\n"
               "                       resourceID = the rule's resourceId, clientID = its clientId,\n"
               "                       annotation " RENDER_AAD_BEHAVIOR_ANNOTATION ": namespaced) and its\n"
               "                       AzureIdentityBinding (selector = the rule's identity, the value the\n"
               "                       webhook puts in the pods' aadpodidbinding label); both named after\n"
               "                       the identity (lowercase; the binding NAME-binding);\n"
               "                     - auth workloadIdentity: the ServiceAccount of its serviceAccount,\n"
               "                       annotated " RENDER_WI_CLIENT_ANNOTATION " and\n"
               "                       " RENDER_WI_TENANT_ANNOTATION "; with -o shell or terraform, its\n"
               "                       federated identity credential NS-SA on the managed identity of\n"
               "                       resourceId (resource group and name parsed from it), subject\n"
               "                       system:serviceaccount:NS:SA, audience " POLICY_WI_AUDIENCE ".\n"
               "                     A rule that lacks what its objects need (a podIdentity rule its\n"
               "                     resourceId or clientId, a workloadIdentity rule its serviceAccount,\n"
               "                     and with -o shell or terraform its resourceId) is an error naming\n"
               "                     it, and nothing is printed. A `selectors` rule matches namespaces\n"
               "                     by labels, so where its objects go is not known: it is left out,\n"
               "                     with a warning on stderr (and a comment in the output). Rules from\n"
               "                     namespaces' annotations are not in the policy, and left out too.\n"
               "\n");
        printf("  --policy FILE      the policy (the one the webhook serves)\n"
               "  --namespace NS     admission-policy: the webhook's namespace, where the ConfigMap\n"
               "                     goes, and left out of the claims binding (default\n"
               "                     " RENDER_NAMESPACE_DEFAULT ")\n"
               "  -o FORMAT          yaml: a YAML stream (default; a comment first says which policy,\n"
               "                     by its sha256, it was made from); json: one JSON List;\n"
               "                     identities also: shell: a sh script of `az identity\n"
               "                     federated-credential create` commands (--subscription too, from\n"
               "                     resourceId); terraform: azurerm_federated_identity_credential\n"
               "                     resources (azurerm 3.x and 4.x: parent_id = resourceId and\n"
               "                     resource_group_name; azurerm 5 renamed parent_id to\n"
               "                     user_assigned_identity_id)\n"
               "  --oidc-issuer URL  identities, required with -o shell and terraform: the cluster's\n"
               "                     OIDC issuer (az aks show -g RG -n CLUSTER --query\n"
               "                     oidcIssuerProfile.issuerUrl -o tsv)\n"
               "\n"
               "Exit status: 0; 2 when the arguments or the policy are not valid (each problem of\n"
               "the policy as FILE:LINE:COLUMN: where: what, as check-policy prints it), the\n"
               "policy's data would not fit a ConfigMap (1 MiB), or a rule lacks what its identity\n"
               "objects need.\n"
               "\n");
        printf("Examples:\n"
               "  spark-identity-webhook render admission-policy --policy deploy/policy.yaml | kubectl apply -f -\n"
               "  (kubectl apply --server-side -f - for a policy of thousands of selectors, whose\n"
               "  objects outgrow the annotation client-side apply keeps)\n"
               "  spark-identity-webhook render identities --policy policy.yaml | kubectl apply -f -\n"
               "  spark-identity-webhook render identities --policy policy.yaml -o shell --oidc-issuer \\\n"
               "      \"$(az aks show -g RG -n CLUSTER --query oidcIssuerProfile.issuerUrl -o tsv)\" | sh\n");
}

/* A namespace name: a DNS label. */
static bool dns_label(const char *s)
{
        size_t n = strlen(s);
        if (n == 0 || n > 63 || s[0] == '-' || s[n - 1] == '-')
                return false;
        for (; *s; s++)
                if (!((*s >= 'a' && *s <= 'z') || (*s >= '0' && *s <= '9') || *s == '-'))
                        return false;
        return true;
}

/* Prints each line of `notes` on stderr after `prefix`. */
static void print_notes(const char *prefix, const struct buf *notes)
{
        const char *s = notes->data ? notes->data : "";
        while (*s) {
                const char *nl = strchr(s, '\n');
                int n = nl ? (int)(nl - s) : (int)strlen(s);
                fprintf(stderr, "%s%.*s\n", prefix, n, s);
                s += n + (nl ? 1 : 0);
        }
}

/* What the command line asks for. */
struct render_args {
        const char *kind, *policy_path, *ns, *output, *issuer;
        bool ns_given;
};

/* `render identities`, the policy loaded: 0, or 2 after saying why. */
static int render_identities_run(const struct render_args *a, const struct policy *p, struct buf *out)
{
        enum render_identities_format format = RENDER_IDENTITIES_FORMAT_MAX;
        for (int f = 0; f < RENDER_IDENTITIES_FORMAT_MAX; f++)
                if (strcmp(a->output, render_identities_format_name(f)) == 0)
                        format = f;
        struct buf notes;
        char prefix[600];
        buf_init(&notes, WH_POLICY_ERRORS_MAX_BYTES);
        int r = render_identities(p, format, a->issuer, out, &notes);
        snprintf(prefix, sizeof prefix, "%s: %s%s", CMD, r == 0 ? "warning: " : a->policy_path, r == 0 ? "" : ": ");
        print_notes(prefix, &notes);
        buf_free(&notes);
        if (r == -ENOMEM || r == -ENOBUFS)
                fprintf(stderr, "%s: %s: %s\n", CMD, a->policy_path,
                        r == -ENOMEM ? "out of memory" : "the output passes its bound (RENDER_MAX_OUTPUT_BYTES)");
        return r < 0 ? 2 : 0;
}

/* Checks the flags against the kind: 0, or 2 after saying why. */
static int check_args(const struct render_args *a)
{
        bool identities = strcmp(a->kind, "identities") == 0;
        if (!identities && strcmp(a->kind, "admission-policy") != 0)
                return cli_usage_error(CMD, "cannot render \"%s\"; KIND is admission-policy or identities", a->kind);
        if (!a->policy_path)
                return cli_usage_error(CMD, "--policy FILE is required");
        if (!identities) {
                if (strcmp(a->output, "yaml") != 0 && strcmp(a->output, "json") != 0)
                        return cli_usage_error(CMD, "-o is yaml or json for admission-policy, not \"%s\"", a->output);
                if (a->issuer)
                        return cli_usage_error(CMD, "--oidc-issuer is for render identities");
                if (!dns_label(a->ns))
                        return cli_usage_error(CMD,
                                               "--namespace \"%s\" is not a namespace name (at most 63 of "
                                               "a-z 0-9 -, not starting or ending with -)",
                                               a->ns);
                return 0;
        }
        if (a->ns_given)
                return cli_usage_error(CMD, "--namespace is for admission-policy; identities go to the namespaces "
                                            "of the policy's rules");
        bool federate = strcmp(a->output, "terraform") == 0 || strcmp(a->output, "shell") == 0;
        if (!federate && strcmp(a->output, "yaml") != 0 && strcmp(a->output, "json") != 0)
                return cli_usage_error(CMD, "-o is yaml, json, terraform or shell for identities, not \"%s\"",
                                       a->output);
        if (federate && !a->issuer)
                return cli_usage_error(CMD,
                                       "-o %s writes federated credentials, which need the cluster's OIDC issuer: "
                                       "--oidc-issuer URL (az aks show -g RG -n CLUSTER --query "
                                       "oidcIssuerProfile.issuerUrl -o tsv)",
                                       a->output);
        if (a->issuer && !federate)
                return cli_usage_error(CMD, "--oidc-issuer is for -o shell and -o terraform (the ServiceAccounts "
                                            "do not name the issuer)");
        if (a->issuer && !render_identities_issuer_valid(a->issuer))
                return cli_usage_error(CMD, "--oidc-issuer \"%s\" is not an https URL with a host", a->issuer);
        return 0;
}

int cmd_render(int argc, char **argv)
{
        static const struct option longopts[] = {
                { "policy", required_argument, NULL, 'p' }, { "namespace", required_argument, NULL, 'n' },
                { "output", required_argument, NULL, 'o' }, { "oidc-issuer", required_argument, NULL, 'i' },
                { "help", no_argument, NULL, 'h' },         { 0 },
        };
        struct render_args a = { .ns = RENDER_NAMESPACE_DEFAULT, .output = "yaml" };
        struct buf errors, out;
        struct policy *p = NULL;
        char err[512];
        int c, r, rc = 2;

        optind = 1;
        opterr = 0;
        while ((c = getopt_long(argc, argv, ":hn:o:", longopts, NULL)) != -1) {
                switch (c) {
                case 'h': cmd_render_help(); return 0;
                case 'p': a.policy_path = optarg; break;
                case 'n': a.ns = optarg, a.ns_given = true; break;
                case 'o': a.output = optarg; break;
                case 'i': a.issuer = optarg; break;
                case ':':
                default: return cli_getopt_error(CMD, c, argv);
                }
        }
        if (optind == argc)
                return cli_usage_error(CMD, "say what to render: admission-policy or identities");
        a.kind = argv[optind];
        if (optind + 1 < argc)
                return cli_usage_error(CMD, "unexpected \"%s\"", argv[optind + 1]);
        if ((r = check_args(&a)) != 0)
                return r;

        buf_init(&errors, WH_POLICY_ERRORS_MAX_BYTES);
        buf_init(&out, RENDER_MAX_OUTPUT_BYTES);
        if (policy_file_load(a.policy_path, &p, &errors) < 0) {
                fputs(errors.data ? errors.data : "", stderr);
                goto out;
        }
        if (strcmp(a.kind, "identities") == 0) {
                if (render_identities_run(&a, p, &out) != 0)
                        goto out;
        } else {
                enum render_format format = strcmp(a.output, "json") == 0 ? RENDER_JSON : RENDER_YAML;
                r = render_admission_policy(p, a.ns, format, &out, err, sizeof err);
                if (r < 0) {
                        fprintf(stderr, "%s: %s: %s\n", CMD, a.policy_path, r == -ENOMEM ? "out of memory" : err);
                        goto out;
                }
        }
        if (fwrite(out.data, 1, out.len, stdout) != out.len || fflush(stdout) != 0) {
                fprintf(stderr, "%s: writing the output: %s\n", CMD, strerror(errno));
                goto out;
        }
        rc = 0;
out:
        policy_free(p);
        buf_free(&errors);
        buf_free(&out);
        return rc;
}
