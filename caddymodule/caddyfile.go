package routemetrics

import (
	"encoding/json"
	"fmt"
	"maps"
	"slices"
	"strings"

	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
	"github.com/caddyserver/caddy/v2/caddyconfig/httpcaddyfile"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
)

// UnmarshalCaddyfile parses
//
//	route_metrics [<matcher>] [<name>] {
//	    namespace <prefix>
//	    buckets   <seconds...>
//	    counter <name_total> {
//	        help   <text>
//	        label  <name> <value>     # repeatable
//	        method <METHOD...>        # repeatable
//	        status <2xx|201...>       # repeatable
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
		default:
			return pos, d.Errf("route_metrics: unknown subdirective %q (expected namespace, buckets or counter)", sub)
		}
		seen[sub] = true
	}
	// Checked after the block: namespace may follow the counters.
	for i, c := range h.Counters {
		if err := checkReservedName(c.Name, h.Namespace); err != nil {
			return pos, fmt.Errorf("route_metrics: %w, at %s", err, pos.counters[i].at())
		}
	}
	return pos, nil
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

// UnmarshalCaddyfile parses
//
//	metrics_endpoint [<matcher>] {
//	    allow <cidr...>    # repeatable; adds to loopback and private ranges
//	}
func (m *MetricsEndpoint) UnmarshalCaddyfile(d *caddyfile.Dispenser) error {
	d.Next() // directive name
	if d.NextArg() {
		return d.Errf("metrics_endpoint takes no arguments (put allowed ranges in an allow line inside a block); unexpected %q", d.Val())
	}
	for nesting := d.Nesting(); d.NextBlock(nesting); {
		switch sub := d.Val(); sub {
		case "allow":
			list := d.RemainingArgs()
			if len(list) == 0 {
				return d.Err("metrics_endpoint: allow needs at least one CIDR")
			}
			if _, err := parseAllow(list); err != nil {
				return d.Errf("metrics_endpoint: %v", err)
			}
			m.Allow = append(m.Allow, list...)
		default:
			return d.Errf("metrics_endpoint: unknown subdirective %q (expected allow)", sub)
		}
	}
	return nil
}

// builtinFamilies are the family names the registry exposes besides
// business counters ("" stands for the namespace prefix of the HTTP ones).
var builtinFamilies = []string{
	"go_goroutines", "go_threads", "go_memstats_heap_alloc_bytes", "go_memstats_heap_sys_bytes", "go_gc_cycles",
	"process_cpu_seconds", "process_resident_memory_bytes", "process_virtual_memory_bytes",
	"process_open_fds", "process_max_fds", "process_start_time_seconds", "process_threads",
	"libmetrics_series_folded",
}

var builtinHTTPFamilies = []string{
	"http_requests", "http_request_duration_seconds", "http_response_size_bytes", "http_requests_in_progress",
}

// checkReservedName refuses a business counter whose family would clash
// with a built-in one. OpenMetrics exposes counter x_total as family x, so
// go_goroutines_total collides with the go_goroutines gauge; libmetrics
// would refuse it at provision time, this says so at adapt time.
func checkReservedName(name, namespace string) error {
	family := strings.TrimSuffix(name, "_total")
	for _, f := range builtinFamilies {
		if family == f {
			return fmt.Errorf("counter name %q collides with the built-in metric %s (a counter x_total is exposed as family x)", name, f)
		}
	}
	for _, f := range builtinHTTPFamilies {
		if family == namespace+f {
			return fmt.Errorf("counter name %q collides with the built-in metric %s (a counter x_total is exposed as family x)", name, namespace+f)
		}
	}
	return nil
}

// Keys of Helper.State, which lives for one adaptation of the whole
// Caddyfile (all site blocks).
const (
	stateRoutes   = "routemetrics.routes"
	stateBuckets  = "routemetrics.buckets"
	stateCounters = "routemetrics.counters"
	// Every namespace any block declares ("" included: a block without
	// namespace registers the unprefixed HTTP families) and every counter
	// name with its own line, so a counter is checked against the HTTP
	// families of all namespaces, whichever block comes first.
	stateNamespaces = "routemetrics.namespaces"
	stateCounterAt  = "routemetrics.counter_at"
)

type declared struct {
	sig  string
	file string
	line int
}

func (d declared) at() string { return fmt.Sprintf("%s:%d", d.file, d.line) }

func stateMap(h httpcaddyfile.Helper, key string) map[string]declared {
	m, ok := h.State[key].(map[string]declared)
	if !ok {
		m = map[string]declared{}
		h.State[key] = m
	}
	return m
}

// directivePos returns where the directive token of this segment is and
// leaves the dispenser as it found it.
func directivePos(h httpcaddyfile.Helper) (string, int) {
	h.Next()
	file, line := h.File(), h.Line()
	h.Reset()
	return file, line
}

