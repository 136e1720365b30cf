package routemetrics

import (
	"bytes"
	"compress/gzip"
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
)

// failingCursor is libmetrics' real cursor that fails after `after` bytes,
// the way lm_expo_read does: whole chunks up to the cut, then (0, error).
type failingCursor struct {
	x     *expo
	after int
	n     int
}

var errInjected = errors.New("libmetrics: rendering the exposition: out of memory (injected)")

func (c *failingCursor) read(buf []byte) (int, error) {
	if c.n >= c.after {
		return 0, errInjected
	}
	if len(buf) > c.after-c.n {
		buf = buf[:c.after-c.n]
	}
	n, err := c.x.read(buf)
	c.n += n
	if err == nil && n == 0 {
		return 0, errors.New("test: the exposition ended before the injected failure")
	}
	return n, err
}

func (c *failingCursor) end() { c.x.end() }

// failAfter makes m's cursor fail after `after` bytes.
func failAfter(m *MetricsEndpoint, after int) {
	m.open = func(f expoFormat, process bool) (expoCursor, error) {
		x, err := m.reg.expoBegin(f, process)
		if err != nil {
			return nil, err
		}
		return &failingCursor{x: x, after: after}, nil
	}
}

// serve runs h behind a real net/http server (HTTP/1.1, or HTTP/2 over
// TLS), with Caddy's per-request vars table; a returned error gets its
// status, as Caddy's server answers one without error routes.
func serve(t *testing.T, h caddyhttp.Handler, h2 bool) (*httptest.Server, *http.Client) {
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		r = r.WithContext(context.WithValue(r.Context(), caddyhttp.VarsCtxKey, map[string]any{}))
		if err := h.ServeHTTP(w, r); err != nil {
			var he caddyhttp.HandlerError
			code := http.StatusInternalServerError
			if errors.As(err, &he) && he.StatusCode != 0 {
				code = he.StatusCode
			}
			w.WriteHeader(code)
		}
	}))
	if h2 {
		srv.EnableHTTP2 = true
		srv.StartTLS()
	} else {
		srv.Start()
	}
	t.Cleanup(srv.Close)
	c := srv.Client()
	c.Transport.(*http.Transport).DisableCompression = true // see the raw bytes
	return srv, c
}

func endpointHandler(m *MetricsEndpoint) caddyhttp.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) error { return m.ServeHTTP(w, r, nil) }
}

// scrapeRaw fetches target and reads the whole body; err is the transport
// error a scraper would see (at the request or while reading the body).
func scrapeRaw(c *http.Client, url, acceptEncoding string) (resp *http.Response, body []byte, err error) {
	req, _ := http.NewRequest("GET", url, nil)
	req.Header.Set("Accept-Encoding", acceptEncoding)
	resp, err = c.Do(req)
	if err != nil {
		return nil, nil, err
	}
	defer resp.Body.Close()
	body, err = io.ReadAll(resp.Body)
	return resp, body, err
}

