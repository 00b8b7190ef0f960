/* fuzz_review: admission_handle() on arbitrary bytes, the whole body-to-body
 * path of the server (AdmissionReview parsing, the namespace's rule, the
 * mutation, the JSON Patch, the response).
 *
 * Each input is answered twice:
 *   1. with tests/fixtures/policy.yaml (rules by name), no namespace source,
 *      cJSON on malloc: AddressSanitizer sees every node;
 *   2. with tests/fuzz/policy-namespaces.yaml (by name, by label selector, by
 *      annotations) and a namespace source that reads a namespace's labels
 *      and annotations from its name, inside the server's cJSON arena
 *      (arena_begin/arena_end), as cmd_serve's admit() runs it.
 * The namespace name is "k=v,k=v,a:identity=x,a:client-id=GUID": pairs
 * become labels, "a:" pairs become spark-identity.io/ annotations; a name
 * starting "gone" does not exist (-ENOENT), one starting "err" cannot be
 * read (-EIO).
 *
 * Invariants on every answer:
 *   - status 200, 400 or 500, and the body fits the response bound;
 *   - the body is strict JSON (RFC 8259: no raw control characters);
 *   - a 200 body is an AdmissionReview with our apiVersion, the request's
 *     uid and a boolean allowed; a denial carries a 403 status; at most
 *     WH_MAX_WARNINGS warnings of at most WH_MAX_WARNING_CHARS bytes;
 *   - a patch is base64 of exactly the mutation's patch text: strict JSON,
 *     an array of add/replace/remove operations whose paths start with "/"
 *     and are valid JSON pointers;
 *   - for a pod without duplicate keys whose metadata is an object, the
 *     patch applies to request.object (RFC 6902), the patched pod carries
 *     the identity label the mutation names, and answering the patched pod
 *     again changes nothing (the webhook is idempotent, which
 *     reinvocationPolicy: IfNeeded relies on);
 *   - a request that is UTF-8 gets an answer that is UTF-8 (RFC 8259 8.1;
 *     FUZZ_UTF8=0 turns this one off). */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "admission.h"
#include "arena.h"
#include "policy.h"
#include "webhook_limits.h"

#include "fuzz_util.h"

static struct policy *by_name;        /* tests/fixtures/policy.yaml */
static struct policy *by_namespace;   /* tests/fuzz/policy-namespaces.yaml */
static bool check_utf8;

/* ---- a namespace source read from the namespace's name ---- */

/* What the serving layer reads a namespace with, before the core decides. */
struct ns_source {
        void *ctx;
        int (*lookup)(void *ctx, const char *name, struct ns_info *ret, char *err, size_t errlen);
        void (*done)(void *ctx);
};

#define NS_MAX_PAIRS 16u

struct fake_ns {
        char text[512];
        struct kv labels[NS_MAX_PAIRS], annotations[NS_MAX_PAIRS];
        char annotation_keys[NS_MAX_PAIRS][96];
        size_t n_labels, n_annotations;
        int lookups, dones;
};

static struct fake_ns current;

static int fake_lookup(void *ctx, const char *name, struct ns_info *ret, char *err, size_t errlen)
{
        struct fake_ns *ns = ctx;
        ns->lookups++;
        if (strncmp(name, "gone", 4) == 0)
                return -ENOENT;
        if (strncmp(name, "err", 3) == 0) {
                snprintf(err, errlen, "the API server said 503 for namespace %.40s", name);
                return -EIO;
        }
        snprintf(ns->text, sizeof ns->text, "%s", name);
        ns->n_labels = ns->n_annotations = 0;
        char *save = NULL;
        for (char *item = strtok_r(ns->text, ",", &save); item; item = strtok_r(NULL, ",", &save)) {
                char *eq = strchr(item, '=');
                if (!eq)
                        continue;
                *eq = '\0';
                if (strncmp(item, "a:", 2) == 0) {
                        if (ns->n_annotations == NS_MAX_PAIRS)
                                continue;
                        char *key = ns->annotation_keys[ns->n_annotations];
                        snprintf(key, sizeof ns->annotation_keys[0], POLICY_ANNOTATION_PREFIX "%s", item + 2);
                        ns->annotations[ns->n_annotations++] = (struct kv){ key, eq + 1 };
                } else if (ns->n_labels < NS_MAX_PAIRS) {
                        ns->labels[ns->n_labels++] = (struct kv){ item, eq + 1 };
                }
        }
        *ret = (struct ns_info){ .labels = ns->labels,
                                 .n_labels = ns->n_labels,
                                 .annotations = ns->annotations,
                                 .n_annotations = ns->n_annotations };
        return 0;
}

static void fake_done(void *ctx)
{
        struct fake_ns *ns = ctx;
        ns->dones++;
}

