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

// blocks is what the adapter remembers across the route_metrics blocks of
// one Caddyfile (all site blocks): a name, a namespace or a route is one
// thing in the registry, so every block that declares it must mean the
// same. Each map goes from a key to where it was first declared and, in
// sig, what it meant there. It lives in Helper.State (blocksKey), which
// lasts one adaptation of the whole Caddyfile.
type blocks struct {
	routes   map[string]declared // namespace NUL route name: its settings
	buckets  map[string]declared // namespace: its latency bucket list
	natives  map[string]declared // namespace: its native_histograms settings
	shapes   map[string]declared // namespace: status_classes / latency_labels
	counters map[string]declared // counter name: help and label names
	// Every namespace any block declares ("" included: a block without
	// namespace registers the unprefixed HTTP families) and every family
	// name a block configures with its kind and its own line, so a name is
	// checked against the HTTP families of all namespaces, whichever block
	// comes first.
	namespaces map[string]declared
	names      map[string]named
	// Server-Timing duration histograms: name -> help and buckets.
	stHistograms map[string]declared
}

const blocksKey = "routemetrics.blocks"

// blocksOf returns the adaptation's blocks, made on the first directive.
func blocksOf(h httpcaddyfile.Helper) *blocks {
	b, ok := h.State[blocksKey].(*blocks)
	if !ok {
		b = &blocks{
			routes: map[string]declared{}, buckets: map[string]declared{}, natives: map[string]declared{},
			shapes: map[string]declared{}, counters: map[string]declared{}, namespaces: map[string]declared{},
			names: map[string]named{}, stHistograms: map[string]declared{},
		}
		h.State[blocksKey] = b
	}
	return b
}

type declared struct {
	sig  string
	file string
	line int
}

func (d declared) at() string { return fmt.Sprintf("%s:%d", d.file, d.line) }

// named is a configured family name's kind and where it was declared.
type named struct {
	declared
	kind familyKind
}

