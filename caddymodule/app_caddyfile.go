package routemetrics

import (
	"math"

	"github.com/caddyserver/caddy/v2/caddyconfig"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
	"github.com/caddyserver/caddy/v2/caddyconfig/httpcaddyfile"
)

// parseGlobalOption parses the route_metrics global option into the
// routemetrics app (app.go):
//
//	{
//	    route_metrics {
//	        max_families        <n>   # default 256
//	        slot_capacity       <n>   # default 2097152
//	        max_shards          <n>   # default 64
//	        max_label_value_len <n>   # default 256
//	        native_capacity     <n>   # default 4194304
//	        max_routes          <n>   # per namespace, default 1000
//	        max_series          <n>   # per HTTP family, default 10000
//	    }
//	}
//
// Every error names the file and line of the offending token.
func parseGlobalOption(d *caddyfile.Dispenser, existing any) (any, error) {
	d.Next() // option name
	if existing != nil {
		return nil, d.Err("route_metrics global option given twice; put every limit in one block")
	}
	app := new(App)
	if d.NextArg() {
		return nil, d.Errf("route_metrics global option: unexpected %q; its limits go in a block", d.Val())
	}
	fields := map[string]*int{
		"max_families": &app.MaxFamilies, "slot_capacity": &app.SlotCapacity, "max_shards": &app.MaxShards,
		"max_label_value_len": &app.MaxLabelValueLen, "native_capacity": &app.NativeCapacity,
		"max_routes": &app.MaxRoutes, "max_series": &app.MaxSeries,
	}
	seen := map[string]bool{}
	for nesting := d.Nesting(); d.NextBlock(nesting); {
		sub := d.Val()
		field, ok := fields[sub]
		if !ok {
			return nil, d.Errf("route_metrics global option: unknown limit %q (expected max_families, slot_capacity, max_shards, max_label_value_len, native_capacity, max_routes or max_series)", sub)
		}
		if seen[sub] {
			return nil, d.Errf("route_metrics global option: %s given twice", sub)
		}
		seen[sub] = true
		n, err := intArg(d, "route_metrics global option: "+sub, 1, math.MaxInt32)
		if err != nil {
			return nil, err
		}
		*field = n
	}
	return httpcaddyfile.App{Name: appID, Value: caddyconfig.JSON(app, nil)}, nil
}
