# The front door. meson does the work; these targets only call it.
#   make run    install what is missing, build, make dev certificates, serve
#               https://127.0.0.1:8443 with deploy/policy.yaml
#   make test   everything CI runs: the style checks (make format-check, make
#               length-check, make analyze), unit tests (plain and ASan+UBSan), the
#               integration tests against the real binary, the end-to-end
#               tests against a real kube-apiserver, the Helm chart (make helm),
#               and the image built and run
#   make format rewrite the C sources to .clang-format (clang-format 19, installed
#               when missing); make format-check only checks them
#   make length-check  no function of webhook/*/*.c over 80 lines unless the
#               comment above it has a "Long:" line saying why
#               (tests/style/check-length.sh)
#   make analyze  gcc -fanalyzer over webhook/ in $(ANALYZER_BUILD), -Werror: no
#               finding (tests/style/analyze.sh)
#   make helm   the Helm chart (deploy/helm/spark-identity-webhook) with the real
#               helm v4.3.2, built once from its Go module into
#               ~/.cache/spark-identity-webhook: helm lint, helm template against
#               kubectl kustomize deploy/base, every value, the schema's refusals
#               (tests/helm/run.sh; make e2e installs it on a real API server)
#   make e2e    the end-to-end tests alone (builds kube-apiserver, kubectl and
#               etcd once, into ~/.cache/spark-identity-webhook)
#   make bench  the benchmark: the server built for release ($(RELEASE_BUILD)) and
#               the floor probe side by side under h2load, the microbenchmark
#               and its callgrind counts; the table goes to $(RELEASE_BUILD)/bench.md
#               (tests/bench/run.sh; not part of make test)
#   make soak   the server built for release ($(RELEASE_BUILD)) at half of its
#               saturated rate for $(SOAK_SECONDS) s while the policy is rewritten,
#               the serving pair renewed and the decision log rotated: no failed
#               request, flat resident memory (tests/soak/run.sh); make test
#               runs it 30 s against the debug build
#   make tsan   ThreadSanitizer (gcc, -O1, libmicrohttpd instrumented too, in
#               $(TSAN_BUILD)): the unit tests, the integration tests against
#               its server and a $(TSAN_SOAK_SECONDS) s soak with policy,
#               pair and log rotations; any report fails it (tests/tsan.sh;
#               suppressions, only for races inside libmicrohttpd, in
#               tests/tsan.supp); make test runs it too
#   make valgrind  the unit tests and the debug build's server (a short soak,
#               rotations included, then SIGTERM) under valgrind's memcheck: no
#               error, nothing lost (tests/soak/valgrind.sh); make test runs
#               the server part, 15 s
#   make fuzz   the libFuzzer targets (tests/fuzz, clang with ASan+UBSan, built in
#               $(FUZZ_BUILD)): their corpora and regressions replayed, then
#               $(FUZZ_SECONDS) s of fuzzing each; make test runs them 20 s each
#   make render deploy/admission-policy/admission-policy.yaml again from
#               deploy/policy.yaml (the admission policy the API server
#               enforces itself; run it whenever the policy changes)
#   make policy-test  deploy/tests: the example policy's test cases
#               ('spark-identity-webhook test'; make test runs them in the
#               integration tests)
#   make attack hostile clients against the server ($(BUILD)) for $(ATTACK_SECONDS) s:
#               huge bodies, 200 connections holding 7 MiB, 2 x 512 trickling
#               and 2 x 512 silent TLS connections, while a probe measures
#               legitimate reviews (tests/attack/run.sh); make test runs 20 s
#   make image  the container image from the Dockerfile, with buildah (no
#               Docker engine; the debian:bookworm-slim base is debootstrapped
#               once into ~/.cache/spark-identity-webhook), as $(IMAGE),
#               labelled with meson.build's version
#   make install  the binary to $(PREFIX)/bin/spark-identity-webhook and the link
#               $(PREFIX)/bin/kubectl-spark_identity, which kubectl runs as its plugin
#               'kubectl spark-identity' (PREFIX=/usr/local; DESTDIR honoured)
#   make clean

