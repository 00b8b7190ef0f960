#!/usr/bin/env bash
# Installs what building, running and testing need, and nothing that is
# already there. Safe to run again. Needs root (or sudo) only when something
# is missing.
set -euo pipefail

# libmicrohttpd 1.0 is not among Debian 12's packages: meson builds it from
# subprojects/libmicrohttpd.wrap when the system has no 1.0.
debs=(gcc make meson ninja-build pkg-config
      libgnutls28-dev libssl-dev libcjson-dev libcurl4-openssl-dev libyaml-dev
      libcmocka-dev openssl curl python3 python3-pip faketime
      nghttp2-client valgrind)   # h2load and memcheck: the soak and valgrind steps of make test
. "$(dirname "$0")/apt.sh"
apt_install deps "${debs[@]}"

# Python side of the integration tests: pytest, and a real RFC 6902
# implementation to apply the patches we return.
py=${PYTHON:-python3}
if ! "$py" -c 'import pytest, jsonpatch, yaml' 2>/dev/null; then
        echo "deps: installing pytest jsonpatch pyyaml for $py" >&2
        "$py" -m pip install -q pytest jsonpatch pyyaml 2>/dev/null ||
                "$py" -m pip install -q --break-system-packages pytest jsonpatch pyyaml
fi

# The end-to-end tests build kube-apiserver, kubectl and etcd from their Go
# modules (tests/e2e/build-control-plane.sh): that needs Go 1.24 or newer,
# which Debian's golang packages are not. Say so now rather than later.
if ! command -v go >/dev/null 2>&1 && [ ! -x /usr/local/go/bin/go ]; then
        echo "deps: no Go toolchain (1.24 or newer): the end-to-end tests cannot build kube-apiserver" >&2
fi
