package routemetrics

import (
	"net/http"
	"net/http/httptest"
	"strconv"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
)

// tunnel stands in for reverse_proxy switching protocols: it writes the
// upgrading status, then holds the "tunnel" open for hold, looking at the
// metrics while it is open, and (if boom) panics inside it.
type tunnel struct {
	status int
	hold   time.Duration
	during exposition
	boom   bool
}

func (u *tunnel) handler(t *testing.T) caddyhttp.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) error {
		w.WriteHeader(u.status)
		u.during, _ = scrapeShared(t, formatText)
		time.Sleep(u.hold)
		if u.boom {
			panic("tunnel")
		}
		return nil
	}
}

func upgradedKey(prefix, suffix, endpoint string, extra ...string) string {
	return key(prefix+"http_upgraded_connection"+suffix, append([]string{"endpoint", endpoint}, extra...)...)
}

// An upgraded request (101, or 2xx to CONNECT) is recorded once, at the
// upgrade, with its time to the upgrade as latency; it leaves the request
// in-flight gauge for the upgraded one while the tunnel is open, and the
// tunnel's lifetime goes to http_upgraded_connection_duration_seconds.
func TestUpgradedRequestRecordedAtTheUpgrade(t *testing.T) {
	site := routeMetrics(t, `{}`)
	ws := routeMetrics(t, `{"name":"t_upg_ws"}`)
	const hold = 300 * time.Millisecond
	for _, c := range []struct {
		name, method string
		status       int
		boom         bool
	}{
		{"101 Switching Protocols", "GET", 101, false},
		{"200 to an extended CONNECT (WebSocket over HTTP/2 and HTTP/3)", "CONNECT", 200, false},
		{"panic inside the tunnel", "GET", 101, true},
	} {
		t.Run(c.name, func(t *testing.T) {
			u := &tunnel{status: c.status, hold: hold, boom: c.boom}
			before, _ := scrapeShared(t, formatText)
			func() {
				defer func() {
					if v := recover(); (v != nil) != c.boom {
						t.Errorf("recovered %v", v)
					}
				}()
				_ = chain(u.handler(t), site, ws).ServeHTTP(httptest.NewRecorder(), caddyRequest(c.method, "/ws"))
			}()
			after, _ := scrapeShared(t, formatText)
			// While the tunnel is open: the request is already counted,
			// with its latency, and is no longer a request in progress.
			during := delta(before, u.during)
			if during[reqKey("", c.method, "t_upg_ws", c.status)] != 1 {
				t.Errorf("request not recorded at the upgrade: %v", during)
			}
			if v := u.during[inflightKey("", "t_upg_ws")]; v != 0 {
				t.Errorf("requests in progress while the tunnel is open: %v, want 0", v)
			}
			if v := u.during[key("http_upgraded_connections_in_progress", "endpoint", "t_upg_ws")]; v != 1 {
				t.Errorf("upgraded connections in progress while open: %v, want 1", v)
			}
			got := delta(before, after)
			bucket := key("http_request_duration_seconds_bucket", "method", c.method, "endpoint", "t_upg_ws",
				"status", strconv.Itoa(c.status), "le", "0.1")
			for k, want := range map[string]float64{
				reqKey("", c.method, "t_upg_ws", c.status):      1,
				durCountKey("", c.method, "t_upg_ws", c.status): 1,
				bucket: 1, // the time to the upgrade, not the tunnel's 0.3 s
				upgradedKey("", "_duration_seconds_count", "t_upg_ws"):                  1,
				upgradedKey("", "_duration_seconds_bucket", "t_upg_ws", "le", "1.0"):    1,
				upgradedKey("", "_duration_seconds_bucket", "t_upg_ws", "le", "3600.0"): 1,
			} {
				if got[k] != want {
					t.Errorf("%s moved by %v, want %v", k, got[k], want)
				}
			}
			if s := got[upgradedKey("", "_duration_seconds_sum", "t_upg_ws")]; s < hold.Seconds() || s > 10 {
				t.Errorf("tunnel lifetime %v s, want at least %v", s, hold.Seconds())
			}
			if total := requestsMoved(got, ""); total != 1 {
				t.Errorf("requests_total moved by %v in all, want exactly 1: %v", total, got)
			}
			if v := after[key("http_upgraded_connections_in_progress", "endpoint", "t_upg_ws")]; v != 0 {
				t.Errorf("upgraded connections in progress after: %v, want 0", v)
			}
			if v := after[inflightKey("", "t_upg_ws")]; v != 0 {
				t.Errorf("requests in progress after: %v, want 0", v)
			}
		})
	}
}

