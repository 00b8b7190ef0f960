/* `audit`: judges the pods that exist (from a file, or listed from the API
 * page by page) against a policy as admission would judge them now, and
 * reports what they lack: a table, JSON, or PolicyReports. */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "audit_report.h"
#include "buf.h"
#include "cli.h"
#include "commands.h"
#include "fileio.h"
#include "findings.h"
#include "jsonlist.h"
#include "kube.h"
#include "ns_table.h"
#include "policy_file.h"
#include "pool.h"
#include "webhook_limits.h"
#include "err.h"

#define CMD "audit"
#define AUDIT_PATH_MAX 8192u

enum output { OUTPUT_TABLE, OUTPUT_JSON, OUTPUT_POLICYREPORT };

/* Long: it is the help text, read from top to bottom. */
void cmd_audit_help(void)
{
        printf("Usage: spark-identity-webhook audit --policy FILE\n"
               "           (--pods FILE | --kubeconfig FILE | --in-cluster)\n"
               "           [-o table|json|policyreport] [--namespace NS] [--namespaces FILE]\n"
               "           [--page-size N]\n"
               "\n"
               "Finds the pods that do not comply with a policy: created while the webhook was\n"
               "down or ignored, before the policy changed, or in a namespace in audit mode. Each\n"
               "pod is judged exactly as admission would judge it if it were created now (the\n"
               "same code runs); every change admission would make is something the pod lacks:\n"
               "\n"
               "  missing-identity      a Spark pod without the aadpodidbinding label\n"
               "  wrong-identity        a Spark pod with another identity than its rule's\n"
               "  foreign-identity      any pod claiming an identity its namespace may not use\n"
               "  missing-jvm-settings  a Spark container without the rule's JVM flags (in\n"
               "                        SPARK_SUBMIT_OPTS, SPARK_JAVA_OPT_<n> or JAVA_TOOL_OPTIONS)\n"
               "                        or without its JAVA_HOME\n"
               "  no-policy             a Spark pod in a namespace without a rule, which the policy\n"
               "                        refuses (unmatched: deny), or whose spark-identity.io/\n"
               "                        annotations make no valid rule\n"
               "  missing-workload-identity\n"
               "                        a Spark pod of a workloadIdentity namespace without the\n"
               "                        AZURE_* env, the projected token volume or its mount, or\n"
               "                        running as another service account than the federated one\n"
               "  too-large             any pod the audit cannot read: the API server's answer with\n"
               "                        it alone passes %u bytes. Not judged: no pod the API\n"
               "                        server accepts comes near that, and it could hide any of\n"
               "                        the above\n"
               "\n"
               "Namespaces in audit mode are judged like enforce (the findings say so); namespaces\n"
               "in off mode are not judged. Pods that are not Spark's and claim no identity are\n"
               "only counted. In the table, control characters and bytes that are not UTF-8 in\n"
               "what pods hold are shown escaped (\\x1b, \\n, \\u009b, \\xff; a backslash as\n"
               "\\\\), so that every row is one line and shows what is there.\n"
               "\n",
               AUDIT_PAGE_MAX_BYTES);
        printf("  --policy FILE      the policy to judge with (the one the webhook serves)\n"
               "\n"
               "Where the pods come from (one of):\n"
               "  --pods FILE        'kubectl get pods -A -o json' (a List), or one Pod; - is stdin\n"
               "  --kubeconfig FILE  list them from the API server of the current context\n"
               "  --in-cluster       ... with the pod's service account: KUBERNETES_SERVICE_HOST,\n"
               "                     and " KUBE_SA_DIR "\n"
               "                     (SPARK_IDENTITY_WEBHOOK_SA_DIR replaces it)\n"
               "\n"
               "  -o, --output FORMAT\n"
               "      table (default): the findings, each with what was expected and found,\n"
               "      then a summary per namespace.\n"
               "      json: {\"summary\": {...}, \"findings\": [...]}.\n"
               "      policyreport: a List of wgpolicyk8s.io/v1alpha2 PolicyReports named\n"
               "      " AUDIT_REPORT_NAME ", for 'kubectl apply -f -' (the PolicyReport CRD must be\n"
               "      installed). One per namespace that has pods or exists (from the API, or\n"
               "      --namespaces), empty where nothing fails, so that each apply replaces the\n"
               "      last. A result per finding, at most %u per report; the annotation\n"
               "      " AUDIT_REPORT_LEFT_OUT_ANNOTATION " and stderr say how many were left out.\n"
               "  --namespace NS     only the pods of NS (from /api/v1/namespaces/NS/pods)\n"
               "  --namespaces FILE  with --pods: 'kubectl get namespaces -o json', for policies\n"
               "                     whose rules come from namespaces' labels (selectors) or\n"
               "                     annotations (namespaceAnnotations). Without it such pods\n"
               "                     are counted as unknown, not guessed. From the API,\n"
               "                     namespaces are listed when the policy needs them, and for\n"
               "                     -o policyreport.\n"
               "  --page-size N      pods per API page (limit/continue) [%u]. A page whose answer\n"
               "                     passes %u bytes is asked again with half the limit, down\n"
               "                     to 1: memory follows the page and stays within that bound\n"
               "\n"
               "Exit status: 0 no findings (pods counted as unknown do not change it), 1 findings,\n"
               "2 an error: unreadable policy or file, API server unreachable, HTTP 401/403 (the\n"
               "message says which request and which permission: list on pods, and on namespaces\n"
               "when the policy reads them).\n"
               "\n"
               "Examples:\n"
               "  kubectl get pods -A -o json > pods.json; kubectl get namespaces -o json > ns.json\n"
               "  spark-identity-webhook audit --policy policy.yaml --pods pods.json \\\n"
               "      --namespaces ns.json\n"
               "  spark-identity-webhook audit --policy policy.yaml --kubeconfig ~/.kube/config \\\n"
               "      -o json | jq '.findings[] | select(.problem == \"foreign-identity\")'\n"
               "  spark-identity-webhook audit --policy policy.yaml --in-cluster -o policyreport \\\n"
               "      | kubectl apply -f -\n",
               AUDIT_REPORT_MAX_RESULTS, WH_KUBE_LIST_PAGE, AUDIT_PAGE_MAX_BYTES);
}

