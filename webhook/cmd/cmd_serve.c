/* `serve`: the admission webhook itself. Loads the policy and the serving
 * pair, starts the HTTPS server, logs every decision, reloads the policy
 * when its file changes or on SIGHUP, and stops on SIGTERM or SIGINT. */
#include <errno.h>
#include <malloc.h>
#include <sys/resource.h>
#include <getopt.h>
#include <limits.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/inotify.h>
#include <sys/signalfd.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "admission.h"
#include "arena.h"
#include "budget.h"
#include "cli.h"
#include "commands.h"
#include "fileio.h"
#include "kube.h"
#include "nscache.h"
#include "log.h"
#include "metrics.h"
#include "policy_file.h"
#include "server.h"
#include "snapshot.h"
#include "tls_pair.h"
#include "webhook_limits.h"

#define CMD "serve"
#define DEFAULT_LISTEN "0.0.0.0:8443"
#include "serve.h"

/* Long: it is the help text, written as it reads. */
void cmd_serve_help(void)
{
        /* Longer than a function should be: it is the help text, one screen
         * read from top to bottom, and reads best whole. */
        printf("Usage: spark-identity-webhook serve --policy FILE --tls-cert FILE --tls-key FILE [options]\n"
               "\n"
               "Serves the admission webhooks over HTTPS:\n"
               "  POST /mutate   AdmissionReview admission.k8s.io/v1 or v1beta1: Spark pods get\n"
               "                 their settings on CREATE; identity claims (pod CREATE and UPDATE)\n"
               "                 and namespace grant keys are judged\n"
               "  POST /validate the same judgement, never a patch (a validating webhook, which\n"
               "                 runs after every mutating one)\n"
               "  POST /validate-policy  the policy's own ConfigMap: refused (422) when its key named\n"
               "                 like the --policy file holds a policy that does not load\n"
               "  GET  /healthz  the process is alive\n"
               "  GET  /readyz   the policy is loaded and the certificate is valid; says when a\n"
               "                 reload was refused (policyReloadFailing, policyRefused)\n"
               "  GET  /metrics  Prometheus metrics\n"
               "\n"
               "Required:\n"
               "  --policy FILE          the policy (YAML or JSON; see 'check-policy'). Reloaded when\n"
               "                         the file changes (a ConfigMap mount swaps a symlink) and on\n"
               "                         SIGHUP; an invalid new policy is logged and the old one kept.\n"
               "  --tls-cert FILE        serving certificate chain, PEM (tls.crt of a kubernetes.io/tls\n"
               "                         Secret, or from 'spark-identity-webhook certs')\n"
               "  --tls-key FILE         its private key, PEM (tls.key)\n"
               "\n"
               "Options (defaults in brackets):\n"
               "  --listen ADDR:PORT     where to listen [" DEFAULT_LISTEN "]; [::]:8443 for IPv6\n"
               "  --max-body SIZE        largest request body; larger ones get 413 before they are\n"
               "                         read [%u: the largest review the API server can send for\n"
               "                         a pod] (K, M suffixes allowed)\n"
               "  --request-memory SIZE  memory for the bodies and parsed reviews of all requests\n"
               "                         in flight together [%u]; past it, 503 (a quarter is kept for\n"
               "                         reviews under %u bytes). One review's parse may take %u times\n"
               "                         its body (413 past that). Fit it to the container's limit:\n"
               "                         about 30 MiB of the server's own, plus this, plus headroom\n",
               WH_MAX_BODY_BYTES, WH_REQUEST_MEMORY_BYTES, WH_BODY_SMALL_BYTES, WH_PARSE_FACTOR);
        printf("  --max-connections N    simultaneous connections [%u]\n"
               "  --max-connections-per-ip N  from one client address [%u]\n"
               "  --connection-memory SIZE  per-connection memory for headers and reads [%u]\n"
               "  --idle-timeout SECONDS close keep-alive connections idle this long [%u]\n"
               "  --header-timeout SECONDS  from accept to the end of the request headers, TLS\n"
               "                         handshake included, absolute: bytes trickled in do not\n"
               "                         extend it [%u]\n"
               "  --client-ca FILE       mutual TLS: every client must present a certificate that\n"
               "                         chains to these CAs (PEM), checked in the handshake; the\n"
               "                         API server presents one through its admission\n"
               "                         configuration (see README). Probes then go to the plain\n"
               "                         --metrics-listen port, which serves /healthz and /readyz.\n"
               "  --client-cn NAME       with --client-ca: the certificate's subject CN must be\n"
               "                         NAME (repeat for several)\n"
               "  --body-timeout SECONDS from the headers to the end of the body, absolute; the API\n"
               "                         server's ?timeout= may shorten it [%u]. At the connection\n"
               "                         limit a new connection makes room: one still in its\n"
               "                         handshake or headers gives way first, then an idle one\n"
               "  --threads N            worker threads; 0 = one per core [0]\n"
               "  --tls-min-version V    1.2 or 1.3 [1.2]; AEAD ciphers with ECDHE only\n"
               "  --kubeconfig FILE      read namespaces (labels, annotations) through this\n"
               "                         kubeconfig's current context. In a pod, the service\n"
               "                         account is used without this flag.\n"
               "  --log-level LEVEL      debug | info | warn | error [info]\n"
               "  --metrics-listen ADDR:PORT  also serve GET /metrics (and /healthz, /readyz)\n"
               "                         over plain HTTP there; /metrics is always on the\n"
               "                         HTTPS port too\n"
               "  --shutdown-delay SECONDS  on SIGTERM, keep serving this long with /readyz\n"
               "                         failing, so that endpoints stop routing here first [0;\n"
               "                         deploy/ uses 5]\n"
               "  --shutdown-grace SECONDS  then refuse new connections and give requests in\n"
               "                         flight this long to finish [20]\n"
               "  --audit-log FILE       append the decision lines to FILE instead of stderr;\n"
               "                         reopened when renamed (logrotate) and on SIGHUP\n"
               "\n",
               WH_MAX_CONNECTIONS, WH_MAX_CONNECTIONS_PER_IP, WH_CONNECTION_MEMORY_BYTES, WH_IDLE_TIMEOUT_S,
               WH_HEADER_TIMEOUT_S, WH_BODY_TIMEOUT_S);
        printf("Namespaces: when the server can reach the Kubernetes API (in a pod, or with\n"
               "--kubeconfig) it lists and watches namespaces, and /readyz waits for the first\n"
               "list. A policy with selectors or namespaceAnnotations needs that. The\n"
               "environment variable SPARK_IDENTITY_WEBHOOK_SA_DIR replaces\n"
               "" KUBE_SA_DIR " (for tests).\n"
               "\n"
               "Certificates: when tls.crt or tls.key change (a Secret volume swaps a symlink;\n"
               "cert-manager renews) and on SIGHUP, new handshakes get the new pair without a\n"
               "restart; open connections keep theirs. A pair that does not match or has\n"
               "expired is refused and logged, and the old one keeps serving. /readyz fails\n"
               "once the certificate has expired; the days left are logged at every load.\n"
               "\n"
               "Logs are JSON lines on stderr, one per admission decision. SIGTERM or SIGINT stop.\n"
               "The API server's ?timeout= on /mutate is honoured (at most %u ms).\n"
               "\n"
               "Example (what 'make run' does):\n"
               "  spark-identity-webhook certs --service spark-identity-webhook --namespace spark-identity-system \\\n"
               "      --ip 127.0.0.1 --dns localhost --out certs/dev\n"
               "  spark-identity-webhook serve --policy deploy/policy.yaml \\\n"
               "      --tls-cert certs/dev/tls.crt --tls-key certs/dev/tls.key --listen 127.0.0.1:8443\n",
               WH_REQUEST_TIMEOUT_MAX_MS);
}

