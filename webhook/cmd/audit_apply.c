/* `audit -o policyreport --apply`: see include/cmd/audit_apply.h.
 *
 * Why list, then POST or PUT with the resourceVersion, and not server-side
 * apply: the reports this tool made have to be listed anyway (by their
 * label) to delete those of namespaces that have become compliant, and the
 * list shows what each report says. A report whose findings did not change
 * is then not written at all ("unchanged"), where an apply would rewrite it
 * at every run (each result carries the time of the audit). A PUT with the
 * resourceVersion the list gave, and a DELETE with it as a precondition,
 * fail with 409 rather than overwrite or delete a report changed meanwhile,
 * and a POST does not take over a report of the same name that another tool
 * made. The account needs list, create, update and delete on policyreports;
 * no get, no patch. */
#include "audit_apply.h"

#include <errno.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>
#include <openssl/evp.h>

#include "buf.h"
#include "ns_table.h"
#include "webhook_limits.h"

#define CRD_MISSING                                                                                            \
        "the PolicyReport CRD (wgpolicyk8s.io/v1alpha2) is not installed: install the one your policy engine " \
        "ships (Kyverno, or the Policy WG's), then run again"
#define RESOURCE "policyreports.wgpolicyk8s.io"
#define PATH_MAX_BYTES 1024u
#define RV_MAX 64u

/* A report this tool made, as the list found it. */
struct existing {
        char namespace_[WH_NS_NAME_MAX + 1];
        char rv[RV_MAX];
        unsigned char digest[32];       /* of what it says (digest()) */
        bool seen;                      /* the audit found findings there */
};

struct apply {
        const struct kube *k;
        const char *only_namespace;
        unsigned page_size;             /* reports per page of the list */
        FILE *out;
        struct existing *v;
        size_t n, cap;
        struct audit_apply_counts c;
        struct buf answer;
        int stop;                       /* a refusal that stops the run (401, 403) */
};

/* ---- what a report says ---- */

static int cmp_child(const void *a, const void *b)
{
        const cJSON *x = *(const cJSON *const *)a, *y = *(const cJSON *const *)b;
        return strcmp(x->string, y->string);
}

/* Sorts every object's keys, so that two trees that say the same print
 * the same, whatever order their keys came in (the API server sorts them). */
static int canon(cJSON *node)
{
        cJSON *it;
        cJSON_ArrayForEach(it, node) {
                int r = canon(it);
                if (r < 0)
                        return r;
        }
        int n = cJSON_GetArraySize(node);
        if (!cJSON_IsObject(node) || n < 2)
                return 0;
        cJSON **kids = malloc((size_t)n * sizeof *kids);
        if (!kids)
                return -ENOMEM;
        int i = 0;
        cJSON_ArrayForEach(it, node)
                kids[i++] = it;
        qsort(kids, (size_t)n, sizeof *kids, cmp_child);
        for (i = 0; i < n; i++) {
                kids[i]->prev = i ? kids[i - 1] : kids[n - 1];   /* cJSON: the head's prev is the tail */
                kids[i]->next = i + 1 < n ? kids[i + 1] : NULL;
        }
        node->child = kids[0];
        free(kids);
        return 0;
}

/* SHA-256 of what a report says: its summary, its results without their
 * timestamps, and this tool's annotations. Two runs that find the same give
 * the same digest. */
static int digest(const cJSON *report, unsigned char out[32])
{
        const cJSON *ann =
                cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(report, "metadata"), "annotations");
        cJSON *said = cJSON_CreateObject(), *mine = cJSON_AddObjectToObject(said, "annotations");
        static const char *const keys[] = { AUDIT_REPORT_SHA256_ANNOTATION, AUDIT_REPORT_LEFT_OUT_ANNOTATION };
        for (size_t i = 0; mine && i < sizeof keys / sizeof *keys; i++) {
                const cJSON *a = cJSON_GetObjectItemCaseSensitive(ann, keys[i]);
                if (a)
                        cJSON_AddItemToObject(mine, keys[i], cJSON_Duplicate(a, true));
        }
        const cJSON *summary = cJSON_GetObjectItemCaseSensitive(report, "summary");
        cJSON *results = cJSON_Duplicate(cJSON_GetObjectItemCaseSensitive(report, "results"), true), *it;
        cJSON_ArrayForEach(it, results)
                cJSON_DeleteItemFromObjectCaseSensitive(it, "timestamp");
        if (said && summary)
                cJSON_AddItemToObject(said, "summary", cJSON_Duplicate(summary, true));
        if (said && results)
                cJSON_AddItemToObject(said, "results", results);
        else
                cJSON_Delete(results);
        int r = said && mine ? canon(said) : -ENOMEM;
        char *text = r == 0 ? cJSON_PrintUnformatted(said) : NULL;
        if (r == 0 && (!text || EVP_Digest(text, strlen(text), out, NULL, EVP_sha256(), NULL) != 1))
                r = -ENOMEM;
        free(text);
        cJSON_Delete(said);
        return r;
}

