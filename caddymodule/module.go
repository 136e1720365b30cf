// Package routemetrics is a Caddy v2 plugin that records per-route RED
// metrics (rate, errors, duration) in libmetrics, a C metrics core with
// per-thread shards, and serves them to Prometheus.
//
// Two HTTP handlers:
//
//   - route_metrics (http.handlers.route_metrics) counts requests under a
//     configured route name, with business counters;
//   - metrics_endpoint (http.handlers.metrics_endpoint) serves the
//     exposition to internal clients.
//
// Both directives have a default order, so a Caddyfile needs no `order`
// global option. The registry's limits are the routemetrics app's (app.go),
// set by the route_metrics global option.
package routemetrics

import (
	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig/httpcaddyfile"
)

func init() {
	caddy.RegisterModule(new(RouteMetrics))
	caddy.RegisterModule(new(MetricsEndpoint))
	caddy.RegisterModule(new(App))
	httpcaddyfile.RegisterGlobalOption("route_metrics", parseGlobalOption)

	// route_metrics goes first (right after tracing) so that it wraps
	// everything else: the time spent in encode, redir, reverse_proxy and
	// the bytes actually sent are all measured.
	httpcaddyfile.RegisterHandlerDirective("route_metrics", parseRouteMetricsDirective)
	httpcaddyfile.RegisterDirectiveOrder("route_metrics", httpcaddyfile.After, "tracing")

	// metrics_endpoint answers the request like respond does; ordering it
	// just before respond lets `metrics_endpoint @internal` be followed by
	// a plain `respond 403` in the same block.
	httpcaddyfile.RegisterHandlerDirective("metrics_endpoint", parseMetricsEndpointDirective)
	httpcaddyfile.RegisterDirectiveOrder("metrics_endpoint", httpcaddyfile.Before, "respond")
}
