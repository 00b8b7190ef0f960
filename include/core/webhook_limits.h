/* Every bound the server puts on what a client or a policy controls.
 * Nothing else in the tree hard-codes a limit.
 *
 * The HTTP limits are defaults: the `serve` flag named beside each overrides
 * it at start (see `spark-identity-webhook help serve`). The bounds on
 * policies, patches and answers are fixed: they are far above anything a
 * real policy or Spark pod needs, and exist so that nothing grows without
 * end. */
#pragma once

/* HTTP: one AdmissionReview body, the largest the API server can send for
 * a pod. kube-apiserver refuses request bodies over 3 MiB, so no pod is
 * written larger; stored, it grows by its defaults, status and managedFields
 * (a quarter allowed). An UPDATE's review carries the object and the old
 * one, plus the envelope (uid, userInfo with its groups and extra, options):
 * 2 x 3.75 MiB + 0.5 MiB = 8 MiB. --max-body */
#define WH_APISERVER_MAX_REQUEST_BYTES (3u * 1024u * 1024u)
#define WH_REVIEW_OBJECT_MAX_BYTES (WH_APISERVER_MAX_REQUEST_BYTES + WH_APISERVER_MAX_REQUEST_BYTES / 4u)
#define WH_REVIEW_ENVELOPE_MAX_BYTES (512u * 1024u)
#define WH_MAX_BODY_BYTES (2u * WH_REVIEW_OBJECT_MAX_BYTES + WH_REVIEW_ENVELOPE_MAX_BYTES)

/* Memory for requests in flight: their bodies and parsed reviews together
 * (budget.h), whatever clients send. The Deployment's limit is 128 MiB: the
 * server needs about 30 MiB of its own at 1024 connections (libraries, TLS,
 * thread stacks and arenas, 24 KiB a connection), this budget 64 MiB, and the
 * rest is the allocator's headroom. A quarter of it stays for reviews whose
 * body is under WH_BODY_SMALL_BYTES. --request-memory */
#define WH_REQUEST_MEMORY_BYTES (64u * 1024u * 1024u)
#define WH_REQUEST_MEMORY_MIN_BYTES (4u * 1024u * 1024u)
#define WH_BUDGET_RESERVE_PART 4u
#define WH_BODY_SMALL_BYTES (64u * 1024u)

/* One review's parse may take WH_PARSE_FACTOR times its body plus
 * WH_PARSE_SLACK_BYTES (measured: real pods 4.6 times, pods of many short
 * labels 6.7; an array of small numbers 40, which is refused with 413). */
#define WH_PARSE_FACTOR 8u
#define WH_PARSE_SLACK_BYTES (64u * 1024u)

/* Above this size, glibc serves allocations with mmap and returns them to
 * the system when freed (a fixed threshold: glibc's moving one would keep a
 * large request's memory after it). */
#define WH_MMAP_THRESHOLD_BYTES (128u * 1024u)
/* ...and, after this many connections closed in one reaper pass, what it
 * keeps of their buffers. */
#define WH_TRIM_AFTER_CLOSES 64u

/* HTTP: absolute deadlines, which bytes trickled in do not extend: from
 * accept to the end of the request headers (the TLS handshake included),
 * and from the headers to the end of the body (the API server's ?timeout=
 * may shorten it). The reaper looks every WH_REAPER_INTERVAL_MS.
 * --header-timeout, --body-timeout */
#define WH_HEADER_TIMEOUT_S 10u
#define WH_BODY_TIMEOUT_S 10u
#define WH_REAPER_INTERVAL_MS 250u

/* Mutual TLS: the common names --client-cn may list. */
#define WH_MAX_CLIENT_CNS 16u

/* Descriptors beyond two a connection (files, watches, the API). */
#define WH_FD_HEADROOM 256u

/* HTTP: simultaneous connections, all clients together. --max-connections */
#define WH_MAX_CONNECTIONS 1024u

/* HTTP: simultaneous connections from one address. The API server keeps a
 * pool of keep-alive connections per webhook; one address may use most of
 * the server. --max-connections-per-ip */
#define WH_MAX_CONNECTIONS_PER_IP 512u

/* HTTP: libmicrohttpd's per-connection pool (headers, URL, small state,
 * and its read buffer, half of the pool). Bodies do not live there: they
 * are copied out as they arrive. libmicrohttpd zeroes the whole pool after
 * every request, so each open connection keeps all of it resident. 24 KiB
 * reads a review of up to about 12 KiB (the Spark driver and executor as the
 * API server sends them) in one pass; a larger record is read in two, GnuTLS
 * holding the rest meanwhile. --connection-memory */
