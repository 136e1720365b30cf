package routemetrics

import (
	"compress/gzip"
	"io"
	"net/http"
	"strconv"
	"strings"
	"sync"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	"go.uber.org/zap"
)

// MetricsEndpoint (http.handlers.metrics_endpoint) serves the process-wide
// registry: every route_metrics namespace, business counters, process_*
// and go_* metrics. Prometheus text 0.0.4 by default; OpenMetrics 1.0 or
// the Prometheus protobuf format (which carries native histograms) as the
// Accept header prefers (negotiateFormat); gzip when the client accepts
// it. Text and OpenMetrics are streamed from libmetrics' cursor through a
// fixed 32 KiB buffer and never built in memory; protobuf is built one
// metric family at a time.
//
// Secure by default: clients outside loopback and private ranges get 403,
// and so does a request a proxy forwarded, unless the proxy is one of the
// server's trusted_proxies and every client address it names is allowed
// (see access.go). Every method and format goes through that rule first.
type MetricsEndpoint struct {
	// Extra client ranges (CIDR or single address) allowed to scrape, on
	// top of loopback, 10/8, 172.16/12, 192.168/16, fc00::/7, fe80::/10.
	Allow []string `json:"allow,omitempty"`

	// AcceptForwarded serves requests that carry forwarding headers
	// (X-Forwarded-For, Forwarded, Cf-Connecting-Ip, Via, ...) from a peer
	// that is not one of the server's trusted_proxies, judging them by the
	// peer's address alone. Off by default. RISK: every client of a proxy
	// or tunnel that connects from loopback or a private address (a
	// Cloudflare Tunnel connector, a load balancer, nginx) then gets the
	// metrics, the public included. For scraping through your own proxy,
	// prefer listing it in trusted_proxies: the clients it names are then
	// checked, with or without this option.
	AcceptForwarded bool `json:"accept_forwarded,omitempty"`

	access  accessRule
	refused *refusalCounters
	errs    *scrapeErrors
	logger  *zap.Logger
	reg     *lmRegistry
	// open starts an exposition cursor; nil: the registry's. A test seam
	// (scrape_errors.go): tests wrap the real cursor to make it fail.
	open func(f expoFormat, process bool) (expoCursor, error)
}

// CaddyModule returns the Caddy module information.
func (*MetricsEndpoint) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{
		ID:  "http.handlers.metrics_endpoint",
		New: func() caddy.Module { return new(MetricsEndpoint) },
	}
}

// Provision fixes the access rule, opens the shared registry and resolves
// the refusal and failed-response counters (refusals.go, scrape_errors.go).
func (m *MetricsEndpoint) Provision(ctx caddy.Context) error {
	m.logger = ctx.Logger()
	allow, err := parseAllow(m.Allow)
	if err != nil {
		return err
	}
	m.access = accessRule{allow: allow, acceptForwarded: m.AcceptForwarded}
	if m.AcceptForwarded {
		m.logger.Warn("accept_forwarded is on: requests a proxy forwarded are judged by the proxy's address, so every client of a proxy on a private address gets the metrics")
	}
	if m.reg, err = sharedRegistry(); err != nil {
		return err
	}
	if m.refused, err = newRefusalCounters(m.reg); err != nil {
		return err
	}
	m.errs, err = newScrapeErrors(m.reg)
	return err
}

func (m *MetricsEndpoint) openExpo(f expoFormat, process bool) (expoCursor, error) {
	if m.open != nil {
		return m.open(f, process)
	}
	return m.reg.expoBegin(f, process)
}

// Validate reports a bad allow list.
func (m *MetricsEndpoint) Validate() error {
	_, err := parseAllow(m.Allow)
	return err
}

// expoBufSize is the chunk size pulled from the cursor per write.
const expoBufSize = 32 << 10

var (
	expoBufs = sync.Pool{New: func() any { return new([expoBufSize]byte) }}
	// gzip writers carry large compressor state; reuse them across scrapes.
	gzipWriters = sync.Pool{New: func() any {
		zw, _ := gzip.NewWriterLevel(io.Discard, gzip.BestSpeed)
		return zw
	}}
)

// ServeHTTP implements caddyhttp.MiddlewareHandler; it always responds.
func (m *MetricsEndpoint) ServeHTTP(w http.ResponseWriter, r *http.Request, _ caddyhttp.Handler) error {
	if d := m.access.decide(r); d.refusal != admitted {
		return m.refuse(w, r, d)
	}
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header().Set("Allow", "GET, HEAD")
		return plainError(w, http.StatusMethodNotAllowed, "405 Method Not Allowed: use GET\n")
	}
	if served, err := m.serveStatusPage(w, r); served {
		return err
	}

	var f expoFormat
	switch q := r.URL.Query().Get("format"); q {
	case "":
		f = negotiateFormat(r.Header.Get("Accept"))
	case "text", "prometheus":
		f = formatText
	case "openmetrics":
		f = formatOpenMetrics
	case "protobuf":
		f = formatProtobuf
	default:
		// html and markdown never get here: serveStatusPage took them.
		return plainError(w, http.StatusBadRequest,
			"400 Bad Request: format must be text, openmetrics, protobuf, html or markdown, got "+strconv.Quote(q)+"\n")
	}
	return m.serveExposition(w, r, f)
}

