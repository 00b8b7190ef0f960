/* Reading a policy test file: its policy and its cases, every key checked,
 * each problem placed at its LINE:COL. See include/core/policytest.h. */
#include "policytest.h"

#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "doc.h"
#include "err.h"
#include "webhook_limits.h"

#define TOP_KEYS "policy, cases and description"
#define CASE_KEYS                                                                                   \
        "name, namespace, pod, podFile, operation, oldPod, oldPodFile, oldNamespace, userInfo and " \
        "expect"
#define EXPECT_KEYS "allowed, message, identity, env, warnings and patched"
#define WHERE_MAX 160u

struct parser {
        const struct doc *doc;
        struct buf *errors;
        struct pool *pool;
        unsigned n_errors;
        bool oom;
};

static __attribute__((format(printf, 5, 0))) void vfail(struct parser *ps, const cJSON *node, bool at_key,
                                                        const char *where, const char *fmt, va_list ap)
{
        if (++ps->n_errors > WH_MAX_TEST_PROBLEMS)
                return;
        unsigned line = 0, col = 0;
        if (node && ((at_key && doc_key_position(ps->doc, node, &line, &col) == 0) ||
                     doc_position(ps->doc, node, &line, &col) == 0))
                buf_printf(ps->errors, "%u:%u: ", line, col);
        if (where && *where)
                buf_printf(ps->errors, "%s: ", where);
        buf_vprintf(ps->errors, fmt, ap);
        buf_putc(ps->errors, '\n');
}

/* A problem with a value, placed at the value. */
static __attribute__((format(printf, 4, 5))) void fail(struct parser *ps, const cJSON *node, const char *where,
                                                       const char *fmt, ...)
{
        va_list ap;
        va_start(ap, fmt);
        vfail(ps, node, false, where, fmt, ap);
        va_end(ap);
}

/* A problem with a key, placed at the key. */
static __attribute__((format(printf, 4, 5))) void fail_key(struct parser *ps, const cJSON *node, const char *where,
                                                           const char *fmt, ...)
{
        va_list ap;
        va_start(ap, fmt);
        vfail(ps, node, true, where, fmt, ap);
        va_end(ap);
}

/* Writes a place in the test file, like cases[2].expect.env; a place too
 * long for the buffer ends in "...". */
static __attribute__((format(printf, 2, 3))) void place(char out[WHERE_MAX], const char *fmt, ...)
{
        va_list ap;
        va_start(ap, fmt);
        int n = vsnprintf(out, WHERE_MAX, fmt, ap);
        va_end(ap);
        if (n >= (int)WHERE_MAX)
                memcpy(out + WHERE_MAX - 4, "...", 4);
}

/* An unknown key, with the key of `keys` it most likely meant. */
static void fail_unknown(struct parser *ps, const cJSON *node, const char *where, const char *const *keys,
                         size_t n_keys, const char *has)
{
        const char *meant = policy_key_suggest(node->string, keys, n_keys);
        if (meant)
                fail_key(ps, node, where, "unknown key, did you mean %s? (%s)", meant, has);
        else
                fail_key(ps, node, where, "unknown key (%s)", has);
}

static const char *const top_keys[] = { "policy", "cases", "description" };
static const char *const case_keys[] = { "name",   "namespace",  "pod",          "podFile",  "operation",
                                         "oldPod", "oldPodFile", "oldNamespace", "userInfo", "expect" };
static const char *const expect_keys[] = { "allowed", "message", "identity", "env", "warnings", "patched" };
static const char *const namespace_keys[] = { "name", "labels", "annotations" };
static const char *const user_keys[] = { "username", "groups" };
#define KEYS(v) v, sizeof v / sizeof *v

static void *palloc(struct parser *ps, size_t n)
{
        void *p = pool_alloc(ps->pool, n ? n : 1);
        if (!p && !ps->oom) {
                ps->oom = true;
                fail(ps, NULL, NULL, "out of memory");
        }
        return p;
}

static const char *want_string(struct parser *ps, const cJSON *node, const char *where)
{
        if (cJSON_IsString(node) && *node->valuestring)
                return node->valuestring;
        fail(ps, node, where, cJSON_IsString(node) ? "must not be empty" : "must be a string (quote it)");
        return NULL;
}

static int want_bool(struct parser *ps, const cJSON *node, const char *where)
{
        if (cJSON_IsBool(node))
                return cJSON_IsTrue(node) ? 1 : 0;
        fail(ps, node, where, "must be true or false");
        return -1;
}