/* ---- one run ---- */

struct audit {
        const struct policy *policy;
        const char *only_namespace;     /* --namespace, or NULL */
        struct ns_table ns;
        bool ns_known;                  /* ns holds every namespace that was read */
        struct findings findings;
        size_t not_pods;                /* items of the list that are not pods */
        char err[1024];
};

/* Prints `audit: MESSAGE` on stderr, MESSAGE escaped as the table escapes
 * (it may name a pod from a file, or quote the API server): one line. */
__attribute__((format(printf, 1, 2))) static void say(const char *fmt, ...)
{
        char msg[2048];
        struct buf shown;
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(msg, sizeof msg, fmt, ap);
        va_end(ap);
        buf_init(&shown, 4u * sizeof msg);
        if (audit_report_escape(&shown, msg) == 0)
                fprintf(stderr, CMD ": %s\n", shown.data ? shown.data : "");
        else
                fprintf(stderr, CMD ": %s\n", msg);
        buf_free(&shown);
}

/* What is known of a namespace's labels and annotations, for findings.c. */
static void ns_context(const struct audit *a, const char *namespace_, struct ns_info *info, struct findings_context *fc)
{
        memset(info, 0, sizeof *info);
        memset(fc, 0, sizeof *fc);
        const struct ns_entry *e = a->ns_known ? ns_table_find(&a->ns, namespace_) : NULL;
        if (e) {
                *info = e->info;
                fc->info = info;
        }
}

/* One item of a pods list: judge it, then it is dropped. */
static int on_pod(void *ctx, const cJSON *item)
{
        struct audit *a = ctx;
        const cJSON *kind = cJSON_GetObjectItemCaseSensitive(item, "kind");
        const cJSON *meta = cJSON_GetObjectItemCaseSensitive(item, "metadata");
        const cJSON *ns = cJSON_GetObjectItemCaseSensitive(meta, "namespace");
        const cJSON *name = cJSON_GetObjectItemCaseSensitive(meta, "name");
        const char *namespace_ = cJSON_IsString(ns) && *ns->valuestring ? ns->valuestring : a->only_namespace;
        const char *pod = cJSON_IsString(name) ? name->valuestring : "(no name)";

        if (cJSON_IsString(kind) && strcmp(kind->valuestring, "Pod") != 0) {
                a->not_pods++;
                return 0;
        }
        if (!cJSON_IsObject(item)) {
                snprintf(a->err, sizeof a->err, "an item of the list is not an object");
                return -EINVAL;
        }
        if (!namespace_) {
                snprintf(a->err, sizeof a->err, "pod %s has no metadata.namespace; say which with --namespace", pod);
                return -EINVAL;
        }
        if (a->only_namespace && strcmp(namespace_, a->only_namespace) != 0)
                return 0;

        struct ns_info info;
        struct findings_context fc;
        ns_context(a, namespace_, &info, &fc);
        int r = findings_check_pod(a->policy, namespace_, &fc, item, &a->findings, NULL);
        if (r == -E2BIG)
                snprintf(a->err, sizeof a->err, "pod %s/%s: the changes admission would make pass their bounds",
                         namespace_, pod);
        else if (r == -ENOMEM)
                snprintf(a->err, sizeof a->err, "out of memory");
        else if (r < 0)
                snprintf(a->err, sizeof a->err, "pod %s/%s could not be judged (%s)", namespace_, pod, strerror(-r));
        return r;
}

