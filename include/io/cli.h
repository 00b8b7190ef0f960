/* Small helpers the subcommands share for their flags. */
#pragma once
#include <stdbool.h>
#include <stddef.h>

#include "admission.h"
#include "policy.h"

/* Labels or annotations given on a command line. */
#define CLI_KV_MAX 64u

/* A namespace as the command line describes it: its labels and annotations
 * (none when none are given). The strings point into argv. */
struct cli_namespace {
        struct kv labels[CLI_KV_MAX], annotations[CLI_KV_MAX];
        size_t n_labels, n_annotations;
};

/* Splits "k=v,k2=v2" in place into kv[*n...]. 0, or 2 after printing
 * "CMD: FLAG wants key=value..." on stderr. */
int cli_parse_kvs(const char *cmd, const char *flag, char *s, struct kv *kv, size_t *n);

/* What admission_handle() is to know of the review's namespace: `ns`, found.
 * It points into `ns`, which must outlive it. */
struct ns_known cli_ns_known(const struct cli_namespace *ns);

/* Parses a whole decimal number in [min, max] for `flag`. 0, or -EINVAL
 * after printing "CMD: FLAG ..." on stderr. */
int cli_uint(const char *cmd, const char *flag, const char *s, unsigned long long min, unsigned long long max,
             unsigned long long *ret_value);

/* Parses a byte size: a number with an optional K, M or G suffix (powers of
 * 1024), in [min, max]. Same error handling as cli_uint(). */
int cli_size(const char *cmd, const char *flag, const char *s, unsigned long long min, unsigned long long max,
             unsigned long long *ret_value);

/* The program's name in messages and help: CLI_PROGRAM, or CLI_PLUGIN when
 * the binary runs as the kubectl plugin (its name is CLI_PLUGIN_BINARY,
 * which kubectl runs for 'kubectl spark-identity'). cli_set_program() is
 * called once, by main(), before any thread starts; the name must outlive
 * the process. */
#define CLI_PROGRAM "spark-identity-webhook"
#define CLI_PLUGIN "kubectl spark-identity"
#define CLI_PLUGIN_BINARY "kubectl-spark_identity"
const char *cli_program(void);
void cli_set_program(const char *name);

/* Prints "CMD: MESSAGE (see 'PROGRAM help CMD')" on stderr, PROGRAM being
 * cli_program(), and returns 2, the usage-error exit code. */
int cli_usage_error(const char *cmd, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* The usage error for what getopt_long() returned when it found no option
 * the command knows, run with opterr = 0 and an optstring that starts with
 * ':': for ':' "FLAG needs a value", for anything else "unknown option
 * FLAG", FLAG being argv[optind - 1] as getopt_long() left optind. Prints
 * through cli_usage_error() and returns 2. */
int cli_getopt_error(const char *cmd, int c, char *const argv[]);