/* A map of strings (labels, annotations, env; env values may be null): its
 * entries in ret_kv, in file order. */
static void want_kvs(struct parser *ps, const cJSON *node, const char *where, bool null_ok, const struct kv **ret_kv,
                     size_t *ret_n)
{
        char at[WHERE_MAX];
        if (!cJSON_IsObject(node)) {
                fail(ps, node, where, "must be a map of %s", null_ok ? "names to values (or null)" : "keys to values");
                return;
        }
        size_t n = (size_t)cJSON_GetArraySize(node);
        if (n > WH_MAX_TEST_KVS) {
                fail(ps, node, where, "more than %u entries", WH_MAX_TEST_KVS);
                return;
        }
        struct kv *kv = palloc(ps, n * sizeof *kv);
        if (!kv)
                return;
        size_t k = 0;
        const cJSON *it;
        cJSON_ArrayForEach(it, node) {
                place(at, "%s.%s", where, it->string);
                if (cJSON_IsString(it) || (null_ok && cJSON_IsNull(it)))
                        kv[k++] = (struct kv){ .key = it->string, .value = cJSON_IsNull(it) ? NULL : it->valuestring };
                else
                        fail(ps, it, at,
                             null_ok ? "must be a string (quote it), or null for \"not set\""
                                     : "must be a string (quote it)");
        }
        *ret_kv = kv;
        *ret_n = k;
}

static void want_strings(struct parser *ps, const cJSON *node, const char *where, const char *const **ret_v,
                         size_t *ret_n)
{
        char at[WHERE_MAX];
        if (!cJSON_IsArray(node)) {
                fail(ps, node, where, "must be a list of strings");
                return;
        }
        size_t n = (size_t)cJSON_GetArraySize(node), k = 0;
        const char **v = palloc(ps, n * sizeof *v);
        if (!v)
                return;
        const cJSON *it;
        cJSON_ArrayForEach(it, node) {
                place(at, "%s[%zu]", where, k);
                const char *s = want_string(ps, it, at);
                if (s)
                        v[k++] = s;
        }
        *ret_v = v;
        *ret_n = k;
}

static void parse_expect(struct parser *ps, const cJSON *node, const char *where, struct ptest_expect *e)
{
        char at[WHERE_MAX];
        *e = (struct ptest_expect){ .allowed = -1, .patched = -1 };
        if (!cJSON_IsObject(node) || !node->child) {
                fail(ps, node, where, "must be a map with at least one of " EXPECT_KEYS);
                return;
        }
        const cJSON *it;
        cJSON_ArrayForEach(it, node) {
                const char *k = it->string;
                place(at, "%s.%s", where, k);
                if (strcmp(k, "allowed") == 0)
                        e->allowed = want_bool(ps, it, at);
                else if (strcmp(k, "message") == 0)
                        e->message = want_string(ps, it, at);
                else if (strcmp(k, "identity") == 0)
                        e->identity = want_string(ps, it, at);
                else if (strcmp(k, "env") == 0)
                        want_kvs(ps, it, at, true, &e->env, &e->n_env);
                else if (strcmp(k, "patched") == 0)
                        e->patched = want_bool(ps, it, at);
                else if (strcmp(k, "warnings") == 0) {
                        e->has_warnings = true;
                        want_strings(ps, it, at, &e->warnings, &e->n_warnings);
                } else
                        fail_unknown(ps, it, at, KEYS(expect_keys), "expect has " EXPECT_KEYS);
        }
}

/* A namespace: its name (checked against `name` when given: the case's),
 * labels and annotations. */
