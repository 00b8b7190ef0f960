/* Unit tests for webhook/io/exec_credential.c: real plugins, small shell
 * scripts the tests write, run as kubectl runs them: the request in
 * KUBERNETES_EXEC_INFO, the exec map's args and env, no terminal, no
 * descriptor or blocked signal of ours; the credential kept until it
 * expires or is refused; what a failing, missing, talkative or wrong plugin
 * is told. Each plugin counts its runs in a file. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <limits.h>
#include <pthread.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "exec_credential.h"
#include "webhook_limits.h"

#define xsnprintf(buf, ...) assert_true(snprintf((buf), sizeof(buf), __VA_ARGS__) < (int)sizeof(buf))
#define assert_contains(s, sub)                                                 \
        do {                                                                    \
                if (!strstr((s), (sub)))                                        \
                        fail_msg("\"%s\" does not contain \"%s\"", (s), (sub)); \
        } while (0)

static char dir[64];

static int rm_entry(const char *path, const struct stat *st, int type, struct FTW *ftw)
{
        return remove(path);
}

static int setup(void **state)
{
        strcpy(dir, "/tmp/test_exec.XXXXXX");
        return mkdtemp(dir) ? 0 : -1;
}

static int teardown(void **state)
{
        return nftw(dir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
}

static const char *in_dir(const char *name)
{
        static char path[4][PATH_MAX];
        static unsigned k;
        char *p = path[k++ % 4];
        snprintf(p, PATH_MAX, "%s/%s", dir, name);
        return p;
}

/* Writes an executable script `name` in the directory: it counts its runs
 * in runs-NAME, then runs `body`. */
static void plugin(const char *name, const char *body)
{
        char text[8192];
        xsnprintf(text,
                  "#!/bin/sh\n"
                  "n=$(cat '%s/runs-%s' 2>/dev/null || echo 0); n=$((n + 1)); echo $n > '%s/runs-%s'\n"
                  "%s\n",
                  dir, name, dir, name, body);
        const char *p = in_dir(name);
        FILE *f = fopen(p, "w");
        assert_non_null(f);
        fputs(text, f);
        fclose(f);
        assert_int_equal(chmod(p, 0755), 0);
}

static int runs(const char *name)
{
        char p[PATH_MAX];
        xsnprintf(p, "%s/runs-%s", dir, name);
        FILE *f = fopen(p, "r");
        int n = 0;
        if (f) {
                if (fscanf(f, "%d", &n) != 1)
                        n = -1;
                fclose(f);
        }
        return n;
}

static char *slurp_text(const char *name)
{
        static char text[4096];
        FILE *f = fopen(in_dir(name), "r");
        if (!f)
                return strcpy(text, "(missing)");
        size_t n = fread(text, 1, sizeof text - 1, f);
        text[n] = '\0';
        fclose(f);
        return text;
}

#define ANSWER(status) \
        "'{\"apiVersion\":\"client.authentication.k8s.io/v1\",\"kind\":\"ExecCredential\",\"status\":" status "}'"
#define REQUEST                                           \
        "{\"apiVersion\":\"client.authentication.k8s.io/" \
        "v1\",\"kind\":\"ExecCredential\",\"spec\":{\"interactive\":false}}"

/* The exec map of a plugin in the test's directory, as a kubeconfig there
 * names it: by a relative path (resolved against the kubeconfig's
 * directory). */
static struct exec_credential *make(const char *command, const char *hint)
{
        struct kubeconfig_exec x = {
                .api_version = KUBECONFIG_EXEC_V1,
                .command = command,
                .args = { "get-token", "--server-id", "a b" },
                .n_args = 3,
                .env_names = { "PLUGIN_DIR", "HOME" },
                .env_values = { dir, "/nonexistent-home" },
                .n_env = 2,
                .install_hint = hint,
        };
        struct exec_credential *e = NULL;
        char err[256] = "";
        if (exec_credential_new(&x, in_dir("kubeconfig"), REQUEST, &e, err, sizeof err) != 0)
                fail_msg("exec_credential_new: %s", err);
        return e;
}

