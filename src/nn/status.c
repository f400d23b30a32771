/* status.c - status names and the per-call error message. */
#include "ams/status.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

const char *ams_status_str(ams_status s) {
    switch (s) {
    case AMS_OK: return "AMS_OK";
    case AMS_E_INVAL: return "AMS_E_INVAL";
    case AMS_E_NOMEM: return "AMS_E_NOMEM";
    case AMS_E_IO: return "AMS_E_IO";
    case AMS_E_FORMAT: return "AMS_E_FORMAT";
    case AMS_E_SHAPE: return "AMS_E_SHAPE";
    case AMS_E_DTYPE: return "AMS_E_DTYPE";
    case AMS_E_NOTFOUND: return "AMS_E_NOTFOUND";
    case AMS_E_UNSUPPORTED: return "AMS_E_UNSUPPORTED";
    case AMS_E_RANGE: return "AMS_E_RANGE";
    case AMS_E_INTERNAL: return "AMS_E_INTERNAL";
    }
    return "AMS_E_UNKNOWN";
}

ams_status ams_err_set(ams_err *err, ams_status code, const char *fmt, ...) {
    if (err) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(err->msg, sizeof err->msg, fmt, ap);
        va_end(ap);
        err->code = code;
    }
    return code;
}

void ams_err_prefix(ams_err *err, const char *fmt, ...) {
    if (!err) return;
    char prefix[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(prefix, sizeof prefix, fmt, ap);
    va_end(ap);
    char old[sizeof err->msg];
    memcpy(old, err->msg, sizeof old);
    size_t plen = strlen(prefix);
    if (plen + 2 >= sizeof err->msg) plen = sizeof err->msg - 3;
    memcpy(err->msg, prefix, plen);
    memcpy(err->msg + plen, ": ", 2);
    size_t rest = sizeof err->msg - plen - 3;
    size_t olen = strnlen(old, rest);
    memcpy(err->msg + plen + 2, old, olen);
    err->msg[plen + 2 + olen] = 0;
}

void ams_assert_fail(const char *file, int line, const char *expr) {
    fprintf(stderr, "%s:%d: AMS_ASSERT(%s) failed\n", file, line, expr);
    abort();
}
