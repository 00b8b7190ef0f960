/* Reading a Kubernetes List (`kubectl get pods -A -o json`, or one page of
 * an API list) one item at a time: the items are parsed and handed over one
 * by one, so that a large list never becomes one cJSON tree.
 *
 * Pure: no I/O, no globals (cJSON's error pointer is not used). */
#pragma once
#include <stdbool.h>
#include <stddef.h>

#include <cjson/cJSON.h>

/* The longest metadata.continue token kept. The API server's are a few
 * hundred bytes. */
#define JSONLIST_CONTINUE_MAX 4096u

/* What the scan saw besides the items. */
struct jsonlist_info {
        bool has_items;                         /* the document has a top-level "items" array */
        size_t n_items;
        char kind[64];                          /* top-level "kind", or "" */
        char continue_[JSONLIST_CONTINUE_MAX];  /* metadata.continue, or "" */
};

/* Calls on_item() for each element of the top-level "items" array of the
 * JSON object in text[0..len), in order; the item is only borrowed for the
 * call. A document without "items" (a single object) gives no call and
 * has_items false. Returns 0 and fills *ret_info; -EINVAL with a message naming
 * the byte offset in `err` when the text is not a JSON object (or an item
 * is not valid JSON); -E2BIG when the continue token is too long; or the
 * first non-zero value on_item() returned. */
int jsonlist_scan(const char *text, size_t len, int (*on_item)(void *ctx, const cJSON *item), void *ctx,
                  struct jsonlist_info *ret_info, char *err, size_t errlen);

/* What the first `len` bytes of a list say when the answer was cut there
 * (it passed the reader's bound). The API server writes kind, apiVersion
 * and metadata before items, and an item's metadata before its spec, with
 * name, namespace and uid first. */
struct jsonlist_head {
        bool has_metadata;                      /* the list's metadata came whole: continue_ is known */
        char kind[64];                          /* top-level "kind", or "" */
        char continue_[JSONLIST_CONTINUE_MAX];  /* metadata.continue, or "" (the last page) */
        size_t n_items;                         /* items that came whole before the cut */
};

/* Reads the head of a list cut short: *ret_head, and in *ret_cut_metadata (the
 * caller deletes it) the metadata of the item the cut fell in, with the
 * fields that came whole before it; NULL when the cut is not inside an
 * item's metadata or after it. 0; -EINVAL when the text does not start a
 * JSON object; -E2BIG when the continue token is too long. Out of memory,
 * the metadata may come shorter or NULL. */
int jsonlist_scan_head(const char *text, size_t len, struct jsonlist_head *ret_head, cJSON **ret_cut_metadata);
