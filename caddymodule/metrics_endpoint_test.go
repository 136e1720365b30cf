package routemetrics

import (
	"bytes"
	"compress/gzip"
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"os/exec"
	"strings"
	"testing"

	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
)

func endpoint(t testing.TB, js string) *MetricsEndpoint {
	return provision[*MetricsEndpoint](t, "http.handlers.metrics_endpoint", js)
}

// get asks the endpoint with the given remote address and headers.
func fetchEndpoint(t testing.TB, m *MetricsEndpoint, method, target, remote string, hdr map[string]string) *httptest.ResponseRecorder {
	t.Helper()
	r := caddyRequest(method, target)
	r.RemoteAddr = remote
	for k, v := range hdr {
		r.Header.Set(k, v)
	}
	w := httptest.NewRecorder()
	if err := m.ServeHTTP(w, r, nil); err != nil {
		t.Fatal(err)
	}
	return w
}

// recordSomething makes sure the HTTP families have samples to show.
func recordSomething(t testing.TB) {
	h := routeMetrics(t, `{"name":"t_ep_seed"}`)
	_ = chain(respond(200, "x"), h).ServeHTTP(httptest.NewRecorder(), caddyRequest("GET", "/"))
}

func TestEndpointServesTextByDefault(t *testing.T) {
	recordSomething(t)
	w := fetchEndpoint(t, endpoint(t, `{}`), "GET", "/metrics", "127.0.0.1:5000", nil)
	if w.Code != 200 {
		t.Fatalf("status %d", w.Code)
	}
	if ct := w.Header().Get("Content-Type"); ct != "text/plain; version=0.0.4; charset=utf-8" {
		t.Errorf("Content-Type %q", ct)
	}
	body := w.Body.String()
	for _, want := range []string{
		`http_requests_total{method="GET",endpoint="t_ep_seed",status="200"} `,
		"# TYPE go_goroutines gauge\n", "# TYPE go_threads gauge\n",
		"# TYPE go_memstats_heap_alloc_bytes gauge\n", "# TYPE go_memstats_heap_sys_bytes gauge\n",
		"# TYPE go_gc_cycles_total counter\n", "# TYPE process_resident_memory_bytes gauge\n",
	} {
		if !strings.Contains(body, want) {
			t.Errorf("exposition lacks %q", want)
		}
	}
	if strings.Contains(body, "# EOF") {
		t.Error("text format must not end with # EOF")
	}
	e := parseExposition(t, body)
	if e["go_goroutines"] < 1 || e["go_memstats_heap_sys_bytes"] < e["go_memstats_heap_alloc_bytes"] || e["go_threads"] < 1 {
		t.Errorf("Go runtime figures implausible: goroutines %v threads %v heap alloc %v sys %v",
			e["go_goroutines"], e["go_threads"], e["go_memstats_heap_alloc_bytes"], e["go_memstats_heap_sys_bytes"])
	}
}

func TestEndpointOpenMetricsNegotiation(t *testing.T) {
	m := endpoint(t, `{}`)
	prom := "application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1"
	w := fetchEndpoint(t, m, "GET", "/metrics", "[::1]:5000", map[string]string{"Accept": prom})
	if ct := w.Header().Get("Content-Type"); ct != "application/openmetrics-text; version=1.0.0; charset=utf-8" {
		t.Errorf("Content-Type %q", ct)
	}
	if body := w.Body.String(); !strings.HasSuffix(body, "# EOF\n") || strings.Count(body, "# EOF") != 1 {
		t.Errorf("OpenMetrics body must end with one # EOF: ...%q", body[max(0, len(body)-40):])
	}
	if v := w.Header().Values("Vary"); !(contains(v, "Accept") && contains(v, "Accept-Encoding")) {
		t.Errorf("Vary = %v", v)
	}
	w = fetchEndpoint(t, m, "GET", "/metrics?format=openmetrics", "127.0.0.1:1", nil)
	if !strings.HasPrefix(w.Header().Get("Content-Type"), "application/openmetrics-text") {
		t.Error("?format=openmetrics ignored")
	}
	w = fetchEndpoint(t, m, "GET", "/metrics?format=text", "127.0.0.1:1", map[string]string{"Accept": prom})
	if !strings.HasPrefix(w.Header().Get("Content-Type"), "text/plain") {
		t.Error("?format=text must override Accept")
	}
}

func contains(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}