static int get(struct exec_credential *e, struct exec_credential_value *v, char *err, size_t errlen)
{
        *v = (struct exec_credential_value){ 0 };
        return exec_credential_get(e, v, err, errlen);
}

/* What the plugin is given, and the credential kept until it is refused. */
static void test_token_kept_until_refused(void **state)
{
        plugin("tok", "printf '%s' \"$KUBERNETES_EXEC_INFO\" > \"$PLUGIN_DIR/info\"\n"
                      "echo \"$# $1 $2 $3 home=$HOME path=${PATH:+set}\" > \"$PLUGIN_DIR/args\"\n"
                      "if [ -t 0 ]; then echo tty; else wc -c < /dev/stdin; fi > \"$PLUGIN_DIR/stdin\"\n"
                      "echo " ANSWER("{\"token\":\"tok-'$n'\"}"));
        struct exec_credential *e = make("./tok", NULL);
        struct exec_credential_value v;
        char err[512] = "";
        assert_int_equal(get(e, &v, err, sizeof err), 0);
        assert_string_equal(v.token, "tok-1");
        assert_null(v.cert);
        unsigned long first = v.generation;
        exec_credential_value_free(&v);
        assert_string_equal(slurp_text("info"), REQUEST);
        assert_string_equal(slurp_text("args"), "3 get-token --server-id a b home=/nonexistent-home path=set\n");
        assert_string_equal(slurp_text("stdin"), "0\n");

        /* Kept: no expiry, not refused. */
        assert_int_equal(get(e, &v, err, sizeof err), 0);
        assert_string_equal(v.token, "tok-1");
        assert_int_equal(v.generation, first);
        exec_credential_value_free(&v);
        assert_int_equal(runs("tok"), 1);

        /* Refused (a 401): run again. A late refusal of the old one changes nothing. */
        exec_credential_refused(e, first);
        assert_int_equal(get(e, &v, err, sizeof err), 0);
        assert_string_equal(v.token, "tok-2");
        assert_true(v.generation != first);
        exec_credential_value_free(&v);
        exec_credential_refused(e, first);
        assert_int_equal(get(e, &v, err, sizeof err), 0);
        assert_string_equal(v.token, "tok-2");
        exec_credential_value_free(&v);
        assert_int_equal(runs("tok"), 2);
        exec_credential_free(e);
}

/* An expirationTimestamp that has passed makes every use run the plugin;
 * one ahead keeps the credential. A client certificate and key come as
 * they are. */
static void test_expiry(void **state)
{
        plugin("old", "echo " ANSWER("{\"token\":\"old-'$n'\",\"expirationTimestamp\":\"2001-01-01T00:00:00Z\"}"));
        plugin("new", "echo " ANSWER("{\"clientCertificateData\":\"CERT\\n\",\"clientKeyData\":\"KEY\\n\","
                                     "\"expirationTimestamp\":\"2999-01-01T00:00:00+02:00\"}"));
        struct exec_credential *e = make("./old", NULL);
        struct exec_credential_value v;
        char err[512] = "";
        for (int i = 1; i <= 3; i++) {
                char want[16];
                xsnprintf(want, "old-%d", i);
                assert_int_equal(get(e, &v, err, sizeof err), 0);
                assert_string_equal(v.token, want);
                exec_credential_value_free(&v);
        }
        exec_credential_free(e);

        e = make("./new", NULL);
        for (int i = 0; i < 3; i++) {
                assert_int_equal(get(e, &v, err, sizeof err), 0);
                assert_null(v.token);
                assert_string_equal(v.cert, "CERT\n");
                assert_string_equal(v.key, "KEY\n");
                exec_credential_value_free(&v);
        }
        assert_int_equal(runs("new"), 1);
        exec_credential_free(e);
}

/* A plugin that fails: its exit status and its stderr, bounded; nothing is
 * kept, so the next use runs it again. */
