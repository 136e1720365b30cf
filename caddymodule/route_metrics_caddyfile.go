package routemetrics

import (
	"fmt"
	"slices"
	"strconv"
	"strings"

	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
)

// UnmarshalCaddyfile parses
//
//	route_metrics [<matcher>] [<name>] {
//	    namespace <prefix>
//	    buckets   <seconds...>
//	    native_histograms off          # or:
//	    native_histograms {
//	        schema      <-4..8>        # default 3
//	        max_buckets <1..4096>      # default 160
//	    }
//	    counter <name_total> {
//	        help   <text>
//	        label  <name> <value>     # repeatable
//	        method <METHOD...>        # repeatable
//	        status <2xx|201...>       # repeatable
//	    }
//	    request_id [<header>]         # default X-Request-ID
//	    latency first_byte|complete   # default: complete, first_byte for text/event-stream
//	    openapi  <file>               # route templates: the spec's paths
//	    template <path...>            # repeatable: inline route templates
//	    status_classes                # status="2xx" instead of "200"
//	    latency_labels method endpoint  # histogram without the status label
//	    server_timing {
//	        strip
//	        max_entries <n>
//	        metric <entry-name> {     # repeatable
//	            queries        <name_total>
//	            duration       <name_seconds>
//	            operations     <op...>    # or:
//	            max_operations <n>
//	            buckets        <seconds...>
//	        }
//	    }
//	}
//
// Every error names the file and line of the offending token.
func (h *RouteMetrics) UnmarshalCaddyfile(d *caddyfile.Dispenser) error {
	_, err := h.unmarshal(d)
	return err
}

// positions says where a route_metrics block declared things, for the
// adapter's checks across blocks.
type positions struct {
	namespace declared   // the namespace line, else the directive
	counters  []declared // each counter's name, index-aligned with Counters
	// each server_timing metric's name, index-aligned with
	// ServerTiming.Metrics
	stMetrics []declared
	openapi   declared   // the openapi line
	templates []declared // each inline template, index-aligned with Templates
	shape     declared   // the last status_classes or latency_labels line
}

