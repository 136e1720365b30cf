/*
 * The status report as a self-contained HTML page: the Markdown from
 * report.c rendered by cmark, inside a small template with inline CSS and a
 * refresh control. No scripts, no external resources.
 *
 * cmark 0.30 implements CommonMark without GitHub's table extension, so
 * pipe tables are recognised here (a '|' line followed by a delimiter row)
 * and only their structure is emitted by this file: every cell's content,
 * like every other block, is rendered by cmark in safe mode, so the HTML
 * escaping of text is cmark's, never ours. Raw HTML cannot arrive anyway:
 * report.c writes < > & from outside as entity references (belt), and
 * CMARK_OPT_SAFE drops raw HTML and unsafe links if it ever did (braces).
 *
 * Memory: the Markdown document (at most LM_REPORT_HTML_MARKDOWN_MAX bytes)
 * plus one rendered cell or block at a time.
 */
#include "libmetrics_report.h"
#include "outbuf.h"
#include "report.h"
#include "util.h"

#include <cmark.h>
#include <stdlib.h>
#include <string.h>

#define CMARK_OPTS (CMARK_OPT_SAFE | CMARK_OPT_VALIDATE_UTF8)
#define TRUNC_NOTE_MAX 256

/* For the one string this file places itself (the <title>): valid UTF-8
 * already (lm__text_from), so only the HTML specials need care. */
static void h_escape(lm_outbuf *o, const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        switch (s[i]) {
        case '&': lm__out_str(o, "&amp;"); break;
        case '<': lm__out_str(o, "&lt;"); break;
        case '>': lm__out_str(o, "&gt;"); break;
        case '"': lm__out_str(o, "&quot;"); break;
        default: lm__out_put(o, s + i, 1);
        }
    }
}

/* ------------------------------------------------- Markdown collection */

typedef struct mdbuf {
    char *p;
    size_t len, cap;
    bool truncated;
} mdbuf;

/* Keeps at most LM_REPORT_HTML_MARKDOWN_MAX bytes; past that it aborts the
 * Markdown writer, which would otherwise format a report nobody will see. */
static int md_collect(void *ctx, const char *buf, size_t len)
{
    mdbuf *b = ctx;
    if (len > LM_REPORT_HTML_MARKDOWN_MAX - b->len) {
        len = LM_REPORT_HTML_MARKDOWN_MAX - b->len;
        b->truncated = true;
    }
    if (b->len + len > b->cap) {
        size_t cap = b->cap ? b->cap : 64 * 1024;
        while (cap < b->len + len)
            cap *= 2;
        if (cap > LM_REPORT_HTML_MARKDOWN_MAX)
            cap = LM_REPORT_HTML_MARKDOWN_MAX;
        char *p = realloc(b->p, cap + TRUNC_NOTE_MAX);
        if (!p)
            return -1;
        b->p = p;
        b->cap = cap;
    }
    memcpy(b->p + b->len, buf, len);
    b->len += len;
    return b->truncated ? 1 : 0;
}

/* Cuts back to the last complete line and says so on the page. */
static void md_truncate(mdbuf *b)
{
    static const char note[] =
        "\n\n**This page is truncated**: the report is longer than the HTML renderer keeps "
        "in memory (LM_REPORT_HTML_MARKDOWN_MAX). `?format=markdown` streams all of it.\n";
    while (b->len && b->p[b->len - 1] != '\n')
        b->len--;
    memcpy(b->p + b->len, note, sizeof note - 1);
    b->len += sizeof note - 1;
}

/* -------------------------------------------------------------- cmark */

/* cmark's HTML for a fragment, with the paragraph wrapper of a single
 * inline run removed so it fits in a table cell. */