static void test_failing_plugin(void **state)
{
        plugin("fail", "echo 'AADSTS70043: the refresh token has expired; run az login' >&2\nexit 3");
        struct exec_credential *e = make("./fail", NULL);
        struct exec_credential_value v;
        char err[4096] = "";
        assert_int_equal(get(e, &v, err, sizeof err), -EIO);
        char want[PATH_MAX + 128];
        xsnprintf(want,
                  "exec plugin \"%s/./fail\" failed with exit status 3: AADSTS70043: the refresh token has "
                  "expired; run az login",
                  dir);
        assert_string_equal(err, want);
        assert_null(v.token);
        assert_int_equal(get(e, &v, err, sizeof err), -EIO);
        assert_int_equal(runs("fail"), 2);
        exec_credential_free(e);

        /* A flood on stderr: read through (no deadlock), its head kept. */
        plugin("flood", "head -c 1000000 /dev/zero | tr '\\0' x >&2\nexit 1");
        e = make("./flood", NULL);
        assert_int_equal(get(e, &v, err, sizeof err), -EIO);
        assert_contains(err, "failed with exit status 1: xxxx");
        assert_true(strlen(err) < WH_EXEC_MAX_STDERR_BYTES + 128);
        exec_credential_free(e);

        /* Killed by a signal. */
        plugin("killed", "kill -9 $$");
        e = make("./killed", NULL);
        assert_int_equal(get(e, &v, err, sizeof err), -EIO);
        assert_contains(err, "was killed by signal 9");
        exec_credential_free(e);
}

/* Not found: on PATH, with the installHint; by path, relative to the
 * kubeconfig's directory. */
static void test_missing_plugin(void **state)
{
        struct exec_credential *e = make("kubelogin-not-installed-here", "kubelogin is not installed: see "
                                                                         "https://azure.github.io/kubelogin/");
        struct exec_credential_value v;
        char err[512] = "";
        assert_int_equal(get(e, &v, err, sizeof err), -ENOENT);
        assert_string_equal(err, "exec plugin \"kubelogin-not-installed-here\" is not found on PATH: kubelogin is "
                                 "not installed: see https://azure.github.io/kubelogin/");
        exec_credential_free(e);

        e = make("bin/missing", NULL);
        assert_int_equal(get(e, &v, err, sizeof err), -ENOENT);
        char want[PATH_MAX + 64];
        xsnprintf(want, "exec plugin \"%s/bin/missing\" does not exist", dir);
        assert_string_equal(err, want);
        exec_credential_free(e);

        /* Not executable. */
        plugin("noexec", "true");
        assert_int_equal(chmod(in_dir("noexec"), 0644), 0);
        e = make("./noexec", NULL);
        assert_int_equal(get(e, &v, err, sizeof err), -EACCES);
        assert_contains(err, "cannot be run (permission denied)");
        exec_credential_free(e);
}

/* Too much output: killed, with its process group (a child it started
 * holds the pipe too); an answer that is not a credential. */
static void test_bounded_and_wrong_output(void **state)
{
        plugin("loud", "sleep 30 &\nhead -c 400000 /dev/zero | tr '\\0' x\nsleep 30");
        struct exec_credential *e = make("./loud", NULL);
        struct exec_credential_value v;
        char err[512] = "";
        time_t t0 = time(NULL);
        assert_int_equal(get(e, &v, err, sizeof err), -E2BIG);
        assert_true(time(NULL) - t0 < 10);
        assert_contains(err, "printed more than");
        exec_credential_free(e);

        plugin("wrong", "echo 'not json'");
        e = make("./wrong", NULL);
        assert_int_equal(get(e, &v, err, sizeof err), -EINVAL);
        assert_contains(err, "/./wrong\": its output is not a JSON ExecCredential");
        exec_credential_free(e);
}

/* A signal blocked here (serve blocks its own for a signalfd) is not
 * blocked in the plugin. The plugin is a Python script that reads its own
 * mask: a shell would not do, as dash clears its mask when it starts. */
