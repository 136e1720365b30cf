package routemetrics

import (
	"io"
	"net/http"
	"net/url"
	"os"
	"strconv"
	"strings"

	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
)

// The status page: libmetrics' human-readable report (per-route requests,
// error split, p50/p95/p99, in flight, business counters, process) served
// by metrics_endpoint next to the exposition, for a person reading it
// during an incident without Grafana.
//
// Scrapers are never affected. Only ?format=html or ?format=markdown, or an
// Accept header that names text/html or text/markdown explicitly and ranks
// it at least as high as every Prometheus format it names, gets the page.
// Wildcards (*/*, text/*) never select it, so curl, Prometheus (whose Accept
// lists the openmetrics and text formats, then */*) and any client asking
// for text/plain keep getting the exposition exactly as before.

// maxRefreshSeconds bounds ?refresh=; longer is not a live page any more.
const maxRefreshSeconds = 3600

// maxNamespaceLen bounds ?namespace= (route_metrics namespaces are short
// metric-name prefixes).
const maxNamespaceLen = 128

// statusPageFormat decides whether a request gets the status page, and in
// which rendering; ok is false for everything the exposition serves.
func statusPageFormat(query url.Values, accept string) (f reportFormat, ok bool) {
	switch query.Get("format") {
	case "html":
		return reportHTML, true
	case "markdown", "md":
		return reportMarkdown, true
	case "":
	default:
		return 0, false
	}
	qHTML, qMarkdown, qProm := -1.0, -1.0, -1.0
	mediaRanges(accept, func(t string, q float64, _ func(string) string) {
		switch t {
		case "text/html":
			qHTML = max(qHTML, q)
		case "text/markdown":
			qMarkdown = max(qMarkdown, q)
		case "application/openmetrics-text", "text/plain":
			qProm = max(qProm, q)
		}
	})
	switch {
	case qHTML > 0 && qHTML >= qProm && qHTML >= qMarkdown:
		return reportHTML, true
	case qMarkdown > 0 && qMarkdown >= qProm:
		return reportMarkdown, true
	}
	return 0, false
}

func (f reportFormat) contentType() string {
	if f == reportHTML {
		return "text/html; charset=utf-8"
	}
	return "text/markdown; charset=utf-8"
}

// parseRefresh reads ?refresh= (seconds between automatic reloads of the
// HTML page; absent or 0: none).
func parseRefresh(s string) (uint32, error) {
	if s == "" {
		return 0, nil
	}
	v, err := strconv.ParseUint(s, 10, 32)
	if err != nil || v > maxRefreshSeconds {
		return 0, errBadParam("refresh must be a whole number of seconds from 0 to " +
			strconv.Itoa(maxRefreshSeconds) + ", got " + strconv.Quote(s))
	}
	return uint32(v), nil
}

type errBadParam string

func (e errBadParam) Error() string { return string(e) }

// statusTitle names the machine: the first thing to check during an
// incident is that you are looking at the right one.
func statusTitle() string {
	if host, err := os.Hostname(); err == nil && host != "" {
		return "Caddy status: " + host
	}
	return "Caddy status"
}

// lazyHeader sends the 200 header with the first byte of the page, so a
// report that fails before writing anything can still answer 500.
type lazyHeader struct {
	w     http.ResponseWriter
	wrote bool
}

func (l *lazyHeader) Write(p []byte) (int, error) {
	if !l.wrote {
		l.wrote = true
		l.w.WriteHeader(http.StatusOK)
	}
	return l.w.Write(p)
}

// serveStatusPage answers the request with the status page if it asks for
// one (see statusPageFormat) and reports whether it did; the caller serves
// the exposition otherwise.
func (m *MetricsEndpoint) serveStatusPage(w http.ResponseWriter, r *http.Request) (bool, error) {
	query := r.URL.Query()
	f, ok := statusPageFormat(query, r.Header.Get("Accept"))
	if !ok {
		return false, nil
	}
	refresh, err := parseRefresh(query.Get("refresh"))
	if err != nil {
		return true, plainError(w, http.StatusBadRequest, "400 Bad Request: "+err.Error()+"\n")
	}
	ns := query.Get("namespace")
	if len(ns) > maxNamespaceLen || strings.ContainsRune(ns, 0) {
		return true, plainError(w, http.StatusBadRequest, "400 Bad Request: namespace must be at most "+
			strconv.Itoa(maxNamespaceLen)+" bytes without NUL\n")
	}

	hdr := w.Header()
	hdr.Set("Content-Type", f.contentType())
	hdr.Set("Cache-Control", "no-store")
	hdr.Set("X-Content-Type-Options", "nosniff")
	hdr.Add("Vary", "Accept")
	if f == reportHTML {
		// The page needs nothing but its inline style sheet; anything else
		// that ever slipped into it could not run or load.
		hdr.Set("Content-Security-Policy", "default-src 'none'; style-src 'unsafe-inline'; "+
			"base-uri 'none'; form-action 'self'; frame-ancestors 'none'")
	}
	if r.Method == http.MethodHead {
		w.WriteHeader(http.StatusOK)
		return true, nil
	}
	out := &lazyHeader{w: w}
	err = m.reg.report(f, ns, statusTitle(), refresh, io.Writer(out))
	switch {
	case err == nil:
	case !out.wrote:
		m.scrapeFailed(reasonStart, r, err)
		hdr.Del("Content-Security-Policy")
		return true, caddyhttp.Error(http.StatusInternalServerError, err)
	case isReportWriteError(err):
		m.scrapeFailed(reasonWrite, r, err)
		abortResponse()
	default:
		// Cut after the status line: never a short page passed off as whole.
		m.scrapeFailed(reasonRender, r, err)
		abortResponse()
	}
	return true, nil
}
