/* Loading a policy from a file: the bounded read, the SHA-256 of the bytes
 * read (GnuTLS), then policy_load_sha256(), with every problem line prefixed
 * by the file name, as compilers do. */
#pragma once
#include "buf.h"
#include "policy.h"

/* 0 and *ret_policy. -EINVAL when the file was read and is not a valid
 * policy: one or more lines in `errors` shaped "PATH:LINE:COL: where:
 * message\n". Another negative errno when it could not be read (missing,
 * unreadable, larger than WH_MAX_POLICY_BYTES; -ENOMEM): one line naming
 * the file in `errors`. */
int policy_file_load(const char *path, struct policy **ret_policy, struct buf *errors);

/* The same for the policy on stdin (read to its end), whose lines are named
 * POLICY_FILE_STDIN_NAME in place of a path. */
#define POLICY_FILE_STDIN_NAME "<stdin>"
int policy_file_load_stdin(struct policy **ret_policy, struct buf *errors);