/* ---- answers ---- */

/* Says why `method path` got `status`: the API server's message, and for
 * 401 and 403 what to check. */
static void refused(const struct apply *a, const char *method, const char *path, long status, const char *verb,
                    const char *ns)
{
        cJSON *st = a->answer.data ? cJSON_ParseWithLength(a->answer.data, a->answer.len) : NULL;
        const cJSON *msg = cJSON_GetObjectItemCaseSensitive(st, "message");
        const char *m = cJSON_IsString(msg) ? msg->valuestring : "";
        char hint[256] = "";
        if (status == 401)
                snprintf(hint, sizeof hint,
                         "; the credentials were refused (an expired or unknown token, or a "
                         "certificate the API server does not trust)");
        else if (status == 403 && ns)
                snprintf(hint, sizeof hint, "; the identity needs '%s' on " RESOURCE " in namespace %s", verb, ns);
        else if (status == 403)
                snprintf(hint, sizeof hint,
                         "; the identity needs '%s' on " RESOURCE " in all namespaces (a "
                         "ClusterRole), or give --namespace NS",
                         verb);
        else if (status == 409 && strcmp(method, "POST") != 0)
                snprintf(hint, sizeof hint, "; the report changed while the audit ran: run again");
        audit_say("%s %s%s: HTTP %ld%s%s%s", method, kube_server(a->k), path, status, *m ? ": " : "", m, hint);
        cJSON_Delete(st);
}

/* Whether a refusal is the API server's "namespace is being terminated"
 * (403 with the cause NamespaceTerminating): no new object goes there, and
 * its report goes with it. */
static bool namespace_terminating(const struct apply *a, long status)
{
        if (status != 403 || !a->answer.data)
                return false;
        cJSON *st = cJSON_ParseWithLength(a->answer.data, a->answer.len);
        const cJSON *causes =
                            cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(st, "details"), "causes"),
                    *c;
        bool yes = false;
        cJSON_ArrayForEach(c, causes) {
                const cJSON *reason = cJSON_GetObjectItemCaseSensitive(c, "reason");
                yes |= cJSON_IsString(reason) && strcmp(reason->valuestring, "NamespaceTerminating") == 0;
        }
        cJSON_Delete(st);
        return yes;
}

/* One request; 0 with the status, or a negative errno after saying why. */
static int call(struct apply *a, const char *method, const char *path, const char *body, long *ret_status)
{
        char err[512] = "";
        struct kube_body kb = { .data = body, .len = body ? strlen(body) : 0 };
        unsigned timeout = strcmp(method, "GET") == 0 ? WH_KUBE_LIST_TIMEOUT_MS : WH_KUBE_WRITE_TIMEOUT_MS;
        buf_reset(&a->answer);
        int r = kube_request(a->k, method, path, body ? &kb : NULL, timeout, &a->answer, ret_status, err, sizeof err);
        if (r < 0)
                audit_say("%s %s: %s", method, path, err);
        return r;
}

/* ---- the reports there are ---- */

static int add_existing(struct apply *a, const cJSON *item)
{
        const cJSON *md = cJSON_GetObjectItemCaseSensitive(item, "metadata");
        const cJSON *ns = cJSON_GetObjectItemCaseSensitive(md, "namespace");
        const cJSON *name = cJSON_GetObjectItemCaseSensitive(md, "name");
        const cJSON *rv = cJSON_GetObjectItemCaseSensitive(md, "resourceVersion");
        /* Another name with the label is not a report this tool writes. */
        if (!cJSON_IsString(name) || strcmp(name->valuestring, AUDIT_REPORT_NAME) != 0 || !cJSON_IsString(ns) ||
            strlen(ns->valuestring) > WH_NS_NAME_MAX || !cJSON_IsString(rv) || strlen(rv->valuestring) >= RV_MAX)
                return 0;
        if (a->n == a->cap) {
                size_t cap = a->cap ? 2 * a->cap : 64;
                struct existing *v = cap <= WH_NS_TABLE_MAX ? realloc(a->v, cap * sizeof *v) : NULL;
                if (!v)
                        return -ENOMEM;
                a->v = v;
                a->cap = cap;
        }
        struct existing *e = &a->v[a->n];
        memset(e, 0, sizeof *e);
        snprintf(e->namespace_, sizeof e->namespace_, "%s", ns->valuestring);
        snprintf(e->rv, sizeof e->rv, "%s", rv->valuestring);
        int r = digest(item, e->digest);
        if (r == 0)
                a->n++;
        return r;
}