static void h_cmark(lm_outbuf *o, const char *md, size_t n, bool inline_only)
{
    char *html = cmark_markdown_to_html(md, n, CMARK_OPTS);
    size_t len = strlen(html);
    const char *s = html;
    if (inline_only && len >= 8 && memcmp(s, "<p>", 3) == 0 &&
        memcmp(s + len - 5, "</p>\n", 5) == 0) {
        s += 3;
        len -= 8;
    }
    lm__out_put(o, s, len);
    free(html);
}

/* ------------------------------------------------------------- tables */

typedef struct line {
    const char *p;
    size_t n; /* without the '\n' */
} line;

static line line_at(const char *md, size_t len, size_t pos)
{
    const char *nl = memchr(md + pos, '\n', len - pos);
    return (line){md + pos, nl ? (size_t)(nl - (md + pos)) : len - pos};
}

static bool is_row(line l)
{
    return l.n && l.p[0] == '|';
}

static bool is_delimiter(line l)
{
    bool dash = false;
    if (!is_row(l))
        return false;
    for (size_t i = 0; i < l.n; i++) {
        if (l.p[i] == '-')
            dash = true;
        else if (!strchr("|: ", l.p[i]))
            return false;
    }
    return dash;
}

/* Splits a row at unescaped pipes (a backslash escapes the next byte, as
 * in GFM, even inside code spans); cells are trimmed. Calls fn per cell. */
typedef void (*cell_fn)(void *ctx, size_t col, const char *s, size_t n);

static size_t split_row(line l, cell_fn fn, void *ctx)
{
    size_t col = 0, start = 1, i = 1;
    for (;;) {
        while (i < l.n && l.p[i] != '|')
            i += l.p[i] == '\\' ? 2 : 1;
        size_t end = i < l.n ? i : l.n, a = start, b = end;
        while (a < b && l.p[a] == ' ')
            a++;
        while (b > a && l.p[b - 1] == ' ')
            b--;
        /* The row's closing pipe leaves nothing after it: no extra cell. */
        if (i < l.n || a < b)
            fn(ctx, col++, l.p + a, b - a);
        if (i >= l.n)
            return col;
        start = ++i;
    }
}

#define MAX_COLS 32

typedef struct table_ctx {
    lm_outbuf *o;
    bool right[MAX_COLS];
    bool header;
    const char *first; /* first cell of the current row */
    size_t first_n;
} table_ctx;

static void align_cell(void *ctx, size_t col, const char *s, size_t n)
{
    table_ctx *t = ctx;
    if (col < MAX_COLS)
        t->right[col] = n && s[n - 1] == ':' && s[0] != ':';
}

static void emit_cell(void *ctx, size_t col, const char *s, size_t n)
{
    table_ctx *t = ctx;
    lm__out_str(t->o, t->header ? "<th" : "<td");
    if (col < MAX_COLS && t->right[col])
        lm__out_str(t->o, " class=\"num\"");
    lm__out_str(t->o, ">");
    h_cmark(t->o, s, n, true);
    lm__out_str(t->o, t->header ? "</th>" : "</td>");
}

static void first_cell(void *ctx, size_t col, const char *s, size_t n)
{
    table_ctx *t = ctx;
    if (col == 0) {
        t->first = s;
        t->first_n = n;
    }
}

static bool cell_is(const table_ctx *t, const char *state)
{
    return t->first_n == strlen(state) && memcmp(t->first, state, t->first_n) == 0;
}