#define WH_CONNECTION_MEMORY_BYTES (24u * 1024u)

/* HTTP: a connection with no traffic for this long is closed, which also
 * bounds a client that sends one byte at a time. --idle-timeout */
#define WH_IDLE_TIMEOUT_S 30u

/* HTTP: the deadline of one request when the API server sends no
 * `?timeout=` (it always does; curl users may not), and the largest one we
 * accept (the API server's own maximum is 30 s). Fixed. */
#define WH_REQUEST_TIMEOUT_DEFAULT_MS 10000u
#define WH_REQUEST_TIMEOUT_MAX_MS 30000u

/* HTTP: connections to the plain metrics port (--metrics-listen). Fixed. */
#define WH_METRICS_MAX_CONNECTIONS 64u

/* Shutdown on SIGTERM: how long to keep accepting while readiness is false
 * (so that endpoints stop sending here first), and how long requests in
 * flight may take to finish after that. --shutdown-delay, --shutdown-grace */
#define WH_SHUTDOWN_DELAY_S 0u
#define WH_SHUTDOWN_GRACE_S 20u

/* HTTP: the listen queue. Fixed. */
#define WH_LISTEN_BACKLOG 1024u

/* HTTP: how strictly requests are parsed (libmicrohttpd 1.0's client
 * discipline level). 1 is RFC 9112 as written: CRLF line ends only, no
 * folded header lines, and a NUL or bare CR in a header line is a 400 from
 * the library before the request reaches us. The API server's Go client
 * never sends any of those. Fixed. */
#define WH_HTTP_DISCIPLINE 1

/* HTTP: worker threads; 0 means one per online core. --threads */
#define WH_THREADS_AUTO 0u
#define WH_MAX_THREADS 64u

/* Policy file: its size, and the counts in it. */
#define WH_MAX_POLICY_BYTES (4u * 1024u * 1024u)
#define WH_MAX_POLICY_NAMESPACES 10000u
#define WH_MAX_RULE_LIST_ITEMS 64u     /* java.options, storageAccounts, allowedIdentities */
#define WH_MAX_POLICY_LIST_ITEMS 1024u /* top-level lists: delegableIdentities, grantors */
#define WH_MAX_RULE_HADOOP_KEYS 64u
#define WH_MAX_RULE_FLAGS 128u         /* JVM flags of one rule, after per-account expansion */
#define WH_MAX_POLICY_STRING 1024u     /* one value in the policy */
#define WH_MAX_POLICY_DEPTH 16u

/* Policy file: how often the file is checked for a change even when no
 * inotify event arrives (some mounts do not deliver them). */
#define WH_POLICY_POLL_MS 2000u

/* Policy: the problems of one load, as policy_load() writes them (every
 * problem it finds, each a line of at most a few hundred bytes). */
#define WH_POLICY_ERRORS_MAX_BYTES (64u * 1024u)
/* An unknown key longer than this gets no "did you mean" (the edit distance
 * is computed in rows of this length). */
#define WH_POLICY_SUGGEST_KEY_MAX 64u
/* The policy ConfigMap's validating webhook (configmap_policy.h): the
 * problem lines its refusal carries. kubectl prints the message whole, and
 * the API server keeps it in its audit log: the first problems, then how
 * many more there are (check-policy lists them all). */
#define WH_POLICY_REFUSAL_MAX_CHARS 4096u
/* /readyz: the first problem of a refused reload. */
#define WH_POLICY_REFUSED_LINE_MAX_CHARS 512u

/* Admission: operations in one JSON Patch, warnings in one response and the
 * length of one warning (the API server truncates longer ones). */
#define WH_MAX_PATCH_OPS 512u
#define WH_MAX_PATCH_BYTES (256u * 1024u)
/* Admission: the typed changes to one pod (change.h). Each is one patch
 * operation, except that the env entries added to a container without env
 * share one: at most 4 AZURE_* entries and a mount for each further
 * container, so WH_MAX_PATCH_OPS operations never need more than about
 * 2.5 changes each, and the Spark container's entries (WH_MAX_RULE_FLAGS + 6)
 * on top. A pod past it is refused like a patch past WH_MAX_PATCH_OPS. */
#define WH_MAX_CHANGES (WH_MAX_PATCH_OPS * 5u / 2u + WH_MAX_RULE_FLAGS + 128u)
#define WH_MAX_WARNINGS 16u
#define WH_MAX_WARNING_CHARS 120u

/* Admission: the length of the denial message and of one response. */
#define WH_MAX_MESSAGE_CHARS 512u
#define WH_MAX_RESPONSE_BYTES (1u * 1024u * 1024u)