/* The path of one page of the reports this tool made in scope. */
static int list_path(const struct apply *a, const char *cont, struct buf *path)
{
        int r = buf_puts(path, AUDIT_APPLY_API);
        if (r == 0 && a->only_namespace)
                r = buf_printf(path, "/namespaces/%s", a->only_namespace);
        if (r == 0)
                r = buf_puts(path, "/policyreports?labelSelector=");
        if (r == 0)
                r = kube_put_query_value(path, AUDIT_APPLY_SELECTOR);
        if (r == 0)
                r = buf_printf(path, "&limit=%u", a->page_size);
        if (r == 0 && cont[0]) {
                r = buf_puts(path, "&continue=");
                if (r == 0)
                        r = kube_put_query_value(path, cont);
        }
        return r;
}

/* One page of the list into a->v; its continue token into `cont`. */
static int list_page(struct apply *a, const char *path, char *cont, size_t contlen)
{
        cJSON *page = cJSON_ParseWithLength(a->answer.data ? a->answer.data : "", a->answer.len);
        const cJSON *items = cJSON_GetObjectItemCaseSensitive(page, "items"), *it;
        const cJSON *more =
                cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(page, "metadata"), "continue");
        int r = 0;
        if (!cJSON_IsArray(items) && !cJSON_IsNull(items)) {
                audit_say("GET %s: the answer is not a list", path);
                r = -EINVAL;
        }
        cJSON_ArrayForEach(it, items) {
                if (r == 0 && (r = add_existing(a, it)) < 0)
                        audit_say("out of memory");
        }
        const char *c = cJSON_IsString(more) ? more->valuestring : "";
        if (r == 0 && strlen(c) >= contlen) {
                audit_say("GET %s: the continue token is too long", path);
                r = -E2BIG;
        }
        if (r == 0)
                snprintf(cont, contlen, "%s", c);
        cJSON_Delete(page);
        return r;
}

static int cmp_existing(const void *x, const void *y)
{
        return strcmp(((const struct existing *)x)->namespace_, ((const struct existing *)y)->namespace_);
}

/* Lists the reports this tool made in scope, page by page. */
static int list_existing(struct apply *a)
{
        char cont[4096] = "";
        struct buf path;
        int r = 0;
        buf_init(&path, PATH_MAX_BYTES + sizeof cont * 3);
        do {
                long status = 0;
                buf_reset(&path);
                if ((r = list_path(a, cont, &path)) < 0) {
                        audit_say("listing PolicyReports: the request path is too long");
                        break;
                }
                if ((r = call(a, "GET", path.data, NULL, &status)) < 0)
                        break;
                if (status == 404) {
                        audit_say("%s", CRD_MISSING);
                        r = -ENOENT;
                } else if (status != 200) {
                        refused(a, "GET", path.data, status, "list", a->only_namespace);
                        r = status == 401 || status == 403 ? -EACCES : -EIO;
                } else {
                        r = list_page(a, path.data, cont, sizeof cont);
                }
        } while (r == 0 && cont[0]);
        buf_free(&path);
        if (r == 0)
                qsort(a->v, a->n, sizeof *a->v, cmp_existing);
        return r;
}

/* ---- writing ---- */

static void done(struct apply *a, const char *what, size_t *count, const struct audit_report_one *one)
{
        (*count)++;
        fprintf(a->out, "%-9s %s: %zu fail, %zu pass, %zu skip\n", what, one->namespace_, one->fail, one->pass,
                one->skip);
}

/* The report of a namespace with findings, created or replaced (with the
 * resourceVersion the list gave) unless it says the same already. */
