/* Exec credential plugins: see include/io/exec_credential.h. */
#include "exec_credential.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <spawn.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "buf.h"
#include "err.h"
#include "webhook_limits.h"

extern char **environ;

#define EXEC_INFO "KUBERNETES_EXEC_INFO"

struct exec_credential {
        pthread_mutex_t lock;
        char *command;             /* as run: resolved against the kubeconfig's directory when it has a '/' */
        char **argv;               /* command, then args; NULL-terminated */
        char **env;                /* NAME=VALUE of the exec map's env, then KUBERNETES_EXEC_INFO; NULL-terminated */
        size_t n_env;
        char *install_hint;        /* or NULL */
        char *api_version;
        /* Under the lock: */
        struct kubeconfig_exec_answer kept;
        bool have;
        unsigned long generation;
};

static char *join_dir(const char *kubeconfig_path, const char *command)
{
        char *out = NULL;
        const char *slash = strrchr(kubeconfig_path, '/');
        if (command[0] == '/' || !strchr(command, '/') || !slash)
                return strdup(command);
        if (asprintf(&out, "%.*s/%s", (int)(slash - kubeconfig_path), kubeconfig_path, command) < 0)
                return NULL;
        return out;
}

static void free_strv(char **v)
{
        for (size_t i = 0; v && v[i]; i++)
                free(v[i]);
        free(v);
}

void exec_credential_free(struct exec_credential *e)
{
        if (!e)
                return;
        pthread_mutex_destroy(&e->lock);
        free(e->command);
        free_strv(e->argv);
        free_strv(e->env);
        free(e->install_hint);
        free(e->api_version);
        kubeconfig_exec_answer_free(&e->kept);
        free(e);
}

static int copy_config(struct exec_credential *e, const struct kubeconfig_exec *x, const char *kubeconfig_path,
                       const char *request)
{
        e->command = join_dir(kubeconfig_path, x->command);
        e->argv = calloc(x->n_args + 2, sizeof *e->argv);
        e->env = calloc(x->n_env + 2, sizeof *e->env);
        e->api_version = strdup(x->api_version);
        if (!e->command || !e->argv || !e->env || !e->api_version)
                return -ENOMEM;
        if (!(e->argv[0] = strdup(e->command)))
                return -ENOMEM;
        for (size_t i = 0; i < x->n_args; i++)
                if (!(e->argv[i + 1] = strdup(x->args[i])))
                        return -ENOMEM;
        for (size_t i = 0; i < x->n_env; i++)
                if (asprintf(&e->env[e->n_env++], "%s=%s", x->env_names[i], x->env_values[i]) < 0) {
                        e->env[--e->n_env] = NULL;
                        return -ENOMEM;
                }
        if (asprintf(&e->env[e->n_env++], EXEC_INFO "=%s", request) < 0) {
                e->env[--e->n_env] = NULL;
                return -ENOMEM;
        }
        if (x->install_hint && !(e->install_hint = strdup(x->install_hint)))
                return -ENOMEM;
        return 0;
}

int exec_credential_new(const struct kubeconfig_exec *x, const char *kubeconfig_path, const char *request,
                        struct exec_credential **ret, char *err, size_t errlen)
{
        struct exec_credential *e = calloc(1, sizeof *e);
        if (!e)
                return -ENOMEM;
        pthread_mutex_init(&e->lock, NULL);
        int r = copy_config(e, x, kubeconfig_path, request);
        if (r < 0) {
                err_set(err, errlen, "out of memory");
                exec_credential_free(e);
                return r;
        }
        *ret = e;
        return 0;
}

/* ---- one run ---- */

/* The environment of a run: the process's, less the names the exec map
 * sets (and KUBERNETES_EXEC_INFO), then the exec map's. */
static char **run_env(const struct exec_credential *e)
{
        size_t n = 0;
        while (environ && environ[n])
                n++;
        char **v = calloc(n + e->n_env + 1, sizeof *v);
        size_t k = 0;
        if (!v)
                return NULL;
        for (size_t i = 0; i < n; i++) {
                bool replaced = false;
                for (size_t j = 0; j < e->n_env && !replaced; j++) {
                        size_t name_len = (size_t)(strchr(e->env[j], '=') - e->env[j]);
                        replaced = strncmp(environ[i], e->env[j], name_len + 1) == 0;
                }
                if (!replaced)
                        v[k++] = environ[i];
        }
        for (size_t j = 0; j < e->n_env; j++)
                v[k++] = e->env[j];
        return v;   /* the strings are borrowed: free the array only */
}

/* Starts the plugin with stdin from /dev/null and stdout and stderr to the
 * pipes' write ends, in its own process group, with default signal
 * dispositions and no blocked signal (serve blocks its own for a signalfd),
 * and no other descriptor of ours. 0 or a positive errno. */
