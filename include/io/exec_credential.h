/* A kubeconfig user's exec credential plugin (client.authentication.k8s.io
 * v1 and v1beta1; kubelogin on AKS): run without a shell and without a
 * terminal (stdin is /dev/null), its environment the process's plus the exec
 * map's `env` and KUBERNETES_EXEC_INFO, its stdout bounded by
 * WH_EXEC_MAX_OUTPUT_BYTES and its run by WH_EXEC_TIMEOUT_MS (then it and
 * its process group are killed), always reaped. The credential it prints is
 * kept until its expirationTimestamp passes, or until the API server refuses
 * it (exec_credential_refused()); then the plugin runs again.
 *
 * Library-style: 0 or a negative errno, a message in the caller's `err`
 * (a failing plugin's: its exit status and the head of its stderr; one that
 * is not found: its installHint); never logs.
 *
 * Threads: a struct exec_credential may be used from several threads; one
 * lock guards the kept credential, and a caller that finds it stale runs the
 * plugin under that lock (others wait for that run, bounded by its timeout).
 *
 * Ownership: exec_credential_new() copies what it needs from the exec map;
 * exec_credential_free() releases it. A struct exec_credential_value is the
 * caller's copy: exec_credential_value_free() wipes and frees it. */
#pragma once
#include <stddef.h>

#include "kubeconfig.h"

struct exec_credential;

/* The plugin of exec map `x` from the kubeconfig at `kubeconfig_path`: a
 * command with a '/' is relative to that file's directory (as kubectl
 * resolves it), one without is looked up on PATH when it runs. `request` is
 * KUBERNETES_EXEC_INFO's value (kubeconfig_exec_request()). 0 or -ENOMEM. */
int exec_credential_new(const struct kubeconfig_exec *x, const char *kubeconfig_path, const char *request,
                        struct exec_credential **ret, char *err, size_t errlen);

void exec_credential_free(struct exec_credential *e);

/* One credential, the caller's copy. */
struct exec_credential_value {
        char *token;               /* or NULL */
        char *cert, *key;          /* PEM, or NULL */
        unsigned long generation;  /* which run of the plugin gave it (for exec_credential_refused()) */
};

/* The credential to use now: the kept one while its expiry has not passed,
 * else the plugin's answer of a new run. 0, or a negative errno with the
 * reason (-ENOENT: the command was not found; -ETIMEDOUT; -E2BIG: too much
 * output; -EIO: it failed; -EINVAL: its answer is not a credential). */
int exec_credential_get(struct exec_credential *e, struct exec_credential_value *ret, char *err, size_t errlen);

/* The API server answered 401 to the credential of run `generation`: it is
 * dropped (unless a newer run replaced it already), so that the next
 * exec_credential_get() runs the plugin again. */
void exec_credential_refused(struct exec_credential *e, unsigned long generation);

void exec_credential_value_free(struct exec_credential_value *v);