static void parse_namespace(struct parser *ps, const cJSON *node, const char *where, const char *name,
                            const char **ret_name, const struct kv **ret_labels, size_t *ret_n_labels,
                            const struct kv **ret_annotations, size_t *ret_n_annotations)
{
        char at[WHERE_MAX];
        if (!cJSON_IsObject(node)) {
                fail(ps, node, where, "must be a map with name, and labels and annotations if it has any");
                return;
        }
        const cJSON *it;
        cJSON_ArrayForEach(it, node) {
                const char *k = it->string, *v;
                place(at, "%s.%s", where, k);
                if (strcmp(k, "name") == 0) {
                        if (!(v = want_string(ps, it, at)))
                                continue;
                        if (!policy_value_valid(POLICY_VALUE_DNS_LABEL, v))
                                fail(ps, it, at, "\"%s\" is not a namespace name (an RFC 1123 label)", v);
                        else if (name && strcmp(name, v) != 0)
                                fail(ps, it, at, "\"%s\": the namespace is %s before and after", v, name);
                        else
                                *ret_name = v;
                } else if (strcmp(k, "labels") == 0) {
                        want_kvs(ps, it, at, false, ret_labels, ret_n_labels);
                } else if (strcmp(k, "annotations") == 0) {
                        want_kvs(ps, it, at, false, ret_annotations, ret_n_annotations);
                } else {
                        fail_unknown(ps, it, at, KEYS(namespace_keys), "a namespace has name, labels and annotations");
                }
        }
        if (!name && !cJSON_GetObjectItemCaseSensitive(node, "name"))
                fail(ps, node, where, "name is required");
}

static void parse_user(struct parser *ps, const cJSON *node, const char *where, struct ptest_case *c)
{
        char at[WHERE_MAX];
        if (!cJSON_IsObject(node)) {
                fail(ps, node, where, "must be a map with username and groups");
                return;
        }
        const cJSON *it;
        cJSON_ArrayForEach(it, node) {
                place(at, "%s.%s", where, it->string);
                if (strcmp(it->string, "username") == 0)
                        c->username = want_string(ps, it, at);
                else if (strcmp(it->string, "groups") == 0)
                        want_strings(ps, it, at, &c->groups, &c->n_groups);
                else
                        fail_unknown(ps, it, at, KEYS(user_keys), "userInfo has username and groups");
        }
}

/* A pod given inline (`key`) or by file (`file_key`): exactly one. */
static void parse_pod(struct parser *ps, const cJSON *node, const char *where, const char *key, const char *file_key,
                      const cJSON **ret_pod, const char **ret_file)
{
        char at[WHERE_MAX];
        const cJSON *pod = cJSON_GetObjectItemCaseSensitive(node, key);
        const cJSON *file = cJSON_GetObjectItemCaseSensitive(node, file_key);
        if (pod && file) {
                fail_key(ps, file, where, "%s and %s: give one of them", key, file_key);
                return;
        }
        if (pod) {
                place(at, "%s.%s", where, key);
                const cJSON *kind = cJSON_GetObjectItemCaseSensitive(pod, "kind");
                if (!cJSON_IsObject(pod))
                        fail(ps, pod, at, "must be a Pod (a map)");
                else if (kind && !(cJSON_IsString(kind) && strcmp(kind->valuestring, "Pod") == 0))
                        fail(ps, kind, at, "kind must be Pod");
                else
                        *ret_pod = pod;
        } else if (file) {
                place(at, "%s.%s", where, file_key);
                *ret_file = want_string(ps, file, at);
        }
}

/* The keys of a case, each to its part of `c`. */
static void parse_case_key(struct parser *ps, const cJSON *it, const char *at, struct ptest_case *c)
{
        const char *k = it->string;
        if (strcmp(k, "name") == 0) {
                c->name = want_string(ps, it, at);
        } else if (strcmp(k, "namespace") == 0) {
                parse_namespace(ps, it, at, NULL, &c->namespace_, &c->labels, &c->n_labels, &c->annotations,
                                &c->n_annotations);
        } else if (strcmp(k, "operation") == 0) {
                const char *op = want_string(ps, it, at);
                if (op && strcmp(op, "CREATE") != 0 && strcmp(op, "UPDATE") != 0)
                        fail(ps, it, at, "\"%s\": must be CREATE or UPDATE", op);
                else if (op)
                        c->operation = op;
        } else if (strcmp(k, "userInfo") == 0) {
                parse_user(ps, it, at, c);
        } else if (strcmp(k, "expect") == 0) {
                parse_expect(ps, it, at, &c->expect);
        } else if (strcmp(k, "pod") != 0 && strcmp(k, "podFile") != 0 && strcmp(k, "oldPod") != 0 &&
                   strcmp(k, "oldPodFile") != 0 && strcmp(k, "oldNamespace") != 0) {
                fail_unknown(ps, it, at, KEYS(case_keys), "a case has " CASE_KEYS);
        }
}

static bool has(const cJSON *node, const char *key)
{
        return cJSON_GetObjectItemCaseSensitive(node, key) != NULL;
}

