/* Running one policy test case: the review the API server would send,
 * answered by admission on the mutating path, the patch applied, the
 * patched pod answered on the validating path, then every expectation
 * checked. See include/core/policytest.h. */
#include "policytest.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "admission.h"
#include "err.h"
#include "mutate.h"
#include "webhook_limits.h"

#define DEFAULT_USER "policy-test"
#define NOT_SET "(not set)"

/* ---- RFC 6902, the operations jsonpatch.h writes ---- */

/* The next RFC 6901 token of `*path` (which starts at a '/'), unescaped
 * into `out` (as long as the path); *path moves past it. */
static void next_token(const char **path, char *out)
{
        const char *s = *path + 1;
        size_t k = 0;
        for (; *s && *s != '/'; s++) {
                if (s[0] == '~' && (s[1] == '0' || s[1] == '1')) {
                        out[k++] = s[1] == '0' ? '~' : '/';
                        s++;
                } else {
                        out[k++] = *s;
                }
        }
        out[k] = '\0';
        *path = s;
}

static bool array_index(const char *token, int size, bool append_ok, int *ret)
{
        if (append_ok && strcmp(token, "-") == 0) {
                *ret = size;
                return true;
        }
        char *end;
        long v = strtol(token, &end, 10);
        if (!*token || *end || v < 0 || v > (append_ok ? size : size - 1) || (token[0] == '0' && token[1]))
                return false;
        *ret = (int)v;
        return true;
}

/* Applies one operation at the last token `token` of `parent`. */
static int apply_at(cJSON *parent, const char *token, const char *op, const cJSON *value)
{
        bool add = strcmp(op, "add") == 0, replace = strcmp(op, "replace") == 0;
        cJSON *copy = NULL;
        if ((add || replace) && !(copy = cJSON_Duplicate(value, true)))
                return -ENOMEM;
        int at;
        if (cJSON_IsObject(parent)) {
                /* Keys are case-sensitive (labels, env names): never cJSON_HasObjectItem. */
                bool has = cJSON_GetObjectItemCaseSensitive(parent, token) != NULL;
                if ((!add && !has) || (add && !has && !cJSON_AddItemToObject(parent, token, copy)))
                        goto fail;
                if (has && copy && !cJSON_ReplaceItemInObjectCaseSensitive(parent, token, copy))
                        goto fail;
                if (has && !copy)
                        cJSON_DeleteItemFromObjectCaseSensitive(parent, token);
                return 0;
        }
        if (!cJSON_IsArray(parent) || !array_index(token, cJSON_GetArraySize(parent), add, &at))
                goto fail;
        if (add && at == cJSON_GetArraySize(parent))
                return cJSON_AddItemToArray(parent, copy) ? 0 : (cJSON_Delete(copy), -ENOMEM);
        if (add)
                return cJSON_InsertItemInArray(parent, at, copy) ? 0 : (cJSON_Delete(copy), -ENOMEM);
        if (replace)
                return cJSON_ReplaceItemInArray(parent, at, copy) ? 0 : (cJSON_Delete(copy), -ENOMEM);
        cJSON_DeleteItemFromArray(parent, at);
        return 0;
fail:
        cJSON_Delete(copy);
        return -EINVAL;
}

