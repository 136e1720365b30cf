package routemetrics

import (
	"math"
	"strings"

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
// Every error names the file and line of the offending token; a limit
// beyond what libmetrics accepts, the line of the limit its reason names
// (the last one given, when it names several).
func parseGlobalOption(d *caddyfile.Dispenser, existing any) (any, error) {
	d.Next() // option name
	if existing != nil {
		return nil, d.Err("route_metrics global option given twice; put every limit in one block")
	}
	app := new(App)
	if d.NextArg() {
		return nil, d.Errf("route_metrics global option: unexpected %q; its limits go in a block", d.Val())
	}
	fields := map[string]*int{}
	var names []string
	for _, l := range app.fields() {
		fields[l.name] = l.v
		names = append(names, l.name)
	}
	expected := strings.Join(names[:len(names)-1], ", ") + " or " + names[len(names)-1]
	// Where each limit was given: libmetrics' upper bounds are checked
	// once every limit is known (some bound a combination), and the error
	// points at the limit its reason names.
	given := map[string]caddyfile.Dispenser{}
	var order []string
	for nesting := d.Nesting(); d.NextBlock(nesting); {
		sub := d.Val()
		field, ok := fields[sub]
		if !ok {
			return nil, d.Errf("route_metrics global option: unknown limit %q (expected %s)", sub, expected)
		}
		if _, twice := given[sub]; twice {
			return nil, d.Errf("route_metrics global option: %s given twice", sub)
		}
		n, err := intArg(d, "route_metrics global option: "+sub, 1, math.MaxInt32)
		if err != nil {
			return nil, err
		}
		*field = n
		given[sub] = *d // a copy: its cursor stays on this limit's value
		order = append(order, sub)
	}
	if err := app.limits().check(); err != nil {
		at := d
		for _, sub := range order {
			if strings.Contains(err.Error(), sub) {
				blame := given[sub]
				at = &blame
			}
		}
		return nil, at.Errf("route_metrics global option: %v", err)
	}
	return httpcaddyfile.App{Name: appID, Value: caddyconfig.JSON(app, nil)}, nil
}