func TestNegotiateFormat(t *testing.T) {
	for accept, want := range map[string]expoFormat{
		"":           formatText,
		"*/*":        formatText,
		"text/plain": formatText,
		"text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8": formatText,
		"application/openmetrics-text":                                    formatOpenMetrics,
		"application/openmetrics-text; version=1.0.0; charset=utf-8":      formatOpenMetrics,
		"Application/OpenMetrics-Text":                                    formatOpenMetrics,
		"text/plain;q=0.5, application/openmetrics-text;q=0.9":            formatOpenMetrics,
		"application/openmetrics-text;q=0.3, text/plain":                  formatText,
		"application/openmetrics-text;q=0":                                formatText,
		"application/openmetrics-text;q=bogus":                            formatText,
		"application/openmetrics-text;version=1.0.0;escaping=allow-utf-8;q=0.6,text/plain;version=0.0.4;q=0.3,*/*;q=0.2": formatOpenMetrics,
	} {
		if got := negotiateFormat(accept); got != want {
			t.Errorf("Accept %q -> %d, want %d", accept, got, want)
		}
	}
}

func TestAcceptsGzip(t *testing.T) {
	for ae, want := range map[string]bool{
		"":                        false,
		"gzip":                    true,
		"gzip, deflate, br, zstd": true,
		"GZIP;q=0.5":              true,
		"gzip;q=0":                false,
		"deflate":                 false,
		"*":                       true,
		"*;q=0":                   false,
		"gzip;q=0, *":             false,
		"identity":                false,
		"x-gzip":                  true,
		"br;q=1, gzip;q=0.001":    true,
	} {
		if got := acceptsGzip(ae); got != want {
			t.Errorf("Accept-Encoding %q -> %v, want %v", ae, got, want)
		}
	}
}

func TestEndpointGzip(t *testing.T) {
	recordSomething(t)
	m := endpoint(t, `{}`)
	for _, accept := range []string{"text/plain", "application/openmetrics-text"} {
		w := fetchEndpoint(t, m, "GET", "/metrics", "127.0.0.1:1", map[string]string{"Accept-Encoding": "gzip", "Accept": accept})
		if w.Header().Get("Content-Encoding") != "gzip" {
			t.Fatalf("%s: Content-Encoding %q", accept, w.Header().Get("Content-Encoding"))
		}
		zr, err := gzip.NewReader(bytes.NewReader(w.Body.Bytes()))
		if err != nil {
			t.Fatal(err)
		}
		plain, err := io.ReadAll(zr)
		if err != nil {
			t.Fatalf("%s: gzip stream broken: %v", accept, err)
		}
		if !bytes.Contains(plain, []byte(`http_requests_total{method="GET",endpoint="t_ep_seed",status="200"} `)) {
			t.Errorf("%s: decompressed body lacks the seeded sample", accept)
		}
		if accept != "text/plain" && !bytes.HasSuffix(plain, []byte("# EOF\n")) {
			t.Errorf("decompressed OpenMetrics body does not end with # EOF")
		}
		if w.Body.Len() >= len(plain) {
			t.Errorf("%s: gzip body %d bytes, plain %d", accept, w.Body.Len(), len(plain))
		}
	}
	w := fetchEndpoint(t, m, "GET", "/metrics", "127.0.0.1:1", map[string]string{"Accept-Encoding": "gzip;q=0"})
	if w.Header().Get("Content-Encoding") != "" {
		t.Error("gzip;q=0 must not get gzip")
	}
}

func TestEndpointLargeExpositionStreamsWhole(t *testing.T) {
	// More than one 32 KiB chunk: many routes.
	h := routeMetrics(t, `{"name":"t_big_0"}`)
	for i := range 300 {
		rt, err := h.http.route("t_big_" + string(rune('a'+i%26)) + strings.Repeat("x", i/26))
		if err != nil {
			t.Fatal(err)
		}
		rt.record(methodGet, 200, 1000, 0, 1, nil)
	}
	w := fetchEndpoint(t, endpoint(t, `{}`), "GET", "/metrics?format=openmetrics", "127.0.0.1:1", nil)
	body := w.Body.String()
	if len(body) <= expoBufSize {
		t.Fatalf("exposition only %d bytes; the test needs more than one chunk", len(body))
	}
	if !strings.HasSuffix(body, "# EOF\n") || !strings.Contains(body, `endpoint="t_big_zxxxxxxxxxx"`) {
		t.Error("streamed exposition incomplete")
	}
}