static int apply_op(cJSON *doc, const cJSON *op, char *err, size_t errlen)
{
        const cJSON *o = cJSON_GetObjectItemCaseSensitive(op, "op");
        const cJSON *path = cJSON_GetObjectItemCaseSensitive(op, "path");
        const cJSON *value = cJSON_GetObjectItemCaseSensitive(op, "value");
        if (!cJSON_IsString(o) || !cJSON_IsString(path) || path->valuestring[0] != '/' ||
            (strcmp(o->valuestring, "remove") != 0 && !value) ||
            (strcmp(o->valuestring, "add") != 0 && strcmp(o->valuestring, "replace") != 0 &&
             strcmp(o->valuestring, "remove") != 0)) {
                err_set(err, errlen, "the patch has an operation this runner does not apply");
                return -EINVAL;
        }
        char *token = malloc(strlen(path->valuestring) + 1);
        if (!token)
                return -ENOMEM;
        const char *p = path->valuestring;
        cJSON *parent = doc;
        int r = -EINVAL, at;
        for (;;) {
                next_token(&p, token);
                if (!*p) {
                        r = apply_at(parent, token, o->valuestring, value);
                        break;
                }
                if (cJSON_IsObject(parent))
                        parent = cJSON_GetObjectItemCaseSensitive(parent, token);
                else if (cJSON_IsArray(parent) && array_index(token, cJSON_GetArraySize(parent), false, &at))
                        parent = cJSON_GetArrayItem(parent, at);
                else
                        parent = NULL;
                if (!parent)
                        break;
        }
        if (r == -EINVAL)
                err_set(err, errlen, "the patch's %s of %s does not apply to the pod", o->valuestring,
                        path->valuestring);
        free(token);
        return r;
}

int ptest_patch_apply(cJSON *doc, const char *patch, size_t len, char *err, size_t errlen)
{
        cJSON *ops = cJSON_ParseWithLength(patch, len);
        if (!cJSON_IsArray(ops)) {
                cJSON_Delete(ops);
                err_set(err, errlen, "the patch is not a JSON array");
                return -EINVAL;
        }
        int r = 0;
        const cJSON *op;
        cJSON_ArrayForEach(op, ops) {
                if ((r = apply_op(doc, op, err, errlen)) < 0)
                        break;
        }
        cJSON_Delete(ops);
        return r;
}

/* ---- the review and its answer ---- */

static int b64_value(char c)
{
        if (c >= 'A' && c <= 'Z')
                return c - 'A';
        if (c >= 'a' && c <= 'z')
                return c - 'a' + 26;
        if (c >= '0' && c <= '9')
                return c - '0' + 52;
        return c == '+' ? 62 : c == '/' ? 63 : -1;
}

/* Standard base64 (as review.c writes the patch) into a new string. */
static char *b64_decode(const char *s, size_t *ret_len)
{
        size_t n = strlen(s), k = 0;
        char *out = malloc(n / 4 * 3 + 4);
        unsigned acc = 0, bits = 0;
        if (!out)
                return NULL;
        for (size_t i = 0; i < n && s[i] != '='; i++) {
                int v = b64_value(s[i]);
                if (v < 0) {
                        free(out);
                        return NULL;
                }
                acc = (acc << 6) | (unsigned)v;
                bits += 6;
                if (bits >= 8) {
                        bits -= 8;
                        out[k++] = (char)((acc >> bits) & 0xFFu);
                }
        }
        out[k] = '\0';
        *ret_len = k;
        return out;
}

/* A Namespace object: the case's name, with `labels` and `annotations`. */
static cJSON *namespace_object(const char *name, const struct kv *labels, size_t n_labels, const struct kv *annotations,
                               size_t n_annotations)
{
        cJSON *ns = cJSON_CreateObject(), *meta = cJSON_AddObjectToObject(ns, "metadata");
        cJSON *l = cJSON_AddObjectToObject(meta, "labels"), *a = cJSON_AddObjectToObject(meta, "annotations");
        bool ok = cJSON_AddStringToObject(ns, "apiVersion", "v1") && cJSON_AddStringToObject(ns, "kind", "Namespace") &&
                  cJSON_AddStringToObject(meta, "name", name) && l && a;
        for (size_t i = 0; ok && i < n_labels; i++)
                ok = cJSON_AddStringToObject(l, labels[i].key, labels[i].value) != NULL;
        for (size_t i = 0; ok && i < n_annotations; i++)
                ok = cJSON_AddStringToObject(a, annotations[i].key, annotations[i].value) != NULL;
        if (!ok) {
                cJSON_Delete(ns);
                return NULL;
        }
        return ns;
}

