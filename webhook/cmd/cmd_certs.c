/* `spark-identity-webhook certs`: a development CA and a serving certificate
 * for the webhook's Service, its renewal under the same CA, and the caBundle
 * for one CA or for a rollover from an old one. See cmd_certs_help(). */
#include "certs.h"
#include "cli.h"
#include "commands.h"
#include "webhook_limits.h"

#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#define CMD "certs"
#define CERTS_ERR_MAX 512

/* The names certs_generate() writes, in its order; certs_renew() writes the
 * last RENEWED of them. */
static const char *const written[] = { "ca.crt", "ca.key", "tls.crt", "tls.key" };
#define N_WRITTEN (sizeof(written) / sizeof(written[0]))
#define RENEWED 2

/* Long: it is the help text, one printf() and one fputs() of it. */
void cmd_certs_help(void)
{
        printf("Usage: spark-identity-webhook certs --service NAME --namespace NS --out DIR\n"
               "           [--dns NAME]... [--ip ADDR]... [--days N] [--force | --renew]\n"
               "           [--print-ca-bundle [--previous-ca FILE]]\n"
               "\n"
               "Makes a private certificate authority (CA) and a serving certificate for the\n"
               "webhook's Service, signed by that CA (ECDSA P-256 keys, SHA-256 signatures).\n"
               "\n"
               "Files written to DIR:\n"
               "  ca.crt   The CA certificate. Its base64 is the caBundle of the webhook\n"
               "           configuration (webhooks[].clientConfig.caBundle): the API server\n"
               "           trusts the webhook because of it. --print-ca-bundle prints that value.\n"
               "  ca.key   The CA's private key (mode 0600). Nothing in the cluster needs it:\n"
               "           keep it private, outside the cluster. It is only for renewing\n"
               "           (--renew), that is, signing a new tls.crt under the same CA so the\n"
               "           caBundle can stay. (Running this command again without --renew\n"
               "           makes a new CA, and then the caBundle must be updated too.)\n"
               "  tls.crt  The serving certificate, and\n"
               "  tls.key  its private key (mode 0600). Both go into the kubernetes.io/tls\n"
               "           Secret that the webhook's pod mounts and the server serves.\n"
               "\n"
               "The serving certificate is valid for these names (subjectAltName), in order:\n"
               "  NAME, NAME.NS, NAME.NS.svc, NAME.NS.svc.cluster.local,\n"
               "  then every --dns, then every --ip.\n"
               "The API server calls the webhook at NAME.NS.svc, which is also the subject CN.\n"
               "\n"
               "Options (each also as --flag=value; given twice, a flag takes its last value):\n"
               "  --service NAME     the Service in front of the webhook (a DNS-1123 label:\n"
               "                     lowercase letters, digits, '-'; at most 63)\n"
               "  --namespace NS     the Service's namespace (a DNS-1123 label)\n"
               "  --out DIR          where to write the files; created (0755), with its parents,\n"
               "                     if missing\n"
               "  --dns NAME         one more DNS name; may be repeated; \"*.example.com\" works\n"
               "  --ip ADDR          one more IPv4 or IPv6 address; may be repeated\n"
               "  --days N           validity of the serving certificate, 1..%u (default %u);\n"
               "                     the CA is valid for %u days\n"
               "  --force            overwrite files that already exist in DIR\n"
               "  --renew            keep the CA in DIR (ca.crt and ca.key must be there, valid,\n"
               "                     and outlive --days) and replace only tls.crt and tls.key\n"
               "                     with a new key and certificate signed by it; not with --force\n"
               "  --print-ca-bundle  print the caBundle (base64 of ca.crt, one line) on stdout,\n"
               "                     and nothing else there\n"
               "  --previous-ca FILE with --print-ca-bundle: the caBundle holds DIR/ca.crt and\n"
               "                     then the certificates in FILE, for a CA rollover\n"
               "  -h, --help         this text\n"
               "\n",
               WH_CERT_DAYS_MAX, WH_CERT_DAYS_DEFAULT, WH_CA_DAYS);
        /* In two parts: C17 promises string literals of 4095 bytes only. */
        fputs("The files written are listed on stderr. Times start 5 minutes in the past so\n"
              "that a client whose clock is a little behind accepts them.\n"
              "\n"
              "Example, to run the server on this machine (what 'make run' does) and call it:\n"
              "  spark-identity-webhook certs --service spark-identity-webhook \\\n"
              "      --namespace spark-identity-system --out certs/dev --ip 127.0.0.1 --dns localhost\n"
              "  curl --cacert certs/dev/ca.crt https://localhost:8443/readyz\n"
              "\n"
              "Example, in a cluster (the names deploy/ uses):\n"
              "  CA=$(spark-identity-webhook certs --service spark-identity-webhook \\\n"
              "      --namespace spark-identity-system --out certs/cluster --print-ca-bundle)\n"
              "  kubectl -n spark-identity-system create secret tls spark-identity-webhook-tls \\\n"
              "      --cert certs/cluster/tls.crt --key certs/cluster/tls.key\n"
              "  # then set caBundle: \"$CA\" in the webhook configurations\n"
              "\n"
              "Renewing the serving certificate (the CA and so the caBundle stay the same):\n"
              "  spark-identity-webhook certs --service spark-identity-webhook \\\n"
              "      --namespace spark-identity-system --out certs/cluster --renew\n"
              "  # then put the new certs/cluster/tls.crt and tls.key into the Secret; the\n"
              "  # server serves them without a restart\n"
              "\n"
              "Rolling over to a new CA (well before the old one expires):\n"
              "  1. Make the new CA and pair in a new directory, and a caBundle of both CAs:\n"
              "       CA=$(spark-identity-webhook certs --service spark-identity-webhook \\\n"
              "           --namespace spark-identity-system --out certs/new --print-ca-bundle \\\n"
              "           --previous-ca certs/cluster/ca.crt)\n"
              "  2. Set caBundle: \"$CA\" in the webhook configurations; the API server\n"
              "     now trusts the serving certificate of either CA.\n"
              "  3. Switch the Secret to certs/new/tls.crt and certs/new/tls.key.\n"
              "  4. Later, once no replica serves the old pair, drop the old CA: set the\n"
              "     caBundle to $(base64 -w0 certs/new/ca.crt).\n"
              "\n"
              "Exit status: 0 when the files were written; 2 on a usage error or when they\n"
              "cannot be written (for example, they exist and --force was not given, or\n"
              "--renew finds no usable CA in DIR).\n",
              stdout);
}

