/* Unit tests for webhook/io/metrics.c: the Prometheus text format (0.0.4)
 * parsed back line by line, and what known events do to it. The counters
 * are process-wide, so each test compares a scrape after its events with
 * one before. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <errno.h>
#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "metrics.h"
#include "metrics_admission.h"
#include "mutate.h"

#define NS "spark_identity_webhook_"
#define MAX_SAMPLES 256
#define RENDER_MAX (64u * 1024u)

struct sample {
        char series[256];       /* name{labels} as written */
        char name[128];
        double value;
};

struct family {
        char name[128];
        char type[16];
        bool help;
};

struct scrape {
        struct sample s[MAX_SAMPLES];
        size_t n;
        struct family f[64];
        size_t n_families;
        char text[RENDER_MAX];
};

static bool valid_metric_name(const char *s, size_t n)
{
        for (size_t i = 0; i < n; i++) {
                char c = s[i];
                bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' || c == ':' ||
                          (i && c >= '0' && c <= '9');
                if (!ok)
                        return false;
        }
        return n > 0;
}

static struct family *family_of(struct scrape *sc, const char *name)
{
        for (size_t i = 0; i < sc->n_families; i++)
                if (strcmp(sc->f[i].name, name) == 0)
                        return &sc->f[i];
        return NULL;
}

/* Checks the labels of `{...}`: name="value" pairs, comma separated. */
static void check_labels(const char *open, const char *close)
{
        const char *p = open + 1;
        while (p < close) {
                const char *eq = memchr(p, '=', (size_t)(close - p));
                if (!eq || !valid_metric_name(p, (size_t)(eq - p)) || eq[1] != '"')
                        fail_msg("bad label at \"%.*s\"", (int)(close - p), p);
                p = eq + 2;
                while (p < close && *p != '"')
                        p += *p == '\\' ? 2 : 1;
                if (p >= close)
                        fail_msg("unterminated label value");
                p++;
                if (p < close && *p++ != ',')
                        fail_msg("labels not separated by commas");
        }
}

/* Renders and parses: every line is a HELP, a TYPE, or a sample of a family
 * declared above it (a histogram's _bucket, _sum and _count included). */