/* certs: validity of the serving certificate and of the CA. --days */
#define WH_CERT_DAYS_DEFAULT 365u
#define WH_CERT_DAYS_MAX 3650u
#define WH_CA_DAYS 3650u

/* TLS: one PEM file read (a certificate chain, a key, a CA for a caBundle),
 * and the certificates of the serving chain (leaf first). Fixed. */
#define WH_MAX_PEM_BYTES (1u * 1024u * 1024u)
#define WH_TLS_MAX_CHAIN 8u

/* test (policytest.h): a test file's size (a policy and pods inline: a
 * policy's bound), its cases, the labels, annotations or env entries of
 * one map in it, and the problems listed for one file before the rest are
 * only counted; the files one run reads (a directory is searched to this
 * depth, symbolic links to directories not followed, at most so many
 * entries in one directory) and a pod file's size (the largest review:
 * an AdmissionReview serves as a pod file). Fixed. */
#define WH_MAX_TEST_FILE_BYTES WH_MAX_POLICY_BYTES
#define WH_MAX_TEST_CASES 1000u
#define WH_MAX_TEST_KVS 256u
#define WH_MAX_TEST_PROBLEMS 100u
#define WH_MAX_TEST_FILES 1000u
#define WH_MAX_TEST_DIR_DEPTH 16u
#define WH_MAX_TEST_DIR_ENTRIES (16u * 1024u)
#define WH_MAX_TEST_POD_BYTES WH_MAX_BODY_BYTES

/* Policy file: nodes after alias expansion, so that a few YAML aliases
 * cannot expand into millions of nodes. */
#define WH_MAX_POLICY_NODES 100000u

/* Kubernetes API: one response (a list page, a namespace) and one watch
 * event line, the page size of lists, the timeout of the GET made on a
 * namespace cache miss, and of the list calls. Fixed. */
#define WH_KUBE_MAX_RESPONSE_BYTES (16u * 1024u * 1024u)
#define WH_KUBE_MAX_EVENT_BYTES (1u * 1024u * 1024u)
#define WH_KUBE_LIST_PAGE 500u
#define WH_KUBE_LOOKUP_TIMEOUT_MS 2000u
/* Namespaces not in the cache: a name is an RFC 1123 label of at most
 * WH_NS_NAME_MAX; an answer (found, or not there) is kept
 * WH_NS_RECENT_TTL_MS in a ring of WH_NS_RECENT_MAX; at most
 * WH_NS_FETCH_INFLIGHT_MAX reads at once and WH_NS_FETCH_PER_SECOND a
 * second (a burst of as many), whatever callers send. */
#define WH_NS_NAME_MAX 63u
#define WH_NS_RECENT_TTL_MS 5000u
#define WH_NS_RECENT_MAX 256u
#define WH_NS_FETCH_INFLIGHT_MAX 4u
#define WH_NS_FETCH_PER_SECOND 10u
#define WH_KUBE_LIST_TIMEOUT_MS 30000u
/* Kubernetes API: the body of one write (kube_request(): a PolicyReport the
 * audit creates or replaces). The API server refuses a request body past
 * 3 MiB and etcd an object past about 1.5 MiB; a report holds at most
 * AUDIT_REPORT_MAX_RESULTS results of well under 1 KiB each. Fixed. */
#define WH_KUBE_MAX_REQUEST_BYTES (3u * 1024u * 1024u)
/* audit --apply: each write, and each page of the reports already there.
 * A page asks for AUDIT_REPORT_LIST_PAGE reports: at the 1.5 MiB etcd lets
 * one object reach, 8 of them stay under WH_KUBE_MAX_RESPONSE_BYTES. */
#define WH_KUBE_WRITE_TIMEOUT_MS 30000u
#define AUDIT_REPORT_LIST_PAGE 8u
/* Namespaces held in one table (ns_table.h: the namespace cache's, audit's):
 * a hundred times the 10,000 Kubernetes is tested with; an entry takes 48
 * bytes and its strings. Past it the table refuses more (-E2BIG). Fixed. */
#define WH_NS_TABLE_MAX (1024u * 1024u)

/* Kubernetes API: how long one watch lasts before it is renewed, and the
 * backoff between failed attempts (doubling, with jitter). Fixed. */
#define WH_KUBE_WATCH_SECONDS 300u
#define WH_KUBE_BACKOFF_MIN_MS 500u
#define WH_KUBE_BACKOFF_MAX_MS 30000u

/* kubeconfigs (kubeconfig.h): files in a KUBECONFIG list (more are an
 * error, not skipped), and the bytes of one file (it may hold certificates
 * and keys as data). Fixed. */