/* DIR/NAME, without doubling a trailing slash. */
static int out_path(const char *dir, const char *name, char *buf, size_t len)
{
        size_t n = strlen(dir);
        int w = snprintf(buf, len, "%s%s%s", dir, n > 0 && dir[n - 1] == '/' ? "" : "/", name);

        return w < 0 || (size_t)w >= len ? -ENAMETOOLONG : 0;
}

/* Strict: digits only, no sign, no spaces, within 1..WH_CERT_DAYS_MAX. */
static int parse_days(const char *s, unsigned *ret)
{
        unsigned long v;
        char *end;

        if (!s || *s < '0' || *s > '9')
                return -EINVAL;
        errno = 0;
        v = strtoul(s, &end, 10);
        if (errno != 0 || *end != '\0' || v < 1 || v > WH_CERT_DAYS_MAX)
                return -EINVAL;
        *ret = (unsigned)v;
        return 0;
}

enum {
        OPT_SERVICE = 256,
        OPT_NAMESPACE,
        OPT_OUT,
        OPT_DNS,
        OPT_IP,
        OPT_DAYS,
        OPT_FORCE,
        OPT_PRINT_CA_BUNDLE,
        OPT_RENEW,
        OPT_PREVIOUS_CA,
};

/* What the command line asks for. The strings point into argv; dns and ips
 * are the caller's, argc + 1 slots each. */
struct certs_config {
        struct certs_request req;
        const char *days, *previous_ca;
        const char **dns, **ips;
        bool print_bundle, renew;
        char ca_path[PATH_MAX];       /* DIR/ca.crt, once validated */
};

