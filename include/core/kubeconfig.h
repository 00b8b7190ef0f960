/* kubeconfig files as kubectl reads them, and the exec credential plugin's
 * configuration, request and answer (client.authentication.k8s.io v1 and
 * v1beta1).
 *
 * Merging follows kubectl for a KUBECONFIG list: the first file that sets
 * current-context gives it; for clusters, users and contexts the first file
 * that defines a name gives that entry, and a path inside an entry is
 * relative to the directory of the file that defined it.
 *
 * Pure: parsed documents and bytes in, choices and bytes out; no I/O, no
 * clock, no globals. Errors go into the caller's `err`.
 *
 * Ownership: struct kubeconfig_choice and struct kubeconfig_exec point into
 * the caller's documents and live as long as they do. struct
 * kubeconfig_exec_answer owns its strings: kubeconfig_exec_answer_free(). */
#pragma once
#include <stdbool.h>
#include <stddef.h>
#include <cjson/cJSON.h>

#include "buf.h"
#include "webhook_limits.h"

#define KUBECONFIG_EXEC_V1 "client.authentication.k8s.io/v1"
#define KUBECONFIG_EXEC_V1BETA1 "client.authentication.k8s.io/v1beta1"

/* One file of the list, in KUBECONFIG's order: its path (for messages and
 * relative paths) and its parsed root. */
struct kubeconfig_file {
        const char *path;
        const cJSON *root;
};

/* The context a command uses, and the entries it names. */
struct kubeconfig_choice {
        const char *context;       /* its name */
        const cJSON *cluster;      /* the cluster's inner map */
        const cJSON *user;         /* the user's inner map; NULL: the context names no user */
        size_t cluster_file;       /* the index of the file that defined the cluster */
        size_t user_file;          /* ... the user */
};

/* Picks `context` (NULL: the merged current-context) from the `n` files and
 * finds its cluster and user by the merge rules above. 0, or -EINVAL with a
 * message: no current-context (and the contexts there are), an unknown
 * context (and the contexts there are), a cluster or user no file defines. */
int kubeconfig_choose(const struct kubeconfig_file *files, size_t n, const char *context,
                      struct kubeconfig_choice *ret_choice, char *err, size_t errlen);

/* A user's `exec` map, checked. Never interactive: `interactiveMode: Always`
 * is refused (a plugin that needs a terminal cannot run here); `Never` and
 * `IfAvailable` (the default) run without one. */
struct kubeconfig_exec {
        const char *api_version;   /* KUBECONFIG_EXEC_V1 or KUBECONFIG_EXEC_V1BETA1 */
        const char *command;       /* as written: a name looked up on PATH, or a path */
        const char *args[WH_EXEC_MAX_ARGS];
        size_t n_args;
        const char *env_names[WH_EXEC_MAX_ENV], *env_values[WH_EXEC_MAX_ENV];
        size_t n_env;
        const char *install_hint;  /* or NULL */
        bool provide_cluster_info;
};

/* Reads `exec` (the user's exec map) into *ret. 0, or -EINVAL naming the
 * key that is wrong. */
int kubeconfig_exec_parse(const cJSON *exec, struct kubeconfig_exec *ret, char *err, size_t errlen);

/* Appends the ExecCredential a plugin gets in KUBERNETES_EXEC_INFO:
 * {"apiVersion":...,"kind":"ExecCredential","spec":{"interactive":false}},
 * with spec.cluster {server, certificate-authority-data} when the exec map
 * asks for the cluster's info (`ca_b64` may be NULL). 0 or a negative errno. */
int kubeconfig_exec_request(const struct kubeconfig_exec *x, const char *server, const char *ca_b64, struct buf *out);

/* What a plugin answered. */
struct kubeconfig_exec_answer {
        char *token;               /* status.token, or NULL */
        char *cert, *key;          /* status.clientCertificateData and clientKeyData (PEM), or NULL */
        bool expires;              /* status.expirationTimestamp was given */
        long long expiry;          /* then: seconds since the epoch, UTC */
};

/* Parses a plugin's standard output: an ExecCredential of `api_version`
 * with a token, or a client certificate and key, or both, and perhaps an
 * RFC 3339 expirationTimestamp. 0, or -EINVAL with a message that never
 * quotes the output (it holds secrets). On failure *ret holds nothing. */
int kubeconfig_exec_answer(const char *text, size_t len, const char *api_version, struct kubeconfig_exec_answer *ret,
                           char *err, size_t errlen);

/* Releases the answer's strings (wiping them) and zeroes it. NULL is fine. */
void kubeconfig_exec_answer_free(struct kubeconfig_exec_answer *a);

/* An RFC 3339 date-time ("2026-12-05T11:30:00Z", "...T11:30:00.5+01:00")
 * as seconds since the epoch. 0, or -EINVAL. */
int kubeconfig_rfc3339(const char *s, long long *ret_seconds);
