/* `spark-identity-webhook certs`: a development CA and a serving certificate
 * for the webhook's Service, its renewal under the same CA, and the caBundle
 * for one CA or for a rollover from an old one. See cmd_certs_help(). */
#include "certs.h"
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

#define CERTS_ERR_MAX 512

/* The names certs_generate() writes, in its order; certs_renew() writes the
 * last RENEWED of them. */
static const char *const written[] = { "ca.crt", "ca.key", "tls.crt", "tls.key" };
#define N_WRITTEN (sizeof(written) / sizeof(written[0]))
#define RENEWED 2

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
               "Options (each also as --flag=value):\n"
               "  --service NAME     the Service in front of the webhook (a DNS-1123 label:\n"
               "                     lowercase letters, digits, '-'; at most 63)\n"
               "  --namespace NS     the Service's namespace (a DNS-1123 label)\n"
               "  --out DIR          where to write the files; created (0755) if missing\n"
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
              "Example, to run the server on this machine (make run) and call it with curl:\n"
              "  spark-identity-webhook certs --service spark-identity-webhook --namespace default \\\n"
              "      --out .dev/certs --ip 127.0.0.1 --dns localhost\n"
              "  curl --cacert .dev/certs/ca.crt https://localhost:PORT/PATH\n"
              "\n"
              "Example, in a cluster:\n"
              "  CA=$(spark-identity-webhook certs --service spark-identity-webhook \\\n"
              "      --namespace spark-webhook --out certs --print-ca-bundle)\n"
              "  kubectl -n spark-webhook create secret tls spark-identity-webhook-tls \\\n"
              "      --cert certs/tls.crt --key certs/tls.key\n"
              "  # then set caBundle: \"$CA\" in the MutatingWebhookConfiguration\n"
              "\n"
              "Renewing the serving certificate (the CA and so the caBundle stay the same):\n"
              "  spark-identity-webhook certs --service spark-identity-webhook \\\n"
              "      --namespace spark-webhook --out certs --renew\n"
              "  # then put the new certs/tls.crt and certs/tls.key into the Secret; the\n"
              "  # server serves them without a restart\n"
              "\n"
              "Rolling over to a new CA (well before the old one expires):\n"
              "  1. Make the new CA and pair in a new directory, and a caBundle of both CAs:\n"
              "       CA=$(spark-identity-webhook certs --service spark-identity-webhook \\\n"
              "           --namespace spark-webhook --out certs-new --print-ca-bundle \\\n"
              "           --previous-ca certs/ca.crt)\n"
              "  2. Set caBundle: \"$CA\" in the MutatingWebhookConfiguration; the API server\n"
              "     now trusts the serving certificate of either CA.\n"
              "  3. Switch the Secret to certs-new/tls.crt and certs-new/tls.key.\n"
              "  4. Later, once no replica serves the old pair, drop the old CA: set the\n"
              "     caBundle to $(base64 -w0 certs-new/ca.crt).\n"
              "\n"
              "Exit status: 0 when the files were written; 2 on a usage error or when they\n"
              "cannot be written (for example, they exist and --force was not given, or\n"
              "--renew finds no usable CA in DIR).\n",
              stdout);
}