/* One option into cfg. A flag given twice takes its last value, as in every
 * command; --dns and --ip add one name each. */
static void take_option(struct certs_config *cfg, int c, const char *value)
{
        switch (c) {
        case OPT_SERVICE: cfg->req.service = value; break;
        case OPT_NAMESPACE: cfg->req.namespace_ = value; break;
        case OPT_OUT: cfg->req.out_dir = value; break;
        case OPT_DAYS: cfg->days = value; break;
        case OPT_DNS: cfg->dns[cfg->req.n_dns++] = value; break;
        case OPT_IP: cfg->ips[cfg->req.n_ips++] = value; break;
        case OPT_FORCE: cfg->req.force = true; break;
        case OPT_PRINT_CA_BUNDLE: cfg->print_bundle = true; break;
        case OPT_RENEW: cfg->renew = true; break;
        case OPT_PREVIOUS_CA: cfg->previous_ca = value; break;
        default: break;
        }
}

/* The configuration step: argv into cfg. 0, 1 when --help was given (and
 * the help printed), or 2 after a usage error. */
static int parse_args(int argc, char **argv, struct certs_config *cfg)
{
        static const struct option options[] = {
                { "service", required_argument, NULL, OPT_SERVICE },
                { "namespace", required_argument, NULL, OPT_NAMESPACE },
                { "out", required_argument, NULL, OPT_OUT },
                { "dns", required_argument, NULL, OPT_DNS },
                { "ip", required_argument, NULL, OPT_IP },
                { "days", required_argument, NULL, OPT_DAYS },
                { "force", no_argument, NULL, OPT_FORCE },
                { "print-ca-bundle", no_argument, NULL, OPT_PRINT_CA_BUNDLE },
                { "renew", no_argument, NULL, OPT_RENEW },
                { "previous-ca", required_argument, NULL, OPT_PREVIOUS_CA },
                { "help", no_argument, NULL, 'h' },
                { 0 },
        };
        int c;

        optind = 1;
        opterr = 0;
        while ((c = getopt_long(argc, argv, ":h", options, NULL)) != -1) {
                if (c == 'h') {
                        cmd_certs_help();
                        return 1;
                }
                if (c < OPT_SERVICE)
                        return cli_getopt_error(CMD, c, argv);
                take_option(cfg, c, optarg);
        }
        if (optind < argc)
                return cli_usage_error(CMD, "unexpected \"%s\"", argv[optind]);
        return 0;
}

/* The flags alone, before any file is looked at. 0, or 2 after a usage
 * error. */
static int check_flags(struct certs_config *cfg)
{
        const char *missing = !cfg->req.service      ? "--service"
                              : !cfg->req.namespace_ ? "--namespace"
                              : !cfg->req.out_dir    ? "--out"
                                                     : NULL;

        if (missing) {
                /* 2 itself, not what cli_usage_error() returns, so that the
                 * analyzer (which does not see that function) knows the
                 * required flags are set when this returns 0. */
                cli_usage_error(CMD, "%s is required", missing);
                return 2;
        }
        if (!*cfg->req.out_dir)
                return cli_usage_error(CMD, "--out must not be empty");
        if (cfg->days && parse_days(cfg->days, &cfg->req.days) < 0)
                return cli_usage_error(CMD, "--days must be a whole number from 1 to %u, not \"%s\"", WH_CERT_DAYS_MAX,
                                       cfg->days);
        if (cfg->renew && cfg->req.force)
                return cli_usage_error(CMD, "--renew and --force cannot be used together: --renew keeps the CA and "
                                            "always replaces tls.crt and tls.key");
        if (cfg->previous_ca && !cfg->print_bundle)
                return cli_usage_error(CMD, "--previous-ca needs --print-ca-bundle");
        if (cfg->previous_ca && !*cfg->previous_ca)
                return cli_usage_error(CMD, "--previous-ca must not be empty");
        return 0;
}

/* Refuses --previous-ca naming DIR/ca.crt itself: the bundle would hold the
 * new CA twice and not the old one (with --force, the old file is replaced
 * before the bundle is read). */