// A cursor that fails mid-stream never yields a complete-looking 200: the
// scraper gets a transport error over HTTP/1.1 (chunked, plain and gzip)
// and HTTP/2, gzip is never finished, and the failure is counted. A
// route_metrics around the endpoint records what the client saw, the 200
// status line that went out before the cut (README: a panic after the
// final header); scrape_errors_total is where the failure shows.
func TestEndpointAbortsFailedExposition(t *testing.T) {
	h := routeMetrics(t, `{"name":"t_scrape_seed"}`)
	for i := range 400 { // several 32 KiB chunks of exposition
		rt, err := h.http.route("t_scrape_abort_" + strings.Repeat("y", i%40) + string(rune('a'+i/40)))
		if err != nil {
			t.Fatal(err)
		}
		rt.record(methodGet, 200, 1000, 0, 1, nil)
	}
	m := endpoint(t, `{}`)
	rm := routeMetrics(t, `{"name":"t_scrape_abort"}`)
	full := fetchEndpoint(t, m, "GET", "/metrics", "127.0.0.1:1", nil).Body.Len()
	if full < 3*expoBufSize {
		t.Fatalf("exposition only %d bytes; the test needs several chunks", full)
	}
	before := m.errs[reasonRender].count()
	aborted := 0
	for _, h2 := range []bool{false, true} {
		for _, enc := range []string{"identity", "gzip"} {
			for _, after := range []int{0, 100, 2*expoBufSize + 17} {
				failAfter(m, after)
				srv, c := serve(t, chain(endpointHandler(m), rm), h2)
				resp, body, err := scrapeRaw(c, srv.URL+"/metrics", enc)
				name := map[bool]string{false: "HTTP/1.1", true: "HTTP/2"}[h2] + " " + enc
				if err == nil {
					t.Errorf("%s, cut after %d bytes: the scraper read a complete %d-byte body (status %d)",
						name, after, len(body), resp.StatusCode)
					continue
				}
				aborted++
				if resp != nil && h2 != (resp.ProtoMajor == 2) {
					t.Errorf("%s: protocol %s", name, resp.Proto)
				}
				if enc == "gzip" && len(body) > 0 {
					// What got through must not decompress to a finished stream.
					zr, zerr := gzip.NewReader(bytes.NewReader(body))
					if zerr == nil {
						if _, zerr = io.ReadAll(zr); zerr == nil {
							t.Errorf("%s: the gzip stream of a failed scrape was finished", name)
						}
					}
				}
			}
		}
	}
	if got := m.errs[reasonRender].count() - before; got != uint64(aborted) || aborted != 12 {
		t.Errorf("scrape_errors_total{reason=\"render\"} moved by %d for %d aborted scrapes (want 12)", got, aborted)
	}
	e, _ := scrapeShared(t, formatText)
	if v := e[reqKey("", "GET", "t_scrape_abort", 200)]; v != float64(aborted) {
		t.Errorf("route_metrics recorded %v aborted scrapes with the 200 the client saw, want %d", v, aborted)
	}
	if v := e[reqKey("", "GET", "t_scrape_abort", 500)]; v != 0 {
		t.Errorf("route_metrics recorded %v aborted scrapes as 500, but the client saw a 200 status line", v)
	}
	if v := e[key(ownScrapeErrors.nameIn(""), "reason", "render")]; v < float64(aborted) {
		t.Errorf("the exposition shows %s{reason=\"render\"} %v", ownScrapeErrors.nameIn(""), v)
	}
	for _, r := range scrapeReasonNames {
		if _, ok := e[key(ownScrapeErrors.nameIn(""), "reason", r)]; !ok {
			t.Errorf("reason %q not pre-created", r)
		}
	}

	// Without a failure the same path serves everything, gzip finished.
	m.open = nil
	srv, c := serve(t, endpointHandler(m), true)
	_, body, err := scrapeRaw(c, srv.URL+"/metrics", "gzip")
	if err != nil {
		t.Fatal(err)
	}
	zr, err := gzip.NewReader(bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if plain, err := io.ReadAll(zr); err != nil || len(plain) < full-4096 {
		t.Fatalf("good scrape: %d bytes, %v", len(plain), err)
	}
}

// A cursor that cannot start answers 500 before any body, counted as
// "start".
func TestEndpointStartFailureIs500(t *testing.T) {
	m := endpoint(t, `{}`)
	m.open = func(expoFormat, bool) (expoCursor, error) { return nil, errInjected }
	before := m.errs[reasonStart].count()
	srv, c := serve(t, endpointHandler(m), false)
	resp, _, err := scrapeRaw(c, srv.URL+"/metrics", "identity")
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != http.StatusInternalServerError {
		t.Fatalf("status %d", resp.StatusCode)
	}
	if got := m.errs[reasonStart].count() - before; got != 1 {
		t.Errorf("scrape_errors_total{reason=\"start\"} moved by %d", got)
	}
}

// A client that goes away mid-body is counted as "write", and the pooled
// gzip writer never keeps the response writer.
func TestEndpointWriteFailureAndGzipPool(t *testing.T) {
	m := endpoint(t, `{}`)
	before := m.errs[reasonWrite].count()
	w := &brokenWriter{ResponseRecorder: httptest.NewRecorder()}
	r := caddyRequest("GET", "/metrics")
	r.RemoteAddr = "127.0.0.1:1"
	r.Header.Set("Accept-Encoding", "gzip")
	func() {
		defer func() {
			if p := recover(); p != http.ErrAbortHandler {
				t.Errorf("a failed write must abort the response, got panic %v", p)
			}
		}()
		_ = m.ServeHTTP(w, r, nil)
	}()
	if got := m.errs[reasonWrite].count() - before; got != 1 {
		t.Errorf("scrape_errors_total{reason=\"write\"} moved by %d", got)
	}
	// A gzip writer given back to the pool writes nowhere near the
	// response writer it served.
	resp := &brokenWriter{ResponseRecorder: httptest.NewRecorder()}
	zw := getGzipWriter(resp)
	_, _ = zw.Write([]byte("scrape"))
	n0 := resp.writes
	putGzipWriter(zw)
	_, _ = zw.Write([]byte("later user"))
	_ = zw.Close()
	if resp.writes != n0 {
		t.Errorf("the pooled gzip writer wrote %d more times to the old response writer", resp.writes-n0)
	}
}

type brokenWriter struct {
	*httptest.ResponseRecorder
	writes int
}

func (b *brokenWriter) Write(p []byte) (int, error) {
	b.writes++
	return 0, errors.New("test: connection reset by peer")
}
