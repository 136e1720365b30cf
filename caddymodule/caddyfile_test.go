package routemetrics

import (
	"encoding/json"
	"net/http"
	"os"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/caddyserver/caddy/v2/caddyconfig"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
	_ "github.com/caddyserver/caddy/v2/modules/standard" // handle, respond, reverse_proxy, matchers
)

// adapt runs the real Caddyfile adapter, as `caddy adapt` does, on text
// named "Caddyfile" (so errors read "at Caddyfile:N").
func adapt(text string) ([]byte, error) {
	out, _, err := caddyconfig.GetAdapter("caddyfile").Adapt([]byte(text), map[string]any{"filename": "Caddyfile"})
	return out, err
}

// cf trims the leading newline of a raw string so line 1 is the first
// written line.
func cf(s string) string { return strings.TrimPrefix(s, "\n") }

func TestUnmarshalRouteMetrics(t *testing.T) {
	d := caddyfile.NewTestDispenser(`route_metrics contact {
		namespace shop_
		buckets 0.01 0.1 1 10
		counter contact_submissions_total {
			help "Contact form submissions accepted"
			label source website
			label service fastapi
			method POST
			status 2xx 201
		}
		counter contact_any_total
	}`)
	var got RouteMetrics
	if err := got.UnmarshalCaddyfile(d); err != nil {
		t.Fatal(err)
	}
	want := RouteMetrics{
		Name:      "contact",
		Namespace: "shop_",
		Buckets:   []float64{0.01, 0.1, 1, 10},
		Counters: []BusinessCounter{{
			Name:     "contact_submissions_total",
			Help:     "Contact form submissions accepted",
			Labels:   map[string]string{"source": "website", "service": "fastapi"},
			Methods:  []string{"POST"},
			Statuses: []string{"2xx", "201"},
		}, {Name: "contact_any_total"}},
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("got  %+v\nwant %+v", got, want)
	}

	var events RouteMetrics
	if err := events.UnmarshalCaddyfile(caddyfile.NewTestDispenser("route_metrics events {\n latency first_byte\n}")); err != nil {
		t.Fatal(err)
	}
	if events.Latency != "first_byte" {
		t.Errorf("latency: got %q", events.Latency)
	}

	var bare RouteMetrics
	if err := bare.UnmarshalCaddyfile(caddyfile.NewTestDispenser(`route_metrics`)); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(bare, RouteMetrics{}) {
		t.Errorf("bare directive: %+v", bare)
	}
}

func TestUnmarshalMetricsEndpoint(t *testing.T) {
	var m MetricsEndpoint
	err := m.UnmarshalCaddyfile(caddyfile.NewTestDispenser(`metrics_endpoint {
		allow 203.0.113.0/24 2001:db8::/32
		allow 198.51.100.7
	}`))
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{"203.0.113.0/24", "2001:db8::/32", "198.51.100.7"}; !reflect.DeepEqual(m.Allow, want) {
		t.Errorf("allow = %v, want %v", m.Allow, want)
	}
	if m.AcceptForwarded {
		t.Error("accept_forwarded is on without being asked for")
	}
	var opt MetricsEndpoint
	if err := opt.UnmarshalCaddyfile(caddyfile.NewTestDispenser(`metrics_endpoint {
		accept_forwarded
	}`)); err != nil {
		t.Fatal(err)
	}
	if b, _ := json.Marshal(&opt); !opt.AcceptForwarded || string(b) != `{"accept_forwarded":true}` {
		t.Errorf("accept_forwarded: %+v, JSON %s", opt, b)
	}
}

// The public /metrics matcher of Caddyfile.example refuses exactly the
// forwarding headers metrics_endpoint refuses (addressHeaders and
// hopHeaders), each only when absent, on top of remote_ip.
func TestExampleMetricsMatcherAgreesWithRule(t *testing.T) {
	var cfg any
	if err := json.Unmarshal(adaptExample(t), &cfg); err != nil {
		t.Fatal(err)
	}
	var matchers []map[string]any
	var walk func(v any)
	walk = func(v any) {
		switch x := v.(type) {
		case map[string]any:
			if h, ok := x["handle"].([]any); ok && len(h) == 1 {
				if hm, ok := h[0].(map[string]any); ok && hm["handler"] == "metrics_endpoint" {
					if m, ok := x["match"].([]any); ok && len(m) == 1 {
						matchers = append(matchers, m[0].(map[string]any))
					}
				}
			}
			for _, c := range x {
				walk(c)
			}
		case []any:
			for _, c := range x {
				walk(c)
			}
		}
	}
	walk(cfg)
	if len(matchers) != 1 {
		t.Fatalf("found %d matched metrics_endpoint routes, want 1 (the public /metrics): %v", len(matchers), matchers)
	}
	m := matchers[0]
	if _, ok := m["remote_ip"]; !ok {
		t.Errorf("matcher lacks remote_ip: %v", m)
	}
	headers, _ := m["header"].(map[string]any)
	var got []string
	for name, vals := range headers {
		if vals != nil {
			t.Errorf("header %s: %v; want null (matches only when absent)", name, vals)
		}
		got = append(got, http.CanonicalHeaderKey(name))
	}
	want := append(append([]string{}, addressHeaders...), hopHeaders...)
	slices.Sort(got)
	slices.Sort(want)
	if !slices.Equal(got, want) {
		t.Errorf("example matcher refuses %v, metrics_endpoint %v", got, want)
	}
}