/* What a case must have and may not have together: a pod case its pod (and
 * its old pod for an UPDATE); a namespace case (no pod) the old namespace
 * for an UPDATE, and no expectation that only a pod has. */
static void check_case(struct parser *ps, const cJSON *node, const char *where, struct ptest_case *c)
{
        bool update = strcmp(c->operation, "UPDATE") == 0;
        bool has_old_pod = has(node, "oldPod") || has(node, "oldPodFile");
        const cJSON *old_ns = cJSON_GetObjectItemCaseSensitive(node, "oldNamespace");
        char at[WHERE_MAX];
        c->namespace_case = !has(node, "pod") && !has(node, "podFile");
        if (!c->namespace_case) {
                if (update && !has_old_pod)
                        fail(ps, node, where, "an UPDATE needs the pod as it was: oldPod or oldPodFile");
                if (!update && has_old_pod)
                        fail(ps, node, where, "oldPod and oldPodFile are for operation: UPDATE");
                if (old_ns)
                        fail_key(ps, old_ns, where, "oldNamespace is for a case without a pod (a namespace change)");
                return;
        }
        if (has_old_pod)
                fail(ps, node, where, "oldPod and oldPodFile need pod or podFile");
        if (update && !old_ns)
                fail(ps, node, where,
                     "an UPDATE of the namespace (a case without a pod) needs the namespace as it was: oldNamespace");
        if (!update && old_ns)
                fail_key(ps, old_ns, where, "oldNamespace is for operation: UPDATE");
        if (old_ns && c->namespace_) {   /* (without its name, a problem is already told) */
                const char *same;
                place(at, "%s.oldNamespace", where);
                parse_namespace(ps, old_ns, at, c->namespace_, &same, &c->old_labels, &c->n_old_labels,
                                &c->old_annotations, &c->n_old_annotations);
        }
        const cJSON *expect = cJSON_GetObjectItemCaseSensitive(node, "expect");
        static const char *const pod_only[] = { "identity", "env" };
        for (size_t i = 0; i < sizeof pod_only / sizeof *pod_only; i++) {
                const cJSON *e = cJSON_GetObjectItemCaseSensitive(expect, pod_only[i]);
                place(at, "%s.expect.%s", where, pod_only[i]);
                if (e)
                        fail_key(ps, e, at, "is about a pod, and this case has none (pod or podFile)");
        }
}

static void parse_case(struct parser *ps, const cJSON *node, size_t index, struct ptest_case *c)
{
        char where[WHERE_MAX], at[WHERE_MAX];
        place(where, "cases[%zu]", index);
        *c = (struct ptest_case){ .operation = "CREATE", .expect = { .allowed = -1, .patched = -1 } };
        doc_position(ps->doc, node, &c->line, &c->col);
        if (!cJSON_IsObject(node)) {
                fail(ps, node, where, "a case must be a map with " CASE_KEYS);
                return;
        }
        const cJSON *it;
        cJSON_ArrayForEach(it, node) {
                place(at, "%s.%s", where, it->string);
                parse_case_key(ps, it, at, c);
        }
        static const char *const required[] = { "name", "namespace", "expect" };
        for (size_t i = 0; i < sizeof required / sizeof *required; i++)
                if (!cJSON_GetObjectItemCaseSensitive(node, required[i]))
                        fail(ps, node, where, "%s is required", required[i]);
        parse_pod(ps, node, where, "pod", "podFile", &c->pod, &c->pod_file);
        parse_pod(ps, node, where, "oldPod", "oldPodFile", &c->old_pod, &c->old_pod_file);
        check_case(ps, node, where, c);
}

static void parse_cases(struct parser *ps, const cJSON *node, struct ptest_file *f)
{
        if (!cJSON_IsArray(node) || !node->child) {
                fail(ps, node, "cases", "must be a list of at least one case");
                return;
        }
        size_t n = (size_t)cJSON_GetArraySize(node);
        if (n > WH_MAX_TEST_CASES) {
                fail(ps, node, "cases", "%zu cases, more than %u in one file: split it", n, WH_MAX_TEST_CASES);
                return;
        }
        f->cases = palloc(ps, n * sizeof *f->cases);
        if (!f->cases)
                return;
        size_t i = 0;
        const cJSON *it;
        cJSON_ArrayForEach(it, node) {
                parse_case(ps, it, i, &f->cases[i]);
                for (size_t j = 0; j < i && f->cases[i].name; j++)
                        if (f->cases[j].name && strcmp(f->cases[j].name, f->cases[i].name) == 0)
                                fail(ps, cJSON_GetObjectItemCaseSensitive(it, "name"), "cases",
                                     "two cases named \"%s\" (the first at line %u): names must be unique",
                                     f->cases[i].name, f->cases[j].line);
                i++;
        }
        f->n_cases = i;
}