// A 2xx to anything but CONNECT, and a 1xx other than 101, are no upgrade.
func TestOnlyTunnelsAreUpgrades(t *testing.T) {
	for _, c := range []struct {
		method string
		code   int
		want   bool
	}{
		{"GET", 101, true}, {"POST", 101, true}, {"CONNECT", 200, true}, {"CONNECT", 204, true},
		{"CONNECT", 407, false}, {"CONNECT", 502, false}, {"GET", 200, false}, {"connect", 200, false},
		{"GET", 103, false}, {"GET", 100, false},
	} {
		if got := upgrades(c.method, c.code); got != c.want {
			t.Errorf("upgrades(%q, %d) = %v, want %v", c.method, c.code, got, c.want)
		}
	}
}

// The latency histogram measures completion, or the time to the first
// byte (final header) where the route says latency first_byte, and by
// default for text/event-stream responses.
func TestLatencyModes(t *testing.T) {
	const gap = 150 * time.Millisecond
	// Header at once, body after gap.
	stream := func(contentType string, flushFirst bool) caddyhttp.HandlerFunc {
		return func(w http.ResponseWriter, r *http.Request) error {
			if contentType != "" {
				w.Header().Set("Content-Type", contentType)
			}
			if flushFirst {
				http.NewResponseController(w).Flush()
			} else {
				w.WriteHeader(200)
			}
			time.Sleep(gap)
			_, err := w.Write([]byte("data: x\n\n"))
			return err
		}
	}
	for _, c := range []struct {
		name, js, contentType string
		flushFirst            bool
		firstByte             bool
	}{
		{"default: complete", `{"name":"t_lat_a"}`, "application/json", false, false},
		{"default: first byte for text/event-stream", `{"name":"t_lat_b"}`, "text/event-stream", false, true},
		{"default: first byte for Text/Event-Stream; charset=utf-8", `{"name":"t_lat_c"}`, "Text/Event-Stream ; charset=utf-8", false, true},
		{"text/event-streams is not it", `{"name":"t_lat_d"}`, "text/event-streams", false, false},
		{"first_byte", `{"name":"t_lat_e","latency":"first_byte"}`, "application/json", false, true},
		{"first_byte at a Flush before any header", `{"name":"t_lat_f","latency":"first_byte","request_id":"X-Request-ID"}`, "", true, true},
		{"complete even for text/event-stream", `{"name":"t_lat_g","latency":"complete"}`, "text/event-stream", false, false},
	} {
		t.Run(c.name, func(t *testing.T) {
			site := routeMetrics(t, `{}`)
			rm := routeMetrics(t, c.js)
			name := rm.Name
			before, _ := scrapeShared(t, formatText)
			w := httptest.NewRecorder()
			if err := chain(stream(c.contentType, c.flushFirst), site, rm).ServeHTTP(w, caddyRequest("GET", "/")); err != nil {
				t.Fatal(err)
			}
			after, _ := scrapeShared(t, formatText)
			got := delta(before, after)
			if got[reqKey("", "GET", name, 200)] != 1 {
				t.Fatalf("not counted once: %v", got)
			}
			fast := got[key("http_request_duration_seconds_bucket", "method", "GET", "endpoint", name, "status", "200", "le", "0.1")]
			if want := map[bool]float64{true: 1, false: 0}[c.firstByte]; fast != want {
				t.Errorf("le=0.1 bucket moved by %v, want %v (first byte: %v)", fast, want, c.firstByte)
			}
			if c.flushFirst && w.Header().Get("X-Request-ID") == "" {
				t.Error("a Flush before any header skipped the header hook (no X-Request-ID)")
			}
		})
	}
}
