/* spark-identity-webhook: subcommand dispatch, --version and help. */
#include <stdio.h>
#include <string.h>

#include "commands.h"

struct command {
        const char *name;
        int (*run)(int argc, char **argv);
        void (*help)(void);
        const char *summary;
};

static const struct command commands[] = {
        { "serve", cmd_serve, cmd_serve_help, "serve the admission webhook over HTTPS" },
        { "certs", cmd_certs, cmd_certs_help, "make a CA and a serving certificate for the Service" },
        { "mutate", cmd_mutate, cmd_mutate_help, "answer one AdmissionReview as the server would" },
        { "check-policy", cmd_check_policy, cmd_check_policy_help, "validate a policy and show what it grants" },
        { "explain", cmd_explain, cmd_explain_help, "show a namespace's rule and what its Spark pods get" },
        { "audit", cmd_audit, cmd_audit_help, "find running pods that do not comply with a policy" },
        { "test", cmd_test, cmd_test_help, "run a policy's test cases (expected answers for pods)" },
        { "render", cmd_render, cmd_render_help, "print the policy as objects the API server enforces itself" },
};

static void usage(FILE *out)
{
        fprintf(out,
                "spark-identity-webhook %s: gives Spark pods their namespace's Azure identity\n"
                "(aadpodidbinding), Java settings and hadoop-azure MsiTokenProvider properties,\n"
                "and refuses pods that claim an identity their namespace may not use.\n"
                "\n"
                "Usage: spark-identity-webhook COMMAND [options]\n"
                "\n"
                "Commands:\n",
                WH_VERSION);
        for (size_t i = 0; i < sizeof commands / sizeof *commands; i++)
                fprintf(out, "  %-14s %s\n", commands[i].name, commands[i].summary);
        fprintf(out,
                "  %-14s %s\n"
                "\n"
                "  --version      print the version\n"
                "  --help         this text\n"
                "\n"
                "Start here: 'spark-identity-webhook check-policy deploy/policy.yaml', then\n"
                "'spark-identity-webhook help serve'.\n",
                "help COMMAND", "the options of one command");
}

static void help_help(void)
{
        printf("Usage: spark-identity-webhook help [COMMAND]\n"
               "\n"
               "Prints what COMMAND does, its options and an example; the same as\n"
               "'spark-identity-webhook COMMAND --help'. Without COMMAND, the list of commands.\n"
               "\n");
        usage(stdout);
}

static const struct command *find(const char *name)
{
        for (size_t i = 0; i < sizeof commands / sizeof *commands; i++)
                if (strcmp(commands[i].name, name) == 0)
                        return &commands[i];
        return NULL;
}

int main(int argc, char **argv)
{
        if (argc < 2) {
                usage(stderr);
                return 2;
        }
        const char *cmd = argv[1];
        if (strcmp(cmd, "--version") == 0 || strcmp(cmd, "version") == 0) {
                printf("spark-identity-webhook %s\n", WH_VERSION);
                return 0;
        }
        if (strcmp(cmd, "--help") == 0 || strcmp(cmd, "-h") == 0) {
                usage(stdout);
                return 0;
        }
        if (strcmp(cmd, "help") == 0) {
                if (argc < 3) {
                        usage(stdout);
                        return 0;
                }
                if (strcmp(argv[2], "help") == 0) {
                        help_help();
                        return 0;
                }
                const struct command *c = find(argv[2]);
                if (!c) {
                        fprintf(stderr, "spark-identity-webhook: no command \"%s\"\n\n", argv[2]);
                        usage(stderr);
                        return 2;
                }
                c->help();
                return 0;
        }
        const struct command *c = find(cmd);
        if (!c) {
                fprintf(stderr, "spark-identity-webhook: no command \"%s\"\n\n", cmd);
                usage(stderr);
                return 2;
        }
        return c->run(argc - 1, argv + 1);
}