static void free_policy(void *p)
{
        policy_free(p);
}

/* Every connection is a descriptor: make sure the soft limit (often 1024)
 * is not what caps --max-connections, up to the hard limit. */
static void raise_fd_limit(unsigned max_connections)
{
        struct rlimit rl;
        rlim_t want = (rlim_t)max_connections * 2u + WH_FD_HEADROOM;
        if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < want) {
                rl.rlim_cur = rl.rlim_max == RLIM_INFINITY || rl.rlim_max > want ? want : rl.rlim_max;
                setrlimit(RLIMIT_NOFILE, &rl);
        }
}

/* SIGTERM: readiness is already false; keep serving for `delay_s` while
 * endpoints stop routing here, then refuse new connections and let the
 * requests in flight finish, for at most `grace_s`. */
static void shut_down(struct server *server, unsigned delay_s, unsigned grace_s)
{
        server_close_connections(server);
        if (delay_s)
                nanosleep(&(struct timespec){ .tv_sec = delay_s }, NULL);
        unsigned left = server_drain(server, grace_s * 1000u);
        if (left) {
                struct log_line l;
                log_begin(&l, LOG_WARN, "connections still open at the end of the grace period; closing them");
                log_int(&l, "connections", left);
                log_end(&l);
        }
}

/* After logrotate moved the audit log away (or on SIGHUP), writes go to a
 * new file at its path. */
static void reopen_audit_log(bool forced)
{
        char err[512];
        if (log_reopen_audit(forced, err, sizeof err) < 0)
                log_message(LOG_ERROR, "audit log not reopened; writing to the old file", err);
}

static void log_policy(const char *msg, const struct policy *p, const char *path)
{
        struct log_line l;
        log_begin(&l, LOG_INFO, msg);
        log_str(&l, "file", path);
        log_str(&l, "sha256", policy_sha256(p));
        log_int(&l, "namespaces", (long long)policy_rule_count(p));
        log_end(&l);
}

