package routemetrics

import (
	"context"
	"encoding/json"
	"strings"
	"testing"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
)

func TestShapeStatusClassesAndLatencyWithoutStatus(t *testing.T) {
	site := routeMetrics(t, `{"namespace":"t_shape_","name":"s","status_classes":true,"latency_labels":["method","endpoint"]}`)
	inherit := routeMetrics(t, `{"namespace":"t_shape_","name":"s2"}`) // declares nothing: inherits
	before, _ := scrapeShared(t, formatText)
	for _, st := range []int{200, 201, 404} {
		serveThrough(t, respond(st, ""), "GET", "/", site)
	}
	serveThrough(t, respond(503, ""), "GET", "/", inherit)
	after, _ := scrapeShared(t, formatText)
	expectMoves(t, before, after, map[string]float64{
		key("t_shape_http_requests_total", "method", "GET", "endpoint", "s", "status", "2xx"):  2,
		key("t_shape_http_requests_total", "method", "GET", "endpoint", "s", "status", "4xx"):  1,
		key("t_shape_http_requests_total", "method", "GET", "endpoint", "s2", "status", "5xx"): 1,
		key("t_shape_http_request_duration_seconds_count", "method", "GET", "endpoint", "s"):   3,
	})
	for k := range after {
		if strings.HasPrefix(k, "t_shape_") && (strings.Contains(k, `status="200"`) || strings.Contains(k, `duration_seconds_count{method="GET",endpoint="s",status`)) {
			t.Errorf("unexpected series %s", k)
		}
	}

	// Another shape for the namespace is refused, saying what to do.
	ctx, cancel := caddy.NewContext(caddy.Context{Context: context.Background()})
	defer cancel()
	_, err := ctx.LoadModuleByID("http.handlers.route_metrics", json.RawMessage(`{"namespace":"t_shape_","name":"s3","latency_labels":["method","endpoint","status"]}`))
	if err == nil || !strings.Contains(err.Error(), `namespace "t_shape_" is registered with status classes, latency histogram by method and endpoint; this route_metrics asks for status codes, latency histogram by method, endpoint and status`) {
		t.Errorf("another shape: %v", err)
	}
	if _, err := ctx.LoadModuleByID("http.handlers.route_metrics", json.RawMessage(`{"latency_labels":["endpoint"]}`)); err == nil ||
		!strings.Contains(err.Error(), `latency_labels "endpoint": must be`) {
		t.Errorf("bad latency_labels: %v", err)
	}
}

func TestShapeCaddyfile(t *testing.T) {
	var rm RouteMetrics
	if err := rm.UnmarshalCaddyfile(caddyfile.NewTestDispenser("route_metrics {\n\tstatus_classes\n\tlatency_labels method endpoint\n}")); err != nil {
		t.Fatal(err)
	}
	if !rm.StatusClasses || strings.Join(rm.LatencyLabels, " ") != "method endpoint" {
		t.Errorf("got %+v", rm)
	}
	for _, c := range []struct{ text, want string }{
		{"route_metrics {\n\tstatus_classes yes\n}", "status_classes takes no argument"},
		{"route_metrics {\n\tstatus_classes\n\tstatus_classes\n}", "status_classes given twice"},
		{"route_metrics {\n\tlatency_labels method\n}", `latency_labels "method": must be "method endpoint status" (the default) or "method endpoint", at Testfile:2`},
	} {
		var rm RouteMetrics
		err := rm.UnmarshalCaddyfile(caddyfile.NewTestDispenser(c.text))
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%q: %v, want %q", c.text, err, c.want)
		}
	}
	_, err := adapt(cf(`
:8080 {
	route_metrics {
		namespace a_
		status_classes
	}
	handle /x {
		route_metrics x {
			namespace a_
			latency_labels method endpoint
		}
	}
}`))
	if err == nil || !strings.Contains(err.Error(), `namespace "a_" already has status classes, latency histogram by method, endpoint and status (set at Caddyfile:4)`) ||
		!strings.Contains(err.Error(), "at Caddyfile:9") {
		t.Errorf("disagreeing blocks: %v", err)
	}
}
