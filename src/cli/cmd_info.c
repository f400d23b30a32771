/* cmd_info.c - `ams info`: list the tensors of a .safetensors file (name, stored dtype,
 * shape) and the totals. */
#include <stdio.h>
#include <string.h>

#include "ams/safetensors.h"
#include "cli/cli_common.h"
#include "cli/commands.h"

static const char *const HELP =
    "usage: ams info W.safetensors\n"
    "  Prints one line per tensor, in file order: name<TAB>dtype<TAB>[shape]\n"
    "  (dtype as stored: F32, F16, BF16, U8, I32; bytes of a name outside printable\n"
    "  text are shown as \\xNN), then\n"
    "  total: T tensors, P parameters, B bytes   (P: elements, B: data bytes in the file)\n";

/* A tensor name on one line, whatever bytes it holds. */
static void put_name(const char *s) {
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        if (*p < 0x20 || *p == 0x7f || *p == '\\') printf("\\x%02x", *p);
        else putchar(*p);
    }
}

int ams_cmd_info(int argc, char **argv) {
    const char *cmd = "info", *path = NULL;
    for (int i = 1; i < argc; i++) {
        long threads;
        if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
            fputs(HELP, stdout);
            return CLI_OK;
        } else if (!strcmp(argv[i], "--threads")) { /* accepted by every subcommand */
            if (i + 1 >= argc || !cli_int(argv[++i], 1, 1024, &threads))
                return cli_usage_error(cmd, "--threads needs a number from 1 to 1024");
        } else if (argv[i][0] == '-' && argv[i][1]) {
            return cli_usage_error(cmd, "unknown option '%s'", argv[i]);
        } else if (path) {
            return cli_usage_error(cmd, "one file at a time ('%s' and '%s')", path, argv[i]);
        } else {
            path = argv[i];
        }
    }
    if (!path) return cli_usage_error(cmd, "no file given");

    ams_err err = {0};
    ams_safetensors *st = NULL;
    if (ams_safetensors_read(path, &st, &err) != AMS_OK) return cli_fail(cmd, &err, NULL);
    unsigned long long elements = 0, bytes = 0;
    int n = ams_safetensors_count(st);
    for (int i = 0; i < n; i++) {
        const char *name;
        const ams_tensor *t = ams_safetensors_get(st, i, &name);
        char s[AMS_MAX_DIMS * 24 + 4];
        put_name(name);
        printf("\t%s\t%s\n", ams_safetensors_dtype(st, i),
               ams_shape_str(s, sizeof s, t->ndim, t->shape));
        elements += (unsigned long long)ams_tensor_numel(t);
        bytes += ams_safetensors_nbytes(st, i);
    }
    printf("total: %d tensors, %llu parameters, %llu bytes\n", n, elements, bytes);
    ams_safetensors_free(st);
    return CLI_OK;
}