BUILD      ?= build
ASAN_BUILD ?= build-asan
RELEASE_BUILD ?= build-release
FUZZ_BUILD ?= build-fuzz
TSAN_BUILD ?= build-tsan
TSAN_SOAK_SECONDS ?= 20
ANALYZER_BUILD ?= build-analyzer
FUZZ_SECONDS ?= 300
SOAK_SECONDS ?= 600
ATTACK_SECONDS ?= 60
BIN        := $(BUILD)/spark-identity-webhook
DEV        ?= certs/dev
LISTEN     ?= 127.0.0.1:8443
POLICY     ?= deploy/policy.yaml
IMAGE      ?= localhost/spark-identity-webhook:test
PREFIX     ?= /usr/local

.PHONY: all deps build build-asan run certs test e2e helm bench soak tsan valgrind fuzz image render policy-test clean \
	format format-check length-check analyze install

all: build

deps:
	@.ci/deps.sh

$(BUILD)/build.ninja:
	meson setup $(BUILD) --buildtype=debug

$(ASAN_BUILD)/build.ninja:
	meson setup $(ASAN_BUILD) --buildtype=debug -Db_sanitize=address,undefined -Db_lundef=false

build: deps $(BUILD)/build.ninja
	ninja -C $(BUILD)

build-asan: deps $(ASAN_BUILD)/build.ninja
	ninja -C $(ASAN_BUILD)

# Development certificates for the local server; made once, kept in $(DEV).
certs: build
	@if [ ! -f $(DEV)/tls.crt ] || ! openssl x509 -checkend 86400 -noout -in $(DEV)/tls.crt >/dev/null 2>&1; then \
		$(BIN) certs --service spark-identity-webhook --namespace spark-identity-system \
			--ip 127.0.0.1 --ip ::1 --dns localhost --out $(DEV) --force; \
	fi

run: certs
	@echo "serving https://$(LISTEN) with $(POLICY); try:"
	@echo "  curl --cacert $(DEV)/ca.crt https://$(LISTEN)/readyz"
	$(BIN) serve --policy $(POLICY) --tls-cert $(DEV)/tls.crt --tls-key $(DEV)/tls.key --listen $(LISTEN)

test: build build-asan
	@tests/run.sh $(BUILD) $(ASAN_BUILD) $(FUZZ_BUILD) $(TSAN_BUILD) $(ANALYZER_BUILD)

format:
	@tests/style/check-format.sh --fix

format-check:
	@tests/style/check-format.sh

length-check:
	@tests/style/check-length.sh

analyze: deps
	@tests/style/analyze.sh $(ANALYZER_BUILD)

e2e: build
	@tests/e2e/run.sh $(BUILD)

helm:
	@tests/helm/run.sh $(BUILD)

bench: deps
	@tests/bench/run.sh $(RELEASE_BUILD)

soak: deps
	@SOAK_SECONDS=$(SOAK_SECONDS) tests/soak/run.sh $(RELEASE_BUILD)

tsan: deps
	@TSAN_SOAK_SECONDS=$(TSAN_SOAK_SECONDS) tests/tsan.sh $(TSAN_BUILD)

valgrind: build
	@tests/soak/valgrind.sh $(BUILD)

attack: build
	@ATTACK_SECONDS=$(ATTACK_SECONDS) tests/attack/run.sh $(BUILD)

fuzz: deps
	@tests/fuzz/run.sh $(FUZZ_BUILD) $(FUZZ_SECONDS)

image:
	@tests/image/build.sh $(IMAGE)

# Written beside and then moved, so that a failure leaves the old file whole.
ADMISSION_POLICY := deploy/admission-policy/admission-policy.yaml
policy-test: build
	$(BIN) test deploy/tests

render: build
	$(BIN) render admission-policy --policy deploy/policy.yaml > $(ADMISSION_POLICY).new || \
		{ rm -f $(ADMISSION_POLICY).new; exit 1; }
	mv $(ADMISSION_POLICY).new $(ADMISSION_POLICY)

# The same binary is the kubectl plugin when run as kubectl-spark_identity.
install: build
	install -d '$(DESTDIR)$(PREFIX)/bin'
	install -m 0755 $(BIN) '$(DESTDIR)$(PREFIX)/bin/spark-identity-webhook'
	ln -sfn spark-identity-webhook '$(DESTDIR)$(PREFIX)/bin/kubectl-spark_identity'

clean:
	rm -rf $(BUILD) $(ASAN_BUILD) $(FUZZ_BUILD) $(TSAN_BUILD) $(ANALYZER_BUILD)