/* Whether two stats (following symlinks) describe the same file content. */
static bool same_file(const struct stat *a, const struct stat *b)
{
        return a->st_dev == b->st_dev && a->st_ino == b->st_ino && a->st_size == b->st_size &&
               a->st_mtim.tv_sec == b->st_mtim.tv_sec && a->st_mtim.tv_nsec == b->st_mtim.tv_nsec;
}

static void log_certificate(const char *msg, const struct serve *sv, const struct tls_pair_info *info)
{
        char when[32];
        struct tm tm;
        gmtime_r(&info->not_after, &tm);
        strftime(when, sizeof when, "%Y-%m-%dT%H:%M:%SZ", &tm);
        struct log_line l;
        log_begin(&l, LOG_INFO, msg);
        log_str(&l, "file", sv->cert_path);
        log_str(&l, "serial", info->serial);
        log_str(&l, "subject", info->subject);
        log_str(&l, "notAfter", when);
        log_int(&l, "daysLeft", (long long)(info->not_after - time(NULL)) / 86400);
        log_end(&l);
}

/* A reload refused (`problems`: the first line is kept for /readyz) or a
 * policy in force that loaded (`problems` NULL): what /readyz and /metrics
 * say of the reloads. */
static void note_reload(struct serve *sv, const char *problems)
{
        pthread_mutex_lock(&sv->reload_lock);
        if (problems) {
                size_t n = strcspn(problems, "\n");
                snprintf(sv->reload_refused, sizeof sv->reload_refused, "%.*s", (int)n, problems);
        } else
                sv->reload_refused[0] = '\0';
        atomic_store(&sv->reload_failing, problems != NULL);
        if (!problems)
                atomic_store(&sv->policy_loaded_at, (long long)time(NULL));
        pthread_mutex_unlock(&sv->reload_lock);
}

/* Loads the policy file again if it changed (or always, when forced). */
static void maybe_reload_policy(struct serve *sv, bool forced)
{
        struct stat st;
        if (stat(sv->policy_path, &st) < 0) {
                if (forced)
                        log_message(LOG_ERROR, "policy reload failed; the old policy keeps serving", strerror(errno));
                return;
        }
        if (same_file(&st, &sv->policy_stat) && !forced)
                return;

        struct buf errors;
        struct policy *next = NULL;
        buf_init(&errors, WH_POLICY_ERRORS_MAX_BYTES);
        int r = policy_file_load(sv->policy_path, &next, &errors);
        sv->policy_stat = st;   /* a broken file is reported once, not at every poll */
        if (r < 0) {
                log_message(LOG_ERROR, "policy reload refused; the old policy keeps serving",
                            errors.data ? errors.data : "");
                metrics_policy_reload(false);
                note_reload(sv, errors.data ? errors.data : "the policy does not load");
                buf_free(&errors);
                return;
        }
        buf_free(&errors);
        if (policy_uses_namespaces(next) && !sv->namespaces) {
                static const char why[] = "the new policy reads namespaces (selectors or namespaceAnnotations), "
                                          "and the server has no Kubernetes API to read them from";
                log_message(LOG_ERROR, "policy reload refused; the old policy keeps serving", why);
                metrics_policy_reload(false);
                note_reload(sv, why);
                policy_free(next);
                return;
        }
        unsigned token;
        const struct policy *cur = snapshot_acquire(sv->policy, &token);
        bool unchanged = cur && strcmp(policy_sha256(cur), policy_sha256(next)) == 0;
        snapshot_release(sv->policy, token);
        note_reload(sv, NULL);   /* it loads: a refusal before it no longer stands */
        if (unchanged) {
                policy_free(next);
                if (forced)
                        log_message(LOG_INFO, "policy reloaded, unchanged", NULL);
                return;
        }
        log_policy("policy reloaded", next, sv->policy_path);
        snapshot_swap(sv->policy, next);
        metrics_policy_reload(true);
}

/* Loads the serving pair again if either file changed (or always, when
 * forced). A pair that does not load is refused and logged; the old one
 * keeps serving. */
static void maybe_reload_certificate(struct serve *sv, bool forced)
{
        struct stat cs, ks;
        if (stat(sv->cert_path, &cs) < 0 || stat(sv->key_path, &ks) < 0) {
                if (forced)
                        log_message(LOG_ERROR, "certificate reload failed; the old pair keeps serving",
                                    strerror(errno));
                return;
        }
        if (same_file(&cs, &sv->cert_stat) && same_file(&ks, &sv->key_stat) && !forced)
                return;
        sv->cert_stat = cs;
        sv->key_stat = ks;

        char err[512];
        struct tls_pair pair;
        int r = tls_pair_read(sv->cert_path, sv->key_path, &pair, err, sizeof err);
        if (r == 0) {
                /* The bytes just checked, not the files again: they may have
                 * changed meanwhile. */
                r = server_set_certificate(sv->server, pair.cert_pem.data, pair.key_pem.data, err, sizeof err);
                if (r == 0) {
                        atomic_store(&sv->cert_not_after, (long long)pair.info.not_after);
                        log_certificate("certificate reloaded", sv, &pair.info);
                }
                tls_pair_free(&pair);
        }
        metrics_certificate_reload(r == 0);
        if (r < 0)
                log_message(LOG_ERROR, "certificate reload refused; the old pair keeps serving", err);
}

