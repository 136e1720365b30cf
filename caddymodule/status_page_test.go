package routemetrics

import (
	"errors"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"
)

const (
	acceptChrome  = "text/html,application/xhtml+xml,application/xml;q=0.9,image/avif,image/webp,image/apng,*/*;q=0.8,application/signed-exchange;v=b3;q=0.7"
	acceptFirefox = "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"
	acceptProm2   = "application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1"
	acceptProm3   = "application/openmetrics-text;version=1.0.0;escaping=allow-utf-8;q=0.6,application/openmetrics-text;version=0.0.1;q=0.5,text/plain;version=1.0.0;escaping=allow-utf-8;q=0.4,text/plain;version=0.0.4;q=0.3,*/*;q=0.2"
	acceptPromPB  = "application/vnd.google.protobuf;proto=io.prometheus.client.MetricFamily;encoding=delimited;q=0.7,text/plain;version=0.0.4;q=0.3,*/*;q=0.2"
)

// scraperAccepts must always get the exposition, never the page.
var scraperAccepts = []string{acceptProm2, acceptProm3, acceptPromPB, "*/*", "", "text/plain",
	"text/*", "application/openmetrics-text; version=1.0.0; charset=utf-8", "text/plain, text/html;q=0.5"}

func TestStatusPageNegotiation(t *testing.T) {
	type want struct {
		f  reportFormat
		ok bool
	}
	html, md, none := want{reportHTML, true}, want{reportMarkdown, true}, want{0, false}
	cases := []struct {
		query, accept string
		want          want
	}{
		{"", acceptChrome, html},
		{"", acceptFirefox, html},
		{"", "TEXT/HTML", html},
		{"", "text/markdown", md},
		{"", "text/markdown, text/html", html}, // a tie goes to the browser page
		{"", "text/markdown, text/html;q=0.5", md},
		{"", "text/html;q=0", none},
		{"", "text/html;q=0.2, text/plain;q=0.3", none},
		{"", "text/html, application/openmetrics-text", html},
		{"format=html", acceptProm2, html},
		{"format=markdown", "*/*", md},
		{"format=md", "", md},
		{"format=openmetrics", acceptChrome, none},
		{"format=text", acceptChrome, none},
		{"format=prometheus", acceptChrome, none},
		{"format=bogus", acceptChrome, none}, // the exposition answers 400
		{"format=", acceptChrome, html},
	}
	for _, a := range scraperAccepts {
		cases = append(cases, struct {
			query, accept string
			want          want
		}{"", a, none})
	}
	for _, c := range cases {
		q, err := url.ParseQuery(c.query)
		if err != nil {
			t.Fatal(err)
		}
		f, ok := statusPageFormat(q, c.accept)
		if ok != c.want.ok || (ok && f != c.want.f) {
			t.Errorf("?%s Accept %q: got (%v, %v), want (%v, %v)", c.query, c.accept, f, ok, c.want.f, c.want.ok)
		}
	}
}

func statusEndpoint(t *testing.T) *MetricsEndpoint {
	t.Helper()
	reg, err := newLMRegistry()
	if err != nil {
		t.Fatal(err)
	}
	hf, err := reg.registerHTTP("", nil, httpShape{}, defaultNative())
	if err != nil {
		t.Fatal(err)
	}
	checkout, err := hf.route("checkout")
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 3; i++ {
		checkout.record(methodGet, 200, 3*time.Millisecond, 0, 10, nil)
	}
	checkout.record(methodPost, 500, 30*time.Millisecond, 0, 10, nil)
	hostile, err := hf.route("/<script>alert(1)</script>")
	if err != nil {
		t.Fatal(err)
	}
	hostile.record(methodGet, 404, time.Millisecond, 0, 10, nil)
	return &MetricsEndpoint{reg: reg}
}

func get(t *testing.T, m *MetricsEndpoint, method, target, accept, remote string) *httptest.ResponseRecorder {
	t.Helper()
	r := httptest.NewRequest(method, target, nil)
	r.RemoteAddr = remote
	if accept != "" {
		r.Header.Set("Accept", accept)
	}
	w := httptest.NewRecorder()
	if err := m.ServeHTTP(w, r, nil); err != nil {
		t.Fatalf("%s %s: %v", method, target, err)
	}
	return w
}