/* A pod whose answer passed AUDIT_PAGE_MAX_BYTES alone: a too-large
 * finding, named by the metadata that came of it. */
static int on_pod_too_large(struct audit *a, const cJSON *metadata)
{
        const cJSON *ns = cJSON_GetObjectItemCaseSensitive(metadata, "namespace");
        const cJSON *name = cJSON_GetObjectItemCaseSensitive(metadata, "name");
        const char *namespace_ = cJSON_IsString(ns) && *ns->valuestring ? ns->valuestring : a->only_namespace;
        const char *pod = cJSON_IsString(name) ? name->valuestring : "(no name)";
        if (!namespace_) {
                snprintf(a->err, sizeof a->err,
                         "pod %s passes %u bytes, and its namespace does not come within "
                         "them",
                         pod, AUDIT_PAGE_MAX_BYTES);
                return -EINVAL;
        }
        if (a->only_namespace && strcmp(namespace_, a->only_namespace) != 0)
                return 0;
        struct ns_info info;
        struct findings_context fc;
        ns_context(a, namespace_, &info, &fc);
        int r = findings_add_too_large(a->policy, namespace_, &fc, metadata, AUDIT_PAGE_MAX_BYTES, &a->findings);
        if (r < 0) {
                snprintf(a->err, sizeof a->err, "out of memory");
                return r;
        }
        say("pod %s/%s: the API server's answer with it alone passes %u bytes: not judged, reported as "
            "too-large",
            namespace_, pod, AUDIT_PAGE_MAX_BYTES);
        return 0;
}

static int on_namespace(void *ctx, const cJSON *item)
{
        struct audit *a = ctx;
        const cJSON *kind = cJSON_GetObjectItemCaseSensitive(item, "kind");
        if (cJSON_IsString(kind) && strcmp(kind->valuestring, "Namespace") != 0)
                return 0;
        const cJSON *meta = cJSON_GetObjectItemCaseSensitive(item, "metadata");
        const cJSON *name = cJSON_GetObjectItemCaseSensitive(meta, "name");
        if (!cJSON_IsString(name))
                return 0;
        int r = ns_table_add(&a->ns, name->valuestring, cJSON_GetObjectItemCaseSensitive(meta, "labels"),
                             cJSON_GetObjectItemCaseSensitive(meta, "annotations"));
        if (r == -E2BIG)
                snprintf(a->err, sizeof a->err, "more than %u namespaces", WH_NS_TABLE_MAX);
        else if (r < 0)
                snprintf(a->err, sizeof a->err, "out of memory");
        return r;
}

/* ---- from a file ---- */

struct mapped {
        const char *data;
        size_t len;
        void *map;              /* mmap()ed, or NULL */
        struct buf read;        /* read from a pipe */
};

