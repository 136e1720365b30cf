package routemetrics

import (
	"context"
	"encoding/json"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
	dto "github.com/prometheus/client_model/go"
)

func TestUnmarshalNativeHistograms(t *testing.T) {
	three, two := 3, -2
	for text, want := range map[string]*NativeHistograms{
		"native_histograms off":                                   {Off: true},
		"native_histograms":                                       {},
		"native_histograms {\n schema 3\n}":                       {Schema: &three},
		"native_histograms {\n max_buckets 40\n schema -2\n}":     {Schema: &two, MaxBuckets: 40},
		"native_histograms {\n schema 8\n max_buckets 4096\n }\n": {Schema: ptr(8), MaxBuckets: 4096},
	} {
		var got RouteMetrics
		if err := got.UnmarshalCaddyfile(caddyfile.NewTestDispenser("route_metrics api {\n" + text + "\n}")); err != nil {
			t.Fatalf("%q: %v", text, err)
		}
		if !reflect.DeepEqual(got.NativeHistograms, want) {
			t.Errorf("%q: got %+v, want %+v", text, got.NativeHistograms, want)
		}
		if err := got.Validate(); err != nil {
			t.Errorf("%q: %v", text, err)
		}
		b, _ := json.Marshal(&got)
		var back RouteMetrics
		if err := decodeStrict(string(b), &back); err != nil || !reflect.DeepEqual(back.NativeHistograms, want) {
			t.Errorf("%q: JSON round trip %s: %v", text, b, err)
		}
	}
	for _, c := range []struct {
		n    *NativeHistograms
		want *nativeSpec
	}{
		{nil, &nativeSpec{schema: 3, maxBuckets: 160}},
		{&NativeHistograms{}, &nativeSpec{schema: 3, maxBuckets: 160}},
		{&NativeHistograms{Off: true}, nil},
		{&NativeHistograms{Schema: ptr(0), MaxBuckets: 7}, &nativeSpec{schema: 0, maxBuckets: 7}},
	} {
		if got := c.n.spec(); !reflect.DeepEqual(got, c.want) {
			t.Errorf("%+v.spec() = %+v, want %+v", c.n, got, c.want)
		}
	}
	for _, bad := range []NativeHistograms{{Schema: ptr(9)}, {Schema: ptr(-5)}, {MaxBuckets: -1},
		{MaxBuckets: 4097}, {Off: true, MaxBuckets: 5}, {Off: true, Schema: ptr(1)}} {
		if err := bad.validate(); err == nil {
			t.Errorf("%+v validates", bad)
		}
	}
}

func ptr[T any](v T) *T { return &v }

func TestNativeHistogramsErrorsNameFileAndLine(t *testing.T) {
	for _, c := range []struct{ text, want, line string }{
		{"\t\tnative_histograms {\n\t\t\tschema 9\n\t\t}", `schema "9" must be a whole number from -4 to 8`, "Caddyfile:4"},
		{"\t\tnative_histograms {\n\t\t\tschema fine\n\t\t}", `schema "fine" must be a whole number`, "Caddyfile:4"},
		{"\t\tnative_histograms {\n\t\t\tmax_buckets 0\n\t\t}", `max_buckets "0" must be a whole number from 1 to 4096`, "Caddyfile:4"},
		{"\t\tnative_histograms {\n\t\t\tmax_buckets 5000\n\t\t}", `from 1 to 4096`, "Caddyfile:4"},
		{"\t\tnative_histograms {\n\t\t\tschema 1\n\t\t\tschema 2\n\t\t}", `schema given twice`, "Caddyfile:5"},
		{"\t\tnative_histograms {\n\t\t\tbuckets 10\n\t\t}", `unknown subdirective "buckets" (expected schema or max_buckets)`, "Caddyfile:4"},
		{"\t\tnative_histograms on", `unexpected "on"; say off`, "Caddyfile:3"},
		{"\t\tnative_histograms off x", `off takes nothing after it`, "Caddyfile:3"},
		{"\t\tnative_histograms off {\n\t\t\tschema 1\n\t\t}", `off takes no block`, "Caddyfile:4"},
		{"\t\tnative_histograms off\n\t\tnative_histograms off", `native_histograms given twice`, "Caddyfile:4"},
	} {
		_, err := adapt("http://:18080 {\n\troute_metrics api {\n" + c.text + "\n\t}\n}\n")
		if err == nil || !strings.Contains(err.Error(), c.want) || !strings.Contains(err.Error(), c.line) {
			t.Errorf("%q: error %v, want %q at %s", c.text, err, c.want, c.line)
		}
	}
	// One namespace, one native setting; a Server-Timing histogram, one too.
	_, err := adapt(`http://:18080 {
	route_metrics {
		native_histograms off
	}
	handle /api/* {
		route_metrics api {
			native_histograms {
				schema 2
			}
		}
	}
}
`)
	if err == nil || !strings.Contains(err.Error(), `namespace "" already has other native_histograms settings (set at Caddyfile:2)`) ||
		!strings.Contains(err.Error(), "Caddyfile:6") {
		t.Errorf("conflicting native settings: %v", err)
	}
	_, err = adapt(`http://:18080 {
	route_metrics {
		native_histograms off
	}
	handle /api/* {
		route_metrics api {
		}
	}
}
`)
	if err != nil {
		t.Errorf("a block without native_histograms has no opinion: %v", err)
	}
	_, err = adapt(`http://:18080 {
	route_metrics a {
		namespace x_
		server_timing {
			metric db {
				duration db_seconds
			}
		}
	}
	route_metrics b {
		namespace y_
		native_histograms off
		server_timing {
			metric db {
				duration db_seconds
			}
		}
	}
}
`)
	if err == nil || !strings.Contains(err.Error(), "other native_histograms") || !strings.Contains(err.Error(), "Caddyfile:14") {
		t.Errorf("Server-Timing histogram with two native settings: %v", err)
	}
}

