/* Microbenchmark of parse + decide + respond alone (issue 6, "Benchmark"):
 * admission_handle() on one review, N times, bracketed by arena_begin() and
 * arena_end() and with arena_install() once, as cmd_serve.c's admit() does
 * (without the decision log line and the metrics, which are the server's).
 *
 * Usage: micro [--floor] POLICY REVIEW [N]
 * Prints one line: the review, its size, the status, µs per op (wall and CPU).
 * --floor measures instead what the floor probe (floor.c) does per request:
 * cJSON parse with plain malloc, apiVersion and uid, a short answer.
 * Under `valgrind --tool=callgrind --collect-atstart=no
 * --toggle-collect=bench_loop` only the N admissions are counted, so the
 * instructions per admission are callgrind's total divided by N. */
#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cjson/cJSON.h>

#include "admission.h"
#include "arena.h"
#include "buf.h"
#include "policy.h"
#include "webhook_limits.h"

#include "bench_util.h"

#define POLICY_ERRORS_MAX (64u * 1024u)

static double seconds(clockid_t clock)
{
        struct timespec ts;
        clock_gettime(clock, &ts);
        return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

/* One admission as the server makes it; returns its HTTP status and the
 * size of the answer. */
static int admit_once(const struct policy *p, const char *body, size_t len, size_t *ret_answer)
{
        struct admission a;
        arena_begin();
        admission_init(&a, WH_MAX_RESPONSE_BYTES);
        admission_handle(p, NULL, body, len, &a);
        int status = a.status;
        *ret_answer = a.body.len;
        admission_free_arena(&a);
        arena_end();
        return status;
}

/* What floor.c does with a body. */
static int floor_once(const char *body, size_t len, size_t *ret_answer)
{
        cJSON *root = cJSON_ParseWithLength(body, len);
        const cJSON *av = cJSON_GetObjectItemCaseSensitive(root, "apiVersion");
        const cJSON *req = cJSON_GetObjectItemCaseSensitive(root, "request");
        const cJSON *uid = cJSON_GetObjectItemCaseSensitive(req, "uid");
        int status = 400;
        if (cJSON_IsString(av) && cJSON_IsString(uid)) {
                struct buf out;
                buf_init(&out, WH_MAX_RESPONSE_BYTES);
                buf_puts(&out, "{\"apiVersion\":");
                buf_put_json_str(&out, av->valuestring);
                buf_puts(&out, ",\"kind\":\"AdmissionReview\",\"response\":{\"uid\":");
                buf_put_json_str(&out, uid->valuestring);
                buf_puts(&out, ",\"allowed\":true}}\n");
                *ret_answer = out.len;
                buf_free(&out);
                status = 200;
        }
        cJSON_Delete(root);
        return status;
}

static bool floor_mode;

/* Kept out of line: callgrind counts exactly this (--toggle-collect). */
__attribute__((noinline)) int bench_loop(const struct policy *p, const char *body, size_t len, long n);
__attribute__((noinline)) int bench_loop(const struct policy *p, const char *body, size_t len, long n)
{
        int bad = 0;
        size_t answer;
        for (long i = 0; i < n; i++)
                bad += (floor_mode ? floor_once(body, len, &answer) : admit_once(p, body, len, &answer)) != 200;
        return bad;
}

int main(int argc, char **argv)
{
        if (argc > 1 && strcmp(argv[1], "--floor") == 0) {
                floor_mode = true;
                argv++;
                argc--;
        }
        if (argc < 3 || argc > 4) {
                fprintf(stderr, "usage: micro [--floor] POLICY REVIEW [N]\n");
                return 2;
        }
        long n = argc == 4 ? strtol(argv[3], NULL, 10) : 20000;
        if (n <= 0)
                n = 1;
        size_t policy_len, body_len;
        char *policy_text = bench_read_file(argv[1], &policy_len);
        char *body = bench_read_file(argv[2], &body_len);
        if (!policy_text || !body) {
                fprintf(stderr, "micro: cannot read %s or %s: %s\n", argv[1], argv[2], strerror(errno));
                return 2;
        }
        struct buf errors;
        struct policy *p = NULL;
        buf_init(&errors, POLICY_ERRORS_MAX);
        if (policy_load(policy_text, policy_len, &p, &errors) < 0) {
                fprintf(stderr, "micro: %s: %s", argv[1], errors.data ? errors.data : "not valid\n");
                return 2;
        }
        if (!floor_mode)
                arena_install();   /* the floor's cJSON uses malloc */

        /* One warm-up admission: the thread's first arena chunk, and a check
         * that the review is answered. */
        size_t answer;
        int status = floor_mode ? floor_once(body, body_len, &answer) : admit_once(p, body, body_len, &answer);
        if (status != 200) {
                fprintf(stderr, "micro: %s was answered %d, not 200\n", argv[2], status);
                return 1;
        }

        double w0 = seconds(CLOCK_MONOTONIC), c0 = seconds(CLOCK_PROCESS_CPUTIME_ID);
        int bad = bench_loop(p, body, body_len, n);
        double w1 = seconds(CLOCK_MONOTONIC), c1 = seconds(CLOCK_PROCESS_CPUTIME_ID);

        const char *name = strrchr(argv[2], '/');
        printf("review=%s bytes=%zu answer_bytes=%zu n=%ld failed=%d us_per_op=%.2f cpu_us_per_op=%.2f\n",
               name ? name + 1 : argv[2], body_len, answer, n, bad, (w1 - w0) * 1e6 / (double)n,
               (c1 - c0) * 1e6 / (double)n);
        policy_free(p);
        buf_free(&errors);
        free(policy_text);
        free(body);
        return bad ? 1 : 0;
}