/* Maps a regular file; reads anything else (stdin, a pipe) into memory. */
static int map_file(const char *path, size_t pipe_max, struct mapped *m, char *err, size_t errlen)
{
        bool is_stdin = strcmp(path, "-") == 0;
        int fd = is_stdin ? STDIN_FILENO : open(path, O_RDONLY | O_CLOEXEC);
        struct stat st;
        memset(m, 0, sizeof *m);
        buf_init(&m->read, pipe_max);
        if (fd < 0 || fstat(fd, &st) < 0) {
                int e = errno;
                err_set(err, errlen, "cannot read %s: %s", path, strerror(e));
                if (fd >= 0 && !is_stdin)
                        close(fd);
                return -e;
        }
        if (S_ISDIR(st.st_mode)) {
                err_set(err, errlen, "cannot read %s: it is a directory", path);
                if (!is_stdin)
                        close(fd);
                return -EISDIR;
        }
        if (S_ISREG(st.st_mode) && st.st_size > 0) {
                m->map = mmap(NULL, (size_t)st.st_size, PROT_READ, MAP_PRIVATE, fd, 0);
                int e = errno;
                if (!is_stdin)
                        close(fd);
                if (m->map == MAP_FAILED) {
                        m->map = NULL;
                        err_set(err, errlen, "cannot read %s: %s", path, strerror(e));
                        return -e;
                }
                m->data = m->map;
                m->len = (size_t)st.st_size;
                return 0;
        }
        if (!is_stdin)
                close(fd);
        int r = fileio_read(is_stdin ? "/dev/stdin" : path, &m->read, err, errlen);
        if (r < 0)
                return r;
        m->data = m->read.data ? m->read.data : "";
        m->len = m->read.len;
        return 0;
}

static void unmap_file(struct mapped *m)
{
        if (m->map)
                munmap(m->map, m->len);
        buf_free(&m->read);
}

/* A List of objects, or one object (kind `single`), from a file. */
static int read_list_file(struct audit *a, const char *path, size_t pipe_max, const char *single,
                          int (*on_item)(void *ctx, const cJSON *item))
{
        struct mapped m;
        struct jsonlist_info info;
        char err[256];
        int r = map_file(path, pipe_max, &m, a->err, sizeof a->err);
        if (r < 0)
                return r;
        if (m.len == 0) {
                snprintf(a->err, sizeof a->err, "%s is empty", path);
                unmap_file(&m);
                return -EINVAL;
        }
        r = jsonlist_scan(m.data, m.len, on_item, a, &info, err, sizeof err);
        if (r == -EINVAL && !a->err[0])
                snprintf(a->err, sizeof a->err, "%s: %s", path, err);
        size_t klen = strlen(info.kind);
        bool a_list = info.has_items || (klen >= 4 && strcmp(info.kind + klen - 4, "List") == 0);
        if (r == 0 && !a_list) {
                if (strcmp(info.kind, single) != 0) {
                        snprintf(a->err, sizeof a->err, "%s holds %s%s, not a List or a %s", path,
                                 info.kind[0] ? "a " : "no kind", info.kind, single);
                        r = -EINVAL;
                } else {
                        cJSON *obj = cJSON_ParseWithLength(m.data, m.len);
                        r = obj ? on_item(a, obj) : -ENOMEM;
                        cJSON_Delete(obj);
                }
        }
        unmap_file(&m);
        return r;
}

/* ---- from the API ---- */


/* Says why a list call got `status`, with the Status message the API
 * server sent and, for 401 and 403, what to check. */
static void status_error(struct audit *a, const struct kube *k, const char *what, const char *path, long status,
                         const struct buf *body, const char *permission)
{
        cJSON *st = body->data ? cJSON_ParseWithLength(body->data, body->len) : NULL;
        const cJSON *msg = cJSON_GetObjectItemCaseSensitive(st, "message");
        const char *m = cJSON_IsString(msg) ? msg->valuestring : "";
        const char *hint = "";
        char perm[256] = "";
        if (status == 401) {
                hint = "; the credentials were refused (an expired or unknown token, or a certificate the "
                       "API server does not trust)";
        } else if (status == 403) {
                snprintf(perm, sizeof perm, "; the identity needs %s", permission);
                hint = perm;
        } else if (status == 410) {
                hint = "; the list expired while it was read: run again";
        }
        snprintf(a->err, sizeof a->err, "%s: GET %s%s: HTTP %ld%s%s%s", what, kube_server(k), path, status,
                 *m ? ": " : "", m, hint);
        cJSON_Delete(st);
}

/* One list to read from the API. */
struct list_call {
        const char *base;               /* "/api/v1/pods" */
        const char *what;               /* "listing pods", for messages */
        const char *permission;         /* what a 403 means the identity lacks */
        int (*on_item)(void *ctx, const cJSON *item);
        /* An item whose answer passes AUDIT_PAGE_MAX_BYTES alone, named by
         * the metadata that came of it; NULL: such an item is an error. */
        int (*on_too_large)(struct audit *a, const cJSON *metadata);
};

