/* Reading tests/fixtures from the unit tests: a whole file, the pod of an
 * AdmissionReview fixture, and a policy the test knows to be valid. Include
 * after cmocka.h and cJSON.h; FIXTURES is the directory (meson passes it).
 * The caller frees what it gets. */
#pragma once
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "policy.h"

/* Loads a policy from text; a problem fails the test. */
static inline struct policy *load_policy(const char *text)
{
        struct buf errors;
        struct policy *p = NULL;
        buf_init(&errors, 1 << 16);
        if (policy_load(text, strlen(text), &p, &errors) < 0)
                fail_msg("policy: %s", errors.data);
        buf_free(&errors);
        return p;
}

static inline char *fixture_text(const char *name)
{
        char path[512];
        snprintf(path, sizeof path, "%s/%s", FIXTURES, name);
        FILE *fp = fopen(path, "rb");
        if (!fp)
                fail_msg("cannot open fixture %s", path);
        size_t cap = 1 << 20, n;
        char *text = malloc(cap);
        assert_non_null(text);
        n = fread(text, 1, cap - 1, fp);
        fclose(fp);
        text[n] = '\0';
        return text;
}

/* request.object of an AdmissionReview fixture. */
static inline cJSON *fixture_pod(const char *name)
{
        char *text = fixture_text(name);
        cJSON *review = cJSON_Parse(text);
        free(text);
        assert_non_null(review);
        cJSON *obj = cJSON_DetachItemFromObject(cJSON_GetObjectItem(review, "request"), "object");
        cJSON_Delete(review);
        assert_non_null(obj);
        return obj;
}

/* A policy file of tests/fixtures, loaded. */
static inline struct policy *fixture_policy(const char *name)
{
        char *text = fixture_text(name);
        struct policy *p = load_policy(text);
        free(text);
        return p;
}