static const struct ns_source fake_source = {
        .ctx = &current,
        .lookup = fake_lookup,
        .done = fake_done,
};

static struct policy *load_policy(const char *rel)
{
        size_t len;
        char *text = fuzz_read_source_file(rel, &len);
        struct buf errors;
        struct policy *p = NULL;
        buf_init(&errors, 1u << 16);
        if (policy_load(text, len, &p, &errors) < 0) {
                fprintf(stderr, "fuzz_review: %s does not load:\n%s", rel, errors.data ? errors.data : "");
                exit(2);
        }
        buf_free(&errors);
        free(text);
        return p;
}

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
        by_name = load_policy("tests/fixtures/policy.yaml");
        by_namespace = load_policy("tests/fuzz/policy-namespaces.yaml");
        const char *u = getenv("FUZZ_UTF8");
        check_utf8 = !(u && *u == '0');
        arena_install();   /* outside arena_begin/arena_end, cJSON still uses malloc */
        return 0;
}

/* ---- the invariants ---- */

static const char *string_at(const cJSON *obj, const char *key)
{
        const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, key);
        return cJSON_IsString(v) ? v->valuestring : NULL;
}

static void check_patch(const struct admission *a, const char *b64, cJSON **ret_patch)
{
        size_t n;
        char *text = b64_decode_strict(b64, strlen(b64), &n);
        if (!text)
                fuzz_fail("the patch is not strict base64: %.80s", b64);
        const struct jsonpatch *jp = &a->mutation.patch;
        if (n != jp->text.len || memcmp(text, jp->text.data, n) != 0)
                fuzz_fail("the patch sent is not the mutation's patch: %.200s", text);
        const char *why;
        size_t at;
        if (!json_strict(text, n, &why, &at))
                fuzz_fail("the patch is not JSON: %s at byte %zu: %.300s", why, at, text);
        cJSON *patch = cJSON_ParseWithLength(text, n);
        if (!cJSON_IsArray(patch) || cJSON_GetArraySize(patch) == 0)
                fuzz_fail("the patch is not a non-empty array: %.300s", text);
        if ((unsigned)cJSON_GetArraySize(patch) != jp->n_ops || jp->n_ops > WH_MAX_PATCH_OPS)
                fuzz_fail("the patch has %d operations, the mutation counts %u", cJSON_GetArraySize(patch), jp->n_ops);
        const cJSON *op;
        cJSON_ArrayForEach(op, patch) {
                const char *name = string_at(op, "op"), *path = string_at(op, "path");
                if (!cJSON_IsObject(op) || !name || !path)
                        fuzz_fail("a patch operation without op or path: %.300s", text);
                if (strcmp(name, "add") != 0 && strcmp(name, "replace") != 0 && strcmp(name, "remove") != 0)
                        fuzz_fail("a patch operation %s", name);
                if (path[0] != '/')
                        fuzz_fail("a patch path that does not start with '/': \"%s\"", path);
                char **tok;
                size_t nt;
                if (pointer_split(path, &tok, &nt) < 0)
                        fuzz_fail("a patch path that is not a JSON pointer: \"%s\"", path);
                pointer_tokens_free(tok, nt);
                bool has_value = cJSON_GetObjectItemCaseSensitive(op, "value") != NULL;
                if (has_value != (strcmp(name, "remove") != 0))
                        fuzz_fail("operation %s %s %s a value", name, path, has_value ? "with" : "without");
        }
        free(text);
        *ret_patch = patch;
}