/* A page of one item whose answer passed the bound: the item is named from
 * the answer's head and handed to on_too_large(); the list goes on from the
 * continue token the head gave, into `cont` ("" when it was the last). */
static int past_too_large(struct audit *a, const struct list_call *lc, const struct buf *body, const char *path,
                          char *cont, size_t contlen)
{
        struct jsonlist_head *head = calloc(1, sizeof *head);
        cJSON *md = NULL;
        int r = head ? jsonlist_scan_head(body->data ? body->data : "", body->len, head, &md) : -ENOMEM;
        const char *why = NULL;
        if (r == -ENOMEM)
                why = "out of memory";
        else if (r == -E2BIG)
                why = "and its continue token is too long";
        else if (r < 0)
                why = "and it is not a JSON object";
        else if (!lc->on_too_large)
                why = "";
        else if (head->n_items)
                why = "and it holds more items than the limit asked for";
        else if (!head->has_metadata)
                why = "and its metadata (the continue token to go past it) does not come before the item";
        else if (!cJSON_IsString(cJSON_GetObjectItemCaseSensitive(md, "name")))
                why = "and the item's name does not come within them";
        if (why) {
                snprintf(a->err, sizeof a->err, "%s: GET %s: one item alone passes %u bytes%s%s", lc->what, path,
                         AUDIT_PAGE_MAX_BYTES, *why ? ", " : "", why);
                r = r < 0 ? r : -E2BIG;
        } else {
                r = lc->on_too_large(a, md);
                if (r == 0)
                        snprintf(cont, contlen, "%s", head->continue_);
        }
        cJSON_Delete(md);
        free(head);
        return r;
}

/* Lists lc->base page by page, handing each item to on_item(); a page is
 * dropped before the next is fetched. Pages are bounded in bytes too: an
 * answer past AUDIT_PAGE_MAX_BYTES is asked again from the same continue
 * token with half the limit, down to one item (see webhook_limits.h). */
static int api_list(struct audit *a, const struct kube *k, unsigned page_size, const struct list_call *lc)
{
        struct buf path, body;
        struct jsonlist_info *info = calloc(1, sizeof *info);
        char cont[JSONLIST_CONTINUE_MAX] = "", err[512];
        unsigned limit = page_size;
        int r = info ? 0 : -ENOMEM;
        buf_init(&path, AUDIT_PATH_MAX);
        buf_init(&body, AUDIT_PAGE_MAX_BYTES);
        while (r == 0) {
                long status = 0;
                buf_reset(&path);
                buf_reset(&body);
                r = buf_printf(&path, "%s?limit=%u", lc->base, limit);
                if (r == 0 && cont[0]) {
                        r = buf_puts(&path, "&continue=");
                        if (r == 0)
                                r = kube_put_query_value(&path, cont);
                }
                if (r < 0) {
                        snprintf(a->err, sizeof a->err, "%s: the request path is too long", lc->what);
                        break;
                }
                r = kube_get(k, path.data, WH_KUBE_LIST_TIMEOUT_MS, &body, &status, err, sizeof err);
                if (r == -E2BIG && status == 200 && limit > 1) {
                        limit /= 2;     /* the same page, half as long */
                        r = 0;
                        continue;
                }
                if (r == -E2BIG && status == 200) {
                        r = past_too_large(a, lc, &body, path.data, cont, sizeof cont);
                        if (r < 0 || !cont[0])
                                break;
                        continue;
                }
                if (r == -E2BIG) {
                        if (status)
                                snprintf(a->err, sizeof a->err, "%s: HTTP %ld: %s", lc->what, status, err);
                        else
                                snprintf(a->err, sizeof a->err, "%s: %s", lc->what, err);
                        break;
                }
                if (r < 0) {
                        snprintf(a->err, sizeof a->err, "%s: cannot reach the API server: %s", lc->what, err);
                        break;
                }
                if (status != 200) {
                        status_error(a, k, lc->what, path.data, status, &body, lc->permission);
                        r = -EIO;
                        break;
                }
                r = jsonlist_scan(body.data ? body.data : "", body.len, lc->on_item, a, info, err, sizeof err);
                if (r == -EINVAL && !a->err[0])
                        snprintf(a->err, sizeof a->err, "%s: the API server's answer to GET %s: %s", lc->what,
                                 path.data, err);
                else if (r == -E2BIG && !a->err[0])
                        snprintf(a->err, sizeof a->err, "%s: %s", lc->what, err);
                if (r < 0 || !info->continue_[0])
                        break;
                snprintf(cont, sizeof cont, "%s", info->continue_);
                if (info->n_items && limit < page_size) {
                        /* Grow back toward the page size, at this page's bytes per item. */
                        size_t fill = AUDIT_PAGE_MAX_BYTES / AUDIT_PAGE_FILL_PART / (body.len / info->n_items + 1);
                        if (fill > limit)
                                limit = fill < page_size ? (unsigned)fill : page_size;
                }
        }
        free(info);
        buf_free(&path);
        buf_free(&body);
        return r;
}

