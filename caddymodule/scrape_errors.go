package routemetrics

import (
	"compress/gzip"
	"errors"
	"io"
	"net/http"

	"go.uber.org/zap"
)

// A metrics_endpoint response that cannot be completed must fail where the
// scraper sees it: Prometheus then records up=0 for the scrape and keeps
// the series it had, instead of storing part of the registry from a short
// body answered 200 (after which absence alerts fire for everything cut
// off). Before the status line that is a 500; after it the response is
// aborted with http.ErrAbortHandler, the sentinel net/http, Caddy's
// `abort` directive and reverse_proxy use: net/http neither logs it nor
// finishes the response, so an HTTP/1.1 client meets a connection closed
// before the last chunk and an HTTP/2 client a stream reset, and Caddy's
// server does not recover it. A route_metrics wrapping the endpoint records
// the aborted request with the status its client saw (the 200 status line
// went out) and lets the panic go on. Every such failure is logged and
// counted in
//
//	metrics_endpoint_scrape_errors_total{reason}
//
// whose reasons are fixed (all pre-created at provision, so an alert on
// increase() sees the first failure):
//
//	start   the exposition (or status page) could not start: out of
//	        memory, or /proc/self unreadable; answered 500
//	render  libmetrics failed mid-stream (out of memory, or a line longer
//	        than its buffer); aborted
//	write   the response could not be written: the client went away or
//	        timed out; aborted

// (ownScrapeErrors in own_families.go.)

type scrapeReason int

const (
	reasonStart scrapeReason = iota
	reasonRender
	reasonWrite
	numScrapeReasons
)

var scrapeReasonNames = [numScrapeReasons]string{"start", "render", "write"}

// expoCursor is what serveExposition reads: libmetrics' cursor (*expo), or
// a test's wrapper around it that fails on purpose.
type expoCursor interface {
	read(buf []byte) (int, error)
	end()
}

// scrapeErrors holds the counter's series, one per reason.
type scrapeErrors [numScrapeReasons]*series

func newScrapeErrors(reg *lmRegistry) (*scrapeErrors, error) {
	fam, err := ownScrapeErrors.register(reg, "")
	if err != nil {
		return nil, err
	}
	var s scrapeErrors
	for i, name := range scrapeReasonNames {
		if s[i], err = fam.series([]string{name}); err != nil {
			return nil, err
		}
	}
	return &s, nil
}

// scrapeFailed logs and counts one failed response. A client that went
// away is the client's business (warn); anything else is ours (error).
func (m *MetricsEndpoint) scrapeFailed(reason scrapeReason, r *http.Request, err error) {
	if m.errs != nil {
		m.errs[reason].counterAdd(1)
	}
	if m.logger == nil {
		return
	}
	lvl := zap.ErrorLevel
	if reason == reasonWrite {
		lvl = zap.WarnLevel
	}
	if c := m.logger.Check(lvl, "metrics_endpoint: response failed"); c != nil {
		c.Write(zap.String("reason", scrapeReasonNames[reason]), zap.String("uri", r.RequestURI),
			zap.String("remote_addr", r.RemoteAddr), zap.Error(err))
	}
}

// abortResponse ends a response whose body was cut short. A gzip stream is
// deliberately left unfinished (no final block, no trailer): closing it
// would hand the client a well-formed, complete-looking body.
func abortResponse() {
	panic(http.ErrAbortHandler)
}

// getGzipWriter and putGzipWriter lend a pooled gzip writer to one
// response; putGzipWriter resets it to io.Discard first, so the pool never
// holds a reference to a response writer (nor its connection).
func getGzipWriter(w io.Writer) *gzip.Writer {
	zw := gzipWriters.Get().(*gzip.Writer)
	zw.Reset(w)
	return zw
}

func putGzipWriter(zw *gzip.Writer) {
	zw.Reset(io.Discard)
	gzipWriters.Put(zw)
}

// isReportWriteError tells a status page cut by its client from one cut by
// libmetrics.
func isReportWriteError(err error) bool {
	var we *reportWriteError
	return errors.As(err, &we)
}