func TestStatusPageHTML(t *testing.T) {
	m := statusEndpoint(t)
	w := get(t, m, "GET", "/metrics", acceptChrome, "127.0.0.1:5000")
	body := w.Body.String()
	if w.Code != 200 || w.Header().Get("Content-Type") != "text/html; charset=utf-8" {
		t.Fatalf("got %d %q", w.Code, w.Header().Get("Content-Type"))
	}
	for _, s := range []string{"<!doctype html>", "<td>checkout</td>", "<td class=\"num\">4</td>",
		"<tr class=\"fail\">", "/&lt;script&gt;alert(1)&lt;/script&gt;", "Caddy status"} {
		if !strings.Contains(body, s) {
			t.Errorf("page lacks %q", s)
		}
	}
	if strings.Contains(strings.ToLower(body), "<script") {
		t.Error("page contains <script")
	}
	if csp := w.Header().Get("Content-Security-Policy"); !strings.Contains(csp, "default-src 'none'") {
		t.Errorf("CSP %q", csp)
	}
	if !strings.Contains(strings.Join(w.Header().Values("Vary"), ","), "Accept") {
		t.Errorf("Vary %q", w.Header().Values("Vary"))
	}
	if strings.Contains(body, "http-equiv") {
		t.Error("refresh without ?refresh")
	}

	w = get(t, m, "GET", "/metrics?format=html&refresh=5", "*/*", "127.0.0.1:5000")
	if !strings.Contains(w.Body.String(), `<meta http-equiv="refresh" content="5">`) {
		t.Error("?refresh=5 gave no meta refresh")
	}
	for _, bad := range []string{"x", "-1", "3601", "1e3"} {
		w = get(t, m, "GET", "/metrics?format=html&refresh="+bad, "", "127.0.0.1:5000")
		if w.Code != 400 || !strings.Contains(w.Body.String(), "refresh must be") {
			t.Errorf("refresh=%s: %d %q", bad, w.Code, w.Body.String())
		}
	}

	w = get(t, m, "HEAD", "/metrics", acceptChrome, "127.0.0.1:5000")
	if w.Code != 200 || w.Body.Len() != 0 || w.Header().Get("Content-Type") != "text/html; charset=utf-8" {
		t.Errorf("HEAD: %d %q %d bytes", w.Code, w.Header().Get("Content-Type"), w.Body.Len())
	}
	// The page is no way around the internal-clients-only rule.
	w = get(t, m, "GET", "/metrics?format=html", acceptChrome, "203.0.113.9:5000")
	if w.Code != 403 {
		t.Errorf("public client got %d", w.Code)
	}
}

func TestStatusPageMarkdown(t *testing.T) {
	m := statusEndpoint(t)
	for _, c := range []struct{ target, accept string }{
		{"/metrics?format=markdown", ""}, {"/metrics", "text/markdown"},
	} {
		w := get(t, m, "GET", c.target, c.accept, "[::1]:5000")
		body := w.Body.String()
		if w.Code != 200 || w.Header().Get("Content-Type") != "text/markdown; charset=utf-8" {
			t.Fatalf("%s: %d %q", c.target, w.Code, w.Header().Get("Content-Type"))
		}
		if !strings.HasPrefix(body, "# Caddy status") || !strings.Contains(body, "| **FAIL** | checkout | 4 |") {
			t.Errorf("%s: unexpected Markdown:\n%s", c.target, body)
		}
	}
	w := get(t, m, "GET", "/metrics?format=markdown&namespace=nope_", "", "127.0.0.1:5000")
	if !strings.Contains(w.Body.String(), `No HTTP metrics are registered with the prefix "nope\_"`) {
		t.Errorf("unknown namespace:\n%s", w.Body.String())
	}
	w = get(t, m, "GET", "/metrics?format=markdown&namespace="+strings.Repeat("n", 129), "", "127.0.0.1:5000")
	if w.Code != 400 {
		t.Errorf("long namespace: %d", w.Code)
	}
}

// httpLines keeps the exposition lines that do not move between two scrapes
// (process_* and go_* do).
func httpLines(body string) string {
	var keep []string
	for _, l := range strings.Split(body, "\n") {
		if strings.Contains(l, "http_") {
			keep = append(keep, l)
		}
	}
	return strings.Join(keep, "\n")
}

func TestScrapersUnaffected(t *testing.T) {
	m := statusEndpoint(t)
	for _, accept := range scraperAccepts {
		w := get(t, m, "GET", "/metrics", accept, "127.0.0.1:5000")

		// The same request served by the exposition alone, as before the
		// status page existed.
		r := httptest.NewRequest("GET", "/metrics", nil)
		if accept != "" {
			r.Header.Set("Accept", accept)
		}
		ref := httptest.NewRecorder()
		if err := m.serveExposition(ref, r, negotiateFormat(accept)); err != nil {
			t.Fatal(err)
		}
		if w.Code != 200 || w.Code != ref.Code {
			t.Errorf("Accept %q: %d, exposition alone %d", accept, w.Code, ref.Code)
		}
		for _, hname := range []string{"Content-Type", "Content-Encoding", "Cache-Control", "Vary",
			"Content-Security-Policy", "X-Content-Type-Options"} {
			if got, want := strings.Join(w.Header().Values(hname), ","), strings.Join(ref.Header().Values(hname), ","); got != want {
				t.Errorf("Accept %q: %s %q, exposition alone %q", accept, hname, got, want)
			}
		}
		body := exposedText(t, w.Header(), w.Body.Bytes())
		if strings.Contains(body, "<html") || !strings.Contains(body, "\nhttp_requests_total{") {
			t.Errorf("Accept %q: not the exposition:\n%.300s", accept, body)
		}
		if got, want := httpLines(body), httpLines(exposedText(t, ref.Header(), ref.Body.Bytes())); got != want {
			t.Errorf("Accept %q: exposition differs from the exposition alone:\n%s\n---\n%s", accept, got, want)
		}
	}
}

type failingWriter struct{}

var errGone = errors.New("client went away")

func (failingWriter) Write([]byte) (int, error) { return 0, errGone }

func TestReportWriterError(t *testing.T) {
	m := statusEndpoint(t)
	for _, f := range []reportFormat{reportHTML, reportMarkdown} {
		if err := m.reg.report(f, "", "t", 0, failingWriter{}); !errors.Is(err, errGone) {
			t.Errorf("format %d: got %v, want the writer's error", f, err)
		}
	}
}
