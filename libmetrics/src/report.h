/*
 * The contract between the Markdown report (report.c) and its HTML
 * rendering (report_html.c): the HTML side colours a route row by its first
 * cell, which report.c writes from a fixed set and never from request data
 * (route names live in another cell, with their pipes escaped, so they
 * cannot forge a first cell).
 */
#ifndef LM_REPORT_H
#define LM_REPORT_H

#define LM__REPORT_STATE_FAIL "**FAIL**"
#define LM__REPORT_STATE_WARN "warn"
#define LM__REPORT_STATE_OK "ok"
#define LM__REPORT_STATE_IDLE "idle"

/* A route fails when at least this share of its requests ended in 5xx. */
#define LM__REPORT_FAIL_5XX_PERCENT 1.0

#endif /* LM_REPORT_H */
