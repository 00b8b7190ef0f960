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
#include "conntrack.h"
#include "cli.h"
#include "commands.h"
#include "fileio.h"
#include "kube.h"
#include "nscache.h"
#include "log.h"
#include "metrics.h"
#include "metrics_admission.h"
#include "policy_file.h"
#include "server.h"
#include "snapshot.h"
#include "tls_pair.h"
#include "webhook_limits.h"

#define CMD "serve"
#define DEFAULT_LISTEN "0.0.0.0:8443"
#define POLICY_ERRORS_MAX (64u * 1024u)

struct serve {
        struct snapshot *policy;        /* const struct policy * */
        struct nscache *namespaces;     /* NULL without a Kubernetes API to read */
        const char *policy_path;
        struct stat policy_stat;        /* of the file last loaded, to notice changes */
        struct server *server;
        const char *cert_path, *key_path;
        struct stat cert_stat, key_stat; /* of the pair last loaded */
        atomic_llong cert_not_after;    /* time_t */
        atomic_bool stopping;
        struct budget memory;           /* bodies and parses of requests in flight */
};

void cmd_serve_help(void)
{
        printf("Usage: spark-identity-webhook serve --policy FILE --tls-cert FILE --tls-key FILE [options]\n"
               "\n"
               "Serves the admission webhooks over HTTPS:\n"
               "  POST /mutate   AdmissionReview admission.k8s.io/v1 or v1beta1: Spark pods get\n"
               "                 their settings on CREATE; identity claims (pod CREATE and UPDATE)\n"
               "                 and namespace grant keys are judged\n"
               "  POST /validate the same judgement, never a patch (a validating webhook, which\n"
               "                 runs after every mutating one)\n"
               "  GET  /healthz  the process is alive\n"
               "  GET  /readyz   the policy is loaded and the certificate is valid\n"
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

/* One line per admission decision: who asked for what, which rule and
 * policy applied, what we did and said. Nothing secret is in it: the policy
 * holds none, and no token or file content is logged. */
static void log_decision(const struct admission *a, long long micros)
{
        const struct review *rv = &a->review;
        const struct mutation *m = &a->mutation;
        struct log_line l;
        log_begin_audit(&l, m->decision == DECISION_DENIED ? LOG_WARN : LOG_INFO, "admission");
        log_str(&l, "uid", rv->uid);
        log_str(&l, "namespace", rv->namespace_);
        log_str(&l, rv->is_pod ? "pod" : "object", rv->name);
        if (rv->is_namespace)
                log_str(&l, "resource", "namespaces");
        if (rv->subresource && *rv->subresource)
                log_str(&l, "subResource", rv->subresource);
        log_str(&l, "webhook", a->path == ADMISSION_VALIDATE ? "validate" : "mutate");
        log_str(&l, "operation", rv->operation);
        log_bool(&l, "dryRun", rv->dry_run);
        if (m->role != POD_ROLE_NONE)
                log_str(&l, "role", pod_role_name(m->role));
        log_str(&l, "appId", m->app_id);
        log_str(&l, "appName", m->app_name);
        log_str(&l, "user", rv->username);
        if (rv->groups) {
                struct buf g;
                const cJSON *it;
                buf_init(&g, 64u * 1024u);
                buf_putc(&g, '[');
                cJSON_ArrayForEach(it, rv->groups)
                        if (cJSON_IsString(it)) {
                                if (g.len > 1)
                                        buf_putc(&g, ',');
                                buf_put_json_str(&g, it->valuestring);
                        }
                if (buf_putc(&g, ']') == 0)
                        log_raw(&l, "groups", g.data);
                buf_free(&g);
        }
        log_str(&l, "rule", m->rule ? m->rule->name : NULL);
        log_str(&l, "policySha256", m->policy_sha256);
        log_str(&l, "mode", policy_mode_name(m->mode));
        log_str(&l, "decision", decision_name(m->decision));
        log_str(&l, "identityBefore", m->identity_before);
        log_str(&l, "identity", m->identity_after);
        if (m->auth == POLICY_AUTH_WORKLOAD_IDENTITY) {
                log_str(&l, "auth", policy_auth_name(m->auth));
                log_str(&l, "clientId", m->client_id);
                log_str(&l, "serviceAccount", m->service_account);
        }
        log_int(&l, "changes", m->patch.n_ops);
        if (m->patch.n_ops && m->patch.text.data)
                log_raw(&l, "patch", m->patch.text.data);
        if (m->n_warnings) {
                struct buf w;
                buf_init(&w, 64u * 1024u);
                buf_putc(&w, '[');
                for (unsigned i = 0; i < m->n_warnings; i++) {
                        if (i)
                                buf_putc(&w, ',');
                        buf_put_json_str(&w, m->warnings[i]);
                }
                if (buf_putc(&w, ']') == 0)
                        log_raw(&l, "warnings", w.data);
                buf_free(&w);
        }
        if (m->grant_keys[0])
                log_str(&l, "grantKeys", m->grant_keys);
        if (m->decision == DECISION_DENIED)
                log_str(&l, "reason", m->message);
        if (a->resolution.unknown)
                log_str(&l, "namespaceUnreadable", a->lookup_error);
        if (a->resolution.problem[0])
                log_str(&l, "annotationProblem", a->resolution.problem);
        log_int(&l, "micros", micros);
        log_end(&l);
}

static long long micros_since(const struct timespec *t0)
{
        struct timespec t1;
        clock_gettime(CLOCK_MONOTONIC, &t1);
        return (t1.tv_sec - t0->tv_sec) * 1000000LL + (t1.tv_nsec - t0->tv_nsec) / 1000;
}

static void parse_limit_message(char *msg, size_t msglen, size_t len)
{
        snprintf(msg, msglen,
                 "the review would take more than %zu bytes to parse (%u times its %zu-byte "
                 "body, plus %u): refused",
                 (size_t)WH_PARSE_FACTOR * len + WH_PARSE_SLACK_BYTES, WH_PARSE_FACTOR, len, WH_PARSE_SLACK_BYTES);
}

/* Refuses a body whose shape says its parse would pass its bound. */
static void refuse_parse(int *ret_status, struct buf *out, size_t len)
{
        char msg[256];
        parse_limit_message(msg, sizeof msg, len);
        log_message(LOG_WARN, "request refused", msg);
        metrics_bad_request(413);
        *ret_status = 413;
        buf_reset(out);
        review_status_body(out, 413, msg);
}

/* A review the arena could not hold: say which bound, not "not JSON". */
static void parse_bounds(struct admission *a, size_t len, const struct budget *b)
{
        enum arena_limit why = arena_limited();
        if (why == ARENA_LIMIT_NONE || a->status == 200)
                return;
        int status = why == ARENA_LIMIT_REQUEST ? 413 : why == ARENA_LIMIT_BUDGET ? 503 : 500;
        char msg[256];
        if (why == ARENA_LIMIT_REQUEST)
                parse_limit_message(msg, sizeof msg, len);
        else if (why == ARENA_LIMIT_BUDGET)
                snprintf(msg, sizeof msg,
                         "the server's memory for requests in flight (--request-memory, "
                         "%zu MiB) is in use; try again",
                         b->limit >> 20);
        else
                snprintf(msg, sizeof msg, "out of memory while parsing the review");
        a->decided = false;
        a->status = status;
        snprintf(a->error, sizeof a->error, "%s", msg);
        buf_reset(&a->body);
        review_status_body(&a->body, status, msg);
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

/* Reads the review's namespace when the policy in force needs it, without
 * holding the policy while the API is asked; bounded by the request's
 * deadline. Returns whether nscache_done() must follow. */
static bool read_namespace(struct serve *sv, struct admission *a, uint64_t deadline_ns, struct ns_known *ret)
{
        unsigned token;
        const struct policy *p = snapshot_acquire(sv->policy, &token);
        const char *ns = p ? admission_namespace(a, p) : NULL;
        snapshot_release(sv->policy, token);
        if (!ns)
                return false;
        if (!sv->namespaces) {
                ret->state = NS_NOT_READ;
                snprintf(ret->error, sizeof ret->error, "the server has no Kubernetes API to read namespaces from");
                return false;
        }
        int r = nscache_lookup(sv->namespaces, ns, deadline_ns, &ret->info, ret->error, sizeof ret->error);
        ret->state = r == 0 ? NS_FOUND : r == -ENOENT ? NS_ABSENT : NS_UNREADABLE;
        return true;
}

static void admit(void *ctx, enum server_path path, const char *body, size_t len, uint64_t deadline_ns, int *ret_status,
                  struct buf *out)
{
        struct serve *sv = ctx;
        struct timespec t0;
        struct admission a;
        unsigned token;

        clock_gettime(CLOCK_MONOTONIC, &t0);
        /* The parse may take WH_PARSE_FACTOR times the body, from the shared
         * budget; a body whose shape alone says it would take more is refused
         * without spending the parse on it. */
        size_t parse_limit = (size_t)WH_PARSE_FACTOR * len + WH_PARSE_SLACK_BYTES;
        if (review_parse_cost(body, len) > parse_limit) {
                refuse_parse(ret_status, out, len);
                return;
        }
        arena_begin_bounded(&sv->memory, parse_limit);
        admission_init(&a, out->max);
        a.path = path == SERVER_PATH_VALIDATE ? ADMISSION_VALIDATE : ADMISSION_MUTATE;
        struct ns_known known = { .state = NS_NOT_READ };
        bool read = false;
        if (admission_parse(&a, body, len) == 0)
                read = read_namespace(sv, &a, deadline_ns, &known);
        const struct policy *p = snapshot_acquire(sv->policy, &token);
        if (!a.status)
                admission_decide(p, &known, &a);
        if (read)
                nscache_done(sv->namespaces);
        parse_bounds(&a, len, &sv->memory);
        long long micros = micros_since(&t0);
        if (a.decided) {
                log_decision(&a, micros);
                metrics_admission(a.mutation.decision, a.mutation.role, (uint64_t)micros);
        } else {
                log_message(LOG_WARN, "request refused", a.error);
                metrics_bad_request(a.status);
        }
        snapshot_release(sv->policy, token);

        *ret_status = a.status;
        buf_free(out);
        *out = a.body;                  /* the answer moves to the caller */
        buf_init(&a.body, 0);
        if (arena_owns(a.review.root))
                admission_free_arena(&a);
        else
                admission_free(&a);   /* the bracket had no memory: cJSON used malloc */
        arena_end();
}

static bool ready(void *ctx, struct buf *out)
{
        struct serve *sv = ctx;
        time_t not_after = (time_t)atomic_load(&sv->cert_not_after);
        time_t now = time(NULL);
        unsigned token;
        const struct policy *p = snapshot_acquire(sv->policy, &token);
        char ns_why[256] = "";
        bool ns_ok = !sv->namespaces || nscache_ready(sv->namespaces, ns_why, sizeof ns_why);
        bool ok = p && now < not_after && !atomic_load(&sv->stopping) && ns_ok;
        char when[32];
        struct tm tm;
        gmtime_r(&not_after, &tm);
        strftime(when, sizeof when, "%Y-%m-%dT%H:%M:%SZ", &tm);
        buf_printf(out,
                   "{\"status\":\"%s\",\"policySha256\":\"%s\",\"certificateNotAfter\":\"%s\","
                   "\"certificateDaysLeft\":%lld",
                   ok ? "ready" : "not ready", p ? policy_sha256(p) : "", when, (long long)(not_after - now) / 86400);
        if (sv->namespaces)
                buf_printf(out, ",\"namespaces\":%zu", nscache_size(sv->namespaces));
        if (!ok) {
                buf_puts(out, ",\"reason\":");
                if (atomic_load(&sv->stopping))
                        buf_put_json_str(out, "shutting down");
                else if (!p)
                        buf_put_json_str(out, "no policy loaded");
                else if (now >= not_after)
                        buf_put_json_str(out, "the serving certificate has expired");
                else {
                        char msg[300];
                        snprintf(msg, sizeof msg, "namespaces not listed yet: %s", ns_why);
                        buf_put_json_str(out, msg);
                }
        }
        buf_puts(out, "}\n");
        snapshot_release(sv->policy, token);
        return ok;
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

static void render_metrics(void *ctx, struct buf *out)
{
        struct serve *sv = ctx;
        unsigned token;
        const struct policy *p = snapshot_acquire(sv->policy, &token);
        struct metrics_state st = {
                .policy_sha256 = p ? policy_sha256(p) : NULL,
                .cert_not_after = (time_t)atomic_load(&sv->cert_not_after),
                .namespaces_watched = sv->namespaces != NULL,
                .namespaces = sv->namespaces ? nscache_size(sv->namespaces) : 0,
                .watch_restarts = sv->namespaces ? nscache_restarts(sv->namespaces) : 0,
                .request_memory_bytes = budget_used(&sv->memory),
                .request_memory_limit_bytes = sv->memory.limit,
                .request_memory_refused = atomic_load(&sv->memory.refused),
        };
        if (sv->namespaces) {
                unsigned long made, refused;
                nscache_fetch_stats(sv->namespaces, &made, &refused);
                st.namespace_reads = made;
                st.namespace_reads_refused = refused;
        }
        struct conntrack_stats cs = { 0 };
        struct server *server = __atomic_load_n(&sv->server, __ATOMIC_ACQUIRE);   /* set once it serves */
        if (server)
                server_connection_stats(server, &cs);
        st.open_connections = cs.open;
        st.closed_header_timeout = cs.header_timeouts;
        st.closed_body_timeout = cs.body_timeouts;
        st.closed_idle_timeout = cs.idle_timeouts;
        st.closed_evicted = cs.evicted;
        st.connections_refused = cs.refused;
        metrics_render(&st, out);   /* the policy stays held while its sha256 is written */
        snapshot_release(sv->policy, token);
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
        buf_init(&errors, POLICY_ERRORS_MAX);
        int r = policy_file_load(sv->policy_path, &next, &errors);
        sv->policy_stat = st;   /* a broken file is reported once, not at every poll */
        if (r < 0) {
                log_message(LOG_ERROR, "policy reload refused; the old policy keeps serving",
                            errors.data ? errors.data : "");
                metrics_policy_reload(false);
                buf_free(&errors);
                return;
        }
        buf_free(&errors);
        if (policy_uses_namespaces(next) && !sv->namespaces) {
                log_message(LOG_ERROR, "policy reload refused; the old policy keeps serving",
                            "the new policy reads namespaces (selectors or namespaceAnnotations), "
                            "and the server has no Kubernetes API to read them from");
                metrics_policy_reload(false);
                policy_free(next);
                return;
        }
        unsigned token;
        const struct policy *cur = snapshot_acquire(sv->policy, &token);
        bool unchanged = cur && strcmp(policy_sha256(cur), policy_sha256(next)) == 0;
        snapshot_release(sv->policy, token);
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
 * open is seen by the poll. */
static int watch_dirs(const char *const *paths, size_t n)
{
        int fd = inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
        if (fd < 0)
                return -1;
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
                        close(fd);
                        return -1;
                }
        }
        return fd;
}

int cmd_serve(int argc, char **argv)
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
        struct server_options opt = {
                .listen = DEFAULT_LISTEN,
                .max_body = WH_MAX_BODY_BYTES,
                .max_connections = WH_MAX_CONNECTIONS,
                .max_connections_per_ip = WH_MAX_CONNECTIONS_PER_IP,
                .connection_memory = WH_CONNECTION_MEMORY_BYTES,
                .idle_timeout_s = WH_IDLE_TIMEOUT_S,
                .header_timeout_ms = WH_HEADER_TIMEOUT_S * 1000u,
                .body_timeout_ms = WH_BODY_TIMEOUT_S * 1000u,
                .threads = WH_THREADS_AUTO,
        };
        const char *cert_path = NULL, *key_path = NULL, *kubeconfig = NULL, *metrics_listen = NULL;
        const char *audit_log = NULL;
        unsigned shutdown_delay_s = WH_SHUTDOWN_DELAY_S, shutdown_grace_s = WH_SHUTDOWN_GRACE_S;
        size_t request_memory = WH_REQUEST_MEMORY_BYTES;
        const char *client_ca = NULL;
        const char *client_cns[WH_MAX_CLIENT_CNS];
        size_t n_client_cns = 0;
        struct buf client_ca_pem = { 0 };
        struct kube *kube = NULL;
        struct serve sv = { 0 };
        unsigned long long v;
        char err[512] = "";
        int c;

        optind = 1;
        opterr = 0;
        while ((c = getopt_long(argc, argv, ":h", longopts, NULL)) != -1) {
                switch (c) {
                case 'p': sv.policy_path = optarg; break;
                case 'K': kubeconfig = optarg; break;
                case 'D':
                        if (cli_uint(CMD, "--shutdown-delay", optarg, 0, 600, &v) < 0)
                                return 2;
                        shutdown_delay_s = (unsigned)v;
                        break;
                case 'G':
                        if (cli_uint(CMD, "--shutdown-grace", optarg, 0, 600, &v) < 0)
                                return 2;
                        shutdown_grace_s = (unsigned)v;
                        break;
                case 'm':
                        if (server_check_listen(optarg, err, sizeof err) < 0)
                                return cli_usage_error(CMD, "--metrics-listen: %s", err);
                        metrics_listen = optarg;
                        break;
                case 'A':
                        audit_log = optarg;
                        if (log_set_audit_file(optarg, err, sizeof err) < 0) {
                                fprintf(stderr, CMD ": %s\n", err);
                                return 2;
                        }
                        break;
                case 'V':
                        if (strcmp(optarg, "1.2") != 0 && strcmp(optarg, "1.3") != 0)
                                return cli_usage_error(CMD, "--tls-min-version is 1.2 or 1.3, not \"%s\"", optarg);
                        opt.tls13_only = strcmp(optarg, "1.3") == 0;
                        break;
                case 'c': cert_path = optarg; break;
                case 'k': key_path = optarg; break;
                case 'l': opt.listen = optarg; break;
                case 'B':
                        if (cli_size(CMD, "--max-body", optarg, 1024, 1ull << 30, &v) < 0)
                                return 2;
                        opt.max_body = v;
                        break;
                case 'R':
                        if (cli_size(CMD, "--request-memory", optarg, WH_REQUEST_MEMORY_MIN_BYTES, 1ull << 40, &v) < 0)
                                return 2;
                        request_memory = v;
                        break;
                case 'C':
                        if (cli_uint(CMD, "--max-connections", optarg, 1, 1u << 20, &v) < 0)
                                return 2;
                        opt.max_connections = (unsigned)v;
                        break;
                case 'I':
                        if (cli_uint(CMD, "--max-connections-per-ip", optarg, 1, 1u << 20, &v) < 0)
                                return 2;
                        opt.max_connections_per_ip = (unsigned)v;
                        break;
                case 'M':
                        if (cli_size(CMD, "--connection-memory", optarg, 4096, 16u << 20, &v) < 0)
                                return 2;
                        opt.connection_memory = (unsigned)v;
                        break;
                case 'T':
                        if (cli_uint(CMD, "--idle-timeout", optarg, 1, 3600, &v) < 0)
                                return 2;
                        opt.idle_timeout_s = (unsigned)v;
                        break;
                case 'a': client_ca = optarg; break;
                case 'n':
                        if (n_client_cns == WH_MAX_CLIENT_CNS)
                                return cli_usage_error(CMD, "--client-cn: at most %u", WH_MAX_CLIENT_CNS);
                        if (!*optarg)
                                return cli_usage_error(CMD, "--client-cn needs a name");
                        client_cns[n_client_cns++] = optarg;
                        break;
                case 'H':
                        if (cli_uint(CMD, "--header-timeout", optarg, 1, 600, &v) < 0)
                                return 2;
                        opt.header_timeout_ms = (unsigned)v * 1000u;
                        break;
                case 'Y':
                        if (cli_uint(CMD, "--body-timeout", optarg, 1, 600, &v) < 0)
                                return 2;
                        opt.body_timeout_ms = (unsigned)v * 1000u;
                        break;
                case 't':
                        if (cli_uint(CMD, "--threads", optarg, 0, WH_MAX_THREADS, &v) < 0)
                                return 2;
                        opt.threads = (unsigned)v;
                        break;
                case 'L': {
                        static const char *const levels[] = { "debug", "info", "warn", "error" };
                        int found = -1;
                        for (int i = 0; i < 4; i++)
                                if (strcmp(optarg, levels[i]) == 0)
                                        found = i;
                        if (found < 0)
                                return cli_usage_error(CMD, "--log-level is debug, info, warn or error");
                        log_set_level((enum log_level)found);
                        break;
                }
                case 'h': cmd_serve_help(); return 0;
                case ':': return cli_usage_error(CMD, "%s needs a value", argv[optind - 1]);
                default: return cli_usage_error(CMD, "unknown option %s", argv[optind - 1]);
                }
        }
        if (optind < argc)
                return cli_usage_error(CMD, "unexpected argument \"%s\"", argv[optind]);
        if (!sv.policy_path)
                return cli_usage_error(CMD, "--policy is required");
        if (!cert_path || !key_path)
                return cli_usage_error(CMD, "--tls-cert and --tls-key are required");
        if (server_check_listen(opt.listen, err, sizeof err) < 0)
                return cli_usage_error(CMD, "%s", err);

        struct timespec t0;
        clock_gettime(CLOCK_MONOTONIC, &t0);

        /* The policy. */
        struct buf errors;
        struct policy *policy = NULL;
        buf_init(&errors, POLICY_ERRORS_MAX);
        if (stat(sv.policy_path, &sv.policy_stat) < 0 || policy_file_load(sv.policy_path, &policy, &errors) < 0) {
                if (!errors.len)
                        buf_printf(&errors, "cannot read %s: %s\n", sv.policy_path, strerror(errno));
                fprintf(stderr, CMD ": the policy is not valid:\n%s", errors.data);
                buf_free(&errors);
                return 2;
        }
        buf_free(&errors);

        /* The serving pair, read once: the server gets the bytes checked. */
        struct tls_pair pair = { 0 };
        if (stat(cert_path, &sv.cert_stat) < 0 || stat(key_path, &sv.key_stat) < 0 ||
            tls_pair_read(cert_path, key_path, &pair, err, sizeof err) < 0) {
                if (errno && !err[0])
                        snprintf(err, sizeof err, "cannot read %s or %s: %s", cert_path, key_path, strerror(errno));
                fprintf(stderr, CMD ": %s\n", err);
                policy_free(policy);
                return 2;
        }
        if (!client_ca && n_client_cns) {
                tls_pair_free(&pair);
                policy_free(policy);
                return cli_usage_error(CMD, "--client-cn needs --client-ca (the CA the names are checked under)");
        }
        if (client_ca && tls_client_ca_read(client_ca, &client_ca_pem, err, sizeof err) < 0) {
                fprintf(stderr, CMD ": --client-ca %s\n", err);
                tls_pair_free(&pair);
                policy_free(policy);
                return 2;
        }
        opt.client_ca_pem = client_ca ? client_ca_pem.data : NULL;
        opt.client_cns = client_cns;
        opt.n_client_cns = n_client_cns;
        const struct tls_pair_info cert_info = pair.info;
        time_t not_after = cert_info.not_after;
        sv.cert_path = cert_path;
        sv.key_path = key_path;
        atomic_store(&sv.cert_not_after, (long long)not_after);

        /* The Kubernetes API, for namespaces: --kubeconfig, else in-cluster. */
        if (kubeconfig) {
                if (kube_from_kubeconfig(kubeconfig, &kube, err, sizeof err) < 0) {
                        fprintf(stderr, CMD ": %s\n", err);
                        policy_free(policy);
                        tls_pair_free(&pair);
                        return 2;
                }
        } else {
                const char *sa_dir = getenv("SPARK_IDENTITY_WEBHOOK_SA_DIR");
                int r = kube_in_cluster(sa_dir && *sa_dir ? sa_dir : KUBE_SA_DIR, &kube, err, sizeof err);
                if (r < 0 && r != -ENOENT) {
                        fprintf(stderr, CMD ": in a cluster, but %s\n", err);
                        policy_free(policy);
                        tls_pair_free(&pair);
                        return 2;
                }
        }
        if (!kube && policy_uses_namespaces(policy)) {
                fprintf(stderr, CMD ": the policy reads namespaces (selectors or namespaceAnnotations); "
                                    "run in a cluster or give --kubeconfig\n");
                policy_free(policy);
                tls_pair_free(&pair);
                return 2;
        }
        /* libcurl is set up only when there is an API to call: its set-up
         * (libssl's too) makes about 0.4 MiB of library pages resident. */
        if (kube && kube_global_init() < 0) {
                fprintf(stderr, CMD ": cannot set up libcurl\n");
                kube_free(kube);
                policy_free(policy);
                tls_pair_free(&pair);
                return 2;
        }
        int rc = 2;
        struct server *server = NULL, *metrics_server = NULL;
        int sfd = -1, ifd = -1;
        opt.cert_pem = pair.cert_pem.data;
        opt.key_pem = pair.key_pem.data;

        arena_install();   /* before the worker threads start */
        /* A fixed threshold: large bodies and parses are mmapped and go back to
         * the system when freed (glibc's moving threshold would keep them). */
        mallopt(M_MMAP_THRESHOLD, (int)WH_MMAP_THRESHOLD_BYTES);
        budget_init(&sv.memory, request_memory);
        raise_fd_limit(opt.max_connections);
        opt.budget = &sv.memory;
        sv.policy = snapshot_new(policy, free_policy);
        if (!sv.policy) {
                policy_free(policy);
                fprintf(stderr, CMD ": out of memory\n");
                goto out;
        }

        /* Signals go to the signalfd; the worker threads inherit the mask. */
        sigset_t mask;
        sigemptyset(&mask);
        sigaddset(&mask, SIGINT);
        sigaddset(&mask, SIGTERM);
        sigaddset(&mask, SIGHUP);
        signal(SIGPIPE, SIG_IGN);
        pthread_sigmask(SIG_BLOCK, &mask, NULL);
        sfd = signalfd(-1, &mask, SFD_CLOEXEC);
        const char *watched[] = { sv.policy_path, cert_path, key_path, audit_log };
        ifd = watch_dirs(watched, sizeof watched / sizeof *watched - (audit_log ? 0 : 1));
        if (sfd < 0) {
                fprintf(stderr, CMD ": signalfd: %s\n", strerror(errno));
                goto out;
        }

        if (kube) {
                if (nscache_start(kube, &sv.namespaces) < 0) {
                        fprintf(stderr, CMD ": cannot start the namespace watcher\n");
                        goto out;
                }
        }

        struct server_handler h = { .ctx = &sv, .admit = admit, .ready = ready, .metrics = render_metrics };
        int started = server_start(&opt, &h, &server, err, sizeof err);
        tls_pair_free(&pair);   /* the server has loaded its own copy */
        buf_free(&client_ca_pem);   /* and of the client CAs */
        if (started < 0) {
                fprintf(stderr, CMD ": %s\n", err);
                goto out;
        }
        __atomic_store_n(&sv.server, server, __ATOMIC_RELEASE);
        if (metrics_listen && server_start_plain(metrics_listen, &h, &metrics_server, err, sizeof err) < 0) {
                fprintf(stderr, CMD ": %s\n", err);
                goto out;
        }
        {
                unsigned token;
                const struct policy *p = snapshot_acquire(sv.policy, &token);
                struct log_line l;
                log_begin(&l, LOG_INFO, "serving");
                log_str(&l, "version", WH_VERSION);
                log_str(&l, "listen", opt.listen);
                log_int(&l, "port", server_port(server));
                log_str(&l, "policy", sv.policy_path);
                log_str(&l, "policySha256", policy_sha256(p));
                log_int(&l, "namespaces", (long long)policy_rule_count(p));
                log_int(&l, "certificateDaysLeft", (long long)(not_after - time(NULL)) / 86400);
                log_str(&l, "certificateSerial", cert_info.serial);
                log_str(&l, "tlsMinVersion", opt.tls13_only ? "1.3" : "1.2");
                log_str(&l, "kubernetes", kube ? kube_server(kube) : NULL);
                log_int(&l, "startupMicros", micros_since(&t0));
                log_end(&l);
                snapshot_release(sv.policy, token);
        }
        if (ifd < 0)
                log_message(LOG_WARN, "cannot watch the policy's directory; polling it instead", strerror(errno));

        for (;;) {
                struct pollfd fds[2] = { { .fd = sfd, .events = POLLIN }, { .fd = ifd, .events = POLLIN } };
                int n = poll(fds, ifd >= 0 ? 2 : 1, WH_POLICY_POLL_MS);
                if (n < 0 && errno != EINTR)
                        break;
                if (n > 0 && (fds[0].revents & POLLIN)) {
                        struct signalfd_siginfo si;
                        if (read(sfd, &si, sizeof si) == sizeof si) {
                                if (si.ssi_signo == SIGHUP) {
                                        reopen_audit_log(true);
                                        maybe_reload_policy(&sv, true);
                                        maybe_reload_certificate(&sv, true);
                                        continue;
                                }
                                struct log_line l;
                                log_begin(&l, LOG_INFO, "shutting down");
                                log_str(&l, "signal", strsignal((int)si.ssi_signo));
                                log_int(&l, "delaySeconds", shutdown_delay_s);
                                log_int(&l, "graceSeconds", shutdown_grace_s);
                                log_end(&l);
                                atomic_store(&sv.stopping, true);   /* /readyz answers 503 from now */
                                shut_down(server, shutdown_delay_s, shutdown_grace_s);
                                break;
                        }
                }
                if (n > 0 && ifd >= 0 && (fds[1].revents & POLLIN)) {
                        char events[4096];
                        while (read(ifd, events, sizeof events) > 0)
                                ;
                }
                reopen_audit_log(false);
                maybe_reload_policy(&sv, false);
                maybe_reload_certificate(&sv, false);
        }
        rc = 0;
out:
        server_stop(metrics_server);
        server_stop(server);
        nscache_stop(sv.namespaces);
        kube_free(kube);
        if (sfd >= 0)
                close(sfd);
        if (ifd >= 0)
                close(ifd);
        snapshot_free(sv.policy);
        tls_pair_free(&pair);
        buf_free(&client_ca_pem);
        return rc;
}