static int check_previous_is_elsewhere(const char *previous, const char *ca_path)
{
        struct stat a, b;

        if (stat(previous, &a) == 0 && stat(ca_path, &b) == 0 && a.st_dev == b.st_dev && a.st_ino == b.st_ino) {
                fprintf(stderr,
                        "certs: --previous-ca %s is %s itself; give the old CA's file, and make the new CA in another "
                        "--out directory\n",
                        previous, ca_path);
                return -EINVAL;
        }
        return 0;
}

/* The validation step: the flags, then the paths and the previous CA, all
 * before anything is written, so that a wrong path does not leave new files
 * and no bundle. 0, or 2 after printing why. */
static int validate(struct certs_config *cfg)
{
        char err[CERTS_ERR_MAX];
        char *bundle = NULL;
        int r = check_flags(cfg);

        if (r != 0)
                return r;
        if (out_path(cfg->req.out_dir, "ca.crt", cfg->ca_path, sizeof(cfg->ca_path)) < 0) {
                fprintf(stderr, "certs: path %s/ca.crt is too long\n", cfg->req.out_dir);
                return 2;
        }
        if (!cfg->previous_ca)
                return 0;
        if (check_previous_is_elsewhere(cfg->previous_ca, cfg->ca_path) < 0)
                return 2;
        if (certs_ca_bundle(&cfg->previous_ca, 1, &bundle, err, sizeof(err)) < 0) {
                fprintf(stderr, "certs: --previous-ca: %s\n", err);
                return 2;
        }
        free(bundle);
        return 0;
}

/* The action: the files written (or the pair renewed) and listed on stderr,
 * then the caBundle on stdout when asked for. 0, or 2 after printing why. */
static int run(const struct certs_config *cfg)
{
        char err[CERTS_ERR_MAX], path[PATH_MAX];
        char *bundle = NULL;
        int ret = 2;

        if ((cfg->renew ? certs_renew(&cfg->req, err, sizeof(err)) : certs_generate(&cfg->req, err, sizeof(err))) < 0) {
                fprintf(stderr, "certs: %s\n", err);
                return 2;
        }
        /* certs_generate() and certs_renew() made these paths, so they fit. */
        for (size_t i = cfg->renew ? N_WRITTEN - RENEWED : 0; i < N_WRITTEN; i++)
                if (out_path(cfg->req.out_dir, written[i], path, sizeof(path)) == 0)
                        fprintf(stderr, "wrote %s\n", path);
        if (cfg->renew)
                fprintf(stderr, "kept %s and its key: the caBundle is unchanged\n", cfg->ca_path);
        if (!cfg->print_bundle)
                return 0;

        const char *const ca_paths[] = { cfg->ca_path, cfg->previous_ca };

        if (certs_ca_bundle(ca_paths, cfg->previous_ca ? 2 : 1, &bundle, err, sizeof(err)) < 0)
                fprintf(stderr, "certs: %s\n", err);
        else if (printf("%s\n", bundle) < 0 || fflush(stdout) != 0)
                fprintf(stderr, "certs: cannot write the caBundle to stdout\n");
        else
                ret = 0;
        free(bundle);
        return ret;
}

int cmd_certs(int argc, char **argv)
{
        struct certs_config cfg = { .req.days = WH_CERT_DAYS_DEFAULT };
        int ret = 2;

        /* Each --dns or --ip takes at least one argv slot, so argc bounds both. */
        cfg.dns = calloc((size_t)argc + 1, sizeof(*cfg.dns));
        cfg.ips = calloc((size_t)argc + 1, sizeof(*cfg.ips));
        if (!cfg.dns || !cfg.ips) {
                fprintf(stderr, "certs: out of memory\n");
                goto out;
        }
        cfg.req.dns = cfg.dns;
        cfg.req.ips = cfg.ips;
        ret = parse_args(argc, argv, &cfg);
        if (ret == 1)
                ret = 0;
        else if (ret == 0 && (ret = validate(&cfg)) == 0)
                ret = run(&cfg);
out:
        free(cfg.dns);
        free(cfg.ips);
        return ret;
}