// unmarshal is UnmarshalCaddyfile that also returns positions.
func (h *RouteMetrics) unmarshal(d *caddyfile.Dispenser) (positions, error) {
	var pos positions
	d.Next() // directive name
	pos.namespace = declared{file: d.File(), line: d.Line()}
	args := d.RemainingArgs()
	switch len(args) {
	case 0:
	case 1:
		h.Name = args[0]
		if h.Name == "" {
			return pos, d.Err("route_metrics: the route name must not be empty")
		}
	default:
		return pos, d.Errf("route_metrics takes at most one argument, the route name; got %d: %q", len(args), args)
	}
	seen := map[string]bool{}
	for nesting := d.Nesting(); d.NextBlock(nesting); {
		sub := d.Val()
		switch sub {
		case "namespace":
			if seen[sub] {
				return pos, d.Err("route_metrics: namespace given twice")
			}
			if !d.NextArg() {
				return pos, d.Err("route_metrics: namespace needs one argument, a metric name prefix like myapp_")
			}
			h.Namespace = d.Val()
			pos.namespace = declared{file: d.File(), line: d.Line()}
			if d.NextArg() {
				return pos, d.Errf("route_metrics: namespace takes one argument; unexpected %q", d.Val())
			}
			if err := validateNamespace(h.Namespace); err != nil {
				return pos, d.Errf("route_metrics: %v", err)
			}
		case "buckets":
			if seen[sub] {
				return pos, d.Err("route_metrics: buckets given twice")
			}
			b, err := parseBuckets(d.RemainingArgs())
			if err != nil {
				return pos, d.Errf("route_metrics: %v", err)
			}
			h.Buckets = b
		case "native_histograms":
			if seen[sub] {
				return pos, d.Err("route_metrics: native_histograms given twice")
			}
			n, err := parseNativeHistograms(d)
			if err != nil {
				return pos, err
			}
			h.NativeHistograms = n
		case "counter":
			at := declared{file: d.File(), line: d.Line()}
			c, err := parseCounter(d)
			if err != nil {
				return pos, err
			}
			for _, prev := range h.Counters {
				if prev.Name == c.Name {
					return pos, d.Errf("route_metrics: counter %s declared twice in the same block", c.Name)
				}
			}
			h.Counters = append(h.Counters, c)
			pos.counters = append(pos.counters, at)
		case "request_id":
			if seen[sub] {
				return pos, d.Err("route_metrics: request_id given twice")
			}
			switch args := d.RemainingArgs(); len(args) {
			case 0:
				h.RequestID = defaultRequestIDHeader
			case 1:
				if !isToken(args[0]) {
					return pos, d.Errf("route_metrics: request_id: %q is not a valid header name", args[0])
				}
				h.RequestID = args[0]
			default:
				return pos, d.Errf("route_metrics: request_id takes at most one argument, the header name; got %q", args)
			}
			if d.NextBlock(d.Nesting()) {
				return pos, d.Err("route_metrics: request_id takes no block")
			}
		case "latency":
			if seen[sub] {
				return pos, d.Err("route_metrics: latency given twice")
			}
			var mode string
			if !d.AllArgs(&mode) {
				return pos, d.Errf("route_metrics: latency needs exactly one argument, %s or %s", latencyFirstByteName, latencyCompleteName)
			}
			if _, err := parseLatencyMode(mode); err != nil {
				return pos, d.Errf("route_metrics: %v", err)
			}
			h.Latency = mode
		case "server_timing":
			if seen[sub] {
				return pos, d.Err("route_metrics: server_timing given twice (put every metric in one block)")
			}
			st, at, err := parseServerTiming(d)
			if err != nil {
				return pos, err
			}
			h.ServerTiming, pos.stMetrics = st, at
		case "openapi":
			if seen[sub] {
				return pos, d.Err("route_metrics: openapi given twice")
			}
			var file string
			if !d.AllArgs(&file) || file == "" {
				return pos, d.Err("route_metrics: openapi needs one argument, the OpenAPI document's file (e.g. openapi.json)")
			}
			h.OpenAPI = specFile(d.File(), file)
			pos.openapi = declared{file: d.File(), line: d.Line()}
		case "template":
			args := d.RemainingArgs()
			if len(args) == 0 {
				return pos, d.Err("route_metrics: template needs at least one route template, e.g. template /items/{item_id}")
			}
			for _, a := range args {
				h.Templates = append(h.Templates, a)
				pos.templates = append(pos.templates, declared{file: d.File(), line: d.Line()})
			}
		case "status_classes":
			if seen[sub] {
				return pos, d.Err("route_metrics: status_classes given twice")
			}
			if d.NextArg() {
				return pos, d.Errf("route_metrics: status_classes takes no argument; unexpected %q", d.Val())
			}
			h.StatusClasses = true
			pos.shape = declared{file: d.File(), line: d.Line()}
		case "latency_labels":
			if seen[sub] {
				return pos, d.Err("route_metrics: latency_labels given twice")
			}
			h.LatencyLabels = d.RemainingArgs()
			if err := validateLatencyLabels(h.LatencyLabels); err != nil {
				return pos, d.Errf("route_metrics: %v", err)
			}
			pos.shape = declared{file: d.File(), line: d.Line()}
		default:
			return pos, d.Errf("route_metrics: unknown subdirective %q (expected namespace, buckets, native_histograms, counter, request_id, latency, server_timing, openapi, template, status_classes or latency_labels)", sub)
		}
		seen[sub] = true
	}
	if err := checkTemplates(h, pos); err != nil {
		return pos, err
	}
	// Checked after the block: namespace may follow the counters.
	for i, c := range h.Counters {
		if err := checkReservedName(c.Name, h.Namespace); err != nil {
			return pos, fmt.Errorf("route_metrics: %w, at %s", err, pos.counters[i].at())
		}
	}
	if st := h.ServerTiming; st != nil {
		for i := range st.Metrics {
			if err := st.Metrics[i].validate(h.Namespace); err != nil {
				return pos, fmt.Errorf("route_metrics: %w, at %s", err, pos.stMetrics[i].at())
			}
		}
		for i := range st.Metrics {
			for _, f := range st.Metrics[i].families() {
				for _, c := range h.Counters {
					if strings.TrimSuffix(c.Name, "_total") == f {
						return pos, fmt.Errorf("route_metrics: server_timing metric %s records into %s, which counter %s of this block already is, at %s",
							st.Metrics[i].Name, f, c.Name, pos.stMetrics[i].at())
					}
				}
			}
		}
	}
	return pos, nil
}

