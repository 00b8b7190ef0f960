/* An immutable object behind an atomic pointer. Readers take it without a
 * lock and without waiting; one writer at a time swaps in a new object and
 * frees the old one once no reader can still hold it (two grace periods over
 * a pair of reader counters).
 *
 *   unsigned tok;
 *   const struct policy *p = snapshot_acquire(s, &tok);
 *   ... use p, never past the release ...
 *   snapshot_release(s, tok);
 *
 * Ownership: the snapshot owns the current object and frees it with the
 * function given to snapshot_new(). */
#pragma once

struct snapshot;

/* A snapshot holding `initial` (may be NULL). NULL when out of memory; then
 * `initial` still belongs to the caller. */
struct snapshot *snapshot_new(void *initial, void (*free_fn)(void *));

/* The current object, or NULL. Must be paired with snapshot_release(). */
void *snapshot_acquire(struct snapshot *s, unsigned *ret_token);
void snapshot_release(struct snapshot *s, unsigned token);

/* Makes `next` current (the snapshot takes it), waits until no reader holds
 * the previous object, and frees it. Writers are serialized; never call it
 * while holding an acquired object. */
void snapshot_swap(struct snapshot *s, void *next);

/* Frees the snapshot and the current object. No reader may be active. */
void snapshot_free(struct snapshot *s);
