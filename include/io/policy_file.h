/* Loading a policy from a file: the bounded read, the SHA-256 of the bytes
 * read (GnuTLS), then policy_load_sha256(), with every problem line prefixed
 * by the file name, as compilers do. */
#pragma once
#include "buf.h"
#include "policy.h"

/* 0 and *ret_policy; or a negative errno and one or more lines in `errors`
 * shaped "PATH:LINE:COL: where: message\n". */
int policy_file_load(const char *path, struct policy **ret_policy, struct buf *errors);