func parseRouteMetricsDirective(h httpcaddyfile.Helper) (caddyhttp.MiddlewareHandler, error) {
	file, line := directivePos(h)
	rm := new(RouteMetrics)
	pos, err := rm.unmarshal(h.Dispenser)
	if err != nil {
		return nil, err
	}
	if err := checkNamespaceCollisions(h, rm, pos); err != nil {
		return nil, err
	}
	here := func(sig string) declared { return declared{sig: sig, file: file, line: line} }

	// One route name, one meaning: two blocks that disagree would make the
	// endpoint label mean different things depending on the site.
	sig, err := json.Marshal(struct {
		Namespace string            `json:"namespace"`
		Buckets   []float64         `json:"buckets"`
		Counters  []BusinessCounter `json:"counters"`
	}{rm.Namespace, rm.Buckets, rm.Counters})
	if err != nil {
		return nil, err
	}
	routes := stateMap(h, stateRoutes)
	key := rm.Namespace + "\x00" + rm.routeName()
	if prev, ok := routes[key]; ok && prev.sig != string(sig) {
		return nil, fmt.Errorf("route_metrics: route %q is already declared at %s with different settings (namespace, buckets or counters); give one of them another name, at %s:%d",
			rm.routeName(), prev.at(), file, line)
	} else if !ok {
		routes[key] = here(string(sig))
	}

	// A namespace has one latency histogram, hence one bucket list.
	if len(rm.Buckets) > 0 {
		buckets := stateMap(h, stateBuckets)
		bk := bucketsKey(rm.Buckets)
		if prev, ok := buckets[rm.Namespace]; ok && prev.sig != bk {
			return nil, fmt.Errorf("route_metrics: namespace %q already has other buckets (set at %s); every route_metrics of a namespace must list the same buckets, at %s:%d",
				rm.Namespace, prev.at(), file, line)
		} else if !ok {
			buckets[rm.Namespace] = here(bk)
		}
	}

	// A counter name is one family: help and label names must agree.
	counters := stateMap(h, stateCounters)
	for i := range rm.Counters {
		c := &rm.Counters[i]
		if prev, ok := counters[c.Name]; ok && prev.sig != c.shape() {
			return nil, fmt.Errorf("route_metrics: counter %s is already declared at %s with a different help text or label names, at %s:%d",
				c.Name, prev.at(), file, line)
		} else if !ok {
			counters[c.Name] = here(c.shape())
		}
	}
	return rm, nil
}

// checkNamespaceCollisions refuses a business counter whose family is the
// HTTP family of a namespace declared in another block (counter
// shop_http_requests_total beside namespace shop_). libmetrics would refuse
// it at provision time, without a line; the block's own namespace is
// checked by unmarshal.
func checkNamespaceCollisions(h httpcaddyfile.Helper, rm *RouteMetrics, pos positions) error {
	namespaces := stateMap(h, stateNamespaces)
	counterAt := stateMap(h, stateCounterAt)
	if _, ok := namespaces[rm.Namespace]; !ok {
		for _, name := range slices.Sorted(maps.Keys(counterAt)) {
			if f := httpFamilyOf(name, rm.Namespace); f != "" {
				return fmt.Errorf("route_metrics: namespace %q makes its built-in metric %s collide with counter %q declared at %s (a counter x_total is exposed as family x), at %s",
					rm.Namespace, f, name, counterAt[name].at(), pos.namespace.at())
			}
		}
		namespaces[rm.Namespace] = pos.namespace
	}
	for i := range rm.Counters {
		name := rm.Counters[i].Name
		for _, ns := range slices.Sorted(maps.Keys(namespaces)) {
			if f := httpFamilyOf(name, ns); f != "" {
				return fmt.Errorf("route_metrics: counter name %q collides with the built-in metric %s of namespace %q declared at %s (a counter x_total is exposed as family x), at %s",
					name, f, ns, namespaces[ns].at(), pos.counters[i].at())
			}
		}
		if _, ok := counterAt[name]; !ok {
			counterAt[name] = pos.counters[i]
		}
	}
	return nil
}

// httpFamilyOf returns the HTTP family of namespace that counter name
// would be exposed as, or "".
func httpFamilyOf(name, namespace string) string {
	family := strings.TrimSuffix(name, "_total")
	for _, f := range builtinHTTPFamilies {
		if family == namespace+f {
			return family
		}
	}
	return ""
}

func parseMetricsEndpointDirective(h httpcaddyfile.Helper) (caddyhttp.MiddlewareHandler, error) {
	m := new(MetricsEndpoint)
	if err := m.UnmarshalCaddyfile(h.Dispenser); err != nil {
		return nil, err
	}
	return m, nil
}

// Interface guards
var (
	_ caddyfile.Unmarshaler = (*RouteMetrics)(nil)
	_ caddyfile.Unmarshaler = (*MetricsEndpoint)(nil)
)
