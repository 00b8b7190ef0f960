/* `test`: runs a policy's declarative test cases (policytest.h) from test
 * files, or from directories searched for them, and says which pass. */
#include <dirent.h>
#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <cjson/cJSON.h>

#include "buf.h"
#include "cli.h"
#include "commands.h"
#include "fileio.h"
#include "policy_file.h"
#include "policytest.h"
#include "strs.h"
#include "webhook_limits.h"

#define CMD "test"
#define TEST_SUFFIX "-test.yaml"

void cmd_test_help(void)
{
        printf("Usage: spark-identity-webhook test [-o table|json] DIR|FILE...\n"
               "\n"
               "Runs a policy's test cases, as 'kyverno test' and 'gator verify' do: each case is a\n"
               "namespace, a pod and what admission must answer (allowed or refused, the message,\n"
               "the aadpodidbinding label, env values, warnings). Every case goes through the same\n"
               "decision the server makes: the mutating webhook, its patch applied, then the\n"
               "validating webhook on the patched pod, as the API server calls them.\n"
               "\n"
               "A DIR is searched, subdirectories too, for files named *" TEST_SUFFIX "; a FILE is\n"
               "run whatever its name. A test file (YAML or JSON):\n"
               "\n"
               "  policy: ../policy.yaml        # relative to this file, or the policy itself (a map)\n"
               "  cases:\n"
               "    - name: team-a driver gets its identity\n"
               "      namespace: {name: team-a, labels: {}, annotations: {}}\n"
               "      podFile: pods/driver.yaml  # or pod: {...} inline; a Pod, or an AdmissionReview\n"
               "      operation: CREATE          # or UPDATE, with oldPod or oldPodFile\n"
               "      userInfo: {username: alice, groups: [dev]}   # optional\n"
               "      expect:\n"
               "        allowed: true\n"
               "        identity: sparkaks       # none: no aadpodidbinding label\n"
               "        env: {AZURE_CLIENT_ID: null}   # the Spark container's; null: not set\n"
               "        warnings: []             # each contained in a warning; []: no warning\n"
               "        # message: contained in the refusal; patched: true|false\n"
               "\n"
               "A case without pod or podFile is a change to the namespace itself (its labels and\n"
               "annotations; for an UPDATE, oldNamespace as it was): who may touch its grant keys.\n"
               "\n"
               "The full reference is README.md's \"Testing a policy\"; deploy/tests/ tests\n"
               "deploy/policy.yaml.\n"
               "\n"
               "  -o, --output FORMAT  table (default): one row per case, # CASE FILE RESULT,\n"
               "                       each failure's differences (want ..., got ...) under it;\n"
               "                       json: {\"summary\": {...}, \"cases\": [...], \"errors\": [...]}\n"
               "\n"
               "Exit status: 0 when every case passes, 1 when a case fails, 2 when a test file, its\n"
               "policy or a pod it names is not valid or not readable (each problem printed as\n"
               "FILE:LINE:COL: where: what; the other files still run), or on a usage error.\n"
               "\n"
               "Examples:\n"
               "  spark-identity-webhook test deploy/tests\n"
               "  spark-identity-webhook test -o json policy-test.yaml | jq '.cases[] | select(.result != "
               "\"PASS\")'\n");
}

/* What a run found: one entry per case and per invalid input, then the totals. */
struct run {
        cJSON *cases;          /* [{n, name, file, line, result, differences, got | error}] */
        cJSON *errors;         /* ["FILE:LINE:COL: ...", ...] */
        unsigned passed, failed, errored;   /* errored: cases that could not run */
        unsigned invalid_files;             /* test files, or their policies, that do not load */
};

/* A test file's list, bounded. */
struct files {
        char **paths;
        size_t n;
};

static int add_file(struct files *fs, const char *path)
{
        if (fs->n >= WH_MAX_TEST_FILES) {
                fprintf(stderr, CMD ": more than %u test files: name fewer\n", WH_MAX_TEST_FILES);
                return -E2BIG;
        }
        char **v = realloc(fs->paths, (fs->n + 1) * sizeof *v);
        if (v)
                fs->paths = v;
        if (!v || !(v[fs->n] = strdup(path))) {
                fprintf(stderr, CMD ": out of memory\n");
                return -ENOMEM;
        }
        fs->n++;
        return 0;
}