/* Watches the directories of the policy, of the serving pair and of the
 * audit log: editors, ConfigMap and Secret updates (a kubelet volume swaps
 * its ..data symlink) and logrotate (moves the log away, creates a new one)
 * all end in an event there. Never IN_MODIFY: every decision line written
 * to the audit log would wake this loop (5,700 times a second at 6,400
 * requests/s, 18% of a core in all), and since a watch is per directory and
 * the log may share one with the policy, no watch may ask for it. A file
 * written in place ends with IN_CLOSE_WRITE; a writer that keeps its file
 * open is seen by the poll. Returns the descriptor, or a negative errno. */
static int watch_dirs(const char *const *paths, size_t n)
{
        int fd = inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
        if (fd < 0)
                return -errno;
        for (size_t i = 0; i < n; i++) {
                char dir[PATH_MAX];
                snprintf(dir, sizeof dir, "%s", paths[i]);
                char *slash = strrchr(dir, '/');
                if (!slash)
                        snprintf(dir, sizeof dir, ".");
                else if (slash == dir)
                        dir[1] = '\0';
                else
                        *slash = '\0';
                /* Watching a directory twice returns the same watch. */
                if (inotify_add_watch(fd, dir,
                                      IN_CLOSE_WRITE | IN_MOVED_TO | IN_MOVED_FROM | IN_CREATE | IN_DELETE |
                                              IN_ATTRIB) < 0) {
                        int e = errno;
                        close(fd);
                        return -e;
                }
        }
        return fd;
}

/* The command line, parsed. */
struct serve_config {
        struct server_options opt;
        const char *policy_path, *cert_path, *key_path;
        const char *kubeconfig, *metrics_listen, *audit_log, *client_ca;
        const char *client_cns[WH_MAX_CLIENT_CNS];
        size_t n_client_cns;
        unsigned shutdown_delay_s, shutdown_grace_s;
        size_t request_memory;
};

/* What serve_start() has started; serve_stop() releases all of it, in the
 * reverse order, whether the start got to the end or not. */
struct serve_run {
        struct timespec t0;             /* when the start began */
        struct serve sv;                /* its policy snapshot and namespace cache */
        struct policy *policy;          /* loaded, until the snapshot owns it */
        struct tls_pair pair;           /* the serving pair, until the server has its copy */
        struct buf client_ca_pem;       /* the client CAs, likewise */
        struct tls_pair_info cert_info; /* of the pair first served */
        struct kube *kube;
        int sfd, ifd;                   /* signalfd, inotify; -1 when not open */
        int ifd_error;                  /* why there is no inotify descriptor (an errno) */
        struct server *server, *metrics_server;
};

/* Not an option of this command's own: keep parsing. */
#define OPT_NEXT (-1)

/* The options that shape the HTTPS server. OPT_NEXT, or the exit status. */
static int server_option(int c, const char *arg, struct serve_config *cfg)
{
        struct server_options *opt = &cfg->opt;
        unsigned long long v;
        switch (c) {
        case 'V':
                if (strcmp(arg, "1.2") != 0 && strcmp(arg, "1.3") != 0)
                        return cli_usage_error(CMD, "--tls-min-version is 1.2 or 1.3, not \"%s\"", arg);
                opt->tls13_only = strcmp(arg, "1.3") == 0;
                return OPT_NEXT;
        case 'l': opt->listen = arg; return OPT_NEXT;
        case 'B':
                if (cli_size(CMD, "--max-body", arg, 1024, 1ull << 30, &v) < 0)
                        return 2;
                opt->max_body = v;
                return OPT_NEXT;
        case 'R':
                if (cli_size(CMD, "--request-memory", arg, WH_REQUEST_MEMORY_MIN_BYTES, 1ull << 40, &v) < 0)
                        return 2;
                cfg->request_memory = v;
                return OPT_NEXT;
        case 'C':
                if (cli_uint(CMD, "--max-connections", arg, 1, 1u << 20, &v) < 0)
                        return 2;
                opt->max_connections = (unsigned)v;
                return OPT_NEXT;
        case 'I':
                if (cli_uint(CMD, "--max-connections-per-ip", arg, 1, 1u << 20, &v) < 0)
                        return 2;
                opt->max_connections_per_ip = (unsigned)v;
                return OPT_NEXT;
        case 'M':
                if (cli_size(CMD, "--connection-memory", arg, 4096, 16u << 20, &v) < 0)
                        return 2;
                opt->connection_memory = (unsigned)v;
                return OPT_NEXT;
        case 'T':
                if (cli_uint(CMD, "--idle-timeout", arg, 1, 3600, &v) < 0)
                        return 2;
                opt->idle_timeout_s = (unsigned)v;
                return OPT_NEXT;
        case 'H':
                if (cli_uint(CMD, "--header-timeout", arg, 1, 600, &v) < 0)
                        return 2;
                opt->header_timeout_ms = (unsigned)v * 1000u;
                return OPT_NEXT;
        case 'Y':
                if (cli_uint(CMD, "--body-timeout", arg, 1, 600, &v) < 0)
                        return 2;
                opt->body_timeout_ms = (unsigned)v * 1000u;
                return OPT_NEXT;
        case 't':
                if (cli_uint(CMD, "--threads", arg, 0, WH_MAX_THREADS, &v) < 0)
                        return 2;
                opt->threads = (unsigned)v;
                return OPT_NEXT;
        default: return OPT_NEXT;
        }
}

