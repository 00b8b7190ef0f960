/* `mutate`: answers one AdmissionReview from a file or stdin exactly as the
 * server would, so that admins can try a policy and tests can compare. */
#include <errno.h>
#include <getopt.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include "admission.h"
#include "cli.h"
#include "commands.h"
#include "fileio.h"
#include "policy_file.h"
#include "webhook_limits.h"

#define CMD "mutate"
void cmd_mutate_help(void)
{
        printf("Usage: spark-identity-webhook mutate --policy FILE [--namespace-labels K=V,...]\n"
               "                                     [--namespace-annotations K=V,...] [--validate]\n"
               "                                     [REVIEW|-]\n"
               "\n"
               "Reads one AdmissionReview (a file, or stdin when REVIEW is - or absent) and prints\n"
               "the AdmissionReview the server would answer with this policy: same JSON, same\n"
               "patch, same warnings. Nothing is logged and nothing is served. Pod CREATEs are\n"
               "mutated; pod UPDATEs are judged on the identity they claim (a label added or\n"
               "changed); namespace CREATEs and UPDATEs on the grant keys they change (the\n"
               "requesting user is the review's userInfo).\n"
               "\n"
               "  --policy FILE   the policy to decide with\n"
               "  --validate      answer as POST /validate does (the validating webhook, after\n"
               "                  every mutating one): judge, never patch\n"
               "  --namespace-labels K=V,...       the labels of the review's namespace, for\n"
               "                                   policies with selectors (default: none)\n"
               "  --namespace-annotations K=V,...  its spark-identity.io/ annotations, for\n"
               "                                   namespaceAnnotations: true (default: none)\n"
               "\n"
               "Exit status: 0 when a review was answered (allowed or not: read response.allowed),\n"
               "2 when the policy or the input is not valid (the message says why; the server\n"
               "would answer such input with HTTP 400).\n"
               "\n"
               "Example: see what team-a's driver would get, with the patch decoded:\n"
               "  spark-identity-webhook mutate --policy deploy/policy.yaml review.json \\\n"
               "      | jq -r .response.patch | base64 -d | jq .\n");
}

int cmd_mutate(int argc, char **argv)
{
        static const struct option longopts[] = {
                { "policy", required_argument, NULL, 'p' },
                { "namespace-labels", required_argument, NULL, 'l' },
                { "namespace-annotations", required_argument, NULL, 'a' },
                { "validate", no_argument, NULL, 'v' },
                { "help", no_argument, NULL, 'h' },
                { 0 },
        };
        const char *policy_path = NULL, *input = "-";
        struct cli_namespace ns = { 0 };
        bool validate = false;
        char err[512];
        int c;

        optind = 1;
        opterr = 0;
        while ((c = getopt_long(argc, argv, ":h", longopts, NULL)) != -1) {
                switch (c) {
                case 'p': policy_path = optarg; break;
                case 'l':
                        if (cli_parse_kvs(CMD, "--namespace-labels", optarg, ns.labels, &ns.n_labels))
                                return 2;
                        break;
                case 'a':
                        if (cli_parse_kvs(CMD, "--namespace-annotations", optarg, ns.annotations, &ns.n_annotations))
                                return 2;
                        break;
                case 'v': validate = true; break;
                case 'h': cmd_mutate_help(); return 0;
                case ':':
                default: return cli_getopt_error(CMD, c, argv);
                }
        }
        if (!policy_path)
                return cli_usage_error(CMD, "--policy is required");
        if (optind < argc)
                input = argv[optind++];
        if (optind < argc)
                return cli_usage_error(CMD, "one review at a time; unexpected \"%s\"", argv[optind]);

        struct buf errors, body;
        struct policy *policy = NULL;
        struct admission a;
        int rc = 2;
        buf_init(&errors, WH_POLICY_ERRORS_MAX_BYTES);
        buf_init(&body, WH_MAX_BODY_BYTES);
        admission_init(&a, WH_MAX_RESPONSE_BYTES);
        a.path = validate ? ADMISSION_VALIDATE : ADMISSION_MUTATE;
        if (policy_file_load(policy_path, &policy, &errors) < 0) {
                fprintf(stderr, CMD ": the policy is not valid:\n%s", errors.data);
                goto out;
        }
        if (fileio_read(strcmp(input, "-") == 0 ? "/dev/stdin" : input, &body, err, sizeof err) < 0) {
                fprintf(stderr, CMD ": %s\n", err);
                goto out;
        }
        struct ns_known known = cli_ns_known(&ns);
        if (admission_handle(policy, &known, body.data ? body.data : "", body.len, &a) < 0) {
                fprintf(stderr, CMD ": out of memory\n");
                goto out;
        }
        if (a.status != 200) {
                fprintf(stderr, CMD ": %s (the server would answer HTTP %d)\n", a.error, a.status);
                goto out;
        }
        fwrite(a.body.data, 1, a.body.len, stdout);
        fputc('\n', stdout);
        rc = fflush(stdout) == 0 ? 0 : 2;
out:
        admission_free(&a);
        buf_free(&body);
        buf_free(&errors);
        policy_free(policy);
        return rc;
}
