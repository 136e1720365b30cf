/*
 * Helpers without registry state, shared by the core (libmetrics) and the
 * report component (libmetrics_report): text hygiene and the one UTF-8
 * decoder (text.c), canonical numbers and escaping (format.c), and process
 * figures from /proc (procfs.c). Each library links its own hidden copy of
 * these objects (compiled once, see CMakeLists.txt), so neither exports
 * them and the report needs nothing but libmetrics.h from the core.
 */
#ifndef LM_UTIL_H
#define LM_UTIL_H

#include "libmetrics.h"

#include <stdbool.h>

#define LM_HIDDEN __attribute__((visibility("hidden")))

/* A sanitised string: valid UTF-8, NUL-terminated, len excludes the NUL. */
typedef struct lm_text {
    char *ptr;
    size_t len;
} lm_text;

/* ------------------------------------------------------------- text.c */
/* The library's one UTF-8 decoder. Length of the well-formed sequence
 * starting at p (n >= 1 bytes available): 1 for any byte below 0x80, 2..4
 * for a multi-byte character; 0 if the sequence is ill-formed (overlong,
 * UTF-16 surrogate, above U+10FFFF, truncated, stray continuation byte), and
 * then *bad is the length of its maximal subpart (at least 1), the bytes
 * the Unicode-recommended practice replaces by one U+FFFD. Which characters
 * are acceptable (controls, say) is the caller's rule, not the decoder's. */
LM_HIDDEN size_t lm__utf8_seq(const unsigned char *p, size_t n, size_t *bad);
/* Sanitises bytes into valid UTF-8 (see lm_str in libmetrics.h), cutting at
 * max_len bytes on a character boundary (0: no limit). */
LM_HIDDEN int lm__text_from(lm_str in, size_t max_len, lm_text *out);
LM_HIDDEN void lm__text_free(lm_text *t);
LM_HIDDEN void lm__set_error(lm_error *err, lm_status code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* Writes s (len bytes, any content) into buf as a double-quoted, ASCII-only,
 * escaped and possibly shortened ("...") literal for error messages;
 * returns buf. s == NULL gives (null). cap >= 8. */
LM_HIDDEN const char *lm__quote(char *buf, size_t cap, const char *s, size_t len);

/* ------------------------------------------------------------ format.c */
/* Canonical number rendering shared by exposition and reports. Each writes
 * a NUL-terminated string into buf (>= 48 bytes) and returns its length. */
LM_HIDDEN size_t lm__fmt_u64(char *buf, uint64_t v);
LM_HIDDEN size_t lm__fmt_i64(char *buf, int64_t v);
/* Shortest round-trip decimal of a finite double, always with a '.' or an
 * exponent ("1.0", "0.005", "1e+21"); "+Inf", "-Inf", "NaN" otherwise. */
LM_HIDDEN size_t lm__fmt_double(char *buf, double v);
/* Exact decimal of the 128-bit integer hi:lo divided by scale_pow10 (a
 * power of ten as integer, e.g. 1000000000), trailing zeros trimmed, at
 * least one fractional digit; used for histogram sums. Falls back to a
 * double division when unit_scale is not a power of ten. */
LM_HIDDEN size_t lm__fmt_scaled(char *buf, size_t cap, int64_t hi, uint64_t lo, double unit_scale);
/* Escapers for the exposition: dst must hold 2*len bytes (not terminated);
 * return the bytes written. Both always escape '\\' and '\n' (no raw
 * newline ever reaches a value). HELP: text 0.0.4 escapes only those two,
 * OpenMetrics also '"'. Label values: '\\', '"', '\n' in both formats. */
LM_HIDDEN size_t lm__escape_help(char *dst, const char *src, size_t len, lm_format fmt);
LM_HIDDEN size_t lm__escape_label(char *dst, const char *src, size_t len);

/* ------------------------------------------------------------ procfs.c */
typedef struct lm_process_stats {
    double cpu_seconds;
    double resident_bytes;
    double virtual_bytes;
    double open_fds;
    double max_fds;
    double start_time_seconds;
    double threads;
    bool ok;          /* every figure was read */
    bool unavailable; /* not ok because this system has no /proc at all */
} lm_process_stats;

LM_HIDDEN void lm__process_read(lm_process_stats *out);

#endif /* LM_UTIL_H */
