package routemetrics

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/caddyserver/caddy/v2"
)

func TestGlobalOption(t *testing.T) {
	out, err := adapt(cf(`
{
	route_metrics {
		max_families 512
		slot_capacity 4194304
		max_shards 128
		max_label_value_len 512
		native_capacity 8388608
		max_routes 2000
		max_series 20000
	}
}
http://:18080 {
	route_metrics home
	respond ok
}`))
	if err != nil {
		t.Fatal(err)
	}
	var cfg struct {
		Apps map[string]json.RawMessage `json:"apps"`
	}
	if err := json.Unmarshal(out, &cfg); err != nil {
		t.Fatal(err)
	}
	var app App
	if err := json.Unmarshal(cfg.Apps[appID], &app); err != nil {
		t.Fatalf("%s: %v", out, err)
	}
	want := App{MaxFamilies: 512, SlotCapacity: 4194304, MaxShards: 128, MaxLabelValueLen: 512,
		NativeCapacity: 8388608, MaxRoutes: 2000, MaxSeries: 20000}
	if app != want {
		t.Errorf("got %+v, want %+v", app, want)
	}

	// Without the option there is no app: every limit is the default.
	out, err = adapt(cf(`
http://:18080 {
	route_metrics home
	respond ok
}`))
	if err != nil || strings.Contains(string(out), `"routemetrics"`) {
		t.Errorf("without the option: %v %s", err, out)
	}
}

func TestGlobalOptionErrors(t *testing.T) {
	for _, c := range []struct{ name, text, want, at string }{
		{"unknown", `
{
	route_metrics {
		max_familes 512
	}
}`, `unknown limit "max_familes"`, "Caddyfile:3"},
		{"twice", `
{
	route_metrics {
		max_routes 10
		max_routes 20
	}
}`, "max_routes given twice", "Caddyfile:4"},
		{"zero", `
{
	route_metrics {
		max_shards 0
	}
}`, `max_shards "0" must be a whole number from 1`, "Caddyfile:3"},
		{"word", `
{
	route_metrics {
		max_series lots
	}
}`, `max_series "lots" must be a whole number`, "Caddyfile:3"},
		{"no number", `
{
	route_metrics {
		max_series
	}
}`, "max_series needs exactly one number", "Caddyfile:3"},
		{"argument", `
{
	route_metrics 512
}`, `unexpected "512"`, "Caddyfile:2"},
		{"block twice", `
{
	route_metrics {
		max_routes 10
	}
	route_metrics {
		max_series 10
	}
}`, "given twice", "Caddyfile:5"},
		// Beyond libmetrics' upper bounds: refused where written, with
		// libmetrics' reason (it used to pass adapt and fail later at
		// provision, without a line).
		{"too many shards", `
{
	route_metrics {
		max_routes 10
		max_shards 4097
	}
}`, "max_shards 4097 exceeds the maximum of 4096", "Caddyfile:4"},
		{"too many families", `
{
	route_metrics {
		max_families 2000000
	}
}`, "max_families 2000000 exceeds", "Caddyfile:3"},
		{"too many routes", `
{
	route_metrics {
		max_series 100
		max_routes 2000000
	}
}`, "namespace limits: http metrics: max_routes 2000000 exceeds the maximum of 1048576", "Caddyfile:4"},
		{"too many series", `
{
	route_metrics {
		max_series 100000000
		max_routes 100
	}
}`, "max_series 100000000 exceeds", "Caddyfile:3"},
		{"cells per shard", `
{
	route_metrics {
		native_capacity 2147483647
		slot_capacity 2147483647
		max_shards 600
	}
}`, "x (max_shards 600 + 1) x 8 bytes exceeds", "Caddyfile:5"},
	} {
		_, err := adapt(cf(c.text) + "\nhttp://:18080 {\n\trespond ok\n}\n")
		if err == nil || !strings.Contains(err.Error(), c.want) || !strings.Contains(err.Error(), c.at) {
			t.Errorf("%s: error %v lacks %q or %q", c.name, err, c.want, c.at)
		}
	}
}

// The registry's limits are fixed for the life of the process: opening it
// with others is refused with the reason; the defaults, left out or
// spelled out, are the same limits.
func TestOpenRegistryLimitsFixed(t *testing.T) {
	reg, err := sharedRegistry() // the tests' registry: default limits
	if err != nil {
		t.Fatal(err)
	}
	if got, err := openRegistry(registryLimits{}); err != nil || got != reg {
		t.Fatalf("default limits: %v", err)
	}
	if got, err := openRegistry(registryLimits{maxFamilies: 256, maxRoutes: 1000}); err != nil || got != reg {
		t.Fatalf("defaults spelled out: %v", err)
	}
	_, err = openRegistry(registryLimits{maxFamilies: 512})
	if err == nil || !strings.Contains(err.Error(), "max_families 256") || !strings.Contains(err.Error(), "max_families 512") ||
		!strings.Contains(err.Error(), "restart Caddy") {
		t.Fatalf("other limits: %v", err)
	}
	if err := (&App{MaxRoutes: 5}).Provision(caddy.Context{}); err == nil || !strings.Contains(err.Error(), "max_routes 5") {
		t.Fatalf("app with other limits: %v", err)
	}
	if a := (&App{MaxRoutes: 1000}); a.Provision(caddy.Context{}) != nil || a.reg != reg {
		t.Fatal("app with the default limits spelled out: not the registry")
	}
	if err := (&App{MaxSeries: -1}).Validate(); err == nil || !strings.Contains(err.Error(), "max_series -1") {
		t.Fatalf("negative limit: %v", err)
	}
}