static int write_one(struct apply *a, const struct audit_report_one *one, struct existing *e)
{
        char path[PATH_MAX_BYTES];
        unsigned char d[32];
        long status = 0;
        cJSON *doc = cJSON_ParseWithLength(one->json, one->len);
        int r = doc ? digest(doc, d) : -ENOMEM;
        char *body = NULL;
        if (r == 0 && e && memcmp(d, e->digest, sizeof d) == 0) {
                done(a, "unchanged", &a->c.unchanged, one);
                goto out;
        }
        if (r == 0 && e)
                r = cJSON_AddStringToObject(cJSON_GetObjectItemCaseSensitive(doc, "metadata"), "resourceVersion", e->rv)
                            ? 0
                            : -ENOMEM;
        if (r == 0 && !(body = cJSON_PrintUnformatted(doc)))
                r = -ENOMEM;
        if (r < 0) {
                audit_say("out of memory");
                goto out;
        }
        snprintf(path, sizeof path, AUDIT_APPLY_API "/namespaces/%s/policyreports%s", one->namespace_,
                 e ? "/" AUDIT_REPORT_NAME : "");
        if ((r = call(a, e ? "PUT" : "POST", path, body, &status)) < 0)
                goto out;
        if (status == (e ? 200 : 201)) {
                done(a, e ? "updated" : "created", e ? &a->c.updated : &a->c.created, one);
        } else if (!e && status == 404) {
                /* The list showed the CRD: it is the namespace that is gone. */
                fprintf(a->out, "%-9s %s: the namespace was deleted while the audit ran\n", "skipped", one->namespace_);
        } else if (namespace_terminating(a, status)) {
                fprintf(a->out, "%-9s %s: the namespace is being deleted\n", "skipped", one->namespace_);
        } else if (!e && status == 409) {
                audit_say("POST %s%s: a PolicyReport named " AUDIT_REPORT_NAME
                          " is there without the label " AUDIT_APPLY_SELECTOR ": another tool's; left alone",
                          kube_server(a->k), path);
                r = -EEXIST;
        } else {
                refused(a, e ? "PUT" : "POST", path, status, e ? "update" : "create", one->namespace_);
                r = status == 401 || status == 403 ? -EACCES : -EIO;
        }
out:
        free(body);
        cJSON_Delete(doc);
        return r;
}

static int on_report(void *ctx, const struct audit_report_one *one)
{
        struct apply *a = ctx;
        struct existing key = { 0 };
        snprintf(key.namespace_, sizeof key.namespace_, "%s", one->namespace_);
        struct existing *e = a->n ? bsearch(&key, a->v, a->n, sizeof *a->v, cmp_existing) : NULL;
        if (!one->fail)
                return 0;   /* compliant: its report, if any, is deleted after */
        if (!ns_table_name_valid(one->namespace_)) {
                /* It goes into a URL path; the API's namespaces are DNS labels. */
                audit_say("namespace \"%s\" is not a namespace name: its report is not written", one->namespace_);
                a->c.failed++;
                return 0;
        }
        if (e)
                e->seen = true;
        int r = write_one(a, one, e);
        if (r == -EACCES || r == -ENOMEM) {
                a->stop = r;
                return r;
        }
        if (r < 0)
                a->c.failed++;
        return 0;
}

/* Deletes a report of a namespace without findings, unless it changed
 * since it was listed. */
static int delete_one(struct apply *a, const struct existing *e)
{
        char path[PATH_MAX_BYTES], body[256];
        long status = 0;
        snprintf(path, sizeof path, AUDIT_APPLY_API "/namespaces/%s/policyreports/" AUDIT_REPORT_NAME, e->namespace_);
        snprintf(body, sizeof body,
                 "{\"apiVersion\": \"v1\", \"kind\": \"DeleteOptions\", \"preconditions\": {\"resourceVersion\": "
                 "\"%s\"}}",
                 e->rv);
        int r = call(a, "DELETE", path, body, &status);
        if (r < 0)
                return r;
        if (status == 200 || status == 202 || status == 404) {
                fprintf(a->out, "%-9s %s: no findings\n", "deleted", e->namespace_);
                return 0;
        }
        refused(a, "DELETE", path, status, "delete", e->namespace_);
        return status == 401 || status == 403 ? -EACCES : -EIO;
}

int audit_apply(const struct kube *k, const struct findings *f, const struct audit_report_info *info,
                const char *only_namespace, unsigned page_size, FILE *out, struct audit_apply_counts *ret_counts)
{
        struct apply a = {
                .k = k,
                .only_namespace = only_namespace,
                .page_size = page_size && page_size < AUDIT_REPORT_LIST_PAGE ? page_size : AUDIT_REPORT_LIST_PAGE,
                .out = out,
        };
        buf_init(&a.answer, WH_KUBE_MAX_RESPONSE_BYTES);
        int r = list_existing(&a);
        if (r == 0)
                r = audit_report_policyreports_each(f, info, on_report, &a);
        if (r == -ENOMEM && !a.stop)
                audit_say("out of memory");
        for (size_t i = 0; r == 0 && i < a.n; i++) {
                if (a.v[i].seen)
                        continue;
                int d = delete_one(&a, &a.v[i]);
                if (d == -EACCES)
                        r = d;
                else if (d < 0)
                        a.c.failed++;
                else
                        a.c.deleted++;
        }
        fprintf(out, "PolicyReports: %zu created, %zu updated, %zu unchanged, %zu deleted", a.c.created, a.c.updated,
                a.c.unchanged, a.c.deleted);
        if (a.c.failed)
                fprintf(out, ", %zu failed", a.c.failed);
        fprintf(out, "\n");
        if (r == 0 && a.c.failed)
                r = -EIO;
        *ret_counts = a.c;
        free(a.v);
        buf_free(&a.answer);
        return r;
}