/* The inline policy as text whose lines and columns are the test file's:
 * the file with all but the policy's lines blanked. When another key
 * shares a line with it (flow style, JSON), the policy is printed as JSON
 * instead, and its problems' places are that text's. */
static int inline_policy(struct parser *ps, const char *text, size_t len, const cJSON *root, const cJSON *policy,
                         struct ptest_file *f)
{
        unsigned line = 0, col = 0, end = 0;
        doc_position(ps->doc, policy, &line, &col);
        f->policy_line = line;
        f->policy_col = col;
        bool flat = line == 0;
        const cJSON *it;
        cJSON_ArrayForEach(it, root) {
                unsigned kl = 0, kc = 0;
                if (it == policy || doc_key_position(ps->doc, it, &kl, &kc) < 0)
                        continue;
                if (kl == line)
                        flat = true;
                if (kl > line && (!end || kl < end))
                        end = kl;
        }
        if (flat) {
                f->policy_text = cJSON_PrintUnformatted(policy);
                f->policy_len = f->policy_text ? strlen(f->policy_text) : 0;
                f->policy_text_is_json = true;
                return f->policy_text ? 0 : -ENOMEM;
        }
        f->policy_text = malloc(len + 1);
        if (!f->policy_text)
                return -ENOMEM;
        unsigned ln = 1, cn = 1;
        for (size_t i = 0; i < len; i++) {
                char ch = text[i];
                bool keep = ch == '\n' || (ln > line && (!end || ln < end)) || (ln == line && cn >= col);
                f->policy_text[i] = keep ? ch : ' ';
                if (ch == '\n') {
                        ln++;
                        cn = 1;
                } else if (((unsigned char)ch & 0xC0u) != 0x80u) {
                        cn++;   /* libyaml counts characters, not bytes */
                }
        }
        f->policy_text[len] = '\0';
        f->policy_len = len;
        return 0;
}

static void parse_top(struct parser *ps, const char *text, size_t len, const cJSON *root, struct ptest_file *f)
{
        const cJSON *it;
        cJSON_ArrayForEach(it, root) {
                const char *k = it->string;
                if (strcmp(k, "policy") == 0) {
                        if (cJSON_IsString(it) && *it->valuestring) {
                                f->policy_file = it->valuestring;
                                doc_position(ps->doc, it, &f->policy_line, &f->policy_col);
                        } else if (cJSON_IsObject(it) && inline_policy(ps, text, len, root, it, f) < 0 && !ps->oom) {
                                ps->oom = true;
                                fail(ps, NULL, NULL, "out of memory");
                        } else if (!cJSON_IsObject(it))
                                fail(ps, it, k,
                                     "must be the policy file's path (relative to this file) or the "
                                     "policy itself (a map)");
                } else if (strcmp(k, "cases") == 0) {
                        parse_cases(ps, it, f);
                } else if (strcmp(k, "description") != 0) {
                        fail_unknown(ps, it, k, KEYS(top_keys), "a test file has " TOP_KEYS);
                }
        }
        if (!cJSON_GetObjectItemCaseSensitive(root, "policy"))
                fail(ps, root, NULL, "policy is required: a path, or the policy itself");
        if (!cJSON_GetObjectItemCaseSensitive(root, "cases"))
                fail(ps, root, NULL, "cases is required");
}

/* One problem line, for sorting them by their place. */
struct problem_line {
        unsigned line, col;     /* UINT_MAX: no place (last) */
        size_t index, at, len;
};

static int problem_cmp(const void *pa, const void *pb)
{
        const struct problem_line *a = pa, *b = pb;
        if (a->line != b->line)
                return a->line < b->line ? -1 : 1;
        if (a->col != b->col)
                return a->col < b->col ? -1 : 1;
        return a->index < b->index ? -1 : a->index > b->index;
}

/* Puts the problem lines written from `start` on in the order of the file
 * (by line, then column; those without a place last), as check-policy
 * lists a policy's. Left as they are when memory runs out. */