// provisionNow loads a route_metrics handler and returns it with the
// function that cleans it up (as a config reload cleans up the old set).
func provisionNow(t *testing.T, js string) (*RouteMetrics, func()) {
	t.Helper()
	ctx, cancel := caddy.NewContext(caddy.Context{Context: context.Background()})
	mod, err := ctx.LoadModuleByID("http.handlers.route_metrics", json.RawMessage(js))
	if err != nil {
		cancel()
		t.Fatalf("loading %s: %v", js, err)
	}
	t.Cleanup(cancel)
	return mod.(*RouteMetrics), cancel
}

// histogramOf is the series of histogram family whose endpoint label is
// route, in a protobuf scrape of the shared registry.
func histogramOf(t *testing.T, family, route string) *dto.Histogram {
	t.Helper()
	w := fetchEndpoint(t, endpoint(t, `{}`), "GET", "/metrics?format=protobuf", "127.0.0.1:1", nil)
	for _, f := range decodeFamilies(t, w.Body.Bytes()) {
		if f.GetName() != family {
			continue
		}
		for _, m := range f.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == "endpoint" && l.GetValue() == route {
					return m.GetHistogram()
				}
			}
		}
	}
	t.Fatalf("no %s series for endpoint %s", family, route)
	return nil
}

// Reloads change what is exposed, never what was recorded: a lower
// schema, another limit, off and on again with every count; a finer
// schema than the histogram was created with is capped (not an error).
func TestNativeSettingsAcrossReloads(t *testing.T) {
	const fam = "t_nat_http_request_duration_seconds"
	h1, clean1 := provisionNow(t, `{"name":"a","namespace":"t_nat_","native_histograms":{"schema":2,"max_buckets":50}}`)
	for i := range 30 {
		h1.route.record(methodGet, 200, time.Duration(1_000_000+i*37_000_000), 0, 0, nil)
	}
	if h := histogramOf(t, fam, "a"); h.GetSchema() != 2 || h.GetSampleCount() != 30 {
		t.Fatalf("schema %d count %d, want 2 and 30", h.GetSchema(), h.GetSampleCount())
	}
	// Finer than recorded: shown at the recorded schema, the limit as asked.
	_, clean2 := provisionNow(t, `{"name":"a","namespace":"t_nat_","native_histograms":{"schema":5,"max_buckets":3}}`)
	if h := histogramOf(t, fam, "a"); h.GetSchema() >= 2 || len(buckets(h.GetPositiveSpan(), h.GetPositiveDelta())) > 3 {
		t.Errorf("capped settings: schema %d with %d buckets, want < 2 (limit 3)", h.GetSchema(),
			len(buckets(h.GetPositiveSpan(), h.GetPositiveDelta())))
	}
	clean2() // back to the first handler's settings
	if h := histogramOf(t, fam, "a"); h.GetSchema() != 2 {
		t.Errorf("after the reload back: schema %d, want 2", h.GetSchema())
	}
	h3, clean3 := provisionNow(t, `{"name":"a","namespace":"t_nat_","native_histograms":{"off":true}}`)
	h3.route.record(methodGet, 200, 5_000_000, 0, 0, nil)
	if h := histogramOf(t, fam, "a"); h.Schema != nil || len(h.GetPositiveSpan()) != 0 || h.GetSampleCount() != 31 {
		t.Errorf("off: schema %v, %d spans, count %d; want classic only, 31", h.Schema, len(h.GetPositiveSpan()), h.GetSampleCount())
	}
	clean3()
	h := histogramOf(t, fam, "a")
	var n int64
	for _, c := range buckets(h.GetPositiveSpan(), h.GetPositiveDelta()) {
		n += c
	}
	if h.GetSchema() != 2 || n+int64(h.GetZeroCount()) != 31 {
		t.Errorf("on again: schema %d, %d observations in native buckets, want 2 and 31 (recorded while off)", h.GetSchema(), n)
	}
	// The upstream histogram follows the namespace's settings.
	if up := h1.http.upstream.Load(); up == nil {
		t.Error("no upstream histogram")
	}
	clean1()

	// Created without native buckets (a Server-Timing histogram declared
	// with native_histograms off): a later "on" cannot add them.
	st := func(native string) string {
		return `{"name":"b","namespace":"t_nat_",` + native +
			`"server_timing":{"metrics":[{"name":"db","duration":"t_nat_db_seconds"}]}}`
	}
	hOff, _ := provisionNow(t, st(`"native_histograms":{"off":true},`))
	s, err := hOff.st.metrics[0].duration.series([]string{"b", "select"})
	if err != nil {
		t.Fatal(err)
	}
	s.observe(5_000_000)
	_, _ = provisionNow(t, st(`"native_histograms":{"schema":3},`))
	if h := histogramOf(t, "t_nat_db_seconds", "b"); h.Schema != nil || h.GetSampleCount() != 1 {
		t.Errorf("turned on for a histogram recorded without: schema %d, count %d", h.GetSchema(), h.GetSampleCount())
	}
}