// intArg reads exactly one integer argument in [lo, hi].
func intArg(d *caddyfile.Dispenser, what string, lo, hi int) (int, error) {
	var v string
	if !d.AllArgs(&v) {
		return 0, d.Errf("%s needs exactly one number", what)
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < lo || n > hi {
		return 0, d.Errf("%s %q must be a whole number from %d to %d", what, v, lo, hi)
	}
	return n, nil
}

func parseCounter(d *caddyfile.Dispenser) (BusinessCounter, error) {
	var c BusinessCounter
	if !d.NextArg() {
		return c, d.Err("counter needs a metric name ending in _total")
	}
	c.Name = d.Val()
	if err := validateCounterName(c.Name); err != nil {
		return c, d.Errf("counter: %v", err)
	}
	if d.NextArg() {
		return c, d.Errf("counter %s: unexpected %q; help, labels and conditions go in a block", c.Name, d.Val())
	}
	helpSet := false
	for nesting := d.Nesting(); d.NextBlock(nesting); {
		switch sub := d.Val(); sub {
		case "help":
			if helpSet {
				return c, d.Errf("counter %s: help given twice", c.Name)
			}
			if !d.NextArg() {
				return c, d.Errf("counter %s: help needs one (quoted) text", c.Name)
			}
			c.Help = d.Val()
			if d.NextArg() {
				return c, d.Errf("counter %s: help takes one argument; quote the text (unexpected %q)", c.Name, d.Val())
			}
			helpSet = true
		case "label":
			var name, value string
			if !d.AllArgs(&name, &value) {
				return c, d.Errf("counter %s: label needs exactly two arguments, a name and a value", c.Name)
			}
			if err := validateLabelName(name); err != nil {
				return c, d.Errf("counter %s: %v", c.Name, err)
			}
			if _, dup := c.Labels[name]; dup {
				return c, d.Errf("counter %s: label %s given twice", c.Name, name)
			}
			if len(c.Labels) == maxLabels {
				return c, d.Errf("counter %s: at most %d labels allowed", c.Name, maxLabels)
			}
			if c.Labels == nil {
				c.Labels = map[string]string{}
			}
			c.Labels[name] = value
		case "method":
			ms := d.RemainingArgs()
			if len(ms) == 0 {
				return c, d.Errf("counter %s: method needs at least one HTTP method", c.Name)
			}
			for _, m := range ms {
				if err := validateMethodCond(m); err != nil {
					return c, d.Errf("counter %s: %v", c.Name, err)
				}
				if !slices.Contains(c.Methods, m) {
					c.Methods = append(c.Methods, m)
				}
			}
		case "status":
			ss := d.RemainingArgs()
			if len(ss) == 0 {
				return c, d.Errf("counter %s: status needs at least one condition like 2xx or 201", c.Name)
			}
			for _, s := range ss {
				if _, err := parseStatusCond(s); err != nil {
					return c, d.Errf("counter %s: %v", c.Name, err)
				}
				if !slices.Contains(c.Statuses, s) {
					c.Statuses = append(c.Statuses, s)
				}
			}
		default:
			return c, d.Errf("counter %s: unknown subdirective %q (expected help, label, method or status)", c.Name, sub)
		}
	}
	return c, nil
}

// Interface guards
var (
	_ caddyfile.Unmarshaler = (*RouteMetrics)(nil)
)