/* The review's envelope: what the API server sends about a `resource`
 * (pods, namespaces) of `kind`, and who asks. */
static cJSON *envelope(const struct ptest_case *c, const char *resource, const char *kind)
{
        char text[640];
        snprintf(text, sizeof text,
                 "{\"apiVersion\":\"admission.k8s.io/v1\",\"kind\":\"AdmissionReview\",\"request\":{"
                 "\"uid\":\"policy-test\",\"kind\":{\"group\":\"\",\"version\":\"v1\",\"kind\":\"%s\"},"
                 "\"resource\":{\"group\":\"\",\"version\":\"v1\",\"resource\":\"%s\"},"
                 "\"requestKind\":{\"group\":\"\",\"version\":\"v1\",\"kind\":\"%s\"},"
                 "\"requestResource\":{\"group\":\"\",\"version\":\"v1\",\"resource\":\"%s\"},"
                 "\"dryRun\":false}}",
                 kind, resource, kind, resource);
        cJSON *root = cJSON_Parse(text), *req = cJSON_GetObjectItemCaseSensitive(root, "request");
        cJSON *user = cJSON_AddObjectToObject(req, "userInfo");
        cJSON *groups = cJSON_AddArrayToObject(user, "groups");
        bool ok = groups && cJSON_AddStringToObject(req, "namespace", c->namespace_) &&
                  cJSON_AddStringToObject(req, "operation", c->operation) &&
                  cJSON_AddStringToObject(user, "username", c->username ? c->username : DEFAULT_USER);
        for (size_t i = 0; ok && i < c->n_groups; i++)
                ok = cJSON_AddItemToArray(groups, cJSON_CreateString(c->groups[i]));
        if (ok && !c->groups)
                ok = cJSON_AddItemToArray(groups, cJSON_CreateString("system:authenticated"));
        if (!ok) {
                cJSON_Delete(root);
                return NULL;
        }
        return root;
}

/* The AdmissionReview the API server sends for the case: `pod` (and
 * `old_pod`), or for a namespace case the namespace before and after. */
static cJSON *review_of(const struct ptest_case *c, const cJSON *pod, const cJSON *old_pod)
{
        bool update = strcmp(c->operation, "UPDATE") == 0;
        cJSON *root = envelope(c, c->namespace_case ? "namespaces" : "pods", c->namespace_case ? "Namespace" : "Pod");
        cJSON *req = cJSON_GetObjectItemCaseSensitive(root, "request"), *object, *old;
        if (c->namespace_case) {
                object = namespace_object(c->namespace_, c->labels, c->n_labels, c->annotations, c->n_annotations);
                old = update ? namespace_object(c->namespace_, c->old_labels, c->n_old_labels, c->old_annotations,
                                                c->n_old_annotations)
                             : cJSON_CreateNull();
        } else {
                object = cJSON_Duplicate(pod, true);
                old = old_pod ? cJSON_Duplicate(old_pod, true) : cJSON_CreateNull();
        }
        bool ok = root && object && old && cJSON_AddItemToObject(req, "object", object);
        if (!ok)
                cJSON_Delete(object);
        ok = ok && cJSON_AddItemToObject(req, "oldObject", old);
        if (!ok)
                cJSON_Delete(old);
        /* The API server sets a pod's namespace to the request's. */
        cJSON *meta = cJSON_GetObjectItemCaseSensitive(object, "metadata");
        if (ok && !c->namespace_case && !meta)
                ok = (meta = cJSON_AddObjectToObject(object, "metadata")) != NULL;
        if (ok && !c->namespace_case && cJSON_IsObject(meta)) {
                cJSON_DeleteItemFromObjectCaseSensitive(meta, "namespace");
                ok = cJSON_AddStringToObject(meta, "namespace", c->namespace_) != NULL;
        }
        if (!ok) {
                cJSON_Delete(root);
                return NULL;
        }
        return root;
}

