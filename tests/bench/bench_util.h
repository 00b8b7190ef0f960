/* What the floor probe and the microbenchmark share: reading a whole file.
 * Test code: every function is static. */
#pragma once
#include <stdio.h>
#include <stdlib.h>

/* The whole file, NUL-terminated, in a new buffer (free()); its length in
 * *ret_len when not NULL. NULL when it cannot be read. */
static char *bench_read_file(const char *path, size_t *ret_len)
{
        FILE *f = fopen(path, "rb");
        if (!f)
                return NULL;
        char *data = NULL;
        size_t len = 0;
        for (;;) {
                char *grown = realloc(data, len + 65536 + 1);
                if (!grown) {
                        free(data);
                        fclose(f);
                        return NULL;
                }
                data = grown;
                size_t n = fread(data + len, 1, 65536, f);
                len += n;
                if (n < 65536)
                        break;
        }
        fclose(f);
        data[len] = '\0';
        if (ret_len)
                *ret_len = len;
        return data;
}
