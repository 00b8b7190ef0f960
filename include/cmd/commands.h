/* The subcommands of the spark-identity-webhook binary. Each parses its own
 * arguments (argv[0] is the subcommand's name), prints its own help, and
 * returns the process exit code: 0 success, 1 a finding or refusal the
 * command exists to report, 2 usage or runtime error. */
#pragma once

int cmd_serve(int argc, char **argv);
int cmd_certs(int argc, char **argv);
int cmd_mutate(int argc, char **argv);
int cmd_check_policy(int argc, char **argv);
int cmd_audit(int argc, char **argv);
int cmd_explain(int argc, char **argv);
int cmd_render(int argc, char **argv);
int cmd_test(int argc, char **argv);

/* Each subcommand's help text, for `--help` and `help NAME`. */
void cmd_serve_help(void);
void cmd_certs_help(void);
void cmd_mutate_help(void);
void cmd_check_policy_help(void);
void cmd_audit_help(void);
void cmd_explain_help(void);
void cmd_render_help(void);
void cmd_test_help(void);
