/* status.h - error codes and the error context every library call reports into.
 *
 * Library functions return ams_status (0 = OK, negative = error). When a caller
 * passes an ams_err, the failing function writes one human line into it that
 * names the file / tensor / op and the problem. The library never prints or exits.
 *
 *     ams_err err = {0};
 *     if (ams_npy_read("x.npy", &t, &err) != AMS_OK)
 *         fprintf(stderr, "error: %s\n", err.msg);
 */
#ifndef AMS_STATUS_H
#define AMS_STATUS_H

#include <stddef.h>
#include <stdint.h>

/* Append-only; values are part of the CLI's exit codes (exit = -status). */
typedef enum {
    AMS_OK = 0,
    AMS_E_INVAL = -1,       /* a bad argument or option value */
    AMS_E_NOMEM = -2,       /* an allocation failed or a bound was exceeded */
    AMS_E_IO = -3,          /* open/read/write/rename failed */
    AMS_E_FORMAT = -4,      /* bytes from outside do not parse (bad magic, lying header, truncation) */
    AMS_E_SHAPE = -5,       /* tensor shapes do not fit together */
    AMS_E_DTYPE = -6,       /* an unsupported or unexpected element type */
    AMS_E_NOTFOUND = -7,    /* a named tensor, node or file is missing */
    AMS_E_UNSUPPORTED = -8, /* a valid but unimplemented feature (op, codec, ...) */
    AMS_E_RANGE = -9,       /* a value out of its allowed range (NaN input, huge size) */
    AMS_E_INTERNAL = -10,   /* a bug: an invariant did not hold */
} ams_status;

typedef struct ams_err {
    ams_status code; /* the last failure's status */
    char msg[1024];  /* one line, no trailing newline */
} ams_err;

/* Name of a status code ("AMS_E_FORMAT"); never NULL. */
const char *ams_status_str(ams_status s);

/* Formats the message into err (if err != NULL) and returns code. */
ams_status ams_err_set(ams_err *err, ams_status code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Prepends "prefix: " to the message already in err (for context such as a file name). */
void ams_err_prefix(ams_err *err, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#define AMS_FAIL(err, code, ...) return ams_err_set((err), (code), __VA_ARGS__)
#define AMS_FAIL_IF(cond, err, code, ...)            \
    do {                                             \
        if (cond) AMS_FAIL((err), (code), __VA_ARGS__); \
    } while (0)
#define AMS_TRY(expr)                     \
    do {                                  \
        ams_status ams_try_s_ = (expr);   \
        if (ams_try_s_ != AMS_OK) return ams_try_s_; \
    } while (0)

/* Programmer bugs only; always compiled in. */
void ams_assert_fail(const char *file, int line, const char *expr) __attribute__((noreturn));
#define AMS_ASSERT(x) ((x) ? (void)0 : ams_assert_fail(__FILE__, __LINE__, #x))

/* Overflow-checked size arithmetic for untrusted numbers: 1 on success. */
static inline int ams_size_mul_ok(size_t a, size_t b, size_t *out) {
    return !__builtin_mul_overflow(a, b, out);
}
static inline int ams_size_add_ok(size_t a, size_t b, size_t *out) {
    return !__builtin_add_overflow(a, b, out);
}

#endif
