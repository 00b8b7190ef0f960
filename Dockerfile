# The spark-identity-webhook image: the release binary on debian:bookworm-slim
# with only the libraries it loads, run as 65532:65532, nothing at run time
# that needs a shell. Built and run by tests/image (buildah, no Docker engine).
# VERSION is meson.build's project version, the one place it is written;
# tests/image/build.sh (make image) passes it, and the build fails when it
# is not the version the binary was built with:
#   v=$(sed -n "s/^ *version : '\(.*\)',$/\1/p" meson.build)
#   docker build --build-arg VERSION=$v -t spark-identity-webhook:$v .
#   buildah --storage-driver vfs bud --isolation chroot --build-arg VERSION=$v -t spark-identity-webhook:$v .
# .dockerignore lets only the sources into the context (never build/ or certs/).

# Build: compiler, meson and the -dev packages. Only the binary is built:
# cmocka is not installed, so tests/meson.build skips the unit tests.
# libmicrohttpd 1.0 is not a Debian 12 package: meson fetches its release
# (subprojects/libmicrohttpd.wrap, checked by SHA-256) and links it statically.
FROM debian:bookworm-slim AS build
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
      gcc libc6-dev make meson ninja-build pkg-config ca-certificates \
      libgnutls28-dev libssl-dev libcjson-dev libcurl4-openssl-dev libyaml-dev \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /src
# Only the sources, named one by one: a checkout's subprojects/ may also
# hold what meson unpacked there, and the build stage fetches the tarball
# the wrap names itself and checks its hash. .dockerignore keeps the rest
# (build directories, certs/, .git) out of the context.
COPY meson.build ./
COPY include/ include/
COPY webhook/ webhook/
COPY tests/meson.build tests/
COPY subprojects/libmicrohttpd.wrap subprojects/
COPY subprojects/packagefiles/ subprojects/packagefiles/
# Release with -O2 (STYLE.md; meson's release alone is -O3, hence its
# warning that the two options overlap), asserts off; werror stays on.
RUN meson setup /build --buildtype=release -Doptimization=2 -Db_ndebug=true \
 && ninja -C /build spark-identity-webhook \
 && strip --strip-unneeded /build/spark-identity-webhook
# After the build, so that the compiled steps stay cached across versions.
ARG VERSION
RUN test "$(/build/spark-identity-webhook --version)" = "spark-identity-webhook ${VERSION}" \
 || { echo "--build-arg VERSION=${VERSION} is not meson.build's version: $(/build/spark-identity-webhook --version)" >&2; exit 1; }

# Run: the same base and only the runtime libraries (ca-certificates for the
# Kubernetes API's and any other public CA chain). No compiler, no meson.
FROM debian:bookworm-slim
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
      libgnutls30 libssl3 libcjson1 libcurl4 libyaml-0-2 ca-certificates \
 && apt-get clean \
 && rm -rf /var/lib/apt/lists/* /var/cache/apt/*.bin /var/cache/debconf/*-old \
           /var/log/apt /var/log/dpkg.log /var/log/alternatives.log
COPY --from=build /build/spark-identity-webhook /usr/local/bin/spark-identity-webhook
ARG VERSION
LABEL org.opencontainers.image.title="spark-identity-webhook" \
      org.opencontainers.image.description="Kubernetes admission webhook: Azure identity, Java and hadoop-azure settings for Spark pods" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.licenses="Apache-2.0"
# The distroless "nonroot" ids; deploy/base/deployment.yaml asks for the same.
USER 65532:65532
# Fails the build here, not in the cluster, if a library is missing.
RUN ["/usr/local/bin/spark-identity-webhook", "--version"]
EXPOSE 8443
ENTRYPOINT ["/usr/local/bin/spark-identity-webhook"]
# The paths deploy/base/deployment.yaml mounts the policy ConfigMap and the TLS
# Secret at; the Deployment gives the same arguments explicitly.
CMD ["serve", "--policy=/etc/spark-identity/policy/policy.yaml", \
     "--tls-cert=/etc/spark-identity/tls/tls.crt", "--tls-key=/etc/spark-identity/tls/tls.key", \
     "--listen=0.0.0.0:8443"]
