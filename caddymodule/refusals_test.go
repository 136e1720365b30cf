package routemetrics

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"
)

func refusedKey(reason string) string { return key(ownRefused.nameIn(""), "reason", reason) }

// Every reason is exposed from provision on, at 0 before any refusal.
func TestRefusalCounterPrecreated(t *testing.T) {
	endpoint(t, `{}`)
	e, text := scrapeShared(t, formatText)
	for r := admitted + 1; r < numRefusals; r++ {
		if _, ok := e[refusedKey(r.String())]; !ok {
			t.Errorf("exposition lacks %s", refusedKey(r.String()))
		}
	}
	if !strings.Contains(text, "# TYPE metrics_endpoint_refused_total counter\n") {
		t.Error("no TYPE line for metrics_endpoint_refused_total")
	}
}

// The rule comes before the method and the format: a refused request gets
// the same 403 and body whatever it asks for, and nothing else is served.
func TestEndpointRefusesEveryMethodAndFormat(t *testing.T) {
	recordSomething(t)
	m := endpoint(t, `{}`)
	formats := map[string]map[string]string{
		"text":               nil,
		"openmetrics accept": {"Accept": "application/openmetrics-text; version=1.0.0"},
		"openmetrics query":  nil,
		"html accept":        {"Accept": "text/html"},
		"html query":         nil,
		"markdown accept":    {"Accept": "text/markdown"},
		"markdown query":     nil,
		"bad format":         nil,
		"gzip":               {"Accept-Encoding": "gzip"},
	}
	query := map[string]string{"openmetrics query": "?format=openmetrics", "html query": "?format=html",
		"markdown query": "?format=markdown", "bad format": "?format=xml"}
	requests := []struct {
		remote string
		hdr    map[string]string
	}{
		{"198.51.100.2:1", nil},
		{"127.0.0.1:1", map[string]string{"X-Forwarded-For": "198.51.100.2"}},
		{"10.0.0.9:1", map[string]string{"Cf-Connecting-Ip": ""}},
	}
	want := refusedBody
	for _, rq := range requests {
		for _, method := range append([]string{"BREW"}, standardMethods...) {
			for f, extra := range formats {
				hdr := map[string]string{}
				for k, v := range rq.hdr {
					hdr[k] = v
				}
				for k, v := range extra {
					hdr[k] = v
				}
				w := fetchEndpoint(t, m, method, "/metrics"+query[f], rq.remote, hdr)
				if w.Code != http.StatusForbidden || w.Body.String() != want {
					t.Errorf("%s %s %s %v: %d %q", rq.remote, method, f, rq.hdr, w.Code, w.Body.String())
				}
				if ct := w.Header().Get("Content-Type"); ct != "text/plain; charset=utf-8" || w.Header().Get("Content-Encoding") != "" {
					t.Errorf("%s %s %s: Content-Type %q, Content-Encoding %q", rq.remote, method, f, ct, w.Header().Get("Content-Encoding"))
				}
			}
		}
	}
}

var standardMethods = []string{"GET", "HEAD", "POST", "PUT", "DELETE", "CONNECT", "OPTIONS", "TRACE", "PATCH"}

// Each refusal adds exactly one to its reason; admitted requests add
// nothing.
func TestRefusalCounterDeltas(t *testing.T) {
	m := endpoint(t, `{}`)
	before, _ := scrapeShared(t, formatText)
	ask := func(remote string, trusted bool, clientIP string, hdr map[string]string) int {
		r := caddyRequest("GET", "/metrics")
		r.RemoteAddr = remote
		for k, v := range hdr {
			r.Header.Set(k, v)
		}
		caddyhttp.SetVar(r.Context(), caddyhttp.TrustedProxyVarKey, trusted)
		if clientIP != "" {
			caddyhttp.SetVar(r.Context(), caddyhttp.ClientIPVarKey, clientIP)
		}
		w := httptest.NewRecorder()
		if err := m.ServeHTTP(w, r, nil); err != nil {
			t.Fatal(err)
		}
		return w.Code
	}
	codes := []int{
		ask("198.51.100.2:1", false, "", nil),                                                                // address
		ask("203.0.113.7:1", false, "", nil),                                                                 // address
		ask("127.0.0.1:1", false, "", map[string]string{"Via": "1.1 proxy"}),                                 // forwarded
		ask("127.0.0.1:1", false, "", map[string]string{"X-Real-Ip": "10.0.0.1"}),                            // forwarded
		ask("10.1.1.1:1", false, "", map[string]string{"X-Forwarded-For": "10.1.1.1"}),                       // forwarded
		ask("127.0.0.1:1", true, "10.0.0.1", map[string]string{"X-Forwarded-For": "10.0.0.1, 198.51.100.2"}), // forwarded_chain
		ask("127.0.0.1:1", true, "198.51.100.2", map[string]string{"X-Forwarded-For": "198.51.100.2"}),       // address
		ask("127.0.0.1:1", false, "", nil),                                                                   // admitted
		ask("127.0.0.1:1", true, "10.0.0.1", map[string]string{"X-Forwarded-For": "10.0.0.1"}),               // admitted
	}
	wantCodes := []int{403, 403, 403, 403, 403, 403, 403, 200, 200}
	for i := range codes {
		if codes[i] != wantCodes[i] {
			t.Errorf("request %d: %d, want %d", i, codes[i], wantCodes[i])
		}
	}
	after, _ := scrapeShared(t, formatText)
	d := delta(before, after)
	for reason, want := range map[string]float64{"address": 3, "forwarded": 3, "forwarded_chain": 1} {
		if got := d[refusedKey(reason)]; got != want {
			t.Errorf("%s grew by %v, want %v", refusedKey(reason), got, want)
		}
	}
}

// A refusal is logged at debug level with the reason, the peer and the
// deciding header's name, never a header value.
func TestRefusalLoggedWithoutValues(t *testing.T) {
	m := endpoint(t, `{}`)
	core, logs := observer.New(zap.DebugLevel)
	m.logger = zap.New(core)
	const canary = "10.66.66.66"
	fetchEndpoint(t, m, "GET", "/metrics", "127.0.0.1:4242", map[string]string{"X-Forwarded-For": canary, "Via": canary})
	fetchEndpoint(t, m, "GET", "/metrics", "198.51.100.2:1", nil)
	fetchEndpoint(t, m, "GET", "/metrics", "127.0.0.1:1", nil) // admitted: no line
	entries := logs.All()
	if len(entries) != 2 {
		t.Fatalf("%d log entries, want 2: %v", len(entries), entries)
	}
	want := []map[string]any{
		{"reason": "forwarded", "peer": "127.0.0.1", "header": "X-Forwarded-For"},
		{"reason": "address", "peer": "198.51.100.2"},
	}
	for i, e := range entries {
		if e.Level != zap.DebugLevel || e.Message != "refused" {
			t.Errorf("entry %d: %v %q", i, e.Level, e.Message)
		}
		got := e.ContextMap()
		if len(got) != len(want[i]) {
			t.Errorf("entry %d fields %v, want %v", i, got, want[i])
		}
		for k, v := range want[i] {
			if got[k] != v {
				t.Errorf("entry %d: %s = %v, want %v", i, k, got[k], v)
			}
		}
		for k, v := range got {
			if strings.Contains(k, canary) || strings.Contains(v.(string), canary) {
				t.Errorf("entry %d leaks a header value: %s=%v", i, k, v)
			}
		}
	}
}
