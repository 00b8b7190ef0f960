/* Reading a whole small file, bounded. */
#pragma once
#include <stddef.h>

#include "buf.h"

/* Reads `path` into `out` (which bounds the size by its max). 0; -EFBIG when
 * the file is larger than out's max; another negative errno. A message
 * naming the file goes to `err`. */
int fileio_read(const char *path, struct buf *out, char *err, size_t errlen);