#define WH_KUBECONFIG_MAX_FILES 16u
#define WH_KUBECONFIG_MAX_BYTES (1u * 1024u * 1024u)
/* exec credential plugins (exec_credential.h): the args and env entries of
 * one exec map; what the plugin may print on stdout (an ExecCredential: a
 * token of a few KiB, or a client certificate chain and its key, far less
 * than this; past it the plugin is killed and refused); the head of its
 * stderr kept for the error message (the rest is read and dropped); how long
 * it may run (kubelogin asks Azure CLI or Entra ID over the network, a few
 * seconds) before it is killed. Fixed. */
#define WH_EXEC_MAX_ARGS 64u
#define WH_EXEC_MAX_ENV 64u
#define WH_EXEC_MAX_OUTPUT_BYTES (256u * 1024u)
#define WH_EXEC_MAX_STDERR_BYTES 2048u
#define WH_EXEC_TIMEOUT_MS 60000u

/* audit: findings kept for the output (past this they are only counted, and
 * the summary says how many; a finding takes a few hundred bytes); a pods or
 * namespaces file read from a pipe (a regular file is mapped, not read); a
 * namespaces file; pods per page from the API (kubectl's own chunk size);
 * the fail results of one PolicyReport (etcd keeps objects up to about
 * 1.5 MiB; a result takes well under 1 KiB; the report's annotation says
 * how many were left out); the longest `expected` or `found` text of a
 * finding (longer ones end in "..."). Fixed. */
#define AUDIT_MAX_FINDINGS 50000u
#define AUDIT_STDIN_MAX (1024u * 1024u * 1024u)
#define AUDIT_NAMESPACES_FILE_MAX (256u * 1024u * 1024u)
#define AUDIT_PAGE_SIZE_MAX 5000u
#define AUDIT_REPORT_MAX_RESULTS 500u
#define FINDING_TEXT_MAX (16u * 1024u)

/* audit: one page of a list from the API, in bytes. A page whose answer
 * passes it is asked again, from the same continue token, with half the
 * limit, down to 1; a pod whose answer passes it alone is a `too-large`
 * finding, named from the head of the answer, and the list goes on past it.
 * 16 MiB is over four times the largest pod the API server accepts as JSON
 * (WH_REVIEW_OBJECT_MAX_BYTES), so that only a pod written in protobuf with
 * strings that JSON must escape (\u0001 is six bytes for one) or stored
 * past a raised etcd limit comes near it; memory is about this plus one
 * parsed pod. After a page that fits, the next asks for as many pods as
 * would fill 1/AUDIT_PAGE_FILL_PART of the bound at that page's bytes per
 * pod (never more than --page-size, never fewer than the last page), so
 * that the limit grows back after one large pod and does not swing. Fixed. */
#define AUDIT_PAGE_MAX_BYTES (16u * 1024u * 1024u)
#define AUDIT_PAGE_FILL_PART 2u

/* render admission-policy: the parameter ConfigMap's data (keys and values;
 * the API server refuses a ConfigMap of more than 1 MiB), one CEL expression
 * of the selectors (the API server parses at most 100,000 characters of one;
 * more selectors go into several), and the whole output. Fixed. */
#define RENDER_MAX_PARAMS_BYTES (1024u * 1024u)
#define RENDER_MAX_CEL_CHARS 60000u
#define RENDER_MAX_OUTPUT_BYTES (16u * 1024u * 1024u)

/* A managed identity's resource id (the policy's resourceId), by Azure's own
 * naming rules: a resource group name is 1 to 90 characters, a user-assigned
 * identity's 3 to 128; a federated identity credential's name (what
 * render identities makes from the namespace and the service account) 3 to
 * 120. Fixed: they are Azure's. */
#define WH_AZURE_RESOURCE_GROUP_MAX 90u
#define WH_AZURE_IDENTITY_NAME_MIN 3u
#define WH_AZURE_IDENTITY_NAME_MAX 128u
#define WH_AZURE_FIC_NAME_MIN 3u
#define WH_AZURE_FIC_NAME_MAX 120u

/* Log lines: one line at most WH_LOG_LINE_MAX bytes. Fields are appended
 * whole or not at all within the line less WH_LOG_TAIL_RESERVE, which keeps
 * room for the closing brace and the "truncated" list naming the fields
 * dropped (at most WH_LOG_MAX_TRUNCATED names of WH_LOG_KEY_MAX characters). */
#define WH_LOG_LINE_MAX (64u * 1024u)
#define WH_LOG_TAIL_RESERVE 1024u
#define WH_LOG_MAX_TRUNCATED 8u
#define WH_LOG_KEY_MAX 64u
