/* tls_cert.c - a self-signed TLS certificate and its EC P-256 key (tls.h), made with
 * libcrypto's X509 calls, so that a user needs no other tool to turn TLS on. */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <openssl/bio.h>
#include <openssl/bn.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "ams/tls.h"

#define VALID_DAYS 3650

static int name_ok(const char *s) {
    size_t n = strlen(s);
    if (n == 0 || n > 253) return 0;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '.' || c == '-' || c == ':'))
            return 0;
    }
    return 1;
}

static int is_ip(const char *s) {
    unsigned char a[16];
    return inet_pton(AF_INET, s, a) == 1 || inet_pton(AF_INET6, s, a) == 1;
}

static int add_ext(X509 *x, int nid, const char *value) {
    X509V3_CTX v;
    X509V3_set_ctx_nodb(&v);
    X509V3_set_ctx(&v, x, x, NULL, NULL, 0);
    X509_EXTENSION *e = X509V3_EXT_conf_nid(NULL, &v, nid, value);
    int ok = e && X509_add_ext(x, e, -1) == 1;
    X509_EXTENSION_free(e);
    return ok;
}

/* The certificate and key as PEM in two memory BIOs. */
static int make(const char *name, BIO *cert_pem, BIO *key_pem) {
    EVP_PKEY *k = EVP_EC_gen("P-256");
    X509 *x = X509_new();
    BIGNUM *serial = BN_new();
    int ok = k && x && serial;
    /* a random positive 127-bit serial */
    ok = ok && BN_rand(serial, 127, BN_RAND_TOP_ANY, BN_RAND_BOTTOM_ANY) == 1 &&
         BN_to_ASN1_INTEGER(serial, X509_get_serialNumber(x)) != NULL;
    ok = ok && X509_set_version(x, 2) == 1 &&
         X509_gmtime_adj(X509_getm_notBefore(x), -3600) != NULL &&
         X509_gmtime_adj(X509_getm_notAfter(x), (long)VALID_DAYS * 86400) != NULL &&
         X509_set_pubkey(x, k) == 1;
    const char *cn = name ? name : "localhost";
    X509_NAME *subj = ok ? X509_get_subject_name(x) : NULL;
    ok = ok && subj &&
         X509_NAME_add_entry_by_txt(subj, "O", MBSTRING_ASC, (const unsigned char *)"ams", -1,
                                    -1, 0) == 1 &&
         X509_NAME_add_entry_by_txt(subj, "CN", MBSTRING_ASC, (const unsigned char *)cn, -1, -1,
                                    0) == 1 &&
         X509_set_issuer_name(x, subj) == 1;
    char san[600];
    snprintf(san, sizeof san, "DNS:localhost,IP:127.0.0.1,IP:::1%s%s%s",
             name ? "," : "", name ? (is_ip(name) ? "IP:" : "DNS:") : "", name ? name : "");
    ok = ok && add_ext(x, NID_basic_constraints, "critical,CA:TRUE") &&
         add_ext(x, NID_key_usage, "critical,digitalSignature,keyCertSign") &&
         add_ext(x, NID_ext_key_usage, "serverAuth") &&
         add_ext(x, NID_subject_key_identifier, "hash") &&
         add_ext(x, NID_subject_alt_name, san) && X509_sign(x, k, EVP_sha256()) > 0;
    ok = ok && PEM_write_bio_X509(cert_pem, x) == 1 &&
         PEM_write_bio_PrivateKey(key_pem, k, NULL, NULL, 0, NULL, NULL) == 1;
    BN_free(serial);
    X509_free(x);
    EVP_PKEY_free(k);
    return ok;
}

/* Writes the bytes of b to a fresh temporary file tmp (mode), fsynced. */
static ams_status write_tmp(const char *tmp, BIO *b, mode_t mode, ams_err *err) {
    char *p = NULL;
    long n = BIO_get_mem_data(b, &p);
    int fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, mode);
    AMS_FAIL_IF(fd < 0, err, AMS_E_IO, "%s: %s", tmp, strerror(errno));
    int ok = fchmod(fd, mode) == 0;
    for (long off = 0; ok && off < n;) {
        ssize_t w = write(fd, p + off, (size_t)(n - off));
        if (w < 0 && errno == EINTR) continue;
        if (w <= 0) ok = 0;
        else off += w;
    }
    ok = ok && fsync(fd) == 0;
    int e = errno;
    if (close(fd) != 0 && ok) ok = 0, e = errno;
    if (!ok) {
        unlink(tmp);
        AMS_FAIL(err, AMS_E_IO, "%s: %s", tmp, strerror(e));
    }
    return AMS_OK;
}

/* tmp -> path: link (never replaces) or rename (force); tmp is gone afterwards. */
static ams_status place(const char *tmp, const char *path, int force, ams_err *err) {
    int r = force ? rename(tmp, path) : link(tmp, path);
    int e = errno;
    if (!force || r != 0) unlink(tmp);
    if (r != 0 && e == EEXIST)
        AMS_FAIL(err, AMS_E_IO, "%s exists (use --force to replace it)", path);
    AMS_FAIL_IF(r != 0, err, AMS_E_IO, "%s: %s", path, strerror(e));
    return AMS_OK;
}

ams_status ams_tls_cert_generate(const char *dir, const char *name, int force, ams_err *err) {
    AMS_FAIL_IF(name && !name_ok(name), err, AMS_E_INVAL,
                "bad certificate name '%s' (a host name or an IP address)", name);
    char cert[4096], key[4096], ctmp[4200], ktmp[4200];
    AMS_FAIL_IF(snprintf(cert, sizeof cert, "%s/cert.pem", dir) >= (int)sizeof cert ||
                    snprintf(key, sizeof key, "%s/key.pem", dir) >= (int)sizeof key,
                err, AMS_E_INVAL, "certificate path too long");
    snprintf(ctmp, sizeof ctmp, "%s/.cert.pem.%ld.tmp", dir, (long)getpid());
    snprintf(ktmp, sizeof ktmp, "%s/.key.pem.%ld.tmp", dir, (long)getpid());
    struct stat st;
    if (!force && (stat(cert, &st) == 0 || stat(key, &st) == 0))
        AMS_FAIL(err, AMS_E_IO, "%s exists (use --force to replace it)",
                 stat(cert, &st) == 0 ? cert : key);
    BIO *cb = BIO_new(BIO_s_mem()), *kb = BIO_new(BIO_s_secmem()); /* kb: wiped when freed */
    ams_status s = AMS_OK;
    ERR_clear_error();
    if (!cb || !kb || !make(name, cb, kb)) {
        unsigned long e = ERR_get_error();
        char why[256] = "out of memory";
        if (e) ERR_error_string_n(e, why, sizeof why);
        ERR_clear_error();
        s = ams_err_set(err, AMS_E_INTERNAL, "cannot make the certificate: %s", why);
    }
    if (s == AMS_OK) s = write_tmp(ktmp, kb, 0600, err);
    if (s == AMS_OK && (s = write_tmp(ctmp, cb, 0644, err)) != AMS_OK) unlink(ktmp);
    if (s == AMS_OK && (s = place(ktmp, key, force, err)) != AMS_OK) unlink(ctmp);
    if (s == AMS_OK && (s = place(ctmp, cert, force, err)) != AMS_OK && !force) unlink(key);
    BIO_free(cb);
    BIO_free(kb);
    if (s == AMS_OK) {
        int dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (dfd >= 0) fsync(dfd), close(dfd);
    }
    return s;
}