static int usage_error(const char *what)
{
        fprintf(stderr, "certs: %s (see 'spark-identity-webhook help certs')\n", what);
        return 2;
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

/* Sets a flag that may be given once. */
static int set_once(const char **slot, const char *flag, const char *value)
{
        char msg[128];

        if (*slot) {
                snprintf(msg, sizeof(msg), "%s given more than once", flag);
                return usage_error(msg);
        }
        *slot = value;
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

int cmd_certs(int argc, char **argv)
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
        struct certs_request req = { .days = WH_CERT_DAYS_DEFAULT };
        const char *service = NULL, *namespace_ = NULL, *out_dir = NULL, *days = NULL, *previous_ca = NULL;
        /* Each --dns or --ip takes at least one argv slot, so argc bounds both. */
        const char **dns = calloc((size_t)argc + 1, sizeof(*dns));
        const char **ips = calloc((size_t)argc + 1, sizeof(*ips));
        bool print_bundle = false, renew = false;
        char err[CERTS_ERR_MAX], msg[CERTS_ERR_MAX], path[PATH_MAX], ca_path[PATH_MAX];
        char *bundle = NULL;
        int c, ret = 2;

        if (!dns || !ips) {
                fprintf(stderr, "certs: out of memory\n");
                goto out;
        }
        optind = 1;
        opterr = 0;
        while ((c = getopt_long(argc, argv, ":h", options, NULL)) != -1) {
                int r = 0;

                switch (c) {
                case OPT_SERVICE: r = set_once(&service, "--service", optarg); break;
                case OPT_NAMESPACE: r = set_once(&namespace_, "--namespace", optarg); break;
                case OPT_OUT: r = set_once(&out_dir, "--out", optarg); break;
                case OPT_DAYS: r = set_once(&days, "--days", optarg); break;
                case OPT_DNS: dns[req.n_dns++] = optarg; break;
                case OPT_IP: ips[req.n_ips++] = optarg; break;
                case OPT_FORCE: req.force = true; break;
                case OPT_PRINT_CA_BUNDLE: print_bundle = true; break;
                case OPT_RENEW: renew = true; break;
                case OPT_PREVIOUS_CA: r = set_once(&previous_ca, "--previous-ca", optarg); break;
                case 'h':
                        cmd_certs_help();
                        ret = 0;
                        goto out;
                case ':':
                        snprintf(msg, sizeof(msg), "%s needs a value", argv[optind - 1]);
                        ret = usage_error(msg);
                        goto out;
                default:
                        snprintf(msg, sizeof(msg), "unknown option '%s'", argv[optind - 1]);
                        ret = usage_error(msg);
                        goto out;
                }
                if (r != 0) {
                        ret = r;
                        goto out;
                }
        }
        if (optind < argc) {
                snprintf(msg, sizeof(msg), "unexpected argument '%s'", argv[optind]);
                ret = usage_error(msg);
                goto out;
        }
        if (!service) {
                ret = usage_error("--service is required");
                goto out;
        }
        if (!namespace_) {
                ret = usage_error("--namespace is required");
                goto out;
        }
        if (!out_dir) {
                ret = usage_error("--out is required");
                goto out;
        }
        if (!*out_dir) {
                ret = usage_error("--out must not be empty");
                goto out;
        }
        if (days && parse_days(days, &req.days) < 0) {
                snprintf(msg, sizeof(msg), "--days must be a whole number from 1 to %u, not '%s'", WH_CERT_DAYS_MAX,
                         days);
                ret = usage_error(msg);
                goto out;
        }

        if (renew && req.force) {
                ret = usage_error("--renew and --force cannot be used together: --renew keeps the CA and "
                                  "always replaces tls.crt and tls.key");
                goto out;
        }
        if (previous_ca && !print_bundle) {
                ret = usage_error("--previous-ca needs --print-ca-bundle");
                goto out;
        }
        if (previous_ca && !*previous_ca) {
                ret = usage_error("--previous-ca must not be empty");
                goto out;
        }
        if (out_path(out_dir, "ca.crt", ca_path, sizeof(ca_path)) < 0) {
                fprintf(stderr, "certs: path %s/ca.crt is too long\n", out_dir);
                goto out;
        }
        /* The previous CA is checked before anything is written, so that a
         * wrong path does not leave new files and no bundle. */
        if (previous_ca) {
                if (check_previous_is_elsewhere(previous_ca, ca_path) < 0)
                        goto out;
                if (certs_ca_bundle(&previous_ca, 1, &bundle, err, sizeof(err)) < 0) {
                        fprintf(stderr, "certs: --previous-ca: %s\n", err);
                        goto out;
                }
                free(bundle);
                bundle = NULL;
        }

        req.service = service;
        req.namespace_ = namespace_;
        req.out_dir = out_dir;
        req.dns = dns;
        req.ips = ips;
        if ((renew ? certs_renew(&req, err, sizeof(err)) : certs_generate(&req, err, sizeof(err))) < 0) {
                fprintf(stderr, "certs: %s\n", err);
                goto out;
        }
        /* certs_generate() and certs_renew() made these paths, so they fit. */
        for (size_t i = renew ? N_WRITTEN - RENEWED : 0; i < N_WRITTEN; i++)
                if (out_path(out_dir, written[i], path, sizeof(path)) == 0)
                        fprintf(stderr, "wrote %s\n", path);
        if (renew)
                fprintf(stderr, "kept %s and its key: the caBundle is unchanged\n", ca_path);
        if (print_bundle) {
                const char *const ca_paths[] = { ca_path, previous_ca };

                if (certs_ca_bundle(ca_paths, previous_ca ? 2 : 1, &bundle, err, sizeof(err)) < 0) {
                        fprintf(stderr, "certs: %s\n", err);
                        goto out;
                }
                if (printf("%s\n", bundle) < 0 || fflush(stdout) != 0) {
                        fprintf(stderr, "certs: cannot write the caBundle to stdout\n");
                        goto out;
                }
        }
        ret = 0;
out:
        free(bundle);
        free(dns);
        free(ips);
        return ret;
}
