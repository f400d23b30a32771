/* cmd_keygen.c - `ams keygen --id NAME --keys DIR [--force]`: a client's pre-shared key;
 * `ams keygen --tls-cert DIR [--name HOST]`: a self-signed TLS certificate and key. */
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include "ams/netkey.h"
#include "ams/tls.h"
#include "cli/cli_common.h"
#include "cli/commands.h"

static const char *const HELP =
    "usage: ams keygen --id NAME --keys DIR [--force]\n"
    "       ams keygen --tls-cert DIR [--name HOST] [--force]\n"
    "  Writes 32 random bytes (OpenSSL RAND_bytes) to DIR/NAME.key, mode 0600, atomically.\n"
    "  Give the same file to the server (its --keys DIR) and to the edge (--key FILE).\n"
    "  NAME: 1..64 of A-Z a-z 0-9 _ . - ; DIR is created (mode 0700) if missing.\n"
    "  --force replaces an existing key (the old one stops working).\n"
    "  --tls-cert DIR  instead (or as well): a self-signed TLS certificate DIR/cert.pem and its\n"
    "                EC P-256 private key DIR/key.pem (mode 0600), valid 10 years, for the\n"
    "                names localhost, 127.0.0.1, ::1 and HOST (--name: the server's host name or\n"
    "                IP address as the edges dial it). Server: --tls-cert DIR/cert.pem\n"
    "                --tls-key DIR/key.pem; edges: --tls-ca DIR/cert.pem (copy only cert.pem).\n";

int ams_cmd_keygen(int argc, char **argv) {
    const char *cmd = "keygen", *id = NULL, *dir = NULL, *tls_dir = NULL, *name = NULL;
    int force = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            fputs(HELP, stdout);
            return CLI_OK;
        }
        if (!strcmp(a, "--force")) {
            force = 1;
            continue;
        }
        if (i + 1 >= argc) return cli_usage_error(cmd, "unknown or incomplete option '%s'", a);
        const char *v = argv[++i];
        if (!strcmp(a, "--id")) id = v;
        else if (!strcmp(a, "--keys")) dir = v;
        else if (!strcmp(a, "--tls-cert")) tls_dir = v;
        else if (!strcmp(a, "--name")) name = v;
        else if (!strcmp(a, "--threads")) continue; /* accepted everywhere; nothing to thread */
        else return cli_usage_error(cmd, "unknown option '%s'", a);
    }
    if ((!id || !dir) && !tls_dir)
        return cli_usage_error(cmd, "--id and --keys are required (or --tls-cert DIR)");
    if (!id != !dir) return cli_usage_error(cmd, "--id and --keys go together");
    if (name && !tls_dir) return cli_usage_error(cmd, "--name goes with --tls-cert");
    if (id && !ams_proto_id_valid(id))
        return cli_usage_error(cmd, "bad --id '%s' (1..%d of A-Z a-z 0-9 _ . -, not starting "
                                    "with '.')", id, AMS_PROTO_ID_MAX);
    ams_err err = {0};
    if (tls_dir) {
        mkdir(tls_dir, 0700); /* exists already: fine; other failures surface below */
        if (ams_tls_cert_generate(tls_dir, name, force, &err) != AMS_OK)
            return cli_fail(cmd, &err,
                            err.code == AMS_E_IO && !force ? "pass --force to replace them" : NULL);
        printf("%s/cert.pem\n%s/key.pem\n", tls_dir, tls_dir);
    }
    if (!id) return CLI_OK;
    mkdir(dir, 0700); /* exists already: fine; other failures surface below */
    if (ams_netkey_generate(dir, id, force, &err) != AMS_OK)
        return cli_fail(cmd, &err, force ? NULL : "pass --force to replace an existing key");
    printf("%s/%s.key\n", dir, id);
    return CLI_OK;
}