static int log_level_option(const char *arg)
{
        static const char *const levels[] = { "debug", "info", "warn", "error" };
        for (int i = 0; i < 4; i++)
                if (strcmp(arg, levels[i]) == 0) {
                        log_set_level((enum log_level)i);
                        return OPT_NEXT;
                }
        return cli_usage_error(CMD, "--log-level is debug, info, warn or error");
}

/* One option of getopt_long()'s. OPT_NEXT, or the exit status. */
static int serve_option(int c, char **argv, struct serve_config *cfg)
{
        char err[512] = "";
        unsigned long long v;
        switch (c) {
        case 'p': cfg->policy_path = optarg; return OPT_NEXT;
        case 'K': cfg->kubeconfig = optarg; return OPT_NEXT;
        case 'D':
                if (cli_uint(CMD, "--shutdown-delay", optarg, 0, 600, &v) < 0)
                        return 2;
                cfg->shutdown_delay_s = (unsigned)v;
                return OPT_NEXT;
        case 'G':
                if (cli_uint(CMD, "--shutdown-grace", optarg, 0, 600, &v) < 0)
                        return 2;
                cfg->shutdown_grace_s = (unsigned)v;
                return OPT_NEXT;
        case 'm':
                if (server_check_listen(optarg, err, sizeof err) < 0)
                        return cli_usage_error(CMD, "--metrics-listen: %s", err);
                cfg->metrics_listen = optarg;
                return OPT_NEXT;
        case 'A': cfg->audit_log = optarg; return OPT_NEXT; /* opened once the flags are valid */
        case 'c': cfg->cert_path = optarg; return OPT_NEXT;
        case 'k': cfg->key_path = optarg; return OPT_NEXT;
        case 'a': cfg->client_ca = optarg; return OPT_NEXT;
        case 'n':
                if (cfg->n_client_cns == WH_MAX_CLIENT_CNS)
                        return cli_usage_error(CMD, "--client-cn: at most %u", WH_MAX_CLIENT_CNS);
                if (!*optarg)
                        return cli_usage_error(CMD, "--client-cn needs a name");
                cfg->client_cns[cfg->n_client_cns++] = optarg;
                return OPT_NEXT;
        case 'V':
        case 'l':
        case 'B':
        case 'R':
        case 'C':
        case 'I':
        case 'M':
        case 'T':
        case 'H':
        case 'Y':
        case 't': return server_option(c, optarg, cfg);
        case 'L': return log_level_option(optarg);
        case 'h': cmd_serve_help(); return 0;
        case ':':
        default: return cli_getopt_error(CMD, c, argv);
        }
}

/* Parses the command line into `cfg`: true to serve, else false and the
 * exit status in *ret_status. */
static bool serve_configure(int argc, char **argv, struct serve_config *cfg, int *ret_status)
{
        static const struct option longopts[] = {
                { "policy", required_argument, NULL, 'p' },
                { "tls-cert", required_argument, NULL, 'c' },
                { "tls-key", required_argument, NULL, 'k' },
                { "listen", required_argument, NULL, 'l' },
                { "max-body", required_argument, NULL, 'B' },
                { "max-connections", required_argument, NULL, 'C' },
                { "max-connections-per-ip", required_argument, NULL, 'I' },
                { "connection-memory", required_argument, NULL, 'M' },
                { "idle-timeout", required_argument, NULL, 'T' },
                { "threads", required_argument, NULL, 't' },
                { "log-level", required_argument, NULL, 'L' },
                { "kubeconfig", required_argument, NULL, 'K' },
                { "tls-min-version", required_argument, NULL, 'V' },
                { "audit-log", required_argument, NULL, 'A' },
                { "metrics-listen", required_argument, NULL, 'm' },
                { "shutdown-delay", required_argument, NULL, 'D' },
                { "shutdown-grace", required_argument, NULL, 'G' },
                { "request-memory", required_argument, NULL, 'R' },
                { "header-timeout", required_argument, NULL, 'H' },
                { "client-ca", required_argument, NULL, 'a' },
                { "client-cn", required_argument, NULL, 'n' },
                { "body-timeout", required_argument, NULL, 'Y' },
                { "help", no_argument, NULL, 'h' },
                { 0 },
        };
        char err[512] = "";
        int c;

        optind = 1;
        opterr = 0;
        while ((c = getopt_long(argc, argv, ":h", longopts, NULL)) != -1) {
                int r = serve_option(c, argv, cfg);
                if (r != OPT_NEXT) {
                        *ret_status = r;
                        return false;
                }
        }
        if (optind < argc)
                *ret_status = cli_usage_error(CMD, "unexpected argument \"%s\"", argv[optind]);
        else if (!cfg->policy_path)
                *ret_status = cli_usage_error(CMD, "--policy is required");
        else if (!cfg->cert_path || !cfg->key_path)
                *ret_status = cli_usage_error(CMD, "--tls-cert and --tls-key are required");
        else if (server_check_listen(cfg->opt.listen, err, sizeof err) < 0)
                *ret_status = cli_usage_error(CMD, "%s", err);
        else if (cfg->audit_log && log_set_audit_file(cfg->audit_log, err, sizeof err) < 0) {
                fprintf(stderr, CMD ": %s\n", err);
                *ret_status = 2;
        } else
                return true;
        return false;
}