/* What one webhook answered. */
struct answer {
        bool allowed;
        const char *message;
        char *patch;            /* decoded; malloc'd, NULL when none */
        size_t patch_len;
};

static int keep_warning(struct ptest_result *res, const char *w)
{
        for (size_t i = 0; i < res->n_warnings; i++)
                if (strcmp(res->warnings[i], w) == 0)
                        return 0;   /* the API server shows a warning once */
        if (res->n_warnings >= 2u * WH_MAX_WARNINGS)
                return 0;
        const char **v = (const char **)res->warnings;
        v[res->n_warnings] = pool_strdup(&res->pool, w);
        if (!v[res->n_warnings])
                return -ENOMEM;
        res->n_warnings++;
        return 0;
}

/* Reads the answer body: allowed, the message, the warnings (into res),
 * the patch. */
static int read_answer(const struct buf *body, struct ptest_result *res, struct answer *ans, char *err, size_t errlen)
{
        cJSON *root = cJSON_ParseWithLength(body->data, body->len);
        const cJSON *resp = cJSON_GetObjectItemCaseSensitive(root, "response");
        int r = 0;
        if (!cJSON_IsObject(resp)) {
                err_set(err, errlen, "admission answered without a response");
                r = -EINVAL;
                goto out;
        }
        ans->allowed = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(resp, "allowed"));
        const cJSON *msg =
                cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(resp, "status"), "message");
        ans->message = pool_strdup(&res->pool, cJSON_IsString(msg) ? msg->valuestring : "");
        const cJSON *w, *patch = cJSON_GetObjectItemCaseSensitive(resp, "patch");
        cJSON_ArrayForEach(w, cJSON_GetObjectItemCaseSensitive(resp, "warnings")) {
                if (cJSON_IsString(w) && (r = keep_warning(res, w->valuestring)) < 0)
                        goto out;
        }
        if (!ans->message)
                r = -ENOMEM;
        else if (cJSON_IsString(patch) && !(ans->patch = b64_decode(patch->valuestring, &ans->patch_len))) {
                err_set(err, errlen, "admission answered with a patch that is not base64");
                r = -EINVAL;
        }
out:
        cJSON_Delete(root);
        return r;
}

/* Sends `review` to one webhook (`path`) as the server would answer it. */
static int ask(const struct policy *p, const struct ptest_case *c, enum admission_path path, const cJSON *review,
               struct ptest_result *res, struct answer *ans, char *err, size_t errlen)
{
        struct ns_known known = { .state = NS_FOUND,
                                  .info = { .labels = c->labels,
                                            .n_labels = c->n_labels,
                                            .annotations = c->annotations,
                                            .n_annotations = c->n_annotations } };
        char *text = cJSON_PrintUnformatted(review);
        struct admission a;
        if (!text)
                return -ENOMEM;
        admission_init(&a, WH_MAX_RESPONSE_BYTES);
        a.path = path;
        int r = admission_handle(p, &known, text, strlen(text), &a);
        if (r == 0 && a.status != 200) {
                err_set(err, errlen, "the %s webhook would answer HTTP %d: %s",
                        path == ADMISSION_MUTATE ? "mutating" : "validating", a.status, a.error);
                r = -EINVAL;
        }
        if (r == 0)
                r = read_answer(&a.body, res, ans, err, errlen);
        admission_free(&a);
        cJSON_free(text);
        return r;
}

/* The two webhooks in the API server's order: the mutating one, its patch
 * applied to the pod, then the validating one on the patched pod. */
