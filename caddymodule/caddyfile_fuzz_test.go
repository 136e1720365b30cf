package routemetrics

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/caddyserver/caddy/v2/caddyconfig"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
)

// FuzzCaddyfile: whatever the text, parsing either fails with an error or
// yields a configuration that validates; it never panics. Two ways in:
//
//   - each directive's UnmarshalCaddyfile alone, on "route_metrics <text>"
//     and "metrics_endpoint <text>": success means Validate accepts the
//     result and it survives a JSON round trip unchanged;
//   - the real Caddyfile adapter on a site block holding the text (so
//     nesting in handle blocks, matchers and the checks across blocks run):
//     success means every route_metrics and metrics_endpoint in the JSON
//     validates, and the whole set is one libmetrics would provision (one
//     bucket list and one native_histograms setting per namespace, one
//     shape per counter name, no counter
//     named like a namespace's HTTP family). An error that comes from our
//     directives names the file and line.
//
// Seeds: testdata/fuzz/FuzzCaddyfile holds the site-block bodies of
// Caddyfile.example and of every tests/e2e/bad_caddyfiles case, plus edge
// cases (odd quoting, NUL and invalid UTF-8, deep nesting, matchers).
// tests/stress.sh fuzzes it for a bounded time; plain `go test` runs the
// seeds.
func FuzzCaddyfile(f *testing.F) {
	f.Add("contact {\n\tnamespace shop_\n\tbuckets 0.1 1\n\tcounter c_total {\n\t\thelp \"x\"\n\t\tlabel a b\n\t\tmethod POST\n\t\tstatus 2xx\n\t}\n}")
	f.Add("{\n\tallow 10.0.0.0/8 192.0.2.1\n}")
	f.Fuzz(func(t *testing.T, text string) {
		fuzzDirective(t, "route_metrics", text, func() directive { return new(RouteMetrics) })
		fuzzDirective(t, "metrics_endpoint", text, func() directive { return new(MetricsEndpoint) })
		fuzzAdapter(t, text)
	})
}

type directive interface {
	caddyfile.Unmarshaler
	Validate() error
}

func fuzzDirective(t *testing.T, name, text string, fresh func() directive) {
	tokens, err := caddyfile.Tokenize([]byte(name+" "+text), "Fuzzfile")
	if err != nil {
		return // not even tokens: the lexer's error, before any directive
	}
	d := fresh()
	if err := d.UnmarshalCaddyfile(caddyfile.NewDispenser(tokens)); err != nil {
		return
	}
	if err := d.Validate(); err != nil {
		t.Fatalf("%s parsed %q but does not validate: %v", name, text, err)
	}
	b, err := json.Marshal(d)
	if err != nil {
		t.Fatalf("%s: marshal: %v", name, err)
	}
	back := fresh()
	if err := json.Unmarshal(b, back); err != nil {
		t.Fatalf("%s: %s does not unmarshal: %v", name, b, err)
	}
	if err := back.Validate(); err != nil {
		t.Fatalf("%s: JSON form %s does not validate: %v", name, b, err)
	}
	if normalized(d) != normalized(back) {
		t.Fatalf("%s: JSON round trip changed %#v into %#v", name, d, back)
	}
}

// normalized treats nil and empty slices/maps alike (omitempty drops both).
func normalized(d directive) string {
	b, _ := json.Marshal(d)
	return string(b)
}

func fuzzAdapter(t *testing.T, text string) {
	if strings.Contains(text, "import") {
		return // would read files: not what this target is about
	}
	out, _, err := caddyconfig.GetAdapter("caddyfile").Adapt(
		[]byte("http://127.0.0.1:18080 {\n"+text+"\n}\n"), map[string]any{"filename": "Fuzzfile"})
	if err != nil {
		// Our messages start with the directive's name and a colon (or
		// "takes"); Caddy's own (matchers, nesting) are its business.
		msg := err.Error()
		ours := strings.Contains(msg, "route_metrics:") || strings.Contains(msg, "metrics_endpoint:") ||
			strings.Contains(msg, "route_metrics takes") || strings.Contains(msg, "metrics_endpoint takes")
		if ours && !strings.Contains(msg, "Fuzzfile:") {
			t.Fatalf("error from our directives names no line: %v", err)
		}
		return
	}
	var cfg any
	if err := json.Unmarshal(out, &cfg); err != nil {
		t.Fatalf("adapter output is not JSON: %v", err)
	}
	var rms []*RouteMetrics
	walkHandlers(cfg, func(h map[string]any) {
		b, _ := json.Marshal(h)
		switch h["handler"] {
		case "route_metrics":
			rm := new(RouteMetrics)
			if err := json.Unmarshal(b, rm); err != nil {
				t.Fatalf("adapted route_metrics %s: %v", b, err)
			}
			if err := rm.Validate(); err != nil {
				t.Fatalf("adapted route_metrics %s does not validate: %v", b, err)
			}
			rms = append(rms, rm)
		case "metrics_endpoint":
			me := new(MetricsEndpoint)
			if err := json.Unmarshal(b, me); err != nil {
				t.Fatalf("adapted metrics_endpoint %s: %v", b, err)
			}
			if err := me.Validate(); err != nil {
				t.Fatalf("adapted metrics_endpoint %s does not validate: %v", b, err)
			}
		}
	})
	if err := provisionable(rms); err != nil {
		t.Fatalf("adapted %q, but libmetrics would refuse it: %v", text, err)
	}
}

func walkHandlers(v any, fn func(map[string]any)) {
	switch x := v.(type) {
	case map[string]any:
		if _, ok := x["handler"].(string); ok {
			fn(x)
		}
		for _, c := range x {
			walkHandlers(c, fn)
		}
	case []any:
		for _, c := range x {
			walkHandlers(c, fn)
		}
	}
}

// provisionable repeats, across all handlers of one config, the checks
// libmetrics makes when they are provisioned into one registry.
func provisionable(rms []*RouteMetrics) error {
	buckets := map[string]string{}
	natives := map[string]string{}
	shapes := map[string]string{}
	namespaces := map[string]bool{}
	for _, rm := range rms {
		namespaces[rm.Namespace] = true
		if k := bucketsKey(rm.Buckets); k != "" {
			if prev, ok := buckets[rm.Namespace]; ok && prev != k {
				return &fuzzErr{"namespace " + rm.Namespace + " has two bucket lists"}
			}
			buckets[rm.Namespace] = k
		}
		if k := rm.NativeHistograms.key(); k != "" {
			if prev, ok := natives[rm.Namespace]; ok && prev != k {
				return &fuzzErr{"namespace " + rm.Namespace + " has two native_histograms settings"}
			}
			natives[rm.Namespace] = k
		}
		for i := range rm.Counters {
			c := &rm.Counters[i]
			if prev, ok := shapes[c.Name]; ok && prev != c.shape() {
				return &fuzzErr{"counter " + c.Name + " has two shapes"}
			}
			shapes[c.Name] = c.shape()
		}
	}
	for name := range shapes {
		for ns := range namespaces {
			if f := httpFamilyOf(name, ns); f != "" {
				return &fuzzErr{"counter " + name + " collides with " + f}
			}
		}
	}
	return nil
}

type fuzzErr struct{ s string }

func (e *fuzzErr) Error() string { return e.s }