static void scrape(struct scrape *sc, const struct metrics_state *st)
{
        struct buf out;
        buf_init(&out, RENDER_MAX);
        assert_int_equal(metrics_render(st, &out), 0);
        assert_non_null(out.data);
        assert_true(out.len > 0 && out.data[out.len - 1] == '\n');
        assert_int_equal(strlen(out.data), out.len);
        memcpy(sc->text, out.data, out.len + 1);
        buf_free(&out);
        sc->n = 0;
        sc->n_families = 0;
        memset(sc->f, 0, sizeof sc->f);

        char *save = NULL;
        for (char *line = strtok_r(sc->text, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
                char name[128], rest[16];
                if (strncmp(line, "# HELP ", 7) == 0) {
                        assert_int_equal(sscanf(line + 7, "%127s", name), 1);
                        assert_null(family_of(sc, name));   /* HELP comes first, once */
                        assert_true(sc->n_families < sizeof sc->f / sizeof *sc->f);
                        struct family *f = &sc->f[sc->n_families++];
                        snprintf(f->name, sizeof f->name, "%s", name);
                        f->help = true;
                        assert_true(strlen(line + 7) > strlen(name) + 1);   /* some text */
                        continue;
                }
                if (strncmp(line, "# TYPE ", 7) == 0) {
                        assert_int_equal(sscanf(line + 7, "%127s %15s", name, rest), 2);
                        struct family *f = family_of(sc, name);
                        if (!f)
                                fail_msg("TYPE before HELP for %s", name);
                        assert_string_equal(f->type, "");
                        if (strcmp(rest, "counter") && strcmp(rest, "gauge") && strcmp(rest, "histogram"))
                                fail_msg("type %s", rest);
                        snprintf(f->type, sizeof f->type, "%s", rest);
                        continue;
                }
                if (line[0] == '#')
                        fail_msg("unexpected comment: %s", line);
                char *space = strrchr(line, ' ');
                assert_non_null(space);
                struct sample *s = &sc->s[sc->n];
                assert_true(sc->n < MAX_SAMPLES);
                *space = '\0';
                char *end;
                s->value = strtod(space + 1, &end);
                if (*end || end == space + 1)
                        fail_msg("value \"%s\" of %s", space + 1, line);
                snprintf(s->series, sizeof s->series, "%s", line);
                char *brace = strchr(line, '{');
                size_t nlen = brace ? (size_t)(brace - line) : strlen(line);
                if (!valid_metric_name(line, nlen))
                        fail_msg("metric name in \"%s\"", line);
                if (brace) {
                        char *close = line + strlen(line) - 1;
                        if (*close != '}')
                                fail_msg("labels of \"%s\"", line);
                        check_labels(brace, close);
                }
                snprintf(s->name, sizeof s->name, "%.*s", (int)nlen, line);
                /* The family: the name itself, or a histogram's. */
                struct family *f = family_of(sc, s->name);
                if (!f) {
                        static const char *const suffixes[] = { "_bucket", "_sum", "_count" };
                        for (size_t i = 0; !f && i < 3; i++) {
                                size_t sl = strlen(suffixes[i]);
                                if (nlen > sl && strcmp(s->name + nlen - sl, suffixes[i]) == 0) {
                                        char base[128];
                                        snprintf(base, sizeof base, "%.*s", (int)(nlen - sl), s->name);
                                        f = family_of(sc, base);
                                        if (f && strcmp(f->type, "histogram") != 0)
                                                f = NULL;
                                }
                        }
                }
                if (!f || !f->type[0])
                        fail_msg("sample of undeclared family: %s", s->series);
                if (strcmp(f->type, "counter") == 0 && strcmp(f->name + strlen(f->name) - 6, "_total") != 0)
                        fail_msg("counter %s does not end in _total", f->name);
                sc->n++;
        }
        for (size_t i = 0; i < sc->n; i++)
                for (size_t j = i + 1; j < sc->n; j++)
                        if (strcmp(sc->s[i].series, sc->s[j].series) == 0)
                                fail_msg("series written twice: %s", sc->s[i].series);
}

static const struct sample *find(const struct scrape *sc, const char *series)
{
        for (size_t i = 0; i < sc->n; i++)
                if (strcmp(sc->s[i].series, series) == 0)
                        return &sc->s[i];
        return NULL;
}

static double value(const struct scrape *sc, const char *series)
{
        const struct sample *s = find(sc, series);
        if (!s)
                fail_msg("no series %s", series);
        return s->value;
}

static struct scrape before, after;

static const struct metrics_state empty_state = { .policy_sha256 = "abc123" };

static void test_format_parses_and_declares_every_family(void **state)
{
        scrape(&before, &empty_state);
        struct family *f = family_of(&before, NS "admission_duration_seconds");
        assert_non_null(f);
        assert_string_equal(f->type, "histogram");
        assert_string_equal(family_of(&before, NS "admission_requests_total")->type, "counter");
        assert_string_equal(family_of(&before, NS "bad_requests_total")->type, "counter");
        assert_string_equal(family_of(&before, NS "open_connections")->type, "gauge");
        assert_string_equal(family_of(&before, NS "build_info")->type, "gauge");
        assert_float_equal(value(&before, NS "build_info{version=\"" WH_VERSION "\"}"), 1, 0);
        assert_float_equal(value(&before, NS "policy_info{sha256=\"abc123\"}"), 1, 0);
        /* Every decision and role has its series, at zero or more. */
        for (int d = 0; d < DECISION_MAX; d++)
                for (int r = 0; r < POD_ROLE_MAX; r++) {
                        char series[256];
                        snprintf(series, sizeof series, NS "admission_requests_total{decision=\"%s\",role=\"%s\"}",
                                 mutate_decision_name((enum decision)d),
                                 r ? mutate_role_name((enum pod_role)r) : "none");
                        assert_true(value(&before, series) >= 0);
                }
}

/* The buckets of the latency histogram, in order, with their bounds. */
static size_t buckets(const struct scrape *sc, double *le, double *count, size_t max)
{
        size_t n = 0;
        for (size_t i = 0; i < sc->n; i++) {
                const char *pre = NS "admission_duration_seconds_bucket{le=\"";
                if (strncmp(sc->s[i].series, pre, strlen(pre)) != 0)
                        continue;
                assert_true(n < max);
                const char *b = sc->s[i].series + strlen(pre);
                le[n] = strncmp(b, "+Inf", 4) == 0 ? INFINITY : strtod(b, NULL);
                count[n++] = sc->s[i].value;
        }
        return n;
}

static void test_admission_counts_and_latency_bucket(void **state)
{
        const char *series = NS "admission_requests_total{decision=\"mutated\",role=\"driver\"}";
        const char *other = NS "admission_requests_total{decision=\"denied\",role=\"executor\"}";
        scrape(&before, &empty_state);
        metrics_admission(DECISION_MUTATED, POD_ROLE_DRIVER, 300);   /* 300 µs */
        metrics_admission(DECISION_MUTATED, POD_ROLE_DRIVER, 2000000); /* 2 s: past the last bound */
        scrape(&after, &empty_state);
        assert_float_equal(value(&after, series) - value(&before, series), 2, 0);
        assert_float_equal(value(&after, other) - value(&before, other), 0, 0);

        double le0[32], c0[32], le1[32], c1[32];
        size_t n0 = buckets(&before, le0, c0, 32), n1 = buckets(&after, le1, c1, 32);
        assert_int_equal(n0, n1);
        assert_true(n1 >= 2);
        assert_true(isinf(le1[n1 - 1]));
        for (size_t i = 0; i < n1; i++) {
                if (i)
                        assert_true(le1[i] > le1[i - 1] && c1[i] >= c1[i - 1]);   /* cumulative */
                /* 300 µs lands in every bucket from le >= 0.0003; 2 s only in +Inf. */
                double want = (le1[i] >= 0.0003 ? 1 : 0) + (isinf(le1[i]) ? 1 : 0);
                if (c1[i] - c0[i] != want)
                        fail_msg("bucket le=%g went up by %g, want %g", le1[i], c1[i] - c0[i], want);
        }
        const char *count = NS "admission_duration_seconds_count";
        assert_float_equal(value(&after, count) - value(&before, count), 2, 0);
        assert_float_equal(value(&after, count), c1[n1 - 1], 0);
        const char *sum = NS "admission_duration_seconds_sum";
        assert_float_equal(value(&after, sum) - value(&before, sum), 2.0003, 1e-6);
}

static void test_out_of_range_decision_counts_latency_only(void **state)
{
        scrape(&before, &empty_state);
        metrics_admission(DECISION_MAX, POD_ROLE_DRIVER, 10);
        scrape(&after, &empty_state);
        double total_before = 0, total_after = 0;
        for (size_t i = 0; i < before.n; i++)
                if (strcmp(before.s[i].name, NS "admission_requests_total") == 0)
                        total_before += before.s[i].value;
        for (size_t i = 0; i < after.n; i++)
                if (strcmp(after.s[i].name, NS "admission_requests_total") == 0)
                        total_after += after.s[i].value;
        assert_float_equal(total_after, total_before, 0);
        const char *count = NS "admission_duration_seconds_count";
        assert_float_equal(value(&after, count) - value(&before, count), 1, 0);
}

static void test_bad_requests_by_status(void **state)
{
        scrape(&before, &empty_state);
        metrics_bad_request(413);
        metrics_bad_request(413);
        metrics_bad_request(415);
        metrics_bad_request(418);   /* not one of the named ones */
        scrape(&after, &empty_state);
#define DELTA(s) (value(&after, NS s) - value(&before, NS s))
        assert_float_equal(DELTA("bad_requests_total{code=\"413\"}"), 2, 0);
        assert_float_equal(DELTA("bad_requests_total{code=\"415\"}"), 1, 0);
        assert_float_equal(DELTA("bad_requests_total{code=\"400\"}"), 0, 0);
        assert_float_equal(DELTA("bad_requests_total{code=\"other\"}"), 1, 0);
        assert_null(find(&after, NS "bad_requests_total{code=\"418\"}"));
}

static void test_reloads(void **state)
{
        scrape(&before, &empty_state);
        metrics_policy_reload(true);
        metrics_policy_reload(false);
        metrics_policy_reload(false);
        metrics_certificate_reload(true);
        scrape(&after, &empty_state);
        assert_float_equal(DELTA("policy_reloads_total{result=\"ok\"}"), 1, 0);
        assert_float_equal(DELTA("policy_reloads_total{result=\"failed\"}"), 2, 0);
        assert_float_equal(DELTA("certificate_reloads_total{result=\"ok\"}"), 1, 0);
        assert_float_equal(DELTA("certificate_reloads_total{result=\"failed\"}"), 0, 0);
#undef DELTA
}

static void test_state_values(void **state)
{
        struct metrics_state st = {
                .policy_sha256 = NULL,
                .cert_not_after = 1767225600,
                .open_connections = 7,
                .closed_header_timeout = 1,
                .closed_body_timeout = 2,
                .closed_idle_timeout = 3,
                .closed_evicted = 4,
                .connections_refused = 5,
                .request_memory_bytes = 4096,
                .request_memory_limit_bytes = 64u << 20,
                .request_memory_refused = 9,
                .policy_reload_failing = true,
                .policy_loaded_at = 1767225000,
        };
        scrape(&after, &st);
        assert_string_equal(family_of(&after, NS "policy_reload_failing")->type, "gauge");
        assert_float_equal(value(&after, NS "policy_reload_failing"), 1, 0);
        assert_string_equal(family_of(&after, NS "policy_last_reload_success_timestamp_seconds")->type, "gauge");
        assert_float_equal(value(&after, NS "policy_last_reload_success_timestamp_seconds"), 1767225000, 0);
        assert_float_equal(value(&after, NS "policy_info{sha256=\"\"}"), 1, 0);
        assert_float_equal(value(&after, NS "certificate_expiry_timestamp_seconds"), 1767225600, 0);
        assert_float_equal(value(&after, NS "open_connections"), 7, 0);
        assert_float_equal(value(&after, NS "connections_closed_total{reason=\"header-timeout\"}"), 1, 0);
        assert_float_equal(value(&after, NS "connections_closed_total{reason=\"body-timeout\"}"), 2, 0);
        assert_float_equal(value(&after, NS "connections_closed_total{reason=\"idle-timeout\"}"), 3, 0);
        assert_float_equal(value(&after, NS "connections_closed_total{reason=\"evicted\"}"), 4, 0);
        assert_float_equal(value(&after, NS "connections_refused_total"), 5, 0);
        assert_float_equal(value(&after, NS "request_memory_bytes"), 4096, 0);
        assert_float_equal(value(&after, NS "request_memory_limit_bytes"), (double)(64u << 20), 0);
        assert_float_equal(value(&after, NS "request_memory_refused_total"), 9, 0);
        /* Namespaces not watched: their families are left out. */
        assert_null(family_of(&after, NS "namespace_cache_size"));
        assert_null(family_of(&after, NS "namespace_reads_total"));

        st.namespaces_watched = true;
        st.namespaces = 120;
        st.watch_restarts = 3;
        st.namespace_reads = 11;
        st.namespace_reads_refused = 2;
        scrape(&after, &st);
        assert_string_equal(family_of(&after, NS "namespace_cache_size")->type, "gauge");
        assert_float_equal(value(&after, NS "namespace_cache_size"), 120, 0);
        assert_float_equal(value(&after, NS "namespace_watch_restarts_total"), 3, 0);
        assert_float_equal(value(&after, NS "namespace_reads_total{result=\"made\"}"), 11, 0);
        assert_float_equal(value(&after, NS "namespace_reads_total{result=\"refused\"}"), 2, 0);
}

/* A buffer too small for the scrape: an error, never a cut text passed off as whole. */
static void test_render_bounded(void **state)
{
        struct buf out;
        buf_init(&out, 512);
        int r = metrics_render(&empty_state, &out);
        assert_true(r == -ENOBUFS || r == -ENOMEM);
        buf_free(&out);
}

int main(void)
{
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_format_parses_and_declares_every_family),
                cmocka_unit_test(test_admission_counts_and_latency_bucket),
                cmocka_unit_test(test_out_of_range_decision_counts_latency_only),
                cmocka_unit_test(test_bad_requests_by_status),
                cmocka_unit_test(test_reloads),
                cmocka_unit_test(test_state_values),
                cmocka_unit_test(test_render_bounded),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