/* The policy, then the serving pair (read once: the server gets the bytes
 * checked) and the client CAs. 0, or the exit status. */
static int start_policy_and_pair(struct serve_config *cfg, struct serve_run *run)
{
        struct serve *sv = &run->sv;
        char err[512] = "";
        struct buf errors;
        buf_init(&errors, WH_POLICY_ERRORS_MAX_BYTES);
        int r = stat(cfg->policy_path, &sv->policy_stat) < 0 ? -errno : 0;
        if (r == 0)
                r = policy_file_load(cfg->policy_path, &run->policy, &errors);
        if (r < 0) {
                if (!errors.len)
                        buf_printf(&errors, "cannot read %s: %s\n", cfg->policy_path, strerror(-r));
                fprintf(stderr, CMD ": the policy is not valid:\n%s", errors.data);
                buf_free(&errors);
                return 2;
        }
        buf_free(&errors);

        r = stat(cfg->cert_path, &sv->cert_stat) < 0 || stat(cfg->key_path, &sv->key_stat) < 0 ? -errno : 0;
        if (r == 0)
                r = tls_pair_read(cfg->cert_path, cfg->key_path, &run->pair, err, sizeof err);
        if (r < 0) {
                if (!err[0])
                        snprintf(err, sizeof err, "cannot read %s or %s: %s", cfg->cert_path, cfg->key_path,
                                 strerror(-r));
                fprintf(stderr, CMD ": %s\n", err);
                return 2;
        }
        if (!cfg->client_ca && cfg->n_client_cns)
                return cli_usage_error(CMD, "--client-cn needs --client-ca (the CA the names are checked under)");
        if (cfg->client_ca && tls_pair_client_ca_read(cfg->client_ca, &run->client_ca_pem, err, sizeof err) < 0) {
                fprintf(stderr, CMD ": --client-ca %s\n", err);
                return 2;
        }
        cfg->opt.client_ca_pem = cfg->client_ca ? run->client_ca_pem.data : NULL;
        cfg->opt.client_cns = cfg->client_cns;
        cfg->opt.n_client_cns = cfg->n_client_cns;
        run->cert_info = run->pair.info;
        sv->cert_path = cfg->cert_path;
        sv->key_path = cfg->key_path;
        atomic_store(&sv->cert_not_after, (long long)run->cert_info.not_after);
        return 0;
}

/* The Kubernetes API, for namespaces: --kubeconfig, else in-cluster. 0, or
 * the exit status. */
static int start_kube(const struct serve_config *cfg, struct serve_run *run)
{
        char err[512] = "";
        if (cfg->kubeconfig) {
                if (kube_from_kubeconfig(cfg->kubeconfig, &run->kube, err, sizeof err) < 0) {
                        fprintf(stderr, CMD ": %s\n", err);
                        return 2;
                }
        } else {
                const char *sa_dir = getenv("SPARK_IDENTITY_WEBHOOK_SA_DIR");
                int r = kube_in_cluster(sa_dir && *sa_dir ? sa_dir : KUBE_SA_DIR, &run->kube, err, sizeof err);
                if (r < 0 && r != -ENOENT) {
                        fprintf(stderr, CMD ": in a cluster, but %s\n", err);
                        return 2;
                }
        }
        if (!run->kube && policy_uses_namespaces(run->policy)) {
                fprintf(stderr, CMD ": the policy reads namespaces (selectors or namespaceAnnotations); "
                                    "run in a cluster or give --kubeconfig\n");
                return 2;
        }
        /* libcurl is set up only when there is an API to call: its set-up
         * (libssl's too) makes about 0.4 MiB of library pages resident. */
        if (run->kube && kube_global_init() < 0) {
                fprintf(stderr, CMD ": cannot set up libcurl\n");
                return 2;
        }
        return 0;
}

/* The process: memory for requests, descriptors, the policy's snapshot,
 * signals to the signalfd and the watch on the files' directories. 0, or
 * the exit status. */