static void check_answer(const struct admission *a, const uint8_t *data, size_t size)
{
        if (a->status != 200 && a->status != 400 && a->status != 500)
                fuzz_fail("status %d", a->status);
        if (!a->body.data || a->body.len == 0 || strlen(a->body.data) != a->body.len)
                fuzz_fail("status %d with an empty or NUL-cut body", a->status);
        if (a->body.len > WH_MAX_RESPONSE_BYTES)
                fuzz_fail("a body of %zu bytes", a->body.len);
        const char *why;
        size_t at;
        if (!json_strict(a->body.data, a->body.len, &why, &at))
                fuzz_fail("status %d, body not strict JSON: %s at byte %zu: %.400s", a->status, why, at, a->body.data);
        if (check_utf8 && utf8_valid((const char *)data, size) && !utf8_valid(a->body.data, a->body.len))
                fuzz_fail("a UTF-8 request got an answer that is not UTF-8: %.400s", a->body.data);
        cJSON *root = cJSON_ParseWithLength(a->body.data, a->body.len);
        if (!cJSON_IsObject(root))
                fuzz_fail("status %d, body does not parse with cJSON", a->status);
        if (a->status != 200) {
                const cJSON *code = cJSON_GetObjectItemCaseSensitive(root, "code");
                if (strcmp(string_at(root, "kind") ? string_at(root, "kind") : "", "Status") != 0 ||
                    !cJSON_IsNumber(code) || code->valueint != a->status)
                        fuzz_fail("status %d without its Status body: %.300s", a->status, a->body.data);
                cJSON_Delete(root);
                return;
        }
        if (!a->decided)
                fuzz_fail("200 without a decision");
        const struct review *rv = &a->review;
        const cJSON *resp = cJSON_GetObjectItemCaseSensitive(root, "response");
        const char *api = string_at(root, "apiVersion"), *kind = string_at(root, "kind");
        if (!kind || strcmp(kind, "AdmissionReview") != 0 || !api || strcmp(api, rv->api_version) != 0 ||
            !cJSON_IsObject(resp))
                fuzz_fail("a 200 that is not an AdmissionReview of the request's version: %.300s", a->body.data);
        const char *uid = string_at(resp, "uid");
        if (!uid || strcmp(uid, rv->uid) != 0)
                fuzz_fail("response.uid \"%s\" for request uid \"%s\"", uid ? uid : "(none)", rv->uid);
        const cJSON *allowed = cJSON_GetObjectItemCaseSensitive(resp, "allowed");
        if (!cJSON_IsBool(allowed))
                fuzz_fail("response.allowed is not a boolean");
        bool denied = a->mutation.decision == DECISION_DENIED;
        if (cJSON_IsTrue(allowed) == denied)
                fuzz_fail("decision %s answered allowed=%d", mutate_decision_name(a->mutation.decision),
                          cJSON_IsTrue(allowed));
        const cJSON *st = cJSON_GetObjectItemCaseSensitive(resp, "status");
        if (denied && (!cJSON_IsObject(st) || !cJSON_IsNumber(cJSON_GetObjectItemCaseSensitive(st, "code")) ||
                       cJSON_GetObjectItemCaseSensitive(st, "code")->valueint != 403))
                fuzz_fail("a denial without a 403 status");
        const cJSON *warnings = cJSON_GetObjectItemCaseSensitive(resp, "warnings"), *w;
        if (warnings && (!cJSON_IsArray(warnings) || cJSON_GetArraySize(warnings) > (int)WH_MAX_WARNINGS))
                fuzz_fail("warnings not a list of at most %u", WH_MAX_WARNINGS);
        cJSON_ArrayForEach(w, warnings)
                if (!cJSON_IsString(w) || strlen(w->valuestring) > WH_MAX_WARNING_CHARS)
                        fuzz_fail("a warning longer than %u bytes", WH_MAX_WARNING_CHARS);

        const char *patch_type = string_at(resp, "patchType"), *patch_b64 = string_at(resp, "patch");
        bool mutated = a->mutation.decision == DECISION_MUTATED;
        if (!!patch_b64 != mutated || !!patch_type != mutated || (patch_type && strcmp(patch_type, "JSONPatch") != 0))
                fuzz_fail("decision %s with patchType %s and %s patch", mutate_decision_name(a->mutation.decision),
                          patch_type ? patch_type : "(none)", patch_b64 ? "a" : "no");
        cJSON_Delete(root);
}

/* Whether the API server could have sent this pod, as far as the patch
 * depends on it: its metadata is an object, and no object repeats a key
 * (which cJSON and Go's decoder would read differently). */
static bool pod_well_formed(const cJSON *pod)
{
        return cJSON_IsObject(cJSON_GetObjectItemCaseSensitive(pod, "metadata")) && !json_has_duplicate_keys(pod);
}

/* admission_handle() as cmd_serve's admit() splits it: parse, read the
 * namespace the policy needs (from `src`), decide. */
static int handle(const struct policy *p, const struct ns_source *src, const char *body, size_t len,
                  struct admission *a)
{
        int r = admission_parse(a, body, len);
        if (r != 0)
                return r < 0 ? r : 0;
        struct ns_known known = { .state = NS_NOT_READ };
        const char *ns = admission_namespace(a, p);
        if (ns && src) {
                r = src->lookup(src->ctx, ns, &known.info, known.error, sizeof known.error);
                known.state = r == 0 ? NS_FOUND : r == -ENOENT ? NS_ABSENT : NS_UNREADABLE;
        }
        r = admission_decide(p, &known, a);
        if (ns && src)
                src->done(src->ctx);
        return r;
}