func (m *MetricsEndpoint) serveExposition(w http.ResponseWriter, r *http.Request, f expoFormat) error {
	refreshGoRuntime()
	x, err := m.openExpo(f, true)
	if err != nil {
		m.scrapeFailed(reasonStart, r, err)
		return caddyhttp.Error(http.StatusInternalServerError, err)
	}
	defer x.end()

	hdr := w.Header()
	hdr.Set("Content-Type", f.contentType())
	hdr.Set("Cache-Control", "no-store")
	hdr.Add("Vary", "Accept")
	hdr.Add("Vary", "Accept-Encoding")
	hdr.Del("Content-Length")
	gz := acceptsGzip(r.Header.Get("Accept-Encoding"))
	if gz {
		hdr.Set("Content-Encoding", "gzip")
	}
	w.WriteHeader(http.StatusOK)
	if r.Method == http.MethodHead {
		return nil
	}

	out := io.Writer(w)
	var zw *gzip.Writer
	if gz {
		zw = getGzipWriter(w)
		defer putGzipWriter(zw)
		out = zw
	}
	buf := expoBufs.Get().(*[expoBufSize]byte)
	defer expoBufs.Put(buf)
	for {
		n, err := x.read(buf[:])
		if err != nil {
			m.scrapeFailed(reasonRender, r, err)
			abortResponse()
		}
		if n == 0 {
			break
		}
		if _, err := out.Write(buf[:n]); err != nil {
			m.scrapeFailed(reasonWrite, r, err)
			abortResponse()
		}
	}
	if zw != nil {
		if err := zw.Close(); err != nil {
			m.scrapeFailed(reasonWrite, r, err)
			abortResponse()
		}
	}
	return nil
}

func plainError(w http.ResponseWriter, code int, body string) error {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(code)
	_, _ = io.WriteString(w, body)
	return nil
}

// mediaRanges yields (token, q, params) for each element of an Accept or
// Accept-Encoding header; a malformed q counts as 0 (not acceptable).
// param(name) is the element's parameter of that name (case-insensitive),
// unquoted, or "".
func mediaRanges(header string, fn func(token string, q float64, param func(string) string)) {
	for elem := range strings.SplitSeq(header, ",") {
		token, params, _ := strings.Cut(elem, ";")
		token = strings.ToLower(strings.TrimSpace(token))
		if token == "" {
			continue
		}
		q := 1.0
		for p := range strings.SplitSeq(params, ";") {
			k, v, ok := strings.Cut(strings.TrimSpace(p), "=")
			if ok && strings.EqualFold(strings.TrimSpace(k), "q") {
				parsed, err := strconv.ParseFloat(strings.TrimSpace(v), 64)
				if err != nil || parsed < 0 || parsed > 1 {
					parsed = 0
				}
				q = parsed
			}
		}
		fn(token, q, func(name string) string {
			for p := range strings.SplitSeq(params, ";") {
				k, v, ok := strings.Cut(strings.TrimSpace(p), "=")
				if ok && strings.EqualFold(strings.TrimSpace(k), name) {
					return strings.Trim(strings.TrimSpace(v), `"`)
				}
			}
			return ""
		})
	}
}

// negotiateFormat follows the Accept header's preferences (q-values) among
// the Prometheus protobuf format (delimited
// io.prometheus.client.MetricFamily messages: what Prometheus asks for
// first when it ingests native histograms), OpenMetrics and text 0.0.4.
// Protobuf and OpenMetrics are chosen only when named; text/plain, text/*
// and */* stand for text, the default. At equal preference protobuf wins
// over OpenMetrics over text, the order Prometheus ranks them in.
func negotiateFormat(accept string) expoFormat {
	qPB, qOM, qText := -1.0, -1.0, -1.0
	mediaRanges(accept, func(t string, q float64, param func(string) string) {
		switch t {
		case "application/vnd.google.protobuf":
			// Other messages or encodings (text, compact-text) are not ours.
			if param("proto") == "io.prometheus.client.MetricFamily" && strings.EqualFold(param("encoding"), "delimited") {
				qPB = max(qPB, q)
			}
		case "application/openmetrics-text":
			qOM = max(qOM, q)
		case "text/plain", "text/*", "*/*":
			qText = max(qText, q)
		}
	})
	switch {
	case qPB > 0 && qPB >= qOM && qPB >= qText:
		return formatProtobuf
	case qOM > 0 && qOM >= qText:
		return formatOpenMetrics
	}
	return formatText
}

// acceptsGzip reports whether gzip is acceptable (explicitly or through
// "*") and not refused with q=0.
func acceptsGzip(ae string) bool {
	qGzip, qStar := -1.0, -1.0
	mediaRanges(ae, func(t string, q float64, _ func(string) string) {
		switch t {
		case "gzip", "x-gzip":
			qGzip = max(qGzip, q)
		case "*":
			qStar = max(qStar, q)
		}
	})
	if qGzip >= 0 {
		return qGzip > 0
	}
	return qStar > 0
}

// Interface guards
var (
	_ caddy.Provisioner           = (*MetricsEndpoint)(nil)
	_ caddy.Validator             = (*MetricsEndpoint)(nil)
	_ caddyhttp.MiddlewareHandler = (*MetricsEndpoint)(nil)
)
