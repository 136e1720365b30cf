package routemetrics

import (
	"fmt"
	"slices"
	"strings"
)

// The cardinality levers of a namespace (route_metrics status_classes and
// latency_labels). Each route costs up to methods x statuses series in
// every HTTP family, and the latency histogram (buckets + 3) lines per
// series: with route templates a few dozen routes can pass the families'
// 10,000-series cap and fold real traffic into "_overflow". Status classes
// (2xx..5xx) and a histogram labelled {method, endpoint} are the levers
// FastAPI users know from prometheus-fastapi-instrumentator; bench/
// measures what each saves (bench/RESULTS.md, "Route templates").
//
// A family's labels cannot change in place, so the shape is fixed when the
// namespace is first registered: put the levers on the route_metrics that
// declares the namespace (the outermost one, which Caddy provisions
// first); a handler that does not mention them inherits the namespace's,
// and one that asks for another shape fails to load (on a reload, the
// running configuration stays). Changing them takes a restart.

// httpShape is lm_http_options.flags in Go.
type httpShape struct {
	statusClasses   bool
	latencyNoStatus bool
}

func (s httpShape) flags() uint {
	var f uint
	if s.statusClasses {
		f |= httpStatusClasses
	}
	if s.latencyNoStatus {
		f |= httpDurationNoStatus
	}
	return f
}

func (s httpShape) String() string {
	status, latency := "status codes", "latency histogram by method, endpoint and status"
	if s.statusClasses {
		status = "status classes"
	}
	if s.latencyNoStatus {
		latency = "latency histogram by method and endpoint"
	}
	return status + ", " + latency
}

// accepts checks a handler's wish (nil: none declared, inherit) against
// the namespace's registered shape.
func (s httpShape) accepts(prefix string, want *httpShape) error {
	if want == nil || *want == s {
		return nil
	}
	return fmt.Errorf("route_metrics: namespace %q is registered with %s; this route_metrics asks for %s. A family's labels cannot change in place: declare status_classes and latency_labels on the route_metrics that declares the namespace, the same wherever they are repeated, and restart Caddy to change them",
		prefix, s, *want)
}

// latencyLabelSets are the latency histogram's allowed label lists.
var latencyLabelSets = [][]string{{"method", "endpoint", "status"}, {"method", "endpoint"}}

func validateLatencyLabels(labels []string) error {
	if labels == nil {
		return nil
	}
	for _, set := range latencyLabelSets {
		if slices.Equal(labels, set) {
			return nil
		}
	}
	return fmt.Errorf("latency_labels %q: must be \"method endpoint status\" (the default) or \"method endpoint\"", strings.Join(labels, " "))
}

// shape is the handler's wish, or nil if it declares neither lever.
func (h *RouteMetrics) shape() *httpShape {
	if !h.StatusClasses && h.LatencyLabels == nil {
		return nil
	}
	return &httpShape{statusClasses: h.StatusClasses, latencyNoStatus: len(h.LatencyLabels) == 2}
}