// agree records d under key unless m has the key already; then it returns
// the earlier declaration and whether it meant the same (the same sig).
func agree(m map[string]declared, key string, d declared) (declared, bool) {
	prev, ok := m[key]
	if !ok {
		m[key] = d
		return d, true
	}
	return prev, prev.sig == d.sig
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
	b := blocksOf(h)
	if err := b.checkNamespaces(rm, pos); err != nil {
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
	if prev, same := agree(b.routes, rm.Namespace+"\x00"+rm.routeName(), here(string(sig))); !same {
		return nil, fmt.Errorf("route_metrics: route %q is already declared at %s with different settings (namespace, buckets, native_histograms, counters or latency); give one of them another name, at %s:%d",
			rm.routeName(), prev.at(), file, line)
	}

	// A namespace has one latency histogram, hence one bucket list.
	if len(rm.Buckets) > 0 {
		if prev, same := agree(b.buckets, rm.Namespace, here(bucketsKey(rm.Buckets))); !same {
			return nil, fmt.Errorf("route_metrics: namespace %q already has other buckets (set at %s); every route_metrics of a namespace must list the same buckets, at %s:%d",
				rm.Namespace, prev.at(), file, line)
		}
	}

	// ... and one native histogram setting.
	if nk := rm.NativeHistograms.key(); nk != "" {
		if prev, same := agree(b.natives, rm.Namespace, here(nk)); !same {
			return nil, fmt.Errorf("route_metrics: namespace %q already has other native_histograms settings (set at %s); every route_metrics of a namespace must say the same, at %s:%d",
				rm.Namespace, prev.at(), file, line)
		}
	}

	// A counter name is one family: help and label names must agree.
	for i := range rm.Counters {
		c := &rm.Counters[i]
		if prev, same := agree(b.counters, c.Name, here(c.shape())); !same {
			return nil, fmt.Errorf("route_metrics: counter %s is already declared at %s with a different help text or label names, at %s:%d",
				c.Name, prev.at(), file, line)
		}
	}
	if err := b.checkServerTiming(rm, pos); err != nil {
		return nil, err
	}
	// A namespace has one shape: the blocks that declare it must agree.
	if sh := rm.shape(); sh != nil {
		if prev, same := agree(b.shapes, rm.Namespace, declared{sig: sh.String(), file: pos.shape.file, line: pos.shape.line}); !same {
			return nil, fmt.Errorf("route_metrics: namespace %q already has %s (set at %s); every route_metrics of a namespace that sets status_classes or latency_labels must set the same, at %s",
				rm.Namespace, prev.sig, prev.at(), pos.shape.at())
		}
	}
	return rm, nil
}

// checkServerTiming: a Server-Timing metric name is one family
// in the whole Caddyfile, so every block that uses it must give it the same
// meaning (entry name, and buckets for a histogram), must not reuse a
// business counter's name, and must not be another namespace's HTTP
// family. libmetrics would refuse all of these at provision time, without
// a line number.
func (b *blocks) checkServerTiming(rm *RouteMetrics, pos positions) error {
	if rm.ServerTiming == nil {
		return nil
	}
	for i := range rm.ServerTiming.Metrics {
		m := &rm.ServerTiming.Metrics[i]
		at := pos.stMetrics[i]
		if m.Queries != "" {
			sig := fmt.Sprintf("help=%q labels=%q", stQueriesHelp(m.Name), serverTimingLabels)
			if prev, same := agree(b.counters, m.Queries, declared{sig: sig, file: at.file, line: at.line}); !same {
				return fmt.Errorf("route_metrics: server_timing metric %s: counter %s is already declared at %s with a different meaning (another entry name, or a business counter), at %s",
					m.Name, m.Queries, prev.at(), at.at())
			}
			if prev, ok := b.stHistograms[strings.TrimSuffix(m.Queries, "_total")]; ok {
				return fmt.Errorf("route_metrics: server_timing metric %s: counter %s would be family %s, a histogram declared at %s, at %s",
					m.Name, m.Queries, strings.TrimSuffix(m.Queries, "_total"), prev.at(), at.at())
			}
		}
		if m.Duration != "" {
			sig := fmt.Sprintf("help=%q buckets=%s %s", stDurationHelp(m.Name), bucketsKey(m.Buckets), rm.NativeHistograms.spec().key())
			if prev, same := agree(b.stHistograms, m.Duration, declared{sig: sig, file: at.file, line: at.line}); !same {
				return fmt.Errorf("route_metrics: server_timing metric %s: histogram %s is already declared at %s with another entry name, other buckets or other native_histograms, at %s",
					m.Name, m.Duration, prev.at(), at.at())
			}
			if prev, ok := b.counters[m.Duration+"_total"]; ok {
				return fmt.Errorf("route_metrics: server_timing metric %s: histogram %s is the family of counter %s declared at %s, at %s",
					m.Name, m.Duration, m.Duration+"_total", prev.at(), at.at())
			}
		}
		for _, n := range []named{{at, kindCounter}, {at, kindHistogram}} {
			name := m.Queries
			if n.kind == kindHistogram {
				name = m.Duration
			}
			if name == "" {
				continue
			}
			for _, ns := range slices.Sorted(maps.Keys(b.namespaces)) {
				if f := namespaceClash(n.kind, name, ns); f != "" {
					return fmt.Errorf("route_metrics: server_timing metric %s: %s collides with the built-in metric %s of namespace %q declared at %s, at %s",
						m.Name, name, f, ns, b.namespaces[ns].at(), at.at())
				}
			}
			if _, ok := b.names[name]; !ok {
				b.names[name] = n // later namespaces are checked against it
			}
		}
	}
	return nil
}

// checkNamespaces refuses a configured family that clashes with an HTTP
// family of a namespace declared in another block (counter
// shop_http_requests_total beside namespace shop_). libmetrics would refuse
// it at provision time, without a line; the block's own namespace is
// checked by unmarshal.
func (b *blocks) checkNamespaces(rm *RouteMetrics, pos positions) error {
	if _, ok := b.namespaces[rm.Namespace]; !ok {
		for _, name := range slices.Sorted(maps.Keys(b.names)) {
			if f := namespaceClash(b.names[name].kind, name, rm.Namespace); f != "" {
				return fmt.Errorf("route_metrics: namespace %q makes its built-in metric %s collide with counter %q declared at %s (a counter x_total is exposed as family x), at %s",
					rm.Namespace, f, name, b.names[name].at(), pos.namespace.at())
			}
		}
		b.namespaces[rm.Namespace] = pos.namespace
	}
	for i := range rm.Counters {
		name := rm.Counters[i].Name
		for _, ns := range slices.Sorted(maps.Keys(b.namespaces)) {
			if f := namespaceClash(kindCounter, name, ns); f != "" {
				return fmt.Errorf("route_metrics: counter name %q collides with the built-in metric %s of namespace %q declared at %s (a counter x_total is exposed as family x), at %s",
					name, f, ns, b.namespaces[ns].at(), pos.counters[i].at())
			}
		}
		if _, ok := b.names[name]; !ok {
			b.names[name] = named{pos.counters[i], kindCounter}
		}
	}
	return nil
}
