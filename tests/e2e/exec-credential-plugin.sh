#!/bin/sh
# An exec credential plugin for the end-to-end tests (test_19_kubeconfig.py),
# as kubelogin is one on AKS: prints an ExecCredential
# (client.authentication.k8s.io/v1) whose token is the content of
# $TOKEN_FILE (a token the API server minted), expiring $EXPIRES_IN seconds
# from now when that is set. Counts its runs in $RUNS_FILE and keeps the
# request it was given (KUBERNETES_EXEC_INFO) in $RUNS_FILE.request. With
# $FAIL set, says it on stderr and exits 1, as a plugin whose login expired.
# The variables come from the kubeconfig's exec.env.
set -eu
n=$(cat "$RUNS_FILE" 2>/dev/null || echo 0)
echo $((n + 1)) >"$RUNS_FILE"
printf '%s' "${KUBERNETES_EXEC_INFO:-}" >"$RUNS_FILE.request"
if [ -n "${FAIL:-}" ]; then
        echo "$FAIL" >&2
        exit 1
fi
token=$(cat "$TOKEN_FILE")
expiry=""
if [ -n "${EXPIRES_IN:-}" ]; then
        expiry=",\"expirationTimestamp\":\"$(date -u -d "+${EXPIRES_IN} seconds" +%Y-%m-%dT%H:%M:%SZ)\""
fi
printf '{"apiVersion":"client.authentication.k8s.io/v1","kind":"ExecCredential","status":{"token":"%s"%s}}\n' \
        "$token" "$expiry"