static int spawn(const struct exec_credential *e, int out_w, int err_w, pid_t *ret_pid)
{
        posix_spawn_file_actions_t fa;
        posix_spawnattr_t attr;
        sigset_t none, all;
        char **env = run_env(e);
        if (!env)
                return ENOMEM;
        sigemptyset(&none);
        sigfillset(&all);
        posix_spawn_file_actions_init(&fa);
        posix_spawnattr_init(&attr);
        posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
        posix_spawn_file_actions_adddup2(&fa, out_w, 1);
        posix_spawn_file_actions_adddup2(&fa, err_w, 2);
        posix_spawn_file_actions_addclosefrom_np(&fa, 3);
        posix_spawnattr_setsigmask(&attr, &none);
        posix_spawnattr_setsigdefault(&attr, &all);
        posix_spawnattr_setpgroup(&attr, 0);
        posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF | POSIX_SPAWN_SETPGROUP);
        int r = posix_spawnp(ret_pid, e->command, &fa, &attr, e->argv, env);
        posix_spawnattr_destroy(&attr);
        posix_spawn_file_actions_destroy(&fa);
        free(env);
        return r;
}

static long long now_ms(void)
{
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        return ts.tv_sec * 1000LL + ts.tv_nsec / 1000000;
}

/* What a run left: its stdout, the head of its stderr, how it ended. */
struct run {
        struct buf out;
        char stderr_head[WH_EXEC_MAX_STDERR_BYTES + 1];
        size_t stderr_len;
        bool timed_out, too_much;
        int status;                /* waitpid()'s */
};

/* Reads one ready pipe: 1 at its end, 0 to go on, -1 to stop (too much). */
static int drain(int fd, bool is_out, struct run *rn)
{
        char chunk[4096];
        ssize_t n = read(fd, chunk, sizeof chunk);
        if (n < 0)
                return errno == EINTR || errno == EAGAIN ? 0 : 1;
        if (n == 0)
                return 1;
        if (is_out) {
                if (buf_append(&rn->out, chunk, (size_t)n) < 0) {
                        rn->too_much = true;
                        return -1;
                }
                return 0;
        }
        size_t room = WH_EXEC_MAX_STDERR_BYTES - rn->stderr_len, take = (size_t)n < room ? (size_t)n : room;
        memcpy(rn->stderr_head + rn->stderr_len, chunk, take);
        rn->stderr_len += take;
        return 0;
}

/* Reads both pipes until both end, the output passes its bound or the
 * deadline passes. */
static void collect(int out_r, int err_r, struct run *rn)
{
        struct pollfd p[2] = { { .fd = out_r, .events = POLLIN }, { .fd = err_r, .events = POLLIN } };
        long long deadline = now_ms() + WH_EXEC_TIMEOUT_MS;
        while (p[0].fd >= 0 || p[1].fd >= 0) {
                long long left = deadline - now_ms();
                if (left <= 0) {
                        rn->timed_out = true;
                        return;
                }
                int n = poll(p, 2, (int)left);
                if (n < 0 && errno == EINTR)
                        continue;
                if (n < 0)
                        return;
                for (int i = 0; i < 2; i++) {
                        if (p[i].fd < 0 || !p[i].revents)
                                continue;
                        int d = drain(p[i].fd, i == 0, rn);
                        if (d < 0)
                                return;
                        if (d > 0)
                                p[i].fd = -1;
                }
        }
}

/* Runs the plugin once into `rn`. 0 once it ran (whatever it did), or a
 * negative errno when it could not start. */
static int run_once(const struct exec_credential *e, struct run *rn)
{
        int out_p[2] = { -1, -1 }, err_p[2] = { -1, -1 };
        pid_t pid = 0;
        if (pipe2(out_p, O_CLOEXEC) < 0 || pipe2(err_p, O_CLOEXEC) < 0) {
                int r = -errno;
                for (int i = 0; i < 2; i++) {
                        if (out_p[i] >= 0)
                                close(out_p[i]);
                }
                return r;
        }
        int r = spawn(e, out_p[1], err_p[1], &pid);
        close(out_p[1]);
        close(err_p[1]);
        if (r == 0) {
                collect(out_p[0], err_p[0], rn);
                if (rn->timed_out || rn->too_much)
                        kill(-pid, SIGKILL);   /* its process group: a child it started holds the pipes too */
                while (waitpid(pid, &rn->status, 0) < 0 && errno == EINTR)
                        ;
        }
        close(out_p[0]);
        close(err_p[0]);
        return -r;
}