/* Renders the table starting at pos; returns the position after it. */
static size_t render_table(lm_outbuf *o, const char *md, size_t len, size_t pos)
{
    table_ctx t = {.o = o};
    line head = line_at(md, len, pos);
    pos += head.n + 1;
    line delim = line_at(md, len, pos);
    pos += delim.n + 1;
    split_row(delim, align_cell, &t);

    lm__out_str(o, "<table>\n<thead><tr>");
    t.header = true;
    split_row(head, emit_cell, &t);
    lm__out_str(o, "</tr></thead>\n<tbody>\n");
    t.header = false;
    while (pos < len && !o->failed) {
        line l = line_at(md, len, pos);
        if (!is_row(l))
            break;
        t.first = NULL;
        t.first_n = 0;
        split_row(l, first_cell, &t);
        /* Row state comes from report.c's fixed first-cell vocabulary. */
        if (cell_is(&t, LM__REPORT_STATE_FAIL))
            lm__out_str(o, "<tr class=\"fail\">");
        else if (cell_is(&t, LM__REPORT_STATE_WARN))
            lm__out_str(o, "<tr class=\"warn\">");
        else if (cell_is(&t, LM__REPORT_STATE_IDLE))
            lm__out_str(o, "<tr class=\"idle\">");
        else if (cell_is(&t, LM__REPORT_STATE_OK))
            lm__out_str(o, "<tr class=\"ok\">");
        else
            lm__out_str(o, "<tr>");
        split_row(l, emit_cell, &t);
        lm__out_str(o, "</tr>\n");
        pos += l.n + 1;
    }
    lm__out_str(o, "</tbody>\n</table>\n");
    return pos;
}

static void render_markdown(lm_outbuf *o, const char *md, size_t len)
{
    size_t pos = 0, chunk = 0;
    while (pos < len && !o->failed) {
        line l = line_at(md, len, pos);
        size_t next = pos + l.n + 1;
        if (is_row(l) && next < len && is_delimiter(line_at(md, len, next))) {
            if (pos > chunk)
                h_cmark(o, md + chunk, pos - chunk, false);
            pos = chunk = render_table(o, md, len, pos);
            continue;
        }
        pos = next;
    }
    if (len > chunk && !o->failed)
        h_cmark(o, md + chunk, len - chunk, false);
}

/* -------------------------------------------------------------- page */

static const char css[] =
    ":root{color-scheme:light}"
    "body{margin:0;font:15px/1.45 system-ui,-apple-system,'Segoe UI',Roboto,'Helvetica Neue',"
    "'DejaVu Sans',Arial,sans-serif;color:#1f2328;background:#fff}"
    "nav{display:flex;flex-wrap:wrap;gap:6px 14px;align-items:center;padding:8px 24px;"
    "background:#f6f8fa;border-bottom:1px solid #d0d7de;font-size:13px;color:#57606a}"
    "nav a{color:#0969da;text-decoration:none;padding:1px 6px;border-radius:4px}"
    "nav a:hover{text-decoration:underline}"
    "nav a[aria-current]{background:#0969da;color:#fff}"
    "main{max-width:1500px;padding:8px 24px 40px}"
    "h1{font-size:24px;margin:12px 0 2px}"
    "h1+p{color:#57606a;margin-top:0}"
    "h2{font-size:18px;margin:28px 0 8px;padding-bottom:4px;border-bottom:1px solid #d8dee4}"
    "h3{font-size:15px;margin:20px 0 4px}"
    "p{max-width:80em}"
    "table{border-collapse:collapse;margin:8px 0 14px;font-size:14px}"
    "th,td{padding:4px 10px;text-align:left;vertical-align:top;border-bottom:1px solid #eaeef2;"
    "overflow-wrap:anywhere}"
    "th{background:#f6f8fa;font-weight:600;border-bottom:2px solid #d0d7de;white-space:nowrap}"
    "tbody tr:nth-child(even){background:#f6f8fa}"
    ".num{text-align:right;white-space:nowrap;font-variant-numeric:tabular-nums}"
    "tr.fail td{background:#ffebe9;color:#a40e26}"
    "tr.fail td:first-child{box-shadow:inset 4px 0 #cf222e}"
    "tr.warn td:first-child{color:#9a6700;font-weight:600}"
    "tr.ok td:first-child{color:#1a7f37}"
    "tr.idle td{color:#8c959f}"
    "code{font-family:ui-monospace,'DejaVu Sans Mono',Menlo,Consolas,monospace;font-size:13px;"
    "background:#eff1f3;border-radius:4px;padding:1px 4px}"
    "td code{white-space:pre;font-size:15px;letter-spacing:1px;color:#0550ae;background:#eef4fb}"
    "tr.fail td code{color:#a40e26;background:#fff5f5}";