static int answer_both(const struct policy *p, const struct ptest_case *c, const cJSON *pod, const cJSON *old_pod,
                       struct ptest_result *res, char *err, size_t errlen)
{
        struct answer mut = { 0 }, val = { 0 };
        cJSON *review = review_of(c, pod, old_pod);
        int r = review ? 0 : -ENOMEM;
        res->warnings = pool_alloc(&res->pool, 2u * WH_MAX_WARNINGS * sizeof *res->warnings);
        if (r == 0 && !res->warnings)
                r = -ENOMEM;
        if (r == 0)
                r = ask(p, c, ADMISSION_MUTATE, review, res, &mut, err, errlen);
        if (r < 0)
                goto out;
        cJSON *req = cJSON_GetObjectItemCaseSensitive(review, "request");
        res->pod_after = cJSON_DetachItemFromObjectCaseSensitive(req, "object");
        res->patched = mut.patch != NULL;
        res->allowed = mut.allowed;
        res->message = mut.message;
        if (mut.patch && (r = ptest_patch_apply(res->pod_after, mut.patch, mut.patch_len, err, errlen)) < 0)
                goto out;
        if (!mut.allowed)
                goto out;
        /* The validating webhook sees the pod as every mutating one left it. */
        cJSON *again = cJSON_Duplicate(res->pod_after, true);
        if (!again || !cJSON_AddItemToObject(req, "object", again)) {
                cJSON_Delete(again);
                r = -ENOMEM;
                goto out;
        }
        if ((r = ask(p, c, ADMISSION_VALIDATE, review, res, &val, err, errlen)) < 0)
                goto out;
        res->allowed = val.allowed;
        res->message = val.message;
out:
        free(mut.patch);
        free(val.patch);
        cJSON_Delete(review);
        return r;
}

/* ---- expectations ---- */

static int differ(struct ptest_result *res, const char *what, const char *want, const char *got)
{
        struct ptest_diff *d = &res->diffs[res->n_diffs];
        d->what = pool_strdup(&res->pool, what);
        d->want = pool_strdup(&res->pool, want);
        d->got = pool_strdup(&res->pool, got);
        if (!d->what || !d->want || !d->got)
                return -ENOMEM;
        res->n_diffs++;
        return 0;
}

/* The env entry's value in the pod's Spark container, as a person reads it. */
static const char *env_value(const cJSON *pod, const char *name)
{
        int idx = mutate_find_spark_container(pod);
        const cJSON *containers =
                cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(pod, "spec"), "containers");
        const cJSON *e, *ctr = idx < 0 ? NULL : cJSON_GetArrayItem(containers, idx);
        cJSON_ArrayForEach(e, cJSON_GetObjectItemCaseSensitive(ctr, "env")) {
                const cJSON *n = cJSON_GetObjectItemCaseSensitive(e, "name");
                if (!cJSON_IsString(n) || strcmp(n->valuestring, name) != 0)
                        continue;
                const cJSON *v = cJSON_GetObjectItemCaseSensitive(e, "value");
                if (cJSON_GetObjectItemCaseSensitive(e, "valueFrom"))
                        return "(valueFrom)";
                return cJSON_IsString(v) ? v->valuestring : "";
        }
        return NULL;
}

static int joined_warnings(const struct ptest_result *res, struct buf *out)
{
        if (!res->n_warnings)
                return buf_puts(out, "no warning");
        for (size_t i = 0; i < res->n_warnings; i++)
                if (buf_printf(out, "%s\"%s\"", i ? ", " : "", res->warnings[i]) < 0)
                        return -ENOMEM;
        return 0;
}

static int check_warnings(const struct ptest_expect *e, struct ptest_result *res)
{
        struct buf got;
        int r = 0;
        buf_init(&got, WH_MAX_RESPONSE_BYTES);
        for (size_t i = 0; r == 0 && i < e->n_warnings; i++) {
                bool found = false;
                for (size_t k = 0; k < res->n_warnings && !found; k++)
                        found = strstr(res->warnings[k], e->warnings[i]) != NULL;
                if (!found && (r = (got.len ? 0 : joined_warnings(res, &got))) == 0) {
                        char want[WH_MAX_WARNING_CHARS + 64];
                        snprintf(want, sizeof want, "a warning containing \"%s\"", e->warnings[i]);
                        r = differ(res, "warnings", want, got.data);
                }
        }
        if (r == 0 && e->has_warnings && !e->n_warnings && res->n_warnings && (r = joined_warnings(res, &got)) == 0)
                r = differ(res, "warnings", "no warning", got.data);
        buf_free(&got);
        return r;
}