static int start_process(const struct serve_config *cfg, struct serve_run *run)
{
        struct serve *sv = &run->sv;
        arena_install();   /* before the worker threads start */
        /* A fixed threshold: large bodies and parses are mmapped and go back to
         * the system when freed (glibc's moving threshold would keep them). */
        mallopt(M_MMAP_THRESHOLD, (int)WH_MMAP_THRESHOLD_BYTES);
        budget_init(&sv->memory, cfg->request_memory);
        raise_fd_limit(cfg->opt.max_connections);
        sv->policy = snapshot_new(run->policy, free_policy);
        if (!sv->policy) {
                fprintf(stderr, CMD ": out of memory\n");
                return 2;
        }
        run->policy = NULL;   /* the snapshot's now */

        /* Signals go to the signalfd; the worker threads inherit the mask. */
        sigset_t mask;
        sigemptyset(&mask);
        sigaddset(&mask, SIGINT);
        sigaddset(&mask, SIGTERM);
        sigaddset(&mask, SIGHUP);
        signal(SIGPIPE, SIG_IGN);
        pthread_sigmask(SIG_BLOCK, &mask, NULL);
        run->sfd = signalfd(-1, &mask, SFD_CLOEXEC);
        int sfd_error = run->sfd < 0 ? errno : 0;
        const char *watched[] = { cfg->policy_path, cfg->cert_path, cfg->key_path, cfg->audit_log };
        int ifd = watch_dirs(watched, sizeof watched / sizeof *watched - (cfg->audit_log ? 0 : 1));
        run->ifd = ifd < 0 ? -1 : ifd;
        run->ifd_error = ifd < 0 ? -ifd : 0;
        if (run->sfd < 0) {
                fprintf(stderr, CMD ": signalfd: %s\n", strerror(sfd_error));
                return 2;
        }
        return 0;
}

/* The namespace watcher and the servers; then the "serving" line. 0, or
 * the exit status. */
static int start_servers(struct serve_config *cfg, struct serve_run *run)
{
        struct serve *sv = &run->sv;
        char err[512] = "";
        if (run->kube && nscache_start(run->kube, &sv->namespaces) < 0) {
                fprintf(stderr, CMD ": cannot start the namespace watcher\n");
                return 2;
        }
        cfg->opt.cert_pem = run->pair.cert_pem.data;
        cfg->opt.key_pem = run->pair.key_pem.data;
        cfg->opt.budget = &sv->memory;
        struct server_handler h = {
                .ctx = sv, .admit = serve_admit, .ready = serve_ready, .metrics = serve_render_metrics
        };
        int started = server_start(&cfg->opt, &h, &run->server, err, sizeof err);
        tls_pair_free(&run->pair);          /* the server has loaded its own copy */
        buf_free(&run->client_ca_pem);      /* and of the client CAs */
        cfg->opt.cert_pem = cfg->opt.key_pem = cfg->opt.client_ca_pem = NULL;
        if (started < 0) {
                fprintf(stderr, CMD ": %s\n", err);
                return 2;
        }
        __atomic_store_n(&sv->server, run->server, __ATOMIC_RELEASE);
        if (cfg->metrics_listen &&
            server_start_plain(cfg->metrics_listen, &h, &run->metrics_server, err, sizeof err) < 0) {
                fprintf(stderr, CMD ": %s\n", err);
                return 2;
        }
        return 0;
}

static void log_serving(const struct serve_config *cfg, struct serve_run *run)
{
        unsigned token;
        const struct policy *p = snapshot_acquire(run->sv.policy, &token);
        struct log_line l;
        log_begin(&l, LOG_INFO, "serving");
        log_str(&l, "version", WH_VERSION);
        log_str(&l, "listen", cfg->opt.listen);
        log_int(&l, "port", server_port(run->server));
        log_str(&l, "policy", cfg->policy_path);
        log_str(&l, "policySha256", policy_sha256(p));
        log_int(&l, "namespaces", (long long)policy_rule_count(p));
        log_int(&l, "certificateDaysLeft", (long long)(run->cert_info.not_after - time(NULL)) / 86400);
        log_str(&l, "certificateSerial", run->cert_info.serial);
        log_str(&l, "tlsMinVersion", cfg->opt.tls13_only ? "1.3" : "1.2");
        log_str(&l, "kubernetes", run->kube ? kube_server(run->kube) : NULL);
        log_int(&l, "startupMicros", serve_micros_since(&run->t0));
        log_end(&l);
        snapshot_release(run->sv.policy, token);
}

/* Starts everything, recording each piece in `run` as it is started. 0,
 * or the exit status (serve_stop() releases what was started). */