static int kube_connect(const char *kubeconfig, struct kube **ret, char *err, size_t errlen)
{
        char why[512];
        if (kube_global_init() < 0) {
                err_set(err, errlen, "cannot set up libcurl");
                return -EIO;
        }
        if (kubeconfig) {
                int r = kube_from_kubeconfig(kubeconfig, ret, why, sizeof why);
                if (r < 0)
                        err_set(err, errlen, "--kubeconfig %s: %s", kubeconfig, why);
                return r;
        }
        const char *sa_dir = getenv("SPARK_IDENTITY_WEBHOOK_SA_DIR");
        int r = kube_in_cluster(sa_dir && *sa_dir ? sa_dir : KUBE_SA_DIR, ret, why, sizeof why);
        if (r < 0)
                err_set(err, errlen, "--in-cluster: %s", why);
        return r;
}

/* ---- the command ---- */

/* A DNS-1123 label, as namespace names are; it goes into a URL path. */
static int parse_output(const char *s, enum output *ret)
{
        if (strcmp(s, "table") == 0)
                *ret = OUTPUT_TABLE;
        else if (strcmp(s, "json") == 0)
                *ret = OUTPUT_JSON;
        else if (strcmp(s, "policyreport") == 0)
                *ret = OUTPUT_POLICYREPORT;
        else
                return cli_usage_error(CMD, "-o wants table, json or policyreport, not \"%s\"", s);
        return 0;
}

/* What the command line asks for. */
struct audit_config {
        const char *policy_path, *pods_path, *kubeconfig, *namespaces_path;
        const char *only_namespace;     /* --namespace, or NULL */
        bool in_cluster;
        enum output output;
        unsigned page_size;
};

/* configure(): the run goes on. Any other value is the exit status. */
#define GO_ON (-1)

/* Reads the command line into `cfg`. GO_ON, 0 after --help, or 2 after
 * saying what is wrong. */
static int configure(int argc, char **argv, struct audit_config *cfg)
{
        static const struct option longopts[] = {
                { "policy", required_argument, NULL, 'p' },
                { "pods", required_argument, NULL, 'f' },
                { "kubeconfig", required_argument, NULL, 'k' },
                { "in-cluster", no_argument, NULL, 'c' },
                { "output", required_argument, NULL, 'o' },
                { "namespace", required_argument, NULL, 'n' },
                { "namespaces", required_argument, NULL, 'N' },
                { "page-size", required_argument, NULL, 's' },
                { "help", no_argument, NULL, 'h' },
                { 0 },
        };
        unsigned long long page_size = WH_KUBE_LIST_PAGE;
        int c;

        *cfg = (struct audit_config){ .output = OUTPUT_TABLE };
        optind = 1;
        opterr = 0;
        while ((c = getopt_long(argc, argv, ":ho:n:", longopts, NULL)) != -1) {
                switch (c) {
                case 'p': cfg->policy_path = optarg; break;
                case 'f': cfg->pods_path = optarg; break;
                case 'k': cfg->kubeconfig = optarg; break;
                case 'c': cfg->in_cluster = true; break;
                case 'o':
                        if (parse_output(optarg, &cfg->output))
                                return 2;
                        break;
                case 'n': cfg->only_namespace = optarg; break;
                case 'N': cfg->namespaces_path = optarg; break;
                case 's':
                        if (cli_uint(CMD, "--page-size", optarg, 1, AUDIT_PAGE_SIZE_MAX, &page_size) < 0)
                                return 2;
                        break;
                case 'h': cmd_audit_help(); return 0;
                case ':':
                default: return cli_getopt_error(CMD, c, argv);
                }
        }
        cfg->page_size = (unsigned)page_size;
        if (optind < argc)
                return cli_usage_error(CMD, "unexpected \"%s\"", argv[optind]);
        if (!cfg->policy_path)
                return cli_usage_error(CMD, "--policy is required");
        if ((cfg->pods_path != NULL) + (cfg->kubeconfig != NULL) + cfg->in_cluster != 1)
                return cli_usage_error(CMD, "give exactly one of --pods FILE, --kubeconfig FILE, --in-cluster");
        if (cfg->namespaces_path && !cfg->pods_path)
                return cli_usage_error(CMD, "--namespaces goes with --pods (from the API, namespaces are listed)");
        if (cfg->only_namespace && !ns_table_name_valid(cfg->only_namespace))
                return cli_usage_error(CMD,
                                       "--namespace wants a namespace name (a DNS label: at most 63 of "
                                       "a-z 0-9 -), not \"%s\"",
                                       cfg->only_namespace);
        return GO_ON;
}

