/* spark-identity-webhook: subcommand dispatch, --version and help. The
 * same binary run as kubectl-spark_identity (a link) is the kubectl plugin:
 * the same commands, its help and usage errors naming 'kubectl
 * spark-identity'. */
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
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

/* Whether `p`, which follows "spark-identity-webhook", is " NAME" with NAME
 * a command, help, COMMAND or the version: a command line in a help text,
 * not the Service's or the image's name. */
static bool starts_command_line(const char *p)
{
        static const char *const words[] = { "help", "COMMAND", WH_VERSION };
        static const char ends[] = " \n'\".,:;)]";
        if (*p++ != ' ')
                return false;
        for (size_t i = 0; i < sizeof words / sizeof *words + sizeof commands / sizeof *commands; i++) {
                const char *w =
                        i < sizeof words / sizeof *words ? words[i] : commands[i - sizeof words / sizeof *words].name;
                size_t n = strlen(w);
                if (strncmp(p, w, n) == 0 && (p[n] == '\0' || strchr(ends, p[n])))
                        return true;
        }
        return false;
}

/* Writes a help text as the plugin's: each command line's program name
 * becomes cli_program(). */
static void put_as_plugin(const char *text, FILE *out)
{
        static const char name[] = CLI_PROGRAM;
        const size_t n = sizeof name - 1;
        for (const char *p = text; *p;) {
                const char *hit = strstr(p, name);
                if (!hit) {
                        fputs(p, out);
                        break;
                }
                bool word_start = hit == text || !strchr("-_./", hit[-1]);
                fwrite(p, 1, (size_t)(hit - p), out);
                fputs(word_start && starts_command_line(hit + n) ? cli_program() : name, out);
                p = hit + n;
        }
}

/* Prints a command's help (or the usage when `c` is NULL) on `out`; as the
 * plugin, rewritten by put_as_plugin(). The help functions print on stdout:
 * glibc lets stdout be set, so the text is caught in memory first. */
static void print_help(const struct command *c, FILE *out)
{
        if (strcmp(cli_program(), CLI_PROGRAM) == 0) {
                if (c)
                        c->help();
                else
                        usage(out);
                return;
        }
        char *text = NULL;
        size_t len = 0;
        FILE *mem = open_memstream(&text, &len);
        if (!mem) {
                perror(CLI_PROGRAM);
                return;
        }
        fflush(stdout);
        FILE *saved = stdout;
        stdout = mem;
        if (c)
                c->help();
        else
                usage(mem);
        stdout = saved;
        fclose(mem);
        put_as_plugin(text ? text : "", out);
        free(text);
}

/* The name this binary was run as, without its directory. */
static const char *base_name(const char *argv0)
{
        const char *slash = argv0 ? strrchr(argv0, '/') : NULL;
        return slash ? slash + 1 : argv0 ? argv0 : "";
}

/* Whether `--help` or `-h` is among the command's arguments (before
 * "--"), which every command answers with its help. */
static bool asks_help(int argc, char **argv)
{
        for (int i = 1; i < argc && strcmp(argv[i], "--") != 0; i++)
                if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0)
                        return true;
        return false;
}

static void help_help(void)
{
        printf("Usage: %s help [COMMAND]\n"
               "\n"
               "Prints what COMMAND does, its options and an example; the same as\n"
               "'%s COMMAND --help'. Without COMMAND, the list of commands.\n"
               "\n",
               cli_program(), cli_program());
        print_help(NULL, stdout);
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
        if (strcmp(base_name(argv[0]), CLI_PLUGIN_BINARY) == 0)
                cli_set_program(CLI_PLUGIN);
        if (argc < 2) {
                print_help(NULL, stderr);
                return 2;
        }
        const char *cmd = argv[1];
        if (strcmp(cmd, "--version") == 0 || strcmp(cmd, "version") == 0) {
                printf("spark-identity-webhook %s\n", WH_VERSION);
                return 0;
        }
        if (strcmp(cmd, "--help") == 0 || strcmp(cmd, "-h") == 0) {
                print_help(NULL, stdout);
                return 0;
        }
        if (strcmp(cmd, "help") == 0) {
                if (argc < 3) {
                        print_help(NULL, stdout);
                        return 0;
                }
                if (strcmp(argv[2], "help") == 0) {
                        help_help();
                        return 0;
                }
                const struct command *c = find(argv[2]);
                if (!c) {
                        fprintf(stderr, "%s: no command \"%s\"\n\n", cli_program(), argv[2]);
                        print_help(NULL, stderr);
                        return 2;
                }
                print_help(c, stdout);
                return 0;
        }
        const struct command *c = find(cmd);
        if (!c) {
                fprintf(stderr, "%s: no command \"%s\"\n\n", cli_program(), cmd);
                print_help(NULL, stderr);
                return 2;
        }
        if (strcmp(cli_program(), CLI_PROGRAM) != 0 && asks_help(argc - 1, argv + 1)) {
                print_help(c, stdout);   /* what the command would print, as the plugin's */
                return 0;
        }
        return c->run(argc - 1, argv + 1);
}