func TestEndpointForbidsPublicClients(t *testing.T) {
	recordSomething(t)
	m := endpoint(t, `{}`)
	for _, remote := range []string{"203.0.113.9:4000", "[2001:db8::1]:4000", "8.8.8.8:53", "[::ffff:203.0.113.9]:1", "172.32.0.1:1", "garbage"} {
		w := fetchEndpoint(t, m, "GET", "/metrics", remote, nil)
		if w.Code != http.StatusForbidden {
			t.Errorf("%s: status %d, want 403", remote, w.Code)
		}
		if strings.Contains(w.Body.String(), "http_requests_total") || strings.Contains(w.Body.String(), "go_") {
			t.Errorf("%s: 403 body leaks metrics", remote)
		}
	}
	for _, remote := range []string{"127.0.0.1:1", "127.9.9.9:1", "[::1]:1", "10.1.2.3:1", "172.16.0.1:1", "172.31.255.255:1",
		"192.168.1.1:1", "[fd00::1]:1", "[fe80::1%eth0]:1", "[::ffff:10.0.0.1]:1"} {
		if w := fetchEndpoint(t, m, "GET", "/metrics", remote, nil); w.Code != 200 {
			t.Errorf("%s: status %d, want 200", remote, w.Code)
		}
	}
}

func TestEndpointAllowList(t *testing.T) {
	m := endpoint(t, `{"allow":["203.0.113.0/24","2001:db8::7"]}`)
	for remote, want := range map[string]int{
		"203.0.113.200:1": 200,
		"203.0.114.1:1":   403,
		"[2001:db8::7]:1": 200,
		"[2001:db8::8]:1": 403,
		"127.0.0.1:1":     200, // defaults stay
	} {
		if w := fetchEndpoint(t, m, "GET", "/metrics", remote, nil); w.Code != want {
			t.Errorf("%s: %d, want %d", remote, w.Code, want)
		}
	}
}

func TestEndpointRejectsBadAllowInJSON(t *testing.T) {
	m := new(MetricsEndpoint)
	if err := decodeStrict(`{"allow":["10.0.0.0/33"]}`, m); err != nil {
		t.Fatal(err)
	}
	if err := m.Validate(); err == nil || !strings.Contains(err.Error(), `"10.0.0.0/33" is not a CIDR`) {
		t.Errorf("Validate: %v", err)
	}
}

func TestEndpointHonoursCaddyClientIP(t *testing.T) {
	m := endpoint(t, `{}`)
	ask := func(remote, clientIP string) int {
		r := caddyRequest("GET", "/metrics")
		r.RemoteAddr = remote
		caddyhttp.SetVar(r.Context(), caddyhttp.ClientIPVarKey, clientIP)
		w := httptest.NewRecorder()
		if err := m.ServeHTTP(w, r, nil); err != nil {
			t.Fatal(err)
		}
		return w.Code
	}
	// Behind a trusted proxy Caddy sets client_ip to the real client.
	if c := ask("10.0.0.5:1", "203.0.113.50"); c != 403 {
		t.Errorf("public client behind a private proxy: %d, want 403", c)
	}
	if c := ask("203.0.113.1:1", "192.168.7.7"); c != 200 {
		t.Errorf("private client_ip: %d, want 200", c)
	}
	// A request forged outside a server still falls back to RemoteAddr.
	r := httptest.NewRequest("GET", "/metrics", nil).WithContext(context.Background())
	r.RemoteAddr = "198.51.100.1:1"
	w := httptest.NewRecorder()
	_ = m.ServeHTTP(w, r, nil)
	if w.Code != 403 {
		t.Errorf("no vars, public RemoteAddr: %d", w.Code)
	}
}

func TestEndpointMethodsAndFormats(t *testing.T) {
	m := endpoint(t, `{}`)
	if w := fetchEndpoint(t, m, "POST", "/metrics", "127.0.0.1:1", nil); w.Code != 405 || w.Header().Get("Allow") != "GET, HEAD" {
		t.Errorf("POST: %d Allow=%q", w.Code, w.Header().Get("Allow"))
	}
	w := fetchEndpoint(t, m, "HEAD", "/metrics", "127.0.0.1:1", nil)
	if w.Code != 200 || w.Body.Len() != 0 || !strings.HasPrefix(w.Header().Get("Content-Type"), "text/plain") {
		t.Errorf("HEAD: %d, %d body bytes, %q", w.Code, w.Body.Len(), w.Header().Get("Content-Type"))
	}
	for q, want := range map[string]int{"xml": 400, "prometheus": 200, "text": 200, "openmetrics": 200} {
		if w := fetchEndpoint(t, m, "GET", "/metrics?format="+q, "127.0.0.1:1", nil); w.Code != want {
			t.Errorf("format=%s: %d, want %d", q, w.Code, want)
		}
	}
}

func TestEndpointOutputPassesPromtool(t *testing.T) {
	recordSomething(t)
	w := fetchEndpoint(t, endpoint(t, `{}`), "GET", "/metrics", "127.0.0.1:1", nil)
	cmd := exec.Command("promtool", "check", "metrics")
	cmd.Stdin = bytes.NewReader(w.Body.Bytes())
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Errorf("promtool check metrics: %v\n%s", err, out)
	}
}