/* The namespaces and pods from files: each pod judged as it is read. 0, or
 * a negative errno after saying why. */
static int fetch_files(struct audit *a, const struct audit_config *cfg)
{
        int r;
        if (cfg->namespaces_path) {
                r = read_list_file(a, cfg->namespaces_path, AUDIT_NAMESPACES_FILE_MAX, "Namespace", on_namespace);
                if (r < 0) {
                        say("--namespaces: %s", a->err);
                        return r;
                }
                ns_table_sort(&a->ns);
                a->ns_known = true;
        }
        r = read_list_file(a, cfg->pods_path, AUDIT_STDIN_MAX, "Pod", on_pod);
        if (r < 0)
                say("--pods: %s", a->err[0] ? a->err : strerror(-r));
        return r;
}

/* The namespaces from the API: for the policy's selectors and annotations,
 * and so that every namespace gets its PolicyReport. Only when the policy
 * needs them does failing to list them fail the run. 0, or a negative
 * errno after saying why. */
static int fetch_api_namespaces(struct audit *a, const struct kube *kube, const struct audit_config *cfg)
{
        bool needed = policy_uses_namespaces(a->policy);
        if (!needed && (cfg->output != OUTPUT_POLICYREPORT || cfg->only_namespace))
                return 0;
        struct list_call nl = {
                .base = "/api/v1/namespaces",
                .what = "listing namespaces",
                .on_item = on_namespace,
                .permission = needed ? "'list' on namespaces (the policy reads their labels or "
                                       "annotations)"
                                     : "'list' on namespaces (-o policyreport)",
        };
        int r = api_list(a, kube, cfg->page_size, &nl);
        if (r < 0 && needed) {
                say("%s", a->err);
                return r;
        }
        if (r < 0) {
                say("%s; reports only for the namespaces that have pods", a->err);
                a->err[0] = '\0';
                ns_table_free(&a->ns);
                return 0;
        }
        ns_table_sort(&a->ns);
        a->ns_known = true;
        return 0;
}

/* The namespaces and pods from the API: each pod judged as its page is
 * read. 0, or a negative errno after saying why. */
static int fetch_api(struct audit *a, const struct audit_config *cfg, struct kube **kube)
{
        char err[1024] = "", base[512], permission[512];
        int r = kube_connect(cfg->kubeconfig, kube, err, sizeof err);
        if (r < 0) {
                say("%s", err);
                return r;
        }
        r = fetch_api_namespaces(a, *kube, cfg);
        if (r < 0)
                return r;
        if (cfg->only_namespace) {
                snprintf(base, sizeof base, "/api/v1/namespaces/%s/pods", cfg->only_namespace);
                snprintf(permission, sizeof permission, "'list' on pods in namespace %s", cfg->only_namespace);
        } else {
                snprintf(base, sizeof base, "/api/v1/pods");
                snprintf(permission, sizeof permission,
                         "'list' on pods in all namespaces (a ClusterRole), "
                         "or give --namespace NS");
        }
        struct list_call pl = { .base = base,
                                .what = "listing pods",
                                .permission = permission,
                                .on_item = on_pod,
                                .on_too_large = on_pod_too_large };
        r = api_list(a, *kube, cfg->page_size, &pl);
        if (r < 0)
                say("%s", a->err);
        return r;
}