static void sort_problems(struct buf *errors, size_t start)
{
        size_t n = 0, len = errors->len - start;
        for (size_t i = start; i < errors->len; i++)
                n += errors->data[i] == '\n';
        struct problem_line *v = calloc(n ? n : 1, sizeof *v);
        char *copy = malloc(len + 1);
        if (!v || !copy)
                goto out;
        memcpy(copy, errors->data + start, len);
        for (size_t i = 0, at = 0; i < n; i++) {
                const char *nl = memchr(copy + at, '\n', len - at);
                v[i] = (struct problem_line){ .line = UINT_MAX, .col = UINT_MAX, .index = i, .at = at };
                v[i].len = (size_t)(nl - (copy + at)) + 1;
                if (sscanf(copy + at, "%u:%u:", &v[i].line, &v[i].col) != 2)
                        v[i].line = v[i].col = UINT_MAX;
                at += v[i].len;
        }
        qsort(v, n, sizeof *v, problem_cmp);
        for (size_t i = 0, to = start; i < n; to += v[i].len, i++)
                memcpy(errors->data + to, copy + v[i].at, v[i].len);
out:
        free(copy);
        free(v);
}

int ptest_file_parse(const char *text, size_t len, struct ptest_file **ret_file, struct buf *errors)
{
        char err[256];
        struct doc *d = NULL;
        int r = doc_parse(text, len, &d, err, sizeof err);
        if (r < 0) {
                buf_printf(errors, "%s\n", err);
                return r;
        }
        struct ptest_file *f = calloc(1, sizeof *f);
        if (!f) {
                doc_free(d);
                return -ENOMEM;
        }
        f->doc = d;
        struct parser ps = { .doc = d, .errors = errors, .pool = &f->pool };
        size_t start = errors->len;
        const cJSON *root = doc_root(d);
        if (!cJSON_IsObject(root))
                fail(&ps, root, NULL, "a test file is a map with " TOP_KEYS);
        else
                parse_top(&ps, text, len, root, f);
        if (ps.n_errors)
                sort_problems(errors, start);
        if (ps.n_errors > WH_MAX_TEST_PROBLEMS)
                buf_printf(errors, "... and %u more problems\n", ps.n_errors - WH_MAX_TEST_PROBLEMS);
        if (ps.n_errors) {
                ptest_file_free(f);
                return ps.oom ? -ENOMEM : -EINVAL;
        }
        *ret_file = f;
        return 0;
}

void ptest_file_free(struct ptest_file *f)
{
        if (!f)
                return;
        if (f->policy_text_is_json)
                cJSON_free(f->policy_text);
        else
                free(f->policy_text);
        pool_free(&f->pool);
        doc_free(f->doc);
        free(f);
}

int ptest_pod_parse(const char *text, size_t len, cJSON **ret_root, const cJSON **ret_pod, char *err, size_t errlen)
{
        size_t i = 0;
        while (i < len && (text[i] == ' ' || text[i] == '\t' || text[i] == '\n' || text[i] == '\r'))
                i++;
        cJSON *root = NULL;
        if (i < len && text[i] == '{') {
                /* JSON as the API server stores it: deeper than a policy may be. */
                root = cJSON_ParseWithLength(text, len);
                if (!root) {
                        err_set(err, errlen, "not valid JSON");
                        return -EINVAL;
                }
        } else {
                struct doc *d = NULL;
                int r = doc_parse(text, len, &d, err, errlen);
                if (r < 0)
                        return r;
                root = cJSON_Duplicate(doc_root(d), true);
                doc_free(d);
                if (!root)
                        return -ENOMEM;
        }
        const cJSON *kind = cJSON_GetObjectItemCaseSensitive(root, "kind");
        const cJSON *pod = root;
        if (cJSON_IsString(kind) && strcmp(kind->valuestring, "AdmissionReview") == 0)
                pod = cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(root, "request"), "object");
        kind = cJSON_GetObjectItemCaseSensitive(pod, "kind");
        if (!cJSON_IsObject(pod) || (kind && !(cJSON_IsString(kind) && strcmp(kind->valuestring, "Pod") == 0))) {
                err_set(err, errlen, "not a Pod, nor an AdmissionReview of one");
                cJSON_Delete(root);
                return -EINVAL;
        }
        *ret_root = root;
        *ret_pod = pod;
        return 0;
}