/* One check per kind of expectation; each that does not hold adds a difference. */
static int check(const struct ptest_expect *e, struct ptest_result *res)
{
        int r = 0;
        const char *refused = res->allowed ? "allowed" : "refused";
        if (e->allowed >= 0 && e->allowed != (int)res->allowed) {
                char got[WH_MAX_MESSAGE_CHARS + 16];
                snprintf(got, sizeof got, "%s%s%s", refused, res->allowed ? "" : ": ", res->message);
                r = differ(res, "allowed", e->allowed ? "allowed" : "refused", got);
        }
        if (r == 0 && e->message && (res->allowed || !strstr(res->message, e->message))) {
                char want[WH_MAX_MESSAGE_CHARS + 32];
                snprintf(want, sizeof want, "refused, with a message containing \"%s\"", e->message);
                r = differ(res, "message", want, res->allowed ? "allowed" : res->message);
        }
        if (r == 0 && e->identity) {
                const char *want = strcmp(e->identity, "none") == 0 ? NULL : e->identity;
                const char *got = res->identity ? res->identity : "none";
                if ((want == NULL) != (res->identity == NULL) || (want && strcmp(want, res->identity) != 0))
                        r = differ(res, "identity", e->identity, got);
        }
        for (size_t i = 0; r == 0 && i < e->n_env; i++) {
                const char *got = env_value(res->pod_after, e->env[i].key);
                const char *want = e->env[i].value;
                if ((want == NULL) != (got == NULL) || (want && strcmp(want, got) != 0)) {
                        char what[WH_MAX_POLICY_STRING + 8];
                        snprintf(what, sizeof what, "env.%s", e->env[i].key);
                        r = differ(res, what, want ? want : NOT_SET, got ? got : NOT_SET);
                }
        }
        if (r == 0)
                r = check_warnings(e, res);
        if (r == 0 && e->patched >= 0 && e->patched != (int)res->patched)
                r = differ(res, "patched", e->patched ? "a patch" : "no patch", res->patched ? "a patch" : "no patch");
        return r;
}

int ptest_run(const struct policy *p, const struct ptest_case *c, const cJSON *pod, const cJSON *old_pod,
              struct ptest_result *ret, char *err, size_t errlen)
{
        struct ptest_result res = { 0 };
        int r = answer_both(p, c, pod, old_pod, &res, err, errlen);
        if (r < 0)
                goto fail;
        const cJSON *labels =
                cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(res.pod_after, "metadata"), "labels");
        const cJSON *id = cJSON_GetObjectItemCaseSensitive(labels, CHANGE_IDENTITY_LABEL);
        res.identity = cJSON_IsString(id) ? id->valuestring : NULL;
        /* At most one difference per expectation: allowed, message, identity,
         * each env entry, each warning or "none", patched. */
        size_t max = 5 + c->expect.n_env + c->expect.n_warnings;
        res.diffs = pool_alloc(&res.pool, max * sizeof *res.diffs);
        if (!res.diffs || (r = check(&c->expect, &res)) < 0) {
                r = -ENOMEM;
                goto fail;
        }
        res.pass = res.n_diffs == 0;
        *ret = res;
        return 0;
fail:
        ptest_result_free(&res);
        return r;
}

void ptest_result_free(struct ptest_result *r)
{
        cJSON_Delete(r->pod_after);
        pool_free(&r->pool);
        *r = (struct ptest_result){ 0 };
}