/* The stderr summary that goes with PolicyReports. */
static void say_totals(const struct audit *a, size_t left_out)
{
        struct findings_namespace t;
        findings_totals(&a->findings, &t);
        fprintf(stderr, CMD ": %zu findings in %zu pods (%zu pods judged, %zu unknown)", findings_total(&a->findings),
                t.verdicts[VERDICT_FINDINGS], t.verdicts[VERDICT_COMPLIANT] + t.verdicts[VERDICT_FINDINGS],
                t.verdicts[VERDICT_UNKNOWN]);
        if (left_out)
                fprintf(stderr, "; %zu results left out of the reports (at most %u per report)", left_out,
                        AUDIT_REPORT_MAX_RESULTS);
        fprintf(stderr, "\n");
}

/* Writes the report of the findings to stdout. The exit status: 0 no
 * findings, 1 findings, 2 when it could not be written. */
static int report(const struct audit *a, const struct audit_config *cfg, const struct kube *kube)
{
        const char *pods_path = cfg->pods_path;
        struct audit_report_info info = {
                .source = pods_path ? (strcmp(pods_path, "-") == 0 ? "stdin" : pods_path) : kube_server(kube),
                .policy_path = cfg->policy_path,
                .policy_sha256 = policy_sha256(a->policy),
                .time = (long long)time(NULL),
                .max_results = AUDIT_REPORT_MAX_RESULTS,
                .max_findings = AUDIT_MAX_FINDINGS,
                .namespaces_known = a->ns_known || !policy_uses_namespaces(a->policy),
        };
        /* The namespaces that get a PolicyReport even without pods. */
        const char **names = NULL;
        if (cfg->only_namespace) {
                info.namespaces = &cfg->only_namespace;
                info.n_namespaces = 1;
        } else if (a->ns_known && a->ns.n) {
                names = malloc(a->ns.n * sizeof *names);
                if (!names) {
                        fprintf(stderr, CMD ": out of memory\n");
                        return 2;
                }
                for (size_t i = 0; i < a->ns.n; i++)
                        names[i] = a->ns.v[i].name;
                info.namespaces = names;
                info.n_namespaces = a->ns.n;
        }
        size_t left_out = 0;
        int r;
        if (cfg->output == OUTPUT_TABLE)
                r = audit_report_table(&a->findings, &info, stdout);
        else if (cfg->output == OUTPUT_JSON)
                r = audit_report_json(&a->findings, &info, stdout);
        else
                r = audit_report_policyreports(&a->findings, &info, stdout, &left_out);
        free(names);
        if (r == 0 && fflush(stdout) != 0)
                r = -EIO;
        if (r < 0) {
                fprintf(stderr, CMD ": cannot write the report: %s\n", strerror(-r));
                return 2;
        }
        if (cfg->output == OUTPUT_POLICYREPORT)
                say_totals(a, left_out);
        return findings_total(&a->findings) ? 1 : 0;
}

/* Loads the policy, fetches and judges the pods, reports. The exit status. */
static int run(struct audit *a, const struct audit_config *cfg)
{
        struct buf errors;
        struct policy *policy = NULL;
        struct kube *kube = NULL;
        int rc = 2;
        buf_init(&errors, WH_POLICY_ERRORS_MAX_BYTES);
        if (policy_file_load(cfg->policy_path, &policy, &errors) < 0) {
                fprintf(stderr, CMD ": the policy is not valid:\n%s", errors.data ? errors.data : "");
        } else {
                a->policy = policy;
                a->only_namespace = cfg->only_namespace;
                int r = cfg->pods_path ? fetch_files(a, cfg) : fetch_api(a, cfg, &kube);
                if (r == 0 && a->not_pods)
                        fprintf(stderr, CMD ": %zu items of the list are not pods; skipped\n", a->not_pods);
                if (r == 0)
                        rc = report(a, cfg, kube);
        }
        kube_free(kube);
        policy_free(policy);
        buf_free(&errors);
        return rc;
}

int cmd_audit(int argc, char **argv)
{
        struct audit_config cfg;
        struct audit a = { 0 };
        int rc = configure(argc, argv, &cfg);
        if (rc == GO_ON) {
                findings_init(&a.findings, AUDIT_MAX_FINDINGS);
                ns_table_init(&a.ns, WH_NS_TABLE_MAX);
                rc = run(&a, &cfg);
                findings_free(&a.findings);
                ns_table_free(&a.ns);
        }
        return rc;
}
