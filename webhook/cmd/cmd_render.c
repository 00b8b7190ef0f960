/* `render KIND`: prints what the policy becomes for other components.
 * KIND is admission-policy: the ValidatingAdmissionPolicy, its binding and
 * its parameter ConfigMap (render.c) that make the API server judge
 * identity claims itself, and for a policy that reads namespaces a second
 * policy and binding that judge changes of grant keys. */
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
#include "webhook_limits.h"

#define CMD "render"

void cmd_render_help(void)
{
        printf("Usage: spark-identity-webhook render KIND --policy FILE [--namespace NS] [-o yaml|json]\n"
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
               "  --policy FILE      the policy (the one the webhook serves)\n"
               "  --namespace NS     the webhook's namespace: where the ConfigMap goes, and left out\n"
               "                     of the claims binding (default " RENDER_NAMESPACE_DEFAULT ")\n"
               "  -o yaml|json       a YAML stream (default; a comment first says which policy, by\n"
               "                     its sha256, it was made from) or one JSON List\n"
               "\n"
               "The objects are a copy of the policy, and carry its sha256 in the annotation\n"
               "spark-identity.io/policy-sha256: render and apply them again whenever the policy\n"
               "changes, or the API server goes on judging claims by the old one.\n"
               "deploy/admission-policy/ holds them for deploy/policy.yaml (`make render`\n"
               "regenerates it). An audit-mode identity is allowed (the webhook warns).\n"
               "\n"
               "Exit status: 0; 2 when the arguments or the policy are not valid (each problem of\n"
               "the policy as FILE:LINE:COLUMN: where: what, as check-policy prints it) or the\n"
               "policy's data would not fit a ConfigMap (1 MiB).\n"
               "\n"
               "Example:\n"
               "  spark-identity-webhook render admission-policy --policy deploy/policy.yaml | kubectl apply -f -\n"
               "  (kubectl apply --server-side -f - for a policy of thousands of selectors, whose\n"
               "  objects outgrow the annotation client-side apply keeps)\n");
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

int cmd_render(int argc, char **argv)
{
        static const struct option longopts[] = {
                { "policy", required_argument, NULL, 'p' },
                { "namespace", required_argument, NULL, 'n' },
                { "output", required_argument, NULL, 'o' },
                { "help", no_argument, NULL, 'h' },
                { 0 },
        };
        const char *policy_path = NULL, *ns = RENDER_NAMESPACE_DEFAULT;
        enum render_format format = RENDER_YAML;
        struct buf errors, out;
        struct policy *p = NULL;
        char err[512];
        int c, r, rc = 2;

        optind = 1;
        opterr = 0;
        while ((c = getopt_long(argc, argv, ":hn:o:", longopts, NULL)) != -1) {
                switch (c) {
                case 'h': cmd_render_help(); return 0;
                case 'p': policy_path = optarg; break;
                case 'n': ns = optarg; break;
                case 'o':
                        if (strcmp(optarg, render_format_name(RENDER_YAML)) == 0)
                                format = RENDER_YAML;
                        else if (strcmp(optarg, render_format_name(RENDER_JSON)) == 0)
                                format = RENDER_JSON;
                        else
                                return cli_usage_error(CMD, "-o is yaml or json, not \"%s\"", optarg);
                        break;
                case ':':
                default: return cli_getopt_error(CMD, c, argv);
                }
        }
        if (optind == argc)
                return cli_usage_error(CMD, "say what to render: admission-policy");
        if (strcmp(argv[optind], "admission-policy") != 0)
                return cli_usage_error(CMD, "cannot render \"%s\"; KIND is admission-policy", argv[optind]);
        if (optind + 1 < argc)
                return cli_usage_error(CMD, "unexpected \"%s\"", argv[optind + 1]);
        if (!policy_path)
                return cli_usage_error(CMD, "--policy FILE is required");
        if (!dns_label(ns))
                return cli_usage_error(CMD,
                                       "--namespace \"%s\" is not a namespace name (at most 63 of "
                                       "a-z 0-9 -, not starting or ending with -)",
                                       ns);

        buf_init(&errors, WH_POLICY_ERRORS_MAX_BYTES);
        buf_init(&out, RENDER_MAX_OUTPUT_BYTES);
        if (policy_file_load(policy_path, &p, &errors) < 0) {
                fputs(errors.data ? errors.data : "", stderr);
                goto out;
        }
        r = render_admission_policy(p, ns, format, &out, err, sizeof err);
        if (r < 0) {
                fprintf(stderr, "%s: %s: %s\n", CMD, policy_path, r == -ENOMEM ? "out of memory" : err);
                goto out;
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
