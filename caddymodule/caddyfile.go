package routemetrics

import (
	"encoding/json"
	"fmt"
	"maps"
	"slices"
	"strconv"
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

// parseServerTiming parses a server_timing block (the dispenser is on the
// server_timing token) and where each metric was declared.
func parseServerTiming(d *caddyfile.Dispenser) (*ServerTiming, []declared, error) {
	st := &ServerTiming{}
	var at []declared
	if d.NextArg() {
		return nil, nil, d.Errf("server_timing: unexpected %q; its settings go in a block", d.Val())
	}
	maxSet := false
	for nesting := d.Nesting(); d.NextBlock(nesting); {
		switch sub := d.Val(); sub {
		case "strip":
			if st.Strip {
				return nil, nil, d.Err("server_timing: strip given twice")
			}
			if d.NextArg() {
				return nil, nil, d.Errf("server_timing: strip takes no argument; unexpected %q", d.Val())
			}
			st.Strip = true
		case "max_entries":
			if maxSet {
				return nil, nil, d.Err("server_timing: max_entries given twice")
			}
			n, err := intArg(d, "server_timing: max_entries", 1, maxMaxEntries)
			if err != nil {
				return nil, nil, err
			}
			st.MaxEntries, maxSet = n, true
		case "metric":
			pos := declared{file: d.File(), line: d.Line()}
			m, err := parseServerTimingMetric(d)
			if err != nil {
				return nil, nil, err
			}
			for _, prev := range st.Metrics {
				if prev.Name == m.Name {
					return nil, nil, fmt.Errorf("server_timing: metric %s declared twice in the same block, at %s", m.Name, pos.at())
				}
			}
			st.Metrics = append(st.Metrics, m)
			at = append(at, pos)
		default:
			return nil, nil, d.Errf("server_timing: unknown subdirective %q (expected strip, max_entries or metric)", sub)
		}
	}
	if len(st.Metrics) == 0 {
		return nil, nil, d.Err("server_timing: no metric block; say which entries to record, e.g. metric db { queries db_queries_total }")
	}
	return st, at, nil
}

func parseServerTimingMetric(d *caddyfile.Dispenser) (ServerTimingMetric, error) {
	var m ServerTimingMetric
	if !d.NextArg() {
		return m, d.Err("server_timing: metric needs the entry name it maps, e.g. metric db")
	}
	m.Name = d.Val()
	if !isToken(m.Name) {
		return m, d.Errf("server_timing: metric name %q must be a Server-Timing metric name (an HTTP token, e.g. db)", m.Name)
	}
	if d.NextArg() {
		return m, d.Errf("server_timing: metric %s: unexpected %q; its settings go in a block", m.Name, d.Val())
	}
	seen := map[string]bool{}
	for nesting := d.Nesting(); d.NextBlock(nesting); {
		sub := d.Val()
		if seen[sub] {
			return m, d.Errf("server_timing: metric %s: %s given twice", m.Name, sub)
		}
		seen[sub] = true
		switch sub {
		case "queries", "duration":
			var name string
			if !d.AllArgs(&name) {
				return m, d.Errf("server_timing: metric %s: %s needs exactly one metric name", m.Name, sub)
			}
			if sub == "queries" {
				if err := validateCounterName(name); err != nil {
					return m, d.Errf("server_timing: metric %s: queries: %v", m.Name, err)
				}
				m.Queries = name
			} else {
				if err := validateMetricName(name); err != nil {
					return m, d.Errf("server_timing: metric %s: duration: %v", m.Name, err)
				}
				if err := validateHistogramName(name); err != nil {
					return m, d.Errf("server_timing: metric %s: %v", m.Name, err)
				}
				m.Duration = name
			}
		case "operations":
			ops := d.RemainingArgs()
			if len(ops) == 0 {
				return m, d.Errf("server_timing: metric %s: operations needs at least one operation, e.g. select insert", m.Name)
			}
			for _, op := range ops {
				if err := validateOperation(op); err != nil {
					return m, d.Errf("server_timing: metric %s: %v", m.Name, err)
				}
				if slices.Contains(m.Operations, op) {
					return m, d.Errf("server_timing: metric %s: operation %s listed twice", m.Name, op)
				}
				m.Operations = append(m.Operations, op)
			}
			if len(m.Operations) > maxListedOperations {
				return m, d.Errf("server_timing: metric %s: %d operations, at most %d", m.Name, len(m.Operations), maxListedOperations)
			}
		case "max_operations":
			n, err := intArg(d, "server_timing: metric "+m.Name+": max_operations", 1, maxMaxOperations)
			if err != nil {
				return m, err
			}
			m.MaxOperations = n
		case "buckets":
			b, err := parseBuckets(d.RemainingArgs())
			if err != nil {
				return m, d.Errf("server_timing: metric %s: %v", m.Name, err)
			}
			m.Buckets = b
		default:
			return m, d.Errf("server_timing: metric %s: unknown subdirective %q (expected queries, duration, operations, max_operations or buckets)", m.Name, sub)
		}
		if len(m.Operations) > 0 && m.MaxOperations != 0 {
			return m, d.Errf("server_timing: metric %s: give operations or max_operations, not both", m.Name)
		}
	}
	if m.Queries == "" && m.Duration == "" {
		return m, d.Errf("server_timing: metric %s records nothing; give it queries <name_total> and/or duration <name_seconds>", m.Name)
	}
	return m, nil
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

// UnmarshalCaddyfile parses
//
//	metrics_endpoint [<matcher>] {
//	    allow <cidr...>    # repeatable; adds to loopback and private ranges
//	    accept_forwarded   # RISK: the peer decides for forwarded requests
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
		case "accept_forwarded":
			if m.AcceptForwarded {
				return d.Err("metrics_endpoint: accept_forwarded given twice")
			}
			if d.NextArg() {
				return d.Errf("metrics_endpoint: accept_forwarded takes no argument (it is on when present); unexpected %q", d.Val())
			}
			if d.NextBlock(d.Nesting()) {
				return d.Err("metrics_endpoint: accept_forwarded takes no block")
			}
			m.AcceptForwarded = true
		default:
			return d.Errf("metrics_endpoint: unknown subdirective %q (expected allow or accept_forwarded)", sub)
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
	"libmetrics_series_folded", "server_timing_malformed",
	"metrics_endpoint_refused", "metrics_endpoint_scrape_errors",
}

var builtinHTTPFamilies = []string{
	"http_requests", "http_request_duration_seconds", "http_response_size_bytes", "http_requests_in_progress",
	"http_upstream_duration_seconds",
	"http_request_size_bytes",
	"http_upgraded_connection_duration_seconds", "http_upgraded_connections_in_progress",
	"http_responses_aborted",
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
	stateNative   = "routemetrics.native"
	stateShapes   = "routemetrics.shapes"
	stateCounters = "routemetrics.counters"
	// Every namespace any block declares ("" included: a block without
	// namespace registers the unprefixed HTTP families) and every counter
	// name with its own line, so a counter is checked against the HTTP
	// families of all namespaces, whichever block comes first.
	stateNamespaces = "routemetrics.namespaces"
	stateCounterAt  = "routemetrics.counter_at"
	// Server-Timing duration histograms: name -> help and buckets.
	stateSTHistograms = "routemetrics.server_timing_histograms"
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
		Native    *NativeHistograms `json:"native"`
		Counters  []BusinessCounter `json:"counters"`
		Latency   string            `json:"latency"`
	}{rm.Namespace, rm.Buckets, rm.NativeHistograms, rm.Counters, rm.Latency})
	if err != nil {
		return nil, err
	}
	routes := stateMap(h, stateRoutes)
	key := rm.Namespace + "\x00" + rm.routeName()
	if prev, ok := routes[key]; ok && prev.sig != string(sig) {
		return nil, fmt.Errorf("route_metrics: route %q is already declared at %s with different settings (namespace, buckets, native_histograms, counters or latency); give one of them another name, at %s:%d",
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

	// ... and one native histogram setting.
	if nk := rm.NativeHistograms.key(); nk != "" {
		natives := stateMap(h, stateNative)
		if prev, ok := natives[rm.Namespace]; ok && prev.sig != nk {
			return nil, fmt.Errorf("route_metrics: namespace %q already has other native_histograms settings (set at %s); every route_metrics of a namespace must say the same, at %s:%d",
				rm.Namespace, prev.at(), file, line)
		} else if !ok {
			natives[rm.Namespace] = here(nk)
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
	if err := checkServerTimingAcrossBlocks(h, rm, pos); err != nil {
		return nil, err
	}
	// A namespace has one shape: the blocks that declare it must agree.
	if sh := rm.shape(); sh != nil {
		shapes := stateMap(h, stateShapes)
		if prev, ok := shapes[rm.Namespace]; ok && prev.sig != sh.String() {
			return nil, fmt.Errorf("route_metrics: namespace %q already has %s (set at %s); every route_metrics of a namespace that sets status_classes or latency_labels must set the same, at %s",
				rm.Namespace, prev.sig, prev.at(), pos.shape.at())
		} else if !ok {
			shapes[rm.Namespace] = declared{sig: sh.String(), file: pos.shape.file, line: pos.shape.line}
		}
	}
	return rm, nil
}

// checkServerTimingAcrossBlocks: a Server-Timing metric name is one family
// in the whole Caddyfile, so every block that uses it must give it the same
// meaning (entry name, and buckets for a histogram), must not reuse a
// business counter's name, and must not be another namespace's HTTP
// family. libmetrics would refuse all of these at provision time, without
// a line number.
func checkServerTimingAcrossBlocks(h httpcaddyfile.Helper, rm *RouteMetrics, pos positions) error {
	if rm.ServerTiming == nil {
		return nil
	}
	counters := stateMap(h, stateCounters)
	histograms := stateMap(h, stateSTHistograms)
	namespaces := stateMap(h, stateNamespaces)
	counterAt := stateMap(h, stateCounterAt)
	for i := range rm.ServerTiming.Metrics {
		m := &rm.ServerTiming.Metrics[i]
		at := pos.stMetrics[i]
		if m.Queries != "" {
			sig := fmt.Sprintf("help=%q labels=%q", stQueriesHelp(m.Name), serverTimingLabels)
			if prev, ok := counters[m.Queries]; ok && prev.sig != sig {
				return fmt.Errorf("route_metrics: server_timing metric %s: counter %s is already declared at %s with a different meaning (another entry name, or a business counter), at %s",
					m.Name, m.Queries, prev.at(), at.at())
			} else if !ok {
				counters[m.Queries] = declared{sig: sig, file: at.file, line: at.line}
			}
			if prev, ok := histograms[strings.TrimSuffix(m.Queries, "_total")]; ok {
				return fmt.Errorf("route_metrics: server_timing metric %s: counter %s would be family %s, a histogram declared at %s, at %s",
					m.Name, m.Queries, strings.TrimSuffix(m.Queries, "_total"), prev.at(), at.at())
			}
		}
		if m.Duration != "" {
			sig := fmt.Sprintf("help=%q buckets=%s %s", stDurationHelp(m.Name), bucketsKey(m.Buckets), rm.NativeHistograms.spec().key())
			if prev, ok := histograms[m.Duration]; ok && prev.sig != sig {
				return fmt.Errorf("route_metrics: server_timing metric %s: histogram %s is already declared at %s with another entry name, other buckets or other native_histograms, at %s",
					m.Name, m.Duration, prev.at(), at.at())
			} else if !ok {
				histograms[m.Duration] = declared{sig: sig, file: at.file, line: at.line}
			}
			if prev, ok := counters[m.Duration+"_total"]; ok {
				return fmt.Errorf("route_metrics: server_timing metric %s: histogram %s is the family of counter %s declared at %s, at %s",
					m.Name, m.Duration, m.Duration+"_total", prev.at(), at.at())
			}
		}
		for _, name := range []string{m.Queries, m.Duration} {
			if name == "" {
				continue
			}
			for _, ns := range slices.Sorted(maps.Keys(namespaces)) {
				if f := httpFamilyOf(name, ns); f != "" {
					return fmt.Errorf("route_metrics: server_timing metric %s: %s collides with the built-in metric %s of namespace %q declared at %s, at %s",
						m.Name, name, f, ns, namespaces[ns].at(), at.at())
				}
			}
			if _, ok := counterAt[name]; !ok {
				counterAt[name] = at // later namespaces are checked against it
			}
		}
	}
	return nil
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