/* The head of the plugin's stderr for a message: trailing blanks cut. */
static const char *stderr_text(struct run *rn)
{
        while (rn->stderr_len && strchr(" \t\r\n", rn->stderr_head[rn->stderr_len - 1]))
                rn->stderr_len--;
        rn->stderr_head[rn->stderr_len] = '\0';
        return rn->stderr_head;
}

/* Long: each way a run can fail has its own message. */
static int run_plugin(const struct exec_credential *e, struct kubeconfig_exec_answer *ret, char *err, size_t errlen)
{
        struct run rn = { 0 };
        char why[512] = "";
        buf_init(&rn.out, WH_EXEC_MAX_OUTPUT_BYTES);
        int r = run_once(e, &rn);
        if (r == -ENOENT || r == -EACCES) {
                err_set(err, errlen, "exec plugin \"%s\" %s%s%s", e->command,
                        r == -ENOENT ? (strchr(e->command, '/') ? "does not exist" : "is not found on PATH")
                                     : "cannot be run (permission denied)",
                        e->install_hint ? ": " : "", e->install_hint ? e->install_hint : "");
        } else if (r < 0) {
                err_set(err, errlen, "exec plugin \"%s\" cannot be started: %s", e->command, strerror(-r));
        } else if (rn.timed_out) {
                r = -ETIMEDOUT;
                err_set(err, errlen, "exec plugin \"%s\" gave no answer within %u s (killed)", e->command,
                        WH_EXEC_TIMEOUT_MS / 1000);
        } else if (rn.too_much) {
                r = -E2BIG;
                err_set(err, errlen, "exec plugin \"%s\" printed more than %u bytes (killed)", e->command,
                        WH_EXEC_MAX_OUTPUT_BYTES);
        } else if (!WIFEXITED(rn.status) || WEXITSTATUS(rn.status) != 0) {
                r = -EIO;
                if (WIFEXITED(rn.status))
                        err_set(err, errlen, "exec plugin \"%s\" failed with exit status %d", e->command,
                                WEXITSTATUS(rn.status));
                else
                        err_set(err, errlen, "exec plugin \"%s\" was killed by signal %d", e->command,
                                WTERMSIG(rn.status));
                const char *text = stderr_text(&rn);
                if (*text)
                        err_append(err, errlen, ": %s", text);
        } else if ((r = kubeconfig_exec_answer(rn.out.data ? rn.out.data : "", rn.out.len, e->api_version, ret, why,
                                               sizeof why)) < 0) {
                err_set(err, errlen, "exec plugin \"%s\": %s", e->command, why);
        }
        if (rn.out.data)
                explicit_bzero(rn.out.data, rn.out.len);   /* it holds the credential */
        buf_free(&rn.out);
        return r;
}

/* ---- the kept credential ---- */

static int dup_or_null(const char *s, char **ret)
{
        *ret = s ? strdup(s) : NULL;
        return s && !*ret ? -ENOMEM : 0;
}

void exec_credential_value_free(struct exec_credential_value *v)
{
        if (!v)
                return;
        struct kubeconfig_exec_answer a = { .token = v->token, .cert = v->cert, .key = v->key };
        kubeconfig_exec_answer_free(&a);   /* wipes them */
        *v = (struct exec_credential_value){ 0 };
}

int exec_credential_get(struct exec_credential *e, struct exec_credential_value *ret, char *err, size_t errlen)
{
        int r = 0;
        pthread_mutex_lock(&e->lock);
        if (e->have && e->kept.expires && (long long)time(NULL) >= e->kept.expiry) {
                kubeconfig_exec_answer_free(&e->kept);
                e->have = false;
        }
        if (!e->have) {
                struct kubeconfig_exec_answer a = { 0 };
                r = run_plugin(e, &a, err, errlen);
                if (r == 0) {
                        e->kept = a;
                        e->have = true;
                        e->generation++;
                }
        }
        struct exec_credential_value v = { .generation = e->generation };
        if (r == 0 && (dup_or_null(e->kept.token, &v.token) < 0 || dup_or_null(e->kept.cert, &v.cert) < 0 ||
                       dup_or_null(e->kept.key, &v.key) < 0)) {
                r = -ENOMEM;
                err_set(err, errlen, "out of memory");
        }
        pthread_mutex_unlock(&e->lock);
        if (r < 0) {
                exec_credential_value_free(&v);
                return r;
        }
        *ret = v;
        return 0;
}

void exec_credential_refused(struct exec_credential *e, unsigned long generation)
{
        pthread_mutex_lock(&e->lock);
        if (e->have && e->generation == generation) {
                kubeconfig_exec_answer_free(&e->kept);
                e->have = false;
        }
        pthread_mutex_unlock(&e->lock);
}