static int serve_start(struct serve_config *cfg, struct serve_run *run)
{
        clock_gettime(CLOCK_MONOTONIC, &run->t0);
        run->sv.policy_path = cfg->policy_path;
        const char *slash = strrchr(cfg->policy_path, '/');
        run->sv.policy_key = slash ? slash + 1 : cfg->policy_path;
        pthread_mutex_init(&run->sv.reload_lock, NULL);
        int r = start_policy_and_pair(cfg, run);
        if (r == 0)
                note_reload(&run->sv, NULL);
        if (r == 0)
                r = start_kube(cfg, run);
        if (r == 0)
                r = start_process(cfg, run);
        if (r == 0)
                r = start_servers(cfg, run);
        if (r != 0)
                return r;
        log_serving(cfg, run);
        if (run->ifd < 0)
                log_message(LOG_WARN, "cannot watch the policy's directory; polling it instead",
                            strerror(run->ifd_error));
        return 0;
}

/* Stops serving: readiness fails from now, then the server drains (see
 * shut_down()). The line says why: `key` is "signal" or "error". */
static void serve_drain(const struct serve_config *cfg, struct serve_run *run, enum log_level level, const char *key,
                        const char *why)
{
        struct log_line l;
        log_begin(&l, level, "shutting down");
        log_str(&l, key, why);
        log_int(&l, "delaySeconds", cfg->shutdown_delay_s);
        log_int(&l, "graceSeconds", cfg->shutdown_grace_s);
        log_end(&l);
        atomic_store(&run->sv.stopping, true);   /* /readyz answers 503 from now */
        shut_down(run->server, cfg->shutdown_delay_s, cfg->shutdown_grace_s);
}

/* Serves until SIGTERM or SIGINT (0), or until poll() fails (2): either
 * way the server drains first. SIGHUP, and changes to the files, reload
 * them; the policy is also polled every WH_POLICY_POLL_MS. */
static int serve_loop(const struct serve_config *cfg, struct serve_run *run)
{
        struct serve *sv = &run->sv;
        for (;;) {
                struct pollfd fds[2] = { { .fd = run->sfd, .events = POLLIN }, { .fd = run->ifd, .events = POLLIN } };
                int n = poll(fds, run->ifd >= 0 ? 2 : 1, WH_POLICY_POLL_MS);
                int poll_error = n < 0 ? errno : 0;
                if (n < 0 && poll_error != EINTR) {
                        char why[128];
                        snprintf(why, sizeof why, "poll: %s", strerror(poll_error));
                        serve_drain(cfg, run, LOG_ERROR, "error", why);
                        return 2;
                }
                if (n > 0 && (fds[0].revents & POLLIN)) {
                        struct signalfd_siginfo si;
                        if (read(run->sfd, &si, sizeof si) == sizeof si) {
                                if (si.ssi_signo == SIGHUP) {
                                        reopen_audit_log(true);
                                        maybe_reload_policy(sv, true);
                                        maybe_reload_certificate(sv, true);
                                        continue;
                                }
                                serve_drain(cfg, run, LOG_INFO, "signal", strsignal((int)si.ssi_signo));
                                return 0;
                        }
                }
                if (n > 0 && run->ifd >= 0 && (fds[1].revents & POLLIN)) {
                        char events[4096];
                        while (read(run->ifd, events, sizeof events) > 0)
                                ;
                }
                reopen_audit_log(false);
                maybe_reload_policy(sv, false);
                maybe_reload_certificate(sv, false);
        }
}

/* Releases what serve_start() started, in the reverse order. */
static void serve_stop(struct serve_run *run)
{
        server_stop(run->metrics_server);
        server_stop(run->server);
        nscache_stop(run->sv.namespaces);
        if (run->ifd >= 0)
                close(run->ifd);
        if (run->sfd >= 0)
                close(run->sfd);
        snapshot_free(run->sv.policy);
        kube_free(run->kube);
        buf_free(&run->client_ca_pem);
        tls_pair_free(&run->pair);
        policy_free(run->policy);
        pthread_mutex_destroy(&run->sv.reload_lock);
}

int cmd_serve(int argc, char **argv)
{
        struct serve_config cfg = {
                .opt = {
                        .listen = DEFAULT_LISTEN,
                        .max_body = WH_MAX_BODY_BYTES,
                        .max_connections = WH_MAX_CONNECTIONS,
                        .max_connections_per_ip = WH_MAX_CONNECTIONS_PER_IP,
                        .connection_memory = WH_CONNECTION_MEMORY_BYTES,
                        .idle_timeout_s = WH_IDLE_TIMEOUT_S,
                        .header_timeout_ms = WH_HEADER_TIMEOUT_S * 1000u,
                        .body_timeout_ms = WH_BODY_TIMEOUT_S * 1000u,
                        .threads = WH_THREADS_AUTO,
                },
                .shutdown_delay_s = WH_SHUTDOWN_DELAY_S,
                .shutdown_grace_s = WH_SHUTDOWN_GRACE_S,
                .request_memory = WH_REQUEST_MEMORY_BYTES,
        };
        int rc;
        if (!serve_configure(argc, argv, &cfg, &rc))
                return rc;
        struct serve_run run = { .sfd = -1, .ifd = -1 };
        rc = serve_start(&cfg, &run);
        if (rc == 0)
                rc = serve_loop(&cfg, &run);
        serve_stop(&run);
        return rc;
}
