/* Small helpers the subcommands share for their flags. */
#pragma once
#include <stdbool.h>

/* Parses a whole decimal number in [min, max] for `flag`. 0, or -EINVAL
 * after printing "CMD: FLAG ..." on stderr. */
int cli_uint(const char *cmd, const char *flag, const char *s, unsigned long long min,
             unsigned long long max, unsigned long long *ret);

/* Parses a byte size: a number with an optional K, M or G suffix (powers of
 * 1024), in [min, max]. Same error handling as cli_uint(). */
int cli_size(const char *cmd, const char *flag, const char *s, unsigned long long min,
             unsigned long long max, unsigned long long *ret);

/* Prints "CMD: MESSAGE (see 'spark-identity-webhook help CMD')" on stderr
 * and returns 2, the usage-error exit code. */
int cli_usage_error(const char *cmd, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