static void answer_on(const struct policy *p, const struct ns_source *src, enum admission_path path,
                      const uint8_t *data, size_t size, struct admission *a)
{
        current = (struct fake_ns){ 0 };
        admission_init(a, WH_MAX_RESPONSE_BYTES);
        a->path = path;
        if (handle(p, src, (const char *)data, size, a) < 0)
                fuzz_fail("admission_handle could not even write an error body");
        if (current.lookups != current.dones && src)
                fuzz_fail("%d namespace lookups, %d done() calls", current.lookups, current.dones);
        /* The validating path judges; it never patches. */
        if (path == ADMISSION_VALIDATE && (a->mutation.decision == DECISION_MUTATED || a->mutation.patch.n_ops))
                fuzz_fail("POST /validate answered with a patch (decision %s)",
                          mutate_decision_name(a->mutation.decision));
}

static void answer(const struct policy *p, const struct ns_source *src, const uint8_t *data, size_t size,
                   struct admission *a)
{
        answer_on(p, src, ADMISSION_MUTATE, data, size, a);
}

static void check_mutation(const struct policy *p, const struct ns_source *src, struct admission *a)
{
        if (a->status != 200 || a->mutation.decision != DECISION_MUTATED)
                return;
        cJSON *root = cJSON_ParseWithLength(a->body.data, a->body.len);
        const char *b64 = string_at(cJSON_GetObjectItemCaseSensitive(root, "response"), "patch");
        cJSON *patch = NULL;
        check_patch(a, b64, &patch);
        cJSON_Delete(root);

        const cJSON *pod = a->review.object;
        if (!pod_well_formed(pod)) {
                cJSON_Delete(patch);
                return;
        }
        cJSON *patched = cJSON_Duplicate(pod, true);
        char why[512];
        if (!patched)
                fuzz_fail("out of memory");
        if (!patch_apply(patched, patch, why, sizeof why)) {
                char *pod_text = cJSON_PrintUnformatted(pod);
                fuzz_fail("the patch does not apply to the pod: %s\npatch: %.2000s\npod: %.4000s", why,
                          a->mutation.patch.text.data, pod_text ? pod_text : "?");
        }
        cJSON_Delete(patch);
        const char *label = string_at(
                cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(patched, "metadata"), "labels"),
                "aadpodidbinding");
        /* Workload identity adds no label (and may remove one): then both are none. */
        bool none = !label && !a->mutation.identity_after && a->mutation.auth == POLICY_AUTH_WORKLOAD_IDENTITY;
        if (!none && (!a->mutation.identity_after || !label || strcmp(label, a->mutation.identity_after) != 0))
                fuzz_fail("after the patch the pod has aadpodidbinding %s; the mutation says %s",
                          label ? label : "(none)", a->mutation.identity_after ? a->mutation.identity_after : "(none)");

        /* The patched pod, answered again, needs nothing more. */
        cJSON *again = cJSON_Duplicate(a->review.root, true);
        cJSON *req = cJSON_GetObjectItemCaseSensitive(again, "request");
        if (!again || !req)
                fuzz_fail("out of memory");
        cJSON_ReplaceItemInObjectCaseSensitive(req, "object", patched);
        char *text = cJSON_PrintUnformatted(again);
        cJSON_Delete(again);
        if (!text)
                fuzz_fail("out of memory");
        struct admission b;
        answer(p, src, (const uint8_t *)text, strlen(text), &b);
        check_answer(&b, (const uint8_t *)text, strlen(text));
        if (b.status != 200 || b.mutation.decision != DECISION_UNCHANGED || b.mutation.patch.n_ops)
                fuzz_fail("the patched pod answered again: status %d, decision %s, %u more operations: "
                          "%.1000s\nfirst patch: %.1000s",
                          b.status, mutate_decision_name(b.mutation.decision), b.mutation.patch.n_ops,
                          b.mutation.patch.text.data ? b.mutation.patch.text.data : "", a->mutation.patch.text.data);
        admission_free(&b);
        /* What we made passes our own validating webhook. */
        answer_on(p, src, ADMISSION_VALIDATE, (const uint8_t *)text, strlen(text), &b);
        check_answer(&b, (const uint8_t *)text, strlen(text));
        if (b.status != 200 || b.mutation.decision == DECISION_DENIED)
                fuzz_fail("the patched pod is refused by /validate: status %d: %s", b.status, b.mutation.message);
        admission_free(&b);
        cJSON_free(text);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
        struct admission a;

        answer(by_name, NULL, data, size, &a);
        check_answer(&a, data, size);
        check_mutation(by_name, NULL, &a);
        admission_free(&a);

        arena_begin();
        answer(by_namespace, &fake_source, data, size, &a);
        check_answer(&a, data, size);
        check_mutation(by_namespace, &fake_source, &a);
        admission_free(&a);
        answer_on(by_namespace, &fake_source, ADMISSION_VALIDATE, data, size, &a);
        check_answer(&a, data, size);
        admission_free(&a);
        arena_end();
        return 0;
}