static void test_signals_not_blocked(void **state)
{
        FILE *py = fopen(in_dir("sigblk.py"), "w");
        assert_non_null(py);
        fputs("#!/usr/bin/env python3\n"
              "import os\n"
              "mask = [l.split()[1] for l in open('/proc/self/status') if l.startswith('SigBlk:')][0]\n"
              "open(os.environ['PLUGIN_DIR'] + '/sigblk', 'w').write(mask + '\\n')\n"
              "print('{\"apiVersion\":\"client.authentication.k8s.io/v1\",\"kind\":\"ExecCredential\",'\n"
              "      '\"status\":{\"token\":\"t\"}}')\n",
              py);
        fclose(py);
        assert_int_equal(chmod(in_dir("sigblk.py"), 0755), 0);
        sigset_t blocked, old;
        sigemptyset(&blocked);
        sigaddset(&blocked, SIGTERM);
        sigaddset(&blocked, SIGHUP);
        pthread_sigmask(SIG_BLOCK, &blocked, &old);
        struct exec_credential *e = make("./sigblk.py", NULL);
        struct exec_credential_value v;
        char err[512] = "";
        int r = get(e, &v, err, sizeof err);
        pthread_sigmask(SIG_SETMASK, &old, NULL);
        if (r != 0)
                fail_msg("%s", err);
        exec_credential_value_free(&v);
        assert_string_equal(slurp_text("sigblk"), "0000000000000000\n");
        exec_credential_free(e);
}

/* A descriptor of ours without O_CLOEXEC is not the plugin's. */
static void test_descriptors_not_inherited(void **state)
{
        int fd = open("/dev/null", O_RDONLY);   /* no O_CLOEXEC, on purpose */
        assert_true(fd > 2);
        char body[512];
        xsnprintf(body,
                  "if [ -e /proc/$$/fd/%d ]; then echo inherited; else echo closed; fi > \"$PLUGIN_DIR/fd\"\n"
                  "echo " ANSWER("{\"token\":\"t\"}"),
                  fd);
        plugin("fds", body);
        struct exec_credential *e = make("./fds", NULL);
        struct exec_credential_value v;
        char err[512] = "";
        assert_int_equal(get(e, &v, err, sizeof err), 0);
        exec_credential_value_free(&v);
        assert_string_equal(slurp_text("fd"), "closed\n");
        exec_credential_free(e);
        close(fd);
}

struct racer {
        struct exec_credential *e;
        int failures;
};

static void *race(void *arg)
{
        struct racer *r = arg;
        for (int i = 0; i < 50; i++) {
                struct exec_credential_value v = { 0 };
                char err[256];
                if (exec_credential_get(r->e, &v, err, sizeof err) != 0 || !v.token || strcmp(v.token, "once") != 0)
                        r->failures++;
                exec_credential_value_free(&v);
        }
        return NULL;
}

/* Threads that need the credential at once (serve's namespace reads): the
 * plugin runs once, and each gets its own copy. */
static void test_threads_share_one_run(void **state)
{
        plugin("slow", "sleep 0.3\necho " ANSWER("{\"token\":\"once\"}"));
        struct exec_credential *e = make("./slow", NULL);
        struct racer r[8];
        pthread_t t[8];
        for (int i = 0; i < 8; i++) {
                r[i] = (struct racer){ .e = e };
                assert_int_equal(pthread_create(&t[i], NULL, race, &r[i]), 0);
        }
        for (int i = 0; i < 8; i++) {
                pthread_join(t[i], NULL);
                assert_int_equal(r[i].failures, 0);
        }
        assert_int_equal(runs("slow"), 1);
        exec_credential_free(e);
}

int main(void)
{
        const struct CMUnitTest tests[] = {
                cmocka_unit_test_setup_teardown(test_token_kept_until_refused, setup, teardown),
                cmocka_unit_test_setup_teardown(test_expiry, setup, teardown),
                cmocka_unit_test_setup_teardown(test_failing_plugin, setup, teardown),
                cmocka_unit_test_setup_teardown(test_missing_plugin, setup, teardown),
                cmocka_unit_test_setup_teardown(test_bounded_and_wrong_output, setup, teardown),
                cmocka_unit_test_setup_teardown(test_signals_not_blocked, setup, teardown),
                cmocka_unit_test_setup_teardown(test_descriptors_not_inherited, setup, teardown),
                cmocka_unit_test_setup_teardown(test_threads_share_one_run, setup, teardown),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
