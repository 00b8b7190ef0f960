# Build: debian:bookworm-slim with the compiler and the -dev packages.
FROM debian:bookworm-slim AS build
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
      gcc libc6-dev meson ninja-build pkg-config \
      libmicrohttpd-dev libgnutls28-dev libssl-dev libcjson-dev libcurl4-openssl-dev libyaml-dev \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY meson.build ./
COPY include/ include/
COPY webhook/ webhook/
COPY tests/meson.build tests/meson.build
RUN meson setup /build --buildtype=release -Db_ndebug=true \
 && ninja -C /build spark-identity-webhook \
 && strip /build/spark-identity-webhook

# Run: the same base with only the runtime libraries.
FROM debian:bookworm-slim
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
      libmicrohttpd12 libgnutls30 libssl3 libcjson1 libcurl4 libyaml-0-2 \
 && rm -rf /var/lib/apt/lists/*
COPY --from=build /build/spark-identity-webhook /usr/local/bin/spark-identity-webhook
USER 65532:65532
EXPOSE 8443
ENTRYPOINT ["/usr/local/bin/spark-identity-webhook"]
CMD ["serve", "--help"]
