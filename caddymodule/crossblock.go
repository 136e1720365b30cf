package routemetrics

import (
	"encoding/json"
	"fmt"
	"maps"
	"slices"
	"strings"

	"github.com/caddyserver/caddy/v2/caddyconfig/httpcaddyfile"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
)

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
