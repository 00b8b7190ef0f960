/* Flag parsing helpers: see include/io/cli.h. */
#include "cli.h"

#include <errno.h>
#include <getopt.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int parse(const char *cmd, const char *flag, const char *s, unsigned long long min, unsigned long long max,
                 bool sized, unsigned long long *ret)
{
        char *end;
        errno = 0;
        unsigned long long v = strtoull(s, &end, 10);
        bool ok = errno == 0 && end != s && s[0] != '-';
        if (ok && sized && *end) {
                unsigned shift = 0;
                switch (*end++) {
                case 'k':
                case 'K': shift = 10; break;
                case 'm':
                case 'M': shift = 20; break;
                case 'g':
                case 'G': shift = 30; break;
                default: ok = false;
                }
                if (strcmp(end, "") == 0 || strcmp(end, "i") == 0 || strcmp(end, "iB") == 0 || strcmp(end, "B") == 0)
                        end += strlen(end);
                v = v > (max >> shift) ? max + 1 : v << shift;
        }
        if (!ok || *end) {
                fprintf(stderr, "%s: %s wants a %s, not \"%s\"\n", cmd, flag,
                        sized ? "size like 65536, 64K or 8M" : "whole number", s);
                return -EINVAL;
        }
        if (v < min || v > max) {
                fprintf(stderr, "%s: %s must be between %llu and %llu, not %s\n", cmd, flag, min, max, s);
                return -EINVAL;
        }
        *ret = v;
        return 0;
}

int cli_uint(const char *cmd, const char *flag, const char *s, unsigned long long min, unsigned long long max,
             unsigned long long *ret_value)
{
        return parse(cmd, flag, s, min, max, false, ret_value);
}

int cli_size(const char *cmd, const char *flag, const char *s, unsigned long long min, unsigned long long max,
             unsigned long long *ret_value)
{
        return parse(cmd, flag, s, min, max, true, ret_value);
}

static const char *program = CLI_PROGRAM;

const char *cli_program(void)
{
        return program;
}

void cli_set_program(const char *name)
{
        program = name;
}

int cli_usage_error(const char *cmd, const char *fmt, ...)
{
        va_list ap;
        fprintf(stderr, "%s: ", cmd);
        va_start(ap, fmt);
        vfprintf(stderr, fmt, ap);
        va_end(ap);
        fprintf(stderr, " (see '%s help %s')\n", program, cmd);
        return 2;
}

int cli_parse_kvs(const char *cmd, const char *flag, char *s, struct kv *kv, size_t *n)
{
        for (char *save = NULL, *item = strtok_r(s, ",", &save); item; item = strtok_r(NULL, ",", &save)) {
                char *eq = strchr(item, '=');
                if (!eq || eq == item)
                        return cli_usage_error(cmd, "%s wants key=value[,key=value...], not \"%s\"", flag, item);
                if (*n == CLI_KV_MAX)
                        return cli_usage_error(cmd, "%s: more than %u pairs", flag, CLI_KV_MAX);
                *eq = '\0';
                kv[(*n)++] = (struct kv){ item, eq + 1 };
        }
        return 0;
}

struct ns_known cli_ns_known(const struct cli_namespace *ns)
{
        return (struct ns_known){
                .state = NS_FOUND,
                .info = { .labels = ns->labels,
                          .n_labels = ns->n_labels,
                          .annotations = ns->annotations,
                          .n_annotations = ns->n_annotations },
        };
}

int cli_getopt_error(const char *cmd, int c, char *const argv[])
{
        const char *flag = optind > 0 ? argv[optind - 1] : "";

        if (c == ':')
                return cli_usage_error(cmd, "%s needs a value", flag);
        return cli_usage_error(cmd, "unknown option %s", flag);
}