static const unsigned refresh_choices[] = {0, 5, 15, 60};

static void write_nav(lm_outbuf *o, unsigned refresh)
{
    bool listed = false;
    lm__out_str(o, "<nav><span>Auto-refresh:</span>");
    for (size_t i = 0; i < sizeof refresh_choices / sizeof refresh_choices[0]; i++) {
        unsigned r = refresh_choices[i];
        lm__out_str(o, "<a href=\"?format=html&amp;refresh=");
        lm__out_u64(o, r);
        lm__out_str(o, "\"");
        if (r == refresh) {
            lm__out_str(o, " aria-current=\"true\"");
            listed = true;
        }
        lm__out_str(o, ">");
        if (r) {
            lm__out_u64(o, r);
            lm__out_str(o, " s");
        } else {
            lm__out_str(o, "off");
        }
        lm__out_str(o, "</a>");
    }
    if (!listed) {
        lm__out_str(o, "<a href=\"?format=html&amp;refresh=");
        lm__out_u64(o, refresh);
        lm__out_str(o, "\" aria-current=\"true\">");
        lm__out_u64(o, refresh);
        lm__out_str(o, " s</a>");
    }
    lm__out_str(o, "<span>\xC2\xB7</span><a href=\"?format=markdown\">Markdown</a></nav>\n");
}

lm_status lm_report_html(lm_registry *reg, const lm_report_options *opts, lm_write_fn fn,
                         void *ctx, lm_error *err)
{
    static const lm_report_options defaults = {NULL, NULL, 0};
    if (!reg || !fn) {
        lm__set_error(err, LM_ERR_INVALID, "lm_report_html: %s is NULL",
                      !reg ? "registry" : "writer");
        return LM_ERR_INVALID;
    }
    if (!opts)
        opts = &defaults;
    const char *title = opts->title ? opts->title : "libmetrics";

    mdbuf md = {0};
    lm_text ttl = {0};
    lm_outbuf *o = malloc(sizeof *o);
    if (!o || lm__text_from((lm_str){title, strlen(title)}, 200, &ttl) != 0) {
        free(o);
        lm__set_error(err, LM_ERR_NOMEM, "lm_report_html: out of memory");
        return LM_ERR_NOMEM;
    }
    lm__out_init(o, fn, ctx);

    lm_status st = lm_report_markdown(reg, opts, md_collect, &md, err);
    if (st == LM_ERR_IO && md.truncated) {
        md_truncate(&md);
        st = LM_OK;
    } else if (st == LM_ERR_IO) { /* md_collect's own allocation failed */
        st = LM_ERR_NOMEM;
        lm__set_error(err, st, "lm_report_html: out of memory for %zu bytes of Markdown",
                      md.len);
    }
    if (st == LM_OK) {
        lm__out_str(o, "<!doctype html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n"
                 "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n");
        if (opts->refresh_seconds) {
            lm__out_str(o, "<meta http-equiv=\"refresh\" content=\"");
            lm__out_u64(o, opts->refresh_seconds);
            lm__out_str(o, "\">\n");
        }
        lm__out_str(o, "<title>");
        h_escape(o, ttl.ptr, ttl.len);
        lm__out_str(o, "</title>\n<style>");
        lm__out_str(o, css);
        lm__out_str(o, "</style>\n</head>\n<body>\n");
        write_nav(o, opts->refresh_seconds);
        lm__out_str(o, "<main>\n");
        render_markdown(o, md.p, md.len);
        lm__out_str(o, "</main>\n</body>\n</html>\n");
        lm__out_flush(o);
        if (o->failed) {
            st = LM_ERR_IO;
            lm__set_error(err, st, "lm_report_html: the writer callback aborted");
        }
    }
    free(md.p);
    free(o);
    lm__text_free(&ttl);
    return st;
}