static bool is_test_file(const char *name)
{
        size_t n = strlen(name), k = strlen(TEST_SUFFIX);
        return n > k && strcmp(name + n - k, TEST_SUFFIX) == 0;
}

static int cmp_names(const void *a, const void *b)
{
        return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Reads one directory's names, sorts them, then visits each: a test file
 * to keep, a directory to enter (a symbolic link to one is not followed,
 * hidden ones are skipped). */
static int walk(struct files *fs, const char *dir, unsigned depth)
{
        if (depth > WH_MAX_TEST_DIR_DEPTH) {
                fprintf(stderr, CMD ": %s: deeper than %u directories\n", dir, WH_MAX_TEST_DIR_DEPTH);
                return -ELOOP;
        }
        DIR *d = opendir(dir);
        if (!d) {
                int e = errno;
                fprintf(stderr, CMD ": %s: %s\n", dir, strerror(e));
                return -e;
        }
        /* The names one after the other, each with its NUL, then an index. */
        struct buf all;
        char **names = NULL;
        size_t n = 0;
        int r = 0;
        struct dirent *e;
        buf_init(&all, (size_t)WH_MAX_TEST_DIR_ENTRIES * (NAME_MAX + 1));
        while (r == 0 && (e = readdir(d))) {
                if (e->d_name[0] == '.')
                        continue;   /* ., .., and hidden ones (.git) */
                if (n >= WH_MAX_TEST_DIR_ENTRIES) {
                        fprintf(stderr, CMD ": %s: more than %u entries\n", dir, WH_MAX_TEST_DIR_ENTRIES);
                        r = -E2BIG;
                } else if (buf_append(&all, e->d_name, strlen(e->d_name) + 1) < 0) {
                        r = -ENOMEM;
                } else {
                        n++;
                }
        }
        closedir(d);
        if (r == 0 && n && !(names = malloc(n * sizeof *names)))
                r = -ENOMEM;
        if (r == -ENOMEM)
                fprintf(stderr, CMD ": out of memory\n");
        for (size_t i = 0, at = 0; r == 0 && i < n; i++) {
                names[i] = all.data + at;
                at += strlen(names[i]) + 1;
        }
        if (r == 0 && n)
                qsort(names, n, sizeof *names, cmp_names);
        for (size_t i = 0; r == 0 && i < n; i++) {
                char path[PATH_MAX];
                struct stat st, lst;
                if ((size_t)snprintf(path, sizeof path, "%s/%s", dir, names[i]) >= sizeof path ||
                    lstat(path, &lst) < 0 || stat(path, &st) < 0)
                        continue;
                if (S_ISDIR(st.st_mode) && !S_ISLNK(lst.st_mode))
                        r = walk(fs, path, depth + 1);
                else if (S_ISREG(st.st_mode) && is_test_file(names[i]))
                        r = add_file(fs, path);
        }
        free(names);
        buf_free(&all);
        return r;
}

static void problem(struct run *run, const char *text)
{
        cJSON_AddItemToArray(run->errors, cJSON_CreateString(text));
}

/* Each line of `lines` as a problem. */
static void problems(struct run *run, const char *lines)
{
        while (lines && *lines) {
                const char *nl = strchr(lines, '\n');
                size_t n = nl ? (size_t)(nl - lines) : strlen(lines);
                char *one = strndup(lines, n);
                if (one)
                        problem(run, one);
                free(one);
                lines += n + (nl ? 1 : 0);
        }
}

/* `rel` as the test file at `file` names it: relative to its directory. */
static void beside(const char *file, const char *rel, char *out, size_t outlen)
{
        const char *slash = strrchr(file, '/');
        if (rel[0] == '/' || !slash)
                snprintf(out, outlen, "%s", rel);
        else
                snprintf(out, outlen, "%.*s/%s", (int)(slash - file), file, rel);
}

/* The test file's policy: its file, or inline. NULL after recording why. */
static struct policy *load_policy(struct run *run, const char *path, const struct ptest_file *f)
{
        struct policy *p = NULL;
        struct buf errors, raw;
        buf_init(&errors, WH_POLICY_ERRORS_MAX_BYTES);
        buf_init(&raw, WH_POLICY_ERRORS_MAX_BYTES);
        if (f->policy_file) {
                char at[PATH_MAX];
                beside(path, f->policy_file, at, sizeof at);
                if (policy_file_load(at, &p, &errors) < 0) {
                        char head[2 * PATH_MAX + 64];
                        snprintf(head, sizeof head, "%s:%u:%u: policy: %s does not load:", path, f->policy_line,
                                 f->policy_col, at);
                        problem(run, head);
                        problems(run, errors.data);
                }
        } else if (policy_load(f->policy_text, f->policy_len, &p, &raw) < 0) {
                char where[PATH_MAX + 64];
                if (f->policy_text_is_json)
                        snprintf(where, sizeof where, "%s:%u:%u: policy (read as JSON)", path, f->policy_line,
                                 f->policy_col);
                else
                        snprintf(where, sizeof where, "%s", path);
                policy_errors_prefix(&errors, where, raw.data ? raw.data : "");
                problems(run, errors.data);
        }
        buf_free(&errors);
        buf_free(&raw);
        return p;
}

/* The pod a case names: inline, or from its file (kept in *ret_root). */
static int case_pod(const char *path, const struct ptest_case *c, bool old, cJSON **ret_root, const cJSON **ret_pod,
                    char *err, size_t errlen)
{
        const cJSON *inline_pod = old ? c->old_pod : c->pod;
        const char *file = old ? c->old_pod_file : c->pod_file;
        *ret_root = NULL;
        *ret_pod = inline_pod;
        if (inline_pod || !file)
                return 0;
        char at[PATH_MAX], why[512];
        struct buf text;
        beside(path, file, at, sizeof at);
        buf_init(&text, WH_MAX_TEST_POD_BYTES);
        int r = fileio_read(at, &text, why, sizeof why);
        if (r == 0)
                r = ptest_pod_parse(text.data ? text.data : "", text.len, ret_root, ret_pod, why, sizeof why);
        if (r < 0)
                snprintf(err, errlen, "%s:%u:%u: cases: %s: %s: %s", path, c->line, c->col,
                         old ? "oldPodFile" : "podFile", at, why);
        buf_free(&text);
        return r;
}

static cJSON *diffs_json(const struct ptest_result *res)
{
        cJSON *a = cJSON_CreateArray();
        for (size_t i = 0; a && i < res->n_diffs; i++) {
                cJSON *d = cJSON_CreateObject();
                cJSON_AddItemToArray(a, d);
                cJSON_AddStringToObject(d, "field", res->diffs[i].what);
                cJSON_AddStringToObject(d, "want", res->diffs[i].want);
                cJSON_AddStringToObject(d, "got", res->diffs[i].got);
        }
        return a;
}

/* What admission answered; a namespace case has no pod, so no identity. */
static cJSON *got_json(const struct ptest_result *res, bool namespace_case)
{
        cJSON *g = cJSON_CreateObject();
        cJSON_AddBoolToObject(g, "allowed", res->allowed);
        if (!res->allowed)
                cJSON_AddStringToObject(g, "message", res->message);
        if (res->identity && !namespace_case)
                cJSON_AddStringToObject(g, "identity", res->identity);
        else if (!namespace_case)
                cJSON_AddNullToObject(g, "identity");
        cJSON_AddBoolToObject(g, "patched", res->patched);
        cJSON *w = cJSON_AddArrayToObject(g, "warnings");
        for (size_t i = 0; w && i < res->n_warnings; i++)
                cJSON_AddItemToArray(w, cJSON_CreateString(res->warnings[i]));
        return g;
}

static void run_case(struct run *run, const char *path, const struct policy *p, const struct ptest_case *c)
{
        char err[PATH_MAX + 1024] = "";
        cJSON *root = NULL, *old_root = NULL, *entry = cJSON_CreateObject();
        const cJSON *pod, *old_pod = NULL;
        struct ptest_result res = { 0 };
        cJSON_AddItemToArray(run->cases, entry);
        cJSON_AddNumberToObject(entry, "n", cJSON_GetArraySize(run->cases));
        cJSON_AddStringToObject(entry, "name", c->name);
        cJSON_AddStringToObject(entry, "file", path);
        cJSON_AddNumberToObject(entry, "line", c->line);
        int r = case_pod(path, c, false, &root, &pod, err, sizeof err);
        if (r == 0)
                r = case_pod(path, c, true, &old_root, &old_pod, err, sizeof err);
        if (r == 0) {
                char why[1024];
                r = ptest_run(p, c, pod, old_pod, &res, why, sizeof why);
                if (r < 0)
                        snprintf(err, sizeof err, "%s:%u:%u: cases: \"%s\": %s", path, c->line, c->col, c->name,
                                 r == -ENOMEM ? "out of memory" : why);
        }
        if (r < 0) {
                run->errored++;
                cJSON_AddStringToObject(entry, "result", "ERROR");
                cJSON_AddStringToObject(entry, "error", err);
                problem(run, err);
        } else {
                res.pass ? run->passed++ : run->failed++;
                cJSON_AddStringToObject(entry, "result", res.pass ? "PASS" : "FAIL");
                cJSON_AddItemToObject(entry, "differences", diffs_json(&res));
                cJSON_AddItemToObject(entry, "got", got_json(&res, c->namespace_case));
        }
        ptest_result_free(&res);
        cJSON_Delete(root);
        cJSON_Delete(old_root);
}

static void run_file(struct run *run, const char *path)
{
        struct buf text, errors;
        struct ptest_file *f = NULL;
        struct policy *p = NULL;
        char err[PATH_MAX + 256];
        buf_init(&text, WH_MAX_TEST_FILE_BYTES);
        buf_init(&errors, WH_POLICY_ERRORS_MAX_BYTES);
        if (fileio_read(path, &text, err, sizeof err) < 0) {
                problem(run, err);
                run->invalid_files++;
                goto out;
        }
        struct buf raw;
        buf_init(&raw, WH_POLICY_ERRORS_MAX_BYTES);
        if (ptest_file_parse(text.data ? text.data : "", text.len, &f, &raw) < 0) {
                policy_errors_prefix(&errors, path, raw.data ? raw.data : "");
                problems(run, errors.data);
                run->invalid_files++;
        } else if (!(p = load_policy(run, path, f))) {
                run->invalid_files++;
        } else {
                for (size_t i = 0; i < f->n_cases; i++)
                        run_case(run, path, p, &f->cases[i]);
        }
        buf_free(&raw);
out:
        policy_free(p);
        ptest_file_free(f);
        buf_free(&errors);
        buf_free(&text);
}

static int text_width(const cJSON *cases, const char *key, int min)
{
        int w = min;
        const cJSON *c;
        cJSON_ArrayForEach(c, cases) {
                const cJSON *v = cJSON_GetObjectItemCaseSensitive(c, key);
                int n = cJSON_IsString(v) ? (int)strlen(v->valuestring) : 0;
                if (!strcmp(key, "file"))
                        n += 1 + snprintf(NULL, 0, "%d", (int)cJSON_GetObjectItemCaseSensitive(c, "line")->valuedouble);
                w = n > w ? n : w;
        }
        return w;
}

static void print_table(const struct run *run)
{
        int wn = text_width(run->cases, "name", 4), wf = text_width(run->cases, "file", 4);
        const cJSON *c, *d;
        if (run->cases->child)
                printf("%-4s %-*s  %-*s  %s\n", "#", wn, "CASE", wf, "FILE", "RESULT");
        cJSON_ArrayForEach(c, run->cases) {
                char file[PATH_MAX + 16];
                snprintf(file, sizeof file, "%s:%d", cJSON_GetObjectItemCaseSensitive(c, "file")->valuestring,
                         (int)cJSON_GetObjectItemCaseSensitive(c, "line")->valuedouble);
                printf("%-4d %-*s  %-*s  %s\n", (int)cJSON_GetObjectItemCaseSensitive(c, "n")->valuedouble, wn,
                       cJSON_GetObjectItemCaseSensitive(c, "name")->valuestring, wf, file,
                       cJSON_GetObjectItemCaseSensitive(c, "result")->valuestring);
                cJSON_ArrayForEach(d, cJSON_GetObjectItemCaseSensitive(c, "differences"))
                        printf("       %s: want %s, got %s\n",
                               cJSON_GetObjectItemCaseSensitive(d, "field")->valuestring,
                               cJSON_GetObjectItemCaseSensitive(d, "want")->valuestring,
                               cJSON_GetObjectItemCaseSensitive(d, "got")->valuestring);
                const cJSON *why = cJSON_GetObjectItemCaseSensitive(c, "error");
                if (cJSON_IsString(why))
                        printf("       %s\n", why->valuestring);
        }
        int total = cJSON_GetArraySize(run->cases);
        printf("%s%d case%s: %u passed, %u failed", total ? "\n" : "", total, total == 1 ? "" : "s", run->passed,
               run->failed);
        if (run->errored)
                printf(", %u could not run", run->errored);
        if (run->invalid_files)
                printf("; %u test file%s not valid", run->invalid_files, run->invalid_files == 1 ? "" : "s");
        if (run->errored || run->invalid_files)
                printf(" (the problems are on stderr)");
        printf("\n");
}

static int print_json(const struct run *run)
{
        cJSON *out = cJSON_CreateObject(), *sum = cJSON_AddObjectToObject(out, "summary");
        cJSON_AddNumberToObject(sum, "cases", cJSON_GetArraySize(run->cases));
        cJSON_AddNumberToObject(sum, "passed", run->passed);
        cJSON_AddNumberToObject(sum, "failed", run->failed);
        cJSON_AddNumberToObject(sum, "errored", run->errored);
        cJSON_AddNumberToObject(sum, "invalidFiles", run->invalid_files);
        cJSON_AddItemReferenceToObject(out, "cases", run->cases);
        cJSON_AddItemReferenceToObject(out, "errors", run->errors);
        char *text = cJSON_Print(out);
        cJSON_Delete(out);
        if (!text)
                return -ENOMEM;
        printf("%s\n", text);
        cJSON_free(text);
        return 0;
}

/* The files named: a FILE as it is, a DIR's *-test.yaml files. */
static int gather(int argc, char **argv, struct files *fs)
{
        for (int i = 0; i < argc; i++) {
                struct stat st;
                size_t before = fs->n;
                int r;
                if (stat(argv[i], &st) < 0) {
                        fprintf(stderr, CMD ": %s: %s\n", argv[i], strerror(errno));
                        return -ENOENT;
                }
                r = S_ISDIR(st.st_mode) ? walk(fs, argv[i], 0) : add_file(fs, argv[i]);
                if (r < 0)
                        return r;
                if (S_ISDIR(st.st_mode) && fs->n == before) {
                        fprintf(stderr, CMD ": %s: no file named *" TEST_SUFFIX " in it or below it\n", argv[i]);
                        return -ENOENT;
                }
        }
        return 0;
}

int cmd_test(int argc, char **argv)
{
        static const struct option longopts[] = {
                { "output", required_argument, NULL, 'o' },
                { "help", no_argument, NULL, 'h' },
                { 0 },
        };
        bool json = false;
        int c;
        optind = 1;
        opterr = 0;
        while ((c = getopt_long(argc, argv, ":ho:", longopts, NULL)) != -1) {
                switch (c) {
                case 'o':
                        if (strcmp(optarg, "json") != 0 && strcmp(optarg, "table") != 0)
                                return cli_usage_error(CMD, "-o wants table or json, not \"%s\"", optarg);
                        json = strcmp(optarg, "json") == 0;
                        break;
                case 'h': cmd_test_help(); return 0;
                case ':':
                default: return cli_getopt_error(CMD, c, argv);
                }
        }
        if (optind >= argc)
                return cli_usage_error(CMD, "name a test file or a directory of *" TEST_SUFFIX " files");

        struct files fs = { 0 };
        struct run run = { .cases = cJSON_CreateArray(), .errors = cJSON_CreateArray() };
        int rc = 2;
        if (!run.cases || !run.errors || gather(argc - optind, argv + optind, &fs) < 0)
                goto out;
        for (size_t i = 0; i < fs.n; i++)
                run_file(&run, fs.paths[i]);
        for (const cJSON *e = run.errors->child; e; e = e->next)
                fprintf(stderr, "%s\n", e->valuestring);
        if (json ? print_json(&run) < 0 : (print_table(&run), false)) {
                fprintf(stderr, CMD ": out of memory\n");
                goto out;
        }
        if (fflush(stdout) != 0)
                goto out;
        rc = cJSON_GetArraySize(run.errors) ? 2 : run.failed ? 1 : 0;
out:
        for (size_t i = 0; i < fs.n; i++)
                free(fs.paths[i]);
        free(fs.paths);
        cJSON_Delete(run.cases);
        cJSON_Delete(run.errors);
        return rc;
}