func TestJSONFormIsClean(t *testing.T) {
	js, err := json.Marshal(&RouteMetrics{Name: "api"})
	if err != nil {
		t.Fatal(err)
	}
	if string(js) != `{"name":"api"}` {
		t.Errorf("minimal JSON is %s", js)
	}
	full := `{"name":"contact","namespace":"shop_","buckets":[0.1,1],"counters":[{"name":"c_total","help":"h","labels":{"a":"b"},"methods":["POST"],"statuses":["2xx"]}]}`
	var rm RouteMetrics
	if err := decodeStrict(full, &rm); err != nil {
		t.Fatal(err)
	}
	back, _ := json.Marshal(&rm)
	if string(back) != full {
		t.Errorf("round trip:\n got %s\nwant %s", back, full)
	}
	me, _ := json.Marshal(&MetricsEndpoint{})
	if string(me) != `{}` {
		t.Errorf("metrics_endpoint minimal JSON is %s", me)
	}
}

// adaptExample is Caddyfile.example as `caddy adapt` turns it into JSON.
func adaptExample(t *testing.T) []byte {
	t.Helper()
	text, err := os.ReadFile("../Caddyfile.example")
	if err != nil {
		t.Fatal(err)
	}
	out, err := adapt(string(text))
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func TestExampleCaddyfileAdapts(t *testing.T) {
	out := adaptExample(t)
	var cfg struct {
		Apps struct {
			HTTP struct {
				Servers map[string]struct {
					Listen []string          `json:"listen"`
					Routes []json.RawMessage `json:"routes"`
				} `json:"servers"`
			} `json:"http"`
		} `json:"apps"`
	}
	if err := json.Unmarshal(out, &cfg); err != nil {
		t.Fatal(err)
	}
	found := map[string]bool{}
	for _, srv := range cfg.Apps.HTTP.Servers {
		if !reflect.DeepEqual(srv.Listen, []string{":8080"}) {
			continue
		}
		found[":8080"] = true
		// Default order: the site-level route_metrics is the first route,
		// so it wraps the handle blocks that follow it.
		if first := string(srv.Routes[0]); first != `{"handle":[{"handler":"route_metrics","request_id":"X-Request-ID","server_timing":{"metrics":[{"buckets":[0.0005,0.001,0.0025,0.005,0.01,0.025,0.05,0.1,0.25,0.5,1],"duration":"db_query_duration_seconds","name":"db","operations":["select","insert","update","delete"],"queries":"db_queries_total"}],"strip":true}}]}` {
			t.Errorf("first route of :8080 is %s", first)
		}
		all := string(out)
		for _, want := range []string{
			`{"handler":"route_metrics","name":"home"}`,
			`{"handler":"route_metrics","name":"api"}`,
			`{"counters":[{"help":"Contact form submissions accepted","labels":{"service":"fastapi","source":"website"},"methods":["POST"],"name":"contact_submissions_total","statuses":["2xx"]}],"handler":"route_metrics","name":"contact"}`,
			`{"handle":[{"handler":"metrics_endpoint"}],"match":[{"header":{`,
		} {
			if !strings.Contains(all, want) {
				t.Errorf("adapted JSON lacks %s", want)
			}
		}
	}
	for _, srv := range cfg.Apps.HTTP.Servers {
		if reflect.DeepEqual(srv.Listen, []string{"127.0.0.1:9091"}) {
			found["9091"] = true
		}
		if reflect.DeepEqual(srv.Listen, []string{"127.0.0.1:8081"}) {
			found["8081"] = true
		}
	}
	if len(found) != 3 {
		t.Errorf("listeners found: %v, want :8080, 127.0.0.1:9091, 127.0.0.1:8081", found)
	}
}

func TestNestedDirectiveOrder(t *testing.T) {
	out, err := adapt(cf(`
http://:18080 {
	handle /metrics {
		respond 403
		metrics_endpoint
		route_metrics
	}
}`))
	if err != nil {
		t.Fatal(err)
	}
	s := string(out)
	rm, me, re := strings.Index(s, `"route_metrics"`), strings.Index(s, `"metrics_endpoint"`), strings.Index(s, `"static_response"`)
	if !(rm < me && me < re) {
		t.Errorf("want route_metrics < metrics_endpoint < respond, got offsets %d %d %d in %s", rm, me, re, s)
	}
}

func TestCaddyfileErrorsNameFileAndLine(t *testing.T) {
	cases := []struct {
		name string
		text string
		want string
		line string
	}{
		{"unknown subdirective", `
http://:18080 {
	route_metrics api {
		bucket 0.1 1
	}
}`, `unknown subdirective "bucket"`, "Caddyfile:3"},
		{"unknown counter subdirective", `
http://:18080 {
	route_metrics api {
		counter a_total {
			labels x y
		}
	}
}`, `unknown subdirective "labels"`, "Caddyfile:4"},
		{"unknown endpoint subdirective", `
http://:18080 {
	metrics_endpoint {
		deny 10.0.0.0/8
	}
}`, `unknown subdirective "deny"`, "Caddyfile:3"},
		{"bucket not a number", `
http://:18080 {
	route_metrics api {
		buckets 0.1 fast 1
	}
}`, `bucket bound "fast" is not a number of seconds`, "Caddyfile:3"},
		{"buckets not increasing", `
http://:18080 {
	route_metrics api {
		buckets 0.5 0.1
	}
}`, "bucket bounds must be strictly increasing: 0.1 follows 0.5", "Caddyfile:3"},
		{"buckets equal", `
http://:18080 {
	route_metrics api {
		buckets 0.1 0.1
	}
}`, "strictly increasing", "Caddyfile:3"},
		{"bucket infinite", `
http://:18080 {
	route_metrics api {
		buckets 0.1 +Inf
	}
}`, "is not finite", "Caddyfile:3"},
		{"bucket NaN", `
http://:18080 {
	route_metrics api {
		buckets NaN
	}
}`, "is not finite", "Caddyfile:3"},
		{"bucket zero", `
http://:18080 {
	route_metrics api {
		buckets 0 1
	}
}`, "must be greater than 0 seconds", "Caddyfile:3"},
		{"buckets empty", `
http://:18080 {
	route_metrics api {
		buckets
	}
}`, "buckets needs at least one upper bound", "Caddyfile:3"},
		{"buckets twice", `
http://:18080 {
	route_metrics api {
		buckets 1
		buckets 2
	}
}`, "buckets given twice", "Caddyfile:4"},
		{"bad metric name", `
http://:18080 {
	route_metrics api {
		counter 9lives_total
	}
}`, `metric name "9lives_total" must match`, "Caddyfile:3"},
		{"counter without _total", `
http://:18080 {
	route_metrics api {
		counter signups
	}
}`, `counter name "signups" must end in "_total"`, "Caddyfile:3"},
		{"counter name taken", `
http://:18080 {
	route_metrics api {
		counter shop_http_requests_total
		namespace shop_
	}
}`, `counter name "shop_http_requests_total" collides with the built-in metric shop_http_requests`, "Caddyfile:3"},
		{"counter family is a gauge", `
http://:18080 {
	route_metrics api {
		counter http_requests_in_progress_total {
			method GET
		}
	}
}`, "collides with the built-in metric http_requests_in_progress", "Caddyfile:3"},
		{"counter family is a Go gauge", `
http://:18080 {
	route_metrics api {
		counter go_goroutines_total
	}
}`, "collides with the built-in metric go_goroutines", "Caddyfile:3"},
		{"bad namespace", `
http://:18080 {
	route_metrics api {
		namespace my-shop_
	}
}`, `namespace "my-shop_" must match`, "Caddyfile:3"},
		{"bad label name", `
http://:18080 {
	route_metrics api {
		counter a_total {
			label 1source website
		}
	}
}`, `label name "1source" must match`, "Caddyfile:4"},
		{"reserved label name", `
http://:18080 {
	route_metrics api {
		counter a_total {
			label __name x
		}
	}
}`, `must not start with "__"`, "Caddyfile:4"},
		{"label twice", `
http://:18080 {
	route_metrics api {
		counter a_total {
			label a x
			label a y
		}
	}
}`, "label a given twice", "Caddyfile:5"},
		{"label value missing", `
http://:18080 {
	route_metrics api {
		counter a_total {
			label a
		}
	}
}`, "label needs exactly two arguments", "Caddyfile:4"},
		{"bad status", `
http://:18080 {
	route_metrics api {
		counter a_total {
			status 2xx 700
		}
	}
}`, `status condition "700" must be a class like 2xx`, "Caddyfile:4"},
		{"lowercase method", `
http://:18080 {
	route_metrics api {
		counter a_total {
			method post
		}
	}
}`, `did you mean "POST"`, "Caddyfile:4"},
		{"too many route names", `
http://:18080 {
	route_metrics api v2
}`, "at most one argument", "Caddyfile:2"},
		{"endpoint argument", `
http://:18080 {
	metrics_endpoint 10.0.0.0/8
}`, "metrics_endpoint takes no arguments", "Caddyfile:2"},
		{"accept_forwarded with a value", `
http://:18080 {
	metrics_endpoint {
		accept_forwarded yes
	}
}`, "accept_forwarded takes no argument", "Caddyfile:3"},
		{"accept_forwarded twice", `
http://:18080 {
	metrics_endpoint {
		accept_forwarded
		accept_forwarded
	}
}`, "accept_forwarded given twice", "Caddyfile:4"},
		{"accept_forwarded with a block", `
http://:18080 {
	metrics_endpoint {
		accept_forwarded {
			on
		}
	}
}`, "accept_forwarded takes no block", "Caddyfile:4"},
		{"bad CIDR", `
http://:18080 {
	metrics_endpoint {
		allow 203.0.113.7 10.0.0.0/33
	}
}`, `"10.0.0.0/33" is not a CIDR`, "Caddyfile:3"},
		{"bad address", `
http://:18080 {
	metrics_endpoint {
		allow 203.0.113.300
	}
}`, `"203.0.113.300" is not an IP address or CIDR`, "Caddyfile:3"},
		{"same route, other settings, other site", `
http://:18080 {
	route_metrics contact {
		counter c_total {
			label service fastapi
		}
	}
}

http://:18081 {
	route_metrics contact {
		counter c_total {
			label service other
		}
	}
}`, `route "contact" is already declared at Caddyfile:2 with different settings`, "Caddyfile:10"},
		{"one namespace, two bucket lists", `
http://:18080 {
	handle /a {
		route_metrics a {
			buckets 0.1 1
		}
	}
	handle /b {
		route_metrics b {
			buckets 0.2 1
		}
	}
}`, `namespace "" already has other buckets (set at Caddyfile:3)`, "Caddyfile:8"},
		{"one counter, two shapes", `
http://:18080 {
	handle /a {
		route_metrics a {
			counter c_total {
				help "one"
			}
		}
	}
	handle /b {
		route_metrics b {
			counter c_total {
				help "two"
			}
		}
	}
}`, "counter c_total is already declared at Caddyfile:3 with a different help text or label names", "Caddyfile:10"},
		{"latency unknown mode", `
http://:18080 {
	route_metrics events {
		latency ttfb
	}
}`, `latency "ttfb" must be complete (until the response was written) or first_byte`, "Caddyfile:3"},
		{"latency without a mode", `
http://:18080 {
	route_metrics events {
		latency
	}
}`, "latency needs exactly one argument, first_byte or complete", "Caddyfile:3"},
		{"latency twice", `
http://:18080 {
	route_metrics events {
		latency first_byte
		latency complete
	}
}`, "latency given twice", "Caddyfile:4"},
		{"one route, two latency modes", `
http://:18080 {
	route_metrics events {
		latency first_byte
	}
}
http://:18081 {
	route_metrics events
}`, `route "events" is already declared at Caddyfile:2 with different settings (namespace, buckets, native_histograms, counters or latency)`, "Caddyfile:7"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := adapt(cf(c.text))
			if err == nil {
				t.Fatal("adapted without error")
			}
			msg := err.Error()
			if !strings.Contains(msg, c.want) {
				t.Errorf("error %q lacks %q", msg, c.want)
			}
			if !strings.Contains(msg, c.line) {
				t.Errorf("error %q does not name %s", msg, c.line)
			}
		})
	}
}

func TestCaddyfileRepeatedRouteWithSameSettings(t *testing.T) {
	_, err := adapt(cf(`
http://:18080 {
	route_metrics api {
		buckets 0.1 1
	}
}
http://:18081 {
	route_metrics api {
		buckets 0.1 1
	}
	route_metrics other_api {
		buckets 0.1 1
	}
	route_metrics {
		namespace b_
	}
}`))
	if err != nil {
		t.Fatalf("identical declarations must be accepted: %v", err)
	}
}
