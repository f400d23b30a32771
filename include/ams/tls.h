/* tls.h - optional TLS 1.3 (OpenSSL libssl) under AMSP: the server's certificate and key, the
 * edge's trusted CA, and a self-signed certificate for users without other tools. TLS adds
 * encryption and server authentication; the AMSP frames inside it are unchanged (the per-client
 * HMAC keys still authenticate the clients). Without TLS nothing here is used.
 *
 *     ams_tls_cert_generate("tls", "myhost", 0, &err);       // tls/cert.pem, tls/key.pem (0600)
 *     ams_tls *srv = ams_tls_server_new("tls/cert.pem", "tls/key.pem", &err);
 *     ams_tls *cli = ams_tls_client_new("tls/cert.pem", NULL, &err);  // name: from the host
 *     ams_client_open_tls(&c, "127.0.0.1:7070", cli, &hello, psk, 5000, &w, &err);  // client.h
 *     ams_tls_free(cli); ams_tls_free(srv);
 * A server context goes in ams_server_config.tls_cert/tls_key (the server makes its own); an
 * edge's in ams_edge_config.tls_ca/tls_name.
 *
 * Thread rules: a context is read-only once made and may be shared by threads (each
 * connection has its own TLS state); free it after every connection that uses it is closed.
 */
#ifndef AMS_TLS_H
#define AMS_TLS_H

#include "ams/status.h"

typedef struct ams_tls ams_tls;

/* A server context: TLS 1.3 only, the PEM certificate (chain) and PEM private key, which must
 * match. @return NULL on error (err: which file and OpenSSL's reason). Free with ams_tls_free. */
ams_tls *ams_tls_server_new(const char *cert_file, const char *key_file, ams_err *err);

/* A client context: TLS 1.3 only; the server's certificate must chain to a certificate in the
 * PEM file ca_file (a CA, or the server's self-signed certificate) and match `name` (a DNS name,
 * or an IPv4/IPv6 address checked against the certificate's IP entries); name NULL: the HOST
 * of the address each connection dials. @return NULL on error. Free with ams_tls_free. */
ams_tls *ams_tls_client_new(const char *ca_file, const char *name, ams_err *err);

/* NULL is a no-op. */
void ams_tls_free(ams_tls *t);

/* Writes a self-signed certificate for TLS: dir/cert.pem (mode 0644) and its EC P-256 private
 * key dir/key.pem (mode 0600), valid for ten years, subject CN = name, subjectAltName
 * DNS:localhost, IP:127.0.0.1, IP:::1 and `name` (DNS or IP as it parses; NULL: none extra).
 * The certificate is its own CA: give cert.pem to the server (--tls-cert) and to the edges
 * (--tls-ca). dir must exist. Refuses to replace existing files unless force.
 * @return AMS_OK; AMS_E_INVAL (bad name); AMS_E_IO (files exist, file system);
 * AMS_E_INTERNAL (libcrypto). */
ams_status ams_tls_cert_generate(const char *dir, const char *name, int force, ams_err *err);

#endif
